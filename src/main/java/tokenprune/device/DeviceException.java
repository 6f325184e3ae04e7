package tokenprune.device;

/** A failure reported by the CUDA driver or the kernel simulator. */
public class DeviceException extends RuntimeException {
    public DeviceException(String message) {
        super(message);
    }

    public DeviceException(String message, Throwable cause) {
        super(message, cause);
    }
}
