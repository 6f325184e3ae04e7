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
 * Launcher for src/main/cuda/kv_compact.cu: KV-cache compaction of a ragged batch over all layers —
 * a validation launch (grid seqs × layers) and the move (grid seqs·splits × 2·kvHeads × layers), both
 * of 128 threads. Two launches per call whatever the number of layers.
 */
public final class KvCompactKernel {
    static final int THREADS = 128;
    /** Bytes of rows staged per chunk (the move's shared memory is about this much). */
    static final int CHUNK_BYTES = 8192;
    /** Per-token shared-memory metadata: two int64 offsets, delta, flags, state value, state slot. */
    static final int META_BYTES = 32;

    // src_tables, src_table_stride, dst_tables, dst_table_stride, block_size, num_blocks, kv_heads, src_len, keep_offsets, keep,
    // keep_head_stride, keep_layer_stride, status, epoch
    static final KernelSpec CHECK = KernelSpec.of("tp_kv_compact_check", PTR, I32, PTR, I32, I32, I32, I32, PTR, PTR, PTR, I64, I64, PTR, I32);
    static final KernelSpec F32_SPEC = spec("tp_kv_compact_f32");
    static final KernelSpec F16_SPEC = spec("tp_kv_compact_f16");
    static final KernelSpec BF16_SPEC = spec("tp_kv_compact_bf16");

    private KvCompactKernel() {
    }

    private static KernelSpec spec(String name) {
        // layer_ptrs, layers, has_state, kv_stride, block_stride, slot_stride, head_stride, v_slot_stride, k_x, k_chunk_stride, k_dim_stride,
        // v_x, v_chunk_stride, v_dim_stride, block_size, kv_heads, head_dim, src_tables,
        // src_table_stride, dst_tables, dst_table_stride, keep_offsets, keep, keep_head_stride, keep_layer_stride, deltas, splits,
        // chunk_tokens, unit_bytes, rotary_dim, rope_base, rope_style, status, epoch
        return KernelSpec.of(name, PTR, I32, I32, I64, I64, I64, I64, I64, I32, I64, I64, I32, I64, I64, I32, I32, I32, PTR, I32, PTR, I32, PTR, PTR, I64, I64, PTR, I32, I32, I32,
                I32, F32, I32, PTR, I32);
    }

    static List<KernelSpec> specs() {
        return List.of(CHECK, F32_SPEC, F16_SPEC, BF16_SPEC);
    }

    /** Kept tokens staged per chunk for a head dimension of {@code rowBytes} bytes. */
    public static int chunkTokens(int rowBytes) {
        return Math.max(1, CHUNK_BYTES / rowBytes);
    }

    /** The move's dynamic shared memory. */
    public static int sharedBytes(int rowBytes) {
        int ld = (rowBytes + 15) / 16 * 16;
        return chunkTokens(rowBytes) * (ld + META_BYTES);
    }

    /** Queues tp_kv_compact_check for {@code seqs} rows of {@code layers} layers. */
    public static void launchCheck(KernelDevice device, Stream stream, DeviceBuffer srcTables, int srcTableStride, DeviceBuffer dstTables,
                                   int dstTableStride, int blockSize, int numBlocks, int kvHeads, DeviceBuffer srcLen, DeviceBuffer keepOffsets,
                                   DeviceBuffer keep, long keepHeadStride, long keepLayerStride, int seqs, int layers, DeviceBuffer status, int epoch) {
        device.launch(CHECK, new Dim3(seqs, layers, 1), Dim3.of(THREADS), 0, stream,
                KernelArgs.of().ptr(srcTables).i32(srcTableStride).ptr(dstTables).i32(dstTableStride).i32(blockSize).i32(numBlocks).i32(kvHeads)
                        .ptr(srcLen).ptr(keepOffsets).ptr(keep).i64(keepHeadStride).i64(keepLayerStride).ptr(status).i32(epoch));
    }

    /**
     * Queues tp_kv_compact_{dtype}. {@code layerPtrs}: layers int64 cache addresses, then (hasState)
     * layers int64 state addresses; {@code deltas} may be null; {@code splits} = 1 for in place. {@code slotStride}
     * is the key's; {@code vSlotStride} and the halves' split-x dim addressing as in {@link tokenprune.kv.KvLayout}
     * (a half that is not dim contiguous moves element-wise: pass the element size as {@code unitBytes}).
     */
    public static void launchMove(KernelDevice device, Stream stream, DType dtype, DeviceBuffer layerPtrs, int layers, boolean hasState, long kvStride,
                                  long blockStride, long slotStride, long headStride, long vSlotStride, int kX, long kChunkStride, long kDimStride,
                                  int vX, long vChunkStride, long vDimStride, int blockSize, int kvHeads, int headDim, DeviceBuffer srcTables,
                                  int srcTableStride, DeviceBuffer dstTables, int dstTableStride, DeviceBuffer keepOffsets, DeviceBuffer keep,
                                  long keepHeadStride, long keepLayerStride, DeviceBuffer deltas, int seqs, int splits, int unitBytes, int rotaryDim,
                                  float ropeBase, int ropeStyle, DeviceBuffer status, int epoch) {
        KernelSpec spec = switch (dtype) {
            case F32 -> F32_SPEC;
            case F16 -> F16_SPEC;
            case BF16 -> BF16_SPEC;
        };
        int rowBytes = headDim * dtype.bytes();
        long gx = (long) seqs * splits;
        if (gx > Integer.MAX_VALUE) throw new IllegalArgumentException("seqs x splits: " + gx + " blocks exceed the grid");
        device.launch(spec, new Dim3((int) gx, 2 * kvHeads, layers), Dim3.of(THREADS), sharedBytes(rowBytes), stream,
                KernelArgs.of().ptr(layerPtrs).i32(layers).i32(hasState ? 1 : 0).i64(kvStride).i64(blockStride).i64(slotStride).i64(headStride)
                        .i64(vSlotStride).i32(kX).i64(kChunkStride).i64(kDimStride).i32(vX).i64(vChunkStride).i64(vDimStride).i32(blockSize)
                        .i32(kvHeads).i32(headDim).ptr(srcTables).i32(srcTableStride).ptr(dstTables).i32(dstTableStride)
                        .ptr(keepOffsets).ptr(keep).i64(keepHeadStride).i64(keepLayerStride).ptrOrNull(deltas).i32(splits)
                        .i32(chunkTokens(rowBytes)).i32(unitBytes).i32(rotaryDim).f32(ropeBase).i32(ropeStyle).ptr(status).i32(epoch));
    }
}
