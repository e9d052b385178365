package io.catena.trainer;

import io.catena.model.cli.Args;
import io.catena.model.cli.NumericOption;
import io.catena.ps.SyncPolicy;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Function;

/**
 * Settings of one {@code catena train} run. Every option is a command-line flag and, with the same
 * name under {@code spark.catena.}, a Spark conf key (so it fits in spark-defaults.conf); the command
 * line wins. {@link #parse(String[], Function)} takes the Spark conf as a lookup function.
 */
public record TrainOptions(String data, String recipe, String out, String master, int dp, SyncPolicy sync,
                           List<Growth> growth, int evalEvery, int ckptEvery, boolean resume, FailAt failAt,
                           long steps, long untilStep, List<String> overrides, String metrics, String jobName,
                           String psHost, int psPort, int termLength, int kernelThreads, int maxAttempts,
                           long requestTimeoutMs, long slotWaitMs, String psSecretFile, String psConf,
                           long psConnectTimeoutMs, int pp, int microBatches, String schedule, boolean recompute,
                           double divergenceFactor, boolean restartLrSchedule, long psWaitMs)
        implements Serializable {

    /** Conf key prefix: {@code --eval-every 50} is also {@code spark.catena.eval-every=50}. */
    public static final String PREFIX = "spark.catena.";

    /** How long the driver waits for a lost external parameter server to answer again (--ps-wait-ms). */
    public static final long DEFAULT_PS_WAIT_MS = 120_000;

    static final Set<String> VALUED = new TreeSet<>(List.of("data", "recipe", "out", "master", "dp", "sync", "grow-at",
            "eval-every", "ckpt-every", "fail-at", "steps", "until-step", "set", "metrics", "job-name", "ps-host", "ps-port",
            "term-length", "kernel-threads", "max-attempts", "request-timeout-ms", "slot-wait-ms", "ps-secret-file", "ps-conf",
            "ps-connect-timeout-ms", "pp", "micro-batches", "schedule", "divergence-factor", "skip-nonfinite", "lr-schedule", "ps-wait-ms"));
    static final Set<String> FLAGS = new TreeSet<>(List.of("resume", "help", "recompute"));

    public static final String USAGE = """
            catena train --data <manifest uri|text file|dir|builtin:genesis> --recipe <file|builtin:tiny> --out <ckpt uri>
                         [--master local[N]|spark://host:7077] [--dp N] [--sync bsp|ssp:S|asp]
                         [--grow-at STEP:+HEADS[,HEADS...][:freeze]]... [--eval-every N] [--ckpt-every N] [--resume]
                         [--steps N] [--until-step N] [--set key=value]... [--metrics <file.jsonl>] [--fail-at RANK:STEP[:exit]]
                         [--job-name NAME] [--ps-host HOST --ps-port PORT [--ps-secret-file F] [--ps-conf F] [--ps-connect-timeout-ms MS] [--ps-wait-ms MS]]
                         [--term-length BYTES] [--kernel-threads N] [--max-attempts N] [--request-timeout-ms MS] [--slot-wait-ms MS]
                         [--pp P [--micro-batches M] [--schedule 1f1b|gpipe] [--recompute]] [--divergence-factor F]
                         [--lr-schedule continue|restart]
              Trains CoLM with dp data-parallel Spark tasks (one barrier stage) through an embedded Aeron parameter
              server on the driver, or, with --ps-host/--ps-port (or --ps-conf), through an external one started with
              `catena ps --conf F` (same recipe, catena.ps.workers = dp, same sync; --ps-secret-file is its
              catena.ps.secret.file, --job-name its catena.ps.job.name; --ps-conf F reads all of these from the
              server's conf file). --ps-port alone pins the embedded server's UDP port. The global batch is the
              recipe's batch_size; each task computes batch_size/dp of it, so a run matches `catena train-local` step
              for step. --grow-at 200:+2:freeze appends a 2-head chain
              after step 200 and trains only the new chain; without :freeze every chain trains on (the growth recipe,
              benchmarks/run-growth.sh): the new chain starts as a copy of the last chain when as wide (else random;
              the model's outputs unchanged either way), its LR ramps over growth_warmup_steps (default 30) and the LR
              schedule restarts at growth_lr_rewarm x lr (default 1.0; at most 3x the share of the run left) after the
              first growth, down to min_lr at the end. --eval-every/--ckpt-every default to the recipe's values.
              --resume continues from the latest checkpoint under --out; with another --steps the LR schedule
              continues (decays from the rate reached to min_lr at the new last step) unless --lr-schedule restart. --until-step stops early (the LR schedule
              still follows --steps). A failed stage is rerun from the parameter server's version, up to
              --max-attempts times. An external server that stops answering (crashed, or killed) is waited for up
              to --ps-wait-ms (default 120 s; 0 = fail at once): restarted from its last snapshot (catena ps --conf F
              --restore <its catena.ps.snapshot.uri>), the job rewinds to the snapshot's step and goes on by itself,
              the data cursor included; if it does not come back, the job fails with one line saying how to resume.
              --fail-at makes task RANK fail once at STEP (fault-injection tests; :exit halts
              its executor JVM instead of throwing).
              --pp P splits the blocks into P pipeline stages (boundaries from a FLOP cost model; embedding on the
              first, head and loss on the last): the stage runs dp x P tasks, task r runs stage r % P of replica r / P,
              activations and their gradients flow between neighbouring stages over Aeron, and each stage pushes and
              pulls only its own parameters. Each replica's batch_size/dp rows are cut into M micro-batches (default:
              the largest of 4P, 2P, P dividing them) scheduled 1F1B (default: at most P+1 activations in flight) or GPipe;
              --recompute keeps only stage inputs and recomputes the rest in backward. Same math as dp alone.
              --divergence-factor F (default 10; 0 = off) stops the run, before its next checkpoint, when the loss or
              the parameter norm grows more than F times between two checks (a diverged run's checkpoint would poison
              a resume); a non-finite gradient stops it too. Both fail the job once: rerunning the stage would only
              repeat the same numbers. (Skipping bad steps, --skip-nonfinite, is train-local's.)
              On a cluster the driver waits for executors to register until dp x pp task slots exist at once:
              --slot-wait-ms (default: 60 s plus 15 s per executor the stage needs, so it grows with the cluster
              start-up) bounds that wait; it ends as soon as the slots are there.
              Numeric options outside their range are errors, never replaced by a default (--dp 0, --steps -1).
              Every option is also a Spark conf key spark.catena.<option> (e.g. spark.catena.dp=4).
            """;

    /** Append {@code heads} chains after step {@code step}; {@code freeze} trains only the new chains afterwards. */
    public record Growth(long step, List<Integer> heads, boolean freeze) implements Serializable {
        public Growth {
            if (step < 1) {
                throw new IllegalArgumentException("--grow-at step must be >= 1, got " + step);
            }
            if (heads.isEmpty() || heads.stream().anyMatch(h -> h < 1)) {
                throw new IllegalArgumentException("--grow-at needs head counts >= 1, got " + heads);
            }
            heads = List.copyOf(heads);
        }

        /** Parses {@code STEP:+HEADS[,HEADS...][:freeze]}, e.g. {@code 100:+2:freeze}. */
        public static Growth parse(String s) {
            String[] p = s.trim().split(":");
            if (p.length < 2 || p.length > 3 || !p[1].startsWith("+") || (p.length == 3 && !p[2].equalsIgnoreCase("freeze"))) {
                throw new IllegalArgumentException("--grow-at must look like STEP:+HEADS[,HEADS...][:freeze] (e.g. 100:+2:freeze), got '"
                        + s + "'");
            }
            try {
                List<Integer> heads = new ArrayList<>();
                for (String h : p[1].substring(1).split(",")) {
                    heads.add(Integer.parseInt(h.trim()));
                }
                return new Growth(Long.parseLong(p[0].trim()), heads, p.length == 3);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--grow-at must look like STEP:+HEADS[,HEADS...][:freeze], got '" + s + "'");
            }
        }

        @Override
        public String toString() {
            StringBuilder sb = new StringBuilder().append(step).append(":+");
            for (int i = 0; i < heads.size(); i++) {
                sb.append(i == 0 ? "" : ",").append(heads.get(i));
            }
            return sb.append(freeze ? ":freeze" : "").toString();
        }
    }

    /**
     * Task {@code rank} fails once (first stage run only) when it is about to compute step {@code step}: it
     * throws, or with {@code exit} halts its executor JVM (a lost executor; clusters only).
     */
    public record FailAt(int rank, long step, boolean exit) implements Serializable {
        public FailAt(int rank, long step) {
            this(rank, step, false);
        }

        public static FailAt parse(String s) {
            String[] p = s.trim().split(":");
            try {
                if (p.length == 2 || (p.length == 3 && p[2].trim().equals("exit"))) {
                    return new FailAt(Integer.parseInt(p[0].trim()), Long.parseLong(p[1].trim()), p.length == 3);
                }
            } catch (NumberFormatException e) {
                // fall through
            }
            throw new IllegalArgumentException("--fail-at must look like RANK:STEP[:exit] (e.g. 1:5), got '" + s + "'");
        }
    }

    public TrainOptions {
        growth = List.copyOf(growth);
        overrides = List.copyOf(overrides);
    }

    /**
     * Parses the command line; options missing there are looked up as {@code spark.catena.<name>} in
     * {@code conf} (may return null). Throws IllegalArgumentException naming the bad option.
     */
    public static TrainOptions parse(String[] argv, Function<String, String> conf) {
        Args args = new Args("train", argv, Args.firstOption(argv, "train"), VALUED, FLAGS)
                .withFallback(name -> conf == null ? null : conf.apply(PREFIX + name));
        if (args.helpRequested()) {
            throw new HelpRequested();
        }
        Function<String, String> get = name -> args.get(name, null);
        Function<String, List<String>> all = args::all;
        String data = require(get, "data");
        String recipe = require(get, "recipe");
        String out = require(get, "out");
        List<Growth> growth = new ArrayList<>();
        for (String g : all.apply("grow-at")) {
            for (String one : g.split(";")) {
                growth.add(Growth.parse(one));
            }
        }
        growth.sort((x, y) -> Long.compare(x.step(), y.step()));
        for (int i = 1; i < growth.size(); i++) {
            if (growth.get(i).step() == growth.get(i - 1).step()) {
                throw new IllegalArgumentException("two --grow-at events at step " + growth.get(i).step()
                        + "; put all heads in one (e.g. " + growth.get(i).step() + ":+2,2)");
            }
        }
        SyncPolicy sync;
        try {
            sync = SyncPolicy.parse(get.apply("sync") == null ? "bsp" : get.apply("sync"));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--sync: " + e.getMessage());
        }
        boolean resume = args.flag("resume");
        String fail = get.apply("fail-at");
        String host = get.apply("ps-host");
        int psPort = integer(get, "ps-port", 0, 0);
        if (psPort < 0 || psPort > 65_535) {
            throw new IllegalArgumentException("--ps-port must be a UDP port 1..65535, got " + psPort);
        }
        if (host != null && psPort == 0 && get.apply("ps-conf") == null) {
            throw new IllegalArgumentException("--ps-host " + host + " names an external parameter server but --ps-port is missing; "
                    + "give the UDP port of its channel (catena.ps.channel=aeron:udp?endpoint=HOST:PORT in its conf file)");
        }
        if (get.apply("ps-secret-file") != null && host == null && get.apply("ps-conf") == null) {
            throw new IllegalArgumentException("--ps-secret-file is the secret of an external parameter server; add --ps-host and "
                    + "--ps-port (or --ps-conf) to use one, or drop it (the embedded server makes its own secret)");
        }
        if (get.apply("skip-nonfinite") != null && NumericOption.atLeast("skip-nonfinite", get.apply("skip-nonfinite"), 0) > 0) {
            throw new IllegalArgumentException("--skip-nonfinite is train-local's: a distributed step cannot be skipped on every "
                    + "worker at once; here a non-finite gradient fails the job once (drop the option, or lower the learning rate)");
        }
        double divergence = get.apply("divergence-factor") == null ? io.catena.model.train.NumericalGuard.DEFAULT_DIVERGENCE_FACTOR
                : NumericOption.parseDouble("divergence-factor", get.apply("divergence-factor"), 0, 1e12);
        io.catena.model.train.NumericalGuard.checkFactor(divergence);
        return new TrainOptions(data, recipe, out, get.apply("master"), integer(get, "dp", 0, 1), sync, growth,
                integer(get, "eval-every", -1, 0), integer(get, "ckpt-every", -1, 0), resume, fail == null ? null : FailAt.parse(fail),
                longValue(get, "steps", 0, 1), longValue(get, "until-step", 0, 1), all.apply("set"), get.apply("metrics"),
                get.apply("job-name"), host, psPort, integer(get, "term-length", 0, 1),
                integer(get, "kernel-threads", 0, 1), integer(get, "max-attempts", 3, 1), longValue(get, "request-timeout-ms", 120_000, 1),
                longValue(get, "slot-wait-ms", 0, 1), get.apply("ps-secret-file"), get.apply("ps-conf"),
                longValue(get, "ps-connect-timeout-ms", 10_000, 1), integer(get, "pp", 1, 1), integer(get, "micro-batches", 0, 1),
                schedule(get.apply("schedule")), args.flag("recompute"),
                divergence, io.catena.model.cli.CatenaCli.lrScheduleRestart(args.get("lr-schedule", "continue")),
                longValue(get, "ps-wait-ms", DEFAULT_PS_WAIT_MS, 0));
    }

    private static String schedule(String s) {
        String v = s == null ? "1f1b" : s.trim().toLowerCase(Locale.ROOT);
        try {
            io.catena.model.pipeline.PipelineSchedule.Kind.parse(v);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--schedule: " + e.getMessage());
        }
        return v;
    }

    /** Thrown by {@link #parse} for --help. */
    public static final class HelpRequested extends RuntimeException {
        HelpRequested() {
            super("help", null, false, false);
        }
    }

    private static String require(Function<String, String> get, String name) {
        String v = get.apply(name);
        if (v == null) {
            throw new IllegalArgumentException("missing --" + name + " (or " + PREFIX + name + ")\n" + USAGE);
        }
        return v;
    }

    /** An option's value, or dflt when it is not given; a given value must be >= min (never replaced by the default). */
    private static int integer(Function<String, String> get, String name, int dflt, int min) {
        String v = get.apply(name);
        return v == null ? dflt : NumericOption.intAtLeast(name, v, min);
    }

    private static long longValue(Function<String, String> get, String name, long dflt, long min) {
        String v = get.apply(name);
        return v == null ? dflt : NumericOption.atLeast(name, v, min);
    }

    /** True when the run uses a parameter server started separately (--ps-host or --ps-conf) instead of embedding one. */
    public boolean externalPs() {
        return psHost != null || psConf != null;
    }

    /** A short description for logs. */
    public String describe() {
        return String.format(Locale.ROOT, "dp=%d pp=%d sync=%s grow=%s eval_every=%d ckpt_every=%d resume=%s", dp, pp, sync, growth,
                evalEvery, ckptEvery, resume);
    }
}
