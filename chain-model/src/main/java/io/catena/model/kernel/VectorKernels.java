package io.catena.model.kernel;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Float32 fast paths (JDK Vector API) for the transcendental-heavy kernels: scalar Math.exp costs
 * ~7 ns per element here, the vector EXP/TANH ~0.5 ns. Every method has a scalar twin in the
 * calling layer (used for float64 and checked against this one by VectorKernelsTest), so the
 * gradient check in float64 covers the math and the equivalence test covers these loops.
 * Offsets and lengths are in floats.
 *
 * <p>Reproducibility: only operations that are exactly rounded (add, mul, fma, sqrt, div, min/max,
 * conversions) are used, and horizontal sums run in a fixed lane order. The Vector API's own EXP/TANH
 * and ADD reductions give different bits in the interpreter's fallback and in C2's intrinsics, so a run
 * resumed in a fresh JVM would drift from an uninterrupted one; {@link #exp} below is a polynomial
 * (Cephes expf, ~1 ulp) built from exact operations instead.
 */
public final class VectorKernels {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();
    private static final float SQRT_2_OVER_PI = (float) Math.sqrt(2.0 / Math.PI);

    private VectorKernels() {
    }

    private static final float ROUND_MAGIC = 12582912f; // 1.5 * 2^23: adding it rounds to an integer

    /**
     * e^x per lane from exact operations: Cody-Waite reduction and the degree-6 Cephes expf
     * polynomial (~1 ulp); rounding and 2^n via the 1.5*2^23 magic number, since the Vector API's
     * float/int conversions are not intrinsified here (measured 12x slower).
     */
    static FloatVector exp(FloatVector x) {
        x = x.max(-87.33654f).min(88.72283f);
        FloatVector fx = x.mul(1.44269504088896341f).add(0.5f);
        FloatVector t = fx.add(ROUND_MAGIC).sub(ROUND_MAGIC);
        // floor(fx): subtract 1.0 (bits 0x3f800000) where rounding went up
        FloatVector n = t.sub(t.compare(VectorOperators.GT, fx).toVector().reinterpretAsInts().and(0x3f800000).reinterpretAsFloats());
        FloatVector r = n.fma(FloatVector.broadcast(S, -0.693359375f), x).add(n.mul(2.12194440e-4f));
        FloatVector r2 = r.mul(r);
        FloatVector y = r.fma(FloatVector.broadcast(S, 1.9875691500e-4f), FloatVector.broadcast(S, 1.3981999507e-3f));
        y = y.fma(r, FloatVector.broadcast(S, 8.3334519073e-3f));
        y = y.fma(r, FloatVector.broadcast(S, 4.1665795894e-2f));
        y = y.fma(r, FloatVector.broadcast(S, 1.6666665459e-1f));
        y = y.fma(r, FloatVector.broadcast(S, 5.0000001201e-1f));
        y = y.fma(r2, r).add(1f);
        // 2^n: the low mantissa bits of n + 127 + 1.5*2^23 hold n + 127; shift them into the exponent field
        IntVector e = n.add(ROUND_MAGIC + 127f).reinterpretAsInts().lanewise(VectorOperators.LSHL, 23);
        return y.mul(e.reinterpretAsFloats());
    }

    /** tanh per lane as 1 - 2 / (e^{2x} + 1), saturating exactly at +-1. */
    static FloatVector tanh(FloatVector x) {
        FloatVector e = exp(x.mul(2f));
        return FloatVector.broadcast(S, 1f).sub(FloatVector.broadcast(S, 2f).div(e.add(1f)));
    }

    /** The same polynomial for one value (scalar tails), so an element's result never depends on its lane. */
    static float expScalar(float x) {
        return exp(FloatVector.broadcast(S, x)).lane(0);
    }

    static float tanhScalar(float x) {
        return tanh(FloatVector.broadcast(S, x)).lane(0);
    }

    /** Sum of the lanes in lane order (reduceLanes(ADD) may reorder, and differently per JIT tier). */
    static double sum(FloatVector v) {
        float[] lanes = LANES.get();
        v.intoArray(lanes, 0);
        double s = 0;
        for (float f : lanes) {
            s += f;
        }
        return s;
    }

    /** Per-thread scratch for {@link #sum}: toArray() would allocate once per row (millions per step). */
    private static final ThreadLocal<float[]> LANES = ThreadLocal.withInitial(() -> new float[L]);

    private static FloatVector load(ByteBuffer b, int off) {
        return FloatVector.fromByteBuffer(S, b, off * 4, NATIVE);
    }

    public static float max(ByteBuffer b, int off, int n) {
        FloatVector acc = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
        int i = 0;
        for (int ub = S.loopBound(n); i < ub; i += L) {
            acc = acc.max(load(b, off + i));
        }
        float m = acc.reduceLanes(VectorOperators.MAX);
        for (; i < n; i++) {
            m = Math.max(m, b.getFloat((off + i) * 4));
        }
        return m;
    }

    /** sum of exp(scale * x - shift) over n elements (accumulated per lane in float, then in double). */
    public static double sumExp(ByteBuffer b, int off, int n, float scale, float shift) {
        FloatVector acc = FloatVector.zero(S);
        int i = 0;
        for (int ub = S.loopBound(n); i < ub; i += L) {
            acc = acc.add(exp(load(b, off + i).mul(scale).sub(shift)));
        }
        double s = sum(acc);
        for (; i < n; i++) {
            s += expScalar(scale * b.getFloat((off + i) * 4) - shift);
        }
        return s;
    }

    /** x = mul * exp(scale * x - shift), in place. */
    public static void expInPlace(ByteBuffer b, int off, int n, float scale, float shift, float mul) {
        int i = 0;
        for (int ub = S.loopBound(n); i < ub; i += L) {
            exp(load(b, off + i).mul(scale).sub(shift)).mul(mul).intoByteBuffer(b, (off + i) * 4, NATIVE);
        }
        for (; i < n; i++) {
            int at = (off + i) * 4;
            b.putFloat(at, expScalar(scale * b.getFloat(at) - shift) * mul);
        }
    }

    /** sum of x * y. */
    public static double dot(ByteBuffer x, int xo, ByteBuffer y, int yo, int n) {
        FloatVector acc = FloatVector.zero(S);
        int i = 0;
        for (int ub = S.loopBound(n); i < ub; i += L) {
            acc = load(x, xo + i).fma(load(y, yo + i), acc);
        }
        double s = sum(acc);
        for (; i < n; i++) {
            s += (double) x.getFloat((xo + i) * 4) * y.getFloat((yo + i) * 4);
        }
        return s;
    }

    /** d = scale * p * (d - dot), in place over n elements (softmax backward). */
    public static void softmaxBackwardRow(ByteBuffer p, int po, ByteBuffer d, int dOff, int n, float dot, float scale) {
        int i = 0;
        for (int ub = S.loopBound(n); i < ub; i += L) {
            load(p, po + i).mul(load(d, dOff + i).sub(dot)).mul(scale).intoByteBuffer(d, (dOff + i) * 4, NATIVE);
        }
        for (; i < n; i++) {
            d.putFloat((dOff + i) * 4, scale * p.getFloat((po + i) * 4) * (d.getFloat((dOff + i) * 4) - dot));
        }
    }

    /** Fills n floats with v. */
    public static void fill(ByteBuffer b, int off, int n, float v) {
        FloatVector z = FloatVector.broadcast(S, v);
        int i = 0;
        for (int ub = S.loopBound(n); i < ub; i += L) {
            z.intoByteBuffer(b, (off + i) * 4, NATIVE);
        }
        for (; i < n; i++) {
            b.putFloat((off + i) * 4, v);
        }
    }

    /** out = a + b over n elements (out may alias a or b). */
    public static void add(ByteBuffer a, int ao, ByteBuffer b, int bo, ByteBuffer out, int oo, int n) {
        int i = 0;
        for (int ub = S.loopBound(n); i < ub; i += L) {
            load(a, ao + i).add(load(b, bo + i)).intoByteBuffer(out, (oo + i) * 4, NATIVE);
        }
        for (; i < n; i++) {
            out.putFloat((oo + i) * 4, a.getFloat((ao + i) * 4) + b.getFloat((bo + i) * 4));
        }
    }

    /** acc[c] += x[c] over n elements (acc is a heap array, e.g. per-thread column sums). */
    public static void accumulate(ByteBuffer x, int xo, float[] acc, int n) {
        int i = 0;
        for (int ub = S.loopBound(n); i < ub; i += L) {
            FloatVector.fromArray(S, acc, i).add(load(x, xo + i)).intoArray(acc, i);
        }
        for (; i < n; i++) {
            acc[i] += x.getFloat((xo + i) * 4);
        }
    }

    /** sum of x and sum of x^2 over n elements, as {sum, sumSq}. */
    public static void moments(ByteBuffer x, int xo, int n, double[] out) {
        FloatVector s1 = FloatVector.zero(S), s2 = FloatVector.zero(S);
        int i = 0;
        for (int ub = S.loopBound(n); i < ub; i += L) {
            FloatVector v = load(x, xo + i);
            s1 = s1.add(v);
            s2 = v.fma(v, s2);
        }
        double a = sum(s1), b = sum(s2);
        for (; i < n; i++) {
            double v = x.getFloat((xo + i) * 4);
            a += v;
            b += v * v;
        }
        out[0] = a;
        out[1] = b;
    }

    /** y = (x - mean) * rstd * gain + beta (beta may be null: RMSNorm with mean 0). */
    public static void normalize(ByteBuffer x, int xo, ByteBuffer y, int yo, ByteBuffer gain, int go, ByteBuffer beta, int bo,
                                 int n, float mean, float rstd) {
        int i = 0;
        for (int ub = S.loopBound(n); i < ub; i += L) {
            FloatVector v = load(x, xo + i).sub(mean).mul(rstd).mul(load(gain, go + i));
            if (beta != null) {
                v = v.add(load(beta, bo + i));
            }
            v.intoByteBuffer(y, (yo + i) * 4, NATIVE);
        }
        for (; i < n; i++) {
            float v = (x.getFloat((xo + i) * 4) - mean) * rstd * gain.getFloat((go + i) * 4);
            y.putFloat((yo + i) * 4, beta != null ? v + beta.getFloat((bo + i) * 4) : v);
        }
    }

    /**
     * Norm backward for one segment: accumulates dGain += dy*xhat, dBeta += dy (heap partials) and
     * returns {sum(dxhat), sum(dxhat*xhat)} with dxhat = dy * gain, xhat = (x - mean) * rstd.
     */
    public static void normBackwardSums(ByteBuffer x, int xo, ByteBuffer dy, int dyo, ByteBuffer gain, int go, int n,
                                        float mean, float rstd, float[] dGain, float[] dBeta, int po, double[] out) {
        FloatVector sd = FloatVector.zero(S), sdx = FloatVector.zero(S);
        int i = 0;
        for (int ub = S.loopBound(n); i < ub; i += L) {
            FloatVector xhat = load(x, xo + i).sub(mean).mul(rstd);
            FloatVector g = load(dy, dyo + i);
            FloatVector dxhat = g.mul(load(gain, go + i));
            sd = sd.add(dxhat);
            sdx = dxhat.fma(xhat, sdx);
            g.fma(xhat, FloatVector.fromArray(S, dGain, po + i)).intoArray(dGain, po + i);
            g.add(FloatVector.fromArray(S, dBeta, po + i)).intoArray(dBeta, po + i);
        }
        double a = sum(sd), b = sum(sdx);
        for (; i < n; i++) {
            float xhat = (x.getFloat((xo + i) * 4) - mean) * rstd;
            float g = dy.getFloat((dyo + i) * 4);
            float dxhat = g * gain.getFloat((go + i) * 4);
            a += dxhat;
            b += dxhat * xhat;
            dGain[po + i] += g * xhat;
            dBeta[po + i] += g;
        }
        out[0] = a;
        out[1] = b;
    }

    /** dx += rstd * (dy*gain - meanD - xhat * meanDX). */
    public static void normBackwardApply(ByteBuffer x, int xo, ByteBuffer dy, int dyo, ByteBuffer gain, int go, ByteBuffer dx, int dxo,
                                         int n, float mean, float rstd, float meanD, float meanDX) {
        int i = 0;
        for (int ub = S.loopBound(n); i < ub; i += L) {
            FloatVector xhat = load(x, xo + i).sub(mean).mul(rstd);
            FloatVector dxhat = load(dy, dyo + i).mul(load(gain, go + i));
            FloatVector d = dxhat.sub(meanD).sub(xhat.mul(meanDX)).mul(rstd);
            load(dx, dxo + i).add(d).intoByteBuffer(dx, (dxo + i) * 4, NATIVE);
        }
        for (; i < n; i++) {
            float xhat = (x.getFloat((xo + i) * 4) - mean) * rstd;
            float dxhat = dy.getFloat((dyo + i) * 4) * gain.getFloat((go + i) * 4);
            dx.putFloat((dxo + i) * 4, dx.getFloat((dxo + i) * 4) + rstd * (dxhat - meanD - xhat * meanDX));
        }
    }

    /** One fused AdamW pass over [from, to). */
    public static void adamW(ByteBuffer p, ByteBuffer g, ByteBuffer m, ByteBuffer v, int from, int to, float gradScale,
                             float b1, float b2, float decay, float stepSize, float invSqrtBc2, float eps) {
        int n = to - from;
        int i = 0;
        for (int ub = S.loopBound(n); i < ub; i += L) {
            int o = (from + i) * 4;
            FloatVector gi = FloatVector.fromByteBuffer(S, g, o, NATIVE).mul(gradScale);
            FloatVector mi = FloatVector.fromByteBuffer(S, m, o, NATIVE).mul(b1).add(gi.mul(1 - b1));
            FloatVector vi = FloatVector.fromByteBuffer(S, v, o, NATIVE).mul(b2).add(gi.mul(gi).mul(1 - b2));
            mi.intoByteBuffer(m, o, NATIVE);
            vi.intoByteBuffer(v, o, NATIVE);
            FloatVector denom = vi.lanewise(VectorOperators.SQRT).mul(invSqrtBc2).add(eps);
            FloatVector.fromByteBuffer(S, p, o, NATIVE).mul(decay).sub(mi.mul(stepSize).div(denom)).intoByteBuffer(p, o, NATIVE);
        }
        for (; i < n; i++) {
            int o = (from + i) * 4;
            float gi = g.getFloat(o) * gradScale;
            float mi = b1 * m.getFloat(o) + (1 - b1) * gi;
            float vi = b2 * v.getFloat(o) + (1 - b2) * gi * gi;
            m.putFloat(o, mi);
            v.putFloat(o, vi);
            p.putFloat(o, p.getFloat(o) * decay - stepSize * mi / ((float) Math.sqrt(vi) * invSqrtBc2 + eps));
        }
    }

    /** sum of squares over [from, to). */
    public static double sumSquares(ByteBuffer g, int from, int to) {
        FloatVector acc = FloatVector.zero(S);
        int n = to - from, i = 0;
        double s = 0;
        for (int ub = S.loopBound(n); i < ub; i += L) {
            FloatVector x = load(g, from + i);
            acc = x.fma(x, acc);
            if ((i & 4095) == 4096 - L) { // flush to double now and then: float lanes lose precision over millions of terms
                s += sum(acc);
                acc = FloatVector.zero(S);
            }
        }
        s += sum(acc);
        for (; i < n; i++) {
            double x = g.getFloat((from + i) * 4);
            s += x * x;
        }
        return s;
    }

    /** Whether n is a whole number of vectors. */
    public static boolean fits(int n) {
        return n % L == 0;
    }

    /** RoPE rotate-half of one head (2 * half floats); inverse applies the transpose (backward). */
    public static void rotateHalf(ByteBuffer src, int so, ByteBuffer dst, int dOff, float[] cos, float[] sin, int base, int half,
                                  boolean inverse) {
        for (int m = 0; m < half; m += L) {
            FloatVector c = FloatVector.fromArray(S, cos, base + m);
            FloatVector s = FloatVector.fromArray(S, sin, base + m);
            if (inverse) {
                s = s.neg();
            }
            FloatVector x1 = load(src, so + m), x2 = load(src, so + m + half);
            x1.mul(c).sub(x2.mul(s)).intoByteBuffer(dst, (dOff + m) * 4, NATIVE);
            x1.mul(s).add(x2.mul(c)).intoByteBuffer(dst, (dOff + m + half) * 4, NATIVE);
        }
    }

    /** act = gelu_tanh(u) and, in the same pass, u = gelu'(u) (what backward needs; tanh computed once). */
    public static void geluWithGrad(ByteBuffer u, int uo, ByteBuffer act, int ao, int n) {
        int i = 0;
        for (int ub = S.loopBound(n); i < ub; i += L) {
            FloatVector x = load(u, uo + i);
            FloatVector x2 = x.mul(x);
            FloatVector th = tanh(x2.mul(0.044715f).mul(x).add(x).mul(SQRT_2_OVER_PI));
            x.mul(0.5f).mul(th.add(1f)).intoByteBuffer(act, (ao + i) * 4, NATIVE);
            FloatVector dInner = x2.mul(3f * 0.044715f).add(1f).mul(SQRT_2_OVER_PI);
            th.add(1f).mul(0.5f).add(x.mul(0.5f).mul(th.mul(th).neg().add(1f)).mul(dInner)).intoByteBuffer(u, (uo + i) * 4, NATIVE);
        }
        for (; i < n; i++) {
            float x = u.getFloat((uo + i) * 4);
            float th = tanhScalar((x * x * 0.044715f * x + x) * SQRT_2_OVER_PI);
            act.putFloat((ao + i) * 4, 0.5f * x * (1f + th));
            u.putFloat((uo + i) * 4, 0.5f * (1 + th) + 0.5f * x * (1 - th * th) * ((x * x * (3f * 0.044715f) + 1f) * SQRT_2_OVER_PI));
        }
    }

    /**
     * SwiGLU in float32: act = silu(g) u = g sigma(g) u, sigma(g) = 1 / (1 + e^-g). The precision = bf16 path's
     * activation (its output is rounded to bf16 for the next GEMM); the fp32 path keeps FeedForward's float64
     * scalar formula. Scalar tails use the same operations in the same order, so an element's bits do not depend
     * on its lane.
     */
    public static void swiglu(ByteBuffer u, int uo, ByteBuffer g, int go, ByteBuffer act, int ao, int n) {
        int i = 0;
        for (int ub = S.loopBound(n); i < ub; i += L) {
            FloatVector z = load(g, go + i);
            FloatVector sig = FloatVector.broadcast(S, 1f).div(exp(z.neg()).add(1f));
            z.mul(sig).mul(load(u, uo + i)).intoByteBuffer(act, (ao + i) * 4, NATIVE);
        }
        for (; i < n; i++) {
            float z = g.getFloat((go + i) * 4);
            float sig = 1f / (expScalar(-z) + 1f);
            act.putFloat((ao + i) * 4, z * sig * u.getFloat((uo + i) * 4));
        }
    }

    /** SwiGLU's gradient in float32 (see {@link #swiglu}): du = d g sigma(g), dg = d u sigma(g) (1 + g (1 - sigma(g))). */
    public static void swigluBackward(ByteBuffer u, ByteBuffer g, ByteBuffer d, ByteBuffer du, ByteBuffer dg, int off, int n) {
        int i = 0;
        for (int ub = S.loopBound(n); i < ub; i += L) {
            FloatVector z = load(g, off + i), x = load(u, off + i), dd = load(d, off + i);
            FloatVector sig = FloatVector.broadcast(S, 1f).div(exp(z.neg()).add(1f));
            dd.mul(z).mul(sig).intoByteBuffer(du, (off + i) * 4, NATIVE);
            dd.mul(x).mul(sig).mul(z.mul(FloatVector.broadcast(S, 1f).sub(sig)).add(1f)).intoByteBuffer(dg, (off + i) * 4, NATIVE);
        }
        for (; i < n; i++) {
            float z = g.getFloat((off + i) * 4), x = u.getFloat((off + i) * 4), dd = d.getFloat((off + i) * 4);
            float sig = 1f / (expScalar(-z) + 1f);
            du.putFloat((off + i) * 4, dd * z * sig);
            dg.putFloat((off + i) * 4, dd * x * sig * (z * (1f - sig) + 1f));
        }
    }

    /** out = a * b over n elements. */
    public static void mul(ByteBuffer a, int ao, ByteBuffer b, int bo, ByteBuffer out, int oo, int n) {
        int i = 0;
        for (int ub = S.loopBound(n); i < ub; i += L) {
            load(a, ao + i).mul(load(b, bo + i)).intoByteBuffer(out, (oo + i) * 4, NATIVE);
        }
        for (; i < n; i++) {
            out.putFloat((oo + i) * 4, a.getFloat((ao + i) * 4) * b.getFloat((bo + i) * 4));
        }
    }

    /** x = exp(x - shift) in place; returns the sum (one exp per element). */
    public static double expStoreSum(ByteBuffer b, int off, int n, float shift) {
        FloatVector acc = FloatVector.zero(S);
        int i = 0;
        for (int ub = S.loopBound(n); i < ub; i += L) {
            FloatVector e = exp(load(b, off + i).sub(shift));
            e.intoByteBuffer(b, (off + i) * 4, NATIVE);
            acc = acc.add(e);
        }
        double s = sum(acc);
        for (; i < n; i++) {
            float e = expScalar(b.getFloat((off + i) * 4) - shift);
            b.putFloat((off + i) * 4, e);
            s += e;
        }
        return s;
    }

    /** x = x * scale (+ addend row when addend != null), in place. */
    public static void scaleAdd(ByteBuffer b, int off, int n, float scale, ByteBuffer addend, int ao) {
        int i = 0;
        for (int ub = S.loopBound(n); i < ub; i += L) {
            FloatVector v = load(b, off + i).mul(scale);
            if (addend != null) {
                v = v.add(load(addend, ao + i));
            }
            v.intoByteBuffer(b, (off + i) * 4, NATIVE);
        }
        for (; i < n; i++) {
            float v = b.getFloat((off + i) * 4) * scale;
            b.putFloat((off + i) * 4, addend != null ? v + addend.getFloat((ao + i) * 4) : v);
        }
    }

    /**
     * Causal softmax of one attention row in place: entries [0, n) become softmax(scale * x), entries
     * [n, rowLen) become 0. The last partial vector is handled with a lane mask instead of scalar
     * code (a scalar tail would run the whole vector exp once per element). Needs rowLen % L == 0.
     */
    public static void causalSoftmaxRow(ByteBuffer b, int off, int n, int rowLen, float scale) {
        int full = n / L * L;
        int m = full < n ? full + L : full; // end of the last vector touched, <= rowLen
        var tail = S.indexInRange(full, n);
        FloatVector neg = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
        FloatVector mx = neg;
        for (int i = 0; i < m; i += L) {
            FloatVector v = load(b, off + i);
            mx = mx.max(i < full ? v : neg.blend(v, tail));
        }
        float shift = mx.reduceLanes(VectorOperators.MAX) * scale;
        FloatVector acc = FloatVector.zero(S);
        for (int i = 0; i < m; i += L) {
            FloatVector e = exp(load(b, off + i).mul(scale).sub(shift));
            if (i >= full) {
                e = FloatVector.zero(S).blend(e, tail);
            }
            e.intoByteBuffer(b, (off + i) * 4, NATIVE);
            acc = acc.add(e);
        }
        float inv = (float) (1.0 / sum(acc));
        for (int i = 0; i < m; i += L) {
            load(b, off + i).mul(inv).intoByteBuffer(b, (off + i) * 4, NATIVE);
        }
        fill(b, off + m, rowLen - m, 0f);
    }
}
