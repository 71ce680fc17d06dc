"""Balanced closed route (``Blocker(closed_route="balanced")``).

A blocker that can escape from a shut blocked channel (``k_escape``) can enter a shut channel by
the same route.  ``closed_route="balanced"`` derives that association from the escape so that
the cycle X -> O -> O·b -> X·b -> X obeys Kolmogorov's criterion at every voltage and
temperature.  The library ketamine, memantine and their Mealing variants use it.  Oracles (no
pinned numbers): detailed balance of the composed Q, IC50 = K_B from the blocker's own kd at
any agonist concentration, p(X·b)/p(X) = [B]/K_B in every gating state, describe().
"""
from __future__ import annotations

import copy
import dataclasses
import pickle

import numpy as np
import pytest

import ketacore as kc
from ketacore import theory
from ketacore.blockers import Blocker
from ketacore.units import celsius, mM, mV, uM

BALANCED = ("ketamine", "memantine", "ketamine_mealing1999", "memantine_mealing1999")
MODELS = ("erreger2005_2a", "destexhe1994")


def drug(**kw) -> Blocker:
    base = dict(name="x", ligand="drug", k_on=2e6, k_off=3.0, delta_on=0.3, delta_off=0.4,
                k_escape=0.02, closed_route="balanced")
    base.update(kw)
    return Blocker(**base)


def db_residual(Q: np.ndarray) -> float:
    """Largest |p_i q_ij - p_j q_ji| relative to the larger flux."""
    p = theory.equilibrium(Q)
    F = p[:, None] * Q
    np.fill_diagonal(F, 0.0)
    den = np.maximum(np.maximum(F, F.T), 1e-300)
    mask = np.maximum(F, F.T) > 0
    return float(np.max(np.abs(F - F.T)[mask] / den[mask]))


# =========================================================================== library
def test_library_blockers_use_the_balanced_route():
    for n in BALANCED:
        b = kc.blockers.get(n)
        assert b.closed_route == "balanced", n
        assert b.k_on_closed == 0.0 and b.delta_on_closed == 0.0   # inputs: derived, not given
        assert b.effective_delta_on_closed == pytest.approx(b.delta - b.delta_escape)
        if b.k_escape > 0:
            assert b.effective_k_on_closed == pytest.approx(b.k_escape * b.k_on / b.k_off,
                                                            rel=1e-14)
    # the Orser variant stays deliberately out of balance, with its own explicit route
    v = kc.blockers.get("ketamine_closed_route")
    assert v.closed_route is None and v.effective_k_on_closed == v.k_on_closed > 0


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("name", BALANCED)
def test_library_blockers_are_reversible(model, name):
    """is_reversible at several V, T and concentrations (was False for ketamine and
    memantine: one-way escape)."""
    b = kc.blockers.get(name)
    s_ = kc.block(model, b)
    for V in (-100 * mV, -70 * mV, -30 * mV, 20 * mV):
        for T in (celsius(10), celsius(22), celsius(37)):
            for glu, conc in ((0.1 * uM, 1 * uM), (1 * mM, 10 * uM), (1 * uM, 0.3 * uM)):
                cond = dict(V=V, temperature=T, glutamate=glu, **{b.ligand: conc})
                assert theory.is_reversible(s_, rtol=1e-7, **cond), (V, T, glu, conc)


def test_library_blockers_reversible_with_mg():
    s_ = kc.block("erreger2005_2a", "ketamine", "mg")
    for V in (-80 * mV, -40 * mV):
        assert theory.is_reversible(s_, rtol=1e-7, V=V, glutamate=1 * uM, ketamine=1 * uM,
                                    mg=1 * mM)


def _unblocked_ratio(s_, b, conc, V, glu, T=None):
    c = dict(V=V, glutamate=glu)
    if T is not None:
        c["temperature"] = T
    po0 = theory.open_probability(s_, **c)
    return theory.open_probability(s_, **c, **{b.ligand: conc}) / po0


