package tokenprune.device;

import java.util.ArrayList;
import java.util.List;

/**
 * Typed kernel arguments, in order: {@code KernelArgs.of().ptr(x).i64(stride).i32(n)}. Each value is
 * kept as its raw bits in a 64-bit slot (an int or float in the low 32 bits), which is what both
 * cuLaunchKernel and the simulator read through their {@code void** params}.
 */
public final class KernelArgs {
    private final List<ArgType> types = new ArrayList<>();
    private final List<Long> bits = new ArrayList<>();

    private KernelArgs() {
    }

    public static KernelArgs of() {
        return new KernelArgs();
    }

    public KernelArgs ptr(DeviceBuffer buffer) {
        return add(ArgType.PTR, buffer.address());
    }

    /** A pointer that may be null (the kernel treats address 0 as "absent"). */
    public KernelArgs ptrOrNull(DeviceBuffer buffer) {
        return add(ArgType.PTR, buffer == null ? 0L : buffer.address());
    }

    public KernelArgs i32(int value) {
        return add(ArgType.I32, value & 0xffffffffL);
    }

    public KernelArgs i64(long value) {
        return add(ArgType.I64, value);
    }

    public KernelArgs f32(float value) {
        return add(ArgType.F32, Float.floatToRawIntBits(value) & 0xffffffffL);
    }

    private KernelArgs add(ArgType type, long value) {
        types.add(type);
        bits.add(value);
        return this;
    }

    public int size() {
        return types.size();
    }

    public List<ArgType> types() {
        return List.copyOf(types);
    }

    public ArgType type(int i) {
        return types.get(i);
    }

    public long bits(int i) {
        return bits.get(i);
    }

    /** The raw 64-bit slots, one per argument. */
    public long[] slots() {
        long[] s = new long[bits.size()];
        for (int i = 0; i < s.length; i++) s[i] = bits.get(i);
        return s;
    }
}
