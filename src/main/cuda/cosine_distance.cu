// cosine_distance.cu — fused pairwise cosine distance, 1 - cos(x_i, x_j), for B independent sets.
//
// What it computes
//   For every set b (rows [row_offsets[b], row_offsets[b+1]) of x, n_b = their count) the n_b x n_b
//   fp32 matrix dist_b[i][j] = 1 - <x_i, x_j> / (|x_i| |x_j|), stored row-major at
//   dist + sum_{c<b} n_c^2. Normalisation is fused: the squared norms are accumulated from the same
//   shared-memory tiles as the dot products, so there is no normalise pass and no N x D temporary.
//   A zero row has similarity 0 to every row, itself included, so its distances are all exactly 1.
//   The matrix is exactly symmetric (each off-diagonal tile is computed once and mirrored; the
//   diagonal tiles take entry (r, c) from the dot product at (min, max)).
//   Optionally (nn_partial != nullptr) it also writes, for every row r and every 64-column tile t,
//   the smallest and second-smallest distance of row r over that tile's columns (diagonal
//   included): nn_partial[(r * tiles_max + t) * 2 + {0, 1}]. DivPrune's seed (the largest
//   nearest-neighbour distance) needs exactly this, and merging tiles_max pairs per row is far
//   cheaper than re-reading the N x N matrix.
//
// Two entry-point families, one epilogue:
//   tp_cosine_distance_f32        CUDA-core FMA, 256 threads, 4 x 4 outputs per thread, K step 16,
//                                 16-byte loads when aligned, next K slice prefetched into registers.
//   tp_cosine_distance_f16/_bf16  tensor cores (wmma 16x16x16, fp32 accumulation: the products of
//                                 two 16-bit values are exact in fp32), 128 threads = 4 warps of
//                                 32 x 32 outputs, K step 64, 16-byte loads when rows are 16-byte
//                                 aligned, the next K slice prefetched into registers while the
//                                 current one is multiplied (each block is otherwise latency-bound:
//                                 its loop is D / 64 round trips to L2/HBM).
//
// Grid / block mapping
//   blockIdx.y = set b; blockIdx.x = one tile pair (ti <= tj) of the upper triangle of a
//   tiles_max x tiles_max grid of 64 x 64 tiles (tiles_max = ceil(max n_b / 64)): half the FLOPs
//   of a full Gram matrix. Blocks whose tile lies beyond their set's n_b exit at once.
//
// Shared memory (static): the two K slices (fp32: 2 x 16 x 65 floats; 16-bit: 2 x 64 x 72
//   elements, +8 pad so 16-byte row accesses are conflict-free), the 64 x 68 tile of dot products
//   (aliasing the slices on the tensor-core path), two 64-float inverse norms. fp32: 25.5 KiB,
//   16-bit: 18.9 KiB.
//
// Assumptions
//   Rows are row_stride elements apart (any stride >= d; 16-byte alignment only enables the fast
//   load path); d >= 1; fp32 accumulation. Non-finite inputs: tp_reject(status, epoch) (status
//   convention: maxmin_select.cu); the distances are then meaningless and consumers check status.
//   A call already stopped on entry (an earlier call's unobserved rejection) writes nothing.
//
// Cost per set (n = n_b, t = ceil(n / 64)): FLOPs = 2 * 64^2 * d * t(t+1)/2 ~ n^2 d; reads each
//   row once per tile pair it takes part in, ~ (t + 1) / 2 * n * d elements (mostly L2 hits);
//   writes 4 n^2 bytes (+ 8 n t bytes of nn_partial). Floor on an H100 for n = 576, d = 4096 fp16:
//   the 1.3 MB written and 4.7 MB read once are ~2 us of HBM time; the 1.4 GFLOP of tensor work
//   ~2 us; in practice the 45 blocks' serial K loops bound it.
#include "common.cuh"

#define CD_TILE 64
#define CD_OUT_LD 68  // dot-product tile stride: a multiple of 4 floats (wmma store) and not of 32

// ---------------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------------
struct CdSet {
    int first_row;        // global index of the set's first row
    int n;                // tokens in the set
    long long dist_base;  // float offset of the set's matrix in dist
    int ti, tj;           // the tile pair of this block, ti <= tj
    bool active;          // false: the tile pair lies beyond this set's tiles
};

