// kv_compact.cu — KV-cache compaction on a paged cache: move the tokens a sequence keeps to the front
// of its (or a fresh) block table, in their original order (methods-kv.md §11: "token-level or
// per-head decisions save memory only after a compaction"; §2.3.2 step 4, PE-REF prefill: "write the
// kept tokens in original order into fresh blocks"), optionally moving a per-slot fp32 state along
// (AttentionScores' paged decode state) and re-rotating the moved keys (StreamingLLM pos-shift on a
// cache of post-RoPE keys, §6 / SL-4). One launch of each kernel covers every layer.
//
// What it computes
//   Sequence s keeps n_s = keep_offsets[s+1] - keep_offsets[s] tokens per (layer, KV head): the list
//     K(l, h, s)[i] = keep[l * keep_layer_stride + h * keep_head_stride + keep_offsets[s] + i],  i < n_s,
//   strictly increasing SOURCE token indices (logical, in the source block table row s). keep_head_stride
//   = 0: one list shared by all heads (PE-REF); keep_layer_stride = 0: one list shared by all layers.
//   Every head keeps the same COUNT so the block table and kv_len stay shared (H2O-REF per-head eviction).
//   For i < n_s and kv in {K, V}: destination token i of table row s (dst_tables) gets source token
//   K(l, h, s)[i] (src_tables); token t of row r lives at physical block p = tables[r * stride + t / B],
//   slot t % B, element (kv, p, slot, h, d) at kv*kv_stride + p*block_stride + slot*slot_stride_kv +
//   h*head_stride + (d / x_kv)*chunk_stride_kv + (d % x_kv)*dim_stride_kv (tokenprune.kv.KvLayout; K: slot_stride,
//   k_x, k_chunk_stride, k_dim_stride, V: v_slot_stride, v_x, ...): both FlashAttention/FlashInfer layouts
//   and the HND variants (x = D, chunk stride 0, dim stride 1: each (token, head) row is D contiguous
//   elements) and vLLM v0's legacy split-x layout (K [nb, H, D/x, B, x], V [nb, H, D, B]).
//   State (has_state): state[(p*B + slot) * kv_heads + h] moves with the token ([num_blocks][B][kv_heads]).
//   Re-rotation (rotary_dim > 0): a moved KEY is rotated by delta * theta_j in each 2-D pair j < rotary_dim/2,
//   theta_j = rope_base^(-2j / rotary_dim), delta = i - K[i] (or deltas[same index as keep] when the caller
//   gives them), pairs (j, j + rotary_dim/2) (rope_style 0, NEOX) or (2j, 2j+1) (rope_style 1, GPT-J):
//   (x, y) -> (x cos a - y sin a, x sin a + y cos a). Dims >= rotary_dim and values are never rotated.
//   The angle is formed and its cos/sin taken in double (delta * theta reaches 1e5 rad at long contexts,
//   where an fp32 angle is off by ~1e-2), the rotation itself in fp32, rounded to the cache dtype once.
//   Llama-3 frequency scaling (rope_scaling "llama3") is not implemented: plain theta_j only.
//   Layer l's cache is at layer_ptrs[l], its state at layer_ptrs[layers + l] (raw device addresses,
//   DeviceBuffer.address()): engines hold one tensor per layer, so one launch covers all layers.
//
// tp_kv_compact_check (validation, grid (seqs, layers), KVC_THREADS threads, no shared memory beyond
//   the barrier-OR): for row (s, l) checks every list that the row uses (kv_heads lists, or 1 when
//   shared): 0 <= K[i] < src_len[s], K[i] > K[i-1], the source table entry of K[i] within the table
//   row and the pool [0, num_blocks); the first ceil(n_s / B) destination entries within the pool and,
//   out of place, none of them one of the row's source blocks (layer 0's block does it: tables are shared).
//   Bad -> tp_reject(status, epoch). It runs as a SEPARATE launch before the move so that a rejected
//   call writes nothing at all: a check inside the move kernel could only protect its own row (the
//   move kernel's blocks of other rows may already have written, and the entry check of a row's
//   blocks would race with a same-launch rejection, leaving e.g. K moved and V not).
//
// tp_kv_compact_{f32,f16,bf16} (the move): grid (seqs * splits, 2 * kv_heads, layers), KVC_THREADS
//   threads; block (s, part, h, kv, l) moves the kv half of head h of row (s, l): chunks c = part,
//   part + splits, ... of chunk_tokens kept tokens each. Per chunk: per-token offsets to shared memory,
//   barrier; every thread loads its units of the chunk's source rows (unit_bytes = 16, 8, 4 or 2 B,
//   the widest the host found dividing the row bytes, the strides and every layer's base address; a
//   half that is not dim contiguous, i.e. legacy, moves element by element through the split-x offset
//   and the host passes unit_bytes = element bytes) and state values into shared memory (rows staged
//   in dim order either way); barrier; stores them to the destinations (rotated rows element
//   pair by pair); barrier. Tokens whose source and destination are the same slot and that are not
//   rotated are skipped.
//   IN PLACE (destination table == source table; the host then launches splits = 1): destination i <=
//   source K[i], and a destination of chunk c can only hold the source of a token of chunk c or later
//   (K[j] >= j >= the chunk's first index), so walking the chunks in order, all reads of a chunk before
//   its writes, never reads an overwritten slot: race-free with no temporary copy of the cache.
//   OUT OF PLACE (e.g. the PE-REF prefill copy into fresh blocks): the chunks run in parallel blocks, so
//   a destination block must not be a source block of the call: the check rejects one that is a source
//   block of its own row; across rows (and a block twice in one row) it is the caller's contract.
//   Entry: tp_call_rejected (the check kernel or an earlier kernel of the call rejected it) -> nothing.
//
// Shared memory (move): dynamic, chunk_tokens * (row_bytes rounded up to 16 + 32) bytes: the staged rows,
//   then per token the source and destination element offsets (2 x 8 B), the delta, a flags word, the
//   staged state value and its destination slot; chunk_tokens = max(1, 8 KiB / row bytes) (host).
//
// Cost: reads and writes each moved row once (2 * n_s * kv_heads * D * elem bytes per sequence and
//   layer, + 8 B per token-head with state), plus the kept indices and table entries; the check reads
//   every list once. Bandwidth-bound: Llama-3.1-8B (8 KV heads, D 128, bf16; 4 KiB of K+V per token and
//   layer), 4 Ki moved tokens, 32 layers: 512 MiB read and 512 MiB written (~0.3 ms at H100 HBM speed);
//   kept tokens already in place (the prefix before the first evicted token) cost 8 B of reads per token.
//   Rotation adds one double sin and cos per pair and moved key. The legacy layout moves element-wise
//   (scattered 2-4 B accesses; its V rows are B elements apart per dim). Not measured on a GPU yet.
#include "common.cuh"

