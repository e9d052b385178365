package io.catena.model.cli;

import io.catena.model.ChainExpansion;
import io.catena.model.ColmConfig;
import io.catena.model.ColmModel;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.data.DataSources;
import io.catena.model.data.TextCodec;
import io.catena.model.data.TokenBatchSource;
import io.catena.model.export.ModelExporter;
import io.catena.model.infer.Generator;
import io.catena.model.io.CheckpointStore;
import io.catena.model.io.TrainingState;
import io.catena.model.kernel.Parallel;
import io.catena.model.train.Evaluator;
import io.catena.model.train.LocalTrainer;
import io.catena.model.train.NumericalGuard;
import io.catena.model.train.Recipe;
import io.catena.model.train.TrainSettings;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.nd4j.linalg.api.buffer.DataType;

/** The {@code catena} command (chain-model's part: local training, eval, generate, expand, inspect, export, demo). */
public final class CatenaCli {
    static final String USAGE = """
            catena — train Chain-of-Model language models (CoLM, CoLM-Air)

            usage: catena <command> [options]     (catena <command> --help for its options)

              demo          the whole story on bundled public-domain text: Spark prepare -> train dp=2 with the Aeron
                            parameter server -> grow 2 -> 3 chains -> eval every scale -> generate -> report.html
              demo-local    the same model story in this one process without Spark (train-local, expand, eval, generate)
              prepare       Spark job: corpora on any Hadoop FS -> BPE token shards + manifest (catena prepare --help)
              train         Spark job: dp x pp workers (data + pipeline parallel) + Aeron parameter server, growth,
                            resume (catena train --help)
              retrain       incremental prepare of a data lake's new partitions, then resume training on them
              ps            a standalone parameter server: --conf <file> [--restore <ckpt>]
              train-local   train in this process: --recipe <file> --data <manifest|text file|dir|builtin:genesis> --out <ckpt dir>
              eval          validation loss and perplexity per number of chains: --ckpt <dir> --data <text>
              generate      sample text at k chains with a KV cache: --ckpt <dir> --prompt "..."
              expand        append chains to a checkpoint: --ckpt <dir> --add-chains 2 [--freeze-old] [--loss-weights mean] [--init auto] --out <dir>
              inspect       print a checkpoint's config, chains, parameter counts and training state
              export        a checkpoint (or its first k chains) as model.safetensors + config.json + tokenizer.json
                            for PyTorch / numpy: --ckpt <dir> --out <dir> [--chains k] (docs/EXPORT.md)
            """;

    private final PrintStream out;

    public CatenaCli(PrintStream out) {
        this.out = out;
    }

    /** Exit codes beside 0 (done) and 2 (bad input): a checkpoint could not be written; the numerical guard stopped the run. */
    public static final int EXIT_WRITE_FAILED = 3, EXIT_STOPPED = 4;

    public static void main(String[] argv) {
        int code = execute(argv, System.out, System.err);
        System.out.flush();
        System.exit(code);
    }

    /** Runs a command as {@code main} does and returns its exit code; an error is printed to err as "catena: message". */
    static int execute(String[] argv, PrintStream out, PrintStream err) {
        try {
            return new CatenaCli(out).run(argv);
        } catch (io.catena.model.io.CheckpointWriteException e) {
            err.println("catena: " + e.getMessage());
            return EXIT_WRITE_FAILED;
        } catch (io.catena.model.NotRetryableException e) {
            err.println("catena: " + e.getMessage());
            return EXIT_STOPPED;
        } catch (IllegalArgumentException | IllegalStateException | java.io.UncheckedIOException e) {
            err.println("catena: " + e.getMessage());
            return 2;
        }
    }

    public int run(String[] argv) {
        if (argv.length == 0 || argv[0].equals("--help") || argv[0].equals("-h") || argv[0].equals("help")) {
            out.print(USAGE);
            return argv.length == 0 ? 1 : 0;
        }
        String cmd = argv[0];
        switch (cmd) {
            case "train-local" -> trainLocal(argv);
            case "eval" -> eval(argv);
            case "generate" -> generate(argv);
            case "expand" -> expand(argv);
            case "inspect" -> inspect(argv);
            case "export" -> export(argv);
            case "demo-local" -> new Demo(out).run(new Args("demo-local", argv, 1, Set.of("out", "steps", "grow-steps"), Set.of()));
            default -> throw new IllegalArgumentException("unknown command '" + cmd + "'\n" + USAGE);
        }
        return 0;
    }

