package tokenprune.device;

import java.util.List;
import java.util.Locale;

import tokenprune.device.cuda.CudaDevice;
import tokenprune.device.cuda.CudaProbe;
import tokenprune.device.sim.SimDevice;

/**
 * Opens devices by kind, or picks one automatically: {@code cuda} when a usable GPU is present,
 * else {@code cpu}. The automatic choice can be overridden with the system property
 * {@code tokenprune.device} or the environment variable {@code TOKENPRUNE_DEVICE} (cuda, sim,
 * cpu or auto); the property wins.
 */
public final class Devices {
    public static final String PROPERTY = "tokenprune.device";
    public static final String ENVIRONMENT = "TOKENPRUNE_DEVICE";

    private Devices() {
    }

    /** Opens a device of the given kind; throws {@link DeviceException} saying why if it cannot run here. */
    public static Device open(DeviceKind kind) {
        return switch (kind) {
            case CUDA -> CudaDevice.open(0);
            case SIM -> SimDevice.open();
            case CPU -> new CpuDevice();
        };
    }

    /** Opens "cuda", "sim", "cpu" or "auto". */
    public static Device open(String name) {
        if (name.trim().equalsIgnoreCase("auto")) return openAuto();
        return open(DeviceKind.parse(name));
    }

    /** The override if one is set, else cuda when available, else cpu. */
    public static Device openAuto() {
        String override = System.getProperty(PROPERTY);
        if (override == null || override.isBlank()) override = System.getenv(ENVIRONMENT);
        if (override != null && !override.isBlank() && !override.trim().equalsIgnoreCase("auto")) {
            return open(DeviceKind.parse(override));
        }
        return CudaProbe.available() ? open(DeviceKind.CUDA) : open(DeviceKind.CPU);
    }

    /** Whether a device kind can run here, and why (not). */
    public record Availability(DeviceKind kind, boolean available, String reason) {
        @Override
        public String toString() {
            return String.format(Locale.ROOT, "%-5s %-3s %s", kind.cliName(), available ? "yes" : "no", reason);
        }
    }

    /** Probes every kind without throwing. */
    public static List<Availability> probe() {
        return List.of(
                new Availability(DeviceKind.CUDA, CudaProbe.available(), CudaProbe.reason()),
                new Availability(DeviceKind.SIM, SimDevice.available(), SimDevice.reason()),
                new Availability(DeviceKind.CPU, true, "Java float64 reference"));
    }
}
