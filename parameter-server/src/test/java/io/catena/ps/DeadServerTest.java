package io.catena.ps;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.Params;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * Issue 16: a worker blocked on a server that died sat for the whole request timeout (120 s in a job) with no word; it
 * must notice within seconds and say that the server is gone and how to go on.
 */
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class DeadServerTest {

    @Test
    void aWaitingClientNoticesADeadServerWithinSeconds() throws Exception {
        Path dir = PsTestSupport.testDir("dead-server");
        ParameterServer.Context sctx = PsTestSupport.server(dir, 2, SyncPolicy.bsp()); // BSP, 2 workers: a pull of v1 waits
        ParameterServer ps = ParameterServer.launch(sctx);
        try (ParameterServerClient c = ParameterServerClient.connect(PsTestSupport.client(sctx, 0).requestTimeoutMs(600_000))) {
            Params p = new Params(c.layout(), DataType.FLOAT);
            Thread killer = new Thread(() -> {
                try {
                    Thread.sleep(1_000);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                ps.close(); // the server goes away while the client waits
            });
            killer.start();
            // the request timeout is 10 minutes: only the dead-server check (not a timeout) ends this pull inside the test's bound
            ParameterServerGoneException e = assertThrows(ParameterServerGoneException.class, () -> c.pull(1, p, 600_000));
            killer.join();
            assertTrue(e.getMessage().contains("is gone") && e.getMessage().contains("--restore"), e.getMessage());
        } finally {
            ps.close();
        }
    }
}
