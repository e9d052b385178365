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
        int i = 0;
        for (; i + 4 <= t; i += 4) {
            int w0 = (wo + i * t) * 4, w1 = w0 + t * 4, w2 = w1 + t * 4, w3 = w2 + t * 4;
            for (int q = 0; q < hd; q += L) {
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
        int j = 0;
        for (; j + 4 <= t; j += 4) {
            for (int q = 0; q < hd; q += L) {
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
}
