// kv_token_score.cu — PagedEviction's token score from key and value norms, read from a paged KV cache,
// and its `random` score (no K/V read).
//
// What it computes (methods-kv.md §2.3.2 step 1, PE-REF)
//   For every sequence s of the batch and every token t in [token_begin[s], token_begin[s] + n_s),
//   n_s = out_offsets[s+1] - out_offsets[s]: per KV head h, n_k = ||k_{h,t}||_2 and n_v = ||v_{h,t}||_2
//   over the head_dim dims in fp32, then
//     metric 0 v_over_k:  head_agg 0 mean_of_ratios  s = (1/H) sum_h n_v / (n_k + eps)
//                         head_agg 1 ratio_of_means  s = mean_h n_v / (mean_h n_k + eps)
//     metric 1 inv_k:     s = 1 / (mean_h n_k + eps)
//     metric 2 v:         s = mean_h n_v
//     metric 3 k_plus_v:  s = mean_h n_k + mean_h n_v
//   written to scores[out_offsets[s] + t - token_begin[s]] (fp32). token_begin may be nullptr (0).
//   Token t of sequence s lives in physical block p = block_tables[s * table_stride + t / block_size],
//   slot t % block_size. Element (kv, p, slot, h, d) (kv 0 = K, 1 = V) is read at
//   cache + kv*kv_stride + p*block_stride + slot*slot_stride_kv + h*head_stride + (d / x_kv)*chunk_stride_kv
//   + (d % x_kv)*dim_stride_kv (element strides; slot_stride_K = slot_stride, slot_stride_V = v_slot_stride):
//   one kernel serves the FlashAttention [2, nb, B, H, D] and FlashInfer [nb, 2, B, H, D] layouts and
//   their HND variants (head dim contiguous: x = D, chunk stride 0, dim stride 1) and vLLM v0's legacy
//   split-x layout (K [nb, H, D/x, B, x], V [nb, H, D, B]; tokenprune.kv.KvLayout computes the strides).
//   tp_kv_random_score (metric `random`, §2.3.1): s = tp_hash_unit(tp_hash3(seed, p, slot)), uniform in
//   [0, 1) from an integer hash of (seed, physical block, slot); the same table walk, no K/V read.
//
// Grid / block mapping (tp_kv_token_score_*): 256 threads = 8 warps, one warp per scored token
//   (gridDim.x = ceil(total tokens / 8), one launch for a ragged batch); the warp finds its sequence by
//   a binary search over out_offsets (seqs + 1 ints). Two load paths, chosen per launch (uniform):
//   * vectorised (vec16): the layout is dim contiguous (x = D and dim stride 1 for K and V, one slot
//     stride: every kind but legacy), the cache base is 16-byte aligned and every stride and head_dim are
//     multiples of N = 16 / sizeof(T) (8 for f16/bf16, 4 for f32), so every head row starts 16-byte
//     aligned and is cph = head_dim / N chunks of 16 bytes. The warp splits into 32 / W groups of W
//     lanes, W = the power of two >= cph (at most 32); group g handles head h0 + g of each pass of
//     32 / W heads, lane j of the group loads chunks j, j + W, ... of K and V (one 16-byte load each).
//     D = 128 bf16: cph = W = 16, two heads per pass, every lane busy. tp_group_sum (fixed xor tree)
//     gives each head's n_k^2, n_v^2;
//   * element-wise otherwise: per head, lane l reads dims l, l+32, ... and two tp_warp_sum give the
//     squares. The legacy layout always takes it, with the general split-x offset per element (its V
//     dims are B elements apart, so a warp's loads are strided: legacy costs element-wise loads).
//   Either way every lane then folds the heads into the same running sums in head order (the vector
//   path fetches each group's norms with a shuffle), so the result does not depend on the schedule;
//   the two paths differ only in the order of the squares' partial sums. Lane 0 writes.
//   No shared memory; one barrier-OR at entry (the status check). For NHD a token's K (and V) is H*D contiguous elements.
//   tp_kv_random_score: 256 threads, one thread per token, the same binary search.
//
// Status convention (maxmin_select.cu): a producer. NaN/Inf in a token's K or V (not checked by the
//   random score, which reads none), a logical block index >= table_stride, or a physical block outside
//   [0, num_blocks): tp_reject(status, epoch) and that token's score is not written (other tokens' may be).
//   A call already stopped on entry (an earlier call's unobserved rejection) writes nothing.
//
// Cost: reads 2 * H * D elements per token once (bf16, Llama-3.1-8B: 4 KiB per token per layer),
//   writes 4 bytes; about 4 H D FLOPs per token. A bandwidth kernel: 1 Ki prompt tokens = 4 MiB,
//   ~2 us at HBM speed. The vectorised path issues one 16-byte load per lane per 8 (4) elements, a
//   quarter (half) of the element-wise path's load instructions for 16-bit (f32) caches; the
//   element-wise path stays for odd head dims, misaligned views and the legacy layout. The random score reads only the
//   block table and offsets (8 bytes per token) and writes 4 bytes. Not measured on a GPU yet.
#include "common.cuh"

