package io.catena.model.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.ColmConfig;
import io.catena.model.data.ByteTokenizer;
import io.catena.model.data.TextCodec;
import io.catena.model.io.TrainingState;
import io.catena.model.train.LocalTrainer;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Which tokenizer `catena generate` uses for a checkpoint, and the refusals that keep it from printing garbage. */
class GenerateCodecTest {

    static TrainingState state(int vocab, Map<String, Object> info) {
        ColmConfig cfg = new ColmConfig(vocab, 8, List.of(1, 1), 1, 0, 2.0, ColmConfig.Activation.GELU, ColmConfig.NormKind.LAYERNORM,
                1e-5, 10000.0, ColmConfig.Variant.COLM, 16, true, List.of(0.5, 0.5));
        TrainingState fresh = LocalTrainer.freshState(cfg, 1);
        return new TrainingState(cfg, fresh.params(), null, null, 0, 0, 0, 0, info);
    }

    @Test
    void shouldUseTheByteTokenizerForTextTrainedCheckpoints() {
        TextCodec c = CatenaCli.codecOf(state(ByteTokenizer.VOCAB_SIZE, Map.of("data", "bytes:builtin:genesis", "data_spec",
                "builtin:genesis")), null);
        assertEquals(ByteTokenizer.VOCAB_SIZE, c.vocabSize());
        int[] ids = c.encode("In the beginning");
        assertEquals("In the beginning", c.decode(ids, 0, ids.length));
        // checkpoints written before data_spec was recorded: the description says bytes
        assertEquals(ByteTokenizer.EOS, CatenaCli.codecOf(state(ByteTokenizer.VOCAB_SIZE, Map.of("data", "bytes:x.txt")), null).eosId());
    }

    @Test
    void shouldRefuseWhenTheTokenizerIsUnknownOrDoesNotFitTheModel() {
        IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class, () -> CatenaCli.codecOf(
                state(512, Map.of("data", "catena shards hdfs:///d manifest v1")), null));
        assertTrue(unknown.getMessage().contains("--data <dataset dir>"), unknown.getMessage());
        IllegalArgumentException vocab = assertThrows(IllegalArgumentException.class, () -> CatenaCli.codecOf(
                state(512, Map.of("data", "bytes:builtin:genesis", "data_spec", "builtin:genesis")), null));
        assertTrue(vocab.getMessage().contains("257 ids") && vocab.getMessage().contains("vocab_size 512"), vocab.getMessage());
    }
}
