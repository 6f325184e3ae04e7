package tokenprune.methods;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Random;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.reference.GatherReference;
import tokenprune.reference.TopKReference;
import tokenprune.testing.TestDevices;

/**
 * tp_gather_tokens against the reference, bit for bit, for every dtype, several row widths (each
 * copy width: 16, 8, 4, 2 bytes; rows longer than one 2048-byte column slice), padded input and
 * output strides, ragged batches, both position conventions; and the status chain with top-k.
 */
class GatherKernelTest {
    private static final int SENTINEL = 0x7b7b7b7b;

    static java.util.stream.Stream<String> devices() {
        return TestDevices.kernelDevices();
    }

    /** Random rows (16-bit types get random bit patterns: NaN payloads too, a copy must keep them). */
    static HostTokens tokens(DType dtype, Random rnd, TokenLayout layout) {
        int count = (int) layout.requiredElements();
        if (dtype == DType.F32) {
            float[] f = new float[count];
            for (int i = 0; i < count; i++) f[i] = Float.intBitsToFloat(rnd.nextInt() & 0xbfffffff);  // finite-ish, any bits
            return HostTokens.of(f, layout);
        }
        short[] s = new short[count];
        for (int i = 0; i < count; i++) s[i] = (short) rnd.nextInt();
        return HostTokens.of(s, dtype, layout);
    }

