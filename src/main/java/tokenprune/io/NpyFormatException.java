package tokenprune.io;

import java.io.IOException;
import java.nio.file.Path;

/**
 * A file is not a .npy file this library can read: bad magic, unsupported version or dtype,
 * Fortran order, big-endian data, a malformed header, or a data section of the wrong length.
 *
 * <p>Checked (a subclass of {@link IOException}) because it describes bad input on disk, which a
 * caller such as a command-line tool should report rather than crash on. The message always
 * starts with the file name, followed by the problem.
 */
public class NpyFormatException extends IOException {
    private static final long serialVersionUID = 1L;

    private final transient Path file;
    private final String problem;

    /**
     * @param file the offending file (may be null if unknown)
     * @param problem what is wrong, in words, without the file name
     */
    public NpyFormatException(Path file, String problem) {
        super((file == null ? "<unknown file>" : file.toString()) + ": " + problem);
        this.file = file;
        this.problem = problem;
    }

    /** @return the offending file, or null if unknown */
    public Path file() {
        return file;
    }

    /** @return the problem description without the file name */
    public String problem() {
        return problem;
    }
}
