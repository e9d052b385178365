package io.catena.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.apache.spark.internal.config.ConfigEntry$;
import org.apache.spark.launcher.JavaModuleOptions;
import org.apache.spark.launcher.SparkLauncher;
import org.junit.jupiter.api.Test;

/**
 * cluster-conf/spark-defaults*.conf: every key is one Spark 4.1.3 knows (core keys from Spark's own config registry),
 * carries a comment, and the JVM flags, the JavaCPP cache and OMP_WAIT_POLICY that every Catena JVM needs are there.
 */
class SparkDefaultsTest {
    /** Surefire runs in the module directory; cluster-conf lives beside the modules. */
    private static final Path CONF = Path.of("..", "cluster-conf");
    private static final List<String> VARIANTS = List.of("spark-defaults.conf", "spark-defaults-local.conf", "spark-defaults-yarn.conf",
            "spark-defaults-k8s.conf", "spark-defaults-gpu.conf");
    private static final List<String> CATENA_FLAGS = List.of("--add-modules=jdk.incubator.vector",
            "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED", "-Dorg.bytedeco.javacpp.cachedir=/var/tmp/catena-javacpp");

    /** Keys Spark reads as plain strings, not registry entries: named by Spark's launcher API. */
    private static final Set<String> LAUNCHER_KEYS = Set.of(SparkLauncher.SPARK_MASTER, SparkLauncher.DRIVER_DEFAULT_JAVA_OPTIONS,
            SparkLauncher.EXECUTOR_DEFAULT_JAVA_OPTIONS);

    /**
     * Keys of Spark's YARN and Kubernetes modules. Those modules are not on this class path (Maven Central serves no
     * spark-yarn/spark-kubernetes 4.1.3), so their registries cannot be asked: these names were checked against Spark
     * 4.1's resource-managers/yarn/.../config.scala and resource-managers/kubernetes/core/.../Config.scala.
     */
    private static final Set<String> CLUSTER_MANAGER_KEYS = Set.of("spark.yarn.maxAppAttempts", "spark.yarn.resourceGpuDeviceName",
            "spark.kubernetes.container.image", "spark.kubernetes.namespace", "spark.kubernetes.authenticate.driver.serviceAccountName",
            "spark.kubernetes.executor.request.cores", "spark.kubernetes.executor.podTemplateFile",
            "spark.history.fs.logDirectory"); // the History Server's (deploy/history/config.scala), not loaded by a driver
    /** Families of keys Spark reads by prefix (no registry entry): environment variables, volumes, node labels, resources. */
    private static final List<Pattern> PREFIX_KEYS = List.of(
            Pattern.compile("spark\\.executorEnv\\.[A-Z_][A-Z0-9_]*"),                  // SparkConf.setExecutorEnv
            Pattern.compile("spark\\.yarn\\.appMasterEnv\\.[A-Z_][A-Z0-9_]*"),          // YARN AM (cluster-mode driver) env
            Pattern.compile("spark\\.kubernetes\\.driverEnv\\.[A-Z_][A-Z0-9_]*"),       // Config.KUBERNETES_DRIVER_ENV_PREFIX
            Pattern.compile("spark\\.kubernetes\\.(driver|executor)\\.volumes\\.emptyDir\\.[a-z0-9-]+\\."
                    + "(mount\\.path|mount\\.readOnly|options\\.medium|options\\.sizeLimit)"),  // KubernetesVolumeUtils
            Pattern.compile("spark\\.kubernetes\\.node\\.selector\\.\\S+"),               // Config.KUBERNETES_NODE_SELECTOR_PREFIX
            Pattern.compile("spark\\.(driver|executor|task|worker)\\.resource\\.gpu\\.(amount|discoveryScript|vendor)"), // ResourceUtils
            Pattern.compile("spark\\.metrics\\.conf\\.(\\*|driver|executor)\\.(sink|source)\\.[A-Za-z]+\\.[A-Za-z]+")); // MetricsConfig

