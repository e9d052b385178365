package io.catena.trainer;

import io.catena.model.optim.LrSchedule;
import io.catena.model.train.MetricsLog;
import io.catena.model.train.Progress;
import io.catena.model.train.TrainSettings;
import io.catena.trainer.pipeline.PipelineOptions;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The driver's view of a running job, built from the workers' telemetry reports: the train loss of each step (the
 * mean over the dp ranks), evaluations, progress lines on the console and records in metrics.jsonl, and the growth
 * gates (which ranks finished a growth step). Thread-safe: the monitor thread feeds it while the driver thread reads.
 */
final class DriverProgress {
    private static final Logger LOG = LoggerFactory.getLogger(DriverProgress.class);

    private final PrintStream out;
    private final Path metricsFile;
    private final TrainSettings settings;
    private final LrSchedule schedule;
    private final int dp;
    private final PipelineOptions pipeline;
    private final long startStep;
    private final long until;

    private final SortedMap<Long, double[]> trainLoss = new TreeMap<>();
    private final SortedMap<Long, double[]> evals = new TreeMap<>();
    /** Per step: each rank's losses until all dp ranks reported. */
    private final Map<Long, double[][]> pending = new HashMap<>();
    /** Per step: compute and sync seconds summed over the ranks that reported. */
    private final Map<Long, double[]> pendingSync = new HashMap<>();
    /** Ranks of the current stage run waiting at a growth step (they finished that step's eval/checkpoint). */
    private final Map<Long, Set<Integer>> gates = new HashMap<>();
    private int currentAttempt;
    private List<Integer> chainsNow = List.of();
    private long runStartNanos;
    private long windowStartNanos;
    private long windowSteps;
    /** The parameter server's metrics (its recent updates' lr and gradient norm, bytes moved); empty when it cannot tell. */
    private final Supplier<Map<String, Object>> serverMetrics;
    private double peakRssMb = -1;
    private long psBytesBefore = -1;
    private long psBytesAtNanos;
    /** The last logged values, for the Spark metrics source (a {@link CatenaMetricsSource} reads them). */
    private volatile Latest latest = Latest.NONE;

    /** What the driver logged last: step, throughput, per-scale losses, lr, gradient norm, sync share, PS traffic, memory. */
    record Latest(long step, double tokensPerSecond, double[] loss, double[] valLoss, double lr, double gradNorm,
                  double syncFraction, double psBytesPerSecond, double peakRssMb, int chains) {
        static final Latest NONE = new Latest(0, 0, new double[0], new double[0], Double.NaN, Double.NaN, Double.NaN, Double.NaN,
                -1, 0);
    }

    DriverProgress(PrintStream out, Path metricsFile, TrainSettings settings, LrSchedule schedule, int dp, PipelineOptions pipeline,
                   long startStep, long until, Supplier<Map<String, Object>> serverMetrics) {
        this.out = out;
        this.serverMetrics = serverMetrics;
        this.metricsFile = metricsFile;
        this.settings = settings;
        this.schedule = schedule;
        this.dp = dp;
        this.pipeline = pipeline;
        this.startStep = startStep;
        this.until = until;
        this.runStartNanos = System.nanoTime();
        this.windowStartNanos = runStartNanos;
    }

    /** A new stage run starts: reports of earlier runs' tasks no longer count for gates, and the throughput window restarts. */
    synchronized void startAttempt(int attempt) {
        currentAttempt = attempt;
        gates.clear();
        windowStartNanos = System.nanoTime();
        windowSteps = 0;
    }

    /** The last step any rank reported (0 before the first report). */
    synchronized long lastReportedStep() {
        long last = trainLoss.isEmpty() ? 0 : trainLoss.lastKey();
        for (long step : pending.keySet()) {
            last = Math.max(last, step);
        }
        return last;
    }

    /**
     * The server came back at {@code version} (restored from a snapshot): the steps after it are trained again, so
     * what was recorded of them is dropped and their new reports count (metrics.jsonl keeps both, with a
     * server_restored record between them).
     */
    synchronized void rewind(long version) {
        trainLoss.tailMap(version + 1).clear();
        evals.tailMap(version + 1).clear();
        pending.keySet().removeIf(step -> step > version);
        pendingSync.keySet().removeIf(step -> step > version);
        gates.keySet().removeIf(step -> step > version);
    }

    synchronized void chains(List<Integer> chains) {
        chainsNow = chains;
    }

    Latest latest() {
        return latest;
    }

    synchronized int gateCount(long step) {
        Set<Integer> s = gates.get(step);
        return s == null ? 0 : s.size();
    }

    synchronized SortedMap<Long, double[]> trainLoss() {
        return new TreeMap<>(trainLoss);
    }

    synchronized SortedMap<Long, double[]> evals() {
        return new TreeMap<>(evals);
    }

