"""Stochastic engine: API, validation, reproducibility (bit identity), memory plan, interrupts.

Statistical validation against exact theory is in test_stochastic_statistics.py.
"""
import _thread
import threading
import time

import numpy as np
import pytest

import ketacore as kc
from _stochastic_models import bench_scheme, ch82

SCH = bench_scheme()
PROT = kc.Protocol([kc.Step(0.05, V=-0.07), kc.Step(0.1, V=-0.07, glutamate=1e-3),
                    kc.Step(0.0537, V=-0.04)])  # last boundary off the grid


def sim(**kw):
    args = dict(dt=1e-3, n_channels=50, n_trials=6, rng=7, initial="C0")
    args.update(kw)
    return kc.simulate(SCH, PROT, **args)


# ---------------------------------------------------------------------------- basics
@pytest.mark.parametrize("method", ["ssa", "population"])
def test_shapes_conservation_and_metadata(method):
    r = sim(method=method)
    S = int(np.floor(PROT.duration / 1e-3 + 1e-7)) + 1
    assert r.counts.shape == (6, S, SCH.n_states) and r.counts.dtype == np.int32
    assert (r.counts.sum(axis=-1) == 50).all()
    assert (r.counts[:, 0, SCH.index("C0")] == 50).all()
    assert (r.counts >= 0).all()
    assert r.method == method and r.entropy == 7 and list(r.trials) == list(range(6))
    assert r.metadata["version"] == kc.__version__
    np.testing.assert_allclose(r.time, np.arange(S) * 1e-3)
    assert r.open_probability.shape == (6, S)
    g = SCH.conductance
    np.testing.assert_allclose(r.current, (r.counts @ g) * (r.V - SCH.e_rev))
    assert r["O"].shape == (6, S)
    # nothing happens before glutamate arrives: all channels stay in C0 for 50 ms
    assert (r.counts[:, :50, SCH.index("C0")] == 50).all()


def test_callable_module_alias():
    """`import ketacore.simulate as mod` gives the function (the package attribute shadows the
    submodule), and the result class is exported at the top level."""
    import sys
    import ketacore.simulate as mod
    module = sys.modules["ketacore.simulate"]
    assert mod is kc.simulate and callable(mod)
    assert "SimulationResult" in kc.__all__ and kc.SimulationResult is module.SimulationResult
    r = mod(SCH, PROT, dt=1e-2, rng=1)
    assert isinstance(r, kc.SimulationResult)
    S = int(np.floor(PROT.duration / 1e-2 + 1e-7)) + 1
    assert r.counts.shape == (1, S, SCH.n_states) and (r.counts.sum(axis=-1) == 1).all()
    assert r.entropy == 1 and r.n_channels == 1
    assert r.counts.tobytes() == kc.simulate(SCH, PROT, dt=1e-2, rng=1).counts.tobytes()


# ---------------------------------------------------------- voltage and current
# Steps at five voltages with E_rev = +10 mV, so the driving force V - E_rev changes sign (and
# is 0 in the third step); boundaries fall on the grid (40 ms, 60 ms = the end) and between
# grid points (10.5 ms, 30.5 ms, 52.3 ms).  Glutamate throughout, equilibrium start: channels open.
_VSTEPS = [("0.0105", -0.07), ("0.02", 0.03), ("0.0095", 0.01), ("0.0123", -0.04), ("0.0077", 0.05)]
_VPROT = kc.Protocol([kc.Step(float(d), V=v, glutamate=1e-3) for d, v in _VSTEPS])
_E_REV = 0.01


def _erev_scheme():
    return kc.Scheme(SCH.states, SCH.transitions, SCH.conductance, e_rev=_E_REV, name="bench-erev")


def _protocol_voltage(dt_text, n):
    """Voltage at sample k = the step in force at k*dt (a sample on a boundary belongs to the step
    that starts there), from the step durations in exact rational arithmetic."""
    from fractions import Fraction
    dt = Fraction(dt_text)
    ends, acc = [], Fraction(0)
    for d, _ in _VSTEPS:
        acc += Fraction(d)
        ends.append(acc)
    out = []
    for k in range(n):
        t = k * dt
        i = sum(1 for e in ends[:-1] if e <= t)
        out.append(_VSTEPS[i][1])
    return np.array(out)


@pytest.mark.parametrize("method", ["ssa", "population"])
def test_voltage_and_current_against_protocol(method):
    """r.V is the protocol voltage of each sample (computed here from the step durations, not by
    the library), and the current is sum_i n_i g_i (V - E_rev) with E_rev != 0: a driving force
    with the wrong sign, without E_rev, or a voltage taken from the wrong step fails."""
    sch = _erev_scheme()
    dt = 1e-3
    r = kc.simulate(sch, _VPROT, dt=dt, n_channels=200, n_trials=3, method=method, rng=17)
    S = 61
    assert r.time.size == S
    V = _protocol_voltage("0.001", S)
    assert np.array_equal(r.V, V)
    # spot checks of the boundary rule: 10 ms before the 10.5 ms boundary, 11 ms after; 40 ms on
    # a boundary belongs to the -40 mV step; the last sample (60 ms) to the last step
    assert (V[10], V[11], V[39], V[40], V[60]) == (-0.07, 0.03, 0.01, -0.04, 0.05)
    jO = sch.index("O")
    g_O = sch.conductance[jO]
    expected = r.counts[..., jO] * g_O * (V - _E_REV)
    np.testing.assert_allclose(r.current, expected, rtol=1e-12, atol=0)
    assert r.counts[..., jO].min() > 0  # every sample has open channels, so the signs are tested
    assert (r.current[:, V < _E_REV] < 0).all() and (r.current[:, V > _E_REV] > 0).all()
    assert (r.current[:, V == _E_REV] == 0).all()
    # summary of the same streams: the current is the trial mean of the per-trial currents
    s = kc.simulate(sch, _VPROT, dt=dt, n_channels=200, n_trials=3, method=method, rng=17,
                    record="summary")
    assert np.array_equal(s.V, V)
    np.testing.assert_allclose(s.current, r.current.mean(axis=0), rtol=1e-12, atol=0)
    np.testing.assert_allclose(s.current, r.counts[..., jO].mean(axis=0) * g_O * (V - _E_REV),
                               rtol=1e-12, atol=0)
    np.testing.assert_allclose(s.open_probability, r.counts[..., jO].mean(axis=0) / 200, rtol=1e-12)


@pytest.mark.parametrize("method", ["ssa", "population"])
def test_voltage_on_a_coarse_grid(method):
    """dt = 7 ms: most boundaries fall between samples; r.V still follows the step in force."""
    r = kc.simulate(_erev_scheme(), _VPROT, dt=7e-3, n_channels=5, method=method, rng=3)
    S = int(np.floor(0.06 / 7e-3 + 1e-7)) + 1
    assert r.time.size == S == 9
    assert np.array_equal(r.V, _protocol_voltage("0.007", S))


