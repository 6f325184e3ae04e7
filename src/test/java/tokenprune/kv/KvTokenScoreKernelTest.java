package tokenprune.kv;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kernels.StatusWord;
import tokenprune.kv.KvScoreOptions.HeadAgg;
import tokenprune.kv.KvScoreOptions.Metric;
import tokenprune.methods.DType;
import tokenprune.numeric.Bf16;
import tokenprune.numeric.Fp16;
import tokenprune.reference.PagedEvictionReference;
import tokenprune.testing.TestDevices;

/**
 * tp_kv_token_score_* against PagedEvictionReference: PE-1 / PE-2 by hand, random caches of awkward
 * shapes (partial last blocks, length-1 and empty sequences, ragged batches, scrambled block tables
 * whose padding would be rejected if read) in every layout and dtype, every metric, decode-style
 * partial ranges, NaN / out-of-pool rejection; both load paths (16-byte vectorised for aligned head
 * dims and views, element-wise otherwise); and the {@code random} score (bit-identical to the
 * reference, reads no K/V).
 */
class KvTokenScoreKernelTest {
    static java.util.stream.Stream<String> devices() {
        return TestDevices.kernelDevices();
    }

    static final KvScoreOptions[] ALL_OPTIONS = {
        KvScoreOptions.defaults(), KvScoreOptions.defaults().withHeadAgg(HeadAgg.RATIO_OF_MEANS), KvScoreOptions.of(Metric.INV_K),
        KvScoreOptions.of(Metric.V), KvScoreOptions.of(Metric.K_PLUS_V)};

    /** A cache whose every element is random in [-2, 2) (rounded to the dtype), as the host array the API takes. */
    static Object randomCache(KvLayout l, Random rnd) {
        int n = (int) l.elements();
        float[] f = new float[n];
        for (int i = 0; i < n; i++) f[i] = rnd.nextFloat() * 4 - 2;
        return switch (l.dtype()) {
            case F32 -> f;
            case F16 -> Fp16.fromFloats(f);
            case BF16 -> Bf16.fromFloats(f);
        };
    }

    /** Block tables for the given lengths over a shuffled pool, padded with -7 (never read). */
    static int[] tables(int[] lengths, int b, int width, int numBlocks, Random rnd) {
        List<Integer> pool = new ArrayList<>();
        for (int i = 0; i < numBlocks; i++) pool.add(i);
        Collections.shuffle(pool, rnd);
        int[] t = new int[lengths.length * width];
        java.util.Arrays.fill(t, -7);
        int next = 0;
        for (int s = 0; s < lengths.length; s++)
            for (int j = 0; j < (lengths[s] + b - 1) / b; j++) t[s * width + j] = pool.get(next++);
        return t;
    }

