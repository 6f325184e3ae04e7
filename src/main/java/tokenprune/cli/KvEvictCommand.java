package tokenprune.cli;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.Set;

import tokenprune.device.Device;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.DeviceKind;
import tokenprune.device.Devices;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.device.Timer;
import tokenprune.kv.KvLayout;
import tokenprune.kv.KvScoreOptions;
import tokenprune.kv.KvTokenScores;
import tokenprune.kv.PagedEviction;
import tokenprune.kv.PagedEviction.DecodeBatch;
import tokenprune.kv.PagedEviction.Decision;
import tokenprune.kv.PagedEvictionOptions;
import tokenprune.kv.PagedKvCache;
import tokenprune.methods.DType;
import tokenprune.methods.Workspace;
import tokenprune.numeric.Bf16;
import tokenprune.numeric.Fp16;
import tokenprune.reference.PagedEvictionReference;

/**
 * {@code kv-evict}: a synthetic PagedEviction run (PE-REF) on random K/V of a given model shape:
 * prefill (token scores of the prompt per layer, PE-REF step 4 keep, kv_len = C + r), then decode
 * steps that append one token per sequence and, whenever a block fills, run the batched decision
 * (on a kernel device: {@link PagedEviction#decodeStepOnDevice} on device-resident state; on cpu:
 * {@link PagedEvictionReference}) and apply it to a {@link PagedKvCache}, whose invariants are
 * checked after every step. {@code --check} compares every decision with the reference. The PE-REF
 * options of methods-kv.md §2.3.1 / §2.4 are exposed: {@code --score}, {@code --head-agg},
 * {@code --window}, {@code --victim}, {@code --layer-agg}, and {@code --preset streaming}
 * (StreamingLLM's paged variant, SL-5); {@code --seed} also seeds the random score and victim.
 * {@code --policy} other than pe runs the attention-score policies instead ({@link KvPolicyRun}).
 */
final class KvEvictCommand {
    /** A decision that disagrees with the reference, or a broken cache invariant: exit 1. */
    static final class CheckFailed extends RuntimeException {
        CheckFailed(String message) {
            super(message);
        }
    }

    private static final Set<String> VALUED = Set.of("--layers", "--kv-heads", "--head-dim", "--block", "--budget", "--prompt", "--steps", "--batch",
            "--layout", "--dtype", "--device", "--seed", "--score", "--head-agg", "--window", "--victim", "--layer-agg", "--preset",
            "--policy", "--hh", "--recent", "--sinks", "--alpha", "--slack", "--rope-base", "--q-heads");
    private static final Set<String> SIZES = Set.of("--layers", "--kv-heads", "--head-dim", "--budget", "--prompt", "--steps");

    private KvEvictCommand() {
    }

