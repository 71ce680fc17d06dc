"""Single-channel and noise analysis: dwell times, resolution, bursts, histograms, fits.

The objects here turn event records (from :func:`ketacore.simulate_events` or from a user's
own idealised record) into the quantities single-channel electrophysiologists look at, and
put them next to the exact Colquhoun–Hawkes theory in :mod:`ketacore.theory`.

* :class:`Record` -- an idealised record: dwells in conductance *classes* (0 = shut, and one
  class per open conductance level, so sublevels are kept apart), in one or more sweeps.
  Built with :meth:`Record.from_events`, :meth:`Record.from_states`,
  :meth:`Record.from_levels`, :meth:`Record.from_dwells` (intervals; unusable ones cut the
  record into sweeps) or :meth:`Record.from_scn` (a SCAN ``.scn`` file, read with ``dcio``).
* :meth:`Record.open_times`, :meth:`Record.shut_times`, :meth:`Record.dwells` -- dwell-time
  arrays; :meth:`Record.first_latency` -- first latency after a step.
* :meth:`Record.open_probability` -- fraction of the recorded time spent open.
* :meth:`Record.resolve` -- impose a time resolution (dead time) ``t_res``; the dwells of the
  resolved record follow the missed-events (HJC) distributions of
  :func:`ketacore.theory.apparent_dwell_times` at that ``t_res``, not the ideal
  :func:`ketacore.theory.dwell_times`.
* :meth:`Record.bursts` -> :class:`BurstResult` -- bursts from a critical shut time;
  :func:`critical_time` picks ``t_crit`` between two shut-time components.
* :func:`log_histogram` -> :class:`LogHistogram` -- log-binned histogram with the
  square-root count display (Sigworth & Sine 1987).
* :func:`fit_mixture` -> :class:`MixtureFit` -- maximum-likelihood fit of a mixture of
  exponentials with standard errors, truncated at ``t_res``.
* :func:`noise_analysis` -> :class:`NoiseAnalysis` -- non-stationary noise analysis
  (variance–mean parabola, Sigworth 1980) of :func:`ketacore.simulate` output.

The loops over events are Cython kernels (``ketacore._analysis``) running without the GIL;
everything is validated here first.  Units are SI: times in s, currents in A, conductances
in S.

References
----------
.. [CS95] Colquhoun D, Sigworth FJ (1995) Fitting and statistical analysis of single-channel
   records. In: Sakmann B, Neher E (eds) Single-Channel Recording, 2nd edn. Plenum, New York,
   pp 483-587.
.. [CH82] Colquhoun D, Hawkes AG (1982) On the stochastic properties of bursts of single ion
   channel openings and of clusters of bursts. Phil Trans R Soc Lond B 300:1-59.
   doi:10.1098/rstb.1982.0156
.. [CHS96] Colquhoun D, Hawkes AG, Srodzinski K (1996) Joint distributions of apparent open and
   shut times of single-ion channels and maximum likelihood fitting of mechanisms. Phil Trans
   R Soc Lond A 354:2555-2590. doi:10.1098/rsta.1996.0115
.. [HJC90] Hawkes AG, Jalali A, Colquhoun D (1990) The distributions of the apparent open times
   and shut times in a single channel record when brief events cannot be detected. Phil Trans
   R Soc Lond A 332:511-538. doi:10.1098/rsta.1990.0129
.. [HJC92] Hawkes AG, Jalali A, Colquhoun D (1992) Asymptotic distributions of apparent open
   times and shut times in a single channel record allowing for the omission of brief events.
   Phil Trans R Soc Lond B 337:383-404. doi:10.1098/rstb.1992.0116
.. [SS87] Sigworth FJ, Sine SM (1987) Data transformations for improved display and fitting of
   single-channel dwell time histograms. Biophys J 52:1047-1054.
   doi:10.1016/S0006-3495(87)83298-8
.. [S80] Sigworth FJ (1980) The variance of sodium current fluctuations at the node of Ranvier.
   J Physiol 307:97-129. doi:10.1113/jphysiol.1980.sp013426
.. [CS85] Colquhoun D, Sakmann B (1985) Fast events in single-channel currents activated by
   acetylcholine and its analogues at the frog muscle end-plate. J Physiol 369:501-557.
.. [MP83] Magleby KL, Pallotta BS (1983) Burst kinetics of single calcium-activated potassium
   channels in cultured rat muscle. J Physiol 344:605-623.
.. [J83] Jackson MB, Wong BS, Morris CE, Lecar H, Christian CN (1983) Successive openings of
   the same acetylcholine receptor channel are correlated in open time. Biophys J 42:109-114.
"""
from __future__ import annotations

import collections.abc as _abc
import math
import numbers
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from . import _analysis
from . import _validate as _V
from .theory import ApparentDwellTimes, ExponentialMixture, PhaseType

def _axes_first(theory, ax):
    """``(theory, ax)`` of an analysis ``plot(theory=None, *, ax=None)`` called the way the
    experiment results' ``plot(ax=None)`` is, with matplotlib axes as the first argument
    (``fit.plot(ax)`` raised "mixture must be ... got Axes"; helper-101's audit)."""
    if ax is None and theory is not None and hasattr(theory, "figure") and hasattr(theory, "set_xlabel"):
        return None, theory
    if ax is None and isinstance(theory, np.ndarray) and theory.dtype == object and theory.size \
            and all(hasattr(a, "set_xlabel") for a in theory.ravel()):
        return None, theory            # (plt.subplots(1, 2)'s array of axes)
    return theory, ax


def _compact_repr(obj, *, inline: int = 6) -> str:
    """One-line repr of a result dataclass: scalars with 4 significant digits, arrays of at
    most ``inline`` entries in full, larger ones as ``<shape dtype>`` (a result may hold every
    burst or dwell of a record, and the generated repr would print them all)."""
    import dataclasses
    parts = []
    for f in dataclasses.fields(obj):
        if not f.repr:
            continue
        v = getattr(obj, f.name)
        if isinstance(v, np.ndarray):
            if v.size <= inline:
                txt = np.array2string(v, precision=4, separator=", ", max_line_width=10**6)
            else:
                txt = f"<{'x'.join(map(str, v.shape))} {v.dtype}>"
        elif isinstance(v, (float, np.floating)):
            txt = f"{float(v):.4g}"
        elif isinstance(v, (tuple, list)) and len(v) > inline:
            txt = f"<{len(v)} {type(v).__name__}>"
        elif isinstance(v, str) and len(v) > 60:   # (a fit's whole warning message)
            txt = repr(v[:57] + "...")
        else:
            txt = repr(v)
        parts.append(f"{f.name}={txt}")
    return f"{type(obj).__name__}({', '.join(parts)})"


__all__ = ["Record", "BurstResult", "LogHistogram", "MixtureFit", "NoiseAnalysis",
           "Misclassification", "log_histogram", "fit_mixture", "critical_time",
           "misclassification", "noise_analysis", "MAX_CLASSES", "MAX_BINS"]

#: Largest number of conductance classes of a record (class indices are < MAX_CLASSES); one
#: level and one name is stored per class up to the largest index.
MAX_CLASSES = 10_000
#: Largest number of bins of a :func:`log_histogram`.
MAX_BINS = 1_000_000


# ---------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------


def _real(name: str, value: Any, *, positive=False, nonnegative=False, finite=True) -> float:
    return _V.real(name, value, positive=positive, nonnegative=nonnegative, finite=finite)


def _int(name: str, value: Any, *, minimum: Optional[int] = None) -> int:
    return _V.integer(name, value, minimum=minimum)


def _float_array(name: str, a: Any, *, ndim: int = 1, finite: bool = True) -> np.ndarray:
    try:
        arr = np.ascontiguousarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of real numbers") from None
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if finite and arr.size and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain only finite values")
    return arr


def _t_end_per_sweep(t_end, n_sweeps: int) -> np.ndarray:
    """End time of each sweep (s): a scalar for all, or one value per sweep."""
    if np.ndim(t_end) == 0:
        return np.full(n_sweeps, _float_array("t_end", [t_end])[0])
    out = _float_array("t_end", t_end)
    if out.size != n_sweeps:
        raise ValueError(f"t_end must be a scalar or one value per sweep ({n_sweeps})")
    return out


def _int_array(name: str, a: Any) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        if np.issubdtype(arr.dtype, np.floating) and arr.size and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{name} must be an array of integers, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {arr.shape}")
    return arr


def _as_sweeps(name: str, a: Any) -> list:
    """A single 1-d array, or a sequence of 1-d arrays (one per sweep) -> list of arrays."""
    if isinstance(a, np.ndarray):
        return [a] if a.ndim == 1 else list(a)
    if isinstance(a, (list, tuple)):
        if len(a) and all(isinstance(x, (numbers.Number, np.number)) for x in a):
            return [np.asarray(a)]
        return [np.asarray(x) for x in a]
    raise TypeError(f"{name} must be an array or a list of arrays (one per sweep), "
                    f"got {type(a).__name__}")


def _check_class_range(n_cls: int) -> None:
    if n_cls > MAX_CLASSES:
        raise ValueError(f"classes: class indices must be < {MAX_CLASSES} (a level and a name "
                         f"are stored for every class up to the largest index), got "
                         f"{n_cls - 1}")


#: Selectors understood by every Record method that takes classes: "open" is every open class,
#: "shut" and "closed" every shut class.
_CLASS_KEYWORDS = ("open", "shut", "closed")


def _default_class_names(is_open) -> tuple:
    """Default class names: ``"open{k}"`` / ``"shut{k}"`` for class ``k``, except that class 0
    is ``"shut"`` when it is the only shut class (the keyword "shut" selects exactly it).
    Every default name selects its own class and no name collides with a keyword."""
    is_open = np.asarray(is_open, bool)
    only_shut = int(np.sum(~is_open)) == 1
    return tuple("shut" if (k == 0 and not o and only_shut)
                 else ("open" if o else "shut") + str(k) for k, o in enumerate(is_open))


def _class_names(class_names: Any, is_open) -> tuple:
    is_open = np.asarray(is_open, bool)
    n_classes = is_open.size
    if class_names is None:
        return _default_class_names(is_open)
    if isinstance(class_names, (str, bytes)):
        raise TypeError("class_names must be a sequence of names (one per class), "
                        f"not a single string ({class_names!r})")
    try:
        names = tuple(class_names)
    except TypeError:
        raise TypeError(f"class_names must be a sequence of str (one per class), got "
                        f"{type(class_names).__name__}") from None
    if len(names) != n_classes:
        raise ValueError(f"class_names must give one name per class ({n_classes}, "
                         f"len(levels)), got {len(names)}")
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"class_names must all be str, got {names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"class_names must be distinct, got {names!r}")
    # a keyword as a class name is allowed only where it selects that class alone
    for k, nm in enumerate(names):
        if nm in _CLASS_KEYWORDS:
            kind = nm == "open"
            same = np.flatnonzero(is_open == kind)
            if is_open[k] != kind or same.size != 1:
                what = "open" if kind else "shut"
                raise ValueError(
                    f"class_names: {nm!r} names class {k}, but {nm!r} selects every {what} "
                    f"class ({same.tolist()}), so class {k} could not be selected by its "
                    f"name; choose another name (the default would be "
                    f"{_default_class_names(is_open)[k]!r})")
    return names


def _check_dwell_sequence(start, duration, cls, offsets) -> None:
    """Within each sweep, dwells must follow each other (``start[i+1] == start[i] +
    duration[i]``, to rounding) and change class (the documented invariants of a Record:
    burst lengths, periods and latencies are computed from ``start``)."""
    n = cls.size
    if n < 2:
        return
    inner = np.ones(n - 1, bool)          # pairs (i, i+1) inside one sweep
    b = offsets[1:-1]
    b = b[(b > 0) & (b < n)]
    inner[b - 1] = False
    same = inner & (cls[:-1] == cls[1:])
    if same.any():
        i = int(np.argmax(same))
        sw = int(np.searchsorted(offsets, i, side="right") - 1)
        raise ValueError(f"cls: dwells {i} and {i + 1} (sweep {sw}) are consecutive and both in "
                         f"class {int(cls[i])}; consecutive dwells of a sweep must change class "
                         "(merge them into one dwell; Record.from_dwells does this)")
    end = start[:-1] + duration[:-1]
    # starts built by a cumulative sum of durations carry rounding of order eps x the largest
    # time of the record (not of the time at hand: t_start = -1000 s puts starts near 0 that
    # carry 1e-13 s of rounding)
    tol = 1e-9 * float(max(np.max(np.abs(start)), np.max(np.abs(start + duration))))
    bad = inner & (np.abs(start[1:] - end) > tol)
    if bad.any():
        i = int(np.argmax(bad))
        sw = int(np.searchsorted(offsets, i, side="right") - 1)
        raise ValueError(f"start: dwell {i + 1} (sweep {sw}) starts at {start[i + 1]:.9g} s but "
                         f"dwell {i} ends at {end[i]:.9g} s; the dwells of a sweep must be "
                         "contiguous (start[i+1] == start[i] + duration[i]); put records "
                         "separated by a gap in different sweeps")


def _check_rounding(before, after, decimals: int) -> None:
    """Refuse a ``decimals`` that rounds a substantial amplitude (>= 10 % of the largest) to 0:
    amplitudes are SI (A or S), and ``decimals`` meant for pA would silently shut the record."""
    a = np.concatenate(before) if before else np.zeros(0)
    r = np.concatenate(after) if after else np.zeros(0)
    if a.size == 0:
        return
    big = float(np.max(np.abs(a)))
    lost = (r == 0) & (np.abs(a) >= 0.1 * big) & (a != 0)
    if lost.any():
        x = float(a[np.argmax(lost)])
        # round(x, d) != 0 for |x| >= 0.1 big once 0.5 * 10**-d < 0.1 big
        need = math.floor(-math.log10(0.2 * big)) + 1
        raise ValueError(f"decimals={decimals} rounds the amplitude {x:.4g} to 0 (the largest "
                         f"|amplitude| is {big:.4g}): amplitudes are in SI units (A or S), "
                         f"so decimals counts decimal places of amperes or siemens; use "
                         f"decimals >= {need} here (13 rounds to 0.1 pA)")


def _u8(mask) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(mask, dtype=bool).astype(np.uint8))


# ---------------------------------------------------------------------------
# idealised record
# ---------------------------------------------------------------------------


