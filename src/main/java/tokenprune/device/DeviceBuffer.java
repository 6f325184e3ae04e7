package tokenprune.device;

/**
 * A range of device memory: either owned (allocated by {@link KernelDevice#alloc}, freed by
 * {@link #close}) or borrowed (a caller's existing allocation wrapped by {@link KernelDevice#wrap};
 * closing it only forgets it). Addresses are raw device addresses, usable by other libraries that
 * share the device's primary context.
 */
public final class DeviceBuffer implements AutoCloseable {
    private final KernelDevice device;
    private final long address;
    private final long bytes;
    private final boolean owned;
    private boolean closed;

    DeviceBuffer(KernelDevice device, long address, long bytes, boolean owned) {
        this.device = device;
        this.address = address;
        this.bytes = bytes;
        this.owned = owned;
    }

    public KernelDevice device() {
        return device;
    }

    /** The raw device address; throws if the buffer was closed. */
    public long address() {
        if (closed) throw new IllegalStateException("device buffer of " + bytes + " bytes was already closed");
        return address;
    }

    public long bytes() {
        return bytes;
    }

    public boolean owned() {
        return owned;
    }

    /** A borrowed view of {@code [offset, offset + length)} of this buffer. */
    public DeviceBuffer slice(long offset, long length) {
        if (offset < 0 || length < 0 || offset + length > bytes) {
            throw new IllegalArgumentException("slice [" + offset + ", " + (offset + length) + ") is outside a buffer of " + bytes + " bytes");
        }
        return new DeviceBuffer(device, address() + offset, length, false);
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        if (owned) device.free(address);
    }
}
