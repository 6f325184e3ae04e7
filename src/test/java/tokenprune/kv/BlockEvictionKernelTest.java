package tokenprune.kv;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kv.BlockEviction.Batch;
import tokenprune.kv.BlockEviction.Decision;
import tokenprune.kv.BlockEvictionOptions.Policy;
import tokenprune.methods.Pending;
import tokenprune.methods.Workspace;
import tokenprune.reference.BlockEvictionReference;
import tokenprune.reference.PagedEvictionReference;
import tokenprune.testing.TestDevices;

/**
 * tp_kv_block_victim + tp_pe_decode_apply (block-granular eviction for the attention-score policies and
 * StreamingLLM) against BlockEvictionReference: a hand-checkable 4-block case, random ragged batches
 * compared exactly (dyadic state values: exact sums, frequent ties), SL-5 and the equivalence of
 * STREAMING with PagedEviction local(1), bad inputs that change nothing. The long A2SF decode run
 * chained with AttentionScores lives in {@link BlockEvictionDecodeRunTest}.
 */
class BlockEvictionKernelTest {
    static java.util.stream.Stream<String> devices() {
        return TestDevices.kernelDevices();
    }

    static final float NAN = Float.NaN;

    static void assertDecision(Decision want, Decision got, String what) {
        assertArrayEquals(want.victims(), got.victims(), what + ": victims");
        assertArrayEquals(want.freed(), got.freed(), what + ": freed");
        assertArrayEquals(want.blockTables(), got.blockTables(), what + ": block tables");
        assertArrayEquals(want.kvLen(), got.kvLen(), what + ": kv_len");
    }

    /**
     * A 4-block sequence: B 4, C 12, table [7, 3, 9, 4] (+1 padding), kv_len 16, logical 24, 2 layers,
     * 2 KV heads, pool of 10. Candidates: logical blocks 1 (physical 3) and 2 (physical 9). Block 0 and
     * the newest block, and every block no one holds, are NaN: reading them would be rejected.
     */
    static Batch fourBlocks(float block1Layer0, float block1Layer1, float block2Layer0, float block2Layer1) {
        int b = 4, heads = 2, run = b * heads, pool = 10;
        float[][] states = new float[2][pool * run];
        for (float[] s : states) Arrays.fill(s, NAN);
        float[][] values = {{block1Layer0, block2Layer0}, {block1Layer1, block2Layer1}};
        int[] phys = {3, 9};
        for (int l = 0; l < 2; l++)
            for (int c = 0; c < 2; c++)
                for (int e = 0; e < run; e++)  // the block mean is values[l][c], spread unevenly over slots and heads
                    states[l][phys[c] * run + e] = values[l][c] + (e == 0 ? 3.5f : e == 1 ? -3.5f : 0f);
        return new Batch(1, b, 12, pool, new int[] {7, 3, 9, 4, -1}, 5, new int[] {16}, new long[] {24}, heads, states);
    }