class Record:
    """An idealised single-channel record: dwells in conductance classes, in sweeps.

    Class ``k`` has amplitude ``levels[k]`` (a conductance in S, or a current in A for a
    user's record); a class is *open* when its level is non-zero (or as given by
    ``open_classes``).  By convention class 0 is shut and, for records built from a scheme,
    classes 1, 2, ... are the distinct open conductance levels in decreasing order (class 1 =
    the main level, higher classes = sublevels).  Extra shut classes (e.g. long-lived shut
    states singled out to define bursts by state) have level 0.

    Consecutive dwells of one sweep are always in different classes.  The first dwell of each
    sweep began before the sweep started (left-censored) and the last one is cut by its end
    (right-censored); dwell-time methods drop both unless asked.

    The constructor takes the arrays as stored; :meth:`from_events`, :meth:`from_states`,
    :meth:`from_levels` and :meth:`from_dwells` build them from other forms.

    Parameters
    ----------
    start, duration : array_like of float, shape (m,)
        Start time (s, in the sweep's clock) and length (s, > 0) of each dwell; within a sweep
        each dwell starts where the previous one ends.
    cls : array_like of int, shape (m,)
        Class of each dwell, in ``[0, len(levels))``; consecutive dwells of a sweep must be in
        different classes.
    offsets : array_like of int, shape (n_sweeps + 1,)
        Non-decreasing from 0 to m: dwells ``offsets[s]:offsets[s+1]`` belong to sweep ``s``.
    levels : array_like of float, shape (n_classes,)
        Amplitude of each class (S, or A for a current record); at least one class.
    open_classes : sequence of int, optional
        Indices of the open classes, each in ``[0, len(levels))``; every other class is shut,
        whatever its level.  Default: the classes whose level is non-zero.
    t_res : float, default 0.0
        Time resolution (s) already imposed on the record (0 for an ideal record); finite,
        >= 0.
    class_names : sequence of str, optional
        One distinct name per class; default as described under ``class_names`` below.

    Attributes
    ----------
    start : ndarray, float64 (m,)
        Start time (s) of each dwell, in its sweep's clock.
    duration : ndarray, float64 (m,)
        Length (s) of each dwell.
    cls : ndarray, int64 (m,)
        Class of each dwell.
    offsets : ndarray, int64 (n_sweeps + 1,)
        Dwells ``offsets[s]:offsets[s+1]`` belong to sweep ``s``.
    levels : ndarray, float64 (n_classes,)
        Amplitude of each class (S or A; 0 for shut classes).
    is_open : ndarray, bool (n_classes,)
    t_res : float
        Time resolution (s) imposed so far (0 for the ideal record); finite, >= 0.
    class_names : tuple of str
        One distinct name per class (``len(levels)``).  Default, whatever the constructor:
        ``"open{k}"`` for an open class ``k`` and ``"shut{k}"`` for a shut one, except that
        class 0 is ``"shut"`` when it is the only shut class -- e.g. ``("shut", "open1",
        "open2")``, or ``("shut0", "open1", "shut2")`` with a second shut class.  Methods that
        take classes accept a class name, a class index, or the keywords ``"open"`` (every
        open class) and ``"shut"`` / ``"closed"`` (every shut class); so that every class can
        be selected by its name, a keyword is refused as the name of a class unless it is the
        only class of that kind.  (:meth:`from_events` used to name class 1 ``"open"``, a name
        that selected every open class, not class 1; it is ``"open1"``, as in
        :meth:`from_levels` and :meth:`from_dwells`.)
    """

    __slots__ = ("start", "duration", "cls", "offsets", "levels", "is_open", "t_res",
                 "class_names")

    def __init__(self, start, duration, cls, offsets, levels, *, open_classes=None,
                 t_res: float = 0.0, class_names: Optional[Sequence[str]] = None,
                 _trusted: bool = False) -> None:
        levels = _float_array("levels", levels)
        if levels.size == 0:
            raise ValueError("levels must name at least one class")
        if open_classes is None:
            is_open = levels != 0
        else:
            is_open = np.zeros(levels.size, bool)
            idx = _int_array("open_classes", open_classes)
            if idx.size and (idx.min() < 0 or idx.max() >= levels.size):
                raise ValueError(f"open_classes must be class indices in [0, {levels.size})")
            is_open[idx] = True
        if not _trusted:
            start = _float_array("start", start)
            duration = _float_array("duration", duration)
            cls = np.ascontiguousarray(_int_array("cls", cls), dtype=np.int64)
            offsets = np.ascontiguousarray(_int_array("offsets", offsets), dtype=np.int64)
            if not (start.shape == duration.shape == cls.shape):
                raise ValueError("start, duration and cls must have the same length")
            if np.any(duration <= 0):
                raise ValueError("duration must be > 0 for every dwell")
            if cls.size and (cls.min() < 0 or cls.max() >= levels.size):
                raise ValueError(f"cls must be class indices in [0, {levels.size}) (len(levels))")
            if (offsets.size < 1 or offsets[0] != 0 or offsets[-1] != cls.size
                    or np.any(np.diff(offsets) < 0)):
                raise ValueError("offsets must be non-decreasing from 0 to the number of dwells")
            _check_dwell_sequence(start, duration, cls, offsets)
        self.start = start
        self.duration = duration
        self.cls = cls
        self.offsets = offsets
        self.levels = levels
        self.is_open = is_open
        self.t_res = _real("t_res", t_res, nonnegative=True)
        self.class_names = _class_names(class_names, is_open)

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_events(cls, log, classes=None, *, levels=None, trials=None) -> "Record":
        """Idealised record of an :class:`~ketacore.simulate.EventLog`, one sweep per trial.

        Parameters
        ----------
        log : EventLog
            Output of :func:`ketacore.simulate_events`.
        classes : None, sequence of int or mapping state name -> int
            Class of every state.  Default: by conductance -- shut states class 0, the distinct
            non-zero conductances in decreasing order classes 1, 2, ...  Give a mapping to e.g.
            put long-lived shut states in their own shut class (for bursts defined by state,
            see :meth:`bursts` ``between``).
        levels : sequence of float, optional
            Amplitude of each class (S).  Default: the mean conductance of the states in it.
            Every class must be all-open or all-shut.
        trials : sequence of int, optional
            Positions in the log to include (default all).

        Returns
        -------
        Record
            One sweep per selected trial, each ending at the log's ``t_end`` (s).

        Notes
        -----
        Class names are the defaults of :class:`Record` (``"shut"``, ``"open1"``, ...).
        There is no ``decimals``: the levels are the scheme's conductances, exact, not
        measured amplitudes to identify.
        """
        from .simulate import EventLog
        if not isinstance(log, EventLog):
            raise TypeError(f"log must be a ketacore EventLog (from simulate_events), got "
                            f"{type(log).__name__}")
        scheme = log.scheme
        g = np.asarray(scheme.conductance, float)
        sc, lv = _classes_for_states(scheme.states, g, classes, levels)
        sel = range(len(log)) if trials is None else \
            [_int("trials[i]", i, minimum=0) for i in trials]
        ts, ss = [], []
        for i in sel:
            if i >= len(log):
                raise ValueError(f"trials: index {i} out of range for {len(log)} trials")
            ts.append(log.times[i])
            ss.append(log.states[i])
        t_end = np.full(len(ts), float(log.t_end))
        return cls._from_state_arrays(ts, ss, t_end, sc, lv, None, check=False)

    @classmethod
    def from_states(cls, times, states, t_end, classes, *, levels=None,
                    class_names=None) -> "Record":
        """Idealised record from entry times and state indices.

        Parameters
        ----------
        times : array or list of arrays (one per sweep), float (s)
            Time each state was entered, non-decreasing; the first entry is the sweep start.
        states : array or list of arrays, int
            State entered at each time (indices into ``classes``).
        t_end : float or sequence of float (s)
            End of each sweep, ``>= times[-1]``.
        classes : sequence of int
            Class of every state.
        levels : sequence of float, optional
            Amplitude of each class (S, or A for a current record, as in :class:`Record`);
            default 0 for class 0 and 1 for the others (class 0 shut, every other class open).
        class_names : sequence of str, optional
            One distinct name per class (``len(levels)``); default as in :class:`Record`.
            ``"open"``, ``"shut"`` or ``"closed"`` only for the one class of that kind
            (ValueError otherwise: the keyword selects every open / shut class).

        Returns
        -------
        Record

        Notes
        -----
        Class indices must be < :data:`MAX_CLASSES`.
        """
        ts = _as_sweeps("times", times)
        ss = _as_sweeps("states", states)
        if len(ts) != len(ss):
            raise ValueError(f"times and states must have the same number of sweeps "
                             f"({len(ts)} vs {len(ss)})")
        sc = np.ascontiguousarray(_int_array("classes", classes), dtype=np.int64)
        if sc.size == 0 or sc.min() < 0:
            raise ValueError("classes must be non-negative class indices, one per state")
        n_cls = int(sc.max()) + 1
        _check_class_range(n_cls)
        if levels is None:
            lv = np.ones(n_cls)
            lv[0] = 0.0
        else:
            lv = _float_array("levels", levels)
            if lv.size < n_cls:
                raise ValueError(f"levels must give an amplitude for each of the {n_cls} classes")
        t_end = _t_end_per_sweep(t_end, len(ts))
        return cls._from_state_arrays(ts, ss, t_end, sc, lv, class_names, check=True)

    @classmethod
    def from_levels(cls, times, levels, t_end, *, decimals: Optional[int] = None) -> "Record":
        """Idealised record from entry times and the amplitude entered at each time.

        Distinct amplitudes become classes: 0 is class 0 (shut), non-zero amplitudes classes 1,
        2, ... in decreasing order of ``|amplitude|`` (class 1 = main level, others sublevels),
        named ``"shut"``, ``"open1"``, ``"open2"``, ... (as in :class:`Record`).

        Parameters
        ----------
        times : array or list of arrays (s)
            Entry times, non-decreasing; the first is the sweep start.
        levels : array or list of arrays
            Amplitude (A or S) entered at each time; 0 = shut.
        t_end : float or sequence (s)
        decimals : int, optional
            Round amplitudes to this many decimals before identifying levels (for measured
            amplitudes that should coincide).  Amplitudes are in SI units, so the decimals
            are of amperes (or siemens): ``decimals=13`` rounds a current to 0.1 pA.
            Rounding may send baseline scatter to 0, but ValueError if it sends to 0 an
            amplitude of at least 10 % of the largest ``|amplitude|`` (e.g. ``decimals=1``
            on currents in A, which would make the whole record shut).
        """
        ts = _as_sweeps("times", times)
        ls = [_float_array("levels", x) for x in _as_sweeps("levels", levels)]
        if len(ts) != len(ls):
            raise ValueError(f"times and levels must have the same number of sweeps "
                             f"({len(ts)} vs {len(ls)})")
        if decimals is not None:
            dec = _int("decimals", decimals)
            rounded = [np.round(x, dec) for x in ls]
            _check_rounding(ls, rounded, dec)
            ls = rounded
        allv = np.unique(np.concatenate(ls)) if ls else np.zeros(0)
        nz = allv[allv != 0]
        nz = nz[np.argsort(-np.abs(nz), kind="stable")]
        lv = np.concatenate(([0.0], nz))
        # entry value x -> its position p in sorted(lv) -> class order[p]
        order = np.argsort(lv, kind="stable")
        sorted_lv = lv[order]
        states = [np.searchsorted(sorted_lv, x).astype(np.int64) for x in ls]
        sc = order.astype(np.int64)
        t_end = _t_end_per_sweep(t_end, len(ts))
        return cls._from_state_arrays(ts, states, t_end, sc, lv, None, check=True)

    @classmethod
    def from_dwells(cls, durations, amplitudes, *, t_start: float = 0.0,
                    decimals: Optional[int] = None, usable=None) -> "Record":
        """Idealised record from a list of intervals (e.g. an SCN file, :meth:`from_scn`).

        Parameters
        ----------
        durations : array (s)
            Length of each interval, > 0.
        amplitudes : array
            Amplitude of each interval (A or S); 0 = shut.  Classes and their names as in
            :meth:`from_levels` (``"shut"``, ``"open1"``, ...).
        t_start : float
            Start time (s) of the first interval.
        decimals : int, optional
            Round amplitudes to this many decimals of A (or S) before identifying levels,
            with the same check as :meth:`from_levels` (``decimals=13`` rounds to 0.1 pA).
            Consecutive intervals that become equal are merged.
        usable : array of bool, optional
            False for an interval whose duration cannot be used (SCAN's "unusable" flag: a
            noisy or otherwise uninterpretable stretch).  Unusable intervals are left out and
            cut the record into sweeps: each run of usable intervals is one sweep, so its
            first and last dwells are censored like a sweep's ends -- dwell-time methods drop
            them, :meth:`resolve` does not merge across the gap and :meth:`hjc_groups` and
            :meth:`bursts` never span it.  (DCPROGS differs in two ways: HJCFIT/DCPYPS end a
            group at an unusable shut time but keep the opening before it, and drop a whole
            group that contains an unusable opening, where here its usable parts either side
            remain.)  An unusable interval's length may be anything (SCAN writes -1 for an
            unknown one); it is not used, except that a finite positive length advances the
            clock.  Dwell start times stay in the record's clock (not each sweep's own, so
            :meth:`first_latency` does not apply; after a gap of unknown length they are lower
            bounds).  All intervals unusable: one empty sweep.  Default: every interval usable,
            one sweep.

        Returns
        -------
        Record
        """
        d = _float_array("durations", durations, finite=usable is None)
        a = _float_array("amplitudes", amplitudes)
        if d.shape != a.shape:
            raise ValueError(f"durations and amplitudes must have the same length "
                             f"({d.size} vs {a.size})")
        t0 = _real("t_start", t_start)
        u = None
        if usable is not None:
            u = np.asarray(usable)
            if u.dtype != bool:
                raise TypeError(f"usable must be an array of bool (True = usable interval), got "
                                f"dtype {u.dtype}")
            if u.shape != d.shape:
                raise ValueError(f"usable must have one value per interval ({d.size}), got shape "
                                 f"{u.shape}")
            bad = np.flatnonzero(u & ~(np.isfinite(d) & (d > 0)))
            if bad.size:
                raise ValueError(f"durations of usable intervals must be finite and > 0; interval "
                                 f"{int(bad[0])} has {float(d[bad[0]])!r} s")
            if u.all():
                u = None
        elif np.any(d <= 0):
            raise ValueError("durations must be > 0")
        du, au = (d, a) if u is None else (d[u], a[u])
        if decimals is not None:
            dec = _int("decimals", decimals)
            r = np.round(au, dec)
            _check_rounding([au], [r], dec)
            au = r
        # classes as in from_levels; durations are kept exactly (consecutive intervals at one
        # level are merged by summation, left to right, never across an unusable interval)
        nz = np.unique(au[au != 0])
        nz = nz[np.argsort(-np.abs(nz), kind="stable")]
        lv = np.concatenate(([0.0], nz))
        c = np.zeros(au.size, np.int64)
        for k, v in enumerate(nz, start=1):
            c[au == v] = k
        # one sweep per run of usable intervals, each starting at its time in the record's clock
        # (an unusable length that is not finite and > 0, e.g. SCAN's -1: no clock time)
        if u is None:
            run = np.zeros(du.size, np.int64)
            run_t0 = np.array([t0])
        else:
            idx = np.flatnonzero(u)
            run_first = np.concatenate(([True], idx[1:] != idx[:-1] + 1)) if idx.size else idx.astype(bool)
            run = np.cumsum(run_first) - 1
            clock = t0 + np.concatenate(([0.0], np.cumsum(np.where(np.isfinite(d) & (d > 0), d, 0.0))[:-1]))
            run_t0 = clock[idx[run_first]]
        if du.size:
            first = np.flatnonzero(np.concatenate(([True], (c[1:] != c[:-1]) | (run[1:] != run[:-1]))))
            dd = np.add.reduceat(du, first) if first.size < du.size else du.copy()
            cc, rr = c[first], run[first]
        else:
            dd, cc, rr = du.copy(), c, run
        offsets = np.concatenate(([0], np.flatnonzero(np.diff(rr)) + 1, [cc.size])).astype(np.int64)
        st = np.empty(dd.size)
        for k in range(offsets.size - 1):
            lo, hi = int(offsets[k]), int(offsets[k + 1])
            if hi > lo:
                st[lo:hi] = run_t0[rr[lo]] + np.concatenate(([0.0], np.cumsum(dd[lo:hi])[:-1]))
        return cls(st, dd, cc, offsets, lv)

    @classmethod
    def from_scn(cls, path, *, classes: str = "open/shut", decimals: Optional[int] = None) -> "Record":
        """Idealised record from SCAN ``.scn`` files (DCPROGS), read with the ``dcio`` package.

        Parameters
        ----------
        path : str or path-like, or a sequence of them
            The ``.scn`` file, or several (e.g. the patches of one concentration, pooled as
            HJCFIT pools them): they follow one another, each cut from the next as by an
            unusable interval (its ends censored; start times continue in one clock).
        classes : {"open/shut", "amplitudes"}
            ``"open/shut"`` (default): one open class, whose level is the duration-weighted
            mean amplitude of the usable openings of all files (A), and one shut class;
            consecutive openings (sublevel changes) form one open dwell -- the two classes of
            the HJC likelihood (:meth:`hjc_groups`).  ``"amplitudes"``: one class per distinct
            amplitude, as :meth:`from_dwells` (``decimals`` groups them).
        decimals : int, optional
            With ``classes="amplitudes"``: as in :meth:`from_dwells` (decimals of A).

        Returns
        -------
        Record
            Intervals in s, amplitudes in A (SCAN stores ms and calibrated pA; ``dcio``
            converts); intervals flagged unusable (flag bit 8) cut the record into sweeps as
            ``from_dwells(usable=...)`` does.

        Raises
        ------
        ImportError
            ``dcio`` is not installed (``pip install 'ketacore[scn]'``).
        ValueError
            A file holds concentration-jump sweeps (flag bits 32/64: read each sweep with
            :meth:`from_dwells`), a usable interval of zero or negative length, or (with
            ``"open/shut"``) usable openings of both signs.
        """
        if classes not in ("open/shut", "amplitudes"):
            raise ValueError(f"classes must be 'open/shut' or 'amplitudes', got {classes!r}")
        if decimals is not None and classes != "amplitudes":
            raise ValueError("decimals applies to classes='amplitudes' only")
        try:
            from dcio.formats import scn as _scn
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError("Record.from_scn reads SCAN files with the dcio package: "
                              "pip install 'ketacore[scn]' (or pip install dcio)") from None
        paths = [path] if isinstance(path, (str, bytes, os.PathLike)) else path
        if not isinstance(paths, _abc.Iterable) or isinstance(paths, _abc.Mapping):
            raise TypeError(f"path must be a file path (str or path-like) or a sequence of them, "
                            f"got {type(path).__name__}")
        paths = list(paths)
        if not paths:
            raise ValueError("path: give at least one .scn file")
        for pth in paths:
            if not isinstance(pth, (str, bytes, os.PathLike)):
                raise TypeError(f"path: each file must be a str or path-like, got {type(pth).__name__} "
                                f"({pth!r})")
        ds, as_, us = [], [], []
        for k, pth in enumerate(paths):
            if k:  # a file boundary: an unusable interval of no length
                ds.append(np.zeros(1))
                as_.append(np.zeros(1))
                us.append(np.zeros(1, bool))
            rec = _scn.read(pth)
            flags = np.asarray(rec.flags).astype(np.int64) & 0xFF
            if np.any(flags & (_scn.FLAG_SWEEP_FIRST | _scn.FLAG_SWEEP_LAST)):
                raise ValueError(f"{pth}: concentration-jump sweeps (flag bits 32/64) are not read "
                                 "by from_scn; build one Record per sweep with Record.from_dwells")
            d = np.asarray(rec.intervals, dtype=np.float64)
            usable = (flags & _scn.FLAG_UNUSABLE) == 0
            bad = np.flatnonzero(~(d > 0) & usable)
            if bad.size:
                raise ValueError(f"{pth}: interval {int(bad[0])} has length {float(d[bad[0]])!r} s; "
                                 "usable intervals must be > 0")
            ds.append(d)
            as_.append(np.asarray(rec.amplitudes, dtype=np.float64) * 1e-12)  # pA -> A
            us.append(usable)
        d, a, usable = np.concatenate(ds), np.concatenate(as_), np.concatenate(us)
        if classes == "open/shut":
            op = (a != 0) & usable
            if np.any(a[op] > 0) and np.any(a[op] < 0):
                raise ValueError(f"{paths[0] if len(paths) == 1 else 'the files'}: usable openings "
                                 "have amplitudes of both signs; one open class "
                                 "(classes='open/shut') needs one sign: use classes='amplitudes' "
                                 "(one class per amplitude)")
            level = float(np.sum(a[op] * d[op]) / np.sum(d[op])) if op.any() else 0.0
            a = np.where(a != 0, level if op.any() else 1.0, 0.0)
        # (an unusable interval may carry SCAN's -1 length: it is left out, as any unusable one)
        return cls.from_dwells(d, a, usable=usable, decimals=decimals)

    @classmethod
    def _from_state_arrays(cls, ts, ss, t_end, sc, lv, names, *, check: bool) -> "Record":
        n_states = sc.size
        lens = np.array([len(t) for t in ts], dtype=np.int64)
        ev_off = np.concatenate(([0], np.cumsum(lens))).astype(np.int64)
        if len(ts):
            times = np.ascontiguousarray(np.concatenate(ts), dtype=np.float64)
            st = np.concatenate(ss)
        else:
            times = np.zeros(0)
            st = np.zeros(0, np.int64)
        if st.dtype not in (np.int32, np.int64):
            st = _int_array("states", st).astype(np.int64)
        st = np.ascontiguousarray(st)
        if check:
            for k, (t, s) in enumerate(zip(ts, ss)):
                if len(t) != len(s):
                    raise ValueError(f"sweep {k}: times and states/levels differ in length "
                                     f"({len(t)} vs {len(s)})")
            if times.size and not np.all(np.isfinite(times)):
                raise ValueError("times must be finite")
            if st.size and (st.min() < 0 or st.max() >= n_states):
                raise ValueError(f"states must be indices in [0, {n_states}) (len(classes))")
            for k in range(len(ts)):
                t = times[ev_off[k]:ev_off[k + 1]]
                if t.size == 0:
                    raise ValueError(f"sweep {k} is empty: every sweep needs its start entry")
                if np.any(np.diff(t) < 0):
                    raise ValueError(f"times must be non-decreasing (sweep {k})")
                if not t_end[k] >= t[-1]:
                    raise ValueError(f"t_end ({t_end[k]}) is before the last entry time "
                                     f"({t[-1]}) of sweep {k}")
        start, dur, c, off = _analysis.dwell_sequence_multi(times, st, sc, ev_off,
                                                            np.ascontiguousarray(t_end, float))
        return cls(start, dur, c, off, lv, class_names=names, _trusted=True)

    # ------------------------------------------------------------------ basics
    @property
    def n_sweeps(self) -> int:
        """Number of sweeps."""
        return int(self.offsets.size - 1)

    @property
    def n_dwells(self) -> int:
        """Number of dwells over all sweeps."""
        return int(self.cls.size)

    @property
    def n_classes(self) -> int:
        """Number of amplitude classes."""
        return int(self.levels.size)

    @property
    def amplitude(self) -> np.ndarray:
        """Amplitude of each dwell (``levels[cls]``)."""
        return self.levels[self.cls]

    @property
    def sweep(self) -> np.ndarray:
        """Sweep index of each dwell."""
        return np.repeat(np.arange(self.n_sweeps), np.diff(self.offsets))

    def __len__(self) -> int:
        return self.n_dwells

    def __repr__(self) -> str:
        return (f"Record({self.n_sweeps} sweeps, {self.n_dwells} dwells, "
                f"classes={list(self.class_names)}, t_res={self.t_res:g} s)")

    def _class_mask(self, which, name: str) -> np.ndarray:
        if isinstance(which, str):
            if which == "open":
                return self.is_open.copy()
            if which in ("shut", "closed"):
                return ~self.is_open
            if which in self.class_names:
                m = np.zeros(self.n_classes, bool)
                m[self.class_names.index(which)] = True
                return m
            raise ValueError(f"{name} must be 'open', 'shut', a class name in "
                             f"{list(self.class_names)} or class indices, got {which!r}")
        idx = np.atleast_1d(np.asarray(which))
        if idx.dtype == bool:
            if idx.size != self.n_classes:
                raise ValueError(f"{name}: a boolean mask needs {self.n_classes} entries")
            return idx.copy()
        idx = _int_array(name, idx)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_classes):
            raise ValueError(f"{name} must be class indices in [0, {self.n_classes})")
        m = np.zeros(self.n_classes, bool)
        m[idx] = True
        return m

    # ------------------------------------------------------------------ dwell times
    def periods(self, which="open", *, include_first: bool = False, include_last: bool = False,
                return_start: bool = False):
        """Durations (s) of maximal runs of dwells in a set of classes.

        Parameters
        ----------
        which : "open", "shut", a class name, class index/indices or boolean mask
            ``"open"`` gives open periods (consecutive open dwells of different levels are
            one period), ``"shut"`` shut periods.
        include_first, include_last : bool
            Keep the left-censored first and right-censored last period of each sweep.
        return_start : bool
            Also return the start time (s) and sweep index of each period.
        """
        mask = self._class_mask(which, "which")
        s, d, sw = _analysis.periods(self.start, self.duration, self.cls, self.offsets,
                                     _u8(mask), bool(include_first), bool(include_last))
        return (d, s, sw) if return_start else d

    def open_times(self, *, include_first: bool = False, include_last: bool = False) -> np.ndarray:
        """Open periods (s): runs of open dwells (any open level), censored ends dropped."""
        return self.periods("open", include_first=include_first, include_last=include_last)

    def shut_times(self, *, include_first: bool = False, include_last: bool = False) -> np.ndarray:
        """Shut periods (s): runs of shut dwells (any shut class), censored ends dropped."""
        return self.periods("shut", include_first=include_first, include_last=include_last)

    def dwells(self, which=None, *, include_first: bool = False,
               include_last: bool = False) -> np.ndarray:
        """Durations (s) of the individual dwells of the given class(es) (default: all).

        Unlike :meth:`periods`, adjacent dwells in two selected classes stay separate
        (e.g. a main-level opening followed by a sublevel are two dwells).
        """
        keep = np.ones(self.n_dwells, bool)
        if which is not None:
            keep &= self._class_mask(which, "which")[self.cls]
        if self.n_dwells:
            nonempty = self.offsets[:-1] < self.offsets[1:]
            if not include_first:
                keep[self.offsets[:-1][nonempty]] = False
            if not include_last:
                keep[self.offsets[1:][nonempty] - 1] = False
        return self.duration[keep]

    def first_latency(self, t0: float = 0.0, target="open") -> np.ndarray:
        """Time (s) from ``t0`` to the first entry into ``target`` in each sweep.

        0 where the sweep is already in ``target`` at ``t0``; NaN where ``target`` is never
        reached before the sweep ends.  Compare with :func:`ketacore.theory.first_latency`
        (conditional on reaching the target: drop the NaNs and condition the theory on a
        latency ``<= t_end - t0``, with ``t_end`` the end of the sweep: latencies are measured
        from ``t0``, not from the sweep start).
        """
        t0 = _real("t0", t0)
        mask = self._class_mask(target, "target")
        return _analysis.first_entry(self.start, self.duration, self.cls, self.offsets,
                                     _u8(mask), t0)

    def open_probability(self, *, per_sweep: bool = False):
        """Fraction of the recorded time spent open (in any open class).

        ``sum(open dwell durations) / sum(all durations)`` over every dwell, the censored
        first and last ones included (they are recorded time; only their *durations* as
        dwell-time samples are biased).  For an equilibrium record this estimates
        :func:`ketacore.theory.open_probability`; on a resolved record it is the apparent
        open probability (time is conserved by :meth:`resolve`, but unresolved openings are
        counted as shut and unresolved shuttings as open).

        Parameters
        ----------
        per_sweep : bool
            Return one value per sweep (NaN for an empty sweep) instead of the pooled value.

        Returns
        -------
        float or ndarray
            Dimensionless, in [0, 1]; NaN when the record holds no time.
        """
        per_sweep = _V.flag("per_sweep", per_sweep)
        open_d = np.where(self.is_open[self.cls], self.duration, 0.0)
        if per_sweep:
            sw = self.sweep
            tot = np.bincount(sw, self.duration, minlength=self.n_sweeps)
            op = np.bincount(sw, open_d, minlength=self.n_sweeps)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(tot > 0, op / np.where(tot > 0, tot, 1.0), np.nan)
        tot = float(self.duration.sum())
        return float(open_d.sum() / tot) if tot > 0 else math.nan

    # ------------------------------------------------------------------ resolution
    def resolve(self, t_res: float) -> "Record":
        """The record as seen with time resolution (dead time) ``t_res`` (s).

        Rule (the HJCFIT/EKDIST convention assumed by the missed-events theory of [HJC90] and
        [CHS96]; see also [CS95]), applied to *observed dwells*: maximal runs of consecutive
        dwells in classes of the same level (and open/shut kind), which no detector can tell
        apart -- e.g. a separate class of long-lived shut states next to the other shut
        class is one shut period.  In each sweep the first observed dwell is kept as it is;
        every later one shorter than ``t_res`` (strictly; its total duration) is unresolved,
        and its duration is added to the preceding resolved dwell (the current one: a series
        of consecutive unresolved dwells all go to it); a resolved observed dwell
        (``>= t_res``) at the level of the current one is concatenated with it (the brief
        excursion between them was missed); a resolved one at another level starts a new
        dwell.  So every observed dwell after the first is ``>= t_res``, time is conserved,
        and consecutive observed dwells are at different levels.  Classes of different levels
        are resolved separately (a sublevel is distinct from the main level); a 2-class
        record reduces to the open/shut rule, which is also what HJCFIT/DCPROGS do with the
        amplitudes of a recorded idealisation.  An unresolved opening thus lengthens the shut
        period around it, and an unresolved shutting joins the openings on either side into
        one apparent opening.

        Within an observed dwell the classes are kept (so that :meth:`bursts` can still tell
        a ``between`` class), with the unresolved time added to its last dwell: such a
        resolved record's individual :meth:`dwells` may be shorter than ``t_res``, while its
        :meth:`periods` (open and shut times) are the observed durations.

        A record that is already resolved is resolved again as it stands: a ``t_res`` not
        larger than the current one returns the record unchanged, a larger one applies the
        rule to the already-resolved dwells (for exact comparison with a single imposition,
        resolve the ideal record once).  ``tests/test_analysis.py`` holds a pure-Python
        statement of the rule that this kernel must match exactly.

        Parameters
        ----------
        t_res : float
            Time resolution (dead time) to impose (s, like the record's durations); finite,
            >= 0.

        Returns
        -------
        Record
            The resolved record, with ``t_res`` set to the value given; ``self`` itself when
            ``t_res`` is not larger than the record's current ``t_res``.

        Raises
        ------
        ValueError
            If ``t_res`` is negative or not finite, or longer than every observed dwell after
            a transition (no transition would be resolved: almost always a value in other
            units than seconds).

        Warns
        -----
        UserWarning
            When the resolved observed dwells (after the first of each sweep) look like
            milliseconds, by the rule of :func:`fit_mixture` (Warns section there).
        """
        t_res = _real("t_res", t_res, nonnegative=True)
        if t_res <= self.t_res:
            return self
        # a t_res longer than every dwell that follows a transition leaves no transition at
        # all (each sweep becomes its first dwell): nothing is resolved, and almost always the
        # value was meant in other units (t_res = 50 meaning 50 us)
        obs = self._observed(full=False)
        if obs[1].any() and not np.any(obs[0][obs[1]] >= t_res):
            raise ValueError(f"t_res={t_res:g} s is longer than every dwell of the record (the "
                             f"longest after a transition is {obs[0][obs[1]].max():g} s): "
                             "no transition would be resolved.  t_res is in seconds (write "
                             "50 * ketacore.units.us)")
        s, d, c, off = _analysis.impose_resolution(self.start, self.duration, self.cls,
                                                   self.offsets, self._observation_key(), t_res)
        out = Record(s, d, c, off, self.levels, open_classes=np.flatnonzero(self.is_open),
                     t_res=t_res, class_names=self.class_names, _trusted=True)
        # a record in ms resolved at a t_res in s (its observed dwells after the first of
        # each sweep, all >= t_res, are what fit_mixture and hjc_loglik would get)
        d_obs, later = out._observed(full=False)
        _warn_if_units_mixed("Record.resolve", d_obs[later], t_res, stacklevel=2)
        return out

    def _observation_key(self) -> np.ndarray:
        """int64 key per class: classes with the same open/shut kind and level share a key
        (a detector cannot tell them apart; :meth:`resolve`)."""
        seen: dict = {}
        key = [seen.setdefault((bool(o), float(v) + 0.0), len(seen))     # -0.0 -> 0.0
               for o, v in zip(self.is_open.tolist(), self.levels.tolist())]
        return np.array(key, dtype=np.int64)

    def _observed(self, full: bool = True) -> tuple:
        """(durations, later, is_open, sweep) of the observed dwells: maximal runs of
        consecutive dwells of one sweep with the same observation key, summed left to right;
        ``later`` is False for the first observed dwell of each sweep.  ``full=False``: only
        (durations, later)."""
        n = self.n_dwells
        if n == 0:
            e = np.zeros(0)
            return (e, np.zeros(0, bool), np.zeros(0, bool), np.zeros(0, np.int64))[:4 if full else 2]
        key = self._observation_key()
        if int(key.max()) + 1 == key.size:         # (keys are numbered as first seen)
            # every class observable on its own (e.g. open/shut): the observed dwells are the
            # dwells (consecutive dwells are in different classes)
            later = np.ones(n, bool)
            later[self.offsets[:-1][self.offsets[:-1] < n]] = False
            if not full:
                return self.duration, later
            return self.duration, later, self.is_open[self.cls], self.sweep
        k = key[self.cls]
        sweep = self.sweep
        new = np.ones(n, bool)
        new[1:] = (k[1:] != k[:-1]) | (sweep[1:] != sweep[:-1])
        first = np.flatnonzero(new)
        d = _analysis.sum_runs(self.duration, np.ascontiguousarray(first, dtype=np.int64))
        later = np.ones(first.size, bool)
        later[1:] = sweep[first[1:]] == sweep[first[:-1]]
        later[0] = False
        if not full:
            return d, later
        return d, later, self.is_open[self.cls[first]], sweep[first]

    def hjc_groups(self, t_crit: Optional[float] = None) -> list:
        """Groups of resolved open and shut times for :func:`ketacore.theory.hjc_loglik`.

        Each group is a float array ``[open, shut, open, ..., open]`` (s): a stretch of one
        sweep that starts and ends with a complete opening.  In each sweep the censored first
        and last dwells are dropped, then any shut time before the first complete opening and
        after the last one; the rest is one group, or, with ``t_crit``, is split at every
        shut time longer than ``t_crit`` (strictly, as :meth:`bursts`), which is dropped.  A
        sweep without a complete opening gives no group.  Pass the same ``t_crit`` to
        ``hjc_loglik`` to use the CHS96 start and end vectors, and ``t_res=self.t_res``.

        Parameters
        ----------
        t_crit : float, optional
            Critical shut time (s), ``> t_res``.

        Returns
        -------
        list of ndarray
            One float64 array of odd length per group, in sweep and time order; every
            interval ``>= t_res``.

        Raises
        ------
        ValueError
            The record is not resolved (``t_res == 0``: the HJC likelihood needs the
            resolution, so call :meth:`resolve` first); ``t_crit`` not > ``t_res``; or the
            dwells use more than one open or more than one shut *level* (a sublevel).  The
            HJC theory has two classes, and :meth:`resolve` treats each level separately (a
            brief sublevel between a shut time and a main-level opening lengthens the shut
            time), which is not the open/shut resolution the theory assumes: build the record
            with one open level (``Record.from_events(log, classes=...)`` mapping every open
            state to 1) before resolving it.  Several classes at one level (e.g. a class of
            long-lived shut states, level 0, beside the other shut class) are fine: their
            consecutive dwells form one observed interval, as in :meth:`resolve`.
        """
        if not self.t_res > 0:
            raise ValueError("hjc_groups: the record is not resolved (t_res = 0); the HJC "
                             "likelihood needs the time resolution: call .resolve(t_res) "
                             "first (t_res in s, e.g. 50 * ketacore.units.us)")
        if t_crit is not None:
            t_crit = _real("t_crit", t_crit, positive=True)
            if not t_crit > self.t_res:
                raise ValueError(f"t_crit must be > t_res={self.t_res:g} s, got {t_crit!r}")
        used = np.unique(self.cls)
        key = self._observation_key()
        n_open = np.unique(key[used[self.is_open[used]]]).size
        n_shut = np.unique(key[used[~self.is_open[used]]]).size
        if n_open > 1 or n_shut > 1:
            names = [f"{self.class_names[int(k)]} ({self.levels[int(k)]:g})" for k in used]
            raise ValueError(f"hjc_groups: the dwells use classes (levels) {names}: more than "
                             "one open or shut level.  The HJC likelihood has one open and one "
                             "shut class, and resolving each level separately differs from "
                             "resolving open/shut.  Build the record with one open level "
                             "(e.g. Record.from_events(log, classes=...) mapping every open "
                             "state to 1), then resolve it")
        d, later, is_open, sweep = self._observed()
        n = d.size
        if n == 0:
            return []
        idx = np.arange(n)
        inner = later.copy()                                # censored first dwells out
        inner[:-1] &= later[1:]                             # censored last dwells out
        inner[-1] = False
        cand = inner & is_open
        lo = np.full(self.n_sweeps, n, np.int64)
        hi = np.full(self.n_sweeps, -1, np.int64)
        np.minimum.at(lo, sweep[cand], idx[cand])
        np.maximum.at(hi, sweep[cand], idx[cand])
        keep = (idx >= lo[sweep]) & (idx <= hi[sweep])
        if t_crit is not None:
            keep &= is_open | (d <= t_crit)
        # kept dwells never neighbour across sweeps (each sweep's first and last are dropped)
        k = np.flatnonzero(keep)
        if k.size == 0:
            return []
        starts = np.flatnonzero(np.diff(k) > 1) + 1
        return [np.array(g, dtype=np.float64) for g in np.split(d[k], starts)]

    # ------------------------------------------------------------------ bursts
    def bursts(self, t_crit: float = math.inf, *, between=None,
               complete_only: bool = True) -> "BurstResult":
        """Bursts of openings separated by long shut periods.

        A shut period (run of shut dwells) ends a burst when it is longer than ``t_crit``
        (strictly, as in EKDIST) or contains a dwell of a ``between`` class; otherwise it is a
        gap within the burst.  With simulated records, ``between`` = the class of the
        long-lived shut states and ``t_crit = inf`` gives the bursts of Colquhoun & Hawkes
        (1982) exactly (set C of :func:`ketacore.theory.bursts`); with experimental records
        use ``t_crit`` from :func:`critical_time`.

        Parameters
        ----------
        t_crit : float
            Critical shut time (s), > 0 and > the record's ``t_res`` (``inf``: only
            ``between`` classes separate).
        between : class name(s)/index(es), optional
            Shut classes whose presence in a shut period makes it a between-burst gap.
        complete_only : bool
            Keep only bursts with a known start and end (preceded and followed by a separating
            shut period within the sweep); incomplete ones are censored by the sweep ends.
            On sweeps not much longer than the bursts this selects against long bursts (see
            Notes).

        Returns
        -------
        BurstResult

        Notes
        -----
        *Selection by* ``complete_only`` *on short sweeps.*  A long burst is more likely to be
        cut by a sweep end than a short one.  When bursts start uniformly in time (a stationary
        record cut into sweeps of length T), a burst of length L that starts in a sweep is
        complete with probability ``(T - L) / T`` for ``L < T`` and 0 for ``L >= T``.  The
        complete bursts then have the length density ``(T - l) f(l) / D`` for ``l < T``, with
        ``f`` the pdf of the burst length (:attr:`ketacore.theory.Bursts.length`) and
        ``D = int_0^T (T - u) f(u) du`` (``D / T`` is the fraction kept), and their mean
        length is ``int_0^T l (T - l) f(l) dl / D``.  For T well above the mean burst length
        m this is ``m - sd**2 / (T - m)`` (exact when no burst is longer than T), a relative
        bias of about ``-CV**2 m / (T - m)``.

        For example, CH82 at 0.1 uM (``ketacore.theory.bursts(ketacore.models.get("ch82"),
        ["AR", "A2R"], agonist=1e-7)``: m = 7.33 ms, CV = 1.29): in sweeps of T = 2, 5, 10
        and 20 m the complete bursts' mean length is 0.32, 0.63, 0.82 and 0.91 m, and 61, 80,
        90 and 95 % of the bursts that start in a sweep are kept.  So compare the mean length
        of complete bursts from short sweeps with this selected theory, not with
        ``mean_length`` (:meth:`BurstResult.compare` does the latter); the other per-burst
        means (openings, open and shut time, and less so the mean gap) are biased low too.

        The formula is exact for bursts that start and end with a direct transition between
        the ``between`` class and an open state (tests/test_burst_selection.py checks it
        against simulated stationary sweeps of C <-> O <-> OB, where the complete bursts of
        sweeps of T = 2 m are on average 56 % shorter than ``mean_length``).  Otherwise a
        burst is only known to be complete once the separating shut period after it is
        recognised (longer than ``t_crit``, or reaching a ``between`` class) before the sweep
        ends, and the one before it after the sweep starts, which shortens the effective T:
        for CH82 at T = 2 m, 4e6 simulated stationary sweeps give 0.29 m (SE 0.004 m) against
        0.32 m.  Sweeps that start with a step (e.g. a concentration jump) are not
        stationary: a burst of length L is then kept with probability proportional to the
        expected number of bursts that start in ``(0, T - L)``, which again selects against
        long bursts.

        There is no correction option: the inverse-probability weights ``T / (T - L)``
        recover only the distribution of the bursts shorter than T, and have infinite
        variance (``int_0^T f(l) / (T - l) dl`` diverges).  ``complete_only=False`` keeps the
        censored bursts, whose lengths are lower bounds.
        """
        t_crit = _real("t_crit", t_crit, positive=True, finite=False)
        if not t_crit > self.t_res:
            # every resolved shut period is >= t_res, so each would end a burst
            raise ValueError(f"t_crit must be > the record's t_res={self.t_res:g} s (every "
                             f"resolved shut time is >= t_res), got {t_crit!r}")
        bmask = np.zeros(self.n_classes, bool) if between is None else \
            self._class_mask(between, "between")
        if np.any(bmask & self.is_open):
            raise ValueError("between must list shut classes only")
        if not np.isfinite(t_crit) and not bmask.any():
            raise ValueError("t_crit = inf needs 'between' classes, or no burst would ever end")
        out = _analysis.bursts(self.start, self.duration, self.cls, self.offsets,
                               _u8(self.is_open), _u8(bmask), t_crit)
        bs, bl, bo, bsh, bn, bc, bw, gaps, gb = out
        res = BurstResult(start=bs, length=bl, n_openings=bn, open_time=bo, shut_time=bsh,
                          complete=bc, sweep=bw, gaps=gaps, gap_burst=gb, t_crit=t_crit,
                          t_res=self.t_res)
        return res.complete_bursts() if complete_only else res


