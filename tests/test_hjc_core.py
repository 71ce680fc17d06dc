"""The C++ HJC kernels (csrc/include/ketacore/hjc.hpp) against numpy/scipy oracles.

* ``_core.symmetric_eigh`` (cyclic Jacobi) against ``numpy.linalg.eigh`` (LAPACK): both are
  backward stable, so eigenvalues agree to a small multiple of ``n eps ||A||``; eigenvectors
  are checked by their own residual and orthonormality (their signs are arbitrary).
* ``_HJCClass.roots`` / ``projectors`` of reversible classes (the C++ search) against the same
  algorithm written with numpy and scipy (``eigvalsh`` of the symmetrised ``H(s)``,
  ``scipy.optimize.brentq`` with the same tolerances, ``eigh`` for the null vectors; this was
  ketacore's own implementation until 2026-11-28).  Both find the zero of ``mu_j(s) - s``,
  whose slope is <= -1, from values with absolute error ~ k eps ||H(s)||; so the roots agree to
  a few ``k eps max|q_ii|`` (observed <= 1.3 of that over 800 random mechanisms, seeds 5-8;
  the tests allow 20).  A projector's error is that of its null vectors, ~ eps / (relative gap
  to the nearest other root) (observed <= 10 eps / gap; allowed 1000).
* ``_equilibrium_q``'s GTH-first path against GTH on the closed class (bytes) on random
  reducible generators.
No randomness in the outcomes: the mechanisms come from fixed seeds and the comparisons are
deterministic.
"""
import math
import re

import numpy as np
import pytest
from scipy import optimize

import ketacore as kc
from ketacore import _core
from ketacore import theory as th
from ketacore.units import uM, us
from test_theory_hjc import _four_state

EPS = np.finfo(float).eps


# --- oracle: the numpy/scipy version of the root search and projectors ----------------------
def _sym(hc, M):
    S = (hc.r[:, None] * M) / hc.r[None, :]
    return 0.5 * (S + S.T)


def _eig(hc, s):
    h = hc.H(s)
    if not np.all(np.isfinite(h)):
        return np.full(hc.kA, np.inf)
    return np.linalg.eigvalsh(_sym(hc, h))


def oracle_roots(hc):
    if not _eig(hc, 0.0).max() < 0:
        raise ValueError("H(0) has an eigenvalue >= 0")
    lo0 = 1.01 * float(np.linalg.eigvalsh(_sym(hc, hc.QAA)).min()) - 1.0
    assert np.all(_eig(hc, lo0) - lo0 > 0)
    out = []
    for j in range(hc.kA):
        def g(s):
            return float(_eig(hc, s)[j] - s)
        lo, hi, glo = lo0, 0.0, g(lo0)
        for _ in range(200):
            if math.isfinite(glo):
                break
            mid = 0.5 * (lo + hi)
            gm = g(mid)
            if gm > 0:
                lo, glo = mid, gm
            else:
                hi = mid
        out.append(optimize.brentq(g, lo, hi, xtol=1e-300, rtol=4 * EPS, maxiter=500))
    return np.sort(out)


def oracle_projectors(hc, roots):
    groups = []
    for s in roots:
        if groups and abs(s - groups[-1][-1]) <= 1e-8 * abs(s):
            groups[-1].append(s)
        else:
            groups.append([s])
    svals, mats = [], []
    for grp in groups:
        g, s = len(grp), float(np.mean(grp))
        mu, V = np.linalg.eigh(_sym(hc, hc.H(s)))
        Vg = V[:, np.argsort(np.abs(mu - s))[:g]]
        C, Rt = Vg / hc.r[:, None], (Vg * hc.r[:, None]).T
        svals.append(s)
        mats.append(C @ np.linalg.solve(Rt @ hc.dW(s) @ C, Rt))
    return np.array(svals), np.array(mats)