    static void compare(KernelDevice device, KvLayout l, Object cache, int[] tables, int width, int[] begin, int[] end, KvScoreOptions o,
                        String what) {
        float[] got = KvTokenScores.score(device, l, cache, tables, width, begin, end, o);
        int at = 0;
        for (int s = 0; s < begin.length; s++) {
            int[] row = java.util.Arrays.copyOfRange(tables, s * width, (s + 1) * width);
            double[] want = PagedEvictionReference.tokenScores(l, cache, row, begin[s], end[s], o);
            for (int i = 0; i < want.length; i++, at++)
                assertEquals(want[i], got[at], 2e-5 * Math.abs(want[i]) + 1e-7, what + " " + o + " seq " + s + " token " + (begin[s] + i));
        }
        assertEquals(at, got.length);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void handCheckablePe1AndPe2(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            // LEGACY needs D % 4 == 0 for f32: D = 4 with dims 2, 3 zero, the same norms
            for (KvLayout.Kind kind : new KvLayout.Kind[] {KvLayout.Kind.FLASH_ATTENTION, KvLayout.Kind.FLASH_INFER, KvLayout.Kind.LEGACY}) {
                KvLayout one = KvLayout.of(kind, DType.F32, 3, 4, 1, TestLayouts.headDim(kind, DType.F32, 2));
                float[] c1 = new float[(int) one.elements()];
                // sequence table [2, 1]; token 5 -> physical 1, slot 1
                c1[(int) one.offset(0, 1, 1, 0, 0)] = 3;
                c1[(int) one.offset(0, 1, 1, 0, 1)] = 4;
                c1[(int) one.offset(1, 1, 1, 0, 0)] = 6;
                c1[(int) one.offset(1, 1, 1, 0, 1)] = 8;
                float[] want = {2.0f, 0.2f, 10f, 15f};
                KvScoreOptions[] opts = {KvScoreOptions.defaults(), KvScoreOptions.of(Metric.INV_K), KvScoreOptions.of(Metric.V), KvScoreOptions.of(Metric.K_PLUS_V)};
                for (int i = 0; i < opts.length; i++) {
                    float[] got = KvTokenScores.score(device, one, c1, new int[] {2, 1}, 2, new int[] {5}, new int[] {6}, opts[i]);
                    assertEquals(want[i], got[0], 1e-5 * want[i], deviceName + " " + kind + " PE-1 " + opts[i].metric());
                }
                KvLayout two = KvLayout.of(kind, DType.F32, 1, 4, 2, TestLayouts.headDim(kind, DType.F32, 2));
                float[] c2 = new float[(int) two.elements()];
                c2[(int) two.offset(0, 0, 0, 0, 0)] = 3;
                c2[(int) two.offset(0, 0, 0, 0, 1)] = 4;
                c2[(int) two.offset(1, 0, 0, 0, 0)] = 6;
                c2[(int) two.offset(1, 0, 0, 0, 1)] = 8;
                c2[(int) two.offset(0, 0, 0, 1, 0)] = 1;
                c2[(int) two.offset(1, 0, 0, 1, 1)] = 1;
                float mor = KvTokenScores.score(device, two, c2, new int[] {0}, 1, new int[] {0}, new int[] {1}, KvScoreOptions.defaults())[0];
                float rom = KvTokenScores.score(device, two, c2, new int[] {0}, 1, new int[] {0}, new int[] {1},
                        KvScoreOptions.defaults().withHeadAgg(HeadAgg.RATIO_OF_MEANS))[0];
                assertEquals(1.5f, mor, 1e-5 * 1.5, deviceName + " " + kind + " PE-2 mean_of_ratios");
                assertEquals(5.5f / 3, rom, 1e-5 * 1.84, deviceName + " " + kind + " PE-2 ratio_of_means");
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void randomCachesEveryLayoutAndDtype(String deviceName) {
        // {B, heads, headDim, lengths...}: partial last blocks, a length-1 and an empty sequence, ragged batches
        int[][] shapes = {{16, 2, 33, 1, 17, 40}, {5, 3, 8, 12, 1, 0, 5}, {4, 1, 1, 9, 3}};
        try (KernelDevice device = TestDevices.open(deviceName)) {
            long seed = 100;
            int combo = 0;
            for (KvLayout.Kind kind : KvLayout.Kind.values()) {
                for (DType dtype : DType.values()) {
                    for (int[] shape : shapes) {
                        Random rnd = new Random(++seed);
                        int b = shape[0];
                        int[] lengths = java.util.Arrays.copyOfRange(shape, 3, shape.length);
                        int width = 1, blocks = 0;
                        for (int len : lengths) {
                            width = Math.max(width, (len + b - 1) / b + 1);  // one padding entry at least
                            blocks += (len + b - 1) / b;
                        }
                        KvLayout l = KvLayout.of(kind, dtype, blocks + 2, b, shape[1], TestLayouts.headDim(kind, dtype, shape[2]));
                        Object cache = randomCache(l, rnd);
                        int[] t = tables(lengths, b, width, l.numBlocks(), rnd);
                        int[] begin = new int[lengths.length];
                        KvScoreOptions o = ALL_OPTIONS[combo++ % ALL_OPTIONS.length];
                        String what = deviceName + " " + l + " seed " + seed;
                        compare(device, l, cache, t, width, begin, lengths, o, what);
                        // decode: only the last (possibly partial) block of each sequence
                        int[] last = new int[lengths.length];
                        for (int s = 0; s < lengths.length; s++) last[s] = lengths[s] == 0 ? 0 : (lengths[s] - 1) / b * b;
                        compare(device, l, cache, t, width, last, lengths, KvScoreOptions.defaults(), what + " last block");
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void everyMetricOnOneCache(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Random rnd = new Random(7);
            KvLayout l = KvLayout.of(KvLayout.Kind.FLASH_INFER, DType.BF16, 6, 4, 3, 40);
            Object cache = randomCache(l, rnd);
            int[] lengths = {7, 13};
            int[] t = tables(lengths, 4, 4, 6, rnd);
            for (KvScoreOptions o : ALL_OPTIONS) compare(device, l, cache, t, 4, new int[2], lengths, o, deviceName);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void nonFiniteInputAndOutOfPoolTablesAreRejected(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            KvLayout l = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION, DType.F16, 3, 4, 2, 5);
            short[] cache = (short[]) randomCache(l, new Random(3));
            int[] table = {2, 0};
            cache[(int) l.offset(1, 0, 1, 1, 4)] = Fp16.NaN;  // token 5's value
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> KvTokenScores.score(device, l, cache, table, 2, new int[] {0}, new int[] {7}, KvScoreOptions.defaults()));
            assertTrue(e.getMessage().contains("NaN"), e.getMessage());
            // the NaN token outside the scored range is never read
            KvTokenScores.score(device, l, cache, table, 2, new int[] {0}, new int[] {4}, KvScoreOptions.defaults());
            e = assertThrows(IllegalArgumentException.class,
                    () -> KvTokenScores.score(device, l, cache, new int[] {2, 3}, 2, new int[] {0}, new int[] {7}, KvScoreOptions.defaults()));
            assertTrue(e.getMessage().contains("outside the pool"), e.getMessage());

            // the device check, past the host's: a table entry outside the pool is not read and sets the status
            Stream stream = device.defaultStream();
            try (StatusWord status = new StatusWord(device, stream);
                 DeviceBuffer c = device.alloc(l.bytes());
                 DeviceBuffer tab = device.alloc(8);
                 DeviceBuffer offs = device.alloc(8);
                 DeviceBuffer out = device.alloc(4 * 7)) {
                device.upload(cache, c, stream);
                device.upload(new int[] {2, 9}, tab, stream);
                device.upload(new int[] {0, 3}, offs, stream);
                device.fill(out, 0x7b, stream);
                int epoch = status.nextEpoch(stream);
                KvTokenScores.enqueue(device, stream, c, l, tab, 2, 1, null, offs, 3, KvScoreOptions.defaults(), out, status.buffer(), epoch);
                assertTrue(!status.rejected(epoch, stream), deviceName + ": tokens 0..2 use block 2 only");
                device.upload(new int[] {0, 7}, offs, stream);
                epoch = status.nextEpoch(stream);
                KvTokenScores.enqueue(device, stream, c, l, tab, 2, 1, null, offs, 7, KvScoreOptions.defaults(), out, status.buffer(), epoch);
                assertTrue(status.rejected(epoch, stream), deviceName + ": block 9 of 3 is rejected on the device");
                float[] o = new float[7];
                device.download(out, o, stream);
                for (int i = 4; i < 7; i++) assertEquals(0x7b7b7b7b, Float.floatToRawIntBits(o[i]), "token " + i + " not written");
            }
        }
    }
    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void scoresTheTokensAPagedKvCacheHolds(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Random rnd = new Random(21);
            PagedKvCache kv = new PagedKvCache(12, 4, 12);
            int a = kv.allocateSequence(14, 22);  // pruned prompt: C + r
            int b = kv.allocateSequence(1, 1);
            kv.appendTokens(a, 2);
            kv.evictBlock(a, 2);
            kv.reclaimEvicted();
            kv.appendTokens(a, 1);
            kv.appendTokens(b, 4);
            kv.checkInvariantsAtAttention();
            KvLayout l = KvLayout.of(KvLayout.Kind.FLASH_INFER, DType.F16, 12, 4, 2, 16);
            Object cache = randomCache(l, rnd);
            int[] ids = {a, b};
            float[] got = KvTokenScores.scoreSequences(device, l, cache, kv, ids, KvScoreOptions.defaults());
            int at = 0;
            for (int id : ids) {
                double[] want = PagedEvictionReference.tokenScores(l, cache, kv.blockTable(id), 0, kv.kvLen(id), KvScoreOptions.defaults());
                for (double w : want) assertEquals(w, got[at++], 2e-5 * Math.abs(w), deviceName + " sequence " + id);
            }
            assertEquals(13 + 5, got.length);
        }
    }

    @org.junit.jupiter.api.Test
    void badHostInputIsRejectedBeforeLaunching() {
        try (KernelDevice device = TestDevices.open("sim-in-order")) {
            KvLayout l = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION, DType.BF16, 2, 4, 1, 3);
            short[] ok = new short[(int) l.elements()];
            KvScoreOptions o = KvScoreOptions.defaults();
            int[] t = {0, 1};
            assertThrows(IllegalArgumentException.class, () -> KvTokenScores.score(device, l, new float[ok.length], t, 2, new int[] {0}, new int[] {8}, o));
            assertThrows(IllegalArgumentException.class, () -> KvTokenScores.score(device, l, new short[3], t, 2, new int[] {0}, new int[] {8}, o));
            assertThrows(IllegalArgumentException.class, () -> KvTokenScores.score(device, l, ok, t, 2, new int[] {3}, new int[] {2}, o));
            assertThrows(IllegalArgumentException.class, () -> KvTokenScores.score(device, l, ok, t, 2, new int[] {0}, new int[] {9}, o));
            assertThrows(IllegalArgumentException.class, () -> KvTokenScores.score(device, l, ok, t, 1, new int[] {0}, new int[] {4}, o));
            assertThrows(IllegalArgumentException.class, () -> KvTokenScores.score(device, l, ok, t, 2, new int[] {0, 0}, new int[] {1}, o));
            assertThrows(IllegalArgumentException.class, () -> new KvScoreOptions(Metric.V, HeadAgg.MEAN_OF_RATIOS, Float.NaN));
            assertEquals(0, KvTokenScores.score(device, l, ok, t, 2, new int[] {0}, new int[] {0}, o).length, "an empty range launches nothing");
        }
    }

    /** A cache of nothing but NaN: any K/V read is rejected. */
    static Object nanCache(KvLayout l) {
        int n = (int) l.elements();
        if (l.dtype() == DType.F32) {
            float[] f = new float[n];
            java.util.Arrays.fill(f, Float.NaN);
            return f;
        }
        short[] h = new short[n];
        java.util.Arrays.fill(h, l.dtype() == DType.F16 ? Fp16.NaN : Bf16.fromFloat(Float.NaN));
        return h;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void randomScoreReadsNoKvAndMatchesTheReferenceBitForBit(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Random rnd = new Random(0x7A9D);
            int combo = 0;
            for (KvLayout.Kind kind : KvLayout.Kind.values()) {
                DType dtype = DType.values()[combo++ % DType.values().length];
                int b = 1 + rnd.nextInt(9);
                int[] lengths = {1 + rnd.nextInt(40), 0, 1, 300 + rnd.nextInt(50)};  // > 256 tokens: more than one thread block
                int width = 1, blocks = 0;
                for (int len : lengths) {
                    width = Math.max(width, (len + b - 1) / b + 1);
                    blocks += (len + b - 1) / b;
                }
                KvLayout l = KvLayout.of(kind, dtype, blocks + 3, b, 2, TestLayouts.headDim(kind, dtype, 3));
                Object cache = nanCache(l);
                int[] t = tables(lengths, b, width, l.numBlocks(), rnd);
                int[] begin = {0, 0, 0, b};
                long seed = rnd.nextLong();
                float[] got = KvTokenScores.score(device, l, cache, t, width, begin, lengths, KvScoreOptions.random(seed));
                float[] other = KvTokenScores.score(device, l, cache, t, width, begin, lengths, KvScoreOptions.random(seed + 1));
                int at = 0, same = 0;
                for (int s = 0; s < lengths.length; s++) {
                    int[] row = java.util.Arrays.copyOfRange(t, s * width, (s + 1) * width);
                    double[] want = PagedEvictionReference.tokenScores(l, cache, row, begin[s], lengths[s], KvScoreOptions.random(seed));
                    for (int i = 0; i < want.length; i++, at++) {
                        int tok = begin[s] + i;
                        assertEquals(Float.floatToRawIntBits(PagedEvictionReference.randomScore(seed, row[tok / b], tok % b)), Float.floatToRawIntBits(got[at]),
                                deviceName + " " + l + " seq " + s + " token " + tok);
                        assertEquals((float) want[i], got[at]);
                        assertTrue(got[at] >= 0f && got[at] < 1f, "in [0, 1): " + got[at]);
                        if (got[at] == other[at]) same++;
                    }
                }
                assertEquals(at, got.length);
                assertTrue(same < 3, "another seed gives other scores (" + same + " equal of " + at + ")");
            }
            // the device still walks the table: a block outside the pool is rejected, nothing written for it
            KvLayout l = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION, DType.BF16, 3, 4, 1, 8);
            Stream stream = device.defaultStream();
            try (StatusWord status = new StatusWord(device, stream);
                 DeviceBuffer c = device.alloc(l.bytes());
                 DeviceBuffer tab = device.alloc(8);
                 DeviceBuffer offs = device.alloc(8);
                 DeviceBuffer out = device.alloc(4 * 7)) {
                device.upload(new int[] {2, 9}, tab, stream);
                device.upload(new int[] {0, 7}, offs, stream);
                device.fill(out, 0x7b, stream);
                int epoch = status.nextEpoch(stream);
                KvTokenScores.enqueue(device, stream, c, l, tab, 2, 1, null, offs, 7, KvScoreOptions.random(5), out, status.buffer(), epoch);
                assertTrue(status.rejected(epoch, stream), deviceName + ": block 9 of 3 is rejected");
                float[] o = new float[7];
                device.download(out, o, stream);
                for (int i = 0; i < 4; i++) assertEquals(PagedEvictionReference.randomScore(5, 2, i), o[i], "token " + i);
                for (int i = 4; i < 7; i++) assertEquals(0x7b7b7b7b, Float.floatToRawIntBits(o[i]), "token " + i + " not written");
            }
        }
    }

    /**
     * Scores through {@code enqueue} from a device copy of {@code cache} placed {@code shiftElements}
     * elements into a larger buffer (a shift that breaks 16-byte alignment forces the element-wise path).
     */
    static float[] scoreShifted(KernelDevice device, KvLayout l, Object cache, int[] tables, int width, int[] lengths, KvScoreOptions o, int shiftElements) {
        int seqs = lengths.length;
        int[] offsets = new int[seqs + 1];
        for (int s = 0; s < seqs; s++) offsets[s + 1] = offsets[s] + lengths[s];
        long es = l.dtype().bytes(), shift = shiftElements * es;
        Stream stream = device.defaultStream();
        try (StatusWord status = new StatusWord(device, stream);
             DeviceBuffer whole = device.alloc(l.bytes() + 16);
             DeviceBuffer tab = device.alloc(4L * tables.length);
             DeviceBuffer offs = device.alloc(4L * (seqs + 1));
             DeviceBuffer out = device.alloc(Math.max(4L, 4L * offsets[seqs]))) {
            DeviceBuffer view = whole.slice(shift, l.bytes());
            if (cache instanceof float[] f) device.upload(f, view, stream);
            else device.upload((short[]) cache, view, stream);
            device.upload(tables, tab, stream);
            device.upload(offsets, offs, stream);
            int epoch = status.nextEpoch(stream);
            KvTokenScores.enqueue(device, stream, view, l, tab, width, seqs, null, offs, offsets[seqs], o, out, status.buffer(), epoch);
            assertTrue(!status.rejected(epoch, stream), "not rejected");
            float[] got = new float[offsets[seqs]];
            if (got.length > 0) device.download(out, got, stream);
            stream.synchronize();
            return got;
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void vectorisedAndElementwiseLoadsMatchTheReference(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Random rnd = new Random(0x16B), legacyRnd = new Random(0x16C);
            int combo = 0;
            for (DType dtype : DType.values()) {
                int n = 16 / dtype.bytes();  // elements per 16-byte load
                // aligned head dims (one chunk per head, 2..16 chunks, 128, and more chunks than lanes) and misaligned ones
                int[] dims = {n, 5 * n, 128, 33 * n, n + 1, 2 * n - 1, 33, 1};
                // the aligned dims (multiples of x = n) also through LEGACY, which always loads element-wise
                for (int d : dims) for (int pass = 0; pass < (d % n == 0 ? 2 : 1); pass++) {
                    KvLayout.Kind kind = pass == 0 ? KvLayout.Kind.values()[combo % 4] : KvLayout.Kind.LEGACY;
                    Random rnd0 = rnd;
                    if (pass == 1) {
                        rnd = legacyRnd;
                        combo--;
                    }
                    int heads = new int[] {1, 3, 8}[combo % 3];
                    int b = new int[] {1, 4, 5, 16}[combo % 4];
                    combo++;
                    int[] lengths = {1 + rnd.nextInt(2 * b + 3), 1 + rnd.nextInt(9)};
                    int width = 1, blocks = 0;
                    for (int len : lengths) {
                        width = Math.max(width, (len + b - 1) / b);
                        blocks += (len + b - 1) / b;
                    }
                    KvLayout l = KvLayout.of(kind, dtype, blocks + 1, b, heads, d);
                    Object cache = randomCache(l, rnd);
                    int[] t = tables(lengths, b, width, l.numBlocks(), rnd);
                    KvScoreOptions o = ALL_OPTIONS[combo % ALL_OPTIONS.length];
                    float[] aligned = scoreShifted(device, l, cache, t, width, lengths, o, 0);
                    float[] shifted = scoreShifted(device, l, cache, t, width, lengths, o, 1);  // base 2 or 4 bytes off: element-wise
                    int at = 0;
                    for (int s = 0; s < lengths.length; s++) {
                        double[] want = PagedEvictionReference.tokenScores(l, cache, java.util.Arrays.copyOfRange(t, s * width, (s + 1) * width), 0, lengths[s], o);
                        for (int i = 0; i < want.length; i++, at++) {
                            String what = deviceName + " " + l + " " + o + " seq " + s + " token " + i;
                            assertEquals(want[i], aligned[at], 2e-5 * Math.abs(want[i]) + 1e-7, what + " (16-byte aligned base)");
                            assertEquals(want[i], shifted[at], 2e-5 * Math.abs(want[i]) + 1e-7, what + " (misaligned base)");
                        }
                    }
                    rnd = rnd0;
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void vectorisedPathRejectsNaN(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            KvLayout l = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION_HND, DType.BF16, 3, 4, 3, 16);
            short[] cache = (short[]) randomCache(l, new Random(4));
            cache[(int) l.offset(0, 1, 3, 2, 13)] = Bf16.fromFloat(Float.POSITIVE_INFINITY);  // token 7 (table [0, 1]), last head, second chunk
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> KvTokenScores.score(device, l, cache, new int[] {0, 1}, 2, new int[] {0}, new int[] {8}, KvScoreOptions.defaults()));
            assertTrue(e.getMessage().contains("NaN"), e.getMessage());
            KvTokenScores.score(device, l, cache, new int[] {0, 1}, 2, new int[] {0}, new int[] {7}, KvScoreOptions.defaults());
        }
    }
}
