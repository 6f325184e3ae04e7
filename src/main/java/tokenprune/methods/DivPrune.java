package tokenprune.methods;

import java.util.Objects;

import tokenprune.device.Device;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kernels.CosineDistanceKernel;
import tokenprune.kernels.MaxMinSelectKernel;
import tokenprune.reference.DivPruneReference;

/**
 * DivPrune (CVPR 2025): keep the k most mutually diverse tokens of each set by greedy max-min
 * selection on cosine distance (methods-vision.md §3). On a kernel device it is two launches for
 * a whole batch: the fused cosine-distance kernel and one selection kernel that runs all k steps
 * on chip. On the cpu device it is the float64 reference.
 */
public final class DivPrune {
    private DivPrune() {
    }

    /**
     * Selects from tokens in Java arrays. Returns kept indices per set (ascending) and, if
     * requested, the selection order.
     *
     * @throws IllegalArgumentException for a keep count or ratio a set cannot satisfy, or a
     *     NaN/Inf feature (the message names set, token and feature)
     */
    public static Selection select(Device device, HostTokens tokens, DivPruneOptions options) {
        Objects.requireNonNull(device, "device");
        TokenLayout layout = tokens.layout();
        int[] keepOffsets = options.keepOffsets(layout);
        if (!(device instanceof KernelDevice kd)) return selectReference(tokens, options, keepOffsets);

        checkFitsOnChip(kd, layout);
        Stream stream = kd.defaultStream();
        int total = keepOffsets[layout.sets()];
        try (Workspace ws = new Workspace(kd, stream);
             DeviceBuffer x = kd.alloc(layout.requiredElements() * tokens.dtype().bytes());
             DeviceBuffer kept = kd.alloc(total * 4L);
             DeviceBuffer order = options.withOrder() ? kd.alloc(total * 4L) : null) {
            if (tokens.data() instanceof float[] f) kd.upload(f, x, stream);
            else kd.upload((short[]) tokens.data(), x, stream);
            try {
                selectOnDevice(new DeviceTokens(x, tokens.dtype(), layout), options, kept, order, ws, stream).await();
            } catch (IllegalArgumentException e) {
                String where = tokens.firstNonFinite();
                throw where == null ? e : new IllegalArgumentException("tokens: non-finite value at " + where, e);
            }
            int[] keptHost = new int[total];
            kd.download(kept, keptHost, stream);
            int[] orderHost = null;
            if (order != null) {
                orderHost = new int[total];
                kd.download(order, orderHost, stream);
            }
            return new Selection(keepOffsets, keptHost, orderHost);
        }
    }

    /**
     * Queues DivPrune on tokens already on the device, writing set b's kept indices (ascending,
     * local to the set) to {@code keptOut} at int offset keepOffsets[b] and, if {@code orderOut}
     * is not null, the selection order likewise. Two launches on {@code stream}, no host
     * synchronisation; call {@link Pending#await} to learn whether the input was rejected (NaN or
     * Inf), in which case neither output was written.
     */
    public static Pending selectOnDevice(DeviceTokens tokens, DivPruneOptions options, DeviceBuffer keptOut, DeviceBuffer orderOut,
                                         Workspace workspace, Stream stream) {
        KernelDevice device = workspace.device();
        TokenLayout layout = tokens.layout();
        int[] keepOffsets = options.keepOffsets(layout);
        long need = keepOffsets[layout.sets()] * 4L;
        if (keptOut.bytes() < need) throw new IllegalArgumentException("keptOut: needs " + need + " bytes, has " + keptOut.bytes());
        if (orderOut != null && orderOut.bytes() < need) throw new IllegalArgumentException("orderOut: needs " + need + " bytes, has " + orderOut.bytes());
        checkFitsOnChip(device, layout);

        DeviceBuffer rowOffsets = workspace.ints("rowOffsets", layout.rowOffsets(), stream);
        DeviceBuffer keeps = workspace.ints("keepOffsets", keepOffsets, stream);
        DeviceBuffer dist = workspace.scratch("divprune.dist", CosineDistance.distanceFloats(layout) * 4);
        DeviceBuffer nnPartial = workspace.scratch("divprune.nnPartial", CosineDistanceKernel.nnPartialFloats(layout.totalRows(), layout.maxN()) * 4);
        int epoch = workspace.status().nextEpoch(stream);
        CosineDistanceKernel.launch(device, stream, tokens.dtype(), tokens.data(), layout.rowStride(), rowOffsets,
                layout.sets(), layout.maxN(), layout.d(), dist, nnPartial, workspace.status().buffer(), epoch);
        MaxMinSelectKernel.launch(device, stream, dist, nnPartial, layout.maxN(), rowOffsets,
                keeps, layout.sets(), options.officialCompat(), workspace.status().buffer(), epoch, keptOut, orderOut);
        return new Pending(workspace.status(), epoch, stream, "tokens: contain NaN or Inf");
    }

    private static void checkFitsOnChip(KernelDevice device, TokenLayout layout) {
        int max = MaxMinSelectKernel.maxTokens(device);
        if (layout.maxN() > max) {
            throw new IllegalArgumentException("tokens: a set of " + layout.maxN() + " tokens exceeds the " + max
                    + " that the selection kernel keeps on chip on this device");
        }
    }

    private static Selection selectReference(HostTokens tokens, DivPruneOptions options, int[] keepOffsets) {
        String bad = tokens.firstNonFinite();
        if (bad != null) throw new IllegalArgumentException("tokens: non-finite value at " + bad);
        int total = keepOffsets[keepOffsets.length - 1];
        int[] kept = new int[total];
        int[] order = options.withOrder() ? new int[total] : null;
        for (int b = 0; b < tokens.layout().sets(); b++) {
            int k = keepOffsets[b + 1] - keepOffsets[b];
            int[] o = DivPruneReference.selectionOrder(tokens.set(b), k, options.officialCompat());
            System.arraycopy(DivPruneReference.sortedKeep(o), 0, kept, keepOffsets[b], k);
            if (order != null) System.arraycopy(o, 0, order, keepOffsets[b], k);
        }
        return new Selection(keepOffsets, kept, order);
    }
}
