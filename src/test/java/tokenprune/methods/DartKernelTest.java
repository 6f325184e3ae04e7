package tokenprune.methods;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.IntStream;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.methods.DartOptions.PivotOrder;
import tokenprune.numeric.Bf16;
import tokenprune.numeric.Fp16;
import tokenprune.reference.CPythonSetOrder;
import tokenprune.reference.DartReference;
import tokenprune.reference.DartReferenceTestData;
import tokenprune.testing.RandomTokens;
import tokenprune.testing.TestDevices;

/**
 * DART's three kernels against the float64 reference, on the simulator under two schedules and on
 * the GPU when present. Results must equal the reference's exactly where its choices are separated
 * by more than the fp32 error ({@link DartReference#separation}); otherwise they must be a valid
 * DART selection within that error ({@link DartReference#checkValid}).
 */
class DartKernelTest {
    private static final double SEPARATED = 1e-4, EPS = 1e-5;

    static java.util.stream.Stream<String> devices() {
        return TestDevices.kernelDevices();
    }

    /** A batch: keys and hidden states with the same sequences, and the image blocks. */
    record Batch(HostTokens keys, HostTokens hidden, ImageSpans images) {
    }

    /** Random sequences {start, imageLength, textLength}; keys dk wide, hidden dh wide, rounded to dtype. */
    static Batch random(Random rnd, int[][] seqs, int dk, int dh, DType dtype) {
        int[] offsets = new int[seqs.length + 1], start = new int[seqs.length], length = new int[seqs.length];
        for (int b = 0; b < seqs.length; b++) {
            start[b] = seqs[b][0];
            length[b] = seqs[b][1];
            offsets[b + 1] = offsets[b] + seqs[b][0] + seqs[b][1] + seqs[b][2];
        }
        int rows = offsets[seqs.length];
        return new Batch(tokens(RandomTokens.gaussian(rnd, rows * dk), TokenLayout.ragged(offsets, dk), dtype),
                tokens(RandomTokens.gaussian(rnd, rows * dh), TokenLayout.ragged(offsets, dh), dtype), ImageSpans.of(start, length));
    }

    static HostTokens tokens(float[] x, TokenLayout layout, DType dtype) {
        return switch (dtype) {
            case F32 -> HostTokens.of(x, layout);
            case F16 -> HostTokens.of(Fp16.fromFloats(x), dtype, layout);
            case BF16 -> HostTokens.of(Bf16.fromFloats(x), dtype, layout);
        };
    }

