package io.catena.data.prepare;

import io.catena.data.TestData;
import io.catena.data.TestSpark;
import io.catena.data.manifest.Manifest;
import io.catena.data.manifest.ManifestStore;
import io.catena.data.reader.ShardTokenSource;
import io.catena.data.tokenizer.ByteLevelBpe;
import io.catena.data.tokenizer.IntBuffer;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 17, findings 2 and 8: the val split exists whenever the data can give one window (a large file is split at
 * window boundaries, without leakage), a separate held-out corpus can be the val split (--val-input), and older
 * manifests stay readable.
 */
class ValidationSplitTest {

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

    /**
     * Finding 2: one large text file as one document with the default --val-fraction went whole to train, so the val
     * split had 0 windows and training stopped at once. Now whole train windows move to val; train and val windows are
     * disjoint token ranges that together are exactly the document's windows.
     */
    @Test
    void shouldDrawValWindowsFromALargeDocumentWithoutLeakage() throws Exception {
        Path in = PrepareJobTest.write(tmp.resolve("big/book.txt"), verses.subList(0, 400));
        Path out = tmp.resolve("big-out");
        PrepareOptions o = PrepareOptions.of(List.of(uri(in)), "text", uri(out)).withTextDocument("file")
                .withTokenizer("train:400").withSeqLen(32); // the default --val-fraction 0.01
        Manifest m = PrepareJob.run(spark, o).manifest();
        Manifest.RunCounts run = m.runs().get(0);
        assertEquals(1, run.trainDocuments() + run.valDocuments(), "one document");
        long valWindows = m.shards("val").stream().mapToLong(Manifest.Shard::windows).sum();
        long trainWindows = m.shards("train").stream().mapToLong(Manifest.Shard::windows).sum();
        assertTrue(valWindows >= 1, "the val split must have a window: " + m.shards());
        assertEquals(Math.max(1, Math.round(0.01 * (valWindows + trainWindows))), valWindows, "--val-fraction of the windows");
        assertEquals(valWindows, run.valWindowsDrawn());
        assertTrue(m.split().windowRule() != null && m.split().windowRule().contains("window"), String.valueOf(m.split()));

        // no leakage: every window of the encoded document is in exactly one split
        ByteLevelBpe tok = Datasets.tokenizer(uri(out), m, CONF);
        String text = java.text.Normalizer.normalize(Files.readString(in, StandardCharsets.UTF_8), java.text.Normalizer.Form.NFC);
        IntBuffer enc = new IntBuffer(1024);
        byte[] b = text.getBytes(StandardCharsets.UTF_8);
        tok.encode(b, 0, b.length, enc);
        enc.add(tok.eosId());
        int window = 33;
        int[] doc = enc.toArray();
        Map<String, java.util.ArrayDeque<Integer>> windowIndex = new HashMap<>(); // a repeated window has several places
        for (int i = 0; (i + 1) * window <= doc.length; i++) {
            windowIndex.computeIfAbsent(Arrays.toString(Arrays.copyOfRange(doc, i * window, (i + 1) * window)),
                    k -> new java.util.ArrayDeque<>()).add(i);
        }
        assertEquals(valWindows + trainWindows, doc.length / window, "every whole window of the document is read");
        Set<Integer> seen = new HashSet<>();
        for (String split : List.of("train", "val")) {
            for (Manifest.Shard s : m.shards(split)) {
                int[] t = Datasets.tokens(uri(out), s, CONF);
                for (int i = 0; (i + 1) * window <= t.length; i++) {
                    java.util.ArrayDeque<Integer> at = windowIndex.get(Arrays.toString(Arrays.copyOfRange(t, i * window, (i + 1) * window)));
                    assertTrue(at != null, split + " window " + i + " of " + s.path() + " is no window of the document");
                    assertTrue(!at.isEmpty() && seen.add(at.poll()), split + " window " + i + " of " + s.path()
                            + " was read already (train and val overlap)");
                }
            }
        }
        assertEquals(doc.length / window, seen.size());

        // training and evaluation open both splits
        try (ShardTokenSource val = ShardTokenSource.open(uri(out), CONF, ShardTokenSource.Options.of("val", 0, 1, 1));
             ShardTokenSource train = ShardTokenSource.open(uri(out), CONF, ShardTokenSource.Options.of("train", 0, 2, 1))) {
            assertEquals(valWindows, val.totalWindows());
            assertEquals(trainWindows, train.totalWindows());
        }
        // a rerun gives the same dataset (the draw is seeded, not random)
        Manifest again = PrepareJob.run(spark, PrepareOptions.of(List.of(uri(in)), "text", uri(tmp.resolve("big-out-2")))
                .withTextDocument("file").withTokenizer("train:400").withSeqLen(32)).manifest();
        assertEquals(m.shards(), again.shards());
    }

