package io.catena.data.reader;

import io.catena.data.tokenizer.ByteLevelBpe;
import io.catena.data.tokenizer.TokenizerJson;
import io.catena.model.data.TextCodec;
import java.nio.charset.StandardCharsets;

/** A dataset's byte-level BPE as chain-model's {@link TextCodec} (prompts in, samples out). */
final class BpeTextCodec implements TextCodec {
    private final ByteLevelBpe bpe;

    BpeTextCodec(ByteLevelBpe bpe) {
        this.bpe = bpe;
    }

    @Override
    public int[] encode(String text) {
        return bpe.encode(text);
    }

    @Override
    public String decode(int[] ids, int from, int to) {
        return new String(bpe.decode(ids, from, to), StandardCharsets.UTF_8);
    }

    @Override
    public int eosId() {
        return bpe.eosId();
    }

    @Override
    public int vocabSize() {
        return bpe.vocabSize();
    }

    @Override
    public String describe() {
        return "byte-level BPE sha256 " + bpe.sha256().substring(0, 12) + " (" + bpe.vocabSize() + " ids)";
    }

    /** The dataset's tokenizer.json in its canonical form (the bytes whose SHA-256 {@link #describe} shows). */
    @Override
    public String huggingFaceJson() {
        return TokenizerJson.toJson(bpe);
    }
}
