package tokenprune.kv;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import tokenprune.device.CpuDevice;
import tokenprune.device.Device;
import tokenprune.testing.TestDevices;

/**
 * The attention-score policies: every hand-checkable case of methods-kv.md §13.2 (A2SF), §13.3 (H2O),
 * §13.4 SL-1..SL-3 (StreamingLLM) and §13.5 (SnapKV pooling), the keep decisions on the cpu device
 * (KvKeepReference) and the kernel devices (tp_kv_keep_select, through {@link KvKeepSelect}; SnapKV pooling
 * runs there too), the device entry points of H2o, and argument checks.
 */
class AttentionPoliciesTest {
    static java.util.stream.Stream<String> devices() {
        return java.util.stream.Stream.concat(java.util.stream.Stream.of("cpu"), TestDevices.simDevices());
    }

    static Device open(String name) {
        return name.equals("cpu") ? new CpuDevice() : TestDevices.open(name);
    }

    static final float[][] S = {{1}, {0.2f, 0.8f}, {0.5f, 0.1f, 0.4f}, {0.4f, 0.1f, 0.3f, 0.2f}};

    static float[] recurrence(float alpha) {
        float[] a = new float[0];
        for (float[] row : S) a = A2sf.update(a, row, alpha);
        return a;
    }

    @Test
    void a2sf1RecurrenceAndA2sf2Limits() {
        float[] a = new float[0];
        float[][] want = {{1}, {0.7f, 0.8f}, {0.85f, 0.5f, 0.4f}, {0.825f, 0.35f, 0.5f, 0.2f}};
        for (int i = 0; i < S.length; i++) {
            a = A2sf.update(a, S[i], 0.5f);
            assertArrayEquals(want[i], a, 1e-6f, "A2SF-1 step " + i);
        }
        assertArrayEquals(new float[] {2.1f, 1.0f, 0.7f, 0.2f}, recurrence(1f), 1e-6f, "A2SF-2 alpha 1");
        assertArrayEquals(new float[] {0.4f, 0.1f, 0.3f, 0.2f}, recurrence(0f), 1e-6f, "A2SF-2 alpha 0");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void a2sf3DecisionFlipsWithAlpha(String name) {
        assertEquals(2, A2sf.evictOne(recurrence(1f), 1, 1), "A2SF-3 alpha 1");
        assertEquals(1, A2sf.evictOne(recurrence(0.5f), 1, 1), "A2SF-3 alpha 0.5");
        try (Device d = open(name)) {
            float[] both = new float[8];
            System.arraycopy(recurrence(1f), 0, both, 0, 4);
            System.arraycopy(recurrence(0.5f), 0, both, 4, 4);
            int[][] kept = A2sf.keep(d, both, new int[] {0, 4, 8}, 1, 1, 3);
            assertArrayEquals(new int[] {0, 1, 3}, kept[0], name + " alpha 1 evicts token 2");
            assertArrayEquals(new int[] {0, 2, 3}, kept[1], name + " alpha 0.5 evicts token 1");
        }
    }

    @Test
    void a2sf4OneShotWeightsAndA2sf5Renormalization() {
        float[] w = A2sf.oneShotWeights(4, 0.5f);
        assertArrayEquals(new float[] {0.125f, 0.25f, 0.5f, 1f}, w, 0f);
        float[] a = new float[4];
        for (int q = 0; q < 4; q++) for (int k = 0; k < S[q].length; k++) a[k] += w[q] * S[q][k];
        assertArrayEquals(recurrence(0.5f), a, 1e-6f, "A2SF-4");
        assertArrayEquals(new float[] {0.4444444f, 0.3333333f, 0.2222222f}, A2sf.renormalize(S[3], new int[] {0, 2, 3}), 1e-6f, "A2SF-5");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("simOnly")
    void a2sf6GqaGroupMeanInTheKernel(String name) {
        // 4 query heads on 1 KV head, D = 1, one key per sequence... use logits via lse: key value 0, q 0 -> p = exp(-lse)
        try (tokenprune.device.KernelDevice d = TestDevices.open(name)) {
            KvLayout l = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION, tokenprune.methods.DType.F32, 1, 4, 1, 1);
            float[] lse = new float[4];
            float[] p = {0.1f, 0.2f, 0.3f, 0.6f};
            for (int h = 0; h < 4; h++) lse[h] = (float) -Math.log(p[h]);
            float[] got = AttentionScores.compute(d, l, new float[(int) l.elements()], new int[] {0}, 1, new int[] {1}, new float[4], 4, new int[] {0, 1},
                    new int[] {0}, null, lse, 1f, null, 1f);
            assertEquals(0.3f, got[0], 1e-6f, "A2SF-6 group mean");
        }
    }

    static java.util.stream.Stream<String> simOnly() {
        return TestDevices.kernelDevices();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void h2oCases(String name) {
        float[] scores = new float[0];
        for (float[] row : new float[][] {{1}, {0.7f, 0.3f}, {0.5f, 0.2f, 0.3f}}) scores = H2o.accumulate(scores, row);
        assertArrayEquals(new float[] {2.2f, 0.5f, 0.3f}, scores, 1e-6f, "H2O-1");
        try (Device d = open(name)) {
            int[] kept = H2o.keep(d, scores, 1, 1);
            assertArrayEquals(new int[] {0, 2}, kept, "H2O-2");
            float[] ks = H2o.gather(scores, kept);
            assertArrayEquals(new float[] {2.2f, 0.3f}, ks, 1e-6f, "H2O-2 kept scores");
            float[] next = H2o.accumulate(ks, new float[] {0.6f, 0.1f, 0.3f});  // kept tokens 0, 2 + new token 3
            assertArrayEquals(new float[] {2.8f, 0.4f, 0.3f}, next, 1e-6f, "H2O-3 scores");
            int[] kept3 = H2o.keep(d, next, 1, 1);
            assertArrayEquals(new int[] {0, 2}, kept3, "H2O-3: slots of tokens 0 and 3 (token 2, slot 1, evicted)");
            assertArrayEquals(new int[] {0, 1}, H2o.keep(d, new float[] {5, 1}, 1, 1), "H2O-4 at capacity");
        }
        assertArrayEquals(new float[] {0.7333333f, 0.25f, 0.3f}, H2o.observedMean(new float[] {2.2f, 0.5f, 0.3f}), 1e-6f, "H2O-5");
    }

    @Test
    void streamingLlmCases() {
        assertArrayEquals(new int[] {0, 1, 2, 3, 12, 13, 14, 15, 16, 17, 18, 19}, StreamingLlm.keep(20, 4, 8), "SL-1");
        int[] sl2 = StreamingLlm.evictForSpace(12, 4, 8, 3);
        assertArrayEquals(new int[] {0, 1, 2, 3, 7, 8, 9, 10, 11}, sl2, "SL-2 (9 kept, room for 3)");
        assertArrayEquals(new int[] {0, 1, 2, 3, 9}, StreamingLlm.keepRatio(10, 0.5, 4), "SL-3");
        assertArrayEquals(new int[] {0, 1, 2}, StreamingLlm.keep(3, 4, 8), "under capacity");
        assertThrows(IllegalArgumentException.class, () -> StreamingLlm.keep(-1, 4, 8));
        assertThrows(IllegalArgumentException.class, () -> StreamingLlm.keepRatio(10, 1.0, 4));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void snapKvPoolingAndSelection(String name) {
        assertArrayEquals(new float[] {2, 2, 0, 0}, SnapKv.pool(new float[] {6, 0, 0, 0}, 3, SnapKv.Pooling.AVG), 1e-6f, "SK-1 avg");
        assertArrayEquals(new float[] {6, 6, 0, 0}, SnapKv.pool(new float[] {6, 0, 0, 0}, 3, SnapKv.Pooling.MAX), 0f, "SK-1 max");
        assertArrayEquals(new float[] {0, 0, 1, 1}, SnapKv.windowWeights(4, 2), 0f);
        try (Device d = open(name)) {
            // L = 8, window 2: the first 6 pooled, avg3 of [6,0,0,0,0,9] = [2,2,0,0,3,3], max3 = [6,6,0,0,9,9]; window {6, 7} always kept
            float[] s = {6, 0, 0, 0, 0, 9, 1, 1};
            assertArrayEquals(new int[] {4, 5, 6, 7}, SnapKv.keep(d, s, new int[] {0, 8}, 2, 4, 3, SnapKv.Pooling.AVG)[0], name + " avg top 2");
            assertArrayEquals(new int[] {0, 4, 5, 6, 7}, SnapKv.keep(d, s, new int[] {0, 8}, 2, 5, 3, SnapKv.Pooling.AVG)[0],
                    name + " avg top 3: 3, 3, then 2 at 0 (tie with 1, lower index)");
            assertArrayEquals(new int[] {0, 4, 5, 6, 7}, SnapKv.keep(d, s, new int[] {0, 8}, 2, 5, 3, SnapKv.Pooling.MAX)[0], name + " max top 3");
            assertArrayEquals(new int[] {0, 1, 2, 5, 6, 7}, SnapKv.keep(d, s, new int[] {0, 8}, 2, 6, 1, SnapKv.Pooling.MAX)[0],
                    name + " kernel 1 (no pooling): 9, 6, then zeros 1, 2 by lower index");
            assertArrayEquals(new int[] {0, 1, 2}, SnapKv.keep(d, new float[] {1, 2, 3}, new int[] {0, 3}, 2, 4, 3, SnapKv.Pooling.AVG)[0], "L < capacity");
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void keepMatchesABruteForceReferenceOnRaggedRows(String name) {
        Random rnd = new Random(11);
        int[] lens = {1, 9, 30, 12, 0};
        int[] offs = new int[lens.length + 1];
        for (int i = 0; i < lens.length; i++) offs[i + 1] = offs[i] + lens[i];
        float[] s = new float[offs[lens.length]];
        for (int i = 0; i < s.length; i++) s[i] = rnd.nextInt(6);  // many ties
        try (Device d = open(name)) {
            int[][] got = A2sf.keep(d, s, offs, 2, 3, 8);
            for (int r = 0; r < lens.length; r++) {
                int n = lens[r];
                // A2SF-REF one token at a time: evictOne (argmin, ties to the lowest index) until the budget holds
                java.util.List<Integer> held = new java.util.ArrayList<>();
                for (int t = 0; t < n; t++) held.add(t);
                while (held.size() > 8) {
                    float[] row = new float[held.size()];
                    for (int i = 0; i < row.length; i++) row[i] = s[offs[r] + held.get(i)];
                    held.remove(A2sf.evictOne(row, 2, 3));
                }
                assertArrayEquals(held.stream().mapToInt(Integer::intValue).toArray(), got[r], name + " row " + r);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("simOnly")
    void kernelScoresThenH2oKeepMatchTheCpuPipeline(String name) {
        // decode-style H2O over a GQA 4:1 cache: scores of the last 3 rows per sequence, then per-(sequence, KV head) keep
        AttentionScoresKernelTest.Case c = AttentionScoresKernelTest.randomCase(KvLayout.Kind.FLASH_ATTENTION_HND, tokenprune.methods.DType.BF16,
                4, 2, 8, 8, new int[] {23, 9}, new int[] {3, 3}, 31);
        int[] rows = AttentionScores.rowOffsets(c.kvLens, 2);
        assertArrayEquals(new int[] {0, 23, 46, 55, 64}, rows);
        try (tokenprune.device.KernelDevice d = TestDevices.open(name)) {
            CpuDevice cpu = new CpuDevice();
            int[][] got = H2o.keep(d, AttentionScoresKernelTest.run(d, c, null, 1f), rows, 4, 3);
            int[][] want = H2o.keep(cpu, AttentionScoresKernelTest.run(cpu, c, null, 1f), rows, 4, 3);
            for (int r = 0; r < want.length; r++) assertArrayEquals(want[r], got[r], name + " row " + r);
            assertEquals(7, got[0].length);
            assertEquals(7, got[2].length);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("simOnly")
    void h2oDeviceEntryPointsOnThePagedStateAndTheScoreRows(String name) {
        // H2O-2 (sequence 0: [2.2, 0.5, 0.3]) and H2O-3 (sequence 1: kept tokens 0, 2 + new token 3: [2.8, 0.4, 0.3]); B = 2,
        // sequence 0 in blocks [3, 0], sequence 1 in [1, 2]; unheld slots are NaN and never read
        KvLayout l = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION, tokenprune.methods.DType.F32, 4, 2, 1, 8);
        float[] state = {0.3f, Float.NaN, 2.8f, 0.4f, 0.3f, Float.NaN, 2.2f, 0.5f};
        float[] rows = {2.2f, 0.5f, 0.3f, 2.8f, 0.4f, 0.3f};
        try (tokenprune.device.KernelDevice d = TestDevices.open(name)) {
            tokenprune.device.Stream stream = d.defaultStream();
            try (tokenprune.methods.Workspace ws = new tokenprune.methods.Workspace(d, stream);
                 tokenprune.device.DeviceBuffer st = d.alloc(4L * state.length);
                 tokenprune.device.DeviceBuffer sc = d.alloc(4L * rows.length);
                 tokenprune.device.DeviceBuffer tables = d.alloc(4L * 4);
                 tokenprune.device.DeviceBuffer keep = d.alloc(4L * 4);
                 tokenprune.device.DeviceBuffer kvLen = d.alloc(4L * 2)) {
                d.upload(state, st, stream);
                d.upload(rows, sc, stream);
                d.upload(new int[] {3, 0, 1, 2}, tables, stream);
                int[] got = new int[4], kv = new int[2];
                H2o.keepPagedOnDevice(ws, stream, l, st, tables, 2, new int[] {3, 3}, 1, 1, keep, kvLen).await();
                d.download(keep, got, stream);
                d.download(kvLen, kv, stream);
                assertArrayEquals(new int[] {0, 2, 0, 2}, got, name + " H2O-2, H2O-3 paged");
                assertArrayEquals(new int[] {2, 2}, kv, name + " kv_len");
                d.fill(keep, 0xff, stream);
                H2o.keepOnDevice(ws, stream, sc, new int[] {3, 3}, 1, 1, 1, keep, null).await();
                d.download(keep, got, stream);
                assertArrayEquals(new int[] {0, 2, 0, 2}, got, name + " H2O-2, H2O-3 rows");
            }
        }
    }

    @Test
    void badArgumentsNameTheArgument() {
        CpuDevice cpu = new CpuDevice();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> A2sf.keep(cpu, new float[] {1, 2}, new int[] {0, 2}, 2, 2, 3));
        assertTrue(e.getMessage().startsWith("budget"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> H2o.keep(cpu, new float[] {1, Float.NaN}, 1, 0));
        assertTrue(e.getMessage().startsWith("scores"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> A2sf.update(new float[2], new float[1], 0.5f));
        assertTrue(e.getMessage().startsWith("row"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> A2sf.oneShotWeights(3, 1.5f));
        assertTrue(e.getMessage().startsWith("alpha"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> SnapKv.pool(new float[3], 4, SnapKv.Pooling.AVG));
        assertTrue(e.getMessage().startsWith("kernel"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> H2o.keep(cpu, new float[] {1, 2}, new int[] {0, 3}, 1, 0));
        assertTrue(e.getMessage().startsWith("rowOffsets"), e.getMessage());
    }
}
