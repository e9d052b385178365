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

    /** Content of the EOS token in {@link #huggingFaceJson()}: the name byte-level BPE vocabularies give it. */
    public static final String EOS_CONTENT = "<|endoftext|>";

    /**
     * This tokenizer as a HuggingFace byte-level BPE {@code tokenizer.json} with no merges (what {@code catena export}
     * writes): token id b (0..255) is byte b, spelled in GPT-2's byte-to-character alphabet as every byte-level
     * vocabulary is, and id 256 is the special {@value #EOS_CONTENT}. Without merges the BPE model maps each byte to its
     * own token, so any byte-level BPE encoder (HuggingFace tokenizers, the exported Python package, data-pipeline's
     * ByteLevelBpe) gives exactly {@link #encode}'s ids. The one difference: a byte-level decoder prints EOS as its
     * content, {@link #decode} as a newline. Same layout as data-pipeline's {@code TokenizerJson}.
     */
    public static String huggingFaceJson() {
        java.util.Map<String, Integer> vocab = new java.util.LinkedHashMap<>();
        for (int b = 0; b < 256; b++) {
            vocab.put(String.valueOf(byteLevelChar(b)), b);
        }
        return HuggingFaceTokenizerJson.write(java.util.List.of(new HuggingFaceTokenizerJson.Special(EOS, EOS_CONTENT)), vocab,
                java.util.List.of());
    }

    /**
     * GPT-2's {@code bytes_to_unicode}: printable Latin-1 bytes stand for themselves, the other 68 bytes for U+0100
     * upwards in byte order. The one definition: data-pipeline's ByteLevel builds its lookup tables from it.
     */
    public static char byteLevelChar(int b) {
        int shifted = 0;
        for (int x = 0; x < 256; x++) {
            boolean printable = (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF);
            if (x == b) {
                return printable ? (char) x : (char) (256 + shifted);
            }
            if (!printable) {
                shifted++;
            }
        }
        throw new IllegalArgumentException("byte " + b + " is outside 0..255");
    }
}
