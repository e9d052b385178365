package io.catena.trainer.demo;

import java.awt.Color;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SortedMap;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.internal.chartpart.Chart;

/**
 * The demo report's PNG charts (headless AWT). Line charts are drawn by {@link LinePlot} (round ticks, faint raw traces
 * under smoothed ones, end-of-line labels that never overlap); the bar chart by XChart. Each method draws one chart
 * from measured series.
 */
final class Charts {
    static final int WIDTH = 900;
    static final int HEIGHT = 500;
    private static final Color GRAY = new Color(0x555555);
    private static final float RAW_ALPHA = 0.3f;
    private static final Color[] SCALE_COLORS = {new Color(0x1f77b4), new Color(0xff7f0e), new Color(0x2ca02c),
            new Color(0xd62728), new Color(0x9467bd), new Color(0x8c564b)};

    private Charts() {
    }

    /**
     * Train loss of every scale k vs tokens seen: each step's loss faint, its moving mean over {@code smooth} steps bold,
     * validation loss per scale as diamonds, a dashed line where the model grew, and each scale's last train and
     * validation value written at the right edge (pushed apart so they never overlap). trainLoss maps step -> loss per
     * scale (longer after growth).
     */
    static void lossPerScale(Path png, SortedMap<Long, double[]> trainLoss, SortedMap<Long, double[]> evals, long tokensPerStep,
                             long growthStep, int smooth) throws IOException {
        LinePlot p = new LinePlot("Loss per scale k (chains used) vs tokens", "tokens seen (thousands)",
                "cross-entropy (nats/token)");
        int maxScales = trainLoss.values().stream().mapToInt(l -> l.length).max().orElse(0);
        p.add(legendOnly("train, each step", GRAY, 1f, RAW_ALPHA, true, LinePlot.Marker.NONE));
        p.add(legendOnly("train, mean of " + smooth + " steps", GRAY, 2f, 1f, true, LinePlot.Marker.NONE));
        if (!evals.isEmpty()) {
            p.add(legendOnly("validation", GRAY, 1f, 1f, false, LinePlot.Marker.DIAMOND));
        }
        for (int k = 1; k <= maxScales; k++) {
            Color color = scaleColor(k);
            List<Double> xs = new ArrayList<>();
            List<Double> raw = new ArrayList<>();
            for (var e : trainLoss.entrySet()) {
                if (e.getValue().length >= k) {
                    xs.add(e.getKey() * tokensPerStep / 1e3);
                    raw.add(e.getValue()[k - 1]);
                }
            }
            if (xs.isEmpty()) {
                continue;
            }
            double[] x = toArray(xs);
            double[] y = toArray(raw);
            p.add(new LinePlot.Series("k=" + k + " raw", x, y, color, 1f, RAW_ALPHA, true, LinePlot.Marker.NONE, false, null, false));
            p.add(new LinePlot.Series("k=" + k + " train", x, trailingMean(y, smooth), color, 2f, 1f, true, LinePlot.Marker.NONE,
                    false, "k=" + k + " train", false));
            List<Double> ex = new ArrayList<>();
            List<Double> ey = new ArrayList<>();
            for (var e : evals.entrySet()) {
                if (e.getValue().length >= k) {
                    ex.add(e.getKey() * tokensPerStep / 1e3);
                    ey.add(e.getValue()[k - 1]);
                }
            }
            if (!ex.isEmpty()) {
                p.add(new LinePlot.Series("k=" + k + " val", toArray(ex), toArray(ey), color, 1f, 1f, false, LinePlot.Marker.DIAMOND,
                        false, "k=" + k + " val", false));
            }
        }
        if (growthStep > 0 && maxScales > 0) {
            p.event(new LinePlot.Event(growthStep * tokensPerStep / 1e3, "growth to " + maxScales + " chains (step " + growthStep + ")",
                    Color.GRAY));
        }
        if (maxScales == 0) {
            p.note("no train records");
        }
        p.endLabelFormat(v -> String.format(Locale.ROOT, "%.3f", v)).save(png, WIDTH, HEIGHT);
    }

    /** Validation perplexity per number of chains k, after training and (for the old scales) just before growth. */
    static void perplexityPerChains(Path png, double[] finalLoss, double[] beforeGrowthLoss) throws IOException {
        CategoryChart c = new CategoryChartBuilder().width(WIDTH).height(HEIGHT)
                .title("Validation perplexity vs number of chains k (each k runs only chains 1..k)")
                .xAxisTitle("chains k").yAxisTitle("perplexity").build();
        List<String> ks = new ArrayList<>();
        List<Double> fin = new ArrayList<>();
        List<Double> before = new ArrayList<>();
        for (int k = 1; k <= finalLoss.length; k++) {
            ks.add("k=" + k);
            fin.add(Math.exp(finalLoss[k - 1]));
            before.add(beforeGrowthLoss != null && k <= beforeGrowthLoss.length ? Math.exp(beforeGrowthLoss[k - 1]) : null); // no bar: k did not exist
        }
        if (beforeGrowthLoss != null) {
            c.addSeries("before growth", ks, before).setFillColor(Color.LIGHT_GRAY);
        }
        c.addSeries("final", ks, fin).setFillColor(SCALE_COLORS[0]);
        double top = fin.stream().mapToDouble(Double::doubleValue).max().orElse(1);
        for (Double b : before) {
            top = b == null ? top : Math.max(top, b);
        }
        double[] ticks = LinePlot.niceTicks(0, top * 1.05, 9); // a round top, a little above the tallest bar
        c.getStyler().setYAxisMin(0.0).setYAxisMax(ticks[ticks.length - 1]);
        c.getStyler().setYAxisDecimalPattern("#,##0");
        c.getStyler().setLabelsVisible(true);
        c.getStyler().setDecimalPattern("#0.0");
        save(c, png);
    }

