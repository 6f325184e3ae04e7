package tokenprune.cli;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;

import tokenprune.device.Device;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.DeviceKind;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.device.Timer;
import tokenprune.kv.AttentionScores;
import tokenprune.kv.BlockEviction;
import tokenprune.kv.BlockEvictionOptions;
import tokenprune.kv.KvCompaction;
import tokenprune.kv.KvKeepSelect;
import tokenprune.kv.KvLayout;
import tokenprune.kv.PagedEviction;
import tokenprune.kv.PagedKvCache;
import tokenprune.kv.TokenEviction;
import tokenprune.methods.DType;
import tokenprune.methods.Pending;
import tokenprune.methods.Workspace;
import tokenprune.numeric.Bf16;
import tokenprune.numeric.Fp16;
import tokenprune.reference.AttentionScoresReference;
import tokenprune.reference.BlockEvictionReference;
import tokenprune.reference.TokenEvictionReference;

/**
 * {@code kv-evict --policy h2o|a2sf|streaming|block-h2o|block-a2sf|block-streaming}: a synthetic decode
 * run of the attention-score policies on random K/V. Every decode step, in this order: (1) one token per
 * sequence is appended (random K/V written at its slot in every layer); (2) the score policies update
 * each layer's fp32 state ([numBlocks][B][kvHeads]) from one random query row per sequence with
 * {@link AttentionScores#accumulatePagedOnDevice} (prevLens = kv_len before the append, so the appended
 * token, a reused slot, and at step 0 the whole prompt count as new); (3) the eviction: token policies
 * compact every sequence at kv_len >= C + slack to C tokens ({@link TokenEviction#evictOnDevice} +
 * {@link TokenEviction#applyTo} on a TOKEN {@link PagedKvCache}), block policies drop one block of a
 * sequence whose newest block is full and over the budget ({@link BlockEviction#decideOnDevice} +
 * {@link BlockEviction#applyTo}). Attend-then-evict: the state an eviction reads includes this step's
 * query. The cpu device runs the references only.
 *
 * <p>The LSE the score update needs is synthetic: ln(kv_len) + 1/2 for every query row and head, the
 * expectation for unit-variance logits (the exact LSE costs a host pass over every key). {@code --check}
 * feeds the references the same inputs as the device: the state update is compared with
 * {@link AttentionScoresReference#accumulatePaged} on the device's previous state (tolerance
 * {@link #STATE_RTOL}·|ref| + {@link #STATE_ATOL}), the eviction with {@link TokenEvictionReference} /
 * {@link BlockEvictionReference} on the device's state before it: kv_len, tables, victims, the compacted
 * caches (bit-exact; within the rounding of the dtype where StreamingLLM re-rotates keys) and states exactly,
 * except a block victim whose float64 block score ties the reference's within {@link #TIE_RTOL} (fp32 may
 * then pick the other block; counted and reported).
 *
 * <p>Prefill (no prompt scoring, K/V random so only the counts matter): token policies keep a prompt of
 * L <= C + slack − 1 tokens whole, a longer one keeps its first {@code sinks} and last C − sinks tokens
 * (kv_len C); block policies keep PE's count (C + L mod B when L > C). The kept prompt is scored for the
 * first time by the first decode step's query.
 */
final class KvPolicyRun {
    static final double STATE_RTOL = 2e-5, STATE_ATOL = 2e-6, TIE_RTOL = 1e-5;
    /**
     * The state starts as this garbage on every slot (device and host): a token the update wrongly
     * treats as old (prevLens too large) keeps decay · garbage, far above any real score, which
     * {@code --check} reports.
     */
    static final float GARBAGE = 1e30f, STALE = 1e20f;

    /** The policies of {@code --policy} other than pe. */
    enum Policy {
        H2O("h2o", true, true), A2SF("a2sf", true, true), STREAMING("streaming", true, false), BLOCK_H2O("block-h2o", false, true),
        BLOCK_A2SF("block-a2sf", false, true), BLOCK_STREAMING("block-streaming", false, false);

        final String cliName;
        final boolean token, scores;

        Policy(String cliName, boolean token, boolean scores) {
            this.cliName = cliName;
            this.token = token;
            this.scores = scores;
        }

        boolean a2sf() {
            return this == A2SF || this == BLOCK_A2SF;
        }

        /** null for pe. */
        static Policy parse(String name) {
            if (name.equals("pe")) return null;
            for (Policy p : values()) if (p.cliName.equals(name)) return p;
            throw new UsageException("--policy: expected pe, h2o, a2sf, streaming, block-h2o, block-a2sf or block-streaming, got '" + name + "'");
        }
    }

