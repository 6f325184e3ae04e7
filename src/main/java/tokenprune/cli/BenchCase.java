package tokenprune.cli;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.methods.DType;
import tokenprune.methods.HostTokens;
import tokenprune.methods.Pending;
import tokenprune.methods.TokenLayout;
import tokenprune.numeric.Bf16;
import tokenprune.numeric.Fp16;

/**
 * One benchmarked operation at one shape: what it must move (bytes, the floor) and compute
 * (FLOPs), how many launches one call makes, and one call on rotating inputs. Cases own their
 * device buffers and free them on close.
 */
abstract class BenchCase implements AutoCloseable {
    /** Enough input copies to exceed a 50 MB L2 twice over, so a repetition never finds its inputs cached. */
    static final long L2_BYTES = 50L << 20;

    final String op;
    final DType dtype;
    final int b, n, d, k;
    private final List<DeviceBuffer> owned = new ArrayList<>();

    BenchCase(String op, DType dtype, int b, int n, int d, int k) {
        this.op = op;
        this.dtype = dtype;
        this.b = b;
        this.n = n;
        this.d = d;
        this.k = k;
    }

    abstract long bytes();

    abstract double flops();

    abstract int launches();

    /** Queues call number {@code rep} on a kernel device (inputs rotate with rep). */
    abstract Pending runOnDevice(int rep);

    /** Queued before call number {@code rep} on a kernel device, outside the timing (e.g. restoring state a call mutates). */
    void prepare(int rep) {
    }

    /** Runs one call on the cpu reference. */
    abstract void runOnHost();

    static int rotation(long inputBytes) {
        return (int) Math.max(2, Math.min(64, (2 * L2_BYTES) / Math.max(1, inputBytes) + 1));
    }

    DeviceBuffer alloc(KernelDevice device, long bytes) {
        DeviceBuffer buf = device.alloc(bytes);
        owned.add(buf);
        return buf;
    }

    /** Rotating device copies of random tokens of this case's dtype. */
    List<DeviceBuffer> deviceTokens(KernelDevice device, Stream stream, TokenLayout layout, long seed) {
        long bytes = layout.requiredElements() * dtype.bytes();
        List<DeviceBuffer> copies = new ArrayList<>();
        Random rnd = new Random(seed);
        for (int i = 0, r = rotation(bytes); i < r; i++) {
            DeviceBuffer x = alloc(device, bytes);
            HostTokens t = hostTokens(layout, rnd);
            if (t.data() instanceof float[] f) device.upload(f, x, stream);
            else device.upload((short[]) t.data(), x, stream);
            copies.add(x);
        }
        return copies;
    }

    HostTokens hostTokens(TokenLayout layout, Random rnd) {
        float[] f = gaussian(rnd, Math.toIntExact(layout.requiredElements()));
        return switch (dtype) {
            case F32 -> HostTokens.of(f, layout);
            case F16 -> HostTokens.of(Fp16.fromFloats(f), DType.F16, layout);
            case BF16 -> HostTokens.of(Bf16.fromFloats(f), DType.BF16, layout);
        };
    }

    static float[] gaussian(Random rnd, int count) {
        float[] f = new float[count];
        for (int i = 0; i < f.length; i++) f[i] = (float) rnd.nextGaussian();
        return f;
    }

    @Override
    public void close() {
        owned.forEach(DeviceBuffer::close);
    }
}