#define KTS_THREADS 256
#define KTS_WARPS (KTS_THREADS / TP_WARP)

// The sequence of output g: the largest s with out_offsets[s] <= g (an empty s is skipped: s + 1 qualifies too).
__device__ __forceinline__ int kts_sequence_of(int g, const int* __restrict__ out_offsets, int seqs) {
    int lo = 0, hi = seqs - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (out_offsets[mid] <= g) lo = mid; else hi = mid - 1;
    }
    return lo;
}

template <typename T>
struct KtsVec {
    static constexpr int N = 16 / (int)sizeof(T);  // elements per 16-byte load
};

template <typename T>
__device__ __forceinline__ void kts_square_chunk(const T* __restrict__ kp, const T* __restrict__ vp, float& k2, float& v2, int& bad) {
    const uint4 kw = *reinterpret_cast<const uint4*>(kp);
    const uint4 vw = *reinterpret_cast<const uint4*>(vp);
    const T* ke = reinterpret_cast<const T*>(&kw);
    const T* ve = reinterpret_cast<const T*>(&vw);
#pragma unroll
    for (int i = 0; i < KtsVec<T>::N; ++i) {
        const float k = tp_to_float(ke[i]);
        const float v = tp_to_float(ve[i]);
        bad |= tp_is_nonfinite(k) | tp_is_nonfinite(v);
        k2 += k * k;
        v2 += v * v;
    }
}

