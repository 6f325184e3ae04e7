package tokenprune.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.Set;

import tokenprune.device.Device;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.Devices;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.device.Timer;
import tokenprune.methods.CosineDistance;
import tokenprune.methods.DType;
import tokenprune.methods.DeviceTokens;
import tokenprune.methods.DivPrune;
import tokenprune.methods.DivPruneOptions;
import tokenprune.methods.Workspace;
import tokenprune.methods.HostTokens;
import tokenprune.methods.TokenLayout;
import tokenprune.numeric.Bf16;
import tokenprune.numeric.Fp16;

/**
 * {@code bench}: times cosine distance and DivPrune (k = round(0.098 N)) over a grid of shapes.
 * On a kernel device each repetition is timed on the stream (CUDA events on a GPU, the wall clock
 * in the simulator); inputs rotate over enough buffers to exceed a 50 MB L2 so caches do not
 * flatter; the median of the repetitions after warm-up is reported with GFLOP/s, GB/s against
 * the bytes that must move (read the tokens once, write/read the distances once) and launches.
 * On the cpu device the reference is timed with the wall clock.
 */
final class BenchCommand {
    private static final long L2_BYTES = 50L << 20;

    private BenchCommand() {
    }

    record Row(String op, String device, String dtype, int b, int n, int d, int k, double medianMs, double minMs, double gflops,
               double gbps, long bytes, int launches, int reps) {
        String csv(double copyGbps) {
            return String.join(",", op, '"' + device + '"', dtype, "" + b, "" + n, "" + d, "" + k, fmt(medianMs), fmt(minMs), fmt(gflops),
                    fmt(gbps), "" + bytes, fmt(floorMs(copyGbps)), "" + launches, "" + reps);
        }

        /** The time the bytes that must move take at the device's measured copy bandwidth (NaN off the GPU). */
        double floorMs(double copyGbps) {
            return copyGbps > 0 ? bytes / (copyGbps * 1e6) : Double.NaN;
        }

        static String fmt(double v) {
            return String.format(Locale.ROOT, "%.4f", v);
        }
    }

