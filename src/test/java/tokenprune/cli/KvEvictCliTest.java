package tokenprune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import tokenprune.device.sim.SimDevice;

/** {@code kv-evict} on cpu and sim with tiny shapes, its PE-REF parity options, the attention-score policies, its bad inputs, and the KV bench ops. */
class KvEvictCliTest {
    @TempDir
    Path dir;

    private static final String[] TINY = {"--layers", "2", "--kv-heads", "2", "--head-dim", "8", "--block", "8", "--budget", "32", "--prompt", "70,20,41",
            "--steps", "30", "--check"};

    private static CliTest.Result kvEvict(String device, String... extra) {
        String[] args = new String[3 + TINY.length + extra.length];
        args[0] = "kv-evict";
        args[1] = "--device";
        args[2] = device;
        System.arraycopy(TINY, 0, args, 3, TINY.length);
        System.arraycopy(extra, 0, args, 3 + TINY.length, extra.length);
        return CliTest.run(args);
    }

    /** The device-independent summary: the decode line and one line per sequence (blocks held, kv_len, logical, evictions). */
    private static String summary(String out) {
        StringBuilder sb = new StringBuilder();
        for (String line : out.split("\n")) if (line.startsWith("decode:") || line.startsWith("seq ") || line.startsWith("prefill:")) sb.append(line).append('\n');
        return sb.toString();
    }

    @ParameterizedTest
    @ValueSource(strings = {"cpu", "sim"})
    void tinyRunPassesTheCheck(String device) {
        if (device.equals("sim")) assumeTrue(SimDevice.available(), SimDevice::reason);
        for (String layout : List.of("flashattention", "flashinfer", "legacy")) {
            CliTest.Result r = kvEvict(device, "--layout", layout, "--dtype", "bf16");
            assertEquals(0, r.code(), r.err());
            String out = r.out();
            assertTrue(out.contains("prefill: seq 0 prompt 70 kept 38 tokens in 5 blocks"), out);  // C + (70 mod 8) = 32 + 6
            assertTrue(out.contains("prefill: seq 1 prompt 20 kept 20 tokens in 3 blocks"), out);  // under the budget: all
            // 30 steps: seq 0 fills after 2, 10, 18, 26 appends (4 evictions); seq 1 after 4, 12 (logical <= C), 20, 28 (2); seq 2 after 7, 15, 23 (3)
            assertTrue(out.contains("decode: 30 steps, 11 decision steps, 9 evictions"), out);
            assertTrue(out.contains("seq 0: blocks held 5, kv_len 36, logical 100, evictions 4"), out);
            assertTrue(out.contains("seq 1: blocks held 5, kv_len 34, logical 50, evictions 2"), out);
            assertTrue(out.contains("time per decode step: mean"), out);
            assertTrue(out.contains("check: 11 decisions match the reference"), out);
        }
    }

    @Test
    void cpuAndSimAgree() {
        assumeTrue(SimDevice.available(), SimDevice::reason);
        CliTest.Result cpu = kvEvict("cpu", "--dtype", "f16", "--seed", "9"), sim = kvEvict("sim", "--dtype", "f16", "--seed", "9");
        assertEquals(0, cpu.code(), cpu.err());
        assertEquals(0, sim.code(), sim.err());
        assertEquals(summary(cpu.out()), summary(sim.out()));
    }

