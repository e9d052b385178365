package io.catena.ps;

import java.io.IOException;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.agrona.concurrent.ShutdownSignalBarrier;

/**
 * {@code catena ps --conf <file> [--restore <ckpt>]}: runs a standalone parameter server until SIGINT/SIGTERM.
 * The conf file holds {@link Configuration} keys (unknown keys are errors). Exit codes: 0 normal stop,
 * 2 bad arguments or settings, 1 any other failure.
 */
public final class ParameterServerMain {
    private ParameterServerMain() {
    }

    public static void main(String[] args) {
        try {
            System.exit(run(args));
        } catch (ConfigurationException | IllegalArgumentException e) {
            System.err.println("catena ps: " + e.getMessage());
            System.exit(2);
        } catch (RuntimeException e) {
            System.err.println("catena ps: " + e.getMessage());
            e.printStackTrace();
            System.exit(1);
        }
    }

    static int run(String[] args) {
        Properties p = new Properties();
        String restore = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--conf" -> p.putAll(loadConf(value(args, ++i, "--conf")));
                case "--restore" -> restore = value(args, ++i, "--restore");
                case "-h", "--help" -> {
                    System.out.println("usage: catena ps --conf <file.properties> [--restore <checkpoint uri>]\n"
                            + "keys: " + new java.util.TreeSet<>(Configuration.KEYS));
                    return 0;
                }
                default -> throw new IllegalArgumentException("unknown argument '" + args[i]
                        + "'; usage: catena ps --conf <file.properties> [--restore <checkpoint uri>]");
            }
        }
        if (restore != null) {
            p.setProperty(Configuration.RESTORE_PROP, restore);
        }
        ParameterServer.Context ctx = new ParameterServer.Context(p);
        // the barrier comes after launch and is closed after the server, so a failed start exits at once and a
        // SIGTERM lets the server close (final snapshot) before the JVM's shutdown hook returns
        try (ParameterServer ps = ParameterServer.launch(ctx); ShutdownSignalBarrier barrier = new ShutdownSignalBarrier()) {
            long interval = Configuration.getLong(p, Configuration.METRICS_INTERVAL_PROP, Configuration.METRICS_INTERVAL_DEFAULT);
            CountDownLatch stop = new CountDownLatch(1);
            Thread reporter = new Thread(() -> {
                try {
                    while (interval > 0 && !stop.await(interval, TimeUnit.MILLISECONDS)) {
                        Map<String, Object> m = new java.util.LinkedHashMap<>(ps.metrics().toMap());
                        m.remove("updates"); // the per-step lr / grad-norm ring is for the driver, not the log
                        System.out.println("catena ps metrics: " + m);
                    }
                } catch (InterruptedException ignored) {
                    Thread.currentThread().interrupt();
                }
            }, "catena-ps-metrics");
            reporter.setDaemon(true);
            reporter.start();
            System.out.println("catena ps: job '" + ctx.jobName() + "' serving on " + ctx.channel() + " stream " + ctx.streamId()
                    + " at version " + ps.version() + " epoch " + ps.epoch() + " (chains " + ps.config().chains() + ")");
            System.out.flush();
            barrier.await();
            stop.countDown();
        }
        return 0;
    }

    private static String value(String[] args, int i, String flag) {
        if (i >= args.length) {
            throw new IllegalArgumentException(flag + " needs a value");
        }
        return args[i];
    }

    static Properties loadConf(String file) {
        Path path = Path.of(file);
        if (!Files.isRegularFile(path)) {
            throw new IllegalArgumentException("--conf " + file + " does not exist; it should be a .properties file of "
                    + "catena.ps.* keys");
        }
        Properties p = new Properties();
        try (Reader r = Files.newBufferedReader(path)) {
            p.load(r);
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot read --conf " + file + ": " + e.getMessage(), e);
        }
        List<String> unknown = new ArrayList<>();
        for (String k : p.stringPropertyNames()) {
            if (!Configuration.KEYS.contains(k)) {
                unknown.add(k);
            }
        }
        if (!unknown.isEmpty()) {
            throw new IllegalArgumentException("--conf " + file + ": unknown keys " + unknown + "; valid keys: "
                    + new java.util.TreeSet<>(Configuration.KEYS));
        }
        return p;
    }
}
