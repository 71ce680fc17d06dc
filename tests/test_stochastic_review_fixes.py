"""Fixes from the 2026-11-28 review of the stochastic engine (reviewer A).

* ``method="auto"`` chooses per trial, so splitting trials over calls (or study chunks) never
  changes the method or the bytes.
* The cost model's caches check the identity of the compiled scheme they were keyed by
  (``id`` values are reused once an object is freed).

All assertions are exact (bytes or method names); no statistics.
"""
import importlib

import numpy as np
import pytest

import ketacore as kc

SM = importlib.import_module("ketacore.simulate")   # (kc.simulate is the function)


def _trapping():
    d = kc.block(kc.models.get("erreger2005_2a"), "ketamine", "mg")
    p = kc.Protocol([kc.Step(10e-3, V=-0.07),
                     kc.Step(0.2, V=-0.07, glutamate=1e-3, ketamine=10e-6, mg=1e-3)])
    return d, p


def test_auto_split_gives_the_bytes_of_one_call():
    """The review's case: 77 channels, 2 trials in one call chose population, each trial
    alone ssa, and the concatenated counts differed."""
    d, p = _trapping()
    one = kc.simulate(d, p, 1e-3, 77, n_trials=2, rng=1)
    a = kc.simulate(d, p, 1e-3, 77, trials=range(0, 1), rng=1)
    b = kc.simulate(d, p, 1e-3, 77, trials=range(1, 2), rng=1)
    assert one.method == a.method == b.method
    assert np.array_equal(one.counts, np.concatenate([a.counts, b.counts]))


@pytest.mark.parametrize("n_channels", [20, 60, 76, 77, 100, 200, 400])
def test_auto_choice_does_not_depend_on_the_trials(n_channels):
    """Across the region where the two methods' costs cross, the choice is the same for 1, 2,
    8 and 64 trials, for a trial offset, for a summary record and for 1 or 2 threads."""
    d, p = _trapping()
    plan = lambda **kw: SM._make_plan(d, p, 1e-3, n_channels, kw.pop("n_trials", None),  # noqa: E731
                                      "auto", kw.pop("record", "counts"), "R", kw.pop("trials", None),
                                      kw.pop("trial_offset", None), kw.pop("n_threads", 1), 1)[0].chosen
    base = plan(n_trials=1)
    for kw in (dict(n_trials=2), dict(n_trials=8), dict(n_trials=64), dict(trial_offset=5),
               dict(trials=[3, 9]), dict(n_trials=8, record="summary"), dict(n_trials=8, n_threads=2)):
        assert plan(**kw) == base, (n_channels, kw)


def test_auto_choice_crosses_over_in_this_range():
    """(So that the test above spans both choices.)"""
    d, p = _trapping()
    chosen = {SM._make_plan(d, p, 1e-3, n, 1, "auto", "counts", "R", None, None, 1, 1)[0].chosen
              for n in (20, 400)}
    assert chosen == {"ssa", "population"}


def test_study_chunks_give_the_same_bytes_with_auto(tmp_path):
    """run_study with method = "auto": 1-trial and 4-trial chunks give identical results."""
    xr = pytest.importorskip("xarray")
    pytest.importorskip("netCDF4")
    text = """
name = "autosplit"
model = "erreger2005_2a"
blockers = ["ketamine", "mg"]
method = "auto"
n_channels = 77
n_trials = 4
dt = "1 ms"
rng = 1
record = "summary"
keep_trials = 0
deterministic = false

[protocols.p]
initial = "R"

[[protocols.p.segments]]
duration = "10 ms"
V = "-70 mV"

[[protocols.p.segments]]
duration = "200 ms"
V = "-70 mV"
glutamate = "1 mM"
ketamine = "10 uM"
mg = "1 mM"
"""
    st = kc.Study.from_toml(text)
    out = {}
    for chunk in (1, 4):
        tree = kc.run_study(st, output=tmp_path / f"c{chunk}", progress=False, workers=1,
                            chunk_trials=chunk)
        out[chunk] = tree["p"].to_dataset() if hasattr(tree["p"], "to_dataset") else tree["p"]
    a, b = out[1], out[4]
    assert a.attrs.get("method") == b.attrs.get("method")
    for v in ("sum_counts", "sum_sq_counts", "open_probability_mc"):
        if v in a:
            xr.testing.assert_identical(a[v], b[v])
    assert "sum_counts" in a


