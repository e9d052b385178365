package io.catena.trainer;

import io.catena.model.ColmConfig;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.data.DataSources;
import io.catena.model.data.TokenBatchSource;
import io.catena.model.io.CheckpointStore;
import io.catena.model.io.TrainingState;
import io.catena.model.optim.LrSchedule;
import io.catena.model.io.storage.HadoopStorage;
import io.catena.model.pipeline.PipelineSchedule;
import io.catena.model.train.MetricsLog;
import io.catena.model.train.Recipe;
import io.catena.model.train.TrainSettings;
import io.catena.ps.Configuration;
import io.catena.ps.SyncPolicy;
import io.catena.trainer.pipeline.PipelineOptions;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.spark.api.java.JavaSparkContext;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * The driver's run setup, everything checked before anything starts: the recipe with its overrides, dp x pp and the
 * task slots for them, the data (the first worker's share and the validation split are opened here, so bad input fails
 * before the stage), the model to start from (fresh or resumed), the growth still ahead, and the parameter server's
 * address and secret. {@link TrainJob} turns the {@link Plan} into a {@link JobSpec} and runs it.
 */
final class RunSetup {
    private static final Pattern LOCAL = Pattern.compile("local(?:\\[(\\*|\\d+)(?:,\\s*\\d+)?])?");

    /** Where the parameter server is and how to reach it (an external one's settings, or the embedded one's, made here). */
    record Connection(PsHandle.ExternalSettings external, String host, String job, byte[] secret, String channel, int streamId,
                      int termLength, String udpParams, String aeronDir) {
    }

    /**
     * A checked run: {@code val} is open (the caller closes it); steps {@code startStep -> until} of {@code settings.steps()};
     * {@code baseData} is the global data position at startStep; {@code info} goes into every checkpoint.
     */
    record Plan(Recipe recipe, TrainSettings settings, LrSchedule schedule, int dp, PipelineOptions pipeline, TokenBatchSource val,
                String dataDescription, TrainingState state, long startStep, long until, long baseData, List<JobSpec.GrowthPlan> growth,
                int evalEvery, int ckptEvery, Map<String, Object> info, Path metricsFile, Connection connection) {
        /** Barrier tasks: dp x pp. */
        int tasks() {
            return dp * pipeline.stages();
        }
    }

    private final JavaSparkContext jsc;
    private final TrainOptions opts;
    private final PrintStream out;

    private RunSetup(JavaSparkContext jsc, TrainOptions opts, PrintStream out) {
        this.jsc = jsc;
        this.opts = opts;
        this.out = out;
    }

    /** Checks and prepares the run; IllegalArgumentException (exit 2) names what is wrong and what to change. */
    static Plan prepare(JavaSparkContext jsc, TrainOptions opts, PrintStream out, Map<String, Object> extraInfo) {
        return new RunSetup(jsc, opts, out).prepare(extraInfo);
    }

