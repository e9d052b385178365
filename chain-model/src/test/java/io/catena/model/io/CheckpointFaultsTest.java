package io.catena.model.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.ColmConfig;
import io.catena.model.NotRetryableException;
import io.catena.model.data.ByteTokenizer;
import io.catena.model.train.LocalTrainer;
import io.catena.model.train.MetricsLog;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Full disks, crash leftovers and metrics after a resume: what a failed or killed run leaves must not trap the next one. */
class CheckpointFaultsTest {

    /** A tiny model's state at {@code step} (no optimizer moments). */
    static TrainingState state(long step) {
        ColmConfig cfg = new ColmConfig(ByteTokenizer.VOCAB_SIZE, 8, List.of(1, 1), 1, 0, 2.0, ColmConfig.Activation.GELU,
                ColmConfig.NormKind.LAYERNORM, 1e-5, 1e4, ColmConfig.Variant.COLM, 16, true, null);
        TrainingState fresh = LocalTrainer.freshState(cfg, 3);
        return new TrainingState(cfg, fresh.params(), null, null, step, step * 100, step * 10, 0, Map.of());
    }

    private static List<String> names(Path root) throws Exception {
        try (Stream<Path> s = Files.list(root)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void shouldRemoveThePartialDirectoryAndNameTheSpaceWhenTheDiskIsFull(@TempDir Path dir) throws Exception {
        CheckpointStore store = new CheckpointStore();
        String root = dir.resolve("ckpt").toString();
        store.save(root, state(1));
        // Hadoop's local file system reports ENOSPC as an Error (FSError), which a catch of IOException misses
        CheckpointWriteException e = assertThrows(CheckpointWriteException.class, () -> store.failingLikeAFullDisk(2).save(root, state(5)));
        String m = e.getMessage();
        assertTrue(m.contains("cannot write checkpoint step-00000005") && m.contains("No space left on device"), m);
        assertTrue(m.contains("MB free there; this checkpoint needs about"), m);
        assertTrue(m.contains("the partial directory was removed") && m.contains("step-00000001") && m.contains("is intact"), m);
        assertTrue(NotRetryableException.marks(m), "a full disk is not retried: " + m);
        assertEquals(List.of("latest", "step-00000001"), names(Path.of(root)));
        assertEquals(1, store.load(root, false).step());
        // saveTo (expand's output) too
        Path out = dir.resolve("expanded");
        assertThrows(CheckpointWriteException.class, () -> store.failingLikeAFullDisk(1).saveTo(out.toString(), state(5)));
        assertEquals(List.of("ckpt"), names(dir));
    }

    @Test
    void shouldSweepLeftoversOfDeadWritersAndNeverALiveOne(@TempDir Path dir) throws Exception {
        CheckpointStore store = new CheckpointStore();
        Path root = dir.resolve("ckpt");
        store.save(root.toString(), state(3));
        Process gone = new ProcessBuilder("true").start();
        gone.waitFor();
        String host = CheckpointStore.WRITER.substring(CheckpointStore.WRITER.indexOf('@') + 1);
        Path deadWriter = Files.createDirectories(root.resolve("_tmp-step-00000004-p" + gone.pid() + "@" + host + "-" + UUID.randomUUID()));
        Path liveWriter = Files.createDirectories(root.resolve("_tmp-step-00000005-" + CheckpointStore.WRITER + "-" + UUID.randomUUID()));
        Path oldUnknown = Files.createDirectories(root.resolve("_tmp-step-00000002-" + UUID.randomUUID())); // before writers were named
        Files.setLastModifiedTime(oldUnknown, FileTime.fromMillis(System.currentTimeMillis() - 2 * CheckpointStore.FOREIGN_LEFTOVER_AGE_MS));
        Path newUnknown = Files.createDirectories(root.resolve("_tmp-step-00000009-" + UUID.randomUUID()));
        Files.setLastModifiedTime(newUnknown, FileTime.fromMillis(System.currentTimeMillis() - 2 * CheckpointStore.FOREIGN_LEFTOVER_AGE_MS));
        Path otherHost = Files.createDirectories(root.resolve("_tmp-step-00000001-p1@elsewhere-" + UUID.randomUUID())); // recent
        Path replaced = Files.createDirectories(root.resolve("_old-step-00000003-" + UUID.randomUUID()));
        Files.writeString(deadWriter.resolve("x.npy"), "partial");

        List<String> removed = store.sweepLeftovers(root.toString());
        assertEquals(List.of(deadWriter, oldUnknown, replaced).stream().map(p -> p.getFileName().toString()).sorted().toList(),
                removed.stream().sorted().toList());
        assertTrue(Files.exists(liveWriter), "a live writer's directory is never touched");
        assertTrue(Files.exists(newUnknown), "an unknown writer's newer step could still be written");
        assertTrue(Files.exists(otherHost), "another host's recent write could still be in progress");
        assertEquals(3, store.load(root.toString(), false).step());
        assertEquals(List.of(), store.sweepLeftovers(root.toString()), "idempotent");
    }

    @Test
    void shouldDropMetricsOfStepsAfterTheResumedCheckpoint(@TempDir Path dir) throws Exception {
        Path m = dir.resolve("metrics.jsonl");
        for (long s = 1; s <= 30; s++) {
            MetricsLog.append(m, Map.of("kind", "train", "step", s));
        }
        MetricsLog.append(m, Map.of("kind", "note"));
        Files.writeString(m, Files.readString(m) + "{\"kind\":\"train\",\"st", java.nio.file.StandardOpenOption.TRUNCATE_EXISTING);
        assertEquals(21, MetricsLog.truncateAfter(m, 10), "20 later steps and the torn last line of a killed run");
        List<String> lines = Files.readAllLines(m);
        assertEquals(11, lines.size());
        assertTrue(lines.get(9).contains("\"step\":10") && lines.get(10).contains("note"), lines.toString());
        assertEquals(0, MetricsLog.truncateAfter(m, 10));
        assertFalse(Files.list(dir).anyMatch(p -> p.getFileName().toString().startsWith("_tmp")), "rewritten through a temp file");
    }
}
