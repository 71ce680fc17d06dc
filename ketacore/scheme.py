"""Kinetic schemes: named states, conductances, and transitions with rate laws.

A :class:`Scheme` is the one model representation of ketacore: built-in models, TOML files and
blocker compositions all produce one, and every engine consumes its compiled form
(``ketacore._core.CompiledScheme``).

Rate law (:class:`Rate`) -- a product of optional factors (all SI)::

    k = k0 · factor · [L] · exp(zδ·F·(V − V0)/(R·T)) · exp((V − V0)/Vk) · Q10^((T − T_ref)/10)

* ``k0``: s⁻¹ for first-order steps, M⁻¹ s⁻¹ when a ligand is set;
* ``factor``: statistical factor (e.g. 2 for binding to one of two free identical sites);
* ``z_delta``: Woodhull (1973) valence × electrical distance, doi:10.1085/jgp.61.6.687;
* ``vk``: exponential voltage slope (V), as in ``k0·exp((V − V0)/Vk)`` of many .mod files;
* ``q10`` with reference temperature ``t_ref`` (K).

Validation policy: states must be unique non-empty strings; transitions must join two different
known states, at most one per ordered pair; rate parameters must be finite with k0 ≥ 0. Rate
parameters are bounded so that every rate is finite over every condition ketacore accepts
(|V| ≤ 1 V, 200–400 K, ligands ≤ 10 M): |z_delta| ≤ :data:`MAX_ABS_Z_DELTA` (10), |vk| ≥
:data:`MIN_ABS_VK` (2 mV, an e-fold per 2 mV ≈ zδ = 12.7 at 22 °C), q10 within
:data:`Q10_RANGE` (1e-3 to 1e3), and the largest value of the rate over those conditions (the
corners V = ±1 V, T = 200 or 400 K, [L] = 10 M) must not exceed :data:`MAX_RATE` (1e300 s⁻¹,
finite with room for the row sums of Q).  Real channel models are many orders of magnitude
inside these bounds (NMDA block zδ ≤ 2; the steepest gating steps zδ ≈ 6).

Unit slips are refused where a value in the wrong unit leaves the physical range: voltages (e_rev,
v0) beyond ±1 V, temperatures outside 200–400 K, |vk| > :data:`MAX_ABS_VK` (5 V: ``vk = 25``
meant as 25 mV), and a state conductance above :data:`MAX_CONDUCTANCE` (1 nS = 1000 pS; the
largest single channels, BK, are ~300 pS: ``conductance = 50`` meant as 50 pS).  Every value is
a plain number in SI units (S, V, K, s⁻¹, M⁻¹ s⁻¹); a scheme TOML file has no ``[units]`` table
and no unit strings, and unknown keys are refused.  Ligand names must
not be one of :data:`RESERVED_NAMES` (parameters of Step, conditions, waveforms and the theory
functions).  A scheme
whose transition graph (ignoring direction) is not connected raises ``ValueError``: its
equilibrium would not be unique and it is almost always a typo.  Absorbing states are allowed
(e.g. for first-latency calculations).
"""
from __future__ import annotations

import json
import math
import re
import numbers
import os
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from . import _validate as V_
from .units import FARADAY, GAS_CONSTANT, celsius

#: Default temperature (K) of a scheme whose source does not state one: 22 °C.
DEFAULT_TEMPERATURE = celsius(22.0)

#: Largest |z_delta| of a rate (dimensionless).  Real single steps carry zδ ≤ ~6 (NMDA block ≤ 2).
MAX_ABS_Z_DELTA = 10.0
#: Smallest |vk| of a rate (V): an e-fold change per 2 mV (≈ zδ = 12.7 at 22 °C).
MIN_ABS_VK = 2e-3
#: Largest |vk| of a rate (V): an e-fold change per 5 V changes a rate by 2 % over ±100 mV.
#: Larger values almost always mean millivolts written as volts (``vk = 25`` for 25 mV); a
#: voltage-independent rate is written without ``vk``.  (5 V, not 1 V, so that a Blocker with a
#: fixed thermal voltage and a weak electrical distance -- vk = V_T/(z delta), 2.5 V for z delta
#: = 0.01 at 25 mV -- stays valid.)
MAX_ABS_VK = 5.0
#: Largest single-channel conductance of a state (S): 1 nS = 1000 pS.  The largest known single
#: channels (BK, ~300 pS) are well below it; larger values almost always mean picosiemens written
#: as siemens (``conductance = 50`` for 50 pS).
MAX_CONDUCTANCE = 1e-9
#: Accepted range of q10 (dimensionless).
Q10_RANGE = (1e-3, 1e3)
#: Largest value (s⁻¹) a rate may reach anywhere in the accepted conditions (|V| ≤ 1 V,
#: 200–400 K, ligand ≤ 10 M).  Finite with headroom: Q's diagonal sums up to 1e8 such rates.
MAX_RATE = 1e300
_LN_MAX_RATE = math.log(MAX_RATE)
#: Names that cannot be ligands: parameters of Step, Scheme.condition/q_matrix,
#: Protocol.from_waveform and the ketacore.theory functions (equilibrium, relaxation,
#: dwell_times, first_latency, bursts), which take ligand concentrations as keyword arguments.
RESERVED_NAMES = ("V", "temperature", "duration", "times", "t_end", "open", "names", "initial",
                  "states", "target", "within", "model")
_F_OVER_R = FARADAY / GAS_CONSTANT


def _check_ligand_name(where: str, name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"{where} must be a non-empty string, got {name!r}")
    if name in RESERVED_NAMES:
        raise ValueError(f"{where} {name!r} is reserved (it is a parameter name of Step, "
                         f"q_matrix, from_waveform or the theory functions) and cannot be a "
                         f"ligand name; reserved: "
                         f"{list(RESERVED_NAMES)}")
    return name


