package io.catena.bench.ps;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.aeron.Aeron;
import io.aeron.DirectBufferVector;
import io.aeron.ExclusivePublication;
import io.aeron.FragmentAssembler;
import io.aeron.Publication;
import io.aeron.Subscription;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import io.aeron.logbuffer.FragmentHandler;
import io.catena.model.ColmConfig;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.io.TrainingState;
import io.catena.model.optim.AdamW;
import io.catena.model.optim.LrSchedule;
import io.catena.ps.ParameterServer;
import io.catena.ps.ParameterServerClient;
import io.catena.ps.SyncPolicy;
import io.catena.ps.protocol.ChunkPlan;
import io.catena.ps.protocol.MessageAuthenticator;
import io.catena.ps.protocol.MessageHeader;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadInfo;
import java.lang.management.ThreadMXBean;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.agrona.CloseHelper;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.IdleStrategy;
import org.agrona.concurrent.UnsafeBuffer;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * Issue 4's parameter-server benchmark: one BSP push+pull round of a ~64 MB parameter vector with W (2)
 * workers, through {@link ParameterServer} / {@link ParameterServerClient} (HMAC-signed chunks, server-side
 * AdamW), against raw Aeron publications/subscriptions moving the same frames (same chunk size and frame
 * length, same channels and UDP parameters, same MediaDriver, same BSP barrier: every worker sends its whole
 * vector to one receiver thread, which then sends a whole vector back to each worker in turn) — in the same
 * process, PS and raw blocks alternating so that both see the same machine load. Over IPC and over UDP on
 * 127.0.0.1.
 *
 * <p>A round moves 2 x W x vector bytes of payload (each worker pushes one vector and pulls one). GB/s =
 * payload bytes / round wall time (1e9 bytes). Ratio = raw round time / PS round time (medians), target >= 0.8.
 * Also measured, to explain the ratio: per-thread CPU time per round (ThreadMXBean) and single-thread rates
 * of the server's per-byte work (HMAC-SHA256, copies, AdamW) on the same vector.
 *
 * <pre>java --add-modules=jdk.incubator.vector --add-exports=java.base/jdk.internal.misc=ALL-UNNAMED -Xmx1g \
 *   -cp ... io.catena.bench.ps.PsBench --dir target/ps-bench --out benchmarks/results/ps.json
 *   [--mb 64] [--workers 2] [--transports ipc,udp] [--term 16m] [--chunk 1m] [--shards 4] [--idle backoff]
 *   [--warmup 2] [--blocks 6] [--per-block 2] [--budget-s 60]   (measuring budget per transport)</pre>
 */
public final class PsBench {
    private static final byte[] SECRET = "ps-bench-secret-0123456789abcdef".getBytes(StandardCharsets.UTF_8);
    private static final String UDP_PARAMS = "mtu=65504|so-sndbuf=4m|so-rcvbuf=4m|rcv-wnd=4m";
    private static final long TIMEOUT_MS = 30_000;

    private final Map<String, String> opt;
    private final int workers;
    private final int termLength;
    private final int chunkBytesOpt;
    private final int shards;
    private final String idle;
    private final int warmup;
    private final int blocks;
    private final int perBlock;
    private final long budgetNs;
    private final Path dir;

