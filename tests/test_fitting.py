"""HJC maximum-likelihood fitting: ``ketacore.fitting.fit_hjc`` (as HJCFIT; Colquhoun, Hatton &
Hawkes 2003, J Physiol 547:699-728).

Oracles and failure probabilities (fixed seeds, so a run is reproducible; the probabilities
are those of a fresh seed failing for a correct implementation, under the asymptotic
normality of the ML estimates that Colquhoun et al. 2003 examine for CH82-like mechanisms):

* recovery: each fitted rate within 4 SE of the truth: P(|z| > 4) = 6.3e-5 per rate, so
  <= 6 x 6.3e-5 = 3.8e-4 for the 6 rates of the fast test (union bound), 9 x 6.3e-5 = 5.7e-4
  for the slow one;
* the likelihood-ratio statistic 2 (ln L_max - ln L_true) ~ chi2_p: asserted below
  chi2_p(0.9999) (failure probability 1e-4), and ln L_max >= ln L_true (certain at a true
  maximum; a failure means the optimiser stopped early);
* the reported ln L is ``hjc_loglik`` of the fitted scheme (the public function), MR holds
  on the fitted Q, fixed and constrained rates are exact: deterministic.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

import ketacore as kc
from ketacore import analysis as ka
from ketacore import fitting
from ketacore import theory as th
from ketacore.units import ms, uM, us

CH82 = kc.models.get("ch82")
TRUE = {f"{t.src}->{t.dst}": t.rate.k0 for t in CH82.transitions}
T_RES, T_CRIT = 25 * us, 3.5 * ms
CYCLE = ("AR*", "A2R*", "A2R", "AR")
# alpha2, beta2, k-2, alpha1, beta1 free; MR sets k*-2 (A2R*->AR*); the association rates
# and k-1 fixed (as HJCFIT users do when two concentrations do not determine them)
FREE5 = ["A2R*->A2R", "A2R->A2R*", "A2R->AR", "AR*->AR", "AR->AR*"]
START5 = dict(zip(FREE5, [2.5, 0.4, 3.0, 0.5, 2.0]))


def _groups(c, t_end, seed, t_crit=T_CRIT):
    log = kc.simulate_events(CH82, kc.Step(t_end, agonist=c), rng=seed,
                             initial=th.equilibrium(CH82, agonist=c))
    return ka.Record.from_events(log).resolve(T_RES).hjc_groups(t_crit)


@pytest.fixture(scope="module")
def data2():
    # 0.1 uM, 300 s (~70 bursts, 300 intervals) and 1 uM, 30 s (~400 bursts, 3300 intervals)
    return [(_groups(0.1 * uM, 300.0, 11), {"agonist": 0.1 * uM}),
            (_groups(1 * uM, 30.0, 12), {"agonist": 1 * uM})]


@pytest.fixture(scope="module")
def fit5(data2):
    start = {k: TRUE[k] * f for k, f in START5.items()}
    return fitting.fit_hjc(CH82, data2, t_res=T_RES, t_crit=T_CRIT, free=FREE5, start=start)


def _loglik(scheme, data, t_crit=T_CRIT):
    return sum(th.hjc_loglik(scheme, g, t_res=T_RES, t_crit=t_crit, **c) for g, c in data)


def _cycle_products(Q, idx, cycle):
    n = len(cycle)
    fwd = math.prod(Q[idx[cycle[i]], idx[cycle[(i + 1) % n]]] for i in range(n))
    bwd = math.prod(Q[idx[cycle[(i + 1) % n]], idx[cycle[i]]] for i in range(n))
    return fwd, bwd


def _assert_recovered(fit, true_scheme, data, names):
    for k in names:
        z = (fit.rates[k] - TRUE[k]) / fit.se[k]
        assert abs(z) < 4, (k, fit.rates[k], TRUE[k], fit.se[k])
    l_true = _loglik(true_scheme, data)
    assert fit.loglik >= l_true - 1e-6
    assert 2 * (fit.loglik - l_true) < stats.chi2.ppf(0.9999, fit.n_free)


# ------------------------------------------------------------------ 1. recovery

def test_recovery_ch82_two_concentrations(fit5, data2):
    assert fit5.converged, fit5.message
    assert fit5.free == tuple(k for k in TRUE if k in FREE5) and fit5.n_free == 5
    assert fit5.kinds["A2R*->AR*"] == "mr"
    assert fit5.mr_cycles == {"A2R*->AR*": ("A2R*", "AR*", "AR", "A2R")}
    _assert_recovered(fit5, CH82, data2, FREE5 + ["A2R*->AR*"])
    # SEs: positive, finite, a correlation matrix, delta-method SE of the MR-set rate
    assert set(fit5.se) == set(FREE5) | {"A2R*->AR*"}
    assert all(0 < s < math.inf for s in fit5.se.values())
    C = fit5.correlation
    assert np.all(np.diag(C) == 1) and np.allclose(C, C.T) and np.all(np.abs(C) <= 1)
    assert np.all(np.linalg.eigvalsh(fit5.hessian) > 0)
    # MR on the cycle: k*-2 alpha1 k+2 beta2 = k*+2 beta1 k-2 alpha2 (statistical factors
    # cancel in ln), so d ln k*-2 / d theta is +1 for alpha2, k-2, beta1 and -1 for beta2,
    # alpha1, and var(ln k*-2) = a C a
    a = {"A2R*->A2R": 1, "A2R->AR": 1, "AR->AR*": 1, "A2R->A2R*": -1, "AR*->AR": -1}
    av = np.array([a[k] for k in fit5.free], float)
    se_mr = fit5.rates["A2R*->AR*"] * math.sqrt(av @ fit5.cov_log @ av)
    assert fit5.se["A2R*->AR*"] == pytest.approx(se_mr, rel=1e-12)
    # compared by identity (a field-wise == raised: its arrays have no single truth value)
    import copy
    assert fit5 == fit5 and not (fit5 == copy.copy(fit5)) and fit5 != copy.copy(fit5)
    assert len({fit5, fit5}) == 1
    text = fit5.summary()
    for k in TRUE:
        assert k in text
    assert "M^-1 s^-1" in text and "MR (A2R*-AR*-AR-A2R)" in text and "fixed" in text


# ------------------------------------------------------------------ 2. exact objective and MR

def test_reported_loglik_and_mr_are_exact(fit5, data2):
    assert fit5.loglik == pytest.approx(_loglik(fit5.scheme, data2), rel=1e-12, abs=0)
    # the fast path's raw Q equals the fitted scheme's Q
    obj_ll = sum(th.hjc_loglik(fit5.scheme.q_matrix(**c), g, t_res=T_RES, t_crit=T_CRIT,
                               open=[0, 1]) for g, c in data2)
    assert fit5.loglik == pytest.approx(obj_ll, rel=1e-12, abs=0)
    idx = {s: i for i, s in enumerate(CH82.states)}
    for c in (0.1 * uM, 1 * uM, 1e-3):
        fwd, bwd = _cycle_products(fit5.scheme.q_matrix(agonist=c), idx, CYCLE)
        assert fwd == pytest.approx(bwd, rel=1e-10, abs=0)
        assert th.is_reversible(fit5.scheme, agonist=c)
    # a maximum: moving any free rate by +-2 % lowers ln L
    for k in FREE5:
        for f in (0.98, 1.02):
            moved = fit5.scheme.with_rates(**{k: kc.Rate(fit5.rates[k] * f)})
            assert _loglik(moved, data2) < fit5.loglik, (k, f)
    # fixed rates untouched
    for k in TRUE:
        if fit5.kinds[k] == "fixed":
            assert fit5.rates[k] == TRUE[k]


# ------------------------------------------------------------------ 3. constraints and fixed

def test_constraints_and_fixed_values_are_exact(data2):
    fit = fitting.fit_hjc(
        CH82, data2, t_res=T_RES, t_crit=T_CRIT,
        free=["A2R*->A2R", "A2R->A2R*", "AR->R"],
        fixed={"AR->A2R": 4e8, "AR*->AR": 3000.0},
        constrain={"A2R->AR": "AR->R",                      # k-2 = k-1 (HJCFIT style)
                   "AR*->A2R*": ("AR->A2R", 0.5)},          # k*+2 = 0.5 k+2
        start={"A2R*->A2R": 1000.0, "A2R->A2R*": 8000.0, "AR->R": 4000.0})
    r = fit.rates
    assert fit.n_free == 3
    assert r["A2R->AR"] == r["AR->R"]
    assert r["AR*->A2R*"] == 0.5 * 4e8 and r["AR->A2R"] == 4e8 and r["AR*->AR"] == 3000.0
    assert r["AR->AR*"] == TRUE["AR->AR*"] and r["R->AR"] == TRUE["R->AR"]   # held
    assert fit.kinds["A2R->AR"] == "constrained" and fit.kinds["AR->AR*"] == "fixed"
    assert fit.constraints == {"A2R->AR": ("AR->R", 1.0), "AR*->A2R*": ("AR->A2R", 0.5)}
    # the fitted scheme carries exactly those k0 and keeps the statistical factors
    by = {f"{t.src}->{t.dst}": t.rate for t in fit.scheme.transitions}
    assert by["A2R->AR"].k0 == r["AR->R"] and by["A2R->AR"].factor == 2
    assert by["R->AR"].factor == 2 and by["R->AR"].ligand == "agonist"
    idx = {s: i for i, s in enumerate(CH82.states)}
    fwd, bwd = _cycle_products(fit.scheme.q_matrix(agonist=1 * uM), idx, CYCLE)
    assert fwd == pytest.approx(bwd, rel=1e-10, abs=0)
    # a constrained rate's SE is its target's (same ln k0), the fixed ones have none
    assert fit.se["A2R->AR"] == pytest.approx(fit.se["AR->R"], rel=1e-12)
    assert "AR->AR*" not in fit.se
    assert fit.loglik == pytest.approx(_loglik(fit.scheme, data2), rel=1e-12, abs=0)
    assert fit.converged, fit.message
    # per-set t_crit (third element) overrides t_crit; mr=[...] chooses the MR-set rate
    fit2 = fitting.fit_hjc(CH82, [data2[1] + (T_CRIT,)], t_res=T_RES, free=["A2R*->A2R"],
                           mr=["AR->AR*"], max_evaluations=60)
    assert fit2.t_crit == (T_CRIT,) and fit2.kinds["AR->AR*"] == "mr"
    fwd, bwd = _cycle_products(fit2.scheme.q_matrix(agonist=1 * uM), idx, CYCLE)
    assert fwd == pytest.approx(bwd, rel=1e-10, abs=0)


def test_singular_hessian_warns():
    # two shut states with identical exit rates: the likelihood depends only on the sum of
    # the two shutting rates, so the Hessian has a zero eigenvalue
    S = kc.Scheme(["O", "C1", "C2"], [("O", "C1", 300.0), ("O", "C2", 200.0),
                                      ("C1", "O", 1000.0), ("C2", "O", 1000.0)],
                  conductance={"O": 50e-12}, name="parallel")
    log = kc.simulate_events(S, kc.Step(5.0), rng=3, initial=th.equilibrium(S))
    g = ka.Record.from_events(log).resolve(50 * us).hjc_groups()
    with pytest.warns(RuntimeWarning, match="singular"):
        fit = fitting.fit_hjc(S, (g, {}), t_res=50 * us, free=["O->C1", "O->C2"])
    assert math.isnan(fit.se["O->C1"]) and np.all(np.isnan(fit.correlation))
    assert fit.rates["O->C1"] + fit.rates["O->C2"] == pytest.approx(500, rel=0.1)


def test_derived_from_fixed_rates_has_no_se_and_a_box_bound_is_reported():
    """Review: a constrained rate whose partner is fixed was given SE 0 (its row of the
    parameter map is zero); a rate the data do not bound ran to the search box and L-BFGS-B
    reported success there."""
    S = kc.Scheme(["O", "C1", "C2"], [("O", "C1", 300.0), ("C1", "O", 1000.0),
                                      ("O", "C2", 20.0), ("C2", "O", 2.0)],
                  conductance={"O": 50e-12}, name="two shut")
    log = kc.simulate_events(S, kc.Step(20.0), rng=5, initial=th.equilibrium(S))
    g = ka.Record.from_events(log).resolve(50 * us).hjc_groups()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = fitting.fit_hjc(S, (g, {}), t_res=50 * us, free=["O->C1", "C1->O"],
                              fixed=["O->C2"], constrain={"C2->O": ("O->C2", 0.1)}, mr=False)
    assert fit.kinds["C2->O"] != "free" and fit.rates["C2->O"] == pytest.approx(2.0, rel=1e-12)
    assert "C2->O" not in fit.se and "O->C1" in fit.se  # derived from a fixed rate: no SE
    # a rate with nothing to bound it within a tiny box: warned, not converged
    with pytest.warns(RuntimeWarning, match="search box"):
        fit = fitting.fit_hjc(S, (g, {}), t_res=50 * us, free=["O->C1", "C1->O"], mr=False,
                              start={"O->C1": 30.0}, box=1.5)
    assert not fit.converged and "search box" in fit.message


# ------------------------------------------------------------------ 4. validation

def test_validation_errors():
    g = [np.array([1e-3, 2e-3, 1e-3]), np.array([2e-3])]
    d = (g, {"agonist": 1 * uM})
    fit = fitting.fit_hjc

    def bad(match, exc=ValueError, data=d, scheme=CH82, **kw):
        with pytest.raises(exc, match=match):
            fit(scheme, data, t_res=T_RES, **kw)

    bad("unknown transition 'A->B'", free=["A->B"])
    bad("unknown transition 'A->B'", fixed=["A->B"])
    bad("unknown transition 'A->B'", fixed={"A->B": 1.0})
    bad("unknown transition 'A->B'", constrain={"A->B": "AR->R"})
    bad("unknown transition 'X->Y'", constrain={"AR->R": ("X->Y", 1.0)})
    bad("unknown transition 'A->B'", start={"A->B": 1.0})
    bad("unknown transition 'A->B'", mr=["A->B"])
    bad("'AR->R' is both free and fixed", free=["AR->R"], fixed=["AR->R"])
    bad("'AR->R' is both free and constrained", free=["AR->R"],
        constrain={"AR->R": "A2R->AR"})
    bad("'AR->R' is both fixed and constrained", fixed=["AR->R"],
        constrain={"AR->R": "A2R->AR"})
    bad("listed twice", free=["AR->R", "AR->R"])
    bad("loop: A2R->AR -> AR->R -> A2R->AR",
        constrain={"A2R->AR": "AR->R", "AR->R": "A2R->AR"})
    bad("loop", constrain={"A2R*->AR*": "AR->AR*"}, mr=["AR->AR*"])  # MR-set via its cycle
    bad("constrained to itself", constrain={"AR->R": "AR->R"})
    bad("factor must be > 0", constrain={"AR->R": ("A2R->AR", -1.0)})
    bad("'A2R\\*->AR\\*' is set by microscopic reversibility and also fixed",
        fixed=["A2R*->AR*"])
    bad("'A2R\\*->AR\\*' is free but set by microscopic reversibility", free=["A2R*->AR*"])
    bad("1 independent cycle", mr=["AR->AR*", "A2R->AR"])
    bad("disconnects|different cycle", mr=["AR->R"])        # a bridge closes no cycle
    bad("no free parameter", fixed=[k for k in TRUE if k != "A2R*->AR*"])
    bad("not free", free=["AR->R"], start={"A2R->AR": 10.0})
    bad("start\\['AR->R'\\] must be > 0", free=["AR->R"],
        start={"AR->R": 0.0})
    bad("method must be one of", method="newton")
    bad("data is empty", data=[])
    bad("data\\[0\\] must be", TypeError, data=[(g, 1e-6)])
    bad("data\\[0\\]: .*unknown ligand", data=[(g, {"glutamate": 1e-6})])
    bad("data\\[0\\]: .*shorter than t_res", data=[([np.array([1e-6])], {"agonist": 1e-6})])
    bad("must be a ketacore Scheme", TypeError, scheme=CH82.q_matrix(agonist=1e-6))
    # a rate whose ligand is absent from every data set cannot be fitted
    S = kc.Scheme(["C", "O", "CB"], [("C", "O", kc.rate(1e7, "a")), ("O", "C", 100.0),
                                     ("C", "CB", kc.rate(1e6, "b")), ("CB", "C", 10.0)],
                  conductance={"O": 50e-12}, name="two ligands")
    bad("'C->CB' does not enter the Q matrix", scheme=S, data=(g, {"a": 1e-6}),
        free=["O->C", "C->CB"])
    # MR impossible: a cycle with an irreversible step
    S2 = kc.Scheme(["A", "B", "C"], [("A", "B", 1.0), ("B", "A", 1.0), ("B", "C", 1.0),
                                     ("C", "B", 1.0), ("C", "A", 1.0)],
                   conductance={"A": 50e-12})
    bad("'A->C'", scheme=S2, data=(g, {}))
    bad("no cycle", scheme=kc.Scheme(["C", "O"], [("C", "O", 1.0), ("O", "C", 1.0)],
                                     conductance={"O": 5e-11}), data=(g, {}), mr=["C->O"])


def _ch82_with(**by_key):
    """CH82 with some rates' voltage/temperature factors replaced: {"A->B": {"q10": 3.0}}."""
    from dataclasses import replace
    trans = [(t.src, t.dst, replace(t.rate, **by_key.get(f"{t.src}->{t.dst}", {})))
             for t in CH82.transitions]
    return kc.Scheme(CH82.states, trans, conductance=dict(zip(CH82.states, CH82.conductance)),
                     name="ch82 variant")


