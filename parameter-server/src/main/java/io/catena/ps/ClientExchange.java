package io.catena.ps;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.aeron.Aeron;
import io.aeron.DirectBufferVector;
import io.aeron.ExclusivePublication;
import io.aeron.FragmentAssembler;
import io.aeron.Subscription;
import io.aeron.logbuffer.Header;
import io.catena.ps.protocol.ChunkPlan;
import io.catena.ps.protocol.Framer;
import io.catena.ps.protocol.Handshake;
import io.catena.ps.protocol.KeySchedule;
import io.catena.ps.protocol.MessageHeader;
import io.catena.ps.protocol.MessageType;
import io.catena.ps.protocol.RejectReason;
import io.catena.ps.protocol.TrafficKey;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import org.agrona.CloseHelper;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.IdleStrategy;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * A {@link ParameterServerClient}'s Aeron channels to the server and the one request in flight: runs the handshake
 * ({@link Handshake}), seals and sends the request's frames and collects the reply to it, decrypting a pull's
 * parameter chunks straight into the pull's target. Frames that fail validation, authentication or the replay
 * check are counted and ignored; late answers to earlier requests are dropped. Uses only the protocol package and
 * the shared transport plumbing, nothing of the server. Not thread-safe.
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
    private final Framer framer;
    private final byte[] secret;
    private final IdleStrategy idle;
    private final long jobId;
    /** Model epoch the requests are for (that of the server layout the client holds; 0 before the first). */
    private int epoch;
    private long nextCorrelation = ThreadLocalRandom.current().nextLong(1, Long.MAX_VALUE / 2);
    private long badMessages;
    private long badTags;
    private long replays;
    /** Session keys: sending (client to server) and receiving (server to client); null before a handshake completes. */
    private TrafficKey c2s;
    private TrafficKey s2c;
    /** The server's broadcast key (parameter chunks), kept across handshakes with the same server process. */
    private TrafficKey broadcast;
    private byte[] broadcastNonce;

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

    /** Opens the request publication and the response subscription (a concluded context). */
    ClientExchange(ParameterServerClient.Context ctx) {
        this.ctx = ctx;
        this.secret = ctx.secret.clone();
        this.framer = new Framer(KeySchedule.handshakeKey(secret));
        this.idle = Transport.idleStrategy(ctx.idleStrategy, Configuration.IDLE_STRATEGY_PROP);
        this.jobId = ctx.jobId;
        SharedDriver d = null;
        Aeron a = null;
        Subscription sub = null;
        ExclusivePublication pub = null;
        try {
            d = ctx.embeddedDriver ? SharedDriver.acquire(ctx.aeronDirectoryName, ctx.termLength, ctx.idleStrategy) : null;
            a = Aeron.connect(new Aeron.Context().aeronDirectoryName(ctx.aeronDirectoryName).driverTimeoutMs(10_000));
            sub = responseSubscription(a);
            pub = a.addExclusivePublication(Transport.udpParams(ctx.channel, ctx.udpChannelParams), ctx.streamId);
        } catch (RuntimeException e) {
            CloseHelper.quietCloseAll(pub, sub, a, d);
            if (e instanceof ParameterServerException) {
                throw e;
            }
            throw new ParameterServerException("client cannot open Aeron channels (Aeron dir " + ctx.aeronDirectoryName + ", server "
                    + ctx.channel + "): " + e.getMessage() + "; check " + Configuration.AERON_DIR_PROP + " and "
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
        if (ctx.channel.startsWith("aeron:ipc")) {
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

    /** Frames whose AES-GCM tag (or handshake HMAC) did not verify. */
    long badTags() {
        return badTags;
    }

    /** Frames refused by the replay window. */
    long replays() {
        return replays;
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
        long repliesLostSince = 0;
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
                if (publication.isConnected()) {
                    disconnectedSince = 0;
                } else if (disconnectedSince == 0) {
                    disconnectedSince = now;
                } else if (now - disconnectedSince > DEAD_SERVER_NS) {
                    throw new ParameterServerGoneException("the parameter server at " + ctx.channel + " is gone: its Aeron "
                            + "connection dropped " + TimeUnit.NANOSECONDS.toMillis(now - disconnectedSince) + " ms ago and did "
                            + "not come back (" + Configuration.DEAD_SERVER_PROP + "). If it crashed, restart it from its last "
                            + "snapshot (catena ps --conf F --restore <snapshot root>) and resume the job with --resume");
                }
                // the server's replies come on its publication to us: a server restarted (e.g. restored from a snapshot) on
                // the same address takes our requests but never answers a session it does not know; stop waiting, so the
                // caller says HELLO again at once (a HELLO's reply stream only appears with its answer)
                if (lastSent != MessageType.HELLO && publication.isConnected() && !subscription.isConnected()) {
                    if (repliesLostSince == 0) {
                        repliesLostSince = now;
                    } else if (now - repliesLostSince > DEAD_SERVER_NS) {
                        return false;
                    }
                } else {
                    repliesLostSince = 0;
                }
                idle.idle();
            }
        }
        return true;
    }

    /**
     * A request to a server whose address stopped answering (the request channel disconnected, e.g. it crashed): waits
     * for the connection; false at the deadline; a connection gone for longer than catena.ps.dead.server.ms fails
     * saying the server is gone.
     */
    private boolean awaitConnected(long deadlineNs) {
        long since = System.nanoTime();
        while (!publication.isConnected()) {
            long now = System.nanoTime();
            if (now - since > DEAD_SERVER_NS) {
                throw new ParameterServerGoneException("the parameter server at " + ctx.channel + " is gone: nothing took "
                        + "this client's " + lastSent + " at its address for " + TimeUnit.NANOSECONDS.toMillis(now - since) + " ms ("
                        + Configuration.DEAD_SERVER_PROP + "). If it crashed, restart it from its last snapshot (catena ps --conf F "
                        + "--restore <snapshot root>) and resume the job with --resume");
            }
            if (now - deadlineNs > 0) {
                return false;
            }
            if (ctx.cancelled.getAsBoolean()) {
                throw new ParameterServerException("worker " + ctx.workerId + ": stopped sending " + lastSent + ": the caller was "
                        + "cancelled");
            }
            idle.idle();
        }
        idle.reset();
        return true;
    }

    /** Polls a few frames without waiting (an early REJECT while a push is still being sent). */
    void poll(int fragmentLimit) {
        subscription.poll(assembler, fragmentLimit);
    }

    /**
     * Seals and sends one request frame whose payload is a region of {@code payload} (null: none), until the deadline:
     * under the session key, or the handshake key before the handshake completed.
     */
    boolean send(MessageType type, int flags, long step, long version, long corr, int chunkIndex, int chunkCount,
                 DirectBuffer payload, int payloadOffset, int payloadLength, long deadlineNs) {
        lastSent = type;
        if (type != MessageType.HELLO && !awaitConnected(deadlineNs)) {
            return false;
        }
        framer.header(type).flags(flags).jobId(jobId).epoch(epoch)
                .workerId(ctx.workerId).step(step).version(version).correlationId(corr).chunkIndex(chunkIndex)
                .chunkCount(chunkCount);
        return Transport.offer(publication, framer.seal(c2s, payload, payloadOffset, payloadLength), deadlineNs, idle);
    }

    /**
     * The handshake: HELLO, then the server's CHALLENGE (its proof is checked: a server without the job secret fails
     * here with HANDSHAKE_FAILED), PROOF under the new session key, WELCOME. False when an answer did not come by the
     * deadline; otherwise the reply is the WELCOME or a REJECT.
     */
    boolean handshake(long deadlineNs) {
        c2s = null;
        s2c = null;
        byte[] clientNonce = KeySchedule.randomNonce();
        byte[] hello = Handshake.helloPayload(ctx.responseStreamId, responseChannel, clientNonce);
        long corr = begin();
        if (!send(MessageType.HELLO, 0, 0, 0, corr, 0, 0, new UnsafeBuffer(hello), 0, hello.length, deadlineNs) || !await(deadlineNs)) {
            return false;
        }
        if (replyType != MessageType.CHALLENGE) {
            return true; // a REJECT
        }
        Handshake.Challenge ch = Handshake.parseChallenge(replyPayload);
        if (ch == null || ch.rekeyShift() < KeySchedule.MIN_REKEY_SHIFT || ch.rekeyShift() > KeySchedule.MAX_REKEY_SHIFT) {
            throw new RequestRejectedException(RejectReason.HANDSHAKE_FAILED, "the server's CHALLENGE is malformed ("
                    + (replyPayload == null ? 0 : replyPayload.length) + " bytes); run the same Catena version on server and workers");
        }
        KeySchedule keys = KeySchedule.session(secret, jobId, clientNonce, ch.serverNonce(), ch.rekeyShift());
        byte[] transcript = Handshake.transcript(jobId, ctx.workerId, responseChannel, clientNonce, ch.serverNonce(),
                ch.broadcastNonce(), ch.rekeyShift());
        if (!keys.verifyProof(Handshake.SERVER, transcript, ch.serverProof())) {
            throw new RequestRejectedException(RejectReason.HANDSHAKE_FAILED, "the server at " + ctx.channel + " could not "
                    + "prove it holds job '" + ctx.jobName + "''s secret (its proof over this handshake does not verify); check "
                    + "that server and workers use the same secret (" + Configuration.SECRET_FILE_PROP + ")");
        }
        if (broadcast == null || !Arrays.equals(broadcastNonce, ch.broadcastNonce())) {
            broadcastNonce = ch.broadcastNonce();
            broadcast = KeySchedule.broadcast(secret, jobId, broadcastNonce, ch.rekeyShift()).traffic(KeySchedule.Direction.BROADCAST);
        }
        c2s = keys.traffic(KeySchedule.Direction.CLIENT_TO_SERVER);
        s2c = keys.traffic(KeySchedule.Direction.SERVER_TO_CLIENT);
        byte[] proof = keys.proof(Handshake.CLIENT, transcript);
        corr = begin();
        return send(MessageType.PROOF, 0, 0, 0, corr, 0, 0, new UnsafeBuffer(proof), 0, proof.length, deadlineNs) && await(deadlineNs);
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

    /**
     * A frame sealed under this client's session key with its next sequence number, as {@link #send} would send it
     * (tests of the server's input checks: send it with {@link #sendRawFrame}, tamper with it, send it twice).
     */
    UnsafeBuffer sealedFrame(MessageType type, long job, int frameEpoch, int worker, long step, long version, long corr,
                             int chunkIndex, int chunkCount, byte[] payload) {
        UnsafeBuffer b = new UnsafeBuffer(java.nio.ByteBuffer.allocateDirect(MessageHeader.OVERHEAD + payload.length));
        framer.header(type).jobId(job).epoch(frameEpoch).workerId(worker).step(step).version(version).correlationId(corr)
                .chunkIndex(chunkIndex).chunkCount(chunkCount);
        framer.sealInto(c2s, b, 0, new UnsafeBuffer(payload), 0, payload.length);
        return b;
    }

    /** Sends raw, already-framed bytes (tests of the server's input checks); the tag is whatever the frame holds. */
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
        if (rx.validate(length) != null) {
            badMessages++;
            return;
        }
        MessageType t = rx.type();
        int kind = rx.keyKind();
        DirectBuffer frame = buffer;
        boolean inPlace = false;
        Framer.Result r;
        if (kind == MessageHeader.KEY_HANDSHAKE) {
            // before the session keys: only a CHALLENGE or a REJECT of the HELLO, under the secret's handshake key
            r = t == MessageType.CHALLENGE || t == MessageType.REJECT ? framer.verifyHandshake(buffer, offset, length) : Framer.Result.BAD_TAG;
        } else {
            TrafficKey key = kind == MessageHeader.KEY_SESSION ? s2c : broadcast;
            if (key == null) {
                badMessages++;
                return;
            }
            int at = t == MessageType.PARAMS ? paramsSlot(kind) : -1;
            if (at >= 0) { // decrypt the chunk straight into the pull's target
                r = framer.open(key, buffer, offset, length, pullTarget, at);
                inPlace = true;
            } else {
                r = framer.open(key, buffer, offset, length);
                if (r == Framer.Result.OK) {
                    frame = framer.opened();
                    rx.wrap(frame, 0);
                }
            }
        }
        if (r != Framer.Result.OK) {
            badMessages++;
            if (r == Framer.Result.REPLAY) {
                replays++;
            } else {
                badTags++;
            }
            return;
        }
        // a REJECT authenticated with the secret may carry the server's own job id (it tells us we asked for another job)
        if (rx.jobId() != jobId && t != MessageType.REJECT) {
            badMessages++;
            return;
        }
        if (t == MessageType.PARAMS && kind == MessageHeader.KEY_BROADCAST) {
            if (!done) {
                onParams(frame, inPlace); // sealed once for every worker: names no request, PULL_BEGIN did
            }
            return;
        }
        if (rx.correlationId() != awaited || done) {
            return; // a late answer to an earlier request
        }
        switch (t) {
            case PULL_BEGIN -> onPullBegin(frame, t);
            case PARAMS -> onParams(frame, inPlace);
            default -> finish(frame, t);
        }
    }

    /**
     * Where the PARAMS frame {@code rx} (not authenticated yet) may be decrypted in place: its byte offset in the pull's
     * target when it is a chunk the pull in flight still wants, else -1. Changes nothing.
     */
    private int paramsSlot(int kind) {
        if (pullTarget == null || pullExpected < 0 || done || rx.version() != replyVersion
                || (kind == MessageHeader.KEY_SESSION && rx.correlationId() != awaited)) {
            return -1;
        }
        int i = rx.chunkIndex();
        ChunkPlan plan = pullPlan;
        if (i < 0 || i >= plan.chunks() || pullSeen[i] || (pullStage >= 0 && plan.chunkStage(i) != pullStage)
                || rx.payloadLength() != plan.chunkLength(i) * 4) {
            return -1;
        }
        return (int) (plan.chunkOffset(i) * 4);
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

    private void onParams(DirectBuffer buffer, boolean inPlace) {
        int i = rx.chunkIndex();
        ChunkPlan plan = pullPlan;
        if (pullExpected < 0 || rx.version() != replyVersion || i < 0 || i >= plan.chunks() || pullSeen[i]
                || (pullStage >= 0 && plan.chunkStage(i) != pullStage) || rx.payloadLength() != plan.chunkLength(i) * 4) {
            badMessages++;
            return;
        }
        if (!inPlace) {
            pullTarget.putBytes((int) (plan.chunkOffset(i) * 4), buffer, rx.payloadOffset(), rx.payloadLength());
        }
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
