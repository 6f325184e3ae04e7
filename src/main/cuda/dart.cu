// dart.cu — DART (duplication-aware reduction of tokens): pivots by key L1 norm, each pivot
// recruits the image tokens least similar to it. Three launches for a whole batch, no host sync.
//
// What it computes (methods-vision.md §4.3), for every sequence b of the batch
//   a_j     = sum_f |K_j[f]|, the L1 norm of token j's post-RoPE key of layer K-1 (all heads
//             concatenated), fp32 accumulation.
//   pivots  = the p_img image tokens [s, s+L) with the largest a_j, then the p_txt text tokens
//             [s+L, seq_len) with the largest a_j; each group in "topk order" (larger a first, ties
//             to the lower index). Positions are token positions within the sequence.
//   order   = the pivots in ascending position (official_order == 0), or in the iteration order of a
//             CPython set built from the topk-ordered list (official_order != 0, §4.4), emulated here.
//   pool    = image tokens minus image pivots. For each pivot p in `order`: c_v = cos(h_p, h_v) for v
//             in the pool, h = the hidden states ("last_layer_state"), PyTorch's cosine_similarity:
//             dot / (max(|h_p|, 1e-8) * max(|h_v|, 1e-8)); the token_topk pool tokens with the
//             smallest c_v (ties to the lower index) are recruited and leave the pool.
//   kept    = image pivots + all recruits: R = p_img + (p_img + p_txt) * token_topk image tokens.
//   Outputs (kept_image required, the others may be nullptr):
//     kept_image[R b ..]        kept image tokens ascending, local to the image block (0 .. L-1);
//     recruited_by[R b ..]      for each of them, the position of the pivot that recruited it, -1
//                               for an image pivot;
//     keep_list[keep_base ..]   [0, s) + (s + kept) + [s+L, seq_len): positions within the sequence,
//                               ascending; position_ids (int64) the same values (DART keeps the
//                               original positions, gaps included, for RoPE);
//     pivot_order[P b ..]       the pivots' positions in processing order.
//
// Per-sequence record seq_info[8 b + i] (uploaded once per shape by the host):
//   0 first_row: row of the sequence's token 0 in keys and hidden;  1 seq_len;  2 image_start s;
//   3 image_len L;  4 image_base = sum of L over earlier sequences;  5 keep_base = sum of earlier
//   keep-list lengths;  6, 7 unused.
//
// The three kernels
//   tp_dart_key_l1_<dtype>   grid (ceil(max(seq_len - s) / 8), B), 256 threads: one warp per token of
//       [s, seq_len), 16-byte loads when rows are aligned; writes key_l1[first_row + j]. Checks every
//       key it reads for NaN/Inf. Bytes: (seq_len - s) * dk * elt read, 4 per token written.
//   tp_dart_cosine_<dtype>   grid (ceil(max L / 32), B), 256 threads = 8 warps, 32 candidate tokens
//       per block (lane = token). Warp 0 first finds the pivots from key_l1 (p rounds of a warp
//       arg-max, each round taking the best token ranked after the previous winner: no scratch, no
//       barrier) while warps 1..7 check this block's share of the text tokens' hidden rows for
//       NaN/Inf (the text rows are otherwise read only for the pivots). Then, per group of 8 pivots,
//       the K dimension in chunks of 256 features: warp w stages pivot w's chunk in shared memory
//       (fp32), each warp multiplies features [32 w, 32 w + 32) of the chunk of its 32 tokens (held
//       in registers) with all 8 pivots (broadcast shared reads, 4 FMAs per shared load), squared
//       norms on the fly; the 8 warps' partial dots are summed in a fixed order (deterministic).
//       Writes cos[P image_base + p L + j] for every pivot row p (topk order) and image token j; block
//       x = 0 writes the pivots. Bytes: L * dh * elt read once (the candidates; pivots from L2),
//       4 P L written. FLOPs: 2 P L dh (one 8-pivot pass when P <= 8; each further group of 8
//       re-reads the candidates, from L2). A block that finds the call rejected on entry (decided
//       block-wide: this launch's own blocks may be setting it) does nothing.
//   tp_dart_select           grid B, one block per sequence, threads = L rounded up to a warp (<= 1024,
//       so one compaction chunk up to L = 1024). On chip: the pool flags (one byte per token: 0 in the
//       pool, 1 image pivot, 2 + r recruited in round r) and one float per token (the round's scores).
//       Thread 0 computes the processing order (sorting <= 32 positions, or the CPython table of <= 128
//       slots); then per pivot: scores = -cos (pool) / -3e38 (taken), tp_block_topk_cut (common.cuh)
//       finds the token_topk best exactly, one ordered scan resolves ties at the cut to the lowest
//       indices, the owners flag their recruits. Finally one ascending compaction writes the outputs.
//       Bytes: 4 P L read (cos rows, L2), 4 R + 4 (seq_len - L + R) (+ 8 per position id) written.
//
// Why three launches and this split (LLaVA-1.5: L = 576, ~60 text tokens, dk = dh = 4096, fp16,
// P = 8; the times are estimates for an H100 [derived], not measurements: no GPU run yet)
//   * The norms need every key row once (4.9 MB, ~2 us of HBM time): a grid-wide pass, and the
//     pivots need all of them, hence a launch boundary before the cosines. Fusing it into layer
//     K-1's K-projection epilogue would save it, but that kernel is not ours.
//   * The cosine matrix is a P x L x dh skinny product: 8 x 576 x 4096 = 18.9M MACs and 4.7 MB of
//     hidden rows. In one block per sequence that is ~80 us of FMA issue on one SM (18.9M / 128 lanes)
//     and ~25 us to stream 4.7 MB through one SM; over 18 blocks it is ~1M MACs (~4.5 us of FMA
//     issue) per block and the reads spread over 18 SMs (more blocks for a batch). Each block
//     re-derives the pivots from the 2.3 KB of norms (~1 us, overlapped with the text-row check),
//     which is cheaper than a fourth launch. 80 registers, 17.2 KiB static shared memory.
//   * The recruit rounds are inherently sequential (each pivot removes its recruits from the pool),
//     so they run in one block per sequence with the pool on chip: per pivot an exact radix top-k
//     (<= 4 passes of 3 barriers, 4L bytes of shared reads each) and one ordered scan (3 barriers per
//     1024 tokens): ~130 barriers for P = 8, ~10 us, independent of TOKEN_TOPK. The official code
//     spends ~100 kernels and one host sync per recruited token (130 to 320) here.
//
// Assumptions: 1 <= p_img, 0 <= p_txt, p_img + p_txt <= DART_MAX_PIVOTS, token_topk >= 0, p_img <= L,
//   p_txt <= seq_len - s - L, L - p_img >= (p_img + p_txt) * token_topk (the host checks all of these);
//   dynamic shared memory of tp_dart_select: 5 * max L bytes (rounded up to 4).
//
// Status convention (maxmin_select.cu): the first two kernels tp_reject(status, epoch) on a NaN/Inf
//   in the keys or hidden rows of tokens [s, seq_len) (the prefix [0, s) is never read), and on
//   finite values so large that a key's L1 norm or a hidden row's squared norm overflows fp32 (the
//   scores would be meaningless); the cosine kernel skips its work and tp_dart_select writes
//   nothing when the call was rejected. Every score tp_dart_select ranks is then finite.
#include "common.cuh"

