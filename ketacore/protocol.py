"""Protocols: piecewise-constant conditions (voltage, ligand concentrations, temperature).

A :class:`Protocol` is a sequence of :class:`Step` segments.  Engines are exact for
piecewise-constant conditions; smooth waveforms are represented by sampling
(:meth:`Protocol.from_waveform`, zero-order hold), which is then the exact input.

Builders: :class:`Step`, :func:`pulse_train`, :meth:`Protocol.from_waveform`,
``protocol + protocol``, ``protocol * n`` (repeat).
"""
from __future__ import annotations

import collections.abc as _abc

import math
import sys
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from . import _validate as V_

#: Protocols of at most this many steps hash all their Steps (see Protocol.__hash__): as fast
#: as before for Steps protocols (a 200-step pulse train: ~10 µs; its columns would take ~100
#: µs), ~3 µs per sample once for a column protocol (its Steps built for the hash, not kept).
_HASH_ALL_STEPS = 4096
#: Holding potential (V) used when a step does not give one: −70 mV.
DEFAULT_V = -0.070
#: Largest number of steps (or from_waveform samples) a protocol may have.  A Step costs ~1–3 µs
#: and ~300–700 bytes in Python, so 10 million Steps take ~5 GB; a from_waveform protocol keeps
#: its samples as arrays (8 bytes per sample and column) and builds Steps only when asked for
#: them.  Repeat long experiments as separate runs instead.
MAX_STEPS = 10_000_000
#: Largest number of grid points ``Protocol.n_samples`` accepts: 2**53, beyond which the grid
#: index ``k`` of ``t_k = k·dt`` is no longer exact in a double.
MAX_GRID_POINTS = 2**53
#: Smallest grid step ``dt`` (s): the smallest normal double, so that ``1/dt`` is finite.
MIN_DT = sys.float_info.min
#: Step parameters that cannot be ligand names in ``during``/``between``.
_STEP_PARAMS = ("duration", "V", "temperature")
_INF = math.inf
_MAX_V = V_.MAX_ABS_VOLTAGE
_MAX_C = V_.MAX_CONCENTRATION
_PLAUSIBLE_C = V_.PLAUSIBLE_CONCENTRATION  # Step's fast path: larger values take V_.concentration (UnitsWarning)


def _step_from_dict(d: dict) -> "Step":
    return Step(**d)


class Step:
    """One segment of constant conditions.

    Parameters
    ----------
    duration : float
        Length of the segment (s), > 0.
    V : float, default -0.07
        Membrane voltage (V).
    temperature : float, optional
        Temperature (K); ``None`` uses the scheme's own temperature.
    **concentrations : float
        Ligand concentrations (M).  Ligands not named are 0 during this step.

    Examples
    --------
    >>> from ketacore.units import s, mV, mM, uM
    >>> Step(30 * s, V=-70 * mV, glutamate=1 * mM, ketamine=10 * uM)  # doctest: +SKIP
    """

    __slots__ = ("duration", "V", "temperature", "concentrations", "_key", "_hash")

    def __init__(self, duration: float, V: float = DEFAULT_V, temperature: float | None = None,
                 **concentrations: float) -> None:
        # Fast paths accept only exact floats inside the allowed ranges (NaN fails every
        # comparison); anything else goes through the full checks in ketacore._validate.
        if not (type(duration) is float and 0.0 < duration < _INF):
            duration = V_.duration("duration", duration)
        if not (type(V) is float and -_MAX_V <= V <= _MAX_V):
            V = V_.voltage("V", V)
        if temperature is not None:
            temperature = V_.temperature("temperature", temperature)
        if concentrations:
            conc = []
            for k, c in concentrations.items():
                if not (type(c) is float and 0.0 <= c <= _PLAUSIBLE_C):
                    c = V_.concentration(k, c)
                if c != 0.0:
                    conc.append((k, c))
            if len(conc) > 1:
                conc.sort()
            items = tuple(conc)
        else:
            items = ()
        _fill_step(self, duration, V, temperature, items,
                   MappingProxyType(dict(items)) if items else _NO_CONCENTRATIONS)

    @classmethod
    def _trusted(cls, duration: float, V: float, temperature: "float | None", items: tuple,
                 shared: dict) -> "Step":
        """A Step from values already checked as ``__init__`` checks them (floats; ``items``
        the sorted ``(ligand, M)`` pairs with non-zero concentrations); ``shared`` maps items to
        one read-only concentrations mapping, reused by the steps that have the same."""
        st = object.__new__(cls)
        conc = shared.get(items)
        if conc is None:
            conc = shared[items] = MappingProxyType(dict(items)) if items else _NO_CONCENTRATIONS
        _fill_step(st, duration, V, temperature, items, conc)
        return st

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Step is immutable (cannot set {name!r}); use step.replace({name}=...)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Step is immutable (cannot delete {name!r})")

    def __reduce__(self):
        return (_step_from_dict, (self.to_dict(),))

    def conditions_key(self) -> tuple:
        """Hashable key of the step's conditions (V in V, temperature in K, concentrations in M),
        without its duration."""
        return self._key

    def replace(self, **kw: Any) -> "Step":
        """A copy with some fields changed (``duration`` s, ``V`` V, ``temperature`` K,
        concentrations M), validated again."""
        d = {"duration": self.duration, "V": self.V, "temperature": self.temperature,
             **self.concentrations}
        d.update(kw)
        return Step(**d)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Step):
            return NotImplemented
        return self.duration == other.duration and self._key == other._key

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        parts = [f"{self.duration!r}", f"V={self.V!r}"]
        if self.temperature is not None:
            parts.append(f"temperature={self.temperature!r}")
        parts += [f"{k}={v!r}" for k, v in self.concentrations.items()]
        return f"Step({', '.join(parts)})"

    def to_dict(self) -> dict[str, Any]:
        """Plain data of the step (SI numbers), the form a study segment table takes."""
        d: dict[str, Any] = {"duration": self.duration, "V": self.V}
        if self.temperature is not None:
            d["temperature"] = self.temperature
        d.update(self.concentrations)
        return d

    def __add__(self, other: "Step | Protocol") -> "Protocol":
        """``step + step_or_protocol``: the protocol of the two in order (as ``Protocol + ...``)."""
        if isinstance(other, (Protocol, Step)):
            return Protocol([self, other])
        return NotImplemented

    def __mul__(self, n: int) -> "Protocol":
        """``step * n``: the protocol of ``n`` copies (as ``Protocol * n``)."""
        return Protocol([self]) * n

    __rmul__ = __mul__


