package io.catena.trainer;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.catena.model.ColmModel;
import io.catena.model.NotRetryableException;
import io.catena.model.Params;
import io.catena.model.data.DataSources;
import io.catena.model.data.TokenBatchSource;
import io.catena.model.kernel.Parallel;
import io.catena.model.optim.AdamW;
import io.catena.model.pipeline.PipelineRunner;
import io.catena.model.train.Evaluator;
import io.catena.model.train.LocalTrainer;
import io.catena.model.train.MetricsLog;
import io.catena.model.train.NumericalGuard;
import io.catena.model.train.TrainSettings;
import io.catena.ps.Configuration;
import io.catena.ps.ParameterServerClient;
import io.catena.ps.ParameterServerTimeoutException;
import io.catena.ps.RequestRejectedException;
import io.catena.ps.SyncPolicy;
import io.catena.ps.protocol.RejectReason;
import io.catena.trainer.pipeline.PipelineWorker;
import java.io.Serializable;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.agrona.CloseHelper;
import org.apache.spark.BarrierTaskContext;
import org.apache.spark.SparkEnv;
import org.apache.spark.TaskKilledException;
import org.apache.spark.util.LongAccumulator;
import org.nd4j.linalg.api.buffer.DataType;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One data-parallel worker: the body of one task of the barrier stage. It connects to the parameter
 * server, exchanges its endpoint with the other tasks once ({@code allGather}), then loops over steps:
 * its share of the global batch -> chain-model forward/backward -> push the gradient -> pull the next
 * version. Per-step traffic is Aeron only (parameter server + telemetry to the driver).
 *
 * <p>Events at exact steps (BSP): rank 0 evaluates every scale and asks the server for a snapshot on
 * the parameters of version s before anyone can compute step s+1 (it has not pushed s+1 yet); at a
 * growth step every worker waits in a pull that the server answers when the driver has grown the model.
 */
final class WorkerTask implements Serializable {
    private static final Logger LOG = LoggerFactory.getLogger(WorkerTask.class);
    private static final ObjectMapper JSON = new ObjectMapper();

    /**
     * Pulls wait at most this long per call, then check whether Spark cancelled the task (a failed peer);
     * a slice that times out makes the client say HELLO again, which the server tolerates.
     */
    static final long PULL_SLICE_MS = 5_000;

    private final JobSpec spec;
    private final LongAccumulator tokensAcc;
    private final LongAccumulator stepsAcc;

    WorkerTask(JobSpec spec, LongAccumulator tokensAcc, LongAccumulator stepsAcc) {
        this.spec = spec;
        this.tokensAcc = tokensAcc;
        this.stepsAcc = stepsAcc;
    }

    /** Thrown by --fail-at: the injected fault. */
    static final class InjectedFault extends RuntimeException {
        InjectedFault(String m) {
            super(m);
        }
    }

    // ---- per-task state -------------------------------------------------------------------------
    private transient BarrierTaskContext tc;
    private transient ParameterServerClient client;
    private transient ColmModel model;
    private transient Params params;
    private transient Params grads;
    private transient int frozen;
    private transient TrainSettings settings;
    private transient int rank;
    private transient int bw;
    private transient boolean sameJvm;
    /** Pipeline stage and links (null without --pp); this task runs stage rank % pp of replica rank / pp. */
    private transient PipelineWorker pipe;
    private transient int replica;
    private transient Params evalParams;
    private transient ColmModel evalModel;
    private transient long pipeComputeNanos;
    private transient long pipeWaitNanos;

