package io.catena.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.catena.model.infer.Generator;
import io.catena.model.infer.KvDecoder;
import io.catena.model.kernel.Mat;
import java.util.List;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;

/** The KV-cache decoder (an independent forward) against the batched training forward. */
class DecoderTest {
    private static final int T = 10;

    static List<ColmConfig> configs() {
        return TinyConfigs.all();
    }

    @ParameterizedTest
    @MethodSource("configs")
    void shouldMatchFullForwardAtEveryScaleAndPosition(ColmConfig cfg) {
        Params p = TinyConfigs.randomParams(cfg, DataType.FLOAT, 8);
        int[] tokens = TinyConfigs.randomTokens(T, cfg.vocabSize(), 2);
        ColmModel model = new ColmModel(cfg, p, new Params(p.layout(), DataType.FLOAT), 1, T);
        for (int k = 1; k <= cfg.numChains(); k++) {
            model.forward(tokens, 0, k);
            Mat full = model.logits(k);
            KvDecoder dec = new KvDecoder(cfg, p, T);
            for (int t = 0; t < T; t++) {
                double[] l = dec.step(tokens[t], k, true);
                for (int v = 0; v < cfg.vocabSize(); v++) {
                    assertEquals(full.get(t, v), l[v], 1e-4, "scale " + k + " position " + t + " token " + v);
                }
            }
        }
    }

    @Test
    void shouldPrefillAirPromptWithChainOneAndDecodeAtFullScale() {
        ColmConfig cfg = TinyConfigs.airSwigluRmsNorm();
        Params p = TinyConfigs.randomParams(cfg, DataType.FLOAT, 9);
        int[] tokens = TinyConfigs.randomTokens(T, cfg.vocabSize(), 3);
        int n = cfg.numChains();
        ColmModel model = new ColmModel(cfg, p, new Params(p.layout(), DataType.FLOAT), 1, T);
        model.forward(tokens, 0, n);
        Mat full = model.logits(n);
        KvDecoder dec = new KvDecoder(cfg, p, T);
        int prompt = 6;
        for (int t = 0; t < prompt - 1; t++) {
            dec.step(tokens[t], 1, false); // chain-1 sub-model only: fills every layer's K/V
        }
        for (int t = prompt - 1; t < T; t++) {
            double[] l = dec.step(tokens[t], n, true);
            for (int v = 0; v < cfg.vocabSize(); v++) {
                assertEquals(full.get(t, v), l[v], 1e-4, "position " + t);
            }
        }
    }

    @Test
    void shouldSwitchScaleMidGenerationWithoutRecomputingForAir() {
        ColmConfig cfg = TinyConfigs.airSwigluRmsNorm();
        Params p = TinyConfigs.randomParams(cfg, DataType.FLOAT, 10);
        int[] tokens = TinyConfigs.randomTokens(T, cfg.vocabSize(), 4);
        // switch 3 -> 1 -> 2 chains along the sequence; each position's logits must equal that scale's full forward
        int[] scaleAt = {3, 3, 3, 1, 1, 2, 2, 3, 1, 2};
        KvDecoder dec = new KvDecoder(cfg, p, T);
        ColmModel model = new ColmModel(cfg, p, new Params(p.layout(), DataType.FLOAT), 1, T);
        for (int t = 0; t < T; t++) {
            double[] l = dec.step(tokens[t], scaleAt[t], true);
            model.forward(tokens, 0, scaleAt[t]);
            for (int v = 0; v < cfg.vocabSize(); v++) {
                assertEquals(model.logits(scaleAt[t]).get(t, v), l[v], 1e-4, "position " + t + " at k=" + scaleAt[t]);
            }
        }
    }

    @Test
    void shouldGenerateDeterministicallyAndRejectBadScale() {
        ColmConfig cfg = TinyConfigs.colmGeluLayerNorm();
        Params p = TinyConfigs.randomParams(cfg, DataType.FLOAT, 11);
        Generator gen = new Generator(cfg, p);
        var o = new Generator.Options(5, 2, 0.8, 5, 42, new TreeMap<>(java.util.Map.of(2, 1)), false, 0);
        var a = gen.generate(new int[] {1, 2, 3}, o);
        var b = gen.generate(new int[] {1, 2, 3}, o);
        assertEquals(java.util.Arrays.toString(a.tokens()), java.util.Arrays.toString(b.tokens()));
        assertEquals("[2, 2, 1, 1, 1]", java.util.Arrays.toString(a.scales()));
        var bad = new Generator.Options(5, 3, 0.8, 5, 42, null, false, 0);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> gen.generate(new int[] {1}, bad));
        assertEquals(true, e.getMessage().contains("k=3"), e.getMessage());
    }
}
