"""fit_mixture on data that do not identify every component: degenerate optima are not
reported as clean fits.

A mixture likelihood truncated at t_res grows without bound as a component's tau -> 0 next to
durations just above t_res, and its area can go to 0; such optima are spurious [McLachlan &
Peel 2000].  The review of the single-channel workflow found ``fit_mixture`` returning, for
CH82 openings at 1 uM resolved at 50 us with 2 components, a 1 us component carrying all the
area (slow area ~1e-20), NaN standard errors, an overflow RuntimeWarning -- and
``converged=True``.

Each test says what the code before this change did (they fail on it); the data are fixed
(seeded simulations or deterministic quantiles), so the assertions are deterministic.
Oracles: an independent numpy evaluation of the truncated log-likelihood (the reported fit is
a maximum of it, the set-aside point has a higher value), and the HJC missed-events theory for
the resolved CH82 record.
"""
import math
import warnings

import numpy as np
import pytest

import ketacore as kc
from ketacore import analysis as ka
from ketacore.units import us
from _mixture_oracle import truncated_mixture_loglik

T_RES = 50 * us


_loglik = truncated_mixture_loglik


def _ch82_open_times(seed):
    log = kc.simulate_events(kc.models.get("ch82"), kc.Step(200.0, agonist=1e-6), rng=seed)
    return ka.Record.from_events(log).resolve(T_RES).open_times()


def _fit_recording(*args, **kw):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fit = ka.fit_mixture(*args, **kw)
    return fit, [x for x in w]


def test_review_case_returns_the_maximum_above_resolution():
    """The review's data set (CH82, 1 uM, 200 s, seed 58: 7522 openings resolved at 50 us).
    Before: tau = 0.87 us with area 1 - 1.7e-22, SEs NaN, 'overflow encountered in divide',
    converged=True.  Now the largest maximum with every tau >= t_res/5 is returned, clean,
    and the higher but degenerate point is named in ``message``."""
    t = _ch82_open_times(58)
    assert t.size == 7522
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no RuntimeWarning of any origin
        fit = ka.fit_mixture(t, 2, t_res=T_RES)
    assert fit.converged
    assert np.all(fit.taus >= T_RES / 5)
    assert np.all(np.isfinite(fit.se_taus)) and np.all(np.isfinite(fit.se_areas))
    assert "degenerate optimum" in fit.message and "set aside" in fit.message
    # set aside by the data-driven rule: the spike accounts for ~6 of the 7522 openings
    assert "accounts for only 5.83 of the 7522 durations above t_res" in fit.message
    # oracle 1: the reported point is a maximum of the independent log-likelihood (gradient
    # ~0 and negative-definite Hessian in (log tau_1, log tau_2, logit a_1))
    def ll(x):
        a1 = 1 / (1 + math.exp(-x[2]))
        return _loglik(t, np.exp(x[:2]), [a1, 1 - a1], T_RES)
    x0 = np.array([math.log(fit.taus[0]), math.log(fit.taus[1]),
                   math.log(fit.areas[0] / fit.areas[1])])
    assert ll(x0) == pytest.approx(fit.loglik, abs=1e-6)
    h = 1e-4
    E = np.eye(3) * h
    g = np.array([(ll(x0 + e) - ll(x0 - e)) / (2 * h) for e in E])
    assert np.all(np.abs(g) < 1e-3), g          # vs second derivatives of order 1..1e4
    H = np.array([[(ll(x0 + a + b) - ll(x0 + a - b) - ll(x0 - a + b) + ll(x0 - a - b))
                   / (4 * h * h) for b in E] for a in E])
    assert np.all(np.linalg.eigvalsh(0.5 * (H + H.T)) < 0)
    # oracle 2: the point the old code returned has the higher likelihood (so a maximum was
    # deliberately set aside, as the message says), and it lies far below t_res / 5
    old = ([8.72708311e-07, 3.81574810e-03], [1.0 - 1.7143557e-22, 1.7143557e-22])
    assert _loglik(t, *old, T_RES) > fit.loglik + 1.0
    # oracle 3: the missed-events theory of this record (HJC asymptotic mixture): the fit is
    # within 3 SE of it per parameter (0.27 % each if the SEs are right; the seed is fixed)
    hjc = kc.theory.apparent_dwell_times(kc.models.get("ch82"), "open", t_res=T_RES,
                                         agonist=1e-6)
    assert np.all(np.abs(fit.taus - hjc.taus) < 3 * fit.se_taus), (fit.taus, hjc.taus)
    assert np.all(np.abs(fit.areas - hjc.areas) < 3 * fit.se_areas), (fit.areas, hjc.areas)
    # starting guesses in the spike's basin reach the same maximum
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g2 = ka.fit_mixture(t, taus=[1e-6, 4e-3], t_res=T_RES)
    assert g2.converged
    assert g2.loglik == pytest.approx(fit.loglik, abs=1e-6)


