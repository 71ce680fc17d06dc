"""Open-channel block composition (``kc.block``) and the blocker library (``kc.blockers``).

Exact identities (DESIGN.md §1, reference §5) are checked to 1e-6 relative or better; the
calibrated library is checked against the literature tolerances of reference §8 (IC50 ±30 %,
time constants ±40 %, trapping ±5 pp), or, where a target is missed, the model value is
asserted and the miss documented.  Everything is deterministic.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import optimize

from ketacore._validate import quiet_units

import ketacore as kc
from ketacore import theory
from ketacore.blockers import Blocker
from ketacore.units import FARADAY, GAS_CONSTANT, mM, ms, mV, s, uM

E = kc.experiments

DB_MODELS = ["ch82", "destexhe1994", "destexhe1994_sf", "erreger2005_2a", "erreger2005_2b"]


def agonist(scheme) -> str:
    return "agonist" if "agonist" in scheme.ligands else "glutamate"


def make_blocker(mode="trapping", **kw) -> Blocker:
    d = dict(name="x", ligand="drug", k_on=2e6, k_off=3.0, z=1.0, delta_on=0.3, delta_off=0.45,
             mode=mode)
    if mode == "partial_trapping":
        d.update(superficial_k_on=1e5, superficial_k_off=1.5)
    d.update(kw)
    return Blocker(**d)


def current_ratio(scheme, b_ligand, conc, **cond) -> float:
    p = theory.equilibrium(scheme, **cond, **{b_ligand: conc})
    p0 = theory.equilibrium(scheme, **cond)
    g = scheme.conductance
    return float(p @ g / (p0 @ g))


def ic50(scheme, b_ligand, **cond) -> float:
    f = lambda lc: current_ratio(scheme, b_ligand, 10.0 ** lc, **cond) - 0.5  # noqa: E731
    with quiet_units():   # (a root search up to 1 M: its own concentrations, not the user's)
        return 10.0 ** optimize.brentq(f, -13, 0, xtol=1e-14, rtol=1e-14)


def detailed_balance_residual(scheme, **cond) -> float:
    Q = scheme.q_matrix(**cond)
    p = theory.equilibrium(scheme, **cond)
    F = p[:, None] * Q
    np.fill_diagonal(F, 0.0)
    return float(np.abs(F - F.T).max() / F.max())


# --------------------------------------------------------------------------- exact identities
@pytest.mark.parametrize("model", DB_MODELS)
def test_trapping_ic50_equals_kb_independent_of_agonist(model):
    g = kc.models.get(model)
    b = make_blocker()
    s_ = kc.block(g, b)
    V = -70 * mV
    kb = b.kd(V, g.temperature)
    for a in (1 * uM, 1 * mM):
        cond = {"V": V, agonist(g): a}
        assert ic50(s_, "drug", **cond) == pytest.approx(kb, rel=1e-6)
        # and state by state: p(X·b)/p(X) = [B]/K_B
        p = theory.equilibrium(s_, **cond, drug=0.37 * uM)
        for x in g.states:
            assert p[s_.index(f"{x}·x")] / p[s_.index(x)] == pytest.approx(0.37 * uM / kb,
                                                                          rel=1e-9)


@pytest.mark.parametrize("model", DB_MODELS)
def test_sequential_ic50_equals_kb_over_po0(model):
    g = kc.models.get(model)
    b = make_blocker("sequential")
    s_ = kc.block(g, b)
    V = -40 * mV
    kb = b.kd(V, g.temperature)
    for a in (0.3 * uM, 1 * mM):
        cond = {"V": V, agonist(g): a}
        po0 = theory.open_probability(g, **cond)
        assert ic50(s_, "drug", **cond) == pytest.approx(kb / po0, rel=1e-6)


def test_woodhull_rates_in_q():
    g = kc.models.get("destexhe1994_sf")
    b = make_blocker()
    s_ = kc.block(g, b)
    T = g.temperature
    for V in (-100 * mV, -70 * mV, 0.0, 40 * mV):
        Q = s_.q_matrix(V=V, glutamate=1 * mM, drug=1 * uM)
        vt = GAS_CONSTANT * T / FARADAY
        on = 2e6 * 1e-6 * math.exp(-1.0 * 0.3 * V / vt)
        off = 3.0 * math.exp(1.0 * 0.45 * V / vt)
        assert Q[s_.index("O"), s_.index("O·x")] == pytest.approx(on, rel=1e-12)
        assert Q[s_.index("O·x"), s_.index("O")] == pytest.approx(off, rel=1e-12)
        assert Q[s_.index("C2"), s_.index("C2·x")] == 0.0      # no closed route by default
        assert Q[s_.index("C2·x"), s_.index("C2")] == 0.0
        assert Q[s_.index("C2·x"), s_.index("O·x")] == Q[s_.index("C2"), s_.index("O")]
    assert b.kd(-70 * mV, T) == pytest.approx(1.5e-6 * math.exp(0.75 * -0.07 / vt), rel=1e-12)


def test_blocked_arm_scaling():
    g = kc.models.get("destexhe1994_sf")
    b = make_blocker(closing_factor=3.0, opening_factor=0.5, arm_scaling={"C2->D": 2.0})
    s_ = kc.block(g, b)
    Q = s_.q_matrix(V=-70 * mV, glutamate=1 * mM)
    i = s_.index
    assert Q[i("O·x"), i("C2·x")] == pytest.approx(3 * 73.8)
    assert Q[i("C2·x"), i("O·x")] == pytest.approx(0.5 * 46.5)
    assert Q[i("C2·x"), i("D·x")] == pytest.approx(2 * 8.4)
    assert Q[i("D·x"), i("C2·x")] == pytest.approx(6.8)
    assert Q[i("O"), i("C2")] == pytest.approx(73.8)
    with pytest.raises(ValueError, match="arm_scaling keys"):
        kc.block(g, make_blocker(arm_scaling={"C9->O": 2.0}))


# --------------------------------------------------------------------------- structure
@pytest.mark.parametrize("model", kc.models.available())
@pytest.mark.parametrize("names", [("ketamine",), ("memantine",), ("mk801",), ("amantadine",),
                                   ("mg_ascher_nowak1988",), ("ketamine", "mg"),
                                   ("memantine", "mk801"), ("ketamine_mealing1999",),
                                   ("memantine_mealing1999",), ("ketamine_closed_route",)])
def test_composed_rows_sum_to_zero_and_round_trip(model, names):
    g = kc.models.get(model)
    bl = [kc.blockers.get(n) for n in names]
    if any(b.ligand in g.ligands for b in bl):
        with pytest.raises(ValueError, match="clashes"):
            kc.block(g, *bl)
        return
    s_ = kc.block(g, *bl)
    for V, c in itertools.product((-80 * mV, 30 * mV), (0.0, 1 * uM, 1 * mM)):
        Q = s_.q_matrix(V=V, **{l: c for l in s_.ligands})
        off = Q - np.diag(np.diag(Q))
        assert np.all(off >= 0)
        assert np.abs(Q.sum(axis=1)).max() <= 1e-12 * np.abs(np.diag(Q)).max()
    assert kc.Scheme.from_toml(s_.to_toml()) == s_
    blocked = [x for x in s_.states if "·" in x]
    assert np.all(s_.conductance[s_.indices(blocked)] == 0)
    assert s_.open_states == g.open_states


def test_state_names_counts_and_site_exclusion():
    g = kc.models.get("destexhe1994_sf")
    s_ = kc.block(g, "ketamine", "mg")
    assert s_.states == ("C0", "C1", "C2", "D", "O", "C0·ket", "C1·ket", "C2·ket", "D·ket",
                         "O·ket", "C0·mg", "C1·mg", "C2·mg", "D·mg", "O·mg")
    # a sequential Mg2+ twins only the open state
    sq = kc.block(g, "ketamine", kc.blockers.get("mg").replace(mode="sequential"))
    assert sq.states == s_.states[:10] + ("O·mg",)
    assert s_.ligands == ("glutamate", "ketamine", "mg")
    assert not any("ket" in x and "mg" in x for x in s_.states)   # one pore, one blocker
    # partial trapping: deep + superficial twin of every state, mutually exclusive
    m = kc.block(g, "memantine")
    assert m.n_states == 15
    assert "C0·mem_s" in m.states and not any(x.count("·") > 1 for x in m.states)
    # two trapping blockers on different sites: product of arms
    y = make_blocker(name="y", ligand="ydrug", site="outer")
    p = kc.block(g, "ketamine", y)
    assert p.n_states == 20 and "C1·ket·y" in p.states
    # a sequential blocker on another site: only on open-gated states
    ys = make_blocker("sequential", name="y", ligand="ydrug", site="outer")
    q = kc.block(g, "ketamine", ys)
    assert q.n_states == 12 and "O·ket·y" in q.states and "C2·y" not in q.states
    # CH82: sequential twins for both open states, no gating in the blocked arm
    c = kc.block(kc.models.get("ch82"), make_blocker("sequential"))
    assert c.states[-2:] == ("AR*·x", "A2R*·x")
    Q = c.q_matrix(agonist=1 * uM, drug=1 * uM)
    assert Q[c.index("AR*·x"), c.index("A2R*·x")] == 0.0


def test_unreachable_states_dropped():
    g = kc.models.get("destexhe1994")
    s_ = kc.block(g, make_blocker(k_on=0.0))   # can never bind: no blocked states at all
    assert s_.states == g.states


def test_block_accepts_names_and_default_name():
    s_ = kc.block(kc.models.get("erreger2005_2a"), "ketamine")
    assert s_.name == "erreger2005_2a+ket"
    assert "Gilling" in s_.citation


# --------------------------------------------------------------------------- detailed balance
@pytest.mark.parametrize("model", DB_MODELS)
def test_detailed_balance_preserved(model):
    g = kc.models.get(model)
    a = agonist(g)
    blockers = [
        [make_blocker()],
        [make_blocker("sequential")],
        [make_blocker("partial_trapping")],
        [make_blocker(closing_factor=3.0)],
        [make_blocker(), make_blocker("sequential", name="y", ligand="ydrug", k_on=1e5)],
        [make_blocker(), make_blocker(name="y", ligand="ydrug", site="outer")],
        [kc.blockers.get("mg"), kc.blockers.get("memantine").replace(k_escape=0.0)],
    ]
    for bl in blockers:
        s_ = kc.block(g, *bl)
        cond = {"V": -60 * mV, a: 3 * uM, **{b.ligand: 2 * uM for b in bl}}
        assert detailed_balance_residual(s_, **cond) < 1e-9, [b.name for b in bl]
        assert theory.is_reversible(s_, rtol=1e-7, **cond)


def test_escape_breaks_and_matching_closed_route_restores_detailed_balance():
    g = kc.models.get("destexhe1994_sf")
    cond = {"V": 0.0, "glutamate": 3 * uM, "drug": 1 * uM}
    leaky = kc.block(g, make_blocker(k_escape=1e-2))
    assert detailed_balance_residual(leaky, **cond) > 1e-4
    # closed route with k_escape/k_on_closed = K_B(0 V) = k_off/k_on: reversible again at 0 V
    b = make_blocker(k_escape=1e-2, k_on_closed=1e-2 * 2e6 / 3.0)
    assert detailed_balance_residual(kc.block(g, b), **cond) < 1e-9
    # a one-way escape leak (k_escape without its closed route) is not reversible; the library
    # ketamine balances its escape (closed_route='balanced', tests/test_blockers_balance.py)
    one_way = kc.block(g, kc.blockers.get("ketamine").replace(closed_route=None))
    assert not theory.is_reversible(one_way, V=-70 * mV, glutamate=3 * uM, ketamine=1 * uM)
    ket = kc.block(g, "ketamine")
    assert theory.is_reversible(ket, V=-70 * mV, glutamate=3 * uM, ketamine=1 * uM)


# --------------------------------------------------------------------------- validation
def test_validation_errors():
    g = kc.models.get("destexhe1994")
    with pytest.raises(ValueError, match="unknown blocker 'nope'"):
        kc.blockers.get("nope")
    with pytest.raises(ValueError, match="unknown blocker"):
        kc.block(g, "nope")
    with pytest.raises(ValueError, match="mode must be one of"):
        make_blocker("plugging")
    with pytest.raises(ValueError, match="clashes with a ligand"):
        kc.block(g, make_blocker(ligand="glutamate"))
    with pytest.raises(ValueError, match="two blockers named"):
        kc.block(g, make_blocker(), make_blocker(ligand="other"))
    with pytest.raises(ValueError, match="two blockers use the ligand"):
        kc.block(g, make_blocker(), make_blocker(name="y"))
    with pytest.raises(ValueError, match="at least one blocker"):
        kc.block(g)
    with pytest.raises(TypeError):  # (a model name is accepted: test_blockers_review.py)
        kc.block(["destexhe1994"], "ketamine")
    with pytest.raises(TypeError):
        kc.block(g, 3)
    with pytest.raises(ValueError, match="superficial"):
        make_blocker("partial_trapping", superficial_k_on=0.0)
    with pytest.raises(ValueError, match="only for mode 'partial_trapping'"):
        make_blocker(superficial_k_on=1.0, superficial_k_off=1.0)
    with pytest.raises(ValueError, match="sequential"):
        make_blocker("sequential", k_escape=1.0)
    with pytest.raises(ValueError, match="k_on must be >= 0"):
        make_blocker(k_on=-1.0)
    with pytest.raises(ValueError, match="must not contain"):
        make_blocker(name="a·b")


def test_library_contents():
    names = kc.blockers.available()
    for n in ("ketamine", "memantine", "mk801", "amantadine", "mg_kampa2004",
              "mg_ascher_nowak1988", "mg"):
        assert n in names
        b = kc.blockers.get(n)
        assert b.citation and b.notes and b.doi.startswith("10.")
        assert "K_B" in b.describe()
    assert kc.blockers.get("mg") is kc.blockers.get("mg_kampa2004")
    assert kc.blockers.get("ketamine").mode == "trapping"
    assert kc.blockers.get("memantine").mode == "partial_trapping"
    assert kc.blockers.get("mg").mode == "trapping"
    assert kc.blockers.get("ketamine").delta == pytest.approx(0.79)
    # variants: not the defaults, same tag as the parent, delta kept
    for n, parent in (("ketamine_mealing1999", "ketamine"), ("memantine_mealing1999", "memantine"),
                      ("ketamine_closed_route", "ketamine")):
        v, p = kc.blockers.get(n), kc.blockers.get(parent)
        assert n in names and "VARIANT" in v.notes and v.citation
        assert (v.name, v.ligand, v.mode, v.delta) == (p.name, p.ligand, p.mode, p.delta)
    assert kc.blockers.get("ketamine").k_on_closed == 0.0
    assert kc.blockers.get("ketamine_closed_route").k_on_closed > 0


# --------------------------------------------------------------------------- Mg2+
def test_mg_kampa_blocker_matches_kampa_model_rates():
    kam = kc.models.get("kampa2004")
    b = kc.blockers.get("mg_kampa2004")
    for V in (-90 * mV, -60 * mV, 0.0, 40 * mV):
        Q = kam.q_matrix(V=V, glutamate=0.0, mg=1 * mM)
        assert b.k_on_at(V) * 1 * mM == pytest.approx(Q[kam.index("O"), kam.index("OMg")],
                                                      rel=1e-12)
        assert b.k_off_at(V) == pytest.approx(Q[kam.index("OMg"), kam.index("O")], rel=1e-12)
    unblocked = 1 / (1 + 1 * mM / b.kd(-60 * mV))
    assert unblocked == pytest.approx(0.0791, abs=5e-5)


@pytest.mark.parametrize("gating", ["destexhe1994_sf", "erreger2005_2a"])
def test_mg_blocks_synaptic_charge_like_jahr_stevens(gating):
    """A 1 ms, 1 mM glutamate pulse at -60 mV in 1 mM Mg2+: the library Mg2+ (trapping with
    copied gating, Clarke & Johnson 2008) keeps the fraction of charge that open-channel block
    leaves, K_B/(K_B + [Mg]) = 0.0791, and does not slow the decay.  Sequential block -- a
    blocked channel cannot close -- would keep ~all the charge (reference 1c/1e/2c schemes all
    let Mg2+-blocked channels close)."""
    g = kc.models.get(gating)
    mg = kc.blockers.get("mg")
    rest = kc.theory.equilibrium(g, V=-60 * mV, glutamate=0.0)

    def response(blocker):
        s_ = kc.block(g, blocker)
        p0 = np.zeros(s_.n_states)
        p0[s_.indices(g.states)] = rest
        pr = kc.Protocol([kc.Step(1 * ms, V=-60 * mV, glutamate=1 * mM, mg=1 * mM),
                          kc.Step(4.0, V=-60 * mV, mg=1 * mM)])
        return kc.solve(s_, pr, 1e-4, initial=p0).current

    ctl = kc.solve(g, kc.Protocol([kc.Step(1 * ms, V=-60 * mV, glutamate=1 * mM),
                                   kc.Step(4.0, V=-60 * mV)]), 1e-4, initial=rest).current
    unblocked = 1 / (1 + 1 * mM / mg.kd(-60 * mV))
    cur = response(mg)
    assert cur.sum() / ctl.sum() == pytest.approx(unblocked, rel=0.03)
    # the same decay: time from the peak to 1/e of it within 5 %
    def decay(i):
        k = int(np.argmin(i))
        return np.argmax(i[k:] > i[k] / np.e)
    assert decay(cur) == pytest.approx(decay(ctl), rel=0.05)
    assert response(mg.replace(mode="sequential")).sum() / ctl.sum() > 0.9


def test_mg_ascher_nowak_rates():
    b = kc.blockers.get("mg_ascher_nowak1988")
    for V in (-80 * mV, 0.0, 40 * mV):
        assert b.k_on_at(V) == pytest.approx(6.1e5 * math.exp(-V / (17 * mV)), rel=1e-12)
        assert b.k_off_at(V) == pytest.approx(5400 * math.exp(V / (47 * mV)), rel=1e-12)
    assert 1 / (1 + 1 * mM / b.kd(-60 * mV)) == pytest.approx(0.0675, abs=5e-5)


def test_jahr_stevens_table():
    # reference 2a derived table, 1 mM Mg2+
    table = {-80: 0.0244, -60: 0.0796, -40: 0.2302, -20: 0.5081, 0: 0.7812, 20: 0.9250,
             40: 0.9771}
    V = np.array(list(table)) * mV
    np.testing.assert_allclose(kc.blockers.jahr_stevens(V, 1 * mM), list(table.values()),
                               atol=1e-4)
    assert kc.blockers.jahr_stevens(-60 * mV) == pytest.approx(0.0796, abs=1e-4)
    assert kc.blockers.jahr_stevens(0.0, 0.0) == 1.0
    with pytest.raises(ValueError, match="volts"):
        kc.blockers.jahr_stevens(-60.0)


# Steady-state Mg2+ I-V of the kinetic library vs Jahr & Stevens 1990 (docs/validation.md rows).
# Unblocked fraction at 1 mM Mg2+, 1 mM glutamate, exact equilibrium: whole-current ratio
# Po(Mg)/Po(0) (what Jahr-Stevens' macroscopic B(V) describes) and open-channel ratio O/(O+O.Mg).
MG_IV_V = (-80, -60, -40, -20, 0)                                            # mV
MG_IV = {  # name: (published k_on(V) /M/s, k_off(V) /s, pinned unblocked fractions)
    "mg": (lambda v: 5e4 * math.exp(-2 * 0.8 * (v - 40) / 25),               # Kampa 2004 .mod
           lambda v: 12800 * math.exp(2 * 0.2 * (v - 40) / 25),
           (0.0170, 0.0791, 0.2984, 0.6781, 0.9126)),
    "mg_ascher_nowak1988": (lambda v: 6.1e5 * math.exp(-v / 17),            # Ascher & Nowak
                            lambda v: 5400 * math.exp(v / 47),
                            (0.0144, 0.0675, 0.2644, 0.6408, 0.8985)),
}


def _js(v_mv: float, mg_mM: float = 1.0) -> float:
    """Jahr & Stevens 1990 B(V), written out (independent of kc.blockers.jahr_stevens)."""
    return 1.0 / (1.0 + math.exp(-0.062 * v_mv) * mg_mM / 3.57)


@pytest.mark.parametrize("name", list(MG_IV))
def test_mg_steady_state_iv_vs_jahr_stevens(name):
    kon, koff, pinned = MG_IV[name]
    g = kc.models.get("erreger2005_2a")
    s_ = kc.block(g, name)
    devs = []
    for v, pin in zip(MG_IV_V, pinned):
        V = v * mV
        p = theory.equilibrium(s_, V=V, glutamate=1 * mM, mg=1 * mM)
        open_ratio = p[s_.index("O")] / (p[s_.index("O")] + p[s_.index("O·mg")])
        whole = (theory.open_probability(s_, V=V, glutamate=1 * mM, mg=1 * mM)
                 / theory.open_probability(g, V=V, glutamate=1 * mM))
        kd = koff(v) / kon(v)                                               # M, Woodhull
        # trapping with copied gating: both ratios are K_B/(K_B + [Mg]) exactly
        assert open_ratio == pytest.approx(kd / (kd + 1 * mM), rel=1e-9)
        assert whole == pytest.approx(kd / (kd + 1 * mM), rel=1e-9)
        assert whole == pytest.approx(pin, abs=5e-5)
        devs.append(whole / _js(v) - 1)
    # K_B(V) e-folds at 0.080 /mV (both rate sets) vs Jahr-Stevens 0.062 /mV
    slope = math.log((koff(0) / kon(0)) / (koff(-10) / kon(-10))) / 10
    assert slope == pytest.approx(0.080, abs=2e-4)
    # the verdicts of docs/validation.md at +-20 % (misses pinned as misses)
    misses = tuple(v for v, d in zip(MG_IV_V, devs) if abs(d) > 0.20)
    if name == "mg":
        np.testing.assert_allclose(devs, [-0.302, -0.007, 0.297, 0.335, 0.168], atol=1e-3)
        assert misses == (-80, -40, -20)
    else:
        np.testing.assert_allclose(devs, [-0.411, -0.152, 0.149, 0.261, 0.150], atol=1e-3)
        assert misses == (-80, -20)


def test_kampa2004_model_steady_state_iv_vs_jahr_stevens():
    """The kampa2004 model: Mg2+ also binds closed states and changes gating, so the whole-current
    ratio (the Jahr-Stevens quantity) is well below the open-channel ratio O/(O+OMg)."""
    s_ = kc.models.get("kampa2004")
    opens, wholes = [], []
    for v in MG_IV_V:
        p = theory.equilibrium(s_, V=v * mV, glutamate=1 * mM, mg=1 * mM)
        opens.append(p[s_.index("O")] / (p[s_.index("O")] + p[s_.index("OMg")]))
        wholes.append(theory.open_probability(s_, V=v * mV, glutamate=1 * mM, mg=1 * mM)
                      / theory.open_probability(s_, V=v * mV, glutamate=1 * mM, mg=0.0))
    np.testing.assert_allclose(opens, [0.0170, 0.0790, 0.2978, 0.6771, 0.9121], atol=5e-5)
    np.testing.assert_allclose(wholes, [0.00626, 0.0301, 0.1323, 0.4241, 0.7803], atol=5e-5)
    devs = [w / _js(v) - 1 for v, w in zip(MG_IV_V, wholes)]
    assert tuple(v for v, d in zip(MG_IV_V, devs) if abs(d) > 0.20) == (-80, -60, -40)


# --------------------------------------------------------------------------- calibration
GATING = "erreger2005_2a"
V_CAL = -70 * mV
GLU = 1 * mM


def _tau_fit(t, y) -> float:
    f = lambda t, a, tau, c: a * np.exp(-t / tau) + c  # noqa: E731
    popt, _ = optimize.curve_fit(f, t, y, p0=(y[0] - y[-1], t[-1] / 8, y[-1]), maxfev=20000)
    return float(popt[1])


def _mealing(s_, b, conc=10 * uM, co=30 * s, wash=120 * s):
    prot = kc.Protocol([kc.Step(co, V=V_CAL, glutamate=GLU, **{b.ligand: conc}),
                        kc.Step(wash, V=V_CAL)])
    r = kc.solve(s_, prot, dt=1.0, initial={"V": V_CAL, "glutamate": GLU})
    po_ctl = theory.open_probability(s_, V=V_CAL, glutamate=GLU)
    blk = np.array(["·" + b.name in x for x in s_.states])
    i = int(co)
    return (1 - r.open_probability[i] / po_ctl,
            r.occupancy[-1, blk].sum() / r.occupancy[i, blk].sum())


def test_calibrated_ketamine_vs_literature():
    b = kc.blockers.get("ketamine")
    s_ = kc.block(kc.models.get(GATING), b)
    # Gilling 2009: IC50 0.71 uM (+-30 %): model 0.759 uM (+7 %; = K_B, the escape balanced)
    x = ic50(s_, "ketamine", V=V_CAL, glutamate=GLU)
    assert abs(x / 0.71e-6 - 1) <= 0.30
    assert x == pytest.approx(0.759e-6, rel=0.01)
    # Gilling 2009 at 10 uM: tau_on 0.58 s, tau_off 4.5 s (+-40 %): model 0.535 s, 5.11 s
    r = kc.solve(s_, kc.Step(8 * s, V=V_CAL, glutamate=GLU, ketamine=10 * uM), dt=5e-3,
                 initial={"V": V_CAL, "glutamate": GLU})
    ton = _tau_fit(r.time, r.open_probability)
    r = kc.solve(s_, kc.Step(40 * s, V=V_CAL, glutamate=GLU), dt=20e-3,
                 initial={"V": V_CAL, "glutamate": GLU, "ketamine": 10 * uM})
    toff = _tau_fit(r.time, r.open_probability)
    assert abs(ton / 0.58 - 1) <= 0.40 and ton == pytest.approx(0.535, rel=0.02)
    assert abs(toff / 4.5 - 1) <= 0.40 and toff == pytest.approx(5.11, rel=0.02)
    # Mealing 1999: trapped 86 % (+-5 pp) -> model 86.0 %.  Block 80 % (+-5 pp) is MISSED:
    # model 93.0 % (the exact identity IC50 = K_B makes 80 % at 10 uM need IC50 ~2.5 uM,
    # incompatible with Gilling's 0.71 uM; documented in the blocker notes).
    block, trapped = _mealing(s_, b)
    assert abs(trapped - 0.86) <= 0.05
    assert block == pytest.approx(0.930, abs=0.003)


def _memantine_escape_tau(b, conc=10 * uM, co=30 * s) -> float:
    """Kotermanski 2009 escape: amplitude-weighted tau of the 0.1-10 s components of the exact
    relaxation of the blocked occupancy after agonist and drug removal (as docs/validation.md)."""
    s_ = kc.block(kc.models.get(GATING), b)
    p = kc.solve(s_, kc.Step(co, V=V_CAL, glutamate=GLU, memantine=conc), dt=co,
                 initial={"V": V_CAL, "glutamate": GLU}).occupancy[-1]
    p = p / p.sum()
    blk = np.array(["·mem" in x for x in s_.states])
    rel = theory.relaxation(s_, initial=p, V=V_CAL)
    taus = np.real(np.asarray(rel.taus))
    a = np.abs(np.real(np.asarray(rel.amplitudes))[:, blk].sum(axis=1)) / p[blk].sum()
    sel = (taus > 0.1) & (taus < 10) & (a > 1e-3)
    return float(np.sum(a[sel] * taus[sel]) / np.sum(a[sel]))


def test_calibrated_memantine_vs_literature():
    b = kc.blockers.get("memantine")
    s_ = kc.block(kc.models.get(GATING), b)
    x = ic50(s_, "memantine", V=V_CAL, glutamate=GLU)
    assert abs(x / 1e-6 - 1) <= 0.30                       # Gilling ~1 uM: model 1.07 uM
    assert x == pytest.approx(1.072e-6, rel=0.01)
    block, trapped = _mealing(s_, b)
    assert abs(trapped - 0.71) <= 0.05                     # Mealing 71 %: model 71.0 %
    assert block == pytest.approx(0.903, abs=0.003)        # Mealing 81 %: MISSED (90.3 %)
    tr = E.trapping(GATING, b)                             # current definition: model 70.4 %
    assert abs(tr.trapped_current - 0.71) <= 0.05
    # Blanpied 1997: 1/6 of blocked channels release memantine (short wash, 5 s)
    _, trapped5 = _mealing(s_, b, wash=5 * s)
    assert abs((1 - trapped5) - 1 / 6) <= 0.05
    # Kotermanski 2009: escape tau 0.79 +- 0.32 s (tolerance +-0.4 s): model 0.78 s
    assert abs(_memantine_escape_tau(b) - 0.79) <= 0.4


def test_calibrated_memantine_kinetics_gilling2009():
    """Gilling 2009, 10 uM, -70 mV, two-exponential onset (273 ms 69 % + 2756 ms 31 %) and
    offset (415 ms 38 % + 5107 ms 62 %) of the exact I/I0 (docs/calibrate_blockers.py
    memantine_kinetics; tolerance tau +-40 %, weight +-10 pp).  A compromise on erreger2005_2a
    (83 % of receptors in the slow desensitized state D2): every component MISSES, by the
    amounts asserted here and documented in the blocker notes and docs/validation.md."""
    b = kc.blockers.get("memantine")
    k = E.block_kinetics(GATING, b, 10 * uM, t_on=8 * s, t_off=40 * s, n_samples=1601,
                         n_exponentials=2)
    got = {}
    for ph, taus, ws in (("on", k.taus_on, k.weights_on), ("off", k.taus_off, k.weights_off)):
        o = np.argsort(taus)
        got[ph] = [(float(taus[i]), float(ws[i])) for i in o]
    lit = {"on": ((0.273, 0.69), (2.756, 0.31)), "off": ((0.415, 0.38), (5.107, 0.62))}
    model = {"on": ((0.1443, 0.818), (2.459, 0.182)), "off": ((0.5903, 0.283), (10.51, 0.717))}
    for ph in ("on", "off"):
        for (t, w), (lt, lw), (mt, mw) in zip(got[ph], lit[ph], model[ph]):
            assert t == pytest.approx(mt, rel=0.02) and w == pytest.approx(mw, abs=0.01), ph
            # the compromise stays within ~2.5 tolerances of every target
            assert abs(math.log(t / lt)) <= 2.5 * math.log(1.4) and abs(w - lw) <= 0.14, ph
    # met parts: slow onset tau (-11 %), offset weights (-9.7 / +9.7 pp)
    assert abs(got["on"][1][0] / 2.756 - 1) <= 0.40
    assert abs(got["off"][0][1] - 0.38) <= 0.10 and abs(got["off"][1][1] - 0.62) <= 0.10
    # the old, uncalibrated set was several times faster: onset 19 ms (89 %), offset 2.2 s
    assert got["on"][0][0] > 0.1 and got["off"][1][0] > 5.107
    # the exact relaxation has the two slow phases the fit sees (D2-limited)
    assert np.max(k.theory_taus_off) > 5.0


def test_calibrated_memantine_voltage_dependence():
    """Gilling 2009: memantine's voltage dependence is stronger than ketamine's (delta 0.79).
    No memantine delta was found; the deep-site delta (~1.0, split evenly) is chosen so the
    apparent z*delta of IC50(V), -100..-40 mV, is 0.83, above ketamine's."""
    vs = np.array([-100, -80, -70, -60, -40]) * mV
    zm = E.woodhull(GATING, "memantine", vs).z_delta
    zk = E.woodhull(GATING, "ketamine", vs).z_delta
    assert zk == pytest.approx(0.79, abs=1e-6)   # IC50 = K_B exactly (balanced escape)
    assert zm > zk and zm == pytest.approx(0.83, abs=0.005)
    b = kc.blockers.get("memantine")
    assert b.delta_on == b.delta_off and b.delta == pytest.approx(0.993, abs=0.002)
    assert b.delta > zm            # the voltage-independent superficial site dilutes it
    assert kc.blockers.get("memantine_mealing1999").delta == b.delta


