package io.catena.model;

import io.catena.model.kernel.Mat;
import io.catena.model.kernel.Prof;
import io.catena.model.layers.ChainNorm;
import io.catena.model.layers.Embedding;
import io.catena.model.layers.LmHead;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * The CoLM / CoLM-Air network for one batch shape. Every activation and gradient buffer is
 * allocated here, once (llm.c style); a training step allocates nothing off-heap. Parameters and
 * their gradients live in two {@link Params} blocks owned by the caller, so optimizers, parameter
 * servers and checkpoints work on flat buffers and never see layers.
 *
 * <p>Every forward takes a scale k (number of chains) and touches only chains < k; thanks to chain
 * causality the logits of scale j <= k equal those of the j-chain sub-model.
 */
public final class ColmModel {
    private final ColmConfig cfg;
    private final Params params;
    private final Params grads;
    private final int batch;
    private final int seqLen;
    private final int rows;
    private final Embedding embedding;
    private final BlockStack blocks;
    private final ChainNorm normF;
    private final LmHead head;
    private final Mat hf;
    private final Mat dx;
    private final Mat dh;
    private int lastForwardScale;

    public ColmModel(ColmConfig cfg, Params params, Params grads, int batch, int seqLen) {
        if (params.layout().config() != cfg && !params.layout().config().equals(cfg)) {
            throw new IllegalArgumentException("parameter layout was built for " + params.layout().config() + ", not " + cfg);
        }
        if (seqLen < 1 || seqLen > cfg.maxSeqLen()) {
            throw new IllegalArgumentException("sequence length " + seqLen + " must be in 1.." + cfg.maxSeqLen()
                    + " (max_seq_len of the model)");
        }
        if (batch < 1) {
            throw new IllegalArgumentException("batch size must be >= 1, got " + batch);
        }
        this.cfg = cfg;
        this.params = params;
        this.grads = grads;
        this.batch = batch;
        this.seqLen = seqLen;
        this.rows = batch * seqLen;
        DataType type = params.dataType();
        int d = cfg.dModel();
        BlockStack.Workspace ws = new BlockStack.Workspace(cfg, batch, seqLen, type);
        embedding = new Embedding(cfg, params, grads);
        blocks = new BlockStack(cfg, params, grads, 0, cfg.layers(), batch, seqLen, ws);
        normF = new ChainNorm(cfg, params, grads, "norm_f", rows);
        head = new LmHead(cfg, params, grads, rows, type);
        hf = Mat.allocateActivation(type, rows, d);
        dx = Mat.allocateActivation(type, rows, d);
        dh = ws.gradientScratch();
    }

    public ColmConfig config() {
        return cfg;
    }

    public Params params() {
        return params;
    }

    public Params grads() {
        return grads;
    }

    public int batch() {
        return batch;
    }

    public int seqLen() {
        return seqLen;
    }

    /** Runs the k-chain model on tokens[offset .. offset + batch*seqLen) (row-major [batch, seqLen]). */
    public void forward(int[] tokens, int offset, int k) {
        cfg.checkScale(k);
        checkLength(tokens, offset);
        long t = Prof.start();
        embedding.forward(tokens, offset, blocks.input(), k);
        Prof.stop("fwd.embed", t);
        blocks.forward(k);
        t = Prof.start();
        normF.forward(blocks.output(), hf, k);
        head.forward(hf, k);
        Prof.stop("fwd.head", t);
        lastForwardScale = k;
    }

    /** Logits of scale j (1..k of the last forward), [batch*seqLen, vocab]. Overwritten by backward. */
    public Mat logits(int scale) {
        if (scale < 1 || scale > lastForwardScale) {
            throw new IllegalArgumentException("logits of scale " + scale + " requested after a forward at scale " + lastForwardScale);
        }
        return head.logits(scale);
    }

    /** Mean cross-entropy per scale 1..k of the last forward against targets (logits untouched). */
    public double[] losses(int[] targets, int offset) {
        checkLength(targets, offset);
        double[] out = new double[lastForwardScale];
        for (int j = 1; j <= lastForwardScale; j++) {
            out[j - 1] = head.loss(j, targets, offset);
        }
        return out;
    }

    /**
     * Forward and backward of the full model with the multi-chain loss {@code sum_k w_k CE_k}.
     * Gradients of chains >= frozenChains are written into {@link #grads()} (added when accumulate),
     * scaled by gradScale (1/M for M accumulated micro-batches); the frozen chains' are not computed at all, nor
     * anything that only reaches them (their activations' gradients, their heads' attention backward, the
     * gradients of the scales 1..frozenChains), so a frozen prefix costs its forward only ({@link FlopCount}).
     * Returns the per-scale mean losses.
     */
    public double[] forwardBackward(int[] inputs, int[] targets, int offset, int frozenChains, boolean accumulate, double gradScale) {
        int n = cfg.numChains();
        forward(inputs, offset, n);
        checkLength(targets, offset);
        double[] weights = new double[n];
        for (int j = 0; j < n; j++) {
            weights[j] = cfg.lossWeights().get(j) * gradScale;
        }
        long t = Prof.start();
        double[] losses = head.lossAndGradient(targets, offset, n, weights, frozenChains);
        Prof.stop("loss", t);
        lastForwardScale = 0; // logits now hold gradients
        backward(inputs, offset, n, frozenChains, accumulate);
        return losses;
    }

    private void backward(int[] inputs, int offset, int k, int frozen, boolean acc) {
        long t = Prof.start();
        head.backward(hf, dh, k, frozen, acc);
        Prof.stop("bwd.head", t);
        t = Prof.start();
        dx.fill(0);
        normF.backward(blocks.output(), dh, dx, k, frozen, acc);
        Prof.stop("bwd.norm", t);
        blocks.backward(dx, k, frozen, acc);
        t = Prof.start();
        embedding.backward(inputs, offset, dx, k, frozen, acc);
        Prof.stop("bwd.embed", t);
    }

    private void checkLength(int[] tokens, int offset) {
        if (offset < 0 || tokens.length - offset < rows) {
            throw new IllegalArgumentException("need " + rows + " tokens (batch " + batch + " x seq_len " + seqLen
                    + ") from offset " + offset + ", but the array holds " + tokens.length);
        }
    }
}
