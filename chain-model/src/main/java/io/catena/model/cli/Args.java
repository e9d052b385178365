package io.catena.model.cli;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Function;

/**
 * The one command-line parser of every entry point ({@code catena train-local/eval/...}, {@code train}, {@code retrain},
 * {@code prepare}, {@code demo}): {@code --key value} or {@code --key=value}, repeated keys, bare {@code --flag}s and
 * {@code --help}. Unknown options are errors that list the valid ones. An option missing from the command line can
 * come from a fallback lookup (the Spark jobs read {@code spark.catena.<name>} from the Spark conf); the command line
 * wins.
 */
public final class Args {
    private final String command;
    private final Map<String, List<String>> options = new LinkedHashMap<>();
    private Function<String, String> fallback = k -> null;

    /**
     * @param command names the command in every error ("train: --dp needs a value. Try: catena train --help")
     * @param from    first argument to read (1 skips the command name itself)
     */
    public Args(String command, String[] argv, int from, Set<String> valued, Set<String> flags) {
        this.command = command;
        for (int i = from; i < argv.length; i++) {
            String a = argv[i];
            if (!a.startsWith("--")) {
                throw error("unexpected argument '" + a + "'; options start with --");
            }
            String key = a.substring(2);
            String value = null;
            int eq = key.indexOf('=');
            if (eq > 0) {
                value = key.substring(eq + 1);
                key = key.substring(0, eq);
            }
            if (flags.contains(key) || key.equals("help")) {
                options.computeIfAbsent(key, k -> new ArrayList<>()).add(value == null ? "true" : value);
            } else if (valued.contains(key)) {
                if (value == null) {
                    if (i + 1 >= argv.length) {
                        throw error("--" + key + " needs a value");
                    }
                    value = argv[++i];
                }
                options.computeIfAbsent(key, k -> new ArrayList<>()).add(value);
            } else {
                Set<String> all = new TreeSet<>();
                valued.forEach(v -> all.add("--" + v));
                flags.forEach(f -> all.add("--" + f));
                throw error("unknown option --" + key + "; valid: " + all);
            }
        }
    }

    /** The last value of each option given: for tools whose options are all {@code --key value} (the benchmark mains). */
    public static Map<String, String> values(String command, String[] argv, int from, Set<String> valued) {
        Map<String, String> out = new LinkedHashMap<>();
        new Args(command, argv, from, valued, Set.of()).options.forEach((k, v) -> out.put(k, v.get(v.size() - 1)));
        return out;
    }

    /** {@code argv} with its first element skipped when it is the command's own name ({@code catena train ...}). */
    public static int firstOption(String[] argv, String command) {
        return argv.length > 0 && argv[0].equals(command) ? 1 : 0;
    }

    /** Options missing from the command line are looked up here by name (a null or blank answer: not set). */
    public Args withFallback(Function<String, String> lookup) {
        this.fallback = lookup == null ? k -> null : lookup;
        return this;
    }

    public boolean helpRequested() {
        return options.containsKey("help");
    }

    /** The options given on the command line itself, in order, each with all its values. */
    public Map<String, List<String>> given() {
        return java.util.Collections.unmodifiableMap(options);
    }

    public boolean has(String key) {
        return get(key, null) != null;
    }

    /** A bare flag given, or a fallback value of true. */
    public boolean flag(String key) {
        String v = get(key, null);
        return v != null && !v.equalsIgnoreCase("false");
    }

    public String get(String key, String dflt) {
        List<String> v = options.get(key);
        if (v != null) {
            return v.get(v.size() - 1);
        }
        String f = fallback.apply(key);
        return f == null || f.isBlank() ? dflt : f.trim();
    }

    public String require(String key) {
        String v = get(key, null);
        if (v == null) {
            throw error("--" + key + " is required");
        }
        return v;
    }

    public int integer(String key, int dflt) {
        return integer(key, dflt, Integer.MIN_VALUE);
    }

    /** The option's value, or dflt when it is not given; a given value below min is an error, never replaced. */
    public int integer(String key, int dflt, int min) {
        String v = get(key, null);
        return v == null ? dflt : prefixed(() -> NumericOption.intAtLeast(key, v, min));
    }

    public long longValue(String key, long dflt, long min) {
        String v = get(key, null);
        return v == null ? dflt : prefixed(() -> NumericOption.atLeast(key, v, min));
    }

    public double dbl(String key, double dflt) {
        return dbl(key, dflt, -Double.MAX_VALUE, Double.MAX_VALUE);
    }

    public double dbl(String key, double dflt, double min, double max) {
        String v = get(key, null);
        return v == null ? dflt : prefixed(() -> NumericOption.parseDouble(key, v, min, max));
    }

    /** Every value of a repeatable option; a fallback value holds several separated by ';'. */
    public List<String> all(String key) {
        List<String> given = options.get(key);
        if (given != null) {
            return given;
        }
        List<String> out = new ArrayList<>();
        String f = fallback.apply(key);
        if (f != null) {
            for (String s : f.split(";")) {
                if (!s.isBlank()) {
                    out.add(s.trim());
                }
            }
        }
        return out;
    }

    private <T> T prefixed(java.util.function.Supplier<T> parse) {
        try {
            return parse.get();
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(command + ": " + e.getMessage());
        }
    }

    private IllegalArgumentException error(String message) {
        return new IllegalArgumentException(command + ": " + message + ". Try: catena " + command + " --help");
    }
}