    /** Runs the worker; returns one JSON summary line. */
    List<String> run(BarrierTaskContext context) throws Exception {
        this.tc = context;
        this.rank = tc.partitionId();
        this.replica = spec.pipeline().replicaOf(rank);
        this.settings = spec.settings();
        this.bw = settings.batchSize() / spec.dp();
        int threads = spec.kernelThreads() > 0 ? spec.kernelThreads()
                : Math.max(1, Integer.parseInt(SparkEnv.get().conf().get("spark.task.cpus", "1")));
        Parallel.setThreads(threads);
        try {
            io.catena.model.kernel.Gemm.checkSupported(settings.precision()); // every executor, before it connects
        } catch (UnsupportedOperationException e) {
            throw new io.catena.model.NotRetryableException(e.getMessage(), e); // the same host refuses again
        }
        int gpu = GpuBinding.bind(tc);
        String host = SparkEnv.get().blockManager().blockManagerId().host();
        this.sameJvm = ProcessHandle.current().pid() == spec.driverPid() && JobSpec.THIS_JVM.equals(spec.driverHostId());
        String aeronDir = sameJvm ? spec.driverAeronDir() : Configuration.AERON_DIR_DEFAULT + "-" + spec.jobName().replaceAll("[^A-Za-z0-9_.-]", "_");
        ParameterServerClient.Context cctx = new ParameterServerClient.Context()
                .jobName(spec.jobName()).secret(spec.secret()).aeronDirectoryName(aeronDir).embeddedDriver(true)
                .termLength(spec.termLength()).channel(psChannel()).streamId(spec.psStreamId())
                .udpChannelParams(spec.udpParams()).responseHost(host).workerId(rank)
                .connectTimeoutMs(30_000).requestTimeoutMs(Math.min(spec.requestTimeoutMs(), 5_000)).idleStrategy("backoff")
                .cancelledWhen(tc::isInterrupted); // a killed task (another failed, the server restarted) stops waiting at once
        long t0 = System.nanoTime();
        try (ParameterServerClient c = ParameterServerClient.connect(cctx);
             Telemetry.Sender tel = new Telemetry.Sender(aeronDir, spec.telemetryChannel(), 30_000, 10_000)) {
            this.client = c;
            if (spec.pipeline().enabled()) {
                long token = (spec.jobName().hashCode() * 31L + spec.attempt()) * 0x9E3779B97F4A7C15L;
                pipe = new PipelineWorker(spec.pipeline(), spec.pipeline().stageOf(rank), aeronDir, host, spec.udpParams(), token,
                        spec.requestTimeoutMs(), this::checkKilled);
            }
            announce(c, tel, host, aeronDir, gpu);
            long steps = train(tel);
            return List.of(JSON.writeValueAsString(summary(steps, t0)));
        } finally {
            CloseHelper.quietClose(pipe);
            pipe = null;
            client = null;
            model = null;
            evalModel = null;
        }
    }

    /**
     * The stage's one Spark barrier call: every task's endpoints (Aeron, pipeline links) once; every later message goes over
     * Aeron. Connects the pipeline neighbours and reports this executor's native path (and, rank 0, the endpoints).
     */
    private void announce(ParameterServerClient c, Telemetry.Sender tel, String host, String aeronDir, int gpu) throws Exception {
        Map<String, Object> me = new LinkedHashMap<>();
        me.put("rank", rank);
        me.put("host", host);
        me.put("pid", ProcessHandle.current().pid());
        me.put("aeron_dir", aeronDir);
        me.put("ps_version", c.serverLayout().version());
        me.put("ps_epoch", c.epoch());
        me.put("gpu", gpu);
        if (pipe != null) {
            me.put("stage", pipe.stageIndex());
            me.put("replica", replica);
            pipe.describeEndpoints(me);
        }
        // the only Spark barrier call: endpoints once; every later message goes over Aeron
        String[] all = tc.allGather(JSON.writeValueAsString(me));
        if (all.length != spec.tasks()) {
            throw new IllegalStateException("allGather returned " + all.length + " endpoints, expected dp x pp = " + spec.tasks());
        }
        if (pipe != null) {
            int s = pipe.stageIndex();
            pipe.connect(s > 0 ? parse(all[rank - 1]) : null, s < spec.pipeline().stages() - 1 ? parse(all[rank + 1]) : null);
        }
        Map<String, Object> engine = report("engine"); // this executor's native path and measured GEMM speed
        engine.put("host", host);
        engine.putAll(io.catena.model.kernel.NativeSetup.report().toMap());
        engine.put("precision", settings.precision().key());
        engine.put("ps_channel", psChannel()); // aeron:ipc in the driver's JVM, else the server's UDP endpoint
        if (settings.precision() == io.catena.model.kernel.Gemm.Precision.BF16) {
            engine.put("bf16_gemm", io.catena.model.kernel.Bf16Policy.describe());
        }
        tel.send(engine);
        if (rank == 0) {
            Map<String, Object> m = report("stage");
            m.put("endpoints", List.of(all));
            tel.send(m);
        }
    }

    /** The task's summary line (the driver logs it and, with --pp, sums the stages' compute and waiting times). */
    private Map<String, Object> summary(long steps, long startNanos) {
        Map<String, Object> summary = new LinkedHashMap<>();
        summary.put("rank", rank);
        summary.put("steps", steps);
        summary.put("attempt", spec.attempt());
        summary.put("seconds", (System.nanoTime() - startNanos) / 1e9);
        double peakRss = MetricsLog.peakRssMb();
        if (peakRss > 0) {
            summary.put("peak_rss_mb", peakRss); // this executor JVM's; on a cluster, one stage's
        }
        if (pipe != null) {
            summary.put("stage", pipe.stageIndex());
            summary.put("stage_compute_s", pipeComputeNanos / 1e9);
            summary.put("stage_wait_s", pipeWaitNanos / 1e9);
        }
        return summary;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> parse(String json) throws java.io.IOException {
        return JSON.readValue(json, Map.class);
    }

    private Map<String, Object> report(String kind) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("kind", kind);
        m.put("job", spec.jobName());
        m.put("attempt", spec.attempt());
        m.put("rank", rank);
        return m;
    }

