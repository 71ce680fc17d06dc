"""kc.experiments: exact identities, independent oracles, stochastic agreement, validation.

Exact tests compare with closed forms (reference section 5) or with an independent
scipy.linalg.expm propagation.  Stochastic tests use a fixed seed and a tolerance of 4 standard
errors of the trial mean, with the SE estimated from the 16 trials themselves: (x - exact)/SE is
then Student t with 15 degrees of freedom (trial values of >= 1000 channels are close to
normal), so a correct engine fails a check with probability 2 * scipy.stats.t.sf(4, 15) =
1.16e-3 per compared quantity (not the 6e-5 of a normal law with known SE).
"""
from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
import scipy.linalg

import ketacore as kc
from ketacore import theory
from ketacore.blockers import Blocker
from ketacore.experiments import _common_grid
from ketacore.units import FARADAY, GAS_CONSTANT, mM, ms, mV, pS, s, uM

E = kc.experiments


def drug(mode="trapping", k_on=1e6, k_off=2.0, **kw) -> Blocker:
    return Blocker(name="x", ligand="drug", k_on=k_on, k_off=k_off, mode=mode, **kw)


def two_state(opening=2e6, closing=3000.0) -> kc.Scheme:
    """C <-> O with C -> O = opening*[glutamate]: 2000 /s at 1 mM, Po = 0.4."""
    return kc.Scheme(["C", "O"], [("C", "O", kc.Rate(opening, "glutamate")),
                                  ("O", "C", kc.Rate(closing))],
                     conductance={"O": 50 * pS}, e_rev=0.0, ligands=["glutamate"], name="CO")


# --------------------------------------------------------------------------- IC50 identities
@pytest.mark.parametrize("model", ["destexhe1994_sf", "erreger2005_2a"])
@pytest.mark.parametrize("glu", [1 * uM, 1 * mM])
def test_trapping_ic50_equals_kb_at_any_agonist(model, glu):
    b = drug()
    r = E.ic50(model, b, agonist={"glutamate": glu})
    kb = b.k_off / b.k_on
    assert r.ic50_exact == pytest.approx(kb, rel=1e-9)
    assert r.ic50 == pytest.approx(kb, rel=1e-4)
    assert r.hill == pytest.approx(1.0, rel=1e-4)
    np.testing.assert_allclose(r.fraction, 1 / (1 + r.concentrations / kb), rtol=1e-9)


def test_trapping_ic50_voltage_dependent_kb():
    b = drug(z=1.0, delta_on=0.3, delta_off=0.4)
    g = kc.models.get("erreger2005_2a")
    r = E.ic50(g, b, V=-50 * mV)
    assert r.ic50 == pytest.approx(b.kd(-50 * mV, g.temperature), rel=1e-4)


@pytest.mark.parametrize("glu", [3 * uM, 1 * mM])
def test_sequential_ic50_is_kb_over_po0(glu):
    b = drug(mode="sequential")
    g = kc.models.get("destexhe1994_sf")
    po0 = theory.open_probability(g, V=-70 * mV, glutamate=glu)
    r = E.ic50(g, b, agonist={"glutamate": glu})
    assert r.ic50_exact == pytest.approx(b.k_off / b.k_on / po0, rel=1e-9)
    assert r.ic50 == pytest.approx(b.k_off / b.k_on / po0, rel=1e-4)
    assert r.hill == pytest.approx(1.0, rel=1e-4)


def test_peak_ic50_exceeds_steady_for_open_channel_blocker():
    # an open-channel blocker cannot act before channels open: less block at the peak
    b = drug(k_on=1e7, k_off=10.0)
    st = E.ic50("erreger2005_2a", b)
    pk = E.ic50("erreger2005_2a", b, kind="peak", duration=0.2 * s)
    assert pk.ic50 > 3 * st.ic50
    assert pk.ic50_exact is None and pk.kind == "peak"
    # default concentrations bracket the peak IC50 (decade scan), and the data cross 1/2
    assert pk.concentrations[0] < pk.ic50 < pk.concentrations[-1]
    assert pk.fraction[0] > 0.5 > pk.fraction[-1]
    assert np.all(np.diff(pk.fraction) < 0)


def test_peak_ic50_solves_the_drug_free_control_peak_once(monkeypatch):
    # the default-concentration scan divides by the control peak that ic50 has already checked
    calls = []
    real = E._peak_exact

    def counting(su, c, *args):
        calls.append(c)
        return real(su, c, *args)
    monkeypatch.setattr(E, "_peak_exact", counting)
    pk = E.ic50("erreger2005_2a", drug(k_on=1e7, k_off=10.0), kind="peak", duration=0.2 * s)
    assert calls.count(0.0) == 1 and len(calls) >= 2
    assert pk.fraction[0] > 0.5 > pk.fraction[-1]


# --------------------------------------------------------------------------- Woodhull
@pytest.mark.parametrize("z,d_on,d_off", [(1.0, 0.3, 0.5), (2.0, 0.1, 0.25), (1.0, 0.0, 0.79)])
def test_woodhull_recovers_z_delta_exactly(z, d_on, d_off):
    b = drug(z=z, delta_on=d_on, delta_off=d_off)
    g = kc.models.get("erreger2005_2a")
    r = E.woodhull(g, b, np.array([-100, -70, -40, -10, 20]) * mV)
    assert r.z_delta == pytest.approx(z * (d_on + d_off), abs=1e-9)
    assert r.kd0 == pytest.approx(b.kd(0.0, g.temperature), rel=1e-8)
    np.testing.assert_allclose(r.ic50, [b.kd(v, g.temperature) for v in r.voltages], rtol=1e-9)
    vt = GAS_CONSTANT * g.temperature / FARADAY
    assert r.predicted(-0.07) == pytest.approx(r.kd0 * math.exp(r.z_delta * -0.07 / vt))
    assert r.z_delta_se < 1e-8


