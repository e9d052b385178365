package io.catena.model.cli;

import io.catena.model.ChainExpansion;
import io.catena.model.data.ByteTokenizer;
import io.catena.model.data.DataSources;
import io.catena.model.data.TextByteSource;
import io.catena.model.infer.Generator;
import io.catena.model.io.CheckpointStore;
import io.catena.model.io.TrainingState;
import io.catena.model.train.LocalTrainer;
import io.catena.model.train.Recipe;
import io.catena.model.train.TrainSettings;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * {@code catena demo-local}: the whole single-process story on bundled data — train a 2-chain CoLM, grow
 * it to 3 chains (old chains frozen, new head rows zero), train on, evaluate every scale and generate
 * at every k. Everything lands under the output directory (checkpoints, metrics.jsonl, summary.txt).
 */
final class Demo {
    private final PrintStream out;

    Demo(PrintStream out) {
        this.out = out;
    }

    void run(Args a) {
        if (a.has("help")) {
            out.println("catena demo-local [--out demo-local-out] [--steps 400] [--grow-steps 200]");
            return;
        }
        Path outDir = Path.of(a.get("out", "demo-local-out")).toAbsolutePath();
        long t0 = System.nanoTime();
        Recipe recipe = CatenaCli.loadRecipe("builtin:tiny");
        TrainSettings s = recipe.trainSettings();
        s = s.withSteps(a.integer("steps", (int) s.steps()));
        int[] corpus = DataSources.readText(DataSources.BUILTIN_GENESIS);
        var train = TextByteSource.open(corpus, DataSources.BUILTIN_GENESIS, s.seqLen(), s.valFraction(), TextByteSource.Split.TRAIN, s.seed(), 0, 1);
        var val = TextByteSource.open(corpus, DataSources.BUILTIN_GENESIS, s.seqLen(), s.valFraction(), TextByteSource.Split.VALIDATION, s.seed(), 0, 1);
        double unigram = ByteTokenizer.unigramEntropy(corpus);
        out.println("== catena demo-local: CoLM on Genesis (KJV, " + corpus.length + " byte tokens), output in " + outDir);
        out.printf(Locale.ROOT, "   unigram entropy of the text: %.3f nats/token (what a model that ignores context scores)%n", unigram);

        out.println("\n== 1/4 train a 2-chain CoLM " + recipe.modelConfig(ByteTokenizer.VOCAB_SIZE).chains() + " for " + s.steps() + " steps");
        String ckpt1 = outDir.resolve("ckpt-2chains").toString();
        Path metrics = outDir.resolve("metrics.jsonl");
        TrainingState st = LocalTrainer.freshState(recipe.modelConfig(ByteTokenizer.VOCAB_SIZE), s.seed());
        LocalTrainer t1 = new LocalTrainer(st, s, train, val, ckpt1, metrics, out, Map.of("phase", "train-2-chains"));
        t1.run(s.steps());
        double[] before = t1.lastEval();

        long growSteps = a.integer("grow-steps", (int) (s.steps() / 2));
        out.println("\n== 2/4 grow to 3 chains (+2 heads), old chains frozen; the new chain's LM-head rows start at zero");
        TrainingState grown = ChainExpansion.expand(t1.state(), List.of(2), true, null, 7);
        TrainSettings s2 = s.withSteps(s.steps() + growSteps);
        LocalTrainer t2 = new LocalTrainer(grown, s2, train, val, outDir.resolve("ckpt-3chains").toString(), metrics, out,
                Map.of("phase", "train-after-growth"));
        double[] atGrowth = t2.evaluate();
        out.printf(Locale.ROOT, "   at growth: k=1 %.4f (was %.4f), k=2 %.4f (was %.4f), k=3 %.4f (= k=2: new head rows are zero)%n",
                atGrowth[0], before[0], atGrowth[1], before[1], atGrowth[2]);
        t2.run(s2.steps());
        double[] after = t2.lastEval();

        out.println("\n== 3/4 evaluate every scale (each k runs only its own chains)");
        TrainingState fin = new CheckpointStore().load(outDir.resolve("ckpt-3chains").toString(), false);
        List<Integer> scales = List.of(1, 2, 3);
        var evalSrc = TextByteSource.open(corpus, DataSources.BUILTIN_GENESIS, s.seqLen(), s.valFraction(), TextByteSource.Split.VALIDATION, 0, 0, 1);
        double[] losses = CatenaCli.evaluate(fin, evalSrc, s.batchSize(), s.evalBatches(), scales);
        String table = CatenaCli.evalTable(fin, scales, losses);
        out.print(table);

        out.println("\n== 4/4 generate at k = 1, 2, 3 chains (same prompt, seed, temperature 0.7)");
        String prompt = "And God said";
        StringBuilder gens = new StringBuilder();
        for (int k = 1; k <= 3; k++) {
            var o = new Generator.Options(120, k, 0.7, 20, 3, new TreeMap<>(), false, ByteTokenizer.EOS);
            var r = new Generator(fin.config(), fin.params()).generate(ByteTokenizer.encode(prompt.getBytes(StandardCharsets.UTF_8)), o);
            String text = prompt + new String(ByteTokenizer.decode(r.tokens(), 0, r.tokens().length), StandardCharsets.UTF_8);
            String line = "k=" + k + ": " + text.replace('\n', ' ');
            out.println(line);
            gens.append(line).append('\n');
        }
        double secs = (System.nanoTime() - t0) / 1e9;
        String summary = String.format(Locale.ROOT, """
                catena demo-local summary (%.0f s)
                unigram entropy %.3f nats/token
                after %d steps with 2 chains: val loss k=1 %.4f, k=2 %.4f
                after growth to 3 chains and %d more steps (old chains frozen): k=1 %.4f, k=2 %.4f, k=3 %.4f
                %s
                %s""", secs, unigram, s.steps(), before[0], before[1], growSteps, after[0], after[1], after[2], table, gens);
        CatenaCli.writeString(outDir.resolve("summary.txt"), summary);
        out.println("\n" + summary);
        out.println("wrote " + outDir.resolve("summary.txt") + ", metrics " + metrics + ", checkpoints under " + outDir);
    }
}
