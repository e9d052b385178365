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

/**
 * Answers pulls with the current parameters, holding those that wait for a newer version (conductor thread only).
 *
 * <p>An answer is sent a chunk at a time from the conductor's duty cycle ({@link #doWork}), one chunk of every answer in
 * flight per cycle, so the answers to several workers interleave and the conductor keeps polling between chunks: the
 * pull of a worker that asks while another's answer is going out joins it instead of waiting behind it, and every
 * worker opens its chunks while the server seals the next ones. An answer reads the parameters as it goes, so
 * everything that changes them first completes the answers in flight ({@link #finishAnswers}, which
 * {@link ServerModel} calls before each change): an answer never mixes two versions.
 */
final class PullServer {
    private final ServerModel model;
    private final ResponseSender sender;
    private final ServerMetrics metrics;
    private final int stages;
    private final long jobId;
    private final Framer framer;
    private final SealedParams sealed;
    private final List<PendingPull> pendingPulls = new ArrayList<>();
    private final List<Answer> answers = new ArrayList<>();

    /** A pull answer being sent: its PULL_BEGIN went out, chunks {@code [0, next)} of its {@code count} too. */
    private static final class Answer {
        final ClientSession session;
        final long correlation;
        final long version;
        final int stage;
        final int count;
        int next;

        Answer(ClientSession session, long correlation, long version, int stage, int count) {
            this.session = session;
            this.correlation = correlation;
            this.version = version;
            this.stage = stage;
            this.count = count;
        }
    }

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
        answers.removeIf(a -> a.session == s);
    }

    /** Sends the next chunk of every answer in flight (conductor duty cycle); returns how many chunks went out. */
    int doWork() {
        int sent = 0;
        for (int a = 0; a < answers.size(); ) {
            Answer ans = answers.get(a);
            boolean ok = sendChunk(ans);
            sent++;
            if (!ok || ans.next == ans.count) {
                answers.remove(a); // done, or dropped (the client times out and pulls again)
            } else {
                a++;
            }
        }
        return sent;
    }

    /** Sends what the answers in flight still lack, before the parameters change. */
    void finishAnswers() {
        while (!answers.isEmpty()) {
            doWork();
        }
    }

    /**
     * Sends the current parameters: every chunk to admins, to one-stage workers and for {@code all}, else only
     * the chunks of the worker's stage. Chunk indices stay those of the whole plan; the chunk count is what
     * this answer carries. Each chunk goes out as the version's broadcast frame (sealed once for every worker,
     * {@link SealedParams}), or sealed under the session's key where this client already got that broadcast frame.
     */
    private void servePull(ClientSession s, long corr, int requestEpoch, boolean all) {
        answers.removeIf(a -> a.session == s); // a client asks again only after giving up on its previous answer
        long version = model.version();
        if (requestEpoch != model.epoch()) {
            byte[] json = model.currentLayout().toJson();
            sender.send(s, MessageType.PULL_BEGIN, 1, corr, 0, version, 0, 0, new UnsafeBuffer(json), 0, json.length);
            return;
        }
        ChunkPlan plan = model.plan();
        int stage = all || stages == 1 ? -1 : model.stageOf(s.workerId);
        int chunks = stage < 0 ? plan.chunks() : plan.stageChunkCount(stage);
        if (sender.send(s, MessageType.PULL_BEGIN, 0, corr, 0, version, 0, chunks, null, 0, 0) && chunks > 0) {
            answers.add(new Answer(s, corr, version, stage, chunks));
        }
    }

    /** Sends chunk {@code next} of an answer and advances it; false when the send failed. */
    private boolean sendChunk(Answer a) {
        ChunkPlan plan = model.plan();
        int i = a.stage < 0 ? a.next : plan.stageChunk(a.stage, a.next);
        a.next++;
        ClientSession s = a.session;
        DirectBufferVector[] frame = sealed.frame(i, model, framer, jobId);
        long seq = sealed.sequence(i);
        boolean ok;
        if (seq > s.broadcastSent) {
            ok = sender.sendSealed(s, MessageType.PARAMS, frame);
            if (ok) {
                s.broadcastSent = seq;
            }
        } else {
            ok = sender.send(s, MessageType.PARAMS, 0, a.correlation, 0, a.version, i, a.count, model.paramsView(),
                    (int) (plan.chunkOffset(i) * 4), plan.chunkLength(i) * 4);
        }
        if (ok && stages > 1) {
            metrics.stagePulled(plan.chunkStage(i), plan.chunkLength(i) * 4L);
        }
        return ok;
    }
}
