package io.catena.trainer;

import io.catena.model.ColmConfig;
import io.catena.model.ColmModel;
import io.catena.model.NotRetryableException;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.data.DataSources;
import io.catena.model.data.TokenBatchSource;
import io.catena.model.io.CheckpointStore;
import io.catena.model.io.TrainingState;
import io.catena.model.kernel.Parallel;
import io.catena.model.optim.LrSchedule;
import io.catena.model.pipeline.PipelineSchedule;
import io.catena.model.train.Evaluator;
import io.catena.model.train.MetricsLog;
import io.catena.model.train.Progress;
import io.catena.model.train.Recipe;
import io.catena.model.train.TrainSettings;
import io.catena.ps.Configuration;
import io.catena.ps.ParameterServer;
import io.catena.ps.ParameterServerClient;
import io.catena.ps.ServerLayout;
import io.catena.ps.SyncPolicy;
import io.catena.trainer.pipeline.PipelineOptions;
import java.io.IOException;
import java.io.PrintStream;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.spark.BarrierTaskContext;
import org.apache.spark.SparkConf;
import org.apache.spark.SparkExecutorInfo;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.rdd.RDD;
import org.nd4j.linalg.api.buffer.DataType;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.jdk.javaapi.CollectionConverters;
import scala.reflect.ClassTag$;
import scala.runtime.AbstractFunction1;

/**
 * {@code catena train}: the spark-submit entry point and its driver. The driver starts the embedded
 * parameter server (master weights, server-side AdamW, snapshots), or with {@code --ps-host/--ps-port}
 * connects to one started separately ({@link PsHandle.Remote}: it must serve this job's model, dp and sync),
 * then runs ONE barrier stage of dp tasks ({@link WorkerTask}); it grows the model at the planned steps,
 * prints progress and writes metrics from the workers' Aeron reports, and when the stage fails it runs it again: the workers
 * resume from the server's current version, so at most the step in flight is computed twice.
 *
 * <pre>
 * spark-submit --class io.catena.trainer.TrainJob spark-trainer-0.1.0-SNAPSHOT-app.jar \
 *     --data hdfs:///corpora/kjv --recipe tiny.properties --out hdfs:///ckpt/run1 --dp 4 --grow-at 300:+2:freeze
 * </pre>
 */
public final class TrainJob {
    private static final Logger LOG = LoggerFactory.getLogger(TrainJob.class);
    private static final long ADMIN_TIMEOUT_MS = 120_000;

    private final JavaSparkContext jsc;
    private final TrainOptions opts;
    private final PrintStream out;

    public TrainJob(JavaSparkContext jsc, TrainOptions opts, PrintStream out) {
        this.jsc = jsc;
        this.opts = opts;
        this.out = out;
    }

    /** Facts added to every checkpoint's info written by this run (e.g. {@link RetrainJob}'s history); serializable values. */
    private Map<String, Object> extraInfo = Map.of();

    /** Adds {@code extra} to the info of every checkpoint this run writes (its keys win over the run's own). */
    public TrainJob withInfo(Map<String, Object> extra) {
        this.extraInfo = new LinkedHashMap<>(extra);
        return this;
    }

    /** The start of every {@link io.catena.model.io.CheckpointWriteException}'s message, which reaches the driver as text. */
    static final String CHECKPOINT_WRITE_FAILED = "cannot write checkpoint";

    /**
     * spark-submit / {@code catena train} entry point. Exit codes: 0 done, 2 bad input, 3 a checkpoint could not be
     * written (disk full, ...), 1 any other failure.
     */
    public static void main(String[] argv) {
        SparkConf conf = new SparkConf();
        TrainOptions opts;
        try {
            opts = TrainOptions.parse(argv, k -> conf.contains(k) ? conf.get(k) : null);
        } catch (TrainOptions.HelpRequested h) {
            System.out.print(TrainOptions.USAGE);
            return;
        } catch (IllegalArgumentException e) {
            System.err.println("catena train: " + e.getMessage());
            System.exit(2);
            return;
        }
        conf.setIfMissing("spark.app.name", "catena train");
        if (opts.master() != null) {
            conf.setMaster(opts.master());
        }
        conf.setIfMissing("spark.master", "local[" + Math.max(1, opts.dp()) * Math.max(1, opts.pp()) + "]"); // dp x pp tasks
        // a barrier stage larger than the cluster's slots fails within ~30 s instead of Spark's 10-minute default
        conf.setIfMissing("spark.scheduler.barrier.maxConcurrentTasksCheck.interval", "2s");
        conf.setIfMissing("spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures", "15");
        String ui = io.catena.data.LocalSparkUi.apply(conf, System.getenv());
        if (ui != null) {
            System.err.println("catena train: " + ui);
        }
        int code;
        try (JavaSparkContext jsc = new JavaSparkContext(conf)) {
            TrainResult r = new TrainJob(jsc, opts, System.out).run();
            System.out.println("done: step " + r.finalStep() + ", chains " + r.chains() + ", checkpoint " + r.checkpoint());
            code = 0;
        } catch (IllegalArgumentException e) {
            System.err.println("catena train: " + e.getMessage());
            code = 2;
        } catch (RuntimeException e) {
            System.err.println("catena train failed: " + e.getMessage());
            LOG.error("training failed", e);
            code = String.valueOf(e.getMessage()).contains(CHECKPOINT_WRITE_FAILED) ? 3 : 1;
        }
        System.out.flush();
        System.exit(code);
    }