def test_rate_cache_checks_the_compiled_scheme():
    """A cache entry whose compiled scheme is another object than the one asked for (as when
    a freed scheme's id is reused) is not returned."""
    slow = kc.Scheme(["C", "O"], [("C", "O", kc.rate(1e3, "glutamate")), ("O", "C", 1e-2)],
                     conductance={"O": 5e-11}, name="slow")
    fast = kc.Scheme(["C", "O"], [("C", "O", kc.rate(1e9, "glutamate")), ("O", "C", 1e4)],
                     conductance={"O": 5e-11}, name="fast")
    cs, cf = slow._compiled(), fast._compiled()
    p = kc.Protocol([kc.Step(0.2, glutamate=1e-3)])
    x0 = np.array([1.0, 0.0])
    SM._RATE_CACHE.clear()
    SM._EXPECT_CACHE.clear()
    SM._PLANS.clear()
    fresh = kc.simulate(slow, p, 1e-3, 50, 4, rng=1, initial=x0)
    # plant the fast scheme's entries under the slow scheme's id, as an id reuse would
    planted = 0
    for key, val in list(SM._RATE_CACHE.items()):
        if key[0] == id(cs):
            SM._RATE_CACHE[key] = (cf, (val[1][0] * 1e6, val[1][1] * 1e6))
            planted += 1
    for key, val in list(SM._EXPECT_CACHE.items()):
        if key[0] == id(cs):
            SM._EXPECT_CACHE[key] = (val[0], val[1], val[2] * 1e6, cf)
            planted += 1
    assert planted >= 1
    SM._PLANS.clear()
    again = kc.simulate(slow, p, 1e-3, 50, 4, rng=1, initial=x0)
    assert again.method == fresh.method
    assert np.array_equal(again.counts, fresh.counts)


def test_sum_sq_counts_dtype_is_the_same_for_counts_and_summary():
    """uint64 exactly when n_trials * n_channels**2 < 2**64, whatever ``record`` is (the
    review's case, N = 2**31 - 1 and 3 trials, gave object with counts, uint64 with summary);
    the values are equal."""
    g = kc.models.get("destexhe1994_sf")
    p = kc.Protocol([kc.Step(0.005), kc.Step(0.02, glutamate=1e-3)])
    # (3.5e9 channels, 3 trials: each square is below 2**64, their sum is not -- the low
    # word's carry into the high word of the C++ 128-bit sums)
    for N, n, dtype in ((2**31 - 1, 3, np.uint64), (2**32, 1, object), (2**32 + 1, 2, object),
                        (1000, 4, np.uint64), (3_500_000_000, 3, object)):
        kw = dict(rng=1, method="population")
        a = kc.simulate(g, p, 1e-3, N, n, **kw)
        b = kc.simulate(g, p, 1e-3, N, n, record="summary", **kw)
        assert a.sum_sq_counts.dtype == b.sum_sq_counts.dtype == np.dtype(dtype), (N, n)
        assert np.array_equal(a.sum_sq_counts, b.sum_sq_counts)
        assert np.array_equal(a.sum_counts, b.sum_counts)
        assert a.sum_counts.dtype == b.sum_counts.dtype == np.int64    # (n N < 2**63 here)
        exact = [[sum(int(x) ** 2 for x in a.counts[:, i, j]) for j in range(a.counts.shape[2])]
                 for i in range(a.counts.shape[1])]
        assert a.sum_sq_counts.tolist() == exact
        if N == 3_500_000_000:
            assert max(max(r) for r in exact) >= 2**64 > N * N


