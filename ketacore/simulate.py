"""Exact stochastic simulation of channel populations and single channels.

Two exact methods run in the C++ core (``csrc/include/ketacore/{ssa,population,ensemble}.hpp``):

``"ssa"``
    Event-driven simulation of every channel (Gillespie's direct method; Gillespie 1977,
    J. Phys. Chem. 81:2340, doi:10.1021/j100540a008).  Conditions are piecewise constant; at a
    segment boundary the pending dwell is redrawn under the new rates, which is exact because
    dwells are memoryless.  Jumps are accumulated into integer difference arrays and prefix-summed
    once, so the cost is proportional to the number of transitions, not to the number of samples.
``"population"``
    For N identical independent channels, the counts at consecutive grid points are related by
    multinomial draws: the channels in state i at one grid point are spread over the states at
    the next with the probabilities of row i of ``P = expm(Q·dt)`` (for a grid step that
    straddles a change of conditions, the product of the pieces' ``expm``), the transition
    matrix of the channel's continuous-time Markov chain (``p(t + dt) = p(t) P``; Colquhoun D,
    Hawkes AG (1977) Relaxation and fluctuations of membrane currents that flow through
    drug-operated channels, Proc R Soc Lond B 199:231-262; DOI not verified, so not given).  As
    the channels are independent this is exact in distribution at the grid points for any
    ``dt``.  The cost per step depends on the number of states only, not on N.
``"auto"``
    Picks the cheaper of the two from the expected number of transitions versus
    steps × states².

Randomness follows Scientific Python SPEC 7 (see :mod:`ketacore._rng`): trial ``i`` uses
``numpy.random.PCG64(numpy.random.SeedSequence(entropy, spawn_key=(i,)))`` (ssa channel block
``b >= 1`` of a trial with more than 256 channels: ``spawn_key=(i, b)``), reproduced bit for
bit in C++ (trial indices below 2**32, so no trial shares a block's key).  Counts are integers
accumulated exactly, so results are bit-identical for any
``n_threads`` and for any split of the trials into calls (``trials=range(...)``).
"""
from __future__ import annotations

import math
import numbers
import os
from typing import Any, Iterable, Sequence, overload

import numpy as np

from . import _rng
from . import models as _models
from . import _validate as V_
from ._version import __version__
from .protocol import Protocol, Step
from .scheme import Scheme

__all__ = ["simulate", "simulate_events", "SimulationResult", "EventLog", "concatenate"]

METHODS = ("auto", "ssa", "population")
RECORDS = ("counts", "summary")

#: ssa channel-block size (fixed: it defines the random streams, see module docstring).
CHANNEL_BLOCK = 256
_INT32_MAX = 2**31 - 1
# Cost model for method="auto" and for deciding when to run in the background (seconds).
_COST_EVENT = 6e-9       # one ssa transition
_COST_CHANNEL = 4e-8     # one ssa channel beyond its transitions (initial state, first dwell, loop entry/exit)
_COST_BINOMIAL = 2.5e-8  # one binomial draw in a population step
_COST_SAMPLE = 1e-9      # writing / summing one (sample, state) cell
_COST_CROSSING = 1.4e-8  # one ssa channel crossing a segment boundary (its pending dwell redrawn; ramps, 16 states)
_COST_TABLE = 2.2e-9     # one entry of the ssa jump tables (K x 512 per condition)
_COST_COND_STATE = 1e-7  # one (condition, state) of the ssa exit tables, built on one thread (ssa.hpp SsaTables;
                         # 0.72 s for a 400000-sample waveform at 17 states, page faults included)
_COST_EXPM_K3 = 3e-9     # one population transition matrix, per K**3 (expm of a condition, or a straddle's product)
_BACKGROUND_ABOVE = 0.01  # run on a worker thread polling Ctrl-C when the job is longer than this
_PARALLEL_ABOVE = 0.0005  # use several threads only when the job is longer than this
#: Largest expected number of ssa transitions one call may carry out (about a week of one core).
MAX_SSA_EVENTS = 1e14
#: A forced ``method="ssa"`` estimated above this many CPU seconds and above
#: ``_SLOW_FORCED_RATIO`` times the population method's estimate gets a
#: :class:`~ketacore.PerformanceWarning`.
_SLOW_FORCED_ABOVE = 2.0
_SLOW_FORCED_RATIO = 20.0



def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


_DEFAULT_THREADS: list = []


def _cached_default_threads() -> int:
    if not _DEFAULT_THREADS:
        _DEFAULT_THREADS.append(_default_threads())
    return _DEFAULT_THREADS[0]


_STEP_PROTOCOLS: dict = {}


def _check_scheme_protocol(scheme: Any, protocol: Any) -> Protocol:
    if not isinstance(scheme, Scheme):
        raise TypeError(f"scheme must be a ketacore.Scheme or a model name "
                        f"(ketacore.models.available()), got {type(scheme).__name__}")
    if isinstance(protocol, Step):
        hit = _STEP_PROTOCOLS.get(protocol)
        if hit is None:
            if len(_STEP_PROTOCOLS) > 64:
                _STEP_PROTOCOLS.clear()
            hit = _STEP_PROTOCOLS[protocol] = Protocol([protocol])
        protocol = hit
    elif not isinstance(protocol, Protocol):
        raise TypeError(f"protocol must be a ketacore.Protocol or Step, got {type(protocol).__name__}")
    return protocol


#: Trial indices are below this: the random stream of trial i, block b is keyed by the words
#: (i, b) (module docstring), so a trial index of 2**32 or more would share its stream with a
#: channel block of a smaller trial.
MAX_TRIAL = 2**32


def _resolve_trials(n_trials: Any, trials: Any, trial_offset: Any) -> "range | np.ndarray":
    """The trial indices: a ``range`` (from n_trials/trial_offset or trials=range), built into
    an array by :func:`_trial_array` only after the memory plan has accepted the request, or a
    uint64 array for an explicit sequence."""
    if trials is not None:
        if isinstance(trials, (str, bytes)) or not isinstance(trials, (range, Sequence, np.ndarray)):
            raise TypeError(f"trials must be a range or a sequence of non-negative ints, got {type(trials).__name__}")
        if isinstance(trials, range):
            if len(trials) == 0:
                raise ValueError("trials must be a non-empty 1-D range or sequence of trial indices")
            if min(trials[0], trials[-1]) < 0 or max(trials[0], trials[-1]) >= MAX_TRIAL:
                raise ValueError(f"trials must be in [0, 2**32), got {trials}")
            idx = trials  # distinct by construction
        else:
            # the index array costs 8 bytes per trial: check before building it
            V_.check_memory("trials", 8.0 * len(trials), advice="pass a range, or split the trials over calls")
            idx = np.asarray(list(trials) if not isinstance(trials, np.ndarray) else trials)
            if idx.ndim != 1 or idx.size == 0:
                raise ValueError("trials must be a non-empty 1-D range or sequence of trial indices")
            vals = idx.tolist() if idx.dtype == object else None
            if vals and all(isinstance(x, numbers.Integral) and not isinstance(x, bool) for x in vals):
                bad = next((x for x in vals if not 0 <= x < MAX_TRIAL), vals[0])  # (beyond int64)
                raise ValueError("trials must be in [0, 2**32) (trial i's random stream is keyed by "
                                 f"(i, channel block)), got {bad}")
            if idx.dtype.kind not in "iu":
                raise TypeError(f"trials must contain integers, got dtype {idx.dtype}")
            if np.any(idx < 0) or np.any(idx >= MAX_TRIAL):
                raise ValueError("trials must be in [0, 2**32) (trial i's random stream is keyed by "
                                 "(i, channel block); larger indices would repeat other streams)")
            if len(np.unique(idx)) != idx.size:
                raise ValueError("trials must not repeat an index (repeated trials are identical copies)")
            idx = idx.astype(np.uint64)
        if n_trials is not None and V_.integer("n_trials", n_trials, minimum=1) != len(idx):
            raise ValueError(f"n_trials={n_trials} disagrees with len(trials)={len(idx)}; give one of them")
        if trial_offset not in (None, 0):
            raise ValueError("give either trials= or trial_offset=, not both")
        return idx
    n = 1 if n_trials is None else V_.integer("n_trials", n_trials, minimum=1, maximum=MAX_TRIAL)
    off = 0 if trial_offset is None else V_.integer("trial_offset", trial_offset, minimum=0,
                                                    maximum=MAX_TRIAL - n)
    return range(off, off + n)


def _trial_array(t: "range | np.ndarray") -> np.ndarray:
    """uint64 trial indices (built from a range only once the request has been accepted)."""
    if isinstance(t, range):
        return np.arange(t.start, t.stop, t.step, dtype=np.int64).astype(np.uint64, copy=False)
    return t


def _resolve_threads(n_threads: Any) -> int:
    if n_threads is None:
        return _cached_default_threads()
    return V_.integer("n_threads", n_threads, minimum=1, maximum=4096)


_RATE_CACHE: dict = {}
_P0_CACHE: dict = {}


def _initial(scheme: Scheme, initial: Any, protocol: Protocol) -> np.ndarray:
    """ketacore.solve's initial_distribution, memoised for the common hashable forms (None,
    "equilibrium", a state name) so repeated small simulations do not pay for an equilibrium
    solve each call."""
    from .solve import initial_distribution
    if initial is None or isinstance(initial, str):
        key = (id(scheme), id(protocol), initial)
        hit = _P0_CACHE.get(key)
        if hit is not None and hit[0] is scheme and hit[1] is protocol:
            return hit[2]
        p0 = initial_distribution(scheme, initial, protocol)
        p0.setflags(write=False)
        if len(_P0_CACHE) > 64:
            _P0_CACHE.clear()
        _P0_CACHE[key] = (scheme, protocol, p0)  # references keep the ids unique
        return p0
    return initial_distribution(scheme, initial, protocol)


def _rate_estimate(scheme: Scheme, compiled, conds: np.ndarray, p0: np.ndarray) -> np.ndarray:
    """Expected transitions per second per channel under each condition (rough: the mean of
    the exit rate at the initial distribution and at that condition's equilibrium)."""
    return _condition_rates(compiled, conds, p0)[0]


#: Work (~K**3 operations for GTH, K**2 without) per call of the core in :func:`_condition_rates`:
#: ~10-30 ms, so Ctrl-C is honoured between calls and the (chunk, K) arrays stay small.
_RATES_CHUNK_WORK = 2e7


