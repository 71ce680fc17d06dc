"""``ketacore.concatenate``: trials of one simulation split over calls (processes, machines)
join into the result of one call over all of them, to the bit -- counts row for row, summaries
as exact integer sums -- and parts that are not trials of one simulation are refused."""
import pickle

import numpy as np
import pytest

import ketacore as kc
from ketacore.units import mM, ms, mV

from _stochastic_models import bench_scheme, ch82


def _two_level_scheme():
    """C <-> O1 (50 pS) <-> O2 (20 pS), O1 <-> B: two conductance levels, so summaries keep
    group sums (the open count, each level, the pair) besides the state sums."""
    return kc.Scheme(["C", "O1", "O2", "B"],
                     [("C", "O1", kc.rate(2e6, "glu")), ("O1", "C", 300.0),
                      ("O1", "O2", 800.0), ("O2", "O1", 500.0),
                      ("O1", "B", 400.0), ("B", "O1", 250.0)],
                     conductance={"O1": 50e-12, "O2": 20e-12}, name="two levels")


def _protocol(scheme):
    lig = "glu" if "glu" in scheme.ligands else ("A" if "A" in scheme.ligands else "glutamate")
    return kc.Protocol([kc.Step(2 * ms, V=-70 * mV, **{lig: 0.0}),
                        kc.Step(8 * ms, V=-70 * mV, **{lig: 1 * mM if lig != "A" else 1e-6})])


SCHEMES = {"bench": bench_scheme, "ch82": ch82, "two": _two_level_scheme}
# every exact view of a result: equal bytes (and dtypes) mean equal results
VIEWS = ("sum_counts", "sum_sq_counts", "mean", "var", "open_probability", "current",
         "open_probability_var", "current_var")


def _assert_same(a, b, views=VIEWS, same_record=True):
    for v in views:
        x, y = getattr(a, v), getattr(b, v)
        assert x.dtype == y.dtype, v
        np.testing.assert_array_equal(x, y, err_msg=v)
    np.testing.assert_array_equal(a.trials, b.trials)
    assert a.n_trials == b.n_trials and a.method == b.method
    assert a.record == b.record or not same_record


@pytest.mark.parametrize("name", sorted(SCHEMES))
@pytest.mark.parametrize("method", ["ssa", "population"])
def test_split_counts_join_to_the_whole_call(name, method):
    scheme = SCHEMES[name]()
    p = _protocol(scheme)
    args = (scheme, p, 0.1 * ms, 300)
    whole = kc.simulate(*args, 7, rng=2024, method=method)
    parts = [kc.simulate(*args, rng=2024, method=method, trials=range(0, 3)),
             kc.simulate(*args, rng=2024, method=method, trials=range(3, 4)),
             kc.simulate(*args, rng=2024, method=method, trial_offset=4, n_trials=3)]
    joined = kc.concatenate(parts)
    assert joined.record == "counts"
    assert joined.counts.dtype == whole.counts.dtype
    np.testing.assert_array_equal(joined.counts, whole.counts)
    _assert_same(joined, whole)
    md, mw = joined.metadata, whole.metadata
    assert {k: v for k, v in md.items() if k != "trials"} == {k: v for k, v in mw.items() if k != "trials"}


@pytest.mark.parametrize("name", sorted(SCHEMES))
@pytest.mark.parametrize("method", ["ssa", "population"])
def test_split_summaries_join_to_the_whole_summary(name, method):
    scheme = SCHEMES[name]()
    p = _protocol(scheme)
    args = (scheme, p, 0.1 * ms, 300)
    whole = kc.simulate(*args, 6, rng=11, method=method, record="summary")
    a = kc.simulate(*args, rng=11, method=method, record="summary", trials=range(0, 2))
    b = kc.simulate(*args, rng=11, method=method, record="summary", trials=range(2, 6))
    joined = kc.concatenate([a, b])
    assert joined.record == "summary" and joined.counts is None
    _assert_same(joined, whole)
    # the group sums themselves (the variances above are built from them), bit for bit
    if whole._gsums is not None:
        for x, y in zip(joined._gsums, whole._gsums):
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)
    else:
        assert joined._gsums is None
    # and the summary equals the counts of the same trials (the engine's own promise)
    counts = kc.simulate(*args, 6, rng=11, method=method)
    _assert_same(joined, counts, views=("sum_counts", "sum_sq_counts", "var",
                                        "open_probability_var", "current_var"), same_record=False)


def test_counts_and_summaries_join_to_a_summary():
    scheme = _two_level_scheme()
    p = _protocol(scheme)
    args = (scheme, p, 0.1 * ms, 200)
    whole = kc.simulate(*args, 5, rng=3, record="summary")
    a = kc.simulate(*args, rng=3, trials=range(0, 2))                      # counts
    b = kc.simulate(*args, rng=3, trials=range(2, 5), record="summary")
    for parts in ([a, b], [b, a]):
        joined = kc.concatenate(parts)
        assert joined.record == "summary"
        for v in ("sum_counts", "sum_sq_counts", "var", "open_probability_var", "current_var"):
            np.testing.assert_array_equal(getattr(joined, v), getattr(whole, v), err_msg=v)


