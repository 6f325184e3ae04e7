package tokenprune.reference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Random;
import java.util.Set;
import java.util.stream.IntStream;

import org.junit.jupiter.api.Test;

import tokenprune.methods.DartOptions;
import tokenprune.methods.DartOptions.PivotOrder;
import tokenprune.methods.ImageSpans;
import tokenprune.methods.TokenLayout;
import tokenprune.methods.Dart;

/** DART's float64 reference, quota rules and CPython set-order emulation against methods-vision.md §4 and §13.2. */
class DartReferenceTest {
    static float[][] dart1Keys() {
        return DartReferenceTestData.dart1Keys();
    }

    static float[][] dart1Hidden() {
        return DartReferenceTestData.dart1Hidden();
    }

    @Test
    void dart1PivotOrderSensitivity() {
        DartOptions o = DartOptions.of(1, 1, DartOptions.tokenTopKFromBudget(4, 1, 1));
        assertEquals(2, o.tokenTopK(), "max_num_trunction 4 // 2 pivots");

        DartReference.Result compat = DartReference.select(dart1Keys(), dart1Hidden(), 1, 6, o.withPivotOrder(PivotOrder.OFFICIAL_COMPAT));
        assertArrayEquals(new int[] {3, 8}, compat.pivots(), "image pivot 3 (a = 9), text pivot 8 (a = 7)");
        assertArrayEquals(new int[] {8, 3}, compat.pivotOrder(), "slots 0 and 3 of an 8-slot table");
        assertArrayEquals(new int[] {1, 2, 3, 4, 5}, compat.keptImage(), "positions 2..6 local to s = 1: token 1 pruned");
        assertArrayEquals(new int[] {3, -1, 8, 3, 8}, compat.recruitedBy(), "positions 2..6: pivot 8 recruits {4, 6}, pivot 3 recruits {2, 5}");
        assertArrayEquals(new int[] {0, 2, 3, 4, 5, 6, 7, 8}, compat.keep());

        DartReference.Result sorted = DartReference.select(dart1Keys(), dart1Hidden(), 1, 6, o);
        assertArrayEquals(new int[] {3, 8}, sorted.pivotOrder());
        assertArrayEquals(new int[] {0, 1, 2, 3, 5}, sorted.keptImage(), "positions 1, 2, 3, 4, 6: token 5 pruned");
        assertArrayEquals(new int[] {8, 3, -1, 8, 3}, sorted.recruitedBy(), "positions 1, 2, 3, 4, 6: pivot 3 recruits {2, 6}, pivot 8 recruits {1, 4}");
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 6, 7, 8}, sorted.keep());
    }

    @Test
    void dart1CosinesAsTheSpecListsThem() {
        float[][] h = dart1Hidden();
        double[] want = {0.0995, 0, -1, 0.7071, -0.7071};
        int[] tokens = {1, 2, 4, 5, 6};
        for (int i = 0; i < tokens.length; i++) assertEquals(want[i], DartReference.cosine(h[8], h[tokens[i]]), 1e-4, "cos(h8, h" + tokens[i] + ")");
        assertEquals(0.0, DartReference.cosine(new float[] {0, 0}, new float[] {1, 2}), 0.0, "a zero vector: eps-clamped norm, cosine 0");
        assertEquals(0.1, DartReference.cosine(new float[] {1e-9f, 0}, new float[] {1, 0}), 1e-7, "|x| = 1e-9 is clamped to eps: 1e-9 / 1e-8");
        assertEquals(1.0, DartReference.cosine(new float[] {1e-7f, 0}, new float[] {3, 0}), 1e-12, "norms above eps are not touched");
    }

    @Test
    void dart2QuotaArithmetic() {
        DartOptions llava = DartOptions.llava15();
        assertEquals(16, llava.tokenTopK());
        assertEquals(132, llava.retained());
        int text = 60;
        int[] keep = Dart.keepOffsets(TokenLayout.uniform(1, 35 + 576 + text, 8), ImageSpans.uniform(1, 35, 576), llava);
        assertEquals(35 + 576 + text - 444, keep[1], "the sequence shrinks by 444");
        assertEquals(40, DartOptions.tokenTopKLlavaNext(2340));
        assertEquals(324, DartOptions.llavaNext(2340).retained());
        assertEquals(27, DartOptions.tokenTopKQwen(1000, 0.778, 4, 4));
        assertEquals(220, DartOptions.qwen(1000, 0.778).retained());
        assertEquals(15, DartOptions.tokenTopKFromRatio(576, 0.778, 4, 4), "576 * 0.222 = 127.87, // 8 -> 15");
        assertEquals(16, DartOptions.tokenTopKFromBudget(128, 4, 4));
        assertEquals(42, DartOptions.tokenTopKFromBudget(128, 2, 1), "128 // 3");
        assertEquals(0, DartOptions.tokenTopKLlavaNext(5), "min(320, 1) // 8");
        assertEquals(39, DartOptions.tokenTopKLlavaNext(316), "min(320, 312) // 8");
        assertThrows(IllegalArgumentException.class, () -> DartOptions.tokenTopKLlavaNext(3), "L - 4 < 0: the official topk raises");
        assertThrows(IllegalArgumentException.class, () -> DartOptions.tokenTopKQwen(1000, 1.0, 4, 4));
        assertThrows(IllegalArgumentException.class, () -> DartOptions.tokenTopKFromBudget(128, 0, 4));
        assertEquals(3, DartOptions.tokenTopKFromRatio(30, 0.75, 2, 0), "30 * 0.25 = 7.5, // 2 -> 3");
        assertEquals(0, DartOptions.tokenTopKFromRatio(3, 0.9, 1, 0), "3 * (1 - 0.9) = 0.29999999999999993, // 1 -> 0");
    }

    @Test
    void dart3SetOrderEmulator() {
        assertArrayEquals(new int[] {642, 643, 76, 429, 300, 465, 630, 636},
                CPythonSetOrder.iterationOrder(new int[] {429, 465, 76, 300, 643, 642, 636, 630}));
    }

    /** Cases worked by hand through §4.4's algorithm. */
    @Test
    void setOrderCasesReasonedThroughTheAlgorithm() {
        assertArrayEquals(new int[] {8, 3}, CPythonSetOrder.iterationOrder(new int[] {3, 8}), "slots 3, 0");
        assertArrayEquals(new int[] {9, 1}, CPythonSetOrder.iterationOrder(new int[] {9, 1}), "1 collides at slot 1, no room for linear probes, jumps to (5 + 1 + 0) & 7 = 6");
        assertArrayEquals(new int[] {1, 9}, CPythonSetOrder.iterationOrder(new int[] {1, 9}));
        assertArrayEquals(new int[] {2, 66, 5}, CPythonSetOrder.iterationOrder(new int[] {5, 2, 66}),
                "66: slot 2 taken; perturb 2 -> 13 & 7 = 5 taken; perturb 0 -> 26 & 7 = 2 taken; -> 11 & 7 = 3");
        assertArrayEquals(new int[] {3, 4, 5, 6, 7}, CPythonSetOrder.iterationOrder(new int[] {7, 6, 5, 4, 3}), "the 5th key grows the table to 32");
        assertArrayEquals(new int[] {0, 32, 100, 101, 102, 103, 104}, CPythonSetOrder.iterationOrder(new int[] {100, 101, 102, 103, 104, 0, 32}),
                "32 slots: 32 collides with 0 at slot 0 and probes linearly to slot 1");
        assertArrayEquals(new int[] {100, 101, 102, 103, 104, 62, 30}, CPythonSetOrder.iterationOrder(new int[] {100, 101, 102, 103, 104, 30, 62}),
                "62 collides at slot 30 (30 + 9 > 31: no linear probes), perturb 1 -> (150 + 1 + 1) & 31 = 24");
        assertArrayEquals(new int[] {13, 5}, CPythonSetOrder.iterationOrder(new int[] {5, 5, 13}), "a repeated key is not added twice");
        // 19 keys make the 32-slot table grow to 128 (5 * 19 >= 3 * 31): ascending small keys stay ascending
        int[] many = IntStream.range(0, 20).toArray();
        assertArrayEquals(many, CPythonSetOrder.iterationOrder(many));
        assertThrows(IllegalArgumentException.class, () -> CPythonSetOrder.iterationOrder(new int[] {1, -1}));
    }

    @Test
    void setOrderIsAPermutationOfTheDistinctKeys() {
        Random rnd = new Random(31);
        for (int t = 0; t < 500; t++) {
            int[] keys = rnd.ints(1 + rnd.nextInt(40), 0, 1 + rnd.nextInt(5000)).toArray();
            int[] order = CPythonSetOrder.iterationOrder(keys);
            assertArrayEquals(IntStream.of(keys).distinct().sorted().toArray(), IntStream.of(order).sorted().toArray(), Arrays.toString(keys));
        }
    }

    /** DART-4 on random inputs: exclusion and the exact retained count, both orders. */
    @Test
    void dart4Exclusion() {
        Random rnd = new Random(4);
        for (int t = 0; t < 40; t++) {
            int start = rnd.nextInt(40), length = 20 + rnd.nextInt(120), text = 1 + rnd.nextInt(30);
            int pImg = 1 + rnd.nextInt(4), pTxt = Math.min(text, rnd.nextInt(5));
            int k = (length - pImg) / (pImg + pTxt) - rnd.nextInt(2);
            k = Math.max(0, Math.min(k, 12));
            int n = start + length + text;
            float[][] keys = gaussian(rnd, n, 1 + rnd.nextInt(20)), hidden = gaussian(rnd, n, 1 + rnd.nextInt(20));
            for (boolean compat : new boolean[] {false, true}) {
                DartOptions o = DartOptions.of(pImg, pTxt, k).officialCompat(compat);
                DartReference.Result r = DartReference.select(keys, hidden, start, length, o);
                String what = "case " + t + " compat=" + compat;
                assertEquals(pImg + (pImg + pTxt) * k, r.keptImage().length, what);
                Set<Integer> imagePivots = new HashSet<>();
                for (int m = 0; m < pImg; m++) imagePivots.add(r.pivots()[m] - start);
                Set<Integer> seen = new HashSet<>(imagePivots);
                for (int p : r.pivotOrder()) {
                    for (int i = 0; i < r.keptImage().length; i++) {
                        if (r.recruitedBy()[i] == p) assertTrue(seen.add(r.keptImage()[i]), what + ": token recruited twice or a pivot recruited");
                    }
                }
                assertEquals(r.keptImage().length, seen.size(), what);
                for (int m = pImg; m < pImg + pTxt; m++) {
                    int textPivot = r.pivots()[m];
                    assertTrue(textPivot >= start + length, what + ": text pivots come from the text");
                    assertFalse(IntStream.of(r.keptImage()).anyMatch(v -> v + start == textPivot), what);
                }
                assertArrayEquals(DartReference.keepList(n, start, length, r.keptImage()), r.keep(), what);
                DartReference.checkValid(keys, hidden, start, length, o, r, 0.0);
            }
        }
    }

    @Test
    void rejectsWhatTheOfficialCodeCannotDo() {
        float[][] k = gaussian(new Random(1), 12, 3), h = gaussian(new Random(2), 12, 3);
        assertMessage("tokenTopK", () -> DartReference.select(k, h, 2, 1, DartOptions.of(1, 1, 1)), "L = 1: no candidates");
        assertMessage("tokenTopK", () -> DartReference.select(k, h, 2, 6, DartOptions.of(2, 1, 2)), "pool 4 < 3 x 2");
        assertMessage("pivotImage", () -> DartReference.select(k, h, 2, 2, DartOptions.of(3, 1, 0)), "");
        assertMessage("pivotText", () -> DartReference.select(k, h, 2, 8, DartOptions.of(1, 3, 0)), "");
        DartReference.Result onlyPivot = DartReference.select(k, h, 2, 1, DartOptions.of(1, 1, 0));
        assertArrayEquals(new int[] {0}, onlyPivot.keptImage(), "TOKEN_TOPK = 0 keeps the image pivots only");
        float[][] nan = gaussian(new Random(3), 12, 3);
        nan[5][1] = Float.NaN;
        assertMessage("token 5, feature 1", () -> DartReference.select(nan, h, 2, 6, DartOptions.of(1, 1, 1)), "");
        nan[5][1] = 0;
        nan[1][2] = Float.POSITIVE_INFINITY;  // in the prefix: never read
        DartReference.select(nan, h, 2, 6, DartOptions.of(1, 1, 1));
    }

    private static void assertMessage(String part, org.junit.jupiter.api.function.Executable call, String why) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call, why);
        assertTrue(e.getMessage().contains(part), "'" + part + "' missing from: " + e.getMessage());
    }

    static float[][] gaussian(Random rnd, int rows, int d) {
        float[][] x = new float[rows][d];
        for (float[] row : x) for (int f = 0; f < d; f++) row[f] = (float) rnd.nextGaussian();
        return x;
    }
}
