package io.catena.ps;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Safe defaults of the embedded MediaDriver's directory: owner-only, removed on close, a dead process's swept. */
class AeronDirsTest {

    @Test
    void driverDirectoryIsOwnerOnlyAndRemovedOnClose() throws Exception {
        Path parent = PsTestSupport.testDir("aeron-dirs");
        Path dir = parent.resolve("catena-ps-" + AeronDirs.user() + "-" + ProcessHandle.current().pid() + "-t");
        SharedDriver d = SharedDriver.acquire(dir.toString(), 64 * 1024, "backoff");
        try {
            assertTrue(Files.isDirectory(dir));
            assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(dir)),
                    "the Aeron directory holds the job's traffic: owner only");
        } finally {
            d.close();
        }
        assertFalse(Files.exists(dir), "a closed driver leaves no directory behind");
    }

    @Test
    void staleDirectoriesOfDeadProcessesAreSweptLiveOnesKept() throws Exception {
        Path parent = PsTestSupport.testDir("aeron-sweep");
        Process gone = new ProcessBuilder("true").start();
        gone.waitFor();
        String user = AeronDirs.user();
        Path dead = Files.createDirectories(parent.resolve("catena-ps-" + user + "-" + gone.pid() + "-job"));
        Files.writeString(dead.resolve("cnc.dat"), "x");
        Path live = Files.createDirectories(parent.resolve("catena-ps-" + user + "-" + ProcessHandle.current().pid()));
        Path otherUser = Files.createDirectories(parent.resolve("catena-ps-someone" + user + "-" + gone.pid()));
        Path unrelated = Files.createDirectories(parent.resolve("not-catena-" + gone.pid()));
        List<Path> removed = AeronDirs.sweepStale(parent, user);
        assertEquals(List.of(dead), removed);
        assertFalse(Files.exists(dead));
        assertTrue(Files.exists(live) && Files.exists(otherUser) && Files.exists(unrelated));
    }
}