    private boolean help(Args a, String text) {
        if (a.has("help")) {
            out.print(text);
            return true;
        }
        return false;
    }

    // ---- train-local --------------------------------------------------------------------------

    static Recipe loadRecipe(String spec) {
        return Recipe.resolve(spec);
    }

    private void trainLocal(String[] argv) {
        Args a = new Args("train-local", argv, 1, Set.of("recipe", "data", "out", "steps", "set", "metrics", "threads",
                "divergence-factor", "skip-nonfinite", "lr-schedule"), Set.of("resume"));
        if (help(a, """
                catena train-local --recipe <file|builtin:tiny> --data <manifest|text file|dir|builtin:genesis> --out <ckpt root>
                                   [--steps N] [--set key=value]... [--resume] [--metrics <file.jsonl>] [--threads N]
                                   [--divergence-factor F] [--skip-nonfinite N] [--lr-schedule continue|restart]
                  Trains in this process on a data-pipeline manifest (catena prepare) or on plain text with the
                  byte tokenizer. --resume continues from the latest checkpoint under
                  --out with the same step, optimizer state and data position (bit-for-bit like an uninterrupted run).
                  A resume with another --steps continues the LR schedule (default: it decays from the rate reached to
                  min_lr at the new last step); --lr-schedule restart uses the recipe's schedule as if from step 0.
                  A non-finite gradient stops the run with nothing changed (--skip-nonfinite N skips up to N such steps,
                  counted in metrics.jsonl); a loss or parameter norm that grows more than --divergence-factor times
                  (default 10; 0 = off) between two log steps stops it before the next checkpoint. Exit codes: 0 done,
                  2 bad input, 3 a checkpoint could not be written (disk full, ...), 4 stopped by one of those checks.
                """)) {
            return;
        }
        if (a.has("threads")) {
            Parallel.setThreads(a.integer("threads", 2, 1));
        }
        Recipe recipe = loadRecipe(a.require("recipe")).with(a.all("set"));
        String data = a.require("data");
        String outRoot = a.require("out");
        TrainSettings s = recipe.trainSettings();
        if (a.has("steps")) {
            s = s.withSteps(a.integer("steps", 0, 1));
        }
        TokenBatchSource train = DataSources.open(data, "train", s.seqLen(), s.valFraction(), s.seed(), 0, 1);
        TokenBatchSource val = DataSources.open(data, "val", s.seqLen(), s.valFraction(), s.seed(), 0, 1);
        TrainingState state;
        if (a.has("resume")) {
            state = new CheckpointStore().load(outRoot, true);
            out.println("resuming " + outRoot + " at step " + state.step());
            List<String> differ = modelDifferences(recipe.modelConfig(train.vocabSize()), state.config());
            if (!differ.isEmpty()) {
                // an expanded checkpoint legitimately has more chains than its recipe: say so, do not refuse
                out.println("note: --resume keeps the checkpoint's model; the recipe's model settings differ in " + String.join(", ", differ));
            }
        } else {
            state = LocalTrainer.freshState(recipe.modelConfig(train.vocabSize()), s.seed());
        }
        Path metrics = Path.of(a.get("metrics", Path.of(outRoot.replace("file://", ""), "metrics.jsonl").toString()));
        Map<String, Object> info = new LinkedHashMap<>();
        info.put("recipe", recipe.values());
        info.put("data_spec", data); // lets generate find the data's tokenizer
        out.println("model " + state.config().chains() + " chains, " + new ParamLayout(state.config()).size() + " parameters; data "
                + train.describe());
        LocalTrainer trainer = new LocalTrainer(state, s, train, val, outRoot, metrics, out, info)
                .guard(new NumericalGuard(a.dbl("divergence-factor", NumericalGuard.DEFAULT_DIVERGENCE_FACTOR, 0, 1e12),
                        a.integer("skip-nonfinite", 0, 0)));
        if (lrScheduleRestart(a.get("lr-schedule", "continue"))) {
            trainer.restartLrSchedule();
        } else if (trainer.lrSchedule().continueFrom() > 0) {
            out.println(String.format(java.util.Locale.ROOT, "lr schedule: continues from step %d at %.3g down to %.3g at step %d "
                    + "(--lr-schedule restart to start it anew)", trainer.lrSchedule().continueFrom(),
                    trainer.lrSchedule().continueLr(), s.minLr(), s.steps()));
        }
        trainer.run(s.steps());
    }

