package io.catena.ps;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.aeron.DirectBufferVector;
import io.catena.ps.protocol.Framer;
import io.catena.ps.protocol.MessageHeader;
import io.catena.ps.protocol.MessageType;
import io.catena.ps.protocol.RejectReason;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Queue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.IdleStrategy;
import org.agrona.concurrent.UnsafeBuffer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Seals and sends the server's frames to a client's response publication (conductor thread only): under the session's
 * server-to-client key once the handshake completed, under the handshake key before (CHALLENGE, a HELLO's REJECT).
 */
final class ResponseSender {
    // the conductor's log name: cluster-conf/log4j2.properties sets the server's level by it
    private static final Logger LOG = LoggerFactory.getLogger(ServerConductor.class);
    private static final ObjectMapper JSON = new ObjectMapper();

    private final ParameterServer.Context ctx;
    private final Framer framer;
    private final ServerMetrics metrics;
    private final ServerModel model;
    private final Queue<Runnable> completions;
    private final IdleStrategy sendIdle;
    private final long sendTimeoutNs;

    /** {@code completions}: the conductor's queue of work handed back to its thread. */
    ResponseSender(ParameterServer.Context ctx, Framer framer, ServerMetrics metrics, ServerModel model,
                   Queue<Runnable> completions) {
        this.ctx = ctx;
        this.framer = framer;
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

    /** Seals and sends one frame whose payload is a region of {@code payload} (null: none), bounded by the send timeout. */
    boolean send(ClientSession s, MessageType type, int flags, long corr, long step, long ver, int chunkIndex, int chunkCount,
                 DirectBuffer payload, int payloadOffset, int payloadLength) {
        if (s.pub.isClosed()) {
            return false;
        }
        framer.header(type).flags(flags).jobId(ctx.jobId).epoch(model.epoch()).workerId(s.workerId).step(step)
                .version(ver).correlationId(corr).chunkIndex(chunkIndex).chunkCount(chunkCount);
        return offer(s, type, framer.seal(s.established ? s.s2c : null, payload, payloadOffset, payloadLength),
                MessageHeader.OVERHEAD + payloadLength);
    }

    /** Sends an already sealed frame (the broadcast cache's), bounded by the send timeout. */
    boolean sendSealed(ClientSession s, MessageType type, DirectBufferVector[] frame) {
        if (s.pub.isClosed()) {
            return false;
        }
        return offer(s, type, frame, frame[0].length());
    }

    private boolean offer(ClientSession s, MessageType type, DirectBufferVector[] vectors, int length) {
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
        metrics.bytesOut.addAndGet(length);
        return true;
    }
}
