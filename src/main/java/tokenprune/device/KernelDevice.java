package tokenprune.device;

import java.util.Objects;

/**
 * A device that runs the CUDA kernels: {@code cuda} (a GPU through JCuda) or {@code sim} (the CPU
 * kernel simulator). Both share this class's argument checking, launch-limit checking and memory
 * API, so the same Java launch code drives both.
 *
 * <p>Memory: {@link #alloc} gives an owned {@link DeviceBuffer}; {@link #wrap} borrows a caller's
 * device allocation (address + length) without taking ownership. Host copies take Java primitive
 * arrays and are complete when the call returns.
 */
public abstract class KernelDevice implements Device {
    /** CUDA's limits for every launch (the GPU and the simulator enforce the same ones). */
    public static final int MAX_THREADS_PER_BLOCK = 1024;
    public static final int DEFAULT_DYNAMIC_SHARED_BYTES = 48 * 1024;

    // ---- backend operations -------------------------------------------------------------------
    protected abstract long allocRaw(long bytes);

    protected abstract void freeRaw(long address);

    protected abstract void copyFromHost(Object array, long arrayByteOffset, long dstAddress, long bytes, Stream stream);

    protected abstract void copyToHost(long srcAddress, Object array, long arrayByteOffset, long bytes, Stream stream);

    protected abstract void copyDeviceToDevice(long dst, long src, long bytes, Stream stream);

    protected abstract void fillRaw(long dst, int byteValue, long bytes, Stream stream);

    protected abstract void launchRaw(KernelSpec kernel, Dim3 grid, Dim3 block, int sharedBytes, Stream stream, KernelArgs args);

    protected abstract long createStreamRaw();

    protected abstract void destroyStream(long handle);

    protected abstract void synchronize(Stream stream);

    /** The most shared memory (static + dynamic) one block may use on this device. */
    public abstract int maxDynamicSharedBytes();

    /**
     * The most dynamic shared memory one block of {@code kernel} may request: the device's limit
     * less the kernel's own static shared memory (the two share one budget).
     */
    public int maxDynamicSharedBytes(KernelSpec kernel) {
        return maxDynamicSharedBytes() - staticSharedBytes(kernel);
    }

    /** The kernel's static shared memory; 0 where it cannot be known (the simulator). */
    protected int staticSharedBytes(KernelSpec kernel) {
        return 0;
    }

    /** The least of {@link #maxDynamicSharedBytes(KernelSpec)} over a kernel family (one entry point per dtype). */
    public int maxDynamicSharedBytes(java.util.List<KernelSpec> family) {
        int m = Integer.MAX_VALUE;
        for (KernelSpec k : family) m = Math.min(m, maxDynamicSharedBytes(k));
        return m;
    }

    /** A timer for work on {@code stream}. */
    public abstract Timer timer(Stream stream);

    // ---- memory -------------------------------------------------------------------------------
    /** Allocates {@code bytes} of device memory (contents undefined). */
    public DeviceBuffer alloc(long bytes) {
        if (bytes <= 0) throw new IllegalArgumentException("bytes: must be > 0, got " + bytes);
        return new DeviceBuffer(this, allocRaw(bytes), bytes, true);
    }

    /** Borrows {@code [address, address + bytes)} of device memory owned by the caller. */
    public DeviceBuffer wrap(long address, long bytes) {
        if (address == 0) throw new IllegalArgumentException("address: must not be null (0)");
        if (bytes <= 0) throw new IllegalArgumentException("bytes: must be > 0, got " + bytes);
        return new DeviceBuffer(this, address, bytes, false);
    }

    void free(long address) {
        freeRaw(address);
    }

    public void upload(float[] src, DeviceBuffer dst, Stream stream) {
        copyIn(src, src.length * 4L, dst, stream);
    }

    public void upload(int[] src, DeviceBuffer dst, Stream stream) {
        copyIn(src, src.length * 4L, dst, stream);
    }

    public void upload(short[] src, DeviceBuffer dst, Stream stream) {
        copyIn(src, src.length * 2L, dst, stream);
    }

    public void download(DeviceBuffer src, float[] dst, Stream stream) {
        copyOut(src, dst, dst.length * 4L, stream);
    }

    public void download(DeviceBuffer src, int[] dst, Stream stream) {
        copyOut(src, dst, dst.length * 4L, stream);
    }

    public void download(DeviceBuffer src, short[] dst, Stream stream) {
        copyOut(src, dst, dst.length * 2L, stream);
    }

    public void download(DeviceBuffer src, byte[] dst, Stream stream) {
        copyOut(src, dst, dst.length, stream);
    }

