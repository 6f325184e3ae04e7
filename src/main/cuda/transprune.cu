// transprune.cu — TransPrune (methods-vision.md §6): Token Transition Variation (TTV),
// Instruction-Guided Attention (IGA), the combined score and the re-indexing after a pruning stage.
//
// The batch: B sequences packed row after row. A per-sequence descriptor `seq` (5 ints per
// sequence, TPR_SEQ_*) gives row_offset (first packed row), length L, image_start s, image_count n
// and image_offset (sum of the image counts of the earlier sequences: where the sequence's image
// tokens sit in every per-image-token array: TTV partials, the accumulated TTV vector A, scores).
// Text after the image = positions [s + n, L).
//
// Kernels, in the order a request runs them:
//
//   tp_ttv_{f32,f16,bf16}   once per sub-block (attention, MLP) of an accumulating layer. ONE pass
//       over u (block input after RMSNorm) and v (block output before the residual add): per token
//       t, |u|^2, |v|^2 and u.v in fp32, then
//         m_t = |v_t| / |u_t|                                   (no epsilon, §6.1)
//         e_t = exp(1 - cos(u_t, v_t)),  cos = u.v / (max(|u|, 1e-8) * max(|v|, 1e-8))
//       (PyTorch's current cosine_similarity: each norm clamped to eps separately; the older
//       documented max(|u| |v|, eps) differs only for norms below 1e-8.) Writes
//         me[image_offset + t - s] = m_t e_t          for the image tokens only,
//         z_partial[b * chunks_max + chunk] = sum of e_t over the block's rows (ALL tokens).
//       The normaliser Z_b = sum over chunks is reduced later, in a fixed order, by the select
//       kernel: deterministic, no float atomics, no second pass over u or v, no copies.
//       Rejects (status) non-finite u/v and a zero u row (m undefined).
//
//   tp_iga_{f32,f16,bf16}   at a pruning point, on the NEXT layer's queries and keys (RoPE already
//       applied with the pre-pruning positions). For text query rows p in [s + n, L) and head h:
//       softmax over keys 0..p (causal) of q_p . k_j * scale, scale = 1/sqrt(dh); the probabilities
//       of the image columns j in [s, s + n) are summed over the block's query rows and written to
//         partial[((h * tiles_max + tile) * image_total) + image_offset + j - s].
//       Never the full attention matrix: pass 1 streams key tiles for the row max and sum (online
//       softmax), pass 2 recomputes the logits of the image keys only (bit-identical to pass 1)
//       and writes probabilities. GQA: query head h reads kv head h / (heads / kv_heads).
//
//   tp_transprune_select    one block per sequence, the whole decision: Z of every pending
//       sub-block from its partials, A_j += sum over pending sub-blocks of me_j / Z (fp32, in place),
//       IGA_j = sum of the partials / (heads * T), score_j = w_ttv A_j / (sum A + 1e-8) +
//       w_iga IGA_j / (sum IGA + 1e-8) (a non-finite score rejects the request); then the top-k of
//       the scores (common.cuh's block radix select: larger first, ties to the lower index, kept
//       ascending); then the re-indexing of §6.3 — A_next[j] = A[kept[j]] — and the caller's
//       outputs: kept image indices (local, ascending) and the row gather list of the pruned batch
//       (packed row indices of prefix, kept image tokens, suffix).
//
// Status convention (maxmin_select.cu), with one epoch per request: every kernel of the request
// uses the same epoch, so a rejection at any point withholds every later output of the request.
// Producers (ttv, iga, select) tp_reject(status, epoch) on bad input; select writes nothing when
// the request was rejected.
//
// Grid / block mapping
//   ttv:    grid (chunks_max = ceil(max L / 4), B), 128 threads; warp w takes row 4 * chunk + w,
//           lanes stride over d (16-byte vectors when both rows are 16-byte aligned and d fits).
//   iga:    grid (tiles_max = ceil(max T / 16), heads, B), 128 threads; 16 query rows per block,
//           warp w owns rows 4w .. 4w+3, lane c owns key c of each 32-key tile.
//   select: grid B, 256 threads, lanes stride over the sequence's image tokens.
//
// Shared memory
//   ttv:    4 floats. iga: dynamic (16 dh + 33 dh) * 4 bytes (Q tile, transposed K tile padded
//           to 33 columns: conflict-free stores and loads) + 512 bytes static; dh = 128: 25 KiB.
//   select: dynamic 4 * pending bytes (Z of each pending sub-block) + 1.4 KiB static (reduction,
//           radix histogram, scan scratch).
//
// Assumptions: row strides >= d (any alignment; 16-byte alignment only enables vector loads);
//   every sequence has >= 1 image token; IGA needs >= 1 text token after the image (host-checked).
//
// Cost (LLaVA-1.5-7B, L ~ 640, d = 4096 fp16, 32 heads x 128, T ~ 40 text rows, N = 576)
//   ttv:   reads u and v once: 2 L d elements (10.5 MB), 6 L d FLOPs; ~4 us at HBM bandwidth.
//   iga:   per head and 16-row tile, pass 1 reads (p_max + 1) dh keys and pass 2 n dh keys
//          (L2-resident after the first tile): ~H ceil(T/16) (L + n) dh elements from L2;
//          2 H T (L + n) dh FLOPs (~0.4 GFLOP). Writes H ceil(T/16) N floats.
//   select: reads pending * (N + L/4) + H ceil(T/16) N floats per sequence, the N scores once per
//          radix pass (1-4, L1/L2-resident), writes 2 N floats and k + L' ints.
//   Launches: one per sub-block (ttv); per pruning stage iga + select = 2 (1 in TTV-only mode);
//   no memsets, no host synchronisation. The pending TTV terms wait in per-sub-block slots until
//   the stage's select kernel folds them (at most 6 with the default schedule), so ttv never
//   reads A and the re-indexing costs no launch of its own.
//   Not measured on a GPU yet. iga runs on CUDA cores; its inner loop is shared-memory bound
//   (5 loads per 4 FMAs) over ~H ceil(T/16) = 96 blocks: expect ~10 us at this size, small next to
//   the Q/K projections the caller runs for it; tensor cores (wmma) are the next step if it shows.
#include "common.cuh"

