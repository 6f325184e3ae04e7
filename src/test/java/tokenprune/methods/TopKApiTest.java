package tokenprune.methods;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import tokenprune.device.CpuDevice;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.testing.TestDevices;

/** Bad input to TopK and GatherTokens: IllegalArgumentException naming the argument and the rule. */
class TopKApiTest {
    private static void assertRejected(String mustMention, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(mustMention), "message should mention '" + mustMention + "': " + e.getMessage());
    }

    @Test
    void keepRulesAndOffsetsAreChecked() {
        CpuDevice cpu = new CpuDevice();
        float[] s = {1, 2, 3};
        assertRejected("keep must be in [1, N=3], got 4", () -> TopK.select(cpu, s, KeepRule.keep(4)));
        assertRejected("keep", () -> KeepRule.keep(0));
        assertRejected("ratio", () -> KeepRule.ratio(0));
        assertRejected("ratio", () -> KeepRule.ratio(1.5));
        assertRejected("ratio", () -> KeepRule.ratio(Double.NaN));
        assertRejected("threshold", () -> KeepRule.threshold(Float.NaN));
        assertRejected("threshold", () -> KeepRule.threshold(Float.POSITIVE_INFINITY));
        assertRejected("keeps 0 tokens", () -> TopK.select(cpu, s, KeepRule.ratio(0.1)));
        assertRejected("row 1", () -> TopK.select(cpu, new float[] {1, 2, 3, 4}, new int[] {0, 3, 4}, KeepRule.keep(2)));
        assertRejected("keepOffsets: row 0 keeps 4 of its 3", () -> TopK.select(cpu, s, new int[] {0, 3}, new int[] {0, 4}));
        assertRejected("keepOffsets: row 0 keeps -1", () -> TopK.select(cpu, new float[] {1, 2, 3, 4}, new int[] {0, 3, 4}, new int[] {0, -1, 0}));
        assertRejected("keepOffsets: need rows + 1 = 2", () -> TopK.select(cpu, s, new int[] {0, 3}, new int[] {0, 1, 2}));
        assertRejected("keepOffsets: must start at 0", () -> TopK.select(cpu, s, new int[] {0, 3}, new int[] {1, 2}));
        assertRejected("scores: rowOffsets cover 4 scores, the array has 3", () -> TopK.select(cpu, s, new int[] {0, 4}, KeepRule.keep(1)));
        assertRejected("rowOffsets: row 1 is empty", () -> TopK.select(cpu, s, new int[] {0, 3, 3}, KeepRule.keep(1)));
        assertRejected("rowOffsets: must start at 0", () -> TopK.select(cpu, s, new int[] {1, 3}, KeepRule.keep(1)));
        assertRejected("rowOffsets: need at least one row", () -> TopK.select(cpu, s, new int[] {0}, KeepRule.keep(1)));
        assertRejected("scores: non-finite value at index 1", () -> TopK.select(cpu, new float[] {0, Float.NaN}, KeepRule.keep(1)));
        assertRejected("row 1, index 0", () -> TopK.select(cpu, new float[] {0, Float.NaN}, new int[] {0, 1, 2}, KeepRule.threshold(0)));
        // keep counts of 0 are allowed with explicit offsets, and threshold rows may keep none
        assertArrayEquals(new int[] {}, TopK.select(cpu, s, new int[] {0, 3}, new int[] {0, 0}).kept());
        assertArrayEquals(new int[] {0, 0, 1}, TopK.select(cpu, s, new int[] {0, 2, 3}, KeepRule.threshold(2.5f)).keepOffsets());
    }

    @Test
    void deviceBuffersAreChecked() {
        try (KernelDevice device = TestDevices.open("sim-in-order")) {
            Stream st = device.defaultStream();
            int[] rows = {0, 10}, keeps = {0, 3};
            try (Workspace ws = new Workspace(device, st);
                 DeviceBuffer scores = device.alloc(40);
                 DeviceBuffer small = device.alloc(8);
                 DeviceBuffer ok = device.alloc(12);
                 DeviceBuffer big = device.alloc(400);
                 DeviceBuffer tiny = device.alloc(2)) {
                assertRejected("keptOut: needs 12 bytes", () -> TopK.selectOnDevice(device, scores, rows, keeps, small, null, ws, st));
                assertRejected("keepMask: needs 10 bytes", () -> TopK.selectOnDevice(device, scores, rows, keeps, ok, small, ws, st));
                assertRejected("scores: rowOffsets cover 20 fp32 scores", () -> TopK.selectOnDevice(device, scores, new int[] {0, 20}, keeps, ok, null, ws, st));
                assertRejected("keepOffsets: row 0 keeps 11", () -> TopK.selectOnDevice(device, scores, rows, new int[] {0, 11}, big, null, ws, st));
                assertRejected("keptOut: needs 40 bytes", () -> TopK.thresholdOnDevice(device, scores, rows, 0f, ok, ok, null, ws, st));
                assertRejected("countsOut: needs 4 bytes", () -> TopK.thresholdOnDevice(device, scores, rows, 0f, big, tiny, null, ws, st));
                assertRejected("threshold: must be finite", () -> TopK.thresholdOnDevice(device, scores, rows, Float.NaN, big, ok, null, ws, st));
                try (KernelDevice other = TestDevices.open("sim-random"); Workspace otherWs = new Workspace(other, other.defaultStream())) {
                    assertRejected("ws: workspace belongs to another device", () -> TopK.selectOnDevice(device, scores, rows, keeps, ok, null, otherWs, st));
                    try (DeviceBuffer foreign = other.alloc(64)) {
                        assertRejected("keptOut: buffer belongs to another device", () -> TopK.selectOnDevice(device, scores, rows, keeps, foreign, null, ws, st));
                    }
                }
            }
        }
    }

    @Test
    void gatherArgumentsAreChecked() {
        CpuDevice cpu = new CpuDevice();
        TokenLayout layout = TokenLayout.ragged(new int[] {0, 3, 5}, 2);
        HostTokens t = HostTokens.of(new float[10], layout);
        assertRejected("selection: need sets + 1 = 3", () -> GatherTokens.gather(cpu, t, new Selection(new int[] {0, 1}, new int[] {0}, null), PositionIds.RENUMBERED, 0));
        assertRejected("selection: set 1 keeps 3 of its 2", () -> GatherTokens.gather(cpu, t, new Selection(new int[] {0, 1, 4}, new int[] {0, 0, 1, 1}, null),
                PositionIds.RENUMBERED, 0));
        assertRejected("selection: set 1, kept[0] = 2 is outside [0, 2)", () -> GatherTokens.gather(cpu, t, new Selection(new int[] {0, 1, 2}, new int[] {2, 2}, null),
                PositionIds.RENUMBERED, 0));
        assertRejected("positionBase", () -> GatherTokens.gather(cpu, t, new Selection(new int[] {0, 1, 2}, new int[] {0, 0}, null), PositionIds.ORIGINAL,
                Integer.MAX_VALUE - 1));
        try (KernelDevice device = TestDevices.open("sim-in-order")) {
            Stream st = device.defaultStream();
            try (Workspace ws = new Workspace(device, st);
                 DeviceBuffer x = device.alloc(40);
                 DeviceBuffer kept = device.alloc(8);
                 DeviceBuffer out = device.alloc(16);
                 DeviceBuffer small = device.alloc(4)) {
                DeviceTokens dt = new DeviceTokens(x, DType.F32, layout);
                int[] keeps = {0, 1, 2};
                assertRejected("outRowStride: must be >= d = 2", () -> GatherTokens.gatherOnDevice(device, dt, keeps, kept, out, 1, null, PositionIds.RENUMBERED, 0, ws, st));
                assertRejected("out: 2 rows of 2 F32 at stride 3 need 20 bytes", () -> GatherTokens.gatherOnDevice(device, dt, keeps, kept, out, 3, null,
                        PositionIds.RENUMBERED, 0, ws, st));
                assertRejected("kept: needs 8 bytes", () -> GatherTokens.gatherOnDevice(device, dt, keeps, small, out, 2, null, PositionIds.RENUMBERED, 0, ws, st));
                assertRejected("positions: needs 8 bytes", () -> GatherTokens.gatherOnDevice(device, dt, keeps, kept, out, 2, small, PositionIds.RENUMBERED, 0, ws, st));
                assertRejected("keepOffsets: set 0 keeps 4 of its 3", () -> GatherTokens.gatherOnDevice(device, dt, new int[] {0, 4, 4}, kept, out, 2, null,
                        PositionIds.RENUMBERED, 0, ws, st));
            }
        }
    }
}
