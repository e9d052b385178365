package io.catena.model.optim;

/**
 * Linear warmup to the peak over warmupSteps, then cosine decay to min_lr at totalSteps (constant after). A warmup
 * longer than the run (a short {@code --steps} run of a long recipe) is still rising when the run ends.
 *
 * <p>A run resumed with a different number of steps continues its schedule ({@link #continuing}): from step
 * {@code continueFrom} on, the rate decays by a cosine from {@code continueLr} (the rate the run had reached there) to
 * min_lr at the new total, instead of jumping to where a schedule of the new length would be. 0: no continuation.
 */
public record LrSchedule(double peakLr, double minLr, long warmupSteps, long totalSteps, long continueFrom, double continueLr) {

    /**
     * A growth late in the run restarts lower: the restart share is at most this many times the share of the run still
     * ahead ((steps - growth step) / steps), so 1.0 from a third of the run before the end on, 0.5 with a sixth left,
     * 0.22 with 48 of 648 steps left. On benchmarks/run-growth.sh (lr 3e-3) that took a growth after step 600 of 648
     * from 1.5912 to 1.5667 and after 500 of 600 from 1.5948 to 1.5841, and changed a growth after 400 of 552 by
     * +0.0013 (RESULTS.md "Growth").
     */
    public static final double REWARM_PER_SHARE_LEFT = 3.0;

    /**
     * The growth recipe's schedule: after a growth at {@code growthStep} (past the warm-up, before the end) the rate
     * restarts at {@code rewarm} x the peak, capped at {@link #REWARM_PER_SHARE_LEFT} x the share of the run still
     * ahead (at least min_lr), and decays by a cosine to min_lr at the last step; 0 = off. The same step and share give
     * the same schedule, so applying it twice changes nothing.
     */
    public LrSchedule rewarmedAt(long growthStep, double rewarm) {
        if (rewarm == 0 || growthStep >= totalSteps || growthStep <= warmupSteps) {
            return this;
        }
        double share = Math.min(rewarm, REWARM_PER_SHARE_LEFT * (totalSteps - growthStep) / totalSteps);
        return new LrSchedule(peakLr, minLr, warmupSteps, totalSteps, growthStep, Math.max(minLr, share * peakLr));
    }

    public LrSchedule(double peakLr, double minLr, long warmupSteps, long totalSteps) {
        this(peakLr, minLr, warmupSteps, totalSteps, 0, Double.NaN);
    }

    public LrSchedule {
        if (continueFrom < 0 || (continueFrom > 0 && !(continueLr >= minLr && continueLr < Double.POSITIVE_INFINITY))) {
            throw new IllegalArgumentException("a continued schedule needs continue_from >= 0 and a finite continue_lr >= min_lr, "
                    + "got " + continueFrom + ", " + continueLr);
        }
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
        if (continueFrom > 0 && step > continueFrom) {
            if (step >= totalSteps) {
                return minLr;
            }
            double progress = (double) (step - continueFrom) / Math.max(1, totalSteps - continueFrom);
            return minLr + 0.5 * (continueLr - minLr) * (1 + Math.cos(Math.PI * progress));
        }
        if (warmupSteps > 0 && step <= warmupSteps) {
            return peakLr * step / warmupSteps;
        }
        if (step >= totalSteps) {
            return minLr;
        }
        double progress = (double) (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
        return minLr + 0.5 * (peakLr - minLr) * (1 + Math.cos(Math.PI * progress));
    }

    /**
     * The schedule of a run resumed at {@code step}: {@code previous} (what the checkpoint trained with) when the run's
     * length is unchanged; {@code next} while {@code step} is inside the warmup (which does not depend on the length);
     * else {@code next}'s length and floor, decaying from the rate {@code previous} had reached at {@code step}.
     */
    public static LrSchedule continuing(LrSchedule previous, long step, LrSchedule next) {
        if (previous.totalSteps == next.totalSteps && previous.peakLr == next.peakLr && previous.minLr == next.minLr
                && previous.warmupSteps == next.warmupSteps) {
            return previous;
        }
        if (step <= next.warmupSteps || step >= next.totalSteps) {
            return next;
        }
        return new LrSchedule(next.peakLr, next.minLr, next.warmupSteps, next.totalSteps, step,
                Math.max(next.minLr, previous.at(step)));
    }

    /** The schedule as a checkpoint's info records it ({@link #fromMap} reads it back). */
    public java.util.Map<String, Object> toMap() {
        java.util.Map<String, Object> m = new java.util.LinkedHashMap<>();
        m.put("lr", peakLr);
        m.put("min_lr", minLr);
        m.put("warmup_steps", warmupSteps);
        m.put("steps", totalSteps);
        if (continueFrom > 0) {
            m.put("continue_from", continueFrom);
            m.put("continue_lr", continueLr);
        }
        return m;
    }

    /** The schedule a checkpoint recorded, or null when {@code o} is not one (older checkpoints have none). */
    public static LrSchedule fromMap(Object o) {
        if (!(o instanceof java.util.Map<?, ?> m) || !(m.get("lr") instanceof Number lr) || !(m.get("min_lr") instanceof Number min)
                || !(m.get("warmup_steps") instanceof Number w) || !(m.get("steps") instanceof Number n)) {
            return null;
        }
        long from = m.get("continue_from") instanceof Number f ? f.longValue() : 0;
        double clr = m.get("continue_lr") instanceof Number c ? c.doubleValue() : Double.NaN;
        return new LrSchedule(lr.doubleValue(), min.doubleValue(), w.longValue(), n.longValue(), from, clr);
    }
}
