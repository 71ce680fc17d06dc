"""The stochastic engines on protocols with many conditions (sampled waveforms).

A waveform from ``Protocol.from_waveform`` has one condition per sample.  The population method
has one transition matrix per grid interval; it builds their multinomial tables a bounded number
at a time (``csrc/include/ketacore/population.hpp``, PopulationSchedule / PopulationTables)
instead of all before the run (which took ~14 kB per condition at 17 states: 3.5 GB for 200000
samples).  The ssa builds its per-condition exit tables (``ssa.hpp``, SsaTables) before the run,
polling for Ctrl-C, and its plan (cost model, memory estimate) is reused by later calls.

Oracles: the one-chunk run (every table resident, the path every short protocol takes, itself
checked against the master equation and scipy in tests/test_stochastic_*.py) -- a chunked run
must give the same bytes, because each trial consumes its stream in the same order; the
process's peak memory, measured in a subprocess; Ctrl-C timing as in
tests/test_stochastic_engine.py.  Deterministic: no statistical tolerance.
"""
from __future__ import annotations

import _thread
import importlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import ketacore as kc
from ketacore import _core
from ketacore.units import ms, uM

sim = importlib.import_module("ketacore.simulate")
CH82 = kc.models.get("ch82")


def _waveform(n, dt=10e-6):
    t = np.arange(n) * dt
    return kc.Protocol.from_waveform(t, n * dt, agonist=1 * uM * (1 + np.sin(t * 2000.0)))


def _pulses():
    """Boundaries off the 0.1 ms grid: intervals that straddle them (several pieces each)."""
    return kc.Protocol([kc.Step(0.33 * ms, agonist=0.0), kc.Step(1.07 * ms, agonist=1 * uM),
                        kc.Step(2.2 * ms, agonist=0.0)] * 20)


def _levels():
    """8 voltage levels sampled every 0.25 ms: on a 1 ms grid almost every interval is its own
    sequence of 4 pieces (~900 straddle matrices for 4000 samples, far more than the boundary
    triples the cost model used to count)."""
    v = np.random.default_rng(0).choice(np.linspace(-0.09, 0.03, 8), 4000)
    t = np.arange(4000) * 0.25e-3
    return kc.Protocol.from_waveform(t, 4000 * 0.25e-3, V=v, agonist=1 * uM)


def _run(monkeypatch, protocol, dt, record, n_threads, table_bytes=None, state_bytes=None):
    monkeypatch.setattr(sim, "_PLANS", {})
    monkeypatch.setattr(sim, "_POP_TABLE_BYTES", table_bytes)
    monkeypatch.setattr(sim, "_POP_STATE_BYTES", state_bytes)
    r = kc.simulate(CH82, protocol, dt, n_channels=10**6, method="population", rng=7, n_trials=5,
                    n_threads=n_threads, record=record)
    if record == "counts":
        return (r.counts.copy(),)
    return np.asarray(r.sum_counts).copy(), np.asarray(r.sum_sq_counts).copy()


SLOT = _core.population_slot_bytes(CH82.n_states)
STATE = _core.population_state_bytes(CH82.n_states)


@pytest.mark.parametrize("protocol, dt", [(_waveform(3000), 10e-6), (_waveform(3000), 0.37 * ms),
                                          (_pulses(), 0.1 * ms), (_levels(), 1 * ms)],
                         ids=["waveform-on-grid", "waveform-coarse-grid", "pulses-straddling",
                              "levels-straddling"])
@pytest.mark.parametrize("record", ["counts", "summary"])
def test_chunked_tables_give_the_same_bytes(monkeypatch, protocol, dt, record):
    """Tables for 3 keys at a time, for 1 key (rebuilt as runs need them), and trial states for
    2 trials at a time (5 trials: 3 batches, each rebuilding the tables), on 1 and 2 threads:
    the same counts (or exact sums) as the run that holds every table at once."""
    ref = _run(monkeypatch, protocol, dt, record, 2)
    for table_bytes, state_bytes in ((3 * SLOT, None), (1, 1), (2 * SLOT, 2 * STATE)):
        for n_threads in (1, 2):
            got = _run(monkeypatch, protocol, dt, record, n_threads, table_bytes, state_bytes)
            for a, b in zip(ref, got):
                assert np.array_equal(a, b), (table_bytes, state_bytes, n_threads)


