package tokenprune.methods;

import java.util.Arrays;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kernels.CosineDistanceKernel;
import tokenprune.kernels.StatusWord;

/**
 * Device scratch for DivPrune on one device: the distance matrices, the nearest-neighbour
 * partials, the device copies of the row and keep offsets, and the status word. Reuse one
 * workspace across calls: buffers grow when a call needs more and are otherwise kept, and the
 * offsets are uploaded only when they change, so a steady stream of same-shaped calls does no
 * allocation and no host-to-device copy. Not thread-safe; close it to free everything.
 */
public final class DivPruneWorkspace implements AutoCloseable {
    private final KernelDevice device;
    private final StatusWord status;
    private DeviceBuffer dist, nnPartial, rowOffsets, keepOffsets;
    private int[] uploadedRowOffsets, uploadedKeepOffsets;

    public DivPruneWorkspace(KernelDevice device, Stream stream) {
        this.device = device;
        this.status = new StatusWord(device, stream);
    }

    public KernelDevice device() {
        return device;
    }

    StatusWord status() {
        return status;
    }

    DeviceBuffer dist() {
        return dist;
    }

    DeviceBuffer nnPartial() {
        return nnPartial;
    }

    DeviceBuffer rowOffsets() {
        return rowOffsets;
    }

    DeviceBuffer keepOffsets() {
        return keepOffsets;
    }

    /** Sizes the buffers for {@code layout} and uploads the offsets if they differ from the last call's. */
    void prepare(TokenLayout layout, int[] keeps, Stream stream) {
        long distFloats = 0;
        for (int b = 0; b < layout.sets(); b++) distFloats += (long) layout.n(b) * layout.n(b);
        dist = ensure(dist, distFloats * 4);
        nnPartial = ensure(nnPartial, CosineDistanceKernel.nnPartialFloats(layout.totalRows(), layout.maxN()) * 4);
        prepareRows(layout, stream);
        if (!Arrays.equals(keeps, uploadedKeepOffsets)) {
            keepOffsets = ensure(keepOffsets, keeps.length * 4L);
            device.upload(keeps, keepOffsets, stream);
            uploadedKeepOffsets = keeps.clone();
        }
    }

    /** Only the row offsets (for the distance kernel alone). */
    void prepareRows(TokenLayout layout, Stream stream) {
        int[] rows = layout.rowOffsets();
        if (!Arrays.equals(rows, uploadedRowOffsets)) {
            rowOffsets = ensure(rowOffsets, rows.length * 4L);
            device.upload(rows, rowOffsets, stream);
            uploadedRowOffsets = rows;
        }
    }

    private DeviceBuffer ensure(DeviceBuffer current, long bytes) {
        if (current != null && current.bytes() >= bytes) return current;
        if (current != null) current.close();
        return device.alloc(Math.max(bytes, 4));
    }

    @Override
    public void close() {
        for (DeviceBuffer b : new DeviceBuffer[] {dist, nnPartial, rowOffsets, keepOffsets}) {
            if (b != null) b.close();
        }
        status.close();
    }
}
