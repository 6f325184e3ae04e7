package tokenprune.sim;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;
import static tokenprune.sim.SimHarness.args;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import tokenprune.device.ArgType;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.Dim3;
import tokenprune.device.KernelLaunchException;
import tokenprune.device.KernelSpec;
import tokenprune.device.sim.Schedule;
import tokenprune.device.sim.SimDevice;
import tokenprune.numeric.Bf16;
import tokenprune.numeric.Fp16;

/**
 * The CPU kernel simulator's self-test (src/test/cusim/selftest_main.cpp) ported to JUnit, driven
 * through the Java launch path: {@link KernelSpec} + {@code KernelArgs} + device buffers +
 * {@link SimDevice#launch}. The kernels are src/test/cuda/cusim_selftest.cu, compiled into the test
 * build of the simulator library (target/test-classes/native/..., first on the test classpath).
 *
 * <p>Results that must not depend on the schedule are checked under every schedule (in order,
 * reverse, two random seeds); the missing-barrier kernel must give different results under
 * different schedules; the kernels that must fail throw {@link KernelLaunchException} with a
 * message naming the kernel, the threads and the source line, and the device keeps working.
 */
class SimulatorSelfTest {
    private static final String SOURCE = "src/test/cuda/cusim_selftest.cu";
    private static final String FILE = "cusim_selftest.cu";

    static Stream<Schedule> schedules() {
        return Stream.of(Schedule.IN_ORDER, Schedule.REVERSE, Schedule.random(1), Schedule.random(42));
    }

    private static SimHarness open(Schedule schedule) {
        return SimHarness.open(schedule);
    }

    private static String at(int line) {
        return FILE + ":" + line;
    }

    // =============================================================================================
    // The kernel list itself
    // =============================================================================================

    /**
     * Every tp_selftest_* kernel of the library has a spec here (and so a test), and every kernel
     * this class tests is in the library (the wmma ones may be missing: their tests then skip).
     */
    @Test
    void everySelfTestKernelInTheLibraryIsCovered() {
        assumeTrue(SimDevice.available(), SimDevice::reason);
        try (SimDevice device = SimDevice.open()) {
            TreeSet<String> inLibrary = device.kernelNames().stream().filter(n -> n.startsWith("tp_selftest_"))
                    .collect(Collectors.toCollection(TreeSet::new));
            TreeSet<String> specified = SimHarness.ALL.stream().map(KernelSpec::name).collect(Collectors.toCollection(TreeSet::new));
            TreeSet<String> unported = new TreeSet<>(inLibrary);
            unported.removeAll(specified);
            assertTrue(unported.isEmpty(), "self-test kernels without a Java test in SimulatorSelfTest: " + unported);
            TreeSet<String> core = SimHarness.CORE.stream().map(KernelSpec::name).collect(Collectors.toCollection(TreeSet::new));
            assertEquals(25, core.size(), "one spec per kernel");
            core.removeAll(inLibrary);
            assertTrue(core.isEmpty(), "kernels missing from the test simulator library: " + core);
        }
    }

    /**
     * The simulator reads every argument from an 8-byte slot, so it cannot tell an int from a long
     * long: check the specs against the C signatures in the .cu file instead.
     */
    @Test
    void specsMatchTheCSignatures() throws IOException {
        Path source = Path.of(SOURCE);
        assertTrue(Files.isRegularFile(source), "run from the project root: " + source.toAbsolutePath());
        String text = expandEntryMacros(Files.readString(source).replaceAll("//[^\n]*", "").replace("\\\n", " "));
        Matcher m = Pattern.compile("extern\\s+\"C\"\\s+__global__\\s+void\\s+(\\w+)\\s*\\(([^)]*)\\)").matcher(text);
        Map<String, List<ArgType>> fromSource = new TreeMap<>();
        while (m.find()) {
            List<ArgType> params = new ArrayList<>();
            for (String p : m.group(2).split(",")) {
                String t = p.trim();
                if (t.isEmpty()) continue;
                if (t.contains("*")) params.add(ArgType.PTR);
                else if (t.matches(".*\\b(long\\s+long|size_t|int64_t|uint64_t)\\b.*")) params.add(ArgType.I64);
                else if (t.matches(".*\\bfloat\\b.*")) params.add(ArgType.F32);
                else if (t.matches(".*\\b(int|unsigned)\\b.*")) params.add(ArgType.I32);
                else fail("unmapped parameter type in " + m.group(1) + ": " + t);
            }
            fromSource.put(m.group(1), params);
        }
        Map<String, List<ArgType>> specs = new TreeMap<>();
        for (KernelSpec k : SimHarness.CORE) specs.put(k.name(), k.params());
        for (KernelSpec k : SimHarness.WMMA) if (fromSource.containsKey(k.name())) specs.put(k.name(), k.params());
        assertEquals(fromSource, specs);
    }

    /**
     * Entry points written through a function-like macro ({@code #define E(NAME, T) extern "C"
     * __global__ void NAME(const T* a)} and then {@code E(tp_x, float)}): drops the definitions and
     * appends each invocation's expansion. Expects continuation lines already joined.
     */
    private static String expandEntryMacros(String text) {
        Matcher d = Pattern.compile("(?m)^[ \\t]*#[ \\t]*define[ \\t]+(\\w+)\\(([^)]*)\\)(.*)$").matcher(text);
        StringBuilder expanded = new StringBuilder();
        List<String[]> macros = new ArrayList<>();
        while (d.find()) if (d.group(3).contains("__global__")) macros.add(new String[] {d.group(1), d.group(2), d.group(3)});
        String rest = text.replaceAll("(?m)^[ \\t]*#[ \\t]*define[^\n]*$", "");
        for (String[] macro : macros) {
            String[] params = macro[1].split(",");
            Matcher call = Pattern.compile("(?m)^[ \\t]*" + macro[0] + "\\(([^)]*)\\)").matcher(rest);
            while (call.find()) {
                String[] values = call.group(1).split(",");
                assertEquals(params.length, values.length, "arguments of " + call.group());
                String body = macro[2];
                for (int i = 0; i < params.length; i++) body = body.replaceAll("\\b" + params[i].trim() + "\\b", values[i].trim());
                expanded.append('\n').append(body);
            }
        }
        return rest + expanded;
    }

    // =============================================================================================
    // Correctness under every schedule
    // =============================================================================================

