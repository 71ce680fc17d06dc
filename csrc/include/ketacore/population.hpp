// ketacore/population.hpp -- exact-at-grid population update for N identical channels.
//
// Channels are independent, so over one grid interval the channels in state i move to the
// states j with probabilities P_ij, P = expm(Q dt) (or, for an interval that straddles segment
// boundaries, the product of expm(Q_c tau_c) over its pieces): the new counts are a sum over i of
// Multinomial(n_i, P_i.) draws.  Each multinomial is drawn as sequential binomials
// (x_j ~ Binomial(n_remaining, P_ij / P_remaining)), ordered so the row's largest entry is the
// remainder.  The draw is exact in distribution at the grid points for any dt, and its cost per
// step depends on the number of states, not on N (BTRS is O(1) in n; inversion only runs when
// n·min(p, 1 - p) < 10).
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "ketacore/cancel.hpp"
#include "ketacore/expm.hpp"
#include "ketacore/linalg.hpp"
#include "ketacore/protocol.hpp"
#include "ketacore/rng.hpp"
#include "ketacore/scheme.hpp"

namespace ketacore {

// ---------------------------------------------------------------------------------------------
// Fast exact binomial for the population step.  The success probability of each matrix entry is
// fixed while n changes every step, so everything that depends on p alone is precomputed
// (BinomialP).  Two exact algorithms:
//  * n·p < 10: sequential-search inversion (Kachitvichyanukul & Schmeiser 1988 "BINV"), with the
//    exact shortcut U <= 1 + n log q  =>  U <= q^n  =>  X = 0 (exp(x) >= 1 + x), which skips the
//    exp() for most draws when n·p is small;
//  * n·p >= 10: BTRS, transformed rejection with squeeze (Hormann 1993, "The generation of
//    binomial random variates", J. Stat. Comput. Simul. 46:101-110, doi:10.1080/00949659308811496),
//    whose setup needs one sqrt and whose squeeze accepts ~85% of proposals without a logarithm;
//    the exact acceptance test evaluates log f(k)/f(m) as logs of ratios near 1 plus Stirling
//    tails (exact table below 128, series above, error < 1e-18).
// Both return draws from Binomial(n, p) exactly (up to floating-point rounding); they are tested
// against scipy.stats in tests/test_rng.py.  (rng.hpp's `binomial` is the numpy-identical BTPE.)
struct BinomialP {
  double p = 0.0;       // as given
  double ps = 0.0;      // min(p, 1 - p)
  double qs = 1.0;      // 1 - ps
  double log_qs = 0.0;  // log(qs)
  double ratio = 0.0;   // ps / qs
  bool flip = false;    // p > 0.5: draw failures
  explicit BinomialP(double prob = 0.0) {
    p = prob;
    flip = prob > 0.5;
    ps = flip ? 1.0 - prob : prob;
    qs = 1.0 - ps;
    log_qs = std::log1p(-ps);  // not log(qs): 1 - ps rounds (to 1 below ps = 2^-54)
    ratio = qs > 0.0 ? ps / qs : 0.0;
  }
};

namespace detail {

// Stirling tail t(k) defined by  log k! = (k + 1/2) log(k + 1) - (k + 1) + log(2 pi)/2 + t(k):
// exact (from summed logs) below 128, 3-term series in 1/(k + 1) above (error < 1e-18).
inline double stirling_tail(std::int64_t k) {
  static const std::vector<double> table = [] {
    std::vector<double> t(128);
    double lf = 0.0;
    for (int i = 0; i < 128; ++i) {
      if (i > 0) lf += std::log(static_cast<double>(i));
      const double x = static_cast<double>(i);
      t[i] = lf - (x + 0.5) * std::log(x + 1.0) + (x + 1.0) - 0.91893853320467274178;
    }
    return t;
  }();
  if (k < 128) return table[static_cast<std::size_t>(k)];
  const double x1 = static_cast<double>(k) + 1.0;
  const double r2 = 1.0 / (x1 * x1);
  return (1.0 / 12.0 - (1.0 / 360.0 - (1.0 / 1260.0) * r2) * r2) / x1;
}

template <class G>
inline std::int64_t binomial_inversion_fast(G& g, std::int64_t n, const BinomialP& b) {
  const double dn = static_cast<double>(n);
  const double x = dn * b.log_qs;  // log q^n
  for (;;) {
    double U = g.next_double();
    if (U <= 1.0 + x) return 0;  // exact: 1 + x <= exp(x) = q^n
    double px = std::exp(x);
    std::int64_t X = 0;
    const double np = dn * b.ps;
    const double easy = np + 10.0;  // X <= easy  =>  X <= cap (the sqrt term is >= 10)
    bool restart = false;
    while (U > px) {
      U -= px;
      ++X;
      if (X > n || (static_cast<double>(X) > easy &&
                    static_cast<double>(X) > np + 10.0 * std::sqrt(np * b.qs + 1.0))) {  // BINV restart
        restart = true;
        break;
      }
      px *= static_cast<double>(n - X + 1) / static_cast<double>(X) * b.ratio;
    }
    if (!restart) return X;
  }
}

template <class G>
__attribute__((noinline)) std::int64_t binomial_btrs(G& g, std::int64_t n, const BinomialP& b) {
  const double dn = static_cast<double>(n);
  const double npq = dn * b.ps * b.qs;
  const double spq = std::sqrt(npq);
  const double bb = 1.15 + 2.53 * spq;
  const double a = -0.0873 + 0.0248 * bb + 0.01 * b.ps;
  const double c = dn * b.ps + 0.5;
  for (;;) {
    std::uint64_t w1, w2;
    g.next_pair(w1, w2);
    const double u = static_cast<double>(static_cast<std::int64_t>(w1 >> 11)) * (1.0 / 9007199254740992.0) - 0.5;
    const double v = static_cast<double>(static_cast<std::int64_t>(w2 >> 11)) * (1.0 / 9007199254740992.0);
    const double us = 0.5 - std::fabs(u);
    // x = (2 a / us + b) u + c, written as 2 a (u / us) + b u + c so that the division depends
    // on the uniform only and leaves the n -> sqrt -> a dependency chain
    const double x = 2.0 * a * (u / us) + (bb * u + c);
    if (!(x >= 0.0) || !(x < dn + 1.0)) continue;  // floor(x) outside [0, n]
    // (floor of non-negative values by truncating casts: a generic x86-64 build has no SSE4.1
    // roundsd, so std::floor would be a libm call on the hot path)
    const std::int64_t k = static_cast<std::int64_t>(x);
    // squeeze v <= v_r = 0.92 - 4.2 / b, multiplied out (b > 0): ~80% of proposals
    if (us >= 0.07 && (0.92 - v) * bb >= 4.2) return k;
    if (v <= 0.0) return k;  // V = 0 <= f(k)/f(m): accepted (and log(0) avoided)
    // exact test: accept iff V = v alpha / (a / us^2 + b) <= f(k) / f(m)
    const double us2 = us * us;
    const double alpha = (2.83 + 5.1 / bb) * spq;
    const double V = v * alpha * us2 / (a + bb * us2);
    const std::int64_t m = static_cast<std::int64_t>((dn + 1.0) * b.ps);
    const double dm = static_cast<double>(m), kd = static_cast<double>(k);
    const double dkm = std::fabs(kd - dm);
    if (dkm <= 20.0) {
      // f(k)/f(m) by its product recursion (BTPE step 5.1), as num/den with factors near 1 (scaled
      // by 1/(m + 1)) so neither product can overflow: no logarithm
      const double inv_m = 1.0 / (dm + 1.0), r_m = b.ratio * inv_m;
      double num = 1.0, den = 1.0;
      const std::int64_t lo = k < m ? k : m, hi = k < m ? m : k;
      for (std::int64_t i = lo + 1; i <= hi; ++i) {
        num *= (dn - static_cast<double>(i) + 1.0) * r_m;  // f(i)/f(i-1) = (n - i + 1) r / i
        den *= static_cast<double>(i) * inv_m;
      }
      if (k >= m ? V * den <= num : V * num <= den) return k;
      continue;
    }
    const double lv = std::log(V);
    // squeeze on log f(k)/f(m) (Kachitvichyanukul & Schmeiser 1988, BTPE step 5.2, valid for
    // 20 < |k - m| < npq/2 - 1): decides most proposals with no further logarithm
    if (dkm < npq / 2.0 - 1.0) {
      const double inv_npq = 1.0 / npq;
      const double rho = (dkm * inv_npq) * ((dkm * (dkm / 3.0 + 0.625) + 0.16666666666666666) * inv_npq + 0.5);
      const double tt = -0.5 * dkm * dkm * inv_npq;
      if (lv < tt - rho) return k;
      if (lv > tt + rho) continue;
    }
    // log f(k)/f(m), arranged as logs of ratios near 1 (numerically stable for huge n)
    const double nm1 = dn - dm + 1.0, nk1 = dn - kd + 1.0;
    const double bound = (dm + 0.5) * std::log((dm + 1.0) / (b.ratio * nm1)) +
                         (dn + 1.0) * std::log1p(static_cast<double>(k - m) / nk1) +
                         (kd + 0.5) * std::log(b.ratio * nk1 / (kd + 1.0)) + stirling_tail(m) +
                         stirling_tail(n - m) - stirling_tail(k) - stirling_tail(n - k);
    if (lv <= bound) return k;
  }
}

}  // namespace detail

template <class G>
inline std::int64_t binomial_fast(G& g, std::int64_t n, const BinomialP& b) {
  if (n == 0 || b.ps == 0.0) return b.flip ? n : 0;
  const std::int64_t x = static_cast<double>(n) * b.ps < 10.0 ? detail::binomial_inversion_fast(g, n, b)
                                                              : detail::binomial_btrs(g, n, b);
  return b.flip ? n - x : x;
}

// The grid intervals of a population run as a sequence of transition-matrix *keys*, without
// building any matrix (cheap: O(samples + segments)).  A key is the full-dt step of one condition,
// or an interval straddling segment boundaries (one matrix per distinct sequence of pieces, so a
// pulse train whose period is a multiple of dt repeats the same few straddles), or the identity.
// Consecutive intervals with the same key form a run.  The matrices themselves are built by
// PopulationTables, a bounded number at a time: a sampled waveform (one condition per sample)
// has as many keys as samples, and keeping all their tables (~14 kB each at 17 states) would take
// gigabytes.
struct PopulationSchedule {
  struct Key {
    std::int64_t cond = -2;       // >= 0: expm(Q_cond dt); -1: straddle; -2: identity
    std::size_t p_begin = 0, p_end = 0;  // straddle: its pieces [p_begin, p_end)
  };
  int K = 0;
  std::int64_t n_steps = 0;                            // n_samples - 1
  std::vector<Key> keys;
  std::vector<std::pair<std::size_t, double>> pieces;  // (condition, duration) of straddles
  std::vector<std::int64_t> run_len;                   // steps in each run
  std::vector<int> run_key;                            // key of each run
  std::vector<std::int64_t> run_step;                  // sample index before each run's first step
  std::vector<std::int64_t> next_run;                  // next run with the same key (n_runs: none)