    // ---- the driver -------------------------------------------------------------------------------

    private final SortedMap<Long, double[]> trainLoss = new TreeMap<>();
    private final SortedMap<Long, double[]> evals = new TreeMap<>();
    private final Map<Long, double[][]> pending = new HashMap<>();
    private final Map<Long, double[]> pendingSync = new HashMap<>();
    /** Ranks of the current stage run waiting at a growth step (they finished that step's eval/checkpoint). */
    private final Map<Long, java.util.Set<Integer>> gates = new HashMap<>();
    private volatile int currentAttempt;
    private Path metricsFile;
    private long runStartNanos;
    private long windowStartNanos;
    private long windowSteps;
    private long startStep;
    private long until;
    private int dp;
    private TrainSettings settings;
    private LrSchedule schedule;
    private List<Integer> chainsNow = List.of();
    private PipelineOptions pipeline = PipelineOptions.NONE;
    /** Barrier tasks: dp x pp. */
    private int tasks;

    /** Runs the whole job on {@code jsc}: validate, start the server, run the stage (again after failures), finish. */
    public TrainResult run() {
        Recipe recipe = Recipe.resolve(opts.recipe()).with(opts.overrides());
        TrainSettings s = recipe.trainSettings();
        if (opts.steps() > 0) {
            s = s.withSteps(opts.steps());
        }
        this.settings = s;
        this.schedule = s.schedule();
        this.dp = opts.dp() > 0 ? opts.dp() : jsc.defaultParallelism();
        if (dp < 1) {
            throw new IllegalArgumentException("--dp must be >= 1, got " + dp);
        }
        if (s.batchSize() % dp != 0) {
            throw new IllegalArgumentException("the recipe's batch_size " + s.batchSize() + " is the global batch and must be divisible by "
                    + "--dp " + dp + " (each task computes batch_size/dp rows); change one of them");
        }
        this.pipeline = pipelineOptions(s);
        this.tasks = dp * pipeline.stages();
        checkSlots();
        if (opts.failAt() != null && opts.failAt().exit() && LOCAL.matcher(jsc.master()).matches()) {
            throw new IllegalArgumentException("--fail-at " + opts.failAt().rank() + ":" + opts.failAt().step() + ":exit halts the "
                    + "executor JVM, which in " + jsc.master() + " is the driver; use it on a cluster, or drop :exit");
        }
        org.apache.hadoop.conf.Configuration hconf = jsc.hadoopConfiguration();

        // the data: open the first worker's share and the validation split here, so bad input fails before the stage
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

        TrainingState state;
        CheckpointStore store = new CheckpointStore(hconf);
        List<String> swept = store.sweepLeftovers(opts.out());
        if (!swept.isEmpty()) {
            out.println("removed leftovers of interrupted checkpoint writes under " + opts.out() + ": " + swept);
        }
        if (opts.resume()) {
            try {
                state = store.load(opts.out(), true);
            } catch (RuntimeException e) {
                throw new IllegalArgumentException("--resume: no usable checkpoint under " + opts.out() + " (" + e.getMessage()
                        + "); run without --resume to start fresh");
            }
            out.println("resuming " + opts.out() + " at step " + state.step() + " (chains " + state.config().chains() + ")");
            int dropped = io.catena.model.train.MetricsLog.truncateAfter(metricsPath(), state.step());
            if (dropped > 0) {
                out.println("metrics: dropped " + dropped + " records after step " + state.step() + " from " + metricsPath()
                        + " (steps the interrupted run computed past its last checkpoint; this run computes them again)");
            }
        } else {
            ColmConfig cfg = recipe.modelConfig(dataVocab);
            Params p = new Params(new ParamLayout(cfg), DataType.FLOAT);
            p.initialize(s.seed(), 0);
            state = new TrainingState(cfg, p, null, null, 0, 0, 0, s.frozenChains(), Map.of());
        }
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
        this.until = opts.untilStep() > 0 ? Math.min(opts.untilStep(), s.steps()) : s.steps();
        this.startStep = state.step();
        long baseData = state.dataPosition();
        if (baseData % dp != 0) {
            throw new IllegalArgumentException("the checkpoint's data position " + baseData + " is not divisible by --dp " + dp
                    + "; resume with a dp that divides it");
        }
        List<JobSpec.GrowthPlan> plan = new ArrayList<>();
        int chains = state.config().numChains();
        for (TrainOptions.Growth g : opts.growth()) {
            if (g.step() >= s.steps()) {
                throw new IllegalArgumentException("--grow-at " + g + " is at or after the last step " + s.steps());
            }
            if (g.step() < startStep) {
                continue; // already behind us (resumed run); a checkpoint AT the growth step holds the model before it
            }
            chains += g.heads().size();
            plan.add(new JobSpec.GrowthPlan(g.step(), g.heads(), g.freeze(), chains));
        }
        SyncPolicy sync = opts.sync();
        int evalEvery = opts.evalEvery() >= 0 ? opts.evalEvery() : s.evalEvery();
        int ckptEvery = opts.ckptEvery() >= 0 ? opts.ckptEvery() : s.ckptEvery();

        // the driver's host: executors send telemetry here (and reach the embedded server here)
        String host = jsc.getConf().get("spark.driver.host", "127.0.0.1");
        PsHandle.ExternalSettings ext = opts.externalPs() ? PsHandle.ExternalSettings.resolve(opts) : null;
        String job;
        byte[] secret;
        String psChannel;
        int psStream;
        int term;
        String udp;
        if (ext != null) {
            job = ext.jobName();
            secret = ext.secret();
            psChannel = "aeron:udp?endpoint=" + ext.endpoint();
            psStream = ext.streamId();
            term = ext.termLength();
            udp = ext.udpParams();
        } else {
            job = opts.jobName() != null ? opts.jobName() : "catena-" + Long.toHexString(new SecureRandom().nextLong() & 0xffffffffffL);
            byte[] secretRaw = new byte[32];
            new SecureRandom().nextBytes(secretRaw);
            secret = Base64.getEncoder().encodeToString(secretRaw).getBytes(StandardCharsets.US_ASCII);
            psChannel = "aeron:udp?endpoint=" + host + ":" + (opts.psPort() > 0 ? opts.psPort() : freeUdpPort());
            psStream = Configuration.STREAM_ID_DEFAULT;
            term = opts.termLength() > 0 ? opts.termLength() : termLengthFor(state.params().layout().size());
            udp = Configuration.UDP_CHANNEL_PARAMS_DEFAULT;
        }
        String aeronDir = Configuration.AERON_DIR_DEFAULT + "-" + job.replaceAll("[^A-Za-z0-9_.-]", "_");
        if (opts.kernelThreads() > 0) {
            Parallel.setThreads(opts.kernelThreads());
        }

        Map<String, Object> info = new LinkedHashMap<>();
        info.put("recipe", new TreeMap<>(recipe.values()));
        info.put("data", dataDescription);
        info.put("data_spec", opts.data()); // lets generate find the data's tokenizer
        info.put("seed", s.seed());
        info.put("steps_planned", s.steps());
        info.put("dp", dp);
        info.put("pp", pipeline.stages());
        info.put("sync", sync.toString());
        info.put("trainer", "spark-trainer");
        info.putAll(extraInfo);

        this.metricsFile = metricsPath();
        out.println("catena train: job " + job + ", model " + state.config().chains() + " chains, " + state.params().layout().size()
                + " parameters; dp " + dp + (pipeline.enabled() ? " x " + pipeline.describe() : "") + ", sync " + sync + ", growth " + opts.growth() + ", eval every " + evalEvery
                + ", checkpoint every " + ckptEvery + "; steps " + startStep + " -> " + until + " of " + s.steps() + "; global batch "
                + s.batchSize() + " (" + s.batchSize() / dp + " per task) x " + s.seqLen() + "; data " + dataDescription
                + "; metrics " + metricsFile);

        PsHandle server;
        if (ext != null) {
            ParameterServerClient.Context cctx = new ParameterServerClient.Context()
                    .jobName(job).secret(secret).aeronDirectoryName(aeronDir).embeddedDriver(true).termLength(term)
                    .serverChannel(psChannel).serverStreamId(psStream).udpChannelParams(udp).responseHost(host)
                    .requestTimeoutMs(opts.requestTimeoutMs()).idleStrategy("backoff");
            PsHandle.Remote remote = PsHandle.Remote.connect(cctx, ext.endpoint(), job, opts.psConnectTimeoutMs(), hconf);
            try {
                checkExternalServer(remote, state, sync, ext);
            } catch (RuntimeException e) {
                remote.close();
                throw e;
            }
            server = remote;
        } else {
            ParameterServer.Context pctx = new ParameterServer.Context()
                    .jobName(job).secret(secret).aeronDirectoryName(aeronDir).embeddedDriver(true).termLength(term)
                    .channel(psChannel).streamId(psStream).udpChannelParams(udp)
                    .workers(tasks).pipeline(pipeline.stages(), s.batchSize() / dp / pipeline.microBatches(), s.seqLen(),
                            pipeline.schedule(), pipeline.microBatches()).sync(sync).initialState(state).adamW(s.adamW()).schedule(schedule).seed(s.seed())
                    .snapshotUri(opts.out()).snapshotOnClose(false).hadoopConf(hconf).idleStrategy("backoff")
                    .growTimeoutMs(opts.requestTimeoutMs()).sendTimeoutMs(10_000);
            server = new PsHandle.Embedded(ParameterServer.launch(pctx));
        }
        try (PsHandle ps = server;
             Telemetry.Receiver telemetry = new Telemetry.Receiver(aeronDir, host, 10_000)) {
            JobSpec spec = new JobSpec(job, recipe.values(), opts.data(), dp, sync.toString(), s.steps(), until, startStep, baseData,
                    state.tokensSeen(), plan, evalEvery, ckptEvery, opts.failAt(), 0, secret, psChannel,
                    psStream, term, udp, telemetry.channel(), aeronDir, ProcessHandle.current().pid(), JobSpec.THIS_JVM,
                    opts.kernelThreads(), opts.requestTimeoutMs(), new HashMap<>(info), pipeline, opts.divergenceFactor());
            if (ext != null) {
                out.println("using the " + ps.describe() + " (job '" + job + "', version " + ps.version() + "): it applies its own "
                        + "recipe's optimizer and LR schedule and writes the checkpoints to its catena.ps.snapshot.uri"
                        + (opts.steps() > 0 || !opts.overrides().isEmpty() ? "; --steps/--set do not change the server's schedule" : ""));
            }
            chainsNow = ps.config().chains();
            runStartNanos = System.nanoTime();
            windowStartNanos = runStartNanos;
            Monitor monitor = new Monitor(ps, telemetry, plan);
            Thread mt = new Thread(monitor, "catena-driver-monitor");
            mt.setDaemon(true);
            mt.start();
            int runs = 0;
            try {
                if (startStep < until) {
                    runs = runStage(spec, ps, monitor);
                }
            } finally {
                monitor.stop = true;
                joinQuietly(mt);
            }
            if (monitor.error.get() != null) {
                throw new IllegalStateException("the driver failed to orchestrate the run: " + monitor.error.get().getMessage(),
                        monitor.error.get());
            }
            waitForVersion(ps, sync.mode() == SyncPolicy.Mode.ASP ? Math.min(until, ps.version()) : until);
            drain(telemetry);
            // a rerun's rank may start past a step the previous run's rank pushed but never reported (it died in the pull
            // after the push): that step has only the other ranks' reports
            settleLostReports(ps.version());
            return finish(ps, val, info, spec, runs);
        } finally {
            val.close();
        }
    }