    private Plan prepare(Map<String, Object> extraInfo) {
        Recipe recipe = Recipe.resolve(opts.recipe()).with(opts.overrides());
        TrainSettings s = recipe.trainSettings();
        if (opts.steps() > 0) {
            s = s.withSteps(opts.steps());
        }
        int dp = opts.dp() > 0 ? opts.dp() : jsc.defaultParallelism();
        if (dp < 1) {
            throw new IllegalArgumentException("--dp must be >= 1, got " + dp);
        }
        if (s.batchSize() % dp != 0) {
            throw new IllegalArgumentException("the recipe's batch_size " + s.batchSize() + " is the global batch and must be divisible by "
                    + "--dp " + dp + " (each task computes batch_size/dp rows); change one of them");
        }
        PipelineOptions pipeline = pipelineOptions(s, dp);
        checkSlots(dp, pipeline);
        if (opts.failAt() != null && opts.failAt().exit() && isLocal(jsc.master())) {
            throw new IllegalArgumentException("--fail-at " + opts.failAt().rank() + ":" + opts.failAt().step() + ":exit halts the "
                    + "executor JVM, which in " + jsc.master() + " is the driver; use it on a cluster, or drop :exit");
        }
        TokenBatchSource probe;
        TokenBatchSource val;
        try {
            probe = DataSources.open(opts.data(), "train", s.seqLen(), s.valFraction(), s.seed(), 0, dp);
            val = DataSources.open(opts.data(), "val", s.seqLen(), s.valFraction(), s.seed(), 0, 1);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("cannot read --data " + opts.data() + ": " + e.getMessage(), e);
        }
        String dataDescription = probe.describe();
        int dataVocab = probe.vocabSize();
        probe.close();
        try {
            TrainingState state = startingState(recipe, s, dataVocab);
            checkModelFits(state, s, dataVocab, pipeline, dp);
            long until = opts.untilStep() > 0 ? Math.min(opts.untilStep(), s.steps()) : s.steps();
            // a resume with another --steps continues the LR schedule it had (unless --lr-schedule restart)
            LrSchedule schedule = s.scheduleResuming(state.info(), state.step(), opts.restartLrSchedule());
            if (schedule.continueFrom() > 0) {
                out.println(String.format(java.util.Locale.ROOT, "lr schedule: continues from step %d at %.3g down to %.3g at step "
                        + "%d (--lr-schedule restart to start it anew)", schedule.continueFrom(), schedule.continueLr(), s.minLr(),
                        s.steps()));
            }
            List<JobSpec.GrowthPlan> growth = growthPlan(state, s);
            if (!growth.isEmpty() && schedule.continueFrom() == 0) {
                // the growth recipe: the rate restarts at growth_lr_rewarm x lr after the (first) --grow-at step
                schedule = s.rewarmedAt(schedule, growth.get(0).step());
                if (schedule.continueFrom() > 0) {
                    out.println(String.format(java.util.Locale.ROOT, "lr schedule: re-warmed after the growth at step %d to %.3g, "
                            + "down to %.3g at step %d (growth_lr_rewarm)", schedule.continueFrom(), schedule.continueLr(),
                            s.minLr(), s.steps()));
                }
            }
            Map<String, Object> info = checkpointInfo(recipe, s, dataDescription, dp, pipeline, extraInfo);
            info.put("lr_schedule", schedule.toMap());
            return new Plan(recipe, s, schedule, dp, pipeline, val, dataDescription, state, state.step(), until, state.dataPosition(),
                    growth, opts.evalEvery() >= 0 ? opts.evalEvery() : s.evalEvery(),
                    opts.ckptEvery() >= 0 ? opts.ckptEvery() : s.ckptEvery(), info, metricsPath(opts), connection(state));
        } catch (RuntimeException e) {
            val.close();
            throw e;
        }
    }

    /** The resumed checkpoint under --out (its metrics past it dropped), or a fresh model from the recipe. */
    private TrainingState startingState(Recipe recipe, TrainSettings s, int dataVocab) {
        CheckpointStore store = new CheckpointStore(HadoopStorage.resolver(jsc.hadoopConfiguration()));
        List<String> swept = store.sweepLeftovers(opts.out());
        if (!swept.isEmpty()) {
            out.println("removed leftovers of interrupted checkpoint writes under " + opts.out() + ": " + swept);
        }
        if (!opts.resume()) {
            ColmConfig cfg = recipe.modelConfig(dataVocab);
            Params p = new Params(new ParamLayout(cfg), DataType.FLOAT);
            p.initialize(s.seed(), 0);
            return new TrainingState(cfg, p, null, null, 0, 0, 0, s.frozenChains(), Map.of());
        }
        TrainingState state;
        try {
            state = store.load(opts.out(), true);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("--resume: no usable checkpoint under " + opts.out() + " (" + e.getMessage()
                    + "); run without --resume to start fresh");
        }
        out.println("resuming " + opts.out() + " at step " + state.step() + " (chains " + state.config().chains() + ")");
        Path metrics = metricsPath(opts);
        int dropped = MetricsLog.truncateAfter(metrics, state.step());
        if (dropped > 0) {
            out.println("metrics: dropped " + dropped + " records after step " + state.step() + " from " + metrics
                    + " (steps the interrupted run computed past its last checkpoint; this run computes them again)");
        }
        return state;
    }

