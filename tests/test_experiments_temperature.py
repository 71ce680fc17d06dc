"""kc.experiments(..., temperature=T): every experiment at a temperature other than the gating
scheme's own.

Oracles, each computed here independently of the experiment code:

* K_B(V, T) = k_off/k_on · (q10_off/q10_on)^((T − t_ref)/10) · exp(zδ·F·V/(R·T)) from the
  blocker's fields (R, F from ketacore.units): the exact steady IC50 of a trapping blocker whose
  arm copies gating (no escape) equals it at any temperature;
* the eigenvalues of Q(T) = ``scheme.q_matrix(V=..., temperature=T, ...)`` of the composed
  scheme: the exact time constants of block_kinetics and voltage_jump are −1/λ;
* with one q10 for every rate and no voltage dependence, Q(T) = q10^((T − T0)/10)·Q(T0): every
  time constant (exact and fitted on the default grid) scales by the inverse of that factor and
  the IC50 does not change;
* the Woodhull law ln K(V) = ln K(0) + zδ·V·F/(R·T): zδ does not depend on T, K(0) follows
  (q10_off/q10_on)^((T − t_ref)/10);
* ``Scheme.with_temperature(T)`` (the documented way to move a whole scheme to T, read by every
  solver from the scheme itself): the same experiment on it gives bit-identical arrays, so no
  step, equilibrium or relaxation of the experiment was left at the scheme's temperature;
* spies on ketacore.simulate.simulate and on the solver the experiments call: every Step they
  receive carries the requested temperature.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import warnings

import numpy as np
import pytest

import ketacore as kc
from ketacore.blockers import Blocker
from ketacore.units import FARADAY, GAS_CONSTANT, celsius, mM, mV, pS, uM

E = kc.experiments
T0 = 295.15              # the test schemes' own temperature (and the blockers' t_ref)
T35 = celsius(35)        # 308.15 K
T37 = 310.15
EXPERIMENTS = ("ic50", "woodhull", "block_kinetics", "trapping", "use_dependence", "iv_curve",
               "voltage_jump")


def test_every_public_experiment_is_covered():
    """The experiment functions of ``__all__`` are the seven tested here, and each takes
    ``temperature`` (keyword, default None)."""
    import inspect
    fns = sorted(n for n in E.__all__ if callable(getattr(E, n)) and n[0].islower()
                 and n != "hill")
    assert fns == sorted(EXPERIMENTS)
    for n in fns:
        p = inspect.signature(getattr(E, n)).parameters["temperature"]
        assert p.default is None and p.kind is inspect.Parameter.KEYWORD_ONLY
        assert "temperature : float, optional" in getattr(E, n).__doc__


# --------------------------------------------------------------------------- test schemes
def q10_scheme(q10=(2.5, 1.8, 3.2, 2.0), zd=(0.3, -0.2)) -> kc.Scheme:
    """C1 <-> C2 <-> O, every rate with its own q10 (t_ref 22 °C), opening/closing voltage
    dependent; scheme temperature 22 °C."""
    tr = [("C1", "C2", kc.Rate(5e6, "glutamate", q10=q10[0])),
          ("C2", "C1", kc.Rate(400.0, q10=q10[1])),
          ("C2", "O", kc.Rate(900.0, q10=q10[2], z_delta=zd[0])),
          ("O", "C2", kc.Rate(600.0, q10=q10[3], z_delta=zd[1]))]
    return kc.Scheme(["C1", "C2", "O"], tr, conductance={"O": 50 * pS}, e_rev=0.0,
                     ligands=["glutamate"], name="q10", temperature=T0)


def q10_blocker(**kw) -> Blocker:
    """Trapping open-channel blocker, no escape or closed route, Woodhull zδ = 0.8, its own
    q10s (K_B grows with T: q10_off > q10_on)."""
    d = dict(z=1.0, delta_on=0.3, delta_off=0.5, q10_on=2.2, q10_off=3.0)
    d.update(kw)
    return Blocker("x", "drug", 2e6, 40.0, **d)


def kb_oracle(b: Blocker, V: float, T: float) -> float:
    """K_B(V, T) (M) from the blocker's fields: Woodhull factor with RT/F at T, and q10s."""
    q = (b.q10_off / b.q10_on) ** ((T - b.t_ref) / 10.0)
    return b.k_off / b.k_on * q * math.exp(b.z * (b.delta_on + b.delta_off) * V * FARADAY
                                           / (GAS_CONSTANT * T))


