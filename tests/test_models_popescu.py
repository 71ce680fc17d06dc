"""Built-in models ``popescu2004_h``, ``popescu2004_m``, ``popescu2004_l``: GluN1/GluN2A gating in
the three modes of Popescu, Robert, Howe & Auerbach 2004 (Nature 430:790-793).

Every reference value is written here from the published rate table in its own units
(kon in uM^-1 s^-1, the rest in s^-1; the table as printed in geoffder/kinetics graph_builds.py,
which ``ketacore/models/_build.py`` cites) and computed with numpy/scipy, independently of
ketacore's theory and solver:

* the Q matrix at 1 uM and 1 mM glutamate equals one written out by hand (1e-12 relative);
* microscopic reversibility, and equilibrium occupancies equal both the closed form of a linear
  chain (products of forward/backward ratios) and a Grassmann-Taksar-Heyman elimination;
* open- and shut-time distributions (``theory.dwell_times``) equal the spectral expansion of the
  Q partition done with numpy (rates = eigenvalues of -Q_AA);
* ``kc.solve`` of a 1 ms, 1 mM glutamate pulse equals ``scipy.linalg.expm`` propagation;
* the modes are ordered as named (H highest equilibrium Po at 1 mM, L lowest), and the figures
  quoted in each model's notes are the computed ones;
* TOML round trip, and the shipped files are exactly what the generator writes.

Numerical tolerances only (1e-12 for exact rate arithmetic, 1e-9 for eigen-decompositions and
matrix exponentials); no value is compared with a measurement.
"""
from __future__ import annotations

import pathlib

import numpy as np
import pytest
import scipy.linalg

import ketacore as kc
from ketacore import theory
from ketacore.models import _build
from ketacore.units import mM, ms, uM

STATES = ("R", "AR", "C1", "C2", "C3", "O1", "O2")
OPEN = [5, 6]
SHUT = [0, 1, 2, 3, 4]

# Popescu et al. 2004 modal rate table, units as published:
#         kon (/uM/s), koff, C1C2, C2C1, C2C3, C3C2, C3O1, O1C3, O1O2, O2O1 (/s)
TABLE = {
    "h": (20, 58, 93, 196, 914, 954, 6729, 321, 1343, 247),
    "m": (19, 58, 150, 173, 902, 2412, 4467, 1283, 4630, 526),
    "l": (17, 60, 127, 161, 580, 2610, 2508, 2167, 3449, 662),
}
MODES = tuple(TABLE)
NAMES = tuple(f"popescu2004_{m}" for m in MODES)


def _load(name: str) -> kc.Scheme:
    """The shipped model (kc.models)."""
    return kc.models.get(name)


def _hand_q(mode: str, G_uM: float) -> np.ndarray:
    """Q (s^-1) written from the table: R -2kon G-> AR -kon G-> C1, C1 -2koff-> AR -koff-> R."""
    kon, koff, c12, c21, c23, c32, c3o, oc3, o12, o21 = TABLE[mode]
    q = np.zeros((7, 7))
    q[0, 1] = 2 * kon * G_uM
    q[1, 0] = koff
    q[1, 2] = kon * G_uM
    q[2, 1] = 2 * koff
    q[2, 3], q[3, 2] = c12, c21
    q[3, 4], q[4, 3] = c23, c32
    q[4, 5], q[5, 4] = c3o, oc3
    q[5, 6], q[6, 5] = o12, o21
    np.fill_diagonal(q, -q.sum(axis=1))
    return q


def _chain_equilibrium(q: np.ndarray) -> np.ndarray:
    """Closed form for a linear chain: p_{i+1}/p_i = q[i, i+1] / q[i+1, i]."""
    w = np.ones(7)
    for i in range(6):
        w[i + 1] = w[i] * q[i, i + 1] / q[i + 1, i]
    return w / w.sum()