template <typename T>
__device__ __forceinline__ void kts_score(const T* __restrict__ cache, long long kv_stride, long long block_stride, long long slot_stride,
                                          long long head_stride, long long v_slot_stride, int k_x, long long k_chunk_stride,
                                          long long k_dim_stride, int v_x, long long v_chunk_stride, long long v_dim_stride, int block_size, int heads, int head_dim, int num_blocks,
                                          const int* __restrict__ block_tables, int table_stride, const int* __restrict__ token_begin,
                                          const int* __restrict__ out_offsets, int seqs, int metric, int head_agg, float eps,
                                          float* __restrict__ scores, int* status, int epoch) {
    if (tp_call_rejected(status, epoch)) return;  // stopped by an earlier, unobserved rejection: write nothing
    const int lane = threadIdx.x % TP_WARP;
    const int g = blockIdx.x * KTS_WARPS + threadIdx.x / TP_WARP;
    if (g >= out_offsets[seqs]) return;  // warp-uniform; no barriers below

    const int s = kts_sequence_of(g, out_offsets, seqs);
    const int t = (token_begin != nullptr ? token_begin[s] : 0) + (g - out_offsets[s]);
    const int logical_block = t / block_size;
    if (t < 0 || logical_block >= table_stride) {
        if (lane == 0) tp_reject(status, epoch);
        return;
    }
    const int p = block_tables[(long long)s * table_stride + logical_block];
    if (p < 0 || p >= num_blocks) {
        if (lane == 0) tp_reject(status, epoch);
        return;
    }
    const T* kbase = cache + (long long)p * block_stride + (long long)(t % block_size) * slot_stride;
    const T* vbase = cache + kv_stride + (long long)p * block_stride + (long long)(t % block_size) * v_slot_stride;

    constexpr int N = KtsVec<T>::N;
    const bool contiguous = k_x == head_dim && v_x == head_dim && k_dim_stride == 1 && v_dim_stride == 1 && v_slot_stride == slot_stride;
    const bool vec16 = contiguous && reinterpret_cast<uintptr_t>(cache) % 16 == 0 && kv_stride % N == 0 && block_stride % N == 0 && slot_stride % N == 0 &&
                       head_stride % N == 0 && head_dim % N == 0;  // uniform over the launch
    int bad = 0;
    float sum_k = 0.0f, sum_v = 0.0f, sum_ratio = 0.0f;
    if (vec16) {
        const int cph = head_dim / N;
        int w = 1;
        while (w < cph && w < TP_WARP) w <<= 1;
        const int per_pass = TP_WARP / w, group = lane / w, j = lane % w;
        for (int h0 = 0; h0 < heads; h0 += per_pass) {
            const int h = h0 + group;
            float k2 = 0.0f, v2 = 0.0f;
            if (h < heads) {
                const T* kh = kbase + (long long)h * head_stride;
                const T* vh = vbase + (long long)h * head_stride;
                for (int c = j; c < cph; c += w) kts_square_chunk(kh + c * N, vh + c * N, k2, v2, bad);
            }
            const float nk_group = sqrtf(tp_group_sum(k2, w));
            const float nv_group = sqrtf(tp_group_sum(v2, w));
            for (int q = 0; q < per_pass; ++q) {  // every lane folds the pass's heads in head order
                const float nk = __shfl_sync(TP_FULL_MASK, nk_group, q * w);
                const float nv = __shfl_sync(TP_FULL_MASK, nv_group, q * w);
                if (h0 + q < heads) {
                    sum_k += nk;
                    sum_v += nv;
                    sum_ratio += nv / (nk + eps);
                }
            }
        }
    } else {
        for (int h = 0; h < heads; ++h) {
            const T* kh = kbase + (long long)h * head_stride;
            const T* vh = vbase + (long long)h * head_stride;
            float k2 = 0.0f, v2 = 0.0f;
            for (int d = lane; d < head_dim; d += TP_WARP) {
                const float k = tp_to_float(kh[contiguous ? d : tp_kv_dim_offset(d, k_x, k_chunk_stride, k_dim_stride)]);
                const float v = tp_to_float(vh[contiguous ? d : tp_kv_dim_offset(d, v_x, v_chunk_stride, v_dim_stride)]);
                bad |= tp_is_nonfinite(k) | tp_is_nonfinite(v);
                k2 += k * k;
                v2 += v * v;
            }
            const float nk = sqrtf(tp_warp_sum(k2));
            const float nv = sqrtf(tp_warp_sum(v2));
            sum_k += nk;
            sum_v += nv;
            sum_ratio += nv / (nk + eps);
        }
    }
    if (__any_sync(TP_FULL_MASK, bad)) {
        if (lane == 0) tp_reject(status, epoch);
        return;
    }
    const float inv_h = 1.0f / (float)heads;
    const float mean_k = sum_k * inv_h, mean_v = sum_v * inv_h;
    float score;
    if (metric == 0) score = head_agg == 0 ? sum_ratio * inv_h : mean_v / (mean_k + eps);
    else if (metric == 1) score = 1.0f / (mean_k + eps);
    else if (metric == 2) score = mean_v;
    else score = mean_k + mean_v;
    if (lane == 0) scores[g] = score;
}

