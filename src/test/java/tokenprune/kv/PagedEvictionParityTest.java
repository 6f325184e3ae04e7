package tokenprune.kv;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kernels.PagedEvictionKernel;
import tokenprune.kernels.StatusWord;
import tokenprune.kv.PagedEviction.DecodeBatch;
import tokenprune.kv.PagedEviction.Decision;
import tokenprune.kv.PagedEvictionOptions.LayerAgg;
import tokenprune.kv.PagedEvictionOptions.Prefill;
import tokenprune.kv.PagedEvictionOptions.Victim;
import tokenprune.methods.DType;
import tokenprune.methods.Workspace;
import tokenprune.reference.PagedEvictionReference;
import tokenprune.testing.TestDevices;

/**
 * The §2.4 parity modes of PagedEviction against the reference: ARGMAX (HF global) and RANDOM (fork)
 * victims, a window of 1, the StreamingLLM paged preset (SL-5: recent prefill, block 1 evicted, no
 * scoring launch, checked on caches full of NaN), the random token score through the whole decode
 * step, and tp_pe_decode_apply with layers = 0.
 */
class PagedEvictionParityTest {
    static java.util.stream.Stream<String> devices() {
        return TestDevices.kernelDevices();
    }

    static final float NAN = Float.NaN;

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void handCheckableArgmaxRandomAndWindowOne(String deviceName) {
        float[] fill = {2, 2, 2, 3};
        PagedEvictionOptions argmax = PagedEvictionOptions.defaults().withVictim(Victim.ARGMAX);
        try (KernelDevice device = TestDevices.open(deviceName)) {
            // PE-5 state, HF global parity: the highest block score (block 1, 8.5) goes
            Decision d = PagedEviction.decide(device, PagedEvictionKernelTest.pe5(new float[] {5, 8.5f, 1.0f, NAN, NAN}, 1, fill), argmax);
            assertArrayEquals(new int[] {1}, d.victims(), "argmax victim");
            assertArrayEquals(new int[] {3}, d.freed(), "argmax freed");
            assertArrayEquals(new int[] {7, 9, 4, -1, -1}, d.blockTables(), "argmax table");
            assertArrayEquals(new float[] {5, 1.0f, 2.25f, NAN, NAN}, d.blockScores(), "argmax scores (new block cached, shifted)");
            assertArrayEquals(new int[] {12}, d.kvLen(), "argmax kv_len");
            d = PagedEviction.decide(device, PagedEvictionKernelTest.pe5(new float[] {5, 3f, 3f, NAN, NAN}, 1, fill), argmax);
            assertArrayEquals(new int[] {1}, d.victims(), "argmax ties: lowest index");
            d = PagedEviction.decide(device, PagedEvictionKernelTest.pe5(new float[] {5, 3f, 4f, NAN, NAN}, 1, fill), argmax);
            assertArrayEquals(new int[] {2}, d.victims(), "argmax 4 > 3");

            // random and a window of 1 read no score: NaN everywhere is accepted, the new block stays unset
            float[] unset = {NAN, NAN, NAN, NAN, NAN};
            float[] nanFill = {NAN, NAN, NAN, NAN};
            boolean[] chosen = new boolean[3];
            for (long seed = 0; seed < 40; seed++) {
                PagedEvictionOptions random = PagedEvictionOptions.defaults().withVictim(Victim.RANDOM).withSeed(seed);
                d = PagedEviction.decide(device, PagedEvictionKernelTest.pe5(unset, 1, nanFill), random);
                int want = PagedEvictionReference.randomVictim(seed, 24, 0, 2);
                assertArrayEquals(new int[] {want}, d.victims(), "random seed " + seed);
                chosen[want] = true;
                int[] table = want == 1 ? new int[] {7, 9, 4, -1, -1} : new int[] {7, 3, 4, -1, -1};
                assertArrayEquals(table, d.blockTables(), "random table seed " + seed);
                assertArrayEquals(unset, d.blockScores(), "nothing scored");
            }
            assertTrue(chosen[1] && chosen[2], "40 seeds pick both candidates");
            for (Victim v : Victim.values()) {
                d = PagedEviction.decide(device, PagedEvictionKernelTest.pe5(unset, 1, nanFill), PagedEvictionOptions.local(1).withVictim(v));
                assertArrayEquals(new int[] {1}, d.victims(), "window 1, " + v);
                assertArrayEquals(new int[] {7, 9, 4, -1, -1}, d.blockTables(), "window 1 table, " + v);
            }
            d = PagedEviction.decide(device, PagedEvictionKernelTest.pe5(unset, 1, nanFill), PagedEvictionOptions.streamingLlm());
            assertArrayEquals(new int[] {1}, d.victims(), "SL-5 decode: block 1");
            // a rule that reads scores still rejects the unset ones
            assertThrows(IllegalArgumentException.class, () -> PagedEviction.decide(device, PagedEvictionKernelTest.pe5(unset, 1, fill), argmax));
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void pe8ProtectedBlocksUnderEveryRule(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            for (PagedEvictionOptions o : new PagedEvictionOptions[] {PagedEvictionOptions.defaults(), PagedEvictionOptions.defaults().withVictim(Victim.ARGMAX),
                PagedEvictionOptions.defaults().withVictim(Victim.RANDOM).withSeed(99), PagedEvictionOptions.streamingLlm(), PagedEvictionOptions.local(2)}) {
                // 3 blocks (0, 1, last): the only candidate is 1 (a budget of 2 blocks, below the 3B the cache asserts, to reach it)
                DecodeBatch three = new DecodeBatch(1, 1, 4, 8, 10, new int[] {5, 6, 7, -1}, 4, new float[] {1, 2, NAN, NAN}, new int[] {12}, new long[] {20},
                        new int[] {0}, 1, new float[] {1, 1, 1, 1});
                Decision d = PagedEviction.decide(device, three, o);
                PagedEvictionKernelTest.assertDecision(PagedEvictionReference.decodeStep(three, o), d, deviceName + " PE-8 3 blocks " + o);
                assertArrayEquals(new int[] {1}, d.victims(), "PE-8 3 blocks " + o);
                // 2 blocks: no candidate, nothing evicted, nothing rejected
                DecodeBatch two = new DecodeBatch(1, 1, 4, 4, 10, new int[] {5, 6, -1}, 3, new float[] {1, NAN, NAN}, new int[] {8}, new long[] {20},
                        new int[] {0}, 1, new float[] {1, 1, 1, 1});
                d = PagedEviction.decide(device, two, o);
                PagedEvictionKernelTest.assertDecision(PagedEvictionReference.decodeStep(two, o), d, deviceName + " PE-8 2 blocks " + o);
                assertArrayEquals(new int[] {-1}, d.victims(), "PE-8 2 blocks " + o);
                assertArrayEquals(new int[] {8}, d.kvLen());
            }
        }
    }

    static PagedEvictionOptions randomRule(Random rnd) {
        PagedEvictionOptions o = PagedEvictionKernelTest.randomOptions(rnd);
        o = o.withVictim(Victim.values()[rnd.nextInt(3)]).withSeed(rnd.nextLong());
        return rnd.nextInt(5) == 0 ? o.withWindow(1) : o;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void randomBatchesEveryRuleMatchTheReferenceExactly(String deviceName) {
        Random rnd = new Random(0xA11);
        int[] sizes = {1, 3, 64, 17, 33, 5, 2, 4, 3, 64, 9, 4};
        try (KernelDevice device = TestDevices.open(deviceName)) {
            int[] evictionsByRule = new int[4];
            for (int it = 0; it < sizes.length; it++) {
                DecodeBatch b = PagedEvictionKernelTest.randomBatch(rnd, sizes[it], it % 4 == 3 ? 300 : 7);
                PagedEvictionOptions o = randomRule(rnd);
                if (it < 4) o = o.withVictim(Victim.values()[it % 3]).withWindow(it == 3 ? 1 : o.window());  // every rule at least once
                Decision want;
                try {
                    want = PagedEvictionReference.decodeStep(b, o);
                } catch (IllegalArgumentException e) {  // an unset block-0 score is never a candidate, so this is not expected
                    throw new AssertionError("batch " + it + " rejected by the reference: " + e.getMessage(), e);
                }
                Decision got = PagedEviction.decide(device, b, o);
                PagedEvictionKernelTest.assertDecision(want, got, deviceName + " batch " + it + " " + o);
                for (int v : got.victims()) if (v >= 0) evictionsByRule[o.victimRule()]++;
            }
            for (int r = 0; r < 4; r++) assertTrue(evictionsByRule[r] > 0, "rule " + r + " evicted nothing: " + Arrays.toString(evictionsByRule));
        }
    }

    @Test
    void referenceStreamingPrefillIsPositionScoredPrefill() {
        // SL-5: B = 4, C = 12, L = 22 -> [0-3], [12-15], [16-19], [20-21], kv_len 14
        assertArrayEquals(new int[] {0, 1, 2, 3, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21}, PagedEvictionReference.prefillKeepRecent(22, 12, 4));
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, PagedEvictionReference.prefillKeepRecent(10, 12, 4));
        assertThrows(IllegalArgumentException.class, () -> PagedEvictionReference.tokenScore(new double[] {1}, new double[] {1}, KvScoreOptions.random(1)));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void recentPrefillMatchesTheReference(String deviceName) {
        Random rnd = new Random(0x5150);
        try (KernelDevice device = TestDevices.open(deviceName)) {
            int[][] sl5 = PagedEviction.prefillKeepRecent(device, new int[] {0, 22, 32}, 12, 4);
            assertArrayEquals(new int[] {0, 1, 2, 3, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21}, sl5[0], "SL-5 prefill");
            assertArrayEquals(new int[] {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, sl5[1], "L <= C keeps all");
            for (int it = 0; it < 6; it++) {
                int b = new int[] {1, 3, 4, 16}[rnd.nextInt(4)];
                int budget = b * (3 + rnd.nextInt(8));
                int seqs = 1 + rnd.nextInt(9);
                int[] rows = new int[seqs + 1];
                for (int s = 0; s < seqs; s++) rows[s + 1] = rows[s] + (rnd.nextBoolean() ? rnd.nextInt(budget + 1) : budget + rnd.nextInt(3 * budget + 600));
                int[][] got = PagedEviction.prefillKeepRecent(device, rows, budget, b);
                float[] positions = new float[rows[seqs]];
                for (int s = 0; s < seqs; s++) for (int i = rows[s]; i < rows[s + 1]; i++) positions[i] = i - rows[s];
                int[][] byScore = PagedEviction.prefillKeep(device, positions, rows, budget, b);
                for (int s = 0; s < seqs; s++) {
                    int len = rows[s + 1] - rows[s];
                    String what = deviceName + " it " + it + " prompt " + s + " L " + len + " C " + budget + " B " + b;
                    assertArrayEquals(PagedEvictionReference.prefillKeepRecent(len, budget, b), got[s], what);
                    assertArrayEquals(byScore[s], got[s], what + ": = the score kernel with score = position");
                }
            }
            // the options overload picks the rule; RECENT reads no scores (null is fine)
            Stream stream = device.defaultStream();
            try (Workspace ws = new Workspace(device, stream); DeviceBuffer kept = device.alloc(4 * 14)) {
                PagedEviction.prefillKeepOnDevice(null, new int[] {0, 22}, 12, 4, PagedEvictionOptions.streamingLlm(), kept, ws, stream).await();
                int[] k = new int[14];
                device.download(kept, k, stream);
                stream.synchronize();
                assertArrayEquals(sl5[0], k, "options overload");
            }
        }
    }

    /** Per-layer caches whose every element is NaN: any scoring launch that read K/V would reject the step. */
    static DeviceBuffer[] nanCaches(KernelDevice device, KvLayout layout, int layers, Stream stream) {
        DeviceBuffer[] c = new DeviceBuffer[layers];
        short[] nan = (short[]) KvTokenScoreKernelTest.nanCache(layout);
        for (int l = 0; l < layers; l++) {
            c[l] = device.alloc(layout.bytes());
            device.upload(nan, c[l], stream);
        }
        return c;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void sl5StreamingDecodeEvictsBlockOneWithoutScoring(String deviceName) {
        int b = 4, budget = 12, layers = 2, width = budget / b + 1, numBlocks = 16;
        KvLayout layout = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION, DType.BF16, numBlocks, b, 2, 8);
        PagedEvictionOptions o = PagedEvictionOptions.streamingLlm();
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Stream stream = device.defaultStream();
            int[] kept = PagedEviction.prefillKeepRecent(device, new int[] {0, 22}, budget, b)[0];
            PagedKvCache cache = new PagedKvCache(numBlocks, b, budget);
            int id = cache.allocateSequence(kept.length, 22);
            assertEquals(14, cache.kvLen(id), "SL-5 kv_len");
            List<Integer> stored = new ArrayList<>();  // the position held in each kv slot, in table order
            for (int p : kept) stored.add(p);
            DeviceBuffer[] caches = nanCaches(device, layout, layers, stream);
            try (Workspace ws = new Workspace(device, stream);
                 DeviceBuffer tables = device.alloc(4L * width);
                 DeviceBuffer scores = device.alloc(4L * layers * width);
                 DeviceBuffer kv = device.alloc(4);
                 DeviceBuffer logical = device.alloc(8);
                 DeviceBuffer victims = device.alloc(4);
                 DeviceBuffer freed = device.alloc(4)) {
                float[] unset = new float[layers * width];
                Arrays.fill(unset, NAN);
                device.upload(unset, scores, stream);
                PagedEviction.DeviceState state = new PagedEviction.DeviceState(1, layers, b, budget, numBlocks, tables, width, scores, kv, logical);
                int evictions = 0;
                for (int step = 0; step < 14; step++) {
                    long position = cache.logicalLength(id);
                    cache.appendTokens(id, 1);
                    stored.add((int) position);
                    int kvLen = cache.kvLen(id);
                    boolean filled = kvLen % b == 0;
                    if (!filled) continue;
                    int[] row = Arrays.copyOf(cache.blockTable(id), width);
                    for (int j = cache.blockTable(id).length; j < width; j++) row[j] = -1;
                    device.upload(row, tables, stream);
                    device.upload(new int[] {kvLen}, kv, stream);
                    device.upload(PagedEviction.int64Words(new long[] {cache.logicalLength(id)}), logical, stream);
                    PagedEviction.decodeStepOnDevice(layout, caches, KvScoreOptions.defaults(), state, new int[] {kvLen}, new boolean[] {true}, o, victims,
                            freed, ws, stream).await();
                    int[] v = new int[1], f = new int[1], k = new int[1];
                    float[] sc = new float[layers * width];
                    device.download(victims, v, stream);
                    device.download(freed, f, stream);
                    device.download(kv, k, stream);
                    device.download(scores, sc, stream);
                    stream.synchronize();
                    for (float x : sc) assertTrue(Float.isNaN(x), "no block score is ever set");
                    if (step == 1) {  // logical 24 > 12, kv_len 16: the first block-full moment over the budget
                        assertArrayEquals(new int[] {1}, v, "SL-5: the first eviction takes logical block 1");
                        assertEquals(List.of(12, 13, 14, 15), stored.subList(4, 8), "block 1 holds positions 12-15");
                    }
                    if (v[0] >= 0) {
                        assertEquals(1, v[0], "step " + step);
                        assertEquals(cache.blockTable(id)[1], f[0], "freed = the physical block 1");
                        int phys = cache.evictBlock(id, 1);
                        assertEquals(phys, f[0]);
                        stored.subList(b, 2 * b).clear();
                        evictions++;
                        cache.reclaimEvicted();
                    }
                    assertEquals(cache.kvLen(id), k[0], "kv_len");
                    // StreamingLLM's window: block 0 + the most recent kv_len - B positions
                    long n = cache.logicalLength(id);
                    List<Integer> window = new ArrayList<>();
                    for (int i = 0; i < b; i++) window.add(i);
                    for (long p = n - (cache.kvLen(id) - b); p < n; p++) window.add((int) p);
                    assertEquals(window, stored, "stored positions after step " + step);
                    cache.checkInvariants();
                }
                assertEquals(4, evictions, "fills at logical 24, 28, 32, 36 all evict");
            } finally {
                for (DeviceBuffer c : caches) c.close();
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void randomScoreDecodeStepReadsNoKv(String deviceName) {
        int b = 4, budget = 12, layers = 3, seqs = 3, width = 5, numBlocks = 20;
        KvLayout layout = KvLayout.of(KvLayout.Kind.FLASH_INFER_HND, DType.BF16, numBlocks, b, 2, 8);
        int[] tables = {7, 3, 9, 4, -1, 0, 1, 2, -1, -1, 6, 8, 10, -1, -1};
        int[] kv = {16, 12, 12};
        long[] logical = {24, 12, 20};  // over the budget; at it; over it with kv_len - B < C (prefill kept exactly C)
        Random rnd = new Random(3);
        float[] scores = new float[layers * seqs * width];
        Arrays.fill(scores, NAN);
        for (int l = 0; l < layers; l++)
            for (int s = 0; s < seqs; s++) for (int j = 0; j < kv[s] / b - 1; j++) scores[(l * seqs + s) * width + j] = rnd.nextFloat();
        KvScoreOptions random = KvScoreOptions.random(0xC0FFEE);
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Stream stream = device.defaultStream();
            DeviceBuffer[] caches = nanCaches(device, layout, layers, stream);
            try (Workspace ws = new Workspace(device, stream);
                 DeviceBuffer t = device.alloc(4L * tables.length); DeviceBuffer sc = device.alloc(4L * scores.length);
                 DeviceBuffer kvD = device.alloc(4L * seqs); DeviceBuffer lg = device.alloc(8L * seqs);
                 DeviceBuffer victims = device.alloc(4L * seqs); DeviceBuffer freed = device.alloc(4L * seqs)) {
                device.upload(tables, t, stream);
                device.upload(scores, sc, stream);
                device.upload(kv, kvD, stream);
                device.upload(PagedEviction.int64Words(logical), lg, stream);
                PagedEviction.DeviceState state = new PagedEviction.DeviceState(seqs, layers, b, budget, numBlocks, t, width, sc, kvD, lg);
                PagedEviction.decodeStepOnDevice(layout, caches, random, state, kv, new boolean[] {true, true, true}, PagedEvictionOptions.defaults(), victims,
                        freed, ws, stream).await();
                int[] gotT = new int[tables.length], gotKv = new int[seqs], gotV = new int[seqs], gotF = new int[seqs];
                float[] gotS = new float[scores.length];
                device.download(t, gotT, stream);
                device.download(sc, gotS, stream);
                device.download(kvD, gotKv, stream);
                device.download(victims, gotV, stream);
                device.download(freed, gotF, stream);
                stream.synchronize();
                // the reference with the fill scores it computes itself: hashes of (seed, physical block, slot)
                float[] fill = new float[layers * seqs * b];
                for (int l = 0; l < layers; l++)
                    for (int s = 0; s < seqs; s++) {
                        int[] row = Arrays.copyOfRange(tables, s * width, (s + 1) * width);
                        double[] x = PagedEvictionReference.tokenScores(layout, KvTokenScoreKernelTest.nanCache(layout), row, kv[s] - b, kv[s], random);
                        for (int j = 0; j < b; j++) fill[(l * seqs + s) * b + j] = (float) x[j];
                    }
                Decision want = PagedEvictionReference.decodeStep(new DecodeBatch(seqs, layers, b, budget, numBlocks, tables, width, scores, kv, logical,
                        new int[] {0, 1, 2}, seqs, fill), PagedEvictionOptions.defaults());
                Decision got = new Decision(gotV, gotF, gotT, gotS, gotKv);
                PagedEvictionKernelTest.assertDecision(want, got, deviceName + " random score");
                assertEquals(1, Arrays.stream(gotV).filter(v -> v >= 0).count(), "only sequence 0 is over the budget with kv_len - B >= C");
            } finally {
                for (DeviceBuffer c : caches) c.close();
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void applyWithZeroLayersTouchesNoScoreRow(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Stream stream = device.defaultStream();
            int seqs = 3, width = 5, b = 4;
            try (StatusWord status = new StatusWord(device, stream);
                 DeviceBuffer stage = device.alloc(4L * 2 * seqs);
                 DeviceBuffer newScores = device.alloc(16);
                 DeviceBuffer fillAt = device.alloc(4L * seqs);
                 DeviceBuffer tables = device.alloc(4L * seqs * width);
                 DeviceBuffer scores = device.alloc(64);
                 DeviceBuffer kv = device.alloc(4L * seqs);
                 DeviceBuffer victims = device.alloc(4L * seqs);
                 DeviceBuffer freed = device.alloc(4L * seqs)) {
                device.upload(new int[] {2, 9, -1, -1, -1, -1}, stage, stream);  // sequence 0 evicts block 2 (physical 9); 1 keeps all; 2 did not fill
                device.upload(new int[] {0, 1, -1}, fillAt, stream);
                device.upload(new int[] {7, 3, 9, 4, -1, 0, 1, 2, 5, -1, 6, 8, 10, -1, -1}, tables, stream);
                device.upload(new int[] {16, 16, 11}, kv, stream);
                device.fill(scores, 0x5a, stream);
                device.fill(newScores, 0x5a, stream);
                int epoch = status.nextEpoch(stream);
                PagedEvictionKernel.launchApply(device, stream, stage, newScores, fillAt, 0, b, seqs, tables, width, scores, kv, victims, freed, status.buffer(),
                        epoch);
                assertTrue(!status.rejected(epoch, stream));
                int[] t = new int[seqs * width], k = new int[seqs], v = new int[seqs], f = new int[seqs];
                device.download(tables, t, stream);
                device.download(kv, k, stream);
                device.download(victims, v, stream);
                device.download(freed, f, stream);
                float[] scf = new float[16];
                device.download(scores, scf, stream);
                stream.synchronize();
                assertArrayEquals(new int[] {7, 3, 4, -1, -1, 0, 1, 2, 5, -1, 6, 8, 10, -1, -1}, t, "table row 0 shifted, padding -1");
                assertArrayEquals(new int[] {12, 16, 11}, k, "kv_len");
                assertArrayEquals(new int[] {2, -1, -1}, v, "victims");
                assertArrayEquals(new int[] {9, -1, -1}, f, "freed");
                for (float x : scf) assertEquals(0x5a5a5a5a, Float.floatToRawIntBits(x), "no score row touched");
            }
        }
    }

    @Test
    void optionsAndTheirRules() {
        assertEquals(0, PagedEvictionOptions.defaults().victimRule());
        assertTrue(PagedEvictionOptions.defaults().readsScores());
        assertEquals(1, PagedEvictionOptions.defaults().withVictim(Victim.ARGMAX).victimRule());
        assertEquals(2, PagedEvictionOptions.local(2).withVictim(Victim.RANDOM).victimRule());
        assertEquals(3, PagedEvictionOptions.local(1).victimRule(), "a window of 1 is block 1 for every rule");
        PagedEvictionOptions s = PagedEvictionOptions.streamingLlm();
        assertEquals(1, s.window());
        assertEquals(Prefill.RECENT, s.prefill());
        assertTrue(!s.readsScores());
        assertEquals(new PagedEvictionOptions(3, LayerAgg.LAYER0, Victim.ARGMIN, 0, Prefill.SCORES), new PagedEvictionOptions(3, LayerAgg.LAYER0));
        assertThrows(IllegalArgumentException.class, () -> new PagedEvictionOptions(0, LayerAgg.LAYER0, null, 0, Prefill.SCORES));
        assertThrows(IllegalArgumentException.class, () -> new PagedEvictionOptions(0, LayerAgg.LAYER0, Victim.ARGMIN, 0, null));
        assertEquals(new KvScoreOptions(KvScoreOptions.Metric.V, KvScoreOptions.HeadAgg.MEAN_OF_RATIOS, 1e-6f, 0),
                new KvScoreOptions(KvScoreOptions.Metric.V, KvScoreOptions.HeadAgg.MEAN_OF_RATIOS, 1e-6f));
        assertTrue(!KvScoreOptions.random(1).readsKv());
    }
}
