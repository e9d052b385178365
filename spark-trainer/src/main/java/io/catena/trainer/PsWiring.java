package io.catena.trainer;

import io.catena.model.io.TrainingState;
import io.catena.model.train.TrainSettings;
import io.catena.ps.ParameterServer;
import io.catena.ps.ParameterServerClient;
import io.catena.ps.ServerLayout;
import io.catena.ps.SyncPolicy;
import io.catena.trainer.pipeline.PipelineOptions;
import java.util.ArrayList;
import java.util.List;

/**
 * The driver's parameter server: the embedded one launched with the recipe's optimizer and schedule and the run's
 * dp x pp, or an external one ({@code --ps-host/--ps-conf}) connected to and checked to serve exactly this job.
 */
final class PsWiring {
    private PsWiring() {
    }

    static PsHandle open(RunSetup.Plan plan, TrainOptions opts, org.apache.hadoop.conf.Configuration hconf) {
        RunSetup.Connection c = plan.connection();
        if (c.external() != null) {
            ParameterServerClient.Context cctx = new ParameterServerClient.Context()
                    .jobName(c.job()).secret(c.secret()).aeronDirectoryName(c.aeronDir()).embeddedDriver(true).termLength(c.termLength())
                    .channel(c.channel()).streamId(c.streamId()).udpChannelParams(c.udpParams()).responseHost(c.host())
                    .requestTimeoutMs(opts.requestTimeoutMs()).idleStrategy("backoff");
            PsHandle.Remote remote = PsHandle.Remote.connect(cctx, c.external().endpoint(), c.job(), opts.psConnectTimeoutMs(), hconf);
            try {
                checkExternalServer(remote, plan, opts);
            } catch (RuntimeException e) {
                remote.close();
                throw e;
            }
            return remote;
        }
        TrainSettings s = plan.settings();
        PipelineOptions pipeline = plan.pipeline();
        ParameterServer.Context pctx = new ParameterServer.Context()
                .jobName(c.job()).secret(c.secret()).aeronDirectoryName(c.aeronDir()).embeddedDriver(true).termLength(c.termLength())
                .channel(c.channel()).streamId(c.streamId()).udpChannelParams(c.udpParams())
                .workers(plan.tasks()).pipeline(pipeline.stages(), s.batchSize() / plan.dp() / pipeline.microBatches(), s.seqLen(),
                        pipeline.schedule(), pipeline.microBatches()).sync(opts.sync()).initialState(plan.state())
                .adamW(s.adamW()).schedule(plan.schedule()).seed(s.seed())
                .snapshotUri(opts.out()).snapshotOnClose(false).hadoopConf(hconf).idleStrategy("backoff").alsoIpc(embeddedAlsoIpc())
                .growTimeoutMs(opts.requestTimeoutMs()).sendTimeoutMs(10_000);
        return new PsHandle.Embedded(ParameterServer.launch(pctx));
    }

    /**
     * Whether the embedded server also listens on IPC for tasks in the driver's JVM: yes unless the driver runs with
     * -Dcatena.ps.also.ipc=false (then local-mode tasks go over UDP loopback too, as executors on other hosts do).
     */
    static boolean embeddedAlsoIpc() {
        return Boolean.parseBoolean(System.getProperty(io.catena.ps.Configuration.ALSO_IPC_PROP, "true"));
    }

    /**
     * An external server must serve exactly this job: the recipe's model (or the resumed checkpoint's), dp workers,
     * the same sync mode and frozen chains, at the step the job starts from. Names both sides of every mismatch.
     */
    private static void checkExternalServer(PsHandle.Remote remote, RunSetup.Plan plan, TrainOptions opts) {
        TrainingState state = plan.state();
        SyncPolicy sync = opts.sync();
        int dp = plan.dp();
        ServerLayout l = remote.layout();
        long version = remote.version();
        String jobSide = opts.resume() ? "the checkpoint under --out " + opts.out() : "the recipe " + opts.recipe() + " on this data";
        List<String> bad = new ArrayList<>();
        if (!l.config().equals(state.config())) {
            bad.add("model: the server serves " + l.config().toMap() + ", " + jobSide + " describes " + state.config().toMap());
        }
        if (l.workers() != dp) {
            bad.add("workers: the server expects catena.ps.workers=" + l.workers() + ", the job runs --dp " + dp);
        }
        if (l.pipelineStages() != 1) {
            bad.add("pipeline: the server plans catena.ps.pipeline.stages=" + l.pipelineStages() + " (staged pushes), this job "
                    + "runs without --pp (pipeline jobs use the embedded server); set catena.ps.pipeline.stages=1");
        }
        if (!l.sync().toString().equals(sync.toString())) {
            bad.add("sync: the server runs catena.ps.sync=" + l.sync() + ", the job --sync " + sync);
        }
        if (l.frozenChains() != state.frozenChains()) {
            bad.add("frozen chains: the server has " + l.frozenChains() + ", " + jobSide + " has " + state.frozenChains());
        }
        if (version != state.step()) {
            bad.add("step: the server is at version " + version + ", the job starts at step " + state.step() + (opts.resume() ? ""
                    : " (a fresh job needs a fresh server; to continue its run, pass --resume with --out naming the checkpoint root "
                    + "the server was --restore'd from)"));
        }
        if (!bad.isEmpty()) {
            throw new IllegalArgumentException("the " + remote.describe() + " (job '" + plan.connection().job() + "', epoch " + l.epoch()
                    + ") does not serve this job: " + String.join("; ", bad) + ". Start the server with the job's recipe "
                    + "(catena.ps.recipe, catena.ps.seed = the recipe's seed), catena.ps.workers = --dp and catena.ps.sync = --sync"
                    + (opts.resume() ? ", restored from the checkpoint (catena ps --conf F --restore " + opts.out() + ")" : "")
                    + ", or drop --ps-host/--ps-conf to embed one");
        }
    }
}