#define TPR_SEQ_FIELDS 5
#define TPR_SEQ_ROW_OFFSET 0
#define TPR_SEQ_LENGTH 1
#define TPR_SEQ_IMAGE_START 2
#define TPR_SEQ_IMAGE_COUNT 3
#define TPR_SEQ_IMAGE_OFFSET 4

struct TprSeq {
    int row_offset, length, image_start, image_count, image_offset;
};

__device__ __forceinline__ TprSeq tpr_seq(const int* __restrict__ seq, int b) {
    const int* p = seq + b * TPR_SEQ_FIELDS;
    TprSeq s;
    s.row_offset = p[TPR_SEQ_ROW_OFFSET];
    s.length = p[TPR_SEQ_LENGTH];
    s.image_start = p[TPR_SEQ_IMAGE_START];
    s.image_count = p[TPR_SEQ_IMAGE_COUNT];
    s.image_offset = p[TPR_SEQ_IMAGE_OFFSET];
    return s;
}

// ---------------------------------------------------------------------------------------------
// TTV
// ---------------------------------------------------------------------------------------------
#define TPR_TTV_WARPS 4  // rows per block (one per warp); the launcher's ROWS_PER_BLOCK
#define TPR_TTV_THREADS (TPR_TTV_WARPS * TP_WARP)
#define TPR_COS_EPS 1e-8f

__device__ __forceinline__ void tpr_ttv_accumulate(float a, float b, float& uu, float& vv, float& uv, bool& bad) {
    bad |= tp_is_nonfinite(a) | tp_is_nonfinite(b);
    uu = fmaf(a, a, uu);
    vv = fmaf(b, b, vv);
    uv = fmaf(a, b, uv);
}

