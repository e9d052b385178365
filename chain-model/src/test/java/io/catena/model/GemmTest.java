package io.catena.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.kernel.Gemm;
import io.catena.model.kernel.Mat;
import io.catena.model.kernel.Parallel;
import java.util.Random;
import org.bytedeco.openblas.global.openblas;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;

/** The BLAS call on strided regions: every transpose / accumulate form against a plain loop, and its thread count. */
class GemmTest {
    private final int saved = Parallel.threads();

    @AfterEach
    void restore() {
        Parallel.setThreads(saved);
    }

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
        Random rnd = new Random(7);
        for (DataType type : new DataType[] {DataType.DOUBLE, DataType.FLOAT}) {
            double tol = type == DataType.DOUBLE ? 1e-12 : 1e-4;
            for (boolean ta : new boolean[] {false, true}) {
                for (boolean tb : new boolean[] {false, true}) {
                    for (boolean acc : new boolean[] {false, true}) {
                        int m = 37, n = 29, k = 41;
                        Mat a = ta ? region(type, k, m, rnd) : region(type, m, k, rnd);
                        Mat b = tb ? region(type, n, k, rnd) : region(type, k, n, rnd);
                        Mat c = region(type, m, n, rnd);
                        Mat outside = new Mat(c.storage, c.buf, 0, 1, c.ld, c.ld); // the padding row above C
                        double[] before = new double[outside.cols];
                        for (int j = 0; j < before.length; j++) {
                            before[j] = outside.get(0, j);
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
                                assertEquals(expected[i][j], c.get(i, j), tol, type + " tA=" + ta + " tB=" + tb + " acc=" + acc);
                            }
                        }
                        for (int j = 0; j < before.length; j++) {
                            assertEquals(before[j], outside.get(0, j), 0.0, "the row above C must not change");
                        }
                    }
                }
            }
        }
    }

    @Test
    void gemmsUseTheKernelThreadCount() {
        Random rnd = new Random(1);
        Mat a = region(DataType.FLOAT, 64, 64, rnd), b = region(DataType.FLOAT, 64, 64, rnd), c = region(DataType.FLOAT, 64, 64, rnd);
        for (int threads : new int[] {1, 2, 1}) {
            Parallel.setThreads(threads);
            Gemm.mm(a, false, b, false, c, false);
            // the preset's record of the count last set: proves Gemm set it from the kernel thread count
            assertEquals(threads, openblas.blas_get_num_threads(), "OpenBLAS threads after a GEMM with " + threads + " kernel threads");
        }
        assertTrue(Parallel.threads() >= 1);
    }
}
