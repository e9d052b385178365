package io.catena.model.pipeline;

import io.catena.model.kernel.Mat;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * A {@link StageLink} between two threads of one process (tests, single-host runs): each direction
 * is a bounded queue of at most {@code capacity} messages whose tensors live in buffers allocated
 * at the first send and recycled after receipt, so later steps allocate nothing. One thread per end.
 */
public final class InMemoryStageLink implements StageLink {

    /** Both ends of the link between stage {@code upstream.localStage()} and the next one. */
    public record Pair(InMemoryStageLink upstream, InMemoryStageLink downstream) {
    }

    private record Message(long step, int micro, Mat data) {
    }

    /** One direction: sent messages, and the buffers free for the next send. */
    private static final class Channel {
        final ArrayBlockingQueue<Message> messages;
        final ArrayBlockingQueue<Mat> free;
        final int capacity;
        boolean allocated;

        Channel(int capacity) {
            this.capacity = capacity;
            this.messages = new ArrayBlockingQueue<>(capacity);
            this.free = new ArrayBlockingQueue<>(capacity);
        }
    }

    private final int local;
    private final int peer;
    private final Kind sends;
    private final Channel out;
    private final Channel in;

    private InMemoryStageLink(int local, int peer, Kind sends, Channel out, Channel in) {
        this.local = local;
        this.peer = peer;
        this.sends = sends;
        this.out = out;
        this.in = in;
    }

    /**
     * Connects stage {@code upstreamStage} to stage upstreamStage+1 with room for {@code capacity}
     * tensors in flight per direction (M is always enough: a stage sends M per step and direction).
     */
    public static Pair connect(int upstreamStage, int capacity) {
        if (capacity < 1) {
            throw new IllegalArgumentException("link capacity must be >= 1, got " + capacity);
        }
        Channel down = new Channel(capacity);
        Channel up = new Channel(capacity);
        return new Pair(new InMemoryStageLink(upstreamStage, upstreamStage + 1, Kind.ACTIVATION, down, up),
                new InMemoryStageLink(upstreamStage + 1, upstreamStage, Kind.GRADIENT, up, down));
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
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
        if (!out.allocated) {
            // every buffer at the first send (the shape is known only now), so later steps allocate nothing
            for (int i = 0; i < out.capacity; i++) {
                out.free.add(Mat.allocate(tensor.dataType(), tensor.rows, tensor.cols));
            }
            out.allocated = true;
        }
        Mat buf = out.free.poll();
        if (buf == null) {
            buf = poll(out.free, deadline);
            if (buf == null) {
                throw new StageLinkTimeoutException("stage " + local + " could not send the " + kind.label() + " of step " + step
                        + ", micro-batch " + micro + " to stage " + peer + " within " + timeoutMillis + " ms: all " + out.capacity
                        + " buffers of the link are taken (stage " + peer + " stopped receiving)", local, peer, step, micro);
            }
        }
        if (buf.rows != tensor.rows || buf.cols != tensor.cols || buf.dataType() != tensor.dataType()) {
            buf = Mat.allocate(tensor.dataType(), tensor.rows, tensor.cols); // the model was rebuilt (growth)
        }
        buf.copyFrom(tensor);
        if (!out.messages.offer(new Message(step, micro, buf))) {
            throw new IllegalStateException("link " + local + " -> " + peer + " holds more messages than buffers");
        }
    }

    @Override
    public void receive(Kind kind, long step, int micro, Mat into, long timeoutMillis) {
        StageLink.checkDirection(kind, sends, false, local, peer);
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
        while (true) {
            Message m = poll(in.messages, deadline);
            if (m == null) {
                throw new StageLinkTimeoutException("stage " + local + " received no " + kind.label() + " from stage " + peer
                        + " for step " + step + ", micro-batch " + micro + " within " + timeoutMillis + " ms (is stage " + peer
                        + " alive and running the same schedule?)", local, peer, step, micro);
            }
            try {
                if (m.step() < step) {
                    continue; // left over from an aborted step
                }
                if (m.step() != step || m.micro() != micro) {
                    throw new IllegalStateException("stage " + local + " expected the " + kind.label() + " of step " + step
                            + ", micro-batch " + micro + " from stage " + peer + " but received step " + m.step() + ", micro-batch "
                            + m.micro() + ": the stages run different schedules");
                }
                if (m.data().rows != into.rows || m.data().cols != into.cols) {
                    throw new IllegalArgumentException("stage " + local + " received a " + m.data().rows + "x" + m.data().cols + " "
                            + kind.label() + " from stage " + peer + " (step " + step + ", micro-batch " + micro + ") but expects "
                            + into.rows + "x" + into.cols + ": the stages were built for different shapes or model widths");
                }
                into.copyFrom(m.data());
                return;
            } finally {
                in.free.offer(m.data());
            }
        }
    }

    private static <T> T poll(ArrayBlockingQueue<T> queue, long deadlineNanos) {
        try {
            return queue.poll(Math.max(0, deadlineNanos - System.nanoTime()), TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting on a pipeline link", e);
        }
    }

    @Override
    public String toString() {
        return "in-memory link stage " + local + " <-> stage " + peer;
    }
}
