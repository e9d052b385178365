package io.catena.trainer.demo;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.catena.trainer.TrainResult;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SortedMap;
import java.util.TreeMap;

import static io.catena.trainer.demo.Demo.fmt;

/** The demo's one-screen text summary and its {@code report.html} (charts, tables, samples, how to reproduce). */
final class Report {
    private static final ObjectMapper JSON = new ObjectMapper();

    private Report() {
    }

    /**
     * The charts of training dynamics drawn from metrics.jsonl, one per key of its train records: file, key, how it is
     * drawn, and the report's caption. A key a run did not record (older metrics files, the local trainer's) gives no
     * chart, and the report says "not recorded".
     */
    record MetricChart(String file, String key, Charts.StepChart spec, String heading, String caption) {
    }

    static final List<MetricChart> METRIC_CHARTS = List.of(
            new MetricChart("learning-rate.png", "lr", new Charts.StepChart("Learning rate",
                    "learning rate", "lr", 1, "", false), "Learning rate",
                    "The learning rate of the recipe's schedule at each logged step."),
            new MetricChart("grad-norm.png", "grad_norm", new Charts.StepChart("Gradient norm (global L2)",
                    "gradient L2 norm", "grad norm", 1, "", true), "Gradient norm",
                    "Global L2 norm of the gradient per logged step (faint) and its moving median (bold)."),
            new MetricChart("sync-share.png", "sync_fraction", new Charts.StepChart("Share of worker time spent synchronising with the parameter server",
                    "sync share of step time", "sync", 100, "%", true), "Synchronisation share",
                    "Share of the workers' time (compute + sync, summed over the ranks) spent synchronising with the parameter "
                            + "server (gradient push, parameter pull), per logged step (faint) and its moving median (bold)."),
            new MetricChart("memory.png", "peak_rss_mb", new Charts.StepChart("Executors' peak resident memory",
                    "peak RSS (MB)", "peak RSS MB", 1, "", false), "Memory",
                    "The executors' peak resident memory (RSS, MB) as reported with each logged step."));

    /** The PNG files {@link #metricCharts} may write (for a rerun to remove). */
    static final List<String> METRIC_CHART_FILES = METRIC_CHARTS.stream().map(MetricChart::file).toList();

    /** step -> tokens/s of every "train" record of a metrics JSONL file (the progress windows). */
    static SortedMap<Long, Double> tokensPerSecond(Path metrics) throws IOException {
        return trainSeries(metrics).getOrDefault("tok_per_s", new TreeMap<>());
    }

    /**
     * key -> (step -> value) of every numeric field of the "train" records of a metrics JSONL file (a later record of
     * the same step wins, as after a restart). Fields a record lacks are simply absent; {@code manifest_version}, when
     * present, is one of the keys.
     */
    static Map<String, SortedMap<Long, Double>> trainSeries(Path metrics) throws IOException {
        Map<String, SortedMap<Long, Double>> m = new TreeMap<>();
        int line = 0;
        for (String l : Files.readAllLines(metrics, StandardCharsets.UTF_8)) {
            line++;
            if (l.isBlank()) {
                continue;
            }
            JsonNode n;
            try {
                n = JSON.readTree(l);
            } catch (IOException e) {
                throw new IOException(metrics + " line " + line + " is not JSON (" + e.getMessage() + "); expected one record per line", e);
            }
            if (!"train".equals(n.path("kind").asText()) || !n.path("step").isNumber()) {
                continue;
            }
            long step = n.path("step").asLong();
            n.fields().forEachRemaining(f -> {
                if (f.getValue().isNumber() && !f.getKey().equals("step") && Double.isFinite(f.getValue().asDouble())) {
                    m.computeIfAbsent(f.getKey(), k -> new TreeMap<>()).put(step, f.getValue().asDouble());
                }
            });
        }
        return m;
    }

    /**
     * Where the data changed: a line after the last step of each dataset (manifest) version that a later version
     * follows, from the train records' {@code manifest_version} (retrain runs); none when the records lack it.
     */
    static List<LinePlot.Event> dataVersionEvents(SortedMap<Long, Double> manifestVersion) {
        List<LinePlot.Event> out = new ArrayList<>();
        Long prevStep = null;
        Double prev = null;
        for (var e : manifestVersion.entrySet()) {
            if (prev != null && !prev.equals(e.getValue())) {
                out.add(new LinePlot.Event(prevStep, "data v" + e.getValue().longValue() + " from step " + prevStep,
                        new java.awt.Color(0x8c564b)));
            }
            prev = e.getValue();
            prevStep = e.getKey();
        }
        return out;
    }