def test_woodhull_two_voltages_has_no_se():
    r = E.woodhull("erreger2005_2a", drug(delta_on=0.4), [-80 * mV, 0.0])
    assert r.z_delta == pytest.approx(0.4, abs=1e-9)
    assert math.isnan(r.z_delta_se)


# --------------------------------------------------------------------------- kinetics
def test_block_kinetics_sequential_three_state_closed_form():
    # C <-> O <-> OB with fast gating (5000 /s) and slow block: tau = 1/(kon[B]Po + koff)
    b = drug(mode="sequential", k_on=1e6, k_off=1.0)
    c, po = 2 * uM, 0.4
    r = E.block_kinetics(two_state(), b, c, t_on=5 * s, t_off=10 * s, n_samples=4001)
    tau = 1 / (b.k_on * c * po + b.k_off)
    assert r.tau_on == pytest.approx(tau, rel=2e-3)
    assert r.theory_tau_on == pytest.approx(tau, rel=2e-3)
    assert r.tau_on == pytest.approx(r.theory_tau_on, rel=1e-4)
    assert r.tau_off == pytest.approx(1 / b.k_off, rel=1e-4)      # OB empties at koff exactly
    assert r.theory_tau_off == pytest.approx(1 / b.k_off, rel=1e-9)
    assert r.steady_fraction == pytest.approx(1 / (1 + c * po / (b.k_off / b.k_on)), rel=1e-9)
    assert r.k_off_apparent == pytest.approx(b.k_off, rel=1e-4)
    assert r.k_on_apparent == pytest.approx(b.k_on * po, rel=5e-3)


def test_block_kinetics_trapping_macroscopic_rates_are_po_scaled():
    b = drug(mode="trapping", k_on=1e6, k_off=1.0)
    c, po = 2 * uM, 0.4
    r = E.block_kinetics(two_state(), b, c, t_on=5 * s, t_off=15 * s, n_samples=4001)
    assert r.tau_on == pytest.approx(1 / (po * (b.k_on * c + b.k_off)), rel=2e-3)
    assert r.tau_off == pytest.approx(1 / (po * b.k_off), rel=2e-3)
    assert r.tau_on == pytest.approx(r.theory_tau_on, rel=1e-4)


def test_block_kinetics_default_durations_and_two_exponentials():
    r = E.block_kinetics("erreger2005_2a", "ketamine", 10 * uM, n_exponentials=2)
    assert r.taus_on.size == 2 and r.weights_on.sum() == pytest.approx(1.0)
    assert r.time_on[-1] > 5 * r.tau_on and r.time_off[-1] > 5 * r.tau_off
    assert 0 < r.fraction_on[-1] < 0.2


def _exact_block_relaxation(blocker, c, V=-70 * mV, agonist=None):
    """(taus, I/I0 amplitudes, control equilibrium) of the onset of block by ``c`` of
    ``blocker`` on erreger2005_2a with 1 mM glutamate, from ketacore.theory directly."""
    from ketacore.blockers import block
    g = kc.models.get("erreger2005_2a")
    s = block(g, kc.blockers.get(blocker))
    ag = agonist or {"glutamate": 1 * mM}
    p0 = np.zeros(s.n_states)
    p0[s.indices(g.states)] = theory.equilibrium(g, V=V, **ag)
    gv = np.asarray(s.conductance, float)
    rel = theory.relaxation(s, initial=p0, V=V, **ag, **{kc.blockers.get(blocker).ligand: c})
    amps = np.real(np.asarray(rel.amplitudes)) @ gv / (p0 @ gv)
    return np.real(np.asarray(rel.taus)), amps, rel


def test_block_kinetics_mg_defaults_resolve_the_fast_block():
    # Mg2+ block is carried (99 %) by a ~17 us component; the old defaults (8 x the slowest
    # occupancy component, 1.1 s -> a 4.4 ms grid step) fitted 0.66 ms / 1.4 ms
    taus, amps, rel = _exact_block_relaxation("mg", 1 * mM)
    i = int(np.argmax(np.abs(amps)))
    assert abs(amps[i]) > 0.9 * np.abs(amps).sum()
    tau_fast = taus[i]
    assert 15e-6 < tau_fast < 20e-6                       # literature ~17-31 us
    r = E.block_kinetics("erreger2005_2a", "mg", 1 * mM)
    assert r.tau_on == pytest.approx(tau_fast, rel=0.02)
    assert r.time_on[1] <= tau_fast / 4                    # the grid resolves it
    assert r.time_on[-1] == pytest.approx(8 * tau_fast, rel=1e-6)
    # theory_tau_on is the largest-amplitude Po component (was 1.104 s: the largest |a tau|)
    po = np.real(np.asarray(rel.popen_amplitudes))
    assert r.theory_tau_on == pytest.approx(taus[int(np.argmax(np.abs(po)))], rel=1e-9)
    assert r.theory_tau_on == pytest.approx(tau_fast, rel=1e-9)
    assert "1.677e-05 s (99% of the amplitude)" in r.summary()
    # recovery: within the exact components that carry it, on a resolving grid
    big = r.theory_taus_off[np.abs(r.theory_amps_off) >= 0.1 * np.abs(r.theory_amps_off).max()]
    assert big.min() <= r.tau_off <= big.max() and r.time_off[1] <= big.min() / 4
    assert r.k_on_apparent == pytest.approx(5.7e7, rel=0.05)   # was 7.9e5
    # user-given short windows agree (the 16.8 us of the review)
    u = E.block_kinetics("erreger2005_2a", "mg", 1 * mM, t_on=0.2 * ms, t_off=0.5 * ms)
    assert u.tau_on == pytest.approx(tau_fast, rel=0.02)


