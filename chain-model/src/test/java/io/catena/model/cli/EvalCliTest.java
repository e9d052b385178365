package io.catena.model.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.ColmConfig;
import io.catena.model.io.CheckpointStore;
import io.catena.model.train.LocalTrainer;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 17 finding 8: {@code catena eval} read 64 windows by default, numbers that moved with the sample. It now covers
 * the validation split up to a token budget and says how many windows and tokens that was.
 */
class EvalCliTest {
    private static final Pattern USED = Pattern.compile("validation: ([0-9,]+) windows \\(([0-9,]+) tokens\\) of the split's ([0-9,]+)");

    private static String eval(String... argv) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int code = CatenaCli.execute(argv, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8));
        String text = out.toString(StandardCharsets.UTF_8);
        assertEquals(0, code, text);
        return text;
    }

    private static long[] used(String text) {
        Matcher m = USED.matcher(text);
        assertTrue(m.find(), "no 'validation: N windows' line in\n" + text);
        return new long[] {Long.parseLong(m.group(1).replace(",", "")), Long.parseLong(m.group(2).replace(",", "")),
                Long.parseLong(m.group(3).replace(",", ""))};
    }

    @Test
    void evalCoversTheSplitUpToATokenBudgetAndSaysHowMuch(@TempDir Path dir) {
        ColmConfig cfg = new ColmConfig(257, 8, List.of(1, 1), 1, 0, 2.0, ColmConfig.Activation.GELU, ColmConfig.NormKind.LAYERNORM,
                1e-5, 1e4, ColmConfig.Variant.COLM, 32, true, null);
        String ckpt = new CheckpointStore().saveTo(dir.resolve("m").toString(), LocalTrainer.freshState(cfg, 1));
        String[] base = {"eval", "--ckpt", ckpt, "--data", "builtin:genesis", "--seq-len", "32", "--batch-size", "8"};
        long[] all = used(eval(base));
        assertEquals(all[2] / 8 * 8, all[0], "by default the whole split (whole batches of 8): " + all[0] + " of " + all[2]);
        assertTrue(all[0] > 64, "more than the old 64 windows: " + all[0]);
        assertEquals(all[0] * 32, all[1]);
        long[] budget = used(eval(append(base, "--max-tokens", "4096")));
        assertEquals(4096 / (8 * 32) * 8, budget[0], "the token budget bounds it");
        long[] exact = used(eval(append(base, "--batches", "3")));
        assertEquals(24, exact[0], "--batches reads exactly that many");
    }

    private static String[] append(String[] a, String... b) {
        String[] all = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        return all;
    }
}
