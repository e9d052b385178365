package io.catena.model.cli;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** {@code --key value}, repeated keys and bare {@code --flag}s; unknown options are errors that list the valid ones. */
final class Args {
    private final String command;
    private final Map<String, List<String>> options = new LinkedHashMap<>();

    Args(String command, String[] argv, int from, Set<String> valued, Set<String> flags) {
        this.command = command;
        for (int i = from; i < argv.length; i++) {
            String a = argv[i];
            if (!a.startsWith("--")) {
                throw new IllegalArgumentException(command + ": unexpected argument '" + a + "'; options start with --. Try: catena "
                        + command + " --help");
            }
            String key = a.substring(2);
            String value = null;
            int eq = key.indexOf('=');
            if (eq > 0) {
                value = key.substring(eq + 1);
                key = key.substring(0, eq);
            }
            if (flags.contains(key)) {
                options.computeIfAbsent(key, k -> new ArrayList<>()).add("true");
            } else if (valued.contains(key)) {
                if (value == null) {
                    if (i + 1 >= argv.length) {
                        throw new IllegalArgumentException(command + ": --" + key + " needs a value");
                    }
                    value = argv[++i];
                }
                options.computeIfAbsent(key, k -> new ArrayList<>()).add(value);
            } else if (!key.equals("help")) {
                List<String> all = new ArrayList<>();
                valued.forEach(v -> all.add("--" + v));
                flags.forEach(f -> all.add("--" + f));
                throw new IllegalArgumentException(command + ": unknown option --" + key + "; valid: " + all);
            } else {
                options.put("help", List.of("true"));
            }
        }
    }

    boolean has(String key) {
        return options.containsKey(key);
    }

    String get(String key, String dflt) {
        List<String> v = options.get(key);
        return v == null ? dflt : v.get(v.size() - 1);
    }

    String require(String key) {
        String v = get(key, null);
        if (v == null) {
            throw new IllegalArgumentException(command + ": --" + key + " is required. Try: catena " + command + " --help");
        }
        return v;
    }

    int integer(String key, int dflt) {
        return integer(key, dflt, Integer.MIN_VALUE);
    }

    /** The option's value, or dflt when it is not given; a given value below min is an error, never replaced. */
    int integer(String key, int dflt, int min) {
        String v = get(key, null);
        return v == null ? dflt : prefixed(() -> NumericOption.intAtLeast(key, v, min));
    }

    double dbl(String key, double dflt) {
        return dbl(key, dflt, -Double.MAX_VALUE, Double.MAX_VALUE);
    }

    double dbl(String key, double dflt, double min, double max) {
        String v = get(key, null);
        return v == null ? dflt : prefixed(() -> NumericOption.parseDouble(key, v, min, max));
    }

    private <T> T prefixed(java.util.function.Supplier<T> parse) {
        try {
            return parse.get();
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(command + ": " + e.getMessage());
        }
    }

    List<String> all(String key) {
        return options.getOrDefault(key, List.of());
    }
}
