package io.catena.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.data.ByteTokenizer;
import io.catena.model.data.TextByteSource;
import io.catena.model.io.CheckpointStore;
import io.catena.model.io.TrainingState;
import io.catena.model.optim.AdamW;
import io.catena.model.train.LocalTrainer;
import io.catena.model.train.TrainSettings;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** LocalTrainer end to end on the bundled public-domain text: learning, checkpoints, exact resume. */
class TrainingTest {
    private static final PrintStream QUIET = new PrintStream(new ByteArrayOutputStream());

    static int[] genesis(int maxBytes) throws Exception {
        try (InputStream in = TrainingTest.class.getResourceAsStream("/io/catena/corpus/genesis.txt")) {
            byte[] b = in.readNBytes(maxBytes);
            int[] t = ByteTokenizer.encode(b);
            return t;
        }
    }

    static ColmConfig smallModel() {
        return new ColmConfig(ByteTokenizer.VOCAB_SIZE, 16, List.of(1, 1), 2, 0, 4.0, ColmConfig.Activation.GELU,
                ColmConfig.NormKind.LAYERNORM, 1e-5, 1e4, ColmConfig.Variant.COLM, 32, true, null);
    }

    static TrainSettings settings(long steps) {
        return new TrainSettings(8, 32, steps, 1e-2, 1e-3, 10, AdamW.Settings.defaults(), 5, 0, 2, 1000, 0, 0.1, 0);
    }

    @Test
    void shouldOverfitSmallTextFarBelowUnigramEntropy() throws Exception {
        int[] corpus = genesis(4000); // ~120 windows: small enough to memorise
        TrainSettings s = settings(150);
        var train = TextByteSource.open(corpus, "genesis-4k", 32, 0.0, TextByteSource.Split.TRAIN, 1, 0, 1);
        LocalTrainer t = new LocalTrainer(LocalTrainer.freshState(smallModel(), 1), s, train, null, null, null, QUIET, Map.of());
        double[] first = t.trainStep();
        double[] last = t.run(150);
        double h = ByteTokenizer.unigramEntropy(corpus);
        assertTrue(first[1] > h, "an untrained model should be worse than the unigram entropy: " + first[1] + " vs " + h);
        assertTrue(last[1] < 0.6 * h, "full-model train loss " + last[1] + " should be far below the unigram entropy " + h);
        assertTrue(last[0] < h, "the 1-chain sub-model must learn too (multi-chain loss): " + last[0]);
    }

    @Test
    void shouldResumeBitForBitFromCheckpoint(@TempDir Path dir) throws Exception {
        int[] corpus = genesis(30000);
        TrainSettings s = settings(12);
        String root = dir.resolve("ckpt").toString();
        // uninterrupted
        var trainA = TextByteSource.open(corpus, "g", 32, 0.1, TextByteSource.Split.TRAIN, 3, 0, 1);
        LocalTrainer a = new LocalTrainer(LocalTrainer.freshState(smallModel(), 1), s, trainA, null, null, null, QUIET, Map.of());
        a.run(12);
        float[] expected = a.state().params().flat().toFloatVector();
        // 7 steps, checkpoint, a new process-like trainer from the checkpoint, 5 more
        var trainB = TextByteSource.open(corpus, "g", 32, 0.1, TextByteSource.Split.TRAIN, 3, 0, 1);
        LocalTrainer b = new LocalTrainer(LocalTrainer.freshState(smallModel(), 1), s, trainB, null, root, null, QUIET, Map.of());
        b.run(7);
        TrainingState loaded = new CheckpointStore().load(root, true);
        assertEquals(7, loaded.step());
        assertEquals(7L * s.batchSize(), loaded.dataPosition());
        assertArrayEquals(b.state().params().flat().toFloatVector(), loaded.params().flat().toFloatVector(), "round trip");
        assertArrayEquals(b.state().adamV().flat().toFloatVector(), loaded.adamV().flat().toFloatVector(), "optimizer round trip");
        var trainC = TextByteSource.open(corpus, "g", 32, 0.1, TextByteSource.Split.TRAIN, 3, 0, 1);
        LocalTrainer c = new LocalTrainer(loaded, s, trainC, null, null, null, QUIET, Map.of());
        c.run(12);
        assertArrayEquals(expected, c.state().params().flat().toFloatVector(), "resumed run must equal the uninterrupted one");
    }

    /**
     * Issue 17 finding 6: resuming with a larger --steps restarted the warm-up/cosine, so the rate jumped from near
     * min_lr back up. A resume continues the schedule the checkpoint trained with (the rate decays on from where it
     * was), and --lr-schedule restart still gives the recipe's schedule.
     */
    @Test
    void shouldContinueTheLrScheduleWhenResumedWithMoreSteps(@TempDir Path dir) throws Exception {
        int[] corpus = genesis(30000);
        String root = dir.resolve("ckpt").toString();
        var trainA = TextByteSource.open(corpus, "g", 32, 0.1, TextByteSource.Split.TRAIN, 3, 0, 1);
        LocalTrainer a = new LocalTrainer(LocalTrainer.freshState(smallModel(), 1), settings(40), trainA, null, root, null, QUIET, Map.of());
        a.run(36); // near the end of a 40-step cosine: the rate is close to min_lr
        double before = a.lrSchedule().at(36);
        TrainingState loaded = new CheckpointStore().load(root, true);
        var trainB = TextByteSource.open(corpus, "g", 32, 0.1, TextByteSource.Split.TRAIN, 3, 0, 1);
        LocalTrainer resumed = new LocalTrainer(loaded, settings(80), trainB, null, null, null, QUIET, Map.of());
        double next = resumed.lrSchedule().at(37);
        assertTrue(next <= before * 1.0001 && next > 0.9 * before, "the rate continues from " + before + ", got " + next);
        assertEquals(settings(80).minLr(), resumed.lrSchedule().at(80), 1e-15, "and reaches min_lr at the new last step");
        double restarted = new LocalTrainer(new CheckpointStore().load(root, true), settings(80), TextByteSource.open(corpus, "g", 32,
                0.1, TextByteSource.Split.TRAIN, 3, 0, 1), null, null, null, QUIET, Map.of()).restartLrSchedule().lrSchedule().at(37);
        assertTrue(restarted > 2 * before, "--lr-schedule restart gives the 80-step cosine's rate " + restarted + ", not " + before);
        // a resume with the same --steps keeps the exact schedule (the bit-for-bit resume above depends on it)
        LocalTrainer same = new LocalTrainer(new CheckpointStore().load(root, true), settings(40), TextByteSource.open(corpus, "g", 32,
                0.1, TextByteSource.Split.TRAIN, 3, 0, 1), null, null, null, QUIET, Map.of());
        assertEquals(settings(40).schedule(), same.lrSchedule());
    }
}