def test_sums_of_many_trials_are_exact_in_blocks():
    """The counts' sums are reduced in trial blocks (bounded temporaries): equal to Python
    ints, also across block edges and with uint64 squares (n N^2 >= 2**63)."""
    g = kc.models.get("destexhe1994_sf")
    p = kc.Protocol([kc.Step(0.01, glutamate=1e-3)])
    rng = np.random.default_rng(3)
    for N, n, dtype in ((1000, 7, np.int32), (2**31 + 11, 3, np.int64)):
        S, K = 2**19 // 3, g.n_states           # (2**21 // (S*K) = 1: one trial per block)
        counts = rng.integers(0, N + 1, size=(n, S, K)).astype(dtype)
        counts[:, 0, :] = N                      # the largest squares
        r = SM.SimulationResult(scheme=g, protocol=p, dt=1e-3, n_samples=S, method="ssa",
                                record="counts", entropy=0, trials=np.arange(n, dtype=np.uint64),
                                n_channels=N, initial=np.eye(K)[0], counts=counts)
        cols = [(0, 0), (1, 3), (S - 1, K - 1)]
        for i, j in cols:
            assert int(r.sum_counts[i, j]) == sum(int(x) for x in counts[:, i, j])
            assert int(r.sum_sq_counts[i, j]) == sum(int(x) ** 2 for x in counts[:, i, j])
        assert r.sum_sq_counts.dtype == np.uint64


def test_initial_vector_tolerance_follows_its_dtype():
    """A float32 vector normalised in float32 is accepted (its sum is 1 only to ~1e-7); the
    message is the same for every input kind and shows plain numbers."""
    g = kc.models.get("destexhe1994_sf")
    p = kc.Step(0.01, glutamate=1e-3)
    x32 = np.full(g.n_states, 1 / g.n_states, np.float32)
    assert abs(float(x32.astype(np.float64).sum()) - 1) > 1e-9
    r = kc.simulate(g, p, 1e-3, 10, rng=1, initial=x32)
    assert r.counts.sum(axis=-1).tolist() == [[10] * r.n_samples]
    for bad in (np.full(g.n_states, 0.25, np.float32), [0.3] * g.n_states,
                np.full(g.n_states, 0.3)):
        with pytest.raises(ValueError, match=r"^initial vector must be finite, non-negative and "
                                             r"sum to 1, got sum [0-9.]+, min 0\.[0-9]+"):
            kc.simulate(g, p, 1e-3, 10, rng=1, initial=bad)
    for bad in ([-0.1, 1.1, 0, 0, 0, 0][:g.n_states], np.array([np.nan] + [0.2] * (g.n_states - 1))):
        with pytest.raises(ValueError, match=r"^initial vector must be finite, non-negative and "
                                             r"sum to 1, got an entry (-0\.1|nan)$"):
            kc.simulate(g, p, 1e-3, 10, rng=1, initial=bad)


def test_eventlog_slices_and_positions():
    """log[a:b] is an EventLog; a position out of range names positions and trial indices;
    simulate_events with a float third argument (dt, as for simulate) says so."""
    g = kc.models.get("ch82")
    log = kc.simulate_events(g, kc.Step(0.05, agonist=1e-6), trials=[5, 9, 2], rng=3)
    sub = log[1:]
    assert isinstance(sub, SM.EventLog) and len(sub) == 2
    assert sub.trials.tolist() == [9, 2]
    assert all(np.array_equal(a, b) for a, b in zip(sub.times, log.times[1:]))
    pick = log[[2, 0]]
    assert pick.trials.tolist() == [2, 5] and np.array_equal(pick.states[0], log.states[2])
    t, s = log[-1]
    assert np.array_equal(t, log.times[2]) and np.array_equal(s, log.states[2])
    assert np.array_equal(log.dwells(1)[0], sub.dwells(0)[0])
    with pytest.raises(IndexError, match=r"position 5 is out of range for 3 trial\(s\).*"
                                         r"log\.trials \(\[5, 9, 2\]\)"):
        log.dwells(5)
    with pytest.raises(IndexError, match="position 3"):
        log[3]
    with pytest.raises(TypeError, match="trial position must be an integer"):
        log.open_dwells(1.0)
    with pytest.raises(TypeError, match=r"third argument is n_trials, not dt"):
        kc.simulate_events(g, kc.Step(0.05, agonist=1e-6), 1e-3)