def random_reversible(rng, k):
    """A connected reversible generator: equilibrium p (1e-3..1, normalised) and symmetric
    fluxes c_ij (0.1..100) on a random spanning tree plus extra edges; q_ij = c_ij / p_i."""
    p = 10 ** rng.uniform(-3, 0, k)
    p /= p.sum()
    C = np.zeros((k, k))
    order = rng.permutation(k)
    for i in range(1, k):
        a, b = order[i], order[rng.integers(i)]
        C[a, b] = C[b, a] = 10 ** rng.uniform(-1, 2)
    for _ in range(int(rng.integers(0, k))):
        a, b = rng.choice(k, 2, replace=False)
        C[a, b] = C[b, a] = 10 ** rng.uniform(-1, 2)
    Q = C / p[:, None]
    np.fill_diagonal(Q, 0.0)
    np.fill_diagonal(Q, -Q.sum(axis=1))
    return Q


def _cases(seed, n):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        k = int(rng.integers(2, 10))
        Q = random_reversible(rng, k)
        a = np.sort(rng.choice(k, int(rng.integers(1, k)), replace=False))
        f = np.setdiff1d(np.arange(k), a)
        tau = float(10 ** rng.uniform(-2, math.log10(5)) / np.abs(np.diag(Q)).max())
        yield Q, a, f, tau


def _check_class(Q, a, f, tau):
    hc = th._HJCClass(Q, th._equilibrium_q(Q), a, f, tau, True)
    assert hc.reversible
    ro, rc = oracle_roots(hc), hc.roots()
    scale = np.abs(np.diag(Q)).max()
    assert rc.shape == ro.shape and np.all(np.diff(rc) >= 0)
    np.testing.assert_allclose(rc, ro, rtol=0, atol=20 * Q.shape[0] * EPS * scale)
    so, Ro = oracle_projectors(hc, ro)
    sc, Rc = hc.projectors(rc)
    assert sc.shape == so.shape and Rc.shape == Ro.shape
    gaps = np.diff(ro)
    rel_gap = float((gaps / scale).min()) if gaps.size else 1.0
    assert np.abs(Rc - Ro).max() <= 1e3 * EPS / rel_gap * np.abs(Ro).max()
    return hc


# --- symmetric eigensolver ---------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 20])
def test_jacobi_eigh_matches_lapack(n):
    rng = np.random.default_rng(n)
    for scale_exp in (-3, 0, 4):
        X = rng.normal(size=(n, n)) * 10.0 ** scale_exp
        A = X + X.T
        w, V = _core.symmetric_eigh(A)
        wl = np.linalg.eigvalsh(A)
        norm = np.abs(wl).max()
        np.testing.assert_allclose(w, wl, rtol=0, atol=50 * n * EPS * norm)
        assert np.all(np.diff(w) >= 0)
        np.testing.assert_allclose(V.T @ V, np.eye(n), rtol=0, atol=50 * n * EPS)
        np.testing.assert_allclose(A @ V, V * w, rtol=0, atol=50 * n * EPS * norm)


def test_jacobi_eigh_graded_degenerate_and_diagonal():
    # a graded matrix (entries spanning 1e-8..1e4), a matrix with a repeated eigenvalue, and a
    # diagonal one (returned sorted, with a permutation for V)
    D = np.diag(10.0 ** np.arange(-8, 5, 2.0))
    rng = np.random.default_rng(3)
    Qo, _ = np.linalg.qr(rng.normal(size=(7, 7)))
    for A in (Qo @ D @ Qo.T, Qo @ np.diag([1.0, 1.0, 1.0, 2.0, 3.0, 3.0, 5.0]) @ Qo.T,
              np.diag([3.0, -1.0, 2.0, 0.0])):
        A = 0.5 * (A + A.T)
        w, V = _core.symmetric_eigh(A)
        norm = np.abs(np.linalg.eigvalsh(A)).max()
        np.testing.assert_allclose(w, np.linalg.eigvalsh(A), rtol=0, atol=100 * EPS * norm)
        np.testing.assert_allclose(A @ V, V * w, rtol=0, atol=100 * EPS * norm)
    w, V = _core.symmetric_eigh(np.diag([3.0, -1.0, 2.0, 0.0]))
    assert list(w) == [-1.0, 0.0, 2.0, 3.0]
    assert np.array_equal(np.abs(V), np.eye(4)[:, [1, 3, 2, 0]])


