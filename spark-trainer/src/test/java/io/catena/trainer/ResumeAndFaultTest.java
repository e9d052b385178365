package io.catena.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.io.CheckpointStore;
import io.catena.model.io.TrainingState;
import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(value = 300, unit = TimeUnit.SECONDS)
class ResumeAndFaultTest {

    private static String[] args(Path recipe, Path out, String... extra) {
        String[] base = {"--data", "builtin:genesis", "--recipe", recipe.toString(), "--out", out.toString(), "--dp", "2",
                "--term-length", "1048576"};
        return TrainerTestSupport.concat(base, extra);
    }

    @Test
    void shouldResumeToTheParametersOfAnUninterruptedRun() {
        Path dir = TrainerTestSupport.testDir("resume");
        Path recipe = TrainerTestSupport.recipe(dir, 24);
        TrainResult whole = TrainerTestSupport.train(new ByteArrayOutputStream(), args(recipe, dir.resolve("whole")));

        Path split = dir.resolve("split");
        TrainResult first = TrainerTestSupport.train(new ByteArrayOutputStream(), args(recipe, split, "--until-step", "12",
                "--ckpt-every", "5"));
        assertEquals(12, first.finalStep());
        // periodic checkpoints come from rank 0's snapshot request on exactly that version, with the data cursor
        TrainingState at5 = new CheckpointStore().load(split.resolve("step-00000005").toString(), true);
        assertEquals(5, at5.step());
        assertEquals(5L * 4, at5.dataPosition());
        assertTrue(Files.isDirectory(split.resolve("step-00000010")));
        TrainingState ckpt = new CheckpointStore().load(split.toString(), true);
        assertEquals(12, ckpt.step());
        assertEquals(12L * 4, ckpt.dataPosition(), "the checkpoint's data cursor is the global window count");
        assertEquals(12L * 4 * 16, ckpt.tokensSeen());
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        TrainResult second = TrainerTestSupport.train(log, args(recipe, split, "--resume"));
        assertTrue(log.toString().contains("resuming"), log.toString());

        assertEquals(24, second.finalStep());
        double p = TrainerTestSupport.maxAbsDiff(whole.finalState().params(), second.finalState().params());
        double m = TrainerTestSupport.maxAbsDiff(whole.finalState().adamM(), second.finalState().adamM());
        double v = TrainerTestSupport.maxAbsDiff(whole.finalState().adamV(), second.finalState().adamV());
        System.out.println("resume: max diff params " + p + ", adam m " + m + ", adam v " + v);
        assertTrue(p < 1e-6 && m < 1e-6 && v < 1e-6, "resumed run differs: params " + p + ", m " + m + ", v " + v);
        for (long s = 13; s <= 24; s++) {
            double[] a = whole.trainLoss().get(s);
            double[] b = second.trainLoss().get(s);
            for (int k = 0; k < a.length; k++) {
                assertEquals(a[k], b[k], 1e-6, "loss of step " + s + " scale " + (k + 1));
            }
        }
        // and the first part really stopped at 12: its parameters differ from the end state
        assertTrue(TrainerTestSupport.maxAbsDiff(first.finalState().params(), second.finalState().params()) > 1e-4);
    }

    @Test
    void shouldFinishAfterATaskFailsOnceLosingAtMostTheStepInFlight() throws Exception {
        Path dir = TrainerTestSupport.testDir("fault");
        Path recipe = TrainerTestSupport.recipe(dir, 12);
        TrainResult clean = TrainerTestSupport.train(new ByteArrayOutputStream(), args(recipe, dir.resolve("clean")));
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        TrainResult faulty = TrainerTestSupport.train(log, args(recipe, dir.resolve("faulty"), "--fail-at", "1:5"));

        assertEquals(2, faulty.stageRuns(), "the stage must have been rerun once:\n" + log);
        assertEquals(12, faulty.finalStep());
        assertTrue(log.toString().contains("injected fault"), log.toString());
        for (long s = 1; s <= 12; s++) {
            assertTrue(faulty.trainLoss().containsKey(s), "no loss for step " + s);
        }
        double d = TrainerTestSupport.maxAbsDiff(clean.finalState().params(), faulty.finalState().params());
        System.out.println("fault: max param diff vs clean run " + d);
        assertTrue(d < 1e-6, "the rerun must recompute the lost step exactly; params differ by " + d);
        assertEquals(clean.finalEval()[1], faulty.finalEval()[1], 1e-6);
        List<String> metrics = Files.readAllLines(Path.of(faulty.metricsFile()));
        assertTrue(metrics.stream().anyMatch(l -> l.contains("\"kind\":\"restart\"")), metrics.toString());
    }
}
