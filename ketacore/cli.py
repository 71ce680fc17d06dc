"""The ``ketacore`` command line.

``ketacore run [STUDY.toml] [-o DIR] [--workers N] [--scheduler ADDRESS]``,
``ketacore models``, ``ketacore blockers``, ``ketacore show MODEL``, ``ketacore --version``.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ._version import __version__


def _cmd_models(args: argparse.Namespace) -> int:
    from . import models
    for name in models.available():
        s = models.get(name)
        print(f"{name:<22} {s.n_states:>3} states  {s.citation}")
    return 0


def _cmd_blockers(args: argparse.Namespace) -> int:
    from . import blockers
    for name in blockers.available():
        b = blockers.get(name)
        print(f"{name:<22} {getattr(b, 'mode', ''):<17} {getattr(b, 'citation', '')}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from . import models
    try:
        s = models.get(args.model)
    except (KeyError, ValueError) as e:
        print(f"ketacore show: {e}", file=sys.stderr)
        return 2
    print(s.describe())
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        from . import study as _study
    except ImportError:
        _study = None
    if _study is not None and hasattr(_study, "main_run"):
        return _study.main_run(args)
    if args.study is not None:
        print("ketacore run: study files need the ketacore.study module", file=sys.stderr)
        return 2
    return _default_summary()


def _default_summary() -> int:
    """Fallback main job: solve the default NMDA model and summarise it."""
    import numpy as np

    from . import models, theory
    from .protocol import Protocol, Step
    from .solve import solve
    from .units import mM, ms, mV, s

    name = "destexhe1994_sf"
    g = models.get(name)
    prot = Protocol([Step(1 * ms, V=-70 * mV, glutamate=1 * mM), Step(999 * ms, V=-70 * mV)])
    r = solve(g, prot, dt=0.1 * ms, initial="C0")
    po = r.open_probability
    k = int(np.argmax(po))
    print(f"ketacore {__version__}: default job on {name} ({g.citation})")
    print(f"  1 ms pulse of 1 mM glutamate at -70 mV: peak Po {po[k]:.4f} at {r.time[k] / ms:.2f} ms,"
          f" Po at 1 s {po[-1]:.3g}")
    peq = theory.open_probability(g, glutamate=1 * mM)
    print(f"  equilibrium Po in 1 mM glutamate: {peq:.4f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ketacore", description="Markov ion-channel kinetics engine "
                                "(NMDA receptors and their blockers).")
    p.add_argument("--version", action="version", version=f"ketacore {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    r = sub.add_parser("run", help="run a study (default: the embedded ketamine study)")
    r.add_argument("study", nargs="?", help="study TOML file (default: embedded study)")
    r.add_argument("-o", "--output", help="output folder")
    r.add_argument("--workers", type=int, default=None, help="worker threads/processes")
    r.add_argument("--scheduler", default=None, help="dask.distributed scheduler address")
    r.add_argument("--quick", action="store_true", help="reduced study (for smoke tests)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_cmd_run)
    sub.add_parser("models", help="list built-in gating models").set_defaults(func=_cmd_models)
    sub.add_parser("blockers", help="list built-in blockers").set_defaults(func=_cmd_blockers)
    sh = sub.add_parser("show", help="states, transitions and rates of a model")
    sh.add_argument("model")
    sh.set_defaults(func=_cmd_show)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
