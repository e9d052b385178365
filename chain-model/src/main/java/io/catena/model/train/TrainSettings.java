package io.catena.model.train;

import io.catena.model.kernel.Gemm;
import io.catena.model.optim.AdamW;
import io.catena.model.optim.LrSchedule;

/** Training knobs of a recipe (see cluster-conf/recipes/*.properties for one comment per knob). */
public record TrainSettings(int batchSize, int seqLen, long steps, double lr, double minLr, long warmupSteps,
                            AdamW.Settings adamW, long seed, int evalEvery, int evalBatches, int logEvery,
                            int ckptEvery, double valFraction, int frozenChains, Gemm.Precision precision) {

    // ---- defaults: what a recipe that leaves a key out gets (Recipe only parses; the values live here) ----

    public static final int DEFAULT_BATCH_SIZE = 16;
    public static final int DEFAULT_SEQ_LEN = 128;
    public static final long DEFAULT_STEPS = 200;
    public static final double DEFAULT_LR = 1e-3;
    public static final long DEFAULT_SEED = 1234;
    public static final int DEFAULT_EVAL_EVERY = 100;
    public static final int DEFAULT_EVAL_BATCHES = 4;
    public static final int DEFAULT_LOG_EVERY = 10;
    /** 0: a checkpoint only at the end. */
    public static final int DEFAULT_CKPT_EVERY = 0;
    /** Share of the windows (or documents, for prepared data) held out for validation. */
    public static final double DEFAULT_VAL_FRACTION = 0.05;
    public static final int DEFAULT_FROZEN_CHAINS = 0;
    /**
     * fp32, or bf16: GEMM operands rounded to bf16 with float32 accumulation (oneDNN; a CPU with AVX512_BF16 or
     * AMX-BF16), everything else float32 (master weights, optimizer state, norms, softmax, loss, checkpoints, the
     * parameter server). A host that cannot run bf16 refuses the run (it does not fall back to fp32).
     */
    public static final Gemm.Precision DEFAULT_PRECISION = Gemm.Precision.FP32;

    /** min_lr when not given: a tenth of the peak. */
    public static double defaultMinLr(double lr) {
        return lr / 10;
    }

    /** warmup_steps when not given: a tenth of the run, at most 100 steps. */
    public static long defaultWarmupSteps(long steps) {
        return Math.min(100, steps / 10);
    }

    /** Without a precision: {@link #DEFAULT_PRECISION}. */
    public TrainSettings(int batchSize, int seqLen, long steps, double lr, double minLr, long warmupSteps, AdamW.Settings adamW, long seed,
                         int evalEvery, int evalBatches, int logEvery, int ckptEvery, double valFraction, int frozenChains) {
        this(batchSize, seqLen, steps, lr, minLr, warmupSteps, adamW, seed, evalEvery, evalBatches, logEvery, ckptEvery, valFraction,
                frozenChains, DEFAULT_PRECISION);
    }

    public TrainSettings {
        java.util.Objects.requireNonNull(precision, "precision");
        if (batchSize < 1 || seqLen < 1 || steps < 1) {
            throw new IllegalArgumentException("batch_size, seq_len and steps must be >= 1, got " + batchSize + ", " + seqLen + ", " + steps);
        }
        if (evalEvery < 0 || evalBatches < 1 || logEvery < 1 || ckptEvery < 0) {
            throw new IllegalArgumentException("eval_every >= 0, eval_batches >= 1, log_every >= 1, ckpt_every >= 0 required; got "
                    + evalEvery + ", " + evalBatches + ", " + logEvery + ", " + ckptEvery);
        }
        new LrSchedule(lr, minLr, warmupSteps, steps); // validates
    }

    public LrSchedule schedule() {
        return new LrSchedule(lr, minLr, warmupSteps, steps);
    }

    /**
     * The LR schedule of a run that starts at {@code step} from a checkpoint whose info is {@code info}: with
     * {@code restart}, or from scratch, this recipe's schedule; otherwise the checkpoint's schedule continued
     * ({@link LrSchedule#continuing}), so a resume with a larger --steps decays on from the rate it had reached instead
     * of jumping back up. Checkpoints without a recorded schedule are read by their {@code steps_planned}.
     */
    public LrSchedule scheduleResuming(java.util.Map<String, Object> info, long step, boolean restart) {
        LrSchedule next = schedule();
        if (restart || step == 0 || info == null) {
            return next;
        }
        LrSchedule previous = LrSchedule.fromMap(info.get("lr_schedule"));
        if (previous == null && info.get("steps_planned") instanceof Number planned && planned.longValue() >= 1) {
            previous = withSteps(planned.longValue()).schedule();
        }
        return previous == null ? next : LrSchedule.continuing(previous, step, next);
    }

    public TrainSettings withSteps(long newSteps) {
        return new TrainSettings(batchSize, seqLen, newSteps, lr, minLr, warmupSteps, adamW, seed, evalEvery, evalBatches,
                logEvery, ckptEvery, valFraction, frozenChains, precision);
    }

    public TrainSettings withPrecision(Gemm.Precision p) {
        return new TrainSettings(batchSize, seqLen, steps, lr, minLr, warmupSteps, adamW, seed, evalEvery, evalBatches,
                logEvery, ckptEvery, valFraction, frozenChains, p);
    }

    public TrainSettings withFrozenChains(int frozen) {
        return new TrainSettings(batchSize, seqLen, steps, lr, minLr, warmupSteps, adamW, seed, evalEvery, evalBatches,
                logEvery, ckptEvery, valFraction, frozen, precision);
    }
}
