// attn_colsum.cu — weighted column sums of attention probabilities over a few query rows, read
// from a paged KV cache: the one score kernel behind H2O, A2SF, SnapKV and TOVA (methods-kv.md
// §4.2 table, §11).
//
// What it computes
//   For every sequence s (held tokens j in [0, n_s), n_s = out_offsets[s+1] - out_offsets[s]), every
//   KV head h and every key j:
//     out[(out_offsets[s] * kv_heads) + h * n_s + j] =
//         decay * prev[same] + (1/G) sum_{g < G} sum_{r in rows of s} w_r P_{r, hG+g}[j]        (prev may be nullptr)
//     P_{r,qh}[j] = exp(q_{r,qh} . k_{j,h} * scale - lse[r, qh])   if j <= pos_r, else 0 (causal mask)
//   G = heads / kv_heads (GQA: query head qh reads kv head qh / G; the group MEAN, A2SF-REF / H2O-REF).
//   Rows of s: r in [q_offsets[s], q_offsets[s+1]); q of (r, qh, d) at q[r*q_row_stride + qh*q_head_stride + d];
//   lse (fp32, natural log, what flash attention returns) at lse[r*lse_row_stride + qh*lse_head_stride];
//   pos_r = q_pos[r] (the key index the query sits at, 0 <= pos_r < n_s); w_r = q_weight[r] (nullptr: 1).
//   Key j lives in physical block p = block_tables[s*table_stride + j/block_size], slot j % block_size, element
//   (p, slot, h, d) at cache + p*block_stride + slot*slot_stride + h*head_stride + (d / k_x)*k_chunk_stride +
//   (d % k_x)*k_dim_stride (K only; strides from tokenprune.kv.KvLayout: both FlashAttention/FlashInfer
//   layouts and their HND variants with x = D, chunk stride 0, dim stride 1, and vLLM v0's legacy split-x
//   key_cache [nb, H, D/x, B, x]: slot stride x, chunk stride B x, dim stride 1).
//   Probabilities are recomputed exactly from q, k and lse: the attention matrix is never built.
//   decay = 1 accumulates (H2O), decay = alpha is A2SF's recurrence, prev = nullptr a one-shot sum
//   (prefill weights: H2O 1, A2SF alpha^(L-1-r), SnapKV 1 for the last W rows, TOVA the last row only).
//   prev_lens (nullable): keys j >= prev_lens[s] are new (no prev term: a new token's score is its own
//   probability, A2SF-REF), so stale state in a reused slot is never read.
//   paged_out = 1: out and prev are indexed by physical slot instead, [num_blocks][block_size][kv_heads]
//   (A2SF-REF's decode state parallel to the cache: stable across steps and evictions); at =
//   (p * block_size + slot) * kv_heads + h. Assumes no physical block is shared between sequences.
//
// Grid / block mapping: grid (ceil(max n_s / 32), kv_heads, seqs), 128 threads = 4 warps. A block owns a
//   tile of 32 keys (lane c = key k0 + c) of one (sequence, kv head), stages them transposed in shared
//   memory, then walks the (row, group head) pairs of the sequence 16 at a time (Q chunk in shared memory),
//   warp w taking pairs w, w+4, w+8, w+12 of each chunk (interleaved, so a decode step's G = 4 pairs keep
//   all four warps busy). The K tile is staged with 16-byte loads when every key row is dim contiguous
//   (x = D, dim stride 1: not legacy) and 16-byte aligned whole units (base, strides and head_dim * sizeof(T)
//   multiples of 16: FlashAttention / FlashInfer with D = 128), element by element otherwise (the legacy
//   layout with the general split-x offset per element). Every lane accumulates its key's column sum in registers in
//   a fixed order; the 4 warps are summed in warp order at the end. Deterministic: no atomics on floats, each
//   output written by exactly one thread, the same sums in the same order under any schedule.
//   prev may alias out (in-place accumulation): each element is read and written by the same thread.
//
// Shared memory: dynamic (16 D + 33 D) * 4 bytes (Q chunk; transposed K tile padded to 33 columns), D = 128:
//   25 KiB; static 4*32 floats + 16 * 12 bytes.
//
// Status convention (maxmin_select.cu): a producer with barriers. On entry tp_call_rejected (a block of an
//   already-rejected call writes nothing). NaN/Inf in a staged q, k or lse, a logical block index >=
//   table_stride, a physical block outside [0, num_blocks), or pos_r outside [0, n_s) -> tp_reject(status, epoch)
//   and that block's tile is not written (other tiles may be: device callers treat out as undefined after a
//   rejection; with prev aliasing out, the accumulated state is then partly updated).
//
// Assumptions: heads % kv_heads == 0 (host-checked); head_dim >= 1 with the tiles fitting in shared memory.
//
// Cost per (sequence, kv head): reads n_s D keys once and, per 32-key tile, R G D query elements (R rows:
//   1 in decode, W for SnapKV), so ~ n_s D (1 + R G / 32) elements; 2 R G D FLOPs + one expf per
//   (pair, key). Decode, Llama-3.1-8B (G = 4, D = 128, bf16), 4 Ki held tokens: 1 MiB of K per layer
//   and sequence, ~4 MFLOP. K staged with 16-byte loads where aligned (Q element-wise: R G D elements per
//   tile); the transposed smem writes of the vector path are up to 4-way bank-conflicted. The legacy
//   layout stages K element-wise (its x-element chunks are 16 B, but consecutive chunks of a key are
//   B x elements apart). Not measured
//   on a GPU yet.
#include "common.cuh"

