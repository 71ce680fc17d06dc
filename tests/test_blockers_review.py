"""Review of ``kc.block`` / ``kc.blockers.Blocker`` as a pharmacologist adds drugs the library
does not have (MK-801-like, PCP-like, sequential, closed-channel route, partial trapping,
ketamine + Mg2+ together, custom Woodhull parameters, Q10).

Every check is against an exact oracle: Q-matrix entries written out from the rate laws
(k·[B]·exp(∓zδF(V − v_ref)/RT)·q10^((T − t_ref)/10)), equilibrium occupancies from the
binding polynomial of a trapping blocker with copied gating, microscopic reversibility as
detailed balance p_i q_ij = p_j q_ji of the exact equilibrium (numpy, independent of
``ketacore.theory``), and exact TOML round trips.  Deterministic; no tolerances tuned to data.
"""
from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest

import ketacore as kc
from ketacore.blockers import Blocker
from ketacore.units import FARADAY, GAS_CONSTANT, celsius, mM, mV, uM

VT22 = GAS_CONSTANT * celsius(22) / FARADAY


def vt(T: float) -> float:
    return GAS_CONSTANT * T / FARADAY


def equilibrium(Q: np.ndarray) -> np.ndarray:
    """Exact equilibrium p (pQ = 0, Σp = 1) by least squares on [Qᵀ; 1] (CH95b form)."""
    n = Q.shape[0]
    A = np.vstack([Q.T, np.ones((1, n))])
    b = np.zeros(n + 1)
    b[-1] = 1.0
    return np.linalg.lstsq(A, b, rcond=None)[0]


def db_residual(Q: np.ndarray) -> float:
    """Largest |p_i q_ij − p_j q_ji| / max(p_i q_ij, p_j q_ji) over the connected pairs (0 under
    detailed balance; 1 for a one-way step)."""
    p = equilibrium(Q)
    F = p[:, None] * Q
    np.fill_diagonal(F, 0.0)
    big = np.maximum(F, F.T)
    m = big > 0
    return float((np.abs(F - F.T)[m] / big[m]).max())


def drug(**kw) -> Blocker:
    d = dict(name="x", ligand="drug", k_on=2e6, k_off=3.0, z=1.0, delta_on=0.3, delta_off=0.45)
    d.update(kw)
    return Blocker(**d)


# =========================================================================== pickling
def test_blockers_pickle_and_deepcopy():
    """A Blocker must reach worker processes (ProcessPoolExecutor, loky, MPI pickle their
    arguments).  Old code: ``TypeError: cannot pickle 'mappingproxy' object`` for every
    Blocker, library ones included, and copy.deepcopy failed the same way."""
    g = kc.models.get("destexhe1994_sf")
    custom = drug(closing_factor=2.0, arm_scaling={"C2->D": 3.0, "D->C2": 3.0})
    for b in [kc.blockers.get(n) for n in kc.blockers.available()] + [custom]:
        for clone in (pickle.loads(pickle.dumps(b)), copy.deepcopy(b)):
            assert clone == b and clone is not b
            assert dict(clone.arm_scaling) == dict(b.arm_scaling)
            with pytest.raises(TypeError):
                clone.arm_scaling["C2->D"] = 1.0          # still read-only
            if b.ligand not in g.ligands:
                assert kc.block(g, clone).to_toml() == kc.block(g, b).to_toml()


