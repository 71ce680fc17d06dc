// ketacore/ssa.hpp -- exact event-driven (Gillespie) simulation of single channels under
// piecewise-constant conditions.
//
// Gillespie, D. T. (1977) "Exact stochastic simulation of coupled chemical reactions",
// J. Phys. Chem. 81(25):2340-2361, doi:10.1021/j100540a008 (direct method).  For one channel
// the direct method is: dwell ~ Exp(total exit rate of the current state), then the next state
// with probability rate/total.  Conditions change only at segment boundaries; there the pending
// dwell is discarded and redrawn under the new rates, which is exact because the exponential
// dwell is memoryless.
//
// Grid output without per-sample work: a jump s -> s' at time t changes the state seen by every
// sample t_k = k dt >= t, i.e. k >= floor(t / dt) + 1, so it adds -1 to diff[k][s] and +1 to
// diff[k][s'] of a difference array; one prefix sum over k at the end gives counts per sample
// and state.  Cost is proportional to the number of transitions, independent of dt.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "ketacore/cancel.hpp"
#include "ketacore/protocol.hpp"
#include "ketacore/rng.hpp"
#include "ketacore/scheme.hpp"

namespace ketacore {

// Absolute segment boundaries (Kahan-summed exactly like solve_master) and conditions.
struct Timeline {
  std::vector<double> start, end;
  std::vector<int> cond;
  explicit Timeline(const SegmentPlan& plan) {
    double s0 = 0.0, comp = 0.0;
    for (std::size_t s = 0; s < plan.n_segments(); ++s) {
      const double y = plan.duration[s] - comp;
      const double e = s0 + y;
      comp = (e - s0) - y;
      start.push_back(s0);
      end.push_back(e);
      cond.push_back(static_cast<int>(plan.cond[s]));
      s0 = e;
    }
  }
  std::size_t size() const { return start.size(); }
  double total() const { return end.empty() ? 0.0 : end.back(); }
};

// Threshold of a cumulative probability c in [0, 1] for comparisons with a uniform uint64.
inline std::uint64_t prob_threshold(double c) {
  if (!(c < 1.0)) return std::numeric_limits<std::uint64_t>::max();
  if (c <= 0.0) return 0;
  return static_cast<std::uint64_t>(c * 18446744073709551616.0);
}

// Bucket table for the threshold rule "value j is chosen for r in [th[j-1], th[j])" (th[-1] = 0;
// the last of n values takes every r >= th[n-2]; th[n-1], if present, is not read), indexed by
// the top `Bits` bits of r: bucket bk covers r in [bk 2^(64-Bits), (bk + 1) 2^(64-Bits)), so the
// buckets wholly inside value j's interval are [ceil(th[j-1] / 2^(64-Bits)), floor(th[j] /
// 2^(64-Bits))).  The others contain a threshold and hold `ambiguous`: the draw compares there.
template <int Bits, class V, class T>
inline void fill_bucket_table(V* table, const std::uint64_t* th, const T* values, int n, V ambiguous) {
  constexpr int kLow = 64 - Bits;
  constexpr std::uint64_t kMask = (std::uint64_t(1) << kLow) - 1;
  std::fill(table, table + (1 << Bits), ambiguous);
  for (int j = 0; j < n; ++j) {
    const std::uint64_t lo = j ? th[j - 1] : 0;
    const int b0 = static_cast<int>(lo >> kLow) + ((lo & kMask) != 0 ? 1 : 0);
    const int b1 = j + 1 < n ? static_cast<int>(th[j] >> kLow) : (1 << Bits);
    for (int bk = b0; bk < b1; ++bk) table[bk] = static_cast<V>(values[j]);
  }
}

// Categorical draw over a small set by comparing one uint64 with cumulative thresholds; a
// 256-bucket table on the top 8 bits resolves most draws without branching (buckets containing a
// threshold fall back to the comparisons, so the rule is exactly the threshold rule).
struct Categorical {
  std::vector<std::uint64_t> thresh;  // n - 1 thresholds
  std::vector<int> value;             // n values
  int fixed = -1;                     // >= 0: deterministic, no draw
  std::int32_t table[256];            // value, or -1 when the bucket is ambiguous
  Categorical() = default;
  explicit Categorical(const std::vector<double>& p) {
    double total = 0.0;
    for (double x : p) total += x;
    int nz = 0, last = -1;
    for (std::size_t i = 0; i < p.size(); ++i)
      if (p[i] > 0.0) ++nz, last = static_cast<int>(i);
    if (nz <= 1) {
      fixed = last < 0 ? 0 : last;
      return;
    }
    double c = 0.0;
    for (std::size_t i = 0; i < p.size(); ++i) {
      if (!(p[i] > 0.0)) continue;
      value.push_back(static_cast<int>(i));
      c += p[i];
      if (static_cast<int>(i) != last) thresh.push_back(prob_threshold(c / total));
    }
    fill_bucket_table<8>(table, thresh.data(), value.data(), static_cast<int>(value.size()), std::int32_t(-1));
  }
  inline int slow(std::uint64_t r) const {
    std::size_t j = 0;
    while (j < thresh.size() && r >= thresh[j]) ++j;
    return value[j];
  }
  inline int draw(Pcg64& g) const {
    if (fixed >= 0) return fixed;
    const std::uint64_t r = g.next_uint64();
    const int v = table[r >> 56];
    return v >= 0 ? v : slow(r);
  }
};

// Per-condition jump tables for the direct method.
//
// The dwell is Exp(1) * mean_dwell[s] (mean_dwell = +inf for a state with no exit under this
// condition, so the channel simply stays until the segment ends).  The next state is chosen by
// a uniform uint64 r against the cumulative thresholds of the state's exits: exit j is taken
// when thresh[j-1] <= r < thresh[j].  To keep the state-to-state dependency chain short, a
// 512-entry table per state maps the top 9 bits of r (the bucket) to the exit whenever that whole
// bucket of r lies inside one exit's interval; only buckets that contain a threshold (at most
// n_exit - 1 of 512) need the rest of r, and fall back to the comparisons.  Both paths give
// exactly the threshold rule above.
//
// A condition the channels spend little time in (a voltage ramp given as thousands of short
// segments, each its own condition) does not pay for its K x 512 table, so the caller says which
// conditions get one (the Python plan decides from the expected jumps).  The others resolve the
// bucket by two threshold searches, at the bucket's lowest and highest r (`bucket_exit`): the
// same exit when the bucket lies inside one interval, else ambiguous, exactly what the table
// would hold -- so which conditions have tables never changes a result, only the speed.
struct SsaTables {
  static constexpr std::uint16_t kAmbiguous = 0xFFFF;
  static constexpr int kBucketBits = 9;
  static constexpr int kBuckets = 1 << kBucketBits;
  int K = 0;
  std::vector<double> mean_dwell;      // n_cond x K (s); +inf when absorbing
  std::vector<std::uint16_t> next;     // (conditions with a table) x K x kBuckets
  std::vector<std::int64_t> table_at;  // n_cond: offset of the condition's table in next, or -1
  std::vector<int> first, n_exit;      // n_cond x K: slice of target/thresh
  std::vector<int> target;             // flattened exits
  std::vector<std::uint64_t> thresh;   // cumulative thresholds, parallel to target
  std::vector<double> exit_rate;       // n_cond x K (1/s)