def test_no_maximum_above_resolution_is_flagged():
    """CH82 seed 1: the best maximum has a 9.4 us component (area 0.27) fitted to ~14
    openings just above 50 us; its tau and area have standard errors 1.2 and 4.3 times their
    values.  Before fed52eb: converged=True, silently.  Now converged=False, a RuntimeWarning
    saying the component is not identifiable (judged from the information matrix, not from
    tau / t_res) and suggesting fewer components; one component fits cleanly.  (fed52eb
    asserted the reason "tau < t_res/5", a rule that also flagged well-identified fits -- see
    test_fast_component_below_t_res_over_5_is_identified.)"""
    t = _ch82_open_times(1)
    fit, w = _fit_recording(t, 2, t_res=T_RES)
    assert not fit.converged
    assert len(w) == 1 and w[0].category is RuntimeWarning
    msg = str(w[0].message)
    assert msg == "fit_mixture: " + fit.message
    assert ("the tau of component 1 (tau = 9.41 us) has a standard error 1.21 times its "
            "value (> 1)") in msg
    assert "the area of component 1 (tau = 9.41 us) has a standard error 4.34 times" in msg
    assert "not identifiable" in msg and "fit fewer" in msg
    assert fit.taus[0] < T_RES / 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one = ka.fit_mixture(t, 1, t_res=T_RES)
    assert one.converged and one.message == ""
    # the 1-component MLE of truncated data is mean(t) - t_res (closed form)
    assert one.taus[0] == pytest.approx(t.mean() - T_RES, rel=1e-7)


def _exponential_quantiles(n=3000, tau=4e-3, t_res=T_RES):
    """A perfectly exponential 'sample': t_res + the n mid-quantiles of Exp(tau)."""
    u = (np.arange(n) + 0.5) / n
    return t_res + tau * -np.log1p(-u)


def test_component_with_no_events_is_flagged():
    """Two components for one-exponential data: the second gets an area of ~1e-7 (0.0003 of
    3000 durations).  Before: converged=True with se_taus [nan, 7e-5] and no reason."""
    x = _exponential_quantiles()
    fit, w = _fit_recording(x, 2, t_res=T_RES)
    assert not fit.converged
    assert len(w) == 1 and "accounts for" in str(w[0].message)
    assert "its area went to 0" in fit.message
    # SEs are NaN only with the reason stated
    assert np.isnan(fit.se_taus).any() and "standard errors NaN" in fit.message


def test_singular_information_is_flagged():
    """Ideal data (t_res = 0), 2 components for one exponential: both taus end equal, so the
    split of the area between them is not identified.  Before: converged=True with finite
    but meaningless SEs (0.032 s on a 4 ms tau)."""
    x = _exponential_quantiles(t_res=0.0) + 1e-9
    fit, w = _fit_recording(x, 2)
    assert not fit.converged
    # along the flat direction the optimiser stops anywhere near tau_1 = tau_2
    assert fit.taus[1] == pytest.approx(fit.taus[0], rel=1e-3)
    assert np.all(np.isnan(fit.se_taus)) and np.all(np.isnan(fit.se_areas))
    assert "information matrix is singular (standard errors NaN)" in fit.message
    assert len(w) == 1 and "fit fewer" in str(w[0].message)


def _excess_mixture_loglik(e, taus, w):
    """Log-likelihood of excesses ``e = t - t_res`` under the mixture with OBSERVED weights
    ``w`` (``sum w_i / tau_i exp(-e / tau_i)``): the truncated likelihood in the
    parameters that stay in range when an untruncated area would underflow."""
    lf = np.log(w)[None, :] - np.log(taus)[None, :] - e[:, None] / np.asarray(taus)[None, :]
    m = lf.max(axis=1, keepdims=True)
    return float(np.sum(m[:, 0] + np.log(np.exp(lf - m).sum(axis=1))))


