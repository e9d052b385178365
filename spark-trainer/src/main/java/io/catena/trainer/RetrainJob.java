package io.catena.trainer;

import io.catena.data.manifest.Manifest;
import io.catena.data.manifest.ManifestStore;
import io.catena.data.prepare.PrepareJob;
import io.catena.data.prepare.PrepareOptions;
import io.catena.data.reader.ManifestTokenSourceProvider;
import io.catena.model.ChainExpansion;
import io.catena.model.cli.Args;
import io.catena.model.cli.NumericOption;
import io.catena.model.io.CheckpointStore;
import io.catena.model.io.TrainingState;
import io.catena.model.io.storage.HadoopStorage;
import io.catena.model.train.Recipe;
import io.catena.model.train.TrainSettings;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Function;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code catena retrain}: scheduled retraining on a data lake. One run (1) prepares the lake's new partitions
 * ({@code lake/date=YYYY-MM-DD/part-*}) into the dataset as the next manifest version ({@link PrepareJob} with
 * {@code --incremental}), (2) optionally appends chains to the latest checkpoint ({@link ChainExpansion}), and
 * (3) resumes {@link TrainJob} from that checkpoint on the new manifest version (pinned:
 * {@code manifests/manifest-vNNNNNN.json}) for {@code --steps} more steps. Every checkpoint it writes carries the
 * run history in its info ({@code history}: one entry per retrain run with the manifest version it trained on).
 *
 * <p>Idempotent: when the lake has nothing new and the newest manifest version is already in the checkpoint's
 * history, it changes nothing, says so and exits 0. When an earlier run prepared a version but failed to train
 * on it, the next run trains on that version.
 */
public final class RetrainJob {
    /** Looked up when first used, not at class load: `--help` then prints without initialising logging (~1 s). */
    private static Logger log() {
        return LoggerFactory.getLogger(RetrainJob.class);
    }
    /** Key of the run history in a checkpoint's info. */
    public static final String HISTORY = "history";

    public static final String USAGE = """
            catena retrain --lake <uri> --ckpt <uri> --recipe <file|builtin:NAME> [--data <dataset uri>]
                           [--add-chains HEADS[,HEADS...][:freeze]] [--steps N] [--master URL] [--dp N]
                           [--format jsonl|text|parquet] [--text-field NAME] [--tokenizer train:VOCAB|<tokenizer.json>]
                           [--seq-len N] [--val-fraction F | --val-input <uri>] [--new-data-weight W] [--set key=value]...
                           [any `catena train` option but --data/--out/--resume/--steps/--until-step/--grow-at]
              Incremental prepare of the lake's new files (e.g. lake/date=2026-11-28/part-*) into the dataset
              (--data, default <ckpt>/dataset) as manifest version N+1, then training resumed from the latest
              checkpoint under --ckpt on that version for --steps more steps (default: the recipe's steps); the
              first run trains from scratch. --add-chains appends chains to the loaded checkpoint first (ChainExpansion;
              :freeze trains only the new ones; a new chain as wide as the last starts as its copy; by default all
              chains train, the new ones' LR ramping over growth_warmup_steps and the run's schedule restarting at
              growth_lr_rewarm x lr, at most 3x the share of the run left); the trained model before growth stays in <ckpt>/pre-growth-step-N (roll back
              or compare with --ckpt on it) and the history records the growth. Each run continues the LR schedule of
              the checkpoint to its own last step (--lr-schedule restart: the recipe's schedule over 0..last step).
              --set key=value overrides the recipe for the prepare step and for training alike (--seq-len N and
              --val-fraction F are --set seq_len=N and --set val_fraction=F): the dataset's windows and its share of
              validation documents follow the same settings the model trains with.
              --val-input <uri> takes a separate held-out corpus (same --format) as the val split (catena prepare --val-input).
              Prepare uses the recipe's seq_len and val_fraction; --format defaults to jsonl, --tokenizer to
              train:<the recipe's vocab_size, else 8192> (later versions reuse the dataset's tokenizer).
              Which windows a run trains on: by default every window of every dataset version alike (old data is
              replayed in proportion to its size: new partitions that are 10% of the dataset are 10% of each step);
              --new-data-weight W (0 < W < 1) draws share W of every step's windows from the partitions this run adds
              and the rest from the older ones (the history records the weight).
              A run whose training failed leaves the dataset version it prepared; the next run trains on it, or, when
              its prepare settings differ (--val-fraction, --seq-len, --tokenizer, ...), prepares it again and says so.
              Idempotent: with no new partitions (and the newest version already trained) nothing changes and it
              says so (exit 0). Each checkpoint's info holds `history`: the manifest version of every run.
              Exit status: 0 done or nothing new, 2 bad input, 1 failure.
            """;

