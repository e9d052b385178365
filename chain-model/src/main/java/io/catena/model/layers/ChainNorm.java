package io.catena.model.layers;

import io.catena.model.ColmConfig;
import io.catena.model.Params;
import io.catena.model.kernel.Buf;
import io.catena.model.kernel.Mat;
import io.catena.model.kernel.Parallel;
import io.catena.model.kernel.VectorKernels;

/**
 * Per-chain LayerNorm / RMSNorm: each chain's slice of a row has its own statistics and gain, so
 * no chain's output depends on a later chain (a norm over all of D would leak).
 */
public final class ChainNorm {
    private final boolean layerNorm;
    private final double eps;
    private final int[] offset;
    private final int[] width;
    private final Mat[] gain;
    private final Mat[] beta;
    private final Mat[] gainGrad;
    private final Mat[] betaGrad;
    /** Saved per (row, chain): mean (LayerNorm) and 1/std. */
    private final double[] mean;
    private final double[] rstd;
    private final int chains;

    public ChainNorm(ColmConfig cfg, Params params, Params grads, String name, int rows) {
        this.layerNorm = cfg.norm() == ColmConfig.NormKind.LAYERNORM;
        this.eps = cfg.normEps();
        this.chains = cfg.numChains();
        offset = new int[chains];
        width = new int[chains];
        gain = new Mat[chains];
        beta = new Mat[chains];
        gainGrad = new Mat[chains];
        betaGrad = new Mat[chains];
        for (int i = 0; i < chains; i++) {
            offset[i] = cfg.chainOffset(i);
            width[i] = cfg.chainWidth(i);
            gain[i] = params.mat(name + ".c" + i + ".gain");
            gainGrad[i] = grads.mat(name + ".c" + i + ".gain");
            if (layerNorm) {
                beta[i] = params.mat(name + ".c" + i + ".bias");
                betaGrad[i] = grads.mat(name + ".c" + i + ".bias");
            }
        }
        mean = new double[rows * chains];
        rstd = new double[rows * chains];
    }

    /** y = norm(x) for chains < k; statistics are kept for backward. */
    public void forward(Mat x, Mat y, int k) {
        Parallel.forRows(x.rows, (from, to) -> {
            for (int r = from; r < to; r++) {
                for (int i = 0; i < k; i++) {
                    forwardSegment(x, y, r, i);
                }
            }
        });
    }

    private void forwardSegment(Mat x, Mat y, int r, int i) {
        final Buf xb = x.buf, yb = y.buf, gb = gain[i].buf;
        final int xo = x.index(r, offset[i]), yo = y.index(r, offset[i]), go = gain[i].offset, w = width[i];
        if (xb instanceof Buf.F32 fx && yb instanceof Buf.F32 fy && gb instanceof Buf.F32 fg) {
            double[] mom = new double[2];
            VectorKernels.moments(fx.bytes(), xo, w, mom);
            double mu = layerNorm ? mom[0] / w : 0.0;
            double var = mom[1] / w - mu * mu; // E[x^2] - mean^2, in double from float lanes
            double rs = 1.0 / Math.sqrt(Math.max(var, 0.0) + eps);
            mean[r * chains + i] = mu;
            rstd[r * chains + i] = rs;
            Buf.F32 fb = layerNorm ? (Buf.F32) beta[i].buf : null;
            VectorKernels.normalize(fx.bytes(), xo, fy.bytes(), yo, fg.bytes(), go, fb == null ? null : fb.bytes(),
                    layerNorm ? beta[i].offset : 0, w, (float) mu, (float) rs);
            return;
        }
        double mu = 0;
        if (layerNorm) {
            for (int c = 0; c < w; c++) {
                mu += xb.get(xo + c);
            }
            mu /= w;
        }
        double var = 0;
        for (int c = 0; c < w; c++) {
            double d = xb.get(xo + c) - mu;
            var += d * d;
        }
        double rs = 1.0 / Math.sqrt(var / w + eps);
        mean[r * chains + i] = mu;
        rstd[r * chains + i] = rs;
        if (layerNorm) {
            final Buf bb = beta[i].buf;
            final int bo = beta[i].offset;
            for (int c = 0; c < w; c++) {
                yb.set(yo + c, (xb.get(xo + c) - mu) * rs * gb.get(go + c) + bb.get(bo + c));
            }
        } else {
            for (int c = 0; c < w; c++) {
                yb.set(yo + c, xb.get(xo + c) * rs * gb.get(go + c));
            }
        }
    }

