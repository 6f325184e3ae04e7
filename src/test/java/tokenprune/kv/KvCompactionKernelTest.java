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

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.methods.DType;
import tokenprune.methods.Workspace;
import tokenprune.numeric.Bf16;
import tokenprune.numeric.Fp16;
import tokenprune.reference.KvCompactionReference;
import tokenprune.testing.TestDevices;

/**
 * tp_kv_compact_* (KvCompaction) against KvCompactionReference: random ragged batches over the 4
 * layouts x 3 dtypes, in place and out of place, shared / per-head / per-layer keep sets, with and
 * without the state, with and without key re-rotation (NEOX, GPT-J, partial rotary dim), kept counts
 * 0 / 1 / all, partial last blocks, B = 1..16; SL-4 by hand; a rotate-and-back round trip; bad kept
 * lists and table entries rejected with nothing written; host argument checks.
 */
class KvCompactionKernelTest {
    static java.util.stream.Stream<String> devices() {
        return TestDevices.kernelDevices();
    }

    static Object randomData(DType dtype, int n, Random rnd) {
        float[] f = new float[n];
        for (int i = 0; i < n; i++) f[i] = (float) rnd.nextGaussian();
        return switch (dtype) {
            case F32 -> f;
            case F16 -> Fp16.fromFloats(f);
            case BF16 -> Bf16.fromFloats(f);
        };
    }

    static float value(Object data, DType dtype, int i) {
        return switch (dtype) {
            case F32 -> ((float[]) data)[i];
            case F16 -> Fp16.toFloat(((short[]) data)[i]);
            case BF16 -> Bf16.toFloat(((short[]) data)[i]);
        };
    }

    /** A random batch: distinct physical blocks for every source row and (out of place) destination row. */
    static final class Batch {
        int seqs, b, srcStride, dstStride;
        int[] srcLen, srcTables, dstTables, keepOffsets;
        int numBlocks;
    }

    static Batch randomBatch(Random rnd, int seqs, int b, boolean inPlace, int[] counts, int[] lens) {
        Batch x = new Batch();
        x.seqs = seqs;
        x.b = b;
        x.srcLen = lens;
        x.keepOffsets = new int[seqs + 1];
        int srcW = 1, dstW = 1, need = 0;
        for (int s = 0; s < seqs; s++) {
            x.keepOffsets[s + 1] = x.keepOffsets[s] + counts[s];
            srcW = Math.max(srcW, (lens[s] + b - 1) / b);
            dstW = Math.max(dstW, (counts[s] + b - 1) / b);
            need += (lens[s] + b - 1) / b + (inPlace ? 0 : (counts[s] + b - 1) / b);
        }
        x.srcStride = srcW + rnd.nextInt(2);
        x.dstStride = dstW + rnd.nextInt(2);
        x.numBlocks = need + 1 + rnd.nextInt(3);
        List<Integer> pool = new ArrayList<>();
        for (int p = 0; p < x.numBlocks; p++) pool.add(p);
        Collections.shuffle(pool, rnd);
        int next = 0;
        x.srcTables = new int[seqs * x.srcStride];
        Arrays.fill(x.srcTables, -1);
        for (int s = 0; s < seqs; s++)
            for (int j = 0; j < (lens[s] + b - 1) / b; j++) x.srcTables[s * x.srcStride + j] = pool.get(next++);
        if (!inPlace) {
            x.dstTables = new int[seqs * x.dstStride];
            Arrays.fill(x.dstTables, -1);
            for (int s = 0; s < seqs; s++)
                for (int j = 0; j < (counts[s] + b - 1) / b; j++) x.dstTables[s * x.dstStride + j] = pool.get(next++);
        }
        return x;
    }

    /** A strictly increasing random subset of 0 .. len-1 of size count. */
    static int[] subset(Random rnd, int len, int count) {
        List<Integer> all = new ArrayList<>();
        for (int i = 0; i < len; i++) all.add(i);
        Collections.shuffle(all, rnd);
        int[] out = new int[count];
        for (int i = 0; i < count; i++) out[i] = all.get(i);
        Arrays.sort(out);
        return out;
    }

