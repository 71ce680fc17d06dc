"""``bursts(...).openings`` is exact for every mechanism [CH82].

The number of openings per burst is ``P(r) = phi_b GG^(r-1) e_b`` with ``GG = G_AB G_BA``
(CH82 eq. 3.5).  ``bursts`` wrote it as a mixture of geometrics over the eigenvalues of GG
(CH82 eq. 3.9) from ``_spectral(GG)``, unchecked:

* GG defective (a Jordan block; e.g. nilpotent) -- ``_spectral`` raised the private
  ``_Defective`` ValueError and so did ``bursts``;
* GG nearly defective -- the eigenvalues, merged at MERGE_RTOL (1e-9) or kept with huge
  opposite weights, gave a wrong mixture with no error at all (below: total 0.4 instead of 1,
  the pmf off by 82 % of its peak, for eigenvalues 1e-9 apart).

Now the mixture is kept when it matches the exact matrix powers at every r up to where the
tails no longer matter (``_openings_accurate``, SPECTRAL_CHECK_RTOL of the peak pmf, the
policy of the continuous distributions), and otherwise ``bursts`` returns the exact
``DiscretePhaseType`` built from ``(phi_b, GG, e_b)``.

Oracles: closed forms, brute-force ``numpy.linalg.matrix_power`` of a GG computed here from
Q (scipy/numpy solves, not ketacore), and 50-digit mpmath.  Stochastic tests state their
false-failure probability for a correct sampler (alpha); their seeds are fixed, so they are
deterministic.

References: Colquhoun D, Hawkes AG (1982). Phil Trans R Soc Lond B 300:1-59.
doi:10.1098/rstb.1982.0156.
"""
from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from scipy import stats

import ketacore as kc
from ketacore import analysis as ka
from ketacore import theory as th

CH82 = kc.models.get("ch82")
CH82_WITHIN = ["AR", "A2R"]


# ---------------------------------------------------------------------------------- oracles


def _gg_oracle(Q, A, B):
    """phi_b, GG = G_AB G_BA and e_b = (I - GG) u_A from Q by numpy solves; the equilibrium
    from the null space of Q^T (SVD), independent of ketacore."""
    A, B = np.asarray(A), np.asarray(B)
    K = Q.shape[0]
    C = np.setdiff1d(np.setdiff1d(np.arange(K), A), B)
    blk = lambda r, c: Q[np.ix_(r, c)]  # noqa: E731
    _, _, vt = np.linalg.svd(Q.T)
    p = np.abs(vt[-1])
    p = p / p.sum()
    GAB = np.linalg.solve(-blk(A, A), blk(A, B))
    GBA = np.linalg.solve(-blk(B, B), blk(B, A))
    GG = GAB @ GBA
    phi = p[C] @ (blk(C, A) + blk(C, B) @ GBA)
    phi = phi / phi.sum()
    eb = np.ones(A.size) - GG @ np.ones(A.size)
    return phi, GG, eb


def _pmf_matrix_power(phi, GG, eb, r):
    """Brute force: phi GG^(r-1) e_b, one numpy.linalg.matrix_power per r."""
    return np.array([phi @ np.linalg.matrix_power(GG, int(x) - 1) @ eb if x >= 1 else 0.0
                     for x in np.atleast_1d(r)])


def _pmf_mp(Q, A, B, R, dps=50):
    """P(r), r = 1..R, and the mean, transcribed in ``dps``-digit mpmath from Q (equilibrium by
    mpmath lu_solve, inverses and products by mpmath): no trouble with nearly equal
    eigenvalues, which it never computes."""
    A, B = [int(i) for i in A], [int(i) for i in B]
    with mpmath.workdps(dps):
        K = Q.shape[0]
        C = [i for i in range(K) if i not in set(A) | set(B)]
        M = mpmath.matrix(Q.tolist())
        sub = lambda r, c: mpmath.matrix([[M[i, j] for j in c] for i in r])  # noqa: E731
        Mt = M.T
        for j in range(K):
            Mt[K - 1, j] = 1
        pe = mpmath.lu_solve(Mt, mpmath.matrix([0] * (K - 1) + [1]))
        GAB = (-sub(A, A)) ** -1 * sub(A, B)
        GBA = (-sub(B, B)) ** -1 * sub(B, A)
        GG = GAB * GBA
        phi = mpmath.matrix([[pe[i] for i in C]]) * (sub(C, A) + sub(C, B) * GBA)
        phi = phi / sum(phi)
        u = mpmath.matrix([1] * len(A))
        eb = u - GG * u
        out, v = [], phi
        for _ in range(R):
            out.append(float((v * eb)[0]))
            v = v * GG
        mean = float((phi * (mpmath.eye(len(A)) - GG) ** -1 * u)[0])
        return np.array(out), mean