    /** A key line (also a commented-out one: "#spark.x value"), its value, and whether a comment line explains it. */
    private record Knob(String file, int line, String key, boolean active, boolean commented) {
    }

    private static List<Knob> knobs(Path file) throws IOException {
        List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        List<Knob> out = new ArrayList<>();
        boolean continued = false;
        for (int i = 0; i < lines.size(); i++) {
            String l = lines.get(i).strip();
            boolean wasContinued = continued;
            continued = !l.startsWith("#") && l.endsWith("\\");
            if (wasContinued || l.isEmpty()) {
                continue;
            }
            boolean active = !l.startsWith("#");
            String body = active ? l : l.substring(1);
            if (!body.startsWith("spark.")) {
                continue; // prose
            }
            String key = body.split("[\\s=]", 2)[0];
            // walk up over the knobs that share one comment (and their continuation lines) to the nearest prose line
            int j = i - 1;
            while (j >= 0 && !lines.get(j).isBlank() && !isProse(lines.get(j))) {
                j--;
            }
            out.add(new Knob(file.getFileName().toString(), i + 1, key, active, j >= 0 && isProse(lines.get(j))));
        }
        return out;
    }

    private static boolean isProse(String line) {
        String l = line.strip();
        return l.startsWith("# ") || l.equals("#");
    }

    private static Properties load(Path file) throws IOException {
        // Spark's launcher and SparkSubmit read the file with java.util.Properties, UTF-8
        Properties p = new Properties();
        try (Reader r = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            p.load(r);
        }
        return p;
    }

    @Test
    void shouldUseOnlyKeysSparkKnowsAndCommentEveryOne() throws Exception {
        // initialising Spark's config objects registers their entries (ConfigEntry.findEntry answers from that registry)
        for (String o : List.of("package$", "Worker$", "Deploy$", "Network$", "UI$")) {
            Class.forName("org.apache.spark.internal.config." + o, true, getClass().getClassLoader());
        }
        assertEquals("spark.executor.cores", ConfigEntry$.MODULE$.findEntry("spark.executor.cores").key());
        List<String> problems = new ArrayList<>();
        Map<String, Integer> perFile = new LinkedHashMap<>();
        for (String name : VARIANTS) {
            Path file = CONF.resolve(name);
            assertTrue(Files.isRegularFile(file), "missing " + file.toAbsolutePath());
            List<Knob> ks = knobs(file);
            perFile.put(name, ks.size());
            for (Knob k : ks) {
                String where = k.file() + ":" + k.line() + " " + k.key() + (k.active() ? "" : " (commented out)");
                if (!k.commented()) {
                    problems.add(where + ": no comment above it saying why (one comment per knob)");
                }
                if (k.key().startsWith("spark.catena.")) {
                    String opt = k.key().substring("spark.catena.".length());
                    if (!TrainOptions.VALUED.contains(opt)) {
                        problems.add(where + ": TrainJob has no option --" + opt + "; valid: " + TrainOptions.VALUED);
                    }
                } else if (!LAUNCHER_KEYS.contains(k.key()) && ConfigEntry$.MODULE$.findEntry(k.key()) == null
                        && !CLUSTER_MANAGER_KEYS.contains(k.key()) && PREFIX_KEYS.stream().noneMatch(p -> p.matcher(k.key()).matches())) {
                    problems.add(where + ": not a Spark 4.1.3 configuration key (neither in Spark's config registry nor a known "
                            + "YARN/Kubernetes key or prefix family)");
                }
            }
        }
        if (!problems.isEmpty()) {
            fail(problems.size() + " problem(s) in cluster-conf/spark-defaults*.conf:\n" + String.join("\n", problems));
        }
        perFile.forEach((f, n) -> assertTrue(n >= 3, f + " has only " + n + " keys"));
    }