def _gth(q: np.ndarray) -> np.ndarray:
    """Equilibrium by Grassmann-Taksar-Heyman state reduction (no subtractions)."""
    a = np.array(q, dtype=float)
    np.fill_diagonal(a, 0.0)
    n = a.shape[0]
    for k in range(n - 1, 0, -1):
        s = a[k, :k].sum()
        a[:k, k] /= s
        a[:k, :k] += np.outer(a[:k, k], a[k, :k])
    p = np.zeros(n)
    p[0] = 1.0
    for k in range(1, n):
        p[k] = p[:k] @ a[:k, k]
    return p / p.sum()


def _spectral_dwell(q: np.ndarray, A: list[int], F: list[int]):
    """Equilibrium sojourn distribution in class A from the Q partition with numpy:
    f(t) = phi expm(Q_AA t)(-Q_AA) u, phi = p_F Q_FA / (p_F Q_FA u).
    Returns (taus ascending, areas, mean)."""
    p = _chain_equilibrium(q)
    QAA, QFA = q[np.ix_(A, A)], q[np.ix_(F, A)]
    phi = p[F] @ QFA
    phi = phi / phi.sum()
    lam, V = np.linalg.eig(-QAA)
    lam, V = lam.real, V.real           # reversible: real spectrum
    Vinv = np.linalg.inv(V)
    u = np.ones(len(A))
    amp = (phi @ V) * (Vinv @ (-QAA) @ u)   # pdf amplitude of each component
    areas = amp / lam
    order = np.argsort(1.0 / lam)
    mean = phi @ np.linalg.solve(-QAA, u)
    return (1.0 / lam)[order], areas[order], mean


# --------------------------------------------------------------------------- provenance
@pytest.mark.parametrize("mode", MODES)
def test_states_ligand_conductance_and_citation(mode):
    s = _load(f"popescu2004_{mode}")
    assert s.name == f"popescu2004_{mode}"
    assert s.states == STATES
    assert s.ligands == ("glutamate",)
    assert s.open_states == ("O1", "O2")
    np.testing.assert_array_equal(s.conductance, [0, 0, 0, 0, 0, _build.G_NMDA, _build.G_NMDA])
    assert s.e_rev == 0.0
    assert s.doi == "10.1038/nature02775"
    assert "Popescu G, Robert A, Howe JR, Auerbach A (2004)" in s.citation
    assert "Nature 430:790-793" in s.citation
    for needle in ("separate models", "NO desensitized states", "saturating",
                   "erreger2005_2a", "Po-corrected", "geoffder/kinetics", "PMC10435238",
                   "NOT checked"):
        assert needle in s.notes, needle


# --------------------------------------------------------------------------- Q matrix
@pytest.mark.parametrize("G_uM", [1.0, 1000.0])
@pytest.mark.parametrize("mode", MODES)
def test_q_matches_the_published_table(mode, G_uM):
    s = _load(f"popescu2004_{mode}")
    np.testing.assert_allclose(s.q_matrix(glutamate=G_uM * uM), _hand_q(mode, G_uM),
                               rtol=1e-12, atol=0)


@pytest.mark.parametrize("mode", MODES)
def test_statistical_factors_are_explicit(mode):
    # the table's kon and koff are per site; the factors 2 sit in Rate.factor, not in k0
    s = _load(f"popescu2004_{mode}")
    kon, koff = TABLE[mode][:2]
    r = {(t.src, t.dst): t.rate for t in s.transitions}
    assert (r["R", "AR"].k0, r["R", "AR"].factor, r["R", "AR"].ligand) == (kon * 1e6, 2.0,
                                                                          "glutamate")
    assert (r["AR", "C1"].k0, r["AR", "C1"].factor) == (kon * 1e6, 1.0)
    assert (r["AR", "R"].k0, r["AR", "R"].factor) == (koff, 1.0)
    assert (r["C1", "AR"].k0, r["C1", "AR"].factor) == (koff, 2.0)