# ------------------------------------------------------------------------------ mechanisms


def _nilpotent_q():
    """O1 -> B -> O2 -> C -> O1, one way, every rate in the burst 100 s^-1 (C -> O1 10 s^-1).
    A burst starts in O1 (from C), goes through B to O2 and ends (O2 -> C): exactly two
    openings.  GG = G_AB G_BA = [[0, 1], [0, 0]], nilpotent (a 2x2 Jordan block of eigenvalue
    0).  Why it raised before: numpy's ``eig`` returns two numerically parallel eigenvectors
    ([1, 0] and [-1, ~1e-292]), so ``X diag(0, 0) X^-1 = 0`` misses GG by 1, far over the
    1e-8 reconstruction check of ``_spectral``, which raised ``_Defective`` ("matrix is
    (nearly) defective ...") -- and ``bursts`` called ``_spectral(GG)`` outside any try."""
    Q = np.zeros((4, 4))
    Q[0, 2], Q[2, 1], Q[1, 3], Q[3, 0] = 100.0, 100.0, 100.0, 10.0
    np.fill_diagonal(Q, -Q.sum(axis=1))
    return Q


def _jordan_q(eps=0.0):
    """O1, O2 (open), B1, B2 (within), C.  O1 -> B1 (100); B1 -> O1 (25), -> O2 (45), -> C (30);
    O2 -> B2 (50), -> C (50); B2 -> O2 (50 (1 + eps)), -> C (50); C -> O1 (100).  From O1 the
    next opening is O1 again with probability 1/4 or O2 with 0.45; from O2 it is O2 again with
    probability (1/2) (1 + eps) / (2 + eps) = 1/4 at eps = 0: GG = [[1/4, 0.45], [0, 1/4]], a
    Jordan block; ``eps`` splits its eigenvalue by ~eps/8."""
    Q = np.zeros((5, 5))
    O1, O2, B1, B2, C = range(5)
    Q[O1, B1] = 100.0
    Q[B1, O1], Q[B1, O2], Q[B1, C] = 25.0, 45.0, 30.0
    Q[O2, B2], Q[O2, C] = 50.0, 50.0
    Q[B2, O2], Q[B2, C] = 50.0 * (1 + eps), 50.0
    Q[C, O1] = 100.0
    np.fill_diagonal(Q, -Q.sum(axis=1))
    return Q


JORDAN_A, JORDAN_B = [0, 1], [2, 3]


def _jordan_pmf(r, a=0.25, c=0.45):
    """Closed form for GG = [[a, c], [0, a]], phi_b = [1, 0], e_b = [1 - a - c, 1 - a]:
    ``P(r) = a^(r-1) (1 - a - c) + (r - 1) a^(r-2) c (1 - a)``, mean
    ``1 / (1 - a) + c / (1 - a)^2``."""
    r = np.asarray(r, float)
    return a ** (r - 1) * (1 - a - c) + (r - 1) * a ** (r - 2) * c * (1 - a)


# ------------------------------------------------------------------ (a) defective: exact now


