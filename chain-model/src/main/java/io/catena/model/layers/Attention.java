package io.catena.model.layers;

import io.catena.model.ColmConfig;
import io.catena.model.Params;
import io.catena.model.kernel.AttentionKernels;
import io.catena.model.kernel.Bf16Attention;
import io.catena.model.kernel.Bf16Gemm;
import io.catena.model.kernel.Buf;
import io.catena.model.kernel.FlashAttention;
import io.catena.model.kernel.FlashAttentionScalar;
import io.catena.model.kernel.HeadTensor;
import io.catena.model.kernel.Mat;
import io.catena.model.kernel.Parallel;
import io.catena.model.kernel.Prof;
import io.catena.model.kernel.VectorKernels;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * Chain attention. Heads are chain-major (chain 0's heads first) and query head j reads only its
 * own columns of q, so chain i's output depends on chains <= i. CoLM: Q, K, V, O are chain linears.
 * CoLM-Air: K and V are plain dense projections of chain 0 with kv_heads heads, tiled over the
 * query heads (query head j uses kv head j mod kv_heads), so every scale shares one KV cache.
 * RoPE is fused into the head split and the causal mask and 1/sqrt(hd) scale into the softmax.
 *
 * <p>The core (scores, softmax, weighted values) runs per (head, sequence) pair in one of two ways:
 * {@link Core#TILED} (the default) in tiles with an online softmax ({@link FlashAttention}), saving only a
 * log-sum-exp per query row and recomputing the probabilities in backward; {@link Core#MATERIALIZED} keeps the
 * [heads, batch, T, T] probabilities of every layer and a [T, T] gradient scratch (the earlier path, kept for
 * A/B runs and as the ND4J batched-GEMM reference of the tests).
 */
public final class Attention {

    /** How the attention core runs; see the class comment. */
    public enum Core { TILED, MATERIALIZED }

    /**
     * The core of models built from now on: -Dcatena.attention=tiled|materialized (default tiled). Read when a
     * model's buffers are built, so one process can hold one model of each (paired A/B benchmarks).
     */
    public static volatile Core defaultCore = Core.valueOf(
            System.getProperty("catena.attention", "tiled").trim().toUpperCase(java.util.Locale.ROOT));

    /** The core a model built now uses: vectorKernels = false asks for the ND4J batched-GEMM reference. */
    static Core coreForNewModel() {
        return vectorKernels ? defaultCore : Core.MATERIALIZED;
    }

    /** Whether a model built now saves [T, T] probabilities per layer (the pipeline's memory estimate). */
    public static boolean savesProbabilities() {
        return coreForNewModel() == Core.MATERIALIZED;
    }

    /** Buffers shared by every layer (only one layer runs at a time). */
    public static final class Scratch {
        final Mat q;
        final Mat k;
        final Mat v;
        final Mat dq;
        final Mat dk;
        final Mat dv;
        final Mat datt;
        final HeadTensor oh;
        final HeadTensor dOh;
        final HeadTensor dQh;
        final HeadTensor dKh;
        final HeadTensor dVh;
        /** [heads, batch, T, T] score gradients; materialized core only. */
        final HeadTensor dP;
        final Core core;

        public Scratch(ColmConfig cfg, int batch, int seqLen, DataType type) {
            int n = batch * seqLen, d = cfg.dModel(), h = cfg.heads(), hd = cfg.headDim();
            core = coreForNewModel();
            if (cfg.isAir()) {
                q = Mat.allocateActivation(type, n, d);
                k = Mat.allocateActivation(type, n, cfg.kvWidth());
                v = Mat.allocateActivation(type, n, cfg.kvWidth());
                dq = Mat.allocateActivation(type, n, d);
                dk = Mat.allocateActivation(type, n, cfg.kvWidth());
                dv = Mat.allocateActivation(type, n, cfg.kvWidth());
            } else {
                // CoLM: q, k and v of every chain side by side, [q_i | k_i | v_i] per chain
                q = Mat.allocateActivation(type, n, 3 * d);
                k = q;
                v = q;
                dq = Mat.allocateActivation(type, n, 3 * d);
                dk = dq;
                dv = dq;
            }
            datt = Mat.allocateActivation(type, n, d);
            oh = new HeadTensor(type, h, batch, seqLen, hd);
            dOh = new HeadTensor(type, h, batch, seqLen, hd);
            dQh = new HeadTensor(type, h, batch, seqLen, hd);
            dKh = new HeadTensor(type, h, batch, seqLen, hd);
            dVh = new HeadTensor(type, h, batch, seqLen, hd);
            dP = core == Core.MATERIALIZED ? new HeadTensor(type, h, batch, seqLen, seqLen) : null;
        }
    }

    private final ColmConfig cfg;
    private final Rope rope;
    /** CoLM: q, k, v of a chain in one GEMM; CoLM-Air: q only (k, v are kvProj). */
    private final ChainLinear qProj;
    private final ChainLinear kProj;
    private final ChainLinear vProj;
    /** Column of query head j's q, k and v in the projection outputs. */
    private final int[] qCol;
    private final int[] kCol;
    private final int[] vCol;
    private final int[] attCol;
    private final ChainLinear oProj;
    private final Scratch s;
    private final int batch;
    private final int seqLen;
    // Saved for backward (per layer).
    private final HeadTensor qh;
    private final HeadTensor kh;
    private final HeadTensor vh;
    /** Materialized core: softmax probabilities [heads, batch, T, T]. */
    private final HeadTensor probs;
    /** Tiled core: log-sum-exp of every query row's scaled scores [heads, batch, T, 1]. */
    private final HeadTensor rowLse;
    private final Mat att;

    public Attention(ColmConfig cfg, Params params, Params grads, String prefix, Rope rope, Scratch scratch,
                     int batch, int seqLen, DataType type) {
        this.cfg = cfg;
        this.rope = rope;
        this.s = scratch;
        this.batch = batch;
        this.seqLen = seqLen;
        int n = cfg.numChains();
        int[] widths = new int[n];
        int[] prefixes = new int[n];
        for (int i = 0; i < n; i++) {
            widths[i] = cfg.chainWidth(i);
            prefixes[i] = cfg.prefixWidth(i + 1);
        }
        oProj = new ChainLinear(params, grads, prefix + "attn.o", 0, widths, prefixes);
        if (cfg.isAir()) {
            qProj = new ChainLinear(params, grads, prefix + "attn.q", 0, widths, prefixes);
            int[] kvw = {cfg.kvWidth()};
            int[] kvin = {cfg.chainWidth(0)};
            kProj = new ChainLinear(params, grads, prefix + "attn.k", 0, kvw, kvin);
            vProj = new ChainLinear(params, grads, prefix + "attn.v", 0, kvw, kvin);
        } else {
            Mat[] w = new Mat[n], b = new Mat[n], gw = new Mat[n], gb = new Mat[n];
            for (int i = 0; i < n; i++) {
                String c = ".c" + i;
                String[] ws = {prefix + "attn.q" + c + ".weight", prefix + "attn.k" + c + ".weight", prefix + "attn.v" + c + ".weight"};
                w[i] = params.span(ws, prefixes[i]);
                gw[i] = grads.span(ws, prefixes[i]);
                if (cfg.bias()) {
                    String[] bs = {prefix + "attn.q" + c + ".bias", prefix + "attn.k" + c + ".bias", prefix + "attn.v" + c + ".bias"};
                    b[i] = params.span(bs, 3 * widths[i]);
                    gb[i] = grads.span(bs, 3 * widths[i]);
                }
            }
            qProj = new ChainLinear(0, prefixes, w, b, gw, gb);
            kProj = null;
            vProj = null;
        }
        int heads = cfg.heads(), hdim = cfg.headDim();
        qCol = new int[heads];
        kCol = new int[heads];
        vCol = new int[heads];
        attCol = new int[heads];
        for (int i = 0, j = 0; i < n; i++) {
            for (int local = 0; local < cfg.chains().get(i); local++, j++) {
                attCol[j] = j * hdim;
                if (cfg.isAir()) {
                    qCol[j] = j * hdim;
                    kCol[j] = (j % cfg.kvHeads()) * hdim; // tiled kv heads
                    vCol[j] = kCol[j];
                } else {
                    qCol[j] = 3 * cfg.chainOffset(i) + local * hdim;
                    kCol[j] = qCol[j] + widths[i];
                    vCol[j] = qCol[j] + 2 * widths[i];
                }
            }
        }
        int h = cfg.heads(), hd = cfg.headDim();
        qh = new HeadTensor(type, h, batch, seqLen, hd);
        kh = new HeadTensor(type, h, batch, seqLen, hd);
        vh = new HeadTensor(type, h, batch, seqLen, hd);
        probs = scratch.core == Core.MATERIALIZED ? new HeadTensor(type, h, batch, seqLen, seqLen) : null;
        rowLse = scratch.core == Core.TILED ? new HeadTensor(type, h, batch, seqLen, 1) : null;
        att = Mat.allocateActivation(type, batch * seqLen, cfg.dModel());
    }

    /** Set to false to force the ND4J batched-GEMM path (tests compare the two). */
    static volatile boolean vectorKernels = true;

    private boolean vectorPath() {
        return vectorKernels && qh.buf instanceof Buf.F32 && AttentionKernels.supports(cfg.headDim());
    }

    private interface PairBody {
        void run(int headOffset, int probsOffset, float[] transposeScratch);
    }

    private static final ThreadLocal<float[]> SCRATCH = ThreadLocal.withInitial(() -> new float[0]);

    /** Runs body for every (head, sequence) pair of heads [firstHead, heads), split over the kernel threads. */
    private void forPairs(int firstHead, int heads, PairBody body) {
        final int pairs = (heads - firstHead) * batch, need = seqLen * cfg.headDim();
        Parallel.forRows(pairs, (from, to) -> {
            float[] bt = SCRATCH.get();
            if (bt.length < need) {
                bt = new float[need];
                SCRATCH.set(bt);
            }
            for (int pr = from; pr < to; pr++) {
                int h = firstHead + pr / batch, b = pr % batch;
                body.run(qh.index(h, b, 0), probs.index(h, b, 0), bt);
            }
        });
    }

    private interface HeadRange {
        void run(int firstHead, int heads);
    }

    /** Runs body for the heads of chains [firstChain, k). */
    private void perChain(int firstChain, int k, HeadRange body) {
        for (int i = firstChain; i < k; i++) {
            body.run(cfg.headsUpTo(i), cfg.chains().get(i));
        }
    }


    /** y[:, :D_k] = attention(h) at scale k. */
    public void forward(Mat h, Mat y, int k) {
        int heads = cfg.headsUpTo(k);
        long t = Prof.start();
        try (var reuse = Bf16Gemm.reuse()) { // h converted to bf16 once for q, k and v
            qProj.forward(h, s.q, k);
            if (kProj != null) {
                kProj.forward(h, s.k, k);
                vProj.forward(h, s.v, k);
            }
        }
        Prof.stop("att.fwd.qkv", t);
        t = Prof.start();
        splitHeads(heads);
        Prof.stop("att.fwd.split", t);
        t = Prof.start();
        if (s.core == Core.TILED) {
            tiledForward(heads);
        } else if (vectorPath()) {
            forPairs(0, heads, (off, poff, bt) -> {
                AttentionKernels.transpose(kh.bytes(), off, seqLen, cfg.headDim(), bt);
                AttentionKernels.causalScores(qh.bytes(), off, bt, probs.bytes(), poff, seqLen, cfg.headDim());
            });
            causalSoftmax(heads);
            forPairs(0, heads, (off, poff, bt) ->
                    AttentionKernels.combineRows(probs.bytes(), poff, vh.bytes(), off, s.oh.bytes(), off, seqLen, cfg.headDim()));
        } else {
            perChain(0, k, (first, count) -> HeadTensor.bmm(qh, false, kh, true, probs, first, count));
            causalSoftmax(heads);
            perChain(0, k, (first, count) -> HeadTensor.bmm(probs, false, vh, false, s.oh, first, count));
        }
        Prof.stop("att.fwd.core", t);
        t = Prof.start();
        mergeHeads(s.oh, att, 0, heads, false, attCol);
        Prof.stop("att.fwd.merge", t);
        t = Prof.start();
        oProj.forward(att, y, k);
        Prof.stop("att.fwd.o", t);
    }

    /**
     * dh[:, :D_k] (+)= d attention / dh given dy; parameter gradients of chains >= firstTrainable. Only what reaches a
     * trainable parameter is computed (see {@link ChainLinear#backward}): the heads of frozen chains are skipped.
     */
    public void backward(Mat h, Mat dy, Mat dh, int k, int firstTrainable, boolean accParams, boolean accInput) {
        int heads = cfg.headsUpTo(k);
        int frozenChains = Math.min(Math.max(firstTrainable, 0), k);
        int first = cfg.headsUpTo(frozenChains);
        long t = Prof.start();
        oProj.backward(att, dy, s.datt, k, firstTrainable, accParams, false);
        Prof.stop("att.bwd.o", t);
        t = Prof.start();
        splitGradient(s.datt, s.dOh, first, heads);
        Prof.stop("att.bwd.split", t);
        t = Prof.start();
        if (s.core == Core.TILED) {
            tiledBackward(first, heads);
        } else if (vectorPath()) {
            final int tl = seqLen, hd = cfg.headDim();
            forPairs(first, heads, (off, poff, bt) -> {
                AttentionKernels.transpose(vh.bytes(), off, tl, hd, bt);
                AttentionKernels.causalScores(s.dOh.bytes(), off, bt, s.dP.bytes(), poff, tl, hd);
                AttentionKernels.combineColumns(probs.bytes(), poff, s.dOh.bytes(), off, s.dVh.bytes(), off, tl, hd);
            });
            softmaxBackward(first, heads);
            forPairs(first, heads, (off, poff, bt) -> {
                AttentionKernels.combineRows(s.dP.bytes(), poff, kh.bytes(), off, s.dQh.bytes(), off, tl, hd);
                AttentionKernels.combineColumns(s.dP.bytes(), poff, qh.bytes(), off, s.dKh.bytes(), off, tl, hd);
            });
        } else {
            perChain(frozenChains, k, (f, count) -> {
                HeadTensor.bmm(s.dOh, false, vh, true, s.dP, f, count);
                HeadTensor.bmm(probs, true, s.dOh, false, s.dVh, f, count);
            });
            softmaxBackward(first, heads);
            perChain(frozenChains, k, (f, count) -> {
                HeadTensor.bmm(s.dP, false, kh, false, s.dQh, f, count);
                HeadTensor.bmm(s.dP, true, qh, false, s.dKh, f, count);
            });
        }
        Prof.stop("att.bwd.core", t);
        t = Prof.start();
        mergeHeads(s.dQh, s.dq, first, heads, true, qCol);
        mergeKv(s.dKh, s.dk, first, heads, true, kCol);
        mergeKv(s.dVh, s.dv, first, heads, false, vCol);
        Prof.stop("att.bwd.merge", t);
        t = Prof.start();
        try (var reuse = Bf16Gemm.reuse()) {
            qProj.backward(h, s.dq, dh, k, firstTrainable, accParams, accInput);
            if (kProj != null) {
                kProj.backward(h, s.dk, dh, k, firstTrainable, accParams, true);
                vProj.backward(h, s.dv, dh, k, firstTrainable, accParams, true);
            }
        }
        Prof.stop("att.bwd.qkv", t);
    }

    /**
     * Tiled core forward: s.oh and rowLse of the first heads. Float32 work is split by (pair, query tile), so
     * a few long sequences still use every thread; each thread copies a pair's q, k, v once for its tiles.
     */
    private void tiledForward(int heads) {
        final int t = seqLen, hd = cfg.headDim();
        final double scale = 1.0 / Math.sqrt(hd);
        if (!(qh.buf instanceof Buf.F32)) {
            Parallel.forUnits(heads * batch, (from, to) -> {
                for (int pr = from; pr < to; pr++) {
                    int h = pr / batch, b = pr % batch;
                    FlashAttentionScalar.forward(qh.buf, kh.buf, vh.buf, qh.index(h, b, 0), t, hd, scale, FlashAttention.TILE,
                            s.oh.buf, rowLse.buf, rowLse.index(h, b, 0));
                }
            });
            return;
        }
        if (Bf16Attention.applies(t)) {
            forQueryBlocks(heads, Bf16Attention.blocks(t), (h, b, off, first, last) ->
                    Bf16Attention.forward(Bf16Attention.workspace(), qh.bytes(), kh.bytes(), vh.bytes(), off, t, hd, (float) scale,
                            first, last, s.oh.bytes(), rowLse.bytes(), rowLse.index(h, b, 0)));
            return;
        }
        forQueryBlocks(heads, FlashAttention.tiles(t), (h, b, off, first, last) -> {
            FlashAttention.Workspace ws = FlashAttention.workspace();
            FlashAttention.loadForward(ws, qh.bytes(), kh.bytes(), vh.bytes(), off, t, hd);
            FlashAttention.forwardTiles(ws, first, last, t, hd, (float) scale, s.oh.bytes(), off, rowLse.bytes(),
                    rowLse.index(h, b, 0));
        });
    }

    /** Query blocks [first, last) of the (head h, sequence b) pair whose rows start at element off. */
    private interface QueryBlocks {
        void run(int h, int b, int off, int first, int last);
    }

    /**
     * The forward's units of work: every (head, sequence) pair's query blocks, split over the kernel team; a thread's
     * range is handed over pair by pair, so one pair's q, k, v are loaded once per contiguous run of its blocks.
     */
    private void forQueryBlocks(int heads, int blocks, QueryBlocks body) {
        Parallel.forUnits(heads * batch * blocks, (from, to) -> {
            for (int u = from; u < to; ) {
                int pair = u / blocks, first = u % blocks, last = Math.min(blocks, first + (to - u));
                int h = pair / batch, b = pair % batch;
                body.run(h, b, qh.index(h, b, 0), first, last);
                u += last - first;
            }
        });
    }

    /** Tiled core backward: s.dQh, s.dKh, s.dVh of heads [firstHead, heads) from s.dOh, recomputing the probabilities. */
    private void tiledBackward(int firstHead, int heads) {
        final int t = seqLen, hd = cfg.headDim();
        final double scale = 1.0 / Math.sqrt(hd);
        final boolean f32 = qh.buf instanceof Buf.F32;
        if (f32 && Bf16Attention.applies(t)) {
            Parallel.forUnits((heads - firstHead) * batch, (from, to) -> {
                Bf16Attention.Workspace ws = Bf16Attention.workspace();
                for (int pr = from; pr < to; pr++) {
                    int h = firstHead + pr / batch, b = pr % batch, off = qh.index(h, b, 0);
                    Bf16Attention.backward(ws, qh.bytes(), kh.bytes(), vh.bytes(), s.dOh.bytes(), off, t, hd, (float) scale,
                            rowLse.bytes(), rowLse.index(h, b, 0), ((Buf.F32) att.buf).bytes(), att.index(b * t, attCol[h]), att.ld,
                            s.dQh.bytes(), s.dKh.bytes(), s.dVh.bytes());
                }
            });
            return;
        }
        Parallel.forUnits((heads - firstHead) * batch, (from, to) -> {
            FlashAttention.Workspace ws = f32 ? FlashAttention.workspace() : null;
            for (int pr = from; pr < to; pr++) {
                int h = firstHead + pr / batch, b = pr % batch, off = qh.index(h, b, 0), lse = rowLse.index(h, b, 0);
                int o = att.index(b * t, attCol[h]); // this pair's output rows, saved by forward in att
                if (f32) {
                    FlashAttention.backward(ws, qh.bytes(), kh.bytes(), vh.bytes(), s.dOh.bytes(), off, t, hd, (float) scale,
                            rowLse.bytes(), lse, ((Buf.F32) att.buf).bytes(), o, att.ld, s.dQh.bytes(), s.dKh.bytes(), s.dVh.bytes());
                } else {
                    FlashAttentionScalar.backward(qh.buf, kh.buf, vh.buf, s.dOh.buf, off, t, hd, scale, FlashAttention.TILE,
                            rowLse.buf, lse, att.buf, o, att.ld, s.dQh.buf, s.dKh.buf, s.dVh.buf);
                }
            }
        });
    }

    /** q/k/v [N, *] -> per-head tensors, RoPE applied to q and k. */
    private void splitHeads(int heads) {
        final int hd = cfg.headDim();
        Parallel.forRows(batch * seqLen, (from, to) -> {
            for (int r = from; r < to; r++) {
                int b = r / seqLen, t = r % seqLen;
                for (int j = 0; j < heads; j++) {
                    int dst = qh.index(j, b, t);
                    rope.rotate(s.q.buf, s.q.index(r, qCol[j]), qh.buf, dst, t, false);
                    rope.rotate(s.k.buf, s.k.index(r, kCol[j]), kh.buf, dst, t, false);
                    s.v.buf.copyTo(s.v.index(r, vCol[j]), vh.buf, dst, hd);
                }
            }
        });
    }

    /** d att [N, D] -> dOh of heads [firstHead, heads). */
    private void splitGradient(Mat src, HeadTensor dst, int firstHead, int heads) {
        final int hd = cfg.headDim();
        Parallel.forRows(batch * seqLen, (from, to) -> {
            for (int r = from; r < to; r++) {
                int b = r / seqLen, t = r % seqLen;
                for (int j = firstHead; j < heads; j++) {
                    src.buf.copyTo(src.index(r, j * hd), dst.buf, dst.index(j, b, t), hd);
                }
            }
        });
    }

    /** Heads [firstHead, heads) -> [N, D] (query-head layout); with unrotate, RoPE's transpose is applied (dq). */
    private void mergeHeads(HeadTensor src, Mat dst, int firstHead, int heads, boolean unrotate, int[] cols) {
        final int hd = cfg.headDim();
        Parallel.forRows(batch * seqLen, (from, to) -> {
            for (int r = from; r < to; r++) {
                int b = r / seqLen, t = r % seqLen;
                for (int j = firstHead; j < heads; j++) {
                    if (unrotate) {
                        rope.rotate(src.buf, src.index(j, b, t), dst.buf, dst.index(r, cols[j]), t, true);
                    } else {
                        src.buf.copyTo(src.index(j, b, t), dst.buf, dst.index(r, cols[j]), hd);
                    }
                }
            }
        });
    }

    /**
     * k/v gradients of heads [firstHead, heads) -> dk/dv; for CoLM-Air the tiled heads sum into their kv head (whose
     * projection belongs to chain 0, so only a model with chain 0 trainable, firstHead = 0, uses the sum).
     */
    private void mergeKv(HeadTensor src, Mat dst, int firstHead, int heads, boolean unrotate, int[] cols) {
        if (!cfg.isAir()) {
            mergeHeads(src, dst, firstHead, heads, unrotate, cols);
            return;
        }
        final int hd = cfg.headDim();
        Parallel.forRows(batch * seqLen, (from, to) -> {
            for (int r = from; r < to; r++) {
                int b = r / seqLen, t = r % seqLen;
                dst.buf.fill(dst.index(r, 0), cfg.kvWidth(), 0.0);
                for (int j = firstHead; j < heads; j++) {
                    int so = src.index(j, b, t), dOff = dst.index(r, cols[j]);
                    if (unrotate) {
                        rope.rotateAdd(src.buf, so, dst.buf, dOff, t, true);
                    } else {
                        for (int c = 0; c < hd; c++) {
                            dst.buf.set(dOff + c, dst.buf.get(dOff + c) + src.buf.get(so + c));
                        }
                    }
                }
            }
        });
    }

    /** probs = softmax(scores / sqrt(hd)) over keys <= query position; masked entries are exact zeros. */
    private void causalSoftmax(int heads) {
        final double scale = 1.0 / Math.sqrt(cfg.headDim());
        final Buf p = probs.buf;
        final int t = seqLen;
        Parallel.forRows(heads * batch * t, (from, to) -> {
            for (int row = from; row < to; row++) {
                int pos = row % t, o = row * t;
                if (p instanceof Buf.F32 f) {
                    if (VectorKernels.fits(t)) {
                        VectorKernels.causalSoftmaxRow(f.bytes(), o, pos + 1, t, (float) scale);
                        continue;
                    }
                    float sc = (float) scale;
                    float shift = sc * VectorKernels.max(f.bytes(), o, pos + 1);
                    double sum = VectorKernels.sumExp(f.bytes(), o, pos + 1, sc, shift);
                    VectorKernels.expInPlace(f.bytes(), o, pos + 1, sc, shift, (float) (1.0 / sum));
                    VectorKernels.fill(f.bytes(), o + pos + 1, t - pos - 1, 0f);
                    continue;
                }
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j <= pos; j++) {
                    max = Math.max(max, p.get(o + j) * scale);
                }
                double sum = 0;
                for (int j = 0; j <= pos; j++) {
                    double e = Math.exp(p.get(o + j) * scale - max);
                    p.set(o + j, e);
                    sum += e;
                }
                double inv = 1.0 / sum;
                for (int j = 0; j <= pos; j++) {
                    p.set(o + j, p.get(o + j) * inv);
                }
                for (int j = pos + 1; j < t; j++) {
                    p.set(o + j, 0.0);
                }
            }
        });
    }

    /** dP -> dScores in place for heads [firstHead, heads): dS = P * (dP - sum(P * dP)) / sqrt(hd), zero above the diagonal. */
    private void softmaxBackward(int firstHead, int heads) {
        final double scale = 1.0 / Math.sqrt(cfg.headDim());
        final Buf p = probs.buf, d = s.dP.buf;
        final int t = seqLen, firstRow = firstHead * batch * t;
        Parallel.forRows((heads - firstHead) * batch * t, (lo, hi) -> {
            for (int row = firstRow + lo; row < firstRow + hi; row++) {
                int pos = row % t, o = row * t;
                if (p instanceof Buf.F32 fp && d instanceof Buf.F32 fd) {
                    float dot = (float) VectorKernels.dot(fp.bytes(), o, fd.bytes(), o, pos + 1);
                    VectorKernels.softmaxBackwardRow(fp.bytes(), o, fd.bytes(), o, pos + 1, dot, (float) scale);
                    VectorKernels.fill(fd.bytes(), o + pos + 1, t - pos - 1, 0f);
                    continue;
                }
                double dot = 0;
                for (int j = 0; j <= pos; j++) {
                    dot += p.get(o + j) * d.get(o + j);
                }
                for (int j = 0; j <= pos; j++) {
                    d.set(o + j, p.get(o + j) * (d.get(o + j) - dot) * scale);
                }
                for (int j = pos + 1; j < t; j++) {
                    d.set(o + j, 0.0);
                }
            }
        });
    }
}
