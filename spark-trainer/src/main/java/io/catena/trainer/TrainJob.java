package io.catena.trainer;

import io.catena.model.ColmModel;
import io.catena.model.NotRetryableException;
import io.catena.model.Params;
import io.catena.model.data.TokenBatchSource;
import io.catena.model.io.TrainingState;
import io.catena.model.kernel.Parallel;
import io.catena.model.pipeline.PipelineSchedule;
import io.catena.model.train.Evaluator;
import io.catena.model.train.TrainSettings;
import io.catena.ps.SyncPolicy;
import io.catena.trainer.pipeline.PipelineOptions;
import java.io.IOException;
import java.io.PrintStream;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
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
    /** Looked up when first used, not at class load: `--help` then prints without initialising logging (~1 s). */
    private static Logger log() {
        return LoggerFactory.getLogger(TrainJob.class);
    }
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
        if (java.util.Arrays.asList(argv).contains("--help")) { // before any Spark class loads: help prints at once
            System.out.print(TrainOptions.USAGE);
            return;
        }
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
        DriverConf.apply(conf, "catena train", opts.master(), Math.max(1, opts.dp()) * Math.max(1, opts.pp())); // dp x pp tasks
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
            log().error("training failed", e);
            code = String.valueOf(e.getMessage()).contains(CHECKPOINT_WRITE_FAILED) ? 3 : 1;
        }
        System.out.flush();
        System.exit(code);
    }

    // ---- the driver -------------------------------------------------------------------------------

    private RunSetup.Plan plan;
    private DriverProgress progress;
    private volatile int currentAttempt;

    /** Runs the whole job on {@code jsc}: set up and check, start the server, run the stage (again after failures), finish. */
    public TrainResult run() {
        this.plan = RunSetup.prepare(jsc, opts, out, extraInfo);
        TrainSettings s = plan.settings();
        RunSetup.Connection c = plan.connection();
        try (TokenBatchSource val = plan.val()) {
            if (opts.kernelThreads() > 0) {
                Parallel.setThreads(opts.kernelThreads());
            }
            TrainingState state = plan.state();
            out.println("catena train: job " + c.job() + ", model " + state.config().chains() + " chains, "
                    + state.params().layout().size() + " parameters; dp " + plan.dp()
                    + (plan.pipeline().enabled() ? " x " + plan.pipeline().describe() : "") + ", sync " + opts.sync() + ", growth "
                    + opts.growth() + ", eval every " + plan.evalEvery() + ", checkpoint every " + plan.ckptEvery() + "; steps "
                    + plan.startStep() + " -> " + plan.until() + " of " + s.steps() + "; global batch " + s.batchSize() + " ("
                    + s.batchSize() / plan.dp() + " per task) x " + s.seqLen() + "; data " + plan.dataDescription() + "; metrics "
                    + plan.metricsFile());
            try (PsHandle ps = PsWiring.open(plan, opts, jsc.hadoopConfiguration());
                 Telemetry.Receiver telemetry = new Telemetry.Receiver(c.aeronDir(), c.host(), 10_000)) {
                JobSpec spec = jobSpec(telemetry.channel());
                registerTrainerInfo(ps, spec);
                if (c.external() != null) {
                    out.println("using the " + ps.describe() + " (job '" + c.job() + "', version " + ps.version() + "): it applies its own "
                            + "recipe's optimizer and LR schedule and writes the checkpoints to its catena.ps.snapshot.uri"
                            + (opts.steps() > 0 || !opts.overrides().isEmpty() ? "; --steps/--set do not change the server's schedule" : ""));
                }
                progress = new DriverProgress(out, plan.metricsFile(), s, plan.schedule(), plan.dp(), plan.pipeline(), plan.startStep(),
                        plan.until(), ps::metrics);
                progress.chains(ps.config().chains());
                try (AutoCloseable source = CatenaMetricsSource.register(progress)) {
                    int runs = runMonitored(spec, ps, telemetry);
                    waitForVersion(ps, opts.sync().mode() == SyncPolicy.Mode.ASP ? Math.min(plan.until(), ps.version()) : plan.until());
                    progress.drain(telemetry);
                    // a rerun's rank may start past a step the previous run's rank pushed but never reported (it died in the
                    // pull after the push): that step has only the other ranks' reports
                    progress.settleLostReports(ps.version());
                    return finish(ps, val, spec, runs);
                }
            } catch (RuntimeException e) {
                throw e;
            } catch (Exception e) { // the metrics source's close
                throw new IllegalStateException(e.getMessage(), e);
            }
        }
    }

    /**
     * Every snapshot the server writes (at an interval of its own, on request, at close) carries the run's info and its
     * data cursor, so a resume from any of them continues the data where that version left it. Under ASP a version is
     * not a step of the whole batch, so only the info is registered there.
     */
    private void registerTrainerInfo(PsHandle ps, JobSpec spec) {
        TrainSettings s = plan.settings();
        long[] cursor = opts.sync().mode() == SyncPolicy.Mode.ASP ? null : new long[] {spec.baseStep(), spec.baseDataPosition(),
                spec.baseTokens(), s.batchSize(), (long) s.batchSize() * s.seqLen()};
        ps.trainerInfo(plan.info(), cursor);
    }

    private JobSpec jobSpec(String telemetryChannel) {
        RunSetup.Connection c = plan.connection();
        TrainSettings s = plan.settings();
        return new JobSpec(c.job(), plan.recipe().values(), opts.data(), plan.dp(), opts.sync().toString(), s.steps(), plan.until(),
                plan.startStep(), plan.baseData(), plan.state().tokensSeen(), plan.growth(), plan.evalEvery(), plan.ckptEvery(),
                opts.failAt(), 0, c.secret(), c.channel(), c.streamId(), c.termLength(), c.udpParams(), telemetryChannel, c.aeronDir(),
                ProcessHandle.current().pid(), JobSpec.THIS_JVM, opts.kernelThreads(), opts.requestTimeoutMs(),
                new HashMap<>(plan.info()), plan.pipeline(), opts.divergenceFactor(), c.external() == null && PsWiring.embeddedAlsoIpc());
    }

    /** The stage runs with the monitor thread (telemetry, growth) beside them. Returns the number of stage runs. */
    private int runMonitored(JobSpec spec, PsHandle ps, Telemetry.Receiver telemetry) {
        Monitor monitor = new Monitor(ps, telemetry, plan.growth());
        Thread mt = new Thread(monitor, "catena-driver-monitor");
        mt.setDaemon(true);
        mt.start();
        int runs = 0;
        try {
            if (plan.startStep() < plan.until()) {
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
        return runs;
    }

    /** Runs the barrier stage; after a failure, waits for the old tasks to stop and runs it again. Returns the number of runs. */
    private int runStage(JobSpec base, PsHandle ps, Monitor monitor) {
        int max = Math.max(1, opts.maxAttempts());
        int failures = 0; // failed stage runs that count against --max-attempts (a lost server's do not)
        for (int attempt = 0; ; attempt++) {
            JobSpec spec = base.withAttempt(attempt);
            currentAttempt = attempt;
            progress.startAttempt(attempt);
            long from = ps.version();
            if (attempt > 0) {
                progress.settleLostReports(from);
            }
            jsc.setJobGroup("catena-" + spec.jobName(), "catena train " + spec.jobName() + " (stage run " + (attempt + 1) + ", from step "
                    + from + ")", false);
            try {
                List<String> summaries = stage(spec);
                for (String line : summaries) {
                    log().info("worker summary: {}", line);
                }
                if (plan.pipeline().enabled()) {
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
                // a lost server that came back is not the stage's failure: it does not use up --max-attempts
                if (!recoverLostServer(ps, base, why)) {
                    if (++failures >= max) {
                        throw new IllegalStateException("the training stage failed " + max + " times (spark.catena.max-attempts); "
                                + "last error: " + why, e);
                    }
                    out.println("stage run " + (attempt + 1) + " failed at server version " + ps.version() + ": " + why
                            + "; rerunning it (the workers resume from the parameter server's version)");
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("kind", "restart");
                    m.put("step", ps.version());
                    m.put("attempt", attempt + 1);
                    m.put("reason", why);
                    progress.metric(m);
                }
                waitForIdleExecutors();
            } finally {
                jsc.clearJobGroup();
            }
        }
    }

    /**
     * After a failed stage run: when the (external) server stopped answering, waits up to --ps-wait-ms for it to come
     * back, typically restored from its last snapshot, re-registers the run's info and data cursor, and returns true
     * (the stage reruns from the server's version, so the job rewinds to the snapshot and goes on, its data cursor
     * included). A server that does not come back fails the job with one line that says how to resume. False when the
     * server answers (an ordinary failed stage run).
     */
    private boolean recoverLostServer(PsHandle ps, JobSpec spec, String why) {
        long reached = progress.lastReportedStep();
        long back;
        if (ps.answers(Math.min(5_000, Math.max(1_000, opts.psConnectTimeoutMs())))) {
            back = ps.versionIfRestarted();
            if (back < 0) {
                return false;
            }
            out.println("the " + ps.describe() + " was restarted while the stage ran (" + why + ")");
        } else {
            back = awaitLostServer(ps, reached, why);
        }
        registerTrainerInfo(ps, spec);
        progress.rewind(back);
        out.println("the " + ps.describe() + " is back at version " + back + (back < reached ? ": the job rewinds to step " + back
                + " and trains steps " + (back + 1) + ".." + reached + " again on the same data" : "") + "; rerunning the stage from there");
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("kind", "server_restored");
        m.put("step", back);
        m.put("lost_after_step", reached);
        m.put("reason", why);
        progress.metric(m);
        return true;
    }

    /** Waits up to --ps-wait-ms for a server that stopped answering; its version, or the one-line failure that says how to resume. */
    private long awaitLostServer(PsHandle ps, long reached, String why) {
        String snapshot = ps.lastSnapshot();
        String resume = "restart it from its last snapshot (catena ps --conf <its conf> --restore "
                + (snapshot != null ? snapshot : "<its catena.ps.snapshot.uri>") + ") and run this command again with --resume --out "
                + (snapshot != null ? snapshot.replaceFirst("/step-\\d+/?$", "") : "<that snapshot root>");
        if (opts.psWaitMs() <= 0) {
            throw new IllegalStateException("the " + ps.describe() + " stopped answering after step " + reached + " (" + why + "); "
                    + "--ps-wait-ms is 0, so the job does not wait for it: " + resume, null);
        }
        out.println("the " + ps.describe() + " stopped answering after step " + reached + " (" + why + "); waiting up to "
                + opts.psWaitMs() / 1000 + " s (--ps-wait-ms) for it to come back: " + resume.replace("and run this command again with",
                "and this job goes on by itself (or later: run it again with") + ")");
        long back = ps.awaitBack(opts.psWaitMs());
        if (back < 0) {
            throw new IllegalStateException("the " + ps.describe() + " stopped answering after step " + reached + " and did not come "
                    + "back within " + opts.psWaitMs() / 1000 + " s (--ps-wait-ms): " + resume, null);
        }
        return back;
    }

    /**
     * One line per pipeline stage of the last stage run: compute and waiting seconds summed over its replicas, so a
     * user sees the bubble (waiting share) next to the theory (p-1)/(m+p-1) for their --micro-batches.
     */
    @SuppressWarnings("unchecked")
    private void printStageTimes(List<String> summaries) {
        PipelineOptions pipeline = plan.pipeline();
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
                log().warn("unreadable worker summary {}: {}", line, e.toString());
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

    private TrainResult finish(PsHandle ps, TokenBatchSource val, JobSpec spec, int runs) {
        // no task runs now: the state and the snapshot are of the same, final version
        PsHandle.Final fin = ps.snapshotFinal(v -> {
            Map<String, Object> snapInfo = new LinkedHashMap<>(plan.info());
            snapInfo.put("tokens_seen", spec.tokensAt(v));
            snapInfo.put("data_position", spec.dataPositionAt(v));
            return snapInfo;
        }, ADMIN_TIMEOUT_MS);
        TrainingState st = fin.state();
        long step = st.step();
        TrainSettings settings = plan.settings();
        ColmModel model = new ColmModel(st.config(), st.params(), new Params(st.params().layout(), DataType.FLOAT),
                settings.batchSize() / plan.dp(), settings.seqLen());
        double[] ev = Evaluator.evaluate(model, val, settings.evalBatches() * plan.dp());
        progress.chains(st.config().chains());
        progress.eval(step, ev);
        Map<String, Object> snapInfo = new LinkedHashMap<>(plan.info());
        snapInfo.put("tokens_seen", spec.tokensAt(step));
        snapInfo.put("data_position", spec.dataPositionAt(step));
        String dir = fin.dir();
        out.println("checkpoint " + dir);
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("kind", "checkpoint");
        m.put("step", step);
        m.put("dir", dir);
        progress.metric(m);
        TrainingState finalState = new TrainingState(st.config(), st.params(), st.adamM(), st.adamV(), step, spec.tokensAt(step),
                spec.dataPositionAt(step), st.frozenChains(), snapInfo);
        return new TrainResult(step, runs, st.config().chains(), st.frozenChains(), ev, progress.trainLoss(), progress.evals(), dir,
                finalState, plan.metricsFile() == null ? null : plan.metricsFile().toString());
    }

    // ---- the driver's monitor: telemetry, growth ----------------------------------------------------

    private final class Monitor implements Runnable {
        private final PsHandle ps;
        private final Telemetry.Receiver telemetry;
        private final List<JobSpec.GrowthPlan> growth;
        volatile boolean stop;
        final AtomicReference<Throwable> error = new AtomicReference<>();

        Monitor(PsHandle ps, Telemetry.Receiver telemetry, List<JobSpec.GrowthPlan> growth) {
            this.ps = ps;
            this.telemetry = telemetry;
            this.growth = growth;
        }

        @Override
        public void run() {
            try {
                while (!stop) {
                    int work = telemetry.poll(progress::onReport);
                    work += growIfDue();
                    if (work == 0) {
                        Thread.sleep(2);
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } catch (Throwable t) {
                error.set(t);
                log().error("driver monitor failed", t);
                jsc.cancelAllJobs();
            }
        }

        private int growIfDue() {
            try {
                return growIfDueOrFail();
            } catch (io.catena.ps.ParameterServerException e) {
                // the server went away: the stage fails and runStage waits for it (recoverLostServer); growth waits too
                log().warn("growth check: {}", e.getMessage());
                Telemetry.sleep(200);
                return 0;
            }
        }

        private int growIfDueOrFail() {
            for (JobSpec.GrowthPlan g : growth) {
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
                if (!asp && progress.gateCount(g.step()) < plan.tasks()) {
                    return 0; // rank 0 may still be evaluating / checkpointing the pre-growth model of this step
                }
                int epoch = ps.grow(g.heads(), g.freeze(), opts.requestTimeoutMs());
                List<Integer> chainsNow = ps.config().chains();
                progress.chains(chainsNow);
                out.println("grew the model at step " + v + " by chains " + g.heads() + (g.freeze() ? " (old chains frozen)" : "")
                        + ": chains " + chainsNow + ", " + ps.config().numChains() + " scales, epoch " + epoch);
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("kind", "growth");
                m.put("step", v);
                m.put("chains", chainsNow);
                m.put("added", g.heads());
                m.put("freeze", g.freeze());
                m.put("epoch", epoch);
                progress.metric(m);
                return 1;
            }
            return 0;
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
        log().warn("tasks of the failed stage run are still running after 120 s; starting the next run anyway");
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