    /** Runs the barrier stage; after a failure, waits for the old tasks to stop and runs it again. Returns the number of runs. */
    private int runStage(JobSpec base, PsHandle ps, Monitor monitor) {
        int max = Math.max(1, opts.maxAttempts());
        for (int attempt = 0; ; attempt++) {
            JobSpec spec = base.withAttempt(attempt);
            synchronized (this) {
                currentAttempt = attempt;
                gates.clear();
                windowStartNanos = System.nanoTime();
                windowSteps = 0;
            }
            long from = ps.version();
            if (attempt > 0) {
                settleLostReports(from);
            }
            jsc.setJobGroup("catena-" + spec.jobName(), "catena train " + spec.jobName() + " (stage run " + (attempt + 1) + ", from step "
                    + from + ")", false);
            try {
                List<String> summaries = stage(spec);
                for (String line : summaries) {
                    LOG.info("worker summary: {}", line);
                }
                if (pipeline.enabled()) {
                    printStageTimes(summaries);
                }
                return attempt + 1;
            } catch (Exception e) { // SparkException is checked in Java's eyes but thrown by Scala code
                if (monitor.error.get() != null) {
                    throw new IllegalStateException("the driver failed to orchestrate the run: " + monitor.error.get().getMessage(),
                            monitor.error.get());
                }
                String why = rootMessage(e);
                if (NotRetryableException.marks(why) || NotRetryableException.marks(String.valueOf(e.getMessage()))) {
                    // a non-finite gradient, a diverged loss, a full disk: a rerun would only repeat it
                    throw new IllegalStateException("the training stage failed and was not rerun: " + why, e);
                }
                if (attempt + 1 >= max) {
                    throw new IllegalStateException("the training stage failed " + max + " times (spark.catena.max-attempts); last error: "
                            + why, e);
                }
                out.println("stage run " + (attempt + 1) + " failed at server version " + ps.version() + ": " + why
                        + "; rerunning it (the workers resume from the parameter server's version)");
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("kind", "restart");
                m.put("step", ps.version());
                m.put("attempt", attempt + 1);
                m.put("reason", why);
                metric(m);
                waitForIdleExecutors();
            } finally {
                jsc.clearJobGroup();
            }
        }
    }

