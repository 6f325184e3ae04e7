package tokenprune.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

import tokenprune.device.Device;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.DeviceKind;
import tokenprune.device.Devices;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.device.Timer;
import tokenprune.device.cuda.CudaDevice;
import tokenprune.methods.DType;
import tokenprune.methods.Pending;
import tokenprune.methods.Workspace;

/**
 * {@code bench}: times each operation ({@link BenchCases#OPS}) over a grid of shapes. On a kernel
 * device each repetition is timed on the stream (CUDA events on a GPU, the wall clock in the
 * simulator); inputs rotate over enough buffers to exceed a 50 MB L2 so caches do not flatter; the
 * median after warm-up is reported with GFLOP/s, GB/s against the bytes that must move, the floor
 * (those bytes at the measured device-to-device copy bandwidth) and launches per call. On the cpu
 * device the reference is timed with the wall clock.
 */
final class BenchCommand {
    private BenchCommand() {
    }

    record Row(BenchCase c, String device, double medianMs, double minMs, int reps) {
        double floorMs(double copyGbps) {
            return copyGbps > 0 ? c.bytes() / (copyGbps * 1e6) : Double.NaN;
        }

        String csv(double copyGbps) {
            return String.join(",", c.op, '"' + device + '"', c.dtype.suffix(), "" + c.b, "" + c.n, "" + c.d, "" + c.k, fmt(medianMs), fmt(minMs),
                    fmt(c.flops() / (medianMs * 1e6)), fmt(c.bytes() / (medianMs * 1e6)), "" + c.bytes(), fmt(floorMs(copyGbps)), "" + c.launches(),
                    "" + reps);
        }

        static String fmt(double v) {
            return String.format(Locale.ROOT, "%.4f", v);
        }
    }

    static void run(List<String> argv, PrintStream out) throws IOException {
        Args a = Args.parse(argv, Set.of("--device", "--ops", "--n", "--d", "--b", "--dtype", "--reps", "--csv", "--warmup"), Set.of("--profile"));
        try (Device device = Devices.open(a.get("--device", "auto"))) {
            boolean gpu = device.kind() == DeviceKind.CUDA;
            // Off the GPU the full grid would take hours; default to one small shape there.
            List<String> ops = Arrays.asList(a.get("--ops", String.join(",", BenchCases.OPS)).split(","));
            int[] ns = a.intList("--n", gpu ? new int[] {576, 2340, 8192} : new int[] {576});
            int[] ds = a.intList("--d", gpu ? new int[] {1024, 4096} : new int[] {64});
            int[] bs = a.intList("--b", gpu ? new int[] {1, 16} : new int[] {1});
            List<DType> dtypes = parseDtypes(a.get("--dtype", gpu ? "f16,f32" : "f32"));
            int reps = a.intValue("--reps", gpu ? 20 : 3);
            int warmup = a.intValue("--warmup", gpu ? 3 : 1);
            if (reps < 1 || warmup < 0) throw new UsageException("--reps must be >= 1 and --warmup >= 0");
            List<String> allOps = new ArrayList<>(BenchCases.OPS);
            List<String> kvAll = new ArrayList<>(KvBenchCases.OPS);
            kvAll.addAll(KvPolicyBenchCases.OPS);
            allOps.addAll(kvAll);
            for (String op : ops) if (!allOps.contains(op)) throw new UsageException("--ops: unknown op '" + op + "'; available: " + String.join(", ", allOps));
            List<String> kvOps = ops.stream().filter(kvAll::contains).toList();
            ops = ops.stream().filter(op -> !kvAll.contains(op)).toList();
            // the KV ops: N is the context length, D is fixed by the model shape
            int[] kvNs = a.intList("--n", gpu ? KvBenchCases.GPU_N : new int[] {256});
            int[] kvBs = a.intList("--b", gpu ? KvBenchCases.GPU_B : new int[] {1});
            Path csv = Path.of(a.get("--csv", "bench.csv"));
            // --profile: the timed repetitions run inside cuProfilerStart/Stop (ncu --profile-from-start off)
            CudaDevice profiled = a.has("--profile") && device instanceof CudaDevice c ? c : null;

            out.println("bench on " + device.description());
            if (!gpu) out.println("note: not a GPU; these are " + device.kind().cliName() + " wall-clock times, not GPU performance");
            double copyGbps = gpu ? copyBandwidth((KernelDevice) device) : Double.NaN;
            if (gpu) out.printf(Locale.ROOT, "device-to-device copy bandwidth: %.0f GB/s (floor = must-move bytes at this rate)%n", copyGbps);
            out.printf(Locale.ROOT, "%-10s %-5s %3s %6s %5s %4s %11s %11s %9s %9s %10s %3s%n", "op", "dtype", "B", "N", "D", "k", "median ms",
                    "min ms", "GFLOP/s", "GB/s", "floor ms", "L");
            List<Row> rows = new ArrayList<>();
            Set<String> done = new HashSet<>();
            Stream stream = device instanceof KernelDevice kd ? kd.defaultStream() : null;
            for (DType dtype : dtypes) for (int b : bs) for (int n : ns) for (int d : ds) for (String op : ops) {
                try (Workspace ws = device instanceof KernelDevice kd ? new Workspace(kd, stream) : null;
                     BenchCase c = BenchCases.create(op, device, ws, stream, dtype, b, n, d)) {
                    if (!done.add(c.op + "/" + c.dtype + "/" + c.b + "/" + c.n + "/" + c.d)) continue;  // ops that ignore D or dtype
                    double[] ms = ws != null ? timeDevice((KernelDevice) device, profiled, stream, reps, warmup, c) : timeHost(reps, warmup, c);
                    Row r = row(c, device, ms);
                    rows.add(r);
                    out.printf(Locale.ROOT, "%-10s %-5s %3d %6d %5d %4d %11.4f %11.4f %9.1f %9.1f %10.4f %3d%n", c.op, c.dtype.suffix(), c.b, c.n, c.d,
                            c.k, r.medianMs(), r.minMs(), c.flops() / (r.medianMs() * 1e6), c.bytes() / (r.medianMs() * 1e6), r.floorMs(copyGbps),
                            c.launches());
                }
            }
            for (DType dtype : dtypes) for (int b : kvBs) for (int n : kvNs) for (String op : kvOps) {
                boolean policyOp = KvPolicyBenchCases.OPS.contains(op);
                boolean fp32Only = op.equals("kv-decide") || op.equals("kv-keep") || op.equals("kv-block");  // they read fp32 scores only
                if (fp32Only && dtype != dtypes.get(0)) continue;
                String skip = policyOp ? KvPolicyBenchCases.skipReason(op, dtype, b, n) : KvBenchCases.skipReason(op, dtype, b, n);
                if (skip != null) {
                    out.printf(Locale.ROOT, "%-10s %-5s %3d %6d skipped: %s%n", op, dtype.suffix(), b, n, skip);
                    continue;
                }
                try (Workspace ws = device instanceof KernelDevice kd ? new Workspace(kd, stream) : null;
                     BenchCase c = policyOp ? KvPolicyBenchCases.create(op, device, ws, stream, dtype, b, n)
                             : KvBenchCases.create(op, device, ws, stream, dtype, b, n)) {
                    if (!done.add(c.op + "/" + c.dtype + "/" + c.b + "/" + c.n + "/" + c.d)) continue;  // the fp32-only ops ignore dtype
                    double[] ms = ws != null ? timeDevice((KernelDevice) device, profiled, stream, reps, warmup, c) : timeHost(reps, warmup, c);
                    Row r = row(c, device, ms);
                    rows.add(r);
                    out.printf(Locale.ROOT, "%-10s %-5s %3d %6d %5d %4d %11.4f %11.4f %9.1f %9.1f %10.4f %3d%n", c.op, c.dtype.suffix(), c.b, c.n, c.d,
                            c.k, r.medianMs(), r.minMs(), c.flops() / (r.medianMs() * 1e6), c.bytes() / (r.medianMs() * 1e6), r.floorMs(copyGbps),
                            c.launches());
                }
            }
            List<String> lines = new ArrayList<>();
            lines.add("op,device,dtype,B,N,D,k,median_ms,min_ms,gflops,gbps,bytes,floor_ms,launches,reps");
            for (Row r : rows) lines.add(r.csv(copyGbps));
            Files.write(csv, lines);
            out.println("wrote " + csv.toAbsolutePath());
        }
    }

