"""Correctness of the per-call caches behind kc.simulate (compiled plans) and kc.Step.

The caches exist for speed (benchmarks/bench_stochastic.py measures them); these tests only
check that a cached plan is never reused when any input differs in value *or* kind, that bad
inputs still raise on every call, and that results never share mutable state.  No timing here.
"""
import copy
import importlib
import pickle

import numpy as np
import pytest

import ketacore as kc

simmod = importlib.import_module("ketacore.simulate")  # the module (kc.simulate is the function)
from _stochastic_models import bench_scheme

SCH = bench_scheme()
STEP = kc.Step(0.02, glutamate=1e-3)
PROT = kc.Protocol([kc.Step(0.01, V=-0.07), kc.Step(0.02, glutamate=1e-3)])


def run(**kw):
    args = dict(dt=1e-3, n_channels=20, method="ssa", rng=3, n_threads=1)
    args.update(kw)
    prot = args.pop("protocol", PROT)
    sch = args.pop("scheme", SCH)
    return kc.simulate(sch, prot, **args)


def fresh(**kw):
    """The same call with the plan cache emptied first (the uncached reference)."""
    simmod._PLANS.clear()
    return run(**kw)


@pytest.mark.parametrize("kw", [
    {}, {"rng": 4}, {"rng": 2**40}, {"rng": np.random.SeedSequence(5)}, {"n_trials": 3},
    {"trials": range(2, 5)}, {"trial_offset": 7, "n_trials": 2}, {"initial": "C0"},
    {"initial": "equilibrium"}, {"initial": np.eye(6)[2]}, {"dt": 2e-3}, {"dt": 0.03},
    {"n_channels": 21}, {"method": "population"}, {"method": "auto"}, {"record": "summary", "n_trials": 3},
    {"n_threads": 2}, {"n_threads": None}, {"protocol": STEP},
])
def test_repeated_calls_match_uncached(kw):
    ref = fresh(**kw)
    for _ in range(3):  # the 2nd and 3rd calls come from the cached plan
        r = run(**kw)
        assert r.method == ref.method and r.entropy == ref.entropy and r.dt == ref.dt
        assert r.n_channels == ref.n_channels and r.n_samples == ref.n_samples
        np.testing.assert_array_equal(r.trials, ref.trials)
        np.testing.assert_array_equal(r.initial, ref.initial)
        if ref.counts is not None:
            np.testing.assert_array_equal(r.counts, ref.counts)
        else:
            np.testing.assert_array_equal(r.sum_counts, ref.sum_counts)
            np.testing.assert_array_equal(r.sum_sq_counts, ref.sum_sq_counts)


@pytest.mark.parametrize("record", ["counts", "summary"])
def test_fast_result_has_the_same_attributes_as_the_constructor(record):
    r = run(record=record, n_trials=2)
    ref = simmod.SimulationResult(scheme=SCH, protocol=PROT, dt=1e-3, n_samples=r.n_samples, method="ssa",
                                  record=record, entropy=3, trials=r.trials, n_channels=20, initial=r.initial)
    assert set(vars(r)) == set(vars(ref))
    assert type(r) is simmod.SimulationResult and r.version == kc.__version__
    assert r.mean.shape == (r.n_samples, SCH.n_states)


def test_summary_high_words_are_combined():
    # sums of squares above 2**64 come back from C++ as (lo, hi) words; n_channels large enough
    # that N**2 * trials >= 2**64 with population
    r = run(record="summary", method="population", n_channels=2**33, n_trials=2)
    q = r.sum_sq_counts
    assert q.dtype == object and max(int(v) for v in q.ravel()) >= 2**64
    np.testing.assert_array_equal(r.sum_counts.sum(axis=1), 2 * 2**33)