@dataclass(frozen=True)
class Rate:
    """Rate law of one transition (a product of optional factors).

    ``k = k0 · factor · [ligand] · exp(z_delta·F·(V − v0)/(R·T)) · exp((V − v0)/vk)
    · q10**((T − t_ref)/10)``

    Parameters
    ----------
    k0 : float
        Rate constant: s⁻¹, or M⁻¹ s⁻¹ when ``ligand`` is set.  Must be finite and ≥ 0.
        With all other factors, the rate must stay ≤ :data:`MAX_RATE` (1e300 s⁻¹) over the
        accepted conditions (|V| ≤ 1 V, 200–400 K, [ligand] ≤ 10 M); else ``ValueError``.
    ligand : str, optional
        Name of the ligand whose concentration (M) multiplies the rate.
    factor : float, default 1
        Statistical factor (dimensionless, > 0), e.g. 2 for two identical free sites.
    z_delta : float, default 0
        Woodhull zδ (valence × fractional electrical distance; dimensionless), |zδ| ≤ 10.
        Positive values make the rate grow with depolarisation.
    vk : float, optional
        Slope (V) of an extra factor ``exp((V − v0)/vk)``, 2 mV ≤ |vk| ≤ 5 V
        (:data:`MIN_ABS_VK`, :data:`MAX_ABS_VK`); ``None`` for none.
    v0 : float, default 0
        Reference voltage (V) of both voltage factors.
    q10 : float, default 1
        Temperature coefficient (dimensionless), within 1e-3–1e3.
    t_ref : float, default 295.15
        Reference temperature (K) for ``q10``: ``k0`` is the rate at ``t_ref``.  It is the
        Rate's own (22 °C unless given), not the temperature of the Scheme that uses it: rates
        measured at 30 °C need ``t_ref=303.15`` even in a Scheme with ``temperature=303.15``.
    """

    k0: float
    ligand: str | None = None
    factor: float = 1.0
    z_delta: float = 0.0
    vk: float | None = None
    v0: float = 0.0
    q10: float = 1.0
    t_ref: float = DEFAULT_TEMPERATURE

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("k0", V_.real("Rate.k0", self.k0, nonnegative=True))
        set_("factor", V_.real("Rate.factor", self.factor, positive=True))
        zd = V_.real("Rate.z_delta", self.z_delta)
        if not abs(zd) <= MAX_ABS_Z_DELTA:
            raise ValueError(f"Rate.z_delta={zd} is outside ±{MAX_ABS_Z_DELTA} (valence × electrical "
                             f"distance; real steps have |zδ| ≤ ~6)")
        set_("z_delta", zd)
        if self.vk is not None:
            vk = V_.real("Rate.vk", self.vk)
            if vk == 0:
                raise ValueError("Rate.vk must be non-zero (or None for no exponential factor)")
            if not abs(vk) >= MIN_ABS_VK:
                raise ValueError(f"Rate.vk={vk} V is steeper than an e-fold per "
                                 f"{MIN_ABS_VK * 1e3:g} mV (|vk| must be >= {MIN_ABS_VK} V); vk is "
                                 f"in volts (write 10 * ketacore.units.mV)")
            if not abs(vk) <= MAX_ABS_VK:
                raise ValueError(f"Rate.vk={vk} V is shallower than an e-fold per "
                                 f"{MAX_ABS_VK:g} V (|vk| must be <= {MAX_ABS_VK} V); vk is in "
                                 f"volts: for {vk:g} mV write {vk * 1e-3:g} (or {vk:g} * "
                                 f"ketacore.units.mV); for a nearly voltage-independent rate use "
                                 f"a small z_delta or no vk")
            set_("vk", vk)
        set_("v0", V_.voltage("Rate.v0", self.v0))
        q10 = V_.real("Rate.q10", self.q10, positive=True)
        if not Q10_RANGE[0] <= q10 <= Q10_RANGE[1]:
            raise ValueError(f"Rate.q10={q10} is outside [{Q10_RANGE[0]:g}, {Q10_RANGE[1]:g}]")
        set_("q10", q10)
        set_("t_ref", V_.temperature("Rate.t_ref", self.t_ref))
        if self.ligand is not None and (not isinstance(self.ligand, str) or not self.ligand):
            raise TypeError(f"Rate.ligand must be a non-empty string or None, got {self.ligand!r}")
        self._check_max()

    def _max_exponent(self) -> tuple[float, float, float]:
        """Largest exponent of the voltage and temperature factors over |V| ≤ 1 V and the
        accepted temperatures, with the (V, T) point where it is reached.  e is linear in V, so
        the maximum lies at V = ±1 V; in T it is a/T + b T + const (a = zδ F (V − v0)/R,
        b = ln(q10)/10), whose maximum is at an end of the range or, when a and b are both
        negative (concave), at the turning point T* = sqrt(a/b)."""
        lnq = math.log(self.q10)
        inv_vk = 0.0 if self.vk is None else 1.0 / self.vk
        best = (-math.inf, 0.0, 0.0)
        lo, hi = V_.TEMPERATURE_RANGE
        for V in (-V_.MAX_ABS_VOLTAGE, V_.MAX_ABS_VOLTAGE):
            dv = V - self.v0
            a, b = self.z_delta * _F_OVER_R * dv, lnq / 10.0
            temps = [lo, hi]
            if a * b > 0 and lo < math.sqrt(a / b) < hi:
                temps.append(math.sqrt(a / b))
            for T in temps:
                e = a / T + inv_vk * dv + b * (T - self.t_ref)
                if e > best[0]:
                    best = (e, V, T)
        return best

    def _check_max(self) -> None:
        e, V, T = self._max_exponent()
        ln_k = e
        if self.k0 > 0:
            ln_k += math.log(self.k0) + math.log(self.factor)
            if self.ligand is not None:
                ln_k += math.log(V_.MAX_CONCENTRATION)
        if e <= _LN_MAX_RATE and ln_k <= _LN_MAX_RATE:
            return
        parts = []
        if self.is_voltage_dependent:
            parts.append(f"V = {V:g} V")
        if self.q10 != 1.0 or self.z_delta != 0.0:
            parts.append(f"T = {T:g} K")
        if self.ligand is not None:
            parts.append(f"[{self.ligand}] = {V_.MAX_CONCENTRATION:g} M")
        at = ", ".join(parts) or "every condition"
        raise ValueError(
            f"Rate(k0={self.k0!r}, factor={self.factor!r}, z_delta={self.z_delta!r}, "
            f"vk={self.vk!r}, v0={self.v0!r}, q10={self.q10!r}) reaches about "
            f"10^{max(e, ln_k) / math.log(10):.4g} s⁻¹ at {at}; every rate must stay <= "
            f"{MAX_RATE:g} s⁻¹ for all accepted conditions (|V| <= {V_.MAX_ABS_VOLTAGE:g} V, "
            f"{V_.TEMPERATURE_RANGE[0]:g}-{V_.TEMPERATURE_RANGE[1]:g} K, ligands <= "
            f"{V_.MAX_CONCENTRATION:g} M): reduce k0·factor, z_delta or q10, or increase |vk| "
            f"(SI units: s⁻¹ or M⁻¹ s⁻¹, V)")

    def __call__(self, V: float = -0.07, temperature: float = DEFAULT_TEMPERATURE,
                 **concentrations: float) -> float:
        """Evaluate the rate (s⁻¹) at voltage ``V`` (V), ``temperature`` (K) and ligand
        concentrations (M).  A reference implementation in Python; engines use the C++ one.

        Arguments are validated as in :meth:`Scheme.q_matrix` (|V| ≤ 1 V, 200–400 K,
        0–10 M); concentrations of other ligands are accepted and ignored."""
        V = V_.voltage("V", V)
        temperature = V_.temperature("temperature", temperature)
        for name, c in concentrations.items():
            concentrations[name] = V_.concentration(name, c)
        k = self.k0 * self.factor
        if self.ligand is not None:
            k *= concentrations.get(self.ligand, 0.0)
        dv = V - self.v0
        e = self.z_delta * FARADAY * dv / (GAS_CONSTANT * temperature)
        if self.vk is not None:
            e += dv / self.vk
        e += math.log(self.q10) * (temperature - self.t_ref) / 10.0
        return k * math.exp(e)

    def scaled(self, f: float) -> "Rate":
        """A copy with ``k0`` multiplied by ``f`` (≥ 0)."""
        f = V_.real("f", f, nonnegative=True)
        return replace(self, k0=self.k0 * f)

    @property
    def is_voltage_dependent(self) -> bool:
        """True when the rate depends on the membrane voltage (``z_delta`` != 0 or ``vk`` set)."""
        return self.z_delta != 0.0 or self.vk is not None

    def to_dict(self) -> dict[str, Any]:
        """Non-default fields as a plain dict (the TOML form)."""
        d: dict[str, Any] = {"k0": self.k0}
        if self.ligand is not None:
            d["ligand"] = self.ligand
        if self.factor != 1.0:
            d["factor"] = self.factor
        if self.z_delta != 0.0:
            d["z_delta"] = self.z_delta
        if self.vk is not None:
            d["vk"] = self.vk
        if self.v0 != 0.0:
            d["v0"] = self.v0
        if self.q10 != 1.0:
            d["q10"] = self.q10
        if self.t_ref != DEFAULT_TEMPERATURE:
            d["t_ref"] = self.t_ref
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "rate") -> "Rate":
        """A Rate from a mapping of its fields (``k0`` required; SI units as the constructor), e.g.
        a TOML transition table."""
        allowed = {"k0", "ligand", "factor", "z_delta", "vk", "v0", "q10", "t_ref"}
        unknown = set(d) - allowed
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        if "k0" not in d:
            raise ValueError(f"{where}: missing required key 'k0'")
        try:
            return cls(**dict(d))
        except (TypeError, ValueError) as e:
            raise type(e)(f"{where}: {e}") from None


