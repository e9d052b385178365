package io.catena.bench.tokenizer;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;

/**
 * The JDK 17 source corpus (Debian {@code openjdk-17-source}, {@code lib/src.zip}): every {@code .java}
 * entry, its leading license comment(s) stripped, assigned to train or val by a hash of its path.
 *
 * <p>Stripping: leading block comments ({@code /* ... *}{@code /}) that mention a copyright or a license
 * are removed, repeatedly (java.util.concurrent files carry two), with the blank lines after them.
 * Split: {@code val} iff the first 8 bytes of SHA-256(entry path), as an unsigned integer, mod 100 are
 * below {@code valPercent}. Documents are ordered by that hash, so "the first N MB of val" is a stable,
 * package-mixed sample.
 */
public final class JdkCorpus {

    /** One source file. */
    public record Doc(String path, String text, int utf8Bytes, long hash, boolean val) {
    }

    public final Path zip;
    public final String zipSha256;
    public final long zipBytes;
    public final List<Doc> docs;
    public final long rawBytes;
    public final long strippedBytes;

    private JdkCorpus(Path zip, String sha, long zipBytes, List<Doc> docs, long raw, long stripped) {
        this.zip = zip;
        this.zipSha256 = sha;
        this.zipBytes = zipBytes;
        this.docs = docs;
        this.rawBytes = raw;
        this.strippedBytes = stripped;
    }

    public static JdkCorpus load(Path zip, int valPercent) throws IOException {
        if (!Files.isRegularFile(zip)) {
            throw new IllegalArgumentException("no JDK source zip at " + zip + "; install it with `apt-get install -y"
                    + " openjdk-17-source` (or extract that package with apt-get download + dpkg-deb -x) and pass --src-zip");
        }
        byte[] all = Files.readAllBytes(zip);
        String sha = sha256Hex(all);
        List<Doc> docs = new ArrayList<>();
        long raw = 0;
        long stripped = 0;
        try (ZipInputStream in = new ZipInputStream(new java.io.ByteArrayInputStream(all))) {
            ZipEntry e;
            while ((e = in.getNextEntry()) != null) {
                if (e.isDirectory() || !e.getName().endsWith(".java")) {
                    continue;
                }
                byte[] b = readAll(in);
                raw += b.length;
                String text = stripLicense(new String(b, StandardCharsets.UTF_8));
                if (text.isBlank()) {
                    continue;
                }
                int n = text.getBytes(StandardCharsets.UTF_8).length;
                stripped += n;
                long h = ByteBuffer.wrap(sha256(e.getName().getBytes(StandardCharsets.UTF_8))).getLong();
                docs.add(new Doc(e.getName(), text, n, h, Long.remainderUnsigned(h, 100) < valPercent));
            }
        }
        docs.sort(Comparator.comparingLong(Doc::hash).thenComparing(Doc::path));
        return new JdkCorpus(zip, sha, all.length, List.copyOf(docs), raw, stripped);
    }

    private static byte[] readAll(InputStream in) throws IOException {
        return in.readAllBytes();
    }

    /** Removes leading block comments that mention a copyright or license, and the blank lines after them. */
    static String stripLicense(String s) {
        int p = 0;
        while (true) {
            int q = skipWhitespace(s, p);
            if (!s.startsWith("/*", q)) {
                break;
            }
            int end = s.indexOf("*/", q + 2);
            if (end < 0) {
                break;
            }
            String c = s.substring(q, end).toLowerCase(Locale.ROOT);
            if (!c.contains("copyright") && !c.contains("license")) {
                break;
            }
            p = end + 2;
        }
        return p == 0 ? s : s.substring(skipWhitespace(s, p));
    }

    private static int skipWhitespace(String s, int p) {
        while (p < s.length() && Character.isWhitespace(s.charAt(p))) {
            p++;
        }
        return p;
    }

    /** Documents of one split, in hash order, until their UTF-8 size reaches {@code maxBytes} (all if <= 0). */
    public List<Doc> take(boolean val, long maxBytes) {
        List<Doc> out = new ArrayList<>();
        long n = 0;
        for (Doc d : docs) {
            if (d.val() != val) {
                continue;
            }
            if (maxBytes > 0 && n >= maxBytes) {
                break;
            }
            out.add(d);
            n += d.utf8Bytes();
        }
        return out;
    }

    public static long bytes(List<Doc> docs) {
        return docs.stream().mapToLong(Doc::utf8Bytes).sum();
    }

    static byte[] sha256(byte[] b) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(b);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    static String sha256Hex(byte[] b) {
        return HexFormat.of().formatHex(sha256(b));
    }
}