def q_taus(scheme: kc.Scheme, V: float, T: float, **conc) -> np.ndarray:
    """−1/λ (s), ascending, of the non-zero eigenvalues of Q(V, T) built by the scheme."""
    lam = np.real(np.linalg.eigvals(scheme.q_matrix(V=V, temperature=T, **conc)))
    lam = lam[np.abs(lam) > 1e-9 * np.abs(lam).max()]
    return np.sort(-1.0 / lam)


# --------------------------------------------------------------------------- small calls
def _calls(g, b):
    """One small call per experiment (exact by default; ``**kw`` adds method/temperature)."""
    return {
        "ic50": lambda **kw: E.ic50(g, b, [1e-6, 1e-5, 1e-4], **kw),
        "woodhull": lambda **kw: E.woodhull(g, b, [-80 * mV, -40 * mV],
                                            concentrations=[1e-6, 1e-5, 1e-4], **kw),
        "block_kinetics": lambda **kw: E.block_kinetics(g, b, 20 * uM, t_on=0.2, t_off=0.4,
                                                        n_samples=200, **kw),
        "trapping": lambda **kw: E.trapping(g, b, 20 * uM, t_block=0.2, t_wash=0.2,
                                            t_recovery=0.2, peak_window=0.02, **kw),
        "use_dependence": lambda **kw: E.use_dependence(g, b, 20 * uM, [0.0, 20.0],
                                                        duration=0.2, washout=0.2,
                                                        n_samples=10, **kw),
        "iv_curve": lambda **kw: E.iv_curve(g, b, 20 * uM, [-80 * mV, -40 * mV, 20 * mV], **kw),
        "voltage_jump": lambda **kw: E.voltage_jump(g, b, 20 * uM, -80 * mV, 40 * mV,
                                                    t_step=0.01, **kw),
    }


_STOCH = dict(method="stochastic", n_channels=300, n_trials=2, rng=11)


def _run(call, **kw):
    with warnings.catch_warnings():     # short protocols: extrapolation/peak notes expected
        warnings.simplefilter("ignore")
        return call(**kw)


def _same(a, b, what=""):
    """Every field of two results identical: arrays element for element (NaN == NaN),
    numbers exactly, meta equal; the voltage_jump Relaxation by its arrays."""
    assert type(a) is type(b)
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        where = f"{what}.{f.name}"
        if f.name == "relaxation":
            for attr in ("taus", "amplitudes", "equilibrium"):
                np.testing.assert_array_equal(np.asarray(getattr(x, attr)),
                                              np.asarray(getattr(y, attr)), err_msg=where)
        elif f.name == "meta":
            assert x.keys() == y.keys(), where
            for k in x:
                xv, yv = x[k], y[k]
                if isinstance(xv, float) and math.isnan(xv):
                    assert isinstance(yv, float) and math.isnan(yv), (where, k)
                else:
                    assert xv == yv, (where, k, xv, yv)
        elif isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=where)
        elif isinstance(x, float) and math.isnan(x):
            assert isinstance(y, float) and math.isnan(y), where
        else:
            assert x == y, (where, x, y)


# --------------------------------------------------------------------------- default
@pytest.mark.parametrize("fn", EXPERIMENTS)
def test_default_is_bit_identical_to_not_passing_it(fn):
    """temperature=None, and the scheme's own temperature given explicitly, change nothing:
    every array and number is bit-identical to a call without the option."""
    g, b = q10_scheme(), q10_blocker()
    call = _calls(g, b)[fn]
    ref = _run(call)
    _same(ref, _run(call, temperature=None), f"{fn}(None)")
    _same(ref, _run(call, temperature=g.temperature), f"{fn}(T=scheme's)")
    assert ref.meta["temperature"] == g.temperature
    # and at another temperature the results do change (the option is not ignored)
    moved = _run(call, temperature=T37)
    assert moved.meta["temperature"] == T37
    changed = [f.name for f in dataclasses.fields(ref)
               if isinstance(getattr(ref, f.name), np.ndarray)
               and getattr(ref, f.name).dtype == float
               and getattr(ref, f.name).shape == getattr(moved, f.name).shape
               and not np.array_equal(getattr(ref, f.name), getattr(moved, f.name),
                                      equal_nan=True)]
    assert changed, fn


