package io.catena.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.catena.model.kernel.Mat;
import io.catena.model.layers.ChainLinear;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;

/** The per-block chain linear equals the dense product with the block-lower-triangular masked matrix. */
class ChainLinearTest {

    @Test
    void shouldEqualMaskedDenseProductInFloat64() {
        ColmConfig cfg = new ColmConfig(7, 2, List.of(1, 3, 2), 1, 0, 2.0, ColmConfig.Activation.GELU,
                ColmConfig.NormKind.LAYERNORM, 1e-5, 1e4, ColmConfig.Variant.COLM, 8, true, null);
        Params p = TinyConfigs.randomParams(cfg, DataType.DOUBLE, 5);
        Params g = new Params(p.layout(), DataType.DOUBLE);
        int n = cfg.numChains(), d = cfg.dModel(), rows = 9;
        int[] widths = new int[n];
        int[] prefixes = new int[n];
        for (int i = 0; i < n; i++) {
            widths[i] = cfg.chainWidth(i);
            prefixes[i] = cfg.prefixWidth(i + 1);
        }
        ChainLinear lin = new ChainLinear(p, g, "layers.0.attn.q", 0, widths, prefixes);
        Mat x = Mat.allocate(DataType.DOUBLE, rows, d);
        SplittableRandom rnd = new SplittableRandom(1);
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < d; c++) {
                x.set(r, c, rnd.nextDouble() - 0.5);
            }
        }
        Mat y = Mat.allocate(DataType.DOUBLE, rows, d);
        lin.forward(x, y, n);
        // dense W with zero blocks above the block diagonal
        double[][] dense = new double[d][d];
        double[] bias = new double[d];
        for (int i = 0; i < n; i++) {
            Mat w = p.mat("layers.0.attn.q.c" + i + ".weight");
            Mat b = p.mat("layers.0.attn.q.c" + i + ".bias");
            for (int o = 0; o < widths[i]; o++) {
                bias[cfg.chainOffset(i) + o] = b.get(0, o);
                for (int c = 0; c < prefixes[i]; c++) {
                    dense[cfg.chainOffset(i) + o][c] = w.get(o, c);
                }
            }
        }
        int zeros = 0;
        for (double[] row : dense) {
            for (double v : row) {
                zeros += v == 0 ? 1 : 0;
            }
        }
        // chains {1,3,2}: dense fraction = (1*1 + 3*4 + 2*6) / 36 = 25/36
        assertEquals(36 - 25, zeros / (cfg.headDim() * cfg.headDim()));
        for (int r = 0; r < rows; r++) {
            for (int o = 0; o < d; o++) {
                double s = bias[o];
                for (int c = 0; c < d; c++) {
                    s += dense[o][c] * x.get(r, c);
                }
                assertEquals(s, y.get(r, o), 1e-12, "row " + r + " col " + o);
            }
        }
    }
}