@pytest.mark.parametrize("name", ["ketamine", "ketamine_mealing1999"])
@pytest.mark.parametrize("V", [-70 * mV, -30 * mV])
def test_ketamine_ic50_is_kb_at_any_glutamate(name, V):
    """Exact equilibrium: [B] = K_B(V) (the blocker's own kd at the scheme temperature) halves
    the current at 1 mM, 1 uM and 0.1 uM glutamate (one-way escape: 0.755 / 0.768 / 1.84 uM
    for ketamine at -70 mV)."""
    b = kc.blockers.get(name)
    s_ = kc.block("erreger2005_2a", b)
    kb = b.kd(V, s_.temperature)
    for glu in (1 * mM, 1 * uM, 0.1 * uM):
        assert _unblocked_ratio(s_, b, kb, V, glu) == pytest.approx(0.5, rel=1e-9), glu
        # and the IC50 root itself
        from scipy import optimize
        f = lambda lc: _unblocked_ratio(s_, b, 10.0 ** lc, V, glu) - 0.5  # noqa: E731
        ic50 = 10.0 ** optimize.brentq(f, -9, -4, xtol=1e-14, rtol=1e-15)
        assert ic50 == pytest.approx(kb, rel=1e-9), glu


def test_ketamine_ic50_is_kb_at_other_temperatures():
    """With Q10s on a balanced blocker (not the library's, which has none) IC50 = K_B(V, T)."""
    b = kc.blockers.get("ketamine").replace(q10_on=1.4, q10_off=2.6, t_ref=celsius(30))
    s_ = kc.block("erreger2005_2a", b)
    for T in (celsius(12), celsius(37)):
        kb = b.kd(-70 * mV, T)
        for glu in (1 * mM, 0.1 * uM):
            assert _unblocked_ratio(s_, b, kb, -70 * mV, glu, T) == pytest.approx(0.5, rel=1e-9)


def test_memantine_ic50_independent_of_glutamate():
    """Deep site (balanced) + superficial site: unblocked fraction 1/(1 + [B]/K_B + [B]/K_s),
    IC50 = 1/(1/K_B + 1/K_s) at any agonist concentration."""
    for name in ("memantine", "memantine_mealing1999"):
        b = kc.blockers.get(name)
        s_ = kc.block("erreger2005_2a", b)
        kb = b.kd(-70 * mV, s_.temperature)
        ks = b.superficial_k_off / b.superficial_k_on
        ic50 = 1.0 / (1.0 / kb + 1.0 / ks)
        for glu in (1 * mM, 1 * uM, 0.1 * uM):
            assert _unblocked_ratio(s_, b, ic50, -70 * mV, glu) == pytest.approx(0.5, rel=1e-9)


@pytest.mark.parametrize("model", MODELS)
def test_blocked_over_unblocked_is_b_over_kb_in_every_state(model):
    g = kc.models.get(model)
    b = kc.blockers.get("ketamine")
    s_ = kc.block(g, b)
    for V, glu, conc in ((-70 * mV, 0.1 * uM, 1 * uM), (-40 * mV, 1 * mM, 5 * uM)):
        p = theory.equilibrium(s_, V=V, glutamate=glu, ketamine=conc)
        want = conc / b.kd(V, s_.temperature)
        for x in g.states:
            assert p[s_.index(f"{x}·ket")] / p[s_.index(x)] == pytest.approx(want, rel=1e-9), x
    # memantine: deep and superficial ratios in every state
    m = kc.blockers.get("memantine")
    s_ = kc.block(g, m)
    p = theory.equilibrium(s_, V=-70 * mV, glutamate=0.1 * uM, memantine=2 * uM)
    kb, ks = m.kd(-70 * mV, s_.temperature), m.superficial_k_off / m.superficial_k_on
    for x in g.states:
        assert p[s_.index(f"{x}·mem")] / p[s_.index(x)] == pytest.approx(2 * uM / kb, rel=1e-9)
        assert p[s_.index(f"{x}·mem_s")] / p[s_.index(x)] == pytest.approx(2 * uM / ks, rel=1e-9)


