package io.catena.ps;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.aeron.Aeron;
import io.aeron.DirectBufferVector;
import io.aeron.ExclusivePublication;
import io.aeron.FragmentAssembler;
import io.aeron.Subscription;
import io.aeron.logbuffer.Header;
import io.catena.ps.protocol.ChunkPlan;
import io.catena.ps.protocol.MessageAuthenticator;
import io.catena.ps.protocol.MessageHeader;
import io.catena.ps.protocol.MessageType;
import io.catena.ps.protocol.RejectReason;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import org.agrona.CloseHelper;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.IdleStrategy;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * A {@link ParameterServerClient}'s Aeron channels to the server and the one request in flight: signs and sends
 * the request's frames and collects the reply to it, assembling a pull's parameter chunks into the pull's target.
 * Frames that fail validation or authentication are counted and ignored; late answers to earlier requests are
 * dropped. Not thread-safe.
 */
final class ClientExchange implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final ParameterServerClient.Context ctx;
    private final SharedDriver driver;
    private final Aeron aeron;
    private final Subscription subscription;
    private final ExclusivePublication publication;
    private final String responseChannel;
    private final FragmentAssembler assembler;
    private final MessageAuthenticator auth;
    private final IdleStrategy idle;
    private final long jobId;
    /** Model epoch the requests are for (that of the server layout the client holds; 0 before the first). */
    private int epoch;
    private long nextCorrelation = ThreadLocalRandom.current().nextLong(1, Long.MAX_VALUE / 2);
    private long badMessages;

    // reply state of the request in flight
    private long awaited = Long.MIN_VALUE;
    private MessageType replyType;
    private int replyFlags;
    private long replyVersion;
    private int replyEpoch;
    private byte[] replyPayload;
    private boolean done;
    private UnsafeBuffer pullTarget;
    private ChunkPlan pullPlan;
    private boolean[] pullSeen;
    /** Stage whose chunks the pull in flight wants; -1: every chunk. */
    private int pullStage = -1;
    private int pullExpected = -1;
    private int pullReceived;

    private final MessageHeader rx = new MessageHeader();
    private final OutgoingFrame tx = new OutgoingFrame();

    /** Opens the request publication and the response subscription (a concluded context). */
    ClientExchange(ParameterServerClient.Context ctx) {
        this.ctx = ctx;
        this.auth = new MessageAuthenticator(ctx.secret);
        this.idle = Transport.idleStrategy(ctx.idleStrategy, Configuration.IDLE_STRATEGY_PROP);
        this.jobId = MessageAuthenticator.jobId(ctx.jobName);
        SharedDriver d = null;
        Aeron a = null;
        Subscription sub = null;
        ExclusivePublication pub = null;
        try {
            d = ctx.embeddedDriver ? SharedDriver.acquire(ctx.aeronDirectoryName, ctx.termLength, ctx.idleStrategy) : null;
            a = Aeron.connect(new Aeron.Context().aeronDirectoryName(ctx.aeronDirectoryName).driverTimeoutMs(10_000));
            sub = responseSubscription(a);
            pub = a.addExclusivePublication(Transport.udpParams(ctx.serverChannel, ctx.udpChannelParams), ctx.serverStreamId);
        } catch (RuntimeException e) {
            CloseHelper.quietCloseAll(pub, sub, a, d);
            if (e instanceof ParameterServerException) {
                throw e;
            }
            throw new ParameterServerException("client cannot open Aeron channels (Aeron dir " + ctx.aeronDirectoryName + ", server "
                    + ctx.serverChannel + "): " + e.getMessage() + "; check " + Configuration.AERON_DIR_PROP + " and "
                    + Configuration.CHANNEL_PROP, e);
        }
        this.driver = d;
        this.aeron = a;
        this.subscription = sub;
        this.publication = pub;
        this.responseChannel = subscription.channel().startsWith("aeron:ipc") ? subscription.channel() : subscriptionChannel(sub);
        this.assembler = new FragmentAssembler(this::onMessage);
    }

    /** The subscription the server answers on; a UDP one binds an ephemeral port (within the connect timeout). */
    private Subscription responseSubscription(Aeron a) {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(ctx.connectTimeoutMs);
        if (ctx.serverChannel.startsWith("aeron:ipc")) {
            String resp = "aeron:ipc?session-id=" + ThreadLocalRandom.current().nextInt(1, Integer.MAX_VALUE);
            return a.addSubscription(resp, ctx.responseStreamId);
        }
        String ch = Transport.udpParams("aeron:udp?endpoint=" + ctx.responseHost + ":0", ctx.udpChannelParams);
        Subscription sub = a.addSubscription(ch, ctx.responseStreamId);
        try {
            while (sub.tryResolveChannelEndpointPort() == null) {
                if (System.nanoTime() - deadline > 0) {
                    throw new ParameterServerTimeoutException("the response subscription on " + ch + " did not bind a port within "
                            + ctx.connectTimeoutMs + " ms; check " + Configuration.CLIENT_RESPONSE_HOST_PROP);
                }
                idle.idle();
            }
        } catch (RuntimeException e) {
            CloseHelper.quietClose(sub);
            throw e;
        }
        return sub;
    }

    private static String subscriptionChannel(Subscription sub) {
        String r = sub.tryResolveChannelEndpointPort();
        return r != null ? r : sub.channel();
    }

    /** The channel (with its resolved port) the server sends this client's replies to. */
    String responseChannel() {
        return responseChannel;
    }

    boolean requestChannelConnected() {
        return publication.isConnected();
    }

    int maxMessageLength() {
        return publication.maxMessageLength();
    }

    long jobId() {
        return jobId;
    }

    long badMessages() {
        return badMessages;
    }

    /** Sets the model epoch that the following requests are for. */
    void epoch(int epoch) {
        this.epoch = epoch;
    }

    MessageType replyType() {
        return replyType;
    }

    int replyFlags() {
        return replyFlags;
    }

    long replyVersion() {
        return replyVersion;
    }

    int replyEpoch() {
        return replyEpoch;
    }

    byte[] replyPayload() {
        return replyPayload;
    }

    /** The reply's payload as text, e.g. a REJECT's detail. */
    String replyText() {
        return replyPayload == null ? "" : new String(replyPayload, StandardCharsets.UTF_8);
    }

    /** Whether the reply to the request in flight is complete. */
    boolean done() {
        return done;
    }

    RequestRejectedException rejected() {
        return new RequestRejectedException(RejectReason.of(replyFlags), replyText());
    }

    /** Starts a request: a new correlation id, whose reply replaces the last one. */
    long begin() {
        awaited = nextCorrelation++;
        done = false;
        replyType = null;
        replyPayload = null;
        pullExpected = -1;
        pullReceived = 0;
        return awaited;
    }

    /** The request in flight is a pull: its PARAMS chunks (of {@code stage}, -1: all) go into {@code target}. */
    void expectPull(UnsafeBuffer target, ChunkPlan plan, int stage) {
        pullTarget = target;
        pullPlan = plan;
        pullSeen = new boolean[plan.chunks()];
        pullStage = stage;
    }

    /** The pull is over (answered or not): later chunks go nowhere. */
    void endPull() {
        pullTarget = null;
    }

    /** The type of the last request sent (what {@link #await} waits for the answer to). */
    private MessageType lastSent;

    /** How long the request channel may stay disconnected while a reply is awaited (catena.ps.dead.server.ms). */
    private static final long DEAD_SERVER_NS = TimeUnit.MILLISECONDS.toNanos(
            Configuration.getLong(null, Configuration.DEAD_SERVER_PROP, Configuration.DEAD_SERVER_DEFAULT));

    /**
     * Polls for the reply until it is complete; false at the deadline. A server that is gone (the request channel lost
     * its connection and did not regain it within catena.ps.dead.server.ms) fails at once with a message that says so.
     */
    boolean await(long deadlineNs) {
        idle.reset();
        long disconnectedSince = 0;
        while (!done) {
            int n = subscription.poll(assembler, 16);
            if (n == 0) {
                long now = System.nanoTime();
                if (now - deadlineNs > 0) {
                    return false;
                }
                if (ctx.cancelled.getAsBoolean()) {
                    throw new ParameterServerException("worker " + ctx.workerId + ": stopped waiting for the parameter server's reply "
                            + "to " + lastSent + ": the caller was cancelled");
                }
                // the server's replies come on its publication to us: a server restarted (e.g. restored from a snapshot) on
                // the same address takes our requests but never answers a session it does not know, so a lost reply
                // stream counts as a lost server too (a HELLO's reply stream only appears with its WELCOME)
                boolean repliesLost = lastSent != MessageType.HELLO && !subscription.isConnected();
                if (publication.isConnected() && !repliesLost) {
                    disconnectedSince = 0;
                } else if (disconnectedSince == 0) {
                    disconnectedSince = now;
                } else if (now - disconnectedSince > DEAD_SERVER_NS) {
                    throw new ParameterServerGoneException("the parameter server at " + ctx.serverChannel + " is gone"
                            + (publication.isConnected() ? " or was restarted" : "") + ": its Aeron "
                            + "connection dropped " + TimeUnit.NANOSECONDS.toMillis(now - disconnectedSince) + " ms ago and did "
                            + "not come back (" + Configuration.DEAD_SERVER_PROP + "). If it crashed, restart it from its last "
                            + "snapshot (catena ps --conf F --restore <snapshot root>) and resume the job with --resume");
                }
                idle.idle();
            }
        }
        return true;
    }

    /** Polls a few frames without waiting (an early REJECT while a push is still being sent). */
    void poll(int fragmentLimit) {
        subscription.poll(assembler, fragmentLimit);
    }

    /** Signs and sends one request frame whose payload is a region of {@code payload} (null: none), until the deadline. */
    boolean send(MessageType type, int flags, long step, long version, long corr, int chunkIndex, int chunkCount,
                 DirectBuffer payload, int payloadOffset, int payloadLength, long deadlineNs) {
        lastSent = type;
        tx.header(type).flags(flags).jobId(jobId).epoch(epoch)
                .workerId(ctx.workerId).step(step).version(version).correlationId(corr).chunkIndex(chunkIndex)
                .chunkCount(chunkCount).payloadLength(payloadLength);
        auth.begin();
        if (payloadLength > 0) {
            auth.update(payload, payloadOffset, payloadLength); // payload first, then header (protocol package doc)
        }
        return Transport.offer(publication, tx.sign(auth, payload, payloadOffset, payloadLength), deadlineNs, idle);
    }

    /** An admin request (GROW, SNAPSHOT, METRICS) with a JSON body (null: none); returns the JSON reply. */
    @SuppressWarnings("unchecked")
    Map<String, Object> admin(MessageType type, Map<String, Object> body, long timeoutMs) {
        byte[] b;
        try {
            b = body == null ? new byte[0] : JSON.writeValueAsBytes(body);
        } catch (Exception e) {
            throw new IllegalArgumentException("cannot encode " + body, e);
        }
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        long corr = begin();
        if (!send(type, 0, 0, 0, corr, 0, 0, new UnsafeBuffer(b), 0, b.length, deadline) || !await(deadline)) {
            throw new ParameterServerTimeoutException(type + " got no answer within " + timeoutMs + " ms; "
                    + (type == MessageType.GROW ? "growth waits for the in-flight step: are all workers pushing?" : "is the server running?"));
        }
        if (replyType == MessageType.REJECT) {
            throw rejected();
        }
        try {
            return JSON.readValue(replyPayload, Map.class);
        } catch (Exception e) {
            throw new ParameterServerException("server's " + type + " reply is not JSON: " + e.getMessage(), e);
        }
    }

    /** Sends raw, already-framed bytes (tests of the server's input checks); the MAC is whatever the frame holds. */
    boolean sendRawFrame(DirectBuffer frame, int offset, int length, long timeoutMs) {
        return Transport.offer(publication, new DirectBufferVector[] {new DirectBufferVector(frame, offset, length)},
                System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs), idle);
    }

    /** Waits for any reply to correlation {@code corr} (tests). */
    MessageType awaitReply(long corr, long timeoutMs) {
        awaited = corr;
        done = false;
        return await(System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs)) ? replyType : null;
    }

    private void onMessage(DirectBuffer buffer, int offset, int length, Header header) {
        rx.wrap(buffer, offset);
        // a REJECT authenticated with the secret may carry the server's own job id (it tells us we asked for another job)
        if (rx.validate(length) != null || !auth.verify(buffer, offset, length)
                || (rx.jobId() != jobId && rx.type() != MessageType.REJECT)) {
            badMessages++;
            return;
        }
        if (rx.correlationId() != awaited || done) {
            return; // a late answer to an earlier request
        }
        MessageType t = rx.type();
        switch (t) {
            case PULL_BEGIN -> onPullBegin(buffer, t);
            case PARAMS -> onParams(buffer);
            default -> finish(buffer, t);
        }
    }

    private void onPullBegin(DirectBuffer buffer, MessageType t) {
        if ((rx.flags() & 1) != 0 || rx.chunkCount() == 0) {
            finish(buffer, t);
        } else if (pullTarget == null
                || rx.chunkCount() != (pullStage < 0 ? pullPlan.chunks() : pullPlan.stageChunkCount(pullStage))) {
            badMessages++;
        } else {
            pullExpected = rx.chunkCount();
            replyVersion = rx.version();
            replyEpoch = rx.epoch();
        }
    }

    private void onParams(DirectBuffer buffer) {
        int i = rx.chunkIndex();
        ChunkPlan plan = pullPlan;
        if (pullExpected < 0 || rx.version() != replyVersion || i < 0 || i >= plan.chunks() || pullSeen[i]
                || (pullStage >= 0 && plan.chunkStage(i) != pullStage) || rx.payloadLength() != plan.chunkLength(i) * 4) {
            badMessages++;
            return;
        }
        pullTarget.putBytes((int) (plan.chunkOffset(i) * 4), buffer, rx.payloadOffset(), rx.payloadLength());
        pullSeen[i] = true;
        if (++pullReceived == pullExpected) {
            replyType = MessageType.PARAMS;
            replyFlags = 0;
            done = true;
        }
    }

    private void finish(DirectBuffer buffer, MessageType t) {
        replyType = t;
        replyFlags = rx.flags();
        replyVersion = rx.version();
        replyEpoch = rx.epoch();
        replyPayload = new byte[rx.payloadLength()];
        buffer.getBytes(rx.payloadOffset(), replyPayload);
        done = true;
    }

    @Override
    public void close() {
        CloseHelper.quietCloseAll(publication, subscription, aeron, driver);
    }
}
