"""Least-squares fitting of rate constants to macroscopic currents:
``ketacore.fitting.fit_macroscopic``.

Oracles and failure probabilities (fixed seeds, so a run is reproducible; the probabilities are
those of a fresh seed failing for a correct implementation, under the asymptotic normality of
nonlinear least-squares estimates -- Bates & Watts 1988, ch. 2 -- which holds well at the
signal-to-noise ratios used here, CVs of a few %):

* noise-free data: the true rates are an exact zero of the residuals, so a converged fit
  recovers them to the optimiser's tolerance (asserted 1e-6 relative; deterministic);
* noisy data of known sigma: each estimate within 4 SE of the truth; P(|z| > 4) = 6.3e-5 per
  parameter, so <= 7 x 6.3e-5 = 4.4e-4 for the 7 parameters (union bound);
* coverage (slow): over 40 independent seeds, the count of |z| < 1.96 of each parameter is
  Binomial(40, 0.95); asserted >= 32, P(X <= 31) = 1.5e-4 per parameter, <= 7.6e-4 over the 5
  (union bound);
* MR holds on the fitted scheme, fixed and constrained rates are exact, the fitted scheme
  reproduces ``fitted`` through kc.solve: deterministic.
"""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from scipy import stats

import ketacore as kc
from ketacore import fitting
from ketacore.units import mV, ms, pS, uM

# ----------------------------------------------------------------------------- schemes

# binding, gating and desensitisation: R <-> AR <-> AR*, AR <-> AD
DES = kc.Scheme(["R", "AR", "AR*", "AD"],
                [("R", "AR", kc.rate(1e7, "glu")), ("AR", "R", 100.0),
                 ("AR", "AR*", 500.0), ("AR*", "AR", 200.0),
                 ("AR", "AD", 30.0), ("AD", "AR", 5.0)],
                conductance={"AR*": 50 * pS}, name="des4")
# binding and gating only (the fast scheme of the noise tests)
BG = kc.Scheme(["R", "AR", "AR*"],
               [("R", "AR", kc.rate(1e7, "glu")), ("AR", "R", 100.0),
                ("AR", "AR*", 500.0), ("AR*", "AR", 200.0)],
               conductance={"AR*": 50 * pS}, name="bg3")
# voltage-gated C <-> O <-> I, E_rev = +10 mV
KV = kc.Scheme(["C", "O", "I"],
               [("C", "O", kc.rate(200.0, z_delta=1.0)), ("O", "C", kc.rate(100.0, z_delta=-0.8)),
                ("O", "I", 20.0), ("I", "O", 4.0)],
               conductance={"O": 20 * pS}, e_rev=10 * mV, name="kv3")
# one cycle R - AR - AR* - R*, both open states conduct; reversible (0.8 = 10 200 100 / (500 500))
CYC = kc.Scheme(["R", "AR", "AR*", "R*"],
                [("R", "AR", kc.rate(1e7, "glu")), ("AR", "R", 100.0),
                 ("AR", "AR*", 500.0), ("AR*", "AR", 200.0),
                 ("R", "R*", 10.0), ("R*", "R", 500.0),
                 ("R*", "AR*", kc.rate(1e7, "glu")), ("AR*", "R*", 0.8)],
                conductance={"AR*": 50 * pS, "R*": 50 * pS}, name="cyc")


def _k0(scheme):
    return {f"{t.src}->{t.dst}": t.rate.k0 for t in scheme.transitions}


def _agonist(c, pulse=100 * ms, wash=100 * ms):
    return kc.Protocol([kc.Step(5 * ms), kc.Step(pulse, glu=c), kc.Step(wash)])


VSTEPS = kc.Protocol([kc.Step(5 * ms, V=-80 * mV), kc.Step(50 * ms, V=-20 * mV),
                      kc.Step(20 * ms, V=-80 * mV), kc.Step(50 * ms, V=40 * mV),
                      kc.Step(20 * ms, V=-80 * mV)])
DT = 0.5 * ms


def _record(scheme, protocol, n=300.0, dt=DT, observable="current"):
    r = kc.solve(scheme, protocol, dt)
    y = n * r.current if observable == "current" else r.open_probability
    return {"protocol": protocol, "time": r.time.copy(), "y": y}