    /** Polls the telemetry until it has been quiet for 300 ms (at most 10 s): the last reports of a finished stage. */
    void drain(Telemetry.Receiver telemetry) {
        long quietSince = System.nanoTime();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (System.nanoTime() - quietSince < TimeUnit.MILLISECONDS.toNanos(300) && System.nanoTime() < deadline) {
            if (telemetry.poll(this::onReport) > 0) {
                quietSince = System.nanoTime();
            } else {
                Telemetry.sleep(5);
            }
        }
    }

    /**
     * Steps up to the server's version were applied, so a rerun will not recompute them; a rank that died
     * after pushing one never reported its loss. Record the mean over the ranks that did report.
     */
    synchronized void settleLostReports(long appliedUpTo) {
        var it = pending.entrySet().iterator();
        while (it.hasNext()) {
            var e = it.next();
            if (e.getKey() > appliedUpTo) {
                continue;
            }
            double[] mean = null;
            int n = 0;
            for (double[] x : e.getValue()) {
                if (x != null && (mean == null || x.length == mean.length)) {
                    if (mean == null) {
                        mean = new double[x.length];
                    }
                    for (int i = 0; i < x.length; i++) {
                        mean[i] += x[i];
                    }
                    n++;
                }
            }
            if (mean != null) {
                for (int i = 0; i < mean.length; i++) {
                    mean[i] /= n;
                }
                trainLoss.putIfAbsent(e.getKey(), mean);
                LOG.info("step {}: loss from {} of {} ranks (the others died after pushing it)", e.getKey(), n, dp);
            }
            pendingSync.remove(e.getKey());
            it.remove();
        }
    }

    /** One telemetry report of a worker ({@link WorkerTask}'s kinds: stage, engine, train, eval, gate, checkpoint). */
    @SuppressWarnings("unchecked")
    synchronized void onReport(Map<String, Object> m) {
        String kind = String.valueOf(m.get("kind"));
        Object attempt = m.get("attempt");
        boolean current = attempt instanceof Number n && n.intValue() == currentAttempt;
        if (!current && (kind.equals("gate") || kind.equals("stage") || kind.equals("engine"))) {
            return; // a task of an earlier stage run that has not stopped yet: it says nothing about the current one
        }
        // train/eval/checkpoint reports of an earlier run are kept: they describe computations the server
        // accepted (a step pushed by a task that died afterwards is not recomputed by its successor)
        switch (kind) {
            case "stage" -> out.println("stage run " + (currentAttempt + 1) + ": " + m.get("endpoints"));
            case "engine" -> { // each rank's native path (NativeSetup), once per stage run
                Map<String, Object> r = new LinkedHashMap<>(m);
                r.remove("job");
                r.put("step", startStep);
                metric(r);
            }
            case "train" -> onTrain(m);
            case "eval" -> eval(((Number) m.get("step")).longValue(), doubles((List<Number>) m.get("val_loss")));
            case "gate" -> gates.computeIfAbsent(((Number) m.get("step")).longValue(), k -> new HashSet<>())
                    .add(((Number) m.get("rank")).intValue());
            case "checkpoint" -> {
                out.println("checkpoint " + m.get("dir") + " (step " + m.get("step") + ")");
                Map<String, Object> r = new LinkedHashMap<>();
                r.put("kind", "checkpoint");
                r.put("step", m.get("step"));
                r.put("dir", m.get("dir"));
                metric(r);
            }
            default -> LOG.warn("unknown telemetry report kind {}", kind);
        }
    }

    /** A rank's train report; once every rank reported the step, its mean loss is recorded (and logged at log steps). */
    @SuppressWarnings("unchecked")
    private void onTrain(Map<String, Object> m) {
        long step = ((Number) m.get("step")).longValue();
        int rank = ((Number) m.get("rank")).intValue();
        double[] loss = doubles((List<Number>) m.get("loss"));
        double[][] per = pending.computeIfAbsent(step, k -> new double[dp][]);
        per[rank] = loss;
        double[] sync = pendingSync.computeIfAbsent(step, k -> new double[2]);
        sync[0] += ((Number) m.get("compute_s")).doubleValue();
        sync[1] += ((Number) m.get("sync_s")).doubleValue();
        if (m.get("rss_mb") instanceof Number rss) {
            peakRssMb = Math.max(peakRssMb, rss.doubleValue());
        }
        for (double[] x : per) {
            if (x == null) {
                return;
            }
        }
        pending.remove(step);
        pendingSync.remove(step);
        double[] mean = new double[loss.length];
        for (double[] x : per) {
            if (x.length != mean.length) {
                return; // reports from both sides of a growth: drop the step
            }
            for (int i = 0; i < mean.length; i++) {
                mean[i] += x[i] / dp;
            }
        }
        trainLoss.put(step, mean);
        windowSteps++;
        if (step % settings.logEvery() == 0 || step == until) {
            logStep(step, mean, sync[1] / Math.max(1e-12, sync[0] + sync[1]), m.get("epoch"));
        }
    }

