"""Numerical verification of the constants of the population method's binomial sampler
``binomial_cfn`` (csrc/include/ketacore/population.hpp).

The sampler proposes a count k from a Cornish-Fisher-corrected normal (proposal probability
h(k)) and accepts it with probability f(k) / (M h(k)), f the Binomial(n, p) pmf and
log M = A / (n p q).  A squeeze accepts without evaluating f when (1 - V) n p q > C0 + C4 z^4,
for |z| < 3.92.  Both are exact only if, with
b(k) = -n p q log(f(k) / h(k)),

* domination:  -b(k) <= A for every k (f <= M h), and
* squeeze:     b(k) <= C0 - A + C4 zmin(k)^4 for every k whose cell contains a |z| < 3.92,
  zmin(k) the smallest |z| in k's cell.

Like the constants of Hormann's BTRS (1993), these are verified numerically, not derived.  This
script evaluates b(k) in numpy/scipy, apart from the C++ code (h from scipy's ``log_ndtr``, or a
midpoint series for cells narrower than 2e-3 where differences of log_ndtr lose digits; f by
Stirling's series with Robbins' remainder in Loader's form with the exact rational n p; both are
compared with the C++ values and f with mpmath in tests/test_binomial_cfn.py), for every count
with log f(k) > -700 (counts beyond are proposed with probability < 1e-300), over a grid of
n p q, p and offsets of the mean, and reports the largest -b (to compare with A) and the largest
b / (C0 - A + C4 zmin^4).

Run: ``python tools/verify_binomial_cfn.py [--quick]``  (full grid ~6 min on one idle core).
Last full run (2026-11-29): n p q in [30, 1e3]: max -b 0.0638, max b / allowance 0.683;
[1e3, 1e6]: 0.0625, 0.452; [1e6, 1e9]: 0.0626, 0.440 -- constants verified.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy import special

# The C++ constants (tests/test_binomial_cfn.py checks they equal detail::CfnConstants).
MIN_NPQ = 32.0
A = 0.125
C0 = 0.175
C4 = 0.035
ZMAX = 3.92  # the squeeze applies only for |z| < ZMAX

P_GRID = (0.5, 0.49, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1, 0.07, 0.05, 0.03, 0.02, 1e-2, 3e-3,
          1e-3, 1e-4, 1e-5, 1e-6, 1e-8, 1e-10, 1e-12)
_LOG2PI = np.log(2 * np.pi)


def robbins(j):
    """Robbins' remainder log j! - [(j + 1/2) log j - j + log(2 pi)/2], j >= 1."""
    j = np.asarray(j, dtype=float)
    out = np.empty_like(j)
    small = j < 16
    js = j[small]
    out[small] = special.gammaln(js + 1) - ((js + 0.5) * np.log(js) - js + 0.5 * _LOG2PI)
    jl = j[~small]
    r2 = 1 / (jl * jl)
    out[~small] = (1 / 12 - r2 * (1 / 360 - r2 * (1 / 1260 - r2 * (1 / 1680 - r2 / 1188)))) / jl
    return out


def bd0(x, M, dx):
    """Loader's deviance term x log(x / M) + M - x, given dx = x - M exactly: a series in
    v = dx / (x + M) where |dx| < 0.1 (x + M) (no cancellation), the plain formula elsewhere."""
    x, M, dx = np.broadcast_arrays(np.asarray(x, float), np.asarray(M, float), np.asarray(dx, float))
    out = np.empty_like(x)
    ser = np.abs(dx) < 0.1 * (x + M)
    xs, dxs = x[ser], dx[ser]
    v = dxs / (xs + M[ser])
    v2 = v * v
    s = dxs * v
    ej = 2 * xs * v
    for j in range(1, 60):
        ej = ej * v2
        s = s + ej / (2 * j + 1)
    out[ser] = s
    xo, Mo = x[~ser], M[~ser]
    with np.errstate(divide="ignore", invalid="ignore"):
        out[~ser] = xo * np.log(xo / Mo) - dx[~ser]
    return out


def log_pmf(k, n, p):
    """log Binomial(n, p) pmf at k, accurate for huge n: Loader's form, with d = k - n p formed
    from the exact rational n p (so neither the rounding of n p nor a cancellation of the ~d
    terms limits it)."""
    from fractions import Fraction
    q = 1 - p
    k = np.asarray(k, dtype=np.int64)
    np_exact = Fraction(n) * Fraction(p)
    np_int = np_exact.numerator // np_exact.denominator
    np_frac = float(np_exact - np_int)
    d = (k - np_int).astype(float) - np_frac
    kf = k.astype(float)
    out = np.empty(k.shape, dtype=float)
    mid = (k > 0) & (k < n)
    km, dm = kf[mid], d[mid]
    out[mid] = (-bd0(km, float(np_exact), dm) - bd0(n - km, n * q, -dm)
                + 0.5 * np.log(n / (2 * np.pi * km * (n - km)))
                + robbins(np.array([float(n)]))[0] - robbins(km) - robbins(n - km))
    out[k == 0] = n * np.log1p(-p)
    out[k == n] = n * np.log(p)
    return out


def preimage(y, sigma, c):
    """z with sigma z + c (z^2 - 1) = y on the increasing branch, clipped to its minimum."""
    if c == 0:
        return y / sigma
    disc = sigma * sigma + 4 * c * (c + y)
    return np.where(disc > 0, 2 * (c + y) / (sigma + np.sqrt(np.maximum(disc, 0))), -sigma / (2 * c))