def test_jacobi_eigh_reads_the_upper_triangle_only():
    A = np.array([[2.0, 1.0, 0.5], [99.0, 3.0, 1.0], [-7.0, 99.0, 4.0]])
    U = np.triu(A) + np.triu(A, 1).T
    np.testing.assert_allclose(_core.symmetric_eigh(A)[0], np.linalg.eigvalsh(U),
                               rtol=0, atol=20 * EPS * 5)


# --- roots and projectors ----------------------------------------------------------------------
def test_roots_and_projectors_match_the_scipy_oracle_on_random_mechanisms():
    n = 0
    for case in _cases(5, 120):
        _check_class(*case)
        n += 1
    assert n == 120


@pytest.mark.parametrize("c", [0.01 * uM, 0.1 * uM, 1 * uM, 10 * uM])
@pytest.mark.parametrize("t_res", [25 * us, 100 * us])
def test_roots_and_projectors_match_the_oracle_on_ch82(c, t_res):
    m = kc.models.get("ch82")
    Q = m.q_matrix(agonist=c)
    a, f = np.array([0, 1]), np.array([2, 3, 4])
    for A, F in ((a, f), (f, a)):
        _check_class(Q, A, F, t_res)


def test_repeated_roots_are_merged_as_in_the_oracle():
    # two identical, uncoupled copies of a two-state open/shut pair: every root is double
    q = np.array([[-3.0e3, 3.0e3], [1.0e3, -1.0e3]])
    Q = np.zeros((4, 4))
    Q[:2, :2] = Q[2:, 2:] = q
    Q[0, 2] = Q[2, 0] = Q[1, 3] = Q[3, 1] = 0.0
    # couple the copies weakly and symmetrically so there is one closed class
    Q[1, 3] = Q[3, 1] = 1e-9
    np.fill_diagonal(Q, 0.0)
    np.fill_diagonal(Q, -Q.sum(axis=1))
    a, f = np.array([0, 2]), np.array([1, 3])
    hc = th._HJCClass(Q, th._equilibrium_q(Q), a, f, 50e-6, True)
    r = hc.roots()
    assert abs(r[1] - r[0]) <= 1e-8 * abs(r[1])
    s, R = hc.projectors(r)
    so, Ro = oracle_projectors(hc, oracle_roots(hc))
    assert s.shape == so.shape == (1,) and R.shape == (1, 2, 2)
    np.testing.assert_allclose(s, so, rtol=1e-14)
    np.testing.assert_allclose(R, Ro, rtol=0, atol=1e-10 * np.abs(Ro).max())


def test_core_statuses_and_their_messages():
    # a class never left (Q_AF = 0): H(0) = Q_AA is singular, status 1
    QAA = np.array([[-2.0, 2.0], [2.0, -2.0]])
    QAF, QFA = np.zeros((2, 1)), np.array([[1.0, 1.0]])
    nu, B, r = np.array([2.0]), np.ones((1, 1, 1)), np.ones(2)
    status, _, _ = _core.hjc_roots(QAA, QAF, QFA, nu, B, r, 1e-4)
    assert status == th._H0_NOT_NEGATIVE
    with pytest.raises(ValueError, match=r"with t_res=0\.0001 s, H\(0\) has an eigenvalue >= 0"):
        th._hjc_status("x", status, 0.0, 1e-4)
    with pytest.raises(ValueError, match=r"root search did not converge at s = -12\.5 s\^-1"):
        th._hjc_status("root search", th._NOT_CONVERGED, -12.5)
    with pytest.raises(ValueError, match=r"singular r W'\(s\) c at the asymptotic root s = -3 "):
        th._hjc_status("projectors", th._SINGULAR, -3.0)
    th._hjc_status("anything", 0, 0.0)   # success: no error
    with pytest.raises(ValueError, match="QAF must be kA x kF"):
        _core.hjc_roots(QAA, np.zeros((3, 1)), QFA, nu, B, r, 1e-4)


