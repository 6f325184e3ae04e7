package tokenprune.device;

/**
 * Where a method runs. {@link KernelDevice}s (cuda, sim) run the CUDA kernels; {@link CpuDevice}
 * runs the Java reference. Close a device you opened; closing releases its modules and
 * contexts, never memory a caller owns.
 */
public interface Device extends AutoCloseable {
    DeviceKind kind();

    /** One line for humans: the GPU's name and compute capability, the simulator schedule, ... */
    String description();

    @Override
    void close();
}
