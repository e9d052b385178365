package io.catena.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import io.catena.model.kernel.Mat;
import io.catena.model.layers.Attention;
import io.catena.model.layers.ChainLinear;
import io.catena.model.layers.ChainNorm;
import io.catena.model.layers.FeedForward;
import io.catena.model.layers.Rope;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * Chain-of-Layer: output chain i depends only on input chains <= i and parameters of chains <= i.
 * Perturbing anything of chains > i must leave the outputs of scales <= i bit-identical.
 */
class ChainCausalityTest {
    private static final DataType F = DataType.FLOAT;
    private static final int BATCH = 2;
    private static final int SEQ = 6;

    static List<ColmConfig> configs() {
        return TinyConfigs.all();
    }

    @ParameterizedTest
    @MethodSource("configs")
    void shouldKeepSmallerScalesBitIdenticalWhenLaterChainParametersChange(ColmConfig cfg) {
        int[] tokens = TinyConfigs.randomTokens(BATCH * SEQ, cfg.vocabSize(), 3);
        Params base = TinyConfigs.randomParams(cfg, F, 11);
        float[][] reference = logitsAllScales(cfg, base, tokens);
        for (int i = 1; i < cfg.numChains(); i++) {
            Params perturbed = TinyConfigs.randomParams(cfg, F, 11);
            long from = perturbed.layout().prefixSize(i);
            SplittableRandom rnd = new SplittableRandom(99 + i);
            for (long p = from; p < perturbed.layout().size(); p++) {
                perturbed.buf().set((int) p, rnd.nextDouble() - 0.5);
            }
            float[][] out = logitsAllScales(cfg, perturbed, tokens);
            for (int s = 0; s < i; s++) {
                assertArrayEquals(reference[s], out[s], "scale " + (s + 1) + " changed when chains >= " + i + " changed");
            }
            assertFalse(java.util.Arrays.equals(reference[cfg.numChains() - 1], out[cfg.numChains() - 1]),
                    "the full model must notice the perturbation (else this test proves nothing)");
        }
    }

    @ParameterizedTest
    @MethodSource("configs")
    void shouldComputeEachScaleLikeTheSubModelAlone(ColmConfig cfg) {
        // forward at scale k touches only chains < k, and gives the k-th logits of the full forward
        int[] tokens = TinyConfigs.randomTokens(BATCH * SEQ, cfg.vocabSize(), 5);
        Params params = TinyConfigs.randomParams(cfg, F, 12);
        float[][] full = logitsAllScales(cfg, params, tokens);
        ColmModel model = new ColmModel(cfg, params, new Params(params.layout(), F), BATCH, SEQ);
        for (int k = 1; k <= cfg.numChains(); k++) {
            model.forward(tokens, 0, k);
            assertArrayEquals(full[k - 1], toArray(model.logits(k)), "scale " + k + " (bit-identical)");
        }
    }

    @ParameterizedTest
    @MethodSource("configs")
    void shouldKeepEveryLayerChainCausalInItsInput(ColmConfig cfg) {
        Params params = TinyConfigs.randomParams(cfg, F, 13);
        Params grads = new Params(params.layout(), F);
        int rows = BATCH * SEQ, d = cfg.dModel(), n = cfg.numChains();
        int[] widths = new int[n];
        int[] prefixes = new int[n];
        for (int i = 0; i < n; i++) {
            widths[i] = cfg.chainWidth(i);
            prefixes[i] = cfg.prefixWidth(i + 1);
        }
        ChainLinear q = new ChainLinear(params, grads, "layers.0.attn.q", 0, widths, prefixes);
        ChainNorm norm = new ChainNorm(cfg, params, grads, "layers.0.norm1", rows);
        Attention att = new Attention(cfg, params, grads, "layers.0.", new Rope(cfg.headDim(), cfg.maxSeqLen(), cfg.ropeTheta()),
                new Attention.Scratch(cfg, BATCH, SEQ, F), BATCH, SEQ, F);
        FeedForward ffn = new FeedForward(cfg, params, grads, "layers.0.", new FeedForward.Scratch(cfg, rows, F), rows, F);
        List<java.util.function.BiConsumer<Mat, Mat>> layers = List.of(
                (x, y) -> q.forward(x, y, n), (x, y) -> norm.forward(x, y, n),
                (x, y) -> att.forward(x, y, n), (x, y) -> ffn.forward(x, y, n));
        List<String> names = List.of("chain linear", "chain norm", "attention", "ffn");
        for (int li = 0; li < layers.size(); li++) {
            Mat x = randomMat(rows, d, 21);
            Mat y = Mat.allocate(F, rows, d);
            layers.get(li).accept(x, y);
            float[] before = toArray(y);
            for (int i = 1; i < n; i++) {
                Mat x2 = randomMat(rows, d, 21);
                SplittableRandom rnd = new SplittableRandom(31 + i);
                for (int r = 0; r < rows; r++) {
                    for (int c = cfg.chainOffset(i); c < d; c++) {
                        x2.set(r, c, rnd.nextDouble() * 4 - 2);
                    }
                }
                Mat y2 = Mat.allocate(F, rows, d);
                layers.get(li).accept(x2, y2);
                float[] after = toArray(y2);
                int keep = cfg.chainOffset(i);
                for (int r = 0; r < rows; r++) {
                    for (int c = 0; c < keep; c++) {
                        if (before[r * d + c] != after[r * d + c]) {
                            throw new AssertionError(names.get(li) + ": output chain column " + c + " row " + r
                                    + " changed when input chains >= " + i + " changed");
                        }
                    }
                }
                assertFalse(java.util.Arrays.equals(before, after), names.get(li) + " ignored its later input chains");
            }
        }
    }

    private static Mat randomMat(int rows, int cols, long seed) {
        Mat m = Mat.allocate(F, rows, cols);
        SplittableRandom rnd = new SplittableRandom(seed);
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                m.set(r, c, rnd.nextDouble() * 2 - 1);
            }
        }
        return m;
    }

    static float[][] logitsAllScales(ColmConfig cfg, Params params, int[] tokens) {
        ColmModel model = new ColmModel(cfg, params, new Params(params.layout(), F), BATCH, SEQ);
        model.forward(tokens, 0, cfg.numChains());
        float[][] out = new float[cfg.numChains()][];
        for (int k = 1; k <= cfg.numChains(); k++) {
            out[k - 1] = toArray(model.logits(k));
        }
        return out;
    }

    static float[] toArray(Mat m) {
        float[] a = new float[m.rows * m.cols];
        for (int r = 0; r < m.rows; r++) {
            for (int c = 0; c < m.cols; c++) {
                a[r * m.cols + c] = (float) m.get(r, c);
            }
        }
        return a;
    }
}
