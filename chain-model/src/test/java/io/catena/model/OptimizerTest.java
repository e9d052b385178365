package io.catena.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.optim.AdamW;
import io.catena.model.optim.LrSchedule;
import java.util.EnumSet;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.DoubleSupplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * AdamW and the learning-rate schedule against independent float64 re-computations written here in the
 * textbook form (bias-corrected m-hat / v-hat, decoupled decay p -= lr * wd * p, global-norm clipping).
 * Both the scalar float64 path (tight tolerance) and the fused float32 Vector API path (float tolerance)
 * are checked.
 */
class OptimizerTest {

    static Stream<DataType> types() {
        return Stream.of(DataType.DOUBLE, DataType.FLOAT);
    }

    /** Absolute slack allowed on a value of magnitude x for the given buffer type. */
    private static double tol(DataType type, double x) {
        return type == DataType.DOUBLE ? 1e-14 + 1e-12 * Math.abs(x) : 2e-7 + 2e-6 * Math.abs(x);
    }

    /** The test's own no-decay rule: norm gains, norm biases and linear biases (by name), decay on everything else. */
    private static boolean decayedByName(String name) {
        return !(name.endsWith(".bias") || name.endsWith(".gain"));
    }

    private static boolean[] decayMask(ParamLayout layout) {
        boolean[] mask = new boolean[(int) layout.size()];
        for (ParamLayout.Entry e : layout.entries()) {
            for (long i = e.offset(); i < e.offset() + e.size(); i++) {
                mask[(int) i] = decayedByName(e.name());
            }
        }
        return mask;
    }

    private static double[] snap(Params p) {
        double[] a = new double[p.buf().length()];
        for (int i = 0; i < a.length; i++) {
            a[i] = p.buf().get(i);
        }
        return a;
    }

    private static void fill(Params p, int from, int to, DoubleSupplier s) {
        for (int i = from; i < to; i++) {
            p.buf().set(i, s.getAsDouble());
        }
    }

    /** Gradients spread over four decades so that eps and the bias corrections both matter. */
    private static DoubleSupplier gradients(SplittableRandom r) {
        return () -> Params.gaussian(r) * Math.pow(10, -4 + 4 * r.nextDouble());
    }

    /** Textbook AdamW on [from, n), in place, float64. */
    private static void reference(double[] p, double[] g, double[] m, double[] v, boolean[] decayed, int from, long t,
                                  double lr, AdamW.Settings s, double gradScale) {
        for (int i = from; i < p.length; i++) {
            double gi = g[i] * gradScale;
            m[i] = s.beta1() * m[i] + (1 - s.beta1()) * gi;
            v[i] = s.beta2() * v[i] + (1 - s.beta2()) * gi * gi;
            double mHat = m[i] / (1 - Math.pow(s.beta1(), t));
            double vHat = v[i] / (1 - Math.pow(s.beta2(), t));
            double decay = decayed[i] ? lr * s.weightDecay() * p[i] : 0;
            p[i] = p[i] - decay - lr * mHat / (Math.sqrt(vHat) + s.eps());
        }
    }

