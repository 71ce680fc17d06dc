"""The population method's binomial sampler for n p q >= 32, ``binomial_cfn``
(csrc/include/ketacore/population.hpp): a Cornish-Fisher-corrected normal proposal, accepted
with probability f(k) / (M h(k)), with a squeeze for most draws.

Its exactness rests on three things, each checked here against an independent computation:

* the C++ log f(k) (Stirling's series arranged for huge n) against scipy.stats.binom.logpmf and
  mpmath's log-gamma;
* the C++ proposal probabilities log h(k) against scipy's log_ndtr (tools/verify_binomial_cfn.py)
  and against a histogram of the proposal itself;
* the constants A (domination, f <= M h) and C0, C4 (the squeeze) against b(k) on a grid of
  (n, p) (a subset of tools/verify_binomial_cfn.py's full grid, which is run by hand).

and the draws themselves are tested against scipy.stats.binom, with the squeeze on (the
population method's path) and off (every proposal through the exact test).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from _binomial_stats import chisquare_binom
from ketacore import _core, _rng

R = _core.rng
ROOT = Path(__file__).resolve().parent.parent


def _tool():
    spec = importlib.util.spec_from_file_location("verify_binomial_cfn", ROOT / "tools" / "verify_binomial_cfn.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


V = _tool()


def test_constants_match_the_verified_ones():
    """The constants the tool verifies are the ones the C++ uses."""
    c = R.binomial_cfn_constants()
    assert c == {"min_npq": V.MIN_NPQ, "A": V.A, "C0": V.C0, "C4": V.C4, "zmax": V.ZMAX, "max_n": 2.0 ** 53}


def _mp_log_pmf(k, n, p):
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40
    P = mp.mpf(p)
    return float(mp.loggamma(n + 1) - mp.loggamma(k + 1) - mp.loggamma(n - k + 1) + k * mp.log(P)
                 + (n - k) * mp.log1p(-P))


@pytest.mark.parametrize("n,p", [(129, 0.5), (400, 0.25), (3001, 0.013), (10**5, 0.3), (10**7, 4e-6)])
def test_log_pmf_matches_mpmath_and_scipy(n, p):
    """The C++ log f(k) over the bulk and far into both tails: within 1e-12 of mpmath's log-gamma
    at 40 digits (every 8th count), of the tool's numpy version, and within 1e-7 of scipy's (which
    is itself off by up to ~2e-8 here: 2.5e-8 at n = 1e7, p = 4e-6)."""
    mu, sd = n * p, np.sqrt(n * p * (1 - p))
    k = np.unique(np.clip(np.round(mu + sd * np.linspace(-12, 25, 400)), 0, n).astype(np.int64))
    k = np.unique(np.concatenate([k, [0, 1, n - 1, n]]))
    ours = R.binomial_cfn_log_pmf(n, p, k)
    ref = stats.binom.logpmf(k, n, p)
    fin = ref > -700
    np.testing.assert_allclose(ours[fin], ref[fin], rtol=0, atol=1e-7)
    np.testing.assert_allclose(ours[fin], V.log_pmf(k, n, p)[fin], rtol=1e-13, atol=1e-11)
    for i in range(0, k.size, 8):
        if fin[i]:
            assert abs(ours[i] - _mp_log_pmf(int(k[i]), n, p)) < 1e-12 * max(1.0, abs(ours[i])), k[i]


@pytest.mark.parametrize("n,p", [(10**9, 0.3), (10**9, 2.6e-6), (4 * 10**15, 0.5), (10**15, 1e-9),
                                 (2**53 - 1, 0.37)])
def test_log_pmf_huge_n_matches_mpmath(n, p):
    """For n up to 2^53, against mpmath: n p is split exactly (an FMA) and the large terms cancel
    analytically (Loader's bd0), so the error stays ~1e-13 even where n p has no exact double."""
    mu, sd = n * p, np.sqrt(n * p * (1 - p))
    k = np.unique(np.round(mu + sd * np.array([-8.0, -3.0, -1.0, -0.3, 0.0, 0.4, 1.0, 2.5, 6.0, 9.0])).astype(np.int64))
    ours = R.binomial_cfn_log_pmf(n, p, k)
    for ki, o in zip(k.tolist(), ours):
        ref = _mp_log_pmf(ki, n, p)
        assert abs(o - ref) < 1e-12 * max(1.0, abs(ref)), (ki, o, ref)


@pytest.mark.parametrize("n,p", [(129, 0.5), (150, 0.45), (3001, 0.013), (10**6, 0.2), (10**9, 4e-8)])
def test_log_proposal_matches_scipy(n, p):
    """The C++ log h(k) (midpoint Taylor series / erfc differences) against the tool's
    log_ndtr-based one, over every count within 12 sd of the mean."""
    npq, k, lf, lh, zlo, zhi = V.cells(n, p, width=12.0)
    ours = R.binomial_cfn_log_proposal(n, p, k)
    fin = lh > -700
    np.testing.assert_allclose(ours[fin], lh[fin], rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("words", [1, 2])
def test_proposal_is_what_the_sampler_draws(words):
    """The proposal pmf h the exact test divides by is the distribution of the proposed counts:
    every proposal's count is recorded (squeeze and test bypassed) and compared with h by
    chi-square (failure probability 1e-4; 400k proposals), for both first-proposal variants."""
    n, p = 200, 0.3  # n p q = 42: the skew term and the cell offset both matter
    k = R.binomial_cfn_proposals(_rng.entropy_words(5), [0], 400_000, n, p, words)
    ks = np.arange(0, n + 1)
    h = np.exp(R.binomial_cfn_log_proposal(n, p, ks))
    assert abs(h.sum() - 1) < 1e-9  # essentially no mass outside [0, n] or below z*
    obs = np.bincount(k[(k >= 0) & (k <= n)], minlength=n + 1)
    exp = h * k.size
    keep = exp >= 20
    chi = stats.chisquare(np.append(obs[keep], obs[~keep].sum()), np.append(exp[keep], exp[~keep].sum()) *
                          k.size / exp.sum())
    assert chi.pvalue > 1e-4


def _b(n, p, lf, lh):
    npq = n * p * (1 - p)
    return -(lf - lh) * npq


@pytest.mark.parametrize("n,p", [(129, 0.5), (133, 0.4), (500, 0.1), (3300, 0.01), (10**5, 0.5), (10**8, 1e-6),
                                 (10**9, 0.4), (10**12, 1e-10), (33333333337, 0.3), (3333333333337, 0.3)])
def test_domination_and_squeeze_with_the_cpp_terms(n, p):
    """With the C++ log f and log h themselves: f <= M h at every count with log f > -700
    (-b <= A), and the squeeze never accepts a count it should not (b <= C0 - A + C4 zmin^4
    wherever the squeeze can fire).  The last two cases (n p q 7e9 and 7e11; n p not a double)
    fail with the proposal centred on fl(n p) instead of n p (-b 0.144 and 42, squeeze ratio
    0.54 and 131; 0.053 and 0.055, 0.43 now; helper-119's audit); the double-precision b is good
    to ~n p q * 3e-14 there, well inside the margins."""
    npq, k, lf_tool, lh_tool, zlo, zhi = V.cells(n, p)
    lf = R.binomial_cfn_log_pmf(n, p, k)
    lh = R.binomial_cfn_log_proposal(n, p, k)
    keep = lf > -700
    b = _b(n, p, lf, lh)[keep]
    assert (-b).max() < V.A
    zmin = np.where((zlo < 0) & (zhi > 0), 0.0, np.minimum(np.abs(zlo), np.abs(zhi)))[keep]
    can_fire = (zmin <= V.ZMAX) & (V.C0 + V.C4 * zmin ** 4 < npq)
    assert (b[can_fire] <= V.C0 - V.A + V.C4 * zmin[can_fire] ** 4).all()


def test_tool_grid_subset():
    """A subset of the tool's verification grid (the full one is run by hand:
    python tools/verify_binomial_cfn.py): n p q from 30 to 1e5, every p of the grid, 3 offsets."""
    (a, na, pa), (s, ns, ps) = V.verify(np.geomspace(30, 1e5, 6), n_offsets=3)
    assert a < V.A, (a, na, pa)
    assert s < 1, (s, ns, ps)


CASES = [(129, 0.5), (128, 0.5), (180, 0.75), (155, 0.3), (1000, 0.05), (10**6, 4e-5), (10**9, 0.5),
         (10**9, 3.3e-8), (2 * 10**15, 0.1)]


@pytest.mark.parametrize("words", [1, 2])
@pytest.mark.parametrize("squeeze", [True, False])
@pytest.mark.parametrize("n,p", CASES)
def test_draws_vs_scipy(n, p, squeeze, words):
    """Chi-square of 200k draws vs scipy.stats.binom (failure probability 1e-4 per case), the
    mean within 5 standard errors (6e-7), with the squeeze (the population method's path) and
    without it (every proposal decided by the exact test), with V of the first proposal from the
    Z word's spare bits (words=1, row-order steps) or from a second word (2, column order)."""
    x = R.binomial_cfn(_rng.entropy_words(777), [n % 53], 200_000, n, p, squeeze, words)
    assert x.min() >= 0 and x.max() <= n
    assert chisquare_binom(x, n, p) > 1e-4
    sd = np.sqrt(n * p * (1 - p) / x.size)
    assert abs(x.mean() - n * p) < 5 * sd


@pytest.mark.slow
@pytest.mark.parametrize("words", [1, 2])
@pytest.mark.parametrize("n,p", [(129, 0.5), (180, 0.25), (2000, 0.02), (10**9, 2e-7)])
def test_draws_vs_scipy_large_sample(n, p, words):
    """4e6 draws at small n p q, where the slow path is most used (failure probability 1e-4)."""
    x = R.binomial_cfn(_rng.entropy_words(4243), [n % 51], 4_000_000, n, p, True, words)
    assert chisquare_binom(x, n, p) > 1e-4


@pytest.mark.parametrize("words", [1, 2])
@pytest.mark.parametrize("npq,most", [(32.25, 0.99), (400.0, 0.998)])
def test_squeeze_takes_most_draws(npq, most, words):
    """The squeeze decides most draws (the speed claim): the fraction of draws accepted without
    the exact test, over 200k draws, at p = 1/2.  (Measured 0.9952 at n p q = 32.25 and 0.99952 at
    400; the bounds sit > 30 standard errors below.)"""
    n = int(round(4 * npq))
    fast, exact, rejected = R.binomial_cfn_path_counts(_rng.entropy_words(8), [0], 200_000, n, 0.5, words)
    assert fast + exact == 200_000
    assert fast / 200_000 > most
    assert rejected < 0.01 * 200_000


@pytest.mark.parametrize("words", [1, 2])
@pytest.mark.parametrize("npq", [32.25, 100.0, 400.0])
def test_rejections_are_those_of_acceptance_one_over_M(npq, words):
    """Since f <= M h everywhere and the squeeze only takes proposals the exact test would take,
    a proposal is accepted with probability exactly 1/M, M = exp(A / n p q), so the rejected
    proposals of D draws number D (M - 1) in mean with variance D (M - 1) M (geometric trials).
    Checked within 5 sd over 400k draws (failure probability < 2e-6 each: 6.5e-7 to 1.6e-6 from
    the exact negative-binomial tails at n p q = 32.25 to 400, helper-121).  This is what catches a
    squeeze or exact test that ignores V: the proposal is so close to f that histograms of the
    draws cannot tell (accepting every proposal moves the pmf by ~0.2 % at n p q = 32)."""
    n, D = int(round(4 * npq)), 400_000
    fast, exact, rejected = R.binomial_cfn_path_counts(_rng.entropy_words(31), [words], D, n, 0.5, words)
    assert fast + exact == D
    M = np.exp(V.A / (n * 0.25))
    mean, sd = D * (M - 1), np.sqrt(D * (M - 1) * M)
    assert abs(rejected - mean) < 5 * sd, (rejected, mean, sd)


def test_dispatch_thresholds_draw_the_same_distribution():
    """binomial_fast sends n p q >= 32 (n < 2^53) to binomial_cfn: its draws equal binomial_cfn's
    with the squeeze for the same stream; below 32 (BTRS) they differ."""
    e = _rng.entropy_words(99)
    a = R.binomial_fast(e, [1], 1000, 129, 0.5)
    b = R.binomial_cfn(e, [1], 1000, 129, 0.5, True)
    assert (a == b).all()
    c = R.binomial_fast(e, [1], 1000, 127, 0.5)
    d = R.binomial_cfn(e, [1], 1000, 127, 0.5, True)
    assert not (c == d).all()
    # p > 1/2 draws the failures
    f = R.binomial_fast(e, [2], 1000, 250, 0.8)
    g = R.binomial_cfn(e, [2], 1000, 250, 0.2, True)
    assert (f == 250 - g).all()
    # the column-order variant: binomial_fast(words=2) is binomial_cfn(words=2), which draws
    # other numbers than words=1 from the same stream
    a2 = R.binomial_fast(e, [1], 1000, 129, 0.5, 2)
    assert (a2 == R.binomial_cfn(e, [1], 1000, 129, 0.5, True, 2)).all()
    assert not (a2 == a).all()
    # below n p q = 32 both variants are BTRS (the same draws)
    assert (R.binomial_fast(e, [1], 1000, 127, 0.5, 2) == c).all()
    with pytest.raises(ValueError, match="words"):
        R.binomial_fast(e, [1], 10, 129, 0.5, 3)
    with pytest.raises(ValueError, match="words"):
        R.binomial_cfn(e, [1], 10, 129, 0.5, True, 0)


@pytest.mark.parametrize("n,p", [(100, 0.5), (10**9, 2e-8), (2**53, 0.3), (-5, 0.5)])
def test_test_bindings_refuse_outside_the_verified_domain(n, p):
    """The test entry points refuse n p q < 30 (below the verified range) and n >= 2^53."""
    with pytest.raises(ValueError, match="n p"):
        R.binomial_cfn([1], [0], 10, n, p, True)
    with pytest.raises(ValueError, match="n p"):
        R.binomial_cfn_log_pmf(n, p, np.array([0]))