def log_normal_interval(a, b, w):
    """log(Phi(b) - Phi(a)), w = b - a: from scipy's log_ndtr in the tail away from 0, except for
    cells narrower than 2e-3, where the difference of log_ndtr values loses digits (~1e-16 / w
    relative) and a Taylor series at the midpoint is used (He_2j(m) w^2j / (2^2j (2j + 1)!),
    four terms)."""
    pos = a > 0
    la = np.where(pos, special.log_ndtr(-a), special.log_ndtr(a))
    lb = np.where(pos, special.log_ndtr(-b), special.log_ndtr(b))
    with np.errstate(all="ignore"):
        wide = np.where(pos, la + np.log(-np.expm1(lb - la)), lb + np.log(-np.expm1(la - lb)))
        m = 0.5 * (a + b)
        m2, w2 = m * m, w * w
        he2, he4, he6 = m2 - 1, (m2 - 6) * m2 + 3, ((m2 - 15) * m2 + 45) * m2 - 15
        narrow = (np.log(w) - 0.5 * m2 - 0.5 * np.log(2 * np.pi)
                  + np.log1p(w2 * (he2 / 24 + w2 * (he4 / 1920 + w2 * he6 / 322560))))
    return np.where((w < 2e-3) & (w * (1 + np.abs(m)) < 0.1), narrow, wide)


def cells(n, p, width=45.0):
    """For Binomial(n, p): counts k within width sigma (+50) of the mean, log f(k), log h(k) and
    the cell [zlo, zhi) of each k, as the C++ proposal defines them: k is the count nearest
    centre + Y, the centre the exact rational n p from n p = 2^28 on and fl(n p) below (sigma
    and c are the doubles the C++ computes)."""
    from fractions import Fraction
    q = 1 - p
    mu = n * p
    npq = n * (p * q)                        # as the C++: n (ps qs)
    sigma = np.sqrt(npq)
    c = (q - p) / 6
    lo = max(0, int(mu - width * sigma - 50))
    hi = min(n, int(mu + width * sigma + 50))
    # every count up to 2e6 of them; beyond (sigma > ~2e4) every stride-th, b(k) being smooth on
    # the scale of sigma / 1000 there
    stride = max(1, -(-(hi - lo + 1) // 2_000_000))
    k = np.arange(lo, hi + 1, stride, dtype=np.int64)
    # the centre: the exact n p from mu = 2^28 on, fl(n p) below (as the C++)
    centre = Fraction(n) * Fraction(p) if mu >= 2.0 ** 28 else Fraction(mu)
    c_int = centre.numerator // centre.denominator
    ylo = (k - c_int).astype(float) - (float(centre - c_int) + 0.5)   # k - 1/2 - centre
    zlo = preimage(ylo, sigma, c)
    zhi = preimage(ylo + 1.0, sigma, c)
    zstar = -sigma / (2 * c) if c > 0 else -np.inf
    with np.errstate(divide="ignore"):
        w = np.where(zlo > zstar, 1.0 / (sigma + c * (zlo + zhi)), zhi - zlo)  # exact identity
    return npq, k, log_pmf(k, n, p), log_normal_interval(zlo, zhi, w), zlo, zhi


def check_case(n, p):
    """(largest -b, largest b / squeeze allowance) for one (n, p)."""
    npq, k, lf, lh, zlo, zhi = cells(n, p)
    keep = lf > -700
    b = -(lf - lh)[keep] * npq
    zmin = np.where((zlo < 0) & (zhi > 0), 0.0, np.minimum(np.abs(zlo), np.abs(zhi)))[keep]
    allow = C0 - A + C4 * zmin ** 4
    rel = (zmin <= ZMAX) & (C0 + C4 * zmin ** 4 < npq)  # where the squeeze can accept
    return float((-b).max()), float(np.where(rel, b / allow, 0.0).max())


def cases(npq_values, p_values=P_GRID, n_offsets=8):
    """(n, p) pairs: for each n p q and p, n_offsets values of n moving the mean's fraction."""
    for npq in npq_values:
        for p in p_values:
            n0 = npq / (p * (1 - p))
            if n0 >= 2.0 ** 53:
                continue
            for j in range(n_offsets):
                shift = int(round(j / (n_offsets * p))) if p * n_offsets >= 1e-15 else j
                yield int(round(n0)) + shift, p


def verify(npq_values, p_values=P_GRID, n_offsets=8, log=None):
    """Worst (-b, n, p) and worst (b / allowance, n, p) over the grid."""
    worst_a, worst_s = (-np.inf, 0, 0.0), (-np.inf, 0, 0.0)
    for n, p in cases(npq_values, p_values, n_offsets):
        a, s = check_case(n, p)
        if a > worst_a[0]:
            worst_a = (a, n, p)
        if s > worst_s[0]:
            worst_s = (s, n, p)
    return worst_a, worst_s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="n p q up to 1e6 only (~1 min)")
    args = ap.parse_args(argv)
    ranges = [(30, 1000, 40, 16), (1000, 1e6, 12, 8)]
    if not args.quick:
        ranges.append((1e6, 1e9, 4, 3))  # (above, double precision cannot resolve A: see
        # tools/verify_binomial_cfn_mpmath.py)
    ok = True
    for lo, hi, count, offsets in ranges:
        t0 = time.time()
        (a, na, pa), (s, ns, ps) = verify(np.geomspace(lo, hi, count), n_offsets=offsets)
        print(f"n p q in [{lo:g}, {hi:g}] ({count} values x {len(P_GRID)} p x {offsets} offsets): "
              f"max -b = {a:.4f} (n={na}, p={pa:g}; A = {A}), "
              f"max b / allowance = {s:.3f} (n={ns}, p={ps:g}; must be < 1)  [{time.time() - t0:.0f} s]",
              flush=True)
        ok &= a < A and s < 1
    print("constants verified" if ok else "CONSTANTS VIOLATED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
