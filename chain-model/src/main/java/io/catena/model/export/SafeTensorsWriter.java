package io.catena.model.export;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes a float32 <a href="https://github.com/huggingface/safetensors">safetensors</a> file by hand (the format is
 * small enough that a dependency would cost more than it saves): an 8-byte little-endian header length N, N bytes of
 * JSON ({@code {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ..., "__metadata__": {...}}},
 * padded with spaces so that the data starts 8-byte aligned), then the tensors' raw little-endian bytes back to back
 * in the order they were added; offsets are relative to the start of the data.
 */
public final class SafeTensorsWriter {

    /** Where one tensor's values come from: element {@code i} of its row-major layout. */
    @FunctionalInterface
    public interface Values {
        float get(long i);
    }

    private record Tensor(String name, int[] shape, long count, Values values) {
    }

    private static final ObjectMapper JSON = new ObjectMapper();
    /** safetensors readers refuse headers above 100 MB; a model with that many tensor names is not one this engine holds. */
    private static final long MAX_HEADER_BYTES = 100L << 20;

    private final List<Tensor> tensors = new ArrayList<>();
    private final Map<String, String> metadata = new LinkedHashMap<>();

    /** Adds a float32 tensor; names must be unique (the header is a JSON object keyed by name). */
    public SafeTensorsWriter add(String name, int[] shape, Values values) {
        if (name.equals("__metadata__") || tensors.stream().anyMatch(t -> t.name().equals(name))) {
            throw new IllegalArgumentException("safetensors tensor name '" + name + "' is reserved or used twice");
        }
        long n = 1;
        for (int s : shape) {
            if (s < 0) {
                throw new IllegalArgumentException("tensor " + name + " has a negative dimension in " + java.util.Arrays.toString(shape));
            }
            n *= s;
        }
        tensors.add(new Tensor(name, shape.clone(), n, values));
        return this;
    }

    /** A free-form string entry of the header's {@code __metadata__} (the format allows only string values). */
    public SafeTensorsWriter metadata(String key, String value) {
        metadata.put(key, value);
        return this;
    }

    /** The header bytes, padded with spaces to a multiple of 8 (so 8 + N, where the data begins, is aligned too). */
    byte[] header() {
        Map<String, Object> h = new LinkedHashMap<>();
        if (!metadata.isEmpty()) {
            h.put("__metadata__", metadata);
        }
        long offset = 0;
        for (Tensor t : tensors) {
            Map<String, Object> e = new LinkedHashMap<>();
            e.put("dtype", "F32");
            e.put("shape", t.shape());
            e.put("data_offsets", new long[] {offset, offset + 4 * t.count()});
            h.put(t.name(), e);
            offset += 4 * t.count();
        }
        byte[] json;
        try {
            json = JSON.writeValueAsBytes(h);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot serialise the safetensors header: " + e.getMessage(), e);
        }
        int padded = (json.length + 7) / 8 * 8;
        if (padded > MAX_HEADER_BYTES) {
            throw new IllegalArgumentException("safetensors header of " + padded + " bytes exceeds the format's 100 MB limit");
        }
        byte[] out = new byte[padded];
        System.arraycopy(json, 0, out, 0, json.length);
        java.util.Arrays.fill(out, json.length, padded, (byte) ' ');
        return out;
    }

    /** Writes the whole file; returns the number of bytes written. */
    public long write(OutputStream out) throws IOException {
        byte[] header = header();
        ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(header.length);
        out.write(len.array());
        out.write(header);
        long written = 8 + header.length;
        ByteBuffer chunk = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);
        for (Tensor t : tensors) {
            for (long i = 0; i < t.count(); i++) {
                if (!chunk.hasRemaining()) {
                    out.write(chunk.array(), 0, chunk.position());
                    chunk.clear();
                }
                chunk.putFloat(t.values().get(i));
            }
            written += 4 * t.count();
        }
        out.write(chunk.array(), 0, chunk.position());
        return written;
    }
}