  PopulationSchedule(const CompiledScheme& scheme, const SegmentPlan& plan, const Grid& grid)
      : K(scheme.n_states) {
    n_steps = grid.n_samples > 0 ? grid.n_samples - 1 : 0;
    std::vector<int> full_id(plan.n_conditions(), -1);
    int identity_id = -1;
    const double dt = grid.dt, tol = grid.tolerance();
    // walk segments exactly like solve_master: pieces of each grid interval
    std::vector<std::pair<std::size_t, double>> cur;
    bool full_only = true;  // the interval so far is one piece of a full dt
    std::map<std::vector<std::pair<std::size_t, double>>, int> straddle_id;
    auto add_piece = [&](std::size_t c, double tau, double t) {
      const bool full = std::fabs(tau - dt) <= grid.negligible(t);
      full_only = cur.empty() && full;
      cur.emplace_back(c, full ? dt : tau);
    };
    auto emit = [&]() {
      int id;
      if (cur.empty()) {  // empty interval cannot happen for dt > 0; identity for safety
        if (identity_id < 0) {
          identity_id = static_cast<int>(keys.size());
          keys.push_back(Key{});
        }
        id = identity_id;
      } else if (full_only) {
        const std::size_t c = cur[0].first;
        if (full_id[c] < 0) {
          full_id[c] = static_cast<int>(keys.size());
          keys.push_back(Key{static_cast<std::int64_t>(c), 0, 0});
        }
        id = full_id[c];
      } else {
        auto it = straddle_id.find(cur);
        if (it != straddle_id.end()) {
          id = it->second;
        } else {
          id = static_cast<int>(keys.size());
          keys.push_back(Key{-1, pieces.size(), pieces.size() + cur.size()});
          pieces.insert(pieces.end(), cur.begin(), cur.end());
          straddle_id.emplace(cur, id);
        }
      }
      cur.clear();
      full_only = true;
      if (!run_key.empty() && run_key.back() == id) {
        ++run_len.back();
      } else {
        run_key.push_back(id);
        run_len.push_back(1);
      }
    };
    std::int64_t k = 1;
    double seg_start = 0.0, comp = 0.0;
    for (std::size_t s = 0; s < plan.n_segments() && k < grid.n_samples; ++s) {
      const double y = plan.duration[s] - comp;
      const double seg_end = seg_start + y;
      comp = (seg_end - seg_start) - y;
      const std::size_t c = static_cast<std::size_t>(plan.cond[s]);
      double tcur = std::max(seg_start, static_cast<double>(k - 1) * dt);
      while (k < grid.n_samples) {
        const double tk = static_cast<double>(k) * dt;
        if (tk > seg_end + tol) break;
        const double tau = tk - tcur;
        if (tau > grid.negligible(tk)) add_piece(c, tau, tk);
        emit();
        tcur = tk;
        ++k;
      }
      const double rem = tcur == seg_start ? y : seg_end - tcur;  // a whole segment: its own duration
      if (rem > grid.negligible(seg_end) && k < grid.n_samples) add_piece(c, rem, seg_end);
      seg_start = seg_end;
    }
    while (k < grid.n_samples) {  // grid beyond the protocol (rounding): hold
      emit();
      ++k;
    }
    const std::size_t n_runs = run_key.size();
    run_step.resize(n_runs);
    next_run.assign(n_runs, static_cast<std::int64_t>(n_runs));
    std::int64_t step = 0;
    for (std::size_t r = 0; r < n_runs; ++r) {
      run_step[r] = step;
      step += run_len[r];
    }
    std::vector<std::int64_t> later(keys.size(), static_cast<std::int64_t>(n_runs));
    for (std::size_t r = n_runs; r-- > 0;) {
      next_run[r] = later[static_cast<std::size_t>(run_key[r])];
      later[static_cast<std::size_t>(run_key[r])] = static_cast<std::int64_t>(r);
    }
  }
  std::size_t n_runs() const { return run_key.size(); }
};

// Multinomial step tables of the keys, in a bounded number of slots.  prepare(r) makes the keys
// of runs r, r+1, ... resident (building the missing ones on n_threads threads) for as many runs
// as the slots allow and returns the end of that chunk; keys no later run needs are dropped first,
// then, if fewer than half the slots are free, those needed furthest ahead.  A chunk holds at
// least one run.  For matrix slot s and row i: the visiting order of targets (the largest entry
// last, as the remainder) and the conditional probabilities.  Every table is a function of its
// key alone, so the results of a run never depend on the number of slots or threads.
class PopulationTables {
 public:
  static std::size_t slot_bytes(int K) {
    return static_cast<std::size_t>(K) * K * sizeof(int) + static_cast<std::size_t>(K) * (K - 1) * sizeof(BinomialP);
  }

