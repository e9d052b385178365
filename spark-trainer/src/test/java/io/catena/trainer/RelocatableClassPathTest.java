package io.catena.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import javax.xml.parsers.DocumentBuilderFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.NodeList;

/**
 * Issue 17 finding 10: {@code target/classpath.txt} held absolute paths of the module jars, so a copied or moved checkout
 * ran the original's code. The class path files now name no path inside the checkout (the poms exclude the
 * {@code io.catena} modules) and the launchers add the module jars from their own location.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class RelocatableClassPathTest {
    /** Surefire runs in the module directory; the checkout's root is its parent. */
    private static final Path ROOT = Path.of("..").toAbsolutePath().normalize();
    private static final List<String> MODULES = List.of("chain-model", "data-pipeline", "parameter-server", "spark-trainer",
            "benchmarks");

    @Test
    void shouldKeepModuleJarsOutOfEveryClassPathFileTheBuildWrites() throws Exception {
        List<String> bad = new ArrayList<>();
        int files = 0;
        for (String module : MODULES) {
            Document pom = DocumentBuilderFactory.newInstance().newDocumentBuilder().parse(ROOT.resolve(module + "/pom.xml").toFile());
            NodeList executions = pom.getElementsByTagName("execution");
            for (int i = 0; i < executions.getLength(); i++) {
                Element e = (Element) executions.item(i);
                if (!e.getTextContent().contains("build-classpath")) {
                    continue;
                }
                files++;
                String out = text(e, "outputFile");
                String includeGroups = text(e, "includeGroupIds");
                String includeArtifacts = text(e, "includeArtifactIds");
                String excludeGroups = text(e, "excludeGroupIds");
                boolean onlyOthers = (includeGroups != null && !Arrays.asList(includeGroups.split(",")).contains("io.catena"))
                        || (includeArtifacts != null && MODULES.stream().noneMatch(includeArtifacts::contains));
                boolean excluded = excludeGroups != null && Arrays.asList(excludeGroups.split(",")).contains("io.catena");
                if (!onlyOthers && !excluded) {
                    bad.add(module + "/pom.xml " + out);
                }
            }
        }
        assertTrue(files >= 6, "found only " + files + " build-classpath executions");
        assertEquals(List.of(), bad, "class path files that would name this checkout's module jars by absolute path (a copied tree "
                + "would run the original's code); add <excludeGroupIds>io.catena</excludeGroupIds>");
    }

    /**
     * bin/catena in a copied tree (class path files as the build now writes them: Maven-repository jars only) puts the
     * copy's own module jars on every class path. A stand-in {@code java} on PATH records the command line.
     */
    @Test
    void shouldRunTheCopiedCheckoutsOwnModuleJars() throws Exception {
        Path copy = Files.createTempDirectory("catena-relocated-").resolve("moved tree");
        Files.createDirectories(copy.resolve("bin"));
        Files.copy(ROOT.resolve("bin/catena"), copy.resolve("bin/catena"), StandardCopyOption.REPLACE_EXISTING);
        Files.createDirectories(copy.resolve("cluster-conf/recipes"));
        Files.writeString(copy.resolve("pom.xml"), "<project/>\n");
        String m2 = "/nonexistent-m2/repository/org/example/lib/1.0/lib-1.0.jar";
        for (String module : List.of("chain-model", "data-pipeline", "parameter-server", "spark-trainer")) {
            Path target = Files.createDirectories(copy.resolve(module + "/target"));
            Files.createDirectories(copy.resolve(module + "/src/main"));
            Files.copy(ROOT.resolve(module + "/pom.xml"), copy.resolve(module + "/pom.xml"), StandardCopyOption.REPLACE_EXISTING);
            Files.writeString(target.resolve("classpath.txt"), m2 + "\n");
            if (module.equals("parameter-server")) {
                Files.writeString(target.resolve("logging-classpath.txt"), m2 + "\n");
            }
        }
        Path fakeBin = Files.createDirectories(copy.resolve("fake-bin"));
        Path argsFile = copy.resolve("java-args.txt");
        Path java = fakeBin.resolve("java");
        Files.writeString(java, "#!/usr/bin/env bash\nprintf '%s\\n' \"$@\" > \"" + argsFile + "\"\n");
        java.toFile().setExecutable(true);
        Path mvn = fakeBin.resolve("mvn");
        Files.writeString(mvn, "#!/usr/bin/env bash\necho 'mvn must not run: the copied tree is built' >&2; exit 3\n");
        mvn.toFile().setExecutable(true);
        // the jars last, so they are newer than every source
        for (String module : List.of("data-pipeline", "parameter-server", "spark-trainer", "chain-model")) {
            Files.writeString(copy.resolve(module + "/target/" + module + "-0.1.0-SNAPSHOT.jar"), "");
        }

        String[][] commands = {{"prepare", "data-pipeline", "chain-model"},
                {"train", "spark-trainer", "chain-model", "data-pipeline", "parameter-server"},
                {"retrain", "spark-trainer", "chain-model", "data-pipeline", "parameter-server"},
                {"ps", "parameter-server", "chain-model"},
                {"inspect", "chain-model", "data-pipeline"}};
        for (String[] c : commands) {
            Files.deleteIfExists(argsFile);
            ProcessBuilder pb = new ProcessBuilder("bash", copy.resolve("bin/catena").toString(), c[0], "--help")
                    .redirectErrorStream(true);
            pb.environment().put("PATH", fakeBin + ":" + System.getenv("PATH"));
            pb.environment().remove("CATENA_JAVA_OPTS");
            Process p = pb.start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(p.waitFor(30, TimeUnit.SECONDS), "bin/catena " + c[0] + " hangs");
            assertEquals(0, p.exitValue(), "bin/catena " + c[0] + ": " + out);
            List<String> args = Files.readAllLines(argsFile);
            int cp = args.indexOf("-cp");
            assertTrue(cp >= 0, "bin/catena " + c[0] + " ran java without -cp: " + args);
            List<String> entries = Arrays.asList(args.get(cp + 1).split(":"));
            for (int i = 1; i < c.length; i++) {
                String jar = copy.resolve(c[i] + "/target/" + c[i] + "-0.1.0-SNAPSHOT.jar").toString();
                assertTrue(entries.contains(jar), "bin/catena " + c[0] + " in a copied tree must run the copy's " + c[i] + " jar " + jar
                        + "; class path: " + entries);
            }
            for (String e : entries) {
                assertFalse(e.startsWith(ROOT + "/") && !e.startsWith(copy + "/"), "bin/catena " + c[0] + " in a copied tree names the original checkout: " + e);
            }
        }
    }

    private static String text(Element e, String tag) {
        NodeList l = e.getElementsByTagName(tag);
        return l.getLength() == 0 ? null : l.item(0).getTextContent().trim();
    }
}
