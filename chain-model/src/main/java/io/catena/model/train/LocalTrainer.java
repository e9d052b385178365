package io.catena.model.train;

import io.catena.model.ColmConfig;
import io.catena.model.ColmModel;
import io.catena.model.FlopCount;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.data.TokenBatchSource;
import io.catena.model.io.CheckpointStore;
import io.catena.model.io.TrainingState;
import io.catena.model.kernel.Gemm;
import io.catena.model.kernel.NativeSetup;
import io.catena.model.optim.AdamW;
import io.catena.model.optim.LrSchedule;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * The single-process trainer: the correctness baseline every distributed mode must match with the
 * same tokens per step. Reads windows from a {@link TokenBatchSource}, runs the multi-chain loss
 * forward/backward, clips and applies AdamW, evaluates every scale on the validation split, prints
 * a progress line, appends metrics as JSONL and writes checkpoints that resume bit-for-bit.
 */
public final class LocalTrainer {

    private final ColmConfig cfg;
    private final TrainSettings settings;
    private final TokenBatchSource train;
    private final TokenBatchSource val;
    private final String checkpointRoot;
    private final Path metricsFile;
    private final PrintStream out;
    private final Map<String, Object> info;
    private final Params params;
    private final Params grads;
    private final Params adamM;
    private final Params adamV;
    private final AdamW adamW;
    private LrSchedule schedule;
    private final ColmModel model;
    private final int[] window;
    private final int[] inputs;
    private final int[] targets;
    private final CheckpointStore store = new CheckpointStore();
    private long step;
    private long tokensSeen;
    private final int frozenChains;
    private double[] lastEval;
    /** Checkpoint info key: matmul FLOPs of every training step so far, across growths ({@link FlopCount}). */
    public static final String TRAIN_FLOPS = "train_flops";
    private final long stepFlops;
    private double trainFlops;

    /** Starts from {@code state} (a fresh init or a loaded checkpoint); the train source is moved to its data position. */
    public LocalTrainer(TrainingState state, TrainSettings settings, TokenBatchSource train, TokenBatchSource val,
                        String checkpointRoot, Path metricsFile, PrintStream out, Map<String, Object> info) {
        this.cfg = state.config();
        this.settings = settings;
        Gemm.checkSupported(settings.precision()); // precision=bf16 on a host without it: refused before anything runs
        this.train = train;
        this.val = val;
        this.checkpointRoot = checkpointRoot;
        this.metricsFile = metricsFile;
        this.out = out;
        // the state's own record (a growth's expanded_from_chains / expanded_at_step, the FLOPs so far) stays, the caller's keys win
        Map<String, Object> merged = new LinkedHashMap<>(state.info());
        if (info != null) {
            merged.putAll(info);
        }
        this.info = merged;
        if (train.seqLen() != settings.seqLen()) {
            throw new IllegalArgumentException("data windows have seq_len " + train.seqLen() + " but the recipe says " + settings.seqLen());
        }
        if (train.vocabSize() > cfg.vocabSize()) {
            throw new IllegalArgumentException("data has " + train.vocabSize() + " token ids but the model's vocab_size is " + cfg.vocabSize());
        }
        this.params = state.params();
        this.grads = new Params(params.layout(), DataType.FLOAT);
        this.adamM = state.hasOptimizerState() ? state.adamM() : new Params(params.layout(), DataType.FLOAT);
        this.adamV = state.hasOptimizerState() ? state.adamV() : new Params(params.layout(), DataType.FLOAT);
        this.frozenChains = Math.max(state.frozenChains(), settings.frozenChains());
        this.adamW = AdamW.forState(params.layout(), settings.adamW(), frozenChains, state.info()); // a growth's warm-up
        this.stepFlops = FlopCount.trainingStep(cfg, settings.batchSize(), settings.seqLen(), frozenChains).total();
        this.trainFlops = state.info().get(TRAIN_FLOPS) instanceof Number f ? f.doubleValue() : 0;
        this.schedule = settings.scheduleResuming(state.info(), state.step(), false); // a resume continues its schedule
        this.model = new ColmModel(cfg, params, grads, settings.batchSize(), settings.seqLen());
        int t = settings.seqLen();
        this.window = new int[settings.batchSize() * (t + 1)];
        this.inputs = new int[settings.batchSize() * t];
        this.targets = new int[settings.batchSize() * t];
        this.step = state.step();
        this.tokensSeen = state.tokensSeen();
        train.seek(state.dataPosition());
        if (checkpointRoot != null) {
            List<String> swept = store.sweepLeftovers(checkpointRoot);
            if (!swept.isEmpty()) {
                out.println("removed leftovers of interrupted checkpoint writes under " + checkpointRoot + ": " + swept);
            }
        }
        if (metricsFile != null && state.step() > 0) {
            int dropped = MetricsLog.truncateAfter(metricsFile, state.step());
            if (dropped > 0) {
                out.println("metrics: dropped " + dropped + " records after step " + state.step() + " from " + metricsFile
                        + " (the run they described was not checkpointed; this one recomputes those steps)");
            }
        }
    }