    private void checkModelFits(TrainingState state, TrainSettings s, int dataVocab, PipelineOptions pipeline, int dp) {
        if (dataVocab > state.config().vocabSize()) {
            throw new IllegalArgumentException("the data has " + dataVocab + " token ids but the model's vocab_size is "
                    + state.config().vocabSize() + "; use the tokenizer the model was trained with or raise vocab_size in the recipe");
        }
        if (pipeline.stages() > state.config().layers()) {
            throw new IllegalArgumentException("--pp " + pipeline.stages() + " needs at least " + pipeline.stages() + " transformer blocks "
                    + "(one per stage), but the model has layers=" + state.config().layers() + "; lower --pp or raise layers in the recipe");
        }
        if (s.seqLen() > state.config().maxSeqLen()) {
            throw new IllegalArgumentException("seq_len " + s.seqLen() + " exceeds the model's max_seq_len " + state.config().maxSeqLen());
        }
        if (state.dataPosition() % dp != 0) {
            throw new IllegalArgumentException("the checkpoint's data position " + state.dataPosition() + " is not divisible by --dp "
                    + dp + "; resume with a dp that divides it");
        }
    }

    /** The --grow-at events still ahead of the starting step, each with the chain count after it. */
    private List<JobSpec.GrowthPlan> growthPlan(TrainingState state, TrainSettings s) {
        List<JobSpec.GrowthPlan> plan = new ArrayList<>();
        int chains = state.config().numChains();
        for (TrainOptions.Growth g : opts.growth()) {
            if (g.step() >= s.steps()) {
                throw new IllegalArgumentException("--grow-at " + g + " is at or after the last step " + s.steps());
            }
            if (g.step() < state.step()) {
                continue; // already behind us (resumed run); a checkpoint AT the growth step holds the model before it
            }
            chains += g.heads().size();
            plan.add(new JobSpec.GrowthPlan(g.step(), g.heads(), g.freeze(), chains));
        }
        return plan;
    }

    private Map<String, Object> checkpointInfo(Recipe recipe, TrainSettings s, String dataDescription, int dp, PipelineOptions pipeline,
                                               Map<String, Object> extraInfo) {
        Map<String, Object> info = new LinkedHashMap<>();
        info.put("recipe", new TreeMap<>(recipe.values()));
        info.put("data", dataDescription);
        info.put("data_spec", opts.data()); // lets generate find the data's tokenizer
        info.put("seed", s.seed());
        info.put("steps_planned", s.steps());
        info.put("dp", dp);
        info.put("pp", pipeline.stages());
        info.put("sync", opts.sync().toString());
        info.put("trainer", "spark-trainer");
        info.putAll(extraInfo);
        return info;
    }

    /** An external server's settings (--ps-host/--ps-conf), or a fresh job name, secret and UDP port for the embedded one. */
    private Connection connection(TrainingState state) {
        // the driver's host: executors send telemetry here (and reach the embedded server here)
        String host = jsc.getConf().get("spark.driver.host", "127.0.0.1");
        PsHandle.ExternalSettings ext = opts.externalPs() ? PsHandle.ExternalSettings.resolve(opts) : null;
        if (ext != null) {
            return new Connection(ext, host, ext.jobName(), ext.secret(), "aeron:udp?endpoint=" + ext.endpoint(), ext.streamId(),
                    ext.termLength(), ext.udpParams(), aeronDir(ext.jobName()));
        }
        String job = opts.jobName() != null ? opts.jobName() : "catena-" + Long.toHexString(new SecureRandom().nextLong() & 0xffffffffffL);
        byte[] secretRaw = new byte[32];
        new SecureRandom().nextBytes(secretRaw);
        byte[] secret = Base64.getEncoder().encodeToString(secretRaw).getBytes(StandardCharsets.US_ASCII);
        String channel = "aeron:udp?endpoint=" + host + ":" + (opts.psPort() > 0 ? opts.psPort() : TrainJob.freeUdpPort());
        int term = opts.termLength() > 0 ? opts.termLength() : TrainJob.termLengthFor(state.params().layout().size());
        return new Connection(null, host, job, secret, channel, Configuration.STREAM_ID_DEFAULT, term,
                Configuration.UDP_CHANNEL_PARAMS_DEFAULT, aeronDir(job));
    }

    private static String aeronDir(String job) {
        return Configuration.AERON_DIR_DEFAULT + "-" + job.replaceAll("[^A-Za-z0-9_.-]", "_");
    }

    /** metrics.jsonl: --metrics, else beside a local checkpoint root, else in the driver's working directory. */
    static Path metricsPath(TrainOptions opts) {
        if (opts.metrics() != null) {
            return Path.of(opts.metrics());
        }
        String o = opts.out();
        if (o.startsWith("file:")) {
            o = o.replaceFirst("^file:(//)?", "");
        } else if (o.matches("^[a-zA-Z][a-zA-Z0-9+.-]*:.*")) {
            return Path.of("catena-train-metrics.jsonl"); // a remote checkpoint root: metrics stay on the driver
        }
        return Path.of(o, "metrics.jsonl");
    }

