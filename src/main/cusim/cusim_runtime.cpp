// cusim_runtime.cpp — the CPU kernel simulator's runtime (engineering.md §4.4, "Mode F").
//
// Execution model
//   * Blocks run one after another on the calling OS thread. Within a block every CUDA thread is
//     a fiber with its own mmap'ed stack (256 KiB + a guard page; pooled per OS thread and reused
//     across blocks and launches). Fibers switch with a hand-written x86-64 context switch (six
//     pushes, a stack swap, six pops: no syscall, unlike swapcontext), because kernels do millions
//     of barrier switches in tests. Other architectures (or -DCUSIM_USE_UCONTEXT) fall back to
//     ucontext.
//   * Scheduling is cooperative and phase based. A phase runs every READY fiber once, in the
//     launch's schedule order, until it blocks (block barrier or warp operation) or returns; a
//     blocking fiber switches straight to the next one of the phase, the last one back to the
//     scheduler. When a phase ends with nobody ready:
//       - all fibers exited             -> block done;
//       - every live fiber is at a block barrier -> the barrier releases (threads that returned
//         count as arrived, as on Volta+), but only if all wait at the SAME source line;
//         otherwise the launch fails with "divergent __syncthreads: ...";
//       - anything else                 -> deadlock: the launch fails listing every wait site
//         (e.g. a shuffle waiting for a lane that exited). The simulator never hangs on a
//         barrier bug (it cannot interrupt an endless loop inside a kernel, though).
//   * Warp operations (shuffles, votes, __syncwarp, and the nvcuda::wmma *_sync calls, which use
//     the full mask) are synchronised per warp and per MASK, not per block, so
//     `if (warp == 0) { shuffles }` works. A lane publishes its value and waits; the last lane of
//     the mask to arrive computes every participant's result (CUDA's width / segment rules),
//     releases them, and carries on without a switch.
//   * Schedules: IN_ORDER, REVERSE, RANDOM(seed) permute both the run order inside every phase
//     and the order of the grid's blocks. Same seed, same run. Comparing results across schedules
//     exposes missing __syncthreads and inter-block dependencies.
//
// Memory
//   * Dynamic shared memory: exactly the launch's byte count, preceded and followed by canary
//     zones, refilled with 0xFF poison before every block (uninitialised floats read NaN); the
//     canaries are checked after every block. Static __shared__ variables are thread_local (see
//     cusim.h): zero at first, then they keep the previous block's values (not poisoned).
//   * Device memory is host memory (aligned_alloc(256)), poisoned with 0xFF on allocation.
//
// Errors
//   Everything that goes wrong inside a launch (divergent barrier, deadlock, __trap/assert, bad
//   warp mask, shared-memory overflow, a C++ exception) ends the launch: the failing fiber
//   records a message naming kernel, block, thread(s) and source line(s) and switches back to the
//   scheduler, which abandons the block's fibers (their stacks are simply reinitialised by the
//   next block). The process keeps running and later launches work.
#include <stdarg.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <numeric>
#include <string>
#include <vector>

#if !defined(__x86_64__) || defined(CUSIM_USE_UCONTEXT)
#include <ucontext.h>
#endif

#include "cusim.h"

