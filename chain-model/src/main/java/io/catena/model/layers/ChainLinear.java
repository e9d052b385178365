package io.catena.model.layers;

import io.catena.model.Params;
import io.catena.model.kernel.Bf16Gemm;
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
        this(chainBase, inPrefix, regions(params, name, chainBase, outWidth.length, ".weight"),
                regions(params, name, chainBase, outWidth.length, ".bias"), regions(grads, name, chainBase, outWidth.length, ".weight"),
                regions(grads, name, chainBase, outWidth.length, ".bias"));
        for (int i = 0; i < outWidth.length; i++) {
            if (weight[i].rows != outWidth[i] || weight[i].cols != inPrefix[i]) {
                throw new IllegalStateException(name + ".c" + (chainBase + i) + ".weight is " + weight[i].rows + "x" + weight[i].cols
                        + ", expected " + outWidth[i] + "x" + inPrefix[i]);
            }
        }
    }

    /**
     * Over explicit weight regions (one [out_i, inPrefix_i] matrix per output chain; biases may be
     * null): lets several tensors that lie next to each other in the flat buffer act as one linear.
     */
    public ChainLinear(int chainBase, int[] inPrefix, Mat[] weight, Mat[] bias, Mat[] weightGrad, Mat[] biasGrad) {
        int n = weight.length;
        this.chainBase = chainBase;
        this.inPrefix = inPrefix.clone();
        this.weight = weight.clone();
        this.bias = bias.clone();
        this.weightGrad = weightGrad.clone();
        this.biasGrad = biasGrad.clone();
        this.outWidth = new int[n];
        this.outOffset = new int[n];
        int off = 0;
        for (int i = 0; i < n; i++) {
            outWidth[i] = weight[i].rows;
            outOffset[i] = off;
            off += outWidth[i];
            if (weight[i].cols != inPrefix[i]) {
                throw new IllegalStateException("output chain " + (chainBase + i) + " weight reads " + weight[i].cols
                        + " input columns, expected " + inPrefix[i]);
            }
        }
    }

    private static Mat[] regions(Params p, String name, int chainBase, int n, String suffix) {
        Mat[] m = new Mat[n];
        for (int i = 0; i < n; i++) {
            String t = name + ".c" + (chainBase + i) + suffix;
            m[i] = p.layout().has(t) ? p.mat(t) : null;
        }
        return m;
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
        try (var reuse = Bf16Gemm.reuse()) { // under bf16: x converted once for every chain's GEMM
            for (int i = 0; i < active(k); i++) {
                Mat yi = y.colsCached(outOffset[i], outWidth[i]);
                Gemm.mm(x.colsCached(0, inPrefix[i]), false, weight[i], true, yi, false);
                if (bias[i] != null) {
                    Kernels.addRowVector(yi, bias[i]);
                }
            }
        }
    }

    /**
     * Gradients of {@code forward(x, y, k)} given dy, for a model whose chains < firstTrainable are frozen: only what
     * reaches a trainable parameter is computed. Output chains >= firstTrainable get their parameter gradients
     * (written, or added when accumulateParams) and send their input gradient to the trainable input columns,
     * dx[:, frozenInWidth .. inWidth(k)) (written, or added when accumulateInput); frozen output chains are skipped
     * whole (no dW, no dX), and dx's frozen columns [0, frozenInWidth) are left as they are: a frozen activation's
     * gradient feeds only frozen parameters. With firstTrainable = 0 this is the full backward.
     */
    public void backward(Mat x, Mat dy, Mat dx, int k, int firstTrainable, boolean accumulateParams, boolean accumulateInput) {
        try (var reuse = Bf16Gemm.reuse()) { // under bf16: x and dy converted once for every chain's GEMMs
            backwardChains(x, dy, dx, k, firstTrainable, accumulateParams, accumulateInput);
        }
    }

    private void backwardChains(Mat x, Mat dy, Mat dx, int k, int firstTrainable, boolean accumulateParams, boolean accumulateInput) {
        int frozenIn = narrowInputGradient ? frozenInWidth(firstTrainable) : 0;
        for (int i = active(k) - 1; i >= 0; i--) {
            if (chainBase + i < firstTrainable) {
                break; // this and every narrower output chain are frozen
            }
            Mat dyi = dy.colsCached(outOffset[i], outWidth[i]);
            Gemm.mm(dyi, true, x.colsCached(0, inPrefix[i]), false, weightGrad[i], accumulateParams);
            if (biasGrad[i] != null) {
                Kernels.columnSums(dyi, biasGrad[i], accumulateParams);
            }
            // The widest chain covers every input column, so it writes; narrower ones add.
            boolean add = accumulateInput || i != active(k) - 1;
            int w = inPrefix[i] - frozenIn;
            Gemm.mm(dyi, false, weight[i].colsCached(frozenIn, w), false, dx.colsCached(frozenIn, w), add);
        }
    }

    /**
     * Whether a trainable output chain's input gradient skips the frozen input columns (the default). The narrower
     * GEMM may round its float32 results in the last bit differently from the full-width one (OpenBLAS picks its
     * kernels by shape); float64 results are identical. Off: the full-width dX, bit-identical to the full backward on
     * the trainable chains in float32 too, at about a fifth more backward FLOPs for a frozen {2,2} of {2,2,2}. Tests
     * switch it; {@code FlopCount} counts the default.
     */
    public static volatile boolean narrowInputGradient = true;

    /** Input columns that belong to frozen chains (chains < firstTrainable): the input prefix of the last frozen output chain. */
    public int frozenInWidth(int firstTrainable) {
        int frozen = Math.min(Math.max(firstTrainable - chainBase, 0), weight.length);
        return frozen == 0 ? 0 : inPrefix[frozen - 1];
    }

}