def _start(scheme, factors):
    """Start values of the free rates: the truth times 2-3 (or / 2-3)."""
    return {k: v * f for (k, v), f in zip(_k0(scheme).items(), factors) if f is not None}


def _assert_exact(fit, scheme, n=None, rtol=1e-6):
    for k, v in _k0(scheme).items():
        assert fit.rates[k] == pytest.approx(v, rel=rtol), k
    if n is not None:
        assert fit.n_channels == pytest.approx(n, rel=rtol)
    assert fit.converged and fit.identifiable


# ----------------------------------------------------------------------------- 1. recovery


@pytest.fixture(scope="module")
def des_data():
    return [_record(DES, _agonist(c)) for c in (3 * uM, 30 * uM)]


@pytest.fixture(scope="module")
def des_fit(des_data):
    return fitting.fit_macroscopic(DES, des_data, start=_start(DES, [2.5, 0.4, 3, 0.5, 2, 0.35]))


def test_noise_free_binding_scheme_two_concentrations(des_fit):
    _assert_exact(des_fit, DES, n=300.0)
    assert des_fit.free == tuple(_k0(DES))
    assert des_fit.parameters == des_fit.free + ("n_channels",)
    assert des_fit.covariance.shape == (7, 7) and des_fit.dof == 2 * 411 - 7
    assert set(des_fit.se) == set(des_fit.free)


def test_noise_free_voltage_steps():
    data = [_record(KV, VSTEPS, n=1000.0, dt=0.2 * ms)]
    fit = fitting.fit_macroscopic(KV, data, start=_start(KV, [2.5, 0.4, 3, 0.4]))
    _assert_exact(fit, KV, n=1000.0)
    # (z_delta, e_rev and the rest of the rate laws are kept)
    assert [t.rate.z_delta for t in fit.scheme.transitions] == [1.0, -0.8, 0.0, 0.0]
    assert fit.scheme.e_rev == KV.e_rev


def test_fixed_n_and_single_record_forms():
    rec = _record(BG, _agonist(10 * uM), n=50.0)
    start = _start(BG, [2, 0.5, 2, 0.5])
    # a lone mapping, a lone tuple, a list of tuples: the same fit; N held at 50
    fits = [fitting.fit_macroscopic(BG, d, start=start, n_channels=50.0)
            for d in (rec, (rec["protocol"], rec["time"], rec["y"]),
                      [(rec["protocol"], rec["time"], rec["y"])])]
    for f in fits:
        _assert_exact(f, BG)
        assert f.n_channels == 50.0 and f.n_channels_se is None
        assert f.parameters == f.free
    assert fits[0].rates == fits[1].rates == fits[2].rates


def test_non_uniform_times_are_evaluated_exactly():
    """Sample times on a grid with gaps (a decimated record) take the common step; a record
    whose own dt is given is solved on it."""
    rec = _record(BG, _agonist(10 * uM), n=50.0, dt=0.1 * ms)
    keep = np.r_[0:200:1, 200:2051:7]      # dense during the pulse, sparse after
    sparse = {"protocol": rec["protocol"], "time": rec["time"][keep], "y": rec["y"][keep]}
    fit = fitting.fit_macroscopic(BG, [sparse], start=_start(BG, [2, 0.5, 2, 0.5]))
    assert fit.dt[0] == pytest.approx(0.1 * ms, rel=1e-9)
    _assert_exact(fit, BG, n=50.0)
    # every 5th sample with an explicit finer grid: the same model values
    every5 = {"protocol": rec["protocol"], "time": rec["time"][::5], "y": rec["y"][::5],
              "dt": 0.1 * ms}
    fit5 = fitting.fit_macroscopic(BG, every5, start=_start(BG, [2, 0.5, 2, 0.5]))
    assert fit5.dt == (0.1 * ms,)
    _assert_exact(fit5, BG, n=50.0)


# ----------------------------------------------------------------------------- 2. noise


def _noisy(scheme, protocols, n, sigma, seed, dt=DT):
    rng = np.random.default_rng(seed)
    out = []
    for p in protocols:
        r = _record(scheme, p, n=n, dt=dt)
        r["y"] = r["y"] + rng.normal(0.0, sigma, r["y"].size)
        r["sigma"] = sigma
        out.append(r)
    return out


