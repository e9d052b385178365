package io.catena.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.io.TrainingState;
import java.io.ByteArrayOutputStream;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Pipeline parallelism against the single-process baseline (torchtitan's rule): pp stages in Spark tasks,
 * activations and gradients over Aeron, each stage pushing and pulling only its own parameters, must train
 * the model LocalTrainer trains with the same global batch — for both schedules, with dp x pp, through a
 * growth, after a resume from a dp-only checkpoint, and after a stage task failed.
 */
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class PipelineParityTest {
    static final int STEPS = 30;

    /** The test recipe with 4 blocks (so 2 stages get 2 each) and a batch of 8 windows. */
    static Path recipe(Path dir, int steps) {
        return TrainerTestSupport.recipe(dir, steps, "layers = 4", "batch_size = 8");
    }

    static String[] args(Path recipe, Path out, String... extra) {
        String[] base = {"--data", "builtin:genesis", "--recipe", recipe.toString(), "--out", out.toString(), "--term-length", "1048576",
            "--dp", "1"}; // a later --dp wins
        return TrainerTestSupport.concat(base, extra);
    }

    static void assertSameRun(List<double[]> expectedLosses, TrainingState expected, TrainResult got, String what) {
        double worst = 0;
        for (int step = 1; step <= expectedLosses.size(); step++) {
            double[] g = got.trainLoss().get((long) step);
            double[] w = expectedLosses.get(step - 1);
            assertEquals(w.length, g.length, what + ": scales of step " + step);
            for (int k = 0; k < w.length; k++) {
                worst = Math.max(worst, Math.abs(g[k] - w[k]));
            }
        }
        double params = TrainerTestSupport.maxAbsDiff(expected.params(), got.finalState().params());
        System.out.println(what + ": max |loss diff| " + worst + ", max |param diff| " + params);
        assertTrue(worst < 2e-5, what + ": losses differ from the baseline by up to " + worst);
        assertTrue(params < 2e-4, what + ": final parameters differ from the baseline by up to " + params);
    }

    @ParameterizedTest
    @ValueSource(strings = {"1f1b", "gpipe"})
    void twoStagesShouldTrainLikeLocalTrainer(String schedule) {
        Path dir = TrainerTestSupport.testDir("pp2-" + schedule);
        Path recipe = recipe(dir, STEPS);
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        TrainResult r = TrainerTestSupport.train(log, args(recipe, dir.resolve("ckpt"), "--pp", "2", "--schedule", schedule,
                "--micro-batches", schedule.equals("gpipe") ? "4" : "8", "--eval-every", "15"));
        TrainingState[] local = new TrainingState[1];
        List<double[]> expected = LossParityTest.localLosses(recipe, STEPS, local);
        assertEquals(STEPS, r.finalStep());
        assertEquals(1, r.stageRuns());
        assertEquals(STEPS, r.trainLoss().size(), "the last stage reports every step's loss");
        assertSameRun(expected, local[0], r, "pp=2 " + schedule);
        assertTrue(log.toString().contains("pp 2"), log.toString());
        assertTrue(log.toString().contains("pipeline stage 0: compute") && log.toString().contains("pipeline stage 1: compute"),
                "per-stage compute and waiting times are printed:\n" + log);
        assertEquals(2, r.evals().get(15L).length, "rank 0 evaluates the whole model (all stages' parameters)");
        double first = expected.get(0)[1];
        assertTrue(expected.get(STEPS - 1)[1] < first - 0.3, "the model must learn for the comparison to mean anything");
    }

    @Test
    void dataTimesPipelineParallelShouldTrainLikeLocalTrainer() {
        Path dir = TrainerTestSupport.testDir("dp2pp2");
        Path recipe = recipe(dir, 20);
        TrainResult r = TrainerTestSupport.train(new ByteArrayOutputStream(), args(recipe, dir.resolve("ckpt"), "--dp", "2",
                "--pp", "2", "--micro-batches", "2", "--recompute"));
        TrainingState[] local = new TrainingState[1];
        List<double[]> expected = LossParityTest.localLosses(recipe, 20, local);
        assertSameRun(expected, local[0], r, "dp=2 x pp=2 (recompute)");
    }

    @Test
    void growthDuringAPipelineRunShouldMatchTheDataParallelRun() {
        Path dir = TrainerTestSupport.testDir("pp2-grow");
        Path recipe = recipe(dir, 20);
        TrainResult dp = TrainerTestSupport.train(new ByteArrayOutputStream(), args(recipe, dir.resolve("dp"), "--grow-at", "10:+1"));
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        TrainResult pp = TrainerTestSupport.train(log, args(recipe, dir.resolve("pp"), "--pp", "2", "--grow-at", "10:+1"));
        assertEquals(List.of(1, 1, 1), pp.chains());
        assertTrue(log.toString().contains("grew the model at step 10"), log.toString());
        for (long s = 11; s <= 20; s++) {
            assertEquals(3, pp.trainLoss().get(s).length, "step " + s + " trains 3 scales on the re-planned stages");
        }
        List<double[]> dpLosses = new java.util.ArrayList<>(dp.trainLoss().values());
        assertSameRun(dpLosses, dp.finalState(), pp, "pp=2 with growth vs dp=1 with growth");
    }

    @Test
    void aPipelineRunShouldResumeFromADataParallelCheckpoint() {
        Path dir = TrainerTestSupport.testDir("pp2-resume");
        Path recipe = recipe(dir, 24);
        Path out = dir.resolve("ckpt");
        TrainResult first = TrainerTestSupport.train(new ByteArrayOutputStream(), args(recipe, out, "--dp", "2", "--until-step", "12"));
        assertEquals(12, first.finalStep());
        TrainResult second = TrainerTestSupport.train(new ByteArrayOutputStream(), args(recipe, out, "--pp", "2", "--resume"));
        assertEquals(24, second.finalStep());
        TrainingState[] local = new TrainingState[1];
        List<double[]> expected = LossParityTest.localLosses(recipe, 24, local);
        double params = TrainerTestSupport.maxAbsDiff(local[0].params(), second.finalState().params());
        System.out.println("dp=2 -> pp=2 resume: max |param diff| vs LocalTrainer " + params);
        assertTrue(params < 2e-4, "checkpoints are topology-independent: resumed pp=2 run differs by " + params);
        for (long s = 13; s <= 24; s++) {
            double[] g = second.trainLoss().get(s);
            double[] w = expected.get((int) s - 1);
            for (int k = 0; k < w.length; k++) {
                assertEquals(w[k], g[k], 2e-5, "step " + s + " scale " + (k + 1));
            }
        }
    }

    @Test
    void aFailedStageTaskShouldBeRetriedAndTheJobFinish() {
        Path dir = TrainerTestSupport.testDir("pp2-fail");
        Path recipe = recipe(dir, 16);
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        // task 1 is stage 1 (the last): it fails before computing step 6
        TrainResult r = TrainerTestSupport.train(log, args(recipe, dir.resolve("ckpt"), "--pp", "2", "--fail-at", "1:6"));
        assertEquals(16, r.finalStep());
        assertEquals(2, r.stageRuns(), "the stage ran again after the injected failure");
        assertTrue(log.toString().contains("rerunning"), log.toString());
        TrainingState[] local = new TrainingState[1];
        LossParityTest.localLosses(recipe, 16, local);
        double params = TrainerTestSupport.maxAbsDiff(local[0].params(), r.finalState().params());
        assertTrue(params < 2e-4, "the retried pipeline run differs from the baseline by " + params);
    }
}
