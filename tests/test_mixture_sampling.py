"""ExponentialMixture.sample with negative areas: exact rejection sampling.

A mixture with some negative areas (a rising phase, e.g. a first latency, or rounding noise
such as an area of -1e-10) is sampled by rejection from its positive part
``g(t) = sum_{a_i > 0} a_i / tau_i exp(-t / tau_i) >= f(t)`` (Devroye 1986, ch. II.3), with
the mass ``1 - total`` of "never happens" decided first; numerical inversion of the cdf
(bisection) is kept for complex time constants and acceptances ``total / sum(a_i > 0)``
below ``theory._REJECTION_MIN_ACCEPTANCE``.

Statistics (fixed seeds, so each test is deterministic; the failure probability stated is that
of a correct sampler with a fresh seed):

* KS tests use the exact one-sample KS distribution of independent draws from a continuous
  cdf, ``p > 1e-4``: failure probability 1e-4 per test.
* Counts of ``inf`` (never happens) are Binomial(n, 1 - total): exact two-sided binomial test,
  ``p > 1e-4``: failure probability 1e-4.
"""
import numpy as np
import pytest
from scipy import stats

import ketacore as kc
from ketacore import theory as th
from ketacore.units import ms

EM = th.ExponentialMixture
P_MIN = 1e-4


def acceptance(m):
    a = np.real(m.areas)
    return m.total / a[a > 0].sum()


def ks_conditional(x, m):
    """KS p-value of the finite draws against the cdf conditional on the event happening."""
    fin = x[np.isfinite(x)]
    return stats.kstest(fin, lambda t: m.cdf(t) / m.total).pvalue


@pytest.fixture
def no_inversion(monkeypatch):
    """Make every cdf evaluation and the bisection path fail: proves they are not used."""
    def boom(*_a, **_k):
        raise AssertionError("the cdf / bisection path was used")
    monkeypatch.setattr(EM, "cdf", boom)
    monkeypatch.setattr(EM, "survival", boom)
    monkeypatch.setattr(EM, "_sample_inversion", boom, raising=False)


def sample_by_rejection(m, n, rng):
    """m.sample(n, rng) with cdf, survival and bisection disabled (restored afterwards)."""
    with pytest.MonkeyPatch.context() as mp:
        def boom(*_a, **_k):
            raise AssertionError("the cdf / bisection path was used")
        for name in ("cdf", "survival", "_sample_inversion"):
            mp.setattr(EM, name, boom, raising=False)
        return m.sample(n, rng=rng)


# ---------------------------------------------------------------------------
# the four kinds of mixture
# ---------------------------------------------------------------------------


def test_rising_phase_latency():
    # pdf = 2/tau e^{-t/tau} - 2/tau e^{-2t/tau}: zero at t = 0, rises, then decays
    m = EM([1 * ms, 0.5 * ms], [2.0, -1.0])
    t = np.concatenate(([0.0], np.logspace(-9, -1, 2000)))
    assert m.pdf(0.0) == pytest.approx(0.0, abs=1e-9)
    assert np.all(m.pdf(t) >= -1e-9)
    assert m.total == 1.0 and acceptance(m) == 0.5
    assert float(m.pdf(1 * ms)) > float(m.pdf(0.1 * ms))          # a rising phase
    x = sample_by_rejection(m, 20000, 12)
    assert np.all(np.isfinite(x)) and np.all(x > 0)
    assert stats.kstest(x, m.cdf).pvalue > P_MIN


def test_tiny_negative_area_from_rounding():
    # an area of -1e-10 (rounding noise) used to send the whole mixture to bisection
    m = EM([0.3 * ms, 1 * ms, 10 * ms], [-1e-10, 0.3, 0.7 + 1e-10])
    assert m.pdf(0.0) > 0 and acceptance(m) > 1 - 1e-9
    x = sample_by_rejection(m, 20000, 34)
    assert np.all(np.isfinite(x))
    assert stats.kstest(x, m.cdf).pvalue > P_MIN


def test_defective_mixture_never_happens_fraction():
    # pdf = -0.1/tau1 e^{-t/tau1} + 0.25/tau1 e^{-t/(2 tau1)} > 0, total 0.4: acceptance 0.8
    m = EM([1 * ms, 2 * ms], [-0.1, 0.5])
    assert m.total == pytest.approx(0.4, rel=1e-15)
    assert acceptance(m) == pytest.approx(0.8, rel=1e-15)
    n = 40000
    x = sample_by_rejection(m, n, 56)
    n_inf = int(np.isinf(x).sum())
    assert stats.binomtest(n_inf, n, 1 - m.total).pvalue > P_MIN
    # given the count, the finite draws are independent with cdf F(t) / total
    assert ks_conditional(x, m) > P_MIN


