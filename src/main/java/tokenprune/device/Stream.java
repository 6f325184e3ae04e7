package tokenprune.device;

/**
 * A stream on a kernel device: work on one stream runs in order. {@link KernelDevice#defaultStream}
 * is the legacy default stream; {@link KernelDevice#wrapStream} borrows a caller's CUstream so that
 * tokenprune's kernels queue behind the caller's own work. Closing an owned stream destroys it;
 * closing a borrowed or default stream does nothing.
 */
public final class Stream implements AutoCloseable {
    private final KernelDevice device;
    private final long handle;
    private final boolean owned;
    private boolean closed;

    Stream(KernelDevice device, long handle, boolean owned) {
        this.device = device;
        this.handle = handle;
        this.owned = owned;
    }

    public KernelDevice device() {
        return device;
    }

    /** The raw CUstream handle (0 = the legacy default stream). */
    public long handle() {
        if (closed) throw new IllegalStateException("stream was already closed");
        return handle;
    }

    /** Blocks until all work queued on this stream has finished. */
    public void synchronize() {
        device.synchronize(this);
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        if (owned) device.destroyStream(handle);
    }
}