@pytest.mark.parametrize("method", ["ssa", "population"])
def test_summary_matches_counts_exactly(method):
    a = sim(method=method, n_trials=9)
    b = sim(method=method, n_trials=9, record="summary")
    assert b.counts is None
    c = a.counts.astype(np.int64)
    assert (b.sum_counts == c.sum(axis=0)).all()
    assert (b.sum_sq_counts == (c * c).sum(axis=0)).all()
    np.testing.assert_allclose(b.mean, c.mean(axis=0))
    np.testing.assert_allclose(b.var, c.var(axis=0, ddof=1), atol=1e-9)
    np.testing.assert_allclose(b.open_probability, a.open_probability.mean(axis=0))


def _spy_core_threads(monkeypatch):
    """Record the thread count each simulate() call hands to the C++ core (the plan's
    threads_used, argument 11 of ketacore._core.simulate); plans cached before are dropped so
    every call goes through the spy."""
    import sys
    from ketacore import _core
    module = sys.modules["ketacore.simulate"]
    seen = []
    real = _core.simulate

    def spy(*args):
        seen.append(int(args[11]))
        return real(*args)

    monkeypatch.setattr(_core, "simulate", spy)
    monkeypatch.setattr(module, "_PLANS", {})
    return seen


@pytest.mark.parametrize("n_threads", [1, 2])
def test_summary_sums_of_squares_carry_past_64_bits(n_threads, monkeypatch):
    """Sums of squares are exact 128-bit integers.  4e9 channels held in C0 (no glutamate, nothing
    moves): each square (1.6e19) fits in 64 bits but the sum over 3 trials (4.8e19) does not, so
    the low word must carry into the high word, both when one thread accumulates every trial and
    when a second thread's sums are merged into the first's.  With 2 threads, the trials split 1+2
    or 2+1, and either way the 128-bit merge of the two threads' sums carries out of the low word
    (1.6e19 + (3.2e19 - 2**64) > 2**64).  The job (1e5 samples, tens of ms per trial) is long
    enough that the plan really runs 2 threads (asserted) and the second thread starts before the
    first has taken all three trials."""
    seen = _spy_core_threads(monkeypatch)
    N = 4_000_000_000
    quiet = kc.Step(1.0, V=-0.07)
    r = kc.simulate(SCH, quiet, dt=1e-5, n_channels=N, n_trials=3, method="population", rng=1, initial="C0",
                    record="summary", n_threads=n_threads)
    assert seen == [n_threads]
    c0 = SCH.index("C0")
    q = r.sum_sq_counts
    assert q.dtype == object and q.shape == (100_001, SCH.n_states)
    assert all(int(v) == 3 * N * N for v in q[:, c0]) and all(int(v) == 0 for v in np.delete(q, c0, axis=1).ravel())
    assert (r.sum_counts[:, c0] == 3 * N).all()
    np.testing.assert_array_equal(r.var, 0.0)


def test_ssa_single_channel_equals_event_log():
    """Same stream (trial i, block 0) and same algorithm: the grid counts of one channel are the
    event record sampled at the grid points."""
    r = kc.simulate(SCH, PROT, dt=1e-3, n_channels=1, n_trials=3, method="ssa", rng=11)
    log = kc.simulate_events(SCH, PROT, n_trials=3, rng=11)
    for i in range(3):
        times, states = log[i]
        k = np.searchsorted(times, r.time, side="right") - 1
        expected = np.zeros((r.time.size, SCH.n_states), dtype=np.int32)
        expected[np.arange(r.time.size), states[k]] = 1
        assert (r.counts[i] == expected).all()
        assert times[0] == 0 and np.all(np.diff(times) > 0) and times[-1] < PROT.duration
        d, st = log.dwells(i, include_last=True)
        assert abs(d.sum() - PROT.duration) < 1e-12
        assert np.all(states[1:] != states[:-1])


def test_event_log_api():
    log = kc.simulate_events(ch82(), kc.Step(5.0, A=1e-7), n_trials=2, rng=2)
    assert len(log) == 2 and log.entropy == 2 and log.state_names == ch82().states
    assert log.n_events.shape == (2,)
    assert "EventLog" in repr(log)
    o = log.open_dwells(0, include_first=True, include_last=True)
    s = log.shut_dwells(0, include_first=True, include_last=True)
    assert abs(o.sum() + s.sum() - 5.0) < 1e-9
    log2 = kc.simulate_events(ch82(), kc.Step(5.0, A=1e-7), trials=[1], rng=2)
    assert (log2[0][0] == log[1][0]).all() and (log2[0][1] == log[1][1]).all()


# ---------------------------------------------------------------- reproducibility
@pytest.mark.parametrize("method", ["ssa", "population"])
@pytest.mark.parametrize("record", ["counts", "summary"])
def test_bit_identical_across_threads(method, record):
    runs = [sim(method=method, record=record, n_trials=7, n_threads=t, n_channels=30) for t in (1, 2, 4)]
    for r in runs[1:]:
        if record == "counts":
            assert r.counts.tobytes() == runs[0].counts.tobytes()
        else:
            assert r.sum_counts.tobytes() == runs[0].sum_counts.tobytes()
            assert np.asarray(r.sum_sq_counts).tobytes() == np.asarray(runs[0].sum_sq_counts).tobytes()


def test_bit_identical_across_threads_channel_blocks(monkeypatch):
    """One trial with 36 channel blocks (block-parallel path) and 2 trials (trial-parallel path with
    2 threads, block-parallel with 4).  The 1 s protocol makes the single trial long enough that the
    plan runs it on 2 and 4 threads (asserted; a short job runs on one thread whatever n_threads)."""
    seen = _spy_core_threads(monkeypatch)
    prot = kc.Step(1.0, glutamate=1e-3)
    for n_trials in (1, 2):
        del seen[:]
        runs = [kc.simulate(SCH, prot, dt=1e-3, n_channels=9000, n_trials=n_trials, method="ssa", rng=5,
                            n_threads=t) for t in (1, 2, 4)]
        assert seen == [1, 2, 4]
        assert runs[1].counts.tobytes() == runs[0].counts.tobytes() == runs[2].counts.tobytes()
        assert (runs[0].counts.sum(-1) == 9000).all()
    # the single trial equals trial 0 of the two-trial run
    a = kc.simulate(SCH, prot, dt=1e-3, n_channels=9000, n_trials=2, method="ssa", rng=5)
    b = kc.simulate(SCH, prot, dt=1e-3, n_channels=9000, n_trials=1, method="ssa", rng=5, n_threads=2)
    assert a.counts[0].tobytes() == b.counts[0].tobytes()


