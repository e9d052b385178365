package io.catena.model.pipeline;

import io.catena.model.kernel.Mat;
import java.util.List;

/**
 * Runs one stage's schedule for a training step over its links: receives activations from the
 * previous stage and gradients from the next, computes, sends the results on. Times compute
 * apart from waiting for neighbours (the bubble) and sending. One runner per stage thread.
 */
public final class PipelineRunner {

    /**
     * Where a stage's time went in one step: computing, blocked in receive (waiting for a neighbour:
     * bubble and transfer), and in send (copying out; over a network, also back-pressure).
     */
    public record StepTiming(long computeNanos, long waitNanos, long sendNanos) {
        public long totalNanos() {
            return computeNanos + waitNanos + sendNanos;
        }

        /** Share of the step this stage was not computing. */
        public double idleFraction() {
            long total = totalNanos();
            return total == 0 ? 0.0 : (waitNanos + sendNanos) / (double) total;
        }
    }

    /** Per-scale mean losses over the step's micro-batches (last stage only, else null) and the timing. */
    public record StepResult(double[] losses, StepTiming timing) {
    }

    private final PipelineStage stage;
    private final PipelineSchedule.Kind kind;
    private final int micros;
    private final List<PipelineSchedule.Op> ops;
    private final StageLink previous;
    private final StageLink next;
    private final long timeoutMillis;
    /** Per op of the last step: receive start, compute start, compute end, send end (System.nanoTime). */
    private final long[] trace;

    /**
     * @param previous      the link to stage s-1 (null on the first stage)
     * @param next          the link to stage s+1 (null on the last stage)
     * @param timeoutMillis the longest wait for a neighbour's tensor (or for room to send one)
     */
    public PipelineRunner(PipelineStage stage, PipelineSchedule.Kind kind, int numStages, int microBatches, StageLink previous,
                          StageLink next, long timeoutMillis) {
        int s = stage.index();
        this.ops = PipelineSchedule.ops(kind, numStages, s, microBatches);
        int need = PipelineSchedule.slots(kind, numStages, s, microBatches);
        if (stage.slots() < need) {
            throw new IllegalArgumentException("stage " + s + " has " + stage.slots() + " micro-batch slot(s) but " + kind.label() + " with pp="
                    + numStages + " and " + microBatches + " micro-batches needs " + need);
        }
        if (stage.isFirst() != (previous == null) || stage.isLast() != (next == null) || stage.isLast() != (s == numStages - 1)) {
            throw new IllegalArgumentException("stage " + s + " of " + numStages + " needs " + (stage.isFirst() ? "no" : "a")
                    + " previous link and " + (stage.isLast() ? "no" : "a") + " next link");
        }
        checkLink(previous, s, s - 1);
        checkLink(next, s, s + 1);
        if (timeoutMillis < 1) {
            throw new IllegalArgumentException("link timeout must be >= 1 ms, got " + timeoutMillis);
        }
        this.stage = stage;
        this.kind = kind;
        this.micros = microBatches;
        this.previous = previous;
        this.next = next;
        this.timeoutMillis = timeoutMillis;
        this.trace = new long[4 * ops.size()];
    }

    /** The last step's op timeline: for op i, [4i] receive start, [4i+1] compute start, [4i+2] compute end, [4i+3] send end. */
    public long[] lastStepTrace() {
        return trace.clone();
    }

    private static void checkLink(StageLink link, int local, int peer) {
        if (link != null && (link.localStage() != local || link.peerStage() != peer)) {
            throw new IllegalArgumentException("stage " + local + " was given the link " + link.localStage() + " -> " + link.peerStage()
                    + " where it needs " + local + " -> " + peer);
        }
    }

    public List<PipelineSchedule.Op> ops() {
        return ops;
    }

    public PipelineSchedule.Kind kind() {
        return kind;
    }

    /**
     * One step. The first stage reads micro-batch m's tokens at inputs[m * rows, +rows), the last its
     * targets at targets[m * rows, +rows) (rows = micro-batch x seq_len); other stages pass null.
     * The arrays must stay unchanged until the step returns. Gradients of chains >= frozenChains
     * of this stage's parameter ranges are overwritten with the step's gradient.
     */
    public StepResult runStep(long step, int[] inputs, int[] targets, int frozenChains) {
        int rows = stage.rows();
        if (stage.isFirst()) {
            requireTokens(inputs, "inputs", rows);
        }
        if (stage.isLast()) {
            requireTokens(targets, "targets", rows);
        }
        stage.beginStep(micros, frozenChains);
        double[] losses = stage.isLast() ? new double[stage.scales()] : null;
        for (int i = 0; i < ops.size(); i++) {
            PipelineSchedule.Op op = ops.get(i);
            int m = op.micro();
            trace[4 * i] = System.nanoTime();
            Mat out;
            if (op.forward()) {
                if (previous != null) {
                    previous.receive(StageLink.Kind.ACTIVATION, step, m, stage.inputActivation(m), timeoutMillis);
                }
                trace[4 * i + 1] = System.nanoTime();
                out = stage.forward(m, stage.isFirst() ? inputs : null, m * rows);
                if (stage.isLast()) {
                    double[] l = stage.loss(m, targets, m * rows);
                    for (int j = 0; j < l.length; j++) {
                        losses[j] += l[j] / micros;
                    }
                }
            } else {
                if (next != null) {
                    next.receive(StageLink.Kind.GRADIENT, step, m, stage.outputGradient(m), timeoutMillis);
                }
                trace[4 * i + 1] = System.nanoTime();
                out = stage.backward(m);
            }
            trace[4 * i + 2] = System.nanoTime();
            StageLink to = op.forward() ? next : previous;
            if (to != null) {
                to.send(op.forward() ? StageLink.Kind.ACTIVATION : StageLink.Kind.GRADIENT, step, m, out, timeoutMillis);
            }
            trace[4 * i + 3] = System.nanoTime();
        }
        long compute = 0;
        long wait = 0;
        long send = 0;
        for (int i = 0; i < ops.size(); i++) {
            wait += trace[4 * i + 1] - trace[4 * i];
            compute += trace[4 * i + 2] - trace[4 * i + 1];
            send += trace[4 * i + 3] - trace[4 * i + 2];
        }
        return new StepResult(losses, new StepTiming(compute, wait, send));
    }

    private void requireTokens(int[] tokens, String what, int rows) {
        long need = (long) micros * rows;
        if (tokens == null || tokens.length < need) {
            throw new IllegalArgumentException("stage " + stage.index() + " needs " + need + " " + what + " (" + micros + " micro-batches x "
                    + rows + " rows), got " + (tokens == null ? "none" : tokens.length));
        }
    }
}
