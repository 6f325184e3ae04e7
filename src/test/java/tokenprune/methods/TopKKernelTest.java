package tokenprune.methods;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import java.util.stream.IntStream;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.reference.TopKReference;
import tokenprune.testing.TestDevices;

/**
 * tp_topk_select and tp_threshold_select against the reference, on the simulator under two schedules
 * and on the GPU when present. Selections are exact by construction, so every comparison is exact
 * equality, ties included (inputs deliberately contain many ties, both zeros, denormals and extremes).
 */
class TopKKernelTest {
    private static final int SENTINEL = 0x7b7b7b7b;

    static java.util.stream.Stream<String> devices() {
        return TestDevices.kernelDevices();
    }

    /** Score distributions: distinct, heavy ties, special values, clustered (same high key bytes). */
    static float[] scores(int kind, Random rnd, int n) {
        float[] specials = {0f, -0f, 1f, -1f, Float.MAX_VALUE, -Float.MAX_VALUE, Float.MIN_VALUE, -Float.MIN_VALUE, 1e-40f, -1e-40f, 0.5f, 3e38f};
        float[] s = new float[n];
        for (int i = 0; i < n; i++) {
            s[i] = switch (kind) {
                case 0 -> (float) rnd.nextGaussian();
                case 1 -> rnd.nextInt(7) - 3;
                case 2 -> rnd.nextInt(3) == 0 ? (float) rnd.nextGaussian() : specials[rnd.nextInt(specials.length)];
                default -> 1e-3f + rnd.nextInt(4000) * 1e-10f;  // attention-like: the top 2-3 key bytes are shared
            };
        }
        return s;
    }

