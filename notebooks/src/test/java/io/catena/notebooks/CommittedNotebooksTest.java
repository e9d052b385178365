package io.catena.notebooks;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The notebooks are committed executed, so that they read on GitHub without a run: every code cell ran in order,
 * none failed, at least one plot, and small (no embedded data sets). {@link NotebooksTest} re-executes them.
 */
class CommittedNotebooksTest {
    static final long MAX_BYTES = 600_000;

    private final Path module = Path.of(System.getProperty("catena.notebooks.dir", "")).toAbsolutePath().normalize();

    @Test
    void committedNotebooksHoldTheirOutputs() throws Exception {
        for (String name : NotebooksTest.EXPECTED) {
            Path file = module.resolve(name);
            long size = Files.size(file);
            assertTrue(size <= MAX_BYTES, name + " is " + size + " bytes (at most " + MAX_BYTES + "): keep outputs small");
            JsonNode nb = new ObjectMapper().readTree(file.toFile());
            List<String> problems = new ArrayList<>();
            int plots = 0;
            int expected = 1;
            for (JsonNode cell : nb.path("cells")) {
                if (!"code".equals(cell.path("cell_type").asText())) {
                    continue;
                }
                JsonNode count = cell.path("execution_count");
                if (!count.isNumber() || count.asInt() != expected) {
                    problems.add("code cell " + expected + " has execution_count " + count + " (not executed in order)");
                }
                expected++;
                for (JsonNode out : cell.path("outputs")) {
                    if ("error".equals(out.path("output_type").asText())) {
                        problems.add("error output " + out.path("ename").asText() + ": " + out.path("evalue").asText());
                    }
                    if (out.path("data").has("image/png")) {
                        plots++;
                    }
                }
            }
            if (plots == 0) {
                problems.add("no plot output");
            }
            assertTrue(problems.isEmpty(), name + " is not committed executed " + problems + "; refresh with NotebooksTest, then "
                    + "cp notebooks/target/executed/*.ipynb notebooks/ (notebooks/README.md)");
        }
    }
}
