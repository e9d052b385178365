package io.catena.model.kernel;

import org.nd4j.linalg.api.blas.params.MMulTranspose;
import org.nd4j.linalg.api.ops.impl.reduce.Mmul;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The one place that calls ND4J's GEMM: {@code C = op(A) op(B)} or {@code C += op(A) op(B)},
 * straight into preallocated (possibly strided) regions. {@code Nd4j.matmul} runs on oneDNN; the
 * accumulating form goes through the {@code Mmul} op with beta = 1 (Nd4j.gemm refuses views).
 */
public final class Gemm {
    private static final MMulTranspose NN = new MMulTranspose(false, false, false);
    private static final MMulTranspose NT = new MMulTranspose(false, true, false);
    private static final MMulTranspose TN = new MMulTranspose(true, false, false);
    private static final MMulTranspose TT = new MMulTranspose(true, true, false);

    private static final java.util.concurrent.atomic.LongAdder NANOS = new java.util.concurrent.atomic.LongAdder();

    /** Per-shape time and count, when enabled with -Dcatena.gemm.profile=true (benchmarks only). */
    public static final java.util.Map<String, long[]> BY_SHAPE = Boolean.getBoolean("catena.gemm.profile")
            ? new java.util.concurrent.ConcurrentHashMap<>() : null;

    private Gemm() {
    }

    /** Wall time spent inside GEMM calls since start (for benchmarks' breakdowns). */
    public static long nanos() {
        return NANOS.sum();
    }

    static void addNanos(long n) {
        NANOS.add(n);
    }

    public static void mm(Mat a, boolean transA, Mat b, boolean transB, Mat c, boolean accumulate) {
        int m = transA ? a.cols : a.rows;
        int k = transA ? a.rows : a.cols;
        int kb = transB ? b.cols : b.rows;
        int n = transB ? b.rows : b.cols;
        if (k != kb || c.rows != m || c.cols != n) {
            throw new IllegalArgumentException("GEMM shapes do not agree: op(A) " + m + "x" + k + ", op(B) " + kb + "x" + n
                    + ", C " + c.rows + "x" + c.cols);
        }
        if (m == 0 || n == 0) {
            return;
        }
        if (k == 0) {
            if (!accumulate) {
                c.fill(0);
            }
            return;
        }
        long t0 = System.nanoTime();
        if (!accumulate) {
            Nd4j.matmul(a.nd(), b.nd(), c.nd(), transA, transB, false);
        } else {
            MMulTranspose t = transA ? (transB ? TT : TN) : (transB ? NT : NN);
            Nd4j.exec(new Mmul(a.nd(), b.nd(), c.nd(), 1.0, 1.0, t));
        }
        long dt = System.nanoTime() - t0;
        NANOS.add(dt);
        if (BY_SHAPE != null) {
            String key = m + "x" + n + "x" + k + (transA ? " tA" : "") + (transB ? " tB" : "") + (accumulate ? " acc" : "")
                    + (a.isContiguous() ? "" : " sA") + (c.isContiguous() ? "" : " sC");
            BY_SHAPE.computeIfAbsent(key, x -> new long[2]);
            long[] v = BY_SHAPE.get(key);
            v[0] += dt;
            v[1]++;
        }
    }
}
