package io.catena.model.train;

import io.catena.model.NotRetryableException;
import java.util.Arrays;
import java.util.Locale;

/**
 * Keeps a numerically broken run from writing a poisoned checkpoint. Two checks:
 * <ul>
 *   <li>a non-finite loss or gradient norm stops the run before the update (nothing changes), unless the
 *       user opted in to skip up to {@code skipNonFinite} such steps (counted in metrics);</li>
 *   <li>divergence: at every check (each log step and before each checkpoint) the full model's loss and the
 *       parameter norm are compared with the previous check; growing more than {@code divergenceFactor}
 *       times stops the run (the checkpoint it was about to write would hold the blown-up parameters).
 *       A healthy run's parameter norm grows slowly (weight decay bounds it) and its loss falls, so a 10x
 *       jump between two log steps is divergence, not training.</li>
 * </ul>
 * Both stops throw {@link NotRetryableException}: the same data and parameters would give the same numbers.
 */
public final class NumericalGuard {
    public static final double DEFAULT_DIVERGENCE_FACTOR = 10.0;

    private final double divergenceFactor;
    private final int skipNonFinite;
    private int skipped;
    private double lastLoss = Double.NaN;
    private double lastParamNorm = Double.NaN;

    /**
     * @param divergenceFactor stop when the loss or parameter norm grows more than this between checks (0 = off; else > 1)
     * @param skipNonFinite    non-finite steps to skip (no update) before stopping; 0 = stop at the first
     */
    public NumericalGuard(double divergenceFactor, int skipNonFinite) {
        checkFactor(divergenceFactor);
        if (skipNonFinite < 0) {
            throw new IllegalArgumentException("--skip-nonfinite must be >= 0, got " + skipNonFinite);
        }
        this.divergenceFactor = divergenceFactor;
        this.skipNonFinite = skipNonFinite;
    }

    public static NumericalGuard defaults() {
        return new NumericalGuard(DEFAULT_DIVERGENCE_FACTOR, 0);
    }

    /** A divergence factor must be 0 (off) or a finite number above 1. */
    public static void checkFactor(double f) {
        if (!(f == 0 || (f > 1 && Double.isFinite(f)))) {
            throw new IllegalArgumentException("--divergence-factor must be 0 (off) or a finite number > 1, got " + f);
        }
    }

    /**
     * Before an update: true to apply it; false to skip this step (non-finite, within the skip budget).
     * Throws when the step is non-finite and the budget is spent.
     */
    public boolean accept(long step, double gradNorm, double[] losses) {
        boolean finite = Double.isFinite(gradNorm);
        for (double l : losses) {
            finite &= Double.isFinite(l);
        }
        if (finite) {
            return true;
        }
        if (skipped < skipNonFinite) {
            skipped++;
            return false;
        }
        throw new NotRetryableException(String.format(Locale.ROOT,
                "step %d: gradient norm %s, losses %s%s; no parameter was changed and no checkpoint was written. Lower the "
                        + "learning rate, check the data for bad tokens, or resume from the last checkpoint with --skip-nonfinite N",
                step, gradNorm, Arrays.toString(losses), skipNonFinite > 0 ? " (" + skipped + " earlier non-finite steps skipped, "
                        + "--skip-nonfinite " + skipNonFinite + ")" : ""));
    }

    /** Non-finite steps skipped so far. */
    public int skipped() {
        return skipped;
    }

    /** The parameter norm the first check compares with (the run's starting parameters). */
    public void baseline(double paramNorm) {
        lastParamNorm = paramNorm;
    }

    /**
     * At a check point: the full model's loss (NaN where this process has none, e.g. a pipeline stage before
     * the last: the parameter norm alone is checked) and the parameter norm against the previous check. Throws
     * when either grew more than the divergence factor, or the norm or loss is infinite.
     */
    public void check(long step, double fullLoss, double paramNorm) {
        if (!Double.isFinite(paramNorm) || Double.isInfinite(fullLoss)) {
            throw new NotRetryableException("step " + step + ": parameter norm " + paramNorm + ", loss " + fullLoss
                    + "; the run diverged and no checkpoint was written. Resume from the last checkpoint with a lower learning rate");
        }
        if (divergenceFactor > 0) {
            diverged(step, "parameter norm", lastParamNorm, paramNorm);
            if (!Double.isNaN(fullLoss)) {
                diverged(step, "loss", lastLoss, fullLoss);
            }
        }
        lastParamNorm = paramNorm;
        if (!Double.isNaN(fullLoss)) {
            lastLoss = fullLoss;
        }
    }

    private void diverged(long step, String what, double before, double now) {
        if (Double.isFinite(before) && before > 0 && now > divergenceFactor * before) {
            throw new NotRetryableException(String.format(Locale.ROOT, "step %d: the %s grew from %.4g to %.4g (more than "
                            + "--divergence-factor %.3g times since the previous check); the run diverged and no checkpoint was "
                            + "written. Resume from the last checkpoint with a lower learning rate (or raise --divergence-factor, "
                            + "0 turns the check off)", step, what, before, now, divergenceFactor));
        }
    }
}
