package io.catena.model.optim;

/**
 * Linear warmup to the peak over warmupSteps, then cosine decay to min_lr at totalSteps (constant after). A warmup
 * longer than the run (a short {@code --steps} run of a long recipe) is still rising when the run ends.
 */
public record LrSchedule(double peakLr, double minLr, long warmupSteps, long totalSteps) {
    public LrSchedule {
        // written so that NaN fails: a NaN min_lr would make every rate after the warmup NaN
        if (!(peakLr > 0 && peakLr < Double.POSITIVE_INFINITY) || !(minLr >= 0 && minLr <= peakLr)) {
            throw new IllegalArgumentException("learning rates need finite 0 <= min_lr <= lr and lr > 0, got lr=" + peakLr + " min_lr=" + minLr);
        }
        if (warmupSteps < 0 || totalSteps < 1) {
            throw new IllegalArgumentException("warmup_steps must be >= 0 and steps >= 1, got " + warmupSteps + ", " + totalSteps);
        }
    }

    /** Learning rate for step (1-based). */
    public double at(long step) {
        if (warmupSteps > 0 && step <= warmupSteps) {
            return peakLr * step / warmupSteps;
        }
        if (step >= totalSteps) {
            return minLr;
        }
        double progress = (double) (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
        return minLr + 0.5 * (peakLr - minLr) * (1 + Math.cos(Math.PI * progress));
    }
}
