package io.catena.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.data.DataSources;
import io.catena.model.data.TextByteSource;
import io.catena.model.io.TrainingState;
import io.catena.model.train.LocalTrainer;
import io.catena.model.train.Recipe;
import io.catena.model.train.TrainSettings;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(value = 300, unit = TimeUnit.SECONDS)
class LossParityTest {
    static final int STEPS = 50;

    /** chain-model's single-process trainer on the same recipe and data: the baseline. */
    static List<double[]> localLosses(Path recipeFile, int steps, TrainingState[] finalState) {
        Recipe recipe = Recipe.load(recipeFile);
        TrainSettings s = recipe.trainSettings();
        int[] corpus = DataSources.readText(DataSources.BUILTIN_GENESIS);
        TextByteSource train = TextByteSource.open(corpus, DataSources.BUILTIN_GENESIS, s.seqLen(), s.valFraction(),
                TextByteSource.Split.TRAIN, s.seed(), 0, 1);
        TextByteSource val = TextByteSource.open(corpus, DataSources.BUILTIN_GENESIS, s.seqLen(), s.valFraction(),
                TextByteSource.Split.VALIDATION, s.seed(), 0, 1);
        TrainingState st = LocalTrainer.freshState(recipe.modelConfig(train.vocabSize()), s.seed());
        LocalTrainer t = new LocalTrainer(st, s, train, val, null, null, new PrintStream(new ByteArrayOutputStream()), Map.of());
        List<double[]> out = new ArrayList<>();
        for (int i = 0; i < steps; i++) {
            out.add(t.trainStep());
        }
        if (finalState != null) {
            finalState[0] = t.state();
        }
        return out;
    }

    @Test
    void shouldMatchLocalTrainerLossesStepForStepWithTwoBspWorkers() throws Exception {
        Path dir = TrainerTestSupport.testDir("parity");
        Path recipe = TrainerTestSupport.recipe(dir, STEPS);
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        TrainResult r = TrainerTestSupport.train(log, "--data", "builtin:genesis", "--recipe", recipe.toString(), "--out",
                dir.resolve("ckpt").toString(), "--dp", "2", "--sync", "bsp", "--term-length", "1048576");
        TrainingState[] local = new TrainingState[1];
        List<double[]> expected = localLosses(recipe, STEPS, local);

        assertEquals(STEPS, r.finalStep());
        assertEquals(1, r.stageRuns());
        assertEquals(STEPS, r.trainLoss().size(), "every step's loss must be reported by both workers");
        double worst = 0;
        for (int step = 1; step <= STEPS; step++) {
            double[] got = r.trainLoss().get((long) step);
            double[] want = expected.get(step - 1);
            assertEquals(want.length, got.length);
            for (int k = 0; k < want.length; k++) {
                worst = Math.max(worst, Math.abs(got[k] - want[k]));
            }
        }
        System.out.println("parity: max |loss(dp=2) - loss(local)| over " + STEPS + " steps = " + worst);
        assertTrue(worst < 1e-5, "dp=2 BSP losses differ from LocalTrainer's by up to " + worst);
        double first = expected.get(0)[1];
        double last = expected.get(STEPS - 1)[1];
        assertTrue(last < first - 0.5, "the model must learn (loss " + first + " -> " + last + ") for the comparison to mean anything");
        double paramDiff = TrainerTestSupport.maxAbsDiff(local[0].params(), r.finalState().params());
        System.out.println("parity: max |param(dp=2) - param(local)| after " + STEPS + " steps = " + paramDiff);
        assertTrue(paramDiff < 1e-4, "final parameters differ by " + paramDiff);
        assertTrue(log.toString().contains("step 50/50"), "progress line missing:\n" + log);
        List<String> metrics = Files.readAllLines(Path.of(r.metricsFile()));
        assertTrue(metrics.stream().anyMatch(l -> l.contains("\"kind\":\"train\"") && l.contains("\"step\":50")), metrics.toString());
        assertTrue(metrics.stream().anyMatch(l -> l.contains("\"kind\":\"eval\"")), metrics.toString());
        // both workers run in the driver's JVM (local mode): they reach the embedded server over IPC, not UDP
        assertEquals(2, metrics.stream().filter(l -> l.contains("\"kind\":\"engine\"") && l.contains("\"ps_channel\":\"aeron:ipc\""))
                .count(), metrics.toString());
        assertTrue(Files.exists(dir.resolve("ckpt").resolve("latest")), "final checkpoint missing");
    }
}
