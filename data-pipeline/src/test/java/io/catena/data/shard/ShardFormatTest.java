package io.catena.data.shard;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ShardFormatTest {

    private static byte[] shard(int[] tokens, int dtype) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ShardFormat.write(out, tokens, tokens.length, dtype);
        return out.toByteArray();
    }

    @Test
    void shouldRoundTripUint16AndUint32Payloads() throws IOException {
        Random r = new Random(3);
        int[] small = r.ints(1000, 0, 65536).toArray();
        byte[] s16 = shard(small, 2);
        assertEquals(ShardFormat.HEADER_BYTES + 2000 + 4, s16.length, "header, payload, one 4 KiB block's checksum");
        assertArrayEquals(small, ShardFormat.read(new ByteArrayInputStream(s16), "a.bin", 1000, 0));
        int[] big = r.ints(1000, 0, 200_000).toArray();
        byte[] s32 = shard(big, 4);
        ShardFormat.Header h = ShardFormat.parseHeader(java.util.Arrays.copyOf(s32, 32), "b.bin");
        assertEquals(4, h.dtypeBytes());
        assertEquals(1000, h.tokenCount());
        assertArrayEquals(big, ShardFormat.read(new ByteArrayInputStream(s32), "b.bin", -1, 0));
        assertEquals(2, ShardFormat.dtypeBytes(65536));
        assertEquals(4, ShardFormat.dtypeBytes(65537));
    }

    @Test
    void shouldRefuseACorruptPayloadNamingFileAndOffset() throws IOException {
        byte[] b = shard(new int[] {1, 2, 3, 4, 5}, 2);
        b[ShardFormat.HEADER_BYTES + 3] ^= 0x10;
        ShardCorruptException e = assertThrows(ShardCorruptException.class,
                () -> ShardFormat.read(new ByteArrayInputStream(b), "hdfs://nn/ds/v000001/train-00000-000.bin", 5, 0));
        assertTrue(e.getMessage().contains("train-00000-000.bin") && e.getMessage().contains("offset 32")
                && e.getMessage().contains("CRC32C"), e.getMessage());
    }

    @Test
    void shouldNameTheFirstDamagedFourKibBlock() throws IOException {
        int[] tokens = new Random(5).ints(10_000, 0, 50_000).toArray(); // 20,000 payload bytes: 5 blocks
        byte[] b = shard(tokens, 2);
        assertEquals(ShardFormat.HEADER_BYTES + 20_000 + 5 * 4, b.length);
        b[ShardFormat.HEADER_BYTES + 9_000] ^= 0x01; // block #2 (bytes 8192..12287 of the payload)
        b[ShardFormat.HEADER_BYTES + 15_000] ^= 0x01; // and block #3
        ShardCorruptException e = assertThrows(ShardCorruptException.class,
                () -> ShardFormat.read(new ByteArrayInputStream(b), "s.bin", 10_000, 0));
        assertTrue(e.getMessage().contains("offset " + (ShardFormat.HEADER_BYTES + 8192)) && e.getMessage().contains("block: #2 of 5"),
                e.getMessage());
    }

    @Test
    void shouldStillReadVersionOneShardsWithoutATrailer() throws IOException {
        int[] tokens = {7, 8, 9};
        byte[] payload = ShardFormat.payload(tokens, 3, 2);
        java.nio.ByteBuffer h = java.nio.ByteBuffer.allocate(ShardFormat.HEADER_BYTES).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        h.put(ShardFormat.MAGIC).putInt(1).putInt(2).putLong(3).putInt(ShardFormat.crc32c(payload, 0, payload.length));
        h.putInt(ShardFormat.crc32c(h.array(), 0, 28));
        ByteArrayOutputStream v1 = new ByteArrayOutputStream();
        v1.write(h.array());
        v1.write(payload);
        assertArrayEquals(tokens, ShardFormat.read(new ByteArrayInputStream(v1.toByteArray()), "v1.bin", 3, 0));
        byte[] bad = v1.toByteArray();
        bad[ShardFormat.HEADER_BYTES + 1] ^= 0x04;
        ShardCorruptException e = assertThrows(ShardCorruptException.class, () -> ShardFormat.read(new ByteArrayInputStream(bad), "v1.bin", 3, 0));
        assertTrue(e.getMessage().contains("version-1 shard has no block checksums"), e.getMessage());
    }

    @Test
    void shouldRefuseTruncatedFilesBadMagicAndManifestMismatch() throws IOException {
        byte[] b = shard(new int[] {1, 2, 3, 4, 5}, 2);
        byte[] cut = java.util.Arrays.copyOf(b, ShardFormat.HEADER_BYTES + 8); // inside the payload
        ShardCorruptException t = assertThrows(ShardCorruptException.class,
                () -> ShardFormat.read(new ByteArrayInputStream(cut), "x.bin", 5, 0));
        assertTrue(t.getMessage().contains("truncated"), t.getMessage());
        byte[] magic = b.clone();
        magic[0] = 'X';
        assertThrows(ShardCorruptException.class, () -> ShardFormat.read(new ByteArrayInputStream(magic), "x.bin", 5, 0));
        ShardCorruptException count = assertThrows(ShardCorruptException.class,
                () -> ShardFormat.read(new ByteArrayInputStream(b), "x.bin", 6, 0));
        assertTrue(count.getMessage().contains("6 tokens (manifest)"), count.getMessage());
        assertThrows(ShardCorruptException.class, () -> ShardFormat.read(new ByteArrayInputStream(b), "x.bin", 5, 12345));
    }
}
