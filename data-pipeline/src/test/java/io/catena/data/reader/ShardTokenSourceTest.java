package io.catena.data.reader;

import io.catena.data.manifest.Manifest;
import io.catena.data.manifest.ManifestStore;
import io.catena.data.shard.ShardCorruptException;
import io.catena.data.shard.ShardFormat;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ShardTokenSourceTest {

    static final int SEQ = 7;
    static final int WIN = SEQ + 1;
    /** Tokens per shard; 11 and 3 leave partial windows that must never be read. */
    static final int[] SHARD_TOKENS = {WIN * 5 + 3, WIN * 4, 3, WIN * 8 + 1};
    static final int WINDOWS = 17;

    @TempDir
    static java.nio.file.Path dir;
    static final Configuration CONF = new Configuration();

    /** Writes a dataset whose token at global stream index i is i % 1000 (window w starts with w's first token). */
    @BeforeAll
    static void writeDataset() throws IOException {
        Path root = new Path(dir.toUri());
        List<Manifest.Shard> shards = new ArrayList<>();
        int base = 0;
        for (int s = 0; s < SHARD_TOKENS.length; s++) {
            int[] t = new int[SHARD_TOKENS[s]];
            for (int i = 0; i < t.length; i++) {
                t[i] = (base + i) % 1000;
            }
            base += t.length;
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            int crc = ShardFormat.write(out, t, t.length, 2);
            String name = String.format("v000001/train-%05d-000.bin", s);
            Files.createDirectories(dir.resolve("v000001"));
            Files.write(dir.resolve(name), out.toByteArray());
            shards.add(new Manifest.Shard("train", name, t.length, t.length / WIN, 1, String.format("%08x", crc), 1));
        }
        Manifest m = new Manifest(Manifest.FORMAT, 1, "now", SEQ, new Manifest.TokenizerRef("t.json", "x", 1000, 998, 999, 2),
                new Manifest.SplitRule("r", 0, 0, 0), new Manifest.InputSettings("text", "text", "line", "NFC"), shards,
                List.of(), List.of(), List.of());
        ManifestStore.commit(root, m, CONF);
    }

    static ShardTokenSource open(int rank, int world, long seed, boolean shuffle) {
        return ShardTokenSource.open(dir.toUri().toString(), CONF,
                new ShardTokenSource.Options("train", rank, world, seed, shuffle, 1 << 20));
    }

    /** Reads n windows and returns each window's identity: its index in the concatenated stream of whole windows. */
    static List<int[]> read(ShardTokenSource s, int n) {
        List<int[]> out = new ArrayList<>();
        int[] buf = new int[WIN * n];
        s.nextBatch(buf, n);
        for (int i = 0; i < n; i++) {
            out.add(java.util.Arrays.copyOfRange(buf, i * WIN, (i + 1) * WIN));
        }
        return out;
    }

    @Test
    void shouldGiveDisjointSharesThatTogetherCoverEveryWindow() {
        for (int world : new int[] {1, 2, 3, 4}) {
            Set<Integer> seen = new HashSet<>();
            long total = 0;
            for (int r = 0; r < world; r++) {
                try (ShardTokenSource s = open(r, world, 11, true)) {
                    assertEquals(WINDOWS / world, s.windowsPerEpoch());
                    for (int[] w : read(s, (int) s.windowsPerEpoch())) {
                        for (int i = 1; i < WIN; i++) {
                            assertEquals((w[0] + i) % 1000, w[i], "window tokens are consecutive");
                        }
                        assertTrue(seen.add(w[0]), "window starting with token " + w[0] + " read twice (W=" + world + ")");
                        total++;
                    }
                }
            }
            assertEquals(WINDOWS - WINDOWS % world, total);
            if (world == 1) {
                assertEquals(WINDOWS, seen.size());
            }
        }
    }

    @Test
    void shouldNeverReadAcrossShardBoundariesOrPartialWindows() {
        Set<Integer> valid = new HashSet<>();
        int base = 0;
        for (int t : SHARD_TOKENS) {
            for (int w = 0; w < t / WIN; w++) {
                valid.add((base + w * WIN) % 1000);
            }
            base += t;
        }
        try (ShardTokenSource s = open(0, 1, 5, false)) {
            Set<Integer> got = new HashSet<>();
            read(s, WINDOWS).forEach(w -> got.add(w[0]));
            assertEquals(valid, got);
        }
    }

    @Test
    void shouldResumeExactlyFromASavedPositionOrCursor() {
        ShardTokenSource a = open(1, 2, 9, true);
        read(a, 5);
        long pos = a.position();
        ShardTokenSource.Cursor c = a.cursor();
        List<int[]> rest = read(a, 20); // crosses into the next epochs
        ShardTokenSource b = open(1, 2, 9, true);
        b.seek(pos);
        List<int[]> again = read(b, 20);
        ShardTokenSource r = ShardTokenSource.resume(dir.toUri().toString(), CONF, c, 1 << 20);
        List<int[]> resumed = read(r, 20);
        for (int i = 0; i < 20; i++) {
            assertArrayEquals(rest.get(i), again.get(i));
            assertArrayEquals(rest.get(i), resumed.get(i));
        }
        assertEquals(1, c.manifestVersion());
        assertTrue(c.shard().startsWith("v000001/train-"));
    }

    @Test
    void shouldReshuffleEachEpochDeterministicallyFromTheSeed() {
        List<Integer> e0 = firsts(read(open(0, 1, 1, true), WINDOWS));
        List<Integer> e0again = firsts(read(open(0, 1, 1, true), WINDOWS));
        ShardTokenSource s = open(0, 1, 1, true);
        s.seek(WINDOWS);
        List<Integer> e1 = firsts(read(s, WINDOWS));
        List<Integer> otherSeed = firsts(read(open(0, 1, 2, true), WINDOWS));
        assertEquals(e0, e0again);
        assertNotEquals(e0, e1);
        assertNotEquals(e0, otherSeed);
        assertEquals(new HashSet<>(e0), new HashSet<>(e1));
    }

    @Test
    void shouldBeABijectionForAnyDomainSize() {
        for (long n : new long[] {1, 2, 3, 5, 16, 17, 1000, 4097}) {
            WindowPermutation p = new WindowPermutation(n, 77, true);
            Set<Long> img = new HashSet<>();
            for (long i = 0; i < n; i++) {
                long v = p.apply(i);
                assertTrue(v >= 0 && v < n);
                img.add(v);
            }
            assertEquals(n, img.size());
        }
    }

    @Test
    void shouldRefuseACorruptShardNamingFileAndOffset(@TempDir java.nio.file.Path copy) throws IOException {
        org.apache.commons.io.FileUtils.copyDirectory(dir.toFile(), copy.toFile());
        java.nio.file.Path f = copy.resolve("v000001/train-00001-000.bin");
        byte[] b = Files.readAllBytes(f);
        b[40] ^= 1;
        Files.write(f, b);
        ShardTokenSource s = ShardTokenSource.open(copy.toUri().toString(), CONF,
                new ShardTokenSource.Options("train", 0, 1, 0, false, 1 << 20));
        int[] buf = new int[WIN * WINDOWS];
        ShardCorruptException e = assertThrows(ShardCorruptException.class, () -> s.nextBatch(buf, WINDOWS));
        assertTrue(e.getMessage().contains("train-00001-000.bin") && e.getMessage().contains("offset"), e.getMessage());
        assertEquals(5, s.position(), "stops before the first window of the corrupt shard");
    }

    @Test
    void shouldExplainTooFewWindowsForTheWorkers() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> open(0, 40, 0, true));
        assertTrue(e.getMessage().contains("17 windows") && e.getMessage().contains("40 workers"), e.getMessage());
    }

    private static List<Integer> firsts(List<int[]> ws) {
        List<Integer> l = new ArrayList<>();
        ws.forEach(w -> l.add(w[0]));
        return l;
    }
}
