package io.catena.model.layers;

import io.catena.model.ColmConfig;
import io.catena.model.Params;
import io.catena.model.kernel.Buf;
import io.catena.model.kernel.Mat;
import io.catena.model.kernel.Parallel;

/** Token embedding stored per chain ({@code embed.c{i}: [V, D_i]}); scale k reads the first k slices. */
public final class Embedding {
    private final ColmConfig cfg;
    private final Mat[] table;
    private final Mat[] grad;

    public Embedding(ColmConfig cfg, Params params, Params grads) {
        this.cfg = cfg;
        int n = cfg.numChains();
        table = new Mat[n];
        grad = new Mat[n];
        for (int i = 0; i < n; i++) {
            table[i] = params.mat("embed.c" + i);
            grad[i] = grads.mat("embed.c" + i);
        }
    }

    /** x[r, chains < k] = embed[tokens[r]]. */
    public void forward(int[] tokens, int tokenOffset, Mat x, int k) {
        Parallel.forRows(x.rows, (from, to) -> {
            for (int r = from; r < to; r++) {
                int tok = tokens[tokenOffset + r];
                if (tok < 0 || tok >= cfg.vocabSize()) {
                    throw new IllegalArgumentException("token id " + tok + " at position " + r
                            + " is outside the vocabulary [0, " + cfg.vocabSize() + ")");
                }
                for (int i = 0; i < k; i++) {
                    Mat t = table[i];
                    t.buf.copyTo(t.index(tok, 0), x.buf, x.index(r, cfg.chainOffset(i)), t.cols);
                }
            }
        });
    }

    /** Scatter-adds dx into the tables of chains >= firstTrainable (zeroed first unless accumulating). */
    public void backward(int[] tokens, int tokenOffset, Mat dx, int k, int firstTrainable, boolean accumulateParams) {
        for (int i = Math.max(0, firstTrainable); i < k; i++) {
            Mat g = grad[i];
            if (!accumulateParams) {
                g.fill(0);
            }
            final Buf gb = g.buf, db = dx.buf;
            final int co = cfg.chainOffset(i), w = g.cols;
            // Serial over rows: two rows may hold the same token.
            for (int r = 0; r < dx.rows; r++) {
                int go = g.index(tokens[tokenOffset + r], 0), xo = dx.index(r, co);
                for (int c = 0; c < w; c++) {
                    gb.set(go + c, gb.get(go + c) + db.get(xo + c));
                }
            }
        }
    }
}