    static final Set<String> OWN = new TreeSet<>(List.of("lake", "ckpt", "recipe", "data", "add-chains", "steps", "master", "dp",
            "seq-len", "val-fraction", "new-data-weight", "val-input",
            "format", "text-field", "tokenizer"));
    /** train options that retrain sets itself. */
    static final Set<String> NOT_PASSED = new TreeSet<>(List.of("data", "out", "resume", "steps", "until-step", "grow-at", "recipe",
            "master", "dp", "help"));

    /** Settings of one retrain run; {@code trainArgs} are passed to {@link TrainOptions} unchanged. */
    public record Options(String lake, String ckpt, String recipe, String data, List<Integer> addChains, boolean freeze, long steps,
                          String master, int dp, String format, String textField, String tokenizer, List<String> trainArgs,
                          double newDataWeight, String valInput) {
        public Options {
            addChains = List.copyOf(addChains);
            trainArgs = List.copyOf(trainArgs);
        }

        /** The dataset: --data, else {@code <ckpt>/dataset}. */
        public String dataset() {
            return data != null ? data : ckpt.replaceAll("/+$", "") + "/dataset";
        }

        /**
         * Parses the command line; missing options are looked up as {@code spark.catena.retrain.<name>} in {@code conf}
         * (may be null). Unknown options go to {@code catena train}. Throws IllegalArgumentException naming the bad one.
         */
        public static Options parse(String[] argv, Function<String, String> conf) {
            Set<String> valued = new TreeSet<>(OWN);
            TrainOptions.VALUED.stream().filter(n -> !NOT_PASSED.contains(n)).forEach(valued::add);
            Set<String> flags = new TreeSet<>(TrainOptions.FLAGS);
            flags.removeAll(NOT_PASSED);
            Args args = new Args("retrain", argv, Args.firstOption(argv, "retrain"), valued, flags)
                    .withFallback(n -> OWN.contains(n) && conf != null ? conf.apply(TrainOptions.PREFIX + "retrain." + n) : null);
            if (args.helpRequested()) {
                throw new TrainOptions.HelpRequested();
            }
            // every train option retrain does not set itself goes to catena train as given
            List<String> pass = new ArrayList<>();
            args.given().forEach((name, values) -> {
                if (!OWN.contains(name)) {
                    for (String value : values) {
                        pass.add("--" + name);
                        if (!flags.contains(name)) {
                            pass.add(value);
                        }
                    }
                }
            });
            // --seq-len / --val-fraction: recipe overrides like --set, for prepare and training alike
            for (String[] sugar : new String[][] {{"seq-len", "seq_len"}, {"val-fraction", "val_fraction"}}) {
                for (String v : args.all(sugar[0])) {
                    pass.add("--set");
                    pass.add(sugar[1] + "=" + v);
                }
            }
            Function<String, String> get = n -> args.get(n, null);
            for (String req : List.of("lake", "ckpt", "recipe")) {
                if (get.apply(req) == null) {
                    throw new IllegalArgumentException("missing --" + req + "\n" + USAGE);
                }
            }
            List<Integer> heads = new ArrayList<>();
            boolean freeze = false;
            String add = get.apply("add-chains");
            if (add != null) {
                // the heads part of --grow-at: reuse its parser and messages
                TrainOptions.Growth g;
                try {
                    g = TrainOptions.Growth.parse("1:+" + add);
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("--add-chains must look like HEADS[,HEADS...][:freeze] (e.g. 2 or 1,1:freeze), got '"
                            + add + "'");
                }
                heads.addAll(g.heads());
                freeze = g.freeze();
            }
            long steps = number(get, "steps", 0);
            if (get.apply("steps") != null && steps < 1) {
                throw new IllegalArgumentException("--steps must be >= 1, got " + steps);
            }
            double newWeight = Double.NaN;
            String w = get.apply("new-data-weight");
            if (w != null) {
                try {
                    newWeight = Double.parseDouble(w.trim());
                } catch (NumberFormatException e) {
                    newWeight = -1;
                }
                if (!(newWeight > 0 && newWeight < 1)) {
                    throw new IllegalArgumentException("--new-data-weight is '" + w + "', expected a share 0 < W < 1 of each step's"
                            + " windows drawn from the new partitions (the rest replays older ones); leave it out to sample every"
                            + " window of every version alike");
                }
            }
            return new Options(get.apply("lake"), get.apply("ckpt"), get.apply("recipe"), get.apply("data"), heads, freeze, steps,
                    get.apply("master"), get.apply("dp") == null ? 0 : NumericOption.intAtLeast("dp", get.apply("dp"), 1),
                    get.apply("format") == null ? "jsonl" : get.apply("format"),
                    get.apply("text-field"), get.apply("tokenizer"), pass, newWeight, get.apply("val-input"));
        }

        private static long number(Function<String, String> get, String name, long dflt) {
            String x = get.apply(name);
            return x == null ? dflt : NumericOption.parse(name, x, Long.MIN_VALUE, Long.MAX_VALUE);
        }
    }

