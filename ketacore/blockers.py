"""Channel blockers and open-channel-block composition (``kc.block``, ``kc.blockers``).

Block is a *composition*: :func:`block` takes any gating :class:`~ketacore.Scheme` and one or
more :class:`Blocker` definitions and returns a new, bigger Scheme.  Nothing is special-cased in
the engines -- a composed scheme is compiled and solved like any other.

Modes (DESIGN.md §1; reference/nmda-kinetics.md §4)
---------------------------------------------------
``"trapping"`` (ketamine, MK-801; Huettner & Bean 1988, doi:10.1073/pnas.85.4.1307)
    Every gating state X gets a blocked twin ``X·b`` carrying the same gating transitions
    (optionally scaled: ``closing_factor``, ``opening_factor``, ``arm_scaling``).  The blocker
    binds and leaves only at open states (``O → O·b`` at k_on(V)·[B], ``O·b → O`` at k_off(V)),
    so a blocked channel can close and lose its agonist with the blocker trapped inside.
    Optional extras: a slow escape ``X·b → X`` from shut blocked states (``k_escape``) and a
    closed-channel / membrane route ``X → X·b`` onto shut states (``k_on_closed``), both
    voltage-independent unless ``delta_escape`` / ``delta_on_closed`` are set.  With
    ``closed_route="balanced"`` the closed-route association is derived from ``k_escape`` so
    that the two routes are in detailed balance at every voltage and temperature.
``"sequential"`` ("foot in the door")
    Only ``O ⇌ O·b`` for each open state O; a blocked channel cannot close or change state.
``"partial_trapping"`` (memantine; Kotermanski, Wood & Johnson 2009,
    doi:10.1113/jphysiol.2009.176297)
    The deep trapping site as in ``"trapping"`` plus a second, superficial non-trapping site,
    external to the gate, accessible in every gating state: ``X ⇌ X·b_s`` at
    ``superficial_k_on``·[B] and ``superficial_k_off`` (voltage-independent), gating copied
    unchanged.  The deep and superficial sites of one blocker exclude each other, and the
    superficial site also excludes other blockers of the same ``site`` (a simplification: one
    blocker molecule per pore).

Several blockers: those with the same ``site`` exclude each other (Mg2+ and ketamine in the
pore: no state carries both); blockers on different sites combine as a product.  States that
cannot be reached from the unblocked gating states are dropped.  Blocked states have
conductance 0.  State names read ``O``, ``O·ket``, ``C2·ket``, ``O·mg``, ``C1·mem_s``.
Blockers may be added one call at a time: a composed scheme remembers its gating scheme and
blockers, and ``block(block(g, a), b)`` is ``block(g, a, b)`` (see :func:`block`).

Voltage dependence (Woodhull 1973, doi:10.1085/jgp.61.6.687) of the open-channel rates of a
blocker of valence z whose site lies at electrical distance δ = δ_on + δ_off::

    k_on(V)  = k_on  · exp(−z·δ_on ·(V − v_ref)/V_T)
    k_off(V) = k_off · exp(+z·δ_off·(V − v_ref)/V_T)
    K_B(V)   = k_off(V)/k_on(V) = K_B(v_ref) · exp(z·δ·(V − v_ref)/V_T)

with V_T = RT/F at the temperature of each condition (``thermal_voltage=None``: the scheme's
temperature unless a protocol step or a theory call sets one) or a fixed value (e.g. the 25 mV
of Kampa et al.'s .mod file).  Superficial-site rates are voltage-independent; the closed-route
and escape rates are too unless given their own electrical distances (``delta_on_closed``,
``delta_escape``: the same formula with the same z, v_ref and V_T).  A blocked state is the
same state whichever route led to it, so a closed route in detailed balance with the
open-channel site at every voltage needs ``delta_on_closed + delta_escape = δ`` (see
:class:`Blocker`; ``closed_route="balanced"`` sets it so).

Temperature: the open-channel, closed-route, escape and superficial-site rates are given at
``t_ref`` (22 °C by default) and scaled by ``q10_on`` (association: k_on, k_on_closed,
superficial_k_on) and ``q10_off`` (dissociation: k_off, k_escape, superficial_k_off),
``q10**((T − t_ref)/10)``; both default to 1 (temperature-independent apart from RT/F in the
Woodhull factor).  Gating transitions copied into a blocked arm keep their own Q10.

Exact identities a composed scheme obeys at equilibrium (tested in tests/test_blockers.py,
tests/test_blockers_review.py and tests/test_blockers_balance.py): a trapping blocker whose
blocked arm copies gating, with no escape and no closed route (``k_escape = k_on_closed = 0``)
or with an escape balanced by its closed route (``closed_route="balanced"``), gives
p(X·b)/p(X) = [B]/K_B in every gating state X, so IC50 = K_B independent of agonist (several
such blockers on one site: p(X·b_i)/p(X) = [B_i]/K_i); a partial-trapping blocker adds
p(X·b_s)/p(X) = [B]/K_s, so IC50 = 1/(1/K_B + 1/K_s), also independent of agonist; a
sequential blocker gives IC50 = K_B/Po0.  The library ketamine and memantine (and their
``_mealing1999`` variants) have a slow escape from shut blocked states balanced by its closed
route (``closed_route="balanced"``), so these identities hold exactly for them (to rounding).
A one-way escape (``k_escape > 0`` with ``k_on_closed = 0``) breaks them: equilibrium block
then depends on agonist, most at low agonist where channels are mostly shut.

The library (:func:`get`, :func:`available`) holds calibrated parameter sets for ketamine,
memantine, MK-801, amantadine and Mg2+ (Kampa 2004 and Ascher & Nowak 1988 forms).  Ketamine,
memantine and MK-801 were calibrated by ``docs/calibrate_blockers.py`` on the
``erreger2005_2a`` gating model at −70 mV, amantadine on ``erreger2005_2b`` (Blanpied 2005
relaxations); the numbers below are its output.  Variants (not defaults):
``ketamine_mealing1999`` and ``memantine_mealing1999`` (native cortical neurons, Mealing 1999)
and ``ketamine_closed_route`` (closed-channel / membrane route, Orser 1997, deliberately not in
detailed balance).  Variants use the same state tag as their parent (``ket``/``mem``), so compose one of them at a time.
"""
from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import types
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, overload

import numpy as np

from . import _validate as V_
from .scheme import DEFAULT_TEMPERATURE, Q10_RANGE, RESERVED_NAMES, Rate, Scheme
from .units import FARADAY, GAS_CONSTANT, mM, mV

#: Allowed blocker modes.
MODES = ("trapping", "sequential", "partial_trapping")

#: Separator between a gating state name and blocker tags in composed state names.
SEP = "·"

#: Largest number of states :func:`block` composes (counted before unreachable states are
#: dropped).  Engines use dense K×K matrices (expm is O(K³): ~1 s per matrix exponential at
#: K = 2000); blockers on n distinct sites multiply the gating states by ~2ⁿ.
MAX_COMPOSED_STATES = 2000
#: Accepted range (V) of a fixed ``Blocker.thermal_voltage``; RT/F is 17.2–34.5 mV over the
#: accepted 200–400 K (Kampa 2004 uses 25 mV).
THERMAL_VOLTAGE_RANGE = (5e-3, 0.1)
#: Largest |z| (valence of the blocking ion; polyamines such as spermine carry +4).
MAX_ABS_VALENCE = 6.0
#: Largest |delta_on| and |delta_off| (Woodhull electrical distance; apparent values slightly
#: above 1 occur in multi-ion pores).
MAX_ABS_DELTA = 2.0


