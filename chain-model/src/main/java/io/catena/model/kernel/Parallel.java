package io.catena.model.kernel;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * Splits row loops of the memory-bound kernels over a small fixed team of threads. The split depends
 * only on the row count and the thread count, never on timing, so every run computes the same floats
 * in the same order (resume must be bit-for-bit).
 *
 * <p>A training step makes ~220 of these calls, most of them a few hundred microseconds long, so the
 * hand-off itself must be cheap: an executor's submit + Future.get cost 42-60 us per call here (two
 * futex wake-ups on a KVM guest; {@code MicroBench handoff}), this team < 1 us. A team's helper threads spin
 * briefly ({@link #HELPER_SPIN_NANOS}) for the next task before they park, and the caller spins
 * while it waits for its helpers (its own core would be idle anyway). Concurrent callers (pipeline
 * stages, Spark tasks in one JVM) each take a team of their own from an idle list.
 */
public final class Parallel {

    /** Rows below which splitting costs more than it saves. */
    private static final int MIN_ROWS_PER_TASK = 16;
    private static final long TASK_TIMEOUT_SECONDS = 600;

    public interface RowRange {
        void run(int from, int to);
    }

    private static volatile int threads = Math.max(1, Integer.getInteger("catena.kernel.threads",
            Runtime.getRuntime().availableProcessors()));

    private Parallel() {
    }

    public static int threads() {
        return threads;
    }

    /** Sets the kernel thread count (1 = run on the caller thread). */
    public static synchronized void setThreads(int n) {
        if (n < 1) {
            throw new IllegalArgumentException("kernel threads must be >= 1, got " + n);
        }
        threads = n;
    }

    /**
     * Splits [0, rows) into exactly {@code parts(rows)} contiguous ranges (a pure function of rows and
     * the thread count) and runs {@code body(part, from, to)} for each; used where each part keeps
     * its own partial result that the caller combines in part order.
     */
    public interface PartRange {
        void run(int part, int from, int to);
    }

    public static int parts(int rows) {
        return Math.max(1, Math.min(threads, rows / MIN_ROWS_PER_TASK));
    }

    public static void forParts(int rows, PartRange body) {
        int parts = parts(rows);
        int chunk = (rows + parts - 1) / parts;
        forRows(parts * MIN_ROWS_PER_TASK, (from, to) -> {
            for (int p = from / MIN_ROWS_PER_TASK; p < to / MIN_ROWS_PER_TASK; p++) {
                body.run(p, Math.min(rows, p * chunk), Math.min(rows, (p + 1) * chunk));
            }
        });
    }

    /**
     * Runs {@code body} over [0, units) in at most {@link #threads()} contiguous ranges, splitting even a few
     * units: for heavy ones (an attention (head, sequence) pair at long T takes milliseconds) that
     * {@link #forRows}'s 16-row minimum would leave on one thread. The split is a pure function of units and threads.
     */
    public static void forUnits(int units, RowRange body) {
        forRows(units * MIN_ROWS_PER_TASK, (from, to) -> {
            int u0 = (from + MIN_ROWS_PER_TASK - 1) / MIN_ROWS_PER_TASK, u1 = (to + MIN_ROWS_PER_TASK - 1) / MIN_ROWS_PER_TASK;
            if (u0 < u1) {
                body.run(u0, u1);
            }
        });
    }

    /** Calls since start that were split over threads (benchmarks' breakdowns). */
    public static final java.util.concurrent.atomic.LongAdder SPLIT_CALLS = new java.util.concurrent.atomic.LongAdder();

    /** Runs {@code body} over [0, rows) split into at most {@link #threads()} contiguous ranges. */
    public static void forRows(int rows, RowRange body) {
        int parts = Math.min(threads, Math.max(1, rows / MIN_ROWS_PER_TASK));
        if (parts <= 1) {
            body.run(0, rows);
            return;
        }
        SPLIT_CALLS.increment();
        Team team = Team.acquire(parts - 1);
        try {
            team.run(rows, parts, body);
        } finally {
            Team.release(team);
        }
    }

    /** How long an idle helper spins for the next task before it parks. */
    static final long HELPER_SPIN_NANOS = 30_000;

    /** How long a caller spins for its helpers before it parks (its core has nothing else to do). */
    static final long CALLER_SPIN_NANOS = 2_000_000;

    /** Helper threads that run parts 1..n of a split; part 0 runs on the caller. */
    private static final class Team {
        private static final java.util.concurrent.ConcurrentLinkedQueue<Team> IDLE = new java.util.concurrent.ConcurrentLinkedQueue<>();
        private final Helper[] helpers;
        private boolean allIdle = true;

        private Team(int size) {
            helpers = new Helper[size];
            for (int i = 0; i < size; i++) {
                helpers[i] = new Helper();
            }
        }

        /** An idle team of at least {@code size} helpers, or a new one. */
        static Team acquire(int size) {
            Team t = IDLE.poll();
            while (t != null && t.helpers.length < size) {
                t.retire();
                t = IDLE.poll();
            }
            return t != null ? t : new Team(size);
        }

        /** Back to the idle list; a team whose helpers may still be running (timeout, interrupt) is retired. */
        static void release(Team t) {
            if (t.allIdle) {
                IDLE.offer(t);
            } else {
                t.retire();
            }
        }

        private void retire() {
            for (Helper h : helpers) {
                h.retire();
            }
        }

        void run(int rows, int parts, RowRange body) {
            int chunk = (rows + parts - 1) / parts;
            allIdle = false;
            for (int p = 1; p < parts; p++) {
                int from = p * chunk;
                helpers[p - 1].post(body, from, Math.min(rows, from + chunk));
            }
            Throwable failure = null;
            try {
                body.run(0, Math.min(rows, chunk));
            } catch (Throwable t) {
                failure = t;
            }
            // wait for every helper even when part 0 failed: none may still be writing afterwards
            for (int p = 1; p < parts; p++) {
                Throwable f = helpers[p - 1].await();
                if (failure == null) {
                    failure = f;
                }
            }
            allIdle = true;
            if (failure instanceof RuntimeException e) {
                throw e;
            }
            if (failure instanceof Error e) {
                throw e;
            }
            if (failure != null) {
                throw new IllegalStateException("a kernel task failed: " + failure, failure);
            }
        }
    }

    /**
     * One helper thread. The caller writes the task fields, then the volatile {@code posted}; the
     * helper runs it and writes the volatile {@code completed}. Before parking, the helper sets
     * {@code helperParked} and the caller sets {@code waiter}, and each re-checks its condition; the
     * other side reads that field after its own volatile write, so no wake-up is lost.
     */
    private static final class Helper implements Runnable {
        private final Thread thread;
        private RowRange body;
        private int from;
        private int to;
        private Throwable failure;
        private volatile long posted;
        private volatile long completed;
        private volatile boolean helperParked;
        private volatile Thread waiter;
        private volatile boolean retired;

        Helper() {
            thread = new Thread(this, "catena-kernel");
            thread.setDaemon(true);
            thread.start();
        }

        void post(RowRange task, int taskFrom, int taskTo) {
            body = task;
            from = taskFrom;
            to = taskTo;
            failure = null;
            posted = posted + 1;
            if (helperParked) {
                LockSupport.unpark(thread);
            }
        }

        /** Waits for the posted task; returns what it threw, or null. */
        Throwable await() {
            long target = posted;
            long start = System.nanoTime();
            long deadline = start + TimeUnit.SECONDS.toNanos(TASK_TIMEOUT_SECONDS);
            while (completed != target) {
                long now = System.nanoTime();
                if (now - start < CALLER_SPIN_NANOS) {
                    Thread.onSpinWait();
                    continue;
                }
                if (now - deadline > 0) {
                    throw new IllegalStateException("a kernel task did not finish within " + TASK_TIMEOUT_SECONDS + " s");
                }
                waiter = Thread.currentThread();
                if (completed != target) {
                    LockSupport.parkNanos(this, Math.min(deadline - now, 1_000_000L));
                }
                waiter = null;
                if (Thread.interrupted()) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException("interrupted while waiting for a kernel task");
                }
            }
            return failure;
        }

        void retire() {
            retired = true;
            LockSupport.unpark(thread);
        }

        @Override
        public void run() {
            long seen = 0;
            while (!retired) {
                long idleSince = System.nanoTime();
                while (posted == seen && !retired) {
                    if (System.nanoTime() - idleSince < HELPER_SPIN_NANOS) {
                        Thread.onSpinWait();
                        continue;
                    }
                    helperParked = true;
                    if (posted == seen && !retired) {
                        LockSupport.park(this);
                    }
                    helperParked = false;
                }
                if (retired) {
                    return;
                }
                seen = posted;
                try {
                    body.run(from, to);
                } catch (Throwable t) {
                    failure = t;
                }
                body = null;
                completed = seen;
                Thread w = waiter;
                if (w != null) {
                    LockSupport.unpark(w);
                }
            }
        }
    }
}