    /**
     * Pipeline settings checked against the recipe: the replica batch splits into micro-batches, stages <= blocks,
     * BSP or SSP (stages of a replica step together), an embedded server (it plans the stages itself).
     */
    private PipelineOptions pipelineOptions(TrainSettings s, int dp) {
        int pp = opts.pp();
        if (pp < 1) {
            throw new IllegalArgumentException("--pp must be >= 1, got " + pp);
        }
        if (pp == 1) {
            if (opts.microBatches() > 1 || opts.recompute()) {
                throw new IllegalArgumentException("--micro-batches and --recompute apply to pipeline stages; add --pp 2 (or more)");
            }
            return PipelineOptions.NONE;
        }
        if (opts.sync().mode() == SyncPolicy.Mode.ASP) {
            throw new IllegalArgumentException("--pp " + pp + " needs --sync bsp or ssp:S: the stages of a replica compute each step "
                    + "together, so their updates must be applied per step; drop --sync asp");
        }
        if (opts.externalPs()) {
            throw new IllegalArgumentException("--pp " + pp + " runs with the embedded parameter server only (it plans the stages from "
                    + "the model); drop --ps-host/--ps-conf");
        }
        int rows = s.batchSize() / dp;
        int m = PipelineOptions.microBatchesFor(opts.microBatches(), pp, rows);
        return new PipelineOptions(pp, m, PipelineSchedule.Kind.parse(opts.schedule()), opts.recompute());
    }

    static boolean isLocal(String master) {
        return LOCAL.matcher(master).matches();
    }

    /** Fails fast when the barrier stage cannot get dp x pp slots at once (Spark would otherwise retry for minutes). */
    private void checkSlots(int dp, PipelineOptions pipeline) {
        int tasks = dp * pipeline.stages();
        String master = jsc.master();
        Matcher m = LOCAL.matcher(master);
        int slots;
        long waitedMs = 0;
        if (m.matches()) {
            String n = m.group(1);
            slots = n == null ? 1 : n.equals("*") ? Runtime.getRuntime().availableProcessors() : Integer.parseInt(n);
            slots /= Math.max(1, jsc.getConf().getInt("spark.task.cpus", 1));
        } else {
            int coresPerExecutor = jsc.getConf().getInt("spark.executor.cores", 0);
            if (coresPerExecutor <= 0) {
                return; // unknown: Spark's own barrier check (spark.scheduler.barrier.maxConcurrentTasksCheck.*) decides
            }
            int perExecutor = Math.max(1, coresPerExecutor / Math.max(1, jsc.getConf().getInt("spark.task.cpus", 1)));
            waitedMs = opts.slotWaitMs() > 0 ? opts.slotWaitMs() : defaultSlotWaitMs(tasks, perExecutor);
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(waitedMs);
            while (true) {
                // getExecutorInfos lists the driver too
                int executors = Math.max(0, jsc.sc().statusTracker().getExecutorInfos().length - 1);
                slots = executors * perExecutor;
                if (slots >= tasks || System.nanoTime() - deadline > 0) {
                    break;
                }
                Telemetry.sleep(200);
            }
        }
        if (slots < tasks) {
            throw new IllegalArgumentException("--dp " + dp + (pipeline.enabled() ? " x --pp " + pipeline.stages() : "") + " needs " + tasks
                    + " task slots at once (one barrier stage), but " + master
                    + " offers " + slots + (waitedMs > 0 ? " after waiting " + waitedMs + " ms for executors to register" : "")
                    + "; lower --dp/--pp or add executors/cores (spark.executor.instances, spark.executor.cores, spark.task.cpus)"
                    + (waitedMs > 0 ? ", or, if the cluster is still starting, wait longer with --slot-wait-ms (spark.catena.slot-wait-ms)"
                    : ""));
        }
    }

    /** The default slot wait: 60 s, plus 15 s for each executor the stage needs (start-up grows with the cluster). */
    static long defaultSlotWaitMs(int tasks, int slotsPerExecutor) {
        int executors = (tasks + slotsPerExecutor - 1) / slotsPerExecutor;
        return 60_000L + 15_000L * executors;
    }
}