def test_balanced_with_closing_and_opening_factors():
    """The derived route includes closing_factor/opening_factor: shut states
    p(X·b)/p(X) = (c/o)[B]/K_B, open states [B]/K_B, detailed balance at every V and T."""
    g = kc.models.get("destexhe1994_sf")
    b = drug(closing_factor=3.0, opening_factor=0.5, q10_on=1.3, q10_off=2.7,
             t_ref=celsius(30), delta_escape=0.25)
    s_ = kc.block(g, b)
    for V in (-90 * mV, 0.0, 40 * mV):
        for T in (celsius(8), celsius(37)):
            cond = dict(V=V, temperature=T, glutamate=3 * uM, drug=1 * uM)
            assert db_residual(s_.q_matrix(**cond)) < 1e-9
            p = theory.equilibrium(s_, **cond)
            r = 1 * uM / b.kd(V, T)
            for x in g.states:
                f = 1.0 if x == "O" else 3.0 / 0.5
                assert p[s_.index(f"{x}·x")] / p[s_.index(x)] == pytest.approx(f * r, rel=1e-9)


@pytest.mark.parametrize("thermal_voltage", [None, 25 * mV])
def test_balanced_q_entries(thermal_voltage):
    """q(X -> X·b) = [B]·k_escape(V, T)·(c/o)/K_B(V, T), q(X·b -> X) = k_escape(V, T)."""
    g = kc.models.get("destexhe1994_sf")
    b = drug(z=2.0, v_ref=-30 * mV, thermal_voltage=thermal_voltage, delta_escape=0.2,
             q10_on=1.5, q10_off=3.0, t_ref=celsius(35), closing_factor=2.0)
    s_ = kc.block(g, b)
    for V in (-90 * mV, 35 * mV):
        for T in (celsius(15), celsius(35)):
            Q = s_.q_matrix(V=V, temperature=T, glutamate=1 * mM, drug=3 * uM)
            esc = b.escape_rate()(V, T)
            for x in ("C0", "C1", "C2", "D"):
                assert Q[s_.index(f"{x}·x"), s_.index(x)] == pytest.approx(esc, rel=1e-12)
                assert Q[s_.index(x), s_.index(f"{x}·x")] == pytest.approx(
                    3 * uM * esc * 2.0 / b.kd(V, T), rel=1e-12)


def test_replace_rederives_and_pickles():
    ket = kc.blockers.get("ketamine")
    k2 = ket.replace(k_escape=2 * ket.k_escape)
    assert k2.effective_k_on_closed == pytest.approx(2 * ket.effective_k_on_closed, rel=1e-14)
    assert dataclasses.replace(ket, k_off=ket.k_off * 2).effective_k_on_closed == \
        pytest.approx(ket.effective_k_on_closed / 2, rel=1e-14)
    for c in (pickle.loads(pickle.dumps(ket)), copy.deepcopy(ket)):
        assert c == ket and c.effective_k_on_closed == ket.effective_k_on_closed
    # k_escape = 0: no closed route at all (pure trapping), the same scheme as without the option
    g = kc.models.get("erreger2005_2a")
    none = kc.block(g, ket.replace(k_escape=0.0))
    plain = kc.block(g, ket.replace(k_escape=0.0, closed_route=None))
    assert none.transitions == plain.transitions
    # explicit route on a library blocker: switch the option off
    ex = ket.replace(closed_route=None, k_on_closed=1e4)
    assert ex.effective_k_on_closed == 1e4


