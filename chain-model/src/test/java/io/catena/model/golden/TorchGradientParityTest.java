package io.catena.model.golden;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.catena.model.ColmConfig;
import io.catena.model.ColmModel;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.io.CheckpointStore;
import io.catena.model.io.Npy;
import io.catena.model.io.TrainingState;
import io.catena.model.optim.AdamW;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * llm.c's test_gpt2 check against the independent PyTorch model: on the same checkpoint and batch, Catena's
 * explicit backward gives PyTorch autograd's gradient of every parameter tensor, and one AdamW step (clipping,
 * bias correction, decoupled decay on weights only) gives torch.optim.AdamW's parameters. Logits parity is
 * TorchParityTest's. Needs Debian's python3-torch (installed by .ci/run).
 */
class TorchGradientParityTest {
    static List<ColmConfig> configs() {
        return TorchParityTest.configs();
    }

    @ParameterizedTest
    @MethodSource("configs")
    void shouldMatchPyTorchGradientsAndOneAdamWStep(ColmConfig cfg, @TempDir Path dir) throws Exception {
        int batch = 2, seq = Math.min(32, cfg.maxSeqLen());
        ParamLayout layout = new ParamLayout(cfg);
        SplittableRandom rnd = new SplittableRandom(9);
        Params params = TorchParityTest.perturbedParams(cfg, 13, rnd);
        String ckpt = new CheckpointStore().saveTo(dir.resolve("ckpt").toString(), new TrainingState(cfg, params, null, null, 0, 0, 0, 0, Map.of()));
        int[] windows = new int[batch * (seq + 1)];
        for (int i = 0; i < windows.length; i++) {
            windows[i] = rnd.nextInt(cfg.vocabSize());
        }
        try (OutputStream o = Files.newOutputStream(dir.resolve("windows.npy"))) {
            Npy.writeInt32(o, new int[] {batch, seq + 1}, windows);
        }
        AdamW.Settings s = new AdamW.Settings(0.9, 0.95, 1e-8, 0.1, 1.0);
        double lr = 1e-3;
        List<String> decayed = new ArrayList<>();
        for (ParamLayout.Entry e : layout.entries()) {
            if (e.kind().decayed()) {
                decayed.add(e.name());
            }
        }
        Map<String, Object> optim = new LinkedHashMap<>();
        optim.put("lr", lr);
        optim.put("beta1", s.beta1());
        optim.put("beta2", s.beta2());
        optim.put("eps", s.eps());
        optim.put("weight_decay", s.weightDecay());
        optim.put("clip_norm", s.clipNorm());
        optim.put("decayed", decayed);
        Files.writeString(dir.resolve("optim.json"), new ObjectMapper().writeValueAsString(optim));
        Path out = dir.resolve("torch");
        String log = TorchParityTest.python("colm_grads.py", "--ckpt", ckpt.replaceFirst("^file:", ""), "--windows",
                dir.resolve("windows.npy").toString(), "--optim", dir.resolve("optim.json").toString(), "--out", out.toString());
        Map<?, ?> torch = new ObjectMapper().readValue(log.lines().filter(l -> l.startsWith("{")).reduce((a, b) -> b).orElseThrow(), Map.class);

        // Catena: the same batch, forward + explicit backward, then one AdamW step
        Params grads = new Params(layout, DataType.FLOAT);
        ColmModel model = new ColmModel(cfg, params, grads, batch, seq);
        int[] in = new int[batch * seq], tg = new int[batch * seq];
        for (int b = 0; b < batch; b++) {
            System.arraycopy(windows, b * (seq + 1), in, b * seq, seq);
            System.arraycopy(windows, b * (seq + 1) + 1, tg, b * seq, seq);
        }
        double[] losses = model.forwardBackward(in, tg, 0, 0, false, 1.0);
        List<?> theirLosses = (List<?>) torch.get("losses");
        for (int k = 0; k < losses.length; k++) {
            if (theirLosses.get(k) != null) {
                assertEquals(((Number) theirLosses.get(k)).doubleValue(), losses[k], 1e-5 * losses[k], "loss of scale " + (k + 1));
            }
        }
        double worstGrad = 0;
        String worstGradName = "";
        for (ParamLayout.Entry e : layout.entries()) {
            float[] theirs = read(out.resolve("grad").resolve(e.name() + ".npy"), e.shape());
            double maxAbs = 0, maxDiff = 0;
            for (int i = 0; i < theirs.length; i++) {
                double ours = grads.buf().get((int) e.offset() + i);
                maxAbs = Math.max(maxAbs, Math.abs(theirs[i]));
                maxDiff = Math.max(maxDiff, Math.abs(ours - theirs[i]));
            }
            // float32 sums in another order: relative to the tensor's largest gradient (measured: ~1e-6 at worst)
            double rel = maxDiff / (maxAbs + 1e-6);
            if (rel > worstGrad) {
                worstGrad = rel;
                worstGradName = e.name();
            }
            assertTrue(rel < 1e-4, e.name() + ": max |catena - torch| gradient " + maxDiff + " (max |gradient| " + maxAbs + ")");
        }
        Params m = new Params(layout, DataType.FLOAT), v = new Params(layout, DataType.FLOAT);
        double norm = new AdamW(layout, s, 0).step(params, grads, m, v, 1, lr);
        assertEquals(((Number) torch.get("grad_norm")).doubleValue(), norm, 1e-4 * norm, "global gradient norm (before clipping)");
        double worstStep = 0;
        for (ParamLayout.Entry e : layout.entries()) {
            float[] theirs = read(out.resolve("after").resolve(e.name() + ".npy"), e.shape());
            for (int i = 0; i < theirs.length; i++) {
                worstStep = Math.max(worstStep, Math.abs(params.buf().get((int) e.offset() + i) - theirs[i]));
            }
        }
        // a first Adam step moves each weight by lr * g / (|g| + eps), ~lr (1e-3) with the gradient's sign; where |g| is
        // near eps (1e-8) the float32 difference of the two gradients changes that fraction (measured: 3.5e-5 at worst)
        assertTrue(worstStep < 1e-4, "parameters after one AdamW step differ by up to " + worstStep + " (lr " + lr + ")");
        System.out.printf("gradient parity: worst relative difference %.2e (%s); AdamW step: worst |diff| %.2e%n", worstGrad,
                worstGradName, worstStep);
    }

    private static float[] read(Path file, int[] shape) throws Exception {
        try (InputStream in = Files.newInputStream(file)) {
            return Npy.readFloat32(in, shape, file.toString());
        }
    }
}
