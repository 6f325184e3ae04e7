package tokenprune.sim;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.ArrayList;
import java.util.List;

import tokenprune.device.ArgType;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.Dim3;
import tokenprune.device.KernelArgs;
import tokenprune.device.KernelLaunchException;
import tokenprune.device.KernelSpec;
import tokenprune.device.sim.Schedule;
import tokenprune.device.sim.SimDevice;

/**
 * A {@link SimDevice} under one schedule plus the device buffers a test allocates on it (all freed
 * by {@link #close}), and the signatures of the self-test kernels of src/test/cuda/cusim_selftest.cu.
 * Launches go through the real Java path: {@link KernelSpec} + {@link KernelArgs} +
 * {@code KernelDevice.launch}.
 *
 * <p>The device API copies only int/float/short arrays, so 64-bit and 16-bit values travel as
 * little-endian int words and are split or joined here.
 */
final class SimHarness implements AutoCloseable {
    // ---- the self-test kernels, parameter for parameter as in cusim_selftest.cu ----------------
    static final ArgType PTR = ArgType.PTR, I32 = ArgType.I32;

    static final KernelSpec BLOCK_SUM = KernelSpec.of("tp_selftest_block_sum", PTR, PTR, I32);
    static final KernelSpec BLOCK_SUM_LOOP = KernelSpec.of("tp_selftest_block_sum_loop", PTR, I32);
    static final KernelSpec ARGMAX_LOOP = KernelSpec.of("tp_selftest_argmax_loop", PTR, I32, I32, PTR);
    static final KernelSpec WARP_SUM_WIDTH16 = KernelSpec.of("tp_selftest_warp_sum_width16", PTR, PTR);
    static final KernelSpec WARP0_ONLY = KernelSpec.of("tp_selftest_warp0_only", PTR, PTR);
    static final KernelSpec BLOCK_SCAN = KernelSpec.of("tp_selftest_block_scan", PTR, PTR, PTR);
    static final KernelSpec SHFL_WIDTH = KernelSpec.of("tp_selftest_shfl_width", PTR, PTR, PTR, PTR, PTR);
    static final KernelSpec SHFL_TYPES = KernelSpec.of("tp_selftest_shfl_types", PTR, PTR, PTR);
    static final KernelSpec VOTES = KernelSpec.of("tp_selftest_votes", PTR, PTR, PTR, PTR, PTR);
    static final KernelSpec EARLY_EXIT = KernelSpec.of("tp_selftest_early_exit", PTR, I32);
    static final KernelSpec SYNC_REDUCE = KernelSpec.of("tp_selftest_sync_reduce", PTR, PTR, I32);
    static final KernelSpec NEIGHBOUR_READ = KernelSpec.of("tp_selftest_neighbour_read", PTR, I32);
    static final KernelSpec HISTOGRAM = KernelSpec.of("tp_selftest_histogram", PTR, I32, PTR, PTR);
    static final KernelSpec ATOMICS = KernelSpec.of("tp_selftest_atomics", PTR, PTR, PTR, PTR, PTR);
    static final KernelSpec RUN_ORDER = KernelSpec.of("tp_selftest_run_order", PTR, PTR, PTR);
    static final KernelSpec DIMS = KernelSpec.of("tp_selftest_dims", PTR);
    static final KernelSpec DTYPES = KernelSpec.of("tp_selftest_dtypes", PTR, PTR, PTR, PTR, PTR, I32);
    static final KernelSpec SMEM_POISON = KernelSpec.of("tp_selftest_smem_poison", PTR, PTR);
    static final KernelSpec SMEM_WRITE = KernelSpec.of("tp_selftest_smem_write", I32);
    static final KernelSpec DIVERGENT_BARRIER = KernelSpec.of("tp_selftest_divergent_barrier", PTR);
    static final KernelSpec SHFL_EXITED_LANE = KernelSpec.of("tp_selftest_shfl_exited_lane", PTR);
    static final KernelSpec SHFL_VS_BARRIER = KernelSpec.of("tp_selftest_shfl_vs_barrier", PTR);
    static final KernelSpec BAD_MASK = KernelSpec.of("tp_selftest_bad_mask", PTR);
    static final KernelSpec TRAP = KernelSpec.of("tp_selftest_trap", PTR, I32);
    static final KernelSpec MIXED_WARP_OPS = KernelSpec.of("tp_selftest_mixed_warp_ops", PTR);

    // warp matrix functions (nvcuda::wmma), newer than the rest: their tests skip where the
    // simulator library lacks them
    static final KernelSpec WMMA_F16 = KernelSpec.of("tp_selftest_wmma_f16", PTR, PTR, PTR, ArgType.F32, PTR, PTR);
    static final KernelSpec WMMA_BF16 = KernelSpec.of("tp_selftest_wmma_bf16", PTR, PTR, PTR, ArgType.F32, PTR, PTR);
    static final KernelSpec WMMA_F16_ALT = KernelSpec.of("tp_selftest_wmma_f16_alt", PTR, PTR, PTR, ArgType.F32, PTR, PTR);
    static final KernelSpec WMMA_BF16_ALT = KernelSpec.of("tp_selftest_wmma_bf16_alt", PTR, PTR, PTR, ArgType.F32, PTR, PTR);
    static final KernelSpec WMMA_STORE_READ = KernelSpec.of("tp_selftest_wmma_store_read", ArgType.F32, I32, PTR);
    static final KernelSpec WMMA_MISUSE = KernelSpec.of("tp_selftest_wmma_misuse", PTR, PTR, I32, PTR);

