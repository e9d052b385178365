package io.catena.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.kernel.Parallel;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The kernel thread team: every row exactly once, failures surface, concurrent callers stay apart. */
class ParallelTest {
    private final int saved = Parallel.threads();

    @AfterEach
    void restore() {
        Parallel.setThreads(saved);
    }

    private static int[] visitCounts(int rows) {
        int[] seen = new int[rows];
        Parallel.forRows(rows, (from, to) -> {
            for (int r = from; r < to; r++) {
                seen[r]++;
            }
        });
        return seen;
    }

    @Test
    void everyRowRunsExactlyOnceForAnyThreadCount() {
        for (int threads : new int[] {1, 2, 3, 5}) {
            Parallel.setThreads(threads);
            for (int rows : new int[] {0, 1, 15, 16, 33, 2048, 2049}) {
                int[] expected = new int[rows];
                java.util.Arrays.fill(expected, 1);
                // many back-to-back calls: the hand-off between spinning and parked helpers must not lose a task
                for (int rep = 0; rep < 200; rep++) {
                    assertArrayEquals(expected, visitCounts(rows), threads + " threads, " + rows + " rows");
                }
            }
        }
    }

    @Test
    void aHelperFailureReachesTheCallerAndTheTeamKeepsWorking() {
        Parallel.setThreads(2);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Parallel.forRows(64, (from, to) -> {
            if (from > 0) {
                throw new IllegalArgumentException("row " + from + " is bad");
            }
        }));
        assertEquals("row 32 is bad", e.getMessage());
        int[] ones = new int[64];
        java.util.Arrays.fill(ones, 1);
        assertArrayEquals(ones, visitCounts(64));
    }

    @Test
    void concurrentCallersEachGetTheirOwnTeam() throws Exception {
        Parallel.setThreads(2);
        ExecutorService callers = Executors.newFixedThreadPool(4);
        try {
            List<Future<long[]>> results = new ArrayList<>();
            for (int c = 0; c < 4; c++) {
                final int id = c;
                results.add(callers.submit(() -> {
                    long[] sums = new long[500];
                    for (int rep = 0; rep < sums.length; rep++) {
                        long[] partial = new long[2];
                        Parallel.forParts(1000, (part, from, to) -> {
                            for (int r = from; r < to; r++) {
                                partial[part] += r * (long) (id + 1);
                            }
                        });
                        sums[rep] = partial[0] + partial[1];
                    }
                    return sums;
                }));
            }
            for (int c = 0; c < 4; c++) {
                long expected = (c + 1) * 999L * 1000 / 2;
                for (long s : results.get(c).get(60, TimeUnit.SECONDS)) {
                    assertEquals(expected, s, "caller " + c);
                }
            }
        } finally {
            callers.shutdownNow();
            assertTrue(callers.awaitTermination(10, TimeUnit.SECONDS));
        }
    }
}