# the gating steps of both liganded levels, as they lie on CH82's one cycle
_OPEN = ("AR->AR*", "A2R->A2R*")
_SHUT = ("AR*->AR", "A2R*->A2R")


def test_mr_holds_where_voltage_and_temperature_factors_cancel(data2):
    """MR is imposed on k0 x factor.  With the same voltage dependence and Q10 on both liganded
    levels' opening (z_delta +0.3, Q10 3) and shutting (z_delta -0.3, Q10 2) the factors cancel
    around the cycle, so MR must hold at every V and T; fit_hjc used to refuse any voltage- or
    temperature-dependent rate on an MR cycle.  Factors that do not cancel are refused."""
    f = {k: {"z_delta": 0.3, "q10": 3.0} for k in _OPEN}
    f.update({k: {"z_delta": -0.3, "q10": 2.0} for k in _SHUT})
    S = _ch82_with(**f)
    # (the records come from plain CH82: the fit only has to run; what is checked is MR at other
    # voltages and temperatures than the records')
    fit = fitting.fit_hjc(S, data2, t_res=T_RES, t_crit=T_CRIT, free=["A2R->AR", "AR*->AR"],
                          max_evaluations=80)
    assert fit.kinds["A2R*->AR*"] == "mr"
    for cond in ({"V": -0.1, "temperature": 280.0}, {"V": 0.06, "temperature": 310.0}):
        assert th.is_reversible(fit.scheme, rtol=1e-9, agonist=1 * uM, **cond)
        assert not th.is_reversible(_ch82_with(**{"AR->AR*": {"z_delta": 0.3, "q10": 3.0}}),
                                    agonist=1 * uM, **cond)

    def refused(match, **by_key):
        with pytest.raises(ValueError, match=match):
            fitting.fit_hjc(_ch82_with(**by_key), data2, t_res=T_RES, free=["A2R->AR"])
    refused(r"has Q10s, Q10 reference temperatures", **{"AR->AR*": {"q10": 3.0}})
    refused(r"voltage dependences \(z_delta\)", **{"A2R->A2R*": {"z_delta": 0.3}})
    refused(r"Q10 reference temperatures", **{"AR->AR*": {"q10": 3.0},
                                              "A2R->A2R*": {"q10": 3.0, "t_ref": 303.15},
                                              "AR*->AR": {"q10": 3.0}, "A2R*->A2R": {"q10": 3.0}})
    refused(r"extra voltage slopes \(vk\)", **{"AR->AR*": {"vk": 0.05}})