__device__ __forceinline__ CdSet cd_locate(const int* __restrict__ row_offsets, int tiles_max) {
    CdSet s;
    const int set = blockIdx.y;
    s.first_row = row_offsets[set];
    s.n = row_offsets[set + 1] - s.first_row;
    s.dist_base = 0;
    for (int c = 0; c < set; ++c) {
        const long long nc = row_offsets[c + 1] - row_offsets[c];
        s.dist_base += nc * nc;
    }
    int t = blockIdx.x, ti = 0;  // linear index -> (ti, tj) row by row through the upper triangle
    while (t >= tiles_max - ti) { t -= tiles_max - ti; ++ti; }
    s.ti = ti;
    s.tj = ti + t;
    s.active = s.tj < (s.n + CD_TILE - 1) / CD_TILE;
    return s;
}

__device__ __forceinline__ float cd_inverse_norm(float sumsq) {
    return sumsq > 0.0f ? 1.0f / sqrtf(sumsq) : 0.0f;  // zero row: cosine 0 with everything
}

// Min and second-min of a pair-wise merge: (m1, m2) absorbs v.
__device__ __forceinline__ void cd_push_min2(float v, float& m1, float& m2) {
    if (v < m1) { m2 = m1; m1 = v; } else if (v < m2) { m2 = v; }
}