    static final List<KernelSpec> WMMA = List.of(WMMA_F16, WMMA_BF16, WMMA_F16_ALT, WMMA_BF16_ALT, WMMA_STORE_READ, WMMA_MISUSE);

    /** Every self-test kernel but the wmma ones. */
    static final List<KernelSpec> CORE = List.of(BLOCK_SUM, BLOCK_SUM_LOOP, ARGMAX_LOOP, WARP_SUM_WIDTH16, WARP0_ONLY,
            BLOCK_SCAN, SHFL_WIDTH, SHFL_TYPES, VOTES, EARLY_EXIT, SYNC_REDUCE, NEIGHBOUR_READ, HISTOGRAM, ATOMICS,
            RUN_ORDER, DIMS, DTYPES, SMEM_POISON, SMEM_WRITE, DIVERGENT_BARRIER, SHFL_EXITED_LANE, SHFL_VS_BARRIER,
            BAD_MASK, TRAP, MIXED_WARP_OPS);

    static final List<KernelSpec> ALL = java.util.stream.Stream.concat(CORE.stream(), WMMA.stream()).toList();

    // ---- device and buffers ---------------------------------------------------------------------
    final SimDevice device;
    private final List<DeviceBuffer> buffers = new ArrayList<>();

    private SimHarness(SimDevice device) {
        this.device = device;
    }

    /** Opens the simulator under {@code schedule}, or skips the test when it cannot load here. */
    static SimHarness open(Schedule schedule) {
        assumeTrue(SimDevice.available(), SimDevice::reason);
        return new SimHarness(SimDevice.open(schedule));
    }

    /** {@code bytes} of fresh device memory (rounded up to whole int words). */
    DeviceBuffer alloc(long bytes) {
        DeviceBuffer b = device.alloc((bytes + 3) & ~3L);
        buffers.add(b);
        return b;
    }

    DeviceBuffer ints(int... values) {
        DeviceBuffer b = alloc(values.length * 4L);
        device.upload(values, b, device.defaultStream());
        return b;
    }

    DeviceBuffer floats(float... values) {
        DeviceBuffer b = alloc(values.length * 4L);
        device.upload(values, b, device.defaultStream());
        return b;
    }

    DeviceBuffer shorts(short... values) {
        DeviceBuffer b = alloc(values.length * 2L);
        device.upload(values, b, device.defaultStream());
        return b;
    }

    /** {@code count} ints, every one {@code value}. */
    DeviceBuffer intsOf(int count, int value) {
        int[] v = new int[count];
        java.util.Arrays.fill(v, value);
        return ints(v);
    }

    /** {@code bytes} of device memory, every byte 0. */
    DeviceBuffer zeros(long bytes) {
        DeviceBuffer b = alloc(bytes);
        device.fill(b, 0, device.defaultStream());
        return b;
    }

    void set(DeviceBuffer b, int... values) {
        device.upload(values, b, device.defaultStream());
    }

    void set(DeviceBuffer b, float... values) {
        device.upload(values, b, device.defaultStream());
    }

    void fill(DeviceBuffer b, int byteValue) {
        device.fill(b, byteValue, device.defaultStream());
    }

    int[] readInts(DeviceBuffer b, int count) {
        int[] out = new int[count];
        device.download(b, out, device.defaultStream());
        return out;
    }

    float[] readFloats(DeviceBuffer b, int count) {
        float[] out = new float[count];
        device.download(b, out, device.defaultStream());
        return out;
    }

    /** 64-bit values (long long, unsigned long long, double bits), little-endian. */
    long[] readLongs(DeviceBuffer b, int count) {
        int[] words = readInts(b, 2 * count);
        long[] out = new long[count];
        for (int i = 0; i < count; i++) out[i] = (words[2 * i] & 0xffffffffL) | ((long) words[2 * i + 1] << 32);
        return out;
    }

    double[] readDoubles(DeviceBuffer b, int count) {
        long[] bits = readLongs(b, count);
        double[] out = new double[count];
        for (int i = 0; i < count; i++) out[i] = Double.longBitsToDouble(bits[i]);
        return out;
    }

    /** 16-bit values (__half, __nv_bfloat16 bits), little-endian. */
    short[] readShorts(DeviceBuffer b, int count) {
        int[] words = readInts(b, (count + 1) / 2);
        short[] out = new short[count];
        for (int i = 0; i < count; i++) out[i] = (short) (words[i / 2] >>> (16 * (i % 2)));
        return out;
    }

    // ---- launches -------------------------------------------------------------------------------
    void launch(KernelSpec kernel, Dim3 grid, Dim3 block, int sharedBytes, KernelArgs args) {
        device.launch(kernel, grid, block, sharedBytes, device.defaultStream(), args);
    }

    /** Launches a kernel that must fail; returns the exception (its message is the diagnosis). */
    KernelLaunchException launchFails(KernelSpec kernel, Dim3 grid, Dim3 block, int sharedBytes, KernelArgs args) {
        return assertThrows(KernelLaunchException.class, () -> launch(kernel, grid, block, sharedBytes, args),
                kernel.name() + " must fail under " + device.schedule());
    }

    /** Skips the test when the loaded simulator library lacks {@code kernel}. */
    void assumeKernel(KernelSpec kernel) {
        assumeTrue(device.kernelNames().contains(kernel.name()), () -> kernel.name() + " is not in this simulator library");
    }

    static KernelArgs args() {
        return KernelArgs.of();
    }

    @Override
    public void close() {
        for (DeviceBuffer b : buffers) b.close();
        buffers.clear();
        device.close();
    }
}
