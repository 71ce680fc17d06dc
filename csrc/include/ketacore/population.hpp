// ketacore/population.hpp -- exact-at-grid population update for N identical channels.
//
// Channels are independent, so over one grid interval the channels in state i move to the
// states j with probabilities P_ij, P = expm(Q dt) (or, for an interval that straddles segment
// boundaries, the product of expm(Q_c tau_c) over its pieces): the new counts are a sum over i of
// Multinomial(n_i, P_i.) draws.  Each multinomial is drawn as sequential binomials
// (x_j ~ Binomial(n_remaining, P_ij / P_remaining)), ordered so the row's largest entry is the
// remainder.  The draw is exact in distribution at the grid points for any dt, and its cost per
// step depends on the number of states, not on N (binomial_cfn and BTRS are O(1) in n; inversion
// only runs when n·min(p, 1 - p) < 10).
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
// (BinomialP).  Three exact algorithms:
//  * n·p < 10: sequential-search inversion (Kachitvichyanukul & Schmeiser 1988 "BINV"), with the
//    exact shortcut U <= 1 + n log q  =>  U <= q^n  =>  X = 0 (exp(x) >= 1 + x), which skips the
//    exp() for most draws when n·p is small; in column order, for n·p in [0.2, 6), the same
//    search unrolled without data-dependent branches (binomial_inversion_unrolled);
//  * n·p >= 10 and n·p·q < 32: BTRS, transformed rejection with squeeze (Hormann 1993, "The generation of
//    binomial random variates", J. Stat. Comput. Simul. 46:101-110, doi:10.1080/00949659308811496),
//    whose setup needs one sqrt and whose squeeze accepts ~85% of proposals without a logarithm;
//    the exact acceptance test evaluates log f(k)/f(m) as logs of ratios near 1 plus Stirling
//    tails (robbins_remainder, shared with binomial_cfn; error < 1.1e-16 above 16, ~4e-15 below).
//  * n·p·q >= 32 (and n < 2^53): binomial_cfn below, transformed rejection from a
//    Cornish-Fisher-corrected normal whose squeeze takes > 99% of draws with two stream words and
//    one sqrt (BTRS's ~80% squeeze and its mispredicted branches made it ~37 ns a draw in the
//    population step; see docs/stochastic.md, "Ninth look" and "Tenth look").
// All return draws from Binomial(n, p) exactly (up to floating-point rounding); they are tested
// against scipy.stats in tests/test_rng.py.  (rng.hpp's `binomial` is the numpy-identical BTPE.)
struct BinomialP {
  double p = 0.0;       // as given
  double ps = 0.0;      // min(p, 1 - p)
  double qs = 1.0;      // 1 - ps
  double log_qs = 0.0;  // log(qs)
  double ratio = 0.0;   // ps / qs
  double cf_c = 0.0;    // (qs - ps) / 6: the Cornish-Fisher skewness term of binomial_cfn
  double psqs = 0.0;    // ps * qs
  double ps_hi = 0.0, ps_lo = 0.0;  // ps = ps_hi + ps_lo, 26 bits each (Veltkamp), for exact n ps
  bool flip = false;    // p > 0.5: draw failures
  explicit BinomialP(double prob = 0.0) {
    p = prob;
    flip = prob > 0.5;
    ps = flip ? 1.0 - prob : prob;
    qs = 1.0 - ps;
    log_qs = std::log1p(-ps);  // not log(qs): 1 - ps rounds (to 1 below ps = 2^-54)
    ratio = qs > 0.0 ? ps / qs : 0.0;
    cf_c = (qs - ps) / 6.0;
    psqs = ps * qs;
    const double v = 134217729.0 * ps;  // 2^27 + 1
    ps_hi = v - (v - ps);
    ps_lo = ps - ps_hi;
  }
  // The rounding error of mu = fl(n ps), so that n ps = mu + mu_lo exactly (Dekker's
  // two-product, 0 <= n < 2^53: n is split at bit 26 by integer masking, ps by Veltkamp, and all
  // four partial products are exact).  Not std::fma: without hardware FMA (a generic x86-64
  // build) that is a libm call, and on some platforms not correctly rounded.
  double product_error(std::int64_t n, double mu) const {
    const std::int64_t nh = n & ~((std::int64_t(1) << 26) - 1);
    const double ah = static_cast<double>(nh), al = static_cast<double>(n - nh);
    return ((ah * ps_hi - mu) + ah * ps_lo + al * ps_hi) + al * ps_lo;
  }
};

