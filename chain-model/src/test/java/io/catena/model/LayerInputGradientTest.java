package io.catena.model;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.kernel.Mat;
import io.catena.model.layers.LmHead;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import java.util.function.ToDoubleFunction;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * Each layer's input gradient on its own, in float64, against central differences: chain linear, chain norm,
 * attention (CoLM and CoLM-Air configs), FFN (GELU and SwiGLU) with the objective sum(y * R) for a random R, and
 * the LM head with the multi-chain loss. The whole-model check (GradientCheckTest) covers every parameter; this one
 * pins each layer's backward of its input, so a wrong dx cannot hide behind a compensating error elsewhere.
 */
class LayerInputGradientTest {
    private static final DataType D = DataType.DOUBLE;
    private static final int BATCH = 2;
    private static final int SEQ = 5;
    private static final double EPS = 1e-6;

    static List<ColmConfig> configs() {
        return TinyConfigs.all();
    }

    /** A layer as forward(x) -> objective, and backward -> dx (after a forward at x). */
    private record Case(String name, ToDoubleFunction<Mat> objective, Consumer<Mat[]> gradient) {
    }

    @ParameterizedTest
    @MethodSource("configs")
    void shouldMatchFiniteDifferencesForEveryLayersInputGradient(ColmConfig cfg) {
        Params params = TinyConfigs.randomParams(cfg, D, 17);
        int rows = BATCH * SEQ, d = cfg.dModel(), n = cfg.numChains();
        Mat r = TinyConfigs.randomMat(D, rows, d, 5);
        LayerSet l = LayerSet.of(cfg, params, new Params(params.layout(), D), BATCH, SEQ, D);
        int[] targets = TinyConfigs.randomTokens(rows, cfg.vocabSize(), 9);
        double[] weights = cfg.lossWeights().stream().mapToDouble(Double::doubleValue).toArray();
        Mat y = Mat.allocate(D, rows, d);
        List<Case> cases = List.of(
                new Case("chain linear", x -> { l.q().forward(x, y, n); return dot(y, r); }, xd -> l.q().backward(xd[0], r, xd[1], n, 0, false, false)),
                new Case("chain norm", x -> { l.norm().forward(x, y, n); return dot(y, r); }, xd -> l.norm().backward(xd[0], r, xd[1], n, 0, false)),
                new Case("attention", x -> { l.att().forward(x, y, n); return dot(y, r); }, xd -> l.att().backward(xd[0], r, xd[1], n, 0, false, false)),
                new Case("ffn", x -> { l.ffn().forward(x, y, n); return dot(y, r); }, xd -> l.ffn().backward(xd[0], r, xd[1], n, 0, false, false)),
                new Case("lm head", x -> headLoss(l.head(), x, targets, weights, n), xd -> {
                    l.head().forward(xd[0], n);
                    l.head().lossAndGradient(targets, 0, n, weights);
                    l.head().backward(xd[0], xd[1], n, 0, false);
                }));
        List<String> failures = new ArrayList<>();
        int checked = 0;
        for (Case c : cases) {
            Mat x = TinyConfigs.randomMat(D, rows, d, 23);
            c.objective().applyAsDouble(x); // the forward that backward reads
            Mat dx = Mat.allocate(D, rows, d);
            c.gradient().accept(new Mat[] {x, dx});
            SplittableRandom pick = new SplittableRandom(3);
            for (int s = 0; s < 16; s++) {
                // spread over rows and over every chain's columns
                int row = pick.nextInt(rows), col = (int) ((s + pick.nextDouble()) * d / 16);
                double orig = x.get(row, col);
                x.set(row, col, orig + EPS);
                double lp = c.objective().applyAsDouble(x);
                x.set(row, col, orig - EPS);
                double lm = c.objective().applyAsDouble(x);
                x.set(row, col, orig);
                double numeric = (lp - lm) / (2 * EPS), analytic = dx.get(row, col);
                if (Math.abs(numeric - analytic) > 1e-7 + 1e-5 * Math.max(Math.abs(numeric), Math.abs(analytic))) {
                    failures.add(c.name() + " dx[" + row + "," + col + "]: analytic " + analytic + " numeric " + numeric);
                }
                checked++;
            }
        }
        assertTrue(failures.isEmpty(), cfg + "\ninput-gradient mismatches (" + failures.size() + " of " + checked + "):\n"
                + String.join("\n", failures));
    }

    private static double headLoss(LmHead head, Mat x, int[] targets, double[] weights, int n) {
        head.forward(x, n);
        double s = 0;
        for (int k = 1; k <= n; k++) {
            s += weights[k - 1] * head.loss(k, targets, 0);
        }
        return s;
    }

    private static double dot(Mat a, Mat b) {
        double s = 0;
        for (int i = 0; i < a.rows; i++) {
            for (int j = 0; j < a.cols; j++) {
                s += a.get(i, j) * b.get(i, j);
            }
        }
        return s;
    }

}
