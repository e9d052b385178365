package io.catena.model.layers;

import io.catena.model.ColmConfig;
import io.catena.model.Params;
import io.catena.model.kernel.Bf16Gemm;
import io.catena.model.kernel.Buf;
import io.catena.model.kernel.Gemm;
import io.catena.model.kernel.Kernels;
import io.catena.model.kernel.Mat;
import io.catena.model.kernel.Parallel;
import io.catena.model.kernel.VectorKernels;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * LM head and multi-chain cross-entropy. The head is stored per chain ({@code head.c{i}: [D_i, V]});
 * the logits of every scale come from one running sum, {@code logits_k = logits_{k-1} + h_k W_k}.
 * The loss is {@code sum_k w_k CE(logits_k)}; its gradient is computed in place over the logits
 * (softmax and CE fused per row, one exp per logit) and summed over scales from the widest down
 * inside the same pass.
 */
public final class LmHead {
    private final ColmConfig cfg;
    private final Mat[] weight;
    private final Mat[] grad;
    /** logits[j] = logits of scale j+1, [rows, V]. */
    private final Mat[] logits;
    private final double[] rowLoss;

    public LmHead(ColmConfig cfg, Params params, Params grads, int rows, DataType type) {
        this.cfg = cfg;
        int n = cfg.numChains();
        weight = new Mat[n];
        grad = new Mat[n];
        logits = new Mat[n];
        for (int i = 0; i < n; i++) {
            weight[i] = params.mat("head.c" + i);
            grad[i] = grads.mat("head.c" + i);
            logits[i] = Mat.allocate(type, rows, cfg.vocabSize());
        }
        rowLoss = new double[rows];
    }

    /** Logits of scale j (1-based), valid after forward. */
    public Mat logits(int scale) {
        return logits[scale - 1];
    }

    /** Logits of scales 1..k from the final-normed hidden state h. */
    public void forward(Mat h, int k) {
        try (var reuse = Bf16Gemm.reuse()) { // under bf16: h converted once for every chain
            forwardChains(h, k);
        }
    }

    private void forwardChains(Mat h, int k) {
        for (int i = 0; i < k; i++) {
            Mat hi = h.colsCached(cfg.chainOffset(i), cfg.chainWidth(i));
            if (i == 0) {
                Gemm.mm(hi, false, weight[0], false, logits[0], false);
            } else {
                // logits_i = logits_{i-1} + h_i W_i: copy, then let the GEMM accumulate (beta = 1)
                Kernels.copy(logits[i - 1], logits[i]);
                Gemm.mm(hi, false, weight[i], false, logits[i], true);
            }
        }
    }

    /** Mean cross-entropy of scale j's logits against targets (logits untouched). */
    public double loss(int scale, int[] targets, int targetOffset) {
        Mat l = logits[scale - 1];
        Parallel.forRows(l.rows, (from, to) -> {
            for (int r = from; r < to; r++) {
                rowLoss[r] = crossEntropyRow(l, r, targets[targetOffset + r], false, 0.0, null);
            }
        });
        return meanOf(rowLoss, l.rows);
    }

    /**
     * Per-scale mean losses for scales 1..k, and the loss gradient written over the logits:
     * logits[j] becomes sum_{s >= j} w_s dCE_s/dlogits_s, ready for backward. weights[j] is w_{j+1}.
     */
    public double[] lossAndGradient(int[] targets, int targetOffset, int k, double[] weights) {
        return lossAndGradient(targets, targetOffset, k, weights, 0);
    }