def _classes_for_states(states, g, classes, levels):
    """state -> class mapping and class levels for a scheme's states (the class names are
    the defaults of :class:`Record`)."""
    n = len(states)
    if classes is None:
        nz = np.unique(g[g != 0])
        nz = nz[np.argsort(-np.abs(nz), kind="stable")]
        lv = np.concatenate(([0.0], nz))
        sc = np.zeros(n, np.int64)
        for k, v in enumerate(nz, start=1):
            sc[g == v] = k
        if levels is not None:
            lv = _float_array("levels", levels)
            if lv.size != nz.size + 1:
                raise ValueError(f"levels must have {nz.size + 1} entries (one per class)")
            _check_levels_match(lv, [np.flatnonzero(sc == k) for k in range(lv.size)], g,
                                states)
        return sc, lv
    if isinstance(classes, Mapping):
        missing = [s for s in states if s not in classes]
        extra = [s for s in classes if s not in states]
        if missing or extra:
            raise ValueError(f"classes must map every state to a class; missing {missing}, "
                             f"unknown {extra}")
        sc = np.array([classes[s] for s in states])
    else:
        sc = np.asarray(classes)
    sc = _int_array("classes", sc).astype(np.int64)
    if sc.size != n:
        raise ValueError(f"classes must give one class per state ({n}), got {sc.size}")
    if sc.min() < 0:
        raise ValueError("classes must be non-negative")
    n_cls = int(sc.max()) + 1
    _check_class_range(n_cls)
    for k in range(n_cls):            # with or without levels: a class is open or shut
        gk = g[sc == k]
        if gk.size and np.any(gk != 0) and np.any(gk == 0):
            bad = [states[i] for i in np.flatnonzero(sc == k)]
            raise ValueError(f"classes: class {k} mixes open and shut states {bad}")
    if levels is None:
        lv = np.zeros(n_cls)
        for k in range(n_cls):
            gk = g[sc == k]
            lv[k] = gk.mean() if gk.size else 0.0
    else:
        lv = _float_array("levels", levels)
        if lv.size != n_cls:
            raise ValueError(f"levels must have {n_cls} entries (one per class)")
        _check_levels_match(lv, [np.flatnonzero(sc == k) for k in range(n_cls)], g, states)
    return sc, lv


def _check_levels_match(lv, members, g, states) -> None:
    """A class's level is 0 exactly when its states are shut (a level decides is_open)."""
    for k, idx in enumerate(members):
        if idx.size == 0:
            continue
        conducts = bool(np.any(g[idx] != 0))
        if conducts != bool(lv[k] != 0):
            names = [states[i] for i in idx]
            what = "open" if conducts else "shut"
            raise ValueError(f"levels[{k}] = {lv[k]:g} but class {k} holds {what} states "
                             f"{names}: the level of a class of open states must be non-zero "
                             "and that of shut states 0 (a level of 0 makes a class shut)")


