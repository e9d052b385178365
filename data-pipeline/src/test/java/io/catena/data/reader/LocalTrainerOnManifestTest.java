package io.catena.data.reader;

import io.catena.model.ColmConfig;
import io.catena.model.data.TokenBatchSource;
import io.catena.model.data.TokenSourceProvider;
import io.catena.model.optim.AdamW;
import io.catena.model.train.LocalTrainer;
import io.catena.model.train.TrainSettings;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * chain-model's single-process trainer fed by a prepared dataset through the SPI, exactly as
 * {@code catena train-local --data <dataset>} opens it: the loss must go down.
 */
class LocalTrainerOnManifestTest {

    static ColmConfig model(int vocab) {
        return new ColmConfig(vocab, 16, List.of(1, 1), 2, 0, 4.0, ColmConfig.Activation.GELU, ColmConfig.NormKind.LAYERNORM,
                1e-5, 1e4, ColmConfig.Variant.COLM, PreparedGenesis.SEQ_LEN, true, null);
    }

    @Test
    void shouldTrainChainModelsLocalTrainerOnAPreparedDatasetAndLowerTheLoss() {
        String spec = PreparedGenesis.dir().toUri().toString();
        TrainSettings s = new TrainSettings(8, PreparedGenesis.SEQ_LEN, 40, 1e-2, 1e-3, 5, AdamW.Settings.defaults(), 5, 0, 2,
                1000, 0, 0.05, 0);
        TokenSourceProvider p = TokenSourceProvider.find(spec);
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        try (TokenBatchSource train = p.open(spec, "train", s.seqLen(), s.seed(), 0, 1);
             TokenBatchSource val = p.open(spec, "val", s.seqLen(), s.seed(), 0, 1)) {
            assertEquals(PreparedGenesis.VOCAB, train.vocabSize());
            // the model's vocabulary must hold every id of the tokenizer
            assertThrows(IllegalArgumentException.class, () -> new LocalTrainer(LocalTrainer.freshState(model(train.vocabSize() - 1), 1),
                    s, train, val, null, null, new PrintStream(log), Map.of()));
            LocalTrainer t = new LocalTrainer(LocalTrainer.freshState(model(train.vocabSize()), 1), s, train, val, null, null,
                    new PrintStream(log), Map.of());
            double[] before = t.evaluate();
            double first = 0;
            for (int i = 0; i < 3; i++) {
                first += t.trainStep()[1] / 3;
            }
            double[] last = t.run(40);
            double[] after = t.lastEval();
            double uniform = Math.log(PreparedGenesis.VOCAB);
            System.out.printf("LocalTrainer on %s: val loss k=1 %.3f -> %.3f, k=2 %.3f -> %.3f, train loss k=2 %.3f (steps 1-3) -> %.3f (step 40)%n",
                    spec, before[0], after[0], before[1], after[1], first, last[1]);
            assertEquals(40, t.step());
            assertEquals(40L * s.batchSize(), train.position(), "the trainer consumed exactly batch * steps windows");
            assertTrue(Math.abs(before[1] - uniform) < 1.0, "untrained val loss " + before[1] + " should be near ln(vocab) " + uniform);
            assertTrue(last[1] < first - 1.0, "train loss should fall: first steps " + first + ", step 40 " + last[1] + "\n" + log);
            assertTrue(after[1] < before[1] - 1.0, "val loss should fall: " + before[1] + " -> " + after[1]);
            assertTrue(after[0] < before[0] - 0.7, "the 1-chain sub-model learns too: " + before[0] + " -> " + after[0]);
        }
    }
}
