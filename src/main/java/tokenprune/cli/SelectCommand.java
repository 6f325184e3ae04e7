package tokenprune.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import tokenprune.device.Device;
import tokenprune.device.Devices;

/**
 * {@code select --method NAME ... --output Y.npy [--device auto|cuda|sim|cpu]}: reads NumPy
 * inputs, writes the kept indices as int32 .npy. Each method says which inputs it takes; nothing
 * is written unless the selection succeeded.
 */
final class SelectCommand {
    static final Map<String, SelectMethod> METHODS = new LinkedHashMap<>();

    static {
        for (SelectMethod m : List.of(new DivPruneMethod(), new ScoresMethod(), new FasterVlmMethod(), new DartMethod(), new TransPruneMethod())) METHODS.put(m.name(), m);
    }

    private SelectCommand() {
    }

    static void run(List<String> argv, PrintStream out) throws IOException {
        String name = methodName(argv);
        SelectMethod method = METHODS.get(name);
        if (method == null) throw new UsageException("--method: unknown method '" + name + "'; available: " + String.join(", ", METHODS.keySet()));
        Set<String> valued = new HashSet<>(method.valued());
        valued.addAll(Set.of("--method", "--device", "--output"));
        Args a = Args.parse(argv, valued, method.switches());
        Path output = Path.of(a.require("--output"));
        if (Files.isDirectory(output)) throw new UsageException("--output: is a directory: " + output);
        try (Device device = Devices.open(a.get("--device", "auto"))) {
            method.run(a, device, output, out);
        }
    }

    /** The --method value, found before the other options are parsed (they depend on it). */
    private static String methodName(List<String> argv) {
        for (int i = 0; i < argv.size(); i++) {
            String arg = argv.get(i);
            if (arg.equals("--method") && i + 1 < argv.size()) return argv.get(i + 1);
            if (arg.startsWith("--method=")) return arg.substring("--method=".length());
        }
        throw new UsageException("--method: required");
    }
}
