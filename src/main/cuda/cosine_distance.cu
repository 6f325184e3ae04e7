// cosine_distance.cu — fused pairwise cosine distance, 1 - cos(x_i, x_j), for B independent sets.
//
// What it computes
//   For every set b (rows [row_offsets[b], row_offsets[b+1]) of x, n_b = their count) the n_b x n_b
//   fp32 matrix dist_b[i][j] = 1 - <x_i, x_j> / (|x_i| |x_j|), stored row-major at
//   dist + sum_{c<b} n_c^2. Normalisation is fused: the squared norms are accumulated from the same
//   shared-memory tiles as the dot products, so there is no normalise pass and no N x D temporary.
//   A zero row has similarity 0 to every row, itself included, so its distances are all exactly 1.
//   Optionally (nn_partial != nullptr) it also writes, for every row r and every 64-column tile t,
//   the smallest and second-smallest distance of row r over that tile's columns (diagonal
//   included): nn_partial[(r * tiles_max + t) * 2 + {0, 1}]. DivPrune's seed (the largest
//   nearest-neighbour distance) needs exactly this, and merging tiles_max pairs per row is far
//   cheaper than re-reading the N x N matrix.
//
// Grid / block mapping
//   blockIdx.y = set b; blockIdx.x = one tile pair (ti <= tj) of the upper triangle of a
//   tiles_max x tiles_max tile grid (tiles_max = ceil(max n_b / 64)). Since dist is symmetric
//   (the same products summed in the same order, bit for bit), each block computes one 64 x 64
//   tile and writes it and its transpose: half the FLOPs of a full Gram matrix. Blocks whose tile
//   lies beyond their set's n_b exit at once. 256 threads; thread (ty, tx) = (tid / 16, tid % 16)
//   owns the 4 x 4 outputs rows ty + 16 i, columns tx + 16 j (strided, so that shared reads are
//   broadcasts on A and conflict-free on B).
//
// Shared memory (static, 25.3 KiB)
//   a_tile[16][65], b_tile[16][65]: one 16-wide slice of the feature dimension for the 64 rows of
//   tile ti and of tile tj, k-major (+1 pad against bank conflicts), converted to fp32;
//   out_tile[64][65]: the finished distances, staged so that the transposed tile is written with
//   coalesced stores and the per-row minima are scanned on chip; inv_norm_a/b[64].
//
// Assumptions
//   x is fp32, fp16 or bf16 (one entry point each), rows row_stride elements apart (any stride >= d,
//   no alignment beyond the element size); fp32 accumulation; d >= 1.
//   Non-finite inputs set *status = epoch (see TP status convention in maxmin_select.cu); the
//   distances of the affected rows are then meaningless, and consumers check status first.
//
// Cost per set (n = n_b): reads ~ (n/64) * n * d elements (each tile pair re-reads its two row
//   panels: ~ n^2 d / 64 elements in total, mostly from L2); FLOPs = n^2 d (half of 2 n^2 d);
//   writes 4 n^2 bytes (+ 8 n * tiles bytes of nn_partial).
#include "common.cuh"

#define CD_TILE 64
#define CD_KC 16
#define CD_THREADS 256

template <typename T>
__device__ __forceinline__ void cd_load_slice(const T* __restrict__ x, long long row_stride,
                                              int row0, int n, int k0, int d, float (*tile)[CD_TILE + 1],
                                              bool& nonfinite) {
    // 64 rows x 16 features = 1024 elements, 4 per thread; consecutive threads read consecutive
    // features of one row (coalesced along the row).
    for (int e = threadIdx.x; e < CD_TILE * CD_KC; e += CD_THREADS) {
        const int r = e / CD_KC, kk = e % CD_KC;
        const int row = row0 + r, k = k0 + kk;
        float v = 0.0f;
        if (row < n && k < d) {
            v = tp_to_float(x[(long long)row * row_stride + k]);
            if (tp_is_nonfinite(v)) { nonfinite = true; v = 0.0f; }
        }
        tile[kk][r] = v;
    }
}

// Min and second-min of a pair-wise merge: (m1, m2) absorbs v.
__device__ __forceinline__ void cd_push_min2(float v, float& m1, float& m2) {
    if (v < m1) { m2 = m1; m1 = v; } else if (v < m2) { m2 = v; }
}