    private PsBench(Map<String, String> opt) {
        this.opt = opt;
        workers = Integer.parseInt(opt.getOrDefault("workers", "2"));
        termLength = (int) size(opt.getOrDefault("term", "16m"));
        chunkBytesOpt = (int) size(opt.getOrDefault("chunk", "1m"));
        shards = Integer.parseInt(opt.getOrDefault("shards", "4"));
        idle = opt.getOrDefault("idle", "backoff");
        warmup = Integer.parseInt(opt.getOrDefault("warmup", "2"));
        blocks = Integer.parseInt(opt.getOrDefault("blocks", "6"));
        perBlock = Integer.parseInt(opt.getOrDefault("per-block", "2"));
        budgetNs = TimeUnit.SECONDS.toNanos(Long.parseLong(opt.getOrDefault("budget-s", "60")));
        dir = Path.of(opt.getOrDefault("dir", "target/ps-bench")).toAbsolutePath();
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> a = new LinkedHashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) {
            a.put(args[i].replaceFirst("^--", ""), args[i + 1]);
        }
        Map<String, Object> out = new PsBench(a).run();
        String json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(out);
        String file = a.get("out");
        if (file != null) {
            Path p = Path.of(file);
            if (p.getParent() != null) {
                Files.createDirectories(p.getParent());
            }
            Files.writeString(p, json + "\n");
        }
        System.out.println(json);
        System.exit(0); // ND4J / Aeron leave non-daemon helpers behind
    }

    // ---- the run ------------------------------------------------------------------------------------------------

    private Map<String, Object> run() throws Exception {
        long t0 = System.nanoTime();
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("benchmark", "parameter-server push+pull round vs raw Aeron (issue 4)");
        out.put("started", Instant.now().toString());
        out.put("machine", machine());
        out.put("loadavg_start", loadavg());

        long targetFloats = size(opt.getOrDefault("mb", "64")) * 1024 * 1024 / 4;
        if (opt.getOrDefault("mb", "64").matches("\\d+")) {
            targetFloats = Long.parseLong(opt.getOrDefault("mb", "64")) * 1024 * 1024 / 4;
        }
        ColmConfig cfg = configOfSize(targetFloats);
        ParamLayout layout = new ParamLayout(cfg);
        long floats = layout.size();
        long vectorBytes = floats * 4;
        Map<String, Object> model = new LinkedHashMap<>();
        model.put("config", cfg.toString());
        model.put("parameters", floats);
        model.put("vector_bytes", vectorBytes);
        model.put("vector_mib", vectorBytes / 1048576.0);
        out.put("model", model);

        deleteRecursively(dir);
        Files.createDirectories(dir);
        Map<String, Object> settings = new LinkedHashMap<>();
        settings.put("workers", workers);
        settings.put("sync", "bsp");
        settings.put("term_length", termLength);
        settings.put("max_message", Math.min(termLength / 8, 16 * 1024 * 1024));
        settings.put("shards", shards);
        settings.put("idle_strategy", idle);
        settings.put("udp_params", UDP_PARAMS);
        settings.put("aeron_dir", dir.resolve("aeron").toString());
        settings.put("aeron_dir_fs", fsOf(dir));
        settings.put("warmup_rounds", warmup);
        settings.put("blocks", blocks);
        settings.put("rounds_per_block", perBlock);
        settings.put("budget_s_per_transport", TimeUnit.NANOSECONDS.toSeconds(budgetNs));
        out.put("settings", settings);

        Params init = new Params(layout, DataType.FLOAT);
        init.initialize(7, 0);
        Params[] grads = new Params[workers];
        for (int w = 0; w < workers; w++) {
            grads[w] = new Params(layout, DataType.FLOAT);
            SplittableRandom r = new SplittableRandom(1000 + w);
            UnsafeBuffer v = view(grads[w]);
            for (long i = 0; i < floats; i++) {
                v.putFloat((int) (i * 4), (float) ((r.nextDouble() - 0.5) * 1e-3));
            }
        }

        MediaDriver driver = launchDriver(dir.resolve("aeron").toString());
        Map<String, Object> transports = new LinkedHashMap<>();
        try {
            for (String transport : opt.getOrDefault("transports", "ipc,udp").split(",")) {
                transports.put(transport, runTransport(transport.trim(), cfg, init, grads, vectorBytes, settings));
            }
        } finally {
            CloseHelper.quietClose(driver);
        }
        out.put("transports", transports);
        out.put("components", components(layout, grads[0]));
        out.put("loadavg_end", loadavg());
        out.put("wall_s", (System.nanoTime() - t0) / 1e9);
        deleteRecursively(dir);
        return out;
    }

    /** The vocabulary that makes a CoLM (head_dim 64, chains {2,2}, 2 layers) hold ~targetFloats parameters. */
    static ColmConfig configOfSize(long targetFloats) {
        long s1 = new ParamLayout(config(1024)).size();
        long s2 = new ParamLayout(config(2048)).size();
        long perToken = (s2 - s1) / 1024;
        int vocab = (int) Math.max(16, 1024 + (targetFloats - s1) / perToken);
        return config(vocab);
    }

    private static ColmConfig config(int vocab) {
        return new ColmConfig(vocab, 64, List.of(2, 2), 2, 0, 4.0, ColmConfig.Activation.GELU, ColmConfig.NormKind.LAYERNORM,
                1e-5, 10000.0, ColmConfig.Variant.COLM, 128, true, null);
    }

    private MediaDriver launchDriver(String aeronDir) {
        // the settings of io.catena.ps.Transport.launchDriver (the PS's embedded driver), launched here so that the
        // parameter server (embeddedDriver=false) and the raw peer share one driver
        return MediaDriver.launchEmbedded(new MediaDriver.Context()
                .aeronDirectoryName(aeronDir)
                .dirDeleteOnStart(true)
                .dirDeleteOnShutdown(true)
                .threadingMode(ThreadingMode.SHARED)
                .sharedIdleStrategy(idleStrategy())
                .termBufferSparseFile(true)
                .publicationTermBufferLength(termLength)
                .ipcTermBufferLength(termLength)
                .warnIfDirectoryExists(false)
                .spiesSimulateConnection(false));
    }

    private IdleStrategy idleStrategy() {
        return switch (idle) {
            case "backoff" -> new BackoffIdleStrategy(10, 20, TimeUnit.MICROSECONDS.toNanos(1), TimeUnit.MICROSECONDS.toNanos(500));
            case "yield" -> new org.agrona.concurrent.YieldingIdleStrategy();
            case "busy" -> new org.agrona.concurrent.BusySpinIdleStrategy();
            case "sleep" -> new org.agrona.concurrent.SleepingMillisIdleStrategy(1);
            default -> throw new IllegalArgumentException("--idle backoff|yield|busy|sleep, got " + idle);
        };
    }

    private Map<String, Object> runTransport(String transport, ColmConfig cfg, Params init, Params[] grads, long vectorBytes,
                                             Map<String, Object> settings) throws Exception {
        boolean ipc = transport.equals("ipc");
        if (!ipc && !transport.equals("udp")) {
            throw new IllegalArgumentException("--transports takes ipc and/or udp, got " + transport);
        }
        String aeronDir = dir.resolve("aeron").toString();
        String psChannel = ipc ? "aeron:ipc" : "aeron:udp?endpoint=127.0.0.1:" + freeUdpPort();
        Params start = new Params(init.layout(), DataType.FLOAT);
        start.copyFrom(init);
        ParameterServer.Context sctx = new ParameterServer.Context()
                .jobName("ps-bench-" + transport).secret(SECRET)
                .aeronDirectoryName(aeronDir).embeddedDriver(false)
                .termLength(termLength).channel(psChannel).udpChannelParams(UDP_PARAMS)
                .chunkBytes(chunkBytesOpt).shards(shards).workers(workers).sync(SyncPolicy.bsp())
                .initialState(new TrainingState(cfg, start, null, null, 0, 0, 0, 0, Map.of()))
                .adamW(AdamW.Settings.defaults()).schedule(new LrSchedule(1e-4, 1e-4, 0, 1_000_000))
                .snapshotOnClose(false).sendTimeoutMs(10_000).idleStrategy(idle);
        ExecutorService pool = Executors.newFixedThreadPool(workers, named("bench-worker"));
        ExecutorService rawServerPool = Executors.newSingleThreadExecutor(named("raw-server"));
        ParameterServer ps = null;
        List<ParameterServerClient> clients = new ArrayList<>();
        RawPeer raw = null;
        Map<String, Object> r = new LinkedHashMap<>();
        try {
            ps = ParameterServer.launch(sctx);
            for (int w = 0; w < workers; w++) {
                clients.add(ParameterServerClient.connect(new ParameterServerClient.Context().from(sctx).embeddedDriver(false)
                        .responseHost("127.0.0.1").workerId(w).connectTimeoutMs(TIMEOUT_MS).requestTimeoutMs(TIMEOUT_MS)));
            }
            int chunkFloats = clients.get(0).serverLayout().chunkFloats();
            int chunks = clients.get(0).serverLayout().plan().chunks();
            // the raw peer moves the same frames: the server's chunk plan (at most chunkFloats per frame, cut at shard ends), the
            // PS's header and MAC lengths around it (zeros, no HMAC), on the same kind of channels
            raw = new RawPeer(aeronDir, ipc, grads, init, clients.get(0).serverLayout().plan(), workers);
            r.put("channel", displayChannel(psChannel));
            r.put("chunk_bytes", chunkFloats * 4);
            r.put("chunks_per_vector", chunks);
            r.put("frame_bytes", MessageHeader.OVERHEAD + chunkFloats * 4);

            PsPeer psPeer = new PsPeer(clients, grads, init.layout());
            long bytesPerRound = 2L * workers * vectorBytes;
            for (int i = 0; i < warmup; i++) {
                psPeer.round(pool);
                raw.round(pool, rawServerPool);
            }
            List<Double> psMs = new ArrayList<>();
            List<Double> rawMs = new ArrayList<>();
            Map<String, Long> psCpu = new HashMap<>();
            Map<String, Long> rawCpu = new HashMap<>();
            long deadline = System.nanoTime() + budgetNs;
            double[] load = new double[3];
            int blocksRun = 0;
            for (int b = 0; b < blocks && System.nanoTime() < deadline; b++) {
                // alternate which side goes first, so neither always follows the other's GC/page-cache state
                boolean psFirst = b % 2 == 0;
                for (int side = 0; side < 2; side++) {
                    boolean doPs = (side == 0) == psFirst;
                    Map<String, Long> before = threadCpu();
                    for (int k = 0; k < perBlock; k++) {
                        double ms = doPs ? psPeer.round(pool) : raw.round(pool, rawServerPool);
                        (doPs ? psMs : rawMs).add(ms);
                    }
                    addDiff(doPs ? psCpu : rawCpu, before, threadCpu());
                }
                blocksRun++;
            }
            double[] l = loadavgArray();
            r.put("loadavg_after", l);
            r.put("blocks_run", blocksRun);
            r.put("ps", summary(psMs, bytesPerRound, psCpu));
            r.put("raw", summary(rawMs, bytesPerRound, rawCpu));
            double psMed = median(psMs);
            double rawMed = median(rawMs);
            r.put("ratio_ps_over_raw_throughput", rawMed / psMed);
            r.put("target", 0.8);
            r.put("target_met", rawMed / psMed >= 0.8);
            // check: both workers hold the server's latest parameters
            r.put("ps_version", ps.version());
            r.put("ps_workers_agree", psPeer.workersAgree());
            r.put("ps_server_metrics", ps.metrics().toMap());
        } finally {
            for (ParameterServerClient c : clients) {
                CloseHelper.quietClose(c);
            }
            CloseHelper.quietClose(raw);
            CloseHelper.quietClose(ps);
            pool.shutdownNow();
            rawServerPool.shutdownNow();
            pool.awaitTermination(10, TimeUnit.SECONDS);
            rawServerPool.awaitTermination(10, TimeUnit.SECONDS);
        }
        return r;
    }

    private static String displayChannel(String ch) {
        return ch.startsWith("aeron:udp") ? ch + "|" + UDP_PARAMS : ch;
    }

    // ---- the parameter-server side ----------------------------------------------------------------------------

    /** W workers doing BSP: push(step) then pull(version >= step), each on its own client. */
    private static final class PsPeer {
        final List<ParameterServerClient> clients;
        final Params[] grads;
        final Params[] params;
        final long[] version;

        PsPeer(List<ParameterServerClient> clients, Params[] grads, ParamLayout layout) {
            this.clients = clients;
            this.grads = grads;
            this.params = new Params[clients.size()];
            this.version = new long[clients.size()];
            for (int w = 0; w < clients.size(); w++) {
                params[w] = new Params(layout, DataType.FLOAT);
                version[w] = clients.get(w).pull(0, params[w], TIMEOUT_MS).version();
            }
        }

        double round(ExecutorService pool) throws Exception {
            List<Callable<Void>> tasks = new ArrayList<>();
            for (int w = 0; w < clients.size(); w++) {
                int worker = w;
                tasks.add(() -> {
                    ParameterServerClient c = clients.get(worker);
                    long step = version[worker] + 1;
                    c.push(step, version[worker], grads[worker], TIMEOUT_MS);
                    ParameterServerClient.PullResult pr = c.pull(c.sync().minVersionFor(step + 1), params[worker], TIMEOUT_MS);
                    if (pr.layoutChanged() || pr.version() != step) {
                        throw new IllegalStateException("worker " + worker + " pulled version " + pr.version() + ", expected " + step);
                    }
                    version[worker] = pr.version();
                    return null;
                });
            }
            return timeAll(pool, tasks, List.of());
        }

        boolean workersAgree() {
            UnsafeBuffer a = view(params[0]);
            for (int w = 1; w < params.length; w++) {
                UnsafeBuffer b = view(params[w]);
                for (int i = 0; i < a.capacity(); i += 4096) {
                    if (a.getInt(i) != b.getInt(i)) {
                        return false;
                    }
                }
            }
            return true;
        }
    }

    // ---- the raw Aeron side -----------------------------------------------------------------------------------

    /**
     * Raw Aeron with the PS's traffic shape and nothing else: each worker offers its vector as frames of
     * (64-byte header, chunk, 32 bytes of zeros) cut by the server's own ChunkPlan (same chunk count and lengths); the receiver thread copies every chunk
     * into that worker's staging buffer; when all W vectors are in it offers its parameter vector the same way
     * to each worker in turn, and each worker copies the chunks into its own buffer. No HMAC, no ack, no pull
     * request, no optimizer.
     */
    private final class RawPeer implements AutoCloseable {
        final Aeron serverAeron;
        final Aeron[] workerAeron;
        final Subscription serverSub;
        final ExclusivePublication[] serverPubs;
        final ExclusivePublication[] workerPubs;
        final Subscription[] workerSubs;
        final UnsafeBuffer[] gradViews;
        final UnsafeBuffer[] staging;
        final UnsafeBuffer serverParams;
        final UnsafeBuffer[] workerParams;
        final List<Params> keep = new ArrayList<>(); // views do not keep ND4J's memory alive: hold the owners
        final ChunkPlan plan;
        final int chunks;
        final int w;
        long round;

        RawPeer(String aeronDir, boolean ipc, Params[] grads, Params init, ChunkPlan plan, int w) throws IOException {
            this.w = w;
            this.plan = plan;
            this.chunks = plan.chunks();
            serverAeron = Aeron.connect(new Aeron.Context().aeronDirectoryName(aeronDir));
            workerAeron = new Aeron[w];
            serverPubs = new ExclusivePublication[w];
            workerPubs = new ExclusivePublication[w];
            workerSubs = new Subscription[w];
            gradViews = new UnsafeBuffer[w];
            staging = new UnsafeBuffer[w];
            workerParams = new UnsafeBuffer[w];
            String serverChannel = ipc ? "aeron:ipc" : "aeron:udp?endpoint=127.0.0.1:" + freeUdpPort() + "|" + UDP_PARAMS;
            serverSub = serverAeron.addSubscription(serverChannel, 2001);
            for (int i = 0; i < w; i++) {
                workerAeron[i] = Aeron.connect(new Aeron.Context().aeronDirectoryName(aeronDir));
                String resp = ipc ? "aeron:ipc" : "aeron:udp?endpoint=127.0.0.1:" + freeUdpPort() + "|" + UDP_PARAMS;
                workerSubs[i] = workerAeron[i].addSubscription(resp, 2100 + i);
                serverPubs[i] = serverAeron.addExclusivePublication(resp, 2100 + i);
                workerPubs[i] = workerAeron[i].addExclusivePublication(serverChannel, 2001);
                gradViews[i] = view(grads[i]);
                staging[i] = view(keep(new Params(init.layout(), DataType.FLOAT)));
                workerParams[i] = view(keep(new Params(init.layout(), DataType.FLOAT)));
            }
            serverParams = view(keep(init));
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(TIMEOUT_MS);
            for (int i = 0; i < w; i++) {
                while (!serverPubs[i].isConnected() || !workerPubs[i].isConnected()) {
                    if (System.nanoTime() > deadline) {
                        throw new IllegalStateException("raw Aeron publications did not connect within " + TIMEOUT_MS + " ms");
                    }
                    Thread.onSpinWait();
                    Thread.yield();
                }
            }
        }

        private Params keep(Params p) {
            keep.add(p);
            return p;
        }

        double round(ExecutorService workerPool, ExecutorService serverPool) throws Exception {
            long r = ++round;
            List<Callable<Void>> tasks = new ArrayList<>();
            for (int i = 0; i < w; i++) {
                int worker = i;
                tasks.add(() -> {
                    Sender s = new Sender(workerPubs[worker]);
                    for (int c = 0; c < chunks; c++) {
                        s.send(worker, c, r, gradViews[worker], c);
                    }
                    receive(workerSubs[worker], (buffer, offset, length, header) -> {
                        int c = buffer.getInt(offset + 4);
                        workerParams[worker].putBytes((int) plan.chunkOffset(c) * 4, buffer, offset + MessageHeader.LENGTH,
                                length - MessageHeader.OVERHEAD);
                    }, chunks);
                    return null;
                });
            }
            Callable<Void> server = () -> {
                receive(serverSub, (buffer, offset, length, header) -> {
                    int worker = buffer.getInt(offset);
                    int c = buffer.getInt(offset + 4);
                    staging[worker].putBytes((int) plan.chunkOffset(c) * 4, buffer, offset + MessageHeader.LENGTH,
                            length - MessageHeader.OVERHEAD);
                }, chunks * w);
                for (int i = 0; i < w; i++) {
                    Sender s = new Sender(serverPubs[i]);
                    for (int c = 0; c < chunks; c++) {
                        s.send(i, c, r, serverParams, c);
                    }
                }
                return null;
            };
            return timeAll(workerPool, tasks, List.of(Map.entry(serverPool, server)));
        }

        private void receive(Subscription sub, FragmentHandler handler, int expected) {
            AtomicInteger got = new AtomicInteger();
            FragmentAssembler a = new FragmentAssembler((buffer, offset, length, header) -> {
                handler.onFragment(buffer, offset, length, header);
                got.incrementAndGet();
            });
            IdleStrategy idleS = idleStrategy();
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(TIMEOUT_MS);
            while (got.get() < expected) {
                if (sub.poll(a, 16) == 0) {
                    if (System.nanoTime() > deadline) {
                        throw new IllegalStateException("raw receive got " + got.get() + " of " + expected + " frames in "
                                + TIMEOUT_MS + " ms");
                    }
                    idleS.idle();
                } else {
                    idleS.reset();
                }
            }
        }

        /** Offers (header, chunk, zero MAC) as one vectored frame, retrying under back pressure (bounded). */
        private final class Sender {
            final ExclusivePublication pub;
            final UnsafeBuffer header = new UnsafeBuffer(ByteBuffer.allocateDirect(MessageHeader.LENGTH));
            final UnsafeBuffer mac = new UnsafeBuffer(ByteBuffer.allocateDirect(MessageHeader.MAC_LENGTH));
            final DirectBufferVector vPayload = new DirectBufferVector();
            final DirectBufferVector[] vectors = {new DirectBufferVector(header, 0, MessageHeader.LENGTH), vPayload,
                new DirectBufferVector(mac, 0, MessageHeader.MAC_LENGTH)};
            final IdleStrategy idleS = idleStrategy();

            Sender(ExclusivePublication pub) {
                this.pub = pub;
            }

            void send(int worker, int c, long r, DirectBuffer src, int chunk) {
                header.putInt(0, worker);
                header.putInt(4, c);
                header.putLong(8, r);
                vPayload.reset(src, (int) plan.chunkOffset(chunk) * 4, plan.chunkLength(chunk) * 4);
                long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(10_000);
                idleS.reset();
                while (true) {
                    long p = pub.offer(vectors);
                    if (p > 0) {
                        return;
                    }
                    if (p == Publication.CLOSED || p == Publication.MAX_POSITION_EXCEEDED || System.nanoTime() > deadline) {
                        throw new IllegalStateException("raw offer on " + pub.channel() + " failed: " + p);
                    }
                    idleS.idle();
                }
            }
        }

        @Override
        public void close() {
            CloseHelper.quietCloseAll(serverPubs);
            CloseHelper.quietCloseAll(workerPubs);
            CloseHelper.quietCloseAll(workerSubs);
            CloseHelper.quietClose(serverSub);
            CloseHelper.quietCloseAll(workerAeron);
            CloseHelper.quietClose(serverAeron);
        }
    }

    // ---- component rates (single thread, same vector) ---------------------------------------------------------

    private Map<String, Object> components(ParamLayout layout, Params grad) {
        Map<String, Object> c = new LinkedHashMap<>();
        UnsafeBuffer g = view(grad);
        int bytes = g.capacity();
        int chunk = chunkBytesOpt;
        MessageAuthenticator auth = new MessageAuthenticator(SECRET);
        UnsafeBuffer mac = new UnsafeBuffer(ByteBuffer.allocateDirect(MessageHeader.MAC_LENGTH));
        c.put("hmac_sha256_gb_per_s", bestRate(5, bytes, () -> {
            for (int off = 0; off < bytes; off += chunk) {
                auth.begin();
                auth.update(g, off, Math.min(chunk, bytes - off));
                auth.finish(mac, 0);
            }
        }));
        Params dstOwner = new Params(layout, DataType.FLOAT); // a view does not keep ND4J's memory alive
        UnsafeBuffer dst = view(dstOwner);
        c.put("copy_gb_per_s", bestRate(5, bytes, () -> {
            for (int off = 0; off < bytes; off += chunk) {
                dst.putBytes(off, g, off, Math.min(chunk, bytes - off));
            }
        }));
        c.put("scalar_add_gb_per_s", bestRate(3, bytes, () -> {
            for (int o = 0; o < bytes; o += 4) {
                dst.putFloat(o, dst.getFloat(o) + g.getFloat(o));
            }
        }));
        Params p = new Params(layout, DataType.FLOAT);
        Params m = new Params(layout, DataType.FLOAT);
        Params v = new Params(layout, DataType.FLOAT);
        AdamW adam = new AdamW(layout, AdamW.Settings.defaults(), 0);
        long[] step = {0};
        double adamGb = bestRate(3, bytes, () -> {
            double ss = adam.sumOfSquares(grad, 0, layout.size());
            adam.update(p, grad, m, v, ++step[0], 1e-4, adam.clipScale(Math.sqrt(ss)), 0, layout.size());
        });
        c.put("adamw_step_ms", bytes / adamGb / 1e6);
        java.lang.ref.Reference.reachabilityFence(dstOwner);
        java.lang.ref.Reference.reachabilityFence(grad);
        c.put("note", "single-thread rates over the " + bytes / 1048576 + " MiB vector (best of a few), "
                + chunk + "-byte chunks; AdamW = sumOfSquares + update (chain-model, may use its kernel threads)");
        return c;
    }

    private static double bestRate(int reps, long bytes, Runnable r) {
        double best = Double.MAX_VALUE;
        for (int i = 0; i < reps; i++) {
            long t = System.nanoTime();
            r.run();
            best = Math.min(best, System.nanoTime() - t);
        }
        return bytes / best; // bytes per ns = GB/s
    }

    // ---- helpers ----------------------------------------------------------------------------------------------

    /** Runs the tasks (and the extra ones on their own pools) at once; returns the wall time until all are done, ms. */
    private static double timeAll(ExecutorService pool, List<Callable<Void>> tasks,
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
            f.get(2 * TIMEOUT_MS, TimeUnit.MILLISECONDS);
        }
        return (System.nanoTime() - t) / 1e6;
    }

    private static Map<String, Object> summary(List<Double> ms, long bytesPerRound, Map<String, Long> cpuNs) {
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
    private static Map<String, Long> threadCpu() {
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

    private static void addDiff(Map<String, Long> acc, Map<String, Long> before, Map<String, Long> after) {
        for (Map.Entry<String, Long> e : after.entrySet()) {
            long d = e.getValue() - before.getOrDefault(e.getKey(), 0L);
            acc.merge(e.getKey().replaceAll("@\\d+$", ""), d, Long::sum);
        }
    }

    private static java.util.concurrent.ThreadFactory named(String name) {
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

    private static int freeUdpPort() throws IOException {
        try (DatagramSocket s = new DatagramSocket(0, InetAddress.getByName("127.0.0.1"))) {
            return s.getLocalPort();
        }
    }

    private static long size(String v) {
        String s = v.trim().toLowerCase();
        long mult = 1;
        if (s.endsWith("k")) {
            mult = 1024;
        } else if (s.endsWith("m")) {
            mult = 1024 * 1024;
        } else if (s.endsWith("g")) {
            mult = 1024L * 1024 * 1024;
        }
        return Long.parseLong(mult == 1 ? s : s.substring(0, s.length() - 1)) * mult;
    }

    private static Map<String, Object> machine() {
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

    private static String fsOf(Path p) {
        try {
            return Files.getFileStore(p).type() + " (" + Files.getFileStore(p).name() + ")";
        } catch (IOException e) {
            return "?";
        }
    }

    private static String loadavg() {
        try {
            return Files.readString(Path.of("/proc/loadavg")).trim();
        } catch (IOException e) {
            return "?";
        }
    }

    private static double[] loadavgArray() {
        String[] f = loadavg().split("\\s+");
        try {
            return new double[] {Double.parseDouble(f[0]), Double.parseDouble(f[1]), Double.parseDouble(f[2])};
        } catch (RuntimeException e) {
            return new double[0];
        }
    }

    private static void deleteRecursively(Path p) throws IOException {
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
