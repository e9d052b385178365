package io.catena.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.kernel.Gemm;
import io.catena.model.kernel.Mat;
import io.catena.model.kernel.Parallel;
import java.util.Random;
import org.bytedeco.openblas.global.openblas;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * The GEMM on strided regions: every transpose / accumulate form against a plain loop for every engine, on shapes
 * small enough to run on the caller and large enough to be split by rows or by columns (nothing outside C written),
 * and the OpenBLAS thread count each engine sets.
 */
class GemmTest {
    private final int saved = Parallel.threads();
    private final Gemm.Engine savedEngine = Gemm.engine();

    @AfterEach
    void restore() {
        Parallel.setThreads(saved);
        Gemm.use(savedEngine);
    }

    /** {m, n, k}: below the split threshold, split by rows (m >= n), split by columns (n > m). */
    private static final int[][] SHAPES = {{37, 29, 41}, {300, 70, 20}, {40, 301, 30}};

    /** A region with padding on both sides, so a wrong offset or leading dimension reads or writes the wrong cells. */
    private static Mat region(DataType type, int rows, int cols, Random rnd) {
        Mat whole = Mat.allocate(type, rows + 2, cols + 5);
        for (int r = 0; r < whole.rows; r++) {
            for (int c = 0; c < whole.cols; c++) {
                whole.set(r, c, rnd.nextGaussian());
            }
        }
        return whole.rows(1, rows).cols(3, cols);
    }

    @Test
    void everyFormMatchesALoopOnStridedRegions() {
        Parallel.setThreads(2);
        for (Gemm.Engine engine : Gemm.Engine.values()) {
            Gemm.use(engine);
            Random rnd = new Random(7);
            for (int[] shape : SHAPES) {
                for (DataType type : new DataType[] {DataType.DOUBLE, DataType.FLOAT}) {
                    for (boolean ta : new boolean[] {false, true}) {
                        for (boolean tb : new boolean[] {false, true}) {
                            for (boolean acc : new boolean[] {false, true}) {
                                checkAgainstLoop(rnd, type, shape[0], shape[1], shape[2], ta, tb, acc,
                                        engine + " " + type + " " + shape[0] + "x" + shape[1] + "x" + shape[2] + " tA=" + ta + " tB=" + tb + " acc=" + acc);
                            }
                        }
                    }
                }
            }
        }
    }

    private static void checkAgainstLoop(Random rnd, DataType type, int m, int n, int k, boolean ta, boolean tb, boolean acc, String what) {
        double tol = type == DataType.DOUBLE ? 1e-12 : 1e-4;
        Mat a = ta ? region(type, k, m, rnd) : region(type, m, k, rnd);
        Mat b = tb ? region(type, n, k, rnd) : region(type, k, n, rnd);
        Mat c = region(type, m, n, rnd);
        double[] before = new double[(int) c.buf.length()]; // C's whole buffer: the padding around C must not change
        for (int j = 0; j < before.length; j++) {
            before[j] = c.buf.get(j);
        }
        double[][] expected = new double[m][n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double s = acc ? c.get(i, j) : 0;
                for (int q = 0; q < k; q++) {
                    s += (ta ? a.get(q, i) : a.get(i, q)) * (tb ? b.get(j, q) : b.get(q, j));
                }
                expected[i][j] = s;
            }
        }
        Gemm.mm(a, ta, b, tb, c, acc);
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                assertEquals(expected[i][j], c.get(i, j), tol * Math.sqrt(k), what + " at " + i + "," + j);
            }
        }
        for (int j = 0; j < before.length; j++) {
            int r = (j - c.offset) / c.ld, col = (j - c.offset) % c.ld;
            boolean insideC = j >= c.offset && r < m && col < n;
            if (!insideC) {
                assertEquals(before[j], c.buf.get(j), 0.0, what + ": element " + j + " outside C changed");
            }
        }
    }

    /** The split runs each slab on one OpenBLAS thread; OpenBLAS's own threading uses the kernel thread count. */
    @Test
    void eachEngineSetsItsOpenBlasThreadCount() {
        Random rnd = new Random(1);
        Mat a = region(DataType.FLOAT, 64, 64, rnd), b = region(DataType.FLOAT, 64, 64, rnd), c = region(DataType.FLOAT, 64, 64, rnd);
        for (int threads : new int[] {1, 2, 1, 2}) {
            Parallel.setThreads(threads);
            Gemm.use(Gemm.Engine.OPENBLAS_THREADS);
            Gemm.mm(a, false, b, false, c, false);
            // the preset's record of the count last set: proves Gemm set it from the kernel thread count
            assertEquals(threads, openblas.blas_get_num_threads(), "OpenBLAS threads after a GEMM with " + threads + " kernel threads");
            Gemm.use(Gemm.Engine.SPLIT);
            Gemm.mm(a, false, b, false, c, false);
            assertEquals(1, openblas.blas_get_num_threads(), "OpenBLAS threads after a split GEMM with " + threads + " kernel threads");
        }
    }

    @Test
    void anUnknownEngineNameIsRejectedWithTheChoices() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Gemm.parse("mkl"));
        assertTrue(e.getMessage().contains("mkl") && e.getMessage().contains("split, openblas or nd4j"), e.getMessage());
    }
}