@pytest.mark.parametrize("method", ["ssa", "population"])
def test_trial_splits_identical(method):
    whole = sim(method=method, n_trials=10)
    a = sim(method=method, n_trials=None, trials=range(0, 4))
    b = sim(method=method, n_trials=6, trial_offset=4)
    assert np.concatenate([a.counts, b.counts]).tobytes() == whole.counts.tobytes()
    odd = sim(method=method, n_trials=None, trials=[7, 3])
    assert odd.counts.tobytes() == whole.counts[[7, 3]].tobytes()
    sa = sim(method=method, n_trials=None, trials=range(0, 4), record="summary")
    sb = sim(method=method, n_trials=None, trials=range(4, 10), record="summary")
    sw = sim(method=method, n_trials=10, record="summary")
    assert ((sa.sum_counts + sb.sum_counts) == sw.sum_counts).all()
    assert ((sa.sum_sq_counts + sb.sum_sq_counts) == sw.sum_sq_counts).all()


def test_rng_forms_and_determinism():
    a = sim(rng=123)
    assert a.counts.tobytes() == sim(rng=123).counts.tobytes()
    assert a.counts.tobytes() != sim(rng=124).counts.tobytes()
    assert sim(rng=np.random.SeedSequence(123)).counts.tobytes() == a.counts.tobytes()
    r = sim(rng=None)
    assert isinstance(r.entropy, int)
    assert sim(rng=r.entropy).counts.tobytes() == r.counts.tobytes()
    big = sim(rng=2**127 + 5)
    assert big.entropy == 2**127 + 5


def test_rng_generator_is_a_source_of_randomness():
    """SPEC 7: a passed Generator is consumed -- replicates in a loop differ, the same seed
    reproduces the loop, and each result's entropy reproduces its own run."""
    g = np.random.default_rng(123)
    reps = [sim(rng=g) for _ in range(3)]
    assert len({r.counts.tobytes() for r in reps}) == 3
    assert len({r.entropy for r in reps}) == 3
    assert reps[0].counts.tobytes() != sim(rng=123).counts.tobytes()   # not the seed itself
    g = np.random.default_rng(123)
    again = [sim(rng=g) for _ in range(3)]
    assert [r.counts.tobytes() for r in again] == [r.counts.tobytes() for r in reps]
    for r in reps:
        assert isinstance(r.entropy, int)
        assert sim(rng=r.entropy).counts.tobytes() == r.counts.tobytes()
        assert sim(rng=np.random.SeedSequence(r.entropy)).counts.tobytes() == r.counts.tobytes()
    for method in ("ssa", "population"):
        g = np.random.default_rng(7)
        a, b = sim(method=method, rng=g), sim(method=method, rng=g)
        assert a.counts.tobytes() != b.counts.tobytes()


def test_simulate_events_generator_is_a_source_of_randomness():
    kw = dict(n_trials=2)
    g = np.random.default_rng(5)
    a = kc.simulate_events(SCH, kc.Step(0.5, glutamate=1e-3), rng=g, **kw)
    b = kc.simulate_events(SCH, kc.Step(0.5, glutamate=1e-3), rng=g, **kw)
    assert a.entropy != b.entropy
    c = kc.simulate_events(SCH, kc.Step(0.5, glutamate=1e-3), rng=a.entropy, **kw)
    def flat(log):
        return (tuple(len(t) for t in log.times), np.concatenate(log.times).tobytes(),
                np.concatenate(log.states).tobytes())
    assert c.entropy == a.entropy and flat(c) == flat(a) and flat(a) != flat(b)


def test_auto_picks_cheaper_method():
    prot = kc.Step(1.0, glutamate=1e-3)
    assert kc.simulate(SCH, prot, dt=1e-3, n_channels=10**9, rng=1, record="summary").method == "population"
    assert kc.simulate(SCH, prot, dt=1e-4, n_channels=1, rng=1).method == "ssa"
    # many channels with few transitions each: ssa's cost per channel decides (measured on the
    # development VM: ssa ~4 ms, population ~0.8 ms for this call)
    short = kc.Step(0.01, glutamate=1e-3)
    assert kc.simulate(SCH, short, dt=1e-5, n_channels=100_000, rng=1, record="summary").method == "population"


def test_wide_counts_for_huge_populations():
    r = kc.simulate(SCH, kc.Step(0.01, glutamate=1e-3), dt=1e-3, n_channels=3 * 10**9, n_trials=2,
                    method="population", rng=1)
    assert r.counts.dtype == np.int64 and (r.counts.sum(-1) == 3 * 10**9).all()
    s = kc.simulate(SCH, kc.Step(0.01, glutamate=1e-3), dt=1e-3, n_channels=3 * 10**9, n_trials=2,
                    method="population", rng=1, record="summary")
    assert (s.sum_counts == r.counts.sum(0)).all()
    exact = (r.counts.astype(object) ** 2).sum(0)
    assert (np.asarray(s.sum_sq_counts, dtype=object) == exact).all()
    assert np.isfinite(s.var).all()
    np.testing.assert_allclose(r.var, s.var)  # counts-mode sums use exact Python ints here
    assert (np.asarray(r.sum_sq_counts, dtype=object) == exact).all()


def test_to_xarray():
    pytest.importorskip("xarray")
    ds = sim().to_xarray()
    assert ds["counts"].dims == ("trial", "time", "state")
    assert ds.attrs["method"] in ("ssa", "population")
    ds2 = sim(record="summary").to_xarray()
    assert set(ds2.data_vars) >= {"mean", "var", "open_probability", "current", "V"}


# -------------------------------------------------------------------- validation
@pytest.mark.parametrize("kw,exc,match", [
    (dict(n_channels=0), ValueError, "n_channels"),
    (dict(n_channels=1.5), TypeError, "n_channels"),
    (dict(n_trials=0), ValueError, "n_trials"),
    (dict(dt=0.0), ValueError, "dt"),
    (dict(dt=float("nan")), ValueError, "dt"),
    (dict(dt=float("inf")), ValueError, "dt"),
    (dict(dt="1ms"), TypeError, "dt"),
    (dict(method="gillespie"), ValueError, "method"),
    (dict(record="all"), ValueError, "record"),
    (dict(n_threads=0), ValueError, "n_threads"),
    (dict(rng="seed"), TypeError, "rng"),
    (dict(rng=-3), ValueError, "rng"),
    (dict(trials=[1, 1], n_trials=None), ValueError, "trials"),
    (dict(trials=range(3), n_trials=5), ValueError, "n_trials"),
    (dict(trials=range(3), n_trials=None, trial_offset=2), ValueError, "trial_offset"),
    (dict(trials=[-1], n_trials=None), ValueError, "trials"),
    (dict(trial_offset=-1), ValueError, "trial_offset"),
    (dict(initial="nope"), ValueError, "initial"),
])
def test_validation_errors_name_the_parameter(kw, exc, match):
    with pytest.raises(exc, match=match):
        sim(**kw)


def test_scheme_and_protocol_types():
    with pytest.raises(TypeError, match="scheme"):
        kc.simulate(1.5, PROT, dt=1e-3)
    with pytest.raises(ValueError, match="unknown model 'x'"):  # a string is a model name
        kc.simulate("x", PROT, dt=1e-3)
    with pytest.raises(TypeError, match="protocol"):
        kc.simulate(SCH, [1], dt=1e-3)
    with pytest.raises(TypeError, match="scheme"):
        kc.simulate_events(None, PROT)