    /**
     * What a run did: {@code noop} when nothing was new; the manifest version trained on (the newest one for a
     * no-op), the steps it trained from and to, the prepare run's counts, a one-line message and the train result
     * (null for a no-op).
     */
    public record Result(boolean noop, int manifestVersion, long fromStep, long toStep, Manifest manifest, String message,
                         TrainResult train) {
    }

    private final SparkSession spark;
    private final Options opts;
    private final PrintStream out;

    public RetrainJob(SparkSession spark, Options opts, PrintStream out) {
        this.spark = spark;
        this.opts = opts;
        this.out = out;
    }

    /** spark-submit / {@code catena retrain} entry point. Exit codes: 0 done or nothing new, 2 bad input, 1 failure. */
    public static void main(String[] argv) {
        if (java.util.Arrays.asList(argv).contains("--help")) { // before any Spark class loads: help prints at once
            System.out.print(USAGE);
            return;
        }
        SparkConf conf = new SparkConf();
        Options o;
        try {
            o = Options.parse(argv, k -> conf.contains(k) ? conf.get(k) : null);
        } catch (TrainOptions.HelpRequested h) {
            System.out.print(USAGE);
            return;
        } catch (IllegalArgumentException e) {
            System.err.println("catena retrain: " + e.getMessage());
            System.exit(2);
            return;
        }
        DriverConf.apply(conf, "catena retrain", o.master(), Math.max(2, o.dp()));
        int code;
        SparkSession spark = SparkSession.builder().config(conf).getOrCreate();
        try {
            new RetrainJob(spark, o, System.out).run(); // prints its outcome
            code = 0;
        } catch (IllegalArgumentException e) {
            System.err.println("catena retrain: " + e.getMessage());
            code = 2;
        } catch (RuntimeException e) {
            System.err.println("catena retrain failed: " + e.getMessage());
            log().error("retrain failed", e);
            code = 1;
        } finally {
            spark.stop();
        }
        System.out.flush();
        System.exit(code);
    }