    @ParameterizedTest(name = "{0}")
    @MethodSource("schedules")
    void blockSumThroughTpBlockSum(Schedule schedule) {
        try (SimHarness sim = open(schedule)) {
            final int blocks = 3, n = 1000;
            float[] in = new float[blocks * n];
            for (int i = 0; i < in.length; i++) in[i] = i % 13;
            DeviceBuffer dIn = sim.floats(in), dOut = sim.floats(-1, -1, -1);
            sim.launch(SimHarness.BLOCK_SUM, Dim3.of(blocks), Dim3.of(256), 0, args().ptr(dIn).ptr(dOut).i32(n));
            float[] want = new float[blocks];
            for (int b = 0; b < blocks; b++) for (int i = 0; i < n; i++) want[b] += (b * n + i) % 13;
            assertEquals(5994f, want[0], "hand check: 76 full cycles of 0..12 (78 each) + 0..11 (66)");
            assertArrayEquals(want, sim.readFloats(dOut, blocks));
        }
    }

    /** Many block sums in a row (the C++ driver's speed test, shortened; no timing assertion). */
    @ParameterizedTest(name = "{0}")
    @MethodSource("schedules")
    void repeatedBlockSums(Schedule schedule) {
        try (SimHarness sim = open(schedule)) {
            final int iterations = 100;
            DeviceBuffer out = sim.floats(-1f);
            sim.launch(SimHarness.BLOCK_SUM_LOOP, Dim3.of(1), Dim3.of(256), 0, args().ptr(out).i32(iterations));
            long want = 0;
            for (int it = 0; it < iterations; it++) for (int t = 0; t < 256; t++) want += (t + it) % 7;
            assertEquals((float) want, sim.readFloats(out, 1)[0]);
        }
    }

