package tokenprune.kv;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kv.PagedEviction.DecodeBatch;
import tokenprune.kv.PagedEviction.Decision;
import tokenprune.kv.PagedEvictionOptions.LayerAgg;
import tokenprune.methods.Pending;
import tokenprune.methods.Workspace;
import tokenprune.reference.PagedEvictionReference;
import tokenprune.testing.TestDevices;

/**
 * tp_pe_decode_decide + tp_pe_decode_apply (PagedEviction's batched decode step) against
 * PagedEvictionReference.decodeStep: PE-5 / PE-6 / PE-7 by hand, random ragged batches of 1..64
 * sequences with frequent ties compared exactly, long random decode runs applied to a PagedKvCache
 * (invariants after every step), and rejected inputs that change nothing.
 */
class PagedEvictionKernelTest {
    static java.util.stream.Stream<String> devices() {
        return TestDevices.kernelDevices();
    }

    static final float NAN = Float.NaN;

    /** PE-4/PE-5 state: B 4, C 12, table [7, 3, 9, 4] (+1 padding), kv_len 16, logical 24, block 3 just filled. */
    static DecodeBatch pe5(float[] layerRows, int layers, float[] fill) {
        return new DecodeBatch(1, layers, 4, 12, 10, new int[] {7, 3, 9, 4, -1}, 5, layerRows, new int[] {16}, new long[] {24}, new int[] {0}, 1, fill);
    }

    static void assertDecision(Decision want, Decision got, String what) {
        assertArrayEquals(want.victims(), got.victims(), what + ": victims");
        assertArrayEquals(want.freed(), got.freed(), what + ": freed");
        assertArrayEquals(want.blockTables(), got.blockTables(), what + ": block tables");
        assertArrayEquals(want.blockScores(), got.blockScores(), what + ": block scores");
        assertArrayEquals(want.kvLen(), got.kvLen(), what + ": kv_len");
    }

    @Test
    void referenceHandCheckablePe5Pe6() {
        float[] fill = {2, 2, 2, 3};
        Decision d = PagedEvictionReference.decodeStep(pe5(new float[] {5, 8.5f, 1.0f, NAN, NAN}, 1, fill), PagedEvictionOptions.defaults());
        assertArrayEquals(new int[] {2}, d.victims());
        assertArrayEquals(new int[] {9}, d.freed());
        assertArrayEquals(new int[] {7, 3, 4, -1, -1}, d.blockTables());
        assertArrayEquals(new float[] {5, 8.5f, 2.25f, NAN, NAN}, d.blockScores());
        assertArrayEquals(new int[] {12}, d.kvLen());
        assertEquals(3.0f, PagedEvictionReference.blockScoreF32(new float[] {1, 2, 3, 6}, 0, 4));  // PE-3
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void handCheckablePe5Pe6Pe7(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            float[] fill = {2, 2, 2, 3};
            // PE-5 global: blocks 1 (8.5) and 2 (1.0) are the candidates -> block 2, physical 9
            Decision d = PagedEviction.decide(device, pe5(new float[] {5, 8.5f, 1.0f, NAN, NAN}, 1, fill), PagedEvictionOptions.defaults());
            assertArrayEquals(new int[] {2}, d.victims(), "PE-5 victim");
            assertArrayEquals(new int[] {9}, d.freed(), "PE-5 freed");
            assertArrayEquals(new int[] {7, 3, 4, -1, -1}, d.blockTables(), "PE-5 table");
            assertArrayEquals(new float[] {5, 8.5f, 2.25f, NAN, NAN}, d.blockScores(), "PE-5 scores (new block 2.25 cached, shifted)");
            assertArrayEquals(new int[] {12}, d.kvLen(), "PE-5 kv_len");
            // PE-6 local k = 1: only block 1 is a candidate
            d = PagedEviction.decide(device, pe5(new float[] {5, 8.5f, 1.0f, NAN, NAN}, 1, fill), PagedEvictionOptions.local(1));
            assertArrayEquals(new int[] {1}, d.victims(), "PE-6 local");
            assertArrayEquals(new int[] {7, 9, 4, -1, -1}, d.blockTables(), "PE-6 local table");
            // PE-6 ties: equal scores on blocks 1 and 2 -> the lowest index
            d = PagedEviction.decide(device, pe5(new float[] {5, 3f, 3f, NAN, NAN}, 1, fill), PagedEvictionOptions.defaults());
            assertArrayEquals(new int[] {1}, d.victims(), "PE-6 ties");
            // two layers: the mean prefers block 1 (9.5 < 10), layer 0 alone block 2
            float[] two = {5, 8.5f, 1.0f, NAN, NAN, 5, 1.0f, 9.0f, NAN, NAN};
            float[] fill2 = {2, 2, 2, 3, 1, 1, 1, 1};
            d = PagedEviction.decide(device, pe5(two, 2, fill2), PagedEvictionOptions.defaults());
            assertArrayEquals(new int[] {1}, d.victims(), "mean over layers");
            assertArrayEquals(new float[] {5, 1.0f, 2.25f, NAN, NAN, 5, 9.0f, 1.0f, NAN, NAN}, d.blockScores(), "both layers' rows shift");
            d = PagedEviction.decide(device, pe5(two, 2, fill2), PagedEvictionOptions.defaults().withLayerAgg(LayerAgg.LAYER0));
            assertArrayEquals(new int[] {2}, d.victims(), "layer0");
            // PE-7: logical 12 = C, kv_len 12: the block is scored, nothing evicted; a second, not-filled sequence is left alone
            DecodeBatch pe7 = new DecodeBatch(2, 1, 4, 12, 10, new int[] {0, 1, 2, -1, 5, 6, 8, -1}, 4, new float[] {1, 1, NAN, NAN, 4, 4, 4, NAN},
                    new int[] {12, 13}, new long[] {12, 13}, new int[] {0, -1}, 1, new float[] {4, 4, 4, 4});
            d = PagedEviction.decide(device, pe7, PagedEvictionOptions.defaults());
            assertArrayEquals(new int[] {-1, -1}, d.victims(), "PE-7 under budget");
            assertArrayEquals(new float[] {1, 1, 4, NAN, 4, 4, 4, NAN}, d.blockScores(), "PE-7 new block scored");
            assertArrayEquals(pe7.blockTables(), d.blockTables(), "PE-7 tables unchanged");
            assertArrayEquals(new int[] {12, 13}, d.kvLen(), "PE-7 kv_len unchanged");
        }
    }

