"""Missed events: ``ketacore.theory.apparent_dwell_times`` (Hawkes, Jalali & Colquhoun 1990,
1992) and its use by ``ketacore.analysis``.

Oracles, and why the tolerances are what they are:

* numbers published in the DCPROGS HJCFIT test suite for CH82 at 0.1 uM, t_res = 100 us, whose
  Q matrix (likelihood/tests/qmatrix.cc) is exactly ketacore's ``ch82`` at 0.1 uM: the
  asymptotic roots (likelihood/tests/asymptotes.cc, missed_eventsG example) and the matrices
  D_i, C_i00, C_i10, C_i11 of the exact recursion (likelihood/tests/exactG.cc).  These run
  without scalcs.
* SCALCS (``pip install scalcs``; DCPROGS' Python library) given the *same* Q, so that the
  comparison measures the implementations only: its building blocks ``asymptotic_roots``,
  ``asymptotic_areas``, ``exact_GAMAxx`` + ``f0``/``f1`` (its ``exact_pdf`` is not used: it
  takes only scalar t and crashes beyond 3 t_res), ``exact_mean_time`` and ``phiHJC``.
  SCALCS refines roots with ``brentq`` at its default absolute ``xtol = 2e-12``; ketacore's
  roots are accurate to the absolute error of a symmetric eigenvalue, ~eps ||H(s)|| ~ 5e-12
  for CH82 (||Q|| ~ 2e4 s^-1), so roots agree to ``1e-12 |s| + 1e-11``; areas inherit that
  (relative error ~ |ds / s|, < 1e-10 for the slowest root, -0.03 s^-1 at 10 nM): rtol 1e-9.
  The exact pdf, the mean and the start vector are the same closed forms computed through
  different eigendecompositions: rtol 1e-10 (observed <= 1e-11).
* internal consistency: the pdf integrates to 1 (to the error of the asymptotic form beyond
  ``exact_until``), its mean is the exact mean, the t_res -> 0 limit is ``dwell_times``, the
  exact and asymptotic pieces meet at ``exact_until``;
* simulation: resolved CH82 records follow the HJC distributions (chi-square over log bins,
  fixed seeds, failure probabilities stated per test).
"""
import math

import numpy as np
import pytest
from scipy import integrate, stats

import ketacore as kc
from ketacore import analysis as ka
from ketacore import theory as th
from ketacore.units import s, uM, us
from _scalcs_shim import ScalcsMechanism

CH82 = kc.models.get("ch82")
OPEN, SHUT = np.array([0, 1]), np.array([2, 3, 4])   # AR*, A2R* | AR, A2R, R


def _hjc(cls, t_res, c=0.1 * uM, **kw):
    return th.apparent_dwell_times(CH82, cls, t_res=t_res, agonist=c, **kw)


def _integrate(f, d, weight=lambda t: 1.0):
    """int_t_res^inf weight(t) f(t) dt by adaptive quadrature on the exact pieces and on
    log-spaced intervals beyond, up to 60 x the slowest time constant (the rest < e^-60)."""
    edges = [d.t_res + k * d.t_res for k in range(int(round(d.exact_until / d.t_res)))]
    edges += list(np.geomspace(d.exact_until, 60 * float(d.taus.max()), 80))
    return sum(integrate.quad(lambda t: weight(t) * float(f(t)), a, b, epsabs=0,
                              epsrel=1e-13, limit=200)[0] for a, b in zip(edges[:-1], edges[1:]))


# ------------------------------------------------------------------ published DCPROGS numbers

def test_roots_equal_published_hjcfit_values():
    """HJCFIT likelihood/tests/asymptotes.cc (CH82, 0.1 uM, tau = 1e-4 s)."""
    pub = {"open": [-3045.285776037674, -162.92946543451328],
           "shut": [-17090.192769236815, -2058.0812921673496, -0.24356535498785126]}
    for cls, ref in pub.items():
        d = _hjc(cls, 100 * us)
        np.testing.assert_allclose(np.sort(d.roots), np.sort(ref), rtol=1e-12, atol=1e-11)


