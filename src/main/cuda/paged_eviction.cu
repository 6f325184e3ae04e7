// paged_eviction.cu — PagedEviction's decode-time step on the device for a batch of sequences
// (continuous batching): the score of each block that just filled (PE-REF step 2), the victim block
// (step 5, cross-layer aggregation of step 3) and the update of the block table, the per-block score
// array and kv_len. Two launches per decode step (plus, before them, one tp_kv_token_score_* launch
// per layer for the filled blocks' token scores: tokenprune.kv.PagedEviction.decodeStepOnDevice; none
// for the victim rules that read no score), no host round trip between them. The §2.4 parity modes
// (argmax, random, block 1 = StreamingLLM's paged rule) are arguments of the decide kernel. Also the
// prefill selection (step 4, by score or by recency): tp_pe_prefill_keep, at the end.
//
// State (device, owned by the caller; rows aligned with each other):
//   block_tables [seqs, table_stride] int32  physical block ids in logical order (in/out)
//   block_scores [layers, seqs, table_stride] fp32  cached block score per layer (in/out; NaN = unset)
//   kv_len [seqs] int32 (in/out), logical_len [seqs] int64 (in)  tokens held / tokens seen
// Per-step inputs:
//   fill_at [seqs] int32: -1 = this sequence's newest block did not fill in this step (it is left
//     alone entirely); f >= 0 = it filled, and its B token scores for layer l are
//     fill_scores[(l * fills + f) * B .. + B) (as written by tp_kv_token_score_* with
//     token_begin = kv_len - B, one launch per layer).
//
// tp_pe_decode_decide (the decision, ONE launch for the batch; writes only per-call scratch):
//   grid = seqs blocks, PE_THREADS = 128 threads, one block per sequence; 256 B static smem.
//   For a filled sequence: n_blocks = kv_len / B; the new block's score per layer is
//   (sum_j x_j, summed sequentially in j order in fp32) / B (one thread per layer), written to
//   new_scores[l * seqs + s]. The sequence evicts iff logical_len > budget and kv_len - B >= budget
//   and it has a candidate: logical indices 1 .. hi, hi = n_blocks - 2 (global, window = 0) or
//   min(window, n_blocks - 2) (local). The victim rule (victim_rule, §2.4):
//     0 argmin (PE-REF): candidate j is ranked by sum_l block_scores[l, s, j] over all layers
//       (layer_agg 0; summed sequentially in layer order in fp32: the order of the layer mean) or by
//       layer 0 alone (layer_agg 1); the smallest wins, ties to the lowest index (tp_block_argmax on
//       the negated sum);
//     1 argmax (HF global parity): the same sums, the largest wins, ties to the lowest index;
//     2 random (fork parity): 1 + floor(u * hi) with u = (tp_hash3(seed, logical_len, s) >> 32) / 2^32
//       (integer multiply-high, exact), no score read;
//     3 first: block 1 (StreamingLLM's paged rule, = any rule with a window of 1), no score read.
//   Rules 2 and 3 read neither fill_scores nor block_scores: new_scores = NaN (the cached score of the
//   filled block stays unset; fill_scores may be any pointer).
//   stage[2s] = victim or -1, stage[2s + 1] = its physical block or -1.
//   Rejects (tp_reject(status, epoch)): fill_at >= fills; kv_len of a filled sequence < B, not a
//   multiple of B, or n_blocks > table_stride; (rules 0, 1) a NaN/Inf token score of the filled block
//   or block score of a candidate (an unset candidate score is NaN); a victim's physical id outside
//   [0, num_blocks).
//
// tp_pe_decode_apply (the update; does nothing at all when the call was rejected):
//   grid = seqs blocks, 128 threads. For a filled sequence: block_scores[l, s, n_blocks - 1] =
//   new_scores[l, s]; if it evicts: entries victim .. n_blocks - 2 of the table row and of every
//   layer's score row take entries victim + 1 .. n_blocks - 1 (shift left), entry n_blocks - 1
//   becomes padding (table -1, score NaN), kv_len -= B. victims[s] / freed[s] = the victim's logical
//   index / physical block, or -1 (also for sequences not filled): the per-call free list that the
//   host applies to its PagedKvCache (evictBlock + reclaimEvicted after the step's kernels).
//   In-place shift: (row, index) pairs are flattened row-major and processed in chunks of
//   blockDim; each chunk reads entry i + 1, barrier, writes entry i, barrier (no entry is read after
//   it was overwritten).
//
// Cost: decide reads layers * B + layers * (n_blocks - 2) floats per filled sequence (64 blocks,
//   32 layers: ~8 KiB; nothing for rules 2 and 3), apply moves (layers + 1) * n_blocks words; both are launch-bound (~us).
#include "common.cuh"

