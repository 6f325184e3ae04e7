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
 * Launcher for src/main/cuda/attn_colsum.cu: weighted column sums of attention probabilities of a
 * few query rows over a paged KV cache, per (sequence, KV head, key), recomputed from q, K and the
 * log-sum-exp. One launch for a ragged batch.
 */
public final class AttnColsumKernel {
    /** Keys per block: ACS_KT. */
    public static final int KEYS_PER_BLOCK = 32;
    /** (row, head) pairs per shared-memory chunk: ACS_QT. */
    static final int PAIRS_PER_CHUNK = 16;
    static final int THREADS = 128;

    static final KernelSpec F32_SPEC = spec("tp_attn_colsum_f32");
    static final KernelSpec F16_SPEC = spec("tp_attn_colsum_f16");
    static final KernelSpec BF16_SPEC = spec("tp_attn_colsum_bf16");

    private AttnColsumKernel() {
    }

    private static KernelSpec spec(String name) {
        // q, q_row_stride, q_head_stride, lse, lse_row_stride, lse_head_stride, cache, block_stride, slot_stride, head_stride,
        // k_x, k_chunk_stride, k_dim_stride, block_size, heads, kv_heads, head_dim, num_blocks, block_tables, table_stride, q_offsets, q_pos, q_weight,
        // out_offsets, scale, prev, decay, prev_lens, paged_out, out, status, epoch
        return KernelSpec.of(name, PTR, I64, I64, PTR, I64, I64, PTR, I64, I64, I64, I32, I64, I64, I32, I32, I32, I32, I32, PTR, I32, PTR, PTR, PTR, PTR, F32,
                PTR, F32, PTR, I32, PTR, PTR, I32);
    }

    static List<KernelSpec> specs() {
        return List.of(F32_SPEC, F16_SPEC, BF16_SPEC);
    }

    /** Dynamic shared memory: the Q chunk and the transposed, padded K tile, as floats. */
    public static int sharedBytes(int headDim) {
        return (PAIRS_PER_CHUNK + KEYS_PER_BLOCK + 1) * headDim * 4;
    }

    /** The largest head dimension whose tiles fit on {@code device}. */
    public static int maxHeadDim(KernelDevice device) {
        return device.maxDynamicSharedBytes(specs()) / ((PAIRS_PER_CHUNK + KEYS_PER_BLOCK + 1) * 4);
    }

    /**
     * Queues the kernel for {@code seqs} sequences whose longest holds {@code maxKvLen} tokens; queues
     * nothing when {@code maxKvLen == 0}. Arguments as in attn_colsum.cu ({@code kX}, {@code kChunkStride},
     * {@code kDimStride}: the key half's split-x dim addressing, {@link tokenprune.kv.KvLayout}); {@code weights}, {@code prev}
     * and {@code prevLens} may be null; {@code pagedOut}: out/prev indexed by physical slot.
     */
    public static void launch(KernelDevice device, Stream stream, DType dtype, DeviceBuffer q, long qRowStride, long qHeadStride, DeviceBuffer lse,
                              long lseRowStride, long lseHeadStride, DeviceBuffer cache, long blockStride, long slotStride, long headStride,
                              int kX, long kChunkStride, long kDimStride, int blockSize, int heads, int kvHeads, int headDim, int numBlocks, DeviceBuffer blockTables, int tableStride,
                              DeviceBuffer qOffsets, DeviceBuffer qPos, DeviceBuffer weights, DeviceBuffer outOffsets, int seqs, int maxKvLen,
                              float scale, DeviceBuffer prev, float decay, DeviceBuffer prevLens, boolean pagedOut, DeviceBuffer out,
                              DeviceBuffer status, int epoch) {
        if (maxKvLen == 0) return;
        KernelSpec spec = switch (dtype) {
            case F32 -> F32_SPEC;
            case F16 -> F16_SPEC;
            case BF16 -> BF16_SPEC;
        };
        int tiles = (maxKvLen + KEYS_PER_BLOCK - 1) / KEYS_PER_BLOCK;
        device.launch(spec, new Dim3(tiles, kvHeads, seqs), Dim3.of(THREADS), sharedBytes(headDim), stream,
                KernelArgs.of().ptr(q).i64(qRowStride).i64(qHeadStride).ptr(lse).i64(lseRowStride).i64(lseHeadStride).ptr(cache).i64(blockStride)
                        .i64(slotStride).i64(headStride).i32(kX).i64(kChunkStride).i64(kDimStride).i32(blockSize).i32(heads).i32(kvHeads).i32(headDim).i32(numBlocks).ptr(blockTables)
                        .i32(tableStride).ptr(qOffsets).ptr(qPos).ptrOrNull(weights).ptr(outOffsets).f32(scale).ptrOrNull(prev).f32(decay).ptrOrNull(prevLens)
                        .i32(pagedOut ? 1 : 0).ptr(out)
                        .ptr(status).i32(epoch));
    }
}
