package tokenprune.methods;

import java.util.Objects;

import tokenprune.device.DeviceBuffer;

/** Per-head vectors (queries or keys) already in device memory, laid out as {@link HeadLayout} says. */
public record DeviceHeads(DeviceBuffer data, DType dtype, HeadLayout layout) {
    public DeviceHeads {
        Objects.requireNonNull(data, "data");
        Objects.requireNonNull(dtype, "dtype");
        Objects.requireNonNull(layout, "layout");
        long need = layout.requiredElements() * dtype.bytes();
        if (data.bytes() < need) {
            throw new IllegalArgumentException("heads: " + layout + " of " + dtype + " needs " + need + " bytes, the device buffer has " + data.bytes());
        }
    }
}
