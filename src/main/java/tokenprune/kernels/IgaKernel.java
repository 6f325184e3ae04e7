package tokenprune.kernels;

import static tokenprune.device.ArgType.F32;
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

/**
 * Launcher for tp_iga_* (src/main/cuda/transprune.cu): TransPrune's instruction-guided attention,
 * text query rows only, per (16-row tile, head, sequence) partial sums of the image columns'
 * probabilities; the score kernel reduces them in a fixed order.
 */
public final class IgaKernel {
    /** Query rows per block: TPR_IGA_QT in transprune.cu. */
    public static final int ROWS_PER_BLOCK = 16;
    /** Keys per tile: TPR_IGA_KT (the K tile is stored with KT + 1 columns). */
    static final int KEYS_PER_TILE = 32;
    static final int THREADS = 128;

    static final KernelSpec SPEC_F32 = spec("tp_iga_f32");
    static final KernelSpec SPEC_F16 = spec("tp_iga_f16");
    static final KernelSpec SPEC_BF16 = spec("tp_iga_bf16");

    private IgaKernel() {
    }

    private static KernelSpec spec(String name) {
        // q, q_token_stride, q_head_stride, k, k_token_stride, k_head_stride, heads, kv_heads, head_dim, scale,
        // seq, tiles_max, image_total, partial, status, epoch
        return KernelSpec.of(name, PTR, I64, I64, PTR, I64, I64, I32, I32, I32, F32, PTR, I32, I32, PTR, PTR, I32);
    }

    static List<KernelSpec> specs() {
        return List.of(SPEC_F32, SPEC_F16, SPEC_BF16);
    }

    public static int tiles(int maxTextRows) {
        return (maxTextRows + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK;
    }

    /** Dynamic shared memory: the Q tile and the transposed K tile, as floats. */
    public static int sharedBytes(int headDim) {
        return (ROWS_PER_BLOCK + KEYS_PER_TILE + 1) * headDim * 4;
    }

    /** The largest head dimension whose tiles fit on {@code device}. */
    public static int maxHeadDim(KernelDevice device) {
        return device.maxDynamicSharedBytes(specs()) / ((ROWS_PER_BLOCK + KEYS_PER_TILE + 1) * 4);
    }

    /** Floats of the partials: heads x tiles x image tokens of the batch. */
    public static long partialFloats(int heads, int maxTextRows, int imageTotal) {
        return (long) heads * tiles(maxTextRows) * imageTotal;
    }

    public static void launch(KernelDevice device, Stream stream, DType dtype, DeviceBuffer q, long qTokenStride, long qHeadStride,
                              DeviceBuffer k, long kTokenStride, long kHeadStride, int heads, int kvHeads, int headDim, float scale,
                              DeviceBuffer seq, int sets, int maxTextRows, int imageTotal, DeviceBuffer partial, DeviceBuffer status, int epoch) {
        KernelSpec spec = switch (dtype) {
            case F32 -> SPEC_F32;
            case F16 -> SPEC_F16;
            case BF16 -> SPEC_BF16;
        };
        int tiles = tiles(maxTextRows);
        device.launch(spec, new Dim3(tiles, heads, sets), Dim3.of(THREADS), sharedBytes(headDim), stream,
                KernelArgs.of().ptr(q).i64(qTokenStride).i64(qHeadStride).ptr(k).i64(kTokenStride).i64(kHeadStride).i32(heads).i32(kvHeads)
                        .i32(headDim).f32(scale).ptr(seq).i32(tiles).i32(imageTotal).ptr(partial).ptr(status).i32(epoch));
    }
}