def test_nilpotent_openings_used_to_raise_and_are_now_exact():
    Q = _nilpotent_q()
    phi, GG, eb = _gg_oracle(Q, [0, 1], [2])
    np.testing.assert_allclose(GG, [[0.0, 1.0], [0.0, 0.0]], atol=1e-15)
    # the old code path: the spectral step alone raises (see _nilpotent_q for why)
    with pytest.raises(th._Defective):
        th._spectral(GG)
    b = th.bursts(Q, [2], open=[0, 1])                       # before: _Defective
    o = b.openings
    assert isinstance(o, th.DiscretePhaseType)
    r = np.arange(0, 12)
    ref = _pmf_matrix_power(phi, GG, eb, r)
    np.testing.assert_allclose(o.pmf(r), ref, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(o.pmf([1, 2, 3]), [0.0, 1.0, 0.0])   # exactly two
    mean = float(phi @ np.linalg.solve(np.eye(2) - GG, np.ones(2)))
    assert o.mean == pytest.approx(mean, rel=1e-12) and o.mean == pytest.approx(2.0, rel=1e-14)
    assert b.mean_openings == pytest.approx(2.0, rel=1e-14)
    assert o.total == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_allclose(o.cdf([0, 1, 2, 3, np.inf]), [0, 0, 1, 1, 1], atol=1e-15)
    np.testing.assert_array_equal(o.sample(1000, rng=5), np.full(1000, 2))
    # the rest of the bursts result: equal rates, so the length is the exact PhaseType too
    assert isinstance(b.length, th.PhaseType)
    assert b.length.mean == pytest.approx(b.mean_length, rel=1e-12)


def test_jordan_block_openings_used_to_raise_and_are_now_exact():
    """GG = [[1/4, 0.45], [0, 1/4]]: before, ``_Defective`` (eig's two eigenvectors are
    parallel, the reconstruction misses by ~0.45); now the DiscretePhaseType, equal to the
    closed form and to brute-force matrix powers to 1e-12."""
    Q = _jordan_q()
    phi, GG, eb = _gg_oracle(Q, JORDAN_A, JORDAN_B)
    with pytest.raises(th._Defective):
        th._spectral(GG)
    b = th.bursts(Q, JORDAN_B, open=JORDAN_A)
    o = b.openings
    assert isinstance(o, th.DiscretePhaseType)
    np.testing.assert_allclose(o.start, [1.0, 0.0], atol=1e-15)
    r = np.arange(1, 80)
    ref = _pmf_matrix_power(phi, GG, eb, r)
    np.testing.assert_allclose(o.pmf(r), ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(o.pmf(r), _jordan_pmf(r), rtol=1e-12, atol=1e-300)
    mean = float(phi @ np.linalg.solve(np.eye(2) - GG, np.ones(2)))
    assert o.mean == pytest.approx(mean, rel=1e-12)
    assert o.mean == pytest.approx(1 / 0.75 + 0.45 / 0.75 ** 2, rel=1e-12)
    assert o.mean == pytest.approx(b.mean_openings, rel=1e-12)
    assert b.p_multiple == pytest.approx(1.0 - float(o.pmf(1)), rel=1e-12)
    np.testing.assert_allclose(o.rhos, [0.25, 0.25], rtol=1e-6)


def test_discrete_phase_type_interface():
    """pmf, cdf, survival, total, mean on the Jordan case, against cumulative sums of the
    closed form; argument handling."""
    o = th.bursts(_jordan_q(), JORDAN_B, open=JORDAN_A).openings
    r = np.arange(1, 200)
    pmf = _jordan_pmf(r)
    cum = np.cumsum(pmf)
    np.testing.assert_allclose(o.cdf(r), cum, rtol=1e-13, atol=1e-15)
    tail = np.array([math.fsum(pmf[i:]) for i in range(1, 60)])   # P(R > r), r = 1..59
    np.testing.assert_allclose(o.survival(r[:59]), tail, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(o.cdf(r) + o.survival(r), 1.0, atol=1e-15)
    assert o.total == pytest.approx(1.0, abs=1e-14)
    assert float(o.pmf(r).sum()) == pytest.approx(1.0, abs=1e-14)
    # fractional r: floor for the cdf; out of range
    assert float(o.cdf(2.7)) == pytest.approx(float(o.cdf(2)), rel=1e-15)
    assert float(o.cdf(0.5)) == 0.0 and float(o.survival(-3)) == 1.0
    assert float(o.pmf(0)) == 0.0 and float(o.pmf(-4)) == 0.0
    assert float(o.cdf(np.inf)) == pytest.approx(1.0, abs=1e-14)
    assert float(o.survival(np.inf)) == pytest.approx(0.0, abs=1e-14)
    assert o.pmf([[1, 2], [3, 4]]).shape == (2, 2)
    assert np.shape(o.pmf(3)) == ()
    # huge counts: matrix powers by squaring, no overflow or long loop
    assert float(o.pmf(10 ** 12)) == 0.0 and float(o.survival(10 ** 15)) == 0.0
    with pytest.raises(ValueError, match="whole numbers"):
        o.pmf(1.5)
    with pytest.raises(ValueError, match="NaN"):
        o.cdf(np.nan)
    with pytest.raises(TypeError):
        o.pmf("3")
    assert o.n_phases == 2
    # the constructor refuses an I - T that is singular (a phase that never ends)
    with pytest.raises(ValueError, match="singular"):
        th.DiscretePhaseType([1.0], [[1.0]], [0.0])


def test_discrete_phase_type_docstring():
    doc = th.DiscretePhaseType.__doc__
    assert "References" in doc and "Colquhoun" in doc and "doi:10.1098/rstb.1982.0156" in doc
    assert "dimensionless" in doc and "count" in doc
    assert "DiscretePhaseType" in th.__all__
    assert "DiscretePhaseType" in th.bursts.__doc__ and "DiscretePhaseType" in th.Bursts.__doc__


# ------------------------------------------------------------------- (b) nearly defective


@pytest.mark.parametrize("eps", [0.0, 1e-15, 1e-12, 1e-10, 1e-9, 5e-9, 1e-8, 1e-6, 1e-3])
def test_nearly_defective_openings_against_mpmath(eps):
    """Eigenvalues of GG ~eps/8 apart.  Before: for 1e-15 <= eps <= 1e-9 the two eigenvalues
    were merged (MERGE_RTOL) into one geometric of weight 0.3 -- total 0.4, mean 0.53 instead
    of 2.13, the pmf off by 82 % of its peak -- and at 5e-9 the unmerged mixture was off by
    1.2e-7 of the peak (over SPECTRAL_CHECK_RTOL), all silently.  Now: the exact
    DiscretePhaseType up to eps = 5e-9 (equal to a 50-digit oracle to 1e-12 of the peak;
    measured 1e-16), the mixture from 1e-8 (within SPECTRAL_CHECK_RTOL of the peak: 2.9e-8
    measured at 1e-8, 1.8e-12 at 1e-3)."""
    Q = _jordan_q(eps)
    b = th.bursts(Q, JORDAN_B, open=JORDAN_A)
    o = b.openings
    R = 120                                                 # P(R > 120) < 1e-66
    ref, mean = _pmf_mp(Q, JORDAN_A, JORDAN_B, R)
    got = o.pmf(np.arange(1, R + 1))
    peak = ref.max()
    if isinstance(o, th.DiscretePhaseType):
        assert np.abs(got - ref).max() <= 1e-12 * peak
        assert o.mean == pytest.approx(mean, rel=1e-12)
    else:
        assert isinstance(o, th.GeometricMixture)
        assert np.abs(got - ref).max() <= th.SPECTRAL_CHECK_RTOL * peak
        assert o.mean == pytest.approx(mean, rel=1e-6)
    assert b.mean_openings == pytest.approx(mean, rel=1e-12)
    assert o.total == pytest.approx(1.0, abs=1e-7)
    if eps <= 5e-9:
        assert isinstance(o, th.DiscretePhaseType)
    if eps >= 1e-8:
        assert isinstance(o, th.GeometricMixture)


def test_the_check_is_the_policy():
    """``_openings_accurate`` accepts a pmf 0.5 x SPECTRAL_CHECK_RTOL of the peak off and
    rejects one 2 x off, at r = 1, near the peak and in the tail (every r is checked up to
    th._OPENINGS_DENSE; beyond it, windows at each doubling: see the next test)."""
    b = th.bursts(CH82, CH82_WITHIN, agonist=1e-7)
    mix = b.openings
    Q = CH82.q_matrix(agonist=1e-7)
    A = np.flatnonzero(np.asarray(CH82.conductance) > 0)
    B = np.array([CH82.index(s) for s in CH82_WITHIN])
    phi, GG, eb = _gg_oracle(Q, A, B)
    np.testing.assert_allclose(phi, b.start, rtol=1e-12)
    peak = float(mix.pmf(np.arange(1, 100)).max())
    assert th._openings_accurate(GG, b.start, eb, mix)

    class Bumped:
        def __init__(self, at, delta):
            self.rhos, self.weights, self.at, self.delta = mix.rhos, mix.weights, at, delta

        def pmf(self, r):
            return mix.pmf(r) + self.delta * (np.asarray(r) == self.at)

    for at in (1, 3, 25, 77):
        for factor, ok in ((0.5, True), (2.0, False)):
            bumped = Bumped(at, factor * th.SPECTRAL_CHECK_RTOL * peak)
            assert th._openings_accurate(GG, b.start, eb, bumped) is ok, (at, factor)


def test_the_check_sees_a_smooth_error_beyond_the_dense_range():
    """Past th._OPENINGS_DENSE the check samples windows at every doubling of r.  A mixture
    whose slow component (mean 4e4 openings) has its ratio off by delta has the error
    w r delta rho^(r-1), largest at r ~ 4e4: scaled to 1.2 x the tolerance there, it stays
    below 0.6 x the tolerance for every r <= 2 x th._OPENINGS_DENSE (the dense blocks end
    before that) and is caught in a window (r ~ 3.25e4: 1.18 x); at 0.8 x it passes.
    Checked to fail with the windows removed."""
    rho1, rho2, p2 = 0.5, 1.0 - 2.5e-5, 0.5
    start = np.array([1.0 - p2, p2])
    T = np.diag([rho1, rho2])
    exit_ = 1.0 - np.diag(T)
    w = start * exit_                                     # pmf = sum w rho^(r-1)
    peak = float(th.GeometricMixture(np.array([rho1, rho2]), w).pmf(1))
    r = np.arange(1, 1_000_000)
    d_err = w[1] * (r - 1.0) * rho2 ** (r - 2.0)          # d pmf / d rho2
    assert 4 * th._OPENINGS_DENSE < int(r[np.argmax(d_err)])
    assert d_err[: 2 * th._OPENINGS_DENSE].max() / d_err.max() < 0.5
    for factor, ok in ((0.8, True), (1.2, False)):
        delta = factor * th.SPECTRAL_CHECK_RTOL * peak / d_err.max()
        off = th.GeometricMixture(np.array([rho1, rho2 + delta]), w)
        assert th._openings_accurate(T, start, exit_, off) is ok, factor


# --------------------------------------------------------------- (c) CH82: unchanged mixture


def _old_openings(b, Q):
    """The code of ``bursts`` before this change, transcribed (the unchecked spectral step),
    on the same phi_b; GG and e_b as ``bursts`` computes them."""
    A, B = np.array(b.open_states), np.array(b.within_states)
    blk = lambda r, c: Q[np.ix_(r, c)]  # noqa: E731
    nQAA_inv = np.linalg.inv(-blk(A, A))
    nQBB_inv = np.linalg.inv(-blk(B, B))
    GG = (nQAA_inv @ blk(A, B)) @ (nQBB_inv @ blk(B, A))
    eb = (np.eye(A.size) - GG) @ np.ones(A.size)
    phi = np.asarray(b.start)
    rho, Ar = th._spectral(GG)
    wts = np.einsum("i,mij,j->m", phi, Ar, eb)
    with np.errstate(divide="ignore", invalid="ignore"):
        carried = wts / (1.0 - rho)
    keep = (~th._rounding_level(carried) if np.all(np.isfinite(carried))
            else np.ones(rho.size, bool))
    return rho[keep], wts[keep]


@pytest.mark.parametrize("c", [1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4])
def test_ch82_openings_bit_identical(c):
    """CH82 (the library model of the burst tests): still the GeometricMixture, with the very
    bits of the pre-change code (the check only decides; it changes no value).  Checked also
    by the author on 60 library-model cases and 97 bursts() calls of the test suite, all
    bit-identical."""
    b = th.bursts(CH82, CH82_WITHIN, agonist=c)
    assert type(b.openings) is th.GeometricMixture
    rho, w = _old_openings(b, CH82.q_matrix(agonist=c))
    np.testing.assert_array_equal(b.openings.rhos, rho)
    np.testing.assert_array_equal(b.openings.weights, w)
    assert b.openings.rhos.dtype == rho.dtype and b.openings.weights.dtype == w.dtype


@pytest.mark.parametrize("name, within, cond", [
    ("kampa2004", ["Cl", "D1"], {"glutamate": 1e-4, "mg": 1e-3, "V": -0.07}),
    ("erreger2005_2a", ["RA2f", "RA2s"], {"glutamate": 1e-5}),
])
def test_library_mechanisms_keep_the_mixture(name, within, cond):
    """A non-reversible (kampa2004) and an NMDA mechanism: the mixture passes the check."""
    s = kc.models.get(name)
    b = th.bursts(s, within, **cond)
    assert type(b.openings) is th.GeometricMixture
    rho, w = _old_openings(b, s.q_matrix(**cond))
    np.testing.assert_array_equal(b.openings.rhos, rho)
    np.testing.assert_array_equal(b.openings.weights, w)


def test_many_openings_per_burst_keep_the_mixture():
    """An open-channel blocker C <-> O <-> OB with ~1e4 openings per burst: geometric,
    P(r) = (1 - q) q^(r-1), q = kon B / (alpha + kon B); the check runs out to r ~ 4e5 and
    keeps the (one-component) mixture."""
    alpha, beta, kon, koff, conc = 400.0, 2000.0, 1e7, 5e3, 0.4
    Q = np.array([[-beta, beta, 0.0], [alpha, -(alpha + kon * conc), kon * conc],
                  [0.0, koff, -koff]])
    b = th.bursts(Q, [2], open=[1])
    assert type(b.openings) is th.GeometricMixture
    q = kon * conc / (alpha + kon * conc)
    r = np.array([1, 10, 1000, 10 ** 5])
    np.testing.assert_allclose(b.openings.pmf(r), (1 - q) * q ** (r - 1.0), rtol=1e-9)


def test_ch82_exact_form_agrees_with_the_mixture(monkeypatch):
    """With the check made to fail, CH82 gives the DiscretePhaseType, equal to the
    (accurate) mixture to 1e-12 of the peak, with the closed-form mean (CH82 3.7)."""
    b = th.bursts(CH82, CH82_WITHIN, agonist=1e-7)
    monkeypatch.setattr(th, "_openings_accurate", lambda *a, **k: False)
    e = th.bursts(CH82, CH82_WITHIN, agonist=1e-7)
    assert isinstance(e.openings, th.DiscretePhaseType)
    r = np.arange(1, 400)
    ref = b.openings.pmf(r)
    assert np.abs(e.openings.pmf(r) - ref).max() <= 1e-12 * ref.max()
    np.testing.assert_allclose(e.openings.cdf(r), b.openings.cdf(r), rtol=0, atol=1e-13)
    assert e.openings.mean == pytest.approx(b.mean_openings, rel=1e-12)
    assert e.mean_openings == b.mean_openings
    np.testing.assert_allclose(e.openings.rhos, b.openings.rhos, rtol=1e-12)


# --------------------------------------------------------------------- (d) sample vs pmf


def _chi_square_pvalue(y, pmf, n_min=5.0):
    """Pearson chi-square of the counts ``y`` against ``pmf`` (a function of r), bins r = 1,
    2, ... while the expected count is >= n_min, the rest pooled into one tail bin."""
    n = y.size
    r = 1
    edges = []
    while n * float(pmf(r)) >= n_min:
        edges.append(r)
        r += 1
    probs = np.array([float(pmf(x)) for x in edges])
    obs = np.array([(y == x).sum() for x in edges])
    exp = n * probs
    obs = np.append(obs, n - obs.sum())
    exp = np.append(exp, n * (1.0 - probs.sum()))
    assert exp[-1] > 0 and len(obs) >= 3
    return stats.chisquare(obs, exp).pvalue


ALPHA = 1e-3   # false-failure probability of each chi-square test for a correct sampler


def test_sample_jordan_chi_square():
    """The exact form's draws against its pmf: Pearson chi-square, p > ALPHA = 1e-3 (a
    correct sampler fails with probability 1e-3 for a fresh seed; the seed is fixed); the
    mean within 5 standard errors (fails with probability 6e-7)."""
    o = th.bursts(_jordan_q(), JORDAN_B, open=JORDAN_A).openings
    y = o.sample(20000, rng=20240611)
    assert y.dtype == np.int64 and y.min() >= 1
    assert _chi_square_pvalue(y, o.pmf) > ALPHA
    r = np.arange(1, 200)
    sd = math.sqrt(float((o.pmf(r) * r ** 2).sum()) - o.mean ** 2)
    assert abs(y.mean() - o.mean) < 5 * sd / math.sqrt(y.size)


def test_sample_ch82_exact_form_chi_square(monkeypatch):
    """CH82 through the exact form (check made to fail): long tail (mean 3.8 openings at
    0.1 uM, draws past r = 50).  Chi-square p > ALPHA = 1e-3 (false-failure probability 1e-3
    for a fresh seed; fixed seed)."""
    monkeypatch.setattr(th, "_openings_accurate", lambda *a, **k: False)
    o = th.bursts(CH82, CH82_WITHIN, agonist=1e-7).openings
    assert isinstance(o, th.DiscretePhaseType)
    y = o.sample(50000, rng=99)
    assert _chi_square_pvalue(y, o.pmf) > ALPHA
    assert y.max() > 30


def test_sample_refuses_an_improper_distribution():
    leaky = th.DiscretePhaseType([1.0, 0.0], [[0.5, 0.2], [0.0, 0.5]], [0.2, 0.4])
    assert leaky.total < 1
    with pytest.raises(ValueError, match="proper discrete phase-type"):
        leaky.sample(10, rng=1)
    o = th.bursts(_jordan_q(), JORDAN_B, open=JORDAN_A).openings
    assert o.sample(0, rng=1).shape == (0,)
    with pytest.raises(ValueError):
        o.sample(-1, rng=1)
    with pytest.raises(TypeError, match="rng"):
        o.sample(3, rng="seed")


# ------------------------------------------------------------------- (e) reproducibility


def test_sample_reproducible():
    o = th.bursts(_jordan_q(), JORDAN_B, open=JORDAN_A).openings
    np.testing.assert_array_equal(o.sample(500, rng=3), o.sample(500, rng=3))
    np.testing.assert_array_equal(o.sample(500, rng=np.random.default_rng(3)),
                                  o.sample(500, rng=3))          # default_rng(seed) semantics
    np.testing.assert_array_equal(o.sample(500, rng=np.random.SeedSequence(3)),
                                  o.sample(500, rng=3))
    assert not np.array_equal(o.sample(500, rng=3), o.sample(500, rng=4))
    g = np.random.default_rng(8)                # a Generator is used as is, and advanced
    first, second = o.sample(200, rng=g), o.sample(200, rng=g)
    assert not np.array_equal(first, second)
    g = np.random.default_rng(8)
    np.testing.assert_array_equal(np.concatenate([first, second]),
                                  np.concatenate([o.sample(200, rng=g), o.sample(200, rng=g)]))


# -------------------------------------------------------------------- consumers in ketacore


def _burst_result(n_openings):
    n = np.asarray(n_openings)
    k = n.size
    length = np.full(k, 0.03)
    return ka.BurstResult(start=np.arange(k, dtype=float), length=length, n_openings=n,
                          open_time=0.5 * length, shut_time=0.5 * length,
                          complete=np.ones(k, bool), sweep=np.zeros(k, int),
                          gaps=np.full(int((n - 1).sum()), 0.01),
                          gap_burst=np.repeat(np.arange(k), n - 1), t_crit=1.0)


def test_analysis_burst_plot_and_compare_take_the_exact_form():
    """BurstResult.plot overlays ``theory.openings.pmf`` (and the length, a PhaseType here);
    compare uses the closed-form means: both work with a DiscretePhaseType."""
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt
    b = th.bursts(_nilpotent_q(), [2], open=[0, 1])
    assert isinstance(b.openings, th.DiscretePhaseType)
    res = _burst_result([2, 2, 2, 2])
    a0, _ = res.plot(theory=b)
    line = next(ln for ln in a0.get_lines() if ln.get_label() == "theory")
    np.testing.assert_array_equal(line.get_ydata(), [0.0, 1.0])
    z = res.compare(b)               # every burst has 2 openings: se 0, so the z-score is NaN
    assert set(z) >= {"mean_openings", "mean_length"} and math.isnan(z["mean_openings"])
    plt.close("all")
