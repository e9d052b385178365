package io.catena.model.layers;

import io.catena.model.ColmConfig;
import io.catena.model.Params;
import io.catena.model.kernel.Bf16Gemm;
import io.catena.model.kernel.Buf;
import io.catena.model.kernel.Gemm;
import io.catena.model.kernel.Mat;
import io.catena.model.kernel.Parallel;
import io.catena.model.kernel.Prof;
import io.catena.model.kernel.VectorKernels;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * Chain FFN: every linear is a chain linear with the model's chain ratios (chain i's hidden width is
 * F * c_i / sum(C)). GELU: {@code down(gelu(up(h)))}; SwiGLU: {@code down(silu(gate(h)) * up(h))}.
 * The activation is applied in one fused pass and differentiated in one fused pass.
 */
public final class FeedForward {
    private static final double SQRT_2_OVER_PI = Math.sqrt(2.0 / Math.PI);

    /** Gradient scratch shared by every layer. */
    public static final class Scratch {
        final Mat dAct;
        final Mat dUp;
        final Mat dGate;

        public Scratch(ColmConfig cfg, int rows, DataType type) {
            dAct = Mat.allocateActivation(type, rows, cfg.ffnWidth());
            dUp = Mat.allocateActivation(type, rows, cfg.ffnWidth());
            dGate = cfg.activation() == ColmConfig.Activation.SWIGLU ? Mat.allocateActivation(type, rows, cfg.ffnWidth()) : null;
        }
    }

    private final ColmConfig cfg;
    private final boolean swiglu;
    private final ChainLinear up;
    private final ChainLinear gate;
    private final ChainLinear down;
    private final Scratch s;
    // Saved for backward. On the float32 GELU path the forward overwrites u with gelu'(u).
    private final Mat u;
    private final Mat g;
    private final Mat act;

    public FeedForward(ColmConfig cfg, Params params, Params grads, String prefix, Scratch scratch, int rows, DataType type) {
        this.cfg = cfg;
        this.swiglu = cfg.activation() == ColmConfig.Activation.SWIGLU;
        this.s = scratch;
        int n = cfg.numChains();
        int[] hidden = new int[n];
        int[] inPrefix = new int[n];
        int[] outWidth = new int[n];
        int[] hiddenPrefix = new int[n];
        for (int i = 0; i < n; i++) {
            hidden[i] = cfg.ffnChainWidth(i);
            inPrefix[i] = cfg.prefixWidth(i + 1);
            outWidth[i] = cfg.chainWidth(i);
            hiddenPrefix[i] = cfg.ffnPrefixWidth(i + 1);
        }
        up = new ChainLinear(params, grads, prefix + "ffn.up", 0, hidden, inPrefix);
        gate = swiglu ? new ChainLinear(params, grads, prefix + "ffn.gate", 0, hidden, inPrefix) : null;
        down = new ChainLinear(params, grads, prefix + "ffn.down", 0, outWidth, hiddenPrefix);
        u = Mat.allocateActivation(type, rows, cfg.ffnWidth());
        g = swiglu ? Mat.allocateActivation(type, rows, cfg.ffnWidth()) : null;
        act = Mat.allocateActivation(type, rows, cfg.ffnWidth());
    }

    public void forward(Mat h, Mat y, int k) {
        int f = cfg.ffnPrefixWidth(k);
        try (var reuse = Bf16Gemm.reuse()) { // h converted to bf16 once for up and gate
            up.forward(h, u, k);
            if (swiglu) {
                gate.forward(h, g, k);
            }
        }
        long t = Prof.start();
        activate(f);
        Prof.stop("ffn.fwd.act", t);
        down.forward(act, y, k);
    }

    /**
     * dh (+)= d FFN / dh given dy; parameter gradients of chains >= firstTrainable. Only what reaches a trainable
     * parameter is computed (see {@link ChainLinear#backward}): the hidden columns of frozen chains are skipped.
     */
    public void backward(Mat h, Mat dy, Mat dh, int k, int firstTrainable, boolean accParams, boolean accInput) {
        int f = cfg.ffnPrefixWidth(k);
        down.backward(act, dy, s.dAct, k, firstTrainable, accParams, false);
        long t = Prof.start();
        activationBackward(cfg.ffnPrefixWidth(Math.min(Math.max(firstTrainable, 0), k)), f);
        Prof.stop("ffn.bwd.act", t);
        try (var reuse = Bf16Gemm.reuse()) {
            up.backward(h, s.dUp, dh, k, firstTrainable, accParams, accInput);
            if (swiglu) {
                gate.backward(h, s.dGate, dh, k, firstTrainable, accParams, true);
            }
        }
    }

