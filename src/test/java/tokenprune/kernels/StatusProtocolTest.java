package tokenprune.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;

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
 * next call after the observation runs again. Exercised through a small selection (KvKeepSelect rows).
 */
class StatusProtocolTest {
    static java.util.stream.Stream<String> devices() {
        return TestDevices.kernelDevices();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void aRejectionStopsLaterCallsUntilObserved(String deviceName) {
        KvKeepSelect.Policy keepTwo = KvKeepSelect.Policy.perHead(0, 0, 2);
        int[] rows = {0, 4};
        try (KernelDevice device = TestDevices.open(deviceName);
             Workspace ws = new Workspace(device, device.defaultStream());
             DeviceBuffer bad = device.alloc(16);
             DeviceBuffer good = device.alloc(16);
             DeviceBuffer keep = device.alloc(8)) {
            Stream stream = ws.stream();
            device.upload(new float[] {1, Float.NaN, 3, 4}, bad, stream);
            device.upload(new float[] {5, 1, 7, 2}, good, stream);
            int[] sentinel = {-7, -7};
            device.upload(sentinel, keep, stream);

            Pending first = KvKeepSelect.selectRowsOnDevice(ws, stream, bad, rows, keepTwo, keep, null);   // rejected
            Pending second = KvKeepSelect.selectRowsOnDevice(ws, stream, good, rows, keepTwo, keep, null);  // good input, queued behind it
            Pending third = KvKeepSelect.selectRowsOnDevice(ws, stream, good, rows, keepTwo, keep, null);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, third::await, "stopped by the first call");
            assertTrue(e.getMessage().startsWith("not run: an earlier call"), e.getMessage());
            int[] got = new int[2];
            device.download(keep, got, stream);
            stream.synchronize();
            assertArrayEquals(sentinel, got, "no call behind the rejection wrote its output");
            e = assertThrows(IllegalArgumentException.class, first::await);
            assertTrue(e.getMessage().startsWith("scores"), e.getMessage());
            assertThrows(IllegalArgumentException.class, second::await, "every stopped call reports, in any await order");

            Pending fourth = KvKeepSelect.selectRowsOnDevice(ws, stream, good, rows, keepTwo, keep, null);
            fourth.await();
            device.download(keep, got, stream);
            stream.synchronize();
            assertArrayEquals(new int[] {0, 2}, got, "the next call runs again: " + Arrays.toString(got));
            assertThrows(IllegalArgumentException.class, first::await);
        }
    }

    /** The int epoch wraps: rejections of the ending generation are kept, the new generation starts clean. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void theEpochWrapKeepsUnobservedRejections(String deviceName) {
        KvKeepSelect.Policy keepTwo = KvKeepSelect.Policy.perHead(0, 0, 2);
        int[] rows = {0, 4};
        try (KernelDevice device = TestDevices.open(deviceName);
             Workspace ws = new Workspace(device, device.defaultStream());
             DeviceBuffer bad = device.alloc(16);
             DeviceBuffer good = device.alloc(16);
             DeviceBuffer keep = device.alloc(8)) {
            Stream stream = ws.stream();
            device.upload(new float[] {1, Float.NaN, 3, 4}, bad, stream);
            device.upload(new float[] {5, 1, 7, 2}, good, stream);
            ws.status().skipTo(Integer.MAX_VALUE - 2);
            Pending rejected = KvKeepSelect.selectRowsOnDevice(ws, stream, bad, rows, keepTwo, keep, null);  // epoch MAX - 1
            Pending stopped = KvKeepSelect.selectRowsOnDevice(ws, stream, good, rows, keepTwo, keep, null);  // epoch MAX
            Pending fresh = KvKeepSelect.selectRowsOnDevice(ws, stream, good, rows, keepTwo, keep, null);    // wraps: epoch 1 of the next generation
            fresh.await();
            int[] got = new int[2];
            device.download(keep, got, stream);
            stream.synchronize();
            assertArrayEquals(new int[] {0, 2}, got, "the first call of the new generation ran");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, rejected::await);
            assertTrue(e.getMessage().startsWith("scores"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, stopped::await);
            assertTrue(e.getMessage().startsWith("not run"), e.getMessage());
        }
    }
}
