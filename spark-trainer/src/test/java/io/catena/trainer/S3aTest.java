package io.catena.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.data.manifest.Manifest;
import io.catena.data.prepare.PrepareJob;
import io.catena.data.prepare.PrepareOptions;
import io.catena.model.io.CheckpointStore;
import io.catena.model.io.TrainingState;
import io.catena.model.io.storage.HadoopStorage;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.reflect.Method;
import java.net.URI;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.spark.SparkEnv;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * s3a:// for real: a real S3-compatible server (S3Proxy on jclouds' in-memory "transient" blob store, on 127.0.0.1)
 * behind hadoop-aws and the AWS SDK v2 that bin/catena puts on the class path. The corpus is uploaded through S3A,
 * {@code PrepareJob} reads it from s3a:// and writes the dataset there, {@code catena train} (TrainJob, local mode,
 * dp 2) trains on that s3a:// dataset with checkpoints under s3a://, and a {@code --resume} run continues from the
 * saved step. The server's own listing (not S3A's) proves the objects are in the bucket.
 *
 * <p>S3Proxy's jar-with-dependencies carries unrelocated Jetty, Guava, Jackson, Netty, logback and an AWS SDK that clash
 * with Spark's: pom.xml copies it to target/s3proxy/ (never on the test class path) and this test loads it in a class
 * loader whose parent is the platform loader, so nothing of it meets Spark's classes; it talks to S3A only over HTTP.
 */
@Timeout(value = 240, unit = TimeUnit.SECONDS)
class S3aTest {
    private static final String BUCKET = "catena-s3a-test";
    private static final String ACCESS = "catena-access";
    private static final String SECRET = "catena-secret-key";

    private static URLClassLoader proxyLoader;
    private static Object proxy;
    private static Object blobStore;
    private static Object blobStoreContext;
    private static int port;

    @BeforeAll
    static void startServer() throws Exception {
        Path jar = Path.of(System.getProperty("catena.s3proxy.jar", "target/s3proxy/s3proxy.jar"));
        assertTrue(Files.isRegularFile(jar), jar + " missing: the s3proxy-jar execution of spark-trainer/pom.xml copies it");
        // S3Proxy logs through its own logback (in its loader only); keep logback's start-up status report off the console
        System.setProperty("logback.statusListenerClass", "ch.qos.logback.core.status.NopStatusListener");
        proxyLoader = new URLClassLoader("s3proxy", new URL[] {jar.toUri().toURL()}, ClassLoader.getPlatformClassLoader());
        Thread t = Thread.currentThread();
        ClassLoader before = t.getContextClassLoader();
        t.setContextClassLoader(proxyLoader);
        try {
            Class<?> ctxBuilder = proxyLoader.loadClass("org.jclouds.ContextBuilder");
            Class<?> bsCtx = proxyLoader.loadClass("org.jclouds.blobstore.BlobStoreContext");
            Object b = ctxBuilder.getMethod("newBuilder", String.class).invoke(null, "transient");
            b = ctxBuilder.getMethod("credentials", String.class, String.class).invoke(b, "identity", "credential");
            blobStoreContext = ctxBuilder.getMethod("build", Class.class).invoke(b, bsCtx);
            blobStore = bsCtx.getMethod("getBlobStore").invoke(blobStoreContext);
            Class<?> location = proxyLoader.loadClass("org.jclouds.domain.Location");
            Class<?> bsClass = proxyLoader.loadClass("org.jclouds.blobstore.BlobStore");
            bsClass.getMethod("createContainerInLocation", location, String.class).invoke(blobStore, null, BUCKET);

            Class<?> s3proxy = proxyLoader.loadClass("org.gaul.s3proxy.S3Proxy");
            Class<?> builderClass = proxyLoader.loadClass("org.gaul.s3proxy.S3Proxy$Builder");
            Class<?> authType = proxyLoader.loadClass("org.gaul.s3proxy.AuthenticationType");
            Object builder = s3proxy.getMethod("builder").invoke(null);
            builderClass.getMethod("blobStore", bsClass).invoke(builder, blobStore);
            builderClass.getMethod("endpoint", URI.class).invoke(builder, URI.create("http://127.0.0.1:0"));
            @SuppressWarnings({"unchecked", "rawtypes"})
            Object v4 = Enum.valueOf((Class) authType, "AWS_V2_OR_V4");
            builderClass.getMethod("awsAuthentication", authType, String.class, String.class).invoke(builder, v4, ACCESS, SECRET);
            builderClass.getMethod("jettyMaxThreads", int.class).invoke(builder, 16);
            proxy = builderClass.getMethod("build").invoke(builder);
            s3proxy.getMethod("start").invoke(proxy);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (!"STARTED".equals(s3proxy.getMethod("getState").invoke(proxy))) {
                assertTrue(System.nanoTime() < deadline, "S3Proxy did not start within 30 s");
                Thread.sleep(20);
            }
            port = (int) s3proxy.getMethod("getPort").invoke(proxy);
        } finally {
            t.setContextClassLoader(before);
        }
        assertTrue(port > 0, "S3Proxy port " + port);
        System.out.println("S3Proxy on http://127.0.0.1:" + port + " (transient blob store), bucket " + BUCKET);

        // What --conf spark.hadoop.fs.s3a.* gives a real job: the driver's Hadoop configuration and the application's
        // SparkConf (executors build their readers' configuration from it). The shared test context already runs, so
        // both are set here, per bucket, so that no other test's s3a:// (there is none) would be touched.
        Configuration hconf = TrainerTestSupport.spark().hadoopConfiguration();
        for (Map.Entry<String, String> e : s3aSettings("fs.s3a.bucket." + BUCKET + ".").entrySet()) {
            hconf.set(e.getKey(), e.getValue());
            SparkEnv.get().conf().set("spark.hadoop." + e.getKey(), e.getValue());
        }
    }