    /** {@code --lr-schedule}: continue (false) or restart (true); anything else is an error naming both. */
    public static boolean lrScheduleRestart(String v) {
        return switch (v.trim().toLowerCase(java.util.Locale.ROOT)) {
            case "continue" -> false;
            case "restart" -> true;
            default -> throw new IllegalArgumentException("--lr-schedule must be continue or restart, got '" + v + "'");
        };
    }

    /**
     * The prompt as given, or an error when it was not valid UTF-8: the JVM decodes command-line bytes it
     * cannot read as U+FFFD, and a model would silently continue a text the user never wrote.
     */
    static String validPrompt(String prompt) {
        int bad = prompt.indexOf('\uFFFD');
        if (bad >= 0) {
            throw new IllegalArgumentException("generate: --prompt is not valid UTF-8 (an undecodable byte sequence at character "
                    + bad + ", shown as U+FFFD); pass UTF-8 text (check the terminal's locale, e.g. LANG=C.UTF-8)");
        }
        return prompt;
    }

    /** The model settings in which a recipe's config and a checkpoint's differ, as "key (recipe X, checkpoint Y)". */
    static List<String> modelDifferences(ColmConfig recipe, ColmConfig checkpoint) {
        Map<String, Object> r = recipe.toMap(), c = checkpoint.toMap();
        List<String> differ = new ArrayList<>();
        for (Map.Entry<String, Object> e : r.entrySet()) {
            Object theirs = c.get(e.getKey());
            if (!java.util.Objects.equals(e.getValue(), theirs)) {
                differ.add(e.getKey() + " (recipe " + e.getValue() + ", checkpoint " + theirs + ")");
            }
        }
        return differ;
    }

    // ---- eval ---------------------------------------------------------------------------------

    private void eval(String[] argv) {
        Args a = new Args("eval", argv, 1, Set.of("ckpt", "data", "chains", "batches", "batch-size", "seq-len", "val-fraction",
                "max-tokens"), Set.of());
        if (help(a, """
                catena eval --ckpt <dir> --data <text file|dir|builtin:genesis> [--chains k|all] [--max-tokens 1048576]
                            [--batches N] [--batch-size 8] [--seq-len 128] [--val-fraction 0.05]
                  Prints, per number of chains k: parameters used, validation loss and perplexity, over the whole
                  validation split up to --max-tokens tokens (or exactly --batches batches), and how many windows
                  and tokens that was.
                """)) {
            return;
        }
        TrainingState st = new CheckpointStore().load(a.require("ckpt"), false);
        ColmConfig cfg = st.config();
        String data = a.require("data");
        int seq = Math.min(a.integer("seq-len", Math.min(128, cfg.maxSeqLen()), 1), cfg.maxSeqLen());
        int batch = a.integer("batch-size", 8, 1);
        TokenBatchSource val = DataSources.open(data, "val", seq, a.dbl("val-fraction", io.catena.model.train.TrainSettings.DEFAULT_VAL_FRACTION), 0, 0, 1);
        List<Integer> scales = new ArrayList<>();
        String ch = a.get("chains", "all");
        if (ch.equals("all")) {
            for (int k = 1; k <= cfg.numChains(); k++) {
                scales.add(k);
            }
        } else {
            int k = Integer.parseInt(ch);
            cfg.checkScale(k);
            scales.add(k);
        }
        // the whole split up to a token budget: a few dozen windows gave numbers that moved with the sample
        long budgetBatches = Math.max(1, a.longValue("max-tokens", EVAL_TOKEN_BUDGET, 1) / ((long) batch * seq));
        int batches = a.has("batches") ? a.integer("batches", 8, 1) : (int) Math.min(Integer.MAX_VALUE, budgetBatches);
        int used = evalBatches(val, batch, batches);
        out.println(String.format(java.util.Locale.ROOT, "validation: %,d windows (%,d tokens) of the split's %,d", (long) used * batch,
                (long) used * batch * seq, val.windowsPerEpoch()));
        double[] losses = evaluate(st, val, batch, batches, scales);
        out.println(evalTable(st, scales, losses));
    }