  // tables: per condition, nonzero = build its jump table; nullptr or empty = every condition.
  // token: polled every 1024 conditions (a sampled waveform has one per sample); when it is
  // cancelled the tables are left incomplete and the caller must not run.
  SsaTables(const CompiledScheme& scheme, const SegmentPlan& plan,
            const std::vector<std::uint8_t>* tables = nullptr, const CancelToken* token = nullptr)
      : K(scheme.n_states) {
    auto stop = [token](std::size_t c) { return (c & 1023) == 0 && token && token->cancelled(); };
    const std::size_t nc = plan.n_conditions();
    std::vector<double> r(scheme.n_transitions());
    // The n_cond x K arrays are reserved, not filled, and grow one condition at a time in the
    // polled loop below: filling them first (~160 MB of page faults for a 400000-sample waveform
    // at 17 states) took ~0.18 s (0.45 s under ASan) before the first poll, so Ctrl-C early in a
    // call waited for it.
    table_at.assign(nc, -1);
    mean_dwell.reserve(nc * K);
    first.reserve(nc * K);
    n_exit.reserve(nc * K);
    exit_rate.reserve(nc * K);
    // each state's distinct destinations in ascending order, each with its transitions in
    // transition order (a ramp has a condition per sample: one pass over each state's own exits
    // instead of all K destinations per state); sums in the same order as a scan over j = 0..K-1
    std::vector<std::vector<int>> dsts(K);
    std::vector<std::vector<std::vector<std::size_t>>> via(K);
    {
      std::vector<std::vector<std::size_t>> by(static_cast<std::size_t>(K) * K);
      for (std::size_t t = 0; t < scheme.n_transitions(); ++t)
        if (scheme.dst[t] != scheme.src[t]) by[static_cast<std::size_t>(scheme.src[t]) * K + scheme.dst[t]].push_back(t);
      for (int s0 = 0; s0 < K; ++s0)
        for (int j = 0; j < K; ++j)
          if (!by[static_cast<std::size_t>(s0) * K + j].empty()) {
            dsts[s0].push_back(j);
            via[s0].push_back(std::move(by[static_cast<std::size_t>(s0) * K + j]));
          }
    }
    std::size_t max_exits = 0;
    for (int s0 = 0; s0 < K; ++s0) max_exits += dsts[s0].size();
    target.reserve(nc * max_exits);
    thresh.reserve(nc * max_exits);
    std::vector<double> to(K);
    for (std::size_t c = 0; c < nc; ++c) {
      if (stop(c)) return;
      scheme.rates(plan.condition(c), r.data());
      for (int s = 0; s < K; ++s) {
        const std::size_t nd = dsts[s].size();
        double total = 0.0;
        int n = 0;
        for (std::size_t d = 0; d < nd; ++d) {
          double v = 0.0;
          for (const std::size_t t : via[s][d])
            if (r[t] > 0.0) v += r[t];
          to[d] = v;
          if (v > 0.0) total += v, ++n;
        }
        // (the Python layer refuses non-finite rates with a named error; this guards the core:
        // an infinite or NaN exit rate would give a zero dwell and a loop that never ends)
        if (!(total < std::numeric_limits<double>::infinity()))
          throw std::invalid_argument("ssa: a transition rate is not finite under condition " +
                                      std::to_string(c) + ", state " + std::to_string(s));
        mean_dwell.push_back(n ? 1.0 / total : std::numeric_limits<double>::infinity());
        exit_rate.push_back(total);
        n_exit.push_back(n);
        first.push_back(static_cast<int>(target.size()));
        double cum = 0.0;
        for (std::size_t d = 0; d < nd; ++d) {
          if (!(to[d] > 0.0)) continue;
          cum += to[d];
          target.push_back(dsts[s][d]);
          thresh.push_back(prob_threshold(cum / total));
        }
        if (n) thresh.back() = std::numeric_limits<std::uint64_t>::max();
      }
    }
    // which conditions get a table
    const bool all = tables == nullptr || tables->empty();
    if (!all && tables->size() != nc)
      throw std::invalid_argument("ssa: jump_tables has " + std::to_string(tables->size()) +
                                  " entries for " + std::to_string(nc) + " conditions");
    std::size_t n_tables = 0;
    for (std::size_t c = 0; c < nc; ++c)
      if (all || (*tables)[c]) table_at[c] = static_cast<std::int64_t>(n_tables++) * K * kBuckets;
    next.assign(n_tables * K * kBuckets, kAmbiguous);
    for (std::size_t c = 0; c < nc; ++c) {
      if (stop(c)) return;
      if (table_at[c] < 0) continue;
      for (int st = 0; st < K; ++st) {
        const std::size_t cs = c * K + st;
        std::uint16_t* tb = next.data() + table_at[c] + static_cast<std::size_t>(st) * kBuckets;
        if (!n_exit[cs]) {
          for (int bk = 0; bk < kBuckets; ++bk) tb[bk] = static_cast<std::uint16_t>(st);
          continue;
        }
        fill_bucket_table<kBucketBits>(tb, thresh.data() + first[cs], target.data() + first[cs], n_exit[cs],
                                       kAmbiguous);
      }
    }
  }

