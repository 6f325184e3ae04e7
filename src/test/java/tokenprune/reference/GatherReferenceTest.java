package tokenprune.reference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import org.junit.jupiter.api.Test;

/** Gather reference against a hand-computed case. */
class GatherReferenceTest {
    @Test
    void packsKeptRowsAndNumbersThem() {
        // two sets (3 and 2 tokens) of d = 2 at row stride 3 (one padding element per row)
        float[] x = {10, 11, -1, 20, 21, -1, 30, 31, -1, /* set 1 */ 40, 41, -1, 50, 51};
        int[] rows = {0, 3, 5};
        int[] keeps = {0, 2, 3};
        int[] kept = {0, 2, 1};
        assertArrayEquals(new float[] {10, 11, 30, 31, 50, 51}, (float[]) GatherReference.gather(x, rows, 2, 3, keeps, kept));
        assertArrayEquals(new int[] {7, 8, 7}, GatherReference.positions(keeps, kept, false, 7));
        assertArrayEquals(new int[] {7, 9, 8}, GatherReference.positions(keeps, kept, true, 7));
        short[] h = {1, 2, 0, 3, 4, 0, 5, 6, 0, 7, 8, 0, 9, 10};
        assertArrayEquals(new short[] {1, 2, 5, 6, 9, 10}, (short[]) GatherReference.gather(h, rows, 2, 3, keeps, kept));
    }
}
