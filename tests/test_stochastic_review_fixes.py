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