// The common epilogue. `tile` holds the 64 x 64 raw dot products (stride CD_OUT_LD); turns them
// into distances in place, writes tile (ti, tj) and its transpose with coalesced stores, and the
// nearest-neighbour partials of both tiles' rows.
__device__ void cd_finish_tile(float* tile, const float* inv_norm_a, const float* inv_norm_b, const CdSet& s,
                               int tiles_max, float* __restrict__ dist, float* __restrict__ nn_partial) {
    const int row_a = s.ti * CD_TILE, row_b = s.tj * CD_TILE;
    const int rows_a = min(CD_TILE, s.n - row_a), rows_b = min(CD_TILE, s.n - row_b);
    const bool diagonal = s.ti == s.tj;

    // Dot products -> distances in place. On a diagonal tile only the upper triangle is read and
    // each entry is written to both (r, c) and (c, r), so the tile comes out exactly symmetric
    // whatever order the dot products were summed in; no thread reads a cell another one writes.
    for (int e = threadIdx.x; e < CD_TILE * CD_TILE; e += blockDim.x) {
        const int r = e / CD_TILE, c = e % CD_TILE;
        if (diagonal && r > c) continue;
        const float dist_rc = 1.0f - tile[r * CD_OUT_LD + c] * (inv_norm_a[r] * inv_norm_b[c]);
        tile[r * CD_OUT_LD + c] = dist_rc;
        if (diagonal) tile[c * CD_OUT_LD + r] = dist_rc;
    }
    __syncthreads();

    float* ds = dist + s.dist_base;
    for (int e = threadIdx.x; e < CD_TILE * CD_TILE; e += blockDim.x) {  // tile (ti, tj), along its rows
        const int r = e / CD_TILE, c = e % CD_TILE;
        if (r < rows_a && c < rows_b) ds[(long long)(row_a + r) * s.n + row_b + c] = tile[r * CD_OUT_LD + c];
    }
    if (!diagonal) {
        for (int e = threadIdx.x; e < CD_TILE * CD_TILE; e += blockDim.x) {  // its transpose, along the tile's columns
            const int c = e / CD_TILE, r = e % CD_TILE;
            if (r < rows_a && c < rows_b) ds[(long long)(row_b + c) * s.n + row_a + r] = tile[r * CD_OUT_LD + c];
        }
    }
    if (nn_partial == nullptr) return;
    float* np = nn_partial + (long long)s.first_row * tiles_max * 2;
    if (threadIdx.x < CD_TILE) {  // row r of tile ti over the columns of tile tj
        const int r = threadIdx.x;
        if (r < rows_a) {
            float m1 = INFINITY, m2 = INFINITY;
            for (int c = 0; c < rows_b; ++c) cd_push_min2(tile[r * CD_OUT_LD + c], m1, m2);
            np[((long long)(row_a + r) * tiles_max + s.tj) * 2 + 0] = m1;
            np[((long long)(row_a + r) * tiles_max + s.tj) * 2 + 1] = m2;
        }
    } else if (threadIdx.x < 2 * CD_TILE && !diagonal) {  // row c of tile tj over tile ti
        const int c = threadIdx.x - CD_TILE;
        if (c < rows_b) {
            float m1 = INFINITY, m2 = INFINITY;
            for (int r = 0; r < rows_a; ++r) cd_push_min2(tile[r * CD_OUT_LD + c], m1, m2);
            np[((long long)(row_b + c) * tiles_max + s.ti) * 2 + 0] = m1;
            np[((long long)(row_b + c) * tiles_max + s.ti) * 2 + 1] = m2;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// fp32: CUDA-core FMA. Thread (ty, tx) = (tid / 16, tid % 16) owns the 4 x 4 outputs rows
// ty + 16 i, columns tx + 16 j (strided: broadcast reads on A, conflict-free on B). A K slice is
// 16 features of 64 rows: one float4 per thread per slice, k-major in shared memory; the next
// slice is loaded into registers while the current one is multiplied.
// ---------------------------------------------------------------------------------------------
#define CD_F32_THREADS 256
#define CD_F32_KC 16

// Thread t loads features [k0 + 4 (t % 4), +4) of row row0 + t / 4; zero outside the set or past d.
__device__ __forceinline__ float4 cd_stage_f32(const float* __restrict__ xs, long long row_stride, int row0, int n, int k0, int d,
                                               bool vec16, bool& nonfinite) {
    const int row = row0 + threadIdx.x / 4, k = k0 + (threadIdx.x % 4) * 4;
    float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (row < n && k < d) {
        const float* p = xs + (long long)row * row_stride + k;
        if (vec16) {
            v = *reinterpret_cast<const float4*>(p);
        } else {
            v.x = p[0];
            if (k + 1 < d) v.y = p[1];
            if (k + 2 < d) v.z = p[2];
            if (k + 3 < d) v.w = p[3];
        }
        nonfinite |= tp_is_nonfinite(v.x) | tp_is_nonfinite(v.y) | tp_is_nonfinite(v.z) | tp_is_nonfinite(v.w);
    }
    return v;
}

__device__ __forceinline__ void cd_store_f32(float4 v, float (*slice)[CD_TILE + 1]) {
    const int r = threadIdx.x / 4, kk = (threadIdx.x % 4) * 4;
    slice[kk + 0][r] = v.x;
    slice[kk + 1][r] = v.y;
    slice[kk + 2][r] = v.z;
    slice[kk + 3][r] = v.w;
}

extern "C" __global__ void __launch_bounds__(CD_F32_THREADS)
tp_cosine_distance_f32(const float* __restrict__ x, long long row_stride, const int* __restrict__ row_offsets,
                       int tiles_max, int d, float* __restrict__ dist, float* __restrict__ nn_partial,
                       int* status, int epoch) {
    __shared__ float a_slice[CD_F32_KC][CD_TILE + 1];
    __shared__ float b_slice[CD_F32_KC][CD_TILE + 1];
    __shared__ float dots[CD_TILE * CD_OUT_LD];
    __shared__ float inv_norm_a[CD_TILE], inv_norm_b[CD_TILE];

    if (tp_call_rejected(status, epoch)) return;  // stopped by an earlier, unobserved rejection: write nothing
    const CdSet s = cd_locate(row_offsets, tiles_max);
    if (!s.active) return;  // uniform per block: no barrier is skipped by part of a block
    const float* xs = x + (long long)s.first_row * row_stride;
    const bool vec16 = (reinterpret_cast<uintptr_t>(xs) % 16 == 0) && (row_stride % 4 == 0) && (d % 4 == 0);
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;

    float acc[4][4] = {};
    float sumsq = 0.0f;  // threads 0..63: row of tile ti; 64..127: row of tile tj
    bool nonfinite = false;
    float4 next_a = cd_stage_f32(xs, row_stride, s.ti * CD_TILE, s.n, 0, d, vec16, nonfinite);
    float4 next_b = cd_stage_f32(xs, row_stride, s.tj * CD_TILE, s.n, 0, d, vec16, nonfinite);
    for (int k0 = 0; k0 < d; k0 += CD_F32_KC) {
        cd_store_f32(next_a, a_slice);
        cd_store_f32(next_b, b_slice);
        __syncthreads();
        if (k0 + CD_F32_KC < d) {
            next_a = cd_stage_f32(xs, row_stride, s.ti * CD_TILE, s.n, k0 + CD_F32_KC, d, vec16, nonfinite);
            next_b = cd_stage_f32(xs, row_stride, s.tj * CD_TILE, s.n, k0 + CD_F32_KC, d, vec16, nonfinite);
        }
#pragma unroll
        for (int kk = 0; kk < CD_F32_KC; ++kk) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) a[i] = a_slice[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; ++j) b[j] = b_slice[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        if (threadIdx.x < 2 * CD_TILE) {
            float (*own)[CD_TILE + 1] = threadIdx.x < CD_TILE ? a_slice : b_slice;
            const int r = threadIdx.x % CD_TILE;
#pragma unroll
            for (int kk = 0; kk < CD_F32_KC; ++kk) sumsq = fmaf(own[kk][r], own[kk][r], sumsq);
        }
        __syncthreads();
    }
    if (nonfinite) tp_reject(status, epoch);
    if (threadIdx.x < CD_TILE) inv_norm_a[threadIdx.x] = cd_inverse_norm(sumsq);
    else if (threadIdx.x < 2 * CD_TILE) inv_norm_b[threadIdx.x - CD_TILE] = cd_inverse_norm(sumsq);
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) dots[(ty + 16 * i) * CD_OUT_LD + tx + 16 * j] = acc[i][j];
    __syncthreads();
    cd_finish_tile(dots, inv_norm_a, inv_norm_b, s, tiles_max, dist, nn_partial);
}

// ---------------------------------------------------------------------------------------------
// fp16 / bf16: tensor cores. Warp w computes rows 32 (w / 2) .. +32 and columns 32 (w % 2) .. +32
// of the tile as 2 x 2 wmma fragments. A K slice is 64 features of the 64 rows of each tile,
// stored row-major (token-major) with an 8-element pad; B is read as a col_major matrix_b, which
// is exactly "row j of the slice = column j of B^T".
// ---------------------------------------------------------------------------------------------
#define CD_TC_THREADS 128
#define CD_TC_KC 64
#define CD_TC_LD (CD_TC_KC + 8)                                // 144 bytes: 16-byte rows, no bank conflicts
#define CD_TC_CHUNKS (CD_TILE * CD_TC_KC / 8 / CD_TC_THREADS)  // 16-byte chunks per thread per slice (4)

// One K slice of 64 rows, as 16-byte chunks of 8 elements, held in registers between load and store.
template <typename T>
struct CdStaged {
    uint4 chunk[2][CD_TC_CHUNKS];  // [slice a / b][chunk]
};

template <typename T>
__device__ __forceinline__ bool cd_nonfinite8(const uint4& v) {
    const T* e = reinterpret_cast<const T*>(&v);
    bool bad = false;
#pragma unroll
    for (int i = 0; i < 8; ++i) bad |= tp_is_nonfinite(tp_to_float(e[i]));
    return bad;
}

// Loads rows [row0, row0 + 64) x features [k0, k0 + 64) as 8-element chunks; zero outside the set
// or past d. vec16: every row starts 16-byte aligned and d % 8 == 0, so a chunk is one 16-byte load.
template <typename T>
__device__ __forceinline__ void cd_stage_slice(const T* __restrict__ xs, long long row_stride, int row0, int n, int k0, int d,
                                               bool vec16, uint4* chunks, bool& nonfinite) {
#pragma unroll
    for (int c = 0; c < CD_TC_CHUNKS; ++c) {
        const int e = threadIdx.x + c * CD_TC_THREADS;  // chunk index: 8 chunks per row
        const int r = e / (CD_TC_KC / 8), k = k0 + (e % (CD_TC_KC / 8)) * 8;
        const int row = row0 + r;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (row < n && k < d) {
            const T* p = xs + (long long)row * row_stride + k;
            if (vec16) {
                v = *reinterpret_cast<const uint4*>(p);
            } else {  // element by element, assembled in registers (no addressable temporary)
                const unsigned short* p16 = reinterpret_cast<const unsigned short*>(p);
                unsigned w[4] = {0, 0, 0, 0};
#pragma unroll
                for (int i = 0; i < 8; ++i)
                    if (k + i < d) w[i / 2] |= (unsigned)p16[i] << (16 * (i % 2));
                v = make_uint4(w[0], w[1], w[2], w[3]);
            }
            nonfinite |= cd_nonfinite8<T>(v);
        }
        chunks[c] = v;
    }
}

template <typename T>
__device__ __forceinline__ void cd_store_slice(const uint4* chunks, T* slice) {
#pragma unroll
    for (int c = 0; c < CD_TC_CHUNKS; ++c) {
        const int e = threadIdx.x + c * CD_TC_THREADS;
        const int r = e / (CD_TC_KC / 8), k = (e % (CD_TC_KC / 8)) * 8;
        *reinterpret_cast<uint4*>(slice + r * CD_TC_LD + k) = chunks[c];
    }
}

template <typename T>
__device__ void cosine_distance_tc(const T* __restrict__ x, long long row_stride, const int* __restrict__ row_offsets, int tiles_max,
                                   int d, float* __restrict__ dist, float* __restrict__ nn_partial, int* status, int epoch) {
    using namespace nvcuda;
    // The K slices are dead once the dot products are stored: the two share one buffer.
    constexpr int SLICE_BYTES = 2 * CD_TILE * CD_TC_LD * (int)sizeof(T);
    constexpr int DOTS_BYTES = CD_TILE * CD_OUT_LD * (int)sizeof(float);
    __shared__ __align__(32) unsigned char smem[SLICE_BYTES > DOTS_BYTES ? SLICE_BYTES : DOTS_BYTES];
    __shared__ float inv_norm_a[CD_TILE], inv_norm_b[CD_TILE];
    T* a_slice = reinterpret_cast<T*>(smem);
    T* b_slice = a_slice + CD_TILE * CD_TC_LD;
    float* dots = reinterpret_cast<float*>(smem);

    if (tp_call_rejected(status, epoch)) return;  // stopped by an earlier, unobserved rejection: write nothing
    const CdSet s = cd_locate(row_offsets, tiles_max);
    if (!s.active) return;
    const T* xs = x + (long long)s.first_row * row_stride;
    const bool vec16 = (reinterpret_cast<uintptr_t>(xs) % 16 == 0) && (row_stride % 8 == 0) && (d % 8 == 0);
    const int warp = threadIdx.x / TP_WARP, wr = warp / 2, wc = warp % 2;

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);
    float sumsq = 0.0f;  // threads 0..63: row of tile ti; 64..127: row of tile tj
    bool nonfinite = false;

    CdStaged<T> next;
    cd_stage_slice(xs, row_stride, s.ti * CD_TILE, s.n, 0, d, vec16, next.chunk[0], nonfinite);
    cd_stage_slice(xs, row_stride, s.tj * CD_TILE, s.n, 0, d, vec16, next.chunk[1], nonfinite);
    for (int k0 = 0; k0 < d; k0 += CD_TC_KC) {
        cd_store_slice(next.chunk[0], a_slice);
        cd_store_slice(next.chunk[1], b_slice);
        __syncthreads();
        if (k0 + CD_TC_KC < d) {  // the next slice's loads are in flight while this one is multiplied
            cd_stage_slice(xs, row_stride, s.ti * CD_TILE, s.n, k0 + CD_TC_KC, d, vec16, next.chunk[0], nonfinite);
            cd_stage_slice(xs, row_stride, s.tj * CD_TILE, s.n, k0 + CD_TC_KC, d, vec16, next.chunk[1], nonfinite);
        }
#pragma unroll
        for (int kk = 0; kk < CD_TC_KC; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> fb[2];
#pragma unroll
            for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], a_slice + (32 * wr + 16 * i) * CD_TC_LD + kk, CD_TC_LD);
#pragma unroll
            for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], b_slice + (32 * wc + 16 * j) * CD_TC_LD + kk, CD_TC_LD);
