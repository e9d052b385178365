package io.catena.model.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.ColmConfig;
import io.catena.model.data.ByteTokenizer;
import io.catena.model.train.LocalTrainer;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code --ckpt X} means X's newest state for every command, whatever X holds. */
class CheckpointResolveTest {

    private static TrainingState state(long step) {
        ColmConfig cfg = new ColmConfig(ByteTokenizer.VOCAB_SIZE, 8, List.of(1, 1), 1, 0, 2.0, ColmConfig.Activation.GELU,
                ColmConfig.NormKind.LAYERNORM, 1e-5, 1e4, ColmConfig.Variant.COLM, 16, true, null);
        TrainingState fresh = LocalTrainer.freshState(cfg, 3);
        return new TrainingState(cfg, fresh.params(), null, null, step, step * 100, step * 10, 0, Map.of());
    }

    @Test
    void shouldPreferLatestOverAModelAtTheRootOfTheSameDirectory(@TempDir Path dir) {
        CheckpointStore store = new CheckpointStore();
        String x = dir.resolve("x").toString();
        store.saveTo(x, state(0)); // `catena expand --out X` writes the model at X's root
        assertEquals(0, store.load(x, false).step());
        store.save(x, state(7)); // `train-local --resume --out X` adds step-00000007 and latest
        assertTrue(store.resolve(x).endsWith("step-00000007"), store.resolve(x));
        assertEquals(7, store.load(x, false).step(), "eval/inspect/generate on X must see the trained model, not the stale root");
        assertEquals(7, ((Number) ((Map<?, ?>) store.readManifest(x).get("trainer")).get("step")).intValue(), "inspect reads it too");
        // a step directory on its own still resolves to itself
        String step = store.resolve(x);
        assertEquals(step, store.resolve(step));
    }
}
