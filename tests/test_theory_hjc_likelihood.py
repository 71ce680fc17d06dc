"""The HJC likelihood of a resolved record: ``ketacore.theory.hjc_loglik`` (Hawkes, Jalali &
Colquhoun 1990, 1992; CHS vectors of Colquhoun, Hawkes & Srodzinski 1996) and
``ketacore.analysis.Record.hjc_groups``.

Oracles, and why the tolerances are what they are:

* SCALCS (``pip install scalcs``) given the *same* Q (the shim of tests/test_theory_hjc.py):
  its ``HJClik`` on groups whose running vector stays below 1e50, and, for records, a loop
  over its own building blocks (``eGs``, ``phiHJC``, ``Zxx``, ``asymptotic_roots``, ``AR``,
  ``CHSvec``, ``eGAF``) that is ``HJClik`` with the rescaling accounted for.  ``HJClik``
  multiplies its running vector by 1e-100 when it exceeds 1e50 and does not add the factor
  back to the log-likelihood (a SCALCS bug); the test shows its value is ours minus
  100 ln 10 per rescaling.  Same formulas through different eigendecompositions, root
  searches (SCALCS' brentq xtol 2e-12 s^-1) and multiplication order: observed <= 2e-13
  relative on totals of 3e2-2e4, per group <= 3e-11 absolute; asserted 1e-11 relative and
  1e-9 absolute.
* the ideal likelihood ``phi_A expm(Q_AA t1) Q_AF expm(Q_FF t2) Q_FA ...`` by
  ``scipy.linalg.expm`` as t_res -> 0: the difference is first order in t_res, so the
  Richardson extrapolation ``(10 L(1e-10) - L(1e-9)) / 9`` must equal the ideal value to
  the second-order remainder (observed 5e-9 absolute on 2.5e3).
* a first-passage decomposition of ``AR(u)`` evaluated by Gauss-Legendre quadrature and
  scipy's expm (independent of both the spectral recursion and the block-exponential form).
* internal consistency: a one-opening group is the pdf of ``apparent_dwell_times``; groups
  of any length against a sequential, rescaled vector-matrix chain.
* statistics: on a simulated record the likelihood is largest at the true rate.
"""
import itertools
import math

import numpy as np
import pytest
from scipy import integrate, linalg, stats

import ketacore as kc
from ketacore import analysis as ka
from ketacore import theory as th
from ketacore.units import s, uM, us
from _scalcs_shim import ScalcsMechanism

CH82 = kc.models.get("ch82")
OPEN, SHUT = np.array([0, 1]), np.array([2, 3, 4])   # AR*, A2R* | AR, A2R, R
LN_1E100 = 100 * math.log(10)


def _record(c, t_end, seed, n_trials=1):
    """Equilibrium CH82 record (the simulation starts from the equilibrium occupancy)."""
    p0 = th.equilibrium(CH82, agonist=c)
    log = kc.simulate_events(CH82, kc.Step(t_end, agonist=c), n_trials=n_trials, rng=seed,
                             initial=p0)
    return ka.Record.from_events(log)


def _hand_groups(t_res):
    """Groups with intervals in every range: at t_res, in both exact pieces, at 2 and 3 t_res
    (the piece boundaries), in the asymptotic range, and seconds long."""
    r = t_res
    return [np.array([1.3e-3]),
            np.array([r, 1.5 * r, 2 * r, 2.5 * r, 3 * r]),
            np.array([2.7 * r, 4e-3, 1.2 * r, 0.5, 8e-3, 2 * r, 1.9 * r, 3.2 * r, 20e-3]),
            np.array([1e-3, 2.0, 5e-4])]


# ------------------------------------------------------------------ SCALCS

_Mec = ScalcsMechanism


def _scalcs_hjclik(Q, groups, t_res, t_crit):
    scl = pytest.importorskip("scalcs.scalcslib")
    opts = {"mec": _Mec(Q, 2), "conc": 0.0, "tres": t_res, "tcrit": t_crit or 1.0,
            "isCHS": t_crit is not None, "data": [list(g) for g in groups]}
    return -scl.HJClik(np.zeros(1), opts)[0]     # HJClik returns -ln L