    /** A random batch: ragged lengths, quantized scores (many ties), padding -1 / NaN, some not-filled sequences. */
    static DecodeBatch randomBatch(Random rnd, int seqs, int maxBlocks) {
        int b = new int[] {1, 2, 4, 5, 16}[rnd.nextInt(5)];
        int cb = maxBlocks > 7 ? maxBlocks / 2 + rnd.nextInt(maxBlocks / 2) : 3 + rnd.nextInt(5);
        long budget = (long) cb * b;
        int layers = 1 + rnd.nextInt(4);
        int width = cb + 1 + rnd.nextInt(3);
        int numBlocks = seqs * width + 5;
        List<Integer> pool = new ArrayList<>();
        for (int i = 0; i < numBlocks; i++) pool.add(i);
        Collections.shuffle(pool, rnd);
        int[] tables = new int[seqs * width];
        Arrays.fill(tables, -1);
        float[] scores = new float[layers * seqs * width];
        Arrays.fill(scores, NAN);
        int[] kv = new int[seqs], fillAt = new int[seqs];
        long[] logical = new long[seqs];
        int fills = 0, next = 0;
        for (int s = 0; s < seqs; s++) {
            int kind = rnd.nextInt(5);
            if (kind == 0) {  // not filled this step: any length (not read)
                kv[s] = rnd.nextInt((int) budget + b);
                logical[s] = kv[s];
                fillAt[s] = -1;
            } else if (kind == 1) {  // filled under the budget
                kv[s] = b * (1 + rnd.nextInt(cb));
                logical[s] = kv[s];
                fillAt[s] = fills++;
            } else if (kind == 2) {  // prefill kept exactly C over a longer prompt: filled but kv_len - B < C
                kv[s] = (int) budget;
                logical[s] = budget + b * (1 + rnd.nextInt(3));
                fillAt[s] = fills++;
            } else {  // over the budget: kv_len = C + B
                kv[s] = (int) budget + b;
                logical[s] = kv[s] + (long) b * rnd.nextInt(100);
                fillAt[s] = fills++;
            }
            int nb = (kv[s] + b - 1) / b;
            for (int j = 0; j < nb; j++) tables[s * width + j] = pool.get(next++);
            for (int l = 0; l < layers; l++)
                for (int j = 0; j < nb - (fillAt[s] >= 0 ? 1 : 0); j++)
                    scores[(l * seqs + s) * width + j] = (j == 0 && rnd.nextBoolean()) ? NAN : rnd.nextInt(4) * 0.5f - 0.5f;
        }
        float[] fill = new float[layers * fills * b];
        for (int i = 0; i < fill.length; i++) fill[i] = rnd.nextInt(7) * 0.25f + (rnd.nextInt(8) == 0 ? rnd.nextFloat() : 0f);
        return new DecodeBatch(seqs, layers, b, budget, numBlocks, tables, width, scores, kv, logical, fillAt, fills, fill);
    }