#: Step's own argument names: a ligand cannot be called one of these (Step(**) refuses them).
_STEP_ARGS = frozenset({"self", "duration", "V", "temperature"})
_set_duration = Step.duration.__set__
_set_V = Step.V.__set__
_set_temperature = Step.temperature.__set__
_set_concentrations = Step.concentrations.__set__
_set_key = Step._key.__set__
_set_hash = Step._hash.__set__
_NO_CONCENTRATIONS = MappingProxyType({})


def _fill_step(st: Step, duration: float, V: float, temperature: "float | None", items: tuple,
               conc: Mapping) -> None:
    """Set a new Step's slots from checked values (the one place both constructors do it):
    slot descriptors' setters bypass the immutability guard, cheaper than object.__setattr__."""
    key = (V, temperature, items)
    _set_duration(st, duration)
    _set_V(st, V)
    _set_temperature(st, temperature)
    _set_concentrations(st, conc)
    _set_key(st, key)
    _set_hash(st, hash((duration, key)))


class Protocol:
    """A sequence of :class:`Step` segments (piecewise-constant conditions).

    Parameters
    ----------
    steps : iterable of Step (or Protocol)
        Segments in time order; nested protocols are flattened.
    rest : Step or mapping, optional
        Conditions (its ``V``, ``temperature`` and concentrations; its duration is not used)
        under which the channels sit before the protocol starts: ``solve``/``simulate`` with
        ``initial=None`` or ``"equilibrium"`` start from the equilibrium under them.  Default:
        the ``rest`` of a leading nested protocol (so ``train + step`` keeps the train's), else
        the first step's conditions.  :func:`pulse_train` sets it to the between-pulse
        conditions, so a train starts from rest, not from the steady state of its first pulse.
        A mapping ``{"V": V, "temperature": K, ligand: M}`` gives the same as the Step of those
        keyword arguments (``V`` default -0.07 V, ``temperature`` the scheme's, ligands not
        named 0), checked as :func:`pulse_train`'s ``rest``: ``Protocol(steps, rest={"V":
        -0.07, "ketamine": 1e-6})`` equals (and hashes as) ``Protocol(steps,
        rest=Step(1.0, V=-0.07, ketamine=1e-6))``; :attr:`rest` is then a Step of 1 s.

    Raises
    ------
    ValueError
        If there are no steps, more than :data:`MAX_STEPS` steps, or the total duration is not
        finite; or a ``rest`` mapping has a ``duration`` key or a value out of range (named).
    TypeError
        If ``steps`` is not an iterable of Step/Protocol objects, or ``rest`` is neither a Step
        nor a mapping (or has a key that is not a non-empty string).
    """

    __slots__ = ("_built", "_compile_cache", "_bounds", "_hash", "_rest", "_columns")

    def __init__(self, steps: Iterable["Step | Protocol"],
                 rest: "Step | Mapping[str, Any] | None" = None) -> None:
        flat: list[Step] = []
        tp = type(steps)
        if rest is not None and type(rest) is not Step:
            rest = _rest_argument(rest)
        self._rest = rest
        if (tp is list or tp is tuple) and len(steps) <= 64 and all(type(st) is Step for st in steps):
            # fast path (hot: solve/simulate wrap every Step): plain Steps, finite durations
            if not steps:
                raise ValueError("a protocol needs at least one step")
            total = 0.0
            for st in steps:
                total += st.duration
            if total < _INF:
                self._set_steps(tuple(steps))
                return
        if isinstance(steps, (Step, Protocol)):
            steps = [steps]
        elif isinstance(steps, (str, bytes, _abc.Mapping)) or not isinstance(steps, _abc.Iterable):
            raise TypeError(f"Protocol(steps): steps must be an iterable of Step or Protocol "
                            f"objects, got {type(steps).__name__} ({steps!r})")
        elif isinstance(steps, (list, tuple)) and len(steps) > MAX_STEPS:
            _too_many_steps("Protocol(steps)", len(steps))
        if not isinstance(steps, (list, tuple)):
            steps = list(steps)  # (may be iterated again below)
        tried = False
        for st in steps:
            if isinstance(st, Protocol):
                if st._built is None and not tried:
                    tried = True
                    if self._init_columns(steps):
                        return  # from_waveform parts: the result keeps columns too
                if not flat and self._rest is None:  # a leading protocol's rest
                    self._rest = st._rest
                if len(flat) + len(st._steps) > MAX_STEPS:
                    _too_many_steps("Protocol(steps)", len(flat) + len(st._steps))
                flat.extend(st._steps)
            elif isinstance(st, Step):
                flat.append(st)
            else:
                raise TypeError(f"protocol steps must be Step or Protocol objects, got {type(st).__name__}")
        if not flat:
            raise ValueError("a protocol needs at least one step")
        if len(flat) > MAX_STEPS:
            _too_many_steps("Protocol(steps)", len(flat))
        total = sum([st.duration for st in flat])  # all > 0: overflows to inf iff the sum does
        if not total < _INF:
            raise ValueError(
                f"Protocol: the total duration of the {len(flat)} steps is not finite (sum of "
                f"durations overflows, largest step {max(st.duration for st in flat):g} s); "
                f"durations are in seconds")
        self._set_steps(tuple(flat))

    def _init_columns(self, parts: "list | tuple") -> bool:
        """Set up a protocol of ``parts`` (a from_waveform protocol among them) as columns, with
        the checks and messages of the Steps path; False (nothing set) when the Steps path
        serves better: a part of another temperature (a column protocol has one), or Steps
        holding most of the samples (their Steps are then shared, not rebuilt)."""
        n = lazy = 0
        for st in parts:
            if isinstance(st, Protocol):
                k = len(st)
                if n + k > MAX_STEPS:  # (where and as the Steps path counts)
                    _too_many_steps("Protocol(steps)", n + k)
                n += k
                if st._built is None:
                    lazy += k
            elif isinstance(st, Step):
                n += 1
            else:
                raise TypeError(f"protocol steps must be Step or Protocol objects, got {type(st).__name__}")
        if n > MAX_STEPS:
            _too_many_steps("Protocol(steps)", n)
        if 2 * lazy < n:
            return False
        columns = _concat_columns(parts)
        if columns is None:
            return False
        with np.errstate(over="ignore"):
            total = float(np.sum(columns[0]))
        if not total < _INF:  # all > 0: overflows to inf iff the sum does
            raise ValueError(
                f"Protocol: the total duration of the {n} steps is not finite (sum of "
                f"durations overflows, largest step {float(columns[0].max()):g} s); "
                f"durations are in seconds")
        if self._rest is None and isinstance(parts[0], Protocol):  # a leading protocol's rest
            self._rest = parts[0]._rest
        self._set_steps(None, columns)
        return True

    def _set_steps(self, steps: "tuple | None", columns: "tuple | None" = None) -> None:
        """The steps (checked) and empty caches: the one place the constructors set them.
        ``steps`` is None for a from_waveform protocol, whose Steps are built from ``columns``
        when first needed (:attr:`_steps`)."""
        self._built = steps
        self._compile_cache: dict = {}
        self._bounds = None
        self._hash = None
        # from_waveform: the sampled columns, (durations, V, temperature, {ligand: M} of the
        # ligands not zero throughout), checked as Step checks them -- compile, boundaries,
        # len, ligands, voltage_at, == and pickling work from them without building a Step per
        # sample (~3 us and ~700 bytes each)
        if columns is not None:  # (private arrays: read-only, so no copy can change another's)
            for a in (columns[0], columns[1], *columns[3].values()):
                a.setflags(write=False)
        self._columns = columns

    @property
    def _steps(self) -> tuple:
        """The Steps (a from_waveform protocol builds them from its columns on first use)."""
        st = self._built
        if st is None:
            st = self._built = _steps_from_columns(*self._columns)
        return st

    @classmethod
    def _trusted(cls, steps: tuple, rest: "Step | None" = None) -> "Protocol":
        """A protocol of ``steps``, a non-empty tuple of at most MAX_STEPS Steps whose total
        duration is finite (the caller knows; nothing is checked)."""
        self = object.__new__(cls)
        self._rest = rest
        self._set_steps(steps)
        return self

    @property
    def steps(self) -> tuple[Step, ...]:
        """The steps as :class:`Step` objects (built on first use for a waveform protocol)."""
        return self._steps

    @property
    def duration(self) -> float:
        """Total length (s)."""
        return float(self.boundaries[-1])

    @property
    def boundaries(self) -> np.ndarray:
        """Segment boundaries (s), length ``n_steps + 1``, starting at 0 (compensated sums)."""
        # Two implementations of one Kahan sum, on purpose: the C++ one (protocol.hpp, the engines'
        # own) for column protocols, the Python loop for Steps (one step: 0.9 us, where building
        # an array for the C++ call costs 3.2 us on every solve/simulate of a fresh Step);
        # tests/test_protocol.py checks that they agree to the bit.
        if self._bounds is None and self._built is None:
            from . import _core
            b = _core.segment_boundaries(self._columns[0])
            b.setflags(write=False)
            self._bounds = b
        if self._bounds is None:
            b = np.empty(len(self._steps) + 1)
            b[0] = 0.0
            s = comp = 0.0
            for i, st in enumerate(self._steps):  # Kahan sum, as the C++ core does
                y = st.duration - comp
                t = s + y
                comp = (t - s) - y
                s = t
                b[i + 1] = s
            b.setflags(write=False)
            self._bounds = b
        return self._bounds

    @property
    def ligands(self) -> tuple[str, ...]:
        """All ligand names used by any step (sorted)."""
        if self._built is None:
            return tuple(sorted(self._columns[3]))
        return tuple(sorted({k for st in self._steps for k in st.concentrations}))

    def __len__(self) -> int:
        st = self._built
        return len(st) if st is not None else int(self._columns[0].size)

    def __iter__(self):
        return iter(self._steps)

    def __add__(self, other: "Protocol | Step") -> "Protocol":
        if isinstance(other, (Protocol, Step)):
            return Protocol([self, other])
        return NotImplemented

    def __mul__(self, n: int) -> "Protocol":
        n = V_.integer("n", n, minimum=1)
        if len(self) * n > MAX_STEPS:
            _too_many_steps(f"protocol * {n}", len(self) * n)
        if not self.duration * n < _INF:
            raise ValueError(f"protocol * {n}: the total duration {self.duration:g} s × {n} is "
                             f"not finite")
        if self._built is None:  # from_waveform: the columns repeated
            return Protocol([self] * n, rest=self._rest)
        return Protocol(list(self._steps) * n, rest=self._rest)

    __rmul__ = __mul__

    @property
    def rest(self) -> "Step | None":
        """The conditions before the protocol starts (see the class docs), or None: then the
        first step's conditions serve."""
        return self._rest

    @property
    def rest_conditions(self) -> dict[str, Any]:
        """``{"V", "temperature", ligand: M}`` under which ``initial="equilibrium"`` is taken:
        :attr:`rest`'s, else the first step's."""
        st = self._rest if self._rest is not None else self._step_at(0)
        return {"V": st.V, "temperature": st.temperature, **st.concentrations}

    def _step_at(self, i: int) -> Step:
        """Step ``i`` (a column protocol builds only that one if its Steps are not built)."""
        if self._built is None:
            durs, Vs, temperature, cs = self._columns
            s = slice(i, i + 1)
            return _steps_from_columns(durs[s], Vs[s], temperature, {k: a[s] for k, a in cs.items()})[0]
        return self._built[i]

    def _rest_key(self):
        """The rest's conditions (its duration is not used, so it does not count)."""
        r = self._rest
        return None if r is None else (r.V, r.temperature, tuple(sorted(r.concentrations.items())))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Protocol):
            return NotImplemented
        if self is other:
            return True
        if self._rest_key() != other._rest_key():
            return False
        a, b = self._columns, other._columns
        if a is not None or b is not None:  # a column protocol: compare columns (== on numbers,
            # as Step compares them: -0.0 == 0.0; all values finite), a Steps one's made from them
            if len(self) != len(other):
                return False
            a = a if a is not None else self._columns_from_steps()
            b = b if b is not None else other._columns_from_steps()
            if a is None or b is None:  # Steps of several temperatures: not a column protocol's
                return False
            return (a[0].shape == b[0].shape and a[2] == b[2] and a[3].keys() == b[3].keys()
                    and bool(np.array_equal(a[0], b[0])) and bool(np.array_equal(a[1], b[1]))
                    and all(bool(np.array_equal(a[3][k], b[3][k])) for k in a[3]))
        return len(self) == len(other) and self._steps == other._steps

    def __hash__(self) -> int:
        # Up to _HASH_ALL_STEPS steps: all of them (and the rest).  Longer: the length, a BLAKE2b
        # digest of the columns (-0.0 as 0.0, as == compares numbers; a Steps protocol's columns
        # made from its Steps) and the rest -- the same from Steps or columns, so equal protocols
        # hash alike, a column protocol is hashed without building a Step per sample, and
        # protocols differing anywhere hash apart.
        h = self._hash
        if h is None:
            n = len(self)
            if n <= _HASH_ALL_STEPS:  # (a column protocol's few Steps built for this only)
                st = self._built if self._built is not None else _steps_from_columns(*self._columns)
                h = hash(st) if self._rest is None else hash((st, self._rest_key()))
            else:
                cols = self._columns if self._columns is not None else self._columns_from_steps()
                if cols is None:  # Steps of several temperatures (never equal to a column protocol)
                    h = hash((self._steps, self._rest_key()))
                else:
                    import hashlib
                    durs, Vs, T, cs = cols
                    d = hashlib.blake2b(repr((n, T, sorted(cs))).encode(), digest_size=16)
                    for a in (durs, Vs, *(cs[k] for k in sorted(cs))):
                        d.update(np.ascontiguousarray(a + 0.0).data)
                    h = hash((n, d.digest(), self._rest_key()))
            self._hash = h
        return h

    def _columns_from_steps(self) -> "tuple | None":
        """The columns of a Steps protocol (None if its steps have several temperatures), kept:
        compile, ==, voltage_at and pickling then use them too (the same results, tested)."""
        cols = self._columns
        if cols is None:
            cols = _concat_columns([self])
            if cols is not None:
                for a in (cols[0], cols[1], *cols[3].values()):
                    a.setflags(write=False)
                self._columns = cols
        return cols

    def __reduce__(self):
        # rebuild from the steps: the cached hash depends on the process's string-hash seed
        if self._columns is not None and type(self) is Protocol:  # from_waveform: the columns
            return (_protocol_from_columns, (*self._columns, self._rest))
        return (Protocol, (self._steps, self._rest))

    def __repr__(self) -> str:
        return f"Protocol({len(self)} steps, {self.duration:g} s)"

    def to_list(self) -> list[dict[str, Any]]:
        """One mapping ``{duration, V, temperature, ligand: M}`` per step (:attr:`rest` is not
        included; pass it to :meth:`from_list`)."""
        return [st.to_dict() for st in self._steps]

    @classmethod
    def from_list(cls, items: Sequence[Mapping[str, Any]],
                  rest: "Step | Mapping[str, Any] | None" = None) -> "Protocol":
        """Inverse of :meth:`to_list`: one mapping ``{duration, V, temperature, ligand: M}`` per
        step; ``rest`` as in :class:`Protocol`."""
        if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
            raise TypeError(f"Protocol.from_list: items must be a list of step mappings "
                            f"({{'duration': s, 'V': V, ...}}), got {type(items).__name__} ({items!r})")
        if isinstance(items, (list, tuple)) and len(items) > MAX_STEPS:
            _too_many_steps("Protocol.from_list", len(items))
        steps = []
        for i, d in enumerate(items):
            if not isinstance(d, Mapping):
                raise TypeError(f"protocol step {i} must be a mapping {{'duration': s, 'V': V, "
                                f"ligand: M, ...}}, got {type(d).__name__} ({d!r})")
            if not all(isinstance(k, str) for k in d):
                raise TypeError(f"protocol step {i}: keys must be strings, got {list(d)!r}")
            try:
                steps.append(Step(**dict(d)))
            except (TypeError, ValueError) as e:
                raise type(e)(f"protocol step {i}: {e}") from None
        return cls(steps, rest=rest)

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_waveform(cls, times: "Sequence[float] | np.ndarray", t_end: float, V: Any = DEFAULT_V,
                      temperature: float | None = None, **concentrations: Any) -> "Protocol":
        """Piecewise-constant protocol from sampled waveforms (zero-order hold).

        Parameters
        ----------
        times : array of float, shape (n,)
            Sample times (s), strictly increasing, starting at 0.
        t_end : float
            End of the protocol (s), > ``times[-1]``; the last value holds until then.
        V : float or array of shape (n,), default -0.07
            Voltage (V) at each sample (held until the next); a scalar holds for every sample.
            Default -0.07 V (-70 mV, :data:`DEFAULT_V`).
        temperature : float, optional
            Temperature (K), constant; ``None`` (default) uses the scheme's own temperature.
        **concentrations : float or array of shape (n,)
            Ligand concentrations (M) at each sample; ligands not named are 0 throughout.

        Returns
        -------
        Protocol
            One segment per sample, from ``times[i]`` to the next sample (the last to
            ``t_end``).

        Notes
        -----
        *Accuracy for smooth waveforms.*  Each value is held over its interval (zero-order
        hold), so the engines are exact for the held waveform, but a smooth transient is
        represented to first order in the sample spacing: for glutamate 1 mM·exp(−t/1.2 ms) on
        ``destexhe1994_sf``, sampled at the start of each interval, the open probability is off
        by up to 7.8e-4 at 100 µs spacing and 1.6e-4 at 20 µs (against a continuous ODE
        solution).  Sampling each interval at its *midpoint* (``c(times + h/2)``) makes it second
        order: 3.2e-5 and 1.3e-6 (helper-100's audit, checked against Myokit/CVODE).  The
        output grid ``dt`` of ``solve`` does not affect this; the waveform's sampling does.

        The protocol keeps copies of the sample arrays.  ``solve``, ``simulate``,
        ``simulate_events``, ``len``, ``duration``, ``boundaries``, ``ligands``,
        ``voltage_at``, ``hash`` (up to 4096 samples from Steps built for it and dropped),
        ``==`` between two such protocols and pickling work from them, and ``step + protocol``, ``protocol * n`` and ``Protocol([...], rest=...)`` keep
        columns (when all parts share one temperature and column parts hold at least half the
        samples; otherwise the result is made of Steps).  A :class:`Step` per sample is built
        (once, ~1–3 µs and ~500 bytes each) only by what needs the Steps: ``steps``,
        iteration, ``to_list`` and ``==`` with a protocol of Steps.  The result equals, and
        hashes like, ``Protocol`` of the same Steps.
        """
        t = V_.real_array("times", times, "s")
        if t.ndim != 1 or t.size == 0:
            raise ValueError("times must be a non-empty 1-D array")
        if t.size > MAX_STEPS:
            _too_many_steps("Protocol.from_waveform", t.size)
        if not np.all(np.isfinite(t)):
            raise ValueError("times must be finite")
        if t[0] != 0.0:
            raise ValueError(f"times must start at 0, got {t[0]}")
        if np.any(np.diff(t) <= 0):
            raise ValueError("times must be strictly increasing")
        t_end = V_.real("t_end", t_end)
        if not t_end > t[-1]:
            raise ValueError(f"t_end={t_end} must be > times[-1]={t[-1]}")

        def col(name: str, v: Any, unit: str) -> np.ndarray:
            a = V_.real_array(name, v, unit)
            if a.ndim == 0:
                return np.full(t.size, float(a))
            if a.shape != t.shape:
                raise ValueError(f"{name} must be a scalar or have the shape of times {t.shape}, got {a.shape}")
            return a

        Vs = col("V", V, "V")
        cs = {k: col(k, v, "M") for k, v in concentrations.items()}
        ends = np.append(t[1:], t_end)
        durs = ends - t
        with np.errstate(invalid="ignore"):
            trusted = (not _STEP_ARGS.intersection(cs)  # (Step(**) refuses these names itself)
                       and bool(np.all((durs > 0.0) & (durs < _INF))) and bool(np.all(np.abs(Vs) <= _MAX_V))
                       and all(bool(np.all((a >= 0.0) & (a <= _MAX_C))) for a in cs.values()))
        if trusted:
            for k, a in cs.items():  # one UnitsWarning per column, not one per sample
                V_.implausible_concentrations(f"{k} sample", a)
        if trusted and temperature is not None:
            try:
                temperature = V_.temperature("temperature", temperature)
            except (TypeError, ValueError):
                trusted = False  # the per-sample path names it
        if trusted:
            # every value passes Step's checks (the same bounds, all samples at once): keep the
            # sample columns; the Steps are built from them, without re-checking each, only if
            # something needs them (copies: V and the concentrations may be the caller's arrays)
            columns = (durs, np.array(Vs, dtype=float), temperature,
                       {k: np.array(cs[k], dtype=float) for k in sorted(cs) if np.any(cs[k] != 0.0)})
            if cls is not Protocol:  # a subclass gets its own __init__
                return cls(list(_steps_from_columns(*columns)))
            # (at most MAX_STEPS samples, checked above; the durations sum to ~t_end, finite)
            out = object.__new__(cls)
            out._rest = None
            out._set_steps(None, columns)
            return out
        steps = []
        for i in range(t.size):
            try:
                steps.append(Step(float(ends[i] - t[i]), V=float(Vs[i]), temperature=temperature,
                                  **{k: float(a[i]) for k, a in cs.items()}))
            except (TypeError, ValueError) as e:
                raise type(e)(f"from_waveform sample {i} (t = {t[i]:g} s): {e}") from None
        return cls(steps)

    # ------------------------------------------------------------------ compilation
    def compile(self, scheme) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Compile for ``scheme``: ``(durations, cond_index, conditions)``.

        ``conditions`` holds one row ``[V, T, c_0..c_{L-1}]`` per unique condition; adjacent
        steps with equal conditions are merged.

        Raises
        ------
        ValueError
            If a step names a ligand the scheme does not have.
        """
        key = (scheme.ligands, scheme.temperature)
        hit = self._compile_cache.get(key)
        if hit is not None:
            return hit
        out = self._compile_columns(scheme) if self._columns is not None else self._compile_steps(scheme)
        # (not made read-only: pybind11 would copy read-only arrays on every call; the tuple
        # is private to the engines, which never write to it)
        if len(self._compile_cache) > 8:
            self._compile_cache.clear()
        self._compile_cache[key] = out
        return out

    def _compile_columns(self, scheme) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """compile() of a from_waveform protocol from its sample columns: the same result as
        _compile_steps (conditions numbered in order of first appearance, adjacent equal samples
        merged with correctly rounded sums), by numpy instead of a pass over the Steps."""
        durs, Vs, temperature, cs = self._columns
        ligs = scheme.ligands
        lidx = {l: i for i, l in enumerate(ligs)}
        unknown = [name for name in cs if name not in lidx]
        if unknown:  # the one set first in time, as the pass over the Steps finds it
            first_set = {name: int(np.argmax(cs[name] != 0.0)) for name in unknown}
            name = min(unknown, key=lambda name: (first_set[name], name))
            self._unknown_ligand(scheme, name, first_set[name])
        n, L = durs.size, len(ligs)
        M = np.zeros((n, 1 + L))
        M[:, 0] = Vs
        for name, a in cs.items():
            M[:, 1 + lidx[name]] = a
        M += 0.0  # -0.0 -> 0.0 (Step keys compare numbers)
        keyed = M
        # distinct rows by a stable lexicographic sort (5x faster than np.unique on row bytes,
        # a third of its memory): equal rows are adjacent in `srt`, in increasing sample order
        srt = np.lexsort(M.T[::-1])
        new_row = np.empty(n, bool)
        new_row[:1] = True
        Ms = M[srt]
        np.any(Ms[1:] != Ms[:-1], axis=1, out=new_row[1:])
        del Ms
        inverse = np.empty(n, np.int64)
        inverse[srt] = np.cumsum(new_row) - 1
        first = srt[new_row]                               # each distinct row's first sample
        order = np.argsort(first, kind="stable")           # conditions in order of first appearance
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        ids = rank[inverse]
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        idx = ids[starts].astype(np.int64)
        lengths = np.diff(np.r_[starts, n])
        merged = durs[starts].copy()
        for j in np.flatnonzero(lengths > 1).tolist():    # runs of equal samples: correctly rounded sums
            a = int(starts[j])
            merged[j] = math.fsum(durs[a:a + int(lengths[j])].tolist())
        T = scheme.temperature if temperature is None else temperature
        conds = np.empty((order.size, 2 + L))
        conds[:, 0] = Vs[first[order]]        # (the first sample's V, -0.0 kept, as Steps keep it)
        conds[:, 1] = T
        conds[:, 2:] = keyed[first[order], 1:]  # (a -0.0 concentration is 0.0, as Steps drop it)
        return merged, idx, conds

    def _compile_steps(self, scheme) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ligs = scheme.ligands
        lidx = {l: i for i, l in enumerate(ligs)}
        # one pass over the steps numbers the distinct conditions (Step._key, in order of first
        # appearance) and merges adjacent steps of equal conditions; the condition rows are built
        # afterwards, once per condition (a voltage ramp has one per step)
        table: dict[tuple, int] = {}
        get = table.get
        durs: list[float] = []
        idx: list[int] = []
        run: list[float] = []
        last = -1
        for st in self._steps:
            ck = st._key
            j = get(ck)
            if j is None:
                j = table[ck] = len(table)
            if j == last:
                run.append(st.duration)
            else:
                if run:
                    durs.append(run[0] if len(run) == 1 else math.fsum(run))
                run = [st.duration]
                idx.append(j)
                last = j
        # merged steps: correctly rounded sums (math.fsum), so that the engines' boundaries
        # agree with Protocol.boundaries (a naive += drifted 2e-9 s over 10^6 steps of 0.1 ms)
        durs.append(run[0] if len(run) == 1 else math.fsum(run))
        T_scheme = scheme.temperature
        zeros = [0.0] * len(ligs)
        rows: list[list[float]] = []  # (plain lists, one numpy array at the end)
        for V, T, items in table:  # (V, temperature or None, sorted non-zero (ligand, M) pairs)
            row = [V, T_scheme if T is None else T, *zeros]
            for name, c in items:
                col = lidx.get(name)
                if col is None:
                    self._unknown_ligand(scheme, name)
                row[2 + col] = c
            rows.append(row)
        return (np.asarray(durs, dtype=float), np.asarray(idx, dtype=np.int64),
                np.array(rows, dtype=float).reshape(len(rows), 2 + len(ligs)))

    def _unknown_ligand(self, scheme, name: str, i: "int | None" = None) -> None:
        """Raise the ValueError for the first step (``i``, if known) that sets ligand ``name``,
        which ``scheme`` does not have."""
        if i is None:
            i = next(i for i, st in enumerate(self._steps) if name in st.concentrations)
        near = V_.near_miss(name, [*scheme.ligands, "duration", "V", "temperature"])
        hint = f" (did you mean {near!r}?)" if near else ""
        raise ValueError(f"protocol step {i} sets ligand {name!r}{hint}, which scheme "
                         f"{scheme.name or '(unnamed)'} does not have; its ligands are {list(scheme.ligands)}")

    def n_samples(self, dt: float) -> int:
        """Number of grid points ``t_k = k·dt`` in ``[0, duration]`` for a grid step ``dt`` (s,
        > 0); a final boundary within 1e-7·dt of a grid point counts as on it.  Every engine
        sizes its output with this.

        Raises ``ValueError`` for a subnormal ``dt`` (< :data:`MIN_DT`, 1/dt not finite), for a
        ``dt`` longer than the protocol (the grid would hold t = 0 alone: almost always ms
        written as s), or for more than :data:`MAX_GRID_POINTS` (2**53) grid points."""
        dt = _grid_dt(dt)
        ratio = self.duration / dt
        if ratio + 1e-7 < 1.0:
            raise ValueError(
                f"dt={dt!r} s is longer than the {self.duration:g} s protocol, so the grid would "
                f"hold t = 0 alone; dt is in seconds (write 1 * ketacore.units.ms, not 1)")
        if not ratio + 1.0 <= MAX_GRID_POINTS:
            raise ValueError(
                f"dt={dt!r} s gives duration/dt = {ratio:.4g} grid points over the "
                f"{self.duration:g} s protocol, more than the {MAX_GRID_POINTS:.4g} allowed; "
                f"use a larger dt (s)")
        return int(ratio + 1e-7) + 1

    def voltage_at(self, times: np.ndarray, dt: float) -> np.ndarray:
        """Voltage (V) in force at each time (s) on a grid of step ``dt`` (s), with the boundary
        rule of :meth:`step_index_at`; the one place engines' results get their ``V`` from."""
        Vs = self._columns[1] if self._columns is not None else np.array([st.V for st in self._steps])
        return Vs[self.step_index_at(times, dt)]

    def step_index_at(self, times: np.ndarray, dt: float) -> np.ndarray:
        """Index of the step in force at each time (s) (right-continuous; a time within 1e-7·dt
        of a boundary belongs to the step that starts there; the end time to the last step)."""
        dt = _grid_dt(dt)
        times = np.asarray(times)
        if not (np.issubdtype(times.dtype, np.floating) or np.issubdtype(times.dtype, np.integer)) \
                or times.dtype == bool:
            raise TypeError(f"times must be real numbers (s), got dtype {times.dtype}")
        if not np.all(np.isfinite(times)):
            raise ValueError("times must be finite (s)")
        b = self.boundaries
        i = np.searchsorted(b, times + 1e-7 * dt, side="right") - 1
        return np.clip(i, 0, len(self) - 1)