def test_exact_recursion_equals_published_hjcfit_matrices():
    """D_i, C_i00, C_i10, C_i11 of the open-time recursion, HJCFIT likelihood/tests/exactG.cc
    (CH82, 0.1 uM, tau = 1e-4 s).  HJCFIT orders the eigenvalues as Eigen's solver returns
    them: each published C_i00 is matched to ketacore's spectral matrix it equals.  HJCFIT
    checks its own values to 1e-8 absolute; they are printed to 16 digits and agree to 1e-11."""
    pub_d = [[-2.766592241217363e-04, 1.337366986151818e+00, 1.199995862780172e-02,
              -5.800763938001960e+01],
             [-3.400371754358680e+01, -9.964228726415260e+01, -1.285444415722078e-02,
              -3.766782898643305e-02],
             [33.906985979306185, 95.85937122179871, -0.709318227330929, -2.005333039911058],
             [2.277817593601981e-02, 2.139946009230033e+00, 6.359426652916392e-01,
              5.974503720194507e+01],
             [0.074230047568711, 0.305603046972027, 0.074230047568708, 0.305603046972018]]
    pub_c00 = [[1.455330874554811e-07, -4.734319903811114e-04, -6.312426538410201e-06,
                2.053488119070023e-02],
               [9.594482244561667e-01, 2.720255573646091e-02, 3.627007431527878e-04,
                1.028339719619780e-05],
               [0.040510103210602, -0.063558925473074, -0.000847452339641, 0.001329622879932],
               [1.669965911328917e-05, 3.496776614970140e-02, 4.662368819960321e-04,
                9.762631769548786e-01],
               [2.482714103057449e-05, 1.862035577292865e-03, 2.482714103057373e-05,
                1.862035577292807e-03]]
    pub_c10 = [[1.543216801935930e-08, -5.832161141244571e-05, -7.776214854987692e-07,
                2.881846635882015e-03],
               [-2.920314067555906e-02, 3.011280303325819e-02, 4.015040404434260e-04,
                2.308011939325624e-05],
               [0.029163203160271, -0.046601780057635, -0.000621357067435, 0.000992579868274],
               [1.304381195661902e-05, 1.351401119241333e-02, 1.801868158988379e-04,
                -7.948211173074680e-03],
               [2.687827116302181e-05, 3.033287443375991e-03, 4.044383257834748e-05,
                4.050704549525265e-03]]
    pub_c11 = [[-8.442071118049461e-06, 2.746280314831956e-02, 3.661707086439929e-04,
                -1.191185663985985e+00],
               [-3.266094675374351e+01, -9.260126829437684e-01, -1.234683577258275e-02,
                -3.500610868950084e-04],
               [1.292339253163696, -2.027634781642889, -0.027035130421905, 0.04241716765587],
               [9.981021427566167e-04, 2.089946991412273e+00, 2.786595988549777e-02,
                5.834911732046284e+01],
               [9.430169806242189e-06, 7.072627354680796e-04, 9.430169806241902e-06,
                7.072627354680582e-04]]
    Q = CH82.q_matrix(agonist=0.1 * uM)
    p = th.equilibrium(Q)
    A = th._HJCClass(Q, p, OPEN, SHUT, 100 * us, True)
    lam, spec = th._spectral(-Q, p)
    lam = np.where(np.abs(lam) < 1e-12 * np.abs(lam).max(), 0.0, lam)
    _, C = A.exact_coefficients(lam, spec, np.array([0.5, 0.5]), 2)
    D = np.einsum("nij,jk,kl->nil", spec[:, OPEN][:, :, SHUT], A.EF, A.QFA)
    used = set()
    for d, c00, c10, c11 in zip(pub_d, pub_c00, pub_c10, pub_c11):
        c00 = np.reshape(c00, (2, 2))
        i = int(np.argmin([np.abs(C[0][0][j] - c00).max() for j in range(lam.size)]))
        used.add(i)
        for mine, ref in ((C[0][0][i], c00), (D[i], d), (C[1][0][i], c10), (C[1][1][i], c11)):
            np.testing.assert_allclose(mine, np.reshape(ref, (2, 2)), rtol=0, atol=1e-10)
    assert used == set(range(5))


