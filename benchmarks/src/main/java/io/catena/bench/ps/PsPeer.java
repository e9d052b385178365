package io.catena.bench.ps;

import static io.catena.bench.ps.BenchSupport.timeAll;
import static io.catena.bench.ps.BenchSupport.view;
import static io.catena.bench.ps.PsBench.TIMEOUT_MS;

import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.ps.ParameterServerClient;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import org.agrona.concurrent.UnsafeBuffer;
import org.nd4j.linalg.api.buffer.DataType;

/** The parameter-server side of {@link PsBench}. */
/** W workers doing BSP: push(step) then pull(version >= step), each on its own client. */
final class PsPeer {
    final List<ParameterServerClient> clients;
    final Params[] grads;
    final Params[] params;
    final long[] version;

    PsPeer(List<ParameterServerClient> clients, Params[] grads, ParamLayout layout) {
        this.clients = clients;
        this.grads = grads;
        this.params = new Params[clients.size()];
        this.version = new long[clients.size()];
        for (int w = 0; w < clients.size(); w++) {
            params[w] = new Params(layout, DataType.FLOAT);
            version[w] = clients.get(w).pull(0, params[w], TIMEOUT_MS).version();
        }
    }

    double round(ExecutorService pool) throws Exception {
        List<Callable<Void>> tasks = new ArrayList<>();
        for (int w = 0; w < clients.size(); w++) {
            int worker = w;
            tasks.add(() -> {
                ParameterServerClient c = clients.get(worker);
                long step = version[worker] + 1;
                c.push(step, version[worker], grads[worker], TIMEOUT_MS);
                ParameterServerClient.PullResult pr = c.pull(c.sync().minVersionFor(step + 1), params[worker], TIMEOUT_MS);
                if (pr.layoutChanged() || pr.version() != step) {
                    throw new IllegalStateException("worker " + worker + " pulled version " + pr.version() + ", expected " + step);
                }
                version[worker] = pr.version();
                return null;
            });
        }
        return timeAll(pool, tasks, List.of());
    }

    boolean workersAgree() {
        UnsafeBuffer a = view(params[0]);
        for (int w = 1; w < params.length; w++) {
            UnsafeBuffer b = view(params[w]);
            for (int i = 0; i < a.capacity(); i += 4096) {
                if (a.getInt(i) != b.getInt(i)) {
                    return false;
                }
            }
        }
        return true;
    }
}
