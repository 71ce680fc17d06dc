"""Robustness of the engines at the edges: errors on worker threads, stream keys, runaway jobs,
thread counts above the work available, and the population plan's boundary handling.

Each test here was written for a defect found by an audit of the C++ core; it fails on the code
before the fix.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ketacore as kc
from ketacore import _core
from _stochastic_models import bench_scheme

# A subprocess whose address space is capped a little above its size: the summaries of a second
# thread (3 x 45 MB) cannot be allocated.  Before the fix the std::bad_alloc escaped a worker
# std::thread and std::terminate aborted the interpreter (exit code 134).
_OOM = textwrap.dedent("""
    import resource, sys
    import numpy as np, ketacore as kc
    from ketacore import _core
    sch = kc.Scheme(["C1", "C2", "O"], [("C1", "C2", 200.0), ("C2", "C1", 50.0),
                                        ("C2", "O", 300.0), ("O", "C2", 100.0)],
                    conductance={"O": 1e-12})
    prot = kc.Protocol([kc.Step(2.0)])
    durs, idx, conds = prot.compile(sch)
    dt = 1e-6
    S = prot.n_samples(dt)
    vm = int([l for l in open("/proc/self/status") if l.startswith("VmSize")][0].split()[1]) * 1024
    lim = vm + 250 * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    try:
        _core.simulate(sys.argv[1], sch._compiled(), durs, idx, conds, dt, S, np.array([1.0, 0, 0]),
                       1, [1], np.arange(4, dtype=np.uint64), 2, True, False, sys.argv[2] == "bg")
        print("completed")
    except MemoryError:
        print("MemoryError")
