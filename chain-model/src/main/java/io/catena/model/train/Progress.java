package io.catena.model.train;

import java.util.Locale;

/** The progress and eval lines every Catena trainer prints (single-process and Spark alike). */
public final class Progress {
    private static final int BAR = 20;

    private Progress() {
    }

    /**
     * {@code [#####.....] step 120/600 | 8,100 tok/s | loss k1 2.31 k2 2.12 | lr 2.90e-04 | <extra> | ETA 1m12s};
     * extra (e.g. the PS sync share) may be empty.
     */
    public static String line(long step, long last, double tokensPerSecond, double[] losses, double lr, String extra, double etaSeconds) {
        StringBuilder sb = new StringBuilder();
        int filled = (int) Math.min(BAR, BAR * step / Math.max(1, last));
        sb.append('[').append("#".repeat(filled)).append(".".repeat(BAR - filled)).append(']');
        sb.append(String.format(Locale.ROOT, " step %d/%d | %,.0f tok/s | loss", step, last, tokensPerSecond));
        for (int j = 0; j < losses.length; j++) {
            sb.append(String.format(Locale.ROOT, " k%d %.4f", j + 1, losses[j]));
        }
        sb.append(String.format(Locale.ROOT, " | lr %.2e", lr));
        if (extra != null && !extra.isEmpty()) {
            sb.append(" | ").append(extra);
        }
        return sb.append(" | ETA ").append(duration(etaSeconds)).toString();
    }

    /** {@code eval step 200 | k=1 loss 2.0257 ppl 7.58 k=2 ...}; also returns the perplexities in ppl. */
    public static String evalLine(long step, double[] losses, double[] ppl) {
        StringBuilder sb = new StringBuilder(String.format(Locale.ROOT, "eval step %d |", step));
        for (int j = 0; j < losses.length; j++) {
            ppl[j] = Math.exp(losses[j]);
            sb.append(String.format(Locale.ROOT, " k=%d loss %.4f ppl %.2f", j + 1, losses[j], ppl[j]));
        }
        return sb.toString();
    }

    public static String duration(double seconds) {
        long s = Math.round(seconds);
        return s >= 3600 ? String.format(Locale.ROOT, "%dh%02dm", s / 3600, (s % 3600) / 60)
                : s >= 60 ? String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60) : s + "s";
    }
}