@pytest.mark.parametrize("fn", ["ic50", "trapping", "voltage_jump"])
def test_stochastic_default_is_bit_identical(fn):
    g, b = q10_scheme(), q10_blocker()
    call = _calls(g, b)[fn]
    kw = dict(_STOCH, duration=0.05) if fn == "ic50" else dict(_STOCH)
    _same(_run(call, **kw), _run(call, temperature=None, **kw), fn)


# --------------------------------------------------------------------------- with_temperature
@pytest.mark.parametrize("fn", EXPERIMENTS)
def test_same_as_scheme_moved_to_temperature(fn):
    """experiment(g, temperature=T) == experiment(g.with_temperature(T)) bit for bit (exact):
    the latter has every solver read T from the scheme, so any step, equilibrium or
    relaxation the option missed would differ (this scheme's rates all have q10 != 1 and the
    blocker's K_B depends on T through q10 and RT/F)."""
    g, b = q10_scheme(), q10_blocker()
    a = _run(_calls(g, b)[fn], temperature=T35)
    m = _run(_calls(g.with_temperature(T35), b)[fn])
    _same(a, m, fn)
    assert a.meta["temperature"] == T35


@pytest.mark.parametrize("fn", ["ic50", "block_kinetics", "use_dependence", "voltage_jump"])
def test_stochastic_same_as_scheme_moved_to_temperature(fn):
    g, b = q10_scheme(), q10_blocker()
    kw = dict(_STOCH, duration=0.05) if fn == "ic50" else dict(_STOCH)
    if fn == "block_kinetics":
        kw["n_channels"] = 3000
    _same(_run(_calls(g, b)[fn], temperature=T35, **kw),
          _run(_calls(g.with_temperature(T35), b)[fn], **kw), fn)


# --------------------------------------------------------------------------- K_B(V, T)
@pytest.mark.parametrize("V", [-70 * mV, -30 * mV])
def test_trapping_ic50_is_kb_at_temperature_ketamine(V):
    """Ketamine (escape route removed: the identity is exact only without it) on
    erreger2005_2a at 37 °C: the exact steady IC50 is K_B(V, 310.15 K) from the blocker's
    fields -- the Woodhull factor with RT/F at 310.15 K, not at the scheme's 22 °C."""
    g = kc.models.get("erreger2005_2a")
    ket = kc.blockers.get("ketamine").replace(k_escape=0.0)
    assert ket.q10_on == ket.q10_off == 1.0 and ket.k_on_closed == 0.0
    r = E.ic50(g, ket, V=V, temperature=T37)
    kb = kb_oracle(ket, V, T37)
    assert r.ic50_exact == pytest.approx(kb, rel=1e-9)
    np.testing.assert_allclose(r.fraction, 1.0 / (1.0 + r.concentrations / kb), rtol=1e-9)
    # the temperature matters here: K_B at the scheme's 22 °C differs by > 5 %
    kb22 = kb_oracle(ket, V, g.temperature)
    assert abs(kb / kb22 - 1) > 0.04
    assert E.ic50(g, ket, V=V).ic50_exact == pytest.approx(kb22, rel=1e-9)
    assert r.meta["temperature"] == T37 and "37.0 °C" in r.summary().splitlines()[0]


def test_library_ketamine_ic50_at_temperature_within_escape_effect():
    """The library ketamine (slow escape k_escape ~ 1e-3 /s) at 37 °C: within 1 % of
    K_B(V, T) (the escape lowers the trapped occupancy slightly)."""
    g = kc.models.get("erreger2005_2a")
    ket = kc.blockers.get("ketamine")
    assert 0 < ket.k_escape < 1e-2
    r = E.ic50(g, ket, temperature=T37)
    assert r.ic50_exact == pytest.approx(kb_oracle(ket, -70 * mV, T37), rel=1e-2)