    /**
     * Finding 8: a separate held-out corpus as the val split. Its documents are val (encoded with the dataset's tokenizer),
     * every --input document is train except those also held out; an incremental run keeps the held-out corpus and
     * refuses to drop it; --val-fraction and --val-input together are refused.
     */
    @Test
    void shouldTakeTheValSplitFromAHeldOutCorpus() throws Exception {
        Path lake = tmp.resolve("held-lake");
        PrepareJobTest.write(lake.resolve("date=2026-01-01/part-0.txt"), verses.subList(0, 300));
        List<String> heldOut = new ArrayList<>(verses.subList(600, 660));
        heldOut.addAll(verses.subList(10, 15)); // also in the training input: must not be trained on
        Path heldDir = tmp.resolve("held-out");
        PrepareJobTest.write(heldDir.resolve("eval.txt"), heldOut);
        Path out = tmp.resolve("held-out-ds");
        PrepareOptions o = PrepareOptions.parse("--input", uri(lake), "--format", "text", "--out", uri(out), "--tokenizer",
                "train:400", "--seq-len", "16", "--val-input", uri(heldDir), "--incremental");
        assertEquals(0, o.valFraction());
        Manifest m = PrepareJob.run(spark, o).manifest();
        Manifest.RunCounts run = m.runs().get(0);
        assertEquals(65, run.valDocuments(), "every held-out document is val");
        assertEquals(295, run.trainDocuments(), "every input document but the 5 also held out is train");
        assertEquals(PrepareJobTest.normalized(heldOut), new HashSet<>(Datasets.documents(uri(out), m, "val", CONF)));
        Set<String> train = new HashSet<>(Datasets.documents(uri(out), m, "train", CONF));
        for (String v : verses.subList(10, 15)) {
            assertTrue(!train.contains(v), "held-out document in train: " + v);
        }
        assertEquals(uri(heldDir), m.split().valInput());
        assertEquals(0, m.split().valPpm());
        assertEquals(List.of("date=2026-01-01"), m.partitions(), "the held-out corpus is no partition");
        assertEquals(1, m.sources().stream().filter(Manifest.Source::heldOut).count());

        // the next partition: only it is read; the held-out corpus and its val shards are carried
        PrepareJobTest.write(lake.resolve("date=2026-01-02/part-0.txt"), verses.subList(300, 400));
        Manifest m2 = PrepareJob.run(spark, o).manifest();
        assertEquals(2, m2.version());
        assertEquals(100, m2.runs().get(1).trainDocuments());
        assertEquals(0, m2.runs().get(1).valDocuments());
        assertEquals(m.shards("val"), m2.shards("val"));
        // dropping --val-input from an incremental run is a settings change, refused with the dataset's value
        PrepareJobTest.write(lake.resolve("date=2026-01-03/part-0.txt"), verses.subList(400, 450));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PrepareJob.run(spark,
                PrepareOptions.parse("--input", uri(lake), "--format", "text", "--out", uri(out), "--seq-len", "16",
                        "--val-fraction", "0", "--incremental")));
        assertTrue(e.getMessage().contains("--val-input " + uri(heldDir)), e.getMessage());