# ---------------------------------------------------------------------------
# bursts
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BurstResult:
    """Bursts found in a :class:`Record` (see :meth:`Record.bursts`).

    Attributes
    ----------
    start : ndarray (s)
        Start of the first opening of each burst.
    length : ndarray (s)
        From the start of the first opening to the end of the last.
    n_openings : ndarray of int
        Open periods per burst.
    open_time, shut_time : ndarray (s)
        Total open time and total within-burst shut time per burst
        (``open_time + shut_time == length``).
    complete : ndarray of bool
    sweep : ndarray of int
    gaps : ndarray (s)
        Every within-burst shut period; ``gap_burst`` gives its burst (row index here).
    t_crit, t_res : float (s)
    """

    start: np.ndarray
    length: np.ndarray
    n_openings: np.ndarray
    open_time: np.ndarray
    shut_time: np.ndarray
    complete: np.ndarray
    sweep: np.ndarray
    gaps: np.ndarray
    gap_burst: np.ndarray
    t_crit: float
    t_res: float = 0.0

    def __repr__(self) -> str:
        return _compact_repr(self)

    def __len__(self) -> int:
        return int(self.length.size)

    @property
    def n_bursts(self) -> int:
        """Number of bursts."""
        return int(self.length.size)

    def complete_bursts(self) -> "BurstResult":
        """Only the complete bursts (and their gaps)."""
        keep = np.asarray(self.complete, bool)
        if keep.all():
            return self
        new_index = np.cumsum(keep) - 1
        gk = keep[self.gap_burst] if self.gap_burst.size else np.zeros(0, bool)
        return BurstResult(self.start[keep], self.length[keep], self.n_openings[keep],
                           self.open_time[keep], self.shut_time[keep], self.complete[keep],
                           self.sweep[keep], self.gaps[gk], new_index[self.gap_burst[gk]],
                           self.t_crit, self.t_res)

    def summary(self) -> dict:
        """Means and standard errors of the per-burst quantities.

        Keys: ``mean_openings``, ``mean_length`` (s), ``mean_open_time`` (s),
        ``mean_shut_time`` (s) -- per-burst means with SE = SD/sqrt(n_bursts) -- and
        ``mean_gap`` (s), the ratio estimator ``sum(shut_time) / sum(n_openings - 1)`` with its
        delta-method SE (gaps of one burst are not independent, bursts are), each with
        ``se_<name>``; and ``n_bursts``.  The SEs assume independent bursts, which holds
        exactly when bursts start from a single long-lived shut state (Markov property).
        """
        out = {"n_bursts": self.n_bursts}
        for key, x in (("mean_openings", self.n_openings.astype(float)),
                       ("mean_length", self.length), ("mean_open_time", self.open_time),
                       ("mean_shut_time", self.shut_time)):
            n = x.size
            out[key] = float(x.mean()) if n else math.nan
            out["se_" + key] = float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        n = self.n_bursts
        g = self.n_openings.astype(float) - 1.0
        if n > 1 and g.sum() > 0:
            r = float(self.shut_time.sum() / g.sum())
            resid = self.shut_time - r * g
            out["mean_gap"] = r
            out["se_mean_gap"] = float(resid.std(ddof=1) / (math.sqrt(n) * g.mean()))
        else:
            out["mean_gap"] = out["se_mean_gap"] = math.nan
        return out

    def compare(self, theory) -> dict:
        """z-scores ``(observed mean - theory) / SE`` against :func:`ketacore.theory.bursts`.

        Keys as in :meth:`summary` (``mean_openings``, ``mean_length``, ``mean_open_time``,
        ``mean_shut_time``, ``mean_gap``).

        The theory is that of the ideal record [CH82], with no sweep ends: the complete
        bursts of short sweeps are biased toward short bursts (see the Notes of
        :meth:`Record.bursts`), so their z-scores measure that bias too.  Bursts of a
        resolved record (``t_res > 0``) differ from it by the missed events themselves (for
        CH82 at 0.1 uM, 100 us: 1.48 apparent openings per burst against 3.82), so a
        RuntimeWarning says that the z-scores then measure the resolution as well as any
        disagreement.  (Missed-events
        theory exists in ketacore for apparent open and shut times,
        :func:`ketacore.theory.apparent_dwell_times`, not yet for bursts.)
        """
        if self.t_res > 0:
            import warnings
            warnings.warn(f"compare: these bursts come from a record resolved at t_res="
                          f"{self.t_res:g} s, and ketacore.theory.bursts is the ideal-record "
                          "theory (no missed events); the z-scores include the effect of the "
                          "resolution (apparent openings per burst fall as t_res grows)",
                          RuntimeWarning, stacklevel=2)
        s = self.summary()
        out = {}
        for key in ("mean_openings", "mean_length", "mean_open_time", "mean_shut_time",
                    "mean_gap"):
            th = float(getattr(theory, key))
            se = s["se_" + key]
            out[key] = (s[key] - th) / se if se and np.isfinite(se) and se > 0 else math.nan
        return out

    def plot(self, theory=None, *, ax=None, bins_per_decade: int = 10):
        """Openings-per-burst pmf and burst-length log histogram (matplotlib).

        ``theory``: a :class:`ketacore.theory.Bursts` to overlay; ``ax``: a pair of axes
        (also accepted as the first argument).  Returns the axes pair.
        ImportError ("plot() needs matplotlib…") without matplotlib.
        """
        theory, ax = _axes_first(theory, ax)
        from .plot import require_pyplot
        plt = require_pyplot()
        if ax is None:
            _, ax = plt.subplots(1, 2, figsize=(9, 3.5))
        a0, a1 = ax
        r = np.arange(1, max(int(self.n_openings.max(initial=1)), 1) + 1)
        counts = np.bincount(self.n_openings, minlength=r[-1] + 1)[1:]
        a0.bar(r, counts / max(self.n_bursts, 1), color="0.7", label="observed")
        if theory is not None:
            a0.plot(r, theory.openings.pmf(r), "r.-", label="theory")
        a0.set_xlabel("openings per burst")
        a0.set_ylabel("fraction of bursts")
        a0.legend()
        h = log_histogram(self.length, bins_per_decade=bins_per_decade)
        h.plot(theory=None if theory is None else theory.length, ax=a1)
        a1.set_xlabel("burst length (s)")
        return ax


# ---------------------------------------------------------------------------
# critical time
# ---------------------------------------------------------------------------

_CRITERIA = {"proportions": "equal proportions misclassified (Colquhoun & Sakmann 1985)",
             "numbers": "equal numbers misclassified (Magleby & Pallotta 1983; Clapham & "
                        "Neher 1984)",
             "total": "minimum total number misclassified (Jackson et al. 1983)"}


@dataclass(frozen=True)
class Misclassification:
    """Shut periods misclassified by a critical time (fractions of all shut periods).

    Attributes
    ----------
    t_crit : float (s)
    n_fast : float
        Fraction of all shut periods that are from the fast components but longer than t_crit.
    n_slow : float
        Fraction of all shut periods that are from the slow components but shorter than t_crit.
    p_fast, p_slow : float
        The same as proportions of each group.
    total : float
        ``n_fast + n_slow``.
    """

    t_crit: float
    n_fast: float
    n_slow: float
    p_fast: float
    p_slow: float
    total: float


#: Negative areas of a mixture no larger than this fraction of ``sum(|areas|)`` are rounding
#: (eigen-decomposition of near-degenerate rates) and are clipped to 0 by critical_time.
_AREA_ROUNDING = 1e-8


def _as_mixture(mixture, name: str = "mixture") -> ExponentialMixture:
    """An ExponentialMixture, or the fitted mixture of a MixtureFit."""
    if isinstance(mixture, MixtureFit):
        return mixture.mixture
    if not isinstance(mixture, ExponentialMixture):
        raise TypeError(f"{name} must be a ketacore.theory.ExponentialMixture or a "
                        f"MixtureFit, got {type(mixture).__name__}")
    return mixture


def _as_theory(mixture, name: str = "mixture", phase_type: bool = True):
    """An ApparentDwellTimes as it is, a PhaseType too with ``phase_type`` (both have
    ``pdf``, ``cdf``, ``survival`` and ``total``), else :func:`_as_mixture`."""
    if isinstance(mixture, ApparentDwellTimes) or (phase_type and isinstance(mixture, PhaseType)):
        return mixture
    if not isinstance(mixture, (MixtureFit, ExponentialMixture)):
        also = " (or a ketacore.theory.PhaseType)" if phase_type else ""
        raise TypeError(f"{name} must be a ketacore.theory.ApparentDwellTimes, an "
                        f"ExponentialMixture or a MixtureFit, got {type(mixture).__name__}"
                        + also)
    return _as_mixture(mixture, name)


def _split_mixture(mixture, split, fn: str = "critical_time"):
    """``(tau_fast, area_fast, tau_slow, area_slow, t0)``: the components of ``mixture``
    sorted by tau and split after the ``split`` shortest (areas normalised to the whole
    mixture), and the time origin ``t0`` (s) of their exponentials: 0 for an
    ExponentialMixture or a MixtureFit, ``t_res`` for an ApparentDwellTimes, whose
    asymptotic components decay from ``t_res`` (``exp(-(t - t_res)/tau)``).  A PhaseType has
    no components to split: TypeError."""
    t0 = 0.0
    if isinstance(mixture, PhaseType):
        raise TypeError(
            f"{fn}: mixture is a ketacore.theory.PhaseType (the exact matrix form that "
            "dwell_times/first_latency return when the sub-generator has no accurate spectral "
            "expansion, e.g. a repeated rate without microscopic reversibility); its pdf has "
            "t^j exp(-t/tau) terms, not separate exponential components with areas, and "
            f"{fn} needs those components to split them into fast and slow.  Fit a mixture "
            "to the durations (fit_mixture) or pass an ExponentialMixture")
    mixture = _as_theory(mixture, phase_type=False)
    if isinstance(mixture, ApparentDwellTimes):
        # its asymptotic mixture [HJC92], as a mixture of the excess t - t_res
        t0 = float(mixture.t_res)
        mixture = ExponentialMixture(mixture.taus, mixture.areas)
    if np.iscomplexobj(mixture.taus) or np.iscomplexobj(mixture.areas):
        raise ValueError("mixture must have real time constants and areas")
    raw = np.asarray(mixture.areas, float)
    # theory mixtures of large schemes carry rounding-level negative areas on near-degenerate
    # eigenvalue pairs (kampa2004 + ketamine shut times: -3.5e-10 beside +9.1e-7 at tau
    # 16.8 ms): clip those to 0; a genuinely negative area (a rising phase) is refused
    neg_tol = _AREA_ROUNDING * float(np.sum(np.abs(raw)))
    if np.any(raw < -neg_tol):
        raise ValueError(f"mixture must have non-negative areas (got {raw.min():.3g}; areas "
                         f"above -{_AREA_ROUNDING:g} x sum|areas| are treated as rounding)")
    raw = np.maximum(raw, 0.0)
    if not float(np.sum(raw)) > 0:
        raise ValueError("mixture: the areas sum to 0 (no shut periods)")
    order = np.argsort(mixture.taus)
    taus = np.asarray(mixture.taus, float)[order]
    areas = raw[order] / float(np.sum(raw))
    k = taus.size
    if k < 2:
        raise ValueError("mixture needs at least 2 components to place a critical time")
    split = 1 if split is None else _int("split", split, minimum=1)
    if split >= k:
        raise ValueError(f"split must be in [1, {k - 1}] (number of fast components), got {split}")
    for what, a in (("fast", areas[:split]), ("slow", areas[split:])):
        if not a.sum() > 0:
            raise ValueError(f"mixture: the {what} components have zero total area, so no "
                             "critical time separates them")
    return taus[:split], areas[:split], taus[split:], areas[split:], t0


def misclassification(mixture, t_crit: float, split: Optional[int] = None) -> Misclassification:
    """Fractions of shut periods misclassified by a critical time (see :func:`critical_time`).

    Parameters
    ----------
    mixture : ExponentialMixture, MixtureFit or ApparentDwellTimes
        Shut-time distribution, as for :func:`critical_time` (a
        :class:`~ketacore.theory.PhaseType` is refused, TypeError: no components to split).
    t_crit : float
        Critical shut time (s), ``> 0``; for an ApparentDwellTimes, ``> t_res`` (every
        apparent shut time is ``>= t_res``, so a smaller ``t_crit`` separates nothing).
    split : int, optional
        Number of fast components, as in :func:`critical_time`.

    Returns
    -------
    Misclassification
        ``n_fast = sum a_f S_f(t_crit)`` and ``n_slow = sum a_s (1 - S_s(t_crit))`` with
        ``S_i(t) = exp(-t / tau_i)`` (``exp(-(t - t_res) / tau_i)`` for an
        ApparentDwellTimes; Notes), areas normalised to the whole mixture.

    Notes
    -----
    For an ApparentDwellTimes its asymptotic mixture ``taus``, ``areas`` [HJC92] is used,
    with the exponentials decaying from ``t_res`` (``exp(-(t - t_res) / tau)``, areas
    normalised to their sum), for the reasons given in the Notes of :func:`critical_time`:
    ``misclassification(d, t) == misclassification(ExponentialMixture(d.taus, d.areas),
    t - d.t_res)`` except for the reported ``t_crit``.
    """
    t_crit = _real("t_crit", t_crit, positive=True)
    tf, af, ts, as_, t0 = _split_mixture(mixture, split, "misclassification")
    if not t_crit > t0:
        raise ValueError(f"t_crit={t_crit:g} s must be > t_res={t0:g} s of the missed-events "
                         "distribution (every apparent shut time is >= t_res)")
    u = t_crit - t0
    nf = float(np.sum(af * np.exp(-u / tf)))
    ns = float(np.sum(as_ * -np.expm1(-u / ts)))
    return Misclassification(t_crit, nf, ns, float(nf / af.sum()), float(ns / as_.sum()),
                             nf + ns)


def critical_time(mixture, criterion: str = "proportions", split: Optional[int] = None) -> float:
    """Critical shut time (s) between fast and slow components of a shut-time mixture.

    With fast components ``(a_f, tau_f)`` (the ``split`` shortest) and slow ones
    ``(a_s, tau_s)`` (areas normalised to the whole mixture):

    * ``"proportions"`` ([CS85]): equal *proportions* misclassified,
      ``sum a_f e^(-t/tau_f) / sum a_f = sum a_s (1 - e^(-t/tau_s)) / sum a_s``;
    * ``"numbers"`` ([MP83]; Clapham & Neher 1984): equal *numbers* misclassified,
      ``sum a_f e^(-t/tau_f) = sum a_s (1 - e^(-t/tau_s))``;
    * ``"total"`` ([J83]): minimum total number misclassified, the stationary point
      ``sum (a_f/tau_f) e^(-t/tau_f) = sum (a_s/tau_s) e^(-t/tau_s)``; for two components
      ``t = ln(a_f tau_s / (a_s tau_f)) / (1/tau_f - 1/tau_s)``.

    (For an ApparentDwellTimes, ``t`` in these equations is the excess ``t - t_res``; see
    the Notes.)

    Parameters
    ----------
    mixture : ExponentialMixture, MixtureFit or ApparentDwellTimes
        Shut-time distribution: from :func:`ketacore.theory.dwell_times` (ideal record), a
        :class:`MixtureFit` of observed shut times (its fitted, untruncated mixture), or
        the missed-events distribution :func:`ketacore.theory.apparent_dwell_times` at the
        record's ``t_res`` (its asymptotic mixture; Notes).  A
        :class:`~ketacore.theory.PhaseType` (the exact matrix form that
        :func:`ketacore.theory.dwell_times` returns for a sub-generator with no accurate
        spectral expansion) is refused with a TypeError: its pdf has ``t^j exp(-t/tau)``
        terms, not exponential components with areas, so there are no fast and slow
        components to separate.
    criterion : {"proportions", "numbers", "total"}
    split : int, optional
        Number of fast components (default 1; give it for mixtures of 3 or more).

    Returns
    -------
    float
        ``t_crit`` (s).  Use :func:`misclassification` for the resulting error rates.

    Notes
    -----
    With an :class:`~ketacore.theory.ApparentDwellTimes` (the missed-events shut-time
    distribution of :func:`ketacore.theory.apparent_dwell_times`, for a record resolved at
    its ``t_res``), what is used is its *asymptotic* mixture [HJC92]: the time constants
    ``taus`` (the roots of ``det W(s) = 0``) and ``areas``, of the pdf
    ``sum (areas / taus) exp(-(t - t_res) / taus)`` for ``t >= t_res`` -- every apparent
    duration is ``>= t_res`` and the components decay from ``t_res``, not from 0.  The
    criteria are therefore applied to the excess ``t - t_res`` (with the areas normalised to
    their sum, which is 1 only approximately) and ``t_res`` is added back:
    ``critical_time(d) == d.t_res + critical_time(ExponentialMixture(d.taus, d.areas))``,
    and the fraction of fast shut periods longer than ``t_crit`` is
    ``sum a_f exp(-(t_crit - t_res) / tau_f) / sum a``.  This is appropriate because a
    critical time lies in the gap between well-separated components, far above ``t_res``
    (``t_crit >> t_res``), where the asymptotic form is accurate (its pdf agrees with the
    exact HJC density from ``exact_until``, 3 ``t_res`` by default, on; [HJC92] and
    :class:`~ketacore.theory.ApparentDwellTimes`); only the few shut periods shorter than
    ``exact_until`` are weighted by the asymptotic rather than the exact density.  These
    are the shut-time components a record resolved at ``t_res`` (:meth:`Record.resolve`)
    actually shows, so its bursts should be cut at this ``t_crit``, not at that of the
    ideal :func:`ketacore.theory.dwell_times` (which ignores the missed openings that
    concatenate short shuttings).

    References
    ----------
    [CS85], [MP83], [J83], [HJC92] (module references).
    """
    if not isinstance(criterion, str) or criterion not in _CRITERIA:
        raise ValueError(f"criterion must be one of {list(_CRITERIA)}, got {criterion!r}")
    from scipy.optimize import brentq
    tf, af, ts, as_, t0 = _split_mixture(mixture, split)

    if criterion == "proportions":
        def h(t):
            return (np.sum(as_ * -np.expm1(-t / ts)) / as_.sum()
                    - np.sum(af * np.exp(-t / tf)) / af.sum())
    elif criterion == "numbers":
        def h(t):
            return np.sum(as_ * -np.expm1(-t / ts)) - np.sum(af * np.exp(-t / tf))
    else:
        if tf.size == 1 and ts.size == 1:
            if not (af[0] > 0 and as_[0] > 0) or not tf[0] < ts[0]:
                raise ValueError("criterion 'total' needs two components with positive areas")
            t = math.log(af[0] * ts[0] / (as_[0] * tf[0])) / (1.0 / tf[0] - 1.0 / ts[0])
            if not t > 0:
                raise ValueError("criterion 'total': the total misclassified has no minimum at "
                                 "t > 0 for this mixture")
            return t0 + float(t)

        def h(t):  # derivative of the total misclassified (negative before the minimum)
            return np.sum(as_ / ts * np.exp(-t / ts)) - np.sum(af / tf * np.exp(-t / tf))
    # bracket in log-time around the gap between components
    lo, hi = float(tf.min()) * 1e-6, float(ts.max()) * 1e6
    if not (h(lo) < 0 < h(hi)):
        lo, hi = float(tf.max()), float(ts.min())
        if not (h(lo) < 0 < h(hi)):
            raise ValueError(f"criterion {criterion!r}: no critical time found between the "
                             "components")
    x = brentq(lambda u: h(math.exp(u)), math.log(lo), math.log(hi), xtol=1e-14, rtol=1e-14,
               maxiter=500)
    return t0 + float(math.exp(x))



# ---------------------------------------------------------------------------
# durations in ms with t_res in s
# ---------------------------------------------------------------------------

#: _warn_if_units_mixed: the rule needs at least this many durations (see its docstring for
#: why this number bounds the false-warning probability).
_UNITS_MIN_N = 400
#: ... a median duration above this (s): typical single-channel dwells are us to ms.
_UNITS_MEDIAN = 0.1
#: ... a shortest duration at least this multiple of t_res (ms numbers give ~1000).
_UNITS_MIN_RATIO = 10.0
#: ... and a gap statistic n p (min - t_res) / (X_(ceil(r n)) - t_res) above _UNITS_GAP, with
#: p = _UNITS_P and r = _UNITS_R.
_UNITS_P = 0.05
_UNITS_R = 0.2
_UNITS_GAP = 20.0