def test_parts_in_another_order_keep_their_rows():
    scheme = bench_scheme()
    p = _protocol(scheme)
    args = (scheme, p, 0.1 * ms, 50)
    whole = kc.simulate(*args, 4, rng=5)
    a = kc.simulate(*args, rng=5, trials=range(0, 2))
    b = kc.simulate(*args, rng=5, trials=range(2, 4))
    joined = kc.concatenate([b, a])
    np.testing.assert_array_equal(joined.trials, [2, 3, 0, 1])
    np.testing.assert_array_equal(joined.counts, whole.counts[[2, 3, 0, 1]])
    # sums do not depend on the order
    np.testing.assert_array_equal(joined.sum_sq_counts, whole.sum_sq_counts)


def test_one_part_and_scattered_trials():
    scheme = bench_scheme()
    p = _protocol(scheme)
    args = (scheme, p, 0.1 * ms, 50)
    a = kc.simulate(*args, rng=5, trials=[9, 2])
    b = kc.simulate(*args, rng=5, trials=[4])
    one = kc.concatenate([a])
    np.testing.assert_array_equal(one.counts, a.counts)
    assert one is not a
    joined = kc.concatenate((a, b))
    ref = kc.simulate(*args, rng=5, trials=[9, 2, 4])
    np.testing.assert_array_equal(joined.counts, ref.counts)


def test_sums_switch_to_python_ints_when_the_joined_total_needs_them():
    """Two parts whose sums of squares each fit uint64 (2 N^2 < 2^64) join into four trials,
    whose bound 4 N^2 >= 2^64 makes them Python ints, as a single four-trial call gives."""
    scheme = bench_scheme()
    p = kc.Protocol([kc.Step(0.3 * ms, V=-70 * mV, glutamate=1 * mM)])
    N = 2**31
    args = (scheme, p, 0.1 * ms, N)
    a = kc.simulate(*args, rng=1, method="population", record="summary", trials=range(0, 2))
    b = kc.simulate(*args, rng=1, method="population", trials=range(2, 4))
    whole = kc.simulate(*args, 4, rng=1, method="population", record="summary")
    assert a.sum_sq_counts.dtype == np.uint64 and whole.sum_sq_counts.dtype == object
    joined = kc.concatenate([a, b])
    assert joined.sum_sq_counts.dtype == object
    assert joined.sum_sq_counts.tolist() == whole.sum_sq_counts.tolist()
    assert joined.sum_counts.tolist() == whole.sum_counts.tolist()
    np.testing.assert_array_equal(joined.var, whole.var)


def test_a_joined_result_pickles_and_joins_again():
    scheme = ch82()
    p = _protocol(scheme)
    args = (scheme, p, 0.1 * ms, 100)
    parts = [kc.simulate(*args, rng=8, record="summary", trials=range(i, i + 1)) for i in range(3)]
    ab = pickle.loads(pickle.dumps(kc.concatenate(parts[:2])))
    joined = kc.concatenate([ab, parts[2]])
    whole = kc.simulate(*args, 3, rng=8, record="summary")
    _assert_same(joined, whole)


def test_summary_without_group_sums_joins_without_them():
    scheme = _two_level_scheme()
    p = _protocol(scheme)
    args = (scheme, p, 0.1 * ms, 100)
    a = kc.simulate(*args, rng=3, trials=range(0, 2), record="summary")
    b = kc.simulate(*args, rng=3, trials=range(2, 4), record="summary")
    b._gsums = None                                      # e.g. pickled by an older version
    joined = kc.concatenate([a, b])
    np.testing.assert_array_equal(joined.var, kc.simulate(*args, 4, rng=3, record="summary").var)
    with pytest.raises(ValueError, match="no sums of the open and level counts"):
        joined.open_probability_var


# ------------------------------------------------------------------------------ refusals
def _pair(**kw_b):
    scheme = bench_scheme()
    p = _protocol(scheme)
    a = kc.simulate(scheme, p, 0.1 * ms, 50, rng=1, trials=range(0, 2), method="ssa")
    kw = dict(scheme=scheme, protocol=p, dt=0.1 * ms, n_channels=50, rng=1, trials=range(2, 4),
              method="ssa")
    kw.update(kw_b)
    b = kc.simulate(kw.pop("scheme"), kw.pop("protocol"), kw.pop("dt"), kw.pop("n_channels"), **kw)
    return a, b