SIGMA = 5e-12                              # 5 pA against peaks of ~500 pA


def test_noisy_estimates_within_4_se():
    data = _noisy(DES, [_agonist(c) for c in (3 * uM, 30 * uM)], 300.0, SIGMA, seed=20240601)
    fit = fitting.fit_macroscopic(DES, data, start=_start(DES, [2.5, 0.4, 3, 0.5, 2, 0.35]))
    assert fit.converged and fit.weighted
    true = _k0(DES)
    for k in fit.free:                     # P(fail) <= 7 x 6.3e-5 (module docstring)
        assert abs(fit.rates[k] - true[k]) < 4 * fit.se[k], (k, fit.rates[k], fit.se[k])
    assert abs(fit.n_channels - 300.0) < 4 * fit.n_channels_se
    # chi2 of the weighted fit: chi2_dof, asserted within its 1e-4 two-sided quantiles
    assert stats.chi2.ppf(5e-5, fit.dof) < fit.chi2 < stats.chi2.ppf(1 - 5e-5, fit.dof)
    # unweighted (sigma estimated from the residuals): the same estimates, and SEs that
    # differ only by the factor s / sigma (deterministic given the data)
    bare = [{k: v for k, v in r.items() if k != "sigma"} for r in data]
    fu = fitting.fit_macroscopic(DES, bare, start=_start(DES, [2.5, 0.4, 3, 0.5, 2, 0.35]))
    assert not fu.weighted and math.isnan(fu.chi2)
    s = math.sqrt(fu.residual_variance)
    for k in fit.free:
        assert fu.rates[k] == pytest.approx(fit.rates[k], rel=1e-6)
        assert fu.se[k] == pytest.approx(fit.se[k] * s / SIGMA, rel=1e-4)
    # s^2 ~ sigma^2 chi2_dof / dof: within its 1e-4 two-sided quantiles
    lo, hi = (stats.chi2.ppf(q, fu.dof) / fu.dof for q in (5e-5, 1 - 5e-5))
    assert lo < fu.residual_variance / SIGMA ** 2 < hi


@pytest.mark.slow
def test_coverage_of_delta_method_intervals():
    protocols = [_agonist(c, pulse=50 * ms, wash=50 * ms) for c in (3 * uM, 30 * uM)]
    true = _k0(BG)
    start = _start(BG, [2, 0.5, 2, 0.5])
    inside = np.zeros(5, int)
    for seed in range(40):
        data = _noisy(BG, protocols, 300.0, 2e-12, seed=1000 + seed)   # CVs 1-10 %
        fit = fitting.fit_macroscopic(BG, data, start=start)
        z = [(fit.rates[k] - true[k]) / fit.se[k] for k in fit.free]
        z.append((fit.n_channels - 300.0) / fit.n_channels_se)
        inside += np.abs(np.array(z)) < 1.96
    # Binomial(40, 0.95): P(X <= 31) = 1.5e-4 per parameter (module docstring)
    assert stats.binom.cdf(31, 40, 0.95) < 2e-4
    assert np.all(inside >= 32), inside


# ----------------------------------------------------------------------------- 3. MR


def test_mr_constraints_and_fixed_rates_are_honoured():
    data = [_record(CYC, _agonist(c)) for c in (3 * uM, 30 * uM)]
    start = {"R->AR": 2.5e7, "AR->AR*": 200.0, "AR*->AR": 500.0, "R*->R": 200.0,
             "AR*->R*": 2.0}
    scheme = CYC.with_rates({"R->R*": 10.0, "AR->R": 300.0})  # (MR recomputes AR->R)
    fit = fitting.fit_macroscopic(scheme, data, fixed=["R->R*"],
                                  constrain={"R*->AR*": ("R->AR", 1.0)}, start=start, mr=True)
    assert fit.kinds == {"R->AR": "free", "AR->R": "mr", "AR->AR*": "free", "AR*->AR": "free",
                         "R->R*": "fixed", "R*->R": "free", "R*->AR*": "constrained",
                         "AR*->R*": "free"}
    assert fit.mr_cycles == {"AR->R": ("AR", "R", "R*", "AR*")}
    assert kc.theory.is_reversible(fit.scheme, rtol=1e-12, glu=1e-6)
    assert fit.rates["R->R*"] == 10.0                          # exactly
    assert fit.rates["R*->AR*"] == fit.rates["R->AR"]          # exactly
    assert "R->R*" not in fit.se and fit.se["AR->R"] > 0
    _assert_exact(fit, CYC, n=300.0)