# =========================================================================== name collisions
def test_composed_state_name_collisions_are_explained():
    """Old code: ``ValueError: duplicate state 'C0·ket'`` from Scheme, naming neither the
    blocker nor the cause."""
    g = kc.models.get("destexhe1994_sf")
    ket = kc.blockers.get("ketamine")
    once = kc.Scheme.from_toml(kc.block(g, ket).to_toml())  # no composition memory: block() cannot recompose it
    with pytest.raises(ValueError, match=r"'C0·ket' would be given to both gating state "
                                         r"'C0·ket' \(unblocked\) and gating state 'C0' with "
                                         r"blocker 'ket' bound.*one call"):
        kc.block(once, ket.replace(ligand="ketamine2"))
    # a user's gating scheme whose state names contain the separator
    g2 = kc.Scheme(["C", "O", "C·x"], [("C", "O", 10.0), ("O", "C", 100.0),
                                       ("C", "C·x", 1.0), ("C·x", "C", 1.0)],
                   conductance={"O": 50e-12})
    with pytest.raises(ValueError, match=r"state name 'C·x' would be given to both"):
        kc.block(g2, drug())
    # another blocker named like a partial-trapping blocker's superficial tag
    mem = drug(mode="partial_trapping", superficial_k_on=1e5, superficial_k_off=1.0)
    with pytest.raises(ValueError, match=r"superficial site of blocker 'x' and blocker 'x_s'"):
        kc.block(g, mem, drug(name="x_s", ligand="other", site="outer"))
    # and the same pair of names composes when they do not collide
    assert "C0·x_s" in kc.block(g, mem, drug(name="y", ligand="other", site="outer")).states


def test_blocker_list_and_shared_ligand_messages():
    g = kc.models.get("destexhe1994_sf")
    # old: "blockers must be Blocker objects or library names, got list"
    with pytest.raises(TypeError, match=r"separate arguments.*\*blockers"):
        kc.block(g, [kc.blockers.get("ketamine"), kc.blockers.get("mg")])
    # old: "two blockers use the ligand 'drug'" -- no reason, no way forward
    with pytest.raises(ValueError, match=r"'x' and 'y'\): each ligand is one drug.*k_on_closed"):
        kc.block(g, drug(), drug(name="y", site="outer"))
    with pytest.raises(ValueError, match=r"two blockers named 'ket'.*replace\(name=\.\.\.\)"):
        kc.block(g, "ketamine", "ketamine_mealing1999")


# =========================================================================== closed route
@pytest.mark.filterwarnings("ignore::ketacore.UnitsWarning")  # per-molar Q entries at 1 M
@pytest.mark.parametrize("thermal_voltage", [None, 25 * mV])
def test_closed_route_voltage_dependence_q_entries(thermal_voltage):
    """delta_on_closed / delta_escape: k_on_closed·[B]·exp(−zδ_c(V − v_ref)/V_T) onto every
    shut state and k_escape·exp(+zδ_e(V − v_ref)/V_T) back (old code: no such parameters, the
    closed route was voltage-independent)."""
    g = kc.models.get("destexhe1994_sf")
    b = drug(z=2.0, v_ref=-30 * mV, thermal_voltage=thermal_voltage, k_on_closed=4e4,
             k_escape=0.02, delta_on_closed=0.35, delta_escape=0.2)
    s_ = kc.block(g, b)
    T = celsius(30)
    VT = vt(T) if thermal_voltage is None else thermal_voltage
    for V in (-90 * mV, -30 * mV, 35 * mV):
        Q = s_.q_matrix(V=V, temperature=T, glutamate=1 * mM, drug=3 * uM)
        dv = V - (-30 * mV)
        on_c = 4e4 * 3e-6 * math.exp(-2.0 * 0.35 * dv / VT)
        esc = 0.02 * math.exp(2.0 * 0.2 * dv / VT)
        for x in ("C0", "C1", "C2", "D"):
            assert Q[s_.index(x), s_.index(f"{x}·x")] == pytest.approx(on_c, rel=1e-12)
            assert Q[s_.index(f"{x}·x"), s_.index(x)] == pytest.approx(esc, rel=1e-12)
        assert Q[s_.index("O"), s_.index("O·x")] == pytest.approx(
            2e6 * 3e-6 * math.exp(-2.0 * 0.3 * dv / VT), rel=1e-12)
    assert kc.Scheme.from_toml(s_.to_toml()) == s_
    assert b.closed_on_rate()(-0.09, T, drug=1.0) == pytest.approx(
        4e4 * math.exp(-2.0 * 0.35 * (-0.06) / VT), rel=1e-12)