def test_block_kinetics_mg_onset_is_monotone_in_voltage():
    vs = [-100 * mV, -70 * mV, -40 * mV, -20 * mV]
    taus = [E.block_kinetics("erreger2005_2a", "mg", 1 * mM, V=v).tau_on for v in vs]
    assert np.all(np.diff(taus) > 0), taus                 # weaker, slower block on depolarising
    for v, t in zip(vs, taus):
        tt, aa, _ = _exact_block_relaxation("mg", 1 * mM, V=v)
        assert t == pytest.approx(tt[np.argmax(np.abs(aa))], rel=0.1)


def test_block_kinetics_ketamine_defaults_unchanged_and_match_exact_relaxation():
    taus, amps, rel = _exact_block_relaxation("ketamine", 10 * uM)
    carriers = taus[np.abs(amps) >= 0.1 * np.abs(amps).max()]
    r = E.block_kinetics("erreger2005_2a", "ketamine", 10 * uM)
    # same default grid as before (8 x the slowest carrier, 1.35 s since the balanced closed
    # route and recalibration; 2000 points) and the same fits
    assert carriers.max() == pytest.approx(1.3476, rel=1e-3)
    assert r.time_on.size == 2000 and r.time_on[-1] == pytest.approx(8 * carriers.max())
    assert r.tau_on == pytest.approx(0.5998, rel=1e-3)
    assert r.tau_off == pytest.approx(5.152, rel=1e-3)
    # the trace is the exact relaxation, and the fitted tau lies within its carriers
    exact = 1.0 + np.exp(-np.outer(r.time_on, 1 / taus)) @ amps - amps.sum()
    np.testing.assert_allclose(r.fraction_on, exact, atol=1e-8)
    assert carriers.min() < r.tau_on < carriers.max() and r.time_on[1] < carriers.min() / 4
    assert r.theory_tau_on == pytest.approx(taus[np.argmax(np.abs(amps))], rel=1e-9)


def test_block_kinetics_refuses_taus_of_a_few_grid_steps():
    # 20 ms / 1999 = 10 us step: the 17 us Mg2+ block spans 1.7 steps
    with pytest.raises(ValueError, match=r"onset phase: fitted tau .* grid steps \(dt = "
                       r"t_on/\(n_samples - 1\).*t_on <= .* or n_samples >= 4\d\d\d"):
        E.block_kinetics("erreger2005_2a", "mg", 1 * mM, t_on=20 * ms, n_samples=2000)
    # ketamine on a 55 ms grid: the single exponential (94 ms) was 1.7 steps
    with pytest.raises(ValueError, match="grid steps.*t_on"):
        E.block_kinetics("erreger2005_2a", "ketamine", 10 * uM, n_samples=200)
    # the old default window with automatic n_samples: refused, naming t_on and n_samples
    with pytest.raises(ValueError, match="t_on.*n_samples >= .*t_on <= "):
        E.block_kinetics("erreger2005_2a", "mg", 1 * mM, t_on=8.8 * s)
    with pytest.raises(ValueError, match="t_off=8.8 s with n_samples=2000 gives a grid step"):
        E.block_kinetics("erreger2005_2a", "mg", 1 * mM, t_off=8.8 * s, n_samples=2000)


def test_block_kinetics_two_exponentials_have_standard_errors():
    r = E.block_kinetics("erreger2005_2a", "ketamine", 10 * uM, n_exponentials=2)
    for tau, se in ((r.tau_on, r.tau_on_se), (r.tau_off, r.tau_off_se)):
        assert np.isfinite(se) and 0 < se < 0.05 * tau
    assert r.tau_on == pytest.approx(np.sum(r.weights_on * r.taus_on))
    # delta-method SE against a finite-difference propagation of the same fit covariance
    from scipy import optimize
    t, y = r.time_on, r.fraction_on

    def f(tt, a1, t1, a2, t2, c):
        return a1 * np.exp(-tt / t1) + a2 * np.exp(-tt / t2) + c
    p0 = (r.weights_on[0], r.taus_on[0], r.weights_on[1], r.taus_on[1], y[-1])
    popt, pcov = optimize.curve_fit(f, t, y, p0=p0, maxfev=20000)

    def tw(p):
        return (abs(p[0]) * p[1] + abs(p[2]) * p[3]) / (abs(p[0]) + abs(p[2]))
    gr = np.array([(tw(popt + h) - tw(popt - h)) / (2 * h[k])
                   for k, h in enumerate(np.diag(np.abs(popt) * 1e-6))])
    assert r.tau_on_se == pytest.approx(math.sqrt(gr @ pcov @ gr), rel=0.05)


# --------------------------------------------------------------------------- trapping
def _trap_oracle(scheme, cond_block, cond_wash, p0, t_block, t_wash, blocked):
    Q1 = scheme.q_matrix(**cond_block)
    Q2 = scheme.q_matrix(**cond_wash)
    p1 = p0 @ scipy.linalg.expm(Q1 * t_block)
    p2 = p1 @ scipy.linalg.expm(Q2 * t_wash)
    return p1, p2, p2[blocked].sum() / p1[blocked].sum()