#define DART_MAX_PIVOTS 32
#define DART_SET_TABLE 128  // CPython's table for <= 32 distinct keys never exceeds 128 slots
#define DART_THREADS 256
#define DART_WARPS (DART_THREADS / TP_WARP)
#define DART_TILE 32   // candidate tokens per cosine block: one per lane
#define DART_GROUP 8   // pivots per pass of the cosine block: one per warp when staging
#define DART_KC 256    // features per K chunk: 32 per warp
#define DART_INFO 8    // ints per sequence in seq_info
#define DART_EPS 1e-8f // PyTorch cosine_similarity's default eps, applied to each norm
#define DART_TAKEN (-3.0e38f)  // the score of a token that left the pool: below every -cos, finite

struct DartSeq {
    int first_row, seq_len, start, len, image_base, keep_base;
};

__device__ __forceinline__ DartSeq dart_seq(const int* __restrict__ seq_info, int b) {
    const int* p = seq_info + DART_INFO * b;
    DartSeq s;
    s.first_row = p[0];
    s.seq_len = p[1];
    s.start = p[2];
    s.len = p[3];
    s.image_base = p[4];
    s.keep_base = p[5];
    return s;
}

// ---------------------------------------------------------------------------------------------
// Loads. A row is read in pieces of 16 bytes (4 floats or 8 halves) when every row starts 16-byte
// aligned and d is a multiple of the piece; otherwise element by element.
// ---------------------------------------------------------------------------------------------
template <typename T>
struct DartPiece {
    static constexpr int N = 16 / (int)sizeof(T);
};

