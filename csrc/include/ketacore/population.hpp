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
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "ketacore/master.hpp"
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

// Multinomial step tables: for matrix m and row i, the visiting order of targets (the largest
// entry last, as the remainder) and the conditional probabilities.
struct PopulationPlan {
  int K = 0;
  std::int64_t n_steps = 0;                  // n_samples - 1
  std::vector<std::int64_t> run_len;         // steps in each run
  std::vector<int> run_mat;                  // matrix of each run
  std::vector<std::vector<double>> matrices;  // K x K row-major transition matrices
  // per matrix, per row: K entries order, K-1 conditional probabilities and their log q
  std::vector<int> order;
  std::vector<BinomialP> cprob;

  PopulationPlan(const CompiledScheme& scheme, const SegmentPlan& plan, const Grid& grid)
      : K(scheme.n_states) {
    n_steps = grid.n_samples > 0 ? grid.n_samples - 1 : 0;
    TransitionMatrixCache cache(scheme, plan);
    const std::size_t kk = static_cast<std::size_t>(K) * K;
    std::vector<int> full_id(plan.n_conditions(), -1);
    const double dt = grid.dt, tol = grid.tolerance();
    // walk segments exactly like solve_master: pieces of each grid interval
    std::vector<double> acc(kk), tmp(kk);
    bool acc_set = false, acc_simple = true;
    int acc_cond = -1;
    // intervals that straddle boundaries: one matrix per distinct sequence of pieces (a pulse
    // train whose period is a multiple of dt repeats the same few straddles)
    std::vector<std::pair<std::size_t, double>> pieces;
    std::map<std::vector<std::pair<std::size_t, double>>, int> straddle_id;
    auto acc_mul = [&](std::size_t c, double tau, double t) {
      const bool full = std::fabs(tau - dt) <= grid.negligible(t);
      pieces.emplace_back(c, full ? dt : tau);
      const std::vector<double>& P = cache.get(c, full ? dt : tau);
      if (!acc_set) {
        acc = P;
        acc_set = true;
        acc_simple = full;
        acc_cond = static_cast<int>(c);
      } else {
        linalg::matmul(acc.data(), P.data(), tmp.data(), K);
        acc.swap(tmp);
        acc_simple = false;
      }
    };
    auto emit = [&]() {
      int id;
      if (!acc_set) {  // empty interval cannot happen for dt > 0; identity for safety
        std::vector<double> I(kk, 0.0);
        for (int i = 0; i < K; ++i) I[i * K + i] = 1.0;
        id = add_matrix(I);
      } else if (acc_simple) {
        if (full_id[acc_cond] < 0) full_id[acc_cond] = add_matrix(acc);
        id = full_id[acc_cond];
      } else {
        auto it = straddle_id.find(pieces);
        if (it != straddle_id.end()) {
          id = it->second;
        } else {
          id = add_matrix(acc);
          straddle_id.emplace(pieces, id);
        }
      }
      pieces.clear();
      if (!run_mat.empty() && run_mat.back() == id) {
        ++run_len.back();
      } else {
        run_mat.push_back(id);
        run_len.push_back(1);
      }
      acc_set = false;
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
        if (tau > grid.negligible(tk)) acc_mul(c, tau, tk);
        emit();
        tcur = tk;
        ++k;
      }
      const double rem = tcur == seg_start ? y : seg_end - tcur;  // a whole segment: its own duration
      if (rem > grid.negligible(seg_end) && k < grid.n_samples) acc_mul(c, rem, seg_end);
      seg_start = seg_end;
    }
    while (k < grid.n_samples) {  // grid beyond the protocol (rounding): hold
      emit();
      ++k;
    }
  }

  int add_matrix(const std::vector<double>& P) {
    const int id = static_cast<int>(matrices.size());
    matrices.push_back(P);
    for (int i = 0; i < K; ++i) {
      std::vector<double> row(P.begin() + i * K, P.begin() + (i + 1) * K);
      for (auto& v : row) v = v > 0.0 ? v : 0.0;  // clip rounding negatives
      std::vector<int> idx(K);
      for (int j = 0; j < K; ++j) idx[j] = j;
      // largest last (stable: ties keep index order)
      const int big = static_cast<int>(std::max_element(row.begin(), row.end()) - row.begin());
      idx.erase(idx.begin() + big);
      idx.push_back(big);
      double remaining = 0.0;
      for (double v : row) remaining += v;
      for (int j = 0; j < K; ++j) order.push_back(idx[j]);
      for (int j = 0; j < K - 1; ++j) {
        const double v = row[idx[j]];
        double cp = remaining > 0.0 ? v / remaining : 0.0;
        cp = std::min(1.0, std::max(0.0, cp));
        cprob.emplace_back(cp);
        remaining -= v;
      }
    }
    return id;
  }

  // One step: counts n -> out (both length K).
  template <class G>
  inline void step(int m, const std::int64_t* n, std::int64_t* out, G& g) const {
    for (int j = 0; j < K; ++j) out[j] = 0;
    const std::size_t base_o = static_cast<std::size_t>(m) * K * K;
    const std::size_t base_c = static_cast<std::size_t>(m) * K * (K - 1);
    for (int i = 0; i < K; ++i) {
      std::int64_t rem = n[i];
      if (rem == 0) continue;
      const int* ord = order.data() + base_o + static_cast<std::size_t>(i) * K;
      const BinomialP* cp = cprob.data() + base_c + static_cast<std::size_t>(i) * (K - 1);
      for (int j = 0; j < K - 1 && rem > 0; ++j) {
        const std::int64_t x = binomial_fast(g, rem, cp[j]);
        out[ord[j]] += x;
        rem -= x;
      }
      out[ord[K - 1]] += rem;
    }
  }
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
