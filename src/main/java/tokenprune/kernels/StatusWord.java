package tokenprune.kernels;

import java.util.HashMap;
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
    /** Bumped when the int epoch wraps, so a call of an older generation is never confused with a new one. */
    private long generation;
    /** Observed rejections per generation: first rejected epoch -> the last epoch issued before the word was cleared. */
    private final Map<Long, TreeMap<Integer, Integer>> refused = new HashMap<>();
    private boolean clearBeforeNextEpoch;

    public StatusWord(KernelDevice device, Stream stream) {
        this.device = device;
        this.word = device.alloc(4);
        device.fill(word, 0, stream);
    }

    public DeviceBuffer buffer() {
        return word;
    }

    /** The generation of the epochs {@link #nextEpoch} hands out now (Pending records it with its epoch). */
    public long generation() {
        return generation;
    }

    /** The epoch for the next call. */
    public int nextEpoch(Stream stream) {
        if (clearBeforeNextEpoch) {  // an observed rejection stops no later call
            device.fill(word, 0, stream);
            clearBeforeNextEpoch = false;
        }
        if (epoch == Integer.MAX_VALUE) {
            // the word is about to be reused from epoch 1: keep what it says about the ending generation
            stream.synchronize();
            int first = read(stream);
            if (first != 0) ranges(generation).put(first, epoch);
            device.fill(word, 0, stream);
            generation++;
            epoch = 0;
        }
        return ++epoch;
    }

    /**
     * Kernels of one call must be queued under the latest epoch: the word keeps the first rejection in
     * stream order, which is the lowest epoch only if epochs reach the stream in increasing order.
     */
    public void requireLatest(int callEpoch) {
        if (callEpoch != epoch)
            throw new IllegalStateException("epoch " + callEpoch + " is not the latest issued (" + epoch + "): queue a call's kernels before the next call takes its epoch");
    }

    /**
     * Waits for the stream; 0 if call {@code callEpoch} of {@code callGeneration} ran, else the epoch of the
     * call whose rejection stopped it ({@code callEpoch} itself, or an earlier call on this word).
     */
    public int rejectedBy(int callEpoch, long callGeneration, Stream stream) {
        Integer by = known(callEpoch, callGeneration);
        if (by != null) return by;
        if (callGeneration != generation) return 0;  // its generation ended: the wrap recorded every rejection of it
        stream.synchronize();
        int first = read(stream);
        if (first == 0 || first > callEpoch) return 0;
        // every call from `first` up to the last epoch issued has finished (the stream is idle) and was stopped
        ranges(generation).put(first, epoch);
        clearBeforeNextEpoch = true;
        return first;
    }

    /** {@link #rejectedBy(int, long, Stream)} for a call of the current generation. */
    public int rejectedBy(int callEpoch, Stream stream) {
        return rejectedBy(callEpoch, generation, stream);
    }

    /** Whether call {@code callEpoch} (current generation) is already known to be rejected (no sync: only rejections observed so far). */
    public boolean knownRejected(int callEpoch) {
        return known(callEpoch, generation) != null;
    }

    /** Waits for the stream and tells whether call {@code epoch} was rejected (by its own input or an earlier call's). */
    public boolean rejected(int callEpoch, Stream stream) {
        return rejectedBy(callEpoch, stream) != 0;
    }

    private Integer known(int callEpoch, long callGeneration) {
        TreeMap<Integer, Integer> r = refused.get(callGeneration);
        Map.Entry<Integer, Integer> e = r == null ? null : r.floorEntry(callEpoch);
        return e != null && callEpoch <= e.getValue() ? e.getKey() : null;
    }

    private TreeMap<Integer, Integer> ranges(long gen) {
        return refused.computeIfAbsent(gen, g -> new TreeMap<>());
    }

    private int read(Stream stream) {
        int[] v = new int[1];
        device.download(word, v, stream);
        return v[0];
    }

    /** For tests: continue as if {@code issued} epochs had been handed out (to reach the wrap). */
    void skipTo(int issued) {
        epoch = issued;
    }

    @Override
    public void close() {
        word.close();
    }
}