    /**
     * dx += d norm(x) given dy (the residual stream's gradient is accumulated, not overwritten) for the chains >=
     * firstTrainable, whose gain/bias gradients are written or accumulated; frozen chains (per-chain statistics, so
     * their gradients reach frozen parameters only) are skipped, and their columns of dx left as they are.
     */
    public void backward(Mat x, Mat dy, Mat dx, int k, int firstTrainable, boolean accumulateParams) {
        int parts = Parallel.parts(x.rows);
        int d = offset[k - 1] + width[k - 1];
        double[][] dGain = new double[parts][d];
        double[][] dBeta = new double[parts][d];
        if (x.buf instanceof Buf.F32 && dy.buf instanceof Buf.F32 && dx.buf instanceof Buf.F32) {
            float[][] fGain = new float[parts][d];
            float[][] fBeta = new float[parts][d];
            Parallel.forParts(x.rows, (p, from, to) -> {
                double[] sums = new double[2];
                for (int r = from; r < to; r++) {
                    for (int i = Math.max(0, firstTrainable); i < k; i++) {
                        backwardSegmentF32(x, dy, dx, r, i, fGain[p], fBeta[p], sums);
                    }
                }
            });
            for (int p = 0; p < parts; p++) {
                for (int c = 0; c < d; c++) {
                    dGain[p][c] = fGain[p][c];
                    dBeta[p][c] = fBeta[p][c];
                }
            }
        } else {
            Parallel.forParts(x.rows, (p, from, to) -> {
                for (int r = from; r < to; r++) {
                    for (int i = Math.max(0, firstTrainable); i < k; i++) {
                        backwardSegment(x, dy, dx, r, i, dGain[p], dBeta[p]);
                    }
                }
            });
        }
        for (int i = Math.max(0, firstTrainable); i < k; i++) {
            for (int c = 0; c < width[i]; c++) {
                double g = 0, b = 0;
                for (int p = 0; p < parts; p++) {
                    g += dGain[p][offset[i] + c];
                    b += dBeta[p][offset[i] + c];
                }
                addOrSet(gainGrad[i], c, g, accumulateParams);
                if (layerNorm) {
                    addOrSet(betaGrad[i], c, b, accumulateParams);
                }
            }
        }
    }

    private static void addOrSet(Mat m, int c, double v, boolean accumulate) {
        int idx = m.offset + c;
        m.buf.set(idx, accumulate ? m.buf.get(idx) + v : v);
    }

    private void backwardSegmentF32(Mat x, Mat dy, Mat dx, int r, int i, float[] dGain, float[] dBeta, double[] sums) {
        var xb = ((Buf.F32) x.buf).bytes();
        var dyb = ((Buf.F32) dy.buf).bytes();
        var dxb = ((Buf.F32) dx.buf).bytes();
        var gb = ((Buf.F32) gain[i].buf).bytes();
        int xo = x.index(r, offset[i]), dyo = dy.index(r, offset[i]), dxo = dx.index(r, offset[i]), go = gain[i].offset, w = width[i];
        float mu = (float) mean[r * chains + i], rs = (float) rstd[r * chains + i];
        VectorKernels.normBackwardSums(xb, xo, dyb, dyo, gb, go, w, mu, rs, dGain, dBeta, offset[i], sums);
        float meanD = layerNorm ? (float) (sums[0] / w) : 0f;
        VectorKernels.normBackwardApply(xb, xo, dyb, dyo, gb, go, dxb, dxo, w, mu, rs, meanD, (float) (sums[1] / w));
    }

    private void backwardSegment(Mat x, Mat dy, Mat dx, int r, int i, double[] dGain, double[] dBeta) {
        final Buf xb = x.buf, dyb = dy.buf, dxb = dx.buf, gb = gain[i].buf;
        final int xo = x.index(r, offset[i]), dyo = dy.index(r, offset[i]), dxo = dx.index(r, offset[i]);
        final int go = gain[i].offset, w = width[i], co = offset[i];
        final double mu = mean[r * chains + i], rs = rstd[r * chains + i];
        // dxhat = dy * g;  dx = rs * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))   (LayerNorm)
        //                   dx = rs * (dxhat - xhat * mean(dxhat * xhat))                  (RMSNorm)
        double sumD = 0, sumDX = 0;
        for (int c = 0; c < w; c++) {
            double xhat = (xb.get(xo + c) - mu) * rs;
            double g = dyb.get(dyo + c);
            double dxhat = g * gb.get(go + c);
            sumD += dxhat;
            sumDX += dxhat * xhat;
            dGain[co + c] += g * xhat;
            dBeta[co + c] += g;
        }
        double meanD = layerNorm ? sumD / w : 0.0;
        double meanDX = sumDX / w;
        for (int c = 0; c < w; c++) {
            double xhat = (xb.get(xo + c) - mu) * rs;
            double dxhat = dyb.get(dyo + c) * gb.get(go + c);
            dxb.set(dxo + c, dxb.get(dxo + c) + rs * (dxhat - meanD - xhat * meanDX));
        }
    }
}
