package io.catena.trainer.demo;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.catena.trainer.TrainResult;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
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

    /** step -> tokens/s of every "train" record of a metrics JSONL file (the progress windows). */
    static SortedMap<Long, Double> tokensPerSecond(Path metrics) throws IOException {
        SortedMap<Long, Double> m = new TreeMap<>();
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
            if ("train".equals(n.path("kind").asText()) && n.has("tok_per_s")) {
                m.put(n.path("step").asLong(), n.path("tok_per_s").asDouble());
            }
        }
        return m;
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
        h.append("</table>\n<h2>Throughput</h2>\n<p>Tokens per second of the whole job (all workers), per progress window.</p>\n");
        img(h, outDir, charts.get(2));
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