    /** The options of the policy in tokens; decay = 1 for H2O, α for A2SF. */
    record Config(Policy policy, int budget, int sinks, int recent, int slack, float decay, int queryHeads, Float ropeBase) {
        int heavyHitters() {
            return budget - sinks - recent;
        }

        TokenEviction.Options tokenOptions(int headDim) {
            if (policy == Policy.STREAMING)
                return TokenEviction.Options.streaming(sinks, recent, slack, ropeBase == null ? null : KvCompaction.Rope.neox(headDim, ropeBase));
            if (policy == Policy.A2SF) return TokenEviction.Options.a2sf(sinks, recent, budget, slack);  // A2SF-REF: ties evict the lowest index
            return new TokenEviction.Options(TokenEviction.Policy.ATTENTION, KvKeepSelect.Policy.perHead(sinks, recent, budget), slack, null);
        }

        BlockEvictionOptions blockOptions(int b) {
            return new BlockEvictionOptions(policy.scores ? BlockEvictionOptions.Policy.ATTENTION : BlockEvictionOptions.Policy.STREAMING, sinks / b, recent / b);
        }

        String describe(int b) {
            StringBuilder sb = new StringBuilder("policy " + policy.cliName + ": budget " + budget + " tokens");
            if (policy.token) {
                sb.append(", sinks ").append(sinks).append(", recent ").append(recent);
                if (policy.scores) sb.append(", heavy hitters ").append(heavyHitters()).append(" per kv head");
                sb.append(", slack ").append(slack);
            } else {
                sb.append(", protected blocks: ").append(sinks / b).append(" first, ").append(recent / b).append(" last");
            }
            if (policy.a2sf()) sb.append(", alpha ").append(decay);
            if (policy.scores) sb.append(", query heads ").append(queryHeads);
            if (policy == Policy.STREAMING) sb.append(ropeBase == null ? ", keys keep their positions" : ", keys re-rotated (rope base " + ropeBase + ")");
            return sb.append("; per step: append, ").append(policy.scores ? "score update, " : "").append("evict").toString();
        }
    }

    /** Options only some policies take. */
    static final List<String> OWN = List.of("--hh", "--recent", "--sinks", "--alpha", "--slack", "--rope-base", "--q-heads");
    /** Options only pe takes. */
    static final List<String> PE_ONLY = List.of("--score", "--head-agg", "--window", "--victim", "--layer-agg", "--preset");

    /** Rejects the options that belong to another policy (pe: p == null). */
    static void rejectForeign(Args a, Policy p) {
        if (p == null) {
            for (String o : OWN) if (a.has(o)) throw new UsageException(o + ": not with --policy pe (it belongs to the attention-score policies)");
            return;
        }
        for (String o : PE_ONLY) if (a.has(o)) throw new UsageException(o + ": not with --policy " + p.cliName + " (it belongs to --policy pe)");
        List<String> allowed = new ArrayList<>(List.of("--recent", "--sinks"));
        if (p.token) allowed.add("--slack");
        if (p == Policy.H2O || p == Policy.A2SF) allowed.add("--hh");
        if (p.a2sf()) allowed.add("--alpha");
        if (p.scores) allowed.add("--q-heads");
        if (p == Policy.STREAMING) allowed.add("--rope-base");
        for (String o : OWN) if (a.has(o) && !allowed.contains(o)) throw new UsageException(o + ": not with --policy " + p.cliName);
    }

