"""``record="summary"`` group sums across ssa channel blocks.

ssa simulates the channels of one trial in blocks of ``CHANNEL_BLOCK`` = 256 (block ``b >= 1``
from ``spawn_key=(i, b)``), and ``record="summary"`` sums, besides each state's count, the
count of every summary *group* (``_summary_groups``: all conducting states, each conductance
level of several states, each pair of levels) and its square, from which
``open_probability_var`` and ``current_var`` are computed.  Here, for schemes with several open
states at each of two or three conductance levels (so the groups are real sums of states, not
single-state columns) and 257, 600 and 1000 channels (2, 3 and 4 blocks), the summary's
variances must be

* equal to the bit to those of ``record="counts"`` with the same seed: both are exact integer
  sums of the same trials, so any difference is a wrong group sum in the summary path (a
  block's channels left out or counted twice, squares of per-block instead of per-trial
  counts, a group with the wrong members, another stream for a block, a thread's sums lost);
* equal to numpy's ``var(ddof=1)`` over the trials of the open fraction and the current
  computed here from the counts (integer open count / N; integer pS-weighted count times
  1e-12 (V - E_rev)), to 1e-12 relative (observed <= 2.2e-13) -- for the current plus 1e-12
  of the level-covariance terms the library adds up, whose rounding it keeps where they
  nearly cancel (:func:`_assert_current`).

And, underneath, the blocks themselves: a trial of 257 channels is the trial of 256 plus one
channel, from a stream that is not block 0's (nor block 2's that of block 1).

Threads: 1 and 2 run the trials on threads (3 trials >= threads); 4 threads (> 3 trials) run
the blocks of each trial on threads, whose buffers are merged before the summary is added.
Grids: a medium one (clamped grid sink), a fine one of > 256 KiB per trial (the packed 16-bit
sink for <= 8 states, the prefetching sink for 9), and a coarse one on which every state
leaves at least once per sample interval (the occupancy-run sink).  Population runs are
checked the same way for contrast (no channel blocks).  Every assertion is deterministic.
"""
import importlib

import numpy as np
import pytest

import ketacore as kc

SM = importlib.import_module("ketacore.simulate")   # (kc.simulate is the function)

V_HOLD, E_REV = -0.06, 0.0
N_TRIALS = 3


def _scheme(levels: int, extra_closed: bool = False) -> "kc.Scheme":
    """C0 <-> C1 <-> open states: O1a, O1b at 50 pS and O2a, O2b at 20 pS (two levels of two
    states each), with ``levels=3`` also O3 at 35 pS; a blocked state B (and, with
    ``extra_closed``, a closed D: 9 states).  Every exit rate is >= 250 s^-1 (C0's at 1 mM
    glu: 2000 s^-1) so that the coarse grid is one of occupancy runs."""
    names = ["C0", "C1", "O1a", "O1b", "O2a", "O2b", "B"]
    tr = [("C0", "C1", kc.rate(2e6, "glu")), ("C1", "C0", 300.0),
          ("C1", "O1a", 900.0), ("O1a", "C1", 400.0),
          ("O1a", "O1b", 600.0), ("O1b", "O1a", 700.0),
          ("O1a", "O2a", 500.0), ("O2a", "O1a", 800.0),
          ("O2a", "O2b", 650.0), ("O2b", "O2a", 550.0),
          ("O2b", "B", 350.0), ("B", "O2b", 250.0)]
    pS = {"O1a": 50, "O1b": 50, "O2a": 20, "O2b": 20}
    if levels == 3:
        names.insert(6, "O3")
        tr += [("O1b", "O3", 450.0), ("O3", "O1b", 750.0)]
        pS["O3"] = 35
    if extra_closed:
        names.append("D")
        tr += [("C1", "D", 300.0), ("D", "C1", 400.0)]
    g = kc.Scheme(names, tr, conductance={k: v * 1e-12 for k, v in pS.items()}, e_rev=E_REV,
                  name=f"{levels} levels")
    return g, np.array([pS.get(n, 0) for n in names], dtype=np.int64)