    private static void assertMatches(double[] expected, Params actual, int from, DataType type, String what) {
        ParamLayout layout = actual.layout();
        for (ParamLayout.Entry e : layout.entries()) {
            for (int i = (int) Math.max(e.offset(), from); i < e.offset() + e.size(); i++) {
                double a = actual.buf().get(i);
                if (!(Math.abs(a - expected[i]) <= tol(type, expected[i]))) {
                    throw new AssertionError(what + " " + e.name() + "[" + (i - e.offset()) + "] (" + type + "): expected "
                            + expected[i] + " got " + a);
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("types")
    void decoupledDecayShrinksWeightsByLrTimesWdAndLeavesNormsAndBiasesAlone(DataType type) {
        ColmConfig cfg = TinyConfigs.colmGeluLayerNorm(); // linear biases and LayerNorm: every Kind is present
        ParamLayout layout = new ParamLayout(cfg);
        EnumSet<ParamLayout.Kind> seen = EnumSet.noneOf(ParamLayout.Kind.class);
        layout.entries().forEach(e -> seen.add(e.kind()));
        assertEquals(EnumSet.allOf(ParamLayout.Kind.class), seen, "the test config must contain every kind of tensor");

        Params p = new Params(layout, type);
        SplittableRandom r = new SplittableRandom(11);
        fill(p, 0, (int) layout.size(), () -> (r.nextBoolean() ? 1 : -1) * (0.05 + r.nextDouble()));
        Params g = new Params(layout, type), m = new Params(layout, type), v = new Params(layout, type);
        double[] before = snap(p);
        double lr = 0.05, wd = 0.2;
        AdamW opt = new AdamW(layout, new AdamW.Settings(0.9, 0.95, 1e-8, wd, 1.0), 0);
        double norm = opt.step(p, g, m, v, 1, lr);
        assertEquals(0.0, norm, "gradient norm of zero gradients");

        int decayedCount = 0, keptCount = 0;
        for (ParamLayout.Entry e : layout.entries()) {
            for (int i = (int) e.offset(); i < e.offset() + e.size(); i++) {
                double w = before[i], now = p.buf().get(i);
                if (decayedByName(e.name())) {
                    decayedCount++;
                    double shrink = w - now;
                    if (!(Math.abs(shrink - lr * wd * w) <= (type == DataType.DOUBLE ? 1e-15 : 3e-7) * Math.abs(w))) {
                        throw new AssertionError(e.name() + " (" + e.kind() + ") [" + (i - e.offset()) + "] " + type
                                + ": shrank by " + shrink + ", expected lr*wd*w = " + lr * wd * w);
                    }
                } else {
                    keptCount++;
                    if (now != w) {
                        throw new AssertionError(e.name() + " (" + e.kind() + ") must not decay: " + w + " -> " + now);
                    }
                }
                assertEquals(0.0, m.buf().get(i), "first moment of a zero gradient");
                assertEquals(0.0, v.buf().get(i), "second moment of a zero gradient");
            }
        }
        assertTrue(decayedCount > 0 && keptCount > 0, "both decayed and non-decayed tensors were checked");
        // the layout's own flag agrees with the rule written here
        for (ParamLayout.Entry e : layout.entries()) {
            assertEquals(decayedByName(e.name()), e.kind().decayed(), e.name() + " " + e.kind());
        }
    }

    @ParameterizedTest
    @MethodSource("types")
    void twoStepsMatchTextbookAdamWWithBiasCorrectionEpsAndDecay(DataType type) {
        for (ColmConfig cfg : List.of(TinyConfigs.colmGeluLayerNorm(), TinyConfigs.airSwigluRmsNorm())) {
            ParamLayout layout = new ParamLayout(cfg);
            int n = (int) layout.size();
            SplittableRandom r = new SplittableRandom(5);
            Params p = TinyConfigs.randomParams(cfg, type, 7);
            Params g = new Params(layout, type), m = new Params(layout, type), v = new Params(layout, type);
            // beta2 far from 1, eps comparable to sqrt(v-hat): a misplaced eps or bias correction shows
            AdamW.Settings s = new AdamW.Settings(0.8, 0.9, 1e-4, 0.3, 0.0);
            AdamW opt = new AdamW(layout, s, 0);
            boolean[] decayed = decayMask(layout);
            double[] ep = snap(p), em = new double[n], ev = new double[n];
            double[] lrs = {3e-2, 1e-2};
            for (int t = 1; t <= 2; t++) {
                fill(g, 0, n, gradients(r));
                double[] eg = snap(g);
                double expectedNorm = 0;
                for (double x : eg) {
                    expectedNorm += x * x;
                }
                expectedNorm = Math.sqrt(expectedNorm);
                double norm = opt.step(p, g, m, v, t, lrs[t - 1]);
                assertEquals(expectedNorm, norm, (type == DataType.DOUBLE ? 1e-12 : 1e-5) * expectedNorm, "returned norm");
                reference(ep, eg, em, ev, decayed, 0, t, lrs[t - 1], s, 1.0);
                String at = cfg.variant() + " step " + t;
                assertMatches(em, m, 0, type, at + " m");
                assertMatches(ev, v, 0, type, at + " v");
                assertMatches(ep, p, 0, type, at + " param");
            }
        }
    }

    @ParameterizedTest
    @MethodSource("types")
    void clippingScalesGradientsByMaxNormOverNorm(DataType type) {
        ColmConfig cfg = TinyConfigs.colmGeluLayerNorm();
        ParamLayout layout = new ParamLayout(cfg);
        int n = (int) layout.size();
        Params g = new Params(layout, type);
        fill(g, 0, n, gradients(new SplittableRandom(3)));
        double[] eg = snap(g);
        double norm = 0;
        for (double x : eg) {
            norm += x * x;
        }
        norm = Math.sqrt(norm);
        double maxNorm = norm / 3;
        AdamW.Settings clipped = new AdamW.Settings(0.9, 0.95, 1e-6, 0.1, maxNorm);
        AdamW.Settings unclipped = new AdamW.Settings(0.9, 0.95, 1e-6, 0.1, 0.0);
        AdamW a = new AdamW(layout, clipped, 0);
        assertEquals(maxNorm / norm, a.clipScale(norm), 1e-15, "clip scale when the norm exceeds max_norm");
        assertEquals(1.0, a.clipScale(maxNorm * 0.99), "no scaling below max_norm");
        assertEquals(1.0, new AdamW(layout, unclipped, 0).clipScale(1e30), "clip_norm 0 turns clipping off");

        // (a) clipped optimizer on the raw gradient
        Params pa = TinyConfigs.randomParams(cfg, type, 9);
        Params ma = new Params(layout, type), va = new Params(layout, type);
        double[] ep = snap(pa);
        double returned = a.step(pa, g, ma, va, 1, 1e-2);
        assertEquals(norm, returned, (type == DataType.DOUBLE ? 1e-12 : 1e-5) * norm, "step returns the pre-clip norm");

        // (b) unclipped optimizer on the gradient pre-scaled by max_norm / norm
        Params pb = TinyConfigs.randomParams(cfg, type, 9);
        Params mb = new Params(layout, type), vb = new Params(layout, type), gb = new Params(layout, type);
        for (int i = 0; i < n; i++) {
            gb.buf().set(i, eg[i] * (maxNorm / norm));
        }
        new AdamW(layout, unclipped, 0).step(pb, gb, mb, vb, 1, 1e-2);
        assertMatches(snap(pb), pa, 0, type, "clipped vs pre-scaled param");
        assertMatches(snap(mb), ma, 0, type, "clipped vs pre-scaled m");
        assertMatches(snap(vb), va, 0, type, "clipped vs pre-scaled v");

        // (c) both against the float64 reference with the scale applied
        double[] em = new double[n], ev = new double[n];
        reference(ep, eg, em, ev, decayMask(layout), 0, 1, 1e-2, clipped, maxNorm / norm);
        assertMatches(em, ma, 0, type, "clipped m");
        assertMatches(ev, va, 0, type, "clipped v");
        assertMatches(ep, pa, 0, type, "clipped param");

        // (d) a max_norm above the norm leaves the update as if clipping were off
        Params pc = TinyConfigs.randomParams(cfg, type, 9);
        Params mc = new Params(layout, type), vc = new Params(layout, type);
        new AdamW(layout, new AdamW.Settings(0.9, 0.95, 1e-6, 0.1, norm * 1.5), 0).step(pc, g, mc, vc, 1, 1e-2);
        double[] ep2 = snap(TinyConfigs.randomParams(cfg, type, 9)), em2 = new double[n], ev2 = new double[n];
        reference(ep2, eg, em2, ev2, decayMask(layout), 0, 1, 1e-2, unclipped, 1.0);
        assertMatches(ep2, pc, 0, type, "unclipped param");
        assertMatches(em2, mc, 0, type, "unclipped m");
    }

    static Stream<Arguments> frozenCases() {
        return Stream.of(Arguments.of(1, DataType.DOUBLE), Arguments.of(2, DataType.DOUBLE), Arguments.of(1, DataType.FLOAT),
                Arguments.of(2, DataType.FLOAT));
    }

    @ParameterizedTest
    @MethodSource("frozenCases")
    void frozenChainsKeepParametersAndMomentsWhileTrainableChainsUpdate(int frozen, DataType type) {
        ColmConfig cfg = TinyConfigs.airGeluLayerNormThreeChains();
        ParamLayout layout = new ParamLayout(cfg);
        int n = (int) layout.size();
        int prefix = (int) layout.prefixSize(frozen);
        assertTrue(prefix > 0 && prefix < n);
        for (ParamLayout.Entry e : layout.entries()) {
            assertEquals(e.chain() < frozen, e.offset() + e.size() <= prefix, e.name() + " lies on the right side of the prefix");
        }
        SplittableRandom r = new SplittableRandom(21);
        Params p = TinyConfigs.randomParams(cfg, type, 4);
        Params g = new Params(layout, type), m = new Params(layout, type), v = new Params(layout, type);
        fill(g, 0, prefix, () -> 1e3 * (r.nextDouble() - 0.5)); // huge frozen gradients: must not enter the norm
        fill(g, prefix, n, gradients(r));
        fill(m, 0, n, () -> 0.01 * Params.gaussian(r)); // optimizer state from "earlier steps"
        fill(v, 0, n, () -> 1e-4 * r.nextDouble());
        double[] p0 = snap(p), g0 = snap(g), m0 = snap(m), v0 = snap(v);
        double trainNorm = 0;
        for (int i = prefix; i < n; i++) {
            trainNorm += g0[i] * g0[i];
        }
        trainNorm = Math.sqrt(trainNorm);
        AdamW.Settings s = new AdamW.Settings(0.9, 0.99, 1e-6, 0.1, trainNorm / 2);
        AdamW opt = new AdamW(layout, s, frozen);
        assertEquals(prefix, opt.trainableFrom());

        double norm = opt.step(p, g, m, v, 4, 2e-2);
        assertEquals(trainNorm, norm, (type == DataType.DOUBLE ? 1e-12 : 1e-5) * trainNorm, "norm over trainable chains only");
        for (int i = 0; i < prefix; i++) {
            if (p.buf().get(i) != p0[i] || m.buf().get(i) != m0[i] || v.buf().get(i) != v0[i]) {
                throw new AssertionError("frozen element " + i + " changed: p " + p0[i] + "->" + p.buf().get(i) + " m " + m0[i]
                        + "->" + m.buf().get(i) + " v " + v0[i] + "->" + v.buf().get(i));
            }
        }
        int changed = 0;
        for (int i = prefix; i < n; i++) {
            if (p.buf().get(i) != p0[i] && m.buf().get(i) != m0[i] && v.buf().get(i) != v0[i]) {
                changed++;
            }
        }
        assertEquals(n - prefix, changed, "every trainable parameter and both its moments must change");
        double[] ep = p0.clone(), em = m0.clone(), ev = v0.clone();
        reference(ep, g0, em, ev, decayMask(layout), prefix, 4, 2e-2, s, (trainNorm / 2) / trainNorm);
        assertMatches(ep, p, prefix, type, "trainable param");
        assertMatches(em, m, prefix, type, "trainable m");
        assertMatches(ev, v, prefix, type, "trainable v");
    }

    @Test
    void frozenChainCountIsValidatedAndNonFiniteNormChangesNothing() {
        ColmConfig cfg = TinyConfigs.airGeluLayerNormThreeChains();
        ParamLayout layout = new ParamLayout(cfg);
        for (int bad : new int[] {-1, 3}) {
            IllegalArgumentException ex = assertThrows(IllegalArgumentException.class,
                    () -> new AdamW(layout, AdamW.Settings.defaults(), bad));
            assertTrue(ex.getMessage().contains("frozen chains") && ex.getMessage().contains("got " + bad), ex.getMessage());
        }
        Params p = TinyConfigs.randomParams(cfg, DataType.FLOAT, 1);
        Params g = new Params(layout, DataType.FLOAT), m = new Params(layout, DataType.FLOAT), v = new Params(layout, DataType.FLOAT);
        fill(g, 0, (int) layout.size(), gradients(new SplittableRandom(2)));
        g.buf().set((int) layout.size() - 1, Double.NaN);
        double[] p0 = snap(p);
        IllegalStateException ex = assertThrows(IllegalStateException.class,
                () -> new AdamW(layout, AdamW.Settings.defaults(), 0).step(p, g, m, v, 1, 1e-2));
        assertTrue(ex.getMessage().contains("gradient norm is NaN"), ex.getMessage());
        for (int i = 0; i < p0.length; i++) {
            assertEquals(p0[i], p.buf().get(i), "parameter " + i + " after a refused step");
            assertEquals(0.0, m.buf().get(i));
            assertEquals(0.0, v.buf().get(i));
        }
    }

    /** The schedule as documented: peak * s / W for 1 <= s <= W; cosine from peak to min over (W, T]; min from T on. */
    private static double expectedLr(double peak, double min, long w, long total, long s) {
        if (w > 0 && s <= w) {
            return peak * s / w;
        }
        if (s >= total) {
            return min;
        }
        double progress = (double) (s - w) / (total - w);
        return min + (peak - min) * (1 + Math.cos(Math.PI * progress)) / 2;
    }

    @Test
    void scheduleWarmsUpLinearlyThenCosineDecaysToMinLr() {
        double peak = 6e-4, min = 6e-5;
        LrSchedule s = new LrSchedule(peak, min, 10, 110);
        assertEquals(0.0, s.at(0), 0.0, "step 0");
        assertEquals(peak / 10, s.at(1), 1e-18, "step 1 is one warmup step in");
        assertEquals(peak * 5 / 10, s.at(5), 1e-18);
        assertEquals(peak, s.at(10), 1e-18, "end of warmup is the peak");
        assertEquals((peak + min) / 2, s.at(60), 1e-15, "midpoint of the cosine");
        assertEquals(min + (peak - min) * (1 + Math.cos(Math.PI * 0.25)) / 2, s.at(35), 1e-15, "quarter of the cosine");
        assertEquals(min + (peak - min) * (1 + Math.cos(Math.PI * 0.99)) / 2, s.at(109), 1e-15, "one step before the end");
        assertEquals(min, s.at(110), 0.0, "last step");
        assertEquals(min, s.at(111), 0.0, "beyond the end");
        assertEquals(min, s.at(1_000_000), 0.0, "far beyond the end");
        double prev = Double.POSITIVE_INFINITY;
        for (long t = 0; t <= 200; t++) {
            double lr = s.at(t);
            assertEquals(expectedLr(peak, min, 10, 110, t), lr, 1e-15, "step " + t);
            if (t > 10) {
                assertTrue(lr <= prev, "non-increasing after warmup at step " + t);
            }
            prev = lr;
        }
        for (long t = 1; t <= 10; t++) {
            assertTrue(s.at(t) > s.at(t - 1), "warmup strictly increases at step " + t);
        }
        // no warmup: the cosine starts at the peak
        LrSchedule noWarm = new LrSchedule(1e-3, 0, 0, 100);
        assertEquals(1e-3, noWarm.at(0), 1e-18);
        assertEquals(5e-4, noWarm.at(50), 1e-15);
        assertEquals(expectedLr(1e-3, 0, 0, 100, 1), noWarm.at(1), 1e-18);
        assertEquals(0.0, noWarm.at(100), 0.0);
        // min == peak: constant after warmup
        LrSchedule flat = new LrSchedule(1e-3, 1e-3, 4, 20);
        assertEquals(5e-4, flat.at(2), 1e-18);
        for (long t = 4; t <= 30; t++) {
            assertEquals(1e-3, flat.at(t), 1e-18, "flat schedule at step " + t);
        }
    }

    @Test
    void badSchedulesAndSettingsAreRefusedWithTheSettingNamed() {
        record Bad(Runnable make, String... words) {
        }
        List<Bad> bad = List.of(
                new Bad(() -> new LrSchedule(0, 0, 1, 10), "lr=0.0"),
                new Bad(() -> new LrSchedule(-1e-3, 0, 1, 10), "lr=-0.001"),
                new Bad(() -> new LrSchedule(Double.NaN, 0, 1, 10), "lr=NaN"),
                new Bad(() -> new LrSchedule(1e-3, -1e-5, 1, 10), "min_lr=-1.0E-5"),
                new Bad(() -> new LrSchedule(1e-3, 2e-3, 1, 10), "min_lr=0.002", "min_lr <= lr"),
                new Bad(() -> new LrSchedule(1e-3, 0, -1, 10), "warmup_steps", "-1"),
                new Bad(() -> new LrSchedule(1e-3, 0, 0, 0), "steps >= 1"),
                new Bad(() -> new AdamW.Settings(1.0, 0.95, 1e-8, 0.1, 1), "beta1=1.0"),
                new Bad(() -> new AdamW.Settings(0.9, -0.1, 1e-8, 0.1, 1), "beta2=-0.1"),
                new Bad(() -> new AdamW.Settings(0.9, 0.95, 0, 0.1, 1), "eps=0.0"),
                new Bad(() -> new AdamW.Settings(0.9, 0.95, 1e-8, -0.1, 1), "weight_decay=-0.1"),
                new Bad(() -> new AdamW.Settings(0.9, 0.95, 1e-8, 0.1, -1), "clip_norm=-1.0"),
                // not-a-number and infinite settings (a recipe's number reader accepts "NaN" and "Infinity")
                new Bad(() -> new AdamW.Settings(0.9, 0.95, 1e-8, Double.NaN, 1), "weight_decay=NaN"),
                new Bad(() -> new AdamW.Settings(0.9, 0.95, 1e-8, 0.1, Double.NaN), "clip_norm=NaN"),
                new Bad(() -> new AdamW.Settings(0.9, 0.95, 1e-8, Double.POSITIVE_INFINITY, 1), "weight_decay=Infinity"),
                new Bad(() -> new LrSchedule(1e-3, Double.NaN, 1, 10), "min_lr=NaN"),
                new Bad(() -> new LrSchedule(Double.POSITIVE_INFINITY, 0, 1, 10), "lr=Infinity"));
        for (Bad b : bad) {
            IllegalArgumentException ex = assertThrows(IllegalArgumentException.class, b.make::run);
            for (String w : b.words) {
                assertTrue(ex.getMessage().contains(w), "'" + ex.getMessage() + "' should contain '" + w + "'");
            }
        }
    }
}
