"""Regression tests for review findings on ketacore.analysis: log_histogram binning at the
edges and its range checks, fit_mixture's floating-point warnings, and noise_analysis on a
stationary (constant-mean) record."""
import math
import warnings

import numpy as np
import pytest
from scipy import optimize, stats

from ketacore import analysis as ka


# ---------------------------------------------------------------------------- log_histogram

def _reference_counts(d, edges, closed_top):
    """np.histogram counts with bins [lower, upper) throughout (np.histogram closes the last
    bin); ``closed_top``: the documented default-t_max rule, the top edge counted too."""
    ref, _ = np.histogram(d, bins=edges)
    if not closed_top:
        ref[-1] -= int(np.sum(d == edges[-1]))
    return ref


def _edge_probes(edges):
    return np.concatenate([edges, np.nextafter(edges, 0.0), np.nextafter(edges, np.inf)])


@pytest.mark.parametrize("bpd", [3, 7.3, 10, 20, 50])
def test_log_histogram_matches_np_histogram_on_and_around_edges(bpd):
    """Every duration is binned [lower, upper) against the returned edges exactly: the
    float log10 put e.g. edges[3] of bpd=10 (1.9953e-5 s) into bin 2."""
    rng = np.random.default_rng(7)
    h0 = ka.log_histogram([1e-5, 1.0], bins_per_decade=bpd, t_min=1e-5, t_max=1.0)
    d = np.concatenate([10 ** rng.uniform(-5.5, 0.5, 20000), _edge_probes(h0.edges)])
    d = d[d > 0]
    h = ka.log_histogram(d, bins_per_decade=bpd, t_min=1e-5, t_max=1.0)
    np.testing.assert_array_equal(h.edges, h0.edges)
    np.testing.assert_array_equal(h.counts, _reference_counts(d, h.edges, closed_top=False))
    assert h.n == d.size
    # each edge value alone is in the bin it opens
    for j, e in enumerate(h.edges[:-1]):
        one = ka.log_histogram([e], bins_per_decade=bpd, t_min=1e-5, t_max=1.0)
        assert one.counts[j] == 1 and one.counts.sum() == 1, (j, e)
        below = ka.log_histogram([np.nextafter(e, 0.0)], bins_per_decade=bpd, t_min=1e-5,
                                 t_max=1.0)
        assert below.counts.sum() == (1 if j > 0 else 0)
        if j > 0:
            assert below.counts[j - 1] == 1, (j, e)


@pytest.mark.parametrize("bpd", [10, 20])
def test_log_histogram_default_range_matches_np_histogram(bpd):
    """Default t_min / t_max: np.histogram's closed last bin is the documented top-bin rule."""
    rng = np.random.default_rng(8)
    edges = ka.log_histogram([1e-5, 1.0], bins_per_decade=bpd).edges
    d = np.concatenate([10 ** rng.uniform(-5, 0, 5000), _edge_probes(edges)])
    d = d[(d >= 1e-5) & (d <= 1.0)]
    h = ka.log_histogram(d, bins_per_decade=bpd)
    np.testing.assert_array_equal(h.counts, _reference_counts(d, h.edges, closed_top=True))
    assert h.counts.sum() == d.size


def test_log_histogram_reported_cases():
    h = ka.log_histogram([1e-5, 1.0], bins_per_decade=10, t_min=1e-5, t_max=1.0)
    e3 = h.edges[3]
    assert ka.log_histogram([e3], bins_per_decade=10, t_min=1e-5, t_max=1.0).counts[3] == 1
    h20 = ka.log_histogram([1e-5, 1.0], bins_per_decade=20, t_min=1e-5, t_max=1.0)
    for j, e in enumerate(h20.edges[:-1]):
        assert ka.log_histogram([e], bins_per_decade=20, t_min=1e-5, t_max=1.0).counts[j] == 1
    x = 0.9999999999999999e-2
    for bpd in (1, 2, 3, 5, 10, 20):
        h = ka.log_histogram([x], bins_per_decade=bpd, t_min=1e-5, t_max=1.0)
        j = int(np.flatnonzero(h.counts)[0])
        assert h.edges[j] <= x < h.edges[j + 1], (bpd, h.edges[j], h.edges[j + 1])


def test_log_histogram_range_must_be_nonempty():
    with pytest.raises(ValueError, match="t_max must exceed t_min.*durations range from"):
        ka.log_histogram([1e-4, 1e-3], t_max=1e-5)       # was: one bin, count 1
    with pytest.raises(ValueError, match="t_max must exceed t_min"):
        ka.log_histogram([1e-4, 1e-3], t_min=1.0)        # was: one empty bin
    with pytest.raises(ValueError, match="t_max must exceed t_min"):
        ka.log_histogram([1e-4, 1e-3], t_min=1e-3, t_max=1e-3)
    with pytest.raises(ValueError, match="t_max must exceed t_min"):
        ka.log_histogram([1e-4, 1e-3], t_res=2e-3)       # t_res above every duration
    # all durations equal with default range: one bin holding them (documented)
    h = ka.log_histogram([2e-3, 2e-3])
    assert h.counts.tolist() == [2] and h.edges[0] == 2e-3