    /** Greedy selection by repeated block arg-max (tp_block_argmax); each pick is removed. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("schedules")
    void repeatedBlockArgmax(Schedule schedule) {
        try (SimHarness sim = open(schedule)) {
            final int n = 1024, picks = 100;
            float[] scores = new float[n];
            for (int i = 0; i < n; i++) scores[i] = (float) ((i * 7919) % 1021) + (i % 3) * 0.25f;
            DeviceBuffer dScores = sim.floats(scores), picked = sim.intsOf(picks, -1);
            sim.launch(SimHarness.ARGMAX_LOOP, Dim3.of(1), Dim3.of(256), 0, args().ptr(dScores).i32(n).i32(picks).ptr(picked));
            // Largest first, ties to the lower index (a stable sort by descending score).
            int[] want = IntStream.range(0, n).boxed().sorted(Comparator.comparingDouble(i -> -scores[i]))
                    .mapToInt(Integer::intValue).limit(picks).toArray();
            assertArrayEquals(new int[] {980, 939, 898, 857, 816}, Arrays.copyOf(want, 5), "hand check: the first picks");
            assertArrayEquals(want, sim.readInts(picked, picks));
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("schedules")
    void warpSumWithWidth16(Schedule schedule) {
        try (SimHarness sim = open(schedule)) {
            int[] in = IntStream.range(0, 128).map(i -> 3 * i + 1).toArray();
            DeviceBuffer dIn = sim.ints(in), out = sim.intsOf(128, -1);
            sim.launch(SimHarness.WARP_SUM_WIDTH16, Dim3.of(2), Dim3.of(64), 0, args().ptr(dIn).ptr(out));
            int[] want = new int[128];
            for (int t = 0; t < 128; t++) for (int j = t & ~15; j < (t & ~15) + 16; j++) want[t] += in[j];
            assertEquals(376, want[0], "hand check: 3 * (0+..+15) + 16");
            assertArrayEquals(want, sim.readInts(out, 128));
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("schedules")
    void shufflesInsideIfWarpIsZero(Schedule schedule) {
        try (SimHarness sim = open(schedule)) {
            float[] in = new float[32];
            for (int i = 0; i < 32; i++) in[i] = i * i;
            DeviceBuffer dIn = sim.floats(in), out = sim.alloc(256 * 4);
            sim.launch(SimHarness.WARP0_ONLY, Dim3.of(2), Dim3.of(128), 0, args().ptr(dIn).ptr(out));
            float[] want = new float[256];
            Arrays.fill(want, 10416f);  // 0^2 + ... + 31^2 = 31 * 32 * 63 / 6
            assertArrayEquals(want, sim.readFloats(out, 256));
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("schedules")
    void blockExclusiveScan(Schedule schedule) {
        try (SimHarness sim = open(schedule)) {
            int[] in = IntStream.range(0, 256).map(i -> i % 5).toArray();
            DeviceBuffer dIn = sim.ints(in), out = sim.intsOf(256, -1), total = sim.ints(-1);
            sim.launch(SimHarness.BLOCK_SCAN, Dim3.of(1), Dim3.of(256), 0, args().ptr(dIn).ptr(out).ptr(total));
            int[] want = new int[256];
            int run = 0;
            for (int t = 0; t < 256; t++) {
                want[t] = run;
                run += in[t];
            }
            assertEquals(51 * 10, run, "hand check: 51 cycles of 0..4 and a 0");
            assertArrayEquals(want, sim.readInts(out, 256));
            assertEquals(run, sim.readInts(total, 1)[0]);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("schedules")
    void shuffleUpDownIdxXorWithWidth(Schedule schedule) {
        try (SimHarness sim = open(schedule)) {
            int[] in = IntStream.range(0, 32).map(i -> 100 + i).toArray();
            DeviceBuffer dIn = sim.ints(in), up = sim.alloc(128), down = sim.alloc(128), idx = sim.alloc(128), xr = sim.alloc(128);
            sim.launch(SimHarness.SHFL_WIDTH, Dim3.of(1), Dim3.of(32), 0, args().ptr(dIn).ptr(up).ptr(down).ptr(idx).ptr(xr));
            int[] wantUp = new int[32], wantDown = new int[32], wantIdx = new int[32], wantXor = new int[32];
            for (int l = 0; l < 32; l++) {
                int seg8 = l & ~7, seg16 = l & ~15;
                wantUp[l] = l - 3 >= seg8 ? in[l - 3] : in[l];        // up 3 within 8-lane segments
                wantDown[l] = l + 2 <= seg8 + 7 ? in[l + 2] : in[l];  // down 2 within 8-lane segments
                wantIdx[l] = in[seg16 + 5];                            // lane 21 -> 21 % 16 = 5 of the segment
                wantXor[l] = (l ^ 20) <= seg16 + 15 ? in[l ^ 20] : in[l];
            }
            // hand checks of the segment rules
            assertEquals(102, wantUp[2]);   // lane 2 - 3 is outside the segment: own value
            assertEquals(100, wantUp[3]);
            assertEquals(108, wantUp[8]);   // first lane of its 8-lane segment: own value
            assertEquals(108, wantUp[11]);
            assertEquals(106, wantDown[6]);
            assertEquals(121, wantIdx[31]);
            assertEquals(104, wantXor[4]);   // 4 ^ 20 = 16 is in a later segment: own value
            assertEquals(100, wantXor[20]);  // 20 ^ 20 = 0 is in an earlier segment: lane 0's value
            assertArrayEquals(wantUp, sim.readInts(up, 32), "__shfl_up_sync(v, 3, 8)");
            assertArrayEquals(wantDown, sim.readInts(down, 32), "__shfl_down_sync(v, 2, 8)");
            assertArrayEquals(wantIdx, sim.readInts(idx, 32), "__shfl_sync(v, 21, 16)");
            assertArrayEquals(wantXor, sim.readInts(xr, 32), "__shfl_xor_sync(v, 20, 16)");
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("schedules")
    void shufflesOfDoubleLongLongAndHalf(Schedule schedule) {
        try (SimHarness sim = open(schedule)) {
            DeviceBuffer d = sim.alloc(32 * 8), ll = sim.alloc(32 * 8), h = sim.alloc(32 * 4);
            sim.launch(SimHarness.SHFL_TYPES, Dim3.of(1), Dim3.of(32), 0, args().ptr(d).ptr(ll).ptr(h));
            double[] wantD = new double[32];
            long[] wantLl = new long[32];
            float[] wantH = new float[32];
            for (int l = 0; l < 32; l++) {
                wantD[l] = ((l + 1) % 32) * 1.5 + 1e10;
                wantLl[l] = (long) (l < 31 ? l + 1 : l) << 40;
                wantH[l] = (l ^ 1) * 0.5f;
            }
            assertArrayEquals(wantD, sim.readDoubles(d, 32), "double shuffle (idx lane + 1)");
            assertArrayEquals(wantLl, sim.readLongs(ll, 32), "long long shuffle (down 1)");
            assertArrayEquals(wantH, sim.readFloats(h, 32), "half shuffle (xor 1)");
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("schedules")
    void ballotAnyAllAndHalfWarpMask(Schedule schedule) {
        try (SimHarness sim = open(schedule)) {
            int[] pred = new int[128];
            for (int t = 0; t < 128; t++) {
                int w = t / 32, l = t % 32;
                pred[t] = w == 0 ? 1 : w == 1 ? (l % 3 == 0 ? 1 : 0) : w == 2 ? 0 : (l == 31 ? 5 : 0);
            }
            DeviceBuffer dPred = sim.ints(pred), ballot = sim.intsOf(4, 7), any = sim.intsOf(4, 7), all = sim.intsOf(4, 7),
                    low = sim.intsOf(4, 7);
            sim.launch(SimHarness.VOTES, Dim3.of(2), Dim3.of(64), 0, args().ptr(dPred).ptr(ballot).ptr(any).ptr(all).ptr(low));
            // warp 0 all true; warp 1 lanes 0,3,..,30; warp 2 none; warp 3 only lane 31 (pred 5 counts as true)
            int[] wantBallot = {0xffffffff, 0x49249249, 0, 0x80000000};
            assertArrayEquals(wantBallot, sim.readInts(ballot, 4), "__ballot_sync");
            assertArrayEquals(new int[] {0xffff, 0x9249, 0, 0}, sim.readInts(low, 4), "__ballot_sync(0x0000ffff)");
            assertArrayEquals(new int[] {1, 1, 0, 1}, sim.readInts(any, 4), "__any_sync");
            assertArrayEquals(new int[] {1, 0, 0, 0}, sim.readInts(all, 4), "__all_sync");
        }
    }

    /** Threads >= live return before the barriers; the rest still synchronise. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("schedules")
    void threadsReturningBeforeABarrier(Schedule schedule) {
        try (SimHarness sim = open(schedule)) {
            final int live = 40;
            DeviceBuffer out = sim.intsOf(64, -7);
            sim.launch(SimHarness.EARLY_EXIT, Dim3.of(1), Dim3.of(64), 0, args().ptr(out).i32(live));
            int[] want = new int[64];
            for (int t = 0; t < 64; t++) want[t] = t < live ? ((t + 1) % live) * (1 + 2 + 3) : -7;
            assertArrayEquals(want, sim.readInts(out, 64));
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("schedules")
    void syncthreadsCountOrAnd(Schedule schedule) {
        try (SimHarness sim = open(schedule)) {
            int[] pred = new int[128];
            for (int t = 0; t < 128; t++) pred[t] = t < 64 ? (t % 4 == 1 ? 1 : 0) : 1;  // block 1: all true
            DeviceBuffer dPred = sim.ints(pred), out = sim.intsOf(6, -1);
            // live 64: block 0 has 16 true (t = 1, 5, .., 61); live 50: t = 1, 5, .., 49 -> 13
            for (int[] c : new int[][] {{64, 16}, {50, 13}}) {
                int live = c[0];
                sim.launch(SimHarness.SYNC_REDUCE, Dim3.of(2), Dim3.of(64), 0, args().ptr(dPred).ptr(out).i32(live));
                assertArrayEquals(new int[] {c[1], 1, 0, live, 1, 1}, sim.readInts(out, 6),
                        "count/or/and of block 0, then of block 1, live " + live);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("schedules")
    void atomicHistogramIntAndFloat(Schedule schedule) {
        try (SimHarness sim = open(schedule)) {
            final int n = 1000, bins = 10;
            int[] keys = IntStream.range(0, n).map(i -> (i * 7) % bins).toArray();
            DeviceBuffer dKeys = sim.ints(keys), counts = sim.zeros(bins * 4), weights = sim.zeros(bins * 4);
            sim.launch(SimHarness.HISTOGRAM, Dim3.of(4), Dim3.of(64), 0, args().ptr(dKeys).i32(n).ptr(counts).ptr(weights));
            int[] wantCounts = new int[bins];
            float[] wantWeights = new float[bins];
            Arrays.fill(wantCounts, 100);
            Arrays.fill(wantWeights, 25f);  // 100 x 0.25, exact in float in any order
            assertArrayEquals(wantCounts, sim.readInts(counts, bins));
            assertArrayEquals(wantWeights, sim.readFloats(weights, bins));
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("schedules")
    void atomicCasMinMaxExchAndTheRest(Schedule schedule) {
        try (SimHarness sim = open(schedule)) {
            final int threads = 128;
            DeviceBuffer i32 = sim.ints(0, Integer.MAX_VALUE, Integer.MIN_VALUE, 1000, 0);
            DeviceBuffer u32 = sim.ints(~0, 0, 0, 0, 0, ~0);
            DeviceBuffer u64 = sim.zeros(3 * 8), f32 = sim.zeros(2 * 4), f64 = sim.zeros(8);
            sim.launch(SimHarness.ATOMICS, Dim3.of(2), Dim3.of(64), 0, args().ptr(i32).ptr(u32).ptr(u64).ptr(f32).ptr(f64));
            assertArrayEquals(new int[] {
                threads,                // atomicCAS increment loop, once per thread
                1000 - (threads - 1),   // atomicMin(1000 - t)
                3 * (threads - 1),      // atomicMax(3t)
                1000 - 2 * threads,     // atomicSub(2)
                77,                     // atomicExch
            }, sim.readInts(i32, 5), "int atomics");
            assertArrayEquals(new int[] {
                0,       // atomicAnd clears every bit
                ~0,      // atomicOr sets every bit
                128,     // xor of 1..128
                8,       // atomicInc(limit 9) 128 times from 0: 128 % 10
                2,       // atomicDec(limit 9) 128 times from 0: 0 -> 9 -> 8 ... ; (10 - 128 % 10) % 10
                500,     // atomicMin unsigned (500 + t)
            }, sim.readInts(u32, 6), "unsigned atomics");
            long[] u = sim.readLongs(u64, 3);
            assertEquals((long) threads << 33, u[0], "atomicAdd u64");
            assertEquals((long) (threads - 1) << 40, u[1], "atomicMax u64");
            assertTrue(u[2] >= 1 && u[2] <= threads, "atomicCAS u64: some thread's t + 1, got " + u[2]);
            if (schedule.equals(Schedule.IN_ORDER)) assertEquals(1, u[2], "in order, thread 0 of block 0 is first");
            if (schedule.equals(Schedule.REVERSE)) assertEquals(128, u[2], "reversed, thread 63 of block 1 is first");
            assertArrayEquals(new float[] {2.5f, 0.5f * threads}, sim.readFloats(f32, 2), "atomicExch / atomicAdd float");
            assertEquals(0.125 * threads, sim.readDoubles(f64, 1)[0], "atomicAdd double");
        }
    }

    @Test
    void blockAndThreadOrderFollowTheSchedule() {
        final int blocks = 12, threads = 32;
        List<int[]> blockOrders = new ArrayList<>(), threadOrders = new ArrayList<>();
        for (Schedule s : schedules().toList()) {
            int[][] r = runOrder(s);
            blockOrders.add(r[0]);
            threadOrders.add(r[1]);
            assertArrayEquals(IntStream.range(0, blocks).toArray(), IntStream.of(r[0]).sorted().toArray(), s + ": block order is a permutation");
            assertArrayEquals(IntStream.range(0, threads).toArray(), IntStream.of(r[1]).sorted().toArray(), s + ": thread order is a permutation");
        }
        assertArrayEquals(IntStream.range(0, blocks).toArray(), blockOrders.get(0), "in order: blocks");
        assertArrayEquals(IntStream.range(0, threads).toArray(), threadOrders.get(0), "in order: threads");
        assertArrayEquals(IntStream.range(0, blocks).map(b -> blocks - 1 - b).toArray(), blockOrders.get(1), "reverse: blocks");
        assertArrayEquals(IntStream.range(0, threads).map(t -> threads - 1 - t).toArray(), threadOrders.get(1), "reverse: threads");
        assertFalse(Arrays.equals(blockOrders.get(2), blockOrders.get(0)), "random(1) blocks are shuffled");
        assertFalse(Arrays.equals(blockOrders.get(2), blockOrders.get(3)), "random(1) and random(42) blocks differ");
        assertFalse(Arrays.equals(threadOrders.get(2), threadOrders.get(0)), "random(1) threads are shuffled");
        assertFalse(Arrays.equals(threadOrders.get(2), threadOrders.get(3)), "random(1) and random(42) threads differ");
        int[][] again = runOrder(Schedule.random(1));
        assertArrayEquals(blockOrders.get(2), again[0], "same seed, same block order");
        assertArrayEquals(threadOrders.get(2), again[1], "same seed, same thread order");
    }

    private static int[][] runOrder(Schedule s) {
        try (SimHarness sim = open(s)) {
            DeviceBuffer counters = sim.zeros(8), blockOrder = sim.intsOf(12, -1), threadOrder = sim.intsOf(32, -1);
            sim.launch(SimHarness.RUN_ORDER, new Dim3(3, 2, 2), Dim3.of(32), 0, args().ptr(counters).ptr(blockOrder).ptr(threadOrder));
            assertArrayEquals(new int[] {12, 32}, sim.readInts(counters, 2), s + ": every block and every thread of block 0 ran once");
            return new int[][] {sim.readInts(blockOrder, 12), sim.readInts(threadOrder, 32)};
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("schedules")
    void twoAndThreeDimensionalGridsAndBlocks(Schedule schedule) {
        try (SimHarness sim = open(schedule)) {
            Dim3[][] shapes = {{new Dim3(2, 3, 2), new Dim3(4, 2, 3)}, {Dim3.of(3, 2), Dim3.of(8, 4)}, {Dim3.of(5), Dim3.of(7)}};
            for (Dim3[] shape : shapes) {
                Dim3 g = shape[0], b = shape[1];
                int[] want = expectedDims(g, b);
                DeviceBuffer out = sim.intsOf(want.length, -1);
                sim.launch(SimHarness.DIMS, g, b, 0, args().ptr(out));
                assertArrayEquals(want, sim.readInts(out, want.length), "grid " + g + " block " + b);
            }
        }
    }

    /** out[6g..6g+5] = blockIdx.xyz, threadIdx.xyz for flattened global thread g (x fastest). */
    private static int[] expectedDims(Dim3 g, Dim3 b) {
        int nb = (int) g.volume(), nt = (int) b.volume();
        int[] want = new int[6 * nb * nt];
        int i = 0;
        for (int bz = 0; bz < g.z(); bz++) for (int by = 0; by < g.y(); by++) for (int bx = 0; bx < g.x(); bx++)
            for (int tz = 0; tz < b.z(); tz++) for (int ty = 0; ty < b.y(); ty++) for (int tx = 0; tx < b.x(); tx++) {
                want[i++] = bx;
                want[i++] = by;
                want[i++] = bz;
                want[i++] = tx;
                want[i++] = ty;
                want[i++] = tz;
            }
        return want;
    }

