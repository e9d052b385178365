package io.catena.notebooks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Executes every notebook of notebooks/ headless ({@code jupyter nbconvert --to notebook --execute}) on
 * the outputs of a small real run ({@link SmallRun}). A notebook passes when every cell ran (its
 * {@code assert}s on the numbers included) and it drew at least one plot. Executed copies and their logs
 * stay in notebooks/target/executed/ for inspection.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class NotebooksTest {
    static final List<String> EXPECTED = List.of("01-corpus-and-tokenizer.ipynb", "02-training-curves.ipynb",
            "03-elastic-inference.ipynb", "04-checkpoint-with-numpy.ipynb");
    static final String APT = "apt-get install -y --no-install-recommends jupyter-nbconvert python3-nbconvert python3-ipykernel "
            + "python3-matplotlib python3-pandas python3-numpy python3-torch (or run .ci/run, which installs them)";
    private static final long NOTEBOOK_TIMEOUT_S = 300;
    private static final int CELL_TIMEOUT_S = 240;

    private final Path module = Path.of(System.getProperty("catena.notebooks.dir", "")).toAbsolutePath().normalize();
    private final Path run = module.resolve("target/run");
    private final Path executed = module.resolve("target/executed");
    private String jupyter;

    @BeforeAll
    void produceRun() throws IOException, InterruptedException {
        jupyter = findJupyter(); // before the run: a machine without Jupyter fails in seconds, not after training
        long t0 = System.nanoTime();
        SmallRun.produce(run);
        System.out.printf("small run produced in %.1f s under %s%n", (System.nanoTime() - t0) / 1e9, run);
        SmallRun.deleteRecursively(executed);
        Files.createDirectories(executed);
    }

    Stream<String> notebooks() throws IOException {
        List<String> found;
        try (Stream<Path> s = Files.list(module)) {
            found = s.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".ipynb")).sorted().toList();
        }
        assertTrue(found.containsAll(EXPECTED), "notebooks/ should hold " + EXPECTED + ", found " + found);
        return found.stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("notebooks")
    void shouldExecuteNotebookOnASmallRun(String name) throws Exception {
        String stem = name.substring(0, name.length() - ".ipynb".length());
        Path log = executed.resolve(stem + ".log");
        // the committed notebooks hold outputs: clear them first, so that only what this execution produced counts
        ProcessBuilder pb = new ProcessBuilder(jupyter, "nbconvert", "--to", "notebook", "--execute",
                "--ClearOutputPreprocessor.enabled=True", "--ExecutePreprocessor.timeout=" + CELL_TIMEOUT_S, "--ExecutePreprocessor.kernel_name=python3",
                "--output-dir", executed.toString(), "--output", stem, module.resolve(name).toString())
                .directory(module.toFile()).redirectErrorStream(true).redirectOutput(log.toFile());
        Map<String, String> env = pb.environment();
        env.put("CATENA_RUN_DIR", run.toString());
        env.put("CATENA_JAVA_LOGITS", run.resolve("java-logits").toString()); // set: notebook 04 must compare, not skip
        env.put("CATENA_REPO", module.getParent().toString());
        env.put("OMP_WAIT_POLICY", "passive");
        env.put("PYTHONDONTWRITEBYTECODE", "1");
        env.put("PYDEVD_DISABLE_FILE_VALIDATION", "1"); // silences debugpy's frozen-modules warning on every kernel start
        env.put("JUPYTER_RUNTIME_DIR", module.resolve("target/jupyter-runtime").toString());
        long t0 = System.nanoTime();
        Process p = pb.start();
        if (!p.waitFor(NOTEBOOK_TIMEOUT_S, TimeUnit.SECONDS)) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
            fail(name + " did not finish in " + NOTEBOOK_TIMEOUT_S + " s; log " + log + ":\n" + tail(log));
        }
        System.out.printf("%s executed in %.1f s%n", name, (System.nanoTime() - t0) / 1e9);
        String text = tail(log);
        String hint = text.contains("ModuleNotFoundError") || text.contains("No such kernel") ? "\nmissing Python packages? " + APT : "";
        assertEquals(0, p.exitValue(), name + " failed (log " + log + "; executed copy, if any, in " + executed + "):\n" + text + hint);

        JsonNode nb = new ObjectMapper().readTree(executed.resolve(name).toFile());
        int plots = 0;
        List<String> errors = new ArrayList<>();
        for (JsonNode cell : nb.path("cells")) {
            if ("code".equals(cell.path("cell_type").asText()) && !cell.path("execution_count").isNumber()) {
                errors.add("a code cell did not run: " + cell.path("source"));
            }
            for (JsonNode out : cell.path("outputs")) {
                if ("error".equals(out.path("output_type").asText())) {
                    errors.add(out.path("ename").asText() + ": " + out.path("evalue").asText());
                }
                if (out.path("data").has("image/png")) {
                    plots++;
                }
            }
        }
        assertTrue(errors.isEmpty(), name + ": error outputs " + errors);
        assertTrue(plots > 0, name + " drew no plot (no image/png output in " + executed.resolve(name) + ")");
    }

    /** $CATENA_JUPYTER if set, else /usr/bin/jupyter (Debian's, whose kernel is /usr/bin/python3), else jupyter on PATH. */
    private static String findJupyter() throws IOException, InterruptedException {
        String explicit = System.getenv("CATENA_JUPYTER");
        List<String> candidates = new ArrayList<>();
        if (explicit != null && !explicit.isBlank()) {
            candidates.add(explicit);
        } else {
            candidates.add("/usr/bin/jupyter");
            for (String dir : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
                if (!dir.isEmpty()) {
                    candidates.add(Path.of(dir, "jupyter").toString());
                }
            }
        }
        for (String c : candidates) {
            if (Files.isExecutable(Path.of(c))) {
                Process p = new ProcessBuilder(c, "nbconvert", "--version").redirectErrorStream(true).start();
                String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                if (p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0) {
                    return c;
                }
                System.out.println(c + " nbconvert --version failed: " + out.strip());
            }
        }
        fail("no working `jupyter nbconvert` (looked for " + (explicit != null && !explicit.isBlank() ? "CATENA_JUPYTER=" + explicit
                : "/usr/bin/jupyter and jupyter on PATH") + "); the notebook tests need it: " + APT);
        return null;
    }

    private static String tail(Path log) throws IOException {
        if (!Files.exists(log)) {
            return "(no log)";
        }
        String s = Files.readString(log, StandardCharsets.UTF_8).replaceAll("\u001B\\[[;\\d]*m", ""); // IPython's colours
        return s.length() > 6000 ? "...\n" + s.substring(s.length() - 6000) : s;
    }
}