def test_summary_metadata_and_xarray_carry_the_trials():
    xr = pytest.importorskip("xarray")
    g = kc.models.get("destexhe1994_sf")
    p = kc.Step(0.01, glutamate=1e-3)
    r = kc.simulate(g, p, 1e-3, 100, 6, rng=1, record="summary", trial_offset=10)
    assert r.metadata["n_trials"] == 6
    ds = r.to_xarray()
    assert isinstance(ds, xr.Dataset)
    assert ds.attrs["n_trials"] == 6 and ds.attrs["trials"] == "range(10, 16)"
    r2 = kc.simulate(g, p, 1e-3, 100, rng=1, record="summary", trials=[7, 3])
    assert r2.to_xarray().attrs["trials"] == "7 3"
    c = kc.simulate(g, p, 1e-3, 100, 2, rng=1)
    assert "trials" not in c.to_xarray().attrs and c.to_xarray().attrs["n_trials"] == 2


def _two_level_scheme():
    """C <-> O1 (50 pS) <-> O2 (20 pS, a sublevel), O1 <-> B: two conductance levels."""
    return kc.Scheme(["C", "O1", "O2", "B"],
                     [("C", "O1", kc.rate(2e6, "glu")), ("O1", "C", 300.0),
                      ("O1", "O2", 800.0), ("O2", "O1", 500.0),
                      ("O1", "B", 400.0), ("B", "O1", 250.0)],
                     conductance={"O1": 50e-12, "O2": 20e-12}, name="two levels")


@pytest.mark.parametrize("scheme", ["ch82", "two", "destexhe1994_sf"])
@pytest.mark.parametrize("method", ["ssa", "population"])
def test_summary_gives_the_variance_of_the_open_fraction_and_current(scheme, method):
    """record="summary" keeps exact sums of the open count and of each conductance level (and
    pair of levels), so the variance over trials of the open fraction and of the current equal
    those of record="counts" to the bit, for 1 and 2 threads, and numpy's variance of the
    per-trial traces to rounding.  (ch82: two open states of one conductance; "two": two
    levels, whose covariance matters.)"""
    g = _two_level_scheme() if scheme == "two" else kc.models.get(scheme)
    lig = {"ch82": "agonist", "two": "glu", "destexhe1994_sf": "glutamate"}[scheme]
    p = kc.Protocol([kc.Step(0.005, V=-0.06), kc.Step(0.02, V=-0.06, **{lig: 1e-5})])
    a = kc.simulate(g, p, 2e-4, 40, 12, rng=5, method=method)
    ref_po = a.open_probability.var(axis=0, ddof=1)
    ref_i = a.current.var(axis=0, ddof=1)
    assert np.max(ref_i) > 0
    np.testing.assert_allclose(a.open_probability_var, ref_po, rtol=1e-12, atol=1e-18)
    np.testing.assert_allclose(a.current_var, ref_i, rtol=1e-10, atol=1e-16 * np.max(ref_i))
    for threads in (1, 2):
        b = kc.simulate(g, p, 2e-4, 40, 12, rng=5, method=method, record="summary", n_threads=threads)
        assert np.array_equal(b.open_probability_var, a.open_probability_var)
        assert np.array_equal(b.current_var, a.current_var)
        assert np.array_equal(b.sum_counts, a.sum_counts)
        assert b.sum_counts.shape == (a.n_samples, g.n_states)
    if scheme == "two":
        # the levels' covariance is not negligible here: without it the variance is wrong
        o1, o2 = a["O1"].astype(float), a["O2"].astype(float)
        drive = a.V - g.e_rev
        no_cov = (50e-12 ** 2 * o1.var(axis=0, ddof=1) + 20e-12 ** 2 * o2.var(axis=0, ddof=1)) * drive ** 2
        assert np.max(np.abs(no_cov - ref_i)) > 0.05 * np.max(ref_i)