def _steps_from_columns(durs: np.ndarray, Vs: np.ndarray, temperature: "float | None",
                        cs: "dict[str, np.ndarray]") -> tuple:
    """The Steps of checked sample columns (from_waveform's): ``Step._trusted`` per sample, with
    zero concentrations dropped and ligands sorted as ``Step`` does, and the concentration
    mappings shared between samples with the same."""
    names = sorted(cs)
    fixed = tuple((k, float(cs[k][0])) for k in names if np.all(cs[k] == cs[k][0]) and cs[k][0] != 0.0)
    varying = [(k, cs[k].tolist()) for k in names if not np.all(cs[k] == cs[k][0])]
    shared: dict = {}
    steps: list = []
    append = steps.append
    trusted_step = Step._trusted
    if not varying:
        for d, v in zip(durs.tolist(), Vs.tolist()):
            append(trusted_step(d, v, temperature, fixed, shared))
    else:
        for i, (d, v) in enumerate(zip(durs.tolist(), Vs.tolist())):
            items = fixed + tuple([(k, c[i]) for k, c in varying if c[i] != 0.0])
            if len(items) > 1:
                items = tuple(sorted(items))
            append(trusted_step(d, v, temperature, items, shared))
    return tuple(steps)


def _concat_columns(parts: Sequence[Any]) -> "tuple | None":
    """The columns (as from_waveform keeps them) of the protocol whose steps are ``parts`` (Steps
    and Protocols) in order, or None when they cannot be columns -- parts of different
    temperatures (a column protocol has one) or a part that is neither Step nor Protocol (the
    caller then raises)."""
    pieces = []
    temps = set()
    for st in parts:
        if isinstance(st, Protocol) and st._columns is not None:
            d, v, T, cs = st._columns
            pieces.append((d, v, cs))
            temps.add(T)
        elif isinstance(st, (Step, Protocol)):
            sts = (st,) if isinstance(st, Step) else st._steps
            temps.update({x.temperature for x in sts})
            cs: dict = {}
            for i, x in enumerate(sts):
                for k, c in x.concentrations.items():
                    if k not in cs:
                        cs[k] = np.zeros(len(sts))
                    cs[k][i] = c
            pieces.append((np.array([x.duration for x in sts], dtype=float),
                           np.array([x.V for x in sts], dtype=float), cs))
        else:
            return None
        if len(temps) > 1:
            return None
    (temperature,) = temps
    names = sorted({k for _, _, cs in pieces for k in cs})
    cols = {k: np.concatenate([cs[k] if k in cs else np.zeros(d.size) for d, _, cs in pieces]) for k in names}
    return (np.concatenate([d for d, _, _ in pieces]), np.concatenate([v for _, v, _ in pieces]),
            temperature, cols)


