package tokenprune.cli;

import java.io.PrintStream;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Set;

import tokenprune.device.Device;
import tokenprune.device.DeviceKind;
import tokenprune.device.Devices;
import tokenprune.device.sim.SimDevice;
import tokenprune.methods.DivPrune;
import tokenprune.methods.DivPruneOptions;
import tokenprune.methods.HostTokens;
import tokenprune.methods.Selection;
import tokenprune.reference.CosineDistanceReference;
import tokenprune.reference.DivPruneReference;

/**
 * {@code demo}: DivPrune on the built-in 576-token sample with the default ratio (56 kept) on the
 * best device, checked against the float64 reference; without a GPU the kernels also run in the
 * simulator, so the demo always exercises the CUDA code.
 */
final class DemoCommand {
    private DemoCommand() {
    }

    static void run(List<String> argv, PrintStream out) {
        Args a = Args.parse(argv, Set.of("--device"), Set.of());
        HostTokens tokens = HostTokens.of(SampleTokens.generate(), SampleTokens.N, SampleTokens.D);
        DivPruneOptions options = DivPruneOptions.ratio(DivPruneOptions.DEFAULT_RATIO).withOrder(true);
        double[][] dist = CosineDistanceReference.distances(tokens.set(0));
        int[] reference = DivPruneReference.selectionOrder(dist, options.keepOffsets(tokens.layout())[1], false);

        out.println("DivPrune demo: " + SampleTokens.N + " tokens (24 x 24 patches) x " + SampleTokens.D + " features, ratio "
                + DivPruneOptions.DEFAULT_RATIO + " -> keep " + reference.length);
        Selection shown;
        try (Device device = Devices.open(a.get("--device", "auto"))) {
            shown = runChecked(device, tokens, options, dist, reference, out);
        }
        if (shown != null && !a.has("--device") && !(Devices.probe().get(0).available()) && SimDevice.available()) {
            try (Device sim = Devices.open(DeviceKind.SIM)) {
                runChecked(sim, tokens, options, dist, reference, out);
            }
        }
        out.println("kept tokens (ascending): " + Arrays.toString(shown.kept(0)));
        out.println("map of kept patches (# kept, o object, . background):");
        boolean[] kept = new boolean[SampleTokens.N];
        for (int i : shown.kept(0)) kept[i] = true;
        for (int r = 0; r < SampleTokens.SIDE; r++) {
            StringBuilder line = new StringBuilder("  ");
            for (int c = 0; c < SampleTokens.SIDE; c++) {
                int i = r * SampleTokens.SIDE + c;
                line.append(kept[i] ? '#' : SampleTokens.objectAt(r, c) >= 0 ? 'o' : '.').append(' ');
            }
            out.println(line);
        }
    }

    private static Selection runChecked(Device device, HostTokens tokens, DivPruneOptions options, double[][] dist, int[] reference,
                                        PrintStream out) {
        DivPrune.select(device, tokens, options);  // warm-up: module load, simulator start-up
        long t0 = System.nanoTime();
        Selection s = DivPrune.select(device, tokens, options);
        double ms = (System.nanoTime() - t0) / 1e6;
        DivPruneReference.checkGreedyTrajectory(dist, s.order(0), false, 1e-5);
        boolean identical = Arrays.equals(s.order(0), reference);
        out.printf(Locale.ROOT, "  %-60s %9.3f ms  %s%n", device.description(), ms,
                identical ? "matches the float64 reference exactly" : "a valid greedy trajectory within 1e-5 of the reference");
        return s;
    }
}