    @Test
    void halfAndBfloat16() {
        try (SimHarness sim = open(Schedule.IN_ORDER)) {
            final int n = 64;
            short[] h = new short[n], b = new short[n];
            for (int i = 0; i < n; i++) {
                h[i] = Fp16.fromFloat(0.1f * i);
                b[i] = Bf16.fromFloat(-0.3f * i);
            }
            assertEquals(0.0999755859375f, Fp16.toFloat(h[1]), "hand check: fp16 rounding of 0.1");
            DeviceBuffer dH = sim.shorts(h), dB = sim.shorts(b), out = sim.alloc(n * 4), hOut = sim.alloc(n * 2), bOut = sim.alloc(n * 2);
            sim.launch(SimHarness.DTYPES, Dim3.of(1), Dim3.of(32), 0, args().ptr(dH).ptr(dB).ptr(out).ptr(hOut).ptr(bOut).i32(n));
            float[] want = new float[n];
            short[] wantH = new short[n], wantB = new short[n];
            for (int i = 0; i < n; i++) {
                want[i] = Fp16.toFloat(h[i]) + Bf16.toFloat(b[i]);
                wantH[i] = Fp16.fromFloat(want[i]);
                wantB[i] = Bf16.fromFloat(want[i]);
            }
            assertArrayEquals(want, sim.readFloats(out, n), "half + bfloat16 as float");
            assertArrayEquals(wantH, sim.readShorts(hOut, n), "__float2half_rn");
            assertArrayEquals(wantB, sim.readShorts(bOut, n), "__float2bfloat16_rn");
        }
    }

