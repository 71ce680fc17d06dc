"""The ``ketacore`` command line.

``ketacore run [STUDY.toml] [-o DIR] [--workers N] [--scheduler ADDRESS] [--quick] [-q]``,
``ketacore models``, ``ketacore blockers``, ``ketacore show MODEL|BLOCKER``, ``ketacore --version``.

``run`` options: ``--quick`` runs a reduced study (4 trials x 100 channels, first and last
value of each sweep; a smoke test); ``-q``/``--quiet`` turns the progress bar off.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
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
        b = blockers._peek(name)     # (a listing: each uncalibrated one is marked on its line)
        mark = "  [UNCALIBRATED k_on: see ketacore show " + name + "]" if blockers.uncalibrated(name) else ""
        print(f"{name:<22} {getattr(b, 'mode', ''):<17} {getattr(b, 'citation', '')}{mark}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from . import blockers, models
    if args.model in blockers.available() and args.model not in models.available():
        print(blockers.get(args.model).describe())
        return 0
    try:
        s = models.get(args.model)
    except (KeyError, ValueError) as e:
        print(f"ketacore show: {e}; blockers: {', '.join(blockers.available())}", file=sys.stderr)
        return 2
    print(s.describe())
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from . import study
    return study.main_run(args)


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (``--workers 0`` is a usage error, exit code 2)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {v}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ketacore", description="Markov ion-channel kinetics engine "
                                "(NMDA receptors and their blockers).")
    p.add_argument("--version", action="version", version=f"ketacore {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    r = sub.add_parser("run", help="run a study (default: the embedded ketamine study)")
    r.add_argument("study", nargs="?", help="study TOML file (default: embedded study)")
    r.add_argument("-o", "--output", metavar="DIR",
                   help="output folder (default: ./ketacore-NAME); re-running resumes it")
    r.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                   help="local worker threads (default: all cores)")
    r.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run chunks on a dask.distributed scheduler (e.g. tcp://host:8786)")
    r.add_argument("--quick", action="store_true",
                   help="reduced study: 4 trials x 100 channels, first/last sweep values (smoke test)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_cmd_run)
    sub.add_parser("models", help="list built-in gating models").set_defaults(func=_cmd_models)
    sub.add_parser("blockers", help="list built-in blockers").set_defaults(func=_cmd_blockers)
    sh = sub.add_parser("show", help="states, transitions and rates of a model, or a blocker's "
                                     "rates, voltage dependence and K_B")
    sh.add_argument("model", metavar="NAME", help="a model (ketacore models) or a blocker "
                                                  "(ketacore blockers)")
    sh.set_defaults(func=_cmd_show)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    shown = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()   # (inside the try: a closed pipe shows here, not at exit)
        return code
    except BrokenPipeError:
        # the reader went away (`ketacore show X | head`): stop quietly, as the Python docs
        # advise -- point stdout at devnull so the interpreter's final flush cannot fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    finally:
        warnings.showwarning = shown


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings at the command line: ketacore's as ``ketacore: UnitsWarning: ...`` on stderr,
    without the ketacore source line Python would print under it (the message names the study
    key); other packages' warnings as Python prints them."""
    pkg = os.path.dirname(os.path.abspath(__file__)) + os.sep
    where = os.path.abspath(str(filename))
    # (a ketacore warning pointed at the user's line -- _validate.user_stacklevel -- names the
    # first frame outside the package: at the command line, the `ketacore` script itself, or
    # runpy's for `python -m ketacore`)
    ours = (category.__module__.startswith("ketacore") or where.startswith(pkg)
            or str(filename).startswith("<frozen runpy")
            or (bool(sys.argv and sys.argv[0]) and where == os.path.abspath(sys.argv[0])))
    try:
        text = (f"ketacore: {category.__name__}: {message}\n" if ours
                else warnings.formatwarning(message, category, filename, lineno, line))
        (file or sys.stderr).write(text)
    except (OSError, ValueError):  # pragma: no cover - stderr closed
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
