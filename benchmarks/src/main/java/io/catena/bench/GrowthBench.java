package io.catena.bench;

import io.catena.model.ChainExpansion;
import io.catena.model.ColmConfig;
import io.catena.model.FlopCount;
import io.catena.model.data.ByteTokenizer;
import io.catena.model.data.TextByteSource;
import io.catena.model.data.TokenBatchSource;
import io.catena.model.io.TrainingState;
import io.catena.model.train.Evaluator;
import io.catena.model.train.LocalTrainer;
import io.catena.model.train.Recipe;
import io.catena.model.train.TrainSettings;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;

/**
 * Growth against training from scratch on the same tokens (issue 17, finding 7). Every run trains the tiny recipe's
 * shape with the local trainer on Java source from the JDK's src.zip (java.base, files split by a hash of their path:
 * 1 in 10 is held out for validation, so the validation text is code the model never saw) and reports the full
 * model's validation loss and the matmul FLOPs it spent ({@link FlopCount}: frozen chains' backward skipped).
 *
 * <p>Runs (one per argument after the options):
 * <pre>
 *   scratch lr=3e-3 steps=600                       the full model ({@code chains}) from step 0 ({@code weights=a,b,c}:
 *                                                    its loss weights per scale, default the recipe's)
 *   grow lr=3e-3 steps=600 at=300 freeze=100 warm=50 the model without its last chain until step {@code at}, then
 *                                                    the chain appended (old chains frozen for {@code freeze} steps,
 *                                                    new chain's LR ramped over {@code warm} steps), one LR schedule
 *                                                    over all {@code steps} ({@code rewarm=F}: after the growth
 *                                                    the rate restarts at F x lr, capped at 3 x the share of the run
 *                                                    left, and decays to min_lr at the end; {@code init=copy|random|auto}
 *                                                    the new chain's init, auto = ChainExpansion's default;
 *                                                    {@code newlr=M} growth_new_chain_lr; {@code weights=a,b,c} the
 *                                                    grown model's loss weights per scale, default the mean)
 * </pre>
 * Runs that share their small phase (chains, lr, min_lr, warm-up, steps, at) train it once and start from a copy.
 * Options: {@code --src-zip PATH --out FILE.jsonl --eval-batches N}; {@code --set key=value} overrides the tiny recipe.
 */
public final class GrowthBench {

    record Run(String kind, Map<String, String> opts) {
        double dbl(String k, double d) {
            return opts.containsKey(k) ? Double.parseDouble(opts.get(k)) : d;
        }

        long lng(String k, long d) {
            return opts.containsKey(k) ? Long.parseLong(opts.get(k)) : d;
        }

        String label() {
            StringBuilder b = new StringBuilder(kind);
            opts.forEach((k, v) -> b.append(' ').append(k).append('=').append(v));
            return b.toString();
        }
    }