def test_calibrated_mk801_recovery():
    b = kc.blockers.get("mk801")
    s_ = kc.block(kc.models.get(GATING), b)
    blk = np.array(["·mk801" in x for x in s_.states])
    for V, target in ((-70 * mV, 90 * 60.0), (30 * mV, 2 * 60.0)):
        with quiet_units():   # (1 M: every channel blocked at the start, on purpose)
            p0 = theory.equilibrium(s_, V=V, glutamate=GLU, mk801=1.0)
        r = kc.solve(s_, kc.Step(6 * target, V=V, glutamate=GLU), dt=target / 50, initial=p0)
        tau = _tau_fit(r.time, r.occupancy[:, blk].sum(axis=1))
        assert 0.5 <= tau / target <= 2.0, (V, tau / 60)     # Huettner & Bean: factor 2


# --------------------------------------------------------------------------- amantadine
AM_T = np.concatenate([np.arange(0, 5e-3, 1e-5), np.arange(5e-3, 50e-3, 1e-4),
                       np.arange(50e-3, 1.0, 1e-3)])


def _three_exp(t, y, p0_taus):
    f = lambda t, a1, t1, a2, t2, a3, t3, c: (a1 * np.exp(-t / t1) + a2 * np.exp(-t / t2)  # noqa
                                              + a3 * np.exp(-t / t3) + c)
    sp = y[0] - y[-1]
    popt, _ = optimize.curve_fit(f, t, y, p0=(sp / 2, p0_taus[0], sp / 4, p0_taus[1], sp / 4,
                                              p0_taus[2], y[-1]),
                                 bounds=([-np.inf, 1e-7] * 3 + [-np.inf], np.inf), maxfev=20000)
    taus, amps = np.array(popt[1:6:2]), np.array(popt[0:6:2])
    o = np.argsort(taus)
    return taus[o], amps[o] / amps[o].sum()


