"""Conveniences of the result objects a single-channel kineticist expects (review B, item 8).

* ``MixtureFit.summary()`` and ``MixtureFit.se_mean`` (delta method, checked against a
  finite-difference delta method computed here from the likelihood itself, and against the
  closed form ``tau / sqrt(n)`` of one exponential component);
* ``ConcentrationResponse.__repr__`` / ``.summary()`` (short: no 61-point arrays);
* ``critical_time`` / ``misclassification`` of an ``ApparentDwellTimes`` (its asymptotic
  mixture, decaying from t_res [HJC92]) for CH82 at 0.1 and 1 uM, t_res = 50 us;
* ``HJCFit.summary()`` with the number of groups and intervals, t_res and t_crit of each data
  set (and the fields ``n_groups``, ``n_intervals`` that carry them).

Every check is deterministic (fixed seeds, exact strings, exact or rounding-level equalities).
"""
from __future__ import annotations

import copy
import dataclasses
import math
import pickle

import numpy as np
import pytest

import ketacore as kc
from ketacore import analysis as ka
from ketacore import fitting
from ketacore import theory as th
from ketacore.theory import ConcentrationResponse, ExponentialMixture
from ketacore.units import ms, uM, us

CH82 = kc.models.get("ch82")


# ------------------------------------------------------------------ 1. MixtureFit

def _two_component_data(seed=1, n=5000, t_res=50e-6):
    rng = np.random.default_rng(seed)
    t = np.where(rng.random(n) < 0.7, rng.exponential(1e-4, n), rng.exponential(1e-2, n))
    return t[t >= t_res]


@pytest.fixture(scope="module")
def fit2():
    f = ka.fit_mixture(_two_component_data(), 2, t_res=50e-6)
    assert f.converged, f.message
    return f


def _nll(p, t, t_res, k):
    """-ln L of durations t >= t_res, mixture truncated at t_res, written out here (not the
    library's kernel): p = (tau_1..tau_k, a_1..a_{k-1}), a_k = 1 - sum."""
    taus = np.asarray(p[:k])
    areas = np.append(p[k:], 1.0 - np.sum(p[k:]))
    f = (areas / taus * np.exp(-t[:, None] / taus)).sum(axis=1)
    S = np.sum(areas * np.exp(-t_res / taus))
    return -(np.sum(np.log(f)) - t.size * math.log(S))


