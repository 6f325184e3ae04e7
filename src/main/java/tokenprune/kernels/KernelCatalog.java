package tokenprune.kernels;

import java.util.ArrayList;
import java.util.List;

import tokenprune.device.KernelSpec;

/** Every kernel the jar launches, with its Java-side signature (checked against the PTX by a test). */
public final class KernelCatalog {
    private KernelCatalog() {
    }

    public static List<KernelSpec> all() {
        List<KernelSpec> all = new ArrayList<>();
        all.addAll(CosineDistanceKernel.specs());
        all.addAll(MaxMinSelectKernel.specs());
        all.addAll(ClsAttentionKernel.specs());
        all.addAll(TopKKernel.specs());
        all.addAll(GatherKernel.specs());
        all.addAll(DartKeyL1Kernel.specs());
        all.addAll(DartCosineKernel.specs());
        all.addAll(DartSelectKernel.specs());
        all.addAll(TtvKernel.specs());
        all.addAll(IgaKernel.specs());
        all.addAll(TransPruneScoreKernel.specs());
        all.addAll(KvTokenScoreKernel.specs());
        all.addAll(AttnColsumKernel.specs());
        all.addAll(PagedEvictionKernel.specs());
        all.addAll(KvBlockEvictKernel.specs());
        all.addAll(KvKeepKernel.specs());
        all.addAll(KvCompactKernel.specs());
        return List.copyOf(all);
    }
}
