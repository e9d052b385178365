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
 * A run of transformer sublayers of a CoLM for one batch shape, with the activations they save for
 * backward: the whole model's blocks in {@link ColmModel}, one pipeline stage's in
 * {@code pipeline.PipelineStage} (one stack per micro-batch in flight). Sublayer (unit) 2b is block b's
 * attention half (norm1, attention, residual add), unit 2b+1 its FFN half (norm2, FFN, residual add);
 * a stack runs units [firstUnit, endUnit), so a pipeline stage may start or end between a block's
 * halves. The residual stream enters at {@link #input()} and leaves at {@link #output()}; parameters
 * and gradients are views into the caller's flat buffers, so several stacks over the same units
 * share weights and accumulate into the same gradients.
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
    private final int firstUnit;
    private final Workspace ws;
    /** Per unit: its norm, and the branch (attention or FFN) it feeds; exactly one of attention[j], ffn[j] is set. */
    private final ChainNorm[] norm;
    private final Attention[] attention;
    private final FeedForward[] ffn;
    /** resid[j] is the input of unit firstUnit+j, resid[j+1] its output. */
    private final Mat[] resid;
    /** The normed input of each unit (the branch's input, saved for backward). */
    private final Mat[] normed;

    /** Whole blocks [first, end): units [2 first, 2 end). */
    public BlockStack(ColmConfig cfg, Params params, Params grads, int first, int end, int batch, int seqLen, Workspace ws) {
        this(cfg, params, grads, ws, batch, seqLen, checkBlocks(cfg, first, end), 2 * end);
    }

    private static int checkBlocks(ColmConfig cfg, int first, int end) {
        if (first < 0 || end > cfg.layers() || first >= end) {
            throw new IllegalArgumentException("block range [" + first + ", " + end + ") is not a non-empty range of the model's "
                    + cfg.layers() + " blocks");
        }
        return 2 * first;
    }

    /** Units [firstUnit, endUnit) of the model's 2 x layers (unit 2b: block b's attention half, 2b+1: its FFN half). */
    public static BlockStack ofUnits(ColmConfig cfg, Params params, Params grads, int firstUnit, int endUnit, int batch, int seqLen,
                                     Workspace ws) {
        if (firstUnit < 0 || endUnit > 2 * cfg.layers() || firstUnit >= endUnit) {
            throw new IllegalArgumentException("sublayer range [" + firstUnit + ", " + endUnit + ") is not a non-empty range of the model's "
                    + 2 * cfg.layers() + " sublayers (2 per block)");
        }
        return new BlockStack(cfg, params, grads, ws, batch, seqLen, firstUnit, endUnit);
    }

    private BlockStack(ColmConfig cfg, Params params, Params grads, Workspace ws, int batch, int seqLen, int firstUnit, int endUnit) {
        this.cfg = cfg;
        this.firstUnit = firstUnit;
        this.ws = ws;
        DataType type = params.dataType();
        int rows = batch * seqLen, d = cfg.dModel(), n = endUnit - firstUnit;
        norm = new ChainNorm[n];
        attention = new Attention[n];
        ffn = new FeedForward[n];
        resid = new Mat[n + 1];
        normed = new Mat[n];
        for (int i = 0; i < resid.length; i++) {
            resid[i] = Mat.allocateActivation(type, rows, d);
        }
        for (int j = 0; j < n; j++) {
            int u = firstUnit + j;
            String p = "layers." + (u / 2) + ".";
            if (u % 2 == 0) {
                norm[j] = new ChainNorm(cfg, params, grads, p + "norm1", rows);
                attention[j] = new Attention(cfg, params, grads, p, ws.rope, ws.attention, batch, seqLen, type);
            } else {
                norm[j] = new ChainNorm(cfg, params, grads, p + "norm2", rows);
                ffn[j] = new FeedForward(cfg, params, grads, p, ws.ffn, rows, type);
            }
            normed[j] = Mat.allocateActivation(type, rows, d);
        }
    }

    public int firstUnit() {
        return firstUnit;
    }

    public int endUnit() {
        return firstUnit + norm.length;
    }

    /** The residual stream entering the first block, [rows, d_model]; the caller fills its first prefixWidth(k) columns. */
    public Mat input() {
        return resid[0];
    }

    /** The residual stream after the last block, valid after {@link #forward}. */
    public Mat output() {
        return resid[resid.length - 1];
    }

    /** Runs the units at scale k from {@link #input()} to {@link #output()}, saving what backward needs. */
    public void forward(int k) {
        int w = cfg.prefixWidth(k);
        Mat branch = ws.branch;
        for (int j = 0; j < norm.length; j++) {
            long t = Prof.start();
            norm[j].forward(resid[j], normed[j], k);
            Prof.stop("fwd.norm", t);
            t = Prof.start();
            if (attention[j] != null) {
                attention[j].forward(normed[j], branch, k);
                Prof.stop("fwd.attention", t);
            } else {
                ffn[j].forward(normed[j], branch, k);
                Prof.stop("fwd.ffn", t);
            }
            t = Prof.start();
            Kernels.add(resid[j].colsCached(0, w), branch.colsCached(0, w), resid[j + 1].colsCached(0, w));
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
        for (int j = norm.length - 1; j >= 0; j--) {
            long t = Prof.start();
            if (attention[j] != null) {
                attention[j].backward(normed[j], dx, dh, k, frozen, accumulate, false);
                Prof.stop("bwd.attention", t);
            } else {
                ffn[j].backward(normed[j], dx, dh, k, frozen, accumulate, false);
                Prof.stop("bwd.ffn", t);
            }
            t = Prof.start();
            norm[j].backward(resid[j], dh, dx, k, frozen, accumulate);
            Prof.stop("bwd.norm", t);
        }
    }
}
