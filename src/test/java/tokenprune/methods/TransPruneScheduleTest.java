package tokenprune.methods;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** TP-3 and the schedule's stepping (methods-vision.md §6.4). */
class TransPruneScheduleTest {
    private final TransPruneSchedule s = TransPruneSchedule.defaults();

    @Test
    void tp3CountsAreOfTheOriginalN() {
        assertArrayEquals(new int[] {504, 360, 72}, counts(576));
        assertArrayEquals(new int[] {2047, 1462, 292}, counts(2340), "int() truncates 2047.5 / 1462.5 / 292.5");
        assertArrayEquals(new int[] {2520, 1800, 360}, counts(2880));
        for (int stage = 0; stage < 3; stage++) {
            assertArrayEquals(new int[] {counts(576)[stage], 1, new int[] {4, 3, 1}[stage]},
                    s.keepCounts(new int[] {576, 1, 5}, stage), "[decision] never below 1: int(1 * 0.875) and int(5 * 0.125) would be 0");
        }
    }

    @Test
    void steppingLayerByLayer() {
        StringBuilder trace = new StringBuilder();
        for (int layer = 1; layer <= 32; layer++) {
            if (s.accumulates(layer)) trace.append('a').append(layer).append(' ');
            int stage = s.stageAfter(layer);
            if (stage >= 0) trace.append('p').append(stage).append(' ');
        }
        assertEquals("a7 p0 a8 a9 p1 a10 a11 a12 p2 ", trace.toString());
        assertEquals(3, s.stages());
        assertEquals(6, s.maxPendingSubBlocks(), "layers 10..12 between the last two stages, two sub-blocks each");
        assertFalse(s.accumulates(13));
    }

    @Test
    void customSchedulesAreValidated() {
        TransPruneSchedule c = TransPruneSchedule.of(new int[] {3, 1, 2}, new int[] {2, 5}, new double[] {0.5, 0.5});
        assertArrayEquals(new int[] {1, 2, 3}, c.accumulatingLayers());
        assertEquals(4, c.maxPendingSubBlocks());
        assertMessage("ratios", () -> TransPruneSchedule.of(new int[] {1}, new int[] {1, 2}, new double[] {0.5, 0.6}));
        assertMessage("ratios", () -> TransPruneSchedule.of(new int[] {1}, new int[] {1}, new double[] {0}));
        assertMessage("ratios", () -> TransPruneSchedule.of(new int[] {1}, new int[] {1, 2}, new double[] {0.5}));
        assertMessage("pruningLayers", () -> TransPruneSchedule.of(new int[] {1}, new int[] {2, 2}, new double[] {0.5, 0.5}));
        assertMessage("pruningLayers", () -> TransPruneSchedule.of(new int[] {1}, new int[] {0}, new double[] {0.5}));
        assertMessage("accumulatingLayers", () -> TransPruneSchedule.of(new int[] {1, 1}, new int[] {1}, new double[] {0.5}));
        assertMessage("stage", () -> s.keepCount(576, 3));
        assertMessage("ttvWeight", () -> TransPruneOptions.defaults().weights(-1, 1));
        assertMessage("weights", () -> TransPruneOptions.defaults().weights(0, 0));
    }

    private int[] counts(int n) {
        return new int[] {s.keepCount(n, 0), s.keepCount(n, 1), s.keepCount(n, 2)};
    }

    private static int[] concat(int[]... parts) {
        return java.util.Arrays.stream(parts).flatMapToInt(java.util.Arrays::stream).toArray();
    }

    static void assertMessage(String argument, org.junit.jupiter.api.function.Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().startsWith(argument), "expected the message to name '" + argument + "': " + e.getMessage());
    }
}