// One row pair, lane-strided: the three fp32 sums of this lane (not yet reduced over the warp).
template <typename T>
__device__ __forceinline__ void tpr_ttv_row(const T* __restrict__ ur, const T* __restrict__ vr, int d, bool vec16, int lane,
                                            float& uu, float& vv, float& uv, bool& bad) {
    constexpr int PER_VEC = 16 / (int)sizeof(T);
    if (vec16) {
        const uint4* up = reinterpret_cast<const uint4*>(ur);
        const uint4* vp = reinterpret_cast<const uint4*>(vr);
        const int vecs = d / PER_VEC;
        for (int c = lane; c < vecs; c += TP_WARP) {
            const uint4 a = up[c], b = vp[c];
            const T* ea = reinterpret_cast<const T*>(&a);
            const T* eb = reinterpret_cast<const T*>(&b);
#pragma unroll
            for (int i = 0; i < PER_VEC; ++i) tpr_ttv_accumulate(tp_to_float(ea[i]), tp_to_float(eb[i]), uu, vv, uv, bad);
        }
    } else {
        for (int i = lane; i < d; i += TP_WARP) tpr_ttv_accumulate(tp_to_float(ur[i]), tp_to_float(vr[i]), uu, vv, uv, bad);
    }
}

template <typename T>
__device__ void tpr_ttv(const T* __restrict__ u, long long u_stride, const T* __restrict__ v, long long v_stride, int d,
                        const int* __restrict__ seq, int chunks_max, float* __restrict__ me, float* __restrict__ z_partial,
                        int* status, int epoch) {
    __shared__ float e_part[TPR_TTV_WARPS];
    const int b = blockIdx.y, chunk = blockIdx.x;
    const TprSeq s = tpr_seq(seq, b);
    if (chunk * TPR_TTV_WARPS >= s.length) return;  // uniform per block
    const int lane = threadIdx.x % TP_WARP, warp = threadIdx.x / TP_WARP;
    const int t = chunk * TPR_TTV_WARPS + warp;

    float e = 0.0f;
    bool bad = false;
    if (t < s.length) {  // uniform per warp
        const long long row = (long long)s.row_offset + t;
        const T* ur = u + row * u_stride;
        const T* vr = v + row * v_stride;
        constexpr int PER_VEC = 16 / (int)sizeof(T);
        const bool vec16 = reinterpret_cast<uintptr_t>(ur) % 16 == 0 && reinterpret_cast<uintptr_t>(vr) % 16 == 0 && d % PER_VEC == 0;
        float uu = 0.0f, vv = 0.0f, uv = 0.0f;
        tpr_ttv_row(ur, vr, d, vec16, lane, uu, vv, uv, bad);
        uu = tp_warp_sum(uu);
        vv = tp_warp_sum(vv);
        uv = tp_warp_sum(uv);
        const float nu = sqrtf(uu), nv = sqrtf(vv);
        const float cosine = uv / (fmaxf(nu, TPR_COS_EPS) * fmaxf(nv, TPR_COS_EPS));
        e = expf(1.0f - cosine);
        if (uu == 0.0f) bad = true;  // m = |v| / |u| has no epsilon in the spec: a zero u is rejected
        const int j = t - s.image_start;
        if (lane == 0 && j >= 0 && j < s.image_count) me[s.image_offset + j] = (nv / nu) * e;
    }
    if (bad) tp_reject(status, epoch);
    if (lane == 0) e_part[warp] = e;
    __syncthreads();
    if (threadIdx.x == 0) {
        float z = 0.0f;
#pragma unroll
        for (int w = 0; w < TPR_TTV_WARPS; ++w) z += e_part[w];
        z_partial[b * chunks_max + chunk] = z;
    }
}

extern "C" __global__ void __launch_bounds__(TPR_TTV_THREADS)
tp_ttv_f32(const float* __restrict__ u, long long u_stride, const float* __restrict__ v, long long v_stride, int d,
           const int* __restrict__ seq, int chunks_max, float* __restrict__ me, float* __restrict__ z_partial, int* status, int epoch) {
    tpr_ttv(u, u_stride, v, v_stride, d, seq, chunks_max, me, z_partial, status, epoch);
}