extern "C" __global__ void __launch_bounds__(KTS_THREADS)
tp_kv_token_score_f32(const float* __restrict__ cache, long long kv_stride, long long block_stride, long long slot_stride, long long head_stride,
                      long long v_slot_stride, int k_x, long long k_chunk_stride, long long k_dim_stride, int v_x, long long v_chunk_stride,
                      long long v_dim_stride, int block_size, int heads, int head_dim, int num_blocks, const int* __restrict__ block_tables, int table_stride,
                      const int* __restrict__ token_begin, const int* __restrict__ out_offsets, int seqs, int metric, int head_agg, float eps,
                      float* __restrict__ scores, int* status, int epoch) {
    kts_score(cache, kv_stride, block_stride, slot_stride, head_stride, v_slot_stride, k_x, k_chunk_stride, k_dim_stride, v_x, v_chunk_stride,
              v_dim_stride, block_size, heads, head_dim, num_blocks, block_tables, table_stride,
              token_begin, out_offsets, seqs, metric, head_agg, eps, scores, status, epoch);
}

extern "C" __global__ void __launch_bounds__(KTS_THREADS)
tp_kv_token_score_f16(const __half* __restrict__ cache, long long kv_stride, long long block_stride, long long slot_stride, long long head_stride,
                      long long v_slot_stride, int k_x, long long k_chunk_stride, long long k_dim_stride, int v_x, long long v_chunk_stride,
                      long long v_dim_stride, int block_size, int heads, int head_dim, int num_blocks, const int* __restrict__ block_tables, int table_stride,
                      const int* __restrict__ token_begin, const int* __restrict__ out_offsets, int seqs, int metric, int head_agg, float eps,
                      float* __restrict__ scores, int* status, int epoch) {
    kts_score(cache, kv_stride, block_stride, slot_stride, head_stride, v_slot_stride, k_x, k_chunk_stride, k_dim_stride, v_x, v_chunk_stride,
              v_dim_stride, block_size, heads, head_dim, num_blocks, block_tables, table_stride,
              token_begin, out_offsets, seqs, metric, head_agg, eps, scores, status, epoch);
}

extern "C" __global__ void __launch_bounds__(KTS_THREADS)
tp_kv_token_score_bf16(const __nv_bfloat16* __restrict__ cache, long long kv_stride, long long block_stride, long long slot_stride,
                       long long head_stride, long long v_slot_stride, int k_x, long long k_chunk_stride, long long k_dim_stride, int v_x,
                       long long v_chunk_stride, long long v_dim_stride, int block_size, int heads, int head_dim, int num_blocks, const int* __restrict__ block_tables,
                       int table_stride, const int* __restrict__ token_begin, const int* __restrict__ out_offsets, int seqs, int metric,
                       int head_agg, float eps, float* __restrict__ scores, int* status, int epoch) {
    kts_score(cache, kv_stride, block_stride, slot_stride, head_stride, v_slot_stride, k_x, k_chunk_stride, k_dim_stride, v_x, v_chunk_stride,
              v_dim_stride, block_size, heads, head_dim, num_blocks, block_tables, table_stride,
              token_begin, out_offsets, seqs, metric, head_agg, eps, scores, status, epoch);
}

extern "C" __global__ void __launch_bounds__(KTS_THREADS)
tp_kv_random_score(int block_size, int num_blocks, const int* __restrict__ block_tables, int table_stride, const int* __restrict__ token_begin,
                   const int* __restrict__ out_offsets, int seqs, long long seed, float* __restrict__ scores, int* status, int epoch) {
    if (tp_call_rejected(status, epoch)) return;  // stopped by an earlier, unobserved rejection: write nothing
    const int g = blockIdx.x * KTS_THREADS + threadIdx.x;
    if (g >= out_offsets[seqs]) return;
    const int s = kts_sequence_of(g, out_offsets, seqs);
    const int t = (token_begin != nullptr ? token_begin[s] : 0) + (g - out_offsets[s]);
    const int logical_block = t / block_size;
    if (t < 0 || logical_block >= table_stride) {
        tp_reject(status, epoch);
        return;
    }
    const int p = block_tables[(long long)s * table_stride + logical_block];
    if (p < 0 || p >= num_blocks) {
        tp_reject(status, epoch);
        return;
    }
    scores[g] = tp_hash_unit(tp_hash3((unsigned long long)seed, (unsigned long long)p, (unsigned long long)(t % block_size)));
}
