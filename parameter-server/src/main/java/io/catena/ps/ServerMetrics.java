package io.catena.ps;

import io.catena.ps.protocol.RejectReason;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Counters of a running server: versions published (and versions/s over the last 64), bytes in/out,
 * push-to-publish latency (p50/p99 over the last 4096 applied pushes), per-worker staleness,
 * rejections by reason, and with pipeline stages the payload bytes pushed and pulled per stage. Written by the server's agent, readable from any thread.
 */
public final class ServerMetrics {
    private static final int WINDOW = 64;
    private static final int LATENCIES = 4096;

    final AtomicLong versions = new AtomicLong();
    final AtomicLong bytesIn = new AtomicLong();
    final AtomicLong bytesOut = new AtomicLong();
    final AtomicLong messagesIn = new AtomicLong();
    final AtomicLong pushesAccepted = new AtomicLong();
    final AtomicLong duplicates = new AtomicLong();
    final AtomicLong pulls = new AtomicLong();
    final AtomicLong sendTimeouts = new AtomicLong();
    final AtomicLong snapshots = new AtomicLong();
    final AtomicLong snapshotsSkipped = new AtomicLong();
    final AtomicLong snapshotFailures = new AtomicLong();
    final AtomicLong discardedOnGrowth = new AtomicLong();
    final AtomicReference<String> lastSnapshot = new AtomicReference<>();
    private final EnumMap<RejectReason, AtomicLong> rejections = new EnumMap<>(RejectReason.class);
    private final long[] publishTimes = new long[WINDOW];
    private long publishCount;
    private final long[] latencies = new long[LATENCIES];
    private long latencyCount;
    private long[] stalenessMax = new long[0];
    private long[] stalenessSum = new long[0];
    private long[] stalenessCount = new long[0];
    private final AtomicLongArray stagePushed;
    private final AtomicLongArray stagePulled;

    ServerMetrics(int pipelineStages) {
        for (RejectReason r : RejectReason.values()) {
            rejections.put(r, new AtomicLong());
        }
        stagePushed = new AtomicLongArray(pipelineStages);
        stagePulled = new AtomicLongArray(pipelineStages);
    }

    void stagePushed(int stage, long bytes) {
        stagePushed.addAndGet(stage, bytes);
    }

    void stagePulled(int stage, long bytes) {
        stagePulled.addAndGet(stage, bytes);
    }

    void reject(RejectReason r) {
        rejections.get(r).incrementAndGet();
    }

    synchronized void published(long nowNs) {
        versions.incrementAndGet();
        publishTimes[(int) (publishCount++ % WINDOW)] = nowNs;
    }

    synchronized void latency(long ns) {
        latencies[(int) (latencyCount++ % LATENCIES)] = ns;
    }

    synchronized void staleness(int worker, long s) {
        if (worker >= stalenessMax.length) {
            stalenessMax = Arrays.copyOf(stalenessMax, worker + 1);
            stalenessSum = Arrays.copyOf(stalenessSum, worker + 1);
            stalenessCount = Arrays.copyOf(stalenessCount, worker + 1);
        }
        stalenessMax[worker] = Math.max(stalenessMax[worker], s);
        stalenessSum[worker] += s;
        stalenessCount[worker]++;
    }

    public long versionsPublished() {
        return versions.get();
    }

    public long rejections(RejectReason r) {
        return rejections.get(r).get();
    }

    public long totalRejections() {
        return rejections.values().stream().mapToLong(AtomicLong::get).sum();
    }

    public long bytesIn() {
        return bytesIn.get();
    }

    public long bytesOut() {
        return bytesOut.get();
    }

    public long duplicates() {
        return duplicates.get();
    }

    public long pushesAccepted() {
        return pushesAccepted.get();
    }

    /** Gradient payload bytes workers of a pipeline stage pushed (counted only with more than one stage). */
    public long stageBytesPushed(int stage) {
        return stagePushed.get(stage);
    }

    /** Parameter payload bytes of a pipeline stage's chunks sent to pulls (counted only with more than one stage). */
    public long stageBytesPulled(int stage) {
        return stagePulled.get(stage);
    }

    public long snapshots() {
        return snapshots.get();
    }

    public String lastSnapshot() {
        return lastSnapshot.get();
    }

