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

// Categorical draw over a small set by comparing one uint64 with cumulative thresholds.
struct Categorical {
  std::vector<std::uint64_t> thresh;  // n - 1 thresholds
  std::vector<int> value;             // n values
  int fixed = -1;                     // >= 0: deterministic, no draw
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
  }
  inline int draw(Pcg64& g) const {
    if (fixed >= 0) return fixed;
    const std::uint64_t r = g.next_uint64();
    std::size_t j = 0;
    while (j < thresh.size() && r >= thresh[j]) ++j;
    return value[j];
  }
};

// Per-condition jump tables for the direct method.
struct SsaTables {
  struct Row {
    double mean_dwell;  // 1 / total exit rate (0 when absorbing: n_exit == 0)
    int n_exit;
    int first;  // index into target / thresh
  };
  int K = 0;
  std::vector<Row> rows;              // n_cond x K
  std::vector<int> target;            // flattened exits
  std::vector<std::uint64_t> thresh;  // cumulative thresholds, parallel to target
  std::vector<double> exit_rate;      // n_cond x K (for cost estimates)

  SsaTables(const CompiledScheme& scheme, const SegmentPlan& plan) : K(scheme.n_states) {
    const std::size_t nc = plan.n_conditions();
    std::vector<double> r(scheme.n_transitions());
    std::vector<double> to(K);
    rows.resize(nc * K);
    exit_rate.assign(nc * K, 0.0);
    for (std::size_t c = 0; c < nc; ++c) {
      scheme.rates(plan.condition(c), r.data());
      for (int s = 0; s < K; ++s) {
        std::fill(to.begin(), to.end(), 0.0);
        for (std::size_t t = 0; t < scheme.n_transitions(); ++t)
          if (scheme.src[t] == s && scheme.dst[t] != s && r[t] > 0.0) to[scheme.dst[t]] += r[t];
        double total = 0.0;
        int n = 0;
        for (int j = 0; j < K; ++j)
          if (to[j] > 0.0) total += to[j], ++n;
        Row row{n ? 1.0 / total : 0.0, n, static_cast<int>(target.size())};
        double cum = 0.0;
        for (int j = 0; j < K; ++j) {
          if (!(to[j] > 0.0)) continue;
          cum += to[j];
          target.push_back(j);
          thresh.push_back(prob_threshold(cum / total));
        }
        if (n) thresh.back() = std::numeric_limits<std::uint64_t>::max();
        rows[c * K + s] = row;
        exit_rate[c * K + s] = total;
      }
    }
  }

  inline int next_state(const Row& row, Pcg64& g) const {
    if (row.n_exit == 1) return target[row.first];
    const std::uint64_t r = g.next_uint64();
    const std::uint64_t* th = thresh.data() + row.first;
    int j = 0;
    while (r >= th[j] && j < row.n_exit - 1) ++j;
    return target[row.first + j];
  }
};

// Grid sink: difference array diff[(n_samples + 1) x K].
template <class T>
struct GridSink {
  T* diff;
  int K;
  double inv_dt;
  inline void jump(double t, int from, int to) {
    const std::int64_t k = static_cast<std::int64_t>(t * inv_dt) + 1;
    T* d = diff + k * K;
    d[from] -= 1;
    d[to] += 1;
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

// Simulate one channel from state `s` at t = 0 up to t_stop; report jumps to `sink`.
// Returns the final state.  `events` counts transitions (for cancellation polling).
template <class Sink>
inline int ssa_channel(const SsaTables& tab, const Timeline& tl, double t_stop, Pcg64& g, int s,
                       Sink& sink, const CancelToken& token, long& events) {
  const int K = tab.K;
  for (std::size_t seg = 0; seg < tl.size(); ++seg) {
    const double t0 = tl.start[seg];
    if (!(t0 < t_stop)) break;
    const double tend = std::min(tl.end[seg], t_stop);
    const SsaTables::Row* rows = tab.rows.data() + static_cast<std::size_t>(tl.cond[seg]) * K;
    double t = t0;
    for (;;) {
      const SsaTables::Row& row = rows[s];
      if (row.n_exit == 0) break;
      const double tn = t + standard_exponential(g) * row.mean_dwell;
      if (!(tn < tend)) break;  // pending dwell crosses the boundary: redrawn in the next one
      t = tn;
      const int ns = tab.next_state(row, g);
      sink.jump(t, s, ns);
      s = ns;
      if ((++events & (kCancelPollInterval - 1)) == 0 && token.cancelled()) return s;
    }
  }
  return s;
}

}  // namespace ketacore