def _protocol_from_columns(durs: np.ndarray, Vs: np.ndarray, temperature: "float | None",
                           cs: "dict[str, np.ndarray]", rest: "Step | None") -> Protocol:
    """Unpickle a from_waveform protocol (its columns, as :meth:`Protocol.__reduce__` gives
    them): a protocol equal to the one pickled, still without its Steps built."""
    out = object.__new__(Protocol)
    out._rest = rest
    out._set_steps(None, (np.asarray(durs, dtype=float), np.asarray(Vs, dtype=float), temperature,
                          {k: np.asarray(a, dtype=float) for k, a in cs.items()}))
    return out


def _too_many_steps(where: str, n: int) -> None:
    raise ValueError(
        f"{where}: {n:.4g} steps exceed MAX_STEPS = {MAX_STEPS:,} (at least {n * 16 / 2**30:.3g} "
        f"GiB and ~{n * 1e-6:.3g} s of Python work before any simulation); use fewer, longer "
        f"steps or run the repeats as separate simulations")


def _grid_dt(dt: Any) -> float:
    dt = V_.real("dt", dt, positive=True)
    if dt < MIN_DT:
        raise ValueError(f"dt={dt!r} s is subnormal (< {MIN_DT!r} s): 1/dt is not finite; dt is "
                         f"the grid step in seconds")
    return dt


