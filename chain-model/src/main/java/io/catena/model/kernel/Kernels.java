package io.catena.model.kernel;

/**
 * Small memory-bound kernels shared by several layers (bias, residual, column sums). Layer-specific
 * fused kernels live next to their layer's forward and backward.
 */
public final class Kernels {
    private Kernels() {
    }

    /** y[r, :] += bias[0, :] for every row. */
    public static void addRowVector(Mat y, Mat bias) {
        final Buf yb = y.buf, bb = bias.buf;
        final int cols = y.cols, ld = y.ld, yo = y.offset, bo = bias.offset;
        Parallel.forRows(y.rows, (from, to) -> {
            for (int r = from; r < to; r++) {
                int base = yo + r * ld;
                if (yb instanceof Buf.F32 fy && bb instanceof Buf.F32 fb) {
                    VectorKernels.add(fy.bytes(), base, fb.bytes(), bo, fy.bytes(), base, cols);
                    continue;
                }
                for (int c = 0; c < cols; c++) {
                    yb.set(base + c, yb.get(base + c) + bb.get(bo + c));
                }
            }
        });
    }

    /** out = a + b, element-wise over equally shaped regions (out may alias a). */
    public static void add(Mat a, Mat b, Mat out) {
        a.checkSameShape(b);
        a.checkSameShape(out);
        Parallel.forRows(a.rows, (from, to) -> {
            for (int r = from; r < to; r++) {
                int ia = a.offset + r * a.ld, ib = b.offset + r * b.ld, io = out.offset + r * out.ld;
                if (a.buf instanceof Buf.F32 fa && b.buf instanceof Buf.F32 fb && out.buf instanceof Buf.F32 fo) {
                    VectorKernels.add(fa.bytes(), ia, fb.bytes(), ib, fo.bytes(), io, a.cols);
                    continue;
                }
                for (int c = 0; c < a.cols; c++) {
                    out.buf.set(io + c, a.buf.get(ia + c) + b.buf.get(ib + c));
                }
            }
        });
    }

    /** dst = src. */
    public static void copy(Mat src, Mat dst) {
        src.checkSameShape(dst);
        Parallel.forRows(src.rows, (from, to) -> {
            for (int r = from; r < to; r++) {
                src.buf.copyTo(src.offset + r * src.ld, dst.buf, dst.offset + r * dst.ld, src.cols);
            }
        });
    }

    /**
     * out[0, c] (+)= sum over rows of m[r, c]. Rows are split into fixed parts whose partial sums are
     * added in part order, so the result does not depend on scheduling.
     */
    public static void columnSums(Mat m, Mat out, boolean accumulate) {
        if (out.cols != m.cols) {
            throw new IllegalArgumentException("column sums of " + m + " into " + out);
        }
        if (m.buf instanceof Buf.F32 fm) {
            float[][] partial = new float[Parallel.parts(m.rows)][m.cols];
            Parallel.forParts(m.rows, (p, from, to) -> {
                for (int r = from; r < to; r++) {
                    VectorKernels.accumulate(fm.bytes(), m.offset + r * m.ld, partial[p], m.cols);
                }
            });
            for (int c = 0; c < m.cols; c++) {
                double s = accumulate ? out.buf.get(out.offset + c) : 0.0;
                for (float[] part : partial) {
                    s += part[c];
                }
                out.buf.set(out.offset + c, s);
            }
            return;
        }
        double[][] partial = new double[Parallel.parts(m.rows)][m.cols];
        Parallel.forParts(m.rows, (p, from, to) -> {
            double[] acc = partial[p];
            for (int r = from; r < to; r++) {
                int base = m.offset + r * m.ld;
                for (int c = 0; c < m.cols; c++) {
                    acc[c] += m.buf.get(base + c);
                }
            }
        });
        for (int c = 0; c < m.cols; c++) {
            double s = accumulate ? out.buf.get(out.offset + c) : 0.0;
            for (double[] part : partial) {
                s += part[c];
            }
            out.buf.set(out.offset + c, s);
        }
    }
}