# =========================================================================== describe
def test_describe_q10_repro_is_balanced():
    """Old describe() compared k_escape/k_on_closed (t_ref) with kd(v_ref) at 22 C and called
    this balanced blocker 'NOT in detailed balance'."""
    b = Blocker(name="x", ligand="drug", k_on=1e6, k_off=1, delta_on=.4, delta_off=.4,
                q10_on=1.5, q10_off=3, t_ref=kc.units.celsius(35), k_escape=.01,
                k_on_closed=1e4, delta_on_closed=.4, delta_escape=.4)
    text = b.describe()
    assert "NOT in detailed balance" not in text
    assert "in detailed balance with the open-channel site at every voltage and temperature" \
        in text
    s_ = kc.block("destexhe1994_sf", b)
    for T in (celsius(10), celsius(37)):
        assert theory.is_reversible(s_, rtol=1e-7, V=-60 * mV, temperature=T,
                                    glutamate=3 * uM, drug=1 * uM)
    # same rates, electrical distances that do not add up: balanced at v_ref only
    text = b.replace(delta_escape=0.0).describe()
    assert "in detailed balance at v_ref only" in text
    s_ = kc.block("destexhe1994_sf", b.replace(delta_escape=0.0))
    assert theory.is_reversible(s_, rtol=1e-7, V=0.0, glutamate=3 * uM, drug=1 * uM)
    assert not theory.is_reversible(s_, rtol=1e-7, V=-60 * mV, glutamate=3 * uM, drug=1 * uM)


def test_describe_balanced_and_unbalanced():
    for n in ("ketamine", "memantine", "ketamine_mealing1999"):
        text = kc.blockers.get(n).describe()
        assert "closed_route = 'balanced'" in text, n
        assert "NOT in detailed balance" not in text and "no reverse route" not in text, n
        assert ("in detailed balance with the open-channel site at every voltage and "
                "temperature") in text, n
    text = kc.blockers.get("ketamine_closed_route").describe()
    assert "NOT in detailed balance" in text
    one_way = kc.blockers.get("ketamine").replace(closed_route=None)
    assert "no reverse route (k_on_closed = 0)" in one_way.describe()
    assert "no escape and no closed route" in \
        kc.blockers.get("ketamine").replace(k_escape=0.0).describe()
    # a balanced blocker with q10s and t_ref != 22 C
    text = drug(q10_on=1.5, q10_off=3.0, t_ref=celsius(35), closing_factor=2.0).describe()
    assert "NOT in detailed balance" not in text and "every voltage and temperature" in text


# =========================================================================== validation
def test_validation_errors():
    with pytest.raises(ValueError, match=r"Blocker.closed_route must be None .* or 'balanced'"):
        drug(closed_route="detailed")
    with pytest.raises(ValueError, match=r"closed_route='balanced' derives k_on_closed.*"
                                         r"k_on_closed=100.0 contradicts it"):
        drug(k_on_closed=100.0)
    with pytest.raises(ValueError, match=r"derives delta_on_closed.*delta_on_closed=0.2 "
                                         r"contradicts it"):
        drug(delta_on_closed=0.2)
    with pytest.raises(ValueError, match=r"closed_route='balanced' is for the trapping modes"):
        drug(mode="sequential", k_escape=0.0)
    with pytest.raises(ValueError, match=r"needs k_on > 0 and k_off > 0"):
        drug(k_off=0.0)
    with pytest.raises(ValueError, match=r"needs k_on > 0 and k_off > 0"):
        drug(k_on=0.0)
    with pytest.raises(ValueError, match=r"derived delta_on_closed .* is outside"):
        drug(delta_on=1.5, delta_off=1.5, delta_escape=0.5)
    with pytest.raises(ValueError, match=r"contradicts it"):
        kc.blockers.get("ketamine").replace(k_on_closed=1e4)
    # k_escape = 0 with k_off = 0 is fine (no route to balance)
    assert drug(k_escape=0.0, k_off=0.0).effective_k_on_closed == 0.0