# ------------------------------------------------------------------ 5. slow: more data, more rates

@pytest.mark.slow
def test_recovery_ch82_three_concentrations_eight_rates():
    # 0.1, 1 and 10 uM; every rate free except k*+2 (fixed) and k*-2 (MR)
    data = [(_groups(0.1 * uM, 1000.0, 21), {"agonist": 0.1 * uM}),
            (_groups(1 * uM, 100.0, 22), {"agonist": 1 * uM}),
            (_groups(10 * uM, 20.0, 23), {"agonist": 10 * uM})]
    free = [k for k in TRUE if k not in ("AR*->A2R*", "A2R*->AR*")]
    rng = np.random.default_rng(5)
    start = {k: TRUE[k] * float(rng.choice([0.4, 0.5, 2.0, 2.5])) for k in free}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fit = fitting.fit_hjc(CH82, data, t_res=T_RES, t_crit=T_CRIT, free=free, start=start)
    assert fit.converged, fit.message
    assert fit.n_free == 8
    _assert_recovered(fit, CH82, data, free + ["A2R*->AR*"])


# ------------------------------------------------------ review (eighth session): reporting
def test_unconverged_fit_warns(data2):
    """A fit stopped by max_evaluations returned converged=False without a word (fit_mixture
    warns); it now warns with the optimiser's message."""
    with pytest.warns(RuntimeWarning, match="did not converge"):
        fit = fitting.fit_hjc(CH82, data2[:1], t_res=T_RES, t_crit=T_CRIT, free=["A2R*->A2R"],
                              start={"A2R*->A2R": 2000.0}, max_evaluations=5)
    assert not fit.converged and "evaluations" in fit.message
    # with 20 evaluations Nelder-Mead converges and no evaluations are left for L-BFGS-B: that fit
    # is converged (it was reported as not, only because the second stage did not run)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fit = fitting.fit_hjc(CH82, data2[:1], t_res=T_RES, t_crit=T_CRIT, free=["A2R*->A2R"],
                              start={"A2R*->A2R": 2000.0}, max_evaluations=20)
    assert "L-BFGS-B: not run" in fit.message and fit.converged


