package tokenprune.device;

/** The pure-Java reference implementation: no kernels, no native code. */
public final class CpuDevice implements Device {
    @Override
    public DeviceKind kind() {
        return DeviceKind.CPU;
    }

    @Override
    public String description() {
        return "cpu: Java float64 reference (" + Runtime.getRuntime().availableProcessors() + " cores)";
    }

    @Override
    public void close() {
    }
}