    /** Prepare the new partitions, then train on the new version (or nothing, when nothing is new). */
    public Result run() {
        Recipe recipe = Recipe.resolve(opts.recipe()).with(overrides(opts.trainArgs()));
        TrainSettings s = recipe.trainSettings();
        JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        org.apache.hadoop.conf.Configuration hconf = jsc.hadoopConfiguration();

        // 1. where training stands: the latest checkpoint and the manifest versions it was trained on
        CheckpointStore store = new CheckpointStore(HadoopStorage.resolver(hconf));
        boolean haveCkpt = hasCheckpoint(hconf);
        List<Map<String, Object>> history = new ArrayList<>();
        long fromStep = 0;
        if (haveCkpt) {
            Map<String, Object> doc = store.readManifest(opts.ckpt());
            history.addAll(history(doc));
            fromStep = ((Number) ((Map<?, ?>) doc.get("trainer")).get("step")).longValue();
        }
        int trainedBefore = history.isEmpty() ? 0 : ((Number) history.get(history.size() - 1).get("manifest_version")).intValue();

        // 2. the lake's new files -> the next manifest version (a version an earlier run prepared with other settings but
        //    never trained on is prepared again with this run's)
        PrepareOptions po = prepareOptions(recipe, s);
        String reprepared = discardUntrainedVersionsWithOtherSettings(po, trainedBefore, hconf);
        PrepareJob.Result prep = prepareNewPartitions(po);
        Manifest m = prep.manifest();
        out.println("retrain: prepare " + opts.lake() + " -> " + opts.dataset() + ": " + prep.message()
                + (reprepared == null ? "" : " (" + reprepared + ")"));

        int lastTrained = trainedBefore;
        if (m.version() <= lastTrained && !opts.addChains().isEmpty()) {
            // a growth request is never dropped silently: without new data there is nothing to train the new chains on
            throw new IllegalArgumentException("--add-chains " + opts.addChains() + " asks to grow " + opts.ckpt() + ", but there is "
                    + "nothing new to train the new chains on: no new partitions under " + opts.lake() + " and dataset version "
                    + m.version() + " was already trained on; nothing was changed. Add a partition, or grow now with `catena expand "
                    + "--ckpt " + opts.ckpt() + " --add-chains ... --out <dir>` and train on with `catena train --resume`");
        }
        if (m.version() <= lastTrained) {
            String msg = "retrain: nothing new: no new partitions under " + opts.lake() + " and dataset version " + m.version()
                    + " was already trained on (checkpoint " + opts.ckpt() + " at step " + fromStep + "); nothing changed";
            out.println(msg);
            return new Result(true, m.version(), fromStep, fromStep, m, msg, null);
        }
        if (prep.noop()) {
            out.println("retrain: no new partitions, but dataset version " + m.version() + " was never trained on (the checkpoint's "
                    + "last run used version " + lastTrained + "); training on it now (with other prepare settings, such as "
                    + "--val-fraction or --seq-len, a version never trained on is prepared again)");
        }

        // 3. optionally grow the loaded checkpoint (the trained model before growth stays a checkpoint of its own)
        String preGrowth = null;
        if (!opts.addChains().isEmpty()) {
            preGrowth = growCheckpoint(store, haveCkpt, s);
        }

        // 4. train on the pinned new version for --steps more steps
        return train(jsc, m, history, lastTrained, fromStep, haveCkpt, s, preGrowth);
    }

