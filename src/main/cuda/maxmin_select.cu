// maxmin_select.cu — DivPrune's greedy max-min diversity selection, all k steps in one launch.
//
// What it computes (methods-vision.md §3.3)
//   For every set b with n = n_b tokens and k = k_b = keep_offsets[b+1] - keep_offsets[b]:
//   seed = the token with the largest nearest-neighbour distance (second-smallest value of its
//   row of the symmetric distance matrix, diagonal included), then k-1 farthest-point steps:
//   mind_j = min over selected s of dist[s][j], pick argmax_j mind_j. Ties go to the lowest index.
//   Default mode masks already-selected tokens; official_compat != 0 does not, which reproduces
//   the official code's re-selection (a token can be kept twice, DP-3).
//   Outputs: kept_sorted[keep_offsets[b] ..] = the k kept indices ascending (duplicates repeated
//   in compat mode), and, if selection_order != nullptr, the same k indices in selection order.
//   Indices are local to the set (0 .. n_b-1).
//
// Inputs come from tp_cosine_distance_*: dist (set b at offset sum_{c<b} n_c^2) and nn_partial
//   (per row, per 64-column tile: min and second-min; tiles_max tiles per row).
//
// Status convention (shared by all kernels that validate their input)
//   Producers tp_reject(status, epoch) on bad input; the caller passes a fresh, increasing epoch per
//   call, so the status word needs clearing only after the host has seen a rejection (no memset
//   launch per call, no host round trip). A consumer that finds the call rejected (tp_call_rejected:
//   the word holds this epoch, or an earlier one not yet observed) writes nothing, and the host raises
//   the error after its sync. See common.cuh.
//
// Grid / block mapping
//   One block per set (gridDim.x = B), any multiple of 32 threads up to 1024; thread t owns
//   columns t, t + blockDim, ... for the whole kernel, so its min-distance and keep-count entries
//   are private to it and need no barrier; the only barriers are the two in each block arg-max.
//
// Shared memory (dynamic, 8 * max n_b bytes): mind[max_n] floats, then count[max_n] ints
//   (how often each token was selected; > 1 only in compat mode).
//
// Cost per set: k rows of dist read once each (4 k n bytes, from L2 when the matrix was just
//   written), n * tiles_max pairs of nn_partial; k block arg-maxes (the latency floor: each step
//   depends on the previous pick).
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(1024)
tp_divprune_select(const float* __restrict__ dist, const float* __restrict__ nn_partial, int tiles_max,
                   const int* __restrict__ row_offsets, const int* __restrict__ keep_offsets,
                   int official_compat, const int* status, int epoch,
                   int* __restrict__ kept_sorted, int* __restrict__ selection_order) {
    __shared__ float red_v[TP_WARP];
    __shared__ int red_i[TP_WARP];
    __shared__ int scan_total;
    DYNAMIC_SMEM(float, smem);

    if (tp_call_rejected(status, epoch)) return;  // an input kernel rejected this call: write nothing

    const int set = blockIdx.x;
    const int first_row = row_offsets[set];
    const int n = row_offsets[set + 1] - first_row;
    const int k = keep_offsets[set + 1] - keep_offsets[set];
    if (n <= 0 || k <= 0) return;
    long long dist_base = 0;
    for (int c = 0; c < set; ++c) {
        const long long nc = row_offsets[c + 1] - row_offsets[c];
        dist_base += nc * nc;
    }
    const float* ds = dist + dist_base;
    float* mind = smem;
    int* count = reinterpret_cast<int*>(smem + n);

    // Seed: largest nearest-neighbour distance. Merging the per-tile (min, second-min) pairs of a
    // row gives the row's second-smallest value; a single token has none and scores +inf.
    const int tiles = (n + 63) / 64;
    float best_v = -INFINITY;
    int best_i = -1;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        const float* p = nn_partial + ((long long)(first_row + j) * tiles_max) * 2;
        float m1 = INFINITY, m2 = INFINITY;
        for (int t = 0; t < tiles; ++t) {
            const float a = p[2 * t], b = p[2 * t + 1];
            if (a < m1) { m2 = fminf(m1, b); m1 = a; } else { m2 = fminf(m2, a); }
        }
        if (tp_argmax_better(m2, j, best_v, best_i)) { best_v = m2; best_i = j; }
        mind[j] = INFINITY;
        count[j] = 0;
    }
    tp_block_argmax(best_v, best_i, red_v, red_i);

    int* order = selection_order ? selection_order + keep_offsets[set] : nullptr;
    int sel = best_i;
    for (int step = 0; step < k; ++step) {
        if (order != nullptr && threadIdx.x == 0) order[step] = sel;
        if (sel % (int)blockDim.x == (int)threadIdx.x) count[sel] += 1;  // owner-only: no barrier
        if (step == k - 1) break;

        const float* row = ds + (long long)sel * n;
        best_v = -INFINITY;
        best_i = -1;
        for (int j = threadIdx.x; j < n; j += blockDim.x) {
            const float m = fminf(mind[j], row[j]);
            mind[j] = m;
            const bool masked = !official_compat && count[j] > 0;
            if (!masked && tp_argmax_better(m, j, best_v, best_i)) { best_v = m; best_i = j; }
        }
        tp_block_argmax(best_v, best_i, red_v, red_i);
        sel = best_i;
    }
    __syncthreads();  // count[] is read below by threads other than its owner

    // Ascending compaction: chunks of blockDim consecutive tokens, an exclusive scan of the keep
    // counts gives each kept token its output slot.
    int* out = kept_sorted + keep_offsets[set];
    int base = 0;
    for (int chunk = 0; chunk < n; chunk += blockDim.x) {
        const int j = chunk + threadIdx.x;
        const int c = j < n ? count[j] : 0;
        const int at = base + tp_block_exclusive_scan(c, red_i, &scan_total);
        for (int r = 0; r < c; ++r) out[at + r] = j;
        base += scan_total;  // read before the next scan's first barrier, rewritten after it
    }
}
