package tokenprune.methods;

import java.util.Objects;

import tokenprune.device.Device;
import tokenprune.device.Stream;

/**
 * TransPrune (CVPR 2026): progressive pruning of image tokens inside the LLM by Token Transition
 * Variation (how much each token changes through the attention and MLP sub-blocks of layers 7..12)
 * plus Instruction-Guided Attention (how much the text after the image attends to each image token
 * in the next layer), methods-vision.md §6.
 *
 * <p>A request is stateful: the caller runs its decoder and hands TransPrune each accumulating
 * layer's sub-block inputs/outputs and, at each pruning point, the next layer's queries and keys;
 * TransPrune returns which image tokens survive. Two entry points:
 *
 * <ul>
 *   <li>{@link #begin}: device pointers on the caller's stream ({@link TransPruneAccumulator}: one
 *       launch per sub-block, 4 per pruning stage, no host synchronisation);</li>
 *   <li>{@link #open}: host arrays on any device ({@link TransPruneSession}; on the cpu device the
 *       float64 reference).</li>
 * </ul>
 *
 * <pre>{@code
 * TransPruneSchedule schedule = TransPruneSchedule.defaults();
 * try (TransPruneAccumulator acc = TransPrune.begin(ws, stream, ImageSequences.single(35, 576, 40), TransPruneOptions.defaults())) {
 *     for (int layer = 1; layer <= 32; layer++) {
 *         ... run layer, keeping u/v of both sub-blocks when schedule.accumulates(layer) ...
 *         if (schedule.accumulates(layer)) acc.addLayer(uAttn, vAttn, uMlp, vMlp);
 *         if (schedule.stageAfter(layer) >= 0) {
 *             acc.prune(qOfLayerPlus1, kOfLayerPlus1, kept, rowGather);  // then gather the hidden states by rowGather
 *         }
 *     }
 * }
 * }</pre>
 */
public final class TransPrune {
    private TransPrune() {
    }

    /** A request on device pointers, queued on {@code stream}; close the accumulator when done. */
    public static TransPruneAccumulator begin(Workspace ws, Stream stream, ImageSequences sequences, TransPruneOptions options) {
        return new TransPruneAccumulator(ws, stream, sequences, options);
    }

    /** A request on host arrays; on the cpu device it runs the float64 reference. */
    public static TransPruneSession open(Device device, ImageSequences sequences, TransPruneOptions options) {
        Objects.requireNonNull(device, "device");
        Objects.requireNonNull(sequences, "sequences");
        Objects.requireNonNull(options, "options");
        return new TransPruneSession(device, sequences, options);
    }
}
