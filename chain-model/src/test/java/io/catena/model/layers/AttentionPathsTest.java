package io.catena.model.layers;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.ColmConfig;
import io.catena.model.ColmModel;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;

/** The Vector API attention kernels against ND4J's batched GEMMs on the same float32 model. */
class AttentionPathsTest {

    static List<Object[]> cases() {
        ColmConfig colm = new ColmConfig(29, 16, List.of(1, 2), 2, 0, 2.0, ColmConfig.Activation.GELU,
                ColmConfig.NormKind.LAYERNORM, 1e-5, 1e4, ColmConfig.Variant.COLM, 64, true, null);
        ColmConfig air = new ColmConfig(29, 32, List.of(2, 2), 1, 2, 2.0, ColmConfig.Activation.SWIGLU,
                ColmConfig.NormKind.RMSNORM, 1e-5, 1e4, ColmConfig.Variant.COLM_AIR, 64, false, null);
        // sequence lengths with and without a 4-row / 16-column remainder
        ColmConfig wide = new ColmConfig(31, 64, List.of(1, 1), 1, 0, 1.0, ColmConfig.Activation.GELU,
                ColmConfig.NormKind.LAYERNORM, 1e-5, 1e4, ColmConfig.Variant.COLM, 160, true, null);
        ColmConfig wider = new ColmConfig(31, 128, List.of(1), 1, 0, 1.0, ColmConfig.Activation.GELU,
                ColmConfig.NormKind.RMSNORM, 1e-5, 1e4, ColmConfig.Variant.COLM, 160, true, null);
        return List.of(new Object[] {colm, 35}, new Object[] {colm, 32}, new Object[] {air, 19},
                new Object[] {wide, 133}, new Object[] {wider, 70});
    }

    @ParameterizedTest
    @MethodSource("cases")
    void shouldMatchBatchedGemmPathInLossAndGradients(ColmConfig cfg, int seq) {
        int batch = 2;
        ParamLayout layout = new ParamLayout(cfg);
        Params p = new Params(layout, DataType.FLOAT);
        p.initialize(5, 0);
        SplittableRandom rnd = new SplittableRandom(3);
        for (int i = 0; i < p.buf().length(); i++) {
            p.buf().set(i, p.buf().get(i) + 0.2 * (rnd.nextDouble() - 0.5)); // sharper attention than at init
        }
        int[] in = new int[batch * seq];
        int[] tg = new int[batch * seq];
        for (int i = 0; i < in.length; i++) {
            in[i] = rnd.nextInt(cfg.vocabSize());
            tg[i] = rnd.nextInt(cfg.vocabSize());
        }
        Params gVec = new Params(layout, DataType.FLOAT);
        Params gNd = new Params(layout, DataType.FLOAT);
        double[] lVec;
        double[] lNd;
        try {
            Attention.vectorKernels = true;
            lVec = new ColmModel(cfg, p, gVec, batch, seq).forwardBackward(in, tg, 0, 0, false, 1.0);
            Attention.vectorKernels = false;
            lNd = new ColmModel(cfg, p, gNd, batch, seq).forwardBackward(in, tg, 0, 0, false, 1.0);
        } finally {
            Attention.vectorKernels = true;
        }
        for (int j = 0; j < lVec.length; j++) {
            assertTrue(Math.abs(lVec[j] - lNd[j]) < 1e-5 * Math.abs(lNd[j]), "loss " + j + ": " + lVec[j] + " vs " + lNd[j]);
        }
        double max = 0;
        for (int i = 0; i < gNd.buf().length(); i++) {
            max = Math.max(max, Math.abs(gNd.buf().get(i)));
        }
        for (int i = 0; i < gNd.buf().length(); i++) {
            double a = gVec.buf().get(i), b = gNd.buf().get(i);
            assertTrue(Math.abs(a - b) <= 1e-4 * max + 1e-3 * Math.abs(b), "gradient element " + i + ": " + a + " vs " + b);
        }
    }
}
