package io.catena.data.prepare;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.catena.data.io.SerializableConf;
import io.catena.data.io.Texts;
import io.catena.data.prepare.PrepareJob.Rec;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.io.LongWritable;
import org.apache.hadoop.io.Text;
import org.apache.hadoop.io.compress.CompressionCodec;
import org.apache.hadoop.io.compress.CompressionCodecFactory;
import org.apache.hadoop.mapreduce.Job;
import org.apache.hadoop.mapreduce.lib.input.FileInputFormat;
import org.apache.hadoop.mapreduce.lib.input.FileSplit;
import org.apache.hadoop.mapreduce.lib.input.TextInputFormat;
import org.apache.spark.api.java.JavaNewHadoopRDD;
import org.apache.spark.api.java.JavaPairRDD;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.BinaryType;
import org.apache.spark.sql.types.StringType;
import org.apache.spark.sql.types.StructField;
import scala.Tuple2;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;

/**
 * Step 1 of {@link PrepareJob}: reads the source files (text lines or whole files, JSON lines, Parquet; Hadoop
 * codecs) into normalized records; a record that cannot be read becomes a bad one with a lossy sample and the
 * reason, for the quarantine.
 */
final class SourceReader {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int SAMPLE_CHARS = 200;

    private SourceReader() {
    }

    static void registerCodecs(Configuration conf) {
        String codecs = conf.get("io.compression.codecs", "");
        if (!codecs.contains(io.catena.data.io.ZstdCodec.class.getName())) {
            conf.set("io.compression.codecs", (codecs.isEmpty() ? "" : codecs + ",")
                    + "org.apache.hadoop.io.compress.GzipCodec,org.apache.hadoop.io.compress.BZip2Codec,"
                    + io.catena.data.io.ZstdCodec.class.getName());
        }
    }

    static JavaRDD<Rec> read(SparkSession spark, JavaSparkContext sc, Configuration conf, PrepareOptions o,
                              List<FileStatus> files) throws IOException {
        String norm = o.normalization();
        String field = o.textField();
        switch (o.format()) {
            case "parquet":
                return readParquet(spark, o, files);
            case "jsonl":
                checkJsonlField(files.get(0), conf, field);
                int maxChars = o.maxTextChars();
                return readLines(sc, conf, files).map(r -> r.bad() != null ? r : parseJson(r, field, norm, maxChars));
            default:
                if (o.textDocument().equals("file")) {
                    SerializableConf sconf = new SerializableConf(conf);
                    List<String> paths = files.stream().map(f -> f.getPath().toString()).toList();
                    return sc.parallelize(paths, Math.max(1, Math.min(paths.size(), sc.defaultParallelism() * 4)))
                            .map(p -> readWholeFile(p, sconf.get(), norm));
                }
                return readLines(sc, conf, files).map(r -> r.bad() != null ? r : new Rec(r.source(), r.offset(),
                        normalize(r.text(), norm), null));
        }
    }

    static String normalize(String s, String mode) {
        return switch (mode) {
            case "NFC" -> Normalizer.isNormalized(s, Normalizer.Form.NFC) ? s : Normalizer.normalize(s, Normalizer.Form.NFC);
            case "NFKC" -> Normalizer.normalize(s, Normalizer.Form.NFKC);
            default -> s;
        };
    }

    /** Lines with their byte offsets; a line that is not valid UTF-8 becomes a bad record. */
    private static JavaRDD<Rec> readLines(JavaSparkContext sc, Configuration conf, List<FileStatus> files) throws IOException {
        Job job = Job.getInstance(new Configuration(conf));
        FileInputFormat.setInputPaths(job, files.stream().map(FileStatus::getPath).toArray(Path[]::new));
        JavaPairRDD<LongWritable, Text> raw = sc.newAPIHadoopRDD(job.getConfiguration(), TextInputFormat.class,
                LongWritable.class, Text.class);
        return ((JavaNewHadoopRDD<LongWritable, Text>) raw).mapPartitionsWithInputSplit((split, it) -> {
            String src = ((FileSplit) split).getPath().toString();
            return new Iterator<Rec>() {
                @Override
                public boolean hasNext() {
                    return it.hasNext();
                }

                @Override
                public Rec next() {
                    Tuple2<LongWritable, Text> t = it.next();
                    Text line = t._2();
                    long off = t._1().get();
                    try {
                        return new Rec(src, off, Texts.decodeUtf8(line.getBytes(), 0, line.getLength()), null);
                    } catch (CharacterCodingException e) {
                        return new Rec(src, off, sample(new String(line.getBytes(), 0, line.getLength(), StandardCharsets.UTF_8)),
                                e.getMessage() + " of the line");
                    }
                }
            };
        }, false);
    }

    private static Rec readWholeFile(String path, Configuration conf, String norm) {
        Path p = new Path(path);
        try {
            FileSystem fs = p.getFileSystem(conf);
            CompressionCodec codec = new CompressionCodecFactory(conf).getCodec(p);
            byte[] b;
            try (InputStream raw = fs.open(p); InputStream in = codec == null ? raw : codec.createInputStream(raw)) {
                b = in.readAllBytes();
            }
            try {
                return new Rec(path, 0, normalize(Texts.decodeUtf8(b, 0, b.length), norm), null);
            } catch (CharacterCodingException e) {
                return new Rec(path, 0, sample(new String(b, StandardCharsets.UTF_8)), e.getMessage() + " of the file");
            }
        } catch (IOException e) {
            return new Rec(path, 0, "", "unreadable: " + e);
        }
    }

