package io.catena.model.layers;

import io.catena.model.kernel.Buf;
import io.catena.model.kernel.VectorKernels;

/**
 * Rotary position embedding, rotate-half convention: for m < hd/2 the pair (x[m], x[m + hd/2])
 * is rotated by angle pos * theta^(-2m/hd). Tables are computed once in double.
 */
public final class Rope {
    private final int half;
    private final double[] cos;
    private final double[] sin;
    private final float[] cosF;
    private final float[] sinF;

    public Rope(int headDim, int maxSeqLen, double theta) {
        this.half = headDim / 2;
        cos = new double[maxSeqLen * half];
        sin = new double[maxSeqLen * half];
        for (int t = 0; t < maxSeqLen; t++) {
            for (int m = 0; m < half; m++) {
                double a = t * Math.pow(theta, -2.0 * m / headDim);
                cos[t * half + m] = Math.cos(a);
                sin[t * half + m] = Math.sin(a);
            }
        }
        cosF = new float[cos.length];
        sinF = new float[sin.length];
        for (int i = 0; i < cos.length; i++) {
            cosF[i] = (float) cos[i];
            sinF[i] = (float) sin[i];
        }
    }

    public int maxPositions() {
        return cos.length / half;
    }

    /** dst[0..hd) = R(pos) src[0..hd) (inverse: R(pos)^T, the backward of the rotation). */
    public void rotate(Buf src, int so, Buf dst, int dOff, int pos, boolean inverse) {
        final int base = pos * half;
        if (src instanceof Buf.F32 fs && dst instanceof Buf.F32 fd && VectorKernels.fits(half)) {
            VectorKernels.rotateHalf(fs.bytes(), so, fd.bytes(), dOff, cosF, sinF, base, half, inverse);
            return;
        }
        final double sign = inverse ? -1.0 : 1.0;
        for (int m = 0; m < half; m++) {
            double c = cos[base + m], s = sign * sin[base + m];
            double x1 = src.get(so + m), x2 = src.get(so + m + half);
            dst.set(dOff + m, x1 * c - x2 * s);
            dst.set(dOff + m + half, x1 * s + x2 * c);
        }
    }

    /** Like {@link #rotate} but adds the result into dst. */
    public void rotateAdd(Buf src, int so, Buf dst, int dOff, int pos, boolean inverse) {
        final int base = pos * half;
        final double sign = inverse ? -1.0 : 1.0;
        for (int m = 0; m < half; m++) {
            double c = cos[base + m], s = sign * sin[base + m];
            double x1 = src.get(so + m), x2 = src.get(so + m + half);
            dst.set(dOff + m, dst.get(dOff + m) + x1 * c - x2 * s);
            dst.set(dOff + m + half, dst.get(dOff + m + half) + x1 * s + x2 * c);
        }
    }
}