template <typename T>
__device__ __forceinline__ bool dart_vec16(const T* base, long long row_stride, int d) {
    constexpr int N = DartPiece<T>::N;
    return reinterpret_cast<uintptr_t>(base) % 16 == 0 && row_stride % N == 0 && d % N == 0;
}

// Features [f, f + n) of a row as floats, zeros past d. n is a multiple of the piece size, f too
// when vec16.
template <typename T, int n>
__device__ __forceinline__ void dart_load(const T* __restrict__ row, int f, int d, bool vec16, float* out) {
    constexpr int N = DartPiece<T>::N;
    if (vec16) {
#pragma unroll
        for (int q = 0; q < n / N; ++q) {
            if (f + q * N < d) {
                const uint4 v = *reinterpret_cast<const uint4*>(row + f + q * N);
                const T* e = reinterpret_cast<const T*>(&v);
#pragma unroll
                for (int i = 0; i < N; ++i) out[q * N + i] = tp_to_float(e[i]);
            } else {
#pragma unroll
                for (int i = 0; i < N; ++i) out[q * N + i] = 0.0f;
            }
        }
    } else {
#pragma unroll
        for (int i = 0; i < n; ++i) out[i] = f + i < d ? tp_to_float(row[f + i]) : 0.0f;
    }
}

// One warp reads a row: returns this lane's share of sum |x| (and flags NaN/Inf in `bad`).
template <typename T>
__device__ __forceinline__ float dart_warp_row_l1(const T* __restrict__ row, int d, bool vec16, bool& bad) {
    constexpr int N = DartPiece<T>::N;
    const int lane = threadIdx.x % TP_WARP;
    float sum = 0.0f;
    for (int f = lane * N; f < d; f += TP_WARP * N) {
        float v[N];
        dart_load<T, N>(row, f, d, vec16, v);
#pragma unroll
        for (int i = 0; i < N; ++i) {
            bad |= tp_is_nonfinite(v[i]);
            sum += fabsf(v[i]);
        }
    }
    return sum;
}

// ---------------------------------------------------------------------------------------------
// Kernel 1: key L1 norms of tokens [s, seq_len)
// ---------------------------------------------------------------------------------------------
template <typename T>
__device__ void dart_key_l1(const T* __restrict__ keys, long long row_stride, int d, const int* __restrict__ seq_info,
                            float* __restrict__ key_l1, int* status, int epoch) {
    const DartSeq q = dart_seq(seq_info, blockIdx.y);
    const int j = q.start + blockIdx.x * DART_WARPS + threadIdx.x / TP_WARP;  // this warp's token
    if (j >= q.seq_len) return;                                                // warp-uniform
    const T* row = keys + (long long)(q.first_row + j) * row_stride;
    bool bad = false;
    const float l1 = tp_warp_sum(dart_warp_row_l1(row, d, dart_vec16(keys, row_stride, d), bad));
    if (bad || tp_is_nonfinite(l1)) tp_reject(status, epoch);  // NaN/Inf, or an L1 norm beyond fp32
    if (threadIdx.x % TP_WARP == 0) key_l1[q.first_row + j] = l1;
}

extern "C" __global__ void __launch_bounds__(DART_THREADS)
tp_dart_key_l1_f32(const float* __restrict__ keys, long long row_stride, int d, const int* __restrict__ seq_info,
                   float* __restrict__ key_l1, int* status, int epoch) {
    dart_key_l1(keys, row_stride, d, seq_info, key_l1, status, epoch);
}

extern "C" __global__ void __launch_bounds__(DART_THREADS)
tp_dart_key_l1_f16(const __half* __restrict__ keys, long long row_stride, int d, const int* __restrict__ seq_info,
                   float* __restrict__ key_l1, int* status, int epoch) {
    dart_key_l1(keys, row_stride, d, seq_info, key_l1, status, epoch);
}