namespace cusim {

__thread ThreadCtx* tls_ctx = nullptr;

namespace {

std::string strf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string strf(const char* fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < (int)sizeof buf) return std::string(buf, n < 0 ? 0 : n);
    std::string s(n, '\0');
    va_start(ap, fmt);
    vsnprintf(s.data(), n + 1, fmt, ap);
    va_end(ap);
    return s;
}

// =============================================================================================
// Context switch
// =============================================================================================
#if defined(__x86_64__) && !defined(CUSIM_USE_UCONTEXT)

// cusim_ctx_switch(save, load): push the callee-saved registers on the current stack, store the
// stack pointer to *save, load `load` as stack pointer, pop the registers saved there, return
// into that context. A new fiber's stack is prepared so that the "return" lands in
// cusim_fiber_start with the entry function in r12.
extern "C" void cusim_ctx_switch(void** save, void* load);
asm(R"(
    .text
    .p2align 4
    .hidden cusim_ctx_switch
    .type cusim_ctx_switch, @function
cusim_ctx_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cusim_ctx_switch, .-cusim_ctx_switch

    .p2align 4
    .hidden cusim_fiber_start
    .type cusim_fiber_start, @function
cusim_fiber_start:
    callq *%r12
    ud2
    .size cusim_fiber_start, .-cusim_fiber_start
)");
extern "C" void cusim_fiber_start();

struct Context {
    void* sp = nullptr;
};

void ctx_make(Context& c, char* stack_lo, size_t size, void (*entry)()) {
    // After the six pops and `ret`, rsp = top - 16, which is 16-byte aligned as the ABI wants
    // right before cusim_fiber_start's `call`.
    uintptr_t top = (reinterpret_cast<uintptr_t>(stack_lo) + size) & ~uintptr_t(15);
    void** sp = reinterpret_cast<void**>(top - 16 - 7 * sizeof(void*));
    sp[0] = nullptr;                                    // r15
    sp[1] = nullptr;                                    // r14
    sp[2] = nullptr;                                    // r13
    sp[3] = reinterpret_cast<void*>(entry);             // r12
    sp[4] = nullptr;                                    // rbx
    sp[5] = nullptr;                                    // rbp
    sp[6] = reinterpret_cast<void*>(&cusim_fiber_start);  // return address
    c.sp = sp;
}

inline void ctx_switch(Context& from, Context& to) { cusim_ctx_switch(&from.sp, to.sp); }

#else  // portable fallback: ucontext (swapcontext costs a sigprocmask syscall per switch)

struct Context {
    ucontext_t uc;
};

void ctx_make(Context& c, char* stack_lo, size_t size, void (*entry)()) {
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = stack_lo;
    c.uc.uc_stack.ss_size = size;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, entry, 0);
}

inline void ctx_switch(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }

#endif

// =============================================================================================
// Fiber stacks, pooled per OS thread
// =============================================================================================
constexpr size_t kStackBytes = 256 * 1024;

class StackPool {
public:
    ~StackPool() {
        for (char* s : stacks_) munmap(s - guard_, guard_ + kStackBytes);
    }
    // Makes sure at least n stacks exist; false if memory ran out.
    bool reserve(size_t n) {
        if (guard_ == 0) guard_ = (size_t)sysconf(_SC_PAGESIZE);
        while (stacks_.size() < n) {
            void* p = mmap(nullptr, guard_ + kStackBytes, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
            if (p == MAP_FAILED) return false;
            // Stacks grow down: the guard page at the low end turns an overflow into a fault
            // instead of silently corrupting the neighbouring fiber's stack.
            mprotect(p, guard_, PROT_NONE);
            stacks_.push_back(static_cast<char*>(p) + guard_);
        }
        return true;
    }
    char* operator[](size_t i) const { return stacks_[i]; }

private:
    std::vector<char*> stacks_;
    size_t guard_ = 0;
};

thread_local StackPool g_stacks;

// =============================================================================================
// Launch and block state
// =============================================================================================
enum class State : uint8_t { Ready, AtBarrier, AtWarpOp, Exited };

struct Fiber {
    Context ctx;
    ThreadCtx tc;
    unsigned tid = 0, lane = 0, warp = 0;
    State state = State::Ready;
    // The barrier or warp operation this fiber waits at.
    Site site{};
    int op = 0;  // BarrierOp or WarpOp, depending on state
    unsigned mask = 0;
    int pred = 0;
    uint64_t value = 0;
    int arg = 0, width = 32;
    uint64_t result = 0;
};

constexpr size_t kFrontCanary = 256;   // keeps the dynamic shared memory 256-byte aligned
constexpr size_t kBackCanary = 1024;
constexpr unsigned char kCanaryByte = 0xA5;
constexpr unsigned char kPoisonByte = 0xFF;
constexpr uint64_t kPoisonValue = ~uint64_t(0);  // a shuffle from a lane outside the mask

struct Rng {  // splitmix64: tiny, and the same sequence on every platform
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    uint64_t below(uint64_t n) { return (uint64_t)(((unsigned __int128)next() * n) >> 64); }
};

struct Launch {
    const KernelEntry* kernel = nullptr;
    void** params = nullptr;
    dim3 grid, block;
    unsigned threads = 0;
    Schedule schedule = IN_ORDER;
    Rng rng{0};

    unsigned char* smem_alloc = nullptr;  // front canary | smem_bytes | back canary
    unsigned char* smem = nullptr;
    unsigned smem_bytes = 0;