    /** The settings README "S3 / S3A" documents, here for one bucket: endpoint, path-style access, plain HTTP, keys. */
    static Map<String, String> s3aSettings(String prefix) {
        return Map.ofEntries(
                Map.entry(prefix + "endpoint", "http://127.0.0.1:" + port),
                Map.entry(prefix + "endpoint.region", "us-east-1"),
                Map.entry(prefix + "path.style.access", "true"),
                Map.entry(prefix + "connection.ssl.enabled", "false"),
                Map.entry(prefix + "access.key", ACCESS),
                Map.entry(prefix + "secret.key", SECRET),
                Map.entry(prefix + "aws.credentials.provider", "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"),
                // fail in seconds, not minutes, when the server is not there
                Map.entry(prefix + "attempts.maximum", "2"),
                Map.entry(prefix + "retry.limit", "2"),
                Map.entry(prefix + "connection.establish.timeout", "5s"),
                Map.entry(prefix + "connection.timeout", "30s"));
    }

    @AfterAll
    static void stopServer() throws Exception {
        if (proxy != null) {
            proxy.getClass().getMethod("stop").invoke(proxy);
        }
        if (blobStoreContext != null) {
            ((AutoCloseable) blobStoreContext).close();
        }
        if (proxyLoader != null) {
            proxyLoader.close();
        }
    }

    /** Every object name in the bucket, as the server lists it (jclouds' own listing, not S3A's). */
    static TreeSet<String> bucketListing() throws Exception {
        Class<?> opts = proxyLoader.loadClass("org.jclouds.blobstore.options.ListContainerOptions");
        Object recursive = proxyLoader.loadClass("org.jclouds.blobstore.options.ListContainerOptions$Builder")
                .getMethod("recursive").invoke(null);
        Method list = proxyLoader.loadClass("org.jclouds.blobstore.BlobStore").getMethod("list", String.class, opts);
        TreeSet<String> names = new TreeSet<>();
        Object marker = null;
        do {
            Object o = marker == null ? recursive : opts.getMethod("afterMarker", String.class).invoke(recursive, marker);
            Object page = list.invoke(blobStore, BUCKET, o);
            for (Object md : (Iterable<?>) page) {
                names.add((String) md.getClass().getMethod("getName").invoke(md));
            }
            marker = page.getClass().getMethod("getNextMarker").invoke(page);
        } while (marker != null);
        return names;
    }

