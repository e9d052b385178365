package io.catena.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.catena.model.ColmConfig;
import io.catena.model.ColmModel;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.kernel.Bf16Policy;
import io.catena.model.kernel.Gemm;
import io.catena.model.kernel.NativeSetup;
import io.catena.model.kernel.Parallel;
import io.catena.model.optim.AdamW;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * precision = bf16 against fp32, paired in one process: consecutive training steps of one model alternate the GEMM
 * precision (even steps fp32, odd steps bf16), so the VM's slow spells hit both; reports both medians and the median
 * of the paired bf16/fp32 ratios. With {@code -Dcatena.gemm.profile=true} also the time per GEMM shape in each
 * precision (the measurement behind {@link Bf16Policy}'s rule; run with {@code -Dcatena.bf16.shapes=all} to see
 * every shape in bf16).
 *
 * <pre>java ... io.catena.bench.Bf16Bench [--config reference|wide] [--steps 20] [--warmup 4] [--out FILE]
 * java ... io.catena.bench.Bf16Bench --mode converge [--steps 400] [--data builtin:genesis] [--out FILE]</pre>
 * reference: vocab 4096, d 256 (chains 2,2 of head_dim 64), 4 layers, FFN 1024, T 128, B 16.
 * wide: vocab 4096, d 768 (chains 6,6), 4 layers, FFN 3072, T 512, B 4.
 */
public final class Bf16Bench {

    static ColmConfig config(String name) {
        return switch (name) {
            case "reference" -> TrainBench.referenceConfig();
            case "wide" -> new ColmConfig(4096, 64, List.of(6, 6), 4, 0, 4.0, ColmConfig.Activation.GELU, ColmConfig.NormKind.LAYERNORM,
                    1e-5, 10000.0, ColmConfig.Variant.COLM, 512, true, null);
            default -> throw new IllegalArgumentException("--config reference|wide, got " + name);
        };
    }

    public static void main(String[] args) throws Exception {
        NativeSetup.report();
        Map<String, String> a = io.catena.model.cli.Args.values("bench bf16", args, 0, java.util.Set.of("config", "steps", "warmup", "out",
                "mode", "data"));
        if (a.getOrDefault("mode", "speed").equals("converge")) {
            converge(a);
            return;
        }
        String name = a.getOrDefault("config", "reference");
        int steps = Integer.parseInt(a.getOrDefault("steps", "20"));
        int warmup = Integer.parseInt(a.getOrDefault("warmup", "4"));
        ColmConfig cfg = config(name);
        int batch = name.equals("wide") ? 4 : 16, seq = name.equals("wide") ? 512 : 128;
        Gemm.usePrecision(Gemm.Precision.BF16); // refuses here, with the reason, where bf16 cannot run
        Gemm.usePrecision(Gemm.Precision.FP32);

        TrainBench.Rig rig = TrainBench.Rig.of(cfg, batch, seq);
        ParamLayout layout = rig.layout();
        Params params = rig.params(), grads = rig.grads(), m = rig.m(), v = rig.v();
        ColmModel model = rig.model();
        AdamW opt = rig.opt();
        SplittableRandom rnd = new SplittableRandom(7);
        int[] in = new int[batch * seq];
        int[] tg = new int[batch * seq];
        int total = 2 * (warmup + steps);
        double[] fp32 = new double[steps], bf16 = new double[steps], ratio = new double[steps];
        double[] gemm32 = new double[steps], gemm16 = new double[steps];
        if (Gemm.BY_SHAPE != null) {
            Gemm.BY_SHAPE.clear();
        }
        for (int s = 0; s < total; s++) {
            boolean isBf16 = s % 2 == 1;
            Gemm.usePrecision(isBf16 ? Gemm.Precision.BF16 : Gemm.Precision.FP32);
            for (int i = 0; i < in.length; i++) {
                in[i] = rnd.nextInt(cfg.vocabSize());
                tg[i] = rnd.nextInt(cfg.vocabSize());
            }
            if (s == 2 * warmup && Gemm.BY_SHAPE != null) {
                Gemm.BY_SHAPE.clear();
            }
            long g0 = Gemm.nanos();
            long t0 = System.nanoTime();
            model.forwardBackward(in, tg, 0, 0, false, 1.0);
            opt.step(params, grads, m, v, s + 1, 3e-4);
            double ms = (System.nanoTime() - t0) / 1e6;
            double gms = (Gemm.nanos() - g0) / 1e6;
            int i = s / 2 - warmup;
            if (i >= 0) {
                if (isBf16) {
                    bf16[i] = ms;
                    gemm16[i] = gms;
                    ratio[i] = ms / fp32[i];
                } else {
                    fp32[i] = ms;
                    gemm32[i] = gms;
                }
            }
        }
        Gemm.usePrecision(Gemm.Precision.FP32);
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("config", name);
        out.put("batch", batch);
        out.put("seq_len", seq);
        out.put("d_model", cfg.dModel());
        out.put("params", layout.size());
        out.put("kernel_threads", Parallel.threads());
        out.put("native", NativeSetup.report().toMap());
        out.put("bf16", Bf16Policy.describe());
        out.put("pairs", steps);
        out.put("fp32_ms_median", TrainBench.median(fp32));
        out.put("bf16_ms_median", TrainBench.median(bf16));
        out.put("bf16_over_fp32_paired_median", TrainBench.median(ratio));
        double[] sorted = ratio.clone();
        Arrays.sort(sorted);
        out.put("bf16_over_fp32_paired_q1_q3", new double[] {sorted[steps / 4], sorted[(3 * steps) / 4]});
        out.put("fp32_gemm_ms_median", TrainBench.median(gemm32));
        out.put("bf16_gemm_ms_median", TrainBench.median(gemm16));
        out.put("load_average", Files.readString(Path.of("/proc/loadavg")).trim());
        if (Gemm.BY_SHAPE != null) {
            Map<String, String> shapes = new TreeMap<>();
            Gemm.BY_SHAPE.forEach((k, val) -> shapes.put(k, String.format(java.util.Locale.ROOT, "%.3f ms x %d",
                    val[0] / 1e6 / val[1], val[1] / steps)));
            out.put("gemm_ms_per_call_by_shape", shapes);
        }
        String json = new ObjectMapper().writeValueAsString(out);
        System.out.println(json);
        if (a.containsKey("out")) {
            Files.writeString(Path.of(a.get("out")), json + "\n", java.nio.file.StandardOpenOption.CREATE,
                    java.nio.file.StandardOpenOption.APPEND);
        }
    }