# --- equilibrium: GTH on the whole generator first --------------------------------------------
def test_equilibrium_gth_first_equals_gth_on_the_closed_class():
    rng = np.random.default_rng(11)
    n_red = 0
    for _ in range(300):
        k = int(rng.integers(2, 9))
        Q = np.where(rng.random((k, k)) < 0.4, 10 ** rng.uniform(-2, 4, (k, k)), 0.0)
        np.fill_diagonal(Q, 0.0)
        np.fill_diagonal(Q, -Q.sum(axis=1))
        _, closed = th._closed_classes(Q)
        if len(closed) != 1:
            with pytest.raises(th.NoUniqueEquilibrium):
                th._equilibrium_q(Q)
            continue
        ref = np.zeros(k)
        ref[closed[0]] = th._class_equilibrium(Q, closed[0])
        got = th._equilibrium_q(Q)
        assert got.tobytes() == ref.tobytes()
        n_red += closed[0].size < k and th._gth(Q) is not None
    assert n_red >= 20   # reducible chains solved by the GTH-first path were covered


# --- group likelihoods: C++ kernel against the numpy stack/tree version --------------------------
def _record_groups(c, t_res, t_crit, seconds=4.0, seed=2):
    from ketacore import analysis as ka
    ch82 = kc.models.get("ch82")
    log = kc.simulate_events(ch82, kc.Step(seconds, agonist=c), rng=seed,
                             initial=th.equilibrium(ch82, agonist=c))
    return ka.Record.from_events(log).resolve(t_res).hjc_groups(t_crit)


def _assert_same_logliks(lik, groups):
    gs = th._check_hjc_groups(groups, lik.open.tau)
    assert lik.open.core_form() is not None and lik.shut.core_form() is not None
    got, ref = lik.group_logliks(gs), lik._group_logliks_numpy(gs)
    lens = np.array([g.size for g in gs])
    # each product adds ~k eps relative error per interval, each exp/log ~eps |argument|:
    # 1e-14 per interval and per unit of |ln L| (observed <= 3.6e-16 of that)
    assert np.all(np.abs(got - ref) <= 1e-14 * (lens + np.abs(ref))), np.abs(got - ref).max()
    return got


@pytest.mark.parametrize("c", [0.1 * uM, 1 * uM, 10 * uM])
@pytest.mark.parametrize("t_res", [25 * us, 100 * us])
@pytest.mark.parametrize("t_crit", [None, 3.5e-3])
def test_core_group_logliks_match_the_numpy_version_on_ch82(c, t_res, t_crit):
    ch82 = kc.models.get("ch82")
    groups = _record_groups(c, t_res, 3.5e-3, seconds=200.0 if c < 1 * uM else 4.0)
    Q = ch82.q_matrix(agonist=c)
    lik = th._HJCLikelihood(Q, np.array([0, 1]), np.array([2, 3, 4]), t_res, t_crit, 2)
    got = _assert_same_logliks(lik, groups)
    assert np.all(np.isfinite(got)) and len(groups) >= 15 and sum(map(len, groups)) >= 90
    # and hjc_loglik is their sum
    assert th.hjc_loglik(ch82, groups, t_res=t_res, t_crit=t_crit, agonist=c) == \
        pytest.approx(float(got.sum()), rel=1e-15, abs=0)


@pytest.mark.parametrize("n_exact", [1, 3])
def test_core_group_logliks_long_groups_and_more_exact_pieces(n_exact):
    """Groups of 1 to 4001 intervals (renormalisation over thousands of products; no
    underflow), intervals on both sides of (n + 1) t_res, and other exact-piece counts."""
    ch82 = kc.models.get("ch82")
    Q = ch82.q_matrix(agonist=1 * uM)
    t_res = 50 * us
    rng = np.random.default_rng(4)
    groups = []
    for n in (1, 3, 41, 4001):
        t = t_res * (1.0 + rng.exponential(2.0, n))
        t[rng.random(n) < 0.1] = (n_exact + 1) * t_res    # exactly at the boundary
        groups.append(t)
    lik = th._HJCLikelihood(Q, np.array([0, 1]), np.array([2, 3, 4]), t_res, 3.5e-3, n_exact)
    got = _assert_same_logliks(lik, groups)
    assert np.all(np.isfinite(got)) and abs(got[-1]) > 1e4   # a product far outside 1e+-308


