"""A record="summary" result's Dataset keeps the exact integer sums (audit: to_xarray kept only
float mean/var, so summaries saved to netCDF could not be joined exactly), reads back with
SimulationResult.from_xarray and joins with kc.concatenate to the bit; and a summary that cannot
give current_var (more than MAX_SUMMARY_LEVELS conductance levels) says so at simulate() and in
to_xarray() instead of dropping it silently.

Oracles: the one-call result over all trials (trial i's stream depends only on the entropy and
i, so a split run joined must equal it to the bit), Python-int arithmetic for sums beyond
int64, and the scheme's level count against MAX_SUMMARY_LEVELS.
"""
import importlib
import warnings

import numpy as np
import pytest

import ketacore as kc

SM = importlib.import_module("ketacore.simulate")   # (kc.simulate is the function)
xr = pytest.importorskip("xarray")

STEP = kc.Step(0.005, agonist=1e-5)


def _documented(ds):
    for name in list(ds.data_vars) + list(ds.coords):
        attrs = ds[name].attrs
        assert isinstance(attrs.get("units"), str) and attrs["units"], name
        assert isinstance(attrs.get("long_name"), str) and attrs["long_name"], name


def _chain(n_levels):
    """C0 <-> O1 <-> ... <-> On, one state per conductance level (1..n pS)."""
    names = ["C0"] + [f"O{i + 1}" for i in range(n_levels)]
    tr = [("C0", "O1", kc.rate(1e6, "glu")), ("O1", "C0", 200.0)]
    for a, b in zip(names[1:-1], names[2:]):
        tr += [(a, b, 300.0), (b, a, 300.0)]
    return kc.Scheme(names, tr, conductance={n: (i + 1) * 1e-12 for i, n in enumerate(names[1:])},
                     name="chain")


def test_summary_dataset_holds_the_exact_integer_sums():
    """sum_counts, sum_sq_counts (int64) and the summary groups' sums equal the result's exact
    integers; group_states are the groups the sums belong to; every variable has units and a
    long_name."""
    g = _chain(3)                     # 3 levels: 1 open-count group + 3 pair groups
    r = kc.simulate(g, kc.Step(0.005, glu=1e-5), 1e-3, 25, 6, rng=4, record="summary")
    ds = r.to_xarray()
    assert ds["sum_counts"].dtype == np.int64 and ds["sum_sq_counts"].dtype == np.int64
    assert np.array_equal(ds["sum_counts"].values, r.sum_counts)
    assert np.array_equal(ds["sum_sq_counts"].values.astype(np.uint64), r.sum_sq_counts)
    flags = SM._summary_groups(g)[0]
    assert len(flags) == 4
    assert np.array_equal(ds["group_states"].values, flags)
    assert np.array_equal(ds["sum_group_counts"].values, r._gsums[0])
    assert np.array_equal(ds["sum_sq_group_counts"].values, r._gsums[1].astype(np.int64))
    assert np.array_equal(ds["initial"].values, r.initial)
    _documented(ds)
    assert "exact sum over the 6 trials" in ds["sum_counts"].attrs["long_name"]
    # mean and var are those sums' quotients
    np.testing.assert_array_equal(ds["mean"].values, ds["sum_counts"].values / 6)


