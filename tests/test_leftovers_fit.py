"""Three user-facing leftovers of the fitting and experiment layers.

1. ``analysis.fit_mixture`` / ``Record.resolve``: durations in ms with
   ``t_res`` in s give a UserWarning (one shared rule, ``analysis._warn_if_units_mixed``);
   durations in seconds do not.  The rule's false-warning probability for durations from any
   distribution with a non-increasing density above ``t_res`` (every truncated mixture of
   exponentials) is < 1e-8 per call (derivation in the ``fit_mixture`` docstring), so the
   "does not warn" tests below, 20 calls or fewer each on data of that kind, fail by chance
   with probability < 2e-7; the uniform-density test (the worst case of the bound) makes
   2000 calls: < 2e-5.  The "warns" tests use fixed seeds; their statistic is printed in the
   assertion and exceeds the threshold 20 at least twofold.
2. ``theory.hjc_loglik`` / ``apparent_dwell_times``: a ``t_res`` whose product with the
   fastest rate of leaving a state exceeds ln(1/eps) = 36.04 is refused before any HJC work
   with one ValueError naming t_res, the product, the limit and the largest t_res allowed;
   below it the value is finite and matches SCALCS; ``fit_hjc`` takes the refusal as an
   infinite objective.
3. ``experiments.ic50`` / ``woodhull``: one rule -- an IC50 is flagged (and warned about)
   only when the reported number is a Hill fit extrapolated beyond the data, never when the
   model gives it exactly.
"""
from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest

import ketacore as kc
from ketacore import analysis as ka
from ketacore import experiments as E
from ketacore import fitting
from ketacore import theory as th
from ketacore.theory import ExponentialMixture
from ketacore.units import mV, uM, us

CH82 = kc.models.get("ch82")
T_RES = 50 * us
#: a CH82-like mixture (taus 50 us - 100 ms)
CH82_LIKE = ExponentialMixture([50e-6, 2e-3, 100e-3], [0.6, 0.3, 0.1])
UNITS_MSG = r"look like milliseconds given with t_res in seconds.*both in seconds"


def _resolved_sample(mix, n, seed, t_res=T_RES):
    """n durations (s) of ``mix`` truncated at t_res (what a resolved record holds)."""
    rng = np.random.default_rng(seed)
    out = np.empty(0)
    while out.size < n:
        x = mix.sample(4 * n, rng)
        out = np.concatenate((out, x[x >= t_res]))
    return out[:n]


def _gap(d, t_res):
    """The rule's statistic 0.05 n (min - t_res) / (X_(ceil(0.2 n)) - t_res)."""
    k = math.ceil(0.2 * d.size)
    return 0.05 * d.size * (d.min() - t_res) / (np.sort(d)[k - 1] - t_res)


# =========================================================================== 1. units
def test_fit_mixture_warns_for_durations_in_ms_with_t_res_in_s():
    x_ms = _resolved_sample(CH82_LIKE, 3000, seed=1) * 1e3      # "ms numbers", 0.05 - 500
    assert _gap(x_ms, T_RES) > 40, _gap(x_ms, T_RES)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        fit = ka.fit_mixture(x_ms, 2, t_res=T_RES)
    units = [w for w in rec if issubclass(w.category, UserWarning)
             and not issubclass(w.category, RuntimeWarning)]
    assert len(units) == 1, [str(w.message) for w in rec]
    assert re.search("fit_mixture: the durations " + UNITS_MSG, str(units[0].message))
    assert units[0].filename == __file__                      # points at the caller
    assert fit.taus.max() > 1.0                               # the 1000x too long fit it flags