template <typename T>
__device__ void cosine_distance_tile(const T* __restrict__ x, long long row_stride,
                                     const int* __restrict__ row_offsets, int tiles_max, int d,
                                     float* __restrict__ dist, float* __restrict__ nn_partial,
                                     int* status, int epoch) {
    __shared__ float a_tile[CD_KC][CD_TILE + 1];
    __shared__ float b_tile[CD_KC][CD_TILE + 1];
    __shared__ float out_tile[CD_TILE][CD_TILE + 1];
    __shared__ float inv_norm_a[CD_TILE], inv_norm_b[CD_TILE];

    const int set = blockIdx.y;
    const int first_row = row_offsets[set];
    const int n = row_offsets[set + 1] - first_row;
    long long dist_base = 0;
    for (int c = 0; c < set; ++c) {
        const long long nc = row_offsets[c + 1] - row_offsets[c];
        dist_base += nc * nc;
    }

    // Linear block index -> (ti, tj), ti <= tj, row by row through the upper triangle.
    int t = blockIdx.x, ti = 0;
    while (t >= tiles_max - ti) { t -= tiles_max - ti; ++ti; }
    const int tj = ti + t;
    const int set_tiles = (n + CD_TILE - 1) / CD_TILE;
    if (tj >= set_tiles) return;  // uniform per block: no barrier is skipped by part of a block

    const T* xs = x + (long long)first_row * row_stride;
    const int row_a = ti * CD_TILE, row_b = tj * CD_TILE;
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;

    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
    float sumsq = 0.0f;  // threads 0..63: row a of tile ti; 64..127: row b of tile tj
    bool nonfinite = false;

    for (int k0 = 0; k0 < d; k0 += CD_KC) {
        cd_load_slice(xs, row_stride, row_a, n, k0, d, a_tile, nonfinite);
        cd_load_slice(xs, row_stride, row_b, n, k0, d, b_tile, nonfinite);
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < CD_KC; ++kk) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) a[i] = a_tile[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; ++j) b[j] = b_tile[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        if (threadIdx.x < CD_TILE) {
#pragma unroll
            for (int kk = 0; kk < CD_KC; ++kk) sumsq = fmaf(a_tile[kk][threadIdx.x], a_tile[kk][threadIdx.x], sumsq);
        } else if (threadIdx.x < 2 * CD_TILE) {
            const int r = threadIdx.x - CD_TILE;
#pragma unroll
            for (int kk = 0; kk < CD_KC; ++kk) sumsq = fmaf(b_tile[kk][r], b_tile[kk][r], sumsq);
        }
        __syncthreads();
    }
    if (nonfinite) atomicMax(status, epoch);

    // A zero row gets inverse norm 0, hence cosine 0 with everything: distance exactly 1.
    if (threadIdx.x < CD_TILE) inv_norm_a[threadIdx.x] = sumsq > 0.0f ? 1.0f / sqrtf(sumsq) : 0.0f;
    else if (threadIdx.x < 2 * CD_TILE) inv_norm_b[threadIdx.x - CD_TILE] = sumsq > 0.0f ? 1.0f / sqrtf(sumsq) : 0.0f;
    __syncthreads();

#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int r = ty + 16 * i, c = tx + 16 * j;
            // (inv_a * inv_b) is commutative, so tile (ti, tj) and tile (tj, ti) agree bit for bit.
            out_tile[r][c] = 1.0f - acc[i][j] * (inv_norm_a[r] * inv_norm_b[c]);
        }
    __syncthreads();

    float* ds = dist + dist_base;
    const int rows_a = min(CD_TILE, n - row_a), rows_b = min(CD_TILE, n - row_b);
    // Tile (ti, tj): rows of ti, columns of tj; coalesced along columns.
    for (int e = threadIdx.x; e < CD_TILE * CD_TILE; e += CD_THREADS) {
        const int r = e / CD_TILE, c = e % CD_TILE;
        if (r < rows_a && c < rows_b) ds[(long long)(row_a + r) * n + row_b + c] = out_tile[r][c];
    }
    if (ti != tj) {  // its transpose, also coalesced: consecutive threads walk out_tile's column
        for (int e = threadIdx.x; e < CD_TILE * CD_TILE; e += CD_THREADS) {
            const int c = e / CD_TILE, r = e % CD_TILE;
            if (r < rows_a && c < rows_b) ds[(long long)(row_b + c) * n + row_a + r] = out_tile[r][c];
        }
    }

    if (nn_partial != nullptr) {
        float* np = nn_partial + (long long)first_row * tiles_max * 2;
        if (threadIdx.x < CD_TILE) {  // row r of tile ti over the columns of tile tj
            const int r = threadIdx.x;
            if (r < rows_a) {
                float m1 = INFINITY, m2 = INFINITY;
                for (int c = 0; c < rows_b; ++c) cd_push_min2(out_tile[r][c], m1, m2);
                np[((long long)(row_a + r) * tiles_max + tj) * 2 + 0] = m1;
                np[((long long)(row_a + r) * tiles_max + tj) * 2 + 1] = m2;
            }
        } else if (threadIdx.x < 2 * CD_TILE && ti != tj) {  // row c of tile tj over tile ti
            const int c = threadIdx.x - CD_TILE;
            if (c < rows_b) {
                float m1 = INFINITY, m2 = INFINITY;
                for (int r = 0; r < rows_a; ++r) cd_push_min2(out_tile[r][c], m1, m2);
                np[((long long)(row_b + c) * tiles_max + ti) * 2 + 0] = m1;
                np[((long long)(row_b + c) * tiles_max + ti) * 2 + 1] = m2;
            }
        }
    }
}

// One entry point per input dtype; the Java wrapper picks by dtype.
extern "C" __global__ void __launch_bounds__(CD_THREADS)
tp_cosine_distance_f32(const float* __restrict__ x, long long row_stride, const int* __restrict__ row_offsets,
                       int tiles_max, int d, float* __restrict__ dist, float* __restrict__ nn_partial,
                       int* status, int epoch) {
    cosine_distance_tile(x, row_stride, row_offsets, tiles_max, d, dist, nn_partial, status, epoch);
}

extern "C" __global__ void __launch_bounds__(CD_THREADS)
tp_cosine_distance_f16(const __half* __restrict__ x, long long row_stride, const int* __restrict__ row_offsets,
                       int tiles_max, int d, float* __restrict__ dist, float* __restrict__ nn_partial,
                       int* status, int epoch) {
    cosine_distance_tile(x, row_stride, row_offsets, tiles_max, d, dist, nn_partial, status, epoch);
}

extern "C" __global__ void __launch_bounds__(CD_THREADS)
tp_cosine_distance_bf16(const __nv_bfloat16* __restrict__ x, long long row_stride, const int* __restrict__ row_offsets,
                       int tiles_max, int d, float* __restrict__ dist, float* __restrict__ nn_partial,
                       int* status, int epoch) {
    cosine_distance_tile(x, row_stride, row_offsets, tiles_max, d, dist, nn_partial, status, epoch);
}
