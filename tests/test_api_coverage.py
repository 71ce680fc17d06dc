"""Coverage of public features the fast selection never exercised (audit list), grouped by module.

Every assertion compares with an independent oracle: a closed form, ``scipy.linalg.expm`` /
``scipy.linalg.null_space`` on a generator built here by hand, a pure-Python re-derivation, or
synthetic inputs whose answer is known by construction.  Stochastic assertions state their
failure probability for a correct implementation (fixed seeds, so a run is reproducible; the
probability is that of a fresh seed failing).

``test_noise_analysis_baseline_in_amperes`` found a bug (the unscaled least squares dropped the
I^2 column for currents in A, giving N = inf); it is fixed and the test is a plain test now.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import warnings

import numpy as np
import pytest
import scipy.linalg

import ketacore as kc
from ketacore import analysis as ka
from ketacore import theory
from ketacore.blockers import Blocker

# ============================================================================ shared oracles


def null_equilibrium(Q):
    """Equilibrium p (p Q = 0, sum 1) from the null space of Q^T (independent of GTH)."""
    ns = scipy.linalg.null_space(np.asarray(Q, float).T)
    assert ns.shape[1] == 1
    p = ns[:, 0] / ns[:, 0].sum()
    return p


def propagate(p0, Q, dt, n):
    """p(k dt), k = 0..n-1, by repeated multiplication with expm(Q dt)."""
    P = scipy.linalg.expm(np.asarray(Q, float) * dt)
    out = np.empty((n, p0.size))
    p = np.asarray(p0, float)
    for k in range(n):
        out[k] = p
        p = p @ P
    return out


# --- a two-state gating scheme and a trapping blocker whose composed Q is written by hand
K_OPEN = 1e4       # C -> O, /M/s x [glutamate]   (10 /s at 1 mM)
K_CLOSE = 10.0     # O -> C, /s
G_OPEN = 50e-12    # S
B_KON, B_KOFF = 1e6, 2.0          # open-channel block, /M/s and /s
B_KON_CLOSED, B_ESCAPE = 1e4, 0.05  # closed route onto C and escape from C·b


def co_gating():
    return kc.Scheme(["C", "O"], [("C", "O", kc.rate(K_OPEN, "glutamate")), ("O", "C", K_CLOSE)],
                     conductance={"O": G_OPEN}, name="co")


def co_blocker():
    return Blocker("b", "drug", B_KON, B_KOFF, k_escape=B_ESCAPE, k_on_closed=B_KON_CLOSED)


CO_STATES = ("C", "O", "C·b", "O·b")
CO_G = np.array([0.0, G_OPEN, 0.0, 0.0])
CO_BLOCKED = np.array([False, False, True, True])


def co_q(glu=0.0, drug=0.0):
    """Generator of co + b (trapping, closed route, escape) in CO_STATES order, by hand."""
    i = {s: k for k, s in enumerate(CO_STATES)}
    Q = np.zeros((4, 4))
    for a, b, r in (("C", "O", K_OPEN * glu), ("O", "C", K_CLOSE),
                    ("C·b", "O·b", K_OPEN * glu), ("O·b", "C·b", K_CLOSE),
                    ("O", "O·b", B_KON * drug), ("O·b", "O", B_KOFF),
                    ("C", "C·b", B_KON_CLOSED * drug), ("C·b", "C", B_ESCAPE)):
        Q[i[a], i[b]] = r
    np.fill_diagonal(Q, -Q.sum(axis=1))
    return Q


def test_co_composition_matches_hand_q():
    """Precondition of the experiment oracles below: the composed scheme is the one written
    by hand (state order and every rate)."""
    s = kc.block(co_gating(), co_blocker())
    assert s.states == CO_STATES
    for glu, drug in ((0.0, 0.0), (1e-3, 0.0), (1e-3, 2e-6), (0.0, 3e-6)):
        np.testing.assert_allclose(s.q_matrix(V=-0.07, glutamate=glu, drug=drug), co_q(glu, drug),
                                   rtol=1e-14, atol=0)


# ============================================================================ scheme


# exact SI (2019) definitions: F = e N_A, R = N_A k_B
F_CODATA = 1.602176634e-19 * 6.02214076e23
R_CODATA = 6.02214076e23 * 1.380649e-23


def rate_closed_form(k0, conc=1.0, factor=1.0, z_delta=0.0, vk=None, v0=0.0, q10=1.0,
                     t_ref=295.15, V=-0.07, T=295.15):
    e = z_delta * F_CODATA * (V - v0) / (R_CODATA * T)
    if vk is not None:
        e += (V - v0) / vk
    return k0 * factor * conc * math.exp(e) * q10 ** ((T - t_ref) / 10.0)


def full_scheme():
    """Three states, every rate-law factor used somewhere; temperature 300 K."""
    tr = [("A", "B", kc.Rate(2e6, "glu", factor=2.0)),
          ("B", "A", kc.Rate(150.0, z_delta=0.8, v0=-0.01)),
          ("B", "O", kc.Rate(40.0, vk=0.025, v0=0.005, q10=2.5, t_ref=296.0)),
          ("O", "B", kc.Rate(90.0, q10=3.0, t_ref=290.0)),
          ("O", "A", kc.Rate(3e5, "blk", z_delta=-0.5))]
    return kc.Scheme(["A", "B", "O"], tr, conductance={"O": 30e-12}, temperature=300.0,
                     name="full")


def full_q(V, T, glu, blk):
    """Q of full_scheme from the closed-form rate law (CODATA F and R)."""
    r = {("A", "B"): rate_closed_form(2e6, glu, factor=2.0, V=V, T=T),
         ("B", "A"): rate_closed_form(150.0, z_delta=0.8, v0=-0.01, V=V, T=T),
         ("B", "O"): rate_closed_form(40.0, vk=0.025, v0=0.005, q10=2.5, t_ref=296.0, V=V, T=T),
         ("O", "B"): rate_closed_form(90.0, q10=3.0, t_ref=290.0, V=V, T=T),
         ("O", "A"): rate_closed_form(3e5, blk, z_delta=-0.5, V=V, T=T)}
    idx = {"A": 0, "B": 1, "O": 2}
    Q = np.zeros((3, 3))
    for (a, b), k in r.items():
        Q[idx[a], idx[b]] = k
    np.fill_diagonal(Q, -Q.sum(axis=1))
    return Q, [r[(t.src, t.dst)] for t in full_scheme().transitions]


@pytest.mark.parametrize("V, T, glu, blk", [(-0.07, None, 1e-6, 0.0), (0.03, 310.0, 5e-5, 2e-6),
                                              (-0.12, 285.0, 0.0, 1e-3)])
def test_scheme_rates_match_closed_form_rate_law(V, T, glu, blk):
    s = full_scheme()
    r = s.rates(V=V, temperature=T, glu=glu, blk=blk)
    _, want = full_q(V, 300.0 if T is None else T, glu, blk)
    assert r.shape == (len(s.transitions),)
    np.testing.assert_allclose(r, want, rtol=1e-9, atol=0)


def test_rate_and_scheme_is_voltage_dependent():
    """The property says whether the rate changes with V: check it against evaluating the
    closed form at two voltages, for every kind of factor."""
    cases = {"constant": kc.Rate(5.0), "ligand": kc.Rate(1e6, "x", factor=3.0),
             "q10 only": kc.Rate(5.0, q10=3.0, t_ref=290.0),
             "v0 only": kc.Rate(5.0, v0=0.02),
             "woodhull": kc.Rate(5.0, z_delta=0.3), "exponential": kc.Rate(5.0, vk=0.02),
             "both": kc.Rate(5.0, z_delta=-0.2, vk=-0.05, v0=0.01)}
    for name, r in cases.items():
        fields = dict(k0=r.k0, conc=1.0, factor=r.factor, z_delta=r.z_delta, vk=r.vk, v0=r.v0,
                      q10=r.q10, t_ref=r.t_ref)
        changes = rate_closed_form(V=-0.09, **fields) != rate_closed_form(V=0.04, **fields)
        assert r.is_voltage_dependent is changes, name
        assert isinstance(r.is_voltage_dependent, bool)
    # schemes: voltage dependent iff some transition's rate changes with V
    for s in (kc.models.get("ch82"), kc.models.get("erreger2005_2a"), full_scheme(),
              kc.block(co_gating(), co_blocker()),
              kc.block(kc.models.get("destexhe1994_sf"), "ketamine")):
        lig = {name: 1e-6 for name in s.ligands}
        changes = np.any(s.rates(V=-0.09, **lig) != s.rates(V=0.04, **lig))
        assert s.is_voltage_dependent is bool(changes), s.name
    assert not kc.models.get("ch82").is_voltage_dependent
    assert kc.block(kc.models.get("destexhe1994_sf"), "ketamine").is_voltage_dependent


# ============================================================================ protocol


def test_protocol_ligands_sorted_union_of_steps():
    p = kc.Protocol([kc.Step(0.1, zinc=1e-6), kc.Step(0.2, glutamate=1e-3, ketamine=1e-6),
                     kc.Step(0.1), kc.Step(0.3, glutamate=1e-4, ampa=1e-6)])
    assert p.ligands == ("ampa", "glutamate", "ketamine", "zinc")
    assert kc.Protocol([kc.Step(1.0, V=-0.05)]).ligands == ()
    assert (p + kc.Step(1.0, mg=1e-3)).ligands == ("ampa", "glutamate", "ketamine", "mg", "zinc")


def test_from_waveform_scalar_values_hold_throughout():
    times = [0.0, 0.1, 0.25]
    p = kc.Protocol.from_waveform(times, 0.4, V=-0.05, glutamate=1e-6, drug=[0.0, 2e-6, 0.0])
    assert len(p) == 3
    np.testing.assert_allclose([st.duration for st in p], [0.1, 0.15, 0.15], rtol=1e-15)
    assert all(st.V == -0.05 for st in p)
    assert all(st.concentrations["glutamate"] == 1e-6 for st in p)
    assert [st.concentrations.get("drug", 0.0) for st in p] == [0.0, 2e-6, 0.0]
    assert p.duration == pytest.approx(0.4, rel=1e-15)
    # all-scalar waveform: one condition throughout; solve = expm oracle of that condition
    s = kc.block(co_gating(), co_blocker())
    pw = kc.Protocol.from_waveform([0.0, 0.05, 0.12], 0.2, V=-0.05, glutamate=1e-3, drug=1e-6)
    assert {st.conditions_key() for st in pw} == {kc.Step(1.0, V=-0.05, glutamate=1e-3,
                                                          drug=1e-6).conditions_key()}
    r = kc.solve(s, pw, dt=0.01, initial="C")
    want = propagate(np.eye(4)[0], co_q(1e-3, 1e-6), 0.01, 21)
    np.testing.assert_allclose(r.occupancy, want, rtol=0, atol=1e-12)
    # the piecewise waveform: segment by segment
    r2 = kc.solve(s, kc.Protocol.from_waveform([0.0, 0.1], 0.3, glutamate=1e-3,
                                               drug=[0.0, 3e-6]), dt=0.05, initial="C")
    a = propagate(np.eye(4)[0], co_q(1e-3, 0.0), 0.05, 3)
    b = propagate(a[-1], co_q(1e-3, 3e-6), 0.05, 5)
    np.testing.assert_allclose(r2.occupancy, np.vstack([a, b[1:]]), rtol=0, atol=1e-12)


# ============================================================================ solve


@pytest.mark.parametrize("T", [None, 310.0])
def test_solve_initial_step_is_equilibrium_under_that_step(T):
    s = full_scheme()
    init = kc.Step(5.0, V=0.02, temperature=T, glu=3e-5, blk=1e-6)
    prot = kc.Protocol([kc.Step(0.004, V=-0.08, glu=1e-6), kc.Step(0.006, V=-0.03, blk=5e-6)])
    r = kc.solve(s, prot, dt=0.001, initial=init)
    T_eff = 300.0 if T is None else T
    p0 = null_equilibrium(full_q(0.02, T_eff, 3e-5, 1e-6)[0])
    np.testing.assert_allclose(r.occupancy[0], p0, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(r.initial, theory.equilibrium(s, V=0.02, temperature=T, glu=3e-5,
                                                             blk=1e-6), rtol=1e-12, atol=0)
    # the rest of the trajectory from that start (scheme temperature during the protocol)
    a = propagate(p0, full_q(-0.08, 300.0, 1e-6, 0.0)[0], 0.001, 5)
    b = propagate(a[-1], full_q(-0.03, 300.0, 0.0, 5e-6)[0], 0.001, 7)
    np.testing.assert_allclose(r.occupancy, np.vstack([a, b[1:]]), rtol=0, atol=1e-11)


# ============================================================================ theory


def test_relaxation_popen_equilibrium_and_rates():
    s = kc.models.get("ch82")
    c = 1e-7
    Q = s.q_matrix(agonist=c)
    rel = theory.relaxation(s, initial={"agonist": 1e-5}, agonist=c)
    p = null_equilibrium(Q)
    assert rel.popen_equilibrium == pytest.approx(p[s.open_mask].sum(), rel=1e-10)
    # Po(t) approaches it; rates are the non-zero eigenvalues of -Q
    assert rel.open_probability(1e4) == pytest.approx(rel.popen_equilibrium, rel=1e-10)
    lam = np.sort(-np.linalg.eigvals(Q).real)[1:]        # drop the zero eigenvalue
    np.testing.assert_allclose(np.sort(rel.rates), lam, rtol=1e-9)
    assert np.all(np.diff(rel.rates) < 0)                 # taus ascending -> rates descending
    # raw Q: with open= the same Po; without open states it is None (documented Optional)
    raw = theory.relaxation(Q, initial=0, open=[0, 1])
    assert raw.popen_equilibrium == pytest.approx(p[:2].sum(), rel=1e-10)
    assert theory.relaxation(Q, initial=0).popen_equilibrium is None


def test_relaxation_two_state_closed_form():
    a, b = 30.0, 70.0
    Q = np.array([[-a, a], [b, -b]])
    rel = theory.relaxation(Q, initial=0, open=[1])
    np.testing.assert_allclose(rel.rates, [a + b], rtol=1e-13)
    assert rel.popen_equilibrium == pytest.approx(a / (a + b), rel=1e-13)


def test_exponential_mixture_rates():
    m = theory.ExponentialMixture([2e-3, 0.5], [0.3, 0.7])
    np.testing.assert_allclose(m.rates, [500.0, 2.0], rtol=1e-15)
    # open times of ch82: rates are the eigenvalues of -Q_AA
    s = kc.models.get("ch82")
    Q = s.q_matrix(agonist=1e-7)
    A = np.flatnonzero(s.open_mask)
    want = np.sort(np.linalg.eigvals(-Q[np.ix_(A, A)]).real)
    got = theory.dwell_times(s, "open", agonist=1e-7).rates
    np.testing.assert_allclose(np.sort(got), want, rtol=1e-10)


# ============================================================================ analysis: Record


def merge_dwells(times, states, classes, t_end):
    """Pure-Python dwell sequence: (start, duration, class), consecutive equal classes merged."""
    out = []
    for t, s in zip(times, states):
        c = int(classes[s])
        if out and out[-1][2] == c:
            continue
        if out:
            out[-1][1] = t - out[-1][0]
        out.append([float(t), None, c])
    out[-1][1] = t_end - out[-1][0]
    return [tuple(x) for x in out if x[1] > 0]


def periods_oracle(sweeps, in_set, include_first, include_last):
    """Runs of dwells in a class set; sweeps is a list of dwell lists. -> (dur, start, sweep)."""
    d, s, w = [], [], []
    for k, dw in enumerate(sweeps):
        runs, cur = [], None
        for j, (st, du, c) in enumerate(dw):
            if in_set(c):
                if cur is None:
                    cur = [st, 0.0, j == 0, False]      # start, duration, first, last
                cur[1] += du
                cur[3] = j == len(dw) - 1
            elif cur is not None:
                runs.append(cur)
                cur = None
        if cur is not None:
            runs.append(cur)
        for st, du, is_first, is_last in runs:
            if (is_first and not include_first) or (is_last and not include_last):
                continue
            d.append(du)
            s.append(st)
            w.append(k)
    return np.array(d), np.array(s), np.array(w, dtype=np.int64)


def two_sweep_record():
    times = [np.array([0.0, 1.0, 1.5, 3.0, 3.2, 4.0]), np.array([0.0, 0.5, 2.0])]
    states = [np.array([0, 1, 2, 0, 1, 0]), np.array([1, 0, 1])]
    return ka.Record.from_states(times, states, [5.0, 2.5], classes=[0, 1, 2],
                                 levels=[0.0, 2.0, 1.0]), times, states


def test_record_n_sweeps_and_sweep_index():
    rec, times, states = two_sweep_record()
    assert rec.n_sweeps == 2
    want = [merge_dwells(t, s, [0, 1, 2], te) for t, s, te in zip(times, states, [5.0, 2.5])]
    np.testing.assert_array_equal(rec.sweep, np.repeat([0, 1], [len(w) for w in want]))
    assert rec.sweep.size == rec.n_dwells == sum(len(w) for w in want)
    empty_second = ka.Record([0.0], [1.0], [0], [0, 1, 1], [0.0, 1.0])
    assert empty_second.n_sweeps == 2
    np.testing.assert_array_equal(empty_second.sweep, [0])


def test_record_periods_return_start_hand_example():
    rec, _, _ = two_sweep_record()
    d, s, w = rec.periods("open", return_start=True)
    np.testing.assert_allclose(d, [2.0, 0.8], rtol=1e-15)   # open1 + sublevel merged
    np.testing.assert_allclose(s, [1.0, 3.2], rtol=1e-15)
    np.testing.assert_array_equal(w, [0, 0])
    d, s, w = rec.periods("shut", return_start=True)
    np.testing.assert_allclose(d, [0.2, 1.5], rtol=1e-14)
    np.testing.assert_allclose(s, [3.0, 0.5], rtol=1e-15)
    np.testing.assert_array_equal(w, [0, 1])
    d, s, w = rec.periods("open", include_first=True, include_last=True, return_start=True)
    np.testing.assert_allclose(d, [2.0, 0.8, 0.5, 0.5], rtol=1e-14)
    np.testing.assert_allclose(s, [1.0, 3.2, 0.0, 2.0], rtol=1e-15)
    np.testing.assert_array_equal(w, [0, 0, 1, 1])
    # without return_start: just the durations
    np.testing.assert_array_equal(rec.periods("open"), rec.periods("open", return_start=True)[0])


@pytest.mark.parametrize("which", ["open", "shut", 2, [0, 2]])
def test_record_periods_return_start_random_records(which):
    rng = np.random.default_rng(11)
    classes = np.array([0, 0, 1, 2, 1])
    levels = np.array([0.0, 3.0, 1.5])
    times, states, ends = [], [], []
    for _ in range(4):
        n = int(rng.integers(3, 40))
        t = np.concatenate(([0.0], np.cumsum(rng.exponential(1.0, n - 1))))
        times.append(t)
        states.append(rng.integers(0, 5, n))
        ends.append(float(t[-1] + rng.exponential(1.0)))
    rec = ka.Record.from_states(times, states, ends, classes, levels=levels)
    sweeps = [merge_dwells(t, s, classes, te) for t, s, te in zip(times, states, ends)]
    sel = {"open": lambda c: levels[c] != 0, "shut": lambda c: levels[c] == 0,
           2: lambda c: c == 2}.get(which if not isinstance(which, list) else None,
                                    lambda c: c in which)
    for first in (False, True):
        for last in (False, True):
            d, s, w = rec.periods(which, include_first=first, include_last=last,
                                  return_start=True)
            dd, ss, ww = periods_oracle(sweeps, sel, first, last)
            np.testing.assert_allclose(d, dd, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(s, ss, rtol=1e-14, atol=0)
            np.testing.assert_array_equal(w, ww)


def test_record_from_levels_decimals_merges_measured_levels():
    times = [0.0, 1.0, 2.0, 3.0, 4.0, 4.5, 6.0]
    amps = [0.0, -2.0001, 0.0, -1.9999, -1.9998, -1.0, 0.0]
    raw = ka.Record.from_levels(times, amps, 7.0)
    assert raw.n_classes == 5                      # 0 and four distinct measured amplitudes
    rec = ka.Record.from_levels(times, amps, 7.0, decimals=2)
    np.testing.assert_array_equal(rec.levels, [0.0, -2.0, -1.0])  # by decreasing |amplitude|
    # -1.9999 and -1.9998 both round to -2.0: one merged dwell from 3.0 to 4.5
    np.testing.assert_array_equal(rec.cls, [0, 1, 0, 1, 2, 0])
    np.testing.assert_allclose(rec.start, [0.0, 1.0, 2.0, 3.0, 4.5, 6.0], rtol=1e-15)
    np.testing.assert_allclose(rec.duration, [1.0, 1.0, 1.0, 1.5, 1.5, 1.0], rtol=1e-15)
    np.testing.assert_allclose(rec.open_times(), [1.0, 3.0], rtol=1e-15)
    # enough decimals keep the measurements distinct
    assert ka.Record.from_levels(times, amps, 7.0, decimals=5).n_classes == 5
    with pytest.raises((TypeError, ValueError)):
        ka.Record.from_levels(times, amps, 7.0, decimals=1.5)


def test_record_from_dwells_t_start():
    d = [0.1, 0.2, 0.3, 0.4, 0.05]
    a = [0.0, 2e-12, 2e-12, 0.0, 1e-12]
    rec = ka.Record.from_dwells(d, a, t_start=5.0)
    np.testing.assert_allclose(rec.start, [5.0, 5.1, 5.6, 6.0], rtol=1e-15)
    np.testing.assert_allclose(rec.duration, [0.1, 0.5, 0.4, 0.05], rtol=1e-14)
    np.testing.assert_array_equal(rec.cls, [0, 1, 0, 2])
    assert rec.n_sweeps == 1
    # t_start shifts the clock only: same durations and classes as from 0, and first latency
    # from t0 = t_start is the first shut dwell
    rec0 = ka.Record.from_dwells(d, a)
    np.testing.assert_allclose(rec.start - rec0.start, 5.0, rtol=1e-14)
    np.testing.assert_array_equal(rec.duration, rec0.duration)
    np.testing.assert_allclose(rec.first_latency(t0=5.0), [0.1], rtol=1e-12)
    with pytest.raises(ValueError):
        ka.Record.from_dwells(d, a, t_start=float("nan"))


def test_record_from_events_levels_and_trials():
    s = kc.models.get("ch82")
    log = kc.simulate_events(s, kc.Step(0.3, agonist=1e-6), n_trials=5, rng=2024)
    cls_of_state = (s.conductance > 0).astype(int)           # both open states 50 pS: class 1
    rec = ka.Record.from_events(log, levels=[0.0, 7.5], trials=[3, 0])
    assert rec.n_sweeps == 2
    np.testing.assert_array_equal(rec.levels, [0.0, 7.5])
    for k, i in enumerate([3, 0]):
        want = merge_dwells(log.times[i], log.states[i], cls_of_state, log.t_end)
        sl = slice(rec.offsets[k], rec.offsets[k + 1])
        np.testing.assert_allclose(rec.start[sl], [w[0] for w in want], rtol=0, atol=0)
        np.testing.assert_allclose(rec.duration[sl], [w[1] for w in want], rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(rec.cls[sl], [w[2] for w in want])
        np.testing.assert_array_equal(rec.amplitude[sl], 7.5 * np.array([w[2] for w in want]))
    # levels with a class map: the two open states as separate classes
    m = {"AR*": 1, "A2R*": 2, "AR": 0, "A2R": 0, "R": 0}
    rec2 = ka.Record.from_events(log, m, levels=[0.0, 4e-11, 5e-11], trials=[1])
    np.testing.assert_array_equal(rec2.levels, [0.0, 4e-11, 5e-11])
    want = merge_dwells(log.times[1], log.states[1], [m[x] for x in s.states], log.t_end)
    np.testing.assert_array_equal(rec2.cls, [w[2] for w in want])
    with pytest.raises(ValueError):
        ka.Record.from_events(log, levels=[0.0, 1.0, 2.0])       # 2 classes, 3 levels
    with pytest.raises(ValueError):
        ka.Record.from_events(log, trials=[5])                   # out of range


# ============================================================================ analysis: fits


def mixture_nll(t, taus, areas, t_res):
    """Negative log-likelihood of durations under the mixture truncated at t_res (numpy)."""
    taus = np.asarray(taus, float)
    areas = np.asarray(areas, float)
    f = (areas / taus * np.exp(-t[:, None] / taus)).sum(axis=1)
    S = float(np.sum(areas * np.exp(-t_res / taus)))
    return -(np.log(f).sum() - t.size * math.log(S))


def independent_mle2(t, t_res, start):
    from scipy.optimize import minimize

    def nll(x):
        a1 = 1.0 / (1.0 + math.exp(-x[2]))
        return mixture_nll(t, np.exp(x[:2]), [a1, 1 - a1], t_res)
    x0 = [math.log(start[0]), math.log(start[1]), 0.0]
    r = minimize(nll, x0, method="Nelder-Mead",
                 options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000, "maxfev": 40000})
    a1 = 1.0 / (1.0 + math.exp(-r.x[2]))
    taus = np.exp(r.x[:2])
    o = np.argsort(taus)
    return taus[o], np.array([a1, 1 - a1])[o], -r.fun


@pytest.mark.parametrize("t_res", [0.0, 2e-4])
def test_mixture_fit_mean_single_exponential_closed_form(t_res):
    """k = 1: the MLE of a (truncated) exponential is mean(t) - t_res, so fit.mean equals it."""
    rng = np.random.default_rng(5)
    t = t_res + rng.exponential(3e-3, 300)
    fit = ka.fit_mixture(t, 1, t_res=t_res)
    assert fit.mean == pytest.approx(t.mean() - t_res, rel=1e-6)
    assert fit.mean == pytest.approx(float(np.sum(fit.areas * fit.taus)), rel=1e-15)


def test_mixture_fit_mean_two_components():
    rng = np.random.default_rng(6)
    comp = rng.random(600) < 0.35
    t = np.where(comp, rng.exponential(1e-3, 600), rng.exponential(2e-2, 600))
    fit = ka.fit_mixture(t, 2)
    taus, areas, ll = independent_mle2(t, 0.0, (1e-3, 2e-2))
    # the fit is the maximum (independent optimiser cannot beat it) and its loglik is right
    assert ll <= fit.loglik + 1e-6
    assert fit.loglik == pytest.approx(-mixture_nll(t, fit.taus, fit.areas, 0.0), rel=1e-10)
    np.testing.assert_allclose(fit.taus, taus, rtol=1e-4)
    assert fit.mean == pytest.approx(float(np.sum(areas * taus)), rel=1e-4)


class _MinimizeSpy:
    def __init__(self, monkeypatch):
        import scipy.optimize
        self.x0 = []
        orig = scipy.optimize.minimize

        def spy(fun, x0, *a, **kw):
            self.x0.append(np.array(x0, float))
            return orig(fun, x0, *a, **kw)
        monkeypatch.setattr(scipy.optimize, "minimize", spy)


def _two_exp_data(n=500, seed=8, t_res=0.0):
    rng = np.random.default_rng(seed)
    comp = rng.random(n) < 0.4
    t = np.where(comp, rng.exponential(5e-4, n), rng.exponential(1e-2, n)) + t_res
    return t


@pytest.mark.parametrize("t_res", [0.0, 1e-4])
def test_fit_mixture_starting_guess_branch(monkeypatch, t_res):
    t = _two_exp_data(t_res=t_res)
    spy = _MinimizeSpy(monkeypatch)
    fit = ka.fit_mixture(t, taus=[1e-3, 5e-3], areas=[2.0, 6.0], t_res=t_res, n_starts=7)
    # one optimisation (n_starts ignored when taus is given), started at the guess: the
    # optimiser works in log tau (in some time unit: compare ratios) and softmax area logits
    assert len(spy.x0) == 1
    x0 = spy.x0[0]
    assert math.exp(x0[1] - x0[0]) == pytest.approx(5.0, rel=1e-12)
    z = np.append(x0[2:], 0.0)
    np.testing.assert_allclose(np.exp(z) / np.exp(z).sum(), [0.25, 0.75], rtol=1e-12)
    assert fit.taus.size == 2                          # n_components from len(taus)
    taus, areas, ll = independent_mle2(t, t_res, (5e-4, 1e-2))
    assert ll <= fit.loglik + 1e-6
    np.testing.assert_allclose(fit.taus, taus, rtol=1e-4)
    np.testing.assert_allclose(fit.areas, areas, rtol=1e-4, atol=1e-6)
    # areas are normalised: [2, 6] and [0.25, 0.75] are the same start
    same = ka.fit_mixture(t, taus=[1e-3, 5e-3], areas=[0.25, 0.75], t_res=t_res)
    np.testing.assert_array_equal(same.taus, fit.taus)
    np.testing.assert_array_equal(same.areas, fit.areas)


def test_fit_mixture_n_starts(monkeypatch):
    t = _two_exp_data()
    for n in (1, 3, 6):
        spy = _MinimizeSpy(monkeypatch)
        fit = ka.fit_mixture(t, 2, n_starts=n)
        assert len(spy.x0) == n
        assert len({tuple(x) for x in spy.x0}) == n     # distinct starting points
        taus, _, ll = independent_mle2(t, 0.0, (5e-4, 1e-2))
        assert ll <= fit.loglik + 1e-6
        np.testing.assert_allclose(fit.taus, taus, rtol=1e-4)
        monkeypatch.undo()
    # areas= without taus: used for every start
    spy = _MinimizeSpy(monkeypatch)
    ka.fit_mixture(t, 2, areas=[1.0, 3.0], n_starts=2)
    for x in spy.x0:
        np.testing.assert_allclose(x[2], math.log(1.0 / 3.0), rtol=1e-12)
    monkeypatch.undo()
    for bad in (dict(n_starts=0), dict(taus=[1e-3], n_components=2),
                dict(taus=[1e-3, 1e-2], areas=[1.0]), dict(taus=[1e-3, -1e-2]),
                dict(areas=[1.0, 0.0])):
        kw = {"n_components": 2, **bad} if "taus" not in bad else bad
        with pytest.raises(ValueError):
            ka.fit_mixture(t, **kw)


# ============================================================================ analysis: noise

NZ_I, NZ_N, NZ_VB = -2e-12, 50.0, 1e-24      # A, channels, A^2


def exact_noise_data(n_tr=12, ns=30, i=NZ_I, N=NZ_N, vb=NZ_VB):
    """Trials whose ensemble mean and (ddof=1) variance are exactly I(t) and the parabola."""
    z = np.arange(n_tr) - (n_tr - 1) / 2
    z = z / z.std(ddof=1)
    z = np.roll(z, 5)                                   # trials not sorted by value
    po = np.linspace(0.0, 0.8, ns)
    cur = N * i * po
    var = i * cur - cur ** 2 / N + vb
    return cur[None, :] + np.sqrt(var)[None, :] * z[:, None]


def parabola_lstsq(mean, var, baseline):
    """Re-derivation of the least-squares parabola with columns scaled to unit norm."""
    cols = [mean, -mean ** 2] + ([np.ones_like(mean)] if baseline else [])
    X = np.stack(cols, axis=1)
    sc = np.linalg.norm(X, axis=0)
    coef = np.linalg.lstsq(X / sc, var, rcond=None)[0] / sc
    return coef[0], 1.0 / coef[1], (coef[2] if baseline else 0.0)


def jackknife(cur, G, baseline):
    labels = np.arange(cur.shape[0]) % G
    est = np.array([parabola_lstsq(cur[labels != g].mean(0), cur[labels != g].var(0, ddof=1),
                                   baseline) for g in range(G)])
    return np.sqrt((G - 1) / G * ((est - est.mean(0)) ** 2).sum(0))


def test_noise_analysis_baseline_recovers_background_variance():
    """In pA (well-scaled numbers) the baseline fit recovers i, N and the background exactly;
    without baseline the same data give a biased N."""
    cur = exact_noise_data() * 1e12                      # pA
    r = ka.noise_analysis(cur, baseline=True)
    assert r.i == pytest.approx(NZ_I * 1e12, rel=1e-9)
    assert r.N == pytest.approx(NZ_N, rel=1e-9)
    assert r.var_baseline == pytest.approx(NZ_VB * 1e24, rel=1e-7)
    assert math.isfinite(r.se_var_baseline) and r.se_var_baseline > 0
    r0 = ka.noise_analysis(cur, baseline=False)
    assert r0.var_baseline == 0.0 and r0.se_var_baseline == 0.0
    i0, N0, _ = parabola_lstsq(r0.mean, r0.var, False)   # the plain fit, biased by the background
    assert r0.i == pytest.approx(i0, rel=1e-9) and r0.N == pytest.approx(N0, rel=1e-9)
    assert abs(r0.N - NZ_N) > 1e-2 * NZ_N
    np.testing.assert_allclose(r.parabola(r.mean), r.var, rtol=1e-9)


def test_noise_analysis_baseline_in_amperes():
    """Currents in A (SI, as documented): the columns [I, -I^2, 1] span ~22 orders of magnitude;
    the fit must still recover i and N exactly (it returned N = inf before the columns were
    scaled)."""
    cur = exact_noise_data()                             # A, as documented
    r = ka.noise_analysis(cur, baseline=True)
    assert r.i == pytest.approx(NZ_I, rel=1e-6)
    assert r.N == pytest.approx(NZ_N, rel=1e-6)
    assert r.var_baseline == pytest.approx(NZ_VB, rel=1e-5)


@pytest.mark.parametrize("baseline", [False, True])
@pytest.mark.parametrize("n_groups", [2, 4, 5, 12, 50])
def test_noise_analysis_n_groups_jackknife(baseline, n_groups):
    rng = np.random.default_rng(3)
    cur = exact_noise_data(vb=NZ_VB if baseline else 0.0) * 1e12
    cur = cur + rng.normal(0, 0.05, cur.shape)           # make groups differ
    r = ka.noise_analysis(cur, baseline=baseline, n_groups=n_groups)
    G = min(n_groups, cur.shape[0])                      # at most the number of trials
    se = jackknife(cur, G, baseline)
    assert r.se_i == pytest.approx(se[0], rel=1e-6)
    assert r.se_N == pytest.approx(se[1], rel=1e-6)
    if baseline:
        assert r.se_var_baseline == pytest.approx(se[2], rel=1e-6)
    # the point estimates are the full-data fit
    i, N, vb = parabola_lstsq(cur.mean(0), cur.var(0, ddof=1), baseline)
    assert r.i == pytest.approx(i, rel=1e-9) and r.N == pytest.approx(N, rel=1e-9)


def test_noise_analysis_n_groups_invalid():
    cur = exact_noise_data() * 1e12
    with pytest.raises(ValueError):
        ka.noise_analysis(cur, n_groups=1)


# ============================================================================ experiments

EXP = kc.experiments


class _SimulateSpy:
    """Records the ``method`` of every ketacore.simulate call made by an experiment."""

    def __init__(self, monkeypatch):
        mod = sys.modules["ketacore.simulate"]
        orig = mod.simulate
        self.methods = []

        def spy(*a, **kw):
            self.methods.append(kw.get("method", "auto"))
            return orig(*a, **kw)
        monkeypatch.setattr(mod, "simulate", spy)


GLU = 1e-3


def _engine_calls():
    g, b = co_gating(), co_blocker()
    st = dict(method="stochastic", n_channels=40, n_trials=2, rng=7)
    return {
        "ic50": lambda **kw: EXP.ic50(g, b, [1e-7, 1e-6, 1e-5], duration=0.1, **kw),
        "woodhull": lambda **kw: EXP.woodhull(g, b, [-0.08, -0.04],
                                              concentrations=[1e-7, 1e-6, 1e-5],
                                              duration=0.1, **kw),
        # (large relaxation so that a noisy 400-channel trace is never flat)
        "block_kinetics": lambda **kw: EXP.block_kinetics(
            g, b, 1e-5, t_on=1.0, t_off=2.0, n_samples=120,    # (dt resolves 36 ms)
            **({**kw, "n_channels": 400} if "n_channels" in kw else kw)),
        "trapping": lambda **kw: EXP.trapping(g, b, 1e-6, t_block=0.2, t_wash=0.2,
                                              t_recovery=0.2, peak_window=0.05, **kw),
        "use_dependence": lambda **kw: EXP.use_dependence(g, b, 1e-6, [0.0, 10.0],
                                                          duration=0.3, washout=0.2,
                                                          n_samples=10, **kw),
        "iv_curve": lambda **kw: EXP.iv_curve(g, b, 1e-6, [-0.08, -0.04], **kw),
        "voltage_jump": lambda **kw: EXP.voltage_jump(
            g, b, 1e-5, -0.08, 0.04, **({**kw, "n_channels": 400} if "n_channels" in kw else kw)),
    }, st


@pytest.mark.parametrize("fn", ["ic50", "woodhull", "block_kinetics", "trapping",
                                "use_dependence", "iv_curve", "voltage_jump"])
@pytest.mark.filterwarnings("ignore:trapping. tau_recovery.*extrapolated:UserWarning")  # (0.2 s recovery)
@pytest.mark.filterwarnings("ignore:(ic50|trapping).*(extrapolat|no peak within):RuntimeWarning")  # a fast protocol: the extrapolated-IC50 / unpeaked-response warnings are expected here
def test_experiment_engine_is_the_simulate_method(monkeypatch, fn):
    """``engine`` is documented as the :func:`ketacore.simulate` method of the stochastic
    runs: every simulation uses it; with method='exact' nothing is simulated; a bad value is
    refused."""
    calls, st = _engine_calls()
    for engine in ("ssa", "population"):
        spy = _SimulateSpy(monkeypatch)
        calls[fn](engine=engine, **st)
        assert spy.methods and set(spy.methods) == {engine}
        monkeypatch.undo()
    spy = _SimulateSpy(monkeypatch)
    calls[fn](engine="ssa")                              # exact: engine unused
    assert spy.methods == []
    monkeypatch.undo()
    with pytest.raises(ValueError, match="engine"):
        calls[fn](engine="gillespie", **st)


def trap_oracle(c, t_block, t_wash, wash_blocker, peak_window=0.5):
    """block, trapped occupancy and trapped current of experiments.trapping by expm."""
    p_ctl = null_equilibrium(co_q(GLU))
    g0 = p_ctl @ CO_G
    p_b = p_ctl @ scipy.linalg.expm(co_q(GLU, c) * t_block)
    p_w = p_b @ scipy.linalg.expm(co_q(0.0, wash_blocker) * t_wash)
    block = 1.0 - (p_b @ CO_G) / g0
    trapped_occ = p_w[CO_BLOCKED].sum() / p_b[CO_BLOCKED].sum()
    p_wc = p_ctl @ scipy.linalg.expm(co_q(GLU) * t_block) @ scipy.linalg.expm(co_q() * t_wash)
    h = peak_window / 5000
    gc = propagate(p_wc, co_q(GLU), h, 5001) @ CO_G
    gd = propagate(p_w, co_q(GLU), h, 5001) @ CO_G   # each response at its own peak (both
    trapped_cur = (1.0 - gd.max() / gc.max()) / block  # rise or have one maximum here)
    return block, trapped_occ, trapped_cur, p_b, p_w


WASH = (0.0, 1e-6, 5e-6)
TRAP = dict(t_block=1.0, t_wash=2.0, t_recovery=1.0)


@pytest.fixture(scope="module")
def exact_trapping():
    """Exact trapping runs at 1 uM for each wash_blocker, both definitions."""
    with warnings.catch_warnings():  # the responses still rise at the end of peak_window
        warnings.filterwarnings("ignore", "trapping: the first re-application", RuntimeWarning)
        return {(w, d): EXP.trapping(co_gating(), co_blocker(), 1e-6, wash_blocker=w, definition=d,
                                     **TRAP)
                for w in WASH for d in ("occupancy", "current")}


@pytest.mark.parametrize("wash_blocker", WASH)
def test_trapping_wash_blocker_matches_expm_oracle(exact_trapping, wash_blocker):
    r = exact_trapping[(wash_blocker, "occupancy")]
    block, trapped_occ, trapped_cur, p_b, p_w = trap_oracle(1e-6, TRAP["t_block"],
                                                            TRAP["t_wash"], wash_blocker)
    assert r.block == pytest.approx(block, rel=1e-9)
    assert r.trapped_occupancy == pytest.approx(trapped_occ, rel=1e-9)
    assert r.trapped_current == pytest.approx(trapped_cur, rel=1e-7)
    assert r.meta["wash_blocker"] == wash_blocker
    # the recorded time course: blocked occupancy at the end of the wash
    i_w = int(round((TRAP["t_block"] + TRAP["t_wash"]) / (r.time[1] - r.time[0])))
    assert r.blocked[i_w] == pytest.approx(p_w[CO_BLOCKED].sum(), rel=1e-9)
    # exact method: the standard errors are 0, whatever the definition
    for definition, want in (("occupancy", trapped_occ), ("current", trapped_cur)):
        rr = exact_trapping[(wash_blocker, definition)]
        assert rr.trapped_fraction_se == 0.0
        assert rr.trapped_occupancy_se == 0.0 and rr.trapped_current_se == 0.0
        assert rr.trapped_fraction == pytest.approx(want, rel=1e-7)


def test_trapping_blocker_in_wash_traps_more(exact_trapping):
    """Blocker present during the agonist-free wash (closed route) traps more."""
    occ = [exact_trapping[(w, "occupancy")].trapped_occupancy for w in WASH]
    cur = [exact_trapping[(w, "occupancy")].trapped_current for w in WASH]
    assert occ[0] < occ[1] < occ[2]
    assert cur[0] < cur[1] < cur[2]
    # the co-application phase is the same: identical block
    blk = [exact_trapping[(w, "occupancy")].block for w in WASH]
    assert blk[0] == blk[1] == blk[2]


# stochastic trapping: n_trials = 20 trials x N channels. Failure probabilities below are for
# Student t with 19 df (the SE is estimated) and the chi-square law of the sample SD.
T_BOUND = 5.0           # P(|t_19| > 5) = 8.0e-5 per statistic
SD_LO, SD_HI = 0.5, 1.6  # P(s/sigma < 0.5) = 3.9e-4, P(s/sigma > 1.6) = 2.1e-4


@pytest.mark.filterwarnings("ignore:(ic50|trapping).*(extrapolat|no peak within):RuntimeWarning")  # a fast protocol: the extrapolated-IC50 / unpeaked-response warnings are expected here
@pytest.mark.parametrize("engine", ["population", "ssa"])
def test_trapping_stochastic_trapped_fraction_se(engine):
    """With method='stochastic' the SE of the trapped fraction is positive, covers the exact
    value, and (occupancy definition) has the size binomial thinning implies.  Failure
    probability per engine 7.6e-4 (two t bounds, 2 x 8.0e-5, the current one through its
    delta-method SE so approximately; one two-sided SD bound, 6.0e-4)."""
    N, n_tr, c, tb, tw = 500, 20, 1e-6, 1.0, 2.0
    _, trapped_occ, trapped_cur, p_b, _ = trap_oracle(c, tb, tw, 0.0)
    ro = EXP.trapping(co_gating(), co_blocker(), c, t_block=tb, t_wash=tw, t_recovery=1.0,
                      method="stochastic", n_channels=N, n_trials=n_tr, rng=20240611,
                      engine=engine)
    # both definitions are computed in every run; 'definition' only selects (same run)
    rc = dataclasses.replace(ro, definition="current")
    assert ro.trapped_fraction_se > 0 and rc.trapped_fraction_se > 0
    assert ro.trapped_fraction_se == ro.trapped_occupancy_se
    assert rc.trapped_fraction_se == rc.trapped_current_se
    assert abs(ro.trapped_fraction - trapped_occ) < T_BOUND * ro.trapped_fraction_se
    assert abs(rc.trapped_fraction - trapped_cur) < T_BOUND * rc.trapped_fraction_se
    # occupancy: X | Y ~ Binomial(Y, q) with Y ~ Binomial(N, p_b) blocked channels at the end
    # of co-application, so Var(X/Y) = q (1 - q) E[1/Y | Y > 0]
    pb = p_b[CO_BLOCKED].sum()
    y = np.arange(1, N + 1)
    log_pmf = np.array([math.lgamma(N + 1) - math.lgamma(k + 1) - math.lgamma(N - k + 1)
                        + k * math.log(pb) + (N - k) * math.log1p(-pb) for k in y])
    pmf = np.exp(log_pmf)
    e_inv = float(np.sum(pmf / y) / pmf.sum())
    sigma = math.sqrt(trapped_occ * (1 - trapped_occ) * e_inv)
    ratio = ro.trapped_occupancy_se * math.sqrt(n_tr) / sigma
    assert SD_LO < ratio < SD_HI


@pytest.mark.filterwarnings("ignore:(ic50|trapping).*(extrapolat|no peak within):RuntimeWarning")  # a fast protocol: the extrapolated-IC50 / unpeaked-response warnings are expected here
@pytest.mark.parametrize("pre", [0.0, 0.5, 2.0])
def test_ic50_peak_preincubation_matches_expm_oracle(pre):
    """kind='peak': from drug-free rest, ``preincubation`` s with blocker alone (here it blocks
    through the closed route), then agonist + blocker; I/I0 = peak ratio on the dt grid."""
    cs = np.array([3e-7, 1e-6, 3e-6])
    dur, dt = 0.2, 0.002
    r = EXP.ic50(co_gating(), co_blocker(), cs, kind="peak", preincubation=pre, duration=dur,
                 dt=dt)
    rest = np.array([1.0, 0.0, 0.0, 0.0])            # no agonist: every channel in C
    n = int(round(dur / dt)) + 1
    peak0 = (propagate(rest, co_q(GLU), dt, n) @ CO_G).max()
    want = []
    for c in cs:
        p = rest @ scipy.linalg.expm(co_q(0.0, c) * pre) if pre > 0 else rest
        want.append((propagate(p, co_q(GLU, c), dt, n) @ CO_G).max() / peak0)
    np.testing.assert_allclose(r.fraction, want, rtol=1e-9)
    np.testing.assert_array_equal(r.fraction_se, 0.0)


@pytest.mark.filterwarnings("ignore:(ic50|trapping).*(extrapolat|no peak within):RuntimeWarning")  # a fast protocol: the extrapolated-IC50 / unpeaked-response warnings are expected here
def test_ic50_peak_preincubation_increases_block():
    cs = [3e-7, 1e-6, 3e-6]
    f = [EXP.ic50(co_gating(), co_blocker(), cs, kind="peak", preincubation=p, duration=0.2,
                  dt=0.002).fraction for p in (0.0, 1.0, 10.0)]
    assert np.all(f[1] < f[0]) and np.all(f[2] < f[1])
    with pytest.raises(ValueError):
        EXP.ic50(co_gating(), co_blocker(), cs, kind="peak", preincubation=-1.0)


# ============================================================================ plot


@pytest.fixture
def plot_mod():
    mpl = pytest.importorskip("matplotlib")
    pytest.importorskip("xarray")
    mpl.use("Agg")
    from ketacore import plot
    yield plot
    import matplotlib.pyplot as plt
    plt.close("all")


N_TR, N_CH, N_T = 3, 8, 9
PL_STATES = ["C", "O", "C·b", "O·b"]


def synthetic_ds():
    """A two-point study-like dataset with known contents; point 0 is ragged (5 samples)."""
    import xarray as xr
    rng = np.random.default_rng(1)
    occ = rng.dirichlet(np.ones(4), size=(2, N_T))
    counts = np.stack([[rng.multinomial(N_TR * N_CH, o) for o in occ[j]] for j in range(2)])
    trials = rng.normal(-1.0, 0.3, size=(2, 4, N_T)) * 1e-12
    return xr.Dataset(
        {"n_samples": (("conc",), np.array([5, N_T])),
         "sum_counts": (("conc", "time", "state"), counts),
         "occupancy_det": (("conc", "time", "state"), occ),
         "current_mc_mean": (("conc", "time"), trials.mean(axis=1)),
         "current_mc_sd": (("conc", "time"), trials.std(axis=1, ddof=1)),
         "current_trials": (("conc", "kept_trial", "time"), trials)},
        coords={"conc": ("conc", [1e-6, 1e-5], {"units": "M"}), "time": np.arange(N_T) * 0.1,
                "state": PL_STATES, "kept_trial": np.arange(4)},
        attrs={"n_trials": N_TR, "n_channels": N_CH, "protocol": "p",
               "segments": json.dumps([{"label": "control", "t0": 0.0, "t1": 0.3},
                                       {"label": "block", "t0": 0.3, "t1": 0.8}])})


def _stack_layers(expected_occ, t):
    """Cumulative boundaries of the stack: C, O individually, then blocked pooled."""
    groups = [expected_occ[:, 0], expected_occ[:, 1], expected_occ[:, 2] + expected_occ[:, 3]]
    return np.cumsum(groups, axis=0)


def _assert_layer_edges(ax, cum, t):
    polys = [c for c in ax.collections if c.get_label() in ("C", "O", "blocked (·b)")]
    assert [c.get_label() for c in polys] == ["C", "O", "blocked (·b)"]
    for k, c in enumerate(polys):
        v = c.get_paths()[0].vertices
        for i, ti in enumerate(t):
            ys = v[np.isclose(v[:, 0], ti, rtol=0, atol=1e-12), 1]
            assert np.min(np.abs(ys - cum[k, i])) < 1e-12, (c.get_label(), i)
            lower = 0.0 if k == 0 else cum[k - 1, i]
            assert np.min(np.abs(ys - lower)) < 1e-12


@pytest.mark.parametrize("point", [0, 1])
def test_plot_occupancy_source_det_and_mc(plot_mod, point):
    ds = synthetic_ds()
    n = int(ds["n_samples"][point])
    t = ds["time"].values[:n]
    det = ds["occupancy_det"].values[point, :n]
    mc = ds["sum_counts"].values[point, :n] / (N_TR * N_CH)

    fig = plot_mod.occupancy(ds, point={"conc": point}, source="det")
    ax = fig.axes[0]
    _assert_layer_edges(ax, _stack_layers(det, t), t)
    assert "master equation" in ax.get_title()
    over = [ln for ln in ax.lines if ln.get_label().startswith("Monte Carlo")]
    assert len(over) == 1                               # MC unblocked boundary overlaid
    np.testing.assert_allclose(over[0].get_xdata(), t)
    np.testing.assert_allclose(over[0].get_ydata(), mc[:, 0] + mc[:, 1], rtol=1e-14)

    fig = plot_mod.occupancy(ds, point={"conc": point}, source="mc")
    ax = fig.axes[0]
    _assert_layer_edges(ax, _stack_layers(mc, t), t)
    assert "Monte Carlo mean" in ax.get_title()
    assert not [ln for ln in ax.lines if ln.get_label().startswith("Monte Carlo")]

    # "auto" is the master equation when present, Monte Carlo when it is not
    fig = plot_mod.occupancy(ds.drop_vars("occupancy_det"), point={"conc": point})
    _assert_layer_edges(fig.axes[0], _stack_layers(mc, t), t)


def _trial_lines(ax):
    return [ln for ln in ax.lines if ln.get_color() == "#8aa9cf"]


@pytest.mark.parametrize("max_trials, n_drawn", [(0, 0), (2, 2), (10, 4)])
def test_plot_max_trials(plot_mod, max_trials, n_drawn):
    ds = synthetic_ds()
    tr = ds["current_trials"].values
    fig = plot_mod.current_traces(ds, point={"conc": 1}, max_trials=max_trials)
    lines = _trial_lines(fig.axes[0])
    assert len(lines) == n_drawn
    for k, ln in enumerate(lines):
        np.testing.assert_allclose(ln.get_ydata(), tr[1, k] * 1e12, rtol=1e-14)
    assert [ln.get_label() for ln in lines[:1]] == (["single trials"] if n_drawn else [])

    fig = plot_mod.trapping(ds, max_trials=max_trials)
    for j, ax in enumerate(fig.axes[:2]):              # one current panel per sweep point
        n = int(ds["n_samples"][j])
        lines = _trial_lines(ax)
        assert len(lines) == n_drawn
        for k, ln in enumerate(lines):
            np.testing.assert_allclose(ln.get_ydata(), tr[j, k, :n] * 1e12, rtol=1e-14)
    assert _trial_lines(fig.axes[2]) == []             # bottom panel: blocked fraction only


@pytest.mark.parametrize("fn", ["ic50", "woodhull", "block_kinetics", "trapping",
                                "use_dependence", "iv_curve", "voltage_jump"])
@pytest.mark.filterwarnings("ignore:trapping. tau_recovery.*extrapolated:UserWarning")  # (0.2 s recovery)
@pytest.mark.filterwarnings("ignore:(ic50|trapping).*(extrapolat|no peak within):RuntimeWarning")  # a fast protocol: the extrapolated-IC50 / unpeaked-response warnings are expected here
def test_refused_experiment_does_not_advance_the_callers_generator(fn):
    """A numpy Generator passed as ``rng`` is drawn from only after every argument is
    validated: a refused call (here a bad ``engine``, checked last) leaves it untouched, a
    successful call advances it."""
    calls, st = _engine_calls()
    st = {**st}
    g = np.random.default_rng(2024)
    state = json.dumps(g.bit_generator.state, default=int)
    st["rng"] = g
    with pytest.raises(ValueError, match="engine"):
        calls[fn](engine="gillespie", **st)
    assert json.dumps(g.bit_generator.state, default=int) == state
    r = calls[fn](engine="auto", **st)
    assert json.dumps(g.bit_generator.state, default=int) != state
    # the stored entropy reproduces the run
    again = calls[fn](engine="auto", **{**st, "rng": r.meta["entropy"]})
    assert json.dumps(again.meta["entropy"], default=int) == json.dumps(r.meta["entropy"],
                                                                        default=int)
