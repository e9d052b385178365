package io.catena.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.data.prepare.PrepareOptions;
import io.catena.model.train.Recipe;
import io.catena.ps.Configuration;
import java.io.IOException;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * docs/CONFIGURATION.md is generated from the code: the parameter server's {@link Configuration} constants (their
 * javadoc and defaults), the recipe keys ({@link Recipe#KEYS}, described by the comments of cluster-conf/recipes),
 * {@code catena train}'s options ({@link TrainOptions}) and {@code catena prepare}'s ({@link PrepareOptions}).
 * This test fails when the committed file differs from what the code says; {@code -Dcatena.docs.write=true}
 * rewrites it.
 */
class ConfigReferenceTest {
    private static final Path ROOT = Path.of("..").toAbsolutePath().normalize();
    private static final Path DOC = ROOT.resolve("docs/CONFIGURATION.md");
    private static final Pattern PROP = Pattern.compile("public static final String (\\w+)_PROP = \"([^\"]+)\";");
    private static final Pattern JAVADOC = Pattern.compile("/\\*\\*(.*?)\\*/", Pattern.DOTALL);
    private static final Pattern RECIPE_LINE = Pattern.compile("^#?\\s*([a-z_0-9]+)\\s*=\\s*(.*)$");

    @Test
    void committedReferenceMatchesTheCode() throws Exception {
        String generated = generate();
        if (Boolean.getBoolean("catena.docs.write")) {
            Files.createDirectories(DOC.getParent());
            Path tmp = DOC.resolveSibling(DOC.getFileName() + ".tmp");
            Files.writeString(tmp, generated, StandardCharsets.UTF_8);
            Files.move(tmp, DOC, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        }
        assertTrue(Files.exists(DOC), DOC + " is missing; generate it: mvn -B -pl spark-trainer -am test -Dtest=ConfigReferenceTest "
                + "-Dsurefire.failIfNoSpecifiedTests=false -Dcatena.docs.write=true");
        assertEquals(generated, Files.readString(DOC), DOC + " is out of date with the code; regenerate it: mvn -B -pl spark-trainer -am "
                + "test -Dtest=ConfigReferenceTest -Dsurefire.failIfNoSpecifiedTests=false -Dcatena.docs.write=true");
    }

    static String generate() throws Exception {
        StringBuilder b = new StringBuilder();
        b.append("# Configuration reference\n\n")
                .append("Generated from the code by `spark-trainer/src/test/java/io/catena/trainer/ConfigReferenceTest.java` ")
                .append("(the build fails when this file and the code disagree). Four places hold settings:\n\n")
                .append("1. [Recipes](#recipes): the model and its training (`--recipe file.properties`, `--set key=value`).\n")
                .append("2. [`catena train`](#catena-train): the Spark job's options, also Spark conf keys `spark.catena.<option>`.\n")
                .append("3. [`catena prepare`](#catena-prepare): the data-pipeline job.\n")
                .append("4. [Parameter server](#parameter-server): `catena ps --conf file`, or JVM system properties.\n\n");
        recipes(b);
        b.append("## catena train\n\nEvery option is also the Spark conf key `").append(TrainOptions.PREFIX)
                .append("<option>` (for spark-defaults.conf); the command line wins.\n\n```\n")
                .append(TrainOptions.USAGE.stripTrailing()).append("\n```\n\n");
        b.append("## catena prepare\n\n```\n").append(PrepareOptions.USAGE.stripTrailing()).append("\n```\n\n");
        parameterServer(b);
        return b.toString();
    }

    /** Every recipe key with the comment above it in the first recipe of cluster-conf/recipes that shows it. */
    private static void recipes(StringBuilder b) throws IOException {
        Map<String, String[]> doc = new LinkedHashMap<>(); // key -> {comment, example value, file}
        List<Path> files;
        try (Stream<Path> s = Files.list(ROOT.resolve("cluster-conf/recipes"))) {
            // tiny.properties is the commented template; the others only fill keys it does not show
            files = s.filter(p -> p.toString().endsWith(".properties"))
                    .sorted(java.util.Comparator.comparing((Path p) -> !p.getFileName().toString().equals("tiny.properties"))
                            .thenComparing(Path::toString)).toList();
        }
        for (Path f : files) {
            List<String> comment = new ArrayList<>(); // one comment describes the run of key lines below it
            boolean afterKey = false;
            for (String line : Files.readAllLines(f, StandardCharsets.UTF_8)) {
                String l = line.strip();
                Matcher m = RECIPE_LINE.matcher(l);
                if (m.matches() && Recipe.KEYS.contains(m.group(1))) {
                    if (!comment.isEmpty()) {
                        doc.putIfAbsent(m.group(1), new String[]{String.join(" ", comment), m.group(2).strip(), f.getFileName().toString()});
                    }
                    afterKey = true;
                } else if (l.startsWith("#") && !l.startsWith("# ----")) {
                    if (afterKey) {
                        comment.clear();
                        afterKey = false;
                    }
                    comment.add(l.substring(1).strip());
                } else {
                    comment.clear();
                    afterKey = false;
                }
            }
        }
        Set<String> missing = new TreeSet<>(Recipe.KEYS);
        missing.removeAll(doc.keySet());
        assertTrue(missing.isEmpty(), "recipe keys with no comment in any cluster-conf/recipes/*.properties: " + missing
                + "; document each with a comment line above a (possibly commented-out) `key = value` line");
        b.append("## Recipes\n\nA recipe is a `.properties` file (`cluster-conf/recipes/`); unknown keys are errors and ")
                .append("`--set key=value` overrides any key. Every key is optional; the default is what a recipe without the key ")
                .append("gets (the values live beside their fields: `ColmConfig`, `TrainSettings`, `AdamW.Settings.defaults()`).\n\n")
                .append("| key | default | example | meaning |\n|---|---|---|---|\n");
        Map<String, String> defaults = recipeDefaults();
        for (String k : Recipe.KEYS) {
            String[] d = doc.get(k);
            b.append("| `").append(k).append("` | ").append(defaults.getOrDefault(k, "derived")).append(" | `").append(d[1])
                    .append("` | ").append(cell(d[0])).append(" |\n");
        }
        b.append('\n');
    }

    /** The value every plain key gets from a recipe that sets nothing, read off the objects the code builds from it. */
    private static Map<String, String> recipeDefaults() {
        Recipe empty = Recipe.of(Map.of(), "defaults");
        io.catena.model.ColmConfig c = empty.modelConfig(2);
        io.catena.model.train.TrainSettings t = empty.trainSettings();
        Map<String, Object> v = new LinkedHashMap<>();
        v.put("chains", c.chains().toString().replaceAll("[\\[\\] ]", ""));
        v.put("head_dim", c.headDim());
        v.put("layers", c.layers());
        v.put("ffn_mult", c.ffnMult());
        v.put("activation", c.activation().name().toLowerCase(java.util.Locale.ROOT));
        v.put("norm", c.norm().name().toLowerCase(java.util.Locale.ROOT));
        v.put("norm_eps", c.normEps());
        v.put("rope_theta", c.ropeTheta());
        v.put("variant", c.variant().name().toLowerCase(java.util.Locale.ROOT).replace('_', '-'));
        v.put("bias", c.bias());
        v.put("loss_weights", io.catena.model.ColmConfig.DEFAULT_LOSS_WEIGHTS);
        v.put("batch_size", t.batchSize());
        v.put("seq_len", t.seqLen());
        v.put("steps", t.steps());
        v.put("lr", t.lr());
        v.put("beta1", t.adamW().beta1());
        v.put("beta2", t.adamW().beta2());
        v.put("adam_eps", t.adamW().eps());
        v.put("weight_decay", t.adamW().weightDecay());
        v.put("clip_norm", t.adamW().clipNorm());
        v.put("seed", t.seed());
        v.put("eval_every", t.evalEvery());
        v.put("eval_batches", t.evalBatches());
        v.put("log_every", t.logEvery());
        v.put("ckpt_every", t.ckptEvery());
        v.put("val_fraction", t.valFraction());
        v.put("frozen_chains", t.frozenChains());
        v.put("growth_warmup_steps", t.adamW().growthWarmupSteps());
        v.put("growth_lr_rewarm", t.growthLrRewarm());
        v.put("growth_new_chain_lr", t.adamW().growthNewChainLr());
        v.put("precision", t.precision().key());
        Map<String, String> out = new LinkedHashMap<>();
        v.forEach((k, x) -> out.put(k, "`" + x + "`"));
        return out;
    }

    /** Every *_PROP constant with its javadoc and its *_DEFAULT (or "-" when there is none). */
    private static void parameterServer(StringBuilder b) throws Exception {
        String src = Files.readString(ROOT.resolve("parameter-server/src/main/java/io/catena/ps/Configuration.java"));
        b.append("## Parameter server\n\nProperties of `catena ps --conf <file>` (`cluster-conf/ps/ps.properties`), also read from ")
                .append("JVM system properties (`-Dkey=value`). An invalid value fails at launch naming the key.\n\n")
                .append("| property | default | meaning |\n|---|---|---|\n");
        Matcher m = PROP.matcher(src);
        Set<String> seen = new TreeSet<>();
        while (m.find()) {
            String name = m.group(1);
            String key = m.group(2);
            seen.add(key);
            String javadoc = javadocRightBefore(src, m.start());
            assertTrue(!javadoc.isEmpty(), "Configuration." + name + "_PROP (" + key + ") has no javadoc right above it; every"
                    + " setting must say what it does");
            b.append("| `").append(key).append("` | ").append(defaultOf(src, name)).append(" | ").append(cell(javadoc)).append(" |\n");
        }
        assertEquals(Configuration.KEYS, seen, "Configuration.KEYS and the *_PROP constants differ");
        b.append('\n');
    }

    /** The javadoc that ends just above pos (only whitespace between), or "". */
    private static String javadocRightBefore(String src, int pos) {
        Matcher j = JAVADOC.matcher(src.substring(0, pos));
        String last = "";
        while (j.find()) {
            last = src.substring(j.end(), pos).isBlank() ? j.group(1) : "";
        }
        return last.replaceAll("\\s*\\n\\s*\\*\\s?", " ").replaceAll("\\{@(?:link|code) #?([^}]+)}", "`$1`").strip();
    }

    /** The default's value; a default computed at run time (a method call in its initializer) is described, not printed. */
    private static String defaultOf(String src, String name) throws Exception {
        Field f;
        try {
            f = Configuration.class.getField(name + "_DEFAULT");
        } catch (NoSuchFieldException e) {
            return "-";
        }
        if (!Modifier.isStatic(f.getModifiers())) {
            return "-";
        }
        Matcher init = Pattern.compile("public static final \\S+ " + name + "_DEFAULT = ([^;]+);").matcher(src);
        if (init.find() && init.group(1).matches(".*[a-zA-Z_]\\w*\\(.*")) {
            String doc = javadocRightBefore(src, init.start());
            assertTrue(!doc.isEmpty(), name + "_DEFAULT is computed at run time; say what it is in a javadoc above it");
            return cell(doc);
        }
        Object v = f.get(null);
        return v instanceof String s && s.isEmpty() ? "(empty)" : cell("`" + v + "`");
    }

    private static String cell(String s) {
        return s.replace("|", "\\|");
    }
}
