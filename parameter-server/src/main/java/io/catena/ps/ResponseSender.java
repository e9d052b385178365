package io.catena.ps;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.aeron.DirectBufferVector;
import io.catena.ps.protocol.MessageAuthenticator;
import io.catena.ps.protocol.MessageHeader;
import io.catena.ps.protocol.MessageType;
import io.catena.ps.protocol.RejectReason;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Queue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import javax.crypto.Mac;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.IdleStrategy;
import org.agrona.concurrent.UnsafeBuffer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Signs and sends the server's frames to a client's response publication (conductor thread only). */
final class ResponseSender {
    // the conductor's log name: cluster-conf/log4j2.properties sets the server's level by it
    private static final Logger LOG = LoggerFactory.getLogger(ServerConductor.class);
    private static final ObjectMapper JSON = new ObjectMapper();

    private final ParameterServer.Context ctx;
    private final MessageAuthenticator auth;
    private final ServerMetrics metrics;
    private final ServerModel model;
    private final Queue<Runnable> completions;
    private final IdleStrategy sendIdle;
    private final long sendTimeoutNs;

    private final OutgoingFrame tx = new OutgoingFrame();

    /** {@code completions}: the conductor's queue of work handed back to its thread. */
    ResponseSender(ParameterServer.Context ctx, MessageAuthenticator auth, ServerMetrics metrics, ServerModel model,
                   Queue<Runnable> completions) {
        this.ctx = ctx;
        this.auth = auth;
        this.metrics = metrics;
        this.model = model;
        this.completions = completions;
        this.sendIdle = Transport.idleStrategy(ctx.idleStrategy, Configuration.IDLE_STRATEGY_PROP);
        this.sendTimeoutNs = TimeUnit.MILLISECONDS.toNanos(ctx.sendTimeoutMs);
    }

    long sendTimeoutNs() {
        return sendTimeoutNs;
    }

    /** Counts and logs a rejected request and answers it with REJECT where the client was welcomed. */
    void reject(ClientSession s, RejectReason reason, long correlation, String detail) {
        metrics.reject(reason);
        if (metrics.rejections(reason) <= 20 || LOG.isDebugEnabled()) {
            LOG.warn("rejected ({}): {}", reason, detail);
        }
        if (s != null && s.welcomed) {
            byte[] d = detail.getBytes(StandardCharsets.UTF_8);
            send(s, MessageType.REJECT, reason.code, correlation, 0, model.version(), 0, 0, new UnsafeBuffer(d), 0, d.length);
        }
    }

    /**
     * A future whose completion answers an admin request on the conductor thread: ADMIN_REPLY with {@code doc} of
     * its value, or REJECT with the failure's reason (BAD_REQUEST unless it is a {@link RequestRejectedException}).
     */
    <T> CompletableFuture<T> adminReply(ClientSession s, long corr, Function<T, Map<String, Object>> doc) {
        CompletableFuture<T> f = new CompletableFuture<>();
        f.whenComplete((value, err) -> completions.add(() -> {
            if (err != null) {
                reject(s, err instanceof RequestRejectedException rr ? rr.reason() : RejectReason.BAD_REQUEST, corr, err.getMessage());
            } else {
                sendJson(s, MessageType.ADMIN_REPLY, corr, doc.apply(value));
            }
        }));
        return f;
    }

    void sendJson(ClientSession s, MessageType type, long corr, Map<String, Object> doc) {
        try {
            byte[] b = JSON.writeValueAsBytes(doc);
            send(s, type, 0, corr, 0, model.version(), 0, 0, new UnsafeBuffer(b), 0, b.length);
        } catch (Exception e) {
            LOG.error("cannot encode reply", e);
        }
    }

    /** Signs and sends one frame whose payload is a region of {@code payload} (null: none), bounded by the send timeout. */
    boolean send(ClientSession s, MessageType type, int flags, long corr, long step, long ver, int chunkIndex, int chunkCount,
                 DirectBuffer payload, int payloadOffset, int payloadLength) {
        return send(s, type, flags, corr, step, ver, chunkIndex, chunkCount, payload, payloadOffset, payloadLength, false);
    }

    /**
     * {@code paramsChunk}: the payload is parameter chunk {@code chunkIndex} of the current parameters, whose
     * HMAC state after the payload is cached until the parameters change.
     */
    boolean send(ClientSession s, MessageType type, int flags, long corr, long step, long ver, int chunkIndex, int chunkCount,
                 DirectBuffer payload, int payloadOffset, int payloadLength, boolean paramsChunk) {
        if (s.pub.isClosed()) {
            return false;
        }
        tx.header(type).flags(flags).jobId(ctx.jobId).epoch(model.epoch()).workerId(s.workerId).step(step)
                .version(ver).correlationId(corr).chunkIndex(chunkIndex).chunkCount(chunkCount).payloadLength(payloadLength);
        if (payloadLength > 0) {
            signPayload(payload, payloadOffset, payloadLength, paramsChunk ? chunkIndex : -1);
        } else {
            auth.begin();
        }
        DirectBufferVector[] vectors = tx.sign(auth, payload, payloadOffset, payloadLength);
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

    /** Starts the MAC with the payload (payload first, then header: protocol package doc); {@code paramsChunk} -1: not one. */
    private void signPayload(DirectBuffer payload, int payloadOffset, int payloadLength, int paramsChunk) {
        Mac[] chunkMacs = model.chunkMacs();
        Mac cached = paramsChunk >= 0 ? chunkMacs[paramsChunk] : null;
        if (cached != null) {
            auth.continueFrom(cached);
        } else {
            auth.begin();
            auth.update(payload, payloadOffset, payloadLength);
            if (paramsChunk >= 0) {
                chunkMacs[paramsChunk] = auth.snapshot();
            }
        }
    }
}