def test_arm_scaling_must_keep_the_balance():
    g = kc.models.get("destexhe1994_sf")
    # scales both directions of an open<->shut transition alike: fine
    s_ = kc.block(g, drug(arm_scaling={"C2->O": 2.0, "O->C2": 2.0}))
    assert db_residual(s_.q_matrix(V=-50 * mV, glutamate=3 * uM, drug=1 * uM)) < 1e-9
    # shifts the open/shut balance of the arm away from closing/opening: refused
    with pytest.raises(ValueError, match=r"closed_route='balanced'.*arm_scaling"):
        kc.block(g, drug(arm_scaling={"O->C2": 2.0}))


def test_a_study_table_sets_the_closed_route():
    """TOML has no null: ``closed_route = "none"`` in a blocker table is None (escape-only), and
    an explicit closed route on the balanced library ketamine is refused with the TOML spelling."""
    pytest.importorskip("xarray")
    from ketacore import study as S
    base = dict(model="erreger2005_2a", n_trials=1, n_channels=5, dt=1e-3,
                protocol=[{"duration": 0.01, "glutamate": 1e-3, "ketamine": 1e-6}])
    st = kc.Study(blockers=[{"name": "ketamine", "closed_route": "none"}], **base)
    (b,) = S._resolve_blockers(st, {})
    assert b.closed_route is None and b.k_escape == kc.blockers.get("ketamine").k_escape
    assert kc.Study.from_toml(st.to_toml()) == st
    (b,) = S._resolve_blockers(kc.Study(blockers=["ketamine"], **base), {})
    assert b.closed_route == "balanced"
    st = kc.Study(blockers=[{"name": "ketamine", "closed_route": "none", "k_on_closed": 1e5}], **base)
    assert S._resolve_blockers(st, {})[0].k_on_closed == 1e5
    with pytest.raises(kc.StudyError, match=r'blockers\[0\].*closed_route = "none"'):
        S._resolve_blockers(kc.Study(blockers=[{"name": "ketamine", "k_on_closed": 1e5}], **base), {})


# =========================================================================== review fixes
def test_weak_derived_closed_route_delta_names_the_derived_value():
    """The too-weak voltage dependence is the *derived* delta_on + delta_off - delta_escape:
    the message names effective_delta_on_closed, its formula, its inputs and what to change,
    not the (unused, 0) delta_on_closed input."""
    kw = dict(name="x", ligand="d", k_on=1e6, k_off=1.0, delta_on=.3, delta_off=.3,
              delta_escape=.5999, thermal_voltage=0.025, closed_route="balanced")
    with pytest.raises(ValueError) as ei:
        Blocker(k_escape=.01, **kw)
    msg = str(ei.value)
    assert msg.startswith("Blocker.effective_delta_on_closed=0.0001,")
    assert "delta_on + delta_off - delta_escape = 0.3 + 0.3 - 0.5999" in msg
    assert "set delta_escape = delta_on + delta_off (= 0.6)" in msg
    assert "thermal_voltage=None" in msg and "closed_route=None" in msg
    assert "Blocker.delta_on_closed=0.0" not in msg and "set delta_on_closed=0" not in msg
    # the suggested fixes are accepted
    assert Blocker(k_escape=.01, **{**kw, "delta_escape": .6}).effective_delta_on_closed == \
        pytest.approx(0.0, abs=1e-15)
    assert Blocker(k_escape=.01, **{**kw, "thermal_voltage": None}).closed_route == "balanced"
    # no escape (a zero route, but its rate law is still composed): the same message, not
    # one about "k_on_closed derived by closed_route='balanced'=0.0"
    with pytest.raises(ValueError, match=r"^Blocker\.effective_delta_on_closed=0\.0001, "):
        Blocker(k_escape=0.0, **kw)
    # an explicit (closed_route=None) delta_on_closed keeps its own message
    with pytest.raises(ValueError, match=r"^Blocker\.delta_on_closed=0\.0001 .*set "
                                         r"delta_on_closed=0"):
        Blocker(name="x", ligand="d", k_on=1e6, k_off=1.0, k_on_closed=10.0,
                delta_on_closed=1e-4, thermal_voltage=0.025)


