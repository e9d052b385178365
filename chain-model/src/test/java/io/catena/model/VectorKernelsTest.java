package io.catena.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.optim.AdamW;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * The float32 Vector API fast paths (CE, softmax, GELU, norms, bias/residual adds, AdamW) against the
 * scalar float64 paths that the gradient check verifies: same parameters and tokens, losses and every
 * gradient and update must agree to float32 accuracy.
 */
class VectorKernelsTest {

    /** Widths of 16+ floats so the vector bodies run, not only the scalar tails (and odd sizes for the tails). */
    static List<ColmConfig> configs() {
        return List.of(
                new ColmConfig(37, 32, List.of(1, 2), 2, 0, 2.0, ColmConfig.Activation.GELU, ColmConfig.NormKind.LAYERNORM,
                        1e-5, 1e4, ColmConfig.Variant.COLM, 32, true, List.of(0.4, 0.6)),
                new ColmConfig(53, 24, List.of(2, 2), 1, 2, 1.5, ColmConfig.Activation.GELU, ColmConfig.NormKind.RMSNORM,
                        1e-5, 1e4, ColmConfig.Variant.COLM_AIR, 32, false, null),
                TinyConfigs.airSwigluRmsNorm());
    }

    @ParameterizedTest
    @MethodSource("configs")
    void shouldMatchFloat64ReferenceForLossGradientsAndAdamW(ColmConfig cfg) {
        int batch = 3, seq = Math.min(21, cfg.maxSeqLen());
        Params p64 = TinyConfigs.randomParams(cfg, DataType.DOUBLE, 17);
        Params p32 = new Params(p64.layout(), DataType.FLOAT);
        for (int i = 0; i < p64.buf().length(); i++) {
            p64.buf().set(i, (float) p64.buf().get(i)); // both start from the same float32 values
            p32.buf().set(i, p64.buf().get(i));
        }
        Params g64 = new Params(p64.layout(), DataType.DOUBLE);
        Params g32 = new Params(p32.layout(), DataType.FLOAT);
        int[] in = TinyConfigs.randomTokens(batch * seq, cfg.vocabSize(), 1);
        int[] tg = TinyConfigs.randomTokens(batch * seq, cfg.vocabSize(), 2);
        double[] l64 = new ColmModel(cfg, p64, g64, batch, seq).forwardBackward(in, tg, 0, 0, false, 1.0);
        double[] l32 = new ColmModel(cfg, p32, g32, batch, seq).forwardBackward(in, tg, 0, 0, false, 1.0);
        for (int j = 0; j < l64.length; j++) {
            assertEquals(l64[j], l32[j], 1e-5 * Math.abs(l64[j]) + 1e-6, "loss of scale " + (j + 1));
        }
        double maxAbs = 0;
        for (int i = 0; i < g64.buf().length(); i++) {
            maxAbs = Math.max(maxAbs, Math.abs(g64.buf().get(i)));
        }
        for (ParamLayout.Entry e : p64.layout().entries()) {
            for (int i = (int) e.offset(); i < e.offset() + e.size(); i++) {
                double a = g64.buf().get(i), b = g32.buf().get(i);
                if (Math.abs(a - b) > 2e-4 * maxAbs + 1e-3 * Math.abs(a)) {
                    throw new AssertionError(e.name() + "[" + (i - e.offset()) + "]: float64 " + a + " float32 " + b);
                }
            }
        }
        // one AdamW step each way: the fused vector update equals the scalar one
        AdamW opt = new AdamW(p64.layout(), AdamW.Settings.defaults(), 0);
        Params m64 = new Params(p64.layout(), DataType.DOUBLE), v64 = new Params(p64.layout(), DataType.DOUBLE);
        Params m32 = new Params(p32.layout(), DataType.FLOAT), v32 = new Params(p32.layout(), DataType.FLOAT);
        for (int i = 0; i < g64.buf().length(); i++) {
            g64.buf().set(i, g32.buf().get(i)); // same gradient into both optimizers
        }
        double n64 = opt.step(p64, g64, m64, v64, 1, 1e-2);
        double n32 = opt.step(p32, g32, m32, v32, 1, 1e-2);
        assertEquals(n64, n32, 1e-5 * n64, "gradient norm");
        for (int i = 0; i < p64.buf().length(); i++) {
            assertTrue(Math.abs(p64.buf().get(i) - p32.buf().get(i)) < 1e-6 + 1e-5 * Math.abs(p64.buf().get(i)),
                    "parameter " + i + " after AdamW: " + p64.buf().get(i) + " vs " + p32.buf().get(i));
        }
    }

    /**
     * The causal softmax row kernel alone, for every causal length n of a 64-wide row: entries [0, n) equal a float64
     * softmax, entries at and past n are exactly 0, and whatever the scores kernel left past n (here huge values)
     * does not leak into the maximum or the sum.
     */
    @org.junit.jupiter.api.Test
    void causalSoftmaxRowMasksEverythingPastTheDiagonal() {
        int rowLen = 64;
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocateDirect((rowLen + 8) * 4).order(java.nio.ByteOrder.nativeOrder());
        java.util.Random rnd = new java.util.Random(5);
        float scale = 0.125f;
        for (int n = 1; n <= rowLen; n++) {
            float[] x = new float[rowLen];
            for (int i = 0; i < rowLen; i++) {
                x[i] = i < n ? (float) (rnd.nextGaussian() * 8) : 1e4f + i;
                b.putFloat((4 + i) * 4, x[i]);
            }
            b.putFloat(0, 7f); // the float just before the row must not change
            b.putFloat((4 + rowLen) * 4, 9f); // nor the one just after
            io.catena.model.kernel.VectorKernels.causalSoftmaxRow(b, 4, n, rowLen, scale);
            double max = Double.NEGATIVE_INFINITY, sum = 0;
            for (int i = 0; i < n; i++) {
                max = Math.max(max, x[i] * (double) scale);
            }
            for (int i = 0; i < n; i++) {
                sum += Math.exp(x[i] * (double) scale - max);
            }
            for (int i = 0; i < rowLen; i++) {
                double expected = i < n ? Math.exp(x[i] * (double) scale - max) / sum : 0.0;
                float got = b.getFloat((4 + i) * 4);
                if (i < n) {
                    assertEquals(expected, got, 1e-6 + 1e-5 * expected, "n=" + n + " entry " + i);
                } else {
                    assertEquals(0f, got, 0f, "n=" + n + " entry " + i + " past the diagonal");
                }
            }
            assertEquals(7f, b.getFloat(0), 0f, "n=" + n + ": the float before the row");
            assertEquals(9f, b.getFloat((4 + rowLen) * 4), 0f, "n=" + n + ": the float after the row");
        }
    }
}
