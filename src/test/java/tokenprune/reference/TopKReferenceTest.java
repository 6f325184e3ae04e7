package tokenprune.reference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The top-k / threshold reference against hand-computed cases (methods-vision.md §2.2 tie rule). */
class TopKReferenceTest {
    private static int[] top(int k, float... row) {
        return TopKReference.select(row, k);
    }

    @Test
    void tiesGoToTheLowerIndex() {
        float[] s = {1, 3, 3, 2, 3};
        assertArrayEquals(new int[] {1}, TopKReference.select(s, 1));
        assertArrayEquals(new int[] {1, 2}, TopKReference.select(s, 2));
        assertArrayEquals(new int[] {1, 2, 4}, TopKReference.select(s, 3));
        assertArrayEquals(new int[] {1, 2, 3, 4}, TopKReference.select(s, 4));
        assertArrayEquals(new int[] {0, 1, 2, 3, 4}, TopKReference.select(s, 5));
    }

    @Test
    void edgeCounts() {
        assertArrayEquals(new int[] {1}, top(1, 0.5f, 0.9f, 0.9f));
        assertArrayEquals(new int[] {0, 1, 2}, top(3, 0.5f, 0.9f, 0.9f), "k = N keeps everything");
        assertArrayEquals(new int[] {0}, top(1, 7f), "N = 1");
        assertArrayEquals(new int[] {}, top(0, 7f), "k = 0 keeps nothing");
        assertArrayEquals(new int[] {0, 1, 2}, top(3, 2, 2, 2, 2, 2), "all equal: the first k");
    }

    @Test
    void negativeZeroEqualsPositiveZero() {
        assertArrayEquals(new int[] {0}, top(1, -0.0f, 0.0f, -1f), "-0.0 at index 0 ties with 0.0 and wins by index");
        assertArrayEquals(new int[] {0}, top(1, 0.0f, -0.0f));
        assertArrayEquals(new int[] {1}, top(1, -1f, -0.0f, 0.0f));
        assertArrayEquals(new int[] {1, 2}, top(2, -Float.MIN_VALUE, -0.0f, 0.0f), "the smallest negative denormal ranks below both zeros");
        assertTrue(TopKReference.ranksBefore(-0.0f, 0, 0.0f, 1));
        assertFalse(TopKReference.ranksBefore(0.0f, 1, -0.0f, 0));
    }

    @Test
    void extremeValues() {
        // ranking: MAX(0) > 1e30(2) > MIN_VALUE(4) > 0(6) > -MIN_VALUE(5) > -1e30(3) > -MAX(1)
        float[] s = {Float.MAX_VALUE, -Float.MAX_VALUE, 1e30f, -1e30f, Float.MIN_VALUE, -Float.MIN_VALUE, 0f};
        assertArrayEquals(new int[] {0, 2, 4}, TopKReference.select(s, 3));
        assertArrayEquals(new int[] {0, 2, 4, 6}, TopKReference.select(s, 4));
        assertArrayEquals(new int[] {0, 2, 4, 5, 6}, TopKReference.select(s, 5));
        assertArrayEquals(new int[] {0, 2, 3, 4, 5, 6}, TopKReference.select(s, 6));
    }

    @Test
    void thresholdKeepsEveryScoreAtOrAboveIt() {
        float[] s = {0.1f, 0.5f, 0.5f, 0.2f};
        assertArrayEquals(new int[] {1, 2}, TopKReference.threshold(s, 0.5f));
        assertArrayEquals(new int[] {1, 2, 3}, TopKReference.threshold(s, 0.2f));
        assertArrayEquals(new int[] {}, TopKReference.threshold(s, 1f), "none pass: keep none");
        assertArrayEquals(new int[] {0, 1}, TopKReference.threshold(new float[] {0.0f, -0.0f, -Float.MIN_VALUE}, -0.0f));
        assertArrayEquals(new int[] {0, 1}, TopKReference.threshold(new float[] {0.0f, -0.0f, -Float.MIN_VALUE}, 0.0f));
    }

    @Test
    void raggedBatchAndMask() {
        float[] scores = {5, 1, 5, /* row 1 */ 0, /* row 2 */ 2, 9, 2, 2};
        int[] rows = {0, 3, 4, 8};
        int[] keeps = {0, 2, 2, 5};  // k = 2, 0, 3
        int[] kept = TopKReference.select(scores, rows, keeps);
        assertArrayEquals(new int[] {0, 2, 0, 1, 2}, kept);
        assertArrayEquals(new byte[] {1, 0, 1, 0, 1, 1, 1, 0}, TopKReference.mask(rows, keeps, kept));
    }

    @Test
    void badInputIsRejected() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> top(1, 1f, Float.NaN));
        assertTrue(e.getMessage().contains("index 1"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> top(1, Float.NEGATIVE_INFINITY));
        e = assertThrows(IllegalArgumentException.class, () -> top(3, 1f, 2f));
        assertTrue(e.getMessage().contains("k"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> top(-1, 1f));
        assertThrows(IllegalArgumentException.class, () -> TopKReference.threshold(new float[] {Float.POSITIVE_INFINITY}, 0f));
    }
}