def test_reporting_of_mr_flags_loops_and_missing_ligands(data2):
    g = data2[0][0]
    # numpy's bool is a bool (it read "got bool")
    fit = fitting.fit_hjc(CH82, data2, t_res=T_RES, t_crit=T_CRIT, free=["A2R->AR"], mr=np.True_,
                          max_evaluations=200)
    assert fit.kinds["A2R*->AR*"] == "mr"
    # a constraint that runs into the MR-set rate says so
    with pytest.raises(ValueError, match=r"loop.*'A2R\*->AR\*' is set by microscopic reversibility"):
        fitting.fit_hjc(CH82, data2, t_res=T_RES, free=["A2R*->A2R"],
                        constrain={"A2R->AR": "A2R*->AR*"})
    # the agonist left out: the message names it (it said only "zero entry flux")
    with pytest.raises(ValueError, match=r"ligand 'agonist' is 0 or not given"):
        th.hjc_loglik(CH82, g, t_res=T_RES)
    with pytest.raises(ValueError, match=r"data\[0\].*ligand 'agonist' is 0 or not given"):
        fitting.fit_hjc(CH82, [(g, {})], t_res=T_RES, free=["A2R->AR"])
    with pytest.raises(ValueError, match=r"ligand 'agonist' is 0 or not given"):
        th.dwell_times(CH82, "open")


# ------------------------------------------------------------- likelihood intervals
# Oracles: the public hjc_loglik at each end (deterministic: the end is where ln L has fallen by
# m, maximised over the other free rates by an independent 1-D optimiser), nesting and the
# profile-versus-slice inequality (a profile lies above any slice, so its interval contains the
# slice's); the quadratic comparison is asymptotic (checked loosely, 25 % of the half-width,
# on a fixed record of 247 intervals where the two agree to ~1 %).