extern "C" __global__ void __launch_bounds__(TPR_TTV_THREADS)
tp_ttv_f16(const __half* __restrict__ u, long long u_stride, const __half* __restrict__ v, long long v_stride, int d,
           const int* __restrict__ seq, int chunks_max, float* __restrict__ me, float* __restrict__ z_partial, int* status, int epoch) {
    tpr_ttv(u, u_stride, v, v_stride, d, seq, chunks_max, me, z_partial, status, epoch);
}

extern "C" __global__ void __launch_bounds__(TPR_TTV_THREADS)
tp_ttv_bf16(const __nv_bfloat16* __restrict__ u, long long u_stride, const __nv_bfloat16* __restrict__ v, long long v_stride, int d,
            const int* __restrict__ seq, int chunks_max, float* __restrict__ me, float* __restrict__ z_partial, int* status, int epoch) {
    tpr_ttv(u, u_stride, v, v_stride, d, seq, chunks_max, me, z_partial, status, epoch);
}

// ---------------------------------------------------------------------------------------------
// IGA
// ---------------------------------------------------------------------------------------------
#define TPR_IGA_WARPS 4
#define TPR_IGA_THREADS (TPR_IGA_WARPS * TP_WARP)
#define TPR_IGA_ROWS_PER_WARP 4
#define TPR_IGA_QT (TPR_IGA_WARPS * TPR_IGA_ROWS_PER_WARP)  // query rows per block (16): the launcher's ROWS_PER_BLOCK
#define TPR_IGA_KT TP_WARP                                  // keys per tile: one per lane
#define TPR_IGA_KLD (TPR_IGA_KT + 1)                        // padded K-tile row: conflict-free transposed stores

// Stages keys [k0, k0 + 32) of kv head `kvh` (those <= last_key; zero beyond) into ks[i][c], as floats.
template <typename T>
__device__ __forceinline__ void tpr_iga_stage_keys(const T* __restrict__ k, long long k_token_stride, long long k_head_stride, int kvh,
                                                   int head_dim, long long row_offset, int k0, int last_key, float* ks, bool& bad) {
    for (int e = threadIdx.x; e < TPR_IGA_KT * head_dim; e += blockDim.x) {
        const int c = e / head_dim, i = e % head_dim;  // consecutive threads: consecutive features of one key row
        const int key = k0 + c;
        float val = 0.0f;
        if (key <= last_key) {
            val = tp_to_float(k[(row_offset + key) * k_token_stride + (long long)kvh * k_head_stride + i]);
            bad |= tp_is_nonfinite(val);
        }
        ks[i * TPR_IGA_KLD + c] = val;
    }
}

// The 4 raw dot products q_r . k_c of this thread's rows (4 warp + j) and its key (lane).
__device__ __forceinline__ void tpr_iga_dots(const float* qs, const float* ks, int head_dim, float dots[TPR_IGA_ROWS_PER_WARP]) {
    const int lane = threadIdx.x % TP_WARP, warp = threadIdx.x / TP_WARP;
    const float* q0 = qs + (warp * TPR_IGA_ROWS_PER_WARP) * head_dim;
#pragma unroll
    for (int j = 0; j < TPR_IGA_ROWS_PER_WARP; ++j) dots[j] = 0.0f;
    for (int i = 0; i < head_dim; ++i) {
        const float kv = ks[i * TPR_IGA_KLD + lane];
#pragma unroll
        for (int j = 0; j < TPR_IGA_ROWS_PER_WARP; ++j) dots[j] = fmaf(q0[j * head_dim + i], kv, dots[j]);  // q: broadcast
    }
}

