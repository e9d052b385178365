package io.catena.model;

import io.catena.model.ColmConfig.Activation;
import io.catena.model.ColmConfig.NormKind;
import io.catena.model.ColmConfig.Variant;
import java.util.List;
import java.util.SplittableRandom;
import org.nd4j.linalg.api.buffer.DataType;

/** Small configurations that cover every layer kind, and helpers to build models from them. */
public final class TinyConfigs {
    private TinyConfigs() {
    }

    static ColmConfig colmGeluLayerNorm() {
        return new ColmConfig(13, 4, List.of(1, 2), 2, 0, 2.0, Activation.GELU, NormKind.LAYERNORM, 1e-5, 10000.0,
                Variant.COLM, 16, true, List.of(0.3, 0.7));
    }

    static ColmConfig airSwigluRmsNorm() {
        return new ColmConfig(11, 4, List.of(2, 2, 4), 2, 2, 1.5, Activation.SWIGLU, NormKind.RMSNORM, 1e-5, 100.0,
                Variant.COLM_AIR, 16, false, null);
    }

    static ColmConfig airGeluLayerNormThreeChains() {
        return new ColmConfig(9, 2, List.of(1, 1, 1), 1, 1, 2.0, Activation.GELU, NormKind.LAYERNORM, 1e-5, 10000.0,
                Variant.COLM_AIR, 16, true, List.of(0.2, 0.3, 0.5));
    }

    static List<ColmConfig> all() {
        return List.of(colmGeluLayerNorm(), airSwigluRmsNorm(), airGeluLayerNormThreeChains());
    }

    /** Parameters initialised, then every tensor (gains and biases too) jittered so no gradient is trivially zero. */
    public static Params randomParams(ColmConfig cfg, DataType type, long seed) {
        Params p = new Params(new ParamLayout(cfg), type);
        p.initialize(seed, 0);
        SplittableRandom rnd = new SplittableRandom(seed + 1);
        for (int i = 0; i < p.buf().length(); i++) {
            p.buf().set(i, p.buf().get(i) + 0.3 * (rnd.nextDouble() - 0.5));
        }
        return p;
    }

    public static int[] randomTokens(int n, int vocab, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = rnd.nextInt(vocab);
        }
        return t;
    }

    /** A rows x cols matrix of uniform values in [-1, 1). */
    public static io.catena.model.kernel.Mat randomMat(DataType type, int rows, int cols, long seed) {
        io.catena.model.kernel.Mat m = io.catena.model.kernel.Mat.allocate(type, rows, cols);
        java.util.SplittableRandom rnd = new java.util.SplittableRandom(seed);
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                m.set(r, c, rnd.nextDouble() * 2 - 1);
            }
        }
        return m;
    }
}
