package io.catena.ps;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.ColmConfig;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.io.TrainingState;
import io.catena.model.optim.AdamW;
import io.catena.model.pipeline.StagePlan;
import io.catena.ps.protocol.ChunkPlan;
import io.catena.ps.protocol.FloatRange;
import io.catena.ps.protocol.KeySchedule;
import io.catena.ps.protocol.MessageType;
import io.catena.ps.protocol.RejectReason;
import java.net.DatagramSocket;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * A server with two pipeline stages and two data-parallel replicas (four workers, worker w = stage w % 2 of
 * replica w / 2): each worker pushes and pulls only its stage's parameter ranges, a step is the mean over the
 * replicas of the assembled gradient, foreign chunks are refused, growth re-plans the stages.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class PipelineStagesTest {
    private static final int STAGES = 2;
    private static final int REPLICAS = 2;
    private static final int WORKERS = STAGES * REPLICAS;
    private static final int MICRO_BATCH = 2;
    private static final int SEQ_LEN = 8;
    /** Written into the caller's buffer before a pull: what the pull must not touch stays this. */
    private static final float SENTINEL = 12345.0f;

    private static ParameterServer.Context server(Path dir) {
        return PsTestSupport.server(dir, WORKERS, SyncPolicy.bsp()).initialState(PsTestSupport.pipelineState(7))
                .pipeline(STAGES, MICRO_BATCH, SEQ_LEN);
    }

    /** Replica r's full gradient of a step with every element outside {@code stage}'s ranges NaN: never sent, never summed. */
    private static Params stageGradient(ChunkPlan plan, ParamLayout layout, int stage, int replica, long step) {
        Params g = PsTestSupport.gradient(layout, replica, step);
        for (int i = 0; i < layout.size(); i++) {
            if (stageOfFloat(plan, i) != stage) {
                g.buf().set(i, Float.NaN);
            }
        }
        return g;
    }

    private static int stageOfFloat(ChunkPlan plan, long i) {
        for (int s = 0; s < plan.stages(); s++) {
            for (FloatRange r : plan.stageRanges(s)) {
                if (i >= r.offset() && i < r.end()) {
                    return s;
                }
            }
        }
        throw new AssertionError("float " + i + " belongs to no stage");
    }

    private static Params filled(ParamLayout layout, float value) {
        Params p = new Params(layout, DataType.FLOAT);
        for (int i = 0; i < layout.size(); i++) {
            p.buf().set(i, value);
        }
        return p;
    }

    /** Own-stage floats equal the server's, the others are still the sentinel. */
    private static void assertOnlyStagePulled(ChunkPlan plan, int stage, Params server, Params pulled, String who) {
        for (int i = 0; i < server.layout().size(); i++) {
            float got = (float) pulled.buf().get(i);
            if (stageOfFloat(plan, i) == stage) {
                assertEquals((float) server.buf().get(i), got, who + ": float " + i + " of its own stage " + stage);
            } else {
                assertEquals(SENTINEL, got, who + ": float " + i + " of another stage must keep the caller's value");
            }
        }
    }

    /** One AdamW step from {@code state} on the float32 mean over the replicas' gradients of {@code step}. */
    private static Params oneStepFrom(TrainingState state, long step) {
        ParamLayout layout = state.params().layout();
        Params p = new Params(layout, DataType.FLOAT);
        Params m = new Params(layout, DataType.FLOAT);
        Params v = new Params(layout, DataType.FLOAT);
        p.copyFrom(state.params());
        m.copyFrom(state.adamM());
        v.copyFrom(state.adamV());
        Params avg = new Params(layout, DataType.FLOAT);
        for (int r = 0; r < REPLICAS; r++) {
            Params g = PsTestSupport.gradient(layout, r, step);
            for (int i = 0; i < layout.size(); i++) {
                avg.buf().set(i, avg.buf().get(i) + g.buf().get(i));
            }
        }
        for (int i = 0; i < layout.size(); i++) {
            avg.buf().set(i, avg.buf().get(i) / REPLICAS);
        }
        // as the server: a growth recorded in the state gets the appended chains' LR warm-up (growth_warmup_steps)
        AdamW.forState(layout, PsTestSupport.ADAM, state.frozenChains(), state.info()).step(p, avg, m, v, step,
                PsTestSupport.SCHEDULE.at(step));
        return p;
    }

    @ParameterizedTest
    @ValueSource(strings = {"ipc", "udp"})
    void shouldStepOnTheMeanOverReplicasOfTheStagesGradientsAndPullOnlyTheOwnStage(String transport) throws Exception {
        Path dir = PsTestSupport.testDir("pp-" + transport);
        ParameterServer.Context sctx = server(dir);
        if (transport.equals("udp")) {
            int port;
            try (DatagramSocket s = new DatagramSocket(0)) {
                port = s.getLocalPort();
            }
            sctx.channel("aeron:udp?endpoint=127.0.0.1:" + port).udpChannelParams("");
        }
        TrainingState init = PsTestSupport.pipelineState(7);
        int steps = 3;
        ExecutorService pool = Executors.newFixedThreadPool(WORKERS);
        try (ParameterServer ps = ParameterServer.launch(sctx)) {
            List<Future<Params[]>> results = new ArrayList<>();
            for (int w = 0; w < WORKERS; w++) {
                int worker = w;
                results.add(pool.submit(() -> {
                    try (ParameterServerClient c = ParameterServerClient.connect(PsTestSupport.client(sctx, worker)
                            .responseHost("127.0.0.1"))) {
                        assertEquals(worker % STAGES, c.stage());
                        assertEquals(worker / STAGES, c.replica());
                        ChunkPlan plan = c.serverLayout().plan();
                        Params p = new Params(c.layout(), DataType.FLOAT);
                        ParameterServerClient.PullResult r = c.pull(0, p);
                        for (long step = r.version() + 1; step <= steps; step++) {
                            c.push(step, r.version(), stageGradient(plan, c.layout(), c.stage(), c.replica(), step));
                            r = c.pull(c.sync().minVersionFor(step + 1), p);
                            assertEquals(step, r.version(), "a step publishes once all " + WORKERS + " workers pushed it");
                        }
                        Params own = filled(c.layout(), SENTINEL);
                        assertEquals(steps, c.pull(steps, own).version());
                        Params all = filled(c.layout(), SENTINEL);
                        assertEquals(steps, c.pullAll(steps, all).version());
                        return new Params[] {own, all};
                    }
                }));
            }
            List<Params[]> pulled = new ArrayList<>();
            for (Future<Params[]> f : results) {
                pulled.add(f.get(90, TimeUnit.SECONDS));
            }
            TrainingState server = ps.copyState(5_000);
            Params expected = PsTestSupport.reference(init, REPLICAS, steps);
            double diff = PsTestSupport.maxAbsDiff(expected, server.params());
            assertTrue(diff < 1e-6, "server parameters differ from chain-model's AdamW on the mean over " + REPLICAS
                    + " replicas of the assembled gradient by " + diff);
            assertTrue(PsTestSupport.maxAbsDiff(init.params(), server.params()) > 1e-4, "parameters must have moved");
            assertEquals(steps, ps.version());
            assertEquals(0, ps.metrics().totalRejections());

            ChunkPlan plan = ServerLayout.chunkPlan(init.params().layout(), sctx.shards, sctx.chunkFloats(),
                    StagePlan.plan(init.config(), STAGES, MICRO_BATCH, SEQ_LEN));
            for (int w = 0; w < WORKERS; w++) {
                assertOnlyStagePulled(plan, w % STAGES, server.params(), pulled.get(w)[0], "pull of worker " + w);
                assertEquals(0.0, PsTestSupport.maxAbsDiff(server.params(), pulled.get(w)[1]), "pullAll of worker " + w);
            }
            for (int s = 0; s < STAGES; s++) {
                assertEquals(steps * REPLICAS * plan.stageFloats(s) * 4, ps.metrics().stageBytesPushed(s), "bytes pushed by stage " + s);
            }
            assertTrue(ps.metrics().toMap().containsKey("stage_bytes"));
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void shouldCutChunksAtStageBoundariesAndTellClientsTheChainModelPlan() {
        Path dir = PsTestSupport.testDir("pp-layout");
        ParameterServer.Context sctx = server(dir);
        try (ParameterServer ps = ParameterServer.launch(sctx);
             ParameterServerClient c = ParameterServerClient.connect(PsTestSupport.client(sctx, 3))) {
            ServerLayout l = c.serverLayout();
            StagePlan expected = StagePlan.plan(PsTestSupport.pipelineConfig(), STAGES, MICRO_BATCH, SEQ_LEN);
            assertEquals(STAGES, l.pipelineStages());
            assertEquals(REPLICAS, l.replicas());
            assertEquals(1, c.stage());
            assertEquals(1, c.replica());
            ChunkPlan plan = l.plan();
            for (int s = 0; s < STAGES; s++) {
                assertEquals(ServerLayout.ranges(expected.stage(s).paramRanges()), plan.stageRanges(s), "stage " + s + " ranges");
                assertEquals(expected.stage(s).paramRanges(), l.stagePlan().stage(s).paramRanges());
            }
            int total = 0;
            for (int s = 0; s < STAGES; s++) {
                for (int k = 0; k < plan.stageChunkCount(s); k++) {
                    int i = plan.stageChunk(s, k);
                    assertEquals(s, plan.chunkStage(i));
                    boolean inside = false;
                    for (FloatRange r : plan.stageRanges(s)) {
                        inside |= plan.chunkOffset(i) >= r.offset() && plan.chunkOffset(i) + plan.chunkLength(i) <= r.end();
                    }
                    assertTrue(inside, "chunk " + i + " must lie in one range of its stage " + s);
                    total++;
                }
            }
            assertEquals(plan.chunks(), total, "the stages' chunks are all chunks, each once");

            // the layout document round-trips, and one whose shard stages disagree with chain-model's plan is refused
            ServerLayout back = ServerLayout.fromJson(l.toJson());
            assertEquals(java.util.Arrays.toString(l.shardStages()), java.util.Arrays.toString(back.shardStages()));
            int[] swapped = l.shardStages();
            for (int i = 0; i < swapped.length; i++) {
                swapped[i] = STAGES - 1 - swapped[i];
            }
            ServerLayout forged = new ServerLayout(l.job(), l.serverInstance(), l.epoch(), l.version(), l.config(), l.frozenChains(),
                    l.shardBounds(), l.chunkFloats(), l.sync(), l.workers(), l.pipelineStages(), l.pipelineMicroBatch(),
                    l.pipelineSeqLen(), l.pipelineSchedule(), l.pipelineMicros(), swapped);
            ParameterServerException e = assertThrows(ParameterServerException.class, () -> ServerLayout.fromJson(forged.toJson()));
            assertTrue(e.getMessage().contains("same Catena version"), e.getMessage());
        }
    }

    @Test
    void shouldRejectAnotherStagesChunkAndAWrongChunkCountNamingWorkerAndStage() {
        Path dir = PsTestSupport.testDir("pp-reject");
        ParameterServer.Context sctx = server(dir);
        TrainingState init = PsTestSupport.pipelineState(7);
        List<ParameterServerClient> clients = new ArrayList<>();
        try (ParameterServer ps = ParameterServer.launch(sctx)) {
            for (int w = 0; w < WORKERS; w++) {
                clients.add(ParameterServerClient.connect(PsTestSupport.client(sctx, w)));
            }
            ParameterServerClient c0 = clients.get(0);
            ChunkPlan plan = c0.serverLayout().plan();
            long job = KeySchedule.jobId(sctx.jobName());
            int own = plan.stageChunk(0, 0);
            int foreign = plan.stageChunk(1, 0);
            int ownCount = plan.stageChunkCount(0);

            // a valid first chunk of stage 0, then a chunk of stage 1 in the same push: refused as a whole
            var ownFrame = PsTestSupport.frame(c0, MessageType.PUSH, job, 0, 0, 1, 0, 201, own, ownCount,
                    PsTestSupport.floats(plan.chunkLength(own), 0.5f));
            assertTrue(c0.sendRawFrame(ownFrame, 0, ownFrame.capacity(), 2_000));
            var foreignFrame = PsTestSupport.frame(c0, MessageType.PUSH, job, 0, 0, 1, 0, 201, foreign, ownCount,
                    PsTestSupport.floats(plan.chunkLength(foreign), 0.5f));
            assertTrue(c0.sendRawFrame(foreignFrame, 0, foreignFrame.capacity(), 2_000));
            assertEquals(MessageType.REJECT, c0.awaitReply(201, 5_000));
            assertEquals(RejectReason.BAD_CHUNK, RejectReason.of(c0.lastReplyFlags()));
            String msg = c0.lastReplyText();
            assertTrue(msg.contains("worker 0") && msg.contains("stage 0") && msg.contains("chunk " + foreign)
                    && msg.contains("belongs to stage 1") && msg.contains(ownCount + " chunks of stage 0"), msg);

            // every chunk of the plan, as a worker without a pipeline would push: wrong count
            var allFrame = PsTestSupport.frame(c0, MessageType.PUSH, job, 0, 0, 1, 0, 202, own, plan.chunks(),
                    PsTestSupport.floats(plan.chunkLength(own), 0.5f));
            assertTrue(c0.sendRawFrame(allFrame, 0, allFrame.capacity(), 2_000));
            assertEquals(MessageType.REJECT, c0.awaitReply(202, 5_000));
            assertEquals(RejectReason.BAD_CHUNK, RejectReason.of(c0.lastReplyFlags()));
            msg = c0.lastReplyText();
            assertTrue(msg.contains("worker 0") && msg.contains("stage 0") && msg.contains(plan.chunks() + " chunks")
                    && msg.contains("expected the " + ownCount + " chunks of stage 0"), msg);

            assertEquals(2, ps.metrics().rejections(RejectReason.BAD_CHUNK));
            assertEquals(0, ps.version());
            assertEquals(0.0, PsTestSupport.maxAbsDiff(init.params(), ps.copyState(5_000).params()), "nothing may change");

            // the refused pushes leave nothing behind: a proper step is exactly the reference
            for (int w = 0; w < WORKERS; w++) {
                ParameterServerClient c = clients.get(w);
                assertFalse(c.push(1, 0, stageGradient(plan, c.layout(), c.stage(), c.replica(), 1)).duplicate());
            }
            assertEquals(1, ps.version());
            double diff = PsTestSupport.maxAbsDiff(PsTestSupport.reference(init, REPLICAS, 1), ps.copyState(5_000).params());
            assertTrue(diff < 1e-6, "step after refused pushes differs from the reference by " + diff);
        } finally {
            clients.forEach(ParameterServerClient::close);
        }
    }

    @Test
    void shouldReplanTheStagesWhenTheModelGrowsMidStream() {
        Path dir = PsTestSupport.testDir("pp-grow");
        ParameterServer.Context sctx = server(dir);
        List<ParameterServerClient> clients = new ArrayList<>();
        try (ParameterServer ps = ParameterServer.launch(sctx);
             ParameterServerClient admin = ParameterServerClient.connect(PsTestSupport.client(sctx, -1))) {
            for (int w = 0; w < WORKERS; w++) {
                clients.add(ParameterServerClient.connect(PsTestSupport.client(sctx, w)));
            }
            ParamLayout oldLayout = clients.get(0).layout();
            ChunkPlan oldPlan = clients.get(0).serverLayout().plan();
            StagePlan oldStages = clients.get(0).serverLayout().stagePlan();
            for (ParameterServerClient c : clients) {
                c.push(1, 0, stageGradient(oldPlan, oldLayout, c.stage(), c.replica(), 1));
            }
            assertEquals(1, ps.version());

            Map<String, Object> reply = admin.grow(List.of(1), false, null, 10_000);
            assertEquals(1, ((Number) reply.get("epoch")).intValue());
            assertEquals(1, ps.epoch());
            ParameterServerClient c0 = clients.get(0);
            RequestRejectedException stale = assertThrows(RequestRejectedException.class,
                    () -> c0.push(2, 1, stageGradient(oldPlan, oldLayout, 0, 0, 2)));
            assertEquals(RejectReason.STALE_EPOCH, stale.reason());

            TrainingState grownState = ps.copyState(5_000);
            ColmConfig grown = grownState.config();
            assertEquals(List.of(1, 1, 1), grown.chains());
            StagePlan replanned = oldStages.replan(grown);
            for (ParameterServerClient c : clients) {
                assertTrue(c.pull(1, new Params(oldLayout, DataType.FLOAT)).layoutChanged());
                assertEquals(1, c.epoch());
                ChunkPlan plan = c.serverLayout().plan();
                for (int s = 0; s < STAGES; s++) {
                    assertEquals(ServerLayout.ranges(replanned.stage(s).paramRanges()), plan.stageRanges(s), "stage " + s + " after growth");
                    assertEquals(3, plan.stageRanges(s).size(), "one range per chain");
                }
                Params own = filled(c.layout(), SENTINEL);
                assertEquals(1, c.pull(1, own).version());
                assertOnlyStagePulled(plan, c.stage(), grownState.params(), own, "worker " + c.workerId() + " after growth");
            }
            for (ParameterServerClient c : clients) {
                ChunkPlan plan = c.serverLayout().plan();
                assertFalse(c.push(2, 1, stageGradient(plan, c.layout(), c.stage(), c.replica(), 2)).duplicate());
            }
            assertEquals(2, ps.version());
            double diff = PsTestSupport.maxAbsDiff(oneStepFrom(grownState, 2), ps.copyState(5_000).params());
            assertTrue(diff < 1e-6, "the first step after growth differs from chain-model's AdamW by " + diff);
        } finally {
            clients.forEach(ParameterServerClient::close);
        }
    }

    @Test
    void chunkPlanShouldCutAtEveryStageBoundaryAndStayTheSameWithOneStage() {
        ColmConfig cfg = PsTestSupport.pipelineConfig();
        ParamLayout layout = new ParamLayout(cfg);
        for (int shards = 1; shards <= 5; shards++) {
            for (int chunkFloats : new int[] {7, 64, 100_000}) {
                ChunkPlan unpiped = ServerLayout.chunkPlan(layout, shards, chunkFloats, null);
                ChunkPlan oneStage = ServerLayout.chunkPlan(layout, shards, chunkFloats, StagePlan.plan(cfg, 1, MICRO_BATCH, SEQ_LEN));
                assertEquals(java.util.Arrays.toString(unpiped.shardBounds()), java.util.Arrays.toString(oneStage.shardBounds()));
                assertEquals(unpiped.chunks(), oneStage.chunks());
                assertEquals(unpiped.chunks(), unpiped.stageChunkCount(0));
                assertEquals(List.of(new FloatRange(0, layout.size())), unpiped.stageRanges(0));
                for (int stages = 2; stages <= 3; stages++) {
                    StagePlan sp = StagePlan.plan(cfg, stages, MICRO_BATCH, SEQ_LEN);
                    ChunkPlan plan = ServerLayout.chunkPlan(layout, shards, chunkFloats, sp);
                    java.util.Set<Long> bounds = new java.util.HashSet<>();
                    for (long b : plan.shardBounds()) {
                        bounds.add(b);
                    }
                    for (long b : unpiped.shardBounds()) {
                        assertTrue(bounds.contains(b), "tensor shard bound " + b + " kept");
                    }
                    for (int s = 0; s < stages; s++) {
                        assertEquals(ServerLayout.ranges(sp.stage(s).paramRanges()), plan.stageRanges(s), "stage " + s + " of " + stages);
                    }
                    for (int i = 0; i < plan.chunks(); i++) {
                        int owner = stageOfFloat(plan, plan.chunkOffset(i));
                        assertEquals(owner, plan.chunkStage(i));
                        assertEquals(owner, stageOfFloat(plan, plan.chunkOffset(i) + plan.chunkLength(i) - 1),
                                "chunk " + i + " must not cross a stage boundary");
                    }
                }
            }
        }
    }

    @Test
    void concludeShouldRefuseAPipelineItCannotServeNamingTheSetting() {
        Path dir = PsTestSupport.testDir("pp-conf");
        ConfigurationException asp = assertThrows(ConfigurationException.class,
                () -> server(dir).sync(SyncPolicy.asp()).conclude());
        assertEquals(Configuration.SYNC_PROP, asp.property());
        assertTrue(asp.getMessage().contains(Configuration.PIPELINE_STAGES_PROP + "=2") && asp.getMessage().contains("'asp'"),
                asp.getMessage());

        ConfigurationException odd = assertThrows(ConfigurationException.class, () -> server(dir).workers(3).conclude());
        assertEquals(Configuration.WORKERS_PROP, odd.property());
        assertTrue(odd.getMessage().contains("a multiple of " + Configuration.PIPELINE_STAGES_PROP + "=2"), odd.getMessage());

        ConfigurationException deep = assertThrows(ConfigurationException.class,
                () -> server(dir).pipeline(4, MICRO_BATCH, SEQ_LEN).conclude());
        assertEquals(Configuration.PIPELINE_STAGES_PROP, deep.property());
        assertTrue(deep.getMessage().contains("layers=3"), deep.getMessage());

        assertEquals(Configuration.PIPELINE_STAGES_PROP, assertThrows(ConfigurationException.class,
                () -> server(dir).pipeline(0, MICRO_BATCH, SEQ_LEN).conclude()).property());
        assertEquals(Configuration.PIPELINE_MICRO_BATCH_PROP, assertThrows(ConfigurationException.class,
                () -> server(dir).pipeline(2, 0, SEQ_LEN).conclude()).property());

        // ssp is fine; seq len 0 means the model's max_seq_len; the settings also come from properties
        assertEquals(8, server(dir).sync(SyncPolicy.ssp(1)).pipeline(2, 1, 0).conclude().pipelineSeqLen());
        java.util.Properties p = new java.util.Properties();
        p.setProperty(Configuration.PIPELINE_STAGES_PROP, "3");
        p.setProperty(Configuration.PIPELINE_MICRO_BATCH_PROP, "4");
        p.setProperty(Configuration.PIPELINE_SEQ_LEN_PROP, "16");
        ParameterServer.Context fromProps = new ParameterServer.Context(p);
        assertEquals(3, fromProps.pipelineStages());
        assertEquals(4, fromProps.pipelineMicroBatch());
        assertEquals(16, fromProps.pipelineSeqLen());
        assertTrue(Configuration.KEYS.contains(Configuration.PIPELINE_STAGES_PROP));
        assertEquals(1, new ParameterServer.Context().pipelineStages(), "no pipeline unless asked for");
        assertEquals(0, fromProps.pipelineMicros(), "the balanced split unless the trainer names its micro-batches");

        p.setProperty(Configuration.PIPELINE_STAGES_PROP, "2");
        p.setProperty(Configuration.PIPELINE_MICRO_BATCHES_PROP, "8");
        p.setProperty(Configuration.PIPELINE_SCHEDULE_PROP, "GPipe");
        ParameterServer.Context fitted = PsTestSupport.configure(new ParameterServer.Context(p), dir, WORKERS, SyncPolicy.bsp())
                .initialState(PsTestSupport.pipelineState(7)).conclude();
        assertEquals(8, fitted.pipelineMicros());
        assertEquals(io.catena.model.pipeline.PipelineSchedule.Kind.GPIPE, fitted.pipelineSchedule());
        p.setProperty(Configuration.PIPELINE_SCHEDULE_PROP, "zigzag");
        ConfigurationException schedule = assertThrows(ConfigurationException.class,
                () -> PsTestSupport.configure(new ParameterServer.Context(p), dir, WORKERS, SyncPolicy.bsp())
                        .initialState(PsTestSupport.pipelineState(7)).conclude());
        assertEquals(Configuration.PIPELINE_SCHEDULE_PROP, schedule.property());
        assertTrue(schedule.getMessage().contains("zigzag"), schedule.getMessage());
        assertEquals(Configuration.PIPELINE_MICRO_BATCHES_PROP, assertThrows(ConfigurationException.class,
                () -> server(dir).pipeline(2, MICRO_BATCH, SEQ_LEN, io.catena.model.pipeline.PipelineSchedule.Kind.ONE_F_ONE_B, -1)
                        .conclude()).property());
    }

    /** A server told the trainer's schedule and micro-batches cuts its chunks by the split fitted to them, and clients agree. */
    @Test
    void scheduleFittedSplitShouldBeTheServersAndTheClientsPlan() {
        Path dir = PsTestSupport.testDir("pp-fitted");
        io.catena.model.pipeline.PipelineSchedule.Kind kind = io.catena.model.pipeline.PipelineSchedule.Kind.ONE_F_ONE_B;
        StagePlan balanced = StagePlan.plan(PsTestSupport.pipelineConfig(), STAGES, MICRO_BATCH, SEQ_LEN);
        // the smallest micro-batch count whose fitted split differs from the balanced one on this 3-block model
        int micros = java.util.stream.IntStream.rangeClosed(1, 16).filter(m -> StagePlan.plan(PsTestSupport.pipelineConfig(), STAGES,
                MICRO_BATCH, SEQ_LEN, kind, m).stage(0).endUnit() != balanced.stage(0).endUnit()).findFirst().orElseThrow();
        ParameterServer.Context sctx = server(dir).pipeline(STAGES, MICRO_BATCH, SEQ_LEN, kind, micros);
        try (ParameterServer ps = ParameterServer.launch(sctx);
             ParameterServerClient c = ParameterServerClient.connect(PsTestSupport.client(sctx, 0))) {
            ServerLayout l = c.serverLayout();
            StagePlan expected = StagePlan.plan(PsTestSupport.pipelineConfig(), STAGES, MICRO_BATCH, SEQ_LEN, kind, micros);
            assertEquals(kind, l.stagePlan().schedule());
            assertEquals(micros, l.stagePlan().micros());
            for (int s = 0; s < STAGES; s++) {
                assertEquals(ServerLayout.ranges(expected.stage(s).paramRanges()), l.plan().stageRanges(s), "stage " + s + " ranges");
                assertEquals(expected.stage(s).firstUnit(), l.stagePlan().stage(s).firstUnit());
            }
            assertEquals("1f1b", ServerLayout.fromJson(l.toJson()).pipelineSchedule());
        }
    }
}