    /**
     * One line per pipeline stage of the last stage run: compute and waiting seconds summed over its replicas, so a
     * user sees the bubble (waiting share) next to the theory (p-1)/(m+p-1) for their --micro-batches.
     */
    @SuppressWarnings("unchecked")
    private void printStageTimes(List<String> summaries) {
        double[] compute = new double[pipeline.stages()];
        double[] waiting = new double[pipeline.stages()];
        com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper();
        for (String line : summaries) {
            try {
                Map<String, Object> m = json.readValue(line, Map.class);
                int st = ((Number) m.get("stage")).intValue();
                compute[st] += ((Number) m.get("stage_compute_s")).doubleValue();
                waiting[st] += ((Number) m.get("stage_wait_s")).doubleValue();
            } catch (IOException | RuntimeException e) {
                LOG.warn("unreadable worker summary {}: {}", line, e.toString());
            }
        }
        double theory = PipelineSchedule.theoreticalBubble(pipeline.stages(), pipeline.microBatches());
        for (int st = 0; st < compute.length; st++) {
            out.println(String.format(Locale.ROOT, "pipeline stage %d: compute %.1f s, waiting for neighbours %.1f s (%.0f%%; "
                    + "(p-1)/(m+p-1) = %.0f%% for p=%d, m=%d)", st, compute[st], waiting[st],
                    100 * waiting[st] / Math.max(1e-9, compute[st] + waiting[st]), 100 * theory, pipeline.stages(),
                    pipeline.microBatches()));
        }
    }

