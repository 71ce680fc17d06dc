// ketacore/ensemble.hpp -- many trials (and, for one huge trial, many channel blocks) on threads.
//
// Reproducibility (DESIGN.md rule 3): trial i uses the stream
//   PCG64(SeedSequence(entropy, spawn_key=(i,)))                     (population; ssa block 0)
//   PCG64(SeedSequence(entropy, spawn_key=(i, b)))   for b >= 1      (ssa channel block b)
// where the ssa channel blocks have the fixed size kChannelBlock.  Which thread runs which work
// item never matters: every output is an integer accumulation (difference arrays, counts, sums,
// sums of squares in 128-bit), and integer addition is associative, so the bytes are the same
// for any n_threads and for any split of the trials into calls.
#pragma once
#include <algorithm>
#include <functional>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "ketacore/cancel.hpp"
#include "ketacore/population.hpp"
#include "ketacore/rng.hpp"
#include "ketacore/ssa.hpp"

namespace ketacore {

constexpr std::int64_t kChannelBlock = 256;

using u128 = unsigned __int128;

struct EnsembleSpec {
  const CompiledScheme* scheme = nullptr;
  const SegmentPlan* plan = nullptr;
  Grid grid;
  std::vector<double> p0;          // initial distribution (length K, sums to 1)
  std::int64_t n_channels = 1;
  std::vector<std::uint32_t> entropy;
  std::vector<std::uint64_t> trials;  // absolute trial indices, one per output row
  int n_threads = 1;
  bool summary = false;
  // summary only: G groups of states (G x K flags, row-major) whose count sum_{j in g} n_j is
  // summarised like a state's (sum and sum of squares per sample), after the K states: the
  // variance of a group's count (e.g. all open states) needs the states' covariances, which
  // per-state sums of squares do not give
  std::vector<std::uint8_t> groups;
  int n_groups = 0;
  const CancelToken* token = nullptr;
  std::vector<std::uint8_t> jump_tables;  // ssa: per condition, build its jump table; empty: all
  // population: bytes for the transition-matrix tables held at once (PopulationTables), and for
  // the trial states kept between chunks when they do not all fit (see run_population_ensemble)
  std::size_t pop_table_bytes = kPopTableBytes;
  std::size_t pop_state_bytes = kPopStateBytes;
  static constexpr std::size_t kPopTableBytes = std::size_t(32) << 20;
  static constexpr std::size_t kPopStateBytes = std::size_t(64) << 20;
  // population: runs of at least this many channels draw each step in column order
  // (PopulationTables::step_columns), smaller ones in row order (step).  The two orders draw
  // different numbers, both exact; the default is where columns start to pay (kPopColumnsMin).
  std::int64_t pop_columns_min = kPopColumnsMin;
  static constexpr std::int64_t kPopColumnsMin = std::int64_t(1) << 17;
};

// Outputs.  counts: n_trials x n_samples x K (record="counts").  Summary: the exact sum (int64)
// and sum of squares (128-bit, split into lo/hi uint64) over trials per sample and state
// (n_samples x K entries), followed by those per sample and group (EnsembleSpec::groups;
// n_samples x G entries): the state block keeps the layout and loop it had without groups.
template <class T>
struct EnsembleOut {
  T* counts = nullptr;
  std::int64_t* sum = nullptr;
  std::uint64_t* sumsq_lo = nullptr;
  std::uint64_t* sumsq_hi = nullptr;
};

namespace detail {

// Run f(thread_index) on n threads (inline when n == 1).  An exception on any thread (say
// std::bad_alloc) is caught there, every started thread is joined, and the first one is rethrown
// on the calling thread -- an exception escaping a std::thread would call std::terminate and
// take the interpreter down.  If a thread cannot be started, the threads already running finish
// and the error is rethrown (the caller discards the partial results of a failed call).
template <class F>
void parallel(int n, F&& f) {
  if (n <= 1) {
    f(0);
    return;
  }
  std::mutex mu;
  std::exception_ptr err;
  auto keep = [&](std::exception_ptr e) {
    std::lock_guard<std::mutex> lk(mu);
    if (!err) err = e;
  };
  auto guarded = [&](int i) {
    try {
      f(i);
    } catch (...) {
      keep(std::current_exception());
    }
  };
  std::vector<std::thread> th;
  try {
    th.reserve(n - 1);
    for (int i = 1; i < n; ++i) th.emplace_back(guarded, i);
  } catch (...) {
    keep(std::current_exception());
  }
  if (!err) guarded(0);
  for (auto& t : th) t.join();
  if (err) std::rethrow_exception(err);
}

// Summary groups as lists of member states: group g is member[start[g] .. start[g + 1]).
struct GroupList {
  std::vector<std::int32_t> start{0};
  std::vector<std::int32_t> member;
  int size() const { return static_cast<int>(start.size()) - 1; }
  static GroupList from_flags(const std::vector<std::uint8_t>& flags, int G, int K) {
    GroupList out;
    for (int g = 0; g < G; ++g) {
      for (int j = 0; j < K; ++j)
        if (flags[static_cast<std::size_t>(g) * K + j]) out.member.push_back(j);
      out.start.push_back(static_cast<std::int32_t>(out.member.size()));
    }
    return out;
  }
};

// Exact summaries per sample and state: the sum of the counts (int64) and the sum of their
// squares (128-bit, kept as lo/hi uint64 words like the output).  The accumulator of thread 0
// writes straight into the output arrays (init_external); other threads accumulate into their
// own buffers, which merge_summary adds into the output once they are done, so a single-threaded
// run allocates no working copy of the summaries.
struct SummaryAcc {
  std::vector<std::int64_t> own_sum;
  std::vector<std::uint64_t> own_lo, own_hi;
  std::int64_t* sum = nullptr;
  std::uint64_t* lo = nullptr;
  std::uint64_t* hi = nullptr;
  void init_external(std::int64_t* s, std::uint64_t* l, std::uint64_t* h, std::size_t n) {
    sum = s;
    lo = l;
    hi = h;
    std::fill(sum, sum + n, std::int64_t(0));
    std::fill(lo, lo + n, std::uint64_t(0));
    std::fill(hi, hi + n, std::uint64_t(0));
  }
  void init(std::size_t n) {
    own_sum.assign(n, 0);
    own_lo.assign(n, 0);
    own_hi.assign(n, 0);
    sum = own_sum.data();
    lo = own_lo.data();
    hi = own_hi.data();
  }
  bool active() const { return sum != nullptr; }
  // (lo, hi) += x, a 128-bit addition.  The high word is read and written only when x has
  // high bits or the low word carries -- rarely for counts below 2^32 (squares below 2^64) --
  // so a sample's summary update touches two arrays, not three (it is bound by memory traffic
  // on fine grids: 1e5 samples x K entries x 8 bytes per array, swept once per trial).
  static inline void add128(std::uint64_t& l, std::uint64_t& h, u128 x) {
    const std::uint64_t xl = static_cast<std::uint64_t>(x);
    const std::uint64_t xh = static_cast<std::uint64_t>(x >> 64);
    const std::uint64_t nl = l + xl;
    l = nl;
    if (__builtin_expect(xh != 0 || nl < xl, 0)) h += xh + (nl < xl ? 1u : 0u);
  }
  inline void add_value(std::size_t at, std::int64_t v) {
    sum[at] += v;
    const std::uint64_t a = static_cast<std::uint64_t>(v);
    add128(lo[at], hi[at], static_cast<u128>(a) * a);
  }
  template <class T>
  inline void add_row(std::size_t off, const T* c, int K) {
    for (int j = 0; j < K; ++j) add_value(off + j, static_cast<std::int64_t>(c[j]));
  }
  // one sample's group counts (group g: sum of c over member[start[g] .. start[g + 1])) at
  // at .. at + G - 1
  template <class T>
  inline void add_groups(std::size_t at, const T* c, const std::int32_t* start,
                         const std::int32_t* member, int G) {
    for (int g = 0; g < G; ++g) {
      std::int64_t v = 0;
      for (std::int32_t m = start[g]; m < start[g + 1]; ++m) v += static_cast<std::int64_t>(c[member[m]]);
      add_value(at + g, v);
    }
  }
};

// Add the accumulators of threads 1.. (own buffers) into the output that thread 0's accumulator
// wrote (init_external).
inline void merge_summary(std::vector<SummaryAcc>& accs, std::size_t n) {
  SummaryAcc& out = accs[0];
  for (std::size_t t = 1; t < accs.size(); ++t) {
    const SummaryAcc& a = accs[t];
    if (!a.active()) continue;
    for (std::size_t i = 0; i < n; ++i) {
      out.sum[i] += a.sum[i];
      SummaryAcc::add128(out.lo[i], out.hi[i], (static_cast<u128>(a.hi[i]) << 64) | a.lo[i]);
    }
  }
}

}  // namespace detail

// ------------------------------------------------------------------------ SSA
namespace detail {

// Zeroed scratch buffer taken from a process-wide pool and returned on destruction, so repeated
// calls (on any thread, including short-lived workers) do not pay page faults for fresh memory.
// Buffers above kKeepBytes are freed instead of pooled; at most kMaxPooled are kept.
template <class T>
struct Scratch {
  static constexpr std::size_t kKeepBytes = std::size_t(32) << 20;
  static constexpr std::size_t kMaxPooled = 8;
  std::vector<T> buf;
  explicit Scratch(std::size_t n) {
    if (n == 0) return;  // not needed: leave the pool alone
    {
      std::lock_guard<std::mutex> lk(mu());
      auto& p = pool();
      if (!p.empty()) {
        buf.swap(p.back());
        p.pop_back();
      }
    }
    if (buf.size() < n) buf.resize(n);
    std::fill(buf.begin(), buf.begin() + n, T{});
  }
  ~Scratch() {
    if (buf.size() * sizeof(T) > kKeepBytes || buf.empty()) return;
    std::lock_guard<std::mutex> lk(mu());
    if (pool().size() < kMaxPooled) pool().push_back(std::move(buf));
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* data() { return buf.data(); }
  static std::vector<std::vector<T>>& pool() {
    static std::vector<std::vector<T>> p;
    return p;
  }
  static std::mutex& mu() {
    static std::mutex m;
    return m;
  }
};

// In-place prefix sum over samples of an S x K row-major block.  The running sums stay in
// registers (one per state), so each row costs K loads, adds and stores with no dependency on
// the row just stored; the plain form `a[x] += a[x - K]` reloads each sum from the store before
// it and ran at store-forwarding latency (~0.25 ms for 1e5 x 6, most of a fine grid's fixed cost).
template <int KC, class T>
inline void prefix_sum_rows_k(T* __restrict a, std::size_t S) {
  T acc[KC];
  for (int j = 0; j < KC; ++j) acc[j] = a[j];
  for (std::size_t k = 1; k < S; ++k) {
    T* __restrict cur = a + k * KC;
    for (int j = 0; j < KC; ++j) {
      acc[j] += cur[j];
      cur[j] = acc[j];
    }
  }
}

template <class T>
inline void prefix_sum_rows(T* a, std::int64_t S, int K) {
  if (S <= 1 || K <= 0) return;
  const std::size_t s = static_cast<std::size_t>(S);
  switch (K) {
    case 1: return prefix_sum_rows_k<1>(a, s);
    case 2: return prefix_sum_rows_k<2>(a, s);
    case 3: return prefix_sum_rows_k<3>(a, s);
    case 4: return prefix_sum_rows_k<4>(a, s);
    case 5: return prefix_sum_rows_k<5>(a, s);
    case 6: return prefix_sum_rows_k<6>(a, s);
    case 7: return prefix_sum_rows_k<7>(a, s);
    case 8: return prefix_sum_rows_k<8>(a, s);
    default: break;
  }
  // larger schemes: blocks of 8 states, each summed down the samples with its sums in registers
  const std::size_t k_all = static_cast<std::size_t>(K);
  for (std::size_t j0 = 0; j0 < k_all; j0 += 8) {
    const std::size_t w = std::min<std::size_t>(8, k_all - j0);
    T acc[8];
    for (std::size_t j = 0; j < w; ++j) acc[j] = a[j0 + j];
    for (std::size_t k = 1; k < s; ++k) {
      T* __restrict cur = a + k * k_all + j0;
      for (std::size_t j = 0; j < w; ++j) {
        acc[j] += cur[j];
        cur[j] = acc[j];
      }
    }
  }
}

}  // namespace detail

// The first sample that sees a jump at time t, from y = t / dt: floor(y) + 1, clamped to the last
// sample (t < t_stop = (S - 1) dt, so only rounding can push it past).  Every grid sink uses it.
inline std::int64_t first_sample_after(double y, std::int64_t last) {
  const std::int64_t k = static_cast<std::int64_t>(y) + 1;
  return k < last ? k : last;
}

// Grid sink writing into an S x K block: a jump at t adds -1 (left state) and +1 (entered state)
// at sample first_sample_after(t / dt).
template <class T>
struct ClampedGridSink {
  T* diff;
  int K;
  double inv_dt;
  std::int64_t last;
  inline void start(int s) { diff[s] += 1; }
  inline void jump(double t, int from, int to) {
    T* d = diff + first_sample_after(t * inv_dt, last) * K;
    d[from] -= 1;
    d[to] += 1;
  }
  inline void finish(int) {}
  inline void done() {}
};

// The same writes as ClampedGridSink, delayed: each jump's row of the difference array is
// prefetched when the jump is reported and written 0 to kDelay - 1 jumps later (in batches, across
// channel boundaries; `done` writes the rest), so on grids larger than the caches the
// read-modify-writes of consecutive jumps no longer wait for memory one by one.  The order of the
// integer additions changes, not their sum.  The pending jumps live in a caller-owned buffer so
// that copying the sink (ssa_advance keeps a local copy) stays cheap.
template <class T>
struct PrefetchGridSink {
  static constexpr int kDelay = 16;
  struct Pending {
    std::int64_t row;
    std::int32_t src, dst;
  };
  T* diff;
  int K;
  double inv_dt;
  std::int64_t last;
  Pending* buf;  // kDelay entries
  int n = 0;
  inline void start(int s) { diff[s] += 1; }
  inline void jump(double t, int from, int to) {
    const std::int64_t o = first_sample_after(t * inv_dt, last) * K;
    __builtin_prefetch(diff + o + from, 1, 3);
    __builtin_prefetch(diff + o + to, 1, 3);
    buf[n] = Pending{o, from, to};
    if (++n == kDelay) flush();
  }
  inline void flush() {
    for (int i = 0; i < n; ++i) {
      T* d = diff + buf[i].row;
      d[buf[i].src] -= 1;
      d[buf[i].dst] += 1;
    }
    n = 0;
  }
  inline void finish(int) {}
  inline void done() { flush(); }
};

// The same difference array for coarse grids (many jumps per sample interval), written as
// occupancy runs: the state entered at sample kp and left at sample k adds +1 at kp and -1 at k,
// and a run with k == kp (the channel passed through that state between two samples) writes
// nothing.  The sums are the same integers as ClampedGridSink's, but memory is touched only when
// the channel's sample index changes, and consecutive jumps within one sample interval no longer
// read-modify-write the same cells back to back.
template <class T>
struct RunGridSink {
  T* diff;
  int K;
  double inv_dt;
  std::int64_t last;
  std::int64_t kp = 0;  // sample where the current state's run began
  double kp_d = 0.0;    // kp as a double: t * inv_dt < kp_d  =>  same sample as kp
  inline void start(int) {
    kp = 0;
    kp_d = 0.0;
  }
  inline void jump(double t, int from, int /*to*/) {
    const double y = t * inv_dt;
    if (y >= kp_d) {
      const std::int64_t k = first_sample_after(y, last);
      if (k != kp) {
        diff[kp * K + from] += 1;
        diff[k * K + from] -= 1;
        kp = k;
        kp_d = static_cast<double>(k);
      }
    }
  }
  inline void finish(int s) { diff[kp * K + s] += 1; }
  inline void done() {}
};

// Fine grids, up to 8 states and at most 32767 channels per trial: the difference array packed
// as one 16-byte row of eight 16-bit lanes per sample (1.6 MB instead of 2.4 MB for 1e5 samples
// and 6 states), so a jump is one vector read-modify-write of a precomputed move (+1 in the entered
// state's lane, -1 in the left one's) instead of two scalar ones, and the output is written once,
// by the prefix sum, instead of being zeroed first.  The lanes add modulo 2^16; that is exact
// because every final lane value fits in int16: row 0 holds the initial counts (0..N) and row
// k >= 1 the net change of a state's count between samples k - 1 and k (-N..N), with N <= 32767,
// so the sign-extended lane is the true integer (the order of the additions and any wrap-around
// on the way do not matter).
typedef std::uint16_t u16x8 __attribute__((vector_size(16)));
constexpr std::int64_t kPackedMaxChannels = 32767;
constexpr int kPackedMaxStates = 8;

struct PackedMoves {
  u16x8 unit[kPackedMaxStates];                       // +1 in lane s
  u16x8 move[kPackedMaxStates * kPackedMaxStates];  // [from * K + to]: -1 in lane from, +1 in lane to
  explicit PackedMoves(int K) {
    for (int s = 0; s < kPackedMaxStates; ++s) {
      unit[s] = u16x8{};
      if (s < K) unit[s][s] = 1;
    }
    for (int a = 0; a < K; ++a)
      for (int b = 0; b < K; ++b) move[a * K + b] = unit[b] - unit[a];
  }
};

// PrefetchGridSink's delayed writes, on packed rows.
struct PackedGridSink {
  static constexpr int kDelay = 16;
  struct Pending {
    std::int64_t row;
    std::int64_t move;
  };
  u16x8* rows;
  const PackedMoves* mv;
  int K;
  double inv_dt;
  std::int64_t last;
  Pending* buf;  // kDelay entries
  int n = 0;
  inline void start(int s) { rows[0] += mv->unit[s]; }
  inline void jump(double t, int from, int to) {
    const std::int64_t k = first_sample_after(t * inv_dt, last);
    __builtin_prefetch(rows + k, 1, 3);
    buf[n] = Pending{k, static_cast<std::int64_t>(from) * K + to};
    if (++n == kDelay) flush();
  }
  inline void flush() {
    for (int i = 0; i < n; ++i) rows[buf[i].row] += mv->move[buf[i].move];
    n = 0;
  }
  inline void finish(int) {}
  inline void done() { flush(); }
};

namespace detail {

// out (S x K) = prefix sums over samples of the packed rows' sign-extended lanes.
template <int KC, class T>
inline void unpack_prefix_k(const u16x8* __restrict rows, T* __restrict out, std::size_t S) {
  std::int64_t acc[KC] = {};
  for (std::size_t k = 0; k < S; ++k) {
    T* __restrict o = out + k * KC;
    for (int j = 0; j < KC; ++j) {
      acc[j] += static_cast<std::int16_t>(rows[k][j]);
      o[j] = static_cast<T>(acc[j]);
    }
  }
}

template <class T>
inline void unpack_prefix(const u16x8* rows, T* out, std::int64_t S, int K) {
  const std::size_t s = static_cast<std::size_t>(S);
  switch (K) {
    case 1: return unpack_prefix_k<1>(rows, out, s);
    case 2: return unpack_prefix_k<2>(rows, out, s);
    case 3: return unpack_prefix_k<3>(rows, out, s);
    case 4: return unpack_prefix_k<4>(rows, out, s);
    case 5: return unpack_prefix_k<5>(rows, out, s);
    case 6: return unpack_prefix_k<6>(rows, out, s);
    case 7: return unpack_prefix_k<7>(rows, out, s);
    default: return unpack_prefix_k<8>(rows, out, s);
  }
}

}  // namespace detail

template <class T>
void run_ssa_ensemble(const EnsembleSpec& spec, EnsembleOut<T>& out) {
  const SsaTables tab(*spec.scheme, *spec.plan, &spec.jump_tables, spec.token);
  if (spec.token->cancelled()) return;  // (the tables may be incomplete)
  const Timeline tl(*spec.plan);
  const Categorical init(spec.p0);
  const int K = tab.K;
  const std::int64_t S = spec.grid.n_samples;
  const std::size_t row = static_cast<std::size_t>(S) * K;
  const double t_stop = static_cast<double>(S - 1) * spec.grid.dt;
  const double inv_dt = 1.0 / spec.grid.dt;
  const std::int64_t N = spec.n_channels;
  const std::int64_t n_blocks = (N + kChannelBlock - 1) / kChannelBlock;
  const std::size_t n_trials = spec.trials.size();
  const int nt = std::max(1, spec.n_threads);
  const CancelToken& token = *spec.token;

  // simulate channel block b of trial `trial`, adding its jumps to diff (S x K, zeroed by caller)
  // (Tried: advancing all channels of a block window by window so the jumps stay in a cache-sized
  // slice of the grid; no measurable gain for grids of a few MB on this machine, so not used.)
  // Coarse grid (even the slowest state leaves about once per sample interval or more often):
  // most jumps share their sample with the previous one, so write occupancy runs instead.
  double min_rate = std::numeric_limits<double>::infinity();
  for (double r : tab.exit_rate)
    if (r > 0.0) min_rate = std::min(min_rate, r);
  const bool runs = min_rate * spec.grid.dt >= 1.0;
  auto run_block_with = [&](auto sink, std::uint64_t trial, std::int64_t b, long& events) {
    Pcg64 g = make_stream(spec.entropy, trial, static_cast<std::uint64_t>(b));
    const std::int64_t c0 = b * kChannelBlock, c1 = std::min(N, c0 + kChannelBlock);
    for (std::int64_t c = c0; c < c1 && !token.cancelled(); ++c) {
      const int s0 = init.draw(g);
      sink.start(s0);
      ChannelCursor cur = ssa_start(tab, tl, t_stop, g, s0);
      ssa_advance(tab, tl, t_stop, g, cur, t_stop, sink, token, events);
      sink.finish(cur.s);
    }
    sink.done();
  };
  // Fine grids larger than the core's L2 cache: delay the writes behind prefetches.
  const bool prefetch = row * sizeof(T) > (std::size_t(256) << 10);
  // (the fine-grid sinks' blocks are kept out of line: which sinks the compiler inlined into one
  // function changed the code of the others, and the 1 ms-grid workload ran 7-10 % slower)
  auto run_block_prefetch = [&](std::uint64_t trial, std::int64_t b, T* diff, long& events) __attribute__((noinline)) {
    typename PrefetchGridSink<T>::Pending pending[PrefetchGridSink<T>::kDelay];
    run_block_with(PrefetchGridSink<T>{diff, K, inv_dt, S - 1, pending}, trial, b, events);
  };
  auto run_block = [&](std::uint64_t trial, std::int64_t b, T* diff, long& events) {
    if (runs)
      run_block_with(RunGridSink<T>{diff, K, inv_dt, S - 1}, trial, b, events);
    else if (prefetch)
      run_block_prefetch(trial, b, diff, events);
    else
      run_block_with(ClampedGridSink<T>{diff, K, inv_dt, S - 1}, trial, b, events);
  };
  // ... and, when the counts fit, on packed 16-bit rows (PackedGridSink)
  const bool packed = prefetch && !runs && K <= kPackedMaxStates && N <= kPackedMaxChannels;
  const PackedMoves moves(std::min(K, kPackedMaxStates));
  auto run_block_packed = [&](std::uint64_t trial, std::int64_t b, u16x8* rows, long& events) __attribute__((noinline)) {
    PackedGridSink::Pending pending[PackedGridSink::kDelay];
    run_block_with(PackedGridSink{rows, &moves, K, inv_dt, S - 1, pending}, trial, b, events);
  };
  const std::size_t n_packed = packed ? static_cast<std::size_t>(S) : 0;

  std::vector<detail::SummaryAcc> accs(nt);
  const int G = spec.summary ? spec.n_groups : 0;
  const detail::GroupList grp = detail::GroupList::from_flags(spec.groups, G, K);
  const std::int32_t* g_start = grp.start.data();
  const std::int32_t* g_member = grp.member.data();
  const std::size_t srow = static_cast<std::size_t>(S) * (static_cast<std::size_t>(K) + G);  // summary entries
  const bool by_trial = n_blocks == 1 || static_cast<std::int64_t>(n_trials) >= nt;
  if (by_trial) {
    std::atomic<std::size_t> next{0};
    detail::parallel(std::min<std::size_t>(nt, std::max<std::size_t>(1, n_trials)), [&](int ti) {
      // counts: accumulate straight into the output rows; summary: into a reused scratch block
      detail::Scratch<T> scratch(spec.summary ? row : 0);
      detail::Scratch<u16x8> pk(n_packed);  // zeroed
      bool pk_zero = true;
      if (spec.summary) {
        if (ti == 0)
          accs[0].init_external(out.sum, out.sumsq_lo, out.sumsq_hi, srow);
        else
          accs[ti].init(srow);
      }
      long events = kCancelPollInterval;
      for (;;) {
        const std::size_t i = next.fetch_add(1);
        if (i >= n_trials || token.cancelled()) break;
        T* dst = spec.summary ? scratch.data() : out.counts + i * row;
        if (packed) {
          if (!pk_zero) std::fill(pk.data(), pk.data() + n_packed, u16x8{});
          pk_zero = false;
          for (std::int64_t b = 0; b < n_blocks && !token.cancelled(); ++b)
            run_block_packed(spec.trials[i], b, pk.data(), events);
          detail::unpack_prefix(pk.data(), dst, S, K);
        } else {
          std::fill(dst, dst + row, T(0));
          for (std::int64_t b = 0; b < n_blocks && !token.cancelled(); ++b) run_block(spec.trials[i], b, dst, events);
          detail::prefix_sum_rows(dst, S, K);
        }
        if (spec.summary) {
          for (std::int64_t k = 0; k < S; ++k) accs[ti].add_row(k * K, dst + k * K, K);
          for (std::int64_t k = 0; G && k < S; ++k)
            accs[ti].add_groups(row + static_cast<std::size_t>(k) * G, dst + k * K, g_start, g_member, G);
        }
      }
    });
  } else {
    // few trials, many blocks: trials in turn, blocks of each trial on threads (no more threads
    // than blocks: each extra thread would only zero and merge an idle S x K buffer)
    const int ntb = static_cast<int>(std::min<std::int64_t>(nt, n_blocks));
    std::vector<std::unique_ptr<detail::Scratch<T>>> diffs(ntb);
    std::vector<std::unique_ptr<detail::Scratch<u16x8>>> pks(ntb);  // packed: every thread's own rows
    detail::Scratch<T> tmp_s(spec.summary ? row : 0);
    T* tmp = tmp_s.data();
    if (spec.summary) accs[0].init_external(out.sum, out.sumsq_lo, out.sumsq_hi, srow);
    for (std::size_t i = 0; i < n_trials && !token.cancelled(); ++i) {
      T* dst = spec.summary ? tmp : out.counts + i * row;
      if (!packed) std::fill(dst, dst + row, T(0));
      std::atomic<std::int64_t> next{0};
      detail::parallel(ntb, [&](int ti) {
        if (packed) {
          if (!pks[ti]) pks[ti].reset(new detail::Scratch<u16x8>(n_packed));
          else std::fill(pks[ti]->data(), pks[ti]->data() + n_packed, u16x8{});
          u16x8* rows = pks[ti]->data();
          long events = kCancelPollInterval;
          for (;;) {
            const std::int64_t b = next.fetch_add(1);
            if (b >= n_blocks || token.cancelled()) break;
            run_block_packed(spec.trials[i], b, rows, events);
          }
          return;
        }
        // thread 0 accumulates straight into dst; the others into their own buffers
        T* d = dst;
        if (ti > 0) {
          if (!diffs[ti]) diffs[ti].reset(new detail::Scratch<T>(row));
          else std::fill(diffs[ti]->data(), diffs[ti]->data() + row, T(0));
          d = diffs[ti]->data();
        }
        long events = kCancelPollInterval;
        for (;;) {
          const std::int64_t b = next.fetch_add(1);
          if (b >= n_blocks || token.cancelled()) break;
          run_block(spec.trials[i], b, d, events);
        }
      });
      if (packed) {
        u16x8* r0 = pks[0]->data();
        for (int ti = 1; ti < ntb; ++ti) {
          if (!pks[ti]) continue;
          const u16x8* r = pks[ti]->data();
          for (std::size_t x = 0; x < n_packed; ++x) r0[x] += r[x];
        }
        detail::unpack_prefix(r0, dst, S, K);
      } else {
        for (int ti = 1; ti < ntb; ++ti) {
          if (!diffs[ti]) continue;
          const T* d = diffs[ti]->data();
          for (std::size_t x = 0; x < row; ++x) dst[x] += d[x];
        }
        detail::prefix_sum_rows(dst, S, K);
      }
      if (spec.summary) {
        for (std::int64_t k = 0; k < S; ++k) accs[0].add_row(k * K, dst + k * K, K);
        for (std::int64_t k = 0; G && k < S; ++k)
          accs[0].add_groups(row + static_cast<std::size_t>(k) * G, dst + k * K, g_start, g_member, G);
      }
    }
  }
  if (spec.summary && !token.cancelled()) detail::merge_summary(accs, srow);
}

// ---------------------------------------------------------------- population
// When every key's tables fit in spec.pop_table_bytes (all protocols but long sampled waveforms),
// the tables are built once (on the worker threads) and each trial runs from start to end.
// Otherwise the run goes chunk by chunk (PopulationTables::prepare), every trial of a batch
// advancing through a chunk before the next is built; a trial's counts and stream wait in
// between (batches of at most spec.pop_state_bytes of such states; each batch rebuilds the
// tables).  A trial consumes its stream in the same order either way, so results are identical.
template <class T>
void run_population_ensemble(const EnsembleSpec& spec, EnsembleOut<T>& out) {
  const PopulationSchedule sch(*spec.scheme, *spec.plan, spec.grid);
  PopulationTables tabs(*spec.scheme, *spec.plan, spec.grid, sch, spec.pop_table_bytes);
  const int K = sch.K;
  const std::int64_t S = spec.grid.n_samples;
  const std::size_t row = static_cast<std::size_t>(S) * K;
  const std::size_t n_trials = spec.trials.size();
  const int nt = std::max(1, std::min<int>(spec.n_threads, static_cast<int>(std::max<std::size_t>(1, n_trials))));
  const CancelToken& token = *spec.token;
  const bool one_chunk = tabs.all_resident();
  const bool columns = K <= PopulationTables::kColumnMaxK && spec.n_channels >= spec.pop_columns_min;
  const std::size_t state_bytes = static_cast<std::size_t>(K) * sizeof(std::int64_t) + sizeof(Pcg64);
  const std::size_t batch =
      one_chunk ? std::max<std::size_t>(1, n_trials)
                : std::max<std::size_t>(1, std::min(n_trials, spec.pop_state_bytes / state_bytes));
  std::vector<std::int64_t> saved_n(one_chunk ? 0 : batch * K);
  std::vector<Pcg64> saved_g(one_chunk ? 0 : batch);
  std::vector<detail::SummaryAcc> accs(nt);
  const int G = spec.summary ? spec.n_groups : 0;
  const detail::GroupList grp = detail::GroupList::from_flags(spec.groups, G, K);
  const std::int32_t* g_start = grp.start.data();
  const std::int32_t* g_member = grp.member.data();
  const std::size_t srow = static_cast<std::size_t>(S) * (static_cast<std::size_t>(K) + G);  // summary entries
  auto par = [](int n, const std::function<void(int)>& f) { detail::parallel(n, f); };
  if (spec.summary) {
    accs[0].init_external(out.sum, out.sumsq_lo, out.sumsq_hi, srow);
    for (int ti = 1; ti < nt; ++ti) accs[ti].init(srow);
  }
  for (std::size_t b0 = 0; b0 < n_trials && !token.cancelled(); b0 += batch) {
    const std::size_t b1 = std::min(n_trials, b0 + batch);
    tabs.reset();
    for (std::size_t r = 0; r < sch.n_runs() || r == 0;) {
      const std::size_t r_end = sch.n_runs() ? tabs.prepare(r, spec.n_threads, token, par) : 0;
      if (token.cancelled()) return;
      std::atomic<std::size_t> next{b0};
      detail::parallel(std::min<int>(nt, static_cast<int>(b1 - b0)), [&](int ti) {
        std::vector<std::int64_t> n(K), m(K);
        std::vector<T> cur(K);
        for (;;) {
          const std::size_t i = next.fetch_add(1);
          if (i >= b1 || token.cancelled()) break;
          auto record = [&](std::int64_t k) {
            for (int j = 0; j < K; ++j) cur[j] = static_cast<T>(n[j]);
            if (spec.summary) {
              accs[ti].add_row(static_cast<std::size_t>(k) * K, cur.data(), K);
              if (G) accs[ti].add_groups(row + static_cast<std::size_t>(k) * G, cur.data(), g_start, g_member, G);
            } else
              std::memcpy(out.counts + i * row + static_cast<std::size_t>(k) * K, cur.data(), sizeof(T) * K);
          };
          Pcg64 g;
          if (r == 0) {
            g = make_stream(spec.entropy, spec.trials[i], 0);
            multinomial(g, spec.n_channels, spec.p0, n.data());
            record(0);
          } else {
            g = saved_g[i - b0];
            std::memcpy(n.data(), saved_n.data() + (i - b0) * K, sizeof(std::int64_t) * K);
          }
          // the runs of this chunk; false when cancelled.  One loop per step order, so the
          // row-order loop is the one it was before the column order existed.
          auto advance = [&](auto in_columns) {
            for (std::size_t q = r; q < r_end; ++q) {
              const int key = sch.run_key[q];
              std::int64_t k = sch.run_step[q];
              for (std::int64_t s = 0; s < sch.run_len[q]; ++s) {
                if constexpr (decltype(in_columns)::value)
                  tabs.step_columns(key, n.data(), m.data(), g);
                else
                  tabs.step(key, n.data(), m.data(), g);
                n.swap(m);
                record(++k);
                if ((k & (kCancelPollInterval - 1)) == 0 && token.cancelled()) return false;
              }
            }
            return true;
          };
          if (!(columns ? advance(std::true_type{}) : advance(std::false_type{}))) return;
          if (!one_chunk) {
            saved_g[i - b0] = g;
            std::memcpy(saved_n.data() + (i - b0) * K, n.data(), sizeof(std::int64_t) * K);
          }
        }
      });
      if (r_end <= r) break;  // no steps (a single-sample grid)
      r = r_end;
    }
  }
  if (spec.summary && !token.cancelled()) detail::merge_summary(accs, srow);
}

// ----------------------------------------------------------------- event log
struct EventLogOut {
  std::vector<std::vector<double>> times;
  std::vector<std::vector<std::int32_t>> states;
};

// One channel per trial, from t = 0 to the end of the protocol.  Entry 0 is (0, initial state).
inline void run_event_log(const EnsembleSpec& spec, EventLogOut& out, std::size_t reserve_hint) {
  const SsaTables tab(*spec.scheme, *spec.plan, &spec.jump_tables, spec.token);
  if (spec.token->cancelled()) return;  // (the tables may be incomplete)
  const Timeline tl(*spec.plan);
  const Categorical init(spec.p0);
  const std::size_t n_trials = spec.trials.size();
  out.times.assign(n_trials, {});
  out.states.assign(n_trials, {});
  const int nt = std::max(1, std::min<int>(spec.n_threads, static_cast<int>(std::max<std::size_t>(1, n_trials))));
  const CancelToken& token = *spec.token;
  std::atomic<std::size_t> next{0};
  detail::parallel(nt, [&](int) {
    long events = kCancelPollInterval;
    for (;;) {
      const std::size_t i = next.fetch_add(1);
      if (i >= n_trials || token.cancelled()) break;
      Pcg64 g = make_stream(spec.entropy, spec.trials[i], 0);
      auto& ts = out.times[i];
      auto& ss = out.states[i];
      ts.reserve(reserve_hint);
      ss.reserve(reserve_hint);
      const int s0 = init.draw(g);
      ts.push_back(0.0);
      ss.push_back(s0);
      EventSink sink{&ts, &ss};
      const double t_end = tl.total();
      ChannelCursor cur = ssa_start(tab, tl, t_end, g, s0);
      ssa_advance(tab, tl, t_end, g, cur, t_end, sink, token, events);
    }
  });
}

}  // namespace ketacore