def _condition_rates(compiled, conds: np.ndarray, p0: np.ndarray) -> tuple[np.ndarray, ...]:
    """The cost model's view of each condition: (expected transitions per second per channel,
    the mean of the exit rate at ``p0`` and at the condition's equilibrium; the largest exit rate
    (1/s); the exit rate at the equilibrium alone (1/s)).  One pass of the core per chunk of conditions (``CompiledScheme.exits_equilibria``:
    Q, its exit rates and GTH, ~1 us per condition of 16 states; a voltage ramp brings one
    condition per sample; a reducible chain gets its one closed class's equilibrium).  Where
    there is no unique equilibrium (several closed classes, e.g. a trapped blocker with no
    agonist) and above :data:`_DENSE_ESTIMATE_MAX_STATES` states, ``p0`` stands in for it."""
    key = (id(compiled), conds.tobytes(), p0.tobytes())
    hit = _RATE_CACHE.get(key)
    if hit is not None and hit[0] is compiled:   # (an id is reused once its object is freed)
        return hit[1]
    K, C = len(p0), len(conds)
    dense = K <= _DENSE_ESTIMATE_MAX_STATES  # else a dense K x K equilibrium costs more than it is worth
    rate, top, at_eq = np.empty(C), np.zeros(C), np.empty(C)
    step = max(1, int(_RATES_CHUNK_WORK // (K**3 if dense else K * K)))
    for c0 in range(0, C, step):
        c1 = min(C, c0 + step)
        exits, peq = compiled.exits_equilibria(conds[c0:c1], dense)
        if dense:
            peq[~np.isfinite(peq[:, 0])] = p0
        else:
            peq = p0[None, :]
        at_eq[c0:c1] = np.einsum("ck,ck->c", np.broadcast_to(peq, exits.shape), exits)
        rate[c0:c1] = 0.5 * (exits @ p0 + at_eq[c0:c1])
        if K:
            top[c0:c1] = exits.max(axis=1)
    out = (rate, top, at_eq)
    if len(_RATE_CACHE) > 64:
        _RATE_CACHE.clear()
    _RATE_CACHE[key] = (compiled, out)   # the reference keeps the id unique while cached
    return out


#: A condition gets an ssa jump table (K x 512 entries, ~1.2 us per state to build) when its
#: expected jumps reach this many per state: a jump without a table costs two threshold searches
#: instead of one lookup (~5-10 ns more).  Tables change speed, never results (ssa.hpp).
_SSA_TABLE_JUMPS_PER_STATE = 128.0


def _ssa_table_mask(rate: np.ndarray, durs: np.ndarray, idx: np.ndarray, channels: float, K: int) -> np.ndarray:
    """Which conditions the ssa core builds a jump table for (uint8 flags, one per condition):
    those whose expected jumps -- ``channels`` x the time spent in the condition x its estimated
    transition rate per channel (:func:`_rate_estimate`) -- reach
    :data:`_SSA_TABLE_JUMPS_PER_STATE` x K."""
    time_in = np.bincount(idx, weights=durs, minlength=len(rate))
    with np.errstate(invalid="ignore", over="ignore"):
        jumps = channels * time_in * rate
    return (jumps >= _SSA_TABLE_JUMPS_PER_STATE * K).astype(np.uint8)


_EXPECT_CACHE: dict = {}
#: Above this many states the cost model uses the initial distribution only (no dense solve).
_DENSE_ESTIMATE_MAX_STATES = 400


def _boundaries(durs, idx, horizon: float, dt: float) -> tuple[int, int]:
    """For the cost model: the segment boundaries inside ``(0, horizon)`` (each one a crossing
    for every ssa channel: its pending dwell is redrawn) and how many distinct grid intervals
    they make straddle -- boundaries off the grid, told apart by the conditions on both sides
    and the offset within the interval (each is one more population matrix: a product of
    ``expm`` over its pieces; a periodic train repeats a few)."""
    d = np.asarray(durs, dtype=float)
    if d.size < 2:
        return 0, 0
    b = np.cumsum(d)[:-1]
    inside = b < horizon
    n_cross = int(np.count_nonzero(inside))
    if n_cross == 0:
        return 0, 0
    y = b[inside] / dt
    frac = y - np.floor(y)
    off = (frac > 1e-9) & (frac < 1.0 - 1e-9)
    if not np.any(off):
        return n_cross, 0
    ix = np.asarray(idx)
    a, b, f = ix[:-1][inside][off], ix[1:][inside][off], np.round(frac[off] * 1e9)
    order = np.lexsort((f, b, a))  # distinct (a, b, f) triples (np.unique(axis=0) is ~3x slower)
    a, b, f = a[order], b[order], f[order]
    return n_cross, 1 + int(np.count_nonzero((a[1:] != a[:-1]) | (b[1:] != b[:-1]) | (f[1:] != f[:-1])))


def _expected_transitions(compiled, durs, idx, conds, p0, horizon):
    """Rough expected number of transitions of one channel over [0, horizon] (cost model)."""
    key = (id(compiled), id(durs), id(p0), horizon)
    hit = _EXPECT_CACHE.get(key)
    if hit is not None and hit[0] is durs and hit[1] is p0 and hit[3] is compiled:
        return hit[2]
    rate = _rate_estimate(None, compiled, conds, p0)
    ends = np.cumsum(durs)
    starts = np.concatenate(([0.0], ends[:-1]))
    total = float(np.dot(np.clip(np.minimum(ends, horizon) - starts, 0.0, None), rate[idx]))
    if len(_EXPECT_CACHE) > 64:
        _EXPECT_CACHE.clear()
    _EXPECT_CACHE[key] = (durs, p0, total, compiled)  # keeps them alive so their ids stay unique
    return total


class SimulationResult:
    """Output of :func:`simulate`.

    Attributes
    ----------
    time : ndarray, shape (n_samples,)
        Sample times ``k·dt`` (s).
    counts : ndarray or None, shape (n_trials, n_samples, n_states)
        Channels in each state at each sample (``record="counts"``); int32, or int64 when
        ``n_channels`` exceeds 2**31 − 1.  ``None`` with ``record="summary"``.
    sum_counts : ndarray, shape (n_samples, n_states), int64
        Exact sum of the counts over trials (an object array of Python ints when
        n_trials × n_channels ≥ 2**63 with ``record="counts"``, where int64 would wrap).
    sum_sq_counts : ndarray, shape (n_samples, n_states)
        Exact sum of squared counts over trials: uint64 when ``n_trials × n_channels² < 2**64``
        (so that it always fits), otherwise an object array of Python ints -- the same for
        ``record="counts"`` and ``"summary"``.
    mean, var : ndarray, shape (n_samples, n_states)
        Mean and unbiased variance (ddof=1; NaN for one trial) of the counts over trials,
        computed from the exact integer sums.
    open_probability : ndarray
        Fraction of channels open: shape (n_trials, n_samples) with counts, (n_samples,) (the
        trial mean) with summaries.
    current : ndarray
        ``Σ_i n_i g_i (V − E_rev)`` (A), shapes as ``open_probability``.
    open_probability_var, current_var : ndarray, shape (n_samples,)
        Variance over trials (ddof=1) of the open fraction and of the current (A²), from exact
        integer sums of the open count and of the count at each conductance level (and pair of
        levels) -- available with ``record="summary"`` too, for nonstationary noise analysis
        (:func:`ketacore.analysis.noise_analysis`) of runs whose memory does not grow with
        trials; equal to the bit for the two records.
    V : ndarray, shape (n_samples,)
        Membrane voltage at each sample (V).
    method, record : str
    entropy : int or tuple of int
        Root entropy; trial ``i`` is ``numpy.random.PCG64(SeedSequence(entropy, spawn_key=(i,)))``.
    trials : ndarray of uint64
        Absolute trial indices, one per row of ``counts``.
    n_channels : int
    dt : float
    version : str
        ketacore version that produced the result.
    """

    def __init__(self, *, scheme: Scheme, protocol: Protocol, dt: float, n_samples: int, method: str,
                 record: str, entropy: Any, trials: np.ndarray, n_channels: int, initial: np.ndarray,
                 counts: np.ndarray | None = None, sums: tuple | None = None,
                 group_sums: tuple | None = None) -> None:
        self.scheme = scheme
        self.protocol = protocol
        self.dt = dt
        self.n_samples = n_samples
        self.method = method
        self.record = record
        self.entropy = entropy
        self.trials = trials
        self.n_channels = n_channels
        self.initial = initial
        self.counts = counts
        self.version = __version__
        self._sums = sums
        self._gsums = group_sums
        self._time = None
        self._V = None

    # -------------------------------------------------------------- basic views
    @property
    def states(self) -> tuple[str, ...]:
        """Names of the states (the last axis of ``counts``, ``mean``, ``var``)."""
        return self.scheme.states

    @property
    def n_trials(self) -> int:
        """Number of trials simulated (or summed)."""
        return int(self.trials.size)

    @property
    def time(self) -> np.ndarray:
        """Sample times ``k*dt`` (s)."""
        if self._time is None:
            self._time = np.arange(self.n_samples) * self.dt
        return self._time

    @property
    def V(self) -> np.ndarray:
        """Membrane voltage at each sample (V)."""
        if self._V is None:
            self._V = self.protocol.voltage_at(self.time, self.dt)
        return self._V

    @property
    def metadata(self) -> dict:
        """Method, record, root entropy, trials, channels, dt (s), scheme name and ketacore version."""
        return {"method": self.method, "record": self.record, "entropy": self.entropy,
                "trials": self.trials, "n_trials": self.n_trials, "n_channels": self.n_channels,
                "dt": self.dt, "scheme": self.scheme.name, "version": self.version}

    # ----------------------------------------------------------------- summaries
    def _exact_sums(self):
        if self._sums is None:
            self._sums = _trial_sums(self.counts, self.n_channels)
        return self._sums

    @property
    def sum_counts(self) -> np.ndarray:
        """Exact integer sum over trials of the counts, (n_samples, n_states)."""
        return self._exact_sums()[0]

    @property
    def sum_sq_counts(self) -> np.ndarray:
        """Exact integer sum over trials of the squared counts, (n_samples, n_states)."""
        q = self._exact_sums()[1]
        if isinstance(q, np.ndarray) and q.dtype == object:
            return q
        return np.asarray(q).astype(np.uint64)

    @property
    def mean(self) -> np.ndarray:
        # (sums beyond int64 are Python ints: their quotients are correctly rounded floats)
        """Mean over trials of the counts per state, (n_samples, n_states) (channels)."""
        return np.asarray(self.sum_counts / self.n_trials, dtype=float)

    @property
    def var(self) -> np.ndarray:
        """Unbiased variance over trials of the counts per state, (n_samples, n_states) (NaN with
        one trial)."""
        n = self.n_trials
        if n < 2:
            return np.full(self.sum_counts.shape, np.nan)
        s, q = _exact_ints(n, self.n_channels, *self._exact_sums())
        return np.asarray(n * q - s * s, dtype=float) / (n * (n - 1))

    @property
    def open_probability(self) -> np.ndarray:
        """Open fraction (dimensionless): shape (n_trials, n_samples) with ``record="counts"``
        (each trial), but (n_samples,) -- the trial mean -- with ``record="summary"``.  Code that
        must work with both can use the trial mean ``mean[:, scheme.open_mask].sum(-1) /
        n_channels`` (``mean`` is (n_samples, n_states) either way)."""
        m = self.scheme.open_mask
        if self.counts is not None:
            out = _weighted_counts(self.counts, m.astype(float))
            out /= self.n_channels   # (in place: numpy's temporary elision is not guaranteed)
            return out
        return self.mean[:, m].sum(axis=-1) / self.n_channels

    @property
    def current(self) -> np.ndarray:
        """Current ``sum_i n_i g_i (V - E_rev)`` (A): shape (n_trials, n_samples) with
        ``record="counts"``, (n_samples,) -- the trial mean -- with ``record="summary"``, as
        :attr:`open_probability`."""
        g = self.scheme.conductance
        drive = self.V - self.scheme.e_rev
        if self.counts is not None:
            out = _weighted_counts(self.counts, np.asarray(g, dtype=float))
            out *= drive
            return out
        return (self.mean @ g) * drive

    # ------------------------------------------------- variances of the open count and current
    def _group_sums(self) -> tuple:
        """Exact (sum, sum of squares) over trials of each summary group's count, (S, G): the
        C++ sums of ``record="summary"``, or the same integers from the counts."""
        if getattr(self, "_gsums", None) is None:
            if self.counts is None:
                # (a summary built without them: by hand, or pickled before 2026-11-28)
                raise ValueError("this record='summary' result has no sums of the open and level "
                                 "counts, which the variances of the open fraction and current "
                                 "need; simulate it again with this ketacore version")
            s, q = _trial_sums(self.counts, self.n_channels, _summary_groups(self.scheme)[0])
            self._gsums = (s, q)
        return self._gsums

    def _group_moments(self, need_levels: bool = False):
        """(levels, var(open count), cov(level a, level b) for every a, b): unbiased (ddof=1)
        variances and covariances over trials of the channel counts, (S,) each, from exact
        integer numerators ``n sum x y - sum x sum y``."""
        n = self.n_trials
        flags, (open_col, levels, pairs) = _summary_groups(self.scheme)
        S, K = self.n_samples, len(self.scheme.states)
        if levels is None:
            if need_levels:
                raise ValueError(f"current_var of a record='summary' result: the scheme has more than "
                                 f"{MAX_SUMMARY_LEVELS} distinct conductance levels, whose pairwise "
                                 "covariances summaries do not keep; use record='counts'")
            levels = []
        if open_col is None:                         # no conducting state: nothing fluctuates
            z = np.zeros(S) if n >= 2 else np.full(S, np.nan)
            return levels, z, []
        if n < 2:
            nan = np.full(S, np.nan)
            L = len(levels)
            return levels, nan, [[nan] * L for _ in range(L)]
        sums = self._exact_sums() + (self._group_sums() if len(flags) else ())
        ss, sq, *g = _exact_ints(n, self.n_channels, *sums)

        def col(c: int) -> tuple:
            return (ss[:, c], sq[:, c]) if c < K else (g[0][:, c - K], g[1][:, c - K])

        def var_num(c: int):
            s_, q_ = col(c)
            return n * q_ - s_ * s_
        den = float(n * (n - 1))
        v_open = np.asarray(var_num(open_col), dtype=float) / den
        L = len(levels)
        cov = [[None] * L for _ in range(L)]
        for a, (_, ca) in enumerate(levels):
            cov[a][a] = np.asarray(var_num(ca), dtype=float) / den
        for (a, b), cab in pairs.items():
            (sa, qa), (sb, qb), (_, qab) = col(levels[a][1]), col(levels[b][1]), col(cab)
            # sum m_a m_b = (sum (m_a + m_b)^2 - sum m_a^2 - sum m_b^2) / 2, exactly
            cross = (qab - qa - qb) // 2
            cov[a][b] = cov[b][a] = np.asarray(n * cross - sa * sb, dtype=float) / den
        return levels, v_open, cov

    @property
    def open_probability_var(self) -> np.ndarray:
        """Variance over trials (unbiased, ddof=1; NaN for one trial) of the open fraction at
        each sample, shape (n_samples,): ``var(sum_open n_i) / n_channels**2``, from exact
        integer sums of the open count (kept by ``record="summary"`` too, whose per-state sums
        of squares alone would miss the covariances between open states)."""
        return self._group_moments()[1] / float(self.n_channels) ** 2

    @property
    def current_var(self) -> np.ndarray:
        """Variance over trials (unbiased, ddof=1; NaN for one trial) of the current at each
        sample (A^2), shape (n_samples,): ``(V - E_rev)^2 var(sum_i g_i n_i)``, from exact
        integer sums of the count at each conductance level and of each pair of levels (the
        covariances by polarisation), with ``record="counts"`` and ``"summary"`` alike."""
        if self.counts is not None and _summary_groups(self.scheme)[1][1] is None:
            # (many levels: straight from the counts' currents, float)
            cur = self.current
            return cur.var(axis=0, ddof=1) if self.n_trials > 1 else np.full(self.n_samples, np.nan)
        levels, _, cov = self._group_moments(need_levels=True)
        drive = self.V - self.scheme.e_rev
        var = np.zeros(self.n_samples)
        for a, (ga, _) in enumerate(levels):
            for b, (gb, _) in enumerate(levels):
                var = var + ga * gb * cov[a][b]
        return var * drive * drive

    def __getitem__(self, state: str) -> np.ndarray:
        """Counts of one state: (n_trials, n_samples) with counts, else the mean (n_samples,)."""
        j = self.scheme.index(state)
        return self.counts[..., j] if self.counts is not None else self.mean[:, j]

    def to_frame(self):
        """A wide ``pandas.DataFrame`` (requires pandas): with ``record="counts"`` one row per
        (trial, time) -- index ``trial``, ``time`` (s) -- and one column per state (channel
        counts), then ``open_probability`` (fraction), ``current`` (A) and ``V`` (V); with
        ``record="summary"`` one row per time, columns ``mean_<state>`` and ``var_<state>``
        (channels; variance over trials), ``open_probability``, ``current`` (means over trials),
        their ``_var`` where available, and ``V``.  Rows in trial-major, then time order.
        """
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - optional dependency
            raise ImportError("to_frame() needs pandas: pip install pandas") from None
        states = list(self.states)
        if self.counts is not None:
            n_tr, n_s = self.counts.shape[:2]
            idx = pd.MultiIndex.from_arrays([np.repeat(self.trials, n_s), np.tile(self.time, n_tr)],
                                            names=["trial", "time"])
            cols = {s_: self.counts[:, :, k].reshape(-1) for k, s_ in enumerate(states)}
            cols["open_probability"] = np.asarray(self.open_probability).reshape(-1)
            cols["current"] = np.asarray(self.current).reshape(-1)
            cols["V"] = np.tile(self.V, n_tr)
            return pd.DataFrame(cols, index=idx)
        cols = {f"mean_{s_}": self.mean[:, k] for k, s_ in enumerate(states)}
        cols.update({f"var_{s_}": self.var[:, k] for k, s_ in enumerate(states)})
        cols["open_probability"] = self.open_probability
        cols["current"] = self.current
        for name in ("open_probability_var", "current_var"):
            try:
                cols[name] = getattr(self, name)
            except ValueError:   # (as to_xarray: not available for every summary; said)
                pass
        note = self._unavailable()
        if note:
            _warn_unavailable("to_frame", note)
        cols["V"] = self.V
        return pd.DataFrame(cols, index=pd.Index(self.time, name="time"))

    def _unavailable(self) -> str:
        """Which of ``open_probability_var``, ``current_var`` this summary cannot give and why
        ("" when it gives both, and for ``record="counts"``)."""
        if self.counts is not None:
            return ""
        flags, (open_col, levels, _) = _summary_groups(self.scheme)
        if len(flags) and getattr(self, "_gsums", None) is None:
            return ("open_probability_var, current_var: this record='summary' result has no sums "
                    "of the open and level counts (built by hand or by an older ketacore); "
                    "simulate it again with this version")
        if open_col is not None and levels is None:
            return _many_levels_note(self.scheme)
        return ""

    def to_xarray(self):
        """An ``xarray.Dataset`` of the result (requires the optional dependency xarray).

        Returns
        -------
        xarray.Dataset
            Coordinates ``time`` (s), ``state`` (and ``trial`` with ``record="counts"``); every
            variable has ``units`` and ``long_name`` attributes; the attributes hold
            :attr:`metadata` (``entropy`` as a string; for a summary ``trials`` as
            ``"range(a, b)"`` or the indices, left out beyond 4096 non-consecutive ones).
            ``record="counts"``: ``counts`` (trial, time, state), ``open_probability`` and
            ``current`` (A) per trial.  ``record="summary"``: ``mean``, ``var``,
            ``open_probability``, ``current`` (A) and, where available,
            ``open_probability_var`` and ``current_var`` (A²) -- what is not (more than
            :data:`MAX_SUMMARY_LEVELS` conductance levels: ``current_var``; a summary without
            the group sums: both) is named in ``attrs["unavailable"]`` and in a warning -- and
            the exact integer sums behind them: ``sum_counts`` and ``sum_sq_counts`` (time,
            state), and for schemes with summary groups ``group_states`` (group, state; 1 for
            the group's states), ``sum_group_counts`` and ``sum_sq_group_counts`` (time,
            group).  Sums are int64; one beyond int64 (``sum_sq_counts`` when n_trials ×
            n_channels² ≥ 2**63) is stored as two int64 words, ``<name>_hi * 2**63 +
            <name>_lo``.  Both records hold ``initial`` (state: the initial distribution) and
            ``V`` (V).  :meth:`from_xarray` reads it back, so that summaries saved to netCDF
            join exactly with :func:`concatenate`.
        """
        try:
            import xarray as xr
        except ImportError:  # pragma: no cover - optional dependency
            raise ImportError("to_xarray() needs xarray: pip install 'ketacore[xarray]'") from None
        attrs = {k: (str(v) if k in ("entropy",) else v) for k, v in self.metadata.items() if k != "trials"}
        if self.counts is None:
            # summaries keep no per-trial axis: say which trials they cover (a range when the
            # indices are consecutive, as from n_trials/trial_offset)
            t = self.trials
            if t.size and int(t[-1]) - int(t[0]) == t.size - 1 and np.all(np.diff(t.astype(np.int64)) == 1):
                attrs["trials"] = f"range({int(t[0])}, {int(t[-1]) + 1})"
            elif t.size <= 4096:
                attrs["trials"] = " ".join(str(int(x)) for x in t)
        coords = {"time": self.time, "state": list(self.states)}
        if self.counts is not None:
            coords["trial"] = self.trials
            data = {"counts": (("trial", "time", "state"), self.counts),
                    "open_probability": (("trial", "time"), self.open_probability),
                    "current": (("trial", "time"), self.current)}
        else:
            data = {"mean": (("time", "state"), self.mean), "var": (("time", "state"), self.var),
                    "open_probability": ("time", self.open_probability),
                    "current": ("time", self.current)}
            for name in ("open_probability_var", "current_var"):
                try:    # (not for a summary without group sums, nor current_var beyond
                    data[name] = ("time", getattr(self, name))   # MAX_SUMMARY_LEVELS levels)
                except ValueError:
                    pass
            note = self._unavailable()
            if note:   # (said, in the Dataset and now)
                attrs["unavailable"] = note
                _warn_unavailable("to_xarray", note)
            # the exact integer sums the means and variances come from, so that summaries
            # written to a file can be joined to the bit (SimulationResult.from_xarray)
            s, q = self._exact_sums()
            data.update(_int_variables("sum_counts", ("time", "state"), s))
            data.update(_int_variables("sum_sq_counts", ("time", "state"), q))
            flags = _summary_groups(self.scheme)[0]
            if len(flags) and getattr(self, "_gsums", None) is not None:
                gs, gq = self._gsums
                coords["group"] = np.arange(len(flags))
                data["group_states"] = (("group", "state"), flags.astype(np.int8))
                data.update(_int_variables("sum_group_counts", ("time", "group"), gs))
                data.update(_int_variables("sum_sq_group_counts", ("time", "group"), gq))
        data["initial"] = ("state", np.asarray(self.initial, dtype=float))
        data["V"] = ("time", self.V)
        ds = xr.Dataset(data, coords=coords, attrs=attrs)
        N = self.n_channels
        per = "in each trial" if self.counts is not None else "mean over trials"
        docs = {"time": ("s", "time since the start of the protocol"),
                "state": ("1", "kinetic state"),
                "trial": ("1", "trial index (trial i draws from PCG64(SeedSequence(entropy, "
                               "spawn_key=(i,))))"),
                "counts": ("1", f"number of the {N} channels in each state, in each trial"),
                "mean": ("1", f"number of the {N} channels in each state, mean over trials"),
                "var": ("1", f"variance over trials of the number of the {N} channels in each state "
                             "(unbiased; NaN with one trial)"),
                "open_probability": ("1", f"fraction of the {N} channels in open states, {per}"),
                "current": ("A", f"current of the {N} channels, {per}"),
                "open_probability_var": ("1", f"variance over trials of the fraction of the {N} "
                                              "channels in open states (unbiased; NaN with one trial)"),
                "current_var": ("A2", f"variance over trials of the current of the {N} channels "
                                      "(unbiased; NaN with one trial)"),
                "initial": ("1", "initial distribution: probability of each state at time 0, from "
                                 "which each channel's state is drawn"),
                "group": ("1", "summary group index"),
                "group_states": ("1", "1 where the state belongs to the summary group (the open "
                                      "states; the states of one conductance level; of two levels)"),
                "V": ("V", "membrane voltage")}
        sums = {"sum_counts": f"the number of the {N} channels in each state",
                "sum_sq_counts": f"the squared number of the {N} channels in each state",
                "sum_group_counts": f"the number of the {N} channels in each summary group "
                                    "(group_states; behind open_probability_var and current_var)",
                "sum_sq_group_counts": f"the squared number of the {N} channels in each summary group"}
        for name, what in sums.items():
            exact = f"exact sum over the {self.n_trials} trials of {what}"
            docs[name] = ("1", exact)
            for word in ("hi", "lo"):
                docs[f"{name}_{word}"] = ("1", f"{exact}: {name} = {name}_hi * 2**63 + {name}_lo "
                                               f"(both int64 >= 0), this the {word} word")
        for name, (units, long_name) in docs.items():
            if name in ds.variables:
                ds[name].attrs.update(units=units, long_name=long_name)
        return ds

    @classmethod
    def from_xarray(cls, ds: Any, scheme: "Scheme | str", protocol: "Protocol | Step") -> "SimulationResult":
        """The result a :meth:`to_xarray` Dataset was made from (e.g. read back with
        ``xarray.open_dataset``), so that results saved to files join exactly with
        :func:`concatenate`.

        Parameters
        ----------
        ds : xarray.Dataset
            ``result.to_xarray()`` of this ketacore version (older Datasets lack the initial
            distribution, and summaries their exact sums): with ``record="counts"`` the counts,
            with ``record="summary"`` the exact integer sums (``sum_counts``,
            ``sum_sq_counts`` and the summary groups' sums; a sum beyond int64 is stored as two
            int64 words, ``<name>_hi * 2**63 + <name>_lo``), read back bit for bit.
        scheme : Scheme or str
            The scheme simulated (a Dataset keeps only its name and states), or a library
            model name.
        protocol : Protocol or Step
            The protocol simulated (durations in s): checked against the Dataset's grid and
            voltage only, so pass the one the run used.

        Returns
        -------
        SimulationResult

        Raises
        ------
        TypeError
            ``ds`` is not a Dataset, or ``scheme``/``protocol`` of the wrong type.
        ValueError
            ``ds`` is not a to_xarray Dataset of a simulation (the missing part is named); or
            ``scheme`` or ``protocol`` disagrees with it; or a summary's trials are not listed
            (more than 4096 non-consecutive trials: its ``trials`` attribute is left out).
        """
        return _from_xarray(cls, ds, scheme, protocol)

    def __repr__(self) -> str:
        return (f"SimulationResult(method={self.method!r}, record={self.record!r}, trials={self.n_trials}, "
                f"n_channels={self.n_channels}, samples={self.n_samples}, states={len(self.states)})")


def _many_levels_note(scheme: Scheme) -> str:
    n = int(np.unique(np.asarray(scheme.conductance, dtype=float)[scheme.open_mask]).size)
    return (f"current_var: the scheme has {n} distinct conductance levels, more than "
            f"MAX_SUMMARY_LEVELS = {MAX_SUMMARY_LEVELS}, and record='summary' does not keep the "
            "sums of their pairs that it needs (open_probability_var is kept); use "
            "record='counts' for current_var")


def _warn_unavailable(where: str, note: str) -> None:
    import warnings
    warnings.warn(f"SimulationResult.{where}(): left out {note}", UserWarning, stacklevel=3)


#: Exact integers beyond int64 are stored in a Dataset as two int64 words of this base.
_WORD = 2**63


def _int_variables(name: str, dims: tuple, a: np.ndarray) -> dict:
    """Exact non-negative integers ``a`` as Dataset variables: ``{name: int64}`` when every
    value fits int64, else ``{name_hi, name_lo}``, int64 words with ``a = hi * 2**63 + lo``
    (netCDF stores int64 -- not Python ints, and uint64 only in NETCDF4 files)."""
    a = np.asarray(a)
    if a.dtype.kind == "i" or a.size == 0 or int(a.max()) < _WORD:
        return {name: (dims, a.astype(np.int64))}
    o = a.astype(object)
    return {f"{name}_hi": (dims, (o // _WORD).astype(np.int64)),
            f"{name}_lo": (dims, (o % _WORD).astype(np.int64))}


def _read_int_variables(ds: Any, name: str) -> np.ndarray:
    """The integers :func:`_int_variables` stored: int64, or Python ints (object) when they
    were split into words."""
    if name in ds.variables:
        a = np.asarray(ds[name].values)
        if a.dtype.kind not in "iu":
            raise ValueError(f"from_xarray: ds[{name!r}] holds {a.dtype}, not the exact integers "
                             "to_xarray writes")
        return a.astype(np.int64)
    hi_name, lo_name = f"{name}_hi", f"{name}_lo"
    if hi_name not in ds.variables or lo_name not in ds.variables:
        raise KeyError(name)
    hi, lo = np.asarray(ds[hi_name].values), np.asarray(ds[lo_name].values)
    if hi.dtype.kind not in "iu" or lo.dtype.kind not in "iu":
        raise ValueError(f"from_xarray: ds[{hi_name!r}] / ds[{lo_name!r}] must hold integers")
    return hi.astype(object) * _WORD + lo.astype(object)


def _parse_trials(text: Any) -> np.ndarray:
    """The trial indices of a summary Dataset's ``trials`` attribute ("range(a, b)" or the
    indices separated by spaces)."""
    t = str(text).strip()
    try:
        if t.startswith("range(") and t.endswith(")"):
            a, b = (int(x) for x in t[6:-1].split(","))
            return np.arange(a, b, dtype=np.int64).astype(np.uint64)
        return np.array([int(x) for x in t.split()], dtype=np.int64).astype(np.uint64)
    except (ValueError, OverflowError):
        raise ValueError(f"from_xarray: ds.attrs['trials'] = {t[:80]!r} is not a range(a, b) or "
                         "a list of trial indices as to_xarray writes") from None


def _from_xarray(cls, ds: Any, scheme: Any, protocol: Any) -> "SimulationResult":
    """:meth:`SimulationResult.from_xarray`."""
    import ast
    if not (hasattr(ds, "attrs") and hasattr(ds, "variables") and hasattr(ds, "sizes")):
        raise TypeError(f"from_xarray: ds must be an xarray.Dataset (SimulationResult.to_xarray()), "
                        f"got {type(ds).__name__}")
    scheme = _models.as_scheme(scheme)
    protocol = _check_scheme_protocol(scheme, protocol)
    at = ds.attrs
    missing = [k for k in ("method", "record", "entropy", "n_trials", "n_channels", "dt", "version")
               if k not in at]
    if missing:
        raise ValueError(f"from_xarray: ds has no attribute(s) {missing}: not a "
                         "SimulationResult.to_xarray() Dataset")
    record = str(at["record"])
    if record not in RECORDS:
        raise ValueError(f"from_xarray: ds.attrs['record'] = {record!r}, not one of {RECORDS}")
    need = ["V", "initial"] + (["counts"] if record == "counts" else [])
    lacking = [k for k in need if k not in ds.variables]
    if lacking:
        raise ValueError(f"from_xarray: ds has no {lacking}: a to_xarray Dataset of an older ketacore "
                         "(or cut down); simulate again and save result.to_xarray() of this version")
    states = [str(x) for x in np.asarray(ds["state"].values)]
    if tuple(states) != tuple(scheme.states):
        raise ValueError(f"from_xarray: scheme has states {list(scheme.states)}, the Dataset "
                         f"{states}: pass the scheme that was simulated")
    if "scheme" in at and str(at["scheme"]) != str(scheme.name):
        raise ValueError(f"from_xarray: the Dataset is of scheme {str(at['scheme'])!r}, scheme is "
                         f"{scheme.name!r}: pass the scheme that was simulated")
    dt = float(at["dt"])
    n_channels, n_trials = int(at["n_channels"]), int(at["n_trials"])
    S = int(ds.sizes["time"])
    time = np.arange(S) * dt
    if protocol.n_samples(dt) != S or not np.array_equal(protocol.voltage_at(time, dt),
                                                         np.asarray(ds["V"].values, dtype=float)):
        raise ValueError(f"from_xarray: protocol ({len(protocol)} step(s), "
                         f"{protocol.duration:g} s) does not give the Dataset's {S} samples at "
                         f"dt = {dt:g} s and their voltage: pass the protocol that was simulated")
    try:
        entropy = ast.literal_eval(str(at["entropy"]))
    except (ValueError, SyntaxError):
        entropy = None
    if not (isinstance(entropy, int) or (isinstance(entropy, tuple)
                                         and all(isinstance(x, int) for x in entropy))):
        raise ValueError(f"from_xarray: ds.attrs['entropy'] = {str(at['entropy'])[:80]!r} is not "
                         "the root entropy to_xarray writes (an int or a tuple of ints)")
    if record == "counts":
        trials = np.asarray(ds["trial"].values).astype(np.uint64)
    elif "trials" in at:
        trials = _parse_trials(at["trials"])
    else:
        raise ValueError("from_xarray: this summary Dataset does not list its trials (more than "
                         "4096 non-consecutive trials are left out of ds.attrs['trials']); "
                         "concatenate() needs them to refuse overlapping parts")
    if trials.size != n_trials:
        raise ValueError(f"from_xarray: ds.attrs['n_trials'] = {n_trials} but the Dataset lists "
                         f"{trials.size} trials")
    common = dict(scheme=scheme, protocol=protocol, dt=dt, n_samples=S, method=str(at["method"]),
                  entropy=entropy, trials=trials, n_channels=n_channels,
                  initial=np.asarray(ds["initial"].values, dtype=float))
    if record == "counts":
        out = cls(record="counts", counts=np.asarray(ds["counts"].values), **common)
    else:
        n, N = n_trials, n_channels
        obj_s, obj_q = n * N >= 2**63, _sq_object(n, N)

        def exact(name: str, obj: bool, dtype) -> np.ndarray:
            # the dtypes simulate(record="summary") gives for these n and N
            try:
                a = _read_int_variables(ds, name)
            except KeyError:
                raise ValueError(f"from_xarray: this summary Dataset has no exact sums ({name!r}): "
                                 "a to_xarray Dataset of an older ketacore; simulate again") from None
            return a.astype(object if obj else dtype)
        sums = (exact("sum_counts", obj_s, np.int64), exact("sum_sq_counts", obj_q, np.uint64))
        flags = _summary_groups(scheme)[0]
        gsums = None
        if len(flags) and "group_states" in ds.variables:
            stored = np.asarray(ds["group_states"].values)
            if stored.shape != flags.shape or not np.array_equal(stored, flags):
                raise ValueError("from_xarray: the Dataset's summary groups (group_states) are not "
                                 "those of scheme: pass the scheme that was simulated")
            gsums = (exact("sum_group_counts", obj_s, np.int64),
                     exact("sum_sq_group_counts", obj_q, np.uint64))
        for a in sums + (gsums or ()):
            if a.shape[0] != S:
                raise ValueError("from_xarray: the Dataset's sums do not have one row per sample")
        out = cls(record="summary", sums=sums, group_sums=gsums, **common)
    out.version = str(at["version"])
    return out


def simulate(scheme: Scheme | str, protocol: Protocol | Step, dt: float, n_channels: int = 1,
             n_trials: int | None = None, *, method: str = "auto", rng: Any = None,
             n_threads: int | None = None, record: str = "counts", initial: Any = None,
             trials: Iterable[int] | None = None, trial_offset: int | None = None) -> SimulationResult:
    """Exact Monte Carlo simulation of ``n_channels`` independent channels, ``n_trials`` times.

    Parameters
    ----------
    scheme : Scheme or str
        Kinetic scheme (rates in s⁻¹, conductances in S), or the name of a library model
        (:func:`ketacore.models.get`), as the experiments and :func:`ketacore.block` take.
    protocol : Protocol or Step
        Piecewise-constant conditions (durations in s).
    dt : float
        Sampling interval of the output grid (s), > 0; samples at ``k·dt``,
        ``k = 0 .. floor(T/dt)``.  Both methods are exact at the grid points for any ``dt``.
    n_channels : int, default 1
        Channels per trial, ≥ 1.
    n_trials : int, optional
        Number of independent trials (default 1, or ``len(trials)``).
    method : {"auto", "ssa", "population"}
        ``"ssa"``: per-channel event-driven simulation (Gillespie 1977,
        doi:10.1021/j100540a008); ``"population"``: multinomial update of the state counts with
        ``P = expm(Q·dt)``, cost independent of ``n_channels`` (each multinomial by conditional
        binomials; from ``_core.POP_COLUMNS_MIN`` = 2**17 channels a step draws them in another,
        faster order -- as exact, different bytes; docs/stochastic.md); ``"auto"``: the one with
        the lower estimated cost for one trial, set-up included.  The choice depends on the
        scheme, protocol, ``dt``, ``n_channels`` and ``initial`` only -- never on
        ``n_trials``, ``trials``, ``n_threads`` or ``record`` -- so trials split over calls
        get the bytes of one call (``result.method`` says which ran).
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator
        Root of the random streams (SPEC 7; see :mod:`ketacore._rng`).  The root entropy is
        stored in the result (``result.entropy``; ``rng=result.entropy`` reproduces the run).
        ``None``: fresh OS entropy; int / SeedSequence: that entropy (same result every call;
        a spawned SeedSequence, ``SeedSequence(s).spawn(n)[k]``, gives a root entropy of its
        own, so the children of one spawn give independent runs).  A Generator is a source
        of randomness: a 128-bit root entropy is drawn from it (advancing it), so repeated
        calls with one Generator give different replicates and re-creating it from the same
        seed reproduces them.
    n_threads : int, optional
        Worker threads (default: all cores available to the process).  Results do not depend on it.
    record : {"counts", "summary"}
        ``"counts"`` keeps ``(n_trials, n_samples, n_states)`` counts; ``"summary"`` keeps only
        exact per-sample sums and sums of squares (memory independent of ``n_trials``).
    initial : None, str, mapping or array, optional
        Initial state distribution (each channel drawn independently from it); default: at
        rest under the protocol's ``rest_conditions`` (a pulse train's between-pulse
        conditions, else the first step's).  See :func:`ketacore.solve.initial_distribution`.
    trials : range or sequence of int, optional
        Absolute trial indices to simulate (trial ``i`` always has the same stream), e.g.
        ``range(50, 100)``; results of several calls concatenate to the one-call result.
        Indices must be below 2**32 (trial and channel-block numbers key the streams together).
    trial_offset : int, optional
        Shorthand for ``trials=range(trial_offset, trial_offset + n_trials)``.

    Returns
    -------
    SimulationResult

    Raises
    ------
    TypeError, ValueError
        Invalid arguments (named in the message), or outputs that would not fit in memory
        (the message gives the estimate).
    KeyboardInterrupt
        On Ctrl-C; the computation stops within ~0.1 s and its memory is freed.

    Notes
    -----
    Ctrl-C is honoured for jobs estimated to take longer than ~10 ms (they run on a worker thread
    while the calling thread polls for signals); shorter jobs run inline with the GIL released.
    """
    if type(scheme) is str:  # a library model name (a fresh Scheme: no plan reuse)
        scheme = _models.as_scheme(scheme)
    key = None
    if (trials is None and (type(dt) is float or type(dt) is int) and type(n_channels) is int
            and type(method) is str and type(record) is str
            and (n_trials is None or type(n_trials) is int)
            and (initial is None or type(initial) is str)
            and (trial_offset is None or type(trial_offset) is int)
            and (n_threads is None or type(n_threads) is int)
            and (type(protocol) is Step or type(protocol) is Protocol)):
        # Exact builtin types only: a cached plan is reused only for arguments equal *and* of
        # the same kind as ones that already passed every check (True == 1 and 1.0 == 1 hash
        # alike, but bool/float never get here).  Steps and Protocols are immutable.
        key = (id(scheme), protocol, dt, n_channels, n_trials, method, record, initial, trial_offset,
               n_threads)
        plan = _PLANS.get(key)
        if plan is not None and plan.scheme is scheme:
            if plan.need >= _MEMORY_RECHECK_ABOVE:  # (before rng: a refusal must not advance a Generator)
                _check_plan_memory(plan.memory_check)
            if type(rng) is int and 0 <= rng < 4294967296:  # fast path of _rng.root_entropy/entropy_words
                return plan.run(protocol, rng, [rng])
            entropy = _rng.root_entropy(rng)
            return plan.run(protocol, entropy, _rng.entropy_words(entropy))
    plan, entropy = _make_plan(scheme, protocol, dt, n_channels, n_trials, method, record, initial, trials,
                               trial_offset, n_threads, rng)
    if key is not None and plan.cacheable:
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        if _large_plan(plan):
            # a large request's plan, or one of a long protocol (a waveform's samples and their
            # compiled arrays: ~30 bytes per sample), holds much memory: keep only the newest few
            big = [k for k, p in _PLANS.items() if _large_plan(p)]
            for k in big[:max(0, len(big) - _MAX_LARGE_PLANS + 1)]:
                del _PLANS[k]
        _PLANS[key] = plan
    return plan.run(protocol, entropy, _rng.entropy_words(entropy))


_PLANS: dict = {}
_MAX_PLANS = 256
_MAX_LARGE_PLANS = 4  # of them, plans of requests above _MEMORY_RECHECK_ABOVE or of long protocols
_LONG_PROTOCOL = 100_000  # segments


def _large_plan(plan: "_Plan") -> bool:
    return plan.need >= _MEMORY_RECHECK_ABOVE or plan.durs.size > _LONG_PROTOCOL


class _Plan:
    """Everything :func:`simulate` derives from its arguments except ``rng``: validated once,
    reused for repeated calls with the same scheme, protocol and options."""

    __slots__ = ("scheme", "protocol", "dt", "S", "N", "chosen", "record", "trial_idx", "durs", "idx",
                 "conds", "p0", "compiled", "threads_used", "summary", "wide", "background", "cacheable",
                 "core", "template", "need", "tables", "pop_settings", "memory_check", "sq_object",
                 "groups")

    def run(self, protocol_arg: Any, entropy: Any, words: list) -> "SimulationResult":
        out = self.core(self.chosen, self.compiled, self.durs, self.idx, self.conds, self.dt, self.S,
                        self.p0, self.N, words, self.trial_idx, self.threads_used, self.summary,
                        self.wide, self.background, self.tables, *self.pop_settings, self.groups)
        # the caller's own Protocol object (an equal one may have built the plan); a Step is
        # wrapped in the plan's one-step Protocol
        protocol = protocol_arg if type(protocol_arg) is Protocol else self.protocol
        # Same attributes as SimulationResult.__init__ sets (tests/test_overhead_caching.py checks),
        # filled from the plan's template without keyword parsing.
        r = _new_result(SimulationResult)
        d = r.__dict__
        d.update(self.template)
        d["protocol"] = protocol
        d["entropy"] = entropy
        # each result owns its trials array (the plan's own stays private)
        d["trials"] = self.trial_idx.copy() if self.cacheable else self.trial_idx
        if self.summary:
            s, lo, hi = out
            # object exactly when record="counts" gives object (the bound n*N**2, not the data)
            if self.sq_object:
                q = hi.astype(object) * (1 << 64) + lo.astype(object)
            else:
                q = lo
            # flat: S x K state entries, then S x G group entries (_summary_groups)
            n_st = self.S * self.p0.size
            d["_sums"] = (s[:n_st].reshape(self.S, -1), q[:n_st].reshape(self.S, -1))
            G = 0 if self.groups is None else self.groups.shape[0]
            d["_gsums"] = (s[n_st:].reshape(self.S, G), q[n_st:].reshape(self.S, G)) if G else None
        else:
            d["counts"] = out
        return r


def _weighted_counts(c: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``sum_j c[..., j] * w[j]`` (n, S) float64 over the states with ``w[j] != 0``, in state
    order, a few trials at a time: the temporaries stay ~16 MB instead of a float copy of all
    the counts (``c @ w`` would make one, twice the size of int32 counts)."""
    n, S, K = c.shape
    out = np.zeros((n, S))
    nz = np.flatnonzero(w)
    step = max(1, (1 << 21) // max(1, S))
    for i in range(0, n, step):
        o = out[i:i + step]
        for j in nz:
            o += c[i:i + step, :, j] * w[j]
    return out


def _trial_sums(c: np.ndarray, n_channels: int, flags: np.ndarray | None = None) -> tuple:
    """Exact (sum over trials, sum over trials of squares), (S, K), of the counts ``c``
    (n, S, K) -- or, with ``flags`` (G, K), of the group counts ``c @ flags.T`` (S, G) -- as
    ``record="summary"`` gives them: sums int64 (object beyond n N >= 2^63), squares int64 /
    uint64 below n N^2 < 2^64, else Python ints.  Reduced in trial blocks of <= ~2**21 cells,
    so the temporaries stay small beside the counts."""
    n, S, K = c.shape
    N = n_channels
    obj = _sq_object(n, N) or n * N >= 2**63
    sq = object if obj else (np.uint64 if n * N * N >= 2**63 else np.int64)
    width = K if flags is None else len(flags)
    s = np.zeros((S, width), object if obj else np.int64)
    q = np.zeros((S, width), sq)
    step = max(1, (1 << 21) // max(1, S * K))
    for i in range(0, n, step):
        b = c[i:i + step].astype(np.int64)
        if flags is not None:
            b = np.einsum("tsk,gk->tsg", b, flags.astype(np.int64))
        b = b.astype(sq)
        s += b.sum(axis=0, dtype=s.dtype)
        b *= b
        q += b.sum(axis=0, dtype=sq)
    if obj and n * N < 2**63:
        s = s.astype(np.int64)
    return s, q


def _exact_ints(n_trials: int, n_channels: int, *sums: np.ndarray) -> list:
    """The exact sums as int64 when every ``n sum x y - sum x sum y`` fits
    ((n N)^2 < 2^63) and none is already Python ints, else all as Python ints."""
    small = (n_trials * n_channels) ** 2 < 2**63 and all(a.dtype != object for a in sums)
    return [a.astype(np.int64 if small else object) for a in sums]


_GROUPS_CACHE: dict = {}
#: record="summary" sums the count at each conductance level and each pair of levels (for
#: current_var) up to this many distinct levels (1 + L + L(L-1)/2 groups: 137 at 16); beyond
#: it only the open count is summed, and current_var of a summary is refused.
MAX_SUMMARY_LEVELS = 16


def _summary_groups(scheme: Scheme) -> tuple:
    """The groups of states whose count ``record="summary"`` also sums (with its square), and
    where to find each count the variances need.

    Returns ``(flags, (open_col, levels, pairs))``: ``flags`` (G, K) uint8 are the groups the
    C++ core sums; a *column* ``c`` is state ``c`` for ``c < K`` and group ``c - K`` otherwise.
    ``open_col`` is the column of the open count (every conducting state); ``levels`` lists
    ``(conductance (S), column)`` of the count at each distinct conductance; ``pairs`` maps
    level indices ``(a, b), a < b`` to the column of the count at the two levels together (its
    square gives their covariance by polarisation).  A count of a single state is that state's
    column, so a scheme with one conducting state (most NMDA schemes) needs no group at all.
    ``open_col`` is None without a conducting state, and ``levels`` is None beyond
    :data:`MAX_SUMMARY_LEVELS` distinct levels (only the open count is summed then)."""
    hit = _GROUPS_CACHE.get(id(scheme))
    if hit is not None and hit[0] is scheme:
        return hit[1]
    g = np.asarray(scheme.conductance, dtype=float)
    K = g.size
    rows: list = []

    def column(mask: np.ndarray) -> int:
        members = np.flatnonzero(mask)
        if members.size == 1:
            return int(members[0])
        for r, m in enumerate(rows):             # (no group twice)
            if np.array_equal(m, mask):
                return K + r
        rows.append(mask)
        return K + len(rows) - 1

    om = g > 0
    lv = np.unique(g[om])
    open_col = column(om) if om.any() else None     # (no conducting state: no count to sum)
    levels, pairs = [], {}
    if lv.size == 1:
        levels = [(float(lv[0]), open_col)]
    elif lv.size > MAX_SUMMARY_LEVELS:
        levels = None    # current_var needs counts: 1 + L + L(L-1)/2 groups would be too many
    elif lv.size > 1:
        levels = [(float(x), column(g == x)) for x in lv]
        for a in range(lv.size):
            for b in range(a + 1, lv.size):
                pairs[(a, b)] = column((g == lv[a]) | (g == lv[b]))
    flags = np.array(rows, dtype=np.uint8).reshape(len(rows), K)
    flags.setflags(write=False)
    out = (flags, (open_col, levels, pairs))
    if len(_GROUPS_CACHE) > 64:
        _GROUPS_CACHE.clear()
    _GROUPS_CACHE[id(scheme)] = (scheme, out)   # the reference keeps the id unique
    return out


def _sq_object(n_trials: int, n_channels: int) -> bool:
    """Whether the exact sums of squared counts can exceed uint64 (n N^2 >= 2^64): then they
    are Python ints, for ``record="counts"`` and ``"summary"`` alike."""
    return n_trials * n_channels * n_channels >= 2**64


_new_result = object.__new__


def _make_plan(scheme, protocol, dt, n_channels, n_trials, method, record, initial, trials, trial_offset,
               n_threads, rng) -> tuple:
    """Validate every argument of :func:`simulate` (raising TypeError/ValueError naming the
    parameter) and work out the run: method, memory check, threads.  Returns the plan, which
    does not depend on ``rng``, and the root entropy."""
    protocol = _check_scheme_protocol(scheme, protocol)
    dt = V_.real("dt", dt, positive=True)
    N = V_.integer("n_channels", n_channels, minimum=1, maximum=2**62)
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not isinstance(record, str) or record not in RECORDS:
        raise ValueError(f"record must be one of {RECORDS}, got {record!r}")
    trial_idx = _resolve_trials(n_trials, trials, trial_offset)
    n_tr = len(trial_idx)
    threads = _resolve_threads(n_threads)

    S = protocol.n_samples(dt)
    K = scheme.n_states
    durs, idx, conds = protocol.compile(scheme)
    if method == "population":  # its dense K x K matrices, before anything builds them
        V_.check_memory(f"simulate ({K} states, dense K x K matrices)", _population_dense_bytes(K, threads),
                        advice="use method='ssa', fewer threads or a scheme with fewer states")
    p0 = _initial(scheme, initial, protocol)
    compiled = scheme._compiled()

    # ----- cost model and method choice
    n_cross, n_straddle = _boundaries(durs, idx, (S - 1) * dt, dt)
    # (per trial: transitions, segment crossings, samples; per call: ssa jump tables, population
    # matrices -- for protocols of many short segments, e.g. a voltage ramp from_waveform, these
    # decide; calibrated on erreger2005_2a + Mg2+, 16 states, on the development machine).  A
    # forced population run needs none of ssa's estimates (the per-condition rates and
    # equilibria are most of the planning on a long waveform).
    if method != "population":
        per_channel = _expected_transitions(compiled, durs, idx, conds, p0, (S - 1) * dt)
        rates = _rate_estimate(None, compiled, conds, p0)
        tables = _ssa_table_mask(rates, durs, idx, float(N) * n_tr, K)
        n_tables = int(np.count_nonzero(tables))
        ssa_trial = N * (per_channel * _COST_EVENT + _COST_CHANNEL + n_cross * _COST_CROSSING) + S * K * _COST_SAMPLE
        ssa_cond = len(conds) * K * _COST_COND_STATE        # exit tables, one thread
        ssa_build = n_tables * K * 512 * _COST_TABLE + ssa_cond   # one thread
        ssa_cost = n_tr * ssa_trial + ssa_build
    # population matrices: counted exactly (the C++ schedule: one per distinct sequence of
    # pieces of a straddled interval, which boundary triples undercount when a waveform is
    # sampled off the grid) unless the grid is too long to walk here
    from . import _core
    if method == "ssa":
        n_keys = 0  # (not needed)
    elif S <= _EXACT_KEYS_BELOW:
        n_keys = _core.population_keys(compiled, durs, idx, conds, dt, S)[0]
    else:
        n_keys = len(conds) + n_straddle + 1
    pop_trial = (S - 1) * K * (K - 1) * _COST_BINOMIAL + S * K * _COST_SAMPLE
    pop_cost = n_tr * pop_trial + n_keys * K**3 * _COST_EXPM_K3
    if method == "auto":
        # the choice decides the bytes, so it is made for ONE trial (its set-up included) and
        # never depends on n_trials: trials split over calls, chunks or workers get the method
        # (and so the bytes) of one call.  (The jump tables change speed, not results; here
        # counted as one trial would build them.)
        tables_1 = int(np.count_nonzero(_ssa_table_mask(rates, durs, idx, float(N), K)))
        ssa_1 = ssa_trial + tables_1 * K * 512 * _COST_TABLE + ssa_cond
        pop_1 = pop_trial + n_keys * K**3 * _COST_EXPM_K3
        chosen = "ssa" if ssa_1 <= pop_1 else "population"
    else:
        chosen = method
    if method == "ssa" and ssa_cost > _SLOW_FORCED_ABOVE:
        # a forced ssa far costlier than the (equally exact) population method: say so before
        # a run of minutes starts (helper-97's audit: a stiff scheme ran 50 s, auto takes 1 ms).
        # Judged on a LOW estimate, the exit rate at each condition's equilibrium only: the
        # cost model's mean with the start's exit rate counts a start far from equilibrium for
        # the whole segment (destexhe1994_sf from C0 in 1 mM glutamate: 63x too many
        # transitions, a 0.28 s run warned about as 12 s; helper-100's audit)
        at_eq = _condition_rates(compiled, conds, p0)[2]
        ends = np.cumsum(durs)
        starts = np.concatenate(([0.0], ends[:-1]))
        horizon = (S - 1) * dt
        low_channel = float(np.dot(np.clip(np.minimum(ends, horizon) - starts, 0.0, None), at_eq[idx]))
        ssa_low = n_tr * (N * (low_channel * _COST_EVENT + _COST_CHANNEL + n_cross * _COST_CROSSING)
                          + S * K * _COST_SAMPLE) + ssa_build
        pop_forced = n_tr * pop_trial + (len(conds) + n_straddle + 1) * K**3 * _COST_EXPM_K3
        if ssa_low > _SLOW_FORCED_ABOVE and ssa_low > _SLOW_FORCED_RATIO * pop_forced:
            import warnings
            warnings.warn(
                f"simulate: method='ssa' is estimated at >~{ssa_low:.3g} s of CPU for this run "
                f"(>~{n_tr * N * low_channel:.3g} transitions), method='population' at "
                f"~{pop_forced:.3g} s; both are exact at the grid points.  Pass method='auto' (or "
                "'population') unless you need every transition's effect on the grid from ssa's "
                "streams", V_.PerformanceWarning, stacklevel=3)
    if record == "summary":
        _, (open_col, levels, _) = _summary_groups(scheme)
        if open_col is not None and levels is None:
            # said before the run, not only when result.current_var is asked for
            import warnings
            warnings.warn(f"simulate(record='summary'): {_many_levels_note(scheme)}", UserWarning,
                          stacklevel=3)
    if chosen == "ssa" and N > 2**40:
        raise ValueError(f"n_channels={N} is too many for method='ssa' (one event stream per channel); "
                         "use method='population'")
    if chosen == "ssa":
        events = n_tr * N * per_channel
        if not events <= MAX_SSA_EVENTS:
            raise ValueError(
                f"method='ssa' would carry out about {events:.3g} transitions (n_trials={n_tr} x "
                f"n_channels={N} x {per_channel:.3g} per channel), more than {MAX_SSA_EVENTS:.0e} "
                f"(~{MAX_SSA_EVENTS * _COST_EVENT / 86400:.0f} days on one core); "
                + ("split the trials over calls (trials=/trial_offset=) or use method='population'"
                   if n_tr > 1 else "use method='population' (its cost does not grow with the "
                   "channels' transitions), a shorter protocol or fewer channels"))

    # ----- memory plan (refuse before running)
    wide = N > _INT32_MAX
    item = 8 if wide else 4
    # an ssa thread's difference-array grid per sample: K counts, or on fine grids with at most 8
    # states and 32767 channels one packed 16-byte row (ensemble.hpp, PackedGridSink)
    grid = max(K * item, 16.0) if K <= 8 and N <= 32767 else K * item
    if record == "summary":
        if n_tr * N >= 2**63:
            raise ValueError(f"n_trials*n_channels={n_tr * N} overflows the int64 sums; split the trials")
        Kw = K + len(_summary_groups(scheme)[0])     # states, then the summary groups
        out_bytes = S * Kw * 24.0
        # thread 0 sums straight into the output; each other thread keeps its own sums (24 B per
        # entry); ssa threads also need a difference-array scratch grid
        work = (threads - 1) * S * Kw * 24.0 + (threads * S * (K * item + grid) if chosen == "ssa" else 0.0)
    else:
        out_bytes = float(n_tr) * S * K * item
        work = threads * (S + 1) * grid if chosen == "ssa" else 0.0
    # tables built before the run: ssa's per condition (_ssa_tables_bytes); population's
    # schedule and bounded tables (_population_plan_bytes)
    n_cond, n_seg = len(conds), len(durs)
    if chosen == "ssa":
        work += _ssa_tables_bytes(compiled, K, n_cond, n_tables)
    else:
        work += _population_plan_bytes(K, n_cond, n_seg, S, n_tr, threads)
    # the trial index array and the result's copy of it (8 B each per trial)
    index_bytes = 16.0 * n_tr if isinstance(trial_idx, range) else 8.0 * n_tr
    need = out_bytes + work + index_bytes
    if record == "counts":
        advice = "keep summaries only (record='summary'), or split the trials over calls (trials=/trial_offset=)"
    elif index_bytes > out_bytes + work:  # the summaries are small; the per-trial indices are not
        advice = ("split the trials over calls (trials=/trial_offset=): the trial indices alone take "
                  f"{index_bytes / 2**30:.3g} GiB (16 B per trial), and summaries of separate calls add up")
    else:
        advice = "reduce the number of samples (a larger dt or a shorter protocol)"
    memory_check = (need, advice, f"(method={chosen!r}, record={record!r}, {n_tr} trials x {S} samples x "
                                  f"{K} states; estimate {need / 2**30:.3g} GiB)")
    _check_plan_memory(memory_check)
    trial_idx = _trial_array(trial_idx)
    # last: a numpy Generator is drawn from, so a refused call must not have advanced it
    entropy = _rng.root_entropy(rng)

    est = ssa_cost if chosen == "ssa" else pop_cost
    plan = _Plan()
    plan.scheme = scheme
    plan.protocol = protocol
    plan.dt = dt
    plan.S = S
    plan.N = N
    plan.chosen = chosen
    plan.record = record
    plan.durs, plan.idx, plan.conds = durs, idx, conds
    plan.p0 = p0
    plan.compiled = compiled
    plan.threads_used = threads if est > _PARALLEL_ABOVE else 1
    plan.summary = record == "summary"
    plan.wide = wide
    plan.sq_object = _sq_object(n_tr, N)
    groups = _summary_groups(scheme)[0]
    plan.groups = groups if record == "summary" and len(groups) else None
    # (a cost that is not a finite number, say from an unusual rate estimate, runs cancellable;
    # ssa's tables are built on one thread before the trials run in parallel)
    serial = ssa_build if chosen == "ssa" else 0.0
    plan.background = not (est - serial) / plan.threads_used + serial <= _BACKGROUND_ABOVE
    plan.core = _core.simulate
    # Reusable when nothing depended on the moment: p0 must be the memoised (read-only) one;
    # large requests re-read the available memory on every reuse (in simulate, before rng).
    plan.cacheable = not p0.flags.writeable
    plan.need = need
    plan.memory_check = memory_check
    plan.tables = tables if chosen == "ssa" else None
    plan.pop_settings = _pop_settings()  # (read when the plan is made; a reused plan keeps them)
    plan.trial_idx = trial_idx
    plan.template = {"scheme": scheme, "protocol": protocol, "dt": dt, "n_samples": S, "method": chosen,
                     "record": record, "entropy": None, "trials": None, "n_channels": N, "initial": p0,
                     "counts": None, "version": __version__, "_sums": None, "_gsums": None, "_time": None,
                     "_V": None}
    return plan, entropy


#: Population runs: bytes of transition-matrix tables held at once, and of trial states kept
#: between chunks of them (None: the C++ defaults, ``_core.POP_TABLE_BYTES`` / ``POP_STATE_BYTES``).
#: They change speed and memory, never results; tests lower them to exercise the chunked path.
_POP_TABLE_BYTES = None
_POP_STATE_BYTES = None
#: Population runs of at least this many channels draw each step in column order (None: the C++
#: default, ``_core.POP_COLUMNS_MIN``).  Unlike the budgets this changes the draws (both orders
#: are exact); tests set it to run either order at any size.  A cached plan keeps the value it
#: was made with (``_pop_settings`` is read when the plan is made), so whoever changes it must
#: clear ``_PLANS`` too (the tests' helpers do).
_POP_COLUMNS_MIN = None


def _pop_settings() -> tuple[int, int, int]:
    """(table bytes, state bytes, columns threshold): the population core's settings."""
    from . import _core
    return (_core.POP_TABLE_BYTES if _POP_TABLE_BYTES is None else int(_POP_TABLE_BYTES),
            _core.POP_STATE_BYTES if _POP_STATE_BYTES is None else int(_POP_STATE_BYTES),
            _core.POP_COLUMNS_MIN if _POP_COLUMNS_MIN is None else int(_POP_COLUMNS_MIN))


def _population_dense_bytes(K: int, threads: int) -> float:
    """Dense K x K work of a population run whatever the protocol: one table slot and, per
    building thread, expm's matrices (population.hpp, PopulationTables)."""
    from . import _core
    return float(_core.population_slot_bytes(K)) + 8.0 * K * K * 10 * max(1, threads)


def _ssa_tables_bytes(compiled, K: int, n_cond: int, n_tables: int) -> float:
    """ssa.hpp SsaTables: per condition 24 B per state and 12 B per exit (reserved for every
    transition of the scheme), and a 512-entry next-state table per state (~1.05 kB) for the
    n_tables conditions that get one."""
    return n_cond * (24.0 * K + 12.0 * compiled.n_transitions) + n_tables * K * 1050.0


#: Grids up to this many samples have their population matrices counted exactly for the cost
#: model (a walk over the grid in C++, ~20 ms and at most ~60 MB of schedule at the limit, before
#: the memory check); longer ones are estimated.
_EXACT_KEYS_BELOW = 2 * 10**6


def _population_plan_bytes(K: int, n_cond: int, n_seg: int, S: int, n_tr: int, threads: int) -> float:
    """Upper bound on a population run's planning memory (population.hpp): the schedule (pieces
    of straddling intervals, runs, per-key bookkeeping), the tables of at most the table budget,
    and, when not every key's tables might fit at once, the trial states kept between chunks.
    A boundary lies in at most one grid interval, so at most min(segments, samples) intervals
    straddle: the keys are at most n_cond + that + 1 (the identity)."""
    from . import _core
    table_budget, state_budget, _ = _pop_settings()
    slot = _core.population_slot_bytes(K)
    n_straddle = min(n_seg, S)
    n_keys = n_cond + n_straddle + 1
    fit = max(1, table_budget // slot)
    # pieces of straddles (16 B, kept twice: the list and the map's keys), runs (28 B), keys
    # (44 B), a map node per straddle key (~80 B), a key index per condition (4 B)
    schedule = 32.0 * (n_seg + S) + 28.0 * S + 44.0 * n_keys + 80.0 * n_straddle + 4.0 * n_cond
    tables = float(min(n_keys, fit)) * slot
    states = 0.0 if n_keys <= fit else float(min(n_tr * _core.population_state_bytes(K), state_budget))
    return schedule + tables + states + _population_dense_bytes(K, threads)


#: Requests at least this large are re-checked against available memory on every call, a
#: reused plan's too (V_.check_memory skips its /proc read below this size).
_MEMORY_RECHECK_ABOVE = 256 * 2**20


def _check_plan_memory(memory_check: tuple) -> None:
    need, advice, detail = memory_check
    try:
        V_.check_memory("simulate", need, advice=advice)
    except ValueError as e:
        raise ValueError(f"{e} {detail}") from None


#: Memory of a :func:`simulate_events` log (bytes), beside its transitions.  Measured on
#: destexhe1994, 1 ms at 10 uM glutamate (~0.05 transitions per trial): the peak RSS (VmHWM,
#: reset through /proc/self/clear_refs before the call) grew by 584 B per trial over 2e5 trials
#: and 681 B over 1e6 (the audit: ~707 B over 2e6), where the plan counted 18 B; tracemalloc saw
#: 325 B of it on the Python side (261 B kept), the rest is the core's.  Per trial:
#: Python -- the log's two 1-D ndarrays (a ~112 B object, a ~32 B block of shape and strides
#: and a data block of at least ~32 B each), the core's (times, states) tuple and its list slot
#: (64 B, until the call returns), the log's two list slots (16 B), and the trial index in the
#: log's array and the core's copy (16 B);
_EVENTS_TRIAL_PY = 2 * (112 + 32 + 32) + 64 + 16 + 16
#: C++ -- two vectors (24 B each, and a 16 B allocation header for each of their buffers) ...
_EVENTS_TRIAL_CPP = 2 * (24 + 16)
#: ... whose buffers hold 12 B per transition (a float64 time and an int32 state), reserved for
#: the expected transitions (+ 16) of every trial; they are freed one trial at a time while the
#: log's arrays (12 B per transition too) are made, but in the worker threads' heaps, which
#: the arrays do not reuse: counted in full.
_EVENT_BYTES = 12.0


def _events_trial_bytes(reserve: int) -> float:
    """Bytes of one trial of a :func:`simulate_events` log whatever its transitions: its Python
    objects and the core's vectors reserved for ``reserve`` transitions."""
    return _EVENTS_TRIAL_PY + _EVENTS_TRIAL_CPP + _EVENT_BYTES * reserve


def _events_log_bytes(n_trials: int, events: float, reserve: int) -> float:
    """Peak bytes of a :func:`simulate_events` log of ``n_trials`` trials and ``events``
    transitions in all (an upper estimate, as ``events`` is): every trial's Python objects and
    vectors, the core's buffers (each trial's reserve, or the transitions where they are more:
    a vector that outgrows its reserve doubles, which the estimate's margin over the reserves
    covers) and the log's arrays."""
    fixed = float(n_trials) * (_EVENTS_TRIAL_PY + _EVENTS_TRIAL_CPP)
    return fixed + _EVENT_BYTES * max(float(n_trials) * reserve, events) + _EVENT_BYTES * events


class EventLog:
    """Single-channel event records from :func:`simulate_events`.

    ``log[i]`` is ``(times, states)`` of the trial at *position* ``i`` of the log, whose trial
    index is ``log.trials[i]``: ``times`` (float64, s) are the instants the channel entered
    ``states`` (int32 indices into ``log.state_names``); entry 0 is ``(0.0, initial state)``.
    The record ends at ``log.t_end`` (the protocol duration), so the last dwell is censored.
    ``log[a:b]`` (a slice, or a sequence of positions) is an EventLog of those trials.  The
    ``i`` of :meth:`dwells`, :meth:`open_dwells` and :meth:`shut_dwells` is a position too.

    Attributes
    ----------
    times, states : list of ndarray
    t_end : float
    entropy : int or tuple of int
    trials : ndarray of uint64
    state_names : tuple of str
    """

    def __init__(self, times, states, t_end, entropy, trials, scheme, protocol=None, initial=None) -> None:
        self.times = times
        self.states = states
        self.t_end = t_end
        self.entropy = entropy
        self.trials = trials
        self.scheme = scheme
        self.version = __version__
        # (what the trials were simulated under, for concatenate(); None in hand-built logs)
        self.protocol = protocol
        self.initial = initial

    @property
    def state_names(self) -> tuple[str, ...]:
        """Names of the states, indexed by the state codes in ``states``."""
        return self.scheme.states

    def __len__(self) -> int:
        return len(self.times)

    def _pos(self, i) -> int:
        """Position ``i`` (an int, negative from the end) checked against the log's length."""
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (numbers.Integral, np.integer)):
            raise TypeError(f"EventLog: a trial position must be an integer in [0, {len(self)}) "
                            f"(or a slice), got {type(i).__name__}")
        n = len(self)
        if not -n <= int(i) < n:
            raise IndexError(f"EventLog: position {int(i)} is out of range for {n} trial(s): "
                             "positions are 0 .. len(log) - 1; the trial indices are "
                             f"log.trials ({V_.plain(self.trials[:8])}{' ...' if n > 8 else ''})")
        return int(i)

    def __getitem__(self, i):
        if isinstance(i, slice) or (not isinstance(i, (numbers.Integral, np.integer))
                                    and isinstance(i, (Sequence, np.ndarray))):
            pos = range(len(self))[i] if isinstance(i, slice) else [self._pos(x) for x in i]
            return EventLog([self.times[k] for k in pos], [self.states[k] for k in pos], self.t_end,
                            self.entropy, self.trials[np.asarray(list(pos), dtype=np.int64)],
                            self.scheme, getattr(self, "protocol", None), getattr(self, "initial", None))
        k = self._pos(i)
        return self.times[k], self.states[k]

    def __iter__(self):
        return iter(zip(self.times, self.states))

    @property
    def n_events(self) -> np.ndarray:
        """Number of transitions in each trial."""
        return np.array([len(t) - 1 for t in self.times])

    def dwells(self, i: int = 0, *, include_last: bool = False):
        """Dwell durations (s) and the state of each dwell for the trial at position ``i`` of
        the log (trial index ``log.trials[i]``).  The final, censored dwell is dropped unless
        ``include_last``."""
        i = self._pos(i)
        t, s = self.times[i], self.states[i]
        ends = np.append(t[1:], self.t_end)
        d, st = ends - t, s
        if not include_last:
            d, st = d[:-1], st[:-1]
        return d, st

    def open_dwells(self, i: int = 0, *, include_first: bool = False, include_last: bool = False):
        """Durations (s) of sojourns in the open (conducting) subset of the trial at position
        ``i`` (trial index ``log.trials[i]``); consecutive
        dwells in different open states are merged into one opening.  The first sojourn (begun
        before t = 0) and the last (censored at ``t_end``) are dropped unless asked for."""
        return self._sojourns(i, self.scheme.open_mask, include_first, include_last)

    def shut_dwells(self, i: int = 0, *, include_first: bool = False, include_last: bool = False):
        """Durations (s) of sojourns in the shut subset (consecutive shut dwells merged)."""
        return self._sojourns(i, ~self.scheme.open_mask, include_first, include_last)

    def _sojourns(self, i, mask, include_first, include_last):
        i = self._pos(i)
        t, s = self.times[i], self.states[i]
        inside = mask[s]
        change = np.flatnonzero(np.diff(inside.astype(np.int8)) != 0) + 1
        starts = np.concatenate(([0], change))
        ends_t = np.append(t[change], self.t_end)
        durs = ends_t - t[starts]
        sel = inside[starts].copy()
        if not include_first:
            sel[0] = False
        if not include_last:
            sel[-1] = False
        return durs[sel]

    def __repr__(self) -> str:
        return f"EventLog({len(self)} trials, {int(self.n_events.sum())} transitions, t_end={self.t_end:g} s)"


def simulate_events(scheme: Scheme | str, protocol: Protocol | Step, n_trials: int | None = None,
                    rng: Any = None, *, initial: Any = None, trials: Iterable[int] | None = None,
                    trial_offset: int | None = None, n_threads: int | None = None,
                    max_events: int | None = None) -> EventLog:
    """Single-channel records: every transition of one channel per trial (exact SSA).

    Parameters
    ----------
    scheme : Scheme or str
        Kinetic scheme, or a library model name (as for :func:`simulate`).
    protocol : Protocol or Step
        Piecewise-constant conditions (s).
    n_trials : int, optional
        Number of trials (one channel each); default 1 or ``len(trials)``.
    rng : None, int, SeedSequence or Generator
        SPEC 7 root, as in :func:`simulate` (a Generator is drawn from, so repeated calls with
        it differ; the entropy is stored in the log); trial ``i`` uses the same stream as in
        :func:`simulate` (single channel).
    initial : optional
        Initial distribution (see :func:`ketacore.solve`); default: at rest under the protocol's
        ``rest_conditions``.
    trials, trial_offset : optional
        Absolute trial indices, as in :func:`simulate`.
    n_threads : int, optional
        Worker threads (default: all cores available to the process).  Results do not depend
        on it.
    max_events : int, optional
        Refuse the request if a rough upper estimate of the transitions over all trials (the
        estimated mean per trial plus a margin for its error and the trials' spread, at most the
        bound from the largest exit rates) exceeds this (default: whatever fits in 80% of
        available memory, as planned below).

    Returns
    -------
    EventLog

    Raises
    ------
    TypeError, ValueError
        Invalid arguments (named in the message); more transitions than ``max_events``; or a
        log that would not fit in 80% of available memory, refused before anything runs with
        the estimate in the message.  Memory is planned at ~0.7 kB per trial whatever its
        length (two arrays and their Python objects, and the core's buffers reserved for the
        expected transitions) plus 12-24 B per estimated transition, so many short trials
        cost far more than their transitions: ``n_trials=10**9`` needs ~700 GB.
    """
    scheme = _models.as_scheme(scheme)
    protocol = _check_scheme_protocol(scheme, protocol)
    if isinstance(n_trials, (float, np.floating)):
        # simulate(scheme, protocol, dt, ...) takes dt third; simulate_events takes n_trials
        raise TypeError(f"simulate_events: n_trials must be an integer, got float ({n_trials!r}); "
                        "its third argument is n_trials, not dt as in simulate() -- event logs "
                        "have no sampling grid")
    trial_idx = _resolve_trials(n_trials, trials, trial_offset)
    threads = _resolve_threads(n_threads)
    if max_events is not None:
        max_events = V_.integer("max_events", max_events, minimum=1)
    durs, idx, conds = protocol.compile(scheme)
    p0 = _initial(scheme, initial, protocol)
    compiled = scheme._compiled()
    rate, max_rate, _ = _condition_rates(compiled, conds, p0)
    from . import _core
    expected = float(np.sum(durs * rate[idx]))          # per trial (rough)
    upper = float(np.sum(durs * max_rate[idx]))         # per trial, bound on the mean
    n_tr = len(trial_idx)
    est_events = n_tr * min(upper, 1.5 * expected + 10 * math.sqrt(expected + 1) + 16)
    if max_events is not None and est_events > max_events:
        raise ValueError(f"simulate_events: up to about {est_events:.3g} transitions (a rough mean "
                         f"{n_tr * expected:.3g} plus a margin for its error and the trials' spread), "
                         f"more than max_events={max_events}")
    K = len(p0)
    tables = _ssa_table_mask(rate, durs, idx, float(n_tr), K)
    n_tables = int(np.count_nonzero(tables))
    # the log (per trial and per transition, _events_log_bytes) and the ssa tables as simulate
    # counts them
    tables_bytes = _ssa_tables_bytes(compiled, K, len(conds), n_tables)
    # each trial's vectors in the core are reserved for this many transitions
    reserve = int(min(1.2 * expected + 16, 1e7))
    log_bytes = _events_log_bytes(n_tr, est_events, reserve)
    try:
        V_.check_memory(f"simulate_events (n_trials={n_tr})", log_bytes + tables_bytes,
                        advice="reduce n_trials or the protocol duration, or split the trials over "
                               "calls (trials=/trial_offset=)")
    except ValueError as e:
        raise ValueError(
            f"{e} (~{_events_trial_bytes(reserve):.0f} B per trial for its record whatever its "
            f"length, plus up to about {est_events:.3g} transitions in all at "
            f"{_EVENT_BYTES:.0f}-{2 * _EVENT_BYTES:.0f} B each)") from None
    trial_idx = _trial_array(trial_idx)
    # last: a numpy Generator is drawn from, so a refused call must not have advanced it
    entropy = _rng.root_entropy(rng)
    words = _rng.entropy_words(entropy)
    # transitions and segment crossings (a pending dwell is redrawn at every boundary: a long
    # voltage ramp is mostly crossings) -- as simulate's cost model counts them
    n_cross, _ = _boundaries(durs, idx, float(protocol.duration), float(protocol.duration))
    est_cost = n_tr * (expected * _COST_EVENT + _COST_CHANNEL + n_cross * _COST_CROSSING)
    threads_used = threads if est_cost > _PARALLEL_ABOVE else 1
    # (the tables are built on one thread before the trials run)
    build = n_tables * K * 512 * _COST_TABLE + len(conds) * K * _COST_COND_STATE
    background = est_cost / threads_used + build > _BACKGROUND_ABOVE
    pairs = _core.simulate_events(compiled, durs, idx, conds, p0, words, trial_idx, threads_used, reserve,
                                  background, tables)
    return EventLog([p[0] for p in pairs], [p[1] for p in pairs], float(protocol.duration), entropy,
                    trial_idx, scheme, protocol, p0)


@overload
def concatenate(parts: "Sequence[SimulationResult]") -> "SimulationResult": ...


@overload
def concatenate(parts: "Sequence[EventLog]") -> "EventLog": ...


def concatenate(parts: Sequence[Any]) -> "SimulationResult | EventLog":
    """Join results of the same simulation run as several calls, e.g. on several machines.

    Trial ``i`` draws from a stream that depends only on the root entropy and ``i``, so the
    trials of one experiment can be split over calls, processes or machines
    (``trials=range(a, b)`` or ``trial_offset=``) and joined here: the result is the one a single
    call over all the trials gives, to the bit -- counts row for row (in the order of ``parts``),
    exact integer sums for ``record="summary"`` (whose memory does not grow with trials, so
    summaries of many machines join at the cost of one).

    Parameters
    ----------
    parts : sequence of SimulationResult, or sequence of EventLog
        Results of :func:`simulate` (or logs of :func:`simulate_events`) with the same scheme,
        protocol, ``dt`` (s), ``n_channels``, method, initial distribution, root entropy
        (``rng``) and ketacore version, and disjoint trials.

    Returns
    -------
    SimulationResult or EventLog
        Its trials are those of ``parts`` in order.  A :class:`SimulationResult` keeps the
        per-trial counts when every part has them and is a summary (``record="summary"``,
        exact sums and sums of squares, and the sums behind ``open_probability_var`` and
        ``current_var``) when any part is one; with only counts ``concatenate`` joins them
        row for row.

    Raises
    ------
    TypeError
        ``parts`` is not a sequence (list, tuple or NumPy array; e.g. a single result, an
        iterator, a dict or a str), or its items are not all :class:`SimulationResult` or
        all :class:`EventLog`.
    ValueError
        ``parts`` is empty (``kc.concatenate([])``); or the parts are not trials of one
        simulation (the first difference is named), or a trial occurs twice.

    Examples
    --------
    >>> import ketacore as kc
    >>> from ketacore.units import ms, mM
    >>> p = kc.Protocol([kc.Step(5 * ms, glutamate=1 * mM)])
    >>> a = kc.simulate("destexhe1994", p, 0.1 * ms, 100, rng=7, trials=range(0, 3))
    >>> b = kc.simulate("destexhe1994", p, 0.1 * ms, 100, rng=7, trials=range(3, 5))
    >>> whole = kc.simulate("destexhe1994", p, 0.1 * ms, 100, 5, rng=7)
    >>> bool((kc.concatenate([a, b]).counts == whole.counts).all())
    True
    """
    if isinstance(parts, (SimulationResult, EventLog)) or not isinstance(parts, (Sequence, np.ndarray)) \
            or isinstance(parts, (str, bytes)):
        raise TypeError("concatenate: parts must be a sequence (list or tuple) of SimulationResult "
                        f"or of EventLog, got {type(parts).__name__}")
    parts = list(parts)
    if not parts:
        raise ValueError("concatenate: parts is empty; give at least one SimulationResult or EventLog")
    kind = type(parts[0])
    if kind not in (SimulationResult, EventLog) or any(type(p) is not kind for p in parts):
        names = sorted({type(p).__name__ for p in parts})
        raise TypeError("concatenate: parts must all be SimulationResult or all EventLog, got "
                        + ", ".join(names))
    first = parts[0]

    def same(what: str, get, eq=lambda a, b: a == b, show=V_.plain) -> None:
        ref = get(first)
        for k, p in enumerate(parts[1:], 1):
            v = get(p)
            if not eq(ref, v):
                raise ValueError(f"concatenate: parts[0] and parts[{k}] differ in {what} "
                                 f"({show(ref)} and {show(v)}): they are not trials of one "
                                 "simulation, whose streams depend only on the root entropy and "
                                 "the trial index")

    def arrays_equal(a, b) -> bool:
        if a is None or b is None:
            return a is b
        return np.array_equal(np.asarray(a), np.asarray(b))

    def show_protocol(pr) -> str:
        if pr is None:
            return "none stored (a log made before protocols were kept, or built by hand)"
        return f"{len(pr.steps)} step(s), {pr.duration:g} s"

    same("ketacore version", lambda p: getattr(p, "version", None))
    same("root entropy (rng)", lambda p: p.entropy)
    same("scheme", lambda p: p.scheme, show=lambda s: repr(getattr(s, "name", s)))
    if kind is SimulationResult:
        same("protocol", lambda p: p.protocol, show=show_protocol)
        same("dt (s)", lambda p: p.dt)
        same("n_samples", lambda p: p.n_samples)
        same("n_channels", lambda p: p.n_channels)
        same("method", lambda p: p.method)
        same("initial distribution", lambda p: p.initial, arrays_equal,
             show=lambda v: V_.plain(np.asarray(v)))
    else:
        same("t_end (s)", lambda p: p.t_end)
        same("protocol", lambda p: getattr(p, "protocol", None), show=show_protocol)
        same("initial distribution", lambda p: getattr(p, "initial", None), arrays_equal,
             show=lambda v: V_.plain(None if v is None else np.asarray(v)))
    trials = np.concatenate([np.asarray(p.trials, dtype=np.uint64) for p in parts])
    uniq, cnt = np.unique(trials, return_counts=True)
    if uniq.size != trials.size:
        dup = uniq[cnt > 1]
        raise ValueError(f"concatenate: trial(s) {V_.plain(dup[:8])}{' ...' if dup.size > 8 else ''} "
                         "occur in more than one part; each trial must be counted once")
    if kind is EventLog:
        log = EventLog([t for p in parts for t in p.times], [s for p in parts for s in p.states],
                       first.t_end, first.entropy, trials, first.scheme,
                       getattr(first, "protocol", None), getattr(first, "initial", None))
        log.version = first.version
        return log
    common = dict(scheme=first.scheme, protocol=first.protocol, dt=first.dt, n_samples=first.n_samples,
                  method=first.method, entropy=first.entropy, trials=trials, n_channels=first.n_channels,
                  initial=first.initial)
    if all(p.counts is not None for p in parts):
        counts = np.concatenate([p.counts for p in parts], axis=0)
        out = SimulationResult(record="counts", counts=counts, **common)
    else:
        n, N = int(trials.size), int(first.n_channels)
        obj_s, obj_q = n * N >= 2**63, _sq_object(n, N)

        def add(arrays: list, obj: bool, dtype) -> np.ndarray:
            # exact: Python ints when the total may not fit, else the total fits the dtype
            # (every part's sum is at most the total)
            acc = np.zeros(arrays[0].shape, object if obj else dtype)
            for a in arrays:
                acc += np.asarray(a).astype(object if obj else dtype)
            return acc
        sums = [p._exact_sums() for p in parts]
        s = add([x[0] for x in sums], obj_s, np.int64)
        q = add([x[1] for x in sums], obj_q, np.uint64)
        gsums = None
        if len(_summary_groups(first.scheme)[0]):
            try:
                g = [p._group_sums() for p in parts]
            except ValueError:          # a summary without group sums: the joined one has none
                g = None
            if g is not None:
                gsums = (add([x[0] for x in g], obj_s, np.int64), add([x[1] for x in g], obj_q, np.uint64))
        out = SimulationResult(record="summary", sums=(s, q), group_sums=gsums, **common)
    out.version = first.version
    return out
