package io.catena.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.catena.model.ColmConfig;
import io.catena.model.ColmModel;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.kernel.ActivationMemory;
import io.catena.model.kernel.Parallel;
import io.catena.model.optim.AdamW;
import io.catena.model.train.Recipe;
import io.catena.model.train.TrainSettings;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * One cell of the cost-growth curve (issue 15 item 3): training steps (forward + backward + AdamW with clipping, fp32,
 * what the local trainer runs per step) of a recipe's model at one context length T with a fixed number of tokens per
 * step (B = tokens / T), on random tokens. One process per cell, so the peak RSS (VmHWM) is this model's alone.
 * The model comes from a recipe plus overrides ({@code key=value;key=value}, semicolons since chains hold commas),
 * with max_seq_len = T; {@code --config-only} prints that model's config (ColmConfig.toMap, the keys the PyTorch peer
 * reads) and exits without loading the native code, so the peer trains exactly the same model. Prints one JSON line.
 *
 * <pre>java ... io.catena.bench.CostCurveBench --recipe builtin:small [--set "head_dim=32;layers=4"] --seq 1024
 *     [--tokens 4096] [--steps 3] [--warmup 1] [--config-only true]</pre>
 */
public final class CostCurveBench {

    public static void main(String[] args) throws Exception {
        Map<String, String> a = io.catena.model.cli.Args.values("bench cost-curve", args, 0, java.util.Set.of("recipe", "set", "seq",
                "tokens", "steps", "warmup", "config-only"));
        int seq = Integer.parseInt(a.getOrDefault("seq", "1024"));
        int tokens = Integer.parseInt(a.getOrDefault("tokens", "4096"));
        int steps = Integer.parseInt(a.getOrDefault("steps", "3"));
        int warmup = Integer.parseInt(a.getOrDefault("warmup", "1"));
        if (tokens % seq != 0) {
            throw new IllegalArgumentException("--tokens " + tokens + " is not a multiple of --seq " + seq);
        }
        int batch = tokens / seq;
        List<String> overrides = new ArrayList<>();
        for (String o : a.getOrDefault("set", "").split(";")) {
            if (!o.isBlank()) {
                overrides.add(o.trim());
            }
        }
        overrides.add("seq_len=" + seq);
        overrides.add("max_seq_len=" + seq);
        overrides.add("batch_size=" + batch);
        Recipe recipe = Recipe.resolve(a.getOrDefault("recipe", "builtin:small")).with(overrides);
        ColmConfig cfg = recipe.modelConfig(257);
        TrainSettings ts = recipe.trainSettings();
        ObjectMapper json = new ObjectMapper();
        if (Boolean.parseBoolean(a.getOrDefault("config-only", "false"))) {
            System.out.println(json.writeValueAsString(cfg.toMap()));
            return;
        }
        io.catena.model.kernel.NativeSetup.report(); // the host's GEMM path, chosen before ND4J loads, in the log

        long b0 = ActivationMemory.allocatedBytes(); // only activations count there: the model's buffers
        TrainBench.Rig rig = TrainBench.Rig.of(cfg, batch, seq, ts.adamW());
        long activationBytes = ActivationMemory.allocatedBytes() - b0;
        ParamLayout layout = rig.layout();
        Params params = rig.params(), grads = rig.grads(), m = rig.m(), v = rig.v();
        ColmModel model = rig.model();
        AdamW opt = rig.opt();

        io.catena.model.kernel.Gemm.usePrecision(ts.precision()); // --set precision=bf16: the recipe's GEMM precision (refused where it cannot run)
        SplittableRandom rnd = new SplittableRandom(7);
        int[] in = new int[batch * seq];
        int[] tg = new int[batch * seq];
        double[] ms = new double[steps];
        double[] othersCpuS = new double[steps];
        double lastLoss = 0;
        double firstLoss = 0;
        double busy0 = 0, own0 = 0;
        long wall0 = 0;
        double[] gemmMs = new double[steps];
        for (int s = 0; s < warmup + steps; s++) {
            for (int i = 0; i < in.length; i++) {
                in[i] = rnd.nextInt(cfg.vocabSize());
                tg[i] = rnd.nextInt(cfg.vocabSize());
            }
            if (s == warmup) {
                busy0 = boxBusyS();
                own0 = ownCpuS();
                wall0 = System.nanoTime();
                io.catena.model.kernel.Prof.reset();
            }
            double sb = boxBusyS(), so = ownCpuS();
            long g0 = io.catena.model.kernel.Gemm.nanos();
            long t0 = System.nanoTime();
            double[] l = model.forwardBackward(in, tg, 0, 0, false, 1.0);
            long to = io.catena.model.kernel.Prof.start();
            opt.step(params, grads, m, v, s + 1, ts.lr());
            io.catena.model.kernel.Prof.stop("adamw", to);
            long t1 = System.nanoTime();
            if (s >= warmup) {
                ms[s - warmup] = (t1 - t0) / 1e6;
                gemmMs[s - warmup] = (io.catena.model.kernel.Gemm.nanos() - g0) / 1e6;
                othersCpuS[s - warmup] = (boxBusyS() - sb) - (ownCpuS() - so);
            }
            if (s == 0) {
                firstLoss = l[l.length - 1];
            }
            lastLoss = l[l.length - 1];
        }
        double timedWall = (System.nanoTime() - wall0) / 1e9;
        double others = (boxBusyS() - busy0) - (ownCpuS() - own0);
        double med = TrainBench.median(ms);

        Map<String, Object> out = new LinkedHashMap<>();
        out.put("bench", "cost-curve");
        out.put("engine", "catena");
        out.put("recipe", a.getOrDefault("recipe", "builtin:small"));
        out.put("overrides", a.getOrDefault("set", ""));
        out.put("precision", ts.precision().key());
        out.put("config", cfg.toMap());
        out.put("d_model", cfg.dModel());
        out.put("seq", seq);
        out.put("batch", batch);
        out.put("params", layout.size());
        out.put("steps", steps);
        out.put("warmup", warmup);
        out.put("ms_per_step", med);
        out.put("ms_all", Arrays.stream(ms).map(x -> Math.round(x * 10) / 10.0).toArray());
        out.put("tokens_per_s", batch * seq / (med / 1000));
        out.put("gemm_ms_per_step", TrainBench.median(gemmMs));
        if (io.catena.model.kernel.Prof.ON) { // -Dcatena.profile=true: wall ms per phase per timed step (phases nest)
            Map<String, Double> phases = new LinkedHashMap<>();
            io.catena.model.kernel.Prof.snapshot().forEach((phase, x) -> phases.put(phase, Math.round(x / steps * 10) / 10.0));
            out.put("phase_ms_per_step", phases);
        }
        out.put("activation_mb", activationBytes / (1024.0 * 1024.0));
        out.put("peak_rss_mb", TrainBench.peakRssMb());
        out.put("loss_first", firstLoss);
        out.put("loss_last", lastLoss);
        out.put("other_procs_cpu_s_during_timed", others);
        out.put("timed_wall_s", timedWall);
        out.put("other_procs_cpu_s_per_step", Arrays.stream(othersCpuS).map(x -> Math.round(x * 100) / 100.0).toArray());
        out.put("kernel_threads", Parallel.threads());
        out.put("attention", io.catena.model.layers.Attention.defaultCore.name().toLowerCase(java.util.Locale.ROOT));
        out.put("native", io.catena.model.kernel.NativeSetup.report().toMap());
        System.out.println(json.writeValueAsString(out));
    }

    /** CPU seconds the whole machine spent busy (/proc/stat), to see the other processes' load during a step. */
    static double boxBusyS() {
        try {
            String[] f = Files.readAllLines(Path.of("/proc/stat")).get(0).trim().split("\\s+");
            long total = 0;
            for (int i = 1; i <= 8 && i < f.length; i++) {
                total += Long.parseLong(f[i]);
            }
            total -= Long.parseLong(f[4]) + Long.parseLong(f[5]); // idle, iowait
            return total / 100.0; // USER_HZ
        } catch (Exception e) {
            return 0;
        }
    }

    static double ownCpuS() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime() / 1e9;
    }

    private CostCurveBench() {
    }
}