def test_published_ideal_start_vector_is_the_t_res_to_zero_limit():
    """HJCFIT likelihood/tests/vectors.cc: ideal phi_A = (10/135, 125/135), phi_F =
    (10/135, 125/135, 0) at 0.1 uM.  The HJC start vector tends to it as t_res -> 0
    (the difference is O(t_res x rates): 1e-9 s x 2e4 s^-1)."""
    o = _hjc("open", 1e-9)
    f = _hjc("shut", 1e-9)
    np.testing.assert_allclose(o.start, [10 / 135, 125 / 135], atol=1e-4)
    np.testing.assert_allclose(f.start, [10 / 135, 125 / 135, 0.0], atol=1e-4)


# ------------------------------------------------------------------ SCALCS on the same Q

_Mec = ScalcsMechanism


@pytest.mark.parametrize("c", [0.01 * uM, 0.1 * uM, 1 * uM, 10 * uM])
@pytest.mark.parametrize("t_res", [25 * us, 50 * us, 100 * us])
def test_matches_scalcs(c, t_res):
    scl = pytest.importorskip("scalcs.scalcslib")
    qml = pytest.importorskip("scalcs.qmatlib")
    Q = CH82.q_matrix(agonist=c)
    m = _Mec(Q, 2)
    gaf, gfa = qml.iGs(Q, 2, 3)
    eaf = qml.eGs(gaf, gfa, 2, 3, qml.expQt(m.QFF, t_res))
    efa = qml.eGs(gfa, gaf, 3, 2, qml.expQt(m.QAA, t_res))
    for open_ in (True, False):
        d = _hjc("open" if open_ else "shut", t_res, c)
        if open_:
            args, G = (m.QAA, m.QFF, m.QAF, m.QFA, 2, 3), (gaf, gfa)
            phi = qml.phiHJC(eaf, efa, 2)
        else:
            args, G = (m.QFF, m.QAA, m.QFA, m.QAF, 3, 2), (gfa, gaf)
            phi = qml.phiHJC(efa, eaf, 3)
        roots = np.sort(scl.asymptotic_roots(t_res, *args))     # ascending = tau ascending
        areas = scl.asymptotic_areas(t_res, roots, *args, *G)
        np.testing.assert_allclose(d.roots, roots, rtol=1e-12, atol=1e-11)
        np.testing.assert_allclose(d.areas, areas, rtol=1e-9)
        np.testing.assert_allclose(d.start, phi, rtol=1e-10)
        mean = scl.exact_mean_time(t_res, args[0], args[1], args[2], 2 if open_ else 3,
                                   3 if open_ else 2, *G)
        assert d.mean == pytest.approx(float(mean), rel=1e-10)
        eig, g00, g10, g11 = scl.exact_GAMAxx(m, t_res, open_)
        ts = np.linspace(t_res, 3 * t_res, 41)
        ref = [qml.f0(t - t_res, eig, g00) if t < 2 * t_res else
               qml.f0(t - t_res, eig, g00) - qml.f1(t - 2 * t_res, eig, g10, g11) for t in ts]
        np.testing.assert_allclose(d.pdf(ts), ref, rtol=1e-10)
        np.testing.assert_allclose(d.exact_pdf(ts), ref, rtol=1e-10)
        assert d.exact_method == "spectral"
        # the independent block-matrix-exponential form (the fallback) gives the same
        np.testing.assert_allclose(d._exact_part._expm_eval(ts[::8] - t_res)[0], ref[::8],
                                   rtol=1e-10)
        # beyond 3 t_res: the asymptotic pdf, as scalcs' exact_pdf (scalar t) computes it
        tl = np.array([3.5, 10.0, 100.0]) * t_res
        want = [scl.exact_pdf(t, t_res, roots, areas, eig, g00, g10, g11) for t in tl]
        np.testing.assert_allclose(d.pdf(tl), want, rtol=1e-9)


# ------------------------------------------------------------------ internal consistency