    /**
     * The correctness run: the tiny recipe (builtin:tiny, 400 steps) trained twice from the same init on the same
     * data (default builtin:genesis), fp32 and bf16, their steps interleaved in this process; the final validation
     * loss of each (fp32 evaluation, --set eval_batches 16 by default: more of the split than the recipe's 4).
     */
    static void converge(Map<String, String> a) throws Exception {
        String data = a.getOrDefault("data", "builtin:genesis");
        io.catena.model.train.Recipe base = io.catena.model.train.Recipe.resolve("builtin:tiny").with(List.of("eval_batches=16"));
        if (a.containsKey("steps")) {
            base = base.with(List.of("steps=" + a.get("steps")));
        }
        io.catena.model.train.LocalTrainer[] t = new io.catena.model.train.LocalTrainer[2];
        String[] names = {"fp32", "bf16"};
        for (int i = 0; i < 2; i++) {
            io.catena.model.train.TrainSettings s = base.with(List.of("precision=" + names[i])).trainSettings();
            var train = io.catena.model.data.DataSources.open(data, "train", s.seqLen(), s.valFraction(), s.seed(), 0, 1);
            var val = io.catena.model.data.DataSources.open(data, "val", s.seqLen(), s.valFraction(), s.seed(), 0, 1);
            ColmConfig cfg = base.modelConfig(train.vocabSize());
            t[i] = new io.catena.model.train.LocalTrainer(io.catena.model.train.LocalTrainer.freshState(cfg, s.seed()), s, train, val, null,
                    null, new java.io.PrintStream(java.io.OutputStream.nullOutputStream()), Map.of());
        }
        long steps = base.trainSettings().steps();
        double[] ms = new double[2];
        for (long step = 1; step <= steps; step++) {
            for (int i = 0; i < 2; i++) {
                long t0 = System.nanoTime();
                t[i].trainStep();
                ms[i] += (System.nanoTime() - t0) / 1e6;
            }
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("mode", "converge");
        out.put("recipe", "builtin:tiny (eval_batches=16)");
        out.put("data", data);
        out.put("steps", steps);
        out.put("native", NativeSetup.report().toMap());
        out.put("bf16", Bf16Policy.describe());
        double[] v32 = t[0].evaluate(), v16 = t[1].evaluate();
        out.put("fp32_val_loss_per_scale", v32);
        out.put("bf16_val_loss_per_scale", v16);
        out.put("bf16_over_fp32_val_loss_full_model", v16[v16.length - 1] / v32[v32.length - 1]);
        out.put("fp32_ms_per_step_mean", ms[0] / steps);
        out.put("bf16_ms_per_step_mean", ms[1] / steps);
        out.put("load_average", Files.readString(Path.of("/proc/loadavg")).trim());
        String json = new ObjectMapper().writeValueAsString(out);
        System.out.println(json);
        if (a.containsKey("out")) {
            Files.writeString(Path.of(a.get("out")), json + "\n", java.nio.file.StandardOpenOption.CREATE,
                    java.nio.file.StandardOpenOption.APPEND);
        }
    }

    private Bf16Bench() {
    }
}