def test_memory_estimate_of_a_long_waveform_is_bounded():
    """The plan estimate no longer grows by a K x K table per condition (17 states, 200000
    conditions: 3.5 GB before) -- only by the schedule (tens of bytes per sample) and the
    bounded tables."""
    K, n = 17, 200_000
    est = sim._population_plan_bytes(K, n, n, n + 1, 1, 2)
    assert est < 100 * 2**20
    assert est > _core.POP_TABLE_BYTES * 0.9  # the tables' budget is counted (they fill it here)
    # a short protocol: a few tables, not the whole budget
    assert sim._population_plan_bytes(K, 3, 3, 1001, 1, 2) < 2**20


@pytest.mark.parametrize("protocol, dt", [(_waveform(3000), 10e-6), (_waveform(3000), 0.37 * ms),
                                          (_pulses(), 0.1 * ms), (_levels(), 1 * ms),
                                          (kc.Step(1.0, agonist=1 * uM), 1 * ms)],
                         ids=["waveform-on-grid", "waveform-coarse-grid", "pulses", "levels", "step"])
def test_population_matrix_count_and_the_memory_bound(protocol, dt):
    """The C++ schedule's matrix count (what the cost model now uses) stays within the bound the
    memory estimate assumes (conditions + straddling intervals + identity; a boundary lies in
    at most one interval), and when that many tables would not fit in the budget the estimate
    counts the full budget and the waiting trial states."""
    prot = protocol if isinstance(protocol, kc.Protocol) else kc.Protocol([protocol])
    durs, idx, conds = prot.compile(CH82)
    S = prot.n_samples(dt)
    n_keys, n_straddles = _core.population_keys(CH82._compiled(), durs, idx, conds, dt, S)
    assert 1 <= n_keys <= len(conds) + min(len(durs), S) + 1 and n_straddles <= n_keys
    K = CH82.n_states
    for budget in (None, 3 * SLOT):
        sim._POP_TABLE_BYTES = budget
        try:
            est = sim._population_plan_bytes(K, len(conds), len(durs), S, 7, 1)
            held = min(n_keys, (budget or _core.POP_TABLE_BYTES) // SLOT)
            assert est >= held * SLOT + (7 * STATE if n_keys * SLOT > (budget or _core.POP_TABLE_BYTES) else 0)
        finally:
            sim._POP_TABLE_BYTES = None
    if prot == _levels():
        n_cross, n_triples = sim._boundaries(durs, idx, (S - 1) * dt, dt)
        assert n_straddles > 5 * n_triples   # what the old count (boundary triples) missed


#: counts of population runs with the full table budget (unchunked: every table resident), sha256
#: of the int64 counts (2 trials, rng=2026, one thread); the test runs them chunked with eviction
#: on two threads and must get the same bytes.  The first values came from the build before the
#: tables were chunked (486806b); they were regenerated when the population binomial for
#: n p q >= 32 became binomial_cfn (2026-11-29: the draws differ by design; "pulses" at N = 1000
#: never draws n p q >= 32 and is unchanged), and the N = 1e9 ones again when runs of at least
#: POP_COLUMNS_MIN channels began to draw in column order (2026-11-29, twenty-first session; the
#: N = 1000 values, row order, are unchanged).  A deliberate change to the population sampler or
#: the stream use changes these; then update them and say so.
_GOLDEN = {("pulses", 1000): "c38a267285eda178", ("pulses", 10**9): "093d23208d9347d8",
           ("waveform-10us", 1000): "e73aace920366066", ("waveform-10us", 10**9): "36f365f8375db01c",
           ("waveform-0.37ms", 1000): "47151d6866125863", ("waveform-0.37ms", 10**9): "ce12bb2353e3cd84",
           ("levels-1ms", 1000): "2ebf3b70fa9bbfcf", ("levels-1ms", 10**9): "23a392ffa9cfa3a2"}


def test_population_counts_are_those_of_the_build_before_chunking(monkeypatch):
    import hashlib
    cases = {"pulses": (_pulses(), 0.1 * ms), "waveform-10us": (_waveform(3000), 10e-6),
             "waveform-0.37ms": (_waveform(3000), 0.37 * ms), "levels-1ms": (_levels(), 1 * ms)}
    monkeypatch.setattr(sim, "_PLANS", {})
    monkeypatch.setattr(sim, "_POP_TABLE_BYTES", 5 * SLOT)   # chunked, with eviction
    for name, (p, dt) in cases.items():
        for N in (1000, 10**9):
            r = kc.simulate(CH82, p, dt, n_channels=N, method="population", rng=2026, n_trials=2, n_threads=2)
            got = hashlib.sha256(np.ascontiguousarray(r.counts, dtype=np.int64).tobytes()).hexdigest()[:16]
            assert got == _GOLDEN[(name, N)], (name, N)


_PEAK_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    import ketacore as kc
    from ketacore.units import mM, mV
    import importlib
    sim = importlib.import_module("ketacore.simulate")
    g = kc.block(kc.models.get("erreger2005_2a"), "ketamine", kc.blockers.get("mg").replace(mode="sequential"))
    n = 100_000
    t = np.arange(n) * 10e-6
    prot = kc.Protocol.from_waveform(t, n * 10e-6, V=-80 * mV + 120 * mV * t / t[-1], glutamate=1 * mM, mg=1 * mM)
    prot.compile(g)
    kc.simulate(g, kc.Step(1e-3, glutamate=1 * mM, mg=1 * mM), 1e-3, n_channels=10, method="population", rng=1)
    kc.solve(g, kc.Step(1e-3, glutamate=1 * mM, mg=1 * mM), 1e-3)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if sys.argv[1] == "waveform":
        n = 2_000_000
        t = np.arange(n) * 1e-4
        glu = np.where(np.sin(t * 40.0) > 0.0, 1 * mM, 0.0) * np.abs(np.sin(t * 3.0))
        p = kc.Protocol.from_waveform(t, n * 1e-4, V=-70 * mV + 20 * mV * np.sin(t), glutamate=glu, mg=1 * mM)
        p.compile(g), p.boundaries, p.ligands, p.rest_conditions, len(p)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps({"growth": after - before, "samples": len(p) + 1, "built": p._built is not None}))
        sys.exit(0)
    if sys.argv[1] == "population":
        r = kc.simulate(g, prot, 10e-6, n_channels=10**6, method="population", rng=1, n_threads=2)
    else:
        r = kc.solve(g, prot, 10e-6)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"growth": after - before, "samples": len(r.time)}))
