package tokenprune.kv;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import tokenprune.device.CpuDevice;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kv.KvKeepSelect.Mode;
import tokenprune.kv.KvKeepSelect.Policy;
import tokenprune.kv.KvKeepSelect.Ties;
import tokenprune.methods.DType;
import tokenprune.methods.Workspace;
import tokenprune.reference.KvKeepReference;
import tokenprune.testing.TestDevices;

/**
 * tp_kv_keep_select (kv_keep.cu) against KvKeepReference: random ragged batches from both score sources
 * (contiguous rows; the paged per-slot state through a shuffled block table with partial last blocks and
 * NaN in every slot no sequence holds), per-head and shared modes, avg/max pooling with kernels 1/3/5,
 * n = 1, primes, up to a few thousand, budget == n and budget == sinks + recent, heavy ties and -0.0;
 * both tie rules (lower index kept; later kept = A2SF-REF's argmin evicted lowest index first);
 * the hand-checkable cases H2O-2, H2O-3, A2SF-3, SK-1 and a TOVA-style shared case; the device chain
 * accumulatePagedOnDevice -> keepPagedOnDevice; bad arguments and bad data.
 *
 * <p>Scores are integer-valued (small ints, or ints / 2^k for head means) so that the kernel's fp32
 * means and pooled sums rank exactly like the reference's float64 ones: the selection is compared exactly.
 */
class KvKeepSelectKernelTest {
    static java.util.stream.Stream<String> devices() {
        return TestDevices.kernelDevices();
    }

    static final int[] PRIMES = {2, 3, 5, 7, 11, 13, 31, 97, 257, 509, 1021, 2039, 3001};

    static int randomLen(Random rnd, int budget) {
        return switch (rnd.nextInt(6)) {
            case 0 -> 1;
            case 1 -> PRIMES[rnd.nextInt(PRIMES.length)];
            case 2 -> budget;
            case 3 -> budget + 1 + rnd.nextInt(3);
            case 4 -> rnd.nextInt(budget + 1);
            default -> budget + rnd.nextInt(600);
        };
    }

    static float randomScore(Random rnd, boolean ties) {
        float v = ties ? rnd.nextInt(5) - 2 : rnd.nextInt(4001) - 2000;
        return v == 0 && rnd.nextBoolean() ? -0.0f : v;
    }

    static Policy randomPolicy(Random rnd, int kvHeads) {
        int sinks = rnd.nextInt(5), recent = rnd.nextInt(9);
        int budget = rnd.nextInt(4) == 0 ? sinks + recent : sinks + recent + (rnd.nextBoolean() ? rnd.nextInt(8) : rnd.nextInt(60));
        Mode mode = rnd.nextBoolean() ? Mode.PER_HEAD : Mode.SHARED;
        int kernel = new int[] {1, 3, 5}[rnd.nextInt(3)];
        SnapKv.Pooling pooling = rnd.nextBoolean() ? SnapKv.Pooling.AVG : SnapKv.Pooling.MAX;
        Ties ties = rnd.nextBoolean() ? Ties.LOWER_INDEX_KEPT : Ties.LATER_KEPT;
        return new Policy(sinks, recent, budget, mode, kernel, pooling, ties);
    }

    static int[][] reference(float[] scores, int[] kvLens, int kvHeads, Policy p) {
        return KvKeepReference.contiguous(scores, kvLens, kvHeads, p.mode() == Mode.SHARED, p.sinks(), p.recent(), p.budget(), p.poolKernel(),
                p.pooling() == SnapKv.Pooling.MAX, p.ties() == Ties.LATER_KEPT);
    }

    static int[][] pagedReference(Paged g, int kvHeads, Policy p) {
        return KvKeepReference.paged(g.state, g.layout.numBlocks(), g.layout.blockSize(), kvHeads, g.tables, g.width, g.lens, p.mode() == Mode.SHARED,
                p.sinks(), p.recent(), p.budget(), p.poolKernel(), p.pooling() == SnapKv.Pooling.MAX, p.ties() == Ties.LATER_KEPT);
    }