    /** The policy options from the arguments, budget C and block size B already validated for the policy. */
    static Config config(Args a, Policy p, int budget, int b, int kvHeads, int headDim) {
        int slack = p.token ? a.intValue("--slack", b) : b;
        if (slack < 1) throw new UsageException("--slack: must be >= 1, was " + slack);
        int sinks, recent;
        if (p.token) {
            sinks = a.intValue("--sinks", p == Policy.STREAMING ? Math.min(4, budget - 1) : 0);
            if (sinks < 0) throw new UsageException("--sinks: must be >= 0, was " + sinks);
            if (p == Policy.STREAMING) {
                recent = a.intValue("--recent", budget - sinks);
            } else if (a.has("--hh")) {
                int hh = a.intValue("--hh", 0);
                if (hh < 0) throw new UsageException("--hh: must be >= 0, was " + hh);
                recent = a.intValue("--recent", budget - sinks - hh);
                if ((long) hh + recent + sinks != budget)
                    throw new UsageException("--hh: hh + recent + sinks must equal the budget " + budget + ", was " + hh + " + " + recent + " + " + sinks);
            } else {
                recent = a.intValue("--recent", (budget - sinks) / 2);
            }
            if (recent < (p == Policy.STREAMING ? 1 : 0)) throw new UsageException("--recent: must be >= " + (p == Policy.STREAMING ? 1 : 0) + ", was " + recent);
        } else {
            sinks = a.intValue("--sinks", b);
            recent = a.intValue("--recent", b);
            if (sinks < b || sinks % b != 0) throw new UsageException("--sinks: block policies protect whole blocks: a multiple of B = " + b + ", >= B, was " + sinks);
            if (recent < b || recent % b != 0) throw new UsageException("--recent: block policies protect whole blocks: a multiple of B = " + b + ", >= B, was " + recent);
        }
        if ((long) recent + sinks > budget) throw new UsageException("--recent, --sinks: recent + sinks = " + ((long) recent + sinks) + " exceeds the budget " + budget);
        if (p == Policy.STREAMING && recent + sinks != budget)
            throw new UsageException("--recent, --sinks: streaming keeps sinks + recent = budget tokens, " + sinks + " + " + recent + " != " + budget);
        float decay = 1f;
        if (p.a2sf()) {
            String s = a.get("--alpha", "0.95");
            double alpha;
            try {
                alpha = Double.parseDouble(s.trim());
            } catch (NumberFormatException e) {
                throw new UsageException("--alpha: not a number: '" + s + "'");
            }
            if (!(alpha >= 0 && alpha <= 1)) throw new UsageException("--alpha: the A2SF decay must lie in [0, 1], was " + s);
            decay = (float) alpha;
        }
        int queryHeads = a.intValue("--q-heads", 4 * kvHeads);
        if (queryHeads < 1 || queryHeads % kvHeads != 0)
            throw new UsageException("--q-heads: must be a positive multiple of --kv-heads " + kvHeads + ", was " + queryHeads);
        Float ropeBase = null;
        if (a.has("--rope-base")) {
            String s = a.get("--rope-base", "");
            try {
                ropeBase = Float.parseFloat(s.trim());
            } catch (NumberFormatException e) {
                throw new UsageException("--rope-base: not a number: '" + s + "'");
            }
            if (!(ropeBase > 0) || ropeBase.isInfinite()) throw new UsageException("--rope-base: must be finite and > 0, was " + s);
            if (headDim < 2 || headDim % 2 != 0) throw new UsageException("--rope-base: re-rotation needs an even --head-dim, was " + headDim);
        }
        return new Config(p, budget, sinks, recent, slack, decay, queryHeads, ropeBase);
    }

    private final Device device;
    private final KernelDevice kd;
    private final Config config;
    private final KvLayout layout;
    private final DType dtype;
    private final int layers, kvHeads, headDim, b, steps, seqs, width;
    private final int[] prompts;
    private final boolean check, mirror;
    private final PrintStream out;
    private final Random rnd;
    private final PagedKvCache cache;
    private final int[] ids;
    private final TokenEviction.Options tokenOptions;
    private final BlockEvictionOptions blockOptions;
    private final float scale;
    private Object[] host;      // per layer float[] / short[]: the cache as the reference sees it (cpu, or --check)
    private float[][] states;   // per layer [numBlocks][B][kvHeads]: the reference's state (score policies, cpu or --check)

    KvPolicyRun(Device device, Config config, KvLayout.Kind kind, DType dtype, int layers, int kvHeads, int headDim, int b, int[] prompts, int steps,
                long seed, boolean check, PrintStream out) {
        this.device = device;
        this.kd = device instanceof KernelDevice k ? k : null;
        this.config = config;
        this.dtype = dtype;
        this.layers = layers;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.b = b;
        this.prompts = prompts;
        this.steps = steps;
        this.seqs = prompts.length;
        this.check = check;
        this.mirror = kd == null || check;
        this.out = out;
        this.rnd = new Random(seed);
        this.scale = (float) (1 / Math.sqrt(headDim));
        Policy p = config.policy();
        int budget = config.budget();
        int maxPrompt = 0;
        for (int s = 0; s < seqs; s++) maxPrompt = Math.max(maxPrompt, prefillKeep(prompts[s]));
        // TOKEN: the table holds C + slack tokens; BLOCK: C/B + 1 blocks (one more per sequence while an evicted block waits for reclaim)
        this.width = p.token ? (int) Math.max((maxPrompt + (long) b - 1) / b, ((long) budget + config.slack() + b - 1) / b) : budget / b + 1;
        long numBlocks = (long) seqs * (p.token ? width : width + 1);
        if (numBlocks * 2L * b * kvHeads * headDim > Integer.MAX_VALUE || numBlocks * b * kvHeads > Integer.MAX_VALUE)
            throw new UsageException("--budget, --slack, --batch, --kv-heads, --head-dim: one layer's cache would exceed 2^31 - 1 elements");
        this.layout = KvLayout.of(kind, dtype, (int) numBlocks, b, kvHeads, headDim);
        this.cache = p.token ? PagedKvCache.forTokenEviction((int) numBlocks, b, budget, config.slack()) : new PagedKvCache((int) numBlocks, b, budget);
        this.tokenOptions = p.token ? config.tokenOptions(headDim) : null;
        this.blockOptions = p.token ? null : config.blockOptions(b);
        this.ids = new int[seqs];
    }

