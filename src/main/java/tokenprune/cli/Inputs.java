package tokenprune.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import tokenprune.io.Npy;
import tokenprune.io.NpyArray;
import tokenprune.methods.DType;
import tokenprune.methods.HostTokens;
import tokenprune.methods.Selection;
import tokenprune.methods.TokenLayout;
import tokenprune.numeric.Fp16;

/** Reading the select command's .npy inputs and writing its int32 output. */
final class Inputs {
    private Inputs() {
    }

    static Path existing(Args a, String option) {
        Path p = Path.of(a.require(option));
        if (!Files.exists(p)) throw new UsageException(option + ": no such file: " + p);
        return p;
    }

    /** A float32/float16 array of one of the given ranks. */
    static NpyArray floats(Path file, String option, int... ranks) throws IOException {
        NpyArray array = Npy.read(file);
        int[] s = array.shape();
        if (Arrays.stream(ranks).noneMatch(r -> r == s.length)) {
            throw new UsageException(option + ": " + file + " has rank " + s.length + "; expected rank " + Arrays.toString(ranks));
        }
        if (!array.dtype().isFloating()) {
            throw new UsageException(option + ": " + file + " has dtype " + array.dtype().descr() + "; expected float32 (<f4) or float16 (<f2)");
        }
        for (int dim : s) if (dim < 1) throw new UsageException(option + ": " + file + " has an empty dimension (shape " + Arrays.toString(s) + ")");
        return array;
    }

    /** N x D or B x N x D token features; float16 files stay float16 (the f16 kernels read them). */
    static HostTokens tokens(NpyArray array, Path file, String option) {
        int[] s = array.shape();
        if (s.length != 2 && s.length != 3) {
            throw new UsageException(option + ": " + file + " has rank " + s.length + "; expected N x D or B x N x D");
        }
        if (!array.dtype().isFloating()) {
            throw new UsageException(option + ": " + file + " has dtype " + array.dtype().descr() + "; expected float32 (<f4) or float16 (<f2)");
        }
        for (int dim : s) if (dim < 1) throw new UsageException(option + ": " + file + " has an empty dimension (shape " + Arrays.toString(s) + ")");
        int sets = s.length == 3 ? s[0] : 1, n = s[s.length - 2], d = s[s.length - 1];
        TokenLayout layout = TokenLayout.uniform(sets, n, d);
        if (array.dtype() == NpyArray.Dtype.FLOAT16) {
            return HostTokens.of(Fp16.fromFloats(array.floats()), DType.F16, layout);  // exact: the floats came from fp16
        }
        return HostTokens.of(array.floats(), layout);
    }

    /** Writes K (one set) or B x K indices; every set must keep the same count to form a B x K array. */
    static void writeIndices(Path output, int[] indices, Selection selection, boolean batched, int n, PrintStream out) throws IOException {
        int k = selection.keepOffsets()[1];
        for (int b = 0; b < selection.sets(); b++) {
            if (selection.keepOffsets()[b + 1] - selection.keepOffsets()[b] != k) {
                throw new IllegalArgumentException("sets keep different counts; a B x K output needs the same K for every set");
            }
        }
        int[] shape = batched ? new int[] {selection.sets(), k} : new int[] {k};
        Npy.writeInt32(output, indices, shape);
        out.println("kept " + k + " of " + n + " tokens" + (batched ? " in each of " + selection.sets() + " sets" : "") + " -> " + output);
    }
}
