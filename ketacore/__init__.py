"""ketacore -- a high-performance kinetics engine for Markov ion-channel models.

Built first for the NMDA receptor and its open-channel blockers (ketamine, Mg2+, memantine,
MK-801).  A C++17 core does the work; this package validates input, names things and plots.

Quick tour::

    import ketacore as kc
    from ketacore.units import s, ms, mV, uM, mM

    gating = kc.models.get("destexhe1994")
    protocol = kc.Protocol([kc.Step(1 * s, V=-70 * mV, glutamate=1 * mM)])
    det = kc.solve(gating, protocol, dt=1 * ms)

All quantities are SI (s, V, M, S, A, K); see :mod:`ketacore.units`.
"""
import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING

from . import units
from ._validate import PerformanceWarning, UnitsWarning
from ._version import __version__
from .protocol import Protocol, Step, pulse_train
from .scheme import Rate, Scheme, Transition, rate
from .solve import Result, solve
from .simulate import EventLog, SimulationResult, concatenate, simulate, simulate_events  # noqa: E402  (after
# the submodule import, so the names are the functions, not the ketacore.simulate module)

if _TYPE_CHECKING:  # the lazy names below, typed for mypy/pyright and IDEs (never run)
    from . import analysis, blockers, cli, experiments, fitting, models, plot, study, theory  # noqa: F401
    from .blockers import block  # noqa: F401
    from .study import Study, StudyConflictError, StudyError, StudyPart, run_study  # noqa: F401

# Submodules and functions imported on first use (keeps `import ketacore` fast).
_LAZY_MODULES = {"models", "theory", "blockers", "analysis", "experiments",
                 "study", "plot", "cli", "fitting"}
_LAZY_ATTRS = {
    "block": ("ketacore.blockers", "block"),
    "Study": ("ketacore.study", "Study"),
    "StudyPart": ("ketacore.study", "StudyPart"),
    "StudyError": ("ketacore.study", "StudyError"),
    "StudyConflictError": ("ketacore.study", "StudyConflictError"),
    "run_study": ("ketacore.study", "run_study"),
}


def __getattr__(name: str) -> object:
    if name in _LAZY_ATTRS:
        mod, attr = _LAZY_ATTRS[name]
        return getattr(_importlib.import_module(mod), attr)
    if name in _LAZY_MODULES:
        return _importlib.import_module(f"ketacore.{name}")
    raise AttributeError(f"module 'ketacore' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names, the lazy ones included (tab completion lists ``kc.theory`` before its
    first use)."""
    return sorted(set(globals()) | set(__all__))


__all__ = ["__version__", "units", "UnitsWarning", "PerformanceWarning", "Scheme", "Rate", "rate", "Transition", "Step", "Protocol",
           "pulse_train", "solve", "Result", "simulate", "simulate_events", "SimulationResult", "EventLog", "concatenate", "block", "models",
           "theory", "blockers", "analysis", "experiments", "fitting", "study", "plot", "Study", "StudyPart",
           "StudyError", "StudyConflictError", "run_study"]