def _scalcs_blocks(Q, t_res, t_crit):
    """SCALCS HJClik's precomputation, verbatim (kA = 2 open states first)."""
    scl = pytest.importorskip("scalcs.scalcslib")
    qml = pytest.importorskip("scalcs.qmatlib")
    m = _Mec(Q, 2)
    kA, kF = m.kA, m.kF
    gaf, gfa = qml.iGs(Q, kA, kF)
    eqff, eqaa = qml.expQt(m.QFF, t_res), qml.expQt(m.QAA, t_res)
    eaf, efa = qml.eGs(gaf, gfa, kA, kF, eqff), qml.eGs(gfa, gaf, kF, kA, eqaa)
    phi_f = qml.phiHJC(efa, eaf, kF)
    start, end = qml.phiHJC(eaf, efa, kA), np.ones((kF, 1))
    eig, A = qml.eigs(-Q)
    a_eig, az00, az10, az11 = qml.Zxx(Q, eig, A, kA, m.QFF, m.QAF, m.QFA, eqff, True)
    a_roots = scl.asymptotic_roots(t_res, m.QAA, m.QFF, m.QAF, m.QFA, kA, kF)
    a_r = qml.AR(a_roots, t_res, m.QAA, m.QFF, m.QAF, m.QFA, kA, kF)
    f_eig, fz00, fz10, fz11 = qml.Zxx(Q, eig, A, kA, m.QAA, m.QFA, m.QAF, eqaa, False)
    f_roots = scl.asymptotic_roots(t_res, m.QFF, m.QAA, m.QFA, m.QAF, kF, kA)
    f_r = qml.AR(f_roots, t_res, m.QFF, m.QAA, m.QFA, m.QAF, kF, kA)
    if t_crit is not None:
        start, end = qml.CHSvec(f_roots, t_res, t_crit, m.QFA, kA, eqaa, phi_f, f_r)

    def e_open(t):
        return qml.eGAF(t, t_res, a_eig, az00, az10, az11, a_roots, a_r, m.QAF, eqff)

    def e_shut(t):
        return qml.eGAF(t, t_res, f_eig, fz00, fz10, fz11, f_roots, f_r, m.QFA, eqaa)
    return np.asarray(start, float).reshape(-1), np.asarray(end, float).reshape(-1), \
        e_open, e_shut


def _scalcs_group_logliks(Q, groups, t_res, t_crit):
    """HJClik's loop over SCALCS' building blocks with its 1e-100 rescaling (at > 1e50)
    added back to the log, and 1e100 up-scaling below 1e-50 (HJClik has none).  Returns the
    log-likelihoods and, per group, the number of HJClik rescalings (-1 where up-scaling was
    needed, i.e. where HJClik's own value may have underflowed)."""
    start, end, e_open, e_shut = _scalcs_blocks(Q, t_res, t_crit)
    out, n_down = [], []
    for g in groups:
        v, lg, nd, up = start.copy(), 0.0, 0, False
        for i, t in enumerate(g):
            v = v @ (e_open(t) if i % 2 == 0 else e_shut(t))
            if v.max() > 1e50:
                v, lg, nd = v * 1e-100, lg + LN_1E100, nd + 1
            elif v.max() < 1e-50:
                v, lg, up = v * 1e100, lg - LN_1E100, True
        out.append(math.log(float(v @ end)) + lg)
        n_down.append(-1 if up else nd)
    return np.array(out), np.array(n_down)


def _group_logliks(Q, groups, t_res, t_crit=None, n_exact=2):
    lik = th._HJCLikelihood(Q, OPEN, SHUT, t_res, t_crit, n_exact)
    return lik.group_logliks([np.asarray(g, float) for g in groups])


# (the hand-made groups are not split at t_crit on purpose -- SCALCS takes them as they are --
# so hjc_loglik's warning about unsplit groups is expected here)
@pytest.mark.filterwarnings("ignore:hjc_loglik.*shut time.*inside the groups:UserWarning")
@pytest.mark.parametrize("t_crit", [None, 3.5e-3])
@pytest.mark.parametrize("c", [0.1 * uM, 1 * uM])
@pytest.mark.parametrize("t_res", [25 * us, 50 * us, 100 * us])
def test_hand_groups_match_scalcs_hjclik(t_res, c, t_crit):
    """Hand-written groups (every interval range and piece boundary) against SCALCS'
    HJClik itself: observed <= 8e-14 relative."""
    Q = CH82.q_matrix(agonist=c)
    groups = _hand_groups(t_res)
    ref = _scalcs_hjclik(Q, groups, t_res, t_crit)
    got = th.hjc_loglik(CH82, groups, t_res=t_res, t_crit=t_crit, agonist=c)
    assert got == pytest.approx(ref, rel=1e-11)
    # and group by group against the building-block loop (no rescaling happens here)
    per, n_down = _scalcs_group_logliks(Q, groups, t_res, t_crit)
    assert np.all(n_down == 0)
    np.testing.assert_allclose(_group_logliks(Q, groups, t_res, t_crit), per, rtol=1e-11,
                               atol=1e-11)
    # a raw Q with open= is the same model
    assert th.hjc_loglik(Q, groups, t_res=t_res, t_crit=t_crit, open=[0, 1]) == \
        pytest.approx(got, rel=1e-14)