def test_mr_set_with_factor_constraint_off_truth_still_reversible():
    """A constraint the truth does not obey: the fit is then a compromise, but MR and the
    constraint hold exactly on the fitted scheme whatever the rates."""
    data = [_record(CYC, _agonist(c)) for c in (3 * uM, 30 * uM)]
    fit = fitting.fit_macroscopic(CYC, data, fixed={"R->R*": 12.0},
                                  constrain={"R*->AR*": ("R->AR", 2.0)}, mr=["AR*->R*"])
    assert fit.kinds["AR*->R*"] == "mr"
    assert kc.theory.is_reversible(fit.scheme, rtol=1e-12, glu=1e-6)
    assert fit.rates["R->R*"] == 12.0
    assert fit.rates["R*->AR*"] == 2.0 * fit.rates["R->AR"]


# ----------------------------------------------------------------------------- 4. Po


def test_open_probability_without_n():
    data = [_record(DES, _agonist(c), observable="po") for c in (3 * uM, 30 * uM)]
    fit = fitting.fit_macroscopic(DES, data, start=_start(DES, [2.5, 0.4, 3, 0.5, 2, 0.35]),
                                  observable="open_probability")
    _assert_exact(fit, DES)
    assert fit.n_channels is None and fit.n_channels_se is None
    assert fit.parameters == fit.free and fit.observable == "open_probability"
    assert "N (channels)" not in fit.summary()


# ----------------------------------------------------------------------------- 5. refusals


def _good():
    return _record(BG, _agonist(10 * uM, pulse=10 * ms, wash=10 * ms), n=50.0)


def _with(**kw):
    r = _good()
    r.update(kw)
    return [r]