template <typename T>
__device__ void tpr_iga(const T* __restrict__ q, long long q_token_stride, long long q_head_stride,
                        const T* __restrict__ k, long long k_token_stride, long long k_head_stride,
                        int heads, int kv_heads, int head_dim, float scale,
                        const int* __restrict__ seq, int tiles_max, int image_total, float* __restrict__ partial,
                        int* status, int epoch) {
    __shared__ float colsum[TPR_IGA_WARPS][TPR_IGA_KT];
    DYNAMIC_SMEM(float, smem);
    float* qs = smem;                          // [QT][head_dim]
    float* ks = smem + TPR_IGA_QT * head_dim;  // [head_dim][KLD]

    const int tile = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const TprSeq s = tpr_seq(seq, b);
    const int text_start = s.image_start + s.image_count;
    const int text_rows = s.length - text_start;
    const int row0 = tile * TPR_IGA_QT;  // first text row of this block
    if (row0 >= text_rows) return;       // uniform per block
    const int rows = min(TPR_IGA_QT, text_rows - row0);
    const int kvh = h / (heads / kv_heads);
    const int lane = threadIdx.x % TP_WARP, warp = threadIdx.x / TP_WARP;
    bool bad = false;

    for (int e = threadIdx.x; e < TPR_IGA_QT * head_dim; e += blockDim.x) {
        const int r = e / head_dim, i = e % head_dim;
        float val = 0.0f;
        if (r < rows) {
            val = tp_to_float(q[((long long)s.row_offset + text_start + row0 + r) * q_token_stride + (long long)h * q_head_stride + i]);
            bad |= tp_is_nonfinite(val);
        }
        qs[e] = val;
    }

    int pos[TPR_IGA_ROWS_PER_WARP];  // this warp's rows' positions in the sequence; -1: no such row
    float m[TPR_IGA_ROWS_PER_WARP], z[TPR_IGA_ROWS_PER_WARP];
#pragma unroll
    for (int j = 0; j < TPR_IGA_ROWS_PER_WARP; ++j) {
        const int r = warp * TPR_IGA_ROWS_PER_WARP + j;
        pos[j] = r < rows ? text_start + row0 + r : -1;
        m[j] = -INFINITY;
        z[j] = 0.0f;
    }
    const int last_key = text_start + row0 + rows - 1;  // the block's last query sees keys 0 .. last_key

    // Pass 1: row max and sum of exp over all visible keys (online softmax over 32-key tiles).
    for (int k0 = 0; k0 <= last_key; k0 += TPR_IGA_KT) {
        __syncthreads();  // previous tile consumed (and, the first time, qs complete)
        tpr_iga_stage_keys(k, k_token_stride, k_head_stride, kvh, head_dim, s.row_offset, k0, last_key, ks, bad);
        __syncthreads();
        float dots[TPR_IGA_ROWS_PER_WARP];
        tpr_iga_dots(qs, ks, head_dim, dots);
        const int key = k0 + lane;
#pragma unroll
        for (int j = 0; j < TPR_IGA_ROWS_PER_WARP; ++j) {
            const float logit = key <= pos[j] ? __fmul_rn(dots[j], scale) : -INFINITY;  // causal mask; pos -1 masks all
            const float tile_max = tp_warp_max(logit);
            const float new_m = fmaxf(m[j], tile_max);
            if (new_m == -INFINITY) continue;  // uniform per warp: nothing visible yet (absent row)
            const float ex = logit == -INFINITY ? 0.0f : expf(logit - new_m);
            const float tile_sum = tp_warp_sum(ex);
            z[j] = (m[j] == -INFINITY ? 0.0f : z[j] * expf(m[j] - new_m)) + tile_sum;
            m[j] = new_m;
        }
    }

    // Pass 2: probabilities of the image columns (all visible to every text row), summed over the
    // block's rows in a fixed order: the 4 rows of each warp, then the 4 warps.
    float* out = partial + ((long long)h * tiles_max + tile) * image_total + s.image_offset;
    const int image_end = s.image_start + s.image_count;
    for (int k0 = s.image_start; k0 < image_end; k0 += TPR_IGA_KT) {
        __syncthreads();  // ks and colsum of the previous tile consumed
        tpr_iga_stage_keys(k, k_token_stride, k_head_stride, kvh, head_dim, s.row_offset, k0, image_end - 1, ks, bad);
        __syncthreads();
        float dots[TPR_IGA_ROWS_PER_WARP];
        tpr_iga_dots(qs, ks, head_dim, dots);
        float p = 0.0f;
#pragma unroll
        for (int j = 0; j < TPR_IGA_ROWS_PER_WARP; ++j)
            if (pos[j] >= 0) p += expf(__fmul_rn(dots[j], scale) - m[j]) / z[j];  // _rn: no FMA contraction, the logit of pass 1
        colsum[warp][lane] = p;
        __syncthreads();
        if (warp == 0 && k0 + lane < image_end) {
            float c = 0.0f;
#pragma unroll
            for (int w = 0; w < TPR_IGA_WARPS; ++w) c += colsum[w][lane];
            out[k0 + lane - s.image_start] = c;
        }
    }
    if (bad) tp_reject(status, epoch);
}

