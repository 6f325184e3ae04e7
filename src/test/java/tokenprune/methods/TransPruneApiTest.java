package tokenprune.methods;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;

import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import tokenprune.device.Device;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.testing.TestDevices;

/** Bad input through TransPrune's host and device APIs: rejected, named, and nothing written. */
class TransPruneApiTest {
    static final ImageSequences SEQS = ImageSequences.of(new int[] {9, 12}, new int[] {1, 2}, new int[] {5, 6});
    static final int D = 8, HEADS = 2, DH = 4;
    static final TransPruneSchedule TWO_STAGES = TransPruneSchedule.of(new int[] {1}, new int[] {1, 2}, new double[] {0.5, 0.25});

    static java.util.stream.Stream<String> devices() {
        return TestDevices.kernelDevices();
    }

    static java.util.stream.Stream<String> devicesAndCpu() {
        return TransPruneKernelTest.devicesAndCpu();
    }

    private static float[] gaussian(long seed, int n) {
        return TransPruneKernelTest.gaussian(new Random(seed), n);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devicesAndCpu")
    void nonFiniteOrZeroInputIsRejectedWithItsPlace(String name) {
        int rows = SEQS.totalRows();
        TransPruneOptions o = TransPruneOptions.defaults().schedule(TWO_STAGES);
        try (Device device = TransPruneKernelTest.openAny(name)) {
            float[] u = gaussian(1, rows * D), v = gaussian(2, rows * D);
            u[(9 + 3) * D + 2] = Float.NaN;  // sequence 1, token 3, feature 2
            assertRejected(device, o, u, v, null, null, "u: non-finite value at set 1, token 3, feature 2");
            u[(9 + 3) * D + 2] = 0.5f;
            v[4 * D] = Float.NEGATIVE_INFINITY;
            assertRejected(device, o, u, v, null, null, "v: non-finite value at set 0, token 4, feature 0");
            v[4 * D] = 1f;
            float[] zero = u.clone();
            java.util.Arrays.fill(zero, 2 * D, 3 * D, 0f);
            assertRejected(device, o, zero, v, null, null, "u: set 0, token 2 is a zero vector");
            float[] q = gaussian(3, rows * HEADS * DH), k = gaussian(4, rows * HEADS * DH);
            k[(9 + 10) * HEADS * DH + DH + 1] = Float.NaN;  // packed row 19 (sequence 1, token 10), head 1, feature 1
            assertRejected(device, o, u, v, q, k, "k: non-finite value at token 19, head 1, feature 1");
            k[(9 + 10) * HEADS * DH + DH + 1] = 0f;
            q[(9 + 10) * HEADS * DH] = Float.POSITIVE_INFINITY;  // a text row after the image of sequence 1
            assertRejected(device, o, u, v, q, k, "q: non-finite value at token 19, head 0, feature 0");
        }
    }

    private static void assertRejected(Device device, TransPruneOptions o, float[] u, float[] v, float[] q, float[] k, String message) {
        try (TransPruneSession s = TransPrune.open(device, SEQS, o)) {
            HostTokens ut = HostTokens.of(u, SEQS.layout(D)), vt = HostTokens.of(v, SEQS.layout(D));
            int rows = SEQS.totalRows();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> {
                s.addSubBlock(ut, vt);
                s.prune(HostHeads.packed(q, rows, HEADS, DH), HostHeads.packed(k, rows, HEADS, DH));
            });
            assertTrue(e.getMessage().startsWith(message), device.kind() + ": " + e.getMessage());
            assertThrows(IllegalStateException.class, () -> s.addSubBlock(ut, vt), "the session is void after a rejection");
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void aRejectedRequestWritesNothingLaterAndResetRecovers(String name) {
        int rows = SEQS.totalRows();
        try (KernelDevice device = TestDevices.open(name)) {
            Stream stream = device.defaultStream();
            try (Workspace ws = new Workspace(device, stream);
                 DeviceBuffer u = device.alloc(4L * rows * D);
                 DeviceBuffer v = device.alloc(4L * rows * D);
                 DeviceBuffer q = device.alloc(4L * rows * HEADS * DH);
                 DeviceBuffer k = device.alloc(4L * rows * HEADS * DH);
                 DeviceBuffer kept = device.alloc(4L * SEQS.totalImage());
                 DeviceBuffer gather = device.alloc(4L * rows);
                 TransPruneAccumulator acc = TransPrune.begin(ws, stream, SEQS, TransPruneOptions.defaults().schedule(TWO_STAGES))) {
                float[] uh = gaussian(5, rows * D);
                uh[3 * D + 1] = Float.NaN;
                device.upload(uh, u, stream);
                device.upload(gaussian(6, rows * D), v, stream);
                device.upload(gaussian(7, rows * HEADS * DH), q, stream);
                device.upload(gaussian(8, rows * HEADS * DH), k, stream);
                device.fill(kept, 0x7b, stream);
                device.fill(gather, 0x7b, stream);
                DeviceTokens ut = new DeviceTokens(u, DType.F32, SEQS.layout(D)), vt = new DeviceTokens(v, DType.F32, SEQS.layout(D));
                DeviceHeads qh = new DeviceHeads(q, DType.F32, HeadLayout.packed(rows, HEADS, DH)), kh = new DeviceHeads(k, DType.F32, HeadLayout.packed(rows, HEADS, DH));
                assertThrows(IllegalArgumentException.class, acc.addSubBlock(ut, vt)::await);
                Pending p = acc.prune(qh, kh, kept, gather);
                assertThrows(IllegalArgumentException.class, p::await, "the whole request is rejected");
                int sentinel = 0x7b7b7b7b;
                int[] keptHost = new int[SEQS.totalImage()], gatherHost = new int[rows];
                device.download(kept, keptHost, stream);
                device.download(gather, gatherHost, stream);
                for (int x : keptHost) assertEquals(sentinel, x, "keptOut untouched");
                for (int x : gatherHost) assertEquals(sentinel, x, "rowGatherOut untouched");

                // a new request on the same accumulator and workspace
                uh[3 * D + 1] = 0.25f;
                device.upload(uh, u, stream);
                acc.reset(SEQS);
                acc.addSubBlock(ut, vt);
                acc.prune(qh, kh, kept, gather).await();
                ImageSequences after = acc.current();
                assertArrayEquals(new int[] {2, 3}, after.imageCounts(), "int(5 * 0.5), int(6 * 0.5)");
                int[] k1 = new int[after.totalImage()];
                device.download(kept, k1, stream);
                int[] g1 = new int[after.totalRows()];
                device.download(gather, g1, stream);
                assertArrayEquals(SEQS.rowGather(after.imageOffsets(), k1), g1);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devicesAndCpu")
    void badShapesAreRejectedNamingTheArgument(String name) {
        int rows = SEQS.totalRows();
        HostTokens good = HostTokens.of(gaussian(1, rows * D), SEQS.layout(D));
        HostHeads q = HostHeads.packed(gaussian(2, rows * HEADS * DH), rows, HEADS, DH);
        HostHeads k = HostHeads.packed(gaussian(3, rows * HEADS * DH), rows, HEADS, DH);
        try (Device device = TransPruneKernelTest.openAny(name)) {
            assertMessage("imageCount", () -> ImageSequences.of(new int[] {4}, new int[] {1}, new int[] {0}));
            assertMessage("imageCount", () -> ImageSequences.of(new int[] {4}, new int[] {1}, new int[] {4}));
            assertMessage("imageStart", () -> ImageSequences.of(new int[] {4, 5}, new int[] {1}, new int[] {2, 2}));
            assertMessage("lengths", () -> ImageSequences.of(new int[] {0}, new int[] {0}, new int[] {1}));
            assertMessage("headStride", () -> new HeadLayout(4, 2, 8, 16, 4));
            assertMessage("options", () -> TransPrune.open(device, SEQS, TransPruneOptions.defaults().weights(0, 1).ttvOnly(true)));
            try (TransPruneSession s = TransPrune.open(device, SEQS, TransPruneOptions.defaults().schedule(TWO_STAGES))) {
                HostTokens wrongRows = HostTokens.of(gaussian(1, rows * D), TokenLayout.ragged(new int[] {0, 10, rows}, D));
                assertMessage("u", () -> s.addSubBlock(wrongRows, good));
                assertMessage("v", () -> s.addSubBlock(good, wrongRows));
                assertMessage("v", () -> s.addSubBlock(good, HostTokens.of(gaussian(1, rows * 3), SEQS.layout(3))));
                assertMessage("v", () -> s.addSubBlock(good, HostTokens.of(new short[rows * D], DType.F16, SEQS.layout(D))));
                assertMessage("keepCounts", () -> s.pruneTo(new int[] {0, 1}, q, k));
                assertMessage("keepCounts", () -> s.pruneTo(new int[] {6, 1}, q, k));
                assertMessage("keepCounts", () -> s.pruneTo(new int[] {1}, q, k));
                HostHeads shortQ = HostHeads.packed(gaussian(2, (rows - 1) * HEADS * DH), rows - 1, HEADS, DH);
                assertMessage("q", () -> s.prune(shortQ, k));
                HostHeads threeKv = HostHeads.packed(gaussian(3, rows * 3 * DH), rows, 3, DH);
                HostHeads fourQ = HostHeads.packed(gaussian(3, rows * 4 * DH), rows, 4, DH);
                assertMessage("k: kv heads (3) must divide", () -> s.prune(fourQ, threeKv));
                assertMessage("k: head dim", () -> s.prune(q, HostHeads.packed(gaussian(3, rows * HEADS * 2), rows, HEADS, 2)));
                assertMessage("k: dtype", () -> s.prune(q, HostHeads.of(new short[rows * HEADS * DH], DType.BF16, HeadLayout.packed(rows, HEADS, DH))));
                assertThrows(NullPointerException.class, () -> s.prune(null, k));
                s.addSubBlock(good, good);  // still usable: shape errors void nothing
                s.prune(q, k);
                s.prune(HostHeads.packed(gaussian(2, s.current().totalRows() * HEADS * DH), s.current().totalRows(), HEADS, DH),
                        HostHeads.packed(gaussian(3, s.current().totalRows() * HEADS * DH), s.current().totalRows(), HEADS, DH));
                assertArrayEquals(new int[] {1, 1}, s.current().imageCounts(), "int(5 * 0.25) = 1, int(6 * 0.25) = 1");
                assertThrows(IllegalStateException.class, () -> s.prune(q, k), "every stage is done");
            }
            ImageSequences noText = ImageSequences.of(new int[] {6, 5}, new int[] {1, 0}, new int[] {4, 5});
            try (TransPruneSession s = TransPrune.open(device, noText, TransPruneOptions.defaults())) {
                HostHeads q2 = HostHeads.packed(new float[11 * DH], 11, 1, DH);
                assertMessage("sequences: sequence 1 has no text token", () -> s.pruneTo(new int[] {2, 2}, q2, q2));
            }
            try (TransPruneSession s = TransPrune.open(device, noText, TransPruneOptions.defaults().ttvOnly(true))) {
                HostHeads q2 = HostHeads.packed(new float[11 * DH], 11, 1, DH);
                assertMessage("q/k", () -> s.pruneTo(new int[] {2, 2}, q2, q2));
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void deviceBuffersAreChecked(String name) {
        int rows = SEQS.totalRows();
        try (KernelDevice device = TestDevices.open(name)) {
            Stream stream = device.defaultStream();
            try (Workspace ws = new Workspace(device, stream);
                 DeviceBuffer x = device.alloc(4L * rows * D);
                 DeviceBuffer h = device.alloc(4L * rows * HEADS * DH);
                 DeviceBuffer small = device.alloc(4);
                 TransPruneAccumulator acc = TransPrune.begin(ws, stream, SEQS, TransPruneOptions.defaults())) {
                DeviceTokens t = new DeviceTokens(x, DType.F32, SEQS.layout(D));
                assertMessage("tokens", () -> new DeviceTokens(small, DType.F32, SEQS.layout(D)));
                assertMessage("heads", () -> new DeviceHeads(small, DType.F32, HeadLayout.packed(rows, HEADS, DH)));
                assertMessage("u", () -> acc.addSubBlock(new DeviceTokens(x, DType.F32, TokenLayout.ragged(new int[] {0, rows}, D)), t));
                DeviceHeads qh = new DeviceHeads(h, DType.F32, HeadLayout.packed(rows, HEADS, DH));
                int[] keep = {2, 3};
                assertMessage("keptOut", () -> acc.pruneTo(keep, qh, qh, small, null));
                assertMessage("rowGatherOut", () -> acc.pruneTo(keep, qh, qh, null, small));
                assertEquals(0, acc.stagesDone(), "nothing was queued");
            }
        }
    }

    static void assertMessage(String argument, Executable call) {
        TransPruneScheduleTest.assertMessage(argument, call);
    }
}