def test_calibrated_amantadine_blanpied2005():
    """docs/calibrate_blockers.py fit_amantadine: erreger2005_2b, 30 uM glutamate, 22 C."""
    b = kc.blockers.get("amantadine")
    g = kc.models.get("erreger2005_2b")
    s_ = kc.block(g, b)
    glu, conc = 30 * uM, 100 * uM
    # Blanpied 1997: IC50 39 uM at -67 mV, held exactly; IC50 = K_B/(Po + c/o (1 - Po))
    x = ic50(s_, "amantadine", V=-67 * mV, glutamate=glu)
    assert x == pytest.approx(39 * uM, rel=1e-4)
    po = theory.open_probability(g, V=-67 * mV, glutamate=glu)
    cf = b.closing_factor / b.opening_factor
    assert x == pytest.approx(b.kd(-67 * mV, g.temperature) / (po + cf * (1 - po)), rel=1e-6)
    assert b.closing_factor > 1          # accelerated closure of blocked channels (Blanpied 2005)
    # Blanpied 2005 Table 1, jump -67 -> +40 mV in 100 uM: 0.279 ms (53.1 %), 5.17 ms (27.5 %),
    # 153 ms (19.4 %); three-exponential fit of the exact Po(t) over 1 s
    p0 = theory.equilibrium(s_, V=-67 * mV, glutamate=glu, amantadine=conc)
    rel = theory.relaxation(s_, initial=p0, V=40 * mV, glutamate=glu, amantadine=conc)
    taus, amps = np.real(np.asarray(rel.taus)), np.real(np.asarray(rel.popen_amplitudes))
    y = (np.asarray(rel.equilibrium)[s_.open_mask].sum()
         + (amps[None, :] * np.exp(-AM_T[:, None] / taus[None, :])).sum(axis=1))
    ft, fr = _three_exp(AM_T, y, (0.279e-3, 5.17e-3, 153e-3))
    assert abs(ft[0] / 0.279e-3 - 1) <= 0.2                          # model 0.286 ms
    assert np.all(np.abs(fr - [0.531, 0.275, 0.194]) <= 0.05)         # model 51.6/27.5/20.9 %
    assert ft[1] == pytest.approx(6.21e-3, rel=0.02)                  # +20 %: at the edge
    assert ft[2] == pytest.approx(81.7e-3, rel=0.02)                  # -47 %: documented MISS


