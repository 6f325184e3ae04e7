package tokenprune.cli;

import java.util.List;
import java.util.Random;

import tokenprune.device.Device;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kv.AttentionScores;
import tokenprune.kv.BlockEviction;
import tokenprune.kv.BlockEvictionOptions;
import tokenprune.kv.KvCompaction;
import tokenprune.kv.KvKeepSelect;
import tokenprune.kv.KvLayout;
import tokenprune.kv.PagedEviction;
import tokenprune.methods.DType;
import tokenprune.methods.Pending;
import tokenprune.methods.Workspace;
import tokenprune.numeric.Bf16;
import tokenprune.numeric.Fp16;
import tokenprune.reference.AttentionScoresReference;
import tokenprune.reference.BlockEvictionReference;
import tokenprune.reference.KvCompactionReference;
import tokenprune.reference.KvKeepReference;

/**
 * The bench ops of the attention-score policies (H2O, A2SF, SnapKV, TOVA; methods-kv.md §4-§7) on the
 * Llama-3.1-8B layer of {@link KvBenchCases} (8 KV heads of 128, 32 query heads, block 16, 32 layers):
 * N is the context length (tokens held per sequence), B the number of sequences.
 * <ul>
 * <li>{@code kv-colsum}: one decode step's score update of one layer (H2O / A2SF-REF): the attention
 * probabilities of the new query row over all N held keys, recomputed from q, the paged K and the LSE,
 * group-averaged and accumulated into the per-slot state; one launch. Must-move bytes: K of every held
 * token, the state read and written.</li>
 * <li>{@code kv-keep}: the token-level keep decision from the paged state of one layer (per KV head: 4
 * sinks, 64 recent, keep N − 16 of N); one launch. Must-move bytes: the state read once, the kept
 * indices written.</li>
 * <li>{@code kv-block}: the block-level decode decision (victim block by the mean state over tokens,
 * heads and all 32 layers, then the table shift) for B sequences whose newest block just filled at
 * kv_len = N + 16 with C = N; two launches. Must-move bytes: the candidate blocks' state of every layer.
 * The tables it shifts are restored before each repetition, outside the timing.</li>
 * <li>{@code kv-compact}: the in-place compaction of one layer after a token-level eviction: B
 * sequences at kv_len = N + 16 keep N tokens per KV head (16 dropped, spread over the sequence and
 * shifted per head, so nearly every token moves), K, V and the score state; two launches (validation,
 * move). Must-move bytes: every moved token's K, V and state read and written, the kept lists read.
 * Repetitions compact the already compacted cache with the same lists: the same moves.</li>
 * </ul>
 */
final class KvPolicyBenchCases {
    static final List<String> OPS = List.of("kv-colsum", "kv-keep", "kv-block", "kv-compact");
    static final int DROPPED = 16;
    static final int HEADS = 8, QUERY_HEADS = 32, HEAD_DIM = 128, BLOCK = 16, LAYERS = 32;
    static final int SINKS = 4, RECENT = 64;
    /** Larger inputs are skipped (an H100 holds 80 GB). */
    static final long MAX_BYTES = 36L << 30;

    private KvPolicyBenchCases() {
    }

    /** Why a shape is not run, or null. */
    static String skipReason(String op, DType dtype, int b, int n) {
        long bytes = switch (op) {
            case "kv-colsum" -> KvBenchCases.cacheBytes(dtype, b, n) + stateBytes(b, n);
            case "kv-keep" -> stateBytes(b, n);
            case "kv-compact" -> KvBenchCases.cacheBytes(dtype, b, n + DROPPED) + stateBytes(b, n + DROPPED);
            default -> LAYERS * stateBytes(b, n + BLOCK);
        };
        return bytes > MAX_BYTES ? "its inputs of " + (bytes >> 20) + " MiB exceed " + (MAX_BYTES >> 20) + " MiB" : null;
    }

    /** One layer's per-slot fp32 state of B sequences of n tokens. */
    static long stateBytes(int b, int n) {
        return 4L * b * blocks(n) * BLOCK * HEADS;
    }

    static int blocks(int n) {
        return (n + BLOCK - 1) / BLOCK;
    }

    static BenchCase create(String op, Device device, Workspace ws, Stream stream, DType dtype, int b, int n) {
        KernelDevice kd = device instanceof KernelDevice k ? k : null;
        return switch (op) {
            case "kv-colsum" -> new ColsumCase(kd, ws, stream, dtype, b, n);
            case "kv-keep" -> new KeepCase(kd, ws, stream, b, n);
            case "kv-block" -> new BlockCase(kd, ws, stream, b, n);
            case "kv-compact" -> new CompactCase(kd, ws, stream, dtype, b, n);
            default -> throw new IllegalStateException(op);
        };
    }