    static void run(List<String> argv, PrintStream out) {
        Args a = Args.parse(argv, VALUED, Set.of("--check"));
        KvLayout.Kind kind = switch (a.get("--layout", "flashattention")) {
            case "flashattention" -> KvLayout.Kind.FLASH_ATTENTION;
            case "flashinfer" -> KvLayout.Kind.FLASH_INFER;
            case "legacy" -> KvLayout.Kind.LEGACY;
            default -> throw new UsageException("--layout: expected flashattention, flashinfer or legacy, got '" + a.get("--layout", "") + "'");
        };
        DType dtype = switch (a.get("--dtype", "f16")) {
            case "f16" -> DType.F16;
            case "bf16" -> DType.BF16;
            case "f32" -> DType.F32;
            default -> throw new UsageException("--dtype: expected f16, bf16 or f32, got '" + a.get("--dtype", "") + "'");
        };
        long seed = a.intValue("--seed", 1);
        KvPolicyRun.Policy policy = KvPolicyRun.Policy.parse(a.get("--policy", "pe"));
        KvPolicyRun.rejectForeign(a, policy);
        KvScoreOptions scoreOptions = policy == null ? scoreOptions(a, seed) : null;
        PagedEvictionOptions options = policy == null ? evictionOptions(a, seed) : null;
        String deviceName = a.get("--device", "auto");
        try (Device device = Devices.open(deviceName)) {
            boolean small = device.kind() != DeviceKind.CUDA;
            List<String> defaulted = new ArrayList<>();
            for (String s : SIZES) if (!a.has(s)) defaulted.add(s);
            int layers = positive(a, "--layers", small ? 2 : 32);
            int heads = positive(a, "--kv-heads", small ? 2 : 8);
            int headDim = positive(a, "--head-dim", small ? 16 : 128);
            int b = positive(a, "--block", 16);
            if (kind == KvLayout.Kind.LEGACY && headDim % (16 / dtype.bytes()) != 0)
                throw new UsageException("--head-dim: --layout legacy needs a multiple of x = 16 / element bytes = " + 16 / dtype.bytes() + ", was " + headDim);
            int budget = positive(a, "--budget", small ? 96 : 1024);
            int steps = a.intValue("--steps", small ? 64 : 256);
            if (steps < 0) throw new UsageException("--steps: must be >= 0, was " + steps);
            if (policy == null || !policy.token) {  // the BLOCK-granular cache's rules; token policies take any C >= 1
                if (budget % b != 0) throw new UsageException("--budget: must be a multiple of the block size " + b + ", was " + budget);
                if ((long) budget < 3L * b) throw new UsageException("--budget: must be at least 3 blocks (" + 3 * b + " tokens), was " + budget);
            }
            KvPolicyRun.Config config = policy == null ? null : KvPolicyRun.config(a, policy, budget, b, heads, headDim);
            int[] prompts = a.intList("--prompt", new int[] {small ? 200 : 2048});
            int batch = a.intValue("--batch", prompts.length);
            if (batch < 1) throw new UsageException("--batch: must be >= 1, was " + batch);
            if (prompts.length == 1 && batch > 1) {
                int p = prompts[0];
                prompts = new int[batch];
                Arrays.fill(prompts, p);
            } else if (prompts.length != batch) {
                throw new UsageException("--prompt: " + prompts.length + " lengths for --batch " + batch + " (give one length or one per sequence)");
            }
            out.println("kv-evict on " + device.description());
            if (small && !defaulted.isEmpty())
                out.println("note: " + device.kind().cliName() + " is slow; " + String.join(", ", defaulted.stream().sorted().toList())
                        + " not given, using a small model (2 layers, 2 kv heads, head dim 16, prompt 200, budget 96, steps 64)");
            if (config != null) {
                new KvPolicyRun(device, config, kind, dtype, layers, heads, headDim, b, prompts, steps, seed, a.has("--check"), out).execute();
                return;
            }
            Run r = new Run(device, kind, dtype, layers, heads, headDim, b, budget, prompts, steps, seed, scoreOptions, options, a.has("--check"), out);
            r.execute();
        }
    }

    /** --score v_over_k|inv_k|v|k_plus_v|random, --head-agg mean_of_ratios|ratio_of_means. */
    static KvScoreOptions scoreOptions(Args a, long seed) {
        KvScoreOptions.Metric metric = switch (a.get("--score", "v_over_k")) {
            case "v_over_k" -> KvScoreOptions.Metric.V_OVER_K;
            case "inv_k" -> KvScoreOptions.Metric.INV_K;
            case "v" -> KvScoreOptions.Metric.V;
            case "k_plus_v" -> KvScoreOptions.Metric.K_PLUS_V;
            case "random" -> KvScoreOptions.Metric.RANDOM;
            default -> throw new UsageException("--score: expected v_over_k, inv_k, v, k_plus_v or random, got '" + a.get("--score", "") + "'");
        };
        KvScoreOptions.HeadAgg agg = switch (a.get("--head-agg", "mean_of_ratios")) {
            case "mean_of_ratios" -> KvScoreOptions.HeadAgg.MEAN_OF_RATIOS;
            case "ratio_of_means" -> KvScoreOptions.HeadAgg.RATIO_OF_MEANS;
            default -> throw new UsageException("--head-agg: expected mean_of_ratios or ratio_of_means, got '" + a.get("--head-agg", "") + "'");
        };
        return new KvScoreOptions(metric, agg, KvScoreOptions.DEFAULT_EPS, seed);
    }