extern "C" __global__ void __launch_bounds__(TPR_IGA_THREADS)
tp_iga_f32(const float* __restrict__ q, long long q_token_stride, long long q_head_stride, const float* __restrict__ k,
           long long k_token_stride, long long k_head_stride, int heads, int kv_heads, int head_dim, float scale,
           const int* __restrict__ seq, int tiles_max, int image_total, float* __restrict__ partial, int* status, int epoch) {
    tpr_iga(q, q_token_stride, q_head_stride, k, k_token_stride, k_head_stride, heads, kv_heads, head_dim, scale, seq, tiles_max,
            image_total, partial, status, epoch);
}

extern "C" __global__ void __launch_bounds__(TPR_IGA_THREADS)
tp_iga_f16(const __half* __restrict__ q, long long q_token_stride, long long q_head_stride, const __half* __restrict__ k,
           long long k_token_stride, long long k_head_stride, int heads, int kv_heads, int head_dim, float scale,
           const int* __restrict__ seq, int tiles_max, int image_total, float* __restrict__ partial, int* status, int epoch) {
    tpr_iga(q, q_token_stride, q_head_stride, k, k_token_stride, k_head_stride, heads, kv_heads, head_dim, scale, seq, tiles_max,
            image_total, partial, status, epoch);
}

extern "C" __global__ void __launch_bounds__(TPR_IGA_THREADS)
tp_iga_bf16(const __nv_bfloat16* __restrict__ q, long long q_token_stride, long long q_head_stride, const __nv_bfloat16* __restrict__ k,
            long long k_token_stride, long long k_head_stride, int heads, int kv_heads, int head_dim, float scale,
            const int* __restrict__ seq, int tiles_max, int image_total, float* __restrict__ partial, int* status, int epoch) {
    tpr_iga(q, q_token_stride, q_head_stride, k, k_token_stride, k_head_stride, heads, kv_heads, head_dim, scale, seq, tiles_max,
            image_total, partial, status, epoch);
}

// ---------------------------------------------------------------------------------------------
// Select: one block per sequence does the whole pruning decision after IGA, so a stage is two
// launches (IGA, select) and one in TTV-only mode:
//   1. score: fold the pending TTV sub-blocks into A (in place), reduce the IGA partials in a
//      fixed order, normalise both, combine with the weights -> scores (kept for inspection);
//   2. top-k of the scores (larger first, ties to the lower index) with the shared block radix
//      select, compacted ascending into kept;
//   3. finish: re-index A to the survivors (TP-4) and write the caller's outputs (kept image
//      indices, the row gather list of the pruned batch).
// ---------------------------------------------------------------------------------------------
#define TPR_SELECT_THREADS 256
#define TPR_NORM_EPS 1e-8f

