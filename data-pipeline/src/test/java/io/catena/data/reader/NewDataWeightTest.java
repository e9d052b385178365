package io.catena.data.reader;

import io.catena.data.manifest.Manifest;
import io.catena.data.manifest.ManifestStore;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 17 finding 11: how much of each step comes from the new partitions is a choice. A data spec ending in
 * {@code #new-data-weight=W} (what {@code catena retrain --new-data-weight W} trains on) draws exactly share W of the train
 * windows from the newest dataset version, the rest from the older ones; without it every window is equally likely.
 */
class NewDataWeightTest {
    static final int SEQ = 8;
    static final int OLD = 30;
    static final int NEW = 5;
    static final Configuration CONF = new Configuration();

    @TempDir
    static java.nio.file.Path dir;

    /** Version 2 of a dataset: 30 train windows from version 1 (three shards), 5 from version 2; 2 val windows. */
    @BeforeAll
    static void writeManifest() throws Exception {
        int win = SEQ + 1;
        List<Manifest.Shard> shards = new ArrayList<>();
        for (int s = 0; s < 3; s++) {
            shards.add(new Manifest.Shard("train", String.format("v000001/train-%05d-000.bin", s), 10L * win, 10, 1, "0", 1));
        }
        shards.add(new Manifest.Shard("train", "v000002/train-00000-000.bin", NEW * win + 3, NEW, 1, "0", 2));
        shards.add(new Manifest.Shard("val", "v000001/val-00000-000.bin", 2L * win, 2, 1, "0", 1));
        Manifest m = new Manifest(Manifest.FORMAT, 2, "now", SEQ, new Manifest.TokenizerRef("t.json", "x", 1000, 998, 999, 2),
                new Manifest.SplitRule("r", 0, 0, 0), new Manifest.InputSettings("text", "text", "line", "NFC"), shards,
                List.of(), List.of(), List.of());
        ManifestStore.commit(new Path(dir.toUri()), m, CONF);
    }

    static ShardTokenSource open(String suffix, String split, int rank, int world) {
        return (ShardTokenSource) new ManifestTokenSourceProvider(CONF).open(dir.toUri() + "manifests/manifest-v000002.json"
                + suffix, split, SEQ, 7, rank, world);
    }

    @Test
    void shouldDrawTheNewDataWeightOfEveryStepFromTheNewVersion() {
        ShardTokenSource w0 = open("#new-data-weight=0.25", "train", 0, 2);
        ShardTokenSource w1 = open("#new-data-weight=0.25", "train", 1, 2);
        assertTrue(new ManifestTokenSourceProvider(CONF).accepts(dir.toUri() + "manifests/manifest-v000002.json#new-data-weight=0.25"));
        assertTrue(w0.describe().contains("new-data-weight=0.25"), w0.describe());
        int newDraws = 0;
        List<Long> firstNew = new ArrayList<>();
        for (long p = 0; p < 400; p++) {
            for (ShardTokenSource s : List.of(w0, w1)) {
                long g = s.windowAt(p);
                assertTrue(g >= 0 && g < OLD + NEW, "window " + g);
                if (g >= OLD) {
                    newDraws++;
                    if (firstNew.size() < NEW) {
                        firstNew.add(g);
                    }
                }
            }
        }
        assertEquals(200, newDraws, "exactly a quarter of the 800 draws of two workers is new data");
        assertEquals(NEW, new HashSet<>(firstNew).size(), "the new windows are read once each before any repeats: " + firstNew);
        // the workers' draws are disjoint within each pass over the old windows
        Set<Long> oldPass = new HashSet<>();
        int oldDraws = 0;
        for (long p = 0; oldDraws < OLD; p++) {
            for (ShardTokenSource s : List.of(w0, w1)) {
                long g = s.windowAt(p);
                if (g < OLD && oldDraws < OLD) {
                    assertTrue(oldPass.add(g), "old window " + g + " drawn twice in one pass");
                    oldDraws++;
                }
            }
        }
        // resume: the stream is a function of the position
        ShardTokenSource again = open("#new-data-weight=0.25", "train", 1, 2);
        again.seek(123);
        assertEquals(w1.windowAt(123), again.windowAt(again.position()));
        // a version range: new-from-version=1 makes every window "new": nothing to weigh, every window alike
        assertTrue(open("#new-data-weight=0.25&new-from-version=1", "train", 0, 1).describe().indexOf("new-data-weight") < 0);
    }

    @Test
    void shouldSampleEveryWindowAlikeWithoutAWeightAndNeverWeighVal() {
        ShardTokenSource uniform = open("", "train", 0, 1);
        int newDraws = 0;
        for (long p = 0; p < 35 * 20; p++) {
            newDraws += uniform.windowAt(p) >= OLD ? 1 : 0;
        }
        assertEquals(NEW * 20, newDraws, "uniform: each window once per epoch, so new data in proportion to its size");
        ShardTokenSource val = open("#new-data-weight=0.9", "val", 0, 1);
        assertEquals(2, val.totalWindows());
        assertTrue(!val.describe().contains("new-data-weight"), val.describe());
    }

    @Test
    void shouldExplainABadWeightOrVersion() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> open("#new-data-weight=1.5", "train", 0, 1));
        assertTrue(e.getMessage().contains("0 < w < 1"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> open("#new-data-weight=0.5&new-from-version=3", "train", 0, 1));
        assertTrue(e.getMessage().contains("new-from-version=3") && e.getMessage().contains("1..2"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> open("#new-data-weight=half", "train", 0, 1));
        assertTrue(e.getMessage().contains("'half'"), e.getMessage());
    }
}
