package io.catena.model.optim;

import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.kernel.Buf;
import io.catena.model.kernel.Parallel;
import io.catena.model.kernel.VectorKernels;
import java.util.ArrayList;
import java.util.List;

/**
 * AdamW (decoupled weight decay; none on norms and biases) over flat buffers, in one fused pass per
 * element. Frozen chains (chain tuning) form a prefix of the layout and are skipped entirely: their
 * parameters and optimizer moments stay as they are. After a growth the appended chains (a suffix of the layout) may
 * ramp their learning rate up ({@link Settings#growthWarmupSteps}). Used by the local trainer and, unchanged, by the
 * parameter server.
 */
public final class AdamW {

    /**
     * Hyper-parameters; lr comes from the schedule at each step. growthWarmupSteps: after a growth, the appended
     * chains' learning rate ramps linearly from 0 to the schedule's over this many steps while the old chains follow
     * the schedule (0: no ramp). growthNewChainLr: the appended chains' rate is this multiple of the schedule's (on
     * top of the ramp; 1: the schedule's). 2-4x measured no gain on benchmarks/run-growth.sh (RESULTS.md "Growth").
     */
    public record Settings(double beta1, double beta2, double eps, double weightDecay, double clipNorm, long growthWarmupSteps,
            double growthNewChainLr) {

        /**
         * The warm-up of grown chains when a recipe does not set growth_warmup_steps: 30 steps, the growth recipe of
         * benchmarks/run-growth.sh (with growth_lr_rewarm 1.0; on its own it measured neutral: 1.5973 against 1.5969
         * without, RESULTS.md "Growth").
         */
        public static final long DEFAULT_GROWTH_WARMUP_STEPS = 30;

        /** The appended chains' LR multiplier when a recipe does not set growth_new_chain_lr. */
        public static final double DEFAULT_GROWTH_NEW_CHAIN_LR = 1.0;

        public Settings(double beta1, double beta2, double eps, double weightDecay, double clipNorm) {
            this(beta1, beta2, eps, weightDecay, clipNorm, DEFAULT_GROWTH_WARMUP_STEPS);
        }

        public Settings(double beta1, double beta2, double eps, double weightDecay, double clipNorm, long growthWarmupSteps) {
            this(beta1, beta2, eps, weightDecay, clipNorm, growthWarmupSteps, DEFAULT_GROWTH_NEW_CHAIN_LR);
        }

        public Settings {
            if (!(growthNewChainLr > 0 && growthNewChainLr <= 100)) {
                throw new IllegalArgumentException("growth_new_chain_lr must be in (0, 100] (a multiplier on lr), got " + growthNewChainLr);
            }
            if (growthWarmupSteps < 0) {
                throw new IllegalArgumentException("growth_warmup_steps must be >= 0, got " + growthWarmupSteps);
            }
            if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
                throw new IllegalArgumentException("AdamW betas must be in [0, 1), got beta1=" + beta1 + " beta2=" + beta2);
            }
            // written so that NaN fails every test: a NaN weight decay would turn every decayed weight into NaN
            if (!(eps > 0 && eps < Double.POSITIVE_INFINITY) || !(weightDecay >= 0 && weightDecay < Double.POSITIVE_INFINITY)
                    || !(clipNorm >= 0 && clipNorm < Double.POSITIVE_INFINITY)) {
                throw new IllegalArgumentException("AdamW needs finite eps > 0, weight_decay >= 0, clip_norm >= 0 (0 = off); got eps="
                        + eps + " weight_decay=" + weightDecay + " clip_norm=" + clipNorm);
            }
        }