@pytest.mark.parametrize("c, t_end", [(0.1 * uM, 100 * s), (1 * uM, 15 * s)])
def test_resolved_records_match_scalcs(c, t_end):
    """Simulated CH82 records (2 sweeps, equilibrium start, seed 1) resolved at 25, 50 and
    100 us, one group per sweep and groups split at t_crit = 3.5 ms with CHS vectors:
    the total against SCALCS' building-block loop to 1e-11 relative (observed <= 2e-13),
    each group to 1e-9 absolute (observed <= 3e-11 on groups of up to 1565 intervals).
    HJClik itself (on the groups whose vector never falls below 1e-50): ours minus
    100 ln 10 per rescaling of its running vector (its bug; up to 38 rescalings per
    group here), to 1e-11 relative (observed 5e-13)."""
    Q = CH82.q_matrix(agonist=c)
    rec = _record(c, t_end, seed=1, n_trials=2)
    for t_res in (25 * us, 50 * us, 100 * us):
        r = rec.resolve(t_res)
        for t_crit in (None, 3.5e-3):
            groups = r.hjc_groups(t_crit)
            assert len(groups) >= 2
            ref, n_down = _scalcs_group_logliks(Q, groups, t_res, t_crit)
            mine = _group_logliks(Q, groups, t_res, t_crit)
            np.testing.assert_allclose(mine, ref, rtol=0, atol=1e-9)
            total = th.hjc_loglik(CH82, groups, t_res=t_res, t_crit=t_crit, agonist=c)
            assert total == pytest.approx(ref.sum(), rel=1e-11)
            assert total == pytest.approx(mine.sum(), rel=1e-14)
            ok = n_down >= 0
            assert ok.any()
            hjclik = _scalcs_hjclik(Q, [g for g, k in zip(groups, ok) if k], t_res, t_crit)
            expect = mine[ok].sum() - LN_1E100 * n_down[ok].sum()
            assert hjclik == pytest.approx(expect, rel=1e-11, abs=1e-9)
            if t_crit is None:   # whole sweeps: HJClik's running vector is rescaled
                assert n_down.max() > 0


# ------------------------------------------------------------------ ideal limit

def _ideal_loglik(Q, groups, t_crit=None):
    """phi expm(Q_AA t1) Q_AF expm(Q_FF t2) Q_FA ... expm(Q_AA tn) Q_AF end, by scipy expm;
    equilibrium from the null space of Q^T; CHS vectors with
    H_FA = int_t_crit^inf expm(Q_FF t) Q_FA dt = expm(Q_FF t_crit) (-Q_FF)^-1 Q_FA."""
    p = linalg.null_space(Q.T)[:, 0]
    p = p / p.sum()
    qaa, qaf = Q[np.ix_(OPEN, OPEN)], Q[np.ix_(OPEN, SHUT)]
    qfa, qff = Q[np.ix_(SHUT, OPEN)], Q[np.ix_(SHUT, SHUT)]
    if t_crit is None:
        start = p[SHUT] @ qfa
        end = np.ones(SHUT.size)
    else:
        H = linalg.expm(qff * t_crit) @ np.linalg.solve(-qff, qfa)
        start = (p[OPEN] @ qaf) @ H
        end = H.sum(axis=1)
    start = start / start.sum()
    total = 0.0
    for g in groups:
        v, lg = start.copy(), 0.0
        for i, t in enumerate(g):
            v = v @ (linalg.expm(qaa * t) @ qaf if i % 2 == 0 else linalg.expm(qff * t) @ qfa)
            lg += math.log(v.max())
            v = v / v.max()
        total += math.log(v @ end) + lg
    return total


@pytest.mark.parametrize("t_crit", [None, 3.5e-3])
def test_small_t_res_gives_the_ideal_likelihood(t_crit):
    """As t_res -> 0 nothing is missed and the HJC likelihood of fixed intervals tends to the
    ideal one.  The difference is first order: L(t_res) - L0 = c t_res + O(t_res^2) with
    |c| <= (number of intervals) x max|q_ii| (each density changes by O(t_res x rates)).  So:
    (i) |L(1e-9) - L0| <= n x 1.9e4 s^-1 x 1e-9 (observed 0.55-0.63 of that); (ii) the
    difference scales by 10 from 1e-9 to 1e-10 s (to 1e-4; observed 9e-6); (iii)
    Richardson's (10 L(1e-10) - L(1e-9)) / 9 equals L0 to 1e-10 relative (observed 5e-9
    absolute on 2.4e3-2.5e3, 2e-12 relative: the O(t_res^2) remainder)."""
    c = 1 * uM
    Q = CH82.q_matrix(agonist=c)
    groups = _record(c, 5 * s, seed=3).resolve(25 * us).hjc_groups(t_crit)
    n = sum(g.size for g in groups)
    assert n > 300
    L0 = _ideal_loglik(Q, groups, t_crit)
    L9, L10 = (th.hjc_loglik(CH82, groups, t_res=tr, t_crit=t_crit, agonist=c)
               for tr in (1e-9, 1e-10))
    qmax = float(np.abs(np.diag(Q)).max())
    assert 0 < abs(L9 - L0) <= n * qmax * 1e-9
    assert (L10 - L0) / (L9 - L0) == pytest.approx(0.1, rel=1e-4)
    assert (10 * L10 - L9) / 9 == pytest.approx(L0, rel=1e-10)