""")


@pytest.mark.skipif(bool(os.environ.get("KETACORE_SANITIZED")),
                    reason="AddressSanitizer needs far more address space than RLIMIT_AS allows")
@pytest.mark.parametrize("method", ["ssa", "population"])
@pytest.mark.parametrize("mode", ["inline", "bg"])
def test_allocation_failure_on_a_worker_thread_raises_memoryerror(method, mode):
    r = subprocess.run([sys.executable, "-c", _OOM, method, mode], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert r.stdout.strip() in ("MemoryError", "completed")
    # the address-space cap is set so the second thread's buffers cannot fit
    assert r.stdout.strip() == "MemoryError"


def test_trial_indices_below_2_pow_32():
    """Trial i's stream is keyed by the words (i, block); trial 5 * 2**32 + 7 had the key of
    block 5 of trial 7 and drew the same numbers."""
    sch = bench_scheme()
    prot = kc.Step(1e-3, glutamate=1e-3)
    for kw in (dict(trials=[5 * 2**32 + 7]), dict(trials=range(2**32, 2**32 + 2)),
               dict(trials=np.array([2**32])), dict(n_trials=2, trial_offset=2**32 - 1)):
        with pytest.raises(ValueError, match="2\\*\\*32|<= "):
            kc.simulate(sch, prot, dt=1e-4, n_channels=10, rng=1, **kw)
        with pytest.raises(ValueError, match="2\\*\\*32|<= "):
            kc.simulate_events(sch, prot, rng=1, **kw)
    top = kc.simulate(sch, prot, dt=1e-4, n_channels=10, rng=1, trials=range(2**32 - 2, 2**32))
    assert top.trials.tolist() == [2**32 - 2, 2**32 - 1]
    # a decreasing range repeats nothing and is accepted; an empty one is refused
    down = kc.simulate(sch, prot, dt=1e-4, n_channels=10, rng=1, trials=range(5, 2, -1))
    same = kc.simulate(sch, prot, dt=1e-4, n_channels=10, rng=1, trials=[5, 4, 3])
    assert np.array_equal(down.counts, same.counts)
    with pytest.raises(ValueError, match="non-empty"):
        kc.simulate(sch, prot, dt=1e-4, n_channels=10, rng=1, trials=range(3, 3))


def test_runaway_ssa_job_is_refused_with_its_estimate():
    """1e12 transitions per second per channel for 1000 s on 1000 channels: ~1e18 transitions,
    which would never finish; refused up front with the estimate (the population method, whose
    cost does not depend on the rates, still runs)."""
    fast = kc.Scheme(["C", "O"], [("C", "O", 1e12), ("O", "C", 1e12)], conductance={"O": 1e-12})
    prot = kc.Protocol([kc.Step(1000.0)])
    with pytest.raises(ValueError, match=r"transitions .*population"):
        kc.simulate(fast, prot, dt=100.0, n_channels=1000, method="ssa", rng=1)
    r = kc.simulate(fast, prot, dt=100.0, n_channels=1000, method="population", rng=1)
    assert r.counts.sum(axis=-1).min() == 1000
    assert kc.simulate(fast, prot, dt=100.0, n_channels=1000, rng=1).method == "population"


def test_core_refuses_an_infinite_rate_instead_of_looping():
    """An infinite exit rate gives a zero mean dwell; the ssa loop then never advanced time.  The
    core now refuses it (the Python layer refuses it earlier, naming the transition)."""
    sch = kc.Scheme(["C", "O"], [("C", "O", 1e3), ("O", "C", 1e3)], conductance={"O": 1e-12})
    prot = kc.Protocol([kc.Step(1e-3)])
    durs, idx, conds = prot.compile(sch)
    comp = sch._compiled()
    good = _core.simulate("ssa", comp, durs, idx, conds, 1e-4, prot.n_samples(1e-4),
                          np.array([1.0, 0.0]), 1, [1], np.arange(1, dtype=np.uint64), 1, False,
                          False, False)
    assert good is not None
    # bypass the Python checks: an infinite ligand concentration in the compiled conditions
    lig = kc.Scheme(["C", "O"], [("C", "O", kc.rate(1e6, "glu")), ("O", "C", 1e3)],
                    conductance={"O": 1e-12}, ligands=["glu"])
    prot_l = kc.Protocol([kc.Step(1e-3, glu=1e-3)])
    durs, idx, conds = prot_l.compile(lig)
    conds = np.array(conds, dtype=float)
    conds[:, 2] = np.inf
    with pytest.raises(ValueError, match="not finite"):
        _core.simulate("ssa", lig._compiled(), durs, idx, conds, 1e-4, prot_l.n_samples(1e-4),
                       np.array([1.0, 0.0]), 1, [1], np.arange(1, dtype=np.uint64), 1, False,
                       False, False)


@pytest.mark.parametrize("method", ["ssa", "population"])
def test_more_threads_than_work_changes_nothing(method):
    """300 channels are two ssa channel blocks; 16 threads on one trial used to zero and merge
    14 idle S x K buffers.  Results stay bit-identical."""
    sch = bench_scheme()
    prot = kc.Step(0.05, glutamate=1e-3)
    a = kc.simulate(sch, prot, dt=1e-5, n_channels=300, method=method, rng=3, n_threads=1)
    b = kc.simulate(sch, prot, dt=1e-5, n_channels=300, method=method, rng=3, n_threads=16)
    assert np.array_equal(a.counts, b.counts)


def test_population_straddling_intervals_share_their_matrix():
    """A pulse train whose period is a multiple of dt but whose edges fall between grid points
    repeats the same few boundary-straddling intervals; the plan now keeps one matrix for each
    distinct sequence of pieces.  Means still match the master equation at every sample
    (exact binomial test, Bonferroni over all cells: failure probability < 1e-3)."""
    from scipy import stats
    sch = bench_scheme()
    train = kc.pulse_train(20, 100.0, 1.3e-3, during={"glutamate": 1e-3})  # 10 ms period, dt 1 ms
    det = kc.solve(sch, train, dt=1e-3, initial="C0")
    n = 10**6
    res = kc.simulate(sch, train, dt=1e-3, n_channels=n, n_trials=4, method="population",
                      rng=11, initial="C0", record="summary")
    p = np.clip(det.occupancy, 0, 1)
    x = res.sum_counts
    pv = np.minimum(1, 2 * np.minimum(stats.binom.cdf(x, 4 * n, p), stats.binom.sf(x - 1, 4 * n, p)))
    assert pv.min() > 1e-3 / pv.size


def test_rate_times_time_overflow_is_a_named_valueerror():
    """Finite inputs whose product overflows: Q dt = 1e7/s x 1e307 s.  expm refused the
    non-finite matrix with a bare RuntimeError; it is now a ValueError (std::domain_error) that
    names the overflow and dt, in solve and the population method alike."""
    g = kc.models.get("destexhe1994")
    step = kc.Step(1e308, glutamate=1e-3)
    with pytest.raises(ValueError, match="overflows.*dt"):
        kc.solve(g, step, dt=1e307)
    with pytest.raises(ValueError, match="overflows.*dt"):
        kc.simulate(g, step, dt=1e307, method="population", initial="C0", rng=1)


@pytest.mark.parametrize("initial, exc, match", [
    ({"open": 1}, ValueError, "conditions mapping takes"),       # a theory keyword, was ignored
    ({"names": 1}, ValueError, "conditions mapping takes"),
    (np.array([np.inf, -np.inf, 1.0, 0.0, 0.0]), ValueError, "initial vector"),  # was fsum's error
    ([1j, 0, 0, 0, 0], TypeError, "real occupancy vector"),     # imaginary part was dropped
    (["1", 0, 0, 0, 0], TypeError, "real occupancy vector"),    # strings were parsed
    ([True, False, False, False, False], TypeError, "real occupancy vector"),
    (np.array([1, 0, 0, 0, 0], dtype=object), TypeError, "real occupancy vector"),
])
def test_initial_is_validated_and_named(initial, exc, match):
    g = kc.models.get("destexhe1994")
    p = kc.Protocol([kc.Step(0.01, glutamate=1e-3)])
    with pytest.raises(exc, match=match):
        kc.solve(g, p, 1e-3, initial=initial)
    with pytest.raises(exc, match=match):
        kc.simulate(g, p, dt=1e-3, n_channels=10, initial=initial, rng=1)
    # the valid forms still work
    assert kc.solve(g, p, 1e-3, initial={"V": -0.07, "glutamate": 1e-6}).occupancy.shape == (11, 5)
    assert kc.solve(g, p, 1e-3, initial=[1, 0, 0, 0, 0]).occupancy[0, 0] == 1.0


def test_dense_matrices_that_cannot_fit_are_refused_before_cpp(monkeypatch):
    """A 20000-state chain needs ~3.2 GB per K x K matrix; solve raised std::bad_alloc from the
    core.  It is now refused up front with the estimate, naming the state count (available
    memory pinned at 16 GiB so the outcome does not depend on the machine)."""
    import ketacore._validate as V_
    monkeypatch.setattr(V_, "available_memory", lambda: 16.0 * 2**30)
    K = 20000
    names = [f"S{i}" for i in range(K)]
    tr = [(names[i], names[i + 1], 1.0) for i in range(K - 1)]
    tr += [(names[i + 1], names[i], 1.0) for i in range(K - 1)]
    s = kc.Scheme(names, tr, conductance={"S0": 1e-12})
    with pytest.raises(ValueError, match="20000 states"):
        kc.solve(s, kc.Step(1e-3), 1e-4, initial="S0")
    with pytest.raises(ValueError, match="20000 states"):
        kc.simulate(s, kc.Step(1e-3), dt=1e-4, n_channels=10, method="population", initial="S0",
                    rng=1)


def test_memory_refusals_give_advice_the_caller_can_follow(monkeypatch):
    """Each refusal ends with what *that* function can change: solve has no trials and no
    summaries, so it no longer suggests them (user audit); theory samplers say to draw fewer
    at a time (available memory pinned at 16 GiB)."""
    import ketacore._validate as V_
    monkeypatch.setattr(V_, "available_memory", lambda: 16.0 * 2**30)
    g = kc.models.get("destexhe1994")
    with pytest.raises(ValueError, match="coarser dt") as e:
        kc.solve(g, kc.Step(1e5, glutamate=1e-3), dt=1e-6)
    assert "trials" not in str(e.value) and "summar" not in str(e.value)
    d = kc.theory.dwell_times(g, "open", glutamate=1e-3)
    with pytest.raises(ValueError, match="draw fewer at a time"):
        d.sample(10**11, rng=0)


@pytest.mark.parametrize("value", [None, "1", [True, False], [1j], [[1], [1, 2]], object()])
def test_real_array_helper_names_the_parameter(value):
    """One shared check (protocol waveforms, experiments' concentration/voltage/frequency lists,
    jahr_stevens) for 'a real number or an array of real numbers'."""
    import ketacore._validate as V_
    with pytest.raises(TypeError, match=r"^times must be a real number or an array of real numbers \(s\)"):
        V_.real_array("times", value, "s")
    assert V_.real_array("x", [1, 2]).dtype == np.float64
    assert V_.real_array("x", 3).shape == ()
