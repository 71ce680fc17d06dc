"""Schemes: construction, validation, rate laws, Q assembly, TOML round-trip."""
import math

from dataclasses import replace

import numpy as np
import pytest

import ketacore as kc
from ketacore.units import FARADAY, GAS_CONSTANT, celsius, mM, mV, pS


def five_state(sf=True):
    f2 = 2.0 if sf else 1.0
    return kc.Scheme(
        ["C0", "C1", "C2", "O", "D"],
        [("C0", "C1", kc.rate(5e6, "glutamate", factor=f2)), ("C1", "C0", 12.9),
         ("C1", "C2", kc.rate(5e6, "glutamate")), ("C2", "C1", kc.rate(12.9, factor=f2)),
         ("C2", "O", 46.5), ("O", "C2", 73.8), ("C2", "D", 8.4), ("D", "C2", 6.8)],
        {"O": 50 * pS}, name="five")


def test_q_matrix_by_hand():
    g = five_state()
    G = 1 * mM
    Q = g.q_matrix(V=-70 * mV, glutamate=G)
    ref = np.zeros((5, 5))
    ref[0, 1] = 2 * 5e6 * G
    ref[1, 0] = 12.9
    ref[1, 2] = 5e6 * G
    ref[2, 1] = 2 * 12.9
    ref[2, 3] = 46.5
    ref[3, 2] = 73.8
    ref[2, 4] = 8.4
    ref[4, 2] = 6.8
    np.fill_diagonal(ref, -ref.sum(axis=1))
    np.testing.assert_allclose(Q, ref, rtol=1e-15)
    assert np.abs(Q.sum(axis=1)).max() < 1e-12


def test_unnamed_ligand_is_zero():
    Q = five_state().q_matrix()
    assert Q[0, 1] == 0.0 and Q[1, 2] == 0.0


def test_rate_laws_against_python_reference():
    T = celsius(30)
    r = kc.Rate(1e4, "mg", factor=1.5, z_delta=-1.6, vk=0.05, v0=0.04, q10=2.7, t_ref=celsius(22))
    for V in (-0.1, -0.07, 0.0, 0.04):
        expected = (1e4 * 1.5 * 2e-3 * math.exp(-1.6 * FARADAY * (V - 0.04) / (GAS_CONSTANT * T))
                    * math.exp((V - 0.04) / 0.05) * 2.7 ** ((T - celsius(22)) / 10))
        assert r(V=V, temperature=T, mg=2e-3) == pytest.approx(expected, rel=1e-14)
        s = kc.Scheme(["A", "B"], [("A", "B", r), ("B", "A", 1.0)])
        assert s.q_matrix(V=V, temperature=T, mg=2e-3)[0, 1] == pytest.approx(expected, rel=1e-13)


def test_q10_and_default_temperature():
    s = kc.Scheme(["A", "B"], [("A", "B", kc.Rate(10.0, q10=3.0, t_ref=celsius(20))), ("B", "A", 1.0)],
                  temperature=celsius(30))
    assert s.q_matrix()[0, 1] == pytest.approx(30.0, rel=1e-13)
    assert s.q_matrix(temperature=celsius(20))[0, 1] == pytest.approx(10.0, rel=1e-13)


@pytest.mark.parametrize("bad, msg", [
    (dict(states=["A", "A"], transitions=[]), "duplicate state"),
    (dict(states=["A", "B"], transitions=[("A", "C", 1.0)]), "unknown state"),
    (dict(states=["A", "B"], transitions=[("A", "A", 1.0)]), "self-transition"),
    (dict(states=["A", "B"], transitions=[("A", "B", -1.0)]), ">= 0"),
    (dict(states=["A", "B"], transitions=[("A", "B", float("nan"))]), "NaN"),
    (dict(states=["A", "B"], transitions=[("A", "B", float("inf"))]), "finite"),
    (dict(states=["A", "B", "C"], transitions=[("A", "B", 1.0), ("B", "A", 1.0)]), "not connected"),
    (dict(states=["A", "B"], transitions=[("A", "B", 1.0), ("A", "B", 2.0)]), "duplicate transition"),
    (dict(states=[], transitions=[]), "must not be empty"),
    (dict(states=["A", "B"], transitions=[("A", "B", 1.0)], conductance={"Z": 1e-12}), "unknown state"),
    (dict(states=["A", "B"], transitions=[("A", "B", 1.0)], conductance={"A": -1.0}), ">= 0"),
])
def test_validation_errors(bad, msg):
    with pytest.raises((ValueError, TypeError), match=msg):
        kc.Scheme(**bad)


