package tokenprune.methods;

import tokenprune.device.Stream;
import tokenprune.kernels.StatusWord;

/**
 * Work queued on a stream whose input check completes on the device. {@link #await} waits for the
 * stream and throws {@link IllegalArgumentException} if a kernel rejected the input (in which case
 * nothing was written to the caller's outputs).
 */
public final class Pending {
    private final StatusWord status;
    private final int epoch;
    private final Stream stream;
    private final String rejection;

    Pending(StatusWord status, int epoch, Stream stream, String rejection) {
        this.status = status;
        this.epoch = epoch;
        this.stream = stream;
        this.rejection = rejection;
    }

    /** For launchers outside this package (e.g. tokenprune.kv) that run their own status epoch. */
    public static Pending of(StatusWord status, int epoch, Stream stream, String rejection) {
        return new Pending(status, epoch, stream, rejection);
    }

    public void await() {
        if (status.rejected(epoch, stream)) throw new IllegalArgumentException(rejection);
    }
}