# --------------------------------------------------------------------------- variants
def test_mealing_variants():
    """docs/calibrate_blockers.py fit_mealing_variant (native neurons, Mealing 1999)."""
    g = kc.models.get(GATING)
    for n, blk_t, trp_t, blk_m, trp_m, ic50_m in (
            ("ketamine_mealing1999", 0.80, 0.86, 0.800, 0.860, 2.50e-6),
            ("memantine_mealing1999", 0.81, 0.71, 0.823, 0.685, 2.14e-6)):
        b = kc.blockers.get(n)
        s_ = kc.block(g, b)
        block, trapped = _mealing(s_, b)
        assert abs(block - blk_t) <= 0.05 and abs(trapped - trp_t) <= 0.05, n
        assert block == pytest.approx(blk_m, abs=0.002) and trapped == pytest.approx(trp_m,
                                                                                     abs=0.002)
        assert ic50(s_, b.ligand, V=V_CAL, glutamate=GLU) == pytest.approx(ic50_m, rel=0.01)
    # ketamine variant: trapping with copied gating, so IC50 ~ K_B (k_escape is tiny)
    b = kc.blockers.get("ketamine_mealing1999")
    assert b.kd(V_CAL, g.temperature) == pytest.approx(2.5e-6, rel=0.01)
    assert b.k_on == kc.blockers.get("ketamine").k_on