@pytest.fixture(scope="module")
def data_small():
    return [(_groups(1 * uM, 3.0, 21), {"agonist": 1 * uM})]


def _with(scheme, **k0):
    """scheme with the k0 of some transitions ("SRC->DST") replaced."""
    from dataclasses import replace
    by = {f"{t.src}->{t.dst}": t for t in scheme.transitions}
    return scheme.with_rates(**{k: replace(by[k].rate, k0=v) for k, v in k0.items()})


def test_every_objective_evaluation_equals_the_public_hjc_loglik(monkeypatch, data_small):
    """fit_hjc's objective skips hjc_loglik's argument checks (done once at the starting
    rates): at every rate vector a fit visits, its ln L equals the public function's on the
    same Q, bit for bit (CHS vectors, and equilibrium start vectors with exact_intervals=3)."""
    real = th._hjc_loglik_checked
    seen, inside = [], [False]

    def checked(Q, a, f, tau, tc, n_exact, gs, hint=lambda: ""):
        try:
            v = real(Q, a, f, tau, tc, n_exact, gs, hint)
        except ValueError as exc:      # the objective takes it as +inf; record it too
            v = repr(exc)
        if not inside[0]:
            inside[0] = True
            try:
                pub = th.hjc_loglik(Q, gs, t_res=tau, t_crit=tc, open=[0, 1],
                                    exact_intervals=n_exact)
            except ValueError as exc:
                pub = repr(exc)
            finally:
                inside[0] = False
            seen.append((v, pub, n_exact, tc))
        if isinstance(v, str):
            raise ValueError(v)
        return v
    monkeypatch.setattr(th, "_hjc_loglik_checked", checked)
    fitting.fit_hjc(CH82, data_small, t_res=T_RES, t_crit=T_CRIT, free=["AR->R"])
    with warnings.catch_warnings():   # (without t_crit this one rate is poorly determined)
        warnings.simplefilter("ignore", RuntimeWarning)
        fitting.fit_hjc(CH82, data_small, t_res=T_RES, free=["AR->R"], exact_intervals=3)
    assert len(seen) > 20 and {(n, tc) for _, _, n, tc in seen} == {(2, T_CRIT), (3, None)}
    assert all(v == pub for v, pub, _, _ in seen)


def test_likelihood_interval_of_one_rate_is_where_lnl_falls_by_m(data_small):
    """k-1 (AR->R, outside the MR cycle) alone free: the profile is ln L itself, so each end
    is where the public hjc_loglik of the fitted scheme with that k-1 is ln L_max - m."""
    k = "AR->R"
    fit = fitting.fit_hjc(CH82, data_small, t_res=T_RES, t_crit=T_CRIT, free=[k])
    lo, hi = fit.likelihood_intervals(m=2.0, xtol=1e-7)[k]
    assert lo < fit.rates[k] < hi
    for end in (lo, hi):
        assert _loglik(_with(fit.scheme, **{k: end}), data_small) == pytest.approx(fit.loglik - 2.0, abs=1e-5)
    lo5, hi5 = fit.likelihood_intervals(m=0.5, which=k)[k]
    assert lo < lo5 < fit.rates[k] < hi5 < hi
    z = fit.se[k] / fit.rates[k]
    for mm, (a, b) in ((2.0, (lo, hi)), (0.5, (lo5, hi5))):
        half = math.sqrt(2 * mm) * z
        assert abs(math.log(fit.rates[k] / a) - half) < 0.25 * half
        assert abs(math.log(b / fit.rates[k]) - half) < 0.25 * half


def test_profile_interval_maximises_over_the_other_rate_and_contains_the_slice(data_small):
    """Two free rates (k-1 and alpha2, MR setting k*-2): at each end of k-1's interval, a fit
    of alpha2 alone with k-1 held there (fit_hjc, fixed=) reaches ln L_max - m; and the slice
    interval (alpha2 held at its estimate, ends found on the public hjc_loglik) lies inside."""
    from scipy import optimize as opt
    k, other = "AR->R", "A2R*->A2R"
    fit = fitting.fit_hjc(CH82, data_small, t_res=T_RES, t_crit=T_CRIT, free=[k, other])
    iv = fit.likelihood_intervals(m=2.0)
    assert set(iv) == {k, other}
    lo, hi = iv[k]
    for end in (lo, hi):
        held = fitting.fit_hjc(fit.scheme, data_small, t_res=T_RES, t_crit=T_CRIT, free=[other],
                               fixed={k: end})
        assert held.loglik == pytest.approx(fit.loglik - 2.0, abs=2e-3)
    f = lambda x: _loglik(_with(fit.scheme, **{k: math.exp(x)}), data_small) - (fit.loglik - 2.0)
    x0 = math.log(fit.rates[k])
    s_lo = math.exp(opt.brentq(f, x0 - 2.0, x0, xtol=1e-6))
    s_hi = math.exp(opt.brentq(f, x0, x0 + 2.0, xtol=1e-6))
    assert lo <= s_lo * (1 + 1e-3) and s_hi <= hi * (1 + 1e-3)
    for a, b in iv.values():
        assert 0 < a < b