    /** Identity block tables: sequence s holds blocks s·width .. s·width + width − 1. */
    static int[] identityTables(int b, int width) {
        int[] t = new int[b * width];
        for (int i = 0; i < t.length; i++) t[i] = i;
        return t;
    }

    static float[] uniformState(Random rnd, long count) {
        float[] f = new float[Math.toIntExact(count)];
        for (int i = 0; i < f.length; i++) f[i] = rnd.nextFloat();
        return f;
    }

    /** One decode step of the H2O / A2SF score update of one layer. */
    static final class ColsumCase extends BenchCase {
        private final Workspace ws;
        private final Stream stream;
        private final KvLayout layout;
        private final int width;
        private final int[] tables, kvLens, rowOffsets, positions;
        private final float scale = (float) (1 / Math.sqrt(HEAD_DIM));
        private final float[] lse;
        private DeviceBuffer cache, tablesD, queries, lseD, state;
        private Object hostCache, hostQueries;
        private float[] hostState;

        ColsumCase(KernelDevice kd, Workspace ws, Stream stream, DType dtype, int b, int n) {
            super("kv-colsum", dtype, b, n, HEADS * HEAD_DIM, 0);
            this.ws = ws;
            this.stream = stream;
            width = blocks(n);
            layout = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION, dtype, Math.multiplyExact(b, width), BLOCK, HEADS, HEAD_DIM);
            tables = identityTables(b, width);
            kvLens = new int[b];
            rowOffsets = new int[b + 1];
            positions = new int[b];
            for (int s = 0; s < b; s++) {
                kvLens[s] = n;
                rowOffsets[s + 1] = s + 1;
                positions[s] = n - 1;
            }
            // Gaussian q and k of unit variance give logits of unit variance: an LSE of ln N + 1/2 keeps exp() finite
            lse = new float[b * QUERY_HEADS];
            java.util.Arrays.fill(lse, (float) (Math.log(n) + 0.5));
            Random rnd = new Random(77L * n + b);
            long slots = (long) layout.numBlocks() * BLOCK * HEADS;
            if (kd != null) {
                cache = alloc(kd, layout.bytes());
                KvBenchCases.fillRandom(kd, stream, cache, dtype, rnd);
                tablesD = alloc(kd, 4L * tables.length);
                kd.upload(tables, tablesD, stream);
                queries = alloc(kd, (long) b * QUERY_HEADS * HEAD_DIM * dtype.bytes());
                KvBenchCases.fillRandom(kd, stream, queries, dtype, rnd);
                lseD = alloc(kd, 4L * lse.length);
                kd.upload(lse, lseD, stream);
                state = alloc(kd, 4L * slots);
                kd.fill(state, 0, stream);
            } else {
                hostCache = hostValues(dtype, KvBenchCases.gaussian(rnd, Math.toIntExact(layout.elements())));
                hostQueries = hostValues(dtype, KvBenchCases.gaussian(rnd, b * QUERY_HEADS * HEAD_DIM));
                hostState = new float[Math.toIntExact(slots)];
            }
        }

        @Override
        long bytes() {  // K of every held token, the state read and written
            return (long) b * n * HEADS * HEAD_DIM * dtype.bytes() + 2L * 4 * b * n * HEADS;
        }

        @Override
        double flops() {  // q·k for every (query head, key), then a scale, an exp and an fma
            return (double) b * n * QUERY_HEADS * (2.0 * HEAD_DIM + 4);
        }

        @Override
        int launches() {
            return 1;
        }

        @Override
        Pending runOnDevice(int rep) {
            return AttentionScores.accumulatePagedOnDevice(ws, stream, layout, cache, tablesD, width, kvLens, null, queries, (long) QUERY_HEADS * HEAD_DIM,
                    HEAD_DIM, QUERY_HEADS, rowOffsets, positions, null, lseD, QUERY_HEADS, 1, scale, 1.0f, state);
        }