    /** Dynamic shared memory read before it is written holds 0xFF bytes (NaN) in every block. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("schedules")
    void dynamicSharedMemoryIsPoisoned(Schedule schedule) {
        try (SimHarness sim = open(schedule)) {
            DeviceBuffer out = sim.zeros(64 * 4), bits = sim.zeros(64 * 4);
            sim.launch(SimHarness.SMEM_POISON, Dim3.of(2), Dim3.of(32), 128, args().ptr(out).ptr(bits));
            int[] poison = new int[64];
            Arrays.fill(poison, 0xffffffff);
            assertArrayEquals(poison, sim.readInts(bits, 64), "__float_as_uint of unwritten shared memory (block 1 must not see block 0's 1.0f)");
            for (float v : sim.readFloats(out, 64)) assertTrue(Float.isNaN(v), "unwritten shared float reads NaN, got " + v);
            // fresh device allocations are poisoned the same way
            assertArrayEquals(new int[] {-1, -1, -1, -1}, sim.readInts(sim.alloc(16), 4), "fresh device memory holds 0xFF bytes");
        }
    }

    // =============================================================================================
    // Warp matrix functions (nvcuda::wmma); skipped where the simulator library lacks them
    // =============================================================================================

    /** c = scale * (bias + a * b^T), a 32 x 32, b 48 x 32, small integers so every sum is exact. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("schedules")
    void wmmaGemmFp16AndBf16BothLayouts(Schedule schedule) {
        final int m = 32, n = 48, k = 32;
        long[] x = {12345};
        java.util.function.IntUnaryOperator next = range -> {
            x[0] = x[0] * 6364136223846793005L + 1442695040888963407L;
            return (int) ((x[0] >>> 33) % range);
        };
        int[] a = new int[m * k], b = new int[n * k], bias = new int[m * n];
        for (int i = 0; i < a.length; i++) a[i] = next.applyAsInt(9) - 4;
        for (int i = 0; i < b.length; i++) b[i] = next.applyAsInt(9) - 4;
        for (int i = 0; i < bias.length; i++) bias[i] = next.applyAsInt(21) - 10;
        try (SimHarness sim = open(schedule)) {
            for (KernelSpec kernel : List.of(SimHarness.WMMA_F16, SimHarness.WMMA_F16_ALT, SimHarness.WMMA_BF16, SimHarness.WMMA_BF16_ALT)) {
                sim.assumeKernel(kernel);
                boolean bf16 = kernel.name().contains("bf16");
                DeviceBuffer dA = sim.shorts(toHalves(a, bf16)), dB = sim.shorts(toHalves(b, bf16));
                DeviceBuffer dBias = sim.floats(toFloats(bias)), c = sim.alloc(m * n * 4), ct = sim.alloc(n * m * 4);
                for (boolean withBias : new boolean[] {false, true}) {
                    float scale = withBias ? 0.5f : 1f;
                    sim.fill(c, 0xff);
                    sim.fill(ct, 0xff);
                    sim.launch(kernel, Dim3.of(1), Dim3.of(64), 0,
                            args().ptr(dA).ptr(dB).ptrOrNull(withBias ? dBias : null).f32(scale).ptr(c).ptr(ct));
                    float[] want = new float[m * n], wantT = new float[n * m];
                    for (int r = 0; r < m; r++) for (int col = 0; col < n; col++) {
                        int dot = withBias ? bias[r * n + col] : 0;
                        for (int j = 0; j < k; j++) dot += a[r * k + j] * b[col * k + j];
                        want[r * n + col] = scale * dot;
                        wantT[col * m + r] = scale * dot;
                    }
                    String what = kernel.name() + " " + schedule + (withBias ? " with bias, scale 0.5" : " without bias");
                    assertArrayEquals(want, sim.readFloats(c, m * n), what + ": row-major store");
                    assertArrayEquals(wantT, sim.readFloats(ct, n * m), what + ": col-major store");
                }
            }
        }
    }

    private static short[] toHalves(int[] v, boolean bf16) {
        short[] out = new short[v.length];
        for (int i = 0; i < v.length; i++) out[i] = bf16 ? Bf16.fromFloat(v[i]) : Fp16.fromFloat(v[i]);
        return out;
    }

    private static float[] toFloats(int[] v) {
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) out[i] = v[i];
        return out;
    }

    /** Each lane stores its own share of a wmma tile: another lane sees all of it only after __syncwarp. */
    @Test
    void wmmaStoreNeedsSyncwarpBeforeOtherLanesRead() {
        boolean staleSeen = false;
        for (Schedule s : schedules().toList()) {
            try (SimHarness sim = open(s)) {
                sim.assumeKernel(SimHarness.WMMA_STORE_READ);
                DeviceBuffer out = sim.floats(0f);
                sim.launch(SimHarness.WMMA_STORE_READ, Dim3.of(1), Dim3.of(32), 0, args().f32(2f).i32(1).ptr(out));
                assertEquals(512f, sim.readFloats(out, 1)[0], s + " with __syncwarp: 256 x 2.0");
                sim.launch(SimHarness.WMMA_STORE_READ, Dim3.of(1), Dim3.of(32), 0, args().f32(2f).i32(0).ptr(out));
                float racy = sim.readFloats(out, 1)[0];
                // j entries already 2.0, the rest still -1.0: 2j - (256 - j) = 3j - 256
                assertTrue(racy >= -256f && racy <= 512f && (racy + 256f) % 3f == 0f, s + " without __syncwarp: sum " + racy);
                staleSeen |= racy != 512f;
            }
        }
        assertTrue(staleSeen, "without __syncwarp every schedule saw the whole stored tile");
    }

