// kv_block_evict.cu — block-granular decode-time eviction for the attention-score policies on the
// paged cache (methods-kv.md §4.4 option (ii), §5 H2O-REF at block granularity, §6 SL-5, §11): for
// a whole batch in ONE launch, which logical block each sequence gives up in this step. Memory is
// freed only at block granularity, and only if every layer drops the same block, so the block score
// aggregates the per-slot attention state over the block's token slots, its KV heads and all layers.
// The update itself (table shift, kv_len -= B, per-call free list) is paged_eviction.cu's
// tp_pe_decode_apply run with layers = 0 (no block-score rows to shift): this kernel writes `stage`
// exactly as tp_pe_decode_decide does.
//
// State (device, caller-owned):
//   layer_states [layers] device addresses (uint64), each of a float [num_blocks][B][kv_heads] array:
//     the A2SF/H2O decode state of one layer (tokenprune.kv.AttentionScores.accumulatePagedOnDevice),
//     one fp32 per physical slot and KV head. A table of addresses rather than one buffer with a layer
//     stride because each layer's state is its own allocation in practice (allocated next to that
//     layer's KV cache); slices of one buffer work as well. Unused (may be anything) when layers = 0.
//   block_tables [seqs, table_stride] int32 (physical ids in logical order), kv_len [seqs] int32,
//   logical_len [seqs] int64: read only.
//
// tp_kv_block_victim — grid = seqs blocks, KBE_THREADS = 128 threads (4 warps), one block per
//   sequence; 256 B static smem (the arg-min scratch).
//   Trigger (PE-REF §2.3.2 step 5): kv_len >= B, kv_len % B == 0 (the newest block is full),
//   logical_len > budget and kv_len - B >= budget. Once a sequence sits in [C, C + B) after its
//   eviction a repeated call does not trigger again; a sequence held at kv_len >= C + 2B (a prompt not
//   pruned to C + r first) sheds one block per call and per filled block, so prune prompts at prefill.
//   Not triggered: stage = (-1, -1). Triggered: n_blocks = kv_len / B, candidates = logical blocks
//   [sink_blocks, n_blocks - 1 - recent_blocks] (empty: no victim).
//   policy 0 (ATTENTION, H2O / A2SF: the state's decay says which): victim = argmin of the block
//     score = mean over layers of the mean of the state over the block's B slots and kv_heads. The
//     count B * kv_heads * layers is the same for every candidate, so candidates are ranked by the
//     plain sum (no division, no rounding of it): one warp per candidate, lane i sums the elements
//     i, i + 32, ... of each layer's contiguous B * kv_heads run in layer order, then tp_warp_sum's
//     fixed tree; -sum goes into the shared lowest-index arg-max (ties -> lowest logical index).
//     Deterministic: the same bits under any schedule. Only candidate blocks are read: the newest
//     block may hold slots whose state is stale (a reused block, the token appended this step),
//     which is why recent_blocks >= 1.
//   policy 1 (STREAMING, no scores; SL-5 decode): victim = logical block sink_blocks.
//   stage[2s] = victim logical index or -1, stage[2s + 1] = its physical block or -1.
//   Rejects (tp_reject(status, epoch); stage is scratch, so nothing of the caller's changes and the
//   apply launch does nothing): a triggered sequence with n_blocks > table_stride; a candidate's (or
//   the STREAMING victim's) physical id outside [0, num_blocks); a NaN/Inf state value of a candidate
//   block or a non-finite candidate sum.
//
// Cost (ATTENTION): per triggered sequence (candidates * layers * B * kv_heads) floats, coalesced
//   (a candidate's run per layer is contiguous): C = 1024, B = 16, 8 KV heads, 32 layers -> 62 * 32 *
//   512 B ~ 1 MiB, once every B decode steps per sequence; ~1 FLOP per float. Untriggered sequences
//   read two words. Launch-bound at small batches.
#include "common.cuh"

#define KBE_THREADS 128
#define KBE_POLICY_STREAMING 1

extern "C" __global__ void __launch_bounds__(KBE_THREADS)
tp_kv_block_victim(const float* const* __restrict__ layer_states, int layers, int kv_heads, int block_size, int seqs, long long budget,
                   int sink_blocks, int recent_blocks, int policy, const int* __restrict__ block_tables, int table_stride, int num_blocks,
                   const int* __restrict__ kv_len, const long long* __restrict__ logical_len, int* __restrict__ stage, int* status, int epoch) {
    __shared__ float scratch_v[32];
    __shared__ int scratch_i[32];
    const int s = blockIdx.x;
    const int kv = kv_len[s];
    const bool trigger = kv >= block_size && kv % block_size == 0 && logical_len[s] > budget && (long long)kv - block_size >= budget;
    if (!trigger) {  // block-uniform: every thread read the same words
        if (threadIdx.x == 0) { stage[2 * s] = -1; stage[2 * s + 1] = -1; }
        return;
    }
    const int nb = kv / block_size;
    if (nb > table_stride) {  // uniform
        if (threadIdx.x == 0) tp_reject(status, epoch);
        return;
    }
    const int* table = block_tables + (long long)s * table_stride;
    const int lo = sink_blocks, hi = nb - 1 - recent_blocks;

    float best_v = 0.0f;
    int best_i = -1;
    int bad = 0;
    if (policy == KBE_POLICY_STREAMING) {
        if (threadIdx.x == 0 && lo <= hi) best_i = lo;
    } else {
        const int lane = threadIdx.x % TP_WARP, warp = threadIdx.x / TP_WARP, warps = blockDim.x / TP_WARP;
        const int run = block_size * kv_heads;  // one block's slots x heads, contiguous per layer
        for (int j = lo + warp; j <= hi; j += warps) {  // warp-uniform
            const int p = table[j];
            if (p < 0 || p >= num_blocks) { bad = 1; continue; }  // warp-uniform
            float acc = 0.0f;
            for (int l = 0; l < layers; ++l) {
                const float* x = layer_states[l] + (long long)p * run;
                for (int e = lane; e < run; e += TP_WARP) {
                    const float v = x[e];
                    bad |= tp_is_nonfinite(v);
                    acc += v;
                }
            }
            const float sum = tp_warp_sum(acc);
            bad |= tp_is_nonfinite(sum);
            const float key = -sum;  // exact: the smallest sum becomes the largest key
            if (lane == 0 && tp_argmax_better(key, j, best_v, best_i)) { best_v = key; best_i = j; }
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
            phys = table[best_i];
            if (phys < 0 || phys >= num_blocks) { tp_reject(status, epoch); return; }
        }
        stage[2 * s] = best_i;
        stage[2 * s + 1] = phys;
    }
}
