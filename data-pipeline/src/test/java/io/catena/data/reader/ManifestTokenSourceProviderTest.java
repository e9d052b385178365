package io.catena.data.reader;

import io.catena.data.TestData;
import io.catena.data.manifest.Manifest;
import io.catena.data.shard.ShardFormat;
import io.catena.data.tokenizer.ByteLevelBpe;
import io.catena.data.tokenizer.TokenizerJson;
import io.catena.model.data.TextCodec;
import io.catena.model.data.TokenBatchSource;
import io.catena.model.data.TokenSourceProvider;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
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

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The manifest reader as chain-model's trainers see it: found through {@link TokenSourceProvider#find}
 * (ServiceLoader, META-INF/services), over a real {@code prepare} run on the Genesis slice.
 */
class ManifestTokenSourceProviderTest {

    static final int SEQ = PreparedGenesis.SEQ_LEN;
    static final int WIN = SEQ + 1;
    static Path dataset;
    static Manifest manifest;
    static String spec;

    @TempDir
    static Path tmp;

    @BeforeAll
    static void prepare() {
        dataset = PreparedGenesis.dir();
        manifest = PreparedGenesis.manifest();
        spec = dataset.toUri().toString();
    }

    static TokenBatchSource open(String split, long seed, int worker, int workers) {
        TokenSourceProvider p = TokenSourceProvider.find(spec);
        assertNotNull(p, "no provider for " + spec);
        return p.open(spec, split, SEQ, seed, worker, workers);
    }

    static int[] read(TokenBatchSource s, int windows) {
        int[] buf = new int[windows * WIN];
        s.nextBatch(buf, windows);
        return buf;
    }

    /** Every whole window of the split, read straight from the shard files, keyed by content. */
    static Map<List<Integer>, Integer> windowsInShards(String split) throws IOException {
        Map<List<Integer>, Integer> m = new HashMap<>();
        for (Manifest.Shard s : manifest.shards(split)) {
            int[] t;
            try (InputStream in = Files.newInputStream(dataset.resolve(s.path()))) {
                t = ShardFormat.read(in, s.path(), s.tokens(), Integer.parseUnsignedInt(s.crc32c(), 16));
            }
            for (int w = 0; w + WIN <= t.length; w += WIN) {
                m.merge(asList(t, w, WIN), 1, Integer::sum);
            }
        }
        return m;
    }