    private List<String> stage(JobSpec spec) {
        JavaRDD<Integer> ranks = jsc.parallelize(range(spec.tasks()), spec.tasks());
        // named accumulators: the Spark UI's stage page shows tokens and steps trained by this stage run
        WorkerTask task = new WorkerTask(spec, jsc.sc().longAccumulator("catena.tokens (run " + (spec.attempt() + 1) + ")"),
                jsc.sc().longAccumulator("catena.steps (run " + (spec.attempt() + 1) + ")"));
        RDD<String> rdd = ranks.rdd().barrier().mapPartitions(new StageBody(task), false, ClassTag$.MODULE$.apply(String.class));
        return JavaRDD.fromRDD(rdd, ClassTag$.MODULE$.apply(String.class)).collect();
    }

    /** The task body as the Scala function RDDBarrier.mapPartitions takes. */
    static final class StageBody extends AbstractFunction1<scala.collection.Iterator<Integer>, scala.collection.Iterator<String>>
            implements Serializable {
        private final WorkerTask task;

        StageBody(WorkerTask task) {
            this.task = task;
        }

        @Override
        public scala.collection.Iterator<String> apply(scala.collection.Iterator<Integer> ignored) {
            try {
                return CollectionConverters.asScala(task.run(BarrierTaskContext.get()).iterator());
            } catch (RuntimeException e) {
                throw e;
            } catch (Exception e) {
                throw new IllegalStateException(e.getMessage(), e);
            }
        }
    }

    private TrainResult finish(PsHandle ps, TokenBatchSource val, Map<String, Object> info, JobSpec spec, int runs) {
        // no task runs now: the state and the snapshot are of the same, final version
        PsHandle.Final fin = ps.snapshotFinal(v -> {
            Map<String, Object> snapInfo = new LinkedHashMap<>(info);
            snapInfo.put("tokens_seen", spec.tokensAt(v));
            snapInfo.put("data_position", spec.dataPositionAt(v));
            return snapInfo;
        }, ADMIN_TIMEOUT_MS);
        TrainingState st = fin.state();
        long step = st.step();
        int bw = settings.batchSize() / dp;
        ColmModel model = new ColmModel(st.config(), st.params(), new Params(st.params().layout(), DataType.FLOAT), bw,
                settings.seqLen());
        double[] ev = Evaluator.evaluate(model, val, settings.evalBatches() * dp);
        synchronized (this) {
            evals.put(step, ev);
        }
        chainsNow = st.config().chains();
        evalLine(step, ev);
        Map<String, Object> snapInfo = new LinkedHashMap<>(info);
        snapInfo.put("tokens_seen", spec.tokensAt(step));
        snapInfo.put("data_position", spec.dataPositionAt(step));
        String dir = fin.dir();
        out.println("checkpoint " + dir);
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("kind", "checkpoint");
        m.put("step", step);
        m.put("dir", dir);
        metric(m);
        TrainingState finalState = new TrainingState(st.config(), st.params(), st.adamM(), st.adamV(), step, spec.tokensAt(step),
                spec.dataPositionAt(step), st.frozenChains(), snapInfo);
        return new TrainResult(step, runs, st.config().chains(), st.frozenChains(), ev, new TreeMap<>(trainLoss), new TreeMap<>(evals), dir,
                finalState, metricsFile == null ? null : metricsFile.toString());
    }

    // ---- the driver's monitor: telemetry, growth ----------------------------------------------------

    private final class Monitor implements Runnable {
        private final PsHandle ps;
        private final Telemetry.Receiver telemetry;
        private final List<JobSpec.GrowthPlan> plan;
        volatile boolean stop;
        final AtomicReference<Throwable> error = new AtomicReference<>();

        Monitor(PsHandle ps, Telemetry.Receiver telemetry, List<JobSpec.GrowthPlan> plan) {
            this.ps = ps;
            this.telemetry = telemetry;
            this.plan = plan;
        }