    /** One JSON reader per text-length limit (--max-text-chars), shared by the records of an executor. */
    private static final java.util.concurrent.ConcurrentHashMap<Integer, ObjectMapper> JSON_BY_LIMIT = new java.util.concurrent.ConcurrentHashMap<>();

    private static ObjectMapper json(int maxChars) {
        return JSON_BY_LIMIT.computeIfAbsent(maxChars, m -> new ObjectMapper(com.fasterxml.jackson.core.JsonFactory.builder()
                .streamReadConstraints(com.fasterxml.jackson.core.StreamReadConstraints.builder().maxStringLength(m).build()).build()));
    }

    static Rec parseJson(Rec r, String field, String norm, int maxChars) {
        String line = r.text();
        if (line.isBlank()) {
            return new Rec(r.source(), r.offset(), "", null);
        }
        JsonNode n;
        try {
            n = json(maxChars).readTree(line);
        } catch (com.fasterxml.jackson.core.exc.StreamConstraintsException e) {
            return new Rec(r.source(), r.offset(), sample(line), "a string longer than --max-text-chars " + maxChars
                    + " characters (valid JSON; raise --max-text-chars to keep such records)");
        } catch (IOException e) {
            String msg = e instanceof com.fasterxml.jackson.core.JsonProcessingException jp ? jp.getOriginalMessage() : e.toString();
            return new Rec(r.source(), r.offset(), sample(line), "malformed JSON: " + msg.replace('\n', ' '));
        }
        if (!n.isObject()) {
            return new Rec(r.source(), r.offset(), sample(line), "not a JSON object");
        }
        JsonNode v = n.get(field);
        if (v == null || v.isNull()) {
            return new Rec(r.source(), r.offset(), sample(line), "missing field '" + field + "'");
        }
        if (!v.isTextual()) {
            return new Rec(r.source(), r.offset(), sample(line), "field '" + field + "' is " + v.getNodeType() + ", expected a string");
        }
        return new Rec(r.source(), r.offset(), normalize(v.asText(), norm), null);
    }

    /** Fails fast, before any Spark job, if the first record of the first file lacks the text field. */
    private static void checkJsonlField(FileStatus first, Configuration conf, String field) throws IOException {
        Path p = first.getPath();
        CompressionCodec codec = new CompressionCodecFactory(conf).getCodec(p);
        try (InputStream raw = p.getFileSystem(conf).open(p);
             InputStream in = codec == null ? raw : codec.createInputStream(raw);
             BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
            String line;
            int n = 0;
            while ((line = r.readLine()) != null && n < 100) {
                n++;
                if (line.isBlank()) {
                    continue;
                }
                JsonNode node;
                try {
                    node = JSON.readTree(line);
                } catch (IOException e) {
                    continue; // malformed lines are counted and quarantined by the job
                }
                if (node.isObject() && !node.has(field)) {
                    List<String> names = new ArrayList<>();
                    node.fieldNames().forEachRemaining(names::add);
                    throw new IllegalArgumentException("--text-field '" + field + "' is missing from the first record of " + p
                            + " (line " + n + "): " + sample(line) + " . Fields present: " + names
                            + ". Pass --text-field with the field that holds the text.");
                }
                return;
            }
        }
    }

    private static JavaRDD<Rec> readParquet(SparkSession spark, PrepareOptions o, List<FileStatus> files) {
        String[] paths = files.stream().map(f -> f.getPath().toString()).toArray(String[]::new);
        Dataset<Row> df;
        try {
            df = spark.read().parquet(paths);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("cannot read Parquet input " + Arrays.toString(paths).substring(0,
                    Math.min(300, Arrays.toString(paths).length())) + ": " + e.getMessage()
                    + ". Expected Parquet files for --format parquet.", e);
        }
        String field = o.textField();
        StructField sf;
        try {
            sf = df.schema().apply(field);
        } catch (IllegalArgumentException e) {
            List<Row> sample = df.limit(1).collectAsList();
            throw new IllegalArgumentException("--text-field '" + field + "' is not a column of the Parquet input (schema: "
                    + df.schema().simpleString() + "); sample record: " + (sample.isEmpty() ? "(none)" : sample(sample.get(0).toString()))
                    + ". Pass --text-field with the column that holds the text.", e);
        }
        if (!(sf.dataType() instanceof StringType) && !(sf.dataType() instanceof BinaryType)) {
            throw new IllegalArgumentException("--text-field '" + field + "' has Parquet type " + sf.dataType().simpleString()
                    + ", expected string or binary. Pass --text-field with the column that holds the text.");
        }
        boolean binary = sf.dataType() instanceof BinaryType;
        String norm = o.normalization();
        return df.select(org.apache.spark.sql.functions.col(field), org.apache.spark.sql.functions.col("_metadata.file_path"),
                        org.apache.spark.sql.functions.col("_metadata.row_index"))
                .javaRDD().map(row -> {
                    String src = row.getString(1);
                    long off = row.isNullAt(2) ? -1 : row.getLong(2);
                    if (row.isNullAt(0)) {
                        return new Rec(src, off, "", "null in column '" + field + "' (row " + off + ")");
                    }
                    if (!binary) {
                        return new Rec(src, off, normalize(row.getString(0), norm), null);
                    }
                    byte[] b = (byte[]) row.get(0);
                    try {
                        return new Rec(src, off, normalize(Texts.decodeUtf8(b, 0, b.length), norm), null);
                    } catch (CharacterCodingException e) {
                        return new Rec(src, off, sample(new String(b, StandardCharsets.UTF_8)), e.getMessage() + " in row " + off);
                    }
                });
    }

    private static String sample(String s) {
        return s.length() <= SAMPLE_CHARS ? s : s.substring(0, SAMPLE_CHARS) + "...";
    }
}
