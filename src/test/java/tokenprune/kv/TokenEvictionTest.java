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
import tokenprune.methods.DType;
import tokenprune.methods.Workspace;
import tokenprune.reference.AttentionScoresReference;
import tokenprune.reference.TokenEvictionReference;
import tokenprune.testing.TestDevices;

/**
 * Token-level eviction (TokenEviction: KvKeepSelect per layer + KvCompaction in place, one epoch)
 * against TokenEvictionReference: random ragged batches over the 4 layouts x 3 dtypes with due and
 * not-due sequences, per-head / shared / pooled ATTENTION and STREAMING with and without key
 * re-rotation; a hand case; a long H2O / A2SF decode run on a TOKEN-granularity PagedKvCache (append,
 * accumulate the scores, compact, release blocks; invariants after every step); rejections that
 * change nothing.
 */
class TokenEvictionTest {
    static java.util.stream.Stream<String> devices() {
        return TestDevices.kernelDevices();
    }

    static Object randomCache(KvLayout layout, Random rnd) {
        return KvCompactionKernelTest.randomData(layout.dtype(), (int) layout.elements(), rnd);
    }

    /** Integer-valued scores: fp32 and float64 rank them identically, heads means and pooling included. */
    static float[] integerState(KvLayout layout, Random rnd) {
        float[] s = new float[layout.numBlocks() * layout.blockSize() * layout.kvHeads()];
        for (int i = 0; i < s.length; i++) s[i] = rnd.nextInt(8);
        return s;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void randomBatchesMatchTheReference(String deviceName) {
        Random rnd = new Random(0x70CE);
        KvLayout.Kind[] kinds = KvLayout.Kind.values();
        DType[] dtypes = DType.values();
        int due = 0, compared = 0;
        try (KernelDevice device = TestDevices.open(deviceName)) {
            for (int iter = 0; iter < 40; iter++) {  // iterations 30..39: LEGACY with every variant and dtype
                int b = 1 + rnd.nextInt(8), kvHeads = new int[] {1, 2, 3, 4}[rnd.nextInt(4)], headDim = 1 + rnd.nextInt(12);
                KvLayout.Kind kind = iter < 30 ? kinds[iter % 4] : KvLayout.Kind.LEGACY;
                headDim = TestLayouts.headDim(kind, dtypes[(iter / 4) % 3], headDim);
                int variant = iter % 5;
                if (variant == 4 && headDim < 2) headDim = 2;
                int sinks = rnd.nextInt(3), recent = rnd.nextInt(4), slack = 1 + rnd.nextInt(2 * b);
                KvKeepSelect.Ties ties = (iter / 5) % 2 == 1 ? KvKeepSelect.Ties.LATER_KEPT : KvKeepSelect.Ties.LOWER_INDEX_KEPT;  // integer states: many ties
                TokenEviction.Options o = switch (variant) {
                    case 0 -> ties == KvKeepSelect.Ties.LATER_KEPT ? TokenEviction.Options.a2sf(sinks, recent, sinks + recent + 1 + rnd.nextInt(9), slack)
                            : new TokenEviction.Options(TokenEviction.Policy.ATTENTION, KvKeepSelect.Policy.perHead(sinks, recent, sinks + recent + 1 + rnd.nextInt(9)), slack, null);
                    case 1 -> new TokenEviction.Options(TokenEviction.Policy.ATTENTION, KvKeepSelect.Policy.shared(sinks, recent, sinks + recent + 1 + rnd.nextInt(9)).withTies(ties), slack, null);
                    case 2 -> new TokenEviction.Options(TokenEviction.Policy.ATTENTION,
                            KvKeepSelect.Policy.perHead(sinks, recent, sinks + recent + 1 + rnd.nextInt(9)).pooled(3, rnd.nextBoolean() ? SnapKv.Pooling.AVG : SnapKv.Pooling.MAX).withTies(ties), slack, null);
                    case 3 -> TokenEviction.Options.streaming(sinks, recent + 1, slack, null);
                    default -> TokenEviction.Options.streaming(sinks + 1, recent + 1, slack,
                            new KvCompaction.Rope(headDim / 2 * 2, rnd.nextBoolean() ? 10000f : 500000f, rnd.nextBoolean() ? KvCompaction.RopeStyle.NEOX : KvCompaction.RopeStyle.GPTJ));
                };
                int seqs = 1 + rnd.nextInt(5), c = o.budget();
                int[] kvLens = new int[seqs];
                for (int s = 0; s < seqs; s++) {
                    kvLens[s] = switch (rnd.nextInt(4)) {
                        case 0 -> c + slack;
                        case 1 -> c + slack + rnd.nextInt(3 * b + 1);
                        case 2 -> rnd.nextInt(c + slack);
                        default -> 0;
                    };
                    if (TokenEviction.triggers(kvLens[s], o)) due++;
                }
                int stride = 1, need = 0;
                for (int n : kvLens) {
                    stride = Math.max(stride, (n + b - 1) / b);
                    need += (n + b - 1) / b;
                }
                stride += rnd.nextInt(2);
                int numBlocks = need + 1 + rnd.nextInt(3);
                List<Integer> pool = new ArrayList<>();
                for (int p = 0; p < numBlocks; p++) pool.add(p);
                Collections.shuffle(pool, rnd);
                int[] tables = new int[seqs * stride];
                Arrays.fill(tables, -1);
                int next = 0;
                for (int s = 0; s < seqs; s++) for (int j = 0; j < (kvLens[s] + b - 1) / b; j++) tables[s * stride + j] = pool.get(next++);
                KvLayout layout = KvLayout.of(kind, dtypes[(iter / 4) % 3], numBlocks, b, kvHeads, headDim);
                int layers = 1 + rnd.nextInt(2);
                Object[] caches = new Object[layers];
                float[][] states = variant == 3 && rnd.nextBoolean() ? null : new float[layers][];
                for (int l = 0; l < layers; l++) {
                    caches[l] = randomCache(layout, rnd);
                    if (states != null) states[l] = integerState(layout, rnd);
                }
                String at = deviceName + " iter " + iter + " " + layout + " " + o;
                TokenEviction.Result got = TokenEviction.evict(device, layout, caches, states, tables, stride, kvLens, o);
                TokenEviction.Result want = TokenEvictionReference.evict(layout, caches, states, tables, stride, kvLens, o);
                assertArrayEquals(want.kvLen(), got.kvLen(), at + ": kv_len");
                for (int l = 0; l < layers; l++) {
                    if (o.rope() == null) {
                        if (layout.dtype() == DType.F32) assertArrayEquals((float[]) want.caches()[l], (float[]) got.caches()[l], at + " layer " + l);
                        else assertArrayEquals((short[]) want.caches()[l], (short[]) got.caches()[l], at + " layer " + l);
                    } else {
                        double tol = layout.dtype() == DType.F32 ? 1e-5 : layout.dtype() == DType.F16 ? 2e-3 : 1.6e-2;
                        for (int i = 0; i < layout.elements(); i++) {
                            float w = KvCompactionKernelTest.value(want.caches()[l], layout.dtype(), i), g = KvCompactionKernelTest.value(got.caches()[l], layout.dtype(), i);
                            assertEquals(w, g, tol * Math.max(1, Math.abs(w)), at + " layer " + l + " element " + i);
                        }
                    }
                    if (states != null) assertArrayEquals(want.states()[l], got.states()[l], at + " layer " + l + " state");
                    compared++;
                }
            }
        }
        assertTrue(due >= 20, "due sequences " + due);
        assertTrue(compared >= 30, "compared " + compared);
    }

    /** H2O with hh = 2, recent = 1 on one head: scores [5, 1, 9, 2, 4] keep tokens {0, 2} + {4}; the third block is released. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void handCaseKeepsHeavyHittersAndRecent(String deviceName) {
        KvLayout layout = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION, DType.F32, 6, 2, 1, 2);
        PagedKvCache cache = PagedKvCache.forTokenEviction(6, 2, 3, 2);
        int id = cache.adoptSequence(new int[] {4, 1, 5}, 5, 5);
        float[] kv = new float[(int) layout.elements()];
        float[] state = new float[6 * 2];
        float[] scores = {5, 1, 9, 2, 4};
        for (int t = 0; t < 5; t++) {
            int p = cache.blockTable(id)[t / 2];
            for (int d = 0; d < 2; d++) {
                kv[(int) layout.offset(0, p, t % 2, 0, d)] = 10 * t + d;       // key of token t
                kv[(int) layout.offset(1, p, t % 2, 0, d)] = -(10 * t + d);    // value
            }
            state[p * 2 + t % 2] = scores[t];
        }
        TokenEviction.Options o = TokenEviction.Options.h2o(2, 1, 2);
        try (KernelDevice device = TestDevices.open(deviceName)) {
            TokenEviction.Result r = TokenEviction.evict(device, layout, new Object[] {kv}, new float[][] {state}, cache.blockTables(new int[] {id}, 3), 3,
                    new int[] {5}, o);
            assertArrayEquals(new int[] {3}, r.kvLen());
            float[] out = (float[]) r.caches()[0];
            int[] kept = {0, 2, 4};
            for (int i = 0; i < 3; i++) {
                int p = cache.blockTable(id)[i / 2];
                assertEquals(10f * kept[i], out[(int) layout.offset(0, p, i % 2, 0, 0)], "key of kept token " + kept[i]);
                assertEquals(-10f * kept[i] - 1, out[(int) layout.offset(1, p, i % 2, 0, 1)], "value of kept token " + kept[i]);
                assertEquals(scores[kept[i]], r.states()[0][p * 2 + i % 2], "state of kept token " + kept[i]);
            }
            TokenEviction.applyTo(cache, new int[] {id}, r.kvLen());
            assertArrayEquals(new int[] {4, 1}, cache.blockTable(id));
            assertArrayEquals(new int[] {5}, cache.pendingEvicted());
            cache.checkInvariants();
        }
    }

    static final int B = 4, KV_HEADS = 2, HEADS = 4, D = 8, LAYERS = 2, POOL = 40, MAX_SEQS = 3, STEPS = 50;

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void h2oDecodeRunEvictsEveryStep(String deviceName) {
        decodeRun(deviceName, KvLayout.Kind.FLASH_ATTENTION, TokenEviction.Options.h2o(6, 4, 1), 1.0f, 0x420);
        decodeRun(deviceName, KvLayout.Kind.LEGACY, TokenEviction.Options.h2o(6, 4, 1), 1.0f, 0x422);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void a2sfDecodeRunCompactsOncePerBlock(String deviceName) {
        decodeRun(deviceName, KvLayout.Kind.FLASH_INFER_HND, TokenEviction.Options.a2sf(1, 3, 10, B), 0.9f, 0xA25F);
    }

    /**
     * Each step: sequences join (a prompt up to C + slack − 1) and leave, every other sequence appends a
     * token; the scores are updated from one query per sequence (exact float64 LSE) with
     * accumulatePagedOnDevice; due sequences are compacted on the device and mirrored into the host
     * cache. The step's eviction is compared with the reference on the same inputs (the device's caches
     * and states before it): caches bit-exact, states exact.
     */
    static void decodeRun(String deviceName, KvLayout.Kind kind, TokenEviction.Options o, float decay, long seed) {
        Random rnd = new Random(seed);
        KvLayout layout = KvLayout.of(kind, DType.F32, POOL, B, KV_HEADS, D);
        int slots = POOL * B * KV_HEADS;
        float scale = (float) (1 / Math.sqrt(D));
        PagedKvCache cache = PagedKvCache.forTokenEviction(POOL, B, o.budget(), o.slack());
        int width = cache.maxBlocksPerSequence();
        float[][] hostCaches = new float[LAYERS][(int) layout.elements()];
        for (float[] c : hostCaches) for (int i = 0; i < c.length; i++) c[i] = rnd.nextFloat() * 3 - 1.5f;
        int compactions = 0, released = 0;
        try (KernelDevice device = TestDevices.open(deviceName);
             Workspace ws = new Workspace(device, device.defaultStream());
             DeviceBuffer tablesD = device.alloc(4L * MAX_SEQS * width);
             DeviceBuffer qD = device.alloc(4L * MAX_SEQS * HEADS * D);
             DeviceBuffer lseD = device.alloc(4L * MAX_SEQS * HEADS)) {
            Stream stream = ws.stream();
            DeviceBuffer[] cachesD = new DeviceBuffer[LAYERS], statesD = new DeviceBuffer[LAYERS];
            try {
                for (int l = 0; l < LAYERS; l++) {
                    cachesD[l] = device.alloc(layout.bytes());
                    statesD[l] = device.alloc(4L * slots);
                    device.fill(statesD[l], 0, stream);
                    device.upload(hostCaches[l], cachesD[l], stream);
                }
                for (int step = 0; step < STEPS; step++) {
                    List<Integer> joined = new ArrayList<>();
                    if (step % 13 == 12) {
                        int[] ids = cache.sequenceIds();
                        cache.freeSequence(ids[rnd.nextInt(ids.length)]);
                    }
                    while (cache.sequenceIds().length < MAX_SEQS && (step == 0 || rnd.nextInt(3) == 0)) {
                        int prompt = 1 + rnd.nextInt(o.budget() + o.slack() - 1);
                        int id = cache.allocateSequence(prompt, prompt);
                        joined.add(id);
                        for (int t = 0; t < prompt; t++) BlockEvictionDecodeRunTest.writeToken(hostCaches, layout, cache.blockTable(id)[t / B], t % B, rnd);
                    }
                    int[] ids = cache.sequenceIds();
                    int seqs = ids.length;
                    int[] prevLens = new int[seqs];
                    for (int s = 0; s < seqs; s++) {
                        if (joined.contains(ids[s])) continue;
                        prevLens[s] = cache.kvLen(ids[s]);
                        int slot = cache.appendTokens(ids[s], 1).slots()[0];
                        BlockEvictionDecodeRunTest.writeToken(hostCaches, layout, slot / B, slot % B, rnd);
                    }
                    // the model writes the new tokens' K/V into the device caches (here: the host copy's slots)
                    for (int l = 0; l < LAYERS; l++) device.upload(hostCaches[l], cachesD[l], stream);
                    int[] kvLens = new int[seqs], positions = new int[seqs], rowOffsets = new int[seqs + 1];
                    for (int s = 0; s < seqs; s++) {
                        kvLens[s] = cache.kvLen(ids[s]);
                        positions[s] = kvLens[s] - 1;
                        rowOffsets[s + 1] = s + 1;
                    }
                    int[] tables = cache.blockTables(ids, width);
                    device.upload(tables, tablesD, stream);
                    float[] q = new float[seqs * HEADS * D];
                    for (int l = 0; l < LAYERS; l++) {
                        for (int i = 0; i < q.length; i++) q[i] = rnd.nextFloat() * 3 - 1.5f;
                        double[] lse64 = AttentionScoresReference.lse(layout, hostCaches[l], tables, width, kvLens, q, HEADS, rowOffsets, positions, scale);
                        float[] lse = new float[lse64.length];
                        for (int i = 0; i < lse.length; i++) lse[i] = (float) lse64[i];
                        device.upload(q, qD, stream);
                        device.upload(lse, lseD, stream);
                        AttentionScores.accumulatePagedOnDevice(ws, stream, layout, cachesD[l], tablesD, width, kvLens, prevLens, qD, (long) HEADS * D, D,
                                HEADS, rowOffsets, positions, null, lseD, HEADS, 1, scale, decay, statesD[l]);
                    }
                    // the inputs of this step's eviction, as the device holds them
                    float[][] statesBefore = new float[LAYERS][slots];
                    for (int l = 0; l < LAYERS; l++) device.download(statesD[l], statesBefore[l], stream);
                    stream.synchronize();
                    TokenEviction.Queued queued = TokenEviction.evictOnDevice(layout, cachesD, statesD, tablesD, width, kvLens, o, ws, stream);
                    queued.pending().await();
                    TokenEviction.Result want = TokenEvictionReference.evict(layout, hostCaches, statesBefore, tables, width, kvLens, o);
                    String at = deviceName + " step " + step;
                    assertArrayEquals(want.kvLen(), queued.kvLen(), at + ": kv_len");
                    for (int l = 0; l < LAYERS; l++) {
                        float[] c = new float[(int) layout.elements()], st = new float[slots];
                        device.download(cachesD[l], c, stream);
                        device.download(statesD[l], st, stream);
                        stream.synchronize();
                        assertArrayEquals((float[]) want.caches()[l], c, at + " layer " + l + " cache");
                        assertArrayEquals(want.states()[l], st, at + " layer " + l + " state");
                        hostCaches[l] = c;
                    }
                    for (int s = 0; s < seqs; s++) if (queued.kvLen()[s] < kvLens[s]) compactions++;
                    int pendingBefore = cache.pendingEvicted().length;
                    TokenEviction.applyTo(cache, ids, queued.kvLen());
                    released += cache.pendingEvicted().length - pendingBefore;
                    for (int s = 0; s < seqs; s++) {
                        assertEquals(queued.kvLen()[s], cache.kvLen(ids[s]), at + ": host kv_len");
                        assertTrue(cache.kvLen(ids[s]) < o.budget() + o.slack(), at + ": below C + slack after the step");
                    }
                    cache.checkInvariants();
                    cache.reclaimEvicted();
                }
            } finally {
                for (DeviceBuffer b : cachesD) if (b != null) b.close();
                for (DeviceBuffer b : statesD) if (b != null) b.close();
            }
        }
        assertTrue(compactions >= 10, "compactions " + compactions);
        if (o.slack() >= B) assertTrue(released >= 5, "blocks released " + released);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void rejectionsChangeNothing(String deviceName) {
        KvLayout layout = KvLayout.of(KvLayout.Kind.FLASH_INFER, DType.F32, 8, 2, 2, 3);
        Random rnd = new Random(5);
        float[] cache = (float[]) randomCache(layout, rnd);
        float[] state = integerState(layout, rnd);
        int[] tables = {0, 1, 2, 3, 4, 5, 6, 7};
        TokenEviction.Options o = TokenEviction.Options.h2o(2, 1, 2);
        try (KernelDevice device = TestDevices.open(deviceName)) {
            float[] nan = state.clone();
            nan[(2 * 2 + 1) * 2 + 1] = Float.NaN;  // block 2, slot 1, head 1: token 5 of sequence 0
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> TokenEviction.evict(device, layout, new Object[] {cache}, new float[][] {nan}, tables, 4, new int[] {6, 5}, o));
            assertTrue(e.getMessage().contains("layerStates"), e.getMessage());
            int[] bad = tables.clone();
            bad[5] = 9;
            e = assertThrows(IllegalArgumentException.class,
                    () -> TokenEviction.evict(device, layout, new Object[] {cache}, new float[][] {state}, bad, 4, new int[] {5, 6}, o));
            assertTrue(e.getMessage().contains("blockTables"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> TokenEviction.evict(device, layout, new Object[] {cache}, null, tables, 4, new int[] {5, 5}, o));
            // nothing due: nothing changes, and the workspace-free host path returns the inputs' values
            TokenEviction.Result same = TokenEviction.evict(device, layout, new Object[] {cache}, new float[][] {state}, tables, 4, new int[] {4, 0}, o);
            assertArrayEquals(cache, (float[]) same.caches()[0]);
            assertArrayEquals(new int[] {4, 0}, same.kvLen());
        }
        // the device was rejected above: check on the stream level that a rejected call left the caches untouched
        try (KernelDevice device = TestDevices.open(deviceName);
             Workspace ws = new Workspace(device, device.defaultStream());
             DeviceBuffer c = device.alloc(layout.bytes());
             DeviceBuffer s = device.alloc(4L * state.length);
             DeviceBuffer t = device.alloc(4L * tables.length)) {
            Stream stream = ws.stream();
            float[] nan = state.clone();
            nan[0] = Float.POSITIVE_INFINITY;
            device.upload(cache, c, stream);
            device.upload(nan, s, stream);
            device.upload(tables, t, stream);
            TokenEviction.Queued q = TokenEviction.evictOnDevice(layout, new DeviceBuffer[] {c}, new DeviceBuffer[] {s}, t, 4, new int[] {5, 6}, o, ws, stream);
            assertThrows(IllegalArgumentException.class, q.pending()::await);
            float[] after = new float[cache.length], stAfter = new float[nan.length];
            device.download(c, after, stream);
            device.download(s, stAfter, stream);
            stream.synchronize();
            assertArrayEquals(cache, after, "a rejected call writes no cache");
            assertArrayEquals(nan, stAfter, "a rejected call writes no state");
        }
    }

    @Test
    void badOptionsAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> TokenEviction.Options.h2o(2, 1, 0), "slack 0");
        assertThrows(IllegalArgumentException.class, () -> new TokenEviction.Options(TokenEviction.Policy.STREAMING, KvKeepSelect.Policy.shared(1, 1, 3), 1, null),
                "STREAMING keeps exactly sinks + recent");
        assertThrows(IllegalArgumentException.class, () -> new TokenEviction.Options(null, KvKeepSelect.Policy.shared(1, 1, 3), 1, null));
        assertEquals(7, TokenEviction.kvLenAfter(9, TokenEviction.Options.h2o(5, 2, 2)));
        assertEquals(8, TokenEviction.kvLenAfter(8, TokenEviction.Options.h2o(5, 2, 2)));
    }
}
