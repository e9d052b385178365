package io.catena.bench.ps;

import static io.catena.bench.ps.BenchSupport.freeUdpPort;
import static io.catena.bench.ps.BenchSupport.timeAll;
import static io.catena.bench.ps.BenchSupport.view;
import static io.catena.bench.ps.PsBench.TIMEOUT_MS;
import static io.catena.bench.ps.PsBench.UDP_PARAMS;

import io.aeron.Aeron;
import io.aeron.DirectBufferVector;
import io.aeron.ExclusivePublication;
import io.aeron.FragmentAssembler;
import io.aeron.Publication;
import io.aeron.Subscription;
import io.aeron.logbuffer.FragmentHandler;
import io.catena.model.Params;
import io.catena.ps.protocol.ChunkPlan;
import io.catena.ps.protocol.MessageHeader;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.agrona.CloseHelper;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.IdleStrategy;
import org.agrona.concurrent.UnsafeBuffer;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * Raw Aeron with the PS's traffic shape and nothing else: each worker offers its vector as frames of
 * (72-byte header, chunk, 16 bytes of zeros: the PS's frame lengths) cut by the server's own ChunkPlan (same chunk count and lengths); the receiver thread copies every chunk
 * into that worker's staging buffer; when all W vectors are in it offers its parameter vector the same way
 * to each worker in turn, and each worker copies the chunks into its own buffer. No crypto, no ack, no pull
 * request, no optimizer.
 */
final class RawPeer implements AutoCloseable {
    final Aeron serverAeron;
    final Aeron[] workerAeron;
    final Subscription serverSub;
    final ExclusivePublication[] serverPubs;
    final ExclusivePublication[] workerPubs;
    final Subscription[] workerSubs;
    final UnsafeBuffer[] gradViews;
    final UnsafeBuffer[] staging;
    final UnsafeBuffer serverParams;
    final UnsafeBuffer[] workerParams;
    final List<Params> keep = new ArrayList<>(); // views do not keep ND4J's memory alive: hold the owners
    final ChunkPlan plan;
    final int chunks;
    final int w;
    /** --idle: the idle strategy of the receive loops and of offers under back pressure. */
    final String idle;
    long round;

    RawPeer(String aeronDir, boolean ipc, Params[] grads, Params init, ChunkPlan plan, int w, String idle) throws IOException {
        this.w = w;
        this.idle = idle;
        this.plan = plan;
        this.chunks = plan.chunks();
        serverAeron = Aeron.connect(new Aeron.Context().aeronDirectoryName(aeronDir));
        workerAeron = new Aeron[w];
        serverPubs = new ExclusivePublication[w];
        workerPubs = new ExclusivePublication[w];
        workerSubs = new Subscription[w];
        gradViews = new UnsafeBuffer[w];
        staging = new UnsafeBuffer[w];
        workerParams = new UnsafeBuffer[w];
        String serverChannel = ipc ? "aeron:ipc" : "aeron:udp?endpoint=127.0.0.1:" + freeUdpPort() + "|" + UDP_PARAMS;
        serverSub = serverAeron.addSubscription(serverChannel, 2001);
        for (int i = 0; i < w; i++) {
            workerAeron[i] = Aeron.connect(new Aeron.Context().aeronDirectoryName(aeronDir));
            String resp = ipc ? "aeron:ipc" : "aeron:udp?endpoint=127.0.0.1:" + freeUdpPort() + "|" + UDP_PARAMS;
            workerSubs[i] = workerAeron[i].addSubscription(resp, 2100 + i);
            serverPubs[i] = serverAeron.addExclusivePublication(resp, 2100 + i);
            workerPubs[i] = workerAeron[i].addExclusivePublication(serverChannel, 2001);
            gradViews[i] = view(grads[i]);
            staging[i] = view(keep(new Params(init.layout(), DataType.FLOAT)));
            workerParams[i] = view(keep(new Params(init.layout(), DataType.FLOAT)));
        }
        serverParams = view(keep(init));
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(TIMEOUT_MS);
        for (int i = 0; i < w; i++) {
            while (!serverPubs[i].isConnected() || !workerPubs[i].isConnected()) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("raw Aeron publications did not connect within " + TIMEOUT_MS + " ms");
                }
                Thread.onSpinWait();
                Thread.yield();
            }
        }
    }

    private IdleStrategy idleStrategy() {
        return BenchSupport.idleStrategy(idle);
    }

    private Params keep(Params p) {
        keep.add(p);
        return p;
    }

    double round(ExecutorService workerPool, ExecutorService serverPool) throws Exception {
        long r = ++round;
        List<Callable<Void>> tasks = new ArrayList<>();
        for (int i = 0; i < w; i++) {
            int worker = i;
            tasks.add(() -> {
                Sender s = new Sender(workerPubs[worker]);
                for (int c = 0; c < chunks; c++) {
                    s.send(worker, c, r, gradViews[worker], c);
                }
                receive(workerSubs[worker], (buffer, offset, length, header) -> {
                    int c = buffer.getInt(offset + 4);
                    workerParams[worker].putBytes((int) plan.chunkOffset(c) * 4, buffer, offset + MessageHeader.LENGTH,
                            length - MessageHeader.OVERHEAD);
                }, chunks);
                return null;
            });
        }
        Callable<Void> server = () -> {
            receive(serverSub, (buffer, offset, length, header) -> {
                int worker = buffer.getInt(offset);
                int c = buffer.getInt(offset + 4);
                staging[worker].putBytes((int) plan.chunkOffset(c) * 4, buffer, offset + MessageHeader.LENGTH,
                        length - MessageHeader.OVERHEAD);
            }, chunks * w);
            for (int i = 0; i < w; i++) {
                Sender s = new Sender(serverPubs[i]);
                for (int c = 0; c < chunks; c++) {
                    s.send(i, c, r, serverParams, c);
                }
            }
            return null;
        };
        return timeAll(workerPool, tasks, List.of(Map.entry(serverPool, server)));
    }

    private void receive(Subscription sub, FragmentHandler handler, int expected) {
        AtomicInteger got = new AtomicInteger();
        FragmentAssembler a = new FragmentAssembler((buffer, offset, length, header) -> {
            handler.onFragment(buffer, offset, length, header);
            got.incrementAndGet();
        });
        IdleStrategy idleS = idleStrategy();
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(TIMEOUT_MS);
        while (got.get() < expected) {
            if (sub.poll(a, 16) == 0) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("raw receive got " + got.get() + " of " + expected + " frames in "
                            + TIMEOUT_MS + " ms");
                }
                idleS.idle();
            } else {
                idleS.reset();
            }
        }
    }

    /** Offers (header, chunk, zero tag) as one vectored frame, retrying under back pressure (bounded). */
    private final class Sender {
        final ExclusivePublication pub;
        final UnsafeBuffer header = new UnsafeBuffer(ByteBuffer.allocateDirect(MessageHeader.LENGTH));
        final UnsafeBuffer tag = new UnsafeBuffer(ByteBuffer.allocateDirect(MessageHeader.TAG_LENGTH));
        final DirectBufferVector vPayload = new DirectBufferVector();
        final DirectBufferVector[] vectors = {new DirectBufferVector(header, 0, MessageHeader.LENGTH), vPayload,
            new DirectBufferVector(tag, 0, MessageHeader.TAG_LENGTH)};
        final IdleStrategy idleS = idleStrategy();

        Sender(ExclusivePublication pub) {
            this.pub = pub;
        }

        void send(int worker, int c, long r, DirectBuffer src, int chunk) {
            header.putInt(0, worker);
            header.putInt(4, c);
            header.putLong(8, r);
            vPayload.reset(src, (int) plan.chunkOffset(chunk) * 4, plan.chunkLength(chunk) * 4);
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(10_000);
            idleS.reset();
            while (true) {
                long p = pub.offer(vectors);
                if (p > 0) {
                    return;
                }
                if (p == Publication.CLOSED || p == Publication.MAX_POSITION_EXCEEDED || System.nanoTime() > deadline) {
                    throw new IllegalStateException("raw offer on " + pub.channel() + " failed: " + p);
                }
                idleS.idle();
            }
        }
    }

    @Override
    public void close() {
        CloseHelper.quietCloseAll(serverPubs);
        CloseHelper.quietCloseAll(workerPubs);
        CloseHelper.quietCloseAll(workerSubs);
        CloseHelper.quietClose(serverSub);
        CloseHelper.quietCloseAll(workerAeron);
        CloseHelper.quietClose(serverAeron);
    }
}
