package tokenprune.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Set;

import tokenprune.device.Device;
import tokenprune.io.NpyArray;
import tokenprune.methods.DType;
import tokenprune.methods.HeadLayout;
import tokenprune.methods.HostHeads;
import tokenprune.methods.HostTokens;
import tokenprune.methods.ImageSequences;
import tokenprune.methods.Selection;
import tokenprune.methods.TokenLayout;
import tokenprune.methods.TransPrune;
import tokenprune.methods.TransPruneOptions;
import tokenprune.methods.TransPruneSession;
import tokenprune.numeric.Fp16;

/**
 * {@code select --method transprune}: ONE pruning stage of one sequence, for comparison with a
 * Python pipeline. U and V hold the sub-blocks' inputs (after RMSNorm) and outputs (before the
 * residual add) to accumulate, S x L x D (S sub-blocks, e.g. 2 per layer) or L x D; Q and K the
 * next layer's RoPE'd queries and keys, L x H x dh (not with --ttv-only). The image block is
 * [--image-start, + --image-length). Writes the --keep kept image-local indices, ascending.
 * Library callers step the whole schedule layer by layer with TransPrune.open / begin instead.
 */
final class TransPruneMethod implements SelectMethod {
    @Override
    public String name() {
        return "transprune";
    }

    @Override
    public Set<String> valued() {
        return Set.of("--u", "--v", "--queries", "--keys", "--image-start", "--image-length", "--keep");
    }

    @Override
    public Set<String> switches() {
        return Set.of("--ttv-only");
    }

    @Override
    public void run(Args a, Device device, Path output, PrintStream out) throws IOException {
        boolean ttvOnly = a.has("--ttv-only");
        Path uFile = Inputs.existing(a, "--u"), vFile = Inputs.existing(a, "--v");
        NpyArray u = Inputs.floats(uFile, "--u", 2, 3), v = Inputs.floats(vFile, "--v", 2, 3);
        if (!Arrays.equals(u.shape(), v.shape())) {
            throw new UsageException("--v: shape " + Arrays.toString(v.shape()) + " differs from --u shape " + Arrays.toString(u.shape()));
        }
        int[] s = u.shape();
        int subBlocks = s.length == 3 ? s[0] : 1, length = s[s.length - 2], d = s[s.length - 1];
        int imageStart = a.intValue("--image-start", -1), imageLength = a.intValue("--image-length", -1), keep = a.intValue("--keep", -1);
        if (imageStart < 0 || imageLength < 1 || imageStart + imageLength > length) {
            throw new UsageException("--image-start/--image-length: need 0 <= start and start + length <= L = " + length + " with length >= 1, got "
                    + imageStart + ", " + imageLength);
        }
        if (keep < 1 || keep > imageLength) throw new UsageException("--keep: must be in [1, " + imageLength + "], got " + keep);
        HostHeads q = null, k = null;
        if (!ttvOnly) {
            NpyArray qa = Inputs.floats(Inputs.existing(a, "--queries"), "--queries", 3);
            NpyArray ka = Inputs.floats(Inputs.existing(a, "--keys"), "--keys", 3);
            if (qa.shape()[0] != length || ka.shape()[0] != length) {
                throw new UsageException("--queries/--keys: need L = " + length + " rows, got " + qa.shape()[0] + " and " + ka.shape()[0]);
            }
            q = heads(qa);
            k = heads(ka);
        } else if (a.has("--queries") || a.has("--keys")) {
            throw new UsageException("--ttv-only takes no --queries or --keys");
        }
        ImageSequences seq = ImageSequences.single(imageStart, imageLength, length - imageStart - imageLength);
        Selection selection;
        try (TransPruneSession session = TransPrune.open(device, seq, TransPruneOptions.defaults().ttvOnly(ttvOnly))) {
            TokenLayout layout = TokenLayout.uniform(1, length, d);
            int block = length * d;
            for (int i = 0; i < subBlocks; i++) {
                session.addSubBlock(tokens(u, i * block, block, layout), tokens(v, i * block, block, layout));
            }
            selection = session.pruneTo(new int[] {keep}, q, k);
        }
        Inputs.writeIndices(output, selection.kept(), selection, false, imageLength, out);
    }

    private static HostTokens tokens(NpyArray a, int from, int count, TokenLayout layout) {
        float[] part = Arrays.copyOfRange(a.floats(), from, from + count);
        return a.dtype() == NpyArray.Dtype.FLOAT16 ? HostTokens.of(Fp16.fromFloats(part), DType.F16, layout) : HostTokens.of(part, layout);
    }

    private static HostHeads heads(NpyArray a) {
        int[] s = a.shape();
        HeadLayout layout = new HeadLayout(s[0], s[1], s[2], (long) s[1] * s[2], s[2]);
        return a.dtype() == NpyArray.Dtype.FLOAT16 ? HostHeads.of(Fp16.fromFloats(a.floats()), DType.F16, layout) : HostHeads.of(a.floats(), layout);
    }
}
