package io.catena.model.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.ChainExpansion;
import io.catena.model.ColmConfig;
import io.catena.model.ColmModel;
import io.catena.model.Params;
import io.catena.model.io.TrainingState;
import io.catena.model.kernel.ActivationMemory;
import io.catena.model.kernel.Mat;
import io.catena.model.optim.AdamW;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * The pipeline's contract: P stages in threads over in-memory links, with M micro-batches under
 * either schedule, give the per-scale losses and the whole gradient vector of one
 * ColmModel.forwardBackward over the global batch (what LocalTrainer computes).
 */
class PipelineEquivalenceTest {
    static final int MICRO_BATCH = 2;
    static final int SEQ = 5;
    /** Max |pipeline - reference| over max |reference|, per precision (measured: <= 6.4e-7 float32, <= 3.3e-16 float64). */
    static final double FLOAT_TOL = 2e-6;
    static final double DOUBLE_TOL = 1e-13;

    static Stream<Arguments> cases() {
        List<Arguments> list = new ArrayList<>();
        for (ColmConfig cfg : PipelineHarness.configs()) {
            for (int pp : new int[] {2, 3}) {
                for (int m : new int[] {1, 2, 4}) {
                    for (PipelineSchedule.Kind kind : PipelineSchedule.Kind.values()) {
                        for (DataType type : new DataType[] {DataType.FLOAT, DataType.DOUBLE}) {
                            list.add(Arguments.of(cfg.chains() + "/" + cfg.variant(), cfg, pp, m, kind, type));
                        }
                    }
                }
            }
        }
        return list.stream();
    }

    @ParameterizedTest(name = "{0} pp={2} M={3} {4} {5}")
    @MethodSource("cases")
    void shouldMatchWholeBatchForwardBackward(String name, ColmConfig cfg, int pp, int micros, PipelineSchedule.Kind kind, DataType type) {
        Params params = PipelineHarness.randomParams(cfg, type, 11);
        PipelineHarness.Pipeline pipe = new PipelineHarness.Pipeline(cfg, params, pp, micros, MICRO_BATCH, SEQ, kind, false);
        assertMatchesWholeBatch(name, cfg, params, pipe, micros, type);
    }

    /** Stage boundaries between a block's attention and FFN halves (where the cost model may put them). */
    static Stream<Arguments> halfBlockCases() {
        List<Arguments> list = new ArrayList<>();
        for (ColmConfig cfg : PipelineHarness.configs()) {
            int units = 2 * cfg.layers();
            for (int[] ends : new int[][] {{3, units}, {1, units - 1, units}}) {
                for (PipelineSchedule.Kind kind : PipelineSchedule.Kind.values()) {
                    for (DataType type : new DataType[] {DataType.FLOAT, DataType.DOUBLE}) {
                        list.add(Arguments.of(cfg.chains() + "/" + cfg.variant(), cfg, ends, kind, type));
                    }
                }
            }
        }
        return list.stream();
    }

    @ParameterizedTest(name = "{0} sublayer ends {2} {3} {4}")
    @MethodSource("halfBlockCases")
    void stagesSplitInsideBlocksShouldMatchWholeBatchForwardBackward(String name, ColmConfig cfg, int[] ends, PipelineSchedule.Kind kind,
                                                                      DataType type) {
        Params params = PipelineHarness.randomParams(cfg, type, 12);
        int micros = 4;
        StagePlan plan = StagePlan.plan(cfg, ends.length, MICRO_BATCH, SEQ).withUnitEnds(ends);
        assertEquals(1, plan.stage(0).endUnit() % 2, plan.describe());
        PipelineHarness.Pipeline pipe = new PipelineHarness.Pipeline(cfg, params, plan, micros, MICRO_BATCH, SEQ, kind, false);
        assertMatchesWholeBatch(name + " " + java.util.Arrays.toString(ends), cfg, params, pipe, micros, type);
        // recomputation through half blocks reproduces the kept activations exactly
        PipelineHarness.Pipeline recompute = new PipelineHarness.Pipeline(cfg, params, plan, micros, MICRO_BATCH, SEQ, kind, true);
        int n = micros * MICRO_BATCH * SEQ;
        int[] inputs = PipelineHarness.randomTokens(n, cfg.vocabSize(), 7);
        int[] targets = PipelineHarness.randomTokens(n, cfg.vocabSize(), 8);
        double[] lossKeep = pipe.step(5, inputs, targets, 0).get(ends.length - 1).losses();
        double[] lossRecompute = recompute.step(5, inputs, targets, 0).get(ends.length - 1).losses();
        assertArrayEquals(lossKeep, lossRecompute, 0.0);
        assertArrayEquals(PipelineHarness.copy(pipe.grads), PipelineHarness.copy(recompute.grads), 0.0);
    }