def test_likelihood_interval_open_end_not_at_maximum_and_validation(data_small):
    k = "AR->R"
    mle = fitting.fit_hjc(CH82, data_small, t_res=T_RES, t_crit=T_CRIT, free=[k]).rates[k]
    fit = fitting.fit_hjc(CH82, data_small, t_res=T_RES, t_crit=T_CRIT, free=[k], start={k: mle},
                          box=1.05)  # ln L falls by far less than 50 at the box edges
    with pytest.warns(RuntimeWarning, match="end of 'AR->R' is open"):
        lo, hi = fit.likelihood_intervals(m=50.0)[k]
    assert math.isnan(lo) and math.isnan(hi)
    with pytest.warns(RuntimeWarning):  # stopped after 2 evaluations: not at the maximum
        early = fitting.fit_hjc(CH82, data_small, t_res=T_RES, t_crit=T_CRIT, free=[k],
                                start={k: TRUE[k] * 3}, max_evaluations=2, method="nelder-mead")
    with pytest.warns(RuntimeWarning, match="not at the maximum"):
        early.likelihood_intervals(m=2.0)
    with pytest.raises(ValueError, match="m must be"):
        fit.likelihood_intervals(m=0.0)
    with pytest.raises(ValueError, match="'R->AR' is fixed: it has no interval"):
        fit.likelihood_intervals(which="R->AR")
    with pytest.raises(ValueError, match="'A2R\\*->AR\\*' is mr but set from fixed rates only"):
        fit.likelihood_intervals(which="A2R*->AR*")   # (its cycle holds no free rate here)
    with pytest.raises(ValueError, match="unknown transition 'X->Y'"):
        fit.likelihood_intervals(which=["X->Y"])
    with pytest.raises(ValueError, match="max_evaluations"):
        fit.likelihood_intervals(max_evaluations=0)
    from dataclasses import replace
    with pytest.raises(ValueError, match="carries no likelihood"):
        replace(fit, _profile=None).likelihood_intervals()
    with pytest.raises(ValueError, match="not those of the fit"):
        replace(fit, rates={**fit.rates, k: 2 * fit.rates[k]}).likelihood_intervals()
    with pytest.raises(TypeError, match="got bytes"):
        fit.likelihood_intervals(which=b"AR->R")


def test_likelihood_interval_of_an_mr_set_rate(data_small):
    """k*-2 (A2R*->AR*), set by MR from alpha2 and beta2 (both free, with k-1): its profile holds
    k*-2 and maximises over the free directions that keep it.  Oracle: the same constraint
    surface with MR setting alpha2 instead, k*-2 fixed at each end and beta2, k-1 fitted
    (fit_hjc, an independent optimisation) reaches ln L_max - m; the interval contains the
    fitted value and its width agrees with the delta-method SE to 25 % of the half-width."""
    k, free = "A2R*->AR*", ["A2R*->A2R", "A2R->A2R*", "AR->R"]
    fit = fitting.fit_hjc(CH82, data_small, t_res=T_RES, t_crit=T_CRIT, free=free)
    assert fit.kinds[k] == "mr"
    lo, hi = fit.likelihood_intervals(m=2.0, which=k)[k]
    assert lo < fit.rates[k] < hi
    for end in (lo, hi):
        held = fitting.fit_hjc(fit.scheme, data_small, t_res=T_RES, t_crit=T_CRIT, free=free[1:],
                               fixed={k: end}, mr=["A2R*->A2R"])
        assert held.loglik == pytest.approx(fit.loglik - 2.0, abs=2e-3)
    half = 2.0 * fit.se[k] / fit.rates[k]
    assert abs(math.log(fit.rates[k] / lo) - half) < 0.25 * half
    assert abs(math.log(hi / fit.rates[k]) - half) < 0.25 * half