@pytest.mark.parametrize("T", [T0, T35, 320.0])
def test_trapping_ic50_is_kb_with_q10(T):
    """A blocker with q10_on != q10_off on a gating scheme whose rates have q10s: the steady
    IC50 at T is K_B(V, T) with both the q10 factor and RT/F at T, exactly."""
    g, b = q10_scheme(), q10_blocker()
    r = E.ic50(g, b, V=-50 * mV, temperature=T)
    assert r.ic50_exact == pytest.approx(kb_oracle(b, -50 * mV, T), rel=1e-9)


def test_iv_curve_kd_follows_temperature():
    """iv_curve of a trapping blocker at T: K(V) = K_B(V, T) at every voltage, and the
    Woodhull fit returns the blocker's zδ and K_B(0, T) with V_T = RT/F at T."""
    g, b = q10_scheme(), q10_blocker()
    vs = np.array([-100, -70, -40, -10, 20]) * mV
    r = E.iv_curve(g, b, 10 * uM, vs, temperature=T35)
    np.testing.assert_allclose(r.apparent_kd, [kb_oracle(b, v, T35) for v in vs], rtol=1e-8)
    assert r.temperature == T35 and r.meta["temperature"] == T35
    assert r.thermal_voltage == pytest.approx(GAS_CONSTANT * T35 / FARADAY, rel=1e-15)
    assert r.z_delta == pytest.approx(0.8, rel=1e-8)
    assert r.kd0 == pytest.approx(kb_oracle(b, 0.0, T35), rel=1e-8)


# --------------------------------------------------------------------------- Woodhull
@pytest.mark.parametrize("T", [T0, T35, T37])
def test_woodhull_z_delta_independent_of_temperature_k0_follows_q10(T):
    """Pure Woodhull trapping blocker: ln IC50(V) = ln K(0, T) + zδ·V·F/(R·T) exactly, so the
    fit at T (V_T at T) gives zδ = z(δ_on + δ_off) = 0.8 at every T, and
    K(0, T) = k_off/k_on·(q10_off/q10_on)^((T − t_ref)/10)."""
    g, b = q10_scheme(), q10_blocker()
    vs = np.array([-90, -60, -30, 0]) * mV
    w = E.woodhull(g, b, vs, temperature=T)
    assert w.temperature == T and w.meta["temperature"] == T
    assert w.z_delta == pytest.approx(0.8, rel=1e-8)
    k0 = b.k_off / b.k_on * (b.q10_off / b.q10_on) ** ((T - b.t_ref) / 10.0)
    assert w.kd0 == pytest.approx(k0, rel=1e-8)
    np.testing.assert_allclose(w.ic50, [kb_oracle(b, v, T) for v in vs], rtol=1e-9)
    if T != T0:   # K(0) did move with T (q10_off/q10_on = 1.36 per 10 K)
        assert abs(w.kd0 / (b.k_off / b.k_on) - 1) > 0.3
        assert f"{T:.2f} K" in w.summary()


# --------------------------------------------------------------------------- Q(T) eigenvalues
def test_voltage_jump_taus_are_eigenvalues_of_q_at_temperature():
    g, b = q10_scheme(), q10_blocker()
    S = kc.block(g, b)
    c = 5 * uM
    r = E.voltage_jump(g, b, c, -80 * mV, 40 * mV, temperature=T35)
    want = q_taus(S, 40 * mV, T35, glutamate=1 * mM, drug=c)
    np.testing.assert_allclose(np.sort(r.taus), want, rtol=1e-10)
    # not the eigenvalues at the scheme's own temperature
    own = q_taus(S, 40 * mV, T0, glutamate=1 * mM, drug=c)
    assert np.all(np.abs(want / own - 1) > 0.2)
    assert r.meta["temperature"] == T35 and "35.0 °C" in r.summary().splitlines()[0]


