"""Protocol conditions other than ligands: Step(temperature=...) and voltage steps acting through
Q10 and voltage-dependent rates, in kc.solve and kc.simulate.

Oracle: the generator is written out here from the rate law (CODATA F and R, not the library's
rate code), and propagated with scipy.linalg.expm over the pieces of each step between grid
points.  Stochastic tests compare per-sample totals with exact binomial laws (fixed seeds,
Bonferroni over cells, failure probability stated in each test).
"""
import math

import numpy as np
import pytest
import scipy.linalg as sl
from scipy import stats

import ketacore as kc

F = 96485.33212      # C/mol (CODATA 2018, exact since the 2019 SI)
R = 8.314462618      # J/(mol K)
T_SCHEME = 295.15    # the scheme's own temperature (K), used by steps without temperature=

# Rate laws, one per transition: (src, dst, k0, q10, t_ref, z_delta, vk).  Every transition has a
# different Q10, t_ref or voltage law, so a temperature or voltage applied to the wrong rate, or
# not at all, changes the occupancies by tens of per cent.
LAWS = [
    ("C", "O", 200.0, 3.0, 295.15, 0.5, None),
    ("O", "C", 100.0, 1.0, 295.15, 0.0, -0.03),
    ("O", "I", 50.0, 2.2, 295.15, 0.0, None),
    ("I", "O", 8.0, 1.0, 295.15, -0.3, 0.05),
    ("I", "C", 20.0, 1.5, 300.0, 0.0, None),
]
STATES = ["C", "O", "I"]


def scheme():
    return kc.Scheme(STATES, [(s, d, kc.rate(k0, q10=q10, t_ref=tr, z_delta=zd, vk=vk))
                              for s, d, k0, q10, tr, zd, vk in LAWS],
                     conductance={"O": 10e-12}, e_rev=0.0, temperature=T_SCHEME, name="conditions")


def q_exact(V, T):
    """Generator written out from the rate law
    k = k0 * exp(z_delta F V / (R T)) * exp(V / vk) * q10**((T - t_ref)/10)   (v0 = 0)."""
    Q = np.zeros((3, 3))
    for s, d, k0, q10, tr, zd, vk in LAWS:
        e = zd * F * V / (R * T) + (V / vk if vk is not None else 0.0)
        Q[STATES.index(s), STATES.index(d)] = k0 * math.exp(e) * q10 ** ((T - tr) / 10.0)
    np.fill_diagonal(Q, -Q.sum(axis=1))
    return Q


def reference(steps, dt, p0):
    """Occupancy at k*dt, k = 0..floor(T/dt): products of expm(Q tau) over the pieces of the
    steps between consecutive grid points.  steps: (duration, V, temperature or None)."""
    T_end = sum(d for d, _, _ in steps)
    n = int(math.floor(T_end / dt + 1e-7)) + 1
    out = np.empty((n, 3))
    out[0] = p = np.asarray(p0, float)
    t, k, start = 0.0, 1, 0.0
    for d, V, T in steps:
        Q = q_exact(V, T_SCHEME if T is None else T)
        end = start + d
        while k < n and k * dt <= end + 1e-9 * dt:
            p = p @ sl.expm(Q * (k * dt - t))
            t = k * dt
            out[k] = p
            k += 1
        if end - t > 1e-9 * dt:
            p = p @ sl.expm(Q * (end - t))
            t = end
        start = end
    return out


def protocol(steps):
    return kc.Protocol([kc.Step(d, V=V, temperature=T) for d, V, T in steps])


# Temperature steps (one back to the scheme's default via temperature=None) at fixed voltage;
# boundaries between grid points (dt = 1 ms).
TEMP_STEPS = [(0.0123, -0.07, None), (0.0211, -0.07, 305.15), (0.0157, -0.07, 288.15),
              (0.0189, -0.07, 310.0), (0.03, -0.07, None)]
# Voltage steps at fixed temperature, through both voltage laws (z_delta and vk), then voltage
# and temperature together (z_delta F V / (R T) depends on both).
VOLT_STEPS = [(0.0123, -0.08, None), (0.0211, 0.02, None), (0.0157, -0.03, None),
              (0.0189, 0.04, 305.15), (0.03, -0.06, 288.15)]