#pragma unroll
            for (int i = 0; i < 2; ++i)
#pragma unroll
                for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
        }
        {  // squared norms of this thread's row, from the slice in shared memory, in fp32
            const T* row = (threadIdx.x < CD_TILE ? a_slice : b_slice) + (threadIdx.x % CD_TILE) * CD_TC_LD;
#pragma unroll 8
            for (int k = 0; k < CD_TC_KC; ++k) {
                const float v = tp_to_float(row[k]);
                sumsq = fmaf(v, v, sumsq);
            }
        }
        __syncthreads();
    }
    if (nonfinite) tp_reject(status, epoch);
    if (threadIdx.x < CD_TILE) inv_norm_a[threadIdx.x] = cd_inverse_norm(sumsq);
    else inv_norm_b[threadIdx.x - CD_TILE] = cd_inverse_norm(sumsq);
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j)
            wmma::store_matrix_sync(dots + (32 * wr + 16 * i) * CD_OUT_LD + 32 * wc + 16 * j, acc[i][j], CD_OUT_LD, wmma::mem_row_major);
    __syncthreads();
    cd_finish_tile(dots, inv_norm_a, inv_norm_b, s, tiles_max, dist, nn_partial);
}

extern "C" __global__ void __launch_bounds__(CD_TC_THREADS)
tp_cosine_distance_f16(const __half* __restrict__ x, long long row_stride, const int* __restrict__ row_offsets,
                       int tiles_max, int d, float* __restrict__ dist, float* __restrict__ nn_partial,
                       int* status, int epoch) {
    cosine_distance_tc(x, row_stride, row_offsets, tiles_max, d, dist, nn_partial, status, epoch);
}

extern "C" __global__ void __launch_bounds__(CD_TC_THREADS)
tp_cosine_distance_bf16(const __nv_bfloat16* __restrict__ x, long long row_stride, const int* __restrict__ row_offsets,
                        int tiles_max, int d, float* __restrict__ dist, float* __restrict__ nn_partial,
                        int* status, int epoch) {
    cosine_distance_tc(x, row_stride, row_offsets, tiles_max, d, dist, nn_partial, status, epoch);
}