extern "C" __global__ void __launch_bounds__(DART_THREADS)
tp_dart_key_l1_bf16(const __nv_bfloat16* __restrict__ keys, long long row_stride, int d, const int* __restrict__ seq_info,
                    float* __restrict__ key_l1, int* status, int epoch) {
    dart_key_l1(keys, row_stride, d, seq_info, key_l1, status, epoch);
}

// ---------------------------------------------------------------------------------------------
// Kernel 2: pivots and the pivot x image-token cosine matrix
// ---------------------------------------------------------------------------------------------

// The `count` tokens of [lo, hi) with the largest a[j], larger first, ties to the lower index, by
// one warp (every lane must call it; lane 0 writes out[0 .. count)). Round m takes the best token
// ranked after round m-1's winner, so nothing needs to be marked.
__device__ __forceinline__ void dart_warp_top(const float* __restrict__ a, int lo, int hi, int count, int* out) {
    const int lane = threadIdx.x % TP_WARP;
    float prev_v = INFINITY;
    int prev_i = -1;
    for (int m = 0; m < count; ++m) {
        float best_v = -INFINITY;
        int best_i = -1;
        for (int j = lo + lane; j < hi; j += TP_WARP) {
            const float v = a[j];
            const bool after_prev = v < prev_v || (v == prev_v && j > prev_i);
            if (after_prev && tp_argmax_better(v, j, best_v, best_i)) { best_v = v; best_i = j; }
        }
        tp_warp_argmax(best_v, best_i);
        if (lane == 0) out[m] = best_i;
        prev_v = best_v;
        prev_i = best_i;
    }
}

__device__ __forceinline__ float dart_inverse_norm(float sumsq) {
    return 1.0f / fmaxf(sqrtf(sumsq), DART_EPS);
}