    private void logStep(long step, double[] mean, double syncFraction, Object epoch) {
        double secs = (System.nanoTime() - windowStartNanos) / 1e9;
        double tps = windowSteps * (double) settings.batchSize() * settings.seqLen() / Math.max(secs, 1e-9);
        double elapsed = (System.nanoTime() - runStartNanos) / 1e9;
        double eta = (until - step) * elapsed / Math.max(1, step - startStep);
        Map<String, Object> server = serverFacts();
        double[] update = updateOf(server, step); // {lr, grad_norm} as the server applied step, or null
        double lr = update != null ? update[0] : schedule.at(step);
        double psBytesPerSecond = psBytesPerSecond(server);
        out.println(Progress.line(step, until, tps, mean, lr,
                String.format(Locale.ROOT, "sync %.0f%% | dp %d%s", 100 * syncFraction, dp,
                        pipeline.enabled() ? " x pp " + pipeline.stages() : ""), eta));
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("kind", "train");
        r.put("step", step);
        r.put("loss", mean);
        r.put("lr", lr);
        if (update != null) {
            r.put("grad_norm", update[1]);
        }
        r.put("tok_per_s", tps);
        r.put("elapsed_s", elapsed);
        if (peakRssMb > 0) {
            r.put("peak_rss_mb", peakRssMb);
        }
        r.put("sync_fraction", syncFraction);
        r.put("epoch", epoch);
        if (!Double.isNaN(psBytesPerSecond)) {
            r.put("ps_bytes_per_s", psBytesPerSecond);
        }
        metric(r);
        latest = new Latest(step, tps, mean, latest.valLoss(), lr, update != null ? update[1] : Double.NaN, syncFraction,
                psBytesPerSecond, peakRssMb, chainsNow.size());
        windowSteps = 0;
        windowStartNanos = System.nanoTime();
    }

    /** An evaluation at {@code step}: recorded, printed and logged. */
    synchronized void eval(long step, double[] ev) {
        evals.put(step, ev);
        Latest l = latest;
        latest = new Latest(l.step(), l.tokensPerSecond(), l.loss(), ev, l.lr(), l.gradNorm(), l.syncFraction(), l.psBytesPerSecond(),
                l.peakRssMb(), l.chains());
        double[] ppl = new double[ev.length];
        out.println(Progress.evalLine(step, ev, ppl));
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("kind", "eval");
        r.put("step", step);
        r.put("val_loss", ev);
        r.put("val_ppl", ppl);
        metric(r);
    }

    /** One metrics.jsonl record: kind, step, tokens at that step and the model's chains first, then the fields. */
    synchronized void metric(Map<String, Object> fields) {
        if (metricsFile == null) {
            return;
        }
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("kind", fields.get("kind"));
        m.put("step", fields.get("step"));
        Object step = fields.get("step");
        if (step instanceof Number n) {
            m.put("tokens", n.longValue() * settings.batchSize() * (long) settings.seqLen());
        }
        m.put("chains", chainsNow);
        m.putAll(fields);
        MetricsLog.append(metricsFile, m);
    }

    private Map<String, Object> serverFacts() {
        try {
            Map<String, Object> m = serverMetrics.get();
            return m == null ? Map.of() : m;
        } catch (RuntimeException e) {
            LOG.warn("the parameter server's metrics are unavailable: {}", e.toString());
            return Map.of();
        }
    }

    /** The server's {lr, grad_norm} of {@code step} from its recent updates ([step, lr, grad_norm] each), or null. */
    static double[] updateOf(Map<String, Object> server, long step) {
        if (!(server.get("updates") instanceof List<?> updates)) {
            return null;
        }
        for (int i = updates.size() - 1; i >= 0; i--) {
            double[] u = asDoubles(updates.get(i));
            if (u != null && u.length == 3 && (long) u[0] == step) {
                return new double[] {u[1], u[2]};
            }
        }
        return null;
    }

    private static double[] asDoubles(Object o) {
        if (o instanceof double[] d) {
            return d;
        }
        if (o instanceof List<?> l) {
            double[] d = new double[l.size()];
            for (int i = 0; i < d.length; i++) {
                if (!(l.get(i) instanceof Number n)) {
                    return null;
                }
                d[i] = n.doubleValue();
            }
            return d;
        }
        return null;
    }

    /** Bytes the server received and sent per second since the last log step; NaN the first time. */
    private double psBytesPerSecond(Map<String, Object> server) {
        if (!(server.get("bytes_in") instanceof Number in) || !(server.get("bytes_out") instanceof Number outBytes)) {
            return Double.NaN;
        }
        long bytes = in.longValue() + outBytes.longValue();
        long now = System.nanoTime();
        double rate = psBytesBefore < 0 ? Double.NaN : (bytes - psBytesBefore) / Math.max(1e-9, (now - psBytesAtNanos) / 1e9);
        psBytesBefore = bytes;
        psBytesAtNanos = now;
        return rate;
    }

    private static double[] doubles(List<Number> l) {
        double[] d = new double[l.size()];
        for (int i = 0; i < d.length; i++) {
            d[i] = l.get(i).doubleValue();
        }
        return d;
    }
}
