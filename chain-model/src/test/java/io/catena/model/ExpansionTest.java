package io.catena.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import io.catena.model.io.TrainingState;
import io.catena.model.optim.AdamW;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;

class ExpansionTest {
    private static final int B = 2;
    private static final int T = 6;

    static List<ColmConfig> configs() {
        return TinyConfigs.all();
    }

    @ParameterizedTest
    @MethodSource("configs")
    void shouldKeepOldScalesAndFullLogitsIdenticalAtGrowth(ColmConfig cfg) {
        Params p = TinyConfigs.randomParams(cfg, DataType.FLOAT, 3);
        int[] tokens = TinyConfigs.randomTokens(B * T, cfg.vocabSize(), 4);
        float[][] old = ChainCausalityTest.logitsAllScales(cfg, p, tokens);
        TrainingState st = new TrainingState(cfg, p, null, null, 10, 100, 5, 0, Map.of());
        int added = cfg.isAir() ? cfg.kvHeads() * 2 : 2;
        TrainingState grown = ChainExpansion.expand(st, List.of(added), true, null, 9);
        assertEquals(cfg.numChains() + 1, grown.config().numChains());
        assertEquals(cfg.numChains(), grown.frozenChains());
        assertOldScalesAndFullModelUnchanged(cfg, old, grown, tokens);
    }

    /** Every old scale of {@code grown} gives the logits {@code old} of the model before growth, and so does the full model. */
    static void assertOldScalesAndFullModelUnchanged(ColmConfig cfg, float[][] old, TrainingState grown, int[] tokens) {
        float[][] now = ChainCausalityTest.logitsAllScales(grown.config(), grown.params(), tokens);
        for (int k = 0; k < cfg.numChains(); k++) {
            assertArrayEquals(old[k], now[k], "old scale " + (k + 1) + " changed by growth");
        }
        assertArrayEquals(old[cfg.numChains() - 1], now[cfg.numChains()], "grown full model must equal the old model at growth");
    }

    @ParameterizedTest
    @MethodSource("configs")
    void shouldLeaveFrozenOldChainsUnchangedWhileNewChainTrains(ColmConfig cfg) {
        Params p = TinyConfigs.randomParams(cfg, DataType.FLOAT, 3);
        TrainingState grown = ChainExpansion.expand(new TrainingState(cfg, p, null, null, 0, 0, 0, 0, Map.of()),
                List.of(cfg.isAir() ? cfg.kvHeads() : 1), true, null, 9);
        ColmConfig g = grown.config();
        Params params = grown.params();
        Params grads = new Params(params.layout(), DataType.FLOAT);
        Params m = new Params(params.layout(), DataType.FLOAT);
        Params v = new Params(params.layout(), DataType.FLOAT);
        float[] before = params.flat().toFloatVector();
        ColmModel model = new ColmModel(g, params, grads, B, T);
        AdamW opt = new AdamW(params.layout(), AdamW.Settings.defaults(), grown.frozenChains());
        for (int s = 1; s <= 3; s++) {
            int[] in = TinyConfigs.randomTokens(B * T, g.vocabSize(), 10 + s);
            int[] tg = TinyConfigs.randomTokens(B * T, g.vocabSize(), 20 + s);
            model.forwardBackward(in, tg, 0, grown.frozenChains(), false, 1.0);
            opt.step(params, grads, m, v, s, 1e-2);
        }
        float[] after = params.flat().toFloatVector();
        int oldEnd = (int) params.layout().prefixSize(cfg.numChains());
        for (int i = 0; i < oldEnd; i++) {
            if (before[i] != after[i]) {
                throw new AssertionError("frozen parameter " + i + " changed: " + before[i] + " -> " + after[i]);
            }
        }
        boolean newChanged = false;
        for (int i = oldEnd; i < after.length; i++) {
            newChanged |= before[i] != after[i];
        }
        assertNotEquals(false, newChanged, "the new chain must train");
    }
}
