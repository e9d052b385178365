package io.catena.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.data.prepare.PrepareJob;
import io.catena.data.prepare.PrepareOptions;
import io.catena.model.data.TokenBatchSource;
import io.catena.model.data.TokenSourceProvider;
import io.catena.model.io.TrainingState;
import io.catena.model.train.LocalTrainer;
import io.catena.model.train.Recipe;
import io.catena.model.train.TrainSettings;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Training on a real `catena prepare` dataset: the workers read their shares through data-pipeline's shard reader. */
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class ManifestDataTest {
    static final int SEQ_LEN = 16;
    static final int STEPS = 20;
    private static Path dataset;

    @BeforeAll
    static void prepare() throws Exception {
        Path dir = TrainerTestSupport.testDir("manifest");
        Path in = dir.resolve("corpus/genesis.txt");
        Files.createDirectories(in.getParent());
        try (InputStream s = ManifestDataTest.class.getResourceAsStream("/io/catena/corpus/genesis.txt")) {
            Files.write(in, s.readAllBytes());
        }
        dataset = dir.resolve("dataset");
        PrepareOptions o = PrepareOptions.of(List.of(in.getParent().toUri().toString()), "text", dataset.toUri().toString())
                .withTokenizer("train:300").withSeqLen(SEQ_LEN).withValFraction(0.05);
        SparkSession spark = SparkSession.builder().sparkContext(TrainerTestSupport.spark().sc()).getOrCreate();
        PrepareJob.run(spark, o);
    }

    @Test
    void shouldMatchLocalTrainerOnThePreparedShards() {
        Path dir = TrainerTestSupport.testDir("manifest-train");
        Path recipe = TrainerTestSupport.recipe(dir, STEPS);
        TrainResult r = TrainerTestSupport.train(new ByteArrayOutputStream(), "--data", dataset.toUri().toString(), "--recipe",
                recipe.toString(), "--out", dir.resolve("ckpt").toString(), "--dp", "2", "--term-length", "1048576");
        assertEquals(STEPS, r.finalStep());
        assertTrue(r.finalState().config().vocabSize() >= 256 && r.finalState().config().vocabSize() <= 300,
                "the model's vocabulary comes from the dataset's tokenizer: " + r.finalState().config().vocabSize());

        Recipe rec = Recipe.load(recipe);
        TrainSettings s = rec.trainSettings();
        TokenSourceProvider p = TokenSourceProvider.find(dataset.toUri().toString());
        TokenBatchSource train = p.open(dataset.toUri().toString(), "train", s.seqLen(), s.seed(), 0, 1);
        TokenBatchSource val = p.open(dataset.toUri().toString(), "val", s.seqLen(), s.seed(), 0, 1);
        TrainingState st = LocalTrainer.freshState(rec.modelConfig(train.vocabSize()), s.seed());
        LocalTrainer t = new LocalTrainer(st, s, train, val, null, null, new PrintStream(new ByteArrayOutputStream()), Map.of());
        double worst = 0;
        for (int step = 1; step <= STEPS; step++) {
            double[] want = t.trainStep();
            double[] got = r.trainLoss().get((long) step);
            for (int k = 0; k < want.length; k++) {
                worst = Math.max(worst, Math.abs(want[k] - got[k]));
            }
        }
        System.out.println("manifest parity: max loss diff " + worst);
        assertTrue(worst < 1e-5, "dp=2 on shards differs from LocalTrainer on the same shards by " + worst);
    }

    @Test
    void shouldRefuseARecipeVocabularySmallerThanTheTokenizers() {
        Path dir = TrainerTestSupport.testDir("manifest-vocab");
        Path recipe = TrainerTestSupport.recipe(dir, 5, "vocab_size = 100");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TrainerTestSupport.train(
                new ByteArrayOutputStream(), "--data", dataset.toUri().toString(), "--recipe", recipe.toString(), "--out",
                dir.resolve("ckpt").toString(), "--dp", "2"));
        assertTrue(e.getMessage().contains("vocab_size"), e.getMessage());
    }
}