_T = _good()["time"]
BAD = [
    # (data, kwargs, exception, words the message must contain)
    ([], {}, ValueError, "data is empty"),
    (None, {}, TypeError, "data must be"),
    ("abc", {}, TypeError, "data must be"),
    ([42], {}, TypeError, "data[0] must be a mapping"),
    (_with(voltage=1), {}, ValueError, "data[0]: unknown key"),
    ([{"protocol": _good()["protocol"], "time": _T}], {}, ValueError, "missing ['y']"),
    (_with(protocol="step"), {}, TypeError, "data[0]['protocol']"),
    (_with(protocol=kc.Protocol([kc.Step(5 * ms), kc.Step(20 * ms, gly=1 * uM)])), {},
     ValueError, "data[0]['protocol']: protocol step 1 sets ligand 'gly'"),
    (_with(time=_T.reshape(-1, 1)), {}, ValueError, "data[0]['time'] must be 1-D"),
    (_with(time=[], y=[]), {}, ValueError, "data[0]['time'] is empty"),
    (_with(time=np.r_[_T[:-1], np.nan]), {}, ValueError, "data[0]['time'] must be finite"),
    (_with(time=_T - 1e-3), {}, ValueError, "must start at >= 0"),
    (_with(time=_T[::-1]), {}, ValueError, "strictly increasing"),
    (_with(time=_T + 1.0), {}, ValueError, "after the"),
    (_with(time=["a"] * _T.size), {}, TypeError, "data[0]['time']"),
    (_with(y=_good()["y"][:-1]), {}, ValueError, "data[0]['y'] must be 1-D with one value"),
    (_with(y=np.r_[_good()["y"][:-1], np.nan]), {}, ValueError, "data[0]['y'] must be finite"),
    (_with(sigma=0.0), {}, ValueError, "data[0]['sigma'] must be finite and > 0"),
    (_with(sigma=-1e-12), {}, ValueError, "data[0]['sigma'] must be finite and > 0"),
    (_with(sigma=np.ones(3)), {}, ValueError, "data[0]['sigma'] must be a scalar"),
    (_with(sigma=1e-12) + [_good()], {}, ValueError, "sigma: give it for every record"),
    (_with(dt=0.3 * ms), {}, ValueError, "not on the grid"),
    (_with(dt=-1.0), {}, ValueError, "data[0]['dt'] must be > 0"),
    (_with(time=[0.0, 1e-3, 1e-3 + 1e-3 / math.sqrt(2)], y=[0.0, 0.0, 0.0]), {}, ValueError,
     "give the record a 'dt'"),
    (_with(), {"observable": "po"}, ValueError, "observable must be one of"),
    (_with(), {"observable": None}, ValueError, "observable must be one of"),
    (_with(), {"n_channels": 0}, ValueError, "n_channels must be > 0"),
    (_with(), {"n_channels": -5.0}, ValueError, "n_channels must be > 0"),
    (_with(), {"n_channels": "auto"}, ValueError, "n_channels must be 'fit'"),
    (_with(), {"n_channels": True}, TypeError, "n_channels must be a real number"),
    (_with(), {"n_channels": 10.0, "observable": "open_probability"}, ValueError,
     "n_channels: observable='open_probability'"),
    (_with(), {"free": ["R->XX"]}, ValueError, "free: unknown transition 'R->XX'"),
    (_with(), {"fixed": ["AR->R"], "free": ["AR->R"]}, ValueError, "both free and fixed"),
    (_with(), {"start": {"R->AR": -1.0}}, ValueError, "start['R->AR'] must be > 0"),
    (_with(), {"constrain": {"AR->R": ("R->ZZ", 1.0)}}, ValueError, "unknown transition"),
    (_with(), {"mr": ["AR->R"]}, ValueError, "mr: the scheme has no cycle"),
    (_with(), {"box": 1.0}, ValueError, "box must be > 1"),
    (_with(), {"max_evaluations": 0}, ValueError, "max_evaluations must be a positive integer"),
    (_with(), {"tol": 0.0}, ValueError, "tol must be > 0"),
    (_with(time=_T[:2], y=[0.0, 0.0]), {"fixed": ["R->AR", "AR->R"]}, ValueError,
     "parameter(s) but only 2 samples"),
]


@pytest.mark.parametrize("data, kwargs, exc, words", BAD,
                         ids=[f"{i}:{b[3][:30]}" for i, b in enumerate(BAD)])
def test_refusals_before_any_solve(data, kwargs, exc, words, monkeypatch):
    def no_solve(*a, **k):
        raise AssertionError("kc.solve was called before the inputs were validated")
    monkeypatch.setattr(sys.modules["ketacore.solve"], "solve", no_solve)
    with pytest.raises(exc) as info:
        fitting.fit_macroscopic(BG, data, **kwargs)
    assert words in str(info.value)


def test_refusals_at_the_starting_rates():
    with pytest.raises(ValueError, match=r"data\[0\]: initial: unknown state"):
        fitting.fit_macroscopic(BG, _with(initial="Q"))
    # a current of the opposite sign to the data: N cannot start
    flipped = _with(y=-_good()["y"])
    with pytest.raises(ValueError, match="n_channels='fit'.*opposite sign"):
        fitting.fit_macroscopic(BG, flipped)
    # no agonist at all: the model current is zero
    flat = _with(protocol=kc.Protocol([kc.Step(25 * ms)]))
    with pytest.raises(ValueError, match="n_channels='fit'.*zero at every sample"):
        fitting.fit_macroscopic(BG, flat)
    with pytest.raises(TypeError, match="scheme must be"):
        fitting.fit_macroscopic(42, _with())