def rate(k0: float, ligand: str | None = None, **kwargs: Any) -> Rate:
    """Shorthand for :class:`Rate` (``kc.rate(5e6, "glutamate", factor=2)``).

    Parameters
    ----------
    k0 : float
        Rate constant (at ``V = v0`` and ``T = t_ref``): s⁻¹, or M⁻¹ s⁻¹ when ``ligand`` is
        set; finite and ≥ 0.
    ligand : str, optional
        Name of the ligand whose concentration (M) multiplies the rate (a binding step);
        ``None`` for a first-order rate.
    **kwargs
        The other :class:`Rate` fields, by keyword: ``factor`` (dimensionless), ``z_delta``
        (dimensionless), ``vk`` (V), ``v0`` (V), ``q10`` (dimensionless) and ``t_ref`` (K);
        see :class:`Rate` for their meaning, defaults and ranges.

    Returns
    -------
    Rate
        ``Rate(k0, ligand, **kwargs)``.

    Raises
    ------
    TypeError, ValueError
        As :class:`Rate`: an unknown keyword, or a value out of its range.
    """
    return Rate(k0, ligand, **kwargs)


@dataclass(frozen=True)
class Transition:
    """One directed transition ``src → dst`` with its :class:`Rate`."""

    src: str
    dst: str
    rate: Rate


#: Top-level keys of a scheme's data (:meth:`Scheme.from_dict`, TOML files).
_TOP_KEYS = ("scheme", "states", "transitions")


def _looks_like_path(text: str) -> bool:
    """True if a string given to :meth:`Scheme.from_toml` is meant as a file path: one line
    ending in .toml or .tml, or one line with a path separator and no ``=`` (a one-line TOML
    text always has a ``key = value`` or a ``[table]`` header)."""
    if "\n" in text or "\r" in text:
        return False
    t = text.strip()
    if t.lower().endswith((".toml", ".tml")):
        return True
    seps = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    return any(c in t for c in seps) and "=" not in t


def _conductance(where: str, value: Any) -> float:
    """A single-channel conductance (S): a real number in [0, :data:`MAX_CONDUCTANCE`]."""
    g = V_.real(where, value, nonnegative=True)
    if g > MAX_CONDUCTANCE:
        # the number as the user wrote it, in the prefix that reads naturally (50e-9 is "50 nS",
        # 50 is "50 S"), and the same figure in pS: the slip is a unit, not the figure
        # (helper-104's audit: 5e-08 was answered "for 5e-08 pS write 5e-20")
        unit, scale = next(((u, f) for u, f in (("S", 1.0), ("mS", 1e-3), ("uS", 1e-6), ("nS", 1e-9))
                            if g >= f), ("nS", 1e-9))
        m = g / scale
        seen = f" (= {m:g} {unit})" if unit != "S" else ""
        raise ValueError(f"{where}={g} S{seen} exceeds {MAX_CONDUCTANCE:g} S "
                         f"({MAX_CONDUCTANCE * 1e12:g} pS; the largest single channels, BK, are "
                         f"~300 pS); conductances are in siemens: for {m:g} pS write "
                         f"{m * 1e-12:g} (or {m:g} * ketacore.units.pS)")
    return g


def _as_rate(r: Any, where: str) -> Rate:
    if isinstance(r, Rate):
        return r
    if isinstance(r, Mapping):
        return Rate.from_dict(r, where)
    try:
        return Rate(V_.real(where, r, nonnegative=True))
    except TypeError:
        raise TypeError(f"{where}: a rate must be a Rate, a mapping or a number, got {type(r).__name__}") from None


