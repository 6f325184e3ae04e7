package tokenprune.methods;

import java.util.Arrays;
import java.util.Objects;

import tokenprune.device.Device;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kernels.DartCosineKernel;
import tokenprune.kernels.DartKeyL1Kernel;
import tokenprune.kernels.DartSelectKernel;
import tokenprune.reference.DartReference;

/**
 * DART (EMNLP 2025): inside the LLM, before layer K, keep a few pivot tokens chosen by key L1 norm
 * and, for each pivot, the image tokens least similar to it (methods-vision.md §4). Inputs per
 * sequence of a batch: the post-RoPE keys of layer K-1 (one vector per token, heads concatenated)
 * and the hidden states ("last_layer_state"), both with the same sequences (row offsets), and the
 * image block of each sequence ({@link ImageSpans}). On a kernel device it is three launches for
 * the whole batch and no host synchronisation (key L1 norms; pivots + pivot x image-token cosines;
 * one block per sequence for the recruit rounds and the outputs); on the cpu device it is the
 * float64 {@link DartReference}.
 *
 * <p>Only tokens [s, seq_len) are read (the prefix never is); NaN or Inf there is rejected.
 */
public final class Dart {
    private Dart() {
    }

    /**
     * Runs DART on tokens in Java arrays.
     *
     * @throws IllegalArgumentException for mismatched shapes, an image block that does not fit its
     *     sequence, pivot or recruit counts a sequence cannot satisfy (the official topk raises), or a
     *     NaN/Inf in the rows read (the message names sequence, token and feature)
     */
    public static DartSelection select(Device device, HostTokens keys, HostTokens hidden, ImageSpans images, DartOptions options) {
        Objects.requireNonNull(device, "device");
        requireNonNull(keys, "keys");
        requireNonNull(hidden, "hidden");
        int[] keepOffsets = plan(keys.layout(), hidden.layout(), images, options);
        if (!(device instanceof KernelDevice kd)) return selectReference(keys, hidden, images, options, keepOffsets);

        checkFitsOnChip(kd, images);
        Stream stream = kd.defaultStream();
        int sequences = images.sequences(), retained = options.retained(), pivots = options.pivots();
        int total = keepOffsets[sequences];
        try (Workspace ws = new Workspace(kd, stream);
             DeviceBuffer k = upload(kd, keys, stream);
             DeviceBuffer h = upload(kd, hidden, stream);
             DeviceBuffer kept = kd.alloc(4L * retained * sequences);
             DeviceBuffer by = kd.alloc(4L * retained * sequences);
             DeviceBuffer keep = kd.alloc(4L * total);
             DeviceBuffer order = kd.alloc(4L * pivots * sequences)) {
            DartOutputs out = DartOutputs.keptImage(kept).withRecruitedBy(by).withKeepList(keep).withPivotOrder(order);
            try {
                selectOnDevice(new DeviceTokens(k, keys.dtype(), keys.layout()), new DeviceTokens(h, hidden.dtype(), hidden.layout()),
                        images, options, out, ws, stream).await();
            } catch (IllegalArgumentException e) {
                String where = firstNonFinite(keys, images, "keys");
                if (where == null) where = firstNonFinite(hidden, images, "hidden");
                throw where == null ? e : new IllegalArgumentException(where, e);
            }
            int[] keptHost = new int[retained * sequences], byHost = new int[retained * sequences], keepHost = new int[total];
            int[] orderHost = new int[pivots * sequences], pivotsHost = new int[pivots * sequences];
            kd.download(kept, keptHost, stream);
            kd.download(by, byHost, stream);
            kd.download(keep, keepHost, stream);
            kd.download(order, orderHost, stream);
            kd.download(ws.scratch(PIVOTS, 4L * pivots * sequences), pivotsHost, stream);
            return new DartSelection(retained, pivots, keptHost, byHost, keepOffsets, keepHost, pivotsHost, orderHost);
        }
    }