@dataclass(frozen=True)
class Blocker:
    """An open-channel blocker: rate constants, voltage dependence, mode and provenance.

    Parameters
    ----------
    name : str
        Short tag used in composed state names (``"ket"`` → ``O·ket``).
    ligand : str
        Ligand (condition) name of the blocker concentration, in M (``"ketamine"``).
    k_on : float
        Open-channel association rate constant at ``v_ref`` and ``t_ref`` (M⁻¹ s⁻¹; a value
        quoted as 0.15 µM⁻¹ s⁻¹ is ``0.15 / ketacore.units.uM`` = 1.5e5).  0 is allowed (the
        blocker never binds open channels; :meth:`kd` is then ``inf``).
    k_off : float
        Open-channel dissociation rate constant at ``v_ref`` and ``t_ref`` (s⁻¹).
    z : float, default 1
        Valence of the blocking ion, |z| ≤ 6 (negative for an anion).
    delta_on, delta_off : float, default 0
        Parts of the Woodhull electrical distance carried by the on- and off-rate
        (δ = δ_on + δ_off; dimensionless, measured from the outside), each within ±2.  Give
        each its *part*: a published δ = 0.79 split evenly is ``delta_on = delta_off = 0.395``
        (:meth:`describe` prints the total).  The open-channel rates must be valid
        :class:`~ketacore.Rate` laws (|zδ| ≤ 10, finite ≤ 1e300 s⁻¹ over |V| ≤ 1 V and
        200–400 K).
    v_ref : float, default 0
        Voltage (V) at which ``k_on`` and ``k_off`` (and the closed-route rates) are given.
    thermal_voltage : float, optional
        Fixed V_T (V) in the exponentials, within 5–100 mV; ``None`` uses RT/F at the
        temperature of each condition.
    mode : {"trapping", "sequential", "partial_trapping"}, default "trapping"
    site : str, default "pore"
        Blockers sharing a site exclude each other.
    closing_factor, opening_factor : float, default 1
        Scaling (> 0) of gating transitions open→shut and shut→open inside the blocked arm
        (trapping modes only), e.g. 3 for the 3× faster closure of Mg2+-blocked channels of
        Vargas-Caballero & Robinson 2004.
    arm_scaling : mapping, optional
        Extra per-transition scaling (> 0) in the blocked arm, keys ``"SRC->DST"`` of the
        gating scheme (checked when composing).  :func:`block` refuses factors that change the
        equilibrium constants around a cycle of the gating scheme, or between open states,
        by a net factor other than 1 (microscopic reversibility, Colquhoun et al. 2004,
        doi:10.1529/biophysj.103.038679; scale both directions of a transition alike, or
        compensate inside the cycle).
    k_escape : float, default 0
        Escape rate (s⁻¹) at ``v_ref`` and ``t_ref`` from shut blocked states ``X·b → X``
        (trapping modes).
    k_on_closed : float, default 0
        Closed-channel / membrane-route association (M⁻¹ s⁻¹) at ``v_ref`` and ``t_ref`` onto
        shut states ``X → X·b`` (trapping modes).  With ``k_escape`` this is a second route to
        the deep site.  It is in detailed balance with the open-channel route (by Kolmogorov's
        criterion around ``X → O → O·b → X·b → X``) only if k_escape(V)/k_on_closed(V) =
        K_B(V)·opening_factor/closing_factor (with ``arm_scaling`` empty) -- at *every*
        voltage only if also ``delta_on_closed + delta_escape = delta_on + delta_off``; with
        the default voltage-independent closed route it can hold at one voltage at most.  Not
        enforced for a value given here (the library variant ``ketamine_closed_route`` is
        deliberately not in balance); check a composition with
        :func:`ketacore.theory.is_reversible`, or let ``closed_route="balanced"`` derive it.
        Must be left 0 with ``closed_route="balanced"``.
    delta_on_closed, delta_escape : float, default 0
        Electrical distances (dimensionless, each within ±2) of the closed-route association
        and of the escape: ``k_on_closed·exp(−z·delta_on_closed·(V − v_ref)/V_T)`` and
        ``k_escape·exp(z·delta_escape·(V − v_ref)/V_T)``.  ``delta_on_closed`` must be left 0
        with ``closed_route="balanced"`` (it is derived).
    superficial_k_on, superficial_k_off : float, default 0
        Superficial-site rates (M⁻¹ s⁻¹, s⁻¹), voltage-independent, required > 0 for
        ``"partial_trapping"`` and forbidden otherwise.
    q10_on, q10_off : float, default 1
        Temperature coefficients (dimensionless, 1e-3–1e3) of the association rates (k_on,
        k_on_closed, superficial_k_on) and of the dissociation rates (k_off, k_escape,
        superficial_k_off): each is ``k·q10**((T − t_ref)/10)``.
    t_ref : float, default 295.15
        Temperature (K) at which the rate constants are given (22 °C).  It matters only with
        ``q10_on`` or ``q10_off`` ≠ 1.
    citation, doi, notes : str
        Sources and the calibration this parameter set was given.
    closed_route : {None, "balanced"}, default None
        ``None``: the closed-channel route is exactly ``k_on_closed`` / ``delta_on_closed`` as
        given (none by default).  ``"balanced"``: the closed-route association is derived from
        the escape so that the cycle ``X → O → O·b → X·b → X`` is in detailed balance with the
        open-channel site at every voltage and temperature (microscopic reversibility):

            k_on_closed     = k_escape · k_on · closing_factor / (k_off · opening_factor)
                              (M⁻¹ s⁻¹, at ``v_ref`` and ``t_ref``)
            delta_on_closed = delta_on + delta_off − delta_escape

        i.e. k_escape(V, T)/k_on_closed(V, T) = K_B(V, T)·opening_factor/closing_factor at
        every V and T: k_on_closed scales with ``q10_on`` and k_escape with ``q10_off``, as
        k_on and k_off, from the same ``t_ref``, and uses the same z, v_ref and V_T.  A
        blocker that can leave a shut blocked channel can enter a shut channel by the same
        route, so equilibrium block is then independent of agonist (IC50 = K_B for a
        full-trapping blocker with copied gating).  The derived values are
        :attr:`effective_k_on_closed` and :attr:`effective_delta_on_closed` (the fields
        ``k_on_closed`` and ``delta_on_closed`` stay 0: they are inputs, and
        :meth:`replace` of ``k_escape``, ``k_on``, ... re-derives the route).  With
        ``k_escape = 0`` there is no closed route (pure trapping, balanced).  Trapping modes
        only; with ``k_escape > 0`` needs ``k_on > 0`` and ``k_off > 0``.  With ``arm_scaling``,
        :func:`block` checks that the blocked arm favours shut over open states by exactly
        closing_factor/opening_factor (otherwise the derived route would not balance).

    Raises
    ------
    ValueError, TypeError
        Bad mode, non-finite or negative rates, empty names, misplaced superficial rates;
        ``closed_route`` other than None or ``"balanced"``, or ``"balanced"`` together with an
        explicit ``k_on_closed`` or ``delta_on_closed``, with mode ``"sequential"``, or with
        ``k_escape > 0`` but ``k_on = 0`` or ``k_off = 0``.

    Notes
    -----
    A Blocker pickles and deep-copies (``arm_scaling`` is stored read-only), so it can be sent
    to worker processes.
    """

    name: str
    ligand: str
    k_on: float
    k_off: float
    z: float = 1.0
    delta_on: float = 0.0
    delta_off: float = 0.0
    v_ref: float = 0.0
    thermal_voltage: float | None = None
    mode: str = "trapping"
    site: str = "pore"
    closing_factor: float = 1.0
    opening_factor: float = 1.0
    arm_scaling: Mapping[str, float] = field(default_factory=dict, hash=False)
    k_escape: float = 0.0
    k_on_closed: float = 0.0
    delta_on_closed: float = 0.0
    delta_escape: float = 0.0
    superficial_k_on: float = 0.0
    superficial_k_off: float = 0.0
    q10_on: float = 1.0
    q10_off: float = 1.0
    t_ref: float = DEFAULT_TEMPERATURE
    citation: str = ""
    doi: str = ""
    notes: str = ""
    closed_route: str | None = None

    def __post_init__(self) -> None:
        for key in ("name", "ligand", "site"):
            v = getattr(self, key)
            if not isinstance(v, str) or not v.strip():
                raise TypeError(f"Blocker.{key} must be a non-empty string, got {v!r}")
        if SEP in self.name:
            raise ValueError(f"Blocker.name must not contain {SEP!r}")
        if self.ligand in RESERVED_NAMES:
            raise ValueError(f"Blocker.ligand {self.ligand!r} is reserved (a parameter name of "
                             f"Step/q_matrix); reserved: {list(RESERVED_NAMES)}")
        if self.mode not in MODES:
            raise ValueError(f"Blocker.mode must be one of {MODES}, got {self.mode!r}")
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        for key in ("k_on", "k_off", "k_escape", "k_on_closed", "superficial_k_on",
                    "superficial_k_off"):
            set_(key, V_.real(f"Blocker.{key}", getattr(self, key), nonnegative=True))
        for key, bound in (("z", MAX_ABS_VALENCE), ("delta_on", MAX_ABS_DELTA),
                           ("delta_off", MAX_ABS_DELTA), ("delta_on_closed", MAX_ABS_DELTA),
                           ("delta_escape", MAX_ABS_DELTA)):
            v = V_.real(f"Blocker.{key}", getattr(self, key))
            if not abs(v) <= bound:
                raise ValueError(f"Blocker.{key}={v} is outside ±{bound:g}")
            set_(key, v)
        for key in ("closing_factor", "opening_factor"):
            set_(key, V_.real(f"Blocker.{key}", getattr(self, key), positive=True))
        for key in ("q10_on", "q10_off"):
            q = V_.real(f"Blocker.{key}", getattr(self, key), positive=True)
            if not Q10_RANGE[0] <= q <= Q10_RANGE[1]:
                raise ValueError(f"Blocker.{key}={q} is outside [{Q10_RANGE[0]:g}, "
                                 f"{Q10_RANGE[1]:g}]")
            set_(key, q)
        set_("t_ref", V_.temperature("Blocker.t_ref", self.t_ref))
        set_("v_ref", V_.voltage("Blocker.v_ref", self.v_ref))
        if self.thermal_voltage is not None:
            vt = V_.real("Blocker.thermal_voltage", self.thermal_voltage, positive=True)
            lo, hi = THERMAL_VOLTAGE_RANGE
            if not lo <= vt <= hi:
                raise ValueError(f"Blocker.thermal_voltage={vt} V is outside [{lo}, {hi}] V (RT/F "
                                 f"is 0.017-0.034 V over 200-400 K); it is in volts (write "
                                 f"25 * ketacore.units.mV)")
            set_("thermal_voltage", vt)
            from .scheme import MAX_ABS_VK
            # with closed_route="balanced" the composed closed route carries the derived delta
            # (also at k_escape = 0, where its rate law is still built, with k = 0)
            derived = self.closed_route == "balanced"
            for key in ("delta_on", "delta_off", "delta_on_closed", "delta_escape"):
                zd = abs(self.z * (getattr(self, key) if key != "delta_on_closed" else
                                   self.effective_delta_on_closed if derived
                                   else self.delta_on_closed))
                if zd > 0 and not vt / zd <= MAX_ABS_VK:
                    weak = (f"with z={self.z!r} and a fixed thermal_voltage={vt} V is a voltage "
                            f"dependence weaker than an e-fold per {MAX_ABS_VK:g} V (under 2 % "
                            f"over ±100 mV; the rate's vk would be {vt / zd:.3g} V)")
                    if key == "delta_on_closed" and derived:
                        d = self.effective_delta_on_closed
                        raise ValueError(
                            f"Blocker.effective_delta_on_closed={d:.6g}, derived by "
                            f"closed_route='balanced' as delta_on + delta_off - delta_escape = "
                            f"{self.delta_on!r} + {self.delta_off!r} - {self.delta_escape!r}, "
                            f"{weak}: set delta_escape = delta_on + delta_off "
                            f"(= {self.delta_on + self.delta_off:.6g}) for a voltage-independent "
                            f"closed route, or move delta_on/delta_off/delta_escape so that "
                            f"|z·(delta_on + delta_off - delta_escape)| >= "
                            f"{vt / MAX_ABS_VK:.3g}, or thermal_voltage=None (then z·delta acts "
                            f"through RT/F), or closed_route=None with an explicit closed route "
                            f"(delta_on_closed itself is not used and must stay 0)")
                    raise ValueError(
                        f"Blocker.{key}={getattr(self, key)!r} {weak}: set {key}=0 for a "
                        "voltage-independent rate, or thermal_voltage=None (then z·delta acts "
                        "through RT/F)")
        if not isinstance(self.arm_scaling, Mapping):
            raise TypeError("Blocker.arm_scaling must be a mapping {'SRC->DST': factor}")
        set_("arm_scaling", types.MappingProxyType(
            {str(k): V_.real(f"Blocker.arm_scaling[{k!r}]", v, positive=True)
             for k, v in self.arm_scaling.items()}))
        if self.mode == "partial_trapping":
            if not (self.superficial_k_on > 0 and self.superficial_k_off > 0):
                raise ValueError("mode 'partial_trapping' needs superficial_k_on > 0 and "
                                 "superficial_k_off > 0 (the non-trapping superficial site)")
        elif self.superficial_k_on or self.superficial_k_off:
            raise ValueError(f"superficial-site rates are only for mode 'partial_trapping', "
                             f"not {self.mode!r}")
        if self.mode == "sequential" and (self.k_escape or self.k_on_closed
                                          or self.delta_on_closed or self.delta_escape
                                          or self.closing_factor != 1 or self.opening_factor != 1
                                          or self.arm_scaling):
            raise ValueError("mode 'sequential' has no blocked gating arm: k_escape, "
                             "k_on_closed, delta_on_closed, delta_escape, closing/opening_factor "
                             "and arm_scaling must be unset")
        for key in ("citation", "doi", "notes"):
            if not isinstance(getattr(self, key), str):
                raise TypeError(f"Blocker.{key} must be a string")
        self._check_closed_route()
        # every rate must be a valid rate law (finite over every accepted condition)
        for what, make in (("open-channel on-rate k_on·exp(-z·delta_on·(V - v_ref)/V_T)",
                            self.on_rate),
                           ("open-channel off-rate k_off·exp(z·delta_off·(V - v_ref)/V_T)",
                            self.off_rate)):
            try:
                make()
            except ValueError as e:
                raise ValueError(f"Blocker {self.name!r}: {what} (k_on={self.k_on!r}, "
                                 f"k_off={self.k_off!r}, z={self.z!r}, delta_on={self.delta_on!r}, "
                                 f"delta_off={self.delta_off!r}, thermal_voltage="
                                 f"{self.thermal_voltage!r}, q10_on={self.q10_on!r}, q10_off="
                                 f"{self.q10_off!r}) is not accepted: {e}") from None
        for key, make in (("k_escape", self.escape_rate),
                          ("k_on_closed" if self.closed_route is None else
                           "k_on_closed derived by closed_route='balanced'", self.closed_on_rate),
                          ("superficial_k_on", self.superficial_on_rate),
                          ("superficial_k_off", self.superficial_off_rate)):
            try:
                make()
            except ValueError as e:
                val = (getattr(self, key) if hasattr(self, key) else
                       self.effective_k_on_closed)
                raise ValueError(f"Blocker.{key}={val!r}: {e}") from None

    def _check_closed_route(self) -> None:
        """Validate ``closed_route`` against the other closed-route fields."""
        cr = self.closed_route
        if cr is None:
            return
        if not isinstance(cr, str) or cr != "balanced":
            raise ValueError(f"Blocker.closed_route must be None (the closed route as given by "
                             f"k_on_closed/delta_on_closed) or 'balanced' (derived from "
                             f"k_escape in detailed balance), got {cr!r}; a study file (TOML, "
                             f"which has no null) writes None as closed_route = \"none\" "
                             f"(lowercase), 'balanced' as closed_route = \"balanced\"")
        if self.mode == "sequential":
            raise ValueError("Blocker.closed_route='balanced' is for the trapping modes: mode "
                             "'sequential' has no blocked gating arm and no closed route")
        for key in ("k_on_closed", "delta_on_closed"):
            if getattr(self, key) != 0:
                raise ValueError(
                    f"Blocker.closed_route='balanced' derives {key} from k_escape (k_on_closed "
                    f"= k_escape·k_on·closing_factor/(k_off·opening_factor), delta_on_closed = "
                    f"delta_on + delta_off - delta_escape), so {key}={getattr(self, key)!r} "
                    f"contradicts it: leave {key} unset (0), or set closed_route=None for an "
                    f"explicit closed route")
        if self.k_escape > 0 and not (self.k_on > 0 and self.k_off > 0):
            raise ValueError(
                f"Blocker.closed_route='balanced' with k_escape={self.k_escape!r} needs k_on > 0 "
                f"and k_off > 0 (got k_on={self.k_on!r}, k_off={self.k_off!r}): the closed route "
                f"balances the escape against K_B = k_off/k_on, which must be finite and > 0; "
                f"set k_escape=0 or closed_route=None")
        d = self.effective_delta_on_closed
        if not abs(d) <= MAX_ABS_DELTA:
            raise ValueError(
                f"Blocker.closed_route='balanced': the derived delta_on_closed = delta_on + "
                f"delta_off - delta_escape = {d:g} is outside ±{MAX_ABS_DELTA:g} (delta_on="
                f"{self.delta_on!r}, delta_off={self.delta_off!r}, delta_escape="
                f"{self.delta_escape!r})")

    def __reduce__(self):
        # pickle / copy.deepcopy: the read-only arm_scaling (a mappingproxy) cannot be pickled
        # as such, so rebuild from plain fields (and validate again on loading)
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["arm_scaling"] = dict(self.arm_scaling)
        return (_rebuild_blocker, (d,))

    # ------------------------------------------------------------------ rates
    @property
    def delta(self) -> float:
        """Total Woodhull electrical distance δ = δ_on + δ_off."""
        return self.delta_on + self.delta_off

    def _vt(self, temperature: float) -> float:
        if self.thermal_voltage is not None:
            return self.thermal_voltage
        return GAS_CONSTANT * temperature / FARADAY

    def _rate(self, k0: float, ligand: str | None, zd: float, q10: float = 1.0) -> Rate:
        """Rate k0·exp(zd·(V − v_ref)/V_T)·q10**((T − t_ref)/10) in the scheme's rate-law
        terms."""
        kw: dict[str, Any] = {}
        if q10 != 1.0:
            kw.update(q10=q10, t_ref=self.t_ref)
        if zd == 0.0:
            return Rate(k0, ligand, **kw)
        if self.thermal_voltage is None:
            return Rate(k0, ligand, z_delta=zd, v0=self.v_ref, **kw)
        return Rate(k0, ligand, vk=self.thermal_voltage / zd, v0=self.v_ref, **kw)

    def on_rate(self) -> Rate:
        """Open-channel blocking :class:`~ketacore.Rate` (M⁻¹ s⁻¹ × [ligand])."""
        return self._rate(self.k_on, self.ligand, -self.z * self.delta_on, self.q10_on)

    def off_rate(self) -> Rate:
        """Open-channel unblocking :class:`~ketacore.Rate` (s⁻¹)."""
        return self._rate(self.k_off, None, self.z * self.delta_off, self.q10_off)

    @property
    def effective_k_on_closed(self) -> float:
        """Closed-route association (M⁻¹ s⁻¹ at ``v_ref`` and ``t_ref``) that :func:`block`
        composes: ``k_on_closed`` as given, or with ``closed_route="balanced"``
        k_escape·k_on·closing_factor/(k_off·opening_factor) (0 when ``k_escape = 0``)."""
        if self.closed_route != "balanced" or self.k_escape == 0:
            return self.k_on_closed
        return (self.k_escape * self.k_on * self.closing_factor
                / (self.k_off * self.opening_factor))

    @property
    def effective_delta_on_closed(self) -> float:
        """Electrical distance of the composed closed-route association: ``delta_on_closed``
        as given, or with ``closed_route="balanced"`` delta_on + delta_off − delta_escape."""
        if self.closed_route != "balanced":
            return self.delta_on_closed
        return self.delta_on + self.delta_off - self.delta_escape

    def closed_on_rate(self) -> Rate:
        """Closed-route association :class:`~ketacore.Rate` onto shut states (M⁻¹ s⁻¹ ×
        [ligand]); with ``closed_route="balanced"`` the derived one
        (:attr:`effective_k_on_closed`, :attr:`effective_delta_on_closed`)."""
        return self._rate(self.effective_k_on_closed, self.ligand,
                          -self.z * self.effective_delta_on_closed, self.q10_on)

    def escape_rate(self) -> Rate:
        """Escape :class:`~ketacore.Rate` from shut blocked states (s⁻¹)."""
        return self._rate(self.k_escape, None, self.z * self.delta_escape, self.q10_off)

    def superficial_on_rate(self) -> Rate:
        """Superficial-site association :class:`~ketacore.Rate` (M⁻¹ s⁻¹ × [ligand])."""
        return self._rate(self.superficial_k_on, self.ligand, 0.0, self.q10_on)

    def superficial_off_rate(self) -> Rate:
        """Superficial-site dissociation :class:`~ketacore.Rate` (s⁻¹)."""
        return self._rate(self.superficial_k_off, None, 0.0, self.q10_off)

    def k_on_at(self, V: float, temperature: float = DEFAULT_TEMPERATURE) -> float:
        """Open-channel k_on (M⁻¹ s⁻¹) at voltage ``V`` (V) and ``temperature`` (K)."""
        with V_.quiet_units():  # (1 M: the per-molar rate, not a concentration applied)
            return self.on_rate()(V, temperature, **{self.ligand: 1.0})

    def k_off_at(self, V: float, temperature: float = DEFAULT_TEMPERATURE) -> float:
        """Open-channel k_off (s⁻¹) at voltage ``V`` (V) and ``temperature`` (K)."""
        return self.off_rate()(V, temperature)

    def kd(self, V: float, temperature: float = DEFAULT_TEMPERATURE) -> float:
        """Open-channel dissociation constant K_B(V) = k_off(V)/k_on(V) (M).

        ``V`` in volts (|V| ≤ 1 V), ``temperature`` in kelvin (200–400 K; the default is 22 °C,
        not the temperature of a scheme: pass ``scheme.temperature`` to compare with a
        composed scheme).  Returns ``inf`` when the blocker cannot bind open channels
        (``k_on = 0``, or k_on(V) underflowing to 0) and ``0.0`` when it never leaves
        (``k_off = 0``, ``k_on > 0``)."""
        V = V_.voltage("V", V)
        temperature = V_.temperature("temperature", temperature)
        k_on = self.k_on_at(V, temperature)
        if k_on == 0.0:
            return math.inf
        return self.k_off_at(V, temperature) / k_on

    def replace(self, **changes: Any) -> "Blocker":
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """Human-readable summary with units."""
        zd = self.z * self.delta
        vt22 = GAS_CONSTANT * DEFAULT_TEMPERATURE / FARADAY
        vt = self.thermal_voltage if self.thermal_voltage is not None else vt22
        out = [f"{self.name} (ligand {self.ligand!r}): mode {self.mode}, site {self.site!r}",
               f"  k_on = {self.k_on:.4g} /M/s, k_off = {self.k_off:.4g} /s at "
               f"{self.v_ref / mV:g} mV; z = {self.z:g}, delta_on = {self.delta_on:g}, "
               f"delta_off = {self.delta_off:g}"
               + ("" if self.thermal_voltage is None else
                  f", V_T = {self.thermal_voltage / mV:g} mV"),
               f"  delta = delta_on + delta_off = {self.delta:g}, z*delta = {zd:g}: "
               + ("K_B independent of voltage" if zd == 0 else
                  f"K_B rises e-fold per {abs(vt / zd) / mV:.3g} mV of "
                  + ("depolarisation" if zd > 0 else "hyperpolarisation")
                  + ("" if self.thermal_voltage is not None else " at 22 C")
                  + (" (block grows with hyperpolarisation)" if zd > 0 else
                     " (block grows with depolarisation)")),
               ("  K_B(-70 mV, 22 C) = inf (k_on = 0: never binds open channels)"
                if self.k_on == 0 else f"  K_B(-70 mV, 22 C) = {self.kd(-70 * mV) * 1e6:.4g} uM")]
        kon_c, d_c = self.effective_k_on_closed, self.effective_delta_on_closed
        balanced = self.closed_route == "balanced"
        if balanced and not self.k_escape:
            out.append("  closed_route = 'balanced' with k_escape = 0: no escape and no closed "
                       "route (pure trapping; in detailed balance)")
        elif self.k_escape or kon_c:
            out.append(f"  k_escape = {self.k_escape:.4g} /s, "
                       f"k_on_closed = {kon_c:.4g} /M/s"
                       + (" (derived: closed_route = 'balanced', k_on_closed = "
                          "k_escape*k_on*closing_factor/(k_off*opening_factor))" if balanced
                          else "")
                       + (f"; delta_escape = {self.delta_escape:g}, delta_on_closed = "
                          f"{d_c:g}" + (" (= delta - delta_escape)" if balanced else "")
                          if self.delta_escape or d_c else
                          " (voltage-independent)"))
            if self.k_escape and kon_c:
                # like with like: both at v_ref and t_ref.  k_escape and k_off share q10_off,
                # k_on_closed and k_on share q10_on, so the ratio of the two sides does not
                # change with temperature; with equal electrical distances it does not change
                # with voltage either.
                kc_ = self.k_escape / kon_c
                kb0 = self.kd(self.v_ref, self.t_ref) * self.opening_factor / self.closing_factor
                t_c = self.t_ref - 273.15
                scale = ("" if self.opening_factor == self.closing_factor else
                         "*opening_factor/closing_factor")
                line = (f"  closed route K = k_escape/k_on_closed = {kc_ * 1e6:.4g} uM vs open "
                        f"K_B{scale} = {kb0 * 1e6:.4g} uM (both at v_ref = "
                        f"{self.v_ref / mV:g} mV, t_ref = {t_c:g} C)")
                same_k = math.isclose(kc_, kb0, rel_tol=1e-6)
                same_d = math.isclose(d_c + self.delta_escape, self.delta, rel_tol=0.0,
                                      abs_tol=1e-9)
                if same_k and same_d:
                    line += (": in detailed balance with the open-channel site at every voltage "
                             "and temperature" + (" (closed_route = 'balanced')" if balanced
                                                  else ""))
                elif same_k:
                    line += (f": in detailed balance at v_ref only -- delta_on_closed + "
                             f"delta_escape = {d_c + self.delta_escape:g} differs from delta = "
                             f"{self.delta:g}, so at other voltages the closed/open cycle is NOT "
                             f"in detailed balance (theory.is_reversible is False there)")
                else:
                    line += (": the closed/open cycle is NOT in detailed balance (a "
                             "non-equilibrium steady state; theory.is_reversible is False)")
                out.append(line)
            elif self.k_escape:
                out.append("  escape from shut blocked states has no reverse route (k_on_closed = 0):"
                           " not in detailed balance (closed_route='balanced' adds the reverse "
                           "route)")
            else:
                out.append("  closed-channel entry has no reverse route (k_escape = 0): not in "
                           "detailed balance")
        if self.mode == "partial_trapping":
            out.append(f"  superficial site: k_on = {self.superficial_k_on:.4g} /M/s, "
                       f"k_off = {self.superficial_k_off:.4g} /s, K_s = "
                       f"{self.superficial_k_off / self.superficial_k_on * 1e6:.4g} uM "
                       f"(voltage-independent)")
        if self.q10_on != 1 or self.q10_off != 1:
            out.append(f"  q10_on = {self.q10_on:g}, q10_off = {self.q10_off:g} from "
                       f"t_ref = {self.t_ref - 273.15:g} C")
        if self.citation:
            out.append(f"  source: {self.citation}" + (f" (doi:{self.doi})" if self.doi else ""))
        if self.notes:
            out.append(f"  notes: {self.notes}")
        return "\n".join(out)


