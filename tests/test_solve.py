"""Exact master equation: kc.solve against scipy.linalg.expm and closed forms."""
import warnings

import numpy as np
import pytest
import scipy.linalg as sl

import ketacore as kc
from ketacore.units import mM, ms, mV, pS, s, uM


def five_state():
    return kc.Scheme(
        ["C0", "C1", "C2", "O", "D"],
        [("C0", "C1", kc.rate(5e6, "glutamate", factor=2)), ("C1", "C0", 12.9),
         ("C1", "C2", kc.rate(5e6, "glutamate")), ("C2", "C1", kc.rate(12.9, factor=2)),
         ("C2", "O", 46.5), ("O", "C2", 73.8), ("C2", "D", 8.4), ("D", "C2", 6.8)],
        {"O": 50 * pS}, e_rev=0.0, name="five")


def reference(scheme, protocol, dt, p0):
    """Independent oracle: scipy expm on a fine union of grid and boundary times."""
    bounds = protocol.boundaries
    n = int(np.floor(protocol.duration / dt + 1e-7)) + 1
    times = np.arange(n) * dt
    out = np.empty((n, scheme.n_states))
    p = p0.copy()
    t = 0.0
    k = 0
    out[0] = p
    k = 1
    for st, a, b in zip(protocol.steps, bounds[:-1], bounds[1:]):
        Q = scheme.q_matrix(V=st.V, **st.concentrations)
        while k < n and times[k] <= b + 1e-7 * dt:
            p = p @ sl.expm(Q * (times[k] - t))
            t = times[k]
            out[k] = p
            k += 1
        if b - t > 1e-7 * dt:
            p = p @ sl.expm(Q * (b - t))
            t = b
    return out


def test_single_segment_matches_expm():
    g = five_state()
    p = kc.Protocol([kc.Step(0.2 * s, glutamate=1 * mM)])
    r = kc.solve(g, p, dt=0.1 * ms, initial="C0")
    Q = g.q_matrix(glutamate=1 * mM)
    for k in (1, 7, 500, 2000):
        np.testing.assert_allclose(r.occupancy[k], np.eye(5)[0] @ sl.expm(Q * k * 1e-4), atol=1e-12)
    assert r.occupancy.shape == (2001, 5)
    np.testing.assert_allclose(r.occupancy.sum(axis=1), 1.0, atol=1e-12)


def test_off_grid_boundaries_exact():
    g = five_state()
    p = kc.pulse_train(7, 37.0, 1.3 * ms, during={"glutamate": 1 * mM}, tail=0.0123)
    dt = 0.7 * ms  # boundaries fall between grid points
    r = kc.solve(g, p, dt=dt, initial="C0")
    ref = reference(g, p, dt, np.eye(5)[0])
    np.testing.assert_allclose(r.occupancy, ref, atol=1e-11)


def _pulse_scheme():
    return kc.Scheme(["C", "O"], [("C", "O", kc.rate(1e7, "glu")), ("O", "C", 1.0)],
                     conductance={"O": 1 * pS}, ligands=["glu"])


# a 50 ns pulse (rate 1e7/s: half a time constant) halfway between two samples
with warnings.catch_warnings():
    warnings.simplefilter("ignore", kc.UnitsWarning)   # (a toy 1 M pulse, on purpose)
    PULSE = kc.Protocol([kc.Step(0.5), kc.Step(5e-8, glu=1.0), kc.Step(0.5 - 5e-8)])
# closed form: C -> O during the pulse, then O -> C at 1/s (mpmath, 30 digits)
PULSE_PO = 0.238651225002602345543049667562


@pytest.mark.parametrize("dt", [0.1, 0.25, 0.5, 1.0])
def test_short_segment_between_samples_acts_at_any_dt(dt):
    """A segment far shorter than dt (here 5e-8 dt) must act: it used to be dropped when it
    lay between two samples (shorter than the 1e-7 dt snapping tolerance), so p_O(1 s) was 0
    at dt = 1 s and 0.2387 at dt = 0.1 s."""
    r = kc.solve(_pulse_scheme(), PULSE, dt, initial="C")
    assert r.occupancy[-1, 1] == pytest.approx(PULSE_PO, rel=1e-12)


def test_grid_independence():
    """The solution at common times does not depend on the grid step (it is exact)."""
    g = five_state()
    p = kc.Protocol([kc.Step(3.3 * ms, glutamate=1 * mM), kc.Step(50 * ms)])
    a = kc.solve(g, p, dt=0.1 * ms, initial="C0")
    b = kc.solve(g, p, dt=1 * ms, initial="C0")
    np.testing.assert_allclose(a.occupancy[::10], b.occupancy, atol=1e-12)


