"""Standard errors of the stochastic Hill fit (kc.experiments.ic50) and of woodhull's zδ.

Every I/I0 of a stochastic ``ic50`` is divided by one shared control estimate, so the points are
positively correlated; the fit covariance, which treats them as independent, gave an ``ic50_se``
about half the true SE (an audit: (IC50 - exact)/SE had SD 2.13 over 40 seeds; woodhull's zδ
1.75).  ``ic50_se``/``hill_se`` are now delete-one jackknife SEs over trials of the whole
estimate (control, every I/I0, its weights and the Hill fit recomputed without each trial).

Calibration tests
-----------------
Ketamine on ``erreger2005_2a`` is a trapping blocker whose arm copies gating, so its exact
steady-state inhibition curve is a Hill curve with nH = 1 and IC50 = the exact root
(``ic50_exact``): the stochastic Hill fit is then unbiased for it to first order, and
z = (IC50 - exact)/ic50_se measures the SE alone.

A jackknife SE over n trials has about n - 1 degrees of freedom, so with a correct SE z is close
to Student t with n - 1 degrees of freedom (not N(0, 1): its SD is sqrt((n-1)/(n-3)), 1.12 for
n = 10).  Each z is mapped to a normal score u = Phi^-1(F_t(z; n - 1)); over M independent
seeds, sum(u^2) is then chi2 with M degrees of freedom (the mean 0 is known, so a bias counts as
an error too).  The test rejects outside the 5e-4 and 1 - 5e-4 quantiles of chi2(M): a correct
SE fails with probability 1e-3 (to the accuracy of the t law, checked in runs of 200-600 seeds:
the SD or RMS of u was 0.94-1.05 in seven settings, steady and peak, 200-1000 channels, 8-24
trials).  The old fit-covariance SE gives RMS(z) 1.6-2.3 and fails (checked in the fast test
itself; it failed 8 of 8 other blocks of 50 seeds, all of which the jackknife SE passed).

woodhull fits ln IC50 against V weighted by 1/SE(ln IC50)^2 and scales its covariance by
max(1, RSS_w/(m - 2)) (the Birge ratio: never below the propagated error).  With m = 3 voltages
and a correct model RSS_w is chi2_1, independent of the slope, so z = z_p/sqrt(max(1, R)),
R ~ chi2_1, z_p the z of the propagated SE.  z_p lies between N(0, 1) (exact per-voltage SEs:
the least dispersed case) and t(n - 1) (the most dispersed: the propagated SE pools three
independent jackknife SEs, each with n - 1 degrees of freedom).  The woodhull test rejects when
sum(z^2) falls below the 5e-4 quantile of sum(N^2/max(1, R)) (SE too large) or above the
1 - 5e-4 quantile of sum(t(n - 1)^2/max(1, R)) (SE too small, the bug): at most 1e-3 in all
(both quantiles by Monte Carlo, 2e5 replicates of the M-term sums, fixed seed).  With default
grids, 1000 channels x 16 trials and 100 seeds the bounds on mean(z^2) are [0.49, 1.66]: the
jackknife SE gave 0.69 (conservative, as the Birge factor makes it), the old SE 1.93.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import ketacore as kc
from ketacore.units import mV, uM

E = kc.experiments

GATING, BLOCKER = "erreger2005_2a", "ketamine"
#: exact steady-state IC50 of ketamine on erreger2005_2a at -70 mV (M): the exact root, which
#: is also the exact Hill fit (nH = 1), computed by the code before the jackknife change
EXACT_IC50 = 7.591620395871503e-07
#: two-sided failure probability of every calibration test for a correct SE
ALPHA = 1e-3


def _normal_scores(z: np.ndarray, n_trials: int) -> np.ndarray:
    """Normal scores of z-values that are Student t with n_trials - 1 degrees of freedom."""
    return stats.norm.ppf(stats.t.cdf(z, n_trials - 1))


def _assert_chi2(u: np.ndarray, what: str) -> None:
    """sum(u^2) within the ALPHA/2 and 1 - ALPHA/2 quantiles of chi2(len(u))."""
    m = u.size
    q = float(np.sum(u ** 2))
    lo, hi = stats.chi2.ppf([ALPHA / 2, 1 - ALPHA / 2], m)
    assert lo <= q <= hi, (f"{what}: sum(u^2)/M = {q / m:.3f} outside [{lo / m:.3f}, "
                           f"{hi / m:.3f}] (chi2({m}) quantiles {ALPHA / 2:g}, "
                           f"{1 - ALPHA / 2:g}); RMS u {math.sqrt(q / m):.3f}")


# ------------------------------------------------------------------ calibration (fast)
def test_ic50_se_is_calibrated_over_seeds():
    # 50 seeds, 200 channels x 10 trials, 0.1 s windows, 7 points over 2 decades: ~5 s
    n_trials, seeds = 10, range(50)
    cs = EXACT_IC50 * np.geomspace(0.1, 10.0, 7)
    z, z_cov = [], []
    for sd in seeds:
        r = E.ic50(GATING, BLOCKER, cs, method="stochastic", n_channels=200,
                   n_trials=n_trials, rng=sd, duration=0.1)
        assert r.ic50_se > 0 and r.hill_se > 0
        z.append((r.ic50 - EXACT_IC50) / r.ic50_se)
        # the fit-covariance SE (independent points; the SE reported before)
        cov_se = E._fit_hill(r.concentrations, r.fraction, r.fraction_se, r.ic50)[1]
        z_cov.append((r.ic50 - EXACT_IC50) / cov_se)
    _assert_chi2(_normal_scores(np.array(z), n_trials), "ic50_se (jackknife)")
    # power: the SE that ignores the shared control fails the same test
    with pytest.raises(AssertionError):
        _assert_chi2(_normal_scores(np.array(z_cov), n_trials), "fit covariance")


def _woodhull_bounds(m: int, n_trials: int, n_rep: int = 200_000) -> tuple[float, float]:
    """(ALPHA/2 quantile of sum_m N(0,1)^2/max(1, chi2_1), 1 - ALPHA/2 quantile of
    sum_m t(n_trials - 1)^2/max(1, chi2_1)): Monte Carlo, fixed seed (the quantiles' own Monte
    Carlo error is about 1 %)."""
    g = np.random.default_rng(20240611)
    lo = np.empty(n_rep)
    hi = np.empty(n_rep)
    for i in range(0, n_rep, 20_000):           # in chunks (memory)
        k = min(20_000, n_rep - i)
        birge = np.maximum(1.0, g.chisquare(1, (k, m)))
        lo[i:i + k] = (g.standard_normal((k, m)) ** 2 / birge).sum(axis=1)
        birge = np.maximum(1.0, g.chisquare(1, (k, m)))
        hi[i:i + k] = (g.standard_t(n_trials - 1, (k, m)) ** 2 / birge).sum(axis=1)
    return float(np.quantile(lo, ALPHA / 2)), float(np.quantile(hi, 1 - ALPHA / 2))


def _woodhull_z(seeds, n_trials: int, **kw) -> np.ndarray:
    vs = [-100 * mV, -70 * mV, -40 * mV]
    ref = E.woodhull(GATING, BLOCKER, vs).z_delta          # exact roots: 0.79 (to 3e-16)
    z = []
    for sd in seeds:
        w = E.woodhull(GATING, BLOCKER, vs, method="stochastic", n_trials=n_trials, rng=sd,
                       **kw)
        assert w.z_delta_se > 0 and np.all(w.ic50_se > 0)
        z.append((w.z_delta - ref) / w.z_delta_se)
    return np.array(z)


def _assert_woodhull(z: np.ndarray, n_trials: int) -> None:
    m = z.size
    q = float(np.sum(z ** 2))
    lo, hi = _woodhull_bounds(m, n_trials)
    assert lo <= q <= hi, (f"z_delta_se: sum(z^2)/M = {q / m:.3f} outside [{lo / m:.3f}, "
                           f"{hi / m:.3f}] (below: SE too large, above: too small)")


def test_woodhull_z_delta_se_is_calibrated_over_seeds():
    # 20 seeds x 3 voltages, 200 channels x 10 trials, 0.1 s windows, 5 points bracketing the
    # IC50 at every voltage (0.30, 0.76, 1.93 uM): ~6 s.  A check of calibration, not of power:
    # with 5 points the old SE was less wrong and the Birge factor hid it (RMS z 1.0-1.4); the
    # slow test, with the default 17-point grids, tells the two apart
    n_trials = 10
    z = _woodhull_z(range(20), n_trials, n_channels=200, duration=0.1,
                    concentrations=[0.1 * uM, 0.3 * uM, 1 * uM, 3 * uM, 10 * uM])
    _assert_woodhull(z, n_trials)


# ------------------------------------------------------------------ calibration (slow)
@pytest.mark.slow
def test_ic50_se_is_calibrated_audit_settings():
    # the audit's settings (default 17-point grid, 1000 channels x 8 trials, 1 s windows)
    n_trials = 8
    z = [(r.ic50 - EXACT_IC50) / r.ic50_se
         for r in (E.ic50(GATING, BLOCKER, method="stochastic", n_channels=1000,
                          n_trials=n_trials, rng=10_000 + sd) for sd in range(200))]
    _assert_chi2(_normal_scores(np.array(z), n_trials), "ic50_se, audit settings")


@pytest.mark.slow
def test_peak_ic50_se_is_calibrated():
    # kind="peak": the exact peak curve is not a Hill curve (nH 1.24), and the stochastic fit
    # is weighted by the SEs of its points, so its target is the fit of the exact fractions
    # with the same weights (for these points it differs from the unweighted fit by < 0.1 SE)
    n_trials = 16
    cs = np.array([3 * uM, 10 * uM, 30 * uM, 100 * uM])
    kw = dict(kind="peak", duration=0.1, dt=0.2e-3)
    ex = E.ic50(GATING, BLOCKER, cs, **kw)
    z = []
    for sd in range(150):
        r = E.ic50(GATING, BLOCKER, cs, method="stochastic", n_channels=1000,
                   n_trials=n_trials, rng=20_000 + sd, **kw)
        ref = E._fit_hill(cs, ex.fraction, r.fraction_se, ex.ic50)[0]
        z.append((r.ic50 - ref) / r.ic50_se)
    _assert_chi2(_normal_scores(np.array(z), n_trials), "peak ic50_se")


@pytest.mark.slow
def test_woodhull_z_delta_se_is_calibrated_default_grids():
    # default 17-point grids, 1000 channels x 16 trials, 1 s windows (~1 min)
    n_trials = 16
    z = _woodhull_z(range(30_000, 30_100), n_trials, n_channels=1000)
    _assert_woodhull(z, n_trials)


# ------------------------------------------------------------------ deterministic
CS = [0.1 * uM, 0.3 * uM, 1 * uM, 3 * uM, 10 * uM]
PEAK_CS = [3 * uM, 10 * uM, 30 * uM, 100 * uM]
PEAK = dict(kind="peak", duration=0.05, dt=0.1e-3)
VS = [-100 * mV, -70 * mV, -40 * mV]


#: relative tolerance on Hill-fit outputs: curve_fit stops within ~1e-8 of the optimum, and
#: where it stops varies with the environment (e.g. 2e-8 on an exact hill_se between a script
#: and pytest); points computed by plain arithmetic are compared to 1e-12
FIT = 1e-6


def test_exact_outputs_unchanged():
    # values of the code before the jackknife change (the exact method does not use it)
    a = E.ic50(GATING, BLOCKER, CS)
    assert a.ic50 == pytest.approx(7.591620395871503e-07, rel=FIT)
    assert a.ic50_exact == pytest.approx(7.591620395871503e-07, rel=1e-12)
    assert a.hill == pytest.approx(1.0, rel=FIT)
    assert a.ic50_se < 1e-20 and a.hill_se < 1e-14          # fit covariance (a misfit)
    assert a.fraction == pytest.approx([0.8836075205929113, 0.7167572205316793,
                                        0.4315475337140146, 0.20194980466192544,
                                        0.07055958789298804], rel=1e-12)
    b = E.ic50(GATING, BLOCKER, PEAK_CS, **PEAK)
    assert (b.ic50, b.ic50_se, b.hill, b.hill_se) == pytest.approx(
        (2.6253363284446e-05, 1.955032785721448e-06, 1.2390795821533027, 0.1108081733948595),
        rel=FIT)
    w = E.woodhull(GATING, BLOCKER, VS)
    assert (w.z_delta, w.kd0) == pytest.approx((0.79, 6.677274174893958e-06), rel=1e-12)
    assert w.z_delta_se < 1e-13
    w2 = E.woodhull(GATING, BLOCKER, VS, concentrations=PEAK_CS, **PEAK)
    assert (w2.z_delta, w2.kd0, w2.kd0_se) == pytest.approx(
        (0.6490496335061207, 0.00015668400961641246, 3.784835580438673e-08), rel=FIT)
    # (a residual of three fitted IC50s: the fits' stopping points show at 5e-6)
    assert w2.z_delta_se == pytest.approx(8.284316310726033e-05, rel=1e-4)


def test_stochastic_point_estimates_unchanged_only_the_se():
    # rng=123 (steady) / 124 (peak): the points and the fit are those of the code before the
    # change; only ic50_se and hill_se (jackknife instead of fit covariance) differ
    s = E.ic50(GATING, BLOCKER, CS, method="stochastic", n_channels=300, n_trials=6, rng=123,
               duration=0.1)
    assert (s.ic50, s.hill) == pytest.approx((7.750539270276509e-07, 0.9883602518287226),
                                             rel=FIT)
    assert s.fraction == pytest.approx([0.8746106973595125, 0.7331076506431954,
                                        0.443805010155721, 0.19939065673662829,
                                        0.08070412999322953], rel=1e-12)
    assert s.fraction_se == pytest.approx([0.05379956831854609, 0.03862064379295679,
                                           0.03380669296559534, 0.013992033345545218,
                                           0.010597269456678517], rel=1e-12)
    old = E._fit_hill(s.concentrations, s.fraction, s.fraction_se, s.ic50)
    assert (old[1], old[3]) == pytest.approx((6.813275924148507e-08, 0.059148548585725956),
                                             rel=10 * FIT)
    assert (s.ic50_se, s.hill_se) == pytest.approx((9.545788716271546e-08,
                                                    0.07653180067500645), rel=10 * FIT)
    p = E.ic50(GATING, BLOCKER, PEAK_CS, method="stochastic", n_channels=300, n_trials=6,
               rng=124, **PEAK)
    assert (p.ic50, p.hill) == pytest.approx((2.4400623145285637e-05, 1.240459513525475),
                                             rel=FIT)
    assert p.fraction == pytest.approx([0.8727490996398558, 0.7490996398559423,
                                        0.4501800720288116, 0.12965186074429771], rel=1e-12)
    assert (p.ic50_se, p.hill_se) == pytest.approx((1.234828727650498e-06,
                                                    0.06869254823222624), rel=10 * FIT)
    # woodhull: the same per-voltage IC50s, new per-voltage SEs (and so new weights)
    w = E.woodhull(GATING, BLOCKER, VS, method="stochastic", n_channels=300, n_trials=6,
                   rng=125, concentrations=CS, duration=0.1)
    assert w.ic50 == pytest.approx([1.7108696398520845e-07, 7.230567027013998e-07,
                                    2.3654700010551333e-06], rel=FIT)
    assert w.ic50_se == pytest.approx([2.2885430894255803e-08, 1.4506653799105954e-07,
                                       4.497358399678662e-07], rel=10 * FIT)
    assert (w.z_delta, w.z_delta_se) == pytest.approx((1.1226156154061548,
                                                       0.09711973046396123), rel=10 * FIT)


def test_jackknife_se_is_reproducible():
    kw = dict(method="stochastic", n_channels=200, n_trials=5, duration=0.1)
    a = E.ic50(GATING, BLOCKER, CS, rng=7, **kw)
    b = E.ic50(GATING, BLOCKER, CS, rng=7, **kw)
    assert (a.ic50, a.ic50_se, a.hill, a.hill_se) == (b.ic50, b.ic50_se, b.hill, b.hill_se)
    # a Generator is drawn from once; its recorded entropy replays the run, SEs included
    g = E.ic50(GATING, BLOCKER, CS, rng=np.random.default_rng(3), **kw)
    h = E.ic50(GATING, BLOCKER, CS, rng=g.meta["entropy"], **kw)
    assert (g.ic50_se, g.hill_se) == (h.ic50_se, h.hill_se)
    c = E.ic50(GATING, BLOCKER, CS, rng=8, **kw)
    assert c.ic50_se != a.ic50_se
    wa = E.woodhull(GATING, BLOCKER, VS, concentrations=CS, rng=9, **kw)
    wb = E.woodhull(GATING, BLOCKER, VS, concentrations=CS, rng=9, **kw)
    assert wa.z_delta_se == wb.z_delta_se and np.array_equal(wa.ic50_se, wb.ic50_se)


def test_jackknife_se_matches_an_independent_computation(monkeypatch):
    # the per-trial values handed to the jackknife, and the SE recomputed here from them by the
    # documented recipe with scipy directly
    from scipy import optimize
    seen = {}
    real = E._hill_jackknife

    def spy(c, g0, g, se, ic, nh):
        seen.update(c=np.array(c), g0=np.array(g0), g=np.array(g), se=np.array(se))
        return real(c, g0, g, se, ic, nh)
    monkeypatch.setattr(E, "_hill_jackknife", spy)
    r = E.ic50(GATING, BLOCKER, CS, method="stochastic", n_channels=300, n_trials=7, rng=21,
               duration=0.1)
    c, g0, g = seen["c"], seen["g0"], seen["g"]
    n = g0.size
    assert n == 7 and g.shape == (len(CS), n)
    # the reported points are ratios of the trial means, with their delta-method SEs
    assert r.fraction == pytest.approx(g.mean(axis=1) / g0.mean(), rel=1e-12)

    def fractions(keep):
        m0, m = g0[keep].mean(), g[:, keep].mean(axis=1)
        k = keep.sum()
        v0 = g0[keep].var(ddof=1) / k / m0 ** 2
        v = g[:, keep].var(axis=1, ddof=1) / k / m ** 2
        f = m / m0
        return f, f * np.sqrt(v + v0)

    _, se_all = fractions(np.ones(n, bool))
    assert r.fraction_se == pytest.approx(se_all, rel=1e-10)

    def fit(y, s):
        p, _ = optimize.curve_fit(lambda x, lc, h: 1 / (1 + (x / 10 ** lc) ** h), c, y,
                                  p0=(math.log10(r.ic50), r.hill), sigma=s,
                                  absolute_sigma=True, bounds=([-15, 0.05], [1, 10]),
                                  xtol=1e-14, ftol=1e-14, gtol=1e-14, maxfev=20000)
        return 10 ** p[0], p[1]

    loo = []
    for k in range(n):
        keep = np.ones(n, bool)
        keep[k] = False
        f, s = fractions(keep)
        loo.append(fit(f, np.where(s > 0, s, se_all)))
    loo = np.array(loo)
    jk = np.sqrt((n - 1) / n * np.sum((loo - loo.mean(axis=0)) ** 2, axis=0))
    assert (r.ic50_se, r.hill_se) == pytest.approx(tuple(jk), rel=10 * FIT)


def test_two_trials_give_a_finite_se():
    # n_trials=2: each leave-one-out point has one trial, hence SE 0, and is weighted by the
    # full-data SE of the point
    r = E.ic50(GATING, BLOCKER, CS, method="stochastic", n_channels=300, n_trials=2, rng=5,
               duration=0.1)
    assert math.isfinite(r.ic50_se) and r.ic50_se > 0
    assert math.isfinite(r.hill_se) and r.hill_se > 0
