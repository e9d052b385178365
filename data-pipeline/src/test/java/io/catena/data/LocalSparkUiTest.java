package io.catena.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.apache.spark.SparkConf;
import org.junit.jupiter.api.Test;

/** A local run's Spark UI never listens on every interface unless the user asks for it. */
class LocalSparkUiTest {

    private static SparkConf conf(String master) {
        return new SparkConf(false).setMaster(master);
    }

    @Test
    void shouldSwitchTheUiOffForALocalRunThatWouldServeItOnAllInterfaces() {
        SparkConf c = conf("local[2]");
        String note = LocalSparkUi.apply(c, Map.of());
        assertEquals("false", c.get("spark.ui.enabled"));
        assertTrue(note.contains("SPARK_LOCAL_IP=127.0.0.1") && note.contains("spark.ui.enabled=true"), note);
        SparkConf wildcard = conf("local[*]");
        LocalSparkUi.apply(wildcard, Map.of("SPARK_LOCAL_IP", "0.0.0.0"));
        assertEquals("false", wildcard.get("spark.ui.enabled"));
    }

    @Test
    void shouldKeepTheUiOnLoopbackOrWhenTheUserDecided() {
        SparkConf loop = conf("local[2]");
        assertNull(LocalSparkUi.apply(loop, Map.of("SPARK_LOCAL_IP", "127.0.0.1")));
        assertFalse(loop.contains("spark.ui.enabled"), "bound to loopback: stays on");
        SparkConf asked = conf("local[2]").set("spark.ui.enabled", "true");
        assertNull(LocalSparkUi.apply(asked, Map.of()));
        assertEquals("true", asked.get("spark.ui.enabled"));
        SparkConf cluster = conf("spark://10.0.0.5:7077");
        assertNull(LocalSparkUi.apply(cluster, Map.of()));
        assertFalse(cluster.contains("spark.ui.enabled"), "a cluster's UI is the cluster's business");
    }
}