def test_rate_validation():
    with pytest.raises(ValueError, match="factor"):
        kc.Rate(1.0, factor=0)
    with pytest.raises(ValueError, match="vk"):
        kc.Rate(1.0, vk=0.0)
    with pytest.raises(ValueError, match="mV"):
        kc.Rate(1.0, v0=-70)  # millivolts passed as volts
    with pytest.raises(TypeError):
        kc.Rate("fast")


def test_condition_validation():
    g = five_state()
    with pytest.raises(ValueError, match="unknown ligand 'glutamte'"):
        g.q_matrix(glutamte=1e-3)
    with pytest.raises(ValueError, match="must be >= 0"):
        g.q_matrix(glutamate=-1.0)
    with pytest.raises(ValueError, match="NaN"):
        g.q_matrix(glutamate=float("nan"))
    with pytest.raises(ValueError, match="uM"):
        g.q_matrix(glutamate=100.0)  # 100 M: µM passed as molar
    with pytest.raises(ValueError, match="mV"):
        g.q_matrix(V=-70)
    with pytest.raises(ValueError, match="kelvin"):
        g.q_matrix(temperature=22)


def test_toml_round_trip_exact(tmp_path):
    g = kc.Scheme(["A", "B", "C"],
                  [("A", "B", kc.Rate(0.1 + 0.2, "glu", factor=3, z_delta=0.79, v0=-0.0123, q10=2.2,
                                      t_ref=celsius(36.6))),
                   ("B", "A", kc.Rate(1 / 3, vk=-0.0175)), ("B", "C", 1e-3), ("C", "B", 1e9)],
                  {"B": 51.7 * pS, "C": 1e-13}, e_rev=0.005, name='weird "name"',
                  citation="Someone 2024\nline two", doi="10.1/x", notes="ü", temperature=celsius(31.4))
    text = g.to_toml(tmp_path / "s.toml")
    g2 = kc.Scheme.from_toml(tmp_path / "s.toml")
    g3 = kc.Scheme.from_toml(text)
    assert g2 == g and g3 == g
    assert g2.to_toml() == text
    np.testing.assert_array_equal(g2.q_matrix(V=-0.03, glu=1e-6), g.q_matrix(V=-0.03, glu=1e-6))
    assert "1/(M s)" in text and "# S" in text  # units stated in the file


def test_toml_errors_name_the_key():
    with pytest.raises(ValueError, match=r"transitions\[0\].*unknown key"):
        kc.Scheme.from_toml('[[states]]\nname="A"\n[[states]]\nname="B"\n'
                            '[[transitions]]\nfrom="A"\nto="B"\nk0=1.0\nkon=2.0\n')
    with pytest.raises(ValueError, match="states"):
        kc.Scheme.from_toml('[scheme]\nname="x"\n')


def test_properties_and_describe():
    g = five_state()
    assert g.states == ("C0", "C1", "C2", "O", "D")
    assert g.ligands == ("glutamate",)
    assert g.open_states == ("O",)
    assert g.index("O") == 3
    np.testing.assert_array_equal(g.indices(["O", 0]), [3, 0])
    with pytest.raises(ValueError, match="unknown state"):
        g.index("X")
    txt = g.describe()
    assert "C0" in txt and "/M/s" in txt and "pS" in txt
    g2 = g.with_rates(**{"O->C2": 100.0})
    assert g2.q_matrix()[3, 2] == 100.0 and g.q_matrix()[3, 2] == 73.8


