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
 * Launcher for src/main/cuda/kv_block_evict.cu: the batched decode-time victim of block-granular
 * eviction (attention-score state or StreamingLLM), one block of 128 threads per sequence. Its
 * {@code stage} output is what {@link PagedEvictionKernel#launchApply} (with layers = 0) consumes.
 */
public final class KvBlockEvictKernel {
    static final int THREADS = 128;

    /** The kernel's {@code policy} codes. */
    public static final int POLICY_ATTENTION = 0, POLICY_STREAMING = 1;

    // layer_states, layers, kv_heads, block_size, seqs, budget, sink_blocks, recent_blocks, policy, block_tables, table_stride, num_blocks,
    // kv_len, logical_len, stage, status, epoch
    static final KernelSpec VICTIM = KernelSpec.of("tp_kv_block_victim", PTR, I32, I32, I32, I32, I64, I32, I32, I32, PTR, I32, I32, PTR, PTR, PTR,
            PTR, I32);

    private KvBlockEvictKernel() {
    }

    static List<KernelSpec> specs() {
        return List.of(VICTIM);
    }

    /**
     * Queues tp_kv_block_victim. {@code layerStates}: {@code layers} int64 device addresses (any
     * non-null buffer when layers = 0); {@code stage}: 2·seqs ints of scratch.
     */
    public static void launchVictim(KernelDevice device, Stream stream, DeviceBuffer layerStates, int layers, int kvHeads, int blockSize, int seqs,
                                    long budget, int sinkBlocks, int recentBlocks, int policy, DeviceBuffer blockTables, int tableStride,
                                    int numBlocks, DeviceBuffer kvLen, DeviceBuffer logicalLen, DeviceBuffer stage, DeviceBuffer status, int epoch) {
        device.launch(VICTIM, Dim3.of(seqs), Dim3.of(THREADS), 0, stream,
                KernelArgs.of().ptr(layerStates).i32(layers).i32(kvHeads).i32(blockSize).i32(seqs).i64(budget).i32(sinkBlocks).i32(recentBlocks)
                        .i32(policy).ptr(blockTables).i32(tableStride).i32(numBlocks).ptr(kvLen).ptr(logicalLen).ptr(stage).ptr(status).i32(epoch));
    }
}
