package io.catena.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.trainer.demo.Demo;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import javax.imageio.ImageIO;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;

/** catena demo end to end, shortened: Spark prepare -> dp=2 + parameter server -> growth -> eval -> generate -> report. */
class DemoTest {

    @Test
    void demoWritesAReportWhoseNumbersAndChartsComeFromTheRun() throws Exception {
        Path out = TrainerTestSupport.testDir("demo");
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        PrintStream ps = new PrintStream(new TrainerTestSupport.TeeStream(log, System.out), true, StandardCharsets.UTF_8);
        SparkSession spark = SparkSession.builder().sparkContext(TrainerTestSupport.spark().sc()).getOrCreate();
        Demo.Outcome o = new Demo(new Demo.Settings(out, 40, 20, true, 2, 400, 12), ps).run(spark);

        assertEquals(40, o.train().finalStep());
        assertEquals(3, o.train().chains().size(), "grown from 2 to 3 chains");
        assertNotNull(o.beforeGrowth(), "an evaluation at the growth step (before the new chain existed)");
        assertEquals(2, o.beforeGrowth().length);
        assertEquals(3, o.scales().size());
        double firstLoss = o.train().trainLoss().get(o.train().trainLoss().firstKey())[0];
        for (Demo.ScaleRow r : o.scales()) {
            assertTrue(Double.isFinite(r.valLoss()) && r.valLoss() < firstLoss, "k=" + r.k() + " val loss " + r.valLoss()
                    + " below the first train loss " + firstLoss);
            assertTrue(r.sample().startsWith("And God said") && r.sample().length() > "And God said".length(), r.sample());
            assertTrue(r.decodeTokensPerSecond() > 0);
        }
        assertTrue(o.scales().get(0).params() < o.scales().get(1).params() && o.scales().get(1).params() < o.scales().get(2).params());
        // old chains were frozen: the old scales' validation loss after growth is the one measured before it
        for (int k = 1; k <= 2; k++) {
            assertEquals(o.beforeGrowth()[k - 1], o.scales().get(k - 1).valLoss(), 1e-4, "frozen scale k=" + k);
        }

        String html = Files.readString(o.report());
        for (Path png : o.charts()) {
            BufferedImage img = ImageIO.read(png.toFile());
            assertNotNull(img, png + " is a PNG");
            assertEquals(900, img.getWidth());
            assertTrue(html.contains("src=\"" + png.getFileName() + "\""), "report shows " + png.getFileName());
        }
        for (Demo.ScaleRow r : o.scales()) {
            assertTrue(html.contains(String.format(java.util.Locale.ROOT, "%.4f", r.valLoss())), "report holds k=" + r.k() + "'s loss");
        }
        assertTrue(Files.readString(out.resolve("summary.txt")).contains("k=3"));
        assertTrue(Files.readString(out.resolve("metrics.jsonl")).contains("\"tok_per_s\""));
        assertTrue(Files.exists(out.resolve("dataset/manifest.json")));
    }
}