def test_with_rates_number_changes_only_the_rate_constant():
    """A plain number is the new k0 of that transition and keeps its rate law (ligand,
    statistical factor, voltage dependence, Q10): binding still needs the ligand.  (Before, a
    number replaced the whole law by a constant rate, so receptors activated with no
    glutamate.)  A Rate replaces the whole law; the changes may be a positional mapping."""
    g = kc.models.get("erreger2005_2a")
    i, j = g.index("R"), g.index("RA")
    old = next(t.rate for t in g.transitions if (t.src, t.dst) == ("R", "RA"))
    assert old.ligand == "glutamate" and old.factor == 2.0
    for g2 in (g.with_rates({"R->RA": 1e7}), g.with_rates(**{"R->RA": 1e7})):
        assert g2.q_matrix(glutamate=0.0)[i, j] == 0.0
        assert g2.q_matrix(glutamate=1e-6)[i, j] == pytest.approx(2 * 1e7 * 1e-6, rel=1e-15)
        new = next(t.rate for t in g2.transitions if (t.src, t.dst) == ("R", "RA"))
        assert new == replace(old, k0=1e7)
    # a voltage- and temperature-dependent rate keeps both
    m = kc.block("erreger2005_2a", "mg")
    key, rt = next((f"{t.src}->{t.dst}", t.rate) for t in m.transitions if t.rate.vk is not None)
    m2 = m.with_rates({key: 2 * rt.k0})
    a, b = m.index(key.split("->")[0]), m.index(key.split("->")[1])
    for V in (-0.08, 0.02):
        assert m2.q_matrix(V=V, mg=1e-3)[a, b] == pytest.approx(2 * m.q_matrix(V=V, mg=1e-3)[a, b],
                                                                 rel=1e-12)
    # a Rate replaces the law: a constant 5 /s, glutamate or not
    g3 = g.with_rates({"R->RA": kc.rate(5.0)})
    assert g3.q_matrix(glutamate=0.0)[i, j] == 5.0
    # keywords and the mapping merge; errors name the key
    g4 = g.with_rates({"R->RA": 1e7}, **{"RA->R": 500.0})
    assert g4.q_matrix()[j, i] == 500.0
    with pytest.raises(TypeError, match="R->RA: a rate must be a number"):
        g.with_rates({"R->RA": "fast"})
    with pytest.raises(TypeError, match="R->RA"):
        g.with_rates({"R->RA": True})
    with pytest.raises(ValueError, match="NaN"):
        g.with_rates({"R->RA": float("nan")})
    with pytest.raises(ValueError, match="unknown transition"):
        g.with_rates({"R->X": 1.0})
    with pytest.raises(TypeError, match="must be a mapping"):
        g.with_rates([("R->RA", 1.0)])


def test_compiled_exits_equilibria_equal_one_at_a_time():
    """The batched exit rates (the cost model's, for a ramp's thousands of conditions) are the
    per-condition ones, bit for bit, and the equilibria solve p Q = 0; a wrong shape is refused."""
    g = kc.block("erreger2005_2a", "mg")
    t = np.arange(50) * 1e-4
    ramp = kc.Protocol.from_waveform(t, 5e-3, V=-0.08 + 0.12 * t / t[-1], glutamate=1e-3, mg=1e-3)
    _, _, conds = ramp.compile(g)
    c = g._compiled()
    E, P = c.exits_equilibria(conds)
    assert E.shape == P.shape == (50, g.n_states)
    for k in range(50):
        Q = c.q_matrix(conds[k])
        assert np.array_equal(E[k], -np.diag(Q))
        assert abs(P[k].sum() - 1.0) < 1e-14 and np.abs(P[k] @ Q).max() < 1e-12 * np.abs(Q).max()
    E2, P2 = c.exits_equilibria(conds, False)
    assert np.array_equal(E2, E) and P2.shape == (0, g.n_states)
    with pytest.raises(ValueError, match="conditions must be"):
        c.exits_equilibria(conds[:, :2])


def test_unknown_composed_state_typed_with_a_dot_gets_a_hint():
    """Composed names join with '·' (U+00B7), which is hard to type: 'O.ket' is refused, as
    before, but the message now suggests 'O·ket' (in Scheme.index and in solve's initial=);
    a name with no such match gets no hint."""
    s = kc.block("erreger2005_2a", "ketamine")
    with pytest.raises(ValueError, match="did you mean 'O·ket'"):
        s.index("O.ket")
    with pytest.raises(ValueError, match="initial: unknown state 'O.ket' \\(did you mean 'O·ket'"):
        kc.solve(s, kc.Step(0.01, glutamate=1e-3), 1e-3, initial="O.ket")
    with pytest.raises(ValueError) as e:
        s.index("O.kat")
    assert "did you mean" not in str(e.value)