def test_two_state_closed_form_and_current():
    a_, b_ = 200.0, 50.0
    g = kc.Scheme(["C", "O"], [("C", "O", a_), ("O", "C", b_)], {"O": 40 * pS}, e_rev=5 * mV)
    r = kc.solve(g, kc.Step(0.05, V=-60 * mV), dt=1e-4, initial="C")
    po = a_ / (a_ + b_) * (1 - np.exp(-(a_ + b_) * r.time))
    np.testing.assert_allclose(r.open_probability, po, atol=1e-13)
    np.testing.assert_allclose(r.current, po * 40e-12 * (-65e-3), rtol=1e-12, atol=1e-28)
    np.testing.assert_allclose(r.V, -0.06)


def test_initial_options():
    g = five_state()
    p = kc.Protocol([kc.Step(10 * ms, glutamate=1 * uM)])
    eq = kc.solve(g, p, dt=1 * ms)  # default: equilibrium under the first step
    np.testing.assert_allclose(eq.occupancy, np.tile(eq.occupancy[0], (11, 1)), atol=1e-12)
    Q = g.q_matrix(glutamate=1 * uM)
    np.testing.assert_allclose(eq.occupancy[0] @ Q, 0.0, atol=1e-9)
    other = kc.solve(g, p, dt=1 * ms, initial={"glutamate": 1 * mM})
    assert other.occupancy[0, 3] > eq.occupancy[0, 3]
    vec = kc.solve(g, p, dt=1 * ms, initial=[0.5, 0, 0, 0.5, 0])
    assert vec.occupancy[0, 3] == 0.5
    for bad, exc in [("X", ValueError), ([1, 0], ValueError), ([0.5, 0.6, 0, 0, 0], ValueError),
                     ([-1, 2, 0, 0, 0], ValueError), (3.0, TypeError)]:
        with pytest.raises(exc):
            kc.solve(g, p, dt=1 * ms, initial=bad)
    # no glutamate: C0 absorbs everything, equilibrium is unique (all in C0)
    z = kc.solve(g, kc.Step(1 * ms), dt=1 * ms)
    np.testing.assert_allclose(z.occupancy[0], [1, 0, 0, 0, 0], atol=1e-12)


def test_input_validation():
    g = five_state()
    p = kc.Step(1 * ms)
    for dt in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="dt"):
            kc.solve(g, p, dt=dt)
    with pytest.raises(ValueError, match="unknown model 'five'"):  # a string is a model name
        kc.solve("five", p, dt=1e-3)
    with pytest.raises(TypeError, match="scheme"):
        kc.solve(5, p, dt=1e-3)
    with pytest.raises(TypeError, match="protocol"):
        kc.solve(g, [p], dt=1e-3)
    with pytest.raises(ValueError, match="GiB"):
        kc.solve(g, kc.Step(1e6), dt=1e-9)  # 1e15 samples would never fit


def test_to_xarray():
    xr = pytest.importorskip("xarray")
    r = kc.solve(five_state(), kc.Step(5 * ms, glutamate=1 * mM), dt=1 * ms, initial="C0")
    ds = r.to_xarray()
    assert isinstance(ds, xr.Dataset)
    assert ds["occupancy"].shape == (6, 5) and list(ds.state.values) == list(r.states)
    assert ds["time"].attrs["units"] == "s"
    np.testing.assert_array_equal(ds["open_probability"].values, r.open_probability)
    np.testing.assert_array_equal(r["O"], r.occupancy[:, 3])


def test_keyboard_interrupt_stops_a_long_solve(sigint_raises):
    """A long master-equation solve honours Ctrl-C (the rule: within ~0.1 s; asserted within
    1.5 s of the interrupt, to leave room for a loaded machine or a sanitizer build, while the
    solve itself takes several seconds) and the engine is usable afterwards."""
    import _thread
    import threading
    import time
    g = five_state()
    # 2e5 pulses with boundaries off the grid: ~4e5 expm evaluations, seconds of work
    p = kc.pulse_train(200_000, 37.0, 1.3 * ms, during={"glutamate": 1 * mM})
    p.compile(g)  # done before the timer starts, so the interrupt lands inside the C++ loop
    fired = []

    def interrupt():
        fired.append(time.perf_counter())
        _thread.interrupt_main()

    timer = threading.Timer(0.2, interrupt)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        kc.solve(g, p, dt=0.7 * ms, initial="C0")
    returned = time.perf_counter()
    timer.join()
    assert fired and returned - fired[0] < 1.5
    assert kc.solve(g, kc.Step(1 * ms), dt=1e-4, initial="C0").occupancy.shape == (11, 5)


