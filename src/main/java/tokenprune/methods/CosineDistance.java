package tokenprune.methods;

import tokenprune.device.Device;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kernels.CosineDistanceKernel;
import tokenprune.reference.CosineDistanceReference;

/**
 * Pairwise cosine distance 1 - cos(x_i, x_j) within each set, normalisation fused. A zero row has
 * similarity 0 to every row, itself included: its distances are all 1.
 */
public final class CosineDistance {
    private CosineDistance() {
    }

    /** Per set b, the n_b x n_b distances row-major. */
    public static float[][] compute(Device device, HostTokens tokens) {
        TokenLayout layout = tokens.layout();
        String bad = null;
        if (!(device instanceof KernelDevice kd)) {
            bad = tokens.firstNonFinite();
            if (bad != null) throw new IllegalArgumentException("tokens: non-finite value at " + bad);
            float[][] out = new float[layout.sets()][];
            for (int b = 0; b < layout.sets(); b++) {
                double[][] d = CosineDistanceReference.distances(tokens.set(b));
                int n = d.length;
                out[b] = new float[n * n];
                for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) out[b][i * n + j] = (float) d[i][j];
            }
            return out;
        }
        Stream stream = kd.defaultStream();
        long floats = distanceFloats(layout);
        try (Workspace ws = new Workspace(kd, stream);
             DeviceBuffer x = kd.alloc(layout.requiredElements() * tokens.dtype().bytes());
             DeviceBuffer dist = kd.alloc(floats * 4)) {
            if (tokens.data() instanceof float[] f) kd.upload(f, x, stream);
            else kd.upload((short[]) tokens.data(), x, stream);
            try {
                computeOnDevice(new DeviceTokens(x, tokens.dtype(), layout), dist, ws, stream).await();
            } catch (IllegalArgumentException e) {
                bad = tokens.firstNonFinite();
                throw bad == null ? e : new IllegalArgumentException("tokens: non-finite value at " + bad, e);
            }
            float[] all = new float[Math.toIntExact(floats)];
            kd.download(dist, all, stream);
            float[][] out = new float[layout.sets()][];
            int at = 0;
            for (int b = 0; b < layout.sets(); b++) {
                int n = layout.n(b);
                out[b] = java.util.Arrays.copyOfRange(all, at, at + n * n);
                at += n * n;
            }
            return out;
        }
    }

    /** Floats of the output: the sum over sets of n_b^2. */
    public static long distanceFloats(TokenLayout layout) {
        long f = 0;
        for (int b = 0; b < layout.sets(); b++) f += (long) layout.n(b) * layout.n(b);
        return f;
    }

    /**
     * Queues one launch writing set b's matrix at float offset sum_{c<b} n_c^2 of {@code distOut}.
     * {@link Pending#await} throws if a feature was NaN or Inf; the distances of the rows concerned
     * are then meaningless (unlike the selections, this kernel's output is written as it goes).
     */
    public static Pending computeOnDevice(DeviceTokens tokens, DeviceBuffer distOut, Workspace workspace, Stream stream) {
        TokenLayout layout = tokens.layout();
        long need = distanceFloats(layout) * 4;
        if (distOut.bytes() < need) throw new IllegalArgumentException("distOut: needs " + need + " bytes, has " + distOut.bytes());
        DeviceBuffer rowOffsets = workspace.ints("rowOffsets", layout.rowOffsets(), stream);
        int epoch = workspace.status().nextEpoch(stream);
        CosineDistanceKernel.launch(workspace.device(), stream, tokens.dtype(), tokens.data(), layout.rowStride(), rowOffsets,
                layout.sets(), layout.maxN(), layout.d(), distOut, null, workspace.status().buffer(), epoch);
        return new Pending(workspace.status(), epoch, stream, "tokens: contain NaN or Inf");
    }
}
