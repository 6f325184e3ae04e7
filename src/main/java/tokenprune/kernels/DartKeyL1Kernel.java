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
 * Launcher for {@code tp_dart_key_l1_*} (src/main/cuda/dart.cu): the L1 norm of every key row of
 * the image and text tokens of every sequence, one warp per token, one launch for the batch.
 */
public final class DartKeyL1Kernel {
    static final int THREADS = 256;
    static final int ROWS_PER_BLOCK = THREADS / 32;

    static final KernelSpec F32 = spec("tp_dart_key_l1_f32");
    static final KernelSpec F16 = spec("tp_dart_key_l1_f16");
    static final KernelSpec BF16 = spec("tp_dart_key_l1_bf16");

    private DartKeyL1Kernel() {
    }

    private static KernelSpec spec(String name) {
        // keys, row_stride, d, seq_info, key_l1, status, epoch
        return KernelSpec.of(name, PTR, I64, I32, PTR, PTR, PTR, I32);
    }

    static List<KernelSpec> specs() {
        return List.of(F32, F16, BF16);
    }

    /**
     * Queues the norms. {@code seqInfo} is the device copy of {@link DartSelectKernel#seqInfo};
     * {@code maxTokensFromImage} is the largest {@code seq_len - image_start} of the batch;
     * {@code keyL1} holds one float per row of the keys' layout.
     */
    public static void launch(KernelDevice device, Stream stream, DType dtype, DeviceBuffer keys, long rowStride, int d,
                              DeviceBuffer seqInfo, int sequences, int maxTokensFromImage, DeviceBuffer keyL1,
                              DeviceBuffer status, int epoch) {
        KernelSpec spec = switch (dtype) {
            case F32 -> F32;
            case F16 -> F16;
            case BF16 -> BF16;
        };
        int blocks = (maxTokensFromImage + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK;
        device.launch(spec, Dim3.of(blocks, sequences), Dim3.of(THREADS), 0, stream,
                KernelArgs.of().ptr(keys).i64(rowStride).i32(d).ptr(seqInfo).ptr(keyL1).ptr(status).i32(epoch));
    }
}