def test_memory_refusal_with_estimate():
    with pytest.raises(ValueError, match=r"GiB.*estimate|estimate.*GiB"):
        kc.simulate(SCH, kc.Step(1000.0, glutamate=1e-3), dt=1e-6, n_channels=10, n_trials=10**6,
                    method="population", rng=1)
    with pytest.raises(ValueError, match="GiB"):
        kc.simulate_events(SCH, kc.Step(1e9, glutamate=1e-3), n_trials=1000, rng=1)
    with pytest.raises(ValueError, match="max_events"):
        kc.simulate_events(SCH, kc.Step(100.0, glutamate=1e-3), n_trials=1, rng=1, max_events=10)


# -------------------------------------------------------------------- interrupts
def _interrupt_after(delay, fired):
    """Send Ctrl-C (KeyboardInterrupt) to the main thread after `delay` s; the moment it was sent
    is appended to `fired`."""
    def fire():
        fired.append(time.perf_counter())
        _thread.interrupt_main()
    t = threading.Timer(delay, fire)
    t.start()
    return t


# How long after the interrupt the call may take to return.  The documented behaviour is "within
# ~0.1 s"; the bound leaves room for a loaded 2-core machine and sanitizer builds (several times
# slower), and is still far below the length of every job here if it ran to the end (each has
# 3e8 or more transitions or binomial draws: 30 s or more on the development VM), so a call that
# ignored Ctrl-C would fail it.
_CANCEL_BOUND = 3.0


@pytest.mark.parametrize("call", [
    lambda: kc.simulate(SCH, kc.Step(1e9, glutamate=1e-3), dt=1e7, n_channels=1, method="ssa", rng=1,
                        n_threads=1),
    lambda: kc.simulate(SCH, kc.Step(1e7, glutamate=1e-3), dt=1e6, n_channels=20000, n_trials=4,
                        method="ssa", rng=1, n_threads=2),
    lambda: kc.simulate(SCH, kc.Step(1.0, glutamate=1e-3), dt=1e-3, n_channels=100, n_trials=10**6,
                        method="population", rng=1, record="summary"),
    lambda: kc.simulate_events(SCH, kc.Step(3e6, glutamate=1e-3), n_trials=2, rng=1, n_threads=1),
    # a 384 MB counts output (a smoke test of interrupting a large counts job; it does not pin
    # the removal of the buffer's zero-fill under the GIL, which cost ~0.1-0.3 s here, well
    # inside the bound)
    lambda: kc.simulate(SCH, kc.Step(200.0, glutamate=1e-3), dt=1e-3, n_channels=2000, n_trials=80,
                        method="ssa", rng=1, n_threads=1),
], ids=["ssa-1ch", "ssa-blocks", "population", "events", "ssa-counts-384MB"])
def test_keyboard_interrupt_stops_the_job(call, sigint_raises):
    """Ctrl-C during a long job raises KeyboardInterrupt soon after the interrupt (measured from
    the moment it was sent, so the time spent setting up the job does not count)."""
    fired = []
    timer = _interrupt_after(0.2, fired)
    with pytest.raises(KeyboardInterrupt):
        call()
    returned = time.perf_counter()
    timer.join()
    assert len(fired) == 1
    assert returned - fired[0] < _CANCEL_BOUND
    # the engine is usable afterwards (nothing left running or locked)
    assert sim(n_trials=1).counts.shape[0] == 1


# -------------------------------------------------------------------- refusals allocate nothing
@pytest.mark.parametrize("call, match", [
    (lambda: kc.simulate(SCH, kc.Step(1.0, glutamate=1e-3), dt=1e-3, n_channels=1000,
                         n_trials=10**9, method="population", rng=1), "record='summary'"),
    (lambda: kc.simulate(SCH, kc.Step(1.0, glutamate=1e-3), dt=1e-3, n_channels=10**4,
                         n_trials=10**9, method="ssa", record="summary", rng=1), "transitions"),
    (lambda: kc.simulate_events(SCH, kc.Step(1.0, glutamate=1e-3), n_trials=10**9, rng=1),
     "split the trials"),
    (lambda: kc.simulate(SCH, kc.Step(1.0, glutamate=1e-3), dt=1e-3, n_channels=1000,
                         trials=range(2**32 - 10**9, 2**32), method="population", rng=1), "record='summary'"),
], ids=["counts", "summary", "events", "trials-range"])
def test_impossible_requests_are_refused_before_allocating(call, match):
    """A request for 10**9 trials used to build its 8 GB trial-index array (and take ~30 s)
    before the memory plan refused it.  Now the indices stay a range until the request is
    accepted: the refusal allocates almost nothing (traced by tracemalloc, which numpy reports
    to), and its advice fits the call (simulate_events has no summaries)."""
    import tracemalloc
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=match) as e:
            call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20, peak
    if "events" in str(e.value):
        assert "summar" not in str(e.value)