    /** A random selection: k_b distinct indices per set, ascending. */
    static Selection randomSelection(Random rnd, TokenLayout layout, int[] ks) {
        int[] keepOffsets = new int[layout.sets() + 1];
        for (int b = 0; b < layout.sets(); b++) keepOffsets[b + 1] = keepOffsets[b] + ks[b];
        float[] scores = new float[layout.totalRows()];
        for (int i = 0; i < scores.length; i++) scores[i] = rnd.nextFloat();
        return new Selection(keepOffsets, TopKReference.select(scores, layout.rowOffsets(), keepOffsets), null);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void everyDtypeWidthAndStrideIsBitExact(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            long seed = 70;
            int[] offsets = {0, 31, 32, 110};  // ragged: 31, 1 and 78 tokens
            int[] ks = {9, 1, 78};
            for (DType dtype : DType.values()) {
                for (int d : new int[] {1, 3, 8, 64, 130, 1030}) {
                    for (int pad : new int[] {0, 1, 8}) {
                        Random rnd = new Random(++seed);
                        TokenLayout layout = TokenLayout.ragged(offsets, d).withRowStride(d + pad);
                        HostTokens t = tokens(dtype, rnd, layout);
                        Selection sel = randomSelection(rnd, layout, ks);
                        for (PositionIds conv : PositionIds.values()) {
                            String what = deviceName + " " + dtype + " d=" + d + " pad=" + pad + " " + conv + " seed=" + seed;
                            Gathered g = GatherTokens.gather(device, t, sel, conv, 5);
                            Object want = GatherReference.gather(t.data(), offsets, d, d + pad, sel.keepOffsets(), sel.kept());
                            if (dtype == DType.F32) assertArrayEquals(floatBits((float[]) want), floatBits(g.floats()), what);
                            else assertArrayEquals((short[]) want, g.bits(), what);
                            assertArrayEquals(GatherReference.positions(sel.keepOffsets(), sel.kept(), conv == PositionIds.ORIGINAL, 5), g.positions(), what);
                        }
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void unalignedBuffersAndPaddedOutputRows(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Stream stream = device.defaultStream();
            Random rnd = new Random(11);
            int n = 40, d = 24;  // 48-byte fp16 rows: 16-byte copies when aligned
            TokenLayout layout = TokenLayout.uniform(2, n, d);
            HostTokens t = tokens(DType.F16, rnd, layout);
            Selection sel = randomSelection(rnd, layout, new int[] {7, 12});
            short[] want = (short[]) GatherReference.gather(t.data(), layout.rowOffsets(), d, d, sel.keepOffsets(), sel.kept());
            int total = 19;
            // input and output moved by 2 bytes (2-byte copies) and by 8 (8-byte copies); padded output rows
            for (int shift : new int[] {0, 2, 8}) {
                long outStride = shift == 0 ? d + 8 : d + 3;  // 64-byte rows keep 16-byte copies; 54-byte rows need 2-byte ones
                try (Workspace ws = new Workspace(device, stream);
                     DeviceBuffer inRaw = device.alloc(2L * n * 2 * d + 16);
                     DeviceBuffer kept = device.alloc(4L * total);
                     DeviceBuffer outRaw = device.alloc(2L * total * outStride + 16);
                     DeviceBuffer pos = device.alloc(4L * total)) {
                    DeviceBuffer in = inRaw.slice(shift, 2L * n * 2 * d);
                    DeviceBuffer out = outRaw.slice(shift, 2L * total * outStride);
                    short[] staged = new short[(int) (inRaw.bytes() / 2)];
                    System.arraycopy((short[]) t.data(), 0, staged, shift / 2, n * 2 * d);
                    device.upload(staged, inRaw, stream);
                    device.upload(sel.kept(), kept, stream);
                    device.fill(outRaw, 0x7b, stream);
                    GatherTokens.gatherOnDevice(device, new DeviceTokens(in, DType.F16, layout), sel.keepOffsets(), kept, out, outStride, pos,
                            PositionIds.ORIGINAL, 0, ws, stream).await();
                    short[] got = new short[(int) (outRaw.bytes() / 2)];
                    device.download(outRaw, got, stream);
                    for (int g = 0; g < total; g++) {
                        for (int j = 0; j < outStride; j++) {
                            short v = got[shift / 2 + (int) (g * outStride) + j];
                            if (j < d) assertEquals(want[g * d + j], v, deviceName + " shift=" + shift + " row " + g + " col " + j);
                            else assertEquals((short) 0x7b7b, v, deviceName + " shift=" + shift + " padding of row " + g + " untouched");
                        }
                    }
                    int[] p = new int[total];
                    device.download(pos, p, stream);
                    assertArrayEquals(sel.kept(), p, "original positions with base 0 are the kept indices");
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void topKThenGatherInOneEpochWritesNothingWhenTheScoresAreRejected(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Stream stream = device.defaultStream();
            int n = 50, d = 4, k = 6;
            TokenLayout layout = TokenLayout.uniform(1, n, d);
            float[] x = new float[n * d];
            for (int i = 0; i < x.length; i++) x[i] = i;
            float[] scores = TopKKernelTest.scores(0, new Random(5), n);
            try (Workspace ws = new Workspace(device, stream);
                 DeviceBuffer xd = device.alloc(4L * n * d);
                 DeviceBuffer sd = device.alloc(4L * n);
                 DeviceBuffer kept = device.alloc(4L * k);
                 DeviceBuffer out = device.alloc(4L * k * d);
                 DeviceBuffer pos = device.alloc(4L * k)) {
                device.upload(x, xd, stream);
                int[] rows = {0, n}, keeps = {0, k};
                for (boolean poison : new boolean[] {true, false}) {
                    scores[17] = poison ? Float.NaN : 0.25f;
                    device.upload(scores, sd, stream);
                    device.fill(out, 0x7b, stream);
                    device.fill(pos, 0x7b, stream);
                    int epoch = ws.status().nextEpoch(stream);
                    TopK.enqueueSelect(device, sd, rows, keeps, kept, null, ws, epoch, stream);
                    GatherTokens.enqueueGather(device, new DeviceTokens(xd, DType.F32, layout), keeps, kept, out, d, pos, PositionIds.RENUMBERED, 0,
                            ws, epoch, stream);
                    Pending p = new Pending(ws.status(), epoch, stream, "scores or kept rejected");
                    float[] o = new float[k * d];
                    int[] ps = new int[k];
                    if (poison) {
                        assertThrows(IllegalArgumentException.class, p::await);
                        device.download(out, o, stream);
                        device.download(pos, ps, stream);
                        for (float v : o) assertEquals(SENTINEL, Float.floatToRawIntBits(v), deviceName + ": gather wrote after a rejection");
                        for (int v : ps) assertEquals(SENTINEL, v);
                    } else {
                        p.await();
                        device.download(out, o, stream);
                        device.download(pos, ps, stream);
                        int[] want = TopKReference.select(scores, k);
                        float[] wantRows = (float[]) GatherReference.gather(x, rows, d, d, keeps, want);
                        assertArrayEquals(wantRows, o);
                        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 5}, ps);
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void anIndexOutsideItsSetIsRejectedOnTheDevice(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Stream stream = device.defaultStream();
            TokenLayout layout = TokenLayout.ragged(new int[] {0, 10, 14}, 2);
            try (Workspace ws = new Workspace(device, stream);
                 DeviceBuffer x = device.alloc(4L * 14 * 2);
                 DeviceBuffer kept = device.alloc(4L * 3);
                 DeviceBuffer out = device.alloc(4L * 3 * 2)) {
                device.upload(new float[28], x, stream);
                device.upload(new int[] {9, 0, 4}, kept, stream);  // set 1 has 4 tokens: index 4 is outside
                device.fill(out, 0x7b, stream);
                Pending p = GatherTokens.gatherOnDevice(device, new DeviceTokens(x, DType.F32, layout), new int[] {0, 2, 3}, kept, out, 2, null,
                        PositionIds.RENUMBERED, 0, ws, stream);
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, p::await);
                assertEquals("kept: an index lies outside its set (0 .. n_b - 1)", e.getMessage());
                int[] o = new int[6];
                device.download(out, o, stream);
                assertEquals(SENTINEL, o[4], "the bad row is not written");
                assertEquals(SENTINEL, o[5], "the bad row is not written");
            }
        }
    }

    private static int[] floatBits(float[] f) {
        int[] b = new int[f.length];
        for (int i = 0; i < f.length; i++) b[i] = Float.floatToRawIntBits(f[i]);
        return b;
    }
}