def _warn_if_units_mixed(fn: str, d: np.ndarray, t_res: float, stacklevel: int) -> None:
    """UserWarning when durations ``d`` (validated, all ``>= t_res``) look like milliseconds
    given with ``t_res`` in seconds.  Shared by :func:`fit_mixture` and :meth:`Record.resolve`:
    entry points whose durations are channel sojourns, with a density that does not rise above
    ``t_res``.  (Not :func:`log_histogram`: it also takes first latencies or paced intervals,
    whose density rises -- 1e5 Gamma(2, 0.2 s) latencies, 1000 identical 0.5 s durations or
    intervals of 1 s +- 10 ms all satisfy the rule below in seconds.)

    Rule: ``t_res > 0``, ``n >= 400`` durations, median > 0.1 s, shortest ``>= 10 t_res``, and
    ``G = n p (min - t_res) / (X_(k) - t_res) > 20`` with ``p = 0.05`` and ``X_(k)`` the
    ``k = ceil(0.2 n)``-th smallest duration.

    Why: in a record in seconds with a resolution imposed, the shortest of many durations lies
    just above ``t_res`` unless every component is slow, and ``G`` measures how far above it
    lies against the spread of the shortest fifth of the data.  For durations drawn from any
    distribution whose density does not increase above ``t_res`` (every mixture of
    exponentials truncated there, which is what :func:`fit_mixture` fits), the cdf F above
    ``t_res`` is concave, so ``F(t_res + g) >= p g / (q_p - t_res)`` for ``g <= q_p - t_res``
    (``q_p`` the true 5 % quantile).  Hence, whatever the time constants,
    ``P(G > 20) <= exp(-20) + (1 - p)^n + P(Binomial(n, p) >= k) < 1e-8`` for ``n >= 400``
    (the last two terms bound ``min >= q_p`` and ``X_(k) < q_p``).  A slow-only record in
    seconds (all taus ~1 s) has ``G`` of order 1; the same CH82-like record in ms (shortest
    ~1000 ``t_res``, a fifth of the data within ~3 times that) has ``G`` ~ n / 30 to n / 80,
    so it is flagged from a few thousand durations.  The median and ``min >= 10 t_res``
    conditions keep the warning to what a unit slip produces (a resolution merely understated
    by a factor 2 also separates ``min`` from ``t_res``, but not by 10 and not with a median
    of 0.1 s).
    """
    n = d.size
    if not t_res > 0 or n < _UNITS_MIN_N:
        return
    lo = float(d.min())
    if lo < _UNITS_MIN_RATIO * t_res:
        return
    k = math.ceil(_UNITS_R * n)
    med = float(np.median(d))
    xk = float(np.partition(d, k - 1)[k - 1])       # X_(k) >= min > t_res
    gap = n * _UNITS_P * (lo - t_res) / (xk - t_res)
    if med > _UNITS_MEDIAN and gap > _UNITS_GAP:
        import warnings
        warnings.warn(
            f"{fn}: the durations look like milliseconds given with t_res in seconds: their "
            f"median is {med:.3g} s and the shortest of {n} is {lo:.3g} s, "
            f"{lo / t_res:.3g} times t_res={t_res:g} s (in a record in seconds most shortest "
            "durations lie just above t_res).  durations and t_res are both in seconds: "
            "multiply durations in ms by 1e-3 (ketacore.units.ms); the fitted time constants "
            "would otherwise be 1000 times too long", UserWarning, stacklevel=stacklevel + 1)


# ---------------------------------------------------------------------------
# log-binned histograms
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LogHistogram:
    """A dwell-time histogram with bins equally spaced in log10(t) [SS87].

    Attributes
    ----------
    edges : ndarray (n_bins + 1,)
        Bin edges (s).
    counts : ndarray of int (n_bins,)
    n : int
        Number of durations in the data (including any outside the bins).
    t_res : float
        Resolution (s) the data were cut at (0: none); theory is conditioned on ``t >= t_res``.
    bins_per_decade : float
    """

    edges: np.ndarray
    counts: np.ndarray
    n: int
    t_res: float
    bins_per_decade: float

    def __repr__(self) -> str:
        return _compact_repr(self)

    @property
    def centers(self) -> np.ndarray:
        """Geometric bin centres (s)."""
        return np.sqrt(self.edges[:-1] * self.edges[1:])

    @property
    def sqrt_counts(self) -> np.ndarray:
        """Square root of the counts (the Sigworth–Sine display: ~constant variance 1/4)."""
        return np.sqrt(self.counts)

    def expected(self, mixture, n: Optional[int] = None) -> np.ndarray:
        """Expected counts per bin for ``n`` (default ``self.n``) durations from ``mixture``.

        ``mixture`` is one of:

        * an :class:`~ketacore.theory.ApparentDwellTimes` (from
          :func:`ketacore.theory.apparent_dwell_times`): the exact distribution of apparent
          dwells with missed events [HJC90] -- the theory to compare a record resolved at
          ``t_res`` (:meth:`Record.resolve`) with.  Counts are ``n (F(t2) - F(t1))`` with its
          cdf (0 below its ``t_res``).  Its ``t_res`` must equal the histogram's when the
          histogram has one (ValueError otherwise: the apparent distribution is not the one at
          another resolution truncated);
        * an :class:`~ketacore.theory.ExponentialMixture`, a
          :class:`~ketacore.theory.PhaseType` (the exact matrix form of
          :func:`ketacore.theory.dwell_times`, same ``cdf``/``survival``) or a
          :class:`MixtureFit`:
          ``n (F(t2') - F(t1')) / S(t_res)`` with ``t' = max(t, t_res)``, exact bin integrals
          of the pdf truncated below ``t_res`` (0 for bins below ``t_res``).  With a resolution
          this is the model of a :func:`fit_mixture` fit, but for a theoretical mixture from
          :func:`ketacore.theory.dwell_times` it is the *ideal*-record pdf cut at ``t_res``,
          not what a resolved record shows: for CH82 at 0.1 uM and 100 us the apparent slow
          open tau is 6.1 ms against the ideal 2.0 ms (use ``apparent_dwell_times``).
        """
        n = self.n if n is None else _int("n", n, minimum=0)
        theory = _as_theory(mixture)
        if isinstance(theory, ApparentDwellTimes):
            return n * np.diff(self._apparent(theory).cdf(self.edges))
        return self._expected(theory, n, self.t_res)

    def _apparent(self, dist: "ApparentDwellTimes") -> "ApparentDwellTimes":
        """``dist`` after checking that its resolution is the histogram's (if it has one)."""
        if self.t_res > 0 and abs(dist.t_res - self.t_res) > 1e-9 * self.t_res:
            raise ValueError(f"the missed-events distribution was computed for t_res="
                             f"{dist.t_res:g} s but this histogram's durations were resolved at "
                             f"t_res={self.t_res:g} s; compute it at the histogram's t_res "
                             "(ketacore.theory.apparent_dwell_times(..., t_res=h.t_res))")
        below = int(self.counts[self.edges[1:] <= dist.t_res].sum())
        if below:
            raise ValueError(f"this histogram has {below} durations below t_res="
                             f"{dist.t_res:g} s, where the missed-events distribution is 0: "
                             "resolve the record at that t_res first (Record.resolve)")
        return dist

    def _expected(self, mixture, n, t_res) -> np.ndarray:
        cdf = mixture.cdf(np.maximum(self.edges, t_res))
        norm = float(mixture.survival(t_res)) if t_res > 0 else float(mixture.total)
        return n * np.diff(cdf) / norm

    def curve(self, mixture, n: Optional[int] = None, points: int = 512):
        """Smooth theory curve in the units of the histogram: ``(t, expected count per bin)``.

        The density in log10(t) is ``ln(10) t f(t)``; times the bin width in log10 and ``n``
        it is comparable with ``counts`` (take ``sqrt`` for the [SS87] display).  ``mixture``
        as in :meth:`expected`: an :class:`~ketacore.theory.ApparentDwellTimes` is drawn as it
        is (its pdf, 0 below its ``t_res``; divided by its ``total``, which differs from 1 only
        by the error of the asymptotic form); an ExponentialMixture or MixtureFit is truncated
        below the histogram's ``t_res`` (0 there) and renormalised.
        """
        n = self.n if n is None else _real("n", n, nonnegative=True)
        points = _V.integer("points", points, minimum=2, maximum=10**6)
        theory = _as_theory(mixture)
        if isinstance(theory, ApparentDwellTimes):
            d = self._apparent(theory)
            t = np.logspace(np.log10(self.edges[0]), np.log10(self.edges[-1]), points)
            return t, n * math.log(10.0) * t * d.pdf(t) / self.bins_per_decade / d.total
        return self._curve(theory, n, points, self.t_res)

    def _curve(self, mixture, n, points, t_res):
        t = np.logspace(np.log10(self.edges[0]), np.log10(self.edges[-1]), points)
        norm = float(mixture.survival(t_res)) if t_res > 0 else float(mixture.total)
        y = n * math.log(10.0) * t * mixture.pdf(t) / self.bins_per_decade / norm
        return t, np.where(t >= t_res, y, 0.0)

    def plot(self, theory=None, *, fit=None, ax=None, sqrt: bool = True):
        """Plot the histogram (sqrt counts on a log time axis) with optional overlays.

        ``theory``: for a resolved record (``t_res > 0``) an
        :class:`~ketacore.theory.ApparentDwellTimes` from
        :func:`ketacore.theory.apparent_dwell_times` at the same ``t_res`` (the exact
        missed-events distribution); or an ExponentialMixture (e.g. from
        :func:`ketacore.theory.dwell_times`), drawn truncated at the histogram's ``t_res`` (an
        ideal-record pdf, which differs from what a resolved record shows, see
        :meth:`expected`); ``fit``: a
        :class:`MixtureFit`, drawn truncated at its own ``t_res`` (the likelihood it
        maximised), or at the histogram's if that is larger; ``ax`` (also accepted as the first
        argument).  Returns the matplotlib axes.  ImportError ("plot() needs matplotlib…")
        without matplotlib.
        """
        theory, ax = _axes_first(theory, ax)
        from .plot import require_pyplot
        plt = require_pyplot()
        if ax is None:
            _, ax = plt.subplots()
        y = self.sqrt_counts if sqrt else self.counts
        ax.stairs(y, self.edges, fill=True, color="0.8", label=f"data (n={self.n})")
        tr = (lambda v: np.sqrt(v)) if sqrt else (lambda v: v)
        if theory is not None:
            t, e = self.curve(theory)
            hjc = isinstance(_as_theory(theory), ApparentDwellTimes)
            ax.plot(t, tr(e), "r-", label="theory (missed events)" if hjc else "theory")
        if fit is not None:
            if not isinstance(fit, MixtureFit):
                raise TypeError(f"fit must be a MixtureFit, got {type(fit).__name__}")
            # the histogram's durations are >= both resolutions: condition on the larger
            t, e = self._curve(fit.mixture, self.n, 512, max(fit.t_res, self.t_res))
            ax.plot(t, tr(e), "b--", label="ML fit")
        ax.set_xscale("log")
        ax.set_xlabel("duration (s)")
        ax.set_ylabel("sqrt(count per bin)" if sqrt else "count per bin")
        ax.legend()
        return ax


def log_histogram(durations, *, bins_per_decade: float = 10, t_min: Optional[float] = None,
                  t_max: Optional[float] = None, t_res: float = 0.0) -> LogHistogram:
    """Log-binned histogram of durations [SS87].

    Parameters
    ----------
    durations : array (s), > 0
    bins_per_decade : float
        Bins per factor of 10 in time (> 0); the histogram may have at most :data:`MAX_BINS`
        bins, and its edges must be finite, distinct floats (else ValueError).
    t_min, t_max : float (s), optional
        Range; default ``t_res`` (if set) or the smallest duration, and the largest duration.
        ``t_max`` must exceed ``t_min`` (ValueError otherwise, e.g. a ``t_max`` below the
        data's default ``t_min``, or a ``t_min`` above every duration); only when both are
        defaults and equal (all durations equal) is the histogram a single bin.
        Edges are ``t_min * 10**(k / bins_per_decade)``, ``k = 0..n_bins``, where the top
        edge is the first one at or above ``t_max`` (a whole number of bins); bins are
        ``[lower, upper)`` against these returned edges exactly, except that with the
        default ``t_max`` the largest duration is counted in the last bin even when it falls
        on its upper edge.  Durations outside ``[edges[0], edges[-1])`` -- below ``t_min``, or
        at or above the top edge -- are in no bin: they are left out of ``counts`` but
        included in ``n`` (``n - counts.sum()`` of them); durations in
        ``[t_max, edges[-1])`` fall in the last bin.
    t_res : float (s)
        Resolution the data were cut at (every duration must be ``>= t_res``, else
        ValueError); stored for theory overlays: an
        :func:`ketacore.theory.apparent_dwell_times` distribution must have this ``t_res``,
        an ideal or fitted mixture is truncated there (see :meth:`LogHistogram.expected`).

    Returns
    -------
    LogHistogram
    """
    # (no units check here: histograms also take latencies and paced intervals, whose density
    # rises above t_res, which the rule of _warn_if_units_mixed would flag)
    d = _float_array("durations", durations)
    if d.size == 0:
        raise ValueError("durations is empty")
    if np.any(d <= 0):
        raise ValueError("durations must be > 0")
    bpd = _real("bins_per_decade", bins_per_decade, positive=True)
    t_res = _real("t_res", t_res, nonnegative=True)
    lo = _real("t_min", t_min, positive=True) if t_min is not None else \
        (t_res if t_res > 0 else float(d.min()))
    hi = _real("t_max", t_max, positive=True) if t_max is not None else float(d.max())
    if hi < lo or (hi == lo and (t_min is not None or t_max is not None)):
        src_lo = "t_min" if t_min is not None else ("t_res" if t_res > 0 else
                                                    "the smallest duration (default t_min)")
        src_hi = "t_max" if t_max is not None else "the largest duration (default t_max)"
        raise ValueError(f"t_max must exceed t_min: {src_hi} is {hi:g} s and {src_lo} is "
                         f"{lo:g} s, but the durations range from {float(d.min()):g} to "
                         f"{float(d.max()):g} s; choose t_min < t_max")
    if np.any(d < t_res):
        # n would count them while the theory overlays (expected, curve) are normalised to
        # durations >= t_res: every expected count would be too large by n / n(>= t_res)
        raise ValueError(f"durations has {int(np.sum(d < t_res))} values below t_res={t_res:g} "
                         "s; impose the resolution first (Record.resolve) or drop them")
    # everything in log10 (finite for every positive float, subnormals included): hi / lo and
    # 10 ** (1 / bpd) can overflow
    llo, lhi = math.log10(lo), math.log10(hi)
    decades = lhi - llo if hi > lo else 1.0 / bpd  # empty range: one bin
    n_real = decades * bpd
    if n_real > MAX_BINS + 1e-6:
        raise ValueError(f"bins_per_decade={bpd:g} over {decades:.4g} decades ({lo:g} to "
                         f"{hi:g} s) would make about {n_real:.3g} bins, more than "
                         f"{MAX_BINS}; lower bins_per_decade or narrow t_min/t_max")
    nb = max(int(math.ceil(n_real - 1e-9)), 1)
    top = llo + nb / bpd
    if not top < math.log10(np.finfo(float).max):
        raise ValueError(f"bins_per_decade={bpd:g}: the top bin edge would be 10**{top:.4g} s, "
                         "beyond the largest float; raise bins_per_decade or lower t_max")
    k = np.arange(nb + 1)
    if lo >= np.finfo(float).tiny and nb / bpd <= 300:
        edges = lo * 10.0 ** (k / bpd)
    else:  # a subnormal t_min, or 10 ** (k / bpd) would overflow
        edges = 10.0 ** (llo + k / bpd)
        edges[0] = lo
    same = np.diff(edges) <= 0
    if same.any():
        at = float(edges[int(np.argmax(same))])
        raise ValueError(f"bin edges near {at:g} s coincide in floating point (t_min={lo:g} s, "
                         f"bins_per_decade={bpd:g}): lower bins_per_decade, or raise t_min "
                         "(below ~1e-300 s, subnormal floats cannot be binned)")
    # bin index against the returned edges exactly ([lower, upper)): floor(log10(d / lo) * bpd)
    # misplaces durations on or within rounding of an edge.  -1: below edges[0]; nb: at or
    # above edges[nb]
    idx = np.searchsorted(edges, d, side="right").astype(np.int64) - 1
    if t_max is None:  # every duration is <= the top edge: the largest lands in the last bin
        idx = np.minimum(idx, nb - 1)
    ok = (idx >= 0) & (idx < nb)
    counts = np.bincount(idx[ok], minlength=nb)
    return LogHistogram(edges, counts, int(d.size), t_res, bpd)


# ---------------------------------------------------------------------------
# maximum-likelihood fits of exponential mixtures
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MixtureFit:
    """Maximum-likelihood fit of a mixture of exponentials (see :func:`fit_mixture`).

    Attributes
    ----------
    taus, areas : ndarray
        Time constants (s, ascending) and areas (sum 1) of the *untruncated* pdf.
    se_taus, se_areas : ndarray
        Standard errors from the observed information (inverse Hessian of the negative
        log-likelihood at the maximum, in the parameters ``tau_1..tau_k, a_1..a_{k-1}``;
        ``se`` of the last area from ``a_k = 1 - sum``).  NaN only when that information
        matrix is singular or not finite (a degenerate optimum; ``message`` says so).
    cov : ndarray (2k-1, 2k-1)
        That covariance matrix.
    loglik : float
    n : int
        Number of durations fitted.
    t_res : float
        Truncation (s): the likelihood is ``prod f(t_j) / S(t_res)``.
    n_total : float
        Estimated number of events including those shorter than t_res, ``n / S(t_res)``
        (computed in logs; ``inf`` when it exceeds the range of doubles, as for a degenerate
        fit whose spike far below t_res carries ~all the untruncated area).
    converged : bool
        True for a clean fit: the optimiser converged, to a maximum that is not degenerate
        (see "Degenerate fits" in :func:`fit_mixture`).  False otherwise, with the reason
        in ``message`` (and a RuntimeWarning from :func:`fit_mixture`).
    data : ndarray
        The durations (s), for plots.
    message : str
        ``""`` for a clean fit; otherwise why ``converged`` is False, or (with ``converged``
        True) a note that a degenerate optimum of higher likelihood was set aside.
    """

    taus: np.ndarray
    areas: np.ndarray
    se_taus: np.ndarray
    se_areas: np.ndarray
    cov: np.ndarray
    loglik: float
    n: int
    t_res: float
    n_total: float
    converged: bool
    data: np.ndarray = field(repr=False)
    message: str = ""

    def __repr__(self) -> str:
        return _compact_repr(self)

    @property
    def mixture(self) -> ExponentialMixture:
        """The fitted pdf as an :class:`~ketacore.theory.ExponentialMixture`."""
        return ExponentialMixture(self.taus, self.areas)

    @property
    def mean(self) -> float:
        """Mean (s) of the untruncated fitted pdf."""
        return float(np.sum(self.areas * self.taus))

    @property
    def se_mean(self) -> float:
        """Standard error (s) of :attr:`mean`, by the delta method [CS95].

        ``mean = sum_i a_i tau_i`` with ``a_k = 1 - sum_{i<k} a_i``, so in the parameters
        of ``cov`` (``tau_1..tau_k, a_1..a_{k-1}``) its gradient is
        ``g = (a_1, ..., a_k, tau_1 - tau_k, ..., tau_{k-1} - tau_k)`` and
        ``se_mean = sqrt(g' cov g)`` (first order; exact in ``g`` because the mean is
        bilinear in taus and areas).  For one component it is ``se_taus[0]``, which is
        ``tau / sqrt(n)`` to the accuracy of the numerical information (the excess over
        ``t_res`` is exponential, information ``n / tau**2``).  NaN when ``cov`` is NaN
        (degenerate optimum; see ``message``).
        """
        k = int(self.taus.size)
        taus = np.asarray(self.taus, float)
        g = np.concatenate([np.asarray(self.areas, float), taus[:k - 1] - taus[k - 1]])
        var = float(g @ np.asarray(self.cov, float) @ g)
        return math.sqrt(var) if var >= 0 else math.nan

    def summary(self) -> str:
        """Table of the fit: each component's tau (ms) and area with standard errors, the
        number of durations fitted, ``t_res``, ln L, and the mean with its SE.

        Time constants are given in ms (``tau (ms)``, ``SE (ms)``), as in EKDIST;
        ``t_res`` in us; ln L is the natural-log likelihood with durations in s (as
        ``loglik``).  The SEs are those of ``se_taus``/``se_areas`` (observed information)
        and :attr:`se_mean` (delta method) [CS95].  ``n_total`` is the estimated number of
        events including those shorter than ``t_res``; a fit that is not clean
        (``converged`` False, or a note in ``message``) says so on its last line.

        Returns
        -------
        str
            E.g. (3605 durations above 50 us from areas 0.7 / 0.3 at 0.1 / 10 ms)::

                Mixture fit: 2 exponential component(s) to n = 3605 durations, t_res = 50 us
                ln L = 20597.043962 (natural log, durations in s), converged: True
                component     tau (ms)     SE (ms)        area          SE
                1               0.1031     0.00256      0.6989    0.007647
                2                9.853      0.2639      0.3011    0.007647
                mean = 3.038 ms ± 0.107 ms (SE, delta method); n_total = 4939.7
        """
        k = int(self.taus.size)
        rows = [f"Mixture fit: {k} exponential component(s) to n = {self.n} durations, "
                f"t_res = {self.t_res * 1e6:g} us",
                f"ln L = {self.loglik:.6f} (natural log, durations in s), "
                f"converged: {self.converged}",
                f"{'component':<10} {'tau (ms)':>11} {'SE (ms)':>11} {'area':>11} {'SE':>11}"]
        for i in range(k):
            rows.append(f"{i + 1:<10} {self.taus[i] * 1e3:11.4g} {self.se_taus[i] * 1e3:11.4g} "
                        f"{self.areas[i]:11.4g} {self.se_areas[i]:11.4g}")
        rows.append(f"mean = {self.mean * 1e3:.4g} ms ± {self.se_mean * 1e3:.3g} ms (SE, delta "
                    f"method); n_total = {self.n_total:.1f}")
        if self.message:
            rows.append(f"note: {self.message}")
        return "\n".join(rows)

    def plot(self, theory=None, *, ax=None, bins_per_decade: float = 10):
        """Log histogram of the data with the fit (and optional theory) overlaid, on ``ax``
        (also accepted as the first argument) or new axes; returns the axes
        (ImportError "plot() needs matplotlib…" without matplotlib)."""
        theory, ax = _axes_first(theory, ax)
        from .plot import require_pyplot
        require_pyplot()                     # before the histogram work
        h = log_histogram(self.data, bins_per_decade=bins_per_decade, t_res=self.t_res)
        return h.plot(theory=theory, fit=self, ax=ax)


