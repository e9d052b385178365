package io.catena.trainer;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.aeron.Aeron;
import io.aeron.ExclusivePublication;
import io.aeron.FragmentAssembler;
import io.aeron.Publication;
import io.aeron.Subscription;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.agrona.CloseHelper;
import org.agrona.concurrent.UnsafeBuffer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Worker-to-driver reports (per-step losses, evaluations, checkpoints) over Aeron UDP: small JSON
 * messages on one stream the driver subscribes to. Spark is not involved after the stage starts.
 */
final class Telemetry {
    private static final Logger LOG = LoggerFactory.getLogger(Telemetry.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    static final int STREAM_ID = 1_101;
    /** Small terms: reports are a few hundred bytes. */
    static final String PARAMS = "term-length=256k";

    private Telemetry() {
    }

    static String withParams(String base) {
        return base + (base.contains("?") ? "|" : "?") + PARAMS;
    }

    /** The driver's side: a UDP subscription on an ephemeral port of {@code host}. */
    static final class Receiver implements AutoCloseable {
        private final Aeron aeron;
        private final Subscription sub;
        private final String channel;
        private final FragmentAssembler assembler;
        private Consumer<Map<String, Object>> sink = m -> { };

        @SuppressWarnings("unchecked")
        Receiver(String aeronDir, String host, long timeoutMs) {
            Aeron a = null;
            Subscription s = null;
            try {
                a = Aeron.connect(new Aeron.Context().aeronDirectoryName(aeronDir).driverTimeoutMs(10_000));
                s = a.addSubscription(withParams("aeron:udp?endpoint=" + host + ":0"), STREAM_ID);
                long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
                String resolved;
                while ((resolved = s.tryResolveChannelEndpointPort()) == null) {
                    if (System.nanoTime() - deadline > 0) {
                        throw new IllegalStateException("the driver's telemetry subscription on " + host + " did not bind a UDP port within "
                                + timeoutMs + " ms; check spark.driver.host");
                    }
                    Thread.onSpinWait();
                }
                this.channel = resolved;
            } catch (RuntimeException e) {
                CloseHelper.quietCloseAll(s, a);
                throw e;
            }
            this.aeron = a;
            this.sub = s;
            this.assembler = new FragmentAssembler((buf, off, len, hdr) -> {
                byte[] b = new byte[len];
                buf.getBytes(off, b);
                try {
                    sink.accept(JSON.readValue(b, Map.class));
                } catch (java.io.IOException e) {
                    LOG.warn("ignoring a telemetry message that is not JSON: {}", e.getMessage());
                }
            });
        }

        String channel() {
            return channel;
        }

        /** Delivers waiting messages to {@code sink}; returns how many fragments were read. */
        int poll(Consumer<Map<String, Object>> sink) {
            this.sink = sink;
            return sub.poll(assembler, 64);
        }

        @Override
        public void close() {
            CloseHelper.quietCloseAll(sub, aeron);
        }
    }

    /** A worker's side: an exclusive publication to the driver's channel. */
    static final class Sender implements AutoCloseable {
        private final Aeron aeron;
        private final ExclusivePublication pub;
        private final UnsafeBuffer buffer = new UnsafeBuffer(new byte[0]);
        private final long sendTimeoutMs;

        Sender(String aeronDir, String channel, long connectTimeoutMs, long sendTimeoutMs) {
            Aeron a = null;
            ExclusivePublication p = null;
            try {
                a = Aeron.connect(new Aeron.Context().aeronDirectoryName(aeronDir).driverTimeoutMs(10_000));
                p = a.addExclusivePublication(channel, STREAM_ID);
                long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(connectTimeoutMs);
                while (!p.isConnected()) {
                    if (System.nanoTime() - deadline > 0) {
                        throw new IllegalStateException("cannot reach the driver's telemetry channel " + channel + " within "
                                + connectTimeoutMs + " ms; the executors must reach the driver host over UDP (spark.driver.host)");
                    }
                    sleep(1);
                }
            } catch (RuntimeException e) {
                CloseHelper.quietCloseAll(p, a);
                throw e;
            }
            this.aeron = a;
            this.pub = p;
            this.sendTimeoutMs = sendTimeoutMs;
        }

        /** Sends one report; waits out back pressure up to the send timeout, then drops it with a warning. */
        void send(Map<String, Object> message) {
            byte[] b;
            try {
                b = JSON.writeValueAsBytes(message);
            } catch (java.io.IOException e) {
                throw new IllegalArgumentException("cannot encode " + message, e);
            }
            buffer.wrap(b);
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(sendTimeoutMs);
            while (true) {
                long r = pub.offer(buffer, 0, b.length);
                if (r > 0) {
                    return;
                }
                if (r == Publication.CLOSED || r == Publication.MAX_POSITION_EXCEEDED || System.nanoTime() - deadline > 0) {
                    LOG.warn("dropped a telemetry report ({}): the driver did not take it within {} ms", message.get("kind"), sendTimeoutMs);
                    return;
                }
                sleep(1);
            }
        }

        @Override
        public void close() {
            CloseHelper.quietCloseAll(pub, aeron);
        }
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
    }
}
