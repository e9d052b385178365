package io.catena.trainer.demo;

import io.catena.data.prepare.PrepareJob;
import io.catena.data.prepare.PrepareOptions;
import io.catena.model.ParamLayout;
import io.catena.model.cli.Args;
import io.catena.model.cli.NumericOption;
import io.catena.model.data.DataSources;
import io.catena.model.data.TextCodec;
import io.catena.model.infer.Generator;
import io.catena.model.io.TrainingState;
import io.catena.model.train.Recipe;
import io.catena.model.train.TrainSettings;
import io.catena.trainer.TrainJob;
import io.catena.trainer.TrainOptions;
import io.catena.trainer.TrainResult;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;

/**
 * {@code catena demo}: the whole Catena story on the bundled public-domain text, in one Spark
 * {@code local[dp]} application — prepare (BPE trained by Spark, packed shards, manifest) -> train with dp
 * workers through the embedded Aeron parameter server on 2 chains -> grow to 3 chains mid-run -> evaluate
 * every scale -> generate at every k -> {@code report.html} with PNG charts. Everything lands under --out.
 */
public final class Demo {
    /** Demo settings; defaults are sized for a 2-core machine (about 5 minutes). */
    public record Settings(Path out, long steps, long growAt, boolean freeze, int dp, int vocab, int genTokens) {
        public Settings {
            if (growAt < 1 || growAt >= steps) {
                throw new IllegalArgumentException("--grow-at " + growAt + " must be in 1.." + (steps - 1) + " (inside --steps " + steps + ")");
            }
            if (dp < 1 || vocab < 300 || genTokens < 1) {
                throw new IllegalArgumentException("need --dp >= 1, --vocab >= 300 and --gen-tokens >= 1, got " + dp + ", " + vocab
                        + ", " + genTokens);
            }
        }

        static final String USAGE = """
                catena demo [--out demo-out] [--steps 600] [--grow-at 400] [--no-freeze] [--dp 2] [--vocab 512] [--gen-tokens 60]
                  prepare the bundled text (Spark local[dp]) -> train dp workers + embedded parameter server on 2 chains ->
                  grow to 3 chains at --grow-at (old chains frozen unless --no-freeze) -> eval every scale -> generate at
                  every k -> <out>/report.html with PNG charts, summary.txt, metrics.jsonl, the dataset and checkpoints.
                """;

        public static Settings parse(String[] argv) {
            try {
                Args a = new Args("demo", argv, 0, java.util.Set.of("out", "steps", "grow-at", "dp", "vocab", "gen-tokens"),
                        java.util.Set.of("no-freeze"));
                long steps = a.longValue("steps", 600, 2);
                return new Settings(Path.of(a.get("out", "demo-out")).toAbsolutePath(), steps,
                        NumericOption.parse("grow-at", a.get("grow-at", String.valueOf(steps * 2 / 3)), 1, steps - 1),
                        !a.flag("no-freeze"), a.integer("dp", 2, 1), a.integer("vocab", 512, 258), a.integer("gen-tokens", 60, 0));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(e.getMessage() + "\n" + USAGE);
            }
        }
    }

    /** One k's row of the report: parameters used, validation loss and perplexity, generated text and decode speed. */
    public record ScaleRow(int k, long params, double valLoss, double perplexity, String sample, double decodeTokensPerSecond) {
    }

    /** What the demo produced (the test checks it; the report shows it). */
    public record Outcome(Path report, List<Path> charts, TrainResult train, double[] beforeGrowth, List<ScaleRow> scales,
                          Map<String, Double> phaseSeconds, String summary) {
    }

    static final String PROMPT = "And God said";
    private static final String CORPUS_RESOURCE = "/io/catena/corpus/genesis.txt";

    private final Settings s;
    private final PrintStream out;

    public Demo(Settings s, PrintStream out) {
        this.s = s;
        this.out = out;
    }

