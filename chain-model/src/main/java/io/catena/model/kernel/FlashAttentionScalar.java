package io.catena.model.kernel;

/**
 * {@link FlashAttention}'s algorithm in scalar code over {@link Buf} (float64 gradient checks; any tile size):
 * the same tiles, online softmax, saved log-sum-exp and recomputing backward, so the gradient check covers the
 * tiled math and {@code FlashAttentionTest} the vector loops. Offsets are in elements; rows are [t, hd].
 */
public final class FlashAttentionScalar {
    private FlashAttentionScalar() {
    }

    /** out[i] = softmax_causal(scale * q_i K^T) V and lse[lseOff + i] = its log-sum-exp, for every row i < t. */
    public static void forward(Buf q, Buf k, Buf v, int off, int t, int hd, double scale, int tile, Buf out,
                               Buf lse, int lseOff) {
        double[] m = new double[tile], l = new double[tile], acc = new double[tile * hd], p = new double[tile];
        for (int i0 = 0; i0 < t; i0 += tile) {
            int rows = Math.min(tile, t - i0);
            java.util.Arrays.fill(acc, 0);
            for (int j0 = 0; j0 <= i0; j0 += tile) {
                for (int r = 0; r < rows; r++) {
                    int i = i0 + r, n = Math.min(tile, i - j0 + 1); // keys of this tile at or before i
                    double blockMax = Double.NEGATIVE_INFINITY;
                    for (int c = 0; c < n; c++) {
                        p[c] = scale * dot(q, off + i * hd, k, off + (j0 + c) * hd, hd);
                        blockMax = Math.max(blockMax, p[c]);
                    }
                    double mNew = j0 == 0 ? blockMax : Math.max(m[r], blockMax);
                    double corr = j0 == 0 ? 0 : Math.exp(m[r] - mNew);
                    double sum = 0;
                    for (int x = 0; x < hd; x++) {
                        acc[r * hd + x] *= corr;
                    }
                    for (int c = 0; c < n; c++) {
                        double e = Math.exp(p[c] - mNew);
                        sum += e;
                        for (int x = 0; x < hd; x++) {
                            acc[r * hd + x] += e * v.get(off + (j0 + c) * hd + x);
                        }
                    }
                    l[r] = (j0 == 0 ? 0 : l[r] * corr) + sum;
                    m[r] = mNew;
                }
            }
            for (int r = 0; r < rows; r++) {
                for (int x = 0; x < hd; x++) {
                    out.set(off + (i0 + r) * hd + x, acc[r * hd + x] / l[r]);
                }
                lse.set(lseOff + i0 + r, m[r] + Math.log(l[r]));
            }
        }
    }

    /**
     * dq, dk, dv of one pair (at off, overwritten) given dO, with probabilities recomputed from lse and
     * delta_i = dO_i . o_i (o row i at oOff + i * oStride).
     */
    public static void backward(Buf q, Buf k, Buf v, Buf dO, int off, int t, int hd, double scale, int tile, Buf lse,
                                int lseOff, Buf o, int oOff, int oStride, Buf dq, Buf dk, Buf dv) {
        double[] delta = new double[t];
        for (int i = 0; i < t; i++) {
            delta[i] = dot(dO, off + i * hd, o, oOff + i * oStride, hd);
        }
        dq.fill(off, t * hd, 0.0);
        dk.fill(off, t * hd, 0.0);
        dv.fill(off, t * hd, 0.0);
        for (int j0 = 0; j0 < t; j0 += tile) {
            for (int i0 = j0; i0 < t; i0 += tile) {
                for (int i = i0; i < Math.min(t, i0 + tile); i++) {
                    for (int j = j0; j < Math.min(j0 + tile, i + 1); j++) {
                        double p = Math.exp(scale * dot(q, off + i * hd, k, off + j * hd, hd) - lse.get(lseOff + i));
                        double ds = p * (dot(dO, off + i * hd, v, off + j * hd, hd) - delta[i]) * scale;
                        for (int x = 0; x < hd; x++) {
                            dv.add(off + j * hd + x, p * dO.get(off + i * hd + x));
                            dk.add(off + j * hd + x, ds * q.get(off + i * hd + x));
                            dq.add(off + i * hd + x, ds * k.get(off + j * hd + x));
                        }
                    }
                }
            }
        }
    }

    private static double dot(Buf a, int ao, Buf b, int bo, int n) {
        double s = 0;
        for (int x = 0; x < n; x++) {
            s += a.get(ao + x) * b.get(bo + x);
        }
        return s;
    }
}