@pytest.mark.parametrize("model", ["destexhe1994_sf", "erreger2005_2a", "ch82"])
def test_closed_route_in_detailed_balance_at_every_voltage(model):
    """The condition the Blocker docstring states: k_escape/k_on_closed =
    K_B(v_ref)·opening_factor/closing_factor with delta_on_closed + delta_escape = δ gives
    detailed balance at every V and T (Q10s included).  Without the closed-route deltas the
    same rates balance only at v_ref -- what the old docstring's 'requires
    k_escape/k_on_closed = K_B' did not say."""
    g = kc.models.get(model)
    a = "agonist" if model == "ch82" else "glutamate"
    for c, o in ((1.0, 1.0), (3.0, 0.5)):
        kw = dict(v_ref=-20 * mV, closing_factor=c, opening_factor=o, k_on_closed=4e4,
                  k_escape=4e4 * (3.0 / 2e6) * o / c, q10_on=1.3, q10_off=2.7)
        balanced = kc.block(g, drug(delta_on_closed=0.5, delta_escape=0.25, **kw))
        flat = kc.block(g, drug(**kw))
        for V in (-100 * mV, -20 * mV, 40 * mV):
            for T in (celsius(10), celsius(37)):
                cond = dict(V=V, temperature=T, drug=1 * uM, **{a: 3 * uM})
                assert db_residual(balanced.q_matrix(**cond)) < 1e-9
                r = db_residual(flat.q_matrix(**cond))
                assert (r < 1e-9) if V == -20 * mV else (r > 1e-3)


def test_closed_route_deltas_validated():
    with pytest.raises(ValueError, match=r"Blocker.delta_escape=2.5 is outside"):
        drug(k_escape=1.0, delta_escape=2.5)
    with pytest.raises(ValueError, match="mode 'sequential' has no blocked gating arm"):
        drug(mode="sequential", delta_on_closed=0.2)
    with pytest.raises(ValueError, match=r"delta_on_closed.*weaker than an e-fold"):
        drug(thermal_voltage=25 * mV, k_on_closed=1.0, delta_on_closed=1e-4)


# =========================================================================== Q10
def test_blocker_q10_scales_every_blocker_rate():
    """q10_on (k_on, k_on_closed, superficial_k_on), q10_off (k_off, k_escape,
    superficial_k_off) from t_ref; gating copied into the arm keeps its own Q10.  Old code:
    no Q10 for blocker rates (unknown field)."""
    gq = kc.Scheme(["C", "O"], [("C", "O", kc.Rate(100.0, q10=3.0)),
                                ("O", "C", kc.Rate(200.0, q10=2.0))],
                   conductance={"O": 50e-12}, temperature=celsius(35))
    b = drug(mode="partial_trapping", superficial_k_on=1e5, superficial_k_off=1.5,
             k_escape=0.01, k_on_closed=3e3, q10_on=1.4, q10_off=2.9, t_ref=celsius(25),
             closing_factor=2.0)
    s_ = kc.block(gq, b)
    i = s_.index
    V, B = -60 * mV, 2 * uM
    for T in (celsius(15), celsius(25), celsius(37)):
        Q = s_.q_matrix(V=V, temperature=T, drug=B)
        fon, foff = 1.4 ** ((T - celsius(25)) / 10), 2.9 ** ((T - celsius(25)) / 10)
        w = math.exp(0.3 * V / vt(T)), math.exp(0.45 * V / vt(T))
        assert Q[i("O"), i("O·x")] == pytest.approx(2e6 * B / w[0] * fon, rel=1e-12)
        assert Q[i("O·x"), i("O")] == pytest.approx(3.0 * w[1] * foff, rel=1e-12)
        assert Q[i("C"), i("C·x")] == pytest.approx(3e3 * B * fon, rel=1e-12)
        assert Q[i("C·x"), i("C")] == pytest.approx(0.01 * foff, rel=1e-12)
        assert Q[i("C"), i("C·x_s")] == pytest.approx(1e5 * B * fon, rel=1e-12)
        assert Q[i("O·x_s"), i("O")] == pytest.approx(1.5 * foff, rel=1e-12)
        g22 = 3.0 ** ((T - celsius(22)) / 10), 2.0 ** ((T - celsius(22)) / 10)
        assert Q[i("C·x"), i("O·x")] == pytest.approx(100 * g22[0], rel=1e-12)
        assert Q[i("O·x"), i("C·x")] == pytest.approx(2 * 200 * g22[1], rel=1e-12)
        assert b.kd(V, T) == pytest.approx(Q[i("O·x"), i("O")] / Q[i("O"), i("O·x")] * B,
                                           rel=1e-12)
    assert kc.Scheme.from_toml(s_.to_toml()) == s_
    with pytest.raises(ValueError, match=r"Blocker.q10_on=0.0 must be|q10_on"):
        drug(q10_on=0.0)
    with pytest.raises(ValueError, match=r"Blocker.q10_off=5000.0 is outside"):
        drug(q10_off=5000.0)
    with pytest.raises(ValueError, match=r"Blocker.t_ref=22.0 K.*kelvin"):
        drug(t_ref=22.0)