# --------------------------------------------------------------------------- equilibrium
@pytest.mark.parametrize("G_uM", [1.0, 1000.0])
@pytest.mark.parametrize("mode", MODES)
def test_reversible_and_equilibrium(mode, G_uM):
    s = _load(f"popescu2004_{mode}")
    G = G_uM * uM
    assert theory.is_reversible(s, glutamate=G) is True
    qh = _hand_q(mode, G_uM)
    p_chain, p_gth = _chain_equilibrium(qh), _gth(qh)
    np.testing.assert_allclose(p_gth, p_chain, rtol=1e-12)
    p = theory.equilibrium(s, glutamate=G)
    np.testing.assert_allclose(p, p_chain, rtol=1e-9)
    # detailed balance of the computed occupancies: p_i q_ij = p_j q_ji on every edge
    F = p[:, None] * s.q_matrix(glutamate=G)
    np.fill_diagonal(F, 0.0)
    np.testing.assert_allclose(F, F.T, rtol=1e-9, atol=1e-12 * F.max())
    assert theory.open_probability(s, glutamate=G) == pytest.approx(p_chain[OPEN].sum(),
                                                                    rel=1e-9)


def _po_saturating(mode: str) -> float:
    return _chain_equilibrium(_hand_q(mode, 1000.0))[OPEN].sum()


def test_modes_are_ordered_as_named():
    po = {m: theory.open_probability(_load(f"popescu2004_{m}"), glutamate=1 * mM) for m in MODES}
    for m in MODES:
        assert po[m] == pytest.approx(_po_saturating(m), rel=1e-9)
    assert po["h"] > po["m"] > po["l"]
    # mean open time follows the same order
    mot = {m: theory.dwell_times(_load(f"popescu2004_{m}"), "open", glutamate=1 * mM).mean
           for m in MODES}
    assert mot["h"] > mot["m"] > mot["l"]


@pytest.mark.parametrize("mode", MODES)
def test_notes_quote_the_computed_figures(mode):
    """The figures written into the notes (_build._POP_COMPUTED) are the computed ones."""
    s = _load(f"popescu2004_{mode}")
    po_mM = _po_saturating(mode)
    po_uM = _chain_equilibrium(_hand_q(mode, 1.0))[OPEN].sum()
    taus, _, mean = _spectral_dwell(_hand_q(mode, 1000.0), OPEN, SHUT)
    text = (f"Po(1 mM) {po_mM:.3f}, Po(1 uM) {po_uM:.3f}; open-time components "
            f"{taus[0] * 1e3:.3g} ms and {taus[1] * 1e3:.3g} ms, mean open time "
            f"{mean * 1e3:.3g} ms")
    assert text in s.notes, (text, s.notes)


# --------------------------------------------------------------------------- dwell times
@pytest.mark.parametrize("G_uM", [1.0, 1000.0])
@pytest.mark.parametrize("which", ["open", "shut"])
@pytest.mark.parametrize("mode", MODES)
def test_dwell_times_equal_the_spectral_expansion(mode, which, G_uM):
    s = _load(f"popescu2004_{mode}")
    A, F = (OPEN, SHUT) if which == "open" else (SHUT, OPEN)
    taus, areas, mean = _spectral_dwell(_hand_q(mode, G_uM), A, F)
    d = theory.dwell_times(s, which, glutamate=G_uM * uM)
    assert isinstance(d, theory.ExponentialMixture)
    # dwell_times drops components whose area is rounding noise, |area| <= 1e-13 * sum|areas|
    # (its documented rule): at 1 mM the shut-time component of the binding steps (tau
    # ~0.03 ms) has area ~3e-14 -- shut periods start in C3 and almost never reach R
    kept = np.abs(areas) > 1e-13 * np.abs(areas).sum()
    assert kept.sum() >= len(A) - 1
    taus, areas = taus[kept], areas[kept]
    assert d.n_components == len(taus)
    np.testing.assert_allclose(d.taus, taus, rtol=1e-9)
    np.testing.assert_allclose(d.areas, areas, rtol=1e-9, atol=1e-12)
    assert d.mean == pytest.approx(mean, rel=1e-9)
    assert float(np.sum(d.areas)) == pytest.approx(1.0, rel=1e-12)
    if which == "open":
        assert d.n_components == 2
    if which == "open":
        # open times do not depend on glutamate (no binding step from O1 or O2)
        np.testing.assert_allclose(taus, _spectral_dwell(_hand_q(mode, 1.0), A, F)[0],
                                   rtol=1e-12)


