package io.catena.trainer.demo;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.SortedMap;
import java.util.TreeMap;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The report charts' tick values, label placement and smoothing, and the charts drawn from metrics.jsonl (fast). */
class ChartsTest {

    @Test
    void ticksAreRoundStepsOf1_2Or5TimesAPowerOfTen() {
        // the old chart's axis for steps 1..87 read 1, 30, 58, 87
        assertArrayEquals(new double[] {0, 10, 20, 30, 40, 50, 60, 70, 80, 90}, LinePlot.niceTicks(1, 87, 10), 1e-12);
        assertArrayEquals(new double[] {0, 0.2, 0.4, 0.6, 0.8, 1.0}, LinePlot.niceTicks(0, 1, 6), 0);
        assertArrayEquals(new double[] {2.5, 3, 3.5, 4, 4.5, 5, 5.5, 6, 6.5}, LinePlot.niceTicks(2.61, 6.43, 9), 1e-12);
        assertArrayEquals(new double[] {0, 5_000, 10_000, 15_000, 20_000}, LinePlot.niceTicks(0, 17_300, 5), 0);
        Random r = new Random(42);
        for (int i = 0; i < 2000; i++) {
            double scale = Math.pow(10, r.nextInt(14) - 7);
            double lo = (r.nextDouble() * 200 - 100) * scale;
            double hi = lo + r.nextDouble() * 300 * scale + 1e-3 * scale;
            int max = 3 + r.nextInt(10);
            double[] t = LinePlot.niceTicks(lo, hi, max);
            String what = "[" + lo + ", " + hi + "] max " + max + " -> " + java.util.Arrays.toString(t);
            assertTrue(t.length >= 2 && t.length <= max, "tick count: " + what);
            double step = t[1] - t[0];
            assertTrue(t[0] <= lo + step * 1e-6 && t[t.length - 1] >= hi - step * 1e-6, "ticks cover the range: " + what);
            double exp = Math.pow(10, Math.floor(Math.log10(step) + 1e-9));
            double mantissa = step / exp;
            assertTrue(Math.abs(mantissa - 1) < 1e-6 || Math.abs(mantissa - 2) < 1e-6 || Math.abs(mantissa - 5) < 1e-6,
                    "step " + step + " is 1, 2 or 5 x 10^k: " + what);
            for (int j = 0; j < t.length; j++) {
                assertEquals(Math.rint(t[j] / step), t[j] / step, 1e-6, "tick is a multiple of the step: " + what);
                if (j > 0) {
                    assertEquals(step, t[j] - t[j - 1], step * 1e-6, "evenly spaced: " + what);
                }
            }
            // the smallest such step: the next smaller nice step would need more than max ticks
            double smaller = mantissa < 1.5 ? step / 2 : mantissa < 3 ? step / 2 : step * 2 / 5;
            long n = (long) (Math.ceil(hi / smaller - 1e-9) - Math.floor(lo / smaller + 1e-9) + 1);
            assertTrue(n > max, "a smaller step " + smaller + " fits too (" + n + " ticks): " + what);
        }
        assertArrayEquals(new double[] {4.5, 5, 5.5}, LinePlot.niceTicks(5, 5, 5), 1e-12); // degenerate range widened
    }

    @Test
    void tickLabelsShowTheDigitsTheStepNeeds() {
        assertEquals("0.3", LinePlot.formatTick(3 * 0.1, 0.1));
        assertEquals("12,000", LinePlot.formatTick(12_000, 2_000));
        assertEquals("0", LinePlot.formatTick(-0.0, 0.5).replace(".0", ""));
        assertEquals("0.0025", LinePlot.formatTick(0.0025, 0.0005));
        assertEquals("2.41", LinePlot.formatValue(2.4127));
        assertEquals("0.00123", LinePlot.formatValue(0.0012345));
    }

    @Test
    void endLabelsArePushedApartAsLittleAsNeeded() {
        // apart already: unchanged
        assertArrayEquals(new double[] {100, 50, 200}, LinePlot.spreadLabels(new double[] {100, 50, 200}, 12, 0, 400), 0);
        // two on top of each other: split symmetrically around where they wanted to be
        assertArrayEquals(new double[] {94, 106}, LinePlot.spreadLabels(new double[] {100, 100}, 12, 0, 400), 1e-9);
        // a block at the bottom edge stays inside
        double[] edge = LinePlot.spreadLabels(new double[] {398, 399, 400}, 12, 0, 400);
        assertArrayEquals(new double[] {376, 388, 400}, edge, 1e-9);
        // a chain reaction: merging one pair pushes into the next label, which joins the block
        double[] chain = LinePlot.spreadLabels(new double[] {100, 105, 112, 300}, 12, 0, 400);
        assertEquals(300, chain[3], 0);
        assertEquals(12, chain[1] - chain[0], 1e-9);
        assertEquals(12, chain[2] - chain[1], 1e-9);
        assertEquals((100 + 105 + 112) / 3.0, (chain[0] + chain[1] + chain[2]) / 3, 1e-9, "the block is centred on its labels");

        Random r = new Random(7);
        for (int i = 0; i < 500; i++) {
            int n = 1 + r.nextInt(12);
            double[] wanted = new double[n];
            for (int j = 0; j < n; j++) {
                wanted[j] = r.nextDouble() * 300;
            }
            double[] at = LinePlot.spreadLabels(wanted, 14, 10, 310);
            Integer[] order = new Integer[n];
            for (int j = 0; j < n; j++) {
                order[j] = j;
            }
            java.util.Arrays.sort(order, (a, b) -> Double.compare(wanted[a], wanted[b]));
            for (int j = 0; j < n; j++) {
                assertTrue(at[order[j]] >= 10 - 1e-9 && at[order[j]] <= 310 + 1e-9, "inside the plot");
                if (j > 0) {
                    assertTrue(at[order[j]] - at[order[j - 1]] >= 14 - 1e-9, "no overlap, order kept: "
                            + java.util.Arrays.toString(wanted) + " -> " + java.util.Arrays.toString(at));
                }
            }
        }
        // more labels than fit: squeezed evenly over the range, not pushed outside
        double[] many = LinePlot.spreadLabels(new double[] {50, 50, 50, 50, 50}, 30, 0, 80);
        assertArrayEquals(new double[] {0, 20, 40, 60, 80}, many, 1e-9);
    }