def test_profile_of_a_combination_near_the_search_box():
    """The profile of a derived rate (ln k0 = theta1 + theta2) on a toy objective, with the
    search box binding: the plane theta1 + theta2 = x slides out of the warm start's reach as x
    grows, and the start must be moved into the box (it was not: both ends came out open, NaN,
    "cannot be evaluated").  Oracles: a brute-force profile over the box (1.6896 for the second
    case, found by bisection on a 20001-point grid of theta1) and, for a quadratic in the sum
    alone, the exact ends +-4."""
    class Obj:
        n_eval = 0

        def __init__(self, f):
            self.f = f

        def __call__(self, th):
            self.n_eval += 1
            return self.f(np.asarray(th, float))

    def interval(f, theta, lo, hi, var):
        prof = fitting._Profile(Obj(f), theta, f(np.asarray(theta, float)), np.array(lo, float),
                                np.array(hi, float), np.eye(2) * var, ("f1", "f2"), ("f1", "f2", "d"),
                                np.zeros(3), np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return [math.log(v) for v in prof.interval("d", 2.0, 1e-6, 20000)]

    quad = lambda th: 0.5 * ((th[0] + th[1]) / 2) ** 2
    for var in (2.0, 0.02):
        np.testing.assert_allclose(interval(quad, [0.0, 0.0], [-1, -10], [1, 10], var), [-4, 4], atol=1e-5)
    g = lambda th: 0.5 * ((th[0] + th[1]) / 0.9) ** 2 + 0.5 * (th[0] - th[1] - 1) ** 2
    t1 = np.linspace(-1, 1, 20001)

    def brute(x):  # min over the box of g on theta1 + theta2 = x, minus g at the optimum
        t2 = x - t1
        ok = (t2 >= -1) & (t2 <= 1)
        return g((t1[ok], t2[ok])).min() - g((0.5, -0.5))
    a, b = 1.5, 2.0
    for _ in range(40):
        c = 0.5 * (a + b)
        a, b = (c, b) if brute(c) < 2.0 else (a, c)
    for var in (0.02, 0.125):
        lo, hi = interval(g, [0.5, -0.5], [-1, -1], [1, 1], var)
        assert hi == pytest.approx(a, abs=2e-4) and lo == pytest.approx(-a, abs=2e-4)


def test_likelihood_interval_end_where_the_likelihood_cannot_be_evaluated():
    """CH82 at t_res = 1.8 ms: raising beta2 soon makes t_res x the fastest rate exceed
    theory.MAX_T_RES_RATE, where hjc_loglik refuses -- before ln L has fallen by m.  That end
    is open (NaN, warned as unevaluable), not taken as a fall of ln L (it was: a finite end at
    the refusal boundary, where ln L had fallen by 0.31).  Also: max_evaluations running out
    gives its own reason, and the warnings point at the caller."""
    c = 1 * uM
    log = kc.simulate_events(CH82, kc.Step(10.0, agonist=c), rng=3, initial=th.equilibrium(CH82, agonist=c))
    t_res = 1.8e-3
    groups = ka.Record.from_events(log).resolve(t_res).hjc_groups(10e-3)
    k = "A2R->A2R*"
    fit = fitting.fit_hjc(CH82, [(groups, {"agonist": c})], t_res=t_res, t_crit=10e-3, free=[k])
    with pytest.warns(RuntimeWarning, match="upper end of 'A2R->A2R\\*' is open.*cannot be evaluated") as rec:
        lo, hi = fit.likelihood_intervals(m=2.0)[k]
    assert all(w.filename == __file__ for w in rec)
    assert math.isnan(hi) and 0 < lo < fit.rates[k]
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        lo, hi = fit.likelihood_intervals(m=2.0, max_evaluations=2)[k]
    assert math.isnan(lo) and math.isnan(hi)
    msgs = [str(w.message) for w in rec]
    assert any("lower end" in x and "max_evaluations was reached" in x for x in msgs), msgs
    assert not any("do not bound" in x for x in msgs)


# ------------------------------------------------------------------ 6. one resolution per data set
# Oracles: the public hjc_loglik of each set at its own t_res (deterministic); the fitted point
# maximises that sum (deterministic, given convergence to gtol 1e-3 per unit ln k0, far below
# the O(1e-2) fall a 1 % step in ln k0 causes); the likelihood-ratio statistic against the true
# rates below chi2_2(0.9999) (failure probability 1e-4 for a fresh seed).

FREE2 = ["AR->R", "A2R*->A2R"]   # k-1 and alpha2 (MR sets k*-2)
RES2 = (40 * us, 20 * us)


def _groups_at(c, t_end, seed, t_res, t_crit=T_CRIT):
    log = kc.simulate_events(CH82, kc.Step(t_end, agonist=c), rng=seed,
                             initial=th.equilibrium(CH82, agonist=c))
    return ka.Record.from_events(log).resolve(t_res).hjc_groups(t_crit)


@pytest.fixture(scope="module")
def data_two_res():
    """1 uM resolved at 40 us and 0.3 uM at 20 us (as records from two patches)."""
    return [(_groups_at(1 * uM, 3.0, 41, RES2[0]), {"agonist": 1 * uM}),
            (_groups_at(0.3 * uM, 10.0, 42, RES2[1]), {"agonist": 0.3 * uM})]


def _loglik_res(scheme, data, t_res, t_crit=T_CRIT):
    return sum(th.hjc_loglik(scheme, g, t_res=r, t_crit=t_crit, **c) for (g, c), r in zip(data, t_res))


def test_each_data_set_is_fitted_at_its_own_resolution(data_two_res):
    d = data_two_res
    # one resolution for both would be the coarser one, which the 20 us record cannot be
    # analysed at (it has resolved intervals shorter than 40 us)
    with pytest.raises(ValueError, match="data\\[1\\]: .*shorter than t_res"):
        fitting.fit_hjc(CH82, d, t_res=RES2[0], t_crit=T_CRIT, free=FREE2)
    fit = fitting.fit_hjc(CH82, d, t_res=list(RES2), t_crit=T_CRIT, free=FREE2)
    assert fit.converged, fit.message
    assert fit.t_res == RES2 and isinstance(fit.t_res, tuple)
    assert fit.loglik == pytest.approx(_loglik_res(fit.scheme, d, RES2), rel=1e-12, abs=1e-9)
    for k in FREE2:   # a maximum of the per-set sum: a 1 % step either way lowers it
        for f in (0.99, 1.01):
            assert _loglik_res(_with(fit.scheme, **{k: fit.rates[k] * f}), d, RES2) < fit.loglik
    l_true = _loglik_res(CH82, d, RES2)
    assert l_true <= fit.loglik + 1e-6
    assert 2 * (fit.loglik - l_true) < stats.chi2.ppf(0.9999, 2)
    assert "40, 20 us (per data set)" in fit.summary()
    # the profile interval of k-1 (alone free) ends where the per-set sum has fallen by m
    k = "AR->R"
    one = fitting.fit_hjc(CH82, d, t_res=np.array(RES2), t_crit=T_CRIT, free=[k])
    lo, hi = one.likelihood_intervals(m=2.0, xtol=1e-7)[k]
    for end in (lo, hi):
        assert _loglik_res(_with(one.scheme, **{k: end}), d, RES2) == pytest.approx(one.loglik - 2.0, abs=1e-5)


def test_one_resolution_given_per_set_or_for_all_is_the_same_fit(data_small):
    a = fitting.fit_hjc(CH82, data_small, t_res=T_RES, t_crit=T_CRIT, free=["AR->R"])
    b = fitting.fit_hjc(CH82, data_small, t_res=(T_RES,), t_crit=T_CRIT, free=["AR->R"])
    assert a.rates == b.rates and a.loglik == b.loglik and a.n_evaluations == b.n_evaluations
    assert isinstance(a.t_res, float) and a.t_res == T_RES and b.t_res == (T_RES,)
    assert "t_res = 25 us\n" in a.summary() and "t_res = 25 us (per data set)\n" in b.summary()


def test_per_set_resolution_validation():
    g = [np.array([1e-3, 2e-3, 1e-3]), np.array([2e-3])]
    d = [(g, {"agonist": 1 * uM}), (g, {"agonist": 2 * uM})]
    fit = fitting.fit_hjc
    with pytest.raises(ValueError, match="t_res gives 3 resolution\\(s\\) for 2 data set\\(s\\)"):
        fit(CH82, d, t_res=[T_RES] * 3)
    with pytest.raises(ValueError, match="t_res gives 0"):
        fit(CH82, d, t_res=[])
    with pytest.raises(ValueError, match="t_res gives 3 resolution"):  # any iterable is per set
        fit(CH82, d, t_res=(r for r in [T_RES] * 3))
    with pytest.raises(TypeError, match="t_res\\[1\\] must be a resolution in s, got list"):
        fit(CH82, d, t_res=[T_RES, [T_RES]])
    with pytest.raises(TypeError, match="t_res must be a resolution in s or a sequence"):
        fit(CH82, d, t_res="25us")
    with pytest.raises(TypeError, match=r"t_res is required .*data\[0\] gives groups"):
        fit(CH82, d, t_res=None)
    with pytest.raises(ValueError, match="data\\[1\\]: .*t_res"):
        fit(CH82, d, t_res=[T_RES, -1.0])
    with pytest.raises(ValueError, match="data\\[0\\]: .*t_res"):
        fit(CH82, d, t_res=[math.nan, T_RES])


def test_records_as_data_carry_their_resolution():
    """A resolved Record may stand for its groups: fit_hjc takes its hjc_groups at the set's
    t_crit and its t_res (t_res may then be omitted), giving the same fit as the groups with
    the same t_res; a t_res that differs from the record's, an unresolved record, or groups
    without a t_res are refused."""
    log = kc.simulate_events(CH82, kc.Step(3.0, agonist=1 * uM), rng=21,
                             initial=th.equilibrium(CH82, agonist=1 * uM))
    raw = ka.Record.from_events(log)
    rec = raw.resolve(T_RES)
    k = "A2R*->A2R"
    by_groups = fitting.fit_hjc(CH82, [(rec.hjc_groups(T_CRIT), {"agonist": 1 * uM})], t_res=T_RES,
                                t_crit=T_CRIT, free=[k])
    by_record = fitting.fit_hjc(CH82, [(rec, {"agonist": 1 * uM})], t_crit=T_CRIT, free=[k])
    same_t_res = fitting.fit_hjc(CH82, (rec, {"agonist": 1 * uM}), t_res=T_RES, t_crit=T_CRIT, free=[k])
    for f in (by_record, same_t_res):
        assert f.rates[k] == by_groups.rates[k] and f.loglik == by_groups.loglik and f.t_res == T_RES
    # a per-set t_crit reaches the record's groups
    own = fitting.fit_hjc(CH82, [(rec, {"agonist": 1 * uM}, 10 * ms)], free=[k])
    ref = fitting.fit_hjc(CH82, [(rec.hjc_groups(10 * ms), {"agonist": 1 * uM}, 10 * ms)], t_res=T_RES, free=[k])
    assert own.loglik == ref.loglik
    # two records at their own resolutions
    rec2 = raw.resolve(40 * us)
    two = fitting.fit_hjc(CH82, [(rec, {"agonist": 1 * uM}), (rec2, {"agonist": 1 * uM})], t_crit=T_CRIT, free=[k])
    assert two.t_res == (T_RES, 40 * us)
    # equal to rounding (25 * us is 2.4999999999999998e-05): accepted, the record's value used
    rec_lit = raw.resolve(25e-6)
    lit = fitting.fit_hjc(CH82, [(rec_lit, {"agonist": 1 * uM})], t_res=25 * us, t_crit=T_CRIT, free=[k])
    assert lit.t_res == 25e-6 and lit.loglik == fitting.fit_hjc(CH82, [(rec_lit, {"agonist": 1 * uM})],
                                                                t_crit=T_CRIT, free=[k]).loglik
    # None stands for a Record's resolution in a per-set sequence
    mixed = fitting.fit_hjc(CH82, [(rec, {"agonist": 1 * uM}), (rec2.hjc_groups(T_CRIT), {"agonist": 1 * uM})],
                            t_res=[None, 40 * us], t_crit=T_CRIT, free=[k])
    assert mixed.t_res == (T_RES, 40 * us) and mixed.loglik == two.loglik
    with pytest.raises(TypeError, match=r"t_res\[1\] must be a resolution in s, got NoneType \(None stands"):
        fitting.fit_hjc(CH82, [(rec, {"agonist": 1 * uM}), (rec2.hjc_groups(T_CRIT), {"agonist": 1 * uM})],
                        t_res=[None, None], t_crit=T_CRIT, free=[k])
    with pytest.raises(ValueError, match=r"data\[0\]: the Record was resolved at t_res=2.5e-05 s "
                                         r"but fit_hjc was given t_res=2e-05 s"):
        fitting.fit_hjc(CH82, [(rec, {"agonist": 1 * uM})], t_res=20 * us, free=[k])
    short = ka.Record.from_events(kc.simulate_events(CH82, kc.Step(1e-4, agonist=1 * uM), rng=3)).resolve(T_RES)
    with pytest.raises(ValueError, match=r"data\[1\]: the Record gives no group"):
        fitting.fit_hjc(CH82, [(rec, {"agonist": 1 * uM}), (short, {"agonist": 1 * uM})], free=[k])
    with pytest.raises(ValueError, match=r"data\[0\]: the Record is not resolved"):
        fitting.fit_hjc(CH82, [(raw, {"agonist": 1 * uM})], free=[k])
    with pytest.raises(TypeError, match=r"t_res is required .* data\[1\] gives groups"):
        fitting.fit_hjc(CH82, [(rec, {"agonist": 1 * uM}), (rec.hjc_groups(), {"agonist": 1 * uM})],
                        free=[k])


def test_constraining_the_default_mr_rate_lets_mr_set_another():
    """constrain={"A2R*->AR*": "AR->R"} (the rate the default plan sets) was refused ("set by
    microscopic reversibility and also constrained"); the plan is now rebuilt so that MR sets
    the reverse of that connection, and the constraint and MR both hold exactly."""
    from ketacore.fitting import _Params
    p = _Params(CH82, None, None, {"A2R*->AR*": "AR->R"}, True, None)
    assert list(p.mr) == ["AR*->A2R*"] and p.cons == {"A2R*->AR*": ("AR->R", 1.0)}
    k = dict(zip(p.keys, p.k0(p.theta0 + 0.1)))
    assert k["A2R*->AR*"] == k["AR->R"]
    f = {f"{t.src}->{t.dst}": t.rate.factor for t in CH82.transitions}
    fwd = ["AR*->A2R*", "A2R*->A2R", "A2R->AR", "AR->AR*"]
    bwd = ["A2R*->AR*", "A2R->A2R*", "AR->A2R", "AR*->AR"]
    assert np.prod([k[x] * f[x] for x in fwd]) == pytest.approx(np.prod([k[x] * f[x] for x in bwd]), rel=1e-12)
