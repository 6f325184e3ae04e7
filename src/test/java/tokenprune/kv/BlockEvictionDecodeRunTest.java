package tokenprune.kv;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Random;
import java.util.Set;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kv.BlockEviction.Batch;
import tokenprune.kv.BlockEviction.Decision;
import tokenprune.methods.DType;
import tokenprune.methods.Workspace;
import tokenprune.reference.AttentionScoresReference;
import tokenprune.reference.BlockEvictionReference;
import tokenprune.testing.TestDevices;

/**
 * A long continuous-batching decode run on the device: every step appends one token per running
 * sequence (joiners bring a prompt, sequences leave), decides and applies block evictions
 * (tp_kv_block_victim + tp_pe_decode_apply) on the A2SF / H2O state, mirrors them into a
 * {@link PagedKvCache} (invariants after every step), then updates the per-slot state with
 * {@link AttentionScores#accumulatePagedOnDevice} (evict-before-attend). A host loop runs the same
 * steps with the float64 references ({@link AttentionScoresReference#accumulatePaged},
 * {@link BlockEvictionReference#decide}) and is compared step by step: victims exactly (a near-tie of
 * the float64 scores, where fp32 may legitimately pick the other block, is counted and bounded),
 * tables and kv_len exactly, the state within fp32 tolerance. The state starts as garbage (7.0) and
 * evicted blocks are reused, so a slot that prevLens fails to mark as new shows up as a wrong value.
 */
class BlockEvictionDecodeRunTest {
    static java.util.stream.Stream<String> devices() {
        return TestDevices.kernelDevices();
    }