#: fit_mixture warns about a starting tau longer than this multiple of the longest duration: a
#: component that long would put most of its area above every observation.
_GUESS_TOO_LONG = 10.0
#: Search bound only (not a criterion of degeneracy): when the best optimum found is degenerate,
#: fit_mixture looks for maxima with every tau >= t_res / _RES_RATIO, away from the spikes of
#: the truncated likelihood (which grows without bound as tau -> 0 next to durations just
#: above t_res).  Such a maximum is accepted only if it lies strictly inside the bound.
_RES_RATIO = 5.0
#: A fitted component (of two or more) expected to account for fewer than this many of the n
#: observed durations, n * a_i exp(-t_res/tau_i) / S(t_res), is not identifiable: its tau
#: rests on fewer than _MIN_EVENTS excesses over t_res and its (untruncated) area is
#: extrapolated from them by exp(t_res/tau_i).
_MIN_EVENTS = 10.0
#: A fitted parameter (tau or area) whose standard error exceeds this multiple of its value is
#: not identified: its 1-SE interval includes 0 (badly conditioned information).
_MAX_REL_SE = 1.0
#: ln L gain of k over k-1 components above which the advice of a fit that is not clean is not
#: "fit fewer components": half the 0.999 quantile of chi-square with 2 df (one more tau and
#: area), ln(1000) = 6.91.  (A rough guide: for mixtures the null distribution of the
#: likelihood ratio is not exactly chi-square, the extra area being on its boundary 0.)
_LR_GAIN = math.log(1000.0)


def _mix_loglik(t, taus, areas, t_res):
    """Log-likelihood of durations ``t >= t_res`` under the mixture truncated at ``t_res``, and
    its gradient w.r.t. ``taus`` and the (unconstrained) ``areas``."""
    areas = np.maximum(areas, 1e-300)
    ll, g_tau, g_area = _analysis.mixture_loglik(t, np.ascontiguousarray(taus, float),
                                                 np.ascontiguousarray(areas, float))
    eres = np.exp(-t_res / taus)
    S = float(np.sum(areas * eres))
    n = t.size
    ll = ll - n * math.log(S)
    g_tau = g_tau - n * areas * eres * t_res / taus ** 2 / S
    g_area = g_area - n * eres / S
    return ll, g_tau, g_area


def _fmt_s(x: float) -> str:
    """A duration (s) in the unit a reader expects (us, ms or s)."""
    if x < 1e-3:
        return f"{x * 1e6:.3g} us"
    if x < 1.0:
        return f"{x * 1e3:.3g} ms"
    return f"{x:.3g} s"


def fit_mixture(durations, n_components: Optional[int] = None, *, taus=None, areas=None,
                t_res: float = 0.0, n_starts: Optional[int] = None) -> MixtureFit:
    """Maximum-likelihood fit of a mixture of exponentials to durations [CS95].

    ``f(t) = sum_i (a_i / tau_i) exp(-t / tau_i)``, ``sum a_i = 1``; with a resolution the
    likelihood of each duration is ``f(t) / S(t_res)``, ``S(t) = sum a_i exp(-t / tau_i)``
    (the pdf truncated below ``t_res`` and renormalised, as in EKDIST).  The optimiser works in
    ``log tau`` and softmax area logits (BFGS with the analytic gradient; the likelihood is
    evaluated as the mixture of the excesses over ``t_res`` with the observed weights
    ``a_i exp(-t_res/tau_i) / S(t_res)``, in logs, so that area ratios beyond the range of
    doubles do not distort it), from ``n_starts``
    data-driven starting points (see "Starting points" below) or from the guesses ``taus``,
    and the largest likelihood is kept; standard errors come from the
    observed information (the Hessian of ``-loglik`` in ``tau_1..tau_k, a_1..a_{k-1}``, by
    central differences of the analytic gradient).

    Parameters
    ----------
    durations : array (s), all ``>= t_res`` and > 0
    n_components : int, optional
        Number of exponentials (default ``len(taus)``, or 1).
    taus, areas : sequence, optional
        Starting guesses (s; areas normalised): one optimisation starts there.  If it does not
        converge, or ends at a degenerate optimum (below), the ``n_starts`` data-driven starts
        are tried as well and the largest likelihood kept.  RuntimeWarning for a guess more
        than 10 times the longest duration (almost always a guess in ms for durations in s).
        ``areas`` (normalised) start every optimisation; without them, and in a last
        fallback when no start reached a clean maximum with them, the starting areas put
        every component equally above ``t_res``: ``a_i`` proportional to
        ``exp(t_res / tau_i)``.  (Equal areas would hide a starting tau much shorter than
        ``t_res``, whose gradient then underflows to 0, so that it never moves.)
    t_res : float (s)
        Truncation point (the imposed resolution); 0 for ideal data.  The fitted mixture is
        empirical: with missed events, compare its time constants with the asymptotic ones
        of :func:`ketacore.theory.apparent_dwell_times` at the same ``t_res`` (not with the
        ideal :func:`ketacore.theory.dwell_times`).
    n_starts : int, optional
        Number of data-driven starting points of the ``k``-component fit (1 to 1000), tried
        when ``taus`` is not given, or as the fallback described above.  Default
        ``k + 5`` for ``k >= 2`` (every structured start and four quantile starts, see
        "Starting points"), 4 for one component.  A smaller number keeps the structured
        starts first.

    Returns
    -------
    MixtureFit
        ``converged`` is True only for a clean fit; otherwise ``message`` says why.

    Warns
    -----
    RuntimeWarning
        When the returned fit is not converged or is degenerate (the message says which
        component and suggests fewer components).
    UserWarning
        When the durations look like milliseconds given with ``t_res`` in seconds (``t_res``
        is in seconds, so a fit of such numbers has time constants 1000 times too long and
        nothing else would hint at it).  Rule (shared with :meth:`Record.resolve`; not
        :func:`log_histogram`, whose data may be latencies with a rising density): ``t_res > 0``, ``n >= 400`` durations, median > 0.1 s,
        shortest duration ``>= 10 t_res``, and ``G = 0.05 n (min - t_res) / (X_(k) - t_res)
        > 20``, ``X_(k)`` the ``ceil(0.2 n)``-th smallest duration.  Reasoning: with a
        resolution imposed on a record in seconds, the shortest of many durations lies just
        above ``t_res`` unless every component is slow, and then the shortest fifth of the
        data is spread over a comparable range, so ``G`` stays of order 1.  For any
        distribution whose density does not increase above ``t_res`` (every mixture of
        exponentials truncated at ``t_res``) the cdf above ``t_res`` is concave, which bounds
        the probability of a false warning by ``exp(-20) + 0.95^n + P(Bin(n, 0.05) >=
        ceil(0.2 n)) < 1e-8`` for ``n >= 400``, whatever the time constants (a record of
        only slow, ~1 s, components in seconds does not warn).  Durations in ms of a
        CH82-like record resolved at 50 us (shortest ~1000 ``t_res``) give ``G`` ~ n / 30 to
        n / 80: a few thousand of them are flagged.

    Notes
    -----
    **Degenerate fits.**  Whether a component is identified depends on the data, not on
    ``tau / t_res`` alone (a 8 us component of 8 us / 2 ms areas 0.99 / 0.01 at ``t_res`` =
    50 us, 20 000 durations, is estimated to 2 %).  With two or more components, an optimum
    is degenerate when

    * a component is expected to account for fewer than 10 of the ``n`` observed durations,
      ``n a_i exp(-t_res/tau_i) / S(t_res) < 10``: its tau rests on fewer than 10 excesses
      over ``t_res`` and its area is extrapolated from them by ``exp(t_res / tau_i)`` (a
      1 us component "carrying" all the area of CH82 openings resolved at 50 us accounts
      for ~5 of them; an area that went to 0 accounts for < 1);
    * the information matrix is singular or not finite (standard errors NaN), e.g. two
      equal taus;
    * the information matrix is badly conditioned: the standard error of some tau or area
      exceeds its value (its 1-SE interval includes 0; a 9 us component fitted to ~14
      openings just above ``t_res`` has SEs of 1.2 times its tau and 4 times its area).

    A single component is never degenerate: its area is 1 and the excess over ``t_res`` is
    exponential with the same tau (memoryless), so any tau is identified.  Degenerate
    optima are spurious maxima of a mixture likelihood [MP00]_ (the truncated likelihood
    grows without bound as ``tau -> 0`` next to durations just above ``t_res``).  When the
    best optimum found is degenerate, further starts are tried (with ``t_res > 0``, a fit
    bounded to ``tau >= t_res / 5`` -- a search bound only, away from those spikes -- whose
    optimum is accepted only if it lies inside the bound, i.e. is a maximum of the
    unbounded likelihood); the best non-degenerate maximum is returned (``message`` notes
    the degenerate one of higher likelihood that was set aside).  If there is none, the
    best degenerate optimum is returned with ``converged=False`` and a RuntimeWarning.  Its
    advice follows the likelihood-ratio comparison with the best ``(k-1)``-component fit
    found (from the lower-order fits of "Starting points"): "fit fewer components" when
    ``k`` components raise ln L by at most ``ln 1000 = 6.91`` (half the 0.999 quantile of
    chi-square with 2 df, one more tau and area -- a rough guide, the extra area lying on
    the boundary 0 of its range), or when the gain rests on a component that accounts for
    fewer than 10 durations (a spike next to ``t_res``, no evidence); otherwise it says
    that the data do not favour fewer components (the gain is given) and that the optimum
    may be a poor local maximum.

    **Starting points.**  The truncated likelihood has poor local maxima, e.g. a component
    far below ``t_res`` taking most of the (unobservable) area while a real component is
    missing elsewhere: 20 starts spread over the quantiles (the only starts of earlier
    versions) of 54 558 erreger2005_2a shut times resolved at 50 us all ended at
    tau = 4.6 us (area 0.98) / 0.31 / 4.3 / 967 ms, ln L 160 below the maximum
    0.30 / 4.12 / 36.8 / 1130 ms, because they all put the
    shortest starting tau near the 2 % quantile of the excess over ``t_res`` (13 us), and
    the other three never covered the gap 4 ms to 1 s.  The ``k``-component starts are
    therefore, in this order of priority:

    * *insertions*: the best ``(k-1)``-component fit, found the same way (a ladder from the
      closed-form one-component fit, ``tau = mean(t) - t_res``, each order from insertions
      into the previous one and the wide start), with one component added in each gap
      between its taus (geometric mean), above the longest (geometric mean with the longest
      excess over ``t_res``, at least 3 times it) and below the shortest (geometric mean
      with the 2 % quantile of the excess, at most a third of it); the added component
      starts with ``1/(2k)`` of the observed durations, the others keep their shares;
    * the *wide* start: ``k`` taus at the centres of ``k`` equal intervals of ``log t``
      from ``t_res`` (ideal data: the 2 % quantile) to the longest excess over ``t_res``;
    * the *quantile* starts: taus log-spaced from the 2 % to the
      98 % quantile of the excess, shifted by up to 1/4 decade from one another.

    All starts are deterministic.  Optima whose ln L agree to 1e-6 count as one, and then
    a quantile start's is returned (so results that the quantile starts already found do
    not change with the added starts).  The lower-order fits cost ``j + 1`` optimisations
    for each order ``j = 2..k-1``; with the default ``n_starts`` a 4-component fit makes 16
    optimisations in all (instead of 4), about 2-5 s for 55 000 durations.

    A start whose parameters partly never moved (an optimiser stopped by a flat likelihood
    or an iteration limit) is not an optimum: it is ranked after every point that moved,
    never reported as a set-aside optimum, and, if no start moved, returned with
    ``converged=False`` and a message saying that the optimiser did not improve on its
    start (not that the data do not identify the components).

    References
    ----------
    .. [MP00] McLachlan G, Peel D (2000) Finite Mixture Models. Wiley, New York (spurious
       local maximisers of mixture likelihoods). doi:10.1002/0471721182
    """
    from scipy.optimize import minimize
    t = _float_array("durations", durations)
    t_res = _real("t_res", t_res, nonnegative=True)
    if t.size < 2:
        raise ValueError("durations needs at least 2 values")
    if np.any(t <= 0):
        raise ValueError("durations must be > 0")
    if np.any(t < t_res):
        raise ValueError(f"durations has {int(np.sum(t < t_res))} values below t_res={t_res:g} s; "
                         "impose the resolution first (Record.resolve) or drop them")
    if t_res > 0 and np.all(t == t_res):
        raise ValueError(f"every duration equals t_res={t_res:g} s: the excess over t_res is 0, "
                         "so the likelihood increases without bound as tau -> 0 and no time "
                         "constant can be estimated")
    # durations in ms with t_res in s: a confident fit with taus 1000x too long otherwise
    _warn_if_units_mixed("fit_mixture", t, t_res, stacklevel=2)
    if taus is not None:
        taus0 = _float_array("taus", taus)
        if np.any(taus0 <= 0):
            raise ValueError("taus must be > 0")
        k = taus0.size if n_components is None else _int("n_components", n_components, minimum=1)
        if k != taus0.size:
            raise ValueError(f"n_components ({k}) != len(taus) ({taus0.size})")
        guesses = [taus0]
        if np.any(taus0 > _GUESS_TOO_LONG * t.max()):
            import warnings
            warnings.warn(f"fit_mixture: a starting guess in taus={taus0.tolist()} s is more than "
                          f"{_GUESS_TOO_LONG:g} times the longest duration ({t.max():.3g} s); "
                          "durations and taus are both in seconds (a guess in ms?)",
                          RuntimeWarning, stacklevel=2)
    else:
        k = 1 if n_components is None else _int("n_components", n_components, minimum=1)
        guesses = None
    if n_starts is None:
        # 4 quantile starts (as before the structured ones), + k insertions and the wide start
        n_starts = 4 if k == 1 else k + 5
    n_starts = _V.integer("n_starts", n_starts, minimum=1, maximum=1000)
    # data-driven starting points: used when no guesses are given, and as a fallback when the
    # optimisation from the guesses does not converge (taus=[0.1, 5] meant as ms for data in
    # s ended in 'the likelihood could not be maximised')
    excess = t - t_res
    q = np.quantile(excess, [0.02, 0.5, 0.98]) + 1e-300
    lo = max(q[0], t.mean() * 1e-4, 1e-15)
    hi = max(q[2], lo * 10)
    # the data's range in log time for the structured starts: from t_res (ideal data: the 2 %
    # quantile) to the longest excess over t_res
    bottom = t_res if t_res > 0 else lo
    top_t = max(float(excess.max()), 10.0 * bottom)

    def quantile_starts(m):
        """m starts spread over the 2-98 % quantiles of the excess (shifted by up to +-1/4
        decade from one another); one component: around the mean excess."""
        out = []
        for j in range(m):
            shift = (j - (m - 1) / 2) / max(m, 1) * 0.5
            if k == 1:
                out.append(np.array([excess.mean() + 1e-300]) * 10 ** shift)
            else:
                out.append(np.logspace(np.log10(lo) + shift, np.log10(hi) + shift, k))
        return out
    if areas is not None:
        a0 = _float_array("areas", areas)
        if a0.size != k or np.any(a0 <= 0):
            raise ValueError(f"areas must be {k} positive numbers")
        a0 = a0 / a0.sum()
    else:
        a0 = None
    if t.size < 2 * k:
        raise ValueError(f"need at least {2 * k} durations to fit {k} components")
    scale = float(np.median(t))
    ts = t / scale
    trs = t_res / scale
    n = t.size
    tau_floor = t_res / _RES_RATIO          # s; 0 for ideal data

    es = excess / scale                      # the excesses over t_res (scaled units)

    def unpack(x):
        """(tau, log a) from ``x``: log tau, then the area logits (the last one 0), in any
        order (the ladder of lower-order fits).  The areas are normalised in logs, so an area
        that underflows as a number (a spike far below t_res takes ~all of it) keeps its log."""
        kk = (len(x) + 1) // 2
        zz = np.append(x[kk:], 0.0)
        m = zz.max()
        return np.exp(x[:kk]), zz - (m + math.log(np.sum(np.exp(zz - m))))

    def nll(x):
        # BFGS line searches try long steps in log tau: exp overflows to tau = inf (or
        # underflows to 0) there and the likelihood / gradient come out inf or nan.  Such a
        # trial point is returned as +inf, which the line search rejects (it backtracks): a
        # NaN could be accepted and end the search at NaN.  The floating-point warnings of
        # those trial points are expected, and silenced here only
        #
        # The truncated likelihood prod f(t_j) / S(t_res) is evaluated as the mixture of the
        # excesses t_j - t_res with the observed weights w_i = a_i exp(-t_res/tau_i) / S
        # (the same function, exactly): softmax of u_i = z_i - t_res/tau_i, in logs.  The
        # untruncated areas are not formed: a spike far below t_res has a_i / a_j ~
        # exp(t_res/tau_i), beyond the range of doubles (the spike of
        # test_spike_at_t_res_without_interior_maximum has its maximum at an area ratio of
        # exp(1665)); with areas clipped at 1e-300 the objective went flat there while its
        # gradient did not, and BFGS stopped on that artificial wall ("precision loss"), at a
        # point that depended on round-off, with n_total = n / S ~ 1e303.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            kk = (len(x) + 1) // 2
            tau = np.exp(x[:kk])
            u = np.append(x[kk:], 0.0) - trs / tau
            um = np.max(u)
            w = np.exp(u - um)
            w = w / np.sum(w)
            # the C kernel takes log w; a weight that underflowed contributes nothing
            wc = np.maximum(w, np.finfo(float).tiny)
            ll, gt, gw = _analysis.mixture_loglik(es, np.ascontiguousarray(tau, float), wc)
            # responsibilities R_i = w_i dll/dw_i (sum n); softmax: dll/du_i = R_i - n w_i;
            # u_i depends on log tau_i through -t_res/tau_i: du_i/dlog tau_i = t_res/tau_i
            gu = wc * gw - n * w
            f = -ll / n
            g = -np.concatenate([gt * tau + gu * trs / tau, gu[:-1]]) / n
        if not (math.isfinite(f) and np.all(np.isfinite(g))):
            return math.inf, np.zeros_like(x)
        return f, g

    def converged(r) -> bool:
        return bool(np.isfinite(r.fun) and np.all(np.isfinite(r.x))
                    and (r.success or np.max(np.abs(r.jac)) < 1e-6))

    def x_start(s0, user_areas=False):
        # a start is taus (s), or (taus, log areas) for the insertion starts
        s0, z = s0 if isinstance(s0, tuple) else (s0, None)
        lt = np.log(np.asarray(s0, float) / scale)
        if user_areas and a0 is not None and a0.size == lt.size:
            z = np.log(a0)
        elif z is not None:
            z = np.asarray(z, float)
        else:
            # no areas given: start with every component equally represented ABOVE t_res,
            # a_i proportional to exp(t_res / tau_i) (in logits, no overflow).  Equal
            # untruncated areas would hide a start with tau << t_res completely (a fraction
            # exp(-t_res/tau) of it is seen): its gradient underflows to 0 and the optimiser
            # never moves it (8 us / 2 ms at t_res = 50 us stayed at areas [0.5, 0.5])
            z = trs / np.exp(lt)
        return np.concatenate([lt, z[:-1] - z[-1]])

    def run(starts, user_areas=False):
        out = []
        for s0 in starts:
            x0 = x_start(s0, user_areas)
            try:
                r = minimize(nll, x0, jac=True, method="BFGS",
                             options={"gtol": 1e-7, "maxiter": 2000})
            except (FloatingPointError, ValueError):  # pragma: no cover - defensive
                continue
            if np.isfinite(r.fun) and np.all(np.isfinite(r.x)):
                r.x_start = x0
                r.structured = isinstance(s0, tuple)
                out.append(r)
        return out

    def run_bounded(starts):
        """Optima of the likelihood with every tau >= tau_floor; only those strictly inside
        the bound are maxima of the unbounded likelihood, and only they are returned."""
        lb = math.log(tau_floor / scale)
        bounds = [(lb, None)] * k + [(None, None)] * (k - 1)
        out = []
        for s0 in starts:
            s0 = s0[0] if isinstance(s0, tuple) else s0
            s0 = np.maximum(np.asarray(s0, float), 2.0 * tau_floor)
            x0 = x_start(s0)
            try:
                r = minimize(nll, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                             options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-9})
            except (FloatingPointError, ValueError):  # pragma: no cover - defensive
                continue
            if (np.isfinite(r.fun) and np.all(np.isfinite(r.x))
                    and np.all(r.x[:k] > lb + 1e-3) and np.max(np.abs(r.jac)) < 1e-6):
                r.x_start = x0
                r.structured = False
                out.append(r)
        return out

    # observed information in natural parameters p = (tau_1..tau_k, a_1..a_{k-1}) (scaled units)
    def grad_nat(p, kk):
        tt = p[:kk]
        aa = np.append(p[kk:], 1.0 - p[kk:].sum())
        _, gt, ga = _mix_loglik(ts, tt, aa, trs)
        return np.concatenate([gt, ga[:-1] - ga[-1]])

    def information(tau, a):
        """(covariance in scaled units, reason) -- reason '' when the observed information
        is finite and positive definite."""
        k = tau.size                         # (any order: the ladder of lower-order fits)
        p = np.concatenate([tau, a[:-1]])
        m = p.size
        H = np.empty((m, m))
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            for j in range(m):
                h = 1e-5 * max(abs(p[j]), 1e-3)
                if j >= k:  # an area step must keep every area positive
                    h = min(h, 0.5 * p[j], 0.5 * a[-1])
                e = np.zeros(m)
                e[j] = h
                H[:, j] = -(grad_nat(p + e, k) - grad_nat(p - e, k)) / (2 * h)
        nan = np.full((m, m), np.nan)
        if not np.all(np.isfinite(H)):
            return nan, "the information matrix is not finite"
        H = 0.5 * (H + H.T)
        # positive definiteness judged scale-free: in log tau and log area
        d = np.concatenate([tau, a[:-1]])
        Hs = H * np.outer(d, d)
        w = np.linalg.eigvalsh(Hs)
        if not (w[0] > 1e-12 * abs(w[-1])):
            return nan, "the information matrix is singular"
        try:
            return np.linalg.inv(H), ""
        except np.linalg.LinAlgError:  # pragma: no cover - excluded by the eigenvalues
            return nan, "the information matrix is singular"

    def assess(r):
        """The optimum of ``r`` (sorted by tau), the list of its degeneracies (judged from
        the data: expected number of observed durations per component, and the observed
        information), and whether some parameter never moved from its start."""
        tau, la = unpack(r.x)
        k = tau.size                         # (any order: the ladder of lower-order fits)
        order = np.argsort(tau)
        tau, la = tau[order], la[order]
        a = np.exp(la)
        tau_s = tau * scale
        problems = []
        with np.errstate(under="ignore", over="ignore", invalid="ignore", divide="ignore"):
            # expected number of the n observed durations from each component,
            # n a_i exp(-t_res/tau_i) / S(t_res), in logs (no underflow, also of an area
            # that underflows to 0 next to a spike far below t_res)
            lw = la - t_res / tau_s
            if np.any(np.isfinite(lw)):
                mx = np.max(lw)
                seen = n * np.exp(lw - mx) / np.sum(np.exp(lw - mx))
            else:  # pragma: no cover - defensive (softmax areas are never all 0)
                seen = np.zeros(k)
        above = " above t_res" if t_res > 0 else ""
        for i in range(k if k > 1 else 0):
            # one component accounts for all n durations: its area is 1 and the excess over
            # t_res is exponential with the same tau (memoryless), so any tau is identifiable
            if seen[i] < _MIN_EVENTS:
                frac = (f" (only exp(-{t_res / tau_s[i]:.3g}) of its durations exceed t_res = "
                        f"{_fmt_s(t_res)})" if t_res > 0 else "")
                problems.append(
                    f"component {i + 1} has tau = {_fmt_s(tau_s[i])} and area {a[i]:.3g}, and "
                    f"accounts for only {seen[i]:.3g} of the {n} durations{above}{frac}, "
                    f"fewer than {_MIN_EVENTS:g}: its tau and area are not identifiable"
                    + (" (its area went to 0)" if seen[i] < 1 else ""))
        cov, why = information(tau, a)
        if why:
            problems.append(why + " (standard errors NaN)")
        elif k > 1:
            # a finite but badly conditioned information: a parameter whose SE exceeds it
            var = np.diag(cov)
            se_tau = np.sqrt(np.abs(var[:k])) / tau
            se_area = np.sqrt(np.abs(np.append(var[k:], np.sum(cov[k:, k:])))) / a
            for i in range(k):
                for name, rel in (("tau", se_tau[i]), ("area", se_area[i])):
                    if not rel <= _MAX_REL_SE:
                        problems.append(
                            f"the {name} of component {i + 1} (tau = {_fmt_s(tau_s[i])}) has "
                            f"a standard error {rel:.3g} times its value (> {_MAX_REL_SE:g}): "
                            "it is not identifiable")
        # a parameter exactly at its start value never moved: its gradient was 0 there (a
        # flat likelihood, e.g. a component too short to be seen above t_res)
        x0 = getattr(r, "x_start", None)
        frozen = (0 if x0 is None else
                  int(np.sum(np.abs(r.x - x0) <= 1e-12 * (1.0 + np.abs(x0)))))
        clean = converged(r) and not problems
        return dict(r=r, tau=tau, a=a, la=la, cov=cov, problems=problems, clean=clean,
                    stuck=frozen > 0 and not clean, frozen=frozen,
                    few=bool(k > 1 and np.any(seen < _MIN_EVENTS)))

    def best_of(cs):
        """The candidate of largest likelihood.  Of those within 1e-6 of it in ln L (one
        maximum reached from several starts, or a flat ridge), one from the guesses or the
        quantile starts is preferred to one from the structured starts, which thus change
        the result only where they find a higher maximum (not by round-off)."""
        if not cs:
            return None
        f_min = min(c["r"].fun for c in cs)
        return min((c for c in cs if c["r"].fun <= f_min + 1e-6 / n),
                   key=lambda c: (c["r"].structured, c["r"].fun))

    def pick(cs):
        """The best clean optimum, else the best that moved, else the best (None if none)."""
        return (best_of([c for c in cs if c["clean"]])
                or best_of([c for c in cs if not c["stuck"]]) or best_of(cs))

    def wide_start(kk):
        """kk taus at the centres of kk equal intervals of log time spanning the data, from
        ``bottom`` (t_res) to the longest excess over t_res."""
        e = (np.arange(kk) + 0.5) / kk
        return bottom * (top_t / bottom) ** e, None

    def insertion_starts(tau_p, a_p):
        """Starts of kk = len(tau_p) + 1 components from a (kk-1)-component fit (taus in s,
        ascending): one component added in each gap between its taus (geometric mean), then
        above the longest and below the shortest.  The added component starts with 1/(2 kk)
        of the observed durations; the others keep their shares of the rest."""
        kk = tau_p.size + 1
        with np.errstate(divide="ignore", under="ignore"):
            lw = np.log(a_p) - t_res / tau_p          # log observed weights, unnormalised
        lw = lw - (np.max(lw) + math.log(np.sum(np.exp(lw - np.max(lw)))))
        f = 1.0 / (2 * kk)
        new = [math.sqrt(tau_p[i] * tau_p[i + 1]) for i in range(kk - 2)]
        new.append(max(math.sqrt(top_t * tau_p[-1]), 3.0 * tau_p[-1]))
        new.append(min(math.sqrt(lo * tau_p[0]), tau_p[0] / 3.0))
        out = []
        for tn in new:
            tt = np.append(tau_p, tn)
            # untruncated log areas: observed weight * exp(t_res / tau)
            z = np.append(lw + math.log1p(-f), math.log(f)) + t_res / tt
            o = np.argsort(tt, kind="stable")
            out.append((tt[o], z[o]))
        return out

    # the ladder of lower-order fits: the best optimum found with kk = 1, 2, ... components,
    # each from insertions into the best (kk-1)-component one (and the wide start); its
    # (k-1)-component fit seeds the k-component starts and is the comparison of the advice
    ladder = {}

    def fit_order(kk):
        if kk not in ladder:
            if kk == 1:
                # closed form: the excess over t_res of one exponential is Exp(tau)
                tau1 = float(excess.mean())
                x1 = np.array([math.log(tau1 / scale)])
                ladder[1] = dict(tau=np.array([tau1]), a=np.ones(1), fun=nll(x1)[0])
            else:
                prev = fit_order(kk - 1)
                rs = sorted(run(insertion_starts(prev["tau"], prev["a"]) + [wide_start(kk)]),
                            key=lambda r: r.fun)
                # assessed in order of likelihood, up to the first clean optimum (the
                # information matrix costs 2 (2 kk - 1) gradients of the whole data set)
                cs = []
                for r in rs:
                    cs.append(assess(r))
                    if cs[-1]["clean"]:
                        break
                c = pick(cs)
                if c is None:  # pragma: no cover - every start failed: seed from the start
                    tt, z = insertion_starts(prev["tau"], prev["a"])[0]
                    ladder[kk] = dict(tau=tt, a=np.exp(z - z.max()) / np.exp(z - z.max()).sum(),
                                      fun=math.nan)
                else:
                    ladder[kk] = dict(tau=c["tau"] * scale, a=c["a"], fun=float(c["r"].fun))
        return ladder[kk]

    data_starts_memo = []

    def data_starts():
        """The n_starts data-driven starts of the k-component fit: the insertions into the
        best (k-1)-component fit and the wide start (as many as n_starts allows, in that
        order of priority), and n_starts minus their number quantile starts (listed first)."""
        if not data_starts_memo:
            if k == 1:
                data_starts_memo.extend(quantile_starts(n_starts))
            else:
                prev = fit_order(k - 1)
                structured = insertion_starts(prev["tau"], prev["a"]) + [wide_start(k)]
                data_starts_memo.extend(quantile_starts(max(n_starts - len(structured), 0))
                                        + structured[:n_starts])
        return data_starts_memo

    primary = data_starts() if guesses is None else guesses
    results = run(primary, user_areas=True)
    n_tried = len(primary)
    cands = [assess(r) for r in results]

    # fall back on the data-driven starts when the guesses did not reach a clean maximum
    # (taus=[100, 1000] s for ms data ended with a 330 s component of area 7e-13)
    if guesses is not None and not any(c["clean"] for c in cands):
        cands += [assess(r) for r in run(data_starts(), user_areas=True)]
        n_tried += len(data_starts())
    # ... and on them with their own areas when the given areas did not reach one either
    # (areas [0.5, 0.5] hide a component of tau << t_res at every start)
    if a0 is not None and not any(c["clean"] for c in cands):
        cands += [assess(r) for r in run(data_starts())]
        n_tried += len(data_starts())
    if not cands:
        raise RuntimeError(f"fit_mixture: the likelihood could not be maximised from any of "
                           f"{n_tried} starting points (durations {t.min():.3g} to "
                           f"{t.max():.3g} s, t_res {t_res:g} s); try fewer components")
    # a start whose parameters partly never moved is not an optimum: it is ranked last
    # (never reported as "the best degenerate optimum" while a point that moved exists)
    top = best_of([c for c in cands if not c["stuck"]]) or best_of(cands)
    if not top["clean"] and k > 1 and t_res > 0 and (
            top["stuck"] or np.any(top["tau"] * scale < tau_floor)):
        # a spurious maximum near tau -> 0 (or none found): look for maxima with every tau
        # >= t_res / _RES_RATIO (a search bound, accepted only strictly inside)
        extra = list(data_starts()) + [np.logspace(math.log10(t_res), math.log10(hi), k)]
        extra.append(top["tau"] * scale)
        found = [assess(r) for r in run_bounded(extra)]
        cands += found
        n_tried += len(extra)
    clean = [c for c in cands if c["clean"]]
    message = ""
    if clean:
        chosen = best_of(clean)
        if top["r"].fun < chosen["r"].fun and not top["clean"] and not top["stuck"]:
            message = (f"a degenerate optimum with log-likelihood "
                       f"{(chosen['r'].fun - top['r'].fun) * n:.3g} higher was set aside ("
                       + "; ".join(top["problems"] or ["not converged"]) + ")")
    elif top["stuck"]:
        # no start moved in every parameter: say so, and do not blame the data
        chosen = top
        cause = ("the gradient is 0 in them there: a flat likelihood, e.g. a component too "
                 "short to be seen above t_res" if converged(chosen["r"]) else
                 f"the optimiser stopped: {chosen['r'].message}")
        message = (f"the {k}-component fit is not a maximum: the optimiser did not improve on "
                   f"its start ({chosen['frozen']} of {2 * k - 1} parameters never moved; "
                   f"{cause}) [best of {n_tried} starts]; try other starting values "
                   "(taus, areas)")
        import warnings
        warnings.warn("fit_mixture: " + message, RuntimeWarning, stacklevel=2)
    else:
        chosen = top
        why = list(chosen["problems"])
        if not converged(chosen["r"]):
            why.insert(0, f"the optimiser did not converge ({chosen['r'].message})")
        message = (f"the {k}-component fit is not a clean maximum: " + "; ".join(why)
                   + f" [best of {n_tried} starts]")
        if chosen["problems"] and k > 1:
            # the advice follows the likelihood-ratio comparison with the best
            # (k-1)-component fit found (the ladder), not the flags alone
            gain = (fit_order(k - 1)["fun"] - chosen["r"].fun) * n
            if -1e-6 < gain < 0:                  # the same likelihood to round-off
                gain = 0.0
            where = " above t_res" if t_res > 0 else ""
            if not math.isfinite(gain):  # pragma: no cover - no (k-1)-component optimum
                message += (f"; the data do not identify {k} components{where}: fit fewer "
                            f"components (n_components={k - 1})")
            elif gain <= _LR_GAIN:
                message += (f"; the data do not identify {k} components{where}: fit fewer "
                            f"components (n_components={k - 1}; {k} components raise ln L "
                            f"by only {gain:.3g} over the best {k - 1}-component fit found, "
                            f"< {_LR_GAIN:.3g})")
            elif chosen["few"]:
                # a gain that rests on fewer than _MIN_EVENTS durations (a spike of the
                # truncated likelihood next to t_res) is no evidence for a component
                message += (f"; the data do not identify {k} components{where}: fit fewer "
                            f"components (n_components={k - 1}; the ln L gain of {gain:.4g} "
                            f"over the best {k - 1}-component fit found rests on a component "
                            f"that accounts for fewer than {_MIN_EVENTS:g} durations)")
            else:
                message += (f"; yet ln L is {gain:.4g} above the best {k - 1}-component fit "
                            f"found (> {_LR_GAIN:.3g}: a likelihood-ratio test at 0.1 %, "
                            "approximate for mixtures), so the data do not favour fewer "
                            f"components: this {k}-component optimum may be a poor local "
                            "maximum; try starting guesses (taus) spread over the range of "
                            "the durations")
        import warnings
        warnings.warn("fit_mixture: " + message, RuntimeWarning, stacklevel=2)
    tau, a, cov = chosen["tau"], chosen["a"], chosen["cov"]
    m = 2 * k - 1
    # back to seconds
    sc = np.concatenate([np.full(k, scale), np.ones(m - k)])
    cov = cov * np.outer(sc, sc)
    var = np.diag(cov).copy()
    se_t = np.sqrt(np.where(var[:k] >= 0, var[:k], np.nan))
    if k > 1:
        caa = cov[k:, k:]
        var_last = float(np.sum(caa))
        se_a = np.sqrt(np.append(np.where(var[k:] >= 0, var[k:], np.nan),
                                 var_last if var_last >= 0 else np.nan))
    else:
        se_a = np.zeros(1)
    taus_s = tau * scale
    # n_total = n / S(t_res), in logs from the logits (an area that underflowed to 0 or an S
    # below the range of doubles would make it 0/0 or a number set by the underflow); inf
    # when it exceeds the range of doubles (a degenerate fit: a spike far below t_res
    # carrying ~all the untruncated area)
    lws = chosen["la"] - t_res / taus_s
    mw = float(np.max(lws))
    log_n_total = math.log(n) - (mw + math.log(float(np.sum(np.exp(lws - mw)))))
    n_total = math.exp(log_n_total) if log_n_total < 709.0 else math.inf
    ll = -chosen["r"].fun * n - n * math.log(scale)
    return MixtureFit(taus=taus_s, areas=a, se_taus=se_t, se_areas=se_a, cov=cov, loglik=ll,
                      n=int(n), t_res=t_res, n_total=n_total,
                      converged=bool(chosen["clean"]), data=t, message=message)