""")


@pytest.mark.parametrize("what, bound, samples", [("population", 200, 100_001), ("solve", 100, 100_001),
                                                   ("waveform", 700, 2_000_001)])
def test_peak_memory_of_a_long_waveform_run_is_bounded(what, bound, samples):
    """100000 conditions at 17 states, on the waveform's own 10 us grid (one condition per grid
    interval).  Population: the process grows by well under 200 MB (the tables' budget is 32
    MiB, the schedule and the counts a few MB each; 54 MB measured); before, every condition's
    Q, P and tables were kept: 2.08 GB measured.  solve: under 100 MB (the occupancy is 14 MB;
    ~20 MB measured); before, every condition's Q and P(dt) were kept: ~460 MB.
    Waveform: a 2e6-sample from_waveform protocol, compiled, with its boundaries, ligands and
    rest conditions, keeps its samples as columns and builds no Step: under 700 MB (the input
    arrays and columns ~130 MB, compile's result 100 MB and its sort temporaries; ~490 MB
    measured); with a Step per sample from_waveform alone grew by ~1.5 GB (and took ~20 s)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(kc.__file__)),
                                         env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, what], capture_output=True, text=True,
                         env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["samples"] == samples and not res.get("built", False)
    assert res["growth"] < bound * 2**20, res


@pytest.fixture(scope="module")
def long_waveform_17():
    from ketacore.units import mM, mV
    g = kc.block(kc.models.get("erreger2005_2a"), "ketamine", kc.blockers.get("mg").replace(mode="sequential"))
    n = 400_000
    t = np.arange(n) * 10e-6
    prot = kc.Protocol.from_waveform(t, n * 10e-6, V=-80 * mV + 120 * mV * t / t[-1], glutamate=1 * mM,
                                     mg=1 * mM)
    prot.compile(g)
    return g, prot


def _latency_of_ctrl_c(call, delay):
    """Run ``call`` with Ctrl-C sent ``delay`` s after it starts; the time from the interrupt to
    the KeyboardInterrupt reaching the caller."""
    fired = []

    def fire():
        fired.append(time.perf_counter())
        _thread.interrupt_main()
    timer = threading.Timer(delay, fire)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        call()
    returned = time.perf_counter()
    timer.join()
    assert len(fired) == 1
    return returned - fired[0]


