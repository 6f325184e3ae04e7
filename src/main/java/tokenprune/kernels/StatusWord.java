package tokenprune.kernels;

import java.util.Map;
import java.util.TreeMap;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;

/**
 * The device int through which kernels report rejected input without a host round trip. Each
 * call takes a fresh, increasing epoch; a kernel that finds bad input does {@code tp_reject}
 * (compare-and-swap from 0), so the word holds the epoch of the FIRST rejected call, and every
 * later call treats itself as rejected while the word is non-zero and not above its epoch: no call
 * runs on top of what an earlier rejected call left unapplied (src/main/cuda/common.cuh). The word
 * needs no clearing between calls (no memset launch): once {@link #rejectedBy} has seen a rejection it
 * remembers which epochs were refused (so every call of the poisoned range still reports) and the next
 * {@link #nextEpoch} clears the word. A caller that reuses one epoch over several calls (a multi-call
 * request) must not launch more work under an epoch {@link #knownRejected} reports.
 */
public final class StatusWord implements AutoCloseable {
    private final KernelDevice device;
    private final DeviceBuffer word;
    private int epoch;
    /** Observed rejections: first rejected epoch -> the last epoch issued before the word was cleared. */
    private final TreeMap<Integer, Integer> refused = new TreeMap<>();
    private boolean clearBeforeNextEpoch;

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
        if (clearBeforeNextEpoch) {  // an observed rejection stops no later call
            device.fill(word, 0, stream);
            clearBeforeNextEpoch = false;
        }
        if (epoch == Integer.MAX_VALUE) {
            stream.synchronize();
            device.fill(word, 0, stream);
            refused.clear();
            epoch = 0;
        }
        return ++epoch;
    }

    /**
     * Waits for the stream; 0 if call {@code callEpoch} ran, else the epoch of the call whose rejection
     * stopped it ({@code callEpoch} itself, or an earlier call on this word).
     */
    public int rejectedBy(int callEpoch, Stream stream) {
        Map.Entry<Integer, Integer> known = refused.floorEntry(callEpoch);
        if (known != null && callEpoch <= known.getValue()) return known.getKey();
        stream.synchronize();
        int[] v = new int[1];
        device.download(word, v, stream);
        int first = v[0];
        if (first == 0 || first > callEpoch) return 0;
        // every call from `first` up to the last epoch issued has finished (the stream is idle) and was stopped
        refused.put(first, epoch);
        clearBeforeNextEpoch = true;
        return first;
    }

    /** Whether call {@code callEpoch} is already known to be rejected (no sync: only rejections observed so far). */
    public boolean knownRejected(int callEpoch) {
        Map.Entry<Integer, Integer> known = refused.floorEntry(callEpoch);
        return known != null && callEpoch <= known.getValue();
    }

    /** Waits for the stream and tells whether call {@code epoch} was rejected (by its own input or an earlier call's). */
    public boolean rejected(int callEpoch, Stream stream) {
        return rejectedBy(callEpoch, stream) != 0;
    }

    @Override
    public void close() {
        word.close();
    }
}