        /** What a recipe that sets none of beta1, beta2, adam_eps, weight_decay, clip_norm gets. */
        public static Settings defaults() {
            return new Settings(0.9, 0.95, 1e-8, 0.1, 1.0, DEFAULT_GROWTH_WARMUP_STEPS, DEFAULT_GROWTH_NEW_CHAIN_LR);
        }
    }

    /** A contiguous run of elements that share the decay flag. */
    private record Segment(int from, int to, boolean decay) {
    }

    private final Settings settings;
    private final List<Segment> segments;
    private final int trainableFrom;
    private final int end;
    /** First element of the chains appended by the last growth (end: none), and the step it happened after. */
    private final int grownFrom;
    private final long grownAtStep;

    /**
     * @param frozenChains chains 0..frozenChains-1 are not updated (0 = train everything)
     */
    public AdamW(ParamLayout layout, Settings settings, int frozenChains) {
        this(layout, settings, frozenChains, layout.config().numChains(), 0);
    }

    /**
     * An optimizer for a model grown from {@code chainsBeforeGrowth} chains after step {@code grownAtStep}: the
     * appended chains' learning rate ramps over {@link Settings#growthWarmupSteps} steps from there.
     */
    public AdamW(ParamLayout layout, Settings settings, int frozenChains, int chainsBeforeGrowth, long grownAtStep) {
        if (chainsBeforeGrowth < 1 || chainsBeforeGrowth > layout.config().numChains() || grownAtStep < 0) {
            throw new IllegalArgumentException("a growth needs 1.." + layout.config().numChains() + " chains before it and a step >= 0, got "
                    + chainsBeforeGrowth + " at step " + grownAtStep);
        }
        this.grownFrom = (int) layout.prefixSize(chainsBeforeGrowth);
        this.grownAtStep = grownAtStep;
        if (frozenChains < 0 || frozenChains >= layout.config().numChains()) {
            throw new IllegalArgumentException("frozen chains must be in 0.." + (layout.config().numChains() - 1)
                    + " (at least one chain must train), got " + frozenChains);
        }
        this.settings = settings;
        this.trainableFrom = (int) layout.prefixSize(frozenChains);
        this.end = (int) layout.size();
        List<Segment> segs = new ArrayList<>();
        for (ParamLayout.Entry e : layout.entries()) {
            if (e.chain() < frozenChains) {
                continue;
            }
            int from = (int) e.offset(), to = (int) (e.offset() + e.size());
            boolean decay = e.kind().decayed();
            if (!segs.isEmpty() && segs.get(segs.size() - 1).decay == decay && segs.get(segs.size() - 1).to == from) {
                segs.set(segs.size() - 1, new Segment(segs.get(segs.size() - 1).from, to, decay));
            } else {
                segs.add(new Segment(from, to, decay));
            }
        }
        this.segments = List.copyOf(segs);
    }

    /**
     * The optimizer of a model whose checkpoint info is {@code info}: the growth recorded there
     * ({@code expanded_from_chains}, {@code expanded_at_step}, written by {@code ChainExpansion}) gets its warm-up.
     */
    public static AdamW forState(ParamLayout layout, Settings settings, int frozenChains, java.util.Map<String, Object> info) {
        if (info != null && info.get("expanded_from_chains") instanceof List<?> before && info.get("expanded_at_step") instanceof Number at
                && !before.isEmpty() && before.size() < layout.config().numChains()) {
            return new AdamW(layout, settings, frozenChains, before.size(), at.longValue());
        }
        return new AdamW(layout, settings, frozenChains);
    }

    public Settings settings() {
        return settings;
    }

    /**
     * The factor on the learning rate of the grown chains at {@code step}: (step - grownAt) / growth_warmup_steps up
     * to 1, so the first step after the growth gets 1/N of the rate; 1 without a growth or a ramp.
     */
    public double grownChainsLrFactor(long step) {
        long w = settings.growthWarmupSteps;
        if (grownFrom >= end || step <= grownAtStep) {
            return 1.0;
        }
        double mult = settings.growthNewChainLr;
        return w == 0 ? mult : mult * Math.min(1.0, (double) (step - grownAtStep) / w);
    }

    /** First element that the optimizer updates. */
    public int trainableFrom() {
        return trainableFrom;
    }

    /** L2 norm of the gradient over the trainable elements (summed in a fixed order). */
    public double gradientNorm(Params grads) {
        return Math.sqrt(sumOfSquares(grads, trainableFrom, end));
    }

    /**
     * Sum of squared gradients over [from, to) intersected with the trainable range; a sharded
     * server adds its shards' sums (in shard order) to get the global norm.
     */
    public double sumOfSquares(Params grads, long from, long to) {
        Buf g = grads.buf();
        int lo = (int) Math.max(from, trainableFrom);
        int n = (int) Math.min(to, end) - lo;
        return n <= 0 ? 0 : sumSquares(g, lo, n, false);
    }

    /**
     * Sum of squares of elements [lo, lo + n) of a buffer, split over the kernel threads in a fixed order. The float32
     * vector path (gradients) overflows to infinity for elements beyond ~1e19, which a gradient norm then reports as
     * non-finite; {@code inDouble} sums every square in double (parameter norms, which must stay finite while the
     * parameters are).
     */
    private static double sumSquares(Buf g, int lo, int n, boolean inDouble) {
        double[] partial = new double[Parallel.parts(n)];
        Parallel.forParts(n, (p, a, b) -> {
            if (!inDouble && g instanceof Buf.F32 f) {
                partial[p] = VectorKernels.sumSquares(f.bytes(), lo + a, lo + b);
                return;
            }
            double s = 0;
            for (int i = lo + a; i < lo + b; i++) {
                double x = g.get(i);
                s += x * x;
            }
            partial[p] = s;
        });
        double s = 0;
        for (double x : partial) {
            s += x;
        }
        return s;
    }

    /** The factor that scales a gradient of this global norm down to clip_norm (1 when no clipping is needed). */
    public double clipScale(double globalNorm) {
        return settings.clipNorm > 0 && globalNorm > settings.clipNorm ? settings.clipNorm / globalNorm : 1.0;
    }

    /**
     * One AdamW step (step counts from 1) at learning rate lr. Gradients are first scaled so their
     * global norm is at most clip_norm. Returns the pre-clip gradient norm. A non-finite gradient
     * norm is refused before anything changes.
     */
    public double step(Params params, Params grads, Params m, Params v, long step, double lr) {
        double norm = gradientNorm(grads);
        stepWithNorm(params, grads, m, v, step, lr, norm);
        return norm;
    }

    /** {@link #step} with the gradient norm already computed (by {@link #gradientNorm}, for a caller that checks it first). */
    public void stepWithNorm(Params params, Params grads, Params m, Params v, long step, double lr, double norm) {
        if (!Double.isFinite(norm)) {
            throw new IllegalStateException("gradient norm is " + norm + " at step " + step
                    + "; no parameter was changed. Lower the learning rate or check the data for bad tokens.");
        }
        update(params, grads, m, v, step, lr, clipScale(norm), 0, end);
    }

    /** L2 norm of every element of a buffer (parameters included, frozen or not), summed in a fixed order. */
    public static double norm(Params p) {
        return Math.sqrt(sumSquares(p.buf(), 0, p.buf().length(), true));
    }

    /**
     * The AdamW update of elements [from, to) (intersected with the trainable range), gradients
     * multiplied by gradScale first (the clip factor). A sharded server calls it per shard range.
     */
    public void update(Params params, Params grads, Params m, Params v, long step, double lr, double gradScale, long from, long to) {
        Buf p = params.buf(), g = grads.buf(), mb = m.buf(), vb = v.buf();
        double factor = grownChainsLrFactor(step);
        for (Segment s : segments) {
            int lo = (int) Math.max(s.from, from), hi = (int) Math.min(s.to, to);
            if (lo >= hi) {
                continue;
            }
            if (factor == 1.0 || hi <= grownFrom) {
                updateRange(p, g, mb, vb, step, lr, gradScale, lo, hi, s.decay);
            } else if (lo >= grownFrom) {
                updateRange(p, g, mb, vb, step, lr * factor, gradScale, lo, hi, s.decay);
            } else {
                updateRange(p, g, mb, vb, step, lr, gradScale, lo, grownFrom, s.decay);
                updateRange(p, g, mb, vb, step, lr * factor, gradScale, grownFrom, hi, s.decay);
            }
        }
    }

    private void updateRange(Buf p, Buf g, Buf m, Buf v, long step, double lr, double gradScale, int lo, int hi, boolean decayed) {
        final double b1 = settings.beta1, b2 = settings.beta2, eps = settings.eps;
        final double bc1 = 1.0 - Math.pow(b1, step), bc2 = 1.0 - Math.pow(b2, step);
        final double stepSize = lr / bc1, invSqrtBc2 = 1.0 / Math.sqrt(bc2);
        final double decay = decayed ? 1.0 - lr * settings.weightDecay : 1.0;
        Parallel.forRows(hi - lo, (from, to) -> {
            if (p instanceof Buf.F32 fp && g instanceof Buf.F32 fg && m instanceof Buf.F32 fm && v instanceof Buf.F32 fv) {
                VectorKernels.adamW(fp.bytes(), fg.bytes(), fm.bytes(), fv.bytes(), lo + from, lo + to, (float) gradScale,
                        (float) b1, (float) b2, (float) decay, (float) stepSize, (float) invSqrtBc2, (float) eps);
                return;
            }
            for (int i = lo + from; i < lo + to; i++) {
                double gi = g.get(i) * gradScale;
                double mi = b1 * m.get(i) + (1 - b1) * gi;
                double vi = b2 * v.get(i) + (1 - b2) * gi * gi;
                m.set(i, mi);
                v.set(i, vi);
                p.set(i, p.get(i) * decay - stepSize * mi / (Math.sqrt(vi) * invSqrtBc2 + eps));
            }
        });
    }
}
