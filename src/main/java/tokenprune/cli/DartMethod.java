package tokenprune.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Set;

import tokenprune.device.Device;
import tokenprune.io.Npy;
import tokenprune.io.NpyArray;
import tokenprune.methods.Dart;
import tokenprune.methods.DartOptions;
import tokenprune.methods.DartSelection;
import tokenprune.methods.HostTokens;
import tokenprune.methods.ImageSpans;

/**
 * {@code select --method dart --keys K.npy --hidden H.npy --image-start S --image-length L}: K holds
 * layer K-1's post-RoPE keys (heads concatenated), H the final-RMSNorm'ed hidden states of that
 * layer, both [B x] T x features. Pivots and quota from --pivots-image / --pivots-text /
 * --per-pivot (default LLaVA-1.5: 4, 4, 16 -> 132 kept); --official-compat processes the pivots
 * in CPython set order. Writes the kept image-local indices ([B x] K) to --output and, with
 * --keep-list, the whole keep list (= DART's position ids) to that file.
 */
final class DartMethod implements SelectMethod {
    @Override
    public String name() {
        return "dart";
    }

    @Override
    public Set<String> valued() {
        return Set.of("--keys", "--hidden", "--image-start", "--image-length", "--pivots-image", "--pivots-text", "--per-pivot", "--keep-list");
    }

    @Override
    public Set<String> switches() {
        return Set.of("--official-compat");
    }

    @Override
    public void run(Args a, Device device, Path output, PrintStream out) throws IOException {
        Path kFile = Inputs.existing(a, "--keys"), hFile = Inputs.existing(a, "--hidden");
        NpyArray keys = Inputs.floats(kFile, "--keys", 2, 3), hidden = Inputs.floats(hFile, "--hidden", 2, 3);
        int[] ks = keys.shape(), hs = hidden.shape();
        if (ks.length != hs.length || ks[0] != hs[0] || ks[ks.length - 2] != hs[hs.length - 2]) {
            throw new UsageException("--hidden: shape " + Arrays.toString(hs) + " does not match --keys shape " + Arrays.toString(ks)
                    + " (same sequences and tokens; features may differ)");
        }
        boolean batched = ks.length == 3;
        int sequences = batched ? ks[0] : 1;
        DartOptions options;
        try {
            options = DartOptions.of(a.intValue("--pivots-image", DartOptions.DEFAULT_PIVOT_IMAGE), a.intValue("--pivots-text", DartOptions.DEFAULT_PIVOT_TEXT),
                    a.intValue("--per-pivot", DartOptions.tokenTopKFromBudget(DartOptions.LLAVA15_MAX_NUM_TRUNCATION, DartOptions.DEFAULT_PIVOT_IMAGE,
                            DartOptions.DEFAULT_PIVOT_TEXT))).officialCompat(a.has("--official-compat"));
        } catch (IllegalArgumentException e) {
            throw new UsageException("--" + e.getMessage());
        }
        ImageSpans images = ImageSpans.uniform(sequences, a.intValue("--image-start", -1), a.intValue("--image-length", -1));
        HostTokens k = Inputs.tokens(keys, kFile, "--keys"), h = Inputs.tokens(hidden, hFile, "--hidden");
        DartSelection s = Dart.select(device, k, h, images, options);
        int kept = s.keptImage(0).length;
        int[] keptAll = new int[sequences * kept];
        for (int b = 0; b < sequences; b++) System.arraycopy(s.keptImage(b), 0, keptAll, b * kept, kept);
        if (a.has("--keep-list")) {
            int width = s.keep(0).length;
            int[] lists = new int[sequences * width];
            for (int b = 0; b < sequences; b++) System.arraycopy(s.keep(b), 0, lists, b * width, width);
            Npy.writeInt32(Path.of(a.require("--keep-list")), lists, batched ? new int[] {sequences, width} : new int[] {width});
        }
        Npy.writeInt32(output, keptAll, batched ? new int[] {sequences, kept} : new int[] {kept});
        out.println("kept " + kept + " of " + images.length(0) + " image tokens" + (batched ? " in each of " + sequences + " sequences" : "")
                + " -> " + output);
    }
}