    /** Checks every sequence of a device result; returns how many were compared exactly. */
    static int check(Batch in, DartOptions o, DartSelection got, String what) {
        int exact = 0;
        for (int b = 0; b < in.images().sequences(); b++) {
            float[][] k = in.keys().set(b), h = in.hidden().set(b);
            int s = in.images().start(b), len = in.images().length(b);
            DartReference.Result mine = new DartReference.Result(got.pivots(b), got.pivotOrder(b), got.keptImage(b), got.recruitedBy(b), got.keep(b));
            String where = what + " sequence " + b + " " + o;
            try {
                DartReference.checkValid(k, h, s, len, o, mine, EPS);
            } catch (AssertionError e) {
                throw new AssertionError(where + ": " + e.getMessage(), e);
            }
            assertArrayEquals(got.keep(b), got.positionIds(b), where + ": position ids are the keep list");
            if (DartReference.separation(k, h, s, len, o) > SEPARATED) {
                DartReference.Result want = DartReference.select(k, h, s, len, o);
                assertArrayEquals(want.pivots(), mine.pivots(), where + ": pivots");
                assertArrayEquals(want.pivotOrder(), mine.pivotOrder(), where + ": pivot order");
                assertArrayEquals(want.keptImage(), mine.keptImage(), where + ": kept image tokens");
                assertArrayEquals(want.recruitedBy(), mine.recruitedBy(), where + ": recruiters");
                assertArrayEquals(want.keep(), mine.keep(), where + ": keep list");
                exact++;
            }
        }
        return exact;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void handCases(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Batch dart1 = fromRows(DartReferenceTestData.dart1Keys(), DartReferenceTestData.dart1Hidden(), 1, 6);
            DartOptions o = DartOptions.of(1, 1, 2);
            DartSelection compat = Dart.select(device, dart1.keys(), dart1.hidden(), dart1.images(), o.officialCompat(true));
            assertArrayEquals(new int[] {3, 8}, compat.pivots(0));
            assertArrayEquals(new int[] {8, 3}, compat.pivotOrder(0), "DART-1: CPython order on the device");
            assertArrayEquals(new int[] {1, 2, 3, 4, 5}, compat.keptImage(0));
            assertArrayEquals(new int[] {3, -1, 8, 3, 8}, compat.recruitedBy(0));
            assertArrayEquals(new int[] {0, 2, 3, 4, 5, 6, 7, 8}, compat.keep(0));
            DartSelection sorted = Dart.select(device, dart1.keys(), dart1.hidden(), dart1.images(), o);
            assertArrayEquals(new int[] {3, 8}, sorted.pivotOrder(0));
            assertArrayEquals(new int[] {0, 1, 2, 3, 5}, sorted.keptImage(0));
            assertArrayEquals(new int[] {8, 3, -1, 8, 3}, sorted.recruitedBy(0));
            assertArrayEquals(new int[] {0, 1, 2, 3, 4, 6, 7, 8}, sorted.keep(0));

            // TOKEN_TOPK = 0 keeps the image pivots only; L = 1 is then valid
            DartSelection pivotsOnly = Dart.select(device, dart1.keys(), dart1.hidden(), dart1.images(), DartOptions.of(2, 2, 0));
            assertArrayEquals(new int[] {3, 6, 8, 7}, pivotsOnly.pivots(0), "image: 9 (token 3), 5 (token 6); text: 7 (token 8), 1 (token 7)");
            assertArrayEquals(new int[] {2, 5}, pivotsOnly.keptImage(0));
            Batch single = fromRows(DartReferenceTestData.dart1Keys(), DartReferenceTestData.dart1Hidden(), 4, 1);
            DartSelection one = Dart.select(device, single.keys(), single.hidden(), single.images(), DartOptions.of(1, 4, 0));
            assertArrayEquals(new int[] {0}, one.keptImage(0));
            assertArrayEquals(new int[] {0, 1, 2, 3, 4, 5, 6, 7, 8}, one.keep(0));
            assertArrayEquals(new int[] {4, 8, 6, 5, 7}, one.pivots(0), "text pivots by |key|: 7, 5, 4, 1");
        }
    }

