"""The population method's two step orders (population.hpp, PopulationTables).

Runs of at least ``_core.POP_COLUMNS_MIN`` channels draw each step's conditional binomials in
column order (the j-th draw of every row, then the (j+1)-th; binomial_cfn with V from a second
stream word, inversion unrolled for n p in [0.2, 6)), smaller runs row by row.  Both are exact and draw different numbers.  Here: which
order a run uses, that the column order keeps every reproducibility guarantee (threads, trial
splits, chunked tables), conservation, and its statistics at sizes where the row order is the
default.  The statistical tests of tests/test_stochastic_statistics.py run both orders too
(method "population_columns" there).
"""
import sys

import numpy as np
import pytest
from scipy import stats

import ketacore as kc
from ketacore import _core
from _binomial_stats import chisquare_binom
from _population_order import COLUMNS, ROWS, population_order as order
from _stochastic_models import bench_scheme

SIM = sys.modules["ketacore.simulate"]  # the module (the package attribute is the function)
SCH = bench_scheme()
PROT = kc.Protocol([kc.Step(0.0113, V=-0.07), kc.Step(0.0537, V=-0.07, glutamate=1e-3),
                    kc.Step(0.04, V=-0.04)])


def pop(N, columns_min=None, **kw):
    args = dict(dt=1e-3, n_trials=3, rng=11, initial="C0", method="population")
    args.update(kw)
    with order(columns_min):
        return kc.simulate(SCH, PROT, n_channels=N, **args)


def test_default_threshold_picks_the_order_by_size():
    """Below POP_COLUMNS_MIN the default run is the row-order run, from it on the column-order
    run; the two orders give different counts for the same stream."""
    T = _core.POP_COLUMNS_MIN
    assert T == 2**17
    below, at = T - 1, T
    assert pop(below).counts.tobytes() == pop(below, ROWS).counts.tobytes()
    assert pop(below).counts.tobytes() != pop(below, COLUMNS).counts.tobytes()
    assert pop(at).counts.tobytes() == pop(at, COLUMNS).counts.tobytes()
    assert pop(at).counts.tobytes() != pop(at, ROWS).counts.tobytes()


@pytest.mark.parametrize("N", [7, 10**9])
@pytest.mark.parametrize("record", ["counts", "summary"])
def test_columns_bit_identical_across_threads_and_splits(N, record, monkeypatch):
    """Column order gives the same bytes on 1, 2 and 4 threads (the plan is made to use them:
    these jobs are below the cost at which it would, so the threshold is lowered and the thread
    count handed to the core is checked) and for trials split over calls."""
    monkeypatch.setattr(SIM, "_PARALLEL_ABOVE", -1.0)
    seen = []
    real = _core.simulate
    monkeypatch.setattr(_core, "simulate", lambda *a, **k: seen.append(int(a[11])) or real(*a, **k))
    runs = [pop(N, COLUMNS, n_trials=5, n_threads=t, record=record) for t in (1, 2, 4)]
    assert seen == [1, 2, 4]
    key = (lambda r: r.counts.tobytes()) if record == "counts" else \
        (lambda r: np.asarray(r.sum_counts).tobytes() + np.asarray(r.sum_sq_counts).tobytes())
    assert key(runs[0]) == key(runs[1]) == key(runs[2])
    if record == "counts":
        a = pop(N, COLUMNS, n_trials=None, trials=range(0, 2))
        b = pop(N, COLUMNS, n_trials=3, trial_offset=2)
        assert np.concatenate([a.counts, b.counts]).tobytes() == runs[0].counts.tobytes()


def test_columns_conserve_channels_and_start_from_the_initial_draw():
    """Every sample's counts sum to N; sample 0 (the initial multinomial, drawn the same way in
    either order) is the same in both orders."""
    N = 10**12
    c = pop(N, COLUMNS, n_trials=2).counts
    r = pop(N, ROWS, n_trials=2).counts
    assert (c.sum(-1) == N).all() and (r.sum(-1) == N).all()
    assert (c[:, 0] == r[:, 0]).all()
    assert (c[:, 0, SCH.index("C0")] == N).all()  # initial="C0"
    assert not (c[:, 1:] == r[:, 1:]).all()


