package io.catena.model;

import io.catena.model.kernel.Kernels;
import io.catena.model.kernel.Mat;
import io.catena.model.kernel.Prof;
import io.catena.model.layers.Attention;
import io.catena.model.layers.ChainNorm;
import io.catena.model.layers.Embedding;
import io.catena.model.layers.FeedForward;
import io.catena.model.layers.LmHead;
import io.catena.model.layers.Rope;
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
    private final ChainNorm[] norm1;
    private final Attention[] attention;
    private final ChainNorm[] norm2;
    private final FeedForward[] ffn;
    private final ChainNorm normF;
    private final LmHead head;
    /** resid[2l] is the input of layer l's attention branch, resid[2l+1] of its FFN branch. */
    private final Mat[] resid;
    private final Mat[] h1;
    private final Mat[] h2;
    private final Mat hf;
    private final Mat branch;
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
        int layers = cfg.layers();
        Rope rope = new Rope(cfg.headDim(), cfg.maxSeqLen(), cfg.ropeTheta());
        Attention.Scratch attScratch = new Attention.Scratch(cfg, batch, seqLen, type);
        FeedForward.Scratch ffnScratch = new FeedForward.Scratch(cfg, rows, type);
        embedding = new Embedding(cfg, params, grads);
        norm1 = new ChainNorm[layers];
        attention = new Attention[layers];
        norm2 = new ChainNorm[layers];
        ffn = new FeedForward[layers];
        resid = new Mat[2 * layers + 1];
        h1 = new Mat[layers];
        h2 = new Mat[layers];
        for (int i = 0; i < resid.length; i++) {
            resid[i] = Mat.allocateActivation(type, rows, d);
        }
        for (int l = 0; l < layers; l++) {
            String p = "layers." + l + ".";
            norm1[l] = new ChainNorm(cfg, params, grads, p + "norm1", rows);
            attention[l] = new Attention(cfg, params, grads, p, rope, attScratch, batch, seqLen, type);
            norm2[l] = new ChainNorm(cfg, params, grads, p + "norm2", rows);
            ffn[l] = new FeedForward(cfg, params, grads, p, ffnScratch, rows, type);
            h1[l] = Mat.allocateActivation(type, rows, d);
            h2[l] = Mat.allocateActivation(type, rows, d);
        }
        normF = new ChainNorm(cfg, params, grads, "norm_f", rows);
        head = new LmHead(cfg, params, grads, rows, type);
        hf = Mat.allocateActivation(type, rows, d);
        branch = Mat.allocateActivation(type, rows, d);
        dx = Mat.allocateActivation(type, rows, d);
        dh = Mat.allocateActivation(type, rows, d);
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
        int w = cfg.prefixWidth(k);
        long t = Prof.start();
        embedding.forward(tokens, offset, resid[0], k);
        Prof.stop("fwd.embed", t);
        for (int l = 0; l < cfg.layers(); l++) {
            t = Prof.start();
            norm1[l].forward(resid[2 * l], h1[l], k);
            Prof.stop("fwd.norm", t);
            t = Prof.start();
            attention[l].forward(h1[l], branch, k);
            Prof.stop("fwd.attention", t);
            t = Prof.start();
            Kernels.add(resid[2 * l].colsCached(0, w), branch.colsCached(0, w), resid[2 * l + 1].colsCached(0, w));
            norm2[l].forward(resid[2 * l + 1], h2[l], k);
            Prof.stop("fwd.norm", t);
            t = Prof.start();
            ffn[l].forward(h2[l], branch, k);
            Prof.stop("fwd.ffn", t);
            t = Prof.start();
            Kernels.add(resid[2 * l + 1].colsCached(0, w), branch.colsCached(0, w), resid[2 * l + 2].colsCached(0, w));
            Prof.stop("fwd.norm", t);
        }
        t = Prof.start();
        normF.forward(resid[2 * cfg.layers()], hf, k);
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
     * scaled by gradScale (1/M for M accumulated micro-batches). Returns the per-scale mean losses.
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
        double[] losses = head.lossAndGradient(targets, offset, n, weights);
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
        normF.backward(resid[2 * cfg.layers()], dh, dx, k, frozen, acc);
        Prof.stop("bwd.norm", t);
        for (int l = cfg.layers() - 1; l >= 0; l--) {
            t = Prof.start();
            ffn[l].backward(h2[l], dx, dh, k, frozen, acc, false);
            Prof.stop("bwd.ffn", t);
            t = Prof.start();
            norm2[l].backward(resid[2 * l + 1], dh, dx, k, frozen, acc);
            Prof.stop("bwd.norm", t);
            t = Prof.start();
            attention[l].backward(h1[l], dx, dh, k, frozen, acc, false);
            Prof.stop("bwd.attention", t);
            t = Prof.start();
            norm1[l].backward(resid[2 * l], dh, dx, k, frozen, acc);
            Prof.stop("bwd.norm", t);
        }
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