    private int prefillKeep(int prompt) {
        if (config.policy().token) return prompt <= config.budget() + config.slack() - 1 ? prompt : config.budget();
        return PagedEviction.prefillKeepCount(prompt, config.budget(), b);
    }

    private int slots() {
        return layout.numBlocks() * b * kvHeads;
    }

    /** Random values, already rounded to the dtype: float[] for F32, raw short[] otherwise. */
    private Object randomValues(int n, boolean varyNorms) {
        float[] f = new float[n];
        for (int i = 0; i < n; i += headDim) {
            double norm = varyNorms ? 0.5 + rnd.nextDouble() : 1;  // key norms vary per token and head, so scores differ
            for (int d = 0; d < headDim; d++) f[i + d] = (float) (norm * rnd.nextGaussian());
        }
        return switch (dtype) {
            case F32 -> f;
            case F16 -> Fp16.fromFloats(f);
            case BF16 -> Bf16.fromFloats(f);
        };
    }

    void execute() {
        out.println(config.describe(b));
        if (config.policy().scores)
            out.println("lse: synthetic ln(kv_len) + 1/2 per query row and head (the expectation for unit-variance logits), not the exact LSE; --check feeds the references the same values");
        prefill();
        if (kd == null) {
            decode(null);
            return;
        }
        Stream stream = kd.defaultStream();
        int qn = seqs * config.queryHeads() * headDim;
        try (Workspace ws = new Workspace(kd, stream);
             DeviceBuffer tables = kd.alloc(4L * seqs * width);
             DeviceBuffer kv = kd.alloc(4L * seqs);
             DeviceBuffer logical = kd.alloc(8L * seqs);
             DeviceBuffer victims = kd.alloc(4L * seqs);
             DeviceBuffer freed = kd.alloc(4L * seqs);
             DeviceBuffer queries = kd.alloc((long) layers * qn * dtype.bytes());
             DeviceBuffer lse = kd.alloc(4L * seqs * config.queryHeads());
             Timer timer = kd.timer(stream)) {
            DeviceBuffer[] caches = new DeviceBuffer[layers], st = config.policy().scores ? new DeviceBuffer[layers] : null;
            try {
                for (int l = 0; l < layers; l++) {
                    caches[l] = kd.alloc(layout.bytes());
                    upload(host[l], caches[l], stream);
                    if (st != null) {
                        st[l] = kd.alloc(4L * slots());
                        kd.upload(states[l], st[l], stream);
                    }
                }
                if (!mirror) {
                    host = null;
                    states = null;
                }
                decode(new Dev(stream, ws, caches, st, tables, kv, logical, victims, freed, queries, lse, timer));
            } finally {
                for (DeviceBuffer c : caches) if (c != null) c.close();
                if (st != null) for (DeviceBuffer c : st) if (c != null) c.close();
            }
        }
    }

    private void upload(Object data, DeviceBuffer dst, Stream stream) {
        if (data instanceof float[] f) kd.upload(f, dst, stream);
        else kd.upload((short[]) data, dst, stream);
    }