    static void assertClose(Object want, Object got, DType dtype, boolean exact, String msg) {
        if (exact) {
            if (dtype == DType.F32) {
                float[] w = (float[]) want, g = (float[]) got;
                for (int i = 0; i < w.length; i++)
                    if (Float.floatToRawIntBits(w[i]) != Float.floatToRawIntBits(g[i])) throw new AssertionError(msg + ": element " + i + " want " + w[i] + " got " + g[i]);
            } else {
                assertArrayEquals((short[]) want, (short[]) got, msg);
            }
            return;
        }
        double rel = dtype == DType.F32 ? 1e-6 : dtype == DType.F16 ? 1.0 / 1024 : 1.0 / 128;
        int n = dtype == DType.F32 ? ((float[]) want).length : ((short[]) want).length;
        for (int i = 0; i < n; i++) {
            float w = value(want, dtype, i), g = value(got, dtype, i);
            if (!(Math.abs(w - g) <= 1e-6 + rel * Math.abs(w))) throw new AssertionError(msg + ": element " + i + " want " + w + " got " + g);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void randomBatchesMatchTheReference(String deviceName) {
        Random rnd = new Random(0xC0A1);
        int[] dims = {1, 2, 3, 4, 8, 12, 16};
        try (KernelDevice device = TestDevices.open(deviceName)) {
            int it = 0;
            for (KvLayout.Kind kind : KvLayout.Kind.values()) {
                for (DType dtype : DType.values()) {
                    for (int rep = 0; rep < 4; rep++, it++) {
                        int b = 1 + rnd.nextInt(16);
                        int heads = 1 + rnd.nextInt(3);
                        int d = dims[rnd.nextInt(dims.length)];
                        int layers = 1 + rnd.nextInt(2);
                        int seqs = 1 + rnd.nextInt(4);
                        boolean inPlace = rep % 2 == 0;
                        boolean perHead = rnd.nextBoolean(), perLayer = layers > 1 && rnd.nextBoolean();
                        boolean withState = rnd.nextBoolean();
                        boolean withRope = d >= 2 && rep >= 2;
                        int[] lens = new int[seqs], counts = new int[seqs];
                        for (int s = 0; s < seqs; s++) {
                            lens[s] = rnd.nextInt(3 * b + 7);
                            int pick = rnd.nextInt(4);
                            counts[s] = pick == 0 ? 0 : pick == 1 ? Math.min(1, lens[s]) : pick == 2 ? lens[s] : rnd.nextInt(lens[s] + 1);
                        }
                        Batch x = randomBatch(rnd, seqs, b, inPlace, counts, lens);
                        d = TestLayouts.headDim(kind, dtype, d);
                        withRope = d >= 2 && rep >= 2;
                        KvLayout layout = KvLayout.of(kind, dtype, x.numBlocks, b, heads, d);
                        int total = x.keepOffsets[seqs];
                        int lists = (perHead ? heads : 1), layerLists = perLayer ? layers : 1;
                        int[] keep = new int[total * lists * layerLists];
                        for (int ll = 0; ll < layerLists; ll++)
                            for (int hh = 0; hh < lists; hh++)
                                for (int s = 0; s < seqs; s++)
                                    System.arraycopy(subset(rnd, lens[s], counts[s]), 0, keep, (ll * lists + hh) * total + x.keepOffsets[s], counts[s]);
                        Object[] caches = new Object[layers];
                        float[][] states = withState ? new float[layers][] : null;
                        for (int l = 0; l < layers; l++) {
                            caches[l] = randomData(dtype, (int) layout.elements(), rnd);
                            if (withState) {
                                states[l] = new float[x.numBlocks * b * heads];
                                for (int i = 0; i < states[l].length; i++) states[l][i] = rnd.nextFloat();
                            }
                        }
                        KvCompaction.Rope rope = null;
                        if (withRope) {
                            int rd = 2 * (1 + rnd.nextInt(d / 2));
                            rope = new KvCompaction.Rope(rd, rnd.nextBoolean() ? 10000f : 500000f,
                                    rnd.nextBoolean() ? KvCompaction.RopeStyle.NEOX : KvCompaction.RopeStyle.GPTJ);
                        }
                        int[] deltas = null;  // caller-given rotation deltas in some rotating cases
                        if (rope != null && rnd.nextBoolean()) {
                            deltas = new int[keep.length];
                            for (int i = 0; i < deltas.length; i++) deltas[i] = rnd.nextInt(4001) - 2000;
                        }
                        KvCompaction.Result got = KvCompaction.compact(device, layout, caches, states, x.srcTables, x.srcStride, x.dstTables, x.dstStride,
                                x.srcLen, x.keepOffsets, keep, perHead, perLayer, deltas, rope);
                        String msg = deviceName + " it " + it + " " + layout + " inPlace " + inPlace + " perHead " + perHead + " perLayer " + perLayer
                                + " state " + withState + " rope " + rope + " deltas " + (deltas != null) + " counts " + Arrays.toString(counts) + " lens " + Arrays.toString(lens);
                        for (int l = 0; l < layers; l++) {
                            int[] layerKeep = Arrays.copyOfRange(keep, (perLayer ? l : 0) * total * lists, ((perLayer ? l : 0) + 1) * total * lists);
                            int[] layerDeltas = deltas == null ? null
                                    : Arrays.copyOfRange(deltas, (perLayer ? l : 0) * total * lists, ((perLayer ? l : 0) + 1) * total * lists);
                            KvCompactionReference.Result want = KvCompactionReference.compact(layout, caches[l], withState ? states[l] : null, x.srcTables,
                                    x.srcStride, x.dstTables, x.dstStride, x.keepOffsets, layerKeep, perHead, layerDeltas, rope != null ? rope.rotaryDim() : 0,
                                    rope != null ? rope.base() : 1, rope != null && rope.style() == KvCompaction.RopeStyle.GPTJ);
                            assertClose(want.cache(), got.caches()[l], dtype, rope == null, msg + " layer " + l);
                            if (withState) assertArrayEquals(want.state(), got.states()[l], msg + " state layer " + l);
                        }
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void longSequencesSpanManyChunks(String deviceName) {
        // chunks of 8 KiB of rows: 128 tokens for F32 D = 16, 64 for BF16 D = 64: several chunks per row, so the in-place
        // walk crosses chunk boundaries and out of place runs several blocks per row
        Random rnd = new Random(0x10A6);
        try (KernelDevice device = TestDevices.open(deviceName)) {
            int it = 0;
            for (DType dtype : new DType[] {DType.F32, DType.BF16}) {
                for (int rep = 0; rep < 5; rep++, it++) {
                    int d = dtype == DType.F32 ? 16 : 64, b = new int[] {16, 5, 1, 8, 7}[rep], heads = 2, seqs = 1 + rnd.nextInt(3);
                    boolean inPlace = rep % 2 == 0, perHead = rep < 2;
                    int[] lens = new int[seqs], counts = new int[seqs];
                    for (int s = 0; s < seqs; s++) {
                        lens[s] = 200 + rnd.nextInt(500);
                        counts[s] = s == 0 ? lens[s] - 1 - rnd.nextInt(5) : rnd.nextInt(lens[s] + 1);  // seq 0: few gaps, long shifts per chunk
                    }
                    Batch x = randomBatch(rnd, seqs, b, inPlace, counts, lens);
                    KvLayout layout = KvLayout.of(KvLayout.Kind.values()[rep], dtype, x.numBlocks, b, heads, d);
                    int total = x.keepOffsets[seqs], lists = perHead ? heads : 1;
                    int[] keep = new int[total * lists];
                    for (int hh = 0; hh < lists; hh++)
                        for (int s = 0; s < seqs; s++) System.arraycopy(subset(rnd, lens[s], counts[s]), 0, keep, hh * total + x.keepOffsets[s], counts[s]);
                    Object cache = randomData(dtype, (int) layout.elements(), rnd);
                    float[] state = new float[x.numBlocks * b * heads];
                    for (int i = 0; i < state.length; i++) state[i] = i;
                    KvCompaction.Rope rope = rep == 1 || rep == 2 ? KvCompaction.Rope.neox(d / 2, 500000f) : null;
                    KvCompaction.Result got = KvCompaction.compact(device, layout, new Object[] {cache}, new float[][] {state}, x.srcTables, x.srcStride,
                            x.dstTables, x.dstStride, x.srcLen, x.keepOffsets, keep, perHead, false, null, rope);
                    KvCompactionReference.Result want = KvCompactionReference.compact(layout, cache, state, x.srcTables, x.srcStride, x.dstTables,
                            x.dstStride, x.keepOffsets, keep, perHead, null, rope != null ? rope.rotaryDim() : 0, 500000, false);
                    String msg = deviceName + " it " + it + " " + layout + " inPlace " + inPlace + " counts " + Arrays.toString(counts);
                    assertClose(want.cache(), got.caches()[0], dtype, rope == null, msg);
                    assertArrayEquals(want.state(), got.states()[0], msg + " state");
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void copyUnitsFollowTheAlignment(String deviceName) {
        // F16, D = 8: 16-byte rows; a cache that starts 2, 4 or 8 bytes into an allocation drops to 2-, 4- or 8-byte units
        KvLayout layout = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION_HND, DType.F16, 6, 3, 2, 8);
        Random rnd = new Random(0xA11);
        short[] cache = (short[]) randomData(DType.F16, (int) layout.elements(), rnd);
        int[] tables = {4, 0, 2, 1, 5, 3};  // two rows of stride 3, in place
        int[] keep = {0, 2, 3, 5, 7, 1, 2, 4, 8};
        int[] offsets = {0, 5, 9};
        int[] lens = {9, 9};
        KvCompactionReference.Result want = KvCompactionReference.compact(layout, cache, null, tables, 3, null, 3, offsets, keep, false, null, 0, 1, false);
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Stream stream = device.defaultStream();
            for (int shift : new int[] {0, 2, 4, 8}) {
                try (Workspace ws = new Workspace(device, stream);
                     DeviceBuffer big = device.alloc(layout.bytes() + 16);
                     DeviceBuffer t = device.alloc(4L * tables.length);
                     DeviceBuffer k = device.alloc(4L * keep.length)) {
                    DeviceBuffer c = big.slice(shift, layout.bytes());
                    assertEquals(shift == 0 ? 16 : shift, KvCompaction.unitBytes(layout, new DeviceBuffer[] {c}), "unit for shift " + shift);
                    KvLayout legacy = KvLayout.of(KvLayout.Kind.LEGACY, DType.F16, 6, 3, 2, 8);  // rows not contiguous: element-wise
                    assertEquals(2, KvCompaction.unitBytes(legacy, new DeviceBuffer[] {big.slice(0, legacy.bytes())}), "legacy unit");
                    device.upload(cache, c, stream);
                    device.upload(tables, t, stream);
                    device.upload(keep, k, stream);
                    KvCompaction.compactOnDevice(layout, new DeviceBuffer[] {c}, null, t, 3, null, 3, lens,
                            new KvCompaction.KeepSets(offsets, k, false, false, null), null, ws, stream).await();
                    short[] got = new short[cache.length];
                    device.download(c, got, stream);
                    stream.synchronize();
                    assertArrayEquals((short[]) want.cache(), got, "shift " + shift);
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void sl4RotationByHand(String deviceName) {
        // one head, D = 2, B = 4; the key of original position 5 is stored post-RoPE as (cos 5, sin 5)
        KvLayout layout = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION, DType.F32, 2, 4, 1, 2);
        float[] cache = new float[(int) layout.elements()];
        int[] table = {1, 0};
        for (int t = 0; t < 6; t++) {
            int p = table[t / 4];
            cache[(int) layout.offset(0, p, t % 4, 0, 0)] = (float) Math.cos(t);
            cache[(int) layout.offset(0, p, t % 4, 0, 1)] = (float) Math.sin(t);
            cache[(int) layout.offset(1, p, t % 4, 0, 0)] = 10 + t;  // values: never rotated
            cache[(int) layout.offset(1, p, t % 4, 0, 1)] = 20 + t;
        }
        try (KernelDevice device = TestDevices.open(deviceName)) {
            float[] out = (float[]) KvCompaction.compact(device, layout, new Object[] {cache}, null, table, 2, null, 2, new int[] {6}, new int[] {0, 3},
                    new int[] {0, 1, 5}, false, false, null, KvCompaction.Rope.neox(2, 10000f)).caches()[0];
            int p = table[0];
            assertEquals(Math.cos(2), out[(int) layout.offset(0, p, 2, 0, 0)], 1e-6, "SL-4 x");
            assertEquals(Math.sin(2), out[(int) layout.offset(0, p, 2, 0, 1)], 1e-6, "SL-4 y");
            assertEquals(0.9092974, out[(int) layout.offset(0, p, 2, 0, 1)], 1e-6, "SL-4 sin 2");
            assertEquals(15f, out[(int) layout.offset(1, p, 2, 0, 0)], "value moved unrotated");
            assertEquals(25f, out[(int) layout.offset(1, p, 2, 0, 1)], "value moved unrotated");
            for (int t = 0; t < 2; t++) {  // kept in place: untouched
                assertEquals((float) Math.cos(t), out[(int) layout.offset(0, p, t, 0, 0)]);
                assertEquals((float) Math.sin(t), out[(int) layout.offset(0, p, t, 0, 1)]);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void rotateThenRotateBackRoundTrips(String deviceName) {
        Random rnd = new Random(0x207A7E);
        try (KernelDevice device = TestDevices.open(deviceName)) {
            for (KvCompaction.RopeStyle style : KvCompaction.RopeStyle.values()) {
                KvLayout layout = KvLayout.of(KvLayout.Kind.FLASH_INFER_HND, DType.F32, 5, 4, 2, 8);
                float[] cache = (float[]) randomData(DType.F32, (int) layout.elements(), rnd);
                int[] table = {3, 0, 4, 1};
                int n = 15;
                int[] keep = new int[n], there = new int[n], back = new int[n];
                for (int i = 0; i < n; i++) {
                    keep[i] = i;
                    there[i] = 1000 + 37 * i;  // every token rotates in place by its own delta
                    back[i] = -there[i];
                }
                KvCompaction.Rope rope = new KvCompaction.Rope(6, 10000f, style);
                float[] rotated = (float[]) KvCompaction.compact(device, layout, new Object[] {cache}, null, table, 4, null, 4, new int[] {n}, new int[] {0, n},
                        keep, false, false, there, rope).caches()[0];
                KvCompactionReference.Result want = KvCompactionReference.compact(layout, cache, null, table, 4, null, 4, new int[] {0, n}, keep, false, there,
                        6, 10000, style == KvCompaction.RopeStyle.GPTJ);
                assertClose(want.cache(), rotated, DType.F32, false, "rotated " + style);
                assertTrue(!Arrays.equals(cache, rotated), "the deltas rotate");
                float[] restored = (float[]) KvCompaction.compact(device, layout, new Object[] {rotated}, null, table, 4, null, 4, new int[] {n},
                        new int[] {0, n}, keep, false, false, back, rope).caches()[0];
                for (int i = 0; i < cache.length; i++) assertEquals(cache[i], restored[i], 1e-5, style + " round trip element " + i);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void badListsAndTablesAreRejectedWithNothingWritten(String deviceName) {
        KvLayout layout = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION, DType.F16, 6, 4, 2, 8);
        Random rnd = new Random(7);
        short[] cache = (short[]) randomData(DType.F16, (int) layout.elements(), rnd);
        float[] state = new float[6 * 4 * 2];
        for (int i = 0; i < state.length; i++) state[i] = i;
        int[] tables = {0, 1, 2, 3, 4, 5};  // two sequences, stride 3
        int[] good = {1, 2, 7, 0, 3};       // seq 0 keeps 3 of 10, seq 1 keeps 2 of 9
        int[][] bad = {{1, 1, 7, 0, 3}, {1, 2, 10, 0, 3}, {-1, 2, 7, 0, 3}, {1, 2, 7, 3, 0}, {1, 2, 7, 0, 9}};
        int[][] badTables = {{0, 6, 2, 3, 4, 5}, {0, 1, 2, -1, 4, 5}};  // a needed source block outside the pool; a needed destination block -1
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Stream stream = device.defaultStream();
            try (Workspace ws = new Workspace(device, stream);
                 DeviceBuffer c = device.alloc(layout.bytes());
                 DeviceBuffer st = device.alloc(4L * state.length);
                 DeviceBuffer t = device.alloc(4L * tables.length);
                 DeviceBuffer k = device.alloc(4L * good.length)) {
                List<int[]> cases = new ArrayList<>();
                for (int[] keep : bad) cases.add(keep);
                cases.add(null);
                cases.add(null);
                for (int ci = 0; ci < cases.size(); ci++) {
                    int[] keep = cases.get(ci) != null ? cases.get(ci) : good;
                    int[] tab = cases.get(ci) != null ? tables : badTables[ci - bad.length];
                    device.upload(cache, c, stream);
                    device.upload(state, st, stream);
                    device.upload(tab, t, stream);
                    device.upload(keep, k, stream);
                    KvCompaction.KeepSets sets = new KvCompaction.KeepSets(new int[] {0, 3, 5}, k, false, false, null);
                    var pending = KvCompaction.compactOnDevice(layout, new DeviceBuffer[] {c}, new DeviceBuffer[] {st}, t, 3, null, 3, new int[] {10, 9}, sets,
                            KvCompaction.Rope.neox(8, 10000f), ws, stream);
                    assertThrows(IllegalArgumentException.class, pending::await, "case " + ci);
                    short[] after = new short[cache.length];
                    float[] stAfter = new float[state.length];
                    device.download(c, after, stream);
                    device.download(st, stAfter, stream);
                    stream.synchronize();
                    assertArrayEquals(cache, after, "case " + ci + ": cache untouched");
                    assertArrayEquals(state, stAfter, "case " + ci + ": state untouched");
                }
                // the good input on the same workspace still goes through
                device.upload(tables, t, stream);
                device.upload(good, k, stream);
                KvCompaction.KeepSets sets = new KvCompaction.KeepSets(new int[] {0, 3, 5}, k, false, false, null);
                KvCompaction.compactOnDevice(layout, new DeviceBuffer[] {c}, null, t, 3, null, 3, new int[] {10, 9}, sets, null, ws, stream).await();
            }
        }
    }

    /** Out of place the chunks run in parallel: a destination block that is one of the row's source blocks is refused. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void outOfPlaceIntoOwnSourceBlockIsRejected(String deviceName) {
        KvLayout layout = KvLayout.of(KvLayout.Kind.FLASH_INFER, DType.F32, 8, 4, 1, 4);
        float[] cache = (float[]) randomData(DType.F32, (int) layout.elements(), new Random(3));
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Stream stream = device.defaultStream();
            try (Workspace ws = new Workspace(device, stream);
                 DeviceBuffer c = device.alloc(layout.bytes());
                 DeviceBuffer c2 = device.alloc(layout.bytes());
                 DeviceBuffer src = device.alloc(4L * 3);
                 DeviceBuffer dst = device.alloc(4L * 2);
                 DeviceBuffer k = device.alloc(4L * 5)) {
                device.upload(cache, c, stream);
                device.upload(new int[] {0, 1, 2}, src, stream);   // 10 tokens in blocks 0, 1, 2
                device.upload(new int[] {5, 1}, dst, stream);      // block 1 is also a source block of the row
                device.upload(new int[] {0, 2, 4, 8, 9}, k, stream);
                KvCompaction.KeepSets sets = new KvCompaction.KeepSets(new int[] {0, 5}, k, false, false, null);
                var pending = KvCompaction.compactOnDevice(layout, new DeviceBuffer[] {c}, null, src, 3, dst, 2, new int[] {10}, sets, null, ws, stream);
                assertThrows(IllegalArgumentException.class, pending::await);
                float[] after = new float[cache.length];
                device.download(c, after, stream);
                stream.synchronize();
                assertArrayEquals(cache, after, "cache untouched");
                device.upload(new int[] {5, 6}, dst, stream);      // fresh blocks: fine
                KvCompaction.compactOnDevice(layout, new DeviceBuffer[] {c}, null, src, 3, dst, 2, new int[] {10}, sets, null, ws, stream).await();
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> KvCompaction.compactOnDevice(layout,
                        new DeviceBuffer[] {c, c}, null, src, 3, dst, 2, new int[] {10}, sets, null, ws, stream));
                assertTrue(e.getMessage().startsWith("layerCaches"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> KvCompaction.compactOnDevice(layout, new DeviceBuffer[] {c, c2},
                        new DeviceBuffer[] {c2, c}, src, 3, dst, 2, new int[] {10}, sets, null, ws, stream));
                assertTrue(e.getMessage().startsWith("layerStates"), e.getMessage());
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void hostChecksNameTheArgument(String deviceName) {
        KvLayout layout = KvLayout.of(KvLayout.Kind.FLASH_INFER, DType.F32, 4, 4, 1, 4);
        float[] cache = new float[(int) layout.elements()];
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Object[] caches = {cache};
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> KvCompaction.compact(device, layout, caches, null,
                    new int[] {0, 1}, 2, null, 2, new int[] {2}, new int[] {0, 3}, new int[] {0, 1, 2}, false, false, null, null));
            assertTrue(e.getMessage().startsWith("keep"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> KvCompaction.compact(device, layout, caches, null, new int[] {0, 1}, 2, null, 2,
                    new int[] {9}, new int[] {0, 1}, new int[] {0}, false, false, null, null));
            assertTrue(e.getMessage().startsWith("srcLen"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> KvCompaction.compact(device, layout, caches, null, new int[] {0, 1}, 2, new int[] {2}, 1,
                    new int[] {8}, new int[] {0, 5}, new int[] {0, 1, 2, 3, 4}, false, false, null, null));
            assertTrue(e.getMessage().startsWith("dstTables"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> KvCompaction.compact(device, layout, caches, null, new int[] {0, 1}, 2, null, 2,
                    new int[] {8}, new int[] {0, 1}, new int[] {0}, false, false, null, KvCompaction.Rope.neox(6, 10000f)));
            assertTrue(e.getMessage().startsWith("rope"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> KvCompaction.Rope.neox(3, 10000f));
        }
    }
}
