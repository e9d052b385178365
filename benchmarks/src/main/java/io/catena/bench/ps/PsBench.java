package io.catena.bench.ps;

import static io.catena.bench.ps.BenchReport.addDiff;
import static io.catena.bench.ps.BenchReport.loadavg;
import static io.catena.bench.ps.BenchReport.median;
import static io.catena.bench.ps.BenchReport.summary;
import static io.catena.bench.ps.BenchReport.threadCpu;
import static io.catena.bench.ps.BenchSupport.deleteRecursively;
import static io.catena.bench.ps.BenchSupport.freeUdpPort;
import static io.catena.bench.ps.BenchSupport.named;
import static io.catena.bench.ps.BenchSupport.size;
import static io.catena.bench.ps.BenchSupport.view;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import io.catena.model.ColmConfig;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.io.TrainingState;
import io.catena.model.optim.AdamW;
import io.catena.model.optim.LrSchedule;
import io.catena.ps.ParameterServer;
import io.catena.ps.ParameterServerClient;
import io.catena.ps.SyncPolicy;
import io.catena.ps.protocol.MessageHeader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.agrona.CloseHelper;
import org.agrona.concurrent.UnsafeBuffer;
import org.nd4j.linalg.api.buffer.DataType;


/**
 * Issue 4's parameter-server benchmark: one BSP push+pull round of a ~64 MB parameter vector with W (2)
 * workers, through {@link ParameterServer} / {@link ParameterServerClient} (AES-256-GCM sealed chunks after an HKDF handshake, server-side
 * AdamW), against raw Aeron publications/subscriptions moving the same frames (same chunk size and frame
 * length, same channels and UDP parameters, same MediaDriver, same BSP barrier: every worker sends its whole
 * vector to one receiver thread, which then sends a whole vector back to each worker in turn) — in the same
 * process, PS and raw blocks alternating so that both see the same machine load. Over IPC and over UDP on
 * 127.0.0.1.
 *
 * <p>A round moves 2 x W x vector bytes of payload (each worker pushes one vector and pulls one). GB/s =
 * payload bytes / round wall time (1e9 bytes). Ratio = raw round time / PS round time (medians), target >= 0.8.
 * Also measured, to explain the ratio: per-thread CPU time per round (ThreadMXBean) and single-thread rates
 * of the server's per-byte work (AES-GCM seal/open, HMAC-SHA256 for comparison, copies, AdamW) on the same vector.
 *
 * <pre>java --add-modules=jdk.incubator.vector --add-exports=java.base/jdk.internal.misc=ALL-UNNAMED -Xmx1g \
 *   -cp ... io.catena.bench.ps.PsBench --dir target/ps-bench --out benchmarks/results/ps.json
 *   [--mb 64] [--workers 2] [--transports ipc,udp] [--term 16m] [--chunk 1m] [--shards 4] [--idle backoff]
 *   [--warmup 2] [--blocks 6] [--per-block 2] [--budget-s 60]   (measuring budget per transport)</pre>
 */