def test_cost_model_rates_match_theory_and_fall_back_on_reducible_chains():
    """The cost model's per-condition inputs come from one C++ pass per chunk of conditions
    (exit rates and GTH equilibria; a voltage ramp has one condition per sample): they must
    equal the exit rates and theory.equilibrium of each condition, not depend on the chunking,
    and a reducible condition (GTH breaks down) falls back to p0."""
    import importlib
    from ketacore import theory
    SM = importlib.import_module("ketacore.simulate")
    mg = kc.block(kc.models.get("erreger2005_2a"), "mg")
    n = 200
    ramp = kc.Protocol.from_waveform(np.arange(n) * 1e-3, n * 1e-3, V=np.linspace(-0.1, 0.04, n),
                                     glutamate=1e-3, mg=1e-3)
    _, _, conds = ramp.compile(mg)
    comp = mg._compiled()
    p0 = np.full(mg.n_states, 1.0 / mg.n_states)
    SM._RATE_CACHE.clear()
    rate, top, at_eq = SM._condition_rates(comp, conds, p0)
    for c in range(0, n, 37):
        Q = np.asarray(comp.q_matrix(conds[c]))
        exits = -np.diag(Q)
        ref = theory.equilibrium(Q)
        assert rate[c] == pytest.approx(0.5 * (exits @ p0 + exits @ ref), rel=1e-12)
        assert at_eq[c] == pytest.approx(exits @ ref, rel=1e-12)   # (the forced-ssa warning's)
        assert top[c] == exits.max()
        e, peq = comp.exits_equilibria(conds[c:c + 1])
        np.testing.assert_allclose(peq[0], ref, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(e[0], exits)
    # in chunks (bounded memory, Ctrl-C between core calls): the same result, chunk edges included
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SM, "_RATES_CHUNK_WORK", mg.n_states ** 3 * 7)  # 7 conditions per call
        SM._RATE_CACHE.clear()
        r7, t7, _ = SM._condition_rates(comp, conds, p0)
    np.testing.assert_allclose(r7, rate, rtol=1e-14)  # (BLAS may sum a chunk in another order)
    np.testing.assert_array_equal(t7, top)
    # above the dense limit p0 stands in for the equilibrium
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SM, "_DENSE_ESTIMATE_MAX_STATES", 3)
        SM._RATE_CACHE.clear()
        r_p0, _, _ = SM._condition_rates(comp, conds[:5], p0)
    e, _ = comp.exits_equilibria(conds[:5], False)
    np.testing.assert_allclose(r_p0, e @ p0, rtol=1e-15)
    SM._RATE_CACHE.clear()
    rest = kc.Protocol([kc.Step(0.1, mg=1e-3), kc.Step(0.1, glutamate=1e-3, mg=1e-3)])
    _, _, conds = rest.compile(mg)
    e, peq = comp.exits_equilibria(conds)
    assert np.all(np.isnan(peq[0]))  # no agonist: trapped states absorbing, GTH breaks down
    np.testing.assert_allclose(peq[1], theory.equilibrium(mg, glutamate=1e-3, mg=1e-3), atol=1e-12)
    rate, _, _ = SM._condition_rates(comp, conds, p0)
    assert rate[0] == pytest.approx(e[0] @ p0, rel=1e-12)  # the fallback
    # one closed class without state 0 (ch82 with no agonist: R, the last state, absorbs): GTH
    # on the whole chain breaks down, the class's equilibrium is found from reachability
    ch = kc.models.as_scheme("ch82")
    conds = np.array([[-0.07, ch.temperature, 0.0], [-0.07, ch.temperature, 1e-7]])
    e, peq = ch._compiled().exits_equilibria(conds)
    np.testing.assert_array_equal(peq[0], [0, 0, 0, 0, 1])
    np.testing.assert_allclose(peq[1], theory.equilibrium(ch, agonist=1e-7), rtol=1e-13)
    # a chain whose closed class sits between transient states, and one with two closed classes
    Q = np.array([[-1.0, 1.0, 0.0, 0.0], [0.0, -2.0, 2.0, 0.0], [0.0, 3.0, -3.0, 0.0], [0.0, 0.0, 5.0, -5.0]])
    sch = kc.Scheme(["A", "B", "C", "D"], [("A", "B", 1.0), ("B", "C", 2.0), ("C", "B", 3.0), ("D", "C", 5.0)],
                    {"B": 1e-12})
    np.testing.assert_array_equal(sch.q_matrix(), Q)
    e, peq = sch._compiled().exits_equilibria(np.array([[-0.07, sch.temperature]]))
    np.testing.assert_allclose(peq[0], [0, 0.6, 0.4, 0], rtol=1e-15)
    two = kc.Scheme(["A", "B", "C"], [("A", "B", 1.0), ("A", "C", 2.0)], {"B": 1e-12})
    e, peq = two._compiled().exits_equilibria(np.array([[-0.07, two.temperature]]))
    assert np.all(np.isnan(peq[0]))


def test_gth_kernel_matches_the_reference_reduction():
    """theory._gth is the C++ linalg::gth (shared with the cost model): checked against GTH
    written out in numpy (Grassmann, Taksar & Heyman 1985) on random stiff generators, the
    breakdown on reducible chains, and one state."""
    from ketacore import theory

    def reference(Q):
        k = Q.shape[0]
        A = Q.copy()
        np.fill_diagonal(A, 0.0)
        for m in range(k - 1, 0, -1):
            s = A[m, :m].sum()
            if not s > 0:
                return None
            A[:m, m] /= s
            A[:m, :m] += np.outer(A[:m, m], A[m, :m])
        p = np.zeros(k)
        p[0] = 1.0
        for m in range(1, k):
            p[m] = p[:m] @ A[:m, m]
        return p / p.sum()

    rng = np.random.default_rng(7)
    for k in (2, 3, 6, 17, 40):
        Q = rng.random((k, k)) * 10.0 ** rng.uniform(-4, 7, (k, k))
        np.fill_diagonal(Q, 0.0)
        np.fill_diagonal(Q, -Q.sum(axis=1))
        p = theory._gth(Q)
        np.testing.assert_allclose(p, reference(Q), rtol=1e-13)
        assert np.abs(p @ Q).max() <= 1e-12 * np.abs(Q).max()
    assert theory._gth(np.array([[0.0, 1.0], [0.0, 0.0]])) is None  # state 1 absorbing
    # an overflow (rates spanning 1e400) is not a reducible chain: theory says which it is
    assert theory._gth(np.array([[-1e200, 1e200], [1e-200, -1e-200]])) is None
    with pytest.raises(ValueError, match="GTH overflowed"):
        theory.equilibrium(np.array([[-1e200, 1e200], [1e-200, -1e-200]]))
    np.testing.assert_array_equal(theory._gth(np.zeros((1, 1))), [1.0])
    # one closed class holding state 0, with transient states: that class's equilibrium
    Q = np.array([[-1.0, 1.0, 0.0], [2.0, -2.0, 0.0], [0.5, 0.5, -1.0]])
    np.testing.assert_allclose(theory._gth(Q), [2 / 3, 1 / 3, 0.0], atol=1e-15)


def _ring(K, up, down):
    """S0..S{K-1} in a ring (one reversible pair for K = 2) with unequal rates a + b j (1/s), so
    every state is visited."""
    states = [f"S{j}" for j in range(K)]
    trans = []
    for j in range(K if K > 2 else 1):
        trans.append((states[j], states[(j + 1) % K], up[0] + up[1] * j))
        trans.append((states[(j + 1) % K], states[j], down[0] + down[1] * j))
    return kc.Scheme(states, trans, conductance={"S0": 1e-12}, name=f"ring{K}")


def _assert_counts_are_event_record(r, log):
    """One channel per trial: the grid counts are the event record sampled at the grid points."""
    K = r.counts.shape[-1]
    for i in range(len(log)):
        times, st = log[i]
        k = np.searchsorted(times, r.time, side="right") - 1
        expected = np.zeros((r.time.size, K), dtype=np.int32)
        expected[np.arange(r.time.size), st[k]] = 1
        np.testing.assert_array_equal(r.counts[i], expected)


@pytest.mark.parametrize("K", [2, 3, 5, 8, 9, 13, 17])
def test_grid_counts_for_any_number_of_states(K):
    """The prefix sum over samples has a register-resident form per state count (1-8) and a
    blocked one for larger schemes: every form must turn the difference array into the event
    record sampled at the grid points, and conserve the channels at every sample."""
    sch = _ring(K, (400.0, 37.0), (150.0, 11.0))
    prot = kc.Step(0.2)
    r = kc.simulate(sch, prot, dt=1e-3, n_channels=1, n_trials=2, method="ssa", rng=5)
    log = kc.simulate_events(sch, prot, n_trials=2, rng=5)
    for i in range(2):
        assert len(np.unique(log[i][1])) == K  # the record visits every state
    _assert_counts_are_event_record(r, log)
    many = kc.simulate(sch, prot, dt=1e-4, n_channels=300, n_trials=1, method="ssa", rng=5)
    assert (many.counts.sum(axis=-1) == 300).all()
    assert (many.counts >= 0).all() and (many.counts[0, -1] > 0).sum() >= min(K, 5)


