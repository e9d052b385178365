package io.catena.ps;

import io.aeron.driver.MediaDriver;
import java.util.HashMap;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One embedded MediaDriver per Aeron directory per JVM, reference counted: a server and any number of
 * clients in one JVM (the Spark driver, an executor running several tasks) share it, as DESIGN.md asks.
 */
final class SharedDriver implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(SharedDriver.class);
    private static final Map<String, Entry> DRIVERS = new HashMap<>();

    static {
        // a JVM that exits without closing (System.exit, SIGTERM) still removes its drivers' directories
        Runtime.getRuntime().addShutdownHook(new Thread(SharedDriver::closeAll, "catena-aeron-dirs"));
    }

    private static synchronized void closeAll() {
        for (Entry e : DRIVERS.values()) {
            try {
                e.driver.close();
            } catch (RuntimeException ex) {
                LOG.warn("closing the embedded MediaDriver at exit failed: {}", ex.toString());
            }
        }
        DRIVERS.clear();
    }

    private static final class Entry {
        final MediaDriver driver;
        final int termLength;
        int refs;

        Entry(MediaDriver driver, int termLength) {
            this.driver = driver;
            this.termLength = termLength;
        }
    }

    private final String dir;
    private boolean closed;

    private SharedDriver(String dir) {
        this.dir = dir;
    }

    static synchronized boolean running(String dir) {
        return DRIVERS.containsKey(key(dir));
    }

    static synchronized SharedDriver acquire(String dir, int termLength, String idle) {
        String k = key(dir);
        Entry e = DRIVERS.get(k);
        if (e == null) {
            e = new Entry(Transport.launchDriver(dir, termLength, idle, Configuration.IDLE_STRATEGY_PROP), termLength);
            DRIVERS.put(k, e);
        } else if (e.termLength != termLength) {
            LOG.warn("the embedded MediaDriver in {} already runs with term length {}; ignoring the requested {}", dir,
                    e.termLength, termLength);
        }
        e.refs++;
        return new SharedDriver(k);
    }

    private static String key(String dir) {
        return new java.io.File(dir).getAbsoluteFile().toPath().normalize().toString();
    }

    String directory() {
        return dir;
    }

    @Override
    public void close() {
        synchronized (SharedDriver.class) {
            if (closed) {
                return;
            }
            closed = true;
            Entry e = DRIVERS.get(dir);
            if (e != null && --e.refs == 0) {
                DRIVERS.remove(dir);
                e.driver.close();
            }
        }
    }
}
