package tokenprune.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Set;

import tokenprune.device.Device;
import tokenprune.io.Npy;
import tokenprune.io.NpyArray;
import tokenprune.methods.KeepRule;
import tokenprune.methods.Selection;
import tokenprune.methods.TopK;

/**
 * {@code select --method scores --scores S.npy (--keep K | --ratio R | --threshold T)}: selection
 * from scores the caller computed (LVPruning, ATP-LLaVA thresholds, BAViT's classifier, ...). S is
 * N or B x N; the output is K or B x K kept indices, ascending. With --threshold the counts depend
 * on the scores: a batch is written B x max-count, padded with -1.
 */
final class ScoresMethod implements SelectMethod {
    @Override
    public String name() {
        return "scores";
    }

    @Override
    public Set<String> valued() {
        return Set.of("--scores", "--keep", "--ratio", "--threshold");
    }

    @Override
    public Set<String> switches() {
        return Set.of();
    }

    @Override
    public void run(Args a, Device device, Path output, PrintStream out) throws IOException {
        int given = (a.has("--keep") ? 1 : 0) + (a.has("--ratio") ? 1 : 0) + (a.has("--threshold") ? 1 : 0);
        if (given != 1) throw new UsageException("give exactly one of --keep K, --ratio R or --threshold T");
        KeepRule rule;
        try {
            rule = a.has("--keep") ? KeepRule.keep(a.intValue("--keep", 0))
                    : a.has("--ratio") ? KeepRule.ratio(a.doubleValue("--ratio"))
                    : KeepRule.threshold((float) a.doubleValue("--threshold"));
        } catch (IllegalArgumentException e) {
            throw new UsageException("--" + e.getMessage());
        }
        Path input = Inputs.existing(a, "--scores");
        NpyArray scores = Inputs.floats(input, "--scores", 1, 2);
        int[] s = scores.shape();
        int rows = s.length == 2 ? s[0] : 1, n = s[s.length - 1];
        int[] rowOffsets = new int[rows + 1];
        for (int b = 0; b <= rows; b++) rowOffsets[b] = b * n;
        Selection selection = TopK.select(device, scores.floats(), rowOffsets, rule);
        if (rule.fixedCounts()) {
            Inputs.writeIndices(output, selection.kept(), selection, s.length == 2, n, out);
            return;
        }
        int width = 0;
        for (int b = 0; b < rows; b++) width = Math.max(width, selection.keepOffsets()[b + 1] - selection.keepOffsets()[b]);
        int[] padded = new int[rows * width];
        Arrays.fill(padded, -1);
        for (int b = 0; b < rows; b++) {
            int[] k = selection.kept(b);
            System.arraycopy(k, 0, padded, b * width, k.length);
        }
        Npy.writeInt32(output, padded, s.length == 2 ? new int[] {rows, width} : new int[] {width});
        out.println("kept " + selection.kept().length + " of " + rows * n + " tokens at threshold " + a.get("--threshold", "")
                + (s.length == 2 ? " (rows padded with -1 to " + width + ")" : "") + " -> " + output);
    }
}