    /**
     * Queues DART on tokens already on the device, writing {@code out} (see {@link DartOutputs} for
     * what goes where). Three launches on {@code stream}, no host synchronisation; call
     * {@link Pending#await} to learn whether the input was rejected (NaN or Inf in the keys or hidden
     * states of tokens [s, seq_len), or values so large that their norms overflow fp32), in which case
     * none of the outputs was written. The pivots (positions, top-k order, P per sequence) stay in the
     * workspace's scratch until its next call.
     */
    public static Pending selectOnDevice(DeviceTokens keys, DeviceTokens hidden, ImageSpans images, DartOptions options, DartOutputs out,
                                         Workspace workspace, Stream stream) {
        requireNonNull(keys, "keys");
        requireNonNull(hidden, "hidden");
        requireNonNull(out, "out");
        requireNonNull(workspace, "workspace");
        requireNonNull(stream, "stream");
        int[] keepOffsets = plan(keys.layout(), hidden.layout(), images, options);
        KernelDevice device = workspace.device();
        checkFitsOnChip(device, images);
        int sequences = images.sequences(), retained = options.retained(), pivots = options.pivots();
        long keptBytes = 4L * retained * sequences, keepLength = keepOffsets[sequences];
        requireBytes(out.keptImage(), keptBytes, 4, "keptImage");
        requireBytes(out.recruitedBy(), keptBytes, 4, "recruitedBy");
        requireBytes(out.keepList(), 4 * keepLength, 4, "keepList");
        requireBytes(out.positionIds(), 8 * keepLength, 8, "positionIds");
        requireBytes(out.pivotOrder(), 4L * pivots * sequences, 4, "pivotOrder");

        TokenLayout layout = keys.layout();
        int[] rowOffsets = layout.rowOffsets();
        DeviceBuffer info = workspace.ints("dart.seqInfo", DartSelectKernel.seqInfo(rowOffsets, images.start(), images.length(), keepOffsets), stream);
        DeviceBuffer keyL1 = workspace.scratch("dart.keyL1", 4L * layout.totalRows());
        DeviceBuffer cos = workspace.scratch("dart.cos", 4 * DartCosineKernel.cosineFloats(pivots, images.totalLength()));
        DeviceBuffer piv = workspace.scratch(PIVOTS, 4L * pivots * sequences);
        int maxFromImage = 0;
        for (int b = 0; b < sequences; b++) maxFromImage = Math.max(maxFromImage, layout.n(b) - images.start(b));
        int epoch = workspace.status().nextEpoch(stream);
        DeviceBuffer status = workspace.status().buffer();

        DartKeyL1Kernel.launch(device, stream, keys.dtype(), keys.data(), layout.rowStride(), layout.d(), info, sequences, maxFromImage,
                keyL1, status, epoch);
        DartCosineKernel.launch(device, stream, hidden.dtype(), hidden.data(), hidden.layout().rowStride(), hidden.layout().d(), info,
                sequences, images.maxLength(), keyL1, options.pivotImage(), options.pivotText(), piv, cos, status, epoch);
        DartSelectKernel.launch(device, stream, cos, piv, info, sequences, images.maxLength(), options.pivotImage(), options.pivotText(),
                options.tokenTopK(), options.pivotOrder() == DartOptions.PivotOrder.OFFICIAL_COMPAT, status, epoch,
                out.keptImage(), out.keepList(), out.positionIds(), out.recruitedBy(), out.pivotOrder());
        return new Pending(workspace.status(), epoch, stream,
                "keys or hidden: NaN or Inf in tokens [s, seq_len), or values so large that a norm overflows fp32");
    }

    /**
     * Keep-list offsets per sequence (sequences + 1 entries): sequence b's keep list is
     * s_b + {@link DartOptions#retained()} + (seq_len_b - s_b - L_b) long. Checks everything
     * {@link #select} checks about the shapes and counts.
     */
    public static int[] keepOffsets(TokenLayout layout, ImageSpans images, DartOptions options) {
        return plan(layout, layout, images, options);
    }

    static final String PIVOTS = "dart.pivots";

    private static int[] plan(TokenLayout keys, TokenLayout hidden, ImageSpans images, DartOptions options) {
        requireNonNull(images, "images");
        requireNonNull(options, "options");
        if (!Arrays.equals(keys.rowOffsets(), hidden.rowOffsets())) {
            throw new IllegalArgumentException("hidden: its sequences (rowOffsets " + abbreviate(hidden.rowOffsets())
                    + ") must be the keys' (rowOffsets " + abbreviate(keys.rowOffsets()) + ")");
        }
        images.checkAgainst(keys);
        int sequences = images.sequences();
        int[] offsets = new int[sequences + 1];
        for (int b = 0; b < sequences; b++) {
            int s = images.start(b), len = images.length(b), text = keys.n(b) - s - len;
            String seq = sequences > 1 ? "sequence " + b + " has " : "the sequence has ";
            if (options.pivotImage() > len) {
                throw new IllegalArgumentException("pivotImage: " + seq + len + " image tokens, fewer than the " + options.pivotImage() + " image pivots");
            }
            if (options.pivotText() > text) {
                throw new IllegalArgumentException("pivotText: " + seq + text + " text tokens after the image, fewer than the "
                        + options.pivotText() + " text pivots");
            }
            long need = (long) options.pivots() * options.tokenTopK();
            if (len - options.pivotImage() < need) {
                throw new IllegalArgumentException("tokenTopK: " + seq + "a pool of " + (len - options.pivotImage()) + " image tokens (L = " + len
                        + " minus " + options.pivotImage() + " image pivots), which cannot supply (P_img + P_txt) x TOKEN_TOPK = "
                        + options.pivots() + " x " + options.tokenTopK() + " = " + need + " recruits");
            }
            offsets[b + 1] = Math.addExact(offsets[b], s + options.retained() + text);
        }
        return offsets;
    }

