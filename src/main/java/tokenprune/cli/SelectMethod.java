package tokenprune.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.util.Set;

import tokenprune.device.Device;

/** One {@code select --method NAME}: the options it takes and how it turns input files into indices. */
interface SelectMethod {
    String name();

    /** Options with a value, besides the common --method, --device, --output. */
    Set<String> valued();

    /** Options without a value. */
    Set<String> switches();

    /**
     * Reads its inputs, selects on {@code device} and writes the output file; throws
     * UsageException / IllegalArgumentException / IOException for bad input, before anything
     * is written.
     */
    void run(Args args, Device device, java.nio.file.Path output, PrintStream out) throws IOException;
}
