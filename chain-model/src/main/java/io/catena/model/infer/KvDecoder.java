package io.catena.model.infer;

import io.catena.model.ColmConfig;
import io.catena.model.Params;
import io.catena.model.kernel.Mat;
import io.catena.model.layers.FeedForward;

/**
 * Token-by-token inference for one sequence with a KV cache, at any scale k (elastic inference).
 * A second, independent implementation of the forward (plain loops, no GEMM batching), which the
 * tests compare with {@link io.catena.model.ColmModel}.
 *
 * <p>CoLM-Air: K/V depend only on chain 0, so the cache is valid for every scale; a prompt can be
 * prefilled by the chain-0 sub-model alone and the scale can change at any token. CoLM: the cache
 * holds K/V of the chains computed so far; raising k replays the sequence to fill the new chains.
 */
public final class KvDecoder {
    private final ColmConfig cfg;
    private final Params params;
    private final int capacity;
    private final int kvCols;
    private final float[][] keyCache;
    private final float[][] valueCache;
    private final int[] history;
    private int length;
    /** CoLM: chains whose K/V are in the cache for every position < length. */
    private int cachedChains;

    public KvDecoder(ColmConfig cfg, Params params, int capacity) {
        if (capacity < 1 || capacity > cfg.maxSeqLen()) {
            throw new IllegalArgumentException("KV cache capacity must be in 1.." + cfg.maxSeqLen() + " (max_seq_len), got " + capacity);
        }
        this.cfg = cfg;
        this.params = params;
        this.capacity = capacity;
        this.kvCols = cfg.isAir() ? cfg.kvWidth() : cfg.dModel();
        this.keyCache = new float[cfg.layers()][capacity * kvCols];
        this.valueCache = new float[cfg.layers()][capacity * kvCols];
        this.history = new int[capacity];
        this.cachedChains = cfg.numChains();
    }

    public int length() {
        return length;
    }

    public void reset() {
        length = 0;
        cachedChains = cfg.numChains();
    }

    /**
     * Appends a token at scale k and returns the logits of scale k for the next token (or null
     * when wantLogits is false: prefill skips the LM head).
     */
    public double[] step(int token, int k, boolean wantLogits) {
        cfg.checkScale(k);
        if (token < 0 || token >= cfg.vocabSize()) {
            throw new IllegalArgumentException("token id " + token + " is outside the vocabulary [0, " + cfg.vocabSize() + ")");
        }
        if (length >= capacity) {
            throw new IllegalStateException("KV cache is full (" + capacity + " positions); start a new sequence or raise capacity");
        }
        if (!cfg.isAir() && k > cachedChains) {
            replayAt(k);
        }
        if (!cfg.isAir()) {
            cachedChains = length == 0 ? k : Math.min(cachedChains, k);
        }
        history[length] = token;
        double[] logits = forwardPosition(token, length, k, wantLogits);
        length++;
        return logits;
    }

    /** CoLM: recompute the cached K/V of all previous positions at the wider scale k. */
    private void replayAt(int k) {
        int n = length;
        length = 0;
        for (int p = 0; p < n; p++) {
            forwardPosition(history[p], p, k, false);
            length++;
        }
        cachedChains = k;
    }

    private double[] forwardPosition(int token, int pos, int k, boolean wantLogits) {
        int d = cfg.prefixWidth(k);
        double[] x = new double[d];
        for (int i = 0; i < k; i++) {
            Mat e = params.mat("embed.c" + i);
            for (int c = 0; c < e.cols; c++) {
                x[cfg.chainOffset(i) + c] = e.get(token, c);
            }
        }
        double[] h = new double[d];
        for (int l = 0; l < cfg.layers(); l++) {
            String p = "layers." + l + ".";
            norm(p + "norm1", x, h, k);
            attention(p, h, pos, k, l, x);
            norm(p + "norm2", x, h, k);
            feedForward(p, h, k, x);
        }
        if (!wantLogits) {
            return null;
        }
        norm("norm_f", x, h, k);
        double[] logits = new double[cfg.vocabSize()];
        for (int i = 0; i < k; i++) {
            Mat w = params.mat("head.c" + i);
            int off = cfg.chainOffset(i);
            for (int r = 0; r < w.rows; r++) {
                double hr = h[off + r];
                for (int v = 0; v < w.cols; v++) {
                    logits[v] += hr * w.get(r, v);
                }
            }
        }
        return logits;
    }

    private void norm(String name, double[] x, double[] y, int k) {
        boolean ln = cfg.norm() == ColmConfig.NormKind.LAYERNORM;
        for (int i = 0; i < k; i++) {
            int off = cfg.chainOffset(i), w = cfg.chainWidth(i);
            double mu = 0;
            if (ln) {
                for (int c = 0; c < w; c++) {
                    mu += x[off + c];
                }
                mu /= w;
            }
            double var = 0;
            for (int c = 0; c < w; c++) {
                var += (x[off + c] - mu) * (x[off + c] - mu);
            }
            double rs = 1.0 / Math.sqrt(var / w + cfg.normEps());
            Mat g = params.mat(name + ".c" + i + ".gain");
            Mat b = ln ? params.mat(name + ".c" + i + ".bias") : null;
            for (int c = 0; c < w; c++) {
                y[off + c] = (x[off + c] - mu) * rs * g.get(0, c) + (b == null ? 0 : b.get(0, c));
            }
        }
    }