    /**
     * Draws {@link #METRIC_CHARTS} under outDir for every key the metrics' train records carry, with the growth step
     * and data-version changes marked; returns the files drawn, in the report's order.
     */
    static List<Path> metricCharts(Path outDir, Path metrics, long growthStep) throws IOException {
        Map<String, SortedMap<Long, Double>> series = trainSeries(metrics);
        List<LinePlot.Event> events = new ArrayList<>(Charts.growthEvents(growthStep));
        events.addAll(dataVersionEvents(series.getOrDefault("manifest_version", new TreeMap<>())));
        List<Path> drawn = new ArrayList<>();
        for (MetricChart c : METRIC_CHARTS) {
            SortedMap<Long, Double> values = series.get(c.key());
            if (values != null && !values.isEmpty()) {
                Path png = outDir.resolve(c.file());
                Charts.stepChart(png, c.spec(), values, events);
                drawn.add(png);
            }
        }
        return drawn;
    }

    static String summary(Demo.Settings s, TrainResult tr, double[] beforeGrowth, List<Demo.ScaleRow> rows, Map<String, Double> phases) {
        StringBuilder b = new StringBuilder();
        b.append(fmt("catena demo summary: %.0f s on %d cores (prepare %.0f s, train and eval %.0f s, generate %.0f s)%n",
                phases.get("total"), Runtime.getRuntime().availableProcessors(), phases.get("prepare"), phases.get("train"),
                phases.get("generate")));
        b.append(fmt("trained %d steps with dp=%d through the parameter server (%d stage run%s); grew %s -> %s after step %d%s%n",
                tr.finalStep(), s.dp(), tr.stageRuns(), tr.stageRuns() == 1 ? "" : "s", "2 chains", tr.chains().size() + " chains "
                        + tr.chains(), s.growAt(), s.freeze() ? " (old chains frozen)" : ""));
        if (beforeGrowth != null) {
            b.append("val loss before growth:");
            for (int k = 1; k <= beforeGrowth.length; k++) {
                b.append(fmt("  k=%d %.4f", k, beforeGrowth[k - 1]));
            }
            b.append('\n');
        }
        b.append(fmt("%-7s %10s %10s %11s %14s%n", "chains", "params", "val loss", "perplexity", "decode tok/s"));
        for (Demo.ScaleRow r : rows) {
            b.append(fmt("k=%-5d %10d %10.4f %11.2f %14.1f%n", r.k(), r.params(), r.valLoss(), r.perplexity(), r.decodeTokensPerSecond()));
        }
        for (Demo.ScaleRow r : rows) {
            b.append(fmt("k=%d: %s%n", r.k(), oneLine(r.sample(), 110)));
        }
        return b.toString();
    }

