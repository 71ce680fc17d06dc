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


@pytest.mark.parametrize("k", [2, 5, 8, 16])
@pytest.mark.parametrize("dt", [1e-7, 1e-5, 1e-3, 1.0])
def test_expm_stiff_generators(k, dt):
    """Rates 1e-3..1e9 s^-1: the transition matrix is stochastic and matches scipy."""
    rng = np.random.default_rng(100 + k)
    Q = random_generator(rng, k)
    ref = sl.expm(Q * dt)
    for generator in (False, True):
        P = _core.expm(Q * dt, generator)
        assert np.all(P >= -1e-12)
        np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-10)
        np.testing.assert_allclose(P, ref, atol=1e-10)


def test_expm_two_state_closed_form():
    a, b, t = 3e8, 7.0, 2e-3
    Q = np.array([[-a, a], [b, -b]])
    P = _core.expm(Q * t, True)
    lam = a + b
    exact = np.array([[b + a * np.exp(-lam * t), a - a * np.exp(-lam * t)],
                      [b - b * np.exp(-lam * t), a + b * np.exp(-lam * t)]]) / lam
    np.testing.assert_allclose(P, exact, rtol=1e-12, atol=1e-15)


def test_expm_rejects_bad_shape():
    with pytest.raises(ValueError):
        _core.expm(np.zeros((2, 3)))
