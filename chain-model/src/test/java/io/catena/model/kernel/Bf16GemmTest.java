package io.catena.model.kernel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * precision = bf16: the conversion (round to nearest even, vector = scalar), the bf16 GEMM on strided regions in
 * every transpose/accumulate form against float64 references, the reuse scope, and the refusal on hosts that
 * cannot run it.
 *
 * <p>Tolerances. bf16 keeps 8 significant bits, so rounding a value moves it by at most u = 2^-9 of itself
 * (round to nearest). A product of two rounded values is off by at most (2u + u^2) of |a b|, and a dot product of
 * length k by at most (2u + u^2) sum |a_i b_i| from the rounding of the inputs, plus the float32 accumulation error,
 * at most about k 2^-24 sum |a_i b_i| (a worst-case bound, far above what blocked summation does). Two checks:
 * (1) against the float64 product of the bf16-rounded inputs, C must agree to the float32 accumulation bound alone:
 * this is sharp, so a wrong offset, leading dimension or transpose fails it by orders of magnitude; (2) against the
 * float64 product of the original inputs, within the bf16 bound above, and the error must be of bf16 size somewhere
 * (above 2^-12 of sum |a b|), which proves the operands really were rounded to bf16 (not run in float32).
 */
class Bf16GemmTest {
    private final int savedThreads = Parallel.threads();
    private final Gemm.Precision savedPrecision = Gemm.precision();

    @AfterEach
    void restore() {
        Parallel.setThreads(savedThreads);
        Gemm.usePrecision(savedPrecision);
        System.clearProperty(HostCpu.HIDE_PROPERTY);
        Bf16Policy.allowEmulationForTests(false);
    }

    private static void assumeBf16() {
        Bf16Policy.allowEmulationForTests(true); // the numerics are checked on every host whose oneDNN computes bf16
        Assumptions.assumeTrue(Bf16Policy.unsupportedReason(HostCpu.read()) == null,
                () -> "bf16 cannot run here: " + Bf16Policy.unsupportedReason(HostCpu.read()));
    }

    @Test
    void conversionRoundsToNearestEvenAndTheVectorLoopMatchesTheScalarOne() {
        // exact, ties to even (down and up), just above a tie, largest finite, infinity, negative, subnormal, zero
        float[] in = {1f, Float.intBitsToFloat(0x3F808000), Float.intBitsToFloat(0x3F818000), Float.intBitsToFloat(0x3F808001),
            Float.MAX_VALUE, Float.POSITIVE_INFINITY, -2.5f, Float.MIN_VALUE * 3, 0f, -0f};
        int[] want = {0x3F80, 0x3F80, 0x3F82, 0x3F81, 0x7F80, 0x7F80, 0xC020, 0x0000, 0x0000, 0x8000};
        for (int i = 0; i < in.length; i++) {
            assertEquals(want[i], Bf16Gemm.toBf16(in[i]) & 0xFFFF, "bf16 of " + in[i] + " (bits " + Integer.toHexString(Float.floatToRawIntBits(in[i])) + ")");
        }
        int n = 1003; // vectors and a tail, at an odd offset
        ByteBuffer src = ByteBuffer.allocateDirect((n + 5) * 4).order(ByteOrder.nativeOrder());
        ByteBuffer dst = ByteBuffer.allocateDirect((n + 3) * 2).order(ByteOrder.nativeOrder());
        Random rnd = new Random(3);
        for (int i = 0; i < n + 5; i++) {
            src.putFloat(i * 4, i % 17 == 0 ? Float.intBitsToFloat(rnd.nextInt(1 << 16) << 16 | 0x8000) : (float) (rnd.nextGaussian() * 100));
        }
        for (int rep = 0; rep < 3; rep++) { // interpreted, then compiled
            Bf16Gemm.toBf16(src, 5, dst, 3, n);
            for (int i = 0; i < n; i++) {
                assertEquals(Bf16Gemm.toBf16(src.getFloat((5 + i) * 4)), dst.getShort((3 + i) * 2), "element " + i);
            }
        }
    }