@pytest.mark.parametrize("t_res", [25 * us, 50 * us, 100 * us])
@pytest.mark.parametrize("cls", ["open", "shut"])
def test_pdf_integrates_to_one_and_its_mean_is_the_exact_mean(cls, t_res):
    """With the default switch at 3 t_res the asymptotic form's own error sets the scale:
    |1 - integral| <= 1e-7 and the mean of the pdf within 1e-7 of the exact mean for CH82
    (observed <= 2e-8).  With 8 exact pieces the switch moves to 9 t_res and both agree
    to quadrature accuracy (1e-10)."""
    for n_exact, tol in ((2, 1e-7), (8, 1e-10)):
        d = _hjc(cls, t_res, exact_intervals=n_exact)
        total = _integrate(d.pdf, d)
        assert abs(total - 1) < tol, (n_exact, total)
        assert d.total == pytest.approx(total, abs=1e-12)
        mean = _integrate(d.pdf, d, weight=lambda t: t) / total
        assert mean == pytest.approx(d.mean, rel=tol), n_exact
        # the exact mean is not the ideal one: missed events lengthen both
        assert d.mean > 1.2 * d.ideal.mean


@pytest.mark.parametrize("t_res", [25 * us, 50 * us, 100 * us])
@pytest.mark.parametrize("cls", ["open", "shut"])
def test_exact_and_asymptotic_pieces_meet(cls, t_res):
    """At 3 t_res the asymptotic form is within 1e-4 of the exact pdf for CH82 (observed
    <= 2e-5, the shut times at 100 us); moving the switch out to 7 t_res, they agree to
    1e-8 there (the asymptotic form converges to the exact density as t grows [HJC92])."""
    d = _hjc(cls, t_res)
    te = d.exact_until
    assert te == pytest.approx(3 * t_res, rel=1e-15)
    assert d.exact_pdf(te) == pytest.approx(float(d.asymptotic_pdf(te)), rel=1e-4)
    d6 = _hjc(cls, t_res, exact_intervals=6)
    assert d6.exact_pdf(7 * t_res) == pytest.approx(float(d6.asymptotic_pdf(7 * t_res)),
                                                     rel=1e-8)
    # more pieces change nothing where both are exact
    t = np.linspace(t_res, 3 * t_res, 17)
    np.testing.assert_allclose(d6.pdf(t), d.pdf(t), rtol=1e-13)
    # survival and cdf are the integrals of the pdf (divided by total, which is 1 to 1e-7)
    assert d.survival(t_res) == 1.0 and d.cdf(t_res) == 0.0
    assert float(d.cdf(1e3)) == pytest.approx(1.0, abs=1e-15)
    for t0 in (1.5 * t_res, 2.5 * t_res, 5 * t_res):
        h = 1e-4 * t_res
        deriv = -(d.survival(t0 + h) - d.survival(t0 - h)) / (2 * h)
        assert deriv == pytest.approx(float(d.pdf(t0)) / d.total, rel=1e-6)
    # the pdf is 0 below t_res and the survival 1
    assert d.pdf(0.5 * t_res) == 0.0 and d.survival(0.5 * t_res) == 1.0


@pytest.mark.parametrize("cls", ["open", "shut"])
def test_t_res_to_zero_gives_the_ideal_distribution(cls):
    """As t_res -> 0 nothing is missed: roots -> the rates of dwell_times, areas and mean ->
    its areas and mean, the pdf -> its pdf.  The differences are O(t_res x rates); at
    t_res = 1 ns and rates up to 2e4 s^-1 they are below 2e-5 relative, 10 times less at
    0.1 ns."""
    ideal = th.dwell_times(CH82, cls, agonist=0.1 * uM)
    for t_res, tol in ((1e-9, 2e-5), (1e-10, 2e-6)):
        d = _hjc(cls, t_res)
        assert d.n_components == ideal.n_components
        np.testing.assert_allclose(d.taus, ideal.taus, rtol=tol)
        np.testing.assert_allclose(d.areas, ideal.areas, rtol=tol, atol=tol)
        assert d.mean == pytest.approx(ideal.mean, rel=tol)
        t = np.geomspace(1e-5, 1.0, 11)
        np.testing.assert_allclose(d.pdf(t), ideal.pdf(t), rtol=tol, atol=tol * ideal.pdf(0))
        np.testing.assert_allclose(d.ideal.taus, ideal.taus, rtol=1e-14)