        @Override
        public void run() {
            try {
                while (!stop) {
                    int work = telemetry.poll(TrainJob.this::onReport);
                    work += growIfDue();
                    if (work == 0) {
                        Thread.sleep(2);
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } catch (Throwable t) {
                error.set(t);
                LOG.error("driver monitor failed", t);
                jsc.cancelAllJobs();
            }
        }

        private int growIfDue() {
            for (JobSpec.GrowthPlan g : plan) {
                int chains = ps.config().numChains();
                if (chains >= g.chainsAfter()) {
                    continue;
                }
                long v = ps.version();
                if (v < g.step()) {
                    return 0;
                }
                boolean asp = opts.sync().mode() == SyncPolicy.Mode.ASP;
                if (v > g.step() && !asp) {
                    throw new IllegalStateException("the server reached version " + v + " past growth step " + g.step()
                            + " without growing; the workers did not wait at the growth step");
                }
                if (!asp && gateCount(g.step()) < tasks) {
                    return 0; // rank 0 may still be evaluating / checkpointing the pre-growth model of this step
                }
                int epoch = ps.grow(g.heads(), g.freeze(), opts.requestTimeoutMs());
                chainsNow = ps.config().chains();
                out.println("grew the model at step " + v + " by chains " + g.heads() + (g.freeze() ? " (old chains frozen)" : "")
                        + ": chains " + chainsNow + ", " + ps.config().numChains() + " scales, epoch " + epoch);
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("kind", "growth");
                m.put("step", v);
                m.put("chains", chainsNow);
                m.put("added", g.heads());
                m.put("freeze", g.freeze());
                m.put("epoch", epoch);
                metric(m);
                return 1;
            }
            return 0;
        }
    }

    private void drain(Telemetry.Receiver telemetry) {
        long quietSince = System.nanoTime();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (System.nanoTime() - quietSince < TimeUnit.MILLISECONDS.toNanos(300) && System.nanoTime() < deadline) {
            if (telemetry.poll(this::onReport) > 0) {
                quietSince = System.nanoTime();
            } else {
                Telemetry.sleep(5);
            }
        }
    }

    /**
     * Steps up to the server's version were applied, so a rerun will not recompute them; a rank that died
     * after pushing one never reported its loss. Record the mean over the ranks that did report.
     */
    private synchronized void settleLostReports(long appliedUpTo) {
        var it = pending.entrySet().iterator();
        while (it.hasNext()) {
            var e = it.next();
            if (e.getKey() > appliedUpTo) {
                continue;
            }
            double[] mean = null;
            int n = 0;
            for (double[] x : e.getValue()) {
                if (x != null && (mean == null || x.length == mean.length)) {
                    if (mean == null) {
                        mean = new double[x.length];
                    }
                    for (int i = 0; i < x.length; i++) {
                        mean[i] += x[i];
                    }
                    n++;
                }
            }
            if (mean != null) {
                for (int i = 0; i < mean.length; i++) {
                    mean[i] /= n;
                }
                trainLoss.putIfAbsent(e.getKey(), mean);
                LOG.info("step {}: loss from {} of {} ranks (the others died after pushing it)", e.getKey(), n, dp);
            }
            pendingSync.remove(e.getKey());
            it.remove();
        }
    }

    @SuppressWarnings("unchecked")
    private synchronized void onReport(Map<String, Object> m) {
        String kind = String.valueOf(m.get("kind"));
        Object attempt = m.get("attempt");
        boolean current = attempt instanceof Number n && n.intValue() == currentAttempt;
        if (!current && (kind.equals("gate") || kind.equals("stage") || kind.equals("engine"))) {
            return; // a task of an earlier stage run that has not stopped yet: it says nothing about the current one
        }
        // train/eval/checkpoint reports of an earlier run are kept: they describe computations the server
        // accepted (a step pushed by a task that died afterwards is not recomputed by its successor)
        switch (kind) {
            case "stage" -> {
                out.println("stage run " + (currentAttempt + 1) + ": " + m.get("endpoints"));
            }
            case "engine" -> { // each rank's native path (NativeSetup), once per stage run
                Map<String, Object> r = new LinkedHashMap<>(m);
                r.remove("job");
                r.put("step", startStep);
                metric(r);
            }
            case "train" -> {
                long step = ((Number) m.get("step")).longValue();
                int rank = ((Number) m.get("rank")).intValue();
                List<Number> l = (List<Number>) m.get("loss");
                double[][] per = pending.computeIfAbsent(step, k -> new double[dp][]);
                double[] loss = new double[l.size()];
                for (int i = 0; i < loss.length; i++) {
                    loss[i] = l.get(i).doubleValue();
                }
                per[rank] = loss;
                double[] sync = pendingSync.computeIfAbsent(step, k -> new double[2]);
                sync[0] += ((Number) m.get("compute_s")).doubleValue();
                sync[1] += ((Number) m.get("sync_s")).doubleValue();
                for (double[] x : per) {
                    if (x == null) {
                        return;
                    }
                }
                pending.remove(step);
                pendingSync.remove(step);
                double[] mean = new double[loss.length];
                for (double[] x : per) {
                    if (x.length != mean.length) {
                        return; // reports from both sides of a growth: drop the step
                    }
                    for (int i = 0; i < mean.length; i++) {
                        mean[i] += x[i] / dp;
                    }
                }
                trainLoss.put(step, mean);
                windowSteps++;
                if (step % settings.logEvery() == 0 || step == until) {
                    double secs = (System.nanoTime() - windowStartNanos) / 1e9;
                    double tps = windowSteps * (double) settings.batchSize() * settings.seqLen() / Math.max(secs, 1e-9);
                    double elapsed = (System.nanoTime() - runStartNanos) / 1e9;
                    double eta = (until - step) * elapsed / Math.max(1, step - startStep);
                    double syncFraction = sync[1] / Math.max(1e-12, sync[0] + sync[1]);
                    out.println(progressLine(step, tps, mean, syncFraction, eta));
                    Map<String, Object> r = new LinkedHashMap<>();
                    r.put("kind", "train");
                    r.put("step", step);
                    r.put("loss", mean);
                    r.put("lr", schedule.at(step));
                    r.put("tok_per_s", tps);
                    r.put("sync_fraction", syncFraction);
                    r.put("elapsed_s", elapsed);
                    r.put("epoch", m.get("epoch"));
                    metric(r);
                    windowSteps = 0;
                    windowStartNanos = System.nanoTime();
                }
            }
            case "eval" -> {
                long step = ((Number) m.get("step")).longValue();
                List<Number> l = (List<Number>) m.get("val_loss");
                double[] ev = new double[l.size()];
                for (int i = 0; i < ev.length; i++) {
                    ev[i] = l.get(i).doubleValue();
                }
                evals.put(step, ev);
                evalLine(step, ev);
            }
            case "gate" -> gates.computeIfAbsent(((Number) m.get("step")).longValue(), k -> new java.util.HashSet<>())
                    .add(((Number) m.get("rank")).intValue());
            case "checkpoint" -> {
                out.println("checkpoint " + m.get("dir") + " (step " + m.get("step") + ")");
                Map<String, Object> r = new LinkedHashMap<>();
                r.put("kind", "checkpoint");
                r.put("step", m.get("step"));
                r.put("dir", m.get("dir"));
                metric(r);
            }
            default -> LOG.warn("unknown telemetry report kind {}", kind);
        }
    }

    private synchronized int gateCount(long step) {
        java.util.Set<Integer> s = gates.get(step);
        return s == null ? 0 : s.size();
    }

    private void evalLine(long step, double[] ev) {
        double[] ppl = new double[ev.length];
        out.println(Progress.evalLine(step, ev, ppl));
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("kind", "eval");
        r.put("step", step);
        r.put("val_loss", ev);
        r.put("val_ppl", ppl);
        metric(r);
    }

    private String progressLine(long step, double tps, double[] losses, double syncFraction, double eta) {
        return Progress.line(step, until, tps, losses, schedule.at(step),
                String.format(Locale.ROOT, "sync %.0f%% | dp %d%s", 100 * syncFraction, dp,
                        pipeline.enabled() ? " x pp " + pipeline.stages() : ""), eta);
    }

    private synchronized void metric(Map<String, Object> fields) {
        if (metricsFile == null) {
            return;
        }
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("kind", fields.get("kind"));
        m.put("step", fields.get("step"));
        Object step = fields.get("step");
        if (step instanceof Number n) {
            m.put("tokens", n.longValue() * settings.batchSize() * (long) settings.seqLen());
        }
        m.put("chains", chainsNow);
        m.putAll(fields);
        MetricsLog.append(metricsFile, m);
    }

    // ---- helpers ----------------------------------------------------------------------------------

    private Path metricsPath() {
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

    private static final Pattern LOCAL = Pattern.compile("local(?:\\[(\\*|\\d+)(?:,\\s*\\d+)?])?");

    /**
     * An external server must serve exactly this job: the recipe's model (or the resumed checkpoint's), dp workers,
     * the same sync mode and frozen chains, at the step the job starts from. Names both sides of every mismatch.
     */
    private void checkExternalServer(PsHandle.Remote remote, TrainingState state, SyncPolicy sync, PsHandle.ExternalSettings ext) {
        ServerLayout l = remote.layout();
        long version = remote.version();
        String jobSide = opts.resume() ? "the checkpoint under --out " + opts.out() : "the recipe " + opts.recipe() + " on this data";
        List<String> bad = new ArrayList<>();
        if (!l.config().equals(state.config())) {
            bad.add("model: the server serves " + l.config().toMap() + ", " + jobSide + " describes " + state.config().toMap());
        }
        if (l.workers() != dp) {
            bad.add("workers: the server expects catena.ps.workers=" + l.workers() + ", the job runs --dp " + dp);
        }
        if (l.pipelineStages() != 1) {
            bad.add("pipeline: the server plans catena.ps.pipeline.stages=" + l.pipelineStages() + " (staged pushes), this job "
                    + "runs without --pp (pipeline jobs use the embedded server); set catena.ps.pipeline.stages=1");
        }
        if (!l.sync().toString().equals(sync.toString())) {
            bad.add("sync: the server runs catena.ps.sync=" + l.sync() + ", the job --sync " + sync);
        }
        if (l.frozenChains() != state.frozenChains()) {
            bad.add("frozen chains: the server has " + l.frozenChains() + ", " + jobSide + " has " + state.frozenChains());
        }
        if (version != state.step()) {
            bad.add("step: the server is at version " + version + ", the job starts at step " + state.step() + (opts.resume() ? ""
                    : " (a fresh job needs a fresh server; to continue its run, pass --resume with --out naming the checkpoint root "
                    + "the server was --restore'd from)"));
        }
        if (!bad.isEmpty()) {
            throw new IllegalArgumentException("the " + remote.describe() + " (job '" + ext.jobName() + "', epoch " + l.epoch()
                    + ") does not serve this job: " + String.join("; ", bad) + ". Start the server with the job's recipe "
                    + "(catena.ps.recipe, catena.ps.seed = the recipe's seed), catena.ps.workers = --dp and catena.ps.sync = --sync"
                    + (opts.resume() ? ", restored from the checkpoint (catena ps --conf F --restore " + opts.out() + ")" : "")
                    + ", or drop --ps-host/--ps-conf to embed one");
        }
    }

    /**
     * Pipeline settings checked against the recipe: the replica batch splits into micro-batches, stages <= blocks,
     * BSP or SSP (stages of a replica step together), an embedded server (it plans the stages itself).
     */
    private PipelineOptions pipelineOptions(TrainSettings s) {
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

    /** Fails fast when the barrier stage cannot get dp slots at once (Spark would otherwise retry for minutes). */
    private void checkSlots() {
        String master = jsc.master();
        Matcher m = LOCAL.matcher(master);
        int slots;
        if (m.matches()) {
            String n = m.group(1);
            slots = n == null ? 1 : n.equals("*") ? Runtime.getRuntime().availableProcessors() : Integer.parseInt(n);
            slots /= Math.max(1, jsc.getConf().getInt("spark.task.cpus", 1));
        } else {
            int coresPerExecutor = jsc.getConf().getInt("spark.executor.cores", 0);
            if (coresPerExecutor <= 0) {
                return; // unknown: Spark's own barrier check (spark.scheduler.barrier.maxConcurrentTasksCheck.*) decides
            }
            int perExecutor = coresPerExecutor / Math.max(1, jsc.getConf().getInt("spark.task.cpus", 1));
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(opts.slotWaitMs());
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
                    + " offers " + slots + "; lower --dp/--pp or add executors/cores (spark.executor.instances, spark.executor.cores, "
                    + "spark.task.cpus)");
        }
    }

    private void waitForIdleExecutors() {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (System.nanoTime() < deadline) {
            int running = 0;
            for (SparkExecutorInfo e : jsc.sc().statusTracker().getExecutorInfos()) {
                running += e.numRunningTasks();
            }
            if (running == 0 && jsc.statusTracker().getActiveStageIds().length == 0) {
                return;
            }
            Telemetry.sleep(100);
        }
        LOG.warn("tasks of the failed stage run are still running after 120 s; starting the next run anyway");
    }

    private void waitForVersion(PsHandle ps, long version) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (ps.version() < version) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("the stage finished but the parameter server is at version " + ps.version()
                        + ", expected " + version);
            }
            Telemetry.sleep(5);
        }
    }

