package io.catena.model.cli;

/**
 * The one parser for numeric command-line options of every entry point ({@code catena train-local},
 * {@code train}, {@code retrain}, {@code demo}, {@code prepare}, ...): a value that is not a number or
 * lies outside its range is an error naming the option, the range and what was given. Never a silent
 * default: {@code --dp 0} or {@code --steps -1} must not train with something else.
 */
public final class NumericOption {
    private NumericOption() {
    }

    /** Parses {@code value} of {@code --option} as an integer in [min, max]. */
    public static long parse(String option, String value, long min, long max) {
        long v;
        try {
            v = Long.parseLong(value.trim().replace("_", ""));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--" + option + " must be an integer, got '" + value + "'");
        }
        return check(option, v, min, max);
    }

    /** Parses {@code value} of {@code --option} as an int in [min, max]. */
    public static int parseInt(String option, String value, int min, int max) {
        return (int) parse(option, value, min, max);
    }

    /** Parses {@code value} of {@code --option} as an integer >= min. */
    public static long atLeast(String option, String value, long min) {
        return parse(option, value, min, Long.MAX_VALUE);
    }

    /** Parses {@code value} of {@code --option} as an int >= min. */
    public static int intAtLeast(String option, String value, int min) {
        return (int) parse(option, value, min, Integer.MAX_VALUE);
    }

    /** Parses {@code value} of {@code --option} as a finite number in [min, max]. */
    public static double parseDouble(String option, String value, double min, double max) {
        double v;
        try {
            v = Double.parseDouble(value.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--" + option + " must be a number, got '" + value + "'");
        }
        if (!Double.isFinite(v) || v < min || v > max) {
            throw new IllegalArgumentException("--" + option + " must be a finite number in [" + min + ", " + max + "], got " + value);
        }
        return v;
    }

    /** Checks an already parsed value of {@code --option} against [min, max]. */
    public static long check(String option, long v, long min, long max) {
        if (v < min || v > max) {
            String range = max == Long.MAX_VALUE || max == Integer.MAX_VALUE ? ">= " + min : "in [" + min + ", " + max + "]";
            throw new IllegalArgumentException("--" + option + " must be " + range + ", got " + v);
        }
        return v;
    }
}