# ---------------------------------------------------------------------------
# non-stationary noise analysis
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NoiseAnalysis:
    """Non-stationary noise analysis [S80]: ensemble mean/variance and the parabola fit.

    ``var(t) = i * I(t) - I(t)**2 / N (+ var_baseline)``.

    Attributes
    ----------
    time : ndarray (s)
    mean, var : ndarray
        Ensemble mean current (A) and its unbiased variance (A^2) over trials, per sample.
    i, se_i : float
        Single-channel current (A) and its standard error (jackknife; NaN for a single
        ``record="summary"`` input, which has no per-trial data -- a list of summary parts
        gives the jackknife over parts, see :func:`noise_analysis`).
    N, se_N : float
        Number of channels and its standard error (NaN for a single ``record="summary"``
        input).  ``N`` is ``inf`` when the fitted
        curvature ``1/N`` is <= 0 (the data show no saturation: open probability too low, or
        too few trials to measure it).
    var_baseline, se_var_baseline : float
        Background variance (A^2) when fitted, else 0 (``se_var_baseline`` NaN for a single
        ``record="summary"`` input).
    used : ndarray of bool
        Samples entering the fit.
    n_trials : int
    """

    time: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    i: float
    se_i: float
    N: float
    se_N: float
    var_baseline: float
    se_var_baseline: float
    used: np.ndarray
    n_trials: int

    def __repr__(self) -> str:
        return _compact_repr(self)

    @property
    def open_probability_max(self) -> float:
        """Peak open probability ``max|I| / |i N|``."""
        return float(np.max(np.abs(self.mean[self.used])) / abs(self.i * self.N))

    def parabola(self, current) -> np.ndarray:
        """The fitted variance (A^2) at mean current(s) ``current`` (A)."""
        c = np.asarray(current, float)
        return self.i * c - c ** 2 / self.N + self.var_baseline

    def plot(self, *, ax=None):
        """Variance against mean current with the fitted parabola (matplotlib; ImportError
        "plot() needs matplotlib…" without it)."""
        from .plot import require_pyplot
        plt = require_pyplot()
        if ax is None:
            _, ax = plt.subplots()
        ax.plot(self.mean[self.used], self.var[self.used], ".", ms=3, color="0.5", label="data")
        c = np.linspace(min(0.0, self.mean.min()), max(0.0, self.mean.max()), 200)
        ax.plot(c, self.parabola(c), "r-",
                label=f"i = {self.i:.3g} A, N = {self.N:.4g}")
        ax.set_xlabel("mean current (A)")
        ax.set_ylabel("variance (A$^2$)")
        ax.legend()
        return ax


def _parabola_fit(mean, var, baseline):
    cols = [mean, -mean ** 2] + ([np.ones_like(mean)] if baseline else [])
    X = np.stack(cols, axis=1)
    # columns scaled to unit norm: with currents in A they span ~22 orders of magnitude (I ~
    # 1e-11, I^2 ~ 1e-22, 1), and lstsq's rcond would drop the I^2 direction (N = inf)
    scale = np.linalg.norm(X, axis=0)
    scale[scale == 0] = 1.0
    coef, *_ = np.linalg.lstsq(X / scale, var, rcond=None)
    coef = coef / scale
    # (i, 1/N, background): 1/N is the linear parameter, finite even when the curvature is <= 0
    return coef[0], coef[1], (coef[2] if baseline else 0.0)


# Level of the chi^2 test in noise_analysis that the mean current varies: a constant mean
# (independent samples) passes it, and is fitted, with this probability.
_NOISE_CONSTANT_MEAN_ALPHA = 1e-3


