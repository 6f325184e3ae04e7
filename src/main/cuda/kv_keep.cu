// kv_keep.cu — the keep decision of the attention-score KV policies (methods-kv.md §4.4 A2SF-REF,
// §5 H2O-REF, §7 SnapKV, §8 TOVA; §10.1: scoring and selection are separate steps) on the device, for
// a ragged batch of sequences in ONE launch: scores in, kept token indices and new kv_len out, no host
// round trip (tokenprune.kv.KvKeepSelect).
//
// What it computes
//   A row is (sequence s, KV head h) in per-head mode (H2O-REF: every KV head keeps its own set; all
//   rows of a sequence keep the same count), or a whole sequence in shared mode (TOVA / PE-REF style:
//   the score of token t is the mean over the KV heads, summed in head order in fp32 then divided by
//   kv_heads; one set for all heads). A row holds n = seq_offsets[s + 1] - seq_offsets[s] tokens.
//   n <= budget: it keeps 0 .. n-1. Otherwise it keeps [0, sinks), [n - recent, n) and the top
//   k = budget - sinks - recent of the candidates [sinks, n - recent) by score — larger first, exactly
//   (radix select: tp_block_topk_cut + tp_block_topk_compact); -0.0 ties +0.0. Equal scores at the cut:
//   later_kept 0 keeps the lower index (the TopK convention; H2O / SnapKV / TOVA), later_kept 1 keeps the
//   higher one, i.e. the lowest index among equal minima is evicted first (A2SF-REF §4.4 "evict argmin,
//   ties -> lowest slot index"; frequent there: decayed scores underflow to exactly 0). later_kept is the
//   shared lower-index rule on the candidates REVERSED in scratch (as tp_pe_prefill_keep): the compacted
//   reversed indices ascending are the tokens descending, mirrored back in place to ascending.
//   Optional SnapKV pooling (SK-1) before the selection, when pool_kernel > 1 (odd): over [0, n - recent)
//   with stride 1 and padding pool_kernel / 2; avg (pool_max 0) sums the in-range values in window
//   order in fp32 and divides by pool_kernel (the zero padding counts), max (pool_max 1) ignores the
//   padding (-inf). In shared mode the head mean is pooled. The tie rule applies to the pooled values.
//   Output: the min(n, budget) kept indices ascending at keep[keep_offsets[row] ..) (the host's prefix
//   sum of those counts), and kv_len_out[s] = min(n, budget) (written by the row of head 0; may be null).
//
// Score sources
//   contiguous (block_tables == nullptr): the layout of tp_attn_colsum_* / AttentionScores.compute, per
//     sequence [kv_heads][n], sequences concatenated: token t of (s, h) at seq_offsets[s] * kv_heads +
//     h * n + t. (kv_heads = 1 and seq_offsets = row offsets serves arbitrary rows.)
//   paged (block_tables != nullptr): the decode state of AttentionScores.accumulatePaged,
//     [num_blocks][block_size][kv_heads] fp32: token t of (s, h) at ((p * block_size + t % block_size)
//     * kv_heads + h) with p = block_tables[s * table_stride + t / block_size]. Only held slots are read.
//
// Grid / block: one block of KK_THREADS = 256 threads per row (rows = seqs * kv_heads per-head, seqs
//   shared). Static smem: 256 + 36 ints (radix histogram, broadcast, scan). Threads stride over the
//   row's tokens: phase 1 reads and checks every token (and table entry) of the row and, where the
//   selection cannot read the input in place (paged, shared, pooled, or later_kept unpooled), stages
//   the per-token score in base_scratch: [0, n - recent) in token order, or (later_kept, no pooling)
//   only the candidates, reversed, at [sinks, n - recent); phase 2 pools [sinks, n - recent) into
//   pool_scratch (reversed when later_kept); phase 3 cuts and compacts the candidates into keep, then
//   maps them to token indices (+ sinks, or mirrored and reversed in place when later_kept) and writes
//   sinks and the recent window. Scratch rows sit at the row's own offset (seq_offsets[s] * kv_heads +
//   h * n per head, seq_offsets[s] shared), so each scratch holds as many floats as the row-score
//   layout; either scratch may be null when it is not needed: base_scratch for contiguous per-head rows
//   that are pooled or not later_kept, pool_scratch without pooling.
//   No pointer argument is __restrict__-qualified where a scratch read may go through it: `base` is
//   either the input or base_scratch, and a const __restrict__ input let nvcc issue the block's reads of
//   its own scratch writes as ld.global.nc (the non-coherent read-only path).
//
// Status convention (maxmin_select.cu): exits at once if the call was already rejected. A NaN/Inf score
//   read by the row (every head in shared mode; also a head mean or pooled value that overflows), or a
//   table entry of a held block outside [0, num_blocks): tp_reject(status, epoch) and that row's keep
//   entries are not written (kv_len_out may be, by a head-0 row that is itself fine).
//
// Cost per row over budget: reads n * (1 or kv_heads) scores once, writes <= n scratch floats, pooling
//   reads pool_kernel floats per candidate, the radix select reads the candidates <= 5 times; writes
//   budget ints (later_kept: + k reads and k writes of keep for the mirror; a contiguous per-head row
//   unpooled writes and re-reads its n - recent - sinks candidates once more). Rows at or under budget
//   read n scores and write n ints. Bandwidth/launch bound.
#include "common.cuh"

#define KK_THREADS 256

// Score of head hh at token t of sequence s (t < n; the paged entry p has been checked).
__device__ __forceinline__ float tp_kk_read(const float* scores, bool paged, long long row_base, int n, int kv_heads, int hh, int t,
                                            int p, int block_size) {
    if (paged) return scores[((long long)p * block_size + t % block_size) * kv_heads + hh];
    return scores[row_base + (long long)hh * n + t];
}

