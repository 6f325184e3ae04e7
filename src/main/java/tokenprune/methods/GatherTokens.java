package tokenprune.methods;

import java.util.Objects;

import tokenprune.device.Device;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kernels.GatherKernel;
import tokenprune.reference.GatherReference;

/**
 * Packs the kept tokens of a selection: output row {@code keepOffsets[b] + r} is token
 * {@code kept[keepOffsets[b] + r]} of set b, copied bit for bit (fp32, fp16, bf16), with position ids
 * in either convention of {@link PositionIds} (plus a base). On a kernel device it is one launch for
 * the whole batch (gather_tokens.cu: a warp per row slice, 16-byte copies when aligned); on the cpu
 * device it is {@link GatherReference}.
 */
public final class GatherTokens {
    private GatherTokens() {
    }

    /**
     * Gathers the rows {@code selection} keeps from tokens in Java arrays.
     *
     * @throws IllegalArgumentException if the selection does not fit the tokens (set count, a keep
     *     count above a set's size, an index outside its set; the message names it) or the position
     *     ids would overflow an int
     */
    public static Gathered gather(Device device, HostTokens tokens, Selection selection, PositionIds convention, int positionBase) {
        Objects.requireNonNull(device, "device");
        Objects.requireNonNull(tokens, "tokens");
        Objects.requireNonNull(selection, "selection");
        Objects.requireNonNull(convention, "convention");
        TokenLayout layout = tokens.layout();
        int[] keepOffsets = selection.keepOffsets();
        checkKeepOffsets(layout, keepOffsets, "selection");
        checkPositionBase(layout, positionBase);
        int[] kept = selection.kept();
        if (kept.length < keepOffsets[layout.sets()]) {
            throw new IllegalArgumentException("selection: keepOffsets promise " + keepOffsets[layout.sets()] + " indices, kept has " + kept.length);
        }
        for (int b = 0; b < layout.sets(); b++) {
            for (int g = keepOffsets[b]; g < keepOffsets[b + 1]; g++) {
                if (kept[g] < 0 || kept[g] >= layout.n(b)) {
                    throw new IllegalArgumentException("selection: set " + b + ", kept[" + (g - keepOffsets[b]) + "] = " + kept[g]
                            + " is outside [0, " + layout.n(b) + ")");
                }
            }
        }
        int total = keepOffsets[layout.sets()], d = layout.d();
        boolean original = convention == PositionIds.ORIGINAL;
        int[] positions = GatherReference.positions(keepOffsets, kept, original, positionBase);
        if (!(device instanceof KernelDevice kd) || total == 0) {  // nothing kept: nothing to launch
            Object data = GatherReference.gather(tokens.data(), layout.rowOffsets(), d, layout.rowStride(), keepOffsets, kept);
            return new Gathered(data, tokens.dtype(), keepOffsets.clone(), d, positions);
        }

        int elem = tokens.dtype().bytes();
        Object in = tokens.data();
        int inLength = in instanceof float[] f ? f.length : ((short[]) in).length;
        Stream stream = kd.defaultStream();
        try (Workspace ws = new Workspace(kd, stream);
             DeviceBuffer x = kd.alloc((long) inLength * elem);
             DeviceBuffer keptDev = kd.alloc(total * 4L);
             DeviceBuffer out = kd.alloc((long) total * d * elem);
             DeviceBuffer pos = kd.alloc(total * 4L)) {
            if (in instanceof float[] f) kd.upload(f, x, stream);
            else kd.upload((short[]) in, x, stream);
            kd.upload(java.util.Arrays.copyOf(kept, total), keptDev, stream);
            gatherOnDevice(kd, new DeviceTokens(x, tokens.dtype(), layout), keepOffsets, keptDev, out, d, pos, convention, positionBase, ws, stream)
                    .await();
            Object data;
            if (tokens.dtype() == DType.F32) {
                float[] o = new float[total * d];
                kd.download(out, o, stream);
                data = o;
            } else {
                short[] o = new short[total * d];
                kd.download(out, o, stream);
                data = o;
            }
            int[] posHost = new int[total];
            kd.download(pos, posHost, stream);
            return new Gathered(data, tokens.dtype(), keepOffsets.clone(), d, posHost);
        }
    }

    /**
     * Queues the gather on the device: for set b of {@code tokens} and r in 0 .. k_b-1
     * (k_b = keepOffsets[b+1] - keepOffsets[b]), token {@code kept[keepOffsets[b] + r]} (an int32 device
     * array, local indices, e.g. {@link TopK#selectOnDevice}'s or DivPrune's output) is copied to row
     * g = keepOffsets[b] + r of {@code out} (same dtype, rows {@code outRowStride} elements apart), and
     * if {@code positionsOrNull} is not null, {@code positions[g]} = positionBase + r
     * ({@link PositionIds#RENUMBERED}) or positionBase + kept index ({@link PositionIds#ORIGINAL}). One
     * launch (none when nothing is kept), no host synchronisation. {@code out} must not overlap the
     * tokens (no in-place compaction). Values are copied, never inspected: NaN/Inf pass through.
     * {@link Pending#await} throws {@link IllegalArgumentException} if a kept index lies outside its
     * set; that row is then not written (other rows may be).
     */
    public static Pending gatherOnDevice(KernelDevice device, DeviceTokens tokens, int[] keepOffsets, DeviceBuffer kept, DeviceBuffer out,
                                         long outRowStride, DeviceBuffer positionsOrNull, PositionIds convention, int positionBase,
                                         Workspace ws, Stream stream) {
        int epoch = ws.status().nextEpoch(stream);
        enqueueGather(device, tokens, keepOffsets, kept, out, outRowStride, positionsOrNull, convention, positionBase, ws, epoch, stream);
        return new Pending(ws.status(), epoch, stream, "kept: an index lies outside its set (0 .. n_b - 1)");
    }

