package io.catena.bench.ps;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadInfo;
import java.lang.management.ThreadMXBean;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/** The numbers {@link PsBench} reports: round-time summaries, CPU time per thread, the machine and its load. */
final class BenchReport {

    private BenchReport() {
    }

    static Map<String, Object> summary(List<Double> ms, long bytesPerRound, Map<String, Long> cpuNs) {
        Map<String, Object> s = new LinkedHashMap<>();
        double med = median(ms);
        s.put("rounds", ms.size());
        s.put("round_ms_p50", med);
        s.put("round_ms_p99", percentile(ms, 0.99));
        s.put("round_ms_min", ms.stream().mapToDouble(Double::doubleValue).min().orElse(Double.NaN));
        s.put("round_ms_max", ms.stream().mapToDouble(Double::doubleValue).max().orElse(Double.NaN));
        s.put("gb_per_s_median", bytesPerRound / (med * 1e6));
        s.put("gb_per_s_best", bytesPerRound / (ms.stream().mapToDouble(Double::doubleValue).min().orElse(Double.NaN) * 1e6));
        s.put("round_ms_all", ms);
        Map<String, Object> cpu = new LinkedHashMap<>();
        cpuNs.entrySet().stream().sorted(Map.Entry.<String, Long>comparingByValue().reversed())
                .filter(e -> e.getValue() > 1_000_000L * ms.size())
                .forEach(e -> cpu.put(e.getKey(), e.getValue() / 1e6 / ms.size()));
        s.put("cpu_ms_per_round_by_thread", cpu);
        return s;
    }

    static double median(List<Double> xs) {
        return percentile(xs, 0.5);
    }

    /** Nearest-rank percentile (with few rounds, p99 is the slowest round). */
    static double percentile(List<Double> xs, double q) {
        if (xs.isEmpty()) {
            return Double.NaN;
        }
        double[] s = xs.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        if (q == 0.5 && s.length % 2 == 0) {
            return (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
        }
        int rank = (int) Math.ceil(q * s.length);
        return s[Math.max(0, Math.min(s.length - 1, rank - 1))];
    }

    /** CPU time of every live thread, summed by name with digits replaced (pool threads merged). */
    static Map<String, Long> threadCpu() {
        ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        Map<String, Long> m = new HashMap<>();
        for (long id : mx.getAllThreadIds()) {
            ThreadInfo ti = mx.getThreadInfo(id);
            long t = mx.getThreadCpuTime(id);
            if (ti != null && t > 0) {
                m.merge(ti.getThreadName().replaceAll("\\d+", "#") + "@" + id, t, Long::sum);
            }
        }
        return m;
    }

    static void addDiff(Map<String, Long> acc, Map<String, Long> before, Map<String, Long> after) {
        for (Map.Entry<String, Long> e : after.entrySet()) {
            long d = e.getValue() - before.getOrDefault(e.getKey(), 0L);
            acc.merge(e.getKey().replaceAll("@\\d+$", ""), d, Long::sum);
        }
    }

    static Map<String, Object> machine() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("nproc", Runtime.getRuntime().availableProcessors());
        try (Stream<String> lines = Files.lines(Path.of("/proc/cpuinfo"))) {
            m.put("cpu", lines.filter(l -> l.startsWith("model name")).findFirst().map(l -> l.replaceFirst(".*:\\s*", ""))
                    .orElse("?"));
        } catch (IOException e) {
            m.put("cpu", "?");
        }
        m.put("java", System.getProperty("java.vm.name") + " " + System.getProperty("java.runtime.version"));
        m.put("os", System.getProperty("os.name") + " " + System.getProperty("os.version"));
        m.put("max_heap_mb", Runtime.getRuntime().maxMemory() >> 20);
        m.put("aeron", io.aeron.AeronVersion.VERSION);
        return m;
    }

    static String fsOf(Path p) {
        try {
            return Files.getFileStore(p).type() + " (" + Files.getFileStore(p).name() + ")";
        } catch (IOException e) {
            return "?";
        }
    }

    static String loadavg() {
        try {
            return Files.readString(Path.of("/proc/loadavg")).trim();
        } catch (IOException e) {
            return "?";
        }
    }

    static double[] loadavgArray() {
        String[] f = loadavg().split("\\s+");
        try {
            return new double[] {Double.parseDouble(f[0]), Double.parseDouble(f[1]), Double.parseDouble(f[2])};
        } catch (RuntimeException e) {
            return new double[0];
        }
    }
}
