"""Exact deterministic solution of the master equation over a protocol.

``p(t + τ) = p(t) · expm(Q τ)`` within each piecewise-constant segment; the matrix exponential
(Higham 2005, doi:10.1137/04061101X) is computed once per unique condition and grid step and
reused across repeated segments.  Segment boundaries that fall between grid points are handled
exactly by a partial step.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from . import _core
from . import _validate as V_
from .protocol import Protocol, Step
from .scheme import Scheme

#: Largest number of output samples accepted before the memory check refuses.
_FLOAT_BYTES = 8


def initial_distribution(scheme: Scheme, initial: Any, protocol: Protocol | None = None) -> np.ndarray:
    """Resolve ``initial`` into an occupancy vector.

    Parameters
    ----------
    scheme : Scheme
    initial : None, str, mapping or array
        ``None`` or ``"equilibrium"``: channels at rest under the protocol's
        :attr:`~ketacore.Protocol.rest_conditions` (its ``rest`` -- for a
        :func:`~ketacore.pulse_train` the between-pulse conditions -- else the first step's);
        a state name: all channels in that state; a mapping of conditions
        (``{"V": -0.07, "glutamate": 1e-6}``): at rest under those conditions;
        an array of length ``n_states``: occupancy probabilities (≥ 0, summing to 1).
    protocol : Protocol, optional
        Needed for ``None``/``"equilibrium"``.

    Notes
    -----
    "At rest under conditions" is their equilibrium (:func:`ketacore.theory.equilibrium`) when
    it is unique.  With a trapping blocker present and no agonist it is not (unblocked and
    trapped closed states are separate absorbing classes); then it is the state reached from
    drug-free rest when the conditions are held indefinitely
    (:func:`ketacore.theory.rest_state`): channels that never opened hold no drug.  A blocker
    with a route onto shut channels -- the library ketamine and memantine, whose slow escape is
    balanced by one -- makes the equilibrium unique: the rest in drug is then an indefinite
    soak, [B]/(K_B + [B]) blocked (ketamine 1 µM, −70 mV: 57 %); for a drug-naive start pass
    the drug-free conditions, e.g. ``initial={"V": -0.07}``, or a state name.  The default
    (``None``) warns when it is such a soak (> 1 % blocked, no agonist activity at rest);
    ``"equilibrium"`` is the same start without the warning.  The default also warns when the
    protocol has no ``rest`` and its first step applies a ligand that the second step lowers
    below half within less than the slowest relaxation under the first step's conditions -- a pulse then
    a wash, which almost always means a response from rest, not from steady state in the pulse
    (``Protocol([Step(1 ms, glutamate=1 mM), Step(0.5 s)])``: pass ``rest=`` or ``initial=``).
    """
    K = scheme.n_states
    if type(initial) is np.ndarray and initial.shape == (K,) and initial.dtype == np.float64:
        # fast path (hot in loops over many short solves): one pass of checks
        vals = initial.tolist()  # plain floats: cheaper than numpy reductions for small K
        lo = min(vals)
        # (finite and >= 0 first: fsum raises its own error on inf - inf)
        tot = math.fsum(vals) if lo >= 0.0 and max(vals) < math.inf else math.nan
        if not (abs(tot - 1.0) <= 1e-9 and lo >= 0.0):
            if math.isnan(tot):  # (not summed above: a negative or non-finite entry)
                bad = next(v for v in vals if not (0.0 <= v < math.inf))
                raise ValueError("initial vector must be finite, non-negative and sum to 1, "
                                 f"got an entry {bad!r}")
            raise ValueError("initial vector must be finite, non-negative and sum to 1, "
                             f"got sum {tot!r}, min {lo!r}")
        # (a copy: results keep it, and the caller may reuse the array for another run)
        return initial.copy() if tot == 1.0 else initial / tot
    if initial is None or (isinstance(initial, str) and initial == "equilibrium"):
        if protocol is None:
            raise ValueError("initial='equilibrium' needs a protocol (its first step's conditions)")
        where = ("initial (rest under protocol.rest)" if protocol.rest is not None
                 else "initial (equilibrium under the first step)")
        with V_.quiet_units():  # (the Step warned about its concentrations when it was made)
            p = _equilibrium(scheme, protocol.rest_conditions, where)
        if initial is None:
            _warn_soak(scheme, protocol.rest_conditions, p)
            _warn_pulse_from_steady_state(scheme, protocol)
        return p
    if isinstance(initial, str):
        p = np.zeros(K)
        try:
            p[scheme.index(initial)] = 1.0
        except ValueError:
            raise ValueError(f"initial: unknown state {initial!r}{scheme._did_you_mean(initial)}; "
                             f"use a state name, 'equilibrium', "
                             f"a conditions mapping or a vector; states are {list(scheme.states)}") from None
        return p
    if isinstance(initial, Mapping):
        allowed = ("V", "temperature", *scheme.ligands)
        unknown = [k for k in initial if k not in allowed]
        if unknown:
            raise ValueError(f"initial: a conditions mapping takes {list(allowed)} (V in volts, "
                             f"temperature in K, concentrations in M), got {unknown}")
        return _equilibrium(scheme, dict(initial), "initial")
    if isinstance(initial, Step):
        cond = {"V": initial.V, "temperature": initial.temperature, **initial.concentrations}
        with V_.quiet_units():  # (warned when the Step was made)
            return _equilibrium(scheme, cond, "initial")
    try:
        raw = np.asarray(initial)
    except (TypeError, ValueError):
        raw = np.asarray(None)
    if raw.dtype.kind not in "iuf":  # not bool, complex, strings or objects
        raise TypeError("initial must be None, 'equilibrium', a state name, a conditions mapping "
                        f"or a real occupancy vector, got {type(initial).__name__}"
                        + (f" of dtype {raw.dtype}" if raw.dtype.kind != "O" else ""))
    p = np.array(raw, dtype=float)
    if p.ndim != 1:
        raise TypeError("initial must be None, 'equilibrium', a state name, a conditions mapping "
                        f"or an occupancy vector of length {K}, got {initial!r}")
    if p.shape != (K,):
        raise ValueError(f"initial vector must have shape ({K},), got {p.shape}")
    vals = p.tolist()
    bad = next((v for v in vals if not (0.0 <= v < math.inf)), None)
    if bad is not None:
        raise ValueError("initial vector must be finite, non-negative and sum to 1, "
                         f"got an entry {V_.plain(bad)}")
    tot = math.fsum(vals)
    # a vector normalised in its own precision (e.g. float32) sums to 1 within ~K eps of it
    eps = float(np.finfo(raw.dtype).eps) if raw.dtype.kind == "f" else 0.0
    tol = min(1e-4, max(1e-9, 4.0 * K * eps))      # (float16 is too coarse for occupancies)
    if not abs(tot - 1.0) <= tol:
        raise ValueError("initial vector must be finite, non-negative and sum to 1, "
                         f"got sum {V_.plain(tot)}, min {V_.plain(min(vals))}"
                         + (f" (tolerance {tol:.3g} for dtype {raw.dtype})" if tol > 1e-9 else ""))
    return p / tot


def _equilibrium(scheme: Scheme, cond: dict, where: str) -> np.ndarray:
    """Channels at rest under ``cond`` (:func:`ketacore.theory.rest_state`)."""
    from .theory import NoUniqueEquilibrium, rest_state
    try:
        return rest_state(scheme, **cond)
    except NoUniqueEquilibrium as e:
        raise ValueError(f"{where}: {e}; start from a state name (initial={scheme.states[0]!r}; "
                         f"states: {list(scheme.states)[:8]}{' ...' if scheme.n_states > 8 else ''}), "
                         "a vector, or theory.equilibrium(scheme, initial=..., **conditions)") from None
    except ValueError as e:  # e.g. a ligand the scheme does not know
        raise ValueError(f"{where}: {e}") from None


#: The default start warns when a drug with a route onto shut channels holds more than this
#: fraction of channels at rest without agonist activity (:func:`_warn_soak`).
SOAK_WARN_FRACTION = 0.01


def _soaked(scheme: Scheme, cond: dict, p: np.ndarray) -> list:
    """``[(blocker, fraction)]`` for each blocker that the start ``p`` (the rest under ``cond``)
    holds on more than :data:`SOAK_WARN_FRACTION` of the channels having reached them only
    through its slow route onto shut channels: a drug in ``cond`` with no agonist activity
    (drug-free gating Po < 1e-6) and a closed route (the library ketamine's and memantine's
    balance their escape) -- an indefinite soak.  Used by :func:`_warn_soak` and by studies."""
    comp = getattr(scheme, "_blocker_composition", None)
    if comp is None:
        return []
    slow = [b for b in comp.blockers
            if cond.get(b.ligand, 0.0) > 0 and b.mode != "sequential"
            and b.effective_k_on_closed > 0]
    if not slow:
        return []
    from .theory import equilibrium
    gating = comp.gating
    try:
        pg = equilibrium(gating, **{k: v for k, v in cond.items()
                                    if k in ("V", "temperature") or k in gating.ligands})
    except ValueError:
        return []
    if float(pg[gating.open_mask].sum()) >= 1e-6:
        return []                   # agonist activity at rest: the open-channel route acts too
    out = []
    for b in slow:
        m = float(sum(p[i] for i, st in enumerate(scheme.states)
                      if b.name in st.split("·")[1:]))   # (X·b, or X·b·c on several sites)
        if m > SOAK_WARN_FRACTION:
            out.append((b, m))
    return out


def _warn_soak(scheme: Scheme, cond: dict, p: np.ndarray) -> None:
    """UserWarning when the default start (rest under the protocol's rest conditions) holds a
    blocker that reached the channels only through its slow route onto shut channels
    (:func:`_soaked`) -- an indefinite soak, which a protocol whose first step applies the drug
    rarely means.  ``initial="equilibrium"`` keeps this start without the warning."""
    soaked = _soaked(scheme, cond, p)
    if not soaked:
        return
    import warnings
    for b, m in soaked:
        warnings.warn(
            f"initial: the default start is the rest under the protocol's rest conditions "
            f"({b.ligand} = {cond[b.ligand]:g} M, no agonist), where {m:.1%} of the channels "
            f"hold {b.ligand}: reached through its slow route onto shut channels (an "
            f"indefinite soak; closed_route={b.closed_route!r}).  For a drug-naive start "
            f"pass the drug-free conditions, e.g. initial={{'V': {cond.get('V', -0.07):g}}}; "
            f"initial='equilibrium' keeps this start without this warning", UserWarning,
            stacklevel=V_.user_stacklevel())


def _pulse_end(protocol, ligand: str, c0: float, V: float) -> "float | None":
    """Time (s) at which ``ligand`` first falls below ``c0 / 2`` in ``protocol`` with the
    voltage still ``V`` (the drop itself may come with another voltage) and the ligand never
    above ``c0`` until then (a concentration pulse
    started at its peak, however finely sampled: a from_waveform transient is many steps; a
    waveform that rises first, e.g. a sinusoid, is not one); None when it does not within the
    first 65536 samples of a sampled protocol (one vectorised pass) or 128 Steps (a Python
    loop, so a long protocol in a constant ligand costs ~30 us), or the voltage changes first
    (a voltage protocol in the ligand: its start is meant)."""
    cols = protocol._columns if protocol._built is None else None
    if cols is not None:
        durs, Vs, _, cs = cols
        c = cs.get(ligand)
        n = min(durs.size, 65536)
        low = np.flatnonzero((c[:n] < 0.5 * c0) if c is not None else np.ones(n, bool))
        moved = np.flatnonzero(Vs[:n] != V)
        if not low.size or (moved.size and moved[0] < low[0]):   # (a wash at another V: a pulse)
            return None
        if c is not None and np.max(c[:low[0]]) > c0:    # (rises first: not a pulse's end)
            return None
        return float(np.sum(durs[:low[0]]))
    # (the same rule as above over Steps, in a plain loop: numpy arrays of a few Steps cost
    # ~9 us more per solve -- measured with timeit on a two-step protocol, 2.8 vs 11.7 us)
    t = 0.0
    for i, st in enumerate(protocol._steps[:128]):
        c = st.concentrations.get(ligand, 0.0)
        if c < 0.5 * c0:                 # (before the voltage: a wash at another V still ends it)
            return t if i > 0 else None
        if st.V != V or c > c0:
            return None
        t += st.duration
    return None


def _warn_pulse_from_steady_state(scheme: Scheme, protocol) -> None:
    """UserWarning when the default start is almost surely not the one meant: no ``rest``, a
    first step that applies a ligand which the protocol then lowers below half (a pulse, then
    a wash; a sampled transient counts from its first sample) at the same voltage, before the
    slowest relaxation under the first step's conditions -- the channels then start at
    equilibrium *in* the pulse (desensitised, no rise), not at rest.  The first thing a
    synaptic modeller writes, ``Protocol([Step(1 ms, glutamate=1 mM), Step(500 ms)])``, gave a
    plausible-looking decay with no rise (helper-100's audit).  Stationary runs (one step, or
    no ligand drop), voltage jumps (the start is meant at the holding potential) and a pulse
    long enough to relax are not warned about; ``initial="equilibrium"`` keeps the start
    without the warning, ``rest=`` or ``initial=`` give another."""
    if protocol.rest is not None or len(protocol) < 2:
        return
    a = protocol._step_at(0)
    # (a drop to below half: a pulse ending; a waveform drifting from its first sample, e.g.
    # a sinusoidal or slowly decaying concentration, is not this pattern until it halves)
    ends = {}
    for k, c in a.concentrations.items():
        if c > 0.0 and k in scheme.ligands:
            t_end = _pulse_end(protocol, k, c, a.V)
            if t_end is not None:
                ends[k] = t_end
    if not ends:
        return
    cond = {"V": a.V, "temperature": a.temperature, **a.concentrations}
    from .theory import NoUniqueEquilibrium, equilibrium
    try:
        with V_.quiet_units():
            lam = np.linalg.eigvals(scheme.q_matrix(**cond))
            rates = np.sort(np.abs(lam.real))
            nonzero = rates[rates > 1e-12 * max(rates[-1], 1e-300)]
            if not nonzero.size:
                return
            tau = 1.0 / nonzero[0]
            changed = [k for k, t_end in ends.items() if t_end < tau]
            if not changed:      # (the pulse relaxes before it ends: the start does not matter)
                return
            # only agonists: a ligand whose removal lowers the open probability at equilibrium
            # (or leaves no unique one: nothing gates the channels).  A blocker's washout --
            # recovery from a steady-state block, Mg2+ or ketamine -- is meant to start there.
            g = np.asarray(scheme.conductance, float) > 0
            po = float(equilibrium(scheme, **cond)[g].sum())
            agonists = []
            for k in changed:
                try:
                    without = float(equilibrium(scheme, **{**cond, k: 0.0})[g].sum())
                except NoUniqueEquilibrium:
                    without = -1.0
                if without < po:
                    agonists.append(k)
    except (ValueError, np.linalg.LinAlgError):  # pragma: no cover - checked elsewhere
        return
    changed = agonists
    if not changed:
        return
    import warnings
    what = ", ".join(f"{k} = {a.concentrations[k]:g} M" for k in changed)
    t_end = min(ends[k] for k in changed)
    warnings.warn(
        f"initial: the default start is the equilibrium under the first step's conditions "
        f"({what}), which the protocol lowers below half after {t_end:g} s -- less than the "
        f"slowest relaxation ({tau:.3g} s) under them, so the run starts from steady state in "
        f"the pulse (for a receptor: partly desensitised, no rise), not from rest.  For a "
        f"response from rest pass rest=kc.Step(...) to the Protocol (as kc.pulse_train does) "
        f"or initial= (a state name or conditions, e.g. initial={{'V': {a.V:g}}}); "
        f"initial='equilibrium' keeps this start without this warning", UserWarning,
        stacklevel=V_.user_stacklevel())


class Result:
    """Deterministic solution on a grid (per channel).

    Attributes
    ----------
    time : ndarray, shape (n,)
        Sample times (s), ``k·dt``.
    occupancy : ndarray, shape (n, n_states)
        Probability of each state at each sample.
    states : tuple of str
    scheme : Scheme
    protocol : Protocol
    dt : float
        Grid step (s).
    """

    def __init__(self, scheme: Scheme, protocol: Protocol, dt: float, occupancy: np.ndarray,
                 initial: np.ndarray) -> None:
        self.scheme = scheme
        self.protocol = protocol
        self.dt = dt
        self.occupancy = occupancy
        self.initial = initial
        self._time = None

    @property
    def states(self) -> tuple[str, ...]:
        """Names of the states (the last axis of ``occupancy``)."""
        return self.scheme.states

    @property
    def time(self) -> np.ndarray:
        """Sample times ``k*dt`` (s)."""
        if self._time is None:
            self._time = np.arange(self.occupancy.shape[0]) * self.dt
        return self._time

    @property
    def V(self) -> np.ndarray:
        """Voltage (V) at each sample (the step in force at that time)."""
        return self.protocol.voltage_at(self.time, self.dt)

    @property
    def open_probability(self) -> np.ndarray:
        """Probability of being in a conducting state, shape (n,)."""
        return self.occupancy[:, self.scheme.open_mask].sum(axis=1)

    @property
    def conductance(self) -> np.ndarray:
        """Mean single-channel conductance (S), shape (n,)."""
        return self.occupancy @ self.scheme.conductance

    @property
    def current(self) -> np.ndarray:
        """Mean single-channel current (A), ``Σ p_i g_i (V − E_rev)``, shape (n,)."""
        return self.conductance * (self.V - self.scheme.e_rev)

    def __getitem__(self, state: str) -> np.ndarray:
        """Occupancy time course of one state."""
        return self.occupancy[:, self.scheme.index(state)]

    def to_xarray(self):
        """An ``xarray.Dataset`` (requires the optional dependency xarray)."""
        try:
            import xarray as xr
        except ImportError:  # pragma: no cover - optional dependency
            raise ImportError("to_xarray() needs xarray: pip install 'ketacore[xarray]'") from None
        ds = xr.Dataset(
            {"occupancy": (("time", "state"), self.occupancy),
             "open_probability": ("time", self.open_probability),
             "current": ("time", self.current),
             "V": ("time", self.V)},
            coords={"time": self.time, "state": list(self.states)},
            attrs={"method": "master equation (exact)", "scheme": self.scheme.name,
                   "dt": self.dt})
        docs = {"time": ("s", "time since the start of the protocol"),
                "state": ("1", "kinetic state"),
                "occupancy": ("1", "state occupancy (probability), master equation"),
                "open_probability": ("1", "open probability (probability of a conducting state)"),
                "current": ("A", "expected single-channel current (per channel)"),
                "V": ("V", "membrane voltage")}
        for name, (units, long_name) in docs.items():
            ds[name].attrs.update(units=units, long_name=long_name)
        return ds

    def __repr__(self) -> str:
        return (f"Result({self.occupancy.shape[0]} samples x {self.occupancy.shape[1]} states, "
                f"dt={self.dt:g} s, scheme={self.scheme.name!r})")


def solve(scheme: Scheme | str, protocol: Protocol | Step, dt: float, initial: Any = None) -> Result:
    """Solve the master equation exactly over ``protocol`` on the grid ``t_k = k·dt``.

    Parameters
    ----------
    scheme : Scheme or str
        The kinetic scheme, or the name of a library model (:func:`ketacore.models.get`).
    protocol : Protocol or Step
        Piecewise-constant conditions.
    dt : float
        Output grid step (s), > 0.  It does not affect accuracy: the solution is exact at every
        grid point whatever ``dt``.
    initial : None, str, mapping or array, optional
        Initial occupancy; see :func:`initial_distribution`.  Default: at rest under the
        protocol's ``rest_conditions`` (a pulse train's between-pulse conditions, else the
        first step's).

    Returns
    -------
    Result
    """
    from .models import as_scheme
    scheme = as_scheme(scheme)  # a library model name, as everywhere
    if not isinstance(scheme, Scheme):
        raise TypeError(f"scheme must be a ketacore.Scheme or a model name "
                        f"(ketacore.models.available()), got {type(scheme).__name__}")
    if type(protocol) is not Protocol:
        if isinstance(protocol, Step):
            protocol = Protocol([protocol])
        elif not isinstance(protocol, Protocol):
            raise TypeError(f"protocol must be a ketacore.Protocol or Step, got {type(protocol).__name__}")
    if type(dt) is not float or not 0.0 < dt < math.inf:
        dt = V_.real("dt", dt, positive=True)
    n = protocol.n_samples(dt)
    if n * scheme.n_states > 2**25:
        V_.check_memory("solve", float(n) * scheme.n_states * _FLOAT_BYTES,
                        advice="use a coarser dt or a shorter protocol (the solution is exact at "
                               "every grid point whatever dt), or solve the protocol in parts")
    durs, idx, conds = protocol.compile(scheme)
    # dense K x K work (master.hpp TransitionMatrixCache): Q, P(dt) and the partial steps (at
    # most 4096 in all) of the conditions used by several segments -- one used by a single
    # segment (a sampled trace: one per sample) keeps nothing --, scratch and expm's workspace
    K = scheme.n_states
    # (check_memory ignores requests below 2^28 bytes: the bound with every condition kept,
    # free to compute, settles the common case without counting uses -- 12 us per call)
    if 8.0 * K * K * (2 * len(conds) + min(4096, 2 * len(idx)) + 12) > 2**28:
        uses = np.bincount(idx, minlength=len(conds))
        kept = int(np.count_nonzero(uses > 1))
        kept_segments = int(uses[uses > 1].sum())
        dense = 8.0 * K * K * (2 * kept + min(4096, 2 * kept_segments) + 12)
        if dense > 2**28:
            V_.check_memory(f"solve ({K} states, dense K x K matrices)", dense,
                            advice="use a scheme with fewer states or fewer distinct conditions")
    p0 = initial_distribution(scheme, initial, protocol)
    occ = _core.solve_master(scheme._compiled(), durs, idx, conds, dt, n, p0)
    return Result(scheme, protocol, dt, occ, p0)


__all__ = ["solve", "Result", "initial_distribution"]