def test_ctrl_c_stops_a_long_waveform_run_while_it_builds_tables(long_waveform_17, sigint_raises):
    """400000 conditions at 17 states: building the tables takes seconds (before, all of them
    were built before the run polled for Ctrl-C: ~9 s here).  Now the build polls between
    matrices and between chunks of tables; the bound is tests/test_stochastic_engine.py's (it
    would also pass with the chunk-level poll alone: ~2400 matrices, ~50 ms here)."""
    g, prot = long_waveform_17
    latency = _latency_of_ctrl_c(
        lambda: kc.simulate(g, prot, 10e-6, n_channels=1000, method="population", rng=1, n_threads=1), 0.3)
    assert latency < 3.0


def test_ctrl_c_stops_the_ssa_table_build_of_a_long_waveform(long_waveform_17, sigint_raises):
    """The second call reuses the plan, so the C++ call starts at once with the per-condition
    exit tables (400000 conditions, ~0.7 s; it ran inline and uncancellable before: the cost
    model did not count it, so the job was not sent to the cancellable worker).  Ctrl-C 0.1 s
    in stops it within a few ms of the worker seeing it (polled every 1024 conditions); the bound
    leaves room for a loaded machine and still fails a build that runs to its end here."""
    g, prot = long_waveform_17
    plans = len(sim._PLANS)
    kc.simulate(g, prot, 1e-3, n_channels=1, method="ssa", rng=1, n_threads=1)
    assert len(sim._PLANS) == plans + 1      # the plan is cached (it was not: > 256 MB estimate)
    t0 = time.perf_counter()
    kc.simulate(g, prot, 1e-3, n_channels=1, method="ssa", rng=2, n_threads=1)
    whole = time.perf_counter() - t0
    latency = _latency_of_ctrl_c(
        lambda: kc.simulate(g, prot, 1e-3, n_channels=1, method="ssa", rng=3, n_threads=1), 0.1)
    assert latency < max(0.25, 0.3 * whole), whole


def test_solve_memory_estimate_counts_only_conditions_that_keep_matrices(long_waveform_17, monkeypatch):
    """400000 once-used conditions at 17 states keep no matrix in solve (master.hpp), so with
    1 GiB available the call runs; the old estimate (Q and P(dt) for every condition, 1.85 GB)
    refused it.  A pulse train's recurring conditions are still counted."""
    from ketacore import _validate
    g, prot = long_waveform_17
    monkeypatch.setattr(_validate, "available_memory", lambda: float(2**30))
    r = kc.solve(g, prot, 10e-6)
    assert r.occupancy.shape == (400_001, g.n_states)
    np.testing.assert_allclose(r.occupancy.sum(axis=1), 1.0, atol=1e-12)
    # a huge scheme's dense work is still refused before C++ (the 20000-state case of earlier)
    monkeypatch.setattr(_validate, "available_memory", lambda: float(2**28))
    big = kc.Scheme([f"S{i}" for i in range(6000)],
                    [(f"S{i}", f"S{i + 1}", 1.0) for i in range(5999)], {"S5999": 1e-12})
    with pytest.raises(ValueError, match="dense K x K"):
        kc.solve(big, kc.Protocol([kc.Step(1e-3)] * 2), 1e-3)


def test_zero_order_hold_accuracy_claims_of_from_waveform():
    """The from_waveform docstring's numbers (helper-100's audit, against Myokit/CVODE): for
    1 mM exp(-t/1.2 ms) glutamate on destexhe1994_sf, left-point samples are first order
    (7.8e-4 at 100 us, 1.6e-4 at 20 us), midpoint samples second order (3.2e-5, 1.3e-6).
    Reference: midpoint samples at 0.5 us (its own error ~1e-6 * (0.5/20)^2, negligible)."""
    g = kc.models.get("destexhe1994_sf")
    T = 0.02

    def run(h, mid):
        t = np.arange(0, T, h)
        c = 1e-3 * np.exp(-(t + (h / 2 if mid else 0.0)) / 1.2e-3)
        return kc.solve(g, kc.Protocol.from_waveform(t, T, glutamate=c), dt=1e-4,
                        initial="C0").open_probability

    ref = run(0.5e-6, True)
    err = {(h, mid): float(np.abs(run(h, mid) - ref).max()) for h in (100e-6, 20e-6) for mid in (False, True)}
    assert err[(100e-6, False)] == pytest.approx(7.8e-4, rel=0.05)
    assert err[(20e-6, False)] == pytest.approx(1.6e-4, rel=0.05)
    assert err[(100e-6, True)] == pytest.approx(3.2e-5, rel=0.05)
    assert err[(20e-6, True)] == pytest.approx(1.3e-6, rel=0.05)