  PopulationTables(const CompiledScheme& scheme, const SegmentPlan& plan, const Grid& grid,
                   const PopulationSchedule& sch, std::size_t budget_bytes)
      : scheme_(scheme), plan_(plan), dt_(grid.dt), sch_(sch), K_(sch.K) {
    const std::size_t fit = std::max<std::size_t>(1, budget_bytes / slot_bytes(K_));
    capacity_ = std::max<std::size_t>(1, std::min(fit, sch.keys.size()));
    const std::size_t KK = static_cast<std::size_t>(K_) * K_, KC = static_cast<std::size_t>(K_) * (K_ - 1);
    order_.resize(capacity_ * KK);
    cprob_.resize(capacity_ * KC);
    reset();
  }
  bool all_resident() const { return capacity_ >= sch_.keys.size(); }
  void reset() {
    slot_of_.assign(sch_.keys.size(), -1);
    next_use_.assign(sch_.keys.size(), static_cast<std::int64_t>(sch_.n_runs()));
    for (std::size_t r = sch_.n_runs(); r-- > 0;) next_use_[static_cast<std::size_t>(sch_.run_key[r])] = static_cast<std::int64_t>(r);
    free_.clear();
    for (std::size_t s = capacity_; s-- > 0;) free_.push_back(static_cast<int>(s));
    resident_.clear();
  }

