package tokenprune.cli;

import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** {@code --name value} options and {@code --flag} switches, each allowed at most once. */
final class Args {
    private final Map<String, String> values = new HashMap<>();
    private final Set<String> flags = new HashSet<>();

    private Args() {
    }

    /**
     * @param valued options that take a value
     * @param switches options without a value
     */
    static Args parse(List<String> argv, Set<String> valued, Set<String> switches) {
        Args a = new Args();
        for (int i = 0; i < argv.size(); i++) {
            String arg = argv.get(i);
            String name = arg, inline = null;
            int eq = arg.indexOf('=');
            if (arg.startsWith("--") && eq > 0) {
                name = arg.substring(0, eq);
                inline = arg.substring(eq + 1);
            }
            if (switches.contains(name) && inline == null) {
                if (!a.flags.add(name)) throw new UsageException(name + ": given twice");
            } else if (valued.contains(name)) {
                String v = inline;
                if (v == null) {
                    if (i + 1 >= argv.size()) throw new UsageException(name + ": needs a value");
                    v = argv.get(++i);
                }
                if (a.values.put(name, v) != null) throw new UsageException(name + ": given twice");
            } else {
                throw new UsageException("unknown option '" + arg + "'");
            }
        }
        return a;
    }

    boolean has(String name) {
        return values.containsKey(name) || flags.contains(name);
    }

    String get(String name, String fallback) {
        return values.getOrDefault(name, fallback);
    }

    String require(String name) {
        String v = values.get(name);
        if (v == null) throw new UsageException(name + ": required");
        return v;
    }

    int intValue(String name, int fallback) {
        String v = values.get(name);
        if (v == null) return fallback;
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new UsageException(name + ": not an integer: '" + v + "'");
        }
    }

    double doubleValue(String name) {
        String v = require(name);
        try {
            return Double.parseDouble(v.trim());
        } catch (NumberFormatException e) {
            throw new UsageException(name + ": not a number: '" + v + "'");
        }
    }

    /** A comma-separated list of positive integers. */
    int[] intList(String name, int[] fallback) {
        String v = values.get(name);
        if (v == null) return fallback;
        String[] parts = v.split(",");
        int[] out = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            try {
                out[i] = Integer.parseInt(parts[i].trim());
            } catch (NumberFormatException e) {
                throw new UsageException(name + ": not a comma-separated list of integers: '" + v + "'");
            }
            if (out[i] < 1) throw new UsageException(name + ": values must be >= 1, got " + out[i]);
        }
        return out;
    }
}
