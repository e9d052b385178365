package io.catena.model.data;

import java.nio.charset.StandardCharsets;

/**
 * Text <-> token ids for generation and reports. The byte tokenizer is built in; a dataset's BPE comes
 * from its {@link TokenSourceProvider} ({@link TokenSourceProvider#textCodec}), so chain-model never
 * depends on the module that trained it.
 */
public interface TextCodec {

    int[] encode(String text);

    /** UTF-8 text of ids[from, to); a byte sequence cut mid-character decodes to U+FFFD, never throws. */
    String decode(int[] ids, int from, int to);

    /** The end-of-text id (generation stops there). */
    int eosId();

    int vocabSize();

    /** e.g. "bytes (257 ids)" or "BPE tokenizer.json sha256 ab12... (4096 ids)". */
    String describe();

    /**
     * This tokenizer as a HuggingFace byte-level BPE {@code tokenizer.json} (what {@code catena export} writes beside
     * the weights), or null when it has no such form.
     */
    default String huggingFaceJson() {
        return null;
    }

    /** The built-in byte tokenizer: 256 bytes + EOS. */
    static TextCodec bytes() {
        return new TextCodec() {
            @Override
            public int[] encode(String text) {
                return ByteTokenizer.encode(text.getBytes(StandardCharsets.UTF_8));
            }

            @Override
            public String decode(int[] ids, int from, int to) {
                return new String(ByteTokenizer.decode(ids, from, to), StandardCharsets.UTF_8);
            }

            @Override
            public int eosId() {
                return ByteTokenizer.EOS;
            }

            @Override
            public int vocabSize() {
                return ByteTokenizer.VOCAB_SIZE;
            }

            @Override
            public String describe() {
                return "bytes (" + ByteTokenizer.VOCAB_SIZE + " ids)";
            }

            @Override
            public String huggingFaceJson() {
                return ByteTokenizer.huggingFaceJson();
            }
        };
    }

    /** The codec of a data spec: a provider's (a dataset's tokenizer) or, for text read by chain-model itself, bytes. */
    static TextCodec forData(String dataSpec) {
        TokenSourceProvider p = TokenSourceProvider.find(dataSpec);
        if (p == null) {
            return bytes();
        }
        TextCodec c = p.textCodec(dataSpec);
        if (c == null) {
            throw new IllegalArgumentException("the data " + dataSpec + " (read by " + p + ") has no text codec to encode prompts"
                    + " and decode samples");
        }
        return c;
    }
}
