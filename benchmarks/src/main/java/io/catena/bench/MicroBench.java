package io.catena.bench;

import io.catena.model.kernel.Parallel;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.openblas.global.openblas;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The two measurements behind session 4's engine changes, one line per case:
 * {@code gemm} times ND4J's matmul (oneDNN) against OpenBLAS's cblas_sgemm on the reference step's GEMM shapes
 * (same operands, same strides: A and C with padded rows as the engine's activations have), and
 * {@code handoff} times an empty {@link Parallel#forRows} split (the fixed cost every kernel call pays) against an
 * executor-based split.
 * <pre>benchmarks/run-micro.sh   (java ... io.catena.bench.MicroBench gemm|handoff)</pre>
 */
public final class MicroBench {
    private MicroBench() {
    }

    private static double medianMs(Runnable r, int reps) {
        for (int i = 0; i < 3; i++) {
            r.run();
        }
        double[] t = new double[reps];
        for (int i = 0; i < reps; i++) {
            long s = System.nanoTime();
            r.run();
            t[i] = (System.nanoTime() - s) / 1e6;
        }
        return TrainBench.median(t);
    }

    /** {m, n, k, transA, transB} as the engine calls them (see -Dcatena.gemm.profile=true in TrainBench). */
    private static final int[][] SHAPES = {
        {2048, 128, 4096, 0, 1}, {128, 4096, 2048, 1, 0}, {2048, 4096, 128, 0, 0}, {128, 1024, 2048, 1, 0},
        {512, 256, 2048, 1, 0}, {2048, 1024, 128, 0, 0}, {2048, 128, 1024, 0, 1}, {2048, 512, 256, 0, 1},
        {2048, 256, 512, 0, 0}, {2048, 128, 128, 0, 1}, {2048, 256, 128, 0, 0}, {128, 128, 2048, 1, 0},
        {2048, 2048, 2048, 0, 0},
    };

    static void gemm() {
        for (int[] s : SHAPES) {
            int m = s[0], n = s[1], k = s[2];
            boolean ta = s[3] == 1, tb = s[4] == 1;
            int pad = 16;
            int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
            int lda = ac + pad, ldb = bc, ldc = n + pad;
            INDArray a = Nd4j.rand(DataType.FLOAT, (long) ar * lda);
            INDArray b = Nd4j.rand(DataType.FLOAT, (long) br * ldb);
            INDArray c = Nd4j.zeros(DataType.FLOAT, (long) m * ldc);
            INDArray av = Nd4j.create(a.data(), new long[] {ar, ac}, new long[] {lda, 1}, 0, 'c', DataType.FLOAT);
            INDArray bv = Nd4j.create(b.data(), new long[] {br, bc}, new long[] {ldb, 1}, 0, 'c', DataType.FLOAT);
            INDArray cv = Nd4j.create(c.data(), new long[] {m, n}, new long[] {ldc, 1}, 0, 'c', DataType.FLOAT);
            FloatPointer pa = new FloatPointer(a.data().addressPointer());
            FloatPointer pb = new FloatPointer(b.data().addressPointer());
            FloatPointer pc = new FloatPointer(c.data().addressPointer());
            double gflop = 2.0 * m * n * k / 1e9;
            int reps = Math.max(7, (int) (20 / gflop));
            double nd4j = medianMs(() -> Nd4j.matmul(av, bv, cv, ta, tb, false), reps);
            double blas = medianMs(() -> openblas.cblas_sgemm(openblas.CblasRowMajor, ta ? openblas.CblasTrans : openblas.CblasNoTrans,
                    tb ? openblas.CblasTrans : openblas.CblasNoTrans, m, n, k, 1f, pa, lda, pb, ldb, 0f, pc, ldc), reps);
            System.out.printf("{\"case\":\"gemm\",\"m\":%d,\"n\":%d,\"k\":%d,\"transA\":%b,\"transB\":%b,\"nd4j_ms\":%.3f,\"openblas_ms\":%.3f,"
                    + "\"nd4j_gflops\":%.1f,\"openblas_gflops\":%.1f,\"openblas_over_nd4j_time\":%.3f}%n",
                    m, n, k, ta, tb, nd4j, blas, gflop / nd4j * 1e3, gflop / blas * 1e3, blas / nd4j);
        }
    }

    /**
     * Parallel.forRows against what it replaced (session 3's Parallel: an executor's submit for the second half,
     * the first half on the caller, Future.get), both splitting an empty body over 2048 rows, alternating rounds.
     */
    static void handoff() throws Exception {
        long[] sink = new long[2];
        int calls = 20_000;
        java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r, "executor-peer");
            t.setDaemon(true);
            return t;
        });
        try {
            for (int round = 0; round < 5; round++) {
                long t = System.nanoTime();
                for (int i = 0; i < calls; i++) {
                    Parallel.forRows(2048, (from, to) -> sink[from == 0 ? 0 : 1] += to - from);
                }
                double team = (System.nanoTime() - t) / 1e3 / calls;
                t = System.nanoTime();
                for (int i = 0; i < calls; i++) {
                    java.util.concurrent.Future<?> f = pool.submit(() -> sink[1] += 1024);
                    sink[0] += 1024;
                    f.get(10, java.util.concurrent.TimeUnit.SECONDS);
                }
                double executor = (System.nanoTime() - t) / 1e3 / calls;
                System.out.printf("{\"case\":\"handoff\",\"round\":%d,\"threads\":%d,\"team_us_per_split\":%.2f,\"executor_us_per_split\":%.2f}%n",
                        round, Parallel.threads(), team, executor);
            }
        } finally {
            pool.shutdownNow();
        }
        if (sink[0] + sink[1] != 2 * 5L * calls * 2048) {
            throw new IllegalStateException("rows lost: " + (sink[0] + sink[1]));
        }
    }

    public static void main(String[] args) throws Exception {
        io.catena.model.kernel.NativeSetup.report(); // the host's GEMM path, chosen before ND4J loads, in the log
        String mode = args.length > 0 ? args[0] : "gemm";
        switch (mode) {
            case "gemm" -> gemm();
            case "handoff" -> handoff();
            default -> throw new IllegalArgumentException("mode must be gemm or handoff, got " + mode);
        }
    }
}