    @Test
    void wmmaMisuseFails() {
        short one = Fp16.fromFloat(1f);
        short[] ones = new short[512];
        Arrays.fill(ones, one);
        for (Schedule s : schedules().toList()) {
            try (SimHarness sim = open(s)) {
                sim.assumeKernel(SimHarness.WMMA_MISUSE);
                DeviceBuffer a = sim.shorts(ones), c = sim.alloc(256 * 4), lines = sim.zeros(4);
                sim.fill(c, 0xff);
                sim.launch(SimHarness.WMMA_MISUSE, Dim3.of(2), Dim3.of(64), 0, args().ptr(a).ptr(c).i32(5).ptr(lines));
                assertArrayEquals(new float[256], sim.readFloats(c, 256), s + ": correct use stores the zero accumulator");
            }
        }
        String load = "nvcuda::wmma::load_matrix_sync";
        Object[][] cases = {
            {0, new String[] {"deadlock", "16 threads (tid 0-15) in " + load + " (warp-collective: all 32 lanes must call it) at ",
                ", waiting for tid 16-31 (exited)"}},
            {1, new String[] {load + ": pointer ", "is not 256-bit (32-byte) aligned at "}},
            {2, new String[] {load + ": ldm 12 is not a multiple of 8 elements (16 bytes) at "}},
            {3, new String[] {load + " at ", "differ in pointer, ldm or layout"}},
            {4, new String[] {"nvcuda::wmma::store_matrix_sync at ", "differ in pointer, ldm, layout or fragment contents"}},
        };
        for (Schedule s : List.of(Schedule.IN_ORDER, Schedule.REVERSE)) {
            try (SimHarness sim = open(s)) {
                sim.assumeKernel(SimHarness.WMMA_MISUSE);
                DeviceBuffer a = sim.shorts(ones), c = sim.alloc(256 * 4), lines = sim.zeros(4);
                for (Object[] k : cases) {
                    int mode = (Integer) k[0];
                    sim.set(lines, 0);
                    String msg = sim.launchFails(SimHarness.WMMA_MISUSE, Dim3.of(1), Dim3.of(32), 0, args().ptr(a).ptr(c).i32(mode).ptr(lines))
                            .getMessage();
                    int line = sim.readInts(lines, 1)[0];
                    assertContains(msg, "kernel tp_selftest_wmma_misuse, block (0,0,0)", at(line));
                    assertContains(msg, (String[]) k[1]);
                    assertLine(msg, "", line, "_matrix_sync(");
                    assertStillWorks(sim);
                }
                String msg = sim.launchFails(SimHarness.WMMA_MISUSE, Dim3.of(1), Dim3.of(48), 0, args().ptr(a).ptr(c).i32(5).ptr(lines))
                        .getMessage();
                // the first lane of the partial warp to run reports: 32 in order, 47 reversed
                assertContains(msg, s.equals(Schedule.IN_ORDER) ? "thread (32,0,0)" : "thread (47,0,0)", load + " at ",
                        "wmma operations need a full warp of 32 threads, but warp 1 has only 16 (block has 48 threads)");
                assertStillWorks(sim);
            }
        }
    }

    // =============================================================================================
    // A missing barrier shows across schedules
    // =============================================================================================

    @Test
    void missingSyncthreadsGivesScheduleDependentResults() {
        final int n = 64;
        List<float[]> racy = new ArrayList<>();
        for (Schedule s : schedules().toList()) {
            try (SimHarness sim = open(s)) {
                DeviceBuffer out = sim.alloc(n * 4);
                sim.launch(SimHarness.NEIGHBOUR_READ, Dim3.of(1), Dim3.of(n), n * 4, args().ptr(out).i32(1));
                float[] got = sim.readFloats(out, n);
                for (int t = 0; t < n; t++) assertEquals((t + 1) % n, got[t], s + " with the barrier: out[" + t + "]");
                sim.launch(SimHarness.NEIGHBOUR_READ, Dim3.of(1), Dim3.of(n), n * 4, args().ptr(out).i32(0));
                got = sim.readFloats(out, n);
                for (int t = 0; t < n; t++) {
                    assertTrue(Float.isNaN(got[t]) || got[t] == (t + 1) % n, s + " without the barrier: out[" + t + "] = " + got[t]
                            + ", want the neighbour's value or unwritten (NaN)");
                }
                racy.add(got);
            }
        }
        // In order, every thread runs to its end before the next starts: thread t < 63 reads slot
        // t + 1 before it is written (poison, NaN); thread 63 reads slot 0 = 0.
        float[] inOrder = racy.get(0), reverse = racy.get(1);
        for (int t = 0; t < n - 1; t++) assertTrue(Float.isNaN(inOrder[t]), "in order: out[" + t + "] = " + inOrder[t] + ", want NaN");
        assertEquals(0f, inOrder[n - 1], "in order: out[63]");
        // Reversed: thread t + 1 already wrote its slot; thread 63 reads slot 0 before thread 0 wrote it.
        for (int t = 0; t < n - 1; t++) assertEquals(t + 1f, reverse[t], "reverse: out[" + t + "]");
        assertTrue(Float.isNaN(reverse[n - 1]), "reverse: out[63] = " + reverse[n - 1] + ", want NaN");
        assertFalse(sameBits(inOrder, reverse), "missing barrier: in_order and reverse gave the same result");
        assertFalse(sameBits(inOrder, racy.get(2)), "missing barrier: in_order and random(1) gave the same result");
    }

    private static boolean sameBits(float[] a, float[] b) {
        return Arrays.equals(IntStream.range(0, a.length).map(i -> Float.floatToRawIntBits(a[i])).toArray(),
                IntStream.range(0, b.length).map(i -> Float.floatToRawIntBits(b[i])).toArray());
    }