    public static void main(String[] argv) {
        int code;
        try {
            if (List.of(argv).contains("--help")) {
                System.out.print(Settings.USAGE);
                return;
            }
            Settings s = Settings.parse(argv);
            SparkConf conf = new SparkConf().setAppName("catena demo").setMaster("local[" + s.dp() + "]")
                    .set("spark.ui.enabled", "false");
            try (SparkSession spark = SparkSession.builder().config(conf).getOrCreate()) {
                new Demo(s, System.out).run(spark);
            }
            code = 0;
        } catch (IllegalArgumentException e) {
            System.err.println("catena demo: " + e.getMessage());
            code = 2;
        } catch (IOException | RuntimeException e) {
            System.err.println("catena demo failed: " + e);
            e.printStackTrace(System.err);
            code = 1;
        }
        System.out.flush();
        System.exit(code);
    }

    public Outcome run(SparkSession spark) throws IOException {
        long t0 = System.nanoTime();
        Map<String, Double> phases = new LinkedHashMap<>();
        Path outDir = s.out();
        clearPreviousRun(outDir);
        Recipe recipe = Recipe.resolve("builtin:tiny");
        TrainSettings ts = recipe.trainSettings();
        out.println("== catena demo: Spark local[" + s.dp() + "], output in " + outDir);

        out.println("\n== 1/4 prepare: train a " + s.vocab() + "-token byte-level BPE on Genesis (KJV) with Spark, pack windows of "
                + (ts.seqLen() + 1) + " tokens into shards");
        long t = System.nanoTime();
        String dataset = prepare(spark, outDir, ts);
        phases.put("prepare", secondsSince(t));

        long evalEvery = Math.max(1, s.growAt() / 4);
        out.println("\n== 2/4 train: " + s.dp() + " data-parallel Spark tasks + embedded Aeron parameter server, chains "
                + recipe.values().getOrDefault("chains", "2,2") + " -> grow by a 2-head chain after step " + s.growAt()
                + (s.freeze() ? " (old chains frozen)" : "") + ", " + s.steps() + " steps");
        t = System.nanoTime();
        String ckpt = outDir.resolve("ckpt").toString();
        Path metrics = outDir.resolve("metrics.jsonl");
        TrainOptions opts = TrainOptions.parse(new String[]{"--data", dataset, "--recipe", "builtin:tiny", "--out", ckpt,
                "--dp", String.valueOf(s.dp()), "--steps", String.valueOf(s.steps()),
                "--grow-at", s.growAt() + ":+2" + (s.freeze() ? ":freeze" : ""), "--eval-every", String.valueOf(evalEvery),
                "--metrics", metrics.toString()}, k -> null);
        TrainResult tr = new TrainJob(JavaSparkContext.fromSparkContext(spark.sparkContext()), opts, out).run();
        phases.put("train", secondsSince(t));
        double[] beforeGrowth = tr.evals().get(s.growAt());

        // the trainer's final evaluation of every scale (each k runs only chains 1..k) on the validation split
        TrainingState fin = tr.finalState();
        double[] finalLoss = tr.finalEval();

        out.println("\n== 3/4 generate at every k (same prompt, seed and temperature)");
        t = System.nanoTime();
        List<ScaleRow> rows = generateAtEveryK(fin, dataset, finalLoss);
        phases.put("generate", secondsSince(t));

        out.println("\n== 4/4 report: charts and report.html");
        t = System.nanoTime();
        long tokensPerStep = (long) ts.batchSize() * ts.seqLen();
        List<Path> charts = new ArrayList<>(List.of(outDir.resolve("loss-per-scale.png"), outDir.resolve("perplexity-vs-chains.png"),
                outDir.resolve("throughput.png")));
        try {
            Charts.lossPerScale(charts.get(0), tr.trainLoss(), tr.evals(), tokensPerStep, s.growAt(), 10);
            Charts.perplexityPerChains(charts.get(1), finalLoss, beforeGrowth);
            Charts.throughput(charts.get(2), Report.tokensPerSecond(metrics), s.growAt());
            charts.addAll(Report.metricCharts(outDir, metrics, s.growAt())); // LR, grad norm, sync share, memory: those recorded
        } catch (RuntimeException | LinkageError | InternalError e) { // AWT without fonts or native libraries
            throw new IllegalStateException("drawing the report's charts failed (" + e + "). The JVM's AWT needs fontconfig and a"
                    + " font: apt-get install fontconfig fonts-dejavu-core (or your distribution's equivalent), then rerun;"
                    + " the trained model is already in " + ckpt, e);
        }
        phases.put("report", secondsSince(t));
        phases.put("total", secondsSince(t0));
        String summary = Report.summary(s, tr, beforeGrowth, rows, phases);
        Path report = Report.write(outDir, s, tr, beforeGrowth, rows, phases, charts, summary);
        Files.writeString(outDir.resolve("summary.txt"), summary);
        out.println("\n" + summary);
        out.println("report: " + report + "   (open it in a browser; charts, metrics.jsonl, dataset/ and ckpt/ beside it)");
        return new Outcome(report, charts, tr, beforeGrowth, rows, phases, summary);
    }