def test_each_varied_input_gives_its_own_result():
    base = run()
    assert not np.array_equal(run(rng=4).counts, base.counts)
    assert run(rng=4).entropy == 4 and run().entropy == 3
    assert run(n_trials=2).counts.shape[0] == 2 and run().counts.shape[0] == 1
    assert list(run(trial_offset=5).trials) == [5]
    np.testing.assert_array_equal(run(trial_offset=5).counts, run(n_trials=6).counts[5:])
    assert (run(initial="C0").counts[:, 0, SCH.index("C0")] == 20).all()
    assert (run(initial="D").counts[:, 0, SCH.index("D")] == 20).all()
    assert run(dt=2e-3).n_samples != base.n_samples
    assert run(n_channels=7).counts[0, 0].sum() == 7
    assert run(method="population").method == "population" and run().method == "ssa"
    assert run(record="summary").counts is None and run().counts is not None


def test_rng_none_and_generator_are_resolved_every_call():
    a, b = run(rng=None), run(rng=None)
    assert a.entropy != b.entropy  # fresh OS entropy each time, never a cached one
    g = np.random.default_rng(11)
    e1, e2 = run(rng=g).entropy, run(rng=g).entropy   # a Generator is drawn from (SPEC 7)
    assert e1 != e2 and 11 not in (e1, e2)
    g = np.random.default_rng(11)
    assert (run(rng=g).entropy, run(rng=g).entropy) == (e1, e2)


def test_equal_but_distinct_steps_and_protocols():
    r1 = run(protocol=kc.Step(0.02, glutamate=1e-3))
    r2 = run(protocol=kc.Step(0.02, glutamate=1e-3))  # equal Step, new object: same plan, same result
    np.testing.assert_array_equal(r1.counts, r2.counts)
    r3 = run(protocol=kc.Step(0.02, glutamate=2e-3))  # different value: different plan
    assert r3.protocol.steps[0].concentrations["glutamate"] == 2e-3
    assert run(protocol=kc.Step(0.03, glutamate=1e-3)).n_samples == 31
    p2 = kc.Protocol(list(PROT.steps))
    r = run(protocol=p2)
    assert r.protocol is p2  # the caller's own Protocol, even when an equal one built the plan
    assert run().protocol is PROT


def test_distinct_schemes_never_share_a_plan():
    other = bench_scheme()  # equal content, different object
    r = run(scheme=other)
    assert r.scheme is other and run().scheme is SCH
    np.testing.assert_array_equal(r.counts, run().counts)


def test_results_do_not_share_mutable_arrays():
    a = run(n_trials=2)
    b = run(n_trials=2)
    assert a.counts is not b.counts and a.trials is not b.trials
    a.trials[0] = 99
    assert list(run(n_trials=2).trials) == [0, 1]
    with pytest.raises(ValueError):
        a.initial[0] = 1.0  # shared p0 is read-only


@pytest.mark.parametrize("bad, exc, name", [
    ({"dt": True}, TypeError, "dt"), ({"dt": -1e-3}, ValueError, "dt"), ({"dt": float("nan")}, ValueError, "dt"),
    ({"dt": "1e-3"}, TypeError, "dt"),
    ({"n_channels": True}, TypeError, "n_channels"), ({"n_channels": 20.0}, TypeError, "n_channels"),
    ({"n_channels": 0}, ValueError, "n_channels"), ({"n_channels": np.float64(20)}, TypeError, "n_channels"),
    ({"n_trials": 1.0}, TypeError, "n_trials"), ({"n_trials": True}, TypeError, "n_trials"),
    ({"n_trials": 0}, ValueError, "n_trials"),
    ({"method": "SSA"}, ValueError, "method"), ({"record": "all"}, ValueError, "record"),
    ({"rng": -1}, ValueError, "rng"), ({"rng": True}, TypeError, "rng"), ({"rng": 1.0}, TypeError, "rng"),
    ({"rng": "x"}, TypeError, "rng"),
    ({"n_threads": 0}, ValueError, "n_threads"), ({"n_threads": True}, TypeError, "n_threads"),
    ({"n_threads": 2.0}, TypeError, "n_threads"),
    ({"trial_offset": -1}, ValueError, "trial_offset"), ({"trial_offset": True}, TypeError, "trial_offset"),
    ({"initial": "nope"}, ValueError, "nope"),
    ({"protocol": [STEP]}, TypeError, "protocol"), ({"scheme": "x"}, ValueError, "unknown model"), ({"scheme": 5}, TypeError, "scheme"),
])
def test_bad_inputs_raise_even_after_good_calls_are_cached(bad, exc, name):
    run(), run(), run(protocol=STEP), run(n_trials=1, trial_offset=0)  # populate the cache
    n = len(simmod._PLANS)
    for _ in range(2):
        with pytest.raises(exc, match=name):
            run(**bad)
    assert len(simmod._PLANS) == n  # a failed call never leaves a plan behind


