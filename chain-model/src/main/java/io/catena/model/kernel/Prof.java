package io.catena.model.kernel;

import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;

/** Wall-time per phase of a step, on with -Dcatena.profile=true (benchmarks); a no-op otherwise. */
public final class Prof {
    public static final boolean ON = Boolean.getBoolean("catena.profile");
    private static final Map<String, long[]> TOTALS = new ConcurrentHashMap<>();

    private Prof() {
    }

    public static long start() {
        return ON ? System.nanoTime() : 0L;
    }

    public static void stop(String phase, long start) {
        if (ON) {
            TOTALS.computeIfAbsent(phase, k -> new long[1])[0] += System.nanoTime() - start;
        }
    }

    /** Milliseconds per phase since the last reset. */
    public static Map<String, Double> snapshot() {
        Map<String, Double> m = new TreeMap<>();
        TOTALS.forEach((k, v) -> m.put(k, v[0] / 1e6));
        return m;
    }

    public static void reset() {
        TOTALS.clear();
    }
}
