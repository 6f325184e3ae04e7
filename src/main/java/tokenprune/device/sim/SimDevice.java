package tokenprune.device.sim;

import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

import tokenprune.device.DeviceException;
import tokenprune.device.DeviceKind;
import tokenprune.device.Dim3;
import tokenprune.device.KernelArgs;
import tokenprune.device.KernelDevice;
import tokenprune.device.KernelLaunchException;
import tokenprune.device.KernelSpec;
import tokenprune.device.Stream;
import tokenprune.device.Timer;

/**
 * The CUDA kernels, from the same .cu sources, run on the CPU by the kernel simulator. Device
 * memory is host memory; every operation completes before the call returns, so streams only
 * order work trivially. Launches go through the same argument packing and limit checks as the
 * cuda device. Simulation is slow (one fiber per CUDA thread): use small shapes.
 */
public final class SimDevice extends KernelDevice {
    /** H100's opt-in maximum, so that a launch the GPU refuses is refused here too. */
    private static final int MAX_DYNAMIC_SHARED = 227 * 1024;

    private final Schedule schedule;
    private final AtomicLong streamIds = new AtomicLong(1);

    private SimDevice(Schedule schedule) {
        if (!SimLibrary.available()) throw new DeviceException("sim device unavailable: " + SimLibrary.reason());
        this.schedule = schedule;
    }

    public static SimDevice open() {
        return new SimDevice(Schedule.IN_ORDER);
    }

    public static SimDevice open(Schedule schedule) {
        return new SimDevice(schedule);
    }

    /** Whether the simulator library loads here; never throws. */
    public static boolean available() {
        return SimLibrary.available();
    }

    public static String reason() {
        return SimLibrary.reason();
    }

    public Schedule schedule() {
        return schedule;
    }

    /** Names of the kernels compiled into the loaded simulator library. */
    public List<String> kernelNames() {
        return Arrays.asList(CusimNative.kernelNames());
    }

    @Override
    public DeviceKind kind() {
        return DeviceKind.SIM;
    }

    @Override
    public String description() {
        return "sim: CPU kernel simulator, schedule " + schedule;
    }

    @Override
    public int maxDynamicSharedBytes() {
        return MAX_DYNAMIC_SHARED;
    }

    @Override
    protected long allocRaw(long bytes) {
        long a = CusimNative.alloc(bytes);
        if (a == 0) throw new DeviceException("sim: cannot allocate " + bytes + " bytes");
        return a;
    }

    @Override
    protected void freeRaw(long address) {
        CusimNative.free(address);
    }

    @Override
    protected void copyFromHost(Object array, long arrayByteOffset, long dstAddress, long bytes, Stream stream) {
        CusimNative.copyFromArray(array, arrayByteOffset, dstAddress, bytes);
    }

    @Override
    protected void copyToHost(long srcAddress, Object array, long arrayByteOffset, long bytes, Stream stream) {
        CusimNative.copyToArray(srcAddress, array, arrayByteOffset, bytes);
    }

    @Override
    protected void copyDeviceToDevice(long dst, long src, long bytes, Stream stream) {
        CusimNative.copyWithin(dst, src, bytes);
    }

    @Override
    protected void fillRaw(long dst, int byteValue, long bytes, Stream stream) {
        CusimNative.fill(dst, byteValue, bytes);
    }

    @Override
    protected void launchRaw(KernelSpec kernel, Dim3 grid, Dim3 block, int sharedBytes, Stream stream, KernelArgs args) {
        String error = CusimNative.launch(kernel.name(), grid.x(), grid.y(), grid.z(), block.x(), block.y(), block.z(), sharedBytes,
                args.slots(), schedule.kind().ordinal(), schedule.seed());
        if (error != null) throw new KernelLaunchException(kernel.name(), grid, block, sharedBytes, error);
    }

    @Override
    protected long createStreamRaw() {
        return streamIds.getAndIncrement();
    }

    @Override
    protected void destroyStream(long handle) {
    }

    @Override
    protected void synchronize(Stream stream) {
    }

    @Override
    public Timer timer(Stream stream) {
        return new Timer() {
            private long t0;

            @Override
            public void start() {
                t0 = System.nanoTime();
            }

            @Override
            public double stopMillis() {
                return (System.nanoTime() - t0) / 1e6;
            }

            @Override
            public void close() {
            }
        };
    }

    @Override
    public void close() {
    }
}