    /** Stops the run before a checkpoint of diverged parameters (--divergence-factor); a stage without a loss (NaN) checks the norm alone. */
    private transient NumericalGuard guard;
    private transient double lastLoss = Double.NaN;

    private void rebuild() {
        params = new Params(client.layout(), DataType.FLOAT);
        grads = new Params(client.layout(), DataType.FLOAT);
        if (pipe != null) {
            pipe.rebuild(client.serverLayout().stagePlan(), params, grads, bw / spec.pipeline().microBatches(), settings.seqLen());
            evalModel = null;
        } else {
            model = new ColmModel(client.config(), params, grads, bw, settings.seqLen());
        }
        frozen = client.serverLayout().frozenChains();
    }

    /**
     * The whole model at the current version, for evaluation. Without --pp it is the training model; a pipeline
     * stage holds only its own parameters, so rank 0 pulls all of them into a separate full model.
     */
    private ColmModel evalModel(long version) {
        if (pipe == null) {
            return model;
        }
        if (evalModel == null || evalParams.layout() != client.layout()) {
            evalParams = new Params(client.layout(), DataType.FLOAT);
            evalModel = new ColmModel(client.config(), evalParams, new Params(client.layout(), DataType.FLOAT), bw, settings.seqLen());
        }
        client.pullAll(version, evalParams, spec.requestTimeoutMs());
        return evalModel;
    }

    private void checkKilled() {
        if (tc.isInterrupted() || Thread.currentThread().isInterrupted()) {
            throw new TaskKilledException("the barrier stage was cancelled (another task failed)");
        }
    }

    /**
     * A worker in the driver's JVM (Spark local mode) shares the embedded server's media driver and reaches it over
     * IPC: no UDP socket copies on either side, which on a small host is CPU the worker's own step needs.
     */
    private String psChannel() {
        return sameJvm && spec.psAlsoIpc() ? "aeron:ipc" : spec.psChannel();
    }

    /** The version of the parameters this worker last pulled (-1 before the first pull). */
    private long pulledVersion = -1;
    /** The server instance that served that pull. */
    private long pulledFrom;

    /** A pull that waits for minVersion in slices, so a cancelled task notices within seconds. */
    private ParameterServerClient.PullResult pull(long minVersion) {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(spec.requestTimeoutMs());
        while (true) {
            checkKilled();
            try {
                ParameterServerClient.PullResult r = client.pull(minVersion, params, PULL_SLICE_MS);
                if (r.layoutChanged()) {
                    rebuild();
                    continue; // pull the grown model into the new buffers
                }
                pulledVersion = r.version();
                pulledFrom = client.serverLayout().serverInstance();
                return r;
            } catch (ParameterServerTimeoutException e) {
                // the layout's version is the one its last WELCOME gave: a new server instance says where it restarted
                long serving = client.serverLayout().version();
                if (client.serverLayout().serverInstance() != pulledFrom && serving < pulledVersion) {
                    // restored from an older snapshot while this worker waited: the versions in between are gone here
                    throw new IllegalStateException("worker " + rank + ": the parameter server restarted at version " + serving
                            + ", behind version " + pulledVersion + " this worker already trained from (restored from a snapshot); the "
                            + "driver reruns the stage from the server's version", e);
                }
                if (System.nanoTime() - deadline > 0) {
                    throw new ParameterServerTimeoutException("worker " + rank + ": no parameters of version >= " + minVersion + " within "
                            + spec.requestTimeoutMs() + " ms (" + e.getMessage() + ")");
                }
            }
        }
    }

    private long train(Telemetry.Sender tel) {
        SyncPolicy sync = SyncPolicy.parse(spec.sync());
        boolean asp = sync.mode() == SyncPolicy.Mode.ASP;
        rebuild();
        ParameterServerClient.PullResult r = pull(0);
        long start = r.version();
        long step = asp ? start / spec.dp() : start;
        guard = new NumericalGuard(spec.divergenceFactor(), 0);
        guard.baseline(AdamW.norm(params)); // the parameters this run starts from
        lastLoss = Double.NaN;
        long until = spec.untilStep();
        TokenBatchSource train = DataSources.open(spec.data(), "train", settings.seqLen(), settings.valFraction(), settings.seed(),
                replica, spec.dp()); // every stage of a replica reads the replica's windows: stage 0 the inputs, the last the targets
        TokenBatchSource val = rank == 0 && (spec.evalEvery() > 0)
                ? DataSources.open(spec.data(), "val", settings.seqLen(), settings.valFraction(), settings.seed(), 0, 1) : null;
        try (train; TokenBatchSource v = val) {
            return trainLoop(tel, sync, asp, r, start, step, until, train, v);
        }
    }