namespace detail {

// Robbins' remainder r(j) = log j! - [(j + 1/2) log j - j + log(2 pi) / 2], j >= 1: summed logs
// below 16 (error ~ulp(log 15!) = 4e-15), the asymptotic series above (5 terms; the first
// omitted one, 691 / (360360 j^11), is below 1.1e-16 from j = 16).  BTRS's Stirling tails
// t(k) = log k! - (k + 1/2) log(k + 1) + (k + 1) - log(2 pi)/2 are r(k + 1).
inline double robbins_remainder(std::int64_t j) {
  static const std::vector<double> table = [] {
    std::vector<double> t(16, 0.0);
    double lf = 0.0;
    for (int i = 1; i < 16; ++i) {
      lf += std::log(static_cast<double>(i));
      const double x = static_cast<double>(i);
      t[i] = lf - ((x + 0.5) * std::log(x) - x + 0.91893853320467274178);
    }
    return t;
  }();
  if (j < 16) return table[static_cast<std::size_t>(j)];
  const double x = static_cast<double>(j), r2 = 1.0 / (x * x);
  return (1.0 / 12.0 - r2 * (1.0 / 360.0 - r2 * (1.0 / 1260.0 - r2 * (1.0 / 1680.0 - r2 * (1.0 / 1188.0))))) / x;
}

// BINV's sequential search from the count X, whose probability is px, with U the part of the
// uniform left after the probabilities of the counts below X: the count, or -1 for BINV's restart
// (a count beyond n or far in the tail, where rounding in the recursion could only put it).
inline std::int64_t binomial_inversion_search(double U, double px, std::int64_t X, std::int64_t n,
                                              const BinomialP& b) {
  const double np = static_cast<double>(n) * b.ps;
  const double easy = np + 10.0;  // X <= easy  =>  X <= cap (the sqrt term is >= 10)
  while (U > px) {
    U -= px;
    ++X;
    if (X > n || (static_cast<double>(X) > easy &&
                  static_cast<double>(X) > np + 10.0 * std::sqrt(np * b.qs + 1.0)))  // BINV restart
      return -1;
    px *= static_cast<double>(n - X + 1) / static_cast<double>(X) * b.ratio;
  }
  return X;
}

template <class G>
inline std::int64_t binomial_inversion_fast(G& g, std::int64_t n, const BinomialP& b) {
  const double x = static_cast<double>(n) * b.log_qs;  // log q^n
  for (;;) {
    const double U = g.next_double();
    if (U <= 1.0 + x) return 0;  // exact: 1 + x <= exp(x) = q^n
    const std::int64_t X = binomial_inversion_search(U, std::exp(x), 0, n, b);
    if (X >= 0) return X;
  }
}

// Inversion without data-dependent branches for the first M counts, for the column-order step
// (binomial_fast<G, 2>): X is the number of k < M with U > F(k), F the cdf from the same
// recursion f(k) = f(k - 1) (n - k + 1) / k * p / q as BINV's search, so X is the count that
// search finds from the same uniform (up to rounding at the cdf's steps); only U > F(M - 1)
// goes on with the search.  binomial_fast uses M = 8 for n p in [0.2, 2) and M = 16 for
// [2, 6): the tail probability is then < 1.1e-3 and < 5.1e-4.  In column order a mispredicted
// branch of the sequential search (X = 0 or not, where its loop stops) discards the other
// rows' draws in flight; for n p of ~0.1-2 those were a third of an N = 1e9 step.  Needs n >= M.
template <int M>
struct InverseCounts {
  double v[M];
  constexpr InverseCounts() : v() {
    for (int k = 1; k < M; ++k) v[k] = 1.0 / k;
  }
};
template <int M, class G>
inline std::int64_t binomial_inversion_unrolled(G& g, std::int64_t n, const BinomialP& b) {
  static constexpr InverseCounts<M> inv{};
  const double dn = static_cast<double>(n), x = dn * b.log_qs;
  for (;;) {
    const double U = g.next_double();
    double f = std::exp(x), F = f;
    std::int64_t X = U > F;
    for (int k = 1; k < M; ++k) {
      f *= (dn - static_cast<double>(k - 1)) * inv.v[k] * b.ratio;
      F += f;
      X += U > F;
    }
    if (__builtin_expect(X < M, 1)) return X;
    f *= (dn - static_cast<double>(M - 1)) / static_cast<double>(M) * b.ratio;
    const std::int64_t Xt = binomial_inversion_search(U - F, f, M, n, b);
    if (Xt >= 0) return Xt;
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
                         (kd + 0.5) * std::log(b.ratio * nk1 / (kd + 1.0)) + robbins_remainder(m + 1) +
                         robbins_remainder(n - m + 1) - robbins_remainder(k + 1) - robbins_remainder(n - k + 1);
    if (lv <= bound) return k;
  }
}


// ---------------------------------------------------------------------------------------------
// binomial_cfn: transformed rejection from a Cornish-Fisher-corrected normal, for n·p·q >= 32.
//
// Proposal.  Z ~ N(0, 1) from numpy's 256-layer normal ziggurat (rng.hpp), mapped by the
// first-order Cornish-Fisher expansion of the binomial quantile (Cornish & Fisher 1938, doi:
// 10.2307/1400905), in counts from the mean mu = n p:  Y = sigma Z + c (Z^2 - 1),
// sigma = sqrt(n p q), c = (q - p) / 6 (p <= 1/2, so c >= 0), and K = floor(mu + 1/2 + Y), the
// nearest count.  Y is increasing for Z > z* = -sigma / (2 c) (below -3 sigma <= -17 here); a Z
// at or below z* is rejected, so the proposal's probability of a count k is exactly
//     h(k) = Phi(z(k + 1/2 - mu)) - Phi(z(k - 1/2 - mu)),
// z(y) the preimage of y (a root of a quadratic, clipped to z*).  (How mu + 1/2 is held so that
// the cell edges are resolved to ~ulp(16 sigma), and why mu is the exact n p from 2^28 on: see
// CfnSetup.)
//
// Acceptance.  K is accepted with probability f(k) / (M h(k)), f the binomial pmf, with
// log M = A / (n p q).  h matches f to second order in 1/sigma (the first-order skewness is in
// the map, the discretisation error of a midpoint is second order), so M is close to 1: one
// proposal in ~1 + A / (n p q) is rejected.
//
// Squeeze.  With V ~ U(0, 1) and |Z| < 3.92, the proposal is accepted without evaluating f if
// (1 - V) n p q > C0 + C4 Z^4.  This is valid when
//     f(k) / (M h(k)) >= exp(-(C0 + C4 Z^4) / (n p q))        (and 1 - u <= exp(-u)),
// i.e. when  b(k) = -n p q log(f(k) / h(k)) <= C0 - A + C4 Z^4  for every Z in k's cell.  It takes
// 99.5% of the draws at n p q = 32, 99.95% at 400 and 99.99% above 1e4 (the rest are the
// ziggurat's own slow path and the squeeze's misses), with one sqrt, no logarithm and one
// stream word for ~7/8 of draws in the row-order variant, two for all in the column-order one
// (see binomial_cfn).  Everything else goes to the exact test,
// log V < log f(k) - log h(k) - log M, with log f in Loader's form (binomial_log_pmf) and h from
// a Taylor series at the cell midpoint or erfc differences.
//
// The constants are not derived analytically; they are verified numerically, the way the
// constants of BTRS (Hormann 1993) were: tools/verify_binomial_cfn.py evaluates b(k) with scipy
// (log_ndtr, or a midpoint series for cells narrower than 2e-3; log f in Loader's form with the
// exact rational n p) for every count with log f(k) > -700 over n p q in [30, 1e9], 23 values of
// p in [1e-12, 1/2] and 3-16 offsets of mu per (n p q, p).  The largest -b (which must stay below
// A, log M = A / (n p q)) is 0.0638 against A = 0.125 (it tends to 1/16 at p = 1/2), and the
// largest b / (C0 - A + C4 z^4) over cells the squeeze can accept is 0.68.  (Counts with
// log f <= -700 are proposed with probability < 1e-300.)  Above n p q ~ 1e10 the double-precision
// b (~n p q * 1e-14) cannot resolve A; tools/verify_binomial_cfn_mpmath.py (helper-119) does it
// at 60 digits with the code's doubles: within the bounds up to n p q = 1e13 (largest -b 0.078);
// from 1e14 -b exceeds A by ~1e-15 relative, the rounding of sigma and c in double precision.
// tests/test_binomial_cfn.py re-checks the C++ log f (against mpmath) and log h (against scipy)
// and the constants on a grid.
// n < 2^53 (n and mu exact enough in a double); otherwise BTRS.
struct CfnConstants {
  static constexpr double min_npq = 32.0;  // n p q below this: BTRS
  static constexpr double A = 0.125;       // log M = A / (n p q)
  static constexpr double C0 = 0.175;      // squeeze: (1 - V) n p q > C0 + C4 Z^4
  static constexpr double C4 = 0.035;
  static constexpr double zmax2 = 3.92 * 3.92;  // the squeeze applies for |Z| < 3.92 only
  static constexpr double max_n = 9007199254740992.0;  // 2^53
};

// Loader's deviance term bd0(x, M) = x log(x / M) + M - x, given dx = x - M exactly: for
// |dx| < 0.1 (x + M) by its series in v = dx / (x + M) (2 x v^(2j+1) / (2j + 1), j >= 1, plus
// dx v), which has no cancellation (Loader 2000, "Fast and accurate computation of binomial
// probabilities"; R's dbinom).
inline double loader_bd0(double x, double M, double dx) {
  if (std::fabs(dx) < 0.1 * (x + M)) {
    const double v = dx / (x + M), v2 = v * v;
    double s = dx * v, ej = 2.0 * x * v;
    for (int j = 1; j < 200; ++j) {
      ej *= v2;
      const double s1 = s + ej / static_cast<double>(2 * j + 1);
      if (s1 == s) return s1;
      s = s1;
    }
    return s;
  }
  return x * std::log(x / M) - dx;
}

// log f(k) for Binomial(n, ps), 0 < k < n, by Stirling's formula with Robbins' remainder in
// Loader's form:
//   log f(k) = -bd0(k, n p) - bd0(n - k, n q) + log(n / (2 pi k (n - k))) / 2 + r(n) - r(k) - r(n - k),
// whose terms are all of the size of the result (the ~d = k - n p terms of k log(k / (n p)) and
// (n - k) log((n - k) / (n q)) cancel analytically).  d is formed from n p split exactly into
// mu + mu_lo (BinomialP::product_error), so neither the rounding of n p nor a cancellation of large terms limits
// the accuracy: ~1e-13 absolute for n up to 2^53 (tests/test_binomial_cfn.py, against mpmath).
inline double binomial_log_pmf(std::int64_t k, std::int64_t n, const BinomialP& b, double mu) {
  if (k == 0) return static_cast<double>(n) * b.log_qs;
  if (k == n) return static_cast<double>(n) * std::log(b.ps);
  const double dk = static_cast<double>(k), dn = static_cast<double>(n), nk = dn - dk;
  const double mu_lo = b.product_error(n, mu);  // n ps = mu + mu_lo exactly (n < 2^53)
  const double d = (dk - mu) - mu_lo;            // k - mu is exact (Sterbenz) near the mean
  return -loader_bd0(dk, mu, d) - loader_bd0(nk, dn * b.qs, -d) +
         0.5 * std::log(dn / (6.283185307179586477 * dk * nk)) + robbins_remainder(n) -
         robbins_remainder(k) - robbins_remainder(n - k);
}

// The preimage z of y under y = sigma z + c (z^2 - 1) on its increasing branch (z > z*), or z*.
inline double cfn_preimage(double y, double sigma, double c) {
  const double cy = c + y;
  const double disc = sigma * sigma + 4.0 * c * cy;
  if (!(disc > 0.0)) return -sigma / (2.0 * c);  // y below the branch's minimum (c > 0 here)
  return 2.0 * cy / (sigma + std::sqrt(disc));    // (the stable root; c = 0 gives y / sigma)
}

// log(Phi(b) - Phi(a)) for a < b, w = b - a (given separately: the caller knows it without
// cancellation): a Taylor series at the midpoint m for narrow intervals (terms
// He_2j(m) w^2j / (2^2j (2j + 1)!); with w (1 + |m|) < 0.1 the first omitted term is below 1e-16
// relative), erfc differences in the tail away from 0 otherwise.
inline double log_normal_interval(double a, double b, double w) {
  if (!(w > 0.0)) return -HUGE_VAL;
  const double m = 0.5 * (a + b);
  if (w * (1.0 + std::fabs(m)) < 0.1) {
    const double m2 = m * m, w2 = w * w;
    const double he2 = m2 - 1.0, he4 = (m2 - 6.0) * m2 + 3.0, he6 = ((m2 - 15.0) * m2 + 45.0) * m2 - 15.0;
    const double s = 1.0 + w2 * (he2 / 24.0 + w2 * (he4 / 1920.0 + w2 * (he6 / 322560.0)));
    return std::log(w) - 0.5 * m2 - 0.91893853320467274178 + std::log(s);
  }
  constexpr double r2 = 0.70710678118654752440;
  double h;
  if (a >= 0.0)
    h = 0.5 * (std::erfc(a * r2) - std::erfc(b * r2));
  else if (b <= 0.0)
    h = 0.5 * (std::erfc(-b * r2) - std::erfc(-a * r2));
  else
    h = 1.0 - 0.5 * (std::erfc(b * r2) + std::erfc(-a * r2));
  return h > 0.0 ? std::log(h) : -HUGE_VAL;
}

// The proposal of binomial_cfn for Binomial(n, ps), shared by the sampler and the tests.  The
// count of a Y is  k = base + floor(fo + Y)  with  base + fo = n ps + 1/2  (the exact mean,
// mu + mu_lo, from mu = 2^28 on; centred on mu = fl(n ps) alone, the proposal is shifted by up
// to ulp(mu) / 2, which moves b(k) by ~mu_lo sigma |Z| -- past A and the squeeze's allowance
// from n p q ~ 1e10, helper-119's audit), base an integer and fo = frac(mu + 1/2) + mu_lo + off,
// off = 2^(floor(e / 2) + 4) for n p q in [2^e, 2^(e+1)), so that
// off > 8 sigma (taken from the exponent bits, not from sigma: it stays off the
// n -> sqrt -> k chain).  Then fo + Y > 0 wherever the squeeze can accept (|Z| < 3.92, so
// |Y| < 3.92 sigma + 2.6), where the floor is a truncation, and the cell edges are resolved to
// ~ulp(16 sigma) rather than ~ulp(mu).
struct CfnSetup {
  double mu, npq, sigma, c, fo;
  std::int64_t base;
  CfnSetup(std::int64_t n, const BinomialP& b) {
    const double dn = static_cast<double>(n);
    npq = dn * b.psqs;
    sigma = std::sqrt(npq);
    mu = dn * b.ps;
    c = b.cf_c;
    std::uint64_t bits;
    std::memcpy(&bits, &npq, sizeof bits);
    const int e = static_cast<int>((bits >> 52) & 0x7ff) - 1023;  // npq >= 32: e >= 5
    const std::int64_t off = std::int64_t(1) << ((e >> 1) + 4);
    const double half = mu + 0.5;
    const std::int64_t whole = static_cast<std::int64_t>(half);
    base = whole - off;
    // (below mu = 2^28 the shift is at most 2^-25, which moves b(k) by < 1e-3 for |Z| < 5, and
    // the two-product's ten operations would cost ~5% of the population step at N = 1e9)
    const double mu_lo = mu >= 268435456.0 ? b.product_error(n, mu) : 0.0;
    fo = ((half - static_cast<double>(whole)) + mu_lo) + static_cast<double>(off);
  }
  // fo + Y for a Z, summed so that only the last multiply-add waits for sigma
  double t_of(double z) const { return (fo + c * (z * z - 1.0)) + sigma * z; }
  std::int64_t count(double t) const {  // base + floor(t), any t
    std::int64_t ti = static_cast<std::int64_t>(t);
    ti -= static_cast<std::int64_t>(t < static_cast<double>(ti));
    return base + ti;
  }
  // log h(k): the proposal's probability of the count k.  On the increasing branch the cell's
  // width in z is 1 / (sigma + c (zlo + zhi)) exactly (subtract the two quadratics), which
  // avoids the cancellation of zhi - zlo (~1e-11 relative at n p q = 1e9).
  double log_proposal(std::int64_t k) const {
    const double ylo = static_cast<double>(k - base) - fo;
    const double zlo = cfn_preimage(ylo, sigma, c), zhi = cfn_preimage(ylo + 1.0, sigma, c);
    const double zstar = c > 0.0 ? -sigma / (2.0 * c) : -HUGE_VAL;
    const double w = zlo > zstar ? 1.0 / (sigma + c * (zlo + zhi)) : zhi - zlo;
    return log_normal_interval(zlo, zhi, w);
  }
};

// The exact test of binomial_cfn.
inline bool binomial_cfn_exact(const CfnSetup& s, std::int64_t n, const BinomialP& b, std::int64_t k, double z,
                               double v) {
  if (static_cast<std::uint64_t>(k) > static_cast<std::uint64_t>(n)) return false;  // f(k) = 0
  if (!(s.sigma + 2.0 * s.c * z > 0.0)) return false;  // Z <= z*: not part of the proposal
  const double lh = s.log_proposal(k);
  if (!(lh > -HUGE_VAL)) return false;  // h underflows: only for |Z| > ~27 (probability < 1e-160)
  if (v <= 0.0) return true;
  return std::log(v) < binomial_log_pmf(k, n, b, s.mu) - lh - CfnConstants::A / s.npq;
}

// What the population method uses: the squeeze on, nothing observed.  (Tests pass an observer
// that counts the paths, records the proposals or turns the squeeze off.)
struct CfnPlain {
  static constexpr bool squeeze = true;
  void proposal(std::int64_t) {}
  void fast() {}
  void exact(bool) {}
};

// One proposal from the stream words w1 (the normal) and w2 (V): z, v and, when the squeeze
// accepts it, true.
struct CfnProposal {
  double z, t;  // Z and fo + Y
};
// The proposal of a ziggurat word w (numpy's layout: bits 0-7 layer, 8 sign, 9-60 |Z|; bits
// 61-63 are left for V); returns whether the ziggurat's fast path produced Z.
inline bool cfn_propose(const CfnSetup& s, std::uint64_t w, CfnProposal& pr) {
  const bool fast = normal_zig_fast(w, pr.z);
  pr.t = s.t_of(pr.z);
  return fast;
}
// The squeeze's allowance C0 + C4 Z^4 for |Z| < 3.92 (infinite beyond: no squeeze there)
inline double cfn_allowance(double z2) {
  return z2 < CfnConstants::zmax2 ? CfnConstants::C0 + CfnConstants::C4 * (z2 * z2) : HUGE_VAL;
}

// Everything after a first proposal the first test did not take: the ziggurat's slow path if
// needed, V completed from a fresh word (unless the caller drew it, v0 >= 0), the squeeze, the
// exact test, then further proposals (one word for Z, one for V) until one is accepted.
template <class G, class Obs>
__attribute__((noinline)) std::int64_t binomial_cfn_rest(G& g, std::int64_t n, const BinomialP& b, Obs obs,
                                                        const CfnSetup& s, std::uint64_t w, CfnProposal pr,
                                                        bool zfast, double v0) {
  for (;;) {
    if (!zfast) {  // numpy's slow path for this word (wedge or tail), with the sign of w
      pr.z = normal_zig_slow(w, pr.z, g);
      pr.t = s.t_of(pr.z);
    }
    // V = (top + U) / 8: the word's top 3 bits (independent of its other bits, and of whatever
    // the ziggurat's slow path drew) and a fresh uniform
    const double v = v0 >= 0.0 ? v0 : (static_cast<double>(w >> 61) + g.next_double()) * 0.125;
    v0 = -1.0;
    const std::int64_t k = s.count(pr.t);
    obs.proposal(k);
    if (Obs::squeeze && (1.0 - v) * s.npq > cfn_allowance(pr.z * pr.z)) {
      obs.fast();  // (|Z| < 3.92: k is in [0, n], as in binomial_cfn)
      return k;
    }
    const bool ok = binomial_cfn_exact(s, n, b, k, pr.z, v);
    obs.exact(ok);
    if (ok) return k;
    w = g.next_uint64();
    zfast = cfn_propose(s, w, pr);
  }
}

// How binomial_cfn draws V for its first proposal.
//  * Words = 1: one stream word for most draws.  Besides Z, the word's 3 spare top bits are the
//    first 3 bits of V, V = (top + U) / 8 with U the rest.  When they are not all ones (7/8 of
//    words) V < 7/8, and if also 8 (C0 + C4 Z^4) < n p q the squeeze's condition
//    (1 - V) n p q > C0 + C4 Z^4 holds whatever U is: the draw is accepted without it.
//    Otherwise binomial_cfn_rest completes V from a fresh word.  (A threshold on (7 - top) n p q
//    would send fewer small-n p q draws there, but its extra conversion and multiply cost more
//    than it saves: 1.08x against 1.18x over two words per draw, paired_cpp pop1e9.)  Best when
//    each draw waits for the previous one (PopulationTables::step): the 1-in-8 unpredictable
//    branch costs little there.
//  * Words = 2: V from a second word for every draw, so the only data-dependent branches are
//    the ziggurat's fast path (98.8 %) and the squeeze (> 99.5 %).  Best when independent draws
//    overlap (PopulationTables::step_columns), where a mispredicted branch discards the other
//    rows' work in flight.
// The two draw different numbers; both are exact.
template <class G, int Words = 1, class Obs = CfnPlain>
inline std::int64_t binomial_cfn(G& g, std::int64_t n, const BinomialP& b, Obs obs = Obs()) {
  static_assert(Words == 1 || Words == 2, "binomial_cfn: Words is 1 or 2");
  const CfnSetup s(n, b);
  const std::uint64_t w = g.next_uint64();
  CfnProposal pr;
  const bool zfast = cfn_propose(s, w, pr);
  double v = -1.0;
  bool fast;
  if constexpr (Words == 1) {
    fast = Obs::squeeze && zfast && (w >> 61) != 7 && 8.0 * cfn_allowance(pr.z * pr.z) < s.npq;
  } else {
    v = g.next_double();  // (the word's top bits are not used)
    fast = Obs::squeeze && zfast && (1.0 - v) * s.npq > cfn_allowance(pr.z * pr.z);
  }
  if (__builtin_expect(fast, 1)) {
    // |Z| < 3.92, so fo + Y > 0 (|Y| < 3.92 sigma + 2.6 < off) and the truncation is the floor;
    // and 0 <= k <= n: mu + 1/2 + Y > n p q - 3.92 sigma - 1/6 + 1/2 > 0 and
    // n - (mu + 1/2 + Y) > 2 n p q - 3.92 sigma - 3.1 > 0 for n p q >= 32
    const std::int64_t k = s.base + static_cast<std::int64_t>(pr.t);
    obs.proposal(k);
    obs.fast();
    return k;
  }
  return binomial_cfn_rest(g, n, b, obs, s, w, pr, zfast, v);
}

}  // namespace detail

