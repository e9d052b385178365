package io.catena.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.catena.model.ColmConfig;
import io.catena.model.ColmModel;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.kernel.ActivationMemory;
import io.catena.model.kernel.Parallel;
import io.catena.model.kernel.Prof;
import io.catena.model.layers.Attention;
import io.catena.model.optim.AdamW;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * Paired A/B of the attention cores (issue 15): one model per core ({@code Attention.Core}) in one process, same
 * weights and tokens, training steps (forward + backward + AdamW) alternating between them (order swapped every
 * step, so the VM's slow spells and the JIT hit both), on chains {4,4}, d 512, 6 layers, vocab 4096, FFN 4x with
 * 4096 tokens per step. Reports each core's median step, the median of the paired ratios, the activation bytes
 * each model allocated, the process's peak RSS (meaningful with one core per process) and, with
 * -Dcatena.profile=true, each core's time per phase. Prints one JSON line.
 *
 * <pre>java ... io.catena.bench.AttentionBench --seq 1024 [--tokens 4096] [--steps 16] [--warmup 3]
 *     [--cores tiled,materialized] [--layers 6] [--chains 4,4]</pre>
 */
public final class AttentionBench {

    public static void main(String[] args) throws Exception {
        io.catena.model.kernel.NativeSetup.report(); // the host's GEMM path, chosen before ND4J loads, in the log
        Map<String, String> a = io.catena.model.cli.Args.values("bench attention", args, 0, java.util.Set.of("seq", "tokens", "steps",
                "warmup", "layers", "chains", "cores", "out"));
        int seq = Integer.parseInt(a.getOrDefault("seq", "1024"));
        int tokens = Integer.parseInt(a.getOrDefault("tokens", "4096"));
        int steps = Integer.parseInt(a.getOrDefault("steps", "16"));
        int warmup = Integer.parseInt(a.getOrDefault("warmup", "3"));
        int layers = Integer.parseInt(a.getOrDefault("layers", "6"));
        List<Integer> chains = Arrays.stream(a.getOrDefault("chains", "4,4").split(",")).map(Integer::parseInt).toList();
        String[] coreNames = a.getOrDefault("cores", "tiled,materialized").split(",");
        int batch = tokens / seq;
        ColmConfig cfg = new ColmConfig(4096, 64, chains, layers, 0, 4.0, ColmConfig.Activation.GELU,
                ColmConfig.NormKind.LAYERNORM, 1e-5, 10000.0, ColmConfig.Variant.COLM, seq, true, null);
        ParamLayout layout = new ParamLayout(cfg);

        int n = coreNames.length;
        Attention.Core[] cores = new Attention.Core[n];
        ColmModel[] models = new ColmModel[n];
        Params[] params = new Params[n], grads = new Params[n], m = new Params[n], v = new Params[n];
        long[] activationBytes = new long[n];
        Attention.Core before = Attention.defaultCore;
        for (int c = 0; c < n; c++) {
            cores[c] = Attention.Core.valueOf(coreNames[c].trim().toUpperCase(java.util.Locale.ROOT));
            params[c] = new Params(layout, DataType.FLOAT);
            params[c].initialize(1, 0);
            grads[c] = new Params(layout, DataType.FLOAT);
            m[c] = new Params(layout, DataType.FLOAT);
            v[c] = new Params(layout, DataType.FLOAT);
            Attention.defaultCore = cores[c];
            long b0 = ActivationMemory.allocatedBytes();
            models[c] = new ColmModel(cfg, params[c], grads[c], batch, seq);
            activationBytes[c] = ActivationMemory.allocatedBytes() - b0;
        }
        Attention.defaultCore = before;
        AdamW opt = new AdamW(layout, new AdamW.Settings(0.9, 0.95, 1e-8, 0.1, 1.0), 0);

        SplittableRandom rnd = new SplittableRandom(7);
        int[] in = new int[batch * seq];
        int[] tg = new int[batch * seq];
        double[][] ms = new double[n][steps];
        double[][] loss = new double[n][];
        List<Map<String, Double>> phases = new ArrayList<>();
        for (int c = 0; c < n; c++) {
            phases.add(new java.util.TreeMap<>());
        }
        for (int s = 0; s < warmup + steps; s++) {
            for (int i = 0; i < in.length; i++) {
                in[i] = rnd.nextInt(cfg.vocabSize());
                tg[i] = rnd.nextInt(cfg.vocabSize());
            }
            for (int k = 0; k < n; k++) {
                int c = (s % 2 == 0) ? k : n - 1 - k; // swap the order every step
                Prof.reset();
                long t0 = System.nanoTime();
                double[] l = models[c].forwardBackward(in, tg, 0, 0, false, 1.0);
                opt.step(params[c], grads[c], m[c], v[c], s + 1, 3e-4);
                long t1 = System.nanoTime();
                if (s >= warmup) {
                    ms[c][s - warmup] = (t1 - t0) / 1e6;
                    Prof.snapshot().forEach((phase, t) -> phases.get(c).merge(phase, t / steps, Double::sum));
                }
                if (s == 0) {
                    loss[c] = l;
                }
            }
        }

        Map<String, Object> out = new LinkedHashMap<>();
        out.put("bench", "attention-cores");
        out.put("config", "vocab 4096, head_dim 64, chains " + chains + ", d " + cfg.dModel() + ", " + layers
                + " layers, FFN 4x, colm, gelu, layernorm");
        out.put("seq", seq);
        out.put("batch", batch);
        out.put("tile", io.catena.model.kernel.FlashAttention.TILE);
        out.put("kernel_threads", Parallel.threads());
        out.put("native", io.catena.model.kernel.NativeSetup.report().toMap());
        out.put("steps", steps);
        List<String> names = new ArrayList<>();
        for (int c = 0; c < n; c++) {
            String name = cores[c].name().toLowerCase(java.util.Locale.ROOT);
            names.add(name);
            double med = TrainBench.median(ms[c]);
            out.put(name + "_ms_per_step_median", med);
            out.put(name + "_tokens_per_s", batch * seq / (med / 1000));
            out.put(name + "_activation_mb", activationBytes[c] / (1024.0 * 1024.0));
            out.put(name + "_first_loss", loss[c][loss[c].length - 1]);
        }
        if (n == 2) {
            double[] ratio = new double[steps];
            for (int i = 0; i < steps; i++) {
                ratio[i] = ms[0][i] / ms[1][i];
            }
            out.put(names.get(0) + "_over_" + names.get(1) + "_paired_median", TrainBench.median(ratio));
        }
        if (Prof.ON) { // -Dcatena.profile=true: mean ms per step of each phase, per core
            for (int c = 0; c < n; c++) {
                out.put(names.get(c) + "_phase_ms_per_step", phases.get(c));
            }
        }
        out.put("peak_rss_mb", TrainBench.peakRssMb());
        System.out.println(new ObjectMapper().writeValueAsString(out));
    }

    private AttentionBench() {
    }
}