def test_block_kinetics_theory_taus_are_eigenvalues_of_q_at_temperature():
    g, b = q10_scheme(), q10_blocker()
    S = kc.block(g, b)
    c = 5 * uM
    r = E.block_kinetics(g, b, c, temperature=T35)
    np.testing.assert_allclose(np.sort(r.theory_taus_on),
                               q_taus(S, -70 * mV, T35, glutamate=1 * mM, drug=c), rtol=1e-10)
    np.testing.assert_allclose(np.sort(r.theory_taus_off),
                               q_taus(S, -70 * mV, T35, glutamate=1 * mM), rtol=1e-10)
    # the fitted single-exponential onset/recovery track the dominant exact components
    assert r.tau_on == pytest.approx(r.theory_tau_on, rel=0.02)
    assert r.tau_off == pytest.approx(r.theory_tau_off, rel=0.02)


def test_uniform_q10_scales_every_time_constant():
    """Every rate with q10 = 3 and no voltage dependence: Q(T) = 3^((T − T0)/10)·Q(T0), so
    each exact and fitted (default grid: it scales with the carriers) time constant is
    divided by that factor, and the steady IC50 and I/I0 do not change."""
    g = q10_scheme(q10=(3.0,) * 4, zd=(0.0, 0.0))
    b = q10_blocker(delta_on=0.0, delta_off=0.0, q10_on=3.0, q10_off=3.0)
    factor = 3.0 ** ((T37 - T0) / 10.0)
    k0 = E.block_kinetics(g, b, 20 * uM)
    k1 = E.block_kinetics(g, b, 20 * uM, temperature=T37)
    for name in ("theory_taus_on", "theory_taus_off"):
        np.testing.assert_allclose(getattr(k1, name) * factor, getattr(k0, name), rtol=1e-10)
    for name in ("tau_on", "tau_off"):
        assert getattr(k1, name) * factor == pytest.approx(getattr(k0, name), rel=1e-6)
    np.testing.assert_allclose(k1.time_on * factor, k0.time_on, rtol=1e-12)
    np.testing.assert_allclose(k1.fraction_on, k0.fraction_on, rtol=1e-8, atol=1e-12)
    assert k1.steady_fraction == pytest.approx(k0.steady_fraction, rel=1e-12)
    j0 = E.voltage_jump(g, b, 20 * uM, -80 * mV, 40 * mV)
    j1 = E.voltage_jump(g, b, 20 * uM, -80 * mV, 40 * mV, temperature=T37)
    np.testing.assert_allclose(np.sort(j1.taus) * factor, np.sort(j0.taus), rtol=1e-10)
    i0, i1 = E.ic50(g, b), E.ic50(g, b, temperature=T37)
    assert i1.ic50_exact == pytest.approx(i0.ic50_exact, rel=1e-9)


# --------------------------------------------------------------------------- every Step
class _StepSpy:
    """Temperatures of every Step of every protocol passed to ketacore.simulate.simulate and
    to the solver ketacore.experiments calls."""

    def __init__(self, monkeypatch):
        self.simulated, self.solved = [], []
        sim_mod = sys.modules["ketacore.simulate"]
        orig_sim, orig_solve = sim_mod.simulate, E.solve

        def sim(scheme, protocol, *a, **kw):
            self.simulated.extend(st.temperature for st in protocol.steps)
            return orig_sim(scheme, protocol, *a, **kw)

        def solve(scheme, protocol, *a, **kw):
            self.solved.extend(st.temperature for st in protocol.steps)
            return orig_solve(scheme, protocol, *a, **kw)
        monkeypatch.setattr(sim_mod, "simulate", sim)
        monkeypatch.setattr(E, "solve", solve)


@pytest.mark.parametrize("fn", EXPERIMENTS)
def test_every_step_carries_the_temperature(monkeypatch, fn):
    """Stochastic runs (and the exact runs beside them) receive Steps at the requested
    temperature -- all of them; with the default, Steps leave it to the scheme (None)."""
    g, b = q10_scheme(), q10_blocker()
    call = _calls(g, b)[fn]
    kw = dict(_STOCH, duration=0.05) if fn in ("ic50", "woodhull") else dict(_STOCH)
    if fn in ("ic50", "woodhull", "iv_curve"):
        kw["kind"] = "peak"                   # exact + stochastic protocol runs
        kw["duration"] = 0.02
    if fn == "block_kinetics":
        kw["n_channels"] = 3000
    # (stochastic voltage_jump simulates its one protocol and solves nothing)
    solves = fn != "voltage_jump"
    spy = _StepSpy(monkeypatch)
    r = _run(call, temperature=T35, **kw)
    assert spy.simulated and set(spy.simulated) == {T35}, (fn, set(spy.simulated))
    assert set(spy.solved) == ({T35} if solves else set()), (fn, set(spy.solved))
    assert r.meta["temperature"] == T35
    monkeypatch.undo()
    spy = _StepSpy(monkeypatch)
    _run(call, **kw)
    assert set(spy.simulated) == {None}
    assert set(spy.solved) == ({None} if solves else set())