def _cycle_scheme(**over):
    """A-B-C triangle with a binding step each way round; the rates violate MR by 30/7."""
    t = {"A->B": 10.0, "B->A": 5.0, "B->C": kc.rate(1e6, "L"), "C->B": 7.0, "C->A": 3.0,
         "A->C": kc.rate(2e5, "L")}
    t.update(over)
    return kc.Scheme(["A", "B", "C"], [(*k.split("->"), v) for k, v in t.items()],
                     conductance={"C": 1e-11})


def test_with_microscopic_reversibility_balances_each_cycle_and_keeps_the_rest():
    """helper-97's audit: MR could only be imposed inside fit_hjc.  Kolmogorov's criterion
    around A->B->C->A: k_AB k_BC k_CA = k_AC k_CB k_BA (k0 x factor; the ligand cancels)."""
    sch = _cycle_scheme()
    assert not kc.theory.is_reversible(sch)
    for mr, key in ((True, "B->A"), (["B->A"], "B->A"), (["A->C"], "A->C"), (["C->B"], "C->B")):
        r = sch.with_microscopic_reversibility(mr)
        k = {f"{t.src}->{t.dst}": t.rate.k0 * t.rate.factor for t in r.transitions}
        assert kc.theory.is_reversible(r, rtol=1e-13)
        assert k["A->B"] * k["B->C"] * k["C->A"] == pytest.approx(k["A->C"] * k["C->B"] * k["B->A"],
                                                                   rel=1e-14)
        old = {f"{t.src}->{t.dst}": t.rate for t in sch.transitions}
        for t in r.transitions:  # every other rate law unchanged; the set one keeps its ligand
            kk = f"{t.src}->{t.dst}"
            if kk != key:
                assert t.rate == old[kk]
            else:
                assert t.rate.ligand == old[kk].ligand and t.rate.k0 != old[kk].k0
    # the closed form for the default choice: k_BA = k_AB k_BC k_CA / (k_AC k_CB)
    r = sch.with_microscopic_reversibility()
    assert r.transitions[1].rate.k0 == pytest.approx(10.0 * 1e6 * 3.0 / (2e5 * 7.0), rel=1e-14)
    # its equilibrium then obeys detailed balance at any concentration
    Q = r.q_matrix(L=3e-6)
    p = kc.theory.equilibrium(r, L=3e-6)
    F = p[:, None] * Q
    np.testing.assert_allclose(F, F.T, rtol=1e-10, atol=1e-12 * np.abs(F).max())
    # statistical factors count: a factor 2 on A->B doubles the balancing B->A
    r2 = _cycle_scheme(**{"A->B": kc.rate(10.0, factor=2.0)}).with_microscopic_reversibility()
    assert r2.transitions[1].rate.k0 == pytest.approx(2 * r.transitions[1].rate.k0, rel=1e-14)
    # no cycle, or cycles that already balance to rounding: unchanged (the same object; ch82's
    # k*-2 was moved by 1e-15 relative, helper-102's review)
    lin = kc.Scheme(["A", "B"], [("A", "B", 1.0), ("B", "A", 2.0)])
    assert lin.with_microscopic_reversibility() is lin
    ch82 = kc.models.get("ch82")
    assert ch82.with_microscopic_reversibility() is ch82
    assert r.with_microscopic_reversibility() is r


@pytest.mark.parametrize("scheme, mr, match", [
    (_cycle_scheme(), ["B->A", "A->B"], "exactly 1 transition"),
    (_cycle_scheme(), ["X->Y"], "unknown transition 'X->Y'"),
    (_cycle_scheme(**{"A->B": kc.rate(10.0, z_delta=0.5)}), True, "voltage dependences"),
    (_cycle_scheme(**{"C->A": 0.0}), True, "rate of 0 \\('C->A'\\)"),
    (kc.Scheme(["A", "B"], [("A", "B", 1.0), ("B", "A", 2.0)]), ["A->B"], "no cycle"),
])
def test_with_microscopic_reversibility_refusals(scheme, mr, match):
    with pytest.raises(ValueError, match=match) as e:
        scheme.with_microscopic_reversibility(mr)
    assert str(e.value).startswith("with_microscopic_reversibility: ")
    assert "mr=False" not in str(e.value)  # fit_hjc's advice does not apply here