def test_rng_is_validated_before_the_engine_on_a_cached_plan(monkeypatch):
    run()
    calls = []
    monkeypatch.setattr(simmod._PLANS[next(iter(simmod._PLANS))], "core", lambda *a: calls.append(a))
    with pytest.raises(TypeError, match="rng"):
        run(rng="seed")
    assert not calls


def test_large_requests_recheck_memory_when_their_plan_is_reused(monkeypatch):
    # requests above the memory re-check size re-read available memory on every call, also when
    # their plan is reused (it is: planning a long sampled waveform takes ~1 s)
    monkeypatch.setattr(simmod, "_MEMORY_RECHECK_ABOVE", 0)
    simmod._PLANS.clear()
    run(), run()
    assert len(simmod._PLANS) == 1
    plan = next(iter(simmod._PLANS.values()))
    calls = []
    monkeypatch.setattr(plan, "core", lambda *a: calls.append(a))
    monkeypatch.setattr(simmod.V_, "check_memory", _strict_check_memory)
    with pytest.raises(ValueError, match="GiB.*method='ssa', record='counts'"):
        run()
    assert not calls  # refused before the engine ran
    # ... and before rng: a refused call leaves a Generator where it was, as a fresh plan does
    g = np.random.default_rng(0)
    state = g.bit_generator.state
    with pytest.raises(ValueError, match="GiB"):
        run(rng=g)
    assert g.bit_generator.state == state


def test_only_a_few_large_plans_are_kept(monkeypatch):
    monkeypatch.setattr(simmod, "_MEMORY_RECHECK_ABOVE", 0)
    simmod._PLANS.clear()
    for k in range(simmod._MAX_LARGE_PLANS + 3):
        run(n_channels=1 + k)
    assert len(simmod._PLANS) == simmod._MAX_LARGE_PLANS
    # the newest are kept
    assert sorted(p.N for p in simmod._PLANS.values()) == list(range(4, 4 + simmod._MAX_LARGE_PLANS))


def _strict_check_memory(name, n_bytes, *, fraction=0.8, advice=""):
    raise ValueError(f"{name}: the requested output needs about {n_bytes / 2**30:.3g} GiB")


def test_plan_cache_is_bounded():
    simmod._PLANS.clear()
    for k in range(simmod._MAX_PLANS + 10):
        run(n_channels=1 + k, dt=0.02)
    assert len(simmod._PLANS) <= simmod._MAX_PLANS


# ------------------------------------------------------------------------------- Step
def test_step_is_immutable_and_hash_stable():
    s = kc.Step(1e-3, V=-0.05, glutamate=1e-3)
    h = hash(s)
    for attr, val in [("V", 0.5), ("duration", 2.0), ("temperature", 300.0), ("concentrations", {})]:
        with pytest.raises(AttributeError, match="immutable"):
            setattr(s, attr, val)
    with pytest.raises(TypeError):
        s.concentrations["glutamate"] = 5.0
    with pytest.raises(AttributeError):
        del s.V
    assert hash(s) == h and s.concentrations == {"glutamate": 1e-3}
    assert s.replace(V=-0.06).V == -0.06 and s.V == -0.05