    /** --preset pe|streaming, --window global|local[:K], --victim argmin|argmax|random, --layer-agg mean|layer0. */
    static PagedEvictionOptions evictionOptions(Args a, long seed) {
        String preset = a.get("--preset", "pe");
        PagedEvictionOptions o;
        if (preset.equals("streaming")) {
            for (String fixed : List.of("--score", "--head-agg", "--window", "--victim", "--layer-agg"))
                if (a.has(fixed)) throw new UsageException(fixed + ": not with --preset streaming (it keeps the most recent tokens and always evicts block 1)");
            return PagedEvictionOptions.streamingLlm().withSeed(seed);
        } else if (!preset.equals("pe")) {
            throw new UsageException("--preset: expected pe or streaming, got '" + preset + "'");
        }
        String w = a.get("--window", "global");
        int window;
        if (w.equals("global")) {
            window = 0;
        } else if (w.equals("local")) {
            window = PagedEvictionOptions.DEFAULT_LOCAL_WINDOW;
        } else if (w.startsWith("local:")) {
            try {
                window = Integer.parseInt(w.substring(6).trim());
            } catch (NumberFormatException e) {
                throw new UsageException("--window: expected global, local or local:K, got '" + w + "'");
            }
            if (window < 1) throw new UsageException("--window: local:K needs K >= 1, was " + window);
        } else {
            throw new UsageException("--window: expected global, local or local:K, got '" + w + "'");
        }
        PagedEvictionOptions.Victim victim = switch (a.get("--victim", "argmin")) {
            case "argmin" -> PagedEvictionOptions.Victim.ARGMIN;
            case "argmax" -> PagedEvictionOptions.Victim.ARGMAX;
            case "random" -> PagedEvictionOptions.Victim.RANDOM;
            default -> throw new UsageException("--victim: expected argmin, argmax or random, got '" + a.get("--victim", "") + "'");
        };
        PagedEvictionOptions.LayerAgg agg = switch (a.get("--layer-agg", "mean")) {
            case "mean" -> PagedEvictionOptions.LayerAgg.MEAN_OVER_LAYERS;
            case "layer0" -> PagedEvictionOptions.LayerAgg.LAYER0;
            default -> throw new UsageException("--layer-agg: expected mean or layer0, got '" + a.get("--layer-agg", "") + "'");
        };
        o = new PagedEvictionOptions(window, agg, victim, seed, PagedEvictionOptions.Prefill.SCORES);
        return o;
    }

    /** One line naming the active options. */
    static String describe(KvScoreOptions so, PagedEvictionOptions o) {
        String score = o.prefill() == PagedEvictionOptions.Prefill.RECENT && !o.readsScores() ? "none (position)"
                : so.metric().name().toLowerCase(Locale.ROOT) + (so.metric() == KvScoreOptions.Metric.V_OVER_K ? " " + so.headAgg().name().toLowerCase(Locale.ROOT) : "");
        String window = o.global() ? "global" : "local:" + o.window();
        String victim = o.window() == 1 ? "block 1" : o.victim().name().toLowerCase(Locale.ROOT);
        return "options: score " + score + ", window " + window + ", victim " + victim + ", layer-agg " + (o.layerAgg() == PagedEvictionOptions.LayerAgg.LAYER0 ? "layer0" : "mean")
                + ", prefill " + o.prefill().name().toLowerCase(Locale.ROOT);
    }

    private static int positive(Args a, String name, int fallback) {
        int v = a.intValue(name, fallback);
        if (v < 1) throw new UsageException(name + ": must be >= 1, was " + v);
        return v;
    }

    private static final class Run {
        final Device device;
        final KernelDevice kd;
        final KvLayout layout;
        final DType dtype;
        final int layers, heads, headDim, b, budget, steps, seqs, width;
        final int[] prompts;
        final boolean check;
        final PrintStream out;
        final Random rnd;
        final Object[] host;  // per layer: float[] or short[] (layout.elements())
        final PagedKvCache cache;
        final int[] ids;
        final KvScoreOptions scoreOptions;
        final PagedEvictionOptions options;
        float[] scores;  // layers x seqs x width, NaN = unset (mirror of the device's state)

