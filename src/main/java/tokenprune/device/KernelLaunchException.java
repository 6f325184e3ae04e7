package tokenprune.device;

/**
 * A kernel launch was refused or failed. The message names the kernel, the grid and block sizes,
 * the dynamic shared memory and the CUDA error name (or the simulator's diagnosis). The cuda and
 * sim devices throw it for the same launch-limit violations.
 */
public class KernelLaunchException extends DeviceException {
    public KernelLaunchException(String kernel, Dim3 grid, Dim3 block, int sharedBytes, String error) {
        super("kernel " + kernel + " grid " + grid + " block " + block + " smem " + sharedBytes + " B: " + error);
    }
}