def test_spike_at_t_res_without_interior_maximum():
    """Exponential data plus 5 durations within 0.05 us above t_res: no maximum exists above
    t_res/5; the only 2-component maximum is a spike, tau_1 = 0.03 us fitted to the 5
    excesses of 1-5e-8 s, with an untruncated area ratio a_1/a_2 = exp(1665) (beyond the
    range of doubles).  Before: converged=False and nothing said why; then (areas clipped at
    1e-300 in the objective) BFGS stopped on that clip with 'precision loss' at tau_1 =
    0.072 us, areas [1, 9.8e-301], n_total = 3.1e303, and a count (4.73, 4.78 or 4.95
    durations) that depended on round-off; now the maximum itself, one RuntimeWarning that
    names the component and the NaN standard errors, and n_total = inf (n / S(t_res) of the
    fitted model is 10^726)."""
    x = _exponential_quantiles()
    x[:5] = T_RES + np.arange(1, 6) * 1e-8
    fit, w = _fit_recording(x, 2, t_res=T_RES)
    assert not fit.converged
    assert [str(m.message).startswith("fit_mixture: ") for m in w] == [True]
    assert "component 1 has tau = " in fit.message and "not identifiable" in fit.message
    assert "accounts for only 4.93 of the 3000 durations above t_res" in fit.message
    assert "fewer than 10" in fit.message
    assert "standard errors NaN" in fit.message
    assert "did not converge" not in fit.message        # a maximum, not a stalled optimiser
    assert fit.taus[0] < 1e-6
    assert fit.n_total == math.inf and fit.areas[1] == 0.0
    # oracle: the maximum of the truncated likelihood in (log tau_1, log tau_2, logit w_1),
    # observed weights (independent of ketacore's parameterisation and kernel)
    from scipy.optimize import minimize
    e = x - T_RES

    def nll(p):
        w1 = 1 / (1 + math.exp(-p[2]))
        return -_excess_mixture_loglik(e, np.exp(p[:2]), np.array([w1, 1 - w1]))
    r = minimize(nll, [math.log(1e-7), math.log(4e-3), math.log(5 / 2995)], method="Nelder-Mead",
                 options=dict(xatol=1e-10, fatol=1e-10, maxiter=20000, maxfev=40000))
    r = minimize(nll, r.x, method="BFGS", options=dict(gtol=1e-8))
    assert -r.fun == pytest.approx(fit.loglik, abs=1e-6)
    np.testing.assert_allclose(fit.taus, np.exp(r.x[:2]), rtol=1e-4)
    w1 = 1 / (1 + math.exp(-r.x[2]))
    assert 3000 * w1 == pytest.approx(4.93, abs=0.005)
    # the point where the clipped objective stopped is 1.4 below it in ln L
    assert _loglik(x, [7.17139e-08, 4.003423e-03], [1.0, 9.7794e-301], T_RES) < fit.loglik - 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clean_fits_have_an_empty_message(seed):
    """Well-separated components above t_res: clean fit, empty message, finite SEs, no
    warnings (the usual case is unchanged; fails on the old code only for want of
    ``message``)."""
    rng = np.random.default_rng(seed)
    c = rng.random(8000) < 0.4
    x = np.where(c, rng.exponential(3e-4, 8000), rng.exponential(5e-3, 8000))
    x = x[x >= T_RES]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = ka.fit_mixture(x, 2, t_res=T_RES)
    assert fit.converged and fit.message == ""
    assert np.all(np.isfinite(fit.se_taus)) and np.all(np.isfinite(fit.se_areas))
    # the truth within 4 SE per parameter (6e-5 two-sided each)
    assert np.all(np.abs(fit.taus - [3e-4, 5e-3]) < 4 * fit.se_taus)
    assert abs(fit.areas[0] - 0.4) < 4 * fit.se_areas[0]