def test_log_histogram_out_of_range_durations():
    """With t_min / t_max given, durations outside [edges[0], edges[-1]) are in no bin but
    are counted in n; the top edge is the first edge >= t_max, so [t_max, edges[-1]) is in
    the last bin."""
    h = ka.log_histogram([1e-3, 2e-3], bins_per_decade=10, t_min=1e-3, t_max=0.05)
    top = h.edges[-1]
    assert top >= 0.05 and h.edges[-2] < 0.05
    d = [5e-4, 9.99e-4, 1e-3, 0.01, 0.05, np.nextafter(top, 0.0), top, 0.06, 3.0]
    h = ka.log_histogram(d, bins_per_decade=10, t_min=1e-3, t_max=0.05)
    assert h.n == len(d)
    assert h.counts.sum() == 4                           # 1e-3, 0.01, 0.05, just below top
    assert h.counts[0] == 1 and h.counts[-1] == 2
    assert h.n - h.counts.sum() == 5                     # 5e-4, 9.99e-4, top, 0.06, 3.0
    # the largest duration on the top edge is counted only with the default t_max
    assert ka.log_histogram([1e-3, top], bins_per_decade=10, t_min=1e-3).counts.sum() == 2


# ---------------------------------------------------------------------------- fit_mixture

def _two_exp_data(seed=0, n=15000, taus=(1e-4, 5e-3), areas=(0.5, 0.5), t_res=50e-6):
    rng = np.random.default_rng(seed)
    taus = np.asarray(taus)
    c = rng.choice(2, size=4 * n, p=np.asarray(areas))
    x = rng.exponential(taus[c])
    return x[x >= t_res][:n]


def _independent_ml(t, t_res, x0):
    """Direct maximum likelihood of the truncated two-exponential pdf (Nelder-Mead in
    log taus and the logit of the first area)."""
    def nll(x):
        tau = np.exp(x[:2])
        a1 = 1.0 / (1.0 + math.exp(-x[2]))
        a = np.array([a1, 1.0 - a1])
        f = (a / tau * np.exp(-t[:, None] / tau)).sum(axis=1)
        return -(np.sum(np.log(f)) - t.size * math.log(np.sum(a * np.exp(-t_res / tau))))
    r = optimize.minimize(nll, x0, method="Nelder-Mead",
                          options={"xatol": 1e-10, "fatol": 1e-9, "maxiter": 20000,
                                   "maxfev": 40000})
    tau = np.exp(r.x[:2])
    a1 = 1.0 / (1.0 + math.exp(-r.x[2]))
    order = np.argsort(tau)
    return tau[order], np.array([a1, 1.0 - a1])[order], -r.fun


@pytest.mark.parametrize("seed, a1", [(0, 0.5), (0, 0.8)])
def test_fit_mixture_emits_no_runtime_warning(seed, a1):
    """Overflowing trial steps of the line search printed RuntimeWarnings (overflow in exp,
    invalid value in multiply, overflow in square) although the fit was right."""
    t_res = 50e-6
    t = _two_exp_data(seed, areas=(a1, 1 - a1), t_res=t_res)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fit = ka.fit_mixture(t, 2, t_res=t_res)
    assert fit.converged
    tau_ref, a_ref, ll_ref = _independent_ml(
        t, t_res, np.array([math.log(2e-4), math.log(3e-3), 0.0]))
    np.testing.assert_allclose(fit.taus, tau_ref, rtol=1e-4)
    np.testing.assert_allclose(fit.areas, a_ref, atol=1e-4)
    assert fit.loglik == pytest.approx(ll_ref, abs=1e-5)
    assert fit.loglik >= ll_ref - 1e-6
    # and the truth within the standard errors (|z| < 4.9: 1e-6 two-sided each)
    assert np.all(np.abs(fit.taus - [1e-4, 5e-3]) < 4.9 * fit.se_taus), (fit.taus, fit.se_taus)
    assert np.all(np.abs(fit.areas - [a1, 1 - a1]) < 4.9 * fit.se_areas)


# ---------------------------------------------------------------------------- noise_analysis

def test_noise_analysis_refuses_a_stationary_current():
    """Constant open probability: the mean differs between samples by noise only; the fit
    gave i = +2.75 pA (true -2) and N = inf instead of raising."""
    rng = np.random.default_rng(0)
    cur = rng.binomial(100, 0.3, (50, 20)) * -2.0       # pA
    with pytest.raises(ValueError, match="does not vary significantly"):
        ka.noise_analysis(cur)
    with pytest.raises(ValueError, match="does not vary significantly"):
        ka.noise_analysis(cur * 1e-12, baseline=True)   # in A, with a baseline


def test_noise_analysis_constant_mean_false_acceptance_rate():
    """The test is chi^2 at level 1e-3: 300 stationary records (independent samples) pass it
    about 0.3 times; P(>= 5 pass) = 2e-4."""
    rng = np.random.default_rng(1)
    passed = 0
    for _ in range(300):
        cur = rng.binomial(100, 0.3, (50, 20)) * -2.0
        try:
            with warnings.catch_warnings():  # a false acceptance's parabola is usually flat
                warnings.simplefilter("ignore", RuntimeWarning)  # (N = inf: warned about)
                ka.noise_analysis(cur)
            passed += 1
        except ValueError:
            pass
    assert passed < 5
    assert stats.binom.sf(4, 300, 1e-3) < 3e-4


def test_noise_analysis_relaxation_still_fitted():
    """The documented use, a relaxation after a step, passes the new test and recovers i."""
    rng = np.random.default_rng(2)
    t = np.arange(20) * 1e-3
    p = 0.7 * np.exp(-t / 5e-3)
    cur = rng.binomial(100, p, (50, 20)) * -2.0         # pA
    na = ka.noise_analysis(cur, time=t)
    assert abs(na.i - -2.0) < 4.9 * na.se_i, (na.i, na.se_i)
    assert math.isfinite(na.N)