def _rebuild_blocker(fields: dict) -> Blocker:
    """Unpickle a :class:`Blocker` (see ``Blocker.__reduce__``)."""
    return Blocker(**fields)


# --------------------------------------------------------------------------- composition
def _resolve_blockers(blockers: Iterable[Any]) -> list[Blocker]:
    out = []
    for b in blockers:
        if isinstance(b, str):
            b = get(b)
        if isinstance(b, (list, tuple)):
            raise TypeError(f"blockers are separate arguments: block(gating, b1, b2) or "
                            f"block(gating, *blockers), not a {type(b).__name__} of them")
        if not isinstance(b, Blocker):
            raise TypeError(f"blockers must be Blocker objects or library names, got "
                            f"{type(b).__name__}")
        out.append(b)
    return out


def _arm_factors(scheme: Scheme, b: Blocker, is_open: Mapping[str, bool]
                 ) -> dict[tuple[str, str], float]:
    """Factor of every gating transition (src, dst) inside ``b``'s blocked arm."""
    out = {}
    for t in scheme.transitions:
        f = b.arm_scaling.get(f"{t.src}->{t.dst}", 1.0)
        if is_open[t.src] and not is_open[t.dst]:
            f *= b.closing_factor
        elif is_open[t.dst] and not is_open[t.src]:
            f *= b.opening_factor
        out[(t.src, t.dst)] = f
    return out