def test_q_matrix_follows_temperature_and_voltage():
    sch = scheme()
    for V, T in [(-0.07, None), (-0.07, 305.15), (0.02, 288.15), (0.04, 310.0), (-0.08, 295.15)]:
        np.testing.assert_allclose(sch.q_matrix(V=V, temperature=T), q_exact(V, T_SCHEME if T is None else T),
                                   rtol=1e-13, atol=0)


@pytest.mark.parametrize("steps", [TEMP_STEPS, VOLT_STEPS], ids=["temperature", "voltage"])
@pytest.mark.parametrize("dt", [1e-3, 7e-3])
def test_solve_follows_condition_steps(steps, dt):
    """kc.solve over temperature / voltage steps equals the expm products of the generator under
    each step's conditions (the solution is exact: tolerance 1e-12 on probabilities)."""
    sch = scheme()
    r = kc.solve(sch, protocol(steps), dt=dt, initial="C")
    ref = reference(steps, dt, [1.0, 0.0, 0.0])
    assert r.occupancy.shape == ref.shape
    np.testing.assert_allclose(r.occupancy, ref, rtol=0, atol=1e-12)
    # the conditions matter: ignoring the steps (scheme temperature, first voltage) is far off
    flat = reference([(d, steps[0][1], None) for d, _, _ in steps], dt, [1.0, 0.0, 0.0])
    assert np.abs(flat - ref).max() > 0.05


def test_solve_equilibrium_start_uses_first_step_temperature():
    """initial=None is the equilibrium under the first step's conditions, temperature included."""
    sch = scheme()
    steps = [(0.01, 0.02, 310.0), (0.01, -0.07, 288.15)]
    r = kc.solve(sch, protocol(steps), dt=1e-3)
    Q = q_exact(0.02, 310.0)
    w = sl.null_space(Q.T)[:, 0]
    w = w / w.sum()
    np.testing.assert_allclose(r.occupancy[0], w, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(r.occupancy, reference(steps, 1e-3, w), rtol=0, atol=1e-12)


def binomial_pvalues(total, n, p):
    """Exact two-sided p-values (2 * min tail, capped at 1) of totals ~ Binomial(n, p)."""
    p = np.clip(p, 0.0, 1.0)
    lo = stats.binom.cdf(total, n, p)
    hi = stats.binom.sf(total - 1, n, p)
    return np.minimum(1.0, 2 * np.minimum(lo, hi))


@pytest.mark.parametrize("method", ["ssa", "population"])
def test_simulate_follows_voltage_and_temperature_steps(method):
    """Channels are independent and start in C, so the total count in state j at sample k over
    N channels x n trials is exactly Binomial(N n, p_j(t_k)), p from the expm oracle, through
    voltage steps, temperature steps and both at once.  Exact two-sided binomial test of every
    (sample, state) cell with Bonferroni over the cells: a correct engine fails with probability
    < 1e-4.  (With N n = 40000, ignoring the steps shifts p by > 0.05, i.e. > 10 standard
    deviations.)"""
    steps = [(0.0123, -0.07, None), (0.0211, 0.02, None), (0.0157, 0.02, 305.15),
             (0.0189, -0.05, 288.15), (0.03, -0.05, None)]
    dt = 2e-3
    sch = scheme()
    N, n = 800, 50
    res = kc.simulate(sch, protocol(steps), dt=dt, n_channels=N, n_trials=n, method=method, rng=2024,
                      record="summary", initial="C")
    ref = reference(steps, dt, [1.0, 0.0, 0.0])
    assert res.sum_counts.shape == ref.shape
    assert (res.sum_counts.sum(axis=1) == N * n).all()
    pv = binomial_pvalues(res.sum_counts, N * n, ref)
    assert pv.min() > 1e-4 / pv.size, (pv.min(), np.unravel_index(pv.argmin(), pv.shape))
    # the voltage of each sample (and so the current) follows the steps
    np.testing.assert_array_equal(res.V, protocol(steps).voltage_at(res.time, dt))
    flat = reference([(d, -0.07, None) for d, _, _ in steps], dt, [1.0, 0.0, 0.0])
    assert np.abs(flat - ref).max() > 0.05