    /** y[outOff .. +rows) (+)= W x[0 .. cols) + b for one output chain (or a dense projection). */
    private void linear(String name, double[] x, double[] y, int outOff, boolean accumulate) {
        Mat w = params.mat(name + ".weight");
        Mat b = params.layout().has(name + ".bias") ? params.mat(name + ".bias") : null;
        for (int r = 0; r < w.rows; r++) {
            double s = b == null ? 0 : b.get(0, r);
            for (int c = 0; c < w.cols; c++) {
                s += w.get(r, c) * x[c];
            }
            y[outOff + r] = accumulate ? y[outOff + r] + s : s;
        }
    }

    private void attention(String p, double[] h, int pos, int k, int layer, double[] x) {
        int hd = cfg.headDim(), d = cfg.prefixWidth(k), heads = cfg.headsUpTo(k);
        double[] q = new double[d];
        double[] kv = new double[kvCols];
        double[] vv = new double[kvCols];
        for (int i = 0; i < k; i++) {
            linear(p + "attn.q.c" + i, h, q, cfg.chainOffset(i), false);
        }
        if (cfg.isAir()) {
            linear(p + "attn.k.c0", h, kv, 0, false);
            linear(p + "attn.v.c0", h, vv, 0, false);
        } else {
            for (int i = 0; i < k; i++) {
                linear(p + "attn.k.c" + i, h, kv, cfg.chainOffset(i), false);
                linear(p + "attn.v.c" + i, h, vv, cfg.chainOffset(i), false);
            }
        }
        int kvHeadsHere = cfg.isAir() ? cfg.kvHeads() : heads;
        float[] kc = keyCache[layer], vc = valueCache[layer];
        double[] rot = new double[hd];
        for (int j = 0; j < kvHeadsHere; j++) {
            rotate(kv, j * hd, rot, pos);
            for (int c = 0; c < hd; c++) {
                kc[pos * kvCols + j * hd + c] = (float) rot[c];
                vc[pos * kvCols + j * hd + c] = (float) vv[j * hd + c];
            }
        }
        double[] att = new double[d];
        double scale = 1.0 / Math.sqrt(hd);
        double[] scores = new double[pos + 1];
        for (int j = 0; j < heads; j++) {
            rotate(q, j * hd, rot, pos);
            int col = (cfg.isAir() ? j % cfg.kvHeads() : j) * hd;
            double max = Double.NEGATIVE_INFINITY;
            for (int t = 0; t <= pos; t++) {
                double s = 0;
                for (int c = 0; c < hd; c++) {
                    s += rot[c] * kc[t * kvCols + col + c];
                }
                scores[t] = s * scale;
                max = Math.max(max, scores[t]);
            }
            double sum = 0;
            for (int t = 0; t <= pos; t++) {
                scores[t] = Math.exp(scores[t] - max);
                sum += scores[t];
            }
            for (int t = 0; t <= pos; t++) {
                double w = scores[t] / sum;
                for (int c = 0; c < hd; c++) {
                    att[j * hd + c] += w * vc[t * kvCols + col + c];
                }
            }
        }
        for (int i = 0; i < k; i++) {
            linear(p + "attn.o.c" + i, att, x, cfg.chainOffset(i), true);
        }
    }

    private void rotate(double[] src, int off, double[] dst, int pos) {
        int half = cfg.headDim() / 2;
        for (int m = 0; m < half; m++) {
            double a = pos * Math.pow(cfg.ropeTheta(), -2.0 * m / cfg.headDim());
            double c = Math.cos(a), sn = Math.sin(a);
            double x1 = src[off + m], x2 = src[off + m + half];
            dst[m] = x1 * c - x2 * sn;
            dst[m + half] = x1 * sn + x2 * c;
        }
    }

    private void feedForward(String p, double[] h, int k, double[] x) {
        int f = cfg.ffnPrefixWidth(k);
        double[] u = new double[f];
        double[] g = cfg.activation() == ColmConfig.Activation.SWIGLU ? new double[f] : null;
        for (int i = 0; i < k; i++) {
            int off = cfg.ffnPrefixWidth(i);
            linear(p + "ffn.up.c" + i, h, u, off, false);
            if (g != null) {
                linear(p + "ffn.gate.c" + i, h, g, off, false);
            }
        }
        for (int c = 0; c < f; c++) {
            u[c] = g != null ? FeedForward.silu(g[c]) * u[c] : FeedForward.gelu(u[c]);
        }
        for (int i = 0; i < k; i++) {
            linear(p + "ffn.down.c" + i, u, x, cfg.chainOffset(i), true);
        }
    }
}