def test_auto_counts_segment_crossings_and_matrices():
    """A voltage ramp given as a waveform is thousands of short segments: every ssa channel
    crosses each boundary (its pending dwell is redrawn) and the population method builds one
    matrix per condition and straddled grid interval.  The cost model used to count neither.
    On the development VM, 2 trials of this ramp: population ~0.42 s whatever the number of
    channels; ssa ~45 ms for one channel, ~0.5 s for 1000 (4e7 crossings; a toss-up), several
    seconds for 10000 (benchmarks/bench_auto.py times the first two)."""
    from ketacore.simulate import _make_plan
    g = kc.block("erreger2005_2a", "mg")  # 16 states, the calibration case
    t = np.arange(20000) * 1e-5
    ramp = kc.Protocol.from_waveform(t, 0.2, V=-0.08 + 0.12 * t / t[-1], glutamate=1e-3, mg=1e-3)

    def pick(n):  # the method auto would run (planned, not run)
        plan, _ = _make_plan(g, ramp, 1e-4, n, 2, "auto", "summary", None, None, 0, 1, 1)
        return plan.chosen
    assert pick(1) == "ssa" and pick(10000) == "population"
    assert kc.simulate(g, ramp, dt=1e-4, n_channels=10000, n_trials=2, rng=1,
                       record="summary").method == "population"
    from ketacore.simulate import _boundaries
    durs, idx, _ = ramp.compile(g)
    n_cross, n_straddle = _boundaries(durs, idx, 0.2, 1e-4)
    assert n_cross == 19999 and n_straddle == 19999 - 1999  # 1 boundary in 10 is on the grid
    # a pulse train on the grid: crossings, no straddles; off the grid: a few distinct straddles
    on = kc.pulse_train(10, 50.0, 2e-3, during={"glutamate": 1e-3}, between={"mg": 1e-3})
    durs, idx, _ = on.compile(g)
    assert _boundaries(durs, idx, on.duration, 1e-4)[1] == 0
    durs, idx, _ = on.compile(g)
    assert 0 < _boundaries(durs, idx, on.duration, 3e-4)[1] <= 20
    # the straddle count is the number of distinct (condition before, after, offset) triples
    rng = np.random.default_rng(5)
    durs = rng.choice([1e-4, 1.5e-4, 2.5e-4], 3000)
    idx = rng.integers(0, 4, 3000)
    n_cross, n_straddle = _boundaries(durs, idx, durs.sum(), 1e-4)
    b = np.cumsum(durs)[:-1] / 1e-4
    frac = b - np.floor(b)
    off = (frac > 1e-9) & (frac < 1 - 1e-9)
    sig = np.stack([idx[:-1][off], idx[1:][off], np.round(frac[off] * 1e9)], axis=1)
    assert n_cross == 2999 and n_straddle == len(np.unique(sig, axis=0)) > 10


# ------------------------------------------------- fine grids (difference arrays above 256 KiB)
# A grid whose S x K int32 difference array is larger than 256 KiB is accumulated behind
# prefetches; with at most 8 states and at most 32767 channels per trial it is packed as 16-bit
# lanes (one 16-byte row per sample, added modulo 2^16, exact because every final lane value lies
# in -N..N).  Channel blocks hold 256 channels drawn in order from one stream per (trial, block),
# so the first 32767 channels of a 32768-channel trial are the 32767 channels of a 32767-channel
# trial: the packed run (N = 32767) and the int32 run (N = 32768) differ by exactly one channel's
# occupancy, one-hot at every sample.
def _one_channel_apart(small, big, K):
    d = big.astype(np.int64) - small.astype(np.int64)
    assert d.shape[-1] == K
    assert ((d == 0) | (d == 1)).all() and (d.sum(axis=-1) == 1).all()


@pytest.mark.parametrize("n_threads", [1, 2])
def test_packed_fine_grid_equals_int32_grid(n_threads, monkeypatch):
    seen = _spy_core_threads(monkeypatch)
    long = kc.Step(0.2, glutamate=1e-3)  # 20001 samples x 6 states x 4 B = 480 KB: fine grid
    kw = dict(dt=1e-5, method="ssa", rng=3, n_threads=n_threads)
    small = kc.simulate(SCH, long, n_channels=32767, **kw)
    big = kc.simulate(SCH, long, n_channels=32768, **kw)
    assert seen == [n_threads, n_threads]  # the block-parallel path (thread merge) with 2
    _one_channel_apart(small.counts[0], big.counts[0], 6)
    assert (small.counts.sum(-1) == 32767).all() and small.counts.dtype == np.int32
    # summaries go through the same accumulation
    summ = kc.simulate(SCH, long, n_channels=32767, record="summary", n_trials=2, **kw)
    both = kc.simulate(SCH, long, n_channels=32767, n_trials=2, **kw)
    assert (summ.sum_counts == both.counts.sum(axis=0)).all()


@pytest.mark.parametrize("K", [6, 9])
def test_fine_grid_single_channel_equals_event_log(K):
    """One channel on a fine grid (20001 samples): packed rows for 6 states, prefetched int32
    rows for 9 (more than 8 lanes); both must be the event record sampled at the grid points."""
    sch = _ring(K, (900.0, 37.0), (350.0, 11.0))
    prot = kc.Step(0.2)
    r = kc.simulate(sch, prot, dt=1e-5, n_channels=1, n_trials=2, method="ssa", rng=4)
    log = kc.simulate_events(sch, prot, n_trials=2, rng=4)
    assert min(log.n_events) > 200
    _assert_counts_are_event_record(r, log)


def test_packed_lanes_at_the_ends_of_their_range():
    """All 32767 channels start in A and leave it within the first 10 us (rate 1e7/s; a channel is
    still in A at sample 1 with probability e^-100): lane A holds +32767 in row 0 and -32767 in row
    1, lane B +32767, the extremes of int16.  The int32 path (32768 channels) agrees channel for
    channel."""
    sch = kc.Scheme(["A", "B"], [("A", "B", 1e7), ("B", "A", 2.0)], conductance={"B": 1e-12})
    prot = kc.Step(0.4)  # 40001 samples x 2 states x 4 B = 320 KB: the fine-grid paths
    kw = dict(dt=1e-5, method="ssa", rng=8, initial="A")
    small = kc.simulate(sch, prot, n_channels=32767, **kw)
    big = kc.simulate(sch, prot, n_channels=32768, **kw)
    assert small.counts[0, 0].tolist() == [32767, 0] and small.counts[0, 1].tolist() == [0, 32767]
    _one_channel_apart(small.counts[0], big.counts[0], 2)
    # B -> A at 2/s: ~26000 returns over 0.4 s, each followed by an exit within ~0.1 us, so the
    # number in A at a sample is ~Poisson(32767 x 2e-7 = 0.0066): some of the 40000 samples see
    # one (P(none) ~ e^-260), none sees 4 or more (P ~ 40000 x 0.0066^4 / 24 = 3e-6)
    assert 0 < small.counts[0, 1:, 0].max() <= 3