    static void assertRows(int[][] want, int[][] got, String what) {
        assertEquals(want.length, got.length, what + " rows");
        for (int r = 0; r < want.length; r++) assertArrayEquals(want[r], got[r], what + " row " + r);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void randomContiguousBatchesMatchTheReference(String deviceName) {
        Random rnd = new Random(0x4EE9);
        try (KernelDevice device = TestDevices.open(deviceName)) {
            for (int it = 0; it < 60; it++) {
                int kvHeads = 1 + rnd.nextInt(4);
                Policy p = randomPolicy(rnd, kvHeads);
                if (p.mode() == Mode.SHARED && kvHeads == 3) kvHeads = 4;  // head means stay exact in fp32
                int seqs = 1 + rnd.nextInt(4);
                int[] lens = new int[seqs];
                for (int s = 0; s < seqs; s++) lens[s] = randomLen(rnd, p.budget());
                int total = Arrays.stream(lens).sum() * kvHeads;
                float[] scores = new float[total];
                boolean ties = rnd.nextBoolean();
                for (int i = 0; i < total; i++) scores[i] = randomScore(rnd, ties);
                String what = deviceName + " it " + it + " " + p + " kvHeads " + kvHeads + " lens " + Arrays.toString(lens);
                assertRows(reference(scores, lens, kvHeads, p), KvKeepSelect.select(device, scores, lens, kvHeads, p), what);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void distinctFloatScoresPerHeadMatchTheReference(String deviceName) {
        Random rnd = new Random(5);
        try (KernelDevice device = TestDevices.open(deviceName)) {
            int[] lens = {1, 2039, 64, 65, 3};
            float[] scores = new float[Arrays.stream(lens).sum() * 2];
            for (int i = 0; i < scores.length; i++) scores[i] = (float) rnd.nextGaussian() * 1e-3f;
            for (Policy p : new Policy[] {Policy.perHead(4, 16, 64), Policy.perHead(0, 1, 1), Policy.perHead(3, 7, 10)})
                assertRows(reference(scores, lens, 2, p), KvKeepSelect.select(device, scores, lens, 2, p), deviceName + " " + p);
        }
    }

    /** A paged state with a shuffled table (padding -1), partial last blocks, NaN in every slot no sequence holds. */
    static final class Paged {
        KvLayout layout;
        float[] state, contiguous;
        int[] tables, lens;
        int width;
    }

    static Paged randomPaged(Random rnd, int b, int kvHeads, int[] lens, boolean ties) {
        Paged g = new Paged();
        int blocks = 0, width = 1;
        for (int n : lens) {
            blocks += (n + b - 1) / b;
            width = Math.max(width, (n + b - 1) / b + 1);
        }
        g.layout = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION, DType.F32, blocks + 3, b, kvHeads, 8);
        g.tables = KvTokenScoreKernelTest.tables(lens, b, width, g.layout.numBlocks(), rnd);
        for (int i = 0; i < g.tables.length; i++) if (g.tables[i] == -7) g.tables[i] = -1;
        g.width = width;
        g.lens = lens;
        g.state = new float[g.layout.numBlocks() * b * kvHeads];
        Arrays.fill(g.state, Float.NaN);
        g.contiguous = new float[Arrays.stream(lens).sum() * kvHeads];
        int base = 0;
        for (int s = 0; s < lens.length; s++) {
            for (int h = 0; h < kvHeads; h++)
                for (int t = 0; t < lens[s]; t++) {
                    float v = randomScore(rnd, ties);
                    g.state[(g.tables[s * width + t / b] * b + t % b) * kvHeads + h] = v;
                    g.contiguous[base + h * lens[s] + t] = v;
                }
            base += lens[s] * kvHeads;
        }
        return g;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void randomPagedStatesMatchTheReferenceAndTheContiguousPath(String deviceName) {
        Random rnd = new Random(0xBA6ED);
        try (KernelDevice device = TestDevices.open(deviceName)) {
            for (int it = 0; it < 60; it++) {
                int b = 1 + rnd.nextInt(16);
                Policy p = randomPolicy(rnd, 0);
                int kvHeads = p.mode() == Mode.SHARED ? new int[] {1, 2, 4}[rnd.nextInt(3)] : 1 + rnd.nextInt(4);
                int seqs = 1 + rnd.nextInt(4);
                int[] lens = new int[seqs];
                for (int s = 0; s < seqs; s++) lens[s] = randomLen(rnd, p.budget());
                Paged g = randomPaged(rnd, b, kvHeads, lens, rnd.nextBoolean());
                String what = deviceName + " it " + it + " B " + b + " " + p + " kvHeads " + kvHeads + " lens " + Arrays.toString(lens);
                int[][] got = KvKeepSelect.selectPaged(device, g.layout, g.state, g.tables, g.width, lens, p);
                int[][] want = pagedReference(g, kvHeads, p);
                assertRows(want, got, what);
                assertRows(want, reference(g.contiguous, lens, kvHeads, p), what + " (paged reference = contiguous reference)");
                assertRows(want, KvKeepSelect.selectPaged(new CpuDevice(), g.layout, g.state, g.tables, g.width, lens, p), what + " cpu device");
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void deviceApiWritesKeepAtTheOffsetsAndKvLen(String deviceName) {
        Random rnd = new Random(17);
        int[] lens = {5, 40, 12, 0, 13};
        Policy p = Policy.perHead(2, 3, 12);
        int kvHeads = 3;
        float[] scores = new float[Arrays.stream(lens).sum() * kvHeads];
        for (int i = 0; i < scores.length; i++) scores[i] = randomScore(rnd, true);
        int[] offs = KvKeepSelect.keepOffsets(lens, kvHeads, p);
        assertEquals(3 * (5 + 12 + 12 + 0 + 12), offs[offs.length - 1]);
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Stream stream = device.defaultStream();
            try (Workspace ws = new Workspace(device, stream);
                 DeviceBuffer x = device.alloc(4L * scores.length);
                 DeviceBuffer keep = device.alloc(4L * offs[offs.length - 1]);
                 DeviceBuffer kvLen = device.alloc(4L * lens.length)) {
                device.upload(scores, x, stream);
                device.fill(kvLen, 0xff, stream);
                for (Policy q : new Policy[] {p, new Policy(2, 3, 12, Mode.SHARED, 3, SnapKv.Pooling.MAX)}) {
                    H2o.keepOnDevice(ws, stream, x, lens, kvHeads, 1, 1, keep, kvLen).await();  // another call in between: offsets re-uploaded
                    KvKeepSelect.selectOnDevice(ws, stream, x, lens, kvHeads, q, keep, kvLen).await();
                    int[] o = KvKeepSelect.keepOffsets(lens, kvHeads, q);
                    int[] flat = new int[o[o.length - 1]], kv = new int[lens.length];
                    device.download(keep, flat, stream);
                    device.download(kvLen, kv, stream);
                    int[][] want = reference(scores, lens, kvHeads, q);
                    for (int r = 0; r < want.length; r++) assertArrayEquals(want[r], Arrays.copyOfRange(flat, o[r], o[r + 1]), deviceName + " " + q + " row " + r);
                    assertArrayEquals(new int[] {5, 12, 12, 0, 12}, kv, deviceName + " kv_len");
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void handCheckableCases(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            // H2O-2 (scores [2.2, 0.5, 0.3], hh 1, recent 1) and H2O-3 (kept tokens 0, 2 + new token 3: [2.8, 0.4, 0.3]) as one batch
            float[] h2o = {2.2f, 0.5f, 0.3f, 2.8f, 0.4f, 0.3f};
            assertRows(new int[][] {{0, 2}, {0, 2}}, H2o.keep(device, h2o, new int[] {0, 3, 6}, 1, 1), "H2O-2, H2O-3 (slots of tokens 0 and 3)");
            // the same through the paged state: B = 2, sequence 0 in blocks [3, 0], sequence 1 in [1, 2]
            KvLayout l = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION, DType.F32, 4, 2, 1, 8);
            float[] state = {0.3f, Float.NaN, 2.8f, 0.4f, 0.3f, Float.NaN, 2.2f, 0.5f};  // B = 2; slots 1 and 5 unheld
            assertRows(new int[][] {{0, 2}, {0, 2}}, KvKeepSelect.selectPaged(device, l, state, new int[] {3, 0, 1, 2}, 2, new int[] {3, 3},
                    H2o.policy(1, 1)), "H2O-2, H2O-3 paged");
            // A2SF-3: protect sink {0} and recent {3}; alpha 1 -> [2.1, 1.0, 0.7, 0.2] evicts token 2; alpha 0.5 -> [0.825, 0.35, 0.5, 0.2] evicts 1
            float[] a2sf = {2.1f, 1.0f, 0.7f, 0.2f, 0.825f, 0.35f, 0.5f, 0.2f};
            assertRows(new int[][] {{0, 1, 3}, {0, 2, 3}}, A2sf.keep(device, a2sf, new int[] {0, 4, 8}, 1, 1, 3), "A2SF-3");
            // SK-1: window-summed [6, 0, 0, 0] + a window of 2; avg3 -> [2, 2, 0, 0], max3 -> [6, 6, 0, 0]
            assertArrayEquals(new double[] {2, 2, 0, 0}, KvKeepReference.pool(new double[] {6, 0, 0, 0}, 3, false), 0);
            assertArrayEquals(new double[] {6, 6, 0, 0}, KvKeepReference.pool(new double[] {6, 0, 0, 0}, 3, true), 0);
            float[] sk = {6, 0, 0, 0, 1, 1, 0, 0, 0, 6, 1, 1};
            int[] rows = {0, 6, 12};
            assertRows(new int[][] {{0, 1, 4, 5}, {2, 3, 4, 5}}, SnapKv.keep(device, sk, rows, 2, 4, 3, SnapKv.Pooling.AVG),
                    "SK-1 avg: [2,2,0,0] keeps 0, 1; reversed [0,0,2,2] keeps 2, 3");
            assertRows(new int[][] {{0, 1, 4, 5}, {2, 3, 4, 5}}, SnapKv.keep(device, sk, rows, 2, 4, 3, SnapKv.Pooling.MAX), "SK-1 max");
            assertRows(new int[][] {{0, 1, 4, 5}, {0, 3, 4, 5}}, SnapKv.keep(device, sk, rows, 2, 4, 1, SnapKv.Pooling.AVG),
                    "kernel 1: no pooling, the reversed row keeps 6 and the first zero");
            assertRows(new int[][] {{0, 4, 5}, {2, 4, 5}}, SnapKv.keep(device, sk, rows, 2, 3, 3, SnapKv.Pooling.AVG), "SK-1 avg top 1: tie to the lower index");
            // TOVA-style shared set: head 0 [0, 5, 4, 2], head 1 [6, 1, 0, 2] -> mean [3, 3, 2, 2]
            float[] tova = {0, 5, 4, 2, 6, 1, 0, 2};
            assertRows(new int[][] {{0, 1, 3}}, KvKeepSelect.select(device, tova, new int[] {4}, 2, Policy.shared(0, 1, 3)), "shared");
            assertRows(new int[][] {{1, 2, 3}, {0, 1, 3}}, KvKeepSelect.select(device, tova, new int[] {4}, 2, Policy.perHead(0, 1, 3)), "per head");
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void accumulatePagedThenKeepStaysOnTheDevice(String deviceName) {
        AttentionScoresKernelTest.Case c = AttentionScoresKernelTest.randomCase(KvLayout.Kind.FLASH_ATTENTION_HND, DType.BF16, 4, 2, 8, 8,
                new int[] {23, 9, 41}, new int[] {1, 1, 1}, 41);
        int slots = (int) ((long) c.l.numBlocks() * c.l.blockSize() * c.l.kvHeads());
        int[] offs = KvKeepSelect.keepOffsets(c.kvLens, 2, Policy.perHead(1, 4, 12));
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Stream stream = device.defaultStream();
            try (Workspace ws = new Workspace(device, stream);
                 DeviceBuffer cache = device.alloc(c.l.bytes());
                 DeviceBuffer tables = device.alloc(4L * c.tables.length);
                 DeviceBuffer q = device.alloc(2L * ((short[]) c.queries).length);
                 DeviceBuffer lse = device.alloc(4L * c.lse.length);
                 DeviceBuffer state = device.alloc(4L * slots);
                 DeviceBuffer keep = device.alloc(4L * offs[offs.length - 1]);
                 DeviceBuffer kvLen = device.alloc(4L * 3)) {
                device.upload((short[]) c.cache, cache, stream);
                device.upload(c.tables, tables, stream);
                device.upload((short[]) c.queries, q, stream);
                device.upload(c.lse, lse, stream);
                device.fill(state, 0, stream);
                var scored = AttentionScores.accumulatePagedOnDevice(ws, stream, c.l, cache, tables, c.width, c.kvLens, null, q, (long) c.heads * 8, 8,
                        c.heads, c.rowOffsets, c.positions, null, lse, c.heads, 1, c.scale, 0.9f, state);
                var kept = A2sf.keepPagedOnDevice(ws, stream, c.l, state, tables, c.width, c.kvLens, 1, 4, 12, keep, kvLen);
                scored.await();
                kept.await();
                float[] s = new float[slots];
                int[] flat = new int[offs[offs.length - 1]], kv = new int[3];
                device.download(state, s, stream);
                device.download(keep, flat, stream);
                device.download(kvLen, kv, stream);
                int[][] want = KvKeepReference.paged(s, c.l.numBlocks(), 4, 2, c.tables, c.width, c.kvLens, false, 1, 4, 12, 1, false, true);
                for (int r = 0; r < want.length; r++) assertArrayEquals(want[r], Arrays.copyOfRange(flat, offs[r], offs[r + 1]), deviceName + " row " + r);
                assertArrayEquals(new int[] {12, 9, 12}, kv);
            }
        }
    }

    /**
     * tokenprune issue 4: sinks 1, recent 1, n 4, budget 3, A = [x, 0, 0, y]. A2SF-REF evicts argmin with
     * ties to the lowest slot index: token 1 goes, {0, 2, 3} stay; the TopK rule keeps {0, 1, 3}. -0.0
     * ties +0.0 either way round. Contiguous and paged, per head and shared, the A2sf entry points and
     * the reference.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void equalMinimaEvictTheLowestIndexUnderA2sf(String deviceName) {
        int[] later = {0, 2, 3}, lower = {0, 1, 3};
        float[][] rows = {{5, 0, 0, 7}, {5, -0.0f, 0, 7}, {5, 0, -0.0f, 7}, {-3, 0, 0, -3}};
        KvLayout l = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION, DType.F32, 5, 2, 2, 8);
        int[] tables = {4, 1};  // tokens 0, 1 in block 4; tokens 2, 3 in block 1
        try (KernelDevice device = TestDevices.open(deviceName)) {
            for (float[] a : rows) {
                String what = deviceName + " A = " + Arrays.toString(a);
                double[] d = new double[4];
                for (int t = 0; t < 4; t++) d[t] = a[t];
                assertArrayEquals(later, KvKeepReference.keepRow(d, 1, 1, 3, 1, false, true), what + " reference later kept");
                assertArrayEquals(lower, KvKeepReference.keepRow(d, 1, 1, 3, 1, false, false), what + " reference lower kept");
                assertEquals(1, A2sf.evictOne(a, 1, 1), what + " evictOne");
                assertRows(new int[][] {later}, A2sf.keep(device, a, new int[] {0, 4}, 1, 1, 3), what + " A2sf.keep");
                // two KV heads with the same tied candidates (their mean ties too) and different protected scores
                float[] heads = new float[8];
                for (int t = 0; t < 4; t++) heads[t] = a[t];
                float[] h1 = {a[0] + 1, a[1], a[2], a[3] - 1};
                System.arraycopy(h1, 0, heads, 4, 4);
                for (Ties ties : Ties.values()) {
                    int[] want = ties == Ties.LATER_KEPT ? later : lower;
                    Policy perHead = Policy.perHead(1, 1, 3).withTies(ties), shared = Policy.shared(1, 1, 3).withTies(ties);
                    assertRows(new int[][] {want, want}, KvKeepSelect.select(device, heads, new int[] {4}, 2, perHead), what + " contiguous per head " + ties);
                    assertRows(new int[][] {want}, KvKeepSelect.select(device, heads, new int[] {4}, 2, shared), what + " contiguous shared " + ties);
                    float[] state = new float[5 * 2 * 2];
                    Arrays.fill(state, Float.NaN);
                    for (int h = 0; h < 2; h++)
                        for (int t = 0; t < 4; t++) state[(tables[t / 2] * 2 + t % 2) * 2 + h] = heads[h * 4 + t];
                    assertRows(new int[][] {want, want}, KvKeepSelect.selectPaged(device, l, state, tables, 2, new int[] {4}, perHead), what + " paged per head " + ties);
                    assertRows(new int[][] {want}, KvKeepSelect.selectPaged(device, l, state, tables, 2, new int[] {4}, shared), what + " paged shared " + ties);
                }
                assertDeviceA2sf(device, heads, l, tables, later, what);
            }
            float[] x = {0, 0, 0, 5};  // H2O (sinks 0, hh 2, recent 1) keeps the lower of the equal minima
            assertRows(new int[][] {{0, 1, 3}}, H2o.keep(device, x, new int[] {0, 4}, 2, 1), deviceName + " H2O");
        }
    }

    /** A2sf.keepOnDevice and A2sf.keepPagedOnDevice: one sequence of 4 tokens, 2 KV heads, both keeping {@code want}. */
    static void assertDeviceA2sf(KernelDevice device, float[] heads, KvLayout l, int[] tables, int[] want, String what) {
        Stream stream = device.defaultStream();
        float[] state = new float[(int) ((long) l.numBlocks() * l.blockSize() * l.kvHeads())];
        Arrays.fill(state, Float.NaN);
        for (int h = 0; h < 2; h++)
            for (int t = 0; t < 4; t++) state[(tables[t / 2] * 2 + t % 2) * 2 + h] = heads[h * 4 + t];
        try (Workspace ws = new Workspace(device, stream);
             DeviceBuffer x = device.alloc(4L * heads.length);
             DeviceBuffer st = device.alloc(4L * state.length);
             DeviceBuffer tb = device.alloc(4L * tables.length);
             DeviceBuffer keep = device.alloc(4L * 6);
             DeviceBuffer kvLen = device.alloc(4)) {
            device.upload(heads, x, stream);
            device.upload(state, st, stream);
            device.upload(tables, tb, stream);
            int[] flat = new int[6];
            A2sf.keepOnDevice(ws, stream, x, new int[] {4}, 2, 1, 1, 3, keep, kvLen).await();
            device.download(keep, flat, stream);
            assertArrayEquals(concat(want, want), flat, what + " A2sf.keepOnDevice");
            device.fill(keep, 0xff, stream);
            A2sf.keepPagedOnDevice(ws, stream, l, st, tb, 2, new int[] {4}, 1, 1, 3, keep, kvLen).await();
            device.download(keep, flat, stream);
            assertArrayEquals(concat(want, want), flat, what + " A2sf.keepPagedOnDevice");
        }
    }

    static int[] concat(int[] a, int[] b) {
        int[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    /**
     * Heavy ties ({0, -0.0, 1, 2} and a few others) in long ragged rows, both rules, every mode and
     * pooling, contiguous and paged, against the reference; and the later-kept rule equals the mirror of
     * the lower-index rule on the reversed row (no sinks, no recent window, no pooling).
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void heavyTiesUnderBothRulesMatchTheReference(String deviceName) {
        Random rnd = new Random(0x71E5);
        try (KernelDevice device = TestDevices.open(deviceName)) {
            for (int it = 0; it < 40; it++) {
                Ties ties = it % 2 == 0 ? Ties.LATER_KEPT : Ties.LOWER_INDEX_KEPT;
                int sinks = rnd.nextInt(4), recent = rnd.nextInt(5);
                Policy p = new Policy(sinks, recent, sinks + recent + rnd.nextInt(40), rnd.nextBoolean() ? Mode.PER_HEAD : Mode.SHARED,
                        new int[] {1, 1, 3, 5}[rnd.nextInt(4)], rnd.nextBoolean() ? SnapKv.Pooling.AVG : SnapKv.Pooling.MAX, ties);
                int kvHeads = p.mode() == Mode.SHARED ? new int[] {1, 2, 4}[rnd.nextInt(3)] : 1 + rnd.nextInt(3);
                int[] lens = new int[1 + rnd.nextInt(4)];
                for (int s = 0; s < lens.length; s++) lens[s] = rnd.nextInt(3) == 0 ? randomLen(rnd, p.budget()) : p.budget() + 1 + rnd.nextInt(700);
                Paged g = randomPaged(rnd, 1 + rnd.nextInt(16), kvHeads, lens, false);
                for (int i = 0; i < g.state.length; i++) if (!Float.isNaN(g.state[i])) g.state[i] = rnd.nextInt(4) == 0 ? -0.0f : rnd.nextInt(3);
                rebuildContiguous(g, kvHeads);
                String what = deviceName + " it " + it + " " + p + " kvHeads " + kvHeads + " lens " + Arrays.toString(lens);
                int[][] want = reference(g.contiguous, lens, kvHeads, p);
                assertRows(want, pagedReference(g, kvHeads, p), what + " paged reference");
                assertRows(want, KvKeepSelect.select(device, g.contiguous, lens, kvHeads, p), what + " contiguous");
                assertRows(want, KvKeepSelect.selectPaged(device, g.layout, g.state, g.tables, g.width, lens, p), what + " paged");
            }
            for (int it = 0; it < 10; it++) {
                int n = 1 + rnd.nextInt(900), budget = rnd.nextInt(n + 1);
                float[] row = new float[n], reversed = new float[n];
                for (int t = 0; t < n; t++) row[t] = rnd.nextInt(3);
                for (int t = 0; t < n; t++) reversed[t] = row[n - 1 - t];
                int[] later = KvKeepSelect.selectRows(device, row, new int[] {0, n}, Policy.perHead(0, 0, budget).withTies(Ties.LATER_KEPT))[0];
                int[] lower = KvKeepSelect.selectRows(device, reversed, new int[] {0, n}, Policy.perHead(0, 0, budget))[0];
                int[] mirrored = new int[lower.length];
                for (int i = 0; i < lower.length; i++) mirrored[lower.length - 1 - i] = n - 1 - lower[i];
                assertArrayEquals(mirrored, later, deviceName + " n " + n + " budget " + budget + ": later kept = mirrored lower kept of the reversed row");
            }
        }
    }

    /** g.contiguous from g.state (after the state was overwritten). */
    static void rebuildContiguous(Paged g, int kvHeads) {
        int b = g.layout.blockSize(), base = 0;
        for (int s = 0; s < g.lens.length; s++) {
            for (int h = 0; h < kvHeads; h++)
                for (int t = 0; t < g.lens[s]; t++) g.contiguous[base + h * g.lens[s] + t] = g.state[(g.tables[s * g.width + t / b] * b + t % b) * kvHeads + h];
            base += g.lens[s] * kvHeads;
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void badDataIsRejectedAndTheRowNotWritten(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Stream stream = device.defaultStream();
            float[] scores = new float[30];
            for (int i = 0; i < 30; i++) scores[i] = i % 7;
            scores[13] = Float.POSITIVE_INFINITY;  // row 1 (10 .. 20), a candidate
            int[] rows = {0, 10, 20, 30};
            Policy p = Policy.perHead(1, 2, 6);
            try (Workspace ws = new Workspace(device, stream);
                 DeviceBuffer x = device.alloc(4L * 30);
                 DeviceBuffer keep = device.alloc(4L * 18)) {
                device.upload(scores, x, stream);
                int[] poison = new int[18];
                Arrays.fill(poison, -7);
                device.upload(poison, keep, stream);
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> KvKeepSelect.selectRowsOnDevice(ws, stream, x, rows, p, keep, null).await());
                assertTrue(e.getMessage().startsWith("scores"), e.getMessage());
                int[] got = new int[18];
                device.download(keep, got, stream);
                for (int i = 6; i < 12; i++) assertEquals(-7, got[i], deviceName + " the rejected row is not written");
                // the pooled path and the shared path reject too; NaN in a protected position counts
                scores[13] = 0;
                scores[0] = Float.NaN;
                device.upload(scores, x, stream);
                assertThrows(IllegalArgumentException.class, () -> KvKeepSelect.selectRowsOnDevice(ws, stream, x, rows, p.pooled(3, SnapKv.Pooling.MAX), keep, null).await());
                assertThrows(IllegalArgumentException.class, () -> KvKeepSelect.selectOnDevice(ws, stream, x, new int[] {15}, 2, Policy.shared(1, 2, 6), keep, null).await());
                // the workspace is fine afterwards
                scores[0] = 0;
                device.upload(scores, x, stream);
                KvKeepSelect.selectRowsOnDevice(ws, stream, x, rows, p, keep, null).await();
            }
            // a held block's table entry outside the pool
            KvLayout l = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION, DType.F32, 3, 4, 1, 8);
            float[] state = new float[12];
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> KvKeepSelect.selectPaged(device, l, state, new int[] {0, 3}, 2, new int[] {6}, Policy.perHead(0, 1, 3)));
            assertTrue(e.getMessage().startsWith("scores"), e.getMessage());
            // an entry past the held blocks is never read
            assertArrayEquals(new int[] {0, 1, 3}, KvKeepSelect.selectPaged(device, l, state, new int[] {2, -1}, 2, new int[] {4}, Policy.perHead(0, 1, 3))[0]);
        }
    }

    @Test
    void badArgumentsNameTheArgument() {
        CpuDevice cpu = new CpuDevice();
        assertStarts("budget", () -> Policy.perHead(3, 4, 6));
        assertStarts("sinks", () -> Policy.perHead(-1, 4, 6));
        assertStarts("recent", () -> Policy.shared(0, -4, 6));
        assertStarts("kernel", () -> Policy.perHead(0, 1, 6).pooled(4, SnapKv.Pooling.AVG));
        assertStarts("kernel", () -> SnapKv.keep(cpu, new float[4], new int[] {0, 4}, 1, 2, 2, SnapKv.Pooling.AVG));
        assertStarts("pooling", () -> Policy.perHead(0, 1, 6).pooled(3, null));
        assertStarts("ties", () -> Policy.perHead(0, 1, 6).withTies(null));
        assertStarts("rowOffsets", () -> KvKeepSelect.selectRows(cpu, new float[4], new int[] {0, 3, 2, 4}, Policy.perHead(0, 1, 2)));
        assertStarts("rowOffsets", () -> KvKeepSelect.selectRows(cpu, new float[4], new int[] {0, 3}, Policy.perHead(0, 1, 2)));
        assertStarts("kvLens", () -> KvKeepSelect.select(cpu, new float[4], new int[] {-1}, 1, Policy.perHead(0, 1, 2)));
        assertStarts("kvHeads", () -> KvKeepSelect.select(cpu, new float[4], new int[] {4}, 0, Policy.perHead(0, 1, 2)));
        assertStarts("scores", () -> KvKeepSelect.select(cpu, new float[4], new int[] {4}, 2, Policy.perHead(0, 1, 2)));
        assertStarts("scores", () -> KvKeepSelect.select(cpu, new float[] {1, Float.NaN}, new int[] {2}, 1, Policy.perHead(0, 1, 2)));
        KvLayout l = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION, DType.F32, 3, 4, 1, 8);
        assertStarts("state", () -> KvKeepSelect.selectPaged(cpu, l, new float[5], new int[] {0, 1}, 2, new int[] {6}, Policy.perHead(0, 1, 3)));
        assertStarts("kvLens", () -> KvKeepSelect.selectPaged(cpu, l, new float[12], new int[] {0}, 1, new int[] {6}, Policy.perHead(0, 1, 3)));
        assertStarts("blockTables", () -> KvKeepSelect.selectPaged(cpu, l, new float[12], new int[] {0, 5}, 2, new int[] {6}, Policy.perHead(0, 1, 3)));
        assertStarts("window", () -> SnapKv.policy(0, 4, 1, SnapKv.Pooling.AVG));
        assertStarts("capacity", () -> SnapKv.policy(4, 3, 1, SnapKv.Pooling.AVG));
        assertStarts("hh", () -> H2o.policy(-1, 3));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void deviceArgumentsAreCheckedBeforeAnythingIsQueued(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Stream stream = device.defaultStream();
            try (Workspace ws = new Workspace(device, stream);
                 DeviceBuffer x = device.alloc(4L * 8);
                 DeviceBuffer keep = device.alloc(4L * 3)) {
                Policy p = Policy.perHead(0, 1, 3);
                assertStarts("keep", () -> KvKeepSelect.selectOnDevice(ws, stream, x, new int[] {4}, 2, p, keep, null));
                assertStarts("kvLenOut", () -> KvKeepSelect.selectOnDevice(ws, stream, x, new int[] {4, 0}, 1, p, keep, keep.slice(0, 4)));
                assertStarts("scores", () -> KvKeepSelect.selectOnDevice(ws, stream, x, new int[] {9}, 1, p, keep, null));
                assertStarts("rowOffsets", () -> KvKeepSelect.selectRowsOnDevice(ws, stream, x, new int[] {0, 4, 3}, p, keep, null));
                KvLayout l = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION, DType.F32, 2, 4, 1, 8);
                assertStarts("kvLens", () -> KvKeepSelect.selectPagedOnDevice(ws, stream, l, x, keep, 1, new int[] {5}, p, keep, null));
                assertStarts("state", () -> KvKeepSelect.selectPagedOnDevice(ws, stream, l, keep, keep, 1, new int[] {3}, p, keep, null));
            }
        }
    }

    static void assertStarts(String name, org.junit.jupiter.api.function.Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().startsWith(name), "expected '" + name + "': " + e.getMessage());
    }
}