    // =============================================================================================
    // Kernels that must fail, and the device afterwards
    // =============================================================================================

    /** A normal launch on the same device still gives the right answer. */
    private static void assertStillWorks(SimHarness sim) {
        final int blocks = 2, n = 100;
        float[] in = new float[blocks * n];
        for (int i = 0; i < in.length; i++) in[i] = i % 13;
        DeviceBuffer dIn = sim.floats(in), out = sim.floats(-1, -1);
        sim.launch(SimHarness.BLOCK_SUM, Dim3.of(blocks), Dim3.of(64), 0, args().ptr(dIn).ptr(out).i32(n));
        float[] want = new float[blocks];
        for (int i = 0; i < in.length; i++) want[i / n] += in[i];
        assertEquals(582f, want[0], "hand check: 0..99 % 13 is 7 cycles of 0..12 (78 each) + 0..8 (36)");
        assertArrayEquals(want, sim.readFloats(out, blocks), "a normal launch after a failed one (" + sim.device.schedule() + ")");
    }

    private static void assertContains(String message, String... parts) {
        for (String p : parts) assertTrue(message.contains(p), "message lacks \"" + p + "\": " + message);
    }

    /**
     * The line number after "PREFIX cusim_selftest.cu:" in the message must equal the __LINE__ the
     * kernel stored, and that line of the source must hold {@code statement}.
     */
    private static void assertLine(String message, String prefix, int storedLine, String statement) {
        Matcher m = Pattern.compile(Pattern.quote(prefix) + Pattern.quote(FILE) + ":(\\d+)").matcher(message);
        assertTrue(m.find(), "message lacks \"" + prefix + FILE + ":<line>\": " + message);
        assertTrue(storedLine > 0, "the kernel stored its __LINE__ before failing");
        int line = Integer.parseInt(m.group(1));
        assertEquals(storedLine, line, "source line in: " + message);
        try {
            List<String> source = Files.readAllLines(Path.of(SOURCE));
            assertTrue(line <= source.size() && source.get(line - 1).contains(statement),
                    FILE + ":" + line + " should hold " + statement + ": " + (line <= source.size() ? source.get(line - 1) : "(past the end)"));
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("schedules")
    void divergentSyncthreadsFails(Schedule schedule) {
        try (SimHarness sim = open(schedule)) {
            DeviceBuffer lines = sim.zeros(2 * 4);
            String msg = sim.launchFails(SimHarness.DIVERGENT_BARRIER, Dim3.of(1), Dim3.of(32), 0, args().ptr(lines)).getMessage();
            int[] l = sim.readInts(lines, 2);
            assertTrue(msg.startsWith("kernel tp_selftest_divergent_barrier grid (1,1,1) block (32,1,1) smem 0 B: "), msg);
            assertContains(msg, "kernel tp_selftest_divergent_barrier, block (0,0,0)", "divergent __syncthreads",
                    "16 threads (tid 0-15) at " + at(l[0]), "16 threads (tid 16-31) at " + at(l[1]));
            assertLine(msg, "16 threads (tid 0-15) at ", l[0], "__syncthreads();");
            assertLine(msg, "16 threads (tid 16-31) at ", l[1], "__syncthreads();");
            assertEquals(l[0] + 2, l[1], "the two __syncthreads are two lines apart in the source");
            assertStillWorks(sim);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("schedules")
    void shuffleWaitingForAnExitedLaneIsADeadlock(Schedule schedule) {
        try (SimHarness sim = open(schedule)) {
            DeviceBuffer lines = sim.zeros(2 * 4);
            String msg = sim.launchFails(SimHarness.SHFL_EXITED_LANE, Dim3.of(1), Dim3.of(32), 0, args().ptr(lines)).getMessage();
            int line = sim.readInts(lines, 2)[0];
            assertContains(msg, "tp_selftest_shfl_exited_lane", "deadlock",
                    "31 threads (tid 0-4,6-31) in __shfl_xor_sync(mask 0xffffffff) at " + at(line) + ", waiting for tid 5 (exited)");
            assertLine(msg, "in __shfl_xor_sync(mask 0xffffffff) at ", line, "__shfl_xor_sync(");
            assertStillWorks(sim);
        }
    }

    @Test
    void shuffleAgainstSyncthreadsIsADeadlock() {
        try (SimHarness sim = open(Schedule.IN_ORDER)) {
            DeviceBuffer lines = sim.zeros(3 * 4);
            String msg = sim.launchFails(SimHarness.SHFL_VS_BARRIER, Dim3.of(1), Dim3.of(64), 0, args().ptr(lines)).getMessage();
            int[] l = sim.readInts(lines, 3);
            assertContains(msg, "deadlock",
                    "1 thread (tid 0) in __shfl_sync(mask 0xffffffff) at " + at(l[0]) + ", waiting for tid 1-31 (in __syncthreads at " + at(l[1]) + ")",
                    "63 threads (tid 1-63) in __syncthreads at " + at(l[1]));
            assertLine(msg, "1 thread (tid 0) in __shfl_sync(mask 0xffffffff) at ", l[0], "__shfl_sync(");
            assertLine(msg, "63 threads (tid 1-63) in __syncthreads at ", l[1], "__syncthreads();");
            assertStillWorks(sim);
        }
    }

    @Test
    void callerOutsideTheShuffleMaskFails() {
        try (SimHarness sim = open(Schedule.REVERSE)) {
            DeviceBuffer lines = sim.zeros(2 * 4);
            String msg = sim.launchFails(SimHarness.BAD_MASK, Dim3.of(1), Dim3.of(32), 0, args().ptr(lines)).getMessage();
            int line = sim.readInts(lines, 2)[0];
            // reversed: lane 31 runs first and is the one reported
            assertContains(msg, "thread (31,0,0)", "__shfl_sync at " + at(line), "mask 0x00000001 does not include the calling lane 31");
            assertLine(msg, "__shfl_sync at ", line, "__shfl_sync(0x1u");
            assertStillWorks(sim);
        }
    }

    @Test
    void lanesInDifferentWarpOperationsFail() {
        try (SimHarness sim = open(Schedule.IN_ORDER)) {
            DeviceBuffer lines = sim.zeros(3 * 4);
            String msg = sim.launchFails(SimHarness.MIXED_WARP_OPS, Dim3.of(1), Dim3.of(32), 0, args().ptr(lines)).getMessage();
            int[] l = sim.readInts(lines, 3);
            assertContains(msg, "different warp operations", "in __shfl_xor_sync(mask 0xffffffff) at " + at(l[0]),
                    "in __ballot_sync(mask 0xffffffff) at " + at(l[1]));
            assertLine(msg, "in __shfl_xor_sync(mask 0xffffffff) at ", l[0], "__shfl_xor_sync(");
            assertLine(msg, "in __ballot_sync(mask 0xffffffff) at ", l[1], "__ballot_sync(");
            assertStillWorks(sim);
            // A 48-thread block: the full mask names lanes 16..31 of warp 1, which do not exist.
            DeviceBuffer in = sim.zeros(48 * 4), out = sim.zeros(48 * 4);
            msg = sim.launchFails(SimHarness.WARP_SUM_WIDTH16, Dim3.of(1), Dim3.of(48), 0, args().ptr(in).ptr(out)).getMessage();
            assertContains(msg, "thread (32,0,0)", "mask 0xffffffff names lanes that do not exist");
            assertStillWorks(sim);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("schedules")
    void trapFailsTheLaunch(Schedule schedule) {
        try (SimHarness sim = open(schedule)) {
            DeviceBuffer lines = sim.zeros(4);
            sim.launch(SimHarness.TRAP, Dim3.of(2), Dim3.of(32), 0, args().ptr(lines).i32(-1));
            assertEquals(0, sim.readInts(lines, 1)[0], "no thread trapped");
            String msg = sim.launchFails(SimHarness.TRAP, Dim3.of(2), Dim3.of(32), 0, args().ptr(lines).i32(3)).getMessage();
            int line = sim.readInts(lines, 1)[0];
            assertContains(msg, "kernel tp_selftest_trap", "thread (3,0,0)", "__trap() called at " + at(line));
            assertLine(msg, "__trap() called at ", line, "__trap();");
            if (schedule.equals(Schedule.IN_ORDER)) assertContains(msg, "kernel tp_selftest_trap, block (0,0,0), thread (3,0,0)");
            if (schedule.equals(Schedule.REVERSE)) assertContains(msg, "kernel tp_selftest_trap, block (1,0,0), thread (3,0,0)");
            assertStillWorks(sim);
        }
    }

    @Test
    void dynamicSharedMemoryOverflowFails() {
        try (SimHarness sim = open(Schedule.IN_ORDER)) {
            sim.launch(SimHarness.SMEM_WRITE, Dim3.of(2), Dim3.of(32), 256, args().i32(64));  // exactly 256 bytes: fine
            String msg = sim.launchFails(SimHarness.SMEM_WRITE, Dim3.of(2), Dim3.of(32), 256, args().i32(65)).getMessage();
            assertContains(msg, "kernel tp_selftest_smem_write, block (0,0,0)", "dynamic shared memory overflow",
                    "byte offset 256 was written", "only 256 bytes");
            assertStillWorks(sim);
        }
        try (SimHarness sim = open(Schedule.REVERSE)) {
            String msg = sim.launchFails(SimHarness.SMEM_WRITE, Dim3.of(1), Dim3.of(32), 0, args().i32(1)).getMessage();
            assertContains(msg, "tp_selftest_smem_write", "overflow", "only 0 bytes");
            assertStillWorks(sim);
        }
    }

    // =============================================================================================
    // Launch limits (checked by KernelDevice before the simulator is called) and bad launches
    // =============================================================================================

    @Test
    void launchLimitsAreRefusedBeforeTheSimulatorRuns() {
        try (SimHarness sim = open(Schedule.IN_ORDER)) {
            DeviceBuffer out = sim.intsOf(6 * 2048, -1);
            Object[][] cases = {
                {Dim3.of(1), Dim3.of(1025), 0, "block dimensions exceed (1024, 1024, 64)"},
                {Dim3.of(1), new Dim3(64, 17, 1), 0, "1088 threads per block exceed 1024"},
                {Dim3.of(1), new Dim3(32, 32, 2), 0, "2048 threads per block exceed 1024"},
                {Dim3.of(1), new Dim3(1, 1, 65), 0, "block dimensions exceed (1024, 1024, 64)"},
                {Dim3.of(1), Dim3.of(0), 0, "block dimensions must be >= 1"},
                {Dim3.of(0), Dim3.of(32), 0, "grid dimensions must be >= 1"},
                {Dim3.of(1, 65536), Dim3.of(1), 0, "grid y and z must be <= 65535"},
                {Dim3.of(1), Dim3.of(32), 227 * 1024 + 1, "232449 bytes of dynamic shared memory exceed the 232448 this kernel may use"},
            };
            for (Object[] c : cases) {
                Dim3 g = (Dim3) c[0], b = (Dim3) c[1];
                int smem = (Integer) c[2];
                KernelLaunchException e = sim.launchFails(SimHarness.DIMS, g, b, smem, args().ptr(out));
                assertContains(e.getMessage(), "kernel tp_selftest_dims grid " + g + " block " + b + " smem " + smem + " B: ",
                        "CUDA_ERROR_INVALID_VALUE", (String) c[3]);
            }
            int[] untouched = new int[6 * 2048];
            Arrays.fill(untouched, -1);
            assertArrayEquals(untouched, sim.readInts(out, untouched.length), "no refused launch ran");
            // The largest legal block and shared memory run.
            sim.launch(SimHarness.DIMS, Dim3.of(2), Dim3.of(1024), 227 * 1024, args().ptr(out));
            assertArrayEquals(expectedDims(Dim3.of(2), Dim3.of(1024)), sim.readInts(out, 6 * 2048));
        }
    }

    @Test
    void unknownKernelAndWrongArityAreReportedByTheSimulator() {
        try (SimHarness sim = open(Schedule.IN_ORDER)) {
            DeviceBuffer out = sim.intsOf(6, -1);
            String msg = sim.launchFails(KernelSpec.of("tp_no_such_kernel", ArgType.PTR), Dim3.of(1), Dim3.of(1), 0, args().ptr(out)).getMessage();
            assertContains(msg, "no kernel named tp_no_such_kernel in the simulator library");
            // A spec that disagrees with the compiled kernel passes the Java check but not the native one.
            msg = sim.launchFails(KernelSpec.of("tp_selftest_dims", ArgType.PTR, ArgType.I32), Dim3.of(1), Dim3.of(1), 0,
                    args().ptr(out).i32(0)).getMessage();
            assertContains(msg, "kernel tp_selftest_dims takes 1 parameters, but 2 argument slots were passed");
            assertArrayEquals(new int[] {-1, -1, -1, -1, -1, -1}, sim.readInts(out, 6), "neither ran");
            assertStillWorks(sim);
        }
    }
}
