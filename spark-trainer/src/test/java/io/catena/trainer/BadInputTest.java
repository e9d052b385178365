package io.catena.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(value = 120, unit = TimeUnit.SECONDS)
class BadInputTest {

    @Test
    void shouldFailClearlyWhenTheManifestIsMissing() {
        Path dir = TrainerTestSupport.testDir("nomanifest");
        Path recipe = TrainerTestSupport.recipe(dir, 5);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TrainerTestSupport.train(
                new ByteArrayOutputStream(), "--data", dir.resolve("nowhere/manifest.json").toString(), "--recipe", recipe.toString(),
                "--out", dir.resolve("ckpt").toString(), "--dp", "2"));
        assertTrue(e.getMessage().contains("nowhere"), e.getMessage());
    }

    @Test
    void shouldRefuseAVocabularySmallerThanTheData() {
        Path dir = TrainerTestSupport.testDir("vocab");
        Path recipe = TrainerTestSupport.recipe(dir, 5, "vocab_size = 100");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TrainerTestSupport.train(
                new ByteArrayOutputStream(), "--data", "builtin:genesis", "--recipe", recipe.toString(), "--out",
                dir.resolve("ckpt").toString(), "--dp", "2"));
        assertTrue(e.getMessage().contains("vocab_size"), e.getMessage());
    }

    @Test
    void shouldFailWithinSecondsWhenDpExceedsTheSlots() {
        Path dir = TrainerTestSupport.testDir("slots");
        Path recipe = TrainerTestSupport.recipe(dir, 5);
        long t0 = System.nanoTime();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TrainerTestSupport.train(
                new ByteArrayOutputStream(), "--data", "builtin:genesis", "--recipe", recipe.toString(), "--out",
                dir.resolve("ckpt").toString(), "--dp", "4"));
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(20));
        assertTrue(e.getMessage().contains("slots") && e.getMessage().contains("local[2]"), e.getMessage());
    }

    @Test
    void shouldRefuseAGlobalBatchThatDpDoesNotDivide() {
        Path dir = TrainerTestSupport.testDir("batch");
        Path recipe = TrainerTestSupport.recipe(dir, 5, "batch_size = 3");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TrainerTestSupport.train(
                new ByteArrayOutputStream(), "--data", "builtin:genesis", "--recipe", recipe.toString(), "--out",
                dir.resolve("ckpt").toString(), "--dp", "2"));
        assertTrue(e.getMessage().contains("divisible"), e.getMessage());
    }

    @Test
    void shouldRefuseToResumeWithoutACheckpoint() {
        Path dir = TrainerTestSupport.testDir("noresume");
        Path recipe = TrainerTestSupport.recipe(dir, 5);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TrainerTestSupport.train(
                new ByteArrayOutputStream(), "--data", "builtin:genesis", "--recipe", recipe.toString(), "--out",
                dir.resolve("empty").toString(), "--dp", "2", "--resume"));
        assertTrue(e.getMessage().contains("--resume"), e.getMessage());
    }

    @Test
    void shouldParseOptionsFromTheCommandLineAndSparkConf() {
        Map<String, String> conf = Map.of("spark.catena.dp", "4", "spark.catena.sync", "ssp:2", "spark.catena.grow-at",
                "100:+2:freeze;300:+2,4", "spark.catena.recipe", "conf.properties");
        TrainOptions o = TrainOptions.parse(new String[] {"train", "--data", "d", "--out", "o", "--dp", "2", "--eval-every=50"},
                conf::get);
        assertEquals(2, o.dp(), "the command line wins over spark.catena.dp");
        assertEquals("ssp:2", o.sync().toString());
        assertEquals("conf.properties", o.recipe());
        assertEquals(50, o.evalEvery());
        assertEquals(List.of(new TrainOptions.Growth(100, List.of(2), true), new TrainOptions.Growth(300, List.of(2, 4), false)),
                o.growth());
        assertThrows(IllegalArgumentException.class, () -> TrainOptions.parse(new String[] {"--data", "d"}, k -> null));
        assertThrows(IllegalArgumentException.class, () -> TrainOptions.Growth.parse("100:2"));
        assertThrows(IllegalArgumentException.class, () -> TrainOptions.parse(
                new String[] {"--data", "d", "--recipe", "r", "--out", "o", "--sync", "fast"}, k -> null));
        assertEquals(new TrainOptions.FailAt(1, 5), TrainOptions.FailAt.parse("1:5"));
    }
}