def test_columns_chunked_tables_equal_unchunked(monkeypatch):
    """A sampled waveform whose step tables do not fit the budget (chunked PopulationTables) draws
    the same bytes as with every table resident, in column order."""
    t = np.arange(400) * 1e-4
    prot = kc.Protocol.from_waveform(t, 400 * 1e-4, glutamate=1e-3 * (1 + np.sin(t * 3000.0)))
    runs = []
    for budget in (None, 3 * _core.population_slot_bytes(SCH.n_states)):
        monkeypatch.setattr(SIM, "_POP_TABLE_BYTES", budget)
        with order(COLUMNS):
            runs.append(kc.simulate(SCH, prot, 1e-4, n_channels=10**8, n_trials=3, rng=3,
                                    method="population", initial="C0").counts)
    assert runs[0].tobytes() == runs[1].tobytes()


@pytest.mark.parametrize("columns_min", [COLUMNS, ROWS])
def test_one_step_counts_are_binomial_where_cfn_draws(columns_min):
    """One step of a two-state scheme (C -> O at 30/s, O -> C at 20/s, dt = 10 ms) from all C:
    the open count of N = 1000 channels is Binomial(N, p) with p = 0.6 (1 - e^-0.5) = 0.2361 in
    closed form, and its draw has n p q = 180, so it is binomial_cfn's -- the two-word variant in
    column order, which the statistics tests at N <= 200 never reach inside a step.  Chi-square
    over 60000 trials, failure probability 1e-4 per order."""
    sch = kc.Scheme(["C", "O"], [("C", "O", 30.0), ("O", "C", 20.0)], conductance={"O": 1e-12})
    N, n = 1000, 60_000
    with order(columns_min):
        x = kc.simulate(sch, kc.Step(0.01), dt=0.01, n_channels=N, n_trials=n, rng=77, initial="C",
                        method="population").counts[:, 1, 1]
    p = 0.6 * (1 - np.exp(-0.5))
    assert chisquare_binom(x.astype(np.int64), N, p) > 1e-4


def test_columns_huge_n_means_match_master_equation():
    """N = 1e9 in column order (its default): every (sample, state) total over 20 trials is
    consistent with Binomial(N * 20, p(t)) from the master equation, where p(t) is known to ~1e-15
    and the binomial sd is ~3e-6 relative: a test of the cfn draws in place.  Bonferroni over the
    cells, failure probability < 1e-3."""
    N, n = 10**9, 20
    det = kc.solve(SCH, PROT, dt=2e-3, initial="C0")
    res = kc.simulate(SCH, PROT, dt=2e-3, n_channels=N, n_trials=n, method="population", rng=909,
                      record="summary", initial="C0")
    tot = N * n
    p = np.clip(det.occupancy, 0, 1)
    lo = stats.binom.cdf(res.sum_counts, tot, p)
    hi = stats.binom.sf(res.sum_counts - 1, tot, p)
    pv = np.minimum(1.0, 2 * np.minimum(lo, hi))
    assert pv.min() > 1e-3 / pv.size


def test_more_states_than_the_column_buffer_keep_the_row_order():
    """The column step keeps each row's remainder on the stack (kColumnMaxK = 32 states); a
    scheme with more states draws in row order at any size, and the threshold does not matter."""
    names = [f"S{i}" for i in range(33)]
    sch = kc.Scheme(names, [(a, b, 100.0) for a, b in zip(names, names[1:])] +
                    [(b, a, 50.0) for a, b in zip(names, names[1:])], conductance={"S32": 1e-12})
    prot = kc.Step(0.02)
    runs = []
    for columns_min in (COLUMNS, ROWS):
        with order(columns_min):
            runs.append(kc.simulate(sch, prot, dt=1e-3, n_channels=10**9, n_trials=2, rng=5, initial="S0",
                                    method="population").counts)
    assert runs[0].tobytes() == runs[1].tobytes()
    assert (runs[0].sum(-1) == 10**9).all()
    # with 32 states the orders differ (the column step is used)
    sch32 = kc.Scheme(names[:32], [(a, b, 100.0) for a, b in zip(names[:32], names[1:32])] +
                      [(b, a, 50.0) for a, b in zip(names[:32], names[1:32])], conductance={"S31": 1e-12})
    runs = []
    for columns_min in (COLUMNS, ROWS):
        with order(columns_min):
            runs.append(kc.simulate(sch32, prot, dt=1e-3, n_channels=10**9, n_trials=2, rng=5, initial="S0",
                                    method="population").counts)
    assert runs[0].tobytes() != runs[1].tobytes()