def test_theory_latency_with_trap_and_rising_phase():
    # C1 -> C2 -> O, C2 -> D (absorbing): from C1 the channel opens with probability
    # k2 / (k2 + kd) = 0.75, after a hypoexponential (rising) latency
    k1, k2, kd, alpha = 100.0, 300.0, 100.0, 50.0
    Q = np.zeros((4, 4))
    Q[0, 1], Q[1, 2], Q[1, 3], Q[2, 1] = k1, k2, kd, alpha
    np.fill_diagonal(Q, -Q.sum(axis=1))
    lat = th.first_latency(Q, "open", initial=[1.0, 0, 0, 0], open=[2])
    assert np.any(lat.areas < 0)
    assert lat.total == pytest.approx(0.75, rel=1e-12)
    assert acceptance(lat) == pytest.approx(0.75 / (0.75 * 400 / 300), rel=1e-12)
    n = 40000
    x = sample_by_rejection(lat, n, 78)
    assert stats.binomtest(int(np.isinf(x).sum()), n, 0.25).pvalue > P_MIN
    assert ks_conditional(x, lat) > P_MIN


@pytest.mark.parametrize("name, conc", [("ch82", 1e-4), ("destexhe1994", 1e-5),
                                        ("erreger2005_2a", 1e-3)])
def test_bundled_model_latencies(name, conc):
    g = kc.models.get(name)
    lat = th.first_latency(g, **{g.ligands[0]: conc})
    assert np.any(lat.areas < 0) and not np.iscomplexobj(lat.taus)
    # these are among the lowest acceptances of the bundled models (0.30, 0.42, 0.67)
    assert acceptance(lat) >= th._REJECTION_MIN_ACCEPTANCE
    x = sample_by_rejection(lat, 20000, 90)
    assert stats.kstest(x, lat.cdf).pvalue > P_MIN


# ---------------------------------------------------------------------------
# path selection, speed (by counting, not timing), reproducibility
# ---------------------------------------------------------------------------


def test_million_draws_without_cdf_or_bisection():
    """1e6 draws of the CH82 latency (acceptance 0.30) with the cdf, survival and bisection
    disabled: the rejection path never evaluates the cdf, where the bisection evaluated it
    ~50 times per draw (n x k exponentials each)."""
    lat = th.first_latency(kc.models.get("ch82"), agonist=1e-4)
    x = sample_by_rejection(lat, 1_000_000, 2024)
    assert x.shape == (1_000_000,) and np.all(np.isfinite(x)) and np.all(x > 0)
    # mean: |z| < 4 with the theory SD (failure probability 6e-5, CLT)
    assert abs(x.mean() - lat.mean) < 4 * lat.sd / 1e3
    # at n = 1e6 the KS test at p = 1e-4 detects cdf deviations of ~2.2e-3
    assert stats.kstest(x, lat.cdf).pvalue > P_MIN


def test_reproducible_and_rng_consumed():
    m = EM([1 * ms, 2 * ms], [-0.1, 0.5])
    a = m.sample(5000, rng=7)
    b = m.sample(5000, rng=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, m.sample(5000, rng=8))
    gen = np.random.default_rng(3)
    c, d = m.sample(100, rng=gen), m.sample(100, rng=gen)   # a Generator is drawn from
    assert not np.array_equal(c, d)
    np.testing.assert_array_equal(c, m.sample(100, rng=np.random.default_rng(3)))


def test_low_acceptance_and_complex_use_inversion(monkeypatch):
    def boom(*_a, **_k):
        raise AssertionError("rejection used")
    monkeypatch.setattr(EM, "_sample_rejection", boom, raising=False)
    # C1 -> C2 with rates 100 and 101 /s: areas 101, -100, acceptance 1/101 < threshold
    m = EM([1 / 100, 1 / 101], [101.0, -100.0])
    assert acceptance(m) < th._REJECTION_MIN_ACCEPTANCE
    x = m.sample(5000, rng=1)
    assert stats.kstest(x, m.cdf).pvalue > P_MIN
    # complex conjugate time constants (a non-reversible mechanism)
    c = EM([1 / complex(200, 50), 1 / complex(200, -50), 1 / 20.0], [-0.05, -0.05, 1.1])
    x = c.sample(5000, rng=2)
    assert stats.kstest(x, c.cdf).pvalue > P_MIN


def test_non_negative_areas_unchanged_direct_path(no_inversion):
    # the direct path (all areas >= 0) draws exactly as before: component, then exponential
    m = EM([1 * ms, 10 * ms], [0.3, 0.5])
    rng = np.random.default_rng(5)
    comp = rng.choice(3, size=1000, p=[0.3, 0.5, 0.2])
    ref = np.full(1000, np.inf)
    fin = comp < 2
    ref[fin] = rng.exponential(np.array([1 * ms, 10 * ms])[comp[fin]])
    np.testing.assert_array_equal(m.sample(1000, rng=5), ref)


def test_zero_draws():
    assert EM([1 * ms, 0.5 * ms], [2.0, -1.0]).sample(0, rng=1).shape == (0,)