    static List<Integer> asList(int[] a, int from, int n) {
        List<Integer> l = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            l.add(a[from + i]);
        }
        return l;
    }

    @Test
    void shouldBeFoundForDatasetDirectoriesAndManifestFilesOnAnyFileSystem() throws IOException {
        String manifestJson = dataset.resolve("manifest.json").toUri().toString();
        String pinned = dataset.resolve("manifests/manifest-v000001.json").toString();
        for (String s : List.of(spec, dataset.toString(), manifestJson, pinned, "hdfs://namenode:8020/datasets/kjv",
                "s3a://lake/datasets/kjv/manifest.json")) {
            assertInstanceOf(ManifestTokenSourceProvider.class, TokenSourceProvider.find(s), s);
        }
        // chain-model's own text inputs stay with chain-model
        Path textDir = Files.createDirectories(tmp.resolve("text"));
        Path text = Files.writeString(textDir.resolve("genesis.txt"), "In the beginning");
        for (String s : List.of("builtin:genesis", textDir.toString(), text.toString(), text.toUri().toString(),
                tmp.resolve("missing").toString())) {
            assertNull(TokenSourceProvider.find(s), s);
        }
        // a pinned manifest file opens the same data as the directory
        try (TokenBatchSource a = open("train", 3, 0, 1);
             TokenBatchSource b = TokenSourceProvider.find(pinned).open(pinned, "train", SEQ, 3, 0, 1)) {
            assertArrayEquals(read(a, 8), read(b, 8));
        }
    }

    @Test
    void shouldGiveTheDatasetsTokenizerAsTextCodecSoGenerateReadsAndWritesText() throws IOException {
        TextCodec c = TextCodec.forData(spec);
        assertEquals(manifest.tokenizer().vocabSize(), c.vocabSize());
        assertEquals(manifest.tokenizer().eosId(), c.eosId());
        String text = "And God called the light Day, and the darkness he called Night.";
        int[] ids = c.encode(text);
        assertTrue(ids.length < text.length() / 2, "BPE merges: " + ids.length + " ids for " + text.length() + " bytes");
        assertEquals(text, c.decode(ids, 0, ids.length));
        // an edited tokenizer.json is refused with the file named, never silently used
        Path copy = tmp.resolve("tampered");
        try (var walk = Files.walk(dataset)) {
            for (Path f : walk.toList()) {
                Path to = copy.resolve(dataset.relativize(f).toString());
                if (Files.isDirectory(f)) {
                    Files.createDirectories(to);
                } else {
                    Files.copy(f, to);
                }
            }
        }
        Path tok = copy.resolve(manifest.tokenizer().path());
        Files.writeString(tok, Files.readString(tok).replaceFirst("\"ĠGod\"", "\"ĠGOD\""));
        Files.deleteIfExists(tok.resolveSibling("." + tok.getFileName() + ".crc")); // edited by a tool that knows no Hadoop .crc
        RuntimeException e = assertThrows(RuntimeException.class, () -> TextCodec.forData(copy.toString()));
        assertTrue(e.getMessage().contains(tok.toString()), "names the file: " + e.getMessage());
    }

    @Test
    void shouldYieldEveryWindowOfTheShardsOncePerEpochWithTheTokenizersVocabulary() throws IOException {
        ByteLevelBpe tok;
        try (InputStream in = Files.newInputStream(dataset.resolve(manifest.tokenizer().path()))) {
            tok = TokenizerJson.parse(new String(in.readAllBytes(), StandardCharsets.UTF_8), "tokenizer.json",
                    ByteLevelBpe.EOS, ByteLevelBpe.PAD);
        }
        String genesis = TestData.genesisText();
        Map<List<Integer>, Integer> expected = windowsInShards("train");
        long n = manifest.shards("train").stream().mapToLong(Manifest.Shard::windows).sum();
        assertTrue(n > 100, "windows: " + n);
        try (TokenBatchSource s = open("train", 7, 0, 1)) {
            assertEquals(PreparedGenesis.VOCAB, s.vocabSize());
            assertEquals(manifest.tokenizer().vocabSize(), s.vocabSize());
            assertEquals(tok.vocabSize(), s.vocabSize());
            assertEquals(SEQ, s.seqLen());
            assertEquals(n, s.windowsPerEpoch());
            assertTrue(s.describe().contains("seqLen=" + SEQ), s.describe());
            int[] epoch = read(s, (int) n);
            Map<List<Integer>, Integer> got = new HashMap<>();
            for (int w = 0; w < n; w++) {
                got.merge(asList(epoch, w * WIN, WIN), 1, Integer::sum);
            }
            assertEquals(expected, got, "one epoch = every whole window of the train shards, once");
            assertTrue(Arrays.stream(epoch).allMatch(t -> t >= 0 && t < PreparedGenesis.VOCAB));
            // windows decode to Genesis text, documents separated by EOS
            int eos = 0;
            for (int w = 0; w < n; w++) {
                int start = w * WIN;
                for (int i = w * WIN; i <= (w + 1) * WIN; i++) {
                    if (i == (w + 1) * WIN || epoch[i] == tok.eosId()) {
                        String piece = new String(tok.decode(epoch, start, i), StandardCharsets.UTF_8);
                        assertTrue(genesis.contains(piece), "window " + w + " decodes to text not in Genesis: " + piece);
                        if (i < (w + 1) * WIN) {
                            eos++;
                        }
                        start = i + 1;
                    }
                }
            }
            assertTrue(eos > n / 2, "EOS between documents: " + eos);
            assertEquals(n, s.position());
        }
        try (TokenBatchSource val = open("val", 7, 0, 1)) {
            assertEquals(manifest.shards("val").stream().mapToLong(Manifest.Shard::windows).sum(), val.windowsPerEpoch());
            assertTrue(val.windowsPerEpoch() > 0);
            Map<List<Integer>, Integer> valWindows = windowsInShards("val");
            int[] w = read(val, 1);
            assertTrue(valWindows.containsKey(asList(w, 0, WIN)), "val reads the val shards");
        }
    }

    @Test
    void shouldBeDeterministicDisjointAcrossWorkersAndResumable() {
        int n;
        int[] a;
        try (TokenBatchSource s = open("train", 11, 0, 1)) {
            n = (int) s.windowsPerEpoch();
            a = read(s, n + 5); // crosses into epoch 2
        }
        try (TokenBatchSource s = open("train", 11, 0, 1)) {
            assertArrayEquals(a, read(s, n + 5), "same spec, seed and share: same stream");
        }
        try (TokenBatchSource s = open("train", 12, 0, 1)) {
            assertFalse(Arrays.equals(Arrays.copyOf(a, 4 * WIN), read(s, 4)), "another seed, another order");
        }
        assertFalse(Arrays.equals(Arrays.copyOfRange(a, 0, 5 * WIN), Arrays.copyOfRange(a, n * WIN, (n + 5) * WIN)),
                "epoch 2 is re-shuffled");
        // two workers: disjoint shares of equal length covering all but N mod 2 windows of the epoch
        Set<Long> seen = new HashSet<>();
        for (int r = 0; r < 2; r++) {
            try (TokenBatchSource s = open("train", 11, r, 2)) {
                assertEquals(n / 2, s.windowsPerEpoch());
                ShardTokenSource shards = assertInstanceOf(ShardTokenSource.class, s);
                for (long k = 0; k < n / 2; k++) {
                    long g = shards.windowAt(k);
                    assertTrue(g >= 0 && g < n && seen.add(g), "window " + g + " read twice or out of range");
                }
            }
        }
        assertEquals(n - n % 2, seen.size());
        // exact resume from a position
        try (TokenBatchSource s = open("train", 11, 1, 2)) {
            read(s, 9);
            long pos = s.position();
            assertEquals(9, pos);
            int[] next = read(s, 6);
            try (TokenBatchSource t = open("train", 11, 1, 2)) {
                t.seek(pos);
                assertArrayEquals(next, read(t, 6));
            }
        }
    }

    @Test
    void shouldRefuseAnotherSeqLenNamingBothAndHowToRePrepare() {
        TokenSourceProvider p = TokenSourceProvider.find(spec);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> p.open(spec, "train", 64, 1, 0, 1));
        String msg = e.getMessage();
        assertTrue(msg.contains("seq_len " + SEQ) && msg.contains("seq_len 64") && msg.contains("--seq-len 64"), msg);
        assertTrue(msg.contains(spec), msg);
    }

    @Test
    void shouldFailClearlyForADirectoryWithoutADatasetOrABadSplit() throws IOException {
        Path empty = Files.createDirectories(tmp.resolve("not-a-dataset"));
        String missing = empty.resolve("manifest.json").toUri().toString();
        TokenSourceProvider p = TokenSourceProvider.find(missing);
        assertNotNull(p, "accepted by name");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> p.open(missing, "train", SEQ, 1, 0, 1));
        assertTrue(e.getMessage().contains("no dataset") && e.getMessage().contains("catena prepare"), e.getMessage());
        IllegalArgumentException split = assertThrows(IllegalArgumentException.class, () -> p.open(spec, "test", SEQ, 1, 0, 1));
        assertTrue(split.getMessage().contains("\"train\" or \"val\""), split.getMessage());
    }
}
