package tokenprune.kernels;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;

/**
 * The device int through which kernels report rejected input without a host round trip. Each
 * call takes a fresh epoch; a kernel that finds bad input does {@code atomicMax(status, epoch)},
 * and later kernels of the same call skip their writes when {@code *status == epoch}. The word
 * never needs clearing between calls (no memset launch), only when the epoch counter wraps.
 */
public final class StatusWord implements AutoCloseable {
    private final KernelDevice device;
    private final DeviceBuffer word;
    private int epoch;

    public StatusWord(KernelDevice device, Stream stream) {
        this.device = device;
        this.word = device.alloc(4);
        device.fill(word, 0, stream);
    }

    public DeviceBuffer buffer() {
        return word;
    }

    /** The epoch for the next call. */
    public int nextEpoch(Stream stream) {
        if (epoch == Integer.MAX_VALUE) {
            device.fill(word, 0, stream);
            epoch = 0;
        }
        return ++epoch;
    }

    /** Waits for the stream and tells whether a kernel rejected the input of call {@code epoch}. */
    public boolean rejected(int callEpoch, Stream stream) {
        stream.synchronize();
        int[] v = new int[1];
        device.download(word, v, stream);
        return v[0] == callEpoch;
    }

    @Override
    public void close() {
        word.close();
    }
}