    private static List<Integer> range(int n) {
        List<Integer> l = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            l.add(i);
        }
        return l;
    }

    static int freeUdpPort() {
        try (DatagramSocket s = new DatagramSocket(0, InetAddress.getByName("0.0.0.0"))) {
            return s.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot find a free UDP port for the parameter server; set --ps-port", e);
        }
    }

    /** A term length whose max message (term/8) holds 1 MiB chunks for real models and stays small for tiny ones. */
    static int termLengthFor(long parameters) {
        long bytes = parameters * 4;
        int term = 64 * 1024;
        while (term < 16 * 1024 * 1024 && term / 8 < Math.min(bytes, 1024 * 1024) + 4096) {
            term *= 2;
        }
        return term;
    }

    private static void joinQuietly(Thread t) {
        try {
            t.join(10_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    static String rootMessage(Throwable e) {
        Throwable t = e;
        String msg = e.getMessage();
        while (t.getCause() != null && t.getCause() != t) {
            t = t.getCause();
            if (t.getMessage() != null) {
                msg = t.getMessage();
            }
        }
        if (msg == null) {
            return e.toString();
        }
        // Spark's "Job aborted due to stage failure: ..." names the task's exception on the next line
        return String.join(" ", msg.lines().map(String::strip).filter(l -> !l.isEmpty()).limit(2).toList());
    }
}