def test_netcdf_summaries_join_to_the_bit(tmp_path):
    """Two summaries of trials 0-2 and 3-6 written to netCDF, read back (from_xarray) and
    joined (concatenate) equal the one-call summary of trials 0-6 to the bit: sums, var,
    open_probability_var and current_var (two conductance levels: pair groups needed)."""
    pytest.importorskip("netCDF4")
    g = _chain(2)
    p = kc.Step(0.006, glu=1e-5)
    kw = dict(rng=11, record="summary")
    whole = kc.simulate(g, p, 1e-3, 40, 7, **kw)
    parts = []
    for k, tr in enumerate((range(0, 3), range(3, 7))):
        path = tmp_path / f"part{k}.nc"
        kc.simulate(g, p, 1e-3, 40, trials=tr, **kw).to_xarray().to_netcdf(path)
        with xr.open_dataset(path) as ds:
            parts.append(kc.SimulationResult.from_xarray(ds.load(), g, p))
    joined = kc.concatenate(parts)
    assert joined.record == "summary" and list(joined.trials) == list(range(7))
    for name in ("sum_counts", "sum_sq_counts"):
        a, b = getattr(joined, name), getattr(whole, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    for name in ("mean", "var", "open_probability_var", "current_var"):
        assert np.array_equal(getattr(joined, name), getattr(whole, name), equal_nan=True), name
    # a re-read part joins with one in memory too
    mem = kc.simulate(g, p, 1e-3, 40, trials=range(7, 9), **kw)
    assert np.array_equal(kc.concatenate([joined, mem]).sum_sq_counts,
                          kc.simulate(g, p, 1e-3, 40, 9, **kw).sum_sq_counts)


def test_sums_beyond_int64_are_stored_as_two_words(tmp_path):
    """5e9 channels, 2 trials: the sums of squares (~n N^2 ~ 5e19) exceed int64 and uint64, so
    they are stored as int64 words hi * 2**63 + lo, read back as the same Python ints."""
    pytest.importorskip("netCDF4")
    p = kc.Step(0.002, agonist=1e-5)
    r = kc.simulate("ch82", p, 1e-3, 5_000_000_000, 2, method="population", rng=2, record="summary")
    q = r.sum_sq_counts
    assert q.dtype == object and max(q.ravel()) >= 2**64
    ds = r.to_xarray()
    assert "sum_sq_counts" not in ds and ds["sum_sq_counts_hi"].dtype == np.int64
    words = ds["sum_sq_counts_hi"].values.astype(object) * 2**63 + ds["sum_sq_counts_lo"].values.astype(object)
    assert (words == q).all()
    assert "sum_sq_counts_hi * 2**63 + sum_sq_counts_lo" in ds["sum_sq_counts_lo"].attrs["long_name"]
    _documented(ds)
    ds.to_netcdf(tmp_path / "big.nc")
    with xr.open_dataset(tmp_path / "big.nc") as f:
        back = kc.SimulationResult.from_xarray(f.load(), "ch82", p)
    assert (back.sum_sq_counts == q).all() and np.array_equal(back.sum_counts, r.sum_counts)
    assert np.array_equal(back.var, r.var) and np.array_equal(back.current_var, r.current_var)


def test_counts_datasets_read_back_too():
    r = kc.simulate("ch82", STEP, 1e-3, 20, 3, rng=1)
    back = kc.SimulationResult.from_xarray(r.to_xarray(), "ch82", STEP)
    assert back.record == "counts" and np.array_equal(back.counts, r.counts)
    assert np.array_equal(back.trials, r.trials) and back.entropy == r.entropy
    assert np.array_equal(kc.concatenate([back]).counts, r.counts)


def test_from_xarray_refuses_what_does_not_match():
    r = kc.simulate("ch82", STEP, 1e-3, 20, 3, rng=1, record="summary")
    ds = r.to_xarray()
    with pytest.raises(ValueError, match="scheme has states"):
        kc.SimulationResult.from_xarray(ds, "destexhe1994", STEP)
    with pytest.raises(ValueError, match="pass the protocol that was simulated"):
        kc.SimulationResult.from_xarray(ds, "ch82", kc.Step(0.005, V=-0.05, agonist=1e-5))
    with pytest.raises(TypeError, match="ds must be an xarray.Dataset"):
        kc.SimulationResult.from_xarray({"mean": 1}, "ch82", STEP)
    with pytest.raises(ValueError, match="no exact sums"):
        kc.SimulationResult.from_xarray(ds.drop_vars(["sum_counts"]), "ch82", STEP)
    with pytest.raises(ValueError, match="older ketacore"):
        kc.SimulationResult.from_xarray(ds.drop_vars(["initial"]), "ch82", STEP)


def test_many_levels_summary_says_current_var_is_missing():
    """18 conductance levels (> MAX_SUMMARY_LEVELS = 16): simulate(record='summary') warns
    before running that current_var will not be available; to_xarray warns and records why in
    ds.attrs['unavailable'] (open_probability_var is kept); record='counts' does not warn (its
    current_var comes from the counts)."""
    g = _chain(SM.MAX_SUMMARY_LEVELS + 2)
    p = kc.Step(0.005, glu=1e-5)
    with pytest.warns(UserWarning, match=r"simulate\(record='summary'\): current_var: the scheme "
                                         r"has 18 distinct conductance levels.*record='counts'"):
        r = kc.simulate(g, p, 1e-3, 30, 4, rng=3, record="summary")
    with pytest.warns(UserWarning, match=r"to_xarray\(\): left out current_var"):
        ds = r.to_xarray()
    assert "current_var" not in ds and "open_probability_var" in ds
    assert "current_var" in ds.attrs["unavailable"] and "18" in ds.attrs["unavailable"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = kc.simulate(g, p, 1e-3, 30, 4, rng=3)
        assert "unavailable" not in c.to_xarray().attrs and c.current_var.shape == (6,)
        # a scheme within the cap: no warning, current_var kept
        small = kc.simulate(_chain(3), p, 1e-3, 30, 4, rng=3, record="summary").to_xarray()
        assert "current_var" in small and "unavailable" not in small.attrs
