"""Tests for ketacore.theory (Q-matrix theory, Colquhoun & Hawkes).

Oracles, in order of independence:

* closed forms (2-state C<->O, 3-state open-channel blocker C<->O<->OB,
  Castillo-Katz binding/gating, birth-death chains with product-form
  equilibria, first latency with an absorbing state);
* scipy (``scipy.linalg.expm``, ``scipy.linalg.null_space``,
  ``scipy.integrate.quad``) and the defining matrix formulas;
* SCALCS (``pip install scalcs``, DCPROGS' Python Q-matrix library) on the CH82
  mechanism at 0.1, 1, 10 and 100 uM;
* numbers published in the DCPROGS SCALCS test suite (tests/test_scburst.py,
  tests/test_scalcslib.py, tests/test_popen.py) for CH82 at 0.1 uM, which run
  even without scalcs installed.

SCALCS' CH82 uses 2k*-2 = 0.66667 s^-1 (not the exactly reversible 2/3), so
comparisons with it use the same value; the exact value is tested separately.
Everything here is deterministic except the one sampling test, whose tolerance
is stated there. The whole file runs in a few seconds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, linalg, stats

from ketacore import theory as th
from _ch82 import ch82_q

try:  # optional oracle
    from scalcs import popen as sc_popen
    from scalcs import qmatlib as sc_qml
    from scalcs import scalcslib as sc_lib
    from scalcs import scburst as sc_burst
    from scalcs.samples import samples as sc_samples
    HAVE_SCALCS = True
except Exception:  # pragma: no cover - depends on the environment
    HAVE_SCALCS = False

needs_scalcs = pytest.mark.skipif(not HAVE_SCALCS, reason="scalcs not installed")

# ---------------------------------------------------------------------------
# CH82 mechanism (Colquhoun & Hawkes 1982), states AR*, A2R*, AR, A2R, R
# ---------------------------------------------------------------------------
CH82_STATES = ("AR*", "A2R*", "AR", "A2R", "R")
OPEN = [0, 1]
WITHIN = [2, 3]  # AR, A2R: short shut states within bursts
CONCS = [1e-7, 1e-6, 1e-5, 1e-4]  # M


class FakeScheme:
    """Duck-typed stand-in for kc.Scheme (states, conductance, ligands, q_matrix)."""

    def __init__(self, qfun, states, conductance, ligand="agonist"):
        self._qfun = qfun
        self.states = tuple(states)
        self.conductance = np.asarray(conductance, dtype=float)
        self.ligands = (ligand,)
        self._ligand = ligand
        self.calls = []

    def q_matrix(self, V=-0.07, temperature=None, **conc):
        unknown = set(conc) - {self._ligand}
        if unknown:
            raise ValueError(f"unknown ligand(s) {sorted(unknown)}")
        self.calls.append((V, temperature, dict(conc)))
        return self._qfun(conc.get(self._ligand, 0.0))


def ch82_scheme(two_kstar_m2=2.0 / 3.0):
    return FakeScheme(lambda c: ch82_q(c, two_kstar_m2), CH82_STATES,
                      [60e-12, 60e-12, 0, 0, 0])


def scalcs_ch82(c):
    mec = sc_samples.CH82()
    mec.set_eff("c", c)
    return mec


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


# ---------------------------------------------------------------------------
# Q construction and the reference matrix (HJCFIT likelihood/tests/qmatrix.cc)
# ---------------------------------------------------------------------------


def test_ch82_q_reproduces_reference_matrix():
    ref = np.array([[-3050, 50, 3000, 0, 0],
                    [2 / 3, -1502 / 3, 0, 500, 0],
                    [15, 0, -2065, 50, 2000],
                    [0, 15000, 4000, -19000, 0],
                    [0, 0, 10, 0, -10]], dtype=float)
    np.testing.assert_allclose(ch82_q(1e-7), ref, rtol=1e-14, atol=1e-12)


@needs_scalcs
@pytest.mark.parametrize("c", CONCS)
def test_ch82_q_matches_scalcs(c):
    mec = scalcs_ch82(c)
    assert [s.name for s in mec.States] == list(CH82_STATES)
    np.testing.assert_allclose(ch82_q(c, 0.66667), mec.Q, rtol=1e-14, atol=1e-9)


def test_detailed_balance():
    for c in CONCS:
        assert th.is_reversible(ch82_q(c))
        p = th.equilibrium(ch82_q(c))
        Q = ch82_q(c)
        F = p[:, None] * Q
        np.fill_diagonal(F, 0)
        np.testing.assert_allclose(F, F.T, rtol=1e-12, atol=0)
    # 0.66667 breaks microscopic reversibility by 5e-6 (relative)
    assert not th.is_reversible(ch82_q(1e-6, 0.66667))
    # a driven cycle is not reversible
    Qc = np.array([[-11.0, 10, 1], [1, -11, 10], [10, 1, -11]])
    assert not th.is_reversible(Qc)


# ---------------------------------------------------------------------------
# equilibrium
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("c", CONCS)
def test_equilibrium_vs_null_space_and_ch95(c):
    Q = ch82_q(c)
    p = th.equilibrium(Q)
    ns = linalg.null_space(Q.T)
    assert ns.shape[1] == 1
    v = ns[:, 0] / ns[:, 0].sum()
    np.testing.assert_allclose(p, v, rtol=1e-9)
    # CH95b: p = u (S S^T)^-1, S = [Q | u]
    S = np.hstack([Q, np.ones((5, 1))])
    p95 = np.ones(5) @ np.linalg.inv(S @ S.T)
    np.testing.assert_allclose(p, p95, rtol=1e-8)
    np.testing.assert_allclose(p @ Q, 0, atol=1e-12 * np.abs(Q).max())
    assert p.sum() == pytest.approx(1.0, abs=1e-15)


def test_equilibrium_two_state_closed_form():
    alpha, beta = 500.0, 30.0
    Q = np.array([[-alpha, alpha], [beta, -beta]])  # state 0 open
    assert th.open_probability(Q, open=[0]) == pytest.approx(beta / (alpha + beta), rel=1e-15)


def test_equilibrium_stiff_birth_death_relative_accuracy():
    # rates from 1e-3 to 1e9 s^-1; product form p_{i+1}/p_i = up_i/down_i
    up = np.array([1e9, 1e-3, 1e6, 5.0, 1e-2, 3e8])
    down = np.array([1e-3, 1e9, 2.0, 1e8, 7e5, 1e-1])
    k = up.size + 1
    Q = np.zeros((k, k))
    for i in range(k - 1):
        Q[i, i + 1] = up[i]
        Q[i + 1, i] = down[i]
    np.fill_diagonal(Q, -Q.sum(axis=1))
    logp = np.concatenate([[0.0], np.cumsum(np.log(up) - np.log(down))])
    exact = np.exp(logp - logp.max())
    exact /= exact.sum()
    p = th.equilibrium(Q)
    assert exact.min() < 1e-20  # really stiff
    np.testing.assert_allclose(p, exact, rtol=1e-13)  # every entry, however small


def test_equilibrium_absorbing_state_falls_back():
    # state 2 absorbing: unique equilibrium all in state 2
    Q = np.array([[-3.0, 2.0, 1.0], [4.0, -5.0, 1.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(th.equilibrium(Q), [0, 0, 1], atol=1e-12)
    # CH82 at zero agonist: R absorbing (last in order, where plain GTH breaks down);
    # transient states get exactly 0
    np.testing.assert_array_equal(th.equilibrium(ch82_q(0.0)), [0, 0, 0, 0, 1])
    assert th.concentration_response(ch82_scheme(), "agonist", [1e-6]).popen_zero == 0.0
    # two absorbing states: no unique equilibrium
    Q2 = np.array([[-2.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="unique"):
        th.equilibrium(Q2)


# ---------------------------------------------------------------------------
# relaxation
# ---------------------------------------------------------------------------


def _relax_check(Q, p0, open_=None, tol=1e-10):
    r = th.relaxation(Q, initial=p0, open=open_)
    for t in [0.0, 1e-6, 3e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0]:
        exact = p0 @ linalg.expm(Q * t)
        np.testing.assert_allclose(r.occupancy(t), exact, rtol=0, atol=tol)
        if open_ is not None:
            assert r.open_probability(t) == pytest.approx(exact[open_].sum(), abs=tol)
    return r


@pytest.mark.parametrize("c", CONCS)
def test_relaxation_reconstructs_expm_ch82(c):
    Q = ch82_q(c)
    r = _relax_check(Q, np.eye(5)[4], OPEN)  # jump from all-R
    ev = np.sort(np.linalg.eigvals(Q).real)[:-1]  # drop the zero
    np.testing.assert_allclose(np.sort(r.taus), np.sort(-1 / ev), rtol=1e-9)
    # from a mixed start, and on the non-reversible (general eig) path
    p0 = np.array([0.1, 0.2, 0.3, 0.15, 0.25])
    _relax_check(Q, p0, OPEN)
    _relax_check(ch82_q(c, 0.66667), p0, OPEN)


def test_relaxation_two_state_closed_form():
    alpha, beta = 500.0, 30.0
    Q = np.array([[-alpha, alpha], [beta, -beta]])
    r = th.relaxation(Q, initial=1, open=[0])
    assert r.taus.shape == (1,)
    assert r.taus[0] == pytest.approx(1 / (alpha + beta), rel=1e-14)
    # Po(t) = Po_inf (1 - exp(-t/tau)) from shut
    assert r.popen_amplitudes[0] == pytest.approx(-beta / (alpha + beta), rel=1e-13)


def test_relaxation_degenerate_eigenvalues():
    # two independent identical gates (C<->O, a, b): Q = Q1 (+) Q1 has a double eigenvalue
    a, b = 100.0, 40.0
    q1 = np.array([[-a, a], [b, -b]])
    Q = np.kron(q1, np.eye(2)) + np.kron(np.eye(2), q1)  # states CC, CO, OC, OO
    r = _relax_check(Q, np.eye(4)[0], [3])
    np.testing.assert_allclose(np.sort(r.taus), [1 / (2 * (a + b)), 1 / (a + b)], rtol=1e-12)
    # Po(t) = (x(t))^2 with x the single-gate open probability
    t = 0.013
    x = a / (a + b) * (1 - math.exp(-(a + b) * t))
    assert r.open_probability(t) == pytest.approx(x * x, rel=1e-12)


def test_relaxation_complex_eigenvalues():
    # unidirectional-ish cycle: complex eigenvalues; p(t) still exact and real
    Q = np.array([[-11.0, 10, 1], [1, -11, 10], [10, 1, -11]])
    r = _relax_check(Q, np.array([1.0, 0, 0]), [0], tol=1e-12)
    assert np.iscomplexobj(r.taus)


def test_relaxation_initial_from_conditions_and_default():
    sch = ch82_scheme()
    r = th.relaxation(sch, agonist=1e-6)  # default: jump from no agonist
    np.testing.assert_allclose(r.initial, [0, 0, 0, 0, 1], atol=1e-12)
    r2 = th.relaxation(sch, initial={"agonist": 1e-7}, agonist=1e-6)
    np.testing.assert_allclose(r2.initial, th.equilibrium(ch82_q(1e-7)), rtol=1e-12)
    np.testing.assert_allclose(r2.equilibrium, th.equilibrium(ch82_q(1e-6)), rtol=1e-12)
    r3 = th.relaxation(sch, initial="R", agonist=1e-6)
    np.testing.assert_allclose(r3.amplitudes, r.amplitudes, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="initial"):
        th.relaxation(ch82_q(1e-6))


# ---------------------------------------------------------------------------
# dwell times
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("c", CONCS)
@pytest.mark.parametrize("cls", ["open", "shut"])
def test_dwell_pdf_integrates_to_one_and_mean(c, cls):
    Q = ch82_q(c)
    d = th.dwell_times(Q, cls, open=OPEN)
    assert d.total == pytest.approx(1.0, abs=1e-12)
    assert np.all(d.taus > 0)
    # mean = phi (-Q_AA)^-1 u
    A = np.array(OPEN) if cls == "open" else np.array([2, 3, 4])
    F = np.setdiff1d(np.arange(5), A)
    p = th.equilibrium(Q)
    phi = p[F] @ Q[np.ix_(F, A)]
    phi /= phi.sum()
    QAA = Q[np.ix_(A, A)]
    mean = phi @ np.linalg.solve(-QAA, np.ones(A.size))
    assert d.mean == pytest.approx(mean, rel=1e-10)
    # pdf = phi expm(Q_AA t)(-Q_AA) u at a few times
    for t in [0.0, 1e-5, 1e-4, 1e-3, 1e-2]:
        f = phi @ linalg.expm(QAA * t) @ (-QAA) @ np.ones(A.size)
        assert d.pdf(t) == pytest.approx(f, rel=1e-9)
    # numerical integral of the pdf, per decade
    edges = [0.0] + [10.0 ** k for k in range(-7, 3)]
    total = sum(integrate.quad(d.pdf, lo, hi, epsabs=0, epsrel=1e-12, limit=200)[0]
                for lo, hi in zip(edges[:-1], edges[1:]))
    assert total == pytest.approx(1.0, abs=1e-9)
    m1 = sum(integrate.quad(lambda t: t * d.pdf(t), lo, hi, epsabs=0, epsrel=1e-12, limit=200)[0]
             for lo, hi in zip(edges[:-1], edges[1:]))
    assert m1 == pytest.approx(mean, rel=1e-8)
    # survival/cdf consistency
    t = np.array([1e-5, 1e-3, 0.1])
    np.testing.assert_allclose(d.cdf(t) + d.survival(t), 1.0, atol=1e-15)
    assert d.pdf(-1.0) == 0.0 and d.cdf(-1.0) == 0.0


def test_dwell_single_state_class():
    alpha, beta = 500.0, 30.0
    Q = np.array([[-alpha, alpha], [beta, -beta]])
    o = th.dwell_times(Q, "open", open=[0])
    s = th.dwell_times(Q, "shut", open=[0])
    assert o.taus.tolist() == pytest.approx([1 / alpha], rel=1e-15)
    assert s.taus.tolist() == pytest.approx([1 / beta], rel=1e-15)
    assert o.areas.tolist() == pytest.approx([1.0], rel=1e-15)
    # a single named state of CH82: sojourn in R is exponential with rate 2k+1 c
    d = th.dwell_times(ch82_scheme(), ["R"], agonist=1e-6)
    assert d.taus.tolist() == pytest.approx([1 / (1e8 * 1e-6)], rel=1e-14)


def test_dwell_degenerate_eigenvalues():
    # shut class {CC, CO, OC} of two identical independent gates: check against expm
    a, b = 100.0, 40.0
    q1 = np.array([[-a, a], [b, -b]])
    Q = np.kron(q1, np.eye(2)) + np.kron(np.eye(2), q1)
    # open = both gates open (state 3); shut class has -Q_FF eigenvalues b+2a? check vs expm
    d = th.dwell_times(Q, "shut", open=[3])
    A = np.array([0, 1, 2])
    p = th.equilibrium(Q)
    phi = p[[3]] @ Q[np.ix_([3], A)]
    phi /= phi.sum()
    for t in [0, 1e-3, 1e-2, 0.05]:
        f = phi @ linalg.expm(Q[np.ix_(A, A)] * t) @ (-Q[np.ix_(A, A)]) @ np.ones(3)
        assert d.pdf(t) == pytest.approx(f, rel=1e-12)
    assert d.total == pytest.approx(1.0, abs=1e-13)
    # a class whose sub-generator has an exactly repeated eigenvalue: {CO, OC}
    d2 = th.dwell_times(Q, [1, 2])
    assert d2.n_components == 1  # the two equal rates merged
    assert d2.taus[0] == pytest.approx(1 / (a + b), rel=1e-13)
    assert d2.total == pytest.approx(1.0, abs=1e-13)


def test_dwell_times_blocker_closed_form():
    alpha, beta, kon, koff, B = 400.0, 2000.0, 1e7, 5e3, 2e-4  # s^-1, M^-1 s^-1, M
    Q, open_ = blocker_q(alpha, beta, kon, koff, B)
    o = th.dwell_times(Q, "open", open=open_)
    assert o.mean == pytest.approx(1 / (alpha + kon * B), rel=1e-14)
    ob = th.dwell_times(Q, ["OB"], names=["C", "O", "OB"])
    assert ob.mean == pytest.approx(1 / koff, rel=1e-14)


@needs_scalcs
@pytest.mark.parametrize("c", CONCS)
def test_dwell_times_vs_scalcs(c):
    mec = scalcs_ch82(c)
    Q = ch82_q(c, 0.66667)
    for cls, QAA, phi in [("open", mec.QAA, sc_qml.phiA(mec)),
                          ("shut", mec.QFF, sc_qml.phiF(mec))]:
        d = th.dwell_times(Q, cls, open=OPEN)
        e, w = sc_lib.ideal_dwell_time_pdf_components(QAA, np.ravel(phi))
        order = np.argsort(1 / e)
        np.testing.assert_allclose(d.taus, (1 / e)[order], rtol=1e-10)
        np.testing.assert_allclose(d.areas, (w / e)[order], rtol=1e-8, atol=1e-12)
        # pdf at a few times against scalcs' expm-based pdf
        for t in [1e-5, 1e-3]:
            assert d.pdf(t) == pytest.approx(sc_lib.ideal_dwell_time_pdf(t, QAA, np.ravel(phi)),
                                             rel=1e-9)


def test_dwell_times_published_dcprogs_numbers():
    # DCPROGS SCALCS tests/test_scalcslib.py, CH82 at 100 nM (with 2k*-2 = 0.66667)
    Q = ch82_q(1e-7, 0.66667)
    o = th.dwell_times(Q, "open", open=OPEN)
    np.testing.assert_allclose(np.sort(1 / o.taus), [500.65359469, 3050.01307531], rtol=1e-9)
    np.testing.assert_allclose(o.areas[::-1], [0.92761649, 0.07238351], rtol=1e-7)
    s = th.dwell_times(Q, "shut", open=OPEN)
    np.testing.assert_allclose(s.taus * 1e3, [0.052598906, 0.48474655, 3789.38053], rtol=1e-7)


def test_mean_open_time_single_open_state():
    # reference file: for a single open state the mean open time is 1/(sum of exit rates)
    Q = ch82_q(1e-6)
    Q2 = Q[np.ix_([0, 2, 3, 4], [0, 2, 3, 4])].copy()  # drop A2R*; renormalise diagonal
    np.fill_diagonal(Q2, 0)
    np.fill_diagonal(Q2, -Q2.sum(axis=1))
    d = th.dwell_times(Q2, "open", open=[0])
    assert d.mean == pytest.approx(1 / 3000.0, rel=1e-14)


def test_sample_matches_mixture():
    # Kolmogorov-Smirnov tests of sample() against cdf (exact KS distribution, continuous cdf;
    # fixed seeds): p-value threshold 1e-4, so a correct sampler fails each with probability 1e-4.
    # Sample sizes (20000, 10000) keep the power of the former 1 % tests at n = 4000, 2000: the
    # critical D shrinks as 1/sqrt(n): 2.23/sqrt(20000) = 0.016 < 1.63/sqrt(4000) = 0.026, and
    # 2.23/sqrt(10000) = 0.022 < 1.63/sqrt(2000) = 0.036.
    d = th.dwell_times(ch82_q(1e-6), "shut", open=OPEN)
    x = d.sample(20000, rng=12345)
    assert stats.kstest(x, d.cdf).pvalue > 1e-4
    # inverse-cdf path (negative areas) on a latency with a rising phase
    lat = th.first_latency(ch82_q(1e-6), "open", initial=4, open=OPEN)
    assert np.any(lat.areas < 0)
    y = lat.sample(10000, rng=7)
    assert stats.kstest(y, lat.cdf).pvalue > 1e-4


# ---------------------------------------------------------------------------
# first latency
# ---------------------------------------------------------------------------


def test_first_latency_closed_forms():
    beta, delta, alpha = 50.0, 20.0, 300.0
    # C -> O (beta), C -> D (delta, absorbing), O -> C (alpha)
    Q = np.array([[-(beta + delta), beta, delta], [alpha, -alpha, 0.0], [0.0, 0.0, 0.0]])
    lat = th.first_latency(Q, "open", initial=0, open=[1])
    assert lat.total == pytest.approx(beta / (beta + delta), rel=1e-14)  # may never open
    assert lat.taus.tolist() == pytest.approx([1 / (beta + delta)], rel=1e-14)
    assert lat.mean == pytest.approx(1 / (beta + delta), rel=1e-14)
    # never-opening draws are Binomial(1000, delta / (beta + delta)) (independent draws): exact
    # two-sided test, failure probability 1e-4
    never = int(np.isinf(lat.sample(1000, rng=1)).sum())
    assert stats.binomtest(never, 1000, delta / (beta + delta)).pvalue > 1e-4
    # sequential C1 -> C2 -> O: hypoexponential latency
    k1, k2 = 100.0, 300.0
    Q = np.array([[-k1, k1, 0], [0, -k2, k2], [0, 0.0, 0.0]])
    Q[2, 1] = 1.0
    Q[2, 2] = -1.0
    lat = th.first_latency(Q, "open", initial=[1.0, 0, 0], open=[2])
    t = 0.004
    f = k1 * k2 / (k2 - k1) * (math.exp(-k1 * t) - math.exp(-k2 * t))
    assert lat.pdf(t) == pytest.approx(f, rel=1e-12)
    assert lat.mean == pytest.approx(1 / k1 + 1 / k2, rel=1e-13)


def test_first_latency_vs_expm_ch82():
    Q = ch82_q(1e-5)
    lat = th.first_latency(Q, "open", initial="R", open=OPEN, names=CH82_STATES)
    S = np.array([2, 3, 4])
    QSS = Q[np.ix_(S, S)]
    end = Q[np.ix_(S, OPEN)].sum(axis=1)
    for t in [1e-5, 1e-4, 1e-3]:
        f = np.eye(3)[2] @ linalg.expm(QSS * t) @ end
        assert lat.pdf(t) == pytest.approx(f, rel=1e-9)
    assert lat.total == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="target"):
        th.first_latency(Q, "open", initial=0, open=OPEN)


@needs_scalcs
def test_first_latency_mean_vs_scalcs():
    mec = scalcs_ch82(1e-5)
    lat = th.first_latency(ch82_q(1e-5, 0.66667), "open", initial=4, open=OPEN)
    m = sc_lib.ideal_mean_latency_given_start_state(mec, 5)
    assert lat.mean == pytest.approx(float(np.ravel(m)[0]), rel=1e-9)


# ---------------------------------------------------------------------------
# bursts
# ---------------------------------------------------------------------------


def blocker_q(alpha, beta, kon, koff, B):
    """C <-> O <-> OB; states C, O, OB; open = [1]."""
    Q = np.array([[-beta, beta, 0.0],
                  [alpha, -(alpha + kon * B), kon * B],
                  [0.0, koff, -koff]])
    return Q, [1]


def test_bursts_blocker_closed_forms():
    alpha, beta, kon, koff, B = 400.0, 2000.0, 1e7, 5e3, 2e-4
    KB = koff / kon
    Q, open_ = blocker_q(alpha, beta, kon, koff, B)
    b = th.bursts(Q, ["OB"], open=open_, names=["C", "O", "OB"])
    assert b.mean_openings == pytest.approx(1 + kon * B / alpha, rel=1e-13)
    assert b.mean_open_time == pytest.approx(1 / alpha, rel=1e-13)
    assert b.mean_length == pytest.approx((1 / alpha) * (1 + B / KB), rel=1e-13)
    assert b.mean_gap == pytest.approx(1 / koff, rel=1e-13)
    assert b.mean_shut_time == pytest.approx(kon * B / alpha / koff, rel=1e-13)
    # number of openings is geometric: P(r) = (1-q) q^(r-1), q = kon B/(alpha + kon B)
    q = kon * B / (alpha + kon * B)
    np.testing.assert_allclose(b.openings.pmf([1, 2, 5]),
                               [(1 - q) * q ** (r - 1) for r in (1, 2, 5)], rtol=1e-12)
    assert b.mean_between == pytest.approx(1 / beta, rel=1e-12)


@pytest.mark.parametrize("c", CONCS)
def test_bursts_self_consistency(c):
    b = th.bursts(ch82_q(c), WITHIN, open=OPEN)
    assert b.mean_length == pytest.approx(b.mean_open_time + b.mean_shut_time, rel=1e-12)
    assert b.length.mean == pytest.approx(b.mean_length, rel=1e-10)
    assert b.length.total == pytest.approx(1.0, abs=1e-10)
    assert b.open_time.mean == pytest.approx(b.mean_open_time, rel=1e-10)
    assert b.openings.mean == pytest.approx(b.mean_openings, rel=1e-10)
    assert b.openings.total == pytest.approx(1.0, abs=1e-12)
    assert b.openings.pmf(np.arange(1, 20000)).sum() == pytest.approx(1.0, abs=1e-10)
    assert b.gaps.mean == pytest.approx(b.mean_gap, rel=1e-10)
    assert b.gaps.total == pytest.approx(1.0, abs=1e-12)
    assert b.start.sum() == pytest.approx(1.0, abs=1e-15)
    # renewal: fraction of time open = rate * open time per burst
    assert b.rate * b.mean_open_time == pytest.approx(
        th.open_probability(ch82_q(c), open=OPEN), rel=1e-10)
    # same answers through the scheme path with state names
    bs = th.bursts(ch82_scheme(), ["AR", "A2R"], agonist=c)
    assert bs.mean_length == pytest.approx(b.mean_length, rel=1e-14)


def test_bursts_burst_length_pdf_vs_expm():
    Q = ch82_q(1e-6)
    b = th.bursts(Q, WITHIN, open=OPEN)
    A, Bi = np.array(OPEN), np.array(WITHIN)
    E = np.concatenate([A, Bi])
    GAB = np.linalg.solve(-Q[np.ix_(A, A)], Q[np.ix_(A, Bi)])
    GBA = np.linalg.solve(-Q[np.ix_(Bi, Bi)], Q[np.ix_(Bi, A)])
    eb = (np.eye(2) - GAB @ GBA) @ np.ones(2)
    for t in [1e-5, 1e-4, 1e-3, 1e-2]:
        f = b.start @ linalg.expm(Q[np.ix_(E, E)] * t)[:2, :2] @ (-Q[np.ix_(A, A)]) @ eb
        assert b.length.pdf(t) == pytest.approx(f, rel=1e-9)


def test_bursts_no_within_states_single_openings():
    Q = ch82_q(1e-6)
    b = th.bursts(Q, [], open=OPEN)
    assert b.mean_openings == pytest.approx(1.0, rel=1e-14)
    d = th.dwell_times(Q, "open", open=OPEN)
    assert b.mean_length == pytest.approx(d.mean, rel=1e-12)
    assert b.gaps is None and math.isnan(b.mean_gap)


@needs_scalcs
@pytest.mark.parametrize("c", CONCS)
def test_bursts_vs_scalcs(c):
    mec = scalcs_ch82(c)
    b = th.bursts(ch82_q(c, 0.66667), WITHIN, open=OPEN)
    np.testing.assert_allclose(b.start, np.ravel(sc_burst.phiBurst(mec)), rtol=1e-10)
    assert b.mean_openings == pytest.approx(float(sc_burst.openings_mean(mec)), rel=1e-10)
    assert b.mean_length == pytest.approx(float(sc_burst.length_mean(mec)), rel=1e-10)
    assert b.mean_open_time == pytest.approx(float(sc_burst.open_time_mean(mec)), rel=1e-10)
    assert b.mean_shut_time == pytest.approx(float(sc_burst.shut_time_total_mean(mec)), rel=1e-9)
    assert b.mean_between == pytest.approx(float(sc_burst.shut_times_between_burst_mean(mec)),
                                           rel=1e-9)
    for r in (1, 2, 3, 10):
        assert b.openings.pmf(r) == pytest.approx(sc_burst.openings_distr(mec, r), rel=1e-9)
    for mix, (e, w) in [(b.length, sc_burst.length_pdf_components(mec)),
                        (b.open_time, sc_burst.open_time_total_pdf_components(mec)),
                        (b.gaps, sc_burst.shut_times_inside_burst_pdf_components(mec))]:
        order = np.argsort(1 / e)
        np.testing.assert_allclose(mix.taus, (1 / e)[order], rtol=1e-9)
        np.testing.assert_allclose(mix.areas, (w / e)[order], rtol=1e-7, atol=1e-12)


def test_bursts_published_dcprogs_numbers():
    # DCPROGS SCALCS tests/test_scburst.py, CH82 at 100 nM (2k*-2 = 0.66667)
    b = th.bursts(ch82_q(1e-7, 0.66667), WITHIN, open=OPEN)
    np.testing.assert_allclose(b.start, [0.27536232, 0.72463768], rtol=1e-7)
    assert b.mean_openings == pytest.approx(3.81864122, rel=1e-8)
    assert b.mean_length == pytest.approx(7.32810346e-3, rel=1e-8)
    assert b.mean_open_time == pytest.approx(7.16584520e-3, rel=1e-8)
    assert b.mean_shut_time == pytest.approx(0.16225826e-3, rel=1e-7)
    assert b.mean_between == pytest.approx(3.79042853, rel=1e-8)
    assert b.mean_open_time / b.mean_length == pytest.approx(0.97785808, rel=1e-7)


# ---------------------------------------------------------------------------
# concentration-response
# ---------------------------------------------------------------------------


def castillo_katz_scheme(kon=1e7, koff=100.0, beta=600.0, alpha=200.0):
    def q(c):
        Q = np.array([[-kon * c, kon * c, 0.0],
                      [koff, -(koff + beta), beta],
                      [0.0, alpha, -alpha]])
        return Q
    return FakeScheme(q, ("R", "AR", "AR*"), [0, 0, 50e-12])


def test_concentration_response_castillo_katz_closed_form():
    kon, koff, beta, alpha = 1e7, 100.0, 600.0, 200.0
    K, E = koff / kon, beta / alpha
    cr = th.concentration_response(castillo_katz_scheme(kon, koff, beta, alpha), "agonist")
    assert cr.popen_zero == 0.0
    assert cr.increasing and math.isinf(cr.c_extreme)
    assert cr.popen_max == pytest.approx(E / (1 + E), rel=1e-12)
    assert cr.ec50 == pytest.approx(K / (1 + E), rel=1e-10)
    assert cr.hill == pytest.approx(1.0, rel=1e-8)
    c = cr.concentrations
    np.testing.assert_allclose(cr.popen, E * c / K / (1 + (1 + E) * c / K), rtol=1e-12)


def test_concentration_response_ch82_hill_accuracy():
    cr = th.concentration_response(ch82_scheme(), "agonist")
    # Hill slope from an independent, wider-step Richardson derivative
    po = lambda c: th.open_probability(ch82_q(c), open=OPEN)  # noqa: E731
    x = math.log(cr.ec50)
    d = []
    for h in (4e-3, 2e-3):
        d.append((po(math.exp(x + h)) - po(math.exp(x - h))) / (2 * h))
    dp = (4 * d[1] - d[0]) / 3
    assert cr.hill == pytest.approx(4 * dp / (cr.popen_max - cr.popen_zero), rel=1e-8)
    # EC50 is half-way exactly
    assert po(cr.ec50) == pytest.approx(0.5 * cr.popen_max, rel=1e-12)
    assert 1.0 < cr.hill < 2.0


@needs_scalcs
def test_concentration_response_vs_scalcs():
    mec = scalcs_ch82(1e-7)
    cr = th.concentration_response(ch82_scheme(0.66667), "agonist")
    pmax, _ = sc_popen.maxPopen(mec, 0)
    ec50 = sc_popen.EC50(mec, 0)
    nh = sc_popen.nH(mec, 0)
    # the plateau is the c -> inf limit beta2/(beta2 + alpha2) = 30/31 exactly
    assert cr.popen_max == pytest.approx(30 / 31, rel=1e-12)
    # scalcs' maxPopen stops when Po changes by < 1e-5 per half-decade, so its
    # plateau is below the limit (by 8e-7 relative), and its EC50, which is defined
    # from that plateau, is shifted accordingly
    assert cr.popen_max == pytest.approx(pmax, rel=2e-6)
    assert cr.ec50 == pytest.approx(ec50, rel=1e-5)
    # scalcs' nH interpolates finite differences on a 64-point grid
    assert cr.hill == pytest.approx(nh, rel=1e-3)
    for c in CONCS:
        assert th.open_probability(ch82_scheme(0.66667), agonist=c) == pytest.approx(
            sc_popen.Popen(mec, 0, c), rel=1e-10)


def test_concentration_response_published_dcprogs_numbers():
    # DCPROGS SCALCS tests/test_popen.py, ideal CH82 curve: maxPopen 0.9677394380085494,
    # EC50 2.4080276489257817 uM, nH 1.891852810093832. The EC50 was found by bisection
    # stopped when Po was within 0.001 of half-maximal (SCALCS' own notes say that
    # version was off by a few tenths of a percent), so it is compared at 0.5 %.
    cr = th.concentration_response(ch82_scheme(0.66667), "agonist")
    # (their maxPopen, too, is the value where their scan stopped, 2.6e-6 below 30/31)
    assert cr.popen_max == pytest.approx(0.9677394380085494, rel=5e-6)
    assert cr.ec50 * 1e6 == pytest.approx(2.4080276489257817, rel=5e-3)
    assert cr.hill == pytest.approx(1.891852810093832, rel=5e-3)


def test_concentration_response_bell_shaped_and_inhibitor():
    # agonist that also blocks the open channel: bell-shaped curve with interior maximum
    kon, koff, beta, alpha, kb, kub = 1e7, 100.0, 600.0, 200.0, 1e6, 1e3

    def q(c):
        Q = np.zeros((4, 4))
        Q[0, 1] = kon * c
        Q[1, 0] = koff
        Q[1, 2] = beta
        Q[2, 1] = alpha
        Q[2, 3] = kb * c
        Q[3, 2] = kub
        np.fill_diagonal(Q, -Q.sum(axis=1))
        return Q

    sch = FakeScheme(q, ("R", "AR", "AR*", "AR*B"), [0, 0, 5e-11, 0])
    cr = th.concentration_response(sch, "agonist")
    assert math.isfinite(cr.c_extreme)
    cs = np.logspace(math.log10(cr.c_extreme) - 0.01, math.log10(cr.c_extreme) + 0.01, 5)
    assert all(th.open_probability(sch, agonist=c) <= cr.popen_max * (1 + 1e-12) for c in cs)
    assert th.open_probability(sch, agonist=cr.ec50) == pytest.approx(0.5 * cr.popen_max,
                                                                        rel=1e-10)
    assert cr.ec50 < cr.c_extreme
    # a pure inhibitor (blocker of a spontaneously opening channel): IC50 = KB / Po0... = KB
    # here Po0 sets the sequential-block result of the reference file: IC50 = K_B / Po0

    def qb(b):
        Q = np.array([[-300.0, 300.0, 0.0], [100.0, -100.0 - 1e7 * b, 1e7 * b],
                      [0.0, 2e3, -2e3]])
        return Q

    inh = FakeScheme(qb, ("C", "O", "OB"), [0, 5e-11, 0], ligand="blocker")
    cr2 = th.concentration_response(inh, "blocker")
    po0 = 300.0 / 400.0
    assert not cr2.increasing
    assert cr2.ec50 == pytest.approx((2e3 / 1e7) / po0, rel=1e-9)
    assert cr2.hill == pytest.approx(1.0, rel=1e-7)


# ---------------------------------------------------------------------------
# dispatcher: scheme vs raw Q, and validation
# ---------------------------------------------------------------------------


def test_scheme_and_raw_q_agree():
    sch = ch82_scheme()
    c = 3e-6
    Q = ch82_q(c)
    np.testing.assert_array_equal(th.equilibrium(sch, agonist=c), th.equilibrium(Q))
    assert th.open_probability(sch, agonist=c) == th.open_probability(Q, open=OPEN)
    a = th.dwell_times(sch, "open", agonist=c)
    b = th.dwell_times(Q, "open", open=[True, True, False, False, False])
    np.testing.assert_array_equal(a.taus, b.taus)
    np.testing.assert_array_equal(a.areas, b.areas)
    # names and indices select the same class
    n = th.dwell_times(sch, ["AR", "A2R", "R"], agonist=c)
    s = th.dwell_times(Q, "shut", open=OPEN)
    np.testing.assert_array_equal(n.taus, s.taus)
    # conditions reach q_matrix unchanged
    th.equilibrium(sch, V=-0.05, temperature=300.0, agonist=c)
    assert sch.calls[-1] == (-0.05, 300.0, {"agonist": c})


def test_partition():
    Q = ch82_q(1e-6)
    QAA, QAF, QFA, QFF = th.partition(Q, [1, 0])
    np.testing.assert_array_equal(QAA, Q[np.ix_([1, 0], [1, 0])])
    np.testing.assert_array_equal(QAF, Q[np.ix_([1, 0], [2, 3, 4])])
    np.testing.assert_array_equal(QFA, Q[np.ix_([2, 3, 4], [1, 0])])
    np.testing.assert_array_equal(QFF, Q[np.ix_([2, 3, 4], [2, 3, 4])])
    with pytest.raises(ValueError, match="empty"):
        th.partition(Q, [])
    with pytest.raises(ValueError, match="every state"):
        th.partition(Q, range(5))


def test_validation_errors():
    Q = ch82_q(1e-6)
    with pytest.raises(ValueError, match="square"):
        th.equilibrium(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="sums to"):
        th.equilibrium(np.array([[-1.0, 1.0], [1.0, -1.1]]))
    with pytest.raises(ValueError, match=">= 0"):
        th.equilibrium(np.array([[1.0, -1.0], [1.0, -1.0]]))
    with pytest.raises(ValueError, match="non-finite"):
        th.equilibrium(np.array([[-np.inf, np.inf], [1.0, -1.0]]))
    with pytest.raises(TypeError):
        th.equilibrium(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(ValueError, match="unknown model 'CH82'"):  # a string is a model name
        th.equilibrium("CH82")
    with pytest.raises((TypeError, ValueError), match="Q must be"):
        th.equilibrium(3.0)
    with pytest.raises(TypeError, match="conditions"):
        th.equilibrium(Q, agonist=1e-6)
    with pytest.raises(ValueError, match="open states unknown"):
        th.dwell_times(Q, "open")
    with pytest.raises(ValueError, match="empty"):
        th.dwell_times(Q, [])
    with pytest.raises(ValueError, match="every state"):
        th.dwell_times(Q, list(range(5)))
    with pytest.raises(ValueError, match="every state is open"):
        th.dwell_times(Q, "open", open=[0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="unknown state 'X'"):
        th.dwell_times(ch82_scheme(), ["X"], agonist=1e-6)
    with pytest.raises(ValueError, match="unnamed"):
        th.dwell_times(Q, ["AR"], open=OPEN)
    with pytest.raises(ValueError, match="out of range"):
        th.dwell_times(Q, [7], open=OPEN)
    with pytest.raises(ValueError, match="duplicate"):
        th.dwell_times(Q, [2, 2], open=OPEN)
    with pytest.raises(ValueError, match="are open"):
        th.bursts(Q, [0, 2], open=OPEN)
    with pytest.raises(ValueError, match="every shut state"):
        th.bursts(Q, [2, 3, 4], open=OPEN)
    with pytest.raises(ValueError, match="unknown ligand"):
        th.concentration_response(ch82_scheme(), "glutamate")
    with pytest.raises(TypeError, match="Scheme"):
        th.concentration_response(Q, "agonist")
    with pytest.raises(ValueError, match="unknown ligand"):
        th.equilibrium(ch82_scheme(), glutamate=1e-6)
    with pytest.raises(TypeError, match="names="):
        th.equilibrium(ch82_scheme(), names=CH82_STATES, agonist=1e-6)


def test_mixture_dataclasses_are_frozen():
    d = th.dwell_times(ch82_q(1e-6), "open", open=OPEN)
    with pytest.raises(Exception):
        d.taus = np.zeros(2)
    with pytest.raises(ValueError):
        d.taus[0] = 1.0
    m = th.ExponentialMixture([1e-3, 1e-2], [0.25, 0.75])
    assert m.mean == pytest.approx(0.25e-3 + 0.75e-2)
    assert m.sd == pytest.approx(math.sqrt(2 * (0.25e-6 + 0.75e-4) - m.mean ** 2))
    with pytest.raises(ValueError):
        th.ExponentialMixture([1.0, 2.0], [1.0])


# ---------------------------------------------------------------------------
# with the real ketacore Scheme and model library (skipped until they exist)
# ---------------------------------------------------------------------------


def _real_ch82():
    pytest.importorskip("ketacore._core")
    import ketacore as kc
    try:
        return kc.models.get("ch82")
    except Exception as exc:  # pragma: no cover - depends on progress elsewhere
        pytest.skip(f"kc.models.get('ch82') not available: {exc}")


def test_real_ch82_model_matches_closed_form_q():
    m = _real_ch82()
    assert tuple(m.states) == CH82_STATES
    np.testing.assert_array_equal(m.conductance > 0, [True, True, False, False, False])
    lig = m.ligands[0]
    for c in CONCS:
        np.testing.assert_allclose(m.q_matrix(**{lig: c}), ch82_q(c), rtol=1e-13, atol=1e-12)
        b = th.bursts(m, ["AR", "A2R"], **{lig: c})
        ref = th.bursts(ch82_q(c), WITHIN, open=OPEN)
        assert b.mean_length == pytest.approx(ref.mean_length, rel=1e-12)


@needs_scalcs
def test_real_ch82_model_vs_scalcs():
    # the library model uses the exactly reversible 2k*-2 = 2/3; SCALCS uses 0.66667,
    # which moves these numbers by < 1e-5 (relative)
    m = _real_ch82()
    lig = m.ligands[0]
    for c in CONCS:
        mec = scalcs_ch82(c)
        d = th.dwell_times(m, "open", **{lig: c})
        e, w = sc_lib.ideal_dwell_time_pdf_components(mec.QAA, np.ravel(sc_qml.phiA(mec)))
        assert d.mean == pytest.approx(float(np.sum(w / e ** 2)), rel=1e-5)
        b = th.bursts(m, ["AR", "A2R"], **{lig: c})
        assert b.mean_length == pytest.approx(float(sc_burst.length_mean(mec)), rel=1e-5)
        assert b.mean_openings == pytest.approx(float(sc_burst.openings_mean(mec)), rel=1e-5)


def _kc_ch82_scheme():
    pytest.importorskip("ketacore._core")
    import ketacore as kc
    r = kc.rate
    return kc.Scheme(
        CH82_STATES,
        [("AR*", "A2R*", r(5e8, "agonist")), ("AR*", "AR", 3000.0),
         ("A2R*", "AR*", r(1 / 3, factor=2)), ("A2R*", "A2R", 500.0),
         ("AR", "AR*", 15.0), ("AR", "A2R", r(5e8, "agonist")), ("AR", "R", 2000.0),
         ("A2R", "A2R*", 15000.0), ("A2R", "AR", r(2000.0, factor=2)),
         ("R", "AR", r(5e7, "agonist", factor=2))],
        conductance={"AR*": 60e-12, "A2R*": 60e-12}, name="ch82-test")


def test_real_scheme_path():
    sch = _kc_ch82_scheme()
    for c in CONCS:
        np.testing.assert_allclose(sch.q_matrix(agonist=c), ch82_q(c), rtol=1e-14, atol=1e-12)
        ref = th.bursts(ch82_q(c), WITHIN, open=OPEN)
        b = th.bursts(sch, ["AR", "A2R"], agonist=c, V=-0.06)
        assert b.mean_length == pytest.approx(ref.mean_length, rel=1e-12)
        d = th.dwell_times(sch, "open", agonist=c)
        assert d.mean == pytest.approx(th.dwell_times(ch82_q(c), "open", open=OPEN).mean,
                                       rel=1e-12)
    cr = th.concentration_response(sch, "agonist", concentrations=[1e-6])
    assert cr.popen_max == pytest.approx(30 / 31, rel=1e-12)
    r = th.relaxation(sch, agonist=1e-5)
    np.testing.assert_allclose(r.initial, [0, 0, 0, 0, 1], atol=1e-15)


def test_relaxation_washout_reducible_q():
    # agonist removal: at zero agonist R is absorbing (Q reducible); general-eig path
    sch = ch82_scheme()
    r = th.relaxation(sch, initial={"agonist": 1e-5}, agonist=0.0)
    np.testing.assert_allclose(r.equilibrium, [0, 0, 0, 0, 1], atol=0)
    Q = ch82_q(0.0)
    for t in [0.0, 1e-4, 1e-3, 1e-2, 0.1]:
        np.testing.assert_allclose(r.occupancy(t), r.initial @ linalg.expm(Q * t), atol=1e-10)
    b = th.bursts(ch82_q(1e-6), WITHIN, open=OPEN)
    assert b.openings.cdf(10 ** 5) == pytest.approx(1.0, abs=1e-12)
    assert b.openings.cdf(1) == pytest.approx(b.openings.pmf(1), rel=1e-12)


def test_relaxation_of_a_trapping_wash_has_a_limit_from_its_start():
    """Wash of a trapping blocker: without agonist, trapped and unblocked channels form separate
    closed classes, so there is no unique equilibrium -- but p(t) from a given start has a limit.
    relaxation() raised NoUniqueEquilibrium; it now expands p(t) around that limit, checked
    against scipy's expm, and its equilibrium is equilibrium(..., initial=)'s limit."""
    import scipy.linalg

    import ketacore as kc
    b = kc.blockers.Blocker(name="x", ligand="drug", k_on=1e6, k_off=10.0)
    d = kc.block(kc.models.get("erreger2005_2a"), b)
    p = th.equilibrium(d, glutamate=1e-3, drug=1e-5)
    r = th.relaxation(d, initial=p, glutamate=0.0, drug=0.0)
    Q = d.q_matrix(glutamate=0.0, drug=0.0)
    for t in (0.0, 1e-3, 0.1, 10.0, 1e4):
        want = p @ scipy.linalg.expm(Q * t)
        got = r.equilibrium + np.real(np.exp(-t / r.taus) @ r.amplitudes)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.equilibrium, th.equilibrium(d, initial=p, glutamate=0.0, drug=0.0),
                               rtol=0, atol=1e-14)
    trapped = np.array(["·x" in s for s in d.states])
    assert r.equilibrium[trapped].sum() > 0.4   # the drug stays trapped (0.447)
    with pytest.raises(th.NoUniqueEquilibrium):  # no start, no limit: still refused
        th.equilibrium(d, glutamate=0.0, drug=0.0)