    /** The bundled text copied under --out and prepared (BPE trained by Spark, packed shards); returns the dataset. */
    private String prepare(SparkSession spark, Path outDir, TrainSettings ts) throws IOException {
        Path corpus = outDir.resolve("corpus/genesis.txt");
        Files.createDirectories(corpus.getParent());
        try (InputStream in = Demo.class.getResourceAsStream(CORPUS_RESOURCE)) {
            if (in == null) {
                throw new IllegalStateException("the bundled corpus " + CORPUS_RESOURCE + " is missing from chain-model's jar; rebuild");
            }
            Files.copy(in, corpus);
        }
        String dataset = outDir.resolve("dataset").toString();
        PrepareOptions po = PrepareOptions.parse("--input", corpus.toString(), "--format", "text", "--out", dataset,
                "--tokenizer", "train:" + s.vocab(), "--seq-len", String.valueOf(ts.seqLen()), "--val-fraction", "0.1");
        out.println(PrepareJob.run(spark, po).message());
        return dataset;
    }

    /** Each scale k of the final model: its parameters, validation loss, a sample from the prompt and its decode speed. */
    private List<ScaleRow> generateAtEveryK(TrainingState fin, String dataset, double[] finalLoss) {
        TextCodec codec = TextCodec.forData(dataset);
        List<ScaleRow> rows = new ArrayList<>();
        ParamLayout layout = new ParamLayout(fin.config());
        Generator g = new Generator(fin.config(), fin.params());
        int[] prompt = codec.encode(PROMPT);
        for (int k = 1; k <= fin.config().numChains(); k++) { // JIT warm-up of every path, so the timed runs compare k, not tiers
            g.generate(prompt, options(k));
        }
        for (int k = 1; k <= fin.config().numChains(); k++) {
            long g0 = System.nanoTime();
            Generator.Result r = g.generate(prompt, options(k));
            double tps = r.tokens().length / Math.max(1e-9, (System.nanoTime() - g0) / 1e9);
            String text = PROMPT + codec.decode(r.tokens(), 0, r.tokens().length);
            rows.add(new ScaleRow(k, layout.prefixSize(k), finalLoss[k - 1], Math.exp(finalLoss[k - 1]), text, tps));
            out.println("k=" + k + ": " + text.replace('\n', ' '));
        }
        return rows;
    }

    /** The same sampling settings at every k (EOS does not stop it, so every k decodes the same number of tokens). */
    private Generator.Options options(int k) {
        return new Generator.Options(s.genTokens(), k, 0.7, 20, 3, new TreeMap<>(), false, -1);
    }

    /** A rerun replaces the previous demo's outputs (only the files the demo writes; anything else is left alone). */
    private static void clearPreviousRun(Path outDir) throws IOException {
        List<String> names = new ArrayList<>(List.of("corpus", "dataset", "ckpt", "metrics.jsonl", "summary.txt", "report.html",
                "loss-per-scale.png", "perplexity-vs-chains.png", "throughput.png"));
        names.addAll(Report.METRIC_CHART_FILES);
        for (String name : names) {
            Path p = outDir.resolve(name);
            if (Files.exists(p)) {
                try (var walk = Files.walk(p)) {
                    walk.sorted(java.util.Comparator.reverseOrder()).forEach(f -> {
                        try {
                            Files.delete(f);
                        } catch (IOException e) {
                            throw new UncheckedIOException("cannot remove the previous demo's " + f + ": " + e.getMessage()
                                    + "; delete " + outDir + " or pass another --out", e);
                        }
                    });
                }
            }
        }
        Files.createDirectories(outDir);
    }

    private static double secondsSince(long t) {
        return (System.nanoTime() - t) / 1e9;
    }

    static String fmt(String f, Object... a) {
        return String.format(Locale.ROOT, f, a);
    }
}
