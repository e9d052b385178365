package io.catena.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.data.TextByteSource;
import io.catena.model.io.CheckpointStore;
import io.catena.model.io.TrainingState;
import io.catena.model.train.Recipe;
import java.io.RandomAccessFile;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;

/** Bad input fails with a message that names the problem, and leaves nothing half-written. */
class BadInputTest {

    private static void assertMessage(Throwable t, String... parts) {
        for (String p : parts) {
            assertTrue(t.getMessage().contains(p), "message should mention '" + p + "': " + t.getMessage());
        }
    }

    @Test
    void shouldRejectInvalidConfigsNamingTheNumbers() {
        assertMessage(assertThrows(IllegalArgumentException.class, () -> new ColmConfig(100, 64, List.of(3, 2), 2, 2, 4,
                ColmConfig.Activation.GELU, ColmConfig.NormKind.LAYERNORM, 1e-5, 1e4, ColmConfig.Variant.COLM_AIR, 64, true, null)),
                "kv_heads=2", "chains[0]=3");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> new ColmConfig(100, 6, List.of(1, 1), 2, 0, 1.1,
                ColmConfig.Activation.GELU, ColmConfig.NormKind.LAYERNORM, 1e-5, 1e4, ColmConfig.Variant.COLM, 64, true, null)),
                "ffn_mult", "6.6");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> new ColmConfig(100, 8, List.of(1, 1), 2, 0, 2,
                ColmConfig.Activation.GELU, ColmConfig.NormKind.LAYERNORM, 1e-5, 1e4, ColmConfig.Variant.COLM, 64, true,
                List.of(0.5, 0.6))), "sum to 1");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Recipe.of(Map.of("chains", "2,2", "heads", "5"), "r")
                .modelConfig(257)), "heads=5", "sum to 4");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Recipe.of(Map.of("layer", "2"), "r")), "unknown key 'layer'");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Recipe.of(Map.of("d_model", "100", "head_dim", "64",
                "chains", "1,1"), "r").modelConfig(257)), "d_model=100", "128");
    }

    @Test
    void shouldRejectScaleAboveChainCount() {
        ColmConfig cfg = TinyConfigs.colmGeluLayerNorm();
        Params p = TinyConfigs.randomParams(cfg, DataType.FLOAT, 1);
        ColmModel m = new ColmModel(cfg, p, new Params(p.layout(), DataType.FLOAT), 1, 4);
        assertMessage(assertThrows(IllegalArgumentException.class, () -> m.forward(new int[4], 0, 3)), "k=3", "2 chain(s)");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> m.forward(new int[] {0, 1, 99, 2}, 0, 2)),
                "token id 99", "position 2");
    }

    @Test
    void shouldRejectEmptyOrTooSmallData(@TempDir Path dir) throws Exception {
        Path empty = Files.createDirectories(dir.resolve("empty"));
        Files.writeString(empty.resolve("a.txt"), "");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> TextByteSource.readCorpus(empty)), "holds no text");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> TextByteSource.readCorpus(dir.resolve("nope"))), "does not exist");
        int[] small = TextByteSource.readCorpus(Files.writeString(dir.resolve("s.txt"), "hello"));
        assertMessage(assertThrows(IllegalArgumentException.class, () -> TextByteSource.open(small, "s.txt", 64, 0.1,
                TextByteSource.Split.TRAIN, 1, 0, 1)), "windows", "smaller seq_len");
    }

    private static TrainingState state() {
        return state(3);
    }

    private static TrainingState state(int step) {
        ColmConfig cfg = TinyConfigs.colmGeluLayerNorm();
        Params p = TinyConfigs.randomParams(cfg, DataType.FLOAT, 2);
        return new TrainingState(cfg, p, null, null, step, 30, 6, 0, Map.of());
    }

    @Test
    void shouldNameMissingCorruptOrMismatchedCheckpointFiles(@TempDir Path dir) throws Exception {
        CheckpointStore store = new CheckpointStore();
        assertMessage(assertThrows(IllegalArgumentException.class, () -> store.load(dir.toString(), false)), "no checkpoint",
                "model.json");
        String stepDir = store.save(dir.resolve("root").toString(), state());
        Path local = Path.of(java.net.URI.create(stepDir));
        // inference export has no optimizer state: resuming is refused with a reason
        assertMessage(assertThrows(IllegalArgumentException.class, () -> store.load(stepDir, true)), "no optimizer state");

        Path tensor = local.resolve("params/layers.0.attn.q.c1.weight.npy");
        byte[] original = Files.readAllBytes(tensor);
        try (RandomAccessFile f = new RandomAccessFile(tensor.toFile(), "rw")) {
            f.seek(original.length - 3);
            f.write(0x7f);
        }
        assertMessage(assertThrows(UncheckedIOException.class, () -> store.load(stepDir, false)), "layers.0.attn.q.c1.weight.npy",
                "CRC32C");
        Files.write(tensor, java.util.Arrays.copyOf(original, original.length - 8));
        assertMessage(assertThrows(UncheckedIOException.class, () -> store.load(stepDir, false)), "truncated");
        Files.delete(tensor);
        assertMessage(assertThrows(UncheckedIOException.class, () -> store.load(stepDir, false)), "missing tensor file",
                "layers.0.attn.q.c1.weight");
        Files.write(tensor, original);
        // a model.json whose config does not match its tensors (shape mismatch)
        Path json = local.resolve("model.json");
        String doc = Files.readString(json);
        Files.writeString(json, doc.replace("\"head_dim\" : 4", "\"head_dim\" : 6"));
        assertMessage(assertThrows(UncheckedIOException.class, () -> store.load(stepDir, false)), "expected shape");
        Files.writeString(json, doc);
        assertEquals(3, store.load(dir.resolve("root").toString(), false).step());
    }

    @Test
    void shouldLeaveNoHalfWrittenCheckpointWhenWritingFails(@TempDir Path dir) throws Exception {
        CheckpointStore store = new CheckpointStore();
        String root = dir.resolve("root").toString();
        TrainingState first = state();
        store.save(root, first);
        // a write that fails half-way through the tensors (as a full disk would), both for a step under a root...
        TrainingState next = state(5);
        RuntimeException failed = assertThrows(RuntimeException.class, () -> store.failingAfterTensors(3).save(root, next));
        assertMessage(failed, "injected failure after 3 tensor files");
        // ...and for a standalone directory
        String out = dir.resolve("expanded").toString();
        assertThrows(RuntimeException.class, () -> store.failingAfterTensors(2).saveTo(out, next));
        assertFalse(Files.exists(Path.of(out)), "a failed saveTo leaves no directory");
        // a file where the next step directory's parent should be: the write fails before anything is written
        Path blocker = dir.resolve("blocked");
        Files.writeString(blocker, "not a directory");
        assertThrows(RuntimeException.class, () -> store.save(blocker.resolve("sub").toString(), state()));
        // an existing output directory is never overwritten by saveTo
        assertMessage(assertThrows(IllegalArgumentException.class, () -> store.saveTo(root, state())), "already exists");
        try (Stream<Path> s = Files.list(Path.of(root))) {
            List<String> names = s.map(p -> p.getFileName().toString()).sorted().toList();
            assertEquals(List.of("latest", "step-00000003"), names, "no temporary or partial directory may stay behind");
        }
        try (Stream<Path> s = Files.list(dir)) {
            assertFalse(s.anyMatch(p -> p.getFileName().toString().startsWith("_tmp")), "no temporary directory beside saveTo's target");
        }
        // and the previous checkpoint is still the one 'latest' names, intact
        TrainingState back = store.load(root, false);
        assertEquals(first.step(), back.step());
        for (int i = 0; i < first.params().buf().length(); i++) {
            assertEquals(first.params().buf().get(i), back.params().buf().get(i), 0.0, "parameter " + i);
        }
    }

    /** A crash between deleting the old 'latest' and renaming the new one into place: the new one is found. */
    @Test
    void shouldFindTheNewestCheckpointWhenReplacingLatestWasInterrupted(@TempDir Path dir) throws Exception {
        CheckpointStore store = new CheckpointStore();
        String root = dir.resolve("root").toString();
        store.save(root, state());
        store.save(root, state(5));
        // the state such a crash leaves: no 'latest', only the complete temporary file naming the new step
        Files.move(Path.of(root, CheckpointStore.LATEST), Path.of(root, "_tmp-" + CheckpointStore.LATEST + "-0f3e"));
        assertTrue(store.resolve(root).endsWith("step-00000005"), store.resolve(root));
        assertEquals(5, store.load(root, false).step());
        // the next save replaces it as usual
        store.save(root, state(7));
        assertTrue(store.resolve(root).endsWith("step-00000007"), store.resolve(root));
    }
}
