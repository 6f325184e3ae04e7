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
 * Launcher for src/main/cuda/kv_token_score.cu: the PagedEviction token score of a batch of
 * sequences read from a paged KV cache through element strides and block tables (16-byte loads when
 * the cache view is dim contiguous and aligned, element-wise otherwise, e.g. the legacy split-x layout;
 * the kernel picks), or the hashed
 * {@code random} score that reads only the tables. One launch.
 */
public final class KvTokenScoreKernel {
    static final int THREADS = 256, TOKENS_PER_BLOCK = THREADS / 32;

    static final KernelSpec F32_SPEC = spec("tp_kv_token_score_f32");
    static final KernelSpec F16_SPEC = spec("tp_kv_token_score_f16");
    static final KernelSpec BF16_SPEC = spec("tp_kv_token_score_bf16");

    // block_size, num_blocks, block_tables, table_stride, token_begin, out_offsets, seqs, seed, scores, status, epoch
    static final KernelSpec RANDOM_SPEC = KernelSpec.of("tp_kv_random_score", I32, I32, PTR, I32, PTR, PTR, I32, I64, PTR, PTR, I32);

    private static KernelSpec spec(String name) {
        // cache, kv_stride, block_stride, slot_stride, head_stride, v_slot_stride, k_x, k_chunk_stride, k_dim_stride, v_x, v_chunk_stride,
        // v_dim_stride, block_size, heads, head_dim, num_blocks, block_tables, table_stride,
        // token_begin, out_offsets, seqs, metric, head_agg, eps, scores, status, epoch
        return KernelSpec.of(name, PTR, I64, I64, I64, I64, I64, I32, I64, I64, I32, I64, I64, I32, I32, I32, I32, PTR, I32, PTR, PTR, I32, I32, I32, F32, PTR, PTR, I32);
    }

    private KvTokenScoreKernel() {
    }

    static List<KernelSpec> specs() {
        return List.of(F32_SPEC, F16_SPEC, BF16_SPEC, RANDOM_SPEC);
    }

    /**
     * Queues the scoring of {@code totalTokens} tokens. Strides are in elements ({@code slotStride} the
     * key's; the value's slot stride and each half's split-x dim addressing x, chunk and dim strides as
     * in {@link tokenprune.kv.KvLayout}); {@code blockTables}:
     * {@code seqs} rows of {@code tableStride} int32; {@code tokenBegin}: seqs ints or null (0);
     * {@code outOffsets}: seqs + 1 ints, {@code outOffsets[seqs] == totalTokens}; {@code scores}:
     * totalTokens floats. Queues nothing when {@code totalTokens == 0}.
     */
    public static void launch(KernelDevice device, Stream stream, DType dtype, DeviceBuffer cache, long kvStride, long blockStride, long slotStride,
                              long headStride, long vSlotStride, int kX, long kChunkStride, long kDimStride, int vX, long vChunkStride,
                              long vDimStride, int blockSize, int heads, int headDim, int numBlocks, DeviceBuffer blockTables, int tableStride,
                              DeviceBuffer tokenBegin, DeviceBuffer outOffsets, int seqs, int totalTokens, int metric, int headAgg, float eps,
                              DeviceBuffer scores, DeviceBuffer status, int epoch) {
        if (totalTokens == 0) return;
        KernelSpec spec = switch (dtype) {
            case F32 -> F32_SPEC;
            case F16 -> F16_SPEC;
            case BF16 -> BF16_SPEC;
        };
        device.launch(spec, Dim3.of((totalTokens + TOKENS_PER_BLOCK - 1) / TOKENS_PER_BLOCK), Dim3.of(THREADS), 0, stream,
                KernelArgs.of().ptr(cache).i64(kvStride).i64(blockStride).i64(slotStride).i64(headStride).i64(vSlotStride).i32(kX).i64(kChunkStride)
                        .i64(kDimStride).i32(vX).i64(vChunkStride).i64(vDimStride).i32(blockSize).i32(heads).i32(headDim)
                        .i32(numBlocks).ptr(blockTables).i32(tableStride).ptrOrNull(tokenBegin).ptr(outOffsets).i32(seqs).i32(metric).i32(headAgg)
                        .f32(eps).ptr(scores).ptr(status).i32(epoch));
    }

    /**
     * Queues the {@code random} score of {@code totalTokens} tokens (one thread each): the table walk
     * of {@link #launch} without reading K/V. Queues nothing when {@code totalTokens == 0}.
     */
    public static void launchRandom(KernelDevice device, Stream stream, int blockSize, int numBlocks, DeviceBuffer blockTables, int tableStride,
                                    DeviceBuffer tokenBegin, DeviceBuffer outOffsets, int seqs, int totalTokens, long seed, DeviceBuffer scores,
                                    DeviceBuffer status, int epoch) {
        if (totalTokens == 0) return;
        device.launch(RANDOM_SPEC, Dim3.of((totalTokens + THREADS - 1) / THREADS), Dim3.of(THREADS), 0, stream,
                KernelArgs.of().i32(blockSize).i32(numBlocks).ptr(blockTables).i32(tableStride).ptrOrNull(tokenBegin).ptr(outOffsets).i32(seqs).i64(seed)
                        .ptr(scores).ptr(status).i32(epoch));
    }
}
