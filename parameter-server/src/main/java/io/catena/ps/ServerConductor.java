package io.catena.ps;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.aeron.Aeron;
import io.aeron.DirectBufferVector;
import io.aeron.ExclusivePublication;
import io.aeron.FragmentAssembler;
import io.aeron.Image;
import io.aeron.Subscription;
import io.aeron.logbuffer.Header;
import io.catena.model.ChainExpansion;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.io.CheckpointStore;
import io.catena.model.io.TrainingState;
import io.catena.model.kernel.Buf;
import io.catena.model.kernel.VectorKernels;
import io.catena.model.optim.AdamW;
import io.catena.model.pipeline.StagePlan;
import io.catena.ps.protocol.ChunkPlan;
import io.catena.ps.protocol.MessageAuthenticator;
import io.catena.ps.protocol.MessageHeader;
import io.catena.ps.protocol.MessageType;
import io.catena.ps.protocol.RejectReason;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import javax.crypto.Mac;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.Agent;
import org.agrona.concurrent.IdleStrategy;
import org.agrona.concurrent.UnsafeBuffer;
import org.nd4j.linalg.api.buffer.DataType;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The server's only thread of control (an Agrona agent): receives and authenticates messages,
 * assembles pushes, applies AdamW per shard, answers pulls, grows the model and starts snapshots.
 * Nothing here is touched by another thread except through {@link #submit} and the metrics.
 */
final class ServerConductor implements Agent {
    private static final Logger LOG = LoggerFactory.getLogger(ServerConductor.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final long NONE = Long.MIN_VALUE;

    private final ParameterServer.Context ctx;
    private final Aeron aeron;
    private final Subscription subscription;
    private final FragmentAssembler assembler;
    private final MessageAuthenticator auth;
    private final ServerMetrics metrics;
    private final long instanceId = ThreadLocalRandom.current().nextLong() & Long.MAX_VALUE;
    private final IdleStrategy sendIdle;
    private final long sendTimeoutNs;
    private final Queue<Consumer<ServerConductor>> commands = new ConcurrentLinkedQueue<>();
    private final Queue<Runnable> completions = new ConcurrentLinkedQueue<>();
    private final Queue<Integer> lostImages = new ConcurrentLinkedQueue<>();
    private final ExecutorService snapshotExecutor;
    private final CheckpointStore store;
    private final SyncPolicy sync;
    private final int workerCount;
    /** Pipeline stages P; worker w runs stage w % P of replica w / P (ParameterServer.Context#pipeline). */
    private final int stages;
    /** Data-parallel replicas W / P: every parameter gets this many gradient contributions per step. */
    private final int replicas;

    // model state (conductor thread only; version/epoch/layout also read by other threads)
    private volatile ParamLayout layout;
    private volatile long version;
    private volatile int epoch;
    private volatile ChunkPlan plan;
    /** chain-model's stage plan of the current model; null with one stage. */
    private StagePlan stagePlan;
    private Params params;
    private Params adamM;
    private Params adamV;
    private AdamW adamW;
    private int frozenChains;
    private UnsafeBuffer paramsView;
    private Map<String, Object> baseInfo;
    /**
     * HMAC state after each parameter chunk's payload, for the current parameters: W workers pulling one
     * version cost one pass of HMAC over the vector, not W (payload-first MAC, protocol package doc).
     * Null entries: not hashed yet; cleared whenever the parameters change.
     */
    private Mac[] chunkMacs = new Mac[0];

    // synchronisation state
    private Params[] slots;
    private UnsafeBuffer[] slotViews;
    private long[] slotStep;
    private int[] slotCount;
    private boolean[][] slotHas;
    private long[][] slotBase;
    private long[][] slotArrival;
    private final WorkerState[] workers;

    private final Map<Integer, Session> sessions = new HashMap<>();
    private final Session[] workerSessions;
    private final List<PendingPull> pendingPulls = new ArrayList<>();
    private PendingGrow pendingGrow;
    private boolean snapshotInFlight;
    private long lastSnapshotVersion;

    // receive and transmit scratch
    private final MessageHeader rx = new MessageHeader();
    private final MessageHeader tx = new MessageHeader();
    private final UnsafeBuffer txHeader = new UnsafeBuffer(ByteBuffer.allocateDirect(MessageHeader.LENGTH));
    private final UnsafeBuffer txMac = new UnsafeBuffer(ByteBuffer.allocateDirect(MessageHeader.MAC_LENGTH));
    private final DirectBufferVector vHeader = new DirectBufferVector(txHeader, 0, MessageHeader.LENGTH);
    private final DirectBufferVector vPayload = new DirectBufferVector();
    private final DirectBufferVector vMac = new DirectBufferVector(txMac, 0, MessageHeader.MAC_LENGTH);
    private final DirectBufferVector[] vectors3 = {vHeader, vPayload, vMac};
    private final DirectBufferVector[] vectors2 = {vHeader, vMac};

    private static final class WorkerState {
        Params staging;
        UnsafeBuffer view;
        long correlation = NONE;
        long finishedCorrelation = NONE;
        long step;
        long base;
        int received;
        boolean[] seen;
        long lastAspStep;
    }

    private static final class Session {
        final int aeronSessionId;
        final int workerId;
        final ExclusivePublication pub;
        final long helloCorrelation;
        final long deadlineNs;
        boolean welcomed;
        RejectReason pendingReject;
        String pendingRejectDetail;

        Session(int aeronSessionId, int workerId, ExclusivePublication pub, long helloCorrelation, long deadlineNs) {
            this.aeronSessionId = aeronSessionId;
            this.workerId = workerId;
            this.pub = pub;
            this.helloCorrelation = helloCorrelation;
            this.deadlineNs = deadlineNs;
        }
    }

    /** {@code all}: every chunk, not only the stage's of a pipeline worker. */
    private record PendingPull(Session session, long correlation, long minVersion, int epoch, boolean all, long deadlineNs) {
    }

    private record PendingGrow(List<Integer> added, boolean freezeOld, long seed, List<Double> weights, long deadlineNs,
                               CompletableFuture<Map<String, Object>> future) {
    }

    ServerConductor(ParameterServer.Context ctx, Aeron aeron) {
        this.ctx = ctx;
        this.aeron = aeron;
        this.auth = new MessageAuthenticator(ctx.secret);
        this.sendIdle = Transport.idleStrategy(ctx.idleStrategy, Configuration.IDLE_STRATEGY_PROP);
        this.sendTimeoutNs = TimeUnit.MILLISECONDS.toNanos(ctx.sendTimeoutMs);
        this.sync = ctx.sync;
        this.workerCount = ctx.workers;
        this.stages = ctx.pipelineStages;
        this.replicas = workerCount / stages;
        this.metrics = new ServerMetrics(stages);
        this.store = new CheckpointStore(io.catena.model.io.storage.HadoopStorage.resolver(ctx.hadoopConf != null ? ctx.hadoopConf : new org.apache.hadoop.conf.Configuration()));
        this.workers = new WorkerState[workerCount];
        this.workerSessions = new Session[workerCount];
        for (int w = 0; w < workerCount; w++) {
            workers[w] = new WorkerState();
        }
        TrainingState st = ctx.initialState;
        Object e = st.info().get("ps_epoch");
        this.epoch = e instanceof Number n ? n.intValue() : 0;
        this.baseInfo = new LinkedHashMap<>(st.info());
        install(st.params(), st.hasOptimizerState() ? st.adamM() : null, st.hasOptimizerState() ? st.adamV() : null,
                st.frozenChains());
        this.version = st.step();
        this.lastSnapshotVersion = version;
        this.snapshotExecutor = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "catena-ps-snapshot");
            t.setDaemon(true);
            return t;
        });
        String channel = Transport.udpParams(ctx.channel, ctx.udpChannelParams);
        this.subscription = aeron.addSubscription(channel, ctx.streamId, img -> { }, this::onImageLost);
        this.assembler = new FragmentAssembler(this::onMessage);
    }

    /** Installs a model: parameters, moments (null: zeros), optimizer, plan and every per-layout buffer. */
    private void install(Params p, Params m, Params v, int frozen) {
        ParamLayout l = p.layout();
        this.params = p;
        this.adamM = m != null ? m : new Params(l, DataType.FLOAT);
        this.adamV = v != null ? v : new Params(l, DataType.FLOAT);
        this.frozenChains = frozen;
        this.adamW = new AdamW(l, ctx.adamW, frozen);
        if (stages > 1) {
            // growth widens blocks and head unevenly, so the split is recomputed for the new config
            stagePlan = stagePlan == null ? StagePlan.plan(l.config(), stages, ctx.pipelineMicroBatch, ctx.pipelineSeqLen,
                    ctx.pipelineSchedule, ctx.pipelineMicros)
                    : stagePlan.replan(l.config());
            LOG.info("{}", stagePlan.describe().stripTrailing());
        }
        this.plan = ChunkPlan.of(l, ctx.shards, ctx.chunkFloats, stagePlan);
        this.paramsView = view(p);
        this.chunkMacs = new Mac[plan.chunks()];
        int nSlots = sync.mode() == SyncPolicy.Mode.ASP ? 0 : sync.bound() + 1;
        slots = new Params[nSlots];
        slotViews = new UnsafeBuffer[nSlots];
        slotStep = new long[nSlots];
        slotCount = new int[nSlots];
        slotHas = new boolean[nSlots][workerCount];
        slotBase = new long[nSlots][workerCount];
        slotArrival = new long[nSlots][workerCount];
        for (int s = 0; s < nSlots; s++) {
            slots[s] = new Params(l, DataType.FLOAT);
            slotViews[s] = view(slots[s]);
        }
        for (WorkerState ws : workers) {
            ws.staging = new Params(l, DataType.FLOAT);
            ws.view = view(ws.staging);
            ws.correlation = NONE;
            ws.seen = new boolean[plan.chunks()];
        }
        this.layout = l;
    }

    static UnsafeBuffer view(Params p) {
        ByteBuffer bb = p.flat().data().asNio();
        return new UnsafeBuffer(bb, 0, (int) (p.layout().size() * 4));
    }

    ParamLayout layout() {
        return layout;
    }

    ChunkPlan plan() {
        return plan;
    }

    long version() {
        return version;
    }

    int epoch() {
        return epoch;
    }

    ServerMetrics metrics() {
        return metrics;
    }

    void submit(Consumer<ServerConductor> command) {
        commands.add(command);
    }

    @Override
    public String roleName() {
        return "catena-ps-conductor";
    }

    @Override
    public int doWork() {
        int work = 0;
        Consumer<ServerConductor> c;
        while ((c = commands.poll()) != null) {
            try {
                c.accept(this);
            } catch (RuntimeException e) {
                LOG.error("parameter server command failed", e);
            }
            work++;
        }
        Runnable r;
        while ((r = completions.poll()) != null) {
            r.run();
            work++;
        }
        Integer lost;
        while ((lost = lostImages.poll()) != null) {
            Session s = sessions.get(lost);
            if (s != null) {
                closeSession(s, "its Aeron image went away");
            }
            work++;
        }
        work += subscription.poll(assembler, 16);
        work += pollSessions();
        work += expire();
        return work;
    }

    @Override
    public void onClose() {
        if (ctx.snapshotOnClose && ctx.snapshotUri != null) {
            try {
                String uri = store.save(ctx.snapshotUri, copyState(Map.of()));
                metrics.snapshots.incrementAndGet();
                metrics.lastSnapshot.set(uri);
                LOG.info("final snapshot of version {} written to {}", version, uri);
            } catch (RuntimeException e) {
                LOG.error("final snapshot to {} failed: {}", ctx.snapshotUri, e.getMessage(), e);
            }
        }
        if (pendingGrow != null) {
            pendingGrow.future.completeExceptionally(new ParameterServerException("server closed before the growth happened"));
        }
        for (Session s : new ArrayList<>(sessions.values())) {
            s.pub.close();
        }
        sessions.clear();
        subscription.close();
    }

    void shutdownSnapshots() {
        snapshotExecutor.shutdown();
        try {
            if (!snapshotExecutor.awaitTermination(60, TimeUnit.SECONDS)) {
                LOG.warn("a snapshot was still being written after 60 s at shutdown; it may be incomplete (it is never marked latest)");
                snapshotExecutor.shutdownNow();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void onImageLost(Image image) {
        lostImages.add(image.sessionId());
    }

    // ---- receiving ----------------------------------------------------------------------------

    private void onMessage(DirectBuffer buffer, int offset, int length, Header header) {
        metrics.messagesIn.incrementAndGet();
        metrics.bytesIn.addAndGet(length);
        Session s = sessions.get(header.sessionId());
        rx.wrap(buffer, offset);
        long corr = length >= MessageHeader.LENGTH ? rx.correlationId() : 0;
        if (length > ctx.maxMessageLength) {
            reject(s, RejectReason.OVERSIZED, corr, "message of " + length + " bytes, this server accepts at most "
                    + ctx.maxMessageLength + " (chunk " + ctx.chunkFloats * 4 + " bytes + " + MessageHeader.OVERHEAD + ")");
            return;
        }
        String bad = rx.validate(length);
        if (bad != null) {
            reject(s, RejectReason.MALFORMED, corr, bad);
            return;
        }
        if (!auth.verify(buffer, offset, length)) {
            reject(s, RejectReason.BAD_MAC, corr, "HMAC-SHA256 of a " + rx.type() + " message does not verify; "
                    + "use the job's secret (" + Configuration.SECRET_FILE_PROP + ")");
            return;
        }
        MessageType type = rx.type();
        if (type == MessageType.HELLO) {
            onHello(buffer, header.sessionId());
            return;
        }
        if (rx.jobId() != ctx.jobId) {
            reject(s, RejectReason.UNKNOWN_JOB, corr, "message for job id " + rx.jobId() + ", this server serves job '"
                    + ctx.jobName + "' (id " + ctx.jobId + ")");
            return;
        }
        if (s == null || !s.welcomed) {
            reject(null, RejectReason.UNKNOWN_SESSION, corr, "no HELLO on Aeron session " + header.sessionId());
            return;
        }
        switch (type) {
            case PUSH -> onPush(s, buffer);
            case PULL -> onPull(s);
            case GROW -> onGrowRequest(s, buffer);
            case SNAPSHOT -> onSnapshotRequest(s, buffer);
            case METRICS -> sendJson(s, MessageType.ADMIN_REPLY, corr, metrics.toMap());
            default -> reject(s, RejectReason.MALFORMED, corr, type + " is not a request a server accepts");
        }
    }

    private void reject(Session s, RejectReason reason, long correlation, String detail) {
        metrics.reject(reason);
        if (metrics.rejections(reason) <= 20 || LOG.isDebugEnabled()) {
            LOG.warn("rejected ({}): {}", reason, detail);
        }
        if (s != null && s.welcomed) {
            byte[] d = detail.getBytes(StandardCharsets.UTF_8);
            send(s, MessageType.REJECT, reason.code, correlation, 0, version, 0, 0, new UnsafeBuffer(d), 0, d.length);
        }
    }

    private void onHello(DirectBuffer buffer, int aeronSessionId) {
        int p = rx.payloadOffset();
        int len = rx.payloadLength();
        long corr = rx.correlationId();
        int worker = rx.workerId();
        if (len < 8 || buffer.getInt(p + 4, java.nio.ByteOrder.LITTLE_ENDIAN) != len - 8) {
            reject(null, RejectReason.MALFORMED, corr, "HELLO payload of " + len + " bytes is not (stream id, channel)");
            return;
        }
        int stream = buffer.getInt(p, java.nio.ByteOrder.LITTLE_ENDIAN);
        String channel = buffer.getStringWithoutLengthUtf8(p + 8, len - 8);
        // A client that says HELLO again (after a timeout) keeps its response publication: closing and re-adding
        // one with the same session id races with the driver's asynchronous close.
        ExclusivePublication reuse = null;
        Session old = sessions.get(aeronSessionId);
        Session oldWorker = worker >= 0 && worker < workerCount ? workerSessions[worker] : null;
        for (Session o : new Session[] {old, oldWorker}) {
            if (o != null && reuse == null && !o.pub.isClosed() && o.pub.streamId() == stream && o.pub.channel().equals(channel)) {
                reuse = o.pub;
            }
        }
        if (old != null) {
            closeSession(old, "it said HELLO again", old.pub == reuse);
        }
        if (oldWorker != null && oldWorker != old) {
            closeSession(oldWorker, "worker " + worker + " connected again (restarted task)", oldWorker.pub == reuse);
        }
        ExclusivePublication pub = reuse;
        try {
            if (pub == null) {
                pub = aeron.addExclusivePublication(channel, stream);
            }
        } catch (RuntimeException e) {
            metrics.reject(RejectReason.BAD_REQUEST);
            LOG.warn("HELLO from worker {} names response channel '{}' stream {} which Aeron refuses: {}", worker, channel, stream,
                    e.getMessage());
            return;
        }
        Session s = new Session(aeronSessionId, worker, pub, corr, System.nanoTime() + Math.max(sendTimeoutNs, 5_000_000_000L));
        if (rx.jobId() != ctx.jobId) {
            s.pendingReject = RejectReason.UNKNOWN_JOB;
            s.pendingRejectDetail = "this server serves job '" + ctx.jobName + "' (id " + ctx.jobId + "), the client asked for job id "
                    + rx.jobId() + "; check " + Configuration.JOB_NAME_PROP;
        } else if (worker < -1 || worker >= workerCount) {
            s.pendingReject = RejectReason.UNKNOWN_WORKER;
            s.pendingRejectDetail = "worker id " + worker + " is outside [0, " + workerCount + ") (" + Configuration.WORKERS_PROP
                    + "=" + workerCount + "); admin clients use -1";
        } else if (sessions.size() >= ctx.maxClients) {
            s.pendingReject = RejectReason.BUSY;
            s.pendingRejectDetail = "server already has " + sessions.size() + " clients (" + Configuration.MAX_CLIENTS_PROP + ")";
        }
        sessions.put(aeronSessionId, s);
        if (s.pendingReject == null && worker >= 0) {
            workerSessions[worker] = s;
            workers[worker].correlation = NONE;
        }
    }

    private int pollSessions() {
        int work = 0;
        long now = System.nanoTime();
        for (Iterator<Session> it = sessions.values().iterator(); it.hasNext(); ) {
            Session s = it.next();
            if (s.welcomed) {
                continue;
            }
            if (s.pub.isConnected()) {
                s.welcomed = true;
                work++;
                if (s.pendingReject != null) {
                    reject(s, s.pendingReject, s.helloCorrelation, s.pendingRejectDetail);
                    s.pub.close();
                    it.remove();
                } else {
                    byte[] json = currentLayout().toJson();
                    send(s, MessageType.WELCOME, 0, s.helloCorrelation, 0, version, 0, 0, new UnsafeBuffer(json), 0, json.length);
                    LOG.info("client {} connected from {} (epoch {}, version {})", s.workerId < 0 ? "admin" : "worker " + s.workerId
                            + (stages > 1 ? " (stage " + stageOf(s.workerId) + ", replica " + s.workerId / stages + ")" : ""),
                            s.pub.channel(), epoch, version);
                }
            } else if (now - s.deadlineNs > 0) {
                LOG.warn("client {} never connected its response channel {}; is that host/port reachable from the server? "
                        + "(set {} on the client)", s.workerId, s.pub.channel(), Configuration.CLIENT_RESPONSE_HOST_PROP);
                s.pub.close();
                it.remove();
                if (s.workerId >= 0 && s.workerId < workerCount && workerSessions[s.workerId] == s) {
                    workerSessions[s.workerId] = null;
                }
            }
        }
        return work;
    }

    private void closeSession(Session s, String why) {
        closeSession(s, why, false);
    }

    private void closeSession(Session s, String why, boolean keepPublication) {
        LOG.info("closing session of client {} because {}", s.workerId, why);
        sessions.remove(s.aeronSessionId);
        if (s.workerId >= 0 && s.workerId < workerCount && workerSessions[s.workerId] == s) {
            workerSessions[s.workerId] = null;
        }
        pendingPulls.removeIf(pp -> pp.session == s);
        if (!keepPublication) {
            s.pub.close();
        }
    }

    ServerLayout currentLayout() {
        return new ServerLayout(ctx.jobName, instanceId, epoch, version, layout.config(), frozenChains, plan.shardBounds(),
                plan.chunkFloats(), sync, workerCount, stages, ctx.pipelineMicroBatch, ctx.pipelineSeqLen,
                ctx.pipelineSchedule.label(), ctx.pipelineMicros, plan.shardStages());
    }

    /** Pipeline stage of a worker (0 without a pipeline), -1 for an admin. */
    private int stageOf(int worker) {
        return ServerLayout.stageOf(worker, stages);
    }

    // ---- pushes -------------------------------------------------------------------------------

    private void onPush(Session s, DirectBuffer buffer) {
        int w = rx.workerId();
        long corr = rx.correlationId();
        if (s.workerId < 0 || w != s.workerId) {
            reject(s, RejectReason.UNKNOWN_WORKER, corr, "session registered as worker " + s.workerId + " pushed as worker " + w);
            return;
        }
        WorkerState ws = workers[w];
        if (corr == ws.finishedCorrelation) {
            return; // the rest of a push that was already answered
        }
        if (rx.epoch() != epoch) {
            failPush(ws, s, RejectReason.STALE_EPOCH, corr, "push of step " + rx.step() + " is for model epoch " + rx.epoch()
                    + ", the model is at epoch " + epoch + " (chains " + layout.config().chains()
                    + "); pull the new layout, rebuild and continue from version " + version);
            return;
        }
        if (corr != ws.correlation) {
            ws.correlation = corr;
            ws.step = rx.step();
            ws.base = rx.version();
            ws.received = 0;
            Arrays.fill(ws.seen, false);
        }
        int idx = rx.chunkIndex();
        int count = rx.chunkCount();
        int stage = stageOf(w);
        if (count != plan.stageChunkCount(stage)) {
            failPush(ws, s, RejectReason.BAD_CHUNK, corr, stages == 1 ? "push says " + count + " chunks, the epoch-" + epoch
                    + " plan has " + plan.chunks() + " chunks of at most " + plan.chunkFloats() + " floats (" + layout.size()
                    + " parameters)" : "stage " + stage + " (replica " + w / stages + ") pushed a gradient of " + count
                    + " chunks, expected the " + plan.stageChunkCount(stage) + " chunks of stage " + stage + " (of the epoch-" + epoch
                    + " plan's " + plan.chunks() + "; its parameter ranges " + plan.stageRanges(stage) + "); worker w pushes only "
                    + "stage w % " + stages + "'s chunks: check the worker id and pull the current layout");
            return;
        }
        if (idx < 0 || idx >= plan.chunks()) {
            failPush(ws, s, RejectReason.BAD_CHUNK, corr, "chunk index " + idx + " outside [0, " + plan.chunks() + ")");
            return;
        }
        if (plan.chunkStage(idx) != stage) {
            failPush(ws, s, RejectReason.BAD_CHUNK, corr, "stage " + stage + " (replica " + w / stages + ") pushed chunk " + idx
                    + " (floats [" + plan.chunkOffset(idx) + ", " + (plan.chunkOffset(idx) + plan.chunkLength(idx)) + ")), which belongs "
                    + "to stage " + plan.chunkStage(idx) + "; expected only the " + plan.stageChunkCount(stage) + " chunks of stage "
                    + stage + " (parameter ranges " + plan.stageRanges(stage) + "); nothing of this push was applied");
            return;
        }
        int expected = plan.chunkLength(idx) * 4;
        if (rx.payloadLength() != expected) {
            failPush(ws, s, RejectReason.BAD_CHUNK, corr, "chunk " + idx + " carries " + rx.payloadLength() + " bytes, the plan says "
                    + expected + " (" + plan.chunkLength(idx) + " floats at offset " + plan.chunkOffset(idx) + ")");
            return;
        }
        if (rx.step() != ws.step || rx.version() != ws.base || ws.seen[idx]) {
            failPush(ws, s, RejectReason.BAD_CHUNK, corr, ws.seen[idx] ? "chunk " + idx + " arrived twice"
                    : "chunk " + idx + " says step " + rx.step() + " base " + rx.version() + ", its push began with step " + ws.step
                    + " base " + ws.base);
            return;
        }
        ws.view.putBytes((int) (plan.chunkOffset(idx) * 4), buffer, rx.payloadOffset(), expected);
        ws.seen[idx] = true;
        if (stages > 1) {
            metrics.stagePushed(stage, expected);
        }
        if (++ws.received == count) {
            ws.finishedCorrelation = corr;
            ws.correlation = NONE;
            completePush(w, ws, s, corr);
        }
    }

    private void failPush(WorkerState ws, Session s, RejectReason reason, long corr, String detail) {
        ws.finishedCorrelation = corr;
        ws.correlation = NONE;
        reject(s, reason, corr, "worker " + s.workerId + ": " + detail);
    }

    private void completePush(int w, WorkerState ws, Session s, long corr) {
        long step = ws.step;
        boolean asp = sync.mode() == SyncPolicy.Mode.ASP;
        boolean duplicate = asp ? step <= ws.lastAspStep
                : step <= version || (step <= version + 1 + sync.bound() && slotStep[slot(step)] == step && slotHas[slot(step)][w]);
        if (duplicate) {
            metrics.duplicates.incrementAndGet();
            send(s, MessageType.PUSH_ACK, 1, corr, step, version, 0, 0, null, 0, 0);
            return;
        }
        if (step < 1 || (!asp && step > version + 1 + sync.bound())) {
            reject(s, RejectReason.STEP_OUT_OF_WINDOW, corr, "worker " + w + " pushed step " + step + "; with " + sync
                    + " at version " + version + " the server accepts steps " + (version + 1) + ".." + (version + 1 + sync.bound())
                    + "; pull version >= " + sync.minVersionFor(step) + " first");
            return;
        }
        // only the worker's own stage ranges hold its gradient (all of the vector without a pipeline)
        List<StagePlan.ParamRange> own = plan.stageRanges(stageOf(w));
        int bad = -1;
        for (int r = 0; r < own.size() && bad < 0; r++) {
            bad = firstNonFinite(ws.staging, ws.view, (int) own.get(r).offset(), (int) own.get(r).end());
        }
        if (bad >= 0) {
            reject(s, RejectReason.NON_FINITE, corr, "worker " + w + " step " + step + ": gradient element " + bad + " ("
                    + tensorAt(bad) + ") is " + ws.view.getFloat(bad * 4) + "; nothing was applied. Lower the learning rate or "
                    + "check the worker's data");
            return;
        }
        long now = System.nanoTime();
        metrics.pushesAccepted.incrementAndGet();
        if (asp) {
            ws.lastAspStep = step;
            metrics.staleness(w, Math.max(0, version - ws.base));
            applyUpdate(ws.staging, 1);
            version++;
            metrics.latency(System.nanoTime() - now);
            metrics.published(System.nanoTime());
            afterPublish();
            send(s, MessageType.PUSH_ACK, 0, corr, step, version, 0, 0, null, 0, 0);
            return;
        }
        int sl = slot(step);
        if (slotStep[sl] != step) {
            slotStep[sl] = step;
        }
        for (StagePlan.ParamRange r : own) {
            add(slots[sl], slotViews[sl], ws.staging, ws.view, (int) r.offset(), (int) r.end());
        }
        slotHas[sl][w] = true;
        slotBase[sl][w] = ws.base;
        slotArrival[sl][w] = now;
        slotCount[sl]++;
        advance(); // first, so that the ack's version includes this push when it completed a step
        send(s, MessageType.PUSH_ACK, 0, corr, step, version, 0, 0, null, 0, 0);
    }

    private int slot(long step) {
        return (int) (step % (sync.bound() + 1));
    }

    /**
     * First non-finite element, or -1. Fast path: a vectorized sum of squares is finite exactly when every
     * element is finite (squares are >= 0, so no inf - inf), unless a finite element above ~1e19 overflows it;
     * only then is the vector scanned element by element.
     */
    private static int firstNonFinite(Params p, UnsafeBuffer b, int from, int to) {
        if (p.buf() instanceof Buf.F32 f && Double.isFinite(VectorKernels.sumSquares(f.bytes(), from, to))) {
            return -1;
        }
        for (int i = from; i < to; i++) {
            if (!Float.isFinite(b.getFloat(i * 4))) {
                return i;
            }
        }
        return -1;
    }

    /** acc[from, to) += g[from, to). */
    private static void add(Params accParams, UnsafeBuffer acc, Params gParams, UnsafeBuffer g, int from, int to) {
        if (accParams.buf() instanceof Buf.F32 a && gParams.buf() instanceof Buf.F32 b) {
            VectorKernels.add(a.bytes(), from, b.bytes(), from, a.bytes(), from, to - from); // chain-model's Vector API kernel
            return;
        }
        for (int i = from, o = from * 4; i < to; i++, o += 4) {
            acc.putFloat(o, acc.getFloat(o) + g.getFloat(o));
        }
    }

    private String tensorAt(long index) {
        for (ParamLayout.Entry e : layout.entries()) {
            if (index >= e.offset() && index < e.offset() + e.size()) {
                return e.name() + "[" + (index - e.offset()) + "]";
            }
        }
        return "?";
    }

    /** Publishes every complete step in order (BSP/SSP). */
    private void advance() {
        boolean published = false;
        while (true) {
            long step = version + 1;
            int sl = slot(step);
            if (slotStep[sl] != step || slotCount[sl] < workerCount) {
                break; // every worker (all replicas of all stages) must have pushed the step
            }
            applyUpdate(slots[sl], replicas); // each element got one contribution per replica
            version = step;
            long now = System.nanoTime();
            for (int w = 0; w < workerCount; w++) {
                metrics.staleness(w, Math.max(0, step - 1 - slotBase[sl][w]));
                metrics.latency(now - slotArrival[sl][w]);
            }
            clearSlot(sl);
            metrics.published(now);
            published = true;
        }
        if (published) {
            afterPublish();
        }
    }

    private void clearSlot(int sl) {
        slots[sl].zero();
        slotCount[sl] = 0;
        slotStep[sl] = 0;
        Arrays.fill(slotHas[sl], false);
    }

    /**
     * One AdamW step on the mean of {@code count} summed gradients, shard by shard (chain-model's code), clipped
     * by the norm of the whole vector: with pipeline stages the same as AdamW over the stages' ranges with the
     * summed clip norm (chain-model's PipelineEquivalenceTest).
     */
    private void applyUpdate(Params gradSum, int count) {
        Arrays.fill(chunkMacs, null); // the parameters change
        double ss = 0;
        for (int s = 0; s < plan.shards(); s++) {
            ss += adamW.sumOfSquares(gradSum, plan.shardFrom(s), plan.shardTo(s));
        }
        double norm = Math.sqrt(ss) / count;
        double scale = adamW.clipScale(norm) / count;
        long step = version + 1;
        double lr = ctx.schedule.at(step);
        for (int s = 0; s < plan.shards(); s++) {
            adamW.update(params, gradSum, adamM, adamV, step, lr, scale, plan.shardFrom(s), plan.shardTo(s));
        }
    }

    private void afterPublish() {
        tryGrow();
        servePendingPulls();
        periodicSnapshot();
    }

    /** Starts the periodic snapshot when due; one that comes due while another is written starts when that one ends. */
    private void periodicSnapshot() {
        if (ctx.snapshotInterval > 0 && version - lastSnapshotVersion >= ctx.snapshotInterval) {
            if (snapshotInFlight) {
                metrics.snapshotsSkipped.incrementAndGet();
            } else {
                lastSnapshotVersion = version;
                startSnapshot(Map.of(), null);
            }
        }
    }

    // ---- pulls --------------------------------------------------------------------------------

    private void onPull(Session s) {
        long minVersion = rx.version();
        long corr = rx.correlationId();
        long waitMs = rx.payloadLength() >= 8 ? rx.buffer().getLong(rx.payloadOffset(), java.nio.ByteOrder.LITTLE_ENDIAN) : 0;
        boolean all = (rx.flags() & MessageType.PULL_ALL) != 0;
        metrics.pulls.incrementAndGet();
        if (rx.epoch() != epoch || version >= minVersion) {
            servePull(s, corr, rx.epoch(), all);
        } else {
            pendingPulls.add(new PendingPull(s, corr, minVersion, rx.epoch(), all, System.nanoTime()
                    + TimeUnit.MILLISECONDS.toNanos(Math.max(0, Math.min(waitMs, 24L * 3600 * 1000)))));
        }
    }

    private void servePendingPulls() {
        for (Iterator<PendingPull> it = pendingPulls.iterator(); it.hasNext(); ) {
            PendingPull p = it.next();
            if (p.epoch != epoch || version >= p.minVersion) {
                it.remove();
                servePull(p.session, p.correlation, p.epoch, p.all);
            }
        }
    }

    /**
     * Sends the current parameters: every chunk to admins, to one-stage workers and for {@code all}, else only
     * the chunks of the worker's stage. Chunk indices stay those of the whole plan; the chunk count is what
     * this answer carries.
     */
    private void servePull(Session s, long corr, int requestEpoch, boolean all) {
        if (requestEpoch != epoch) {
            byte[] json = currentLayout().toJson();
            send(s, MessageType.PULL_BEGIN, 1, corr, 0, version, 0, 0, new UnsafeBuffer(json), 0, json.length);
            return;
        }
        int stage = all || stages == 1 ? -1 : stageOf(s.workerId);
        int chunks = stage < 0 ? plan.chunks() : plan.stageChunkCount(stage);
        if (!send(s, MessageType.PULL_BEGIN, 0, corr, 0, version, 0, chunks, null, 0, 0)) {
            return;
        }
        for (int k = 0; k < chunks; k++) {
            int i = stage < 0 ? k : plan.stageChunk(stage, k);
            if (!send(s, MessageType.PARAMS, 0, corr, 0, version, i, chunks, paramsView, (int) (plan.chunkOffset(i) * 4),
                    plan.chunkLength(i) * 4, true)) {
                return;
            }
            if (stages > 1) {
                metrics.stagePulled(plan.chunkStage(i), plan.chunkLength(i) * 4L);
            }
        }
    }

    private int expire() {
        long now = System.nanoTime();
        int work = 0;
        if (!pendingPulls.isEmpty()) {
            int before = pendingPulls.size();
            pendingPulls.removeIf(p -> now - p.deadlineNs > 0);
            work += before - pendingPulls.size();
        }
        if (pendingGrow != null && now - pendingGrow.deadlineNs > 0) {
            int inFlight = sync.mode() == SyncPolicy.Mode.ASP ? 0 : slotCount[slot(version + 1)];
            pendingGrow.future.completeExceptionally(new ParameterServerTimeoutException("growth by " + pendingGrow.added
                    + " waited " + ctx.growTimeoutMs + " ms for the in-flight step " + (version + 1) + " (" + inFlight + " of "
                    + workerCount + " workers pushed); the model was not changed. Make sure all workers are running, or raise "
                    + Configuration.GROW_TIMEOUT_PROP));
            pendingGrow = null;
            work++;
        }
        return work;
    }

    // ---- growth -------------------------------------------------------------------------------

    void requestGrow(List<Integer> added, boolean freezeOld, long seed, List<Double> weights,
                     CompletableFuture<Map<String, Object>> future) {
        if (pendingGrow != null) {
            future.completeExceptionally(new RequestRejectedException(RejectReason.BUSY, "a growth by " + pendingGrow.added
                    + " is already waiting for the in-flight step"));
            return;
        }
        try {
            layout.config().withAppendedChains(added, weights); // validate now, before waiting
        } catch (RuntimeException e) {
            future.completeExceptionally(new RequestRejectedException(RejectReason.BAD_REQUEST, "cannot grow chains "
                    + layout.config().chains() + " by " + added + ": " + e.getMessage()));
            return;
        }
        pendingGrow = new PendingGrow(List.copyOf(added), freezeOld, seed, weights == null ? null : List.copyOf(weights),
                System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(ctx.growTimeoutMs), future);
        tryGrow();
        servePendingPulls();
    }

    private void tryGrow() {
        if (pendingGrow == null) {
            return;
        }
        if (sync.mode() != SyncPolicy.Mode.ASP) {
            int sl = slot(version + 1);
            if (slotStep[sl] == version + 1 && slotCount[sl] > 0) {
                return; // finish the in-flight step first
            }
            for (int i = 0; i < slots.length; i++) {
                metrics.discardedOnGrowth.addAndGet(slotCount[i]);
            }
        }
        PendingGrow g = pendingGrow;
        pendingGrow = null;
        try {
            TrainingState cur = new TrainingState(layout.config(), params, adamM, adamV, version, 0, 0, frozenChains, Map.of());
            TrainingState grown = ChainExpansion.expand(cur, g.added, g.freezeOld, g.weights, g.seed);
            install(grown.params(), grown.adamM(), grown.adamV(), grown.frozenChains());
            epoch++;
            for (WorkerState ws : workers) {
                ws.finishedCorrelation = NONE;
                ws.lastAspStep = Math.max(ws.lastAspStep, version);
            }
            Map<String, Object> reply = new LinkedHashMap<>();
            reply.put("epoch", epoch);
            reply.put("version", version);
            reply.put("chains", layout.config().chains());
            reply.put("frozen_chains", frozenChains);
            reply.put("parameters", layout.size());
            LOG.info("grew the model by chains {} at version {}: now chains {}, {} parameters, epoch {}, frozen chains {}",
                    g.added, version, layout.config().chains(), layout.size(), epoch, frozenChains);
            g.future.complete(reply);
        } catch (RuntimeException e) {
            g.future.completeExceptionally(new ParameterServerException("growth by " + g.added + " failed: " + e.getMessage()
                    + "; the model was not changed", e));
        }
    }

    @SuppressWarnings("unchecked")
    private void onGrowRequest(Session s, DirectBuffer buffer) {
        long corr = rx.correlationId();
        Map<String, Object> req;
        try {
            req = JSON.readValue(payloadBytes(buffer), Map.class);
        } catch (Exception e) {
            reject(s, RejectReason.BAD_REQUEST, corr, "GROW payload is not JSON: " + e.getMessage());
            return;
        }
        List<Integer> added = new ArrayList<>();
        List<Double> weights = null;
        try {
            for (Object o : (List<Object>) req.get("added")) {
                added.add(((Number) o).intValue());
            }
            if (req.get("loss_weights") instanceof List<?> lw) {
                weights = new ArrayList<>();
                for (Object o : lw) {
                    weights.add(((Number) o).doubleValue());
                }
            }
        } catch (RuntimeException e) {
            reject(s, RejectReason.BAD_REQUEST, corr, "GROW needs {\"added\": [heads...]}, got " + req);
            return;
        }
        boolean freeze = Boolean.TRUE.equals(req.get("freeze_old"));
        long seed = req.get("seed") instanceof Number n ? n.longValue() : ctx.seed;
        CompletableFuture<Map<String, Object>> f = new CompletableFuture<>();
        f.whenComplete((reply, err) -> completions.add(() -> {
            if (err != null) {
                RejectReason r = err instanceof RequestRejectedException rr ? rr.reason() : RejectReason.BAD_REQUEST;
                reject(s, r, corr, err.getMessage());
            } else {
                sendJson(s, MessageType.ADMIN_REPLY, corr, reply);
            }
        }));
        requestGrow(added, freeze, seed, weights, f);
    }

    private byte[] payloadBytes(DirectBuffer buffer) {
        byte[] b = new byte[rx.payloadLength()];
        buffer.getBytes(rx.payloadOffset(), b);
        return b;
    }

    // ---- snapshots ----------------------------------------------------------------------------

    TrainingState copyState(Map<String, Object> trainerInfo) {
        Params p = new Params(layout, DataType.FLOAT);
        Params m = new Params(layout, DataType.FLOAT);
        Params v = new Params(layout, DataType.FLOAT);
        p.copyFrom(params);
        m.copyFrom(adamM);
        v.copyFrom(adamV);
        Map<String, Object> info = new LinkedHashMap<>(baseInfo);
        info.putAll(trainerInfo);
        info.put("ps_job", ctx.jobName);
        info.put("ps_epoch", epoch);
        info.put("ps_version", version);
        info.put("ps_sync", sync.toString());
        long tokens = trainerInfo.get("tokens_seen") instanceof Number n ? n.longValue() : 0;
        long position = trainerInfo.get("data_position") instanceof Number n ? n.longValue() : 0;
        return new TrainingState(layout.config(), p, m, v, version, tokens, position, frozenChains, info);
    }

    void requestSnapshot(Map<String, Object> trainerInfo, CompletableFuture<String> future) {
        if (ctx.snapshotUri == null) {
            future.completeExceptionally(new ConfigurationException(Configuration.SNAPSHOT_URI_PROP, "a checkpoint root URI for "
                    + "snapshots", null, "set it on the server"));
            return;
        }
        if (snapshotInFlight) {
            future.completeExceptionally(new RequestRejectedException(RejectReason.BUSY, "a snapshot is being written; retry when it is done"));
            return;
        }
        startSnapshot(trainerInfo, future);
    }

    private void startSnapshot(Map<String, Object> trainerInfo, CompletableFuture<String> future) {
        TrainingState st = copyState(trainerInfo);
        snapshotInFlight = true;
        long v = version;
        snapshotExecutor.execute(() -> {
            String uri = null;
            Throwable err = null;
            try {
                uri = store.save(ctx.snapshotUri, st);
            } catch (Throwable t) {
                err = t;
            }
            String u = uri;
            Throwable e = err;
            completions.add(() -> {
                snapshotInFlight = false;
                completions.add(this::periodicSnapshot);
                if (e == null) {
                    metrics.snapshots.incrementAndGet();
                    metrics.lastSnapshot.set(u);
                    LOG.info("snapshot of version {} (epoch {}) written to {}", v, st.info().get("ps_epoch"), u);
                    if (future != null) {
                        future.complete(u);
                    }
                } else {
                    metrics.snapshotFailures.incrementAndGet();
                    LOG.error("snapshot of version {} to {} failed: {}", v, ctx.snapshotUri, e.getMessage(), e);
                    if (future != null) {
                        future.completeExceptionally(new ParameterServerException("snapshot of version " + v + " to "
                                + ctx.snapshotUri + " failed: " + e.getMessage(), e));
                    }
                }
            });
        });
    }

    @SuppressWarnings("unchecked")
    private void onSnapshotRequest(Session s, DirectBuffer buffer) {
        long corr = rx.correlationId();
        Map<String, Object> info = Map.of();
        if (rx.payloadLength() > 0) {
            try {
                info = JSON.readValue(payloadBytes(buffer), Map.class);
            } catch (Exception e) {
                reject(s, RejectReason.BAD_REQUEST, corr, "SNAPSHOT payload is not JSON: " + e.getMessage());
                return;
            }
        }
        CompletableFuture<String> f = new CompletableFuture<>();
        f.whenComplete((uri, err) -> completions.add(() -> {
            if (err != null) {
                reject(s, err instanceof RequestRejectedException rr ? rr.reason() : RejectReason.BAD_REQUEST, corr, err.getMessage());
            } else {
                sendJson(s, MessageType.ADMIN_REPLY, corr, Map.of("snapshot", uri, "version", version, "epoch", epoch));
            }
        }));
        requestSnapshot(info, f);
    }

    // ---- sending ------------------------------------------------------------------------------

    private void sendJson(Session s, MessageType type, long corr, Map<String, Object> doc) {
        try {
            byte[] b = JSON.writeValueAsBytes(doc);
            send(s, type, 0, corr, 0, version, 0, 0, new UnsafeBuffer(b), 0, b.length);
        } catch (Exception e) {
            LOG.error("cannot encode reply", e);
        }
    }

    /** Signs and sends one frame whose payload is a region of {@code payload} (null: none), bounded by the send timeout. */
    private boolean send(Session s, MessageType type, int flags, long corr, long step, long ver, int chunkIndex, int chunkCount,
                         DirectBuffer payload, int payloadOffset, int payloadLength) {
        return send(s, type, flags, corr, step, ver, chunkIndex, chunkCount, payload, payloadOffset, payloadLength, false);
    }

    /**
     * {@code paramsChunk}: the payload is parameter chunk {@code chunkIndex} of the current parameters, whose
     * HMAC state after the payload is cached until the parameters change.
     */
    private boolean send(Session s, MessageType type, int flags, long corr, long step, long ver, int chunkIndex, int chunkCount,
                         DirectBuffer payload, int payloadOffset, int payloadLength, boolean paramsChunk) {
        if (s.pub.isClosed()) {
            return false;
        }
        tx.wrap(txHeader, 0).reset(type).flags(flags).jobId(ctx.jobId).epoch(epoch).workerId(s.workerId).step(step).version(ver)
                .correlationId(corr).chunkIndex(chunkIndex).chunkCount(chunkCount).payloadLength(payloadLength);
        DirectBufferVector[] vectors = vectors2;
        if (payloadLength > 0) {
            // payload first, then header (protocol package doc)
            Mac cached = paramsChunk ? chunkMacs[chunkIndex] : null;
            if (cached != null) {
                auth.continueFrom(cached);
            } else {
                auth.begin();
                auth.update(payload, payloadOffset, payloadLength);
                if (paramsChunk) {
                    chunkMacs[chunkIndex] = auth.snapshot();
                }
            }
            vPayload.reset(payload, payloadOffset, payloadLength);
            vectors = vectors3;
        } else {
            auth.begin();
        }
        auth.update(txHeader, 0, MessageHeader.LENGTH);
        auth.finish(txMac, 0);
        boolean ok;
        try {
            ok = Transport.offer(s.pub, vectors, System.nanoTime() + sendTimeoutNs, sendIdle);
        } catch (RuntimeException e) {
            LOG.warn("cannot send {} to client {}: {}", type, s.workerId, e.getMessage());
            return false;
        }
        if (!ok) {
            metrics.sendTimeouts.incrementAndGet();
            LOG.warn("{} to client {} on {} was back-pressured for {} ms and dropped; the client will time out and retry",
                    type, s.workerId, s.pub.channel(), ctx.sendTimeoutMs);
            return false;
        }
        metrics.bytesOut.addAndGet(MessageHeader.OVERHEAD + payloadLength);
        return true;
    }
}