def test_sampled_waveform_pieces_by_uniformization_match_expm():
    """A sampled waveform (a condition per sample, samples off the grid) propagates each piece
    of a once-used condition as a vector by uniformization when tau x max exit rate <= 32, and
    by the matrix exponential above: both must match scipy's expm piece by piece (the oracle
    above) on the 16-state NMDA + Mg2+ scheme, whose fast Mg2+ rates put pieces on both sides."""
    g = kc.block("erreger2005_2a", "mg")
    rng = np.random.default_rng(2)
    n = 400
    t = np.cumsum(np.r_[0.0, rng.uniform(2e-6, 3e-4, n - 1)])
    V = rng.uniform(-0.1, 0.04, n)
    glu = np.where(rng.random(n) < 0.3, 0.0, rng.uniform(1e-6, 1e-3, n))
    prot = kc.Protocol.from_waveform(t, t[-1] + 1e-4, V=V, glutamate=glu, mg=1e-3)
    durs, idx, conds = prot.compile(g)
    exits, _ = g._compiled().exits_equilibria(conds, False)
    q = durs * exits.max(axis=1)[idx]
    assert q.min() < 1.0 and q.max() > 32.0 and np.mean(q <= 32.0) > 0.5  # both paths taken
    p0 = kc.theory.equilibrium(g, glutamate=1e-3, mg=1e-3)
    for dt in (1.3e-4, 1e-3):
        r = kc.solve(g, prot, dt=dt, initial=p0)
        ref = reference(g, prot, dt, p0)
        np.testing.assert_allclose(r.occupancy, ref, rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(r.occupancy.sum(axis=1), 1.0, atol=1e-13)


def test_brief_once_used_conditions_take_full_steps_by_uniformization():
    """A trace sampled near the grid's rate (a condition per sample): a condition of one segment
    keeps no matrix, and when that segment spans at most 4 grid steps its full steps go by
    uniformization too, falling back to the matrix (computed once for the segment, in scratch)
    when tau x max exit rate > 32.  Segments of 1, 2.5 (off the grid), 3, 4 (brief) and 5, 8
    (one matrix per segment) steps of dt = 2^-13 s, on the 16-state NMDA + Mg2+ scheme whose
    exit rates put brief steps on both sides of 32; all against scipy's expm step by step."""
    g = kc.block("erreger2005_2a", "mg")
    rng = np.random.default_rng(5)
    dt = 2.0 ** -13
    steps = rng.choice([1.0, 1.0, 2.5, 3.0, 4.0, 5.0, 8.0], 300)
    t = np.r_[0.0, np.cumsum(steps[:-1])] * dt        # (exact: multiples of 2^-14)
    V = rng.uniform(-0.1, 0.04, t.size)
    prot = kc.Protocol.from_waveform(t, steps.sum() * dt, V=V, glutamate=1e-3, mg=1e-3)
    durs, idx, conds = prot.compile(g)
    exits, _ = g._compiled().exits_equilibria(conds, False)
    q = dt * exits.max(axis=1)[idx]
    brief = durs <= 4 * dt
    assert brief.sum() > 100 and np.any(q[brief] > 32) and np.any(q[brief] <= 32)
    p0 = kc.theory.equilibrium(g, glutamate=1e-3, mg=1e-3)
    r = kc.solve(g, prot, dt=dt, initial=p0)
    ref = reference(g, prot, dt, p0)
    np.testing.assert_allclose(r.occupancy, ref, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(r.occupancy.sum(axis=1), 1.0, atol=1e-13)


@pytest.mark.filterwarnings("ignore::ketacore.UnitsWarning")  # toy rates at a 1 M-scale concentration
def test_uniformization_hands_tiny_components_back_to_the_matrix():
    """Uniformization's truncation error is absolute (2^-100 of the mass), so a piece whose
    result has a component below 2^-56 is computed with the matrix exponential instead, as
    before the vector path existed: on a 7-state chain after two once-used 1 us steps, S5 ~ 6e-17
    and S6 ~ 2e-20 must equal the matrix path (C++ expm per piece, emulated here with
    ``_core.expm``) to 1e-12 relative; the truncated series was 4e-3 and 11 % off there."""
    from ketacore import _core
    n = 7
    names = [f"S{i}" for i in range(n)]
    g = kc.Scheme(names, [(names[i], names[i + 1], kc.rate(1e3, "L")) for i in range(n - 1)],
                  {names[-1]: 1e-12}, ligands=["L"])
    prot = kc.Protocol([kc.Step(1e-6, L=1.0), kc.Step(1e-6, L=0.5)])
    got = kc.solve(g, prot, dt=2e-6, initial="S0").occupancy[-1]
    p = np.eye(n)[0]
    for c in (1.0, 0.5):
        p = p @ _core.expm(g.q_matrix(L=c) * 1e-6, True)
    assert got[6] < 2.0 ** -56 and got[6] > 0
    np.testing.assert_allclose(got, p, rtol=1e-12, atol=0)
