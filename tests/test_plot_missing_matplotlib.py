"""Without matplotlib every plot method raises one clear ImportError, never a raw
ModuleNotFoundError (experiments, analysis and ketacore.plot share ketacore.plot.require_pyplot).
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

import ketacore as kc
import ketacore.analysis as ka
from ketacore import plot as kplot
from ketacore.units import pS


@pytest.fixture
def no_matplotlib(monkeypatch):
    """Make ``import matplotlib`` (and its submodules) fail as if it were not installed."""
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)


def _objects():
    rng = np.random.default_rng(3)
    d = rng.exponential(1e-3, 400)
    rec = ka.Record.from_dwells(np.tile([1e-3, 2e-4, 1e-3, 5e-2], 20),
                                np.tile([1.0, 0.0, 1.0, 0.0], 20))
    scheme = kc.Scheme(["C", "O"], [("C", "O", kc.Rate(2e6, "glutamate")),
                                    ("O", "C", kc.Rate(3000.0))],
                       conductance={"O": 50 * pS}, e_rev=0.0, ligands=["glutamate"])
    blocker = kc.blockers.Blocker(name="x", ligand="drug", k_on=1e6, k_off=1.0,
                                  mode="sequential")
    return {
        "LogHistogram.plot": ka.log_histogram(d).plot,
        "MixtureFit.plot": ka.fit_mixture(d, 1).plot,
        "BurstResult.plot": rec.bursts(1e-2).plot,
        "NoiseAnalysis.plot": ka.noise_analysis(
            rng.binomial(50, 0.6 * np.exp(-np.arange(40) / 10), (20, 40)) * -1e-12).plot,
        "BlockKineticsResult.plot": kc.experiments.block_kinetics(
            scheme, blocker, 2e-6, t_on=4.0, t_off=6.0, n_samples=201).plot,
    }


@pytest.mark.parametrize("name", ["LogHistogram.plot", "MixtureFit.plot", "BurstResult.plot",
                                  "NoiseAnalysis.plot", "BlockKineticsResult.plot"])
def test_plot_methods_without_matplotlib_raise_clear_importerror(no_matplotlib, name):
    fn = _objects()[name]
    with pytest.raises(ImportError, match=r"^plot\(\) needs matplotlib: pip install") as e:
        fn()
    assert type(e.value) is ImportError          # not the raw ModuleNotFoundError


def test_shared_helper_and_module_without_matplotlib(no_matplotlib):
    with pytest.raises(ImportError, match=r"^plot\(\) needs matplotlib"):
        kplot.require_pyplot()
    with pytest.raises(ImportError, match=r"^ketacore\.plot needs matplotlib"):
        kplot._plt()
