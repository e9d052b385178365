package io.catena.model.kernel;

import org.bytedeco.javacpp.DoublePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.openblas.global.openblas;
import org.nd4j.linalg.api.blas.params.MMulTranspose;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ops.impl.reduce.Mmul;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The one place that calls a GEMM: {@code C = op(A) op(B)} or {@code C += op(A) op(B)}, straight
 * into preallocated (possibly strided) regions.
 *
 * <p>By default it calls OpenBLAS's {@code cblas_sgemm}/{@code cblas_dgemm} (the OpenBLAS nd4j-native
 * ships and loads anyway) with the regions' own leading dimensions: one JNI call, no op object, no
 * shape inference. On the reference model's shapes (2048 rows, N = 128..4096, K = 128..4096) it took
 * 0.47-1.08x the time of {@code Nd4j.matmul} (oneDNN) per shape over four runs, least on the narrow
 * per-chain products, and whole training steps take 0.90-0.925x the time (a paired A/B, steps
 * alternating the two; {@code benchmarks/run-micro.sh}).
 * {@code -Dcatena.gemm=nd4j} routes through ND4J's matmul / {@code Mmul} op instead, for A/B runs.
 * Results are deterministic either way: the split over threads depends only on the shape and the
 * thread count.
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

    /** {@code -Dcatena.gemm=nd4j} selects ND4J's matmul (oneDNN); anything else OpenBLAS. */
    private static volatile boolean openBlas = !"nd4j".equals(System.getProperty("catena.gemm", "openblas"));

    /** Switches between OpenBLAS (true) and ND4J's matmul (false) at run time: for benchmarks' paired A/B runs. */
    public static void useOpenBlas(boolean on) {
        openBlas = on;
    }

    private Gemm() {
    }

    /** The BLAS thread count last set from each calling thread (0: never). */
    private static final ThreadLocal<int[]> BLAS_THREADS = ThreadLocal.withInitial(() -> new int[1]);

    /**
     * GEMMs use as many threads as the other kernels ({@link Parallel#threads()}): a Spark task with
     * task.cpus = 4 on a 64-core host must not start 64 OpenMP threads, and two tasks sharing a JVM
     * must not both ask OpenBLAS for a full team (0.3.19's OpenMP build then makes the second caller
     * spin until the first GEMM ends). OpenBLAS's OpenMP build takes the count from the calling
     * thread's OpenMP setting (and keeps the last one set as a process-wide default), so it is set once
     * per thread, again when the count changes, and again when another thread last set a different one
     * ({@code blas_get_num_threads} is the JavaCPP preset's record of the last count set).
     */
    private static void matchBlasThreads() {
        int want = Parallel.threads();
        int[] have = BLAS_THREADS.get();
        if (have[0] != want || openblas.blas_get_num_threads() != want) {
            openblas.blas_set_num_threads(want);
            have[0] = want;
        }
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
        if (openBlas) {
            matchBlasThreads();
            int ta = transA ? openblas.CblasTrans : openblas.CblasNoTrans;
            int tb = transB ? openblas.CblasTrans : openblas.CblasNoTrans;
            if (a.dataType() == DataType.FLOAT) {
                openblas.cblas_sgemm(openblas.CblasRowMajor, ta, tb, m, n, k, 1f, (FloatPointer) a.pointer(), a.ld,
                        (FloatPointer) b.pointer(), b.ld, accumulate ? 1f : 0f, (FloatPointer) c.pointer(), c.ld);
            } else {
                openblas.cblas_dgemm(openblas.CblasRowMajor, ta, tb, m, n, k, 1.0, (DoublePointer) a.pointer(), a.ld,
                        (DoublePointer) b.pointer(), b.ld, accumulate ? 1.0 : 0.0, (DoublePointer) c.pointer(), c.ld);
            }
        } else if (!accumulate) {
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