@pytest.mark.parametrize("fn", ["block_kinetics", "trapping", "use_dependence",
                                "voltage_jump"])
def test_every_exact_step_carries_the_temperature(monkeypatch, fn):
    spy = _StepSpy(monkeypatch)
    _run(_calls(q10_scheme(), q10_blocker())[fn], temperature=T35)
    assert spy.solved and set(spy.solved) == {T35} and not spy.simulated


@pytest.mark.parametrize("fn", EXPERIMENTS)
def test_summary_prints_the_temperature(fn):
    g, b = q10_scheme(), q10_blocker()
    call = _calls(g, b)[fn]
    assert "35.0 °C" in _run(call, temperature=T35).summary()
    assert "22.0 °C" in _run(call).summary()          # the scheme's own, printed too


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize("fn", EXPERIMENTS)
def test_celsius_by_mistake_refused_with_the_hint(fn):
    call = _calls(q10_scheme(), q10_blocker())[fn]
    with pytest.raises(ValueError, match=r"kelvin.*ketacore\.units\.celsius\(35\)"):
        call(temperature=35)
    with pytest.raises(ValueError, match=r"celsius\(37\.5\)"):
        call(temperature=37.5)


@pytest.mark.parametrize("fn", EXPERIMENTS)
def test_bad_temperature_refused(fn):
    call = _calls(q10_scheme(), q10_blocker())[fn]
    with pytest.raises(ValueError, match="temperature must not be NaN"):
        call(temperature=float("nan"))
    with pytest.raises(ValueError, match="temperature"):
        call(temperature=math.inf)
    with pytest.raises(ValueError, match=r"temperature=1000.0 K is outside"):
        call(temperature=1000.0)
    with pytest.raises(TypeError, match="temperature must be a real number, got bool"):
        call(temperature=True)
    with pytest.raises(TypeError, match="temperature must be a real number"):
        call(temperature="310")


def test_refused_temperature_does_not_advance_the_generator():
    """A refused temperature is a refused call: a numpy Generator passed as rng is not
    drawn from."""
    g = np.random.default_rng(5)
    before = g.bit_generator.state
    with pytest.raises(ValueError, match="celsius"):
        E.trapping(q10_scheme(), q10_blocker(), 20 * uM, t_block=0.2, t_wash=0.2,
                   t_recovery=0.2, method="stochastic", n_channels=50, n_trials=2, rng=g,
                   temperature=36)
    assert g.bit_generator.state == before


def test_numpy_temperature_accepted():
    g, b = q10_scheme(), q10_blocker()
    a = E.ic50(g, b, [1e-6, 1e-5, 1e-4], temperature=np.float64(T35))
    c = E.ic50(g, b, [1e-6, 1e-5, 1e-4], temperature=T35)
    _same(a, c, "ic50")
    assert type(a.meta["temperature"]) is float


@pytest.mark.parametrize("k_off", [0.0, 40.0])
def test_peak_ic50_default_grid_same_as_scheme_moved_to_temperature(k_off):
    """kind='peak' with the default concentration grid: its centre comes from the experiment
    temperature (the open-channel k_on(V, T) of an irreversible blocker; the exact steady
    IC50 at T of a reversible one), as on the scheme moved to T."""
    g, b = q10_scheme(), q10_blocker().replace(k_off=k_off)
    kw = dict(kind="peak", duration=0.02, preincubation=0.0)
    a = _run(lambda: E.ic50(g, b, temperature=T37, **kw))
    m = _run(lambda: E.ic50(g.with_temperature(T37), b, **kw))
    _same(a, m, "ic50 peak")
    own = _run(lambda: E.ic50(g, b, **kw))
    assert not np.array_equal(a.concentrations, own.concentrations)
