package io.catena.model.data;

/**
 * Where a trainer gets its token windows. Implemented by chain-model's built-in byte-level text
 * source and by data-pipeline's shard reader; the trainer never knows which.
 *
 * <p>A window is {@code seqLen + 1} consecutive tokens: inputs are the first {@code seqLen},
 * targets the last {@code seqLen}. The sequence of windows a source yields is a pure function of
 * its construction arguments (data, seed, worker share) and its {@link #position()}, so a trainer
 * that saves the position and later {@link #seek(long) seeks} to it resumes the exact same stream.
 */
public interface TokenBatchSource extends AutoCloseable {

    /** Number of distinct token ids the data may contain (ids are in [0, vocabSize)). */
    int vocabSize();

    /** Window length minus one: the model's sequence length. */
    int seqLen();

    /**
     * Fills {@code dst[0 .. batchSize*(seqLen+1))} with the next {@code batchSize} windows, row after
     * row, and advances the position by {@code batchSize}. Wraps into the next epoch (re-shuffled with
     * the epoch's seed) when the data are exhausted.
     */
    void nextBatch(int[] dst, int batchSize);

    /** Windows consumed so far by this source (across epochs); the resume cursor. */
    long position();

    /** Moves to an absolute position previously returned by {@link #position()}. */
    void seek(long position);

    /** Windows in one epoch of this source's share. */
    long windowsPerEpoch();

    /** One line for logs and checkpoints: what data, which share, which version. */
    String describe();

    @Override
    default void close() {
    }
}