    public static void main(String[] args) throws Exception {
        Path srcZip = Path.of("/usr/lib/jvm/java-17-openjdk-amd64/lib/src.zip");
        Path out = null;
        int evalBatches = 64;
        List<String> sets = new ArrayList<>();
        List<Run> runs = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--src-zip" -> srcZip = Path.of(args[++i]);
                case "--out" -> out = Path.of(args[++i]);
                case "--eval-batches" -> evalBatches = Integer.parseInt(args[++i]);
                case "--set" -> sets.add(args[++i]);
                default -> {
                    String[] p = args[i].trim().split("\\s+");
                    Map<String, String> o = new LinkedHashMap<>();
                    for (int j = 1; j < p.length; j++) {
                        String[] kv = p[j].split("=", 2);
                        o.put(kv[0], kv[1]);
                    }
                    if (!p[0].equals("scratch") && !p[0].equals("grow")) {
                        throw new IllegalArgumentException("a run is 'scratch ...' or 'grow ...', got " + args[i]);
                    }
                    runs.add(new Run(p[0], o));
                }
            }
        }
        int[][] corpus = corpus(srcZip);
        System.out.printf(Locale.ROOT, "corpus: %s java.base, %d train bytes, %d held-out validation bytes%n", srcZip,
                corpus[0].length, corpus[1].length);
        Recipe recipe = Recipe.resolve("builtin:tiny").with(sets);
        List<Map<String, Object>> results = new ArrayList<>();
        for (Run run : runs) {
            long t0 = System.nanoTime();
            Map<String, Object> r = run(run, recipe, corpus, evalBatches);
            r.put("wall_s", (System.nanoTime() - t0) / 1e9);
            results.add(r);
            System.out.printf(Locale.ROOT, "RESULT %s%n", json(r));
            if (out != null) {
                Files.writeString(out, json(r) + "\n", StandardCharsets.UTF_8, java.nio.file.StandardOpenOption.CREATE,
                        java.nio.file.StandardOpenOption.APPEND);
            }
        }
        table(results);
    }

    /** The first scratch run is the reference of the FLOPs ratio. */
    static void table(List<Map<String, Object>> results) {
        double ref = results.stream().filter(r -> r.get("kind").equals("scratch")).mapToDouble(r -> (double) r.get("flops"))
                .findFirst().orElse(Double.NaN);
        System.out.println();
        System.out.println("| run | steps | FLOPs | FLOPs ratio | val loss (full model) | val loss per scale |");
        System.out.println("|---|---|---|---|---|---|");
        for (Map<String, Object> r : results) {
            System.out.printf(Locale.ROOT, "| %s | %d | %.3e | %.3f | %.4f | %s |%n", r.get("run"), (long) r.get("steps"),
                    (double) r.get("flops"), (double) r.get("flops") / ref, (double) r.get("val_loss"), r.get("val_losses"));
        }
    }

    static Map<String, Object> run(Run run, Recipe recipe, int[][] corpus, int evalBatches) {
        long steps = run.lng("steps", 600);
        List<String> over = new ArrayList<>();
        over.add("steps=" + steps);
        if (run.opts.containsKey("lr")) {
            double lr = run.dbl("lr", 0);
            over.add("lr=" + lr);
            over.add("min_lr=" + run.dbl("min_lr", lr / 10));
        }
        if (run.opts.containsKey("warmup")) {
            over.add("warmup_steps=" + run.lng("warmup", 0));
        }
        over.add("growth_warmup_steps=" + run.lng("warm", 0));
        over.add("growth_lr_rewarm=" + run.dbl("rewarm", 0)); // the trainer re-warms the schedule at the growth step itself
        over.add("growth_new_chain_lr=" + run.dbl("newlr", 1));
        if (run.kind.equals("scratch") && run.opts.containsKey("weights")) {
            over.add("loss_weights=" + run.opts.get("weights"));
        }
        over.add("eval_every=0");
        over.add("log_every=" + steps);
        Recipe r = recipe.with(over);
        ColmConfig full = r.modelConfig(ByteTokenizer.VOCAB_SIZE);
        TrainSettings s = r.trainSettings();
        TokenBatchSource train = TextByteSource.open(corpus[0], "jdk-train", s.seqLen(), 0.0, TextByteSource.Split.TRAIN, s.seed(), 0, 1);
        TokenBatchSource val = TextByteSource.open(corpus[1], "jdk-val", s.seqLen(), 0.999, TextByteSource.Split.VALIDATION, s.seed(), 0, 1);
        PrintStream quiet = new PrintStream(OutputStream.nullOutputStream());
        Map<String, Object> res = new LinkedHashMap<>();
        res.put("run", run.label());
        res.put("kind", run.kind);
        res.put("steps", steps);
        LocalTrainer t;
        List<Map<String, Object>> phases = new ArrayList<>();
        if (run.kind.equals("scratch")) {
            t = new LocalTrainer(LocalTrainer.freshState(full, s.seed()), s, train, val, null, null, quiet, null);
            t.run(steps);
            phases.add(phase("full", t, steps));
        } else {
            long at = run.lng("at", steps / 2), freeze = run.lng("freeze", 0);
            List<Integer> chains = full.chains();
            int last = chains.get(chains.size() - 1);
            ColmConfig small = r.with(List.of("chains=" + join(chains.subList(0, chains.size() - 1)))).modelConfig(ByteTokenizer.VOCAB_SIZE);
            // the small phase depends only on these (and the recipe): runs that share them share it (copied, not re-trained)
            String key = small.chains() + " lr=" + s.lr() + " min_lr=" + s.minLr() + " warmup=" + s.warmupSteps() + " steps=" + steps
                    + " at=" + at;
            Object[] cached = SMALL.get(key);
            if (cached == null) {
                t = new LocalTrainer(LocalTrainer.freshState(small, s.seed()), s, train, val, null, null, quiet, null);
                t.run(at);
                double[] before = Evaluator.evaluate(t.model(), val, evalBatches);
                cached = new Object[] {copy(t.state()), before[before.length - 1], phase("small", t, at)};
                SMALL.put(key, cached);
            }
            res.put("val_loss_at_growth", cached[1]);
            @SuppressWarnings("unchecked")
            Map<String, Object> smallPhase = (Map<String, Object>) cached[2];
            phases.add(smallPhase);
            List<Double> weights = run.opts.containsKey("weights")
                    ? Arrays.stream(run.opts.get("weights").split(",")).map(Double::parseDouble).toList() : null;
            TrainingState grown = ChainExpansion.expand(copy((TrainingState) cached[0]), List.of(last), freeze > 0, weights, s.seed() + 1,
                    ChainExpansion.Init.parse(run.opts.getOrDefault("init", "auto")));
            t = new LocalTrainer(grown, s, train, val, null, null, quiet, null);
            long unfreezeAt = Math.min(steps, at + freeze);
            if (freeze > 0) {
                t.run(unfreezeAt);
                phases.add(phase("frozen", t, unfreezeAt - at));
            }
            if (unfreezeAt < steps) {
                TrainingState st = t.state();
                TrainingState open = new TrainingState(st.config(), st.params(), st.adamM(), st.adamV(), st.step(), st.tokensSeen(),
                        st.dataPosition(), 0, st.info());
                t = new LocalTrainer(open, s, train, val, null, null, quiet, null);
                t.run(steps);
                phases.add(phase("unfrozen", t, steps - unfreezeAt));
            }
        }
        double[] v = Evaluator.evaluate(t.model(), val, evalBatches);
        res.put("flops", t.trainFlops());
        res.put("val_loss", v[v.length - 1]);
        res.put("val_losses", Arrays.toString(Arrays.stream(v).map(x -> Math.round(x * 1e4) / 1e4).toArray()));
        res.put("lr", s.lr());
        List<Double> headNorms = new ArrayList<>();
        for (int c = 0; c < t.model().config().numChains(); c++) {
            io.catena.model.kernel.Mat h = t.state().params().mat("head.c" + c);
            double sq = 0;
            for (int i = 0; i < h.rows; i++) {
                for (int j = 0; j < h.cols; j++) {
                    sq += h.get(i, j) * h.get(i, j);
                }
            }
            headNorms.add(Math.round(Math.sqrt(sq) * 1e3) / 1e3);
        }
        res.put("head_norms", headNorms);
        res.put("phases", phases);
        return res;
    }

    private static final Map<String, Object[]> SMALL = new java.util.HashMap<>();

    private static TrainingState copy(TrainingState st) {
        return new TrainingState(st.config(), copy(st.params()), copy(st.adamM()), copy(st.adamV()), st.step(), st.tokensSeen(),
                st.dataPosition(), st.frozenChains(), st.info());
    }

    private static io.catena.model.Params copy(io.catena.model.Params p) {
        if (p == null) {
            return null;
        }
        io.catena.model.Params c = new io.catena.model.Params(p.layout(), p.dataType());
        c.copyFrom(p);
        return c;
    }

    private static Map<String, Object> phase(String name, LocalTrainer t, long steps) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("phase", name);
        m.put("steps", steps);
        m.put("chains", t.model().config().chains());
        m.put("step_flops", t.stepFlops());
        return m;
    }

    private static String join(List<Integer> l) {
        StringBuilder b = new StringBuilder();
        for (int x : l) {
            b.append(b.length() == 0 ? "" : ",").append(x);
        }
        return b.toString();
    }

    /**
     * java.base's .java files of the JDK source zip, sorted by path; a file whose path's CRC32 is 0 mod 10 goes to
     * validation. Train text capped at 6 MB, validation at 600 kB (more than a run reads).
     */
    static int[][] corpus(Path zip) throws IOException {
        TreeMap<String, byte[]> files = new TreeMap<>();
        try (ZipFile z = new ZipFile(zip.toFile())) {
            for (ZipEntry e : java.util.Collections.list(z.entries())) {
                String n = e.getName();
                if (n.startsWith("java.base/java/") && n.endsWith(".java") && !e.isDirectory()) {
                    try (InputStream in = z.getInputStream(e)) {
                        files.put(n, in.readAllBytes());
                    }
                }
            }
        }
        ByteArrayOutputStream train = new ByteArrayOutputStream(), val = new ByteArrayOutputStream();
        for (Map.Entry<String, byte[]> f : files.entrySet()) {
            CRC32 c = new CRC32();
            c.update(f.getKey().getBytes(StandardCharsets.UTF_8));
            ByteArrayOutputStream dst = c.getValue() % 10 == 0 ? val : train;
            if (dst.size() < (dst == val ? 600_000 : 6_000_000)) {
                dst.write(stripLicense(f.getValue()));
                dst.write('\n');
            }
        }
        return new int[][] {ByteTokenizer.encode(train.toByteArray()), ByteTokenizer.encode(val.toByteArray())};
    }

    /** Drops the leading license comment (the same 25 lines in every file would be memorised, not learned). */
    static byte[] stripLicense(byte[] src) {
        String s = new String(src, StandardCharsets.UTF_8);
        if (s.startsWith("/*")) {
            int end = s.indexOf("*/");
            if (end > 0) {
                s = s.substring(end + 2).stripLeading();
            }
        }
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String json(Map<String, Object> m) {
        StringBuilder b = new StringBuilder("{");
        m.forEach((k, v) -> {
            if (b.length() > 1) {
                b.append(", ");
            }
            b.append('"').append(k).append("\": ").append(value(v));
        });
        return b.append('}').toString();
    }

    @SuppressWarnings("unchecked")
    private static String value(Object v) {
        if (v instanceof Map<?, ?> mm) {
            return json((Map<String, Object>) mm);
        }
        if (v instanceof List<?> l) {
            StringBuilder b = new StringBuilder("[");
            for (Object o : l) {
                b.append(b.length() > 1 ? ", " : "").append(value(o));
            }
            return b.append(']').toString();
        }
        if (v instanceof Number) {
            return v.toString();
        }
        return '"' + String.valueOf(v).replace("\"", "'") + '"';
    }
}
