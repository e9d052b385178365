package io.catena.data.prepare;

import io.catena.data.Prepare;
import io.catena.data.TestData;
import io.catena.data.TestSpark;
import io.catena.data.manifest.Manifest;
import io.catena.data.manifest.ManifestStore;
import io.catena.data.reader.ShardTokenSource;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
import java.util.zip.GZIPOutputStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PrepareJobTest {

    static SparkSession spark;
    static final Configuration CONF = new Configuration();
    static List<String> verses;

    @TempDir
    static Path tmp;

    @BeforeAll
    static void start() {
        spark = TestSpark.session();
        verses = TestData.genesis();
    }

    static String uri(Path p) {
        return p.toUri().toString();
    }

    static PrepareOptions opts(List<String> in, String format, Path out) {
        return PrepareOptions.of(in, format, uri(out)).withTokenizer("train:600").withSeqLen(64).withValFraction(0.05);
    }

    static Path write(Path p, List<String> lines) throws IOException {
        Files.createDirectories(p.getParent());
        Files.write(p, String.join("\n", lines).concat("\n").getBytes(StandardCharsets.UTF_8));
        return p;
    }

    static Set<String> normalized(List<String> docs) {
        Set<String> s = new HashSet<>();
        docs.forEach(d -> s.add(Normalizer.normalize(d, Normalizer.Form.NFC)));
        return s;
    }

    static List<String> allDocs(Path out, Manifest m) throws IOException {
        List<String> d = new ArrayList<>(Datasets.documents(uri(out), m, "train", CONF));
        d.addAll(Datasets.documents(uri(out), m, "val", CONF));
        return d;
    }

    @Test
    void shouldPrepareTextFromFileToFileAndFeedTheReader() throws Exception {
        // Genesis split over two files, with 40 verses repeated (exact duplicates) and blank lines
        Path in = tmp.resolve("kjv");
        write(in.resolve("a.txt"), verses.subList(0, 800));
        List<String> b = new ArrayList<>(verses.subList(800, verses.size()));
        b.addAll(verses.subList(100, 140));
        b.add("");
        b.add("   ");
        write(in.resolve("b.txt"), b);
        Path out = tmp.resolve("out-kjv");
        PrepareJob.Result r = PrepareJob.run(spark, opts(List.of(uri(in)), "text", out));
        Manifest m = r.manifest();
        assertFalse(r.noop());
        assertEquals(1, m.version());
        Manifest.RunCounts c = m.runs().get(0);
        assertEquals(2, c.sourceFiles());
        assertEquals(verses.size() + 40, c.documents());
        assertEquals(40, c.duplicates());
        assertEquals(2, c.emptyDocuments());
        assertEquals(0, c.badRecords());
        assertEquals(verses.size(), c.trainDocuments() + c.valDocuments());
        assertTrue(c.valDocuments() > 30 && c.valDocuments() < 130, "~5% val: " + c.valDocuments());
        List<String> docs = allDocs(out, m);
        assertEquals(verses.size(), docs.size());
        assertEquals(normalized(verses), new HashSet<>(docs));
        assertEquals(600, m.tokenizer().vocabSize());
        assertEquals(2, m.tokenizer().dtypeBytes());
        assertTrue(Files.exists(out.resolve(ManifestStore.MANIFEST)));
        assertEquals(Files.readString(out.resolve("manifests/manifest-v000001.json")), Files.readString(out.resolve("manifest.json")));
        try (Stream<Path> s = Files.list(out)) {
            assertTrue(s.noneMatch(p -> p.getFileName().toString().startsWith("_staging")), "staging removed");
        }
        // the reader: windows are consecutive token runs from the shards, vocab and seqLen from the manifest
        try (ShardTokenSource src = ShardTokenSource.open(uri(out), CONF, ShardTokenSource.Options.of("train", 0, 2, 1))) {
            assertEquals(64, src.seqLen());
            assertEquals(600, src.vocabSize());
            long windows = m.shards("train").stream().mapToLong(Manifest.Shard::windows).sum();
            assertEquals(windows / 2, src.windowsPerEpoch());
            int[] batch = new int[4 * 65];
            src.nextBatch(batch, 4);
            assertTrue(java.util.Arrays.stream(batch).allMatch(t -> t >= 0 && t < 600));
            assertTrue(java.util.Arrays.stream(batch).anyMatch(t -> t == m.tokenizer().eosId()), "EOS between documents");
        }
    }

    @Test
    void shouldWriteByteIdenticalShardsAndManifestOnRerun() throws Exception {
        Path in = write(tmp.resolve("det/in.txt"), verses.subList(0, 600));
        PrepareOptions o = opts(List.of(uri(in)), "text", tmp.resolve("det-a")).withShardTokens(2000);
        Manifest a = PrepareJob.run(spark, o).manifest();
        Manifest b = PrepareJob.run(spark, opts(List.of(uri(in)), "text", tmp.resolve("det-b")).withShardTokens(2000)).manifest();
        assertTrue(a.shards().size() > 3, "several bounded shards: " + a.shards().size());
        for (Manifest.Shard s : a.shards()) {
            assertTrue(s.tokens() <= 2000 / 65 * 65, "shard bounded: " + s.tokens());
        }
        String ja = ManifestStore.toJson(a).replace(a.createdAt(), "T");
        String jb = ManifestStore.toJson(b).replace(b.createdAt(), "T");
        assertEquals(ja, jb);
        for (Manifest.Shard s : a.shards()) {
            assertArrayEquals(Files.readAllBytes(tmp.resolve("det-a").resolve(s.path())),
                    Files.readAllBytes(tmp.resolve("det-b").resolve(s.path())), s.path());
        }
        assertArrayEquals(Files.readAllBytes(tmp.resolve("det-a/v000001/tokenizer.json")),
                Files.readAllBytes(tmp.resolve("det-b/v000001/tokenizer.json")));
        // the same corpus with another partitioning of the input files gives the same dataset
        write(tmp.resolve("det2/x.txt"), verses.subList(0, 250));
        write(tmp.resolve("det2/y.txt"), verses.subList(250, 600));
        Manifest c = PrepareJob.run(spark, opts(List.of(uri(tmp.resolve("det2"))), "text", tmp.resolve("det-c")).withShardTokens(2000)).manifest();
        assertEquals(a.shards(), c.shards());
    }

    @Test
    void shouldConsumeOnlyNewPartitionsIncrementallyAndMatchAOneShotRun() throws Exception {
        Path lake = tmp.resolve("lake");
        String[] days = {"date=2026-11-26", "date=2026-11-27", "date=2026-11-28"};
        int[][] ranges = {{0, 500}, {500, 1000}, {1000, verses.size()}};
        Path out = tmp.resolve("lake-out");
        Manifest prev = null;
        for (int d = 0; d < 3; d++) {
            List<String> recs = new ArrayList<>();
            for (String v : verses.subList(ranges[d][0], ranges[d][1])) {
                recs.add("{\"id\":" + recs.size() + ",\"text\":" + new com.fasterxml.jackson.databind.ObjectMapper().writeValueAsString(v) + "}");
            }
            if (d == 2) {
                recs.add("{\"text\":" + new com.fasterxml.jackson.databind.ObjectMapper().writeValueAsString(verses.get(3)) + "}"); // seen on day 1
            }
            write(lake.resolve(days[d]).resolve("part-00000.jsonl"), recs);
            PrepareJob.Result r = PrepareJob.run(spark, opts(List.of(uri(lake)), "jsonl", out).withIncremental(true));
            Manifest m = r.manifest();
            assertEquals(d + 1, m.version());
            Manifest.RunCounts c = m.runs().get(d);
            assertEquals(1, c.sourceFiles(), "only the new partition");
            assertEquals(ranges[d][1] - ranges[d][0], c.trainDocuments() + c.valDocuments());
            assertEquals(d == 2 ? 1 : 0, c.duplicatesOfEarlierVersions());
            assertEquals(d + 1, m.partitions().size());
            if (prev != null) {
                assertEquals(prev.tokenizer(), m.tokenizer(), "tokenizer reused");
                assertTrue(m.shards().containsAll(prev.shards()), "old shards kept");
            }
            prev = m;
        }
        PrepareJob.Result again = PrepareJob.run(spark, opts(List.of(uri(lake)), "jsonl", out).withIncremental(true));
        assertTrue(again.noop());
        assertTrue(again.message().contains("nothing new"), again.message());
        assertEquals(3, Datasets.latest(uri(out), CONF).version());

        Path oneShot = tmp.resolve("lake-oneshot");
        Manifest all = PrepareJob.run(spark, opts(List.of(uri(lake)), "jsonl", oneShot)).manifest();
        List<String> inc = allDocs(out, prev);
        List<String> one = allDocs(oneShot, all);
        assertEquals(one.size(), inc.size());
        assertEquals(new HashSet<>(one), new HashSet<>(inc));
        assertEquals(new HashSet<>(Datasets.documents(uri(oneShot), all, "val", CONF)),
                new HashSet<>(Datasets.documents(uri(out), prev, "val", CONF)), "same split rule");
    }

    @Test
    void shouldQuarantineMalformedRecordsAndFailAboveMaxBadFraction() throws Exception {
        List<String> recs = new ArrayList<>();
        for (int i = 0; i < 200; i++) {
            recs.add("{\"text\":\"" + verses.get(i).replace("\"", "") + "\"}");
        }
        recs.set(10, "{\"text\": \"unterminated");
        recs.set(20, "{\"body\":\"no text field\"}");
        recs.set(30, "[1,2]");
        Path in = write(tmp.resolve("bad/part-0.jsonl"), recs);
        byte[] invalid = "{\"text\":\"caf\u00e9\"}\n".getBytes(StandardCharsets.ISO_8859_1); // Latin-1 é: not UTF-8
        Files.write(in, invalid, java.nio.file.StandardOpenOption.APPEND);
        Path out = tmp.resolve("bad-out");
        Manifest m = PrepareJob.run(spark, opts(List.of(uri(in)), "jsonl", out).withMaxBadFraction(0.05)).manifest();
        assertEquals(4, m.runs().get(0).badRecords());
        assertEquals(197, m.runs().get(0).documents());
        List<String> q = new ArrayList<>();
        try (Stream<Path> s = Files.list(out.resolve("v000001/quarantine"))) {
            for (Path p : s.filter(p -> p.getFileName().toString().startsWith("part-")).toList()) {
                q.addAll(Files.readAllLines(p));
            }
        }
        assertEquals(4, q.size());
        String qs = String.join("\n", q);
        assertTrue(qs.contains("malformed JSON") && qs.contains("missing field 'text'") && qs.contains("not a JSON object")
                && qs.contains("invalid UTF-8"), qs);
        assertTrue(qs.contains("part-0.jsonl"), qs);

        // above the threshold: a clear failure naming the file, and the previous manifest untouched
        byte[] before = Files.readAllBytes(out.resolve("manifest.json"));
        List<String> worse = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            worse.add(i % 2 == 0 ? "{oops" : "{\"text\":\"fine " + i + "\"}");
        }
        Path bad2 = write(tmp.resolve("bad/part-1.jsonl"), worse);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> PrepareJob.run(spark,
                opts(List.of(uri(tmp.resolve("bad"))), "jsonl", out).withMaxBadFraction(0.05).withIncremental(true)));
        assertTrue(e.getMessage().contains("--max-bad-fraction") && e.getMessage().contains(bad2.getFileName().toString()),
                e.getMessage());
        assertArrayEquals(before, Files.readAllBytes(out.resolve("manifest.json")));
        assertEquals(1, Datasets.latest(uri(out), CONF).version());
        try (Stream<Path> s = Files.list(out)) {
            assertTrue(s.noneMatch(p -> p.getFileName().toString().startsWith("_staging") || p.getFileName().toString().equals("v000002")));
        }
    }

    @Test
    void shouldExplainEmptyInputMissingFieldUnreadableUriAndBadFlags() throws Exception {
        Path empty = Files.createDirectories(tmp.resolve("empty-dir"));
        IllegalArgumentException e1 = assertThrows(IllegalArgumentException.class,
                () -> PrepareJob.run(spark, opts(List.of(uri(empty)), "text", tmp.resolve("o1"))));
        assertTrue(e1.getMessage().contains("no input files") && e1.getMessage().contains("empty-dir"), e1.getMessage());

        Path blank = write(tmp.resolve("blank/a.txt"), List.of("", " ", ""));
        IllegalArgumentException e2 = assertThrows(IllegalArgumentException.class,
                () -> PrepareJob.run(spark, opts(List.of(uri(blank)), "text", tmp.resolve("o2"))));
        assertTrue(e2.getMessage().contains("no documents"), e2.getMessage());

        Path jl = write(tmp.resolve("field/a.jsonl"), List.of("{\"body\":\"In the beginning\",\"id\":1}"));
        IllegalArgumentException e3 = assertThrows(IllegalArgumentException.class,
                () -> PrepareJob.run(spark, opts(List.of(uri(jl)), "jsonl", tmp.resolve("o3"))));
        assertTrue(e3.getMessage().contains("'text'") && e3.getMessage().contains("In the beginning")
                && e3.getMessage().contains("[body, id]"), e3.getMessage());

        IllegalArgumentException e4 = assertThrows(IllegalArgumentException.class,
                () -> PrepareJob.run(spark, opts(List.of(uri(tmp.resolve("no-such-dir"))), "text", tmp.resolve("o4"))));
        assertTrue(e4.getMessage().contains("no-such-dir") && e4.getMessage().contains("does not exist"), e4.getMessage());
        IllegalArgumentException e5 = assertThrows(IllegalArgumentException.class,
                () -> PrepareJob.run(spark, opts(List.of("nosuchfs://x/y"), "text", tmp.resolve("o5"))));
        assertTrue(e5.getMessage().contains("nosuchfs://x/y"), e5.getMessage());

        assertEquals(2, Prepare.run("--input", "x", "--format", "xml", "--out", "y"));
        // a missing input is bad input too: exit 2 with one line (it was 1 with a stack trace)
        assertEquals(2, Prepare.run("--input", uri(tmp.resolve("no-such-input")), "--format", "text", "--out", uri(tmp.resolve("o6"))));
        assertEquals(2, Prepare.run("--format", "text"));
        assertEquals(0, Prepare.run("--help"));
        PrepareOptions.UsageException u = assertThrows(PrepareOptions.UsageException.class,
                () -> PrepareOptions.parse("--input", "a", "--format", "text", "--out", "b", "--seq-len", "abc"));
        assertTrue(u.getMessage().contains("--seq-len"), u.getMessage());
    }

    @Test
    void shouldReadGzipZstdWholeFilesAndParquet() throws Exception {
        Path in = tmp.resolve("codecs");
        Files.createDirectories(in);
        try (OutputStream o = new GZIPOutputStream(Files.newOutputStream(in.resolve("a.txt.gz")))) {
            o.write(String.join("\n", verses.subList(0, 300)).getBytes(StandardCharsets.UTF_8));
        }
        try (OutputStream o = new com.github.luben.zstd.ZstdOutputStream(Files.newOutputStream(in.resolve("b.txt.zst")))) {
            o.write(String.join("\n", verses.subList(300, 600)).getBytes(StandardCharsets.UTF_8));
        }
        Manifest lines = PrepareJob.run(spark, opts(List.of(uri(in)), "text", tmp.resolve("codec-out"))).manifest();
        assertEquals(600, lines.runs().get(0).documents());
        assertEquals(normalized(verses.subList(0, 600)), new HashSet<>(allDocs(tmp.resolve("codec-out"), lines)));

        Manifest files = PrepareJob.run(spark, opts(List.of(uri(in)), "text", tmp.resolve("codec-file-out"))
                .withTextDocument("file").withValFraction(0)).manifest();
        assertEquals(2, files.runs().get(0).documents());
        assertEquals(Set.of(String.join("\n", verses.subList(0, 300)), String.join("\n", verses.subList(300, 600))),
                new HashSet<>(Datasets.documents(uri(tmp.resolve("codec-file-out")), files, "train", CONF)));

        Path pq = tmp.resolve("pq");
        List<org.apache.spark.sql.Row> rows = new ArrayList<>();
        for (int i = 0; i < 300; i++) {
            rows.add(org.apache.spark.sql.RowFactory.create(i, i == 7 ? null : verses.get(i)));
        }
        org.apache.spark.sql.types.StructType schema = new org.apache.spark.sql.types.StructType()
                .add("id", "int").add("content", "string");
        spark.createDataFrame(rows, schema).coalesce(2).write().parquet(pq.toString());
        Manifest p = PrepareJob.run(spark, opts(List.of(uri(pq)), "parquet", tmp.resolve("pq-out"))
                .withTextField("content").withMaxBadFraction(0.01)).manifest();
        assertEquals(299, p.runs().get(0).documents());
        assertEquals(1, p.runs().get(0).badRecords());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PrepareJob.run(spark,
                opts(List.of(uri(pq)), "parquet", tmp.resolve("pq-out2"))));
        assertTrue(e.getMessage().contains("'text'") && e.getMessage().contains("content"), e.getMessage());
    }

    @Test
    void shouldQuarantineATextOverTheConfiguredLimitAsSuchNotAsMalformedJson() {
        String big = "{\"text\":\"" + "a".repeat(300) + "\"}";
        PrepareJob.Rec small = PrepareJob.parseJson(new PrepareJob.Rec("f.jsonl", 7, big, null), "text", "NFC", 100);
        assertTrue(small.bad() != null && small.bad().contains("--max-text-chars 100") && small.bad().contains("valid JSON"),
                small.bad());
        PrepareJob.Rec kept = PrepareJob.parseJson(new PrepareJob.Rec("f.jsonl", 7, big, null), "text", "NFC", 1000);
        assertEquals(null, kept.bad());
        assertEquals(300, kept.text().length());
        PrepareJob.Rec broken = PrepareJob.parseJson(new PrepareJob.Rec("f.jsonl", 7, "{\"text\": ", null), "text", "NFC", 1000);
        assertTrue(broken.bad().startsWith("malformed JSON"), broken.bad());
        assertEquals(PrepareOptions.DEFAULT_MAX_TEXT_CHARS, PrepareOptions.parse("--input", "a", "--format", "jsonl", "--out", "b")
                .maxTextChars());
        assertEquals(50_000_000, PrepareOptions.parse("--input", "a", "--format", "jsonl", "--out", "b", "--max-text-chars", "50000000")
                .maxTextChars());
        assertThrows(PrepareOptions.UsageException.class, () -> PrepareOptions.parse("--input", "a", "--format", "jsonl", "--out", "b",
                "--max-text-chars", "0"));
    }

    @Test
    void shouldRunTheCliEndToEnd() throws Exception {
        Path in = write(tmp.resolve("cli/in.txt"), verses.subList(0, 200));
        Path out = tmp.resolve("cli-out");
        assertEquals(0, Prepare.run("--input", uri(in), "--format", "text", "--out", uri(out), "--tokenizer", "train:300",
                "--seq-len", "32", "--master", "local[2]"));
        Manifest m = Datasets.latest(uri(out), CONF);
        assertEquals(32, m.seqLen());
        assertEquals(300, m.tokenizer().vocabSize());
        // a second dataset from the first one's tokenizer file, and a refused overwrite
        Path out2 = tmp.resolve("cli-out2");
        assertEquals(0, Prepare.run("--input", uri(in), "--format", "text", "--out", uri(out2), "--tokenizer",
                uri(out.resolve(m.tokenizer().path())), "--seq-len", "32"));
        assertEquals(m.tokenizer().sha256(), Datasets.latest(uri(out2), CONF).tokenizer().sha256());
        assertEquals(2, Prepare.run("--input", uri(in), "--format", "text", "--out", uri(out), "--seq-len", "32"),
                "an --out that already holds a dataset is bad input");
        assertTrue(spark.sparkContext().isStopped() == false, "the CLI leaves a session it did not create running");
    }
}
