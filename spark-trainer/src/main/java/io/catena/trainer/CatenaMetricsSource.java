package io.catena.trainer;

import com.codahale.metrics.Gauge;
import com.codahale.metrics.MetricRegistry;
import java.util.function.ToDoubleFunction;
import org.apache.spark.SparkEnv;
import org.apache.spark.metrics.source.Source;

/**
 * A running job's progress in Spark's own metrics system (the driver's {@code catena} source): step, tokens/s, train and
 * validation loss per scale, lr and gradient norm (as the parameter server applied them), sync share, parameter-server
 * bytes/s and the executors' peak resident memory. Every sink Spark is configured with shows them: the Prometheus
 * servlet on the UI ({@code /metrics/prometheus}, on by default for {@code catena train}), JMX, CSV, Graphite, ...
 * Gauges read {@link DriverProgress}'s last logged values; a scale's gauges appear when the model has it.
 */
final class CatenaMetricsSource implements Source {
    static final String NAME = "catena";
    /** Scales get gauges up to this many chains (growth beyond it is still logged, just not exported per scale). */
    private static final int MAX_SCALES = 16;

    private final MetricRegistry registry = new MetricRegistry();

    CatenaMetricsSource(DriverProgress progress) {
        gauge("step", progress, l -> l.step());
        gauge("chains", progress, l -> l.chains());
        gauge("tokens_per_second", progress, DriverProgress.Latest::tokensPerSecond);
        gauge("lr", progress, DriverProgress.Latest::lr);
        gauge("grad_norm", progress, DriverProgress.Latest::gradNorm);
        gauge("sync_fraction", progress, DriverProgress.Latest::syncFraction);
        gauge("ps_bytes_per_second", progress, DriverProgress.Latest::psBytesPerSecond);
        gauge("executor_peak_rss_mb", progress, DriverProgress.Latest::peakRssMb);
        for (int k = 1; k <= MAX_SCALES; k++) {
            int scale = k;
            gauge("train_loss_k" + k, progress, l -> at(l.loss(), scale));
            gauge("val_loss_k" + k, progress, l -> at(l.valLoss(), scale));
        }
    }

    private static double at(double[] v, int scale) {
        return scale <= v.length ? v[scale - 1] : Double.NaN;
    }

    private void gauge(String name, DriverProgress progress, ToDoubleFunction<DriverProgress.Latest> value) {
        registry.register(name, (Gauge<Double>) () -> value.applyAsDouble(progress.latest()));
    }

    @Override
    public String sourceName() {
        return NAME;
    }

    @Override
    public MetricRegistry metricRegistry() {
        return registry;
    }

    /** Registers on this driver's metrics system; the returned handle removes it (a second run in one context re-registers). */
    static AutoCloseable register(DriverProgress progress) {
        SparkEnv env = SparkEnv.get();
        if (env == null) {
            return () -> { };
        }
        CatenaMetricsSource source = new CatenaMetricsSource(progress);
        env.metricsSystem().removeSource(source); // by name: a source left by an earlier run in this context
        env.metricsSystem().registerSource(source);
        return () -> env.metricsSystem().removeSource(source);
    }
}
