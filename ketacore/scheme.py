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
known states, at most one per ordered pair; rate parameters must be finite with k0 ≥ 0. A scheme
whose transition graph (ignoring direction) is not connected raises ``ValueError``: its
equilibrium would not be unique and it is almost always a typo.  Absorbing states are allowed
(e.g. for first-latency calculations).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from . import _validate as V_
from .units import FARADAY, GAS_CONSTANT, celsius

#: Default temperature (K) of a scheme whose source does not state one: 22 °C.
DEFAULT_TEMPERATURE = celsius(22.0)


@dataclass(frozen=True)
class Rate:
    """Rate law of one transition (a product of optional factors).

    ``k = k0 · factor · [ligand] · exp(z_delta·F·(V − v0)/(R·T)) · exp((V − v0)/vk)
    · q10**((T − t_ref)/10)``

    Parameters
    ----------
    k0 : float
        Rate constant: s⁻¹, or M⁻¹ s⁻¹ when ``ligand`` is set.  Must be finite and ≥ 0.
    ligand : str, optional
        Name of the ligand whose concentration (M) multiplies the rate.
    factor : float, default 1
        Statistical factor (dimensionless, > 0), e.g. 2 for two identical free sites.
    z_delta : float, default 0
        Woodhull zδ (valence × fractional electrical distance; dimensionless).  Positive
        values make the rate grow with depolarisation.
    vk : float, optional
        Slope (V) of an extra factor ``exp((V − v0)/vk)``; ``None`` for none.
    v0 : float, default 0
        Reference voltage (V) of both voltage factors.
    q10 : float, default 1
        Temperature coefficient (dimensionless, > 0).
    t_ref : float, default 295.15
        Reference temperature (K) for ``q10``.
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
        object.__setattr__(self, "k0", V_.real("Rate.k0", self.k0, nonnegative=True))
        object.__setattr__(self, "factor", V_.real("Rate.factor", self.factor, positive=True))
        object.__setattr__(self, "z_delta", V_.real("Rate.z_delta", self.z_delta))
        if self.vk is not None:
            vk = V_.real("Rate.vk", self.vk)
            if vk == 0:
                raise ValueError("Rate.vk must be non-zero (or None for no exponential factor)")
            object.__setattr__(self, "vk", vk)
        object.__setattr__(self, "v0", V_.voltage("Rate.v0", self.v0))
        object.__setattr__(self, "q10", V_.real("Rate.q10", self.q10, positive=True))
        object.__setattr__(self, "t_ref", V_.temperature("Rate.t_ref", self.t_ref))
        if self.ligand is not None and (not isinstance(self.ligand, str) or not self.ligand):
            raise TypeError(f"Rate.ligand must be a non-empty string or None, got {self.ligand!r}")

    def __call__(self, V: float = -0.07, temperature: float = DEFAULT_TEMPERATURE,
                 **concentrations: float) -> float:
        """Evaluate the rate (s⁻¹) at voltage ``V`` (V), ``temperature`` (K) and ligand
        concentrations (M).  A reference implementation in Python; engines use the C++ one."""
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
    """Shorthand for :class:`Rate` (``kc.rate(5e6, "glutamate", factor=2)``)."""
    return Rate(k0, ligand, **kwargs)


@dataclass(frozen=True)
class Transition:
    """One directed transition ``src → dst`` with its :class:`Rate`."""

    src: str
    dst: str
    rate: Rate


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
        Single-channel conductance (S) of each state; a mapping may omit shut states (0 S).
    e_rev : float, default 0
        Reversal potential (V) used for currents ``I = Σ n_i g_i (V − e_rev)``.
    ligands : sequence of str, optional
        Ligand names, in order; ligands used by rates but not listed are appended in order of
        first use.  Listing a ligand no rate uses is allowed (it is accepted in conditions).
    name, citation, doi, notes : str
        Provenance.  Built-in models always cite their source.
    temperature : float, default 295.15
        Temperature (K) assumed when a protocol does not set one (the source's temperature).

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

        lig: list[str] = []
        for l in ligands or ():
            if not isinstance(l, str) or not l:
                raise TypeError(f"ligand names must be non-empty strings, got {l!r}")
            if l in lig:
                raise ValueError(f"duplicate ligand {l!r}")
            if l in ("V", "temperature"):
                raise ValueError(f"{l!r} is reserved and cannot be a ligand name")
            lig.append(l)
        for t in trans:
            if t.rate.ligand is not None and t.rate.ligand not in lig:
                if t.rate.ligand in ("V", "temperature"):
                    raise ValueError(f"{t.rate.ligand!r} is reserved and cannot be a ligand name")
                lig.append(t.rate.ligand)

        g = np.zeros(len(states))
        if conductance is not None:
            if isinstance(conductance, Mapping):
                for s, val in conductance.items():
                    if s not in index:
                        raise ValueError(f"conductance: unknown state {s!r}; states are {list(states)}")
                    g[index[s]] = V_.real(f"conductance[{s!r}]", val, nonnegative=True)
            else:
                arr = list(conductance)
                if len(arr) != len(states):
                    raise ValueError(f"conductance has {len(arr)} values for {len(states)} states")
                for i, val in enumerate(arr):
                    g[i] = V_.real(f"conductance[{states[i]!r}]", val, nonnegative=True)
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

    # ----------------------------------------------------------------- properties
    @property
    def states(self) -> tuple[str, ...]:
        """State names, in array order."""
        return self._states

    @property
    def n_states(self) -> int:
        return len(self._states)

    @property
    def transitions(self) -> tuple[Transition, ...]:
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
        return any(t.rate.is_voltage_dependent for t in self._transitions)

    def index(self, state: str) -> int:
        """Array index of ``state``."""
        try:
            return self._index[state]
        except (KeyError, TypeError):
            raise ValueError(f"unknown state {state!r}; states are {list(self._states)}") from None

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
        return self._compiled().q_matrix(self.condition(V, temperature, **concentrations))

    def rates(self, V: float = -0.07, temperature: float | None = None,
              **concentrations: float) -> np.ndarray:
        """Rate (s⁻¹) of every transition, in ``transitions`` order."""
        return self._compiled().rates(self.condition(V, temperature, **concentrations))

    # ----------------------------------------------------------------- derived schemes
    def with_rates(self, **changes: Rate | float) -> "Scheme":
        """A copy with some transitions' rates replaced; keys are ``"SRC->DST"``."""
        d = {f"{t.src}->{t.dst}": t for t in self._transitions}
        for key in changes:
            if key not in d:
                raise ValueError(f"unknown transition {key!r}; transitions are {list(d)}")
        trans = [(t.src, t.dst, _as_rate(changes.get(k, t.rate), k)) for k, t in d.items()]
        return Scheme(self._states, trans, self._conductance, self._e_rev, self._ligands,
                      name=self.name, citation=self.citation, doi=self.doi, notes=self.notes,
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
        """Inverse of :meth:`to_dict`; errors name the offending key."""
        if not isinstance(d, Mapping):
            raise TypeError("scheme data must be a mapping")
        unknown = set(d) - {"scheme", "states", "transitions", "units"}
        if unknown:
            raise ValueError(f"unknown top-level key(s) {sorted(unknown)}")
        meta = dict(d.get("scheme", {}))
        allowed = {"name", "citation", "doi", "notes", "e_rev", "temperature", "ligands"}
        bad = set(meta) - allowed
        if bad:
            raise ValueError(f"[scheme]: unknown key(s) {sorted(bad)}; allowed: {sorted(allowed)}")
        states_d = d.get("states")
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
        for i, tr in enumerate(d.get("transitions", [])):
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
        q = lambda s: json.dumps(s, ensure_ascii=False)  # TOML basic strings accept JSON escapes
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
        """Read a scheme from a TOML file path or a TOML string."""
        try:
            import tomllib
        except ImportError:  # pragma: no cover - Python < 3.11
            import tomli as tomllib  # type: ignore[no-redef]
        if isinstance(source, os.PathLike) or (isinstance(source, str) and "\n" not in source
                                                and os.path.exists(source)):
            with open(source, "rb") as fh:
                data = tomllib.load(fh)
        elif isinstance(source, str):
            if "\n" not in source and source.endswith(".toml"):
                raise FileNotFoundError(f"scheme file {source!r} not found")
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


__all__ = ["Rate", "rate", "Transition", "Scheme", "DEFAULT_TEMPERATURE"]