def _orser(b, glu=3 * uM, V=V_CAL):
    g = kc.models.get(GATING)
    s_ = kc.block(g, b)
    po0 = theory.open_probability(g, V=V, glutamate=glu)
    mo0 = theory.dwell_times(g, "open", V=V, glutamate=glu).mean
    out = []
    for c in (1 * uM, 0.1 * uM):
        po = theory.open_probability(s_, V=V, glutamate=glu, ketamine=c)
        mo = theory.dwell_times(s_, "open", V=V, glutamate=glu, ketamine=c).mean
        out.append((po / po0, mo / mo0, (po / mo) / (po0 / mo0)))
    return out


def test_closed_route_variant_orser1997():
    """Orser 1997 (cell-attached, control Po 0.058 ~ erreger2005_2a at 3 uM glutamate):
    Po 24 % at 1 uM, 53 % at 0.1 uM, opening frequency 44 %, mean open time 68 %."""
    (po1, mo1, fr1), (po01, _, _) = _orser(kc.blockers.get("ketamine"))
    assert (po1, po01, fr1, mo1) == pytest.approx((0.431, 0.883, 0.435, 0.990), abs=0.002)
    (po1, mo1, fr1), (po01, _, _) = _orser(kc.blockers.get("ketamine_closed_route"))
    assert (po1, po01, fr1, mo1) == pytest.approx((0.302, 0.804, 0.305, 0.990), abs=0.002)
    assert abs(po1 / 0.24 - 1) > 0.2 and abs(mo1 / 0.68 - 1) > 0.2   # still MISSED
    # the route is not in detailed balance with the open-channel site (k_escape/k_on_closed
    # << K_B), so the stationary block exceeds the open-channel equilibrium: IC50 < K_B
    b = kc.blockers.get("ketamine_closed_route")
    s_ = kc.block(kc.models.get(GATING), b)
    assert b.k_escape / b.k_on_closed < 0.01 * b.kd(V_CAL)
    assert ic50(s_, "ketamine", V=V_CAL, glutamate=GLU) == pytest.approx(0.50e-6, rel=0.02)