def test_core_group_logliks_give_minus_inf_for_zero_likelihood():
    # an eG form that is exactly zero beyond its exact range: a group with a long interval
    # has likelihood 0 (-inf); the others are finite
    kA = kF = 1
    zero_tail = (1e-4, -10.0, np.array([100.0]), np.ones((1, 1, 1, kA, kF)),
                 np.array([-10.0]), np.zeros((1, kA, kF)))
    out = _core.hjc_group_logliks(zero_tail, zero_tail, np.ones(1), np.ones(1), 0.0,
                                  np.array([1.5e-4, 1.5e-4, 1e-3, 1.5e-4, 1.5e-4]),
                                  np.array([1, 3, 1], np.int64))
    # one opening of 150 us: exact piece m = 0, x = 50 us, eG = exp(-100 x)
    assert out[0] == pytest.approx(-100 * 0.5e-4, rel=1e-12) and out[2] == out[0]
    assert out[1] == -np.inf
    with pytest.raises(ValueError, match="odd"):
        _core.hjc_group_logliks(zero_tail, zero_tail, np.ones(1), np.ones(1), 0.0,
                                np.ones(2), np.array([2], np.int64))
    with pytest.raises(ValueError, match="sum"):
        _core.hjc_group_logliks(zero_tail, zero_tail, np.ones(1), np.ones(1), 0.0,
                                np.ones(2), np.array([1], np.int64))


def test_group_logliks_take_the_numpy_path_for_the_expm_form():
    """Where the exact pieces are evaluated by matrix exponentials (the spectral form
    disagreed), there is no core form and the numpy version is used."""
    Q = _four_state()   # with 8 exact pieces the spectral form fails its check (expm)
    a, f = np.array([0]), np.array([1, 2, 3])
    lik = th._HJCLikelihood(Q, a, f, 100e-6, None, 8)
    assert "expm" in (lik.open.mode, lik.shut.mode)
    assert lik.open.core_form() is None or lik.shut.core_form() is None
    groups = [np.array([1e-4, 2e-4, 3e-4]), np.array([7e-4]), np.array([2e-3, 5e-4, 1e-2])]
    gs = th._check_hjc_groups(groups, 100e-6)
    assert lik.group_logliks(gs).tobytes() == lik._group_logliks_numpy(gs).tobytes()


# --- exact pieces by block matrix exponentials -------------------------------------------------
def _chain_loop(X, k, a, tau, u):
    """The Python loop that _EGMatrices._expm_eval ran until 2026-11-28 (the oracle)."""
    u = np.asarray(u, float).reshape(-1)
    f = np.zeros((u.size, a.size, a.size))
    g = np.zeros((u.size, a.size, a.size))
    for i, ui in enumerate(u):
        for m in range(len(X)):
            x = float(ui) - m * tau
            if x < 0:
                break
            E = th._expm(X[m] * x)[a]
            sign = 1.0 if m % 2 == 0 else -1.0
            f[i] += sign * E[:, m * k:(m + 1) * k][:, a]
            g[i] += sign * E[:, (m + 1) * k:][:, a]
    return f, g


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_chain_blocks_equal_the_python_loop_bytes(n):
    """Same expm, same order of the sums: the C++ blocks are the loop's bytes (CH82 both
    classes, the 4-state scheme whose spectral form fails at 8 pieces, points inside, at and
    between the piece boundaries, and beyond n t_res)."""
    cases = [(kc.models.get("ch82").q_matrix(agonist=1 * uM), np.array([0, 1]), 50 * us),
             (_four_state(), np.array([0]), 100 * us)]
    for Q, a, tau in cases:
        k = Q.shape[0]
        f = np.setdiff1d(np.arange(k), a)
        for A, F in ((a, f), (f, a)):
            hc = th._HJCClass(Q, th._equilibrium_q(Q), A, F, tau, True)
            X = th._chain_generators(hc, n)
            u = np.concatenate([np.linspace(0.0, n * tau, 4 * n + 1), [0.37 * tau, (n + 2) * tau]])
            got = th._chain_blocks(X, k, A, tau, u)
            ref = _chain_loop(X, k, A, tau, u)
            assert got[0].tobytes() == ref[0].tobytes() and got[1].tobytes() == ref[1].tobytes()


