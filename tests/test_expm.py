"""C++ expm (Higham 2005 scaling and squaring) against scipy.linalg.expm."""
import numpy as np
import pytest
import scipy.linalg as sl

from ketacore import _core


def random_generator(rng, k, lo=-3, hi=9):
    """Random dense generator with rates log-uniform in [10^lo, 10^hi] s^-1."""
    Q = 10.0 ** rng.uniform(lo, hi, size=(k, k))
    Q *= rng.random((k, k)) < 0.6
    np.fill_diagonal(Q, 0.0)
    np.fill_diagonal(Q, -Q.sum(axis=1))
    return Q


@pytest.mark.parametrize("k", [1, 2, 3, 5, 6, 10, 17, 40])
def test_expm_random_dense_matches_scipy(k):
    rng = np.random.default_rng(k)
    for scale in (1e-3, 0.1, 1.0, 10.0, 300.0):
        A = rng.normal(size=(k, k)) * scale / np.sqrt(k)
        ref = sl.expm(A)
        got = _core.expm(A)
        np.testing.assert_allclose(got, ref, rtol=1e-11 * max(1, scale), atol=1e-13 * np.abs(ref).max())


@pytest.mark.parametrize("k", [2, 5, 8])
@pytest.mark.parametrize("dt", [1e-7, 1e-5, 1e-3, 1.0])
def test_expm_stiff_generators_vs_60_digit_oracle(k, dt):
    """Rates 1e-3..1e9 s^-1 against mpmath's 60-digit expm.

    The forward-error bound of scaling and squaring is about ||Q dt||_1 times the unit
    roundoff (Higham 2005, section 3), so the tolerance is 64 u max(1, ||Q dt||_1): it is
    1e-14 for mild matrices and loosens only where the problem itself is ill-conditioned.
    """
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 60
    rng = np.random.default_rng(100 + k)
    Q = random_generator(rng, k)
    A = Q * dt
    ref = np.array(mpmath.expm(mpmath.matrix(A.tolist()), method="pade").tolist(), dtype=float)
    tol = 64 * np.finfo(float).eps * max(1.0, np.abs(A).sum(axis=0).max())
    P = _core.expm(A, True)
    assert np.all(P >= 0)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=4 * np.finfo(float).eps * k)
    np.testing.assert_allclose(P, ref, rtol=0, atol=tol)
    P2 = _core.expm(A, False)  # the general-matrix path must also be within the bound
    np.testing.assert_allclose(P2, ref, rtol=0, atol=tol)


@pytest.mark.parametrize("k", [5, 16])
def test_expm_generator_matches_scipy_moderate(k):
    rng = np.random.default_rng(7 + k)
    Q = random_generator(rng, k, lo=-3, hi=4)
    for dt in (1e-4, 1e-2, 1.0):
        np.testing.assert_allclose(_core.expm(Q * dt, True), sl.expm(Q * dt), atol=1e-12)


def test_expm_two_state_closed_form():
    a, b, t = 3e8, 7.0, 2e-3
    Q = np.array([[-a, a], [b, -b]])
    P = _core.expm(Q * t, True)
    lam = a + b
    exact = np.array([[b + a * np.exp(-lam * t), a - a * np.exp(-lam * t)],
                      [b - b * np.exp(-lam * t), a + b * np.exp(-lam * t)]]) / lam
    tol = 64 * np.finfo(float).eps * (a + b) * t  # forward-error bound, see the oracle test
    np.testing.assert_allclose(P, exact, rtol=0, atol=tol)


def test_expm_rejects_bad_shape():
    with pytest.raises(ValueError):
        _core.expm(np.zeros((2, 3)))
