package io.catena.model.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code --ckpt X} means X's newest state for every command, whatever X holds. */
class CheckpointResolveTest {
    @Test
    void shouldPreferLatestOverAModelAtTheRootOfTheSameDirectory(@TempDir Path dir) {
        CheckpointStore store = new CheckpointStore();
        String x = dir.resolve("x").toString();
        store.saveTo(x, CheckpointFaultsTest.state(0)); // `catena expand --out X` writes the model at X's root
        assertEquals(0, store.load(x, false).step());
        store.save(x, CheckpointFaultsTest.state(7)); // `train-local --resume --out X` adds step-00000007 and latest
        assertTrue(store.resolve(x).endsWith("step-00000007"), store.resolve(x));
        assertEquals(7, store.load(x, false).step(), "eval/inspect/generate on X must see the trained model, not the stale root");
        assertEquals(7, ((Number) ((Map<?, ?>) store.readManifest(x).get("trainer")).get("step")).intValue(), "inspect reads it too");
        // a step directory on its own still resolves to itself
        String step = store.resolve(x);
        assertEquals(step, store.resolve(step));
    }
}