SCHEMES = {"2 levels": _scheme(2), "3 levels": _scheme(3), "3 levels, 9 states": _scheme(3, True)}

#: dt (s) and the two steps' durations: before glu, then 1 mM glu, at V_HOLD throughout
GRIDS = {"medium": (2e-4, 0.005, 0.025),     # 151 samples
         "fine": (5e-6, 0.002, 0.05),        # 10401 samples: > 256 KiB of int32 per trial
         "coarse": (5e-3, 0.01, 0.1)}        # 23 samples: 250 s^-1 x 5 ms >= 1


def _protocol(grid):
    dt, t0, t1 = GRIDS[grid]
    return dt, kc.Protocol([kc.Step(t0, V=V_HOLD), kc.Step(t1, V=V_HOLD, glu=1e-3)])


def _check_groups(g, name):
    """The scheme's summary groups are real sums of states (this is what is tested)."""
    flags, (open_col, levels, pairs) = SM._summary_groups(g)
    n_levels = 2 if name == "2 levels" else 3
    assert len(levels) == n_levels and open_col >= g.n_states
    assert sum(int(c >= g.n_states) for _, c in levels) == 2     # the two 2-state levels
    # groups: the open count, the two 2-state levels, and the pairs that are not the open count
    assert len(flags) == {2: 3, 3: 6}[n_levels] and flags.sum(axis=1).min() >= 2


def _numpy_variances(counts, pS, N):
    """numpy's var(ddof=1) over the trials of the open fraction and of the current, from the
    per-trial counts alone (nothing from the result object): the open fraction's as
    ``var(open count) / N**2`` and the current's as ``var(pS-weighted count) x (1e-12 (V -
    E_rev))**2`` -- the same quantities, taken on integer-valued floats so that trials with
    equal values give numpy's variance 0 exactly (``var(n / N)`` of equal fractions is a
    rounding residue ~1e-35, not 0).  Also, per sample, the scale ``sum_ab |g_a g_b
    cov_ab| (V - E_rev)**2`` of the level covariances that ``current_var`` adds up (numpy's
    covariances of the per-level counts)."""
    c = counts.astype(np.int64)
    drive = 1e-12 * (V_HOLD - E_REV)
    var_po = c[..., pS > 0].sum(axis=-1).astype(float).var(axis=0, ddof=1) / float(N) ** 2
    var_i = (c @ pS).astype(float).var(axis=0, ddof=1) * drive ** 2
    lv = np.unique(pS[pS > 0])
    m = np.stack([c[..., pS == x].sum(axis=-1) for x in lv], axis=-1).astype(float)
    d = m - m.mean(axis=0)
    cov = np.einsum("nsa,nsb->sab", d, d) / (c.shape[0] - 1)
    terms = np.einsum("a,b,sab->s", lv * drive, lv * drive, np.abs(cov))
    return var_po, var_i, terms


def _assert_po(got, ref):
    """1e-12 relative (observed <= 2.2e-13); entries of variance 0 must be 0."""
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)


