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

    @ParameterizedTest
    @ValueSource(strings = {"cpu", "sim"})
    void selectFromCallerScores(String device) throws IOException {
        if (device.equals("sim")) assumeTrue(SimDevice.available(), SimDevice::reason);
        float[] scores = {0.5f, 2f, -1f, 2f, 7f, 0f, /* row 2 */ 3f, 3f, 3f, 1f, 9f, -4f};
        Path in = tokens("s.npy", scores, 2, 6), out = dir.resolve("k.npy");
        Result r = run("select", "--method", "scores", "--scores", in.toString(), "--keep", "3", "--device", device, "--output", out.toString());
        assertEquals(0, r.code(), r.err());
        NpyArray kept = Npy.read(out);
        assertArrayEquals(new int[] {2, 3}, kept.shape());
        // row 0: 7 (at 4), then 2 at 1 and 3; row 1: 9 (at 4), then three 3s: the lower indices 0 and 1 win
        assertArrayEquals(new int[] {1, 3, 4, 0, 1, 4}, kept.ints(), "indices are local to each row");

        Result t = run("select", "--method", "scores", "--scores", in.toString(), "--threshold", "2.5", "--device", device, "--output", out.toString());
        assertEquals(0, t.code(), t.err());
        NpyArray th = Npy.read(out);
        assertArrayEquals(new int[] {2, 4}, th.shape(), "padded to the longest row");
        assertArrayEquals(new int[] {4, -1, -1, -1, 0, 1, 2, 4}, th.ints());
    }

    @ParameterizedTest
    @ValueSource(strings = {"cpu", "sim"})
    void selectFasterVlmFromQueriesAndKeys(String device) throws IOException {
        if (device.equals("sim")) assumeTrue(SimDevice.available(), SimDevice::reason);
        int b = 2, n = 10, h = 2, dh = 4;
        Random rnd = new Random(8);
        float[] q = RandomTokens.gaussian(rnd, b * h * dh), k = RandomTokens.gaussian(rnd, b * n * h * dh);
        Path qf = tokens("q.npy", q, b, h, dh), kf = tokens("k.npy", k, b, n, h, dh), out = dir.resolve("fv.npy");
        Result r = run("select", "--method", "fastervlm", "--queries", qf.toString(), "--keys", kf.toString(), "--keep", "3", "--device", device,
                "--output", out.toString());
        assertEquals(0, r.code(), r.err());
        NpyArray kept = Npy.read(out);
        assertArrayEquals(new int[] {2, 3}, kept.shape());
        double[][] want = tokenprune.reference.FasterVlmReference.scores(
                tokenprune.methods.HostClsAttention.of(q, k, tokenprune.methods.ClsAttentionLayout.dense(b, n, h, dh)), 1 / Math.sqrt(dh));
        for (int img = 0; img < b; img++) {
            float[] row = new float[n - 1];
            for (int j = 0; j < n - 1; j++) row[j] = (float) want[img][j];
            assertArrayEquals(tokenprune.reference.TopKReference.select(row, 3), java.util.Arrays.copyOfRange(kept.ints(), img * 3, img * 3 + 3),
                    "image " + img);
        }
        Result bad = run("select", "--method", "fastervlm", "--queries", qf.toString(), "--keys", qf.toString(), "--keep", "3", "--output",
                out.toString(), "--device", device);
        assertEquals(2, bad.code());
        assertTrue(bad.err().contains("--keys"), bad.err());
    }

    @Test
    void selectTransPruneOneStageAgreesAcrossDevicesAndWithTheSession() throws IOException {
        int length = 30, d = 6, heads = 2, dh = 4, start = 3, image = 20, keep = 7;
        Random rnd = new Random(21);
        float[] u = RandomTokens.gaussian(rnd, 2 * length * d), v = RandomTokens.gaussian(rnd, 2 * length * d);
        float[] q = RandomTokens.gaussian(rnd, length * heads * dh), k = RandomTokens.gaussian(rnd, length * heads * dh);
        Path uf = tokens("u.npy", u, 2, length, d), vf = tokens("v.npy", v, 2, length, d);
        Path qf = tokens("q.npy", q, length, heads, dh), kf = tokens("k.npy", k, length, heads, dh);
        tokenprune.methods.TokenLayout layout = tokenprune.methods.TokenLayout.uniform(1, length, d);
        int[] want;
        try (var session = tokenprune.methods.TransPrune.open(new tokenprune.device.CpuDevice(),
                tokenprune.methods.ImageSequences.single(start, image, length - start - image), tokenprune.methods.TransPruneOptions.defaults())) {
            for (int i = 0; i < 2; i++) {
                session.addSubBlock(tokenprune.methods.HostTokens.of(java.util.Arrays.copyOfRange(u, i * length * d, (i + 1) * length * d), layout),
                        tokenprune.methods.HostTokens.of(java.util.Arrays.copyOfRange(v, i * length * d, (i + 1) * length * d), layout));
            }
            want = session.pruneTo(new int[] {keep}, tokenprune.methods.HostHeads.packed(q, length, heads, dh),
                    tokenprune.methods.HostHeads.packed(k, length, heads, dh)).kept();
        }
        for (String device : SimDevice.available() ? new String[] {"cpu", "sim"} : new String[] {"cpu"}) {
            Path out = dir.resolve("tp-" + device + ".npy");
            Result r = run("select", "--method", "transprune", "--u", uf.toString(), "--v", vf.toString(), "--queries", qf.toString(), "--keys",
                    kf.toString(), "--image-start", "" + start, "--image-length", "" + image, "--keep", "" + keep, "--device", device, "--output", out.toString());
            assertEquals(0, r.code(), r.err());
            assertArrayEquals(want, Npy.read(out).ints(), device);
        }
        Result bad = run("select", "--method", "transprune", "--u", uf.toString(), "--v", vf.toString(), "--ttv-only", "--image-start", "25",
                "--image-length", "20", "--keep", "3", "--output", dir.resolve("x.npy").toString());
        assertEquals(2, bad.code());
        assertTrue(bad.err().contains("--image-start"), bad.err());
    }

    @Test
    void selectDartAgreesAcrossDevicesAndWithTheApi() throws IOException {
        int tokens = 40, dk = 8, dh = 6, start = 2, image = 30;
        Random rnd = new Random(33);
        float[] keys = RandomTokens.gaussian(rnd, 2 * tokens * dk), hidden = RandomTokens.gaussian(rnd, 2 * tokens * dh);
        Path kf = tokens("dk.npy", keys, 2, tokens, dk), hf = tokens("dh.npy", hidden, 2, tokens, dh);
        tokenprune.methods.DartOptions options = tokenprune.methods.DartOptions.of(2, 2, 3);
        tokenprune.methods.DartSelection want = tokenprune.methods.Dart.select(new tokenprune.device.CpuDevice(),
                tokenprune.methods.HostTokens.batch(keys, 2, tokens, dk), tokenprune.methods.HostTokens.batch(hidden, 2, tokens, dh),
                tokenprune.methods.ImageSpans.uniform(2, start, image), options);
        for (String device : SimDevice.available() ? new String[] {"cpu", "sim"} : new String[] {"cpu"}) {
            Path out = dir.resolve("dart-" + device + ".npy"), list = dir.resolve("list-" + device + ".npy");
            Result r = run("select", "--method", "dart", "--keys", kf.toString(), "--hidden", hf.toString(), "--image-start", "" + start,
                    "--image-length", "" + image, "--pivots-image", "2", "--pivots-text", "2", "--per-pivot", "3", "--keep-list", list.toString(),
                    "--device", device, "--output", out.toString());
            assertEquals(0, r.code(), r.err());
            NpyArray kept = Npy.read(out);
            assertArrayEquals(new int[] {2, 2 + 4 * 3}, kept.shape(), "P_img + (P_img + P_txt) * per-pivot");
            for (int b = 0; b < 2; b++) {
                assertArrayEquals(want.keptImage(b), java.util.Arrays.copyOfRange(kept.ints(), b * 14, b * 14 + 14), device + " sequence " + b);
            }
            assertArrayEquals(want.keep(1), java.util.Arrays.copyOfRange(Npy.read(list).ints(), want.keep(0).length, 2 * want.keep(0).length));
        }
        Result bad = run("select", "--method", "dart", "--keys", kf.toString(), "--hidden", hf.toString(), "--image-start", "20", "--image-length",
                "30", "--output", dir.resolve("x.npy").toString(), "--device", "cpu");
        assertEquals(2, bad.code(), bad.err());
        assertFalse(Files.exists(dir.resolve("x.npy")));
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
        Result r = run("bench", "--device", "cpu", "--ops", "cosine,divprune", "--n", "40", "--d", "8", "--reps", "3", "--csv", csv.toString());
        assertEquals(0, r.code(), r.err());
        var lines = Files.readAllLines(csv);
        assertEquals(3, lines.size(), lines.toString());
        assertTrue(lines.get(1).startsWith("cosine,") && lines.get(2).startsWith("divprune,"), lines.toString());
        assertTrue(lines.get(2).contains(",40,8,4,"), "k = round(0.098 * 40) = 4: " + lines.get(2));
    }

    @Test
    void benchRunsEveryOpOnTheSimulator(@TempDir Path tmp) throws IOException {
        assumeTrue(SimDevice.available(), SimDevice::reason);
        Path csv = tmp.resolve("all.csv");
        Result r = run("bench", "--device", "sim", "--n", "40", "--d", "16", "--dtype", "f16", "--reps", "1", "--warmup", "0", "--csv", csv.toString());
        assertEquals(0, r.code(), r.err());
        var lines = Files.readAllLines(csv);
        for (String op : BenchCases.OPS) {
            assertTrue(lines.stream().anyMatch(l -> l.startsWith(op + ",")), op + " missing from " + lines);
        }
        assertEquals(2, run("bench", "--device", "cpu", "--ops", "nope").code());
    }
}
