package io.catena.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.ColmConfig.Activation;
import io.catena.model.ColmConfig.NormKind;
import io.catena.model.ColmConfig.Variant;
import io.catena.model.kernel.Gemm;
import io.catena.model.layers.ChainLinear;
import io.catena.model.optim.AdamW;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.junit.jupiter.api.Test;

/**
 * A frozen prefix of chains costs its forward only: the backward skips everything that reaches frozen parameters
 * alone, and that changes nothing the optimizer sees. The trainable chains' gradients are bit-identical to those of
 * the full backward, so AdamW steps give bit-identical parameters, and the frozen chains never move. {@link FlopCount}
 * counts exactly the GEMMs that run.
 */
class FrozenBackwardTest {
    private static final int B = 2;
    private static final int T = 5;

    /** The tiny recipe's shape, grown: {2,2,2}, the case the growth benchmark trains. */
    static ColmConfig grownTiny() {
        return new ColmConfig(23, 8, List.of(2, 2, 2), 2, 0, 4.0, Activation.GELU, NormKind.LAYERNORM, 1e-5, 10000.0,
                Variant.COLM, 16, true, null);
    }

    static Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        List<ColmConfig> cfgs = new ArrayList<>(TinyConfigs.all());
        cfgs.add(grownTiny());
        for (ColmConfig cfg : cfgs) {
            for (int frozen = 1; frozen < cfg.numChains(); frozen++) {
                for (DataType type : List.of(DataType.FLOAT, DataType.DOUBLE)) {
                    out.add(Arguments.of(cfg, frozen, type));
                }
            }
        }
        return out.stream();
    }

    private static double[] snap(Params p) {
        double[] a = new double[p.buf().length()];
        for (int i = 0; i < a.length; i++) {
            a[i] = p.buf().get(i);
        }
        return a;
    }

    private static Params copy(Params p) {
        Params c = new Params(p.layout(), p.dataType());
        for (int i = 0; i < p.buf().length(); i++) {
            c.buf().set(i, p.buf().get(i));
        }
        return c;
    }

    /**
     * Float64: bit-identical. Float32: bit-identical with the full-width input gradient (every other skip is exact),
     * and within float rounding with the narrow one (its GEMM shape differs, so OpenBLAS may round differently).
     */
    @ParameterizedTest(name = "{0} frozen={1} {2}")
    @MethodSource("cases")
    void trainableGradientsAndUpdatesAreBitIdentical(ColmConfig cfg, int frozen, DataType type) {
        if (type == DataType.FLOAT) {
            ChainLinear.narrowInputGradient = false;
            try {
                check(cfg, frozen, type, true);
            } finally {
                ChainLinear.narrowInputGradient = true;
            }
            check(cfg, frozen, type, false);
        } else {
            check(cfg, frozen, type, true);
        }
    }

    private void check(ColmConfig cfg, int frozen, DataType type, boolean bitIdentical) {
        Params init = TinyConfigs.randomParams(cfg, type, 42);
        int[] in = TinyConfigs.randomTokens(B * T, cfg.vocabSize(), 7);
        int[] tg = TinyConfigs.randomTokens(B * T, cfg.vocabSize(), 8);
        int from = (int) init.layout().prefixSize(frozen);

        // gradients: the full backward against the pruned one, on the trainable range
        Params pFull = copy(init), pPruned = copy(init);
        Params gFull = new Params(init.layout(), type), gPruned = new Params(init.layout(), type);
        ColmModel full = new ColmModel(cfg, pFull, gFull, B, T);
        ColmModel pruned = new ColmModel(cfg, pPruned, gPruned, B, T);
        double[] lossFull = full.forwardBackward(in, tg, 0, 0, false, 1.0);
        double[] lossPruned = pruned.forwardBackward(in, tg, 0, frozen, false, 1.0);
        assertEquals(lossFull[cfg.numChains() - 1], lossPruned[cfg.numChains() - 1], 0.0, "full-model loss");
        double[] a = snap(gFull), b = snap(gPruned);
        double scale = 0;
        for (int i = from; i < a.length; i++) {
            scale = Math.max(scale, Math.abs(a[i]));
        }
        for (int i = from; i < a.length; i++) {
            if (bitIdentical ? Double.doubleToLongBits(a[i]) != Double.doubleToLongBits(b[i])
                    : !(Math.abs(a[i] - b[i]) <= 1e-5 * scale)) {
                throw new AssertionError("gradient element " + i + " differs: full " + a[i] + ", pruned " + b[i]);
            }
        }
        boolean anyNonZero = false;
        for (int i = from; i < a.length; i++) {
            anyNonZero |= b[i] != 0;
        }
        assertTrue(anyNonZero, "the trainable chains got a gradient");

        // three AdamW steps: the frozen-chain optimizer over either gradient gives the same parameters
        AdamW opt = new AdamW(init.layout(), AdamW.Settings.defaults(), frozen);
        Params mF = new Params(init.layout(), type), vF = new Params(init.layout(), type);
        Params mP = new Params(init.layout(), type), vP = new Params(init.layout(), type);
        for (int step = 1; step <= 3; step++) {
            if (step > 1) {
                full.forwardBackward(in, tg, 0, 0, false, 1.0);
                pruned.forwardBackward(in, tg, 0, frozen, false, 1.0);
            }
            opt.step(pFull, gFull, mF, vF, step, 1e-2);
            opt.step(pPruned, gPruned, mP, vP, step, 1e-2);
        }
        double[] x = snap(pFull), y = snap(pPruned), x0 = snap(init);
        for (int i = 0; i < x.length; i++) {
            if (bitIdentical) {
                assertEquals(Double.doubleToLongBits(x[i]), Double.doubleToLongBits(y[i]), "parameter " + i + " after 3 steps");
            } else {
                assertEquals(x[i], y[i], 1e-5, "parameter " + i + " after 3 steps (lr 1e-2)");
            }
            if (i < from) {
                assertEquals(Double.doubleToLongBits(x0[i]), Double.doubleToLongBits(y[i]), "frozen parameter " + i + " moved");
            }
        }
        boolean moved = false;
        for (int i = from; i < x.length; i++) {
            moved |= x[i] != x0[i];
        }
        assertTrue(moved, "the trainable chains moved");
    }

    static Stream<Arguments> flopCases() {
        List<Arguments> out = new ArrayList<>();
        List<ColmConfig> cfgs = new ArrayList<>(TinyConfigs.all());
        cfgs.add(grownTiny());
        for (ColmConfig cfg : cfgs) {
            for (int frozen = 0; frozen < cfg.numChains(); frozen++) {
                out.add(Arguments.of(cfg, frozen));
            }
        }
        return out.stream();
    }

    @ParameterizedTest(name = "{0} frozen={1}")
    @MethodSource("flopCases")
    void flopCountIsTheGemmsThatRun(ColmConfig cfg, int frozen) {
        Params p = TinyConfigs.randomParams(cfg, DataType.FLOAT, 3);
        ColmModel model = new ColmModel(cfg, p, new Params(p.layout(), DataType.FLOAT), B, T);
        int[] in = TinyConfigs.randomTokens(B * T, cfg.vocabSize(), 1);
        long before = Gemm.multiplyAdds();
        model.forwardBackward(in, in, 0, frozen, false, 1.0);
        long ran = 2 * (Gemm.multiplyAdds() - before);
        FlopCount count = FlopCount.trainingStep(cfg, B, T, frozen);
        assertEquals(count.gemm(), ran, "GEMM FLOPs of one step, " + count);

        before = Gemm.multiplyAdds();
        model.forward(in, 0, cfg.numChains());
        assertEquals(FlopCount.forwardOnly(cfg, B, T).gemm(), 2 * (Gemm.multiplyAdds() - before), "forward GEMM FLOPs");
    }

    /** Hand counts for {1,1}, head_dim 4 (d 8), one layer, ffn 2x, vocab 10, rows R = 10. */
    @Test
    void handCountOfATwoChainModel() {
        ColmConfig cfg = new ColmConfig(10, 4, List.of(1, 1), 1, 0, 2.0, Activation.GELU, NormKind.LAYERNORM, 1e-5, 10000.0,
                Variant.COLM, 16, true, null);
        long r = B * T;
        // per chain-linear "unit" block [4 out, 4 in]: chain 0 reads 1 unit, chain 1 reads 2 -> 3 units per linear
        // qkv: 3 linears' worth, o: 1, up: 2x wide (8 out per chain, 1 or 2 units of 4 in), down: 4 out from 8 or 16
        long unit = 2 * r * 4 * 4;
        long qkv = 3 * 3 * unit, o = 3 * unit, up = 2 * 3 * unit, down = 2 * 3 * unit;
        long head = 2 * r * 8 * 10;
        long linear = qkv + o + up + down + head;
        long core = 2L * 2 * (T * (T + 1) / 2) * 4 * 2 * B; // QK^T and PV, causal half, 2 heads
        FlopCount full = FlopCount.trainingStep(cfg, B, T, 0);
        assertEquals(linear, full.forwardLinear());
        assertEquals(core, full.forwardAttention());
        assertEquals(linear, full.backwardWeight());
        assertEquals(linear, full.backwardInput());
        assertEquals(2 * core, full.backwardAttention());
        // chain 0 frozen: chain 1's blocks only, dX to chain 1's input columns only (half of its two-unit prefix)
        FlopCount frozen = FlopCount.trainingStep(cfg, B, T, 1);
        long chain1 = 3 * 2 * unit + 2 * unit + 2 * 2 * unit + 2 * 2 * unit; // qkv, o, up, down of output chain 1
        assertEquals(chain1 + head / 2, frozen.backwardWeight());
        assertEquals(chain1 / 2 + head / 2, frozen.backwardInput());
        assertEquals(core, frozen.backwardAttention());
        assertEquals(linear, frozen.forwardLinear());
    }
}