# ------------------------------------------------------------------ eG matrices

_GL_X, _GL_W = np.polynomial.legendre.leggauss(16)


def _first_passage_AR(Q, a, f, tau):
    """AR(u) from the decomposition at the first F sojourn that lasts tau: a path in A at u
    either never had one, or had its first at v (in A just before, with every earlier F
    sojourn < tau: AR(v); jump Q_AF; stay tau: exp(Q_FF tau); then anything to A):

        AR(u) = [exp(Q u)]_AA - int_0^(u - tau) AR(v) Q_AF exp(Q_FF tau) [exp(Q (u-v-tau))]_FA dv

    (second term only for u >= tau), by 16-point Gauss-Legendre on each t_res-long piece
    (where AR is analytic) and recursion.  Returns (AR, Q_AF exp(Q_FF tau))."""
    B = Q[np.ix_(a, f)] @ linalg.expm(Q[np.ix_(f, f)] * tau)

    def AR(u):
        out = linalg.expm(Q * u)[np.ix_(a, a)]
        if u < tau:
            return out
        edges = [*np.arange(0.0, u - tau, tau), u - tau]
        for lo, hi in itertools.pairwise(edges):
            for x, w in zip(lo + (hi - lo) * (_GL_X + 1) / 2, _GL_W * (hi - lo) / 2):
                out = out - w * AR(x) @ B @ linalg.expm(Q * (u - x - tau))[np.ix_(f, a)]
        return out
    return AR, B


def _eg(Q, a, f, tau, n_exact=2):
    p = th.equilibrium(Q)
    return th._EGMatrices(th._HJCClass(Q, p, a, f, tau, th.is_reversible(Q)), n_exact)


def _eval(eg, t):
    mats, logs = eg.eval(np.atleast_1d(t))
    return mats * np.exp(logs)[:, None, None]


@pytest.mark.parametrize("cls", ["open", "shut"])
def test_eG_matrices_against_a_first_passage_quadrature(cls):
    """eG_AF(t) = AR(t - t_res) Q_AF exp(Q_FF t_res) (CH82, 0.1 uM, 100 us) against the
    first-passage quadrature: exact range (both pieces, spectral and expm forms) to 1e-12 of
    the largest entry (observed 7e-16 open, 3e-13 shut); the asymptotic form at 3 and 3.5
    t_res to its approximation error, which falls with t (observed 2.5e-10 / 8e-13 open,
    2e-5 / 2e-6 shut, cf. the scalar figures of apparent_dwell_times; 6e-16 and 7e-9 at
    4.5 t_res, not run: 10^4 expm); with 4 exact pieces the same points are exact
    (spectral recursion to m = 2) to 1e-12."""
    Q = CH82.q_matrix(agonist=0.1 * uM)
    tau = 100 * us
    a, f = (OPEN, SHUT) if cls == "open" else (SHUT, OPEN)
    AR, B = _first_passage_AR(Q, a, f, tau)
    eg, eg4 = _eg(Q, a, f, tau), _eg(Q, a, f, tau, 4)
    assert eg.mode == eg4.mode == "spectral"
    ks = np.array([0.0, 0.5, 1.0, 1.5, 1.999, 2.0, 2.5])
    ref = np.array([AR(k * tau) @ B for k in ks])
    err = np.abs(_eval(eg, tau * (1 + ks)) - ref).max(axis=(1, 2)) / np.abs(ref).max(axis=(1, 2))
    assert np.all(err[:5] < 1e-12), err
    bound = [5e-10, 2e-12] if cls == "open" else [5e-5, 5e-6]
    assert np.all(err[5:] < bound), err
    assert err[5] > err[6]
    err4 = np.abs(_eval(eg4, tau * (1 + ks)) - ref).max(axis=(1, 2)) / \
        np.abs(ref).max(axis=(1, 2))
    assert np.all(err4 < 1e-12), err4
    # the block-matrix-exponential form of the same pieces
    u = tau * ks
    np.testing.assert_allclose(eg4._expm_eval(u)[0], eg4._spectral_eval(u, False),
                               rtol=0, atol=1e-12 * np.abs(ref).max())
    np.testing.assert_allclose(eg4._expm_eval(u)[1], eg4._spectral_eval(u, True),
                               rtol=0, atol=1e-12)