template <typename T>
__device__ void dart_cosine(const T* __restrict__ hidden, long long row_stride, int d, const int* __restrict__ seq_info,
                            const float* __restrict__ key_l1, int p_img, int p_txt, int* __restrict__ pivots,
                            float* __restrict__ cos, int* status, int epoch) {
    __shared__ int piv[DART_MAX_PIVOTS];
    __shared__ __align__(16) float pv[DART_GROUP][DART_KC];      // one K chunk of 8 pivot rows (8 KiB)
    __shared__ float part[DART_WARPS][DART_GROUP][DART_TILE];    // per-warp partial dots (8 KiB)
    __shared__ float tok_ss[DART_WARPS][DART_TILE];              // per-warp partial squared norms
    __shared__ float piv_inv[DART_GROUP];

    // The keys were rejected (or another block of this launch already found bad hidden states):
    // nothing here would be used. This launch's own blocks may set *status at any moment, so the
    // block decides together; a per-thread test could split the block at the barriers below.
    if (tp_call_rejected(status, epoch)) return;
    const int b = blockIdx.y;
    const DartSeq q = dart_seq(seq_info, b);
    const int warp = threadIdx.x / TP_WARP, lane = threadIdx.x % TP_WARP;
    const int P = p_img + p_txt;
    const T* rows = hidden + (long long)q.first_row * row_stride;  // token j of the sequence: rows + j * stride
    const bool vec16 = dart_vec16(hidden, row_stride, d);
    bool bad = false;

    if (warp == 0) {
        const float* a = key_l1 + q.first_row;
        dart_warp_top(a, q.start, q.start + q.len, p_img, piv);
        dart_warp_top(a, q.start + q.len, q.seq_len, p_txt, piv + p_img);
    } else {  // the text rows' hidden states, spread over the blocks of this sequence
        const int text0 = q.start + q.len, text = q.seq_len - text0;
        for (int r = blockIdx.x * (DART_WARPS - 1) + warp - 1; r < text; r += gridDim.x * (DART_WARPS - 1))
            dart_warp_row_l1(rows + (long long)(text0 + r) * row_stride, d, vec16, bad);
    }
    if (bad) tp_reject(status, epoch);
    const int tile0 = blockIdx.x * DART_TILE;
    if (tile0 >= q.len) return;  // uniform: a tile beyond this sequence's image block
    __syncthreads();             // piv[] is visible to the block
    if (blockIdx.x == 0 && (int)threadIdx.x < P) pivots[P * b + threadIdx.x] = piv[threadIdx.x];

    const int j = tile0 + lane;  // this lane's candidate (image token j)
    const bool live = j < q.len;
    const T* tok = rows + (long long)(q.start + (live ? j : 0)) * row_stride;
    float* out = cos + (long long)P * q.image_base;
    float tok_sumsq = 0.0f;
    for (int g0 = 0; g0 < P; g0 += DART_GROUP) {
        const bool staged_live = g0 + warp < P && piv[g0 + warp] >= 0;  // warp w stages pivot g0 + w (always >= 0 for finite keys)
        const T* prow = rows + (long long)(staged_live ? piv[g0 + warp] : 0) * row_stride;
        float piv_sumsq = 0.0f;
        float acc[DART_GROUP];
#pragma unroll
        for (int p = 0; p < DART_GROUP; ++p) acc[p] = 0.0f;

        for (int k0 = 0; k0 < d; k0 += DART_KC) {
            {  // stage: lane l loads features [k0 + 8 l, +8) of pivot g0 + warp
                float v[8];
                if (staged_live) dart_load<T, 8>(prow, k0 + 8 * lane, d, vec16, v);
                else {
#pragma unroll
                    for (int i = 0; i < 8; ++i) v[i] = 0.0f;
                }
#pragma unroll
                for (int i = 0; i < 8; ++i) {
                    pv[warp][8 * lane + i] = v[i];
                    piv_sumsq = fmaf(v[i], v[i], piv_sumsq);
                }
            }
            __syncthreads();
            float x[32];
            if (live) dart_load<T, 32>(tok, k0 + 32 * warp, d, vec16, x);
            else {
#pragma unroll
                for (int i = 0; i < 32; ++i) x[i] = 0.0f;
            }
            if (g0 == 0) {  // the first pass sees every candidate feature once
#pragma unroll
                for (int i = 0; i < 32; ++i) {
                    bad |= tp_is_nonfinite(x[i]);
                    tok_sumsq = fmaf(x[i], x[i], tok_sumsq);
                }
            }
#pragma unroll
            for (int p = 0; p < DART_GROUP; ++p) {
                const float4* w4 = reinterpret_cast<const float4*>(&pv[p][32 * warp]);
                float s = 0.0f;
#pragma unroll
                for (int i = 0; i < 8; ++i) {
                    const float4 w = w4[i];
                    s = fmaf(x[4 * i + 0], w.x, s);
                    s = fmaf(x[4 * i + 1], w.y, s);
                    s = fmaf(x[4 * i + 2], w.z, s);
                    s = fmaf(x[4 * i + 3], w.w, s);
                }
                acc[p] += s;
            }
            __syncthreads();  // pv is restaged next
        }
#pragma unroll
        for (int p = 0; p < DART_GROUP; ++p) part[warp][p][lane] = acc[p];
        if (g0 == 0) tok_ss[warp][lane] = tok_sumsq;
        piv_sumsq = tp_warp_sum(piv_sumsq);
        bad |= staged_live && tp_is_nonfinite(piv_sumsq);  // a squared norm beyond fp32
        if (lane == 0) piv_inv[warp] = dart_inverse_norm(piv_sumsq);
        __syncthreads();
        {  // thread (warp p, lane): pivot g0 + p against candidate j, warps summed in a fixed order
            const int p = warp;
            float dot = 0.0f, ss = 0.0f;
#pragma unroll
            for (int w = 0; w < DART_WARPS; ++w) {
                dot += part[w][p][lane];
                ss += tok_ss[w][lane];
            }
            bad |= live && tp_is_nonfinite(ss);
            if (g0 + p < P && live) out[(long long)(g0 + p) * q.len + j] = dot * piv_inv[p] * dart_inverse_norm(ss);
        }
        __syncthreads();  // part and piv_inv are rewritten by the next group
    }
    if (bad) tp_reject(status, epoch);
}

extern "C" __global__ void __launch_bounds__(DART_THREADS)
tp_dart_cosine_f32(const float* __restrict__ hidden, long long row_stride, int d, const int* __restrict__ seq_info,
                   const float* __restrict__ key_l1, int p_img, int p_txt, int* __restrict__ pivots,
                   float* __restrict__ cos, int* status, int epoch) {
    dart_cosine(hidden, row_stride, d, seq_info, key_l1, p_img, p_txt, pivots, cos, status, epoch);
}