    /** Default token budget of {@code catena eval}: the whole validation split up to this many tokens. */
    static final long EVAL_TOKEN_BUDGET = 1L << 20;

    /** The batches an evaluation reads: the requested ones, at most the split's whole batches, at least one. */
    static int evalBatches(TokenBatchSource val, int batch, int batches) {
        return (int) Math.max(1, Math.min(batches, val.windowsPerEpoch() / batch));
    }

    /** Mean validation loss per requested scale (at most the split's whole batches), through the one {@link Evaluator}. */
    static double[] evaluate(TrainingState st, TokenBatchSource val, int batch, int batches, List<Integer> scales) {
        ColmModel model = new ColmModel(st.config(), st.params(), new Params(st.params().layout(), DataType.FLOAT), batch, val.seqLen());
        int usable = evalBatches(val, batch, batches);
        double[] all = Evaluator.evaluate(model, val, usable, scales.stream().mapToInt(Integer::intValue).max().orElse(1));
        double[] out = new double[scales.size()];
        for (int s = 0; s < scales.size(); s++) {
            out[s] = all[scales.get(s) - 1];
        }
        return out;
    }

    static String evalTable(TrainingState st, List<Integer> scales, double[] losses) {
        StringBuilder sb = new StringBuilder(String.format(Locale.ROOT, "%-7s %-12s %-12s %-10s %-10s%n", "chains", "heads",
                "params", "val_loss", "ppl"));
        ParamLayout layout = st.params().layout();
        for (int s = 0; s < scales.size(); s++) {
            int k = scales.get(s);
            sb.append(String.format(Locale.ROOT, "%-7d %-12s %-12d %-10.4f %-10.3f%n", k, st.config().chains().subList(0, k),
                    layout.prefixSize(k), losses[s], Math.exp(losses[s])));
        }
        return sb.toString();
    }

    // ---- generate -----------------------------------------------------------------------------

    private void generate(String[] argv) {
        Args a = new Args("generate", argv, 1, Set.of("ckpt", "prompt", "chains", "max-new-tokens", "temperature", "top-k",
                "seed", "switch-at", "data"), Set.of());
        if (help(a, """
                catena generate --ckpt <dir> --prompt "text" [--chains k] [--max-new-tokens 200] [--temperature 0.8]
                                [--top-k 40] [--seed 1] [--switch-at T:K]... [--data <dataset dir>]
                  Samples with a KV cache at k chains (default: all). --switch-at 50:1 switches to 1 chain from the
                  50th generated token on (seamless for CoLM-Air; CoLM recomputes the cache when k grows).
                  CoLM-Air prefills the prompt with the chain-1 sub-model. Prompts are encoded with the tokenizer of
                  the data the checkpoint was trained on (recorded in it; --data names the dataset if it moved).
                """)) {
            return;
        }
        TrainingState st = new CheckpointStore().load(a.require("ckpt"), false);
        ColmConfig cfg = st.config();
        TextCodec codec = codecOf(st, a.get("data", null));
        String prompt = validPrompt(a.require("prompt"));
        int k = a.get("chains", "all").equals("all") ? cfg.numChains() : a.integer("chains", cfg.numChains(), 1);
        TreeMap<Integer, Integer> switches = new TreeMap<>();
        for (String s : a.all("switch-at")) {
            String[] p = s.split(":");
            if (p.length != 2) {
                throw new IllegalArgumentException("--switch-at must look like TOKEN_INDEX:CHAINS, got '" + s + "'");
            }
            switches.put(Integer.parseInt(p[0]), Integer.parseInt(p[1]));
        }
        int[] ids = codec.encode(prompt);
        int maxNew = a.integer("max-new-tokens", 200, 0);
        var o = new Generator.Options(maxNew, k, a.dbl("temperature", 0.8, 0, 1e6), a.integer("top-k", 40, 0), a.integer("seed", 1),
                switches, true, codec.eosId());
        Generator.Result r = new Generator(cfg, st.params()).generate(ids, o);
        out.println(prompt + codec.decode(r.tokens(), 0, r.tokens().length));
    }

