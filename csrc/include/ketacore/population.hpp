// ketacore/population.hpp -- exact-at-grid population update for N identical channels.
//
// Channels are independent, so over one grid interval the channels in state i move to the
// states j with probabilities P_ij, P = expm(Q dt) (or, for an interval that straddles segment
// boundaries, the product of expm(Q_c tau_c) over its pieces): the new counts are a sum over i of
// Multinomial(n_i, P_i.) draws.  Each multinomial is drawn as sequential binomials
// (x_j ~ Binomial(n_remaining, P_ij / P_remaining)), ordered so the row's largest entry is the
// remainder.  The draw is exact in distribution at the grid points for any dt, and its cost per
// step depends on the number of states, not on N (BTPE is O(1) in n; inversion only runs when
// n·p <= 30).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ketacore/master.hpp"
#include "ketacore/protocol.hpp"
#include "ketacore/rng.hpp"
#include "ketacore/scheme.hpp"

namespace ketacore {

// Binomial with a cached log(q), q = 1 - min(p, 1 - p): the inversion branch of `binomial`
// evaluates exp(n log q) with exactly this log q, so results equal binomial(g, n, p) bit for bit.
template <class G>
inline std::int64_t binomial_cached(G& g, std::int64_t n, double p, double log_qsmall) {
  if (n == 0 || p == 0.0) return 0;
  const bool flip = p > 0.5;
  const double ps = flip ? 1.0 - p : p;
  const double dn = static_cast<double>(n);
  std::int64_t x;
  if (ps * dn <= 30.0) {
    const double q = 1.0 - ps;
    const double qn = std::exp(dn * log_qsmall);
    const double np = dn * ps;
    const double bound_d = np + 10.0 * std::sqrt(np * q + 1);
    const std::int64_t bound = static_cast<std::int64_t>(dn < bound_d ? dn : bound_d);
    std::int64_t X = 0;
    double px = qn;
    double U = g.next_double();
    while (U > px) {
      ++X;
      if (X > bound) {
        X = 0;
        px = qn;
        U = g.next_double();
      } else {
        U -= px;
        px = (static_cast<double>(n - X + 1) * ps * px) / (static_cast<double>(X) * q);
      }
    }
    x = X;
  } else {
    x = detail::binomial_btpe(g, n, ps);
  }
  return flip ? n - x : x;
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
  std::vector<double> cprob, logq;

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
    auto acc_mul = [&](std::size_t c, double tau) {
      const bool full = std::fabs(tau - dt) <= tol;
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
        id = add_matrix(acc);
      }
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
        if (tau > tol) acc_mul(c, tau);
        emit();
        tcur = tk;
        ++k;
      }
      const double rem = seg_end - tcur;
      if (rem > tol && k < grid.n_samples) acc_mul(c, rem);
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
        cprob.push_back(cp);
        const double ps = cp > 0.5 ? 1.0 - cp : cp;
        logq.push_back(std::log(1.0 - ps));
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
      const double* cp = cprob.data() + base_c + static_cast<std::size_t>(i) * (K - 1);
      const double* lq = logq.data() + base_c + static_cast<std::size_t>(i) * (K - 1);
      for (int j = 0; j < K - 1 && rem > 0; ++j) {
        const std::int64_t x = binomial_cached(g, rem, cp[j], lq[j]);
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
    out[j] = binomial(g, rem, cp);
    rem -= out[j];
    remaining -= p[j];
  }
  out[last] += rem;
}

}  // namespace ketacore
