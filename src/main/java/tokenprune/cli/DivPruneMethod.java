package tokenprune.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Set;

import tokenprune.device.Device;
import tokenprune.io.Npy;
import tokenprune.io.NpyArray;
import tokenprune.methods.DivPrune;
import tokenprune.methods.DivPruneOptions;
import tokenprune.methods.HostTokens;
import tokenprune.methods.Selection;

/** {@code select --method divprune --input X.npy (--keep K | --ratio R) [--order sorted|selection] [--official-compat]}. */
final class DivPruneMethod implements SelectMethod {
    @Override
    public String name() {
        return "divprune";
    }

    @Override
    public Set<String> valued() {
        return Set.of("--input", "--keep", "--ratio", "--order");
    }

    @Override
    public Set<String> switches() {
        return Set.of("--official-compat");
    }

    @Override
    public void run(Args a, Device device, Path output, PrintStream out) throws IOException {
        if (a.has("--keep") == a.has("--ratio")) throw new UsageException("give exactly one of --keep K or --ratio R");
        String orderName = a.get("--order", "sorted");
        if (!orderName.equals("sorted") && !orderName.equals("selection")) {
            throw new UsageException("--order: expected sorted or selection, got '" + orderName + "'");
        }
        Path input = Inputs.existing(a, "--input");
        DivPruneOptions options;
        try {
            options = a.has("--keep") ? DivPruneOptions.keep(a.intValue("--keep", 0)) : DivPruneOptions.ratio(a.doubleValue("--ratio"));
        } catch (IllegalArgumentException e) {
            throw new UsageException("--" + e.getMessage());
        }
        options = options.officialCompat(a.has("--official-compat")).withOrder(orderName.equals("selection"));

        NpyArray array = Npy.read(input);
        HostTokens tokens = Inputs.tokens(array, input, "--input");
        Selection selection = DivPrune.select(device, tokens, options);
        int[] indices = orderName.equals("selection") ? selection.order() : selection.kept();
        Inputs.writeIndices(output, indices, selection, array.shape().length == 3, tokens.layout().n(0), out);
    }
}
