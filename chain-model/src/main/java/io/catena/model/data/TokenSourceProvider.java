package io.catena.model.data;

import java.util.ServiceLoader;

/**
 * Opens token sources for data specs that chain-model itself does not understand (for example a
 * data-pipeline manifest). Implementations are found with {@link ServiceLoader} on the class path
 * (META-INF/services/io.catena.model.data.TokenSourceProvider), so chain-model never depends on
 * the modules that provide them.
 */
public interface TokenSourceProvider {

    /** Which data specs this provider opens, e.g. a manifest URI or a directory holding manifest.json. */
    boolean accepts(String dataSpec);

    /**
     * Opens one split of the data for worker {@code worker} of {@code workers}.
     *
     * @param split "train" or "val"
     * @param seqLen the model's sequence length; windows are seqLen + 1 tokens. Fails with a clear
     *               message when the data were packed for another length.
     */
    TokenBatchSource open(String dataSpec, String split, int seqLen, long seed, int worker, int workers);

    /**
     * The tokenizer the data were encoded with, to encode prompts and decode samples of a model trained on
     * them; null when this provider has none.
     */
    default TextCodec textCodec(String dataSpec) {
        return null;
    }

    /** The first installed provider that accepts the spec, or null. */
    static TokenSourceProvider find(String dataSpec) {
        for (TokenSourceProvider p : ServiceLoader.load(TokenSourceProvider.class)) {
            if (p.accepts(dataSpec)) {
                return p;
            }
        }
        return null;
    }
}
