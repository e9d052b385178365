package io.catena.ps;

import io.aeron.Aeron;
import io.aeron.ExclusivePublication;
import io.catena.ps.protocol.Handshake;
import io.catena.ps.protocol.KeySchedule;
import io.catena.ps.protocol.MessageHeader;
import io.catena.ps.protocol.MessageType;
import io.catena.ps.protocol.RejectReason;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.UnsafeBuffer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The server's clients (conductor thread only): the session of every Aeron session that said HELLO, the handshake
 * (HELLO, CHALLENGE, PROOF, WELCOME) that establishes it, which session is each worker's, and dropping sessions
 * (a handshake that fails or stalls, a lost image, a worker that connects again). The {@link ServerConductor} hands
 * it the handshake frames and looks up the session of every other frame here.
 */
final class ClientSessions {
    private static final Logger LOG = LoggerFactory.getLogger(ServerConductor.class);

    private final ParameterServer.Context ctx;
    private final Aeron aeron;
    private final ServerMetrics metrics;
    private final ResponseSender sender;
    private final ServerModel model;
    private final GradientAccumulator accumulator;
    private final PullServer pulls;
    private final byte[] broadcastNonce;
    private final int workerCount;
    private final int stages;
    private final Map<Integer, ClientSession> sessions = new HashMap<>();
    private final ClientSession[] workerSessions;

    ClientSessions(ParameterServer.Context ctx, Aeron aeron, ServerMetrics metrics, ResponseSender sender, ServerModel model,
                   GradientAccumulator accumulator, PullServer pulls, byte[] broadcastNonce) {
        this.ctx = ctx;
        this.aeron = aeron;
        this.metrics = metrics;
        this.sender = sender;
        this.model = model;
        this.accumulator = accumulator;
        this.pulls = pulls;
        this.broadcastNonce = broadcastNonce;
        this.workerCount = ctx.workers;
        this.stages = ctx.pipelineStages;
        this.workerSessions = new ClientSession[workerCount];
    }

    /** The session of an Aeron session id; null when it said no HELLO. */
    ClientSession get(int aeronSessionId) {
        return sessions.get(aeronSessionId);
    }

    /** An Aeron image went away: its session ends. */
    void onImageLost(int aeronSessionId) {
        ClientSession s = sessions.get(aeronSessionId);
        if (s != null) {
            closeSession(s, "its Aeron image went away");
        }
    }

    /** Closes every response publication (server shutdown). */
    void close() {
        for (ClientSession s : new ArrayList<>(sessions.values())) {
            s.pub.close();
        }
        sessions.clear();
    }

    /** A HELLO ({@code rx} wraps it in {@code buffer}, verified under the handshake key): a new session, challenged or rejected once its publication connects. */
    void onHello(MessageHeader rx, DirectBuffer buffer, int aeronSessionId) {
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
    void onProof(ClientSession s, MessageHeader rx, DirectBuffer frame) {
        byte[] proof = rx.payloadBytes();
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
    void failHandshake(ClientSession s, long corr, String detail) {
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
    int poll() {
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

    void closeSession(ClientSession s, String why) {
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
