package io.catena.ps;

import io.aeron.Aeron;
import io.aeron.ExclusivePublication;
import io.aeron.FragmentAssembler;
import io.aeron.Image;
import io.aeron.Subscription;
import io.aeron.logbuffer.Header;
import io.catena.model.ParamLayout;
import io.catena.model.io.TrainingState;
import io.catena.ps.protocol.ChunkPlan;
import io.catena.ps.protocol.Framer;
import io.catena.ps.protocol.Handshake;
import io.catena.ps.protocol.KeySchedule;
import io.catena.ps.protocol.MessageHeader;
import io.catena.ps.protocol.MessageType;
import io.catena.ps.protocol.RejectReason;
import io.catena.ps.protocol.TrafficKey;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.Agent;
import org.agrona.concurrent.UnsafeBuffer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The server's only thread of control (an Agrona agent): runs the handshakes, opens (authenticates, checks for replay,
 * decrypts) every frame, keeps the clients' sessions and hands each request to its part: pushes to the {@link GradientAccumulator} (which applies AdamW per
 * shard to the {@link ServerModel}), pulls to the {@link PullServer}, growth to {@link ChainGrowth} and snapshots
 * to the {@link SnapshotWriter}. Nothing here is touched by another thread except through {@link #submit} and the
 * metrics.
 */
final class ServerConductor implements Agent {
    private static final Logger LOG = LoggerFactory.getLogger(ServerConductor.class);

    private final ParameterServer.Context ctx;
    private final Aeron aeron;
    private final Subscription subscription;
    private final FragmentAssembler assembler;
    private final Framer framer;
    private final byte[] broadcastNonce = KeySchedule.randomNonce();
    private final ServerMetrics metrics;
    private final Queue<Consumer<ServerConductor>> commands = new ConcurrentLinkedQueue<>();
    private final Queue<Runnable> completions = new ConcurrentLinkedQueue<>();
    private final Queue<Integer> lostImages = new ConcurrentLinkedQueue<>();
    private final int workerCount;
    private final int stages;

    private final ServerModel model;
    private final ResponseSender sender;
    private final GradientAccumulator accumulator;
    private final PullServer pulls;
    private final ChainGrowth growth;
    private final SnapshotWriter snapshots;

    private final Map<Integer, ClientSession> sessions = new HashMap<>();
    private final ClientSession[] workerSessions;

    // receive scratch
    private final MessageHeader rx = new MessageHeader();

    ServerConductor(ParameterServer.Context ctx, Aeron aeron) {
        this.ctx = ctx;
        this.aeron = aeron;
        this.framer = new Framer(KeySchedule.handshakeKey(ctx.secret));
        this.workerCount = ctx.workers;
        this.stages = ctx.pipelineStages;
        this.metrics = new ServerMetrics(stages);
        this.workerSessions = new ClientSession[workerCount];
        this.model = new ServerModel(ctx);
        this.sender = new ResponseSender(ctx, framer, metrics, model, completions);
        TrafficKey broadcast = KeySchedule.broadcast(ctx.secret, ctx.jobId, broadcastNonce, ctx.rekeyShift)
                .traffic(KeySchedule.Direction.BROADCAST);
        this.accumulator = new GradientAccumulator(ctx, model, metrics, sender, this::afterPublish);
        this.pulls = new PullServer(ctx, model, sender, metrics, framer, new SealedParams(broadcast));
        this.growth = new ChainGrowth(ctx, model, accumulator, pulls, sender);
        this.snapshots = new SnapshotWriter(ctx, model, metrics, sender, completions);
        String channel = Transport.udpParams(ctx.channel, ctx.udpChannelParams);
        this.subscription = aeron.addSubscription(channel, ctx.streamId, img -> { }, this::onImageLost);
        this.assembler = new FragmentAssembler(this::onMessage);
    }

    ParamLayout layout() {
        return model.layout();
    }

    ChunkPlan plan() {
        return model.plan();
    }

    long version() {
        return model.version();
    }

    int epoch() {
        return model.epoch();
    }

    ServerMetrics metrics() {
        return metrics;
    }

    void submit(Consumer<ServerConductor> command) {
        commands.add(command);
    }

    void requestGrow(List<Integer> added, boolean freezeOld, long seed, List<Double> weights,
                     CompletableFuture<Map<String, Object>> future) {
        growth.requestGrow(added, freezeOld, seed, weights, future);
    }

    void setTrainerInfo(Map<String, Object> info, SnapshotWriter.TrainerCursor cursor) {
        snapshots.setTrainerInfo(info, cursor);
    }

    void requestSnapshot(Map<String, Object> trainerInfo, CompletableFuture<String> future) {
        snapshots.requestSnapshot(trainerInfo, future);
    }

    TrainingState copyState(Map<String, Object> trainerInfo) {
        return model.copyState(trainerInfo);
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
            ClientSession s = sessions.get(lost);
            if (s != null) {
                closeSession(s, "its Aeron image went away");
            }
            work++;
        }
        work += subscription.poll(assembler, 16);
        work += pollSessions();
        long now = System.nanoTime();
        work += pulls.expire(now);
        work += growth.expire(now);
        return work;
    }

    @Override
    public void onClose() {
        snapshots.writeFinalSnapshot();
        growth.close();
        for (ClientSession s : new ArrayList<>(sessions.values())) {
            s.pub.close();
        }
        sessions.clear();
        subscription.close();
    }

    void shutdownSnapshots() {
        snapshots.shutdown();
    }

    private void onImageLost(Image image) {
        lostImages.add(image.sessionId());
    }

    /** After each newly published version: a waiting growth, the pulls that waited for it, a due snapshot. */
    private void afterPublish() {
        growth.tryGrow();
        pulls.servePendingPulls();
        snapshots.periodicSnapshot();
    }

    // ---- receiving ----------------------------------------------------------------------------

    private void onMessage(DirectBuffer buffer, int offset, int length, Header header) {
        metrics.messagesIn.incrementAndGet();
        metrics.bytesIn.addAndGet(length);
        ClientSession s = sessions.get(header.sessionId());
        rx.wrap(buffer, offset);
        long corr = length >= MessageHeader.LENGTH ? rx.correlationId() : 0;
        if (length > ctx.maxMessageLength) {
            sender.reject(s, RejectReason.OVERSIZED, corr, "message of " + length + " bytes, this server accepts at most "
                    + ctx.maxMessageLength + " (chunk " + ctx.chunkFloats * 4 + " bytes + " + MessageHeader.OVERHEAD + ")");
            return;
        }
        String bad = rx.validate(length);
        if (bad != null) {
            sender.reject(s, RejectReason.MALFORMED, corr, bad);
            return;
        }
        MessageType type = rx.type();
        int kind = rx.keyKind();
        if (kind == MessageHeader.KEY_HANDSHAKE) {
            if (type != MessageType.HELLO) {
                sender.reject(s, RejectReason.MALFORMED, corr, type + " under the handshake key; only HELLO travels without a session");
            } else if (framer.verifyHandshake(buffer, offset, length) != Framer.Result.OK) {
                sender.reject(null, RejectReason.HANDSHAKE_FAILED, corr, "HELLO of worker " + rx.workerId() + " on Aeron session "
                        + header.sessionId() + " does not verify under the handshake key derived from this job's secret: the client "
                        + "uses another secret; give it the job's secret (" + Configuration.SECRET_FILE_PROP + ")");
            } else {
                onHello(buffer, header.sessionId());
            }
            return;
        }
        if (kind != MessageHeader.KEY_SESSION) {
            sender.reject(s, RejectReason.MALFORMED, corr, "a client sent a " + type + " under the broadcast key, which only the "
                    + "server seals with");
            return;
        }
        if (s == null || s.c2s == null) {
            sender.reject(null, RejectReason.UNKNOWN_SESSION, corr, "no HELLO on Aeron session " + header.sessionId());
            return;
        }
        DirectBuffer frame;
        boolean inStaging = false;
        Framer.Result opened;
        int at = s.established && type == MessageType.PUSH ? accumulator.stagingOffset(s, rx) : -1;
        if (at >= 0) { // decrypt the gradient chunk straight into its slot of the worker's staging buffer
            opened = framer.open(s.c2s, buffer, offset, length, accumulator.staging(s.workerId), at);
            inStaging = true;
            frame = buffer;
        } else {
            opened = framer.open(s.c2s, buffer, offset, length);
            frame = framer.opened();
            if (opened == Framer.Result.OK) {
                rx.wrap(frame, 0);
            }
        }
        if (opened == Framer.Result.BAD_TAG) {
            if (s.established) {
                sender.reject(s, RejectReason.BAD_TAG, corr, "AES-GCM tag of a " + type + " frame (sequence " + rx.sequence()
                        + ") does not verify under session " + header.sessionId() + "'s key: the frame was modified or forged; "
                        + "nothing was done");
            } else {
                failHandshake(s, corr, "the " + type + " frame does not verify under the session key derived from the job secret and "
                        + "the handshake's nonces: the client uses another secret (" + Configuration.SECRET_FILE_PROP + ")");
            }
            return;
        }
        if (opened == Framer.Result.REPLAY) {
            sender.reject(s, RejectReason.REPLAY, corr, "a " + type + " frame with sequence " + rx.sequence() + " on session "
                    + header.sessionId() + ", which has accepted up to " + s.c2s.window().highest() + (s.c2s.window()
                    .isTooOld(rx.sequence()) ? " (older than the replay window of " + io.catena.ps.protocol.ReplayWindow.SIZE
                    + " frames)" : " (accepted before)") + ": a replayed frame; nothing was done");
            return;
        }
        if (!s.established) {
            if (type != MessageType.PROOF) {
                sender.reject(s, RejectReason.UNKNOWN_SESSION, corr, "the handshake of session " + header.sessionId()
                        + " is not complete: expected PROOF, got " + type);
            } else {
                onProof(s, frame);
            }
            return;
        }
        if (rx.jobId() != ctx.jobId) {
            sender.reject(s, RejectReason.UNKNOWN_JOB, corr, "message for job id " + rx.jobId() + ", this server serves job '"
                    + ctx.jobName + "' (id " + ctx.jobId + ")");
            return;
        }
        switch (type) {
            case PUSH -> accumulator.onPush(s, rx, frame, inStaging);
            case PULL -> pulls.onPull(s, rx);
            case GROW -> growth.onGrowRequest(s, rx, frame);
            case SNAPSHOT -> snapshots.onSnapshotRequest(s, rx, frame);
            case METRICS -> sender.sendJson(s, MessageType.ADMIN_REPLY, corr, metrics.toMap());
            case TRAINER_INFO -> snapshots.onTrainerInfo(s, rx, frame);
            default -> sender.reject(s, RejectReason.MALFORMED, corr, type + " is not a request a server accepts");
        }
    }

    /** The payload of the message {@code rx} wraps in {@code buffer}, copied. */
    static byte[] payloadBytes(MessageHeader rx, DirectBuffer buffer) {
        byte[] b = new byte[rx.payloadLength()];
        buffer.getBytes(rx.payloadOffset(), b);
        return b;
    }

    // ---- sessions -----------------------------------------------------------------------------

    private void onHello(DirectBuffer buffer, int aeronSessionId) {
        long corr = rx.correlationId();
        int worker = rx.workerId();
        Handshake.Hello hello = Handshake.parseHello(buffer, rx.payloadOffset(), rx.payloadLength());
        if (hello == null) {
            sender.reject(null, RejectReason.MALFORMED, corr, "HELLO payload of " + rx.payloadLength()
                    + " bytes is not (stream id, channel, " + KeySchedule.NONCE_BYTES + "-byte nonce)");
            return;
        }
        ExclusivePublication pub = responsePublication(aeronSessionId, worker, hello.streamId(), hello.channel());
        if (pub == null) {
            return;
        }
        ClientSession s = new ClientSession(aeronSessionId, worker, pub, corr,
                System.nanoTime() + Math.max(sender.sendTimeoutNs(), 5_000_000_000L));
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
        } else {
            s.serverNonce = KeySchedule.randomNonce();
            s.keys = KeySchedule.session(ctx.secret, ctx.jobId, hello.clientNonce(), s.serverNonce, ctx.rekeyShift);
            s.transcript = Handshake.transcript(ctx.jobId, worker, hello.channel(), hello.clientNonce(), s.serverNonce,
                    broadcastNonce, ctx.rekeyShift);
            s.c2s = s.keys.traffic(KeySchedule.Direction.CLIENT_TO_SERVER);
            s.s2c = s.keys.traffic(KeySchedule.Direction.SERVER_TO_CLIENT);
        }
        sessions.put(aeronSessionId, s);
    }

    /** The client's PROOF ({@code frame}, opened under the session key): the session is established, or it is dropped. */
    private void onProof(ClientSession s, DirectBuffer frame) {
        byte[] proof = payloadBytes(rx, frame);
        if (!s.keys.verifyProof(Handshake.CLIENT, s.transcript, proof)) {
            failHandshake(s, rx.correlationId(), "the client's proof does not verify: it does not hold this job's secret ("
                    + Configuration.SECRET_FILE_PROP + ")");
            return;
        }
        s.established = true;
        int worker = s.workerId;
        if (worker >= 0) {
            ClientSession oldWorker = workerSessions[worker];
            if (oldWorker != null && oldWorker != s) {
                closeSession(oldWorker, "worker " + worker + " connected again (restarted task)", oldWorker.pub == s.pub);
            }
            workerSessions[worker] = s;
            accumulator.onWorkerConnected(worker);
        }
        welcome(s, rx.correlationId());
    }

    /** Counts HANDSHAKE_FAILED, tells the client (under the handshake key) and drops the session. */
    private void failHandshake(ClientSession s, long corr, String detail) {
        sender.reject(s, RejectReason.HANDSHAKE_FAILED, corr, detail);
        sessions.remove(s.aeronSessionId);
        forgetWorkerSession(s);
        releasePublication(s);
    }

    /**
     * Closes a dropped session's response publication unless another session shares it (a HELLO naming a live
     * client's channel, e.g. a replayed one, reuses that client's publication and must not close it).
     */
    private void releasePublication(ClientSession s) {
        for (ClientSession o : sessions.values()) {
            if (o != s && o.pub == s.pub) {
                return;
            }
        }
        s.pub.close();
    }

    /**
     * The response publication for a HELLO, closing the sessions it replaces; null when Aeron refuses the channel.
     * A client that says HELLO again (after a timeout) keeps its response publication: closing and re-adding
     * one with the same session id races with the driver's asynchronous close.
     */
    private ExclusivePublication responsePublication(int aeronSessionId, int worker, int stream, String channel) {
        ExclusivePublication reuse = null;
        ClientSession old = sessions.get(aeronSessionId);
        ClientSession oldWorker = worker >= 0 && worker < workerCount ? workerSessions[worker] : null;
        for (ClientSession o : new ClientSession[] {old, oldWorker}) {
            if (o != null && reuse == null && !o.pub.isClosed() && o.pub.streamId() == stream && o.pub.channel().equals(channel)) {
                reuse = o.pub;
            }
        }
        if (old != null) {
            closeSession(old, "it said HELLO again", old.pub == reuse);
        }
        // a worker's earlier session (a restarted task) is replaced only when this one proves the secret (onProof)
        try {
            return reuse != null ? reuse : aeron.addExclusivePublication(channel, stream);
        } catch (RuntimeException e) {
            metrics.reject(RejectReason.BAD_REQUEST);
            LOG.warn("HELLO from worker {} names response channel '{}' stream {} which Aeron refuses: {}", worker, channel, stream,
                    e.getMessage());
            return null;
        }
    }

    /**
     * Challenges (or rejects) the sessions whose response publication connected; drops those that never did and those
     * that never sent their PROOF.
     */
    private int pollSessions() {
        int work = 0;
        long now = System.nanoTime();
        for (Iterator<ClientSession> it = sessions.values().iterator(); it.hasNext(); ) {
            ClientSession s = it.next();
            if (s.welcomed) {
                if (!s.established && now - s.proofDeadlineNs > 0) {
                    LOG.warn("client {} answered no CHALLENGE within {} ms; dropping its half-open session", s.workerId,
                            TimeUnit.NANOSECONDS.toMillis(proofTimeoutNs()));
                    metrics.reject(RejectReason.HANDSHAKE_FAILED);
                    it.remove();
                    forgetWorkerSession(s);
                    releasePublication(s);
                }
                continue;
            }
            if (s.pub.isConnected()) {
                s.welcomed = true;
                work++;
                if (s.pendingReject != null) {
                    sender.reject(s, s.pendingReject, s.helloCorrelation, s.pendingRejectDetail);
                    it.remove();
                    releasePublication(s);
                } else {
                    challenge(s);
                }
            } else if (now - s.deadlineNs > 0) {
                LOG.warn("client {} never connected its response channel {}; is that host/port reachable from the server? "
                        + "(set {} on the client)", s.workerId, s.pub.channel(), Configuration.CLIENT_RESPONSE_HOST_PROP);
                it.remove();
                forgetWorkerSession(s);
                releasePublication(s);
            }
        }
        return work;
    }

    private long proofTimeoutNs() {
        return Math.max(sender.sendTimeoutNs(), 10_000_000_000L);
    }

    /** CHALLENGE: the server's nonce, the broadcast nonce, the rekey shift and the server's proof. */
    private void challenge(ClientSession s) {
        s.proofDeadlineNs = System.nanoTime() + proofTimeoutNs();
        byte[] p = Handshake.challengePayload(s.serverNonce, broadcastNonce, ctx.rekeyShift,
                s.keys.proof(Handshake.SERVER, s.transcript));
        sender.send(s, MessageType.CHALLENGE, 0, s.helloCorrelation, 0, model.version(), 0, 0, new UnsafeBuffer(p), 0, p.length);
    }

    private void welcome(ClientSession s, long corr) {
        byte[] json = model.currentLayout().toJson();
        sender.send(s, MessageType.WELCOME, 0, corr, 0, model.version(), 0, 0, new UnsafeBuffer(json), 0, json.length);
        LOG.info("client {} connected from {} (epoch {}, version {})", s.workerId < 0 ? "admin" : "worker " + s.workerId
                + (stages > 1 ? " (stage " + model.stageOf(s.workerId) + ", replica " + s.workerId / stages + ")" : ""),
                s.pub.channel(), model.epoch(), model.version());
    }

    private void closeSession(ClientSession s, String why) {
        closeSession(s, why, false);
    }

    private void closeSession(ClientSession s, String why, boolean keepPublication) {
        LOG.info("closing session of client {} because {}", s.workerId, why);
        sessions.remove(s.aeronSessionId);
        forgetWorkerSession(s);
        pulls.forget(s);
        if (!keepPublication) {
            releasePublication(s);
        }
    }

    private void forgetWorkerSession(ClientSession s) {
        if (s.workerId >= 0 && s.workerId < workerCount && workerSessions[s.workerId] == s) {
            workerSessions[s.workerId] = null;
        }
    }
}
