"""Input validation shared by the public API (DESIGN rule 2: validate in Python, compute in C++).

Every check raises ``ValueError`` or ``TypeError`` whose message names the parameter, the value
received and what is allowed.
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import numbers
import warnings
from typing import Any, Iterator

import numpy as np

#: Largest |V| accepted (V).  Larger values almost always mean millivolts were passed as volts.
MAX_ABS_VOLTAGE = 1.0
#: Largest concentration accepted (M).  Larger values almost always mean µM passed as M.
MAX_CONCENTRATION = 10.0
#: Largest concentration accepted without a :class:`UnitsWarning` (M): 100 mM is above anything
#: applied to ligand-gated channels in practice (saturating agonists ~1-10 mM, Mg2+ up to
#: ~10-20 mM, blockers µM-mM), so a larger value almost always means µM or mM written as M
#: (``ketamine=10``).
PLAUSIBLE_CONCENTRATION = 0.1
#: Accepted temperature range (K).
TEMPERATURE_RANGE = (200.0, 400.0)


def plain(v: Any) -> str:
    """``repr`` of ``v`` for an error message with numpy scalars and arrays shown as plain
    numbers (``1.5``, ``[1.5, 2.0]``), not ``np.float64(1.5)`` or ``array([...])``."""
    def conv(x):
        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, np.ndarray):
            return x.tolist()
        if isinstance(x, (tuple, list)):
            return type(x)(conv(y) for y in x)
        return x
    return repr(conv(v))


def real(name: str, value: Any, *, positive: bool = False, nonnegative: bool = False,
         finite: bool = True) -> float:
    """Return ``value`` as a float after checking it is a real number with the stated sign."""
    t = type(value)
    if t is float or t is int:  # fast path (exact types; bool and numpy scalars take the full checks)
        v = float(value)
        if -math.inf < v < math.inf and (not positive or v > 0) and (not nonnegative or v >= 0):
            return v
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} ({value!r})")
    v = float(value)
    if math.isnan(v):
        raise ValueError(f"{name} must not be NaN")
    if finite and math.isinf(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if positive and not v > 0:
        raise ValueError(f"{name} must be > 0, got {v}")
    if nonnegative and not v >= 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    return v


def integer(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an int after checking type and range."""
    if type(value) is int and (minimum is None or value >= minimum) and (maximum is None or value <= maximum):
        return value  # fast path; bool, numpy integers and out-of-range values take the full checks
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} ({value!r})")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {v}")
    return v