        Run(Device device, KvLayout.Kind kind, DType dtype, int layers, int heads, int headDim, int b, int budget, int[] prompts, int steps, long seed,
            KvScoreOptions scoreOptions, PagedEvictionOptions options, boolean check, PrintStream out) {
            this.scoreOptions = scoreOptions;
            this.options = options;
            this.device = device;
            this.kd = device instanceof KernelDevice k ? k : null;
            this.dtype = dtype;
            this.layers = layers;
            this.heads = heads;
            this.headDim = headDim;
            this.b = b;
            this.budget = budget;
            this.prompts = prompts;
            this.steps = steps;
            this.seqs = prompts.length;
            this.check = check;
            this.out = out;
            this.rnd = new Random(seed);
            this.width = budget / b + 1;
            long numBlocks = (long) seqs * (width + 1);
            if (numBlocks * 2L * b * heads * headDim > Integer.MAX_VALUE)
                throw new UsageException("--budget, --batch, --kv-heads, --head-dim: one layer's cache would exceed 2^31 - 1 elements");
            this.layout = KvLayout.of(kind, dtype, (int) numBlocks, b, heads, headDim);
            this.cache = new PagedKvCache((int) numBlocks, b, budget);
            this.host = new Object[layers];
            for (int l = 0; l < layers; l++)
                host[l] = dtype == DType.F32 ? new float[(int) layout.elements()] : new short[(int) layout.elements()];
            this.ids = new int[seqs];
        }

        /** Random K or V of one token (H x D), already rounded to the dtype, as floats and as raw values. */
        private Object randomToken(float[] asFloats) {
            float[] f = new float[heads * headDim];
            for (int h = 0; h < heads; h++) {
                double scale = 0.5 + rnd.nextDouble();  // norms vary per token and head, so scores differ
                for (int d = 0; d < headDim; d++) f[h * headDim + d] = (float) (scale * rnd.nextGaussian());
            }
            Object raw = switch (dtype) {
                case F32 -> f;
                case F16 -> Fp16.fromFloats(f);
                case BF16 -> Bf16.fromFloats(f);
            };
            if (asFloats != null) System.arraycopy(f, 0, asFloats, 0, f.length);
            return raw;
        }

        /** Writes one token's K and V (H x D each) into the host cache of layer l at (block, slot). */
        private void writeHost(int l, int block, int slot, Object k, Object v) {
            KvTokenRows.put(layout, host[l], 0, block, slot, k);
            KvTokenRows.put(layout, host[l], 1, block, slot, v);
        }

        void execute() {
            out.println(describe(scoreOptions, options));
            prefill();
            if (kd != null) {
                Stream stream = kd.defaultStream();
                try (Workspace ws = new Workspace(kd, stream);
                     DeviceBuffer tables = kd.alloc(4L * seqs * width);
                     DeviceBuffer sc = kd.alloc(4L * scores.length);
                     DeviceBuffer kv = kd.alloc(4L * seqs);
                     DeviceBuffer logical = kd.alloc(8L * seqs);
                     DeviceBuffer victims = kd.alloc(4L * seqs);
                     DeviceBuffer freed = kd.alloc(4L * seqs);
                     Timer timer = kd.timer(stream)) {
                    DeviceBuffer[] caches = new DeviceBuffer[layers];
                    try {
                        for (int l = 0; l < layers; l++) {
                            caches[l] = kd.alloc(layout.bytes());
                            upload(host[l], caches[l], stream);
                        }
                        kd.upload(scores, sc, stream);
                        PagedEviction.DeviceState state = new PagedEviction.DeviceState(seqs, layers, b, budget, layout.numBlocks(), tables, width, sc, kv,
                                logical);
                        decode(new DeviceStepper(stream, ws, caches, state, victims, freed, timer));
                    } finally {
                        for (DeviceBuffer c : caches) if (c != null) c.close();
                    }
                }
            } else {
                decode(null);
            }
        }

        private void upload(Object data, DeviceBuffer dst, Stream stream) {
            if (data instanceof float[] f) kd.upload(f, dst, stream);
            else kd.upload((short[]) data, dst, stream);
        }

