package io.catena.trainer.demo;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.Stroke;
import java.awt.geom.AffineTransform;
import java.awt.geom.Line2D;
import java.awt.geom.Path2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.math.BigDecimal;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.text.DecimalFormat;
import java.text.DecimalFormatSymbols;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.function.DoubleFunction;
import javax.imageio.ImageIO;

/**
 * A line chart drawn with plain Java2D, for the demo report: axes with round ("nice") tick values, lines (optionally
 * faint), point markers, labelled vertical event lines (growth, data versions), a one-row legend under the title and
 * the last value of chosen series written at the right edge, the labels pushed apart so none overlaps another.
 * The tick and label-placement algorithms are static and pure ({@link #niceTicks}, {@link #spreadLabels}) and tested
 * on their own.
 */
final class LinePlot {
    private static final Font TITLE = new Font(Font.SANS_SERIF, Font.BOLD, 17);
    private static final Font AXIS = new Font(Font.SANS_SERIF, Font.PLAIN, 13);
    private static final Font TICK = new Font(Font.SANS_SERIF, Font.PLAIN, 12);
    private static final Font SMALL = new Font(Font.SANS_SERIF, Font.PLAIN, 11);
    private static final Color GRID = new Color(0xe6e6e6);
    private static final Color INK = new Color(0x333333);

    enum Marker { NONE, DIAMOND, CIRCLE }

    /**
     * One line (or, with {@code line} false, only its markers). {@code endLabel}: when not null, this text and the last
     * value are written at the right edge. {@code name}: the legend's entry.
     */
    record Series(String name, double[] x, double[] y, Color color, float width, float alpha, boolean line, Marker marker,
                  boolean dashed, String endLabel, boolean inLegend) {
        Series {
            if (x.length != y.length) {
                throw new IllegalArgumentException(name + ": " + x.length + " x values but " + y.length + " y values");
            }
        }
    }

    /** A vertical line at x with a short label (growth, a new data version). */
    record Event(double x, String label, Color color) {
    }

    private final String title;
    private final String xTitle;
    private final String yTitle;
    private final List<Series> series = new ArrayList<>();
    private final List<Event> events = new ArrayList<>();
    private String note;
    private Double yMinFixed;
    private Double yMaxFixed;
    private DoubleFunction<String> endLabelFormat = v -> formatValue(v);
    private String yUnitSuffix = "";

    LinePlot(String title, String xTitle, String yTitle) {
        this.title = title;
        this.xTitle = xTitle;
        this.yTitle = yTitle;
    }

    LinePlot add(Series s) {
        series.add(s);
        return this;
    }

    LinePlot event(Event e) {
        events.add(e);
        return this;
    }

    /** A line of text in the plot area (e.g. "not recorded in metrics.jsonl" when there is nothing to draw). */
    LinePlot note(String text) {
        this.note = text;
        return this;
    }

    /** Fixes the y range's lower and/or upper end (null: from the data). */
    LinePlot yRange(Double min, Double max) {
        this.yMinFixed = min;
        this.yMaxFixed = max;
        return this;
    }

    LinePlot endLabelFormat(DoubleFunction<String> f) {
        this.endLabelFormat = f;
        return this;
    }

    /** Appended to every y tick label ("%" for shares). */
    LinePlot yUnit(String suffix) {
        this.yUnitSuffix = suffix;
        return this;
    }

    // ---------------------------------------------------------------------------------------------------- algorithms

    /**
     * Round tick values covering [lo, hi]: multiples of a step that is 1, 2 or 5 x 10^k, the smallest such step that
     * needs at most {@code maxTicks} (>= 3) ticks. The first tick is at or below lo and the last at or above hi, so the axis
     * can span exactly from the first to the last tick. A degenerate range (lo == hi) is widened around its value.
     */
    static double[] niceTicks(double lo, double hi, int maxTicks) {
        if (!Double.isFinite(lo) || !Double.isFinite(hi)) {
            throw new IllegalArgumentException("tick range [" + lo + ", " + hi + "] is not finite");
        }
        if (maxTicks < 3) { // a range around 0 needs -s, 0, s
            throw new IllegalArgumentException("maxTicks " + maxTicks + " < 3");
        }
        if (hi < lo) {
            double t = lo;
            lo = hi;
            hi = t;
        }
        if (hi == lo) {
            double pad = lo == 0 ? 1 : Math.abs(lo) * 0.1;
            lo -= pad;
            hi += pad;
        }
        double step = niceStep((hi - lo) / (maxTicks - 1));
        while (true) {
            long first = (long) Math.floor(lo / step + 1e-9);
            long last = (long) Math.ceil(hi / step - 1e-9);
            if (last - first + 1 <= maxTicks) {
                double[] t = new double[(int) (last - first + 1)];
                for (int i = 0; i < t.length; i++) {
                    // through BigDecimal so that 3 x 0.1 is 0.3, not 0.30000000000000004
                    t[i] = new BigDecimal(Double.toString(step)).multiply(BigDecimal.valueOf(first + i)).doubleValue();
                }
                return t;
            }
            step = niceStep(step * 1.01); // the next nice step up
        }
    }

