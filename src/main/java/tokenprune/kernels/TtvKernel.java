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
 * Launcher for tp_ttv_* (src/main/cuda/transprune.cu): TransPrune's token transition variation of
 * one sub-block, one launch for a whole ragged batch, one pass over u and v.
 */
public final class TtvKernel {
    /** Rows per block (one per warp): TPR_TTV_WARPS in transprune.cu. */
    public static final int ROWS_PER_BLOCK = 4;
    static final int THREADS = 32 * ROWS_PER_BLOCK;

    static final KernelSpec F32 = spec("tp_ttv_f32");
    static final KernelSpec F16 = spec("tp_ttv_f16");
    static final KernelSpec BF16 = spec("tp_ttv_bf16");

    private TtvKernel() {
    }

    private static KernelSpec spec(String name) {
        // u, u_stride, v, v_stride, d, seq, chunks_max, me, z_partial, status, epoch
        return KernelSpec.of(name, PTR, I64, PTR, I64, I32, PTR, I32, PTR, PTR, PTR, I32);
    }

    static List<KernelSpec> specs() {
        return List.of(F32, F16, BF16);
    }

    /** Partial sums of exp(1 - cos) per sequence: one per block of ROWS_PER_BLOCK rows. */
    public static int chunks(int maxLength) {
        return (maxLength + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK;
    }

    /**
     * Queues the kernel. {@code seq}: the device copy of the batch descriptor (5 ints per
     * sequence, {@code ImageSequences.descriptor()}); {@code me}: one float per image token of the
     * batch (m e of each, written); {@code zPartial}: sets x chunks(maxLength) floats (written for
     * every chunk a sequence has). Non-finite u/v or a zero u row set {@code *status = epoch}.
     */
    public static void launch(KernelDevice device, Stream stream, DType dtype, DeviceBuffer u, long uStride, DeviceBuffer v, long vStride, int d,
                              DeviceBuffer seq, int sets, int maxLength, DeviceBuffer me, DeviceBuffer zPartial, DeviceBuffer status, int epoch) {
        KernelSpec spec = switch (dtype) {
            case F32 -> F32;
            case F16 -> F16;
            case BF16 -> BF16;
        };
        int chunks = chunks(maxLength);
        device.launch(spec, Dim3.of(chunks, sets), Dim3.of(THREADS), 0, stream,
                KernelArgs.of().ptr(u).i64(uStride).ptr(v).i64(vStride).i32(d).ptr(seq).i32(chunks).ptr(me).ptr(zPartial).ptr(status).i32(epoch));
    }
}