    /** Two steps of the pipeline against ColmModel.forwardBackward over the whole batch: losses and every gradient. */
    static void assertMatchesWholeBatch(String name, ColmConfig cfg, Params params, PipelineHarness.Pipeline pipe, int micros, DataType type) {
        int pp = pipe.plan.numStages();
        int frozen = 0;
        // two steps on different data: the second must overwrite the first's gradients, not add to them
        for (long step = 0; step < 2; step++) {
            int n = micros * MICRO_BATCH * SEQ;
            int[] inputs = PipelineHarness.randomTokens(n, cfg.vocabSize(), 100 + step);
            int[] targets = PipelineHarness.randomTokens(n, cfg.vocabSize(), 200 + step);
            long allocatedBefore = ActivationMemory.allocatedBytes();
            List<PipelineRunner.StepResult> results = pipe.step(step, inputs, targets, frozen);
            if (step > 0) {
                assertEquals(allocatedBefore, ActivationMemory.allocatedBytes(), "a steady-state step allocates no buffers");
            }

            Params refGrads = new Params(params.layout(), type);
            ColmModel ref = new ColmModel(cfg, params, refGrads, micros * MICRO_BATCH, SEQ);
            double[] refLosses = ref.forwardBackward(inputs, targets, 0, frozen, false, 1.0);

            double[] losses = results.get(pp - 1).losses();
            double[] grads = PipelineHarness.copy(pipe.grads);
            double[] expected = PipelineHarness.copy(refGrads);
            double tol = type == DataType.FLOAT ? FLOAT_TOL : DOUBLE_TOL;
            if (micros == 1) {
                // the very same operations on the same rows: bit for bit
                assertArrayEquals(refLosses, losses, 0.0, name + " losses");
                assertArrayEquals(expected, grads, 0.0, name + " gradients");
            } else {
                assertEquals(refLosses.length, losses.length);
                for (int j = 0; j < losses.length; j++) {
                    assertEquals(refLosses[j], losses[j], tol * Math.abs(refLosses[j]), "loss of scale " + (j + 1));
                }
                assertClose(expected, grads, tol, name + " step " + step);
            }
            for (int s = 0; s < pp; s++) {
                assertTrue(s == pp - 1 || results.get(s).losses() == null, "only the last stage reports losses");
                PipelineRunner.StepTiming t = results.get(s).timing();
                assertTrue(t.computeNanos() > 0 && t.waitNanos() >= 0 && t.sendNanos() >= 0, t.toString());
            }
        }
    }

    /** Max abs difference relative to the largest expected element, printed so the achieved tolerance is visible. */
    static double assertClose(double[] expected, double[] actual, double tol, String what) {
        assertEquals(expected.length, actual.length);
        double scale = 0;
        double maxDiff = 0;
        int worst = -1;
        for (int i = 0; i < expected.length; i++) {
            scale = Math.max(scale, Math.abs(expected[i]));
            double d = Math.abs(expected[i] - actual[i]);
            if (d > maxDiff || Double.isNaN(d)) {
                maxDiff = d;
                worst = i;
            }
        }
        assertTrue(scale > 0, "the expected vector is all zero: the test would prove nothing");
        double rel = maxDiff / scale;
        System.out.printf("%s: max |diff| %.3e, relative to max |expected| %.3e%n", what, maxDiff, rel);
        assertTrue(rel <= tol, what + ": element " + worst + " differs by " + maxDiff + " (expected " + expected[worst]
                + ", got " + actual[worst] + "), " + rel + " of the largest expected element > " + tol);
        return rel;
    }