@pytest.mark.parametrize("bad", ["None", "NONE", "null", "Balanced"])
def test_bad_closed_route_message_gives_the_study_spelling(bad):
    with pytest.raises(ValueError) as ei:
        drug(closed_route=bad)
    msg = str(ei.value)
    assert f"got {bad!r}" in msg
    assert 'closed_route = "none"' in msg and "lowercase" in msg
    assert 'closed_route = "balanced"' in msg


def test_study_table_with_capital_none_points_to_lowercase():
    pytest.importorskip("xarray")
    from ketacore import study as S
    base = dict(model="erreger2005_2a", n_trials=1, n_channels=5, dt=1e-3,
                protocol=[{"duration": 0.01, "glutamate": 1e-3, "ketamine": 1e-6}])
    st = kc.Study(blockers=[{"name": "ketamine", "closed_route": "None"}], **base)
    with pytest.raises(kc.StudyError, match=r'blockers\[0\].*got \'None\'.*closed_route = "none"'):
        S._resolve_blockers(st, {})


@pytest.fixture(scope="module")
def calibrate_script():
    """docs/calibrate_blockers.py imported as a module (sys.path restored afterwards)."""
    import importlib.util
    import pathlib
    import sys
    path = pathlib.Path(__file__).resolve().parents[1] / "docs" / "calibrate_blockers.py"
    if not path.exists():
        pytest.skip("docs/calibrate_blockers.py not in this tree")
    saved = list(sys.path)
    try:
        spec = importlib.util.spec_from_file_location("_calibrate_blockers_under_test", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path[:] = saved
    return mod


def test_calibration_functions_run_clean_under_warnings_as_errors(calibrate_script):
    """The calibration's own evaluations at concentrations it chose (MK-801 at a saturating
    1 M, IC50 root searches up to 100 mM) must not raise ketacore.UnitsWarning: the script is
    run as ``python -W error::UserWarning docs/calibrate_blockers.py``.  (The full script
    takes ~45 s; these are its quick pieces that touch such concentrations.)"""
    import warnings
    CB = calibrate_script
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        mk, fx = CB.fit_mk801()
        assert fx["tau_rec_m70"] == pytest.approx(CB.MK_TAU_REC, rel=1e-6)
        assert mk.k_off == pytest.approx(kc.blockers.get("mk801").k_off, rel=1e-4)
        ket = kc.blockers.get("ketamine")
        s_ = kc.block(kc.models.get(CB.GATING), ket)
        assert CB.ic50(s_, ket) == pytest.approx(ket.kd(CB.V_CAL), rel=1e-6)
        f = CB.memantine_figures(kc.blockers.get("memantine"))
        cost, kin = CB.memantine_kinetics_only_cost(CB.memantine_residuals(f))
        assert cost > kin > 0


def test_calibration_keep_stored_says_why(calibrate_script):
    """A refitted value is kept as stored either within KEEP_RTOL (relative) or because both
    are below KEEP_ZERO (however far apart relatively); the script's message says which."""
    CB = calibrate_script
    stored = kc.blockers.get("memantine_mealing1999")
    new, noisy = CB.keep_stored(stored.replace(k_escape=stored.k_escape * 0.7), stored)
    assert new.k_escape == stored.k_escape
    assert [(k, why) for k, _, _, why in noisy] == [("k_escape", "zero")]
    stored = kc.blockers.get("ketamine")
    new, noisy = CB.keep_stored(stored.replace(k_off=stored.k_off * (1 + 5e-5)), stored)
    assert new.k_off == stored.k_off
    assert [(k, why) for k, _, _, why in noisy] == [("k_off", "rtol")]
    new, noisy = CB.keep_stored(stored.replace(k_off=stored.k_off * 1.01), stored)
    assert new.k_off == stored.k_off * 1.01 and noisy == []