        /** Prompt K/V per layer in a scratch paged layout, scored, kept (PE-REF step 4), written to the cache. */
        private void prefill() {
            int total = Arrays.stream(prompts).sum();
            int[] rowOffsets = new int[seqs + 1];
            int[] promptBlocks = new int[seqs + 1];
            for (int s = 0; s < seqs; s++) {
                rowOffsets[s + 1] = rowOffsets[s] + prompts[s];
                promptBlocks[s + 1] = promptBlocks[s] + (prompts[s] + b - 1) / b;
            }
            int pw = 1;
            for (int s = 0; s < seqs; s++) pw = Math.max(pw, promptBlocks[s + 1] - promptBlocks[s]);
            KvLayout pl = KvLayout.of(layout.kind(), dtype, promptBlocks[seqs], b, heads, headDim);
            int[] ptables = new int[seqs * pw];
            for (int s = 0; s < seqs; s++) for (int j = 0; j < promptBlocks[s + 1] - promptBlocks[s]; j++) ptables[s * pw + j] = promptBlocks[s] + j;
            int[] keepCount = new int[seqs];
            for (int s = 0; s < seqs; s++) {
                keepCount[s] = PagedEviction.prefillKeepCount(prompts[s], budget, b);
                ids[s] = cache.allocateSequence(keepCount[s], prompts[s]);
            }
            scores = new float[layers * seqs * width];
            Arrays.fill(scores, Float.NaN);
            float[][] blockSums = new float[seqs][width];
            for (int l = 0; l < layers; l++) {
                Object prompt = dtype == DType.F32 ? new float[(int) pl.elements()] : new short[(int) pl.elements()];
                for (int s = 0; s < seqs; s++)
                    for (int t = 0; t < prompts[s]; t++) {
                        int blk = ptables[s * pw + t / b];
                        KvTokenRows.put(pl, prompt, 0, blk, t % b, randomToken(null));
                        KvTokenRows.put(pl, prompt, 1, blk, t % b, randomToken(null));
                    }
                boolean recent = options.prefill() == PagedEvictionOptions.Prefill.RECENT;
                float[] ts = new float[total];
                if (recent) {  // score = position: nothing to read
                    for (int s = 0; s < seqs; s++) for (int t = 0; t < prompts[s]; t++) ts[rowOffsets[s] + t] = Float.NaN;
                } else if (kd != null) {
                    int[] begin = new int[seqs];
                    ts = KvTokenScores.score(kd, pl, prompt, ptables, pw, begin, prompts, scoreOptions);
                } else {
                    for (int s = 0; s < seqs; s++) {
                        double[] d = PagedEvictionReference.tokenScores(pl, prompt, Arrays.copyOfRange(ptables, s * pw, (s + 1) * pw), 0, prompts[s], scoreOptions);
                        for (int t = 0; t < d.length; t++) ts[rowOffsets[s] + t] = (float) d[t];
                    }
                }
                int[][] kept;
                if (recent) {
                    kept = kd != null ? PagedEviction.prefillKeepRecent(kd, rowOffsets, budget, b) : new int[seqs][];
                    if (kd == null) for (int s = 0; s < seqs; s++) kept[s] = PagedEvictionReference.prefillKeepRecent(prompts[s], budget, b);
                    if (check) for (int s = 0; s < seqs; s++)
                        if (!Arrays.equals(kept[s], PagedEvictionReference.prefillKeepRecent(prompts[s], budget, b)))
                            throw new CheckFailed("prefill: sequence " + s + " kept positions differ from the reference");
                } else if (kd != null) {
                    kept = PagedEviction.prefillKeep(kd, ts, rowOffsets, budget, b);
                } else {
                    kept = new int[seqs][];
                    for (int s = 0; s < seqs; s++) {
                        double[] d = new double[prompts[s]];
                        for (int t = 0; t < d.length; t++) d[t] = ts[rowOffsets[s] + t];
                        kept[s] = PagedEvictionReference.prefillKeep(d, budget, b);
                    }
                }
                for (int s = 0; s < seqs; s++) {
                    if (kept[s].length != keepCount[s]) throw new CheckFailed("prefill: sequence " + s + " kept " + kept[s].length + " tokens, expected " + keepCount[s]);
                    int[] table = cache.blockTable(ids[s]);
                    float[] keptScores = new float[kept[s].length];
                    for (int i = 0; i < kept[s].length; i++) {
                        int t = kept[s][i], src = ptables[s * pw + t / b];
                        KvTokenRows.copy(pl, prompt, src, t % b, layout, host[l], table[i / b], i % b);
                        keptScores[i] = ts[rowOffsets[s] + t];
                    }
                    for (int j = 0; j < kept[s].length / b && !recent; j++) {
                        float v = PagedEvictionReference.blockScoreF32(keptScores, j * b, b);
                        scores[(l * seqs + s) * width + j] = v;
                        blockSums[s][j] += v;
                    }
                }
            }
            for (int s = 0; s < seqs; s++) {
                if (options.prefill() == PagedEvictionOptions.Prefill.SCORES)
                    for (int j = 0; j < keepCount[s] / b; j++) cache.setBlockScore(ids[s], j, blockSums[s][j] / layers);
                out.printf(Locale.ROOT, "prefill: seq %d prompt %d kept %d tokens in %d blocks%n", s, prompts[s], keepCount[s], cache.blockTable(ids[s]).length);
            }
            cache.checkInvariants();
        }