    @Test
    void shouldPrepareTrainCheckpointAndResumeOnS3a() throws Exception {
        String root = "s3a://" + BUCKET;
        Configuration hconf = TrainerTestSupport.spark().hadoopConfiguration();
        // the corpus goes up through S3A itself
        org.apache.hadoop.fs.Path corpus = new org.apache.hadoop.fs.Path(root + "/lake/genesis.txt");
        FileSystem fs = corpus.getFileSystem(hconf);
        assertEquals("org.apache.hadoop.fs.s3a.S3AFileSystem", fs.getClass().getName());
        byte[] corpusBytes;
        try (InputStream in = S3aTest.class.getResourceAsStream("/io/catena/corpus/genesis.txt")) {
            corpusBytes = in.readAllBytes();
        }
        // the first ~600 verses are plenty for 10 steps of 4 x 16 tokens, and keep prepare short
        String part = String.join("\n", new String(corpusBytes, StandardCharsets.UTF_8).lines().limit(600).toList());
        try (OutputStream out = fs.create(corpus, true)) {
            out.write(part.getBytes(StandardCharsets.UTF_8));
        }

        String dataset = root + "/datasets/genesis";
        SparkSession spark = SparkSession.builder().sparkContext(TrainerTestSupport.spark().sc()).getOrCreate();
        Manifest m = PrepareJob.run(spark, PrepareOptions.of(List.of(root + "/lake"), "text", dataset)
                .withTokenizer("train:300").withSeqLen(16).withValFraction(0.05)).manifest();
        assertTrue(m.sources().get(0).path().startsWith("s3a://"), m.sources().get(0).path());
        TreeSet<String> afterPrepare = bucketListing();
        assertTrue(afterPrepare.contains("datasets/genesis/manifest.json"), afterPrepare.toString());
        assertTrue(afterPrepare.stream().anyMatch(n -> n.startsWith("datasets/genesis/") && n.endsWith(".bin")),
                "no shard in the bucket: " + afterPrepare);

        Path local = TrainerTestSupport.testDir("s3a");
        Path recipe = TrainerTestSupport.recipe(local, 10);
        String run = root + "/runs/r1";
        String[] base = {"--data", dataset, "--recipe", recipe.toString(), "--out", run, "--dp", "2",
                "--term-length", "1048576", "--metrics", local.resolve("metrics.jsonl").toString()};
        TrainResult first = TrainerTestSupport.train(new ByteArrayOutputStream(),
                TrainerTestSupport.concat(base, "--until-step", "6", "--ckpt-every", "3"));
        assertEquals(6, first.finalStep());
        TreeSet<String> afterFirst = bucketListing();
        for (String step : List.of("step-00000003", "step-00000006")) {
            assertTrue(afterFirst.stream().anyMatch(n -> n.startsWith("runs/r1/" + step + "/")),
                    step + " is not in the bucket: " + afterFirst);
        }
        CheckpointStore store = new CheckpointStore(HadoopStorage.resolver(hconf));
        TrainingState saved = store.load(run, true);
        assertEquals(6, saved.step(), "the latest checkpoint on s3a://");
        assertEquals(6L * 4, saved.dataPosition());

        ByteArrayOutputStream log = new ByteArrayOutputStream();
        TrainResult second = TrainerTestSupport.train(log, TrainerTestSupport.concat(base, "--resume"));
        String text = log.toString(StandardCharsets.UTF_8);
        assertTrue(text.contains("resuming"), text);
        assertEquals(10, second.finalStep());
        assertEquals(7L, second.trainLoss().firstKey(), "the resumed run continues after the saved step 6: " + second.trainLoss().keySet());
        assertTrue(second.checkpoint().startsWith(run), second.checkpoint());
        assertEquals(10, store.load(run, true).step(), "the final checkpoint is on s3a://");
        assertTrue(bucketListing().stream().anyMatch(n -> n.startsWith("runs/r1/step-00000010/")), bucketListing().toString());
    }
}
