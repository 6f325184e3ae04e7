package tokenprune.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import tokenprune.device.sim.SimDevice;
import tokenprune.io.Npy;
import tokenprune.io.NpyArray;
import tokenprune.numeric.Fp16;
import tokenprune.reference.DivPruneReference;
import tokenprune.testing.RandomTokens;

class CliTest {
    @TempDir
    Path dir;

    record Result(int code, String out, String err) {
    }

    static Result run(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        int code = Main.run(args, new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    private Path tokens(String name, float[] x, int... shape) throws IOException {
        Path p = dir.resolve(name);
        Npy.writeFloat32(p, x, shape);
        return p;
    }

    @ParameterizedTest
    @ValueSource(strings = {"cpu", "sim"})
    void selectWritesTheReferenceSelection(String device) throws IOException {
        if (device.equals("sim")) assumeTrue(SimDevice.available(), SimDevice::reason);
        int n = 30, d = 6;
        float[] x = RandomTokens.gaussian(new Random(11), n * d);
        Path in = tokens("x.npy", x, n, d), out = dir.resolve("keep.npy");
        Result r = run("select", "--method", "divprune", "--keep", "7", "--device", device, "--input", in.toString(), "--output", out.toString(),
                "--order", "selection");
        assertEquals(0, r.code(), r.err());
        NpyArray kept = Npy.read(out);
        assertEquals(NpyArray.Dtype.INT32, kept.dtype());
        assertArrayEquals(new int[] {7}, kept.shape());
        float[][] rows = new float[n][d];
        for (int i = 0; i < n; i++) System.arraycopy(x, i * d, rows[i], 0, d);
        assertArrayEquals(DivPruneReference.selectionOrder(rows, 7, false), kept.ints());
    }

    @Test
    void selectOnABatchOfFloat16WritesBxK() throws IOException {
        int b = 3, n = 20, d = 4;
        float[] x = Fp16.round(RandomTokens.gaussian(new Random(5), b * n * d));
        Path in = dir.resolve("x16.npy");
        Npy.write(in, new NpyArray(NpyArray.Dtype.FLOAT16, new int[] {b, n, d}, x, null));
        Path out = dir.resolve("k.npy");
        Result r = run("select", "--method", "divprune", "--ratio", "0.25", "--device", "cpu", "--input", in.toString(), "--output", out.toString());
        assertEquals(0, r.code(), r.err());
        NpyArray kept = Npy.read(out);
        assertArrayEquals(new int[] {3, 5}, kept.shape());
        for (int s = 0; s < b; s++) {
            float[][] rows = new float[n][d];
            for (int i = 0; i < n; i++) System.arraycopy(x, (s * n + i) * d, rows[i], 0, d);
            int[] want = DivPruneReference.sortedKeep(DivPruneReference.selectionOrder(rows, 5, false));
            int[] got = java.util.Arrays.copyOfRange(kept.ints(), s * 5, s * 5 + 5);
            assertArrayEquals(want, got, "set " + s);
        }
    }

    @Test
    void badInputIsOneLineOnStderrExitTwoAndNoOutputFile() throws IOException {
        float[] x = RandomTokens.gaussian(new Random(1), 10 * 3);
        Path good = tokens("good.npy", x, 10, 3);
        float[] nan = x.clone();
        nan[7] = Float.NaN;
        Path withNan = tokens("nan.npy", nan, 10, 3);
        Path rank1 = tokens("rank1.npy", x, 30);
        Path ints = dir.resolve("ints.npy");
        Npy.writeInt32(ints, new int[] {1, 2, 3, 4}, 2, 2);
        Path garbage = dir.resolve("garbage.npy");
        Files.writeString(garbage, "this is not numpy");
        Path out = dir.resolve("out.npy");
        String[][] cases = {
            {"--keep", "11", "--input", good.toString()},        // k > N
            {"--keep", "0", "--input", good.toString()},         // k < 1
            {"--ratio", "1.5", "--input", good.toString()},      // ratio outside (0, 1]
            {"--ratio", "0", "--input", good.toString()},
            {"--ratio", "abc", "--input", good.toString()},
            {"--keep", "3", "--input", withNan.toString()},      // NaN
            {"--keep", "3", "--input", rank1.toString()},        // wrong rank
            {"--keep", "3", "--input", ints.toString()},         // wrong dtype
            {"--keep", "3", "--input", garbage.toString()},      // unreadable
            {"--keep", "3", "--input", dir.resolve("missing.npy").toString()},
            {"--keep", "3", "--ratio", "0.5", "--input", good.toString()},
        };
        String[] expect = {"11", "keep", "ratio", "ratio", "abc", "NaN", "rank", "<i4", "garbage.npy", "missing.npy", "exactly one"};
        for (int i = 0; i < cases.length; i++) {
            String[] args = new String[cases[i].length + 6];
            args[0] = "select";
            args[1] = "--method";
            args[2] = "divprune";
            System.arraycopy(cases[i], 0, args, 3, cases[i].length);
            args[args.length - 3] = "--output";
            args[args.length - 2] = out.toString();
            args[args.length - 1] = "--device=cpu";
            Result r = run(args);
            String what = String.join(" ", cases[i]);
            assertEquals(2, r.code(), what + " -> " + r.err());
            assertEquals(1, r.err().strip().lines().count(), what + ": one line on stderr, got: " + r.err());
            assertTrue(r.err().contains(expect[i]), what + ": stderr should mention '" + expect[i] + "': " + r.err());
            assertFalse(r.err().contains("at tokenprune."), "no stack trace without --verbose");
            assertFalse(Files.exists(out), what + ": no output file may be left behind");
        }
        Result verbose = run("select", "--method", "divprune", "--keep", "99", "--input", good.toString(), "--output", out.toString(),
                "--device", "cpu", "--verbose");
        assertEquals(2, verbose.code());
        assertTrue(verbose.err().contains("at tokenprune."), "--verbose prints the stack trace");
        Result unknown = run("select", "--method", "tome", "--keep", "1", "--input", good.toString(), "--output", out.toString());
        assertEquals(2, unknown.code());
        assertTrue(unknown.err().contains("tome"));
        assertEquals(2, run("frobnicate").code());
        assertEquals(2, run().code());
    }

    @Test
    void devicesExplainsEachKind() {
        Result r = run("devices");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("cuda") && r.out().contains("sim") && r.out().contains("cpu"), r.out());
        assertTrue(r.out().contains("auto picks"), r.out());
    }

    @Test
    void demoRunsAndChecksAgainstTheReference() {
        Result r = run("demo", "--device", "cpu");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("keep 56"), r.out());
        assertTrue(r.out().contains("matches the float64 reference"), r.out());
        assertEquals(24, r.out().lines().filter(l -> l.startsWith("  ") && l.strip().length() == 47).count(), "a 24 x 24 map:\n" + r.out());
    }

    @Test
    void benchWritesACsvRow(@TempDir Path tmp) throws IOException {
        Path csv = tmp.resolve("b.csv");
        Result r = run("bench", "--device", "cpu", "--n", "40", "--d", "8", "--reps", "3", "--csv", csv.toString());
        assertEquals(0, r.code(), r.err());
        var lines = Files.readAllLines(csv);
        assertEquals(3, lines.size(), lines.toString());
        assertTrue(lines.get(1).startsWith("cosine_distance,") && lines.get(2).startsWith("divprune,"), lines.toString());
        assertTrue(lines.get(2).contains(",40,8,4,"), "k = round(0.098 * 40) = 4: " + lines.get(2));
    }
}
