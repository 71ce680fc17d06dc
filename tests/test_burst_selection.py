"""Selection bias of ``Record.bursts(complete_only=True)`` on short sweeps.

A burst is complete only if it starts and ends inside its sweep.  When bursts start
uniformly in time (a stationary record cut into sweeps of length T), a burst of length L that
starts in a sweep is complete with probability ``(T - L)^+ / T``: the complete bursts have
length density ``(T - l)^+ f(l) / D``, ``D = int_0^T (T - u) f(u) du``, with ``f`` the
burst-length pdf of the theory (CH82).  For C <-> O <-> OB with the shut state C separating
bursts (``between``) this is exact: bursts and C dwells alternate as independent renewal
periods, a burst's length is independent of its start time, and a stationary renewal process
has exactly ``lambda x`` expected starts in any interval of length x.

Statistics (fixed seeds; the failure probability is that of a correct implementation with a
fresh seed): sweeps are independent trials, so per-sweep sums are i.i.d.; the mean length of
the complete bursts is the ratio estimator ``sum X_k / sum N_k`` (X_k, N_k: summed length and
number of complete bursts in sweep k) with its delta-method SE, and the count per sweep a
mean of i.i.d. counts.  ``|z| < 3.89``: failure probability 1e-4 per statistic (normal
approximation, > 40000 sweeps).
"""
import math

import numpy as np
import pytest
from scipy import integrate

import ketacore as kc
from ketacore import analysis as ka
from ketacore.units import ms, pS, uM

Z = 3.89            # two-sided normal quantile for failure probability 1e-4
BETA = 100.0        # C -> O (s^-1): mean gap between bursts 10 ms
B_CONC = 100 * uM   # k+B [B] = 1000 / s: mean burst length 3 ms


def ccob():
    return kc.Scheme(["C", "O", "OB"],
                     [("C", "O", BETA), ("O", "C", 500.0),
                      ("O", "OB", kc.rate(1e7, "blocker")), ("OB", "O", 2000.0)],
                     conductance={"O": 50 * pS}, name="ccob-selection")


def selected(mix, T):
    """Mean length and kept fraction D / T of bursts selected with probability (T - L)^+ / T.

    Closed form per component (x = T / tau): int_0^T l^j e^{-l/tau} / tau dl =
    1 - e^{-x}, tau (1 - e^{-x}(1 + x)), tau^2 (2 - e^{-x}(x^2 + 2x + 2)) for j = 0, 1, 2.
    """
    tau, a = np.real(mix.taus), np.real(mix.areas)
    x = T / tau
    e = np.exp(-x)
    i0 = 1 - e
    i1 = tau * (1 - e * (1 + x))
    i2 = tau ** 2 * (2 - e * (x * x + 2 * x + 2))
    d = float(np.sum(a * (T * i0 - i1)))
    n = float(np.sum(a * (T * i1 - i2)))
    return n / d, d / T


def test_selected_mean_closed_form():
    # against quadrature, and the large-T limit m - var / (T - m)
    b = kc.theory.bursts(kc.models.get("ch82"), within=["AR", "A2R"], agonist=1e-7)
    L, m = b.length, b.mean_length
    for k in (1, 2, 5, 20):
        T = k * m
        num = integrate.quad(lambda u: u * (T - u) * L.pdf(u), 0, T, limit=200,
                             epsabs=0, epsrel=1e-12)[0]
        den = integrate.quad(lambda u: (T - u) * L.pdf(u), 0, T, limit=200,
                             epsabs=0, epsrel=1e-12)[0]
        mean, kept = selected(L, T)
        assert mean == pytest.approx(num / den, rel=1e-9)
        assert kept == pytest.approx(den / T, rel=1e-9)
    mean, _ = selected(L, 1000 * m)
    assert mean == pytest.approx(m - L.sd ** 2 / (999 * m), rel=1e-9)
    # the figures quoted in the Record.bursts docstring (CH82, 0.1 uM)
    assert m == pytest.approx(7.33e-3, abs=5e-6) and L.sd / m == pytest.approx(1.29, abs=5e-3)
    got = [selected(L, k * m) for k in (2, 5, 10, 20)]
    assert [round(x / m, 2) for x, _ in got] == [0.32, 0.63, 0.82, 0.91]
    assert [round(f, 2) for _, f in got] == [0.61, 0.80, 0.90, 0.95]


@pytest.mark.parametrize("k_sweep, n_sweeps, seed", [(2, 60000, 1), (5, 40000, 2)])
def test_complete_only_follows_length_biased_theory(k_sweep, n_sweeps, seed):
    g = ccob()
    th = kc.theory.bursts(g, within=["OB"], blocker=B_CONC)
    m = th.mean_length
    assert m == pytest.approx(3 * ms, rel=1e-12)
    T = k_sweep * m
    # stationary sweeps: each trial starts from the equilibrium occupancies
    p_eq = kc.theory.equilibrium(g, blocker=B_CONC)
    log = kc.simulate_events(g, kc.Protocol([kc.Step(T, blocker=B_CONC)]), n_trials=n_sweeps,
                             rng=seed, initial=p_eq)
    rec = ka.Record.from_events(log, {"C": 2, "O": 1, "OB": 0})
    assert rec.n_sweeps == n_sweeps
    res = rec.bursts(between=2)                     # complete_only=True (the default)
    assert res.complete.all() and res.n_bursts > 15000

    X = np.bincount(res.sweep, res.length, minlength=n_sweeps)
    N = np.bincount(res.sweep, minlength=n_sweeps).astype(float)
    R = X.sum() / N.sum()
    se = float((X - R * N).std(ddof=1) / (math.sqrt(n_sweeps) * N.mean()))
    mean_sel, kept = selected(th.length, T)

    # 1. the complete bursts' mean length is the length-biased theory's
    assert abs(R - mean_sel) < Z * se, (R, mean_sel, se)
    # 2. ... and far below the theory's mean length: the bias, in SEs and relative
    assert (m - R) / se > 20
    rel_bias = mean_sel / m - 1
    assert rel_bias == pytest.approx({2: -0.5552, 5: -0.2635}[k_sweep], abs=5e-4)
    # 3. complete bursts per sweep: lambda D, with lambda = 1 / (mean burst + mean gap) the
    #    stationary rate of burst starts (exact for a stationary renewal process)
    lam = 1.0 / (m + 1.0 / BETA)
    se_n = float(N.std(ddof=1) / math.sqrt(n_sweeps))
    assert abs(N.mean() - lam * kept * T) < Z * se_n, (N.mean(), lam * kept * T, se_n)
    # 4. bursts that start in the sweep (C -> O transitions, complete or cut at the end):
    #    lambda T per sweep; they include the complete ones
    cls = rec.cls
    j = np.flatnonzero((cls[1:] == 1) & (cls[:-1] == 2)) + 1
    j = j[~np.isin(j, rec.offsets)]                  # the pair must lie in one sweep
    n_started = np.bincount(np.searchsorted(rec.offsets, j, side="right") - 1,
                            minlength=n_sweeps).astype(float)
    assert np.all(n_started >= N)
    se_s = float(n_started.std(ddof=1) / math.sqrt(n_sweeps))
    assert abs(n_started.mean() - lam * T) < Z * se_s, (n_started.mean(), lam * T, se_s)