    /**
     * {@link #gatherOnDevice} as one step of a larger call that already took {@code epoch} from
     * {@code ws.status()} (e.g. right after {@link TopK#enqueueSelect} with the same epoch): if an
     * earlier kernel of that epoch rejected the call, the gather writes nothing at all.
     */
    public static void enqueueGather(KernelDevice device, DeviceTokens tokens, int[] keepOffsets, DeviceBuffer kept, DeviceBuffer out,
                                     long outRowStride, DeviceBuffer positionsOrNull, PositionIds convention, int positionBase,
                                     Workspace ws, int epoch, Stream stream) {
        Objects.requireNonNull(device, "device");
        Objects.requireNonNull(tokens, "tokens");
        Objects.requireNonNull(convention, "convention");
        Objects.requireNonNull(ws, "ws");
        if (ws.device() != device) throw new IllegalArgumentException("ws: workspace belongs to another device");
        TokenLayout layout = tokens.layout();
        checkKeepOffsets(layout, keepOffsets, "keepOffsets");
        checkPositionBase(layout, positionBase);
        TopK.requireOnDevice(device, tokens.data(), "tokens");
        TopK.requireOnDevice(device, kept, "kept");
        TopK.requireOnDevice(device, out, "out");
        int d = layout.d(), elem = tokens.dtype().bytes(), sets = layout.sets(), total = keepOffsets[sets];
        if (outRowStride < d) throw new IllegalArgumentException("outRowStride: must be >= d = " + d + ", got " + outRowStride);
        long rowBytes = (long) d * elem;
        if (rowBytes > (long) GatherKernel.maxRowBytes()) {
            throw new IllegalArgumentException("tokens: rows of " + rowBytes + " bytes exceed the gather kernel's " + GatherKernel.maxRowBytes());
        }
        if (kept.bytes() < total * 4L) throw new IllegalArgumentException("kept: needs " + total * 4L + " bytes (an int per kept token), has " + kept.bytes());
        long outNeed = total == 0 ? 0 : ((total - 1L) * outRowStride + d) * elem;
        if (out.bytes() < outNeed) {
            throw new IllegalArgumentException("out: " + total + " rows of " + d + " " + tokens.dtype() + " at stride " + outRowStride + " need " + outNeed
                    + " bytes, the device buffer has " + out.bytes());
        }
        if (positionsOrNull != null) {
            TopK.requireOnDevice(device, positionsOrNull, "positions");
            if (positionsOrNull.bytes() < total * 4L) {
                throw new IllegalArgumentException("positions: needs " + total * 4L + " bytes (an int per kept token), has " + positionsOrNull.bytes());
            }
        }
        if (total == 0) return;
        GatherKernel.launch(device, stream, tokens.data(), layout.rowStride() * elem, ws.ints("gather.rowOffsets", layout.rowOffsets(), stream),
                kept, ws.ints("gather.keepOffsets", keepOffsets, stream), sets, total, (int) rowBytes, out, outRowStride * elem,
                positionsOrNull, positionBase, convention == PositionIds.ORIGINAL, ws.status().buffer(), epoch);
    }

    private static void checkKeepOffsets(TokenLayout layout, int[] keepOffsets, String name) {
        Objects.requireNonNull(keepOffsets, name);
        int sets = layout.sets();
        if (keepOffsets.length != sets + 1) {
            throw new IllegalArgumentException(name + ": need sets + 1 = " + (sets + 1) + " keep offsets for " + layout + ", got " + keepOffsets.length);
        }
        if (keepOffsets[0] != 0) throw new IllegalArgumentException(name + ": keep offsets must start at 0, got " + keepOffsets[0]);
        for (int b = 0; b < sets; b++) {
            int k = keepOffsets[b + 1] - keepOffsets[b];
            if (k < 0 || k > layout.n(b)) {
                throw new IllegalArgumentException(name + ": set " + b + " keeps " + k + " of its " + layout.n(b) + " tokens; need 0 <= k <= n");
            }
        }
    }

    private static void checkPositionBase(TokenLayout layout, int positionBase) {
        if ((long) positionBase + layout.maxN() - 1 > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("positionBase: " + positionBase + " + a set of " + layout.maxN() + " tokens overflows an int position id");
        }
    }
}