        PrepareOptions.UsageException both = assertThrows(PrepareOptions.UsageException.class, () -> PrepareOptions.parse(
                "--input", "a", "--format", "text", "--out", "b", "--val-input", "c", "--val-fraction", "0.1"));
        assertTrue(both.getMessage().contains("--val-input") && both.getMessage().contains("--val-fraction"), both.getMessage());

        // a held-out corpus too small for one window is refused up front, naming the numbers
        Path tiny = PrepareJobTest.write(tmp.resolve("tiny-held/eval.txt"), List.of("In the beginning"));
        IllegalArgumentException small = assertThrows(IllegalArgumentException.class, () -> PrepareJob.run(spark,
                PrepareOptions.parse("--input", uri(lake.resolve("date=2026-01-01")), "--format", "text", "--out",
                        uri(tmp.resolve("tiny-held-ds")), "--tokenizer", "train:400", "--seq-len", "64", "--val-input", uri(tiny))));
        assertTrue(small.getMessage().contains("no validation window") && small.getMessage().contains("--seq-len 64"),
                small.getMessage());
        assertTrue(!Files.exists(tmp.resolve("tiny-held-ds/manifests")), "nothing was written");
    }

    /** Data that cannot give one train and one val window is refused with its numbers; nothing is written. */
    @Test
    void shouldRefuseDataTooSmallForAValWindowNamingTheNumbers() throws Exception {
        Path in = PrepareJobTest.write(tmp.resolve("small/a.txt"), List.of(verses.get(0)));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PrepareJob.run(spark,
                PrepareOptions.of(List.of(uri(in)), "text", uri(tmp.resolve("small-out"))).withTokenizer("train:300").withSeqLen(64)));
        assertTrue(e.getMessage().contains("no validation window possible") && e.getMessage().contains("1 new documents")
                && e.getMessage().contains("--seq-len 64") && e.getMessage().contains("window"), e.getMessage());
        assertTrue(!Files.exists(tmp.resolve("small-out/manifests")), "nothing was written");
    }

    /** Manifests written before the window rule and --val-input existed read as before (no rule, no held-out corpus). */
    @Test
    void shouldReadManifestsWrittenBeforeTheNewFields() throws Exception {
        String old = """
                {"format":"catena-token-shards/1","version":1,"createdAt":"2026-01-01T00:00:00Z","seqLen":16,
                 "tokenizer":{"path":"v000001/tokenizer.json","sha256":"x","vocabSize":300,"eosId":256,"padId":257,"dtypeBytes":2},
                 "split":{"rule":"r","valFraction":0.05,"valPpm":50000,"seed":0},
                 "input":{"format":"text","textField":"text","textDocument":"line","normalization":"NFC"},
                 "shards":[{"split":"train","path":"v000001/train-00000-000.bin","tokens":34,"windows":2,"documents":3,
                            "crc32c":"00000000","version":1}],
                 "sources":[{"path":"file:/x/a.txt","size":10,"modificationTime":1,"version":1}],
                 "partitions":[],
                 "runs":[{"version":1,"sourceFiles":1,"records":3,"documents":3,"emptyDocuments":0,"duplicates":0,
                          "duplicatesOfEarlierVersions":0,"badRecords":0,"trainDocuments":3,"valDocuments":0,
                          "trainTokens":34,"valTokens":0,"bytes":10}]}
                """;
        Path f = tmp.resolve("old-manifest/manifests/manifest-v000001.json");
        Files.createDirectories(f.getParent());
        Files.writeString(f, old);
        Manifest m = ManifestStore.read(new org.apache.hadoop.fs.Path(uri(f)), CONF);
        assertNull(m.split().windowRule());
        assertNull(m.split().valInput());
        assertEquals(50000, m.split().valPpm());
        assertEquals(0, m.runs().get(0).valWindowsDrawn());
        assertTrue(!m.sources().get(0).heldOut());
    }
}
