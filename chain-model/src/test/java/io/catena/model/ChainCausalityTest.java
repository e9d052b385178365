package io.catena.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import io.catena.model.kernel.Mat;
import io.catena.model.layers.LmHead;
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
        int rows = BATCH * SEQ, d = cfg.dModel(), n = cfg.numChains();
        LayerSet l = LayerSet.of(cfg, params, new Params(params.layout(), F), BATCH, SEQ, F);
        List<java.util.function.BiConsumer<Mat, Mat>> layers = List.of(
                (x, y) -> l.q().forward(x, y, n), (x, y) -> l.norm().forward(x, y, n),
                (x, y) -> l.att().forward(x, y, n), (x, y) -> l.ffn().forward(x, y, n));
        List<String> names = List.of("chain linear", "chain norm", "attention", "ffn");
        for (int li = 0; li < layers.size(); li++) {
            Mat x = TinyConfigs.randomMat(F, rows, d, 21);
            Mat y = Mat.allocate(F, rows, d);
            layers.get(li).accept(x, y);
            float[] before = toArray(y);
            for (int i = 1; i < n; i++) {
                Mat x2 = TinyConfigs.randomMat(F, rows, d, 21);
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

    /**
     * Per layer type, parameters of chains >= i (every tensor of those chains, perturbed in place) leave the outputs
     * of chains < i bit-identical: chain linear, chain norm, attention, FFN and the embedding by output columns, the
     * LM head by the logits of scales <= i, which must also ignore hidden chains >= i.
     */
    @ParameterizedTest
    @MethodSource("configs")
    void shouldKeepEveryLayerChainCausalInItsParameters(ColmConfig cfg) {
        Params params = TinyConfigs.randomParams(cfg, F, 14);
        int rows = BATCH * SEQ, d = cfg.dModel(), n = cfg.numChains();
        LayerSet l = LayerSet.of(cfg, params, new Params(params.layout(), F), BATCH, SEQ, F);
        int[] tokens = TinyConfigs.randomTokens(rows, cfg.vocabSize(), 7);
        Mat x = TinyConfigs.randomMat(F, rows, d, 22);
        // each layer's output for chains < i (for the head: the logits of scales <= i), as one array; i = n: all of it
        List<java.util.function.IntFunction<float[]>> kept = List.of(
                i -> { Mat y = Mat.allocate(F, rows, d); l.q().forward(x, y, n); return leftColumns(y, cfg.prefixWidth(i)); },
                i -> { Mat y = Mat.allocate(F, rows, d); l.norm().forward(x, y, n); return leftColumns(y, cfg.prefixWidth(i)); },
                i -> { Mat y = Mat.allocate(F, rows, d); l.att().forward(x, y, n); return leftColumns(y, cfg.prefixWidth(i)); },
                i -> { Mat y = Mat.allocate(F, rows, d); l.ffn().forward(x, y, n); return leftColumns(y, cfg.prefixWidth(i)); },
                i -> { Mat y = Mat.allocate(F, rows, d); l.emb().forward(tokens, 0, y, n); return leftColumns(y, cfg.prefixWidth(i)); },
                i -> { l.head().forward(x, n); return scalesUpTo(l.head(), i); });
        List<String> names = List.of("chain linear", "chain norm", "attention", "ffn", "embedding", "lm head");
        for (int i = 1; i < n; i++) {
            for (int li = 0; li < kept.size(); li++) {
                float[] before = kept.get(li).apply(i);
                float[] wholeBefore = kept.get(li).apply(n);
                double[] saved = perturbChainsFrom(params, i, 41 + i);
                float[] after = kept.get(li).apply(i);
                float[] wholeAfter = kept.get(li).apply(n);
                restore(params, saved);
                assertFalse(java.util.Arrays.equals(wholeBefore, wholeAfter), names.get(li) + " ignored the parameters of chains >= " + i
                        + " (else this test proves nothing)");
                assertArrayEquals(before, after, names.get(li) + ": outputs of chains < " + i + " changed when parameters of chains >= "
                        + i + " changed");
                assertArrayEquals(before, kept.get(li).apply(i), names.get(li) + ": not reproducible after restoring the parameters");
            }
            // the head also ignores hidden chains >= i for scales <= i
            float[] before = kept.get(5).apply(i);
            Mat x2 = TinyConfigs.randomMat(F, rows, d, 22);
            SplittableRandom rnd = new SplittableRandom(51 + i);
            for (int r = 0; r < rows; r++) {
                for (int c = cfg.chainOffset(i); c < d; c++) {
                    x2.set(r, c, rnd.nextDouble() * 4 - 2);
                }
            }
            l.head().forward(x2, n);
            assertArrayEquals(before, scalesUpTo(l.head(), i), "lm head: scales <= " + i + " changed when hidden chains >= " + i + " changed");
            assertFalse(java.util.Arrays.equals(toArray(l.head().logits(n)), scalesAll(l.head(), x, n)),
                    "lm head ignored its later hidden chains (else this test proves nothing)");
        }
    }

    private static float[] scalesAll(LmHead head, Mat x, int n) {
        head.forward(x, n);
        return toArray(head.logits(n));
    }

    private static float[] leftColumns(Mat y, int cols) {
        float[] a = new float[y.rows * cols];
        for (int r = 0; r < y.rows; r++) {
            for (int c = 0; c < cols; c++) {
                a[r * cols + c] = (float) y.get(r, c);
            }
        }
        return a;
    }

    private static float[] scalesUpTo(LmHead head, int k) {
        List<float[]> parts = new java.util.ArrayList<>();
        int len = 0;
        for (int s = 1; s <= k; s++) {
            float[] l = toArray(head.logits(s));
            parts.add(l);
            len += l.length;
        }
        float[] out = new float[len];
        int o = 0;
        for (float[] p : parts) {
            System.arraycopy(p, 0, out, o, p.length);
            o += p.length;
        }
        return out;
    }

    /** Every parameter of chains >= i set to new random values; returns the old buffer to restore. */
    private static double[] perturbChainsFrom(Params params, int i, long seed) {
        double[] saved = new double[(int) params.layout().size()];
        for (int p = 0; p < saved.length; p++) {
            saved[p] = params.buf().get(p);
        }
        SplittableRandom rnd = new SplittableRandom(seed);
        int changed = 0;
        for (ParamLayout.Entry e : params.layout().entries()) {
            if (e.chain() >= i) {
                for (long p = e.offset(); p < e.offset() + e.size(); p++) {
                    params.buf().set((int) p, rnd.nextDouble() - 0.5);
                    changed++;
                }
            }
        }
        if (changed == 0) {
            throw new AssertionError("no parameters of chains >= " + i + ": the perturbation would prove nothing");
        }
        return saved;
    }

    private static void restore(Params params, double[] saved) {
        for (int p = 0; p < saved.length; p++) {
            params.buf().set(p, saved[p]);
        }
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