    @Test
    void referenceHandCase() {
        // layer 0 alone prefers block 1 (1 < 2); the layer mean prefers block 2 ((2 + 1) / 2 < (1 + 9) / 2)
        Batch in = fourBlocks(1, 9, 2, 1);
        assertEquals(5.0, BlockEvictionReference.blockScore(in.layerStates(), 3, 4, 2), 0);
        assertEquals(1.5, BlockEvictionReference.blockScore(in.layerStates(), 9, 4, 2), 0);
        Decision d = BlockEvictionReference.decide(in, BlockEvictionOptions.attention());
        assertArrayEquals(new int[] {2}, d.victims());
        assertArrayEquals(new int[] {9}, d.freed());
        assertArrayEquals(new int[] {7, 3, 4, -1, -1}, d.blockTables());
        assertArrayEquals(new int[] {12}, d.kvLen());
        assertArrayEquals(new int[] {1}, BlockEvictionReference.decide(fourBlocks(1, 2, 2, 1), BlockEvictionOptions.attention()).victims(), "tie");
        assertArrayEquals(new int[] {1}, BlockEvictionReference.decide(in, BlockEvictionOptions.streaming()).victims(), "streaming");
        assertArrayEquals(new int[] {1}, BlockEvictionReference.decide(in, BlockEvictionOptions.attention().withProtection(1, 2)).victims(), "recent 2");
        assertArrayEquals(new int[] {-1}, BlockEvictionReference.decide(in, BlockEvictionOptions.attention().withProtection(2, 2)).victims(), "none");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void handCase(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Decision d = BlockEviction.decide(device, fourBlocks(1, 9, 2, 1), BlockEvictionOptions.attention());
            assertArrayEquals(new int[] {2}, d.victims(), "block 2 has the smallest layer mean");
            assertArrayEquals(new int[] {9}, d.freed(), "its physical block");
            assertArrayEquals(new int[] {7, 3, 4, -1, -1}, d.blockTables(), "table shifted");
            assertArrayEquals(new int[] {12}, d.kvLen(), "kv_len - B");
            d = BlockEviction.decide(device, fourBlocks(1, 2, 2, 1), BlockEvictionOptions.attention());
            assertArrayEquals(new int[] {1}, d.victims(), "tie -> the lower index");
            assertArrayEquals(new int[] {7, 9, 4, -1, -1}, d.blockTables(), "tie table");
            d = BlockEviction.decide(device, fourBlocks(1, 9, 2, 1), BlockEvictionOptions.streaming());
            assertArrayEquals(new int[] {1}, d.victims(), "streaming evicts block 1");
            assertArrayEquals(new int[] {3}, d.freed(), "streaming freed");
            d = BlockEviction.decide(device, fourBlocks(1, 9, 2, 1), BlockEvictionOptions.attention().withProtection(1, 2));
            assertArrayEquals(new int[] {1}, d.victims(), "two recent blocks protected: block 1 is the only candidate");
            d = BlockEviction.decide(device, fourBlocks(1, 9, 2, 1), BlockEvictionOptions.attention().withProtection(2, 2));
            assertArrayEquals(new int[] {-1}, d.victims(), "no candidate");
            assertArrayEquals(new int[] {7, 3, 9, 4, -1}, d.blockTables(), "no candidate: table unchanged");
            assertArrayEquals(new int[] {16}, d.kvLen(), "no candidate: kv_len unchanged");
        }
    }

    /**
     * A random batch: ragged lengths, shuffled physical blocks, sequences not full, full under the budget,
     * full at kv_len = C over a longer prompt (not triggered) and over the budget (triggered); candidate
     * states are dyadic with one level per (block, layer) (exact fp32 sums, frequent ties) or, with {@code smooth}, arbitrary floats; the
     * other blocks' states NaN (a read would be rejected).
     */
    static Batch randomBatch(Random rnd, int seqs, int maxBlocks, BlockEvictionOptions o, boolean smooth) {
        int b = 1 + rnd.nextInt(16);
        int cb = Math.max(3, maxBlocks > 7 ? maxBlocks / 2 + rnd.nextInt(maxBlocks / 2) : 3 + rnd.nextInt(5));
        long budget = (long) cb * b;
        int layers = 1 + rnd.nextInt(4), kvHeads = 1 + rnd.nextInt(4);
        int width = cb + 1 + rnd.nextInt(3);
        int numBlocks = seqs * width + 5;
        List<Integer> pool = new ArrayList<>();
        for (int i = 0; i < numBlocks; i++) pool.add(i);
        Collections.shuffle(pool, rnd);
        int[] tables = new int[seqs * width];
        Arrays.fill(tables, -1);
        int run = b * kvHeads;
        float[][] states = new float[layers][numBlocks * run];
        for (float[] s : states) Arrays.fill(s, NAN);
        int[] kv = new int[seqs];
        long[] logical = new long[seqs];
        int next = 0;
        for (int s = 0; s < seqs; s++) {
            int kind = rnd.nextInt(5);
            if (kind == 0) {  // newest block not full
                kv[s] = b == 1 ? 0 : rnd.nextInt((int) budget + b);
                if (b > 1 && kv[s] % b == 0) kv[s]++;
                logical[s] = kv[s] > budget ? kv[s] + (long) b * rnd.nextInt(3) : kv[s];
            } else if (kind == 1) {  // full, under the budget
                kv[s] = b * (1 + rnd.nextInt(cb));
                logical[s] = kv[s];
            } else if (kind == 2) {  // kept exactly C of a longer prompt: kv_len - B < C
                kv[s] = (int) budget;
                logical[s] = budget + (long) b * (1 + rnd.nextInt(3));
            } else {  // over the budget: kv_len = C + B
                kv[s] = (int) budget + b;
                logical[s] = kv[s] + (long) b * rnd.nextInt(100);
            }
            int nb = (kv[s] + b - 1) / b;
            for (int j = 0; j < nb; j++) tables[s * width + j] = pool.get(next++);
            if (!BlockEviction.triggers(kv[s], logical[s], budget, b)) continue;
            for (int j = o.sinkBlocks(); j <= nb - 1 - o.recentBlocks(); j++) {
                int p = tables[s * width + j];
                for (float[] st : states) {
                    float level = rnd.nextInt(3) * 0.25f;  // dyadic: spread over the slots without changing the (exact) sum
                    for (int e = 0; e < run; e++)
                        st[p * run + e] = smooth ? rnd.nextFloat() * 4 - 1 : level + (e == run - 1 && run % 2 == 1 ? 0f : e % 2 == 0 ? 0.125f : -0.125f);
                }
            }
        }
        return new Batch(seqs, b, budget, numBlocks, tables, width, kv, logical, kvHeads, states);
    }

