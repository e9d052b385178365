package io.catena.model.kernel;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Float32 causal-attention products for one (head, sequence) pair, register-blocked with the JDK
 * Vector API. ND4J's batched matmul on these small shapes (T=128, hd=64) spends most of its time in
 * per-call overhead (~36 GFLOP/s measured); these loops skip the masked upper triangle too.
 * Head dimension must be a multiple of the vector length (checked by {@link #supports}).
 * Offsets are in floats; matrices are row-major [T, hd] and [T, T].
 */
public final class AttentionKernels {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();

    private AttentionKernels() {
    }

    public static boolean supports(int headDim) {
        return headDim % L == 0;
    }

    /** bt[c * t + j] = b[j, c]: the transpose of a [t, hd] block, into a heap scratch array. */
    public static void transpose(ByteBuffer b, int bo, int t, int hd, float[] bt) {
        for (int j = 0; j < t; j++) {
            int row = (bo + j * hd) * 4;
            for (int c = 0; c < hd; c++) {
                bt[c * t + j] = b.getFloat(row + c * 4);
            }
        }
    }

    /**
     * out[i, j] = a_i . b_j for j <= i (entries above the diagonal inside a touched block get values
     * too; the causal softmax overwrites them). bt is b transposed ({@link #transpose}).
     * Four rows share every load of bt (four independent FMA chains).
     */
    public static void causalScores(ByteBuffer a, int ao, float[] bt, ByteBuffer out, int oo, int t, int hd) {
        int i = 0;
        for (; i + 4 <= t; i += 4) {
            int need = i + 4;
            int j = 0;
            for (; j < need && j + 4 * L <= t; j += 4 * L) {
                scoresSlab(a, (ao + i * hd) * 4, hd, bt, t, j, out, oo + i * t + j);
            }
            for (; j < need && j + L <= t; j += L) {
                FloatVector c0 = FloatVector.zero(S), c1 = c0, c2 = c0, c3 = c0;
                int r0 = (ao + i * hd) * 4, r1 = r0 + hd * 4, r2 = r1 + hd * 4, r3 = r2 + hd * 4;
                for (int c = 0; c < hd; c++) {
                    FloatVector k = FloatVector.fromArray(S, bt, c * t + j);
                    c0 = k.fma(FloatVector.broadcast(S, a.getFloat(r0 + c * 4)), c0);
                    c1 = k.fma(FloatVector.broadcast(S, a.getFloat(r1 + c * 4)), c1);
                    c2 = k.fma(FloatVector.broadcast(S, a.getFloat(r2 + c * 4)), c2);
                    c3 = k.fma(FloatVector.broadcast(S, a.getFloat(r3 + c * 4)), c3);
                }
                c0.intoByteBuffer(out, (oo + i * t + j) * 4, NATIVE);
                c1.intoByteBuffer(out, (oo + (i + 1) * t + j) * 4, NATIVE);
                c2.intoByteBuffer(out, (oo + (i + 2) * t + j) * 4, NATIVE);
                c3.intoByteBuffer(out, (oo + (i + 3) * t + j) * 4, NATIVE);
            }
            for (int r = i; r < need; r++) {
                scalarScores(a, ao, bt, out, oo, t, hd, r, j, r + 1);
            }
        }
        for (; i < t; i++) {
            scalarScores(a, ao, bt, out, oo, t, hd, i, 0, i + 1);
        }
    }

    private static void scalarScores(ByteBuffer a, int ao, float[] bt, ByteBuffer out, int oo, int t, int hd, int i, int from, int to) {
        for (int j = from; j < to; j++) {
            float s = 0;
            for (int c = 0; c < hd; c++) {
                s += a.getFloat((ao + i * hd + c) * 4) * bt[c * t + j];
            }
            out.putFloat((oo + i * t + j) * 4, s);
        }
    }

    /**
     * out_i = sum_{j <= i} w[i, j] b_j, w causal with exact zeros above the diagonal (so a row group
     * may run to its last row's diagonal): the attention output P V and, in backward, dQ = dS K.
     */
    public static void combineRows(ByteBuffer w, int wo, ByteBuffer b, int bo, ByteBuffer out, int oo, int t, int hd) {
        float[] bh = heapCopy(b, bo, t * hd);
        int i = 0;
        for (; i + 4 <= t; i += 4) {
            int w0 = (wo + i * t) * 4, w1 = w0 + t * 4, w2 = w1 + t * 4, w3 = w2 + t * 4;
            int q = 0;
            for (; q + 2 * L <= hd; q += 2 * L) {
                slab4x2(w, w0, w1, w2, w3, 4, bh, hd, q, 0, i + 4, out, oo + i * hd + q, hd);
            }
            for (; q < hd; q += L) {
                FloatVector c0 = FloatVector.zero(S), c1 = c0, c2 = c0, c3 = c0;
                for (int j = 0; j < i + 4; j++) {
                    FloatVector v = FloatVector.fromByteBuffer(S, b, (bo + j * hd + q) * 4, NATIVE);
                    c0 = v.fma(FloatVector.broadcast(S, w.getFloat(w0 + j * 4)), c0);
                    c1 = v.fma(FloatVector.broadcast(S, w.getFloat(w1 + j * 4)), c1);
                    c2 = v.fma(FloatVector.broadcast(S, w.getFloat(w2 + j * 4)), c2);
                    c3 = v.fma(FloatVector.broadcast(S, w.getFloat(w3 + j * 4)), c3);
                }
                c0.intoByteBuffer(out, (oo + i * hd + q) * 4, NATIVE);
                c1.intoByteBuffer(out, (oo + (i + 1) * hd + q) * 4, NATIVE);
                c2.intoByteBuffer(out, (oo + (i + 2) * hd + q) * 4, NATIVE);
                c3.intoByteBuffer(out, (oo + (i + 3) * hd + q) * 4, NATIVE);
            }
        }
        for (; i < t; i++) {
            for (int q = 0; q < hd; q += L) {
                FloatVector c0 = FloatVector.zero(S);
                for (int j = 0; j <= i; j++) {
                    c0 = FloatVector.fromByteBuffer(S, b, (bo + j * hd + q) * 4, NATIVE).fma(FloatVector.broadcast(S, w.getFloat((wo + i * t + j) * 4)), c0);
                }
                c0.intoByteBuffer(out, (oo + i * hd + q) * 4, NATIVE);
            }
        }
    }

    /**
     * out_j = sum_{i >= j} w[i, j] b_i (w causal, zeros above the diagonal): dV = P^T dO and dK = dS^T Q.
     */
    public static void combineColumns(ByteBuffer w, int wo, ByteBuffer b, int bo, ByteBuffer out, int oo, int t, int hd) {
        float[] bh = heapCopy(b, bo, t * hd);
        int j = 0;
        for (; j + 4 <= t; j += 4) {
            int q = 0;
            int col0 = (wo + j * t + j) * 4;
            for (; q + 2 * L <= hd; q += 2 * L) {
                // rows of w^T are columns of w: start at w[j, j..j+3], stride one row of w per step
                slab4x2(w, col0, col0 + 4, col0 + 8, col0 + 12, t * 4, bh, hd, q, j, t, out, oo + j * hd + q, hd);
            }
            for (; q < hd; q += L) {
                FloatVector c0 = FloatVector.zero(S), c1 = c0, c2 = c0, c3 = c0;
                for (int i = j; i < t; i++) {
                    FloatVector v = FloatVector.fromByteBuffer(S, b, (bo + i * hd + q) * 4, NATIVE);
                    int wr = (wo + i * t + j) * 4;
                    c0 = v.fma(FloatVector.broadcast(S, w.getFloat(wr)), c0);
                    c1 = v.fma(FloatVector.broadcast(S, w.getFloat(wr + 4)), c1);
                    c2 = v.fma(FloatVector.broadcast(S, w.getFloat(wr + 8)), c2);
                    c3 = v.fma(FloatVector.broadcast(S, w.getFloat(wr + 12)), c3);
                }
                c0.intoByteBuffer(out, (oo + j * hd + q) * 4, NATIVE);
                c1.intoByteBuffer(out, (oo + (j + 1) * hd + q) * 4, NATIVE);
                c2.intoByteBuffer(out, (oo + (j + 2) * hd + q) * 4, NATIVE);
                c3.intoByteBuffer(out, (oo + (j + 3) * hd + q) * 4, NATIVE);
            }
        }
        for (; j < t; j++) {
            for (int q = 0; q < hd; q += L) {
                FloatVector c0 = FloatVector.zero(S);
                for (int i = j; i < t; i++) {
                    c0 = FloatVector.fromByteBuffer(S, b, (bo + i * hd + q) * 4, NATIVE).fma(FloatVector.broadcast(S, w.getFloat((wo + i * t + j) * 4)), c0);
                }
                c0.intoByteBuffer(out, (oo + j * hd + q) * 4, NATIVE);
            }
        }
    }

    private static final ThreadLocal<float[]> B_COPY = ThreadLocal.withInitial(() -> new float[0]);

    /** b[off .. off+n) into a per-thread heap array: the slabs then load with fromArray (no boxing seen). */
    private static float[] heapCopy(ByteBuffer b, int off, int n) {
        float[] h = B_COPY.get();
        if (h.length < n) {
            h = new float[n];
            B_COPY.set(h);
        }
        b.asFloatBuffer().get(off, h, 0, n);
        return h;
    }

    /**
     * Four outputs x 32 columns at once: out_r[q .. q+2L) = sum_{s in [from, to)} coef_r(s) * b_s[q .. q+2L),
     * coef_r(s) being the float at byte position p_r + (s - from) * coefStride in w. Eight accumulators:
     * with sixteen, C2 ran out of registers and boxed the vectors (allocation in the inner loop).
     */
    private static void slab4x2(ByteBuffer w, int p0, int p1, int p2, int p3, int coefStride, float[] b, int hd, int q,
                                int from, int to, ByteBuffer out, int outOff, int outStride) {
        FloatVector a00 = FloatVector.zero(S), a01 = a00;
        FloatVector a10 = a00, a11 = a00;
        FloatVector a20 = a00, a21 = a00;
        FloatVector a30 = a00, a31 = a00;
        for (int s = from; s < to; s++) {
            int row = s * hd + q;
            FloatVector v0 = FloatVector.fromArray(S, b, row);
            FloatVector v1 = FloatVector.fromArray(S, b, row + L);
            FloatVector c = FloatVector.broadcast(S, w.getFloat(p0));
            a00 = v0.fma(c, a00);
            a01 = v1.fma(c, a01);
            c = FloatVector.broadcast(S, w.getFloat(p1));
            a10 = v0.fma(c, a10);
            a11 = v1.fma(c, a11);
            c = FloatVector.broadcast(S, w.getFloat(p2));
            a20 = v0.fma(c, a20);
            a21 = v1.fma(c, a21);
            c = FloatVector.broadcast(S, w.getFloat(p3));
            a30 = v0.fma(c, a30);
            a31 = v1.fma(c, a31);
            p0 += coefStride;
            p1 += coefStride;
            p2 += coefStride;
            p3 += coefStride;
        }
        a00.intoByteBuffer(out, outOff * 4, NATIVE);
        a01.intoByteBuffer(out, (outOff + L) * 4, NATIVE);
        a10.intoByteBuffer(out, (outOff + outStride) * 4, NATIVE);
        a11.intoByteBuffer(out, (outOff + outStride + L) * 4, NATIVE);
        a20.intoByteBuffer(out, (outOff + 2 * outStride) * 4, NATIVE);
        a21.intoByteBuffer(out, (outOff + 2 * outStride + L) * 4, NATIVE);
        a30.intoByteBuffer(out, (outOff + 3 * outStride) * 4, NATIVE);
        a31.intoByteBuffer(out, (outOff + 3 * outStride + L) * 4, NATIVE);
    }

    private static void store4(ByteBuffer out, int off, FloatVector x0, FloatVector x1, FloatVector x2, FloatVector x3) {
        x0.intoByteBuffer(out, off * 4, NATIVE);
        x1.intoByteBuffer(out, (off + L) * 4, NATIVE);
        x2.intoByteBuffer(out, (off + 2 * L) * 4, NATIVE);
        x3.intoByteBuffer(out, (off + 3 * L) * 4, NATIVE);
    }

    /** Scores of rows i..i+3 against 64 keys j..j+63: sixteen accumulators over the head dimension. */
    private static void scoresSlab(ByteBuffer a, int rowAt, int hd, float[] bt, int t, int j, ByteBuffer out, int outOff) {
        FloatVector a00 = FloatVector.zero(S), a01 = a00, a02 = a00, a03 = a00;
        FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
        FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        int r1 = rowAt + hd * 4, r2 = r1 + hd * 4, r3 = r2 + hd * 4;
        for (int c = 0; c < hd; c++) {
            int k = c * t + j;
            FloatVector v0 = FloatVector.fromArray(S, bt, k);
            FloatVector v1 = FloatVector.fromArray(S, bt, k + L);
            FloatVector v2 = FloatVector.fromArray(S, bt, k + 2 * L);
            FloatVector v3 = FloatVector.fromArray(S, bt, k + 3 * L);
            FloatVector x = FloatVector.broadcast(S, a.getFloat(rowAt + c * 4));
            a00 = v0.fma(x, a00);
            a01 = v1.fma(x, a01);
            a02 = v2.fma(x, a02);
            a03 = v3.fma(x, a03);
            x = FloatVector.broadcast(S, a.getFloat(r1 + c * 4));
            a10 = v0.fma(x, a10);
            a11 = v1.fma(x, a11);
            a12 = v2.fma(x, a12);
            a13 = v3.fma(x, a13);
            x = FloatVector.broadcast(S, a.getFloat(r2 + c * 4));
            a20 = v0.fma(x, a20);
            a21 = v1.fma(x, a21);
            a22 = v2.fma(x, a22);
            a23 = v3.fma(x, a23);
            x = FloatVector.broadcast(S, a.getFloat(r3 + c * 4));
            a30 = v0.fma(x, a30);
            a31 = v1.fma(x, a31);
            a32 = v2.fma(x, a32);
            a33 = v3.fma(x, a33);
        }
        store4(out, outOff, a00, a01, a02, a03);
        store4(out, outOff + t, a10, a11, a12, a13);
        store4(out, outOff + 2 * t, a20, a21, a22, a23);
        store4(out, outOff + 3 * t, a30, a31, a32, a33);
    }
}