def _noise_parts(data) -> tuple:
    """``(result, parts)`` for a list/tuple of :class:`SimulationResult` (joined with
    :func:`ketacore.concatenate`, which checks that they are trials of one simulation: same
    scheme, protocol, grid, channels, method, initial distribution and root entropy, disjoint
    trials), else ``(data, None)``."""
    from .simulate import SimulationResult, concatenate
    if not isinstance(data, (list, tuple)) or not any(isinstance(p, SimulationResult) for p in data):
        return data, None
    bad = sorted({type(p).__name__ for p in data if not isinstance(p, SimulationResult)})
    if bad:
        raise TypeError("data: a list must hold only SimulationResult parts (of one simulation, "
                        f"split over calls) or be an array of currents; got {', '.join(bad)} "
                        "among SimulationResult")
    parts = list(data)
    try:
        joined = concatenate(parts)
    except ValueError as e:
        raise ValueError(f"data (a list of SimulationResult parts): {e}") from None
    return joined, parts


def _check_one_voltage(res, t: np.ndarray, used: np.ndarray, windowed: bool) -> None:
    """ValueError unless the voltage is the same at every sample of the fit window: the parabola
    has one single-channel current ``i = g (V - E_rev)``, which changes with V."""
    V = np.asarray(res.V, float)[used]
    if V.size == 0 or V.min() == V.max():
        return
    tu = t[used]
    cut = np.flatnonzero(np.diff(V) != 0) + 1
    starts, ends = np.r_[0, cut], np.r_[cut, V.size] - 1
    runs = [f"{V[a] * 1e3:.6g} mV at {tu[a]:.10g}-{tu[b]:.10g} s" for a, b in zip(starts, ends)]
    shown = "; ".join(runs[:4]) + (f"; ... ({len(runs)} constant-voltage runs)" if len(runs) > 4
                                   else "")
    j = int(np.argmax(ends - starts))
    a, b = starts[j], ends[j]
    raise ValueError(
        f"window: the membrane voltage changes inside the fit window "
        f"({'' if windowed else 'no window given, so every sample; '}{shown}).  Noise analysis "
        "fits var = i I - I^2/N with ONE single-channel current i = g (V - E_rev), which is a "
        "different value at each voltage (fitting across a voltage step gives an i matching "
        "neither and a meaningless N); select samples at one voltage with window=(t0, t1) in s, "
        f"e.g. window=({tu[a]:.10g}, {tu[b]:.10g}), the longest run here "
        f"({V[a] * 1e3:.6g} mV, {b - a + 1} samples)")


def _warn_if_several_levels(res, mean: np.ndarray, used: np.ndarray, baseline: bool) -> None:
    """RuntimeWarning when states of more than one non-zero conductance are occupied in the fit
    window: the parabola assumes one level.  The message names the levels, the range of the
    current-weighted mean level, and the i and N the method converges to on this run's mean
    occupancies (the binomial variance of independent channels fitted like the data)."""
    g = np.asarray(res.scheme.conductance, float)
    occ = np.asarray(res.mean, float)[used]                   # mean channels per state
    levels = np.unique(g[(g != 0) & (occ.sum(axis=0) > 0)])
    if levels.size < 2:
        return
    import warnings
    drive = float(np.asarray(res.V, float)[used][0] - res.scheme.e_rev)
    gm, g2m = occ @ g, occ @ (g * g)
    with np.errstate(invalid="ignore", divide="ignore"):
        g_eff = np.where(gm != 0, g2m / np.where(gm != 0, gm, 1.0), np.nan)
    n_ch = float(res.n_channels)
    expected_var = drive * drive * (g2m - gm * gm / n_ch)     # independent channels
    i_x, inv_x, _ = _parabola_fit(mean[used], expected_var, baseline)
    n_x = 1.0 / inv_x if inv_x > 0 else math.inf
    i_top = float(levels[np.argmax(np.abs(levels))]) * drive
    lv = ", ".join(f"{x * 1e12:.4g}" for x in levels)
    if math.isfinite(n_x):
        rel = n_x / n_ch - 1.0
        direction = (f"N is {'over' if rel > 0 else 'under'}estimated by {abs(rel) * 100:.3g} %"
                     if abs(rel) >= 5e-3 else "N is nearly unbiased here")
    else:
        direction = "N comes out inf (no resolved curvature)"
    warnings.warn(
        f"noise_analysis: states of {levels.size} distinct conductance levels ({lv} pS) are "
        "occupied in the fit window, but var = i I - I^2/N assumes one open conductance.  With "
        "several, var = i_eff(t) I - I^2/N where i_eff = (V - E_rev) sum(g^2 n) / sum(g n) is "
        "the current-weighted mean level (here "
        f"{np.nanmin(g_eff) * 1e12:.4g}-{np.nanmax(g_eff) * 1e12:.4g} pS): i estimates a mix of "
        f"the levels, not the largest level's {i_top * 1e12:.4g} pA, and N is biased wherever "
        "the mix changes with the mean current (upward when the mix shifts to the larger level "
        "as |I| grows).  On this run's mean occupancies the fit converges to "
        f"i = {i_x * 1e12:.4g} pA, N = {n_x:.4g} for {res.n_channels} channels: {direction}",
        RuntimeWarning, stacklevel=3)


def _parts_jackknife(parts, used: np.ndarray, baseline: bool):
    """Delete-one-part parabola fits ``(G, 3)`` and the parts' trial counts: each replicate's
    mean and (ddof=1) variance of the current pooled from the other parts' means and variances,
    ``(n_r - 1) var_r = W - (n_g - 1) v_g - n_g a_g^2 - n_g^2 a_g^2 / n_r`` with ``a_g`` the
    part mean's deviation from the grand mean and ``W = (n - 1) var`` of all trials (exact
    algebra; O(G) passes)."""
    n_g = np.array([p.n_trials for p in parts], float)
    m_g = []
    v_g = []
    for p in parts:
        c = np.asarray(p.current, float)
        m_g.append((c.mean(axis=0) if c.ndim == 2 else c)[used])
        v = np.asarray(p.current_var, float)[used]
        v_g.append(np.where(p.n_trials > 1, v, 0.0))          # (one trial: no spread, NaN var)
    m_g, v_g = np.array(m_g), np.array(v_g)
    n = n_g.sum()
    M = (n_g[:, None] * m_g).sum(axis=0) / n
    a = m_g - M
    W = ((n_g[:, None] - 1.0) * v_g).sum(axis=0) + (n_g[:, None] * a * a).sum(axis=0)
    est = []
    for gi in range(len(parts)):
        nr = n - n_g[gi]
        mean_r = M - n_g[gi] * a[gi] / nr
        num = W - (n_g[gi] - 1.0) * v_g[gi] - n_g[gi] * a[gi] ** 2 - n_g[gi] ** 2 * a[gi] ** 2 / nr
        est.append(_parabola_fit(mean_r, num / (nr - 1.0), baseline))
    return np.array(est, float), n_g


def _jackknife_se(full: np.ndarray, est: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Delete-one-group jackknife SEs for groups of unequal sizes ``m_g`` (Busing, Meijer & van
    der Leeden 1999, delete-m_j jackknife): with ``h_g = n / m_g``, pseudo-values
    ``p_g = h_g theta - (h_g - 1) theta_(g)``, ``theta_J = G theta - sum (1 - m_g/n) theta_(g)``
    and ``var = (1/G) sum (p_g - theta_J)^2 / (h_g - 1)`` -- the usual
    ``(G-1)/G sum (theta_(g) - mean)^2`` for equal groups.  NaN where a replicate is not
    finite."""
    G = est.shape[0]
    h = (sizes.sum() / sizes).reshape((G,) + (1,) * (est.ndim - 1))   # (any shape of estimate)
    with np.errstate(invalid="ignore"):
        pseudo = h * full[None, ...] - (h - 1.0) * est
        theta_j = G * full - np.sum((1.0 - 1.0 / h) * est, axis=0)
        var = np.sum((pseudo - theta_j) ** 2 / (h - 1.0), axis=0) / G
        return np.sqrt(var)


def noise_analysis(data, *, time=None, window=None, baseline: bool = False,
                   n_groups: int = 20) -> NoiseAnalysis:
    """Non-stationary noise analysis of repeated current responses [S80].

    The ensemble mean ``I(t)`` and variance ``sigma^2(t)`` (ddof = 1) over trials are fitted
    by least squares with ``sigma^2 = i I - I^2 / N`` (plus a constant background variance with
    ``baseline=True``); for N independent identical channels with one open conductance this
    holds exactly at every time (binomial occupancy).  Standard errors of ``i`` and ``N`` come
    from a delete-one-group jackknife over trials (``n_groups`` groups), which respects the
    correlation between time points.

    The method assumes ONE single-channel current ``i = g (V - E_rev)`` over the fit window:
    one open conductance ``g`` and one voltage.  For a :class:`SimulationResult` both are
    checked: a voltage that changes between the samples of the window is refused (ValueError;
    choose a constant-voltage ``window``), and states of several non-zero conductances occupied
    in the window give a RuntimeWarning (see Warns).  An array of currents carries neither the
    voltage nor the scheme: there the assumption is the caller's.

    Parameters
    ----------
    data : SimulationResult, list of SimulationResult, or array (n_trials, n_samples)
        ``ketacore.simulate`` output with ``record="counts"`` (currents from ``result.current``)
        or ``record="summary"`` (mean and variance over trials of the current:
        ``result.current`` and ``result.current_var``, any scheme); or currents (A).  A list
        (or tuple) of results is the parts of one simulation split over calls (``trials=`` or
        ``trial_offset=``), as :func:`ketacore.concatenate` takes them -- it joins them and
        checks that they are (same scheme, protocol, grid, ``n_channels``, method, initial
        distribution and root entropy; disjoint trials), a ValueError naming the first
        difference otherwise.  The fit is that of the joined result; when a part is a summary,
        the standard errors come from the delete-one-part jackknife (each part one group, of
        its own size: ``n_groups`` is not used), which a joined summary alone cannot give.
    time : array (s), optional
        Sample times for an array input (default ``arange(n_samples)``).
    window : (t0, t1) in s, optional
        Fit only samples with ``t0 <= t <= t1``.
    baseline : bool
        Also fit a constant background variance.
    n_groups : int
        Jackknife groups over trials (at most the number of trials; >= 2); not used for a list
        with summary parts, whose groups are the parts.

    Returns
    -------
    NoiseAnalysis

    Raises
    ------
    ValueError
        Fewer than 3 trials or samples, a variance of 0 at every sample of the window (no
        fluctuations, e.g. identical trials), a mean current with too few distinct values
        in the window to determine the parabola, or a mean current that does not vary
        significantly over the window (stationary: the scatter of the mean is noise).  The
        last test: with ``m`` samples in the window, ``n`` trials and the pooled squared
        standard error ``se^2 = mean(var) / n`` of one sample's mean, it requires
        ``sum((I_j - mean(I))**2) / se^2 > chi2.isf(alpha, m - 1)``, ``alpha = 1e-3``: the RMS spread of the mean must exceed
        ``sqrt(chi2.isf(alpha, m - 1) / (m - 1))`` standard errors (about 1.5 for m = 20,
        1.15 for m = 200).  A constant mean with independent samples passes with probability
        ``alpha``; a relaxation after a step, whose mean changes by many standard errors,
        essentially never fails it.  For a :class:`SimulationResult`: a membrane voltage that
        is not the same at every sample of the fit window (a voltage step inside it), since
        ``i`` must be one value -- the message lists the constant-voltage runs and suggests a
        ``window``.  For a list of parts: parts that are not trials of one simulation.
    TypeError
        A list mixing :class:`SimulationResult` with other items.

    Warns
    -----
    RuntimeWarning
        The fitted curvature ``1/N`` is <= 0 (``N = inf``) or not resolved by the jackknife
        (``se_N`` not finite: some groups have ``1/N <= 0``).  The message gives ``1/N`` with its
        jackknife SE and the lower bound on N the data support (``1 / (1/N + 2 SE)``).
    RuntimeWarning
        A :class:`SimulationResult` whose scheme has states of more than one distinct non-zero
        conductance occupied in the fit window (sublevels).  Then ``var = i_eff(t) I - I^2/N``
        with ``i_eff = (V - E_rev) sum(g^2 n) / sum(g n)``, the current-weighted mean level:
        ``i`` estimates a mix of the levels rather than the main level, and ``N`` is biased
        wherever the mix changes with the mean current -- upward when the mix shifts to the
        larger level as ``|I|`` grows (50 and 20 pS states entered in that order gave
        N = 129-153 for 100 channels, i = -2.3 to -2.6 pA for a -3.5 pA main level).  The
        message names the levels, the range of ``i_eff`` and the ``i`` and ``N`` the fit
        converges to on the run's own mean occupancies (the binomial variance of independent
        channels, fitted like the data), which gives the direction and size of the bias.

    Notes
    -----
    ``se_i``, ``se_N`` and ``se_var_baseline`` are NaN for a single ``record="summary"``
    input (also one joined by :func:`ketacore.concatenate`): it keeps only the mean and
    variance per sample, not the trials the jackknife resamples.  Pass the parts as a list
    instead: each part is a natural group for the delete-one-group jackknife (at least 2 parts;
    with unequal part sizes the delete-m_j jackknife of Busing, Meijer & van der Leeden 1999,
    the usual formula for equal sizes).  Each replicate's mean and variance are pooled from the
    other parts' means and variances; with ``G`` parts the squared SE has about ``G - 1``
    degrees of freedom, so 10 parts give an SE between 0.55 and 1.45 times the true one (95 %),
    20 groups between 0.68 and 1.31.
    """
    from .simulate import SimulationResult
    groups_data = None
    data, parts = _noise_parts(data)
    sim = data if isinstance(data, SimulationResult) else None
    if sim is not None and (parts is None or data.counts is not None):
        parts = None          # (all parts with counts: the per-trial jackknife of the joined)
    if isinstance(data, SimulationResult):
        t = data.time
        if data.counts is not None:
            cur = np.asarray(data.current, float)
        else:
            # the summary's exact sums of the count at each conductance level (and pair of
            # levels) give the current's variance for any scheme (SimulationResult.current_var)
            mean = np.asarray(data.current, float)
            var = np.asarray(data.current_var, float)
            cur = None
            groups_data = (mean, var, data.n_trials)
    else:
        cur = _float_array("data", data, ndim=2)
        t = np.arange(cur.shape[1], dtype=float) if time is None else _float_array("time", time)
        if t.size != cur.shape[1]:
            raise ValueError(f"time must have one entry per sample ({cur.shape[1]})")
    if cur is not None:
        n_tr = cur.shape[0]
        if n_tr < 3:
            raise ValueError(f"data needs at least 3 trials, got {n_tr}")
        mean = cur.mean(axis=0)
        var = cur.var(axis=0, ddof=1)
    else:
        mean, var, n_tr = groups_data
        if n_tr < 3:
            raise ValueError(f"data needs at least 3 trials, got {n_tr}")
    used = np.ones(t.size, bool)
    if window is not None:
        if isinstance(window, (str, bytes)) or not hasattr(window, "__len__") \
                or len(window) != 2:
            raise TypeError(f"window must be a pair (t0, t1) in s, got {window!r}")
        w0 = _real("window[0]", window[0])
        w1 = _real("window[1]", window[1])
        if not w1 > w0:
            raise ValueError("window must have t1 > t0")
        used = (t >= w0) & (t <= w1)
    if used.sum() < 3:
        raise ValueError("fewer than 3 samples in the fit window")
    if sim is not None:
        _check_one_voltage(sim, t, used, window is not None)
    if not np.any(var[used] > 0):
        raise ValueError("data: the variance across trials is 0 at every sample of the fit "
                         "window (identical trials): there are no fluctuations to analyse")
    n_par = 3 if baseline else 2
    X = np.stack([mean[used], mean[used] ** 2] + ([np.ones(int(used.sum()))] if baseline
                                                  else []), axis=1)
    col = np.abs(X).max(axis=0)
    if not np.all(col > 0) or np.linalg.matrix_rank(X / col) < n_par:  # scale-free (A or pA)
        raise ValueError(f"data: the mean current takes too few distinct values in the fit "
                         f"window to determine the parabola ({n_par} parameters); fit over a "
                         "window where the mean current changes")
    # noise alone gives a mean with distinct values at every sample (the rank test passes), and
    # the parabola through pure scatter is meaningless (i of the wrong sign, N = inf): require
    # the mean to vary significantly.  With the pooled squared standard error of one sample's
    # mean, se^2 = mean(var) / n_trials, a constant mean gives sum((I_j - mean I)^2) / se^2 ~
    # chi^2 with m - 1 degrees of freedom (m samples, independent); refuse unless it exceeds
    # the upper 1e-3 quantile, i.e. unless the RMS spread of the mean exceeds
    # sqrt(chi2.isf(1e-3, m - 1) / (m - 1)) standard errors (1.5 for m = 20).
    from scipy.stats import chi2 as _chi2
    mu = mean[used]
    m_used = int(used.sum())
    se2 = float(np.mean(var[used])) / n_tr
    stat = float(np.sum((mu - mu.mean()) ** 2)) / se2
    crit = float(_chi2.isf(_NOISE_CONSTANT_MEAN_ALPHA, m_used - 1))
    if not stat > crit:
        raise ValueError(
            f"data: the mean current does not vary significantly over the fit window (RMS "
            f"spread {math.sqrt(stat / (m_used - 1)):.3g} standard errors of the mean across "
            f"{m_used} samples and {n_tr} trials; at least "
            f"{math.sqrt(crit / (m_used - 1)):.3g} needed, a chi^2 test at level "
            f"{_NOISE_CONSTANT_MEAN_ALPHA:g}): a stationary current cannot separate i from N; "
            "fit a window where the mean current changes, e.g. a relaxation after a step")
    i, inv_n, vb = _parabola_fit(mean[used], var[used], baseline)
    N = 1.0 / inv_n if inv_n > 0 else math.inf
    se_i = se_N = se_b = se_inv = math.nan
    if cur is not None:
        G = min(_int("n_groups", n_groups, minimum=2), n_tr)
        labels = np.arange(n_tr) % G
        est = []
        for gidx in range(G):
            sub = cur[labels != gidx][:, used]
            est.append(_parabola_fit(sub.mean(axis=0), sub.var(axis=0, ddof=1), baseline))
        est = np.array(est, float)
        inv = est[:, 1].copy()
        est[:, 1] = np.where(inv > 0, 1.0 / np.where(inv > 0, inv, 1.0), math.inf)  # N per group
        with np.errstate(invalid="ignore"):
            jk = (G - 1) / G * np.sum((est - est.mean(axis=0)) ** 2, axis=0)
        se_i, se_N, se_b = (float(math.sqrt(v)) for v in jk)
        se_inv = float(math.sqrt((G - 1) / G * np.sum((inv - inv.mean()) ** 2)))
    elif parts is not None and len(parts) >= 2 and n_tr - max(p.n_trials for p in parts) >= 2:
        # summaries split over calls: each part is a delete-one-group jackknife group
        est, sizes = _parts_jackknife(parts, used, baseline)
        inv = est[:, 1].copy()
        est[:, 1] = np.where(inv > 0, 1.0 / np.where(inv > 0, inv, 1.0), math.inf)  # N per part
        full = np.array([i, N, vb, inv_n], float)
        se_i, se_N, se_b, se_inv = (float(v) for v in
                                    _jackknife_se(full, np.c_[est, inv], sizes))
    if sim is not None:
        _warn_if_several_levels(sim, mean, used, baseline)
    jackknifed = cur is not None or math.isfinite(se_inv)
    if not math.isfinite(N) or (jackknifed and not math.isfinite(se_N)):
        # the curvature 1/N is not resolved from 0: say what the data do support
        import warnings
        if math.isfinite(se_inv) and inv_n + 2.0 * se_inv > 0:
            bound = (f"1/N = {inv_n:.3g} ± {se_inv:.3g} (jackknife), so only N > "
                     f"{1.0 / (inv_n + 2.0 * se_inv):.3g} (1/N + 2 SE) is supported")
        else:
            bound = f"1/N = {inv_n:.3g}"
        warnings.warn(
            f"noise_analysis: the variance-mean parabola has no resolved curvature ({bound}); "
            f"N = {N:g}, se_N = {se_N:g}.  The open probability reached is too low (the "
            "variance is ~ i*I, a line) or there are too few trials; i is still estimated.  "
            "Raise the open probability (more agonist) or the number of trials to determine N",
            RuntimeWarning, stacklevel=2)
    return NoiseAnalysis(time=t, mean=mean, var=var, i=float(i), se_i=se_i, N=float(N),
                         se_N=se_N, var_baseline=float(vb), se_var_baseline=se_b, used=used,
                         n_trials=int(n_tr))
