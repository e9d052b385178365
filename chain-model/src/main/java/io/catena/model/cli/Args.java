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
        String v = get(key, null);
        if (v == null) {
            return dflt;
        }
        try {
            return Integer.parseInt(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(command + ": --" + key + " must be an integer, got '" + v + "'");
        }
    }

    double dbl(String key, double dflt) {
        String v = get(key, null);
        if (v == null) {
            return dflt;
        }
        try {
            return Double.parseDouble(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(command + ": --" + key + " must be a number, got '" + v + "'");
        }
    }

    List<String> all(String key) {
        return options.getOrDefault(key, List.of());
    }
}