    static void run(List<String> argv, PrintStream out) throws IOException {
        Args a = Args.parse(argv, Set.of("--device", "--n", "--d", "--b", "--dtype", "--reps", "--csv", "--warmup"), Set.of("--profile"));
        try (Device device = Devices.open(a.get("--device", "auto"))) {
            boolean gpu = device.kind() == tokenprune.device.DeviceKind.CUDA;
            // Off the GPU the full grid would take hours; default to one small shape there.
            int[] ns = a.intList("--n", gpu ? new int[] {576, 2340, 8192} : new int[] {576});
            int[] ds = a.intList("--d", gpu ? new int[] {1024, 4096} : new int[] {64});
            int[] bs = a.intList("--b", gpu ? new int[] {1, 16} : new int[] {1});
            List<DType> dtypes = parseDtypes(a.get("--dtype", gpu ? "f16,f32" : "f32"));
            int reps = a.intValue("--reps", gpu ? 20 : 3);
            int warmup = a.intValue("--warmup", gpu ? 3 : 1);
            if (reps < 1 || warmup < 0) throw new UsageException("--reps must be >= 1 and --warmup >= 0");
            Path csv = Path.of(a.get("--csv", "bench.csv"));
            // --profile: the timed repetitions run inside cuProfilerStart/Stop (ncu --profile-from-start off)
            boolean profile = a.has("--profile") && device instanceof tokenprune.device.cuda.CudaDevice;

            out.println("bench on " + device.description());
            if (!gpu) out.println("note: not a GPU; these are " + device.kind().cliName() + " wall-clock times, not GPU performance");
            double copyGbps = gpu ? copyBandwidth((KernelDevice) device) : Double.NaN;
            if (gpu) out.printf(Locale.ROOT, "device-to-device copy bandwidth: %.0f GB/s (the floor column: must-move bytes at this rate)%n", copyGbps);
            out.printf(Locale.ROOT, "%-15s %-5s %3s %6s %5s %4s %11s %11s %9s %9s %10s %3s%n", "op", "dtype", "B", "N", "D", "k", "median ms",
                    "min ms", "GFLOP/s", "GB/s", "floor ms", "L");
            List<Row> rows = new ArrayList<>();
            for (DType dtype : dtypes) for (int b : bs) for (int n : ns) for (int d : ds) {
                for (Row r : measure(device, dtype, b, n, d, reps, warmup, profile)) {
                    rows.add(r);
                    out.printf(Locale.ROOT, "%-15s %-5s %3d %6d %5d %4d %11.4f %11.4f %9.1f %9.1f %10.4f %3d%n", r.op(), r.dtype(), r.b(), r.n(), r.d(),
                            r.k(), r.medianMs(), r.minMs(), r.gflops(), r.gbps(), r.floorMs(copyGbps), r.launches());
                }
            }
            List<String> lines = new ArrayList<>();
            lines.add("op,device,dtype,B,N,D,k,median_ms,min_ms,gflops,gbps,bytes,floor_ms,launches,reps");
            for (Row r : rows) lines.add(r.csv(copyGbps));
            Files.write(csv, lines);
            out.println("wrote " + csv.toAbsolutePath());
        }
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

    private static List<Row> measure(Device device, DType dtype, int b, int n, int d, int reps, int warmup, boolean profile) {
        TokenLayout layout = TokenLayout.uniform(b, n, d);
        DivPruneOptions options = DivPruneOptions.ratio(DivPruneOptions.DEFAULT_RATIO);
        int k = options.keepOffsets(layout)[1];
        long inputBytes = (long) b * n * d * dtype.bytes();
        long distBytes = 4L * b * n * n;
        double gramFlops = 2.0 * b * (double) n * n * d;  // a full Gram matrix; the kernel computes half and mirrors it
        // Floors: cosine reads the tokens once and writes the distances once; DivPrune also reads k rows back.
        long cosineBytes = inputBytes + distBytes;
        long divpruneBytes = cosineBytes + 4L * b * k * n;
        if (!(device instanceof KernelDevice kd)) {
            HostTokens tokens = hostTokens(dtype, layout, new Random(n * 31L + d));
            double[] cos = timeHost(() -> CosineDistance.compute(device, tokens), reps, warmup);
            double[] dp = timeHost(() -> DivPrune.select(device, tokens, options), reps, warmup);
            return List.of(row("cosine_distance", device, dtype, b, n, d, 0, cos, gramFlops, cosineBytes, 0, reps),
                    row("divprune", device, dtype, b, n, d, k, dp, gramFlops, divpruneBytes, 0, reps));
        }
        Stream stream = kd.defaultStream();
        int rotation = (int) Math.max(2, Math.min(64, (2 * L2_BYTES) / Math.max(1, inputBytes) + 1));
        List<DeviceBuffer> inputs = new ArrayList<>();
        try (Workspace ws = new Workspace(kd, stream);
             DeviceBuffer dist = kd.alloc(distBytes);
             DeviceBuffer kept = kd.alloc(4L * b * k);
             Timer timer = kd.timer(stream)) {
            Random rnd = new Random(n * 31L + d);
            for (int i = 0; i < rotation; i++) {
                DeviceBuffer x = kd.alloc(inputBytes);
                inputs.add(x);
                HostTokens t = hostTokens(dtype, layout, rnd);
                if (t.data() instanceof float[] f) kd.upload(f, x, stream);
                else kd.upload((short[]) t.data(), x, stream);
            }
            double[] cos = timeDevice(kd, profile, timer, reps, warmup, i -> CosineDistance.computeOnDevice(
                    new DeviceTokens(inputs.get(i % inputs.size()), dtype, layout), dist, ws, stream));
            double[] dp = timeDevice(kd, profile, timer, reps, warmup, i -> DivPrune.selectOnDevice(
                    new DeviceTokens(inputs.get(i % inputs.size()), dtype, layout), options, kept, null, ws, stream));
            return List.of(row("cosine_distance", device, dtype, b, n, d, 0, cos, gramFlops, cosineBytes, 1, reps),
                    row("divprune", device, dtype, b, n, d, k, dp, gramFlops, divpruneBytes, 2, reps));
        } finally {
            for (DeviceBuffer x : inputs) x.close();
        }
    }

    private static HostTokens hostTokens(DType dtype, TokenLayout layout, Random rnd) {
        float[] f = new float[Math.toIntExact(layout.requiredElements())];
        for (int i = 0; i < f.length; i++) f[i] = (float) rnd.nextGaussian();
        return switch (dtype) {
            case F32 -> HostTokens.of(f, layout);
            case F16 -> HostTokens.of(Fp16.fromFloats(f), DType.F16, layout);
            case BF16 -> HostTokens.of(Bf16.fromFloats(f), DType.BF16, layout);
        };
    }

    interface Call {
        tokenprune.methods.Pending run(int rep);
    }

    private static double[] timeDevice(KernelDevice device, boolean profile, Timer timer, int reps, int warmup, Call call) {
        for (int i = 0; i < warmup; i++) call.run(i).await();
        double[] ms = new double[reps];
        if (profile) ((tokenprune.device.cuda.CudaDevice) device).profilerStart();
        try {
            for (int i = 0; i < reps; i++) {
                timer.start();
                tokenprune.methods.Pending p = call.run(warmup + i);
                ms[i] = timer.stopMillis();
                p.await();
            }
        } finally {
            if (profile) ((tokenprune.device.cuda.CudaDevice) device).profilerStop();
        }
        return ms;
    }

    private static double[] timeHost(Runnable call, int reps, int warmup) {
        for (int i = 0; i < warmup; i++) call.run();
        double[] ms = new double[reps];
        for (int i = 0; i < reps; i++) {
            long t0 = System.nanoTime();
            call.run();
            ms[i] = (System.nanoTime() - t0) / 1e6;
        }
        return ms;
    }

    private static Row row(String op, Device device, DType dtype, int b, int n, int d, int k, double[] ms, double flops, long bytes,
                           int launches, int reps) {
        double[] sorted = ms.clone();
        Arrays.sort(sorted);
        double median = sorted.length % 2 == 1 ? sorted[sorted.length / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
        return new Row(op, device.description(), dtype.suffix(), b, n, d, k, median, sorted[0], flops / (median * 1e6), bytes / (median * 1e6),
                bytes, launches, reps);
    }
}
