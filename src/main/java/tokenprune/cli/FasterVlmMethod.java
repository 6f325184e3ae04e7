package tokenprune.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Set;

import tokenprune.device.Device;
import tokenprune.io.NpyArray;
import tokenprune.methods.ClsAttentionLayout;
import tokenprune.methods.DType;
import tokenprune.methods.FasterVlm;
import tokenprune.methods.FasterVlmOptions;
import tokenprune.methods.HostClsAttention;
import tokenprune.methods.Selection;
import tokenprune.numeric.Fp16;

/**
 * {@code select --method fastervlm --queries Q.npy --keys K.npy (--keep T | --ratio R)}: Q holds the
 * chosen vision layer's [CLS] query per image and head (B x H x dh), K its keys (B x N x H x dh, N
 * including the CLS token); the output is B x T kept patch indices (0-based over the N-1 patches,
 * raster order). One image may drop the leading B.
 */
final class FasterVlmMethod implements SelectMethod {
    @Override
    public String name() {
        return "fastervlm";
    }

    @Override
    public Set<String> valued() {
        return Set.of("--queries", "--keys", "--keep", "--ratio");
    }

    @Override
    public Set<String> switches() {
        return Set.of();
    }

    @Override
    public void run(Args a, Device device, Path output, PrintStream out) throws IOException {
        if (a.has("--keep") == a.has("--ratio")) throw new UsageException("give exactly one of --keep T or --ratio R");
        FasterVlmOptions options;
        try {
            options = a.has("--keep") ? FasterVlmOptions.keep(a.intValue("--keep", 0)) : FasterVlmOptions.ratio(a.doubleValue("--ratio"));
        } catch (IllegalArgumentException e) {
            throw new UsageException("--" + e.getMessage());
        }
        Path qFile = Inputs.existing(a, "--queries"), kFile = Inputs.existing(a, "--keys");
        NpyArray q = Inputs.floats(qFile, "--queries", 2, 3);
        NpyArray k = Inputs.floats(kFile, "--keys", 3, 4);
        boolean batched = q.shape().length == 3;
        if (k.shape().length != q.shape().length + 1) {
            throw new UsageException("--keys: shape " + Arrays.toString(k.shape()) + " does not go with --queries shape " + Arrays.toString(q.shape())
                    + "; expected [B] x H x dh and [B] x N x H x dh");
        }
        int[] qs = batched ? q.shape() : new int[] {1, q.shape()[0], q.shape()[1]};
        int[] ks = batched ? k.shape() : new int[] {1, k.shape()[0], k.shape()[1], k.shape()[2]};
        if (qs[0] != ks[0] || qs[1] != ks[2] || qs[2] != ks[3]) {
            throw new UsageException("--keys: shape " + Arrays.toString(k.shape()) + " does not match --queries shape " + Arrays.toString(q.shape())
                    + " (images, heads and head dim must agree)");
        }
        ClsAttentionLayout layout = ClsAttentionLayout.dense(qs[0], ks[1], qs[1], qs[2]);
        boolean half = q.dtype() == NpyArray.Dtype.FLOAT16 && k.dtype() == NpyArray.Dtype.FLOAT16;
        HostClsAttention input = half
                ? HostClsAttention.of(Fp16.fromFloats(q.floats()), Fp16.fromFloats(k.floats()), DType.F16, layout)
                : HostClsAttention.of(q.floats(), k.floats(), layout);
        Selection selection = FasterVlm.select(device, input, options);
        Inputs.writeIndices(output, selection.kept(), selection, batched, ks[1] - 1, out);
    }
}
