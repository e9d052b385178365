package io.catena.model.kernel;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Causal attention of one (head, sequence) pair in square tiles with an online softmax (FlashAttention-2's
 * loops on a CPU): the [T, T] scores never exist, only one [tile, tile] block of them per thread. The forward
 * keeps a running max and sum per query row and saves each row's log-sum-exp; the backward recomputes a
 * block's probabilities from it (P = exp(scale * s - lse)) and uses delta_i = dO_i . O_i for the softmax
 * gradient, so nothing of size T^2 is saved between the two. Tiles above the diagonal are skipped.
 *
 * <p>Float32 with the Vector API, on heap copies of the pair's q, k, v (padded with zeros to whole tiles and
 * whole vectors, so the micro-kernels have no remainder code; padded keys lie above every real query's diagonal
 * and padded queries have zero q and dO, so padding never reaches a real result). Scores are kept unscaled
 * and the scale enters the exponent, as in the materialized path. Only exactly rounded operations, a fixed
 * loop order and polynomial exps ({@link #expNonPositive}, {@link VectorKernels#expScalar}) are used: the same
 * inputs give the same bits in every JVM, whichever thread runs a pair. Memory per thread: the pair's q, k, k^T,
 * v, v^T, dO and dq (7 x T x hd floats, 1.8 MB at T 1024, hd 64) and two [tile, tile] blocks.
 * {@link FlashAttentionScalar} is the same algorithm in float64 (gradient checks).
 */
public final class FlashAttention {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();

    /** Query rows and key columns per tile (-Dcatena.attention.tile, a multiple of 64). */
    public static final int TILE = tileSize(Integer.getInteger("catena.attention.tile", 64));

    private FlashAttention() {
    }

    static int tileSize(int t) {
        if (t < 64 || t % 64 != 0 || t % (4 * L) != 0) {
            throw new IllegalArgumentException("catena.attention.tile must be a positive multiple of 64 (and of "
                    + 4 * L + " floats), got " + t);
        }
        return t;
    }

    /** Per-thread heap copies and tile buffers; grown on demand, reused by every layer and step. */
    public static final class Workspace {
        private int tp;  // T rounded up to whole tiles
        private int hdp; // head dim rounded up to two vectors
        private float[] q = new float[0], k = q, kt = q, v = q, vt = q, dO = q, dq = q;
        private float[] s = q, dp = q, accA = q, accB = q;
        private float[] rowMax = q, lse = q, delta = q;
        private float[] rowSum = q; // per row L lane sums, reduced once when the row is done

        private void shape(int t, int hd) {
            tp = (t + TILE - 1) / TILE * TILE;
            hdp = (hd + 2 * L - 1) / (2 * L) * (2 * L);
            int n = tp * hdp;
            if (q.length < n) {
                q = new float[n];
                k = new float[n];
                kt = new float[n];
                v = new float[n];
                vt = new float[n];
                dO = new float[n];
                dq = new float[n];
            }
            if (lse.length < tp) {
                lse = new float[tp];
                delta = new float[tp];
            }
            if (s.length < TILE * TILE || accA.length < TILE * hdp) {
                s = new float[TILE * TILE];
                dp = new float[TILE * TILE];
                accA = new float[TILE * hdp];
                accB = new float[TILE * hdp];
                rowMax = new float[TILE];
                rowSum = new float[TILE * L];
            }
        }
    }

    private static final ThreadLocal<Workspace> WORKSPACE = ThreadLocal.withInitial(Workspace::new);

    public static Workspace workspace() {
        return WORKSPACE.get();
    }

    /** Query tiles of a sequence of length t (units of work of {@link #forwardTiles}). */
    public static int tiles(int t) {
        return (t + TILE - 1) / TILE;
    }

    /**
     * Copies the pair's q, k^T and v ([t, hd] each at float offset off) into ws for {@link #forwardTiles}; a
     * thread calls it once per pair it works on.
     */
    public static void loadForward(Workspace ws, ByteBuffer q, ByteBuffer k, ByteBuffer v, int off, int t, int hd) {
        ws.shape(t, hd);
        copyRows(q, off, t, hd, ws.q, ws.tp, ws.hdp);
        copyRows(k, off, t, hd, ws.k, ws.tp, ws.hdp);
        transpose(ws.k, ws.tp, ws.hdp, ws.kt);
        copyRows(v, off, t, hd, ws.v, ws.tp, ws.hdp);
    }

    /**
     * Output rows and log-sum-exp of query tiles [fromTile, toTile) of the loaded pair: out[i] = softmax_causal(
     * scale * q_i K^T) V at float offset outOff + i * hd, lse[lseOff + i] = log sum_j exp(scale * q_i . k_j).
     */
    public static void forwardTiles(Workspace ws, int fromTile, int toTile, int t, int hd, float scale,
                                    ByteBuffer out, int outOff, ByteBuffer lse, int lseOff) {
        final int tile = TILE, hdp = ws.hdp;
        float[] s = ws.s, acc = ws.accA, m = ws.rowMax, l = ws.rowSum;
        for (int ib = fromTile; ib < toTile; ib++) {
            int i0 = ib * tile, rows = Math.min(tile, t - i0), rowsUsed = (rows + 3) & ~3;
            java.util.Arrays.fill(acc, 0, tile * hdp, 0f);
            for (int jb = 0; jb <= ib; jb++) {
                int j0 = jb * tile;
                boolean diagonal = jb == ib;
                scores(ws.q, i0, ws.kt, ws.tp, j0, hdp, s, rowsUsed, diagonal);
                for (int r = 0; r < rowsUsed; r++) {
                    int n = diagonal ? r + 1 : tile, end = rowEnd(r, diagonal);
                    float mOld = jb == 0 ? Float.NEGATIVE_INFINITY : m[r];
                    float mNew = Math.max(mOld, rowMax(s, r * tile, n) * scale);
                    // what earlier key tiles added for this row is rescaled to the new max
                    float corr = jb == 0 ? 0f : mNew == mOld ? 1f : VectorKernels.expScalar(mOld - mNew);
                    probabilitiesRow(s, r * tile, n, end, scale, mNew, l, r * L, corr);
                    if (corr != 1f && jb > 0) {
                        scaleRow(acc, r * hdp, hdp, corr);
                    }
                    m[r] = mNew;
                }
                accumulateRows(s, tile, rowsUsed, diagonal, ws.v, j0, hdp, acc, 0);
            }
            for (int r = 0; r < rows; r++) {
                double lanes = 0;
                for (int x = 0; x < L; x++) { // lane order, as VectorKernels.sum (which would box a vector argument here)
                    lanes += l[r * L + x];
                }
                float sum = (float) lanes;
                float inv = 1f / sum;
                storeRow(acc, r * hdp, inv, out, outOff + (i0 + r) * hd, hd);
                lse.putFloat((lseOff + i0 + r) * 4, m[r] + (float) StrictMath.log(sum));
            }
        }
    }

    /**
     * Gradients of one pair: dq, dk, dv ([t, hd] at float offset off of their buffers) = d attention given dO
     * (at off too), from q, k, v, the forward's lse, and its output rows o (row i at oOff + i * oStride). Outer
     * loop over key tiles, so a key tile's dk and dv stay in tile-sized accumulators; dq accumulates over them.
     */
    public static void backward(Workspace ws, ByteBuffer q, ByteBuffer k, ByteBuffer v, ByteBuffer dO, int off, int t,
                                int hd, float scale, ByteBuffer lse, int lseOff, ByteBuffer o, int oOff, int oStride,
                                ByteBuffer dq, ByteBuffer dk, ByteBuffer dv) {
        ws.shape(t, hd);
        final int tile = TILE, hdp = ws.hdp, tp = ws.tp;
        copyRows(q, off, t, hd, ws.q, tp, hdp);
        copyRows(k, off, t, hd, ws.k, tp, hdp);
        transpose(ws.k, tp, hdp, ws.kt);
        copyRows(v, off, t, hd, ws.v, tp, hdp);
        transpose(ws.v, tp, hdp, ws.vt);
        copyRows(dO, off, t, hd, ws.dO, tp, hdp);
        java.util.Arrays.fill(ws.dq, 0, tp * hdp, 0f);
        for (int i = 0; i < tp; i++) {
            // padded rows: lse 0 keeps their (unused) probabilities finite; zero q and dO make their terms zero
            ws.lse[i] = i < t ? lse.getFloat((lseOff + i) * 4) : 0f;
            ws.delta[i] = i < t ? (float) VectorKernels.dot(dO, off + i * hd, o, oOff + i * oStride, hd) : 0f;
        }
        float[] p = ws.s, ds = ws.dp, dkAcc = ws.accA, dvAcc = ws.accB;
        int nb = tp / tile;
        for (int jb = 0; jb < nb; jb++) {
            int j0 = jb * tile;
            java.util.Arrays.fill(dkAcc, 0, tile * hdp, 0f);
            java.util.Arrays.fill(dvAcc, 0, tile * hdp, 0f);
            for (int ib = jb; ib < nb; ib++) {
                int i0 = ib * tile, rowsUsed = (Math.min(tile, t - i0) + 3) & ~3;
                boolean diagonal = ib == jb;
                scores(ws.q, i0, ws.kt, tp, j0, hdp, p, rowsUsed, diagonal);
                scores(ws.dO, i0, ws.vt, tp, j0, hdp, ds, rowsUsed, diagonal);
                for (int r = 0; r < rowsUsed; r++) {
                    gradientRow(p, ds, r * tile, diagonal ? r + 1 : tile, rowEnd(r, diagonal), scale, ws.lse[i0 + r],
                            ws.delta[i0 + r]);
                }
                int keysUsed = diagonal ? rowsUsed : tile; // keys past the last real query are masked for all rows
                accumulateColumns(p, tile, rowsUsed, keysUsed, diagonal, ws.dO, i0, hdp, dvAcc);
                accumulateColumns(ds, tile, rowsUsed, keysUsed, diagonal, ws.q, i0, hdp, dkAcc);
                accumulateRows(ds, tile, rowsUsed, diagonal, ws.k, j0, hdp, ws.dq, i0);
            }
            int keys = Math.min(tile, t - j0);
            for (int c = 0; c < keys; c++) {
                storeRow(dkAcc, c * hdp, 1f, dk, off + (j0 + c) * hd, hd);
                storeRow(dvAcc, c * hdp, 1f, dv, off + (j0 + c) * hd, hd);
            }
        }
        for (int i = 0; i < t; i++) {
            storeRow(ws.dq, i * hdp, 1f, dq, off + i * hd, hd);
        }
    }

    /** Columns of row r that a tile's kernels compute and read: all, or on the diagonal up to r's 4-row group. */
    private static int rowEnd(int r, boolean diagonal) {
        return diagonal ? Math.min(TILE, ((r & ~3) + 4 + 4 * L - 1) / (4 * L) * (4 * L)) : TILE;
    }

    // ---- copies in and out (padding zeroed every time: the arrays are shared by pairs of other lengths) ----

    private static void copyRows(ByteBuffer src, int off, int t, int hd, float[] dst, int tp, int hdp) {
        java.nio.FloatBuffer f = src.asFloatBuffer();
        if (hd == hdp) {
            f.get(off, dst, 0, t * hd);
        } else {
            for (int i = 0; i < t; i++) {
                f.get(off + i * hd, dst, i * hdp, hd);
                java.util.Arrays.fill(dst, i * hdp + hd, (i + 1) * hdp, 0f);
            }
        }
        java.util.Arrays.fill(dst, t * hdp, tp * hdp, 0f);
    }

    /** dst[c * tp + j] = src[j * hdp + c]. */
    private static void transpose(float[] src, int tp, int hdp, float[] dst) {
        for (int j = 0; j < tp; j++) {
            int row = j * hdp;
            for (int c = 0; c < hdp; c++) {
                dst[c * tp + j] = src[row + c];
            }
        }
    }

    /** dst[dOff .. dOff + hd) = acc[ao ..] * mul. */
    private static void storeRow(float[] acc, int ao, float mul, ByteBuffer dst, int dOff, int hd) {
        int c = 0;
        for (; c + L <= hd; c += L) {
            FloatVector.fromArray(S, acc, ao + c).mul(mul).intoByteBuffer(dst, (dOff + c) * 4, NATIVE);
        }
        for (; c < hd; c++) {
            dst.putFloat((dOff + c) * 4, acc[ao + c] * mul);
        }
    }

    // ---- row operations on a tile ----

    private static float rowMax(float[] s, int o, int n) {
        FloatVector mx = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
        int c = 0;
        for (; c + L <= n; c += L) {
            mx = mx.max(FloatVector.fromArray(S, s, o + c));
        }
        if (c < n) {
            // c + L stays inside the row's computed columns: only the lanes past n are masked keys
            mx = mx.max(FloatVector.fromArray(S, s, o + c).blend(Float.NEGATIVE_INFINITY, S.indexInRange(c, n).not()));
        }
        return mx.reduceLanes(VectorOperators.MAX);
    }

    /**
     * s[o + c] = exp(scale * s[o + c] - shift) for c < n and exactly 0 for c in [n, end) (masked keys), and the
     * row's running lane sums sums[so .. so + L) = corr * sums + these values (corr 0: the row's first tile;
     * reduced once per row, in a fixed order). Nothing vector-typed crosses the call: C2 boxes vectors returned from a method it did not inline.
     */
    private static void probabilitiesRow(float[] s, int o, int n, int end, float scale, float shift, float[] sums, int so,
                                         float corr) {
        FloatVector acc = corr == 0f ? FloatVector.zero(S) : FloatVector.fromArray(S, sums, so).mul(corr);
        for (int c = 0; c < end; c += L) {
            FloatVector e = FloatVector.zero(S);
            if (c < n) {
                e = expNonPositive(FloatVector.fromArray(S, s, o + c).fma(scale, -shift));
                if (c + L > n) {
                    e = FloatVector.zero(S).blend(e, S.indexInRange(c, n));
                }
            }
            e.intoArray(s, o + c);
            acc = acc.add(e);
        }
        acc.intoArray(sums, so);
    }

    /**
     * Backward, one row of a tile in one pass: p = exp(scale * s - lse) (0 for masked keys c >= n), and the score
     * gradient ds = p * (dp - delta) * scale in place of dp, over [0, end).
     */
    private static void gradientRow(float[] p, float[] ds, int o, int n, int end, float scale, float lse, float delta) {
        for (int c = 0; c < end; c += L) {
            FloatVector e = FloatVector.zero(S);
            if (c < n) {
                e = expNonPositive(FloatVector.fromArray(S, p, o + c).fma(scale, -lse));
                if (c + L > n) {
                    e = FloatVector.zero(S).blend(e, S.indexInRange(c, n));
                }
            }
            e.intoArray(p, o + c);
            e.mul(FloatVector.fromArray(S, ds, o + c).sub(delta)).mul(scale).intoArray(ds, o + c);
        }
    }

    private static final float ROUND_MAGIC = 12582912f; // 1.5 * 2^23: adding it rounds to an integer

    /**
     * e^x for the x <= ~0 of probabilities: {@link VectorKernels#exp}'s Cody-Waite reduction and Cephes polynomial
     * (same accuracy, ~1 ulp) with fewer operations, since no input can overflow: n = round(x log2 e) in one fma
     * with the 1.5 * 2^23 magic number (VectorKernels rounds floor(x log2 e + 1/2): equal up to ties). Exactly
     * rounded operations only, so every JVM tier gives the same bits. Below -87.3 it returns ~1e-38, not 0:
     * masked keys are zeroed explicitly by the callers.
     */
    static FloatVector expNonPositive(FloatVector x) {
        x = x.max(-87.33654f);
        FloatVector n = x.fma(1.44269504088896341f, ROUND_MAGIC).sub(ROUND_MAGIC);
        FloatVector r = n.fma(FloatVector.broadcast(S, -0.693359375f), x).add(n.mul(2.12194440e-4f));
        FloatVector y = r.fma(FloatVector.broadcast(S, 1.9875691500e-4f), FloatVector.broadcast(S, 1.3981999507e-3f));
        y = y.fma(r, FloatVector.broadcast(S, 8.3334519073e-3f));
        y = y.fma(r, FloatVector.broadcast(S, 4.1665795894e-2f));
        y = y.fma(r, FloatVector.broadcast(S, 1.6666665459e-1f));
        y = y.fma(r, FloatVector.broadcast(S, 5.0000001201e-1f));
        y = y.fma(r.mul(r), r).add(1f);
        // 2^n: n + 127 sits in the low mantissa bits of n + 127 + 1.5 * 2^23; shift it into the exponent field
        return y.mul(n.add(ROUND_MAGIC + 127f).reinterpretAsInts().lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats());
    }

    private static void scaleRow(float[] a, int o, int n, float mul) {
        for (int c = 0; c < n; c += L) {
            FloatVector.fromArray(S, a, o + c).mul(mul).intoArray(a, o + c);
        }
    }

    // ---- tile products (register-blocked: four rows share every vector load) ----

    /**
     * s[r * TILE + c] = a_{i0 + r} . b_{j0 + c} for r < rows (a multiple of 4), c < rowEnd(r): a is [tp, hdp]
     * row-major, bt is b transposed ([hdp, tp]).
     */
    private static void scores(float[] a, int i0, float[] bt, int tp, int j0, int hdp, float[] s, int rows, boolean diagonal) {
        for (int r = 0; r < rows; r += 4) {
            int cols = rowEnd(r, diagonal);
            for (int c = 0; c < cols; c += 4 * L) {
                scoreSlab(a, (i0 + r) * hdp, hdp, bt, tp, j0 + c, s, r * TILE + c);
            }
        }
    }

    /** Four rows against 4L keys: sixteen accumulators over the head dimension. */
    private static void scoreSlab(float[] a, int a0, int hdp, float[] bt, int tp, int j, float[] s, int so) {
        FloatVector c00 = FloatVector.zero(S), c01 = c00, c02 = c00, c03 = c00;
        FloatVector c10 = c00, c11 = c00, c12 = c00, c13 = c00;
        FloatVector c20 = c00, c21 = c00, c22 = c00, c23 = c00;
        FloatVector c30 = c00, c31 = c00, c32 = c00, c33 = c00;
        int a1 = a0 + hdp, a2 = a1 + hdp, a3 = a2 + hdp;
        for (int c = 0; c < hdp; c++) {
            int kb = c * tp + j;
            FloatVector v0 = FloatVector.fromArray(S, bt, kb);
            FloatVector v1 = FloatVector.fromArray(S, bt, kb + L);
            FloatVector v2 = FloatVector.fromArray(S, bt, kb + 2 * L);
            FloatVector v3 = FloatVector.fromArray(S, bt, kb + 3 * L);
            FloatVector x = FloatVector.broadcast(S, a[a0 + c]);
            c00 = v0.fma(x, c00);
            c01 = v1.fma(x, c01);
            c02 = v2.fma(x, c02);
            c03 = v3.fma(x, c03);
            x = FloatVector.broadcast(S, a[a1 + c]);
            c10 = v0.fma(x, c10);
            c11 = v1.fma(x, c11);
            c12 = v2.fma(x, c12);
            c13 = v3.fma(x, c13);
            x = FloatVector.broadcast(S, a[a2 + c]);
            c20 = v0.fma(x, c20);
            c21 = v1.fma(x, c21);
            c22 = v2.fma(x, c22);
            c23 = v3.fma(x, c23);
            x = FloatVector.broadcast(S, a[a3 + c]);
            c30 = v0.fma(x, c30);
            c31 = v1.fma(x, c31);
            c32 = v2.fma(x, c32);
            c33 = v3.fma(x, c33);
        }
        store4(s, so, c00, c01, c02, c03);
        store4(s, so + TILE, c10, c11, c12, c13);
        store4(s, so + 2 * TILE, c20, c21, c22, c23);
        store4(s, so + 3 * TILE, c30, c31, c32, c33);
    }

    private static void store4(float[] s, int o, FloatVector x0, FloatVector x1, FloatVector x2, FloatVector x3) {
        x0.intoArray(s, o);
        x1.intoArray(s, o + L);
        x2.intoArray(s, o + 2 * L);
        x3.intoArray(s, o + 3 * L);
    }

    /**
     * out[outRow0 + r] += sum_c w[r * TILE + c] * b[bRow0 + c] for r < rows; on the diagonal c stops at r's
     * 4-row group (w is zero past each row's diagonal). Rows of b and out are hdp floats: P V and dS K.
     */
    private static void accumulateRows(float[] w, int tile, int rows, boolean diagonal, float[] b, int bRow0, int hdp,
                                       float[] out, int outRow0) {
        for (int r = 0; r < rows; r += 4) {
            int cEnd = diagonal ? r + 4 : tile;
            int w0 = r * tile;
            int q = 0;
            for (; q + 4 * L <= hdp; q += 4 * L) {
                slab4x4(w, w0, w0 + tile, w0 + 2 * tile, w0 + 3 * tile, 1, b, bRow0 * hdp + q, hdp, 0, cEnd, out,
                        (outRow0 + r) * hdp + q, hdp);
            }
            for (; q < hdp; q += 2 * L) {
                slab4x2(w, w0, w0 + tile, w0 + 2 * tile, w0 + 3 * tile, 1, b, bRow0 * hdp + q, hdp, 0, cEnd, out,
                        (outRow0 + r) * hdp + q, hdp);
            }
        }
    }

    /**
     * out[c] += sum_r w[r * TILE + c] * b[bRow0 + r] for c < cols, r < rows; on the diagonal r starts at c's
     * 4-column group (w is zero above the diagonal). out is tile-local: P^T dO and dS^T Q.
     */
    private static void accumulateColumns(float[] w, int tile, int rows, int cols, boolean diagonal, float[] b, int bRow0,
                                          int hdp, float[] out) {
        for (int c = 0; c < cols; c += 4) {
            int rStart = diagonal ? c : 0;
            int w0 = rStart * tile + c;
            int q = 0;
            for (; q + 4 * L <= hdp; q += 4 * L) {
                slab4x4(w, w0, w0 + 1, w0 + 2, w0 + 3, tile, b, (bRow0 + rStart) * hdp + q, hdp, rStart, rows, out,
                        c * hdp + q, hdp);
            }
            for (; q < hdp; q += 2 * L) {
                slab4x2(w, w0, w0 + 1, w0 + 2, w0 + 3, tile, b, (bRow0 + rStart) * hdp + q, hdp, rStart, rows, out,
                        c * hdp + q, hdp);
            }
        }
    }

    /** {@link #slab4x2} with 4L columns: sixteen accumulators, half a load per FMA instead of three quarters. */
    private static void slab4x4(float[] w, int p0, int p1, int p2, int p3, int coefStride, float[] b, int b0, int bStride,
                                int from, int to, float[] out, int o, int outStride) {
        int o1 = o + outStride, o2 = o1 + outStride, o3 = o2 + outStride;
        FloatVector a00 = FloatVector.fromArray(S, out, o), a01 = FloatVector.fromArray(S, out, o + L);
        FloatVector a02 = FloatVector.fromArray(S, out, o + 2 * L), a03 = FloatVector.fromArray(S, out, o + 3 * L);
        FloatVector a10 = FloatVector.fromArray(S, out, o1), a11 = FloatVector.fromArray(S, out, o1 + L);
        FloatVector a12 = FloatVector.fromArray(S, out, o1 + 2 * L), a13 = FloatVector.fromArray(S, out, o1 + 3 * L);
        FloatVector a20 = FloatVector.fromArray(S, out, o2), a21 = FloatVector.fromArray(S, out, o2 + L);
        FloatVector a22 = FloatVector.fromArray(S, out, o2 + 2 * L), a23 = FloatVector.fromArray(S, out, o2 + 3 * L);
        FloatVector a30 = FloatVector.fromArray(S, out, o3), a31 = FloatVector.fromArray(S, out, o3 + L);
        FloatVector a32 = FloatVector.fromArray(S, out, o3 + 2 * L), a33 = FloatVector.fromArray(S, out, o3 + 3 * L);
        for (int s = from; s < to; s++) {
            FloatVector v0 = FloatVector.fromArray(S, b, b0);
            FloatVector v1 = FloatVector.fromArray(S, b, b0 + L);
            FloatVector v2 = FloatVector.fromArray(S, b, b0 + 2 * L);
            FloatVector v3 = FloatVector.fromArray(S, b, b0 + 3 * L);
            FloatVector c = FloatVector.broadcast(S, w[p0]);
            a00 = v0.fma(c, a00);
            a01 = v1.fma(c, a01);
            a02 = v2.fma(c, a02);
            a03 = v3.fma(c, a03);
            c = FloatVector.broadcast(S, w[p1]);
            a10 = v0.fma(c, a10);
            a11 = v1.fma(c, a11);
            a12 = v2.fma(c, a12);
            a13 = v3.fma(c, a13);
            c = FloatVector.broadcast(S, w[p2]);
            a20 = v0.fma(c, a20);
            a21 = v1.fma(c, a21);
            a22 = v2.fma(c, a22);
            a23 = v3.fma(c, a23);
            c = FloatVector.broadcast(S, w[p3]);
            a30 = v0.fma(c, a30);
            a31 = v1.fma(c, a31);
            a32 = v2.fma(c, a32);
            a33 = v3.fma(c, a33);
            b0 += bStride;
            p0 += coefStride;
            p1 += coefStride;
            p2 += coefStride;
            p3 += coefStride;
        }
        store4(out, o, a00, a01, a02, a03);
        store4(out, o1, a10, a11, a12, a13);
        store4(out, o2, a20, a21, a22, a23);
        store4(out, o3, a30, a31, a32, a33);
    }

    /**
     * Four output rows x 2L columns: out_k[0 .. 2L) += sum_{s in [from, to)} w[p_k + (s - from) * coefStride] *
     * b[b0 + (s - from) * bStride ..]. Eight accumulators: sixteen made C2 box vectors (seen in JFR).
     */
    private static void slab4x2(float[] w, int p0, int p1, int p2, int p3, int coefStride, float[] b, int b0, int bStride,
                                int from, int to, float[] out, int o, int outStride) {
        int o1 = o + outStride, o2 = o1 + outStride, o3 = o2 + outStride;
        FloatVector a00 = FloatVector.fromArray(S, out, o), a01 = FloatVector.fromArray(S, out, o + L);
        FloatVector a10 = FloatVector.fromArray(S, out, o1), a11 = FloatVector.fromArray(S, out, o1 + L);
        FloatVector a20 = FloatVector.fromArray(S, out, o2), a21 = FloatVector.fromArray(S, out, o2 + L);
        FloatVector a30 = FloatVector.fromArray(S, out, o3), a31 = FloatVector.fromArray(S, out, o3 + L);
        for (int s = from; s < to; s++) {
            FloatVector v0 = FloatVector.fromArray(S, b, b0);
            FloatVector v1 = FloatVector.fromArray(S, b, b0 + L);
            FloatVector c = FloatVector.broadcast(S, w[p0]);
            a00 = v0.fma(c, a00);
            a01 = v1.fma(c, a01);
            c = FloatVector.broadcast(S, w[p1]);
            a10 = v0.fma(c, a10);
            a11 = v1.fma(c, a11);
            c = FloatVector.broadcast(S, w[p2]);
            a20 = v0.fma(c, a20);
            a21 = v1.fma(c, a21);
            c = FloatVector.broadcast(S, w[p3]);
            a30 = v0.fma(c, a30);
            a31 = v1.fma(c, a31);
            b0 += bStride;
            p0 += coefStride;
            p1 += coefStride;
            p2 += coefStride;
            p3 += coefStride;
        }
        a00.intoArray(out, o);
        a01.intoArray(out, o + L);
        a10.intoArray(out, o1);
        a11.intoArray(out, o1 + L);
        a20.intoArray(out, o2);
        a21.intoArray(out, o2 + L);
        a30.intoArray(out, o3);
        a31.intoArray(out, o3 + L);
    }
}
