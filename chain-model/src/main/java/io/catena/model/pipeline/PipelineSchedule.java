package io.catena.model.pipeline;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The order in which one stage runs the forwards F(m) and backwards B(m) of a step's M micro-batches.
 * GPipe: all forwards, then all backwards (every stage holds M micro-batches' activations).
 * 1F1B: P-s warm-up forwards (none on the last stage), then alternate one forward and one backward,
 * then the remaining backwards; stage s < P-1 holds at most min(M, P-s+1) micro-batches, the last
 * stage one (see {@link #warmupForwards} for the one of slack over the textbook's P-1-s). Both leave the same bubble,
 * (P-1)/(M+P-1) of the step when every stage takes equally long; 1F1B needs far less memory.
 */
public final class PipelineSchedule {

    public enum Kind {
        GPIPE, ONE_F_ONE_B;

        /** "gpipe" or "1f1b" (the --schedule option). */
        public static Kind parse(String s) {
            return switch (s.trim().toLowerCase()) {
                case "gpipe" -> GPIPE;
                case "1f1b", "one-f-one-b", "pipedream-flush" -> ONE_F_ONE_B;
                default -> throw new IllegalArgumentException("schedule must be gpipe or 1f1b, got '" + s + "'");
            };
        }

        public String label() {
            return this == GPIPE ? "gpipe" : "1f1b";
        }
    }

    /** One operation of a stage: the forward or the backward of micro-batch {@code micro}. */
    public record Op(boolean forward, int micro) {
        @Override
        public String toString() {
            return (forward ? "F" : "B") + micro;
        }
    }

    private PipelineSchedule() {
    }

    /** The ops stage {@code stage} of {@code numStages} runs in one step of {@code micros} micro-batches. */
    public static List<Op> ops(Kind kind, int numStages, int stage, int micros) {
        check(numStages, stage, micros);
        List<Op> ops = new ArrayList<>(2 * micros);
        if (kind == Kind.GPIPE) {
            for (int m = 0; m < micros; m++) {
                ops.add(new Op(true, m));
            }
            for (int m = 0; m < micros; m++) {
                ops.add(new Op(false, m));
            }
            return Collections.unmodifiableList(ops);
        }
        return oneFOneB(micros, Math.min(micros, warmupForwards(numStages, stage)));
    }

    /** 1F1B order with {@code warmup} forwards before the first backward. */
    static List<Op> oneFOneB(int micros, int warmup) {
        List<Op> ops = new ArrayList<>(2 * micros);
        int f = 0;
        int b = 0;
        while (f < warmup) {
            ops.add(new Op(true, f++));
        }
        while (f < micros) {
            ops.add(new Op(true, f++));
            ops.add(new Op(false, b++));
        }
        while (b < micros) {
            ops.add(new Op(false, b++));
        }
        return Collections.unmodifiableList(ops);
    }

    /** Micro-batches whose activations stage {@code stage} must hold at once: M for GPipe; for 1F1B min(M, P-s+1), 1 on the last stage. */
    public static int slots(Kind kind, int numStages, int stage, int micros) {
        check(numStages, stage, micros);
        return kind == Kind.GPIPE ? micros : Math.min(micros, warmupForwards(numStages, stage) + 1);
    }

    /**
     * 1F1B's forwards before stage s's first backward: P-s on every stage but the last (which runs none).
     * The textbook P-1-s is the least that keeps the pipeline full when every op takes exactly as long
     * as planned; one more gives each stage a micro-batch of slack, so a gradient arriving late from
     * downstream does not starve the next stage of its forward input (measured on 2 stages, m=8: the
     * step's wall drops to within ~1% of the critical path). It costs one activation slot per stage.
     */
    static int warmupForwards(int numStages, int stage) {
        return stage == numStages - 1 ? 0 : numStages - stage;
    }

    /** Largest number of micro-batches forwarded and not yet backwarded at any point of the ops. */
    public static int maxInFlight(List<Op> ops) {
        int inFlight = 0;
        int max = 0;
        for (Op op : ops) {
            inFlight += op.forward() ? 1 : -1;
            max = Math.max(max, inFlight);
        }
        return max;
    }

    /** The idle share of a step when every stage's ops take equally long: (P-1)/(M+P-1). */
    public static double theoreticalBubble(int numStages, int micros) {
        check(numStages, 0, micros);
        return (numStages - 1.0) / (micros + numStages - 1.0);
    }

    /** How long op runs on stage s, for {@link #simulatedMakespan}. */
    @FunctionalInterface
    public interface OpTime {
        double of(int stage, Op op);
    }

    /**
     * Runs every stage's ops on an ideal clock (forward takes forwardTime, backward backwardTime,
     * transfers are free) honouring the dependencies: F(s, m) after F(s-1, m), B(s, m) after
     * B(s+1, m), each stage in its own op order. Returns the idle share of stage time over the
     * step, or throws if the stages would wait on each other forever.
     */
    public static double simulatedBubble(Kind kind, int numStages, int micros, double forwardTime, double backwardTime) {
        check(numStages, 0, micros);
        List<List<Op>> all = new ArrayList<>();
        for (int s = 0; s < numStages; s++) {
            all.add(ops(kind, numStages, s, micros));
        }
        double makespan = simulatedMakespan(all, micros, (s, op) -> op.forward() ? forwardTime : backwardTime);
        return 1.0 - micros * (forwardTime + backwardTime) / makespan;
    }

    /** The step's length when stage s runs the ops schedules.get(s) in order, each taking time.of(s, op). */
    public static double simulatedMakespan(List<List<Op>> schedules, int micros, OpTime time) {
        int numStages = schedules.size();
        double[][] fwdDone = new double[numStages][micros];
        double[][] bwdDone = new double[numStages][micros];
        for (int s = 0; s < numStages; s++) {
            java.util.Arrays.fill(fwdDone[s], Double.NaN);
            java.util.Arrays.fill(bwdDone[s], Double.NaN);
        }
        int[] next = new int[numStages];
        double[] clock = new double[numStages];
        int remaining = numStages * 2 * micros;
        while (remaining > 0) {
            boolean progressed = false;
            for (int s = 0; s < numStages; s++) {
                while (next[s] < schedules.get(s).size()) {
                    Op op = schedules.get(s).get(next[s]);
                    int m = op.micro();
                    double ready;
                    if (op.forward()) {
                        ready = s == 0 ? 0 : fwdDone[s - 1][m];
                    } else {
                        ready = s == numStages - 1 ? fwdDone[s][m] : bwdDone[s + 1][m];
                        if (Double.isNaN(fwdDone[s][m])) {
                            throw new IllegalStateException("stage " + s + " runs " + op + " before F" + m);
                        }
                    }
                    if (Double.isNaN(ready)) {
                        break; // waits for a neighbour
                    }
                    double end = Math.max(clock[s], ready) + time.of(s, op);
                    clock[s] = end;
                    (op.forward() ? fwdDone : bwdDone)[s][m] = end;
                    next[s]++;
                    remaining--;
                    progressed = true;
                }
            }
            if (!progressed) {
                throw new IllegalStateException("the schedules of " + numStages + " stages and " + micros
                        + " micro-batches deadlock: every stage waits for a neighbour");
            }
        }
        double makespan = 0;
        for (double c : clock) {
            makespan = Math.max(makespan, c);
        }
        return makespan;
    }

    private static void check(int numStages, int stage, int micros) {
        if (numStages < 1) {
            throw new IllegalArgumentException("pipeline needs at least 1 stage, got pp=" + numStages);
        }
        if (stage < 0 || stage >= numStages) {
            throw new IllegalArgumentException("stage " + stage + " is outside 0.." + (numStages - 1));
        }
        if (micros < 1) {
            throw new IllegalArgumentException("need at least 1 micro-batch per step, got " + micros);
        }
    }
}