    static final int B = 4, BUDGET = 16, POOL = 40, KV_HEADS = 2, HEADS = 4, D = 8, LAYERS = 2, MAX_SEQS = 4, STEPS = 60;

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void a2sfDecodeRun(String deviceName) {
        run(deviceName, KvLayout.Kind.FLASH_INFER_HND, 0.9f, 0xA25F);
        run(deviceName, KvLayout.Kind.FLASH_INFER, 0.5f, 0xA25E);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void h2oDecodeRun(String deviceName) {
        run(deviceName, KvLayout.Kind.FLASH_ATTENTION, 1.0f, 0x420);
        run(deviceName, KvLayout.Kind.FLASH_ATTENTION_HND, 1.0f, 0x421);
        run(deviceName, KvLayout.Kind.LEGACY, 1.0f, 0x422);
    }

    static void run(String deviceName, KvLayout.Kind kind, float decay, long seed) {
        Random rnd = new Random(seed);
        KvLayout layout = KvLayout.of(kind, DType.F32, POOL, B, KV_HEADS, D);
        int slots = POOL * B * KV_HEADS;
        float scale = (float) (1 / Math.sqrt(D));
        PagedKvCache cache = new PagedKvCache(POOL, B, BUDGET);
        int width = cache.maxBlocksPerSequence();
        BlockEvictionOptions options = BlockEvictionOptions.attention();
        float[][] hostCaches = new float[LAYERS][(int) layout.elements()];
        for (float[] c : hostCaches) for (int i = 0; i < c.length; i++) c[i] = rnd.nextFloat() * 3 - 1.5f;
        float[][] refStates = new float[LAYERS][slots];
        for (float[] s : refStates) Arrays.fill(s, 7.0f);  // garbage: a slot not marked new keeps 0.9 * 7 + p
        try (KernelDevice device = TestDevices.open(deviceName);
             Workspace ws = new Workspace(device, device.defaultStream());
             DeviceBuffer tablesD = device.alloc(4L * MAX_SEQS * width);
             DeviceBuffer kvD = device.alloc(4L * MAX_SEQS);
             DeviceBuffer logicalD = device.alloc(8L * MAX_SEQS);
             DeviceBuffer victimsD = device.alloc(4L * MAX_SEQS);
             DeviceBuffer freedD = device.alloc(4L * MAX_SEQS);
             DeviceBuffer qD = device.alloc(4L * MAX_SEQS * HEADS * D);
             DeviceBuffer lseD = device.alloc(4L * MAX_SEQS * HEADS)) {
            Stream stream = ws.stream();
            DeviceBuffer[] cachesD = new DeviceBuffer[LAYERS], statesD = new DeviceBuffer[LAYERS];
            try {
                for (int l = 0; l < LAYERS; l++) {
                    cachesD[l] = device.alloc(layout.bytes());
                    statesD[l] = device.alloc(4L * slots);
                    device.upload(refStates[l], statesD[l], stream);
                }
                Set<Integer> everEvicted = new HashSet<>();
                int evictions = 0, nearTies = 0, reused = 0, joins = 0, leaves = 0;
                for (int step = 0; step < STEPS; step++) {
                    Set<Integer> joined = new HashSet<>();
                    if (step % 17 == 16) {  // a sequence finishes: its blocks (and their stale state) go back to the pool at once
                        int[] ids = cache.sequenceIds();
                        cache.freeSequence(ids[rnd.nextInt(ids.length)]);
                        leaves++;
                    }
                    while (cache.sequenceIds().length < MAX_SEQS && (step == 0 || rnd.nextInt(3) == 0)) {  // continuous batching
                        long prompt = 1 + rnd.nextInt(30);
                        int kvLen = prompt <= BUDGET ? (int) prompt : BUDGET + (int) (prompt % B);
                        int id = cache.allocateSequence(kvLen, prompt);
                        joined.add(id);
                        joins++;
                        for (int p : cache.blockTable(id)) if (everEvicted.contains(p)) reused++;
                        for (int t = 0; t < kvLen; t++) writeToken(hostCaches, layout, cache.blockTable(id)[t / B], t % B, rnd);
                    }
                    int[] ids = cache.sequenceIds();
                    int seqs = ids.length;
                    for (int id : ids) {
                        if (joined.contains(id)) continue;  // its prefill step: nothing appended
                        int before = cache.blockTable(id).length;
                        int slot = cache.appendTokens(id, 1).slots()[0];
                        if (cache.blockTable(id).length > before && everEvicted.contains(slot / B)) reused++;
                        writeToken(hostCaches, layout, slot / B, slot % B, rnd);
                    }
                    for (int l = 0; l < LAYERS; l++) device.upload(hostCaches[l], cachesD[l], stream);

                    // the decision: device vs the float64 reference on the reference state
                    Batch batch = BlockEviction.batchOf(cache, ids, width, KV_HEADS, refStates);
                    Decision want = BlockEvictionReference.decide(batch, options);
                    device.upload(batch.blockTables(), tablesD, stream);
                    device.upload(batch.kvLen(), kvD, stream);
                    device.upload(PagedEviction.int64Words(batch.logicalLen()), logicalD, stream);
                    BlockEviction.DeviceState state = new BlockEviction.DeviceState(seqs, B, BUDGET, POOL, tablesD, width, kvD, logicalD);
                    BlockEviction.decideOnDevice(state, statesD, KV_HEADS, options, victimsD, freedD, ws, stream).await();
                    int[] victims = new int[seqs], freed = new int[seqs], tables = new int[seqs * width], kv = new int[seqs];
                    device.download(victimsD, victims, stream);
                    device.download(freedD, freed, stream);
                    device.download(tablesD, tables, stream);
                    device.download(kvD, kv, stream);
                    stream.synchronize();
                    String at = deviceName + " step " + step;
                    for (int s = 0; s < seqs; s++) {
                        assertEquals(want.victims()[s] >= 0, victims[s] >= 0, at + " sequence " + s + ": evicts");
                        if (want.victims()[s] == victims[s]) continue;
                        double a = BlockEvictionReference.blockScore(refStates, want.freed()[s], B, KV_HEADS);
                        double c = BlockEvictionReference.blockScore(refStates, freed[s], B, KV_HEADS);
                        if (Math.abs(a - c) > 1e-5 * Math.max(Math.abs(a), 1e-3)) fail(at + " sequence " + s + ": victim " + victims[s] + " (" + c + "), reference " + want.victims()[s] + " (" + a + ")");
                        nearTies++;
                    }
                    BlockEviction.applyTo(cache, ids, victims, freed);
                    for (int s = 0; s < seqs; s++) {
                        if (victims[s] >= 0) {
                            evictions++;
                            everEvicted.add(freed[s]);
                        }
                        int[] row = cache.blockTable(ids[s]);
                        assertArrayEquals(row, Arrays.copyOfRange(tables, s * width, s * width + row.length), at + ": host and device tables");
                        for (int j = row.length; j < width; j++) assertEquals(-1, tables[s * width + j], at + ": padding");
                        assertEquals(cache.kvLen(ids[s]), kv[s], at + ": host and device kv_len");
                        assertEquals(BlockEviction.kvLenAfter(batch.kvLen()[s], batch.logicalLen()[s], BUDGET, B, options), kv[s], at + ": predicted kv_len");
                    }
                    cache.checkInvariantsAtAttention();

                    // the state update after eviction: one query per sequence at its newest token
                    int[] kvLens = new int[seqs], prevLens = new int[seqs], positions = new int[seqs], rowOffsets = new int[seqs + 1];
                    int[] newFrom = new int[seqs];  // the test's own count of tokens written since the last update, checked below
                    for (int s = 0; s < seqs; s++) {
                        kvLens[s] = cache.kvLen(ids[s]);
                        newFrom[s] = joined.contains(ids[s]) ? 0 : kvLens[s] - 1;
                        // a joiner's prompt is all new; after an eviction the appended token is still the last one held
                        prevLens[s] = joined.contains(ids[s]) ? 0 : kvLens[s] - 1;
                        positions[s] = kvLens[s] - 1;
                        rowOffsets[s + 1] = s + 1;
                    }
                    int[] hostTables = cache.blockTables(ids, width);
                    float[] q = new float[seqs * HEADS * D];
                    for (int l = 0; l < LAYERS; l++) {
                        for (int i = 0; i < q.length; i++) q[i] = rnd.nextFloat() * 3 - 1.5f;
                        double[] lse64 = AttentionScoresReference.lse(layout, hostCaches[l], hostTables, width, kvLens, q, HEADS, rowOffsets, positions, scale);
                        float[] lse = new float[lse64.length];
                        for (int i = 0; i < lse.length; i++) lse[i] = (float) lse64[i];
                        device.upload(q, qD, stream);
                        device.upload(lse, lseD, stream);
                        AttentionScores.accumulatePagedOnDevice(ws, stream, layout, cachesD[l], tablesD, width, kvLens, prevLens, qD, (long) HEADS * D, D,
                                HEADS, rowOffsets, positions, null, lseD, HEADS, 1, scale, decay, statesD[l]).await();
                        double[] ref = AttentionScoresReference.accumulatePaged(layout, hostCaches[l], hostTables, width, kvLens, prevLens, q, HEADS,
                                rowOffsets, positions, null, lse, scale, refStates[l], decay);
                        double[] fresh = AttentionScoresReference.colsum(layout, hostCaches[l], hostTables, width, kvLens, q, HEADS, rowOffsets, positions,
                                null, lse, scale, null, 0);
                        float[] got = new float[slots];
                        device.download(statesD[l], got, stream);
                        stream.synchronize();
                        for (int i = 0; i < slots; i++)
                            assertEquals(ref[i], got[i], 2e-5 * Math.abs(ref[i]) + 2e-6, at + " layer " + l + " state slot " + i);
                        // independent of the reference's prevLens handling: a new token's state is its own probability
                        int base = 0;
                        for (int s = 0; s < seqs; s++) {
                            for (int j = newFrom[s]; j < kvLens[s]; j++) {
                                int p = hostTables[s * width + j / B];
                                for (int h = 0; h < KV_HEADS; h++)
                                    assertEquals(fresh[base + h * kvLens[s] + j], got[(p * B + j % B) * KV_HEADS + h], 2e-6, at + ": new token " + j + " of sequence " + s);
                            }
                            base += kvLens[s] * KV_HEADS;
                        }
                        for (int i = 0; i < slots; i++) refStates[l][i] = (float) ref[i];
                    }
                    cache.reclaimEvicted();
                    cache.checkInvariants();
                }
                assertTrue(evictions >= 15, "evictions " + evictions);
                assertTrue(reused >= 3, "evicted blocks reused " + reused + " times");
                assertTrue(joins >= 5 && leaves >= 3, "joins " + joins + ", leaves " + leaves);
                assertTrue(nearTies <= 2, "near-ties " + nearTies);
            } finally {
                for (DeviceBuffer b : cachesD) if (b != null) b.close();
                for (DeviceBuffer b : statesD) if (b != null) b.close();
            }
        }
    }

    /** Fresh random K and V for one slot of every layer (what the model writes for a new token). */
    static void writeToken(float[][] caches, KvLayout layout, int block, int slot, Random rnd) {
        for (float[] c : caches)
            for (int kvIdx = 0; kvIdx < 2; kvIdx++)
                for (int h = 0; h < layout.kvHeads(); h++)
                    for (int i = 0; i < layout.headDim(); i++) c[(int) layout.offset(kvIdx, block, slot, h, i)] = rnd.nextFloat() * 3 - 1.5f;
    }
}
