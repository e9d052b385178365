package io.catena.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * Central differences use eps 1e-6: with 1e-4 the truncation error of narrow per-chain norms
 * already exceeds the tolerance (seen), so a larger eps would make this test flaky, not stricter.
 *
 * The whole model's analytic gradient (every layer's explicit backward chained together) against
 * central finite differences of the multi-chain loss, in float64, for every tensor of the layout.
 */
class GradientCheckTest {

    static List<ColmConfig> configs() {
        return TinyConfigs.all();
    }

    @ParameterizedTest
    @MethodSource("configs")
    void shouldMatchFiniteDifferencesForEveryParameterTensor(ColmConfig cfg) {
        int batch = 2, seq = 5;
        Params params = TinyConfigs.randomParams(cfg, DataType.DOUBLE, 42);
        Params grads = new Params(params.layout(), DataType.DOUBLE);
        ColmModel model = new ColmModel(cfg, params, grads, batch, seq);
        int[] inputs = TinyConfigs.randomTokens(batch * seq, cfg.vocabSize(), 7);
        int[] targets = TinyConfigs.randomTokens(batch * seq, cfg.vocabSize(), 8);

        model.forwardBackward(inputs, targets, 0, 0, false, 1.0);
        double[] analytic = new double[(int) params.layout().size()];
        for (int i = 0; i < analytic.length; i++) {
            analytic[i] = grads.buf().get(i);
        }

        double eps = Double.parseDouble(System.getProperty("gc.eps", "1e-6"));
        int checked = 0;
        Set<ParamLayout.Kind> kinds = new TreeSet<>();
        List<String> failures = new ArrayList<>();
        for (ParamLayout.Entry e : params.layout().entries()) {
            int n = (int) e.size();
            // a few spread-out elements of every tensor, always including the first and last
            int[] picks = {0, n / 3, (2 * n) / 3, n - 1};
            for (int pick : picks) {
                int idx = (int) e.offset() + pick;
                double orig = params.buf().get(idx);
                params.buf().set(idx, orig + eps);
                double lp = loss(model, cfg, inputs, targets);
                params.buf().set(idx, orig - eps);
                double lm = loss(model, cfg, inputs, targets);
                params.buf().set(idx, orig);
                double numeric = (lp - lm) / (2 * eps);
                double a = analytic[idx];
                double tol = 1e-7 + 1e-5 * Math.max(Math.abs(a), Math.abs(numeric));
                if (Math.abs(a - numeric) > tol) {
                    failures.add(e.name() + "[" + pick + "]: analytic " + a + " numeric " + numeric);
                }
                checked++;
            }
            kinds.add(e.kind());
        }
        assertTrue(failures.isEmpty(), cfg + "\ngradient mismatches (" + failures.size() + " of " + checked + "):\n"
                + String.join("\n", failures));
        // every parameter kind the config has was exercised
        Set<ParamLayout.Kind> expected = new TreeSet<>();
        params.layout().entries().forEach(x -> expected.add(x.kind()));
        assertEquals(expected, kinds);
    }

    private static double loss(ColmModel model, ColmConfig cfg, int[] inputs, int[] targets) {
        model.forward(inputs, 0, cfg.numChains());
        double[] l = model.losses(targets, 0);
        double s = 0;
        for (int j = 0; j < l.length; j++) {
            s += cfg.lossWeights().get(j) * l[j];
        }
        return s;
    }
}