def test_chain_blocks_refuse_wrong_shapes():
    X = [np.zeros((4, 4))]
    with pytest.raises(ValueError, match="square"):
        _core.hjc_chain_blocks([np.zeros((3, 3))], 2, np.array([0]), 1e-4, np.zeros(2))
    with pytest.raises(ValueError, match="range"):
        _core.hjc_chain_blocks(X, 2, np.array([2]), 1e-4, np.zeros(2))
    F, G = _core.hjc_chain_blocks(X, 2, np.array([0, 1]), 1e-4, np.array([-1.0, 0.0]))
    # u < 0: no piece; u = 0: expm(0) = I, block (0, 0) is I and the integral block 0
    assert np.array_equal(F[0], np.zeros((2, 2))) and np.array_equal(F[1], np.eye(2))
    assert np.array_equal(G, np.zeros((2, 2, 2)))



# --- near the t_res limit: the eigenvalue floor ------------------------------------------------
# A reversible 5-state scheme, class of 4, t_res max|q_ii| = 32.7 (below the 36.04 limit): H at
# the lower bracket has entries ~1e21 and its computed eigenvalues fell below those of Q_AA, so
# the bracket failed ("could not bracket") before the floor (old numpy/scipy code too).
_NB1 = np.array([
    [-4888.302221461384, 27.081197927743027, 3049.72133372998, 1648.4690344019975,
     163.03065540166378],
    [1.2473406187314946, -1.2473406187314946, 0.0, 0.0, 0.0],
    [2067.987155794885, 0.0, -3481.359242848405, 1090.7109920428402, 322.66109501067956],
    [124.1806538918391, 0.0, 121.17001438785152, -481.13081757444195, 235.78014929475128],
    [12.2093874660318, 0.0, 35.63555491058341, 234.400585108796, -282.24552748541123]])


def test_roots_near_the_t_res_limit_are_bracketed():
    """The roots of the case above against det W(s) = 0 solved with mpmath at 60 digits
    (values pasted): the three slow roots to 1e-13; the fastest (-6684 s^-1) only to 5 %:
    H(s) there has entries ~1e21, so double precision cannot place it better (its component
    has decayed by exp(-89) at 3 t_res, where the asymptotic form starts)."""
    tau = 0.006699110160547929
    hc = th._HJCClass(_NB1, th._equilibrium_q(_NB1), np.arange(4), np.array([4]), tau, True)
    r = hc.roots()
    np.testing.assert_allclose(r[1:], [-1810.2489811991668, -25.260602139725925,
                                       -1.1799497502235388], rtol=1e-13)
    assert r[0] == pytest.approx(-6684.195678477801, rel=0.05)
    # and over random reversible classes at t_res max|q_ii| in [20, 36] the bracket never
    # fails (before the floor: 3 in 4000 in a review sweep)
    rng = np.random.default_rng(23)
    for _ in range(300):
        k = int(rng.integers(3, 9))
        Q = random_reversible(rng, k)
        a = np.sort(rng.choice(k, int(rng.integers(1, k)), replace=False))
        tau = float(rng.uniform(20, 36) / np.abs(np.diag(Q)).max())
        hc = th._HJCClass(Q, th._equilibrium_q(Q), a, np.setdiff1d(np.arange(k), a), tau, True)
        try:
            hc.roots()
        except ValueError as exc:
            assert "bracket" not in str(exc)