    static PagedEvictionOptions randomOptions(Random rnd) {
        PagedEvictionOptions o = rnd.nextBoolean() ? PagedEvictionOptions.defaults() : PagedEvictionOptions.local(1 + rnd.nextInt(4));
        return rnd.nextInt(3) == 0 ? o.withLayerAgg(LayerAgg.LAYER0) : o;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void randomBatchesMatchTheReferenceExactly(String deviceName) {
        Random rnd = new Random(0xE71C7);
        int[] sizes = {1, 2, 7, 33, 64, 64, 17, 5, 3, 4};  // the last two: up to 300 candidates (more than a block's threads)
        try (KernelDevice device = TestDevices.open(deviceName)) {
            int evictions = 0;
            for (int it = 0; it < sizes.length; it++) {
                DecodeBatch b = randomBatch(rnd, sizes[it], it < 8 ? 7 : 300);
                PagedEvictionOptions o = randomOptions(rnd);
                Decision want = PagedEvictionReference.decodeStep(b, o);
                Decision got = PagedEviction.decide(device, b, o);
                assertDecision(want, got, deviceName + " batch " + it + " " + o);
                for (int v : got.victims()) if (v >= 0) evictions++;
            }
            assertTrue(evictions > 20, "the batches evicted only " + evictions + " blocks");
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void longDecodeRunsKeepTheInvariants(String deviceName) {
        Random rnd = new Random(0xDEC0DE ^ deviceName.hashCode());
        int b = 4, budget = 16, layers = 2;
        PagedKvCache cache = new PagedKvCache(80, b, budget);
        int width = cache.maxBlocksPerSequence();
        Map<Integer, List<float[]>> rows = new HashMap<>();  // per sequence, per block: one score per layer
        PagedEvictionOptions o = PagedEvictionOptions.defaults();
        try (KernelDevice device = TestDevices.open(deviceName)) {
            int evictions = 0, calls = 0;
            for (int step = 0; step < 90; step++) {
                if (cache.sequenceIds().length < 8) {  // continuous batching: a new prompt joins
                    long prompt = 1 + rnd.nextInt(40);
                    int kvLen = prompt <= budget ? (int) prompt : budget + (int) (prompt % b);
                    int id = cache.allocateSequence(kvLen, prompt);
                    List<float[]> r = new ArrayList<>();
                    for (int j = 0; j < cache.blockTable(id).length; j++) r.add(randomLayerScores(rnd, layers));
                    rows.put(id, r);
                    if (kvLen % b != 0) r.set(r.size() - 1, null);  // partial: scored when it fills
                    for (int j = 0; j < r.size(); j++) if (r.get(j) != null) cache.setBlockScore(id, j, r.get(j)[0]);
                }
                if (step % 23 == 22) {  // a sequence finishes
                    int[] ids = cache.sequenceIds();
                    int gone = ids[rnd.nextInt(ids.length)];
                    cache.freeSequence(gone);
                    rows.remove(gone);
                }
                int[] ids = cache.sequenceIds();
                int[] fillAt = new int[ids.length];
                int fills = 0;
                for (int s = 0; s < ids.length; s++) {
                    fillAt[s] = -1;
                    if (rnd.nextInt(4) == 0) continue;  // not scheduled this step
                    int before = cache.blockTable(ids[s]).length;
                    cache.appendTokens(ids[s], 1);
                    if (cache.blockTable(ids[s]).length > before) rows.get(ids[s]).add(null);
                    if (cache.kvLen(ids[s]) % b == 0) fillAt[s] = fills++;
                }
                if (fills > 0) {
                    float[] blockScores = new float[layers * ids.length * width];
                    Arrays.fill(blockScores, NAN);
                    for (int s = 0; s < ids.length; s++) {
                        List<float[]> r = rows.get(ids[s]);
                        for (int j = 0; j < r.size(); j++)
                            for (int l = 0; l < layers; l++) if (r.get(j) != null) blockScores[(l * ids.length + s) * width + j] = r.get(j)[l];
                    }
                    float[] fill = new float[layers * fills * b];
                    for (int i = 0; i < fill.length; i++) fill[i] = rnd.nextInt(5) * 0.5f;
                    DecodeBatch batch = PagedEviction.batchOf(cache, ids, width, layers, blockScores, fillAt, fills, fill);
                    Decision want = PagedEvictionReference.decodeStep(batch, o);
                    Decision got = PagedEviction.decide(device, batch, o);
                    calls++;
                    assertDecision(want, got, deviceName + " step " + step);
                    PagedEviction.applyTo(cache, ids, batch, got);
                    for (int s = 0; s < ids.length; s++) {
                        if (got.victims()[s] >= 0) evictions++;
                        int[] table = cache.blockTable(ids[s]);
                        assertArrayEquals(table, Arrays.copyOfRange(got.blockTables(), s * width, s * width + table.length), "host and device tables");
                        assertEquals(cache.kvLen(ids[s]), got.kvLen()[s], "host and device kv_len");
                        if (fillAt[s] < 0) continue;
                        List<float[]> r = new ArrayList<>();
                        for (int j = 0; j < table.length; j++) {
                            float[] v = new float[layers];
                            for (int l = 0; l < layers; l++) v[l] = got.blockScores()[(l * ids.length + s) * width + j];
                            r.add(j == table.length - 1 && cache.kvLen(ids[s]) % b != 0 ? null : v);
                        }
                        rows.put(ids[s], r);
                    }
                }
                cache.reclaimEvicted();
                cache.checkInvariants();
            }
            assertTrue(calls > 30 && evictions > 20, "calls " + calls + ", evictions " + evictions);
        }
    }

    static float[] randomLayerScores(Random rnd, int layers) {
        float[] v = new float[layers];
        for (int l = 0; l < layers; l++) v[l] = rnd.nextInt(5) * 0.5f;
        return v;
    }

    /** Uploads a batch, runs the device API, expects a rejection, and checks that no buffer changed. */
    static void assertRejectedUnchanged(KernelDevice device, Workspace ws, DecodeBatch b, String what) {
        assertThrows(IllegalArgumentException.class, () -> PagedEvictionReference.decodeStep(b, PagedEvictionOptions.defaults()), what + " (reference)");
        Stream stream = ws.stream();
        int seqs = b.seqs();
        try (DeviceBuffer tables = device.alloc(4L * b.blockTables().length);
             DeviceBuffer scores = device.alloc(4L * b.blockScores().length);
             DeviceBuffer kv = device.alloc(4L * seqs);
             DeviceBuffer logical = device.alloc(8L * seqs);
             DeviceBuffer fillAt = device.alloc(4L * seqs);
             DeviceBuffer fill = device.alloc(Math.max(4L, 4L * b.fillScores().length));
             DeviceBuffer victims = device.alloc(4L * seqs);
             DeviceBuffer freed = device.alloc(4L * seqs)) {
            device.upload(b.blockTables(), tables, stream);
            device.upload(b.blockScores(), scores, stream);
            device.upload(b.kvLen(), kv, stream);
            device.upload(PagedEviction.int64Words(b.logicalLen()), logical, stream);
            device.upload(b.fillAt(), fillAt, stream);
            device.upload(b.fillScores(), fill, stream);
            int[] sentinel = new int[seqs];
            Arrays.fill(sentinel, 77);
            device.upload(sentinel, victims, stream);
            device.upload(sentinel, freed, stream);
            PagedEviction.DeviceState state = new PagedEviction.DeviceState(seqs, b.layers(), b.blockSize(), b.budget(), b.numBlocks(), tables,
                    b.tableStride(), scores, kv, logical);
            Pending p = PagedEviction.decideOnDevice(state, fill, b.fills(), fillAt, PagedEvictionOptions.defaults(), victims, freed, ws, stream);
            assertThrows(IllegalArgumentException.class, p::await, what);
            int[] t = new int[b.blockTables().length], k = new int[seqs], v = new int[seqs], f = new int[seqs];
            float[] sc = new float[b.blockScores().length];
            device.download(tables, t, stream);
            device.download(scores, sc, stream);
            device.download(kv, k, stream);
            device.download(victims, v, stream);
            device.download(freed, f, stream);
            stream.synchronize();
            assertArrayEquals(b.blockTables(), t, what + ": tables changed");
            assertArrayEquals(b.blockScores(), sc, what + ": scores changed");
            assertArrayEquals(b.kvLen(), k, what + ": kv_len changed");
            assertArrayEquals(sentinel, v, what + ": victims written");
            assertArrayEquals(sentinel, f, what + ": freed written");
        }
    }

    /** Three sequences of PE-5 state (tables [7,3,9,4], [0,1,2,5], [6,8,10,11]); the first two evict unless one is bad. */
    static DecodeBatch three(float[] scores, int[] kv, float[] fill, int[] tables) {
        return new DecodeBatch(3, 1, 4, 12, 12, tables, 5, scores, kv, new long[] {24, 20, 16}, new int[] {0, 1, 2}, 3, fill);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void badInputsAreRejectedWithNothingChanged(String deviceName) {
        int[] tables = {7, 3, 9, 4, -1, 0, 1, 2, 5, -1, 6, 8, 10, 11, -1};
        float[] scores = {5, 8.5f, 1, NAN, NAN, 1, 2, 3, NAN, NAN, 0, 0, 0, NAN, NAN};
        int[] kv = {16, 16, 16};
        float[] fill = new float[12];
        Arrays.fill(fill, 1f);
        try (KernelDevice device = TestDevices.open(deviceName);
             Workspace ws = new Workspace(device, device.defaultStream())) {
            float[] nanFill = fill.clone();
            nanFill[9] = NAN;  // the third sequence's new block
            assertRejectedUnchanged(device, ws, three(scores, kv, nanFill, tables), "NaN token score");
            float[] infFill = fill.clone();
            infFill[0] = Float.POSITIVE_INFINITY;
            assertRejectedUnchanged(device, ws, three(scores, kv, infFill, tables), "Inf token score");
            float[] unset = scores.clone();
            unset[12] = NAN;  // the third sequence's candidate 2 was never scored
            assertRejectedUnchanged(device, ws, three(unset, kv, fill, tables), "unset candidate score");
            assertRejectedUnchanged(device, ws, three(scores, new int[] {16, 15, 16}, fill, tables), "kv_len not a multiple of B");
            assertRejectedUnchanged(device, ws, three(scores, new int[] {16, 16, 28}, fill, tables), "kv_len beyond the table");
            int[] badTable = tables.clone();
            badTable[2] = 40;  // the first sequence's victim (block 2) lies outside the pool of 12
            assertRejectedUnchanged(device, ws, three(scores, kv, fill, badTable), "victim outside the pool");
            // the same workspace then serves a good call
            Decision ok = PagedEviction.decide(device, three(scores, kv, fill, tables), PagedEvictionOptions.defaults());
            assertArrayEquals(new int[] {2, 1, 1}, ok.victims(), deviceName + " good call after rejections");
        }
        // shape errors are caught on the host before anything runs
        assertThrows(IllegalArgumentException.class, () -> three(scores, kv, fill, new int[14]));
        assertThrows(IllegalArgumentException.class, () -> new DecodeBatch(3, 1, 4, 12, 12, tables, 5, scores, kv, new long[3], new int[] {0, 1, 3}, 3, fill));
        assertThrows(IllegalArgumentException.class, () -> new DecodeBatch(3, 1, 4, 12, 12, tables, 5, scores, kv, new long[3], new int[] {0, 1, 2}, 3, new float[11]));
        assertThrows(IllegalArgumentException.class, () -> PagedEvictionOptions.local(0));
        assertThrows(IllegalArgumentException.class, () -> new PagedEvictionOptions(-1, LayerAgg.LAYER0));
    }
}
