package io.catena.bench.ps;

import static io.catena.bench.ps.BenchSupport.view;
import static io.catena.bench.ps.PsBench.SECRET;

import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.optim.AdamW;
import io.catena.ps.protocol.Framer;
import io.catena.ps.protocol.KeySchedule;
import io.catena.ps.protocol.MessageHeader;
import io.catena.ps.protocol.MessageType;
import io.catena.ps.protocol.TrafficKey;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import java.nio.ByteBuffer;
import java.util.LinkedHashMap;
import java.util.Map;
import org.agrona.concurrent.UnsafeBuffer;
import org.nd4j.linalg.api.buffer.DataType;

/** What {@link PsBench} measures to explain its ratio: the rates of the server's per-byte work on one thread. */
final class ComponentRates {

    private ComponentRates() {
    }

    /**
     * Single-thread rates of the server's per-byte work (AES-GCM seal and open through the protocol's Framer, HMAC-SHA256
     * of protocol v3 for comparison, copies, AdamW) on {@code grad}, in {@code chunkBytes} chunks.
     */
    static Map<String, Object> components(ParamLayout layout, Params grad, int chunkBytes) {
        Map<String, Object> c = new LinkedHashMap<>();
        UnsafeBuffer g = view(grad);
        int bytes = g.capacity();
        int chunk = chunkBytes;
        Mac hmac;
        try {
            hmac = Mac.getInstance("HmacSHA256");
            hmac.init(new SecretKeySpec(SECRET, "HmacSHA256"));
        } catch (java.security.GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
        java.nio.ByteBuffer gb = g.byteBuffer();
        c.put("hmac_sha256_gb_per_s", bestRate(5, bytes, () -> {
            for (int off = 0; off < bytes; off += chunk) {
                java.nio.ByteBuffer d = gb.duplicate();
                d.clear().position(g.wrapAdjustment() + off).limit(g.wrapAdjustment() + off + Math.min(chunk, bytes - off));
                hmac.update(d);
                hmac.doFinal();
            }
        }));
        // AES-256-GCM as the PS seals and opens: one frame per chunk (header as AAD), into a frame buffer and back
        Framer framer = new Framer(KeySchedule.handshakeKey(SECRET));
        KeySchedule ks = KeySchedule.session(SECRET, 1, KeySchedule.randomNonce(), KeySchedule.randomNonce(),
                KeySchedule.DEFAULT_REKEY_SHIFT);
        TrafficKey sendKey = ks.traffic(KeySchedule.Direction.CLIENT_TO_SERVER);
        UnsafeBuffer frames = new UnsafeBuffer(ByteBuffer.allocateDirect(bytes + (bytes / chunk + 1) * MessageHeader.OVERHEAD));
        int[] frameAt = new int[bytes / chunk + 2];
        c.put("aes_gcm_seal_gb_per_s", bestRate(7, bytes, () -> {
            int at = 0;
            int k = 0;
            for (int off = 0; off < bytes; off += chunk) {
                frameAt[k++] = at;
                framer.header(MessageType.PUSH).chunkIndex(k);
                at += framer.sealInto(sendKey, frames, at, g, off, Math.min(chunk, bytes - off));
            }
            frameAt[k] = at;
        }));
        Params outOwner = new Params(layout, DataType.FLOAT);
        UnsafeBuffer out = view(outOwner);
        c.put("aes_gcm_open_gb_per_s", bestRate(7, bytes, () -> {
            TrafficKey recvKey = ks.traffic(KeySchedule.Direction.CLIENT_TO_SERVER); // a fresh replay window per pass
            for (int k = 0, off = 0; off < bytes; k++, off += chunk) {
                if (framer.open(recvKey, frames, frameAt[k], frameAt[k + 1] - frameAt[k], out, off) != Framer.Result.OK) {
                    throw new IllegalStateException("a frame sealed here does not open");
                }
            }
        }));
        java.lang.ref.Reference.reachabilityFence(outOwner);
        Params dstOwner = new Params(layout, DataType.FLOAT); // a view does not keep ND4J's memory alive
        UnsafeBuffer dst = view(dstOwner);
        c.put("copy_gb_per_s", bestRate(5, bytes, () -> {
            for (int off = 0; off < bytes; off += chunk) {
                dst.putBytes(off, g, off, Math.min(chunk, bytes - off));
            }
        }));
        c.put("scalar_add_gb_per_s", bestRate(3, bytes, () -> {
            for (int o = 0; o < bytes; o += 4) {
                dst.putFloat(o, dst.getFloat(o) + g.getFloat(o));
            }
        }));
        Params p = new Params(layout, DataType.FLOAT);
        Params m = new Params(layout, DataType.FLOAT);
        Params v = new Params(layout, DataType.FLOAT);
        AdamW adam = new AdamW(layout, AdamW.Settings.defaults(), 0);
        long[] step = {0};
        double adamGb = bestRate(3, bytes, () -> {
            double ss = adam.sumOfSquares(grad, 0, layout.size());
            adam.update(p, grad, m, v, ++step[0], 1e-4, adam.clipScale(Math.sqrt(ss)), 0, layout.size());
        });
        c.put("adamw_step_ms", bytes / adamGb / 1e6);
        java.lang.ref.Reference.reachabilityFence(dstOwner);
        java.lang.ref.Reference.reachabilityFence(grad);
        c.put("note", "single-thread rates over the " + bytes / 1048576 + " MiB vector (best of a few), "
                + chunk + "-byte chunks; AdamW = sumOfSquares + update (chain-model, may use its kernel threads)");
        return c;
    }

    private static double bestRate(int reps, long bytes, Runnable r) {
        double best = Double.MAX_VALUE;
        for (int i = 0; i < reps; i++) {
            long t = System.nanoTime();
            r.run();
            best = Math.min(best, System.nanoTime() - t);
        }
        return bytes / best; // bytes per ns = GB/s
    }
}
