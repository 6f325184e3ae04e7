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

/**
 * Launcher for {@code tp_dart_cosine_*} (src/main/cuda/dart.cu): every block finds its sequence's
 * pivots from the key L1 norms, then computes the cosines of all pivots' hidden states with 32
 * image tokens; block 0 of each sequence also writes the pivots. One launch for the batch.
 */
public final class DartCosineKernel {
    static final int THREADS = 256;
    /** Image tokens per block. */
    public static final int TILE = 32;
    /** Pivots per sequence the kernels support (image + text). */
    public static final int MAX_PIVOTS = 32;

    static final KernelSpec F32 = spec("tp_dart_cosine_f32");
    static final KernelSpec F16 = spec("tp_dart_cosine_f16");
    static final KernelSpec BF16 = spec("tp_dart_cosine_bf16");

    private DartCosineKernel() {
    }

    private static KernelSpec spec(String name) {
        // hidden, row_stride, d, seq_info, key_l1, p_img, p_txt, pivots, cos, status, epoch
        return KernelSpec.of(name, PTR, I64, I32, PTR, PTR, I32, I32, PTR, PTR, PTR, I32);
    }

    static List<KernelSpec> specs() {
        return List.of(F32, F16, BF16);
    }

    /** Floats of the cosine scratch: one row of L per pivot per sequence. */
    public static long cosineFloats(int pivots, long totalImageTokens) {
        return pivots * totalImageTokens;
    }

    /**
     * Queues the cosines. {@code pivots} receives P ints per sequence (positions within the
     * sequence, image pivots then text pivots, each in top-k order); {@code cos} holds
     * {@link #cosineFloats} floats.
     */
    public static void launch(KernelDevice device, Stream stream, DType dtype, DeviceBuffer hidden, long rowStride, int d,
                              DeviceBuffer seqInfo, int sequences, int maxImageLength, DeviceBuffer keyL1, int pivotImage,
                              int pivotText, DeviceBuffer pivots, DeviceBuffer cos, DeviceBuffer status, int epoch) {
        KernelSpec spec = switch (dtype) {
            case F32 -> F32;
            case F16 -> F16;
            case BF16 -> BF16;
        };
        int tiles = (maxImageLength + TILE - 1) / TILE;
        device.launch(spec, Dim3.of(tiles, sequences), Dim3.of(THREADS), 0, stream,
                KernelArgs.of().ptr(hidden).i64(rowStride).i32(d).ptr(seqInfo).ptr(keyL1).i32(pivotImage).i32(pivotText)
                        .ptr(pivots).ptr(cos).ptr(status).i32(epoch));
    }
}
