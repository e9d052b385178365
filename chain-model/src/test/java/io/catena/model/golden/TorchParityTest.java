package io.catena.model.golden;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.ColmConfig;
import io.catena.model.ColmModel;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.io.CheckpointStore;
import io.catena.model.io.Npy;
import io.catena.model.io.TrainingState;
import io.catena.model.kernel.Mat;
import java.io.InputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * The independent PyTorch implementation (chain-model/src/test/python/torch_colm.py) loads a Catena checkpoint
 * and must produce the same logits at every scale (max abs diff < 1e-4, float32). Needs Debian's
 * python3-torch (installed by .ci/run).
 */
class TorchParityTest {
    private static final String PYTHON = "/usr/bin/python3";

    static List<ColmConfig> configs() {
        return List.of(
                // the reference benchmark model's shape, 2 layers to keep CI short
                new ColmConfig(4096, 64, List.of(2, 2), 2, 0, 4.0, ColmConfig.Activation.GELU, ColmConfig.NormKind.LAYERNORM,
                        1e-5, 10000.0, ColmConfig.Variant.COLM, 128, true, null),
                new ColmConfig(300, 48, List.of(2, 2, 4), 2, 2, 8.0 / 3, ColmConfig.Activation.SWIGLU, ColmConfig.NormKind.RMSNORM,
                        1e-5, 500000.0, ColmConfig.Variant.COLM_AIR, 64, false, List.of(0.2, 0.3, 0.5)));
    }

    @ParameterizedTest
    @MethodSource("configs")
    void shouldMatchPyTorchLogitsAtEveryScale(ColmConfig cfg, @TempDir Path dir) throws Exception {
        int batch = 2, seq = Math.min(64, cfg.maxSeqLen());
        ParamLayout layout = new ParamLayout(cfg);
        Case c = Case.of(cfg, dir, batch, seq);
        Params params = c.params();
        String ckpt = c.ckpt();
        int[] tokens = c.tokens();
        Path tokenFile = c.tokenFile();
        Path out = dir.resolve("torch");
        // --strict-order: the checkpoint lists its tensors exactly in MODEL.md's order, as torch_colm reads it
        python("colm_logits.py", "--ckpt", ckpt.replaceFirst("^file:", ""), "--tokens", tokenFile.toString(), "--out", out.toString(),
                "--strict-order");

        ColmModel model = new ColmModel(cfg, params, new Params(layout, DataType.FLOAT), batch, seq);
        model.forward(tokens, 0, cfg.numChains());
        for (int k = 1; k <= cfg.numChains(); k++) {
            float[] theirs;
            try (InputStream in = Files.newInputStream(out.resolve("logits_k" + k + ".npy"))) {
                theirs = Npy.readFloat32(in, new int[] {batch, seq, cfg.vocabSize()}, "logits_k" + k);
            }
            Mat ours = model.logits(k);
            double maxDiff = 0, maxAbs = 0;
            for (int r = 0; r < batch * seq; r++) {
                for (int v = 0; v < cfg.vocabSize(); v++) {
                    double a = ours.get(r, v);
                    maxDiff = Math.max(maxDiff, Math.abs(a - theirs[r * cfg.vocabSize() + v]));
                    maxAbs = Math.max(maxAbs, Math.abs(a));
                }
            }
            assertTrue(maxAbs > 0.05, "logits are nearly zero (max |logit| " + maxAbs + "): the comparison would prove nothing");
            assertTrue(maxDiff < 1e-4, "scale " + k + ": max |catena - torch| = " + maxDiff + " (max |logit| " + maxAbs + ")");
        }
    }

    /** Initialised parameters moved off their init by up to +-0.025 (gains, biases and zero head rows too). */
    /** A checkpoint of perturbed parameters and random tokens (seed 5) under dir: what both engines get. */
    record Case(Params params, String ckpt, int[] tokens, Path tokenFile) {
        static Case of(ColmConfig cfg, Path dir, int batch, int seq) throws java.io.IOException {
            SplittableRandom rnd = new SplittableRandom(5);
            Params params = perturbedParams(cfg, 11, rnd);
            String ckpt = new CheckpointStore().saveTo(dir.resolve("ckpt").toString(),
                    new TrainingState(cfg, params, null, null, 0, 0, 0, 0, Map.of()));
            int[] tokens = new int[batch * seq];
            for (int i = 0; i < tokens.length; i++) {
                tokens[i] = rnd.nextInt(cfg.vocabSize());
            }
            Path tokenFile = dir.resolve("tokens.npy");
            writeInt32(tokenFile, tokens, batch, seq);
            return new Case(params, ckpt, tokens, tokenFile);
        }
    }

    static Params perturbedParams(ColmConfig cfg, long initSeed, SplittableRandom rnd) {
        Params params = new Params(new ParamLayout(cfg), DataType.FLOAT);
        params.initialize(initSeed, 0);
        for (int i = 0; i < params.buf().length(); i++) {
            params.buf().set(i, params.buf().get(i) + 0.05 * (rnd.nextDouble() - 0.5));
        }
        return params;
    }

    /** Runs one of python/'s scripts with Debian's python3 (python3-torch); returns its output, failing on a non-zero exit. */
    static String python(String script, String... args) throws IOException, InterruptedException {
        assertTrue(Files.isExecutable(Path.of(PYTHON)), PYTHON + " is missing; run .ci/run (it installs python3-torch)");
        List<String> cmd = new java.util.ArrayList<>(List.of(PYTHON, Path.of("src/test/python", script).toAbsolutePath().toString()));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(300, TimeUnit.SECONDS), script + " did not finish in 300 s: " + log);
        assertEquals(0, p.exitValue(), script + " failed (is python3-torch installed? run .ci/run):\n" + log);
        return log;
    }

    static void writeInt32(Path file, int[] data, int rows, int cols) throws IOException {
        try (OutputStream o = Files.newOutputStream(file)) {
            io.catena.model.io.Npy.writeInt32(o, new int[] {rows, cols}, data);
        }
    }
}