def test_perfect_trapping_loses_only_what_deactivation_releases():
    b = drug(k_on=1e6, k_off=5.0, k_escape=0.0)
    g = kc.models.get("erreger2005_2a")
    r = E.trapping(g, b, 10 * uM)
    s_ = kc.block(g, b)
    blocked = np.array(["·x" in st for st in s_.states])
    p0 = theory.equilibrium(g, V=-70 * mV, glutamate=1 * mM)
    p0 = np.concatenate([p0, np.zeros(s_.n_states - g.n_states)])
    assert s_.states[:g.n_states] == g.states
    p1, p2, trapped = _trap_oracle(s_, dict(V=-70 * mV, glutamate=1 * mM, drug=10 * uM),
                                   dict(V=-70 * mV), p0, 30.0, 120.0, blocked)
    assert r.trapped_occupancy == pytest.approx(trapped, rel=1e-7)
    g0 = p0 @ s_.conductance
    assert r.block == pytest.approx(1 - (p1 @ s_.conductance) / g0, rel=1e-7)
    # only deactivation releases blocker: a 5x longer wash loses nothing more
    r_long = E.trapping(g, b, 10 * uM, t_wash=600 * s)
    assert r_long.trapped_occupancy == pytest.approx(r.trapped_occupancy, rel=1e-6)
    assert 0.8 < r.trapped_occupancy < 1.0                      # but it does lose some
    # ... and the current definition agrees to within what leaves during the first response
    assert r.trapped_current == pytest.approx(r.trapped_occupancy, abs=0.03)
    # everything trapped is released on re-application
    assert r.blocked[-1] < 1e-3 * r.blocked[int(round(150 / r.time[1]))]


@pytest.mark.parametrize("t_wash", [5.0, 45.0, 120.0])
def test_trapped_current_any_wash_matches_expm_oracle(t_wash):
    """The current definition starts the first re-application response from the exact state at
    the end of the wash, also when the wash is not a multiple of the block phase (it used to
    read the state at a multiple of t_block: 106 % trapped for a 5 s wash)."""
    g = kc.models.get("erreger2005_2a")
    b = drug(k_on=1e6, k_off=5.0)
    s_ = kc.block(g, b)
    blocked = np.array(["·x" in st for st in s_.states])
    act, ctl_wash = dict(V=-70 * mV, glutamate=1 * mM), dict(V=-70 * mV)
    p0 = np.concatenate([theory.equilibrium(g, **act), np.zeros(s_.n_states - g.n_states)])
    t_block, window = 30.0, 0.5
    _, p2, _ = _trap_oracle(s_, dict(act, drug=10 * uM), ctl_wash, p0, t_block, t_wash, blocked)
    c2 = p0 @ scipy.linalg.expm(s_.q_matrix(**act) * t_block) @ scipy.linalg.expm(
        s_.q_matrix(**ctl_wash) * t_wash)
    h = window / 5000
    step = scipy.linalg.expm(s_.q_matrix(**act) * h)
    gd, gc = [p2 @ s_.conductance], [c2 @ s_.conductance]
    for _ in range(5000):
        p2, c2 = p2 @ step, c2 @ step
        gd.append(p2 @ s_.conductance)
        gc.append(c2 @ s_.conductance)
    kc_, kd = int(np.argmax(gc)), int(np.argmax(gd))  # each response at its own peak (the
    g0 = p0 @ s_.conductance                           # first peak is the largest here)
    p1 = p0 @ scipy.linalg.expm(s_.q_matrix(**dict(act, drug=10 * uM)) * t_block)
    block = 1 - (p1 @ s_.conductance) / g0
    r = E.trapping(g, b, 10 * uM, t_block=t_block, t_wash=t_wash, definition="current",
                   peak_window=window)
    assert r.trapped_current == pytest.approx((1 - gd[kd] / gc[kc_]) / block, rel=1e-6)
    assert 0 < r.trapped_current < 1


def test_trapping_escape_and_library_calibration_consistency():
    r = E.trapping("erreger2005_2a", "ketamine", definition="current")
    assert r.trapped_occupancy == pytest.approx(0.86, abs=2e-3)   # calibrate_blockers target
    assert r.trapped_fraction == r.trapped_current
    assert r.t_recovered < 50.0                                   # Mealing: relieved in 50 s
    # sequential block cannot trap: the wash releases (almost) everything
    rs = E.trapping("erreger2005_2a", drug(mode="sequential"))
    assert rs.trapped_occupancy < 1e-6


def test_common_grid():
    assert _common_grid(0.105, 30.0, 120.0) == pytest.approx(30 / 286)
    assert _common_grid(1.0, 0.5, 1.5) == pytest.approx(0.5)