def _check_arm_balance(scheme: Scheme, b: Blocker, f: Mapping[tuple[str, str], float],
                       is_open: Mapping[str, bool]) -> None:
    """Refuse arm scaling that breaks microscopic reversibility (Kolmogorov's criterion).

    The blocked arm multiplies the equilibrium constant of each reversible gating step
    src⇌dst by f(src→dst)/f(dst→src).  Cycle products are unchanged iff these ratios derive
    from a potential φ over the states, ln(f_ij/f_ji) = φ_j − φ_i; and the cycles through the
    binding steps are unchanged iff φ is equal on every state the blocker binds with the same
    constant: the open states (k_on, k_off > 0), and the shut states when the closed route is
    two-way (k_on_closed, k_escape > 0).  closing_factor/opening_factor always satisfy this
    (φ = ln(closing/opening) on shut states, 0 on open ones); only ``arm_scaling`` can break it.
    The potential is propagated along a spanning tree and every other pair closes one
    independent cycle (the spanning-tree method of Colquhoun D, Dowsland KA, Beato M, Plested
    AJR (2004) How to impose microscopic reversibility in complex reaction mechanisms. Biophys J
    86:3510-3518, doi:10.1529/biophysj.103.038679).
    """
    lg = {k: math.log(v) for k, v in f.items()}
    adj: dict[str, list[tuple[str, float]]] = {s: [] for s in scheme.states}
    for (a, c), x in lg.items():
        if (c, a) in lg:
            adj[a].append((c, x - lg[(c, a)]))
    phi: dict[str, float] = {}
    parent: dict[str, str | None] = {}
    tol = 1e-9
    for root in scheme.states:
        if root in phi:
            continue
        phi[root], parent[root] = 0.0, None
        comp, queue = [root], collections.deque([root])
        while queue:
            a = queue.popleft()
            for c, r in adj[a]:
                if c not in phi:
                    phi[c], parent[c] = phi[a] + r, a
                    comp.append(c)
                    queue.append(c)
                elif abs(phi[a] + r - phi[c]) > tol:
                    def up(x: str) -> list[str]:
                        path = [x]
                        while parent[path[-1]] is not None:
                            path.append(parent[path[-1]])
                        return path
                    pa, pc = up(a), up(c)
                    lca = next(x for x in pa if x in pc)
                    cyc = pa[:pa.index(lca) + 1][::-1] + pc[:pc.index(lca) + 1]
                    raise ValueError(
                        f"blocker {b.name!r}: arm_scaling {dict(b.arm_scaling)} changes the "
                        f"product of equilibrium constants around the cycle "
                        f"{' -> '.join(cyc)} of the blocked arm by a factor "
                        f"{math.exp(phi[a] + r - phi[c]):.6g} (it must stay 1: microscopic "
                        f"reversibility; the unblocked gating around it is unchanged).  Scale "
                        f"both directions of a transition alike, or compensate inside the "
                        f"cycle; a deliberately non-equilibrium arm can be written with "
                        f"Scheme.with_rates on the composed scheme")
        groups = []
        if b.k_on > 0 and b.k_off > 0:
            groups.append(("open", [s for s in comp if is_open[s]], "k_on/k_off"))
        if b.effective_k_on_closed > 0 and b.k_escape > 0:
            groups.append(("shut", [s for s in comp if not is_open[s]],
                           "k_on_closed/k_escape"))
        for kind, states, how in groups:
            for s in states[1:]:
                if abs(phi[s] - phi[states[0]]) > tol:
                    x, y = states[0], s
                    raise ValueError(
                        f"blocker {b.name!r}: arm_scaling {dict(b.arm_scaling)} changes the "
                        f"equilibrium between the {kind} states {x!r} and {y!r} in the "
                        f"blocked arm by a factor {math.exp(phi[y] - phi[x]):.6g}, while the "
                        f"blocker binds both with the same {how}: microscopic reversibility "
                        f"is broken around {x} -> {x}{SEP}{b.name} -> ... -> {y}{SEP}{b.name} "
                        f"-> {y} -> ... -> {x}.  Scale the transitions between them so that "
                        f"their equilibrium is unchanged")
        if b.closed_route == "balanced" and b.k_escape > 0:
            # the derived closed route balances the escape against K_B·opening/closing: the arm
            # must favour its shut states over its open ones by exactly closing/opening
            op = [x for x in comp if is_open[x]]
            sh = [x for x in comp if not is_open[x]]
            want = math.log(b.closing_factor / b.opening_factor)
            if op and sh and abs(phi[sh[0]] - phi[op[0]] - want) > tol:
                x, y = sh[0], op[0]
                raise ValueError(
                    f"blocker {b.name!r}: closed_route='balanced' derives k_on_closed from "
                    f"k_escape with the factor closing_factor/opening_factor = "
                    f"{b.closing_factor / b.opening_factor:.6g}, but arm_scaling "
                    f"{dict(b.arm_scaling)} makes the blocked arm favour the shut state {x!r} "
                    f"over the open state {y!r} by {math.exp(phi[x] - phi[y]):.6g}: the "
                    f"closed route would not be in detailed balance.  Scale both directions "
                    f"of the open<->shut transitions alike, or use closing_factor/"
                    f"opening_factor, or closed_route=None with an explicit k_on_closed")


def _collision_message(scheme: Scheme, nm: str, n1: tuple, n2: tuple, none_occ: tuple) -> str:
    def what(n: tuple) -> str:
        g, occ = n
        bound = [(f"blocker {o[0].name!r}" if o[1] == "deep" else
                  f"blocker {o[0].name!r} (superficial site)") for o in occ if o is not None]
        return (f"gating state {g!r}" + (f" with {' and '.join(bound)} bound" if bound else
                                         " (unblocked)"))
    already = any(occ == none_occ and SEP in g for g, occ in (n1, n2))
    hint = ("the gating scheme already has blocked states but no record of the block() call "
            "that composed them (was it read from TOML, or changed after composing?): compose "
            "all blockers in one call on the gating scheme, block(gating, b1, b2); if "
            f"{SEP!r} is part of your own gating state names, rename those states"
            if already else
            "rename the blocker with .replace(name=...) or the gating state")
    return (f"block(): composing {repr(scheme.name) if scheme.name else 'the gating scheme'}, the "
            f"state name {nm!r} "
            f"would be given to both {what(n1)} and {what(n2)}; {hint}")


# --------------------------------------------------------------------------- composition memory
#: Attribute of a Scheme returned by :func:`block` recording how it was composed
#: (a :class:`_Composition`); read by :func:`block` to recompose rather than block blocked states.
_COMPOSITION_ATTR = "_blocker_composition"


@dataclass(frozen=True, eq=False)
class _Composition:
    """How :func:`block` composed a scheme.

    ``gating`` is a private copy of the gating scheme (never compiled, so it pickles),
    ``blockers`` the resolved blockers in composition order, and ``fingerprint`` the kinetic
    content of the composed scheme when it was made (:func:`_fingerprint`): a scheme whose
    content differs from it (changed after composing) is not taken for that composition."""

    gating: Scheme
    blockers: tuple[Blocker, ...]
    fingerprint: tuple


def _fingerprint(s: Scheme) -> tuple:
    """Everything that defines a scheme's kinetics: states, transitions and their rate laws,
    ligands, conductances, E_rev and temperature (not the name, citation, doi or notes)."""
    return (s.states, s.transitions, s.ligands, tuple(float(g) for g in s.conductance),
            float(s.e_rev), float(s.temperature))


def _composition_of(s: Scheme) -> _Composition | None:
    """The composition memory of ``s`` if it still describes ``s``, else None."""
    memo = getattr(s, _COMPOSITION_ATTR, None)
    if isinstance(memo, _Composition) and memo.fingerprint == _fingerprint(s):
        return memo
    return None


def _detached(g: Scheme) -> Scheme:
    """A private copy of ``g`` without its cached compiled form (which does not pickle) or
    any composition memory of its own."""
    return Scheme(g.states, g.transitions, g.conductance, g.e_rev, g.ligands, name=g.name,
                  citation=g.citation, doi=g.doi, notes=g.notes, temperature=g.temperature)


