package tokenprune.methods;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import tokenprune.device.CpuDevice;
import tokenprune.device.Device;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.testing.RandomTokens;
import tokenprune.testing.TestDevices;

/** DART's bad input through the Java API: an IllegalArgumentException naming the argument and the rule. */
class DartApiTest {
    private static void assertRejected(String mustMention, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(mustMention), "message should mention '" + mustMention + "': " + e.getMessage());
    }

    private static HostTokens tokens(int seed, TokenLayout layout) {
        return HostTokens.of(RandomTokens.gaussian(new Random(seed), (int) layout.requiredElements()), layout);
    }

    @Test
    void optionsAndSpansAreChecked() {
        assertRejected("pivotImage", () -> DartOptions.of(0, 4, 16));
        assertRejected("pivotText", () -> DartOptions.of(4, -1, 16));
        assertRejected("pivotImage + pivotText", () -> DartOptions.of(20, 13, 1));
        assertRejected("tokenTopK", () -> DartOptions.of(4, 4, -1));
        assertRejected("pivotOrder", () -> new DartOptions(4, 4, 16, null));
        assertRejected("tokenTopK", () -> DartOptions.of(4, 4, Integer.MAX_VALUE / 4));
        assertRejected("images", () -> ImageSpans.of(new int[] {-1}, new int[] {5}));
        assertRejected("images", () -> ImageSpans.of(new int[] {0}, new int[] {0}));
        assertRejected("images", () -> ImageSpans.of(new int[] {0, 1}, new int[] {5}));
        assertRejected("images", () -> ImageSpans.of(new int[0], new int[0]));
        assertRejected("sequences", () -> ImageSpans.uniform(0, 3, 5));
        assertRejected("imageLength", () -> DartOptions.tokenTopKQwen(0, 0.5, 4, 4));
        assertRejected("reductionRatio", () -> DartOptions.tokenTopKFromRatio(576, -0.1, 4, 4));
    }

    @Test
    void shapesAndCountsAreCheckedOnEveryDevice() {
        try (KernelDevice sim = TestDevices.open("sim-in-order")) {
            for (Device device : new Device[] {new CpuDevice(), sim}) {
                TokenLayout two = TokenLayout.ragged(new int[] {0, 30, 50}, 6);
                HostTokens k = tokens(1, two), h = tokens(2, two.withRowStride(9));
                ImageSpans spans = ImageSpans.of(new int[] {2, 1}, new int[] {20, 14});
                DartOptions o = DartOptions.of(2, 2, 3);
                Dart.select(device, k, h, spans, o);  // valid: pools 18 and 12 >= 4 x 3
                HostTokens otherSeqs = tokens(3, TokenLayout.ragged(new int[] {0, 31, 50}, 6));
                assertRejected("hidden", () -> Dart.select(device, k, otherSeqs, spans, o));
                assertRejected("images", () -> Dart.select(device, k, h, ImageSpans.uniform(1, 2, 20), o));
                assertRejected("images: sequence 1", () -> Dart.select(device, k, h, ImageSpans.of(new int[] {2, 10}, new int[] {20, 11}), o));
                assertRejected("pivotImage: sequence 1", () -> Dart.select(device, k, h, ImageSpans.of(new int[] {2, 1}, new int[] {20, 1}), o));
                assertRejected("pivotText: sequence 1", () -> Dart.select(device, k, h, ImageSpans.of(new int[] {2, 1}, new int[] {20, 18}), o));
                assertRejected("tokenTopK: sequence 1", () -> Dart.select(device, k, h, spans, DartOptions.of(2, 2, 4)));
                // L = 1: the pool is empty, so any TOKEN_TOPK >= 1 fails (the official topk raises); 0 is valid
                ImageSpans single = ImageSpans.of(new int[] {2, 1}, new int[] {1, 1});
                assertRejected("tokenTopK", () -> Dart.select(device, k, h, single, DartOptions.of(1, 1, 1)));
                assertArrayEquals(new int[] {0, 0}, Dart.select(device, k, h, single, DartOptions.of(1, 1, 0)).keptImage());
                assertRejected("keys", () -> Dart.select(device, null, h, spans, o));
                assertRejected("images", () -> Dart.select(device, k, h, null, o));
                assertRejected("options", () -> Dart.select(device, k, h, spans, null));
            }
        }
    }

    @Test
    void nonFiniteValuesAreNamedOnTheCpuToo() {
        TokenLayout layout = TokenLayout.uniform(1, 12, 4);
        float[] keys = RandomTokens.gaussian(new Random(5), 48), hidden = RandomTokens.gaussian(new Random(6), 48);
        keys[9 * 4 + 3] = Float.NaN;
        assertRejected("keys: non-finite value at sequence 0, token 9, feature 3",
                () -> Dart.select(new CpuDevice(), HostTokens.of(keys, layout), HostTokens.of(hidden, layout), ImageSpans.uniform(1, 2, 7), DartOptions.of(1, 1, 1)));
        keys[9 * 4 + 3] = 0;
        keys[4 + 1] = Float.NaN;  // token 1 is in the prefix [0, 2): never read
        Dart.select(new CpuDevice(), HostTokens.of(keys, layout), HostTokens.of(hidden, layout), ImageSpans.uniform(1, 2, 7), DartOptions.of(1, 1, 1));
    }

    @Test
    void deviceOutputsAndLimitsAreChecked() {
        try (KernelDevice device = TestDevices.open("sim-in-order")) {
            Stream s = device.defaultStream();
            TokenLayout layout = TokenLayout.uniform(1, 30, 4);
            ImageSpans spans = ImageSpans.uniform(1, 3, 20);
            DartOptions o = DartOptions.of(2, 2, 3);  // 14 kept, keep list 3 + 14 + 7 = 24
            try (Workspace ws = new Workspace(device, s);
                 DeviceBuffer x = device.alloc(4 * 30 * 4);
                 DeviceBuffer small = device.alloc(52);
                 DeviceBuffer ok = device.alloc(8 * 24);
                 DeviceBuffer huge = device.alloc(4 * 50000)) {
                DeviceTokens t = new DeviceTokens(x, DType.F32, layout);
                assertRejected("keptImage", () -> Dart.selectOnDevice(t, t, spans, o, DartOutputs.keptImage(small), ws, s));
                assertRejected("recruitedBy", () -> Dart.selectOnDevice(t, t, spans, o, DartOutputs.keptImage(ok).withRecruitedBy(small), ws, s));
                assertRejected("keepList", () -> Dart.selectOnDevice(t, t, spans, o, DartOutputs.keptImage(ok).withKeepList(small), ws, s));
                assertRejected("positionIds", () -> Dart.selectOnDevice(t, t, spans, o, DartOutputs.keptImage(ok).withPositionIds(ok.slice(0, 188)), ws, s));
                assertRejected("pivotOrder", () -> Dart.selectOnDevice(t, t, spans, o, DartOutputs.keptImage(ok).withPivotOrder(ok.slice(0, 12)), ws, s));
                assertRejected("keptImage", () -> DartOutputs.keptImage(null));
                assertRejected("out", () -> Dart.selectOnDevice(t, t, spans, o, null, ws, s));
                DeviceTokens long1 = new DeviceTokens(huge, DType.F32, TokenLayout.uniform(1, 50000, 1));
                assertRejected("exceeds", () -> Dart.selectOnDevice(long1, long1, ImageSpans.uniform(1, 0, 49990), DartOptions.of(1, 1, 1),
                        DartOutputs.keptImage(ok), ws, s));
            }
        }
    }

    @Test
    void cpuAndSimAgreeOnARaggedBatch() {
        TokenLayout layout = TokenLayout.ragged(new int[] {0, 41, 60, 99}, 7);
        HostTokens k = HostTokens.of(RandomTokens.integers(new Random(7), 99 * 7, 9), layout);
        HostTokens h = HostTokens.of(RandomTokens.gaussian(new Random(8), 99 * 7), layout);
        ImageSpans spans = ImageSpans.of(new int[] {1, 0, 10}, new int[] {30, 15, 20});
        for (DartOptions o : new DartOptions[] {DartOptions.of(2, 1, 4), DartOptions.of(2, 1, 4).officialCompat(true)}) {
            DartSelection want = Dart.select(new CpuDevice(), k, h, spans, o);
            try (KernelDevice device = TestDevices.open("sim-random")) {
                DartSelection got = Dart.select(device, k, h, spans, o);
                assertArrayEquals(want.pivots(), got.pivots(), o.toString());
                assertArrayEquals(want.pivotOrder(), got.pivotOrder(), o.toString());
                assertArrayEquals(want.keptImage(), got.keptImage(), o.toString());
                assertArrayEquals(want.recruitedBy(), got.recruitedBy(), o.toString());
                assertArrayEquals(want.keepList(), got.keepList(), o.toString());
                assertArrayEquals(want.keepOffsets(), got.keepOffsets(), o.toString());
            }
        }
    }
}
