package io.catena.model.optim;

import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.kernel.Buf;
import io.catena.model.kernel.Parallel;
import java.util.ArrayList;
import java.util.List;

/**
 * AdamW (decoupled weight decay; none on norms and biases) over flat buffers, in one fused pass per
 * element. Frozen chains (chain tuning) form a prefix of the layout and are skipped entirely: their
 * parameters and optimizer moments stay as they are. Used by the local trainer and, unchanged, by the
 * parameter server.
 */
public final class AdamW {

    /** Hyper-parameters; lr comes from the schedule at each step. */
    public record Settings(double beta1, double beta2, double eps, double weightDecay, double clipNorm) {
        public Settings {
            if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
                throw new IllegalArgumentException("AdamW betas must be in [0, 1), got beta1=" + beta1 + " beta2=" + beta2);
            }
            if (!(eps > 0) || weightDecay < 0 || clipNorm < 0) {
                throw new IllegalArgumentException("AdamW needs eps > 0, weight_decay >= 0, clip_norm >= 0 (0 = off); got eps="
                        + eps + " weight_decay=" + weightDecay + " clip_norm=" + clipNorm);
            }
        }

        public static Settings defaults() {
            return new Settings(0.9, 0.95, 1e-8, 0.1, 1.0);
        }
    }

    /** A contiguous run of elements that share the decay flag. */
    private record Segment(int from, int to, boolean decay) {
    }

    private final Settings settings;
    private final List<Segment> segments;
    private final int trainableFrom;
    private final int end;

    /**
     * @param frozenChains chains 0..frozenChains-1 are not updated (0 = train everything)
     */
    public AdamW(ParamLayout layout, Settings settings, int frozenChains) {
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

    public Settings settings() {
        return settings;
    }

    /** First element that the optimizer updates. */
    public int trainableFrom() {
        return trainableFrom;
    }

    /** L2 norm of the gradient over the trainable elements (summed in a fixed order). */
    public double gradientNorm(Params grads) {
        Buf g = grads.buf();
        int n = end - trainableFrom;
        double[] partial = new double[Parallel.parts(n)];
        Parallel.forParts(n, (p, from, to) -> {
            double s = 0;
            for (int i = trainableFrom + from; i < trainableFrom + to; i++) {
                double x = g.get(i);
                s += x * x;
            }
            partial[p] = s;
        });
        double s = 0;
        for (double x : partial) {
            s += x;
        }
        return Math.sqrt(s);
    }

    /**
     * One AdamW step (step counts from 1) at learning rate lr. Gradients are first scaled so their
     * global norm is at most clip_norm. Returns the pre-clip gradient norm. A non-finite gradient
     * norm is refused before anything changes.
     */
    public double step(Params params, Params grads, Params m, Params v, long step, double lr) {
        double norm = gradientNorm(grads);
        if (!Double.isFinite(norm)) {
            throw new IllegalStateException("gradient norm is " + norm + " at step " + step
                    + "; no parameter was changed. Lower the learning rate or check the data for bad tokens.");
        }
        double clip = settings.clipNorm > 0 && norm > settings.clipNorm ? settings.clipNorm / norm : 1.0;
        update(params.buf(), grads.buf(), m.buf(), v.buf(), step, lr, clip);
        return norm;
    }

    private void update(Buf p, Buf g, Buf m, Buf v, long step, double lr, double gradScale) {
        final double b1 = settings.beta1, b2 = settings.beta2, eps = settings.eps;
        final double bc1 = 1.0 - Math.pow(b1, step), bc2 = 1.0 - Math.pow(b2, step);
        final double stepSize = lr / bc1, invSqrtBc2 = 1.0 / Math.sqrt(bc2);
        for (Segment s : segments) {
            final double decay = s.decay ? 1.0 - lr * settings.weightDecay : 1.0;
            Parallel.forRows(s.to - s.from, (from, to) -> {
                for (int i = s.from + from; i < s.from + to; i++) {
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
}