    static Stream<Arguments> recomputeCases() {
        List<Arguments> list = new ArrayList<>();
        for (ColmConfig cfg : PipelineHarness.configs()) {
            for (int pp : new int[] {2, 3}) {
                for (PipelineSchedule.Kind kind : PipelineSchedule.Kind.values()) {
                    list.add(Arguments.of(cfg.chains() + "/" + cfg.variant(), cfg, pp, 4, kind));
                }
            }
        }
        return list.stream();
    }

    @ParameterizedTest(name = "{0} pp={2} M={3} {4}")
    @MethodSource("recomputeCases")
    void recomputationShouldGiveTheSameGradientsBitForBit(String name, ColmConfig cfg, int pp, int micros, PipelineSchedule.Kind kind) {
        Params params = PipelineHarness.randomParams(cfg, DataType.FLOAT, 3);
        int n = micros * MICRO_BATCH * SEQ;
        int[] inputs = PipelineHarness.randomTokens(n, cfg.vocabSize(), 5);
        int[] targets = PipelineHarness.randomTokens(n, cfg.vocabSize(), 6);
        PipelineHarness.Pipeline keep = new PipelineHarness.Pipeline(cfg, params, pp, micros, MICRO_BATCH, SEQ, kind, false);
        PipelineHarness.Pipeline recompute = new PipelineHarness.Pipeline(cfg, params, pp, micros, MICRO_BATCH, SEQ, kind, true);
        double[] lossKeep = keep.step(0, inputs, targets, 0).get(pp - 1).losses();
        double[] lossRecompute = recompute.step(0, inputs, targets, 0).get(pp - 1).losses();
        assertArrayEquals(lossKeep, lossRecompute, 0.0);
        double[] a = PipelineHarness.copy(keep.grads);
        double[] b = PipelineHarness.copy(recompute.grads);
        assertTrue(java.util.Arrays.stream(a).anyMatch(x -> x != 0));
        assertArrayEquals(a, b, 0.0, name + ": recomputed forward must reproduce the saved activations exactly");
    }

    /** Growth with pp > 1: grow by a chain, re-plan, rebuild the stages; old chains frozen as after expansion. */
    @Test
    void grownModelShouldTrainThroughReplannedStages() {
        ColmConfig cfg = PipelineHarness.colmGelu();
        TrainingState old = new TrainingState(cfg, PipelineHarness.randomParams(cfg, DataType.FLOAT, 9), null, null, 0, 0, 0, 0,
                java.util.Map.of());
        TrainingState grown = ChainExpansion.expand(old, List.of(2), true, null, 4);
        ColmConfig g = grown.config();
        int micros = 2;
        int pp = 2;
        Params params = grown.params();
        PipelineHarness.Pipeline pipe = new PipelineHarness.Pipeline(g, params, pp, micros, MICRO_BATCH, SEQ,
                PipelineSchedule.Kind.ONE_F_ONE_B, false);
        assertEquals(StagePlan.plan(cfg, pp, MICRO_BATCH, SEQ).replan(g).stages(), pipe.plan.stages());
        int n = micros * MICRO_BATCH * SEQ;
        int[] inputs = PipelineHarness.randomTokens(n, g.vocabSize(), 1);
        int[] targets = PipelineHarness.randomTokens(n, g.vocabSize(), 2);
        int frozen = grown.frozenChains();
        double[] losses = pipe.step(0, inputs, targets, frozen).get(pp - 1).losses();
        Params refGrads = new Params(params.layout(), DataType.FLOAT);
        double[] refLosses = new ColmModel(g, params, refGrads, micros * MICRO_BATCH, SEQ)
                .forwardBackward(inputs, targets, 0, frozen, false, 1.0);
        for (int j = 0; j < refLosses.length; j++) {
            assertEquals(refLosses[j], losses[j], FLOAT_TOL * refLosses[j]);
        }
        double[] grads = PipelineHarness.copy(pipe.grads);
        assertClose(PipelineHarness.copy(refGrads), grads, FLOAT_TOL, "grown model");
        long oldSize = old.params().layout().size();
        for (int i = 0; i < oldSize; i++) {
            assertEquals(0.0, grads[i], "frozen old chains get no gradient (element " + i + ")");
        }
    }

