package io.catena.data.prepare;

import io.catena.data.reader.WindowPermutation;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/** The stable 64-bit document hash behind exact dedup, the train/val split and bucket assignment. */
public final class DocHash {

    private static final ThreadLocal<MessageDigest> SHA = ThreadLocal.withInitial(() -> {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    });

    private DocHash() {
    }

    /** First 8 bytes (big-endian) of SHA-256 of the UTF-8 text. */
    public static long of(String text) {
        byte[] d = SHA.get().digest(text.getBytes(StandardCharsets.UTF_8));
        long h = 0;
        for (int i = 0; i < 8; i++) {
            h = (h << 8) | (d[i] & 0xFF);
        }
        return h;
    }

    /** Whether a document goes to val: {@code remainderUnsigned(mix64(hash ^ seed), 1e6) < valPpm}. */
    public static boolean isVal(long hash, long seed, long valPpm) {
        return Long.remainderUnsigned(WindowPermutation.mix64(hash ^ seed), 1_000_000L) < valPpm;
    }

    /** Bucket (shard group) of a document within its split. */
    public static int bucket(long hash, int buckets) {
        return (int) Long.remainderUnsigned(WindowPermutation.mix64(hash + 0x632BE59BD9B4E019L), buckets);
    }
}
