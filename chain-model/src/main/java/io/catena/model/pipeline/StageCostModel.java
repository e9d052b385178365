package io.catena.model.pipeline;

import io.catena.model.ColmConfig;
import io.catena.model.layers.Attention;

/**
 * Estimated work and memory of one training micro-batch ({@code microBatch x seqLen} rows) at full
 * scale (CoLM trains with all n chains), per half of a transformer block (the attention sublayer and
 * the FFN sublayer, the units a pipeline stage boundary may fall between) and for the parts only the
 * first and last stage run. FLOPs count the GEMMs and the attention core, which dominate, with backward taken
 * as twice forward (input and weight gradients); chain linears count only their non-zero
 * (block-lower-triangular) blocks. The only elementwise work counted is the cross-entropy over the
 * vocabulary, which is comparable to a block when the vocabulary is large and the model narrow.
 */
public record StageCostModel(
        long attentionFlops,
        long ffnFlops,
        long embeddingFlops,
        long headFlops,
        long attentionActivationBytes,
        long ffnActivationBytes,
        long boundaryBytes) {

    /**
     * Time per FLOP of an attention half relative to an FFN half, for planning. Attention runs narrower
     * GEMMs (per chain, N = 3 x chain width and chain width) and the Java causal-attention, RoPE and
     * head split/merge kernels, so it takes longer than its FLOPs say. Measured with the engine's
     * profile (1 thread, forward + backward per block): attention's share of a block's time is 0.46
     * (d_model 128, T 64) and 0.40-0.42 (d_model 256, T 64 and 128) where its FLOP share is 0.35-0.37;
     * 1.3 is the middle of the factors those imply (1.44, 1.25, 1.26).
     */
    public static final double ATTENTION_TIME_PER_FLOP = 1.3;

    /**
     * Share of a sublayer's (and the embedding's) time spent in the forward op when planning against a
     * schedule. FLOPs say 1/3 (backward computes input and weight gradients); the engine measured 0.38
     * (per-op trace of the 2-stage pipeline benchmark: forward 14.5-15.4 ms, backward 23.3-25.4 ms per
     * micro-batch of 12 blocks), its backward GEMMs running closer to peak than the forward's.
     */
    public static final double FORWARD_SHARE = 0.38;

    /** Forward + backward FLOPs per logit of the multi-chain cross-entropy (max, exp, sum; softmax - onehot). */
    static final long CROSS_ENTROPY_FLOPS_PER_LOGIT = 8;

    public static StageCostModel of(ColmConfig cfg, int microBatch, int seqLen, int bytesPerElement) {
        if (microBatch < 1 || seqLen < 1) {
            throw new IllegalArgumentException("micro-batch shape must be >= 1 x 1, got " + microBatch + " x " + seqLen);
        }
        long rows = (long) microBatch * seqLen;
        int n = cfg.numChains();
        long d = cfg.dModel();
        long f = cfg.ffnWidth();
        // multiply-accumulates per row of every chain linear of a block
        long chainDD = 0;
        long chainDF = 0;
        long chainFD = 0;
        for (int i = 0; i < n; i++) {
            chainDD += (long) cfg.chainWidth(i) * cfg.prefixWidth(i + 1);
            chainDF += (long) cfg.ffnChainWidth(i) * cfg.prefixWidth(i + 1);
            chainFD += (long) cfg.chainWidth(i) * cfg.ffnPrefixWidth(i + 1);
        }
        long attnProj = cfg.isAir() ? 2 * chainDD + 2L * cfg.kvWidth() * cfg.chainWidth(0) : 4 * chainDD;
        long ffn = (cfg.activation() == ColmConfig.Activation.SWIGLU ? 2 : 1) * chainDF + chainFD;
        // causal scores and the weighted sum of values: T(T+1)/2 key positions per query, hd MACs each, per head
        long attnCore = (long) cfg.heads() * microBatch * seqLen * (seqLen + 1L) * cfg.headDim();
        long attention = 3 * 2 * (rows * attnProj + attnCore);
        long ffnFlops = 3 * 2 * rows * ffn;
        // logits of every scale come from one running sum over chains: D*V MACs per row forward
        long head = 3 * 2 * rows * d * cfg.vocabSize() + CROSS_ENTROPY_FLOPS_PER_LOGIT * rows * cfg.vocabSize() * n;
        long embedding = 2 * rows * d; // gather forward, scatter-add backward
        return new StageCostModel(attention, ffnFlops, embedding, head,
                attentionActivationElements(cfg, microBatch, seqLen) * bytesPerElement,
                ffnActivationElements(cfg, microBatch, seqLen) * bytesPerElement, rows * d * bytesPerElement);
    }

    /**
     * Elements the attention half of a block saves for backward per micro-batch: its residual input and
     * normed input, per-head q, k, v, the merged attention output, and per query row either one log-sum-exp
     * (tiled core) or its T causal probabilities (materialized core).
     */
    static long attentionActivationElements(ColmConfig cfg, int microBatch, int seqLen) {
        long rows = (long) microBatch * seqLen;
        long perQueryRow = Attention.savesProbabilities() ? seqLen : 1;
        return 2 * rows * cfg.dModel() + 4 * rows * cfg.dModel() + (long) cfg.heads() * rows * perQueryRow;
    }

    /** Elements the FFN half saves: its residual input, normed input and hidden activations (u and act; SwiGLU also the gate). */
    static long ffnActivationElements(ColmConfig cfg, int microBatch, int seqLen) {
        long rows = (long) microBatch * seqLen;
        return 2 * rows * cfg.dModel() + (cfg.activation() == ColmConfig.Activation.SWIGLU ? 3 : 2) * rows * cfg.ffnWidth();
    }

    /** Forward + backward FLOPs of a whole block (both halves). */
    public long blockFlops() {
        return attentionFlops + ffnFlops;
    }

    /** FLOPs of sublayer unit u (2b: block b's attention half, 2b+1: its FFN half). */
    public long unitFlops(int unit) {
        return unit % 2 == 0 ? attentionFlops : ffnFlops;
    }

    /** Activation bytes sublayer unit u saves per micro-batch. */
    public long unitActivationBytes(int unit) {
        return unit % 2 == 0 ? attentionActivationBytes : ffnActivationBytes;
    }

    /** Planning cost of sublayer unit u: its FLOPs, attention weighted by {@link #ATTENTION_TIME_PER_FLOP}. */
    public long unitCost(int unit) {
        return unit % 2 == 0 ? Math.round(attentionFlops * ATTENTION_TIME_PER_FLOP) : ffnFlops;
    }

    /** Planning cost of a stage: {@link #unitCost} over its units plus the embedding's and head's FLOPs. */
    public long stageCost(int firstUnit, int endUnit, boolean withEmbedding, boolean withHead) {
        return stageSum(firstUnit, endUnit, withEmbedding, withHead, this::unitCost);
    }

    /** FLOPs of a stage with sublayer units [firstUnit, endUnit) that also runs the embedding and/or the head. */
    public long stageFlops(int firstUnit, int endUnit, boolean withEmbedding, boolean withHead) {
        return stageSum(firstUnit, endUnit, withEmbedding, withHead, this::unitFlops);
    }

    private long stageSum(int firstUnit, int endUnit, boolean withEmbedding, boolean withHead, java.util.function.IntToLongFunction perUnit) {
        long sum = 0;
        for (int u = firstUnit; u < endUnit; u++) {
            sum += perUnit.applyAsLong(u);
        }
        return sum + (withEmbedding ? embeddingFlops : 0) + (withHead ? headFlops : 0);
    }
}