def test_the_documented_ch82_figures():
    """The figures quoted in the docs: CH82 at 0.1 uM and 100 us, apparent slow open tau
    6.14 ms (ideal 2.00 ms); mean apparent opening 5.36 ms (ideal 1.88 ms)."""
    d = _hjc("open", 100 * us)
    assert d.taus[-1] == pytest.approx(6.1376e-3, rel=1e-4)
    assert d.ideal.taus[-1] == pytest.approx(2.0e-3, rel=2e-3)
    assert d.mean == pytest.approx(5.3616e-3, rel=1e-4)
    assert d.ideal.mean == pytest.approx(1.8765e-3, rel=1e-4)
    assert d.amplitudes == pytest.approx(d.areas / d.taus)


def test_a_raw_q_and_any_class_partition():
    """A raw Q with open= gives what the scheme gives; a class given by state names (the
    complement of the open states) is the shut class."""
    Q = CH82.q_matrix(agonist=0.1 * uM)
    a = th.apparent_dwell_times(Q, "shut", open=[0, 1], t_res=50 * us)
    b = th.apparent_dwell_times(CH82, ["AR", "A2R", "R"], t_res=50 * us, agonist=0.1 * uM)
    np.testing.assert_allclose(a.taus, b.taus, rtol=1e-14)
    assert a.mean == pytest.approx(b.mean, rel=1e-14)
    assert b.states == (2, 3, 4)


def test_a_mechanism_without_microscopic_reversibility():
    """A cyclic 4-state mechanism (flux O1 -> C1 -> C2 -> O1 not balanced): roots by the
    scanned search, and the same consistency as for CH82 (the pdf integrates to 1 and has the
    exact mean, to the asymptotic-form error, here < 1e-7)."""
    Q = np.array([[0, 500., 2000., 0.], [300., 0, 0, 100.], [200., 50., 0, 3000.],
                  [4000., 0, 10., 0]])
    np.fill_diagonal(Q, -Q.sum(axis=1))
    assert not th.is_reversible(Q)
    for cls in ("open", "shut"):
        d = th.apparent_dwell_times(Q, cls, open=[0, 1], t_res=100 * us)
        assert d.n_components == 2
        total = _integrate(d.pdf, d)
        assert abs(total - 1) < 1e-7
        assert _integrate(d.pdf, d, weight=lambda t: t) == pytest.approx(d.mean, rel=1e-7)
        assert np.all(d.pdf(np.geomspace(100 * us, 0.1, 50)) > 0)


def _four_state(delta=0.0):
    """O1 (open) with two shut neighbours C1, C2 of nearly equal rates and a slow C3: -Q has a
    5.3 s^-1 eigenvalue next to 0, so the spectral recursion divides by (5.3 x 1e-4)^m."""
    Q = np.zeros((4, 4))
    Q[0, 1], Q[1, 0] = 2000.0, 3000.0
    Q[0, 2], Q[2, 0] = 2000.0, 3000.0 * (1 + delta)
    Q[1, 3], Q[3, 1] = 1.0, 5.0
    np.fill_diagonal(Q, -Q.sum(axis=1))
    return Q


