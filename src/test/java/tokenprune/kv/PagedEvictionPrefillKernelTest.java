package tokenprune.kv;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Random;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import tokenprune.device.KernelDevice;
import tokenprune.reference.PagedEvictionReference;
import tokenprune.testing.TestDevices;

/**
 * tp_pe_prefill_keep (PE-REF step 4) against PagedEvictionReference.prefillKeep: PE-4 by hand, random
 * ragged batches (prompts under, at and over the budget, every remainder r, heavy ties that exercise
 * the later-position rule, long middles), and NaN rejection.
 */
class PagedEvictionPrefillKernelTest {
    static java.util.stream.Stream<String> devices() {
        return TestDevices.kernelDevices();
    }

    static double[] toDouble(float[] x, int from, int to) {
        double[] d = new double[to - from];
        for (int i = from; i < to; i++) d[i - from] = x[i];
        return d;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void handCheckablePe4(String deviceName) {
        float[] mid = {5, 1, 9, 2, 8, 3, 7, 4, 0.5f, 6, 0.1f, 10};
        float[] scores = new float[22 + 12];
        for (int i = 0; i < 22; i++) scores[i] = i < 4 || i >= 16 ? 100 : mid[i - 4];
        for (int i = 22; i < 34; i++) scores[i] = i;  // a second prompt of L = 12 = C: nothing pruned
        try (KernelDevice device = TestDevices.open(deviceName)) {
            int[][] kept = PagedEviction.prefillKeep(device, scores, new int[] {0, 22, 34}, 12, 4);
            assertArrayEquals(new int[] {0, 1, 2, 3, 6, 8, 10, 15, 16, 17, 18, 19, 20, 21}, kept[0], "PE-4");
            assertArrayEquals(new int[] {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, kept[1], "PE-4 L = C");
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void randomBatchesMatchTheReference(String deviceName) {
        Random rnd = new Random(0x9EF111);
        try (KernelDevice device = TestDevices.open(deviceName)) {
            for (int it = 0; it < 8; it++) {
                int b = new int[] {1, 3, 4, 16}[rnd.nextInt(4)];
                int budget = b * (3 + rnd.nextInt(it < 6 ? 6 : 40));
                int seqs = 1 + rnd.nextInt(12);
                int[] rows = new int[seqs + 1];
                for (int s = 0; s < seqs; s++) {
                    int kind = rnd.nextInt(4);
                    int len = kind == 0 ? rnd.nextInt(budget + 1) : kind == 1 ? budget + rnd.nextInt(b) : budget + 1 + rnd.nextInt(3 * budget + 700);
                    rows[s + 1] = rows[s] + len;
                }
                float[] scores = new float[rows[seqs]];
                boolean ties = rnd.nextBoolean();
                for (int i = 0; i < scores.length; i++) scores[i] = ties ? rnd.nextInt(3) - 1f : (float) rnd.nextGaussian();
                int[][] got = PagedEviction.prefillKeep(device, scores, rows, budget, b);
                for (int s = 0; s < seqs; s++) {
                    int[] want = PagedEvictionReference.prefillKeep(toDouble(scores, rows[s], rows[s + 1]), budget, b);
                    assertArrayEquals(want, got[s], deviceName + " it " + it + " prompt " + s + " L " + (rows[s + 1] - rows[s]) + " C " + budget + " B " + b);
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void nanIsRejected(String deviceName) {
        float[] scores = new float[40];
        scores[2] = Float.NaN;  // a protected position: still rejected
        try (KernelDevice device = TestDevices.open(deviceName)) {
            assertThrows(IllegalArgumentException.class, () -> PagedEviction.prefillKeep(device, scores, new int[] {0, 40}, 12, 4));
            assertThrows(IllegalArgumentException.class, () -> PagedEviction.prefillKeep(device, new float[4], new int[] {0, 4}, 10, 4));
            assertThrows(IllegalArgumentException.class, () -> PagedEviction.prefillKeep(device, new float[4], new int[] {0, 5}, 12, 4));
        }
    }
}