    private long trainLoop(Telemetry.Sender tel, SyncPolicy sync, boolean asp, ParameterServerClient.PullResult r, long start,
                           long step, long until, TokenBatchSource train, TokenBatchSource val) {
        long global = spec.dataPositionAt(step);
        if (global % spec.dp() != 0) {
            throw new IllegalStateException("global data position " + global + " is not divisible by dp=" + spec.dp());
        }
        train.seek(global / spec.dp());
        int t = settings.seqLen();
        int[] window = new int[bw * (t + 1)];
        int[] in = new int[bw * t];
        int[] tg = new int[bw * t];
        long computed = 0;
        LOG.info("worker {}/{} starts at step {} (server version {}, epoch {}, chains {}){}, data {}", rank, spec.tasks(), step, start,
                client.epoch(), client.config().chains(), pipe == null ? "" : ", pipeline " + pipe.plan().describe() + ", stage "
                + pipe.stageIndex(), train.describe());
        while (step < until) {
            checkKilled();
            growthGate(step, tel);
            failIfInjected(step + 1);
            long a = System.nanoTime();
            train.nextBatch(window, bw);
            LocalTrainer.splitWindows(window, bw, t, in, tg);
            double[] losses = forwardBackward(step + 1, in, tg);
            long b = System.nanoTime();
            try {
                ParameterServerClient.PushResult pr = client.push(step + 1, r.version(), grads, spec.requestTimeoutMs());
                if (asp && pr.serverVersion() >= until) {
                    step = until - 1; // the server has applied enough updates
                }
            } catch (RequestRejectedException e) {
                if (e.reason() == RejectReason.NON_FINITE) {
                    throw new NotRetryableException("worker " + rank + ", step " + (step + 1) + ": the gradient has NaN or Infinity "
                            + "(losses " + java.util.Arrays.toString(losses) + "); the server changed nothing and no checkpoint was "
                            + "written. Lower the learning rate or check the data, then resume from the last checkpoint", e);
                }
                if (e.reason() != RejectReason.STALE_EPOCH) {
                    throw e;
                }
                // the model grew while this step was computed: learn the new layout, redo the step on it
                r = pull(0);
                train.seek(train.position() - bw);
                continue;
            }
            step++;
            computed++;
            r = pull(asp ? 0 : sync.minVersionFor(step + 1));
            reportStep(tel, step, losses, b - a, System.nanoTime() - b);
            if (step % settings.logEvery() == 0 || (rank == 0 && spec.ckptEvery() > 0 && step % spec.ckptEvery() == 0)) {
                // on the parameters just pulled (version step): the check a local run makes at log steps and checkpoints
                guard.check(step, lastLoss, AdamW.norm(params));
            }
            if (step < until) {
                evalAndCheckpoint(step, tel, val, r);
            }
        }
        return computed;
    }

    /** --fail-at RANK:STEP[:exit]: the first stage run's task RANK fails (or halts its JVM) before computing STEP. */
    private void failIfInjected(long nextStep) {
        if (spec.failAt() != null && spec.attempt() == 0 && spec.failAt().rank() == rank && spec.failAt().step() == nextStep) {
            if (spec.failAt().exit() && !sameJvm) {
                LOG.error("injected fault (--fail-at {}:{}:exit): halting executor JVM {}", rank, nextStep,
                        ProcessHandle.current().pid());
                Runtime.getRuntime().halt(137);
            }
            throw new InjectedFault("injected fault (--fail-at " + rank + ":" + nextStep + "): task " + rank
                    + " exits before computing step " + nextStep);
        }
    }

    /** This task's share of the step's gradient in {@code grads}; the per-scale losses, or null on a pipeline stage but the last. */
    private double[] forwardBackward(long nextStep, int[] in, int[] tg) {
        // the recipe's precision for this step's GEMMs; evaluation and the server stay fp32
        var outer = io.catena.model.kernel.Gemm.usePrecision(settings.precision());
        try {
            return forwardBackwardIn(nextStep, in, tg);
        } finally {
            io.catena.model.kernel.Gemm.usePrecision(outer);
        }
    }

