"""woodhull with a numpy Generator: a voltage refused after an earlier voltage ran (the refusal
is only known once that voltage's equilibrium is computed) leaves the caller's Generator as it
was -- a refused call never advances it (SPEC 7 use, as for every experiment in
test_api_coverage.test_refused_experiment_does_not_advance_the_callers_generator)."""
import json

import numpy as np
import pytest

import ketacore.experiments as E
from ketacore.blockers import Blocker

# K_d(0) = k_off / k_on = 2 M with delta_on = 1: ~0.09 M at -80 mV (blocks), ~44 M at +80 mV,
# beyond the 10 M concentration limit, so the default grid at +80 mV is refused.
WEAK = Blocker(name="weak", ligand="drug", k_on=1e3, k_off=2000.0, mode="trapping", delta_on=1.0)


def _state(g):
    return json.dumps(g.bit_generator.state, default=int)


def test_later_voltage_refused_puts_the_generator_back():
    g = np.random.default_rng(7)
    before = _state(g)
    with pytest.raises(ValueError, match="negligible at V = 80 mV"):
        E.woodhull("erreger2005_2a", WEAK, [-0.08, 0.08], method="stochastic", n_channels=100,
                   n_trials=2, rng=g)
    assert _state(g) == before
    # the same Generator then gives the same result as a fresh one with the same seed
    ok = E.woodhull("erreger2005_2a", WEAK, [-0.09, -0.08], method="stochastic", n_channels=100,
                    n_trials=2, rng=g)
    ref = E.woodhull("erreger2005_2a", WEAK, [-0.09, -0.08], method="stochastic", n_channels=100,
                     n_trials=2, rng=np.random.default_rng(7))
    assert _state(g) != before
    np.testing.assert_array_equal(ok.ic50, ref.ic50)
    assert ok.meta["entropy"] == ref.meta["entropy"]
