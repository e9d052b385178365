package io.catena.model.pipeline;

import io.catena.model.ColmConfig;

/**
 * Estimated work and memory of one training micro-batch ({@code microBatch x seqLen} rows) at full
 * scale (CoLM trains with all n chains), per transformer block and for the parts only the first and
 * last stage run. FLOPs count the GEMMs and the attention core, which dominate, with backward taken
 * as twice forward (input and weight gradients); chain linears count only their non-zero
 * (block-lower-triangular) blocks. The only elementwise work counted is the cross-entropy over the
 * vocabulary, which is comparable to a block when the vocabulary is large and the model narrow.
 */
public record StageCostModel(
        long blockFlops,
        long embeddingFlops,
        long headFlops,
        long blockActivationBytes,
        long boundaryBytes) {

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
        long blockMacs = rows * (attnProj + ffn) + attnCore;
        long block = 3 * 2 * blockMacs;
        // logits of every scale come from one running sum over chains: D*V MACs per row forward
        long head = 3 * 2 * rows * d * cfg.vocabSize() + CROSS_ENTROPY_FLOPS_PER_LOGIT * rows * cfg.vocabSize() * n;
        long embedding = 2 * rows * d; // gather forward, scatter-add backward
        long act = activationElementsPerBlock(cfg, microBatch, seqLen) * bytesPerElement;
        return new StageCostModel(block, embedding, head, act, rows * d * bytesPerElement);
    }

    /**
     * Elements a block saves for backward per micro-batch: two residual inputs and two normed inputs,
     * per-head q, k, v, the causal probabilities and the merged attention output, and the FFN hidden
     * activations (u and act; SwiGLU also the gate).
     */
    static long activationElementsPerBlock(ColmConfig cfg, int microBatch, int seqLen) {
        long rows = (long) microBatch * seqLen;
        long d = cfg.dModel();
        long residAndNormed = 4 * rows * d;
        long attention = 4 * rows * d + (long) cfg.heads() * microBatch * seqLen * seqLen;
        long ffn = (cfg.activation() == ColmConfig.Activation.SWIGLU ? 3 : 2) * rows * cfg.ffnWidth();
        return residAndNormed + attention + ffn;
    }

    /** Cost of a stage with blocks [first, end) that also runs the embedding and/or the head. */
    public long stageFlops(int first, int end, boolean withEmbedding, boolean withHead) {
        return (end - first) * blockFlops + (withEmbedding ? embeddingFlops : 0) + (withHead ? headFlops : 0);
    }
}