    private double[] forwardBackwardIn(long nextStep, int[] in, int[] tg) {
        if (pipe == null) {
            return model.forwardBackward(in, tg, 0, frozen, false, 1.0);
        }
        PipelineRunner.StepResult res = pipe.step(nextStep, in, tg, frozen);
        pipeComputeNanos += res.timing().computeNanos();
        pipeWaitNanos += res.timing().waitNanos() + res.timing().sendNanos();
        return res.losses();
    }

    /** One loss report per replica (the driver averages dp of them) and the Spark UI's accumulators. */
    private void reportStep(Telemetry.Sender tel, long step, double[] losses, long computeNanos, long syncNanos) {
        if (losses != null) {
            Map<String, Object> m = report("train");
            m.put("rank", replica);
            m.put("step", step);
            m.put("epoch", client.epoch());
            m.put("chains", client.config().numChains());
            m.put("loss", losses);
            m.put("compute_s", computeNanos / 1e9);
            m.put("sync_s", syncNanos / 1e9);
            if (step % settings.logEvery() == 0) {
                m.put("rss_mb", MetricsLog.peakRssMb()); // the driver reports the largest over the executors
            }
            tel.send(m);
            tokensAcc.add((long) bw * settings.seqLen());
            lastLoss = losses[losses.length - 1];
        }
        if (rank == 0) {
            stepsAcc.add(1);
        }
        // live progress in the Spark UI: the stage and task pages show a running task's input as its heartbeats arrive
        // (windows of seqLen+1 int32 token ids read), where named accumulators only update when a task ends
        org.apache.spark.executor.InputMetrics input = tc.taskMetrics().inputMetrics();
        input.incRecordsRead(bw);
        input.incBytesRead((long) bw * (settings.seqLen() + 1) * Integer.BYTES);
    }

    /** Eval and checkpoint: rank 0, on the parameters of version == step under BSP (it has not pushed step + 1). */
    private void evalAndCheckpoint(long step, Telemetry.Sender tel, TokenBatchSource val, ParameterServerClient.PullResult r) {
        if (rank == 0 && val != null && spec.evalEvery() > 0 && step % spec.evalEvery() == 0) {
            double[] ev = Evaluator.evaluate(evalModel(r.version()), val, settings.evalBatches() * spec.dp());
            Map<String, Object> m = report("eval");
            m.put("step", step);
            m.put("version", r.version());
            m.put("chains", client.config().numChains());
            m.put("val_loss", ev);
            tel.send(m);
        }
        if (rank == 0 && spec.ckptEvery() > 0 && step % spec.ckptEvery() == 0) {
            Map<String, Object> info = new LinkedHashMap<>(spec.snapshotInfo());
            info.put("tokens_seen", spec.tokensAt(step));
            info.put("data_position", spec.dataPositionAt(step));
            Map<String, Object> reply = client.snapshot(info, spec.requestTimeoutMs());
            Map<String, Object> m = report("checkpoint");
            m.put("step", step);
            m.put("version", reply.get("version"));
            m.put("dir", reply.get("snapshot"));
            tel.send(m);
        }
    }

    /**
     * Before computing step + 1: when a growth is planned after {@code step}, tell the driver this worker is
     * at the gate (its eval/checkpoint of that step are done) and wait until the server has grown. Nobody
     * pushes step + 1 on the old model, so the server grows at exactly this version and answers the pull
     * below (for a version that cannot come yet) with the new layout.
     */
    private void growthGate(long step, Telemetry.Sender tel) {
        for (JobSpec.GrowthPlan g : spec.growth()) {
            if (g.step() == step && client.config().numChains() < g.chainsAfter()) {
                Map<String, Object> at = report("gate");
                at.put("step", step);
                tel.send(at);
                long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(spec.requestTimeoutMs());
                while (client.config().numChains() < g.chainsAfter()) {
                    checkKilled();
                    try {
                        ParameterServerClient.PullResult pr = client.pull(step + 1, params, PULL_SLICE_MS);
                        if (pr.layoutChanged()) {
                            rebuild();
                        }
                    } catch (ParameterServerTimeoutException e) {
                        if (System.nanoTime() - deadline > 0) {
                            throw new ParameterServerTimeoutException("worker " + rank + " waited " + spec.requestTimeoutMs()
                                    + " ms at step " + step + " for the driver to grow the model to " + g.chainsAfter() + " chains");
                        }
                    }
                }
                pull(0);
                LOG.info("worker {} continues after growth at step {}: chains {}, frozen {}", rank, step, client.config().chains(), frozen);
            }
        }
    }
}