    private static Mat region(int rows, int cols, Random rnd) {
        Mat whole = Mat.allocate(DataType.FLOAT, rows + 2, cols + 5);
        for (int r = 0; r < whole.rows; r++) {
            for (int c = 0; c < whole.cols; c++) {
                whole.set(r, c, rnd.nextGaussian());
            }
        }
        return whole.rows(1, rows).cols(3, cols);
    }

    private static double rounded(double v) {
        return Bf16Gemm.fromBf16(Bf16Gemm.toBf16((float) v));
    }

    /** {m, n, k}: one slab on the caller, split by rows, split by columns, and a long k. */
    private static final int[][] SHAPES = {{37, 29, 41}, {300, 70, 64}, {40, 301, 30}, {64, 96, 2048}};

    @Test
    void everyFormOnStridedRegionsMatchesFloat64WithinTheBf16Bound() {
        assumeBf16();
        Parallel.setThreads(2);
        Random rnd = new Random(11);
        boolean sawBf16SizedError = false;
        for (int[] s : SHAPES) {
            int m = s[0], n = s[1], k = s[2];
            for (boolean ta : new boolean[] {false, true}) {
                for (boolean tb : new boolean[] {false, true}) {
                    for (boolean acc : new boolean[] {false, true}) {
                        String what = m + "x" + n + "x" + k + " tA=" + ta + " tB=" + tb + " acc=" + acc;
                        Mat a = ta ? region(k, m, rnd) : region(m, k, rnd);
                        Mat b = tb ? region(n, k, rnd) : region(k, n, rnd);
                        Mat c = region(m, n, rnd);
                        double[] before = new double[c.buf.length()];
                        for (int j = 0; j < before.length; j++) {
                            before[j] = c.buf.get(j);
                        }
                        Bf16Gemm.mm(a, ta, b, tb, c, acc, m, n, k);
                        for (int i = 0; i < m; i++) {
                            for (int j = 0; j < n; j++) {
                                double c0 = acc ? before[c.index(i, j)] : 0, exactR = c0, exact = c0, abs = Math.abs(c0);
                                for (int q = 0; q < k; q++) {
                                    double x = ta ? a.get(q, i) : a.get(i, q), y = tb ? b.get(j, q) : b.get(q, j);
                                    exactR += rounded(x) * rounded(y);
                                    exact += x * y;
                                    abs += Math.abs(x * y);
                                }
                                double got = c.get(i, j);
                                double accumulation = (k + 2) * 0x1p-24 * abs;
                                assertEquals(exactR, got, accumulation, what + " at " + i + "," + j + " vs float64 of the bf16 inputs");
                                double u = 0x1p-9;
                                assertEquals(exact, got, (2 * u + u * u) * abs + accumulation, what + " at " + i + "," + j + " vs float64");
                                sawBf16SizedError |= Math.abs(exact - got) > 0x1p-12 * abs;
                            }
                        }
                        for (int j = 0; j < before.length; j++) {
                            int r = (j - c.offset) / c.ld, col = (j - c.offset) % c.ld;
                            if (!(j >= c.offset && r < m && col < n)) {
                                assertEquals(before[j], c.buf.get(j), 0.0, what + ": element " + j + " outside C changed");
                            }
                        }
                    }
                }
            }
        }
        assertTrue(sawBf16SizedError, "no error of bf16 size anywhere: the operands were not rounded to bf16");
    }

