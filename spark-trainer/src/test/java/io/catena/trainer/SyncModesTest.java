package io.catena.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(value = 180, unit = TimeUnit.SECONDS)
class SyncModesTest {

    @Test
    void shouldTrainWithBoundedStalenessAndReachTheLastStep() {
        Path dir = TrainerTestSupport.testDir("ssp");
        Path recipe = TrainerTestSupport.recipe(dir, 16);
        TrainResult r = TrainerTestSupport.train(new ByteArrayOutputStream(), "--data", "builtin:genesis", "--recipe",
                recipe.toString(), "--out", dir.resolve("ckpt").toString(), "--dp", "2", "--sync", "ssp:1", "--term-length", "1048576");
        assertEquals(16, r.finalStep());
        assertEquals(16, r.trainLoss().size());
        assertTrue(r.trainLoss().get(16L)[1] < r.trainLoss().get(1L)[1], "ssp:1 must still learn");
    }

    @Test
    void shouldTrainAsynchronouslyUntilTheServerAppliedTheSteps() {
        Path dir = TrainerTestSupport.testDir("asp");
        Path recipe = TrainerTestSupport.recipe(dir, 16);
        TrainResult r = TrainerTestSupport.train(new ByteArrayOutputStream(), "--data", "builtin:genesis", "--recipe",
                recipe.toString(), "--out", dir.resolve("ckpt").toString(), "--dp", "2", "--sync", "asp", "--term-length", "1048576");
        assertTrue(r.finalStep() >= 16, "asp: every push is a version; got " + r.finalStep());
        assertTrue(Double.isFinite(r.finalEval()[1]));
    }
}
