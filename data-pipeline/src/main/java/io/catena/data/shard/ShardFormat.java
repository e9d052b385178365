package io.catena.data.shard;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.zip.CRC32C;

/**
 * The token shard file format. A 32-byte little-endian header, then the payload: {@code tokenCount}
 * unsigned little-endian integers of {@code dtypeBytes} bytes each (numpy: {@code np.memmap(f,
 * dtype='<u2', offset=32)}).
 *
 * <pre>
 * offset size field
 *  0     8   magic "CATENATK"
 *  8     4   format version (2; version 1 files, which have no trailer, are still read)
 * 12     4   dtype bytes: 2 (uint16, vocab <= 65536) or 4 (uint32)
 * 16     8   token count
 * 24     4   CRC32C of the payload
 * 28     4   CRC32C of bytes 0..27
 * 32     P   payload (P = token count x dtype bytes)
 * 32+P   4B  version 2: the CRC32C of each 4 KiB block of the payload (B = ceil(P / 4096) little-endian ints),
 *            so a damaged shard is reported at its first bad block, not just "somewhere"
 * </pre>
 */
public final class ShardFormat {

    public static final byte[] MAGIC = {'C', 'A', 'T', 'E', 'N', 'A', 'T', 'K'};
    public static final int VERSION = 2;
    public static final int HEADER_BYTES = 32;
    /** The payload block each trailer checksum covers. */
    public static final int BLOCK_BYTES = 4096;

    private ShardFormat() {
    }

    /** Bytes per token for a vocabulary of {@code vocabSize} ids. */
    public static int dtypeBytes(int vocabSize) {
        return vocabSize <= 65536 ? 2 : 4;
    }

    /** Parsed header. */
    public record Header(int version, int dtypeBytes, long tokenCount, int payloadCrc) {
    }

    /** Encodes {@code tokens[0, n)} as payload bytes. */
    public static byte[] payload(int[] tokens, int n, int dtypeBytes) {
        ByteBuffer bb = ByteBuffer.allocate(n * dtypeBytes).order(ByteOrder.LITTLE_ENDIAN);
        if (dtypeBytes == 2) {
            for (int i = 0; i < n; i++) {
                bb.putShort((short) tokens[i]);
            }
        } else {
            for (int i = 0; i < n; i++) {
                bb.putInt(tokens[i]);
            }
        }
        return bb.array();
    }

    public static int crc32c(byte[] b, int off, int len) {
        CRC32C c = new CRC32C();
        c.update(b, off, len);
        return (int) c.getValue();
    }

    /** Writes header + payload + block-checksum trailer of {@code tokens[0, n)}; returns the payload CRC32C. */
    public static int write(OutputStream out, int[] tokens, int n, int dtypeBytes) throws IOException {
        byte[] payload = payload(tokens, n, dtypeBytes);
        int crc = crc32c(payload, 0, payload.length);
        out.write(header(dtypeBytes, n, crc));
        out.write(payload);
        out.write(blockTrailer(payload));
        return crc;
    }

    static int blocks(int payloadBytes) {
        return (payloadBytes + BLOCK_BYTES - 1) / BLOCK_BYTES;
    }

