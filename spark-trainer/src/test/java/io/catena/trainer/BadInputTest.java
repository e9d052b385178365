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
        Path recipe = TrainerTestSupport.recipe(dir, 5, "batch_size = 8", "layers = 2");
        long t0 = System.nanoTime();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TrainerTestSupport.train(
                new ByteArrayOutputStream(), "--data", "builtin:genesis", "--recipe", recipe.toString(), "--out",
                dir.resolve("ckpt").toString(), "--dp", "8"));
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(20));
        assertTrue(e.getMessage().contains("slots") && e.getMessage().contains("local[4]"), e.getMessage());
        // dp x pp tasks count: 4 x 2 = 8 slots
        IllegalArgumentException six = assertThrows(IllegalArgumentException.class, () -> TrainerTestSupport.train(
                new ByteArrayOutputStream(), "--data", "builtin:genesis", "--recipe", recipe.toString(), "--out",
                dir.resolve("ckpt2").toString(), "--dp", "4", "--pp", "2", "--micro-batches", "1", "--steps", "1"));
        assertTrue(six.getMessage().contains("--dp 4 x --pp 2 needs 8 task slots"), six.getMessage());
    }

    @Test
    void shouldRefusePipelineSettingsThatCannotWork() {
        Path dir = TrainerTestSupport.testDir("pp-bad");
        Path recipe = TrainerTestSupport.recipe(dir, 5, "layers = 2");
        String[] base = {"--data", "builtin:genesis", "--recipe", recipe.toString(), "--out", dir.resolve("ckpt").toString(), "--dp", "1"};
        IllegalArgumentException asp = assertThrows(IllegalArgumentException.class, () -> TrainerTestSupport.train(
                new ByteArrayOutputStream(), TrainerTestSupport.concat(base, "--pp", "2", "--sync", "asp")));
        assertTrue(asp.getMessage().contains("--sync bsp or ssp"), asp.getMessage());
        IllegalArgumentException micro = assertThrows(IllegalArgumentException.class, () -> TrainerTestSupport.train(
                new ByteArrayOutputStream(), TrainerTestSupport.concat(base, "--pp", "2", "--micro-batches", "3")));
        assertTrue(micro.getMessage().contains("--micro-batches 3 must divide the 4 rows"), micro.getMessage());
        IllegalArgumentException schedule = assertThrows(IllegalArgumentException.class, () -> TrainerTestSupport.train(
                new ByteArrayOutputStream(), TrainerTestSupport.concat(base, "--pp", "2", "--schedule", "zigzag")));
        assertTrue(schedule.getMessage().contains("--schedule") && schedule.getMessage().contains("gpipe or 1f1b"),
                schedule.getMessage());
        IllegalArgumentException stages = assertThrows(IllegalArgumentException.class, () -> TrainerTestSupport.train(
                new ByteArrayOutputStream(), TrainerTestSupport.concat(base, "--pp", "3", "--micro-batches", "1")));
        assertTrue(stages.getMessage().contains("--pp 3 needs at least 3 transformer blocks") && stages.getMessage().contains("layers=2"),
                stages.getMessage());
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
