package tokenprune.methods;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class KeepCountTest {

    @Test
    void dp4OfficialRounding() {
        assertEquals(56, KeepCount.fromRatio(576, 0.098)); // 56.448
        assertEquals(229, KeepCount.fromRatio(2340, 0.098)); // 229.32
        assertEquals(2, KeepCount.fromRatio(25, 0.1)); // 2.5 -> 2 (half to even)
        assertEquals(4, KeepCount.fromRatio(35, 0.1)); // 3.5 -> 4
        assertEquals(2, KeepCount.fromRatio(15, 0.1)); // 1.5 -> 2
    }

    @Test
    void halfToEvenNotHalfUp() {
        assertEquals(2, KeepCount.fromRatio(5, 0.5)); // 2.5 -> 2 (Math.round would give 3)
        assertEquals(4, KeepCount.fromRatio(7, 0.5)); // 3.5 -> 4
        assertEquals(2, KeepCount.fromRatio(6, 0.25)); // 1.5 -> 2
        assertEquals(2, KeepCount.fromRatio(10, 0.25)); // 2.5 -> 2
    }

    @Test
    void ratioOneKeepsEverything() {
        assertEquals(576, KeepCount.fromRatio(576, 1.0));
        assertEquals(1, KeepCount.fromRatio(1, 1.0));
    }

    @Test
    void ratioTooSmallForNIsRejectedWithTheNumbers() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> KeepCount.fromRatio(25, 0.001));
        assertEquals("ratio 0.001 of N=25 keeps 0 tokens; need at least 1", e.getMessage());
        // 0.5 rounds half-to-even to 0: rejected, not bumped to 1.
        assertThrows(IllegalArgumentException.class, () -> KeepCount.fromRatio(1, 0.5));
    }

    @Test
    void badRatios() {
        for (double r : new double[] {0.0, -0.1, 1.0000001, 2, Double.NaN, Double.POSITIVE_INFINITY}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> KeepCount.fromRatio(10, r));
            assertTrue(e.getMessage().contains("ratio") && e.getMessage().contains("(0, 1]"), e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> KeepCount.fromRatio(0, 0.5));
    }

    @Test
    void checkKeepBounds() {
        assertEquals(1, KeepCount.checkKeep(5, 1));
        assertEquals(5, KeepCount.checkKeep(5, 5));
        IllegalArgumentException zero = assertThrows(IllegalArgumentException.class, () -> KeepCount.checkKeep(5, 0));
        assertEquals("keep must be in [1, N=5], got 0", zero.getMessage());
        IllegalArgumentException over = assertThrows(IllegalArgumentException.class, () -> KeepCount.checkKeep(5, 6));
        assertEquals("keep must be in [1, N=5], got 6", over.getMessage());
        assertThrows(IllegalArgumentException.class, () -> KeepCount.checkKeep(0, 1));
        assertThrows(IllegalArgumentException.class, () -> KeepCount.checkKeep(5, -1));
    }
}