extern "C" __global__ void __launch_bounds__(KK_THREADS)
tp_kv_keep_select(const float* scores, const int* __restrict__ seq_offsets, int seqs, int kv_heads, int shared,
                  const int* __restrict__ block_tables, int table_stride, int block_size, int num_blocks, int sinks, int recent, int budget,
                  int pool_kernel, int pool_max, int later_kept, const int* __restrict__ keep_offsets, float* __restrict__ base_scratch,
                  float* __restrict__ pool_scratch, int* __restrict__ keep, int* __restrict__ kv_len_out, int* status, int epoch) {
    __shared__ int hist[256];
    __shared__ int bcast[3];
    __shared__ int scan[32];
    __shared__ int scan_total;
    if (tp_call_rejected(status, epoch)) return;
    const int row = blockIdx.x;
    const int s = shared ? row : row / kv_heads;
    const int h = shared ? 0 : row % kv_heads;
    const int n = seq_offsets[s + 1] - seq_offsets[s];
    const bool paged = block_tables != nullptr;
    const long long seq_base = (long long)seq_offsets[s] * kv_heads;  // contiguous: the sequence's [kv_heads][n] block
    const long long scratch_off = shared ? (long long)seq_offsets[s] : seq_base + (long long)h * n;
    const bool over = n > budget;
    const bool pooled = pool_kernel > 1;
    const bool later = later_kept != 0;
    const bool rev_stage = later && !pooled;      // phase 1 stages the candidates reversed
    const bool direct = !paged && !shared && !rev_stage;  // the selection reads the row's input in place
    const int end = n - recent;                   // candidates and pooling live in [0, end) when over

    // phase 1: read and check the whole row; stage the per-token score where the selection needs a copy
    int bad = 0;
    for (int t = threadIdx.x; t < n; t += blockDim.x) {
        int p = 0;
        if (paged) {
            p = block_tables[(long long)s * table_stride + t / block_size];
            if (p < 0 || p >= num_blocks) { bad = 1; continue; }
        }
        float v;
        if (shared) {
            float sum = 0.0f;
            for (int hh = 0; hh < kv_heads; ++hh) {
                const float x = tp_kk_read(scores, paged, seq_base, n, kv_heads, hh, t, p, block_size);
                bad |= tp_is_nonfinite(x);
                sum += x;
            }
            v = sum / (float)kv_heads;
        } else {
            v = tp_kk_read(scores, paged, seq_base, n, kv_heads, h, t, p, block_size);
        }
        bad |= tp_is_nonfinite(v);
        if (over && t < end) {
            if (rev_stage) {
                if (t >= sinks) base_scratch[scratch_off + sinks + (end - 1 - t)] = v;
            } else if (!direct) {
                base_scratch[scratch_off + t] = v;
            }
        }
    }
    if (__syncthreads_or(bad)) {  // also orders the base_scratch writes before the reads below
        if (threadIdx.x == 0) tp_reject(status, epoch);
        return;
    }
    if (kv_len_out != nullptr && h == 0 && threadIdx.x == 0) kv_len_out[s] = over ? budget : n;
    int* out = keep + keep_offsets[row];
    if (!over) {
        for (int i = threadIdx.x; i < n; i += blockDim.x) out[i] = i;
        return;
    }

    const float* base = direct ? scores + seq_base + (long long)h * n : base_scratch + scratch_off;
    const int m = end - sinks;  // >= 1 candidates: n > budget >= sinks + recent
    const float* cand = base + sinks;
    if (pooled) {
        // phase 2: SnapKV pooling of the candidates over [0, end)
        const int pad = pool_kernel / 2;
        float* pool = pool_scratch + scratch_off;
        int pbad = 0;
        for (int i = threadIdx.x; i < m; i += blockDim.x) {
            const int t = sinks + i;
            const int lo = max(0, t - pad), hi = min(end - 1, t + pad);
            float acc = pool_max ? -INFINITY : 0.0f;
            for (int j = lo; j <= hi; ++j) acc = pool_max ? fmaxf(acc, base[j]) : acc + base[j];
            const float v = pool_max ? acc : acc / (float)pool_kernel;
            pbad |= tp_is_nonfinite(v);
            pool[later ? m - 1 - i : i] = v;
        }
        if (__syncthreads_or(pbad)) {
            if (threadIdx.x == 0) tp_reject(status, epoch);
            return;
        }
        cand = pool;
    }

    // phase 3: top k of the candidates, ascending, then the protected ranges
    const int k = budget - sinks - recent;  // < m
    if (k > 0) {  // uniform
        const TpTopkCut cut = tp_block_topk_cut(cand, m, k, hist, bcast);
        tp_block_topk_compact(cand, m, cut, out + sinks, nullptr, scan, &scan_total);
        __syncthreads();  // every compacted index is in place before it is mapped to a token index
        if (later) {  // reversed index r ascending -> token sinks + m - 1 - r descending: mirror pairwise in place
            int* mid = out + sinks;
            for (int i = threadIdx.x; i < (k + 1) / 2; i += blockDim.x) {
                const int a = mid[i], b = mid[k - 1 - i];
                mid[i] = sinks + m - 1 - b;
                mid[k - 1 - i] = sinks + m - 1 - a;
            }
        } else {
            for (int i = threadIdx.x; i < k; i += blockDim.x) out[sinks + i] += sinks;
        }
    }
    for (int i = threadIdx.x; i < sinks; i += blockDim.x) out[i] = i;
    for (int i = threadIdx.x; i < recent; i += blockDim.x) out[sinks + k + i] = end + i;
}
