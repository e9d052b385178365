package io.catena.ps;

import io.aeron.DirectBufferVector;
import io.catena.ps.protocol.ChunkPlan;
import io.catena.ps.protocol.Framer;
import io.catena.ps.protocol.MessageHeader;
import io.catena.ps.protocol.MessageType;
import io.catena.ps.protocol.TrafficKey;
import java.nio.ByteBuffer;
import java.util.Arrays;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * The current parameters' chunks sealed once under the server's broadcast key, for every worker's pull of this version
 * (conductor thread only): W workers pulling one version cost one pass of AES-GCM over the vector, not W.
 *
 * <p>A broadcast frame cannot name a worker or a request, since it is sealed once for all: its header has worker id
 * -1, correlation id 0 and the plan's full chunk count; the session-sealed PULL_BEGIN that precedes it names the
 * request, version and count, and the client takes PARAMS of exactly that version only. Chunks are sealed in chunk
 * order (sealing chunk i seals every earlier one first), so the sequence numbers of any pull answer, a pipeline
 * stage's subset or all, increase, and a client's replay window never sees them out of order. A session is never sent
 * the same broadcast frame twice ({@link ClientSession#broadcastSent}); a second pull of one version by the same client
 * gets the chunk sealed under its own session key instead. The cache is a second copy of the parameters (plus 88 bytes
 * per chunk), valid while {@link ServerModel#paramsChanges()} stays the same.
 */
final class SealedParams {
    private final TrafficKey key;
    private final DirectBufferVector vector = new DirectBufferVector();
    private final DirectBufferVector[] vectors = {vector};
    private UnsafeBuffer frames = new UnsafeBuffer(ByteBuffer.allocateDirect(0));
    private int[] frameAt = new int[0];
    private long[] sequence = new long[0];
    private long validFor = -1;
    private int sealedUpTo;
    private long chunksSealed;

    SealedParams(TrafficKey broadcastKey) {
        this.key = broadcastKey;
    }

    /** The broadcast frame of chunk {@code i} of the current parameters, sealing it (and the earlier chunks) if needed. */
    DirectBufferVector[] frame(int i, ServerModel model, Framer framer, long jobId) {
        ChunkPlan plan = model.plan();
        if (validFor != model.paramsChanges()) {
            reset(plan);
            validFor = model.paramsChanges();
        }
        while (sealedUpTo <= i) {
            int c = sealedUpTo;
            framer.header(MessageType.PARAMS).jobId(jobId).epoch(model.epoch()).workerId(-1).version(model.version())
                    .chunkIndex(c).chunkCount(plan.chunks());
            framer.sealInto(key, frames, frameAt[c], model.paramsView(), (int) (plan.chunkOffset(c) * 4), plan.chunkLength(c) * 4);
            sequence[c] = new MessageHeader().wrap(frames, frameAt[c]).sequence();
            sealedUpTo++;
            chunksSealed++;
        }
        vector.reset(frames, frameAt[i], frameAt[i + 1] - frameAt[i]);
        return vectors;
    }

    /** The broadcast sequence number of chunk i (after {@link #frame}). */
    long sequence(int i) {
        return sequence[i];
    }

    /** Chunks sealed so far (tests and metrics: one pass per version, however many workers pull it). */
    long chunksSealed() {
        return chunksSealed;
    }

    private void reset(ChunkPlan plan) {
        int n = plan.chunks();
        if (frameAt.length != n + 1) {
            frameAt = new int[n + 1];
            sequence = new long[n];
        }
        long total = 0;
        for (int c = 0; c < n; c++) {
            frameAt[c] = (int) total;
            total += MessageHeader.OVERHEAD + plan.chunkLength(c) * 4L;
        }
        if (total > Integer.MAX_VALUE - 8) {
            throw new IllegalStateException("the sealed parameter cache would need " + total + " bytes, more than one buffer holds");
        }
        frameAt[n] = (int) total;
        if (frames.capacity() < total) {
            frames = new UnsafeBuffer(ByteBuffer.allocateDirect((int) total));
        }
        Arrays.fill(sequence, -1);
        sealedUpTo = 0;
    }
}