  // Returns the end of the chunk starting at run r (> r).  parallel(n, f) runs f(0..n-1) on n
  // threads (ensemble.hpp's detail::parallel); a cancelled token stops the building early (the
  // caller then discards the run).
  template <class Par>
  std::size_t prepare(std::size_t r, int n_threads, const CancelToken& token, Par&& parallel) {
    const std::int64_t none = static_cast<std::int64_t>(sch_.n_runs());
    auto drop = [&](std::size_t idx) {
      const int key = resident_[idx];
      free_.push_back(slot_of_[static_cast<std::size_t>(key)]);
      slot_of_[static_cast<std::size_t>(key)] = -1;
      resident_[idx] = resident_.back();
      resident_.pop_back();
    };
    for (std::size_t i = resident_.size(); i-- > 0;)
      if (next_use_[static_cast<std::size_t>(resident_[i])] >= none) drop(i);
    // then, to free half the slots, those needed furthest ahead (one partial sort: O(capacity))
    const std::size_t want_free = (capacity_ + 1) / 2;
    if (free_.size() < want_free && !resident_.empty()) {
      const std::size_t n_drop = std::min(resident_.size(), want_free - free_.size());
      std::nth_element(resident_.begin(), resident_.begin() + static_cast<std::ptrdiff_t>(n_drop - 1),
                       resident_.end(), [&](int a, int b) {
                         return next_use_[static_cast<std::size_t>(a)] > next_use_[static_cast<std::size_t>(b)];
                       });
      for (std::size_t i = 0; i < n_drop; ++i) {
        free_.push_back(slot_of_[static_cast<std::size_t>(resident_[i])]);
        slot_of_[static_cast<std::size_t>(resident_[i])] = -1;
      }
      resident_.erase(resident_.begin(), resident_.begin() + static_cast<std::ptrdiff_t>(n_drop));
    }
    std::vector<int> build;
    std::size_t e = r;
    for (; e < sch_.n_runs(); ++e) {
      const int key = sch_.run_key[e];
      if (slot_of_[static_cast<std::size_t>(key)] < 0) {
        if (free_.empty()) break;
        slot_of_[static_cast<std::size_t>(key)] = free_.back();
        free_.pop_back();
        resident_.push_back(key);
        build.push_back(key);
      }
      next_use_[static_cast<std::size_t>(key)] = sch_.next_run[e];
    }
    // build on up to n_threads threads (each key is independent; a few keys run inline)
    const int nt = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(std::max(1, n_threads)),
                                                          (build.size() + 7) / 8));
    std::atomic<std::size_t> next{0};
    auto work = [&](int) {
      Work w;
      for (;;) {
        const std::size_t i = next.fetch_add(1);
        if (i >= build.size() || token.cancelled()) break;
        build_key(build[i], w);
      }
    };
    if (nt <= 1)
      work(0);
    else
      parallel(nt, work);
    return e;
  }

  const int* order(int key) const {
    return order_.data() + static_cast<std::size_t>(slot_of_[static_cast<std::size_t>(key)]) * K_ * K_;
  }
  const BinomialP* cprob(int key) const {
    return cprob_.data() + static_cast<std::size_t>(slot_of_[static_cast<std::size_t>(key)]) * K_ * (K_ - 1);
  }

  // One step: counts n -> out (both length K), with the tables of a resident key.
  template <class G>
  inline void step(int key, const std::int64_t* n, std::int64_t* out, G& g) const {
    const int K = K_;
    for (int j = 0; j < K; ++j) out[j] = 0;
    const int* ord0 = order(key);
    const BinomialP* cp0 = cprob(key);
    for (int i = 0; i < K; ++i) {
      std::int64_t rem = n[i];
      if (rem == 0) continue;
      const int* ord = ord0 + static_cast<std::size_t>(i) * K;
      const BinomialP* cp = cp0 + static_cast<std::size_t>(i) * (K - 1);
      for (int j = 0; j < K - 1 && rem > 0; ++j) {
        const std::int64_t x = binomial_fast(g, rem, cp[j]);
        out[ord[j]] += x;
        rem -= x;
      }
      out[ord[K - 1]] += rem;
    }
  }

 private:
  struct Work {
    std::vector<double> Q, A, P, acc, tmp;
  };

  // expm(Q_c tau) into w.P (Q computed from the condition: nothing per condition is kept)
  void transition(std::size_t c, double tau, Work& w) const {
    const std::size_t kk = static_cast<std::size_t>(K_) * K_;
    w.Q.assign(kk, 0.0);
    scheme_.q_matrix(plan_.condition(c), w.Q.data());
    w.A = w.Q;
    for (std::size_t i = 0; i < kk; ++i) w.A[i] *= tau;
    w.P.resize(kk);
    expm(w.A.data(), K_, w.P.data(), /*generator=*/true);
  }

  void build_key(int key, Work& w) {
    const PopulationSchedule::Key& kd = sch_.keys[static_cast<std::size_t>(key)];
    const std::size_t kk = static_cast<std::size_t>(K_) * K_;
    if (kd.cond == -2) {
      w.acc.assign(kk, 0.0);
      for (int i = 0; i < K_; ++i) w.acc[static_cast<std::size_t>(i) * K_ + i] = 1.0;
    } else if (kd.cond >= 0) {
      transition(static_cast<std::size_t>(kd.cond), dt_, w);
      w.acc.swap(w.P);
    } else {
      for (std::size_t p = kd.p_begin; p < kd.p_end; ++p) {
        transition(sch_.pieces[p].first, sch_.pieces[p].second, w);
        if (p == kd.p_begin) {
          w.acc.swap(w.P);
        } else {
          w.tmp.resize(kk);
          linalg::matmul(w.acc.data(), w.P.data(), w.tmp.data(), K_);
          w.acc.swap(w.tmp);
        }
      }
    }
    fill_slot(slot_of_[static_cast<std::size_t>(key)], w.acc);
  }

  void fill_slot(int slot, const std::vector<double>& P) {
    const int K = K_;
    int* ord_out = order_.data() + static_cast<std::size_t>(slot) * K * K;
    BinomialP* cp_out = cprob_.data() + static_cast<std::size_t>(slot) * K * (K - 1);
    std::vector<double> row(K);
    std::vector<int> idx(K);
    for (int i = 0; i < K; ++i) {
      for (int j = 0; j < K; ++j) {
        const double v = P[static_cast<std::size_t>(i) * K + j];
        row[j] = v > 0.0 ? v : 0.0;  // clip rounding negatives
      }
      for (int j = 0; j < K; ++j) idx[j] = j;
      // largest last (stable: ties keep index order)
      const int big = static_cast<int>(std::max_element(row.begin(), row.end()) - row.begin());
      idx.erase(idx.begin() + big);
      idx.push_back(big);
      double remaining = 0.0;
      for (double v : row) remaining += v;
      for (int j = 0; j < K; ++j) ord_out[static_cast<std::size_t>(i) * K + j] = idx[j];
      for (int j = 0; j < K - 1; ++j) {
        const double v = row[idx[j]];
        double cp = remaining > 0.0 ? v / remaining : 0.0;
        cp = std::min(1.0, std::max(0.0, cp));
        cp_out[static_cast<std::size_t>(i) * (K - 1) + j] = BinomialP(cp);
        remaining -= v;
      }
    }
  }

  const CompiledScheme& scheme_;
  const SegmentPlan& plan_;
  double dt_;
  const PopulationSchedule& sch_;
  int K_;
  std::size_t capacity_ = 1;
  std::vector<int> order_;
  std::vector<BinomialP> cprob_;
  std::vector<int> slot_of_, free_, resident_;
  std::vector<std::int64_t> next_use_;
};

// Multinomial(N, p) by sequential binomials (initial counts).
template <class G>
inline void multinomial(G& g, std::int64_t N, const std::vector<double>& p, std::int64_t* out) {
  const int K = static_cast<int>(p.size());
  double remaining = 0.0;
  for (double v : p) remaining += v;
  std::int64_t rem = N;
  for (int j = 0; j < K; ++j) out[j] = 0;
  int last = K - 1;
  while (last > 0 && !(p[last] > 0.0)) --last;
  for (int j = 0; j < last && rem > 0; ++j) {
    double cp = remaining > 0.0 ? p[j] / remaining : 0.0;
    cp = std::min(1.0, std::max(0.0, cp));
    out[j] = binomial_fast(g, rem, BinomialP(cp));
    rem -= out[j];
    remaining -= p[j];
  }
  out[last] += rem;
}

}  // namespace ketacore