@pytest.mark.parametrize("T", [celsius(10), celsius(36)])
def test_trapping_identity_holds_with_q10(T):
    """Trapping with copied gating: p(X·b)/p(X) = [B]/K_B(V, T) in every gating state, with
    K_B(V, T) = k_off q10_off^ΔT/10 e^{zδ_off…} / (k_on q10_on^ΔT/10 e^{−zδ_on…})."""
    g = kc.models.get("erreger2005_2a")
    b = drug(q10_on=1.2, q10_off=3.1)
    s_ = kc.block(g, b)
    V, B = -70 * mV, 0.4 * uM
    p = equilibrium(s_.q_matrix(V=V, temperature=T, glutamate=30 * uM, drug=B))
    kb = (3.0 * math.exp(0.45 * V / vt(T)) * 3.1 ** ((T - celsius(22)) / 10)
          / (2e6 * math.exp(-0.3 * V / vt(T)) * 1.2 ** ((T - celsius(22)) / 10)))
    assert b.kd(V, T) == pytest.approx(kb, rel=1e-12)
    for x in g.states:
        assert p[s_.index(f"{x}·x")] / p[s_.index(x)] == pytest.approx(B / kb, rel=1e-8)


# =========================================================================== arm scaling
def test_arm_scaling_that_breaks_microscopic_reversibility_is_refused():
    """Old code composed these silently: the blocked arm of erreger2005_2a with only
    RA2->RA2f scaled 5x is driven around RA2 -> RA2f -> O -> RA2s (a perpetual cycle flux at
    'equilibrium': pairwise flux mismatch up to 77 %; at -70 mV, 1 mM glutamate, its IC50 is
    0.56 uM where the blocker's K_B is 0.19 uM)."""
    e = kc.models.get("erreger2005_2a")
    with pytest.raises(ValueError, match=r"around the cycle .*RA2f.* by a factor 0\.2\b|"
                                         r"around the cycle .*RA2f.* by a factor 5\b"):
        kc.block(e, drug(arm_scaling={"RA2->RA2f": 5.0}))
    # CH82: the open-open step of the blocked arm lies on the AR*-A2R*-A2R-AR cycle
    with pytest.raises(ValueError, match="around the cycle"):
        kc.block(kc.models.get("ch82"), drug(arm_scaling={"AR*->A2R*": 2.0}))
    # two open states on a chain: no cycle inside the arm, but one through the binding steps
    chain = kc.Scheme(["C", "O1", "O2"], [("C", "O1", 50.0), ("O1", "C", 100.0),
                                          ("O1", "O2", 30.0), ("O2", "O1", 20.0)],
                      conductance={"O1": 40e-12, "O2": 50e-12})
    with pytest.raises(ValueError, match=r"open states 'O1' and 'O2'.*factor 2\b"):
        kc.block(chain, drug(arm_scaling={"O1->O2": 2.0}))
    # a two-way closed route binds every shut state with one constant
    g = kc.models.get("destexhe1994_sf")
    with pytest.raises(ValueError, match=r"shut states .* factor 2\b"):
        kc.block(g, drug(k_on_closed=1e4, k_escape=1e-2, arm_scaling={"C2->D": 2.0}))
    # accepted (and reversible): both directions alike, compensation inside the cycle, a
    # scaled step on no cycle, the same with a one-way escape only
    ok = [(e, {"RA2->RA2f": 5.0, "RA2f->RA2": 5.0}, {}),
          (e, {"RA2->RA2f": 5.0, "RA2f->O": 0.2}, {}),
          (chain, {"O1->O2": 2.0, "O2->O1": 2.0}, {}),
          (g, {"C2->D": 2.0}, {}),
          (g, {"C2->D": 2.0}, dict(k_escape=1e-2))]
    for gating, arm, extra in ok:
        s_ = kc.block(gating, drug(arm_scaling=arm, **extra))
        if not extra:
            a = "glutamate" if "glutamate" in gating.ligands else None
            cond = dict(V=-50 * mV, drug=1 * uM, **({a: 5 * uM} if a else {}))
            assert db_residual(s_.q_matrix(**cond)) < 1e-9


