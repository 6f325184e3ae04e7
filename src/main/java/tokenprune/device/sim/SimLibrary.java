package tokenprune.device.sim;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * Loads the simulator's shared library from the classpath once. The library is extracted to a
 * fresh temporary file (never reused, so concurrent JVMs cannot see each other's partial copies).
 * Never throws: {@link #reason()} says why the simulator cannot be used.
 */
final class SimLibrary {
    static final String RESOURCE = "/native/linux-x86_64/libtokenprune_cusim.so";

    private SimLibrary() {
    }

    private static final class Holder {
        static final String FAILURE = load();
    }

    static boolean available() {
        return Holder.FAILURE == null;
    }

    static String reason() {
        return available() ? "CPU kernel simulator (" + RESOURCE + ")" : Holder.FAILURE;
    }

    private static String load() {
        if (!System.getProperty("os.name", "").toLowerCase(java.util.Locale.ROOT).contains("linux")
                || !System.getProperty("os.arch", "").matches("amd64|x86_64")) {
            return "the kernel simulator is built for linux-x86_64 only, not " + System.getProperty("os.name") + "/" + System.getProperty("os.arch");
        }
        tokenprune.device.NativeTemp.ensureExists();
        try (InputStream in = SimLibrary.class.getResourceAsStream(RESOURCE)) {
            if (in == null) return "simulator library " + RESOURCE + " is missing from the classpath (was it built by mvn package?)";
            Path file = Files.createTempFile("tokenprune_cusim", ".so");
            file.toFile().deleteOnExit();
            Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
            System.load(file.toAbsolutePath().toString());
            return null;
        } catch (IOException | LinkageError | SecurityException e) {
            return "cannot load the simulator library: " + e.getMessage();
        }
    }
}
