"""Forcing the population method's step order in tests (population.hpp: row order below
``_core.POP_COLUMNS_MIN`` channels, column order from it on; both exact, different bytes)."""
import contextlib
import sys

#: thresholds that force the column order (every run) or the row order (every run)
COLUMNS, ROWS = 0, 2**62


@contextlib.contextmanager
def population_order(columns_min):
    """Population runs of >= columns_min channels in column order (None: the default).  Plans
    are made afresh inside and dropped after: a cached plan keeps the threshold it was made
    with."""
    sim = sys.modules["ketacore.simulate"]  # the module (the package attribute is the function)
    saved = sim._PLANS, sim._POP_COLUMNS_MIN
    sim._PLANS, sim._POP_COLUMNS_MIN = {}, columns_min
    try:
        yield
    finally:
        sim._PLANS, sim._POP_COLUMNS_MIN = saved