def test_scaled_arm_rate_overflow_names_blocker_and_transition():
    g = kc.models.get("destexhe1994_sf")
    # old: "Rate(k0=7.38e+300, ...) reaches about 10^300.9" without blocker or transition
    with pytest.raises(ValueError, match=r"block\(\): gating transition 'O'->'C2' scaled by "
                                         r"1e\+299 in the arm of \['x'\]"):
        kc.block(g, drug(closing_factor=1e299))


# =========================================================================== describe
def test_describe_states_total_delta_direction_and_superficial_kd():
    """describe() printed delta_on and delta_off only: a user who typed Gilling's δ = 0.79
    into both parts (δ = 1.58) could not see it.  Now the total, z·δ, the e-fold and the
    direction of block, and K_s of a superficial site."""
    ket = kc.blockers.get("ketamine").describe()
    assert "delta = delta_on + delta_off = 0.79, z*delta = 0.79" in ket
    assert f"K_B rises e-fold per {VT22 / 0.79 / mV:.3g} mV of depolarisation at 22 C " \
           "(block grows with hyperpolarisation)" in ket
    slip = kc.blockers.get("ketamine").replace(delta_on=0.79, delta_off=0.79).describe()
    assert "delta = delta_on + delta_off = 1.58" in slip
    anion = drug(z=-1.0).describe()
    assert "z*delta = -0.75" in anion and "(block grows with depolarisation)" in anion
    mg = kc.blockers.get("mg").describe()
    assert "K_B rises e-fold per 12.5 mV of depolarisation (block grows" in mg
    mem = kc.blockers.get("memantine")
    ks = mem.superficial_k_off / mem.superficial_k_on
    assert f"K_s = {ks * 1e6:.4g} uM (voltage-independent)" in mem.describe()
    assert "delta = delta_on + delta_off = 0, z*delta = 0: K_B independent of voltage" in \
        drug(delta_on=0.0, delta_off=0.0).describe()


# =========================================================================== TOML
def test_composed_round_trip_with_odd_names_is_exact():
    """Scheme.to_toml wrote U+007F (DEL) raw, which TOML forbids in strings: from_toml failed
    with TOMLDecodeError (old code)."""
    g = kc.models.get("erreger2005_2b")
    for nm, lig in [('a"b', 'd"x'), ("a\\b", "d\\x"), ("é", "ñ"), ("a\x7fb", "d\x7f"),
                    ("t\tab", "q")]:
        b = Blocker(name=nm, ligand=lig, k_on=1.1e6, k_off=0.1 / 3, z=-2, delta_on=0.123456789,
                    delta_off=1 / 3, thermal_voltage=25.3 * mV, v_ref=-13 * mV, k_escape=1e-3,
                    k_on_closed=7.7)
        s_ = kc.block(g, b)
        back = kc.Scheme.from_toml(s_.to_toml())
        assert back == s_ and back.to_toml() == s_.to_toml()
        c = dict(V=-0.08, **{"glutamate": 1e-5, lig: 2e-6})
        assert np.array_equal(back.q_matrix(**c), s_.q_matrix(**c))