extern "C" __global__ void __launch_bounds__(DART_THREADS)
tp_dart_cosine_f16(const __half* __restrict__ hidden, long long row_stride, int d, const int* __restrict__ seq_info,
                   const float* __restrict__ key_l1, int p_img, int p_txt, int* __restrict__ pivots,
                   float* __restrict__ cos, int* status, int epoch) {
    dart_cosine(hidden, row_stride, d, seq_info, key_l1, p_img, p_txt, pivots, cos, status, epoch);
}

extern "C" __global__ void __launch_bounds__(DART_THREADS)
tp_dart_cosine_bf16(const __nv_bfloat16* __restrict__ hidden, long long row_stride, int d, const int* __restrict__ seq_info,
                    const float* __restrict__ key_l1, int p_img, int p_txt, int* __restrict__ pivots,
                    float* __restrict__ cos, int* status, int epoch) {
    dart_cosine(hidden, row_stride, d, seq_info, key_l1, p_img, p_txt, pivots, cos, status, epoch);
}

// ---------------------------------------------------------------------------------------------
// Kernel 3: processing order, recruit rounds, outputs
// ---------------------------------------------------------------------------------------------

// CPython set insertion of a key absent from the table (hash(int) = int for non-negative ints):
// slot key & mask; if taken, the next 9 slots when they fit below the mask, then
// perturb >>= 5, slot = (5 slot + 1 + perturb) & mask, and so on (methods-vision.md §4.4).
__device__ __forceinline__ void dart_set_insert(int* table, unsigned mask, int key) {
    unsigned long long perturb = (unsigned long long)key;
    unsigned i = (unsigned)key & mask;
    for (;;) {
        if (table[i] < 0) { table[i] = key; return; }
        if (i + 9 <= mask) {
            for (unsigned c = 1; c <= 9; ++c) {
                if (table[i + c] < 0) { table[i + c] = key; return; }
            }
        }
        perturb >>= 5;
        i = (unsigned)((i * 5ull + 1ull + perturb) & mask);
    }
}

// Iteration order of a CPython set built by adding keys[0 .. n) (distinct, >= 0, n <= 32) in
// order: the table starts with 8 slots; after an insertion that makes 5 * fill >= 3 * mask it grows
// to the smallest power of two > 4 * fill and the keys are re-inserted in old-slot order; the set
// iterates in slot order. One thread; table holds DART_SET_TABLE ints, tmp n ints.
__device__ void dart_cpython_set_order(const int* keys, int n, int* table, int* tmp, int* out) {
    unsigned size = 8;
    for (unsigned i = 0; i < size; ++i) table[i] = -1;
    for (int m = 0; m < n; ++m) {
        dart_set_insert(table, size - 1, keys[m]);
        const unsigned fill = (unsigned)m + 1;
        if (fill * 5 >= (size - 1) * 3) {
            int c = 0;
            for (unsigned i = 0; i < size; ++i)
                if (table[i] >= 0) tmp[c++] = table[i];
            size = 8;
            while (size <= fill * 4) size <<= 1;
            for (unsigned i = 0; i < size; ++i) table[i] = -1;
            for (int i = 0; i < c; ++i) dart_set_insert(table, size - 1, tmp[i]);
        }
    }
    int c = 0;
    for (unsigned i = 0; i < size; ++i)
        if (table[i] >= 0) out[c++] = table[i];
}