    /**
     * The tokenizer a checkpoint was trained with: the one of --data (a dataset), else of the data spec the trainer
     * recorded, else the byte tokenizer for text. Refuses a mismatch of vocabulary sizes instead of printing garbage.
     */
    static TextCodec codecOf(TrainingState st, String dataOverride) {
        Object recorded = st.info().get("data_spec");
        Object described = st.info().get("data");
        String spec = dataOverride != null ? dataOverride : recorded == null ? null : recorded.toString();
        TextCodec codec;
        if (spec != null) {
            codec = TextCodec.forData(spec);
        } else if (described == null || described.toString().startsWith("bytes:")) {
            codec = TextCodec.bytes();
        } else {
            throw new IllegalArgumentException("this checkpoint was trained on " + described + " and does not record where its"
                    + " tokenizer is; pass the dataset it was trained on with --data <dataset dir>");
        }
        if (codec.vocabSize() != st.config().vocabSize()) {
            throw new IllegalArgumentException("the tokenizer " + codec.describe() + (spec == null ? "" : " of " + spec) + " has "
                    + codec.vocabSize() + " ids but the checkpoint's model has vocab_size " + st.config().vocabSize()
                    + "; pass the dataset the model was trained on with --data <dataset dir>");
        }
        return codec;
    }

    // ---- expand / inspect ---------------------------------------------------------------------

    private void expand(String[] argv) {
        Args a = new Args("expand", argv, 1, Set.of("ckpt", "add-chains", "out", "seed", "loss-weights", "init"), Set.of("freeze-old"));
        if (help(a, """
                catena expand --ckpt <dir> --add-chains <heads[,heads...]> --out <dir> [--freeze-old] [--seed 7]
                              [--loss-weights mean|full-only|w1,...,wn] [--init auto|copy|random]
                  Appends chains: old tensors copied, new ones initialised, the new chains' LM-head rows zero, so every
                  old scale and the grown full model give exactly the old logits. --freeze-old trains only new chains.
                  --init: copy starts each new chain as a replica of the last old chain (its hidden state equal to that
                  chain's), random draws it fresh; auto (default) = copy when the new chain is as wide as the last one.
                  --loss-weights: the grown model's per-scale loss weights (default mean; n = old + added chains).
                """)) {
            return;
        }
        CheckpointStore store = new CheckpointStore();
        TrainingState old = store.load(a.require("ckpt"), false);
        Map<String, Object> manifest = store.readManifest(a.require("ckpt"));
        boolean hasOpt = Boolean.TRUE.equals(((Map<?, ?>) manifest.get("trainer")).get("has_optimizer_state"));
        if (hasOpt) {
            old = store.load(a.require("ckpt"), true);
        }
        List<Integer> added = new ArrayList<>();
        for (String s : a.require("add-chains").split(",")) {
            added.add(Integer.parseInt(s.trim()));
        }
        List<Double> weights = a.has("loss-weights")
                ? ColmConfig.parseLossWeights(a.require("loss-weights"), old.config().numChains() + added.size(), "--loss-weights")
                : null;
        TrainingState grown = ChainExpansion.expand(old, added, a.has("freeze-old"), weights, a.integer("seed", 7),
                ChainExpansion.Init.parse(a.has("init") ? a.require("init") : "auto"));
        String dir = store.saveTo(a.require("out"), grown);
        out.println("expanded " + old.config().chains() + " -> " + grown.config().chains() + " (" + old.params().layout().size()
                + " -> " + grown.params().layout().size() + " parameters, frozen chains " + grown.frozenChains() + "): " + dir);
    }