    static BlockEvictionOptions randomOptions(Random rnd) {
        Policy p = rnd.nextInt(4) == 0 ? Policy.STREAMING : Policy.ATTENTION;
        return new BlockEvictionOptions(p, 1 + (rnd.nextInt(3) == 0 ? 1 : 0), 1 + (rnd.nextInt(3) == 0 ? 1 : 0));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void randomBatchesMatchTheReferenceExactly(String deviceName) {
        Random rnd = new Random(0xB10C4);
        int[] sizes = {1, 2, 7, 33, 64, 64, 17, 5, 3, 4, 64, 11};  // batches 8, 9: up to 300 candidates (many per warp)
        try (KernelDevice device = TestDevices.open(deviceName)) {
            int evictions = 0, tiesSeen = 0;
            for (int it = 0; it < sizes.length; it++) {
                BlockEvictionOptions o = randomOptions(rnd);
                Batch b = randomBatch(rnd, sizes[it], it == 8 || it == 9 ? 300 : 7, o, it >= 10);
                Decision want = BlockEvictionReference.decide(b, o);
                Decision got = BlockEviction.decide(device, b, o);
                assertDecision(want, got, deviceName + " batch " + it + " " + o);
                for (int s = 0; s < b.seqs(); s++)
                    assertEquals(want.kvLen()[s], BlockEviction.kvLenAfter(b.kvLen()[s], b.logicalLen()[s], b.budget(), b.blockSize(), o), "kvLenAfter");
                for (int s = 0; s < b.seqs(); s++) {
                    if (got.victims()[s] < 0) continue;
                    evictions++;
                    if (o.policy() == Policy.ATTENTION) {  // a later candidate with the same score: the tie rule decided
                        int w = b.tableStride(), nb = b.kvLen()[s] / b.blockSize();
                        double v = BlockEvictionReference.blockScore(b.layerStates(), got.freed()[s], b.blockSize(), b.kvHeads());
                        for (int j = got.victims()[s] + 1; j <= nb - 1 - o.recentBlocks(); j++)
                            if (BlockEvictionReference.blockScore(b.layerStates(), b.blockTables()[s * w + j], b.blockSize(), b.kvHeads()) == v) {
                                tiesSeen++;
                                break;
                            }
                    }
                }
            }
            assertTrue(evictions > 40, "the batches evicted only " + evictions + " blocks");
            assertTrue(tiesSeen > 5, "only " + tiesSeen + " decisions were ties");
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void streamingIsSl5AndEqualsPagedEvictionLocal1(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            // SL-5: B 4, C 12, prefill of L = 22 keeps 14 tokens in 4 blocks; two decode tokens fill block 3 over the budget
            PagedKvCache cache = new PagedKvCache(12, 4, 12);
            int id = cache.allocateSequence(14, 22);
            cache.appendTokens(id, 1);
            Batch first = BlockEviction.batchOf(cache, new int[] {id}, 5, 1, new float[0][]);
            assertArrayEquals(new int[] {-1}, BlockEviction.decide(device, first, BlockEvictionOptions.streaming()).victims(), "kv_len 15: not full");
            cache.appendTokens(id, 1);
            int[] before = cache.blockTable(id);
            Batch batch = BlockEviction.batchOf(cache, new int[] {id}, 5, 1, new float[0][]);
            Decision d = BlockEviction.decide(device, batch, BlockEvictionOptions.streaming());
            assertArrayEquals(new int[] {1}, d.victims(), "SL-5 evicts logical block 1");
            assertArrayEquals(new int[] {before[1]}, d.freed(), "SL-5 freed");
            BlockEviction.applyTo(cache, new int[] {id}, d.victims(), d.freed());
            cache.reclaimEvicted();
            cache.checkInvariants();
            assertArrayEquals(new int[] {before[0], before[2], before[3]}, cache.blockTable(id), "SL-5 table");
            assertArrayEquals(new int[] {before[0], before[2], before[3], -1, -1}, d.blockTables(), "device table");
            assertEquals(12, d.kvLen()[0], "SL-5 kv_len");

            // random batches: STREAMING and PagedEviction local(1) (every block score finite) decide and apply the same
            Random rnd = new Random(0x51A5);
            for (int it = 0; it < 6; it++) {
                Batch b = randomBatch(rnd, 1 + rnd.nextInt(64), 7, BlockEvictionOptions.streaming(), false);
                int seqs = b.seqs(), w = b.tableStride();
                int[] fillAt = new int[seqs];
                int fills = 0;
                for (int s = 0; s < seqs; s++) fillAt[s] = b.kvLen()[s] >= b.blockSize() && b.kvLen()[s] % b.blockSize() == 0 ? fills++ : -1;
                float[] scores = new float[seqs * w];
                Arrays.fill(scores, 1f);
                float[] fill = new float[fills * b.blockSize()];
                Arrays.fill(fill, 2f);
                PagedEviction.DecodeBatch pe = new PagedEviction.DecodeBatch(seqs, 1, b.blockSize(), b.budget(), b.numBlocks(), b.blockTables(), w, scores,
                        b.kvLen(), b.logicalLen(), fillAt, fills, fill);
                PagedEviction.Decision want = PagedEviction.decide(device, pe, PagedEvictionOptions.local(1));
                assertDecision(new Decision(want.victims(), want.freed(), want.blockTables(), want.kvLen()),
                        BlockEviction.decide(device, b, BlockEvictionOptions.streaming()), deviceName + " batch " + it);
                PagedEviction.Decision ref = PagedEvictionReference.decodeStep(pe, PagedEvictionOptions.local(1));
                assertDecision(new Decision(ref.victims(), ref.freed(), ref.blockTables(), ref.kvLen()),
                        BlockEvictionReference.decide(b, BlockEvictionOptions.streaming()), "references, batch " + it);
            }
        }
    }

    /** Uploads a batch, runs the device API, expects a rejection (also from the reference), and checks that no buffer changed. */
    static void assertRejectedUnchanged(KernelDevice device, Workspace ws, Batch b, BlockEvictionOptions o, String what) {
        assertThrows(IllegalArgumentException.class, () -> BlockEvictionReference.decide(b, o), what + " (reference)");
        Stream stream = ws.stream();
        int seqs = b.seqs(), layers = b.layers();
        DeviceBuffer[] states = new DeviceBuffer[layers];
        try (DeviceBuffer tables = device.alloc(4L * b.blockTables().length);
             DeviceBuffer kv = device.alloc(4L * seqs);
             DeviceBuffer logical = device.alloc(8L * seqs);
             DeviceBuffer victims = device.alloc(4L * seqs);
             DeviceBuffer freed = device.alloc(4L * seqs)) {
            for (int l = 0; l < layers; l++) {
                states[l] = device.alloc(4L * b.layerStates()[l].length);
                device.upload(b.layerStates()[l], states[l], stream);
            }
            device.upload(b.blockTables(), tables, stream);
            device.upload(b.kvLen(), kv, stream);
            device.upload(PagedEviction.int64Words(b.logicalLen()), logical, stream);
            int[] sentinel = new int[seqs];
            Arrays.fill(sentinel, 77);
            device.upload(sentinel, victims, stream);
            device.upload(sentinel, freed, stream);
            BlockEviction.DeviceState state = new BlockEviction.DeviceState(seqs, b.blockSize(), b.budget(), b.numBlocks(), tables, b.tableStride(), kv,
                    logical);
            Pending p = BlockEviction.decideOnDevice(state, states, b.kvHeads(), o, victims, freed, ws, stream);
            assertThrows(IllegalArgumentException.class, p::await, what);
            int[] t = new int[b.blockTables().length], k = new int[seqs], v = new int[seqs], f = new int[seqs];
            device.download(tables, t, stream);
            device.download(kv, k, stream);
            device.download(victims, v, stream);
            device.download(freed, f, stream);
            stream.synchronize();
            assertArrayEquals(b.blockTables(), t, what + ": tables changed");
            assertArrayEquals(b.kvLen(), k, what + ": kv_len changed");
            assertArrayEquals(sentinel, v, what + ": victims written");
            assertArrayEquals(sentinel, f, what + ": freed written");
        } finally {
            for (DeviceBuffer s : states) if (s != null) s.close();
        }
    }

    /** Three 4-block sequences over the budget (tables [7,3,9,4], [0,1,2,5], [6,8,10,11], pool 12, B 4, C 12, 1 layer, 1 KV head); all evict. */
    static Batch three(int[] tables, int[] kv, float[] state) {
        return new Batch(3, 4, 12, 12, tables, 5, kv, new long[] {24, 20, 16}, 1, new float[][] {state});
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void badInputsAreRejectedWithNothingChanged(String deviceName) {
        int[] tables = {7, 3, 9, 4, -1, 0, 1, 2, 5, -1, 6, 8, 10, 11, -1};
        int[] kv = {16, 16, 16};
        float[] state = new float[12 * 4];
        for (int p = 0; p < 12; p++) Arrays.fill(state, p * 4, p * 4 + 4, p);  // block score = physical id
        BlockEvictionOptions a = BlockEvictionOptions.attention();
        try (KernelDevice device = TestDevices.open(deviceName);
             Workspace ws = new Workspace(device, device.defaultStream())) {
            float[] nan = state.clone();
            nan[10 * 4 + 2] = NAN;  // the third sequence's candidate 2
            assertRejectedUnchanged(device, ws, three(tables, kv, nan), a, "NaN state");
            float[] inf = state.clone();
            inf[3 * 4] = Float.NEGATIVE_INFINITY;  // the first sequence's candidate 1
            assertRejectedUnchanged(device, ws, three(tables, kv, inf), a, "-Inf state");
            float[] huge = state.clone();
            Arrays.fill(huge, 8 * 4, 8 * 4 + 4, Float.MAX_VALUE);  // finite values, infinite sum
            assertRejectedUnchanged(device, ws, three(tables, kv, huge), a, "overflowing block sum");
            int[] outside = tables.clone();
            outside[7] = 40;  // the second sequence's candidate 2 lies outside the pool of 12
            assertRejectedUnchanged(device, ws, three(outside, kv, state), a, "candidate outside the pool");
            int[] negative = tables.clone();
            negative[1] = -3;  // the first sequence's block 1: the streaming victim
            assertRejectedUnchanged(device, ws, three(negative, kv, state), BlockEvictionOptions.streaming(), "streaming victim outside the pool");
            assertRejectedUnchanged(device, ws, new Batch(3, 4, 12, 12, tables, 5, new int[] {16, 16, 24}, new long[] {24, 20, 30}, 1,
                    new float[][] {state}), a, "kv_len beyond the table");
            // NaN outside the candidates (block 0, the newest block, free blocks) is never read
            float[] stale = state.clone();
            for (int p : new int[] {7, 4, 0, 5, 6, 11}) stale[p * 4 + 1] = NAN;
            Decision ok = BlockEviction.decide(device, three(tables, kv, stale), a);
            assertArrayEquals(new int[] {1, 1, 1}, ok.victims(), deviceName + " smallest physical id among the candidates");
            assertArrayEquals(new int[] {3, 1, 8}, ok.freed(), deviceName + " freed");
            // the same workspace serves a good call after the rejections
            try (DeviceBuffer t = device.alloc(4L * 15); DeviceBuffer k = device.alloc(12); DeviceBuffer lg = device.alloc(24);
                 DeviceBuffer st = device.alloc(4L * state.length); DeviceBuffer v = device.alloc(12); DeviceBuffer f = device.alloc(12)) {
                Stream stream = ws.stream();
                device.upload(tables, t, stream);
                device.upload(kv, k, stream);
                device.upload(PagedEviction.int64Words(new long[] {24, 20, 16}), lg, stream);
                device.upload(state, st, stream);
                BlockEviction.DeviceState ds = new BlockEviction.DeviceState(3, 4, 12, 12, t, 5, k, lg);
                BlockEviction.decideOnDevice(ds, new DeviceBuffer[] {st}, 1, a, v, f, ws, stream).await();
                int[] freed = new int[3];
                device.download(f, freed, stream);
                stream.synchronize();
                assertArrayEquals(new int[] {3, 1, 8}, freed, "good call after rejections");
                // host-side argument checks: nothing is queued, the outputs keep their values
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> BlockEviction.decideOnDevice(ds, new DeviceBuffer[0], 1, a, v, f, ws, stream));
                assertTrue(e.getMessage().startsWith("layerStates"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> BlockEviction.decideOnDevice(ds, new DeviceBuffer[] {k}, 1, a, v, f, ws, stream));
                assertTrue(e.getMessage().startsWith("layerStates"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> BlockEviction.decideOnDevice(ds, new DeviceBuffer[] {st}, 0, a, v, f, ws, stream));
                assertTrue(e.getMessage().startsWith("kvHeads"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> BlockEviction.decideOnDevice(ds, new DeviceBuffer[] {st}, 1, a, v, lg.slice(0, 8), ws,
                        stream));
                assertTrue(e.getMessage().startsWith("victims, freed"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> new BlockEviction.DeviceState(3, 4, 12, 12, t, 6, k, lg));
                assertTrue(e.getMessage().startsWith("blockTables"), e.getMessage());
                int[] after = new int[3];
                device.download(f, after, stream);
                stream.synchronize();
                assertArrayEquals(freed, after, "rejected on the host: outputs unchanged");
            }
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> three(new int[14], kv, state));
        assertTrue(e.getMessage().startsWith("blockTables"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> three(tables, kv, new float[47]));
        assertTrue(e.getMessage().startsWith("layerStates"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> three(tables, new int[] {16, -1, 16}, state));
        assertTrue(e.getMessage().startsWith("kvLen"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new BlockEvictionOptions(Policy.ATTENTION, 0, 1));
        assertTrue(e.getMessage().startsWith("sinkBlocks"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new BlockEvictionOptions(Policy.STREAMING, 1, 0));
        assertTrue(e.getMessage().startsWith("recentBlocks"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new BlockEvictionOptions(null, 1, 1));
        assertTrue(e.getMessage().startsWith("policy"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> BlockEvictionReference.decide(
                new Batch(3, 4, 12, 12, tables, 5, kv, new long[3], 1, new float[0][]), BlockEvictionOptions.attention()));
        assertTrue(e.getMessage().startsWith("layerStates"), e.getMessage());
        // applyTo checks the freed ids against the host tables before touching anything
        PagedKvCache cache = new PagedKvCache(12, 4, 12);
        int id = cache.allocateSequence(14, 22);
        cache.appendTokens(id, 2);
        int[] table = cache.blockTable(id);
        e = assertThrows(IllegalArgumentException.class, () -> BlockEviction.applyTo(cache, new int[] {id}, new int[] {1}, new int[] {table[2]}));
        assertTrue(e.getMessage().startsWith("freed"), e.getMessage());
        assertArrayEquals(table, cache.blockTable(id), "applyTo rejected: nothing changed");
    }
}