# --------------------------------------------------------------------------- use dependence
def test_use_dependence_monotone_and_persistence():
    r = E.use_dependence("erreger2005_2a", "ketamine", 1 * uM, [0.0, 0.1, 1.0, 10.0],
                         duration=20 * s, washout=60 * s, n_samples=50)
    assert r.is_monotone()
    # no opening: only the closed route balancing ketamine's escape blocks, R -> R·ket at
    # k_on_closed(V)[B] and back at k_escape, over the 20 s drug phase
    b = kc.blockers.get("ketamine")
    on, off = b.closed_on_rate()(-70 * mV, ketamine=1 * uM), b.escape_rate()(-70 * mV)
    assert r.blocked[0] == pytest.approx(on / (on + off) * -np.expm1(-(on + off) * 20.0), rel=1e-9)
    assert r.blocked[0] < 0.03
    assert np.all(np.diff(r.blocked[:3]) > 0.01)
    assert np.all(r.epsc_fraction[1:] < r.epsc_fraction[0])
    # trapped block persists in quiet cells, is removed by continued stimulation
    k_esc = kc.blockers.get("ketamine").k_escape
    assert np.all(r.remaining_quiet[1:] <= math.exp(-60 * k_esc) + 1e-9)  # escape is the floor
    assert np.all(r.remaining_quiet[1:] > 0.9)
    assert np.all(r.remaining_stim[1:] < r.remaining_quiet[1:])
    assert r.remaining_stim[-1] < 0.01 and np.all(r.remaining_stim[2:] < r.remaining_quiet[2:] / 3)
    assert np.all(r.t_half_stim[2:] < 60) and np.all(np.isinf(r.t_half_quiet[1:]))
    # 0 Hz: the closed-route block leaves a quiet cell by the escape too (tau ~17 min)
    assert np.isinf(r.t_half_quiet[0])
    assert r.remaining_quiet[0] == pytest.approx(math.exp(-60 * k_esc), rel=1e-6)
    assert r.blocked_drug.shape == (4, 50)


def test_use_dependence_monotone_with_escape_at_steady_state():
    # with a slow escape from shut blocked states, even the long-run block depends on activity
    b = drug(k_on=1e6, k_off=2.0, k_escape=0.05)
    r = E.use_dependence("destexhe1994_sf", b, 2 * uM, [0.0, 0.5, 2.0, 8.0], duration=200 * s,
                         washout=20 * s, n_samples=20)
    assert r.is_monotone() and r.blocked[-1] > r.blocked[1] + 0.05


def test_use_dependence_fixed_pulse_count():
    r = E.use_dependence("erreger2005_2a", "ketamine", 1 * uM, [1.0, 10.0], duration=None,
                         n_pulses=20, washout=10 * s, n_samples=20)
    assert list(r.n_pulses) == [20, 20]
    assert r.time_drug[0, -1] == pytest.approx(20.0) and r.time_drug[1, -1] == pytest.approx(2.0)


# --------------------------------------------------------------------------- stochastic
def _within(x, se, ref, k=4.0, floor=1e-12):
    # SEs come from 16 trials, so (x - ref)/se ~ Student t with 15 degrees of freedom:
    # |t| > 4 has probability 1.16e-3 per check when the code is right (fixed seeds make each
    # check deterministic; this is the chance that a correct engine would have failed).
    assert abs(x - ref) <= k * se + floor, f"{x} vs exact {ref} (SE {se})"


def test_stochastic_trapping_agrees_with_exact():
    ex = E.trapping("erreger2005_2a", "ketamine")
    st = E.trapping("erreger2005_2a", "ketamine", method="stochastic",
                             n_channels=2000, n_trials=16, rng=20240601)
    assert st.block_se > 0 and st.trapped_occupancy_se > 0
    _within(st.block, st.block_se, ex.block)
    _within(st.trapped_occupancy, st.trapped_occupancy_se, ex.trapped_occupancy)
    _within(st.trapped_current, st.trapped_current_se, ex.trapped_current)
    assert st.meta["entropy"] == 20240601 and st.meta["n_trials"] == 16


def test_stochastic_steady_ic50_points_agree_with_exact():
    cs = [0.3 * uM, 1 * uM, 3 * uM]
    ex = E.ic50("erreger2005_2a", "ketamine", cs)
    st = E.ic50("erreger2005_2a", "ketamine", cs, method="stochastic",
                             n_channels=2000, n_trials=16, rng=5)
    for x, se, ref in zip(st.fraction, st.fraction_se, ex.fraction):
        _within(x, se, ref)
    assert st.ic50_exact is None


def test_stochastic_block_kinetics_agrees_with_exact():
    b = drug(mode="sequential", k_on=1e6, k_off=1.0)
    kw = dict(t_on=4 * s, t_off=6 * s, n_samples=401)
    ex = E.block_kinetics(two_state(), b, 2 * uM, **kw)
    st = E.block_kinetics(two_state(), b, 2 * uM, method="stochastic",
                             n_channels=5000, n_trials=16, rng=11, **kw)
    _within(st.tau_on, st.tau_on_se, ex.tau_on)
    _within(st.tau_off, st.tau_off_se, ex.tau_off)


def test_stochastic_use_dependence_agrees_with_exact():
    kw = dict(frequencies=[0.5, 5.0], duration=10 * s, washout=10 * s, n_samples=20)
    ex = E.use_dependence("erreger2005_2a", "ketamine", 1 * uM, **kw)
    st = E.use_dependence("erreger2005_2a", "ketamine", 1 * uM,
                             method="stochastic", n_channels=2000, n_trials=16, rng=3, **kw)
    for x, se, ref in zip(st.blocked, st.blocked_se, ex.blocked):
        _within(x, se, ref)


def test_stochastic_is_reproducible():
    kw = dict(method="stochastic", n_channels=500, n_trials=4, rng=99, t_wash=10 * s,
              t_recovery=10 * s, t_block=10 * s)
    a = E.trapping("erreger2005_2a", "ketamine", **kw)
    b = E.trapping("erreger2005_2a", "ketamine", **kw)
    assert a.block == b.block and np.array_equal(a.blocked, b.blocked)


