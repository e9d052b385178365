package io.catena.bench.ps;

import io.catena.model.Params;
import java.io.IOException;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.IdleStrategy;
import org.agrona.concurrent.UnsafeBuffer;

/** Plumbing shared by {@link PsBench} and its peers: timing a round, threads, buffers, ports, sizes, files. */
final class BenchSupport {

    private BenchSupport() {
    }

    /** Runs the tasks (and the extra ones on their own pools) at once; returns the wall time until all are done, ms. */
    static double timeAll(ExecutorService pool, List<Callable<Void>> tasks,
                                  List<Map.Entry<ExecutorService, Callable<Void>>> extra) throws Exception {
        long t = System.nanoTime();
        List<Future<Void>> fs = new ArrayList<>();
        for (Map.Entry<ExecutorService, Callable<Void>> e : extra) {
            fs.add(e.getKey().submit(e.getValue()));
        }
        for (Callable<Void> c : tasks) {
            fs.add(pool.submit(c));
        }
        for (Future<Void> f : fs) {
            f.get(2 * PsBench.TIMEOUT_MS, TimeUnit.MILLISECONDS);
        }
        return (System.nanoTime() - t) / 1e6;
    }

    /** The Agrona idle strategy named by --idle. */
    static IdleStrategy idleStrategy(String idle) {
        return switch (idle) {
            case "backoff" -> new BackoffIdleStrategy(10, 20, TimeUnit.MICROSECONDS.toNanos(1), TimeUnit.MICROSECONDS.toNanos(500));
            case "yield" -> new org.agrona.concurrent.YieldingIdleStrategy();
            case "busy" -> new org.agrona.concurrent.BusySpinIdleStrategy();
            case "sleep" -> new org.agrona.concurrent.SleepingMillisIdleStrategy(1);
            default -> throw new IllegalArgumentException("--idle backoff|yield|busy|sleep, got " + idle);
        };
    }

    static java.util.concurrent.ThreadFactory named(String name) {
        AtomicInteger n = new AtomicInteger();
        return r -> {
            Thread t = new Thread(r, name + "-" + n.getAndIncrement());
            t.setDaemon(true);
            return t;
        };
    }

    static UnsafeBuffer view(Params p) {
        return new UnsafeBuffer(p.flat().data().asNio(), 0, (int) (p.layout().size() * 4));
    }

    static int freeUdpPort() throws IOException {
        try (DatagramSocket s = new DatagramSocket(0, InetAddress.getByName("127.0.0.1"))) {
            return s.getLocalPort();
        }
    }

    static long size(String v) {
        return io.catena.ps.Configuration.parseSize(v);
    }

    static void deleteRecursively(Path p) throws IOException {
        if (!Files.exists(p)) {
            return;
        }
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(q);
            }
        }
    }
}