    /** K/V are random, so which prompt tokens a prefill keeps does not matter: the kept count's tokens are written in order. */
    private void prefill() {
        host = new Object[layers];
        for (int l = 0; l < layers; l++) host[l] = dtype == DType.F32 ? new float[(int) layout.elements()] : new short[(int) layout.elements()];
        if (config.policy().scores) {
            states = new float[layers][slots()];
            for (float[] st : states) Arrays.fill(st, GARBAGE);
        }
        for (int s = 0; s < seqs; s++) {
            int keep = prefillKeep(prompts[s]);
            ids[s] = cache.allocateSequence(keep, prompts[s]);
            int[] table = cache.blockTable(ids[s]);
            for (int t = 0; t < keep; t++)
                for (int l = 0; l < layers; l++) writeHost(l, table[t / b], t % b, randomValues(kvHeads * headDim, true), randomValues(kvHeads * headDim, true));
            out.printf(Locale.ROOT, "prefill: seq %d prompt %d kept %d tokens in %d blocks%n", s, prompts[s], keep, table.length);
        }
        cache.checkInvariants();
    }

    /** TokenEvictionReference on the host mirror. */
    private TokenEviction.Result referenceEvict(int[] tables, int[] kvLens) {
        return TokenEvictionReference.evict(layout, host, states, tables, width, kvLens, tokenOptions);
    }

    private void writeHost(int l, int block, int slot, Object k, Object v) {
        KvTokenRows.put(layout, host[l], 0, block, slot, k);
        KvTokenRows.put(layout, host[l], 1, block, slot, v);
    }

    /** The device side: caller-owned buffers of the run. */
    private record Dev(Stream stream, Workspace ws, DeviceBuffer[] caches, DeviceBuffer[] states, DeviceBuffer tables, DeviceBuffer kvLen,
                       DeviceBuffer logicalLen, DeviceBuffer victims, DeviceBuffer freed, DeviceBuffer queries, DeviceBuffer lse, Timer timer) {
    }