def test_the_two_exact_forms_agree_and_the_robust_one_takes_over():
    """The spectral closed form and the block-matrix-exponential form of the exact pieces agree
    to 1e-12 for CH82 (3 pieces).  For the 4-state scheme with 8 pieces the spectral form
    loses all accuracy (cancellation of (lambda_i - lambda_j)^-m terms): the check at
    construction picks the matrix exponentials, and the distribution is then right (the pdf
    integrates to 1 to 1e-12, as it must with the switch at 9 t_res, its mean is the exact
    mean, and it meets the asymptotic form at 9 t_res to 1e-9)."""
    d = _hjc("shut", 100 * us, exact_intervals=3)
    ex = d._exact_part
    u = np.linspace(0, 3 * d.t_res, 13)
    f_e, i_e = ex._expm_eval(u)
    np.testing.assert_allclose(ex._spectral_eval(u, False), f_e, rtol=1e-12)
    np.testing.assert_allclose(ex._spectral_eval(u, True), i_e, rtol=1e-12, atol=1e-15)
    Q = _four_state()
    for cls in ("open", "shut"):
        d = th.apparent_dwell_times(Q, cls, open=[0], t_res=100 * us, exact_intervals=8)
        assert d.exact_method == "expm"
        ex = d._exact_part
        u = np.linspace(0, 8 * d.t_res, 9)
        assert np.abs(ex._spectral_eval(u, False) - ex._expm_eval(u)[0]).max() > 1e-3 * \
            np.abs(ex._expm_eval(u)[0]).max()
        assert abs(d.total - 1) < 1e-12
        assert d.exact_pdf(d.exact_until) == pytest.approx(float(d.asymptotic_pdf(
            d.exact_until)), rel=1e-9)
        # Gauss-Legendre (20 nodes) on each exact piece, where the survival is analytic
        x, w = np.polynomial.legendre.leggauss(20)
        head = sum(float(np.sum(w * d.survival(d.t_res * (m + 1.5 + 0.5 * x)))) * d.t_res / 2
                   for m in range(8))
        mean = d.t_res + head \
            + float(np.sum(d.areas * d.taus * np.exp(-(d.exact_until - d.t_res) / d.taus)))
        assert mean == pytest.approx(d.mean, rel=1e-9)
        # the default (2 pieces) is spectral and agrees with it where both are exact
        d2 = th.apparent_dwell_times(Q, cls, open=[0], t_res=100 * us)
        assert d2.exact_method == "spectral"
        t = np.linspace(100 * us, 300 * us, 9)
        np.testing.assert_allclose(d2.pdf(t), d.pdf(t), rtol=1e-11)


def test_a_composed_blocker_scheme():
    """erreger2005_2a with trapping ketamine and Mg2+ (24 states, detailed balance only to
    2e-8, 23 shut states, eigenvalues of -Q as close as 6e-11 relative): 22 shut-time
    components (a near-double root merged), the scanned root search, and a distribution that
    integrates to 1 (to 1e-9, the asymptotic-form error at 3 t_res) with a positive pdf."""
    from ketacore.units import mM, mV
    # one-way escape (closed_route=None; the library ketamine balances it since the
    # closed_route option): the irreversible composition this test is about
    one_way = kc.blockers.get("ketamine").replace(closed_route=None)
    g = kc.block(kc.models.get("erreger2005_2a"), one_way, "mg")
    cond = dict(V=-70 * mV, glutamate=1 * mM, ketamine=1 * uM, mg=1 * mM)
    assert not th.is_reversible(g, **cond)
    d = th.apparent_dwell_times(g, "shut", t_res=20 * us, **cond)
    assert d.n_components == 22 and len(d.states) == 23
    assert abs(d.total - 1) < 1e-9
    assert np.all(d.pdf(np.geomspace(20 * us, 100.0, 60)) > 0)
    assert d.mean > d.ideal.mean


# ------------------------------------------------------------------ refusals

def test_t_res_refusals():
    for bad in (0, 0.0, -1e-5, math.nan, math.inf):
        with pytest.raises(ValueError, match="t_res must be a finite time resolution > 0"):
            _hjc("open", bad)
    with pytest.raises(ValueError, match=r"t_res=50 s is not a recording resolution.*"
                                         r"seconds.*50 \* ketacore.units.us"):
        _hjc("open", 50)
    with pytest.raises(ValueError, match="not a recording resolution"):
        _hjc("open", 1.0)
    for bad in ("50e-6", True, None, [50e-6]):
        with pytest.raises(TypeError, match="t_res must be a real number"):
            _hjc("open", bad)
    with pytest.raises(TypeError, match="t_res"):
        th.apparent_dwell_times(CH82, "open", agonist=0.1 * uM)    # t_res is required
    # a resolution far beyond every open time (t_res x fastest rate = 1900 > ln(1/eps)):
    # refused before any HJC work, with the largest t_res allowed (tests/test_leftovers_fit.py)
    with pytest.raises(ValueError, match=r"t_res=0.1 s is too long for this mechanism.*"
                                         r"t_res must be <= 0.001897 s"):
        _hjc("shut", 0.1)
    for bad in (0, 11, -1):
        with pytest.raises(ValueError, match="exact_intervals"):
            _hjc("open", 50 * us, exact_intervals=bad)
    with pytest.raises(TypeError, match="exact_intervals"):
        _hjc("open", 50 * us, exact_intervals=2.5)


