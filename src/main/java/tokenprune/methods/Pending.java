package tokenprune.methods;

import tokenprune.device.Stream;
import tokenprune.kernels.StatusWord;

/**
 * Work queued on a stream whose input check completes on the device. {@link #await} waits for the
 * stream and throws {@link IllegalArgumentException} if a kernel rejected the input, or if an earlier
 * call queued on the same workspace was rejected (that rejection stops every later call until it has
 * been observed, so nothing runs on top of its unapplied results). What a rejected call may have
 * written is stated by each method: the selections write nothing; producers that score rows
 * independently (token scores, keep lists, prefill keep) may have written the rows they accepted.
 */
public final class Pending {
    private final StatusWord status;
    private final int epoch;
    private final Stream stream;
    private final String rejection;
    private final long generation;

    Pending(StatusWord status, int epoch, Stream stream, String rejection) {
        this.status = status;
        this.epoch = epoch;
        this.generation = status.generation();
        this.stream = stream;
        this.rejection = rejection;
    }

    /** For launchers outside this package (e.g. tokenprune.kv) that run their own status epoch. */
    public static Pending of(StatusWord status, int epoch, Stream stream, String rejection) {
        return new Pending(status, epoch, stream, rejection);
    }

    public void await() {
        int by = status.rejectedBy(epoch, generation, stream);
        if (by == epoch) throw new IllegalArgumentException(rejection);
        if (by != 0) throw new IllegalArgumentException("not run: an earlier call queued on this workspace was rejected (await each call, or the first "
                + "one that failed, to see why); this call's check: " + rejection);
    }
}