// Words: the variant, 1 for step() (row order), 2 for step_columns(): binomial_cfn's first
// proposal takes V from a second word, and inversion for n p in [0.2, 6) runs unrolled
// (binomial_inversion_unrolled: the same count from the same uniform as BINV's search).
template <class G, int Words = 1>
inline std::int64_t binomial_fast(G& g, std::int64_t n, const BinomialP& b) {
  if (n == 0 || b.ps == 0.0) return b.flip ? n : 0;
  const double dn = static_cast<double>(n), np = dn * b.ps;
  std::int64_t x;
  if (np < 10.0) {
    // (column order: below n p = 0.2 the X = 0 shortcut is taken > 80 % of the time and costs
    // less than exp(); from n p = 6 the M = 16 tail is no longer rare)
    if (Words == 2 && np >= 0.2 && np < 2.0 && n >= 8)
      x = detail::binomial_inversion_unrolled<8>(g, n, b);
    else if (Words == 2 && np >= 2.0 && np < 6.0 && n >= 16)
      x = detail::binomial_inversion_unrolled<16>(g, n, b);
    else
      x = detail::binomial_inversion_fast(g, n, b);
  }
  else if (np * b.qs >= detail::CfnConstants::min_npq && dn < detail::CfnConstants::max_n)
    x = detail::binomial_cfn<G, Words>(g, n, b);
  else
    x = detail::binomial_btrs(g, n, b);
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

  // The same step with the rows' draws in column order: the j-th draw of every row, then the
  // (j+1)-th.  Each row's draws form a dependency chain (rem -> n p q -> sqrt -> k -> rem); in
  // column order the next row's draw does not wait for it, so the core overlaps K chains.  The
  // draws (and so the results) differ from step()'s, so a run uses one of the two throughout,
  // chosen by its number of channels (EnsembleSpec::pop_columns_min).  The draws use
  // binomial_fast's Words = 2 variant, whose branches are rarely mispredicted; rows that are
  // empty cost a test per draw (n == 0), which is why small runs keep the row order.
  // K <= kColumnMaxK (the remainders live on the stack; run_population_ensemble checks).
  static constexpr int kColumnMaxK = 32;
  template <class G>
  inline void step_columns(int key, const std::int64_t* n, std::int64_t* out, G& g) const {
    const int K = K_;
    std::int64_t rem[kColumnMaxK];
    for (int j = 0; j < K; ++j) {
      out[j] = 0;
      rem[j] = n[j];
    }
    const int* ord = order(key);
    const BinomialP* cp = cprob(key);
    for (int j = 0; j < K - 1; ++j)
      for (int i = 0; i < K; ++i) {
        const std::int64_t x = binomial_fast<G, 2>(g, rem[i], cp[static_cast<std::size_t>(i) * (K - 1) + j]);
        out[ord[static_cast<std::size_t>(i) * K + j]] += x;
        rem[i] -= x;
      }
    for (int i = 0; i < K; ++i) out[ord[static_cast<std::size_t>(i) * K + K - 1]] += rem[i];
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
