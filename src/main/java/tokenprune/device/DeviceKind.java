package tokenprune.device;

import java.util.Locale;

/** The three ways tokenprune can run a method. */
public enum DeviceKind {
    /** The CUDA kernels on an NVIDIA GPU, through JCuda's driver API. */
    CUDA,
    /** The same CUDA kernels, compiled with g++, run on the CPU by the kernel simulator. */
    SIM,
    /** The pure-Java float64 reference; no kernels. */
    CPU;

    public String cliName() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** Parses cuda, sim or cpu (any case). */
    public static DeviceKind parse(String name) {
        for (DeviceKind k : values()) {
            if (k.cliName().equalsIgnoreCase(name.trim())) return k;
        }
        throw new IllegalArgumentException("device: unknown device '" + name + "'; expected one of cuda, sim, cpu, auto");
    }
}