def test_summary_variances_of_one_trial_are_nan_and_in_xarray():
    xr = pytest.importorskip("xarray")
    g = kc.models.get("ch82")
    p = kc.Step(0.01, agonist=1e-5)
    one = kc.simulate(g, p, 1e-3, 30, 1, rng=1, record="summary")
    assert np.all(np.isnan(one.open_probability_var)) and np.all(np.isnan(one.current_var))
    r = kc.simulate(g, p, 1e-3, 30, 5, rng=1, record="summary")
    ds = r.to_xarray()
    assert isinstance(ds, xr.Dataset)
    assert np.array_equal(ds["open_probability_var"].values, r.open_probability_var)
    assert ds["current_var"].attrs["units"] == "A2"


def _chain(levels_pS):
    """C0 <-> O1 <-> O2 <-> ... with one state per conductance (pS) given."""
    names = ["C0"] + [f"O{i + 1}" for i in range(len(levels_pS))]
    tr = [("C0", "O1", kc.rate(1e6, "glu")), ("O1", "C0", 200.0)]
    for a, b in zip(names[1:-1], names[2:]):
        tr += [(a, b, 300.0), (b, a, 300.0)]
    return kc.Scheme(names, tr, conductance={n: x * 1e-12 for n, x in zip(names[1:], levels_pS)},
                     name="chain")


def test_summary_groups_are_capped_and_current_var_says_why():
    """Beyond MAX_SUMMARY_LEVELS distinct conductances the level and pair groups (1 + L +
    L(L-1)/2) are not summed: the open fraction's variance is still given (equal to counts'),
    current_var of the summary is refused with the reason, and counts still give it."""
    L = SM.MAX_SUMMARY_LEVELS + 4
    g = _chain(list(range(1, L + 1)))
    p = kc.Step(0.01, glu=1e-5)
    flags, (open_col, levels, pairs) = SM._summary_groups(g)
    assert levels is None and len(flags) == 1 and not pairs
    a = kc.simulate(g, p, 1e-3, 30, 6, rng=2, method="population")
    b = kc.simulate(g, p, 1e-3, 30, 6, rng=2, method="population", record="summary")
    assert np.array_equal(a.open_probability_var, b.open_probability_var)
    with pytest.raises(ValueError, match=r"current_var of a record='summary' result: the scheme "
                                         r"has more than 16 distinct conductance levels.*record='counts'"):
        b.current_var
    np.testing.assert_allclose(a.current_var, a.current.var(axis=0, ddof=1), rtol=1e-12)
    pytest.importorskip("xarray")
    ds = b.to_xarray()
    assert "open_probability_var" in ds and "current_var" not in ds
    # at the cap itself everything is summed: the open count and the 120 pairs (each level is
    # a single state here, so the levels are state columns)
    g16 = _chain(list(range(1, SM.MAX_SUMMARY_LEVELS + 1)))
    flags16, (_, lv16, pairs16) = SM._summary_groups(g16)
    assert len(flags16) == 1 + 16 * 15 // 2 and len(lv16) == 16 and len(pairs16) == 120


