package io.catena.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.catena.model.ColmConfig;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.kernel.ActivationMemory;
import io.catena.model.kernel.Parallel;
import io.catena.model.pipeline.InMemoryStageLink;
import io.catena.model.pipeline.PipelineRunner;
import io.catena.model.pipeline.PipelineSchedule;
import io.catena.model.pipeline.PipelineStage;
import io.catena.model.pipeline.StagePlan;
import java.io.File;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * Pipeline bubble (issue 6): two stages of an 8-block and of a 24-block CoLM, one thread and one core each (run with
 * OMP_NUM_THREADS=1), linked in memory, train on a global batch of 16 sequences cut into m micro-batches.
 * Per stage and step the runner times compute, waiting for the neighbour, and sending. The measured
 * bubble is the share of stage-time not spent computing, 1 - sum(compute) / (p x step wall time), next to
 * GPipe's theory (p-1)/(m+p-1) — which assumes equal stages and free transfers, so the stage imbalance
 * (the cost model's and the measured one) is reported too, with the bubble the same schedule has at that imbalance:
 * 1 - sum(compute) / (p x (m+p-1) x the slower stage's time per micro-batch), and the bubble of the critical path
 * when each op takes its measured time and transfers are free (the runner's per-op trace replayed through
 * {@link PipelineSchedule#simulatedMakespan}): the gap between it and the measured bubble is what the links cost, the
 * gap between it and the theory what op times (imbalance, jitter) cost. Activation memory per stage is the
 * engine's allocation count across building the stage, with and without recomputation. Every configuration runs
 * once per round; the table shows the round with the median bubble and lists every round's.
 *
 * <pre>benchmarks/run-pipeline.sh [STEPS] [ROUNDS]   (prints a markdown table, writes benchmarks/results/pipeline.json)</pre>
 */
public final class PipelineBench {
    static final int STAGES = 2;
    static final int GLOBAL_BATCH = 16;
    static final int SEQ = 64;
    static final int[] MICRO_BATCHES = {2, 4, 8};

    public static void main(String[] args) throws Exception {
        int steps = args.length > 0 ? Integer.parseInt(args[0]) : 12;
        String out = args.length > 1 ? args[1] : null;
        int rounds = args.length > 2 ? Integer.parseInt(args[2]) : 1;
        Parallel.setThreads(1);
        int[] layerCounts = {8, 24}; // 8 blocks: the LM head leaves the last stage 3-11% slower; 24: a third as large a share
        // rounds run every configuration once each, so a slow spell of the machine hits one round of all, not all rounds of one
        Map<String, List<Map<String, Object>>> byConfig = new LinkedHashMap<>();
        for (int round = 1; round <= rounds; round++) {
            for (int layers : layerCounts) {
                ColmConfig cfg = config(layers);
                Params params = new Params(new ParamLayout(cfg), DataType.FLOAT);
                params.initialize(1234, 0);
                Random rnd = new Random(7);
                int[] tokens = new int[GLOBAL_BATCH * SEQ];
                int[] targets = new int[GLOBAL_BATCH * SEQ];
                for (int i = 0; i < tokens.length; i++) {
                    tokens[i] = rnd.nextInt(cfg.vocabSize());
                    targets[i] = rnd.nextInt(cfg.vocabSize());
                }
                for (PipelineSchedule.Kind kind : PipelineSchedule.Kind.values()) {
                    for (int m : MICRO_BATCHES) {
                        StagePlan fitted = StagePlan.plan(cfg, STAGES, GLOBAL_BATCH / m, SEQ, kind, m);
                        StagePlan balanced = StagePlan.plan(cfg, STAGES, GLOBAL_BATCH / m, SEQ);
                        boolean same = fitted.stage(0).endUnit() == balanced.stage(0).endUnit();
                        // the split the trainer uses (fitted to the schedule) against the balanced split, in the same round,
                        // alternating which runs first
                        Map<String, Object> rb = same || round % 2 == 1 ? null : run(cfg, params, balanced, kind, m, steps, tokens, targets);
                        Map<String, Object> r = run(cfg, params, fitted, kind, m, steps, tokens, targets);
                        if (!same && rb == null) {
                            rb = run(cfg, params, balanced, kind, m, steps, tokens, targets);
                        }
                        r.put("round", round);
                        r.put("split", fitted.stage(0).unitsLabel() + " | " + fitted.stage(1).unitsLabel());
                        r.put("simulated_step_vs_balanced", fitted.simulatedStepVersusBalanced());
                        r.put("balanced_split", balanced.stage(0).unitsLabel() + " | " + balanced.stage(1).unitsLabel());
                        r.put("balanced_bubble", same ? r.get("bubble") : rb.get("bubble"));
                        r.put("step_wall_vs_balanced", same ? 1.0 : (double) r.get("step_wall_s") / (double) rb.get("step_wall_s"));
                        byConfig.computeIfAbsent(layers + "/" + kind.label() + "/" + m, k -> new ArrayList<>()).add(r);
                        System.err.printf(Locale.ROOT, "round %d, %d blocks, %s m=%d: bubble %.3f (%s), step wall %.3f x the balanced split's%n",
                                round, layers, kind.label(), m, r.get("bubble"), r.get("split"), r.get("step_wall_vs_balanced"));
                    }
                }
            }
        }
        Map<String, Object> all = new LinkedHashMap<>();
        all.put("steps_measured", steps);
        all.put("rounds", rounds);
        List<Object> models = new ArrayList<>();
        for (int layers : layerCounts) {
            models.add(report(layers, byConfig));
        }
        all.put("models", models);
        if (out != null) {
            new ObjectMapper().writerWithDefaultPrettyPrinter().writeValue(new File(out), all);
        }
        System.exit(0);
    }

    static ColmConfig config(int layers) {
        return new ColmConfig(512, 32, List.of(2, 2), layers, 0, 4.0, ColmConfig.Activation.GELU,
                ColmConfig.NormKind.LAYERNORM, 1e-5, 10000.0, ColmConfig.Variant.COLM, SEQ, true, List.of(0.5, 0.5));
    }

    /** One model's table: per configuration, the round with the median bubble, and every round's bubble. */
    static Map<String, Object> report(int layers, Map<String, List<Map<String, Object>>> byConfig) {
        ColmConfig cfg = config(layers);
        StagePlan plan = StagePlan.plan(cfg, STAGES, GLOBAL_BATCH / 4, SEQ);
        System.out.println("\n" + layers + " blocks; balanced " + plan.describe());
        System.out.println("| schedule | m | split (stage 0 \\| stage 1) | theory (p-1)/(m+p-1) | measured bubble (median round) | diff "
                + "| bubble of every round | critical path of the measured ops | balanced split's bubble, same round "
                + "| step wall vs the balanced split (every round) | measured stage imbalance | theory at that imbalance "
                + "| compute s/step (0, 1) | wait s/step (0, 1) | activation MB/stage (0, 1) | with recompute |");
        System.out.println("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        List<Map<String, Object>> rows = new ArrayList<>();
        for (PipelineSchedule.Kind kind : PipelineSchedule.Kind.values()) {
            for (int m : MICRO_BATCHES) {
                List<Map<String, Object>> rounds = new ArrayList<>(byConfig.get(layers + "/" + kind.label() + "/" + m));
                List<Double> bubbles = new ArrayList<>();
                List<Double> vsBalanced = new ArrayList<>();
                for (Map<String, Object> r : rounds) {
                    bubbles.add((Double) r.get("bubble"));
                    vsBalanced.add((Double) r.get("step_wall_vs_balanced"));
                }
                rounds.sort(java.util.Comparator.comparingDouble(r -> (Double) r.get("bubble")));
                Map<String, Object> r = new LinkedHashMap<>(rounds.get(rounds.size() / 2));
                r.put("bubble_every_round", bubbles);
                r.put("step_wall_vs_balanced_every_round", vsBalanced);
                rows.add(r);
                double[] c = (double[]) r.get("compute_s");
                double[] w = (double[]) r.get("wait_s");
                double[] a = (double[]) r.get("activation_mb");
                double[] ar = (double[]) r.get("activation_mb_recompute");
                double theory = (double) r.get("theory");
                double bubble = (double) r.get("bubble");
                boolean same = r.get("split").equals(r.get("balanced_split"));
                System.out.printf(Locale.ROOT, "| %s | %d | %s | %.3f | %.3f | %+.1f%% | %s | %.3f | %s | %s | %.3f | %.3f | %.3f, %.3f | %.3f, %.3f | %.1f, %.1f | %.1f, %.1f |%n",
                        kind.label(), m, same ? "balanced" : r.get("split"), theory, bubble, 100 * (bubble - theory) / theory, joined(bubbles),
                        r.get("bubble_critical_path"), same ? "(same split)" : String.format(Locale.ROOT, "%.3f", (double) r.get("balanced_bubble")),
                        same ? "(same split)" : joined(vsBalanced), r.get("measured_imbalance"), r.get("theory_at_imbalance"), c[0], c[1], w[0], w[1],
                        a[0], a[1], ar[0], ar[1]);
            }
        }
        Map<String, Object> res = new LinkedHashMap<>();
        res.put("config", cfg.toString());
        res.put("plan", plan.describe());
        res.put("cost_model_imbalance", plan.imbalance());
        res.put("runs", rows);
        return res;
    }

    static String joined(List<Double> xs) {
        StringBuilder b = new StringBuilder();
        for (double x : xs) {
            b.append(b.length() == 0 ? "" : " / ").append(String.format(Locale.ROOT, "%.3f", x));
        }
        return b.toString();
    }

    static Map<String, Object> run(ColmConfig cfg, Params params, StagePlan plan, PipelineSchedule.Kind kind, int m, int steps, int[] tokens,
                                   int[] targets) throws Exception {
        int microBatch = GLOBAL_BATCH / m;
        double[] mem = new double[STAGES];
        double[] memRe = new double[STAGES];
        PipelineStage[] stages = new PipelineStage[STAGES];
        Params grads = new Params(params.layout(), DataType.FLOAT);
        for (int s = 0; s < STAGES; s++) {
            int slots = PipelineSchedule.slots(kind, STAGES, s, m);
            long before = ActivationMemory.allocatedBytes();
            new PipelineStage(cfg, params, new Params(params.layout(), DataType.FLOAT), plan, s, microBatch, SEQ, slots, true);
            memRe[s] = (ActivationMemory.allocatedBytes() - before) / 1e6;
            before = ActivationMemory.allocatedBytes();
            stages[s] = new PipelineStage(cfg, params, grads, plan, s, microBatch, SEQ, slots, false);
            mem[s] = (ActivationMemory.allocatedBytes() - before) / 1e6;
        }
        InMemoryStageLink.Pair link = InMemoryStageLink.connect(0, m);
        PipelineRunner[] runners = {
                new PipelineRunner(stages[0], kind, STAGES, m, null, link.upstream(), 60_000),
                new PipelineRunner(stages[1], kind, STAGES, m, link.downstream(), null, 60_000)};
        ExecutorService pool = Executors.newFixedThreadPool(STAGES);
        double[] compute = new double[STAGES];
        double[] wait = new double[STAGES];
        double wall = 0;
        double criticalPath = 0;
        List<List<PipelineSchedule.Op>> schedules = List.of(runners[0].ops(), runners[1].ops());
        try {
            int warmup = Math.max(3, steps / 4); // JIT tiers and page faults settle before the measured steps
            for (int step = 1; step <= warmup + steps; step++) {
                long stepNo = step;
                List<Future<PipelineRunner.StepResult>> f = new ArrayList<>();
                for (int s = 0; s < STAGES; s++) {
                    PipelineRunner r = runners[s];
                    f.add(pool.submit(() -> r.runStep(stepNo, tokens, targets, 0)));
                }
                PipelineRunner.StepResult[] res = new PipelineRunner.StepResult[STAGES];
                for (int s = 0; s < STAGES; s++) {
                    res[s] = f.get(s).get(120, TimeUnit.SECONDS);
                }
                if (step > warmup) {
                    long stepWall = 0;
                    for (int s = 0; s < STAGES; s++) {
                        compute[s] += res[s].timing().computeNanos() / 1e9;
                        wait[s] += (res[s].timing().waitNanos() + res[s].timing().sendNanos()) / 1e9;
                        stepWall = Math.max(stepWall, res[s].timing().totalNanos());
                    }
                    wall += stepWall / 1e9;
                    criticalPath += replay(runners, schedules, m) / 1e9;
                }
            }
        } finally {
            pool.shutdownNow();
        }
        double sumCompute = 0;
        for (int s = 0; s < STAGES; s++) {
            compute[s] /= steps;
            wait[s] /= steps;
            sumCompute += compute[s];
        }
        wall /= steps;
        criticalPath /= steps;
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("schedule", kind.label());
        r.put("m", m);
        r.put("micro_batch", microBatch);
        r.put("theory", PipelineSchedule.theoreticalBubble(STAGES, m));
        r.put("bubble", 1 - sumCompute / (STAGES * wall));
        r.put("step_wall_s", wall);
        // the same ops with their measured durations and free, instant transfers: what the schedule and the op times alone cost
        r.put("bubble_critical_path", 1 - sumCompute / (STAGES * criticalPath));
        r.put("compute_s", compute);
        r.put("wait_s", wait);
        r.put("measured_imbalance", Math.max(compute[0], compute[1]) / Math.min(compute[0], compute[1]));
        // the same schedule when every micro-batch op takes the slower stage's time: wall = (m+p-1) x max_s(c_s / m)
        double slowest = Math.max(compute[0], compute[1]) / m;
        r.put("theory_at_imbalance", 1 - sumCompute / (STAGES * (m + STAGES - 1) * slowest));
        r.put("activation_mb", mem);
        r.put("activation_mb_recompute", memRe);
        return r;
    }

    /** The step's length had each op taken its measured compute time and every transfer been free and instant. */
    static double replay(PipelineRunner[] runners, List<List<PipelineSchedule.Op>> schedules, int m) {
        double[][] nanos = new double[STAGES][2 * m];
        for (int s = 0; s < STAGES; s++) {
            long[] trace = runners[s].lastStepTrace();
            List<PipelineSchedule.Op> ops = schedules.get(s);
            for (int i = 0; i < ops.size(); i++) {
                PipelineSchedule.Op op = ops.get(i);
                nanos[s][(op.forward() ? 0 : m) + op.micro()] = trace[4 * i + 2] - trace[4 * i + 1];
            }
        }
        return PipelineSchedule.simulatedMakespan(schedules, m, (s, op) -> nanos[s][(op.forward() ? 0 : m) + op.micro()]);
    }
}
