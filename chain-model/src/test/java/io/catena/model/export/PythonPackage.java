package io.catena.model.export;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs the exported-model Python package (chain-model/python/catena_colm) in a subprocess, as a user would: Debian's
 * python3 with python3-numpy (what .ci/run installs), or $CATENA_PYTHON. Fails with the package to install when
 * python3 or numpy is missing, never skips: an export nobody can load is the bug this catches.
 */
final class PythonPackage {
    static final Path PACKAGE_ROOT = Path.of("python").toAbsolutePath();
    static final Path CHECK_SCRIPT = Path.of("src/test/python/export_check.py").toAbsolutePath();
    private static final long TIMEOUT_S = 180;
    private static String python;

    private PythonPackage() {
    }

    /** $CATENA_PYTHON, else /usr/bin/python3 (Debian's, where apt installs python3-numpy), else python3 on PATH. */
    static synchronized String python() throws IOException, InterruptedException {
        if (python == null) {
            String env = System.getenv("CATENA_PYTHON");
            String candidate = env != null && !env.isBlank() ? env
                    : Files.isExecutable(Path.of("/usr/bin/python3")) ? "/usr/bin/python3" : "python3";
            Result probe;
            try {
                probe = exec(List.of(candidate, "-c", "import numpy; print(numpy.__version__)"));
            } catch (IOException e) {
                fail("cannot run " + candidate + " (" + e.getMessage() + "): the export test needs python3 with numpy; install the "
                        + "Debian packages python3 and python3-numpy (apt-get install -y python3-numpy, as .ci/run does) or set "
                        + "CATENA_PYTHON to a python3 that has numpy");
                throw e;
            }
            if (probe.code() != 0) {
                fail(candidate + " cannot import numpy: install the Debian package python3-numpy (apt-get install -y python3-numpy,"
                        + " as .ci/run does) or set CATENA_PYTHON to a python3 that has numpy. Output:\n" + probe.output());
            }
            python = candidate;
        }
        return python;
    }

    record Result(int code, String output) {
    }

    /** Runs {@code python3 args...} with the package on PYTHONPATH; returns exit code and output (stdout + stderr). */
    static Result run(String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>();
        cmd.add(python());
        cmd.addAll(List.of(args));
        return exec(cmd);
    }

    /** Like {@link #run} but fails the test on a non-zero exit; returns the output. */
    static String ok(String... args) throws IOException, InterruptedException {
        Result r = run(args);
        assertEquals(0, r.code(), "python3 " + String.join(" ", args) + " failed:\n" + r.output());
        return r.output();
    }

    private static Result exec(List<String> cmd) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        pb.environment().put("PYTHONPATH", PACKAGE_ROOT.toString());
        pb.environment().put("PYTHONDONTWRITEBYTECODE", "1"); // no __pycache__ in the source tree
        pb.environment().put("PYTHONIOENCODING", "utf-8");
        pb.environment().put("OMP_NUM_THREADS", "1"); // numpy's BLAS must not compete with the build's JVMs for cores
        pb.environment().put("OPENBLAS_NUM_THREADS", "1");
        Path log = Files.createTempFile("python-", ".log"); // a file, not a pipe: a hung child cannot block the read
        try {
            Process p = pb.redirectOutput(log.toFile()).start();
            if (!p.waitFor(TIMEOUT_S, TimeUnit.SECONDS)) {
                p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
                fail(String.join(" ", cmd) + " did not finish in " + TIMEOUT_S + " s:\n" + Files.readString(log, StandardCharsets.UTF_8));
            }
            return new Result(p.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
        } finally {
            Files.deleteIfExists(log);
        }
    }
}
