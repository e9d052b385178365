package io.catena.model.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.ColmConfig;
import io.catena.model.io.CheckpointStore;
import io.catena.model.io.TrainingState;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** `catena expand`: the grown model's loss weights (default mean, or --loss-weights), and a bad weight list refused. */
class ExpandCliTest {

    private static String expand(String... args) {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        String[] argv = new String[args.length + 1];
        argv[0] = "expand";
        System.arraycopy(args, 0, argv, 1, args.length);
        new CatenaCli(new PrintStream(buf, true)).run(argv);
        return buf.toString();
    }

    @Test
    void shouldGiveTheGrownModelTheRequestedLossWeights(@TempDir Path dir) {
        TrainingState old = GenerateCodecTest.state(257, Map.of("data", "bytes:builtin:genesis"));
        String ckpt = new CheckpointStore().saveTo(dir.resolve("old").toString(), old);
        CheckpointStore store = new CheckpointStore();

        expand("--ckpt", ckpt, "--add-chains", "1", "--out", dir.resolve("mean").toString());
        assertEquals(ColmConfig.meanWeights(3), store.load(dir.resolve("mean").toString(), false).config().lossWeights());

        expand("--ckpt", ckpt, "--add-chains", "1", "--loss-weights", "full-only", "--out", dir.resolve("full").toString());
        assertEquals(List.of(0.0, 0.0, 1.0), store.load(dir.resolve("full").toString(), false).config().lossWeights());

        expand("--ckpt", ckpt, "--add-chains", "1,2", "--loss-weights", "0.1, 0.2,0.3,0.4", "--out", dir.resolve("list").toString());
        assertEquals(List.of(0.1, 0.2, 0.3, 0.4), store.load(dir.resolve("list").toString(), false).config().lossWeights());
    }

    @Test
    void shouldRefuseAWeightListThatDoesNotFitAndWriteNothing(@TempDir Path dir) {
        TrainingState old = GenerateCodecTest.state(257, Map.of("data", "bytes:builtin:genesis"));
        String ckpt = new CheckpointStore().saveTo(dir.resolve("old").toString(), old);
        Path out = dir.resolve("grown");
        IllegalArgumentException count = assertThrows(IllegalArgumentException.class,
                () -> expand("--ckpt", ckpt, "--add-chains", "1", "--loss-weights", "0.5,0.5", "--out", out.toString()));
        assertTrue(count.getMessage().contains("--loss-weights") && count.getMessage().contains("has 2 weights")
                && count.getMessage().contains("3 chains"), count.getMessage());
        IllegalArgumentException word = assertThrows(IllegalArgumentException.class,
                () -> expand("--ckpt", ckpt, "--add-chains", "1", "--loss-weights", "0.5,half,0.5", "--out", out.toString()));
        assertTrue(word.getMessage().contains("'half' is not a number") && word.getMessage().contains("full-only"), word.getMessage());
        assertFalse(Files.exists(out), "nothing written for a refused expansion");
    }

    /** --init: auto (default) copies the last chain into an equally wide new one, random draws it, a bad value is refused. */
    @Test
    void shouldInitTheNewChainAsAskedByInit(@TempDir Path dir) {
        TrainingState old = GenerateCodecTest.state(257, Map.of("data", "bytes:builtin:genesis")); // chains {1,1}
        String ckpt = new CheckpointStore().saveTo(dir.resolve("old").toString(), old);
        CheckpointStore store = new CheckpointStore();
        expand("--ckpt", ckpt, "--add-chains", "1", "--out", dir.resolve("auto").toString());
        expand("--ckpt", ckpt, "--add-chains", "1", "--init", "random", "--out", dir.resolve("random").toString());
        io.catena.model.Params auto = store.load(dir.resolve("auto").toString(), false).params();
        io.catena.model.Params random = store.load(dir.resolve("random").toString(), false).params();
        assertEquals(0.0, maxDiff(auto.mat("embed.c1"), auto.mat("embed.c2")), 0.0, "auto: the new chain's embedding is the last chain's");
        assertTrue(maxDiff(random.mat("embed.c1"), random.mat("embed.c2")) > 0, "random: drawn fresh");
        IllegalArgumentException bad = assertThrows(IllegalArgumentException.class, () -> expand("--ckpt", ckpt, "--add-chains", "1",
                "--init", "clone", "--out", dir.resolve("bad").toString()));
        assertTrue(bad.getMessage().contains("copy, random or auto"), bad.getMessage());
    }

    private static double maxDiff(io.catena.model.kernel.Mat a, io.catena.model.kernel.Mat b) {
        double d = 0;
        for (int r = 0; r < a.rows; r++) {
            for (int c = 0; c < a.cols; c++) {
                d = Math.max(d, Math.abs(a.get(r, c) - b.get(r, c)));
            }
        }
        return d;
    }

    /** What `train-local --resume` reports when the recipe no longer describes the checkpoint's model (e.g. after expand). */
    @Test
    void shouldNameEveryModelSettingInWhichRecipeAndCheckpointDiffer() {
        ColmConfig ckpt = GenerateCodecTest.state(257, Map.of()).config();
        assertEquals(List.of(), CatenaCli.modelDifferences(ckpt, ckpt));
        ColmConfig grown = ckpt.withAppendedChains(List.of(2), null);
        List<String> d = CatenaCli.modelDifferences(ckpt, grown);
        assertEquals(List.of("chains (recipe [1, 1], checkpoint [1, 1, 2])",
                "loss_weights (recipe [0.5, 0.5], checkpoint " + ColmConfig.meanWeights(3) + ")"), d);
    }
}
