package io.catena.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.catena.data.manifest.Manifest;
import io.catena.data.prepare.DocHash;
import io.catena.model.io.CheckpointStore;
import io.catena.model.io.TrainingState;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** catena retrain on a simulated lake: three days land one by one, a retrain after each, then a rerun with nothing new. */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class RetrainJobTest {
    static final String[] DAYS = {"date=2026-11-26", "date=2026-11-27", "date=2026-11-28"};
    static final int PER_DAY = 250;
    static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void shouldPrepareOnlyNewPartitionsResumeOnEachNewManifestVersionAndRecordItsHistory() throws Exception {
        Path dir = TrainerTestSupport.testDir("retrain");
        Path lake = dir.resolve("lake");
        Path ckpt = dir.resolve("ckpt");
        Path recipe = TrainerTestSupport.recipe(dir, 10); // 10 steps per retrain unless --steps
        List<String> verses = verses();
        CheckpointStore store = new CheckpointStore(io.catena.model.io.storage.HadoopStorage.resolver(TrainerTestSupport.spark().hadoopConfiguration()));
        long[] expectSteps = {10, 20, 26};

        for (int d = 0; d < DAYS.length; d++) {
            Path part = lake.resolve(DAYS[d]).resolve("part-00000.jsonl");
            List<String> recs = new ArrayList<>();
            for (String v : verses.subList(d * PER_DAY, (d + 1) * PER_DAY)) {
                recs.add("{\"text\":" + JSON.writeValueAsString(v) + "}");
            }
            Files.createDirectories(part.getParent());
            Files.write(part, recs, StandardCharsets.UTF_8);

            List<String> args = new ArrayList<>(List.of("--lake", lake.toUri().toString(), "--ckpt", ckpt.toString(), "--recipe",
                    recipe.toString(), "--dp", "2", "--tokenizer", "train:300", "--term-length", "1048576"));
            if (d == 1) {
                args.addAll(List.of("--new-data-weight", "0.5")); // half of every step from the new day, half replayed
            }
            if (d == 2) {
                args.addAll(List.of("--steps", "6", "--add-chains", "1:freeze"));
            }
            ByteArrayOutputStream log = new ByteArrayOutputStream();
            RetrainJob.Result r = retrain(log, args);

            // prepare consumed only the new partition
            assertFalse(r.noop(), r.message());
            Manifest m = r.manifest();
            assertEquals(d + 1, m.version());
            assertEquals(d + 1, r.manifestVersion());
            Manifest.RunCounts run = m.runs().get(d);
            assertEquals(1, run.sourceFiles(), "only the new partition was read");
            assertEquals(PER_DAY, run.records());
            assertEquals(PER_DAY, run.trainDocuments() + run.valDocuments(), "every record of the day, nothing older");
            final int version = d + 1;
            List<String> fresh = m.sources().stream().filter(s -> s.version() == version).map(Manifest.Source::path).toList();
            assertEquals(1, fresh.size(), "new sources of version " + version + ": " + fresh);
            assertTrue(fresh.get(0).endsWith(DAYS[d] + "/part-00000.jsonl"), fresh.get(0));
            assertEquals(d + 1, m.sources().size(), "older sources carried, not re-read");
            assertEquals(d + 1, m.partitions().size());

            // training resumed on the new version and the step count grew
            assertEquals(d == 0 ? 0 : expectSteps[d - 1], r.fromStep());
            assertEquals(expectSteps[d], r.toStep());
            assertEquals(expectSteps[d], r.train().finalStep());
            String out = log.toString(StandardCharsets.UTF_8);
            assertTrue(out.contains(d == 0 ? "from scratch" : "resuming " + ckpt + " at step " + expectSteps[d - 1]), out);

            Map<String, Object> doc = store.readManifest(ckpt.toString());
            assertEquals(expectSteps[d], ((Number) ((Map<?, ?>) doc.get("trainer")).get("step")).longValue());
            List<Map<String, Object>> history = RetrainJob.history(doc);
            List<Integer> versions = history.stream().map(h -> ((Number) h.get("manifest_version")).intValue()).toList();
            List<Integer> want = new ArrayList<>();
            for (int v = 1; v <= d + 1; v++) {
                want.add(v);
            }
            assertEquals(want, versions, "the checkpoint's history records the manifest version of every run");
            Map<String, Object> last = history.get(history.size() - 1);
            assertEquals(List.of(DAYS[d]), last.get("partitions"));
            assertTrue(String.valueOf(last.get("data")).endsWith(String.format("manifests/manifest-v%06d.json", d + 1)
                            + (d == 1 ? "#new-data-weight=0.5&new-from-version=2" : "")),
                    "trained on the pinned version: " + last.get("data"));
            assertEquals(d == 1 ? (Object) 0.5 : "uniform", last.get("new_data_weight"), "how new and old data were mixed");
            assertEquals(d == 0 ? 0 : expectSteps[d - 1], ((Number) last.get("from_step")).longValue());
            assertEquals(expectSteps[d], ((Number) last.get("to_step")).longValue());
            assertEquals(d == 2 ? List.of(1, 1, 1) : List.of(1, 1), r.train().chains());
            if (d == 2) {
                assertEquals(2, r.train().frozenChains(), "old chains frozen");
                assertTrue(out.contains("appended chains [1] (old chains frozen) at step 20"), out);
                // growth never destroys: the trained model before it stays a checkpoint, and the history says so
                TrainingState before = store.load(ckpt.resolve("pre-growth-step-00000020").toString(), true);
                assertEquals(List.of(1, 1), before.config().chains());
                assertEquals(20, before.step());
                assertEquals(List.of(1), last.get("added_chains"));
                assertEquals(20, ((Number) last.get("grown_at_step")).longValue());
                assertTrue(String.valueOf(last.get("pre_growth_checkpoint")).endsWith("pre-growth-step-00000020"), last.toString());
            }
        }

        // nothing new: a no-op that says so and touches nothing
        Map<String, Long> before = listing(dir);
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        RetrainJob.Result again = retrain(log, List.of("--lake", lake.toUri().toString(), "--ckpt", ckpt.toString(), "--recipe",
                recipe.toString(), "--dp", "2", "--tokenizer", "train:300"));
        assertTrue(again.noop(), again.message());
        assertNull(again.train());
        assertEquals(3, again.manifestVersion());
        assertEquals(26, again.toStep());
        assertTrue(again.message().contains("nothing new"), again.message());
        assertTrue(log.toString(StandardCharsets.UTF_8).contains("nothing changed"), log.toString(StandardCharsets.UTF_8));
        assertEquals(before, listing(dir), "a no-op retrain changes no file");
        // a growth request with nothing new is refused, not dropped (it was a silent exit 0), and changes no file either
        IllegalArgumentException grow = assertThrows(IllegalArgumentException.class, () -> retrain(new ByteArrayOutputStream(),
                List.of("--lake", lake.toUri().toString(), "--ckpt", ckpt.toString(), "--recipe", recipe.toString(), "--dp", "2",
                        "--tokenizer", "train:300", "--add-chains", "2")));
        assertTrue(grow.getMessage().contains("nothing new to train the new chains on") && grow.getMessage().contains("catena expand"),
                grow.getMessage());
        assertEquals(before, listing(dir), "a refused growth changes no file");
    }

    @Test
    void shouldRejectBadCommandLines() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> RetrainJob.Options.parse(new String[] {"--lake", "x", "--recipe", "r"}, k -> null));
        assertTrue(e.getMessage().contains("missing --ckpt"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> RetrainJob.Options.parse(
                new String[] {"--lake", "x", "--ckpt", "c", "--recipe", "r", "--resume"}, k -> null));
        assertTrue(e.getMessage().contains("--resume"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> RetrainJob.Options.parse(
                new String[] {"--lake", "x", "--ckpt", "c", "--recipe", "r", "--add-chains", "two"}, k -> null));
        assertTrue(e.getMessage().contains("--add-chains"), e.getMessage());
        RetrainJob.Options o = RetrainJob.Options.parse(new String[] {"retrain", "--lake", "x", "--ckpt", "hdfs:///c/", "--recipe", "r",
                "--add-chains", "2,1:freeze", "--sync", "ssp:2", "--set", "lr=1e-3"}, k -> k.equals("spark.catena.retrain.steps") ? "7" : null);
        assertEquals(List.of(2, 1), o.addChains());
        assertTrue(o.freeze());
        assertEquals(7, o.steps());
        assertEquals("hdfs:///c/dataset", o.dataset());
        assertEquals(List.of("--sync", "ssp:2", "--set", "lr=1e-3"), o.trainArgs());
        assertTrue(Double.isNaN(o.newDataWeight()), "default: every window of every version alike");
        // finding 11 of issue 17: the share of new data per step is a choice
        assertEquals(0.7, RetrainJob.Options.parse(new String[] {"--lake", "x", "--ckpt", "c", "--recipe", "r", "--new-data-weight",
                "0.7"}, k -> null).newDataWeight());
        e = assertThrows(IllegalArgumentException.class, () -> RetrainJob.Options.parse(
                new String[] {"--lake", "x", "--ckpt", "c", "--recipe", "r", "--new-data-weight", "1"}, k -> null));
        assertTrue(e.getMessage().contains("--new-data-weight") && e.getMessage().contains("0 < W < 1"), e.getMessage());
    }

    /**
     * Finding 1 of issue 17: a few long documents and the recipe's val_fraction 0.05 give no validation document; the
     * override a user passes must reach the prepare step as well as training (it was dropped there, so every run failed).
     */
    @Test
    void shouldApplyRecipeOverridesToThePrepareStepToo() throws Exception {
        Path dir = TrainerTestSupport.testDir("retrain-overrides");
        Path part = dir.resolve("lake/decade=1600/part-00000.jsonl");
        List<String> verses = verses();
        List<String> docs = new ArrayList<>();
        for (int d = 0; d < 24; d++) { // 24 long documents of 20 verses each
            docs.add("{\"text\":" + JSON.writeValueAsString(String.join(" ", verses.subList(d * 20, d * 20 + 20))) + "}");
        }
        Files.createDirectories(part.getParent());
        Files.write(part, docs, StandardCharsets.UTF_8);
        Path recipe = TrainerTestSupport.recipe(dir, 4); // val_fraction = 0.05
        RetrainJob.Result r = retrain(new ByteArrayOutputStream(), List.of("--lake", dir.resolve("lake").toUri().toString(), "--ckpt",
                dir.resolve("ckpt").toString(), "--recipe", recipe.toString(), "--dp", "2", "--tokenizer", "train:300",
                "--val-fraction", "0.5", "--set", "seq_len=12", "--term-length", "1048576"));
        Manifest.RunCounts run = r.manifest().runs().get(0);
        assertTrue(run.valDocuments() >= 6, "--val-fraction 0.5 of 24 documents must reach prepare: " + run.valDocuments()
                + " validation documents");
        assertEquals(12, r.manifest().seqLen(), "--set seq_len=12 must reach prepare's windows");
        assertEquals(4, r.toStep());
    }

    /**
     * Finding 1 of issue 17, as reported: 30 long documents, one partition per decade, and the recipe's val_fraction 0.05:
     * the document rule sends none of them to val, so the dataset had 0 validation windows and training stopped at once.
     * Now whole train windows move to val and the run trains.
     */
    @Test
    void shouldTrainOnAFewLongDocumentsWithTheRecipesValFraction() throws Exception {
        Path dir = TrainerTestSupport.testDir("retrain-long-docs");
        Path lake = longDocumentLake(dir);
        Path recipe = TrainerTestSupport.recipe(dir, 4); // val_fraction = 0.05
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        RetrainJob.Result r = retrain(log, List.of("--lake", lake.toUri().toString(), "--ckpt", dir.resolve("ckpt").toString(),
                "--recipe", recipe.toString(), "--dp", "2", "--tokenizer", "train:300", "--term-length", "1048576"));
        Manifest.RunCounts run = r.manifest().runs().get(0);
        assertEquals(0, run.valDocuments(), "as in the issue, no document is drawn for val by the document rule");
        long valWindows = r.manifest().shards("val").stream().mapToLong(Manifest.Shard::windows).sum();
        assertTrue(valWindows >= 1 && run.valWindowsDrawn() == valWindows, "val windows: " + r.manifest().shards("val"));
        assertEquals(4, r.toStep());
        assertEquals(3, r.manifest().partitions().size());
    }

    /**
     * Finding 1's trap: a first run that fails after its prepare step left dataset v1 behind, and a rerun with other prepare
     * settings (the val_fraction the failure called for) was refused by the incremental prepare, every time, until the
     * dataset was deleted by hand. Now the version no run trained on is prepared again with the new settings, and the run
     * says so.
     */
    @Test
    void shouldPrepareAgainAVersionAFailedRunLeftWhenTheSettingsChange() throws Exception {
        Path dir = TrainerTestSupport.testDir("retrain-failed-first-run");
        Path lake = longDocumentLake(dir);
        Path ckpt = dir.resolve("ckpt");
        Path recipe = TrainerTestSupport.recipe(dir, 4);
        List<String> base = List.of("--lake", lake.toUri().toString(), "--ckpt", ckpt.toString(), "--recipe", recipe.toString(),
                "--dp", "2", "--tokenizer", "train:300", "--term-length", "1048576");
        List<String> first = new ArrayList<>(base);
        first.addAll(List.of("--set", "batch_size=3")); // fails after prepare: 3 rows cannot be split over 2 tasks
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> retrain(new ByteArrayOutputStream(), first));
        assertTrue(e.getMessage().contains("batch_size"), e.getMessage());
        assertTrue(Files.exists(ckpt.resolve("dataset/manifests/manifest-v000001.json")), "the failed run prepared version 1");

        List<String> second = new ArrayList<>(base);
        second.addAll(List.of("--val-fraction", "0.5"));
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        RetrainJob.Result r = retrain(log, second);
        String out = log.toString(StandardCharsets.UTF_8);
        assertTrue(out.contains("re-prepared") && out.contains("--val-fraction 0.5 (dataset: 0.05)"), out);
        assertEquals(1, r.manifest().version(), "version 1 prepared again, not appended to");
        assertEquals(500_000, r.manifest().split().valPpm());
        assertEquals(1, r.manifest().runs().size());
        assertEquals(30, r.manifest().runs().get(0).trainDocuments() + r.manifest().runs().get(0).valDocuments());
        assertEquals(4, r.toStep());
        assertEquals(List.of(1), RetrainJob.history(new CheckpointStore(io.catena.model.io.storage.HadoopStorage.resolver(
                TrainerTestSupport.spark().hadoopConfiguration())).readManifest(ckpt.toString())).stream()
                .map(h -> ((Number) h.get("manifest_version")).intValue()).toList());
    }

    /**
     * 30 long documents (20 verses each), one partition per decade, ten per partition: as in the issue, none of them is
     * one the document rule (val_fraction 0.05, split seed 0) sends to val.
     */
    private static Path longDocumentLake(Path dir) throws IOException {
        List<String> verses = verses();
        List<String> docs = new ArrayList<>();
        for (int d = 0; docs.size() < 30; d++) {
            String text = String.join(" ", verses.subList(d * 20, d * 20 + 20));
            if (!DocHash.isVal(DocHash.of(text), 0, 50_000)) {
                docs.add("{\"text\":" + JSON.writeValueAsString(text) + "}");
            }
        }
        for (int decade = 0; decade < 3; decade++) {
            Path part = dir.resolve("lake/decade=16" + decade + "0/part-00000.jsonl");
            Files.createDirectories(part.getParent());
            Files.write(part, docs.subList(decade * 10, decade * 10 + 10), StandardCharsets.UTF_8);
        }
        return dir.resolve("lake");
    }

    private static RetrainJob.Result retrain(ByteArrayOutputStream log, List<String> args) {
        RetrainJob.Options o = RetrainJob.Options.parse(args.toArray(String[]::new), k -> null);
        SparkSession spark = SparkSession.builder().sparkContext(TrainerTestSupport.spark().sc()).getOrCreate();
        PrintStream ps = new PrintStream(new TrainerTestSupport.TeeStream(log, System.out), true, StandardCharsets.UTF_8);
        return new RetrainJob(spark, o, ps).run();
    }

    /** Distinct non-blank lines of the bundled Genesis: exact dedup then keeps every record. */
    private static List<String> verses() throws IOException {
        try (InputStream s = RetrainJobTest.class.getResourceAsStream("/io/catena/corpus/genesis.txt")) {
            LinkedHashSet<String> set = new LinkedHashSet<>();
            for (String l : new String(s.readAllBytes(), StandardCharsets.UTF_8).split("\n")) {
                if (!l.isBlank()) {
                    set.add(l.strip());
                }
            }
            List<String> l = new ArrayList<>(set);
            assertTrue(l.size() >= DAYS.length * PER_DAY);
            return l;
        }
    }

    /** Every file under root with its size and modification time. */
    private static Map<String, Long> listing(Path root) throws IOException {
        Map<String, Long> m = new TreeMap<>();
        try (Stream<Path> s = Files.walk(root)) {
            for (Path p : (Iterable<Path>) s::iterator) {
                if (Files.isRegularFile(p)) {
                    m.put(root.relativize(p) + " " + Files.size(p), Files.getLastModifiedTime(p).toMillis());
                }
            }
        }
        return m;
    }
}