  // The table of condition c (K x kBuckets), or nullptr when it has none.
  inline const std::uint16_t* table(std::size_t c) const {
    return table_at[c] < 0 ? nullptr : next.data() + table_at[c];
  }

  // What condition-state cs's table would hold for `bucket`: the exit when the bucket's whole
  // range of r lies in one exit's interval, else kAmbiguous.
  inline std::size_t bucket_exit(std::size_t cs, std::uint64_t bucket, std::size_t s) const {
    constexpr int kLow = 64 - kBucketBits;
    if (!n_exit[cs]) return s;
    const std::uint64_t lo = bucket << kLow, hi = lo | ((std::uint64_t(1) << kLow) - 1);
    const int a = slow_next(cs, lo), b = slow_next(cs, hi);
    return a == b ? static_cast<std::size_t>(a) : kAmbiguous;
  }

  // Exit chosen by r for state-condition cs (the threshold rule).
  inline int slow_next(std::size_t cs, std::uint64_t r) const {
    const int f = first[cs], n = n_exit[cs];
    int j = 0;
    while (j < n - 1 && r >= thresh[f + j]) ++j;
    return target[f + j];
  }
};

// Event sink: transition times and the state entered.
struct EventSink {
  std::vector<double>* times;
  std::vector<std::int32_t>* states;
  inline void jump(double t, int /*from*/, int to) {
    times->push_back(t);
    states->push_back(to);
  }
};

// A channel in flight: current state, the time of its next (already scheduled) jump, and the
// segment that jump lies in.  t_next = +inf when no further jump happens before t_stop.
struct ChannelCursor {
  double t_next;
  int s;
  int seg;
};

// Schedule the next jump of a channel in state c.s from time t in segment c.seg, using `u` (one
// stream output) for the first dwell.  A dwell that crosses a segment boundary is discarded and
// redrawn from the boundary under the next segment's rates (exact: the dwell is memoryless).
inline void ssa_schedule(const SsaTables& tab, const Timeline& tl, double t_stop, Pcg64& g, ChannelCursor& c,
                         double t, std::uint64_t u) {
  const int K = tab.K;
  const int nseg = static_cast<int>(tl.size());
  for (;;) {
    const double tend = std::min(tl.end[c.seg], t_stop);
    const double md = tab.mean_dwell[static_cast<std::size_t>(tl.cond[c.seg]) * K + c.s];
    const double tn = t + standard_exponential_from(u, g) * md;
    if (tn < tend) {
      c.t_next = tn;
      return;
    }
    ++c.seg;
    if (c.seg >= nseg || !(tl.start[c.seg] < t_stop)) {
      c.seg = nseg - 1;
      c.t_next = std::numeric_limits<double>::infinity();
      return;
    }
    t = tl.start[c.seg];
    u = g.next_uint64();
  }
}

// Start a channel in state s at t = 0.
inline ChannelCursor ssa_start(const SsaTables& tab, const Timeline& tl, double t_stop, Pcg64& g, int s) {
  ChannelCursor c{std::numeric_limits<double>::infinity(), s, 0};
  if (tl.size() == 0 || !(0.0 < t_stop)) return c;
  ssa_schedule(tab, tl, t_stop, g, c, 0.0, g.next_uint64());
  return c;
}

// Carry out every jump of the channel before w_end (the window end; t_stop for a whole run),
// reporting them to `sink`.  Each jump uses one stream output w: its top 9 bits choose the next
// state (SsaTables; an ambiguous bucket takes the remaining 55 bits of r from a fresh output) and
// its low 55 bits give the following dwell (exponential_low55); the two are independent because
// they are disjoint bits of a uniform word.  `events` counts down the jumps to the next
// cancellation poll (start it at kCancelPollInterval).  A cancelled channel is left finished
// (t_next = +inf): the caller discards a cancelled job's results.
template <class Sink>
inline void ssa_advance(const SsaTables& tab, const Timeline& tl, double t_stop, Pcg64& g, ChannelCursor& c,
                        double w_end, Sink& sink, const CancelToken& token, long& events) {
  constexpr int kLow = 64 - SsaTables::kBucketBits;
  using u128 = Pcg64::u128;
  const int K = tab.K;
  double t = c.t_next;
  std::size_t s = static_cast<std::size_t>(c.s);
  int seg = c.seg;
  // With the grid sinks the inner loop makes no function calls, so the compiler can keep the
  // generator state (a local copy, written back to g around the calls outside it), the sink, the
  // event counter and the time in registers; the one rare path that calls (the exponential's
  // slow path, ~1% of jumps) leaves the inner loop and re-enters it.  (The event sink's
  // push_back is a call; event logs are not the hot path.)
  const u128 inc = g.inc();
  u128 st = g.state();
  Sink sk = sink;
  long ev = events;
  enum { kLimit, kSlowExp, kCancelled };
  while (t < w_end) {
    // jumps within segment `seg`: each jump at t is followed by the next dwell, until a dwell
    // reaches lim (the segment end, t_stop or the window end)
    const std::size_t cK = static_cast<std::size_t>(tl.cond[seg]) * K;
    const double* md = tab.mean_dwell.data() + cK;
    const std::uint16_t* nx = tab.table(static_cast<std::size_t>(tl.cond[seg]));  // nullptr: no table
    const double tend = std::min(tl.end[seg], t_stop);
    const double lim = std::min(tend, w_end);
    double tn, x = 0.0;
    std::uint64_t w = 0;
    int why;
    // The jump loop, compiled twice (both inlined, so the state stays in registers): with the
    // condition's table, and for a condition without one (bucket_exit) -- the choice is made once
    // per segment, not per jump.
    auto jumps = [&](auto tabled) __attribute__((always_inline)) {
      for (;;) {
        st = Pcg64::advance(st, inc);
        w = Pcg64::output_of(st);
        const std::uint64_t bucket = w >> kLow;
        std::size_t ns;
        if constexpr (decltype(tabled)::value)
          ns = nx[(s << SsaTables::kBucketBits) + bucket];
        else
          ns = tab.bucket_exit(cK + s, bucket, s);
        if (__builtin_expect(ns == SsaTables::kAmbiguous, 0)) {  // the rest of r from the next output
          st = Pcg64::advance(st, inc);
          ns = static_cast<std::size_t>(
              tab.slow_next(cK + s, (bucket << kLow) | (Pcg64::output_of(st) >> SsaTables::kBucketBits)));
        }
        sk.jump(t, static_cast<int>(s), static_cast<int>(ns));
        s = ns;
        // exponential_low55(w, g), its slow path out of line
        if (__builtin_expect(!exponential_low55_fast(w, x), 0)) {
          why = kSlowExp;
          break;
        }
        tn = t + x * md[s];
        if (__builtin_expect(--ev <= 0, 0)) {
          ev = kCancelPollInterval;
          if (token.cancelled()) {
            why = kCancelled;
            break;
          }
        }
        if (!(tn < lim)) {
          why = kLimit;
          break;
        }
        t = tn;
      }
    };
    if (__builtin_expect(nx != nullptr, 1))
      jumps(std::true_type{});
    else
      jumps(std::false_type{});
    if (why == kSlowExp) {
      g.set_state(st);
      const double e = exponential_low55_slow(w, x, g);
      st = g.state();
      tn = t + e * md[s];
      if (--ev <= 0) {
        ev = kCancelPollInterval;
        if (token.cancelled()) why = kCancelled;
      }
      if (why != kCancelled && tn < lim) {
        t = tn;
        continue;
      }
    }
    if (why == kCancelled) {  // the channel is left finished (no further jump); results are discarded
      t = std::numeric_limits<double>::infinity();
      break;
    }
    if (tn < tend) {  // stopped at the window end: tn is the pending jump
      t = tn;
      break;
    }
    // the dwell crosses the segment end (or t_stop): redraw from the next segment's start
    if (seg + 1 >= static_cast<int>(tl.size()) || !(tl.start[seg + 1] < t_stop)) {
      t = std::numeric_limits<double>::infinity();
      break;
    }
    c.s = static_cast<int>(s);
    c.seg = seg + 1;
    g.set_state(st);
    ssa_schedule(tab, tl, t_stop, g, c, tl.start[seg + 1], g.next_uint64());
    st = g.state();
    t = c.t_next;
    seg = c.seg;
    s = static_cast<std::size_t>(c.s);
  }
  g.set_state(st);
  sink = sk;
  events = ev;
  c.t_next = t;
  c.s = static_cast<int>(s);
  c.seg = seg;
}

}  // namespace ketacore