def test_class_and_condition_refusals():
    Q = CH82.q_matrix(agonist=0.1 * uM)
    with pytest.raises(ValueError, match="there are no open states"):
        th.apparent_dwell_times(Q, "open", open=[], t_res=50 * us)
    with pytest.raises(ValueError, match="every state is open"):
        th.apparent_dwell_times(Q, "open", open=[0, 1, 2, 3, 4], t_res=50 * us)
    with pytest.raises(ValueError, match="open states unknown"):
        th.apparent_dwell_times(Q, "open", t_res=50 * us)
    with pytest.raises(ValueError, match="empty"):
        th.apparent_dwell_times(Q, [], open=[0, 1], t_res=50 * us)
    with pytest.raises(TypeError, match="conditions"):
        th.apparent_dwell_times(Q, "open", open=[0, 1], t_res=50 * us, agonist=1e-7)
    with pytest.raises(ValueError, match="unknown ligand"):
        th.apparent_dwell_times(CH82, "open", t_res=50 * us, glutamate=1e-7)
    with pytest.raises(ValueError, match="agonist=100.0 M exceeds"):
        th.apparent_dwell_times(CH82, "open", t_res=50 * us, agonist=100.0)
    # a scheme without open states (all conductances 0)
    shut_only = kc.Scheme(["C1", "C2"], [("C1", "C2", 10.0), ("C2", "C1", 5.0)], name="shut")
    with pytest.raises(ValueError, match="there are no open states"):
        th.apparent_dwell_times(shut_only, "open", t_res=50 * us)
    with pytest.raises(ValueError, match="there are no shut states|every state is shut"):
        th.apparent_dwell_times(shut_only, "shut", t_res=50 * us)
    # no agonist: R is absorbing, openings never happen at equilibrium
    with pytest.raises(ValueError, match="never entered"):
        th.apparent_dwell_times(CH82, "open", t_res=50 * us, agonist=0.0)


def test_exact_pdf_is_refused_beyond_its_range():
    d = _hjc("open", 50 * us)
    with pytest.raises(ValueError, match="exact_until"):
        d.exact_pdf(4 * 50 * us)
    with pytest.raises(ValueError, match="NaN"):
        d.pdf(math.nan)


# ------------------------------------------------------------------ analysis uses it

def test_log_histogram_expected_and_curve_take_the_hjc_distribution():
    d = _hjc("open", 50 * us)
    x = np.geomspace(50 * us, 0.05, 200)
    h = ka.log_histogram(x, t_res=50 * us, bins_per_decade=5)
    e = h.expected(d)
    np.testing.assert_allclose(e, h.n * np.diff(d.cdf(h.edges)), rtol=1e-14)
    assert e.sum() == pytest.approx(h.n * float(d.cdf(h.edges[-1])), rel=1e-12)
    t, y = h.curve(d, points=64)
    np.testing.assert_allclose(y, h.n * math.log(10) * t * d.pdf(t) / 5 / d.total, rtol=1e-14)
    # different from the truncated ideal mixture the histogram used to be offered
    assert not np.allclose(e, h.expected(d.ideal), rtol=0.05)
    # a histogram without a stated resolution takes the distribution's
    h0 = ka.log_histogram(x, bins_per_decade=5)
    np.testing.assert_allclose(h0.expected(d), e, rtol=1e-14)
    # ... but not durations that the distribution says cannot occur
    with pytest.raises(ValueError, match="3 durations below t_res=5e-05 s"):
        ka.log_histogram(np.r_[1e-5, 2e-5, 3e-5, x], bins_per_decade=5).expected(d)
    # the apparent distribution at another resolution is not this one truncated
    with pytest.raises(ValueError, match="computed for t_res=0.0001 s.*resolved at "
                                         "t_res=5e-05 s"):
        h.expected(_hjc("open", 100 * us))
    with pytest.raises(ValueError, match="t_res"):
        h.curve(_hjc("open", 25 * us))
    with pytest.raises(TypeError, match="ApparentDwellTimes, an ExponentialMixture or a "
                                        "MixtureFit"):
        h.expected([1e-3])