def test_fine_grid_bit_identical_across_threads_and_splits(monkeypatch):
    seen = _spy_core_threads(monkeypatch)
    prot = kc.Step(0.3, glutamate=1e-3)
    kw = dict(dt=1e-5, method="ssa", rng=9, n_channels=3000)
    runs = [kc.simulate(SCH, prot, n_threads=t, **kw) for t in (1, 2, 4)]
    assert seen == [1, 2, 4]
    assert runs[0].counts.tobytes() == runs[1].counts.tobytes() == runs[2].counts.tobytes()
    two = kc.simulate(SCH, prot, n_trials=2, n_threads=2, **kw)
    second = kc.simulate(SCH, prot, n_trials=1, trial_offset=1, **kw)
    assert two.counts[0].tobytes() == runs[0].counts[0].tobytes()
    assert two.counts[1].tobytes() == second.counts[0].tobytes()


_PACKED_GRID_PROBE = """
import json, sys
import ketacore as kc
from ketacore import _core
module = sys.modules["ketacore.simulate"]
estimates, peaks = [], []

def hwm():
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) * 1024 for x in f if x.startswith("VmHWM"))
real_check, real_core = module.V_.check_memory, _core.simulate

def check(name, n_bytes, **kw):
    estimates.append(n_bytes)
    return real_check(name, n_bytes, **kw)

def core(*args):
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = hwm()
    out = real_core(*args)
    peaks.append(hwm() - before)
    return out
module.V_.check_memory = check
_core.simulate = core
sch = kc.Scheme(["A", "B"], [("A", "B", 3.0), ("B", "A", 2.0)], conductance={"B": 1e-12})
r = kc.simulate(sch, kc.Step(4.0), dt=1e-6, n_channels=3, method="ssa", rng=1, n_threads=1)
print(json.dumps({"shape": list(r.counts.shape), "estimates": estimates, "peaks": peaks}))
"""


def test_memory_estimate_covers_the_packed_grid():
    """Two states on 4e6 samples: the int32 output is 8 B per sample, the packed difference rows
    16 B per sample.  The plan's estimate must cover what the core call really adds to the
    process's peak resident memory (VmHWM, reset before the call; Linux only).  Measured in a
    fresh process: in the test process, memory an earlier test left resident (the output pool,
    a retained scratch) can serve the call without growing the peak -- CI once measured 0."""
    import json
    import os
    import subprocess
    import sys
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux /proc to reset the peak resident size")
    out = subprocess.run([sys.executable, "-c", _PACKED_GRID_PROBE], capture_output=True,
                         text=True, check=False, timeout=120,
                         env={**os.environ, "PYTHONSAFEPATH": "1"})
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["shape"] == [1, 4_000_001, 2]
    assert len(r["estimates"]) == len(r["peaks"]) == 1
    # 64 MB of packed rows (scratch, touched) and 32 MB of output, fresh in a new process
    assert r["peaks"][0] > 60e6
    # (under AddressSanitizer (.ci/run stage 2) each touched byte also costs 1/8 byte of shadow;
    # a fresh process also touches ~0.13 MB per call that the per-sample plan does not count --
    # page rounding, allocator headers, the result objects: CI measured 96 129 024 B against an
    # estimate of 96 000 128 B -- within the 20 % headroom check_memory keeps; 1 MiB allowed)
    shadow = 1.0 + 1.0 / 8.0 if os.environ.get("KETACORE_SANITIZED") else 1.0
    assert r["estimates"][0] * shadow + 2**20 >= r["peaks"][0]


# ------------------------------------------- ssa jump tables only where they pay (ramps)
@pytest.fixture
def table_rule(monkeypatch):
    """Set the plan's ssa jump-table rule (expected jumps per state a condition needs for a
    table) for one test; cached plans are dropped so every call plans afresh."""
    import sys
    module = sys.modules["ketacore.simulate"]

    def set_rule(v):
        monkeypatch.setattr(module, "_SSA_TABLE_JUMPS_PER_STATE", v)
        monkeypatch.setattr(module, "_PLANS", {})
    return set_rule


@pytest.mark.parametrize("K", [3, 6])
def test_jump_tables_change_speed_never_results(table_rule, K):
    """A condition without a table resolves each jump's bucket by two threshold searches; that must
    be exactly the table's answer, ambiguous buckets (the extra stream draw) included.  Counts and
    event logs with every table, with none, and with the default rule (a 2000-segment ramp: the
    ramp's conditions get none, the long step after it does) are the same bytes."""
    import sys
    module = sys.modules["ketacore.simulate"]
    states = [f"S{j}" for j in range(K)]
    trans = [(states[j], states[(j + 1) % K], kc.rate(300.0 + 40.0 * j, z_delta=0.8))
             for j in range(K)]
    trans += [(states[(j + 1) % K], states[j], kc.rate(800.0 + 13.0 * j, z_delta=-0.5))
              for j in range(K)]
    sch = kc.Scheme(states, trans, conductance={"S0": 1e-12}, name=f"vring{K}")
    t = np.arange(2000) * 2e-5
    ramp = kc.Protocol.from_waveform(t, 0.04, V=-0.1 + 0.15 * t / t[-1])
    prot = ramp + kc.Step(0.05, V=-0.02)
    outs = []
    durs, idx, conds = prot.compile(sch)
    p0 = module._initial(sch, None, prot)
    rate = module._rate_estimate(sch, sch._compiled(), conds, p0)
    default = module._ssa_table_mask(rate, durs, idx, 40.0 * 3, K)
    assert default[idx[-1]] and not default[idx[:2000]].any()  # the step's condition only
    for rule in (0.0, np.inf, module._SSA_TABLE_JUMPS_PER_STATE):
        table_rule(rule)
        r = kc.simulate(sch, prot, dt=1e-4, n_channels=40, n_trials=3, method="ssa", rng=6)
        ev = kc.simulate_events(sch, prot, n_trials=2, rng=6)
        outs.append((r.counts.tobytes(), [ev[i][0].tobytes() + ev[i][1].tobytes() for i in range(2)]))
    assert outs[0] == outs[1] == outs[2]
    assert ev.n_events.min() > 100