#define PE_THREADS 128

extern "C" __global__ void __launch_bounds__(PE_THREADS)
tp_pe_decode_decide(const float* __restrict__ fill_scores, int fills, const int* __restrict__ fill_at, int layers, int block_size, int seqs,
                    long long budget, int window, int layer_agg, int victim_rule, long long seed, const int* __restrict__ block_tables, int table_stride, int num_blocks,
                    const float* __restrict__ block_scores, const int* __restrict__ kv_len, const long long* __restrict__ logical_len,
                    int* __restrict__ stage, float* __restrict__ new_scores, int* status, int epoch) {
    __shared__ float scratch_v[32];
    __shared__ int scratch_i[32];
    const int s = blockIdx.x;
    const int f = fill_at[s];
    if (f < 0) {  // block-uniform: every thread read the same word
        if (threadIdx.x == 0) { stage[2 * s] = -1; stage[2 * s + 1] = -1; }
        return;
    }
    const int kv = kv_len[s];
    const int nb = kv / block_size;
    if (f >= fills || kv < block_size || kv % block_size != 0 || nb > table_stride) {  // uniform
        if (threadIdx.x == 0) tp_reject(status, epoch);
        return;
    }

    // step 2: the score of the block that just filled, per layer (sequential fp32 sum, then / B)
    const bool scored = victim_rule <= 1;  // uniform
    int bad = 0;
    for (int l = threadIdx.x; l < layers; l += blockDim.x) {
        float mean = __int_as_float(0x7fc00000);  // unset
        if (scored) {
            const float* x = fill_scores + ((long long)l * fills + f) * block_size;
            float sum = 0.0f;
            for (int j = 0; j < block_size; ++j) {
                const float v = x[j];
                bad |= tp_is_nonfinite(v);
                sum += v;
            }
            mean = sum / (float)block_size;
            bad |= tp_is_nonfinite(mean);
        }
        new_scores[(long long)l * seqs + s] = mean;
    }

    // step 5: the victim among the candidates
    const bool evict = logical_len[s] > budget && (long long)kv - block_size >= budget;
    int hi = nb - 2;
    if (window > 0 && window < hi) hi = window;
    const int agg_layers = layer_agg == 1 ? 1 : layers;
    float best_v = 0.0f;
    int best_i = -1;
    if (evict && hi >= 1) {
        if (scored) {
            for (int j = 1 + threadIdx.x; j <= hi; j += blockDim.x) {
                float sum = 0.0f;
                for (int l = 0; l < agg_layers; ++l) {
                    const float v = block_scores[((long long)l * seqs + s) * table_stride + j];
                    bad |= tp_is_nonfinite(v);
                    sum += v;
                }
                bad |= tp_is_nonfinite(sum);
                const float key = victim_rule == 1 ? sum : -sum;  // exact: for argmin the smallest sum becomes the largest key
                if (tp_argmax_better(key, j, best_v, best_i)) { best_v = key; best_i = j; }
            }
        } else if (threadIdx.x == 0) {
            if (victim_rule == 2) {
                const unsigned long long u = tp_hash3((unsigned long long)seed, (unsigned long long)logical_len[s], (unsigned long long)s) >> 32;
                best_i = 1 + (int)((u * (unsigned long long)hi) >> 32);
            } else {
                best_i = 1;
            }
        }
    }
    if (__syncthreads_or(bad)) {
        if (threadIdx.x == 0) tp_reject(status, epoch);
        return;
    }
    tp_block_argmax(best_v, best_i, scratch_v, scratch_i);
    if (threadIdx.x == 0) {
        int phys = -1;
        if (best_i >= 0) {
            phys = block_tables[(long long)s * table_stride + best_i];
            if (phys < 0 || phys >= num_blocks) { tp_reject(status, epoch); return; }
        }
        stage[2 * s] = best_i;
        stage[2 * s + 1] = phys;
    }
}

