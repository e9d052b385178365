package io.catena.ps;

import io.aeron.Aeron;
import io.catena.model.ColmConfig;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.io.CheckpointStore;
import io.catena.model.io.TrainingState;
import io.catena.model.optim.AdamW;
import io.catena.model.optim.LrSchedule;
import io.catena.model.pipeline.PipelineSchedule;
import io.catena.model.pipeline.StagePlan;
import io.catena.model.train.Recipe;
import io.catena.model.train.TrainSettings;
import io.catena.ps.protocol.KeySchedule;
import io.catena.ps.protocol.MessageHeader;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.agrona.CloseHelper;
import org.agrona.concurrent.AgentRunner;
import org.nd4j.linalg.api.buffer.DataType;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The Catena parameter server: holds the master parameters of one job in a flat buffer cut into
 * shards, applies chain-model's AdamW to the gradients workers push (BSP, SSP or ASP), publishes
 * versions that workers pull, grows the model by appending chains (bumping the model epoch), and
 * writes snapshots as chain-model checkpoints. With pipeline stages ({@link Context#pipeline}) each worker
 * pushes and pulls only its stage's parameter ranges. All state is owned by one Agrona agent; the methods
 * here hand work to it and wait with a timeout.
 *
 * <pre>{@code
 * try (ParameterServer ps = ParameterServer.launch(new ParameterServer.Context()
 *         .jobName("run-42").secret(secret).workers(4).initialState(state).snapshotUri("hdfs:///ckpt/run-42"))) {
 *     ...
 * }
 * }</pre>
 */
public final class ParameterServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(ParameterServer.class);

    private final Context ctx;
    private final SharedDriver driver;
    private final Aeron aeron;
    private final ServerConductor conductor;
    private final AgentRunner runner;
    private volatile boolean closed;

    private ParameterServer(Context ctx) {
        this.ctx = ctx;
        SharedDriver d = null;
        Aeron a = null;
        try {
            d = ctx.embeddedDriver ? SharedDriver.acquire(ctx.aeronDirectoryName, ctx.termLength, ctx.idleStrategy) : null;
            a = Aeron.connect(new Aeron.Context().aeronDirectoryName(ctx.aeronDirectoryName)
                    .driverTimeoutMs(Math.max(10_000, ctx.sendTimeoutMs)));
            this.conductor = new ServerConductor(ctx, a);
        } catch (RuntimeException e) {
            CloseHelper.quietCloseAll(a, d);
            if (e instanceof ParameterServerException) {
                throw e;
            }
            throw new ParameterServerException("parameter server failed to start on " + ctx.channel + " (Aeron dir "
                    + ctx.aeronDirectoryName + "): " + e.getMessage() + "; check that no other server uses the channel's "
                    + "port and that " + Configuration.AERON_DIR_PROP + " names a usable directory", e);
        }
        this.driver = d;
        this.aeron = a;
        this.runner = new AgentRunner(Transport.idleStrategy(ctx.idleStrategy, Configuration.IDLE_STRATEGY_PROP),
                t -> LOG.error("parameter server agent error", t), null, conductor);
        AgentRunner.startOnThread(runner);
        LOG.info("parameter server for job '{}' listening on {} stream {}: {} parameters in {} shards, {} workers{}, {}, epoch {}, version {}",
                ctx.jobName, ctx.channel, ctx.streamId, conductor.layout().size(), conductor.plan().shards(), ctx.workers,
                ctx.pipelineStages > 1 ? " (" + ctx.workers / ctx.pipelineStages + " replicas x " + ctx.pipelineStages
                        + " pipeline stages)" : "", ctx.sync, conductor.epoch(), conductor.version());
    }

    /** Validates the context ({@link Context#conclude()}) and starts the server. */
    public static ParameterServer launch(Context ctx) {
        ctx.conclude();
        return new ParameterServer(ctx);
    }

    public Context context() {
        return ctx;
    }

    /** Latest published version (number of optimizer steps applied). */
    public long version() {
        return conductor.version();
    }

    /** Current model epoch (bumped by every growth). */
    public int epoch() {
        return conductor.epoch();
    }

    public ColmConfig config() {
        return conductor.layout().config();
    }

    public ServerMetrics metrics() {
        return conductor.metrics();
    }

    /**
     * Appends chains (see chain-model's ChainExpansion) after the in-flight step finishes, re-plans the
     * shards and bumps the epoch. Returns the new epoch.
     */
    public int grow(List<Integer> addedChains, boolean freezeOld, List<Double> lossWeights, long timeoutMs) {
        CompletableFuture<Map<String, Object>> f = new CompletableFuture<>();
        conductor.submit(c -> c.requestGrow(addedChains, freezeOld, ctx.seed, lossWeights, f));
        return ((Number) await(f, timeoutMs, "growth by chains " + addedChains).get("epoch")).intValue();
    }

    /** Writes a snapshot of the current version now; returns the checkpoint directory written. */
    public String snapshot(long timeoutMs) {
        return snapshot(Map.of(), timeoutMs);
    }

    /**
     * Writes a snapshot now; {@code trainerInfo} may carry tokens_seen and data_position (numbers) and
     * any other facts for model.json's info. Returns the checkpoint directory written.
     */
    public String snapshot(Map<String, Object> trainerInfo, long timeoutMs) {
        CompletableFuture<String> f = new CompletableFuture<>();
        conductor.submit(c -> c.requestSnapshot(trainerInfo, f));
        return await(f, timeoutMs, "snapshot to " + ctx.snapshotUri);
    }

    /**
     * What every later snapshot carries (interval, requested, at close): {@code info} (the trainer's facts: recipe, data,
     * history, ...) and the data cursor: at {@code step} the trainer had read {@code dataPosition} windows and
     * {@code tokensSeen} tokens, and each step reads {@code windowsPerStep} windows of {@code tokensPerStep} tokens. So a
     * resume from any snapshot continues the data where that version left it.
     */
    public void trainerInfo(Map<String, Object> info, long step, long dataPosition, long tokensSeen, long windowsPerStep,
                            long tokensPerStep, long timeoutMs) {
        CompletableFuture<Boolean> f = new CompletableFuture<>();
        SnapshotWriter.TrainerCursor c = new SnapshotWriter.TrainerCursor(step, dataPosition, tokensSeen, windowsPerStep, tokensPerStep);
        conductor.submit(cd -> {
            cd.setTrainerInfo(info, c);
            f.complete(true);
        });
        await(f, timeoutMs, "registering the trainer's info");
    }

    /** A copy of the current parameters and optimizer state (for tests and the trainer's driver). */
    public TrainingState copyState(long timeoutMs) {
        CompletableFuture<TrainingState> f = new CompletableFuture<>();
        conductor.submit(c -> f.complete(c.copyState(Map.of())));
        return await(f, timeoutMs, "a copy of the parameters");
    }

    private <T> T await(CompletableFuture<T> f, long timeoutMs, String what) {
        if (closed) {
            throw new ParameterServerException("parameter server is closed; cannot do " + what);
        }
        try {
            return f.get(timeoutMs, TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            throw new ParameterServerTimeoutException(what + " did not complete within " + timeoutMs + " ms (server version "
                    + version() + ", epoch " + epoch() + "); if workers are mid-step, wait for them or raise the timeout");
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof RuntimeException r) {
                throw r;
            }
            throw new ParameterServerException(what + " failed: " + c, c);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ParameterServerException("interrupted while waiting for " + what);
        }
    }

    /** Stops the agent (writing a last snapshot if configured), then Aeron and the embedded driver. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        CloseHelper.closeAll(runner, aeron, driver);
        conductor.shutdownSnapshots();
        LOG.info("parameter server for job '{}' closed at version {}", ctx.jobName, conductor.version());
    }

    /**
     * Settings of a server. Defaults come from {@link Configuration} (system properties or a properties
     * object); {@link #conclude()} validates everything and loads the initial model before any resource is taken.
     *
     * <p>Worker ids: 0..W-1. With {@link #pipeline(int, int, int) pipeline stages} P, worker w runs stage
     * {@code w % P} of data-parallel replica {@code w / P} (so W = replicas x P, and the P workers of one
     * replica have consecutive ids).
     */
    public static final class Context extends TransportContext<Context> {
        int chunkBytes;
        int shards;
        int workers;
        int pipelineStages;
        int pipelineMicroBatch;
        int pipelineSeqLen;
        int pipelineMicros;
        String pipelineScheduleText = Configuration.PIPELINE_SCHEDULE_DEFAULT;
        PipelineSchedule.Kind pipelineSchedule = PipelineSchedule.Kind.ONE_F_ONE_B;
        SyncPolicy sync;
        String syncText;
        TrainingState initialState;
        String restoreUri;
        String recipe;
        List<String> recipeOverrides = List.of();
        int vocabSize;
        long seed;
        String snapshotUri;
        long snapshotInterval;
        boolean snapshotOnClose;
        boolean alsoIpc;
        long sendTimeoutMs;
        long growTimeoutMs;
        int maxClients;
        int rekeyShift = KeySchedule.DEFAULT_REKEY_SHIFT;
        AdamW.Settings adamW;
        LrSchedule schedule;
        double growthLrRewarm = -1;
        org.apache.hadoop.conf.Configuration hadoopConf;
        private boolean concluded;
        // derived by conclude()
        int chunkFloats;
        int maxMessageLength;

        /** Defaults from system properties. */
        public Context() {
            this(null);
        }

        /** Defaults from {@code p} (then system properties, then {@link Configuration}'s defaults). */
        public Context(Properties p) {
            super(p);
            chunkBytes = Configuration.getInt(p, Configuration.CHUNK_BYTES_PROP, Configuration.CHUNK_BYTES_DEFAULT);
            shards = Configuration.getInt(p, Configuration.SHARDS_PROP, Configuration.SHARDS_DEFAULT);
            workers = Configuration.getInt(p, Configuration.WORKERS_PROP, Configuration.WORKERS_DEFAULT);
            syncText = Configuration.get(p, Configuration.SYNC_PROP, Configuration.SYNC_DEFAULT);
            pipelineStages = Configuration.getInt(p, Configuration.PIPELINE_STAGES_PROP, Configuration.PIPELINE_STAGES_DEFAULT);
            pipelineMicroBatch = Configuration.getInt(p, Configuration.PIPELINE_MICRO_BATCH_PROP,
                    Configuration.PIPELINE_MICRO_BATCH_DEFAULT);
            pipelineSeqLen = Configuration.getInt(p, Configuration.PIPELINE_SEQ_LEN_PROP, Configuration.PIPELINE_SEQ_LEN_DEFAULT);
            pipelineMicros = Configuration.getInt(p, Configuration.PIPELINE_MICRO_BATCHES_PROP, Configuration.PIPELINE_MICRO_BATCHES_DEFAULT);
            pipelineScheduleText = Configuration.get(p, Configuration.PIPELINE_SCHEDULE_PROP, Configuration.PIPELINE_SCHEDULE_DEFAULT);
            restoreUri = Configuration.get(p, Configuration.RESTORE_PROP, null);
            recipe = Configuration.get(p, Configuration.RECIPE_PROP, null);
            recipeOverrides = java.util.Arrays.stream(Configuration.get(p, Configuration.RECIPE_SET_PROP, "").split(";"))
                    .map(String::trim).filter(o -> !o.isEmpty()).toList();
            vocabSize = Configuration.getInt(p, Configuration.VOCAB_SIZE_PROP, Configuration.VOCAB_SIZE_DEFAULT);
            seed = Configuration.getLong(p, Configuration.SEED_PROP, Configuration.SEED_DEFAULT);
            snapshotUri = Configuration.get(p, Configuration.SNAPSHOT_URI_PROP, null);
            snapshotInterval = Configuration.getLong(p, Configuration.SNAPSHOT_INTERVAL_PROP, Configuration.SNAPSHOT_INTERVAL_DEFAULT);
            snapshotOnClose = Configuration.getBoolean(p, Configuration.SNAPSHOT_ON_CLOSE_PROP, Configuration.SNAPSHOT_ON_CLOSE_DEFAULT);
            alsoIpc = Configuration.getBoolean(p, Configuration.ALSO_IPC_PROP, Configuration.ALSO_IPC_DEFAULT);
            sendTimeoutMs = Configuration.getLong(p, Configuration.SEND_TIMEOUT_PROP, Configuration.SEND_TIMEOUT_DEFAULT);
            growTimeoutMs = Configuration.getLong(p, Configuration.GROW_TIMEOUT_PROP, Configuration.GROW_TIMEOUT_DEFAULT);
            maxClients = Configuration.getInt(p, Configuration.MAX_CLIENTS_PROP, Configuration.MAX_CLIENTS_DEFAULT);
        }

        public Context chunkBytes(int v) { chunkBytes = v; return this; }
        public Context shards(int v) { shards = v; return this; }
        /** All workers W; with pipeline stages W = data-parallel replicas x stages. */
        public Context workers(int v) { workers = v; return this; }

        /**
         * Pipeline parallelism: {@code stages} contiguous block ranges (chain-model's StagePlan, balanced for
         * micro-batches of {@code microBatch} x {@code seqLen} tokens; seqLen 0: the model's max_seq_len).
         * Worker w runs stage {@code w % stages} of data-parallel replica {@code w / stages}, so
         * {@link #workers(int)} must be a multiple of stages. Each worker pushes and pulls only its stage's
         * parameter ranges; a BSP/SSP step completes when all workers pushed it and is applied to the mean
         * over the replicas. The server plans the stages itself from its model (and re-plans at growth), so
         * workers learn their ranges from the layout the server sends. stages = 1 (the default): no pipeline.
         */
        public Context pipeline(int stages, int microBatch, int seqLen) {
            pipelineStages = stages;
            pipelineMicroBatch = microBatch;
            pipelineSeqLen = seqLen;
            return this;
        }

        /**
         * As {@link #pipeline(int, int, int)}, with the split fitted to {@code schedule} running {@code micros}
         * micro-batches per step (chain-model's {@code StagePlan.plan} with a schedule; 0: balanced).
         */
        public Context pipeline(int stages, int microBatch, int seqLen, PipelineSchedule.Kind schedule, int micros) {
            pipeline(stages, microBatch, seqLen);
            pipelineSchedule = schedule;
            pipelineScheduleText = schedule.label();
            pipelineMicros = micros;
            return this;
        }
        public Context sync(SyncPolicy v) { sync = v; syncText = v.toString(); return this; }
        /** The model to serve (parameters, optional AdamW moments, step = version, frozen chains). */
        public Context initialState(TrainingState v) { initialState = v; return this; }
        /** Start from this checkpoint instead (root or step directory; wins over initialState). */
        public Context restoreUri(String v) { restoreUri = v; return this; }
        public Context recipe(String v) { recipe = v; return this; }
        public Context recipeOverrides(List<String> v) { recipeOverrides = List.copyOf(v); return this; }
        public Context seed(long v) { seed = v; return this; }
        public Context snapshotUri(String v) { snapshotUri = v; return this; }
        public Context snapshotInterval(long v) { snapshotInterval = v; return this; }
        public Context snapshotOnClose(boolean v) { snapshotOnClose = v; return this; }
        /** Also accept clients on {@code aeron:ipc} ({@link Configuration#ALSO_IPC_PROP}). */
        public Context alsoIpc(boolean v) { alsoIpc = v; return this; }
        public Context sendTimeoutMs(long v) { sendTimeoutMs = v; return this; }
        public Context growTimeoutMs(long v) { growTimeoutMs = v; return this; }
        public Context maxClients(int v) { maxClients = v; return this; }
        /**
         * Every traffic key (each session direction, the broadcast) moves to a fresh HKDF generation after 2^shift
         * frames; default {@value KeySchedule#DEFAULT_REKEY_SHIFT} (16 TiB of 1 MiB chunks), tests use small values.
         */
        public Context rekeyShift(int v) { rekeyShift = v; return this; }
        public Context adamW(AdamW.Settings v) { adamW = v; return this; }
        public Context schedule(LrSchedule v) { schedule = v; return this; }
        /** The recipe's growth_lr_rewarm (the rate restarts at this share of lr after the first growth); unset: the recipe's, else 0. */
        public Context growthLrRewarm(double v) { growthLrRewarm = v; return this; }
        public Context hadoopConf(org.apache.hadoop.conf.Configuration v) { hadoopConf = v; return this; }

        /**
         * A client context with the settings a client shares with this server ({@link TransportContext}: job, secret,
         * channel, Aeron dir, term length, ...); set the worker id and the rest on it. (The server knows the client's
         * settings; the client knows nothing of the server's classes.)
         */
        public ParameterServerClient.Context clientContext() {
            return new ParameterServerClient.Context(this);
        }

        public int workers() { return workers; }
        public int pipelineStages() { return pipelineStages; }
        public int pipelineMicroBatch() { return pipelineMicroBatch; }
        /** Tokens per micro-batch row of the stage plan; after {@link #conclude()} never 0 (the model's max_seq_len). */
        public int pipelineSeqLen() { return pipelineSeqLen; }
        public int pipelineMicros() { return pipelineMicros; }
        public PipelineSchedule.Kind pipelineSchedule() { return pipelineSchedule; }
        public SyncPolicy sync() { return sync; }
        public String snapshotUri() { return snapshotUri; }
        public int chunkFloats() { return chunkFloats; }
        public long jobId() { return jobId; }
        public TrainingState initialState() { return initialState; }

        /** Validates every setting (naming the bad one) and loads the initial model. Idempotent. */
        public Context conclude() {
            if (concluded) {
                return this;
            }
            if (workers < 1) {
                throw new ConfigurationException(Configuration.WORKERS_PROP, "at least 1 worker", workers, "set the data-parallel degree");
            }
            checkPipelineCounts();
            if (shards < 1) {
                throw new ConfigurationException(Configuration.SHARDS_PROP, "at least 1 shard", shards, "use e.g. 4");
            }
            if (rekeyShift < KeySchedule.MIN_REKEY_SHIFT || rekeyShift > KeySchedule.MAX_REKEY_SHIFT) {
                throw new ConfigurationException("rekeyShift", "a shift in [" + KeySchedule.MIN_REKEY_SHIFT + ", "
                        + KeySchedule.MAX_REKEY_SHIFT + "] (2^shift frames per key)", rekeyShift, "use the default "
                        + KeySchedule.DEFAULT_REKEY_SHIFT);
            }
            if (maxClients < workers + 1) {
                throw new ConfigurationException(Configuration.MAX_CLIENTS_PROP, "at least workers + 1 = " + (workers + 1), maxClients,
                        "raise it");
            }
            if (sendTimeoutMs < 1 || growTimeoutMs < 1) {
                throw new ConfigurationException(sendTimeoutMs < 1 ? Configuration.SEND_TIMEOUT_PROP : Configuration.GROW_TIMEOUT_PROP,
                        "a positive number of milliseconds", sendTimeoutMs < 1 ? sendTimeoutMs : growTimeoutMs, "fix the value");
            }
            if (sync == null) {
                try {
                    sync = SyncPolicy.parse(syncText);
                } catch (IllegalArgumentException e) {
                    throw new ConfigurationException(Configuration.SYNC_PROP, "bsp, ssp:S or asp", syncText, "fix the value", e);
                }
            }
            if (pipelineStages > 1 && sync.mode() == SyncPolicy.Mode.ASP) {
                throw new ConfigurationException(Configuration.SYNC_PROP, "bsp or ssp:S because " + Configuration.PIPELINE_STAGES_PROP
                        + "=" + pipelineStages + " (a step needs every stage's gradient of the same parameters; asp would apply one "
                        + "stage's part on its own)", syncText, "set " + Configuration.SYNC_PROP + "=bsp (or ssp:S), or "
                        + Configuration.PIPELINE_STAGES_PROP + "=1");
            }
            concludeTransport(2 * (workers + 2));
            int max = Transport.maxMessageLength(termLength);
            int bytes = Math.min(chunkBytes, max - MessageHeader.OVERHEAD) & ~3;
            if (chunkBytes < 4 || bytes < 4) {
                throw new ConfigurationException(Configuration.CHUNK_BYTES_PROP, "at least 4 bytes and room in a message of "
                        + max + " bytes (term length / 8)", chunkBytes, "raise " + Configuration.CHUNK_BYTES_PROP + " or "
                        + Configuration.TERM_LENGTH_PROP);
            }
            chunkFloats = bytes / 4;
            maxMessageLength = MessageHeader.OVERHEAD + Math.max(bytes, 16 * 1024);
            if (snapshotUri != null && snapshotUri.isBlank()) {
                snapshotUri = null;
            }
            if (snapshotInterval < 0) {
                throw new ConfigurationException(Configuration.SNAPSHOT_INTERVAL_PROP, "0 (off) or a positive version count",
                        snapshotInterval, "fix the value");
            }
            if (snapshotInterval > 0 && snapshotUri == null) {
                throw new ConfigurationException(Configuration.SNAPSHOT_URI_PROP, "a checkpoint root URI because "
                        + Configuration.SNAPSHOT_INTERVAL_PROP + "=" + snapshotInterval, null, "set it or set the interval to 0");
            }
            loadModelAndOptimizer();
            checkPipelineFitsTheModel();
            concluded = true;
            return this;
        }

        /** Stage count, micro-batch shape and workers = replicas x stages; before anything heavy is loaded. */
        private void checkPipelineCounts() {
            if (pipelineStages < 1) {
                throw new ConfigurationException(Configuration.PIPELINE_STAGES_PROP, "at least 1 stage (1: no pipeline)", pipelineStages,
                        "set the trainer's pipeline degree --pp");
            }
            if (workers % pipelineStages != 0) {
                throw new ConfigurationException(Configuration.WORKERS_PROP, "a multiple of " + Configuration.PIPELINE_STAGES_PROP + "="
                        + pipelineStages + " (workers = data-parallel replicas x stages)", workers, "set it to dp x "
                        + pipelineStages + ", e.g. " + Math.max(1, workers / pipelineStages) * pipelineStages);
            }
            if (pipelineMicroBatch < 1) {
                throw new ConfigurationException(Configuration.PIPELINE_MICRO_BATCH_PROP, "at least 1 row per micro-batch",
                        pipelineMicroBatch, "set the trainer's micro-batch size");
            }
            if (pipelineMicros < 0) {
                throw new ConfigurationException(Configuration.PIPELINE_MICRO_BATCHES_PROP, "micro-batches per step >= 1, or 0 for the "
                        + "balanced stage split", pipelineMicros, "set the trainer's --micro-batches");
            }
            try {
                pipelineSchedule = PipelineSchedule.Kind.parse(pipelineScheduleText);
            } catch (IllegalArgumentException e) {
                throw new ConfigurationException(Configuration.PIPELINE_SCHEDULE_PROP, "gpipe or 1f1b", pipelineScheduleText,
                        "set the trainer's --schedule");
            }
            if (pipelineSeqLen < 0) {
                throw new ConfigurationException(Configuration.PIPELINE_SEQ_LEN_PROP, "a sequence length >= 1, or 0 for the model's "
                        + "max_seq_len", pipelineSeqLen, "set the trainer's sequence length");
            }
        }

        /** Every stage needs a block; the stage plan must exist for the model the server starts with. */
        private void checkPipelineFitsTheModel() {
            ColmConfig cfg = initialState.config();
            if (pipelineSeqLen == 0) {
                pipelineSeqLen = cfg.maxSeqLen();
            }
            if (pipelineStages > cfg.layers()) {
                throw new ConfigurationException(Configuration.PIPELINE_STAGES_PROP, "at most layers=" + cfg.layers() + " stages (every "
                        + "stage runs at least one transformer block)", pipelineStages, "lower the stage count or serve a deeper model");
            }
            if (pipelineStages > 1) {
                try {
                    StagePlan.plan(cfg, pipelineStages, pipelineMicroBatch, pipelineSeqLen, pipelineSchedule, pipelineMicros);
                } catch (IllegalArgumentException e) {
                    throw new ConfigurationException(Configuration.PIPELINE_STAGES_PROP, "a pipeline chain-model can plan",
                            pipelineStages, e.getMessage(), e);
                }
            }
        }

        private void loadModelAndOptimizer() {
            TrainSettings recipeSettings = null;
            Recipe r = null;
            if (recipe != null && !recipe.isBlank()) {
                try {
                    r = Recipe.resolve(recipe).with(recipeOverrides);
                    recipeSettings = r.trainSettings();
                } catch (RuntimeException e) {
                    throw new ConfigurationException(Configuration.RECIPE_PROP, "a valid chain-model recipe", recipe, e.getMessage(), e);
                }
            }
            if ((adamW == null || schedule == null) && recipeSettings == null) {
                throw new ConfigurationException(Configuration.RECIPE_PROP, "the job's recipe (the server applies its optimizer and "
                        + "LR schedule)", null, "set " + Configuration.RECIPE_PROP + " to the recipe the trainer uses (a file or "
                        + "builtin:NAME; overrides in " + Configuration.RECIPE_SET_PROP + "), also when restoring a checkpoint");
            }
            if (adamW == null) {
                adamW = recipeSettings.adamW();
            }
            if (schedule == null) {
                schedule = recipeSettings.schedule();
            }
            if (growthLrRewarm < 0) {
                growthLrRewarm = recipeSettings != null ? recipeSettings.growthLrRewarm() : 0;
            }
            if (restoreUri != null && !restoreUri.isBlank()) {
                try {
                    initialState = new CheckpointStore(io.catena.model.io.storage.HadoopStorage.resolver(hadoopConf != null ? hadoopConf : new org.apache.hadoop.conf.Configuration()))
                            .load(restoreUri, true);
                } catch (RuntimeException e) {
                    throw new ConfigurationException(Configuration.RESTORE_PROP, "a checkpoint with optimizer state", restoreUri,
                            e.getMessage(), e);
                }
            } else if (initialState == null && r != null) {
                // the recipe's vocab_size wins; catena.ps.vocab.size only fills in when the recipe has none
                ColmConfig cfg = r.modelConfig(r.values().containsKey("vocab_size") ? 2 : vocabSize);
                Params p = new Params(new ParamLayout(cfg), DataType.FLOAT);
                p.initialize(recipeSettings.seed(), 0);
                initialState = new TrainingState(cfg, p, null, null, 0, 0, 0, recipeSettings.frozenChains(), Map.of());
            }
            if (initialState == null) {
                throw new ConfigurationException(Configuration.RECIPE_PROP, "a model to serve", null, "set "
                        + Configuration.RECIPE_PROP + " (fresh model), " + Configuration.RESTORE_PROP
                        + " / --restore (checkpoint) or Context.initialState(...)");
            }
            if (initialState.params().dataType() != DataType.FLOAT) {
                throw new ConfigurationException("initialState", "float32 parameters", initialState.params().dataType(),
                        "convert the model to float32");
            }
        }
    }
}