    /** Peak activation memory with and without recomputation: every buffer is allocated when the stage is built. */
    @Test
    void recomputationShouldHoldLessActivationMemory() {
        ColmConfig cfg = PipelineHarness.colmGelu();
        Params params = PipelineHarness.randomParams(cfg, DataType.FLOAT, 1);
        Params grads = new Params(params.layout(), DataType.FLOAT);
        int micros = 8;
        int microBatch = 4;
        int seq = 16;
        StagePlan plan = StagePlan.plan(cfg, 2, microBatch, seq);
        for (int s = 0; s < 2; s++) {
            int stage = s;
            long keep = footprint(() -> new PipelineStage(cfg, params, grads, plan, stage, microBatch, seq, micros, false));
            long recompute = footprint(() -> new PipelineStage(cfg, params, grads, plan, stage, microBatch, seq, micros, true));
            long oneSlot = footprint(() -> new PipelineStage(cfg, params, grads, plan, stage, microBatch, seq, 1, false));
            long perSlot = (keep - oneSlot) / (micros - 1);
            long estimate = plan.stage(stage).activationBytesPerMicroBatch();
            System.out.printf("stage %d of 2, GPipe M=%d, micro-batch %dx%d: %d bytes keeping activations, %d recomputing "
                    + "(%d with one slot); %d bytes per extra micro-batch in flight, cost model estimate %d%n",
                    stage, micros, microBatch, seq, keep, recompute, oneSlot, perSlot, estimate);
            assertTrue(recompute * 3 < keep, "recomputation should keep far less than " + micros + " slots of activations: "
                    + recompute + " vs " + keep + " bytes");
            // what recomputation keeps per slot: nothing on stage 0 (its tokens suffice); the stage input on later
            // stages, and on the last also the output gradient the loss produced (one of those exists without it too)
            long mat = (long) microBatch * seq * (cfg.dModel() + Mat.ROW_PAD) * Float.BYTES;
            boolean last = stage == 1;
            assertEquals(oneSlot + (stage == 0 ? 0 : micros * mat) + (last ? (micros - 1) * mat : 0), recompute,
                    "bytes a recomputing stage " + stage + " holds");
            assertTrue(estimate > perSlot / 2 && estimate < perSlot * 2, "cost model's activation bytes " + estimate
                    + " should be near the measured " + perSlot);
        }
    }

    private static long footprint(java.util.function.Supplier<PipelineStage> build) {
        long before = ActivationMemory.allocatedBytes();
        PipelineStage stage = build.get();
        assertTrue(stage.slots() > 0);
        return ActivationMemory.allocatedBytes() - before;
    }