    /** A newly initialised model (no optimizer state yet). */
    public static TrainingState freshState(ColmConfig cfg, long seed) {
        Params p = new Params(new ParamLayout(cfg), DataType.FLOAT);
        p.initialize(seed, 0);
        return new TrainingState(cfg, p, null, null, 0, 0, 0, 0, Map.of());
    }

    public long step() {
        return step;
    }

    /** {@code --lr-schedule restart}: the recipe's schedule from step 0's point of view, even on a resume. */
    public LocalTrainer restartLrSchedule() {
        this.schedule = settings.schedule();
        return this;
    }

    public LrSchedule lrSchedule() {
        return schedule;
    }

    /** Replaces the LR schedule from the next step on (a benchmark's re-warmed schedule after a growth). */
    public LocalTrainer lrSchedule(LrSchedule s) {
        this.schedule = java.util.Objects.requireNonNull(s);
        return this;
    }

    /** Matmul FLOPs of all training steps so far (this model's and, across growths and resumes, its predecessors'). */
    public double trainFlops() {
        return trainFlops;
    }

    /** Matmul FLOPs of one training step of this trainer (frozen chains' backward skipped). */
    public long stepFlops() {
        return stepFlops;
    }

    /** The optimizer (its growth warm-up, its trainable range). */
    public AdamW optimizer() {
        return adamW;
    }

    public double[] lastEval() {
        return lastEval;
    }

    public ColmModel model() {
        return model;
    }

    public TrainingState state() {
        return new TrainingState(cfg, params, adamM, adamV, step, tokensSeen, train.position(), frozenChains, info());
    }

    private Map<String, Object> info() {
        Map<String, Object> m = new LinkedHashMap<>(info);
        m.put("data", train.describe());
        Map<String, Object> gemm = new LinkedHashMap<>(NativeSetup.report().toMap()); // the native path this process trained on
        gemm.put("precision", settings.precision().key());
        m.put("gemm", gemm);
        m.put("seed", settings.seed());
        m.put("steps_planned", settings.steps());
        m.put("lr_schedule", schedule.toMap()); // a resume with another --steps continues it
        m.put(TRAIN_FLOPS, trainFlops);
        return m;
    }

    /** Trains until step == untilStep (or the recipe's steps when untilStep <= 0). Returns the final per-scale train losses. */
    public double[] run(long untilStep) {
        long last = untilStep > 0 ? untilStep : settings.steps();
        double[] losses = new double[cfg.numChains()];
        if (!engineRecorded) {
            Map<String, Object> engine = new LinkedHashMap<>(NativeSetup.report().toMap()); // which GEMM path and how fast, once per run
            engine.put("precision", settings.precision().key());
            if (settings.precision() == Gemm.Precision.BF16) {
                engine.put("bf16_gemm", io.catena.model.kernel.Bf16Policy.describe());
            }
            metric("engine", engine);
            engineRecorded = true;
            guard.baseline(AdamW.norm(params)); // the parameters this run starts from
        }
        long startNanos = System.nanoTime();
        long startStep = step;
        long windowTokens = 0;
        long windowStart = System.nanoTime();
        while (step < last) {
            losses = trainStep();
            windowTokens += (long) settings.batchSize() * settings.seqLen();
            if (step % settings.logEvery() == 0 || step == last) {
                double secs = (System.nanoTime() - windowStart) / 1e9;
                double tps = windowTokens / Math.max(secs, 1e-9);
                double elapsed = (System.nanoTime() - startNanos) / 1e9;
                double eta = (last - step) * elapsed / Math.max(1, step - startStep);
                out.println(Progress.line(step, last, tps, losses, schedule.at(step), "", eta));
                Map<String, Object> fields = new LinkedHashMap<>();
                fields.put("loss", losses);
                fields.put("lr", schedule.at(step));
                fields.put("grad_norm", lastGradNorm);
                fields.put("flops", trainFlops);
                fields.put("tok_per_s", tps);
                fields.put("elapsed_s", elapsed);
                fields.put("peak_rss_mb", MetricsLog.peakRssMb());
                fields.put("skipped_nonfinite", guard.skipped());
                metric("train", fields);
                checkDivergence();
                windowTokens = 0;
                windowStart = System.nanoTime();
            }
            if (settings.evalEvery() > 0 && step % settings.evalEvery() == 0 && step != last) {
                evaluateAndReport();
            }
            if (settings.ckptEvery() > 0 && step % settings.ckptEvery() == 0 && checkpointRoot != null && step != last) {
                checkpoint();
            }
        }
        if (step > startStep || lastEval == null) {
            evaluateAndReport();
        }
        if (checkpointRoot != null) {
            checkpoint();
        }
        return losses;
    }

