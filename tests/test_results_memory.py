"""Per-trial views of a counts result (``current``, ``open_probability``, ``to_xarray``) are
computed a few trials at a time: no float copy of all the counts (which ``counts @ g`` made,
twice the size of int32 counts)."""
import tracemalloc

import numpy as np
import pytest

import ketacore as kc
from ketacore.simulate import SimulationResult
from ketacore.units import mM, ms, mV


def _result(n_trials, n_samples, seed=0):
    """A counts result built by hand (no simulation): two conducting states at two levels."""
    scheme = kc.Scheme(["C", "O1", "O2", "B"],
                       [("C", "O1", kc.rate(2e6, "glu")), ("O1", "C", 300.0),
                        ("O1", "O2", 800.0), ("O2", "O1", 500.0),
                        ("O1", "B", 400.0), ("B", "O1", 250.0)],
                       conductance={"O1": 50e-12, "O2": 20e-12}, e_rev=0.0, name="two levels")
    dt = 0.1 * ms
    protocol = kc.Protocol([kc.Step(n_samples * dt, V=-70 * mV, glu=1 * mM)])
    N = 1000
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(N, [0.4, 0.3, 0.2, 0.1], size=(n_trials, n_samples)).astype(np.int32)
    return SimulationResult(scheme=scheme, protocol=protocol, dt=dt, n_samples=n_samples,
                            method="population", record="counts", entropy=0,
                            trials=np.arange(n_trials, dtype=np.uint64), n_channels=N,
                            initial=np.array([1.0, 0, 0, 0]), counts=counts)


def test_current_and_open_probability_values():
    r = _result(7, 300)
    g = np.asarray(r.scheme.conductance, float)
    ref = (r.counts.astype(float) @ g) * (r.V - r.scheme.e_rev)
    np.testing.assert_allclose(r.current, ref, rtol=1e-15, atol=0)
    # open fraction: an exact integer count over N, so equal to the bit
    np.testing.assert_array_equal(r.open_probability, r.counts[..., 1:3].sum(axis=-1) / 1000)
    # with one conducting state the current is one product per cell: exact
    one = _result(3, 50)
    one.scheme = kc.Scheme(one.scheme.states, [("C", "O1", 1.0), ("O1", "C", 1.0), ("O1", "O2", 1.0),
                                               ("O2", "O1", 1.0), ("O1", "B", 1.0), ("B", "O1", 1.0)],
                           conductance={"O1": 50e-12}, e_rev=0.0)
    np.testing.assert_array_equal(one.current, one.counts[..., 1] * 50e-12 * (one.V - 0.0))


@pytest.mark.parametrize("view", ["current", "open_probability"])
def test_per_trial_views_need_no_float_copy_of_the_counts(view):
    # 9.6e6 (trial, sample) cells (counts of ones: only the sizes matter here), so that the
    # view's own temporaries -- one block of 2**21 float64 cells, 16.8 MB, whatever the size --
    # are well below a copy that grows with the counts: the former rules (`counts @ g`, and
    # `counts[..., open].sum(-1)`, an int32 copy of the open states plus an int64 sum) peaked
    # at ~2x the output (154 MB here, measured), these at output + 16.8 MB (92 MB)
    n, S = 40, 240000
    r = _result(2, 10)
    r = SimulationResult(scheme=r.scheme, protocol=kc.Protocol([kc.Step(S * r.dt, V=-70 * mV, glu=1 * mM)]),
                         dt=r.dt, n_samples=S, method="population", record="counts", entropy=0,
                         trials=np.arange(n, dtype=np.uint64), n_channels=1000,
                         initial=np.array([1.0, 0, 0, 0]), counts=np.ones((n, S, 4), np.int32))
    out_bytes = n * S * 8
    r.V                              # (cached before measuring)
    tracemalloc.start()
    try:
        getattr(r, view)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the output, plus one block's temporary (2**21 float64 cells = 16.8 MB) and small change
    assert peak < out_bytes + 2**21 * 8 * 1.1 + 1e6, peak / 1e6