    uint3 block_idx{};
    std::vector<Fiber> fibers;
    std::vector<unsigned> warp_waiting;  // per warp: lanes currently waiting at a warp op
    std::vector<unsigned> order;         // this phase's run order
    size_t next = 0;                     // position in `order` of the next fiber to run
    unsigned live = 0;                   // fibers that have not exited
    unsigned at_barrier = 0;             // live fibers waiting at a block barrier
    Fiber* current = nullptr;
    Context scheduler;

    bool failed = false;
    std::string error;
};

thread_local Launch* g_launch = nullptr;

// ---------------------------------------------------------------------------------------------
// Diagnostics helpers
// ---------------------------------------------------------------------------------------------
const char* base_name(const char* path) {
    const char* slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

std::string where(Site s) { return strf("%s:%d", base_name(s.file), s.line); }

bool same_site(Site a, Site b) {
    return a.line == b.line && (a.file == b.file || strcmp(a.file, b.file) == 0);
}

const char* barrier_name(int op) {
    switch ((BarrierOp)op) {
        case BarrierOp::Sync: return "__syncthreads";
        case BarrierOp::Count: return "__syncthreads_count";
        case BarrierOp::And: return "__syncthreads_and";
        case BarrierOp::Or: return "__syncthreads_or";
    }
    return "?";
}

const char* warp_op_name(int op) {
    switch ((WarpOp)op) {
        case WarpOp::ShflIdx: return "__shfl_sync";
        case WarpOp::ShflUp: return "__shfl_up_sync";
        case WarpOp::ShflDown: return "__shfl_down_sync";
        case WarpOp::ShflXor: return "__shfl_xor_sync";
        case WarpOp::Ballot: return "__ballot_sync";
        case WarpOp::Any: return "__any_sync";
        case WarpOp::All: return "__all_sync";
        case WarpOp::SyncWarp: return "__syncwarp";
        case WarpOp::WmmaLoad: return "nvcuda::wmma::load_matrix_sync";
        case WarpOp::WmmaMma: return "nvcuda::wmma::mma_sync";
        case WarpOp::WmmaStore: return "nvcuda::wmma::store_matrix_sync";
    }
    return "?";
}

bool is_wmma(int op) { return op >= (int)WarpOp::WmmaLoad; }

// "0-4,6,9-31" for a sorted list of ids; long lists are cut.
std::string ranges(const std::vector<unsigned>& ids) {
    std::string out;
    int shown = 0;
    for (size_t i = 0; i < ids.size();) {
        size_t j = i;
        while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
        if (shown++ == 8) return out + ",...";
        if (!out.empty()) out += ',';
        out += j == i ? strf("%u", ids[i]) : strf("%u-%u", ids[i], ids[j]);
        i = j + 1;
    }
    return out;
}

std::string block_prefix(const Launch& L) {
    return strf("kernel %s, block (%u,%u,%u)", L.kernel->name, L.block_idx.x, L.block_idx.y,
                L.block_idx.z);
}

std::string thread_prefix(const Launch& L, const Fiber& f) {
    return block_prefix(L) + strf(", thread (%u,%u,%u)", f.tc.thread_idx.x, f.tc.thread_idx.y,
                                  f.tc.thread_idx.z);
}

// Where a fiber is, e.g. "in __shfl_xor_sync(mask 0xffffffff) at k.cu:12".
std::string wait_description(const Fiber& f) {
    switch (f.state) {
        case State::Exited: return "exited";
        case State::Ready: return "runnable";
        case State::AtBarrier: return strf("in %s at %s", barrier_name(f.op), where(f.site).c_str());
        case State::AtWarpOp:
            if (is_wmma(f.op))
                return strf("in %s (warp-collective: all 32 lanes must call it) at %s", warp_op_name(f.op),
                            where(f.site).c_str());
            return strf("in %s(mask 0x%08x) at %s", warp_op_name(f.op), f.mask, where(f.site).c_str());
    }
    return "?";
}

// Groups fibers by a description, in first-seen order: "N threads (tid a-b) <desc>, ...", or
// "tid a-b (<desc>) ..." without a noun.
template <class Describe>
std::string grouped(const std::vector<const Fiber*>& fs, Describe describe, const char* sep,
                    const char* noun = "thread") {
    std::vector<std::pair<std::string, std::vector<unsigned>>> groups;
    for (const Fiber* f : fs) {
        std::string d = describe(*f);
        auto it = std::find_if(groups.begin(), groups.end(), [&](auto& g) { return g.first == d; });
        if (it == groups.end()) groups.push_back({d, {f->tid}});
        else it->second.push_back(f->tid);
    }
    std::string out;
    for (auto& [desc, tids] : groups) {
        if (!out.empty()) out += sep;
        if (*noun)
            out += strf("%zu %s%s (tid %s) %s", tids.size(), noun, tids.size() == 1 ? "" : "s",
                        ranges(tids).c_str(), desc.c_str());
        else
            out += strf("tid %s (%s)", ranges(tids).c_str(), desc.c_str());
    }
    return out;
}

// Ends the launch from inside a fiber, after L.error was set: hand control to the scheduler and
// never come back (the scheduler abandons the block). Callers set L.error in a statement of its
// own, so that no string temporaries are left alive on the abandoned stack.
[[noreturn]] void abandon_block(Launch& L, Fiber& f) {
    L.failed = true;
    ctx_switch(f.ctx, L.scheduler);
    __builtin_unreachable();
}

// Suspends fiber f (already marked as waiting or exited) and switches straight to the next fiber
// of this phase, or back to the scheduler when the phase is over. Switching fiber to fiber halves
// the number of context switches compared with a round trip through the scheduler.
void suspend(Launch& L, Fiber& f) {
    if (L.next < L.order.size()) {
        Fiber& n = L.fibers[L.order[L.next++]];
        L.current = &n;
        tls_ctx = &n.tc;
        ctx_switch(f.ctx, n.ctx);
    } else {
        ctx_switch(f.ctx, L.scheduler);
    }
    // Resumed: whoever switched here has set L.current and tls_ctx.
}

Launch& current_launch() {
    if (!g_launch) {
        fprintf(stderr, "cusim: a barrier or warp intrinsic was called outside a kernel launch\n");
        abort();
    }
    return *g_launch;
}

// ---------------------------------------------------------------------------------------------
// Fibers
// ---------------------------------------------------------------------------------------------
void fiber_main() {
    Launch& L = *g_launch;
    Fiber& f = *L.current;
    bool threw = true;
    try {
        L.kernel->thunk(L.params);
        threw = false;
    } catch (const std::exception& e) {
        L.error = thread_prefix(L, f) + ": C++ exception escaped the kernel: " + e.what();
    } catch (...) {
        L.error = thread_prefix(L, f) + ": C++ exception escaped the kernel";
    }
    // Abandon outside the catch handler: leaving a fiber inside one would leave the C++ runtime's
    // per-OS-thread exception stack pointing into a dead stack.
    if (threw) abandon_block(L, f);
    f.state = State::Exited;
    --L.live;
    suspend(L, f);
    __builtin_unreachable();  // nobody resumes an exited fiber
}

unsigned lanes_in_warp(const Launch& L, unsigned warp) {
    unsigned n = std::min(32u, L.threads - warp * 32);
    return n == 32 ? 0xffffffffu : (1u << n) - 1;
}

// Computes the result of a completed warp operation for every lane in `mask` and releases them.
void complete_warp_op(Launch& L, unsigned warp, unsigned mask) {
    Fiber* lanes = &L.fibers[warp * 32];
    unsigned votes = 0;
    for (unsigned m = mask; m; m &= m - 1) {
        const Fiber& g = lanes[__builtin_ctz(m)];
        if (g.value) votes |= 1u << g.lane;
    }
    for (unsigned m = mask; m; m &= m - 1) {
        Fiber& g = lanes[__builtin_ctz(m)];
        const long lane = g.lane, width = g.width;
        const long seg_lo = lane & ~(width - 1), seg_hi = seg_lo + width - 1;
        const unsigned long arg = (unsigned)g.arg;
        long src = -1;  // -1: the caller keeps its own value
        switch ((WarpOp)g.op) {
            case WarpOp::ShflIdx: src = seg_lo + (long)(arg & (width - 1)); break;
            case WarpOp::ShflUp: src = lane - (long)arg >= seg_lo ? lane - (long)arg : -1; break;
            case WarpOp::ShflDown: src = lane + (long)arg <= seg_hi ? lane + (long)arg : -1; break;
            // CUDA: xor may read earlier segments; a source in a later segment gives own value.
            case WarpOp::ShflXor: src = (long)(lane ^ arg) <= seg_hi ? (long)(lane ^ arg) : -1; break;
            case WarpOp::Ballot: g.result = votes; break;
            case WarpOp::Any: g.result = votes != 0; break;
            case WarpOp::All: g.result = votes == mask; break;
            case WarpOp::SyncWarp:
            case WarpOp::WmmaLoad:
            case WarpOp::WmmaMma:
            case WarpOp::WmmaStore: g.result = 0; break;
        }
        if ((WarpOp)g.op <= WarpOp::ShflXor) {
            if (src < 0) g.result = g.value;
            else if (!((mask >> src) & 1)) g.result = kPoisonValue;  // undefined on the GPU
            else g.result = lanes[src].value;
        }
        g.state = State::Ready;
    }
    L.warp_waiting[warp] &= ~mask;
}

// Checks the caller's use of a warp operation; on misuse sets L.error and returns true.
bool warp_op_misused(Launch& L, const Fiber& f, WarpOp op, unsigned mask, int width, Site site) {
    const unsigned exists = lanes_in_warp(L, f.warp);
    const bool width_ok = op > WarpOp::ShflXor || (width >= 1 && width <= 32 && (width & (width - 1)) == 0);
    if (((mask >> f.lane) & 1) && !(mask & ~exists) && width_ok) return false;  // the usual case
    std::string problem;
    if (is_wmma((int)op) && (mask & ~exists))
        problem = strf("wmma operations need a full warp of 32 threads, but warp %u has only %d (block has "
                       "%u threads)", f.warp, __builtin_popcount(exists), L.threads);
    else if (!((mask >> f.lane) & 1))
        problem = strf("mask 0x%08x does not include the calling lane %u", mask, f.lane);
    else if (mask & ~exists)
        problem = strf("mask 0x%08x names lanes that do not exist (warp %u has lanes 0x%08x; block has "
                       "%u threads)", mask, f.warp, exists, L.threads);
    else if (op <= WarpOp::ShflXor && (width < 1 || width > 32 || (width & (width - 1)) != 0))
        problem = strf("width %d is not a power of two in 1..32", width);
    if (problem.empty()) return false;
    L.error = thread_prefix(L, f) + ": " + warp_op_name((int)op) + " at " + where(site) + ": " + problem;
    return true;
}

// All lanes of f's mask have arrived. They must be in the same operation at the same line
// (__syncwarp may legally be reached from different lines); wmma operations must also agree on
// their value, a digest of the arguments CUDA requires to be warp-uniform (see cusim.h). On
// mismatch sets L.error.
bool warp_op_mismatched(Launch& L, const Fiber& f) {
    for (unsigned m = f.mask; m; m &= m - 1) {
        const Fiber& g = L.fibers[f.warp * 32 + __builtin_ctz(m)];
        if (g.op == f.op && ((WarpOp)f.op == WarpOp::SyncWarp || same_site(g.site, f.site))) {
            if (!is_wmma(f.op) || g.value == f.value) continue;
            const char* what = (WarpOp)f.op == WarpOp::WmmaLoad ? "pointer, ldm or layout"
                               : (WarpOp)f.op == WarpOp::WmmaMma ? "fragment contents"
                                                                  : "pointer, ldm, layout or fragment contents";
            const bool fragments = (WarpOp)f.op != WarpOp::WmmaLoad;
            L.error = thread_prefix(L, f) + strf(": %s at %s: lanes %u and %u of warp %u differ in %s; CUDA "
                                                 "requires them to be the same in every lane%s", warp_op_name(f.op),
                                                 where(f.site).c_str(), g.lane, f.lane, f.warp, what,
                                                 fragments ? " (the simulator gives every lane a full copy of "
                                                             "each fragment, so lane-dependent writes to frag.x[] "
                                                             "or an uninitialised fragment show up here)" : "");
            return true;
        }
        L.error = thread_prefix(L, f) + strf(": lanes of mask 0x%08x are in different warp operations: "
                                             "lane %u at %s, lane %u at %s", f.mask, f.lane,
                                             wait_description(f).c_str(), g.lane,
                                             wait_description(g).c_str());
        return true;
    }
    return false;
}

// The phase ended and every live fiber waits at a block barrier: release it, unless they wait at
// different source lines.
bool release_block_barrier(Launch& L) {
    std::vector<const Fiber*> waiting;
    int count = 0;
    bool divergent = false;
    for (const Fiber& f : L.fibers) {
        if (f.state != State::AtBarrier) continue;
        if (!waiting.empty() && !same_site(f.site, waiting[0]->site)) divergent = true;
        waiting.push_back(&f);
        count += f.pred;
    }
    if (divergent) {
        L.error = block_prefix(L) + ": divergent __syncthreads: " +
                  grouped(waiting, [](const Fiber& f) { return "at " + where(f.site); }, ", ");
        return false;
    }
    for (Fiber& f : L.fibers) {
        if (f.state != State::AtBarrier) continue;
        switch ((BarrierOp)f.op) {
            case BarrierOp::Sync: f.result = 0; break;
            case BarrierOp::Count: f.result = count; break;
            case BarrierOp::And: f.result = count == (int)L.live; break;
            case BarrierOp::Or: f.result = count > 0; break;
        }
        f.state = State::Ready;
    }
    L.at_barrier = 0;
    return true;
}

std::string deadlock_report(const Launch& L) {
    std::vector<const Fiber*> waiting;
    for (const Fiber& f : L.fibers)
        if (f.state != State::Exited) waiting.push_back(&f);
    auto describe = [&L](const Fiber& f) {
        std::string d = wait_description(f);
        if (f.state != State::AtWarpOp) return d;
        // Name the lanes the warp operation still waits for, and what they are doing instead.
        std::vector<const Fiber*> missing;
        for (unsigned m = f.mask; m; m &= m - 1) {
            const Fiber& g = L.fibers[f.warp * 32 + __builtin_ctz(m)];
            if (g.state != State::AtWarpOp || g.mask != f.mask) missing.push_back(&g);
        }
        return d + ", waiting for " + grouped(missing, [](const Fiber& g) { return wait_description(g); }, " and ", "");
    };
    return block_prefix(L) + ": deadlock, no thread can proceed: " + grouped(waiting, describe, "; ");
}

void apply_schedule(Launch& L, std::vector<unsigned>& v) {
    switch (L.schedule) {
        case IN_ORDER: break;
        case REVERSE: std::reverse(v.begin(), v.end()); break;
        case RANDOM:
            for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[L.rng.below(i)]);
            break;
    }
}

bool check_canaries(Launch& L) {
    const unsigned char* front = L.smem_alloc;
    const unsigned char* back = L.smem + L.smem_bytes;
    for (size_t i = 0; i < kFrontCanary; ++i) {
        if (front[i] != kCanaryByte) {
            L.error = block_prefix(L) + strf(": dynamic shared memory underflow: byte %ld before the "
                                             "start of the %u-byte allocation was overwritten",
                                             (long)(i - kFrontCanary), L.smem_bytes);
            return false;
        }
    }
    for (size_t i = 0; i < kBackCanary; ++i) {
        if (back[i] != kCanaryByte) {
            L.error = block_prefix(L) + strf(": dynamic shared memory overflow: byte offset %zu was "
                                             "written, but the launch gave only %u bytes",
                                             L.smem_bytes + i, L.smem_bytes);
            return false;
        }
    }
    return true;
}

bool run_block(Launch& L, uint3 block_idx) {
    L.block_idx = block_idx;
    memset(L.smem_alloc, kCanaryByte, kFrontCanary);
    memset(L.smem, kPoisonByte, L.smem_bytes);
    memset(L.smem + L.smem_bytes, kCanaryByte, kBackCanary);

    const dim3 b = L.block;
    for (unsigned t = 0; t < L.threads; ++t) {
        Fiber& f = L.fibers[t];
        f.tid = t;
        f.lane = t % 32;
        f.warp = t / 32;
        f.state = State::Ready;
        f.tc.thread_idx = uint3{t % b.x, (t / b.x) % b.y, t / (b.x * b.y)};
        f.tc.block_idx = block_idx;
        f.tc.block_dim = L.block;
        f.tc.grid_dim = L.grid;
        f.tc.dynamic_smem = L.smem;
        ctx_make(f.ctx, g_stacks[t], kStackBytes, &fiber_main);
    }
    std::fill(L.warp_waiting.begin(), L.warp_waiting.end(), 0u);
    L.live = L.threads;
    L.at_barrier = 0;

    for (;;) {
        L.order.clear();
        for (const Fiber& f : L.fibers)
            if (f.state == State::Ready) L.order.push_back(f.tid);
        if (L.order.empty()) {
            if (L.live == 0) break;
            if (L.at_barrier == L.live) {
                if (!release_block_barrier(L)) return false;
                continue;
            }
            L.error = deadlock_report(L);
            return false;
        }
        // Every fiber in `order` is ready and stays so until it runs: only a running fiber
        // changes its own state to waiting. The fibers pass control down the list themselves
        // (suspend()); the last one, or a failing one, switches back here.
        apply_schedule(L, L.order);
        Fiber& first = L.fibers[L.order[0]];
        L.next = 1;
        L.current = &first;
        tls_ctx = &first.tc;
        ctx_switch(L.scheduler, first.ctx);
        if (L.failed) return false;
    }
    return check_canaries(L);
}

// Linear block number -> block index, x fastest (CUDA's order).
uint3 block_at(const dim3& g, uint64_t i) {
    return uint3{(unsigned)(i % g.x), (unsigned)((i / g.x) % g.y), (unsigned)(i / ((uint64_t)g.x * g.y))};
}

std::string check_limits(dim3 grid, dim3 block, unsigned smem) {
    const uint64_t threads = (uint64_t)block.x * block.y * block.z;
    if (block.x < 1 || block.y < 1 || block.z < 1 || grid.x < 1 || grid.y < 1 || grid.z < 1)
        return "all grid and block dimensions must be >= 1";
    if (threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64)
        return strf("block (%u,%u,%u) exceeds the limits (at most 1024 threads, x,y <= 1024, z <= 64)",
                    block.x, block.y, block.z);
    if (grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
        return strf("grid (%u,%u,%u) exceeds the limits (x <= 2^31-1, y,z <= 65535)", grid.x, grid.y,
                    grid.z);
    if (smem > 227 * 1024) return strf("%u bytes of dynamic shared memory exceed the 227 KiB limit", smem);
    return "";
}

// The dynamic shared memory buffer, reused across launches on this OS thread.
struct SmemBuffer {
    unsigned char* p = nullptr;
    size_t size = 0;
    ~SmemBuffer() { free(p); }
    unsigned char* get(size_t n) {
        if (n > size) {
            free(p);
            p = static_cast<unsigned char*>(aligned_alloc(256, (n + 255) & ~size_t(255)));
            size = p ? n : 0;
        }
        return p;
    }
};
thread_local SmemBuffer g_smem;

}  // namespace

// =============================================================================================
// Entry points called by kernels (declared in cusim.h)
// =============================================================================================
int block_barrier(BarrierOp op, int pred, Site site) {
    Launch& L = current_launch();
    Fiber& f = *L.current;
    f.state = State::AtBarrier;
    f.site = site;
    f.op = (int)op;
    f.pred = pred;
    ++L.at_barrier;
    suspend(L, f);
    return (int)f.result;
}

uint64_t warp_op(WarpOp op, unsigned mask, uint64_t value, int arg, int width, Site site) {
    Launch& L = current_launch();
    Fiber& f = *L.current;
    if (warp_op_misused(L, f, op, mask, width, site)) abandon_block(L, f);

    f.state = State::AtWarpOp;
    f.op = (int)op;
    f.mask = mask;
    f.value = value;
    f.arg = arg;
    f.width = width;
    f.site = site;
    unsigned& waiting = L.warp_waiting[f.warp];
    waiting |= 1u << f.lane;

    // Complete if every lane of the mask waits with the same mask; otherwise some lane still has
    // to arrive (or waits in another operation and the deadlock report will say so).
    bool complete = (waiting & mask) == mask;
    for (unsigned m = mask; complete && m; m &= m - 1)
        complete = L.fibers[f.warp * 32 + __builtin_ctz(m)].mask == mask;
    if (!complete) {
        suspend(L, f);
        return f.result;
    }
    if (warp_op_mismatched(L, f)) abandon_block(L, f);
    complete_warp_op(L, f.warp, mask);
    return f.result;  // the last lane to arrive carries on without a switch
}

unsigned active_mask() {
    Launch& L = current_launch();
    const Fiber& f = *L.current;
    unsigned mask = 0;
    for (unsigned m = lanes_in_warp(L, f.warp); m; m &= m - 1) {
        unsigned lane = __builtin_ctz(m);
        if (L.fibers[f.warp * 32 + lane].state != State::Exited) mask |= 1u << lane;
    }
    return mask;
}

void trap(const char* what, Site site) {
    Launch& L = current_launch();
    L.error = thread_prefix(L, *L.current) + ": " + what + " at " + where(site);
    abandon_block(L, *L.current);
}

}  // namespace cusim