def _conditions_mapping(name: str, m: Any, step_params: tuple = ()) -> dict:
    """``m`` as a dict of ligand concentrations (M) -- and of the step parameters
    ``step_params`` (``("V", "temperature")`` for :class:`Protocol`'s ``rest``) -- with
    TypeError/ValueError naming ``name`` for anything else (values are checked by
    :func:`_conditions_step`)."""
    if m is None:
        return {}
    if not isinstance(m, Mapping):
        what = ("{'V': V, 'temperature': K, ligand: concentration (M)}" if step_params
                else "{ligand: concentration (M)}")
        raise TypeError(f"{name} must be a mapping {what}, e.g. "
                        f"{{'glutamate': 1e-3}}, got {type(m).__name__} ({m!r})")
    for k in m:
        if not isinstance(k, str) or not k:
            raise TypeError(f"{name}: ligand names must be non-empty strings, got {k!r}")
        if k in step_params:
            continue
        if k in _STEP_PARAMS:
            if step_params:
                raise ValueError(f"{name} holds {', '.join(step_params)} and ligand concentrations "
                                 f"(M) only; {k!r} is not a condition (the rest's duration is "
                                 "not used)")
            raise ValueError(f"{name} holds ligand concentrations only; {k!r} is a step "
                             f"parameter (set V= and temperature= of pulse_train instead)")
        if k in _STEP_ARGS:
            raise ValueError(f"{name}: {k!r} cannot be a ligand name (it is an argument of Step)")
    return dict(m)


