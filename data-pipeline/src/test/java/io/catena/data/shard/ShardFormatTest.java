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
        assertEquals(ShardFormat.HEADER_BYTES + 2000, s16.length);
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
    void shouldRefuseTruncatedFilesBadMagicAndManifestMismatch() throws IOException {
        byte[] b = shard(new int[] {1, 2, 3, 4, 5}, 2);
        byte[] cut = java.util.Arrays.copyOf(b, b.length - 2);
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