    /**
     * {@link #lossAndGradient(int[], int, int, double[])} for a model whose chains < firstTrainable are frozen: the
     * scales 1..firstTrainable depend on frozen parameters only, so their losses are computed but their logits keep
     * no gradient ({@link #backward} reads only the trainable chains' logits).
     */
    public double[] lossAndGradient(int[] targets, int targetOffset, int k, double[] weights, int firstTrainable) {
        double[] losses = new double[k];
        for (int j = Math.min(Math.max(firstTrainable, 0), k) - 1; j >= 0; j--) {
            losses[j] = loss(j + 1, targets, targetOffset);
        }
        // widest scale first, so each scale's pass can add the summed gradient of the wider ones
        for (int j = k - 1; j >= Math.max(firstTrainable, 0); j--) {
            Mat l = logits[j];
            Mat wider = j + 1 < k ? logits[j + 1] : null;
            double scale = weights[j] / l.rows;
            Parallel.forRows(l.rows, (from, to) -> {
                for (int r = from; r < to; r++) {
                    rowLoss[r] = crossEntropyRow(l, r, targets[targetOffset + r], true, scale, wider);
                }
            });
            losses[j] = meanOf(rowLoss, l.rows);
        }
        return losses;
    }

    private static double meanOf(double[] v, int n) {
        double s = 0;
        for (int i = 0; i < n; i++) {
            s += v[i];
        }
        return s / n;
    }

    /**
     * CE of one row; when writeGradient the row is overwritten with gradScale * (softmax - onehot).
     * Log-sum-exp with the row maximum subtracted, accumulated in double.
     */
    private static double crossEntropyRow(Mat l, int r, int target, boolean writeGradient, double gradScale, Mat addend) {
        final Buf b = l.buf;
        final int o = l.index(r, 0), v = l.cols;
        if (target < 0 || target >= v) {
            throw new IllegalArgumentException("target token " + target + " at row " + r + " is outside the vocabulary [0, " + v + ")");
        }
        if (b instanceof Buf.F32 f) {
            var bytes = f.bytes();
            float max = VectorKernels.max(bytes, o, v);
            double targetLogit = b.get(o + target);
            if (!writeGradient) {
                return max + Math.log(VectorKernels.sumExp(bytes, o, v, 1f, max)) - targetLogit;
            }
            double sum = VectorKernels.expStoreSum(bytes, o, v, max);
            VectorKernels.scaleAdd(bytes, o, v, (float) (gradScale / sum), addend == null ? null : ((Buf.F32) addend.buf).bytes(),
                    addend == null ? 0 : addend.index(r, 0));
            b.set(o + target, b.get(o + target) - gradScale);
            return max + Math.log(sum) - targetLogit;
        }
        double max = Double.NEGATIVE_INFINITY;
        for (int c = 0; c < v; c++) {
            max = Math.max(max, b.get(o + c));
        }
        double sum = 0;
        for (int c = 0; c < v; c++) {
            sum += Math.exp(b.get(o + c) - max);
        }
        double lse = max + Math.log(sum);
        double loss = lse - b.get(o + target);
        if (writeGradient) {
            double inv = 1.0 / sum;
            for (int c = 0; c < v; c++) {
                b.set(o + c, gradScale * Math.exp(b.get(o + c) - max) * inv);
            }
            b.set(o + target, b.get(o + target) - gradScale);
            if (addend != null) {
                for (int c = 0; c < v; c++) {
                    b.set(o + c, b.get(o + c) + addend.get(r, c));
                }
            }
        }
        return loss;
    }

    /**
     * Backward from the summed logit gradients (after lossAndGradient): for the chains firstTrainable..k-1, dh
     * written and head gradients written or accumulated; the frozen chains' columns of dh are left as they are.
     */
    public void backward(Mat h, Mat dh, int k, int firstTrainable, boolean accumulateParams) {
        // under bf16: h and each logit gradient converted once for both GEMMs (dh's storage is not h's)
        try (var reuse = Bf16Gemm.reuse()) {
            for (int i = Math.max(firstTrainable, 0); i < k; i++) {
                Mat hi = h.colsCached(cfg.chainOffset(i), cfg.chainWidth(i));
                Gemm.mm(hi, true, logits[i], false, grad[i], accumulateParams);
                Gemm.mm(logits[i], false, weight[i], true, dh.colsCached(cfg.chainOffset(i), cfg.chainWidth(i)), false);
            }
        }
    }
}
