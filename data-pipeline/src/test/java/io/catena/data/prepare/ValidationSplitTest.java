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
}