def _assert_current(got, ref, terms):
    """1e-12 relative, plus 1e-12 of the level-covariance terms the library sums: where they
    nearly cancel (trials with close currents from different level counts) ``current_var``
    keeps their rounding, ~eps of them (observed <= 7.6e-14 of them, i.e. up to 1.0e-12 of a
    variance 4e-5 of the largest, and 5e-39 A^2 where the variance is exactly 0)."""
    np.testing.assert_array_less(np.abs(got - ref), 1e-12 * (np.abs(ref) + terms) + 1e-300)


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("N", [257, 600, 1000])
@pytest.mark.parametrize("grid", list(GRIDS))
@pytest.mark.parametrize("name", list(SCHEMES))
def test_ssa_summary_group_variances_across_channel_blocks(name, grid, N, threads):
    g, pS = SCHEMES[name]
    _check_groups(g, name)
    assert SM.CHANNEL_BLOCK == 256 and 2 <= -(-N // SM.CHANNEL_BLOCK) <= 4
    dt, p = _protocol(grid)
    kw = dict(rng=11, method="ssa", n_threads=threads)
    a = kc.simulate(g, p, dt, N, N_TRIALS, record="counts", **kw)
    b = kc.simulate(g, p, dt, N, N_TRIALS, record="summary", **kw)
    assert a.method == b.method == "ssa"
    c = a.counts
    # every channel of every block is in each trial's counts, the trials differ, and the
    # counts do not depend on the threads
    assert np.all(c.sum(axis=-1) == N)
    assert not np.array_equal(c[0], c[1])
    if threads > 1:
        one = kc.simulate(g, p, dt, N, N_TRIALS, rng=11, method="ssa", n_threads=1)
        assert np.array_equal(one.counts, c)
    # the summary's per-state sums are those of the counts
    assert np.array_equal(b.sum_counts, c.astype(np.int64).sum(axis=0))
    assert np.array_equal(b.sum_sq_counts.astype(np.int64),
                          (c.astype(np.int64) ** 2).sum(axis=0))
    # the group variances: summary == counts to the bit, and both == numpy on the counts
    assert np.array_equal(b.open_probability_var, a.open_probability_var)
    assert np.array_equal(b.current_var, a.current_var)
    ref_po, ref_i, terms = _numpy_variances(c, pS, N)
    assert ref_po.max() > 0 and ref_i.max() > 0
    _assert_po(b.open_probability_var, ref_po)
    _assert_current(b.current_var, ref_i, terms)
    if grid == "medium":
        # the levels' covariances matter here: the per-level variances alone are not the
        # current's (so the pair groups are needed and tested)
        per_level = sum(float(x * 1e-12 * (V_HOLD - E_REV)) ** 2
                        * c[..., pS == x].astype(np.int64).sum(axis=-1).var(axis=0, ddof=1)
                        for x in np.unique(pS[pS > 0]))
        assert np.max(np.abs(per_level - ref_i)) > 0.05 * np.max(ref_i)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", ["2 levels", "3 levels"])
def test_population_summary_group_variances(name, threads):
    """For contrast, the population method (no channel blocks): the same two equalities."""
    g, pS = SCHEMES[name]
    dt, p = _protocol("medium")
    kw = dict(rng=11, method="population", n_threads=threads)
    a = kc.simulate(g, p, dt, 600, N_TRIALS, record="counts", **kw)
    b = kc.simulate(g, p, dt, 600, N_TRIALS, record="summary", **kw)
    assert a.method == b.method == "population"
    assert np.all(a.counts.sum(axis=-1) == 600)
    assert np.array_equal(b.sum_counts, a.counts.astype(np.int64).sum(axis=0))
    assert np.array_equal(b.open_probability_var, a.open_probability_var)
    assert np.array_equal(b.current_var, a.current_var)
    ref_po, ref_i, terms = _numpy_variances(a.counts, pS, 600)
    assert ref_po.max() > 0 and ref_i.max() > 0
    _assert_po(b.open_probability_var, ref_po)
    _assert_current(b.current_var, ref_i, terms)


def test_ssa_blocks_add_channels_from_their_own_streams():
    """Block 0 of a trial is the whole trial of 256 channels, and 257 channels add one channel
    (a 0/1 occupancy summing to 1 at each sample) whose trajectory is not that of block 0's
    first channel (the 1-channel trial) -- another stream, spawn_key (i, 1) -- and 513 add one
    from block 2, not block 1's."""
    g, _ = SCHEMES["3 levels"]
    dt, p = _protocol("medium")

    def counts(N):
        return kc.simulate(g, p, dt, N, N_TRIALS, rng=11, method="ssa").counts.astype(np.int64)
    c1, c256, c257, c512, c513 = map(counts, (1, 256, 257, 512, 513))
    extra1, extra2 = c257 - c256, c513 - c512
    for extra in (extra1, extra2):
        assert set(np.unique(extra)) == {0, 1} and np.all(extra.sum(axis=-1) == 1)
    assert np.all(c512 - c256 >= 0)
    assert not np.array_equal(extra1, c1)
    assert not np.array_equal(extra2, c1) and not np.array_equal(extra2, extra1)
