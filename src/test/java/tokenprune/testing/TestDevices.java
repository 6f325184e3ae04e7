package tokenprune.testing;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.stream.Stream;

import tokenprune.device.KernelDevice;
import tokenprune.device.cuda.CudaDevice;
import tokenprune.device.cuda.CudaProbe;
import tokenprune.device.sim.Schedule;
import tokenprune.device.sim.SimDevice;

/**
 * The kernel devices every kernel test runs on: the simulator under two schedules (in order, and
 * seeded random thread and block order), and the GPU when there is one. Without a GPU the cuda
 * case is skipped with the probe's reason, so reports show why.
 */
public final class TestDevices {
    private TestDevices() {
    }

    /** Set -Dtokenprune.testDevices=cuda (comma list) to run only some, e.g. under compute-sanitizer. */
    public static final String PROPERTY = "tokenprune.testDevices";

    public static Stream<String> kernelDevices() {
        return only(Stream.of("sim-in-order", "sim-random", "cuda"));
    }

    private static Stream<String> only(Stream<String> names) {
        String wanted = System.getProperty(PROPERTY);
        if (wanted == null || wanted.isBlank()) return names;
        java.util.List<String> keep = java.util.Arrays.asList(wanted.split(","));
        return names.filter(keep::contains);
    }

    public static Stream<String> simDevices() {
        return only(Stream.of("sim-in-order", "sim-random"));
    }

    /** Opens the named device, or skips the test with the reason it cannot run here. */
    public static KernelDevice open(String name) {
        switch (name) {
            case "sim-in-order" -> {
                assumeTrue(SimDevice.available(), SimDevice::reason);
                return SimDevice.open(Schedule.IN_ORDER);
            }
            case "sim-reverse" -> {
                assumeTrue(SimDevice.available(), SimDevice::reason);
                return SimDevice.open(Schedule.REVERSE);
            }
            case "sim-random" -> {
                assumeTrue(SimDevice.available(), SimDevice::reason);
                return SimDevice.open(Schedule.random(0x5EED));
            }
            case "cuda" -> {
                assumeTrue(CudaProbe.available(), () -> "no GPU: " + CudaProbe.reason());
                return CudaDevice.open(0);
            }
            default -> throw new IllegalArgumentException(name);
        }
    }
}