def test_ramp_builds_tables_only_where_they_pay():
    """A single channel on a 20000-segment ramp of a 16-state scheme used to build 20000 x 16
    512-entry tables (~330 MB, ~0.35 s); now the ramp's conditions get none (so also with 1000
    channels: ~10 expected jumps per 10 us condition).  The planned memory counts only the tables
    built."""
    import sys
    module = sys.modules["ketacore.simulate"]
    g = kc.block("erreger2005_2a", "mg")
    t = np.arange(20000) * 1e-5
    ramp = kc.Protocol.from_waveform(t, 0.2, V=-0.08 + 0.12 * t / t[-1], glutamate=1e-3, mg=1e-3)
    plan, _ = module._make_plan(g, ramp, 1e-4, 1, 1, "ssa", "counts", None, None, 0, 1, 1)
    assert plan.need < 50e6 and not plan.tables.any()
    plan, _ = module._make_plan(g, ramp, 1e-4, 1000, 2, "ssa", "summary", None, None, 0, 1, 1)
    assert not plan.tables.any()
    # a step: ~90 expected jumps for one channel in 0.2 s do not pay for a 16 x 512 table, the
    # ~90000 of 1000 channels do
    step = kc.Step(0.2, V=-0.06, glutamate=1e-3, mg=1e-3)
    for n, want in ((1, [0]), (1000, [1])):
        plan, _ = module._make_plan(g, step, 1e-4, n, 1, "ssa", "counts", None, None, 0, 1, 1)
        assert plan.tables.tolist() == want
    r = kc.simulate(g, ramp, dt=1e-4, n_channels=1, method="ssa", rng=2)
    assert (r.counts.sum(-1) == 1).all()


# ------------------------------------------------------- review (eighth session): API edges
def test_counts_sums_beyond_int64_are_exact():
    """record="counts" with n_trials x n_channels >= 2**63: the int64 sum over trials wrapped
    (mean -0.33 N); the sums are now Python ints, the mean and variance exact floats."""
    r = kc.simulate(SCH, kc.Step(5e-3, glutamate=1e-3), dt=1e-3, n_channels=2**62, n_trials=3,
                    method="population", rng=1)
    exact = r.counts.astype(object).sum(axis=0)
    assert (r.sum_counts == exact).all()
    np.testing.assert_allclose(r.mean.sum(-1), 2**62, rtol=1e-15)
    assert r.mean.dtype == float and (r.mean >= 0).all()
    c = r.counts.astype(object)  # the exact variance in Python ints (float64 numpy loses ~1e-6 here)
    exact_var = (3 * (c * c).sum(axis=0) - exact * exact) / 6
    np.testing.assert_allclose(r.var, exact_var.astype(float), rtol=1e-12)


def test_rng_accepts_a_results_tuple_entropy():
    """The docs say rng=result.entropy reproduces a run; a SeedSequence of several ints gives a
    tuple entropy, which rng= refused with a TypeError."""
    r = sim(rng=np.random.SeedSequence([1, 2, 3]), n_trials=2)
    assert r.entropy == (1, 2, 3)
    again = sim(rng=r.entropy, n_trials=2)
    assert again.counts.tobytes() == r.counts.tobytes() and again.entropy == (1, 2, 3)
    log = kc.simulate_events(SCH, PROT, n_trials=1, rng=np.random.SeedSequence([4, 5]))
    log2 = kc.simulate_events(SCH, PROT, n_trials=1, rng=log.entropy)
    assert log2[0][0].tobytes() == log[0][0].tobytes()
    for bad in [(), (1, -2), (1.5,), (True,)]:
        with pytest.raises(ValueError, match="rng given as a tuple"):
            sim(rng=bad)


def test_simulate_events_counts_crossings_for_threads_and_ctrl_c(monkeypatch):
    """simulate_events estimated its cost from transitions only: on a long ramp (mostly segment
    crossings) it ran inline on one thread, ignoring n_threads and Ctrl-C (the worker thread is
    what lets Ctrl-C through).  The core call now gets the threads and the worker thread."""
    import sys
    from ketacore import _core
    seen = []
    real = _core.simulate_events
    monkeypatch.setattr(_core, "simulate_events", lambda *a: seen.append((a[7], a[9])) or real(*a))
    g = kc.block("erreger2005_2a", "mg")
    n = 100000
    t = np.arange(n) * 2e-6
    ramp = kc.Protocol.from_waveform(t, n * 2e-6, V=np.linspace(-0.1, 0.04, n), glutamate=1e-3, mg=1e-3)
    module = sys.modules["ketacore.simulate"]
    # (thresholds lowered to 1 ms so that 4 trials do: 4 x 1e5 crossings ~ 6 ms estimated; counting
    # transitions alone, ~17 per trial, gave ~0.6 us)
    monkeypatch.setattr(module, "_PARALLEL_ABOVE", 1e-3)
    monkeypatch.setattr(module, "_BACKGROUND_ABOVE", 1e-3)
    log = kc.simulate_events(g, ramp, n_trials=4, rng=1, n_threads=2)
    assert seen == [(2, True)] and len(log) == 4


def test_max_events_message_is_a_bound_not_the_mean():
    with pytest.raises(ValueError, match=r"up to about .*rough mean .*max_events=54"):
        kc.simulate_events(ch82(), kc.Step(1.0, A=1e-7), n_trials=2, rng=1, max_events=54)


def test_summary_refusal_names_the_trial_indices():
    with pytest.raises(ValueError, match=r"trial indices alone take"):
        kc.simulate(SCH, kc.Step(1e-3, glutamate=1e-3), dt=1e-4, n_channels=1, n_trials=2**31,
                    record="summary", rng=1)


@pytest.mark.parametrize("trials, match", [([2**64], "got 18446744073709551616"),
                                           ([-2**64, 3], "got -18446744073709551616")])
def test_huge_trial_indices_are_a_range_error(trials, match):
    with pytest.raises(ValueError, match=match):
        sim(n_trials=None, trials=trials)


def test_initial_vector_error_names_the_bad_entry():
    with pytest.raises(ValueError, match=r"got an entry -1.0"):
        sim(initial=np.array([2.0, -1.0, 0, 0, 0, 0]))


def test_forced_population_plans_without_ssa_estimates(monkeypatch):
    """method='population' needs none of ssa's per-condition rates (most of the planning on a
    long waveform): the plan must not compute them; auto and ssa must."""
    import importlib
    SM = importlib.import_module("ketacore.simulate")
    calls = []
    real = SM._condition_rates

    def counting(*a):
        calls.append(1)
        return real(*a)
    monkeypatch.setattr(SM, "_condition_rates", counting)
    t = np.arange(50) * 1e-4
    ramp = kc.Protocol.from_waveform(t, 5e-3, V=np.linspace(-0.08, 0.0, 50), glutamate=1e-3)
    g = kc.models.get("destexhe1994_sf")
    SM._RATE_CACHE.clear()
    SM._PLANS.clear()
    assert kc.simulate(g, ramp, 1e-4, n_channels=10, method="population", rng=1).method == "population"
    assert calls == []
    for method in ("auto", "ssa"):
        SM._RATE_CACHE.clear()
        SM._PLANS.clear()
        SM._EXPECT_CACHE.clear()
        kc.simulate(g, ramp, 1e-4, n_channels=10, method=method, rng=1)
        assert calls, method
        calls.clear()
