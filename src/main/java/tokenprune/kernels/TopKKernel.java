package tokenprune.kernels;

import static tokenprune.device.ArgType.F32;
import static tokenprune.device.ArgType.I32;
import static tokenprune.device.ArgType.PTR;

import java.util.List;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.Dim3;
import tokenprune.device.KernelArgs;
import tokenprune.device.KernelDevice;
import tokenprune.device.KernelSpec;
import tokenprune.device.Stream;

/**
 * Launcher for src/main/cuda/topk_select.cu: exact top-k (radix select + ascending compaction) and
 * threshold selection over B score rows, one block per row, one launch for the batch.
 */
public final class TopKKernel {
    // scores, row_offsets, keep_offsets, status, epoch, kept, keep_mask
    static final KernelSpec SELECT = KernelSpec.of("tp_topk_select", PTR, PTR, PTR, PTR, I32, PTR, PTR);
    // scores, row_offsets, threshold, status, epoch, kept, counts, keep_mask
    static final KernelSpec THRESHOLD = KernelSpec.of("tp_threshold_select", PTR, PTR, F32, PTR, I32, PTR, PTR, PTR);

    private TopKKernel() {
    }

    static List<KernelSpec> specs() {
        return List.of(SELECT, THRESHOLD);
    }

    /**
     * Threads per block: about two scores per thread, a multiple of 32, at most 1024. Every pass is a
     * short loop between barriers, so the wider the block the shorter the latency chain.
     */
    public static int threadsFor(int maxN) {
        int half = (int) Math.min(1024L, (maxN + 1L) / 2);
        return Math.max(32, (half + 31) / 32 * 32);
    }

    /**
     * Queues tp_topk_select. {@code rowOffsets} and {@code keepOffsets} are device copies (rows + 1
     * ints each); {@code keepMask} may be null. A row with a NaN/Inf score sets {@code *status = epoch}
     * and is not written; nothing is written if {@code *status == epoch} already.
     */
    public static void launchSelect(KernelDevice device, Stream stream, DeviceBuffer scores, DeviceBuffer rowOffsets, DeviceBuffer keepOffsets,
                                    int rows, int maxN, DeviceBuffer status, int epoch, DeviceBuffer kept, DeviceBuffer keepMask) {
        device.launch(SELECT, Dim3.of(rows), Dim3.of(threadsFor(maxN)), 0, stream,
                KernelArgs.of().ptr(scores).ptr(rowOffsets).ptr(keepOffsets).ptr(status).i32(epoch).ptr(kept).ptrOrNull(keepMask));
    }

    /**
     * Queues tp_threshold_select: row b's kept indices go to {@code kept} at int offset
     * rowOffsets[b] (capacity n_b), their count to {@code counts[b]}; {@code keepMask} may be null.
     */
    public static void launchThreshold(KernelDevice device, Stream stream, DeviceBuffer scores, DeviceBuffer rowOffsets, float threshold,
                                       int rows, int maxN, DeviceBuffer status, int epoch, DeviceBuffer kept, DeviceBuffer counts,
                                       DeviceBuffer keepMask) {
        device.launch(THRESHOLD, Dim3.of(rows), Dim3.of(threadsFor(maxN)), 0, stream,
                KernelArgs.of().ptr(scores).ptr(rowOffsets).f32(threshold).ptr(status).i32(epoch).ptr(kept).ptr(counts).ptrOrNull(keepMask));
    }
}
