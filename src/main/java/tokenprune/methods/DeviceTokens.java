package tokenprune.methods;

import tokenprune.device.DeviceBuffer;

/**
 * Token features already in device memory (owned by the caller, e.g. another JVM ML library's
 * tensor wrapped with {@link tokenprune.device.KernelDevice#wrap}), laid out as {@link TokenLayout}
 * says. The layout's offsets live on the host: they decide grid sizes and keep counts.
 */
public record DeviceTokens(DeviceBuffer data, DType dtype, TokenLayout layout) {
    public DeviceTokens {
        long need = layout.requiredElements() * dtype.bytes();
        if (data.bytes() < need) {
            throw new IllegalArgumentException("tokens: " + layout + " of " + dtype + " needs " + need + " bytes, the device buffer has " + data.bytes());
        }
    }
}
