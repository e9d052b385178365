package io.catena.ps;

import io.catena.model.ColmConfig;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.io.TrainingState;
import io.catena.model.optim.AdamW;
import io.catena.model.optim.LrSchedule;
import io.catena.ps.protocol.MessageHeader;
import io.catena.ps.protocol.MessageType;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicInteger;
import org.agrona.concurrent.UnsafeBuffer;
import org.nd4j.linalg.api.buffer.DataType;

/** Shared fixtures: a tiny CoLM, server/client contexts on IPC with small terms, gradients, the in-process reference. */
final class PsTestSupport {
    static final byte[] SECRET = "test-secret-0123456789abcdef".getBytes(StandardCharsets.UTF_8);
    static final int TERM = 256 * 1024;
    static final AdamW.Settings ADAM = new AdamW.Settings(0.9, 0.95, 1e-8, 0.1, 1.0);
    static final LrSchedule SCHEDULE = new LrSchedule(1e-2, 1e-3, 2, 20);
    private static final AtomicInteger SEQ = new AtomicInteger();

    private PsTestSupport() {
    }

    static Path testDir(String name) {
        Path p = Path.of(System.getProperty("catena.ps.test.dir", "target/ps-test"))
                .resolve(name + "-" + ProcessHandle.current().pid() + "-" + SEQ.incrementAndGet()).toAbsolutePath();
        try {
            Files.createDirectories(p);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        return p;
    }

    static ColmConfig tinyConfig() {
        return new ColmConfig(17, 4, List.of(1, 1), 1, 0, 2.0, ColmConfig.Activation.GELU, ColmConfig.NormKind.LAYERNORM,
                1e-5, 10000.0, ColmConfig.Variant.COLM, 8, true, null);
    }

    /** Like {@link #tinyConfig()} with three blocks, so that it splits into two or three pipeline stages. */
    static ColmConfig pipelineConfig() {
        return new ColmConfig(17, 4, List.of(1, 1), 3, 0, 2.0, ColmConfig.Activation.GELU, ColmConfig.NormKind.LAYERNORM,
                1e-5, 10000.0, ColmConfig.Variant.COLM, 8, true, null);
    }

    static TrainingState pipelineState(long seed) {
        ColmConfig cfg = pipelineConfig();
        Params p = new Params(new ParamLayout(cfg), DataType.FLOAT);
        p.initialize(seed, 0);
        return new TrainingState(cfg, p, null, null, 0, 0, 0, 0, Map.of());
    }

    static TrainingState freshState(long seed) {
        ColmConfig cfg = tinyConfig();
        Params p = new Params(new ParamLayout(cfg), DataType.FLOAT);
        p.initialize(seed, 0);
        return new TrainingState(cfg, p, null, null, 0, 0, 0, 0, Map.of());
    }

    /** A server on IPC in its own Aeron directory under target/, small terms, 3 shards, 256-byte chunks. */
    static ParameterServer.Context server(Path dir, int workers, SyncPolicy sync) {
        return configure(new ParameterServer.Context(), dir, workers, sync);
    }

    /** {@link #server}'s settings applied to a context (e.g. one built from properties). */
    static ParameterServer.Context configure(ParameterServer.Context ctx, Path dir, int workers, SyncPolicy sync) {
        return ctx
                .jobName("job-" + dir.getFileName())
                .secret(SECRET)
                .aeronDirectoryName(dir.resolve("aeron").toString())
                .termLength(TERM)
                .channel("aeron:ipc")
                .chunkBytes(256)
                .shards(3)
                .workers(workers)
                .sync(sync)
                .initialState(freshState(7))
                .adamW(ADAM)
                .schedule(SCHEDULE)
                .sendTimeoutMs(2_000)
                .growTimeoutMs(10_000)
                .snapshotOnClose(false)
                .idleStrategy("backoff");
    }

    static ParameterServerClient.Context client(ParameterServer.Context server, int workerId) {
        return server.clientContext().workerId(workerId).connectTimeoutMs(5_000).requestTimeoutMs(10_000);
    }

    /** Deterministic gradient of worker w at step s, large enough that clipping is active. */
    static Params gradient(ParamLayout layout, int worker, long step) {
        Params g = new Params(layout, DataType.FLOAT);
        SplittableRandom r = new SplittableRandom(worker * 1_000_003L + step * 7919L);
        var b = g.buf();
        for (int i = 0; i < layout.size(); i++) {
            b.set(i, (r.nextDouble() - 0.5) * 0.2);
        }
        return g;
    }

    /** chain-model's AdamW, in process, on the float32 mean of the workers' gradients: the oracle. */
    static Params reference(TrainingState init, int workers, int steps) {
        return reference(init, workers, steps, ADAM, SCHEDULE);
    }

    static Params reference(TrainingState init, int workers, int steps, AdamW.Settings adamSettings, LrSchedule schedule) {
        ParamLayout layout = init.params().layout();
        Params p = new Params(layout, DataType.FLOAT);
        p.copyFrom(init.params());
        Params m = new Params(layout, DataType.FLOAT);
        Params v = new Params(layout, DataType.FLOAT);
        AdamW adam = new AdamW(layout, adamSettings, init.frozenChains());
        for (int s = 1; s <= steps; s++) {
            Params avg = new Params(layout, DataType.FLOAT);
            for (int w = 0; w < workers; w++) {
                Params g = gradient(layout, w, s);
                for (int i = 0; i < layout.size(); i++) {
                    avg.buf().set(i, avg.buf().get(i) + g.buf().get(i));
                }
            }
            for (int i = 0; i < layout.size(); i++) {
                avg.buf().set(i, avg.buf().get(i) / workers);
            }
            adam.step(p, avg, m, v, s, schedule.at(s));
        }
        return p;
    }

    static double maxAbsDiff(Params a, Params b, long from, long to) {
        double d = 0;
        for (long i = from; i < to; i++) {
            d = Math.max(d, Math.abs(a.buf().get((int) i) - b.buf().get((int) i)));
        }
        return d;
    }

    static double maxAbsDiff(Params a, Params b) {
        return maxAbsDiff(a, b, 0, a.layout().size());
    }

    /**
     * A hand-made frame for the server's input checks, sealed under client {@code c}'s session key with its next
     * sequence number (as if {@code c} had sent it; the server authenticates it and then checks its fields).
     */
    static UnsafeBuffer frame(ParameterServerClient c, MessageType type, long jobId, int epoch, int worker, long step, long version,
                              long corr, int chunkIndex, int chunkCount, byte[] payload) {
        return c.sealedFrame(type, jobId, epoch, worker, step, version, corr, chunkIndex, chunkCount, payload);
    }

    /** A copy of {@code frame} with one bit of byte {@code at} flipped (a modified frame: the tag no longer verifies). */
    static UnsafeBuffer tampered(UnsafeBuffer frame, int at) {
        UnsafeBuffer b = new UnsafeBuffer(ByteBuffer.allocateDirect(frame.capacity()));
        b.putBytes(0, frame, 0, frame.capacity());
        b.putByte(at, (byte) (b.getByte(at) ^ 0x10));
        return b;
    }

    static byte[] floats(int n, float value) {
        ByteBuffer bb = ByteBuffer.allocate(n * 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < n; i++) {
            bb.putFloat(value);
        }
        return bb.array();
    }
}
