package tokenprune.kernels;

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
 * Launcher for src/main/cuda/kv_keep.cu: the keep decision of the attention-score KV policies (sinks +
 * top-k of the middle + recent window, optional SnapKV pooling, per-head or shared over the KV heads)
 * for a ragged batch, from contiguous row scores or the paged per-slot decode state. One block of 256
 * threads per row.
 */
public final class KvKeepKernel {
    static final int THREADS = 256;

    // scores, seq_offsets, seqs, kv_heads, shared, block_tables, table_stride, block_size, num_blocks, sinks, recent, budget,
    // pool_kernel, pool_max, later_kept, keep_offsets, base_scratch, pool_scratch, keep, kv_len_out, status, epoch
    static final KernelSpec SELECT = KernelSpec.of("tp_kv_keep_select", PTR, PTR, I32, I32, I32, PTR, I32, I32, I32, I32, I32, I32, I32, I32, I32,
            PTR, PTR, PTR, PTR, PTR, PTR, I32);

    private KvKeepKernel() {
    }

    static List<KernelSpec> specs() {
        return List.of(SELECT);
    }

    /**
     * Queues tp_kv_keep_select over {@code rows} rows ({@code seqs * kvHeads} per head, {@code seqs} shared).
     * {@code blockTables} null: contiguous scores; otherwise the paged state. {@code laterKept}: equal
     * scores at the cut keep the higher index (A2SF-REF) instead of the lower. {@code baseScratch},
     * {@code poolScratch} and {@code kvLenOut} may be null where kv_keep.cu says so.
     */
    public static void launch(KernelDevice device, Stream stream, DeviceBuffer scores, DeviceBuffer seqOffsets, int seqs, int kvHeads, boolean shared,
                              DeviceBuffer blockTables, int tableStride, int blockSize, int numBlocks, int sinks, int recent, int budget,
                              int poolKernel, boolean poolMax, boolean laterKept, DeviceBuffer keepOffsets, DeviceBuffer baseScratch, DeviceBuffer poolScratch,
                              DeviceBuffer keep, DeviceBuffer kvLenOut, DeviceBuffer status, int epoch) {
        int rows = shared ? seqs : seqs * kvHeads;
        if (rows == 0) return;
        device.launch(SELECT, Dim3.of(rows), Dim3.of(THREADS), 0, stream,
                KernelArgs.of().ptr(scores).ptr(seqOffsets).i32(seqs).i32(kvHeads).i32(shared ? 1 : 0).ptrOrNull(blockTables).i32(tableStride)
                        .i32(blockSize).i32(numBlocks).i32(sinks).i32(recent).i32(budget).i32(poolKernel).i32(poolMax ? 1 : 0).i32(laterKept ? 1 : 0)
                        .ptr(keepOffsets)
                        .ptrOrNull(baseScratch).ptrOrNull(poolScratch).ptr(keep).ptrOrNull(kvLenOut).ptr(status).i32(epoch));
    }
}
