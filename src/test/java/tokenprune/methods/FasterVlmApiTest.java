package tokenprune.methods;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
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

/** FasterVLM's Java API: bad shapes and arguments raise IllegalArgumentException naming the argument; cpu and sim agree. */
class FasterVlmApiTest {
    private static void assertRejected(String mustMention, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(mustMention), "message should mention '" + mustMention + "': " + e.getMessage());
    }

    @Test
    void layoutsAreChecked() {
        assertRejected("images", () -> ClsAttentionLayout.dense(0, 577, 16, 64));
        assertRejected("tokens", () -> ClsAttentionLayout.dense(1, 1, 16, 64));
        assertRejected("heads", () -> ClsAttentionLayout.dense(1, 577, 0, 64));
        assertRejected("headDim", () -> ClsAttentionLayout.dense(1, 577, 16, 0));
        ClsAttentionLayout ok = ClsAttentionLayout.dense(2, 5, 3, 4);
        assertRejected("keyHeadStride", () -> ok.withKeyStrides(60, 12, 3));
        assertRejected("keyTokenStride", () -> ok.withKeyStrides(60, -1, 4));
        assertRejected("keyImageStride", () -> ok.withKeyStrides(2, 12, 4));
        assertRejected("queryHeadStride", () -> ok.withQueryStrides(12, 0));
        assertRejected("queryImageStride", () -> ok.withQueryStrides(-12, 4));
        // a stride whose dimension has one entry is never used: any value >= 0
        ClsAttentionLayout single = ClsAttentionLayout.dense(1, 5, 1, 4).withKeyStrides(0, 4, 0).withQueryStrides(0, 0);
        assertEquals(4, single.requiredQueryElements());
        assertEquals(20, single.requiredKeyElements());
        // head-major keys: token stride dh, head stride N dh
        ClsAttentionLayout headMajor = ok.withKeyStrides(60, 4, 20);
        assertEquals(60 + 4 * 4 + 2 * 20 + 4, headMajor.requiredKeyElements());
        assertArrayEquals(new int[] {0, 4, 8}, ok.scoreRowOffsets());
    }

    @Test
    void inputsAndOptionsAreChecked() {
        ClsAttentionLayout l = ClsAttentionLayout.dense(2, 5, 3, 4);
        float[] q = new float[24], k = new float[120];
        assertRejected("queries", () -> HostClsAttention.of(new float[23], k, l));
        assertRejected("keys", () -> HostClsAttention.of(q, new float[119], l));
        assertRejected("f16 or bf16", () -> HostClsAttention.of(new short[24], new short[120], DType.F32, l));
        assertRejected("keep", () -> FasterVlmOptions.keep(0));
        assertRejected("ratio", () -> FasterVlmOptions.ratio(0));
        assertRejected("ratio", () -> FasterVlmOptions.ratio(1.5));
        assertRejected("ratio", () -> FasterVlmOptions.ratio(Double.NaN));
        assertRejected("scale", () -> FasterVlmOptions.keep(1).withScale(-1f));
        assertRejected("scale", () -> FasterVlmOptions.keep(1).withScale(Float.POSITIVE_INFINITY));
        assertRejected("headDim", () -> FasterVlmOptions.defaultScale(0));
        assertEquals(0.125f, FasterVlmOptions.defaultScale(64));
        assertEquals((float) (1 / Math.sqrt(72)), FasterVlmOptions.defaultScale(72));

        HostClsAttention in = HostClsAttention.of(q, k, l);
        CpuDevice cpu = new CpuDevice();
        assertRejected("keep: must be in [1, N-1 = 4 patches], got 5", () -> FasterVlm.select(cpu, in, FasterVlmOptions.keep(5)));
        assertRejected("keeps 0 tokens", () -> FasterVlm.select(cpu, in, FasterVlmOptions.ratio(0.1)));
        assertArrayEquals(new int[] {0, 2, 4}, FasterVlmOptions.ratio(0.5).keepOffsets(l), "round-half-even(0.5 * 4) = 2 per image");
        assertArrayEquals(new int[] {0, 29, 58}, FasterVlmOptions.ratio(0.05).keepOffsets(ClsAttentionLayout.dense(2, 577, 1, 1)), "28.8 -> 29");
        assertRejected("scale", () -> FasterVlm.scores(cpu, in, 0f));
        float[] bad = new float[120];
        bad[57] = Float.NaN;  // image 0, token 4, head 2, element 1
        assertRejected("key of image 0, token 4, head 2, element 1", () -> FasterVlm.select(cpu, HostClsAttention.of(q, bad, l), FasterVlmOptions.keep(1)));
    }

    @Test
    void anyresArgumentsAreChecked() {
        Selection s = new Selection(new int[] {0, 1, 2, 3}, new int[] {0, 1, 3}, null);
        assertRejected("gridRows", () -> FasterVlm.anyresTokenOrder(s, 0, 0, 2, 2));
        assertRejected("gridCols", () -> FasterVlm.anyresTokenOrder(s, 0, 1, 0, 2));
        assertRejected("side", () -> FasterVlm.anyresTokenOrder(s, 0, 1, 2, 0));
        assertRejected("firstSet", () -> FasterVlm.anyresTokenOrder(s, 1, 1, 2, 2));
        assertRejected("firstSet", () -> FasterVlm.anyresTokenOrder(s, 0, 2, 2, 2));
        assertRejected("set 1 keeps patch 1", () -> FasterVlm.anyresTokenOrder(s, 0, 1, 2, 1));
        assertRejected("keep", () -> FasterVlm.anyresKeptCount(0, 2, 2));
        assertRejected("patchesPerImage", () -> FasterVlm.concatenatedRows(s, 0));
    }

    @Test
    void deviceArgumentsAreChecked() {
        try (KernelDevice device = TestDevices.open("sim-in-order")) {
            Stream s = device.defaultStream();
            ClsAttentionLayout l = ClsAttentionLayout.dense(2, 5, 3, 4);
            try (Workspace ws = new Workspace(device, s);
                 DeviceBuffer q = device.alloc(24 * 4);
                 DeviceBuffer k = device.alloc(120 * 4);
                 DeviceBuffer small = device.alloc(7);
                 DeviceBuffer kept = device.alloc(2 * 2 * 4)) {
                assertRejected("queries", () -> new DeviceClsAttention(small, k, DType.F32, l));
                assertRejected("keys", () -> new DeviceClsAttention(q, small, DType.F32, l));
                assertRejected("needs 240 bytes", () -> new DeviceClsAttention(q, device.alloc(239), DType.F16, l));
                DeviceClsAttention in = new DeviceClsAttention(q, k, DType.F32, l);
                assertRejected("keptOut", () -> FasterVlm.selectOnDevice(in, FasterVlmOptions.keep(2), small, null, ws, s));
                assertRejected("keepMask", () -> FasterVlm.selectOnDevice(in, FasterVlmOptions.keep(2), kept, small, ws, s));
                assertRejected("keep", () -> FasterVlm.selectOnDevice(in, FasterVlmOptions.keep(5), kept, null, ws, s));
                assertRejected("scoresOut", () -> FasterVlm.scoresOnDevice(in, 0.5f, small, ws, s));
                assertRejected("scale", () -> FasterVlm.scoresOnDevice(in, Float.NaN, kept, ws, s));
                // more tokens than the logits' shared memory holds
                ClsAttentionLayout huge = ClsAttentionLayout.dense(1, 60_000, 1, 1);
                try (DeviceBuffer hk = device.alloc(60_000 * 4)) {
                    assertRejected("tokens: 60000", () -> FasterVlm.scoresOnDevice(new DeviceClsAttention(q, hk, DType.F32, huge), 1f,
                            device.alloc(60_000 * 4), ws, s));
                }
            }
        }
    }

    @Test
    void cpuAndSimAgreeAndTheWorkspaceIsReusableAcrossShapes() {
        try (KernelDevice device = TestDevices.open("sim-random")) {
            Stream s = device.defaultStream();
            try (Workspace ws = new Workspace(device, s)) {
                long seed = 90;
                // shapes change between calls: the arrival tickets are re-zeroed when the batch size changes
                for (int[] shape : new int[][] {{3, 17, 4, 8}, {1, 9, 2, 3}, {3, 17, 4, 8}, {5, 6, 1, 2}, {5, 6, 1, 2}}) {
                    ClsAttentionLayout l = ClsAttentionLayout.dense(shape[0], shape[1], shape[2], shape[3]);
                    Random rnd = new Random(++seed);
                    float[] qh = RandomTokens.gaussian(rnd, Math.toIntExact(l.requiredQueryElements()));
                    float[] kh = RandomTokens.gaussian(rnd, Math.toIntExact(l.requiredKeyElements()));
                    FasterVlmOptions o = FasterVlmOptions.keep(3);
                    Selection want = FasterVlm.select(new CpuDevice(), HostClsAttention.of(qh, kh, l), o);
                    try (DeviceBuffer q = device.alloc(qh.length * 4L);
                         DeviceBuffer k = device.alloc(kh.length * 4L);
                         DeviceBuffer kept = device.alloc(l.images() * 3 * 4L)) {
                        device.upload(qh, q, s);
                        device.upload(kh, k, s);
                        FasterVlm.selectOnDevice(new DeviceClsAttention(q, k, DType.F32, l), o, kept, null, ws, s).await();
                        int[] got = new int[l.images() * 3];
                        device.download(kept, got, s);
                        assertArrayEquals(want.kept(), got, "shape " + java.util.Arrays.toString(shape));
                    }
                }
            }
        }
    }
}
