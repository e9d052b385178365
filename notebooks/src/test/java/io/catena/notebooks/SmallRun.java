package io.catena.notebooks;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.catena.data.prepare.PrepareJob;
import io.catena.data.prepare.PrepareOptions;
import io.catena.model.ChainExpansion;
import io.catena.model.ColmConfig;
import io.catena.model.ColmModel;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.data.TokenBatchSource;
import io.catena.model.data.TokenSourceProvider;
import io.catena.model.io.CheckpointStore;
import io.catena.model.io.Npy;
import io.catena.model.io.TrainingState;
import io.catena.model.kernel.Mat;
import io.catena.model.train.LocalTrainer;
import io.catena.model.train.Recipe;
import io.catena.model.train.TrainSettings;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.apache.spark.sql.SparkSession;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * A small but real Catena run whose outputs the notebooks read, laid out as the notebooks' defaults
 * expect under one directory (CATENA_RUN_DIR):
 * <pre>
 * dataset/          catena prepare over the bundled Genesis (Spark local[2], BPE vocab 512, seq_len 64)
 * metrics.jsonl     LocalTrainer: tiny recipe, 2 chains for {@value #STEPS} steps, then grown to 3 chains
 *                   (old chains frozen) for {@value #GROW_STEPS} more
 * ckpt/             the final (3-chain) checkpoint root; ckpt-2chains/ the one before growth
 * java-logits/      tokens.npy [2, 64] (int32, the first validation windows) and logits_k{k}.npy
 *                   [2, 64, V] (float32) from Catena's Java engine at every scale k; source.json names
 *                   the checkpoint (step directory and SHA-256 of its model.json)
 * </pre>
 */
final class SmallRun {
    static final int VOCAB = 512;
    static final int SEQ_LEN = 64;
    static final int STEPS = 60;
    static final int GROW_STEPS = 30;
    static final int LOGIT_BATCH = 2;
    private static final String GENESIS = "/io/catena/corpus/genesis.txt";

    private SmallRun() {
    }

    static void produce(Path dir) throws IOException {
        deleteRecursively(dir);
        Path corpus = dir.resolve("corpus/genesis.txt");
        Files.createDirectories(corpus.getParent());
        try (InputStream in = SmallRun.class.getResourceAsStream(GENESIS)) {
            if (in == null) {
                throw new IllegalStateException("chain-model's bundled corpus " + GENESIS + " is not on the test class path");
            }
            Files.write(corpus, in.readAllBytes());
        }
        Path dataset = dir.resolve("dataset");
        prepare(corpus.getParent(), dataset);
        train(dataset, dir);
        javaLogits(dir.resolve("ckpt"), dataset, dir.resolve("java-logits"));
    }

    private static void prepare(Path corpusDir, Path dataset) throws IOException {
        SparkSession spark = SparkSession.builder()
                .master("local[2]")
                .appName("catena-notebooks-test")
                .config("spark.driver.host", "127.0.0.1")
                .config("spark.driver.bindAddress", "127.0.0.1")
                .config("spark.ui.enabled", "false")
                .config("spark.sql.shuffle.partitions", "4")
                .config("spark.default.parallelism", "4")
                .config("spark.sql.adaptive.enabled", "false")
                .getOrCreate();
        try {
            PrepareOptions o = PrepareOptions.of(List.of(corpusDir.toUri().toString()), "text", dataset.toUri().toString())
                    .withTokenizer("train:" + VOCAB).withSeqLen(SEQ_LEN).withValFraction(0.05);
            PrepareJob.run(spark, o);
        } finally {
            spark.stop();
        }
    }

    private static void train(Path dataset, Path dir) {
        TrainSettings s = tinyRecipe().trainSettings();
        String spec = dataset.toUri().toString();
        TokenSourceProvider p = TokenSourceProvider.find(spec);
        if (p == null) {
            throw new IllegalStateException("no TokenSourceProvider accepts " + spec + "; is data-pipeline on the test class path?");
        }
        Path metrics = dir.resolve("metrics.jsonl");
        try (TokenBatchSource train = p.open(spec, "train", s.seqLen(), s.seed(), 0, 1);
             TokenBatchSource val = p.open(spec, "val", s.seqLen(), s.seed(), 0, 1)) {
            ColmConfig cfg = tinyRecipe().modelConfig(train.vocabSize());
            LocalTrainer t1 = new LocalTrainer(LocalTrainer.freshState(cfg, s.seed()), s, train, val,
                    dir.resolve("ckpt-2chains").toString(), metrics, System.out, Map.of("phase", "notebooks-test-2-chains"));
            t1.run(STEPS);
            // grow like `catena demo`: +2 heads, old chains frozen, then train on in the same metrics file
            TrainingState grown = ChainExpansion.expand(t1.state(), List.of(2), true, null, 7);
            LocalTrainer t2 = new LocalTrainer(grown, s.withSteps(STEPS + GROW_STEPS), train, val,
                    dir.resolve("ckpt").toString(), metrics, System.out, Map.of("phase", "notebooks-test-3-chains"));
            t2.run(STEPS + GROW_STEPS);
        }
    }

    /** builtin:tiny with fewer steps, frequent logs and evals (seq_len 64 matches the dataset). */
    private static Recipe tinyRecipe() {
        Properties props = new Properties();
        try (InputStream in = SmallRun.class.getResourceAsStream("/io/catena/recipes/tiny.properties")) {
            if (in == null) {
                throw new IllegalStateException("chain-model's bundled recipe tiny.properties is not on the test class path");
            }
            props.load(in);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        Map<String, String> m = new TreeMap<>();
        props.forEach((k, v) -> m.put(k.toString().trim(), v.toString().trim()));
        return Recipe.of(m, "builtin:tiny").with(List.of("steps=" + STEPS, "seq_len=" + SEQ_LEN, "eval_every=20",
                "log_every=5", "warmup_steps=10"));
    }

    /** The Java engine's logits at every scale for the first validation windows, for notebook 04. */
    private static void javaLogits(Path ckptRoot, Path dataset, Path out) throws IOException {
        CheckpointStore store = new CheckpointStore();
        TrainingState st = store.load(ckptRoot.toString(), false);
        Path stepDir = Path.of(new org.apache.hadoop.fs.Path(store.resolve(ckptRoot.toString())).toUri());
        ColmConfig cfg = st.config();
        String spec = dataset.toUri().toString();
        int[] window = new int[LOGIT_BATCH * (SEQ_LEN + 1)];
        try (TokenBatchSource val = TokenSourceProvider.find(spec).open(spec, "val", SEQ_LEN, 0, 0, 1)) {
            val.nextBatch(window, LOGIT_BATCH);
        }
        int[] tokens = new int[LOGIT_BATCH * SEQ_LEN];
        LocalTrainer.splitWindows(window, LOGIT_BATCH, SEQ_LEN, tokens, new int[tokens.length]);
        Files.createDirectories(out);
        writeInt32(out.resolve("tokens.npy"), tokens, LOGIT_BATCH, SEQ_LEN);
        ColmModel model = new ColmModel(cfg, st.params(), new Params(new ParamLayout(cfg), DataType.FLOAT), LOGIT_BATCH, SEQ_LEN);
        model.forward(tokens, 0, cfg.numChains());
        int v = cfg.vocabSize();
        for (int k = 1; k <= cfg.numChains(); k++) {
            Mat m = model.logits(k);
            float[] data = new float[LOGIT_BATCH * SEQ_LEN * v];
            for (int r = 0; r < LOGIT_BATCH * SEQ_LEN; r++) {
                for (int c = 0; c < v; c++) {
                    data[r * v + c] = (float) m.get(r, c);
                }
            }
            try (OutputStream o = Files.newOutputStream(out.resolve("logits_k" + k + ".npy"))) {
                Npy.writeFloat32(o, new int[] {LOGIT_BATCH, SEQ_LEN, v}, data);
            }
        }
        // which checkpoint these logits belong to: model.json lists every tensor's CRC, so its hash names the weights
        Map<String, Object> source = new LinkedHashMap<>();
        source.put("checkpoint", stepDir.toString());
        source.put("model_json_sha256", HexFormat.of().formatHex(sha256(Files.readAllBytes(stepDir.resolve("model.json")))));
        new ObjectMapper().writerWithDefaultPrettyPrinter().writeValue(out.resolve("source.json").toFile(), source);
    }

    private static byte[] sha256(byte[] b) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(b);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void writeInt32(Path file, int[] data, int rows, int cols) throws IOException {
        try (OutputStream o = Files.newOutputStream(file)) {
            io.catena.model.io.Npy.writeInt32(o, new int[] {rows, cols}, data);
        }
    }

    static void deleteRecursively(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }
}
