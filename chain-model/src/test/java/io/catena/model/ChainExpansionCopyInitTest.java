package io.catena.model;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.io.TrainingState;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;

/** The growth init 'copy' ({@link ChainExpansion.Init#COPY}): function preserving, and the new chain a replica. */
class ChainExpansionCopyInitTest {
    private static final int B = 2;
    private static final int T = 6;

    static List<ColmConfig> configs() {
        return TinyConfigs.all();
    }

    private static TrainingState grown(ColmConfig cfg, Params p) {
        int last = cfg.chains().get(cfg.numChains() - 1);
        return ChainExpansion.expand(new TrainingState(cfg, p, null, null, 10, 100, 5, 0, Map.of()), List.of(last), false, null, 9,
                ChainExpansion.Init.COPY);
    }

    @ParameterizedTest
    @MethodSource("configs")
    void shouldKeepEveryOldScaleAndTheFullModelIdenticalAtGrowth(ColmConfig cfg) {
        Params p = TinyConfigs.randomParams(cfg, DataType.FLOAT, 3);
        int[] tokens = TinyConfigs.randomTokens(B * T, cfg.vocabSize(), 4);
        float[][] old = ChainCausalityTest.logitsAllScales(cfg, p, tokens);
        ExpansionTest.assertOldScalesAndFullModelUnchanged(cfg, old, grown(cfg, p), tokens);
    }

    /**
     * The new chain's final hidden state equals the last old chain's: with the new chain's LM-head rows set to the last
     * old chain's, the new chain adds to the logits exactly what the last old chain added.
     */
    @ParameterizedTest
    @MethodSource("configs")
    void shouldStartTheNewChainAsAReplicaOfTheLastOldChain(ColmConfig cfg) {
        Params p = TinyConfigs.randomParams(cfg, DataType.FLOAT, 5);
        int[] tokens = TinyConfigs.randomTokens(B * T, cfg.vocabSize(), 6);
        TrainingState g = grown(cfg, p);
        int k = cfg.numChains();
        g.params().mat("head.c" + k).copyFrom(g.params().mat("head.c" + (k - 1)));
        float[][] now = ChainCausalityTest.logitsAllScales(g.config(), g.params(), tokens);
        float[] lastOld = now[k - 1], beforeLast = k >= 2 ? now[k - 2] : new float[lastOld.length];
        double maxDiff = 0, scale = 0;
        for (int i = 0; i < lastOld.length; i++) {
            double oldContribution = lastOld[i] - beforeLast[i];
            double newContribution = now[k][i] - lastOld[i];
            maxDiff = Math.max(maxDiff, Math.abs(oldContribution - newContribution));
            scale = Math.max(scale, Math.abs(oldContribution));
        }
        assertTrue(scale > 1e-3, "the last old chain must contribute to the logits");
        assertTrue(maxDiff <= 1e-4 * Math.max(1, scale), "new chain's contribution differs from the last old chain's by " + maxDiff);
    }

    @ParameterizedTest
    @MethodSource("configs")
    void shouldRefuseAnAppendedChainOfAnotherWidth(ColmConfig cfg) {
        Params p = TinyConfigs.randomParams(cfg, DataType.FLOAT, 3);
        int other = cfg.chains().get(cfg.numChains() - 1) * 2;
        assertThrows(IllegalArgumentException.class, () -> ChainExpansion.expand(
                new TrainingState(cfg, p, null, null, 0, 0, 0, 0, Map.of()), List.of(other), false, null, 9, ChainExpansion.Init.COPY));
    }
}