    /** The recipe overrides among the options passed to training ({@code --set key=value}), for prepare too. */
    static List<String> overrides(List<String> trainArgs) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i + 1 < trainArgs.size(); i++) {
            if (trainArgs.get(i).equals("--set")) {
                out.add(trainArgs.get(++i));
            } else if (trainArgs.get(i).startsWith("--set=")) {
                out.add(trainArgs.get(i).substring("--set=".length()));
            }
        }
        return out;
    }

    /** The prepare settings of this run: the recipe's (with --set) seq_len and val_fraction, --format, --tokenizer, ... */
    private PrepareOptions prepareOptions(Recipe recipe, TrainSettings s) {
        String vocab = recipe.values().get("vocab_size");
        PrepareOptions po = PrepareOptions.of(List.of(opts.lake()), opts.format(), opts.dataset()).withIncremental(true)
                .withSeqLen(s.seqLen()).withValFraction(s.valFraction())
                .withTokenizer(opts.tokenizer() != null ? opts.tokenizer() : vocab != null ? "train:" + vocab.trim()
                        : PrepareOptions.DEFAULT_TOKENIZER);
        if (opts.textField() != null) {
            po = po.withTextField(opts.textField());
        }
        if (opts.valInput() != null) {
            po = po.withValInput(opts.valInput()); // the held-out corpus is the val split (val_fraction unused)
        }
        return po;
    }

    /**
     * Issue 17 finding 1: a run whose training failed leaves the version it prepared; when the next run asks for other
     * prepare settings (say a val_fraction that the failure called for), an incremental prepare would refuse them and
     * every rerun would fail the same way. Versions no checkpoint run trained on are derived data: in retrain's own
     * dataset ({@code <ckpt>/dataset}) they are removed and prepared again with the new settings, and the run says so;
     * a dataset given with --data may serve other runs, so there it stops and says what to do. Returns what was done, or
     * null when nothing was.
     */
    private String discardUntrainedVersionsWithOtherSettings(PrepareOptions po, int trainedBefore,
                                                             org.apache.hadoop.conf.Configuration hconf) {
        Path root = new Path(opts.dataset());
        try {
            java.util.Optional<Manifest> latest = ManifestStore.latest(root, hconf);
            if (latest.isEmpty() || latest.get().version() <= trainedBefore) {
                return null;
            }
            List<String> diffs = PrepareJob.settingDifferences(latest.get(), po);
            if (diffs.isEmpty()) {
                return null;
            }
            Path trained = ManifestStore.versionFile(root, trainedBefore);
            if (trainedBefore > 0 && trained.getFileSystem(hconf).exists(trained)
                    && !PrepareJob.settingDifferences(ManifestStore.read(trained, hconf), po).isEmpty()) {
                return null; // the settings differ from the trained versions' too: the incremental prepare refuses them, naming both
            }
            String versions = trainedBefore + 1 == latest.get().version() ? "version " + latest.get().version()
                    : "versions " + (trainedBefore + 1) + ".." + latest.get().version();
            if (opts.data() != null) {
                throw new IllegalArgumentException("dataset " + versions + " of --data " + opts.dataset() + " was prepared by an"
                        + " earlier run that never trained " + opts.ckpt() + " on it, with other settings than this run's: "
                        + String.join(", ", diffs) + ". retrain prepares it again only in its own dataset (<ckpt>/dataset);"
                        + " this one may serve other runs. Rerun with the dataset's settings, or remove " + versions
                        + " (manifests/manifest-v*.json and v0000NN/ above version " + trainedBefore + ") and rerun.");
            }
            List<Integer> removed = PrepareJob.discardVersionsAfter(root, trainedBefore, hconf);
            String msg = "re-prepared: dataset " + versions + " was prepared by an earlier run that never trained on it, with "
                    + "other settings than this run's (" + String.join(", ", diffs) + "); removed " + removed
                    + " and prepared the lake again with this run's settings";
            out.println("retrain: " + msg);
            return msg;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read dataset " + opts.dataset() + ": " + e.getMessage(), e);
        }
    }

    private PrepareJob.Result prepareNewPartitions(PrepareOptions po) {
        PrepareJob.Result prep;
        try {
            prep = PrepareJob.run(spark, po);
        } catch (IOException e) {
            throw new UncheckedIOException("prepare of " + opts.lake() + " into " + opts.dataset() + " failed: " + e.getMessage(), e);
        }
        return prep;
    }

    /**
     * Appends the chains to the latest checkpoint. Growth never destroys: the trained model before it is kept as
     * {@code <ckpt>/pre-growth-step-N} (a self-contained checkpoint to roll back to, or to evaluate against), and the
     * grown model becomes the checkpoint at step N. Returns the kept directory.
     */
    private String growCheckpoint(CheckpointStore store, boolean haveCkpt, TrainSettings s) {
        if (!haveCkpt) {
            throw new IllegalArgumentException("--add-chains appends chains to a trained checkpoint, but " + opts.ckpt()
                    + " holds none yet; run retrain without it first (the first run trains the recipe's chains)");
        }
        TrainingState st = store.load(opts.ckpt(), true);
        String kept = opts.ckpt().replaceAll("/+$", "") + String.format("/pre-growth-step-%08d", st.step());
        try {
            kept = store.saveTo(kept, st);
        } catch (IllegalArgumentException e) {
            if (!String.valueOf(e.getMessage()).contains("already exists")) {
                throw e;
            }
            // a rerun after a failed training run: the model before this growth was kept then
        }
        TrainingState grown = ChainExpansion.expand(st, opts.addChains(), opts.freeze(), null, s.seed() + st.step());
        String dir = store.save(opts.ckpt(), grown);
        out.println("retrain: appended chains " + opts.addChains() + (opts.freeze() ? " (old chains frozen)" : "") + " at step "
                + st.step() + ": chains " + st.config().chains() + " -> " + grown.config().chains() + " (" + dir + "); the model "
                + "before growth stays in " + kept);
        return kept;
    }

    private Result train(JavaSparkContext jsc, Manifest m, List<Map<String, Object>> history, int lastTrained, long fromStep,
                         boolean haveCkpt, TrainSettings s, String preGrowth) {
        long more = opts.steps() > 0 ? opts.steps() : s.steps();
        long toStep = fromStep + more;
        String data = ManifestStore.versionFile(new Path(opts.dataset()), m.version()).toString();
        if (!Double.isNaN(opts.newDataWeight()) && lastTrained > 0) {
            // share W of every step's windows from the versions this run adds, the rest replayed from the older ones
            data = ManifestTokenSourceProvider.Spec.withNewDataWeight(data, opts.newDataWeight(), lastTrained + 1);
        }
        Map<String, Object> entry = new LinkedHashMap<>();
        entry.put("manifest_version", m.version());
        entry.put("data", data);
        entry.put("new_data_weight", Double.isNaN(opts.newDataWeight()) || lastTrained == 0 ? "uniform" : opts.newDataWeight());
        entry.put("partitions", newPartitions(m, lastTrained));
        entry.put("from_step", fromStep);
        entry.put("to_step", toStep);
        if (!opts.addChains().isEmpty()) {
            entry.put("added_chains", opts.addChains());
            entry.put("freeze", opts.freeze());
            entry.put("grown_at_step", fromStep);
            entry.put("pre_growth_checkpoint", preGrowth);
        }
        history.add(entry);
        List<String> args = new ArrayList<>(List.of("--data", data, "--recipe", opts.recipe(), "--out", opts.ckpt(), "--steps",
                Long.toString(toStep)));
        if (haveCkpt) {
            args.add("--resume");
        }
        if (opts.dp() > 0) {
            args.addAll(List.of("--dp", Integer.toString(opts.dp())));
        }
        args.addAll(opts.trainArgs());
        SparkConf sc = jsc.getConf();
        TrainOptions to = TrainOptions.parse(args.toArray(String[]::new), k -> sc.contains(k) ? sc.get(k) : null);
        out.println("retrain: training on dataset version " + m.version() + " (" + data + "), steps " + fromStep + " -> " + toStep
                + (haveCkpt ? ", resumed from " + opts.ckpt() : ", from scratch"));
        Map<String, Object> extra = new LinkedHashMap<>();
        extra.put(HISTORY, history);
        extra.put("manifest_version", m.version());
        TrainResult r = new TrainJob(jsc, to, out).withInfo(extra).run();
        String msg = "retrain: trained dataset version " + m.version() + " (" + entry.get("partitions") + "): steps " + fromStep + " -> "
                + r.finalStep() + ", chains " + r.chains() + ", checkpoint " + r.checkpoint();
        out.println(msg);
        return new Result(false, m.version(), fromStep, r.finalStep(), m, msg, r);
    }

    private boolean hasCheckpoint(org.apache.hadoop.conf.Configuration hconf) {
        try {
            Path root = new Path(opts.ckpt());
            FileSystem fs = root.getFileSystem(hconf);
            return fs.exists(new Path(root, CheckpointStore.LATEST)) || fs.exists(new Path(root, CheckpointStore.MODEL_JSON));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read --ckpt " + opts.ckpt() + ": " + e.getMessage(), e);
        }
    }

    /** The {@code history} list of a checkpoint's model.json (empty for one written by plain {@code catena train}). */
    @SuppressWarnings("unchecked")
    public static List<Map<String, Object>> history(Map<String, Object> modelJson) {
        Object info = modelJson.get("info");
        if (info instanceof Map<?, ?> i && i.get(HISTORY) instanceof List<?> l) {
            List<Map<String, Object>> h = new ArrayList<>();
            for (Object e : l) {
                h.add(new LinkedHashMap<>((Map<String, Object>) e));
            }
            return h;
        }
        return List.of();
    }

    /** Partition directories whose sources arrived after version {@code after}. */
    private static List<String> newPartitions(Manifest m, int after) {
        Set<String> p = new TreeSet<>();
        for (Manifest.Source src : m.sources()) {
            if (src.version() > after) {
                Path parent = new Path(src.path()).getParent();
                p.add(parent == null ? src.path() : parent.getName());
            }
        }
        return new ArrayList<>(p);
    }
}