def _hessian(fun, p, rel=1e-4):
    p = np.asarray(p, float)
    m = p.size
    h = rel * np.abs(p)
    H = np.empty((m, m))
    for i in range(m):
        for j in range(m):
            def at(si, sj):
                q = p.copy()
                q[i] += si * h[i]
                q[j] += sj * h[j]
                return fun(q)
            H[i, j] = (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / (4 * h[i] * h[j])
    return 0.5 * (H + H.T)


def _mean_of(p, k):
    return float(np.sum(np.append(p[k:], 1.0 - np.sum(p[k:])) * p[:k]))


def test_se_mean_is_the_delta_method_of_the_fit_covariance(fit2):
    k = 2
    p = np.concatenate([fit2.taus, fit2.areas[:-1]])
    # gradient of the mean by central differences (independent of the closed-form gradient)
    g = np.empty(p.size)
    for j in range(p.size):
        h = 1e-6 * abs(p[j])
        e = np.zeros(p.size)
        e[j] = h
        g[j] = (_mean_of(p + e, k) - _mean_of(p - e, k)) / (2 * h)
    assert fit2.se_mean == pytest.approx(math.sqrt(g @ fit2.cov @ g), rel=1e-7)
    # and against a covariance computed here from the likelihood (second differences)
    t = fit2.data
    cov = np.linalg.inv(_hessian(lambda q: _nll(q, t, fit2.t_res, k), p))
    assert fit2.se_mean == pytest.approx(math.sqrt(g @ cov @ g), rel=2e-3)
    assert np.sqrt(np.diag(cov))[:k] == pytest.approx(fit2.se_taus, rel=2e-3)
    # not the naive SD/sqrt(n) of the (truncated) data, nor the SE of one tau
    assert not fit2.se_mean == pytest.approx(float(np.std(t) / math.sqrt(t.size)), rel=0.05)
    assert 0 < fit2.se_mean < fit2.mean


@pytest.mark.parametrize("t_res", [0.0, 100e-6])
def test_se_mean_of_one_component_is_tau_over_sqrt_n(t_res):
    rng = np.random.default_rng(7)
    t = rng.exponential(2e-3, 1000) + t_res
    f = ka.fit_mixture(t, 1, t_res=t_res)
    # ML: tau = mean excess over t_res, observed information n / tau^2
    assert f.taus[0] == pytest.approx(np.mean(t - t_res), rel=1e-7)
    assert f.se_mean == pytest.approx(f.taus[0] / math.sqrt(f.n), rel=1e-6)
    assert f.se_mean == f.se_taus[0]


def test_se_mean_nan_with_a_nan_covariance(fit2):
    bad = dataclasses.replace(fit2, cov=np.full_like(fit2.cov, np.nan))
    assert math.isnan(bad.se_mean)
    assert "mean = 3.038 ms ± nan ms" in bad.summary()


def test_mixture_fit_summary_exact_table():
    f = ka.MixtureFit(taus=np.array([1e-4, 1e-2]), areas=np.array([0.7, 0.3]),
                      se_taus=np.array([2e-6, 3e-4]), se_areas=np.array([0.01, 0.01]),
                      cov=np.array([[4e-12, 0, 0], [0, 9e-8, 0], [0, 0, 1e-4]]),
                      loglik=1234.5, n=2000, t_res=50e-6, n_total=2500.0, converged=True,
                      data=np.array([1e-3, 2e-3]))
    # se_mean: g = (0.7, 0.3, 1e-4 - 1e-2); var = 0.49*4e-12 + 0.09*9e-8 + (9.9e-3)^2*1e-4
    se = math.sqrt(0.49 * 4e-12 + 0.09 * 9e-8 + 9.9e-3 ** 2 * 1e-4)
    assert f.se_mean == pytest.approx(se, rel=1e-14)
    assert f.summary() == (
        "Mixture fit: 2 exponential component(s) to n = 2000 durations, t_res = 50 us\n"
        "ln L = 1234.500000 (natural log, durations in s), converged: True\n"
        "component     tau (ms)     SE (ms)        area          SE\n"
        "1                  0.1       0.002         0.7        0.01\n"
        "2                   10         0.3         0.3        0.01\n"
        "mean = 3.07 ms ± 0.134 ms (SE, delta method); n_total = 2500.0")
    assert f"{se * 1e3:.3g}" == "0.134"
    # a fit that is not clean says why on a last line
    g = dataclasses.replace(f, converged=False, message="the optimiser did not converge")
    assert g.summary().splitlines()[1].endswith("converged: False")
    assert g.summary().splitlines()[-1] == "note: the optimiser did not converge"


def test_mixture_fit_summary_of_a_real_fit(fit2):
    text = fit2.summary()
    lines = text.splitlines()
    assert lines[0] == (f"Mixture fit: 2 exponential component(s) to n = {fit2.n} durations, "
                        "t_res = 50 us")
    assert lines[1] == f"ln L = {fit2.loglik:.6f} (natural log, durations in s), converged: True"
    for i in range(2):
        cells = lines[3 + i].split()
        assert cells[0] == str(i + 1)
        assert float(cells[1]) == pytest.approx(fit2.taus[i] * 1e3, rel=1e-3)
        assert float(cells[2]) == pytest.approx(fit2.se_taus[i] * 1e3, rel=1e-3)
        assert float(cells[3]) == pytest.approx(fit2.areas[i], rel=1e-3)
        assert float(cells[4]) == pytest.approx(fit2.se_areas[i], rel=1e-3)
    assert lines[-1] == (f"mean = {fit2.mean * 1e3:.4g} ms ± {fit2.se_mean * 1e3:.3g} ms (SE, "
                         f"delta method); n_total = {fit2.n_total:.1f}")
    assert isinstance(text, str) and len(lines) == 6


# ------------------------------------------------------------------ 2. ConcentrationResponse

@pytest.fixture(scope="module")
def cr_ch82():
    return th.concentration_response(CH82, "agonist")


def test_concentration_response_repr_is_short(cr_ch82):
    r = cr_ch82
    text = repr(r)
    assert text == (f"ConcentrationResponse(ligand='agonist', EC50={r.ec50 * 1e6:.4g} uM, "
                    f"hill={r.hill:.4g}, Po(0)=0, Po(c -> inf)={r.popen_max:.4g}, 61 points)")
    assert "EC50=2.404 uM" in text and "hill=1.892" in text and "Po(c -> inf)=0.9677" in text
    assert "array" not in text and len(text) < 150
    # the fields are unchanged
    assert [f.name for f in dataclasses.fields(r)] == [
        "ligand", "concentrations", "popen", "popen_zero", "popen_max", "popen_min",
        "c_extreme", "increasing", "ec50", "hill"]
    assert r.concentrations.size == r.popen.size == 61


def test_concentration_response_summary(cr_ch82):
    r = cr_ch82
    assert r.summary() == (
        "Equilibrium concentration-response to agonist (rising)\n"
        f"  EC50 = {r.ec50 * 1e6:.4g} uM, Hill slope nH = {r.hill:.4g} (at EC50)\n"
        f"  Po(c = 0) = 0, Po(c -> inf) = {r.popen_max:.4g}\n"
        f"  Po range [0, {r.popen_max:.4g}]\n"
        "  popen at 61 concentrations from 100 pM to 100 mM")
    assert "EC50 = 2.404 uM, Hill slope nH = 1.892" in r.summary()


def _cr(**kw):
    base = dict(ligand="x", concentrations=np.array([1e-9, 1e-6]), popen=np.array([0.1, 0.2]),
                popen_zero=0.1, popen_max=0.5, popen_min=0.1, c_extreme=math.inf,
                increasing=True, ec50=1e-6, hill=1.0)
    base.update(kw)
    return ConcentrationResponse(**base)


def test_concentration_response_repr_units_and_shapes():
    assert "EC50=500 pM" in repr(_cr(ec50=5e-10))
    assert "EC50=1.5 mM" in repr(_cr(ec50=1.5e-3))
    assert "EC50=1 uM" in repr(_cr(ec50=0.99999e-6))        # not "1000 nM"
    assert "EC50=nan" in repr(_cr(ec50=math.nan, hill=math.nan))
    # a bell-shaped curve: the far end is the peak at c_extreme
    bell = _cr(c_extreme=3e-5, popen_max=0.6)
    assert "Po(c = 30 uM, peak)=0.6" in repr(bell)
    assert "Po(c = 30 uM, peak) = 0.6" in bell.summary()
    # an inhibitor: falling, far end popen_min
    inh = _cr(increasing=False, popen_zero=0.5, popen_min=0.02, popen_max=0.5, ec50=2e-6)
    assert repr(inh) == ("ConcentrationResponse(ligand='x', EC50=2 uM, hill=1, Po(0)=0.5, "
                         "Po(c -> inf)=0.02, 2 points)")
    assert inh.summary().splitlines()[0].endswith("(falling)")
    assert "  popen at 2 concentrations from 1 nM to 1 uM" in inh.summary()


# ------------------------------------------------------------------ 3. critical time, HJC

T_RES = 50 * us


@pytest.fixture(scope="module", params=[0.1 * uM, 1 * uM], ids=["0.1uM", "1uM"])
def shut_dists(request):
    c = request.param
    return (th.apparent_dwell_times(CH82, "shut", t_res=T_RES, agonist=c),
            th.dwell_times(CH82, "shut", agonist=c))


@pytest.mark.parametrize("criterion", ["proportions", "numbers", "total"])
@pytest.mark.parametrize("split", [1, 2])
def test_critical_time_of_apparent_shut_times(shut_dists, criterion, split):
    app, ideal = shut_dists
    assert isinstance(app, th.ApparentDwellTimes) and app.t_res == T_RES
    mix = ExponentialMixture(app.taus, app.areas)    # its asymptotic mixture, from t_res
    tc = ka.critical_time(app, criterion, split)
    # the components decay from t_res: the criteria act on t - t_res, and t_res is added
    assert tc == app.t_res + ka.critical_time(mix, criterion, split)
    assert tc != ka.critical_time(ideal, criterion, split)
    assert tc > 2 * T_RES
    # the criterion itself, from the asymptotic survival written out here
    u = tc - app.t_res
    a = app.areas / app.areas.sum()
    af, tf, as_, ts = a[:split], app.taus[:split], a[split:], app.taus[split:]
    n_fast = float(np.sum(af * np.exp(-u / tf)))
    n_slow = float(np.sum(as_ * -np.expm1(-u / ts)))
    if criterion == "proportions":
        assert n_fast / af.sum() == pytest.approx(n_slow / as_.sum(), rel=1e-9)
    elif criterion == "numbers":
        assert n_fast == pytest.approx(n_slow, rel=1e-9)
    else:
        assert np.sum(af / tf * np.exp(-u / tf)) == pytest.approx(
            np.sum(as_ / ts * np.exp(-u / ts)), rel=1e-9)
    m = ka.misclassification(app, tc, split)
    assert m.t_crit == tc
    assert m.n_fast == pytest.approx(n_fast, rel=1e-12)
    assert m.n_slow == pytest.approx(n_slow, rel=1e-12)
    ref = ka.misclassification(mix, tc - app.t_res, split)
    assert (m.n_fast, m.n_slow, m.p_fast, m.p_slow, m.total) == (
        ref.n_fast, ref.n_slow, ref.p_fast, ref.p_slow, ref.total)


def test_critical_time_apparent_values_ch82():
    # CH82 at 0.1 uM, t_res = 50 us, split 1, equal proportions: the missed openings
    # lengthen the apparent short shuttings, so t_crit moves up from the ideal 0.233 ms
    app = th.apparent_dwell_times(CH82, "shut", t_res=T_RES, agonist=0.1 * uM)
    ideal = th.dwell_times(CH82, "shut", agonist=0.1 * uM)
    assert ka.critical_time(ideal) == pytest.approx(0.2332e-3, rel=1e-3)
    assert ka.critical_time(app) == pytest.approx(0.2958e-3, rel=1e-3)


def test_critical_time_apparent_refusals():
    app = th.apparent_dwell_times(CH82, "shut", t_res=T_RES, agonist=1 * uM)
    with pytest.raises(ValueError, match="must be > t_res=5e-05 s"):
        ka.misclassification(app, T_RES)
    with pytest.raises(ValueError, match="split must be in \\[1, 2\\]"):
        ka.critical_time(app, split=3)
    with pytest.raises(TypeError, match="ApparentDwellTimes, an ExponentialMixture or a "
                                        "MixtureFit, got int"):
        ka.critical_time(3)
    # what was accepted before still is, unchanged (t_res 0: no shift)
    ideal = th.dwell_times(CH82, "shut", agonist=1 * uM)
    assert ka.critical_time(ideal) == pytest.approx(0.14559e-3, rel=1e-4)
    assert ka.misclassification(ideal, 1 * ms).t_crit == 1 * ms


# ------------------------------------------------------------------ 4. HJCFit.summary

def _record(c, t_end, seed):
    log = kc.simulate_events(CH82, kc.Step(t_end, agonist=c), rng=seed,
                             initial=th.equilibrium(CH82, agonist=c))
    return ka.Record.from_events(log).resolve(25 * us)


@pytest.fixture(scope="module")
def hjc_fit():
    r1, r2 = _record(1 * uM, 3.0, 1), _record(0.3 * uM, 5.0, 2)
    g2 = r2.hjc_groups(None)
    fit = fitting.fit_hjc(CH82, [(r1, {"agonist": 1 * uM}), (g2, {"agonist": 0.3 * uM}, None)],
                          t_res=25 * us, t_crit=3.5 * ms, free=["AR->R"])
    return fit, r1.hjc_groups(3.5 * ms), g2


def test_hjc_fit_counts_per_data_set(hjc_fit):
    fit, g1, g2 = hjc_fit
    assert fit.n_groups == (len(g1), len(g2))
    assert fit.n_intervals == (sum(len(g) for g in g1), sum(len(g) for g in g2))
    assert fit.n_groups[1] == 1 and fit.n_groups[0] > 10       # (no t_crit: one group)
    assert fit.t_crit == (3.5 * ms, None)
    # carried by pickling, copies and dataclasses.replace; still compared by identity
    for other in (pickle.loads(pickle.dumps(fit)), copy.copy(fit),
                  dataclasses.replace(fit, elapsed=0.0)):
        assert other.n_groups == fit.n_groups and other.n_intervals == fit.n_intervals
        assert other != fit


def test_hjc_fit_summary_per_data_set(hjc_fit):
    fit, g1, g2 = hjc_fit
    lines = fit.summary().splitlines()
    assert lines[0].endswith("2 data set(s), t_res = 25 us")
    assert lines[2] == "data set   groups  intervals  t_res (us)  t_crit (ms)  conditions"
    n1, n2 = sum(len(g) for g in g1), sum(len(g) for g in g2)
    assert lines[3] == f"1         {len(g1):7d} {n1:10d}          25          3.5  agonist=1e-06"
    assert lines[4] == f"2         {len(g2):7d} {n2:10d}          25            -  agonist=3e-07"
    assert lines[5].startswith("transition")
    # an HJCFit without the counts (not built by fit_hjc) shows "-"
    bare = dataclasses.replace(fit, n_groups=(), n_intervals=())
    assert bare.summary().splitlines()[3] == ("1               -          -          25          "
                                              "3.5  agonist=1e-06")


@pytest.mark.filterwarnings("ignore:fit_hjc:RuntimeWarning")  # 4 groups do not determine k-1
def test_hjc_fit_summary_per_set_resolution():
    g = [np.array([1e-3, 2e-3, 1e-3]), np.array([2e-3, 5e-3, 1e-3, 6e-3, 2e-3])]
    fit = fitting.fit_hjc(CH82, [(g, {"agonist": 1 * uM}), (g[:1], {"agonist": 2 * uM})],
                          t_res=[40 * us, 20 * us], free=["AR->R"])
    lines = fit.summary().splitlines()
    assert "t_res = 40, 20 us (per data set)" in lines[0]
    assert lines[3] == "1               2          8          40            -  agonist=1e-06"
    assert lines[4] == "2               1          3          20            -  agonist=2e-06"