def test_stochastic_generator_rng_gives_replicates_and_entropy_reproduces():
    b = drug(mode="sequential", k_on=1e6, k_off=1.0)
    kw = dict(t_on=4 * s, t_off=6 * s, n_samples=101, method="stochastic", n_channels=300,
              n_trials=3)
    g = np.random.default_rng(2024)
    r1 = E.block_kinetics(two_state(), b, 2 * uM, rng=g, **kw)
    r2 = E.block_kinetics(two_state(), b, 2 * uM, rng=g, **kw)
    assert r1.meta["entropy"] != r2.meta["entropy"]
    assert not np.array_equal(r1.fraction_on, r2.fraction_on)
    g = np.random.default_rng(2024)
    assert np.array_equal(E.block_kinetics(two_state(), b, 2 * uM, rng=g, **kw).fraction_on,
                          r1.fraction_on)
    again = E.block_kinetics(two_state(), b, 2 * uM, rng=r2.meta["entropy"], **kw)
    assert np.array_equal(again.fraction_on, r2.fraction_on) and again.tau_on == r2.tau_on


# --------------------------------------------------------------------------- result objects
def test_result_objects_frozen_tables_summaries_plots():
    r = E.ic50("erreger2005_2a", "ketamine")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.ic50 = 1.0
    with pytest.raises(ValueError):
        r.fraction[0] = 0.0
    results = [r, E.woodhull("erreger2005_2a", "ketamine", [-80 * mV, -40 * mV, 0.0]),
               # (default grid: n_samples=200 is refused, its 55 ms step cannot resolve the
               # 28/48 ms components and the fitted tau was 1.7 grid steps)
               E.block_kinetics("erreger2005_2a", "ketamine", 10 * uM),
               E.trapping("erreger2005_2a", "memantine"),
               E.use_dependence("erreger2005_2a", "ketamine", 1 * uM, [0.0, 1.0],
                                duration=5 * s, washout=5 * s, n_samples=20)]
    for res in results:
        fr = res.to_frame()
        cols = list(fr.columns) if hasattr(fr, "columns") else list(fr)
        assert cols and all(len(fr[c]) == len(fr[cols[0]]) for c in cols)
        text = res.summary()
        assert "method: exact" in text and str(res) == text and repr(res)
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt
    for res in results:
        ax = res.plot()
        assert ax.get_xlabel() and ax.get_ylabel() and "(" in ax.get_xlabel() + ax.get_ylabel()
        plt.close(ax.figure)


def test_background_and_also_blockers():
    # ketamine with kinetic Mg2+ at 1 mM: Mg competes for the pore -> higher IC50 at -70 mV
    r0 = E.ic50("erreger2005_2a", "ketamine")
    r1 = E.ic50("erreger2005_2a", "ketamine", also=["mg"], background={"mg": 1 * mM})
    assert r1.ic50_exact > 2 * r0.ic50_exact


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize("call,exc,match", [
    (lambda: E.ic50("erreger2005_2a", "ketamine", method="mc"), ValueError, "method"),
    (lambda: E.ic50("erreger2005_2a", "ketamine", n_channels=10), ValueError, "n_channels"),
    (lambda: E.ic50("erreger2005_2a", "ketamine", kind="mean"), ValueError, "kind"),
    (lambda: E.ic50("erreger2005_2a", "ketamine", [1e-6, -1e-6, 1e-5]), ValueError,
     "concentrations"),
    (lambda: E.ic50("erreger2005_2a", "ketamine", [1e-6, 1e-5]), ValueError, "concentrations"),
    (lambda: E.ic50("erreger2005_2a", "ketamine", V=-70), ValueError, "V="),
    (lambda: E.ic50("erreger2005_2a", "ketamine", agonist={"nmda": 1e-3}), ValueError,
     "agonist"),
    (lambda: E.ic50("erreger2005_2a", "ketamine", agonist={"glutamate": 0.0}), ValueError,
     "agonist"),
    (lambda: E.ic50("ch82", "ketamine"), ValueError, "agonist"),
    (lambda: E.ic50(42, "ketamine"), TypeError, "gating"),
    (lambda: E.ic50("erreger2005_2a", 3.0), TypeError, "blocker"),
    (lambda: E.ic50("erreger2005_2a", "ketamine", also="mg"), TypeError, "also"),
    (lambda: E.ic50("erreger2005_2a", "ketamine", background={"ketamine": 1e-6}), ValueError,
     "background"),
    (lambda: E.ic50("erreger2005_2a", "ketamine", method="stochastic", n_trials=1),
     ValueError, "n_trials"),
    (lambda: E.woodhull("erreger2005_2a", "ketamine", [-0.07]), ValueError, "voltages"),
    (lambda: E.woodhull("erreger2005_2a", "ketamine", [-70, 0]), ValueError, "V"),
    (lambda: E.block_kinetics("erreger2005_2a", "ketamine", 0.0), ValueError,
     "concentration"),
    (lambda: E.block_kinetics("erreger2005_2a", "ketamine", 1e-6, n_exponentials=3),
     ValueError, "n_exponentials"),
    (lambda: E.trapping("erreger2005_2a", "ketamine", t_wash=-1.0), ValueError, "t_wash"),
    (lambda: E.trapping("erreger2005_2a", "ketamine", definition="both"), ValueError,
     "definition"),
    (lambda: E.trapping("erreger2005_2a", "ketamine", dt=7.0), ValueError, "dt"),
    (lambda: E.use_dependence("erreger2005_2a", "ketamine", 1e-6, [-1.0]), ValueError,
     "frequencies"),
    (lambda: E.use_dependence("erreger2005_2a", "ketamine", 1e-6, [2000.0]), ValueError,
     "width"),
    (lambda: E.use_dependence("erreger2005_2a", "ketamine", 1e-6, n_pulses=5), ValueError,
     "exactly one"),
    (lambda: E.use_dependence("erreger2005_2a", "ketamine", 1e-6, [0.0, 1.0], duration=None,
                              n_pulses=5), ValueError, "n_pulses"),
])
def test_validation_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.slow
def test_stochastic_peak_ic50_and_woodhull_agree_with_exact():
    cs = [10 * uM, 100 * uM, 1 * mM]
    kw = dict(kind="peak", duration=0.1 * s, dt=0.2 * ms)
    ex = E.ic50("erreger2005_2a", "ketamine", cs, **kw)
    st = E.ic50("erreger2005_2a", "ketamine", cs, method="stochastic",
                             n_channels=4000, n_trials=24, rng=17, **kw)
    for x, se, ref in zip(st.fraction, st.fraction_se, ex.fraction):
        _within(x, se, ref)
    b = drug(delta_on=0.3, delta_off=0.3)
    vs = [-100 * mV, -70 * mV, -40 * mV]
    # I/I0 brackets 0.5 at every voltage (exact: 0.65-0.39 at -100 mV, 0.89-0.21 at -40 mV), so no
    # IC50 is an extrapolation; 0.3-10 uM left -100 mV at >= 61 % inhibition and warned
    wc = [0.1 * uM, 0.3 * uM, 1 * uM, 3 * uM]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        wx = E.woodhull("erreger2005_2a", b, vs, concentrations=wc)
        ws = E.woodhull("erreger2005_2a", b, vs, concentrations=wc, method="stochastic",
                        n_channels=4000, n_trials=24, rng=18)
    assert not ws.extrapolated.any()
    assert ws.z_delta_se > 0
    _within(ws.z_delta, ws.z_delta_se, wx.z_delta)


