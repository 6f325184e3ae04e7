package tokenprune.methods;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kernels.StatusWord;

/**
 * Device scratch for the methods' kernels on one device: named scratch buffers that grow when a
 * call needs more and are otherwise kept, device copies of small int arrays (row and keep
 * offsets) that are uploaded only when their contents change, and the status word through which
 * kernels reject bad input. Reuse one workspace across calls: a steady stream of same-shaped calls
 * then allocates nothing and copies nothing from the host. Not thread-safe; close it to free
 * everything.
 *
 * <p>A workspace serves ONE stream (the one it was created with): its buffers and status word are
 * reused call after call, which is only safe when the calls are ordered. Use one workspace per
 * stream; passing another stream is rejected.
 */
public final class Workspace implements AutoCloseable {
    private final KernelDevice device;
    private final Stream stream;
    private final StatusWord status;
    private final Map<String, DeviceBuffer> scratch = new HashMap<>();
    private final Map<String, DeviceBuffer> arrays = new HashMap<>();
    private final Map<String, int[]> uploaded = new HashMap<>();

    public Workspace(KernelDevice device, Stream stream) {
        this.device = device;
        this.stream = stream;
        this.status = new StatusWord(device, stream);
    }

    public KernelDevice device() {
        return device;
    }

    public StatusWord status() {
        return status;
    }

    /** A scratch buffer of at least {@code bytes} (contents undefined), kept under {@code name}. */
    public DeviceBuffer scratch(String name, long bytes) {
        DeviceBuffer b = scratch.get(name);
        if (b != null && b.bytes() >= bytes) return b;
        if (b != null) {
            scratch.remove(name);  // a failed allocation below must not leave the closed buffer behind
            retire(b);
        }
        b = device.alloc(Math.max(bytes, 4));
        scratch.put(name, b);
        return b;
    }

    /** The device copy of {@code values} under {@code name}, uploaded only if it differs from the last one. */
    public DeviceBuffer ints(String name, int[] values, Stream stream) {
        requireStream(stream);
        DeviceBuffer b = arrays.get(name);
        if (b != null && Arrays.equals(values, uploaded.get(name))) return b;
        if (b == null || b.bytes() < values.length * 4L) {
            if (b != null) {
                arrays.remove(name);
                uploaded.remove(name);
                retire(b);
            }
            b = device.alloc(Math.max(values.length * 4L, 4));
            arrays.put(name, b);
        }
        device.upload(values, b, this.stream);
        uploaded.put(name, values.clone());
        return b;
    }

    /** The stream this workspace serves. */
    public Stream stream() {
        return stream;
    }

    /** Rejects work on a stream other than this workspace's (its buffers would be shared unordered). */
    public void requireStream(Stream s) {
        if (s.device() != device || s.handle() != stream.handle()) {
            throw new IllegalArgumentException("stream: this workspace serves stream " + stream.handle() + ", not " + s.handle()
                    + "; use one workspace per stream");
        }
    }

    /** Frees a buffer that queued kernels may still read: growth is rare, so wait for this stream first. */
    private void retire(DeviceBuffer b) {
        stream.synchronize();
        b.close();
    }

    @Override
    public void close() {
        scratch.values().forEach(DeviceBuffer::close);
        arrays.values().forEach(DeviceBuffer::close);
        scratch.clear();
        arrays.clear();
        status.close();
    }
}
