package io.catena.trainer.demo;

import java.awt.BasicStroke;
import java.awt.Color;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.SortedMap;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.internal.chartpart.Chart;
import org.knowm.xchart.style.markers.SeriesMarkers;

/** The demo report's PNG charts (XChart, headless AWT). Each method draws one chart from measured series. */
final class Charts {
    static final int WIDTH = 900;
    static final int HEIGHT = 500;
    private static final Color[] SCALE_COLORS = {new Color(0x1f77b4), new Color(0xff7f0e), new Color(0x2ca02c),
            new Color(0xd62728), new Color(0x9467bd), new Color(0x8c564b)};

    private Charts() {
    }

    /**
     * Train loss of every scale k vs tokens seen (moving mean over {@code smooth} steps), validation loss per scale as
     * markers, and a vertical line where the model grew. trainLoss maps step -> loss per scale (longer after growth).
     */
    static void lossPerScale(Path png, SortedMap<Long, double[]> trainLoss, SortedMap<Long, double[]> evals, long tokensPerStep,
                             long growthStep, int smooth) throws IOException {
        XYChart c = new XYChartBuilder().width(WIDTH).height(HEIGHT).title("Loss per scale k (chains used) vs tokens")
                .xAxisTitle("tokens seen (thousands)").yAxisTitle("cross-entropy (nats/token)").build();
        c.getStyler().setXAxisDecimalPattern("#,##0");
        int maxScales = trainLoss.values().stream().mapToInt(l -> l.length).max().orElse(0);
        double yMin = Double.MAX_VALUE;
        double yMax = -Double.MAX_VALUE;
        for (int k = 1; k <= maxScales; k++) {
            List<Double> xs = new ArrayList<>();
            List<Double> ys = new ArrayList<>();
            double[] window = new double[smooth];
            int filled = 0;
            for (var e : trainLoss.entrySet()) {
                if (e.getValue().length < k) {
                    continue;
                }
                window[filled % smooth] = e.getValue()[k - 1];
                filled++;
                double sum = 0;
                int n = Math.min(filled, smooth);
                for (int i = 0; i < n; i++) {
                    sum += window[i];
                }
                xs.add(e.getKey() * tokensPerStep / 1e3);
                ys.add(sum / n);
            }
            if (xs.isEmpty()) {
                continue;
            }
            for (double y : ys) {
                yMin = Math.min(yMin, y);
                yMax = Math.max(yMax, y);
            }
            XYSeries s = c.addSeries("train k=" + k, xs, ys);
            s.setMarker(SeriesMarkers.NONE).setLineColor(SCALE_COLORS[(k - 1) % SCALE_COLORS.length]);
            List<Double> ex = new ArrayList<>();
            List<Double> ey = new ArrayList<>();
            for (var e : evals.entrySet()) {
                if (e.getValue().length >= k) {
                    ex.add(e.getKey() * tokensPerStep / 1e3);
                    ey.add(e.getValue()[k - 1]);
                    yMin = Math.min(yMin, e.getValue()[k - 1]);
                    yMax = Math.max(yMax, e.getValue()[k - 1]);
                }
            }
            if (!ex.isEmpty()) {
                XYSeries v = c.addSeries("val k=" + k, ex, ey);
                v.setXYSeriesRenderStyle(XYSeries.XYSeriesRenderStyle.Scatter);
                v.setMarker(SeriesMarkers.DIAMOND).setMarkerColor(SCALE_COLORS[(k - 1) % SCALE_COLORS.length]);
            }
        }
        if (growthStep > 0 && maxScales > 0) {
            double gx = growthStep * tokensPerStep / 1e3;
            XYSeries g = c.addSeries("growth to " + maxScales + " chains (step " + growthStep + ")", List.of(gx, gx),
                    List.of(yMin, yMax));
            g.setMarker(SeriesMarkers.NONE).setLineColor(Color.GRAY)
                    .setLineStyle(new BasicStroke(2f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f, new float[]{6f, 6f}, 0f));
        }
        save(c, png);
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
        c.getStyler().setLabelsVisible(true);
        c.getStyler().setDecimalPattern("#0.0");
        save(c, png);
    }

    /** Training throughput (tokens/s of the whole job, per logging window) vs step, with the growth step marked. */
    static void throughput(Path png, SortedMap<Long, Double> tokensPerSecond, long growthStep) throws IOException {
        XYChart c = new XYChartBuilder().width(WIDTH).height(HEIGHT).title("Training throughput (dp workers + parameter server)")
                .xAxisTitle("step").yAxisTitle("tokens/s").build();
        List<Double> xs = new ArrayList<>();
        List<Double> ys = new ArrayList<>();
        tokensPerSecond.forEach((step, tps) -> {
            xs.add(step.doubleValue());
            ys.add(tps);
        });
        if (xs.isEmpty()) {
            xs.add(0.0);
            ys.add(0.0);
        }
        c.addSeries("tokens/s", xs, ys).setMarker(SeriesMarkers.CIRCLE).setLineColor(SCALE_COLORS[0]);
        if (growthStep > 0) {
            double top = ys.stream().mapToDouble(Double::doubleValue).max().orElse(1);
            c.addSeries("growth (step " + growthStep + ")", List.of((double) growthStep, (double) growthStep), List.of(0.0, top))
                    .setMarker(SeriesMarkers.NONE).setLineColor(Color.GRAY);
        }
        save(c, png);
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