def test_eG_matrices_match_scalcs_eGAF():
    """SCALCS' qmatlib.eGAF (its Z00/Z10/Z11 exact pieces below 3 t_res, asymptotic beyond)
    at the piece boundaries and beyond, open and shut, CH82 at 1 uM, 50 us: 1e-11 of the
    largest entry (observed 3e-14; SCALCS' roots are accurate to its brentq tolerance)."""
    Q = CH82.q_matrix(agonist=1 * uM)
    tau = 50 * us
    _, _, e_open, e_shut = _scalcs_blocks(Q, tau, None)
    t = tau * np.array([1.0, 1.3, 2.0, 2.7, 3.0, 3.01, 7.0, 100.0, 2000.0])
    for a, f, ref_fn in ((OPEN, SHUT, e_open), (SHUT, OPEN, e_shut)):
        mine = _eval(_eg(Q, a, f, tau), t)
        for M, ti in zip(mine, t):
            ref = ref_fn(ti)
            assert np.abs(M - ref).max() <= 1e-11 * np.abs(ref).max(), (ti, M, ref)


@pytest.mark.parametrize("cls", ["open", "shut"])
def test_the_chs_tail_integral(cls):
    """H(t_crit) = int_t_crit^inf eG_AF(t) dt (the CHS96 matrix): from t_res it is the
    closed-form eG_AF = (I - G_AF (I - exp(Q_FF tau)) G_FA)^-1 G_AF exp(Q_FF tau) [HJC92],
    to the error of the asymptotic form integrated beyond 3 t_res (observed 5e-12 open, 5e-8
    shut at 100 us; 1e-12 with 6 exact pieces); and H(t_crit) + int_t_res^t_crit eG (adaptive
    quadrature of the matrices) = H(t_res) for t_crit in either exact piece and beyond, to
    1e-13 (observed 1e-16)."""
    Q = CH82.q_matrix(agonist=0.1 * uM)
    tau = 100 * us
    a, f = (OPEN, SHUT) if cls == "open" else (SHUT, OPEN)
    hc = th._HJCClass(Q, th.equilibrium(Q), a, f, tau, True)
    e_g = th._e_G(hc.QAA, hc.QAF, hc.QFA, hc.QFF, hc.EF)
    for n, tol in ((2, 1e-7), (6, 1e-11)):
        eg = _eg(Q, a, f, tau, n)
        H, lg = eg.tail(tau)
        full = H * math.exp(lg)
        assert np.abs(full - e_g).max() <= tol * np.abs(e_g).max()
        for t_crit in (1.7 * tau, 2.5 * tau, 4 * tau):
            H, lg = eg.tail(t_crit)
            head = integrate.quad_vec(lambda t: _eval(eg, t)[0], tau, t_crit, epsabs=0,
                                      epsrel=1e-13, points=[2 * tau, 3 * tau])[0]
            assert np.abs(H * math.exp(lg) + head - full).max() <= 1e-13 * np.abs(e_g).max()


@pytest.mark.parametrize("cls", ["open", "shut"])
def test_a_single_interval_is_the_apparent_dwell_time_pdf(cls):
    """phi_A eG_AF(t) u_F is the pdf of apparent_dwell_times: for a one-opening group,
    hjc_loglik is log pdf(t) (exact and asymptotic ranges, CH82, and the cyclic
    4-state scheme without microscopic reversibility, found by the scanned root search);
    for shut times, the same with the classes exchanged.  (Exactly at 3 t_res the pdf uses
    the exact form and the likelihood, as HJCFIT and SCALCS, the asymptotic one.)"""
    for Q, op, t_res in ((CH82.q_matrix(agonist=0.1 * uM), [0, 1], 100 * us),
                         (_cyclic_q(), [0, 1], 50 * us)):
        d = th.apparent_dwell_times(Q, cls, open=op, t_res=t_res)
        t = t_res * np.array([1.0, 1.7, 2.0, 2.9, 2.999, 3.001, 10.0, 300.0])
        if cls == "open":
            got = [th.hjc_loglik(Q, [[ti]], t_res=t_res, open=op) for ti in t]
        else:
            shut = [i for i in range(Q.shape[0]) if i not in op]
            got = [th.hjc_loglik(Q, [[ti]], t_res=t_res, open=shut) for ti in t]
        np.testing.assert_allclose(got, np.log(d.pdf(t)), rtol=1e-12, atol=1e-12)