    /** Versions per second over the last (up to) 64 publications; 0 before two exist. */
    public synchronized double versionsPerSecond() {
        int n = (int) Math.min(publishCount, WINDOW);
        if (n < 2) {
            return 0;
        }
        long last = publishTimes[(int) ((publishCount - 1) % WINDOW)];
        long first = publishTimes[(int) ((publishCount - n) % WINDOW)];
        return last == first ? 0 : (n - 1) * 1e9 / (last - first);
    }

    /** Push-to-publish latency quantile in milliseconds (q in [0, 1]); NaN before any push was applied. */
    public synchronized double latencyMillis(double q) {
        int n = (int) Math.min(latencyCount, LATENCIES);
        if (n == 0) {
            return Double.NaN;
        }
        long[] s = Arrays.copyOf(latencies, n);
        Arrays.sort(s);
        return s[Math.min(n - 1, (int) Math.floor(q * n))] / 1e6;
    }

    /** Largest staleness (versions between the base of a push and the version it was applied to) seen for a worker. */
    public synchronized long maxStaleness(int worker) {
        return worker < stalenessMax.length ? stalenessMax[worker] : 0;
    }

    /** The learning rate and gradient norm of the last {@value #UPDATES} applied steps: where the update happens. */
    private static final int UPDATES = 256;
    private final long[] updateSteps = new long[UPDATES];
    private final double[] updateLr = new double[UPDATES];
    private final double[] updateNorm = new double[UPDATES];
    private long updateCount;

    synchronized void recordUpdate(ServerModel.Update u) {
        int i = (int) (updateCount++ % UPDATES);
        updateSteps[i] = u.step();
        updateLr[i] = u.lr();
        updateNorm[i] = u.gradNorm();
    }

    /** The recent applied steps as {@code [step, lr, grad_norm]}, oldest first. */
    private List<double[]> recentUpdates() {
        List<double[]> out = new ArrayList<>();
        for (long k = Math.max(0, updateCount - UPDATES); k < updateCount; k++) {
            int i = (int) (k % UPDATES);
            out.add(new double[] {updateSteps[i], updateLr[i], updateNorm[i]});
        }
        return out;
    }

    /** Everything as a JSON-friendly map. */
    public synchronized Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("versions", versions.get());
        m.put("versions_per_s", versionsPerSecond());
        m.put("bytes_in", bytesIn.get());
        m.put("bytes_out", bytesOut.get());
        m.put("messages_in", messagesIn.get());
        m.put("pushes_accepted", pushesAccepted.get());
        m.put("duplicates_dropped", duplicates.get());
        m.put("pulls", pulls.get());
        double p50 = latencyMillis(0.5), p99 = latencyMillis(0.99);
        m.put("push_to_publish_ms_p50", Double.isNaN(p50) ? null : p50);
        m.put("push_to_publish_ms_p99", Double.isNaN(p99) ? null : p99);
        Map<String, Object> st = new LinkedHashMap<>();
        for (int w = 0; w < stalenessMax.length; w++) {
            if (stalenessCount[w] > 0) {
                st.put(Integer.toString(w), Map.of("max", stalenessMax[w], "mean", (double) stalenessSum[w] / stalenessCount[w]));
            }
        }
        m.put("staleness", st);
        if (stagePushed.length() > 1) {
            Map<String, Object> sb = new LinkedHashMap<>();
            for (int s = 0; s < stagePushed.length(); s++) {
                sb.put(Integer.toString(s), Map.of("pushed", stagePushed.get(s), "pulled", stagePulled.get(s)));
            }
            m.put("stage_bytes", sb);
        }
        Map<String, Object> rj = new LinkedHashMap<>();
        rejections.forEach((k, v) -> rj.put(k.name().toLowerCase(), v.get()));
        m.put("rejections", rj);
        m.put("send_timeouts", sendTimeouts.get());
        m.put("snapshots", snapshots.get());
        m.put("snapshots_skipped", snapshotsSkipped.get());
        m.put("snapshot_failures", snapshotFailures.get());
        m.put("last_snapshot", lastSnapshot.get());
        m.put("pushes_discarded_on_growth", discardedOnGrowth.get());
        m.put("updates", recentUpdates());
        return m;
    }
}
