package tokenprune.kv;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.methods.DType;

/**
 * Device copies of per-layer host arrays for the host-array entry points of the KV classes: layer
 * caches (float[] for F32, raw 16-bit short[] otherwise, {@code layout.elements()} long) or fp32
 * states. Freed on close, on every path.
 */
final class HostLayers implements AutoCloseable {
    final DeviceBuffer[] buffers;
    private final KernelDevice device;

    private HostLayers(KernelDevice device, int layers) {
        this.device = device;
        this.buffers = new DeviceBuffer[layers];
    }

    static HostLayers caches(KernelDevice device, KvLayout layout, Object[] caches, Stream stream) {
        HostLayers h = new HostLayers(device, caches.length);
        try {
            for (int l = 0; l < caches.length; l++) {
                h.buffers[l] = device.alloc(layout.bytes());
                if (layout.dtype() == DType.F32) device.upload((float[]) caches[l], h.buffers[l], stream);
                else device.upload((short[]) caches[l], h.buffers[l], stream);
            }
            return h;
        } catch (RuntimeException e) {
            h.close();
            throw e;
        }
    }

    /** Null for null states. */
    static HostLayers states(KernelDevice device, float[][] states, Stream stream) {
        if (states == null) return null;
        HostLayers h = new HostLayers(device, states.length);
        try {
            for (int l = 0; l < states.length; l++) {
                h.buffers[l] = device.alloc(Math.max(4L, 4L * states[l].length));
                device.upload(states[l], h.buffers[l], stream);
            }
            return h;
        } catch (RuntimeException e) {
            h.close();
            throw e;
        }
    }

    /** The caches back as float[] or short[] (the stream is synchronised). */
    Object[] downloadCaches(KvLayout layout, Stream stream) {
        Object[] out = new Object[buffers.length];
        for (int l = 0; l < buffers.length; l++) {
            if (layout.dtype() == DType.F32) {
                float[] o = new float[(int) layout.elements()];
                device.download(buffers[l], o, stream);
                out[l] = o;
            } else {
                short[] o = new short[(int) layout.elements()];
                device.download(buffers[l], o, stream);
                out[l] = o;
            }
        }
        stream.synchronize();
        return out;
    }

    /** The states back, {@code floats} each (the stream is synchronised). */
    float[][] downloadStates(int floats, Stream stream) {
        float[][] out = new float[buffers.length][floats];
        for (int l = 0; l < buffers.length; l++) device.download(buffers[l], out[l], stream);
        stream.synchronize();
        return out;
    }

    @Override
    public void close() {
        for (DeviceBuffer b : buffers) if (b != null) b.close();
    }
}