def _conditions_step(name: str, conditions: Mapping[str, Any], duration: float, **fixed: Any) -> Step:
    """The Step of ``conditions`` (a :func:`_conditions_mapping`; with ``fixed`` V/temperature)
    lasting ``duration`` (s), its values checked as Step checks them, the errors naming
    ``name``."""
    try:
        return Step(duration, **fixed, **conditions)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{name}: {e}") from None


#: Duration (s) of the Step a ``Protocol(rest={...})`` mapping becomes (a rest's is not used).
_REST_DURATION = 1.0


def _rest_argument(rest: Any) -> "Step | None":
    """``Protocol(rest=)``: None, a Step, or a mapping ``{V, temperature, ligand: M}`` made a
    Step (checked as :func:`pulse_train`'s ``rest``); TypeError/ValueError naming ``rest``."""
    if rest is None or type(rest) is Step:
        return rest
    if not isinstance(rest, Mapping):
        raise TypeError(f"Protocol(rest=): rest must be a Step or a mapping {{'V': V, "
                        f"'temperature': K, ligand: concentration (M)}} (the conditions before "
                        f"the protocol starts), got {type(rest).__name__}")
    cond = _conditions_mapping("rest", rest, step_params=("V", "temperature"))
    return _conditions_step("rest", cond, _REST_DURATION)


