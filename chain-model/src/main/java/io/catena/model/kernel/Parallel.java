package io.catena.model.kernel;

import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Splits row loops of the memory-bound kernels over a small fixed pool. The split depends only on
 * the row count and the thread count, never on timing, so every run computes the same floats in
 * the same order (resume must be bit-for-bit).
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
    private static ExecutorService pool;

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

    private static synchronized ExecutorService pool() {
        if (pool == null) {
            pool = Executors.newCachedThreadPool(r -> {
                Thread t = new Thread(r, "catena-kernel");
                t.setDaemon(true);
                return t;
            });
        }
        return pool;
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

    /** Runs {@code body} over [0, rows) split into at most {@link #threads()} contiguous ranges. */
    /** Calls since start that were split over threads (benchmarks' breakdowns). */
    public static final java.util.concurrent.atomic.LongAdder SPLIT_CALLS = new java.util.concurrent.atomic.LongAdder();

    public static void forRows(int rows, RowRange body) {
        int parts = Math.min(threads, Math.max(1, rows / MIN_ROWS_PER_TASK));
        if (parts <= 1) {
            body.run(0, rows);
            return;
        }
        SPLIT_CALLS.increment();
        @SuppressWarnings("unchecked")
        Future<?>[] futures = new Future<?>[parts - 1];
        int chunk = (rows + parts - 1) / parts;
        for (int p = 1; p < parts; p++) {
            int from = p * chunk;
            int to = Math.min(rows, from + chunk);
            futures[p - 1] = pool().submit(() -> body.run(from, to));
        }
        body.run(0, Math.min(rows, chunk));
        for (Future<?> f : futures) {
            try {
                f.get(TASK_TIMEOUT_SECONDS, TimeUnit.SECONDS);
            } catch (TimeoutException e) {
                throw new IllegalStateException("a kernel task did not finish within " + TASK_TIMEOUT_SECONDS + " s", e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while waiting for a kernel task", e);
            } catch (java.util.concurrent.ExecutionException e) {
                throw new IllegalStateException("a kernel task failed: " + e.getCause(), e.getCause());
            }
        }
    }
}