def flag(name: str, value: Any) -> bool:
    """Return ``value`` as a bool after checking it is one (True/False or a numpy bool): a
    string such as ``"no"`` would otherwise count as True."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {type(value).__name__} ({value!r})")


def voltage(name: str, value: Any) -> float:
    v = real(name, value)
    if abs(v) > MAX_ABS_VOLTAGE:
        raise ValueError(
            f"{name}={v} V is outside ±{MAX_ABS_VOLTAGE} V; ketacore uses SI volts "
            f"(write -70 * ketacore.units.mV, not -70)")
    return v


class UnitsWarning(UserWarning):
    """A value accepted but implausible in SI units: most likely µM, mM or ms written as a
    bare number (``ketamine=10`` is 10 M).  Filter it with
    ``warnings.filterwarnings("ignore", category=ketacore.UnitsWarning)`` when the value is
    meant."""


def near_miss(name: str, candidates) -> "str | None":
    """The candidate ``name`` was probably meant to be (difflib ratio >= 0.75), or None: the
    one rule of the "did you mean ...?" hints for misspelt keys and ligands."""
    import difflib
    near = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.75)
    return near[0] if near else None


def user_stacklevel() -> int:
    """The ``stacklevel`` for :func:`warnings.warn`, called right here, that points at the first
    frame outside the ketacore package: the user's line, however deep the call (``solve`` and
    ``simulate`` reach the same check through different depths)."""
    import os
    import sys
    pkg = os.path.dirname(os.path.abspath(__file__))
    f = sys._getframe(1)        # the caller of this function = the frame calling warnings.warn
    level = 1
    while f is not None and (os.path.abspath(f.f_code.co_filename) + os.sep).startswith(pkg + os.sep):
        f = f.f_back
        level += 1
    return level


class PerformanceWarning(UserWarning):
    """A run that is valid but estimated to be much slower than an equally exact alternative
    (for example a forced ``method="ssa"`` on a stiff scheme, where ``method="population"``
    would take a small fraction of the time).  Filter it with
    ``warnings.filterwarnings("ignore", category=ketacore.PerformanceWarning)``."""


_UNITS_QUIET = contextvars.ContextVar("ketacore_units_quiet", default=False)


@contextlib.contextmanager
def units_warnings(on: bool = True) -> Iterator[None]:
    """Within the block, :func:`implausible_concentration` warns (``on``) or not, whatever
    the enclosing block set (a study checks every sweep point's values with warnings on, then
    runs them quietly)."""
    token = _UNITS_QUIET.set(not on)
    try:
        yield
    finally:
        _UNITS_QUIET.reset(token)


@contextlib.contextmanager
def quiet_units() -> Iterator[None]:
    """Within the block, :func:`concentration` does not warn about implausible values: for
    ketacore's own evaluations at concentrations it chose (root searches up to
    ``MAX_CONCENTRATION``, per-molar rates), whose user inputs were checked on entry.  A
    context variable, so other threads keep warning."""
    with units_warnings(False):
        yield


def implausible_concentration(name: str, c: float, *, study: bool = False,
                              stacklevel: int = 3) -> None:
    """Emit a :class:`UnitsWarning` when ``c`` (M) is above ``PLAUSIBLE_CONCENTRATION``
    (100 mM) and the caller is not inside :func:`quiet_units`.  ``name`` is the parameter (or,
    with ``study=True``, the study key path, and the advice is spelt as a study file writes
    quantities: ``"10 uM"``)."""
    if not c > PLAUSIBLE_CONCENTRATION or _UNITS_QUIET.get():
        return
    if study:
        head = f"{name} = {c:g} M"
        advice = (f"a bare number is molar: for {c:g} µM write \"{c:g} uM\", for {c:g} mM "
                  f"\"{c:g} mM\"")
    else:
        head = f"concentration {name}={c:g} M"
        advice = (f"ketacore uses molar units: for {c:g} µM write {c:g} * ketacore.units.uM, "
                  f"for {c:g} mM {c:g} * ketacore.units.mM")
    warnings.warn(f"{head} is above {PLAUSIBLE_CONCENTRATION * 1e3:g} mM, more than is "
                  f"applied to ligand-gated channels in practice; {advice} (filter ketacore.UnitsWarning if "
                  f"{c:g} M is meant)", UnitsWarning, stacklevel=stacklevel)


def implausible_concentrations(name: str, values: Any) -> None:
    """:func:`implausible_concentration` for an array of concentrations (M), already checked
    finite and >= 0: one warning, for the largest (``"<name> (largest)"``)."""
    a = np.asarray(values, dtype=float)
    if a.size:
        implausible_concentration(f"{name} (largest)", float(a.max()), stacklevel=4)


def concentration(name: str, value: Any) -> float:
    """Return a concentration (M) after checking it is a real number in
    [0, ``MAX_CONCENTRATION``]; above ``PLAUSIBLE_CONCENTRATION`` (100 mM) it is accepted with
    a :class:`UnitsWarning` naming the parameter and the units advice."""
    c = real(name, value, nonnegative=True)
    if c > MAX_CONCENTRATION:
        raise ValueError(
            f"concentration {name}={c} M exceeds {MAX_CONCENTRATION} M; ketacore uses molar "
            f"(write 10 * ketacore.units.uM, not 10)")
    implausible_concentration(name, c, stacklevel=4)
    return c


def temperature(name: str, value: Any) -> float:
    t = real(name, value)
    lo, hi = TEMPERATURE_RANGE
    if not lo <= t <= hi:
        # (a value in the range of degrees Celsius gets its own conversion as the advice)
        c = t if math.isfinite(t) and -100.0 <= t <= 100.0 else 22.0
        raise ValueError(
            f"{name}={t} K is outside [{lo:g}, {hi:g}] K: temperatures are in kelvin -- "
            f"{c:g} °C is {c + 273.15:g} K: write ketacore.units.celsius({c:g}) in Python, "
            f"\"{c + 273.15:g} K\" in a study file")
    return t


def duration(name: str, value: Any) -> float:
    return real(name, value, positive=True)


def check_memory(name: str, n_bytes: float, *, fraction: float = 0.8,
                 advice: str = "ask for less at a time") -> None:
    """Refuse an allocation of ``n_bytes`` that would not fit in available memory; ``advice``
    ends the message (what the caller can change: every caller passes its own)."""
    if n_bytes < 256 * 2**20:  # small requests always fit; skip the /proc read
        return
    avail = available_memory()
    if n_bytes > fraction * avail:
        raise ValueError(
            f"{name}: the requested output needs about {n_bytes / 2**30:.3g} GiB, more than "
            f"{fraction:.0%} of the {avail / 2**30:.3g} GiB available; {advice}")


def available_memory() -> float:
    """Available physical memory in bytes (MemAvailable on Linux, else a conservative guess)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:  # pragma: no cover - non-Linux
        pass
    try:  # pragma: no cover - non-Linux
        import os
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 4.0 * 2**30


def real_array(name: str, value: Any, unit: str = "") -> np.ndarray:
    """``value`` as a float ndarray (a scalar gives a 0-d array); TypeError naming ``name`` for
    None, strings, booleans, complex numbers, objects or ragged sequences.  ``unit`` (e.g.
    ``"s"``) is quoted in the message.  Range and finiteness checks are the caller's."""
    try:
        a = np.asarray(value)
    except (TypeError, ValueError):  # ragged nested sequences
        a = np.asarray(None)
    if a.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real number or an array of real numbers"
                        f"{f' ({unit})' if unit else ''}, got {type(value).__name__}"
                        f"{f' with dtype {a.dtype}' if a.dtype.kind != 'O' else ''} ({value!r:.80})")
    return a.astype(float, copy=False)