#define ACS_WARPS 4
#define ACS_THREADS (ACS_WARPS * TP_WARP)
#define ACS_PAIRS_PER_WARP 4
#define ACS_QT (ACS_WARPS * ACS_PAIRS_PER_WARP)  // (row, head) pairs per chunk: 16
#define ACS_KT TP_WARP                           // keys per tile: 32, one per lane
#define ACS_KLD (ACS_KT + 1)                     // padded transposed K tile row

// Whether every key row of the tile starts 16-byte aligned and is whole 16-byte units (block-uniform).
template <typename T>
__device__ __forceinline__ bool acs_vec16_ok(const T* cache, long long block_stride, long long slot_stride, long long head_stride, int head_dim,
                                             int k_x, long long k_dim_stride) {
    const long long e = (long long)sizeof(T);
    return k_x == head_dim && k_dim_stride == 1 && reinterpret_cast<uintptr_t>(cache) % 16 == 0 && (head_dim * e) % 16 == 0 && (block_stride * e) % 16 == 0 && (slot_stride * e) % 16 == 0 &&
           (head_stride * e) % 16 == 0;
}

// Element offset of key `key`'s row (dim 0) of KV head h in sequence s, or -1 if its table entry is outside the table or the pool.
__device__ __forceinline__ long long acs_key_row(const int* __restrict__ block_tables, int s, int table_stride, int key, int block_size, int num_blocks,
                                                 long long block_stride, long long slot_stride, int h, long long head_stride) {
    const int lb = key / block_size;
    const int p = lb < table_stride ? block_tables[(long long)s * table_stride + lb] : -1;
    if (p < 0 || p >= num_blocks) return -1;
    return (long long)p * block_stride + (long long)(key % block_size) * slot_stride + (long long)h * head_stride;
}

