package io.catena.model.io;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** NumPy .npy (format 1.0) for little-endian float32 C-order arrays: what numpy.load reads as-is. */
public final class Npy {
    private static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
    private static final Pattern DESCR = Pattern.compile("'descr'\\s*:\\s*'([^']*)'");
    private static final Pattern FORTRAN = Pattern.compile("'fortran_order'\\s*:\\s*(True|False)");
    private static final Pattern SHAPE = Pattern.compile("'shape'\\s*:\\s*\\(([^)]*)\\)");

    private Npy() {
    }

    public static void writeFloat32(OutputStream out, int[] shape, float[] data) throws IOException {
        writeHeader(out, "<f4", shape);
        ByteBuffer bb = ByteBuffer.allocate(data.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        bb.asFloatBuffer().put(data);
        out.write(bb.array());
    }

    /** Token ids and other int32 arrays (read by numpy as {@code <i4}). */
    public static void writeInt32(OutputStream out, int[] shape, int[] data) throws IOException {
        writeHeader(out, "<i4", shape);
        ByteBuffer bb = ByteBuffer.allocate(data.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        bb.asIntBuffer().put(data);
        out.write(bb.array());
    }

    private static void writeHeader(OutputStream out, String descr, int[] shape) throws IOException {
        StringBuilder dims = new StringBuilder();
        for (int s : shape) {
            dims.append(s).append(", ");
        }
        if (shape.length > 1) {
            dims.setLength(dims.length() - 2);
        } else if (shape.length == 1) {
            dims.setLength(dims.length() - 1);
        }
        String dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }";
        int unpadded = MAGIC.length + 2 + 2 + dict.length() + 1;
        int pad = (64 - unpadded % 64) % 64;
        String header = dict + " ".repeat(pad) + "\n";
        out.write(MAGIC);
        out.write(new byte[] {1, 0});
        int hl = header.length();
        out.write(new byte[] {(byte) (hl & 0xFF), (byte) (hl >> 8)});
        out.write(header.getBytes(StandardCharsets.US_ASCII));
    }

    /** Reads a float32 array and checks its shape; {@code what} names the source in errors. */
    public static float[] readFloat32(InputStream in, int[] expectedShape, String what) throws IOException {
        byte[] pre = in.readNBytes(10);
        if (pre.length < 10 || !Arrays.equals(Arrays.copyOf(pre, 6), MAGIC)) {
            throw new IOException(what + ": not a .npy file (bad magic at offset 0); the checkpoint is corrupt — restore it from another copy");
        }
        int major = pre[6];
        int headerLen;
        if (major == 1) {
            headerLen = (pre[8] & 0xFF) | ((pre[9] & 0xFF) << 8);
        } else if (major == 2 || major == 3) {
            byte[] more = in.readNBytes(2);
            headerLen = (pre[8] & 0xFF) | ((pre[9] & 0xFF) << 8) | ((more[0] & 0xFF) << 16) | ((more[1] & 0xFF) << 24);
        } else {
            throw new IOException(what + ": unsupported .npy version " + major);
        }
        String header = new String(in.readNBytes(headerLen), StandardCharsets.ISO_8859_1);
        Matcher d = DESCR.matcher(header);
        Matcher f = FORTRAN.matcher(header);
        Matcher s = SHAPE.matcher(header);
        if (!d.find() || !f.find() || !s.find()) {
            throw new IOException(what + ": unreadable .npy header '" + header.trim() + "'");
        }
        if (!d.group(1).equals("<f4")) {
            throw new IOException(what + ": expected dtype '<f4' (float32), found '" + d.group(1) + "'");
        }
        if (f.group(1).equals("True")) {
            throw new IOException(what + ": expected C order, found Fortran order");
        }
        int[] shape = Arrays.stream(s.group(1).split(",")).map(String::trim).filter(x -> !x.isEmpty())
                .mapToInt(Integer::parseInt).toArray();
        if (!Arrays.equals(shape, expectedShape)) {
            throw new IOException(what + ": expected shape " + Arrays.toString(expectedShape) + ", found " + Arrays.toString(shape)
                    + "; the file belongs to a different model configuration");
        }
        long n = 1;
        for (int x : shape) {
            n *= x;
        }
        byte[] raw = in.readNBytes((int) (n * 4));
        if (raw.length != n * 4) {
            throw new IOException(what + ": truncated: expected " + n * 4 + " data bytes after the header, found " + raw.length);
        }
        float[] out = new float[(int) n];
        ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
        return out;
    }
}