# --------------------------------------------------------------------------- solver
@pytest.mark.parametrize("mode", MODES)
def test_pulse_response_equals_expm(mode):
    s = _load(f"popescu2004_{mode}")
    dt = 50e-6
    prot = kc.Protocol([kc.Step(1 * ms, glutamate=1 * mM), kc.Step(20 * ms)])
    r = kc.solve(s, prot, dt=dt, initial="R")
    t = np.arange(r.occupancy.shape[0]) * dt
    qon, qoff = _hand_q(mode, 1000.0), _hand_q(mode, 0.0)
    p0 = np.zeros(7)
    p0[0] = 1.0
    t_on = 1e-3
    p_end = p0 @ scipy.linalg.expm(qon * t_on)
    ref = np.array([p0 @ scipy.linalg.expm(qon * tk) if tk <= t_on
                    else p_end @ scipy.linalg.expm(qoff * (tk - t_on)) for tk in t])
    np.testing.assert_allclose(r.occupancy, ref, rtol=0, atol=1e-9)
    np.testing.assert_allclose(r.open_probability, ref[:, OPEN].sum(axis=1), rtol=0, atol=1e-9)
    assert r.open_probability.max() > 0.0


# --------------------------------------------------------------------------- files
@pytest.mark.parametrize("name", NAMES)
def test_toml_round_trip_and_generator(name):
    s = _load(name)
    text = s.to_toml()
    s2 = kc.Scheme.from_toml(text)
    assert s2 == s
    assert s2.to_toml() == text
    # the shipped file is exactly what the generator writes (as tests/test_models.py checks
    # for the registered models)
    assert (_build.HERE / f"{name}.toml").read_text(encoding="utf-8") == _build.toml_text(name)
    assert {t.rate.t_ref for t in s.transitions} == {s.temperature}


def test_generator_rewrites_every_file_unchanged(tmp_path, monkeypatch):
    """Running the generator into a scratch directory reproduces every shipped TOML file,
    the older ones and these three, byte for byte."""
    monkeypatch.setattr(_build, "HERE", tmp_path)
    _build.main()
    for name in _build.BUILDERS:
        shipped = pathlib.Path(kc.models.__file__).parent / f"{name}.toml"
        assert (tmp_path / f"{name}.toml").read_bytes() == shipped.read_bytes(), name


@pytest.mark.parametrize("mode", MODES)
def test_notes_quote_the_computed_synaptic_and_ketamine_figures(mode):
    """The deactivation and ketamine figures in the notes (_build._POP_SYNAPTIC, helper-115's
    audit) are what the library computes now, to the 3 digits quoted: peak Po of a 1 ms 1 mM
    pulse (solve), the slowest deactivation time constant (theory.relaxation in 0 glutamate),
    ketamine's trapped occupancy (experiments.trapping) and onset/recovery taus at 10 uM
    (experiments.block_kinetics)."""
    import warnings
    g = _load(f"popescu2004_{mode}")
    r = kc.solve(g, kc.Protocol([kc.Step(1 * ms, glutamate=1 * mM), kc.Step(0.5)]), 1e-5, initial="R")
    slow = max(theory.relaxation(g, r.occupancy[100], glutamate=0.0).taus)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # (the trapping run's peak_window advice)
        trapped = kc.experiments.trapping(g, "ketamine").trapped_occupancy
        bk = kc.experiments.block_kinetics(g, "ketamine", 10e-6)
    got = dict(peak=r.open_probability.max(), slow=slow, trapped=trapped, on=bk.tau_on, off=bk.tau_off)
    for k, v in _build._POP_SYNAPTIC[mode].items():
        assert float(f"{got[k]:.3g}") == v, (k, got[k], v)
    assert _build._pop_synaptic_text(mode) in g.notes
