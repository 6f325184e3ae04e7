package tokenprune.kernels;

import static tokenprune.device.ArgType.I32;
import static tokenprune.device.ArgType.I64;
import static tokenprune.device.ArgType.PTR;

import java.util.List;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.Dim3;
import tokenprune.device.KernelArgs;
import tokenprune.device.KernelDevice;
import tokenprune.device.KernelSpec;
import tokenprune.device.Stream;
import tokenprune.methods.DType;

/** Launcher for src/main/cuda/cosine_distance.cu: one launch for a whole (ragged) batch. */
public final class CosineDistanceKernel {
    public static final int TILE = 64;
    /** fp32 runs on CUDA cores (256 threads); fp16 and bf16 on tensor cores (4 warps). */
    static final int THREADS_F32 = 256, THREADS_TENSOR_CORES = 128;

    static final KernelSpec F32 = spec("tp_cosine_distance_f32");
    static final KernelSpec F16 = spec("tp_cosine_distance_f16");
    static final KernelSpec BF16 = spec("tp_cosine_distance_bf16");

    private CosineDistanceKernel() {
    }

    private static KernelSpec spec(String name) {
        // x, row_stride, row_offsets, tiles_max, d, dist, nn_partial, status, epoch
        return KernelSpec.of(name, PTR, I64, PTR, I32, I32, PTR, PTR, PTR, I32);
    }

    static List<KernelSpec> specs() {
        return List.of(F32, F16, BF16);
    }

    /** 64-row tiles per dimension for a set of {@code maxN} tokens. */
    public static int tiles(int maxN) {
        return (maxN + TILE - 1) / TILE;
    }

    /** Floats of the per-row nearest-neighbour partials: 2 per row per column tile. */
    public static long nnPartialFloats(int totalRows, int maxN) {
        return 2L * totalRows * tiles(maxN);
    }

    /**
     * Queues the distance kernel. {@code rowOffsets} is the device copy of the layout's offsets
     * (sets + 1 ints); {@code nnPartial} may be null; non-finite input sets {@code *status = epoch}.
     */
    public static void launch(KernelDevice device, Stream stream, DType dtype, DeviceBuffer x, long rowStride, DeviceBuffer rowOffsets,
                              int sets, int maxN, int d, DeviceBuffer dist, DeviceBuffer nnPartial, DeviceBuffer status, int epoch) {
        int tiles = tiles(maxN);
        KernelSpec spec = switch (dtype) {
            case F32 -> F32;
            case F16 -> F16;
            case BF16 -> BF16;
        };
        int threads = dtype == DType.F32 ? THREADS_F32 : THREADS_TENSOR_CORES;
        device.launch(spec, Dim3.of(tiles * (tiles + 1) / 2, sets), Dim3.of(threads), 0, stream,
                KernelArgs.of().ptr(x).i64(rowStride).ptr(rowOffsets).i32(tiles).i32(d).ptr(dist).ptrOrNull(nnPartial).ptr(status).i32(epoch));
    }
}
