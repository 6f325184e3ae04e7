package tokenprune.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;

import tokenprune.device.Device;
import tokenprune.device.Devices;
import tokenprune.io.Npy;
import tokenprune.io.NpyArray;
import tokenprune.methods.DType;
import tokenprune.methods.DivPrune;
import tokenprune.methods.DivPruneOptions;
import tokenprune.methods.HostTokens;
import tokenprune.methods.Selection;
import tokenprune.methods.TokenLayout;
import tokenprune.numeric.Fp16;

/**
 * {@code select}: reads tokens from .npy (float32 or float16, N x D or B x N x D), writes the kept
 * indices as int32 .npy (K or B x K). Nothing is written unless the selection succeeded.
 */
final class SelectCommand {
    private SelectCommand() {
    }

    static void run(List<String> argv, PrintStream out) throws IOException {
        Args a = Args.parse(argv, Set.of("--method", "--keep", "--ratio", "--device", "--input", "--output", "--order"),
                Set.of("--official-compat"));
        String method = a.require("--method");
        if (!method.equals("divprune")) throw new UsageException("--method: unknown method '" + method + "'; available: divprune");
        if (a.has("--keep") == a.has("--ratio")) throw new UsageException("give exactly one of --keep K or --ratio R");
        String orderName = a.get("--order", "sorted");
        if (!orderName.equals("sorted") && !orderName.equals("selection")) {
            throw new UsageException("--order: expected sorted or selection, got '" + orderName + "'");
        }
        Path input = Path.of(a.require("--input"));
        Path output = Path.of(a.require("--output"));
        if (!Files.exists(input)) throw new UsageException("--input: no such file: " + input);
        if (Files.isDirectory(output)) throw new UsageException("--output: is a directory: " + output);

        DivPruneOptions options;
        try {
            options = a.has("--keep") ? DivPruneOptions.keep(a.intValue("--keep", 0)) : DivPruneOptions.ratio(a.doubleValue("--ratio"));
        } catch (IllegalArgumentException e) {
            throw new UsageException("--" + e.getMessage());
        }
        options = options.officialCompat(a.has("--official-compat")).withOrder(orderName.equals("selection"));

        NpyArray array = Npy.read(input);
        HostTokens tokens = tokensOf(array, input);
        boolean batched = array.shape().length == 3;
        Selection selection;
        try (Device device = Devices.open(a.get("--device", "auto"))) {
            selection = DivPrune.select(device, tokens, options);
        }
        int[] indices = orderName.equals("selection") ? selection.order() : selection.kept();
        int k = selection.keepOffsets()[1];
        int[] shape = batched ? new int[] {selection.sets(), k} : new int[] {k};
        Npy.writeInt32(output, indices, shape);
        out.println("kept " + k + " of " + tokens.layout().n(0) + " tokens" + (batched ? " in each of " + selection.sets() + " sets" : "")
                + " -> " + output);
    }

    static HostTokens tokensOf(NpyArray array, Path file) {
        int[] s = array.shape();
        if (s.length != 2 && s.length != 3) {
            throw new UsageException("--input: " + file + " has rank " + s.length + "; expected N x D or B x N x D");
        }
        if (!array.dtype().isFloating()) {
            throw new UsageException("--input: " + file + " has dtype " + array.dtype().descr() + "; expected float32 (<f4) or float16 (<f2)");
        }
        for (int dim : s) if (dim < 1) throw new UsageException("--input: " + file + " has an empty dimension (shape " + java.util.Arrays.toString(s) + ")");
        int sets = s.length == 3 ? s[0] : 1, n = s[s.length - 2], d = s[s.length - 1];
        TokenLayout layout = TokenLayout.uniform(sets, n, d);
        if (array.dtype() == NpyArray.Dtype.FLOAT16) {
            return HostTokens.of(Fp16.fromFloats(array.floats()), DType.F16, layout);  // exact: the floats came from fp16
        }
        return HostTokens.of(array.floats(), layout);
    }
}
