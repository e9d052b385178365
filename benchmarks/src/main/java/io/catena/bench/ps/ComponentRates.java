package io.catena.bench.ps;

import static io.catena.bench.ps.BenchSupport.view;
import static io.catena.bench.ps.PsBench.SECRET;

import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.optim.AdamW;
import io.catena.ps.protocol.MessageAuthenticator;
import io.catena.ps.protocol.MessageHeader;
import java.nio.ByteBuffer;
import java.util.LinkedHashMap;
import java.util.Map;
import org.agrona.concurrent.UnsafeBuffer;
import org.nd4j.linalg.api.buffer.DataType;

/** What {@link PsBench} measures to explain its ratio: the rates of the server's per-byte work on one thread. */
final class ComponentRates {

    private ComponentRates() {
    }

    /** Single-thread rates of the server's per-byte work (HMAC, copies, AdamW) on {@code grad}, in {@code chunkBytes} chunks. */
    static Map<String, Object> components(ParamLayout layout, Params grad, int chunkBytes) {
        Map<String, Object> c = new LinkedHashMap<>();
        UnsafeBuffer g = view(grad);
        int bytes = g.capacity();
        int chunk = chunkBytes;
        MessageAuthenticator auth = new MessageAuthenticator(SECRET);
        UnsafeBuffer mac = new UnsafeBuffer(ByteBuffer.allocateDirect(MessageHeader.MAC_LENGTH));
        c.put("hmac_sha256_gb_per_s", bestRate(5, bytes, () -> {
            for (int off = 0; off < bytes; off += chunk) {
                auth.begin();
                auth.update(g, off, Math.min(chunk, bytes - off));
                auth.finish(mac, 0);
            }
        }));
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
