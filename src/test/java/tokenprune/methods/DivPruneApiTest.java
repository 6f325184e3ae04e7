package tokenprune.methods;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import tokenprune.device.CpuDevice;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.testing.RandomTokens;
import tokenprune.testing.TestDevices;

/** Bad input through the Java API: a clear IllegalArgumentException naming the argument and the rule. */
class DivPruneApiTest {
    private static void assertRejected(String mustMention, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(mustMention), "message should mention '" + mustMention + "': " + e.getMessage());
    }

    @Test
    void keepCountsAndRatiosAreChecked() {
        HostTokens t = HostTokens.of(RandomTokens.gaussian(new Random(1), 10 * 4), 10, 4);
        CpuDevice cpu = new CpuDevice();
        assertRejected("keep", () -> DivPrune.select(cpu, t, DivPruneOptions.keep(11)));
        assertRejected("keep", () -> DivPruneOptions.keep(0));
        assertRejected("ratio", () -> DivPruneOptions.ratio(0));
        assertRejected("ratio", () -> DivPruneOptions.ratio(1.01));
        assertRejected("ratio", () -> DivPruneOptions.ratio(Double.NaN));
        assertRejected("keeps 0 tokens", () -> DivPrune.select(cpu, t, DivPruneOptions.ratio(0.01)));
        // a keep count one set of a ragged batch cannot satisfy names the set
        HostTokens ragged = HostTokens.of(RandomTokens.gaussian(new Random(2), 12 * 4), TokenLayout.ragged(new int[] {0, 9, 12}, 4));
        assertRejected("set 1", () -> DivPrune.select(cpu, ragged, DivPruneOptions.keep(4)));
    }

    @Test
    void shapesAreChecked() {
        assertRejected("needs 40 elements", () -> HostTokens.of(new float[39], 10, 4));
        assertRejected("rowOffsets", () -> TokenLayout.ragged(new int[] {0, 5, 5}, 4));
        assertRejected("rowOffsets", () -> TokenLayout.ragged(new int[] {1, 5}, 4));
        assertRejected("d", () -> TokenLayout.uniform(1, 5, 0));
        assertRejected("rowStride", () -> TokenLayout.uniform(1, 5, 8).withRowStride(7));
        assertRejected("f16 or bf16", () -> HostTokens.of(new short[8], DType.F32, TokenLayout.uniform(1, 2, 4)));
        float[] nan = new float[8];
        nan[6] = Float.NEGATIVE_INFINITY;
        assertRejected("token 1, feature 2", () -> DivPrune.select(new CpuDevice(), HostTokens.of(nan, 2, 4), DivPruneOptions.keep(1)));
    }

    @Test
    void deviceOutputsMustBeLargeEnough() {
        try (KernelDevice device = TestDevices.open("sim-in-order")) {
            Stream s = device.defaultStream();
            try (Workspace ws = new Workspace(device, s);
                 DeviceBuffer x = device.alloc(4 * 10 * 4);
                 DeviceBuffer small = device.alloc(8);
                 DeviceBuffer ok = device.alloc(12);
                 DeviceBuffer huge = device.alloc(4 * 40000)) {
                DeviceTokens t = new DeviceTokens(x, DType.F32, TokenLayout.uniform(1, 10, 4));
                assertRejected("keptOut", () -> DivPrune.selectOnDevice(t, DivPruneOptions.keep(3), small, null, ws, s));
                assertRejected("orderOut", () -> DivPrune.selectOnDevice(t, DivPruneOptions.keep(3), ok, small, ws, s));
                assertRejected("needs 160 bytes", () -> new DeviceTokens(small, DType.F32, TokenLayout.uniform(1, 10, 4)));
                assertRejected("exceeds", () -> DivPrune.selectOnDevice(new DeviceTokens(huge, DType.F32, TokenLayout.uniform(1, 40000, 1)),
                        DivPruneOptions.keep(3), ok, null, ws, s));
            }
        }
    }

    @Test
    void cpuAndSimAgreeOnARaggedBatchAndTheWorkspaceIsReusable() {
        try (KernelDevice device = TestDevices.open("sim-random")) {
            Stream s = device.defaultStream();
            int d = 5;
            TokenLayout layout = TokenLayout.ragged(new int[] {0, 7, 30, 31}, d);
            float[] data = RandomTokens.gaussian(new Random(4), 31 * d);
            DivPruneOptions o = DivPruneOptions.keep(1).withOrder(true);
            Selection want = DivPrune.select(new CpuDevice(), HostTokens.of(data, layout), o);
            try (Workspace ws = new Workspace(device, s);
                 DeviceBuffer x = device.alloc(4L * data.length);
                 DeviceBuffer kept = device.alloc(12);
                 DeviceBuffer order = device.alloc(12)) {
                device.upload(data, x, s);
                for (int call = 0; call < 3; call++) {  // same shapes: the workspace neither grows nor re-uploads
                    DivPrune.selectOnDevice(new DeviceTokens(x, DType.F32, layout), o, kept, order, ws, s).await();
                    int[] k = new int[3];
                    device.download(kept, k, s);
                    assertArrayEquals(want.kept(), k, "call " + call);
                }
            }
        }
    }
}