    private void decode(Dev dev) {
        Policy p = config.policy();
        int qHeads = config.queryHeads(), qn = seqs * qHeads * headDim, n = kvHeads * headDim;
        long es = dtype.bytes();
        int[] evictions = new int[seqs];
        List<List<Integer>> victimBlocks = new ArrayList<>();
        for (int s = 0; s < seqs; s++) victimBlocks.add(new ArrayList<>());
        double[] stepMs = new double[steps];
        List<Double> scoreMs = new ArrayList<>(), evictMs = new ArrayList<>();
        int evictionSteps = 0, checked = 0, nearTies = 0;
        double worstState = 0;
        int[] prevLens = new int[seqs];  // step 0: the whole prompt is new to the state
        int[] rowOffsets = new int[seqs + 1];
        for (int s = 0; s < seqs; s++) rowOffsets[s + 1] = s + 1;
        for (int step = 0; step < steps; step++) {
            long t0 = System.nanoTime();
            String at = "step " + step + ": ";
            int[] kvLens = new int[seqs], positions = new int[seqs];
            for (int s = 0; s < seqs; s++) {
                int slot = cache.appendTokens(ids[s], 1).slots()[0];
                for (int l = 0; l < layers; l++) {
                    Object k = randomValues(n, true), v = randomValues(n, true);
                    if (host != null) writeHost(l, slot / b, slot % b, k, v);
                    if (dev != null) {
                        KvTokenRows.upload(kd, layout, dev.caches()[l], 0, slot / b, slot % b, k, dev.stream());
                        KvTokenRows.upload(kd, layout, dev.caches()[l], 1, slot / b, slot % b, v, dev.stream());
                    }
                }
                kvLens[s] = cache.kvLen(ids[s]);
                positions[s] = kvLens[s] - 1;
            }
            BlockEviction.Batch blockBatch = p.token ? null : BlockEviction.batchOf(cache, ids, width, kvHeads, new float[0][]);
            int[] tables = p.token ? cache.blockTables(ids, width) : blockBatch.blockTables();
            if (dev != null) kd.upload(tables, dev.tables(), dev.stream());
            List<Pending> pendings = new ArrayList<>();
            if (p.scores) {
                float[] lse = new float[seqs * qHeads];
                for (int s = 0; s < seqs; s++) Arrays.fill(lse, s * qHeads, (s + 1) * qHeads, (float) (Math.log(kvLens[s]) + 0.5));
                Object[] q = new Object[layers];
                for (int l = 0; l < layers; l++) q[l] = randomValues(qn, false);
                if (dev != null) {
                    for (int l = 0; l < layers; l++) upload(q[l], dev.queries().slice(l * qn * es, qn * es), dev.stream());
                    kd.upload(lse, dev.lse(), dev.stream());
                    dev.timer().start();
                    for (int l = 0; l < layers; l++)
                        pendings.add(AttentionScores.accumulatePagedOnDevice(dev.ws(), dev.stream(), layout, dev.caches()[l], dev.tables(), width, kvLens, prevLens,
                                dev.queries().slice(l * qn * es, qn * es), (long) qHeads * headDim, headDim, qHeads, rowOffsets, positions, null, dev.lse(),
                                qHeads, 1, scale, config.decay(), dev.states()[l]));
                    scoreMs.add(dev.timer().stopMillis());
                }
                if (host != null) {
                    long d0 = System.nanoTime();
                    for (int l = 0; l < layers; l++) {
                        double[] ref = AttentionScoresReference.accumulatePaged(layout, host[l], tables, width, kvLens, prevLens, q[l], qHeads, rowOffsets,
                                positions, null, lse, scale, states[l], config.decay());
                        float[] next = new float[ref.length];
                        for (int i = 0; i < ref.length; i++) next[i] = (float) ref[i];
                        if (dev != null) {
                            float[] got = new float[next.length];
                            kd.download(dev.states()[l], got, dev.stream());
                            dev.stream().synchronize();
                            for (int i = 0; i < got.length; i++) {
                                double err = Math.abs(got[i] - ref[i]);
                                if (!(err <= STATE_RTOL * Math.abs(ref[i]) + STATE_ATOL))
                                    throw new KvEvictCommand.CheckFailed(at + "layer " + l + " state slot " + i + " is " + got[i] + ", reference " + ref[i]);
                                worstState = Math.max(worstState, err / (Math.abs(ref[i]) + STATE_ATOL / STATE_RTOL));
                            }
                            next = got;  // the eviction's reference reads the device's state
                        }
                        states[l] = next;
                        if (check) checkFresh(at + "layer " + l + ": ", next, tables, kvLens, config.decay());
                    }
                    if (dev == null) scoreMs.add((System.nanoTime() - d0) / 1e6);
                }
            }
            if (p.token) {
                int[] after;
                boolean due = false;
                for (int s = 0; s < seqs; s++) due |= TokenEviction.triggers(kvLens[s], tokenOptions);
                TokenEviction.Result want = null;
                long d0 = System.nanoTime();
                if (host != null && (dev == null || due)) want = referenceEvict(tables, kvLens);
                if (dev != null) {
                    dev.timer().start();
                    TokenEviction.Queued queued = TokenEviction.evictOnDevice(layout, dev.caches(), dev.states(), dev.tables(), width, kvLens, tokenOptions, dev.ws(),
                            dev.stream());
                    double ms = dev.timer().stopMillis();
                    if (due) evictMs.add(ms);
                    for (Pending pd : pendings) pd.await();
                    queued.pending().await();
                    after = queued.kvLen();
                    if (want != null) compareCompaction(at, want, after, dev);
                } else {
                    after = want.kvLen();
                    host = want.caches();
                    states = want.states();
                    if (due) evictMs.add((System.nanoTime() - d0) / 1e6);
                }
                if (due) evictionSteps++;
                if (check && due) checked++;
                for (int s = 0; s < seqs; s++) evictions[s] += kvLens[s] - after[s];
                TokenEviction.applyTo(cache, ids, after);
            } else {
                BlockEviction.Decision want = null, got;
                BlockEviction.Batch batch = states != null ? BlockEviction.batchOf(cache, ids, width, kvHeads, states) : blockBatch;
                if (dev != null) {
                    kd.upload(batch.kvLen(), dev.kvLen(), dev.stream());
                    kd.upload(PagedEviction.int64Words(batch.logicalLen()), dev.logicalLen(), dev.stream());
                    BlockEviction.DeviceState ds = new BlockEviction.DeviceState(seqs, b, config.budget(), layout.numBlocks(), dev.tables(), width, dev.kvLen(),
                            dev.logicalLen());
                    dev.timer().start();
                    Pending pd = BlockEviction.decideOnDevice(ds, dev.states(), kvHeads, blockOptions, dev.victims(), dev.freed(), dev.ws(), dev.stream());
                    evictMs.add(dev.timer().stopMillis());
                    for (Pending x : pendings) x.await();
                    pd.await();
                    int[] v = new int[seqs], f = new int[seqs], t = new int[seqs * width], k = new int[seqs];
                    kd.download(dev.victims(), v, dev.stream());
                    kd.download(dev.freed(), f, dev.stream());
                    kd.download(dev.tables(), t, dev.stream());
                    kd.download(dev.kvLen(), k, dev.stream());
                    dev.stream().synchronize();
                    got = new BlockEviction.Decision(v, f, t, k);
                    if (check) want = BlockEvictionReference.decide(batch, blockOptions);
                } else {
                    long d0 = System.nanoTime();
                    got = BlockEvictionReference.decide(batch, blockOptions);
                    evictMs.add((System.nanoTime() - d0) / 1e6);
                    if (check) want = BlockEvictionReference.decide(batch, blockOptions);
                }
                if (want != null) {
                    nearTies += compareBlocks(at, want, got);
                    checked++;
                }
                boolean any = false;
                for (int s = 0; s < seqs; s++) {
                    if (got.kvLen()[s] != BlockEviction.kvLenAfter(kvLens[s], batch.logicalLen()[s], config.budget(), b, blockOptions))
                        throw new KvEvictCommand.CheckFailed(at + "sequence " + s + ": kv_len " + got.kvLen()[s] + " is not the predicted kv_len");
                    if (got.victims()[s] >= 0) {
                        any = true;
                        evictions[s]++;
                        victimBlocks.get(s).add(got.victims()[s]);
                    }
                }
                if (any) evictionSteps++;
                BlockEviction.applyTo(cache, ids, got.victims(), got.freed());
            }
            cache.reclaimEvicted();
            try {
                cache.checkInvariants();
            } catch (IllegalStateException e) {
                throw new KvEvictCommand.CheckFailed(at + "cache invariant broken: " + e.getMessage());
            }
            for (int s = 0; s < seqs; s++) prevLens[s] = cache.kvLen(ids[s]);
            stepMs[step] = (System.nanoTime() - t0) / 1e6;
        }
        String unit = p.token ? "tokens" : "blocks";
        out.printf(Locale.ROOT, "decode: %d steps, %d eviction steps, %d evictions (%s)%n", steps, evictionSteps, Arrays.stream(evictions).sum(), unit);
        for (int s = 0; s < seqs; s++)
            out.printf(Locale.ROOT, "seq %d: blocks held %d, kv_len %d, logical %d, evictions %d %s%s%n", s, cache.blockTable(ids[s]).length, cache.kvLen(ids[s]),
                    cache.logicalLength(ids[s]), evictions[s], unit, p.token ? "" : ", victim blocks " + victimBlocks.get(s));
        if (steps > 0)
            out.printf(Locale.ROOT, "time per decode step: mean %.4f ms, median %.4f ms (wall clock, host bookkeeping and K/V writes included)%n",
                    KvEvictCommand.mean(stepMs), KvEvictCommand.median(stepMs));
        String how = dev == null ? "wall clock, reference" : device.kind() == DeviceKind.CUDA ? "device timer" : "simulator wall clock";
        if (!scoreMs.isEmpty()) {
            double[] d = scoreMs.stream().mapToDouble(Double::doubleValue).toArray();
            out.printf(Locale.ROOT, "time per score update: mean %.4f ms, median %.4f ms (%s, %d layers)%n", KvEvictCommand.mean(d), KvEvictCommand.median(d), how,
                    layers);
        }
        if (!evictMs.isEmpty()) {
            double[] d = evictMs.stream().mapToDouble(Double::doubleValue).toArray();
            String launches = dev == null ? "" : p.token ? (p.scores ? ", L + 2 launches" : ", 2 launches") : ", 2 launches";
            out.printf(Locale.ROOT, "time per eviction: mean %.4f ms, median %.4f ms (%s%s, %s)%n", KvEvictCommand.mean(d), KvEvictCommand.median(d), how, launches,
                    p.token ? "steps where a sequence compacts" : "every step");
        }
        if (check) {
            String states = p.scores && dev != null ? String.format(Locale.ROOT, "; states within %.0e relative + %.0e (worst %.2e)", STATE_RTOL, STATE_ATOL, worstState)
                    : "";
            String ties = nearTies > 0 ? "; " + nearTies + " near-ties of the float64 block score (fp32 chose the other block)" : "";
            out.println("check: " + checked + (p.token ? " compaction" : "") + " steps match the reference" + states + ties
                    + (p.scores ? "; every held token's state started fresh" : ""));
        }
    }

