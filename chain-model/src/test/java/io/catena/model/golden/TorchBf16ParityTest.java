package io.catena.model.golden;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.ColmConfig;
import io.catena.model.ColmModel;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.io.CheckpointStore;
import io.catena.model.io.Npy;
import io.catena.model.io.TrainingState;
import io.catena.model.kernel.Bf16Attention;
import io.catena.model.kernel.Bf16Policy;
import io.catena.model.kernel.Gemm;
import io.catena.model.kernel.HostCpu;
import io.catena.model.kernel.Mat;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * Catena's logits under precision = bf16 against the independent PyTorch model (torch_colm.py), twice:
 *
 * <ol>
 *   <li>against PyTorch with the same bf16 rounding emulated ({@code colm_logits.py --bf16-operands}: both operands
 *       of every linear and of the LM head rounded to bf16, fp32 products; in the attention core q, k, v and the
 *       probabilities rounded to bf16, softmax and norms fp32). The two
 *       engines' fp32 activations differ by ~1e-5 relative (the fp32 parity test allows 1e-4 absolute on the
 *       logits), so about 1e-5 / 2^-8 = 0.3% of the rounded operands land on the other side of a bf16 rounding
 *       boundary and move by one bf16 step (2^-8) instead of the ~u / sqrt(3) of an ordinary rounding
 *       (u = 2^-9): that puts the engines' disagreement at about sqrt(0.003) x 2^-8 / (u / sqrt(3)) = 0.2 of the
 *       bf16 effect itself (measured 0.16-0.28). Bounds: rms(catena - emulated) < 0.4 x rms(emulated - fp32), and the
 *       two engines' bf16 errors against fp32 equal within 0.8-1.25x (measured within 0.3%): a GEMM that skipped the
 *       rounding of its weights would make Catena's error ~0.7x, one that rounded a wrong region far larger;</li>
 *   <li>against PyTorch in fp32, the size of the bf16 effect: each rounding moves an operand by at most u = 2^-9,
 *       on average u/sqrt(3) in rms, so one GEMM's output moves by about sqrt(2) u / sqrt(3) = 1.6e-3 of its rms;
 *       the logits pass 2 L + 1 GEMMs in sequence (L layers of attention and FFN, then the head), whose independent
 *       errors add in quadrature: sqrt(2 L + 1) x 1.6e-3 = 3.6e-3 for L = 2 (measured 3.7e-3 - 5.0e-3). Bound:
 *       rms(diff) / rms(logits) < 4x that (1.5e-2), and above 1e-4 (bf16 really ran).</li>
 * </ol>
 */
class TorchBf16ParityTest {

    @AfterEach
    void noEmulationAfterwards() {
        Bf16Policy.allowEmulationForTests(false);
        Bf16Attention.minSeqForTests(Bf16Attention.MIN_SEQ);
    }


    @ParameterizedTest
    @MethodSource("io.catena.model.golden.TorchParityTest#configs")
    void bf16LogitsMatchPyTorchWithTheSameRoundingAndStayNearFp32(ColmConfig cfg, @TempDir Path dir) throws Exception {
        Bf16Policy.allowEmulationForTests(true); // the numerics are checked on every host whose oneDNN computes bf16
        Bf16Attention.minSeqForTests(1); // the bf16 attention core at this test's T 64 too (PyTorch emulates it)
        Assumptions.assumeTrue(Bf16Policy.unsupportedReason(HostCpu.read()) == null,
                () -> "bf16 cannot run here: " + Bf16Policy.unsupportedReason(HostCpu.read()));
        int batch = 4, seq = Math.min(64, cfg.maxSeqLen()); // 256 rows: every GEMM passes bf16's 2^20 multiply-adds
        ParamLayout layout = new ParamLayout(cfg);
        TorchParityTest.Case fixture = TorchParityTest.Case.of(cfg, dir, batch, seq);
        Params params = fixture.params();
        String ckpt = fixture.ckpt();
        int[] tokens = fixture.tokens();
        Path tokenFile = fixture.tokenFile();
        String c = ckpt.replaceFirst("^file:", "");
        TorchParityTest.python("colm_logits.py", "--ckpt", c, "--tokens", tokenFile.toString(), "--out", dir.resolve("fp32").toString());
        TorchParityTest.python("colm_logits.py", "--ckpt", c, "--tokens", tokenFile.toString(), "--out", dir.resolve("bf16").toString(),
                "--bf16-operands");

        ColmModel model = new ColmModel(cfg, params, new Params(layout, DataType.FLOAT), batch, seq);
        Gemm.Precision outer = Gemm.usePrecision(Gemm.Precision.BF16);
        try {
            model.forward(tokens, 0, cfg.numChains());
        } finally {
            Gemm.usePrecision(outer);
        }
        int n = batch * seq * cfg.vocabSize();
        for (int k = 1; k <= cfg.numChains(); k++) {
            float[] fp32 = read(dir.resolve("fp32"), k, batch, seq, cfg);
            float[] emul = read(dir.resolve("bf16"), k, batch, seq, cfg);
            Mat ours = model.logits(k);
            double maxEmul = 0, maxAbs = 0, ss = 0, ssOurs = 0, ssEmul = 0, ssBetween = 0;
            for (int r = 0; r < batch * seq; r++) {
                for (int v = 0; v < cfg.vocabSize(); v++) {
                    int i = r * cfg.vocabSize() + v;
                    double a = ours.get(r, v);
                    maxEmul = Math.max(maxEmul, Math.abs(a - emul[i]));
                    ssBetween += (a - emul[i]) * (a - emul[i]);
                    maxAbs = Math.max(maxAbs, Math.abs(fp32[i]));
                    ss += (double) fp32[i] * fp32[i];
                    ssOurs += (a - fp32[i]) * (a - fp32[i]);
                    ssEmul += ((double) emul[i] - fp32[i]) * ((double) emul[i] - fp32[i]);
                }
            }
            double rms = Math.sqrt(ss / n), between = Math.sqrt(ssBetween / n) / rms, errOurs = Math.sqrt(ssOurs / n) / rms, errEmul = Math.sqrt(ssEmul / n) / rms;
            String what = String.format(java.util.Locale.ROOT, "scale %d: catena bf16 - torch bf16-emulated: max %.3g (max |logit| %.3g), rms %.3g of rms logit; "
                    + "rms error vs torch fp32: catena bf16 %.3g, torch bf16-emulated %.3g (of rms logit %.3g)", k, maxEmul, maxAbs, between, errOurs,
                    errEmul, rms);
            System.out.println("TorchBf16ParityTest " + what);
            assertTrue(maxAbs > 0.05, "logits are nearly zero: the comparison would prove nothing; " + what);
            assertTrue(between < 0.4 * errEmul, what);
            assertTrue(errOurs > 0.8 * errEmul && errOurs < 1.25 * errEmul, what);
            assertTrue(errOurs < 1.5e-2 && errOurs > 1e-4, what);
        }
    }

    private static float[] read(Path dir, int k, int batch, int seq, ColmConfig cfg) throws Exception {
        try (InputStream in = Files.newInputStream(dir.resolve("logits_k" + k + ".npy"))) {
            return Npy.readFloat32(in, new int[] {batch, seq, cfg.vocabSize()}, "logits_k" + k);
        }
    }
}