    /** Pivots placed by construction (distinct large key norms): the device's CPython emulation against the Java one. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void cpythonSetOrderOnTheDevice(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Random rnd = new Random(2024);
            // DART-3's pivots: s = 35, L = 576, text up to 643
            int[][] dart3 = {{429, 465, 76, 300}, {643, 642, 636, 630}};
            placedPivots(device, rnd, new int[][] {{35, 576, 33}}, new int[][][] {dart3}, 1, "DART-3");
            assertArrayEquals(new int[] {642, 643, 76, 429, 300, 465, 630, 636}, CPythonSetOrder.iterationOrder(new int[] {429, 465, 76, 300, 643, 642, 636, 630}));
            // {5, 2} + {66}: 66 collides at slot 2, jumps with perturb 2 to 5 (taken), then 2, then 3 -> [2, 66, 5]
            placedPivots(device, rnd, new int[][] {{1, 20, 50}}, new int[][][] {{{5, 2}, {66}}}, 2, "perturbation chain");
            assertArrayEquals(new int[] {2, 66, 5}, CPythonSetOrder.iterationOrder(new int[] {5, 2, 66}));
            // random placements, 16 sequences per call (a random set of 8 distinct positions below 600 exposes a
            // wrong perturbation shift about one time in six): 8 pivots (the table grows to 32 at the 5th key),
            // 19 (to 128 at the 19th), 32, 1, uneven splits
            for (int[] split : new int[][] {{4, 4}, {5, 14}, {16, 16}, {30, 2}, {1, 0}, {3, 6}}) {
                int pImg = split[0], pTxt = split[1], sequences = 16;
                int[][] seqs = new int[sequences][];
                int[][][] pivots = new int[sequences][][];
                for (int b = 0; b < sequences; b++) {
                    int start = rnd.nextInt(500), length = pImg + pImg + pTxt + rnd.nextInt(30), text = Math.max(pTxt, 1) + rnd.nextInt(20);
                    seqs[b] = new int[] {start, length, text};
                    pivots[b] = new int[][] {distinct(rnd, pImg, start, start + length), distinct(rnd, pTxt, start + length, start + length + text)};
                }
                placedPivots(device, rnd, seqs, pivots, 1, "split " + Arrays.toString(split));
            }
        }
    }

    private static void placedPivots(KernelDevice device, Random rnd, int[][] seqs, int[][][] pivots, int topk, String what) {
        Batch in = random(rnd, seqs, 1, 5, DType.F32);
        float[] keys = (float[]) in.keys().data();
        int[] offsets = in.keys().layout().rowOffsets();
        for (int i = 0; i < keys.length; i++) keys[i] = rnd.nextFloat() * 100;  // every other |key| < 100
        int pImg = pivots[0][0].length, pTxt = pivots[0][1].length;
        for (int b = 0; b < seqs.length; b++) {
            for (int m = 0; m < pImg; m++) keys[offsets[b] + pivots[b][0][m]] = 1000 - m;  // top-k order by construction
            for (int m = 0; m < pTxt; m++) keys[offsets[b] + pivots[b][1][m]] = -(1000 - m);
        }
        for (PivotOrder order : PivotOrder.values()) {
            DartOptions o = DartOptions.of(pImg, pTxt, topk).withPivotOrder(order);
            DartSelection got = Dart.select(device, in.keys(), in.hidden(), in.images(), o);
            for (int b = 0; b < seqs.length; b++) {
                int[] list = IntStream.concat(IntStream.of(pivots[b][0]), IntStream.of(pivots[b][1])).toArray();
                assertArrayEquals(list, got.pivots(b), what + " sequence " + b + ": pivots in top-k order");
                int[] want = order == PivotOrder.OFFICIAL_COMPAT ? CPythonSetOrder.iterationOrder(list) : IntStream.of(list).sorted().toArray();
                assertArrayEquals(want, got.pivotOrder(b), what + " sequence " + b + " " + order + " of " + Arrays.toString(list));
            }
            check(in, o, got, what);
        }
    }

    private static int[] distinct(Random rnd, int count, int lo, int hi) {
        List<Integer> all = new ArrayList<>();
        for (int i = lo; i < hi; i++) all.add(i);
        java.util.Collections.shuffle(all, rnd);
        return all.subList(0, count).stream().mapToInt(Integer::intValue).toArray();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void randomInputsOfAwkwardShapes(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Random rnd = new Random(577);
            int exact = 0, compared = 0;
            // {seqs {start, L, text}}, dk, dh, P_img, P_txt, TOKEN_TOPK
            Object[][] cases = {
                {new int[][] {{0, 13, 1}}, 37, 19, 2, 1, 3},                         // prime L, one text token, element-wise loads
                {new int[][] {{35, 577, 17}}, 130, 264, 4, 4, 16},                   // LLaVA-like: 577 image tokens, 16-byte loads, 2 K chunks
                {new int[][] {{3, 31, 17}, {0, 5, 1}, {12, 70, 5}}, 64, 67, 1, 1, 2}, // ragged batch of 3 in one call
                {new int[][] {{7, 40, 9}}, 8, 3, 12, 9, 1},                          // 21 pivots: three pivot groups in the cosine kernel
            };
            for (Object[] c : cases) {
                int[][] seqs = (int[][]) c[0];
                int dk = (int) c[1], dh = (int) c[2];
                Batch in = random(rnd, seqs, dk, dh, DType.F32);
                for (PivotOrder order : PivotOrder.values()) {
                    DartOptions o = new DartOptions((int) c[3], (int) c[4], (int) c[5], order);
                    String what = deviceName + " " + Arrays.deepToString(seqs) + " dk=" + dk + " dh=" + dh;
                    exact += check(in, o, Dart.select(device, in.keys(), in.hidden(), in.images(), o), what);
                    compared += seqs.length;
                }
            }
            assertTrue(exact >= compared / 2, "only " + exact + " of " + compared + " results were separated enough to compare exactly");
        }
    }

    /**
     * Exact ties everywhere: integer keys (L1 norms tie) and hidden rows drawn from {e1, e2, e3, -e1}
     * (every cosine is exactly -1, 0 or 1 in any precision). Both kernels must break them like the
     * reference: larger norm / smaller cosine first, then the lower position.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void tiesGoToTheLowerPosition(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Random rnd = new Random(11);
            float[][] axes = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {-1, 0, 0}};
            int[][] seqs = {{2, 40, 6}, {0, 33, 9}, {5, 64, 3}};
            Batch in = random(rnd, seqs, 2, 3, DType.F32);
            float[] keys = (float[]) in.keys().data(), hidden = (float[]) in.hidden().data();
            for (int i = 0; i < keys.length; i++) keys[i] = rnd.nextInt(5) - 2;
            for (int r = 0; r < hidden.length / 3; r++) System.arraycopy(axes[rnd.nextInt(4)], 0, hidden, 3 * r, 3);
            for (PivotOrder order : PivotOrder.values()) {
                DartOptions o = new DartOptions(3, 2, 5, order);
                DartSelection got = Dart.select(device, in.keys(), in.hidden(), in.images(), o);
                for (int b = 0; b < seqs.length; b++) {
                    DartReference.Result want = DartReference.select(in.keys().set(b), in.hidden().set(b), seqs[b][0], seqs[b][1], o);
                    String what = deviceName + " " + order + " sequence " + b;
                    assertArrayEquals(want.pivots(), got.pivots(b), what + ": pivots");
                    assertArrayEquals(want.pivotOrder(), got.pivotOrder(b), what + ": pivot order");
                    assertArrayEquals(want.keptImage(), got.keptImage(b), what + ": kept");
                    assertArrayEquals(want.recruitedBy(), got.recruitedBy(b), what + ": recruiters");
                    assertArrayEquals(want.keep(), got.keep(b), what + ": keep list");
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void halfPrecisionInputsMatchTheReferenceOnTheRoundedValues(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            for (DType dtype : new DType[] {DType.F16, DType.BF16}) {
                for (int[] dims : new int[][] {{72, 136}, {70, 33}}) {  // 16-byte loads / element-wise loads
                    Random rnd = new Random(dtype.ordinal() * 100 + dims[1]);
                    Batch in = random(rnd, new int[][] {{4, 70, 9}, {0, 45, 3}}, dims[0], dims[1], dtype);
                    DartOptions o = DartOptions.of(3, 2, 8).officialCompat(dims[1] == 33);
                    check(in, o, Dart.select(device, in.keys(), in.hidden(), in.images(), o), deviceName + " " + dtype + " " + Arrays.toString(dims));
                }
            }
            // the two inputs may differ in dtype: fp16 keys, fp32 hidden states
            Batch half = random(new Random(12), new int[][] {{6, 50, 7}}, 24, 40, DType.F16);
            Batch mixed = new Batch(half.keys(), tokens(RandomTokens.gaussian(new Random(13), 63 * 40), TokenLayout.uniform(1, 63, 40), DType.F32),
                    half.images());
            DartOptions o = DartOptions.of(2, 3, 4);
            check(mixed, o, Dart.select(device, mixed.keys(), mixed.hidden(), mixed.images(), o), deviceName + " f16 keys, f32 hidden");
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void rowStridesSkipPaddingAndDeviceOutputsMatch(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Random rnd = new Random(8);
            Batch packed = random(rnd, new int[][] {{5, 50, 6}, {2, 33, 4}}, 12, 20, DType.F32);
            int rows = packed.keys().layout().totalRows();
            TokenLayout kl = packed.keys().layout().withRowStride(17), hl = packed.hidden().layout().withRowStride(24);
            float[] kp = pad((float[]) packed.keys().data(), rows, 12, 17), hp = pad((float[]) packed.hidden().data(), rows, 20, 24);
            DartOptions o = DartOptions.of(2, 2, 5).officialCompat(true);
            DartSelection want = Dart.select(device, packed.keys(), packed.hidden(), packed.images(), o);
            check(packed, o, want, deviceName + " packed");

            Stream stream = device.defaultStream();
            int[] keepOffsets = Dart.keepOffsets(kl, packed.images(), o);
            int total = keepOffsets[2], retained = o.retained();
            try (Workspace ws = new Workspace(device, stream);
                 DeviceBuffer k = device.alloc(4L * kp.length);
                 DeviceBuffer h = device.alloc(4L * hp.length);
                 DeviceBuffer kept = device.alloc(8L * retained);
                 DeviceBuffer keep = device.alloc(4L * total);
                 DeviceBuffer pos = device.alloc(8L * total);
                 DeviceBuffer order = device.alloc(4L * 2 * o.pivots())) {
                device.upload(kp, k, stream);
                device.upload(hp, h, stream);
                DartOutputs out = DartOutputs.keptImage(kept).withKeepList(keep).withPositionIds(pos).withPivotOrder(order);
                for (int call = 0; call < 2; call++) {  // the workspace serves repeated calls
                    Dart.selectOnDevice(new DeviceTokens(k, DType.F32, kl), new DeviceTokens(h, DType.F32, hl), packed.images(), o, out, ws, stream).await();
                    int[] keptHost = new int[2 * retained], keepHost = new int[total], posHost = new int[2 * total], orderHost = new int[2 * o.pivots()];
                    device.download(kept, keptHost, stream);
                    device.download(keep, keepHost, stream);
                    device.download(pos, posHost, stream);
                    device.download(order, orderHost, stream);
                    assertArrayEquals(want.keptImage(), keptHost, "call " + call);
                    assertArrayEquals(want.keepList(), keepHost, "call " + call);
                    assertArrayEquals(want.pivotOrder(), orderHost, "call " + call);
                    for (int i = 0; i < total; i++) {
                        assertEquals(keepHost[i], posHost[2 * i], "int64 position id " + i + " (low word)");
                        assertEquals(0, posHost[2 * i + 1], "int64 position id " + i + " (high word)");
                    }
                }
            }
        }
    }

    private static float[] pad(float[] dense, int rows, int d, int stride) {
        float[] p = new float[(rows - 1) * stride + d];
        Arrays.fill(p, Float.NaN);  // padding is never read
        for (int r = 0; r < rows; r++) System.arraycopy(dense, r * d, p, r * stride, d);
        return p;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void nonFiniteInputIsRejectedAndNothingIsWritten(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Random rnd = new Random(99);
            int[][] seqs = {{3, 20, 5}, {2, 24, 4}};
            Batch in = random(rnd, seqs, 6, 10, DType.F32);
            DartOptions o = DartOptions.of(2, 1, 3);
            float[] keys = (float[]) in.keys().data(), hidden = (float[]) in.hidden().data();
            int second = in.keys().layout().rowOffsets()[1];

            keys[(second + 2 + 24 + 3) * 6 + 4] = Float.NaN;  // sequence 1, text token 29
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Dart.select(device, in.keys(), in.hidden(), in.images(), o));
            assertTrue(e.getMessage().contains("keys: non-finite value at sequence 1, token 29, feature 4"), e.getMessage());
            keys[(second + 2 + 24 + 3) * 6 + 4] = 0.5f;

            hidden[(3 + 20 + 4) * 10 + 9] = Float.NEGATIVE_INFINITY;  // sequence 0, last text token: not a pivot's row, still rejected
            e = assertThrows(IllegalArgumentException.class, () -> Dart.select(device, in.keys(), in.hidden(), in.images(), o));
            assertTrue(e.getMessage().contains("hidden: non-finite value at sequence 0, token 27, feature 9"), e.getMessage());
            hidden[(3 + 20 + 4) * 10 + 9] = 0.25f;

            DartSelection clean = Dart.select(device, in.keys(), in.hidden(), in.images(), o);
            hidden[1 * 10 + 2] = Float.NaN;  // in the prefix of sequence 0: never read
            keys[(second + 1) * 6] = Float.POSITIVE_INFINITY;
            DartSelection withPrefixJunk = Dart.select(device, in.keys(), in.hidden(), in.images(), o);
            assertArrayEquals(clean.keepList(), withPrefixJunk.keepList(), "the prefix is not read");

            Stream stream = device.defaultStream();
            int[] keepOffsets = Dart.keepOffsets(in.keys().layout(), in.images(), o);
            int total = keepOffsets[2], retained = o.retained();
            try (Workspace ws = new Workspace(device, stream);
                 DeviceBuffer k = device.alloc(4L * keys.length);
                 DeviceBuffer h = device.alloc(4L * hidden.length);
                 DeviceBuffer kept = device.alloc(8L * retained);
                 DeviceBuffer by = device.alloc(8L * retained);
                 DeviceBuffer keep = device.alloc(4L * total);
                 DeviceBuffer pos = device.alloc(8L * total);
                 DeviceBuffer order = device.alloc(8L * o.pivots())) {
                DartOutputs out = DartOutputs.keptImage(kept).withRecruitedBy(by).withKeepList(keep).withPositionIds(pos).withPivotOrder(order);
                DeviceBuffer[] all = {kept, by, keep, pos, order};
                for (DeviceBuffer b : all) device.fill(b, 0x7b, stream);
                hidden[(second + 2 + 7) * 10 + 3] = Float.NaN;  // sequence 1, image token 7
                device.upload(keys, k, stream);
                device.upload(hidden, h, stream);
                DeviceTokens kt = new DeviceTokens(k, DType.F32, in.keys().layout()), ht = new DeviceTokens(h, DType.F32, in.hidden().layout());
                Pending p = Dart.selectOnDevice(kt, ht, in.images(), o, out, ws, stream);
                assertThrows(IllegalArgumentException.class, p::await);
                for (DeviceBuffer b : all) {
                    int[] v = new int[(int) (b.bytes() / 4)];
                    device.download(b, v, stream);
                    assertTrue(IntStream.of(v).allMatch(x -> x == 0x7b7b7b7b), "an output was written despite the rejection");
                }
                hidden[(second + 2 + 7) * 10 + 3] = 1f;  // the same workspace serves the next, valid call
                device.upload(hidden, h, stream);
                Dart.selectOnDevice(kt, ht, in.images(), o, out, ws, stream).await();
                int[] keptHost = new int[2 * retained];
                device.download(kept, keptHost, stream);
                DartSelection want = Dart.select(device, in.keys(), in.hidden(), in.images(), o);
                assertArrayEquals(want.keptImage(), keptHost);
            }
        }
    }

    private static Batch fromRows(float[][] keys, float[][] hidden, int start, int length) {
        int n = keys.length, dk = keys[0].length, dh = hidden[0].length;
        float[] k = new float[n * dk], h = new float[n * dh];
        for (int i = 0; i < n; i++) {
            System.arraycopy(keys[i], 0, k, i * dk, dk);
            System.arraycopy(hidden[i], 0, h, i * dh, dh);
        }
        return new Batch(HostTokens.of(k, n, dk), HostTokens.of(h, n, dh), ImageSpans.uniform(1, start, length));
    }
}
