package io.catena.model.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.ColmConfig;
import io.catena.model.NotRetryableException;
import io.catena.model.data.ByteTokenizer;
import io.catena.model.data.TextByteSource;
import io.catena.model.io.TrainingState;
import io.catena.model.optim.AdamW;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The numerical guard: no diverged or non-finite run writes a checkpoint; skipping bad steps is opt-in and counted. */
class NumericalGuardTest {

    @Test
    void shouldStopAtTheFirstNonFiniteStepUnlessSkippingWasAskedFor() {
        NumericalGuard strict = NumericalGuard.defaults();
        assertTrue(strict.accept(1, 2.5, new double[] {3.0, 2.0}));
        NotRetryableException e = assertThrows(NotRetryableException.class, () -> strict.accept(2, Double.NaN, new double[] {3, 2}));
        assertTrue(e.getMessage().contains("step 2") && e.getMessage().contains("no parameter was changed"), e.getMessage());
        assertTrue(NotRetryableException.marks(e.getMessage()));

        NumericalGuard lenient = new NumericalGuard(10, 2);
        assertFalse(lenient.accept(1, Double.POSITIVE_INFINITY, new double[] {1}));
        assertFalse(lenient.accept(2, 1.0, new double[] {Double.NaN}));
        assertEquals(2, lenient.skipped());
        assertTrue(lenient.accept(3, 1.0, new double[] {1}));
        e = assertThrows(NotRetryableException.class, () -> lenient.accept(4, Double.NaN, new double[] {1}));
        assertTrue(e.getMessage().contains("2 earlier non-finite steps skipped"), e.getMessage());
    }

    @Test
    void shouldStopWhenTheParameterNormOrTheLossJumpsByMoreThanTheFactor() {
        NumericalGuard g = new NumericalGuard(10, 0);
        g.baseline(5.0);
        g.check(10, 4.0, 6.0);
        g.check(20, 3.5, 9.0); // slow growth is training
        NotRetryableException e = assertThrows(NotRetryableException.class, () -> g.check(30, 3.0, 95.0));
        assertTrue(e.getMessage().contains("parameter norm grew from 9.000 to 95.00"), e.getMessage());
        NumericalGuard h = new NumericalGuard(10, 0);
        h.check(10, 2.0, 1.0);
        e = assertThrows(NotRetryableException.class, () -> h.check(20, 25.0, 1.0));
        assertTrue(e.getMessage().contains("loss grew"), e.getMessage());
        NumericalGuard off = new NumericalGuard(0, 0);
        off.check(10, 1.0, 1.0);
        off.check(20, 1e6, 1e9); // the check is off
        assertThrows(NotRetryableException.class, () -> off.check(30, 1.0, Double.POSITIVE_INFINITY), "non-finite always stops");
        NumericalGuard stage = new NumericalGuard(10, 0);
        stage.check(10, Double.NaN, 1.0); // a pipeline stage without a loss
        assertThrows(NotRetryableException.class, () -> stage.check(20, Double.NaN, 11.0));
        assertThrows(IllegalArgumentException.class, () -> new NumericalGuard(0.5, 0));
        assertThrows(IllegalArgumentException.class, () -> new NumericalGuard(10, -1));
    }

    private static TrainSettings settings(double lr, int ckptEvery) {
        return new TrainSettings(8, 32, 40, lr, lr / 10, 0, AdamW.Settings.defaults(), 5, 0, 2, 1, ckptEvery, 0.1, 0);
    }

    private static ColmConfig model() {
        return new ColmConfig(ByteTokenizer.VOCAB_SIZE, 16, List.of(1, 1), 2, 0, 4.0, ColmConfig.Activation.GELU,
                ColmConfig.NormKind.LAYERNORM, 1e-5, 1e4, ColmConfig.Variant.COLM, 32, true, null);
    }

    private static TextByteSource genesis() throws Exception {
        try (InputStream in = NumericalGuardTest.class.getResourceAsStream("/io/catena/corpus/genesis.txt")) {
            return TextByteSource.open(ByteTokenizer.encode(in.readNBytes(8000)), "genesis", 32, 0.0, TextByteSource.Split.TRAIN, 1, 0, 1);
        }
    }

    @Test
    void shouldStopADivergingRunBeforeItWritesACheckpoint(@TempDir Path dir) throws Exception {
        String root = dir.resolve("ckpt").toString();
        // a learning rate of 50: Adam moves every weight by ~50 in the first step, the norm jumps by orders of magnitude
        LocalTrainer t = new LocalTrainer(LocalTrainer.freshState(model(), 1), settings(50, 1), genesis(), null, root, null,
                new PrintStream(new ByteArrayOutputStream()), Map.of());
        NotRetryableException e = assertThrows(NotRetryableException.class, () -> t.run(40));
        assertTrue(e.getMessage().contains("diverged") || e.getMessage().contains("no parameter was changed"), e.getMessage());
        assertFalse(Files.exists(Path.of(root, "latest")), "no checkpoint of the diverged model");
        // the same run with a sane learning rate checkpoints every step
        LocalTrainer ok = new LocalTrainer(LocalTrainer.freshState(model(), 1), settings(1e-2, 5), genesis(), null, root, null,
                new PrintStream(new ByteArrayOutputStream()), Map.of());
        ok.run(10);
        assertTrue(Files.exists(Path.of(root, "latest")));
    }

    @Test
    void shouldSkipUpToNNonFiniteStepsAndCountThem(@TempDir Path dir) throws Exception {
        TrainingState st = LocalTrainer.freshState(model(), 1);
        // query and key weights of the first block at 1e20: finite weights (the parameter norm stays finite), but
        // q.k overflows float32 in every attention score, so every step's loss and gradient are NaN
        for (String w : new String[] {"layers.0.attn.q.c0.weight", "layers.0.attn.k.c0.weight"}) {
            var e = st.params().layout().get(w);
            for (long i = 0; i < e.size(); i++) {
                st.params().buf().set((int) (e.offset() + i), i % 2 == 0 ? 1e20 : -1e20);
            }
        }
        Path metrics = dir.resolve("metrics.jsonl");
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        LocalTrainer t = new LocalTrainer(st, settings(1e-2, 0), genesis(), null, null, metrics, new PrintStream(log), Map.of())
                .guard(new NumericalGuard(10, 3));
        double before = st.params().buf().get(7);
        NotRetryableException e = assertThrows(NotRetryableException.class, () -> t.run(40));
        assertTrue(e.getMessage().contains("step 4") && e.getMessage().contains("3 earlier non-finite steps skipped"), e.getMessage());
        assertEquals(before, st.params().buf().get(7), "skipped steps change no parameter");
        assertTrue(log.toString().contains("step 3: non-finite gradient"), log.toString());
        String m = Files.readString(metrics);
        assertTrue(m.contains("\"skipped_nonfinite\":3"), m);
    }
}
