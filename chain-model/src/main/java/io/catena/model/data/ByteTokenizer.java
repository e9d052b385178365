package io.catena.model.data;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
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
        ObjectMapper mapper = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
        ObjectNode root = mapper.createObjectNode();
        root.put("version", "1.0");
        root.putNull("truncation");
        root.putNull("padding");
        ObjectNode eos = root.putArray("added_tokens").addObject();
        eos.put("id", EOS);
        eos.put("content", EOS_CONTENT);
        eos.put("single_word", false);
        eos.put("lstrip", false);
        eos.put("rstrip", false);
        eos.put("normalized", false);
        eos.put("special", true);
        root.putNull("normalizer");
        for (String part : new String[] {"pre_tokenizer", "post_processor", "decoder"}) {
            ObjectNode n = root.putObject(part);
            n.put("type", "ByteLevel");
            n.put("add_prefix_space", !part.equals("pre_tokenizer"));
            n.put("trim_offsets", !part.equals("post_processor"));
            n.put("use_regex", true);
        }
        ObjectNode model = root.putObject("model");
        model.put("type", "BPE");
        model.putNull("dropout");
        model.putNull("unk_token");
        model.put("continuing_subword_prefix", "");
        model.put("end_of_word_suffix", "");
        model.put("fuse_unk", false);
        model.put("byte_fallback", false);
        model.put("ignore_merges", false);
        ObjectNode vocab = model.putObject("vocab");
        for (int b = 0; b < 256; b++) {
            vocab.put(String.valueOf(byteLevelChar(b)), b);
        }
        model.putArray("merges");
        try {
            return mapper.writeValueAsString(root) + "\n";
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * GPT-2's {@code bytes_to_unicode}: printable Latin-1 bytes stand for themselves, the other 68 bytes for U+0100
     * upwards in byte order (data-pipeline's ByteLevel holds the same table; chain-model cannot depend on it).
     */
    static char byteLevelChar(int b) {
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
