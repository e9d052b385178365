package io.catena.model.cli;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.io.CheckpointStore;
import io.catena.model.io.TrainingState;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.RandomAccessFile;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The CLI's answers to damaged checkpoints, undecodable prompts and numbers out of range. */
class CliFaultsTest {

    private static String run(String... argv) {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        new CatenaCli(new PrintStream(buf, true)).run(argv);
        return buf.toString();
    }

    @Test
    void shouldFindACorruptTensorOnlyWithVerifyAndNameTheFile(@TempDir Path dir) throws Exception {
        TrainingState st = GenerateCodecTest.state(257, Map.of("data", "bytes:builtin:genesis"));
        String ckpt = new CheckpointStore().saveTo(dir.resolve("ck").toString(), st);
        String name = st.params().layout().entries().get(2).name();
        Path npy = dir.resolve("ck").resolve("params").resolve(name + ".npy");
        try (RandomAccessFile f = new RandomAccessFile(npy.toFile(), "rw")) {
            f.seek(f.length() - 3);
            int b = f.read();
            f.seek(f.length() - 3);
            f.write(b ^ 0x20); // one bit of one weight
        }
        String plain = run("inspect", "--ckpt", ckpt);
        assertTrue(plain.contains("this host") && !plain.contains("verified"), plain);
        UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> run("inspect", "--ckpt", ckpt, "--verify"));
        assertTrue(e.getMessage().contains(name + ".npy") && e.getMessage().contains("CRC32C"), e.getMessage());
        String ok = run("inspect", "--ckpt", new CheckpointStore().saveTo(dir.resolve("good").toString(), st), "--verify");
        assertTrue(ok.contains("verified") && ok.contains("CRC32C match"), ok);
    }

    @Test
    void shouldRefuseAPromptThatWasNotValidUtf8() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CatenaCli.validPrompt("In the \uFFFDbeginning"));
        assertTrue(e.getMessage().contains("not valid UTF-8") && e.getMessage().contains("character 7"), e.getMessage());
        assertTrue(CatenaCli.validPrompt("Im Anfang schuf Gott — ünd").endsWith("ünd"));
    }

    @Test
    void shouldRefuseNumbersOutOfRangeInsteadOfDefaulting(@TempDir Path dir) {
        String[] base = {"train-local", "--recipe", "builtin:tiny", "--data", "builtin:genesis", "--out", dir.toString()};
        for (String[] bad : new String[][] {{"--steps", "-1"}, {"--steps", "0"}, {"--threads", "0"}, {"--skip-nonfinite", "-2"}}) {
            String[] argv = java.util.stream.Stream.concat(java.util.Arrays.stream(base), java.util.Arrays.stream(bad)).toArray(String[]::new);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> run(argv));
            assertTrue(e.getMessage().contains(bad[0] + " must be >= "), e.getMessage());
        }
        IllegalArgumentException f = assertThrows(IllegalArgumentException.class, () -> run("train-local", "--recipe", "builtin:tiny",
                "--data", "builtin:genesis", "--out", dir.toString(), "--divergence-factor", "1"));
        assertTrue(f.getMessage().contains("--divergence-factor"), f.getMessage());
    }
}