    /** Every held token has had a fresh start: no decay · {@link #GARBAGE} left (the proof that prevLens marks new and reused slots as new). */
    private void checkFresh(String at, float[] state, int[] tables, int[] kvLens, float decay) {
        if (decay == 0) return;
        for (int s = 0; s < seqs; s++)
            for (int j = 0; j < kvLens[s]; j++)
                for (int h = 0; h < kvHeads; h++) {
                    float v = state[(tables[s * width + j / b] * b + j % b) * kvHeads + h];
                    if (!(v < STALE)) throw new KvEvictCommand.CheckFailed(at + "sequence " + s + " token " + j + " kv head " + h + " kept a stale state " + v
                            + " (prevLens did not mark it new)");
                }
    }

    /** Token policies: kv_len exactly, caches bit-exact (re-rotated keys: within the dtype's rounding), states exactly; adopts the device's caches and states. */
    private void compareCompaction(String at, TokenEviction.Result want, int[] after, Dev dev) {
        for (int s = 0; s < seqs; s++)
            if (want.kvLen()[s] != after[s]) throw new KvEvictCommand.CheckFailed(at + "sequence " + s + ": kv_len " + after[s] + ", reference " + want.kvLen()[s]);
        boolean rotated = tokenOptions.rope() != null;
        double tol = dtype == DType.F32 ? 1e-5 : dtype == DType.F16 ? 2e-3 : 1.6e-2;
        for (int l = 0; l < layers; l++) {
            Object got = dtype == DType.F32 ? new float[(int) layout.elements()] : new short[(int) layout.elements()];
            if (got instanceof float[] f) kd.download(dev.caches()[l], f, dev.stream());
            else kd.download(dev.caches()[l], (short[]) got, dev.stream());
            float[] st = states != null ? new float[slots()] : null;
            if (st != null) kd.download(dev.states()[l], st, dev.stream());
            dev.stream().synchronize();
            if (!rotated) {
                boolean same = got instanceof float[] f ? Arrays.equals(f, (float[]) want.caches()[l]) : Arrays.equals((short[]) got, (short[]) want.caches()[l]);
                if (!same) throw new KvEvictCommand.CheckFailed(at + "layer " + l + ": the compacted cache differs from the reference (kept sets differ)");
            } else {
                float[] g = floats(got), w = floats(want.caches()[l]);
                for (int i = 0; i < g.length; i++)
                    if (!(Math.abs(g[i] - w[i]) <= tol * Math.max(1, Math.abs(w[i]))))
                        throw new KvEvictCommand.CheckFailed(at + "layer " + l + " cache element " + i + " is " + g[i] + ", reference " + w[i]);
            }
            if (st != null && !Arrays.equals(st, want.states()[l])) throw new KvEvictCommand.CheckFailed(at + "layer " + l + ": the compacted state differs from the reference");
            host[l] = got;
            if (st != null) states[l] = st;
        }
    }

