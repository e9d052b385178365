package io.catena.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(value = 300, unit = TimeUnit.SECONDS)
class GrowthTest {

    @Test
    void shouldKeepTheOldScalesEvalLossesIdenticalAcrossAFrozenGrowth() {
        Path dir = TrainerTestSupport.testDir("grow-freeze");
        Path recipe = TrainerTestSupport.recipe(dir, 24);
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        TrainResult r = TrainerTestSupport.train(log, "--data", "builtin:genesis", "--recipe", recipe.toString(), "--out",
                dir.resolve("ckpt").toString(), "--dp", "2", "--grow-at", "12:+1:freeze", "--eval-every", "6", "--term-length", "1048576");

        assertEquals(24, r.finalStep());
        assertEquals(List.of(1, 1, 1), r.chains());
        assertEquals(2, r.frozenChains(), "the two old chains must be frozen");
        double[] before = r.evals().get(12L);
        double[] after1 = r.evals().get(18L);
        double[] after2 = r.evals().get(24L);
        assertEquals(2, before.length, "eval at step 12 runs before the growth: 2 scales");
        assertEquals(3, after1.length, "eval after the growth reports 3 scales");
        assertEquals(3, after2.length);
        for (int k = 0; k < 2; k++) {
            assertEquals(before[k], after1[k], 0.0, "scale " + (k + 1) + " changed after a frozen growth");
            assertEquals(before[k], after2[k], 0.0, "scale " + (k + 1) + " changed after a frozen growth");
        }
        assertNotEquals(after1[2], after2[2], "the new chain must train");
        // the old scales still trained before the growth
        assertNotEquals(r.evals().get(6L)[1], before[1]);
        for (long s = 13; s <= 24; s++) {
            assertEquals(3, r.trainLoss().get(s).length, "train loss of step " + s + " must cover 3 scales");
        }
        assertTrue(log.toString().contains("grew the model at step 12"), log.toString());
    }

    @Test
    void shouldResumeFromACheckpointAtTheGrowthStepAndGrowThere() {
        Path dir = TrainerTestSupport.testDir("grow-resume");
        Path recipe = TrainerTestSupport.recipe(dir, 16);
        String[] common = {"--data", "builtin:genesis", "--recipe", recipe.toString(), "--dp", "2", "--grow-at", "8:+1",
                "--term-length", "1048576"};
        TrainResult whole = TrainerTestSupport.train(new ByteArrayOutputStream(), TrainerTestSupport.concat(common, "--out", dir.resolve("whole").toString()));
        Path split = dir.resolve("split");
        TrainResult first = TrainerTestSupport.train(new ByteArrayOutputStream(), TrainerTestSupport.concat(common, "--out", split.toString(),
                "--until-step", "8"));
        assertEquals(List.of(1, 1), first.chains(), "the run stopped at the growth step, before growing");
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        TrainResult second = TrainerTestSupport.train(log, TrainerTestSupport.concat(common, "--out", split.toString(), "--resume"));
        assertEquals(List.of(1, 1, 1), second.chains());
        assertTrue(log.toString().contains("grew the model at step 8"), log.toString());
        double d = TrainerTestSupport.maxAbsDiff(whole.finalState().params(), second.finalState().params());
        assertTrue(d < 1e-6, "resumed-and-grown run differs from the uninterrupted one by " + d);
    }

    @Test
    void shouldKeepTrainingEveryScaleAfterAGrowthWithoutFreeze() {
        Path dir = TrainerTestSupport.testDir("grow-train");
        Path recipe = TrainerTestSupport.recipe(dir, 20);
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        TrainResult r = TrainerTestSupport.train(log, "--data", "builtin:genesis", "--recipe", recipe.toString(), "--out",
                dir.resolve("ckpt").toString(), "--dp", "2", "--grow-at", "10:+2", "--eval-every", "10", "--term-length", "1048576");

        assertEquals(20, r.finalStep());
        assertEquals(List.of(1, 1, 2), r.chains());
        assertEquals(0, r.frozenChains());
        double[] before = r.evals().get(10L);
        double[] end = r.evals().get(20L);
        assertEquals(2, before.length);
        assertEquals(3, end.length);
        assertNotEquals(before[0], end[0], "without freeze the old chains keep training");
        for (long s = 1; s <= 20; s++) {
            assertEquals(s <= 10 ? 2 : 3, r.trainLoss().get(s).length, "scales reported at step " + s);
            for (double x : r.trainLoss().get(s)) {
                assertTrue(Double.isFinite(x));
            }
        }
    }
}
