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
import tokenprune.numeric.Bf16;
import tokenprune.numeric.Fp16;
import tokenprune.reference.CosineDistanceReference;
import tokenprune.reference.DivPruneReference;
import tokenprune.testing.RandomTokens;

/**
 * DivPrune's two kernels (cosine distance + greedy selection) against the float64 reference, on
 * the simulator under two schedules and on the GPU when present. Selections are compared exactly
 * where the reference's choices are separated by more than the fp32 error, and otherwise checked
 * to be a valid greedy trajectory within 1e-5 of the reference (near-ties may legitimately go
 * either way in fp32).
 */
class DivPruneKernelTest {
    private static final double SEPARATED = 1e-4, EPS = 1e-5;

    static java.util.stream.Stream<String> devices() {
        return tokenprune.testing.TestDevices.kernelDevices();
    }

    private static KernelDevice open(String name) {
        return tokenprune.testing.TestDevices.open(name);
    }

    /** Runs one set through the device with k = 1 and k = N in both modes and checks each result. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void randomSetsOfAwkwardShapes(String deviceName) {
        try (KernelDevice device = open(deviceName)) {
            long seed = 1000;
            for (int n : new int[] {1, 2, 31, 33, 577}) {
                for (int d : new int[] {1, 3, 64, 130}) {
                    Random rnd = new Random(++seed);
                    float[] x = RandomTokens.gaussian(rnd, n * d);
                    HostTokens tokens = HostTokens.of(x, n, d);
                    double[][] dist = CosineDistanceReference.distances(tokens.set(0));
                    for (int k : n == 1 ? new int[] {1} : new int[] {1, Math.min(n, 5), n}) {
                        for (boolean compat : new boolean[] {false, true}) {
                            if (compat && k == n && n > 1) continue;  // compat with k = N re-selects on near-zero self-distances: ties by design
                            String what = deviceName + " n=" + n + " d=" + d + " k=" + k + " compat=" + compat + " seed=" + seed;
                            Selection s = DivPrune.select(device, tokens, DivPruneOptions.keep(k).officialCompat(compat).withOrder(true));
                            checkAgainstReference(dist, s.order(0), s.kept(0), k, compat, what);
                        }
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void raggedBatchInOneCall(String deviceName) {
        try (KernelDevice device = open(deviceName)) {
            int d = 37;
            int[] offsets = {0, 31, 32, 102};  // sets of 31, 1 and 70 tokens
            Random rnd = new Random(77);
            float[] x = RandomTokens.gaussian(rnd, offsets[3] * d);
            HostTokens tokens = HostTokens.of(x, TokenLayout.ragged(offsets, d));
            Selection s = DivPrune.select(device, tokens, DivPruneOptions.ratio(0.6).withOrder(true));
            assertArrayEquals(new int[] {0, 19, 20, 62}, s.keepOffsets(), "round(0.6 n) per set: 18.6 -> 19, 0.6 -> 1, 42");
            for (int b = 0; b < 3; b++) {
                double[][] dist = CosineDistanceReference.distances(tokens.set(b));
                int k = s.keepOffsets()[b + 1] - s.keepOffsets()[b];
                checkAgainstReference(dist, s.order(b), s.kept(b), k, false, deviceName + " set " + b);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void halfPrecisionInputsMatchTheReferenceOnTheRoundedValues(String deviceName) {
        try (KernelDevice device = open(deviceName)) {
            // d = 70: element-wise loads, two K slices; d = 136: 16-byte loads, three K slices, 3 x 3 tiles
            for (int[] shape : new int[][] {{45, 70}, {130, 136}}) for (DType dtype : new DType[] {DType.F16, DType.BF16}) {
                int n = shape[0], d = shape[1];
                float[] x = RandomTokens.gaussian(new Random(dtype.ordinal() + 5 + n), n * d);
                short[] bits = dtype == DType.F16 ? Fp16.fromFloats(x) : Bf16.fromFloats(x);
                HostTokens tokens = HostTokens.of(bits, dtype, TokenLayout.uniform(1, n, d));
                double[][] dist = CosineDistanceReference.distances(tokens.set(0));  // the rounded values, exactly
                Selection s = DivPrune.select(device, tokens, DivPruneOptions.keep(12).withOrder(true));
                checkAgainstReference(dist, s.order(0), s.kept(0), 12, false, deviceName + " " + dtype + " n=" + n + " d=" + d);
                float[] got = CosineDistance.compute(device, tokens)[0];
                for (int i = 0; i < n; i++) {
                    for (int j = 0; j < n; j++) {
                        assertEquals(dist[i][j], got[i * n + j], 1e-5, deviceName + " " + dtype + " distance [" + i + "][" + j + "]");
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void handCheckableCases(String deviceName) {
        try (KernelDevice device = open(deviceName)) {
            // DP-1
            float[] dp1 = {1, 0, 0, 1, -1, 0, 1, 1};
            assertArrayEquals(new int[] {2, 0}, order(device, dp1, 2, 2, false));
            assertArrayEquals(new int[] {2, 0, 1}, order(device, dp1, 2, 3, false));
            assertArrayEquals(new int[] {0, 1, 2, 3}, kept(device, dp1, 2, 4, false));
            // DP-2: first-index ties
            float[] dp2 = {1, 0, 0, 1, -1, 0, 0, -1};
            assertArrayEquals(new int[] {0, 2, 1, 3}, order(device, dp2, 2, 4, false));
            // DP-3: duplicates; compat re-selects token 0, default takes 1
            float[] dp3 = {1, 0, 1, 0, 0, 1};
            assertArrayEquals(new int[] {2, 0, 0}, order(device, dp3, 2, 3, true));
            assertArrayEquals(new int[] {0, 0, 2}, kept(device, dp3, 2, 3, true));
            assertArrayEquals(new int[] {2, 0, 1}, order(device, dp3, 2, 3, false));
            // DP-5
            float[] dp5 = {1, 0, 0, 0.9f, 0.1f, 0, 0, 1, 0, 0, 0.8f, 0.6f, 0, 0, 1, -1, 0.2f, 0};
            assertArrayEquals(new int[] {5, 0, 4, 2}, order(device, dp5, 3, 4, false));
            assertArrayEquals(new int[] {0, 2, 4, 5}, kept(device, dp5, 3, 4, false));
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void zeroRowsAreAtDistanceOneFromEverything(String deviceName) {
        try (KernelDevice device = open(deviceName)) {
            int n = 5, d = 3;
            float[] x = {1, 2, 3, 0, 0, 0, -1, 0, 2, 0, 0, 0, 4, -2, 1};
            float[] dist = CosineDistance.compute(device, HostTokens.of(x, n, d))[0];
            for (int j = 0; j < n; j++) {
                assertEquals(1f, dist[n + j], 0f, "row 1 is zero: distance to " + j);
                assertEquals(1f, dist[j * n + 3], 0f, "row 3 is zero: distance from " + j);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void cosineDistancesMatchTheReference(String deviceName) {
        try (KernelDevice device = open(deviceName)) {
            for (int[] shape : new int[][] {{1, 1}, {2, 5}, {65, 17}, {130, 33}}) {
                int n = shape[0], d = shape[1];
                float[] x = RandomTokens.integers(new Random(n * 100 + d), n * d, 4);
                float[] got = CosineDistance.compute(device, HostTokens.of(x, n, d))[0];
                double[][] want = CosineDistanceReference.distances(HostTokens.of(x, n, d).set(0));
                for (int i = 0; i < n; i++) {
                    for (int j = 0; j < n; j++) {
                        assertEquals(want[i][j], got[i * n + j], 2e-6, deviceName + " n=" + n + " d=" + d + " [" + i + "][" + j + "]");
                        assertEquals(got[i * n + j], got[j * n + i], 0f, "symmetric bit for bit at [" + i + "][" + j + "]");
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void rowStrideSkipsPadding(String deviceName) {
        try (KernelDevice device = open(deviceName)) {
            int n = 40, d = 9, stride = 13;
            float[] padded = RandomTokens.gaussian(new Random(3), (n - 1) * stride + d);
            float[] dense = new float[n * d];
            for (int i = 0; i < n; i++) System.arraycopy(padded, i * stride, dense, i * d, d);
            DivPruneOptions o = DivPruneOptions.keep(10).withOrder(true);
            Selection strided = DivPrune.select(device, HostTokens.of(padded, TokenLayout.uniform(1, n, d).withRowStride(stride)), o);
            Selection packed = DivPrune.select(device, HostTokens.of(dense, n, d), o);
            assertArrayEquals(packed.order(), strided.order());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void nonFiniteInputIsRejectedAndNothingIsWritten(String deviceName) {
        try (KernelDevice device = open(deviceName)) {
            int n = 20, d = 8;
            float[] x = RandomTokens.gaussian(new Random(9), n * d);
            x[13 * d + 5] = Float.NaN;
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> DivPrune.select(device, HostTokens.of(x, n, d), DivPruneOptions.keep(4)));
            assertTrue(e.getMessage().contains("token 13, feature 5"), e.getMessage());

            Stream stream = device.defaultStream();
            try (Workspace ws = new Workspace(device, stream);
                 DeviceBuffer in = device.alloc(4L * n * d);
                 DeviceBuffer kept = device.alloc(16);
                 DeviceBuffer order = device.alloc(16)) {
                device.fill(kept, 0x7b, stream);
                device.fill(order, 0x7b, stream);
                x[13 * d + 5] = Float.POSITIVE_INFINITY;
                device.upload(x, in, stream);
                DeviceTokens t = new DeviceTokens(in, DType.F32, TokenLayout.uniform(1, n, d));
                Pending p = DivPrune.selectOnDevice(t, DivPruneOptions.keep(4), kept, order, ws, stream);
                assertThrows(IllegalArgumentException.class, p::await);
                int[] k = new int[4], o = new int[4];
                device.download(kept, k, stream);
                device.download(order, o, stream);
                int sentinel = 0x7b7b7b7b;
                assertArrayEquals(new int[] {sentinel, sentinel, sentinel, sentinel}, k, "kept untouched");
                assertArrayEquals(new int[] {sentinel, sentinel, sentinel, sentinel}, o, "order untouched");

                // the same workspace serves the next, valid call (a fresh epoch, no clearing)
                x[13 * d + 5] = 0.5f;
                device.upload(x, in, stream);
                DivPrune.selectOnDevice(t, DivPruneOptions.keep(4), kept, order, ws, stream).await();
                device.download(order, o, stream);
                assertArrayEquals(Arrays.copyOf(DivPruneReference.selectionOrder(HostTokens.of(x, n, d).set(0), 4, false), 4), o);
            }
        }
    }

    private static int[] order(KernelDevice device, float[] x, int d, int k, boolean compat) {
        return DivPrune.select(device, HostTokens.of(x, x.length / d, d), DivPruneOptions.keep(k).officialCompat(compat).withOrder(true)).order(0);
    }

    private static int[] kept(KernelDevice device, float[] x, int d, int k, boolean compat) {
        return DivPrune.select(device, HostTokens.of(x, x.length / d, d), DivPruneOptions.keep(k).officialCompat(compat)).kept(0);
    }

    static void checkAgainstReference(double[][] dist, int[] order, int[] kept, int k, boolean compat, String what) {
        assertEquals(k, order.length, what);
        int[] sorted = order.clone();
        Arrays.sort(sorted);
        assertArrayEquals(sorted, kept, what + ": kept must be the selection, ascending");
        if (!compat) assertEquals(k, IntStream.of(kept).distinct().count(), what + ": default mode never re-selects");
        try {
            DivPruneReference.checkGreedyTrajectory(dist, order, compat, EPS);
        } catch (AssertionError e) {
            throw new AssertionError(what + ": " + e.getMessage(), e);
        }
        if (DivPruneReference.minGap(dist, k, compat) > SEPARATED) {
            assertArrayEquals(DivPruneReference.selectionOrder(dist, k, compat), order, what + ": separated scores must select identically");
        }
    }
}