// =============================================================================================
// Host API (cusim_host.h)
// =============================================================================================
using namespace cusim;

size_t cusim_kernel_count() {
    size_t n = 0;
    while (registry[n].name) ++n;
    return n;
}

const KernelEntry* cusim_kernel_at(size_t index) {
    return index < cusim_kernel_count() ? &registry[index] : nullptr;
}

const KernelEntry* cusim_find_kernel(const char* name) {
    if (!name) return nullptr;
    for (const KernelEntry* e = registry; e->name; ++e)
        if (strcmp(e->name, name) == 0) return e;
    return nullptr;
}

void* cusim_alloc(size_t bytes) {
    const size_t rounded = (std::max<size_t>(bytes, 1) + 255) & ~size_t(255);
    if (rounded < bytes) return nullptr;
    void* p = aligned_alloc(256, rounded);
    if (p) memset(p, kPoisonByte, rounded);
    return p;
}

void cusim_free(void* ptr) { free(ptr); }

const char* cusim_launch(const char* kernel, dim3 grid, dim3 block, unsigned shared_bytes,
                         void** params, int schedule, uint64_t seed) {
    static thread_local std::string last_error;
    auto failed = [](std::string msg) {
        last_error = std::move(msg);
        return last_error.c_str();
    };
    const KernelEntry* entry = cusim_find_kernel(kernel);
    if (!entry) return failed(strf("no kernel named %s in the simulator library", kernel ? kernel : "(null)"));
    std::string limits = check_limits(grid, block, shared_bytes);
    if (!limits.empty()) return failed(strf("kernel %s: launch rejected: %s", kernel, limits.c_str()));
    if (schedule < IN_ORDER || schedule > RANDOM)
        return failed(strf("kernel %s: unknown schedule %d (0 IN_ORDER, 1 REVERSE, 2 RANDOM)", kernel, schedule));
    if (g_launch) return failed(strf("kernel %s: cusim_launch called from inside a kernel", kernel));

    Launch L;
    L.kernel = entry;
    L.params = params;
    L.grid = grid;
    L.block = block;
    L.threads = block.x * block.y * block.z;
    L.schedule = (Schedule)schedule;
    L.rng = Rng{seed};
    L.smem_bytes = shared_bytes;
    L.smem_alloc = g_smem.get(kFrontCanary + shared_bytes + kBackCanary);
    if (!L.smem_alloc || !g_stacks.reserve(L.threads))
        return failed(strf("kernel %s: out of memory for shared memory or fiber stacks", kernel));
    L.smem = L.smem_alloc + kFrontCanary;
    L.fibers.resize(L.threads);
    L.warp_waiting.assign((L.threads + 31) / 32, 0u);
    L.order.reserve(L.threads);

    const uint64_t blocks = (uint64_t)grid.x * grid.y * grid.z;
    // Block order. A real shuffle when it fits in memory; for absurdly large grids an affine
    // permutation i -> (a*i + c) mod n with gcd(a, n) = 1 is still a bijection.
    std::vector<uint32_t> shuffled;
    uint64_t mul = 1, add = 0;
    if (L.schedule == RANDOM) {
        if (blocks <= (1u << 22)) {
            shuffled.resize(blocks);
            for (uint32_t i = 0; i < blocks; ++i) shuffled[i] = i;
            for (size_t i = blocks; i > 1; --i) std::swap(shuffled[i - 1], shuffled[L.rng.below(i)]);
        } else {
            do mul = L.rng.below(blocks - 1) + 1; while (std::gcd(mul, blocks) != 1);
            add = L.rng.below(blocks);
        }
    }

    g_launch = &L;
    for (uint64_t i = 0; i < blocks; ++i) {
        uint64_t b = i;
        if (L.schedule == REVERSE) b = blocks - 1 - i;
        else if (L.schedule == RANDOM)
            b = shuffled.empty() ? (uint64_t)(((unsigned __int128)mul * i + add) % blocks) : shuffled[i];
        if (!run_block(L, block_at(grid, b))) {
            g_launch = nullptr;
            tls_ctx = nullptr;
            return failed(L.error);
        }
    }
    g_launch = nullptr;
    tls_ctx = nullptr;
    return nullptr;
}
