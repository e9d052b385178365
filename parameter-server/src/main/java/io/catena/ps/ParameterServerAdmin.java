package io.catena.ps;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;

/**
 * {@code catena ps-admin --conf <file> grow --add 2[,2] [--freeze] | snapshot | metrics}: talks to a running
 * server as an admin client (worker id -1) and prints the server's JSON answer.
 */
public final class ParameterServerAdmin {
    private ParameterServerAdmin() {
    }

    public static void main(String[] args) {
        try {
            System.out.println(run(args));
            System.exit(0);
        } catch (ConfigurationException | IllegalArgumentException e) {
            System.err.println("catena ps-admin: " + e.getMessage());
            System.exit(2);
        } catch (RuntimeException e) {
            System.err.println("catena ps-admin: " + e.getMessage());
            System.exit(1);
        }
    }

    static Map<String, Object> run(String[] args) {
        Properties p = new Properties();
        String command = null;
        List<Integer> add = new ArrayList<>();
        boolean freeze = false;
        long timeout = 120_000;
        String usage = "usage: catena ps-admin --conf <file> (grow --add H[,H...] [--freeze] | snapshot | metrics) [--timeout-ms N]";
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--conf" -> p.putAll(ParameterServerMain.loadConf(arg(args, ++i, usage)));
                case "--add" -> {
                    for (String s : arg(args, ++i, usage).split(",")) {
                        add.add(Integer.parseInt(s.trim()));
                    }
                }
                case "--freeze" -> freeze = true;
                case "--timeout-ms" -> timeout = Long.parseLong(arg(args, ++i, usage));
                case "grow", "snapshot", "metrics" -> command = args[i];
                default -> throw new IllegalArgumentException("unknown argument '" + args[i] + "'; " + usage);
            }
        }
        if (command == null || (command.equals("grow") && add.isEmpty())) {
            throw new IllegalArgumentException(usage);
        }
        try (ParameterServerClient c = ParameterServerClient.connect(new ParameterServerClient.Context(p).workerId(-1))) {
            return switch (command) {
                case "grow" -> c.grow(add, freeze, null, timeout);
                case "snapshot" -> c.snapshot(Map.of(), timeout);
                default -> c.metrics(timeout);
            };
        }
    }

    private static String arg(String[] args, int i, String usage) {
        if (i >= args.length) {
            throw new IllegalArgumentException(usage);
        }
        return args[i];
    }
}