@pytest.mark.filterwarnings("ignore::ketacore.UnitsWarning")  # values above 100 mM on purpose (fast path vs full checks)
def test_step_fast_path_matches_full_validation():
    a = kc.Step(1e-3, V=-0.05, ketamine=1e-5, glutamate=1e-3, mg=0.0)
    b = kc.Step(np.float64(1e-3), V=np.float64(-0.05), glutamate=np.float64(1e-3), ketamine=1e-5)
    assert a == b and hash(a) == hash(b)
    assert list(a.concentrations) == ["glutamate", "ketamine"]  # sorted, zeros dropped
    assert type(kc.Step(1, V=0).duration) is float and type(kc.Step(1, V=0).V) is float
    assert kc.Step(1, glutamate=1).concentrations["glutamate"] == 1.0


@pytest.mark.parametrize("kw, exc, name", [
    ({"duration": 0.0}, ValueError, "duration"), ({"duration": -1.0}, ValueError, "duration"),
    ({"duration": float("nan")}, ValueError, "duration"), ({"duration": float("inf")}, ValueError, "duration"),
    ({"duration": True}, TypeError, "duration"), ({"duration": "1"}, TypeError, "duration"),
    ({"duration": 1.0, "V": -70.0}, ValueError, "V"), ({"duration": 1.0, "V": float("nan")}, ValueError, "V"),
    ({"duration": 1.0, "V": True}, TypeError, "V"),
    ({"duration": 1.0, "glutamate": -1e-3}, ValueError, "glutamate"),
    ({"duration": 1.0, "glutamate": float("nan")}, ValueError, "glutamate"),
    ({"duration": 1.0, "glutamate": 11.0}, ValueError, "glutamate"),
    ({"duration": 1.0, "glutamate": "1"}, TypeError, "glutamate"),
    ({"duration": 1.0, "temperature": 22.0}, ValueError, "temperature"),
])
def test_step_rejects_bad_values(kw, exc, name):
    with pytest.raises(exc, match=name):
        kc.Step(**kw)


def test_step_and_protocol_pickle_and_copy():
    s = kc.Step(1e-3, V=-0.05, temperature=300.0, glutamate=1e-3)
    p = kc.Protocol([s, kc.Step(2e-3)])
    for obj in (s, p):
        for clone in (pickle.loads(pickle.dumps(obj)), copy.copy(obj), copy.deepcopy(obj)):
            assert clone == obj and hash(clone) == hash(obj)
    assert pickle.loads(pickle.dumps(p)).duration == p.duration


# ------------------------------------------------------------------ recycled output buffers
def test_output_buffers_are_recycled_and_the_pools_stay_bounded():
    """A dropped result's output array goes back to a pool and the next result of the same size
    reuses it (no fresh pages); however many large results come and go, each pool keeps at most
    64 MiB."""
    import gc
    from ketacore import _core

    def counts_run(S):
        return kc.simulate(SCH, kc.Step(S * 1e-3, glutamate=1e-3), dt=1e-3, n_channels=5, rng=1, method="ssa",
                           n_threads=1)

    def address(a):
        return a.__array_interface__["data"][0]

    size = 50_001 * SCH.n_states * 4
    r = counts_run(50_000)
    first = address(r.counts)
    del r
    gc.collect()
    pooled = _core._output_pool_bytes()[0]
    assert pooled >= size  # the freed array's buffer went to the pool
    r = counts_run(50_000)
    assert address(r.counts) == first and _core._output_pool_bytes()[0] == pooled - size  # ... and came back
    del r
    # summaries: int64 sums and two uint64 arrays, each 1e6 x 6 x 8 B = 48 MB
    big = [kc.simulate(SCH, kc.Step(1e3, glutamate=1e-3), dt=1e-3, n_channels=5, rng=1, method="population",
                       n_threads=1, record="summary", n_trials=2) for _ in range(3)]
    big += [counts_run(10**6 // 6 * 5) for _ in range(5)]  # ~20 MB of int32 each
    del big
    gc.collect()
    for pooled in _core._output_pool_bytes():
        assert pooled <= 64 << 20