    /** The CRC32C of each {@value #BLOCK_BYTES}-byte block of the payload (the last one may be shorter). */
    static byte[] blockTrailer(byte[] payload) {
        int b = blocks(payload.length);
        ByteBuffer t = ByteBuffer.allocate(4 * b).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < b; i++) {
            int from = i * BLOCK_BYTES;
            t.putInt(crc32c(payload, from, Math.min(BLOCK_BYTES, payload.length - from)));
        }
        return t.array();
    }

    static byte[] header(int dtypeBytes, long tokens, int payloadCrc) {
        ByteBuffer h = ByteBuffer.allocate(HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        h.put(MAGIC).putInt(VERSION).putInt(dtypeBytes).putLong(tokens).putInt(payloadCrc);
        h.putInt(crc32c(h.array(), 0, 28));
        return h.array();
    }

    /**
     * Parses and validates a header.
     *
     * @param file name for error messages
     * @throws ShardCorruptException naming the file, offset and what was expected
     */
    public static Header parseHeader(byte[] h, String file) {
        if (h.length < HEADER_BYTES) {
            throw new ShardCorruptException(file, 0, "a " + HEADER_BYTES + "-byte header", h.length + " bytes");
        }
        ByteBuffer bb = ByteBuffer.wrap(h).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < 8; i++) {
            if (h[i] != MAGIC[i]) {
                throw new ShardCorruptException(file, 0, "magic \"CATENATK\"",
                        "\"" + new String(h, 0, 8, java.nio.charset.StandardCharsets.ISO_8859_1) + "\" (not a catena token shard)");
            }
        }
        int headerCrc = bb.getInt(28);
        if (crc32c(h, 0, 28) != headerCrc) {
            throw new ShardCorruptException(file, 28, "header CRC32C " + Integer.toHexString(crc32c(h, 0, 28)),
                    Integer.toHexString(headerCrc));
        }
        int version = bb.getInt(8);
        if (version != 1 && version != VERSION) {
            throw new ShardCorruptException(file, 8, "format version 1 or " + VERSION, String.valueOf(version));
        }
        int dtype = bb.getInt(12);
        if (dtype != 2 && dtype != 4) {
            throw new ShardCorruptException(file, 12, "dtype bytes 2 or 4", String.valueOf(dtype));
        }
        return new Header(version, dtype, bb.getLong(16), bb.getInt(24));
    }

    /** The first block whose CRC32C differs from the trailer's (a short trailer counts as damage there), or -1. */
    static int firstBadBlock(byte[] payload, byte[] trailer) {
        ByteBuffer t = ByteBuffer.wrap(trailer).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < blocks(payload.length); i++) {
            if (t.remaining() < 4) {
                return i;
            }
            int from = i * BLOCK_BYTES;
            if (t.getInt() != crc32c(payload, from, Math.min(BLOCK_BYTES, payload.length - from))) {
                return i;
            }
        }
        return -1;
    }

    /**
     * Reads a whole shard, verifies both CRCs and returns its tokens. Nothing is returned unless the
     * payload checksum matches.
     */
    public static int[] read(InputStream in, String file, long expectedTokens, int expectedCrc) throws IOException {
        byte[] h = in.readNBytes(HEADER_BYTES);
        Header header = parseHeader(h, file);
        if (expectedTokens >= 0 && header.tokenCount() != expectedTokens) {
            throw new ShardCorruptException(file, 16, expectedTokens + " tokens (manifest)", header.tokenCount() + " in the header");
        }
        if (header.tokenCount() * header.dtypeBytes() > Integer.MAX_VALUE - 64) {
            throw new ShardCorruptException(file, 16, "a shard below 2 GiB", header.tokenCount() + " tokens");
        }
        int n = (int) header.tokenCount();
        int len = n * header.dtypeBytes();
        byte[] payload = in.readNBytes(len);
        if (payload.length != len) {
            throw new ShardCorruptException(file, HEADER_BYTES + payload.length, len + " payload bytes",
                    payload.length + " (file truncated)");
        }
        int crc = crc32c(payload, 0, len);
        if (crc != header.payloadCrc() || (expectedCrc != 0 && crc != expectedCrc)) {
            long at = HEADER_BYTES;
            String where = " (a version-1 shard has no block checksums: the damage is somewhere in the payload)";
            if (header.version() >= 2) {
                byte[] trailer = in.readNBytes(4 * blocks(len));
                int bad = firstBadBlock(payload, trailer);
                if (bad >= 0) {
                    at = HEADER_BYTES + (long) bad * BLOCK_BYTES;
                    where = " (first damaged 4 KiB block: #" + bad + " of " + blocks(len) + ", bytes " + at + ".."
                            + (HEADER_BYTES + Math.min(len, (long) (bad + 1) * BLOCK_BYTES) - 1) + ")";
                } else {
                    where = " (every 4 KiB block matches its own checksum: the header's payload CRC or the trailer is damaged)";
                }
            }
            throw new ShardCorruptException(file, at, "payload CRC32C " + Integer.toHexString(header.payloadCrc())
                    + (expectedCrc != 0 ? " (manifest " + Integer.toHexString(expectedCrc) + ")" : ""),
                    Integer.toHexString(crc) + where);
        }
        int[] tokens = new int[n];
        ByteBuffer bb = ByteBuffer.wrap(payload).order(ByteOrder.LITTLE_ENDIAN);
        if (header.dtypeBytes() == 2) {
            for (int i = 0; i < n; i++) {
                tokens[i] = bb.getShort() & 0xFFFF;
            }
        } else {
            for (int i = 0; i < n; i++) {
                tokens[i] = bb.getInt();
            }
        }
        return tokens;
    }
}
