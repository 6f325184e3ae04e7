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

/**
 * Launcher for src/main/cuda/gather_tokens.cu: copies the kept rows of B sets into a packed tensor
 * (bit for bit, any dtype) and writes their position ids. One launch for the batch.
 */
public final class GatherKernel {
    static final int THREADS = 256, ROWS_PER_BLOCK = THREADS / 32, CHUNK_BYTES = 2048;

    // src, src_row_stride, src_row_offsets, kept, keep_offsets, sets, row_bytes, dst, dst_row_stride,
    // positions, position_base, original_positions, status, epoch
    static final KernelSpec SPEC = KernelSpec.of("tp_gather_tokens", PTR, I64, PTR, PTR, PTR, I32, I32, PTR, I64, PTR, I32, I32, PTR, I32);

    private GatherKernel() {
    }

    static List<KernelSpec> specs() {
        return List.of(SPEC);
    }

    /** The longest row one launch can copy: gridDim.y (column slices of 2048 bytes) is at most 65535. */
    public static int maxRowBytes() {
        return 65535 * CHUNK_BYTES;
    }

    /**
     * Queues the gather of {@code totalKept} rows of {@code rowBytes} bytes. Strides are in bytes;
     * {@code srcRowOffsets} and {@code keepOffsets} are device copies (sets + 1 ints);
     * {@code positions} may be null. Queues nothing when {@code totalKept == 0}.
     */
    public static void launch(KernelDevice device, Stream stream, DeviceBuffer src, long srcRowStrideBytes, DeviceBuffer srcRowOffsets,
                              DeviceBuffer kept, DeviceBuffer keepOffsets, int sets, int totalKept, int rowBytes,
                              DeviceBuffer dst, long dstRowStrideBytes, DeviceBuffer positions, int positionBase, boolean originalPositions,
                              DeviceBuffer status, int epoch) {
        if (totalKept == 0) return;
        Dim3 grid = Dim3.of((totalKept + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK, (rowBytes + CHUNK_BYTES - 1) / CHUNK_BYTES);
        device.launch(SPEC, grid, Dim3.of(THREADS), 0, stream,
                KernelArgs.of().ptr(src).i64(srcRowStrideBytes).ptr(srcRowOffsets).ptr(kept).ptr(keepOffsets).i32(sets).i32(rowBytes)
                        .ptr(dst).i64(dstRowStrideBytes).ptrOrNull(positions).i32(positionBase).i32(originalPositions ? 1 : 0)
                        .ptr(status).i32(epoch));
    }
}
