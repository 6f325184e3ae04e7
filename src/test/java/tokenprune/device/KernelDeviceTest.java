package tokenprune.device;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import tokenprune.device.cuda.CudaProbe;
import tokenprune.kernels.KernelCatalog;
import tokenprune.testing.TestDevices;

/** The launch path both kernel devices share: argument checks, launch limits, memory ownership. */
class KernelDeviceTest {
    static java.util.stream.Stream<String> devices() {
        return TestDevices.kernelDevices();
    }

    private static final KernelSpec SELECT = KernelCatalog.all().stream().filter(k -> k.name().equals("tp_divprune_select")).findFirst().orElseThrow();

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void launchLimitsAreRefusedWithTheSameException(String name) {
        try (KernelDevice device = TestDevices.open(name); DeviceBuffer b = device.alloc(64)) {
            KernelArgs args = KernelArgs.of().ptr(b).ptr(b).i32(1).ptr(b).ptr(b).i32(0).ptr(b).i32(1).ptr(b).ptr(b);
            Stream s = device.defaultStream();
            KernelLaunchException tooMany = assertThrows(KernelLaunchException.class,
                    () -> device.launch(SELECT, Dim3.of(1), new Dim3(32, 32, 2), 0, s, args));
            assertTrue(tooMany.getMessage().contains("tp_divprune_select") && tooMany.getMessage().contains("2048 threads per block exceed 1024"),
                    tooMany.getMessage());
            assertTrue(tooMany.getMessage().contains("block (32,32,2)"), tooMany.getMessage());
            KernelLaunchException tooWide = assertThrows(KernelLaunchException.class,
                    () -> device.launch(SELECT, Dim3.of(1), Dim3.of(2048), 0, s, args));
            assertTrue(tooWide.getMessage().contains("block dimensions exceed"), tooWide.getMessage());
            KernelLaunchException smem = assertThrows(KernelLaunchException.class,
                    () -> device.launch(SELECT, Dim3.of(1), Dim3.of(32), device.maxDynamicSharedBytes() + 1, s, args));
            assertTrue(smem.getMessage().contains("dynamic shared memory"), smem.getMessage());
            assertThrows(KernelLaunchException.class, () -> device.launch(SELECT, new Dim3(1, 70000, 1), Dim3.of(32), 0, s, args));
            assertThrows(KernelLaunchException.class, () -> device.launch(SELECT, Dim3.of(0), Dim3.of(32), 0, s, args));
            assertThrows(KernelLaunchException.class, () -> device.launch(SELECT, Dim3.of(1), new Dim3(1, 1, 65), 0, s, args));
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void argumentsMustMatchTheSignature(String name) {
        try (KernelDevice device = TestDevices.open(name); DeviceBuffer b = device.alloc(64)) {
            KernelArgs wrong = KernelArgs.of().ptr(b).ptr(b).i64(1).ptr(b).ptr(b).i32(0).ptr(b).i32(1).ptr(b).ptr(b);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> device.launch(SELECT, Dim3.of(1), Dim3.of(32), 0, device.defaultStream(), wrong));
            assertTrue(e.getMessage().contains("tp_divprune_select takes"), e.getMessage());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void copiesRoundTripAndBorrowedBuffersAreNotFreed(String name) {
        try (KernelDevice device = TestDevices.open(name)) {
            Stream s = device.defaultStream();
            float[] data = {1.5f, -2f, 3.25f, 0f, 7f};
            try (DeviceBuffer owned = device.alloc(20)) {
                device.upload(data, owned, s);
                try (DeviceBuffer borrowed = device.wrap(owned.address(), owned.bytes())) {
                    assertFalse(borrowed.owned());
                    float[] back = new float[5];
                    device.download(borrowed, back, s);
                    assertArrayEquals(data, back);
                }
                // closing the borrowed view left the allocation alive
                float[] again = new float[5];
                device.download(owned, again, s);
                assertArrayEquals(data, again);
                try (DeviceBuffer copy = device.alloc(20)) {
                    device.copy(owned.slice(4, 16), copy, 16, s);
                    float[] tail = new float[4];
                    device.download(copy, tail, s);
                    assertArrayEquals(new float[] {-2f, 3.25f, 0f, 7f}, tail);
                }
                assertThrows(IllegalArgumentException.class, () -> device.upload(new float[6], owned, s));
            }
            DeviceBuffer closed = device.alloc(8);
            closed.close();
            assertThrows(IllegalStateException.class, closed::address);
        }
    }

    @Test
    void theCudaProbeNeverThrowsAndAlwaysGivesAReason() {
        boolean available = CudaProbe.available();
        String reason = CudaProbe.reason();
        assertFalse(reason == null || reason.isBlank());
        assertEquals(available, CudaProbe.available(), "cached");
        assertEquals(reason, CudaProbe.reason(), "cached");
    }

    @Test
    void autoPicksCudaOrCpuAndTheOverrideWins() {
        System.setProperty(Devices.PROPERTY, "cpu");
        try (Device d = Devices.openAuto()) {
            assertEquals(DeviceKind.CPU, d.kind());
        } finally {
            System.clearProperty(Devices.PROPERTY);
        }
        try (Device d = Devices.openAuto()) {
            assertEquals(CudaProbe.available() ? DeviceKind.CUDA : DeviceKind.CPU, d.kind());
        }
        System.setProperty(Devices.PROPERTY, "gpu-please");
        try {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, Devices::openAuto);
            assertTrue(e.getMessage().contains("gpu-please"));
        } finally {
            System.clearProperty(Devices.PROPERTY);
        }
    }
}
