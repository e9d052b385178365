package io.catena.model;

import io.catena.model.kernel.Kernels;
import io.catena.model.kernel.Mat;
import io.catena.model.kernel.Prof;
import io.catena.model.layers.Attention;
import io.catena.model.layers.ChainNorm;
import io.catena.model.layers.FeedForward;
import io.catena.model.layers.Rope;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * Transformer blocks [first, end) of a CoLM for one batch shape, with the activations they save for
 * backward: the whole model's blocks in {@link ColmModel}, one pipeline stage's in
 * {@code pipeline.PipelineStage} (one stack per micro-batch in flight). The residual stream enters at
 * {@link #input()} and leaves at {@link #output()}; parameters and gradients are views into the
 * caller's flat buffers, so several stacks over the same blocks share weights and accumulate into
 * the same gradients.
 */
public final class BlockStack {

    /**
     * Buffers every stack of one model or stage may share because only one block runs at a time:
     * RoPE tables, attention and FFN scratch, the branch output and the normed-input gradient.
     */
    public static final class Workspace {
        final Rope rope;
        final Attention.Scratch attention;
        final FeedForward.Scratch ffn;
        final Mat branch;
        final Mat dh;

        public Workspace(ColmConfig cfg, int batch, int seqLen, DataType type) {
            int rows = batch * seqLen;
            rope = new Rope(cfg.headDim(), cfg.maxSeqLen(), cfg.ropeTheta());
            attention = new Attention.Scratch(cfg, batch, seqLen, type);
            ffn = new FeedForward.Scratch(cfg, rows, type);
            branch = Mat.allocateActivation(type, rows, cfg.dModel());
            dh = Mat.allocateActivation(type, rows, cfg.dModel());
        }

        /** A [rows, d_model] gradient buffer free between block calls (the LM head writes its dh here). */
        public Mat gradientScratch() {
            return dh;
        }
    }

    private final ColmConfig cfg;
    private final int first;
    private final Workspace ws;
    private final ChainNorm[] norm1;
    private final Attention[] attention;
    private final ChainNorm[] norm2;
    private final FeedForward[] ffn;
    /** resid[2i] is the input of block first+i's attention branch, resid[2i+1] of its FFN branch. */
    private final Mat[] resid;
    private final Mat[] h1;
    private final Mat[] h2;

    public BlockStack(ColmConfig cfg, Params params, Params grads, int first, int end, int batch, int seqLen, Workspace ws) {
        if (first < 0 || end > cfg.layers() || first >= end) {
            throw new IllegalArgumentException("block range [" + first + ", " + end + ") is not a non-empty range of the model's "
                    + cfg.layers() + " blocks");
        }
        this.cfg = cfg;
        this.first = first;
        this.ws = ws;
        DataType type = params.dataType();
        int rows = batch * seqLen, d = cfg.dModel(), n = end - first;
        norm1 = new ChainNorm[n];
        attention = new Attention[n];
        norm2 = new ChainNorm[n];
        ffn = new FeedForward[n];
        resid = new Mat[2 * n + 1];
        h1 = new Mat[n];
        h2 = new Mat[n];
        for (int i = 0; i < resid.length; i++) {
            resid[i] = Mat.allocateActivation(type, rows, d);
        }
        for (int i = 0; i < n; i++) {
            String p = "layers." + (first + i) + ".";
            norm1[i] = new ChainNorm(cfg, params, grads, p + "norm1", rows);
            attention[i] = new Attention(cfg, params, grads, p, ws.rope, ws.attention, batch, seqLen, type);
            norm2[i] = new ChainNorm(cfg, params, grads, p + "norm2", rows);
            ffn[i] = new FeedForward(cfg, params, grads, p, ws.ffn, rows, type);
            h1[i] = Mat.allocateActivation(type, rows, d);
            h2[i] = Mat.allocateActivation(type, rows, d);
        }
    }

    public int firstBlock() {
        return first;
    }

    public int endBlock() {
        return first + norm1.length;
    }

    /** The residual stream entering the first block, [rows, d_model]; the caller fills its first prefixWidth(k) columns. */
    public Mat input() {
        return resid[0];
    }

    /** The residual stream after the last block, valid after {@link #forward}. */
    public Mat output() {
        return resid[resid.length - 1];
    }

    /** Runs the blocks at scale k from {@link #input()} to {@link #output()}, saving what backward needs. */
    public void forward(int k) {
        int w = cfg.prefixWidth(k);
        Mat branch = ws.branch;
        for (int i = 0; i < norm1.length; i++) {
            long t = Prof.start();
            norm1[i].forward(resid[2 * i], h1[i], k);
            Prof.stop("fwd.norm", t);
            t = Prof.start();
            attention[i].forward(h1[i], branch, k);
            Prof.stop("fwd.attention", t);
            t = Prof.start();
            Kernels.add(resid[2 * i].colsCached(0, w), branch.colsCached(0, w), resid[2 * i + 1].colsCached(0, w));
            norm2[i].forward(resid[2 * i + 1], h2[i], k);
            Prof.stop("fwd.norm", t);
            t = Prof.start();
            ffn[i].forward(h2[i], branch, k);
            Prof.stop("fwd.ffn", t);
            t = Prof.start();
            Kernels.add(resid[2 * i + 1].colsCached(0, w), branch.colsCached(0, w), resid[2 * i + 2].colsCached(0, w));
            Prof.stop("fwd.norm", t);
        }
    }

    /**
     * Backward of the last {@link #forward} at scale k. On entry dx holds the gradient of the loss with
     * respect to {@link #output()}; on return, with respect to {@link #input()} (the residual stream's
     * gradient flows through dx in place). Parameter gradients of chains >= frozen are written, or
     * added when accumulate.
     */
    public void backward(Mat dx, int k, int frozen, boolean accumulate) {
        Mat dh = ws.dh;
        for (int i = norm1.length - 1; i >= 0; i--) {
            long t = Prof.start();
            ffn[i].backward(h2[i], dx, dh, k, frozen, accumulate, false);
            Prof.stop("bwd.ffn", t);
            t = Prof.start();
            norm2[i].backward(resid[2 * i + 1], dh, dx, k, frozen, accumulate);
            Prof.stop("bwd.norm", t);
            t = Prof.start();
            attention[i].backward(h1[i], dx, dh, k, frozen, accumulate, false);
            Prof.stop("bwd.attention", t);
            t = Prof.start();
            norm1[i].backward(resid[2 * i], dh, dx, k, frozen, accumulate);
            Prof.stop("bwd.norm", t);
        }
    }
}