    @Test
    void smallDefaultsOffTheGpu() {
        CliTest.Result r = CliTest.run("kv-evict", "--device", "cpu", "--check");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("note: cpu is slow"), r.out());
        assertTrue(r.out().contains("decode: 64 steps, 4 decision steps, 4 evictions"), r.out());
        assertTrue(r.out().contains("seq 0: blocks held 7, kv_len 104, logical 264, evictions 4"), r.out());
    }

    @Test
    void badInputsExitTwoWithOneLine() {
        String[][] bad = {
            {"--budget", "100"},                    // not a multiple of B = 16
            {"--budget", "32"},                     // < 3B
            {"--layout", "vllm"},
            {"--layout", "legacy", "--head-dim", "12"},   // f16: x = 8
            {"--dtype", "f64"},
            {"--prompt", "10,20", "--batch", "3"},
            {"--prompt", "0"},
            {"--steps", "-1"},
            {"--block", "0"},
            {"--frobnicate"},
            {"--score", "norm"},
            {"--head-agg", "median"},
            {"--victim", "oldest"},
            {"--window", "local:0"},
            {"--window", "local:x"},
            {"--window", "sliding"},
            {"--layer-agg", "max"},
            {"--preset", "h2o"},
            {"--preset", "streaming", "--victim", "argmax"},
            {"--preset", "streaming", "--score", "random"},
            {"--policy", "tova"},
            {"--policy", "a2sf", "--alpha", "1.5"},
            {"--policy", "block-a2sf", "--alpha", "-0.1"},
            {"--policy", "a2sf", "--alpha", "x"},
            {"--policy", "h2o", "--slack", "0"},
            {"--policy", "h2o", "--recent", "60", "--sinks", "40"},         // 100 > C = 96
            {"--policy", "h2o", "--hh", "10", "--recent", "10"},            // hh + recent + sinks != C
            {"--policy", "h2o", "--recent", "-1"},
            {"--policy", "streaming", "--recent", "10"},                    // sinks 4 + 10 != C
            {"--policy", "streaming", "--rope-base", "10000", "--head-dim", "7"},
            {"--policy", "streaming", "--rope-base", "0"},
            {"--policy", "block-h2o", "--sinks", "8"},                      // not whole blocks of B = 16
            {"--policy", "block-h2o", "--recent", "0"},
            {"--policy", "block-h2o", "--recent", "64", "--sinks", "48"},  // > C
            {"--policy", "block-streaming", "--budget", "40"},              // block policies: a multiple of B
            {"--policy", "h2o", "--q-heads", "3"},                          // not a multiple of the 2 kv heads
            {"--policy", "h2o", "--alpha", "0.5"},                          // options of another policy
            {"--policy", "h2o", "--rope-base", "10000"},
            {"--policy", "streaming", "--hh", "4"},
            {"--policy", "streaming", "--q-heads", "8"},
            {"--policy", "block-h2o", "--slack", "4"},
            {"--policy", "block-a2sf", "--hh", "4"},
            {"--policy", "h2o", "--victim", "argmax"},
            {"--policy", "block-h2o", "--preset", "streaming"},
            {"--hh", "8"},                                                  // pe
            {"--slack", "8"},
            {"--policy", "pe", "--alpha", "0.9"},
        };
        for (String[] b : bad) {
            String[] args = new String[3 + b.length];
            args[0] = "kv-evict";
            args[1] = "--device";
            args[2] = "cpu";
            System.arraycopy(b, 0, args, 3, b.length);
            CliTest.Result r = CliTest.run(args);
            assertEquals(2, r.code(), String.join(" ", b) + ": " + r.err());
            assertEquals(1, r.err().strip().split("\n").length, r.err());
            assertTrue(r.err().startsWith("tokenprune kv-evict: "), r.err());
        }
        CliTest.Result r = CliTest.run("kv-evict", "--device", "tpu");
        assertEquals(2, r.code(), r.err());
    }

    @Test
    void promptUnderTheBudgetKeepsEverything() {
        CliTest.Result r = CliTest.run("kv-evict", "--device", "cpu", "--layers", "1", "--kv-heads", "1", "--head-dim", "4", "--budget", "48", "--prompt", "10",
                "--steps", "60", "--check");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("prefill: seq 0 prompt 10 kept 10 tokens in 1 blocks"), r.out());
        // fills at logical 16, 32, 48 (<= C), 64 (evicts 1)
        assertTrue(r.out().contains("seq 0: blocks held 4, kv_len 54, logical 70, evictions 1"), r.out());
    }

    @ParameterizedTest
    @ValueSource(strings = {"cpu", "sim"})
    void benchRunsTheKvOps(String device) throws IOException {
        if (device.equals("sim")) assumeTrue(SimDevice.available(), SimDevice::reason);
        Path csv = dir.resolve("kv.csv");
        CliTest.Result r = CliTest.run("bench", "--device", device, "--ops", "kv-score,kv-decide", "--n", "48", "--b", "1,2", "--dtype", "f16", "--reps", "2",
                "--warmup", "1", "--csv", csv.toString());
        assertEquals(0, r.code(), r.err());
        List<String> lines = Files.readAllLines(csv);
        assertEquals(5, lines.size(), String.join("\n", lines));
        Pattern row = Pattern.compile("^(kv-score|kv-decide),\"[^\"]*\",(f16|f32),([12]),48,1024,0,.*");
        for (String line : lines.subList(1, lines.size())) {
            Matcher m = row.matcher(line);
            assertTrue(m.matches(), line);
        }
        assertTrue(lines.stream().anyMatch(l -> l.startsWith("kv-score,") && l.contains(",f16,2,48,")), String.join("\n", lines));
        assertTrue(lines.stream().anyMatch(l -> l.startsWith("kv-decide,") && l.contains(",f32,2,48,")), String.join("\n", lines));
    }

    @ParameterizedTest
    @ValueSource(strings = {"cpu", "sim"})
    void benchRunsTheAttentionPolicyOps(String device) throws IOException {
        if (device.equals("sim")) assumeTrue(SimDevice.available(), SimDevice::reason);
        Path csv = dir.resolve("kvp.csv");
        CliTest.Result r = CliTest.run("bench", "--device", device, "--ops", "kv-colsum,kv-keep,kv-block,kv-compact", "--n", "70", "--b", "2", "--dtype",
                "bf16,f32", "--reps", "1", "--warmup", "0", "--csv", csv.toString());
        assertEquals(0, r.code(), r.err());
        List<String> lines = Files.readAllLines(csv);
        // colsum and compact per dtype; keep and block once (fp32 state)
        assertEquals(1 + 2 + 1 + 1 + 2, lines.size(), String.join("\n", lines));
        Pattern row = Pattern.compile("^(kv-colsum|kv-keep|kv-block|kv-compact),\"[^\"]*\",(bf16|f32),2,70,1024,\\d+,.*,([12])," + "1$");
        for (String line : lines.subList(1, lines.size())) assertTrue(row.matcher(line).matches(), line);
        assertTrue(lines.stream().anyMatch(l -> l.startsWith("kv-keep,") && l.contains(",f32,2,70,1024,54,")), "kv-keep keeps N - 16");
    }

    /** The victim-blocks lists of the per-sequence lines. */
    private static List<String> victims(String out) {
        List<String> v = new java.util.ArrayList<>();
        for (String line : out.split("\n")) if (line.startsWith("seq ")) v.add(line.substring(line.indexOf("victim blocks")));
        return v;
    }

    @Test
    void parityOptionsPassTheCheckAndAgreeOnCpuAndSim() {
        boolean sim = SimDevice.available();
        String[][] modes = {{}, {"--victim", "argmax"}, {"--victim", "random"}, {"--victim", "random", "--window", "local:2"}, {"--score", "random"},
            {"--score", "k_plus_v", "--window", "local", "--layer-agg", "layer0"}, {"--score", "v_over_k", "--head-agg", "ratio_of_means"},
            {"--preset", "streaming"}};
        List<List<String>> seen = new java.util.ArrayList<>();
        for (String[] mode : modes) {
            CliTest.Result cpu = kvEvict("cpu", mode);
            String what = String.join(" ", mode);
            assertEquals(0, cpu.code(), what + ": " + cpu.err());
            assertTrue(cpu.out().contains("check: 11 decisions match the reference"), what + "\n" + cpu.out());
            assertTrue(cpu.out().contains("decode: 30 steps, 11 decision steps, 9 evictions"), what + "\n" + cpu.out());
            if (sim) {
                CliTest.Result s = kvEvict("sim", mode);
                assertEquals(0, s.code(), what + ": " + s.err());
                assertEquals(summary(cpu.out()), summary(s.out()), what);
            }
            seen.add(victims(cpu.out()));
        }
        // the rules choose differently on the same data: argmin, argmax and random differ pairwise
        assertTrue(!seen.get(0).equals(seen.get(1)) && !seen.get(0).equals(seen.get(2)) && !seen.get(1).equals(seen.get(2)), seen.toString());
        for (List<String> v : seen.subList(0, 5))
            for (String line : v) assertTrue(line.matches("victim blocks \\[[123](, [123])*\\]"), line);  // candidates 1 .. n_blocks - 2 = 3
        for (String line : seen.get(3)) assertTrue(line.matches("victim blocks \\[[12](, [12])*\\]"), "local:2 " + line);
        assertEquals(List.of("victim blocks [1, 1, 1, 1]", "victim blocks [1, 1]", "victim blocks [1, 1, 1]"), seen.get(7), "streaming evicts block 1");
    }

    @Test
    void streamingPresetSaysWhatItDoes() {
        CliTest.Result r = kvEvict("cpu", "--preset", "streaming");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("options: score none (position), window local:1, victim block 1, layer-agg mean, prefill recent"), r.out());
        assertTrue(r.out().contains("prefill: seq 0 prompt 70 kept 38 tokens in 5 blocks"), r.out());
        r = kvEvict("cpu", "--victim", "random", "--seed", "3");
        assertTrue(r.out().contains("options: score v_over_k mean_of_ratios, window global, victim random, layer-agg mean, prefill scores"), r.out());
    }

    private static String[] concat(String[] a, String... b) {
        String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    /** The per-sequence lines' "blocks held" counts. */
    private static List<Integer> blocksHeld(String out) {
        List<Integer> v = new java.util.ArrayList<>();
        Matcher m = Pattern.compile("(?m)^seq \\d+: blocks held (\\d+),").matcher(out);
        while (m.find()) v.add(Integer.parseInt(m.group(1)));
        return v;
    }

    @Test
    void attentionPoliciesPassTheCheckAndAgreeOnCpuAndSim() {
        boolean sim = SimDevice.available();
        // C = 32, B = slack = 8; prompts 70, 20, 41. Token policies keep 32, 20, 32 and compact at kv_len 40 (seq 0, 2: steps 7, 15, 23;
        // seq 1: 19, 27): 3 + 2 + 3 compactions of 8 tokens in 5 distinct steps. Block policies keep PE's 38, 20, 33 and evict as PE does.
        String[][] modes = {{"--policy", "h2o", "--dtype", "f16"}, {"--policy", "a2sf", "--dtype", "bf16", "--layout", "flashinfer"},
            {"--policy", "a2sf", "--alpha", "0.5", "--sinks", "2", "--dtype", "f32"}, {"--policy", "streaming", "--dtype", "f32"},
            {"--policy", "streaming", "--rope-base", "10000", "--dtype", "bf16"}, {"--policy", "block-h2o", "--dtype", "f16", "--layout", "flashinfer"},
            {"--policy", "block-a2sf", "--dtype", "bf16"}, {"--policy", "block-streaming", "--dtype", "f32"}};
        for (String[] mode : modes) {
            String what = String.join(" ", mode);
            boolean token = !mode[1].startsWith("block-");
            CliTest.Result cpu = kvEvict("cpu", mode);
            assertEquals(0, cpu.code(), what + ": " + cpu.err());
            String out = cpu.out();
            if (token) {
                assertTrue(out.contains("prefill: seq 0 prompt 70 kept 32 tokens in 4 blocks"), what + "\n" + out);
                assertTrue(out.contains("decode: 30 steps, 5 eviction steps, 64 evictions (tokens)"), what + "\n" + out);
                assertTrue(out.contains("seq 0: blocks held 5, kv_len 38, logical 100, evictions 24 tokens"), what + "\n" + out);
                assertTrue(out.contains("seq 1: blocks held 5, kv_len 34, logical 50, evictions 16 tokens"), what + "\n" + out);
                assertTrue(out.contains("check: 5 compaction steps match the reference"), what + "\n" + out);
            } else {
                assertTrue(out.contains("prefill: seq 0 prompt 70 kept 38 tokens in 5 blocks"), what + "\n" + out);
                assertTrue(out.contains("decode: 30 steps, 9 eviction steps, 9 evictions (blocks)"), what + "\n" + out);
                assertTrue(out.contains("seq 0: blocks held 5, kv_len 36, logical 100, evictions 4 blocks, victim blocks ["), what + "\n" + out);
                assertTrue(out.contains("check: 30 steps match the reference"), what + "\n" + out);
                for (String line : victims(out)) assertTrue(line.matches("victim blocks \\[[123](, [123])*\\]"), what + ": " + line);
            }
            if (!mode[1].contains("streaming")) assertTrue(out.contains("lse: synthetic ln(kv_len) + 1/2"), what + "\n" + out);
            assertTrue(out.contains("time per decode step: mean"), what + "\n" + out);
            assertTrue(out.contains("time per eviction: mean"), what + "\n" + out);
            if (mode[1].equals("block-streaming"))
                assertEquals(List.of("victim blocks [1, 1, 1, 1]", "victim blocks [1, 1]", "victim blocks [1, 1, 1]"), victims(out), "streaming evicts block 1");
            if (sim) {
                CliTest.Result s = kvEvict("sim", mode);
                assertEquals(0, s.code(), what + ": " + s.err());
                assertTrue(s.out().contains("states within 2e-05 relative") == !mode[1].contains("streaming"), what + "\n" + s.out());
                assertEquals(summary(out), summary(s.out()), what);
            }
        }
    }

    @Test
    void legacyLayoutPassesTheCheckAndAgreesOnCpuAndSim() {
        assumeTrue(SimDevice.available(), SimDevice::reason);
        // vLLM v0 split-x layout (head dim 8: x = 8 for 16-bit, 4 for f32): PE, token policies (compaction, key re-rotation) and a block policy
        String[][] modes = {{"--dtype", "bf16"}, {"--dtype", "f32", "--score", "k_plus_v"}, {"--policy", "h2o", "--dtype", "f16"},
            {"--policy", "streaming", "--rope-base", "10000", "--dtype", "bf16"}, {"--policy", "a2sf", "--dtype", "f32"},
            {"--policy", "block-a2sf", "--dtype", "f16"}};
        for (String[] mode : modes) {
            String[] args = new String[mode.length + 2];
            args[0] = "--layout";
            args[1] = "legacy";
            System.arraycopy(mode, 0, args, 2, mode.length);
            String what = String.join(" ", args);
            CliTest.Result cpu = kvEvict("cpu", args), sim = kvEvict("sim", args);
            assertEquals(0, cpu.code(), what + ": " + cpu.err());
            assertEquals(0, sim.code(), what + ": " + sim.err());
            assertTrue(sim.out().contains("check: "), what + "\n" + sim.out());
            assertTrue(!sim.out().contains("check: 0 "), what + "\n" + sim.out());
            assertEquals(summary(cpu.out()), summary(sim.out()), what);
        }
    }

    @Test
    void awkwardShapesPassTheCheckAndAgreeOnCpuAndSim() {
        // 3 layers, 3 KV heads, head dim 6, B = 4, a prompt of 1 token, budgets that are no multiple of B (token policies)
        String[] shape = {"kv-evict", "--layers", "3", "--kv-heads", "3", "--head-dim", "6", "--block", "4", "--prompt", "1,30,17,8", "--steps", "25",
            "--dtype", "bf16", "--layout", "flashinfer", "--check"};
        String[][] modes = {{"--policy", "h2o", "--budget", "13", "--slack", "3", "--sinks", "1", "--q-heads", "6"},
            {"--policy", "a2sf", "--budget", "13", "--slack", "5", "--alpha", "0", "--q-heads", "3"},
            {"--policy", "streaming", "--budget", "13", "--sinks", "2", "--slack", "2", "--rope-base", "500000"},
            {"--policy", "block-h2o", "--budget", "12"}, {"--policy", "block-a2sf", "--budget", "16", "--sinks", "8", "--alpha", "0.7"},
            {"--policy", "block-streaming", "--budget", "12", "--recent", "8"}};
        for (String[] mode : modes) {
            String what = String.join(" ", mode);
            CliTest.Result cpu = CliTest.run(concat(concat(shape, "--device", "cpu"), mode));
            assertEquals(0, cpu.code(), what + ": " + cpu.err());
            assertTrue(cpu.out().contains("prefill: seq 0 prompt 1 kept 1 tokens in 1 blocks"), what + "\n" + cpu.out());
            assertTrue(cpu.out().contains("check: "), what + "\n" + cpu.out());
            if (SimDevice.available()) {
                CliTest.Result sim = CliTest.run(concat(concat(shape, "--device", "sim"), mode));
                assertEquals(0, sim.code(), what + ": " + sim.err());
                assertEquals(summary(cpu.out()), summary(sim.out()), what);
            }
        }
    }

    @Test
    void withoutTheCheckTheDeviceRunsAlone() {
        // no host mirror on a kernel device without --check: the same decisions as the checked cpu run
        assumeTrue(SimDevice.available(), SimDevice::reason);
        String[] shape = {"kv-evict", "--layers", "2", "--kv-heads", "2", "--head-dim", "8", "--block", "8", "--budget", "32", "--prompt", "70,20,41", "--steps",
            "30", "--dtype", "f16"};
        for (String policy : List.of("h2o", "streaming", "block-a2sf", "block-streaming")) {
            CliTest.Result cpu = CliTest.run(concat(shape, "--device", "cpu", "--check", "--policy", policy));
            CliTest.Result sim = CliTest.run(concat(shape, "--device", "sim", "--policy", policy));
            assertEquals(0, cpu.code(), cpu.err());
            assertEquals(0, sim.code(), sim.err());
            assertTrue(!sim.out().contains("check:"), sim.out());
            assertEquals(summary(cpu.out()), summary(sim.out()), policy);
        }
    }

    @Test
    void h2oWithSlackOneHoldsExactlyTheBudget() {
        // C = 20 (token policies need no multiple of B), slack 1: seq 0 (prompt 70) keeps 20 and evicts one token every step;
        // seq 1 (prompt 10) grows to 20 after 10 steps, then evicts one per step: 20 evictions
        for (String device : SimDevice.available() ? new String[] {"cpu", "sim"} : new String[] {"cpu"}) {
            CliTest.Result r = CliTest.run("kv-evict", "--device", device, "--layers", "2", "--kv-heads", "2", "--head-dim", "8", "--block", "8", "--budget", "20",
                    "--prompt", "70,10", "--steps", "30", "--policy", "h2o", "--slack", "1", "--hh", "12", "--check");
            assertEquals(0, r.code(), r.err());
            String out = r.out();
            assertTrue(out.contains("policy h2o: budget 20 tokens, sinks 0, recent 8, heavy hitters 12 per kv head, slack 1, query heads 8"), out);
            assertTrue(out.contains("prefill: seq 0 prompt 70 kept 20 tokens in 3 blocks"), out);
            assertTrue(out.contains("decode: 30 steps, 30 eviction steps, 50 evictions (tokens)"), out);
            assertTrue(out.contains("seq 0: blocks held 3, kv_len 20, logical 100, evictions 30 tokens"), out);
            assertTrue(out.contains("seq 1: blocks held 3, kv_len 20, logical 40, evictions 20 tokens"), out);
            assertTrue(out.contains("check: 30 compaction steps match the reference"), out);
        }
    }

    @Test
    void blockPoliciesHoldAtMostCOverBPlusOneBlocks() {
        for (String policy : List.of("block-h2o", "block-a2sf", "block-streaming")) {
            // 2 protected blocks at each end of a budget of 4 blocks: a triggered sequence holds 5, so block 2 is the only candidate
            String[] shape = {"kv-evict", "--device", "cpu", "--layers", "2", "--kv-heads", "2", "--head-dim", "8", "--block", "8", "--budget", "32", "--check",
                "--policy", policy};
            CliTest.Result r = CliTest.run(concat(shape, "--sinks", "16", "--recent", "16", "--prompt", "70,20,41", "--steps", "40"));
            assertEquals(0, r.code(), r.err());
            assertTrue(r.out().contains("protected blocks: 2 first, 2 last"), r.out());
            for (String line : victims(r.out())) assertTrue(line.matches("victim blocks \\[2(, 2)*\\]"), policy + ": " + line);
            for (int held : blocksHeld(r.out())) assertTrue(held <= 32 / 8 + 1, policy + ": " + held + " blocks");
            r = CliTest.run(concat(shape, "--prompt", "200,33,9", "--steps", "60"));
            assertEquals(0, r.code(), r.err());
            for (int held : blocksHeld(r.out())) assertTrue(held <= 32 / 8 + 1, policy + ": " + held + " blocks");
        }
    }

    @Test
    void policyDefaultsOffTheGpu() {
        CliTest.Result r = CliTest.run("kv-evict", "--device", "cpu", "--policy", "h2o", "--check");
        assertEquals(0, r.code(), r.err());
        // C = 96, slack B = 16: the prompt of 200 keeps 96 and compacts every 16 steps
        assertTrue(r.out().contains("decode: 64 steps, 4 eviction steps, 64 evictions (tokens)"), r.out());
        assertTrue(r.out().contains("seq 0: blocks held 6, kv_len 96, logical 264, evictions 64 tokens"), r.out());
        r = CliTest.run("kv-evict", "--device", "cpu", "--policy", "streaming", "--steps", "3");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("policy streaming: budget 96 tokens, sinks 4, recent 92, slack 16, keys keep their positions"), r.out());
        r = CliTest.run("kv-evict", "--device", "cpu", "--policy", "pe", "--steps", "3");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("options: score v_over_k mean_of_ratios"), r.out());
    }
}
