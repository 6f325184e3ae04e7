package tokenprune.methods;

import tokenprune.device.DeviceBuffer;

/**
 * FasterVLM's inputs already in device memory (e.g. a ViT's q_proj / k_proj outputs held by another
 * JVM library, wrapped with {@link tokenprune.device.KernelDevice#wrap}), laid out as
 * {@link ClsAttentionLayout} says; queries and keys share one dtype. The two buffers may be views
 * of the same allocation (a fused qkv tensor).
 */
public record DeviceClsAttention(DeviceBuffer queries, DeviceBuffer keys, DType dtype, ClsAttentionLayout layout) {
    public DeviceClsAttention {
        long qNeed = layout.requiredQueryElements() * dtype.bytes();
        if (queries.bytes() < qNeed) {
            throw new IllegalArgumentException("queries: " + layout + " of " + dtype + " needs " + qNeed + " bytes, the device buffer has " + queries.bytes());
        }
        long kNeed = layout.requiredKeyElements() * dtype.bytes();
        if (keys.bytes() < kNeed) {
            throw new IllegalArgumentException("keys: " + layout + " of " + dtype + " needs " + kNeed + " bytes, the device buffer has " + keys.bytes());
        }
        if (queries.device() != keys.device()) throw new IllegalArgumentException("keys: on another device than the queries");
    }
}
