package io.catena.trainer;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Distributed faults that rerunning cannot fix fail the job once, with the reason; numbers outside their range
 * are errors at every entry point, never a silent default.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class FaultsTest {

    private static void assertMessage(Throwable t, String... parts) {
        for (String p : parts) {
            assertTrue(String.valueOf(t.getMessage()).contains(p), "expected '" + p + "' in: " + t.getMessage());
        }
    }

    @Test
    void shouldRefuseOutOfRangeNumbersAtEveryEntryPoint() {
        String[] base = {"--data", "d", "--recipe", "r", "--out", "o"};
        assertMessage(assertThrows(IllegalArgumentException.class, () -> TrainOptions.parse(TrainerTestSupport.concat(base, "--dp", "0"),
                k -> null)), "--dp must be >= 1, got 0");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> TrainOptions.parse(TrainerTestSupport.concat(base, "--steps", "-1"),
                k -> null)), "--steps must be >= 1, got -1");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> TrainOptions.parse(base, k -> k.equals("spark.catena.pp") ? "0" : null)),
                "--pp must be >= 1");
        for (String opt : new String[] {"--micro-batches", "--kernel-threads", "--max-attempts", "--until-step", "--slot-wait-ms"}) {
            assertMessage(assertThrows(IllegalArgumentException.class, () -> TrainOptions.parse(TrainerTestSupport.concat(base, opt, "0"),
                    k -> null)), opt + " must be >= 1");
        }
        assertMessage(assertThrows(IllegalArgumentException.class, () -> TrainOptions.parse(TrainerTestSupport.concat(base, "--eval-every",
                "-5"), k -> null)), "--eval-every must be >= 0");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> TrainOptions.parse(TrainerTestSupport.concat(base,
                "--divergence-factor", "0.5"), k -> null)), "--divergence-factor must be 0 (off) or a finite number > 1");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> TrainOptions.parse(TrainerTestSupport.concat(base,
                "--skip-nonfinite", "2"), k -> null)), "--skip-nonfinite is train-local's");
        // unset stays unset (the defaults apply), zero skipping is accepted
        TrainOptions ok = TrainOptions.parse(TrainerTestSupport.concat(base, "--skip-nonfinite", "0"), k -> null);
        assertTrue(ok.dp() == 0 && ok.divergenceFactor() == 10.0, ok.describe());
        assertMessage(assertThrows(IllegalArgumentException.class, () -> RetrainJob.Options.parse(new String[] {"--lake", "l", "--ckpt", "c",
                "--recipe", "r", "--dp", "0"}, k -> null)), "--dp must be >= 1, got 0");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> io.catena.trainer.demo.Demo.Settings.parse(new String[] {"--dp",
                "0"})), "--dp must be >= 1, got 0");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> io.catena.trainer.demo.Demo.Settings.parse(new String[] {"--steps",
                "100", "--grow-at", "100"})), "--grow-at must be in [1, 99]");
    }

    @Test
    void shouldFailOnceWhenTheCheckpointStorageFails() throws Exception {
        Path dir = TrainerTestSupport.testDir("storage-fails");
        Path recipe = TrainerTestSupport.recipe(dir, 8, "ckpt_every = 2");
        Path blocker = dir.resolve("a-file");
        Files.writeString(blocker, "the checkpoint root's parent is a file: every write under it fails");
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> TrainerTestSupport.train(log, "--data",
                "builtin:genesis", "--recipe", recipe.toString(), "--out", blocker.resolve("ckpt").toString(), "--metrics",
                dir.resolve("metrics.jsonl").toString(), "--dp", "2"));
        assertMessage(e, "not rerun", TrainJob.CHECKPOINT_WRITE_FAILED);
        assertFalse(log.toString().contains("rerunning it"), "a storage failure must not rerun the stage:\n" + log);
    }

    @Test
    void shouldNotRerunADivergedOrNonFiniteRun() throws Exception {
        Path dir = TrainerTestSupport.testDir("diverges");
        // lr 50 with no warm-up: Adam moves every weight by ~50 in the first step
        Path recipe = TrainerTestSupport.recipe(dir, 30, "lr = 50", "min_lr = 5", "warmup_steps = 0", "log_every = 2", "ckpt_every = 4");
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> TrainerTestSupport.train(log, "--data",
                "builtin:genesis", "--recipe", recipe.toString(), "--out", dir.resolve("ckpt").toString(), "--dp", "2"));
        assertMessage(e, "not rerun", "[not retryable]");
        assertTrue(e.getMessage().contains("diverged") || e.getMessage().contains("NaN or Infinity"), e.getMessage());
        assertFalse(log.toString().contains("rerunning it"), "the same numbers would come again:\n" + log);
        assertFalse(Files.exists(dir.resolve("ckpt").resolve("step-00000004")), "no checkpoint of the diverged model");
    }
}
