package io.catena.model.layers;

import io.catena.model.Params;
import io.catena.model.kernel.Gemm;
import io.catena.model.kernel.Kernels;
import io.catena.model.kernel.Mat;

/**
 * Chain linear (Chain-of-Layer): output chain i reads input chains 0..i only,
 * {@code y_i = x_{<=i} W_i^T + b_i}. Each output chain is one GEMM over the input prefix, so the
 * zero blocks of the equivalent block-lower-triangular dense matrix are never touched.
 * Also covers a plain dense linear (one "chain" reading a fixed input width), used by CoLM-Air's K/V.
 */
public final class ChainLinear {
    private final Mat[] weight;
    private final Mat[] bias;
    private final Mat[] weightGrad;
    private final Mat[] biasGrad;
    private final int[] outOffset;
    private final int[] outWidth;
    private final int[] inPrefix;
    private final int chainBase;

    /**
     * @param name       tensor name prefix, e.g. {@code layers.0.attn.q}; tensors are {@code name.c{i}.weight/.bias}
     * @param chainBase  index of the first chain (0 normally)
     * @param outWidth   output width per chain
     * @param inPrefix   input prefix width read by each output chain
     */
    public ChainLinear(Params params, Params grads, String name, int chainBase, int[] outWidth, int[] inPrefix) {
        int n = outWidth.length;
        this.chainBase = chainBase;
        this.outWidth = outWidth.clone();
        this.inPrefix = inPrefix.clone();
        this.outOffset = new int[n];
        this.weight = new Mat[n];
        this.bias = new Mat[n];
        this.weightGrad = new Mat[n];
        this.biasGrad = new Mat[n];
        int off = 0;
        for (int i = 0; i < n; i++) {
            outOffset[i] = off;
            off += outWidth[i];
            String t = name + ".c" + (chainBase + i);
            weight[i] = params.mat(t + ".weight");
            weightGrad[i] = grads.mat(t + ".weight");
            if (params.layout().has(t + ".bias")) {
                bias[i] = params.mat(t + ".bias");
                biasGrad[i] = grads.mat(t + ".bias");
            }
            if (weight[i].rows != outWidth[i] || weight[i].cols != inPrefix[i]) {
                throw new IllegalStateException(t + ".weight is " + weight[i].rows + "x" + weight[i].cols
                        + ", expected " + outWidth[i] + "x" + inPrefix[i]);
            }
        }
    }

    /** Output chains this layer computes at scale k (CoLM-Air's dense K/V has one whatever k is). */
    private int active(int k) {
        return Math.min(k, weight.length);
    }

    /** Output width at scale k. */
    public int outWidth(int k) {
        int a = active(k);
        return outOffset[a - 1] + outWidth[a - 1];
    }

    /** Input width read at scale k. */
    public int inWidth(int k) {
        return inPrefix[active(k) - 1];
    }

    /** y[:, :outWidth(k)] = chain-linear(x) for output chains < k. */
    public void forward(Mat x, Mat y, int k) {
        for (int i = 0; i < active(k); i++) {
            Mat yi = y.colsCached(outOffset[i], outWidth[i]);
            Gemm.mm(x.colsCached(0, inPrefix[i]), false, weight[i], true, yi, false);
            if (bias[i] != null) {
                Kernels.addRowVector(yi, bias[i]);
            }
        }
    }

    /**
     * Gradients of {@code forward(x, y, k)} given dy: parameter gradients of chains >= firstTrainable
     * (written, or added when accumulateParams), and dx[:, :inWidth(k)] written (or added when accumulateInput).
     */
    public void backward(Mat x, Mat dy, Mat dx, int k, int firstTrainable, boolean accumulateParams, boolean accumulateInput) {
        for (int i = active(k) - 1; i >= 0; i--) {
            Mat dyi = dy.colsCached(outOffset[i], outWidth[i]);
            if (chainBase + i >= firstTrainable) {
                Gemm.mm(dyi, true, x.colsCached(0, inPrefix[i]), false, weightGrad[i], accumulateParams);
                if (biasGrad[i] != null) {
                    Kernels.columnSums(dyi, biasGrad[i], accumulateParams);
                }
            }
            // The widest chain covers every input column, so it writes; narrower ones add.
            boolean add = accumulateInput || i != active(k) - 1;
            Gemm.mm(dyi, false, weight[i], false, dx.colsCached(0, inPrefix[i]), add);
        }
    }
}