extern "C" __global__ void __launch_bounds__(PE_THREADS)
tp_pe_decode_apply(const int* __restrict__ stage, const float* __restrict__ new_scores, const int* __restrict__ fill_at, int layers,
                   int block_size, int seqs, int* __restrict__ block_tables, int table_stride, float* __restrict__ block_scores,
                   int* __restrict__ kv_len, int* __restrict__ victims, int* __restrict__ freed, int* status, int epoch) {
    if (tp_call_rejected(status, epoch)) return;
    const int s = blockIdx.x;
    if (fill_at[s] < 0) {  // uniform
        if (threadIdx.x == 0) { victims[s] = -1; freed[s] = -1; }
        return;
    }
    const int kv = kv_len[s];
    const int nb = kv / block_size;  // validated by the decide kernel
    const int victim = stage[2 * s];
    for (int l = threadIdx.x; l < layers; l += blockDim.x)
        block_scores[((long long)l * seqs + s) * table_stride + nb - 1] = new_scores[(long long)l * seqs + s];
    __syncthreads();  // the new score is in place before the shift moves it; every thread has read kv_len
    if (victim >= 0) {
        const int count = nb - 1 - victim;  // entries victim .. nb - 2 receive victim + 1 .. nb - 1
        const long long total = (long long)(layers + 1) * count;  // row 0 = the table, row 1 + l = layer l's scores
        for (long long c = 0; c < total; c += blockDim.x) {
            const long long e = c + threadIdx.x;
            int row = 0, i = 0;
            int t = 0;
            float v = 0.0f;
            if (e < total) {
                row = (int)(e / count);
                i = victim + (int)(e % count);
                if (row == 0) t = block_tables[(long long)s * table_stride + i + 1];
                else v = block_scores[((long long)(row - 1) * seqs + s) * table_stride + i + 1];
            }
            __syncthreads();
            if (e < total) {
                if (row == 0) block_tables[(long long)s * table_stride + i] = t;
                else block_scores[((long long)(row - 1) * seqs + s) * table_stride + i] = v;
            }
            __syncthreads();
        }
        for (int l = threadIdx.x; l <= layers; l += blockDim.x) {
            if (l == 0) block_tables[(long long)s * table_stride + nb - 1] = -1;
            else block_scores[((long long)(l - 1) * seqs + s) * table_stride + nb - 1] = __int_as_float(0x7fc00000);
        }
        if (threadIdx.x == 0) {
            kv_len[s] = kv - block_size;
            victims[s] = victim;
            freed[s] = stage[2 * s + 1];
        }
    } else if (threadIdx.x == 0) {
        victims[s] = -1;
        freed[s] = -1;
    }
}