def test_summary_without_conducting_states_and_without_group_sums():
    """No conducting state: no group, variances 0.  A summary result built without the group
    sums (by hand, or pickled by an older version) refuses the variances with a clear message
    and to_xarray leaves them out."""
    g = kc.Scheme(["A", "B"], [("A", "B", 100.0), ("B", "A", 50.0)], name="silent")
    assert len(SM._summary_groups(g)[0]) == 0 and SM._summary_groups(g)[1][0] is None
    r = kc.simulate(g, kc.Step(0.01), 1e-3, 20, 3, rng=1, record="summary")
    assert np.all(r.open_probability_var == 0) and np.all(r.current_var == 0)
    ch = kc.models.get("ch82")
    ok = kc.simulate(ch, kc.Step(0.005, agonist=1e-5), 1e-3, 20, 3, rng=1, record="summary")
    bare = SM.SimulationResult(scheme=ch, protocol=ok.protocol, dt=ok.dt, n_samples=ok.n_samples,
                               method=ok.method, record="summary", entropy=ok.entropy,
                               trials=ok.trials, n_channels=20, initial=ok.initial,
                               sums=ok._sums)
    with pytest.raises(ValueError, match="has no sums of the open and level counts"):
        bare.open_probability_var
    pytest.importorskip("xarray")
    ds = bare.to_xarray()
    assert "mean" in ds and "open_probability_var" not in ds and "current_var" not in ds


def test_float16_initial_vectors_are_too_coarse():
    g = kc.models.get("destexhe1994_sf")
    x = np.full(g.n_states, 1 / g.n_states, np.float16)
    x[0] += np.float16(0.01)
    with pytest.raises(ValueError, match=r"tolerance 0\.0001 for dtype float16"):
        kc.simulate(g, kc.Step(0.01, glutamate=1e-3), 1e-3, 10, rng=1, initial=x)


def _stiff():
    """Fast A <-> B (1e6, 3e6 /s) and slow B <-> C (2, 1 /s): ~1.5e6 transitions per channel-s."""
    return kc.Scheme(["A", "B", "C"], [("A", "B", 1e6), ("B", "A", 3e6), ("B", "C", 2.0), ("C", "B", 1.0)],
                     conductance={"C": 1e-11})


def test_a_forced_ssa_far_costlier_than_population_warns_before_running():
    """helper-97's audit: method='ssa' on a stiff scheme ran 50 s with no word, where auto
    (population) takes ~1 ms.  The warning comes from the plan, before any C++ runs: made an
    error here, the 50 s run never starts."""
    import warnings
    args = (_stiff(), kc.Step(2.0))
    kw = dict(dt=0.05, n_channels=20, n_trials=200, rng=4, initial="A")
    with warnings.catch_warnings():
        warnings.simplefilter("error", kc.PerformanceWarning)
        with pytest.raises(kc.PerformanceWarning, match=r"method='ssa' is estimated at >~[0-9.]+ s .*"
                                                         r"method='population' at"):
            kc.simulate(*args, method="ssa", **kw)
        # the same run by population, or chosen by auto, does not warn (and is quick)
        assert kc.simulate(*args, method="population", **kw).method == "population"
        assert kc.simulate(*args, **kw).method == "population"
        # a forced ssa where ssa is the right engine (a slow scheme, few channels, fine grid)
        slow = kc.Scheme(["C", "O"], [("C", "O", 10.0), ("O", "C", 20.0)], conductance={"O": 1e-11})
        kc.simulate(slow, kc.Step(1.0), dt=1e-5, n_channels=10, method="ssa", rng=1)
        # helper-100's audit: a start far from equilibrium (C0 in 1 mM glutamate: exit rate
        # 1e4 /s, ~16 transitions per channel in 0.2 s) was costed as if it lasted the whole
        # run (2e9 transitions, "12 s"; the run takes ~0.3 s).  The warning is judged on the
        # equilibrium exit rates, a low estimate: no warning here.
        sf = kc.models.get("destexhe1994_sf")
        kc.simulate(sf, kc.Step(0.2, glutamate=1e-3), 0.01, n_channels=1000, n_trials=2000, rng=777,
                    method="ssa", initial="C0", record="summary")
    assert issubclass(kc.PerformanceWarning, UserWarning) and "PerformanceWarning" in kc.__all__