    @Test
    void movingMedianIgnoresASingleOutlier() {
        double[] y = {100, 10_000, 11_000, 300, 10_500, 10_800, 11_200};
        double[] m = LinePlot.movingMedian(y, 3);
        assertEquals(100, m[0], 0); // the window shrinks at the ends
        assertEquals(10_000, m[1], 0);
        assertEquals(10_000, m[2], 0);
        assertEquals(10_500, m[3], 0); // the dip at index 3 is gone
        assertEquals(11_200, m[6], 0);
        assertEquals(1, Charts.smoothingWindow(2));
        assertEquals(3, Charts.smoothingWindow(12));
        assertEquals(7, Charts.smoothingWindow(40));
        assertEquals(17, Charts.smoothingWindow(100));
        assertEquals(21, Charts.smoothingWindow(1000));
    }

    @Test
    void chartsComeFromWhateverKeysTheMetricsHold(@TempDir Path dir) throws Exception {
        // an old distributed file: lr, tok_per_s, sync_fraction; no grad_norm, no peak_rss_mb, no manifest_version
        Path old = dir.resolve("old.jsonl");
        StringBuilder b = new StringBuilder("{\"kind\":\"engine\",\"step\":0}\n");
        for (int s = 5; s <= 100; s += 5) {
            b.append(String.format(java.util.Locale.ROOT, "{\"kind\":\"train\",\"step\":%d,\"tokens\":%d,\"chains\":[2,2],"
                    + "\"loss\":[5.0,4.8],\"lr\":%.6f,\"tok_per_s\":%.1f,\"sync_fraction\":%.3f,\"elapsed_s\":%.2f}%n",
                    s, s * 1024, 0.003 * Math.min(1, s / 20.0), s == 5 ? 400.0 : 9000 + 500 * Math.sin(s), 0.2 + 0.01 * (s % 3), s * 0.1));
            if (s % 20 == 0) {
                b.append("{\"kind\":\"eval\",\"step\":").append(s).append(",\"val_loss\":[4.9,4.7]}\n");
            }
        }
        Files.writeString(old, b, StandardCharsets.UTF_8);
        Path outOld = Files.createDirectories(dir.resolve("old"));
        List<Path> drawn = Report.metricCharts(outOld, old, 40);
        assertEquals(List.of(outOld.resolve("learning-rate.png"), outOld.resolve("sync-share.png")), drawn);
        for (Path p : drawn) {
            BufferedImage img = ImageIO.read(p.toFile());
            assertNotNull(img, p + " is a PNG");
            assertEquals(Charts.WIDTH, img.getWidth());
        }
        assertEquals(20, Report.tokensPerSecond(old).size());

        // a newer retrain file: grad_norm, peak_rss_mb and manifest_version 1 -> 2 after step 50
        Path fresh = dir.resolve("new.jsonl");
        Files.writeString(fresh, b.toString().lines().map(l -> {
            if (!l.contains("\"train\"")) {
                return l;
            }
            long step = Long.parseLong(l.replaceAll(".*\"step\":(\\d+).*", "$1"));
            return l.substring(0, l.length() - 1) + ",\"grad_norm\":" + (1.0 / step) + ",\"peak_rss_mb\":" + (900 + step)
                    + ",\"manifest_version\":" + (step <= 50 ? 1 : 2) + "}";
        }).reduce("", (x, y) -> x + y + "\n"), StandardCharsets.UTF_8);
        Map<String, SortedMap<Long, Double>> series = Report.trainSeries(fresh);
        List<LinePlot.Event> versions = Report.dataVersionEvents(series.get("manifest_version"));
        assertEquals(1, versions.size());
        assertEquals(50, versions.get(0).x(), 0);
        assertTrue(versions.get(0).label().contains("v2"), versions.get(0).label());
        Path outNew = Files.createDirectories(dir.resolve("new"));
        assertEquals(4, Report.metricCharts(outNew, fresh, 0).size());

        // the demo's own charts still draw, from data and from nothing
        SortedMap<Long, double[]> loss = new TreeMap<>();
        SortedMap<Long, double[]> evals = new TreeMap<>();
        for (long s = 1; s <= 40; s++) {
            loss.put(s, s <= 20 ? new double[] {6 - s * 0.05, 6 - s * 0.06} : new double[] {5, 4.8, 4.8 - (s - 20) * 0.01});
            if (s % 10 == 0) {
                evals.put(s, loss.get(s).clone());
            }
        }
        Charts.lossPerScale(dir.resolve("loss.png"), loss, evals, 1024, 20, 10);
        Charts.throughput(dir.resolve("tp.png"), Report.tokensPerSecond(old), 40);
        Charts.throughput(dir.resolve("tp-empty.png"), new TreeMap<>(), 0);
        Charts.perplexityPerChains(dir.resolve("ppl.png"), new double[] {4.8, 4.7, 4.6}, new double[] {4.8, 4.7});
        for (String f : List.of("loss.png", "tp.png", "tp-empty.png", "ppl.png")) {
            assertEquals(Charts.WIDTH, ImageIO.read(dir.resolve(f).toFile()).getWidth(), f);
        }
    }
}