    /** Inside a reuse scope, prefixes of one input share a conversion, and a GEMM's output read later is converted afresh. */
    @Test
    void theReuseScopeGivesTheSameBitsAndSeesGemmOutputs() {
        assumeBf16();
        Parallel.setThreads(2);
        Gemm.usePrecision(Gemm.Precision.BF16);
        Random rnd = new Random(5);
        Mat x = Mat.allocateActivation(DataType.FLOAT, 256, 192);
        Mat w1 = region(96, 96, rnd), w2 = region(64, 192, rnd), w3 = region(64, 64, rnd);
        for (int r = 0; r < 256; r++) {
            for (int c = 0; c < 192; c++) {
                x.set(r, c, rnd.nextGaussian());
            }
        }
        Mat y1 = Mat.allocate(DataType.FLOAT, 256, 96), y2 = Mat.allocate(DataType.FLOAT, 256, 64), z = Mat.allocate(DataType.FLOAT, 256, 64);
        Mat e1 = Mat.allocate(DataType.FLOAT, 256, 96), e2 = Mat.allocate(DataType.FLOAT, 256, 64), ez = Mat.allocate(DataType.FLOAT, 256, 64);
        // expected: each GEMM on its own
        Bf16Gemm.mm(x.cols(0, 96), false, w1, true, e1, false, 256, 96, 96);
        Bf16Gemm.mm(x, false, w2, true, e2, false, 256, 64, 192);
        Bf16Gemm.mm(e2, false, w3, false, ez, false, 256, 64, 64);
        try (var reuse = Bf16Gemm.reuse()) {
            Gemm.mm(x.cols(0, 96), false, w1, true, y1, false);
            Gemm.mm(x, false, w2, true, y2, false);
            Gemm.mm(y2, false, w3, false, z, false); // y2: written by a GEMM of the scope, so converted now
        }
        for (int r = 0; r < 256; r++) {
            for (int c = 0; c < 64; c++) {
                assertEquals(e2.get(r, c), y2.get(r, c), 0.0, "y2 " + r + "," + c);
                assertEquals(ez.get(r, c), z.get(r, c), 0.0, "z " + r + "," + c);
            }
            for (int c = 0; c < 96; c++) {
                assertEquals(e1.get(r, c), y1.get(r, c), 0.0, "y1 " + r + "," + c);
            }
        }
    }

    @Test
    void aHostWithoutBf16InstructionsIsRefusedNamingTheFeature() {
        HostCpu old = HostCpu.parse("x86_64", "vendor_id : GenuineIntel\nmodel name : Intel Xeon Gold 6148\n"
                + "flags : fpu sse sse2 avx avx2 fma avx512f avx512bw avx512vl avx512dq avx512cd\n");
        String why = Bf16Policy.unsupportedReason(old);
        assertTrue(why != null && why.contains("AVX512_BF16") && why.contains("AMX") && why.contains("Intel Xeon Gold 6148")
                && why.contains("precision=fp32"), why);
        HostCpu arm = HostCpu.parse("aarch64", "CPU implementer : 0x41\nCPU part : 0xd0c\nFeatures : fp asimd bf16\n");
        assertTrue(Bf16Policy.unsupportedReason(arm) != null, "aarch64 (no oneDNN bf16 GEMM path here) must be refused");
        // the live check, with the host's bf16 flags hidden
        System.setProperty(HostCpu.HIDE_PROPERTY, "avx512_bf16,amx_bf16");
        UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, () -> Gemm.usePrecision(Gemm.Precision.BF16));
        assertTrue(e.getMessage().contains("AVX512_BF16"), e.getMessage());
        assertEquals(Gemm.Precision.FP32, Gemm.precision(), "a refused bf16 leaves the precision as it was");
    }

    @Test
    void aHostWithBf16InstructionsAndOneDnnIsAccepted() {
        HostCpu zen5 = HostCpu.parse("x86_64", "vendor_id : AuthenticAMD\nmodel name : AMD EPYC\n"
                + "flags : avx avx2 fma avx512f avx512bw avx512vl avx512dq avx512cd avx512_bf16\n");
        assertTrue(zen5.bf16());
        if (Dnnl.available()) {
            assertNull(Bf16Policy.unsupportedReason(zen5));
        } else {
            assertTrue(Bf16Policy.unsupportedReason(zen5).contains("libdnnl2"), Bf16Policy.unsupportedReason(zen5));
        }
    }

    @Test
    void theShapeRuleTakesEveryModelGemmButTinyOnes() {
        assertTrue(Bf16Policy.useBf16(2048, 128, 256), "a forward projection");
        assertTrue(Bf16Policy.useBf16(128, 256, 2048), "a projection's weight gradient");
        assertTrue(!Bf16Policy.useBf16(16, 16, 16), "too small to pay for the conversion");
    }
}
