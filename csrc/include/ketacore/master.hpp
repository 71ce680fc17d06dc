// ketacore/master.hpp -- exact solution of the master equation dp/dt = p Q on a grid, for
// piecewise-constant conditions.
//
// Within a segment p(t + tau) = p(t) expm(Q tau) exactly.  P(dt) = expm(Q dt) is computed once
// per unique condition and reused for every full grid step of every segment with that
// condition; partial steps (segment boundaries between grid points) use expm(Q tau) for the
// exact remaining interval, cached by (condition, tau) -- except for a condition of a single
// segment (a sampled waveform), whose pieces are applied to p directly by uniformization
// (expmv_uniformized) when that is cheap -- and, when that segment spans at most 4 grid steps,
// its full steps too; such a condition keeps no matrix (TransitionMatrixCache scratch).  Boundaries within 1e-7 dt of a grid point are
// treated as lying on it.
#pragma once
#include <algorithm>
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
#include "ketacore/scheme.hpp"

namespace ketacore {

// Q, expm(Q dt) and expm(Q tau) of the conditions of a plan.  Q is computed when first needed.
// A condition marked in `once` (used by a single segment: a sampled waveform has one per sample)
// keeps nothing: its Q and its latest matrix live in scratch space tagged with (condition, tau),
// reused while the tag matches (the full steps of its one segment) and valid until the next call
// for another one, so the memory does not grow with the number of conditions.  Other conditions
// keep their Q, their full grid step and (up to kMaxEntries) their partial steps.
class TransitionMatrixCache {
  public:
    TransitionMatrixCache(const CompiledScheme& scheme, const SegmentPlan& plan,
                          const std::vector<std::uint8_t>* once = nullptr)
        : scheme_(scheme), plan_(plan), K_(scheme.n_states), Q_(plan.n_conditions()), once_(once) {}
    int n_states() const { return K_; }

    const std::vector<double>& q(std::size_t c) {
        if (!Q_[c].empty()) return Q_[c];
        if (!kept(c) && scratch_q_c_ == c) return scratch_q_;
        std::vector<double>& dst = kept(c) ? Q_[c] : scratch_q_;
        dst.assign(static_cast<std::size_t>(K_) * K_, 0.0);
        scheme_.q_matrix(plan_.condition(c), dst.data());
        if (!kept(c)) scratch_q_c_ = c;
        return dst;
    }

    // expm(Q_c dt) for the grid step (one slot per kept condition, no lookup cost).
    const std::vector<double>& step(std::size_t c, double dt) {
        if (!kept(c)) return scratch(c, dt);
        if (step_.empty()) step_.resize(Q_.size());
        if (step_[c].empty()) step_[c] = compute(c, dt);
        return step_[c];
    }

    // expm(Q_c tau), cached for kept conditions.
    const std::vector<double>& get(std::size_t c, double tau) {
        if (!kept(c)) return scratch(c, tau);
        auto key = std::make_pair(c, tau);
        auto it = cache_.find(key);
        if (it != cache_.end()) return it->second;
        std::vector<double> P = compute(c, tau);
        if (cache_.size() >= kMaxEntries) {
            scratch_ = std::move(P);
            scratch_c_ = kNone;
            return scratch_;
        }
        return cache_.emplace(key, std::move(P)).first->second;
    }