def test_with_microscopic_reversibility_one_way_transition_refused():
    one_way = kc.Scheme(["A", "B", "C"], [("A", "B", 10.0), ("B", "C", 1.0), ("C", "B", 7.0),
                                          ("C", "A", 3.0), ("A", "C", 2.0)])
    with pytest.raises(ValueError, match="'A->B' lies on a cycle but has no reverse"):
        one_way.with_microscopic_reversibility()


def test_with_rates_mapping_changes_only_the_given_fields():
    """helper-100's audit: with_rates({"O->C2": {"q10": 3}}) was refused ("missing required key
    'k0'"); a mapping now changes the given fields of the law and keeps the rest, while a Rate
    still replaces the whole law."""
    g = kc.models.get("destexhe1994_sf")
    old = {f"{t.src}->{t.dst}": t.rate for t in g.transitions}
    h = g.with_rates({"O->C2": {"q10": 3.0}, "C0->C1": {"factor": 1.0, "z_delta": 0.1}})
    new = {f"{t.src}->{t.dst}": t.rate for t in h.transitions}
    assert new["O->C2"] == replace(old["O->C2"], q10=3.0)
    assert new["C0->C1"] == replace(old["C0->C1"], factor=1.0, z_delta=0.1)   # ligand kept
    assert new["C0->C1"].ligand == "glutamate" and new["C0->C1"].k0 == old["C0->C1"].k0
    assert h.with_rates({"C0->C1": kc.rate(5.0)}).transitions[0].rate == kc.rate(5.0)  # replaced
    # a mapping WITH k0 is a whole law, as Rate.from_dict reads it: Rate.to_dict round-trips
    # (helper-102's review: {"k0": 80} had kept glutamate and the factor 2)
    for r in (kc.rate(80.0), kc.rate(3e6, "glutamate", factor=2.0, q10=2.0)):
        assert g.with_rates({"C0->C1": r.to_dict()}).transitions[0].rate == r
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['q1'\]"):
        g.with_rates({"O->C2": {"q1": 3.0}})
    with pytest.raises(ValueError):
        g.with_rates({"O->C2": {"k0": -1.0}})


def test_with_conductance_changes_conductances_and_e_rev_only():
    """helper-104's audit: setting a GABA-A E_Cl meant editing the dict form (and the obvious
    key was refused).  with_conductance changes what it names; everything else is kept."""
    g = kc.models.get("destexhe1994")
    h = g.with_conductance({"O": 30e-12}, e_rev=-0.065)
    assert h.e_rev == -0.065 and h.conductance[h.index("O")] == 30e-12
    assert list(h.conductance[:-1]) == list(g.conductance[:-1])
    assert h.states == g.states and h.ligands == g.ligands and h.temperature == g.temperature
    assert h.name == g.name and h.citation == g.citation
    np.testing.assert_array_equal(h.q_matrix(glutamate=1e-3), g.q_matrix(glutamate=1e-3))
    assert g.with_conductance(e_rev=0.01).e_rev == 0.01
    assert list(g.with_conductance([0, 0, 0, 0, 5e-12]).conductance) == [0, 0, 0, 0, 5e-12]
    # the current follows: I = g (V - E_rev)
    r = kc.solve(h, kc.Step(0.01, glutamate=1e-3, V=-0.07), dt=1e-3)
    np.testing.assert_allclose(r.current, r.open_probability * 30e-12 * (-0.07 + 0.065), rtol=1e-12)
    with pytest.raises(ValueError, match=r"conductance: unknown state 'X'"):
        g.with_conductance({"X": 1e-12})
    with pytest.raises(ValueError, match=r"conductance\['O'\] must be >= 0"):
        g.with_conductance({"O": -1.0})
    with pytest.raises(ValueError, match=r"e_rev=10.0 V is outside"):
        g.with_conductance(e_rev=10.0)