def pulse_train(n_pulses: int, frequency: float, width: float, *, V: float = DEFAULT_V,
                temperature: float | None = None, during: Mapping[str, float] | None = None,
                between: Mapping[str, float] | None = None, tail: float = 0.0,
                rest: Mapping[str, float] | None = None) -> Protocol:
    """A train of ``n_pulses`` square concentration pulses at ``frequency``.

    Parameters
    ----------
    n_pulses : int
        Number of pulses, ≥ 1.
    frequency : float
        Pulse frequency (Hz); the period ``1/frequency`` must exceed ``width``.
    width : float
        Pulse duration (s).
    V : float, default -0.07
        Voltage (V) throughout.
    temperature : float, optional
        Temperature (K).
    during : mapping, optional
        Concentrations (M) during each pulse, e.g. ``{"glutamate": 1e-3}``.
    between : mapping, optional
        Concentrations (M) between pulses (and in the tail), e.g. a bath drug concentration.
    tail : float, default 0
        Extra time (s) after the last inter-pulse interval with the ``between`` conditions.
    rest : mapping, optional
        Concentrations (M) of the rest before the first pulse (at ``V`` and ``temperature``),
        where the default start (``initial=None``) puts the channels.  Default: the
        ``between`` conditions (drug in the bath: a pre-equilibrated start).  ``rest={}`` is a
        drug-naive start with no ligand, so the train itself brings the drug on.

    Returns
    -------
    Protocol
        ``[pulse, interval] * n_pulses`` (+ tail), with :attr:`Protocol.rest` set to the
        ``rest`` conditions (default: the between-pulse ones): by default (``initial=None``)
        ``solve``/``simulate`` start the channels at rest under them (e.g. drug in the bath,
        no agonist), not at the steady state of the first pulse.

    Raises
    ------
    ValueError
        More than :data:`MAX_STEPS` steps (2 per pulse), a non-finite total duration, a
        step parameter (``V``, ``temperature``, ``duration``) as a key of
        ``during``/``between``/``rest``, or a ``rest`` concentration out of range (the message
        starts ``rest:``; the checks are :class:`Protocol`'s for its ``rest`` mapping).
    TypeError
        ``during``/``between``/``rest`` not a mapping.
    """
    n = V_.integer("n_pulses", n_pulses, minimum=1)
    f = V_.real("frequency", frequency, positive=True)
    w = V_.duration("width", width)
    period = 1.0 / f
    if not period > w:
        raise ValueError(f"pulse period 1/frequency = {period} s must exceed width = {w} s")
    tail = V_.real("tail", tail, nonnegative=True)
    n_steps = 2 * n + (tail > 0)
    if n_steps > MAX_STEPS:
        _too_many_steps(f"pulse_train(n_pulses={n})", n_steps)
    if not n * period + tail < _INF:
        raise ValueError(f"pulse_train: total duration n_pulses/frequency + tail = "
                         f"{n * period + tail:g} s is not finite")
    during = _conditions_mapping("during", during)
    between = _conditions_mapping("between", between)
    on = Step(w, V=V, temperature=temperature, **{**between, **during})
    off = Step(period - w, V=V, temperature=temperature, **between)
    steps: list[Step] = [on, off] * n
    if tail > 0:
        steps.append(Step(tail, V=V, temperature=temperature, **between))
    # the channels rest under the between-pulse conditions (or rest=) before the first pulse
    if rest is None:
        return Protocol(steps, rest=off)
    rest = _conditions_mapping("rest", rest)
    return Protocol(steps, rest=_conditions_step("rest", rest, period - w, V=V, temperature=temperature))


__all__ = ["Step", "Protocol", "pulse_train", "DEFAULT_V", "MAX_STEPS", "MAX_GRID_POINTS", "MIN_DT"]
