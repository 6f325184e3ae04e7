package tokenprune.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kv.KvKeepSelect;
import tokenprune.methods.Pending;
import tokenprune.methods.Workspace;
import tokenprune.testing.TestDevices;

/**
 * The status-word protocol (common.cuh, StatusWord): the first rejection sticks and stops every later
 * call queued on the same workspace until the host has observed it; each of those calls reports; the
 * next call after the observation runs again; the int epoch's wrap loses no unobserved rejection.
 * Exercised through a small selection (KvKeepSelect rows: keep 2 of 4).
 */
class StatusProtocolTest {
    static java.util.stream.Stream<String> devices() {
        return TestDevices.kernelDevices();
    }

    /** A workspace, one row of scores with a NaN, one good row, and the keep output. */
    static final class Rig implements AutoCloseable {
        final KernelDevice device;
        final Workspace ws;
        final Stream stream;
        final DeviceBuffer bad, good, keep;

        Rig(String deviceName) {
            device = TestDevices.open(deviceName);
            ws = new Workspace(device, device.defaultStream());
            stream = ws.stream();
            bad = device.alloc(16);
            good = device.alloc(16);
            keep = device.alloc(8);
            device.upload(new float[] {1, Float.NaN, 3, 4}, bad, stream);
            device.upload(new float[] {5, 1, 7, 2}, good, stream);
            device.upload(new int[] {-7, -7}, keep, stream);
        }

        Pending select(DeviceBuffer scores) {
            return KvKeepSelect.selectRowsOnDevice(ws, stream, scores, new int[] {0, 4}, KvKeepSelect.Policy.perHead(0, 0, 2), keep, null);
        }

        int[] kept() {
            int[] got = new int[2];
            device.download(keep, got, stream);
            stream.synchronize();
            return got;
        }

        @Override
        public void close() {
            keep.close();
            good.close();
            bad.close();
            ws.close();
            device.close();
        }
    }

    static void assertStopped(Pending p) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, p::await);
        assertTrue(e.getMessage().startsWith("not run: an earlier call"), e.getMessage());
    }

    static void assertRejectedItself(Pending p) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, p::await);
        assertTrue(e.getMessage().startsWith("scores"), e.getMessage());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void aRejectionStopsLaterCallsUntilObserved(String deviceName) {
        try (Rig r = new Rig(deviceName)) {
            Pending first = r.select(r.bad);    // rejected
            Pending second = r.select(r.good);  // good input, queued behind it
            Pending third = r.select(r.good);
            assertStopped(third);
            assertArrayEquals(new int[] {-7, -7}, r.kept(), "no call behind the rejection wrote its output");
            assertRejectedItself(first);
            assertStopped(second);              // every stopped call reports, in any await order
            r.select(r.good).await();           // the next call runs again
            assertArrayEquals(new int[] {0, 2}, r.kept());
            assertRejectedItself(first);        // awaiting again still reports
        }
    }

    /** The int epoch wraps: rejections of the ending generation are kept, the new generation starts clean. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void theEpochWrapKeepsUnobservedRejections(String deviceName) {
        try (Rig r = new Rig(deviceName)) {
            r.ws.status().skipTo(Integer.MAX_VALUE - 2);
            Pending rejected = r.select(r.bad);   // epoch MAX - 1
            Pending stopped = r.select(r.good);   // epoch MAX
            Pending fresh = r.select(r.good);     // wraps: epoch 1 of the next generation
            fresh.await();
            assertArrayEquals(new int[] {0, 2}, r.kept(), "the first call of the new generation ran");
            assertRejectedItself(rejected);
            assertStopped(stopped);
        }
    }
}
