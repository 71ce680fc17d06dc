"""ApparentDwellTimes.var / .sd and .sample (HJC missed-events distributions).

``var`` is exact: like ``mean``, it comes from the HJC Laplace transform of the apparent
duration (the second derivative of ``phi W(s)^-1 Q_AF exp(Q_FF t_res) u_F`` at 0), not from the
piecewise pdf.  Oracles:

* brute-force ``scipy.integrate.quad`` of ``t^k pdf`` over [t_res, inf) (exact pieces with their
  break points, then the asymptotic form to 60 x its slowest tau), with enough exact pieces
  (``exact_intervals=10``; 2 suffice for the NMDA case) that the piecewise pdf is the exact one
  to ~1e-13: its normalised variance and mean agree with ``var`` and ``mean`` to 1e-8 (measured
  <= 1e-11); with the
  default 2 pieces, to within the asymptotic form's own error, shown by ``|1 - total|``;
* the ideal (no missed events) ExponentialMixture as ``t_res -> 0``: the deviation is first
  order in ``t_res`` (probability ~ rate x t_res that a sojourn is missed), so it is bounded by
  2 r_max t_res (r_max the fastest rate of leaving a state; measured coefficients 0.35-0.8) and
  shrinks tenfold with t_res;
* ``int_0^tau t^2 exp(Q_FF t) dt``, the new matrix integral, by ``scipy.integrate.quad_vec`` of
  ``scipy.linalg.expm`` (both of its evaluation paths);
* sample: KS against ``cdf``, the mean within 5 standard errors (sd from ``var``), every draw
  >= t_res, same seed => same draws, and each draw against ``scipy.optimize.brentq`` on
  ``survival``.

Seeds are fixed, so every test is deterministic; the failure probabilities stated are those of a
correct implementation with a fresh seed.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, linalg, optimize, stats

import ketacore as kc
from ketacore import theory as th
from _ch82 import ch82_q

OPEN = [0, 1]


NMDA_COND = dict(glutamate=1e-3, ketamine=1e-6, V=-0.07)


def nmda():
    return kc.block(kc.models.get("erreger2005_2a"), "ketamine")


def apparent(case, states, t_res, exact_intervals=2):
    if case == "nmda-ket":
        return th.apparent_dwell_times(nmda(), states, t_res=t_res,
                                       exact_intervals=exact_intervals, **NMDA_COND)
    c, k = case
    return th.apparent_dwell_times(ch82_q(c, k), states, t_res=t_res, open=OPEN,
                                   exact_intervals=exact_intervals)


def _edges(a):
    """Break points: every multiple of t_res in the exact range (the pdf has kinks there),
    then log-spaced to exact_until + 60 x the slowest asymptotic tau (tail < e^-60)."""
    n = round(a.exact_until / a.t_res)
    edges = list(a.t_res * np.arange(1, n + 1))
    tmax = float(np.max(a.taus))
    return edges + list(a.exact_until + np.geomspace(a.t_res / 10, 60 * tmax, 30))


def quad_moments(a):
    """(m0, mean, var) of pdf on [t_res, inf) by brute-force quadrature: scipy.integrate.quad
    (adaptive, 1e-12 relative) between the break points of :func:`_edges`."""
    edges = _edges(a)
    m = []
    for k in range(3):
        tot = 0.0
        for lo, hi in zip(edges[:-1], edges[1:]):
            tot += integrate.quad(lambda t, k=k: t ** k * a.pdf(t), lo, hi, epsabs=0.0,
                                  epsrel=1e-12, limit=200)[0]
        m.append(tot)
    m0, m1, m2 = m
    mean = m1 / m0
    return m0, mean, m2 / m0 - mean ** 2


CASES = [((1e-7, 2.0 / 3.0), "open", 1e-4), ((1e-7, 2.0 / 3.0), "shut", 1e-4),
         ((1e-5, 2.0 / 3.0), "open", 2.5e-5), ((1e-5, 2.0 / 3.0), "shut", 1e-4),
         ((1e-6, 0.66667), "open", 1e-4), ((1e-6, 0.66667), "shut", 5e-5),
         ("nmda-ket", "open", 5e-5), ("nmda-ket", "shut", 5e-5)]
CASE_IDS = ["ch82-0.1uM-open-100us", "ch82-0.1uM-shut-100us", "ch82-10uM-open-25us",
            "ch82-10uM-shut-100us", "ch82-1uM-nonrev-open-100us", "ch82-1uM-nonrev-shut-50us",
            "nmda-ket-open-50us", "nmda-ket-shut-50us"]


@pytest.mark.parametrize("case,states,t_res", CASES, ids=CASE_IDS)
def test_var_and_mean_match_quadrature_of_the_pdf(case, states, t_res):
    """With enough exact pieces the piecewise pdf is the exact HJC density to ~1e-13
    (|1 - total| < 1e-12 asserted; CH82 with 10 pieces, NMDA + ketamine at 50 us already with
    the default 2, whose exact pieces are otherwise evaluated by the slow expm form), so the
    quadrature's normalised mean and variance must equal the exact ``mean`` and ``var`` to
    quad's accuracy: tolerance 1e-8 (measured <= 4e-14 on CH82, 9e-12 on NMDA + ketamine).
    The CH82 cases with 0.66667 and NMDA + ketamine (one-way escape) are not microscopically
    reversible: they exercise the matrix-exponential (Van Loan) path of the t^2 integral."""
    a = apparent(case, states, t_res, exact_intervals=2 if case == "nmda-ket" else 10)
    assert abs(a.total - 1.0) < 1e-12
    m0, mean, var = quad_moments(a)
    assert m0 == pytest.approx(a.total, rel=1e-10)
    assert mean == pytest.approx(a.mean, rel=1e-8)
    assert var == pytest.approx(a.var, rel=1e-8)
    assert a.sd == pytest.approx(math.sqrt(var), rel=1e-8)


@pytest.mark.parametrize("case,states,t_res", CASES[:4], ids=CASE_IDS[:4])
def test_var_with_default_pieces_differs_by_the_asymptotic_error(case, states, t_res):
    """With the default 2 exact pieces the cdf/pdf (and so sample) follow the asymptotic form
    from 3 t_res on; their moments differ from the exact ones by that form's error, whose
    size shows in |1 - total| (2e-8 for CH82 shut times at 100 us, 5e-14 at 25 us): measured
    relative differences of mean and var 0.03-1.0 x |1 - total|; tolerance 3 |1 - total| +
    1e-12 (an empirical factor: there is no proven bound of these by |1 - total|).
    ``var`` itself does not depend on the number of pieces (1e-12)."""
    a = apparent(case, states, t_res)
    _, mean, var = quad_moments(a)
    tol = 3 * abs(1.0 - a.total) + 1e-12
    assert mean == pytest.approx(a.mean, rel=tol)
    assert var == pytest.approx(a.var, rel=tol)
    assert apparent(case, states, t_res, exact_intervals=6).var == pytest.approx(a.var,
                                                                                rel=1e-12)


@pytest.mark.parametrize("states", ["open", "shut"])
@pytest.mark.parametrize("c", [1e-7, 1e-5])
def test_sd_tends_to_the_ideal_sd_as_t_res_vanishes(c, states):
    """t_res = 1e-9 and 1e-10 s: |sd / ideal.sd - 1| <= 2 r_max t_res (the missed-events
    corrections are first order in t_res; the probability of missing a sojourn is at most
    r_max t_res; measured coefficients 0.35-0.8), and the deviation shrinks 10-fold with t_res
    (ratio within 9 to 11: first order, and no O(1) error); the same for the mean."""
    Q = ch82_q(c)
    r_max = float(np.max(-np.diag(Q)))
    dev = {}
    for t_res in (1e-9, 1e-10):
        a = th.apparent_dwell_times(Q, states, t_res=t_res, open=OPEN)
        d_sd = a.sd / a.ideal.sd - 1.0
        d_mean = a.mean / a.ideal.mean - 1.0
        assert abs(d_sd) <= 2 * r_max * t_res
        assert abs(d_mean) <= 2 * r_max * t_res
        assert a.var == pytest.approx(a.sd ** 2, rel=1e-14)
        dev[t_res] = (d_sd, d_mean)
    for i in range(2):
        assert 9.0 < dev[1e-9][i] / dev[1e-10][i] < 11.0


@pytest.mark.parametrize("kind", ["open", "shut"])
def test_t2_integral_matches_quad_vec_on_both_paths(kind):
    """K2 = int_0^tau t^2 exp(Q_FF t) dt: spectral (reversible) and Van Loan (general) paths
    against scipy quad_vec of expm, at tau = 100 us and 1 ms on CH82 (tolerance 1e-12 of the
    largest entry; measured 9e-15 and 2e-16)."""
    Q = ch82_q(1e-7)
    p = th.equilibrium(Q)
    A, F = np.array(OPEN), np.array([2, 3, 4])
    a, f = (A, F) if kind == "open" else (F, A)
    QFF = Q[np.ix_(f, f)]
    for tau in (1e-4, 1e-3):
        ref = integrate.quad_vec(lambda t: t ** 2 * linalg.expm(QFF * t), 0.0, tau,
                                 epsabs=0.0, epsrel=1e-13)[0]
        for rev in (True, False):
            hc = th._HJCClass(Q, p, a, f, tau, rev)
            assert hc.reversible == rev
            np.testing.assert_allclose(hc.K2(), ref, rtol=0, atol=1e-12 * np.abs(ref).max())


# ---------------------------------------------------------------------------
# sample
# ---------------------------------------------------------------------------

SAMPLE_CASES = [((1e-7, 2.0 / 3.0), "open", 1e-4), ((1e-7, 2.0 / 3.0), "shut", 1e-4),
                ((1e-6, 0.66667), "open", 5e-5), ("nmda-ket", "shut", 5e-5)]
SAMPLE_IDS = ["ch82-0.1uM-open", "ch82-0.1uM-shut", "ch82-1uM-nonrev-open", "nmda-ket-shut"]


@pytest.mark.parametrize("case,states,t_res", SAMPLE_CASES, ids=SAMPLE_IDS)
def test_sample_ks_mean_and_support(case, states, t_res):
    """20000 draws, fixed seed (deterministic).  KS against cdf, rejecting at p < 1e-3 (exact
    one-sample KS distribution for iid draws from a continuous cdf: false failure 1e-3 for a
    fresh seed); sample mean within 5 standard errors of ``mean`` with sd = ``a.sd`` (CLT,
    false failure 6e-7; the sampled distribution's own mean differs from ``mean`` by < 1e-7
    relative, far below one standard error ~ 1/141 relative); every draw >= t_res; draws land
    on both sides of exact_until, so both inversions are exercised."""
    a = apparent(case, states, t_res)
    n = 20000
    x = a.sample(n, rng=20240611)
    assert x.shape == (n,) and x.dtype == np.float64
    assert np.all(np.isfinite(x)) and x.min() >= a.t_res
    assert 0 < np.mean(x <= a.exact_until) < 1
    assert stats.kstest(x, a.cdf).pvalue > 1e-3
    assert abs(x.mean() - a.mean) < 5 * a.sd / math.sqrt(n)


def test_sample_inverts_the_cdf_to_the_stated_precision():
    """Each draw is cdf^-1(u) with u the generator's uniforms (survival(t) = 1 - u): against
    scipy brentq on survival (xtol 1e-15 relative) to the documented 1e-12 max(t, exact_until)
    (measured 1e-14), and survival(draw) = 1 - u to 1e-14 (measured 2e-16)."""
    for states in ("open", "shut"):
        a = th.apparent_dwell_times(ch82_q(1e-7), states, t_res=1e-4, open=OPEN)
        x = a.sample(300, rng=7)
        v = 1.0 - np.random.default_rng(7).random(300)
        ref = np.array([optimize.brentq(lambda t, vi=vi, a=a: float(a.survival(t)) - vi,
                                        a.t_res, 1e3, xtol=1e-300, rtol=1e-15, maxiter=500)
                        for vi in v])
        assert np.all(np.abs(x - ref) <= 1e-12 * np.maximum(ref, a.exact_until))
        np.testing.assert_allclose(a.survival(x), v, rtol=0, atol=1e-14)


def test_sample_with_the_expm_exact_form():
    """The exact pieces evaluated by block matrix exponentials (the path used when the
    spectral form would lose accuracy) give the same draws: the two evaluations are accepted
    only if their integrals agree to 1e-10, so survival at the expm-mode draws, evaluated
    spectrally, equals 1 - u to 1e-10 (measured 4e-16)."""
    a = th.apparent_dwell_times(ch82_q(1e-7), "shut", t_res=1e-4, open=OPEN)
    b = th.apparent_dwell_times(ch82_q(1e-7), "shut", t_res=1e-4, open=OPEN)
    assert a.exact_method == "spectral"
    b._exact_part.mode = "expm"            # a fresh private object; forces the other path
    y = b.sample(400, rng=11)
    v = 1.0 - np.random.default_rng(11).random(400)
    assert 0 < np.mean(y <= a.exact_until) < 1
    np.testing.assert_allclose(a.survival(y), v, rtol=0, atol=1e-10)


def test_sample_rng_spec7_and_reproducible():
    a = th.apparent_dwell_times(ch82_q(1e-6), "open", t_res=5e-5, open=OPEN)
    x = a.sample(500, rng=123)
    np.testing.assert_array_equal(x, a.sample(500, rng=123))
    np.testing.assert_array_equal(x, a.sample(500, rng=np.random.SeedSequence(123)))
    np.testing.assert_array_equal(x, a.sample(500, rng=np.random.default_rng(123)))
    assert not np.array_equal(x, a.sample(500, rng=124))
    g = np.random.default_rng(5)              # a Generator is drawn from
    y1, y2 = a.sample(200, rng=g), a.sample(200, rng=g)
    assert not np.array_equal(y1, y2)
    np.testing.assert_array_equal(np.concatenate([y1, y2]), a.sample(400, rng=5))
    z = a.sample(50)                          # None: fresh entropy
    assert z.shape == (50,) and z.min() >= a.t_res
    assert a.sample(np.int64(3), rng=1).shape == (3,)


def test_sample_n_validation():
    a = th.apparent_dwell_times(ch82_q(1e-6), "open", t_res=5e-5, open=OPEN)
    assert a.sample(0, rng=1).shape == (0,)
    with pytest.raises(ValueError, match=r"\bn\b"):
        a.sample(-1)
    for bad in (2.5, "3", True, None):
        with pytest.raises(TypeError, match=r"\bn\b"):
            a.sample(bad)


@pytest.mark.parametrize("bad, exc", [(1.5, TypeError), (True, TypeError), ("1", TypeError),
                                      (-1, ValueError)])
def test_sample_rng_is_checked_by_name(bad, exc):
    """rng of both samplers (HJC apparent and ideal mixtures) is checked and named; a seed
    gives numpy's default_rng stream, so values are those numpy's Generator gives."""
    ch82 = kc.models.get("ch82")
    app = kc.theory.apparent_dwell_times(ch82, "open", t_res=50e-6, agonist=1e-7)
    for sampler in (app.sample, app.ideal.sample):
        with pytest.raises(exc, match="rng must be"):
            sampler(3, rng=bad)
    a = app.ideal.sample(5, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(app.ideal.sample(5, rng=7), a)
    np.testing.assert_array_equal(app.sample(4, rng=np.random.SeedSequence(3)), app.sample(4, rng=3))