    @Test
    void shouldGiveEveryDriverAndExecutorTheJvmFlagsCatenaAndSparkNeed() throws IOException {
        List<String> sparkFlags = Arrays.asList(JavaModuleOptions.defaultModuleOptions().split("\\s+"));
        List<String> problems = new ArrayList<>();
        for (String name : VARIANTS) {
            if (name.equals("spark-defaults-gpu.conf")) {
                continue; // appended to spark-defaults.conf
            }
            Properties p = load(CONF.resolve(name));
            List<String> keys = new ArrayList<>(List.of("spark.driver.defaultJavaOptions"));
            if (!name.equals("spark-defaults-local.conf")) {
                keys.add("spark.executor.defaultJavaOptions");
            }
            for (String key : keys) {
                String v = p.getProperty(key);
                if (v == null) {
                    problems.add(name + ": " + key + " is missing");
                    continue;
                }
                List<String> flags = Arrays.asList(v.trim().split("\\s+"));
                for (String f : CATENA_FLAGS) {
                    if (!flags.contains(f)) {
                        problems.add(name + ": " + key + " lacks " + f);
                    }
                }
                for (String f : sparkFlags) {
                    if (!flags.contains(f)) {
                        problems.add(name + ": " + key + " lacks " + f + " of Spark's JavaModuleOptions (Spark was upgraded? copy its list)");
                    }
                }
            }
            // extraJavaOptions stay free for a job's own flags (the ones above are in defaultJavaOptions)
            for (String key : List.of("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions")) {
                if (p.getProperty(key) != null) {
                    problems.add(name + ": sets " + key + "; put Catena's flags in the defaultJavaOptions keys so a job's --conf " + key
                            + " adds to them");
                }
            }
            boolean local = name.equals("spark-defaults-local.conf");
            if (!local && !"passive".equals(p.getProperty("spark.executorEnv.OMP_WAIT_POLICY"))) {
                problems.add(name + ": spark.executorEnv.OMP_WAIT_POLICY must be passive (ND4J's OpenMP threads spin otherwise)");
            }
            if (name.contains("yarn") || name.contains("k8s")) {
                if (!"false".equals(p.getProperty("spark.dynamicAllocation.enabled"))) {
                    problems.add(name + ": spark.dynamicAllocation.enabled must be false (Spark refuses barrier stages with it)");
                }
            }
        }
        Properties k8s = load(CONF.resolve("spark-defaults-k8s.conf"));
        for (String role : List.of("driver", "executor")) {
            String pre = "spark.kubernetes." + role + ".volumes.emptyDir.dshm.";
            if (!"/dev/shm".equals(k8s.getProperty(pre + "mount.path")) || !"Memory".equals(k8s.getProperty(pre + "options.medium"))) {
                problems.add("spark-defaults-k8s.conf: the " + role + " pod needs a Memory emptyDir at /dev/shm for Aeron (" + pre + "*)");
            }
        }
        if (!"passive".equals(k8s.getProperty("spark.kubernetes.driverEnv.OMP_WAIT_POLICY"))) {
            problems.add("spark-defaults-k8s.conf: spark.kubernetes.driverEnv.OMP_WAIT_POLICY must be passive");
        }
        if (!problems.isEmpty()) {
            fail(String.join("\n", problems));
        }
    }

    @Test
    void shouldListEveryFileOfClusterConfInItsReadme() throws IOException {
        String readme = Files.readString(CONF.resolve("README.md"), StandardCharsets.UTF_8);
        List<String> missing = new ArrayList<>();
        try (Stream<Path> s = Files.walk(CONF)) {
            s.filter(Files::isRegularFile).map(p -> CONF.relativize(p).toString().replace('\\', '/'))
                    .filter(p -> !p.equals("README.md"))
                    .filter(p -> !readme.contains("`" + p + "`"))
                    .sorted().forEach(missing::add);
        }
        assertTrue(missing.isEmpty(), "cluster-conf/README.md has no table row for " + missing);
    }
}
