package io.catena.model.kernel;

import com.sun.jna.Native;
import com.sun.jna.Pointer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The causal attention core of one (head, sequence) pair under {@code precision = bf16}: its five products run as
 * oneDNN bf16 GEMMs ({@link Dnnl#gemmBf16}, float32 accumulation), blocks of {@link #BLOCK} query rows against every
 * key up to the block's diagonal. Softmax, its statistics and the softmax gradient stay float32.
 *
 * <p>Forward, per query block [i0, i0 + rows), n = i0 + rows keys: S = Q_blk K^T (float32, [rows, n]); per row the
 * exact causal softmax (the whole row is in memory: no online rescaling), lse_i = scale max + log sum exp(scale s -
 * scale max), P = exp(scale s - scale max) / sum rounded to bf16 (masked keys exactly 0); O_blk = P V. Backward,
 * blocks from the last to the first: S and dP = dO_blk V^T recomputed, P = exp(scale s - lse), dS = P (dP - delta)
 * scale with delta_i = dO_i . O_i (float32), then dV += P^T dO_blk, dK += dS^T Q_blk, dQ_blk = dS K as bf16 GEMMs
 * (the last block covers every key, so it initializes dK and dV). q, k, v and dO are rounded to bf16 once per pair.
 *
 * <p>Memory per thread: the pair's bf16 q, k, v, dO (4 x T x hd x 2 bytes) and, per block, two float32 and two bf16
 * [BLOCK, T] buffers (1.5 MB at T 2048, BLOCK 128): O(BLOCK x T), never T^2. Deterministic: a pair's work is a
 * fixed sequence of single-threaded library calls and exactly rounded vector operations on fixed shapes, so the
 * bits do not depend on which thread runs it; the diagonal block's masked products are computed and discarded
 * (BLOCK / 2T of the work). {@link FlashAttention} stays the float32 core.
 */
public final class Bf16Attention {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final VectorSpecies<Short> SH = VectorSpecies.of(short.class, VectorShape.forBitSize(L * 16));
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();

    /** Query rows per block (-Dcatena.attention.bf16.block). */
    public static final int BLOCK = Integer.getInteger("catena.attention.bf16.block", 128);

    /** -Dcatena.attention.bf16=false keeps the float32 tiled core under precision = bf16 (the GEMMs alone in bf16). */
    public static final boolean ENABLED = !"false".equals(System.getProperty("catena.attention.bf16"));

    private Bf16Attention() {
    }

    /**
     * Shortest sequence whose core runs in bf16 (-Dcatena.attention.bf16.minSeq): a fixed rule of the shape, so every
     * process computes the same floats. Measured (benchmarks/RESULTS.md, "bf16"): at T 128 (the reference model, one
     * block per pair, 64 x 7 small library calls per layer) the bf16 core did not win (37 against the float32 tiled
     * core's 23 ms/step in one profile; a paired A/B of whole steps within noise); from T 1024 up one pair runs
     * 2.4-2.7x faster than in the float32 core.
     */
    public static final int MIN_SEQ = Integer.getInteger("catena.attention.bf16.minSeq", 512);

    private static volatile int minSeq = MIN_SEQ;

    /** Tests only: the bf16 core from length t (1: always), so model-level checks cover it at test sizes; MIN_SEQ restores. */
    public static void minSeqForTests(int t) {
        minSeq = t;
    }

    /** Whether the attention core of sequences of length t runs here in bf16: precision bf16, t >= {@link #MIN_SEQ}, not switched off. */
    public static boolean applies(int t) {
        return ENABLED && t >= minSeq && Gemm.precision() == Gemm.Precision.BF16;
    }

    /** Query blocks of a sequence of length t (units of work of {@link #forward}). */
    public static int blocks(int t) {
        return (t + BLOCK - 1) / BLOCK;
    }

    /** A growable direct buffer and its native address. */
    private static final class Direct {
        ByteBuffer bytes = ByteBuffer.allocateDirect(0);
        long address;

        void ensure(long n) {
            if (bytes.capacity() < n) {
                if (n > Integer.MAX_VALUE) {
                    throw new IllegalArgumentException("attention scratch of " + n + " bytes is too large");
                }
                bytes = ByteBuffer.allocateDirect((int) n).order(NATIVE);
                address = address(bytes);
            }
        }
    }

    static long address(ByteBuffer direct) {
        return Pointer.nativeValue(Native.getDirectBufferPointer(direct));
    }

    /** Per-thread buffers, grown on demand and reused by every layer and step. */
    public static final class Workspace {
        private final Direct q = new Direct(), k = new Direct(), v = new Direct(), dO = new Direct();
        private final Direct s = new Direct(), dp = new Direct(), p = new Direct(), ds = new Direct();
        private float[] lse = new float[0], delta = lse, lanes = new float[L];

        private void shape(int t, int hd) {
            long pair = 2L * t * hd, block = (long) Math.min(BLOCK, t) * t;
            q.ensure(pair);
            k.ensure(pair);
            v.ensure(pair);
            dO.ensure(pair);
            s.ensure(4 * block);
            dp.ensure(4 * block);
            p.ensure(2 * block);
            ds.ensure(2 * block);
            if (lse.length < t) {
                lse = new float[t];
                delta = new float[t];
            }
        }
    }

    private static final ThreadLocal<Workspace> WORKSPACE = ThreadLocal.withInitial(Workspace::new);

    public static Workspace workspace() {
        return WORKSPACE.get();
    }

    /**
     * Output rows and log-sum-exp of query blocks [fromBlock, toBlock) of the pair at float offset off of q, k, v
     * ([t, hd] each): out[i] (at off + i * hd) = softmax_causal(scale q_i K^T) V, lse[lseOff + i] = log sum_j
     * exp(scale q_i . k_j), q and k rounded to bf16 for the scores, P and v for the output.
     */
    public static void forward(Workspace ws, ByteBuffer q, ByteBuffer k, ByteBuffer v, int off, int t, int hd, float scale,
                               int fromBlock, int toBlock, ByteBuffer out, ByteBuffer lse, int lseOff) {
        ws.shape(t, hd);
        int firstRow = fromBlock * BLOCK, keys = Math.min(t, toBlock * BLOCK);
        Bf16Gemm.toBf16(q, off + firstRow * hd, ws.q.bytes, firstRow * hd, (keys - firstRow) * hd);
        Bf16Gemm.toBf16(k, off, ws.k.bytes, 0, keys * hd);
        Bf16Gemm.toBf16(v, off, ws.v.bytes, 0, keys * hd);
        long outAt = address(out) + 4L * off;
        ByteBuffer s = ws.s.bytes, p = ws.p.bytes;
        for (int ib = fromBlock; ib < toBlock; ib++) {
            int i0 = ib * BLOCK, rows = Math.min(BLOCK, t - i0), n = i0 + rows;
            Dnnl.gemmBf16(false, true, rows, n, hd, ws.q.address + 2L * i0 * hd, hd, ws.k.address, hd, 0f, ws.s.address, n);
            for (int r = 0; r < rows; r++) {
                int o = r * n, valid = i0 + r + 1;
                float shift = rowMax(s, o, valid) * scale;
                double sum = expRow(s, o, valid, n, scale, shift, ws.lanes);
                lse.putFloat((lseOff + i0 + r) * 4, shift + (float) StrictMath.log(sum));
                scaledToBf16(s, o, (float) (1.0 / sum), p, o, n);
            }
            Dnnl.gemmBf16(false, false, rows, hd, n, ws.p.address, n, ws.v.address, hd, 0f, outAt + 4L * i0 * hd, hd);
        }
    }

    /**
     * Gradients of one pair: dq, dk, dv ([t, hd] at float offset off of their buffers) given dO (at off too), from q, k,
     * v, the forward's lse and output rows o (row i at oOff + i * oStride).
     */
    public static void backward(Workspace ws, ByteBuffer q, ByteBuffer k, ByteBuffer v, ByteBuffer dO, int off, int t, int hd,
                                float scale, ByteBuffer lse, int lseOff, ByteBuffer o, int oOff, int oStride,
                                ByteBuffer dq, ByteBuffer dk, ByteBuffer dv) {
        ws.shape(t, hd);
        Bf16Gemm.toBf16(q, off, ws.q.bytes, 0, t * hd);
        Bf16Gemm.toBf16(k, off, ws.k.bytes, 0, t * hd);
        Bf16Gemm.toBf16(v, off, ws.v.bytes, 0, t * hd);
        Bf16Gemm.toBf16(dO, off, ws.dO.bytes, 0, t * hd);
        for (int i = 0; i < t; i++) {
            ws.lse[i] = lse.getFloat((lseOff + i) * 4);
            ws.delta[i] = (float) VectorKernels.dot(dO, off + i * hd, o, oOff + i * oStride, hd);
        }
        long dqAt = address(dq) + 4L * off, dkAt = address(dk) + 4L * off, dvAt = address(dv) + 4L * off;
        ByteBuffer s = ws.s.bytes, dp = ws.dp.bytes;
        int nb = blocks(t);
        for (int ib = nb - 1; ib >= 0; ib--) {
            int i0 = ib * BLOCK, rows = Math.min(BLOCK, t - i0), n = i0 + rows;
            long qBlk = ws.q.address + 2L * i0 * hd, dOBlk = ws.dO.address + 2L * i0 * hd;
            Dnnl.gemmBf16(false, true, rows, n, hd, qBlk, hd, ws.k.address, hd, 0f, ws.s.address, n);
            Dnnl.gemmBf16(false, true, rows, n, hd, dOBlk, hd, ws.v.address, hd, 0f, ws.dp.address, n);
            for (int r = 0; r < rows; r++) {
                int ro = r * n;
                gradientRow(s, dp, ro, i0 + r + 1, n, scale, ws.lse[i0 + r], ws.delta[i0 + r]);
                Bf16Gemm.toBf16(s, ro, ws.p.bytes, ro, n);
                Bf16Gemm.toBf16(dp, ro, ws.ds.bytes, ro, n);
            }
            float beta = ib == nb - 1 ? 0f : 1f; // the last block reaches every key: it initializes dK and dV
            Dnnl.gemmBf16(true, false, n, hd, rows, ws.p.address, n, dOBlk, hd, beta, dvAt, hd);
            Dnnl.gemmBf16(true, false, n, hd, rows, ws.ds.address, n, qBlk, hd, beta, dkAt, hd);
            Dnnl.gemmBf16(false, false, rows, hd, n, ws.ds.address, n, ws.k.address, hd, 0f, dqAt + 4L * i0 * hd, hd);
        }
    }

    // ---- row operations (float32; nothing vector-typed crosses a call: C2 boxes vectors of calls it does not inline) ----

    /** Max of s[o .. o + valid). */
    private static float rowMax(ByteBuffer s, int o, int valid) {
        FloatVector mx = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
        int c = 0;
        for (; c + L <= valid; c += L) {
            mx = mx.max(FloatVector.fromByteBuffer(S, s, (o + c) * 4, NATIVE));
        }
        float m = mx.reduceLanes(VectorOperators.MAX); // max is exact in any order
        for (; c < valid; c++) {
            m = Math.max(m, s.getFloat((o + c) * 4));
        }
        return m;
    }

    /**
     * s[o + c] = exp(scale s[o + c] - shift) for c < valid, exactly 0 for c in [valid, n); returns their sum (lane sums
     * added in lane order, then the tail: a fixed order).
     */
    private static double expRow(ByteBuffer s, int o, int valid, int n, float scale, float shift, float[] lanes) {
        FloatVector acc = FloatVector.zero(S);
        int c = 0;
        for (; c + L <= n; c += L) {
            // the masked exp is written out in both row loops: a helper returning a FloatVector is a call C2 may not
            // inline, and then it boxes the vector (see the note above the row operations)
            FloatVector e = FloatVector.zero(S);
            if (c < valid) {
                e = FlashAttention.expNonPositive(FloatVector.fromByteBuffer(S, s, (o + c) * 4, NATIVE).fma(scale, -shift));
                if (c + L > valid) {
                    e = FloatVector.zero(S).blend(e, S.indexInRange(c, valid));
                }
            }
            e.intoByteBuffer(s, (o + c) * 4, NATIVE);
            acc = acc.add(e);
        }
        acc.intoArray(lanes, 0);
        double sum = 0;
        for (int x = 0; x < L; x++) {
            sum += lanes[x];
        }
        for (; c < n; c++) {
            float e = c < valid ? VectorKernels.expScalar(Math.fma(s.getFloat((o + c) * 4), scale, -shift)) : 0f;
            s.putFloat((o + c) * 4, e);
            sum += e;
        }
        return sum;
    }

    /** Backward, one row: p = exp(scale s - lse) in s (0 for keys c >= valid), ds = p (dp - delta) scale in dp, over [0, n). */
    private static void gradientRow(ByteBuffer s, ByteBuffer dp, int o, int valid, int n, float scale, float lse, float delta) {
        int c = 0;
        for (; c + L <= n; c += L) {
            FloatVector e = FloatVector.zero(S);
            if (c < valid) {
                e = FlashAttention.expNonPositive(FloatVector.fromByteBuffer(S, s, (o + c) * 4, NATIVE).fma(scale, -lse));
                if (c + L > valid) {
                    e = FloatVector.zero(S).blend(e, S.indexInRange(c, valid));
                }
            }
            e.intoByteBuffer(s, (o + c) * 4, NATIVE);
            e.mul(FloatVector.fromByteBuffer(S, dp, (o + c) * 4, NATIVE).sub(delta)).mul(scale).intoByteBuffer(dp, (o + c) * 4, NATIVE);
        }
        for (; c < n; c++) {
            float e = c < valid ? VectorKernels.expScalar(Math.fma(s.getFloat((o + c) * 4), scale, -lse)) : 0f;
            s.putFloat((o + c) * 4, e);
            dp.putFloat((o + c) * 4, e * (dp.getFloat((o + c) * 4) - delta) * scale);
        }
    }

    /** dst (bf16, element offset dOff) = bf16(src[so + i] * mul) for i < n, rounded to nearest even as {@link Bf16Gemm#toBf16}. */
    private static void scaledToBf16(ByteBuffer src, int so, float mul, ByteBuffer dst, int dOff, int n) {
        int i = 0;
        for (; i + L <= n; i += L) {
            IntVector x = FloatVector.fromByteBuffer(S, src, (so + i) * 4, NATIVE).mul(mul).reinterpretAsInts();
            IntVector r = x.add(x.lanewise(VectorOperators.LSHR, 16).and(1)).add(0x7FFF).lanewise(VectorOperators.LSHR, 16);
            ((ShortVector) r.convertShape(VectorOperators.I2S, SH, 0)).intoByteBuffer(dst, (dOff + i) * 2, NATIVE);
        }
        for (; i < n; i++) {
            dst.putShort((dOff + i) * 2, Bf16Gemm.toBf16(src.getFloat((so + i) * 4) * mul));
        }
    }
}