template <typename T>
__device__ void acs_colsum(const T* __restrict__ q, long long q_row_stride, long long q_head_stride,
                           const float* __restrict__ lse, long long lse_row_stride, long long lse_head_stride,
                           const T* __restrict__ cache, long long block_stride, long long slot_stride, long long head_stride,
                           int k_x, long long k_chunk_stride, long long k_dim_stride, int block_size, int heads, int kv_heads, int head_dim, int num_blocks,
                           const int* __restrict__ block_tables, int table_stride,
                           const int* __restrict__ q_offsets, const int* __restrict__ q_pos, const float* __restrict__ q_weight,
                           const int* __restrict__ out_offsets, float scale, const float* prev, float decay, const int* __restrict__ prev_lens, int paged_out, float* out,
                           int* status, int epoch) {
    __shared__ float colsum[ACS_WARPS][ACS_KT];
    __shared__ int p_pos[ACS_QT];
    __shared__ float p_w[ACS_QT], p_lse[ACS_QT];
    DYNAMIC_SMEM(float, acs_smem);
    float* qs = acs_smem;                      // [QT][head_dim]
    float* ks = acs_smem + ACS_QT * head_dim;  // [head_dim][KLD]

    const int s = blockIdx.z, h = blockIdx.y, k0 = blockIdx.x * ACS_KT;
    const int base = out_offsets[s], n = out_offsets[s + 1] - base;
    if (k0 >= n) return;  // uniform per block
    if (tp_call_rejected(status, epoch)) return;
    const int lane = threadIdx.x % TP_WARP, warp = threadIdx.x / TP_WARP;
    const int group = heads / kv_heads;
    const int row0 = q_offsets[s], rows = q_offsets[s + 1] - row0;
    const int pairs = rows * group;
    bool bad = false;

    // K tile, transposed: ks[i][c] = k_{k0 + c}[i] (zero beyond n)
    if (acs_vec16_ok(cache, block_stride, slot_stride, head_stride, head_dim, k_x, k_dim_stride)) {
        constexpr int N = 16 / (int)sizeof(T);  // elements per 16-byte load
        const int upr = head_dim / N;           // 16-byte units per key row
        for (int e = threadIdx.x; e < ACS_KT * upr; e += blockDim.x) {
            const int c = e / upr, u = e % upr;
            const int key = k0 + c;
            float val[N];
#pragma unroll
            for (int i = 0; i < N; ++i) val[i] = 0.0f;
            if (key < n) {
                const long long row = acs_key_row(block_tables, s, table_stride, key, block_size, num_blocks, block_stride, slot_stride, h, head_stride);
                if (row < 0) {
                    bad = true;
                } else {
                    const uint4 w = *reinterpret_cast<const uint4*>(cache + row + (long long)u * N);
                    const T* x = reinterpret_cast<const T*>(&w);
#pragma unroll
                    for (int i = 0; i < N; ++i) {
                        val[i] = tp_to_float(x[i]);
                        bad |= tp_is_nonfinite(val[i]);
                    }
                }
            }
#pragma unroll
            for (int i = 0; i < N; ++i) ks[(u * N + i) * ACS_KLD + c] = val[i];
        }
    } else {
        const bool contiguous = k_x == head_dim && k_dim_stride == 1;  // block-uniform
        for (int e = threadIdx.x; e < ACS_KT * head_dim; e += blockDim.x) {
            const int c = e / head_dim, i = e % head_dim;
            const int key = k0 + c;
            float val = 0.0f;
            if (key < n) {
                const long long row = acs_key_row(block_tables, s, table_stride, key, block_size, num_blocks, block_stride, slot_stride, h, head_stride);
                if (row < 0) {
                    bad = true;
                } else {
                    const long long di = contiguous ? i : tp_kv_dim_offset(i, k_x, k_chunk_stride, k_dim_stride);
                    val = tp_to_float(cache[row + di]);
                    bad |= tp_is_nonfinite(val);
                }
            }
            ks[i * ACS_KLD + c] = val;
        }
    }

    float acc = 0.0f;  // this lane's key, this warp's pairs, in pair order
    for (int c0 = 0; c0 < pairs; c0 += ACS_QT) {
        __syncthreads();  // previous chunk consumed (and, the first time, ks complete)
        for (int e = threadIdx.x; e < ACS_QT * head_dim; e += blockDim.x) {
            const int pi = e / head_dim, i = e % head_dim;
            const int pair = c0 + pi;
            float val = 0.0f;
            if (pair < pairs) {
                const int r = row0 + pair / group, qh = h * group + pair % group;
                val = tp_to_float(q[(long long)r * q_row_stride + (long long)qh * q_head_stride + i]);
                bad |= tp_is_nonfinite(val);
            }
            qs[e] = val;
        }
        if (threadIdx.x < ACS_QT) {
            const int pair = c0 + threadIdx.x;
            int pos = -1;
            float w = 0.0f, l = 0.0f;
            if (pair < pairs) {
                const int r = row0 + pair / group, qh = h * group + pair % group;
                pos = q_pos[r];
                if (pos < 0 || pos >= n) { bad = true; pos = -1; }
                w = q_weight != nullptr ? q_weight[r] : 1.0f;
                l = lse[(long long)r * lse_row_stride + (long long)qh * lse_head_stride];
                if (tp_is_nonfinite(l) || tp_is_nonfinite(w)) { bad = true; pos = -1; }
            }
            p_pos[threadIdx.x] = pos;
            p_w[threadIdx.x] = w;
            p_lse[threadIdx.x] = l;
        }
        __syncthreads();
        const int key = k0 + lane;
#pragma unroll
        for (int jj = 0; jj < ACS_PAIRS_PER_WARP; ++jj) {
            const int pi = jj * ACS_WARPS + warp;  // interleaved: a decode step's few pairs spread over all warps
            const int pos = p_pos[pi];
            if (pos < 0 || key > pos) continue;  // absent pair, or masked (causal)
            const float* qrow = qs + pi * head_dim;
            float dot = 0.0f;
            for (int i = 0; i < head_dim; ++i) dot = fmaf(qrow[i], ks[i * ACS_KLD + lane], dot);
            acc += p_w[pi] * expf(__fmul_rn(dot, scale) - p_lse[pi]);
        }
    }
    colsum[warp][lane] = acc;
    const bool any_bad = __syncthreads_or(bad) != 0;
    if (any_bad) {
        if (threadIdx.x == 0) tp_reject(status, epoch);
        return;
    }
    if (warp == 0 && k0 + lane < n) {
        float c = 0.0f;
#pragma unroll
        for (int w = 0; w < ACS_WARPS; ++w) c += colsum[w][lane];
        c *= 1.0f / (float)group;
        const int key = k0 + lane;
        long long at;
        if (paged_out) {  // by physical slot: the block table entry was checked while staging (no rejection here)
            const int p = block_tables[(long long)s * table_stride + key / block_size];
            at = ((long long)p * block_size + key % block_size) * kv_heads + h;
        } else {
            at = (long long)base * kv_heads + (long long)h * n + key;
        }
        const bool has_prev = prev != nullptr && (prev_lens == nullptr || key < prev_lens[s]);
        out[at] = has_prev ? fmaf(decay, prev[at], c) : c;
    }
}