def test_non_identifiable_rates_are_flagged():
    """A drug step the protocols never apply: its two rates do not change the model."""
    drugged = kc.Scheme(["R", "AR", "AR*", "B"],
                        [*[(t.src, t.dst, t.rate) for t in BG.transitions],
                         ("AR*", "B", kc.rate(1e6, "drug")), ("B", "AR*", 1.0)],
                        conductance={"AR*": 50 * pS})
    data = [_record(BG, _agonist(c, pulse=20 * ms, wash=20 * ms)) for c in (3 * uM, 30 * uM)]
    with pytest.warns(RuntimeWarning, match="not identifiable"):
        fit = fitting.fit_macroscopic(drugged, data)
    assert not fit.identifiable
    assert set(fit.unidentified) == {"AR*->B", "B->AR*"}
    assert all(math.isnan(v) for v in fit.se.values())
    assert np.all(np.isnan(fit.covariance)) and np.all(np.isnan(fit.correlation))
    assert "NOT IDENTIFIABLE" in fit.summary()
    for k in ("R->AR", "AR->R", "AR->AR*", "AR*->AR"):      # the rest is still recovered
        assert fit.rates[k] == pytest.approx(_k0(BG)[k], rel=1e-6)


def test_non_identifiable_and_not_converged_says_why():
    """The seventeenth session's note: an unidentifiable fit that ran out of evaluations said
    only "did not converge ... raise max_evaluations", which cannot help there."""
    drugged = kc.Scheme(["R", "AR", "AR*", "B"],
                        [*[(t.src, t.dst, t.rate) for t in BG.transitions],
                         ("AR*", "B", kc.rate(1e6, "drug")), ("B", "AR*", 1.0)],
                        conductance={"AR*": 50 * pS})
    data = [_record(BG, _agonist(3 * uM, pulse=20 * ms, wash=20 * ms))]
    import warnings
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        fit = fitting.fit_macroscopic(drugged, data, start=_start(BG, [3, 0.3, 3, 0.3]),
                                      max_evaluations=5)
    msgs = [str(w.message) for w in rec if issubclass(w.category, RuntimeWarning)]
    assert not fit.converged and not fit.identifiable
    assert any("not identifiable" in m for m in msgs)
    why = [m for m in msgs if "did not converge" in m]
    assert len(why) == 1 and "will not help" in why[0] and "AR*->B" in why[0]
    assert "Raise max_evaluations" not in why[0]


def test_max_evaluations_stops_with_a_warning():
    data = [_good()]
    with pytest.warns(RuntimeWarning, match="did not converge"):
        fit = fitting.fit_macroscopic(BG, data, start=_start(BG, [3, 0.3, 3, 0.3]),
                                      max_evaluations=5)
    assert not fit.converged and "max_evaluations=5" in fit.message


# ----------------------------------------------------------------------------- 6. result


def test_fitted_scheme_reproduces_the_fit(des_fit, des_data):
    for rec, curve, resid, dt in zip(des_data, des_fit.fitted, des_fit.residuals, des_fit.dt):
        r = kc.solve(des_fit.scheme, rec["protocol"], dt)
        model = des_fit.n_channels * r.current
        np.testing.assert_array_equal(curve, model)            # the public path, exactly
        np.testing.assert_array_equal(resid, rec["y"] - curve)
        assert np.max(np.abs(model - rec["y"])) < 1e-6 * np.max(np.abs(rec["y"]))
    assert des_fit.rss == pytest.approx(sum(float(e @ e) for e in des_fit.residuals), rel=1e-12)
    assert des_fit.cost == 0.5 * des_fit.rss


def test_repr_and_summary(des_fit):
    text = repr(des_fit)
    assert "\n" not in text and len(text) < 200
    assert text.startswith("MacroscopicFit('des4'") and "converged=True" in text
    s = des_fit.summary()
    lines = s.splitlines()
    assert len(lines) == 2 + 1 + 6 + 1 + 1           # header, table head, rates, N, correlation
    assert all(len(line) < 200 for line in lines)
    assert lines[0].startswith("macroscopic current fit of des4")
    assert any(line.startswith("N (channels)") for line in lines)
    assert any(line.startswith("AR->AD") and "s^-1" in line for line in lines)
    assert des_fit.correlation.shape == (7, 7)
    np.testing.assert_allclose(np.diag(des_fit.correlation), 1.0)
    with pytest.raises(ValueError):                    # read-only arrays
        des_fit.covariance[0, 0] = 1.0


def test_public_names():
    assert "fit_macroscopic" in fitting.__all__ and "MacroscopicFit" in fitting.__all__
    assert kc.fitting.fit_macroscopic is fitting.fit_macroscopic