def test_one_short_component_is_not_flagged():
    """A single exponential much shorter than t_res is identifiable (its area is 1, the
    excess over t_res is Exp(tau)): tau = 5 us at t_res = 50 us fits cleanly, and the MLE
    is the mean excess (closed form)."""
    x = T_RES + _exponential_quantiles(n=400, tau=5 * us, t_res=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = ka.fit_mixture(x, 1, t_res=T_RES)
    assert fit.converged and fit.message == ""
    assert fit.taus[0] == pytest.approx(x.mean() - T_RES, rel=1e-7)


# ---------------------------------------------------------------------------------------
# Identifiability is judged from the data, not from tau / t_res (review of fed52eb, which
# flagged every component with tau < t_res / 5)

def _fast_slow_sample(seed, n=20_000, taus=(8 * us, 2e-3), areas=(0.99, 0.01)):
    """n durations from the mixture, kept if > t_res (the review's construction): the 8 us
    component leaves exp(-50/8) = 0.19 % of its durations above 50 us, which is still ~16 %
    of the resolved ones (0.99 * 0.0019 vs 0.01 * 0.975)."""
    rng = np.random.default_rng(seed)
    out, m = [], 0
    while m < n:
        c = rng.random(400_000) < areas[0]
        x = np.where(c, rng.exponential(taus[0], c.size), rng.exponential(taus[1], c.size))
        out.append(x[x > T_RES])
        m += out[-1].size
    return np.concatenate(out)[:n]


@pytest.fixture(scope="module")
def fast_slow():
    t = _fast_slow_sample(0)
    assert t.size == 20_000
    assert 0.15 < np.mean(t < 2 * T_RES) < 0.25        # the fast component is well seen
    fit, w = _fit_recording(t, taus=[8 * us, 2e-3], areas=[0.99, 0.01], t_res=T_RES)
    return t, fit, w


def test_fast_component_below_t_res_over_5_is_identified(fast_slow):
    """tau = 8 us / 2 ms, areas 0.99 / 0.01, t_res = 50 us, 20 000 resolved durations, fit
    from the true values.  Before (fed52eb): converged=False and a RuntimeWarning claiming
    the area is not identifiable, because 8 us < t_res/5.  Now a clean fit: the estimates
    are within 4 SE of the truth per parameter (tau_1, tau_2, a_1; a_2 = 1 - a_1).  If the
    SEs are right (asymptotic normality, n = 20 000), each fails with probability
    P(|Z| > 4) = 6.3e-5, the three together with at most 1.9e-4 (union bound); the seed is
    fixed, so the test is deterministic."""
    t, fit, w = fast_slow
    assert fit.converged and fit.message == "" and w == []
    assert fit.taus[0] < T_RES / 5                      # the case the old rule flagged
    assert np.all(np.isfinite(fit.se_taus)) and np.all(np.isfinite(fit.se_areas))
    assert np.all(np.abs(fit.taus - [8 * us, 2e-3]) < 4 * fit.se_taus), (fit.taus, fit.se_taus)
    assert abs(fit.areas[0] - 0.99) < 4 * fit.se_areas[0], (fit.areas, fit.se_areas)
    # precise, not merely not-flagged: tau_1 to < 5 %, a_1 to < 0.5 %
    assert fit.se_taus[0] < 0.05 * fit.taus[0] and fit.se_areas[0] < 0.005
    # the reported log-likelihood is the independent one at the reported point
    assert _loglik(t, fit.taus, fit.areas, T_RES) == pytest.approx(fit.loglik, abs=1e-6)


def test_fast_component_found_from_default_starts(fast_slow):
    """Same data, no guesses.  Before: tau = 1.6 us / 1.7 ms with areas exactly [0.5, 0.5]
    (the unchanged start: a 1.6 us component with area 0.5 leaves exp(-31) of its durations
    above t_res, so its gradient underflowed to 0), SEs NaN, log-likelihood ~6 500 below
    the maximum, and a message blaming identifiability.  Now the starting areas put every
    component equally above t_res and the default starts reach the maximum found from the
    true values (same point to optimiser precision)."""
    t, ref, _ = fast_slow
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = ka.fit_mixture(t, 2, t_res=T_RES)
    assert fit.converged and fit.message == ""
    assert fit.loglik == pytest.approx(ref.loglik, abs=1e-4)
    np.testing.assert_allclose(fit.taus, ref.taus, rtol=1e-4)
    np.testing.assert_allclose(fit.areas, ref.areas, rtol=1e-4)


def test_start_that_never_moves_is_not_returned(fast_slow):
    """Guesses taus = [1 us, 2 ms] with areas [0.5, 0.5]: the 1 us component is invisible
    above t_res (exp(-50)), so BFGS never moves the areas from there.  That start is not an
    optimum: it is neither returned nor reported as a degenerate optimum 'set aside'; the
    data-driven starts (with areas that put each component above t_res) reach the
    maximum.  Before (fed52eb): converged=False, 'not
    identifiable'."""
    t, ref, _ = fast_slow
    start = ([1 * us, 2e-3], [0.5, 0.5])
    assert _loglik(t, *start, T_RES) < ref.loglik - 1000     # far from any maximum
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = ka.fit_mixture(t, taus=start[0], areas=start[1], t_res=T_RES)
    assert fit.converged and fit.message == ""
    assert fit.loglik == pytest.approx(ref.loglik, abs=1e-4)


def test_optimiser_that_never_moves_is_reported_honestly(fast_slow, monkeypatch):
    """An optimiser that stops at its start (scipy's minimize with maxiter=0, for every
    start): converged=False, one RuntimeWarning saying that the optimiser did not improve on
    its start -- not that the data do not identify the components (they do: the previous
    tests).  Before: the message blamed the optimiser's status and, for the spread starts
    below t_res/5, identifiability."""
    import scipy.optimize
    t, _, _ = fast_slow
    real = scipy.optimize.minimize

    def frozen(*args, **kw):
        kw["options"] = dict(kw.get("options") or {}, maxiter=0)
        return real(*args, **kw)

    monkeypatch.setattr(scipy.optimize, "minimize", frozen)
    for kw in (dict(n_components=2), dict(taus=[8 * us, 2e-3], areas=[0.99, 0.01])):
        fit, w = _fit_recording(t, t_res=T_RES, **kw)
        assert not fit.converged
        assert [str(m.message) for m in w] == ["fit_mixture: " + fit.message]
        assert "the optimiser did not improve on its start (3 of 3 parameters never moved" \
            in fit.message
        assert "identif" not in fit.message and "fit fewer" not in fit.message