def _unrecorded_blocked_states(scheme: Scheme, blocked: list[str], bl: list[Blocker]) -> str:
    more = f" and {len(blocked) - 3} more" if len(blocked) > 3 else ""
    return (f"block(): {repr(scheme.name) if scheme.name else 'the gating scheme'} already has "
            f"blocked states ({', '.join(map(repr, blocked[:3]))}{more}: {SEP!r} in a state "
            f"name marks a blocker tag) but no record of the block() call that composed them "
            f"(it was read from TOML, rebuilt, or changed after composing, e.g. by "
            f"Scheme.with_rates), so block() would take them for shut gating states and "
            f"compose states such as {blocked[0] + SEP + bl[0].name!r} (two blockers in one "
            f"channel even if they share a site, the earlier blocker's binding copied into the "
            f"new one's arm, and the new one binding a blocked open channel as if it were "
            f"shut).  Compose all blockers in one call on the gating "
            f"scheme, block(gating, b1, b2) (a scheme returned by block() may also be blocked "
            f"again: it remembers its gating scheme and blockers), then apply any rate changes "
            f"with Scheme.with_rates on the result; if {SEP!r} is part of your own gating state "
            f"names, rename those states")


def block(scheme: Scheme | str, *blockers: Blocker | str, name: str | None = None) -> Scheme:
    """Compose a gating scheme with open-channel blockers into a new :class:`~ketacore.Scheme`.

    Parameters
    ----------
    scheme : Scheme or str
        Gating scheme, or the name of a library model (:func:`ketacore.models.get`); its
        states with conductance > 0 are the open states.  A scheme returned by
        :func:`block` is recomposed from its own gating scheme (see Notes).
    *blockers : Blocker or str
        Blocker definitions, or names from the library (:func:`available`).  Blockers sharing
        a ``site`` exclude each other; different sites combine as a product.
    name : str, optional
        Name of the composed scheme (default ``"<gating>+<b1>+<b2>..."``).

    Returns
    -------
    Scheme
        States: the gating states, then blocked states ``X·b`` (blocker tags in argument order
        of their sites).  Ligands: the gating ligands then the blockers' ligands.  Blocked
        states have conductance 0.  E_rev and temperature are the gating scheme's.  The
        scheme remembers its gating scheme and blockers, so that it can be blocked again.

    Raises
    ------
    ValueError
        No blockers; two blockers with the same name (state tag) or ligand, or a blocker
        named like another's superficial-site tag (``"x_s"``); a blocker ligand that is also
        a gating ligand; ``arm_scaling`` keys that are not transitions of ``scheme``, or
        factors that break microscopic reversibility (a net change of the equilibrium
        constants around a cycle of the blocked arm, or between open states -- or, with a
        two-way closed route, between shut states -- that the blocker binds with the same
        K_B); a composed state name that is already a gating state name; a gating scheme
        without open states; a composition of more than :data:`MAX_COMPOSED_STATES` states
        (counted before unreachable states are dropped).  When ``scheme`` was returned by
        :func:`block`, all of these are checked on the recomposition (blockers of the earlier
        and this call together; the message says so).  Also a ``scheme`` with blocked states
        (a ``·`` in a state name) that :func:`block` has no record of composing: see Notes.
    TypeError
        ``scheme`` is not a Scheme, or a blocker is neither a Blocker nor a library name
        (a list of blockers must be unpacked: ``block(g, *blockers)``).

    Notes
    -----
    Blockers may be added one call at a time: a scheme returned by :func:`block` remembers
    its gating scheme and blockers, and ``block(block(g, a), b)`` recomposes
    ``block(g, a, b)`` -- the same states, transitions, rates and TOML text as the one call:
    ``a`` and ``b`` exclude each other if they have the same ``site``, and the checks above
    (same tag, same ligand, ...) apply across the calls.  The memory is private: it is
    kept by pickling and :func:`copy.deepcopy`, not by :meth:`~ketacore.Scheme.to_toml` /
    :meth:`~ketacore.Scheme.to_dict`, and it is valid only while the scheme's kinetics are
    those composed (a scheme from :meth:`~ketacore.Scheme.with_rates`,
    :meth:`~ketacore.Scheme.from_toml` or :meth:`~ketacore.Scheme.from_dict` has none).  A
    changed name, citation or notes does not matter: the recomposition takes them from the
    gating scheme, as the one call does.

    A ``scheme`` whose state names carry blocker tags (``O·ket``) but no such memory is
    refused (``ValueError``): composing onto it would treat its blocked states as ordinary
    shut gating states, build a second blocker into an already blocked channel
    (``O·ket·mem``, even on one site) and copy the first blocker's binding into the second
    one's arm.  Compose all blockers in one call on the gating scheme, then apply any rate
    changes with :meth:`~ketacore.Scheme.with_rates` on the result.  (A scheme whose state
    names contain ``·`` for another reason is refused too: rename those states.)

    A gating scheme whose blocker-bound states are part of its gating, without tags
    (``kampa2004``, whose Mg2+-bound states are ``UMg`` ... ``OMg``), is composed as it is:
    its Mg2+-bound states get blocked twins too, so composing an open-channel blocker of the
    pore onto ``kampa2004`` gives states such as ``OMg·ket`` with Mg2+ and the blocker in
    one pore, and copies Mg2+ binding into the blocked arm.  Compose pore blockers with a
    gating scheme without Mg2+ and the ``"mg"`` blocker instead.

    Examples
    --------
    >>> import ketacore as kc
    >>> s = kc.block(kc.models.get("destexhe1994_sf"), "ketamine", "mg")
    >>> [x for x in s.states if x.startswith("O")]
    ['O', 'O·ket', 'O·mg']
    """
    from .models import as_scheme
    scheme = as_scheme(scheme)  # a library model name, as everywhere
    if not isinstance(scheme, Scheme):
        raise TypeError(f"scheme must be a ketacore.Scheme or a model name "
                        f"(ketacore.models.available()), got {type(scheme).__name__}")
    bl = _resolve_blockers(blockers)
    if not bl:
        raise ValueError("block() needs at least one blocker")
    memo = _composition_of(scheme)
    if memo is None:
        return _compose(scheme, bl, name)
    # a scheme block() composed: recompose from its gating scheme with all blockers, exactly
    # as one call would (sites, tags and ligands are then checked across the calls)
    allb = list(memo.blockers) + bl
    try:
        return _compose(memo.gating, allb, name, gating_copy=memo.gating)
    except ValueError as e:
        gname = memo.gating.name or "the gating scheme"
        raise ValueError(
            f"block(): {repr(scheme.name) if scheme.name else 'this scheme'} was composed by "
            f"block() from {gname!r} and blockers {[b.name for b in memo.blockers]}, so "
            f"blocking it with {[b.name for b in bl]} composes block({gname!r}, "
            f"{', '.join(repr(b.name) for b in allb)}) in one call: {e}") from None


def _warn_pore_in_gating(scheme: Scheme, bl: list[Blocker]) -> None:
    """UserWarning when a pore blocker is composed onto a gating scheme that has a library pore
    blocker's ligand in its own gating (``kampa2004``'s Mg2+ states ``UMg`` ... ``OMg``): the
    composition gives those states blocked twins (``OMg·ket``, Mg2+ and the drug in one pore),
    so the two drugs do not compete -- ketamine's IC50 on ``kampa2004`` in 1 mM Mg2+ is its
    Mg2+-free 0.77 µM, against 20 µM = K_B (1 + [Mg]/K_Mg) with the ``"mg"`` blocker on
    ``erreger2005_2a`` (helper-103's audit).  Documented in :func:`block`; warned here, where
    the composition is made, because the numbers it gives look plausible."""
    pore = [b for b in bl if b.site == "pore"]
    if not pore:
        return
    own = sorted({x.ligand for x in _LIBRARY.values() if x.site == "pore"} & set(scheme.ligands))
    if own:
        import warnings
        from . import _validate as V_
        warnings.warn(
            f"block(): the gating scheme {scheme.name or 'given'!r} has its own pore blocker "
            f"{own} in its gating, so composing the pore blocker(s) {[b.ligand for b in pore]} "
            f"onto it puts both in one pore (its {own}-bound states get '{SEP}"
            f"{pore[0].name}' twins too): they do not compete, and e.g. Mg2+ does not shift "
            f"the drug's IC50.  For competition at one site compose onto a gating scheme without "
            f"{own} and add the library blocker(s) {own} in the same block() call "
            f"(e.g. block('erreger2005_2a', {pore[0].ligand!r}, 'mg'))", UserWarning,
            stacklevel=V_.user_stacklevel())


