package io.catena.model.data;

import java.io.ByteArrayOutputStream;

/**
 * The built-in tokenizer: one token per byte (ids 0..255) plus EOS (256) between documents.
 * Round-trips any byte sequence, valid UTF-8 or not. data-pipeline's BPE replaces it for real corpora.
 */
public final class ByteTokenizer {
    public static final int EOS = 256;
    public static final int VOCAB_SIZE = 257;

    private ByteTokenizer() {
    }

    /** Entropy (nats/token) of the token frequencies: the loss of a model that ignores context. */
    public static double unigramEntropy(int[] tokens) {
        long[] counts = new long[VOCAB_SIZE];
        for (int t : tokens) {
            counts[t]++;
        }
        double h = 0;
        for (long c : counts) {
            if (c > 0) {
                double p = (double) c / tokens.length;
                h -= p * Math.log(p);
            }
        }
        return h;
    }

    public static int[] encode(byte[] bytes) {
        int[] ids = new int[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
            ids[i] = bytes[i] & 0xFF;
        }
        return ids;
    }

    /** Bytes of the given ids; EOS becomes a newline, ids outside 0..256 are rejected. */
    public static byte[] decode(int[] ids, int from, int to) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(to - from);
        for (int i = from; i < to; i++) {
            int id = ids[i];
            if (id == EOS) {
                out.write('\n');
            } else if (id >= 0 && id < 256) {
                out.write(id);
            } else {
                throw new IllegalArgumentException("token id " + id + " at index " + i + " is not a byte-tokenizer id (0.." + EOS + ")");
            }
        }
        return out.toByteArray();
    }
}
