package io.catena.model.train;

import io.catena.model.optim.AdamW;
import io.catena.model.optim.LrSchedule;

/** Training knobs of a recipe (see cluster-conf/recipes/*.properties for one comment per knob). */
public record TrainSettings(int batchSize, int seqLen, long steps, double lr, double minLr, long warmupSteps,
                            AdamW.Settings adamW, long seed, int evalEvery, int evalBatches, int logEvery,
                            int ckptEvery, double valFraction, int frozenChains) {
    public TrainSettings {
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

    public TrainSettings withSteps(long newSteps) {
        return new TrainSettings(batchSize, seqLen, newSteps, lr, minLr, warmupSteps, adamW, seed, evalEvery, evalBatches,
                logEvery, ckptEvery, valFraction, frozenChains);
    }

    public TrainSettings withFrozenChains(int frozen) {
        return new TrainSettings(batchSize, seqLen, steps, lr, minLr, warmupSteps, adamW, seed, evalEvery, evalBatches,
                logEvery, ckptEvery, valFraction, frozen);
    }
}