    /** Copies the first {@code bytes} of {@code src} to {@code dst}. */
    public void copy(DeviceBuffer src, DeviceBuffer dst, long bytes, Stream stream) {
        requireOwnBuffer(src, "src");
        requireOwnBuffer(dst, "dst");
        if (bytes > src.bytes() || bytes > dst.bytes()) {
            throw new IllegalArgumentException("copy of " + bytes + " bytes exceeds src (" + src.bytes() + ") or dst (" + dst.bytes() + ")");
        }
        if (bytes > 0) copyDeviceToDevice(dst.address(), src.address(), bytes, stream);
    }

    /** Sets every byte of {@code dst} to {@code byteValue}. */
    public void fill(DeviceBuffer dst, int byteValue, Stream stream) {
        requireOwnBuffer(dst, "dst");
        fillRaw(dst.address(), byteValue & 0xff, dst.bytes(), stream);
    }

    private void copyIn(Object src, long bytes, DeviceBuffer dst, Stream stream) {
        requireOwnBuffer(dst, "dst");
        if (bytes > dst.bytes()) throw new IllegalArgumentException("dst: " + bytes + " bytes do not fit a device buffer of " + dst.bytes());
        if (bytes > 0) copyFromHost(src, 0, dst.address(), bytes, stream);
    }

    private void copyOut(DeviceBuffer src, Object dst, long bytes, Stream stream) {
        requireOwnBuffer(src, "src");
        if (bytes > src.bytes()) throw new IllegalArgumentException("src: a device buffer of " + src.bytes() + " bytes cannot fill " + bytes + " bytes");
        if (bytes > 0) copyToHost(src.address(), dst, 0, bytes, stream);
    }

    private void requireOwnBuffer(DeviceBuffer b, String name) {
        Objects.requireNonNull(b, name);
        if (b.device() != this) throw new IllegalArgumentException(name + ": buffer belongs to another device");
    }

    // ---- streams ------------------------------------------------------------------------------
    /** The legacy default stream (handle 0). */
    public Stream defaultStream() {
        return new Stream(this, 0L, false);
    }

    /** A new stream owned by the caller (close it). */
    public Stream createStream() {
        return new Stream(this, createStreamRaw(), true);
    }

    /** Borrows a caller's CUstream handle; tokenprune never destroys it. */
    public Stream wrapStream(long handle) {
        return new Stream(this, handle, false);
    }

    // ---- launches -----------------------------------------------------------------------------
    /**
     * Launches {@code kernel} after checking the arguments against its signature and the launch
     * against CUDA's limits; both devices throw the same {@link KernelLaunchException} for a
     * launch the GPU would refuse.
     */
    public void launch(KernelSpec kernel, Dim3 grid, Dim3 block, int sharedBytes, Stream stream, KernelArgs args) {
        kernel.check(args);
        String refused = launchLimitViolation(kernel, grid, block, sharedBytes);
        if (refused != null) throw new KernelLaunchException(kernel.name(), grid, block, sharedBytes, refused);
        if (stream.device() != this) throw new IllegalArgumentException("stream: belongs to another device");
        launchRaw(kernel, grid, block, sharedBytes, stream, args);
    }

    private String launchLimitViolation(KernelSpec kernel, Dim3 grid, Dim3 block, int sharedBytes) {
        if (block.x() < 1 || block.y() < 1 || block.z() < 1) return "CUDA_ERROR_INVALID_VALUE: block dimensions must be >= 1";
        if (block.x() > 1024 || block.y() > 1024 || block.z() > 64) return "CUDA_ERROR_INVALID_VALUE: block dimensions exceed (1024, 1024, 64)";
        if (block.volume() > MAX_THREADS_PER_BLOCK) return "CUDA_ERROR_INVALID_VALUE: " + block.volume() + " threads per block exceed " + MAX_THREADS_PER_BLOCK;
        if (grid.x() < 1 || grid.y() < 1 || grid.z() < 1) return "CUDA_ERROR_INVALID_VALUE: grid dimensions must be >= 1";
        if (grid.y() > 65535 || grid.z() > 65535) return "CUDA_ERROR_INVALID_VALUE: grid y and z must be <= 65535";
        if (sharedBytes < 0 || sharedBytes > maxDynamicSharedBytes(kernel)) {
            return "CUDA_ERROR_INVALID_VALUE: " + sharedBytes + " bytes of dynamic shared memory exceed the " + maxDynamicSharedBytes(kernel)
                    + " this kernel may use on this device";
        }
        return null;
    }
}