extern "C" __global__ void __launch_bounds__(TPR_SELECT_THREADS)
tp_transprune_select(const int* __restrict__ seq, const float* __restrict__ me, int me_stride, const float* __restrict__ z_partial,
                     int z_stride, int chunks_max, int pending, float* __restrict__ acc, int acc_valid,
                     const float* __restrict__ iga_partial, int heads, int tiles_max, int image_total, float w_ttv, float w_iga,
                     float* __restrict__ scores, const int* __restrict__ keep_offsets, int* __restrict__ kept,
                     float* __restrict__ acc_out, int* __restrict__ kept_out, int* __restrict__ row_gather_out,
                     int* status, int epoch) {
    __shared__ float red[TP_WARP];
    __shared__ int hist[256];
    __shared__ int bcast[3];
    __shared__ int scan_scratch[TP_WARP];
    __shared__ int scan_total;
    DYNAMIC_SMEM(float, zs);  // [pending]
    if (tp_call_rejected(status, epoch)) return;  // the request was rejected: write nothing

    const int b = blockIdx.x;
    const TprSeq s = tpr_seq(seq, b);
    const int n = s.image_count;
    const int chunks = (s.length + TPR_TTV_WARPS - 1) / TPR_TTV_WARPS;

    // 1. Z of every pending sub-block: the fixed-order sum of its chunk partials (deterministic).
    for (int p = 0; p < pending; ++p) {
        const float* zp = z_partial + (long long)p * z_stride + (long long)b * chunks_max;
        float part = 0.0f;
        for (int c = threadIdx.x; c < chunks; c += blockDim.x) part += zp[c];
        const float zsum = tp_block_sum(part, red);
        if (threadIdx.x == 0) zs[p] = zsum;  // stored as Z; divided below (tau = me / Z, as the reference)
    }
    __syncthreads();

    const int text_rows = s.length - s.image_start - n;
    const int tiles = (text_rows + TPR_IGA_QT - 1) / TPR_IGA_QT;
    float* a_row = acc + s.image_offset;
    float* out = scores + s.image_offset;
    float sum_a = 0.0f, sum_g = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        float a = acc_valid ? a_row[j] : 0.0f;
        for (int p = 0; p < pending; ++p) a += me[(long long)p * me_stride + s.image_offset + j] / zs[p];
        a_row[j] = a;
        float g = 0.0f;
        if (iga_partial != nullptr) {
            for (int h = 0; h < heads; ++h)
                for (int t = 0; t < tiles; ++t) g += iga_partial[((long long)h * tiles_max + t) * image_total + s.image_offset + j];
            g /= (float)heads * (float)text_rows;  // mean over heads and text query rows
        }
        out[j] = g;  // parked here until the sums are known; read back by this same thread
        sum_a += a;
        sum_g += g;
    }
    sum_a = tp_block_sum(sum_a, red);
    sum_g = tp_block_sum(sum_g, red);

    bool bad = false;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        float score = w_ttv * (a_row[j] / (sum_a + TPR_NORM_EPS));
        if (iga_partial != nullptr) score += w_iga * (out[j] / (sum_g + TPR_NORM_EPS));
        bad |= tp_is_nonfinite(score);
        out[j] = score;
    }
    // Block-uniform: other blocks may reject too, but each decides for itself on its own scores,
    // and the barrier also publishes every thread's scores (and a_row) to the whole block.
    if (__syncthreads_or(bad)) {
        if (threadIdx.x == 0) tp_reject(status, epoch);
        return;
    }

    // 2. top-k, ascending into kept[ko ..]
    const int ko = keep_offsets[b];
    const int k = keep_offsets[b + 1] - ko;
    const TpTopkCut cut = tp_block_topk_cut(out, n, k, hist, bcast);
    tp_block_topk_compact(out, n, cut, kept + ko, nullptr, scan_scratch, &scan_total);
    __syncthreads();  // kept[] is read below by threads other than its writers

    // 3. re-index A to the survivors and write the caller's outputs
    for (int i = threadIdx.x; i < k; i += blockDim.x) {
        const int idx = kept[ko + i];
        acc_out[ko + i] = a_row[idx];  // §6.3 re-indexing (TP-4)
        if (kept_out != nullptr) kept_out[ko + i] = idx;
    }
    if (row_gather_out == nullptr) return;
    // rows removed before this sequence = image tokens dropped by the earlier sequences
    int* rows = row_gather_out + (s.row_offset - s.image_offset + ko);
    const int text_start = s.image_start + s.image_count;
    for (int p = threadIdx.x; p < s.image_start; p += blockDim.x) rows[p] = s.row_offset + p;
    for (int i = threadIdx.x; i < k; i += blockDim.x) rows[s.image_start + i] = s.row_offset + s.image_start + kept[ko + i];
    for (int i = threadIdx.x; i < text_rows; i += blockDim.x) rows[s.image_start + k + i] = s.row_offset + text_start + i;
}