def test_an_uncalibrated_library_blocker_warns_once_per_process(monkeypatch):
    """helper-98's audit: ic50(..., 'mk801') reported 87 pM with no caveat, though its k_on is a
    documented placeholder (literature IC50s are ~100x weaker).  Fetching it now says so, once."""
    import warnings
    from ketacore import blockers as B
    monkeypatch.setattr(B, "_WARNED_UNCALIBRATED", set())
    with pytest.warns(UserWarning, match=r"blocker 'mk801': k_on .* UNCALIBRATED .* recovery kinetics "
                                         r"are calibrated"):
        B.get("mk801")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        B.get("mk801")                      # once per process
        B.get("ketamine")                   # calibrated blockers never warn
    assert set(B._UNCALIBRATED) <= set(B.available())


def test_library_scans_do_not_warn_about_a_blocker_the_user_did_not_choose(monkeypatch):
    """helper-103's audit: ic50(g, "ketamine", background={"mg": 1e-3}) (without also=["mg"])
    warned that MK-801 is uncalibrated before its ValueError -- the hint scanned the library
    with get().  Scans use _peek; the listing marks MK-801 on its line instead."""
    import warnings
    from ketacore import blockers as B
    from ketacore import experiments as E
    monkeypatch.setattr(B, "_WARNED_UNCALIBRATED", set())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"pass also=\['mg'\]"):
            E.ic50("erreger2005_2a", "ketamine", background={"mg": 1e-3})
        assert B._peek("mg") is B._LIBRARY["mg_kampa2004"]
    assert B.uncalibrated("mk801").startswith("k_on") and B.uncalibrated("ketamine") is None
    with pytest.raises(ValueError, match="unknown blocker"):
        B._peek("nope")


def test_uncalibrated_refuses_a_name_it_does_not_know():
    from ketacore import blockers as B
    with pytest.raises(ValueError, match="unknown blocker 'ketamin'"):
        B.uncalibrated("ketamin")
    with pytest.raises(TypeError, match="blocker name must be a string"):
        B.uncalibrated(42)
    assert B.uncalibrated("mg") is None
