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
import tokenprune.device.Device;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.methods.DType;
import tokenprune.methods.Pending;
import tokenprune.methods.Workspace;
import tokenprune.numeric.Bf16;
import tokenprune.numeric.Fp16;
import tokenprune.reference.AttentionScoresReference;
import tokenprune.testing.TestDevices;

/**
 * tp_attn_colsum_* (AttentionScores) against AttentionScoresReference: a hand-checkable uniform
 * attention case, random paged caches of awkward shapes (partial last block, one query row, GQA 4:1,
 * head dims 8 and 33, every layout and dtype, ragged batches, accumulation with decay), bitwise
 * determinism across schedules, and rejection of bad input with nothing written.
 */
class AttentionScoresKernelTest {
    static java.util.stream.Stream<String> devices() {
        return TestDevices.kernelDevices();
    }

    /** A random case: cache, tables, queries (dense [rows][heads][D]), exact lse. */
    static final class Case {
        KvLayout l;
        Object cache, queries;
        int[] tables, kvLens, rowOffsets, positions;
        int width, heads;
        float[] weights, lse;
        float scale;
    }

    static Object randomData(DType dtype, int n, Random rnd, float amp) {
        float[] f = new float[n];
        for (int i = 0; i < n; i++) f[i] = (rnd.nextFloat() * 2 - 1) * amp;
        return switch (dtype) {
            case F32 -> f;
            case F16 -> Fp16.fromFloats(f);
            case BF16 -> Bf16.fromFloats(f);
        };
    }

    /** rowsPerSeq[s] query rows at the last positions of sequence s (decode: 1; SnapKV: a window). */
    static Case randomCase(KvLayout.Kind kind, DType dtype, int b, int kvHeads, int heads, int d, int[] kvLens, int[] rowsPerSeq, long seed) {
        Random rnd = new Random(seed);
        d = TestLayouts.headDim(kind, dtype, d);
        Case c = new Case();
        int blocks = 0, width = 1;
        for (int n : kvLens) {
            blocks += (n + b - 1) / b;
            width = Math.max(width, (n + b - 1) / b + 1);
        }
        c.l = KvLayout.of(kind, dtype, blocks + 2, b, kvHeads, d);
        c.cache = randomData(dtype, (int) c.l.elements(), rnd, 2f);
        c.tables = KvTokenScoreKernelTest.tables(kvLens, b, width, c.l.numBlocks(), rnd);
        c.width = width;
        c.kvLens = kvLens;
        c.heads = heads;
        c.rowOffsets = new int[kvLens.length + 1];
        for (int s = 0; s < kvLens.length; s++) c.rowOffsets[s + 1] = c.rowOffsets[s] + rowsPerSeq[s];
        int rows = c.rowOffsets[kvLens.length];
        c.positions = new int[rows];
        for (int s = 0; s < kvLens.length; s++)
            for (int i = 0; i < rowsPerSeq[s]; i++) c.positions[c.rowOffsets[s] + i] = kvLens[s] - rowsPerSeq[s] + i;
        c.queries = randomData(dtype, rows * heads * d, rnd, 2f);
        c.weights = new float[rows];
        for (int r = 0; r < rows; r++) c.weights[r] = 0.25f + rnd.nextFloat();
        c.scale = (float) (1 / Math.sqrt(d));
        double[] lse = AttentionScoresReference.lse(c.l, c.cache, c.tables, width, kvLens, c.queries, heads, c.rowOffsets, c.positions, c.scale);
        c.lse = new float[lse.length];
        for (int i = 0; i < lse.length; i++) c.lse[i] = (float) lse[i];
        return c;
    }

    static float[] run(Device device, Case c, float[] prev, float decay) {
        return AttentionScores.compute(device, c.l, c.cache, c.tables, c.width, c.kvLens, c.queries, c.heads, c.rowOffsets, c.positions, c.weights,
                c.lse, c.scale, prev, decay);
    }

