package io.catena.ps;

import io.aeron.DirectBufferVector;
import io.aeron.Publication;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import java.io.File;
import java.io.IOException;
import java.nio.ByteOrder;
import java.nio.file.FileStore;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.BusySpinIdleStrategy;
import org.agrona.concurrent.IdleStrategy;
import org.agrona.concurrent.SleepingMillisIdleStrategy;
import org.agrona.concurrent.YieldingIdleStrategy;

/** Aeron plumbing shared by server and client: driver launch with up-front checks, idle strategies, bounded sends. */
final class Transport {
    private Transport() {
    }

    static {
        if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
            throw new IllegalStateException("the parameter server moves ND4J buffers to the little-endian wire format without "
                    + "conversion; this platform is big-endian, which is not supported");
        }
    }

    static IdleStrategy idleStrategy(String name, String property) {
        return switch (name.trim().toLowerCase()) {
            case "backoff" -> new BackoffIdleStrategy(10, 20, TimeUnit.MICROSECONDS.toNanos(1), TimeUnit.MICROSECONDS.toNanos(500));
            case "sleep" -> new SleepingMillisIdleStrategy(1);
            case "yield" -> new YieldingIdleStrategy();
            case "busy" -> new BusySpinIdleStrategy();
            default -> throw new ConfigurationException(property, "backoff, sleep, yield or busy", name, "pick one of these");
        };
    }

    static void checkTermLength(int termLength, String property) {
        if (termLength < 64 * 1024 || termLength > 1024 * 1024 * 1024 || Integer.bitCount(termLength) != 1) {
            throw new ConfigurationException(property, "a power of two between 64k and 1g", termLength,
                    "use e.g. 16m (production) or 256k (tests)");
        }
    }

    /** Aeron's largest message for a term length. */
    static int maxMessageLength(int termLength) {
        return Math.min(termLength / 8, 16 * 1024 * 1024);
    }

    /**
     * Fails at once, naming the settings, when the Aeron directory cannot be created or written or its file
     * system has too little room for {@code publications} logs of 3 x termLength each.
     */
    static void checkAeronDir(String dir, int termLength, int publications, String dirProperty, String termProperty) {
        if (dir == null || dir.isBlank()) {
            throw new ConfigurationException(dirProperty, "a directory path", dir, "set it to a writable directory, e.g. /dev/shm/catena-ps");
        }
        Path p = Path.of(dir).toAbsolutePath();
        Path probe;
        try {
            Files.createDirectories(p.getParent());
            probe = Files.createTempFile(p.getParent(), ".catena-ps-probe", ".tmp");
            Files.delete(probe);
        } catch (IOException | RuntimeException e) {
            throw new ConfigurationException(dirProperty, "a directory whose parent can be created and written", dir,
                    "point " + dirProperty + " at a writable location (cannot write in " + p.getParent() + ": " + e + ")", e);
        }
        try {
            FileStore store = Files.getFileStore(p.getParent());
            long need = 3L * termLength * publications + 16L * 1024 * 1024;
            long free = store.getUsableSpace();
            if (free < need) {
                throw new ConfigurationException(termProperty, "a term length whose logs fit in " + p.getParent() + " ("
                        + (free >> 20) + " MiB free)", termLength, "about " + (need >> 20) + " MiB are needed for " + publications
                        + " publications of 3 x term length; lower " + termProperty + ", enlarge /dev/shm (docker --shm-size) "
                        + "or set " + dirProperty + " to a directory on a bigger file system");
            }
        } catch (IOException e) {
            throw new ConfigurationException(dirProperty, "a directory on a readable file system", dir, "check the path: " + e, e);
        }
    }

    static MediaDriver launchDriver(String dir, int termLength, String idle, String idleProperty) {
        Path parent = Path.of(dir).toAbsolutePath().getParent();
        if (parent != null) {
            AeronDirs.sweepStale(parent, AeronDirs.user()); // what killed processes of this user left behind
        }
        MediaDriver.Context ctx = new MediaDriver.Context()
                .aeronDirectoryName(dir)
                .dirDeleteOnStart(true)
                .dirDeleteOnShutdown(true)
                .threadingMode(ThreadingMode.SHARED)
                .sharedIdleStrategy(idleStrategy(idle, idleProperty))
                .termBufferSparseFile(true)
                .publicationTermBufferLength(termLength)
                .ipcTermBufferLength(termLength)
                .warnIfDirectoryExists(false)
                .spiesSimulateConnection(false);
        try {
            MediaDriver driver = MediaDriver.launchEmbedded(ctx);
            AeronDirs.restrict(Path.of(dir)); // cnc.dat and the log buffers: the job's traffic, for its owner only
            return driver;
        } catch (RuntimeException e) {
            ctx.close();
            throw new ParameterServerException("the embedded Aeron MediaDriver could not start in " + dir + " ("
                    + Configuration.AERON_DIR_PROP + "): " + e.getMessage() + "; check free space there, that no other process "
                    + "uses the directory, and the UDP socket settings in " + Configuration.UDP_CHANNEL_PARAMS_PROP, e);
        }
    }

    /**
     * Offers a frame made of buffer vectors, retrying under back pressure until {@code deadlineNs}.
     * Returns false when the deadline passed; throws when the publication is closed or the frame too long.
     */
    static boolean offer(Publication pub, DirectBufferVector[] vectors, long deadlineNs, IdleStrategy idle) {
        idle.reset();
        while (true) {
            long r = pub.offer(vectors);
            if (r > 0) {
                return true;
            }
            if (r == Publication.CLOSED) {
                throw new ParameterServerException("publication on " + pub.channel() + " is closed");
            }
            if (r == Publication.MAX_POSITION_EXCEEDED) {
                throw new ParameterServerException("publication on " + pub.channel() + " reached its maximum position; reconnect");
            }
            if (System.nanoTime() - deadlineNs > 0) {
                return false;
            }
            idle.idle();
        }
    }

    static String udpParams(String channel, String params) {
        if (params == null || params.isBlank() || !channel.startsWith("aeron:udp")) {
            return channel;
        }
        return channel + (channel.contains("?") ? "|" : "?") + params;
    }

    static File file(String dir) {
        return new File(dir);
    }
}
