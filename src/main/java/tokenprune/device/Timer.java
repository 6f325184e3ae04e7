package tokenprune.device;

/** Times work queued on a stream: CUDA events on a GPU, the wall clock on the simulator. */
public interface Timer extends AutoCloseable {
    /** Marks the start on the stream. */
    void start();

    /** Marks the end, waits for it, and returns the milliseconds between start and end. */
    double stopMillis();

    @Override
    void close();
}
