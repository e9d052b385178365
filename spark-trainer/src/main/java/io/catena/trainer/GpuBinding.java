package io.catena.trainer;

import java.util.Map;
import org.apache.spark.TaskContext;
import org.apache.spark.resource.ResourceInformation;
import org.nd4j.linalg.factory.Nd4j;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Binds ND4J to the GPU Spark assigned this task ({@code spark.task.resource.gpu.amount=1} and a discovery
 * script, see cluster-conf/). On the CPU backend, or when the task got no GPU, it does nothing. Binding does not move
 * training to the GPU: the engine's GEMMs (OpenBLAS / oneDNN) and kernels (Java) run on the CPU and host memory either
 * way, so this only pins ND4J's CUDA context to the task's device.
 */
public final class GpuBinding {
    private static final Logger LOG = LoggerFactory.getLogger(GpuBinding.class);

    private GpuBinding() {
    }

    /** Returns the bound device ordinal, or -1 when none was bound. */
    public static int bind(TaskContext tc) {
        Map<String, ResourceInformation> res = tc.resourcesJMap();
        ResourceInformation gpu = res == null ? null : res.get("gpu");
        if (gpu == null || gpu.addresses().length == 0) {
            return -1;
        }
        io.catena.model.kernel.NativeSetup.prepare(); // the host's native variant, before ND4J loads here
        String backend = Nd4j.getBackend().getClass().getName();
        if (!backend.toLowerCase().contains("cuda") && !backend.contains("JCublas")) {
            LOG.warn("task {} was assigned GPU {} but ND4J runs the {} backend; build the app jar with -Pgpu to use it",
                    tc.partitionId(), gpu.addresses()[0], backend);
            return -1;
        }
        int device;
        try {
            device = Integer.parseInt(gpu.addresses()[0].trim());
        } catch (NumberFormatException e) {
            throw new IllegalStateException("GPU address '" + gpu.addresses()[0] + "' from Spark's discovery script is not a device "
                    + "ordinal; the script must print {\"name\":\"gpu\",\"addresses\":[\"0\",...]}");
        }
        Nd4j.getAffinityManager().unsafeSetDevice(device);
        LOG.info("task {} bound ND4J to GPU {}", tc.partitionId(), device);
        return device;
    }
}
