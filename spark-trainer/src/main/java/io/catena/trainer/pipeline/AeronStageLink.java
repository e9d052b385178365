package io.catena.trainer.pipeline;

import io.aeron.Aeron;
import io.aeron.ChannelUriStringBuilder;
import io.aeron.ControlledFragmentAssembler;
import io.aeron.ExclusivePublication;
import io.aeron.Publication;
import io.aeron.Subscription;
import io.aeron.logbuffer.ControlledFragmentHandler;
import io.catena.model.kernel.Buf;
import io.catena.model.kernel.Mat;
import io.catena.model.pipeline.StageLink;
import io.catena.model.pipeline.StageLinkTimeoutException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import org.agrona.CloseHelper;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * A {@link StageLink} between two Spark tasks over Aeron UDP: this end owns a subscription bound to an
 * ephemeral port of its host (its {@link #endpoint()}, exchanged with the neighbour through the barrier's
 * allGather) and an exclusive publication to the neighbour's endpoint. A tensor travels as one or more
 * messages of at most {@link #maxChunkBytes} payload bytes, each with a header that tags it (job token,
 * kind, step, micro-batch, shape, chunk i of n). Aeron keeps one publication's messages in order, so a
 * receive reads the next message: earlier steps (left over from an aborted step) are dropped, anything
 * else unexpected is an error. Every wait has a deadline, and checks {@code alive} (the Spark task's
 * cancellation) every few milliseconds.
 */
public final class AeronStageLink implements StageLink, AutoCloseable {
    static final int STREAM_ID = 3101;
    static final int MAGIC = 0x43504c4b; // "CPLK"
    /** magic, kind, step, micro, rows, cols, chunk, chunks, element offset, token. */
    static final int HEADER = 4 + 4 + 8 + 4 + 4 + 4 + 4 + 4 + 8 + 8;
    /** Term length of a link's log buffers: 3 x this per publication and per image in the Aeron directory. */
    static final int TERM_LENGTH = 4 * 1024 * 1024;
    private static final long POLL_PARK_NANOS = 20_000;

    private final Aeron aeron;
    private final String udpParams;
    private final int local;
    private final int peer;
    private final Kind sends;
    private final long token;
    private final Runnable alive;
    private final Subscription subscription;
    private final ControlledFragmentAssembler assembler = new ControlledFragmentAssembler(this::onMessage);
    private ExclusivePublication publication;
    private String peerEndpoint;
    private UnsafeBuffer out;
    private int maxChunkBytes;

    // the receive in progress, filled by onMessage
    private Kind wantKind;
    private long wantStep;
    private int wantMicro;
    private Mat into;
    private int chunksSeen;
    private boolean complete;
    private RuntimeException failure;

    /**
     * Opens this end: binds its subscription on {@code host}:ephemeral.
     *
     * @param upstream true for the end on stage s that sends activations to s+1 (false: the end on s+1)
     * @param token    a per-job number on every message, so strays of another job or attempt are refused
     * @param alive    called while waiting; throws when the task was cancelled
     */
    public static AeronStageLink open(Aeron aeron, String host, String udpParams, int localStage, boolean upstream, long token,
                                      Runnable alive) {
        return new AeronStageLink(aeron, host, udpParams, localStage, upstream ? localStage + 1 : localStage - 1,
                upstream ? Kind.ACTIVATION : Kind.GRADIENT, token, alive);
    }

    private AeronStageLink(Aeron aeron, String host, String udpParams, int local, int peer, Kind sends, long token, Runnable alive) {
        this.aeron = aeron;
        this.udpParams = udpParams == null ? "" : udpParams;
        this.local = local;
        this.peer = peer;
        this.sends = sends;
        this.token = token;
        this.alive = alive;
        this.subscription = aeron.addSubscription(channel(host + ":0"), STREAM_ID);
    }

    private String channel(String endpoint) {
        String c = new ChannelUriStringBuilder().media("udp").endpoint(endpoint).termLength(TERM_LENGTH).build();
        // the job's UDP tuning, but a receiver window that fits this link's smaller term (Aeron caps it at term/2)
        StringBuilder params = new StringBuilder();
        for (String p : udpParams.split("\\|")) {
            if (!p.isBlank() && !p.startsWith("rcv-wnd=")) {
                params.append('|').append(p);
            }
        }
        return c + params + "|rcv-wnd=" + TERM_LENGTH / 2;
    }

    /** host:port this end receives on (the bound ephemeral port), for the neighbour's {@link #connect}. */
    public String endpoint(long timeoutMs) {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        while (true) {
            List<String> addresses = subscription.localSocketAddresses();
            if (!addresses.isEmpty()) {
                return addresses.get(0);
            }
            if (System.nanoTime() - deadline > 0) {
                throw new IllegalStateException("stage " + local + ": the Aeron media driver did not bind the link subscription within "
                        + timeoutMs + " ms (is the driver running? see the Aeron directory's errors)");
            }
            alive.run();
            LockSupport.parkNanos(1_000_000);
        }
    }

    /** Adds the publication to the neighbour's endpoint; {@link #awaitConnected} waits for both directions. */
    public void connect(String peerEndpoint) {
        this.peerEndpoint = peerEndpoint;
        publication = aeron.addExclusivePublication(channel(peerEndpoint), STREAM_ID);
        maxChunkBytes = (publication.maxMessageLength() - HEADER) & ~7;
        out = new UnsafeBuffer(ByteBuffer.allocateDirect(HEADER + maxChunkBytes).order(ByteOrder.LITTLE_ENDIAN));
    }

    /** Waits until our publication reached the neighbour and the neighbour's reached us (both called connect). */
    public void awaitConnected(long timeoutMs) {
        if (publication == null) {
            throw new IllegalStateException("stage " + local + ": awaitConnected before connect");
        }
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        while (!publication.isConnected() || !subscription.isConnected()) {
            if (System.nanoTime() - deadline > 0) {
                throw new IllegalStateException("stage " + local + " could not connect to stage " + peer + " at " + peerEndpoint
                        + " within " + timeoutMs + " ms (" + (publication.isConnected() ? "its publication to us is missing"
                        : "no subscriber there") + "): the executors must reach each other over UDP; check firewalls and "
                        + "spark.driver.host / SPARK_LOCAL_IP");
            }
            alive.run();
            LockSupport.parkNanos(1_000_000);
        }
    }

    @Override
    public int localStage() {
        return local;
    }

    @Override
    public int peerStage() {
        return peer;
    }

    @Override
    public void send(Kind kind, long step, int micro, Mat tensor, long timeoutMillis) {
        StageLink.checkDirection(kind, sends, true, local, peer);
        if (publication == null) {
            throw new IllegalStateException("stage " + local + ": link to stage " + peer + " used before connect()");
        }
        long elements = (long) tensor.rows * tensor.cols;
        int perChunk = maxChunkBytes / 4;
        int chunks = (int) Math.max(1, (elements + perChunk - 1) / perChunk);
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
        for (int c = 0; c < chunks; c++) {
            long from = (long) c * perChunk;
            int n = (int) Math.min(perChunk, elements - from);
            out.putInt(0, MAGIC);
            out.putInt(4, kind.ordinal());
            out.putLong(8, step);
            out.putInt(16, micro);
            out.putInt(20, tensor.rows);
            out.putInt(24, tensor.cols);
            out.putInt(28, c);
            out.putInt(32, chunks);
            out.putLong(36, from);
            out.putLong(44, token);
            copyOut(tensor, from, n, out, HEADER);
            offer(HEADER + n * 4, kind, step, micro, deadline, timeoutMillis);
        }
    }

    private void offer(int length, Kind kind, long step, int micro, long deadline, long timeoutMillis) {
        while (true) {
            long r = publication.offer(out, 0, length);
            if (r > 0) {
                return;
            }
            if (r == Publication.CLOSED || r == Publication.MAX_POSITION_EXCEEDED) {
                throw new IllegalStateException("stage " + local + ": the link to stage " + peer + " is closed (" + r + ")");
            }
            if (System.nanoTime() - deadline > 0) {
                String why = r == Publication.NOT_CONNECTED ? "stage " + peer + " at " + peerEndpoint + " is gone (no subscriber): its "
                        + "task died or was cancelled" : "stage " + peer + " is not reading (back pressure)";
                throw new StageLinkTimeoutException("stage " + local + " could not send the " + kind.label() + " of step " + step
                        + ", micro-batch " + micro + " to stage " + peer + " within " + timeoutMillis + " ms: " + why, local, peer, step,
                        micro);
            }
            alive.run();
            LockSupport.parkNanos(POLL_PARK_NANOS);
        }
    }

    @Override
    public void receive(Kind kind, long step, int micro, Mat into, long timeoutMillis) {
        StageLink.checkDirection(kind, sends, false, local, peer);
        this.wantKind = kind;
        this.wantStep = step;
        this.wantMicro = micro;
        this.into = into;
        this.chunksSeen = 0;
        this.complete = false;
        this.failure = null;
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
        long lastAliveCheck = System.nanoTime();
        try {
            while (!complete) {
                int n = subscription.controlledPoll(assembler, 16);
                if (failure != null) {
                    throw failure;
                }
                if (n == 0) {
                    long now = System.nanoTime();
                    if (now - deadline > 0) {
                        String why = subscription.isConnected() ? "is stage " + peer + " alive and running the same schedule?"
                                : "stage " + peer + "'s publication is gone: its task died or was cancelled";
                        throw new StageLinkTimeoutException("stage " + local + " received no " + kind.label() + " from stage " + peer
                                + " for step " + step + ", micro-batch " + micro + " within " + timeoutMillis + " ms (" + why + ")",
                                local, peer, step, micro);
                    }
                    if (now - lastAliveCheck > 5_000_000) {
                        alive.run();
                        lastAliveCheck = now;
                    }
                    LockSupport.parkNanos(POLL_PARK_NANOS);
                }
            }
        } finally {
            this.into = null;
        }
    }

    private ControlledFragmentHandler.Action onMessage(DirectBuffer b, int offset, int length, io.aeron.logbuffer.Header header) {
        if (length < HEADER || b.getInt(offset) != MAGIC || b.getLong(offset + 44) != token) {
            failure = new IllegalStateException("stage " + local + " received a " + length + "-byte message on its link that is not from"
                    + " this job's stage " + peer + " (bad magic or job token); another process is sending to this port");
            return ControlledFragmentHandler.Action.BREAK;
        }
        int kindOrdinal = b.getInt(offset + 4);
        long step = b.getLong(offset + 8);
        int micro = b.getInt(offset + 16);
        int rows = b.getInt(offset + 20);
        int cols = b.getInt(offset + 24);
        int chunk = b.getInt(offset + 28);
        int chunks = b.getInt(offset + 32);
        long from = b.getLong(offset + 36);
        if (step < wantStep) {
            return ControlledFragmentHandler.Action.CONTINUE; // left over from an aborted step
        }
        if (kindOrdinal != wantKind.ordinal() || step != wantStep || micro != wantMicro || chunk != chunksSeen) {
            failure = new IllegalStateException("stage " + local + " expected chunk " + chunksSeen + " of the " + wantKind.label()
                    + " of step " + wantStep + ", micro-batch " + wantMicro + " from stage " + peer + " but received chunk " + chunk
                    + " of " + (kindOrdinal == Kind.ACTIVATION.ordinal() ? "an activation" : "a gradient") + " of step " + step
                    + ", micro-batch " + micro + ": the stages run different schedules");
            return ControlledFragmentHandler.Action.BREAK;
        }
        if (rows != into.rows || cols != into.cols) {
            failure = new IllegalArgumentException("stage " + local + " received a " + rows + "x" + cols + " " + wantKind.label()
                    + " from stage " + peer + " (step " + step + ", micro-batch " + micro + ") but expects " + into.rows + "x" + into.cols
                    + ": the stages were built for different shapes or model widths");
            return ControlledFragmentHandler.Action.BREAK;
        }
        int n = (length - HEADER) / 4;
        copyIn(b, offset + HEADER, into, from, n);
        chunksSeen++;
        if (chunksSeen == chunks) {
            complete = true;
            return ControlledFragmentHandler.Action.BREAK; // leave the next message for the next receive
        }
        return ControlledFragmentHandler.Action.CONTINUE;
    }

    /** Elements [from, from + n) of the row-major [rows x cols] view of m (rows may be strided by ld) into dst at dstOffset. */
    static void copyOut(Mat m, long from, int n, UnsafeBuffer dst, int dstOffset) {
        int done = 0;
        while (done < n) {
            long e = from + done;
            int r = (int) (e / m.cols);
            int c = (int) (e % m.cols);
            int run = Math.min(n - done, m.cols - c);
            int src = m.offset + r * m.ld + c;
            if (m.buf instanceof Buf.F32 f) {
                dst.putBytes(dstOffset + done * 4, f.bytes(), src * 4, run * 4);
            } else {
                for (int i = 0; i < run; i++) {
                    dst.putFloat(dstOffset + (done + i) * 4, (float) m.buf.get(src + i));
                }
            }
            done += run;
        }
    }

    /** The inverse of {@link #copyOut}. */
    static void copyIn(DirectBuffer src, int srcOffset, Mat m, long from, int n) {
        int done = 0;
        while (done < n) {
            long e = from + done;
            int r = (int) (e / m.cols);
            int c = (int) (e % m.cols);
            int run = Math.min(n - done, m.cols - c);
            int dst = m.offset + r * m.ld + c;
            if (m.buf instanceof Buf.F32 f) {
                src.getBytes(srcOffset + done * 4, f.bytes(), dst * 4, run * 4);
            } else {
                for (int i = 0; i < run; i++) {
                    m.buf.set(dst + i, src.getFloat(srcOffset + (done + i) * 4));
                }
            }
            done += run;
        }
    }

    @Override
    public void close() {
        CloseHelper.quietCloseAll(publication, subscription);
    }

    @Override
    public String toString() {
        return "Aeron link stage " + local + " <-> stage " + peer + (peerEndpoint == null ? "" : " at " + peerEndpoint);
    }
}