// tp_pe_prefill_keep — PE-REF step 4 (prefill selection) for a ragged batch of prompts, one launch.
//   Row s holds the token scores scores[row_offsets[s] .. row_offsets[s + 1]) of a prompt of L tokens
//   (one score per token, e.g. the head-averaged tp_kv_token_score_* output of one layer). If L <= C
//   it keeps 0 .. L-1; else with r = L mod B it keeps [0, B), [L - B - r, L) and the top C - 2B of the
//   middle [B, L - B - r) by score, ties to the LATER position (HF stable-sort parity). The C + r (or
//   L) kept positions go ascending (original order) to kept[keep_offsets[s] ..); keep_offsets is the
//   host's prefix sum of those counts.
//   Grid = seqs blocks, PE_PREFILL_THREADS = 256 threads, one block per prompt; static smem 256 + 35
//   ints. The later-position tie rule is the shared lowest-index rule on the reversed middle: the block
//   copies the middle reversed into rev_scratch (at the row's offset; same size as scores), then
//   tp_block_topk_cut + tp_block_topk_compact (idx_scratch, same size) give reversed indices
//   ascending = positions descending, written back mirrored. NaN/Inf anywhere in the row:
//   tp_reject(status, epoch) and the row is not written. Exits at once if the call was already rejected.
//   scores == nullptr: the score is the position (StreamingLLM's paged prefill, SL-5), so the kept
//   middle is its last C - 2B tokens; nothing is read, no scratch is touched (rev/idx may be nullptr).
//   Cost: reads each middle score <= 5 times (copy + <= 4 radix passes), writes C + r ints per prompt.
#define PE_PREFILL_THREADS 256

extern "C" __global__ void __launch_bounds__(PE_PREFILL_THREADS)
tp_pe_prefill_keep(const float* __restrict__ scores, const int* __restrict__ row_offsets, int seqs, int budget, int block_size,
                   const int* __restrict__ keep_offsets, float* __restrict__ rev_scratch, int* __restrict__ idx_scratch, int* __restrict__ kept,
                   int* status, int epoch) {
    __shared__ int hist[256];
    __shared__ int bcast[3];
    __shared__ int scan[32];
    __shared__ int scan_total;
    if (tp_call_rejected(status, epoch)) return;
    const int s = blockIdx.x;
    const int base = row_offsets[s];
    const int L = row_offsets[s + 1] - base;
    int* out = kept + keep_offsets[s];
    if (scores != nullptr) {  // uniform
        int bad = 0;
        for (int i = threadIdx.x; i < L; i += blockDim.x) bad |= tp_is_nonfinite(scores[base + i]);
        if (__syncthreads_or(bad)) {
            if (threadIdx.x == 0) tp_reject(status, epoch);
            return;
        }
    }
    if (L <= budget) {
        for (int i = threadIdx.x; i < L; i += blockDim.x) out[i] = i;
        return;
    }
    const int r = L % block_size;
    const int mid_end = L - block_size - r;
    const int mid_n = mid_end - block_size;
    const int k = budget - 2 * block_size;  // <= mid_n because L - r >= C
    if (scores == nullptr) {  // later wins: the last k middle positions, then the tail
        for (int i = threadIdx.x; i < block_size; i += blockDim.x) out[i] = i;
        for (int m = threadIdx.x; m < k + block_size + r; m += blockDim.x) out[block_size + m] = mid_end - k + m;
        return;
    }
    const float* x = scores + base;
    float* rev = rev_scratch + base;
    int* idx = idx_scratch + base;
    for (int i = threadIdx.x; i < mid_n; i += blockDim.x) rev[i] = x[mid_end - 1 - i];
    __syncthreads();  // the block's global writes are visible to the block after the barrier
    const TpTopkCut cut = tp_block_topk_cut(rev, mid_n, k, hist, bcast);
    const int n = tp_block_topk_compact(rev, mid_n, cut, idx, nullptr, scan, &scan_total);
    __syncthreads();
    for (int i = threadIdx.x; i < block_size; i += blockDim.x) out[i] = i;
    for (int m = threadIdx.x; m < n; m += blockDim.x) out[block_size + (n - 1 - m)] = mid_end - 1 - idx[m];
    for (int t = threadIdx.x; t < block_size + r; t += blockDim.x) out[block_size + n + t] = mid_end + t;
}