    private float[] floats(Object raw) {
        return switch (dtype) {
            case F32 -> (float[]) raw;
            case F16 -> Fp16.toFloats((short[]) raw);
            case BF16 -> Bf16.toFloats((short[]) raw);
        };
    }

    /** Block policies: victims, freed blocks, tables and kv_len exactly; a victim that ties the reference's block score within TIE_RTOL counts as a near-tie. */
    private int compareBlocks(String at, BlockEviction.Decision want, BlockEviction.Decision got) {
        int ties = 0;
        for (int s = 0; s < seqs; s++) {
            String where = at + "sequence " + s + ": ";
            if (want.kvLen()[s] != got.kvLen()[s]) throw new KvEvictCommand.CheckFailed(where + "kv_len " + got.kvLen()[s] + ", reference " + want.kvLen()[s]);
            if (want.victims()[s] == got.victims()[s]) {
                if (want.freed()[s] != got.freed()[s]) throw new KvEvictCommand.CheckFailed(where + "freed block " + got.freed()[s] + ", reference " + want.freed()[s]);
                for (int j = 0; j < width; j++)
                    if (want.blockTables()[s * width + j] != got.blockTables()[s * width + j])
                        throw new KvEvictCommand.CheckFailed(where + "block table entry " + j + " is " + got.blockTables()[s * width + j] + ", reference "
                                + want.blockTables()[s * width + j]);
                continue;
            }
            if (want.victims()[s] < 0 || got.victims()[s] < 0 || states == null)
                throw new KvEvictCommand.CheckFailed(where + "victim " + got.victims()[s] + ", reference " + want.victims()[s]);
            double w = BlockEvictionReference.blockScore(states, want.freed()[s], b, kvHeads), g = BlockEvictionReference.blockScore(states, got.freed()[s], b, kvHeads);
            if (Math.abs(w - g) > TIE_RTOL * Math.max(Math.abs(w), 1e-3))
                throw new KvEvictCommand.CheckFailed(where + "victim " + got.victims()[s] + " (block score " + g + "), reference " + want.victims()[s] + " (" + w + ")");
            ties++;
        }
        return ties;
    }
}