def _compose(scheme: Scheme, bl: list[Blocker], name: str | None, *,
             gating_copy: Scheme | None = None) -> Scheme:
    """The composition of :func:`block` (``scheme``: a gating scheme, ``bl``: resolved
    blockers); the result remembers ``gating_copy`` (default a detached copy of ``scheme``)
    and ``bl``."""
    seen_names, seen_lig = set(), {}
    for b in bl:
        if b.name in seen_names:
            raise ValueError(f"two blockers named {b.name!r} (the name is the state tag, "
                             f"'O{SEP}{b.name}'): give one another name with "
                             f".replace(name=...); library variants share their parent's tag, "
                             f"so compose one of them at a time")
        if b.ligand in seen_lig:
            raise ValueError(f"two blockers use the ligand {b.ligand!r} ({seen_lig[b.ligand]!r} "
                             f"and {b.name!r}): each ligand is one drug with one Blocker; a "
                             f"second binding route of the same drug is a field of that "
                             f"Blocker (k_on_closed/k_escape for a closed-channel route, mode "
                             f"'partial_trapping' for a superficial site), and two different "
                             f"drugs need two ligand names")
        if b.ligand in scheme.ligands:
            raise ValueError(f"blocker {b.name!r}: ligand {b.ligand!r} clashes with a ligand of "
                             f"the gating scheme {list(scheme.ligands)}")
        seen_names.add(b.name)
        seen_lig[b.ligand] = b.name
    _warn_pore_in_gating(scheme, bl)
    tags: dict[str, str] = {}
    for b in bl:
        for t, what in ((b.name, f"blocker {b.name!r}"),
                        (f"{b.name}_s", f"the superficial site of blocker {b.name!r}")):
            if t == f"{b.name}_s" and b.mode != "partial_trapping":
                continue
            if t in tags:
                raise ValueError(f"{tags[t]} and {what} would both tag their states "
                                 f"'{SEP}{t}' (a partial-trapping blocker 'x' tags its "
                                 f"superficial site 'x_s'): rename one with .replace(name=...)")
            tags[t] = what
    keys = {f"{t.src}->{t.dst}" for t in scheme.transitions}
    for b in bl:
        bad = set(b.arm_scaling) - keys
        if bad:
            raise ValueError(f"blocker {b.name!r}: arm_scaling keys {sorted(bad)} are not "
                             f"transitions of {scheme.name or 'the gating scheme'}")
    is_open = {s: bool(g > 0) for s, g in zip(scheme.states, scheme.conductance)}
    if not any(is_open.values()):
        raise ValueError("the gating scheme has no open state (conductance > 0)")
    # scaling of each gating transition inside each blocker's deep (blocked) arm
    arm_f = {b.name: _arm_factors(scheme, b, is_open) for b in bl if b.mode != "sequential"}
    for b in bl:
        if b.arm_scaling:
            _check_arm_balance(scheme, b, arm_f[b.name], is_open)

    # sites in order of first appearance; options per site: None or (blocker, "deep"|"sup")
    sites: dict[str, list] = {}
    for b in bl:
        opts = sites.setdefault(b.site, [None])
        opts.append((b, "deep"))
        if b.mode == "partial_trapping":
            opts.append((b, "sup"))
    site_opts = list(sites.values())

    # size before enumerating anything: every occupancy has all gating states, except that a
    # channel sequentially blocked (deep) at any site can only be open
    n_open = sum(is_open.values())
    n_all = math.prod(len(o) for o in site_opts)
    n_no_seq = math.prod(sum(1 for x in o if x is None or x[1] == "sup" or x[0].mode != "sequential")
                         for o in site_opts)
    n_states = n_open * n_all + (scheme.n_states - n_open) * n_no_seq
    if n_states > MAX_COMPOSED_STATES:
        raise ValueError(
            f"block(): composing {scheme.name or 'the gating scheme'} ({scheme.n_states} states) "
            f"with {len(bl)} blockers on {len(site_opts)} sites gives {n_states:,} states (before "
            f"dropping unreachable ones), more than MAX_COMPOSED_STATES = {MAX_COMPOSED_STATES:,} "
            f"(engines use dense K×K matrices, O(K³) per exponential); put mutually exclusive "
            f"blockers on the same site or compose fewer blockers")

    def allowed(g: str, occ: tuple) -> bool:
        return all(o is None or o[1] == "sup" or o[0].mode != "sequential" or is_open[g]
                   for o in occ)

    def tag(o) -> str:
        return o[0].name if o[1] == "deep" else f"{o[0].name}_s"

    def sname(g: str, occ: tuple) -> str:
        return g + "".join(SEP + tag(o) for o in occ if o is not None)

    occs = list(itertools.product(*site_opts))
    nodes = [(g, occ) for occ in occs for g in scheme.states if allowed(g, occ)]
    node_set = set(nodes)
    edges: list[tuple[tuple, tuple, Rate]] = []

    # gating transitions inside each arm
    for occ in occs:
        bound = [o for o in occ if o is not None]
        if any(o[1] == "deep" and o[0].mode == "sequential" for o in bound):
            continue  # a sequentially blocked channel cannot change gating state
        for t in scheme.transitions:
            a, b_ = (t.src, occ), (t.dst, occ)
            if a not in node_set or b_ not in node_set:
                continue
            f = 1.0
            for o in bound:
                if o[1] == "deep":
                    f *= arm_f[o[0].name][(t.src, t.dst)]
            if f == 1.0:
                r = t.rate
            else:
                try:
                    r = t.rate.scaled(f)
                except ValueError as e:
                    raise ValueError(
                        f"block(): gating transition {t.src!r}->{t.dst!r} scaled by {f:g} in the "
                        f"arm of {[o[0].name for o in bound if o[1] == 'deep']} "
                        f"(closing_factor, opening_factor, arm_scaling) is not a valid rate: "
                        f"{e}") from None
            edges.append((a, b_, r))

    # binding / unbinding
    for g, occ in nodes:
        for si, opts in enumerate(site_opts):
            if occ[si] is not None:
                continue
            for o in opts[1:]:
                tgt_occ = occ[:si] + (o,) + occ[si + 1:]
                tgt = (g, tgt_occ)
                if tgt not in node_set:
                    continue
                blk, kind = o
                if kind == "sup":
                    on, off = blk.superficial_on_rate(), blk.superficial_off_rate()
                elif is_open[g]:
                    on, off = blk.on_rate(), blk.off_rate()
                else:
                    on = blk.closed_on_rate() if blk.effective_k_on_closed > 0 else None
                    off = blk.escape_rate() if blk.k_escape > 0 else None
                if on is not None and on.k0 > 0:
                    edges.append(((g, occ), tgt, on))
                if off is not None and off.k0 > 0:
                    edges.append((tgt, (g, occ), off))

    # drop states not reachable from the unblocked gating states
    none_occ = tuple(None for _ in site_opts)
    adj: dict[tuple, list[tuple]] = {}
    for a, b_, _ in edges:
        adj.setdefault(a, []).append(b_)
    reach = {(g, none_occ) for g in scheme.states}
    stack = list(reach)
    while stack:
        x = stack.pop()
        for y in adj.get(x, ()):
            if y not in reach:
                reach.add(y)
                stack.append(y)
    nodes = [n for n in nodes if n in reach]
    names = [sname(*n) for n in nodes]
    first: dict[str, tuple] = {}
    for n, nm in zip(nodes, names):
        if nm in first:
            raise ValueError(_collision_message(scheme, nm, first[nm], n, none_occ))
        first[nm] = n
    # blocked states without a record of their composition (a scheme from block() would have
    # been recomposed by block(); a gating scheme it recorded has no such states)
    blocked = [s for s in scheme.states if SEP in s]
    if blocked:
        raise ValueError(_unrecorded_blocked_states(scheme, blocked, bl))
    trans = [(sname(*a), sname(*b_), r) for a, b_, r in edges if a in reach and b_ in reach]
    g_of = dict(zip(scheme.states, scheme.conductance))
    cond = {sname(g, occ): float(g_of[g]) for g, occ in nodes if occ == none_occ}

    bnames = "+".join(b.name for b in bl)
    cites = "; ".join(f"{b.name}: {b.citation}" + (f" (doi:{b.doi})" if b.doi else "")
                      for b in bl if b.citation)
    notes = (f"Composed by ketacore.blockers.block from gating scheme {scheme.name!r} and "
             f"blockers {[b.name for b in bl]} (modes {[b.mode for b in bl]}, sites "
             f"{[b.site for b in bl]}).  Blocked states do not conduct.")
    out = Scheme(names, trans, cond, scheme.e_rev,
                 list(scheme.ligands) + [b.ligand for b in bl],
                 name=name if name is not None else f"{scheme.name or 'scheme'}+{bnames}",
                 citation="; ".join(x for x in (scheme.citation,
                                                f"blockers -- {cites}" if cites else "") if x),
                 doi=scheme.doi, notes=notes, temperature=scheme.temperature)
    setattr(out, _COMPOSITION_ATTR, _Composition(
        gating_copy if gating_copy is not None else _detached(scheme), tuple(bl),
        _fingerprint(out)))
    return out


# --------------------------------------------------------------------------- Jahr-Stevens
@overload
def jahr_stevens(V: float, mg: float = ...) -> float: ...


@overload
def jahr_stevens(V: np.ndarray, mg: "float | np.ndarray" = ...) -> np.ndarray: ...


@overload
def jahr_stevens(V: "float | np.ndarray", mg: np.ndarray) -> np.ndarray: ...


def jahr_stevens(V: float | np.ndarray, mg: float | np.ndarray = 1 * mM) -> float | np.ndarray:
    """Instantaneous Mg2+ unblock factor B(V) of Jahr & Stevens (1990) -- an APPROXIMATION.

    ``B(V) = 1 / (1 + exp(−0.062 V/mV) · [Mg2+]/3.57 mM)``, the steady-state ratio of the
    macroscopic NMDA conductance with and without Mg2+ (derived from open-channel block that
    leaves gating unchanged, so it is also the fraction of open channels not blocked), assuming
    Mg2+ block equilibrates instantly.  Use it to scale the conductance of a gating model without
    Mg2+; for Mg2+ kinetics compose with the ``"mg"`` blocker (:func:`block`) or use the
    ``kampa2004`` model -- neither reproduces B(V) over the whole range: the kinetic rates give a
    steeper voltage dependence (K_B e-folds at 0.080 /mV vs 0.062 /mV), ``"mg"`` matches only
    near -60 mV, and ``kampa2004`` also lets Mg2+ bind closed channels, so its steady-state
    current ratio is lower still (0.030 at -60 mV, 1 mM; see docs/validation.md).

    Parameters
    ----------
    V : float or ndarray
        Membrane voltage (V).
    mg : float or ndarray, default 1e-3
        External Mg2+ concentration (M).

    Returns
    -------
    float or ndarray
        B in [0, 1].

    References
    ----------
    Jahr CE, Stevens CF (1990) Voltage dependence of NMDA-activated macroscopic conductances
    predicted by single-channel kinetics. J Neurosci 10:3178-3182,
    doi:10.1523/JNEUROSCI.10-09-03178.1990.
    """
    Va, mga = V_.real_array("V", V, "V"), V_.real_array("mg", mg, "M")
    try:
        np.broadcast_shapes(Va.shape, mga.shape)
    except ValueError:
        raise ValueError(f"jahr_stevens: V (shape {Va.shape}) and mg (shape {mga.shape}) must "
                         f"have broadcastable shapes") from None
    if np.any(~np.isfinite(Va)) or np.any(np.abs(Va) > V_.MAX_ABS_VOLTAGE):
        raise ValueError("V must be finite and in volts (|V| <= 1 V)")
    if np.any(~np.isfinite(mga)) or np.any(mga < 0) or np.any(mga > V_.MAX_CONCENTRATION):
        raise ValueError(f"mg must be a finite concentration in [0, {V_.MAX_CONCENTRATION:g}] M "
                         f"(write 1 * ketacore.units.mM)")
    V_.implausible_concentrations("mg", mga)   # UnitsWarning above 100 mM
    out = 1.0 / (1.0 + np.exp(-0.062 * (Va / mV)) * (mga / (3.57 * mM)))
    return float(out) if out.ndim == 0 else out


# --------------------------------------------------------------------------- library
_GILLING = ("Gilling KE, Jatzke C, Hechenberger M, Parsons CG (2009) Potency, voltage-"
            "dependency, agonist concentration-dependency, blocking kinetics and partial "
            "untrapping of the uncompetitive NMDA receptor channel blocker memantine at human "
            "NMDA (GluN1/GluN2A) receptors. Neuropharmacology 56:866-875")
_MEALING = ("Mealing GAR, Lanthorn TH, Murray CL, Small DL, Morley P (1999) Differences in "
            "degree of trapping of low-affinity uncompetitive N-methyl-D-aspartic acid receptor "
            "antagonists with similar kinetics of block. J Pharmacol Exp Ther 288:204-210 "
            "(PMID 9862772, no DOI)")

# --- calibrated by docs/calibrate_blockers.py (output pasted here; rerun it to reproduce) ---
# BEGIN CALIBRATED
_KET = dict(k_on=1193180.0, k_off=7.96719, k_escape=0.00097329)
_MEM = dict(k_on=243737.0, k_off=4.70679, delta_on=0.49645, delta_off=0.49645,
            superficial_k_on=180443.0, superficial_k_off=1.32258,
            k_escape=0.00140589)
_MK801 = dict(k_on=25000000.0, k_off=0.0314519)
_AMAN = dict(k_on=3240500.0, k_off=2043.82, closing_factor=1.53605,
             opening_factor=0.772747)
_KET_MEALING = dict(k_on=1193180.0, k_off=26.2369, k_escape=0.000419866)
_MEM_MEALING = dict(k_on=243737.0, k_off=11.2806, k_escape=1.31366e-17)
_KET_CLOSED = dict(k_on_closed=187407.0)
# END CALIBRATED

_LIBRARY: dict[str, Blocker] = {}


def _register(key: str, b: Blocker) -> None:
    _LIBRARY[key] = b