@pytest.mark.parametrize("change, what", [
    (dict(rng=2), r"root entropy \(rng\) \(1 and 2\)"),
    (dict(dt=0.2 * ms), r"dt \(s\)"),
    (dict(n_channels=51), r"n_channels \(50 and 51\)"),
    (dict(method="population"), r"method \('ssa' and 'population'\)"),
    (dict(protocol=kc.Protocol([kc.Step(10 * ms, V=-60 * mV, glutamate=1 * mM)])), "protocol"),
    (dict(scheme=kc.models.get("destexhe1994_sf")), "scheme"),
    (dict(initial=[0, 0, 1, 0, 0, 0]), "initial distribution"),   # (rest: all in C0)
    (dict(trials=range(1, 3)), r"trial\(s\) \[1\] occur in more than one part"),
])
def test_parts_of_different_simulations_are_refused(change, what):
    a, b = _pair(**change)
    with pytest.raises(ValueError, match=what):
        kc.concatenate([a, b])


def test_versions_must_match():
    a, b = _pair()
    b.version = "0.0.1"
    with pytest.raises(ValueError, match="ketacore version"):
        kc.concatenate([a, b])


def test_bad_parts_argument():
    a, _ = _pair()
    with pytest.raises(TypeError, match="must be a sequence"):
        kc.concatenate(a)
    with pytest.raises(ValueError, match="parts is empty"):
        kc.concatenate([])
    log = kc.simulate_events(bench_scheme(), _protocol(bench_scheme()), 1, rng=1)
    with pytest.raises(TypeError, match="all be SimulationResult or all EventLog, got EventLog, SimulationResult"):
        kc.concatenate([a, log])
    with pytest.raises(TypeError, match="got int"):
        kc.concatenate([1, 2])


# ------------------------------------------------------------------------------ event logs
def test_split_event_logs_join_to_the_whole_log():
    scheme = ch82()
    p = _protocol(scheme)
    whole = kc.simulate_events(scheme, p, 5, rng=99)
    parts = [kc.simulate_events(scheme, p, rng=99, trials=range(0, 2)),
             kc.simulate_events(scheme, p, rng=99, trials=range(2, 5))]
    joined = kc.concatenate(parts)
    assert isinstance(joined, kc.EventLog) and len(joined) == 5
    np.testing.assert_array_equal(joined.trials, whole.trials)
    for (t1, s1), (t2, s2) in zip(joined, whole):
        np.testing.assert_array_equal(t1, t2)
        np.testing.assert_array_equal(s1, s2)
    assert joined.t_end == whole.t_end and joined.entropy == whole.entropy
    # a slice of a log keeps what it was simulated under, so it joins too
    again = kc.concatenate([whole[:2], whole[2:]])
    np.testing.assert_array_equal(again.n_events, whole.n_events)


def test_event_logs_of_different_simulations_are_refused():
    scheme = ch82()
    p = _protocol(scheme)
    a = kc.simulate_events(scheme, p, rng=1, trials=range(0, 2))
    other_p = kc.Protocol([kc.Step(10 * ms, V=-50 * mV, A=1e-6)])     # same duration
    assert other_p.duration == p.duration
    with pytest.raises(ValueError, match=r"protocol \(2 step\(s\), 0.01 s and 1 step\(s\), 0.01 s\)"):
        kc.concatenate([a, kc.simulate_events(scheme, other_p, rng=1, trials=range(2, 3))])
    old = kc.simulate_events(scheme, p, rng=1, trials=range(2, 3))
    old.protocol = None                                  # (as a log pickled before protocols were kept)
    with pytest.raises(ValueError, match="none stored"):
        kc.concatenate([a, old])
    with pytest.raises(ValueError, match="initial distribution"):
        kc.concatenate([a, kc.simulate_events(scheme, p, rng=1, trials=range(2, 3),
                                              initial=[0, 0, 1, 0, 0])])   # (rest: all in R)
    with pytest.raises(ValueError, match=r"trial\(s\) \[0\]"):
        kc.concatenate([a, kc.simulate_events(scheme, p, rng=1, trials=[0])])


def test_an_initial_vector_reused_by_the_caller_does_not_rewrite_earlier_results():
    """Results keep their own copy of ``initial=`` (audit: the caller's array was kept, so
    changing it in place for a second run changed the first result's record, and
    ``concatenate`` joined runs that started from different states)."""
    g = ch82()
    st = kc.Step(5 * ms, A=1e-6)
    v = np.array([0, 0, 0, 0, 1.0])
    a = kc.simulate(g, st, 0.1 * ms, 100, rng=5, initial=v, trials=range(0, 2))
    ev = kc.simulate_events(g, st, 2, rng=5, initial=v)
    sol = kc.solve(g, st, 0.1 * ms, initial=v)
    v[:] = [1.0, 0, 0, 0, 0]
    for r in (a, ev, sol):
        np.testing.assert_array_equal(r.initial, [0, 0, 0, 0, 1.0])
    b = kc.simulate(g, st, 0.1 * ms, 100, rng=5, initial=v, trials=range(2, 4))
    with pytest.raises(ValueError, match="initial"):
        kc.concatenate([a, b])