def _cyclic_q():
    """O1, O2 | C1, C2 with the cycle O1 -> C1 -> C2 -> O1 unbalanced (tests/test_theory_hjc)."""
    Q = np.array([[0, 500., 2000., 0.], [300., 0, 0, 100.], [200., 50., 0, 3000.],
                  [4000., 0, 10., 0]])
    np.fill_diagonal(Q, -Q.sum(axis=1))
    return Q


def test_long_groups_neither_underflow_nor_overflow_and_groups_are_independent(
        monkeypatch):
    """One group of 40001 intervals (ln L = 1.9e5: the raw product overflows) equals a
    sequential vector-matrix chain rescaled at every step, to 1e-13 relative; a group with
    10^4 shut times of 0.5 s (ln L = -9.8e3: the raw product underflows) likewise; and the
    tree reduction keeps groups apart: the total over 29 groups of 1 to 393 intervals in
    one call is the sum of separate calls (also when evaluated in blocks of 5 intervals)."""
    c = 1 * uM
    Q = CH82.q_matrix(agonist=c)
    t_res = 50 * us
    lik = th._HJCLikelihood(Q, OPEN, SHUT, t_res, None, 2)
    rng = np.random.default_rng(7)

    def sequential(g):
        O, lo = lik.open.eval(g[0::2])
        S, ls = lik.shut.eval(g[1::2])
        v, logs = lik.start.copy(), []
        for i in range(g.size):
            v = v @ (O[i // 2] if i % 2 == 0 else S[i // 2])
            logs += [lo[i // 2] if i % 2 == 0 else ls[i // 2], math.log(v.max())]
            v = v / v.max()
        return math.fsum(logs + [math.log(v @ lik.end)])   # (exact sum of the logs)
    big = t_res + rng.exponential(1e-3, 40001)
    long_shuts = big[:20001].copy()
    long_shuts[1::2] = 0.5
    for g in (big, long_shuts):
        got = th.hjc_loglik(CH82, [g], t_res=t_res, agonist=c)
        assert math.isfinite(got) and abs(got) > 5e3
        assert got == pytest.approx(sequential(g), rel=1e-13)
    groups = [t_res + rng.exponential(1e-3, 2 * k + 1) for k in range(0, 201, 7)]
    sep = sum(th.hjc_loglik(CH82, [g], t_res=t_res, agonist=c) for g in groups)
    assert th.hjc_loglik(CH82, groups, t_res=t_res, agonist=c) == pytest.approx(sep, rel=1e-13)
    # the numpy version (used for matrix-exponential and complex forms) gives the same, also
    # when it evaluates in blocks of _HJC_CHUNK intervals (here 5)
    gs = th._check_hjc_groups(groups, t_res)
    assert float(lik._group_logliks_numpy(gs).sum()) == pytest.approx(sep, rel=1e-13)
    monkeypatch.setattr(th, "_HJC_CHUNK", 5)
    assert float(lik._group_logliks_numpy(gs).sum()) == pytest.approx(sep, rel=1e-13)


# ------------------------------------------------------------------ statistics

def test_the_likelihood_is_largest_at_the_true_rate():
    """CH82 at 1 uM, one 50 s sweep (seed 12, equilibrium start), resolved at 50 us: ~4300
    intervals in one group.  alpha2 (A2R* -> A2R) scaled by 2^(k/3), k = -3..3, breaks
    microscopic reversibility (a raw Q, scanned root search): the true rate must give the
    largest log-likelihood of the 7.  With ln L about quadratic in theta = ln(alpha2), this
    fails only if the MLE of theta is more than half a grid step (ln 2 / 6 = 0.116) from the
    truth: probability 2 Phi(-0.116 / SE), SE = (observed information)^-1/2 from the
    curvature at the truth.  The test asserts that this probability is < 1e-4 (observed SE
    0.022, probability 1.5e-7) and that the scan is unimodal."""
    c, t_res = 1 * uM, 50 * us
    Q = CH82.q_matrix(agonist=c)
    groups = _record(c, 50 * s, seed=12).resolve(t_res).hjc_groups()

    def loglik(factor):
        q = Q.copy()
        q[1, 3] *= factor
        q[1, 1] = 0.0
        q[1, 1] = -q[1].sum()
        return th.hjc_loglik(q, groups, t_res=t_res, open=[0, 1])
    factors = 2.0 ** (np.arange(-3, 4) / 3)
    L = np.array([loglik(x) for x in factors])
    h = 0.05
    info = -(loglik(math.exp(h)) - 2 * L[3] + loglik(math.exp(-h))) / h ** 2
    se = 1 / math.sqrt(info)
    assert 2 * stats.norm.sf(math.log(2) / 6 / se) < 1e-4, se
    assert int(np.argmax(L)) == 3, L
    assert np.all(np.diff(L[:4]) > 0) and np.all(np.diff(L[3:]) < 0)


# ------------------------------------------------------------------ Record.hjc_groups

def test_hjc_groups_from_a_record():
    """Two sweeps written by hand (durations in ms, O = open): censored first and last dwells
    dropped, then leading / trailing shut times; split at shut times > t_crit (strictly)."""
    ms = 1e-3
    sweeps = [[("O", 5), ("S", 1), ("O", 2), ("S", 9), ("O", 3), ("S", 4), ("O", 1), ("S", 2)],
              [("S", 7), ("O", 4), ("S", 2), ("O", 6), ("S", 5)],
              [("S", 7), ("O", 4)]]                # no complete opening
    times, states, ends = [], [], []
    for sw in sweeps:
        d = np.array([x[1] for x in sw]) * ms
        times.append(np.concatenate(([0.0], np.cumsum(d)[:-1])))
        states.append([1 if x[0] == "O" else 0 for x in sw])
        ends.append(float(d.sum()))
    rec = ka.Record.from_states(times, states, ends, classes=[0, 1]).resolve(0.5 * ms)
    g = rec.hjc_groups()
    assert [list(np.round(x / ms, 12)) for x in g] == [[2, 9, 3, 4, 1], [4, 2, 6]]
    g = rec.hjc_groups(t_crit=4 * ms)
    assert [list(np.round(x / ms, 12)) for x in g] == [[2], [3, 4, 1], [4, 2, 6]]
    g = rec.hjc_groups(t_crit=3.9 * ms)
    assert [list(np.round(x / ms, 12)) for x in g] == [[2], [3], [1], [4, 2, 6]]
    assert all(x.dtype == np.float64 and x.size % 2 == 1 for x in g)
    # a simulated record: odd lengths, every interval >= t_res, open/shut alternation kept
    r = _record(1 * uM, 2 * s, seed=4, n_trials=3).resolve(50 * us)
    for t_crit in (None, 3.5e-3):
        g = r.hjc_groups(t_crit)
        assert len(g) >= (3 if t_crit is None else 10)
        assert all(x.size % 2 == 1 and x.min() >= 50 * us for x in g)
        inner = np.concatenate([x[1::2] for x in g])
        if t_crit is not None:
            assert inner.max() <= t_crit
        opens = np.concatenate([x[0::2] for x in g])
        assert np.isin(opens, r.open_times()).all()
    # every complete opening of the record is in some group without t_crit
    assert sum((x.size + 1) // 2 for x in r.hjc_groups()) == r.open_times().size
    with pytest.raises(ValueError, match="not resolved.*resolve"):
        _record(1 * uM, 1 * s, seed=4).hjc_groups()
    with pytest.raises(ValueError, match="t_crit must be > t_res"):
        r.hjc_groups(t_crit=50 * us)
    with pytest.raises(ValueError, match="t_crit"):
        r.hjc_groups(t_crit=-1.0)
    # two open levels: the record must be built with one open class
    two = ka.Record.from_levels([0.0, 1e-3, 2e-3, 3e-3, 4e-3], [0, 5e-12, 0, 3e-12, 0],
                                5e-3).resolve(1e-4)
    with pytest.raises(ValueError, match="one open and one shut class"):
        two.hjc_groups()


def test_hjc_groups_of_a_resolved_record_give_its_hjc_likelihood():
    """The documented workflow: with t_crit, the groups are the bursts of Record.bursts
    (complete or not, each shortened to its complete openings), and hjc_loglik takes them."""
    c, t_res, t_crit = 1 * uM, 50 * us, 3.5e-3
    r = _record(c, 5 * s, seed=9, n_trials=2).resolve(t_res)
    groups = r.hjc_groups(t_crit)
    b = r.bursts(t_crit, complete_only=True)
    n_open = sum((x.size + 1) // 2 for x in groups)
    assert n_open >= int(b.n_openings.sum())
    ll = th.hjc_loglik(CH82, groups, t_res=r.t_res, t_crit=t_crit, agonist=c)
    assert math.isfinite(ll)


# ------------------------------------------------------------------ refusals

def test_validation_errors():
    t_res = 50 * us
    good = [[1e-3, 2e-4, 1e-3]]

    def call(groups=good, **kw):
        kw.setdefault("t_res", t_res)
        return th.hjc_loglik(CH82, groups, agonist=1 * uM, **kw)
    assert math.isfinite(call())
    # t_res and t_crit
    for bad in (0.0, -1e-5, math.nan, math.inf):
        with pytest.raises(ValueError, match="t_res must be a finite time resolution > 0"):
            call(t_res=bad)
    with pytest.raises(ValueError, match="not a recording resolution"):
        call(t_res=50)
    with pytest.raises(TypeError, match="t_res must be a real number"):
        call(t_res="5e-5")
    with pytest.raises(TypeError, match="t_res"):
        th.hjc_loglik(CH82, good, agonist=1 * uM)
    for bad in (t_res, 1e-5, math.inf, math.nan, -1.0):
        with pytest.raises(ValueError, match=r"t_crit must be a finite critical shut time > "
                                             r"t_res=5e-05 s"):
            call(t_crit=bad)
    with pytest.raises(TypeError, match="t_crit must be None or a real number"):
        call(t_crit="3.5e-3")
    with pytest.raises(TypeError, match="t_crit"):
        call(t_crit=True)
    # groups
    with pytest.raises(ValueError, match="groups is empty"):
        call(groups=[])
    with pytest.raises(ValueError, match=r"groups\[1\] is empty"):
        call(groups=[[1e-3], []])
    with pytest.raises(TypeError, match=r"one 1-D array of numbers: pass \[durations\]"):
        call(groups=np.array([1e-3, 2e-4, 1e-3]))
    with pytest.raises(TypeError, match=r"groups\[0\] must be a 1-D array.*got float"):
        call(groups=[1e-3, 2e-4, 1e-3])
    for bad in (None, "1e-3", 1e-3):
        with pytest.raises(TypeError, match="groups must be a sequence of 1-D arrays"):
            call(groups=bad)
    with pytest.raises(TypeError, match=r"groups\[0\] must hold real numbers"):
        call(groups=[["1e-3"]])
    with pytest.raises(TypeError, match=r"groups\[0\] must hold real numbers"):
        call(groups=[[True]])
    with pytest.raises(ValueError, match=r"groups\[0\] must be 1-D, got shape \(1, 3\)"):
        call(groups=[[[1e-3, 2e-4, 1e-3]]])
    with pytest.raises(ValueError, match=r"groups\[0\] must be a 1-D array"):
        call(groups=[[[1e-3, 2e-4], [1e-3]]])
    with pytest.raises(ValueError, match=r"groups\[1\]\[2\] = nan is not a finite"):
        call(groups=[[1e-3], [1e-3, 2e-4, math.nan]])
    with pytest.raises(ValueError, match=r"groups\[0\]\[1\] = inf"):
        call(groups=[[1e-3, math.inf, 1e-3]])
    with pytest.raises(ValueError, match=r"groups\[2\] has 4 intervals, an even number.*"
                                         r"starts and ends with an opening"):
        call(groups=[[1e-3], [1e-3], [1e-3, 2e-4, 1e-3, 2e-4]])
    with pytest.raises(ValueError, match=r"groups\[1\]\[3\] \(a shut time\) = 4e-05 s"):
        call(groups=[[1e-3], [1e-3, 2e-4, 1e-3, 4e-5, 1e-3]])
    with pytest.raises(ValueError, match=r"groups\[0\]\[0\] \(an open time\) = 1e-05 s is "
                                         r"shorter than t_res=5e-05 s \(2 such"):
        call(groups=[[1e-5, 2e-4, 2e-5]])
    # 2-D array of equal-length groups is a sequence of rows: accepted
    assert call(groups=np.array([[1e-3, 2e-4, 1e-3], [2e-3, 3e-4, 5e-4]])) == pytest.approx(
        call(groups=[[1e-3, 2e-4, 1e-3], [2e-3, 3e-4, 5e-4]]), rel=1e-15)
    # exact_intervals, model and conditions
    for bad in (0, 11):
        with pytest.raises(ValueError, match="exact_intervals"):
            call(exact_intervals=bad)
    with pytest.raises(TypeError, match="exact_intervals"):
        call(exact_intervals=2.0)
    Q = CH82.q_matrix(agonist=1e-6)
    with pytest.raises(ValueError, match="open states unknown"):
        th.hjc_loglik(Q, good, t_res=t_res)
    with pytest.raises(TypeError, match="conditions"):
        th.hjc_loglik(Q, good, t_res=t_res, open=[0, 1], agonist=1e-6)
    with pytest.raises(ValueError, match="unknown ligand"):
        th.hjc_loglik(CH82, good, t_res=t_res, glutamate=1e-6)
    with pytest.raises(ValueError, match="never entered"):
        th.hjc_loglik(CH82, good, t_res=t_res, agonist=0.0)
    with pytest.raises(ValueError, match="there are no open states"):
        th.hjc_loglik(Q, good, t_res=t_res, open=[])
    with pytest.raises(ValueError, match=r"hjc_loglik: t_res=0.1 s is too long for this "
                                         r"mechanism.*t_res must be <= 0.001897 s"):
        th.hjc_loglik(CH82, [[0.2]], t_res=0.1, agonist=0.1 * uM)