#define KVC_THREADS 128

extern "C" __global__ void __launch_bounds__(KVC_THREADS)
tp_kv_compact_check(const int* __restrict__ src_tables, int src_table_stride, const int* __restrict__ dst_tables, int dst_table_stride,
                    int block_size, int num_blocks, int kv_heads, const int* __restrict__ src_len, const int* __restrict__ keep_offsets,
                    const int* __restrict__ keep, long long keep_head_stride, long long keep_layer_stride, int* status, int epoch) {
    const int s = blockIdx.x, l = blockIdx.y;
    const int k0 = keep_offsets[s], n = keep_offsets[s + 1] - k0;
    if (n == 0) return;  // uniform
    if (tp_call_rejected(status, epoch)) return;
    const int n_src = src_len[s];
    const int lists = keep_head_stride != 0 ? kv_heads : 1;
    const int* row = keep + (long long)l * keep_layer_stride + k0;
    int bad = 0;
    for (long long e = threadIdx.x; e < (long long)lists * n; e += blockDim.x) {
        const int hh = (int)(e / n), i = (int)(e % n);
        const int* list = row + (long long)hh * keep_head_stride;
        const int k = list[i];
        if (k < 0 || k >= n_src || (i > 0 && list[i - 1] >= k)) {
            bad = 1;
        } else {
            const int lb = k / block_size;
            const int p = lb < src_table_stride ? src_tables[(long long)s * src_table_stride + lb] : -1;
            bad |= p < 0 || p >= num_blocks;
        }
    }
    const int dst_blocks = (n + block_size - 1) / block_size;
    for (int j = threadIdx.x; j < dst_blocks; j += blockDim.x) {
        const int p = j < dst_table_stride ? dst_tables[(long long)s * dst_table_stride + j] : -1;
        bad |= p < 0 || p >= num_blocks;
    }
    if (l == 0 && dst_tables != src_tables) {
        // out of place the chunks run in parallel blocks: a destination block that is one of the row's own
        // source blocks would be written while other chunks still read it (tables are shared by the layers)
        const int src_blocks = (n_src + block_size - 1) / block_size;
        for (long long e = threadIdx.x; e < (long long)dst_blocks * src_blocks; e += blockDim.x) {
            const int j = (int)(e / src_blocks), i = (int)(e % src_blocks);
            if (j < dst_table_stride && i < src_table_stride &&
                dst_tables[(long long)s * dst_table_stride + j] == src_tables[(long long)s * src_table_stride + i])
                bad = 1;
        }
    }
    if (__syncthreads_or(bad) && threadIdx.x == 0) tp_reject(status, epoch);
}

