"""Synaptic library models: ``destexhe1998_ampa`` and ``destexhe1998_gabaa`` (ModelDB 18198
ampa5.mod and gabaa5.mod, Destexhe, Mainen & Sejnowski 1998).

Every reference value here is written from the .mod files in their own units (ms, mM, /ms,
/mM/ms, /uM/ms with the file's factor 1e3), not from ketacore's SI numbers, so the tests also
check the unit conversion done in ``ketacore/models/_build.py``:

* the Q matrix at a concentration equals one built by hand from the KINETIC block's rate
  expressions (numerical tolerance, 1e-13 relative);
* ``kc.solve`` of a 1 mM, 1 ms transmitter pulse then 20 ms wash, starting at rest (C0 = 1, the
  files' INITIAL block), matches ``scipy.integrate.solve_ivp`` (Radau, rtol 1e-10, atol 1e-12) of
  the KINETIC equations written out by hand, to 1e-7 absolute in open probability;
* qualitative facts of the published schemes (AMPA desensitises, GABA-A has no desensitized
  state; the GABA-A rates are two identical independent sites).

All checks are deterministic (no random numbers).
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import ketacore as kc
from ketacore.units import mM, ms, mV, pS

# ------------------------------------------------------------------ the .mod files, verbatim
# ampa5.mod PARAMETER (units as in the file)
AMPA = dict(Rb=13.0,        # (/mM /ms)
            Ru1=0.0059,     # (/ms)
            Ru2=86.0,       # (/ms)
            Rd=0.9,         # (/ms)
            Rr=0.064,       # (/ms)
            Ro=2.7,         # (/ms)
            Rc=0.2)         # (/ms)
AMPA_EREV_MV = 0.0
# gabaa5.mod PARAMETER (units as in the file)
GABAA = dict(kf1=0.02,      # (/uM /ms)
             kf2=0.01,      # (/uM /ms)
             kb1=4.6, kb2=9.2, a1=3.3, b1=9.8, a2=10.6, b2=0.41)   # (/ms)
GABAA_EREV_MV = -80.0

AMPA_STATES = ("C0", "C1", "C2", "D1", "D2", "O")
GABAA_STATES = ("C0", "C1", "C2", "O1", "O2")


def ampa_reactions(C_mM: float):
    """KINETIC kstates of ampa5.mod: rb = Rb * C; (A, B, forward, backward) in /ms."""
    p = AMPA
    rb = p["Rb"] * C_mM
    return [("C0", "C1", rb, p["Ru1"]),
            ("C1", "C2", rb, p["Ru2"]),
            ("C1", "D1", p["Rd"], p["Rr"]),
            ("C2", "D2", p["Rd"], p["Rr"]),
            ("C2", "O", p["Ro"], p["Rc"])]


def gabaa_reactions(C_mM: float):
    """KINETIC kstates of gabaa5.mod: f1 = kf1 * (1e3) * C, f2 = kf2 * (1e3) * C."""
    p = GABAA
    f1 = p["kf1"] * 1e3 * C_mM
    f2 = p["kf2"] * 1e3 * C_mM
    return [("C0", "C1", f1, p["kb1"]),
            ("C1", "C2", f2, p["kb2"]),
            ("C1", "O1", p["a1"], p["b1"]),
            ("C2", "O2", p["a2"], p["b2"])]


def ampa_rhs(t, y, C_mM):
    """ampa5.mod KINETIC equations written out (t in ms, fractions)."""
    p = AMPA
    C0, C1, C2, D1, D2, O = y
    rb = p["Rb"] * C_mM
    f01 = rb * C0 - p["Ru1"] * C1      # ~ C0 <-> C1 (rb, Ru1)
    f12 = rb * C1 - p["Ru2"] * C2      # ~ C1 <-> C2 (rb, Ru2)
    f1d = p["Rd"] * C1 - p["Rr"] * D1  # ~ C1 <-> D1 (Rd, Rr)
    f2d = p["Rd"] * C2 - p["Rr"] * D2  # ~ C2 <-> D2 (Rd, Rr)
    f2o = p["Ro"] * C2 - p["Rc"] * O   # ~ C2 <-> O  (Ro, Rc)
    return [-f01,
            f01 - f12 - f1d,
            f12 - f2d - f2o,
            f1d,
            f2d,
            f2o]


def gabaa_rhs(t, y, C_mM):
    """gabaa5.mod KINETIC equations written out (t in ms, fractions)."""
    p = GABAA
    C0, C1, C2, O1, O2 = y
    f1 = p["kf1"] * 1e3 * C_mM
    f2 = p["kf2"] * 1e3 * C_mM
    g01 = f1 * C0 - p["kb1"] * C1       # ~ C0 <-> C1 (f1, kb1)
    g12 = f2 * C1 - p["kb2"] * C2       # ~ C1 <-> C2 (f2, kb2)
    g1o = p["a1"] * C1 - p["b1"] * O1   # ~ C1 <-> O1 (a1, b1)
    g2o = p["a2"] * C2 - p["b2"] * O2   # ~ C2 <-> O2 (a2, b2)
    return [-g01,
            g01 - g12 - g1o,
            g12 - g2o,
            g1o,
            g2o]


CASES = {
    "destexhe1998_ampa": dict(ligand="glutamate", states=AMPA_STATES, open=("O",),
                              reactions=ampa_reactions, rhs=ampa_rhs),
    "destexhe1998_gabaa": dict(ligand="gaba", states=GABAA_STATES, open=("O1", "O2"),
                               reactions=gabaa_reactions, rhs=gabaa_rhs),
}


def _hand_q(case, C_mM: float) -> np.ndarray:
    """Q (1/s) from the .mod reactions (1/ms): each ~ A <-> B (kf, kb) gives q_AB = kf,
    q_BA = kb; times 1e3 for /ms -> /s."""
    idx = {s: i for i, s in enumerate(case["states"])}
    Q = np.zeros((len(idx), len(idx)))
    for a, b, kf, kb in case["reactions"](C_mM):
        Q[idx[a], idx[b]] += kf * 1e3
        Q[idx[b], idx[a]] += kb * 1e3
    np.fill_diagonal(Q, -Q.sum(axis=1))
    return Q


# ------------------------------------------------------------------ identity and provenance
def test_listed_and_loadable():
    names = kc.models.available()
    assert "destexhe1998_ampa" in names and "destexhe1998_gabaa" in names
    for name in CASES:
        s = kc.models.get(name)
        assert s.name == name
        assert "ModelDB 18198" in s.citation and "Methods in Neuronal Modeling" in s.citation
        # (the chapter has no DOI; the 1994 formalism paper's is in the notes, not in doi:
        # citation and doi must not disagree -- the session-18 review)
        assert s.doi == "" and "(no DOI)" in s.citation and "doi:10.1007/BF00961734" in s.notes
        # the shipped file is exactly what the generator writes
        from ketacore.models import _build
        assert kc.models.path(name).read_text(encoding="utf-8") == _build.toml_text(name)


@pytest.mark.parametrize("name", list(CASES))
def test_states_ligand_reversal_and_conductance(name):
    case = CASES[name]
    s = kc.models.get(name)
    assert s.states == case["states"]
    assert s.ligands == (case["ligand"],)
    assert s.open_states == case["open"]
    erev_mV = AMPA_EREV_MV if name.endswith("ampa") else GABAA_EREV_MV
    assert s.e_rev == pytest.approx(erev_mV * mV, abs=1e-15)
    # single-channel conductance: a library choice documented in notes (the files give only a
    # per-synapse gmax of 500 pS)
    g = 10 * pS if name.endswith("ampa") else 27.2 * pS
    np.testing.assert_allclose(s.conductance[s.indices(list(case["open"]))], g, rtol=1e-12)
    assert "500 pS" in s.notes and "per synapse" in s.notes
    assert "statistical factor" in s.notes.lower()


# ------------------------------------------------------------------ (1) Q matrix by hand
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("C_mM", [0.0, 0.001, 0.3, 1.0, 3.0])
def test_q_matrix_equals_the_mod_rate_expressions(name, C_mM):
    case = CASES[name]
    s = kc.models.get(name)
    Q = s.q_matrix(V=-70 * mV, **{case["ligand"]: C_mM * mM})
    np.testing.assert_allclose(Q, _hand_q(case, C_mM), rtol=1e-13, atol=1e-9)
    # no voltage dependence in either file
    Q40 = s.q_matrix(V=40 * mV, **{case["ligand"]: C_mM * mM})
    np.testing.assert_array_equal(Q40, Q)


# ------------------------------------------------------------------ (2) ODE oracle
@pytest.mark.parametrize("name", list(CASES))
def test_pulse_response_matches_the_mod_kinetic_equations(name):
    case = CASES[name]
    s = kc.models.get(name)
    lig = case["ligand"]
    dt_ms, pulse_ms, wash_ms = 0.05, 1.0, 20.0
    protocol = kc.Protocol([kc.Step(pulse_ms * ms, **{lig: 1 * mM}), kc.Step(wash_ms * ms)],
                           rest=kc.Step(1 * ms))
    res = kc.solve(s, protocol, dt=dt_ms * ms)
    t_ms = np.asarray(res.time) / ms
    n = int(round((pulse_ms + wash_ms) / dt_ms)) + 1
    assert len(t_ms) == n
    np.testing.assert_allclose(t_ms, np.arange(n) * dt_ms, rtol=0, atol=1e-9)

    # the .mod INITIAL block: everything in C0
    y0 = np.zeros(len(case["states"]))
    y0[0] = 1.0
    np.testing.assert_allclose(res.occupancy[0], y0, rtol=0, atol=1e-12)

    # integrate each constant-concentration segment separately (C is discontinuous)
    k_end = int(round(pulse_ms / dt_ms))
    opts = dict(method="Radau", rtol=1e-10, atol=1e-12)
    a = solve_ivp(case["rhs"], (0.0, pulse_ms), y0, t_eval=t_ms[:k_end + 1], args=(1.0,), **opts)
    assert a.success
    b = solve_ivp(case["rhs"], (pulse_ms, pulse_ms + wash_ms), a.y[:, -1],
                  t_eval=t_ms[k_end:], args=(0.0,), **opts)
    assert b.success
    ref = np.concatenate([a.y[:, :-1], b.y], axis=1).T          # (n, K)
    assert ref.shape == res.occupancy.shape

    open_idx = [case["states"].index(o) for o in case["open"]]
    po_ref = ref[:, open_idx].sum(axis=1)
    np.testing.assert_allclose(res.open_probability, po_ref, rtol=0, atol=1e-7)
    np.testing.assert_allclose(res.occupancy, ref, rtol=0, atol=1e-7)
    # the response is not trivially small (the comparison means something)
    assert po_ref.max() > 0.1


# ------------------------------------------------------------------ (3) qualitative facts
def test_ampa_desensitises_during_a_long_pulse():
    """ampa5.mod has desensitized states D1, D2 (Rd 0.9 /ms vs Rr 0.064 /ms): during a long
    1 mM pulse Po peaks within a few ms and then relaxes to a steady level far below the peak,
    with most receptors desensitized."""
    s = kc.models.get("destexhe1998_ampa")
    protocol = kc.Protocol([kc.Step(300 * ms, glutamate=1 * mM)], rest=kc.Step(1 * ms))
    res = kc.solve(s, protocol, dt=0.05 * ms)
    po = np.asarray(res.open_probability)
    k_peak = int(np.argmax(po))
    assert res.time[k_peak] < 5 * ms
    steady = po[-1]
    eq = kc.theory.equilibrium(s, glutamate=1 * mM)
    assert steady == pytest.approx(eq[s.states.index("O")], abs=1e-9)   # reached steady state
    assert steady < 0.6 * po[k_peak], (steady, po[k_peak])
    desensitized = eq[s.states.index("D1")] + eq[s.states.index("D2")]
    assert desensitized > 0.8, desensitized
    # and a single 1 ms pulse leaves most receptors desensitized 20 ms later (Ru1 is slow)
    pulse = kc.Protocol([kc.Step(1 * ms, glutamate=1 * mM), kc.Step(20 * ms)],
                        rest=kc.Step(1 * ms))
    end = kc.solve(s, pulse, dt=0.1 * ms).occupancy[-1]
    assert end[s.states.index("D1")] > 0.5


def test_gabaa_does_not_desensitise():
    """gabaa5.mod has no desensitized state: during a long 1 mM pulse Po rises monotonically
    to its equilibrium, which is also its maximum."""
    s = kc.models.get("destexhe1998_gabaa")
    protocol = kc.Protocol([kc.Step(100 * ms, gaba=1 * mM)], rest=kc.Step(1 * ms))
    po = np.asarray(kc.solve(s, protocol, dt=0.05 * ms).open_probability)
    assert np.all(np.diff(po) >= -1e-12)
    eq = kc.theory.equilibrium(s, gaba=1 * mM)
    po_eq = eq[s.states.index("O1")] + eq[s.states.index("O2")]
    assert po[-1] == pytest.approx(po_eq, abs=1e-9)
    assert po.max() == pytest.approx(po_eq, abs=1e-9)


def test_gabaa_rates_are_two_identical_sites_ampa_rates_are_not():
    """Statistical factors: in gabaa5.mod kf1 = 2 kf2 and kb2 = 2 kb1 (two identical
    independent sites, factors folded into the numbers); ampa5.mod binds at Rb on both steps
    and its unbinding rates Ru1, Ru2 are unrelated fitted values."""
    G = 1 * mM
    q = kc.models.get("destexhe1998_gabaa").q_matrix(gaba=G)
    C0, C1, C2 = 0, 1, 2
    assert q[C0, C1] == pytest.approx(2 * q[C1, C2], rel=1e-15)
    assert q[C2, C1] == pytest.approx(2 * q[C1, C0], rel=1e-15)
    assert q[C1, C2] == pytest.approx(1e7 * G, rel=1e-15)       # k+ = 1e7 /M/s
    assert q[C1, C0] == pytest.approx(4600.0, rel=1e-15)        # k- = 4600 /s
    a = kc.models.get("destexhe1998_ampa")
    qa = a.q_matrix(glutamate=G)
    assert qa[C0, C1] == qa[C1, C2] == pytest.approx(1.3e7 * G, rel=1e-15)
    assert qa[C2, C1] / qa[C1, C0] == pytest.approx(86.0 / 0.0059, rel=1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_tree_schemes_are_reversible(name):
    """Both schemes are trees (no cycles), so they obey detailed balance at any
    concentration."""
    s = kc.models.get(name)
    lig = CASES[name]["ligand"]
    assert len(s.transitions) == 2 * (s.n_states - 1)
    for c in (1e-6, 1e-3):
        Q = s.q_matrix(**{lig: c})
        p = kc.theory.equilibrium(s, **{lig: c})
        F = p[:, None] * Q
        np.fill_diagonal(F, 0.0)
        np.testing.assert_allclose(F, F.T, rtol=1e-8, atol=1e-14 * F.max())
