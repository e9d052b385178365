package io.catena.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.catena.model.io.TrainingState;
import io.catena.model.optim.AdamW;
import io.catena.model.train.Recipe;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * A grown chain's own warm-up: after a growth at step s, the appended chains' learning rate is the schedule's times
 * min(1, (step - s) / growth_warmup_steps) while the old chains get the schedule's; the growth is read from the
 * checkpoint info that {@link ChainExpansion} writes.
 */
class GrowthWarmupTest {

    private static final AdamW.Settings RAMP4 = new AdamW.Settings(0.9, 0.95, 1e-8, 0.1, 1.0, 4);

    private static Params filled(ParamLayout l, long seed) {
        Params p = new Params(l, DataType.FLOAT);
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < p.buf().length(); i++) {
            p.buf().set(i, r.nextDouble() - 0.5);
        }
        return p;
    }

    private static Params copy(Params p) {
        Params c = new Params(p.layout(), p.dataType());
        for (int i = 0; i < p.buf().length(); i++) {
            c.buf().set(i, p.buf().get(i));
        }
        return c;
    }

    @Test
    void newChainsRampWhileOldChainsFollowTheSchedule() {
        ColmConfig cfg = TinyConfigs.airSwigluRmsNorm(); // chains {2,2,4}
        ParamLayout l = new ParamLayout(cfg);
        AdamW grown = new AdamW(l, RAMP4, 0, 2, 10);
        assertEquals(1.0, grown.grownChainsLrFactor(10), 0.0, "the step before the growth");
        assertEquals(0.25, grown.grownChainsLrFactor(11), 0.0, "first step after the growth: 1/N");
        assertEquals(0.5, grown.grownChainsLrFactor(12), 0.0);
        assertEquals(1.0, grown.grownChainsLrFactor(14), 0.0);
        assertEquals(1.0, grown.grownChainsLrFactor(500), 0.0);
        assertEquals(1.0 / 30, new AdamW(l, AdamW.Settings.defaults(), 0, 2, 10).grownChainsLrFactor(11), 0.0, "30 steps by default");
        assertEquals(1.0, new AdamW(l, new AdamW.Settings(0.9, 0.95, 1e-8, 0.1, 1.0, 0), 0, 2, 10).grownChainsLrFactor(11), 0.0,
                "0: no ramp");

        // the grown optimizer at step 12 (factor 0.5) against plain ones at lr and lr/2
        assertGrownStepIsPlainStepAtFactor(l, grown, new AdamW(l, RAMP4, 0), 12, 1e-2, 0.5);
    }

    /**
     * One step of {@code grown} (chains 2.. appended) equals, bit for bit, {@code plain}'s step at lr on the old chains
     * and at factor x lr on the new ones; the moments do not depend on the rate.
     */
    private static void assertGrownStepIsPlainStepAtFactor(ParamLayout l, AdamW grown, AdamW plain, long step, double lr,
                                                           double factor) {
        int from = (int) l.prefixSize(2);
        Params p = filled(l, 1), g = filled(l, 2), m = filled(l, 3), v = filled(l, 4);
        for (int i = 0; i < v.buf().length(); i++) {
            v.buf().set(i, Math.abs(v.buf().get(i)));
        }
        Params pg = copy(p), mg = copy(m), vg = copy(v);
        grown.step(pg, g, mg, vg, step, lr);
        Params pa = copy(p), ma = copy(m), va = copy(v);
        plain.step(pa, g, ma, va, step, lr);
        Params pf = copy(p), mf = copy(m), vf = copy(v);
        plain.step(pf, g, mf, vf, step, factor * lr);
        for (int i = 0; i < p.buf().length(); i++) {
            Params want = i < from ? pa : pf;
            assertEquals(Float.floatToIntBits((float) want.buf().get(i)), Float.floatToIntBits((float) pg.buf().get(i)),
                    (i < from ? "old" : "new") + " chain element " + i);
            assertEquals(ma.buf().get(i), mg.buf().get(i), 0.0, "moments do not depend on the rate");
        }
        assertNotEquals(pa.buf().get(from), pf.buf().get(from), "the two rates differ on the new chain");
    }

    /** growth_new_chain_lr multiplies the appended chains' rate, on top of their ramp; the old chains keep the schedule's. */
    @Test
    void theNewChainLrMultiplierScalesOnlyTheGrownChains() {
        ColmConfig cfg = TinyConfigs.airSwigluRmsNorm(); // chains {2,2,4}
        ParamLayout l = new ParamLayout(cfg);
        AdamW.Settings x3ramp4 = new AdamW.Settings(0.9, 0.95, 1e-8, 0.1, 1.0, 4, 3.0);
        AdamW grown = new AdamW(l, x3ramp4, 0, 2, 10);
        assertEquals(1.0, grown.grownChainsLrFactor(10), 0.0, "before the growth");
        assertEquals(0.75, grown.grownChainsLrFactor(11), 1e-15, "ramp 1/4 times 3");
        assertEquals(3.0, grown.grownChainsLrFactor(100), 0.0);
        assertEquals(3.0, new AdamW(l, new AdamW.Settings(0.9, 0.95, 1e-8, 0.1, 1.0, 0, 3.0), 0, 2, 10).grownChainsLrFactor(11), 0.0);
        assertEquals(1.0, new AdamW(l, x3ramp4, 0).grownChainsLrFactor(100), 0.0, "never grown: no multiplier");
        assertEquals(1.0, AdamW.Settings.defaults().growthNewChainLr(), 0.0, "default: the schedule's rate");
        assertEquals(2.5, Recipe.of(Map.of("growth_new_chain_lr", "2.5"), "t").trainSettings().adamW().growthNewChainLr(), 0.0);
        assertThrows(IllegalArgumentException.class, () -> new AdamW.Settings(0.9, 0.95, 1e-8, 0.1, 1.0, 4, 0.0));
        assertGrownStepIsPlainStepAtFactor(l, grown, new AdamW(l, x3ramp4, 0), 100, 1e-3, 3.0);
    }

    @Test
    void theGrowthIsReadFromTheCheckpointInfo() {
        ColmConfig small = new ColmConfig(11, 4, List.of(1, 1), 1, 0, 2.0, ColmConfig.Activation.GELU, ColmConfig.NormKind.LAYERNORM,
                1e-5, 10000.0, ColmConfig.Variant.COLM, 16, true, null);
        Params p = new Params(new ParamLayout(small), DataType.FLOAT);
        p.initialize(1, 0);
        TrainingState st = new TrainingState(small, p, null, null, 37, 0, 0, 0, Map.of());
        TrainingState grown = ChainExpansion.expand(st, List.of(2), false, null, 5);
        AdamW opt = AdamW.forState(grown.params().layout(), RAMP4, 0, grown.info());
        assertEquals(0.25, opt.grownChainsLrFactor(38), 0.0);
        assertEquals(1.0, opt.grownChainsLrFactor(41), 0.0);
        assertEquals(1.0, AdamW.forState(p.layout(), RAMP4, 0, Map.of()).grownChainsLrFactor(38), 0.0, "never grown");
        assertEquals(4, Recipe.of(Map.of("growth_warmup_steps", "4"), "t").trainSettings().adamW().growthWarmupSteps());
        assertThrows(IllegalArgumentException.class, () -> new AdamW.Settings(0.9, 0.95, 1e-8, 0.1, 1.0, -1));
    }

    @Test
    void theScheduleReWarmsAtTheGrowthStep() {
        io.catena.model.train.TrainSettings s = Recipe.of(Map.of("steps", "600", "lr", "3e-3", "min_lr", "3e-4", "warmup_steps", "30"),
                "t").trainSettings();
        assertEquals(1.0, s.growthLrRewarm(), 0.0, "the growth recipe's default");
        Map<String, Object> ckpt = Map.of("lr_schedule", s.schedule().toMap(), "expanded_at_step", 500L);
        io.catena.model.optim.LrSchedule grown = s.scheduleResuming(ckpt, 500, false);
        assertEquals(1.5e-3, grown.at(501), 1e-6, "a sixth of the run left: back at half the peak (3 x 1/6) right after the growth");
        Map<String, Object> early = Map.of("lr_schedule", s.schedule().toMap(), "expanded_at_step", 300L);
        assertEquals(3e-3, s.scheduleResuming(early, 300, false).at(301), 1e-6, "half the run left: back at the peak (the cap is 1.5)");
        Map<String, Object> late = Map.of("lr_schedule", s.schedule().toMap(), "expanded_at_step", 590L);
        assertEquals(3e-4, s.scheduleResuming(late, 590, false).continueLr(), 1e-12, "10 of 600 steps left: 0.05 x the peak, but not below min_lr");
        io.catena.model.train.TrainSettings low = Recipe.of(Map.of("steps", "600", "lr", "3e-3", "growth_lr_rewarm", "0.25"), "t")
                .trainSettings();
        assertEquals(0.25 * 3e-3, low.scheduleResuming(Map.of("lr_schedule", low.schedule().toMap(), "expanded_at_step", 300L), 300,
                false).continueLr(), 1e-12, "a share below the cap is kept");
        assertEquals(3e-4, grown.at(600), 1e-12, "min_lr at the last step");
        assertEquals(s.schedule().at(499), grown.at(499), 0.0, "before the growth: unchanged");
        // a resume later in the grown run keeps the recorded (re-warmed) schedule instead of re-warming again
        Map<String, Object> later = Map.of("lr_schedule", grown.toMap(), "expanded_at_step", 500L);
        assertEquals(grown.at(550), s.scheduleResuming(later, 540, false).at(550), 0.0);
        // off: the schedule goes on from where it was
        io.catena.model.train.TrainSettings off = Recipe.of(Map.of("steps", "600", "lr", "3e-3", "growth_lr_rewarm", "0"), "t")
                .trainSettings();
        assertEquals(off.schedule().at(501), off.scheduleResuming(Map.of("lr_schedule", off.schedule().toMap(),
                "expanded_at_step", 500L), 500, false).at(501), 0.0);
        // a plain resume (no growth at that step) is not re-warmed
        assertEquals(s.schedule().at(501), s.scheduleResuming(Map.of("lr_schedule", s.schedule().toMap(),
                "expanded_at_step", 300L), 500, false).at(501), 0.0);
    }
}
