package io.catena.trainer.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.aeron.Aeron;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import io.catena.model.kernel.Mat;
import io.catena.model.pipeline.StageLink.Kind;
import io.catena.model.pipeline.StageLinkTimeoutException;
import java.util.Random;
import org.agrona.CloseHelper;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;

/** The Aeron stage link over UDP loopback with a real embedded media driver: exact tensors, chunking, tags, timeouts. */
class AeronStageLinkTest {
    static final String UDP = "mtu=65504|so-sndbuf=4m|so-rcvbuf=4m|rcv-wnd=4m";
    static MediaDriver driver;
    static Aeron aeron;

    @BeforeAll
    static void start() {
        String dir = (new java.io.File("/dev/shm").isDirectory() ? "/dev/shm" : System.getProperty("java.io.tmpdir"))
                + "/catena-link-test-" + ProcessHandle.current().pid();
        driver = MediaDriver.launchEmbedded(new MediaDriver.Context().aeronDirectoryName(dir).dirDeleteOnStart(true)
                .dirDeleteOnShutdown(true).threadingMode(ThreadingMode.SHARED));
        aeron = Aeron.connect(new Aeron.Context().aeronDirectoryName(driver.aeronDirectoryName()));
    }

    @AfterAll
    static void stop() {
        CloseHelper.quietCloseAll(aeron, driver);
    }

    record Pair(AeronStageLink up, AeronStageLink down) implements AutoCloseable {
        @Override
        public void close() {
            up.close();
            down.close();
        }
    }

    static Pair connect(long upToken, long downToken) {
        AeronStageLink up = AeronStageLink.open(aeron, "127.0.0.1", UDP, 0, true, upToken, () -> { });
        AeronStageLink down = AeronStageLink.open(aeron, "127.0.0.1", UDP, 1, false, downToken, () -> { });
        up.connect(down.endpoint(5_000));
        down.connect(up.endpoint(5_000));
        up.awaitConnected(10_000);
        down.awaitConnected(10_000);
        return new Pair(up, down);
    }

    static Mat random(int rows, int cols, long seed) {
        Mat m = Mat.allocate(DataType.FLOAT, rows, cols + 3).cols(1, cols); // strided: ld = cols + 3
        Random r = new Random(seed);
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) {
                m.set(i, j, (float) r.nextGaussian());
            }
        }
        return m;
    }

    static void assertSame(Mat a, Mat b) {
        for (int i = 0; i < a.rows; i++) {
            for (int j = 0; j < a.cols; j++) {
                assertEquals(a.get(i, j), b.get(i, j), 0.0, "element " + i + "," + j);
            }
        }
    }

    @Test
    void shouldCarryActivationsDownAndGradientsUpExactlyInChunks() {
        try (Pair p = connect(42, 42)) {
            // 1200 x 128 floats = 600 KiB: more than one message of a 4 MiB term (max 512 KiB)
            for (int micro = 0; micro < 3; micro++) {
                Mat act = random(1200, 128, micro);
                p.up().send(Kind.ACTIVATION, 5, micro, act, 5_000);
                Mat got = Mat.allocate(DataType.FLOAT, 1200, 128);
                p.down().receive(Kind.ACTIVATION, 5, micro, got, 5_000);
                assertSame(act, got);
            }
            Mat grad = random(64, 32, 9);
            p.down().send(Kind.GRADIENT, 5, 2, grad, 5_000);
            Mat got = Mat.allocate(DataType.FLOAT, 64, 32).cols(0, 32);
            p.up().receive(Kind.GRADIENT, 5, 2, got, 5_000);
            assertSame(grad, got);
        }
    }

    @Test
    void shouldDropLeftoversOfAnAbortedStepAndRefuseAnotherSchedule() {
        try (Pair p = connect(7, 7)) {
            p.up().send(Kind.ACTIVATION, 3, 0, random(8, 8, 1), 5_000); // step 3 aborted: never received
            Mat step4 = random(8, 8, 2);
            p.up().send(Kind.ACTIVATION, 4, 0, step4, 5_000);
            Mat got = Mat.allocate(DataType.FLOAT, 8, 8);
            p.down().receive(Kind.ACTIVATION, 4, 0, got, 5_000);
            assertSame(step4, got);

            p.up().send(Kind.ACTIVATION, 4, 2, random(8, 8, 3), 5_000);
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> p.down().receive(Kind.ACTIVATION, 4, 1, got, 5_000));
            assertTrue(e.getMessage().contains("micro-batch 1") && e.getMessage().contains("micro-batch 2")
                    && e.getMessage().contains("different schedules"), e.getMessage());

            p.up().send(Kind.ACTIVATION, 5, 0, random(8, 9, 4), 5_000);
            IllegalArgumentException shape = assertThrows(IllegalArgumentException.class,
                    () -> p.down().receive(Kind.ACTIVATION, 5, 0, got, 5_000));
            assertTrue(shape.getMessage().contains("8x9") && shape.getMessage().contains("8x8"), shape.getMessage());
            assertThrows(IllegalArgumentException.class, () -> p.down().send(Kind.ACTIVATION, 6, 0, got, 1_000),
                    "activations flow downstream only");
        }
    }

    @Test
    void shouldTimeOutNamingTheNeighbourStepAndMicroBatch() {
        try (Pair p = connect(1, 1)) {
            Mat into = Mat.allocate(DataType.FLOAT, 4, 4);
            StageLinkTimeoutException e = assertThrows(StageLinkTimeoutException.class,
                    () -> p.up().receive(Kind.GRADIENT, 11, 3, into, 300));
            assertTrue(e.getMessage().contains("stage 0 received no gradient from stage 1 for step 11, micro-batch 3 within 300 ms"),
                    e.getMessage());
        }
    }

    @Test
    void shouldRefuseMessagesOfAnotherJob() {
        try (Pair p = connect(100, 200)) {
            p.up().send(Kind.ACTIVATION, 1, 0, random(4, 4, 1), 5_000);
            Mat into = Mat.allocate(DataType.FLOAT, 4, 4);
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> p.down().receive(Kind.ACTIVATION, 1, 0, into, 5_000));
            assertTrue(e.getMessage().contains("job token"), e.getMessage());
        }
    }

    @Test
    void shouldStopWaitingWhenTheTaskIsCancelled() {
        AeronStageLink up = AeronStageLink.open(aeron, "127.0.0.1", UDP, 0, true, 5, () -> {
            throw new IllegalStateException("task cancelled");
        });
        try (up) {
            up.connect("127.0.0.1:9"); // nobody there
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> up.awaitConnected(10_000));
            assertEquals("task cancelled", e.getMessage());
        }
    }
}