    static int[] keepCounts(int n) {
        return IntStream.of(0, 1, 2, n / 3, n - 1, n).filter(k -> k >= 0 && k <= n).distinct().toArray();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void randomRowsOfAwkwardSizes(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Stream stream = device.defaultStream();
            try (Workspace ws = new Workspace(device, stream)) {
                long seed = 500;
                for (int n : new int[] {1, 2, 31, 33, 577, 5000}) {
                    for (int kind = 0; kind < 4; kind++) {
                        Random rnd = new Random(++seed);
                        float[] s = scores(kind, rnd, n);
                        for (int k : keepCounts(n)) {
                            String what = deviceName + " n=" + n + " kind=" + kind + " k=" + k + " seed=" + seed;
                            int[] rows = {0, n}, keeps = {0, k};
                            Result got = runSelect(device, ws, s, rows, keeps);
                            int[] want = TopKReference.select(s, k);
                            assertArrayEquals(want, got.kept, what);
                            assertArrayEquals(TopKReference.mask(rows, keeps, want), got.mask, what + " mask");
                        }
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void raggedBatchWithDifferentCountsInOneLaunch(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Stream stream = device.defaultStream();
            try (Workspace ws = new Workspace(device, stream)) {
                int[] rows = {0, 577, 610, 1900};        // 577, 33 and 1290 scores
                int[][] keepSets = {{0, 57, 20, 1190}, {0, 0, 33, 34}, {0, 577, 1, 1290}};  // {_, k0, k1, k2}
                for (int kind = 0; kind < 4; kind++) {
                    float[] s = scores(kind, new Random(40 + kind), rows[3]);
                    for (int[] ks : keepSets) {
                        int[] keeps = {0, ks[1], ks[1] + ks[2], ks[1] + ks[2] + ks[3]};
                        String what = deviceName + " kind=" + kind + " keeps=" + Arrays.toString(keeps);
                        Result got = runSelect(device, ws, s, rows, keeps);
                        int[] want = TopKReference.select(s, rows, keeps);
                        assertArrayEquals(want, got.kept, what);
                        assertArrayEquals(TopKReference.mask(rows, keeps, want), got.mask, what + " mask");
                    }
                }
                // the host API on the same data: a ratio rule, checked against the reference row by row
                float[] s = scores(1, new Random(7), rows[3]);
                Selection sel = TopK.select(device, s, rows, KeepRule.ratio(0.25));
                assertArrayEquals(new int[] {0, 144, 152, 474}, sel.keepOffsets(), "round-half-even(0.25 n): 144.25, 8.25, 322.5 -> 322");
                for (int b = 0; b < 3; b++) {
                    int k = sel.keepOffsets()[b + 1] - sel.keepOffsets()[b];
                    assertArrayEquals(TopKReference.select(TopKReference.row(s, rows, b), k), sel.kept(b), deviceName + " row " + b);
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void longRowsWork(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Stream stream = device.defaultStream();
            try (Workspace ws = new Workspace(device, stream)) {
                int n = 65536;
                for (int kind : new int[] {1, 3}) {
                    float[] s = scores(kind, new Random(65 + kind), n);
                    for (int k : new int[] {1000, n / 2 + 1}) {
                        Result got = runSelect(device, ws, s, new int[] {0, n}, new int[] {0, k});
                        assertArrayEquals(TopKReference.select(s, k), got.kept, deviceName + " n=65536 kind=" + kind + " k=" + k);
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void thresholdSelection(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            int[] rows = {0, 1, 34, 611, 5611};  // 1, 33, 577 and 5000 scores
            for (int kind = 0; kind < 4; kind++) {
                float[] s = scores(kind, new Random(90 + kind), rows[4]);
                for (float t : new float[] {0f, -0f, 1f, -3f, 1e-3f + 2000e-10f, 1e30f, -Float.MAX_VALUE}) {
                    Selection got = TopK.select(device, s, rows, KeepRule.threshold(t));
                    for (int b = 0; b < 4; b++) {
                        assertArrayEquals(TopKReference.threshold(TopKReference.row(s, rows, b), t), got.kept(b),
                                deviceName + " kind=" + kind + " t=" + t + " row " + b);
                    }
                }
            }
            // the device API: counts, unpacked kept lists at the row offsets, mask; untouched tail
            Stream stream = device.defaultStream();
            float[] s = {0.5f, 0.1f, 0.7f, /* row 1 */ 0.2f, /* row 2 */ 0.5f, 0.5f};
            int[] r = {0, 3, 4, 6};
            try (Workspace ws = new Workspace(device, stream);
                 DeviceBuffer sd = device.alloc(4L * s.length);
                 DeviceBuffer kept = device.alloc(4L * s.length);
                 DeviceBuffer counts = device.alloc(12);
                 DeviceBuffer mask = device.alloc(s.length)) {
                device.upload(s, sd, stream);
                device.fill(kept, 0x7b, stream);
                TopK.thresholdOnDevice(device, sd, r, 0.5f, kept, counts, mask, ws, stream).await();
                int[] c = new int[3], k = new int[6];
                byte[] m = new byte[6];
                device.download(counts, c, stream);
                device.download(kept, k, stream);
                device.download(mask, m, stream);
                assertArrayEquals(new int[] {2, 0, 2}, c);
                assertArrayEquals(new int[] {0, 2, SENTINEL, SENTINEL, 0, 1}, k);
                assertArrayEquals(new byte[] {1, 0, 1, 0, 1, 1}, m);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void handCheckableCases(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            assertArrayEquals(new int[] {1, 2, 4}, TopK.select(device, new float[] {1, 3, 3, 2, 3}, KeepRule.keep(3)).kept());
            assertArrayEquals(new int[] {0}, TopK.select(device, new float[] {-0.0f, 0.0f, -1f}, KeepRule.keep(1)).kept());
            assertArrayEquals(new int[] {1}, TopK.select(device, new float[] {-1f, -0.0f, 0.0f}, KeepRule.keep(1)).kept());
            assertArrayEquals(new int[] {0, 1, 2}, TopK.select(device, new float[] {2, 2, 2, 2, 2}, KeepRule.keep(3)).kept());
            float[] extremes = {Float.MAX_VALUE, -Float.MAX_VALUE, 1e30f, -1e30f, Float.MIN_VALUE, -Float.MIN_VALUE, 0f};
            assertArrayEquals(new int[] {0, 2, 4, 5, 6}, TopK.select(device, extremes, KeepRule.keep(5)).kept());
            assertArrayEquals(new int[] {0}, TopK.select(device, new float[] {7f}, KeepRule.keep(1)).kept());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void nonFiniteScoresAreRejectedAndTheirRowsAreNotWritten(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            float[] s = scores(0, new Random(3), 100);
            s[37] = Float.NaN;
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TopK.select(device, s, KeepRule.keep(4)));
            assertTrue(e.getMessage().contains("index 37"), e.getMessage());
            int[] rows = {0, 40, 70, 100};
            e = assertThrows(IllegalArgumentException.class, () -> TopK.select(device, s, rows, KeepRule.threshold(0f)));
            assertTrue(e.getMessage().contains("row 0, index 37"), e.getMessage());

            Stream stream = device.defaultStream();
            try (Workspace ws = new Workspace(device, stream);
                 DeviceBuffer sd = device.alloc(400);
                 DeviceBuffer kept = device.alloc(400);  // the threshold call needs an int per score
                 DeviceBuffer mask = device.alloc(100);
                 DeviceBuffer counts = device.alloc(12)) {
                for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
                    s[37] = 0f;
                    s[55] = bad;  // row 1 of rows
                    device.upload(s, sd, stream);
                    device.fill(kept, 0x7b, stream);
                    device.fill(mask, 0x7b, stream);
                    // one row: nothing at all is written
                    Pending p = TopK.selectOnDevice(device, sd, new int[] {0, 100}, new int[] {0, 12}, kept, mask, ws, stream);
                    assertThrows(IllegalArgumentException.class, p::await);
                    assertUntouched(device, kept, mask, 0, 12, 0, 100, stream, deviceName + " " + bad);
                    // a batch: the row holding the bad score is not written
                    p = TopK.selectOnDevice(device, sd, rows, new int[] {0, 4, 8, 12}, kept, mask, ws, stream);
                    assertThrows(IllegalArgumentException.class, p::await);
                    assertUntouched(device, kept, mask, 4, 8, 40, 70, stream, deviceName + " batch " + bad);
                    device.fill(kept, 0x7b, stream);
                    device.fill(counts, 0x7b, stream);
                    p = TopK.thresholdOnDevice(device, sd, rows, 0f, kept, counts, mask, ws, stream);
                    assertThrows(IllegalArgumentException.class, p::await);
                    int[] c = new int[3];
                    device.download(counts, c, stream);
                    assertEquals(SENTINEL, c[1], "count of the rejected row untouched");
                }
                // the same workspace serves the next, valid call
                s[55] = 0.25f;
                device.upload(s, sd, stream);
                TopK.selectOnDevice(device, sd, rows, new int[] {0, 4, 8, 12}, kept, null, ws, stream).await();
                int[] k = new int[12];
                device.download(kept, k, stream);
                assertArrayEquals(TopKReference.select(s, rows, new int[] {0, 4, 8, 12}), k);
            }
        }
    }

    private static void assertUntouched(KernelDevice device, DeviceBuffer kept, DeviceBuffer mask, int keptFrom, int keptTo, int maskFrom,
                                        int maskTo, Stream stream, String what) {
        int[] k = new int[12];
        byte[] m = new byte[100];
        device.download(kept, k, stream);
        device.download(mask, m, stream);
        for (int i = keptFrom; i < keptTo; i++) assertEquals(SENTINEL, k[i], what + ": kept[" + i + "] untouched");
        for (int i = maskFrom; i < maskTo; i++) assertEquals(0x7b, m[i], what + ": mask[" + i + "] untouched");
    }

    record Result(int[] kept, byte[] mask) {
    }

    /** Runs tp_topk_select through the device API into sentinel-filled outputs. */
    static Result runSelect(KernelDevice device, Workspace ws, float[] s, int[] rows, int[] keeps) {
        Stream stream = device.defaultStream();
        int total = keeps[keeps.length - 1];
        try (DeviceBuffer sd = device.alloc(4L * s.length);
             DeviceBuffer kept = device.alloc(4L * total + 4);
             DeviceBuffer mask = device.alloc(s.length)) {
            device.upload(s, sd, stream);
            device.fill(kept, 0x7b, stream);
            device.fill(mask, 0x7b, stream);
            TopK.selectOnDevice(device, sd, rows, keeps, kept, mask, ws, stream).await();
            int[] k = new int[total + 1];
            byte[] m = new byte[s.length];
            device.download(kept, k, stream);
            device.download(mask, m, stream);
            assertEquals(SENTINEL, k[total], "nothing written past the last row's kept range");
            return new Result(Arrays.copyOf(k, total), m);
        }
    }
}
