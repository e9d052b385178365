package io.catena.data.io;

import com.github.luben.zstd.ZstdInputStream;
import com.github.luben.zstd.ZstdOutputStream;
import org.apache.hadoop.conf.Configurable;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.io.compress.CompressionCodec;
import org.apache.hadoop.io.compress.CompressionInputStream;
import org.apache.hadoop.io.compress.CompressionOutputStream;
import org.apache.hadoop.io.compress.Compressor;
import org.apache.hadoop.io.compress.Decompressor;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;

/**
 * A {@code .zst} codec over zstd-jni (which Spark ships), for hosts without Hadoop's native
 * libhadoop (Hadoop's own ZStandardCodec needs it). Registered by the prepare job through
 * {@code io.compression.codecs}, so it wins the {@code .zst} extension in CompressionCodecFactory.
 */
public final class ZstdCodec implements CompressionCodec, Configurable {

    private Configuration conf;

    @Override
    public void setConf(Configuration conf) {
        this.conf = conf;
    }

    @Override
    public Configuration getConf() {
        return conf;
    }

    @Override
    public CompressionOutputStream createOutputStream(OutputStream out) throws IOException {
        ZstdOutputStream z = new ZstdOutputStream(out);
        return new CompressionOutputStream(z) {
            @Override
            public void write(int b) throws IOException {
                z.write(b);
            }

            @Override
            public void write(byte[] b, int off, int len) throws IOException {
                z.write(b, off, len);
            }

            @Override
            public void finish() throws IOException {
                z.flush();
            }

            @Override
            public void resetState() {
            }
        };
    }

    @Override
    public CompressionOutputStream createOutputStream(OutputStream out, Compressor compressor) throws IOException {
        return createOutputStream(out);
    }

    @Override
    public Class<? extends Compressor> getCompressorType() {
        return null;
    }

    @Override
    public Compressor createCompressor() {
        return null;
    }

    @Override
    public CompressionInputStream createInputStream(InputStream in) throws IOException {
        ZstdInputStream z = new ZstdInputStream(in);
        return new CompressionInputStream(z) {
            @Override
            public int read() throws IOException {
                return z.read();
            }

            @Override
            public int read(byte[] b, int off, int len) throws IOException {
                return z.read(b, off, len);
            }

            @Override
            public void resetState() {
            }
        };
    }

    @Override
    public CompressionInputStream createInputStream(InputStream in, Decompressor decompressor) throws IOException {
        return createInputStream(in);
    }

    @Override
    public Class<? extends Decompressor> getDecompressorType() {
        return null;
    }

    @Override
    public Decompressor createDecompressor() {
        return null;
    }

    @Override
    public String getDefaultExtension() {
        return ".zst";
    }
}
