"""Shared pytest configuration.

Long statistical tests are marked ``@pytest.mark.slow`` and skipped unless ``--runslow`` is
given (or ``KETACORE_RUNSLOW=1``); the default selection stays fast and still touches every
feature.  CI runs both.
"""
import os

import pytest

# Subprocesses started by tests (`python -m ketacore.cli`, `python -c ...`) must import the
# installed, compiled package, never the source tree of the checkout they run in: without this,
# `-m`/`-c` put the current directory first on sys.path (Python >= 3.11 honours the variable).
os.environ["PYTHONSAFEPATH"] = "1"


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked slow (long statistical tests)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow") or os.environ.get("KETACORE_RUNSLOW", "") not in ("", "0"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def sigint_raises():
    """Python's own SIGINT handler (KeyboardInterrupt) for the duration of a test.

    A process started in the background by a non-interactive shell (``cmd &``, ``nohup``, some CI
    runners) inherits SIGINT as *ignored*; Python then installs no handler, Ctrl-C does nothing
    and ``_thread.interrupt_main()`` is a no-op -- so an interrupt test would see its job run to
    the end (hours) instead of being stopped.  The interrupt tests install the handler a user at
    a terminal has, and restore what was there."""
    import signal
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