__device__ __forceinline__ void kvc_store(float* p, float v) { *p = v; }
__device__ __forceinline__ void kvc_store(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void kvc_store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// Moves `units` units of U per staged row between global rows and shared rows (only flagged tokens).
template <class U>
__device__ __forceinline__ void kvc_load_units(const unsigned char* __restrict__ base, const long long* __restrict__ off, const int* __restrict__ flags,
                                               unsigned char* __restrict__ rows, int row_ld, int n, int units, int elem) {
    for (int e = threadIdx.x; e < n * units; e += blockDim.x) {
        const int t = e / units, u = e % units;
        if (flags[t] == 0) continue;
        reinterpret_cast<U*>(rows + t * row_ld)[u] = reinterpret_cast<const U*>(base + off[t] * elem)[u];
    }
}

template <class U>
__device__ __forceinline__ void kvc_store_units(unsigned char* __restrict__ base, const long long* __restrict__ off, const int* __restrict__ flags,
                                                const unsigned char* __restrict__ rows, int row_ld, int n, int units, int elem) {
    for (int e = threadIdx.x; e < n * units; e += blockDim.x) {
        const int t = e / units, u = e % units;
        if (flags[t] != 1) continue;  // 2 = rotated: written pair by pair
        reinterpret_cast<U*>(base + off[t] * elem)[u] = reinterpret_cast<const U*>(rows + t * row_ld)[u];
    }
}

// Element-wise moves for a half that is not dim contiguous: dim d of a row at off + (d / x)*chunk_stride + (d % x)*dim_stride.
template <typename T>
__device__ __forceinline__ void kvc_load_elems(const T* __restrict__ base, const long long* __restrict__ off, const int* __restrict__ flags,
                                               unsigned char* __restrict__ rows, int row_ld, int n, int head_dim, int x, long long chunk_stride,
                                               long long dim_stride) {
    for (int e = threadIdx.x; e < n * head_dim; e += blockDim.x) {
        const int t = e / head_dim, d = e % head_dim;
        if (flags[t] == 0) continue;
        reinterpret_cast<T*>(rows + t * row_ld)[d] = base[off[t] + tp_kv_dim_offset(d, x, chunk_stride, dim_stride)];
    }
}

template <typename T>
__device__ __forceinline__ void kvc_store_elems(T* __restrict__ base, const long long* __restrict__ off, const int* __restrict__ flags,
                                                const unsigned char* __restrict__ rows, int row_ld, int n, int head_dim, int x, long long chunk_stride,
                                                long long dim_stride) {
    for (int e = threadIdx.x; e < n * head_dim; e += blockDim.x) {
        const int t = e / head_dim, d = e % head_dim;
        if (flags[t] != 1) continue;  // 2 = rotated: written pair by pair
        base[off[t] + tp_kv_dim_offset(d, x, chunk_stride, dim_stride)] = reinterpret_cast<const T*>(rows + t * row_ld)[d];
    }
}

template <typename T>
__device__ void kvc_move(const long long* __restrict__ layer_ptrs, int layers, int has_state, long long kv_stride, long long block_stride,
                         long long slot_stride, long long head_stride, long long v_slot_stride, int k_x, long long k_chunk_stride,
                         long long k_dim_stride, int v_x, long long v_chunk_stride, long long v_dim_stride, int block_size, int kv_heads, int head_dim,
                         const int* __restrict__ src_tables, int src_table_stride, const int* __restrict__ dst_tables, int dst_table_stride,
                         const int* __restrict__ keep_offsets, const int* __restrict__ keep, long long keep_head_stride, long long keep_layer_stride,
                         const int* __restrict__ deltas, int splits, int chunk_tokens, int unit_bytes, int rotary_dim, float rope_base,
                         int rope_style, int* status, int epoch) {
    const int s = blockIdx.x / splits, part = blockIdx.x % splits;
    const int h = blockIdx.y >> 1, kv = blockIdx.y & 1, l = blockIdx.z;
    const int k0 = keep_offsets[s], n = keep_offsets[s + 1] - k0;
    if (part * chunk_tokens >= n) return;  // uniform
    if (tp_call_rejected(status, epoch)) return;

    const int elem = (int)sizeof(T);
    const int row_bytes = head_dim * elem;
    const int row_ld = (row_bytes + 15) / 16 * 16;
    DYNAMIC_SMEM(unsigned char, kvc_smem);
    unsigned char* rows = kvc_smem;                                                       // [chunk][row_ld]
    long long* src_off = reinterpret_cast<long long*>(kvc_smem + chunk_tokens * row_ld);  // [chunk]
    long long* dst_off = src_off + chunk_tokens;                                          // [chunk]
    int* delta = reinterpret_cast<int*>(dst_off + chunk_tokens);                          // [chunk]
    int* flags = delta + chunk_tokens;                  // [chunk]: 0 skip, 1 copy, 2 rotate (keys only)
    float* state_val = reinterpret_cast<float*>(flags + chunk_tokens);                   // [chunk]
    int* state_dst = reinterpret_cast<int*>(state_val + chunk_tokens);                   // [chunk]: dst slot p*B + slot

    T* cache = reinterpret_cast<T*>(layer_ptrs[l]) + kv * kv_stride + h * head_stride;
    float* state = has_state && kv == 0 ? reinterpret_cast<float*>(layer_ptrs[layers + l]) : nullptr;
    const long long list_at = (long long)l * keep_layer_stride + (long long)h * keep_head_stride + k0;
    const int* list = keep + list_at;
    const int* dlist = deltas != nullptr ? deltas + list_at : nullptr;
    const bool rotate = kv == 0 && rotary_dim > 0;
    const int half_rd = rotary_dim / 2;
    const int units = row_bytes / unit_bytes;
    unsigned char* base = reinterpret_cast<unsigned char*>(cache);
    const long long row_slot_stride = kv == 0 ? slot_stride : v_slot_stride;
    const int x = kv == 0 ? k_x : v_x;
    const long long chunk_stride = kv == 0 ? k_chunk_stride : v_chunk_stride, dim_stride = kv == 0 ? k_dim_stride : v_dim_stride;
    const bool contiguous = x == head_dim && dim_stride == 1;  // block-uniform: the unit copies need D contiguous elements

    for (int i0 = part * chunk_tokens; i0 < n; i0 += splits * chunk_tokens) {
        const int m = min(chunk_tokens, n - i0);
        for (int t = threadIdx.x; t < m; t += blockDim.x) {
            const int i = i0 + t, k = list[i];
            const int ps = src_tables[(long long)s * src_table_stride + k / block_size];
            const int pd = dst_tables[(long long)s * dst_table_stride + i / block_size];
            const long long so = (long long)ps * block_stride + (long long)(k % block_size) * row_slot_stride;
            const long long dof = (long long)pd * block_stride + (long long)(i % block_size) * row_slot_stride;
            const int d = dlist != nullptr ? dlist[i] : i - k;
            const bool rot = rotate && d != 0;
            src_off[t] = so;
            dst_off[t] = dof;
            delta[t] = d;
            flags[t] = rot ? 2 : (so != dof ? 1 : 0);
            if (state != nullptr && so != dof) {
                state_val[t] = state[((long long)ps * block_size + k % block_size) * kv_heads + h];
                state_dst[t] = pd * block_size + i % block_size;
            } else {
                state_dst[t] = -1;
            }
        }
        __syncthreads();
        if (!contiguous) kvc_load_elems(cache, src_off, flags, rows, row_ld, m, head_dim, x, chunk_stride, dim_stride);
        else switch (unit_bytes) {
            case 16: kvc_load_units<uint4>(base, src_off, flags, rows, row_ld, m, units, elem); break;
            case 8: kvc_load_units<uint2>(base, src_off, flags, rows, row_ld, m, units, elem); break;
            case 4: kvc_load_units<unsigned>(base, src_off, flags, rows, row_ld, m, units, elem); break;
            default: kvc_load_units<unsigned short>(base, src_off, flags, rows, row_ld, m, units, elem); break;
        }
        __syncthreads();  // every source of the chunk is read before any destination is written
        if (!contiguous) kvc_store_elems(cache, dst_off, flags, rows, row_ld, m, head_dim, x, chunk_stride, dim_stride);
        else switch (unit_bytes) {
            case 16: kvc_store_units<uint4>(base, dst_off, flags, rows, row_ld, m, units, elem); break;
            case 8: kvc_store_units<uint2>(base, dst_off, flags, rows, row_ld, m, units, elem); break;
            case 4: kvc_store_units<unsigned>(base, dst_off, flags, rows, row_ld, m, units, elem); break;
            default: kvc_store_units<unsigned short>(base, dst_off, flags, rows, row_ld, m, units, elem); break;
        }
        if (rotate) {
            // item j < half_rd: pair j; item j >= half_rd: the unrotated dim rotary_dim + (j - half_rd)
            const int items = head_dim - half_rd;
            for (int e = threadIdx.x; e < m * items; e += blockDim.x) {
                const int t = e / items, j = e % items;
                if (flags[t] != 2) continue;
                const T* src = reinterpret_cast<const T*>(rows + t * row_ld);
                T* dst = cache + dst_off[t];
                if (j >= half_rd) {
                    const int dd = rotary_dim + (j - half_rd);
                    dst[contiguous ? dd : tp_kv_dim_offset(dd, x, chunk_stride, dim_stride)] = src[dd];
                    continue;
                }
                const int ix = rope_style == 1 ? 2 * j : j;
                const int iy = rope_style == 1 ? 2 * j + 1 : j + half_rd;
                const long long ox = contiguous ? ix : tp_kv_dim_offset(ix, x, chunk_stride, dim_stride);
                const long long oy = contiguous ? iy : tp_kv_dim_offset(iy, x, chunk_stride, dim_stride);
                const double theta = pow((double)rope_base, -2.0 * (double)j / (double)rotary_dim);
                const double angle = (double)delta[t] * theta;
                const float c = (float)cos(angle), sn = (float)sin(angle);
                const float xv = tp_to_float(src[ix]), yv = tp_to_float(src[iy]);
                kvc_store(dst + ox, xv * c - yv * sn);
                kvc_store(dst + oy, xv * sn + yv * c);
            }
        }
        if (state != nullptr)
            for (int t = threadIdx.x; t < m; t += blockDim.x)
                if (state_dst[t] >= 0) state[(long long)state_dst[t] * kv_heads + h] = state_val[t];
        __syncthreads();  // the chunk is written (visible to the block) before the next chunk reads
    }
}

extern "C" __global__ void __launch_bounds__(KVC_THREADS)
tp_kv_compact_f32(const long long* __restrict__ layer_ptrs, int layers, int has_state, long long kv_stride, long long block_stride,
     long long slot_stride, long long head_stride, long long v_slot_stride, int k_x, long long k_chunk_stride, long long k_dim_stride, int v_x,
     long long v_chunk_stride, long long v_dim_stride, int block_size, int kv_heads, int head_dim, const int* __restrict__ src_tables,
     int src_table_stride, const int* __restrict__ dst_tables, int dst_table_stride, const int* __restrict__ keep_offsets,
     const int* __restrict__ keep, long long keep_head_stride, long long keep_layer_stride, const int* __restrict__ deltas, int splits,
     int chunk_tokens, int unit_bytes, int rotary_dim, float rope_base, int rope_style, int* status, int epoch) {
    kvc_move<float>(layer_ptrs, layers, has_state, kv_stride, block_stride, slot_stride, head_stride, v_slot_stride, k_x,
                  k_chunk_stride, k_dim_stride, v_x, v_chunk_stride, v_dim_stride, block_size, kv_heads, head_dim, src_tables,
                  src_table_stride, dst_tables, dst_table_stride, keep_offsets, keep, keep_head_stride, keep_layer_stride, deltas, splits,
                  chunk_tokens, unit_bytes, rotary_dim, rope_base, rope_style, status, epoch);
}

extern "C" __global__ void __launch_bounds__(KVC_THREADS)
tp_kv_compact_f16(const long long* __restrict__ layer_ptrs, int layers, int has_state, long long kv_stride, long long block_stride,
     long long slot_stride, long long head_stride, long long v_slot_stride, int k_x, long long k_chunk_stride, long long k_dim_stride, int v_x,
     long long v_chunk_stride, long long v_dim_stride, int block_size, int kv_heads, int head_dim, const int* __restrict__ src_tables,
     int src_table_stride, const int* __restrict__ dst_tables, int dst_table_stride, const int* __restrict__ keep_offsets,
     const int* __restrict__ keep, long long keep_head_stride, long long keep_layer_stride, const int* __restrict__ deltas, int splits,
     int chunk_tokens, int unit_bytes, int rotary_dim, float rope_base, int rope_style, int* status, int epoch) {
    kvc_move<__half>(layer_ptrs, layers, has_state, kv_stride, block_stride, slot_stride, head_stride, v_slot_stride, k_x,
                  k_chunk_stride, k_dim_stride, v_x, v_chunk_stride, v_dim_stride, block_size, kv_heads, head_dim, src_tables,
                  src_table_stride, dst_tables, dst_table_stride, keep_offsets, keep, keep_head_stride, keep_layer_stride, deltas, splits,
                  chunk_tokens, unit_bytes, rotary_dim, rope_base, rope_style, status, epoch);
}

extern "C" __global__ void __launch_bounds__(KVC_THREADS)
tp_kv_compact_bf16(const long long* __restrict__ layer_ptrs, int layers, int has_state, long long kv_stride, long long block_stride,
     long long slot_stride, long long head_stride, long long v_slot_stride, int k_x, long long k_chunk_stride, long long k_dim_stride, int v_x,
     long long v_chunk_stride, long long v_dim_stride, int block_size, int kv_heads, int head_dim, const int* __restrict__ src_tables,
     int src_table_stride, const int* __restrict__ dst_tables, int dst_table_stride, const int* __restrict__ keep_offsets,
     const int* __restrict__ keep, long long keep_head_stride, long long keep_layer_stride, const int* __restrict__ deltas, int splits,
     int chunk_tokens, int unit_bytes, int rotary_dim, float rope_base, int rope_style, int* status, int epoch) {
    kvc_move<__nv_bfloat16>(layer_ptrs, layers, has_state, kv_stride, block_stride, slot_stride, head_stride, v_slot_stride, k_x,
                  k_chunk_stride, k_dim_stride, v_x, v_chunk_stride, v_dim_stride, block_size, kv_heads, head_dim, src_tables,
                  src_table_stride, dst_tables, dst_table_stride, keep_offsets, keep, keep_head_stride, keep_layer_stride, deltas, splits,
                  chunk_tokens, unit_bytes, rotary_dim, rope_base, rope_style, status, epoch);
}
