package tokenprune.device;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * JCuda and the simulator loader extract native libraries into java.io.tmpdir. Test forks point
 * it at a per-fork folder (so concurrent forks never share a half-written library) that may not
 * exist yet; create it before either loader runs.
 */
public final class NativeTemp {
    private NativeTemp() {
    }

    public static void ensureExists() {
        try {
            Files.createDirectories(Path.of(System.getProperty("java.io.tmpdir")));
        } catch (IOException | RuntimeException e) {
            // The loaders then report the failure themselves, with their own context.
        }
    }
}