    /**
     * precision = bf16 computes SwiGLU in float32 vector code ({@link VectorKernels#swiglu}): its output and input
     * gradients are rounded to bf16 by the GEMMs that read them. fp32 keeps the float64 scalar formula below.
     */
    private boolean vectorSwiglu() {
        return swiglu && Gemm.precision() == Gemm.Precision.BF16 && u.buf instanceof Buf.F32;
    }

    private void activate(int f) {
        final Buf ub = u.buf, ab = act.buf, gb = swiglu ? g.buf : null;
        final boolean vectorSwiglu = vectorSwiglu();
        Parallel.forRows(u.rows, (from, to) -> {
            for (int r = from; r < to; r++) {
                int o = r * u.ld;
                if (vectorSwiglu) { // per chain segment, as GELU below
                    for (int i = 0; i < chainsIn(f); i++) {
                        int so = o + cfg.ffnPrefixWidth(i);
                        VectorKernels.swiglu(((Buf.F32) ub).bytes(), so, ((Buf.F32) gb).bytes(), so, ((Buf.F32) ab).bytes(), so,
                                cfg.ffnChainWidth(i));
                    }
                    continue;
                }
                if (!swiglu && ub instanceof Buf.F32 fu && ab instanceof Buf.F32 fa) {
                    // per chain segment: a chain's elements split into vector body and scalar tail the same way at every scale
                    for (int i = 0; i < chainsIn(f); i++) {
                        int so = o + cfg.ffnPrefixWidth(i);
                        VectorKernels.geluWithGrad(fu.bytes(), so, fa.bytes(), so, cfg.ffnChainWidth(i));
                    }
                    continue;
                }
                for (int c = 0; c < f; c++) {
                    double x = ub.get(o + c);
                    ab.set(o + c, swiglu ? silu(gb.get(o + c)) * x : gelu(x));
                }
            }
        });
    }

    /** d activation over hidden columns [col, f) of every row. */
    private void activationBackward(int col, int f) {
        final Buf ub = u.buf, da = s.dAct.buf, du = s.dUp.buf;
        final Buf gb = swiglu ? g.buf : null, dg = swiglu ? s.dGate.buf : null;
        final boolean vectorSwiglu = vectorSwiglu();
        Parallel.forRows(u.rows, (from, to) -> {
            for (int r = from; r < to; r++) {
                int o = r * u.ld;
                if (vectorSwiglu) { // per chain segment, as the forward
                    for (int i = 0; i < chainsIn(f); i++) {
                        int a = Math.max(cfg.ffnPrefixWidth(i), col), b = cfg.ffnPrefixWidth(i + 1);
                        if (a < b) {
                            VectorKernels.swigluBackward(((Buf.F32) ub).bytes(), ((Buf.F32) gb).bytes(), ((Buf.F32) da).bytes(),
                                    ((Buf.F32) du).bytes(), ((Buf.F32) dg).bytes(), o + a, b - a);
                        }
                    }
                    continue;
                }
                if (!swiglu && ub instanceof Buf.F32 fu && da instanceof Buf.F32 fa && du instanceof Buf.F32 fd) {
                    // the forward left gelu'(u) in u
                    VectorKernels.mul(fu.bytes(), o + col, fa.bytes(), o + col, fd.bytes(), o + col, f - col);
                    continue;
                }
                for (int c = col; c < f; c++) {
                    double x = ub.get(o + c), d = da.get(o + c);
                    if (swiglu) {
                        double z = gb.get(o + c);
                        double sig = 1.0 / (1.0 + Math.exp(-z));
                        du.set(o + c, d * z * sig);
                        dg.set(o + c, d * x * sig * (1.0 + z * (1.0 - sig)));
                    } else {
                        du.set(o + c, d * geluGrad(x));
                    }
                }
            }
        });
    }

    /** Number of chains whose FFN columns make up the first f columns. */
    private int chainsIn(int f) {
        int k = 0;
        while (k < cfg.numChains() && cfg.ffnPrefixWidth(k + 1) <= f) {
            k++;
        }
        return k;
    }

    /**
     * tanh through exp: Math.tanh is a JNI call into fdlibm on Java 17 (it dominated a training
     * profile), Math.exp is a JIT intrinsic. Saturates exactly for large |x|.
     */
    static double tanh(double x) {
        if (x > 20) {
            return 1.0;
        }
        if (x < -20) {
            return -1.0;
        }
        double e = Math.exp(2 * x);
        return (e - 1) / (e + 1);
    }

    /** GELU, tanh approximation (GPT-2's). */
    public static double gelu(double x) {
        return 0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
    }

    public static double geluGrad(double x) {
        double inner = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
        double th = tanh(inner);
        double dInner = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x);
        return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * dInner;
    }

    public static double silu(double z) {
        return z / (1.0 + Math.exp(-z));
    }
}
