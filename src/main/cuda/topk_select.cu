// topk_select.cu — exact top-k and threshold selection over B independent score rows.
//
// What it computes (methods-vision.md §2.2: larger score first, then lower index)
//   Row b is scores[row_offsets[b] .. row_offsets[b+1]) (n = n_b fp32 scores, local token indices
//   0 .. n-1). -0.0 and +0.0 are equal scores (they tie, so the lower index wins).
//   tp_topk_select       keeps k = keep_offsets[b+1] - keep_offsets[b] tokens (0 <= k <= n): the k
//                        best by the rule above, exactly (ties at the cut go to the lowest indices).
//                        kept[keep_offsets[b] ..] = their indices ascending (original token order).
//   tp_threshold_select  keeps every token with score >= threshold (finite threshold; possibly
//                        none): kept[row_offsets[b] .. + counts[b]) = their indices ascending, and
//                        counts[b] = how many. The output size depends on the data, so the kept list
//                        sits at the row's own offset (capacity n_b per row) instead of being packed.
//   Both write, if keep_mask != nullptr, keep_mask[row_offsets[b] + i] = 1 if token i is kept, else 0.
//
// Algorithm (tp_topk_select): tp_block_topk_cut (common.cuh) radix-selects the k-th largest
//   order-preserving key (MSB-first, 8-bit digits, a 256-bin shared histogram per pass, at most 4
//   passes, early exit once the boundary bin is kept whole), giving a cut (prefix, mask, ties):
//   keys above the prefix are kept, and of the keys equal to it the first `ties` in index order.
//   Then one ascending compaction: chunks of blockDim tokens, one block exclusive scan per chunk of
//   the packed pair (equal-to-cut << 16 | above-cut), so each kept token knows its output slot
//   (above-cut tokens before it + min(equal tokens before it, ties)).
//   tp_threshold_select is the same compaction with the cut (key(threshold), all bits, unlimited
//   ties), i.e. key >= key(threshold), after a pass that checks the row.
//
// Status convention (maxmin_select.cu): if the call was rejected on entry (tp_call_rejected) an earlier kernel of the
//   call rejected it and the block writes nothing. A block that finds a NaN/Inf score in its own
//   row does tp_reject(status, epoch) and writes nothing. The check of a row completes (a block-wide
//   vote) before any of its outputs is written, so a row holding a non-finite score is never
//   written; rows of the same call without one may be (blocks do not wait for each other). The
//   host API throws for the whole call and returns nothing.
//
// Grid / block mapping: one block per row (gridDim.x = B), any multiple of 32 threads up to 1024;
//   no dynamic shared memory. Static shared memory: 256 + 3 + 32 + 1 ints (1.2 KiB), independent of
//   n: rows of any length work (scores stay in global memory and are re-read per pass; after the
//   first pass they come from L2).
//
// Cost per row (n scores, k kept): reads 4n bytes per radix pass (1 to 4 passes; k = 0 or n: 1)
//   plus 4n for the compaction; writes 4k bytes (+ n mask bytes). At most n shared atomics per
//   pass (one per run of equal digits among a thread's keys, so clustered scores, which share
//   their high key bytes, do not serialise on one bin); 3 barriers per pass and 2 per compaction
//   chunk. Latency-bound for typical n (576 .. 6k).
//   tp_threshold_select: 8n bytes read, 4 * count written.
#include "common.cuh"

#define TK_MAX_TIES 0x7fffffff

extern "C" __global__ void __launch_bounds__(1024)
tp_topk_select(const float* __restrict__ scores, const int* __restrict__ row_offsets, const int* __restrict__ keep_offsets,
               int* status, int epoch, int* __restrict__ kept, unsigned char* __restrict__ keep_mask) {
    __shared__ int hist[256];
    __shared__ int bcast[3];
    __shared__ int scan_scratch[TP_WARP];
    __shared__ int scan_total;

    if (tp_call_rejected(status, epoch)) return;  // an earlier kernel rejected this call: write nothing

    const int row = blockIdx.x;
    const int first = row_offsets[row];
    const int n = row_offsets[row + 1] - first;
    const int k = keep_offsets[row + 1] - keep_offsets[row];
    const float* v = scores + first;

    const TpTopkCut cut = tp_block_topk_cut(v, n, k, hist, bcast);
    if (cut.nonfinite) {  // uniform: the result of a block-wide vote
        if (threadIdx.x == 0) tp_reject(status, epoch);
        return;
    }
    tp_block_topk_compact(v, n, cut, kept + keep_offsets[row], keep_mask != nullptr ? keep_mask + first : nullptr, scan_scratch, &scan_total);
}

extern "C" __global__ void __launch_bounds__(1024)
tp_threshold_select(const float* __restrict__ scores, const int* __restrict__ row_offsets, float threshold,
                    int* status, int epoch, int* __restrict__ kept, int* __restrict__ counts,
                    unsigned char* __restrict__ keep_mask) {
    __shared__ int scan_scratch[TP_WARP];
    __shared__ int scan_total;

    if (tp_call_rejected(status, epoch)) return;

    const int row = blockIdx.x;
    const int first = row_offsets[row];
    const int n = row_offsets[row + 1] - first;
    const float* v = scores + first;

    int bad = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) bad |= tp_is_nonfinite(v[i]);
    if (__syncthreads_or(bad)) {
        if (threadIdx.x == 0) tp_reject(status, epoch);
        return;
    }
    TpTopkCut cut;
    cut.prefix = tp_float_order_key(threshold);
    cut.mask = 0xffffffffu;
    cut.ties = TK_MAX_TIES;
    cut.nonfinite = false;
    const int count = tp_block_topk_compact(v, n, cut, kept + first, keep_mask != nullptr ? keep_mask + first : nullptr, scan_scratch, &scan_total);
    if (threadIdx.x == 0) counts[row] = count;
}