def test_resolve_shares_the_units_rule_and_log_histogram_does_not_check():
    """Record.resolve warns like fit_mixture; log_histogram does not (it also takes latencies
    and paced intervals, on which the rule fires in seconds: a review found 1e5 Gamma(2, 0.2 s)
    latencies and 1000 identical 0.5 s durations flagged)."""
    x = _resolved_sample(CH82_LIKE, 3000, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        ka.log_histogram(x * 1e3, t_res=T_RES)
        ka.log_histogram(np.full(1000, 0.5), t_res=T_RES)
        ka.log_histogram(T_RES + np.random.default_rng(0).gamma(2.0, 0.2, 100000), t_res=T_RES)
    # a record built from dwells in ms, resolved at a t_res in s
    amps = np.where(np.arange(x.size) % 2 == 0, 1e-12, 0.0)
    rec_ms = ka.Record.from_dwells(x * 1e3, amps)
    with pytest.warns(UserWarning, match="Record.resolve: the durations " + UNITS_MSG):
        rec_ms.resolve(T_RES)
    # the same durations in seconds: none warns
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        ka.log_histogram(x, t_res=T_RES)
        ka.Record.from_dwells(x, amps).resolve(T_RES)
        ka.fit_mixture(x, 3, t_res=T_RES)


def test_seconds_records_do_not_warn():
    """CH82-like mixtures, slow-only records and a simulated CH82 record, all in seconds."""
    slow = ExponentialMixture([0.5, 5.0], [0.5, 0.5])
    one = ExponentialMixture([1.0], [1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)   # degenerate-fit notes, not units
        for seed in range(4):
            for mix, n in ((CH82_LIKE, 3000), (slow, 2000), (one, 1000)):
                x = _resolved_sample(mix, n, seed=100 + seed)
                ka.fit_mixture(x, mix.n_components, t_res=T_RES)
                ka.log_histogram(x, t_res=T_RES)
        # a simulated CH82 record, resolved at 50 us (open and shut times, s)
        log = kc.simulate_events(CH82, kc.Step(20.0, agonist=0.1 * uM), rng=5,
                                 initial=th.equilibrium(CH82, agonist=0.1 * uM))
        r = ka.Record.from_events(log).resolve(T_RES)
        for d in (r.open_times(), r.shut_times()):
            ka.log_histogram(d, t_res=T_RES)
            ka.fit_mixture(d, 2, t_res=T_RES)


def test_units_rule_worst_case_density_does_not_warn():
    """A uniform density above t_res makes the concavity bound tight; 2000 records of 400
    durations over [t_res, t_res + 1 s] (median 0.5 s, minimum ~ 50 t_res: only the gap
    statistic decides) give no warning (probability of any < 2000 x 1e-8)."""
    rng = np.random.default_rng(7)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        for _ in range(2000):
            d = T_RES + rng.uniform(0.0, 1.0, 400)
            ka._warn_if_units_mixed("t", d, T_RES, stacklevel=1)


def test_units_rule_needs_every_condition():
    def _check(d, t_res=0.0):
        ka._warn_if_units_mixed("check", np.asarray(d, dtype=float), t_res, stacklevel=1)
    x_ms = _resolved_sample(CH82_LIKE, 3000, seed=1) * 1e3
    assert _gap(x_ms, T_RES) > 40
    with pytest.warns(UserWarning, match=UNITS_MSG):          # all conditions hold: warns
        _check(x_ms, t_res=T_RES)
    with warnings.catch_warnings():                           # drop any one: does not
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        _check(x_ms[:399], t_res=T_RES)             # n < 400
        _check(x_ms)                                # no resolution stated
        _check(np.append(x_ms, 5 * T_RES), t_res=T_RES)   # shortest < 10 t_res
        x_100 = x_ms / 10                                     # median < 0.1 s ...
        assert np.median(x_100) < 0.1 and _gap(x_100, T_RES) > 20     # ... but a large gap
        _check(x_100, t_res=T_RES)


# =========================================================================== 2. hjc t_res
LIMIT = 52 * math.log(2.0)
R_MAX = 19000.0                      # CH82's fastest rate of leaving a state (A2R), 0.1-1 uM


def _groups(r):
    return [np.array([3 * r]), np.array([r, 1.5 * r, 2 * r, 2.5 * r, 3 * r]),
            np.array([1.2 * r, 5 * r, 4 * r])]


def _refusal(fn, t_res):
    return (rf"^{fn}: t_res={t_res:g} s is too long for this mechanism: t_res x its fastest "
            rf"rate of leaving a state \(max \|q_ii\| = 1\.9e\+04 s\^-1 at these conditions\) "
            rf"is {t_res * R_MAX:.4g}, above the limit 36\.04 = ln\(1/eps\) of the "
            r"missed-events \(HJC\) computation in double precision .*: here t_res must be <= "
            r"0\.001897 s\.  t_res is in seconds")


@pytest.mark.parametrize("c", [0.1 * uM, 1 * uM])
def test_hjc_loglik_over_t_res_is_a_value_or_one_clear_error(c):
    """1e-5 to 0.1 s: a finite value up to t_res = 36.04 / 19000 s, one ValueError beyond
    (the old code raised 'could not bracket', 'H(0) has an eigenvalue >= 0' or
    NoUniqueEquilibrium, or returned values, depending on t_res)."""
    assert np.max(-np.diag(CH82.q_matrix(agonist=c))) == R_MAX
    for t_res in np.geomspace(1e-5, 0.1, 25):
        t_res = float(t_res)
        if t_res * R_MAX <= LIMIT:
            assert math.isfinite(th.hjc_loglik(CH82, _groups(t_res), t_res=t_res, agonist=c))
        else:
            with pytest.raises(ValueError, match=_refusal("hjc_loglik", t_res)):
                th.hjc_loglik(CH82, _groups(t_res), t_res=t_res, agonist=c)
            with pytest.raises(ValueError, match=_refusal("apparent_dwell_times", t_res)):
                th.apparent_dwell_times(CH82, "shut", t_res=t_res, agonist=c)


def test_the_limit_is_sharp_and_checked_before_any_hjc_work(monkeypatch):
    at = LIMIT / R_MAX
    ok = th.hjc_loglik(CH82, _groups(0.999 * at), t_res=0.999 * at, agonist=0.1 * uM)
    assert math.isfinite(ok)
    assert math.isfinite(th.apparent_dwell_times(CH82, "open", t_res=0.999 * at,
                                                 agonist=0.1 * uM).mean)

    def boom(*a, **k):
        raise AssertionError("HJC machinery reached")
    monkeypatch.setattr(th, "_HJCLikelihood", boom)
    monkeypatch.setattr(th, "_HJCClass", boom)
    for t_res in (1.001 * at, 0.01, 0.5):
        with pytest.raises(ValueError, match=_refusal("hjc_loglik", t_res)):
            th.hjc_loglik(CH82, _groups(t_res), t_res=t_res, agonist=0.1 * uM)
        with pytest.raises(ValueError, match=_refusal("apparent_dwell_times", t_res)):
            th.apparent_dwell_times(CH82, "open", t_res=t_res, agonist=0.1 * uM)


@pytest.mark.parametrize("t_res", [1e-3, 1.8e-3])
def test_valid_long_t_res_still_matches_scalcs(t_res):
    """Below the limit (t_res x 19000 = 19 and 34.2) the likelihood is SCALCS' HJClik (same
    oracle and tolerance as tests/test_theory_hjc_likelihood.py)."""
    from test_theory_hjc_likelihood import _scalcs_hjclik
    c = 1 * uM
    Q = CH82.q_matrix(agonist=c)
    # intervals at t_res, in both exact pieces and in the asymptotic range (short groups:
    # HJClik's 1e50 rescaling is never reached)
    groups = _groups(t_res) + [np.array([1.1 * t_res, 8 * t_res, 20 * t_res, 2.9 * t_res,
                                         3.1 * t_res])]
    for t_crit in (None, 10 * t_res):
        ref = _scalcs_hjclik(Q, groups, t_res, t_crit)
        got = th.hjc_loglik(CH82, groups, t_res=t_res, t_crit=t_crit, agonist=c)
        assert got == pytest.approx(ref, rel=1e-11, abs=1e-9)


def test_fit_hjc_refuses_at_the_start_and_treats_the_limit_as_infinite_objective():
    c = 0.1 * uM
    with pytest.raises(ValueError, match=r"^data\[0\]: hjc_loglik: t_res=0\.01 s is too long"):
        fitting.fit_hjc(CH82, (_groups(0.01), {"agonist": c}), t_res=0.01, free=["A2R->A2R*"])
    data = ([np.array([3e-3, 2e-3, 4e-3]), np.array([2.5e-3])], {"agonist": c})
    t_res = 1.5e-3                                    # 28.5 x 19000 s^-1 at the true rates
    params = fitting._Params(CH82, ["A2R->A2R*"], None, None, True, None)
    obj = fitting._Objective(CH82, params, [(data[0], data[1], None)], [t_res], 2)
    beta2 = params.theta0.copy()
    assert math.isfinite(obj(beta2))
    # beta2 = 30000 s^-1: A2R leaves at 34000 s^-1, 51 > 36.04 at this t_res
    assert obj(beta2 + math.log(2.0)) == math.inf


# =========================================================================== 3. IC50 rule
def test_ic50_with_an_exact_root_never_warns_of_extrapolation():
    # 10 uM - 1 mM all block ketamine > 50 % at -70 mV: the Hill fit is outside the data, the
    # reported IC50 (exact equilibrium root) is not (the old code warned)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = E.ic50("erreger2005_2a", "ketamine", [1e-5, 1e-4, 1e-3])
    assert r.ic50_exact is not None and not r.extrapolated
    assert r._hill_outside()
    assert "exact equilibrium root" in r.bound() and "extrapolated=True" not in repr(r)


def test_the_one_rule():
    c, below = np.array([1e-6, 1e-5]), np.array([0.8, 0.6])     # never 50 % inhibition
    assert E._reported_is_extrapolation(None, c, below, 3e-5)
    assert not E._reported_is_extrapolation(2e-5, c, below, 3e-5)   # exact: never
    crossing = np.array([0.8, 0.3])
    assert not E._reported_is_extrapolation(None, c, crossing, 3e-6)
    assert E._reported_is_extrapolation(None, c, crossing, 3e-5)    # fit outside the range


@pytest.mark.parametrize("kind, concentrations", [
    ("steady", [1e-5, 1e-4, 1e-3]),           # exact roots, data above 50 % inhibition
    ("peak", [1e-7, 1e-6, 1e-5]),             # Hill fits, data below 50 %: extrapolated
    ("steady", [1e-7, 1e-6, 1e-5]),           # exact roots, data bracketing
])
def test_ic50_and_woodhull_flag_and_warn_by_the_same_rule(kind, concentrations):
    vs = [-70 * mV, -30 * mV]
    flags, warned = [], []
    for v in vs:
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            r = E.ic50("erreger2005_2a", "ketamine", concentrations, V=v, kind=kind)
        flags.append(r.extrapolated)
        warned.append(any("extrapolation" in str(w.message) for w in rec))
        # steady state: exact roots, never flagged; peak currents below 50 %: Hill fits beyond the data
        assert r.extrapolated == (kind == "peak")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        w = E.woodhull("erreger2005_2a", "ketamine", vs, kind=kind,
                       concentrations=concentrations)
    assert w.extrapolated.tolist() == flags
    assert warned == flags
    assert any("woodhull: the IC50 at" in str(x.message) for x in rec) == any(flags)
    assert any(flags) == (kind == "peak")