# --- checks of the groups: the first bad group is the one reported ---------------------------
@pytest.mark.parametrize("groups, exc, match", [
    ([np.array([]), "abc"], ValueError, r"groups\[0\] is empty"),
    ([np.array([1e-3, 1e-3]), np.zeros((2, 2))], ValueError, r"groups\[0\] has 2 intervals"),
    ([[1e-3, 1e-3], [True]], ValueError, r"groups\[0\] has 2 intervals"),
    ([[], None], ValueError, r"groups\[0\] is empty"),
    ([np.array([1e-3]), "abc"], TypeError, r"groups\[1\] must be a 1-D array"),
    ([np.array([1e-6]), np.array([1e-3, 1e-3])], ValueError, r"groups\[1\] has 2 intervals"),
    ([np.array([1e-3]), np.array([np.nan])], ValueError, r"groups\[1\]\[0\] = nan"),
])
def test_group_checks_report_the_first_bad_group(groups, exc, match):
    with pytest.raises(exc, match=match):
        th._check_hjc_groups(groups, 1e-4)


def test_checked_groups_carry_lengths_and_concatenation():
    import pickle
    g = [np.array([1e-3, 2e-3, 3e-3]), [4e-3], pickle.loads(pickle.dumps(np.array([5e-3])))]
    out = th._check_hjc_groups(g, 1e-4)
    assert list(out.lens) == [3, 1, 1] and out.allt.tolist() == [1e-3, 2e-3, 3e-3, 4e-3, 5e-3]
    assert out[0] is g[0] and out[2] is g[2]      # float64 arrays are not copied


# --- mechanisms without microscopic reversibility: the batched scan -----------------------------
def test_scan_grid_equals_eigenvalues_one_by_one():
    """_eigenvalues_grid (the root scan's 201 points in one batch) gives the bytes of
    eigenvalues(s) called point by point, on 60 random non-reversible mechanisms (a reversible
    one with its rates scattered by exp(N(0, 0.3)); tree-shaped ones stay reversible and are
    skipped), both classes; complex eigenvalues raise
    the same message at the same s."""
    rng = np.random.default_rng(1)
    n_cmp = n_err = 0
    grid = -np.geomspace(1e5, 1e-1, 50)
    for _ in range(60):
        k = int(rng.integers(3, 8))
        q = random_reversible(rng, k) * np.exp(rng.normal(0.0, 0.3, (k, k)))
        np.fill_diagonal(q, 0.0)
        np.fill_diagonal(q, -q.sum(axis=1))
        a = np.sort(rng.choice(k, int(rng.integers(1, k)), replace=False))
        tau = float(rng.uniform(0.05, 5) / np.abs(np.diag(q)).max())
        p = th._equilibrium_q(q)
        f = np.setdiff1d(np.arange(k), a)
        for A, F in ((a, f), (f, a)):
            hc = th._HJCClass(q, p, A, F, tau, th._is_reversible_q(q, p))
            if hc.reversible:     # (a tree-shaped graph is reversible whatever its rates)
                continue
            try:
                ref = np.array([hc.eigenvalues(s) for s in grid])
            except ValueError as exc:
                with pytest.raises(ValueError, match=re.escape(str(exc))):
                    hc._eigenvalues_grid(grid)
                n_err += 1
                continue
            assert hc._eigenvalues_grid(grid).tobytes() == ref.tobytes()
            n_cmp += 1
    assert n_cmp >= 40, (n_cmp, n_err)


def test_scan_grid_refuses_complex_eigenvalues_as_one_by_one():
    """A driven 3-cycle of open states (1000 s^-1 one way, 1 s^-1 back): H(s) has complex
    eigenvalues; the batch raises the one-by-one message at the first such s of the grid."""
    Q = np.zeros((4, 4))
    Q[0, 1] = Q[1, 2] = Q[2, 0] = 1000.0
    Q[1, 0] = Q[2, 1] = Q[0, 2] = 1.0
    Q[:3, 3], Q[3, :3] = 100.0, 300.0
    np.fill_diagonal(Q, -Q.sum(axis=1))
    p = th._equilibrium_q(Q)
    hc = th._HJCClass(Q, p, np.arange(3), np.array([3]), 50e-6, th._is_reversible_q(Q, p))
    grid = np.array([-1.0, -1e4, -1e3])
    with pytest.raises(ValueError, match=r"H\(s\) has complex eigenvalues at real s = -1 s"):
        [hc.eigenvalues(s) for s in grid]
    with pytest.raises(ValueError, match=r"H\(s\) has complex eigenvalues at real s = -1 s"):
        hc._eigenvalues_grid(grid)