        /** The device side of a decision step. */
        private final class DeviceStepper {
            final Stream stream;
            final Workspace ws;
            final DeviceBuffer[] caches;
            final PagedEviction.DeviceState state;
            final DeviceBuffer victims, freed;
            final Timer timer;

            DeviceStepper(Stream stream, Workspace ws, DeviceBuffer[] caches, PagedEviction.DeviceState state, DeviceBuffer victims, DeviceBuffer freed,
                          Timer timer) {
                this.stream = stream;
                this.ws = ws;
                this.caches = caches;
                this.state = state;
                this.victims = victims;
                this.freed = freed;
                this.timer = timer;
            }

            void writeToken(int l, int block, int slot, Object k, Object v) {
                KvTokenRows.upload(kd, layout, caches[l], 0, block, slot, k, stream);
                KvTokenRows.upload(kd, layout, caches[l], 1, block, slot, v, stream);
            }

            /** Runs the step on the device; returns the decision (downloaded) and stores the elapsed device ms in ms[0]. */
            Decision decide(DecodeBatch batch, boolean[] filled, double[] ms) {
                kd.upload(batch.blockTables(), state.blockTables(), stream);
                kd.upload(batch.kvLen(), state.kvLen(), stream);
                kd.upload(PagedEviction.int64Words(batch.logicalLen()), state.logicalLen(), stream);
                timer.start();
                var p = PagedEviction.decodeStepOnDevice(layout, caches, scoreOptions, state, batch.kvLen(), filled, options, victims, freed, ws, stream);
                ms[0] = timer.stopMillis();
                p.await();
                int[] v = new int[seqs], f = new int[seqs], t = new int[seqs * width], k = new int[seqs];
                float[] sc = new float[scores.length];
                kd.download(victims, v, stream);
                kd.download(freed, f, stream);
                kd.download(state.blockTables(), t, stream);
                kd.download(state.blockScores(), sc, stream);
                kd.download(state.kvLen(), k, stream);
                stream.synchronize();
                return new Decision(v, f, t, sc, k);
            }
        }