# =========================================================================== kampa2004
def test_kampa2004_cycle_factors_documented():
    """The Kampa 2004 .mod parameter set is not in detailed balance; its notes did not say so
    (old notes).  The factors quoted in the notes are the exact cycle ratios."""
    g = kc.models.get("kampa2004")
    Q = g.q_matrix(V=-60 * mV, glutamate=1 * uM, mg=1 * mM)
    i = g.index

    def cycle(x, y):
        p = [x, y, y + "Mg", x + "Mg"]
        f = b = 1.0
        for u, v in zip(p, p[1:] + p[:1]):
            f *= Q[i(u), i(v)]
            b *= Q[i(v), i(u)]
        return f / b

    quoted = {("U", "Cl"): "1.48", ("Cl", "O"): "0.791", ("Cl", "D1"): "0.961",
              ("D1", "D2"): "1.41"}
    for (x, y), txt in quoted.items():
        r = cycle(x, y)
        assert f"{r:.3g}" == txt and f"{txt} ({x}, {y})" in g.notes
        assert abs(math.log(r)) > 0.03
    assert "NOT in detailed balance" in g.notes and "OMg·ket" in g.notes
    assert db_residual(Q) > 1e-3
    # what the notes warn about: a pore blocker composed onto kampa2004 shares the pore
    assert "OMg·ket" in kc.block(g, "ketamine").states


# =========================================================================== exact guards
def test_ketamine_and_mg_share_the_pore_exactly():
    """Two trapping blockers on one site with copied gating: in every gating state X,
    p(X·ket) : p(X·mg) : p(X) = [K]/K_ket : [Mg]/K_mg : 1 (binding polynomial)."""
    g = kc.models.get("erreger2005_2a")
    ket = kc.blockers.get("ketamine").replace(k_escape=0.0)
    mg = kc.blockers.get("mg")
    s_ = kc.block(g, ket, mg)
    for V, T in ((-60 * mV, g.temperature), (-100 * mV, celsius(37))):
        p = equilibrium(s_.q_matrix(V=V, temperature=T, glutamate=1 * mM, ketamine=1 * uM,
                                    mg=1 * mM))
        rk, rm = 1 * uM / ket.kd(V, T), 1 * mM / mg.kd(V, T)
        for x in g.states:
            assert p[s_.index(x + "·ket")] / p[s_.index(x)] == pytest.approx(rk, rel=1e-8)
            assert p[s_.index(x + "·mg")] / p[s_.index(x)] == pytest.approx(rm, rel=1e-8)
        assert p[s_.indices(g.states)].sum() == pytest.approx(1 / (1 + rk + rm), rel=1e-8)


def test_partial_trapping_and_mk801_like_exact():
    g = kc.models.get("destexhe1994_sf")
    # partial trapping: deep (open only) + superficial (every state) sites of one drug
    b = drug(mode="partial_trapping", superficial_k_on=1e5, superficial_k_off=1.5)
    s_ = kc.block(g, b)
    V = -70 * mV
    p = equilibrium(s_.q_matrix(V=V, glutamate=1 * mM, drug=2 * uM))
    kb, ks = b.kd(V, g.temperature), 1.5 / 1e5
    for x in g.states:
        assert p[s_.index(x + "·x")] / p[s_.index(x)] == pytest.approx(2e-6 / kb, rel=1e-8)
        assert p[s_.index(x + "·x_s")] / p[s_.index(x)] == pytest.approx(2e-6 / ks, rel=1e-8)
    # MK-801-like: k_off = 0 at every voltage -> every blocked state absorbs, none leaks back
    mk = Blocker(name="mk", ligand="mk801b", k_on=2.5e7, k_off=0.0, delta_off=0.97)
    m = kc.block(g, mk)
    assert mk.kd(V) == 0.0
    Q = m.q_matrix(V=30 * mV, glutamate=1 * mM, mk801b=1 * uM)
    blocked = m.indices([x for x in m.states if "·" in x])
    free = m.indices(g.states)
    assert np.all(Q[np.ix_(blocked, free)] == 0.0)
    assert Q[m.index("O"), m.index("O·mk")] == pytest.approx(25.0, rel=1e-12)