extern "C" __global__ void __launch_bounds__(1024)
tp_dart_select(const float* __restrict__ cos, const int* __restrict__ pivots, const int* __restrict__ seq_info,
               int p_img, int p_txt, int token_topk, int official_order, const int* status, int epoch,
               int* __restrict__ kept_image, int* __restrict__ keep_list, long long* __restrict__ position_ids,
               int* __restrict__ recruited_by, int* __restrict__ pivot_order) {
    __shared__ int hist[256];
    __shared__ int bcast[3];
    __shared__ int scan_scratch[TP_WARP];
    __shared__ int scan_total;
    __shared__ int piv[DART_MAX_PIVOTS];    // pivot positions, topk order
    __shared__ int order[DART_MAX_PIVOTS];  // processing order: indices into piv
    __shared__ int table[DART_SET_TABLE];
    __shared__ int tmp[2 * DART_MAX_PIVOTS];
    DYNAMIC_SMEM(float, score);  // max L floats, then max L flag bytes

    if (tp_call_rejected(status, epoch)) return;  // an input kernel rejected this call: write nothing

    const int b = blockIdx.x;
    const DartSeq q = dart_seq(seq_info, b);
    const int L = q.len, P = p_img + p_txt;
    const int R = p_img + P * token_topk;
    unsigned char* flag = reinterpret_cast<unsigned char*>(score + L);

    if ((int)threadIdx.x < P) piv[threadIdx.x] = pivots[P * b + threadIdx.x];
    for (int j = threadIdx.x; j < L; j += blockDim.x) flag[j] = 0;
    __syncthreads();
    if ((int)threadIdx.x < p_img) flag[piv[threadIdx.x] - q.start] = 1;
    if (threadIdx.x == 0) {
        if (official_order) {
            int* positions = tmp + DART_MAX_PIVOTS;
            dart_cpython_set_order(piv, P, table, tmp, positions);
            for (int r = 0; r < P; ++r) {
                int m = 0;
                while (piv[m] != positions[r]) ++m;
                order[r] = m;
            }
        } else {  // ascending position: insertion sort of <= 32 indices
            for (int r = 0; r < P; ++r) {
                int m = r;
                while (m > 0 && piv[order[m - 1]] > piv[r]) { order[m] = order[m - 1]; --m; }
                order[m] = r;
            }
        }
    }
    __syncthreads();
    if (pivot_order != nullptr && (int)threadIdx.x < P) pivot_order[P * b + threadIdx.x] = piv[order[threadIdx.x]];

    // Recruit rounds. Token j belongs to thread j % blockDim throughout: its score and flag are
    // written and read by that thread only, so no barrier is needed between rounds beyond those
    // inside the cut and the scan.
    for (int r = 0; r < P && token_topk > 0; ++r) {
        const float* row = cos + (long long)P * q.image_base + (long long)order[r] * L;
        for (int j = threadIdx.x; j < L; j += blockDim.x) score[j] = flag[j] ? DART_TAKEN : -row[j];  // best = least similar
        const TpTopkCut cut = tp_block_topk_cut(score, L, token_topk, hist, bcast);
        // the cut keeps keys above the prefix and the first cut.ties keys equal to it, in index order
        int equal_base = 0;
        for (int chunk = 0; chunk < L; chunk += blockDim.x) {
            const int j = chunk + threadIdx.x;
            int above = 0, equal = 0;
            if (j < L && !flag[j]) {
                const unsigned key = tp_float_order_key(score[j]) & cut.mask;
                above = key > cut.prefix;
                equal = key == cut.prefix;
            }
            const int equal_before = equal_base + tp_block_exclusive_scan(equal, scan_scratch, &scan_total);
            if (above || (equal && equal_before < cut.ties)) flag[j] = (unsigned char)(2 + r);
            equal_base += scan_total;  // read before the next scan's first barrier, rewritten after it
        }
    }

    // Outputs: one ascending compaction of the flagged image tokens, then the sequence's prefix and text.
    int base = 0;
    for (int chunk = 0; chunk < L; chunk += blockDim.x) {
        const int j = chunk + threadIdx.x;
        const int c = j < L && flag[j] ? 1 : 0;
        const int at = base + tp_block_exclusive_scan(c, scan_scratch, &scan_total);
        if (c) {
            kept_image[R * b + at] = j;
            if (recruited_by != nullptr) recruited_by[R * b + at] = flag[j] == 1 ? -1 : piv[order[flag[j] - 2]];
            if (keep_list != nullptr) keep_list[q.keep_base + q.start + at] = q.start + j;
            if (position_ids != nullptr) position_ids[q.keep_base + q.start + at] = q.start + j;
        }
        base += scan_total;
    }
    const int text0 = q.start + L, text = q.seq_len - text0;
    for (int i = threadIdx.x; i < q.start + text; i += blockDim.x) {
        const int at = i < q.start ? i : q.start + R + (i - q.start);
        const int pos = i < q.start ? i : text0 + (i - q.start);
        if (keep_list != nullptr) keep_list[q.keep_base + at] = pos;
        if (position_ids != nullptr) position_ids[q.keep_base + at] = pos;
    }
}