extern "C" __global__ void __launch_bounds__(ACS_THREADS)
tp_attn_colsum_f32(const float* __restrict__ q, long long q_row_stride, long long q_head_stride, const float* __restrict__ lse, long long lse_row_stride,
     long long lse_head_stride, const float* __restrict__ cache, long long block_stride, long long slot_stride, long long head_stride,
     int k_x, long long k_chunk_stride, long long k_dim_stride, int block_size, int heads, int kv_heads, int head_dim, int num_blocks, const int* __restrict__ block_tables, int table_stride,
     const int* __restrict__ q_offsets, const int* __restrict__ q_pos, const float* __restrict__ q_weight,
     const int* __restrict__ out_offsets, float scale, const float* prev, float decay, const int* __restrict__ prev_lens, int paged_out,
     float* out, int* status, int epoch) {
    acs_colsum(q, q_row_stride, q_head_stride, lse, lse_row_stride, lse_head_stride, cache, block_stride, slot_stride, head_stride,
               k_x, k_chunk_stride, k_dim_stride, block_size, heads, kv_heads, head_dim, num_blocks, block_tables, table_stride, q_offsets, q_pos, q_weight, out_offsets,
               scale, prev, decay, prev_lens, paged_out, out, status, epoch);
}

extern "C" __global__ void __launch_bounds__(ACS_THREADS)
tp_attn_colsum_f16(const __half* __restrict__ q, long long q_row_stride, long long q_head_stride, const float* __restrict__ lse, long long lse_row_stride,
     long long lse_head_stride, const __half* __restrict__ cache, long long block_stride, long long slot_stride, long long head_stride,
     int k_x, long long k_chunk_stride, long long k_dim_stride, int block_size, int heads, int kv_heads, int head_dim, int num_blocks, const int* __restrict__ block_tables, int table_stride,
     const int* __restrict__ q_offsets, const int* __restrict__ q_pos, const float* __restrict__ q_weight,
     const int* __restrict__ out_offsets, float scale, const float* prev, float decay, const int* __restrict__ prev_lens, int paged_out,
     float* out, int* status, int epoch) {
    acs_colsum(q, q_row_stride, q_head_stride, lse, lse_row_stride, lse_head_stride, cache, block_stride, slot_stride, head_stride,
               k_x, k_chunk_stride, k_dim_stride, block_size, heads, kv_heads, head_dim, num_blocks, block_tables, table_stride, q_offsets, q_pos, q_weight, out_offsets,
               scale, prev, decay, prev_lens, paged_out, out, status, epoch);
}

extern "C" __global__ void __launch_bounds__(ACS_THREADS)
tp_attn_colsum_bf16(const __nv_bfloat16* __restrict__ q, long long q_row_stride, long long q_head_stride, const float* __restrict__ lse, long long lse_row_stride,
     long long lse_head_stride, const __nv_bfloat16* __restrict__ cache, long long block_stride, long long slot_stride, long long head_stride,
     int k_x, long long k_chunk_stride, long long k_dim_stride, int block_size, int heads, int kv_heads, int head_dim, int num_blocks, const int* __restrict__ block_tables, int table_stride,
     const int* __restrict__ q_offsets, const int* __restrict__ q_pos, const float* __restrict__ q_weight,
     const int* __restrict__ out_offsets, float scale, const float* prev, float decay, const int* __restrict__ prev_lens, int paged_out,
     float* out, int* status, int epoch) {
    acs_colsum(q, q_row_stride, q_head_stride, lse, lse_row_stride, lse_head_stride, cache, block_stride, slot_stride, head_stride,
               k_x, k_chunk_stride, k_dim_stride, block_size, heads, kv_heads, head_dim, num_blocks, block_tables, table_stride, q_offsets, q_pos, q_weight, out_offsets,
               scale, prev, decay, prev_lens, paged_out, out, status, epoch);
}