public final class PsBench {
    static final byte[] SECRET = "ps-bench-secret-0123456789abcdef".getBytes(StandardCharsets.UTF_8);
    static final String UDP_PARAMS = "mtu=65504|so-sndbuf=4m|so-rcvbuf=4m|rcv-wnd=4m";
    static final long TIMEOUT_MS = 30_000;

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
        Map<String, String> a = io.catena.model.cli.Args.values("bench ps", args, 0, java.util.Set.of("out", "blocks", "budget-s",
                "chunk", "dir", "idle", "mb", "per-block", "shards", "term", "transports", "warmup", "workers"));
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
        out.put("machine", BenchReport.machine());
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
        settings.put("aeron_dir_fs", BenchReport.fsOf(dir));
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
        out.put("components", ComponentRates.components(layout, grads[0], chunkBytesOpt));
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
                .sharedIdleStrategy(BenchSupport.idleStrategy(idle))
                .termBufferSparseFile(true)
                .publicationTermBufferLength(termLength)
                .ipcTermBufferLength(termLength)
                .warnIfDirectoryExists(false)
                .spiesSimulateConnection(false));
    }

    private Map<String, Object> runTransport(String transport, ColmConfig cfg, Params init, Params[] grads, long vectorBytes,
                                             Map<String, Object> settings) throws Exception {
        boolean ipc = transport.equals("ipc");
        if (!ipc && !transport.equals("udp")) {
            throw new IllegalArgumentException("--transports takes ipc and/or udp, got " + transport);
        }
        String aeronDir = dir.resolve("aeron").toString();
        String psChannel = ipc ? "aeron:ipc" : "aeron:udp?endpoint=127.0.0.1:" + freeUdpPort();
        ParameterServer.Context sctx = serverContext(transport, aeronDir, psChannel, cfg, init);
        ExecutorService pool = Executors.newFixedThreadPool(workers, named("bench-worker"));
        ExecutorService rawServerPool = Executors.newSingleThreadExecutor(named("raw-server"));
        ParameterServer ps = null;
        List<ParameterServerClient> clients = new ArrayList<>();
        RawPeer raw = null;
        Map<String, Object> r = new LinkedHashMap<>();
        try {
            ps = ParameterServer.launch(sctx);
            for (int w = 0; w < workers; w++) {
                clients.add(ParameterServerClient.connect(sctx.clientContext().embeddedDriver(false)
                        .responseHost("127.0.0.1").workerId(w).connectTimeoutMs(TIMEOUT_MS).requestTimeoutMs(TIMEOUT_MS)));
            }
            int chunkFloats = clients.get(0).serverLayout().chunkFloats();
            int chunks = clients.get(0).serverLayout().plan().chunks();
            // the raw peer moves the same frames: the server's chunk plan (at most chunkFloats per frame, cut at shard ends), the
            // PS's header and tag lengths around it (zeros, no crypto), on the same kind of channels
            raw = new RawPeer(aeronDir, ipc, grads, init, clients.get(0).serverLayout().plan(), workers, idle);
            r.put("channel", displayChannel(psChannel));
            r.put("chunk_bytes", chunkFloats * 4);
            r.put("chunks_per_vector", chunks);
            r.put("frame_bytes", MessageHeader.OVERHEAD + chunkFloats * 4);


            PsPeer psPeer = new PsPeer(clients, grads, init.layout());
            measure(psPeer, raw, pool, rawServerPool, 2L * workers * vectorBytes, r);
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

    /** The parameter server of a transport's run, on the benchmark's driver (embeddedDriver=false). */
    private ParameterServer.Context serverContext(String transport, String aeronDir, String psChannel, ColmConfig cfg, Params init) {
        Params start = new Params(init.layout(), DataType.FLOAT);
        start.copyFrom(init);
        return new ParameterServer.Context()
                .jobName("ps-bench-" + transport).secret(SECRET)
                .aeronDirectoryName(aeronDir).embeddedDriver(false)
                .termLength(termLength).channel(psChannel).udpChannelParams(UDP_PARAMS)
                .chunkBytes(chunkBytesOpt).shards(shards).workers(workers).sync(SyncPolicy.bsp())
                .initialState(new TrainingState(cfg, start, null, null, 0, 0, 0, 0, Map.of()))
                .adamW(AdamW.Settings.defaults()).schedule(new LrSchedule(1e-4, 1e-4, 0, 1_000_000))
                .snapshotOnClose(false).sendTimeoutMs(10_000).idleStrategy(idle);
    }

    /**
     * Warm-up rounds, then blocks of rounds alternating PS and raw within the time budget; puts the summaries and
     * the PS/raw ratio of the median round times into {@code r}.
     */
    private void measure(PsPeer psPeer, RawPeer raw, ExecutorService pool, ExecutorService rawServerPool, long bytesPerRound,
                         Map<String, Object> r) throws Exception {
        for (int i = 0; i < warmup; i++) {
            psPeer.round(pool);
            raw.round(pool, rawServerPool);
        }
        List<Double> psMs = new ArrayList<>();
        List<Double> rawMs = new ArrayList<>();
        Map<String, Long> psCpu = new HashMap<>();
        Map<String, Long> rawCpu = new HashMap<>();
        long deadline = System.nanoTime() + budgetNs;
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
        double[] l = BenchReport.loadavgArray();
        r.put("loadavg_after", l);
        r.put("blocks_run", blocksRun);
        r.put("ps", summary(psMs, bytesPerRound, psCpu));
        r.put("raw", summary(rawMs, bytesPerRound, rawCpu));
        double psMed = median(psMs);
        double rawMed = median(rawMs);
        r.put("ratio_ps_over_raw_throughput", rawMed / psMed);
        r.put("target", 0.8);
        r.put("target_met", rawMed / psMed >= 0.8);
    }
}