    private void inspect(String[] argv) {
        Args a = new Args("inspect", argv, 1, Set.of("ckpt"), Set.of("verify"));
        if (help(a, "catena inspect --ckpt <dir> [--verify]\n  Prints config, chains, parameters per scale and the training state.\n"
                + "  --verify reads every tensor file and checks its shape and CRC32C against model.json (exit 2 naming the\n"
                + "  first bad file; without it only model.json is read).\n")) {
            return;
        }
        Map<String, Object> m = new CheckpointStore().readManifest(a.require("ckpt"));
        if (a.has("verify")) {
            boolean withOptimizer = Boolean.TRUE.equals(((Map<?, ?>) m.getOrDefault("trainer", Map.of())).get("has_optimizer_state"));
            TrainingState verified = new CheckpointStore().load(a.require("ckpt"), withOptimizer);
            int files = verified.params().layout().entries().size() * (withOptimizer ? 3 : 1);
            out.println("verified    " + files + " tensor files: shapes and CRC32C match " + CheckpointStore.MODEL_JSON);
        }
        @SuppressWarnings("unchecked")
        ColmConfig cfg = ColmConfig.fromMap((Map<String, Object>) m.get("config"));
        ParamLayout layout = new ParamLayout(cfg);
        out.println("checkpoint  " + m.get("_dir"));
        out.println("config      " + cfg);
        out.println("d_model     " + cfg.dModel() + " (" + cfg.heads() + " heads x " + cfg.headDim() + "), FFN " + cfg.ffnWidth());
        for (int k = 1; k <= cfg.numChains(); k++) {
            out.println(String.format(Locale.ROOT, "scale k=%d   chains %s, %,d parameters", k, cfg.chains().subList(0, k),
                    layout.prefixSize(k)));
        }
        out.println("trainer     " + m.get("trainer"));
        out.println("info        " + m.get("info"));
        out.println("this host   " + io.catena.model.kernel.NativeSetup.report().line());
    }

    private void export(String[] argv) {
        Args a = new Args("export", argv, 1, Set.of("ckpt", "out", "chains", "format", "data"), Set.of("force", "no-tokenizer"));
        if (help(a, """
                catena export --ckpt <dir> --out <dir> [--chains k] [--format safetensors] [--force] [--data <dataset dir>]
                              [--no-tokenizer]
                  Writes the checkpoint's first k chains (default all; any prefix of chains is a model) as
                  model.safetensors (float32), config.json and tokenizer.json (HuggingFace byte-level BPE) into --out,
                  which must not exist or be empty (--force replaces it). Load it with the Python package in
                  chain-model/python: python3 -m catena_colm <dir> --prompt "...". Format: docs/EXPORT.md.
                  The tokenizer is the one generate uses (--data names the dataset if it moved); --no-tokenizer
                  exports the model alone.
                """)) {
            return;
        }
        String format = a.get("format", "safetensors");
        if (!format.equals("safetensors")) {
            throw new IllegalArgumentException("export: --format " + format + " is not supported; the one format is safetensors");
        }
        String outDir = a.require("out");
        String ckpt = a.require("ckpt");
        String dir = new CheckpointStore().resolve(ckpt);
        TrainingState st = new CheckpointStore().load(dir, false);
        int n = st.config().numChains();
        String chains = a.get("chains", "all");
        int k;
        try {
            k = chains.equals("all") ? n : NumericOption.parseInt("chains", chains, 1, n);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("export: " + e.getMessage() + " (this checkpoint has " + n + " chains "
                    + st.config().chains() + "; allowed: 1.." + n + " or all)");
        }
        TextCodec codec = null;
        if (!a.has("no-tokenizer")) {
            try {
                codec = codecOf(st, a.get("data", null));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("export: " + e.getMessage() + ", or export the model alone with --no-tokenizer", e);
            }
        }
        var r = ModelExporter.export(st, k, codec, Path.of(io.catena.model.data.DataSources.localPath(outDir)), a.has("force"), dir);
        out.println(String.format(Locale.ROOT, "exported chains %s of %s (%,d parameters, %,d bytes%s) from %s: %s", r.chains(),
                st.config().chains(), r.parameters(), r.bytes(), r.withTokenizer() ? ", with tokenizer.json" : ", no tokenizer",
                dir, r.dir()));
    }

    static void writeString(Path p, String s) {
        try {
            Files.createDirectories(p.toAbsolutePath().getParent());
            Files.writeString(p, s);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