_register("ketamine", Blocker(
    name="ket", ligand="ketamine", z=1.0, delta_on=0.395, delta_off=0.395, mode="trapping",
    **_KET, closed_route="balanced",
    citation=_GILLING + "; " + _MEALING,
    doi="10.1016/j.neuropharm.2009.01.012",
    notes=("Full trapping open-channel blocker (blocked arm copies gating).  Open-channel "
           "k_on/k_off (given at 0 V) and k_escape were fitted by docs/calibrate_blockers.py "
           "on erreger2005_2a (GluN1/GluN2A, as Gilling 2009), 1 mM glutamate, -70 mV, 22 C, "
           "to Gilling 2009 (IC50 0.71 uM; tau_on 0.58 s and tau_off 4.5 s at 10 uM) and the "
           "Mealing 1999 trapped fraction (86 % after 120 s agonist-free wash).  Gilling's "
           "delta = 0.79 with z = +1; how delta splits between on and off rates is not "
           "reported: split evenly (symmetric Eyring barrier), a documented choice.  Mealing's "
           "80 % block at 10 uM is NOT met (model ~93 %): with the exact identity IC50 = K_B it "
           "implies IC50 ~2.5 uM, 3.5x Gilling's, in a different preparation (rat cortical "
           "neurons, NMDA): the variant 'ketamine_mealing1999' meets it.  Open-channel rates are Po-corrected macroscopic rates, so on a "
           "gating model with a different steady-state Po the kinetics (not the IC50) differ.  "
           "The slow escape from shut blocked states comes with its reverse, a closed-channel "
           "route k_on_closed = k_escape/K_B (closed_route='balanced'; ~1.3e3 /M/s at -70 mV), "
           "so every composition is in detailed balance and the equilibrium IC50 is exactly "
           "K_B at any agonist concentration (with a one-way escape it rose to ~2.4x K_B at "
           "0.1 uM glutamate); the calibration was run with it in place.  It also blocks resting "
           "channels slowly (1 uM: tau ~7 min at -70 mV).  No fitted closed-channel/membrane "
           "route by default (reference open question 1; variant "
           "'ketamine_closed_route').  Limitation: tau_on matches Gilling's only as a "
           "single-exponential fit.  On erreger2005_2a, ~83 % of receptors sit in the slow "
           "desensitized state at steady state, so the onset at 10 uM is biphasic (half the "
           "block in ~40 ms, the rest over ~1.4 s) where Gilling saw one 0.58 s exponential "
           "(docs/validation.md).")))

_register("memantine", Blocker(
    name="mem", ligand="memantine", z=1.0, mode="partial_trapping", **_MEM,
    closed_route="balanced",
    citation=(_GILLING + "; Blanpied TA, Boeckman FA, Aizenman E, Johnson JW (1997) Trapping "
              "channel block of NMDA-activated responses by amantadine and memantine. "
              "J Neurophysiol 77:309-323 (doi:10.1152/jn.1997.77.1.309); Kotermanski SE, Wood "
              "JT, Johnson JW (2009) Memantine binding to a superficial site on NMDA receptors "
              "contributes to partial trapping. J Physiol 587:4589-4604 "
              "(doi:10.1113/jphysiol.2009.176297); " + _MEALING),
    doi="10.1016/j.neuropharm.2009.01.012",
    notes=("Partial trapping (Kotermanski, Wood & Johnson 2009, doi:10.1113/jphysiol.2009.176297): "
           "deep trapping site + superficial non-trapping site (binds in every gating state -- "
           "'whether or not channels are open', Kotermanski 2009 Fig. 5 -- is voltage-independent "
           "here -- Wilcox et al. 2022 Nat Commun doi:10.1038/s41467-022-31817-z: memantine binds "
           "'with weak apparent membrane voltage dependence' to that second site; no delta for it "
           "was found -- and blocks conduction, an assumption of this implementation: both sites "
           "are called inhibitory, and a site that passed current could not give the partial "
           "untrapping).  CONSEQUENCE, NOT CHECKED AGAINST DATA: the equilibrium IC50 is "
           "1/(1/K_B(V) + 1/K_s), capped by K_s ~7.3 uM at every voltage, so IC50(V) flattens "
           "above -40 mV (apparent z*delta 0.83 over -100..-40 mV but 0.30 over -40..+40 mV; "
           "IC50 5.3 uM at 0 mV, 6.8 uM at +40 mV) and memantine is more potent than ketamine "
           "above about -12 mV (3.4x at +40 mV).  No memantine IC50 at -40 mV or above without "
           "Mg2+, and no memantine delta, was found in the reference material (helper-111's "
           "search, 2026-11-28); a weak superficial-site delta (0.2-0.5) would lift IC50(+40 mV) "
           "to 14-36 uM without changing the -70 mV calibration.  Fitted by "
           "docs/calibrate_blockers.py (fit_memantine) on erreger2005_2a (GluN1/GluN2A, as "
           "Gilling 2009), 1 mM glutamate, -70 mV, 22 C: deep-site k_on/k_off, superficial "
           "K_s (~7.3 uM) and k_off (~1.32 /s) and k_escape, to IC50 ~1 uM (Gilling 2009, "
           "doi:10.1016/j.neuropharm.2009.01.012; model ~1.07 uM), untrapped fraction 1/6 after "
           "a 5 s agonist-free wash (Blanpied 1997, doi:10.1152/jn.1997.77.1.309), 71 % still "
           "trapped after 120 s (Mealing 1999), escape tau 0.79 s after agonist removal "
           "(Kotermanski 2009; model ~0.78 s) -- all met -- and Gilling's two-exponential "
           "onset/offset at 10 uM (273 ms 69 % + 2756 ms 31 %; 415 ms 38 % + 5107 ms 62 %).  "
           "The kinetics are a compromise, all four components MISSED (tau +-40 %, weight "
           "+-10 pp): onset ~144 ms (82 %) + ~2.46 s (18 %), offset ~0.59 s (28 %) + ~10.5 s "
           "(72 %).  Cause: erreger2005_2a holds ~83 % of receptors in its slow desensitized "
           "state D2 (left at 1.01 /s), which sets the slow phases, and with IC50 ~1 uM the "
           "block of the active minority is ~9x faster than its unblock, whereas Gilling's fast "
           "onset and offset are within 1.5x; a slower deep site slows the onset but stretches "
           "the slow offset.  Deep-site delta ~1.0 (z = +1, split evenly) was solved so that "
           "the apparent z*delta of IC50(V), -100..-40 mV, is 0.83 (ketamine 0.79): Gilling "
           "reports memantine's voltage dependence as stronger than ketamine's, but no "
           "memantine delta was found, so the value is chosen ONLY to order memantine above "
           "ketamine (the voltage-independent superficial site dilutes the deep delta).  "
           "Mealing's 81 % block at 10 uM is not met (~90 %: IC50 ~1 uM; variant "
           "'memantine_mealing1999').  Open-channel rates are Po-corrected, so on another "
           "gating model the kinetics (not the IC50) differ.  The deep-site escape is balanced "
           "by its closed route (closed_route='balanced', k_on_closed = k_escape/K_B), so the "
           "equilibrium IC50 = 1/(1/K_B + 1/K_s) at any agonist concentration; the "
           "calibration was run with it in place.")))

_register("mk801", Blocker(
    name="mk801", ligand="mk801", z=1.0, delta_on=0.0, delta_off=0.97, mode="trapping",
    **_MK801,
    citation=("Huettner JE, Bean BP (1988) Block of N-methyl-D-aspartate-activated current by "
              "the anticonvulsant MK-801: selective binding to open channels. PNAS "
              "85:1307-1311"),
    doi="10.1073/pnas.85.4.1307",
    notes=("Full trapping.  k_off (open channel, at 0 V) fitted by docs/calibrate_blockers.py "
           "so that recovery with continuous agonist on erreger2005_2a at -70 mV has tau = 90 "
           "min (Huettner & Bean 1988).  delta_off = 0.97 (z = 1) from the 90 min -> 2 min "
           "speed-up between -70 and +30 mV (derived: V_T ln(45)/100 mV at 22 C); delta_on = 0 "
           "(unknown).  k_on = 2.5e7 /M/s at 0 V is an UNCALIBRATED order-of-magnitude "
           "placeholder (no verified source in the reference material).")))

_register("amantadine", Blocker(
    name="aman", ligand="amantadine", z=1.0, delta_on=0.4, delta_off=0.4, mode="trapping",
    **_AMAN,
    citation=("Blanpied TA, Boeckman FA, Aizenman E, Johnson JW (1997) J Neurophysiol "
              "77:309-323 (doi:10.1152/jn.1997.77.1.309); Blanpied TA, Clarke RJ, Johnson JW "
              "(2005) Amantadine inhibits NMDA receptors by accelerating channel closure during "
              "channel block. J Neurosci 25:3312-3322 (doi:10.1523/JNEUROSCI.4262-04.2005, "
              "PMID 15800186)"),
    doi="10.1523/JNEUROSCI.4262-04.2005",   # the calibration's source (Blanpied 2005)
    notes=("Trapping mode (the drug leaves only from open states) with a modified blocked arm.  "
           "With amantadine's fast unblock, blocked channels that reopen during the slow "
           "GluN2B deactivation release it, so after an agonist-free wash only ~17 % of the "
           "block stays trapped on erreger2005_2b.  That is partial trapping, as the "
           "literature classes amantadine; the degree was not calibrated.  k_off(-67 mV), closing_factor and "
           "opening_factor fitted by docs/calibrate_blockers.py (fit_amantadine) on "
           "erreger2005_2b (GluN1/GluN2B, as Blanpied 2005), 30 uM glutamate standing in for "
           "30 uM NMDA, 22 C, to the Blanpied 2005 Table 1 relaxation after a -67 -> +40 mV "
           "jump in 100 uM (0.279 ms 53 %, 5.17 ms 28 %, 153 ms 19 %; three-exponential fit "
           "of the exact Po over 1 s), with the equilibrium IC50 at -67 mV on that model held "
           "at 39 uM (Blanpied 1997).  Blocked channels close ~1.5x faster and open ~0.77x as "
           "fast (accelerated closure, Blanpied 2005), so IC50 = K_B/(Po + c/o (1 - Po)) < K_B "
           "and depends on the gating model's Po: 39 uM on erreger2005_2b, not on other "
           "models.  Lands: fast tau and all three amplitudes within tolerance; middle tau "
           "~+20 %; slow tau MISSED (~82 ms vs 153 ms): the copied 2B gating has no slower "
           "re-opening path of the right weight.  delta 0.8 split evenly is a placeholder "
           "(not constrained by a single jump).  The model's gating is voltage-independent, "
           "so the control relaxation (0.338 ms, 14.5 ms) is absent.")))

_register("ketamine_mealing1999", Blocker(
    name="ket", ligand="ketamine", z=1.0, delta_on=0.395, delta_off=0.395, mode="trapping",
    **_KET_MEALING, closed_route="balanced",
    citation=_MEALING, doi="",
    notes=("Preparation-specific VARIANT for native receptors (cultured rat cortical neurons, "
           "NMDA; Mealing 1999) -- not the default, which is Gilling's human GluN1/GluN2A.  "
           "delta and the open-channel k_on of the default kept; k_off and k_escape fitted by "
           "docs/calibrate_blockers.py (fit_mealing_variant) on erreger2005_2a, 1 mM "
           "glutamate, -70 mV, to 80 % block after 30 s of 10 uM and 86 % still trapped after "
           "a 120 s agonist-free wash (escape balanced by its closed route, "
           "closed_route='balanced', as the default).  Implied IC50 (= K_B) 2.5 uM at -70 mV, "
           "3.5x Gilling's 0.71 uM; tau_on/tau_off at 10 uM ~0.43 s / ~2.0 s.")))