def test_plots_draw_the_hjc_distribution():
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    d = _hjc("open", 50 * us)
    rng = np.random.default_rng(3)
    x = 50 * us + rng.exponential(4e-3, 500)
    h = ka.log_histogram(x, t_res=50 * us)
    ax = h.plot(theory=d)
    assert any("missed events" in line.get_label() for line in ax.get_lines())
    fit = ka.fit_mixture(x, 1, t_res=50 * us)
    ax = fit.plot(theory=d)
    assert len(ax.get_lines()) == 2
    plt.close("all")


# ------------------------------------------------------------------ simulation

def _thinning(c, t_res, open_):
    """Every m-th interval, m the smallest with |lambda_2(eG_AF eG_FA)|**m < 1e-3: successive
    apparent intervals form a Markov renewal process with that embedded matrix [HJC90], so the
    kept ones are correlated below 1e-3 and the bin counts are multinomial to that order."""
    Q = CH82.q_matrix(agonist=c)
    p = th.equilibrium(Q)
    A = th._HJCClass(Q, p, OPEN, SHUT, t_res, True)
    F = th._HJCClass(Q, p, SHUT, OPEN, t_res, True)
    eaf = th._e_G(A.QAA, A.QAF, A.QFA, A.QFF, A.EF)
    efa = th._e_G(F.QAA, F.QAF, F.QFA, F.QFF, F.EF)
    lam = np.sort(np.abs(np.linalg.eigvals(eaf @ efa if open_ else efa @ eaf)))[::-1]
    lam2 = lam[1] if lam.size > 1 else 0.0
    return 1 if lam2 < 1e-12 else max(1, math.ceil(math.log(1e-3) / math.log(lam2)))


@pytest.mark.parametrize("t_res", [50 * us])
def test_resolved_simulation_follows_the_hjc_distributions(t_res):
    """CH82 at 1 uM (2 x 1000 s, seed 5), resolved at 50 us: chi-square of the apparent open
    and shut times over log bins (5 per decade, expected count > 5) against
    ``LogHistogram.expected(apparent_dwell_times(...))``, on intervals thinned to make them
    independent to 1e-3 (see _thinning): p > 1e-3 fails with probability 0.1 % per
    comparison for a correct implementation.  The mean apparent durations are compared with
    the exact means by batch means (50 contiguous batches): |z| < 3.5 fails with probability
    ~1e-3 (t with 49 d.o.f.).  The ideal pdf truncated at t_res fails the chi-square badly
    (p < 1e-12) for the openings."""
    c = 1 * uM
    rec = ka.Record.from_events(kc.simulate_events(CH82, kc.Step(1000 * s, agonist=c),
                                                   n_trials=2, rng=5)).resolve(t_res)
    for cls, x_all in (("open", rec.open_times()), ("shut", rec.shut_times())):
        d = _hjc(cls, t_res, c)
        m = _thinning(c, t_res, cls == "open")
        x = x_all[::m]
        assert x.size > 5000, (cls, x.size)
        h = ka.log_histogram(x, bins_per_decade=5, t_res=t_res, t_max=1e3)
        e = h.expected(d)
        keep = e > 5
        chi2 = float(np.sum((h.counts[keep] - e[keep]) ** 2 / e[keep]))
        assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-3, (cls, m, chi2, keep.sum())
        bm = np.array([b.mean() for b in np.array_split(x_all, 50)])
        z = (x_all.mean() - d.mean) / (bm.std(ddof=1) / math.sqrt(50))
        assert abs(z) < 3.5, (cls, x_all.mean(), d.mean, z)
        if cls == "open":
            ideal = h.expected(d.ideal)
            chi2_ideal = float(np.sum((h.counts[keep] - ideal[keep]) ** 2 / ideal[keep]))
            assert stats.chi2.sf(chi2_ideal, keep.sum() - 1) < 1e-12
