package tokenprune.device.cuda;

import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;

/**
 * Whether a CUDA GPU can be used here, and why not. The only class that touches
 * {@link JCudaDriver} first: without an NVIDIA driver JCuda throws UnsatisfiedLinkError on the
 * first touch and NoClassDefFoundError on every later one, so the probe catches LinkageError once
 * and caches the answer. It never throws.
 */
public final class CudaProbe {
    private CudaProbe() {
    }

    /** The probe's cached result. */
    public record Result(boolean available, String reason, String deviceName, int ccMajor, int ccMinor, int driverVersion) {
    }

    private static final class Holder {
        static final Result RESULT = run();
    }

    public static boolean available() {
        return Holder.RESULT.available();
    }

    /** One line: the GPU found, or why none can be used. */
    public static String reason() {
        return Holder.RESULT.reason();
    }

    public static Result result() {
        return Holder.RESULT;
    }

    private static Result run() {
        tokenprune.device.NativeTemp.ensureExists();
        try {
            int rc = JCudaDriver.cuInit(0);
            if (rc != CUresult.CUDA_SUCCESS) {
                return unavailable("cuInit failed with " + CUresult.stringFor(rc)
                        + (rc == CUresult.CUDA_ERROR_NO_DEVICE ? " (no CUDA-capable GPU)" : " (driver too old for CUDA 13 fatbins? need R580+)"));
            }
            int[] count = new int[1];
            rc = JCudaDriver.cuDeviceGetCount(count);
            if (rc != CUresult.CUDA_SUCCESS) return unavailable("cuDeviceGetCount failed with " + CUresult.stringFor(rc));
            if (count[0] == 0) return unavailable("the NVIDIA driver reports no CUDA device");
            CUdevice dev = new CUdevice();
            rc = JCudaDriver.cuDeviceGet(dev, 0);
            if (rc != CUresult.CUDA_SUCCESS) return unavailable("cuDeviceGet(0) failed with " + CUresult.stringFor(rc));
            byte[] name = new byte[256];
            JCudaDriver.cuDeviceGetName(name, name.length, dev);
            int[] major = new int[1], minor = new int[1], driver = new int[1];
            JCudaDriver.cuDeviceGetAttribute(major, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
            JCudaDriver.cuDeviceGetAttribute(minor, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
            JCudaDriver.cuDriverGetVersion(driver);
            String deviceName = cString(name);
            if (major[0] < 8) {
                return new Result(false, deviceName + " has compute capability " + major[0] + "." + minor[0] + "; tokenprune's kernels need 8.0 or newer",
                        deviceName, major[0], minor[0], driver[0]);
            }
            String reason = deviceName + " (sm_" + major[0] + minor[0] + ", driver CUDA " + driver[0] / 1000 + "." + (driver[0] % 1000) / 10 + ")";
            return new Result(true, reason, deviceName, major[0], minor[0], driver[0]);
        } catch (LinkageError e) {
            String detail = String.valueOf(e.getMessage());
            Throwable c = e;
            while (c != null) {  // the "no driver" signature sits in a nested cause
                if (String.valueOf(c.getMessage()).contains("libcuda.so")) {
                    detail = "libcuda.so.1 cannot be loaded";
                    break;
                }
                c = c.getCause();
            }
            return unavailable("no usable NVIDIA driver: " + detail);
        } catch (RuntimeException e) {
            return unavailable("CUDA probe failed: " + e);
        }
    }

    private static Result unavailable(String reason) {
        return new Result(false, reason, null, 0, 0, 0);
    }

    static String cString(byte[] bytes) {
        int n = 0;
        while (n < bytes.length && bytes[n] != 0) n++;
        return new String(bytes, 0, n, java.nio.charset.StandardCharsets.US_ASCII);
    }
}