  private:
    static constexpr std::size_t kNone = static_cast<std::size_t>(-1);
    bool kept(std::size_t c) const { return !(once_ && (*once_)[c]); }
    const std::vector<double>& scratch(std::size_t c, double tau) {
        if (scratch_c_ != c || scratch_tau_ != tau) {
            scratch_ = compute(c, tau);
            scratch_c_ = c;
            scratch_tau_ = tau;
        }
        return scratch_;
    }
    std::vector<double> compute(std::size_t c, double tau) {
        const std::size_t kk = static_cast<std::size_t>(K_) * K_;
        std::vector<double> A(q(c));
        for (std::size_t i = 0; i < kk; ++i) A[i] *= tau;
        std::vector<double> P(kk);
        expm(A.data(), K_, P.data(), /*generator=*/true);
        return P;
    }
    std::vector<std::vector<double>> step_;
    static constexpr std::size_t kMaxEntries = 4096;
    const CompiledScheme& scheme_;
    const SegmentPlan& plan_;
    int K_;
    std::vector<std::vector<double>> Q_;
    const std::vector<std::uint8_t>* once_;
    std::map<std::pair<std::size_t, double>, std::vector<double>> cache_;
    std::vector<double> scratch_, scratch_q_;
    std::size_t scratch_c_ = kNone, scratch_q_c_ = kNone;
    double scratch_tau_ = 0.0;
};

// p <- p expm(Q tau) without forming the matrix, by uniformization (Jensen 1953; Grassmann
// 1977, "Transient solutions in Markovian queueing systems", Comput. Oper. Res. 4:47-53,
// doi:10.1016/0305-0548(77)90007-7): with q = tau max_i |Q_ii| and the stochastic matrix
// B = I + Q tau / q,  p expm(Q tau) = sum_k Poisson(k; q) p B^k.  Every term is non-negative, so
// the components are summed without cancellation (rounding ~ k K u relative).  The series runs
// at least K terms (every state reachable from p then has its paths in the sum) and until the
// Poisson tail, bounded by w_{k+1} / (1 - q / (k + 2)), is below 2^-100 of the total mass: an
// absolute truncation error, so a component below 2^-56 (relative error up to 2^-44) sends the
// piece back to the caller, as does q > kMaxUniformQ; false = p untouched, and the caller forms
// the matrix.  Cost ~(q + 8 sqrt(q) + 25) vector-matrix products against ~10 K^3 flops for
// expm, so it pays for a piece used once (a sampled waveform: a condition per sample).
constexpr double kMaxUniformQ = 32.0;

inline bool expmv_uniformized(const double* Q, int K, double tau, double* p, std::vector<double>& B,
                              std::vector<double>& v, std::vector<double>& w, std::vector<double>& acc) {
    double q = 0.0;
    for (int i = 0; i < K; ++i) q = std::max(q, -Q[static_cast<std::size_t>(i) * K + i] * tau);
    if (!(q <= kMaxUniformQ)) return false;
    if (q == 0.0) return true;  // no transitions: p unchanged
    const std::size_t kk = static_cast<std::size_t>(K) * K;
    B.resize(kk);
    v.assign(p, p + K);
    w.resize(K);
    acc.resize(K);
    const double inv_q = 1.0 / q;
    for (int i = 0; i < K; ++i)
        for (int j = 0; j < K; ++j) {
            const std::size_t ij = static_cast<std::size_t>(i) * K + j;
            // (the diagonal q + Q_ii tau >= 0 exactly: q is the largest of the -Q_ii tau)
            B[ij] = i == j ? (q + Q[ij] * tau) * inv_q : Q[ij] * tau * inv_q;
        }
    double wk = std::exp(-q);
    for (int j = 0; j < K; ++j) acc[j] = wk * v[j];
    constexpr double kTail = 7.888609052210118e-31;  // 2^-100
    for (int k = 1; k < 4096; ++k) {
        linalg::vecmat_small(v.data(), B.data(), w.data(), K);
        v.swap(w);
        wk *= q / k;
        for (int j = 0; j < K; ++j) acc[j] += wk * v[j];
        const double next = wk * q / (k + 1);
        if (k >= K && k + 2 > q && next <= kTail * (1.0 - q / (k + 2))) break;
    }
    constexpr double kSmall = 1.3877787807814457e-17;  // 2^-56
    for (int j = 0; j < K; ++j)
        if (acc[j] > 0.0 && acc[j] < kSmall) return false;
    for (int j = 0; j < K; ++j) p[j] = acc[j];
    return true;
}

// Propagate p0 over the plan; write occupancy (n_samples x K, row-major) to `out`.
// If `cancel` is given it is polled every kCancelPollInterval samples or segments; a cancelled
// solve returns early with the rest of `out` unspecified (the caller discards it).
inline void solve_master(const CompiledScheme& scheme, const SegmentPlan& plan, const Grid& grid,
                         const double* p0, double* out, const CancelToken* cancel = nullptr) {
    const int K = scheme.n_states;
    if (grid.n_samples <= 0) return;
    // Samples past the end of the protocol (callers size the grid from the protocol, so
    // this only guards against misuse) are filled with the final occupancy.
    // A condition of one segment (a sampled waveform has one per sample) keeps no matrix (the
    // cache's tagged scratch) and gets its partial pieces by uniformization, as vectors; when
    // its segment spans at most 4 grid steps, its full steps too.  Conditions that recur (pulse
    // trains) keep cached matrices.
    std::vector<std::uint8_t> once(plan.n_conditions(), 0), brief(plan.n_conditions(), 0);
    {
        std::vector<std::int64_t> uses(plan.n_conditions(), 0);
        std::vector<double> span(plan.n_conditions(), 0.0);
        for (std::size_t s = 0; s < plan.n_segments(); ++s) {
            ++uses[static_cast<std::size_t>(plan.cond[s])];
            span[static_cast<std::size_t>(plan.cond[s])] += plan.duration[s];
        }
        for (std::size_t c = 0; c < once.size(); ++c) {
            once[c] = uses[c] == 1;
            brief[c] = once[c] && span[c] <= 4.0 * grid.dt + grid.tolerance();  // (ulps of diff(t))
        }
    }
    TransitionMatrixCache cache(scheme, plan, &once);
    std::vector<double> p(p0, p0 + K), tmp(K);
    std::vector<double> uB, uv, uw, uacc;
    auto piece = [&](std::size_t c, double tau) {
        if (once[c] && expmv_uniformized(cache.q(c).data(), K, tau, p.data(), uB, uv, uw, uacc)) return;
        const std::vector<double>& P = cache.get(c, tau);
        linalg::vecmat_small(p.data(), P.data(), tmp.data(), K);
        p.swap(tmp);
    };
    for (int j = 0; j < K; ++j) out[j] = p[j];
    std::int64_t k = 1;
    const double dt = grid.dt, tol = grid.tolerance();
    double seg_start = 0.0, comp = 0.0;  // Kahan sum of durations
    for (std::size_t s = 0; s < plan.n_segments(); ++s) {
        const double y = plan.duration[s] - comp;
        const double seg_end = seg_start + y;
        comp = (seg_end - seg_start) - y;
        const std::size_t c = static_cast<std::size_t>(plan.cond[s]);
        if (cancel && (s % kCancelPollInterval) == 0 && cancel->cancelled()) return;
        // the last sample may lie (within tol) past the previous segment's end: it was
        // propagated under that segment's conditions, so this segment starts from it
        double tcur = std::max(seg_start, static_cast<double>(k - 1) * dt);
        while (k < grid.n_samples) {
            if (cancel && (k % kCancelPollInterval) == 0 && cancel->cancelled()) return;
            const double tk = static_cast<double>(k) * dt;
            if (tk > seg_end + tol) break;
            const double tau = tk - tcur;
            const double eps = grid.negligible(tk);
            if (tau > eps) {
                if (std::fabs(tau - dt) <= eps) {
                    if (!(brief[c] && expmv_uniformized(cache.q(c).data(), K, dt, p.data(), uB, uv, uw, uacc))) {
                        const std::vector<double>& P = cache.step(c, dt);
                        linalg::vecmat_small(p.data(), P.data(), tmp.data(), K);
                        p.swap(tmp);
                    }
                } else {
                    piece(c, tau);
                }
            }
            double* o = out + static_cast<std::size_t>(k) * K;
            for (int j = 0; j < K; ++j) o[j] = p[j];
            tcur = tk;
            ++k;
        }
        if (k >= grid.n_samples) return;  // every sample written: nothing left to propagate
        const double rem = tcur == seg_start ? y : seg_end - tcur;  // a whole segment: its own duration
        if (rem > grid.negligible(seg_end)) piece(c, rem);
        seg_start = seg_end;
    }
    for (; k < grid.n_samples; ++k)
        for (int j = 0; j < K; ++j) out[static_cast<std::size_t>(k) * K + j] = p[j];
}

}  // namespace ketacore