_register("memantine_mealing1999", Blocker(
    name="mem", ligand="memantine", z=1.0, delta_on=_MEM["delta_on"],
    delta_off=_MEM["delta_off"], mode="partial_trapping",
    superficial_k_on=_MEM["superficial_k_on"],
    superficial_k_off=_MEM["superficial_k_off"], **_MEM_MEALING, closed_route="balanced",
    citation=_MEALING, doi="",
    notes=("Preparation-specific VARIANT for native receptors (Mealing 1999), not the default.  "
           "delta, deep-site k_on and the superficial site of the default kept; deep-site k_off "
           "and k_escape fitted by docs/calibrate_blockers.py (fit_mealing_variant) to 81 % "
           "block after 30 s of 10 uM and 71 % trapped after 120 s: lands ~82.4 % and ~68.4 % "
           "(both within +-5 pp; k_escape runs to ~0, the superficial site alone releasing "
           "enough; closed_route='balanced' as the default, so its closed route is ~0 too).  "
           "Implied IC50 ~2.1 uM at -70 mV.")))

_register("ketamine_closed_route", Blocker(
    name="ket", ligand="ketamine", z=1.0, delta_on=0.395, delta_off=0.395, mode="trapping",
    **{**_KET, **_KET_CLOSED},
    citation=("Orser BA, Pennefather PS, MacDonald JF (1997) Multiple mechanisms of ketamine "
              "blockade of N-methyl-D-aspartate receptors. Anesthesiology 86:903-917; " + _GILLING),
    doi="",
    notes=("VARIANT, not the default: the default ketamine plus a closed-channel / membrane "
           "route onto shut states (k_on_closed; reference open question 1) fitted by "
           "docs/calibrate_blockers.py (fit_closed_route) to the Orser 1997 cell-attached "
           "ratios (Po 24 % at 1 uM, 53 % at 0.1 uM, opening frequency 44 % at 1 uM) on "
           "erreger2005_2a at -70 mV and 3 uM glutamate (control Po 0.057 ~ Orser's 0.058).  "
           "k_escape is the default's but this explicit k_on_closed replaces the default's "
           "balanced closed route (closed_route=None), so the closed route is NOT in detailed "
           "balance with the open-channel site (k_escape/k_on_closed << K_B): a "
           "phenomenological non-equilibrium steady state, and IC50 < K_B.  Improves Po at 1 uM (0.43 -> ~0.30) "
           "but not the 0.1 uM point (~0.80 vs 0.53; Orser's data imply a Hill slope ~0.55) "
           "nor the mean open time (0.99 vs 0.68, set by the open-channel k_on, which would "
           "need ~58x Gilling's Po-corrected value, which breaks Gilling's tau_on/tau_off; "
           "see docs/calibrate_blockers.out).  Orser volume/pages from memory, unverified; "
           "DOI not recorded.")))

_CLARKE_JOHNSON = ("Clarke RJ, Johnson JW (2008) Voltage-dependent gating of NR1/2B NMDA "
                   "receptors. J Physiol 586, doi:10.1113/jphysiol.2008.160622 (ModelDB 145836 "
                   "SynNMDA16.mod)")
# Why the Mg2+ blockers compose in trapping mode: every kinetic Mg2+ scheme of the reference
# (Kampa 2004, Vargas-Caballero & Robinson 2004, Clarke & Johnson 2008; reference 1c, 1e, 2c)
# lets a Mg2+-blocked channel close.  Sequential ("foot in the door") block instead holds each
# blocked channel open, so at -60 mV, 1 mM Mg2+ every burst lasts ~12x longer with its open time
# unchanged: a synaptic NMDA current keeps ~97-99 % of its charge and decays ~8x more slowly,
# against the ~8 % that open-channel block with these rates (and Jahr-Stevens B(-60 mV) =
# 0.0796) give; the 'kampa2004' model, whose Mg2+ also binds closed states, keeps ~1.4 %.
_MG_MODE = ("Trapping mode with the gating copied into the blocked arm, the symmetric trapping of "
            "Clarke & Johnson 2008 (reference 1e): a Mg2+-blocked channel closes and loses "
            "glutamate with the normal rates and Mg2+ leaves only from the open state, so a "
            "synaptic current at -60 mV keeps about K_B/(K_B+[Mg]) of its charge (~8 % Kampa, "
            "~7 % Ascher-Nowak rates, 1 mM).  Whether Mg2+ is really "
            "trapped is not demonstrated (reference 2c); with its microsecond unblock the "
            "choice matters little once channels reopen.  For Vargas-Caballero & Robinson's "
            "asymmetric form use .replace(closing_factor=3); for foot-in-the-door block "
            ".replace(mode='sequential').")
_KAMPA_CIT = ("Kampa BM, Clements J, Jonas P, Stuart GJ (2004) Kinetics of Mg2+ unblock of NMDA "
              "receptors: implications for spike-timing dependent synaptic plasticity. J Physiol "
              "556:337-345 (ModelDB 50207 NMDA_Mg.mod)")
_register("mg_kampa2004", Blocker(
    name="mg", ligand="mg", z=2.0, delta_on=0.8, delta_off=0.2, v_ref=40 * mV,
    thermal_voltage=25 * mV, mode="trapping", k_on=5e4, k_off=12800.0,
    citation=_KAMPA_CIT + "; " + _CLARKE_JOHNSON, doi="10.1113/jphysiol.2003.058842",
    notes=("Open-state Mg2+ rates of Kampa 2004 exactly as in the .mod: k_on 5e4 /M/s and "
           "k_off 12800 /s at +40 mV, exp(-/+ 2*{0.8,0.2}*(V - 40 mV)/25 mV) with a fixed 25 mV.  "
           + _MG_MODE + "  Kampa's Mg2+ binding to closed states and modified blocked gating "
           "are in the 'kampa2004' model, not here.  Steady-state unblocked fraction at 1 mM "
           "Mg2+ (exact equilibrium; with the gating copied the open-channel ratio O/(O+O·mg) "
           "equals the whole-current ratio Po(Mg)/Po(0), K_B/(K_B+[Mg])): -80 mV 0.0170, -60 mV "
           "0.0791, -40 mV 0.298, -20 mV 0.678, 0 mV 0.913, vs Jahr-Stevens B(V) (a "
           "macroscopic current ratio) 0.0244, 0.0796, 0.230, 0.508, 0.781.  K_B(V) e-folds at "
           "0.080 /mV vs Jahr-Stevens' 0.062 /mV, so the match holds only near -60 mV (-0.7 %): "
           "-30 % at -80 mV, +30 % at -40 mV, +34 % at -20 mV, +17 % at 0 mV "
           "(docs/validation.md).  DOI not verified.")))

_register("mg_ascher_nowak1988", Blocker(
    name="mg", ligand="mg", z=2.0, delta_on=25.0 / (2 * 17.0), delta_off=25.0 / (2 * 47.0),
    thermal_voltage=25 * mV, mode="trapping", k_on=6.1e5, k_off=5400.0,
    citation=("Ascher P, Nowak L (1988) The role of divalent cations in the N-methyl-D-aspartate "
              "responses of mouse central neurones in culture. J Physiol 399:247-266"),
    doi="10.1113/jphysiol.1988.sp017078",
    notes=("k_on = 6.1e5 /M/s * exp(-V/17 mV), k_off = 5400 /s * exp(V/47 mV) (22 C), written "
           "as z = 2 with delta_on = 25/34, delta_off = 25/94 and V_T = 25 mV (the same "
           "exponentials).  The 610 /mM/ms on-rate of one NEURON file is a unit slip (reference "
           "open question 6).  " + _MG_MODE + "  Steady-state unblocked fraction at 1 mM Mg2+ "
           "(open-channel ratio = whole-current ratio Po(Mg)/Po(0) here, K_B/(K_B+[Mg])): "
           "-80 mV 0.0144, -60 mV 0.0675, -40 mV 0.264, -20 mV 0.641, 0 mV 0.899, vs "
           "Jahr-Stevens B(V) 0.0244, 0.0796, 0.230, 0.508, 0.781: K_B(V) e-folds at 0.080 /mV "
           "vs 0.062 /mV (crossing near -50 mV), -41 % at -80 mV, -15 % at -60 mV, +26 % at "
           "-20 mV (docs/validation.md).  DOI not verified.")))

#: Aliases: ``"mg"`` is the Kampa 2004 set (closest to Jahr-Stevens at -60 mV only; its
#: voltage dependence is steeper, see its notes).
_ALIASES = {"mg": "mg_kampa2004"}


def available() -> tuple[str, ...]:
    """Names of the library blockers (aliases included: ``"mg"`` → ``"mg_kampa2004"``)."""
    return tuple(_LIBRARY) + tuple(_ALIASES)


def get(name: str) -> Blocker:
    """A library :class:`Blocker` (immutable; use :meth:`Blocker.replace` to vary it).

    Parameters
    ----------
    name : str
        Name of a library blocker or an alias (``"mg"`` is ``"mg_kampa2004"``); see
        :func:`available`.

    Returns
    -------
    Blocker
        The library instance (shared: it is immutable).

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        Unknown name (the message lists the available ones).
    """
    b = _peek(name)
    key = _ALIASES.get(name, name)
    if key in _UNCALIBRATED and key not in _WARNED_UNCALIBRATED:
        _WARNED_UNCALIBRATED.add(key)
        import warnings
        warnings.warn(f"blocker {key!r}: {_UNCALIBRATED[key]} (warned once per process)",
                      UserWarning, stacklevel=V_.user_stacklevel())
    return b


def _peek(name: str) -> Blocker:
    """The library blocker ``name`` (an alias too) without :func:`get`'s once-per-process
    warning about uncalibrated rates: for ketacore's own scans of the library (which ligand is
    whose, listings), where the user has not chosen the blocker."""
    if not isinstance(name, str):
        raise TypeError(f"blocker name must be a string, got {type(name).__name__}")
    try:
        return _LIBRARY[_ALIASES.get(name, name)]
    except KeyError:
        raise ValueError(f"unknown blocker {name!r}; available: {list(available())}") from None


def uncalibrated(name: str) -> "str | None":
    """What is not calibrated in library blocker ``name`` (text), or None when every rate is
    (MK-801's k_on is an order-of-magnitude placeholder).

    Raises
    ------
    TypeError, ValueError
        As :func:`get`: ``name`` not a string, or not a library blocker (a misspelt name is
        not read as "calibrated")."""
    _peek(name)
    return _UNCALIBRATED.get(_ALIASES.get(name, name))


#: Library blockers with a rate constant not calibrated against data, and what that leaves
#: uncalibrated: :func:`get` warns once per process, so that a number computed from it (an
#: IC50, a block onset) is not read as a prediction.
_UNCALIBRATED = {
    "mk801": ("k_on (2.5e7 /M/s at 0 V) is an UNCALIBRATED order-of-magnitude placeholder, so "
              "its potency (equilibrium K_B(-70 mV) = 0.087 nM) and block onset are not "
              "calibrated; reported IC50s are ~10-40 nM (GluN1/GluN2A-D at -40 mV, Dravid 2007, "
              "read from a secondary table, unverified).  Its recovery kinetics are calibrated "
              "(tau 90 min at -70 mV, 2 min at +30 mV; Huettner & Bean 1988)"),
}
_WARNED_UNCALIBRATED: set = set()


__all__ = ["Blocker", "block", "jahr_stevens", "get", "available", "uncalibrated", "MODES",
           "MAX_COMPOSED_STATES"]