class Scheme:
    """A Markov kinetic scheme of an ion channel.

    Parameters
    ----------
    states : sequence of str
        Unique state names, in the order used by every array ketacore returns.
    transitions : iterable
        ``(src, dst, rate)`` triples or :class:`Transition` objects; ``rate`` is a
        :class:`Rate`, a mapping of its fields, or a number (a constant rate, s⁻¹).
    conductance : mapping or sequence of float, optional
        Single-channel conductance (S) of each state, 0 to :data:`MAX_CONDUCTANCE` (1e-9 S =
        1000 pS); a mapping may omit shut states (0 S).
    e_rev : float, default 0
        Reversal potential (V) used for currents ``I = Σ n_i g_i (V − e_rev)``.
    ligands : str or sequence of str, optional
        Ligand names, in order (a single string is one ligand); not one of
        :data:`RESERVED_NAMES`; ligands used by rates but not listed are appended in order of
        first use.  Listing a ligand no rate uses is allowed (it is accepted in conditions).
    name, citation, doi, notes : str
        Provenance.  Built-in models always cite their source.
    temperature : float, default 295.15
        Temperature (K) assumed when a protocol does not set one (the source's temperature).
        It does not change any Rate's Q10 reference: a rate with ``q10`` is ``k0`` at its own
        ``t_ref`` (22 °C by default), so at a Scheme temperature of 30 °C it is scaled by
        ``q10**0.8`` unless the Rate says ``t_ref=303.15``.

    Raises
    ------
    ValueError, TypeError
        Duplicate or unknown states, self-transitions, duplicate transitions, invalid rate
        parameters or conductances, or a transition graph that is not connected.
    """

    def __init__(self, states: Sequence[str], transitions: Iterable[Any],
                 conductance: Mapping[str, float] | Sequence[float] | None = None,
                 e_rev: float = 0.0, ligands: Sequence[str] | None = None, *, name: str = "",
                 citation: str = "", doi: str = "", notes: str = "",
                 temperature: float = DEFAULT_TEMPERATURE) -> None:
        if isinstance(states, str) or not isinstance(states, Sequence):
            raise TypeError("states must be a sequence of state names")
        states = tuple(states)
        if not states:
            raise ValueError("states must not be empty")
        for s in states:
            if not isinstance(s, str) or not s.strip():
                raise TypeError(f"state names must be non-empty strings, got {s!r}")
        seen: set[str] = set()
        for s in states:
            if s in seen:
                raise ValueError(f"duplicate state {s!r}")
            seen.add(s)
        index = {s: i for i, s in enumerate(states)}

        if transitions is None or isinstance(transitions, (str, bytes, Mapping)) \
                or not isinstance(transitions, Iterable):
            raise TypeError(f"transitions must be an iterable of (src, dst, rate) triples or "
                            f"Transition objects, got {type(transitions).__name__}")
        trans: list[Transition] = []
        pairs: set[tuple[str, str]] = set()
        for k, t in enumerate(transitions):
            if isinstance(t, Transition):
                src, dst, r = t.src, t.dst, t.rate
            else:
                try:
                    src, dst, r = t
                except (TypeError, ValueError):
                    raise TypeError(f"transition #{k} must be (src, dst, rate), got {t!r}") from None
            for end in (src, dst):
                if not isinstance(end, str):
                    raise TypeError(f"transition #{k}: state names must be strings, got "
                                    f"{type(end).__name__} ({end!r})")
            where = f"transition {src!r}->{dst!r}"
            for end in (src, dst):
                if end not in index:
                    raise ValueError(f"{where}: unknown state {end!r}; states are {list(states)}")
            if src == dst:
                raise ValueError(f"{where}: self-transitions are not allowed")
            if (src, dst) in pairs:
                raise ValueError(f"{where}: duplicate transition (combine the rates into one)")
            pairs.add((src, dst))
            trans.append(Transition(src, dst, _as_rate(r, where)))

        if ligands is None:
            ligands = ()
        elif isinstance(ligands, str):
            ligands = (ligands,)  # one ligand, not its characters
        elif isinstance(ligands, Mapping) or not isinstance(ligands, Iterable):
            raise TypeError(f"ligands must be a ligand name or a sequence of ligand names, got "
                            f"{type(ligands).__name__} ({ligands!r})")
        lig: list[str] = []
        for l in ligands:
            _check_ligand_name("ligand name", l)
            if l in lig:
                raise ValueError(f"duplicate ligand {l!r}")
            lig.append(l)
        for t in trans:
            if t.rate.ligand is not None and t.rate.ligand not in lig:
                _check_ligand_name(f"transition {t.src!r}->{t.dst!r}: ligand", t.rate.ligand)
                lig.append(t.rate.ligand)

        g = np.zeros(len(states))
        if conductance is not None:
            if isinstance(conductance, (str, bytes)) or not isinstance(conductance, (Mapping, Iterable)):
                raise TypeError(f"conductance must be a mapping {{state: S}} or a sequence of one "
                                f"value (S) per state, got {type(conductance).__name__} "
                                f"({conductance!r})")
            if isinstance(conductance, Mapping):
                for s, val in conductance.items():
                    if not isinstance(s, str) or s not in index:
                        raise ValueError(f"conductance: unknown state {s!r}; states are {list(states)}")
                    g[index[s]] = _conductance(f"conductance[{s!r}]", val)
            else:
                try:
                    arr = list(conductance)
                except TypeError:
                    raise TypeError(f"conductance must be a mapping {{state: S}} or a sequence of "
                                    f"one value (S) per state, got {conductance!r}") from None
                if len(arr) != len(states):
                    raise ValueError(f"conductance has {len(arr)} values for {len(states)} states")
                for i, val in enumerate(arr):
                    g[i] = _conductance(f"conductance[{states[i]!r}]", val)
        g.setflags(write=False)

        self._states = states
        self._index = index
        self._transitions = tuple(trans)
        self._ligands = tuple(lig)
        self._conductance = g
        self._e_rev = V_.voltage("e_rev", e_rev)
        self._temperature = V_.temperature("temperature", temperature)
        for key, val in (("name", name), ("citation", citation), ("doi", doi), ("notes", notes)):
            if not isinstance(val, str):
                raise TypeError(f"{key} must be a string, got {type(val).__name__}")
        self.name, self.citation, self.doi, self.notes = name, citation, doi, notes
        self._check_connected()
        self._compiled_cache = None

    def __getstate__(self) -> dict:
        """Pickle/copy state without the caches: the compiled C++ form cannot be pickled (a
        scheme used once could not be sent to a worker process) and is rebuilt on first use."""
        d = self.__dict__.copy()
        d["_compiled_cache"] = None
        d.pop("_rate_arrays_cache", None)
        return d

    # ----------------------------------------------------------------- properties
    @property
    def states(self) -> tuple[str, ...]:
        """State names, in array order."""
        return self._states

    @property
    def n_states(self) -> int:
        """Number of states."""
        return len(self._states)

    @property
    def transitions(self) -> tuple[Transition, ...]:
        """The transitions (:class:`Transition`: ``src``, ``dst``, ``rate``), in definition order."""
        return self._transitions

    @property
    def ligands(self) -> tuple[str, ...]:
        """Ligand names accepted as concentrations (M)."""
        return self._ligands

    @property
    def conductance(self) -> np.ndarray:
        """Single-channel conductance of each state (S), read-only array."""
        return self._conductance

    @property
    def open_states(self) -> tuple[str, ...]:
        """States with non-zero conductance."""
        return tuple(s for s, g in zip(self._states, self._conductance) if g > 0)

    @property
    def open_mask(self) -> np.ndarray:
        """Boolean array, True for states with non-zero conductance."""
        return self._conductance > 0

    @property
    def e_rev(self) -> float:
        """Reversal potential (V)."""
        return self._e_rev

    @property
    def temperature(self) -> float:
        """Default temperature (K)."""
        return self._temperature

    @property
    def is_voltage_dependent(self) -> bool:
        """True when any transition's rate depends on the membrane voltage."""
        return any(t.rate.is_voltage_dependent for t in self._transitions)

    def index(self, state: str) -> int:
        """Array index of ``state``."""
        try:
            return self._index[state]
        except (KeyError, TypeError):
            raise ValueError(f"unknown state {state!r}{self._did_you_mean(state)}; states are "
                             f"{list(self._states)}") from None

    def _did_you_mean(self, state: Any) -> str:
        """A hint for a state name typed with '.' (or '*') where a composed name has '·'."""
        if isinstance(state, str):
            alt = state.replace(".", "·").replace("*", "·")
            if alt != state and alt in self._index:
                return (f" (did you mean {alt!r}? composed names join the gating state and the "
                        f"blocker with '·', U+00B7: copy it from scheme.states)")
        return ""

    def indices(self, states: Iterable[str | int]) -> np.ndarray:
        """Array indices of several states (names or indices)."""
        out = []
        for s in states:
            if isinstance(s, (int, np.integer)) and not isinstance(s, bool):
                if not 0 <= int(s) < self.n_states:
                    raise ValueError(f"state index {s} out of range 0..{self.n_states - 1}")
                out.append(int(s))
            else:
                out.append(self.index(s))
        return np.asarray(out, dtype=np.int64)

    def __repr__(self) -> str:
        nm = f"{self.name!r}, " if self.name else ""
        return (f"Scheme({nm}{self.n_states} states, {len(self._transitions)} transitions, "
                f"ligands={list(self._ligands)})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Scheme):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def _check_connected(self) -> None:
        n = self.n_states
        parent = list(range(n))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for t in self._transitions:
            a, b = find(self._index[t.src]), find(self._index[t.dst])
            if a != b:
                parent[a] = b
        roots = {find(i) for i in range(n)}
        if len(roots) > 1:
            groups: dict[int, list[str]] = {}
            for i, s in enumerate(self._states):
                groups.setdefault(find(i), []).append(s)
            raise ValueError(
                "scheme is not connected: no transitions join the groups "
                + " | ".join(str(g) for g in groups.values()))

    # ----------------------------------------------------------------- conditions and Q
    def condition(self, V: float = -0.07, temperature: float | None = None,
                  **concentrations: float) -> np.ndarray:
        """Condition vector ``[V, T, c_0, ..., c_{L-1}]`` for the C++ core.

        Parameters
        ----------
        V : float
            Membrane voltage (V).
        temperature : float, optional
            Temperature (K); default the scheme's ``temperature``.
        **concentrations : float
            Ligand concentrations (M); unnamed ligands are 0.

        Raises
        ------
        ValueError
            Unknown ligand names, negative/NaN concentrations, |V| > 1 V, T outside 200–400 K.
        """
        cond = np.zeros(2 + len(self._ligands))
        cond[0] = V_.voltage("V", V)
        cond[1] = self._temperature if temperature is None else V_.temperature("temperature", temperature)
        for name, c in concentrations.items():
            try:
                j = self._ligands.index(name)
            except ValueError:
                raise ValueError(
                    f"unknown ligand {name!r} for scheme {self.name or '(unnamed)'}; "
                    f"its ligands are {list(self._ligands)}") from None
            cond[2 + j] = V_.concentration(name, c)
        return cond

    def _compiled(self):
        """The C++ ``CompiledScheme`` (built once, cached)."""
        if self._compiled_cache is None:
            from . import _core
            T = self._transitions
            n = len(T)
            lig = np.array([self._ligands.index(t.rate.ligand) if t.rate.ligand else -1 for t in T],
                           dtype=np.int64)
            self._compiled_cache = _core.CompiledScheme(
                self.n_states, len(self._ligands),
                np.array([self._index[t.src] for t in T], dtype=np.int64),
                np.array([self._index[t.dst] for t in T], dtype=np.int64),
                lig,
                np.array([t.rate.k0 * t.rate.factor for t in T], dtype=float).reshape(n),
                np.array([t.rate.z_delta for t in T], dtype=float).reshape(n),
                np.array([0.0 if t.rate.vk is None else 1.0 / t.rate.vk for t in T], dtype=float).reshape(n),
                np.array([t.rate.v0 for t in T], dtype=float).reshape(n),
                np.array([math.log(t.rate.q10) for t in T], dtype=float).reshape(n),
                np.array([t.rate.t_ref for t in T], dtype=float).reshape(n),
                np.asarray(self._conductance, dtype=float), float(self._e_rev))
        return self._compiled_cache

    def q_matrix(self, V: float = -0.07, temperature: float | None = None,
                 **concentrations: float) -> np.ndarray:
        """Generator matrix Q (s⁻¹) under the given conditions.

        ``Q[i, j]`` (i ≠ j) is the rate of ``states[i] → states[j]``; rows sum to 0.

        Parameters
        ----------
        V : float, default -0.07
            Membrane voltage (V).
        temperature : float, optional
            Temperature (K); default the scheme's ``temperature``.
        **concentrations : float
            Ligand concentrations (M); unnamed ligands are 0.
        """
        cond = self.condition(V, temperature, **concentrations)
        # (finite by construction: every Rate is bounded by MAX_RATE over the accepted V, T and
        # concentrations that condition() enforces; no per-call check on this hot path)
        return self._compiled().q_matrix(cond)

    def rates(self, V: float = -0.07, temperature: float | None = None,
              **concentrations: float) -> np.ndarray:
        """Rate (s⁻¹) of every transition, in ``transitions`` order."""
        cond = self.condition(V, temperature, **concentrations)
        return self._compiled().rates(cond)  # finite by construction, as in q_matrix

    def _rate_arrays(self) -> tuple[np.ndarray, ...]:
        """Per-transition rate-law parameters as arrays, as compiled for the C++ core."""
        cache = getattr(self, "_rate_arrays_cache", None)
        if cache is None:
            T = self._transitions
            f = lambda xs: np.array(xs, dtype=float).reshape(len(T))  # noqa: E731
            cache = (
                f([t.rate.k0 * t.rate.factor for t in T]),
                np.array([self._ligands.index(t.rate.ligand) if t.rate.ligand else -1 for t in T],
                         dtype=np.int64).reshape(len(T)),
                f([t.rate.z_delta for t in T]),
                f([0.0 if t.rate.vk is None else 1.0 / t.rate.vk for t in T]),
                f([t.rate.v0 for t in T]),
                f([math.log(t.rate.q10) for t in T]),
                f([t.rate.t_ref for t in T]),
                np.array([self._index[t.src] for t in T], dtype=np.int64).reshape(len(T)),
            )
            self._rate_arrays_cache = cache
        return cache

    def _describe_condition(self, row: np.ndarray) -> str:
        parts = [f"V={row[0]:g} V", f"T={row[1]:g} K"]
        parts += [f"{l}={c:g} M" for l, c in zip(self._ligands, row[2:]) if c != 0]
        return ", ".join(parts)

    def check_rates(self, conditions: Any) -> np.ndarray:
        """Check that every rate and every state's total exit rate is finite under each condition.

        Vectorised over conditions, e.g. the ``conditions`` table of :meth:`Protocol.compile`
        (cost ~ n_conditions × n_transitions flops).  A scheme that passed construction has
        finite rates under every accepted condition, so this is a diagnostic: it names the
        transition and condition when a rate law is pushed out of range (the engines rely on
        the construction bounds, plus the C++ core's own refusal of non-finite rates).

        Parameters
        ----------
        conditions : array of shape (n, 2 + n_ligands) or (2 + n_ligands,)
            Rows ``[V (V), T (K), c_0 (M), ..., c_{L-1} (M)]`` in this scheme's ligand order
            (:meth:`condition` builds one row; :meth:`Protocol.compile` returns the table).

        Returns
        -------
        ndarray, shape (n, n_transitions)
            Rate (s⁻¹) of every transition under every condition (the C++ rate law).

        Raises
        ------
        ValueError
            A condition outside the accepted ranges (|V| ≤ 1 V, 200–400 K, 0–10 M, finite), or
            a rate or exit rate that is not finite; the message names the transition (or
            state) and the condition.
        TypeError
            ``conditions`` is not a real array.
        """
        c = np.asarray(conditions)
        if c.dtype.kind not in "iuf":
            raise TypeError(f"conditions must be a real array [V, T, c...], got dtype {c.dtype}")
        c = np.asarray(c, dtype=float)
        if c.ndim == 1:
            c = c[None, :]
        width = 2 + len(self._ligands)
        if c.ndim != 2 or c.shape[1] != width:
            raise ValueError(f"conditions must have shape (n, {width}) (columns V, T, "
                             f"{', '.join(self._ligands) or 'no ligands'}), got {np.shape(conditions)}")
        cols = ["V", "temperature", *self._ligands]
        bad = ~np.isfinite(c)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise ValueError(f"conditions[{i}]: {cols[j]} must be finite, got {c[i, j]}")
        lo, hi = V_.TEMPERATURE_RANGE
        for j, ok, what in ((0, np.abs(c[:, 0]) <= V_.MAX_ABS_VOLTAGE, f"|V| <= {V_.MAX_ABS_VOLTAGE} V"),
                            (1, (c[:, 1] >= lo) & (c[:, 1] <= hi), f"{lo}-{hi} K")):
            if not ok.all():
                i = int(np.argmin(ok))
                raise ValueError(f"conditions[{i}]: {cols[j]}={c[i, j]} is outside {what}")
        if width > 2:
            conc = c[:, 2:]
            ok = (conc >= 0) & (conc <= V_.MAX_CONCENTRATION)
            if not ok.all():
                i, j = np.argwhere(~ok)[0]
                raise ValueError(f"conditions[{i}]: concentration {cols[2 + j]}={conc[i, j]} M is "
                                 f"outside 0-{V_.MAX_CONCENTRATION} M")
        k0f, lig, zd, inv_vk, v0, lnq, tref, src = self._rate_arrays()
        n = c.shape[0]
        with np.errstate(over="ignore", invalid="ignore"):
            V, T = c[:, :1], c[:, 1:2]
            dv = V - v0
            e = zd * (_F_OVER_R / T) * dv + inv_vk * dv + lnq * (T - tref) / 10.0
            k = np.broadcast_to(k0f, (n, k0f.size)).copy()
            has = lig >= 0
            if has.any():
                k[:, has] *= c[:, 2 + lig[has]]
            k *= np.exp(e)
            exit_rates = np.zeros((n, self.n_states))
            np.add.at(exit_rates, (slice(None), src), k)
        bad = ~np.isfinite(k)
        if bad.any():
            i, t = np.argwhere(bad)[0]
            tr = self._transitions[t]
            raise ValueError(
                f"transition {tr.src!r}->{tr.dst!r} of scheme {self.name or '(unnamed)'} evaluates "
                f"to {k[i, t]} s⁻¹ at conditions[{i}] ({self._describe_condition(c[i])}); its rate "
                f"law is {tr.rate!r}")
        bad = ~np.isfinite(exit_rates)
        if bad.any():
            i, s = np.argwhere(bad)[0]
            raise ValueError(
                f"the total exit rate of state {self._states[s]!r} of scheme "
                f"{self.name or '(unnamed)'} overflows ({exit_rates[i, s]}) at conditions[{i}] "
                f"({self._describe_condition(c[i])})")
        return k

    # ----------------------------------------------------------------- derived schemes
    def with_rates(self, changes: Mapping[str, Any] | None = None, /,
                   **more: Rate | float) -> "Scheme":
        """A copy with some transitions' rates changed.

        Parameters
        ----------
        changes : mapping, optional
            ``{"SRC->DST": value}`` (a mapping, since such keys are not Python names; they
            may also be given as keywords, ``with_rates(**{"O->C": 80.0})``).  A value is
            either
              * a number: the new rate *constant* ``k0`` of that transition, in its own units
                (s⁻¹, or M⁻¹ s⁻¹ for a binding step), keeping the rest of its rate law --
                ligand, statistical factor, voltage dependence, Q10 and ``t_ref``; so
                ``with_rates({"R->RA": 1e7})`` still needs glutamate to bind; or
              * a :class:`Rate`: the whole rate law replaced, e.g. ``kc.rate(80.0)`` for a
                constant 80 s⁻¹; or
              * a mapping *with* ``k0``: a whole rate law (as :meth:`Rate.from_dict` reads
                it; ``Rate.to_dict()`` round-trips);
              * a mapping *without* ``k0``: those fields changed, the rest of the law kept,
                e.g. ``{"O->C": {"q10": 3.0}}`` adds a Q10 (from the rate's ``t_ref``).
        **more
            More changes, as in ``changes``.

        Returns
        -------
        Scheme
            The same states, conductances, E_rev, ligands, name and citation.  (A scheme
            composed by :func:`ketacore.block` loses its composition memory: change the gating
            scheme or the blocker and compose again to add blockers later.)

        Raises
        ------
        ValueError
            An unknown transition key, or a number that is not finite and >= 0.
        TypeError
            A value that is neither a number, a Rate nor a mapping.
        """
        if changes is not None and not isinstance(changes, Mapping):
            raise TypeError(f"with_rates: changes must be a mapping {{'SRC->DST': value}}, got "
                            f"{type(changes).__name__}")
        merged = {**(changes or {}), **more}
        d = {f"{t.src}->{t.dst}": t for t in self._transitions}
        for key in merged:
            if key not in d:
                raise ValueError(f"unknown transition {key!r}; transitions are {list(d)}")

        def new_rate(key: str, t: Transition) -> Rate:
            if key not in merged:
                return t.rate
            v = merged[key]
            if isinstance(v, Rate):
                return _as_rate(v, key)
            if isinstance(v, Mapping) and "k0" not in v:   # some fields changed, the rest kept
                import dataclasses as _dc
                old = {f.name: getattr(t.rate, f.name) for f in _dc.fields(Rate)}
                return _as_rate({**old, **dict(v)}, key)
            if isinstance(v, Mapping):   # with k0: a whole rate law, as Rate.from_dict reads it
                return _as_rate(v, key)
            if isinstance(v, bool) or not isinstance(v, (numbers.Real, np.floating, np.integer)):
                raise TypeError(f"{key}: a rate must be a number (the new k0), a Rate or a "
                                f"mapping, got {type(v).__name__}")
            return replace(t.rate, k0=V_.real(f"with_rates: {key}", v, nonnegative=True))

        trans = [(t.src, t.dst, new_rate(k, t)) for k, t in d.items()]
        return Scheme(self._states, trans, self._conductance, self._e_rev, self._ligands,
                      name=self.name, citation=self.citation, doi=self.doi, notes=self.notes,
                      temperature=self._temperature)

    def with_microscopic_reversibility(self, mr: "bool | Sequence[str]" = True) -> "Scheme":
        """A copy whose rates obey microscopic reversibility around every cycle.

        One rate per independent cycle of the state graph is recomputed so that the product of
        the rate constants (``k0`` x statistical ``factor``) one way round the cycle equals
        the product the other way (Kolmogorov's criterion; detailed balance at equilibrium)
        [CHS04]; every other transition is unchanged.  Each recomputed rate closes its cycle
        over a spanning tree of the other connections, so the result does not depend on the
        order in which the cycles are visited.  The same rule as :func:`ketacore.fitting.fit_hjc`
        with ``mr=``.

        Parameters
        ----------
        mr : True or sequence of str
            ``True``: for each cycle, the later-listed direction of its earliest-listed
            connection outside a spanning tree built from the last-listed connections back
            (the rule of ``fit_hjc``).  Or the transitions (``"SRC->DST"``) to recompute,
            exactly one per independent cycle, each closing a different cycle.

        Returns
        -------
        Scheme
            The copy (units as before: s^-1, M^-1 s^-1 for binding steps).  A scheme without
            cycles, or whose cycles already balance to 1e-12, is returned unchanged.

        Raises
        ------
        ValueError
            A cycle with a one-way transition or with a rate of 0 on it; a cycle whose voltage or
            temperature factors (``z_delta``, ``vk``/``v0``, ``q10``/``t_ref``) or bound ligands
            differ between its two directions (MR could not hold at every V, T and
            concentration); a ``mr`` list that is not one transition per independent cycle.

        References
        ----------
        .. [CHS04] Colquhoun D, Dowsland KA, Beato M, Plested AJR (2004) How to impose
           microscopic reversibility in complex reaction mechanisms. Biophys J 86:3510-3518.
           doi:10.1529/biophysj.103.038679
        """
        from .fitting import _key, _mr_plan
        try:
            plan = _mr_plan(self, mr)
        except ValueError as e:  # (fit_hjc's wording, without its mr=False advice)
            msg = re.sub(r" ?\((?:choose [^)]*, )?(?:or )?use mr=False[^)]*\)", "", str(e))
            msg = msg.replace("fit_hjc imposes MR", "MR is imposed")
            raise ValueError(f"with_microscopic_reversibility: {msg}") from None
        by_key = {_key(t): t for t in self._transitions}
        kf = {k: t.rate.k0 * t.rate.factor for k, t in by_key.items()}
        new: dict = {}
        for k, cyc in plan.items():
            n = len(cyc)
            fwd = [f"{cyc[i]}->{cyc[(i + 1) % n]}" for i in range(n)]
            bwd = [f"{cyc[(i + 1) % n]}->{cyc[i]}" for i in range(n)]
            zero = [kk for kk in fwd[1:] + bwd if not kf[kk] > 0.0]
            if zero:
                raise ValueError(f"with_microscopic_reversibility: the cycle {'-'.join(cyc)} of "
                                 f"{k!r} has a rate of 0 ({zero[0]!r}), so no finite, non-zero "
                                 f"{k!r} balances it")
            # k0(k) factor(k) * prod(forward rest) = prod(backward), in logs (no overflow)
            log_k = (sum(math.log(kf[kk]) for kk in bwd) - sum(math.log(kf[kk]) for kk in fwd[1:])
                     - math.log(by_key[k].rate.factor))
            k_new = math.exp(log_k)
            if not abs(k_new / by_key[k].rate.k0 - 1.0) <= 1e-12:   # (balanced to rounding: kept)
                new[k] = k_new
        return self.with_rates(new) if new else self

    def with_temperature(self, temperature: float) -> "Scheme":
        """A copy whose default temperature is ``temperature`` (K).

        Every function that takes a scheme (``solve``, ``simulate``, ``theory.*``,
        ``experiments.*``, studies) evaluates its rates at the scheme's temperature unless a
        condition gives another, so this is one way to run an experiment at, e.g., 35 °C:
        ``kc.experiments.trapping(g.with_temperature(kc.units.celsius(35)), ...)``, the same
        as ``kc.experiments.trapping(g, ..., temperature=kc.units.celsius(35))``.  Rates with
        a ``q10`` change by ``q10 ** ((T - t_ref) / 10 K)``; others do not change.

        Parameters
        ----------
        temperature : float
            Temperature (K), as for :class:`Scheme` (use :func:`ketacore.units.celsius`).

        Returns
        -------
        Scheme
            The same states, transitions, conductances, E_rev, ligands, name and citation.  (A
            scheme composed by :func:`ketacore.block` loses its composition memory, as after
            :meth:`with_rates`: compose onto ``gating.with_temperature(T)`` to add blockers
            later.)
        """
        return Scheme(self._states, [(t.src, t.dst, t.rate) for t in self._transitions],
                      self._conductance, self._e_rev, self._ligands, name=self.name,
                      citation=self.citation, doi=self.doi, notes=self.notes,
                      temperature=temperature)

    def with_conductance(self, conductance: "Mapping[str, float] | Sequence[float] | None" = None,
                         /, *, e_rev: float | None = None) -> "Scheme":
        """A copy with other single-channel conductances and/or reversal potential.

        The way to put a library model in other ionic conditions -- a GABA-A receptor's
        E_Cl, a sublevel, a different unitary conductance -- without editing its dict form.

        Parameters
        ----------
        conductance : mapping of str to float, or sequence of float, optional
            Conductance (S) per state: a mapping changes the states it names and keeps the
            others; a sequence gives every state's, in state order.  As for :class:`Scheme`
            (0 to 1 nS; use ``ketacore.units.pS``).
        e_rev : float, optional
            Reversal potential (V) of the current (default: unchanged).

        Returns
        -------
        Scheme
            The same states, transitions, ligands, temperature, name and citation.  (A scheme
            composed by :func:`ketacore.block` loses its composition memory, as after
            :meth:`with_rates`.)

        Raises
        ------
        ValueError
            A state name the scheme does not have (with the nearest one), or a value
            :class:`Scheme` refuses (negative, NaN, above 1 nS; e_rev not a finite voltage).

        Examples
        --------
        >>> import ketacore as kc
        >>> s = kc.Scheme(["C", "O"], [("C", "O", 10.0), ("O", "C", 100.0)],
        ...               conductance={"O": 20e-12})
        >>> t = s.with_conductance({"O": 30e-12}, e_rev=-0.065)
        >>> float(t.conductance[1]), t.e_rev
        (3e-11, -0.065)
        """
        if conductance is None:
            g: Any = list(self._conductance)
        elif isinstance(conductance, Mapping):
            g = dict(zip(self._states, (float(x) for x in self._conductance)))
            for k in conductance:
                if k not in g:
                    raise ValueError(f"conductance: unknown state {k!r}{self._did_you_mean(k)}; "
                                     f"states are {list(self._states)}")
            g.update(conductance)
        else:
            g = conductance
        return Scheme(self._states, [(t.src, t.dst, t.rate) for t in self._transitions], g,
                      self._e_rev if e_rev is None else e_rev, self._ligands, name=self.name,
                      citation=self.citation, doi=self.doi, notes=self.notes,
                      temperature=self._temperature)

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (what :meth:`to_toml` writes)."""
        return {
            "scheme": {"name": self.name, "citation": self.citation, "doi": self.doi,
                       "notes": self.notes, "e_rev": self._e_rev,
                       "temperature": self._temperature, "ligands": list(self._ligands)},
            "states": [{"name": s, "conductance": float(g)}
                       for s, g in zip(self._states, self._conductance)],
            "transitions": [{"from": t.src, "to": t.dst, **t.rate.to_dict()}
                            for t in self._transitions],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Scheme":
        """Inverse of :meth:`to_dict`; errors name the offending key.

        Raises
        ------
        ValueError
            An unknown key (at the top level: anything but ``scheme``, ``states`` and
            ``transitions`` -- there is no ``units`` table, every value is a number in SI units),
            or an invalid value (see :class:`Scheme` and :class:`Rate`).
        TypeError
            A table or value of the wrong type.
        """
        if not isinstance(d, Mapping):
            raise TypeError("scheme data must be a mapping")
        unknown = set(d) - set(_TOP_KEYS)
        if unknown:
            raise ValueError(
                f"unknown top-level key(s) {sorted(map(str, unknown))}; allowed: {list(_TOP_KEYS)}.  "
                "A scheme has no [units] table and takes no unit strings: every value is a number "
                "in SI units (conductance in S, e.g. 50e-12 for 50 pS; e_rev, v0 and vk in V; "
                "temperature and t_ref in K; k0 in 1/s, or 1/(M s) with a ligand)")
        meta = d.get("scheme", {})
        if not isinstance(meta, Mapping):
            raise TypeError(f"[scheme] must be a table (mapping of name, citation, doi, notes, "
                            f"e_rev, temperature, ligands), got {type(meta).__name__} ({meta!r})")
        meta = dict(meta)
        allowed = {"name", "citation", "doi", "notes", "e_rev", "temperature", "ligands"}
        bad = set(meta) - allowed
        if bad:
            raise ValueError(f"[scheme]: unknown key(s) {sorted(bad)}; allowed: {sorted(allowed)}")
        states_d = d.get("states")
        if states_d is not None and (isinstance(states_d, (str, bytes, Mapping))
                                     or not isinstance(states_d, Iterable)):
            raise TypeError(f"[[states]] must be an array of tables ({{name, conductance}}), got "
                            f"{type(states_d).__name__} ({states_d!r})")
        states_d = list(states_d or ())
        if not states_d:
            raise ValueError("[[states]]: at least one state is required")
        states, g = [], []
        for i, st in enumerate(states_d):
            if not isinstance(st, Mapping) or "name" not in st:
                raise ValueError(f"states[{i}]: needs a 'name'")
            extra = set(st) - {"name", "conductance"}
            if extra:
                raise ValueError(f"states[{i}] ({st['name']!r}): unknown key(s) {sorted(extra)}")
            states.append(st["name"])
            g.append(st.get("conductance", 0.0))
        trans = []
        trans_d = d.get("transitions", [])
        if isinstance(trans_d, (str, bytes, Mapping)) or not isinstance(trans_d, Iterable):
            raise TypeError(f"[[transitions]] must be an array of tables ({{from, to, k0, ...}}), "
                            f"got {type(trans_d).__name__} ({trans_d!r})")
        for i, tr in enumerate(trans_d):
            if not isinstance(tr, Mapping) or "from" not in tr or "to" not in tr:
                raise ValueError(f"transitions[{i}]: needs 'from' and 'to'")
            r = {k: v for k, v in tr.items() if k not in ("from", "to")}
            trans.append((tr["from"], tr["to"], Rate.from_dict(r, f"transitions[{i}] ({tr['from']}->{tr['to']})")))
        return cls(states, trans, g, meta.get("e_rev", 0.0), meta.get("ligands"),
                   name=meta.get("name", ""), citation=meta.get("citation", ""),
                   doi=meta.get("doi", ""), notes=meta.get("notes", ""),
                   temperature=meta.get("temperature", DEFAULT_TEMPERATURE))

    def to_toml(self, path: str | os.PathLike | None = None) -> str:
        """Write the scheme as TOML (returned as a string, and written to ``path`` if given).

        Floats are written with ``repr`` so :meth:`from_toml` round-trips exactly.
        """
        d = self.to_dict()
        # TOML basic strings accept JSON escapes; JSON leaves DEL (U+007F) raw, TOML forbids it
        q = lambda s: json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")
        f = lambda x: repr(float(x))
        lines = [
            "# ketacore kinetic scheme.",
            "# Units (SI): rates k0 in 1/s, or 1/(M s) when 'ligand' is set; voltages (e_rev, v0, vk) in V;",
            "# conductance in S; temperatures (temperature, t_ref) in K.  Rate law:",
            "# k = k0 * factor * [ligand] * exp(z_delta*F*(V-v0)/(R*T)) * exp((V-v0)/vk) * q10**((T-t_ref)/10)",
            "",
            "[scheme]",
        ]
        m = d["scheme"]
        for key in ("name", "citation", "doi", "notes"):
            lines.append(f"{key} = {q(m[key])}")
        lines.append(f"e_rev = {f(m['e_rev'])}  # V")
        lines.append(f"temperature = {f(m['temperature'])}  # K")
        lines.append("ligands = [" + ", ".join(q(l) for l in m["ligands"]) + "]")
        for st in d["states"]:
            lines += ["", "[[states]]", f"name = {q(st['name'])}", f"conductance = {f(st['conductance'])}  # S"]
        for tr in d["transitions"]:
            lines += ["", "[[transitions]]", f"from = {q(tr['from'])}", f"to = {q(tr['to'])}"]
            for key, val in tr.items():
                if key in ("from", "to"):
                    continue
                lines.append(f"{key} = {q(val) if isinstance(val, str) else f(val)}")
        text = "\n".join(lines) + "\n"
        if path is not None:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        return text

    @classmethod
    def from_toml(cls, source: str | os.PathLike) -> "Scheme":
        """Read a scheme from a TOML file path or a TOML string.

        Parameters
        ----------
        source : str or os.PathLike
            A path, or TOML text.  A string is read as a path when it names an existing file or
            looks like a path: a single line ending in ``.toml`` or ``.tml``, or a single line
            with a path separator (``/`` or ``\\``) and no ``=``.  Anything else is TOML text.

        Raises
        ------
        FileNotFoundError
            ``source`` is a path (or looks like one) and does not exist; the message names it.
        tomllib.TOMLDecodeError
            The text (or the file) is not valid TOML.
        ValueError, TypeError
            Invalid scheme data (see :meth:`from_dict`).
        """
        try:
            import tomllib
        except ImportError:  # pragma: no cover - Python < 3.11
            import tomli as tomllib  # type: ignore[no-redef]
        if isinstance(source, os.PathLike) or (isinstance(source, str) and "\n" not in source
                                                and os.path.exists(source)):
            with open(source, "rb") as fh:
                data = tomllib.load(fh)
        elif isinstance(source, str):
            if _looks_like_path(source):
                raise FileNotFoundError(f"scheme file {source!r} not found (a string without a "
                                        f"newline ending in .toml/.tml or holding a path "
                                        f"separator is read as a file path)")
            data = tomllib.loads(source)
        else:
            raise TypeError("source must be a path or a TOML string")
        return cls.from_dict(data)

    def describe(self) -> str:
        """Human-readable table: states, conductances, transitions and rate laws with units."""
        out = [f"{self.name or 'scheme'}: {self.n_states} states, {len(self._transitions)} transitions"]
        if self.citation:
            out.append(f"  source: {self.citation}" + (f" (doi:{self.doi})" if self.doi else ""))
        if self.notes:
            out.append(f"  notes: {self.notes}")
        out.append(f"  ligands: {', '.join(self._ligands) or '(none)'}; E_rev = {self._e_rev * 1e3:g} mV;"
                   f" T = {self._temperature - 273.15:g} °C")
        out.append("  states (conductance):")
        for s, g in zip(self._states, self._conductance):
            out.append(f"    {s:<16} {g * 1e12:g} pS")
        out.append("  transitions:")
        for t in self._transitions:
            r = t.rate
            unit = "/M/s" if r.ligand else "/s"
            txt = f"{r.k0:.6g}{unit}"
            if r.factor != 1:
                txt = f"{r.factor:g} x {txt}"
            if r.ligand:
                txt += f" x [{r.ligand}]"
            if r.z_delta:
                txt += f" x exp({r.z_delta:g} F (V - {r.v0 * 1e3:g} mV)/RT)"
            if r.vk is not None:
                txt += f" x exp((V - {r.v0 * 1e3:g} mV)/{r.vk * 1e3:g} mV)"
            if r.q10 != 1:
                txt += f" x {r.q10:g}^((T - {r.t_ref - 273.15:g} °C)/10)"
            out.append(f"    {t.src:>14} -> {t.dst:<14} {txt}")
        return "\n".join(out)


__all__ = ["Rate", "rate", "Transition", "Scheme", "DEFAULT_TEMPERATURE", "MAX_ABS_Z_DELTA",
           "MIN_ABS_VK", "MAX_ABS_VK", "MAX_CONDUCTANCE", "Q10_RANGE", "MAX_RATE", "RESERVED_NAMES"]