def test_composed_citation_has_no_empty_part():
    """A gating scheme without a citation gave the composition the citation
    '; blockers -- x: ...' (old code)."""
    g = kc.Scheme(["C", "O"], [("C", "O", 1.0), ("O", "C", 2.0)], conductance={"O": 1e-11})
    assert kc.block(g, drug(citation="Doe J (2024)")).citation == "blockers -- x: Doe J (2024)"
    assert kc.block(g, drug()).citation == ""
    ch = kc.models.get("ch82")
    assert kc.block(ch, drug(citation="Doe J (2024)")).citation == \
        ch.citation + "; blockers -- x: Doe J (2024)"


def test_woodhull_sign_convention_cation_and_anion():
    """Reference §3/§8 and the module docstring: a cation (z > 0, δ > 0) blocks more at
    hyperpolarised potentials; an anion (z < 0) at depolarised ones.  Exact Q entries of the
    library ketamine (z = +1, δ_on = δ_off = 0.395, v_ref = 0) at several voltages."""
    g = kc.models.get("erreger2005_2a")
    ket = kc.blockers.get("ketamine")
    s_ = kc.block(g, ket)
    T = g.temperature
    for V in (-100 * mV, -70 * mV, 0.0, 30 * mV):
        Q = s_.q_matrix(V=V, glutamate=1 * mM, ketamine=1 * uM)
        on = ket.k_on * 1e-6 * math.exp(-0.395 * V / vt(T))
        off = ket.k_off * math.exp(0.395 * V / vt(T))
        assert Q[s_.index("O"), s_.index("O·ket")] == pytest.approx(on, rel=1e-12)
        assert Q[s_.index("O·ket"), s_.index("O")] == pytest.approx(off, rel=1e-12)
    kd = [ket.kd(V, T) for V in (-100 * mV, -70 * mV, -40 * mV, 0.0)]
    assert kd == sorted(kd) and kd[0] < kd[-1] / 10        # more block when hyperpolarised
    assert kd[1] / kd[2] == pytest.approx(math.exp(0.79 * -0.03 / vt(T)), rel=1e-12)
    anion = drug(z=-1.0)
    kda = [anion.kd(V) for V in (-100 * mV, 0.0, 50 * mV)]
    assert kda == sorted(kda, reverse=True)               # more block when depolarised


def test_block_takes_a_library_model_name_like_the_experiments():
    """kc.block("erreger2005_2a", ...) raised TypeError while every experiment takes a model
    name; a name now gives the same composed scheme as the Scheme, an unknown name is refused."""
    by_name = kc.block("erreger2005_2a", "ketamine", "mg")
    by_scheme = kc.block(kc.models.get("erreger2005_2a"), "ketamine", "mg")
    assert by_name.to_toml() == by_scheme.to_toml()
    with pytest.raises(ValueError, match="unknown model 'nosuch'"):
        kc.block("nosuch", "ketamine")
    with pytest.raises(TypeError, match="a ketacore.Scheme or a model name"):
        kc.block(3, "ketamine")


def test_describe_says_when_the_closed_route_is_out_of_balance():
    """The library's ketamine_closed_route is a deliberate non-equilibrium variant
    (k_escape/k_on_closed = 5.2 nM vs K_B 6.6 uM at v_ref); describe() now says so, and says
    nothing of the kind for a closed route matched to K_B, or for the one-way escape of the
    default ketamine."""
    text = kc.blockers.get("ketamine_closed_route").describe()
    assert "closed route K = k_escape/k_on_closed = 0.005193 uM" in text
    assert "NOT in detailed balance" in text
    ket = kc.blockers.get("ketamine")
    # the library ketamine balances its escape (closed_route='balanced'); without it, one-way
    assert "no reverse route (k_on_closed = 0)" in ket.replace(closed_route=None).describe()
    assert "NOT in detailed balance" not in ket.describe()
    ket = ket.replace(closed_route=None)
    matched = ket.replace(k_escape=ket.k_off / 10, k_on_closed=ket.k_on / 10)
    text = matched.describe()
    # matched at v_ref only (voltage-independent closed route, delta = 0.79): said so
    assert "closed route K" in text and "in detailed balance at v_ref only" in text
    text = matched.replace(delta_on_closed=ket.delta).describe()
    assert "NOT in detailed balance" not in text and "every voltage and temperature" in text