    private static void checkFitsOnChip(KernelDevice device, ImageSpans images) {
        int max = DartSelectKernel.maxImageTokens(device);
        if (images.maxLength() > max) {
            throw new IllegalArgumentException("images: an image block of " + images.maxLength() + " tokens exceeds the " + max
                    + " that the selection kernel keeps on chip on this device");
        }
    }

    /** Size, and the element alignment a GPU store needs (a misaligned int64 store faults). */
    private static void requireBytes(DeviceBuffer b, long need, int align, String name) {
        if (b == null) return;
        if (b.bytes() < need) throw new IllegalArgumentException(name + ": needs " + need + " bytes, has " + b.bytes());
        if (b.address() % align != 0) throw new IllegalArgumentException(name + ": address must be " + align + "-byte aligned");
    }

    private static void requireNonNull(Object o, String name) {
        if (o == null) throw new IllegalArgumentException(name + ": must not be null");
    }

    private static String abbreviate(int[] a) {
        return a.length <= 6 ? Arrays.toString(a) : Arrays.toString(Arrays.copyOf(a, 6)).replace("]", ", ...]");
    }

    private static DeviceBuffer upload(KernelDevice kd, HostTokens t, Stream stream) {
        if (t.data() instanceof float[] f) {
            DeviceBuffer b = kd.alloc(4L * Math.max(f.length, t.layout().requiredElements()));
            kd.upload(f, b, stream);
            return b;
        }
        short[] s = (short[]) t.data();
        DeviceBuffer b = kd.alloc(2L * Math.max(s.length, t.layout().requiredElements()));
        kd.upload(s, b, stream);
        return b;
    }

    /** "what: non-finite value at sequence b, token j, feature f (v)" for the first NaN/Inf in tokens [s, seq_len), or null. */
    static String firstNonFinite(HostTokens t, ImageSpans images, String what) {
        TokenLayout layout = t.layout();
        int[] offsets = layout.rowOffsets();
        for (int b = 0; b < layout.sets(); b++) {
            for (int j = images.start(b); j < layout.n(b); j++) {
                for (int f = 0; f < layout.d(); f++) {
                    float v = t.value(offsets[b] + (long) j, f);
                    if (!Float.isFinite(v)) return what + ": non-finite value at sequence " + b + ", token " + j + ", feature " + f + " (" + v + ")";
                }
            }
        }
        return null;
    }

    private static DartSelection selectReference(HostTokens keys, HostTokens hidden, ImageSpans images, DartOptions options, int[] keepOffsets) {
        String bad = firstNonFinite(keys, images, "keys");
        if (bad == null) bad = firstNonFinite(hidden, images, "hidden");
        if (bad != null) throw new IllegalArgumentException(bad);
        int sequences = images.sequences(), retained = options.retained(), pivots = options.pivots();
        int[] kept = new int[retained * sequences], by = new int[retained * sequences], keep = new int[keepOffsets[sequences]];
        int[] piv = new int[pivots * sequences], order = new int[pivots * sequences];
        for (int b = 0; b < sequences; b++) {
            DartReference.Result r = DartReference.select(keys.set(b), hidden.set(b), images.start(b), images.length(b), options);
            System.arraycopy(r.keptImage(), 0, kept, retained * b, retained);
            System.arraycopy(r.recruitedBy(), 0, by, retained * b, retained);
            System.arraycopy(r.keep(), 0, keep, keepOffsets[b], r.keep().length);
            System.arraycopy(r.pivots(), 0, piv, pivots * b, pivots);
            System.arraycopy(r.pivotOrder(), 0, order, pivots * b, pivots);
        }
        return new DartSelection(retained, pivots, kept, by, keepOffsets, keep, piv, order);
    }
}