        private void decode(DeviceStepper dev) {
            int n = heads * headDim;
            int[] evictions = new int[seqs];
            List<List<Integer>> victimBlocks = new ArrayList<>();
            for (int s = 0; s < seqs; s++) victimBlocks.add(new ArrayList<>());
            double[] stepMs = new double[steps];
            List<Double> decisionMs = new ArrayList<>();
            int checked = 0;
            for (int step = 0; step < steps; step++) {
                long t0 = System.nanoTime();
                boolean[] filled = new boolean[seqs];
                int[] fillAt = new int[seqs];
                int fills = 0;
                for (int s = 0; s < seqs; s++) {
                    int slot = cache.appendTokens(ids[s], 1).slots()[0];
                    for (int l = 0; l < layers; l++) {
                        Object k = randomToken(null), v = randomToken(null);
                        writeHost(l, slot / b, slot % b, k, v);
                        if (dev != null) dev.writeToken(l, slot / b, slot % b, k, v);
                    }
                    filled[s] = cache.kvLen(ids[s]) % b == 0;
                    fillAt[s] = filled[s] ? fills++ : -1;
                }
                if (fills > 0) {
                    float[] fillScores = new float[layers * fills * b];
                    if ((dev == null || check) && options.readsScores()) {
                        for (int s = 0; s < seqs; s++) {
                            if (!filled[s]) continue;
                            int kv = cache.kvLen(ids[s]);
                            int[] row = cache.blockTable(ids[s]);
                            for (int l = 0; l < layers; l++) {
                                double[] d = PagedEvictionReference.tokenScores(layout, host[l], row, kv - b, kv, scoreOptions);
                                for (int j = 0; j < b; j++) fillScores[(l * fills + fillAt[s]) * b + j] = (float) d[j];
                            }
                        }
                    }
                    DecodeBatch batch = PagedEviction.batchOf(cache, ids, width, layers, scores, fillAt, fills, fillScores);
                    Decision want = check ? PagedEvictionReference.decodeStep(batch, options) : null;
                    Decision got;
                    if (dev != null) {
                        double[] ms = new double[1];
                        got = dev.decide(batch, filled, ms);
                        decisionMs.add(ms[0]);
                    } else {
                        long d0 = System.nanoTime();
                        got = PagedEvictionReference.decodeStep(batch, options);
                        decisionMs.add((System.nanoTime() - d0) / 1e6);
                    }
                    if (check) {
                        compare(step, batch, want, got);
                        checked++;
                    }
                    PagedEviction.applyTo(cache, ids, batch, got);
                    for (int s = 0; s < seqs; s++)
                        if (got.victims()[s] >= 0) {
                            evictions[s]++;
                            victimBlocks.get(s).add(got.victims()[s]);
                        }
                    scores = got.blockScores();
                    cache.reclaimEvicted();
                }
                try {
                    cache.checkInvariants();
                } catch (IllegalStateException e) {
                    throw new CheckFailed("step " + step + ": cache invariant broken: " + e.getMessage());
                }
                stepMs[step] = (System.nanoTime() - t0) / 1e6;
            }
            int total = Arrays.stream(evictions).sum();
            out.printf(Locale.ROOT, "decode: %d steps, %d decision steps, %d evictions%n", steps, decisionMs.size(), total);
            for (int s = 0; s < seqs; s++)
                out.printf(Locale.ROOT, "seq %d: blocks held %d, kv_len %d, logical %d, evictions %d, victim blocks %s%n", s, cache.blockTable(ids[s]).length,
                        cache.kvLen(ids[s]), cache.logicalLength(ids[s]), evictions[s], victimBlocks.get(s));
            if (steps > 0)
                out.printf(Locale.ROOT, "time per decode step: mean %.4f ms, median %.4f ms (wall clock, host bookkeeping and K/V writes included)%n",
                        mean(stepMs), median(stepMs));
            if (!decisionMs.isEmpty()) {
                double[] d = decisionMs.stream().mapToDouble(Double::doubleValue).toArray();
                String launches = options.readsScores() ? "L + 2 launches" : "2 launches";
                String how = dev == null ? "wall clock, reference" : device.kind() == DeviceKind.CUDA ? "device timer, " + launches : "simulator wall clock";
                out.printf(Locale.ROOT, "time per decision: mean %.4f ms, median %.4f ms (%s)%n", mean(d), median(d), how);
            }
            if (check) out.println("check: " + checked + " decisions match the reference");
        }

        private void compare(int step, DecodeBatch batch, Decision want, Decision got) {
            for (int s = 0; s < seqs; s++) {
                String where = "step " + step + " sequence " + s + ": ";
                if (want.victims()[s] != got.victims()[s]) throw new CheckFailed(where + "victim " + got.victims()[s] + ", reference " + want.victims()[s]);
                if (want.freed()[s] != got.freed()[s]) throw new CheckFailed(where + "freed block " + got.freed()[s] + ", reference " + want.freed()[s]);
                if (want.kvLen()[s] != got.kvLen()[s]) throw new CheckFailed(where + "kv_len " + got.kvLen()[s] + ", reference " + want.kvLen()[s]);
                for (int j = 0; j < width; j++)
                    if (want.blockTables()[s * width + j] != got.blockTables()[s * width + j])
                        throw new CheckFailed(where + "block table entry " + j + " is " + got.blockTables()[s * width + j] + ", reference " + want.blockTables()[s * width + j]);
                int last = batch.fillAt()[s] >= 0 ? got.kvLen()[s] / b - 1 : -1;
                for (int l = 0; l < layers; l++)
                    for (int j = 0; j < width; j++) {
                        float w = want.blockScores()[(l * seqs + s) * width + j], g = got.blockScores()[(l * seqs + s) * width + j];
                        boolean ok = Float.floatToIntBits(w) == Float.floatToIntBits(g) || j == last && Math.abs(w - g) <= 2e-5 * Math.abs(w) + 1e-6;
                        if (!ok) throw new CheckFailed(where + "block score layer " + l + " block " + j + " is " + g + ", reference " + w);
                    }
            }
        }
    }

    static double mean(double[] v) {
        return Arrays.stream(v).average().orElse(Double.NaN);
    }

    static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }
}