    private static List<DType> parseDtypes(String list) {
        List<DType> out = new ArrayList<>();
        for (String s : list.split(",")) {
            switch (s.trim()) {
                case "f32" -> out.add(DType.F32);
                case "f16" -> out.add(DType.F16);
                case "bf16" -> out.add(DType.BF16);
                default -> throw new UsageException("--dtype: expected f32, f16 or bf16, got '" + s + "'");
            }
        }
        return out;
    }

    /** Device-to-device copy of 256 MiB: bytes read plus bytes written per second, median of 10. */
    private static double copyBandwidth(KernelDevice device) {
        long bytes = 256L << 20;
        Stream stream = device.defaultStream();
        try (DeviceBuffer a = device.alloc(bytes); DeviceBuffer b = device.alloc(bytes); Timer timer = device.timer(stream)) {
            device.fill(a, 1, stream);
            double[] ms = new double[10];
            for (int i = -2; i < ms.length; i++) {
                timer.start();
                device.copy(a, b, bytes, stream);
                double t = timer.stopMillis();
                if (i >= 0) ms[i] = t;
            }
            Arrays.sort(ms);
            return 2.0 * bytes / (ms[ms.length / 2] * 1e6);
        }
    }

    private static double[] timeDevice(KernelDevice device, CudaDevice profiled, Stream stream, int reps, int warmup, BenchCase c) {
        for (int i = 0; i < warmup; i++) {
            c.prepare(i);
            c.runOnDevice(i).await();
        }
        double[] ms = new double[reps];
        try (Timer timer = device.timer(stream)) {
            if (profiled != null) profiled.profilerStart();
            try {
                for (int i = 0; i < reps; i++) {
                    c.prepare(warmup + i);
                    timer.start();
                    Pending p = c.runOnDevice(warmup + i);
                    ms[i] = timer.stopMillis();
                    p.await();
                }
            } finally {
                if (profiled != null) profiled.profilerStop();
            }
        }
        return ms;
    }

    private static double[] timeHost(int reps, int warmup, BenchCase c) {
        for (int i = 0; i < warmup; i++) c.runOnHost();
        double[] ms = new double[reps];
        for (int i = 0; i < reps; i++) {
            long t0 = System.nanoTime();
            c.runOnHost();
            ms[i] = (System.nanoTime() - t0) / 1e6;
        }
        return ms;
    }

    private static Row row(BenchCase c, Device device, double[] ms) {
        double[] sorted = ms.clone();
        Arrays.sort(sorted);
        double median = sorted.length % 2 == 1 ? sorted[sorted.length / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
        return new Row(c, device.description(), median, sorted[0], ms.length);
    }
}