    @Test
    void singleStagePipelineIsColmModel() {
        ColmConfig cfg = PipelineHarness.airSwiglu();
        Params params = PipelineHarness.randomParams(cfg, DataType.FLOAT, 2);
        PipelineHarness.Pipeline pipe = new PipelineHarness.Pipeline(cfg, params, 1, 1, MICRO_BATCH, SEQ, PipelineSchedule.Kind.GPIPE, true);
        int n = MICRO_BATCH * SEQ;
        int[] inputs = PipelineHarness.randomTokens(n, cfg.vocabSize(), 3);
        int[] targets = PipelineHarness.randomTokens(n, cfg.vocabSize(), 4);
        double[] losses = pipe.step(0, inputs, targets, 1).get(0).losses();
        Params refGrads = new Params(params.layout(), DataType.FLOAT);
        double[] refLosses = new ColmModel(cfg, params, refGrads, MICRO_BATCH, SEQ).forwardBackward(inputs, targets, 0, 1, false, 1.0);
        assertArrayEquals(refLosses, losses, 0.0);
        assertArrayEquals(PipelineHarness.copy(refGrads), PipelineHarness.copy(pipe.grads), 0.0);
        assertEquals(1, pipe.plan.stage(0).paramRanges().size());
        assertEquals(params.layout().size(), pipe.plan.stage(0).paramCount());
    }

    /**
     * Training, not just one gradient: LocalTrainer's loop (ColmModel.forwardBackward, AdamW.step) against
     * pp=2 stages whose optimizer updates only each stage's own ranges, with the global clip norm summed
     * over the stages' ranges (what a parameter server sharded by stage does). float64, 3 steps.
     */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.EnumSource(PipelineSchedule.Kind.class)
    void optimizerStepsOverStageRangesShouldMatchTheSingleProcessLoop(PipelineSchedule.Kind kind) {
        ColmConfig cfg = PipelineHarness.colmGelu();
        DataType type = DataType.DOUBLE;
        int pp = 2;
        int micros = 4;
        Params local = PipelineHarness.randomParams(cfg, type, 21);
        Params piped = PipelineHarness.randomParams(cfg, type, 21);
        Params localGrads = new Params(local.layout(), type);
        ColmModel model = new ColmModel(cfg, local, localGrads, micros * MICRO_BATCH, SEQ);
        PipelineHarness.Pipeline pipe = new PipelineHarness.Pipeline(cfg, piped, pp, micros, MICRO_BATCH, SEQ, kind, false);
        AdamW.Settings settings = new AdamW.Settings(0.9, 0.95, 1e-8, 0.1, 0.5); // clipping active
        AdamW opt = new AdamW(local.layout(), settings, 0);
        Params m1 = new Params(local.layout(), type);
        Params v1 = new Params(local.layout(), type);
        Params m2 = new Params(local.layout(), type);
        Params v2 = new Params(local.layout(), type);
        for (long step = 1; step <= 3; step++) {
            int n = micros * MICRO_BATCH * SEQ;
            int[] inputs = PipelineHarness.randomTokens(n, cfg.vocabSize(), 300 + step);
            int[] targets = PipelineHarness.randomTokens(n, cfg.vocabSize(), 400 + step);
            double[] localLoss = model.forwardBackward(inputs, targets, 0, 0, false, 1.0);
            opt.step(local, localGrads, m1, v1, step, 1e-2);

            double[] pipeLoss = pipe.step(step, inputs, targets, 0).get(pp - 1).losses();
            double sumSquares = 0;
            for (StagePlan.Stage st : pipe.plan.stages()) {
                for (StagePlan.ParamRange r : st.paramRanges()) {
                    sumSquares += opt.sumOfSquares(pipe.grads, r.offset(), r.end());
                }
            }
            double clip = opt.clipScale(Math.sqrt(sumSquares));
            for (StagePlan.Stage st : pipe.plan.stages()) {
                for (StagePlan.ParamRange r : st.paramRanges()) {
                    opt.update(piped, pipe.grads, m2, v2, step, 1e-2, clip, r.offset(), r.end());
                }
            }
            assertArrayEquals(localLoss, pipeLoss, 1e-12, "step " + step);
        }
        assertClose(PipelineHarness.copy(local), PipelineHarness.copy(piped), 1e-11, kind + " parameters after 3 AdamW steps");
    }
}
