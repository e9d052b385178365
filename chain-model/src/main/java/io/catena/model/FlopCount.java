package io.catena.model;

/**
 * Matmul FLOPs of one training step (forward + backward, 2 per multiply-add), counted analytically from the chain
 * layout, the batch shape and the number of frozen chains: exactly the GEMMs {@link ColmModel#forwardBackward} runs
 * ({@code GemmCountTest} checks it against {@link io.catena.model.kernel.Gemm#multiplyAdds}) plus the attention core.
 *
 * <p>Chain i of every chain linear reads the input prefix of chains 0..i, so a prefix model is cheaper than its share of
 * the width squared: {@code {2,2}}'s projections cost 3/6 of {@code {2,2,2}}'s (blocks 1+2 against 1+2+3), where
 * dense widths would give 4/9. With chains 0..F-1 frozen the backward skips everything that reaches frozen parameters only:
 * frozen output chains have no backward at all, and trainable ones send their input gradient only to trainable input
 * columns. The attention core is counted over the causal half (T(T+1)/2 scores per head and sequence, forward QK^T
 * and PV; backward dV, dP, dQ, dK), without the tiled kernel's recomputation of the scores. Not counted: element-wise
 * work (norms, softmax, activations, cross-entropy, AdamW), the embedding gather, biases, evaluation.
 *
 * @param forwardLinear    projections, FFN and LM head, forward
 * @param forwardAttention attention core (scores and weighted values), forward
 * @param backwardInput    activation gradients of the linears (dX) and the LM head (dh)
 * @param backwardAttention attention core backward (dQ, dK, dV of the trainable heads)
 * @param backwardWeight   weight gradients (dW) of the trainable chains
 */
public record FlopCount(long forwardLinear, long forwardAttention, long backwardInput, long backwardAttention, long backwardWeight) {

    public long forward() {
        return forwardLinear + forwardAttention;
    }

    public long backward() {
        return backwardInput + backwardAttention + backwardWeight;
    }

    public long total() {
        return forward() + backward();
    }

    /** The GEMM part (everything but the attention core): what {@code Gemm} runs when the core is the tiled kernel. */
    public long gemm() {
        return forwardLinear + backwardInput + backwardWeight;
    }

    /** One optimizer step of {@code batch} sequences of {@code seqLen} tokens with chains 0..frozenChains-1 frozen. */
    public static FlopCount trainingStep(ColmConfig cfg, int batch, int seqLen, int frozenChains) {
        if (frozenChains < 0 || frozenChains >= cfg.numChains()) {
            throw new IllegalArgumentException("frozen chains must be in 0.." + (cfg.numChains() - 1) + ", got " + frozenChains);
        }
        Counter c = new Counter(cfg, (long) batch * seqLen, frozenChains);
        c.model(seqLen, batch, true);
        return c.result();
    }

    /** A forward pass at all chains (inference or evaluation of {@code batch} sequences). */
    public static FlopCount forwardOnly(ColmConfig cfg, int batch, int seqLen) {
        Counter c = new Counter(cfg, (long) batch * seqLen, 0);
        c.model(seqLen, batch, false);
        return c.result();
    }

    /** Forward FLOPs of the attention core for {@code heads} heads: QK^T and PV over the causal half. */
    private static long attentionCore(ColmConfig cfg, int batch, int seqLen, int heads) {
        long causal = (long) seqLen * (seqLen + 1) / 2;
        return 2L * 2 * causal * cfg.headDim() * heads * batch;
    }

    private static final class Counter {
        final ColmConfig cfg;
        final long rows;
        final int frozen;
        long fwdLinear, fwdAttention, bwdInput, bwdAttention, bwdWeight;

        Counter(ColmConfig cfg, long rows, int frozen) {
            this.cfg = cfg;
            this.rows = rows;
            this.frozen = frozen;
        }

        FlopCount result() {
            return new FlopCount(fwdLinear, fwdAttention, bwdInput, bwdAttention, bwdWeight);
        }

        /** Output chain i's block [out, in]; the frozen prefix of its input is frozenIn columns. */
        void linear(boolean backward, boolean trainable, long out, long in, long frozenIn) {
            fwdLinear += 2 * rows * out * in;
            if (backward && trainable) {
                bwdWeight += 2 * rows * out * in;
                bwdInput += 2 * rows * out * (in - frozenIn);
            }
        }

        void model(int seqLen, int batch, boolean backward) {
            int n = cfg.numChains();
            long frozenModel = cfg.prefixWidth(frozen), frozenFfn = cfg.ffnPrefixWidth(frozen);
            for (int l = 0; l < cfg.layers(); l++) {
                for (int i = 0; i < n; i++) {
                    boolean tr = i >= frozen;
                    long w = cfg.chainWidth(i), in = cfg.prefixWidth(i + 1), f = cfg.ffnChainWidth(i);
                    // attention: q (CoLM: q, k, v fused) and o
                    linear(backward, tr, cfg.isAir() ? w : 3 * w, in, frozenModel);
                    linear(backward, tr, w, in, frozenModel);
                    // FFN: up (and gate), down
                    int ups = cfg.activation() == ColmConfig.Activation.SWIGLU ? 2 : 1;
                    for (int u = 0; u < ups; u++) {
                        linear(backward, tr, f, in, frozenModel);
                    }
                    linear(backward, tr, w, cfg.ffnPrefixWidth(i + 1), frozenFfn);
                }
                if (cfg.isAir()) { // K and V: dense projections of chain 0 (frozen with it)
                    for (int kv = 0; kv < 2; kv++) {
                        linear(backward, frozen == 0, cfg.kvWidth(), cfg.chainWidth(0), 0);
                    }
                }
                fwdAttention += attentionCore(cfg, batch, seqLen, cfg.heads());
                if (backward) {
                    bwdAttention += 2 * attentionCore(cfg, batch, seqLen, cfg.heads() - cfg.headsUpTo(frozen));
                }
            }
            // LM head: one [D_i, V] block per chain, logits summed over chains; no input prefix to skip (dh is per chain)
            for (int i = 0; i < n; i++) {
                linear(backward, i >= frozen, cfg.vocabSize(), cfg.chainWidth(i), 0);
            }
        }
    }
}
