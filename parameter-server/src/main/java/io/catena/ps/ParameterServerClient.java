package io.catena.ps;

import io.catena.model.ColmConfig;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.ps.protocol.ChunkPlan;
import io.catena.ps.protocol.MessageHeader;
import io.catena.ps.protocol.MessageType;
import io.catena.ps.protocol.RejectReason;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.agrona.DirectBuffer;
import org.agrona.MutableDirectBuffer;
import org.agrona.concurrent.UnsafeBuffer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A worker's (or an admin's) connection to the parameter server. Not thread-safe: one per task thread.
 * Every call has a timeout. When a call gets no answer it says HELLO again once (the server may have
 * been restarted from a snapshot) and, if the server answers, repeats the request once; pushes are
 * idempotent per (epoch, step, worker), so the repeat is safe.
 *
 * <p>Worker loop (BSP): {@code r = pull(0, p)}; then for step = r.version()+1, ...: compute gradients on
 * {@code p}, {@code push(step, r.version(), g)}, {@code r = pull(sync().minVersionFor(step + 1), p)}. When
 * a pull returns {@link PullResult#layoutChanged()} (the model grew) or a push is rejected with
 * {@link RejectReason#STALE_EPOCH}, allocate buffers for {@link #layout()}, rebuild, pull again and
 * continue with step = version + 1.
 *
 * <p>Pipeline stages: when the server runs P > 1 stages, worker w is stage {@link #stage()} = w % P of
 * replica {@link #replica()} = w / P. Its pushes carry only the stage's parameter ranges
 * ({@code serverLayout().plan().stageRanges(stage())}; the rest of the gradient buffer is not read), and
 * {@link #pull} copies only those ranges, leaving the rest of the caller's buffer untouched;
 * {@link #pullAll} copies the whole vector (e.g. for evaluation). Build the worker's pipeline stage from
 * {@code serverLayout().stagePlan()}: it is the plan the server cut the chunks by.
 */
public final class ParameterServerClient implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(ParameterServerClient.class);

    /** Answer of a pull: the version and epoch now in the caller's buffer, or a layout change (buffer untouched). */
    public record PullResult(long version, int epoch, boolean layoutChanged) {
    }

    /** Answer of a push: accepted (or dropped as a duplicate of an earlier identical push), and the server's version then. */
    public record PushResult(boolean duplicate, long serverVersion) {
    }

    private final Context ctx;
    private final ClientExchange exchange;

    private ServerLayout layout;
    private ChunkPlan plan;
    private ParamLayout paramLayout;

    private ParameterServerClient(Context ctx) {
        this.ctx = ctx;
        this.exchange = new ClientExchange(ctx);
    }

    /** Validates the context, opens the channels and waits (connect timeout) for the server's WELCOME. */
    public static ParameterServerClient connect(Context ctx) {
        ctx.conclude();
        ParameterServerClient c = new ParameterServerClient(ctx);
        try {
            if (!c.hello(ctx.connectTimeoutMs)) {
                throw new ParameterServerTimeoutException(c.noServerMessage(ctx.connectTimeoutMs));
            }
            if (c.exchange.maxMessageLength() < MessageHeader.OVERHEAD + c.plan.chunkFloats() * 4) {
                throw new ConfigurationException(Configuration.TERM_LENGTH_PROP, "a term length whose max message ("
                        + c.exchange.maxMessageLength() + " bytes here) holds the server's chunks of " + c.plan.chunkFloats() * 4
                        + " bytes", ctx.termLength, "use the same term length on the server and the workers");
            }
            return c;
        } catch (RuntimeException e) {
            c.close();
            throw e;
        }
    }

    private String noServerMessage(long ms) {
        return "no parameter server answered on " + ctx.channel + " stream " + ctx.streamId + " within " + ms
                + " ms (expected a WELCOME for job '" + ctx.jobName + "'; the request channel was "
                + (exchange.requestChannelConnected() ? "connected" : "never connected: nothing is listening there")
                + "). Check that the server is running and listening on that channel (" + Configuration.CHANNEL_PROP
                + "), that job name and secret match (the server drops a HELLO that does not verify under the job secret and counts "
                + "it as rejections.handshake_failed), and that the server can reach this client's response channel " + exchange.responseChannel()
                + " (" + Configuration.CLIENT_RESPONSE_HOST_PROP + ")";
    }

    // ---- state --------------------------------------------------------------------------------

    /** The server's layout for the current epoch (config, frozen chains, shards, chunking, sync mode). */
    public ServerLayout serverLayout() {
        return layout;
    }

    public ParamLayout layout() {
        return paramLayout;
    }

    public ColmConfig config() {
        return layout.config();
    }

    public int epoch() {
        return layout.epoch();
    }

    public SyncPolicy sync() {
        return layout.sync();
    }

    public int workerId() {
        return ctx.workerId;
    }

    /** This worker's pipeline stage (worker id % stages; 0 without a pipeline), -1 for an admin client. */
    public int stage() {
        return layout.stageOf(ctx.workerId);
    }

    /** This worker's data-parallel replica (worker id / stages), -1 for an admin client. */
    public int replica() {
        return layout.replicaOf(ctx.workerId);
    }

    /** Messages from the server that failed validation or authentication (and were ignored). */
    public long badMessages() {
        return exchange.badMessages();
    }

    private void install(ServerLayout l) {
        if (layout != null && l.serverInstance() != layout.serverInstance()) {
            LOG.info("parameter server restarted (instance {} -> {}); it is at version {}, epoch {}", layout.serverInstance(),
                    l.serverInstance(), l.version(), l.epoch());
        }
        if (layout == null || l.epoch() != layout.epoch() || !Arrays.equals(l.shardBounds(), layout.shardBounds())
                || l.chunkFloats() != layout.chunkFloats() || !Arrays.equals(l.shardStages(), layout.shardStages())
                || l.pipelineStages() != layout.pipelineStages()) {
            paramLayout = l.paramLayout();
            plan = l.plan();
        }
        layout = l;
        exchange.epoch(l.epoch());
    }

    // ---- requests -----------------------------------------------------------------------------

    private boolean hello(long timeoutMs) {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        if (!exchange.handshake(deadline)) {
            return false;
        }
        if (exchange.replyType() == MessageType.REJECT) {
            throw exchange.rejected();
        }
        install(ServerLayout.fromJson(exchange.replyPayload()));
        return true;
    }

    /** Says HELLO again (e.g. after the server was restarted); true when it answered within the connect timeout. */
    public boolean reconnect() {
        return hello(ctx.connectTimeoutMs);
    }

    /** {@link #pull(long, Params, long)} with the request timeout. */
    public PullResult pull(long minVersion, Params into) {
        return pull(minVersion, into, ctx.requestTimeoutMs);
    }

    /**
     * Copies the parameters of the server's current version into {@code into}, first waiting (up to
     * {@code timeoutMs}) until that version is at least {@code minVersion}. If the model grew since this
     * client last saw it, {@code into} is left alone and the result says {@code layoutChanged}: allocate
     * {@code new Params(layout(), FLOAT)} and pull again. A worker of a pipeline stage gets only its stage's
     * parameter ranges (the rest of {@code into} is left as it was); see {@link #pullAll}.
     */
    public PullResult pull(long minVersion, Params into, long timeoutMs) {
        return pull(minVersion, viewOf(into, "pull target"), timeoutMs);
    }

    /** Pull into raw memory holding {@code layout().size()} little-endian floats. */
    public PullResult pull(long minVersion, MutableDirectBuffer into, long timeoutMs) {
        return pull(minVersion, into, timeoutMs, false);
    }

    /** {@link #pullAll(long, Params, long)} with the request timeout. */
    public PullResult pullAll(long minVersion, Params into) {
        return pullAll(minVersion, into, ctx.requestTimeoutMs);
    }

    /**
     * Like {@link #pull(long, Params, long)} but copies the whole parameter vector also for a worker of a
     * pipeline stage (the rank that evaluates needs every stage's parameters). Without a pipeline the same as pull.
     */
    public PullResult pullAll(long minVersion, Params into, long timeoutMs) {
        return pull(minVersion, viewOf(into, "pull target"), timeoutMs, true);
    }

    /** pullAll into raw memory holding {@code layout().size()} little-endian floats. */
    public PullResult pullAll(long minVersion, MutableDirectBuffer into, long timeoutMs) {
        return pull(minVersion, into, timeoutMs, true);
    }

    private PullResult pull(long minVersion, MutableDirectBuffer into, long timeoutMs, boolean all) {
        for (int attempt = 0; ; attempt++) {
            if (into.capacity() < plan.totalFloats() * 4) {
                throw new IllegalArgumentException("pull target holds " + into.capacity() / 4 + " floats, the server's epoch-"
                        + layout.epoch() + " model has " + plan.totalFloats() + "; allocate new Params(client.layout(), FLOAT)");
            }
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
            long corr = exchange.begin();
            exchange.expectPull(into instanceof UnsafeBuffer u ? u : new UnsafeBuffer(into), plan,
                    all || plan.stages() == 1 ? -1 : stage());
            UnsafeBuffer p = new UnsafeBuffer(new byte[8]);
            p.putLong(0, timeoutMs, ByteOrder.LITTLE_ENDIAN);
            boolean ok = exchange.send(MessageType.PULL, all ? MessageType.PULL_ALL : 0, 0, minVersion, corr, 0, 0, p, 0, 8, deadline)
                    && exchange.await(deadline);
            exchange.endPull();
            if (ok) {
                if (exchange.replyType() == MessageType.REJECT) {
                    throw exchange.rejected();
                }
                if ((exchange.replyFlags() & 1) != 0) {
                    install(ServerLayout.fromJson(exchange.replyPayload()));
                    return new PullResult(layout.version(), layout.epoch(), true);
                }
                return new PullResult(exchange.replyVersion(), exchange.replyEpoch(), false);
            }
            if (attempt == 0 && hello(ctx.connectTimeoutMs)) {
                continue;
            }
            throw new ParameterServerTimeoutException("worker " + ctx.workerId + ": pull of version >= " + minVersion
                    + " got no complete answer within " + timeoutMs + " ms" + (attempt == 0 ? " and the server did not answer a "
                    + "reconnect: " + noServerMessage(ctx.connectTimeoutMs) : " (twice; the server answered a reconnect). Under bsp/ssp "
                    + "the version comes only when every worker has pushed: check that all " + layout.workers()
                    + " workers are alive"));
        }
    }

    /** {@link #push(long, long, Params, long)} with the request timeout. */
    public PushResult push(long step, long baseVersion, Params gradients) {
        return push(step, baseVersion, gradients, ctx.requestTimeoutMs);
    }

    /**
     * Pushes this worker's gradient for {@code step} (1-based), computed on parameters of version
     * {@code baseVersion}, and waits for the server's ack. Throws {@link RequestRejectedException} when the
     * server refuses it (e.g. STALE_EPOCH after growth, NON_FINITE). A worker of a pipeline stage sends only
     * its stage's ranges of {@code gradients} (which still spans the whole layout).
     */
    public PushResult push(long step, long baseVersion, Params gradients, long timeoutMs) {
        if (gradients.layout().size() != plan.totalFloats()) {
            throw new IllegalArgumentException("gradients hold " + gradients.layout().size() + " floats, the server's epoch-"
                    + layout.epoch() + " model has " + plan.totalFloats() + "; pull the new layout and rebuild");
        }
        return push(step, baseVersion, viewOf(gradients, "gradients"), timeoutMs);
    }

    /** Push from raw memory holding {@code layout().size()} little-endian floats. */
    public PushResult push(long step, long baseVersion, DirectBuffer gradients, long timeoutMs) {
        if (ctx.workerId < 0) {
            throw new IllegalStateException("an admin client (worker id -1) cannot push; set Context.workerId");
        }
        for (int attempt = 0; ; attempt++) {
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
            long corr = exchange.begin();
            boolean sent = true;
            int stage = stage(); // 0 without a pipeline: every chunk
            int n = plan.stageChunkCount(stage);
            for (int k = 0; k < n && sent; k++) {
                int i = plan.stageChunk(stage, k);
                sent = exchange.send(MessageType.PUSH, 0, step, baseVersion, corr, i, n, gradients, (int) (plan.chunkOffset(i) * 4),
                        plan.chunkLength(i) * 4, deadline);
                if (k % 8 == 7) {
                    exchange.poll(4);
                    if (exchange.done()) {
                        break; // rejected early
                    }
                }
            }
            if (sent && exchange.await(deadline)) {
                if (exchange.replyType() == MessageType.REJECT) {
                    throw exchange.rejected();
                }
                return new PushResult(exchange.replyFlags() == 1, exchange.replyVersion());
            }
            if (attempt == 0 && hello(ctx.connectTimeoutMs)) {
                continue;
            }
            throw new ParameterServerTimeoutException("worker " + ctx.workerId + ": push of step " + step + " got no ack within "
                    + timeoutMs + " ms" + (attempt == 0 ? "; reconnect failed: " + noServerMessage(ctx.connectTimeoutMs)
                    : " (twice; the server answered a reconnect in between)"));
        }
    }

    /** Admin: grows the model by chains with these head counts; returns the server's reply (epoch, version, chains...). */
    public Map<String, Object> grow(List<Integer> added, boolean freezeOld, List<Double> lossWeights, long timeoutMs) {
        Map<String, Object> req = new LinkedHashMap<>();
        req.put("added", added);
        req.put("freeze_old", freezeOld);
        if (lossWeights != null) {
            req.put("loss_weights", lossWeights);
        }
        return exchange.admin(MessageType.GROW, req, timeoutMs);
    }

    /** Admin: snapshot now ({@code info} may carry tokens_seen, data_position); returns {snapshot, version, epoch}. */
    /** Registers what every later snapshot of the server carries (see ParameterServer#trainerInfo); admin clients only. */
    public Map<String, Object> trainerInfo(Map<String, Object> info, long step, long dataPosition, long tokensSeen, long windowsPerStep,
                                           long tokensPerStep, long timeoutMs) {
        Map<String, Object> cursor = new java.util.LinkedHashMap<>();
        cursor.put("step", step);
        cursor.put("data_position", dataPosition);
        cursor.put("tokens_seen", tokensSeen);
        cursor.put("windows_per_step", windowsPerStep);
        cursor.put("tokens_per_step", tokensPerStep);
        return exchange.admin(MessageType.TRAINER_INFO, Map.of("info", info, "cursor", cursor), timeoutMs);
    }

    public Map<String, Object> snapshot(Map<String, Object> info, long timeoutMs) {
        return exchange.admin(MessageType.SNAPSHOT, info == null ? Map.of() : info, timeoutMs);
    }

    /** Admin: the server's metrics. */
    public Map<String, Object> metrics(long timeoutMs) {
        return exchange.admin(MessageType.METRICS, null, timeoutMs);
    }

    /** A frame sealed under this client's session key with its next sequence number (tests of the server's input checks). */
    UnsafeBuffer sealedFrame(MessageType type, long job, int epoch, int worker, long step, long version, long corr, int chunkIndex,
                             int chunkCount, byte[] payload) {
        return exchange.sealedFrame(type, job, epoch, worker, step, version, corr, chunkIndex, chunkCount, payload);
    }

    /** Frames from the server that failed authentication, and those refused as replays (tests). */
    long badTagsForTests() {
        return exchange.badTags();
    }

    long replaysForTests() {
        return exchange.replays();
    }

    /** Sends raw, already-framed bytes (tests of the server's input checks); the tag is whatever the frame holds. */
    boolean sendRawFrame(DirectBuffer frame, int offset, int length, long timeoutMs) {
        return exchange.sendRawFrame(frame, offset, length, timeoutMs);
    }

    /** Waits for any reply to correlation {@code corr} (tests). */
    MessageType awaitReply(long corr, long timeoutMs) {
        return exchange.awaitReply(corr, timeoutMs);
    }

    int lastReplyFlags() {
        return exchange.replyFlags();
    }

    /** The last reply's payload as text, e.g. a REJECT's detail (tests). */
    String lastReplyText() {
        return exchange.replyText();
    }

    long jobIdForTests() {
        return exchange.jobId();
    }

    private static UnsafeBuffer viewOf(Params p, String what) {
        if (p.dataType() != org.nd4j.linalg.api.buffer.DataType.FLOAT) {
            throw new IllegalArgumentException(what + " must be float32 Params, got " + p.dataType());
        }
        return ParamsViews.view(p);
    }

    @Override
    public void close() {
        exchange.close();
    }

    /**
     * Client settings: the ones it shares with the server ({@link TransportContext}: job, secret, the server's channel and
     * stream, ...) and its own; defaults from {@link Configuration} (system properties or a properties object).
     */
    public static final class Context extends TransportContext<Context> {
        String responseHost;
        int responseStreamId;
        int workerId = -1;
        long connectTimeoutMs;
        long requestTimeoutMs;
        java.util.function.BooleanSupplier cancelled = () -> false;

        public Context() {
            this((Properties) null);
        }

        public Context(Properties p) {
            super(p);
            loadOwn();
        }

        /**
         * The settings shared with {@code shared} (e.g. a server's context, see ParameterServer.Context#clientContext()),
         * this client's own from the same properties.
         */
        public Context(TransportContext<?> shared) {
            super(shared);
            loadOwn();
        }

        private void loadOwn() {
            responseHost = Configuration.get(props, Configuration.CLIENT_RESPONSE_HOST_PROP, Configuration.CLIENT_RESPONSE_HOST_DEFAULT);
            responseStreamId = Configuration.getInt(props, Configuration.CLIENT_RESPONSE_STREAM_ID_PROP,
                    Configuration.CLIENT_RESPONSE_STREAM_ID_DEFAULT);
            connectTimeoutMs = Configuration.getLong(props, Configuration.CONNECT_TIMEOUT_PROP, Configuration.CONNECT_TIMEOUT_DEFAULT);
            requestTimeoutMs = Configuration.getLong(props, Configuration.REQUEST_TIMEOUT_PROP, Configuration.REQUEST_TIMEOUT_DEFAULT);
        }

        public Context responseHost(String v) { responseHost = v; return this; }
        public Context responseStreamId(int v) { responseStreamId = v; return this; }
        /** 0..W-1 for a worker, -1 for an admin client (grow, snapshot, metrics). */
        public Context workerId(int v) { workerId = v; return this; }
        public Context connectTimeoutMs(long v) { connectTimeoutMs = v; return this; }
        public Context requestTimeoutMs(long v) { requestTimeoutMs = v; return this; }
        /** Ends any wait for a reply with a ParameterServerException once this says so (e.g. the Spark task was killed). */
        public Context cancelledWhen(java.util.function.BooleanSupplier v) { cancelled = v; return this; }

        public Context conclude() {
            if (connectTimeoutMs < 1 || requestTimeoutMs < 1) {
                throw new ConfigurationException(connectTimeoutMs < 1 ? Configuration.CONNECT_TIMEOUT_PROP : Configuration.REQUEST_TIMEOUT_PROP,
                        "a positive number of milliseconds", connectTimeoutMs < 1 ? connectTimeoutMs : requestTimeoutMs, "fix the value");
            }
            if (workerId < -1) {
                throw new ConfigurationException("workerId", "0..W-1, or -1 for an admin client", workerId, "fix the worker id");
            }
            concludeTransport(4);
            return this;
        }
    }
}
