package io.catena.model.train;

import io.catena.model.kernel.Gemm;
import io.catena.model.optim.AdamW;
import io.catena.model.optim.LrSchedule;

/** Training knobs of a recipe (see cluster-conf/recipes/*.properties for one comment per knob). */
public record TrainSettings(int batchSize, int seqLen, long steps, double lr, double minLr, long warmupSteps,
                            AdamW.Settings adamW, long seed, int evalEvery, int evalBatches, int logEvery,
                            int ckptEvery, double valFraction, int frozenChains, double growthLrRewarm,
                            Gemm.Precision precision) {

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
     * After a growth the LR schedule restarts at this share of the peak lr, capped at 3x the share of the run still
     * ahead ({@link LrSchedule#REWARM_PER_SHARE_LEFT}: a late growth restarts lower), and decays by a cosine to min_lr
     * at the last step, instead of going on from the (decayed) rate it had reached (0: go on). 1.0, the growth recipe
     * of benchmarks/run-growth.sh: on the tiny recipe it took a {2,2} model grown to {2,2,2} after step 330 of 518 from
     * 1.646 to 1.605 validation loss; the cap took a growth after step 600 of 648 from 1.5912 to 1.5667 (RESULTS.md
     * "Growth").
     */
    public static final double DEFAULT_GROWTH_LR_REWARM = 1.0;

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

    /** Without growth_lr_rewarm and precision: their defaults. */
    public TrainSettings(int batchSize, int seqLen, long steps, double lr, double minLr, long warmupSteps, AdamW.Settings adamW, long seed,
                         int evalEvery, int evalBatches, int logEvery, int ckptEvery, double valFraction, int frozenChains) {
        this(batchSize, seqLen, steps, lr, minLr, warmupSteps, adamW, seed, evalEvery, evalBatches, logEvery, ckptEvery, valFraction,
                frozenChains, DEFAULT_GROWTH_LR_REWARM, DEFAULT_PRECISION);
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
        if (!(growthLrRewarm >= 0 && growthLrRewarm <= 10)) {
            throw new IllegalArgumentException("growth_lr_rewarm must be in [0, 10] (a share of lr; 0 = off), got " + growthLrRewarm);
        }
    }

    /**
     * {@code schedule} re-warmed for a growth after {@code growthStep}: from there the rate restarts at growth_lr_rewarm
     * x lr and decays to min_lr at the last step. Unchanged when the rewarm is off, the growth is at or after the last
     * step, or inside the warmup.
     */
    public LrSchedule rewarmedAt(LrSchedule schedule, long growthStep) {
        return schedule.rewarmedAt(growthStep, growthLrRewarm);
    }

    public LrSchedule schedule() {
        return new LrSchedule(lr, minLr, warmupSteps, steps);
    }

    /**
     * The LR schedule of a run that starts at {@code step} from a checkpoint whose info is {@code info}: with
     * {@code restart}, or from scratch, this recipe's schedule; otherwise the checkpoint's schedule continued
     * ({@link LrSchedule#continuing}), so a resume with a larger --steps decays on from the rate it had reached instead
     * of jumping back up. Checkpoints without a recorded schedule are read by their {@code steps_planned}. A checkpoint
     * grown at this very step ({@code expanded_at_step}, a fresh {@code catena expand} or {@code retrain --add-chains})
     * gets the re-warmed schedule ({@link #rewarmedAt}).
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
        LrSchedule s = previous == null ? next : LrSchedule.continuing(previous, step, next);
        if (info.get("expanded_at_step") instanceof Number at && at.longValue() == step) {
            s = rewarmedAt(s, step);
        }
        return s;
    }

    public TrainSettings withSteps(long newSteps) {
        return new TrainSettings(batchSize, seqLen, newSteps, lr, minLr, warmupSteps, adamW, seed, evalEvery, evalBatches,
                logEvery, ckptEvery, valFraction, frozenChains, growthLrRewarm, precision);
    }

    public TrainSettings withPrecision(Gemm.Precision p) {
        return new TrainSettings(batchSize, seqLen, steps, lr, minLr, warmupSteps, adamW, seed, evalEvery, evalBatches,
                logEvery, ckptEvery, valFraction, frozenChains, growthLrRewarm, p);
    }

    public TrainSettings withFrozenChains(int frozen) {
        return new TrainSettings(batchSize, seqLen, steps, lr, minLr, warmupSteps, adamW, seed, evalEvery, evalBatches,
                logEvery, ckptEvery, valFraction, frozen, growthLrRewarm, precision);
    }
}