    static Path write(Path outDir, Demo.Settings s, TrainResult tr, double[] beforeGrowth, List<Demo.ScaleRow> rows,
                      Map<String, Double> phases, List<Path> charts, String summary) throws IOException {
        StringBuilder h = new StringBuilder();
        h.append("""
                <!DOCTYPE html>
                <html lang="en"><head><meta charset="utf-8"><title>catena demo report</title>
                <style>body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}
                table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
                td.t{text-align:left;font-family:monospace}img{max-width:100%;border:1px solid #eee}
                pre{background:#f6f6f6;padding:1em;overflow-x:auto}</style></head><body>
                <h1>catena demo</h1>
                """);
        h.append("<p>A Chain-of-Model (CoLM) language model trained on the Book of Genesis (KJV, public domain): Spark prepared the ")
                .append("data (byte-level BPE of ").append(s.vocab()).append(" tokens, packed shards), ").append(s.dp())
                .append(" data-parallel Spark tasks trained it through the embedded Aeron parameter server, and the model grew ")
                .append("from 2 to ").append(tr.chains().size()).append(" chains after step ").append(s.growAt())
                .append(s.freeze() ? " with the old chains frozen (chain tuning)" : "")
                .append(". Each scale k uses only chains 1..k: one training run gives ").append(tr.chains().size())
                .append(" models of increasing size.</p>\n");
        h.append("<h2>Loss per scale</h2>\n<p>Train loss (moving mean of 10 steps) and validation loss (diamonds) of every scale k. ")
                .append("At the growth line the new scale starts exactly at the loss of the scale below it, because the new chain's ")
                .append("LM-head rows start at zero.</p>\n");
        img(h, outDir, charts.get(0));
        h.append("<h2>Perplexity vs number of chains</h2>\n");
        img(h, outDir, charts.get(1));
        h.append("<table><tr><th>chains k</th><th>parameters</th><th>val loss</th><th>perplexity</th><th>decode tokens/s</th>")
                .append(beforeGrowth == null ? "" : "<th>val loss before growth</th>").append("</tr>\n");
        for (Demo.ScaleRow r : rows) {
            h.append(fmt("<tr><td>%d</td><td>%d</td><td>%.4f</td><td>%.2f</td><td>%.1f</td>", r.k(), r.params(), r.valLoss(),
                    r.perplexity(), r.decodeTokensPerSecond()));
            if (beforeGrowth != null) {
                h.append(r.k() <= beforeGrowth.length ? fmt("<td>%.4f</td>", beforeGrowth[r.k() - 1]) : "<td>-</td>");
            }
            h.append("</tr>\n");
        }
        h.append("</table>\n<h2>Throughput</h2>\n<p>Tokens per second of the whole job (all workers), per progress window (faint) ")
                .append("and their moving median (bold).</p>\n");
        img(h, outDir, charts.get(2));
        for (MetricChart c : METRIC_CHARTS) {
            Path png = charts.stream().filter(p -> p.getFileName().toString().equals(c.file())).findFirst().orElse(null);
            h.append("<h2>").append(esc(c.heading())).append("</h2>\n");
            if (png != null) {
                h.append("<p>").append(esc(c.caption())).append("</p>\n");
                img(h, outDir, png);
            } else {
                h.append("<p>Not recorded: this run's <code>metrics.jsonl</code> train records have no <code>")
                        .append(esc(c.key())).append("</code>.</p>\n");
            }
        }
        h.append("<h2>Samples</h2>\n<p>Prompt <code>").append(esc(Demo.PROMPT))
                .append("</code>, temperature 0.7, top-k 20, seed 3, the same for every k.</p>\n<table>\n");
        for (Demo.ScaleRow r : rows) {
            h.append("<tr><td>k=").append(r.k()).append("</td><td class=\"t\">").append(esc(r.sample())).append("</td></tr>\n");
        }
        h.append("</table>\n<h2>Phases</h2>\n<table>");
        phases.forEach((k, v) -> h.append(fmt("<tr><td class=\"t\">%s</td><td>%.1f s</td></tr>", esc(k), v)));
        h.append("</table>\n<h2>Summary</h2>\n<pre>").append(esc(summary)).append("</pre>\n");
        h.append("<h2>Reproduce and go further</h2>\n<pre>")
                .append(esc(fmt("""
                        bin/catena demo --out %s --steps %d --grow-at %d%s --dp %d --vocab %d
                        bin/catena eval --ckpt %s --data %s
                        bin/catena generate --ckpt %s --prompt "%s" --chains 1
                        bin/catena inspect --ckpt %s""", outDir, s.steps(), s.growAt(), s.freeze() ? "" : " --no-freeze", s.dp(),
                        s.vocab(), tr.checkpoint(), outDir.resolve("dataset"), tr.checkpoint(), Demo.PROMPT, tr.checkpoint())))
                .append("</pre>\n<p>Files: <code>metrics.jsonl</code> (one JSON record per progress line, eval and checkpoint), ")
                .append("<code>dataset/</code> (manifest, tokenizer.json, shards), <code>ckpt/</code> (checkpoints), ")
                .append("<code>summary.txt</code>.</p>\n</body></html>\n");
        Path report = outDir.resolve("report.html");
        Path tmp = outDir.resolve("report.html.tmp");
        Files.writeString(tmp, h.toString(), StandardCharsets.UTF_8);
        Files.move(tmp, report, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        return report;
    }

    private static void img(StringBuilder h, Path outDir, Path png) {
        String rel = outDir.relativize(png).toString();
        h.append("<p><img src=\"").append(esc(rel)).append("\" alt=\"").append(esc(rel)).append("\" width=\"")
                .append(Charts.WIDTH).append("\"></p>\n");
    }

    static String esc(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }

    private static String oneLine(String s, int max) {
        String l = s.replace('\n', ' ');
        return l.length() <= max ? l : l.substring(0, max - 3) + "...";
    }
}