    private double lastGradNorm;
    private double[] lastLosses;
    private long checkedStep = -1;
    private NumericalGuard guard = NumericalGuard.defaults();
    private boolean engineRecorded;

    /**
     * One optimizer step on the next batch. A non-finite loss or gradient changes nothing: the guard stops the
     * run, or skips the step within the --skip-nonfinite budget (the batch is consumed, the step counted).
     */
    public double[] trainStep() {
        train.nextBatch(window, settings.batchSize());
        splitWindows(window, settings.batchSize(), settings.seqLen(), inputs, targets);
        double[] losses;
        Gemm.Precision outer = Gemm.usePrecision(settings.precision()); // the recipe's precision for this step's GEMMs
        try {
            losses = model.forwardBackward(inputs, targets, 0, frozenChains, false, 1.0);
        } finally {
            Gemm.usePrecision(outer);
        }
        step++;
        double norm = adamW.gradientNorm(grads);
        if (guard.accept(step, norm, losses)) {
            adamW.stepWithNorm(params, grads, adamM, adamV, step, schedule.at(step), norm);
        } else {
            out.println("step " + step + ": non-finite gradient (norm " + norm + "), step skipped (" + guard.skipped()
                    + " of --skip-nonfinite)");
        }
        lastGradNorm = norm;
        lastLosses = losses;
        trainFlops += stepFlops;
        tokensSeen += (long) settings.batchSize() * settings.seqLen();
        return losses;
    }

    /** Replaces the numerical guard (divergence factor, non-finite steps to skip); the default stops at the first. */
    public LocalTrainer guard(NumericalGuard g) {
        this.guard = java.util.Objects.requireNonNull(g);
        return this;
    }

    /** The guard's divergence check on the current loss and parameter norm (each log step and before each checkpoint). */
    private void checkDivergence() {
        if (lastLosses != null && checkedStep != step) { // a checkpoint at a log step is checked once
            guard.check(step, lastLosses[lastLosses.length - 1], AdamW.norm(params));
            checkedStep = step;
        }
    }

    /** Splits [B, T+1] windows into inputs [B, T] and next-token targets [B, T]. */
    public static void splitWindows(int[] window, int batch, int seqLen, int[] inputs, int[] targets) {
        for (int b = 0; b < batch; b++) {
            System.arraycopy(window, b * (seqLen + 1), inputs, b * seqLen, seqLen);
            System.arraycopy(window, b * (seqLen + 1) + 1, targets, b * seqLen, seqLen);
        }
    }

    /** Mean validation loss per scale over the first eval_batches batches of the validation split ({@link Evaluator}). */
    public double[] evaluate() {
        if (val == null) {
            return new double[0];
        }
        // always fp32, whatever the training precision: the figure catena eval gives for the (fp32) checkpoint
        Gemm.Precision outer = Gemm.usePrecision(Gemm.Precision.FP32);
        try {
            return Evaluator.evaluate(model, val, settings.evalBatches());
        } finally {
            Gemm.usePrecision(outer);
        }
    }

    private void evaluateAndReport() {
        lastEval = evaluate();
        if (lastEval.length == 0) {
            return;
        }
        double[] ppl = new double[lastEval.length];
        out.println(Progress.evalLine(step, lastEval, ppl));
        metric("eval", Map.of("val_loss", lastEval, "val_ppl", ppl));
    }

    private void metric(String kind, Map<String, Object> fields) {
        if (metricsFile == null) {
            return;
        }
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("kind", kind);
        m.put("step", step);
        m.put("tokens", tokensSeen);
        m.put("chains", cfg.chains());
        m.putAll(fields);
        MetricsLog.append(metricsFile, m);
    }

    /** Writes a checkpoint under the checkpoint root; returns its directory. */
    public String checkpoint() {
        checkDivergence(); // never write a diverged model
        String dir = store.save(checkpointRoot, state());
        out.println("checkpoint " + dir);
        return dir;
    }

    public static List<Double> toList(double[] a) {
        List<Double> l = new ArrayList<>();
        for (double x : a) {
            l.add(x);
        }
        return l;
    }
}