# ------------------------------------------------------------ review: defaults at the 10 M limit
@pytest.mark.parametrize("V", [30 * mV, 40 * mV])
def test_ic50_default_grid_is_clipped_to_the_concentration_limit(V):
    # the IC50 of Mg2+ at +30/+40 mV is 0.115/0.256 M: the old +-2-decade grid reached 11.5 M
    # and was refused with a units message ("write 10 * ketacore.units.uM")
    r = E.ic50("erreger2005_2a", "mg", V=V)
    assert r.ic50_exact is not None and 0.1 < r.ic50_exact < 1.0
    assert r.concentrations.size == 17
    assert r.concentrations.max() == 10.0                   # clipped to MAX_CONCENTRATION
    assert r.concentrations.min() == pytest.approx(10.0 / 1e4)
    assert r.concentrations.min() < r.ic50_exact < r.concentrations.max()
    assert r.ic50 == pytest.approx(r.ic50_exact, rel=1e-3)  # the Hill fit agrees
    assert r.hill == pytest.approx(1.0, rel=1e-3)
    # peak kind uses the same clipped grid
    p = E.ic50("erreger2005_2a", "mg", V=V, kind="peak")
    assert p.concentrations.size == 17 and p.concentrations.max() <= 10.0


def test_woodhull_depolarised_voltages_use_exact_ic50s():
    vs = [30 * mV, 40 * mV]
    w = E.woodhull("erreger2005_2a", "mg", vs)
    exact = [E.ic50("erreger2005_2a", "mg", V=v).ic50_exact for v in vs]
    np.testing.assert_allclose(w.ic50, exact, rtol=1e-12)
    # the review's second repro (its default grid at +60 mV reached 14.4 M)
    d = E.woodhull("destexhe1994", "mg", [0.04, 0.06])
    exact = [E.ic50("destexhe1994", "mg", V=v).ic50_exact for v in (0.04, 0.06)]
    np.testing.assert_allclose(d.ic50, exact, rtol=1e-12)
    assert d.ic50.max() < 10.0


@pytest.mark.filterwarnings("ignore:(ic50|trapping).*(extrapolat|no peak within):RuntimeWarning")  # a fast protocol: the extrapolated-IC50 / unpeaked-response warnings are expected here
def test_ic50_beyond_the_concentration_limit_is_refused_as_negligible_block():
    for kw in ({}, {"kind": "peak"}):
        with pytest.raises(ValueError, match=r"negligible at V = 100 mV.*IC50 is > 10 M") as ei:
            E.ic50("erreger2005_2a", "mg", V=100 * mV, **kw)
        assert "units" not in str(ei.value) and "molar" not in str(ei.value)
    with pytest.raises(ValueError, match=r"negligible at V = 100 mV.*IC50 is > 10 M"):
        E.woodhull("erreger2005_2a", "mg", [40 * mV, 100 * mV])
    # explicit concentrations (<= 10 M) still give the partial curve
    with pytest.warns(kc.UnitsWarning, match=r"concentrations \(largest\)=10 M"):
        r = E.ic50("erreger2005_2a", "mg", [0.01, 0.1, 1.0, 10.0], V=100 * mV)
    assert r.ic50_exact is None and r.fraction[-1] > 0.5


# ------------------------------------------------------------ review: block_kinetics advice
def _sq_drug():
    return Blocker("sq", "drugx", 1e7, 10.0, delta_on=0.5, mode="sequential")