        @Override
        void runOnHost() {
            AttentionScoresReference.accumulatePaged(layout, hostCache, tables, width, kvLens, null, hostQueries, QUERY_HEADS, rowOffsets, positions, null,
                    lse, scale, hostState, 1.0);
        }
    }

    static Object hostValues(DType dtype, float[] f) {
        return switch (dtype) {
            case F32 -> f;
            case F16 -> Fp16.fromFloats(f);
            case BF16 -> Bf16.fromFloats(f);
        };
    }

    /** The per-head keep decision of one layer from the paged state: keep N − 16 of N. */
    static final class KeepCase extends BenchCase {
        private final Workspace ws;
        private final Stream stream;
        private final KvLayout layout;
        private final int width;
        private final int[] tables, kvLens;
        private final KvKeepSelect.Policy policy;
        private DeviceBuffer state, tablesD, keep, kvLenOut;
        private float[] hostState;

        KeepCase(KernelDevice kd, Workspace ws, Stream stream, int b, int n) {
            super("kv-keep", DType.F32, b, n, HEADS * HEAD_DIM, Math.max(1, n - BLOCK));
            this.ws = ws;
            this.stream = stream;
            width = blocks(n);
            layout = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION, DType.F32, Math.multiplyExact(b, width), BLOCK, HEADS, HEAD_DIM);
            tables = identityTables(b, width);
            kvLens = new int[b];
            java.util.Arrays.fill(kvLens, n);
            int budget = Math.max(k, Math.min(n, SINKS + RECENT));
            policy = KvKeepSelect.Policy.perHead(Math.min(SINKS, budget), Math.min(RECENT, budget - Math.min(SINKS, budget)), budget);
            Random rnd = new Random(91L * n + b);
            long slots = (long) layout.numBlocks() * BLOCK * HEADS;
            float[] st = uniformState(rnd, slots);
            if (kd != null) {
                state = alloc(kd, 4L * slots);
                kd.upload(st, state, stream);
                tablesD = alloc(kd, 4L * tables.length);
                kd.upload(tables, tablesD, stream);
                keep = alloc(kd, 4L * b * HEADS * budget);
                kvLenOut = alloc(kd, 4L * b);
            } else {
                hostState = st;
            }
        }

        @Override
        long bytes() {  // the state read once, the kept indices written
            return 4L * b * n * HEADS + 4L * b * HEADS * policy.budget();
        }

        @Override
        double flops() {
            return (double) b * n * HEADS;
        }

        @Override
        int launches() {
            return 1;
        }

        @Override
        Pending runOnDevice(int rep) {
            return KvKeepSelect.selectPagedOnDevice(ws, stream, layout, state, tablesD, width, kvLens, policy, keep, kvLenOut);
        }

        @Override
        void runOnHost() {
            KvKeepReference.paged(hostState, layout.numBlocks(), BLOCK, HEADS, tables, width, kvLens, false, policy.sinks(), policy.recent(), policy.budget(),
                    1, false);
        }
    }

    /** The block-level decode decision over 32 layers' states, for B sequences at kv_len = C + 16, C = N. */
    static final class BlockCase extends BenchCase {
        private final Workspace ws;
        private final Stream stream;
        private final BlockEviction.Batch batch;
        private final BlockEvictionOptions options = BlockEvictionOptions.attention();
        private final int width;
        private DeviceBuffer tables, tables0, kv, kv0, logical, victims, freed;
        private DeviceBuffer[] states;
        private BlockEviction.DeviceState state;

        BlockCase(KernelDevice kd, Workspace ws, Stream stream, int b, int n) {
            super("kv-block", DType.F32, b, n, HEADS * HEAD_DIM, 0);
            this.ws = ws;
            this.stream = stream;
            int budget = Math.max(3 * BLOCK, blocks(n) * BLOCK);
            width = budget / BLOCK + 1;
            int numBlocks = Math.multiplyExact(b, width);
            int[] t = identityTables(b, width);
            int[] kvLen = new int[b];
            long[] lg = new long[b];
            for (int s = 0; s < b; s++) {
                kvLen[s] = budget + BLOCK;
                lg[s] = budget + BLOCK + 7L * BLOCK;
            }
            Random rnd = new Random(13L * n + b);
            long slots = (long) numBlocks * BLOCK * HEADS;
            float[][] layerStates = new float[kd != null ? 0 : LAYERS][];
            for (int l = 0; l < layerStates.length; l++) layerStates[l] = uniformState(rnd, slots);
            batch = new BlockEviction.Batch(b, BLOCK, budget, numBlocks, t, width, kvLen, lg, HEADS, layerStates);
            if (kd != null) {
                states = new DeviceBuffer[LAYERS];
                float[] one = uniformState(rnd, slots);
                for (int l = 0; l < LAYERS; l++) {
                    states[l] = alloc(kd, 4L * slots);
                    kd.upload(one, states[l], stream);
                }
                tables = alloc(kd, 4L * t.length);
                tables0 = alloc(kd, 4L * t.length);
                kv = alloc(kd, 4L * b);
                kv0 = alloc(kd, 4L * b);
                logical = alloc(kd, 8L * b);
                victims = alloc(kd, 4L * b);
                freed = alloc(kd, 4L * b);
                kd.upload(t, tables0, stream);
                kd.upload(kvLen, kv0, stream);
                kd.upload(PagedEviction.int64Words(lg), logical, stream);
                state = new BlockEviction.DeviceState(b, BLOCK, budget, numBlocks, tables, width, kv, logical);
            }
        }

        @Override
        void prepare(int rep) {
            if (state == null) return;
            KernelDevice kd = tables.device();
            kd.copy(tables0, tables, tables.bytes(), stream);
            kd.copy(kv0, kv, kv.bytes(), stream);
        }

        @Override
        long bytes() {  // every candidate block's state in every layer (blocks 1 .. n_blocks − 2), and the table shift
            return 4L * LAYERS * b * (width - 2) * BLOCK * HEADS + 8L * b * width;
        }

        @Override
        double flops() {
            return (double) LAYERS * b * (width - 2) * BLOCK * HEADS;
        }

        @Override
        int launches() {
            return 2;
        }

        @Override
        Pending runOnDevice(int rep) {
            return BlockEviction.decideOnDevice(state, states, HEADS, options, victims, freed, ws, stream);
        }

        @Override
        void runOnHost() {
            BlockEvictionReference.decide(batch, options);
        }
    }

    /** In-place compaction of one layer: B sequences keep N of N + 16 tokens per KV head. */
    static final class CompactCase extends BenchCase {
        private final Workspace ws;
        private final Stream stream;
        private final KvLayout layout;
        private final int width, moved;
        private final int[] tables, srcLen, offsets, keep;
        private DeviceBuffer cache, state, tablesD, keepD;
        private Object hostCache;
        private float[] hostState;

        CompactCase(KernelDevice kd, Workspace ws, Stream stream, DType dtype, int b, int n) {
            super("kv-compact", dtype, b, n, HEADS * HEAD_DIM, n);
            this.ws = ws;
            this.stream = stream;
            int held = n + DROPPED;
            width = blocks(held);
            layout = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION, dtype, Math.multiplyExact(b, width), BLOCK, HEADS, HEAD_DIM);
            tables = identityTables(b, width);
            srcLen = new int[b];
            offsets = new int[b + 1];
            java.util.Arrays.fill(srcLen, held);
            for (int s = 0; s < b; s++) offsets[s + 1] = offsets[s] + n;
            // per head, drop 16 tokens spread evenly (one per step of held / 16), shifted by the head; every sequence alike
            keep = new int[Math.multiplyExact(HEADS, offsets[b])];
            int step = held / DROPPED, movedTokens = 0;
            for (int h = 0; h < HEADS; h++) {
                int[] row = new int[n];
                int at = 0;
                for (int t = 0; t < held; t++) {
                    boolean dropped = t % step == h % step && t / step < DROPPED;
                    if (!dropped) row[at++] = t;
                }
                for (int i = 0; i < n; i++) if (row[i] != i) movedTokens++;
                for (int s = 0; s < b; s++) System.arraycopy(row, 0, keep, h * offsets[b] + offsets[s], n);
            }
            moved = movedTokens;
            Random rnd = new Random(29L * n + b);
            long slots = (long) layout.numBlocks() * BLOCK * HEADS;
            if (kd != null) {
                cache = alloc(kd, layout.bytes());
                KvBenchCases.fillRandom(kd, stream, cache, dtype, rnd);
                state = alloc(kd, 4L * slots);
                kd.fill(state, 0, stream);
                tablesD = alloc(kd, 4L * tables.length);
                kd.upload(tables, tablesD, stream);
                keepD = alloc(kd, 4L * keep.length);
                kd.upload(keep, keepD, stream);
            } else {
                hostCache = hostValues(dtype, KvBenchCases.gaussian(rnd, Math.toIntExact(layout.elements())));
                hostState = new float[Math.toIntExact(slots)];
            }
        }

        @Override
        long bytes() {  // moved (token, head) rows: K and V read and written, the state too; every kept index read
            return (long) b * moved * (2L * 2 * HEAD_DIM * dtype.bytes() + 2 * 4) + 4L * keep.length;
        }

        @Override
        double flops() {
            return 0;
        }

        @Override
        int launches() {
            return 2;
        }

        @Override
        Pending runOnDevice(int rep) {
            KvCompaction.KeepSets sets = new KvCompaction.KeepSets(offsets, keepD, true, false, null);
            return KvCompaction.compactOnDevice(layout, new DeviceBuffer[] {cache}, new DeviceBuffer[] {state}, tablesD, width, null, 0, srcLen, sets, null,
                    ws, stream);
        }

        @Override
        void runOnHost() {
            KvCompactionReference.compact(layout, hostCache, hostState, tables, width, null, 0, offsets, keep, true, null, 0, 1, false);
        }
    }
}
