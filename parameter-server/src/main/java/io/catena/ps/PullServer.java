package io.catena.ps;

import io.aeron.DirectBufferVector;
import io.catena.ps.protocol.ChunkPlan;
import io.catena.ps.protocol.Framer;
import io.catena.ps.protocol.MessageHeader;
import io.catena.ps.protocol.MessageType;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.agrona.concurrent.UnsafeBuffer;

/** Answers pulls with the current parameters, holding those that wait for a newer version (conductor thread only). */
final class PullServer {
    private final ServerModel model;
    private final ResponseSender sender;
    private final ServerMetrics metrics;
    private final int stages;
    private final long jobId;
    private final Framer framer;
    private final SealedParams sealed;
    private final List<PendingPull> pendingPulls = new ArrayList<>();

    /** {@code all}: every chunk, not only the stage's of a pipeline worker. */
    private record PendingPull(ClientSession session, long correlation, long minVersion, int epoch, boolean all, long deadlineNs) {
    }

    PullServer(ParameterServer.Context ctx, ServerModel model, ResponseSender sender, ServerMetrics metrics, Framer framer,
               SealedParams sealed) {
        this.model = model;
        this.jobId = ctx.jobId;
        this.framer = framer;
        this.sealed = sealed;
        this.sender = sender;
        this.metrics = metrics;
        this.stages = ctx.pipelineStages;
    }

    /** One PULL ({@code rx} wraps it): answered now, or held until its version is published or it expires. */
    void onPull(ClientSession s, MessageHeader rx) {
        long minVersion = rx.version();
        long corr = rx.correlationId();
        long waitMs = rx.payloadLength() >= 8 ? rx.buffer().getLong(rx.payloadOffset(), java.nio.ByteOrder.LITTLE_ENDIAN) : 0;
        boolean all = (rx.flags() & MessageType.PULL_ALL) != 0;
        metrics.pulls.incrementAndGet();
        if (rx.epoch() != model.epoch() || model.version() >= minVersion) {
            servePull(s, corr, rx.epoch(), all);
        } else {
            pendingPulls.add(new PendingPull(s, corr, minVersion, rx.epoch(), all, System.nanoTime()
                    + TimeUnit.MILLISECONDS.toNanos(Math.max(0, Math.min(waitMs, 24L * 3600 * 1000)))));
        }
    }

    /** Answers the held pulls that the current version (or a new epoch) satisfies. */
    void servePendingPulls() {
        for (Iterator<PendingPull> it = pendingPulls.iterator(); it.hasNext(); ) {
            PendingPull p = it.next();
            if (p.epoch != model.epoch() || model.version() >= p.minVersion) {
                it.remove();
                servePull(p.session, p.correlation, p.epoch, p.all);
            }
        }
    }

    /** Drops held pulls past their deadline (the client times out); returns how many. */
    int expire(long now) {
        if (pendingPulls.isEmpty()) {
            return 0;
        }
        int before = pendingPulls.size();
        pendingPulls.removeIf(p -> now - p.deadlineNs > 0);
        return before - pendingPulls.size();
    }

    /** Drops the held pulls of a closed session. */
    void forget(ClientSession s) {
        pendingPulls.removeIf(pp -> pp.session == s);
    }

    /**
     * Sends the current parameters: every chunk to admins, to one-stage workers and for {@code all}, else only
     * the chunks of the worker's stage. Chunk indices stay those of the whole plan; the chunk count is what
     * this answer carries. Each chunk goes out as the version's broadcast frame (sealed once for every worker,
     * {@link SealedParams}), or sealed under the session's key where this client already got that broadcast frame.
     */
    private void servePull(ClientSession s, long corr, int requestEpoch, boolean all) {
        long version = model.version();
        if (requestEpoch != model.epoch()) {
            byte[] json = model.currentLayout().toJson();
            sender.send(s, MessageType.PULL_BEGIN, 1, corr, 0, version, 0, 0, new UnsafeBuffer(json), 0, json.length);
            return;
        }
        ChunkPlan plan = model.plan();
        int stage = all || stages == 1 ? -1 : model.stageOf(s.workerId);
        int chunks = stage < 0 ? plan.chunks() : plan.stageChunkCount(stage);
        if (!sender.send(s, MessageType.PULL_BEGIN, 0, corr, 0, version, 0, chunks, null, 0, 0)) {
            return;
        }
        for (int k = 0; k < chunks; k++) {
            int i = stage < 0 ? k : plan.stageChunk(stage, k);
            if (!sendChunk(s, corr, version, i, chunks)) {
                return;
            }
            if (stages > 1) {
                metrics.stagePulled(plan.chunkStage(i), plan.chunkLength(i) * 4L);
            }
        }
    }

    private boolean sendChunk(ClientSession s, long corr, long version, int i, int chunks) {
        DirectBufferVector[] frame = sealed.frame(i, model, framer, jobId);
        long seq = sealed.sequence(i);
        if (seq > s.broadcastSent) {
            if (!sender.sendSealed(s, MessageType.PARAMS, frame)) {
                return false;
            }
            s.broadcastSent = seq;
            return true;
        }
        ChunkPlan plan = model.plan();
        return sender.send(s, MessageType.PARAMS, 0, corr, 0, version, i, chunks, model.paramsView(), (int) (plan.chunkOffset(i) * 4),
                plan.chunkLength(i) * 4);
    }
}
