package io.catena.data.manifest;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileContext;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Options;
import org.apache.hadoop.fs.Path;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Where manifests live in a dataset directory, and their atomic writes.
 *
 * <pre>
 * out/manifests/manifest-v000001.json   immutable versions (temp file + rename; never overwritten)
 * out/manifest.json                     copy of the newest version (temp file + rename over)
 * out/v000001/...                       that version's shards, doc hashes, quarantine
 * out/tokenizer.json
 * </pre>
 * The newest version is the highest-numbered file under {@code manifests/}; {@code manifest.json} is a
 * convenience copy. A failed run never touches either.
 */
public final class ManifestStore {

    public static final String MANIFEST = "manifest.json";
    public static final String VERSIONS_DIR = "manifests";
    private static final Pattern VERSION_FILE = Pattern.compile("manifest-v(\\d{6})\\.json");
    private static final ObjectMapper MAPPER = new ObjectMapper()
            .enable(SerializationFeature.INDENT_OUTPUT)
            .disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);

    private ManifestStore() {
    }

    public static String versionDir(int version) {
        return String.format("v%06d", version);
    }

    public static Path versionFile(Path root, int version) {
        return new Path(new Path(root, VERSIONS_DIR), String.format("manifest-v%06d.json", version));
    }

    /** The newest manifest under {@code root}, if any. */
    public static Optional<Manifest> latest(Path root, Configuration conf) throws IOException {
        FileSystem fs = root.getFileSystem(conf);
        Path dir = new Path(root, VERSIONS_DIR);
        int best = 0;
        try {
            for (FileStatus st : fs.listStatus(dir)) {
                Matcher m = VERSION_FILE.matcher(st.getPath().getName());
                if (m.matches()) {
                    best = Math.max(best, Integer.parseInt(m.group(1)));
                }
            }
        } catch (FileNotFoundException e) {
            return Optional.empty();
        }
        return best == 0 ? Optional.empty() : Optional.of(read(versionFile(root, best), conf));
    }

    /**
     * Reads a manifest from a file, or the newest version if {@code uri} is a dataset directory.
     *
     * @throws IllegalArgumentException naming the path if there is none
     */
    public static Manifest open(Path uri, Configuration conf) throws IOException {
        FileSystem fs = uri.getFileSystem(conf);
        FileStatus st;
        try {
            st = fs.getFileStatus(uri);
        } catch (FileNotFoundException e) {
            throw new IllegalArgumentException("no dataset at " + uri + ": the path does not exist. Pass the --out directory"
                    + " of a finished `catena prepare` run, or one of its manifests/manifest-v*.json files.", e);
        }
        if (st.isFile()) {
            return read(uri, conf);
        }
        return latest(uri, conf).orElseThrow(() -> new IllegalArgumentException("no dataset at " + uri + ": found no "
                + VERSIONS_DIR + "/manifest-v*.json. Run `catena prepare --out " + uri + " ...` first (a failed run"
                + " leaves no manifest)."));
    }

    public static Manifest read(Path file, Configuration conf) throws IOException {
        FileSystem fs = file.getFileSystem(conf);
        try (FSDataInputStream in = fs.open(file)) {
            Manifest m = MAPPER.readValue(in.readAllBytes(), Manifest.class);
            if (!Manifest.FORMAT.equals(m.format())) {
                throw new IllegalArgumentException(file + ": format is \"" + m.format() + "\", expected \"" + Manifest.FORMAT
                        + "\". This catena version cannot read it; re-run `catena prepare` with this version.");
            }
            return m;
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalArgumentException(file + " is not a valid catena manifest (" + e.getOriginalMessage()
                    + "); expected the manifest.json written by `catena prepare`.", e);
        }
    }

    public static String toJson(Manifest m) {
        try {
            return MAPPER.writeValueAsString(m) + "\n";
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * Commits a manifest version: writes {@code manifests/manifest-vN.json} via a temp file and a rename
     * that fails if the version already exists (a concurrent run), then replaces {@code manifest.json}.
     */
    public static void commit(Path root, Manifest m, Configuration conf) throws IOException {
        Path target = versionFile(root, m.version());
        byte[] json = toJson(m).getBytes(StandardCharsets.UTF_8);
        FileSystem fs = root.getFileSystem(conf);
        Path tmp = new Path(target.getParent(), "_tmp-" + target.getName() + "-" + java.util.UUID.randomUUID());
        writeFile(fs, tmp, json);
        if (!fs.rename(tmp, target)) {
            fs.delete(tmp, false);
            throw new IllegalStateException("could not commit " + target + ": the rename from its temp file failed"
                    + (fs.exists(target) ? " because that version already exists (another prepare run into the same --out?)" : "")
                    + ". The previous manifest is unchanged; make sure only one run writes to " + root + " and retry.");
        }
        replaceAtomically(root, new Path(root, MANIFEST), json, conf);
    }

    /** Writes {@code data} to {@code target} via a temp file in the same directory and an overwriting rename. */
    public static void replaceAtomically(Path root, Path target, byte[] data, Configuration conf) throws IOException {
        FileSystem fs = root.getFileSystem(conf);
        Path tmp = new Path(target.getParent(), "_tmp-" + target.getName() + "-" + java.util.UUID.randomUUID());
        writeFile(fs, tmp, data);
        FileContext fc = FileContext.getFileContext(tmp.toUri(), conf);
        fc.rename(tmp, target, Options.Rename.OVERWRITE);
    }

    public static void writeFile(FileSystem fs, Path p, byte[] data) throws IOException {
        try (FSDataOutputStream out = fs.create(p, true)) {
            out.write(data);
            out.hsync();
        }
    }
}