    /** The smallest 1, 2 or 5 x 10^k that is >= raw (raw > 0). */
    static double niceStep(double raw) {
        int exp = (int) Math.floor(Math.log10(raw));
        for (int e = exp; e <= exp + 1; e++) {
            for (int m : new int[] {1, 2, 5}) {
                double s = BigDecimal.valueOf(m).scaleByPowerOfTen(e).doubleValue();
                if (s >= raw * (1 - 1e-12)) {
                    return s;
                }
            }
        }
        return BigDecimal.ONE.scaleByPowerOfTen(exp + 2).doubleValue();
    }

    /**
     * Moves label positions apart so that neighbours are at least {@code gap} apart, each as little as possible (in the
     * least-squares sense: colliding labels form a block centred on their wanted positions), keeping their order and
     * keeping them inside [lo, hi] where they fit. Returns the new positions in the input's order.
     */
    static double[] spreadLabels(double[] wanted, double gap, double lo, double hi) {
        int n = wanted.length;
        double[] out = new double[n];
        if (n == 0) {
            return out;
        }
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Double.compare(wanted[a], wanted[b]));
        if (n > 1 && (n - 1) * gap > hi - lo) {
            gap = (hi - lo) / (n - 1); // they cannot all fit: squeeze rather than leave the range
        }
        // blocks of consecutive (sorted) labels: [start, end) with a common top
        int[] start = new int[n];
        int[] end = new int[n];
        double[] top = new double[n];
        int blocks = 0;
        for (int i = 0; i < n; i++) {
            start[blocks] = i;
            end[blocks] = i + 1;
            top[blocks] = clampTop(wanted[order[i]], 1, gap, lo, hi);
            blocks++;
            while (blocks > 1 && top[blocks - 2] + (end[blocks - 2] - start[blocks - 2]) * gap > top[blocks - 1] + 1e-9) {
                int s = start[blocks - 2];
                int e = end[blocks - 1];
                double sum = 0;
                for (int j = s; j < e; j++) {
                    sum += wanted[order[j]] - (j - s) * gap;
                }
                blocks--;
                start[blocks - 1] = s;
                end[blocks - 1] = e;
                top[blocks - 1] = clampTop(sum / (e - s), e - s, gap, lo, hi);
            }
        }
        for (int b = 0; b < blocks; b++) {
            for (int j = start[b]; j < end[b]; j++) {
                out[order[j]] = top[b] + (j - start[b]) * gap;
            }
        }
        return out;
    }

    private static double clampTop(double top, int count, double gap, double lo, double hi) {
        return Math.max(lo, Math.min(top, hi - (count - 1) * gap));
    }

    /**
     * Centred moving median over {@code window} points (odd; shrinks at the ends): a smooth line that ignores single
     * outliers such as the first, JIT-warming window of a throughput trace.
     */
    static double[] movingMedian(double[] y, int window) {
        int half = Math.max(0, window / 2);
        double[] out = new double[y.length];
        for (int i = 0; i < y.length; i++) {
            int h = Math.min(half, Math.min(i, y.length - 1 - i));
            double[] w = Arrays.copyOfRange(y, i - h, i + h + 1);
            Arrays.sort(w);
            out[i] = w.length % 2 == 1 ? w[w.length / 2] : (w[w.length / 2 - 1] + w[w.length / 2]) / 2;
        }
        return out;
    }

    /** Decimal places that tell ticks {@code step} apart (0 for integer steps). */
    static int decimalsFor(double step) {
        return Math.max(0, (int) Math.ceil(-Math.log10(step) - 1e-9));
    }

    static String formatTick(double v, double step) {
        DecimalFormat f = new DecimalFormat("#,##0" + (decimalsFor(step) > 0 ? "." + "0".repeat(decimalsFor(step)) : ""),
                DecimalFormatSymbols.getInstance(Locale.ROOT));
        return f.format(v == 0 ? 0.0 : v); // no "-0"
    }

    /** A value with 3 significant digits (thousands separated): 0.00123, 2.41, 1,234. */
    static String formatValue(double v) {
        if (!Double.isFinite(v)) {
            return Double.toString(v);
        }
        double a = Math.abs(v);
        int dec = a == 0 ? 0 : Math.max(0, 2 - (int) Math.floor(Math.log10(a)));
        return new DecimalFormat("#,##0" + (dec > 0 ? "." + "0".repeat(dec) : ""), DecimalFormatSymbols.getInstance(Locale.ROOT))
                .format(v);
    }

    // ---------------------------------------------------------------------------------------------------- drawing

    BufferedImage render(int width, int height) {
        BufferedImage img = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            g.setRenderingHint(RenderingHints.KEY_STROKE_CONTROL, RenderingHints.VALUE_STROKE_PURE);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, width, height);
            draw(g, width, height);
        } finally {
            g.dispose();
        }
        return img;
    }

    /** Writes the PNG next to the target and renames it, so a reader never sees half a file. */
    void save(Path png, int width, int height) throws IOException {
        Path tmp = png.resolveSibling(png.getFileName() + ".tmp");
        if (!ImageIO.write(render(width, height), "png", tmp.toFile())) {
            throw new IOException("no PNG writer in this JVM's ImageIO");
        }
        Files.move(tmp, png, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    /** The plotted ranges and their round ticks (x ends at the last value: no empty stretch on the right). */
    private record Axes(double[] xt, double[] yt, double x0, double x1, double y0, double y1, double xStep, double yStep) {
    }

    private Axes axes() {
        double xMin = Double.POSITIVE_INFINITY;
        double xMax = Double.NEGATIVE_INFINITY;
        double yMin = Double.POSITIVE_INFINITY;
        double yMax = Double.NEGATIVE_INFINITY;
        for (Series s : series) {
            for (int i = 0; i < s.x().length; i++) {
                if (Double.isFinite(s.x()[i]) && Double.isFinite(s.y()[i])) {
                    xMin = Math.min(xMin, s.x()[i]);
                    xMax = Math.max(xMax, s.x()[i]);
                    yMin = Math.min(yMin, s.y()[i]);
                    yMax = Math.max(yMax, s.y()[i]);
                }
            }
        }
        for (Event e : events) {
            xMin = Math.min(xMin, e.x());
            xMax = Math.max(xMax, e.x());
        }
        if (xMin > xMax) { // nothing to draw
            xMin = 0;
            xMax = 1;
        }
        if (yMin > yMax) {
            yMin = 0;
            yMax = 1;
        }
        if (yMinFixed != null) {
            yMin = yMinFixed;
        }
        if (yMaxFixed != null) {
            yMax = Math.max(yMaxFixed, yMin);
        }
        double[] xt = niceTicks(xMin, xMax, 9);
        double[] yt = niceTicks(yMin, yMax, 7);
        double x0 = xt[0];
        double x1 = xMax > x0 ? xMax + (xMax - x0) * 0.01 : xt[xt.length - 1];
        double xEnd = x1;
        xt = Arrays.stream(xt).filter(v -> v <= xEnd + 1e-9 * Math.abs(xEnd)).toArray();
        double xStep = xt.length > 1 ? xt[1] - xt[0] : Math.abs(x1 - x0);
        return new Axes(xt, yt, x0, x1, yt[0], yt[yt.length - 1], xStep, yt[1] - yt[0]);
    }

    private void draw(Graphics2D g, int width, int height) {
        Axes ax = axes();
        // layout
        g.setFont(TICK);
        FontMetrics tm = g.getFontMetrics();
        int yLabelWidth = 0;
        for (double v : ax.yt()) {
            yLabelWidth = Math.max(yLabelWidth, tm.stringWidth(formatTick(v, ax.yStep()) + yUnitSuffix));
        }
        boolean anyEndLabel = series.stream().anyMatch(s -> s.endLabel() != null && s.x().length > 0);
        g.setFont(SMALL);
        int endLabelWidth = 0;
        for (Series s : series) {
            if (s.endLabel() != null && s.y().length > 0) {
                endLabelWidth = Math.max(endLabelWidth, g.getFontMetrics().stringWidth(endLabel(s)));
            }
        }
        int left = 28 + yLabelWidth + 14;
        int right = width - (anyEndLabel ? Math.min(endLabelWidth + 22, width / 4) : 24);
        int top = 70;
        int bottom = height - 56;

        // title and legend
        g.setColor(INK);
        g.setFont(TITLE);
        g.drawString(title, (width - g.getFontMetrics().stringWidth(title)) / 2, 26);
        drawLegend(g, left, right, 50);

        Transform t = new Transform(ax.x0(), ax.x1(), ax.y0(), ax.y1(), left, right, top, bottom);
        drawGrid(g, ax, t, left, right, top, bottom, height);

        // events: the lines behind the data, their labels (on a white ground) in front of it
        Stroke dash = new BasicStroke(1.5f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f, new float[] {6f, 5f}, 0f);
        for (Event e : events) {
            g.setColor(e.color());
            g.setStroke(dash);
            g.draw(new Line2D.Double(t.px(e.x()), top, t.px(e.x()), bottom));
        }

        // the data, clipped to the plot area
        var clip = g.getClip();
        g.clipRect(left, top, right - left + 1, bottom - top + 1);
        for (Series s : series) {
            drawSeries(g, s, t);
        }
        g.setClip(clip);

        drawEventLabels(g, t, top);
        drawEndLabels(g, t, right, top, bottom);
        if (note != null) {
            g.setFont(AXIS);
            g.setColor(new Color(0x888888));
            FontMetrics nm = g.getFontMetrics();
            g.drawString(note, (left + right - nm.stringWidth(note)) / 2, (top + bottom) / 2);
        }
    }

    /** Grid lines, ticks with their labels, the frame and both axis titles. */
    private void drawGrid(Graphics2D g, Axes ax, Transform t, int left, int right, int top, int bottom, int height) {
        g.setFont(TICK);
        FontMetrics tm = g.getFontMetrics();
        g.setStroke(new BasicStroke(1f));
        for (double v : ax.xt()) {
            int px = (int) Math.round(t.px(v));
            g.setColor(GRID);
            g.drawLine(px, top, px, bottom);
            g.setColor(INK);
            g.drawLine(px, bottom, px, bottom + 4);
            String s = formatTick(v, ax.xStep());
            g.drawString(s, px - tm.stringWidth(s) / 2, bottom + 6 + tm.getAscent());
        }
        for (double v : ax.yt()) {
            int py = (int) Math.round(t.py(v));
            g.setColor(GRID);
            g.drawLine(left, py, right, py);
            g.setColor(INK);
            g.drawLine(left - 4, py, left, py);
            String s = formatTick(v, ax.yStep()) + yUnitSuffix;
            g.drawString(s, left - 7 - tm.stringWidth(s), py + tm.getAscent() / 2 - 1);
        }
        g.setColor(INK);
        g.drawRect(left, top, right - left, bottom - top);
        g.setFont(AXIS);
        FontMetrics am = g.getFontMetrics();
        g.drawString(xTitle, (left + right - am.stringWidth(xTitle)) / 2, height - 14);
        AffineTransform saved = g.getTransform();
        g.rotate(-Math.PI / 2);
        g.drawString(yTitle, -(top + bottom + am.stringWidth(yTitle)) / 2, 20);
        g.setTransform(saved);
    }

    private void drawEventLabels(Graphics2D g, Transform t, int top) {
        g.setFont(SMALL);
        FontMetrics em = g.getFontMetrics();
        for (Event e : events) {
            AffineTransform s = g.getTransform();
            g.translate(t.px(e.x()) + 3, top + 6);
            g.rotate(Math.PI / 2);
            g.setColor(new Color(255, 255, 255, 225));
            g.fillRect(-2, -em.getHeight() + 2, em.stringWidth(e.label()) + 4, em.getHeight());
            g.setColor(e.color().darker());
            g.drawString(e.label(), 0, -em.getDescent());
            g.setTransform(s);
        }
    }

    /** Each labelled series' last value at the right edge, the labels pushed apart so none overlap. */
    private void drawEndLabels(Graphics2D g, Transform t, int right, int top, int bottom) {
        List<Series> labelled = series.stream().filter(s -> s.endLabel() != null && lastFinite(s) >= 0).toList();
        if (labelled.isEmpty()) {
            return;
        }
        g.setFont(SMALL);
        FontMetrics sm = g.getFontMetrics();
        double[] wanted = new double[labelled.size()];
        for (int i = 0; i < wanted.length; i++) {
            Series s = labelled.get(i);
            wanted[i] = t.py(s.y()[lastFinite(s)]);
        }
        double[] at = spreadLabels(wanted, sm.getAscent() + 3, top + sm.getAscent() / 2.0, bottom - sm.getAscent() / 2.0);
        for (int i = 0; i < at.length; i++) {
            Series s = labelled.get(i);
            int last = lastFinite(s);
            g.setColor(s.color());
            g.setStroke(new BasicStroke(1f));
            g.draw(new Line2D.Double(t.px(s.x()[last]), wanted[i], right + 6, at[i]));
            g.drawString(endLabel(s), right + 8, (float) (at[i] + sm.getAscent() / 2.0 - 1));
        }
    }

    private String endLabel(Series s) {
        int last = lastFinite(s);
        return s.endLabel() + " " + (last < 0 ? "" : endLabelFormat.apply(s.y()[last]));
    }

    private static int lastFinite(Series s) {
        for (int i = s.y().length - 1; i >= 0; i--) {
            if (Double.isFinite(s.y()[i]) && Double.isFinite(s.x()[i])) {
                return i;
            }
        }
        return -1;
    }

    private void drawLegend(Graphics2D g, int left, int right, int baseline) {
        g.setFont(SMALL);
        FontMetrics fm = g.getFontMetrics();
        List<Series> shown = series.stream().filter(Series::inLegend).toList();
        int total = 0;
        for (Series s : shown) {
            total += 30 + fm.stringWidth(s.name()) + 16;
        }
        int x = Math.max(left, (left + right - total) / 2);
        for (Series s : shown) {
            int y = baseline - fm.getAscent() / 2 + 1;
            Color c = withAlpha(s.color(), s.alpha());
            if (s.line()) {
                g.setColor(c);
                g.setStroke(stroke(s));
                g.draw(new Line2D.Double(x, y, x + 24, y));
            }
            if (s.marker() != Marker.NONE) {
                drawMarker(g, s.marker(), c, x + 12, y);
            }
            g.setColor(INK);
            g.drawString(s.name(), x + 30, baseline);
            x += 30 + fm.stringWidth(s.name()) + 16;
        }
    }

    private static void drawSeries(Graphics2D g, Series s, Transform t) {
        Color c = withAlpha(s.color(), s.alpha());
        if (s.line()) {
            Path2D.Double p = new Path2D.Double();
            boolean pen = false;
            for (int i = 0; i < s.x().length; i++) {
                if (!Double.isFinite(s.x()[i]) || !Double.isFinite(s.y()[i])) {
                    pen = false; // a gap
                    continue;
                }
                if (pen) {
                    p.lineTo(t.px(s.x()[i]), t.py(s.y()[i]));
                } else {
                    p.moveTo(t.px(s.x()[i]), t.py(s.y()[i]));
                    pen = true;
                }
            }
            g.setColor(c);
            g.setStroke(stroke(s));
            g.draw(p);
        }
        if (s.marker() != Marker.NONE) {
            for (int i = 0; i < s.x().length; i++) {
                if (Double.isFinite(s.x()[i]) && Double.isFinite(s.y()[i])) {
                    drawMarker(g, s.marker(), c, t.px(s.x()[i]), t.py(s.y()[i]));
                }
            }
        }
    }

    private static Stroke stroke(Series s) {
        return s.dashed() ? new BasicStroke(s.width(), BasicStroke.CAP_BUTT, BasicStroke.JOIN_ROUND, 10f, new float[] {7f, 4f}, 0f)
                : new BasicStroke(s.width(), BasicStroke.CAP_ROUND, BasicStroke.JOIN_ROUND);
    }

    private static void drawMarker(Graphics2D g, Marker m, Color c, double x, double y) {
        g.setColor(c);
        if (m == Marker.DIAMOND) {
            Path2D.Double d = new Path2D.Double();
            d.moveTo(x, y - 5);
            d.lineTo(x + 5, y);
            d.lineTo(x, y + 5);
            d.lineTo(x - 5, y);
            d.closePath();
            g.fill(d);
            g.setColor(Color.WHITE);
            g.setStroke(new BasicStroke(0.8f));
            g.draw(d);
        } else if (m == Marker.CIRCLE) {
            g.fill(new java.awt.geom.Ellipse2D.Double(x - 3, y - 3, 6, 6));
        }
    }

    private static Color withAlpha(Color c, float alpha) {
        return alpha >= 1 ? c : new Color(c.getRed(), c.getGreen(), c.getBlue(), Math.round(alpha * 255));
    }

    /** Data coordinates to pixels (y grows downwards on screen). */
    private record Transform(double x0, double x1, double y0, double y1, int left, int right, int top, int bottom) {
        double px(double x) {
            return left + (x - x0) / (x1 - x0) * (right - left);
        }

        double py(double y) {
            return bottom - (y - y0) / (y1 - y0) * (bottom - top);
        }
    }
}