def test_block_kinetics_default_call_with_an_overshooting_relaxation_is_not_refused():
    # kampa2004 + a sequential blocker: I/I0 falls with 3.1 ms, then partly recovers (carriers
    # of opposite sign); the single exponential lands at 0.5 ms on a grid that resolves every
    # carrier.  It was refused with advice restating the grid in use (following it failed).
    import re
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = E.block_kinetics("kampa2004", _sq_drug(), 1e-6)
    msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(msgs) == 2, msgs
    for phase, m in zip(("onset", "recovery"), msgs):
        assert re.search(rf"{phase} phase: fitted tau .*resolves every carrier.*opposite "
                         r"signs.*finer grid will not change it.*n_exponentials=2 describes "
                         "it", m), m
    assert r.unresolved == ("onset", "recovery")
    assert "UNRESOLVED" in r.summary()
    big = np.abs(r.theory_amps_on) >= 0.1 * np.abs(r.theory_amps_on).max()
    carriers = r.theory_taus_on[big]
    assert carriers.min() == pytest.approx(3.1e-3, rel=0.01)
    assert r.time_on[1] <= carriers.min() / 4                  # the grid resolves them
    # the suggested fix works: two exponentials, no warning, first component ~ 3.1 ms
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", "block.*own pore blocker", UserWarning)  # (kampa2004, meant)
        r2 = E.block_kinetics("kampa2004", _sq_drug(), 1e-6, n_exponentials=2)
    assert r2.unresolved == ()
    assert r2.taus_on[0] == pytest.approx(carriers.min(), rel=0.02)


@pytest.mark.parametrize("gating, blocker, c, kw", [
    ("erreger2005_2a", "mg", 1 * mM, dict(t_on=20 * ms, n_samples=2000)),
    ("erreger2005_2a", "ketamine", 10 * uM, dict(n_samples=200)),
])
def test_block_kinetics_refusal_advice_works_when_followed(gating, blocker, c, kw):
    import re
    import warnings
    with pytest.raises(ValueError, match="does not resolve the fastest carrier") as ei:
        E.block_kinetics(gating, blocker, c, **kw)
    msg = str(ei.value)
    m = re.search(r"i\.e\. (t_on|t_off) <= ([0-9.e+-]+) s or n_samples >= (\d+) or "
                  r"n_samples=None", msg)
    assert m, msg
    name, t_max, n_min = m.group(1), float(m.group(2)), int(m.group(3))
    # every advice differs from the values in use, and each one succeeds
    assert n_min > kw["n_samples"] and t_max < kw.get(name, math.inf)
    for fix in ({name: t_max}, {"n_samples": n_min}, {"n_samples": None}):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            r = E.block_kinetics(gating, blocker, c, **{**kw, **fix})
        assert r.unresolved == () and r.tau_on >= 3 * r.time_on[1]


# ------------------------------------------------------------ review: blockers with k_on/k_off 0
NEVER_BINDS = Blocker("z", "x", 0.0, 1.0)
NEVER_LEAVES = Blocker("z", "x", 1e6, 0.0)


@pytest.mark.parametrize("call, match", [
    (lambda: E.ic50("destexhe1994", NEVER_BINDS), r"blocker.k_on = 0.*never binds.*no block "
     "at any concentration"),
    (lambda: E.ic50("destexhe1994", NEVER_BINDS, [1e-6, 1e-5, 1e-4]), "blocker.k_on = 0"),
    (lambda: E.ic50("destexhe1994", NEVER_BINDS, kind="peak"), "blocker.k_on = 0"),
    (lambda: E.woodhull("destexhe1994", NEVER_BINDS, [-0.08, -0.04]), "blocker.k_on = 0"),
    (lambda: E.block_kinetics("destexhe1994", NEVER_BINDS, 1e-5), "blocker.k_on = 0"),
    (lambda: E.trapping("destexhe1994", NEVER_BINDS, 1e-5), "blocker.k_on = 0"),
    (lambda: E.ic50("destexhe1994", NEVER_LEAVES), r"blocker.k_off = 0.*never leaves.*"
     "complete at any concentration.*kind='peak'.*trapping\\(\\)"),
    (lambda: E.ic50("destexhe1994", NEVER_LEAVES, [1e-6, 1e-5, 1e-4]), "blocker.k_off = 0"),
    (lambda: E.woodhull("destexhe1994", NEVER_LEAVES, [-0.08, -0.04]), "blocker.k_off = 0"),
    (lambda: E.block_kinetics("destexhe1994", NEVER_LEAVES, 1e-5), r"blocker.k_off = 0.*"
     "no recovery"),
])
def test_blockers_that_never_bind_or_never_leave_are_refused_before_any_solve(
        monkeypatch, call, match):
    def boom(*a, **kw):
        raise AssertionError("solved before refusing the blocker")
    monkeypatch.setattr(E, "solve", boom)
    monkeypatch.setattr(theory, "rest_state", boom)
    monkeypatch.setattr(theory, "relaxation", boom)
    with pytest.raises(ValueError, match=match):
        call()


def test_never_leaving_blocker_still_has_a_peak_ic50_and_trapping():
    r = E.ic50("destexhe1994", NEVER_LEAVES, kind="peak")
    assert np.isfinite(r.ic50) and r.concentrations.max() <= 10.0
    assert r.concentrations.min() < r.ic50 < r.concentrations.max()
    t = E.trapping("destexhe1994", NEVER_LEAVES, 1e-5)
    assert t.trapped_occupancy == pytest.approx(1.0)


def test_trapping_summary_when_recovery_is_incomplete():
    """A re-application too short for block to fall below 5 % of trapped printed
    'block < 5 % of trapped after nan s'; it now says recovery was not reached."""
    with pytest.warns(UserWarning, match=r"tau_recovery = .* is extrapolated"):
        r = E.trapping("erreger2005_2a", "ketamine", 10 * uM, t_recovery=0.5)
    assert np.isnan(r.t_recovered) and r.tau_recovery_extrapolated
    text = r.summary()
    assert "nan" not in text
    assert "block still >= 5 % of trapped at the end of the 0.5 s re-application" in text