    /** Training throughput (tokens/s of the whole job, per logging window) vs step, with the growth step marked. */
    static void throughput(Path png, SortedMap<Long, Double> tokensPerSecond, long growthStep) throws IOException {
        stepChart(png, new StepChart("Training throughput (dp workers + parameter server)", "tokens/s", "tok/s", 1, "", true),
                tokensPerSecond, growthEvents(growthStep));
    }

    /** How one metrics key is drawn against the step: titles, a scale factor (1, or 100 for shares), smoothing. */
    record StepChart(String title, String yTitle, String name, double scale, String yUnit, boolean smoothed) {
    }

    /**
     * One metric against the step. Smoothed: every window's value faint and a centred moving median over about a
     * sixth of the windows (odd, 3 to 21) bold on top; otherwise one line with its points. The y axis starts at 0;
     * the last value is written at the right edge. Without values the chart says "not recorded".
     */
    static void stepChart(Path png, StepChart spec, SortedMap<Long, Double> values, List<LinePlot.Event> events) throws IOException {
        LinePlot p = new LinePlot(spec.title(), "step", spec.yTitle()).yUnit(spec.yUnit());
        double[] x = new double[values.size()];
        double[] y = new double[values.size()];
        int i = 0;
        for (var e : values.entrySet()) {
            x[i] = e.getKey();
            y[i++] = e.getValue() * spec.scale();
        }
        if (values.isEmpty()) {
            p.note("not recorded in this run's metrics.jsonl");
        } else if (spec.smoothed()) {
            int w = smoothingWindow(y.length);
            p.add(new LinePlot.Series(spec.name() + ", each logged step", x, y, SCALE_COLORS[0], 1f, RAW_ALPHA, true,
                    LinePlot.Marker.CIRCLE, false, null, true));
            p.add(new LinePlot.Series(w > 1 ? "moving median of " + w : spec.name(), x, LinePlot.movingMedian(y, w),
                    SCALE_COLORS[0], 2.2f, 1f, true, LinePlot.Marker.NONE, false, spec.name(), true));
        } else {
            p.add(new LinePlot.Series(spec.name(), x, y, SCALE_COLORS[0], 2f, 1f, true,
                    y.length <= 60 ? LinePlot.Marker.CIRCLE : LinePlot.Marker.NONE, false, spec.name(), true));
        }
        events.forEach(p::event);
        p.yRange(0.0, null).endLabelFormat(v -> LinePlot.formatValue(v) + spec.yUnit()).save(png, WIDTH, HEIGHT);
    }

    /** Odd, at least 3 (when there are 3 points), about a sixth of the points, at most 21. */
    static int smoothingWindow(int points) {
        if (points < 3) {
            return 1;
        }
        int w = Math.min(21, Math.max(3, (int) Math.round(points / 6.0)));
        return w % 2 == 0 ? w + 1 : w;
    }

    static List<LinePlot.Event> growthEvents(long growthStep) {
        return growthStep > 0 ? List.of(new LinePlot.Event(growthStep, "growth (step " + growthStep + ")", Color.GRAY)) : List.of();
    }

    /** Moving mean over the last {@code n} values (fewer at the start). */
    static double[] trailingMean(double[] y, int n) {
        double[] out = new double[y.length];
        double sum = 0;
        for (int i = 0; i < y.length; i++) {
            sum += y[i];
            if (i >= n) {
                sum -= y[i - n];
            }
            out[i] = sum / Math.min(i + 1, n);
        }
        return out;
    }

    private static LinePlot.Series legendOnly(String name, Color c, float width, float alpha, boolean line, LinePlot.Marker m) {
        return new LinePlot.Series(name, new double[0], new double[0], c, width, alpha, line, m, false, null, true);
    }

    private static Color scaleColor(int k) {
        return SCALE_COLORS[(k - 1) % SCALE_COLORS.length];
    }

    private static double[] toArray(List<Double> l) {
        return l.stream().mapToDouble(Double::doubleValue).toArray();
    }

    /** Writes next to the target and renames, so a reader never sees half a PNG. */
    private static void save(Chart<?, ?> chart, Path png) throws IOException {
        Path tmp = png.resolveSibling(png.getFileName() + ".tmp");
        try (var out = Files.newOutputStream(tmp)) {
            BitmapEncoder.saveBitmap(chart, out, BitmapEncoder.BitmapFormat.PNG);
        }
        Files.move(tmp, png, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }
}