    static void check(Case c, float[] got, float[] prev, float decay, String what) {
        double[] want = AttentionScoresReference.colsum(c.l, c.cache, c.tables, c.width, c.kvLens, c.queries, c.heads, c.rowOffsets, c.positions,
                c.weights, c.lse, c.scale, prev, decay);
        assertEquals(want.length, got.length, what);
        for (int i = 0; i < want.length; i++) assertEquals(want[i], got[i], 2e-5 * Math.abs(want[i]) + 2e-6, what + " score " + i);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void uniformAttentionByHand(String deviceName) {
        // D = 1, q = 0: every row attends uniformly to its causal keys, lse = log(pos + 1).
        // Rows at positions 0, 1, 2 of a 3-token sequence: H2O column sums [1 + 1/2 + 1/3, 1/2 + 1/3, 1/3].
        try (KernelDevice device = TestDevices.open(deviceName)) {
            for (KvLayout.Kind kind : KvLayout.Kind.values()) {
                int d = TestLayouts.headDim(kind, DType.F32, 1);  // LEGACY: D = x = 4, q = 0 all the same
                KvLayout l = KvLayout.of(kind, DType.F32, 2, 2, 1, d);
                float[] cache = new float[(int) l.elements()];
                Arrays.fill(cache, 0.5f);
                float[] lse = {0f, (float) Math.log(2), (float) Math.log(3)};
                float[] got = AttentionScores.compute(device, l, cache, new int[] {1, 0}, 2, new int[] {3}, new float[3 * d], 1, new int[] {0, 3},
                        new int[] {0, 1, 2}, null, lse, 1f, null, 1f);
                assertArrayEquals(new float[] {11f / 6, 5f / 6, 1f / 3}, got, 1e-6f, deviceName + " " + kind + " H2O");
                // A2SF one-shot weights alpha = 0.5: [0.25, 0.5, 1]
                got = AttentionScores.compute(device, l, cache, new int[] {1, 0}, 2, new int[] {3}, new float[3 * d], 1, new int[] {0, 3},
                        new int[] {0, 1, 2}, A2sf.oneShotWeights(3, 0.5f), lse, 1f, null, 1f);
                assertArrayEquals(new float[] {0.25f + 0.25f + 1f / 3, 0.25f + 1f / 3, 1f / 3}, got, 1e-6f, deviceName + " " + kind + " A2SF");
                // decode step on top of previous scores with decay 0.5 (the new row at position 2 only)
                got = AttentionScores.compute(device, l, cache, new int[] {1, 0}, 2, new int[] {3}, new float[d], 1, new int[] {0, 1},
                        new int[] {2}, null, new float[] {(float) Math.log(3)}, 1f, new float[] {2, 4, 6}, 0.5f);
                assertArrayEquals(new float[] {1 + 1f / 3, 2 + 1f / 3, 3 + 1f / 3}, got, 1e-6f, deviceName + " " + kind + " decay");
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void randomCachesEveryLayoutAndDtype(String deviceName) {
        // {B, kvHeads, heads, D}, kv lengths, rows per sequence
        int[][][] shapes = {
            {{16, 2, 8, 8}, {37, 1, 5}, {1, 1, 3}},     // GQA 4:1, partial last blocks, one-row sequences
            {{4, 1, 1, 33}, {9, 40}, {9, 2}},           // MHA, D 33, all rows of a prompt, 2 key tiles
            {{5, 3, 6, 8}, {70}, {17}},                 // GQA 2:1, 17 rows x 2 heads = 34 pairs (3 chunks), 3 key tiles
            {{4, 2, 4, 8}, {0, 6, 33}, {0, 0, 4}},      // an empty sequence, one without query rows, 1 key in the last tile
        };
        try (KernelDevice device = TestDevices.open(deviceName)) {
            long seed = 500;
            for (KvLayout.Kind kind : KvLayout.Kind.values()) {
                for (DType dtype : DType.values()) {
                    int[][] sh = shapes[(int) (seed % shapes.length)];
                    Case c = randomCase(kind, dtype, sh[0][0], sh[0][1], sh[0][2], sh[0][3], sh[1], sh[2], ++seed);
                    String what = deviceName + " " + c.l + " heads " + c.heads + " seed " + seed;
                    check(c, run(device, c, null, 1f), null, 1f, what);
                    if (seed % 3 == 0) {
                        float[] prev = new float[run(new CpuDevice(), c, null, 1f).length];
                        Random rnd = new Random(seed);
                        for (int i = 0; i < prev.length; i++) prev[i] = rnd.nextFloat() * 3;
                        check(c, run(device, c, prev, 0.95f), prev, 0.95f, what + " decay 0.95");
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void pagedDecodeStateOverThreeSteps(String deviceName) {
        pagedDecodeState(deviceName, KvLayout.Kind.FLASH_INFER_HND);
        pagedDecodeState(deviceName, KvLayout.Kind.LEGACY);  // bf16 D = 8: x = 8, the key tile staged element-wise
    }

    static void pagedDecodeState(String deviceName, KvLayout.Kind kind) {
        // A2SF decode (alpha 0.9) on state parallel to the cache: each step one new token per sequence whose stale
        // slot state must not be read, one query row at the newest position; unheld slots unchanged
        Case c = randomCase(kind, DType.BF16, 4, 2, 8, 8, new int[] {11, 16}, new int[] {1, 1}, 41);
        int slots = c.l.numBlocks() * c.l.blockSize() * c.l.kvHeads();
        float[] state = new float[slots];
        Random rnd = new Random(5);
        for (int i = 0; i < slots; i++) state[i] = 100 + rnd.nextFloat();  // stale garbage everywhere
        try (KernelDevice device = TestDevices.open(deviceName)) {
            for (int step = 0; step < 3; step++) {
                int[] lens = {8 + step + 1, 13 + step + 1}, prevLens = {8 + step, 13 + step};
                int[] pos = {lens[0] - 1, lens[1] - 1};
                double[] l64 = AttentionScoresReference.lse(c.l, c.cache, c.tables, c.width, lens, c.queries, c.heads, c.rowOffsets, pos, c.scale);
                float[] lse = new float[l64.length];
                for (int i = 0; i < lse.length; i++) lse[i] = (float) l64[i];
                float[] prev = state.clone();
                float[] got = AttentionScores.accumulatePaged(device, c.l, c.cache, c.tables, c.width, lens, prevLens, c.queries, c.heads, c.rowOffsets,
                        pos, null, lse, c.scale, state, 0.9f);
                assertArrayEquals(prev, state, "the host state array is not modified");
                double[] want = AttentionScoresReference.accumulatePaged(c.l, c.cache, c.tables, c.width, lens, prevLens, c.queries, c.heads,
                        c.rowOffsets, pos, null, lse, c.scale, prev, 0.9);
                for (int i = 0; i < slots; i++) assertEquals(want[i], got[i], 2e-5 * Math.abs(want[i]) + 2e-6, deviceName + " step " + step + " slot " + i);
                for (int s = 0; s < 2; s++) {  // the new token's state is its own probability (< 1), not 0.9 * 100 + p
                    int j = lens[s] - 1, p = c.tables[s * c.width + j / 4];
                    assertTrue(got[(p * 4 + j % 4) * 2] < 1.0f, deviceName + " new token of sequence " + s);
                }
                state = got;
            }
        }
        // the compact and paged results agree on one step
        int[] lens = {11, 16};
        float[] compact = run(new CpuDevice(), c, null, 1f);
        float[] paged = AttentionScores.accumulatePaged(new CpuDevice(), c.l, c.cache, c.tables, c.width, lens, new int[2], c.queries, c.heads,
                c.rowOffsets, c.positions, c.weights, c.lse, c.scale, new float[slots], 1f);
        int base = 0;
        for (int s = 0; s < 2; s++) {
            for (int h = 0; h < 2; h++)
                for (int j = 0; j < lens[s]; j++)
                    assertEquals(compact[base + h * lens[s] + j], paged[(c.tables[s * c.width + j / 4] * 4 + j % 4) * 2 + h], 0f);
            base += 2 * lens[s];
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> AttentionScores.accumulatePaged(new CpuDevice(), c.l, c.cache,
                c.tables, c.width, lens, new int[] {12, 0}, c.queries, c.heads, c.rowOffsets, c.positions, null, c.lse, c.scale, new float[slots], 1f));
        assertTrue(e.getMessage().startsWith("prevLens"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> AttentionScores.accumulatePaged(new CpuDevice(), c.l, c.cache,
                c.tables, c.width, lens, null, c.queries, c.heads, c.rowOffsets, c.positions, null, c.lse, c.scale, new float[3], 1f));
        assertTrue(e.getMessage().startsWith("state"), e.getMessage());
    }

    @Test
    void sameBitsUnderEverySchedule() {
        Case c = randomCase(KvLayout.Kind.FLASH_INFER_HND, DType.BF16, 4, 2, 8, 8, new int[] {45, 3}, new int[] {6, 2}, 77);
        float[] first = null;
        for (String name : TestDevices.simDevices().toList()) {
            try (KernelDevice device = TestDevices.open(name)) {
                float[] got = run(device, c, null, 1f);
                if (first == null) first = got;
                else for (int i = 0; i < got.length; i++) assertEquals(Float.floatToRawIntBits(first[i]), Float.floatToRawIntBits(got[i]), name + " " + i);
            }
        }
    }

    @Test
    void cpuDeviceIsTheReference() {
        Case c = randomCase(KvLayout.Kind.FLASH_ATTENTION, DType.F16, 4, 1, 4, 8, new int[] {10}, new int[] {3}, 9);
        check(c, run(new CpuDevice(), c, null, 1f), null, 1f, "cpu");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void badInputIsRejectedAndNothingWritten(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Case c = randomCase(KvLayout.Kind.FLASH_ATTENTION, DType.F32, 4, 1, 2, 8, new int[] {7}, new int[] {2}, 3);
            IllegalArgumentException e;
            e = assertThrows(IllegalArgumentException.class, () -> AttentionScores.compute(device, c.l, c.cache, c.tables, c.width, c.kvLens, c.queries,
                    0, c.rowOffsets, c.positions, c.weights, c.lse, c.scale, null, 1f));
            assertTrue(e.getMessage().startsWith("heads"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> AttentionScores.compute(device, c.l, c.cache, c.tables, c.width, c.kvLens, c.queries,
                    c.heads, c.rowOffsets, new int[] {5, 7}, c.weights, c.lse, c.scale, null, 1f));
            assertTrue(e.getMessage().startsWith("positions"), e.getMessage());
            int[] badTable = c.tables.clone();
            badTable[1] = 99;
            e = assertThrows(IllegalArgumentException.class, () -> AttentionScores.compute(device, c.l, c.cache, badTable, c.width, c.kvLens, c.queries,
                    c.heads, c.rowOffsets, c.positions, c.weights, c.lse, c.scale, null, 1f));
            assertTrue(e.getMessage().startsWith("blockTables"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> AttentionScores.compute(device, c.l, c.cache, c.tables, c.width, c.kvLens, c.queries,
                    c.heads, c.rowOffsets, c.positions, new float[] {1, Float.NaN}, c.lse, c.scale, null, 1f));
            assertTrue(e.getMessage().startsWith("weights"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> AttentionScores.compute(device, c.l, c.cache, c.tables, c.width, c.kvLens, c.queries,
                    c.heads, c.rowOffsets, c.positions, c.weights, c.lse, c.scale, new float[3], 1f));
            assertTrue(e.getMessage().startsWith("prev"), e.getMessage());
            // NaN in a query, an lse, or a held key: found by the kernel
            float[] q = ((float[]) c.queries).clone();
            q[9] = Float.NaN;
            e = assertThrows(IllegalArgumentException.class, () -> AttentionScores.compute(device, c.l, c.cache, c.tables, c.width, c.kvLens, q,
                    c.heads, c.rowOffsets, c.positions, c.weights, c.lse, c.scale, null, 1f));
            assertTrue(e.getMessage().startsWith("queries"), e.getMessage());
            float[] lse = c.lse.clone();
            lse[3] = Float.POSITIVE_INFINITY;
            assertThrows(IllegalArgumentException.class, () -> AttentionScores.compute(device, c.l, c.cache, c.tables, c.width, c.kvLens, c.queries,
                    c.heads, c.rowOffsets, c.positions, c.weights, lse, c.scale, null, 1f));
            float[] cache = ((float[]) c.cache).clone();
            cache[(int) c.l.offset(0, c.tables[1], 2, 0, 5)] = Float.NaN;  // key of token 6
            assertThrows(IllegalArgumentException.class, () -> AttentionScores.compute(device, c.l, cache, c.tables, c.width, c.kvLens, c.queries,
                    c.heads, c.rowOffsets, c.positions, c.weights, c.lse, c.scale, null, 1f));

            // device API: a rejected call (one key tile) leaves out and prev untouched
            Stream stream = device.defaultStream();
            try (Workspace ws = new Workspace(device, stream);
                 DeviceBuffer cb = device.alloc(c.l.bytes());
                 DeviceBuffer tb = device.alloc(4L * c.tables.length);
                 DeviceBuffer qb = device.alloc(4L * q.length);
                 DeviceBuffer lb = device.alloc(4L * c.lse.length);
                 DeviceBuffer pb = device.alloc(4L * 7);
                 DeviceBuffer ob = device.alloc(4L * 7)) {
                device.upload(cache, cb, stream);
                device.upload(c.tables, tb, stream);
                device.upload((float[]) c.queries, qb, stream);
                device.upload(c.lse, lb, stream);
                float[] prev = {1, 2, 3, 4, 5, 6, 7};
                device.upload(prev, pb, stream);
                device.fill(ob, 0x7b, stream);
                Pending p = AttentionScores.computeOnDevice(ws, stream, c.l, cb, tb, c.width, c.kvLens, qb, (long) c.heads * 8, 8, c.heads, c.rowOffsets,
                        c.positions, null, lb, c.heads, 1, c.scale, pb, 0.5f, ob);
                assertThrows(IllegalArgumentException.class, p::await);
                float[] o = new float[7], pv = new float[7];
                device.download(ob, o, stream);
                device.download(pb, pv, stream);
                for (float v : o) assertEquals(Float.intBitsToFloat(0x7b7b7b7b), v, deviceName + ": nothing written");
                assertArrayEquals(prev, pv, deviceName + ": prev untouched");
                // the same call on a clean cache succeeds, in place (prev == out)
                device.upload((float[]) c.cache, cb, stream);
                AttentionScores.computeOnDevice(ws, stream, c.l, cb, tb, c.width, c.kvLens, qb, (long) c.heads * 8, 8, c.heads, c.rowOffsets,
                        c.positions, null, lb, c.heads, 1, c.scale, pb, 0.5f, pb).await();
                device.download(pb, pv, stream);
                double[] want = AttentionScoresReference.colsum(c.l, c.cache, c.tables, c.width, c.kvLens, c.queries, c.heads, c.rowOffsets,
                        c.positions, null, c.lse, c.scale, prev, 0.5);
                for (int i = 0; i < 7; i++) assertEquals(want[i], pv[i], 2e-5 * Math.abs(want[i]) + 2e-6, deviceName + " in place " + i);
            }
        }
    }
}
