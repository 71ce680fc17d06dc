"""Pharmacology experiments on blocked channel schemes (``kc.experiments``).

Each function composes a gating scheme with a blocker (:func:`ketacore.block`), runs the
experiment pharmacologists run, and returns a small frozen result object with arrays, a table
(``to_frame()``: a pandas DataFrame when pandas is installed, else a dict of columns), a short
text ``summary()`` and a ``plot(ax=None)`` (matplotlib, optional, imported on use).

=====================  ===================================================================
:func:`ic50`           inhibition curve and Hill fit, steady-state (exact equilibrium theory)
                       or peak (protocol)
:func:`woodhull`       IC50 against voltage; fitted zδ and K_d(0) (Woodhull 1973)
:func:`block_kinetics` onset and recovery time constants at one concentration
:func:`trapping`       agonist → agonist + blocker → wash with neither → agonist again
:func:`use_dependence` block accumulated under glutamate pulse trains at several frequencies,
                       and its persistence after the drug is gone
:func:`iv_curve`       current- and conductance-voltage relation with and without a blocker,
                       fractional block, Woodhull fit of K(V), Jahr-Stevens B(V) for Mg2+
:func:`voltage_jump`   relaxation of the current after a voltage jump in continued agonist and
                       blocker (Mg2+ unblock): exact Q-matrix components and an exponential fit
=====================  ===================================================================

Deterministic by default (``method="exact"``): the master equation is solved exactly
(:func:`ketacore.solve`) and equilibria come from :mod:`ketacore.theory`.  With
``method="stochastic"`` the same protocols are run with :func:`ketacore.simulate`
(``n_channels`` independent channels, ``n_trials`` trials, ``rng`` as in SPEC 7) and every
figure is reported as the mean over trials ± its standard error (SE = sample SD/√n_trials),
except fitted parameters: an exponential fitted to the trial-mean trace (time constants,
:func:`block_kinetics`, :func:`trapping`) or a Hill equation fitted to the I/I0 of the trial
means (:func:`ic50`, and so each IC50 of :func:`woodhull`), whose SE is the delete-one
jackknife SE over trials (the whole fit repeated with each trial left out).
Where an experiment has several phases that are simulated separately, each stochastic phase
starts from the exact occupancy distribution at the start of that phase; for independent
channels this is the same distribution a continued simulation would have, but trial-to-trial
correlations between phases are not kept (SEs of ratios across phases then use the delta
method on independent means).

Conventions used throughout
---------------------------
* SI units: s, V, M, S.  Use :mod:`ketacore.units` (``10 * uM``, ``-70 * mV``).
* *Fraction of control* (``I/I0``) is the ratio of the mean channel conductance
  ``Σ p_i g_i`` with the blocker to that without it, at the same voltage, so it is a current
  ratio (the driving force cancels) and sublevels count with their conductance.
* *Blocked occupancy* is the probability of being in any state carrying the blocker
  (deep or superficial site).
* ``agonist`` is the mapping of gating-scheme ligand concentrations (M) during agonist
  application (default ``{"glutamate": 1 mM}``); ``background`` holds concentrations kept
  constant throughout (e.g. ``{"mg": 1 mM}`` with ``also=["mg"]``); ``also`` lists further
  blockers composed together with the studied one (same-site blockers exclude each other).

References
----------
Woodhull AM (1973) Ionic blockage of sodium channels in nerve. J Gen Physiol 61:687-708,
doi:10.1085/jgp.61.6.687.

Huettner JE, Bean BP (1988) Block of N-methyl-D-aspartate-activated current by the
anticonvulsant MK-801: selective binding to open channels. PNAS 85:1307-1311,
doi:10.1073/pnas.85.4.1307.

Blanpied TA, Boeckman FA, Aizenman E, Johnson JW (1997) Trapping channel block of
NMDA-activated responses by amantadine and memantine. J Neurophysiol 77:309-323,
doi:10.1152/jn.1997.77.1.309.

Mealing GAR, Lanthorn TH, Murray CL, Small DL, Morley P (1999) Differences in degree of
trapping of low-affinity uncompetitive N-methyl-D-aspartic acid receptor antagonists with
similar kinetics of block. J Pharmacol Exp Ther 288:204-210 (PMID 9862772).

Jahr CE, Stevens CF (1990) Voltage dependence of NMDA-activated macroscopic conductances
predicted by single-channel kinetics. J Neurosci 10:3178-3182,
doi:10.1523/JNEUROSCI.10-09-03178.1990.

Kampa BM, Clements J, Jonas P, Stuart GJ (2004) Kinetics of Mg2+ unblock of NMDA receptors:
implications for spike-timing dependent synaptic plasticity. J Physiol 556:337-345,
doi:10.1113/jphysiol.2003.058842.

Blanpied TA, Clarke RJ, Johnson JW (2005) Amantadine inhibits NMDA receptors by accelerating
channel closure during channel block. J Neurosci 25:3312-3322,
doi:10.1523/JNEUROSCI.4262-04.2005.

Gilling KE, Jatzke C, Hechenberger M, Parsons CG (2009) Potency, voltage-dependency, agonist
concentration-dependency, blocking kinetics and partial untrapping of the uncompetitive NMDA
receptor channel blocker memantine at human NMDA (GluN1/GluN2A) receptors.
Neuropharmacology 56:866-875, doi:10.1016/j.neuropharm.2009.01.012.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from . import _validate as V_
from .protocol import Protocol, Step, pulse_train
from .scheme import Scheme
from .solve import solve
from .units import FARADAY, GAS_CONSTANT, mM, mV, ms, s, uM

__all__ = ["ic50", "woodhull", "block_kinetics", "trapping", "use_dependence", "iv_curve",
           "voltage_jump", "IC50Result", "WoodhullResult", "BlockKineticsResult",
           "TrappingResult", "UseDependenceResult", "IVResult", "VoltageJumpResult", "hill",
           "METHODS"]

#: Allowed values of ``method``.
METHODS = ("exact", "stochastic")
#: Largest number of output grid points of one protocol run (the trace of one phase).
MAX_PHASE_SAMPLES = 10_000_000
#: Largest number of agonist pulses :func:`use_dependence` delivers over all its trains
#: (about 10 µs each for the exact solver; the protocol holds two steps per pulse).
MAX_PULSES = 2_000_000

#: Longest experiment phase (s) taken without a warning: a phase given longer than this (1 h)
#: is far beyond the protocols of the cited papers (seconds to minutes) and is most often a
#: duration written in milliseconds (``t_block=30000`` for 30 s): a UserWarning names it.
LONG_PHASE = 3600.0

_DEFAULT_AGONIST = {"glutamate": 1 * mM}


# =========================================================================== helpers
def hill(c: Any, ic50: float, n_h: float) -> np.ndarray:
    """Hill inhibition curve ``I/I0 = 1 / (1 + (c/IC50)^nH)``.

    Parameters
    ----------
    c : array_like
        Blocker concentration (M), >= 0 (``inf`` gives 0).
    ic50 : float
        Half-inhibitory concentration (M), finite and > 0.
    n_h : float
        Hill coefficient (dimensionless), finite and > 0.

    Returns
    -------
    ndarray
        Fraction of the current left, ``I/I0`` (dimensionless, in [0, 1]), with the shape
        of ``c``.

    Raises
    ------
    ValueError, TypeError
        If ``c`` holds a negative or NaN concentration, or ``ic50`` or ``n_h`` is not a
        finite real number > 0.
    """
    ic50 = V_.real("ic50", ic50, positive=True)
    n_h = V_.real("n_h", n_h, positive=True)
    c = V_.real_array("c", c)
    if np.any(np.isnan(c)) or np.any(c < 0):
        raise ValueError("c must be concentrations >= 0 (M), without NaN")
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + (c / ic50) ** n_h)


def _grid_points(what: str, duration: float, dt: float) -> int:
    """Grid points of a run of ``duration`` (s) sampled every ``dt`` (s); ValueError naming
    ``what`` beyond :data:`MAX_PHASE_SAMPLES`."""
    if not dt > 0:
        raise ValueError(f"{what}: the grid step is {float(dt):g} s (the duration is too short "
                         "for its grid)")
    n = duration / dt + 1.0
    if not n <= MAX_PHASE_SAMPLES:
        raise ValueError(f"{what}: {duration:g} s on a grid of {dt:g} s is about {n:.3g} "
                         f"samples, more than {MAX_PHASE_SAMPLES:.0e}; use a coarser grid or a "
                         "shorter duration")
    return int(n)


def _warn_long(fn: str, **durations: Any) -> None:
    """One UserWarning for the call of experiment ``fn`` when any of its own duration
    parameters (s) exceeds :data:`LONG_PHASE`, naming each; values that are not finite real
    numbers are left to the validation that refuses them."""
    long = []
    for name, x in durations.items():
        try:
            v = float(x)
        except (TypeError, ValueError, OverflowError):
            continue
        if isinstance(x, bool) or not math.isfinite(v) or not v > LONG_PHASE:
            continue
        long.append((name, v))
    if not long:
        return
    what = ", ".join(f"{name}={v:g} s ({v / 3600:.3g} h)" for name, v in long)
    first, v = long[0]
    warnings.warn(
        f"{fn}: {what} {'is' if len(long) == 1 else 'are'} longer than "
        f"{LONG_PHASE / 3600:g} h; durations are in seconds -- if milliseconds were meant, "
        f"write them with ketacore.units.ms (e.g. {first}={v:g} * ms = {v * ms:g} s)",
        UserWarning, stacklevel=3)


def _frozen(a: Any, dtype=float) -> np.ndarray:
    out = np.array(a, dtype=dtype)
    out.setflags(write=False)
    return out


from ._validate import plain as _plain  # noqa: E402  (one rule for numbers in messages)


def _blocker(b: Any, name: str = "blocker"):
    from . import blockers as B
    if isinstance(b, str):
        return B.get(b)
    if not isinstance(b, B.Blocker):
        raise TypeError(f"{name} must be a ketacore.blockers.Blocker or a library name "
                        f"({list(B.available())}), got {type(b).__name__}")
    return b


def _gating(g: Any) -> Scheme:
    from .models import as_scheme
    g = as_scheme(g)
    if not isinstance(g, Scheme):
        raise TypeError(f"gating must be a ketacore.Scheme or a model name, got "
                        f"{type(g).__name__}")
    return g


def _temperature(value: Any) -> float | None:
    """The experiment ``temperature`` (K), or None (the gating scheme's own temperature),
    checked by :func:`ketacore._validate.temperature` (which gives the Celsius conversion as
    advice for a value such as 35)."""
    return None if value is None else V_.temperature("temperature", value)


def _temperature_text(T: float) -> str:
    """A temperature (K) as text in °C, ``35.0 °C`` (the unit experimentalists quote)."""
    return f"{T - 273.15:.1f} °C"


def _conc_map(name: str, m: Any, allowed: Sequence[str], hint=None) -> dict[str, float]:
    """``m`` as {ligand: concentration (M)}; TypeError/ValueError naming ``name``.  ``hint``
    (optional) maps an unknown ligand name to advice appended to the ValueError."""
    if m is None:
        return {}
    if not isinstance(m, Mapping):
        raise TypeError(f"{name} must be a mapping {{ligand: concentration in M}}, got "
                        f"{type(m).__name__}")
    out = {}
    for k, v in m.items():
        if not isinstance(k, str):
            raise TypeError(f"{name}: ligand names must be strings, got {_plain(k)}")
        if k not in allowed:
            raise ValueError(f"{name}: unknown ligand {k!r}; allowed ligands are {list(allowed)}"
                             + (hint(k) if hint is not None else ""))
        out[k] = V_.concentration(f"{name}[{k!r}]", v)
    return out


class _DeferredSeed:
    """woodhull's seed of voltage ``j``: the root entropy is resolved (a Generator drawn
    from) on first use by any voltage, then shared."""

    def __init__(self, holder: dict, j: int):
        self.holder, self.j = holder, j

    def __call__(self) -> np.random.SeedSequence:
        h = self.holder
        if "root" not in h:
            from . import _rng
            h["root"] = _rng.root_entropy(h.pop("rng"))
        root = h["root"]
        words = root if isinstance(root, tuple) else (root,)
        return np.random.SeedSequence(tuple(int(w) for w in words) + (0x5744, self.j))


def _never_binds(b) -> bool:
    """True when blocker ``b`` has no binding route at all (every on-rate 0)."""
    return b.k_on == 0 and b.k_on_closed == 0 and b.superficial_k_on == 0


def _never_leaves(b) -> bool:
    """True when blocker ``b`` can enter the deep site but has no route out of it."""
    return (b.k_on > 0 or b.k_on_closed > 0) and b.k_off == 0 and b.k_escape == 0


def _check_blocker(b, what: str, *, steady: bool = True, undefined: str = "no IC50",
                   unbound: str | None = None,
                   advice: str = "use kind='peak' (block during a finite application) or "
                                 "trapping(), or give k_off > 0") -> None:
    """ValueError naming blocker.k_on / blocker.k_off when ``what`` is undefined for ``b``:
    it never binds, or (``steady``) it never leaves the deep site."""
    if _never_binds(b):
        raise ValueError(
            f"{what}: blocker {b.name!r} has blocker.k_on = 0 (and no closed-channel or "
            f"superficial binding): it never binds, so there is no block at any concentration "
            f"and {unbound or undefined}; give k_on > 0")
    if steady and _never_leaves(b):
        raise ValueError(
            f"{what}: blocker {b.name!r} has blocker.k_off = 0 (and k_escape = 0): it never "
            f"leaves the channel, so the steady-state block is complete at any concentration "
            f"> 0 and there is {undefined}; {advice}")


class _Setup:
    """Validated common inputs: composed scheme, blocker, conditions, stochastic options."""

    def __init__(self, gating, blocker, *, V, agonist, also, background, method, n_channels,
                 n_trials, rng, engine, optional_blocker: bool = False, temperature=None):
        self.gating = _gating(gating)
        # optional_blocker (iv_curve, voltage_jump): blocker=None studies the drug-free scheme
        # (gating + also), with no blocked states of a studied blocker
        self.blocker = None if (blocker is None and optional_blocker) else _blocker(blocker)
        if isinstance(also, (str, bytes)) or not isinstance(also, Iterable):
            raise TypeError("also must be a sequence of blockers or library names, e.g. ['mg']")
        self.also = tuple(_blocker(b, "also[...]") for b in also)
        from .blockers import block
        self.base = block(self.gating, *self.also) if self.also else self.gating
        self.scheme = (block(self.gating, self.blocker, *self.also) if self.blocker is not None
                       else self.base)
        self.V = V_.voltage("V", V)
        gl = tuple(self.gating.ligands)
        if agonist is None:
            if "glutamate" not in gl:
                raise ValueError(f"agonist: the gating scheme has no 'glutamate' ligand; pass "
                                 f"agonist={{...}} with its ligands {list(gl)}")
            agonist = _DEFAULT_AGONIST
        self.agonist = _conc_map("agonist", agonist, gl)
        if not self.agonist or not any(v > 0 for v in self.agonist.values()):
            raise ValueError("agonist must give at least one ligand a concentration > 0")
        self.ligand = self.blocker.ligand if self.blocker is not None else None
        bg_allowed = tuple(l for l in self.scheme.ligands if l != self.ligand)
        self.background = _conc_map("background", background, bg_allowed,
                                    hint=self._background_hint)
        clash = set(self.background) & set(self.agonist)
        if clash:
            raise ValueError(f"ligands {sorted(clash)} are in both agonist and background")
        tags = ({self.blocker.name, self.blocker.name + "_s"} if self.blocker is not None
                else set())
        self.blocked = np.array([bool(tags & set(st.split("·")[1:]))
                                 for st in self.scheme.states])
        self.g = np.asarray(self.scheme.conductance, dtype=float)
        # temperature (K) of every step, equilibrium and relaxation of the experiment: None
        # leaves every condition at the scheme's own temperature (the calls are then exactly
        # those made without the option); ``tkw`` is splatted into the theory calls
        self.temperature = _temperature(temperature)
        self.tkw = {} if self.temperature is None else {"temperature": self.temperature}
        self.T = self.scheme.temperature if self.temperature is None else self.temperature
        # stochastic options
        if not isinstance(method, str) or method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.method = method
        if method == "exact":
            for k, v in (("n_channels", n_channels), ("n_trials", n_trials), ("rng", rng)):
                if v is not None:
                    raise ValueError(f"{k} is only used with method='stochastic'")
            self.n_channels = self.n_trials = None
        else:
            self.n_channels = V_.integer("n_channels", 1000 if n_channels is None
                                         else n_channels, minimum=1)
            self.n_trials = V_.integer("n_trials", 20 if n_trials is None else n_trials,
                                       minimum=2)
            # a numpy Generator (or woodhull's per-voltage seed) is drawn from only when the
            # entropy is first needed -- after every argument has been validated -- so that a
            # refused call does not advance the caller's Generator
            if isinstance(rng, (np.random.Generator, _DeferredSeed)):
                self._pending = rng
            else:
                from . import _rng
                self._entropy = _rng.root_entropy(rng)   # no caller state is consumed
        if not isinstance(engine, str) or engine not in ("auto", "ssa", "population"):
            raise ValueError(f"engine must be 'auto', 'ssa' or 'population', got {engine!r}")
        self.engine = engine
        self._calls = 0

    _pending: Any = None
    _entropy: Any = None

    def _background_hint(self, ligand: str) -> str:
        """Advice for a ``background`` ligand the composed scheme does not have: the studied
        blocker's own ligand, or the ligand of a library blocker not composed with ``also``."""
        from . import blockers as B
        if self.blocker is not None and ligand == self.blocker.ligand:
            return (f"; {ligand!r} is the ligand of the studied blocker {self.blocker.name!r}: "
                    "its concentration is the experiment's (concentrations / concentration), "
                    "not a background")
        names = sorted((n for n in B.available() if B._peek(n).ligand == ligand),
                       key=lambda n: n != ligand)    # the library name equal to it first
        if not names:
            return ""
        first = names[0]
        more = (f" (also {', '.join(repr(n) for n in names[1:])})" if len(names) > 1 else "")
        return (f"; {ligand!r} is the ligand of the library blocker {first!r}{more}, which is "
                f"not composed with the scheme: pass also=[{first!r}] together with "
                f"background={{{ligand!r}: ...}} to hold it in the background")

    @property
    def entropy(self):
        """Root entropy of the stochastic runs (None for method='exact'), drawn from a numpy
        Generator on first use."""
        if self._pending is not None:
            from . import _rng
            pend, self._pending = self._pending, None
            self._entropy = _rng.root_entropy(pend() if isinstance(pend, _DeferredSeed)
                                              else pend)
        return self._entropy

    # ---------------------------------------------------------------- conditions
    def cond(self, agonist: bool, c: float = 0.0) -> dict[str, float]:
        d = dict(self.background)
        if agonist:
            d.update(self.agonist)
        if c > 0:
            d[self.ligand] = c
        return d

    def step(self, duration: float, agonist: bool, c: float = 0.0,
             V: float | None = None) -> Step:
        """One protocol step at the experiment's voltage (or ``V``) and temperature (no
        :class:`~ketacore.UnitsWarning`: the user's concentrations were checked on entry, and
        the rest are ketacore's own, e.g. an IC50 search up to ``MAX_CONCENTRATION``)."""
        with V_.quiet_units():
            return Step(duration, V=self.V if V is None else V, temperature=self.temperature,
                        **self.cond(agonist, c))

    def equilibrium(self, agonist: bool, c: float = 0.0) -> np.ndarray:
        """Equilibrium occupancy of the composed scheme.  Without blocker it is the
        equilibrium of the drug-free scheme embedded (blocked states 0), which is well defined
        even when trapped states would be absorbing.  Where trapping makes the equilibrium
        non-unique (no agonist, a trapping background or test blocker present) it is the rest
        state reached from drug-free rest (:func:`ketacore.theory.rest_state`)."""
        from .theory import rest_state
        if c > 0:
            with V_.quiet_units():  # (ketacore's own concentrations, as in step())
                return rest_state(self.scheme, V=self.V, **self.tkw, **self.cond(agonist, c))
        pb = rest_state(self.base, V=self.V, **self.tkw, **self.cond(agonist))
        p = np.zeros(self.scheme.n_states)
        p[self.scheme.indices(self.base.states)] = pb
        return p

    def conductance(self, p: np.ndarray) -> np.ndarray:
        return np.asarray(p) @ self.g

    # ---------------------------------------------------------------- running
    def run(self, protocol: Protocol, dt: float, initial: np.ndarray):
        """(time, occupancy) with occupancy of shape (n_trials, n_samples, K): the exact
        solution (one 'trial') or simulated fractions of channels."""
        initial = _normalised(initial)
        if self.method == "exact":
            r = solve(self.scheme, protocol, dt, initial=initial)
            return r.time, r.occupancy[None]
        from .simulate import simulate
        self._calls += 1
        words = self.entropy if isinstance(self.entropy, tuple) else (self.entropy,)
        ss = np.random.SeedSequence(tuple(int(w) for w in words) + (0x6B63, self._calls))
        r = simulate(self.scheme, protocol, dt, n_channels=self.n_channels,
                     n_trials=self.n_trials, method=self.engine, rng=ss, initial=initial)
        return r.time, r.counts / float(self.n_channels)

    def check_run(self, what: str, n_samples: float, n_runs: int = 1) -> None:
        """Refuse, before any work, ``n_runs`` runs of ``n_samples`` grid points whose outputs
        (occupancies of every trial, and their copies) would not fit in memory."""
        n_tr = 1 if self.method == "exact" else self.n_trials
        per_run = float(n_tr) * float(n_samples) * (self.scheme.n_states * 16.0 + 24.0)
        V_.check_memory(f"{what} (n_trials={n_tr}, {n_samples:.3g} samples per run)",
                        per_run * n_runs,
                        advice="use a coarser dt, shorter phases or fewer trials")

    def exact(self, protocol: Protocol, dt: float, initial: np.ndarray):
        r = solve(self.scheme, protocol, dt, initial=_normalised(initial))
        return r.time, r.occupancy

    def relaxation(self, initial: np.ndarray, agonist: bool, c: float = 0.0,
                   V: float | None = None):
        """:func:`ketacore.theory.relaxation` of the composed scheme from ``initial`` under
        the experiment's conditions (voltage ``V``, default the experiment's, and
        temperature).  ValueError when the generator is defective (no spectral expansion:
        the Relaxation then has no amplitudes, and the experiments need them)."""
        from .theory import relaxation
        rel = relaxation(self.scheme, initial=initial, V=self.V if V is None else V,
                         **self.tkw, **self.cond(agonist, c))
        if rel.amplitudes is None:
            raise ValueError(
                "the exact relaxation of this mechanism has no expansion in exponentials (a "
                "defective generator: equal rates along a one-way path), so it has no time "
                "constants and amplitudes to report; kc.theory.relaxation(...).occupancy(t) "
                "gives its exact time course")
        return rel

    def meta(self) -> dict[str, Any]:
        return dict(gating=self.gating.name,
                    blocker=self.blocker.name if self.blocker is not None else None, V=self.V,
                    temperature=float(self.T),
                    agonist=dict(self.agonist), background=dict(self.background),
                    method=self.method, n_channels=self.n_channels, n_trials=self.n_trials,
                    entropy=self.entropy)


def _stochastic_peak(su: _Setup, protocol: Protocol, dt: float, p_start: np.ndarray, *,
                     trials: bool = False):
    """(mean, SE) over trials of the simulated conductance (fraction of g_max) at the *exact*
    peak time of ``protocol`` from ``p_start``; with ``trials`` the per-trial values instead,
    shape (n_trials,).  Every trial is read at one sample fixed by the master equation, so the
    mean is an unbiased estimate of the exact peak.  (The sample where the trials' mean is
    largest would be chosen by the same noise it then averages, biased upward: +1 to +1.4 SE
    in a review's 60-seed check.)"""
    _, ex = su.exact(protocol, dt, p_start)
    k = int(np.argmax(ex @ su.g))
    _, occ = su.run(protocol, dt, p_start)
    g = (occ @ su.g)[:, k]
    if trials:
        return g
    m_, s_ = _mean_se(g)
    return float(m_), float(s_)


def _normalised(p: np.ndarray) -> np.ndarray:
    """An occupancy vector from a solver output, with round-off (|error| ~ 1e-9) removed."""
    p = np.clip(np.asarray(p, dtype=float), 0.0, None)
    return p / p.sum()


def _mean_se(x: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float)
    n = x.shape[axis]
    m = x.mean(axis=axis)
    if n < 2:
        return m, np.zeros_like(m)
    return m, x.std(axis=axis, ddof=1) / math.sqrt(n)


def _ratio_se(a: float, sa: float, b: float, sb: float) -> tuple[float, float]:
    """a/b and its delta-method SE for independent a, b."""
    r = a / b
    if sa == 0 and sb == 0:
        return r, 0.0
    return r, abs(r) * math.hypot(sa / a if a else 0.0, sb / b)


#: Noisy (trial-mean) traces: the trace is "flat" -- no relaxation to fit -- when the means of
#: its first and last 5 % differ by less than this many standard errors of that difference
#: (a trace of pure white noise passes with probability 0.27 %, a Gaussian tail).
_NOISY_SPAN_SE = 3.0
#: Noisy traces: a fitted single-exponential amplitude within this many of its SEs of 0 is
#: not resolved above the noise (the fit followed the noise, not a relaxation).
_NOISY_AMP_SE = 2.0


def _fit_exponentials(t: np.ndarray, y: np.ndarray, n_exp: int = 1, *,
                      weighted_se: bool = False, noisy: bool = False, start=None):
    """Fit y = c + Σ a_i exp(-t/τ_i); returns (taus, amps, c, tau_se) sorted by τ.

    With ``weighted_se`` a fifth item is returned: the delta-method SE (fit covariance) of
    the amplitude-weighted mean τ = Σ|a_i|τ_i / Σ|a_i| (the SE of τ itself when n_exp=1).

    ``noisy`` (a simulated trace): flatness is judged from the trend against the noise, not
    from the end points (two noisy samples are often equal although the trace relaxes): the
    means of the first and last ``m = max(2, n/20)`` samples must differ by more than
    :data:`_NOISY_SPAN_SE` SEs, the per-sample noise taken from successive differences
    (SD/√2); the initial guesses come from those means and a running mean; and a fitted
    single-exponential amplitude within :data:`_NOISY_AMP_SE` SEs of 0, or a fit that does not
    converge, is refused.  ValueError for a flat (or unfittable) trace.

    ``start`` (with ``noisy``): the fitted parameters of a fit to nearly the same data (the
    jackknife's leave-one-out means start from the fit to the mean of all trials): used as
    the initial guess, with no flatness or amplitude test -- whether there is a relaxation was
    decided on all the data; only a fit that does not converge is refused."""
    from scipy import optimize
    t = np.asarray(t, float)
    y = np.asarray(y, float)
    if start is not None:
        span, y_last, i = 0.0, 0.0, 0
    elif noisy:
        m = max(2, y.size // 20)
        y_first, y_last = float(np.mean(y[:m])), float(np.mean(y[-m:]))
        span = y_first - y_last
        noise = float(np.std(np.diff(y))) / math.sqrt(2.0) if y.size > 2 else 0.0
        span_se = noise * math.sqrt(2.0 / m)
        if (not np.isfinite(span) or abs(span) <= _NOISY_SPAN_SE * span_se
                or abs(span) < 1e-12 * max(1.0, abs(y_first))):
            raise ValueError(
                f"no relaxation above the noise (the means of the first and last {m} samples "
                f"differ by {span:.3g}, within {_NOISY_SPAN_SE:g} x the SE of that difference, "
                f"{span_se:.3g})")
        k = max(1, y.size // 50)     # running mean for the half-relaxation guess
        ys = np.convolve(y, np.ones(k) / k, mode="valid")
        half = y_last + span / 2
        j = int(np.argmax((ys - half) * np.sign(span) <= 0))
        i = j + (k - 1) // 2 if j > 0 else 0
    else:
        span = y[0] - y[-1]
        if not np.isfinite(span) or abs(span) < 1e-12 * max(1.0, abs(y[0])):
            raise ValueError("no relaxation to fit (the trace is flat)")
        y_last = y[-1]
        half = y[-1] + span / 2
        i = int(np.argmax((y - half) * np.sign(span) <= 0))
    tau0 = max(t[i] / math.log(2), (t[1] - t[0]) * 2) if i > 0 else (t[-1] - t[0]) / 5
    if n_exp == 1:
        def f(tt, a, tau, c):
            return a * np.exp(-tt / tau) + c
        p0 = (span, tau0, y_last)
        bounds = ([-np.inf, 1e-12, -np.inf], [np.inf, np.inf, np.inf])
    elif n_exp == 2:
        def f(tt, a1, tau1, a2, tau2, c):
            return a1 * np.exp(-tt / tau1) + a2 * np.exp(-tt / tau2) + c
        p0 = (span / 2, tau0 / 4, span / 2, tau0 * 2, y_last)
        bounds = ([-np.inf, 1e-12, -np.inf, 1e-12, -np.inf], [np.inf] * 5)
    else:
        def f(tt, *q):
            return sum(q[2 * k] * np.exp(-tt / q[2 * k + 1]) for k in range(n_exp)) + q[-1]
        # start: the best set of n time constants on a log grid from two samples to the
        # trace's length, each set's amplitudes and offset by linear least squares (variable
        # projection); one log-spaced start alone ends in merged components (1, 10, 100 ms
        # fitted as 0.63, 0.63, 113 ms)
        import itertools
        tt0 = t - t[0]
        lo = max(2.0 * (t[1] - t[0]), 1e-12)
        hi = max(tt0[-1], 2.0 * lo)
        grid = np.geomspace(lo, hi, 14)
        step = max(1, tt0.size // 4000)             # (the search on a thinned trace)
        ts, ys = tt0[::step], y[::step]
        E_ = np.exp(-ts[:, None] / grid[None, :])
        best, p0 = np.inf, None
        for combo in itertools.combinations(range(grid.size), n_exp):
            X = np.column_stack([E_[:, list(combo)], np.ones(ts.size)])
            coef, *_ = np.linalg.lstsq(X, ys, rcond=None)
            r = float(np.sum((X @ coef - ys) ** 2))
            if r < best:
                best = r
                p0 = tuple(x for k, j in enumerate(combo) for x in (float(coef[k]), float(grid[j]))) \
                    + (float(coef[-1]),)
        bounds = ([-np.inf, 1e-12] * n_exp + [-np.inf], [np.inf] * (2 * n_exp + 1))
    if start is not None:
        p0 = tuple(float(x) for x in start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            popt, pcov = optimize.curve_fit(f, t - t[0], y, p0=p0, bounds=bounds,
                                            maxfev=20000)
        except RuntimeError as exc:
            if not noisy:
                raise
            raise ValueError(f"the exponential fit did not converge ({exc})") from None
    perr = np.sqrt(np.clip(np.diag(pcov), 0, None)) if np.all(np.isfinite(pcov)) \
        else np.full(len(popt), np.nan)
    if noisy and start is None:
        if not (np.all(np.isfinite(popt)) and np.all(np.isfinite(perr))):
            raise ValueError("the exponential fit is undetermined (infinite covariance)")
        if n_exp == 1 and not abs(popt[0]) > _NOISY_AMP_SE * perr[0]:
            raise ValueError(f"the fitted amplitude {popt[0]:.3g} ± {perr[0]:.3g} is not "
                             f"resolved above the noise (within {_NOISY_AMP_SE:g} SE of 0)")
    if n_exp == 1:
        out = (np.array([popt[1]]), np.array([popt[0]]), float(popt[2]),
               np.array([perr[1]]))
        return out + (float(perr[1]),) if weighted_se else out
    taus = np.asarray(popt[1:-1:2], float)
    amps = np.asarray(popt[0:-1:2], float)
    se = np.asarray(perr[1:-1:2], float)
    o = np.argsort(taus)
    out = (taus[o], amps[o], float(popt[-1]), se[o])
    if not weighted_se:
        return out
    # tau_w = sum |a_i| tau_i / sum |a_i|; gradient over (a1, tau1, ..., an, taun, c)
    tot = float(np.sum(np.abs(amps)))
    tau_w = float(np.sum(np.abs(amps) * taus)) / tot
    grad = np.zeros(len(popt))
    grad[0:-1:2] = np.sign(amps) * (taus - tau_w) / tot
    grad[1:-1:2] = np.abs(amps) / tot
    var = float(grad @ pcov @ grad) if np.all(np.isfinite(pcov)) else float("nan")
    return out + (math.sqrt(var) if var >= 0 else float("nan"),)


class _TooNoisy(ValueError):
    """A stochastic trace (trial mean, or a jackknife leave-one-out mean) too noisy to fit."""


def _fit_trials(t: np.ndarray, traces: np.ndarray, n_exp: int) -> tuple:
    """Exponential fit of stochastic ``traces`` (n_trials, n_samples): ``(tau, taus, weights,
    se)``, τ the amplitude-weighted mean time constant (s) of the fit to the *trial mean*, its
    SE the jackknife SE over trials (Efron & Stein 1981: the n leave-one-out fits θ_(i),
    SE² = (n-1)/n Σ (θ_(i) - mean θ_(·))²).

    The trial mean, not each trial, is fitted: the mean trace converges to the exact one as
    trials are added, so the fit converges to the exact fit (a mean of per-trial fits does not:
    each noisy fit is biased and some wander off -- ketamine 10 µM with 1 mM Mg2+, 16 trials x
    1000 channels, ~3 channels open per trial: per-trial fits averaged 207 s for a 3.6 s
    onset); the jackknife keeps the SE honest (it is the spread of the same estimator over
    subsets of the trials).  :class:`_TooNoisy` when the mean or a leave-one-out mean is too
    noisy to fit (:func:`_fit_exponentials` with ``noisy=True``)."""
    traces = np.asarray(traces, float)
    n = traces.shape[0]

    def one(y, what, start=None):
        try:
            taus, amps, c, _ = _fit_exponentials(t, y, n_exp, noisy=True, start=start)
        except ValueError as exc:
            raise _TooNoisy(f"{what}: {exc}") from None
        w = np.abs(amps) / np.abs(amps).sum()
        params = [x for pair in zip(amps, taus) for x in pair] + [c]
        return float(np.sum(w * taus)), taus, w, params
    tau, taus, w, params = one(traces.mean(axis=0), f"the mean of the {n} trials")
    total = traces.sum(axis=0)
    jk = np.array([one((total - traces[i]) / (n - 1), f"the mean without trial {i} "
                       "(jackknife)", params)[0] for i in range(n)])
    se = math.sqrt((n - 1) / n * float(np.sum((jk - jk.mean()) ** 2)))
    return tau, taus, w, se


def _dominant(rel) -> tuple[float, np.ndarray, np.ndarray]:
    """(dominant τ, all τ, Po amplitudes) of a theory.Relaxation: the component with the
    largest |amplitude| in the open probability -- the one that carries most of the visible
    current change, and so the one a resolved single-exponential fit tracks.  (Not the
    largest area |a·τ|: a slow component of negligible amplitude can have the largest area,
    e.g. a 1.1 s component of amplitude 1e-5 beside Mg2+'s 17 µs block of amplitude 0.08.)"""
    taus = np.real(np.asarray(rel.taus))
    amps = np.real(np.asarray(rel.popen_amplitudes))
    return float(taus[int(np.argmax(np.abs(amps)))]), taus, amps


def _common_grid(target: float, *lengths: float, names: Sequence[str] = ()) -> float:
    """Largest dt <= target that divides every length (s) exactly (to 1e-6 relative)."""
    from fractions import Fraction
    for i, x in enumerate(lengths):
        if Fraction(x).limit_denominator(10**6) == 0:
            name = names[i] if i < len(names) else "a phase length"
            raise ValueError(f"{name}={x:g} s is below the 1 µs resolution of the automatic "
                             "grid; pass dt")
    fr = [Fraction(x).limit_denominator(10**6) for x in lengths]
    num = 0
    den = 1
    for f in fr:
        den = den * f.denominator // math.gcd(den, f.denominator)
    for f in fr:
        num = math.gcd(num, f.numerator * (den // f.denominator))
    g = num / den
    if not g > 0 or any(abs(x / g - round(x / g)) > 1e-6 for x in lengths):
        raise ValueError(f"phase lengths {', '.join(f'{float(x):g}' for x in lengths)} s have "
                         "no common grid; pass dt")
    return g / max(math.ceil(g / target - 1e-9), 1)


def _slowest_significant(rel, frac: float = 1e-3) -> float:
    taus = np.real(np.asarray(rel.taus))
    amps = np.abs(np.real(np.asarray(rel.amplitudes))).sum(axis=1)
    keep = amps >= frac * amps.max()
    return float(taus[keep].max())


#: block_kinetics: components whose I/I0 amplitude is >= this fraction of the largest one
#: "carry" the relaxation (set the default window and grid).
_CARRIER_FRACTION = 0.1
#: block_kinetics: default grid steps per time constant of the fastest carrier, and the
#: fewest grid steps a fitted time constant may span before the fit is refused.
_STEPS_PER_TAU = 4
_MIN_FIT_STEPS = 3
#: block_kinetics: default and largest automatic samples per phase.
_DEFAULT_PHASE_SAMPLES = 2000
_AUTO_MAX_PHASE_SAMPLES = 200_000


def _carriers(rel, g_rel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(τ, I/I0 amplitude) of the components of a theory.Relaxation that carry the current
    relaxation (|amplitude| >= _CARRIER_FRACTION of the largest), ascending τ.  ``g_rel`` is
    the conductance per state over the control conductance.  A relaxation with no current
    change falls back to the slowest significant occupancy component."""
    taus = np.real(np.asarray(rel.taus))
    amps = np.real(np.asarray(rel.amplitudes)) @ g_rel
    big = np.abs(amps).max() if amps.size else 0.0
    if not big > 1e-12:
        slow = _slowest_significant(rel)
        return np.array([slow]), np.array([0.0])
    keep = np.abs(amps) >= _CARRIER_FRACTION * big
    return taus[keep], amps[keep]


class _ResultBase:
    """Shared table / summary / plot plumbing."""

    def _columns(self) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_frame(self):
        """The per-point table: a pandas DataFrame if pandas is installed, else a dict of
        equal-length 1-D arrays (column names carry units)."""
        cols = self._columns()
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - optional dependency
            return {k: np.asarray(v) for k, v in cols.items()}
        return pd.DataFrame(cols)

    def __str__(self) -> str:
        return self.summary()

    def summary(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def _axes(ax):
        from .plot import require_pyplot
        plt = require_pyplot()
        if ax is None:
            _, ax = plt.subplots()
        return ax


def _pm(x: float, se: float, scale: float = 1.0, fmt: str = ".3g") -> str:
    """``x ± se`` (both times ``scale``) as text: the SE to 2 significant figures and the value
    to the same decimal place (``86.30 ± 0.75``, not ``86.3 ± 0.7549``), the usual convention
    for a measured value; ``x`` alone in ``fmt`` when there is no SE (0, NaN or None)."""
    if se and np.isfinite(se) and se > 0 and np.isfinite(x):
        xs, ss = x * scale, se * scale
        d = 1 - int(math.floor(math.log10(ss)))        # decimals of the SE's 2nd figure
        big = max(abs(xs), ss)
        if 0 <= d <= 6 and big < 1e6:
            return f"{xs:.{d}f} ± {ss:.{d}f}"
        return f"{xs:.{max(2, int(math.floor(math.log10(big))) + d)}g} ± {ss:.2g}"
    return f"{x * scale:{fmt}}"


#: Units of concentrations in text, with the smallest concentration (M) written in each: µM
#: (written ``uM``) from 0.1 µM up to 1 mM -- the range channel blockers are quoted in
#: (ketamine IC50 0.71 µM, memantine 1 µM, MK-801 trapping at 1 µM) -- nM below, mM and M above.
_CONC_UNITS = (("nM", 1e-9, 0.0), ("uM", 1e-6, 1e-7), ("mM", 1e-3, 1e-3), ("M", 1.0, 1.0))


def _conc_unit(c: float, fmt: str = ".3g") -> tuple[str, float]:
    """(unit, scale) :func:`_conc_text` writes the concentration ``c`` (M) in: by
    :data:`_CONC_UNITS`, moving up a unit when rounding to ``fmt`` reaches 1000 (999.99 uM is
    ``1 mM``, not ``1e+03 uM``)."""
    a = abs(float(c))
    k = 0
    for j, (_, _, lo) in enumerate(_CONC_UNITS):
        if a >= lo:
            k = j
    if k + 1 < len(_CONC_UNITS) and math.isfinite(a):
        scale = _CONC_UNITS[k][1]
        if abs(float(format(a / scale, fmt))) >= 1000:
            k += 1
    return _CONC_UNITS[k][0], _CONC_UNITS[k][1]


def _conc_text(c: float, fmt: str = ".3g") -> str:
    """A concentration (M) as text in nM, uM, mM or M (:data:`_CONC_UNITS`): ``1 mM``, not
    ``1000 uM``; ``0.71 uM``; ``50 nM``.  ``fmt`` formats the number."""
    c = float(c)
    if c == 0 or not math.isfinite(c):
        return f"{c:g} M"
    unit, scale = _conc_unit(c, fmt)
    return f"{c / scale:{fmt}} {unit}"


def _conc_pm(x: float, se: float, fmt: str = ".3g") -> str:
    """A concentration (M) and its SE as text in the unit of ``x`` (:func:`_conc_text`):
    ``0.755 ± 0.0123 uM``; without ``±`` when ``se`` is 0, NaN or None (exact values)."""
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return _conc_text(x, fmt)
    unit, scale = _conc_unit(x, fmt)
    return f"{_pm(x, se if se is not None else 0.0, 1.0 / scale, fmt)} {unit}"


def _temperature_suffix(meta: Mapping[str, Any]) -> str:
    """``", 35.0 °C"``: the experiment temperature (``meta["temperature"]``, K) printed after
    the voltage in every ``summary()`` (always, the scheme's own temperature too); empty for
    a result whose meta does not record it."""
    T = meta.get("temperature")
    return f", {_temperature_text(T)}" if T is not None else ""


def _method_line(meta: Mapping[str, Any]) -> str:
    if meta["method"] == "exact":
        return "method: exact (master equation / equilibrium theory)"
    return (f"method: stochastic, {meta['n_trials']} trials x {meta['n_channels']} channels, "
            f"mean ± SE (rng entropy {meta['entropy']})")


# =========================================================================== IC50
@dataclass(frozen=True, repr=False)
class IC50Result(_ResultBase):
    """Inhibition curve and Hill fit (:func:`ic50`).

    Attributes
    ----------
    concentrations : ndarray
        Blocker concentrations (M).
    fraction, fraction_se : ndarray
        Current as a fraction of control, I/I0 (dimensionless), and its SE (0 for
        ``method="exact"``).  Stochastic: I/I0 = (trial mean at the concentration) / (trial
        mean of the control run) and its delta-method SE for the two independent means.  That
        SE is right for each point alone, but every point is divided by the *same* control
        estimate, so the points are positively correlated (ketamine on ``erreger2005_2a``,
        default grid, ``n_channels=1000``: correlations 0.02-0.57, mean 0.28) -- ``ic50_se``
        and ``hill_se`` account for it.
    ic50, ic50_se : float
        Hill-fit IC50 (M) and its standard error (M).  ``method="exact"``: the SE from the fit
        covariance.  ``method="stochastic"``: the delete-one jackknife SE over trials of the
        whole estimate -- for each trial k the control mean, every I/I0 and its SE (the fit
        weights) and the Hill fit are recomputed from the other ``n_trials − 1`` trials,
        giving IC50_(k), and ``ic50_se = sqrt((n − 1)/n · Σ_k (IC50_(k) − mean_k IC50_(k))²)``
        with n = ``n_trials`` (Efron & Stein 1981, Ann Stat 9:586,
        doi:10.1214/aos/1176345462); see :func:`ic50`.  (The fit covariance, which treats the
        points as independent, was about half of the true SE, because of the shared control.)
        NaN if a leave-one-out control mean is 0 or a leave-one-out fit fails.
        ``(ic50 − true)/ic50_se`` is close to a Student t with ``n_trials − 1`` degrees of
        freedom.  The IC50 the result *reports*
        (:meth:`bound`, :func:`woodhull`) is ``ic50_exact`` when the model gives it, else this
        fit.  With ``method="exact"`` the points carry no noise and the covariance only
        measures how far the Hill equation misses them (e.g. 1.9e-16 M), not an uncertainty:
        ``summary()`` and :meth:`bound` then print the fit without ``±``.
    hill, hill_se : float
        Hill coefficient (dimensionless) and its standard error (dimensionless): fit
        covariance (exact) or delete-one jackknife over trials (stochastic), as ``ic50_se``
        (printed for stochastic points only).
    ic50_exact : float or None
        For ``kind="steady"`` with ``method="exact"``: the concentration (M) at which the exact
        equilibrium I/I0 = 1/2 (root finding, no curve fit); otherwise None.
    kind : {"steady", "peak"}
    meta : dict
        Gating model, blocker, V (V), temperature (K), agonist, method and stochastic
        settings.
    extrapolated : bool
        True when the reported IC50 is an extrapolation of a fit -- the one rule that
        :func:`ic50` and :func:`woodhull` share: there is no exact IC50 (``ic50_exact`` is
        None) and the Hill-fit ``ic50`` is not determined by the data (the inhibition
        ``1 − I/I0`` never crosses 50 % over the tested concentrations, or the fitted IC50 lies
        outside ``[concentrations.min(), concentrations.max()]``).  ``ic50``, ``ic50_se`` and
        ``hill`` are then an extrapolation of the Hill equation (their SEs, from the fit
        covariance, do not measure that uncertainty); :func:`ic50` warns, and ``summary()``,
        ``repr`` and ``plot()`` give a bound instead (e.g. ``IC50 > 10 uM``).  With an exact
        root the reported IC50 is exact, so this is False and nothing warns, even when the
        Hill fit to the given concentrations is itself outside them (``summary()`` and
        ``plot()`` still say so of the Hill fit).
    """

    concentrations: np.ndarray
    fraction: np.ndarray
    fraction_se: np.ndarray
    ic50: float
    ic50_se: float
    hill: float
    hill_se: float
    ic50_exact: float | None
    kind: str
    meta: dict = field(default_factory=dict)
    extrapolated: bool = False

    @property
    def inhibition(self) -> np.ndarray:
        """1 − I/I0."""
        return 1.0 - self.fraction

    def bound(self) -> str:
        """The reported IC50 as text (in nM, µM written ``uM``, mM or M): the exact root when
        there is one, ``"IC50 = 0.710003 uM (exact equilibrium root)"``; else the Hill fit,
        ``"IC50 = 0.71 ± 0.02 uM"`` when the data determine it (no ``±`` for a fit to exact
        points), or the bound the data give, e.g.
        ``"IC50 > 10 uM (extrapolated: largest inhibition 12 %, ...)"``."""
        if self.ic50_exact is not None:
            return f"IC50 = {_conc_text(self.ic50_exact, '.6g')} (exact equilibrium root)"
        return self._hill_text()

    def _fit_se(self) -> tuple[float, float]:
        """(ic50_se, hill_se) as printed: 0 (no ``±``) for a fit to exact points, whose
        covariance measures how far the Hill equation misses them, not an uncertainty."""
        if self.meta.get("method") == "exact":
            return 0.0, 0.0
        return self.ic50_se, self.hill_se

    def _fit_text(self, sep: str = " ") -> str:
        """Hill IC50 and nH as text, ``IC50 0.755 uM, nH = 0.84`` (``sep`` after ``IC50``;
        with ``± SE`` when the points are stochastic)."""
        s_ic, s_h = self._fit_se()
        return f"IC50{sep}{_conc_pm(self.ic50, s_ic)}, nH = {_pm(self.hill, s_h)}"

    def _points_text(self) -> str:
        n = len(self.concentrations)
        exact = " exact" if self.meta.get("method") == "exact" else ""
        return (f"{n}{exact} points, {_conc_text(self.concentrations.min())} to "
                f"{_conc_text(self.concentrations.max())}")

    def _hill_outside(self) -> bool:
        """Whether the Hill fit itself is not determined by the data (with or without an
        exact root)."""
        return _is_extrapolated(self.concentrations, self.fraction, self.ic50)

    def _hill_text(self) -> str:
        if not self._hill_outside():
            return f"IC50 = {_conc_pm(self.ic50, self._fit_se()[0])}"
        return _ic50_bound(self.concentrations, self.fraction, self.ic50)

    def _columns(self):
        return {"concentration_M": self.concentrations, "fraction_of_control": self.fraction,
                "fraction_se": self.fraction_se, "inhibition": self.inhibition,
                "hill_fit": hill(self.concentrations, self.ic50, self.hill)}

    def summary(self) -> str:
        """Text report: IC50 (M) and Hill slope with SEs (or the bound an extrapolated fit
        supports), the exact IC50 where the model gives it, and the conditions."""
        m = self.meta
        n = len(self.concentrations)
        lines = [f"{self.kind} IC50 of {m['blocker']} on {m['gating']} at {m['V'] / mV:g} mV"
                 + _temperature_suffix(m)]
        if self.extrapolated:
            lines += [f"  {self.bound()}",
                      f"  Hill fit (extrapolated, not determined by the data): "
                      f"{self._fit_text()} ({self._points_text()})"]
        elif self._hill_outside():
            # the reported IC50 is the exact root; the Hill fit to these points is not
            # determined by them, and is labelled so
            lines += [f"  Hill fit not determined by these concentrations "
                      f"({self._hill_text()}): {self._fit_text()} ({self._points_text()})"]
        else:
            exact = " exact" if m.get("method") == "exact" else ""
            lines.append(f"  {self._fit_text(' = ')} (Hill fit, {n}{exact} points)")
        if self.ic50_exact is not None:
            if m.get("detailed_balance", True):
                lines.append(f"  exact equilibrium IC50 = {_conc_text(self.ic50_exact, '.6g')}")
            else:
                lines.append(f"  exact steady-state IC50 = {_conc_text(self.ic50_exact, '.6g')} "
                             "(the scheme is not in detailed balance: a non-equilibrium "
                             "steady state, exact all the same)")
        lines.append("  " + _method_line(m))
        return "\n".join(lines)

    def __repr__(self) -> str:
        ext = ", extrapolated=True" if self.extrapolated else ""
        return (f"IC50Result(kind={self.kind!r}, ic50={self.ic50:.4g} M, hill={self.hill:.3g}"
                f"{ext})")

    def plot(self, ax=None):
        """Concentration-inhibition curve (log x axis, µM) with the Hill fit."""
        ax = self._axes(ax)
        c = self.concentrations / uM
        if np.any(self.fraction_se > 0):
            ax.errorbar(c, self.fraction, yerr=self.fraction_se, fmt="o", label="model")
        else:
            ax.plot(c, self.fraction, "o", label="model")
        cc = np.geomspace(c.min(), c.max(), 200)
        outside = self._hill_outside()        # the Hill line itself, whatever is reported
        label = (f"Hill: IC50 {_conc_text(self.ic50).replace('uM', 'µM')}, nH {self.hill:.2f}"
                 if not outside else
                 f"Hill fit: {self._hill_text().replace('uM', 'µM')}")
        ax.plot(cc, hill(cc * uM, self.ic50, self.hill), "-" if not outside else "--",
                label=label)
        ax.set_xscale("log")
        ax.set_xlabel(f"[{self.meta['blocker']}] (µM)")
        ax.set_ylabel("I / I0 (fraction of control)")
        ax.set_title(f"{self.kind} inhibition, {self.meta['V'] / mV:g} mV")
        ax.legend()
        return ax


def _fit_hill(c: np.ndarray, y: np.ndarray, se: np.ndarray, guess: float,
              start: tuple[float, float] | None = None):
    """Hill fit of I/I0 = ``y`` at concentrations ``c`` (M) in (log10 IC50, nH):
    ``(IC50 (M), its fit-covariance SE, nH, its SE)``, weighted by 1/``se``² when every
    ``se`` > 0 (absolute sigma), else unweighted.  Started from (log10 ``guess``, 1), or from
    ``start`` = (log10 IC50, nH) when given."""
    from scipy import optimize
    sigma = se if np.all(se > 0) else None

    def f(cc, log_ic50, nh):
        return 1.0 / (1.0 + (cc / 10.0 ** log_ic50) ** nh)

    p0 = (math.log10(guess), 1.0) if start is None else start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        popt, pcov = optimize.curve_fit(f, c, y, p0=p0, sigma=sigma,
                                        absolute_sigma=sigma is not None,
                                        bounds=([-15.0, 0.05], [1.0, 10.0]), maxfev=20000,
                                        xtol=1e-14, ftol=1e-14, gtol=1e-14)
    perr = np.sqrt(np.clip(np.diag(pcov), 0, None)) if np.all(np.isfinite(pcov)) \
        else np.full(2, np.nan)
    ic = 10.0 ** popt[0]
    return ic, ic * math.log(10) * perr[0], float(popt[1]), float(perr[1])


def _hill_jackknife(c: np.ndarray, g0: np.ndarray, g: np.ndarray, se: np.ndarray,
                    ic: float, nh: float) -> tuple[float, float]:
    """Delete-one jackknife SEs over trials of the stochastic Hill fit of :func:`ic50`.

    ``g0`` (n_trials,) are the per-trial control values and ``g`` (n_conc, n_trials) those at
    the concentrations ``c`` (M) (conductances, fractions of g_max); ``se`` are the full-data
    SEs of I/I0 that weighted the full-data fit ``ic`` (M), ``nh``.  For each trial k the
    whole pipeline is recomputed from the other n − 1 trials: the control mean and its SE,
    every I/I0 = mean(g[i]) / mean(g0) with its delta-method SE, and the Hill fit weighted by
    those SEs (started from ``ic``, ``nh``), giving IC50_(k) and nH_(k).  A leave-one-out SE
    of 0 (the remaining trials agree, e.g. none has an open channel, or a single trial is left
    when n = 2) is replaced by that point's full-data SE, so the leave-one-out fits stay
    weighted whenever the full-data fit is (``se`` all > 0) instead of turning unweighted on
    one trial.  The jackknife SE of θ is ``sqrt((n − 1)/n · Σ_k (θ_(k) − θ̄)²)``, θ̄ the mean
    of the θ_(k) (Efron & Stein 1981, Ann Stat 9:586, doi:10.1214/aos/1176345462).  Every
    trial's control enters every fraction, so the SE carries the correlation that the shared
    control induces between the fractions -- which the fit covariance, treating the points
    as independent, leaves out -- and the noise of the estimated weights.

    Returns ``(SE of IC50 (M), SE of nH)``; NaN when a leave-one-out control mean is not > 0
    or a leave-one-out fit fails.
    """
    n = g0.size
    ics = np.empty(n)
    nhs = np.empty(n)
    start = (math.log10(ic), nh)
    for k in range(n):
        a0 = np.delete(g0, k)
        a = np.delete(g, k, axis=1)
        m0, s0 = (float(x) for x in _mean_se(a0))
        if not m0 > 0:
            return float("nan"), float("nan")
        frac = np.empty(c.size)
        fse = np.empty(c.size)
        for i in range(c.size):
            m, s_ = _mean_se(a[i])
            frac[i], fse[i] = _ratio_se(float(m), float(s_), m0, s0)
        try:
            ics[k], _, nhs[k], _ = _fit_hill(c, frac, np.where(fse > 0, fse, se), ic,
                                             start=start)
        except (RuntimeError, ValueError):
            return float("nan"), float("nan")

    def jk(x: np.ndarray) -> float:
        return float(math.sqrt((n - 1) / n * float(np.sum((x - x.mean()) ** 2))))
    return jk(ics), jk(nhs)


def _is_extrapolated(c: np.ndarray, frac: np.ndarray, ic: float) -> bool:
    """Whether a Hill-fit IC50 ``ic`` (M) is an extrapolation of the data (``frac`` = I/I0 at
    concentrations ``c``): the data never reach 50 % inhibition from both sides, or ``ic`` lies
    outside the tested range."""
    f = np.asarray(frac, float)
    crosses = bool(np.nanmin(f) <= 0.5 <= np.nanmax(f))
    inside = bool(np.min(c) <= ic <= np.max(c)) if math.isfinite(ic) else False
    return not (crosses and inside)


def _reported_is_extrapolation(exact: float | None, c: np.ndarray, frac: np.ndarray,
                               ic: float) -> bool:
    """The one rule of :func:`ic50` and :func:`woodhull` (``IC50Result.extrapolated``): the
    reported IC50 is an extrapolation only when it is a fit beyond the data -- never when the
    model gives it exactly (``exact``, the equilibrium root, not None), else when the
    Hill-fit ``ic`` is not determined by the data (:func:`_is_extrapolated`)."""
    return exact is None and _is_extrapolated(c, frac, ic)


def _ic50_bound(c: np.ndarray, frac: np.ndarray, ic: float) -> str:
    """The IC50 bound the data give when the Hill-fit ``ic`` (M) is extrapolated (text)."""
    inh = 1.0 - np.asarray(frac, float)
    lo, hi = float(np.min(c)), float(np.max(c))
    if np.nanmax(inh) < 0.5:
        return (f"IC50 > {_conc_text(hi)} (extrapolated: largest inhibition "
                f"{np.nanmax(inh) * 100:.3g} %, below 50 % at every concentration)")
    if np.nanmin(inh) > 0.5:
        return (f"IC50 < {_conc_text(lo)} (extrapolated: smallest inhibition "
                f"{np.nanmin(inh) * 100:.3g} %, above 50 % at every concentration)")
    return (f"IC50 ~ {_conc_text(ic)} (extrapolated: the Hill fit puts it outside the tested "
            f"{_conc_text(lo)} to {_conc_text(hi)} although the data cross 50 % inhibition)")


def _peak_exact(su: _Setup, c: float, preincubation: float, dur: float, h: float) -> float:
    """Exact peak conductance of the peak-inhibition protocol at blocker concentration c."""
    rest = su.equilibrium(False)
    p_start = rest
    if preincubation > 0 and c > 0:
        _, occ = su.exact(Protocol([su.step(preincubation, False, c)]), preincubation, rest)
        p_start = occ[-1]
    _, occ = su.exact(Protocol([su.step(dur, True, c)]), h, p_start)
    return float((occ @ su.g).max())


def _control_peak(su: _Setup, preincubation: float, dur: float, dt: float | None) -> float:
    """Exact drug-free peak conductance of the peak protocol (coarse grid); ValueError if 0."""
    g0 = _peak_exact(su, 0.0, preincubation, dur, dur / 1000 if dt is None else dt)
    if not g0 > 0:
        raise ValueError(f"the control peak conductance is 0 (duration={dur:g} s of agonist "
                         "from rest): no channel opens, so inhibition is undefined; lengthen "
                         "duration or check agonist")
    return g0


def _peak_centre(su: _Setup, guess: float, g0: float, preincubation: float, dur: float,
                 dt: float | None) -> float | None:
    """Concentration (M) near the exact peak IC50: decade scan up from ``guess`` (coarse grid)
    to the concentration limit ``_validate.MAX_CONCENTRATION`` (included); ``g0`` is the
    control peak from :func:`_control_peak` on the same grid.  None when the peak is not
    half-blocked at that limit."""
    h = dur / 1000 if dt is None else dt
    top = V_.MAX_CONCENTRATION
    c = min(guess, top)
    prev_c, prev_f = c / 10, 1.0
    while True:
        f = _peak_exact(su, c, preincubation, dur, h) / g0
        if f <= 0.5:
            # log-linear interpolation between the bracketing decades
            w = (prev_f - 0.5) / (prev_f - f) if prev_f != f else 0.5
            return float(prev_c * (c / prev_c) ** w)
        if c >= top:
            return None
        prev_c, prev_f = c, f
        c = min(c * 10, top)


def _negligible_block(su: _Setup, kind: str, frac_top: float) -> ValueError:
    """The refusal of a default concentration grid when the IC50 lies beyond the
    concentration limit (``_validate.MAX_CONCENTRATION``)."""
    return ValueError(
        f"ic50: block by {su.blocker.name!r} is negligible at V = {su.V / mV:g} mV: the exact "
        f"{'steady-state' if kind == 'steady' else 'peak'} I/I0 at {V_.MAX_CONCENTRATION:g} M "
        f"(the largest concentration ketacore accepts) is {frac_top:.3g} > 0.5, so the IC50 "
        f"is > {V_.MAX_CONCENTRATION:g} M and no default concentration grid can bracket it; "
        f"choose a voltage where the blocker blocks, or pass concentrations "
        f"(<= {V_.MAX_CONCENTRATION:g} M) for the partial curve")


def _steady_fraction(su: _Setup, c: float, g0: float) -> float:
    return float(su.conductance(su.equilibrium(True, c)) / g0)


def _exact_ic50_root(su: _Setup, g0: float) -> float | None:
    """The exact steady-state IC50 (M): root of I/I0 = 1/2 in log10 concentration from 1e-15 M
    to the largest concentration ketacore accepts (``_validate.MAX_CONCENTRATION``); None when
    the channel is not half-blocked there."""
    from scipy import optimize
    top = V_.MAX_CONCENTRATION
    l_top = math.log10(top)

    def f(lc):
        return _steady_fraction(su, min(10.0 ** lc, top), g0) - 0.5
    if f(l_top) > 0:  # not half-blocked at the concentration limit
        return None
    return min(10.0 ** optimize.brentq(f, -15.0, l_top, xtol=1e-14, rtol=1e-14), top)


def ic50(gating: Scheme | str, blocker: Any, concentrations: Any = None, *,
         V: float = -70 * mV, agonist: Mapping[str, float] | None = None,
         kind: str = "steady", also: Sequence[Any] = (),
         background: Mapping[str, float] | None = None,
         duration: float | None = None, preincubation: float = 10 * s, dt: float | None = None,
         method: str = "exact", n_channels: int | None = None, n_trials: int | None = None,
         rng: Any = None, engine: str = "auto", temperature: float | None = None) -> IC50Result:
    """Inhibition curve (I/I0 against blocker concentration) with a Hill fit.

    Parameters
    ----------
    gating : Scheme or str
        Gating scheme or a model name (``kc.models.available()``).
    blocker : Blocker or str
        Blocker definition or library name (``kc.blockers.available()``).
    concentrations : array_like, optional
        Blocker concentrations (M), > 0.  Default: 17 points log-spaced over ±2 decades around
        the exact steady-state IC50.
    V : float, default −70 mV
        Holding voltage (V).
    agonist : mapping, optional
        Gating-ligand concentrations (M) during agonist application; default
        ``{"glutamate": 1e-3}``.
    kind : {"steady", "peak"}
        ``"steady"``: equilibrium block during continuous co-application, from exact
        equilibrium theory (:func:`ketacore.theory.equilibrium`; no time course).
        ``"peak"``: from drug-free rest, ``preincubation`` (s) with the blocker alone, then
        agonist + blocker for ``duration`` (s); I/I0 is the ratio of the peak conductance to
        the peak of the identical drug-free protocol.
    also : sequence of Blocker or str
        Further blockers composed with the scheme (e.g. ``["mg"]``), their concentrations in
        ``background``.
    background : mapping, optional
        Concentrations (M) held constant throughout (e.g. ``{"mg": 1e-3}``).
    duration : float, optional
        Agonist application (s) for ``kind="peak"`` (default 0.5 s), or, for
        ``kind="steady"`` with ``method="stochastic"``, the averaging window at equilibrium
        (default 1 s).
    preincubation : float, default 10 s
        Blocker-alone pre-application for ``kind="peak"`` (s), ≥ 0.
    dt : float, optional
        Output grid (s) for protocol runs; default ``duration/5000`` (peak) or
        ``duration/100`` (stochastic steady state).
    method : {"exact", "stochastic"}
    n_channels, n_trials, rng, engine
        Stochastic settings (``method="stochastic"`` only): channels per trial (default
        1000), trials (default 20), SPEC 7 seed, and the :func:`ketacore.simulate` method.
        ``rng`` as in :func:`ketacore.simulate`: None, an int or a SeedSequence gives that
        root entropy; a numpy Generator is drawn from (advancing it: repeated calls give
        independent replicates).  The entropy is stored in ``result.meta["entropy"]`` and
        ``rng=result.meta["entropy"]`` reproduces the run (including the SEs: the jackknife
        below draws no random numbers).  One control run (``kind="steady"``: the drug-free
        equilibrium window; ``"peak"``: the drug-free protocol) and one run per concentration
        are simulated, independently, each with ``n_trials`` trials; I/I0 divides every
        concentration's trial mean by the same control trial mean.  ``ic50_se`` and
        ``hill_se`` are delete-one jackknife SEs over trials (see Notes).
    temperature : float, optional
        K; default the gating scheme's temperature (``gating.temperature``, e.g. 295.15 K =
        22 °C for ``erreger2005_2a``).  Every step, equilibrium and relaxation of the
        experiment (control and drug, exact and stochastic) is taken at it: rates with a
        ``q10`` (gating and blocker) and the Woodhull factor exp(zδFV/RT) of the blocker's
        K_B(V, T).  In kelvin: 35 °C is ``ketacore.units.celsius(35)`` (a value such as 35 is
        refused).  Recorded in ``result.meta["temperature"]`` (K, also when defaulted) and
        printed by ``summary()`` in °C.

    Returns
    -------
    IC50Result

    Raises
    ------
    ValueError, TypeError
        Invalid inputs (the message names the parameter); with ``kind="peak"``, a ``dt``
        longer than the agonist application ``duration``.

    Warns
    -----
    RuntimeWarning
        The reported IC50 is an extrapolation of the Hill fit: there is no exact IC50 (it is
        exact, ``ic50_exact``, for ``kind="steady"`` with ``method="exact"``, and then never
        warned about) and the given ``concentrations`` never reach 50 % inhibition (or never
        fall below it), or the fitted IC50 lies outside the tested range.  The result is
        returned with ``extrapolated=True`` and its text gives the bound the data support (e.g.
        ``IC50 > 10 uM (extrapolated: largest inhibition 12 %)``).  The same rule flags and
        warns in :func:`woodhull`.  The default concentration grid (centred on the IC50)
        never warns.
    UserWarning
        ``duration`` or ``preincubation`` longer than :data:`LONG_PHASE` (1 h): durations are
        in seconds (``ketacore.units.ms`` for milliseconds).

    Notes
    -----
    Hill equation ``I/I0 = 1/(1 + ([B]/IC50)^nH)`` fitted by ``scipy.optimize.curve_fit`` in
    log10(IC50) (weighted by 1/``fraction_se``² in the stochastic case).

    Standard errors with ``method="stochastic"``: the points share one control estimate, so
    their errors are correlated and the fit covariance (independent points) underestimates
    the SEs (a 40-seed audit, ``n_channels=1000``, ``n_trials=8``: (IC50 − exact)/SE had SD
    2.1 instead of 1; 1.1-1.3 with the jackknife, as the t law below gives).  Trials are
    independent replicates, so ``ic50_se`` and ``hill_se`` are delete-one jackknife SEs over
    trials (Efron & Stein 1981, Ann Stat 9:586,
    doi:10.1214/aos/1176345462): for k = 1 … n (n = ``n_trials``), trial k is removed from
    the control run and from every concentration's run, the control mean and SE, each I/I0
    and its delta-method SE, and the weighted Hill fit (started from the full fit) are
    recomputed from the n − 1 others, giving IC50_(k) and nH_(k); then
    ``SE(θ) = sqrt((n − 1)/n · Σ_k (θ_(k) − θ̄)²)``, θ̄ the mean of the θ_(k); ``ic50_se`` in M,
    ``hill_se`` dimensionless.  A leave-one-out point SE of 0 (its remaining trials agree,
    e.g. no open channel in any, or the single trial left when n = 2) is replaced by the
    full-data SE of that point.  The point estimates (``fraction``, ``ic50``, ``hill``) are
    the full-data fit, unchanged by the jackknife, and the jackknife adds n Hill fits (a few
    ms each).  The SE has about n − 1 degrees of freedom: (IC50 − true)/``ic50_se`` is close
    to Student t with n − 1 degrees of freedom (SD sqrt((n − 1)/(n − 3)), 1.18 for n = 8),
    so use ``n_trials`` ≳ 10 for a stable SE.  Points near complete block with a fraction of
    an open channel per trial make the weights, and so the jackknife SE, erratic (in a check
    with about 0.2 open channels per trial at the top concentrations the SE was too large:
    z SD 0.64).

    For a fully trapping blocker whose blocked arm copies the gating, the exact equilibrium
    curve is a Hill curve with IC50 = K_B = k_off/k_on at every agonist concentration (the
    Hill fit to its stochastic points is then unbiased for the exact IC50 to first order); a
    sequential blocker gives IC50 = K_B/Po0 (reference section 5).  Gilling et al. 2009
    (doi:10.1016/j.neuropharm.2009.01.012) report ketamine IC50 0.71 µM, nH 0.84 at −70 mV
    on GluN1/2A.
    """
    _warn_long("ic50", duration=duration, preincubation=preincubation)
    r = _ic50(gating, blocker, concentrations, V=V, agonist=agonist, kind=kind, also=also,
              background=background, duration=duration, preincubation=preincubation, dt=dt,
              method=method, n_channels=n_channels, n_trials=n_trials, rng=rng, engine=engine,
              temperature=temperature)
    if r.extrapolated:      # the shared rule: a fitted IC50 beyond the data, never an exact one
        warnings.warn(f"ic50: {r.bound()}; the Hill-fit IC50 {_conc_text(r.ic50)} is an "
                      "extrapolation of the Hill equation beyond the data (its SE does not "
                      "measure that), flagged result.extrapolated; use concentrations that "
                      "bracket 50 % inhibition (or the default grid)", RuntimeWarning,
                      stacklevel=2)
    return r


def _ic50(gating, blocker, concentrations, *, V, agonist, kind, also, background, duration,
          preincubation, dt, method, n_channels, n_trials, rng, engine,
          temperature=None) -> IC50Result:
    """:func:`ic50` without the extrapolation warning (woodhull issues its own)."""
    su = _Setup(gating, blocker, V=V, agonist=agonist, also=also, background=background,
                method=method, n_channels=n_channels, n_trials=n_trials, rng=rng, engine=engine,
                temperature=temperature)
    if kind not in ("steady", "peak"):
        raise ValueError(f"kind must be 'steady' or 'peak', got {kind!r}")
    _check_blocker(su.blocker, "ic50", steady=kind == "steady",
                   undefined="no IC50" if kind == "peak" else "no steady-state IC50")
    preincubation = V_.real("preincubation", preincubation, nonnegative=True)
    if duration is not None:
        duration = V_.duration("duration", duration)
    if dt is not None:
        dt = V_.real("dt", dt, positive=True)
    if concentrations is not None:
        cs = np.atleast_1d(V_.real_array("concentrations", concentrations))
        if cs.ndim != 1 or cs.size < 3:
            raise ValueError("concentrations must be a 1-D array of at least 3 values (M)")
        if not np.all(np.isfinite(cs)) or np.any(cs <= 0) or np.any(cs > V_.MAX_CONCENTRATION):
            raise ValueError(f"concentrations must be finite, > 0 and <= "
                             f"{V_.MAX_CONCENTRATION:g} M (use units.uM)")
        V_.implausible_concentrations("concentrations", cs)   # UnitsWarning above 100 mM
        cs = np.sort(cs)
    # grid of the protocol runs, refused before any work when too long or too large
    if kind == "peak":
        dur_run = 0.5 if duration is None else duration
        if dt is not None and dt > dur_run:
            raise ValueError(f"dt={dt:g} s is longer than the agonist application duration="
                             f"{dur_run:g} s{' (default)' if duration is None else ''}: the "
                             "peak would be read from the first sample only; pass dt <= "
                             "duration (default duration/5000)")
        n_run = _grid_points("ic50 (kind='peak', duration / dt)", dur_run,
                             dur_run / 5000 if dt is None else dt)
        su.check_run("ic50", n_run)
    elif su.method == "stochastic":
        dur_run = 1.0 if duration is None else duration
        n_run = _grid_points("ic50 (stochastic steady state, duration / dt)", dur_run,
                             dur_run / 100 if dt is None else dt)
        su.check_run("ic50", n_run)
    g0_eq = float(su.conductance(su.equilibrium(True)))
    if not g0_eq > 0:
        raise ValueError("the control (drug-free) steady-state conductance is 0 with this "
                         "agonist; inhibition is undefined")
    g0_peak = _control_peak(su, preincubation, dur_run, dt) if kind == "peak" else None
    irreversible = _never_leaves(su.blocker)   # only with kind="peak" (refused above)
    root = (_exact_ic50_root(su, g0_eq)
            if (kind == "steady" or concentrations is None) and not irreversible else None)
    if concentrations is None:
        top = V_.MAX_CONCENTRATION
        if kind == "steady":
            if root is None:
                raise _negligible_block(su, kind, _steady_fraction(su, top, g0_eq))
            centre = root
        else:
            if irreversible:
                # no equilibrium guess: block accumulates as k_on [B] t; start low
                rate = (su.blocker.k_on_at(su.V, su.T) * dur_run
                        + su.blocker.k_on_closed * (preincubation + dur_run))
                guess = 1e-2 / rate if rate > 0 else top
            else:
                kd = su.blocker.kd(su.V, su.T)
                guess = root if root is not None else (kd if math.isfinite(kd) else top)
            centre = _peak_centre(su, guess, g0_peak, preincubation, dur_run, dt)
            if centre is None:
                h = dur_run / 1000 if dt is None else dt
                raise _negligible_block(
                    su, kind, _peak_exact(su, top, preincubation, dur_run, h) / g0_peak)
        # 17 points over 4 decades around the IC50, clipped to the concentration limit
        hi = min(centre * 100, top)
        cs = np.geomspace(hi / 1e4, hi, 17)

    frac = np.empty(cs.size)
    fse = np.zeros(cs.size)
    if kind == "steady" and su.method == "exact":
        for i, c in enumerate(cs):
            frac[i] = _steady_fraction(su, c, g0_eq)
    elif kind == "steady":
        dur = 1.0 if duration is None else duration
        h = dur / 100 if dt is None else dt

        def trials_g(c):
            # per-trial mean conductance over the window (fraction of g_max), (n_trials,)
            p0 = su.equilibrium(True, c)
            _, occ = su.run(Protocol([su.step(dur, True, c)]), h, p0)
            return (occ @ su.g).mean(axis=1)
        g0_tr = trials_g(0.0)
        g0, s0 = _mean_se(g0_tr)
        g_tr = np.empty((cs.size, g0_tr.size))
        for i, c in enumerate(cs):
            g_tr[i] = trials_g(c)
            gm, sm = _mean_se(g_tr[i])
            frac[i], fse[i] = _ratio_se(float(gm), float(sm), float(g0), float(s0))
    else:
        dur = 0.5 if duration is None else duration
        h = dur / 5000 if dt is None else dt
        rest = su.equilibrium(False)

        def peak(c):
            steps = ([su.step(preincubation, False, c)] if preincubation > 0 and c > 0 else [])
            if steps:
                # exact state at the end of the pre-incubation, then the agonist phase
                _, occ = su.exact(Protocol(steps), preincubation, rest)
                p_start = occ[-1]
            else:
                p_start = rest
            return _stochastic_peak(su, Protocol([su.step(dur, True, c)]), h, p_start,
                                    trials=True)
        g0_tr = peak(0.0)
        g0, s0 = (float(x) for x in _mean_se(g0_tr))
        if not g0 > 0:
            raise ValueError("the control peak conductance is 0; check agonist and duration")
        g_tr = np.empty((cs.size, g0_tr.size))
        for i, c in enumerate(cs):
            g_tr[i] = peak(c)
            gm, sm = _mean_se(g_tr[i])
            frac[i], fse[i] = _ratio_se(float(gm), float(sm), float(g0), float(s0))

    guess = root if root is not None else float(np.interp(0.5, frac[::-1], cs[::-1]))
    ic, ic_se, nh, nh_se = _fit_hill(cs, frac, fse, guess)
    if su.method == "stochastic":
        # every fraction shares the control: SEs from the delete-one jackknife over trials
        ic_se, nh_se = _hill_jackknife(cs, g0_tr, g_tr, fse, ic, nh)
    exact = root if (kind == "steady" and su.method == "exact") else None
    meta = su.meta()
    if exact is not None:
        # (an exact root of a scheme out of detailed balance -- ketamine_closed_route -- is a
        # non-equilibrium steady state; helper-103's audit: it was labelled "equilibrium")
        from .theory import is_reversible
        with V_.quiet_units():     # (the root may lie above 100 mM: Mg2+ at +40 mV)
            meta["detailed_balance"] = bool(is_reversible(su.scheme, V=su.V, **su.tkw,
                                                          **su.cond(True, exact)))
    return IC50Result(concentrations=_frozen(cs), fraction=_frozen(frac),
                      fraction_se=_frozen(fse), ic50=float(ic), ic50_se=float(ic_se),
                      hill=nh, hill_se=nh_se, ic50_exact=exact, kind=kind, meta=meta,
                      extrapolated=_reported_is_extrapolation(exact, cs, frac, float(ic)))


# =========================================================================== Woodhull
@dataclass(frozen=True, repr=False)
class WoodhullResult(_ResultBase):
    """IC50 against voltage and the Woodhull fit (:func:`woodhull`).

    ``ln IC50(V) = ln K_d(0) + zδ·V·F/(R·T)`` (Woodhull 1973, doi:10.1085/jgp.61.6.687).

    Attributes
    ----------
    voltages : ndarray
        Holding voltages (V).
    ic50, ic50_se : ndarray
        IC50 (M) at each voltage and its SE (M): 0 for an exact equilibrium root, else the
        ``ic50_se`` of that voltage's :func:`ic50` (stochastic: its delete-one jackknife SE
        over trials, which carries the correlation of the points through their shared
        control).
    z_delta, z_delta_se : float
        Fitted valence × electrical distance (dimensionless) and its SE (NaN with only two
        voltages); see :func:`woodhull` for how the SE is computed.
    kd0, kd0_se : float
        Fitted apparent dissociation constant at 0 mV (M) and its SE (M).
    temperature : float
        Temperature (K) of the experiment (the ``temperature`` of :func:`woodhull`, by default
        the gating scheme's), used for every IC50 and for RT/F.
    meta : dict
    extrapolated : ndarray of bool
        Per voltage: the IC50 used there is an extrapolated Hill fit -- the
        :attr:`IC50Result.extrapolated` of that voltage's :func:`ic50`, the one rule both
        share (never for an exact equilibrium root).  Empty for a result built without it.
        :func:`woodhull` warns when any is True.
    """

    voltages: np.ndarray
    ic50: np.ndarray
    ic50_se: np.ndarray
    z_delta: float
    z_delta_se: float
    kd0: float
    kd0_se: float
    temperature: float
    meta: dict = field(default_factory=dict)
    extrapolated: np.ndarray = field(default_factory=lambda: _frozen([], dtype=bool))

    def predicted(self, V: Any) -> np.ndarray:
        """Fitted IC50 (M) at voltage(s) V (V)."""
        vt = GAS_CONSTANT * self.temperature / FARADAY
        return self.kd0 * np.exp(self.z_delta * np.asarray(V, float) / vt)

    def _ext(self) -> np.ndarray:
        e = np.asarray(self.extrapolated, dtype=bool)
        return e if e.shape == self.voltages.shape else np.zeros(self.voltages.shape, bool)

    def _columns(self):
        return {"V_mV": self.voltages / mV, "ic50_M": self.ic50, "ic50_se_M": self.ic50_se,
                "ic50_extrapolated": self._ext(),
                "woodhull_fit_M": self.predicted(self.voltages)}

    def summary(self) -> str:
        """Text report: K_B(0 mV) (M), z*delta and the IC50 (M) at each voltage (mV), with SEs."""
        m = self.meta
        ext = self._ext()
        exact = m.get("method") == "exact"
        kind = m.get("kind", "steady")
        lines = [
            f"Woodhull fit of {kind} IC50s for {m['blocker']} on {m['gating']} "
            f"({len(self.voltages)} voltages, "
            f"{self.voltages.min() / mV:g} to {self.voltages.max() / mV:g} mV, "
            f"{self.temperature:.2f} K = {_temperature_text(self.temperature)})",
            # (no ± for a fit to exact points: the covariance then measures how far the Woodhull
            # law misses them -- printed as such -- not an uncertainty; as IC50Result)
            f"  z*delta = {_pm(self.z_delta, 0.0 if exact else self.z_delta_se, fmt='.4g')}, "
            f"Kd(0 mV) = {_conc_pm(self.kd0, 0.0 if exact else self.kd0_se, '.4g')}"]
        if kind == "peak":
            lines.append("  (peak IC50s: from the peak of the response to agonist + blocker "
                         "after a preincubation, against the drug-free peak -- not the "
                         "steady-state block -- so z*delta and Kd(0 mV) are apparent values of "
                         "that protocol, not the blocker's K_B(V))")
        if exact and math.isfinite(self.z_delta_se) and self.z_delta_se > 0:
            lines.append(f"  (a fit to exact IC50s: its residual SE {self.z_delta_se:.2g} for z*delta "
                         "is the Woodhull law's misfit, not an uncertainty)")
        if ext.any():
            lines.append(f"  EXTRAPOLATED IC50 (Hill fit beyond the tested concentrations) at "
                         f"{', '.join(f'{v / mV:g}' for v in self.voltages[ext])} mV: the fit "
                         "rests on values the data do not determine")
        return "\n".join(lines + ["  " + _method_line(m)])

    def __repr__(self) -> str:
        n = int(self._ext().sum())
        ext = f", extrapolated at {n} voltage{'s' if n > 1 else ''}" if n else ""
        kind = self.meta.get("kind", "steady")
        k = f", kind={kind!r}" if kind != "steady" else ""
        return f"WoodhullResult(z_delta={self.z_delta:.4g}, kd0={self.kd0:.4g} M{k}{ext})"

    def plot(self, ax=None):
        """IC50 (µM, log axis) against voltage (mV) with the fitted Woodhull line."""
        ax = self._axes(ax)
        v = self.voltages / mV
        if np.any(self.ic50_se > 0):
            ax.errorbar(v, self.ic50 / uM, yerr=self.ic50_se / uM, fmt="o", label="model")
        else:
            ax.plot(v, self.ic50 / uM, "o", label="model")
        ext = self._ext()
        if ext.any():
            ax.plot(v[ext], self.ic50[ext] / uM, "x", color="red", ms=9,
                    label="extrapolated IC50 (beyond the tested concentrations)")
        vv = np.linspace(v.min(), v.max(), 100)
        ax.plot(vv, self.predicted(vv * mV) / uM, "-",
                label=f"Woodhull: zδ {self.z_delta:.3g}, Kd(0) "
                      f"{_conc_text(self.kd0).replace('uM', 'µM')}")
        ax.set_yscale("log")
        ax.set_xlabel("V (mV)")
        ax.set_ylabel("IC50 (µM)")
        ax.legend()
        return ax


def woodhull(gating: Scheme | str, blocker: Any, voltages: Any, *,
             agonist: Mapping[str, float] | None = None, kind: str = "steady",
             concentrations: Any = None, also: Sequence[Any] = (),
             background: Mapping[str, float] | None = None, method: str = "exact",
             n_channels: int | None = None, n_trials: int | None = None, rng: Any = None,
             engine: str = "auto", temperature: float | None = None,
             **ic50_options: Any) -> WoodhullResult:
    """IC50 against membrane voltage and the fitted Woodhull zδ and K_d(0).

    Parameters
    ----------
    gating, blocker
        As for :func:`ic50`, applied at each voltage.
    voltages : array_like
        At least two distinct holding voltages (V).
    agonist, kind, concentrations, also, background
        As for :func:`ic50`, applied at each voltage.
    method, n_channels, n_trials, rng, engine
        As for :func:`ic50`; with ``method="stochastic"`` each voltage uses an independent
        stream (its own control and concentration runs), so the IC50s of different voltages
        are independent, and the fit is weighted by 1/SE(ln IC50)² with SE(ln IC50) =
        ``ic50_se/ic50`` of each voltage (the jackknife SE of :func:`ic50`; see Notes for
        ``z_delta_se``).  A numpy Generator is drawn from once
        (the root entropy) and only by a call that returns: if any voltage is refused (for
        example negligible block there), its state is put back.
    temperature : float, optional
        K; default the gating scheme's temperature (``gating.temperature``).  As for
        :func:`ic50`, at every voltage, and V_T = RT/F of the fit is taken at it
        (``result.temperature``, ``result.meta["temperature"]``).  For a trapping blocker
        whose arm copies gating (IC50 = K_B(V, T)) the fitted zδ does not depend on it and
        K_d(0) scales as ``(q10_off/q10_on)**((T - t_ref)/10)``.  In kelvin
        (``ketacore.units.celsius(35)`` for 35 °C).
    **ic50_options
        Passed to :func:`ic50`: ``duration``, ``preincubation``, ``dt`` (TypeError for any
        other name).

    Returns
    -------
    WoodhullResult

    Warns
    -----
    RuntimeWarning
        One warning, naming the voltages, when the IC50 used at some voltage is an
        extrapolation of its Hill fit, by the rule of :func:`ic50` (no exact IC50 there, and
        the given ``concentrations`` do not bracket 50 % inhibition); those voltages are
        flagged in ``result.extrapolated``.  An exact equilibrium IC50 (``kind="steady"``,
        ``method="exact"``) is never an extrapolation, whatever the concentrations.
    UserWarning
        Once per call (not per voltage), ``duration`` or ``preincubation`` longer than
        :data:`LONG_PHASE` (1 h), as in :func:`ic50`.

    Notes
    -----
    ``ln IC50 = ln K_d(0) + zδ V/V_T`` with ``V_T = RT/F`` at ``temperature``, fitted by
    (weighted) linear least squares.  SEs of zδ (dimensionless) and K_d(0) (M, by the delta
    method from the SE of ln K_d(0)) are from the fit covariance ``s² (XᵀWX)⁻¹``, W the
    weights: ``method="exact"``, unweighted, s² the residual variance RSS/(m − 2) over the m
    voltages (a measure of how far ln IC50 is from linear in V, not a noise); stochastic,
    weights 1/SE(ln IC50)² (SE(ln IC50) = ``ic50_se/ic50``, the jackknife SE of each
    voltage's :func:`ic50`, voltages being independent; unweighted as exact if any SE is not
    > 0) and ``s² = max(1, RSS_w/(m − 2))`` -- the propagated per-voltage SEs, scaled up
    (never down) when the weighted residuals scatter more than they allow (Birge ratio),
    which with 3 voltages inflates the SE by a factor of 1.17 on average when the model
    holds (3 voltages, ``n_trials=16``: (zδ − exact)/SE had SD 0.98 and RMS 0.83 in checks
    of 200 and 100 seeds; 1.4-1.5 with the fit-covariance IC50 SEs used before).
    NaN SEs with two voltages.  With ``method="exact"`` and ``kind="steady"`` the IC50 at
    each voltage is the exact equilibrium root, not a curve fit.  For a trapping blocker with
    copied gating (or a sequential blocker on voltage-independent gating) this recovers the
    blocker's zδ = z(δ_on + δ_off) exactly.  A blocker defined with a fixed ``thermal_voltage``
    (e.g. Kampa's 25 mV) has an effective zδ scaled by (RT/F)/thermal_voltage.  Gilling et al.
    2009 report δ = 0.79 for ketamine (z = +1 assumed).
    """
    vs = np.atleast_1d(V_.real_array("voltages", voltages))
    if vs.ndim != 1:
        raise ValueError("voltages must be a 1-D array with at least two distinct values (V)")
    for v in vs:
        V_.voltage("voltages[...]", float(v))
    if np.unique(vs).size < 2:
        raise ValueError("voltages must be a 1-D array with at least two distinct values (V)")
    vs = np.sort(vs)
    bad = sorted(set(ic50_options) - {"duration", "preincubation", "dt"})
    if bad:
        raise TypeError(f"woodhull: unexpected keyword argument(s) {bad}; **ic50_options "
                        "takes duration, preincubation and dt")
    _warn_long("woodhull", **{k: ic50_options[k] for k in ("duration", "preincubation")
                              if k in ic50_options})
    temperature = _temperature(temperature)
    seeds: dict = {}
    if method == "stochastic":
        if isinstance(rng, np.random.Generator):
            seeds["rng"] = rng        # drawn from on first use, after ic50 validated it all
        else:
            from . import _rng
            seeds["root"] = _rng.root_entropy(rng)   # validates; consumes no caller state
    ics, ses = [], []
    ext: list[bool] = []
    bounds: list[str] = []
    meta = None
    # A voltage can be refused only once it is reached (negligible block there is known from
    # its own equilibrium), after an earlier voltage drew the root entropy from a Generator: a
    # refused call puts the Generator back, so it advances only when a result is returned.
    saved = rng.bit_generator.state if isinstance(seeds.get("rng"), np.random.Generator) else None
    try:
        for j, v in enumerate(vs):
            r = _ic50(gating, blocker, concentrations, V=float(v), agonist=agonist, kind=kind,
                      also=also, background=background, method=method, n_channels=n_channels,
                      n_trials=n_trials,
                      rng=_DeferredSeed(seeds, j) if method == "stochastic" else rng,
                      engine=engine, duration=ic50_options.get("duration"),
                      preincubation=ic50_options.get("preincubation", 10 * s),
                      dt=ic50_options.get("dt"), temperature=temperature)
            ics.append(r.ic50_exact if r.ic50_exact is not None else r.ic50)
            ses.append(0.0 if r.ic50_exact is not None else r.ic50_se)
            ext.append(bool(r.extrapolated))        # the rule of ic50 (IC50Result)
            bounds.append(r.bound())
            meta = dict(r.meta)
    except BaseException:
        if saved is not None:
            rng.bit_generator.state = saved
        raise
    ics = np.asarray(ics)
    ses = np.asarray(ses)
    T = _gating(gating).temperature if temperature is None else temperature
    weighted = method == "stochastic" and bool(np.all(ses > 0))
    kd0, kd0_se, z_delta, z_delta_se = _woodhull_fit(
        vs, np.log(ics), ics / ses if weighted else None, T)   # weights 1 / SE(ln IC50)
    if method == "stochastic":
        meta["entropy"] = seeds["root"]
    meta["V"] = float("nan")
    meta["voltages"] = vs.tolist()
    meta["kind"] = kind
    if any(ext):
        where = "; ".join(f"{v / mV:g} mV: {b}" for v, b, e in zip(vs, bounds, ext) if e)
        warnings.warn(f"woodhull: the IC50 at {sum(ext)} of {vs.size} voltages is an "
                      f"extrapolation of its Hill fit ({where}), so the Woodhull fit rests on "
                      "extrapolated values (flagged result.extrapolated); use concentrations "
                      "that bracket 50 % inhibition at every voltage (or the default grid)",
                      RuntimeWarning, stacklevel=2)
    return WoodhullResult(voltages=_frozen(vs), ic50=_frozen(ics), ic50_se=_frozen(ses),
                          z_delta=z_delta, z_delta_se=z_delta_se, kd0=kd0,
                          kd0_se=kd0_se, temperature=float(T), meta=meta,
                          extrapolated=_frozen(ext, dtype=bool))


def _woodhull_fit(vs: np.ndarray, ln_k: np.ndarray, w: np.ndarray | None,
                  T: float) -> tuple[float, float, float, float]:
    """Woodhull fit ``ln K(V) = ln K(0) + zδ·V/V_T`` (V_T = RT/F at ``T`` K) by linear least
    squares: ``(K(0) (M), its SE, zδ, its SE)``; SEs NaN with two points.  ``w`` (optional)
    are weights 1/SE(ln K) of stochastic points: the fit is then weighted and its residual
    variance is never taken below 1 (absolute SEs: never less than the propagated error).
    Shared by :func:`woodhull` (K = IC50) and :func:`iv_curve` (K = the apparent K(V))."""
    vt = GAS_CONSTANT * T / FARADAY
    X = np.column_stack([np.ones_like(vs), vs / vt])
    y = np.asarray(ln_k, float)
    weighted = w is not None
    if not weighted:
        w = np.ones_like(y)
    beta, *_ = np.linalg.lstsq(X * w[:, None], y * w, rcond=None)
    n = vs.size
    XtX_inv = np.linalg.inv((X * w[:, None]).T @ (X * w[:, None]))
    if n > 2:
        rss = float(np.sum((w * (y - X @ beta)) ** 2))
        s2 = rss / (n - 2)
        if weighted:
            s2 = max(s2, 1.0)  # absolute SEs: never report less than the propagated error
        cov = s2 * XtX_inv
        se_b = np.sqrt(np.clip(np.diag(cov), 0, None))
    else:
        se_b = np.full(2, np.nan)
    kd0 = float(math.exp(beta[0]))
    return kd0, float(kd0 * se_b[0]), float(beta[1]), float(se_b[1])


# =========================================================================== kinetics
@dataclass(frozen=True, repr=False)
class BlockKineticsResult(_ResultBase):
    """Onset and recovery of block at one concentration (:func:`block_kinetics`).

    Attributes
    ----------
    concentration : float
        Blocker concentration (M) during onset.
    time_on, fraction_on : ndarray
        Onset phase: time (s) from the start of co-application and I/I0 (trial mean).
    time_off, fraction_off : ndarray
        Recovery phase (agonist continues, blocker removed): time (s) and I/I0.
    tau_on, tau_on_se, tau_off, tau_off_se : float
        Fitted time constants (s) and SEs: for ``method="exact"`` the fit to the exact trace
        and its fit-covariance SE; for ``method="stochastic"`` the fit to the trial-mean trace
        and its jackknife SE over trials (see :func:`block_kinetics`).  With two
        exponentials, the amplitude-weighted mean and its delta-method SE (exact) or jackknife
        SE (stochastic).
    taus_on, weights_on, taus_off, weights_off : ndarray
        Fitted components (s) and their fractional amplitudes.
    theory_tau_on, theory_tau_off : float
        Dominant exact relaxation time constant (s) of the open probability
        (:func:`ketacore.theory.relaxation`): the component with the largest |amplitude|
        (the one carrying most of the current change; not the largest area |a·τ|, which a
        slow component of negligible amplitude can have).  When several components carry
        comparable amplitude (ketamine on ``erreger2005_2a``: 28 ms, 48 ms and 1.35 s) a
        single-exponential τ lies between them; see ``theory_taus_*``/``theory_amps_*``.
    theory_taus_on, theory_amps_on, theory_taus_off, theory_amps_off : ndarray
        All exact time constants (s) and their open-probability amplitudes.
    steady_fraction : float
        Exact equilibrium I/I0 at ``concentration``.
    meta : dict
    unresolved : tuple of str
        Phases (``"onset"``, ``"recovery"``) whose fitted τ (or a fitted component with
        ≥ 10 % of the amplitude) spans fewer than 3 grid steps although the grid resolves
        every exact carrier: the fitted model does not describe that relaxation (e.g. carriers
        of opposite sign, an overshoot), so the τ is not a time constant of it; a
        RuntimeWarning says so.  Empty when every fit is resolved.
    """

    concentration: float
    time_on: np.ndarray
    fraction_on: np.ndarray
    time_off: np.ndarray
    fraction_off: np.ndarray
    tau_on: float
    tau_on_se: float
    tau_off: float
    tau_off_se: float
    taus_on: np.ndarray
    weights_on: np.ndarray
    taus_off: np.ndarray
    weights_off: np.ndarray
    theory_tau_on: float
    theory_tau_off: float
    theory_taus_on: np.ndarray
    theory_amps_on: np.ndarray
    theory_taus_off: np.ndarray
    theory_amps_off: np.ndarray
    steady_fraction: float
    meta: dict = field(default_factory=dict)
    unresolved: tuple = ()

    @property
    def k_on_apparent(self) -> float:
        """Macroscopic on-rate (M⁻¹ s⁻¹) from 1/τ_on = k_on[B] + k_off, k_off = 1/τ_off
        (the convention of Gilling et al. 2009)."""
        return (1.0 / self.tau_on - 1.0 / self.tau_off) / self.concentration

    @property
    def k_off_apparent(self) -> float:
        """Macroscopic off-rate 1/τ_off (s⁻¹)."""
        return 1.0 / self.tau_off

    @property
    def kd_apparent(self) -> float:
        """Dissociation constant (M) the apparent rates imply, ``k_off_apparent /
        k_on_apparent`` (= [B] τ_on / (τ_off − τ_on)); NaN when τ_on ≥ τ_off."""
        k_on = self.k_on_apparent
        return self.k_off_apparent / k_on if k_on > 0 else math.nan

    @property
    def kd_equilibrium(self) -> float:
        """Dissociation constant (M) of the one-step block ``B + O ⇌ OB`` that gives the exact
        steady block at this concentration: ``[B] f / (1 − f)``, f = ``steady_fraction``.
        When :attr:`kd_apparent` differs from it by more than 2x, the single-exponential rates
        do not describe a one-step bimolecular block (several carriers, trapping, Po-dependent
        access): ``summary()`` says so, and the rates are then time constants, not rate
        constants (helper-103's audit: amantadine 100 µM on ``erreger2005_2a``, 4.9 µM vs
        36.6 µM)."""
        f = self.steady_fraction
        return self.concentration * f / (1.0 - f) if 0.0 < f < 1.0 else math.nan

    def _columns(self):
        n_on, n_off = self.time_on.size, self.time_off.size
        t = np.concatenate([self.time_on, self.time_on[-1] + self.time_off])
        return {"time_s": t, "phase": np.array(["onset"] * n_on + ["recovery"] * n_off),
                "fraction_of_control": np.concatenate([self.fraction_on, self.fraction_off])}

    def summary(self) -> str:
        """Text report: onset and recovery time constants (s) with SEs, the exact relaxation
        components and how the experiment was run."""
        m = self.meta
        exact = m.get("method") == "exact"
        def theory(taus, amps) -> str:
            a = np.abs(amps)
            big = [f"{x:.3g}" for x, y in zip(taus, a) if y >= 0.1 * a.max()]
            s = (f"exact theory: largest component {taus[int(np.argmax(a))]:.4g} s "
                 f"({a.max() / a.sum():.0%} of the amplitude)")
            return s + (f"; components >= 10 %: {', '.join(big)} s" if len(big) > 1 else "")
        return "\n".join([
            f"block kinetics of {m['blocker']} ({_conc_text(self.concentration, '.4g')}) on "
            f"{m['gating']} at {m['V'] / mV:g} mV{_temperature_suffix(m)}",
            # (no ± for a fit to an exact trace: see IC50Result._fit_se)
            f"  onset   tau = {_pm(self.tau_on, 0.0 if exact else self.tau_on_se, fmt='.4g')} s "
            f"({theory(self.theory_taus_on, self.theory_amps_on)}); "
            f"steady I/I0 = {self.steady_fraction:.4g}",
            f"  recovery tau = {_pm(self.tau_off, 0.0 if exact else self.tau_off_se, fmt='.4g')} s "
            f"({theory(self.theory_taus_off, self.theory_amps_off)})",
            f"  apparent k_on = {self.k_on_apparent:.4g} /M/s, k_off = "
            f"{self.k_off_apparent:.4g} /s"]
            + self._kd_lines()
            + ([f"  UNRESOLVED fit ({', '.join(self.unresolved)}): the fitted tau spans < 3 "
                "grid steps on a grid that resolves the exact components; use the exact "
                "theory components"] if self.unresolved else [])
            + ["  " + _method_line(m)])

    def _kd_lines(self) -> list:
        ka, ke = self.kd_apparent, self.kd_equilibrium
        if not (math.isfinite(ka) and math.isfinite(ke) and ka > 0 and ke > 0):
            return []
        line = (f"  apparent Kd = k_off/k_on = {_conc_text(ka, '.3g')}; the exact steady block "
                f"is that of Kd = {_conc_text(ke, '.3g')} (one-step block)")
        if max(ka / ke, ke / ka) <= 2.0:
            return [line]
        return [line + f": {max(ka / ke, ke / ka):.2g}x apart, so the fitted rates do not "
                "describe a one-step bimolecular block here (several carriers, trapping or "
                "Po-dependent access): read them as time constants, not rate constants"]

    def __repr__(self) -> str:
        return f"BlockKineticsResult(tau_on={self.tau_on:.4g} s, tau_off={self.tau_off:.4g} s)"

    def plot(self, ax=None):
        """I/I0 during onset and recovery against time (s)."""
        ax = self._axes(ax)
        ax.plot(self.time_on, self.fraction_on, label=f"onset, τ {self.tau_on:.3g} s")
        ax.plot(self.time_on[-1] + self.time_off, self.fraction_off,
                label=f"recovery, τ {self.tau_off:.3g} s")
        ax.axvline(self.time_on[-1], color="0.6", lw=0.8)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("I / I0 (fraction of control)")
        ax.set_title(f"{self.meta['blocker']} "
                     f"{_conc_text(self.concentration, '.4g').replace('uM', 'µM')}")
        ax.legend()
        return ax


def block_kinetics(gating: Scheme | str, blocker: Any, concentration: float, *,
                   V: float = -70 * mV, agonist: Mapping[str, float] | None = None,
                   t_on: float | None = None, t_off: float | None = None,
                   n_samples: int | None = None, n_exponentials: int = 1,
                   also: Sequence[Any] = (),
                   background: Mapping[str, float] | None = None, method: str = "exact",
                   n_channels: int | None = None, n_trials: int | None = None, rng: Any = None,
                   engine: str = "auto",
                   temperature: float | None = None) -> BlockKineticsResult:
    """Onset and recovery time constants of block with continuous agonist.

    Protocol (as in Gilling et al. 2009): from the drug-free equilibrium with agonist, apply
    agonist + ``concentration`` of blocker for ``t_on``, then agonist alone for ``t_off``.
    Exponentials are fitted to I/I0 in each phase (``scipy.optimize.curve_fit``).

    Parameters
    ----------
    gating, blocker
        As for :func:`ic50`.
    concentration : float
        Blocker concentration (M) during onset, > 0.
    V, agonist
        As for :func:`ic50`.
    t_on, t_off : float, optional
        Phase durations (s).  The grid of each phase is uniform, step
        ``dt = t/(n_samples - 1)``.  The *carriers* of a phase are the components of its
        exact I/I0 relaxation (:func:`ketacore.theory.relaxation`) with an amplitude ≥ 10 %
        of the largest one.  Default duration: 8 × the slowest carrier (e.g. Mg2+ 1 mM on
        ``erreger2005_2a`` at −70 mV: onset carried by a 17 µs component, so t_on ≈ 0.13 ms;
        ketamine 10 µM: carriers 28 ms … 1.35 s, so t_on ≈ 11 s).  A given duration must make
        ``dt`` no longer than the slowest carrier (ValueError otherwise: the fit could not
        resolve the relaxation).
    n_samples : int, optional
        Grid points per phase (≥ 20, ≤ :data:`MAX_PHASE_SAMPLES`).  Default: 2000, or more
        where needed to put ≥ 4 grid steps in the fastest carrier (each phase separately;
        ValueError naming t_on/t_off if that would need more than 200 000 points -- the
        carriers then span too many decades for one uniform grid: pass the phase duration
        and ``n_samples`` for the time scale you want).
    n_exponentials : {1, 2}
        Exponential components fitted per phase; with 2 the reported τ is the
        amplitude-weighted mean (memantine in Gilling 2009 is biexponential), and its SE is
        the delta-method SE of that mean (fit covariance; exact) or the SE across trials
        (stochastic).  ``taus_on``/``taus_off`` give the components, without SEs.
    also, background
        As for :func:`ic50`.
    method, n_channels, n_trials, rng, engine
        As for :func:`ic50`.  Stochastic: the exponentials are fitted to the *trial-mean*
        I/I0 of each phase and the SE is the jackknife SE over trials (the n fits with one
        trial left out; Efron & Stein 1981, Ann Stat 9:586, doi:10.1214/aos/1176345462).  The
        fit to the mean converges to the exact fit as trials are added; a mean of per-trial
        fits does not (each noisy fit is biased, and with few open channels some wander off:
        ketamine 10 µM with 1 mM Mg2+, 1000 channels, ~3 open per trial, gave per-trial means
        of 207 s for a 3.6 s onset).  Flatness of a noisy trace is judged from its trend
        against its noise (:func:`_fit_exponentials`), not from its end points.  A trial mean
        too noisy to show a relaxation is refused (ValueError: raise ``n_channels`` or
        ``n_trials``).  When the exact relaxation is multi-exponential (e.g. ketamine on
        ``erreger2005_2a``: fast block of already-open channels, then slower block as others
        open), a single-exponential τ depends on the grid and window; compare stochastic and
        exact values on the same grid.
    temperature : float, optional
        K; default the gating scheme's temperature (``gating.temperature``).  As for
        :func:`ic50`: both phases, their exact relaxations (``theory_taus_*``: the
        eigenvalues of the Q matrix at this temperature) and the stochastic runs are taken
        at it.  In kelvin (``ketacore.units.celsius(35)`` for 35 °C).

    Returns
    -------
    BlockKineticsResult

    Raises
    ------
    ValueError
        Invalid inputs; a blocker with ``k_on = 0`` (never binds) or ``k_off = 0`` and
        ``k_escape = 0`` (never leaves: no recovery; use :func:`trapping`); a grid that cannot
        resolve the relaxation (above); or a fitted time constant (the reported τ, or a
        fitted component with ≥ 10 % of the amplitude) shorter than 3 grid steps
        ``dt = t_on/(n_samples - 1)`` (or ``t_off/…``) on a grid whose step is also longer
        than 1/3 of the fastest exact carrier: the message gives the ``t_on``/``t_off`` or
        ``n_samples`` (each putting ≥ 4 steps in that carrier) that resolve it.  The default
        grids always resolve the carriers.  With ``method="stochastic"``, a phase whose
        trial-mean I/I0 shows no relaxation above its noise: too few open channels (the
        message gives how many conduct per trial at control; raise ``n_channels`` or
        ``n_trials`` -- a longer phase does not help).

    Warns
    -----
    UserWarning
        ``t_on`` or ``t_off`` longer than :data:`LONG_PHASE` (1 h): durations are in
        seconds (``ketacore.units.ms`` for milliseconds).
    RuntimeWarning
        A fitted τ shorter than 3 grid steps on a grid that resolves every carrier: the
        fitted model does not describe the relaxation (e.g. carriers of opposite sign, an
        overshoot) and a finer grid would not change it.  The phase is listed in
        ``result.unresolved``; the message says whether ``n_exponentials=2`` resolves it.

    Notes
    -----
    The exact relaxation (:func:`ketacore.theory.relaxation`) of each phase is returned beside
    the fit.  For a sequential blocker on a fast C ⇌ O gating scheme with open probability Po,
    the dominant onset rate is ``k_on[B]·Po + k_off``; for a trapping blocker whose arm copies
    gating it is ``Po·(k_on[B] + k_off)`` -- macroscopic rates are Po-scaled open-channel
    rates.  Gilling 2009 report for ketamine at 10 µM, −70 mV: τ_on ≈ 0.58 s,
    τ_off ≈ 4.5 s.
    """
    su = _Setup(gating, blocker, V=V, agonist=agonist, also=also, background=background,
                method=method, n_channels=n_channels, n_trials=n_trials, rng=rng, engine=engine,
                temperature=temperature)
    _check_blocker(su.blocker, "block_kinetics", undefined="no recovery (tau_off is infinite)",
                   unbound="no onset or recovery to fit",
                   advice="use trapping() for an irreversible blocker, or give k_off > 0")
    c = V_.concentration("concentration", concentration)
    if not c > 0:
        raise ValueError("concentration must be > 0 (M)")
    if n_samples is not None:
        n_samples = V_.integer("n_samples", n_samples, minimum=20, maximum=MAX_PHASE_SAMPLES)
    n_exponentials = V_.integer("n_exponentials", n_exponentials, minimum=1, maximum=2)
    if t_on is not None:
        t_on = V_.duration("t_on", t_on)
    if t_off is not None:
        t_off = V_.duration("t_off", t_off)
    _warn_long("block_kinetics", t_on=t_on, t_off=t_off)
    su.check_run("block_kinetics", n_samples or _DEFAULT_PHASE_SAMPLES)
    p_ctl = su.equilibrium(True)
    g0 = float(su.conductance(p_ctl))
    if not g0 > 0:
        raise ValueError("the control conductance is 0 with this agonist")

    carriers: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def phase_grid(name: str, given, rel) -> tuple[float, int]:
        """Phase duration and samples: a grid that resolves the carriers of the relaxation."""
        ct, ca = carriers[name] = _carriers(rel, su.g / g0)
        fast, slow = float(ct.min()), float(ct.max())
        length = min(8 * slow, 1e6) if given is None else given
        n = n_samples
        if n is None:
            need = math.ceil(length * _STEPS_PER_TAU / fast) + 1
            if need > _AUTO_MAX_PHASE_SAMPLES:
                span = (f"a {fast:.3g} s component" if fast == slow else
                        f"components from {fast:.3g} s to {slow:.3g} s")
                raise ValueError(
                    f"{name}: the exact relaxation is carried by {span}; with "
                    f"{name}={length:.3g} s, a grid step {name}/(n_samples - 1) resolving "
                    f"{fast:.3g} s needs n_samples >= {need:.6g} (> {_AUTO_MAX_PHASE_SAMPLES} "
                    f"automatic); pass {name} <= "
                    f"{(_AUTO_MAX_PHASE_SAMPLES - 1) * fast / _STEPS_PER_TAU:.3g} s for the "
                    "fast part, or n_samples for the slow part")
            n = max(_DEFAULT_PHASE_SAMPLES, need)
        h = length / (n - 1)
        if not h > 0:
            raise ValueError(f"{name}={given:g} s is too short: its grid step {name}/"
                             f"(n_samples - 1) underflows to 0")
        if h > slow:
            raise ValueError(f"{name}={length:g} s with n_samples={n} gives a grid step "
                             f"of {h:.3g} s, longer than the slowest exact time constant "
                             f"carrying the relaxation of the phase ({slow:.3g} s): the fit "
                             f"cannot resolve the relaxation; shorten {name} (default 8x that "
                             "time constant) or raise n_samples")
        return length, n

    rel_on = su.relaxation(p_ctl, True, c)
    t_on, n_on = phase_grid("t_on", t_on, rel_on)
    _, occ_on_exact = su.exact(Protocol([su.step(t_on, True, c)]), t_on, p_ctl)
    p_end = occ_on_exact[-1]
    rel_off = su.relaxation(p_end, True)
    t_off, n_off = phase_grid("t_off", t_off, rel_off)
    if max(n_on, n_off) > (n_samples or _DEFAULT_PHASE_SAMPLES):
        su.check_run("block_kinetics", max(n_on, n_off))

    # conducting channels per trial at control (for the advice when a stochastic trace is
    # too noisy to fit)
    n_open = (su.n_channels or 0) * float(p_ctl[su.g > 0].sum())
    tt_on, occ_on = su.run(Protocol([su.step(t_on, True, c)]), t_on / (n_on - 1), p_ctl)
    tt_off, occ_off = su.run(Protocol([su.step(t_off, True)]), t_off / (n_off - 1), p_end)
    f_on = (occ_on @ su.g) / g0
    f_off = (occ_off @ su.g) / g0

    def fit(tt, ff, name, length, n):
        phase = "onset" if name == "t_on" else "recovery"
        if su.method == "exact":
            try:
                taus, amps, _, _, se = _fit_exponentials(tt, ff[0], n_exponentials,
                                                         weighted_se=True)
            except ValueError as exc:
                raise ValueError(f"{phase} phase ({name}={length:g} s): {exc}; "
                                 f"lengthen {name}") from None
            w = np.abs(amps) / np.abs(amps).sum()
            res = (float(np.sum(w * taus)), taus, w, se)
        else:
            try:
                res = _fit_trials(tt, ff, n_exponentials)
            except _TooNoisy as exc:
                raise ValueError(
                    f"{phase} phase ({name}={length:g} s): the simulated I/I0 is too noisy to "
                    f"fit ({exc}): too few open channels per trial -- about "
                    f"{n_open:.3g} of the {su.n_channels} channels conduct at control; raise "
                    f"n_channels (now {su.n_channels}) or n_trials (now {su.n_trials}): the "
                    "noise of the trial mean falls as 1/sqrt(n_channels x n_trials) (a longer "
                    f"{name} does not help)") from None
        # a fitted time constant of a few grid steps says nothing about the relaxation
        h = float(tt[1] - tt[0])
        short = [res[0]] + [float(x) for x, wx in zip(res[1], res[2]) if wx >= 0.1]
        if min(short) >= _MIN_FIT_STEPS * h:
            return res
        ct, ca = carriers[name]
        fast = float(ct.min())
        comps = ", ".join(f"{x:.3g} s ({abs(a) / np.abs(ca).sum():.0%})"
                          for x, a in zip(ct, ca))
        head = (f"{phase} phase: fitted tau {min(short):.3g} s is only {min(short) / h:.2g} "
                f"grid steps (dt = {name}/(n_samples - 1) = {h:.3g} s with {name}="
                f"{length:.3g} s, n_samples={n}); exact components carrying the relaxation: "
                f"{comps}")
        if fast < _MIN_FIT_STEPS * h:
            # the grid does not resolve a carrier: refuse, with grids that do (each of them
            # puts >= _STEPS_PER_TAU steps in the fastest carrier, so this branch cannot recur)
            need = math.ceil(length * _STEPS_PER_TAU / fast) + 1
            ways = [f"{name} <= {(n - 1) * fast / _STEPS_PER_TAU:.4g} s"]
            if need <= MAX_PHASE_SAMPLES:
                ways.append(f"n_samples >= {need}")
            if need <= _AUTO_MAX_PHASE_SAMPLES:
                ways.append("n_samples=None (the default grid resolves it)")
            raise ValueError(
                f"{head}: the grid does not resolve the fastest carrier ({fast:.3g} s is "
                f"{fast / h:.2g} grid steps; a fit needs >= {_MIN_FIT_STEPS}); use dt <= "
                f"{fast / _STEPS_PER_TAU:.3g} s, i.e. {' or '.join(ways)}")
        # every carrier is resolved: the fitted model, not the grid, is at fault (a finer
        # grid does not help).  Keep the result, flag it and say why.
        signs = np.sign(ca[np.abs(ca) > 0])
        why = ("its carriers have opposite signs (I/I0 moves one way, then back), which no "
               f"sum of {n_exponentials} exponential(s) of one sign follows"
               if signs.size and signs.min() != signs.max() else
               f"{n_exponentials} exponential(s) do not describe a relaxation with "
               f"{ct.size} carriers")
        hint = f"; theory_taus_{name[2:]}/theory_amps_{name[2:]} hold the exact components"
        if n_exponentials == 1:
            try:
                t2, a2, _, _, _ = _fit_exponentials(tt, ff.mean(axis=0), 2, weighted_se=True,
                                                    noisy=su.method != "exact")
                w2 = np.abs(a2) / np.abs(a2).sum()
                ok = (min([float(np.sum(w2 * t2))] + [float(x) for x, wx in zip(t2, w2)
                                                       if wx >= 0.1]) >= _MIN_FIT_STEPS * h)
            except (ValueError, RuntimeError):
                ok = False
            if ok:
                hint += (f"; n_exponentials=2 describes it on this grid (taus "
                         f"{', '.join(f'{x:.3g}' for x in t2)} s)")
        warnings.warn(f"{head}: the grid resolves every carrier (fastest {fast:.3g} s = "
                      f"{fast / h:.2g} grid steps) but {why}, so this tau is not a time "
                      f"constant of the relaxation and a finer grid will not change it; the "
                      f"result lists the phase in .unresolved{hint}", RuntimeWarning,
                      stacklevel=3)
        unresolved.append(phase)
        return res
    unresolved: list[str] = []
    tau_on, taus_on, w_on, se_on = fit(tt_on, f_on, "t_on", t_on, n_on)
    tau_off, taus_off, w_off, se_off = fit(tt_off, f_off, "t_off", t_off, n_off)
    d_on, taus_th_on, amps_th_on = _dominant(rel_on)
    d_off, taus_th_off, amps_th_off = _dominant(rel_off)
    return BlockKineticsResult(
        concentration=c, time_on=_frozen(tt_on), fraction_on=_frozen(f_on.mean(axis=0)),
        time_off=_frozen(tt_off), fraction_off=_frozen(f_off.mean(axis=0)),
        tau_on=tau_on, tau_on_se=se_on, tau_off=tau_off, tau_off_se=se_off,
        taus_on=_frozen(taus_on), weights_on=_frozen(w_on), taus_off=_frozen(taus_off),
        weights_off=_frozen(w_off), theory_tau_on=d_on, theory_tau_off=d_off,
        theory_taus_on=_frozen(taus_th_on), theory_amps_on=_frozen(amps_th_on),
        theory_taus_off=_frozen(taus_th_off), theory_amps_off=_frozen(amps_th_off),
        steady_fraction=float(su.conductance(su.equilibrium(True, c)) / g0), meta=su.meta(),
        unresolved=tuple(unresolved))


# =========================================================================== trapping
@dataclass(frozen=True, repr=False)
class TrappingResult(_ResultBase):
    """Classic trapping protocol (:func:`trapping`).

    Phases: control (agonist, equilibrium) → ``t_block`` agonist + blocker → ``t_wash`` with
    neither → ``t_recovery`` agonist again.

    Attributes
    ----------
    block, block_se : float
        1 − I/I_ctl at the end of co-application (stochastic: estimated from the mean over
        the last ``window`` of it; see :func:`trapping`).
    trapped_occupancy, trapped_occupancy_se : float
        Blocked occupancy at the end of the wash / blocked occupancy at the end of
        co-application (fraction of the block that stays trapped; model-internal).
    trapped_current, trapped_current_se : float
        Mealing-style current definition: (1 − I_initial/I_ctl)/block, where I_initial and
        I_ctl are the peak amplitudes of the first re-application response with and without
        the blocker (identical protocol otherwise), each measured at its own peak as in a
        recording (peak-to-peak ratio; the drug response usually peaks later, e.g. 20.4 ms
        against 10.6 ms for ketamine 10 µM on ``erreger2005_2a``), so desensitization cancels.
        The peak times are in ``meta["first_peak_time_drug"]`` and
        ``meta["first_peak_time_control"]`` (s from re-application); ``meta["first_peak_time"]``,
        the one peak time recorded before, stays the control's.
    trapped_fraction : float
        The value selected by ``definition`` (see :func:`trapping`).
    definition : {"occupancy", "current"}
    tau_recovery, tau_recovery_se : float
        Single-exponential time constant (s) of the loss of blocked occupancy during
        re-application, fitted over the ``t_recovery`` window, and its SE (fit covariance for
        ``method="exact"``; jackknife over trials of the fit to the trial mean for
        ``"stochastic"``).  NaN when there is nothing to fit (no blocked channel left) or a
        stochastic trial mean too noisy to fit (``meta["tau_recovery_note"]`` says why).
    tau_recovery_extrapolated : bool
        True when ``t_recovery`` is shorter than 1/3 of the recovery time constant (the larger
        of ``tau_recovery`` and ``theory_tau_recovery``): the fit then sees less than
        1 − e^(−1/3) = 28 % of the decay, τ rests on the small curvature of a nearly straight
        trace and is biased by any component the single exponential leaves out (MK-801 1 µM on
        ``erreger2005_2a``: 4200 s from the default 60 s window against 5400 s exact), and the
        SE, which assumes the model, does not measure that bias.  :func:`trapping` warns and
        ``summary()`` says so, as :func:`ic50` does for an extrapolated IC50.
    theory_tau_recovery : float
        Exact dominant time constant (s) of the blocked occupancy during re-application: the
        component of :func:`ketacore.theory.relaxation` (from the exact end-of-wash state,
        agonist conditions) with the largest |amplitude| in the blocked occupancy.  Not the
        same quantity as ``tau_recovery`` when other components carry amplitude (ketamine
        10 µM: 5.31 s, beside a 0.15 s component of 1/6 of the amplitude, while single
        exponentials fitted over 10-600 s give 4.5-5.1 s); the limit of the fit over a long
        window when one component dominates (MK-801: 5400 s).  NaN if not computable.
    theory_taus_recovery, theory_amps_recovery : ndarray
        All exact time constants (s) and their blocked-occupancy amplitudes.
    t_recovered : float
        Time (s) after re-application at which the blocked occupancy first falls below 5 % of
        its value at re-application (NaN if not within ``t_recovery``).
    time : ndarray
        Time (s) from the start of co-application (coarse grid, all phases).
    fraction : ndarray
        I/I_ctl against ``time`` (trial mean), I_ctl the steady control conductance.
    blocked : ndarray
        Blocked occupancy against ``time`` (trial mean).
    relative_recovery : ndarray
        I(t)/I_ctl,same-protocol(t) during re-application, on ``time`` (NaN elsewhere).
    phase_ends : tuple of float
        End times (s) of co-application, wash and re-application.
    meta : dict
    """

    block: float
    block_se: float
    trapped_occupancy: float
    trapped_occupancy_se: float
    trapped_current: float
    trapped_current_se: float
    definition: str
    tau_recovery: float
    tau_recovery_se: float
    t_recovered: float
    time: np.ndarray
    fraction: np.ndarray
    blocked: np.ndarray
    relative_recovery: np.ndarray
    phase_ends: tuple
    meta: dict = field(default_factory=dict)
    tau_recovery_extrapolated: bool = False
    theory_tau_recovery: float = float("nan")
    theory_taus_recovery: np.ndarray = field(default_factory=lambda: _frozen([]))
    theory_amps_recovery: np.ndarray = field(default_factory=lambda: _frozen([]))

    @property
    def trapped_fraction(self) -> float:
        """Trapped fraction in the selected ``definition``."""
        return self.trapped_occupancy if self.definition == "occupancy" else self.trapped_current

    @property
    def trapped_fraction_se(self) -> float:
        """Standard error of :attr:`trapped_fraction` (dimensionless; NaN for exact results)."""
        return (self.trapped_occupancy_se if self.definition == "occupancy"
                else self.trapped_current_se)

    def _columns(self):
        return {"time_s": self.time, "fraction_of_control": self.fraction,
                "blocked_occupancy": self.blocked,
                "recovery_vs_same_protocol_control": self.relative_recovery}

    def _tau_text(self) -> str:
        """The recovery-τ line: the fit, flagged when extrapolated, or why it is NaN."""
        tb, tw, tr = self.phase_ends
        if not math.isfinite(self.tau_recovery):
            why = self.meta.get("tau_recovery_note") or "nothing to fit"
            return f"recovery tau not determined ({why})"
        text = f"recovery tau {_pm(self.tau_recovery, self.tau_recovery_se, fmt='.4g')} s"
        if self.tau_recovery_extrapolated:
            ref = _tau_reference(self.tau_recovery, self.theory_tau_recovery)
            text += (f" EXTRAPOLATED: the {tr - tw:g} s re-application is shorter than tau/3, so "
                     "the fit sees < 28 % of the decay and its SE does not measure the bias"
                     + (f"; largest exact component {self.theory_tau_recovery:.4g} s"
                        if math.isfinite(self.theory_tau_recovery) else "")
                     + f"; use t_recovery >= {_tau_advice(ref):g} s")
        return text

    def summary(self) -> str:
        """Text report: block, trapped fractions (occupancy and current definitions) and recovery
        time constants (s), with the protocol's phases."""
        m = self.meta
        tb, tw, tr = self.phase_ends
        win = m.get("window")
        how = (f" (mean over the last {min(win, tb):g} s of co-application, corrected to its "
               f"end)" if m["method"] == "stochastic" and win is not None else "")
        return "\n".join([
            f"trapping protocol: {m['blocker']} {_conc_text(m['concentration'], '.4g')} on "
            f"{m['gating']} at {m['V'] / mV:g} mV{_temperature_suffix(m)}; {tb:g} s "
            f"co-application, {tw - tb:g} s "
            f"wash, {tr - tw:g} s re-application",
            f"  block {_pm(self.block, self.block_se, 100, '.4g')} %{how}",
            "  trapped (occupancy) "
            f"{_pm(self.trapped_occupancy, self.trapped_occupancy_se, 100, '.4g')} %"
            f", trapped (current, first-response peaks) "
            f"{_pm(self.trapped_current, self.trapped_current_se, 100, '.4g')} %"
            f"  [reported: {self.definition}]",
            f"  {self._tau_text()}; "
            + (f"block < 5 % of trapped after {self.t_recovered:.4g} s"
             if math.isfinite(self.t_recovered) else
             f"block still >= 5 % of trapped at the end of the {tr - tw:g} s re-application"),
            "  " + _method_line(m)])

    def __repr__(self) -> str:
        return (f"TrappingResult(block={self.block:.3f}, trapped_fraction="
                f"{self.trapped_fraction:.3f} ({self.definition}))")

    def plot(self, ax=None):
        """I/I_ctl and blocked occupancy against time (s), phases shaded."""
        ax = self._axes(ax)
        ax.plot(self.time, self.fraction, label="I / I_ctl")
        ax.plot(self.time, self.blocked, "--", label="blocked occupancy")
        tb, tw, _ = self.phase_ends
        ax.axvspan(0, tb, color="0.9", label="agonist + blocker")
        ax.axvspan(tb, tw, color="0.97", label="wash (neither)")
        ax.set_xlabel("time from co-application (s)")
        ax.set_ylabel("fraction")
        ax.set_title(f"trapping: {self.meta['blocker']} "
                     f"{_conc_text(self.meta['concentration'], '.4g').replace('uM', 'µM')}")
        ax.legend()
        return ax


def trapping(gating: Scheme | str, blocker: Any, concentration: float = 10 * uM, *,
             t_block: float = 30 * s, t_wash: float = 120 * s, t_recovery: float = 60 * s,
             V: float = -70 * mV, agonist: Mapping[str, float] | None = None,
             wash_blocker: float = 0.0, definition: str = "occupancy",
             dt: float | None = None, peak_window: float = 0.5 * s, window: float = 1 * s,
             also: Sequence[Any] = (), background: Mapping[str, float] | None = None,
             method: str = "exact", n_channels: int | None = None, n_trials: int | None = None,
             rng: Any = None, engine: str = "auto",
             temperature: float | None = None) -> TrappingResult:
    """The classic trapping protocol (Blanpied 1997; Mealing 1999; reference section 4).

    1. agonist alone to equilibrium (control I_ctl);
    2. agonist + blocker for ``t_block``;
    3. wash with neither for ``t_wash`` (optionally with ``wash_blocker`` M of blocker,
       Kotermanski 2009);
    4. agonist alone for ``t_recovery``: trapped blocker leaves as channels reopen.

    Parameters
    ----------
    gating, blocker
        As for :func:`ic50`.
    concentration : float, default 10 µM
        Blocker concentration (M) during co-application.
    t_block, t_wash, t_recovery : float
        Phase durations (s); defaults 30, 120, 60 s as in Mealing et al. 1999.  Each phase
        needs at least one grid step, and the whole protocol at most
        :data:`MAX_PHASE_SAMPLES` samples.  ``tau_recovery`` is fitted over ``t_recovery``:
        a window shorter than 1/3 of the recovery time constant flags it
        (``tau_recovery_extrapolated``, a UserWarning; slow blockers such as MK-801, τ ≈ 90
        min, need ``t_recovery`` of the order of an hour).
    V, agonist
        As for :func:`ic50`.
    wash_blocker : float, default 0
        Blocker concentration (M) during the agonist-free wash.
    definition : {"occupancy", "current"}
        Which trapped fraction ``trapped_fraction`` reports (both are always computed):
        ``"occupancy"`` = blocked occupancy after the wash / at the end of co-application
        (the definition the library blockers were calibrated with); ``"current"`` = the
        reference section 4 formula (1 − I_initial/I_ctl)/block with I_initial and I_ctl the
        peak amplitudes of the first re-application response of the drug and of the
        drug-free protocol, each at its own peak (peak-to-peak, as measured in Mealing et
        al. 1999).  Both include the blocker released while channels deactivate at the start
        of the wash (reference open question 7: a perfect trapping blocker still loses a few
        per cent).
    dt : float, optional
        Coarse output grid (s); default (t_block + t_wash + t_recovery)/2000.
    peak_window : float, default 0.5 s
        Length (s) of the fine-grid (peak_window/5000) exact runs at the start of
        re-application in which each first response peak is found: the first local maximum
        after which the response falls by at least 1e-6 of its largest value (so a later
        slow rise as trapped blocker leaves, e.g. on ``destexhe1994``, is not taken for the
        peak).  A response without such a maximum is read at its largest value in the window
        (its plateau); if it is still rising at the end of the window (> 0.1 % over the last
        10 %), a RuntimeWarning says that ``trapped_current`` depends on ``peak_window``.
    window : float, default 1 s
        Stochastic ``block`` only: the last ``min(window, t_block)`` (s) of co-application,
        over which each trial's I/I_ctl is averaged (as the ``window`` option of the
        :class:`ketacore.Study` trapping analysis, default 1 s).  Unused by
        ``method="exact"``, which reports the exact value at the end of co-application.
    also, background
        As for :func:`ic50`.
    method, n_channels, n_trials, rng, engine
        As for :func:`ic50`.  Stochastic: one simulation of all phases per trial, metrics per
        trial, mean ± SE over trials (SE = SD/√n_trials), except:

        * ``block``: a separate simulation of the last ``window`` of co-application (1000
          grid steps, started from the exact distribution at its start): per trial, the mean
          of I/I_ctl over the window, plus the exact trend over it (exact end value minus
          exact window mean, 0 once block is at steady state), so that it estimates the
          end-of-co-application value ``method="exact"`` reports, with the channel noise
          averaged over the window rather than read from one sample (ketamine 10 µM with
          1 mM Mg2+, 200 channels x 4 trials: one sample gave block −58 ± 91 % against
          33.0 % exact, since fewer than one channel per trial conducts at control);
        * ``trapped_occupancy``: single samples at the ends of co-application and wash (its
          noise is which blocked channels stay trapped, binomial thinning of those blocked
          at the end of co-application; a window mean would not average it, and would
          unpair numerator and denominator); the ratio of the trial means, with a
          delta-method SE, when some trial has no blocked channel at the end of
          co-application;
        * the first-response peak (``trapped_current``): a separate fine-grid simulation
          started from the exact distribution at the end of the wash; each trial is averaged
          over the samples around the peak of the exact drug response where that stays within
          5 % of its peak, plus the exact peak minus the exact mean over those samples (an
          estimate of the exact peak; a maximum of noisy traces would be biased upward, and
          one sample carries all the channel noise: with 1 mM Mg2+, 200 channels x 4 trials,
          the SE of ``trapped_current`` fell from about 49 % to 10 %);
        * ``tau_recovery``: fitted to the trial-mean blocked occupancy, jackknife SE over
          trials (as in :func:`block_kinetics`).
    temperature : float, optional
        K; default the gating scheme's temperature (``gating.temperature``).  As for
        :func:`ic50`: every phase (co-application, wash, re-application, the drug-free
        control and the first-response runs), the exact relaxation and the stochastic runs
        are taken at it.  In kelvin (``ketacore.units.celsius(35)`` for 35 °C).

    Returns
    -------
    TrappingResult

    Raises
    ------
    ValueError
        Invalid inputs; no block at the end of co-application (exact blocked occupancy or
        current block <= 1e-9), when both trapped fractions would be 0/0; or, with
        ``method="stochastic"``, no blocked channel in any trial.  (A stochastic current
        block estimate of exactly 0 gives ``trapped_current`` NaN.)

    Warns
    -----
    RuntimeWarning
        A first re-application response (drug or control) has no peak within
        ``peak_window`` and still rises at its end (see ``peak_window``).
    UserWarning
        ``tau_recovery`` is extrapolated (``t_recovery`` shorter than τ/3; see
        ``TrappingResult.tau_recovery_extrapolated``): the message gives the exact dominant
        time constant and the ``t_recovery`` (≥ τ/2, a margin over the threshold) that
        determines the fit.  Also, once per call, a phase duration (``t_block``, ``t_wash``,
        ``t_recovery``, ``peak_window``, ``window``) longer than :data:`LONG_PHASE` (1 h):
        durations are in seconds (``ketacore.units.ms`` for milliseconds).

    Notes
    -----
    Mealing et al. 1999 (JPET 288:204): ketamine 10 µM blocks 80 ± 2 % after 30 s and 86 ± 1 %
    of the block is still trapped after a 120 s agonist-free wash; memantine 81 ± 2 % and
    71 ± 4 %; block fully relieved within 50 s of NMDA re-application.
    """
    su = _Setup(gating, blocker, V=V, agonist=agonist, also=also, background=background,
                method=method, n_channels=n_channels, n_trials=n_trials, rng=rng, engine=engine,
                temperature=temperature)
    _check_blocker(su.blocker, "trapping", steady=False,
                   unbound="no trapped fraction (it is 0/0)")
    c = V_.concentration("concentration", concentration)
    if not c > 0:
        raise ValueError("concentration must be > 0 (M)")
    t_block = V_.duration("t_block", t_block)
    t_wash = V_.duration("t_wash", t_wash)
    t_recovery = V_.duration("t_recovery", t_recovery)
    wash_blocker = V_.concentration("wash_blocker", wash_blocker)
    peak_window = V_.duration("peak_window", peak_window)
    window = V_.duration("window", window)
    _warn_long("trapping", t_block=t_block, t_wash=t_wash, t_recovery=t_recovery,
               peak_window=peak_window, window=window)
    if definition not in ("occupancy", "current"):
        raise ValueError(f"definition must be 'occupancy' or 'current', got {definition!r}")
    total = t_block + t_wash + t_recovery
    if dt is None:
        dt = _common_grid(total / 2000, t_block, t_wash, names=("t_block", "t_wash"))
    else:
        dt = V_.real("dt", dt, positive=True)
        for name, x in (("t_block", t_block), ("t_block + t_wash", t_block + t_wash)):
            if abs(x / dt - round(x / dt)) > 1e-6 or x < dt:
                raise ValueError(f"dt={dt:g} s must divide {name}={x:g} s (phase ends on the "
                                 "grid)")
    for name, x in (("t_block", t_block), ("t_wash", t_wash), ("t_recovery", t_recovery)):
        if x < dt * (1 - 1e-9):
            raise ValueError(f"{name}={x:g} s is shorter than the grid step dt={dt:g} s: every "
                             "phase needs at least one step (pass a smaller dt)")
    n_grid = _grid_points("trapping (t_block + t_wash + t_recovery on the grid dt)", total, dt)
    su.check_run("trapping", n_grid)

    p_ctl = su.equilibrium(True)
    g0 = float(su.conductance(p_ctl))
    if not g0 > 0:
        raise ValueError("the control conductance is 0 with this agonist")
    # exact state at the end of co-application (one step): without block there is nothing
    # to trap, and both trapped fractions would be 0/0
    _, occ_b = su.exact(Protocol([su.step(t_block, True, c)]), t_block, p_ctl)
    b_exact = float(occ_b[-1][su.blocked].sum())
    blk_exact = 1.0 - float(occ_b[-1] @ su.g) / g0
    if not (b_exact > 1e-9 and blk_exact > 1e-9):
        raise ValueError(f"no block develops during co-application (blocked occupancy "
                         f"{b_exact:.3g}, current block {blk_exact:.3g} at the end of "
                         f"t_block={t_block:g} s), so the trapped fraction is undefined; "
                         "lengthen t_block or raise concentration")
    prot = Protocol([su.step(t_block, True, c), su.step(t_wash, False, wash_blocker),
                     su.step(t_recovery, True)])
    t, occ = su.run(prot, dt, p_ctl)
    gt = (occ @ su.g) / g0                       # (trials, n)
    bt = occ[..., su.blocked].sum(axis=-1)       # (trials, n)
    i_b = int(round(t_block / dt))
    i_w = int(round((t_block + t_wash) / dt))
    if su.method == "exact":
        blk_m, blk_s = _mean_se(1.0 - gt[:, i_b])
    b_end, b_wash = bt[:, i_b], bt[:, i_w]
    if np.all(b_end > 0):
        trp_m, trp_s = _mean_se(b_wash / b_end)
    elif b_end.mean() > 0:  # some trials had no blocked channel: ratio of the trial means
        trp_m = b_wash.mean() / b_end.mean()
        trp_s = (np.std(b_wash - trp_m * b_end, ddof=1) / math.sqrt(b_end.size)
                 / b_end.mean())
    else:
        raise ValueError(f"no channel was blocked at the end of co-application in any of the "
                         f"{b_end.size} trials (exact blocked occupancy {b_exact:.3g}), so the "
                         "trapped fraction is undefined; raise n_channels")

    # exact state at the end of the wash (one grid step spanning co-application + wash, so
    # any t_wash ends on the grid): start of the first-response runs and of the relaxation
    _, occ_x = su.exact(Protocol([su.step(t_block, True, c), su.step(t_wash, False,
                                                                       wash_blocker)]),
                        t_block + t_wash, p_ctl)
    p_wash = occ_x[-1]

    # recovery time constant from the blocked occupancy during re-application
    tr = t[i_w:] - t[i_w]
    tau_note = None
    if su.method == "exact":
        try:
            fitted = _fit_exponentials(tr, bt[0, i_w:], 1)
            tau_m, tau_s = float(fitted[0][0]), float(fitted[3][0])
        except (ValueError, RuntimeError):
            tau_m = tau_s = float("nan")
    elif not np.any(bt[:, i_w] > 0):
        tau_m = tau_s = float("nan")
        tau_note = "no blocked channel left at re-application in any trial"
    else:
        try:
            tau_m, _, _, tau_s = _fit_trials(tr, bt[:, i_w:], 1)
        except _TooNoisy as exc:
            tau_m = tau_s = float("nan")
            n_b = float(p_wash[su.blocked].sum()) * su.n_channels
            tau_note = (f"the simulated blocked occupancy is too noisy to fit ({exc}): about "
                        f"{n_b:.3g} channels per trial are blocked at re-application; raise "
                        f"n_channels (now {su.n_channels}) or n_trials (now {su.n_trials})")
    th_tau, th_taus, th_amps = _blocked_relaxation(su, p_wash)
    ref = _tau_reference(tau_m, th_tau)
    extrapolated = bool(math.isfinite(tau_m) and math.isfinite(ref)
                        and t_recovery < _TAU_WINDOW * ref)
    bmean = bt.mean(axis=0)
    below = np.nonzero(bmean[i_w:] <= 0.05 * bmean[i_w])[0]
    t_rec = float(tr[below[0]]) if below.size else float("nan")

    # same-protocol drug-free control for the re-application phase
    _, occ_c = su.exact(Protocol([su.step(t_block, True), su.step(t_wash, False),
                                  su.step(t_recovery, True)]), dt, p_ctl)
    gc = (occ_c @ su.g) / g0
    rel = np.full(t.size, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel[i_w:] = gt.mean(axis=0)[i_w:] / gc[i_w:]
    # first response peak (fine grid), drug vs control, from the exact end-of-wash states
    p_wash_c = occ_c[i_w]
    h = peak_window / 5000
    fine = Protocol([su.step(peak_window, True)])
    _, oc = su.exact(fine, h, p_wash_c)
    gcf = oc @ su.g
    k_c = _first_peak(gcf, "drug-free control", peak_window)
    # each response at its own peak (peak-to-peak): the drug response's peak time from its
    # exact trace, where the stochastic trials are read
    _, od = su.run(fine, h, p_wash)
    gdx = od[0] @ su.g if su.method == "exact" else su.exact(fine, h, p_wash)[1] @ su.g
    k_d = _first_peak(gdx, "drug", peak_window)
    if su.method == "exact":
        gdf = (od @ su.g)[:, k_d]
    else:
        # each trial averaged over the exact response's peak region (within _PEAK_REGION of
        # its peak), plus the exact peak minus the exact region mean: an estimate of the
        # exact peak with the channel noise averaged over the region
        lo, hi = _peak_region(gdx, k_d)
        gdf = ((od[:, lo:hi] @ su.g).mean(axis=1)
               + float(gdx[k_d] - gdx[lo:hi].mean()))
    gd_m, gd_s = _mean_se(gdf)
    init_m, init_s = _ratio_se(float(gd_m), float(gd_s), float(gcf[k_c]), 0.0)
    if su.method == "stochastic":
        blk_m, blk_s = _window_block(su, c, t_block, window, p_ctl, g0)
    if abs(blk_m) > 1e-12:
        trc = (1.0 - init_m) / blk_m
        trc_s = math.hypot(init_s / blk_m, (1.0 - init_m) * blk_s / blk_m ** 2)
    else:  # stochastic block estimate of 0 (the exact block is > 1e-9, checked above)
        trc = trc_s = float("nan")
    meta = su.meta()
    meta.update(concentration=c, wash_blocker=wash_blocker, t_block=t_block, t_wash=t_wash,
                t_recovery=t_recovery, first_peak_time_control=float(k_c * h),
                first_peak_time_drug=float(k_d * h),
                first_peak_time=float(k_c * h),  # (the name before both were kept: the control's)
                window=window if su.method == "stochastic" else None,
                tau_recovery_note=tau_note)
    if extrapolated:
        warnings.warn(
            f"trapping: tau_recovery = {tau_m:.4g} s is extrapolated: the t_recovery="
            f"{t_recovery:g} s re-application over which it is fitted is shorter than tau/3 "
            f"(tau = {ref:.4g} s"
            + (", the largest-amplitude exact time constant of the blocked occupancy"
               if ref == th_tau else "") + "), so the fit sees < 28 % of the decay and its SE "
            f"({tau_s:.3g} s) does not measure the bias (flagged "
            f"result.tau_recovery_extrapolated); use t_recovery >= {_tau_advice(ref):g} s",
            UserWarning, stacklevel=2)
    return TrappingResult(
        block=float(blk_m), block_se=float(blk_s), trapped_occupancy=float(trp_m),
        trapped_occupancy_se=float(trp_s), trapped_current=float(trc),
        trapped_current_se=float(trc_s), definition=definition, tau_recovery=float(tau_m),
        tau_recovery_se=float(tau_s), t_recovered=t_rec, time=_frozen(t),
        fraction=_frozen(gt.mean(axis=0)), blocked=_frozen(bmean),
        relative_recovery=_frozen(rel),
        phase_ends=(t_block, t_block + t_wash, total), meta=meta,
        tau_recovery_extrapolated=extrapolated, theory_tau_recovery=th_tau,
        theory_taus_recovery=_frozen(th_taus), theory_amps_recovery=_frozen(th_amps))


#: trapping: ``tau_recovery`` is flagged as extrapolated when ``t_recovery`` is shorter than
#: this fraction of the recovery time constant.  Over a window T = τ/3 a single exponential
#: falls by 1 - e^(-1/3) = 28 % of its amplitude and its curvature term (T/τ)²/2 is 5.6 % of
#: it: below that τ rests on the curvature of a nearly straight trace, nearly collinear with the
#: plateau, and any component the model leaves out biases it.  Measured (exact, MK-801 1 µM on
#: erreger2005_2a, exact dominant τ 5400 s): a 10 s window (τ/540) fits 102 s, 60 s (τ/90)
#: 4200 s, 600 s (τ/9) 5397 s -- the bias grows steeply below ~τ/10; τ/3 leaves a margin.
_TAU_WINDOW = 1.0 / 3.0
#: trapping: stochastic block: grid steps of the separate run over the averaging window.
_WINDOW_STEPS = 1000


#: trapping: stochastic first-response peak: the trials are averaged over the samples around
#: the exact drug response's peak where it stays within this fraction of the peak value.
_PEAK_REGION = 0.05


def _peak_region(g: np.ndarray, k: int) -> tuple[int, int]:
    """[lo, hi) of the contiguous samples around the peak ``k`` of the exact response ``g``
    within :data:`_PEAK_REGION` of ``g[k]``."""
    g = np.asarray(g, float)
    ok = g >= (1.0 - _PEAK_REGION) * g[k]
    lo = k
    while lo > 0 and ok[lo - 1]:
        lo -= 1
    hi = k + 1
    while hi < g.size and ok[hi]:
        hi += 1
    return lo, hi


def _tau_reference(fitted: float, theory: float) -> float:
    """The recovery time constant (s) a ``t_recovery`` window is judged against: the larger of
    the fitted and the exact dominant τ (a fit over too short a window is biased low), either
    when the other is NaN."""
    vals = [x for x in (fitted, theory) if math.isfinite(x)]
    return max(vals) if vals else float("nan")


def _tau_advice(tau: float) -> float:
    """The ``t_recovery`` (s) advised against a recovery time constant ``tau`` (s): τ/2, a
    margin of 1.5 over the :data:`_TAU_WINDOW` threshold (the fit grows as the window
    lengthens)."""
    x = tau / 2.0
    if not (math.isfinite(x) and x > 0):
        return x
    step = 10.0 ** (math.floor(math.log10(x)) - 1)      # rounded up to 2 significant digits
    return math.ceil(x / step - 1e-9) * step


def _blocked_relaxation(su: _Setup, p0: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(dominant τ, all τ, blocked-occupancy amplitudes) of the exact relaxation
    (:func:`ketacore.theory.relaxation`) from ``p0`` under agonist: the dominant component has
    the largest |amplitude| in the blocked occupancy.  NaN and empty arrays when the
    relaxation cannot be computed (e.g. a blocker that never leaves: no unique equilibrium)."""
    try:
        rel = su.relaxation(p0, True)
        taus = np.real(np.asarray(rel.taus, dtype=complex))
        amps = np.real(np.asarray(rel.amplitudes, dtype=complex)) @ su.blocked.astype(float)
    except (ValueError, ArithmeticError, np.linalg.LinAlgError):
        return float("nan"), np.array([]), np.array([])
    if not amps.size or not np.abs(amps).max() > 0:
        return float("nan"), taus, amps
    return float(taus[int(np.argmax(np.abs(amps)))]), taus, amps


def _window_block(su: _Setup, c: float, t_block: float, window: float, p_ctl: np.ndarray,
                  g0: float) -> tuple[float, float]:
    """Stochastic trapping block (mean, SE over trials): a run of the last
    ``w = min(window, t_block)`` of co-application (:data:`_WINDOW_STEPS` steps) from the exact
    distribution at its start; per trial ``1 - (mean I/I_ctl over the window + exact trend)``,
    the trend being the exact end value minus the exact window mean on the same grid, so the
    estimate targets the exact end-of-co-application block."""
    w = min(window, t_block)
    p_start = p_ctl
    if t_block - w > 1e-9 * t_block:
        _, o = su.exact(Protocol([su.step(t_block - w, True, c)]), t_block - w, p_ctl)
        p_start = o[-1]
    prot = Protocol([su.step(w, True, c)])
    _, ox = su.exact(prot, w / _WINDOW_STEPS, p_start)
    gx = (ox @ su.g) / g0
    trend = float(gx[-1] - gx.mean())
    _, ow = su.run(prot, w / _WINDOW_STEPS, p_start)
    gw = (ow @ su.g) / g0                          # (trials, samples)
    m, se = _mean_se(1.0 - (gw.mean(axis=1) + trend))
    return float(m), float(se)


#: trapping: a local maximum of a first re-application response is its peak when the response
#: then falls by at least this fraction of its largest value (round-off plateaus do not count).
_PEAK_DROP = 1e-6
#: trapping: a response without such a peak "still rises" at the end of peak_window when it
#: grows by more than this fraction over the last 10 % of the window.
_STILL_RISING = 1e-3


def _first_peak(g: np.ndarray, which: str, window: float) -> int:
    """Index of the first peak of a response ``g`` (exact, from re-application): after any
    initial fall, the first local maximum from which ``g`` falls by >= ``_PEAK_DROP`` of its
    largest value before exceeding it; without one, the largest value (a plateau), with a
    RuntimeWarning naming ``which`` response if ``g`` still rises at the end of ``window``."""
    g = np.asarray(g, dtype=float)
    tol = _PEAK_DROP * float(np.max(np.abs(g))) if g.size else 0.0
    # skip an initial fall (channels still deactivating when the agonist returns)
    rise = np.nonzero(g - np.minimum.accumulate(g) > tol)[0]
    i0 = int(np.argmin(g[:rise[0] + 1])) if rise.size else 0
    tail = g[i0:]
    fall = np.nonzero(np.maximum.accumulate(tail) - tail > tol)[0]
    if fall.size:
        return i0 + int(np.argmax(tail[:fall[0] + 1]))
    k = i0 + int(np.argmax(tail))
    j = int(0.9 * (g.size - 1))
    if k == g.size - 1 and g[-1] - g[j] > _STILL_RISING * abs(g[-1]):
        warnings.warn(
            f"trapping: the first re-application response of the {which} run has no peak "
            f"within peak_window={window:g} s and still rises at its end (by "
            f"{(g[-1] - g[j]) / abs(g[-1]):.2%} over the last 10 % of the window), so "
            "trapped_current reads it at the end of the window and depends on peak_window; "
            "lengthen peak_window or use definition='occupancy'", RuntimeWarning, stacklevel=3)
    return k


# =========================================================================== use dependence
@dataclass(frozen=True, repr=False)
class UseDependenceResult(_ResultBase):
    """Block accumulated under pulse trains and its persistence (:func:`use_dependence`).

    Attributes
    ----------
    frequencies : ndarray
        Stimulation frequencies (Hz); 0 = no stimulation (a quiet cell).
    n_pulses : ndarray of int
        Pulses delivered in the drug phase at each frequency.
    blocked, blocked_se : ndarray
        Blocked occupancy at the end of the drug phase.
    epsc_fraction : ndarray
        Peak conductance of a test pulse given at the end of the drug phase (drug still
        present) relative to the same test pulse after the identical drug-free train (exact).
    remaining_stim, remaining_stim_se : ndarray
        Blocked occupancy at the end of the washout with continued stimulation at the same
        frequency, relative to its value at drug removal.  NaN where there is no block at
        drug removal (nothing to wash out: e.g. 0 Hz for a blocker that binds only open
        channels, whose agonist-free drug phase opens none); ``summary()`` then says
        "no block at drug removal".
    remaining_quiet, remaining_quiet_se : ndarray
        The same with no stimulation during washout.
    t_half_stim, t_half_quiet : ndarray
        Time (s) for the blocked occupancy to fall to half its value at drug removal
        (linear interpolation on the grid; inf if it does not within the washout; NaN where
        there is no block at drug removal).
    time_drug, blocked_drug : ndarray
        Grid (s) and blocked occupancy during the drug phase, shape (n_freq, n_samples).
    time_wash, blocked_wash_stim, blocked_wash_quiet : ndarray
        Grid (s) and blocked occupancy during the washout.
    meta : dict
        Also ``duration`` (s; NaN when ``n_pulses`` was given), ``n_pulses_requested`` and
        ``drug_durations`` (s, the drug phase at each frequency: ``duration``, or
        ``n_pulses/f``).
    """

    frequencies: np.ndarray
    n_pulses: np.ndarray
    blocked: np.ndarray
    blocked_se: np.ndarray
    epsc_fraction: np.ndarray
    remaining_stim: np.ndarray
    remaining_stim_se: np.ndarray
    remaining_quiet: np.ndarray
    remaining_quiet_se: np.ndarray
    t_half_stim: np.ndarray
    t_half_quiet: np.ndarray
    time_drug: np.ndarray
    blocked_drug: np.ndarray
    time_wash: np.ndarray
    blocked_wash_stim: np.ndarray
    blocked_wash_quiet: np.ndarray
    meta: dict = field(default_factory=dict)

    def is_monotone(self) -> bool:
        """Whether block at the end of the drug phase is non-decreasing in frequency."""
        o = np.argsort(self.frequencies)
        return bool(np.all(np.diff(self.blocked[o]) >= -1e-12))

    def _columns(self):
        return {"frequency_Hz": self.frequencies, "n_pulses": self.n_pulses,
                "blocked": self.blocked, "blocked_se": self.blocked_se,
                "test_epsc_fraction": self.epsc_fraction,
                "remaining_after_washout_stimulated": self.remaining_stim,
                "remaining_after_washout_quiet": self.remaining_quiet,
                "t_half_stimulated_s": self.t_half_stim, "t_half_quiet_s": self.t_half_quiet}

    def summary(self) -> str:
        """Text report: block per frequency (Hz) after the train and over it, with SEs, and the
        train."""
        m = self.meta
        if m.get("n_pulses_requested") is not None:
            # a fixed pulse count: the drug phase lasts n_pulses/f at each frequency
            durs = m.get("drug_durations") or [m["n_pulses_requested"] / f
                                               for f in self.frequencies]
            phase = (f"drug phase {m['n_pulses_requested']} pulses ("
                     + ", ".join(f"{d:.4g} s at {f:g} Hz"
                                 for d, f in zip(durs, self.frequencies)) + ")")
        else:
            phase = f"drug phase {m['duration']:g} s"
        lines = [f"use dependence: {m['blocker']} {_conc_text(m['concentration'], '.4g')} on "
                 f"{m['gating']} at {m['V'] / mV:g} mV{_temperature_suffix(m)}, "
                 f"{m['width'] / ms:g} ms pulses, "
                 f"{phase}, washout {m['washout']:g} s",
                 "  f (Hz)  pulses  blocked %   test EPSC %   left after washout: stim / quiet"]
        for i, f in enumerate(self.frequencies):
            if np.isnan(self.remaining_stim[i]) and np.isnan(self.remaining_quiet[i]):
                left = "no block at drug removal" + (" (no stimulation at 0 Hz)" if f == 0
                                                     else "")
            else:
                left = (f"{self.remaining_stim[i] * 100:.3g} % / "
                        f"{self.remaining_quiet[i] * 100:.3g} %")
            lines.append(f"  {f:6g}  {self.n_pulses[i]:6d}  "
                         f"{_pm(self.blocked[i], self.blocked_se[i], 100, '.3g'):>9}   "
                         f"{self.epsc_fraction[i] * 100:9.3g}   {left}")
        lines.append(f"  block monotone in frequency: {self.is_monotone()}")
        lines.append("  " + _method_line(m))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"UseDependenceResult({self.frequencies.size} frequencies)"

    def plot(self, ax=None):
        """Blocked occupancy at the end of the drug phase against frequency (Hz)."""
        ax = self._axes(ax)
        f = self.frequencies
        ax.errorbar(f, self.blocked, yerr=self.blocked_se, fmt="o-", label="end of drug phase")
        ax.plot(f, self.blocked * self.remaining_stim, "s--", label="after washout, stimulated")
        ax.plot(f, self.blocked * self.remaining_quiet, "^--", label="after washout, quiet")
        if np.all(f > 0):
            ax.set_xscale("log")
        ax.set_xlabel("stimulation frequency (Hz)")
        ax.set_ylabel("blocked occupancy")
        ax.set_title(f"use dependence: {self.meta['blocker']} "
                     f"{_conc_text(self.meta['concentration'], '.4g').replace('uM', 'µM')}")
        ax.legend()
        return ax


def _t_half(t: np.ndarray, b: np.ndarray) -> float:
    """Time (s) for ``b`` to fall to half of ``b[0]``: inf if it does not on ``t``, NaN when
    ``b[0]`` is 0 (nothing to halve)."""
    target = 0.5 * b[0]
    if not b[0] > 0:
        return float("nan")
    idx = np.nonzero(b <= target)[0]
    if not idx.size:
        return float("inf")
    j = int(idx[0])
    if j == 0:
        return 0.0
    return float(np.interp(target, [b[j], b[j - 1]], [t[j], t[j - 1]]))


def use_dependence(gating: Scheme | str, blocker: Any, concentration: float,
                   frequencies: Any = (0.0, 0.1, 1.0, 5.0, 10.0, 20.0, 40.0), *,
                   duration: float | None = 60 * s, n_pulses: int | None = None,
                   width: float = 1 * ms, V: float = -70 * mV,
                   agonist: Mapping[str, float] | None = None, washout: float = 300 * s,
                   n_samples: int = 400, also: Sequence[Any] = (),
                   background: Mapping[str, float] | None = None, method: str = "exact",
                   n_channels: int | None = None, n_trials: int | None = None, rng: Any = None,
                   engine: str = "auto",
                   temperature: float | None = None) -> UseDependenceResult:
    """Block accumulated under synaptic-like glutamate pulse trains at several frequencies.

    For each frequency: from drug-free rest (no agonist), the blocker is present in the bath
    for the drug phase while square agonist pulses (``agonist`` for ``width``) arrive at
    ``frequency``; then the blocker is removed and the washout runs (a) with continued
    stimulation at the same frequency and (b) without stimulation.  Models a tonically active
    interneuron (high frequency) against a quiet cell (0 Hz) exposed to the same drug level
    (reference section 7: Homayoun & Moghaddam 2007; Emnett et al. 2013).

    Parameters
    ----------
    gating, blocker
        As for :func:`ic50`.
    concentration : float
        Blocker concentration (M) during the drug phase, > 0.
    frequencies : array_like of float
        Stimulation frequencies (Hz), ≥ 0; 0 means no stimulation (a quiet cell: the drug
        phase has no agonist, so a blocker that binds only open channels blocks nothing and
        its washout figures are NaN, "no block at drug removal").  A blocker with a route onto
        shut channels blocks quiet cells slowly: the library ketamine and memantine carry the
        closed route that balances their escape (``closed_route="balanced"``), which blocks
        resting channels as [B]/(K_B + [B])·(1 − e^(−λt)), λ = k_on_closed(V)·[B] + k_escape
        (ketamine 1 µM at −70 mV: 2.5 % after 20 s, 7.2 % after 60 s).
    duration : float or None, default 60 s
        Length of the drug phase (s); the train has ``floor(duration·f)`` pulses.
    n_pulses : int, optional
        Instead of ``duration``: the same number of pulses at every frequency (the drug
        phase then lasts ``n_pulses/f``; all frequencies must be > 0).  Pass
        ``duration=None`` with it.
    width : float, default 1 ms
        Pulse width (s); 1/f must exceed it.
    V, agonist
        As for :func:`ic50`; ``agonist`` is the concentration during each pulse (default
        glutamate 1 mM, a synaptic transient).
    washout : float, default 300 s
        Washout length (s), > 0.  All trains together (drug phase, its drug-free control and
        the stimulated washout, at every frequency) may hold at most :data:`MAX_PULSES`
        pulses (ValueError before any run otherwise).
    n_samples : int, default 400
        Grid points per phase for the recorded time courses (≤ :data:`MAX_PHASE_SAMPLES`).
    also, background
        As for :func:`ic50`.
    method, n_channels, n_trials, rng, engine
        As for :func:`ic50`; stochastic phases start from the exact distribution at the phase
        start; ``epsc_fraction`` and ``t_half_*`` are computed from the trial means.
    temperature : float, optional
        K; default the gating scheme's temperature (``gating.temperature``).  As for
        :func:`ic50`: every train, test pulse and washout (drug and drug-free, exact and
        stochastic) and the rest state are taken at it.  In kelvin
        (``ketacore.units.celsius(35)`` for 35 °C).

    Returns
    -------
    UseDependenceResult

    Warns
    -----
    UserWarning
        Once per call, ``duration``, ``width`` or ``washout`` longer than :data:`LONG_PHASE`
        (1 h): durations are in seconds (``ketacore.units.ms`` for milliseconds).

    Notes
    -----
    With a fully trapping blocker whose arm copies gating and no escape, block after a long
    enough drug phase tends to [B]/([B] + K_B) at *any* frequency (equilibrium does not
    depend on Po); use dependence is a matter of how fast block accumulates -- and, with a
    slow escape from shut blocked states, of the activity-dependent steady state.  Block
    persists after washout only while channels stay shut (quiet washout).
    """
    su = _Setup(gating, blocker, V=V, agonist=agonist, also=also, background=background,
                method=method, n_channels=n_channels, n_trials=n_trials, rng=rng, engine=engine,
                temperature=temperature)
    c = V_.concentration("concentration", concentration)
    if not c > 0:
        raise ValueError("concentration must be > 0 (M)")
    fs = np.atleast_1d(V_.real_array("frequencies", frequencies))
    if fs.ndim != 1 or fs.size < 1 or not np.all(np.isfinite(fs)) or np.any(fs < 0):
        raise ValueError("frequencies must be a 1-D array of finite values >= 0 (Hz)")
    width = V_.duration("width", width)
    washout = V_.duration("washout", washout)
    n_samples = V_.integer("n_samples", n_samples, minimum=10, maximum=MAX_PHASE_SAMPLES)
    if (duration is None) == (n_pulses is None):
        raise ValueError("give exactly one of duration (s) and n_pulses (pass duration=None "
                         "with n_pulses)")
    _warn_long("use_dependence", duration=duration, width=width, washout=washout)
    if n_pulses is not None:
        n_pulses = V_.integer("n_pulses", n_pulses, minimum=1)
        if np.any(fs <= 0):
            raise ValueError("with n_pulses every frequency must be > 0 (Hz)")
    else:
        duration = V_.duration("duration", duration)
    if np.any(fs > 0) and np.any(1.0 / fs[fs > 0] <= width):
        raise ValueError(f"every pulse period 1/f must exceed width={width} s; "
                         f"max frequency is {1.0 / width:g} Hz")
    # work estimate before any run: the drug train and its drug-free control (2 x the drug
    # phase) and the stimulated washout, at every frequency
    pos = fs[fs > 0]
    n_drug = (np.full(pos.size, float(n_pulses)) if n_pulses is not None
              else np.floor(duration * pos + 1e-9))
    n_total = float(np.sum(2.0 * n_drug + np.floor(washout * pos + 1e-9)))
    if not n_total <= MAX_PULSES:
        length = (f"n_pulses={n_pulses}" if n_pulses is not None
                  else f"duration={duration:g} s")
        raise ValueError(
            f"use_dependence would deliver about {n_total:.3g} agonist pulses in all "
            f"({length}, washout={washout:g} s, frequencies up to {pos.max():g} Hz), more than "
            f"{MAX_PULSES:.0e}; shorten duration/washout, lower n_pulses or the frequencies")
    su.check_run("use_dependence", n_samples, n_runs=fs.size)

    rest = su.equilibrium(False)
    between_d = su.cond(False, c)
    during_d = su.cond(True, c)

    def train(f: float, dur: float, drug: bool) -> Protocol:
        btw = between_d if drug else su.cond(False)
        dur_ = during_d if drug else su.cond(True)
        n = int(math.floor(dur * f + 1e-9)) if f > 0 else 0
        if n == 0:
            return Protocol([Step(dur, V=su.V, temperature=su.temperature, **btw)])
        tail = dur - n / f
        return pulse_train(n, f, width, V=su.V, temperature=su.temperature, during=dur_,
                           between=btw, tail=tail if tail > 1e-12 * dur else 0.0)

    def test_peak(p: np.ndarray, drug: bool) -> float:
        h = width / 20
        pr = Protocol([Step(width, V=su.V, temperature=su.temperature,
                            **(during_d if drug else su.cond(True))),
                       Step(50 * ms, V=su.V, temperature=su.temperature,
                            **(between_d if drug else su.cond(False)))])
        _, o = su.exact(pr, h, p)
        return float((o @ su.g).max())

    rows: dict[str, list] = {k: [] for k in ("npul", "b", "bs", "epsc", "rs", "rss", "rq", "rqs",
                                             "ths", "thq", "td", "bd", "bws", "bwq", "tw")}
    for f in fs:
        dur = duration if n_pulses is None else n_pulses / f
        npul = int(math.floor(dur * f + 1e-9)) if f > 0 else 0
        pr = train(f, dur, True)
        h = dur / (n_samples - 1)
        _, occx = su.exact(pr, dur, rest)
        p_end = occx[-1]
        td, occ = su.run(pr, h, rest)
        bd = occ[..., su.blocked].sum(axis=-1)
        b_m, b_s = _mean_se(bd[:, -1])
        _, occc = su.exact(train(f, dur, False), dur, rest)
        pk_c = test_peak(occc[-1], False)
        epsc = test_peak(p_end, True) / pk_c if pk_c > 0 else float("nan")
        hw = washout / (n_samples - 1)
        tw, ows = su.run(train(f, washout, False), hw, p_end)
        _, owq = su.run(Protocol([su.step(washout, False)]), hw, p_end)
        bws = ows[..., su.blocked].sum(axis=-1)
        bwq = owq[..., su.blocked].sum(axis=-1)
        b0 = float(p_end[su.blocked].sum())
        rs_m, rs_s = _mean_se(bws[:, -1])
        rq_m, rq_s = _mean_se(bwq[:, -1])
        if b0 > 0:
            rs, rss = _ratio_se(float(rs_m), float(rs_s), b0, 0.0)
            rq, rqs = _ratio_se(float(rq_m), float(rq_s), b0, 0.0)
        else:
            rs = rss = rq = rqs = float("nan")
        for k, v in (("npul", npul), ("b", b_m), ("bs", b_s), ("epsc", epsc), ("rs", rs),
                     ("rss", rss), ("rq", rq), ("rqs", rqs),
                     ("ths", _t_half(tw, bws.mean(axis=0))),
                     ("thq", _t_half(tw, bwq.mean(axis=0))), ("td", td),
                     ("bd", bd.mean(axis=0)), ("bws", bws.mean(axis=0)),
                     ("bwq", bwq.mean(axis=0)), ("tw", tw)):
            rows[k].append(v)
    meta = su.meta()
    meta.update(concentration=c, width=width, washout=washout,
                duration=duration if duration is not None else float("nan"),
                n_pulses_requested=n_pulses,
                drug_durations=[float(duration if n_pulses is None else n_pulses / f)
                                for f in fs])
    return UseDependenceResult(
        frequencies=_frozen(fs), n_pulses=_frozen(rows["npul"], dtype=np.int64),
        blocked=_frozen(rows["b"]), blocked_se=_frozen(rows["bs"]),
        epsc_fraction=_frozen(rows["epsc"]), remaining_stim=_frozen(rows["rs"]),
        remaining_stim_se=_frozen(rows["rss"]), remaining_quiet=_frozen(rows["rq"]),
        remaining_quiet_se=_frozen(rows["rqs"]), t_half_stim=_frozen(rows["ths"]),
        t_half_quiet=_frozen(rows["thq"]),
        time_drug=_frozen(rows["td"]),
        blocked_drug=_frozen(rows["bd"]), time_wash=_frozen(rows["tw"][0]),
        blocked_wash_stim=_frozen(rows["bws"]), blocked_wash_quiet=_frozen(rows["bwq"]),
        meta=meta)


# =========================================================================== I-V curve
#: Default voltages of :func:`iv_curve` (V): −100 to +60 mV in 10 mV steps.
_IV_VOLTAGES = np.arange(-100, 61, 10) * mV
#: iv_curve: a voltage enters the Woodhull fit of the apparent K(V) = [B]·f/(1 − f)
#: (f = I/I0) when neither f nor 1 − f is below this.  Both are known to ~1e-16 absolute
#: (exact), so K(V) is then known to ~1e-10 relative; a stochastic point this close to 0 or 1
#: is dominated by its noise (and one outside (0, 1) has no K at all).
_IV_FIT_MIN = 1e-6
#: Jahr & Stevens (1990, doi:10.1523/JNEUROSCI.10-09-03178.1990) Mg2+ block:
#: B(V) = 1/(1 + [Mg]/K_JS(V)), K_JS(V) = 3.57 mM · exp(0.062 V/mV).
_JS_K0 = 3.57 * mM
_JS_EFOLD = 0.062 / mV          # e-fold of K_JS(V) per volt


def _time_text(t: float, fmt: str = ".4g", se: float = 0.0) -> str:
    """A time (s) as text in us, ms or s (with ``± se`` in the same unit when ``se`` > 0)."""
    t = float(t)
    a = abs(t)
    if not math.isfinite(t) or a == 0 or a >= 1.0:
        unit, scale = "s", 1.0
    elif a >= 1e-3:
        unit, scale = "ms", 1e-3
    else:
        unit, scale = "us", 1e-6
    return f"{_pm(t, se, 1.0 / scale, fmt)} {unit}"


def _pa(x: float, se: float = 0.0, fmt: str = ".4g") -> str:
    """A current (A) as text in pA (with ``± SE`` when ``se`` > 0)."""
    return f"{_pm(x, se, 1e12, fmt)} pA"


@dataclass(frozen=True, repr=False)
class IVResult(_ResultBase):
    """Current-voltage and conductance-voltage relation (:func:`iv_curve`).

    All currents and conductances are *per channel* (the mean over channels, as
    :attr:`ketacore.solve` ``.current``): multiply by the number of channels N for a
    whole-cell current, ``I(V) = N·Σ_i g_i p_i(V)·(V − E_rev)``.

    Attributes
    ----------
    voltages : ndarray
        Membrane voltages (V), ascending.
    current, current_se : ndarray
        Current per channel (A) with the blocker, ``Σ g_i p_i (V − E_rev)``, and its SE (0 for
        ``method="exact"``).  Without a blocker, the drug-free current (= ``current_control``).
    current_control, current_control_se : ndarray
        Drug-free current per channel (A): the scheme without the studied blocker (``also``
        blockers and ``background`` concentrations kept).
    conductance, conductance_se, conductance_control, conductance_control_se : ndarray
        Chord conductance per channel (S), ``Σ g_i p_i`` = I/(V − E_rev) (defined at E_rev
        too), with and without the blocker: the G-V relation.
    fraction, fraction_se : ndarray
        I/I0 = ``conductance/conductance_control`` at each voltage (the module convention:
        the driving force cancels); NaN where the control conductance is 0.
    concentration : float
        Blocker concentration (M); 0 without a blocker.
    e_rev : float
        Reversal potential (V) of the scheme.
    kind : {"steady", "peak"}
    kd0, kd0_se, z_delta, z_delta_se : float
        Woodhull fit (Woodhull 1973, doi:10.1085/jgp.61.6.687) of the apparent dissociation
        constant ``K(V) = [B]·(I/I0)/(1 − I/I0)`` (M), the K of ``I/I0 = 1/(1 + [B]/K(V))``:
        ``ln K(V) = ln K(0) + zδ·V/V_T``, V_T = RT/F at ``temperature``, over the voltages
        flagged in ``fitted`` -- the linear least squares of :func:`woodhull`.  K(0) in M, zδ
        dimensionless; SEs NaN with two fitted voltages (stochastic: weighted by
        1/SE(ln K)).  NaN without a blocker or with fewer than two usable voltages
        (``meta["woodhull_note"]`` says why).  For a trapping blocker whose blocked arm copies
        gating (no escape, no closed route) K(V) is the blocker's K_B(V) exactly; for a
        sequential blocker on voltage-independent gating K_B(V)/Po0.
    fitted : ndarray of bool
        Voltages entering the Woodhull fit: I/I0 and 1 − I/I0 both ≥ 1e-6.
    jahr_stevens : ndarray or None
        When the studied blocker is Mg2+ (its ligand is ``"mg"``): Jahr & Stevens' (1990)
        steady-state unblocked fraction ``B(V) = 1/(1 + [Mg]/3.57 mM · exp(−0.062 V/mV))`` at
        ``concentration`` (:func:`ketacore.blockers.jahr_stevens`), to compare with
        ``fraction``; else None.
    temperature : float
        Temperature (K) of the experiment (the ``temperature`` of :func:`iv_curve`, by
        default the gating scheme's), for V_T of the Woodhull fit.
    meta : dict
        Gating model, blocker, ``voltages``, temperature (K), agonist, background, method
        and stochastic settings; ``V`` is NaN (see ``voltages``).
    """

    voltages: np.ndarray
    current: np.ndarray
    current_se: np.ndarray
    current_control: np.ndarray
    current_control_se: np.ndarray
    conductance: np.ndarray
    conductance_se: np.ndarray
    conductance_control: np.ndarray
    conductance_control_se: np.ndarray
    fraction: np.ndarray
    fraction_se: np.ndarray
    concentration: float
    e_rev: float
    kind: str
    kd0: float
    kd0_se: float
    z_delta: float
    z_delta_se: float
    fitted: np.ndarray
    jahr_stevens: np.ndarray | None
    temperature: float
    meta: dict = field(default_factory=dict)

    @property
    def block(self) -> np.ndarray:
        """Fractional block 1 − I/I0 at each voltage."""
        return 1.0 - self.fraction

    @property
    def apparent_kd(self) -> np.ndarray:
        """Apparent dissociation constant K(V) = [B]·(I/I0)/(1 − I/I0) (M) at each voltage;
        NaN where I/I0 is not within (0, 1) or without a blocker."""
        f = np.asarray(self.fraction, float)
        out = np.full(f.shape, np.nan)
        ok = np.isfinite(f) & (f > 0) & (f < 1)
        if self.concentration > 0:
            out[ok] = self.concentration * f[ok] / (1.0 - f[ok])
        return out

    @property
    def thermal_voltage(self) -> float:
        """V_T = RT/F (V) at :attr:`temperature`."""
        return GAS_CONSTANT * self.temperature / FARADAY

    @property
    def efold(self) -> float:
        """e-fold of the fitted K(V) per volt, zδ/V_T (V⁻¹; ×1e-3 for per mV).
        Jahr-Stevens: 62 V⁻¹ (0.062 /mV)."""
        return self.z_delta / self.thermal_voltage

    def predicted(self, V: Any) -> np.ndarray:
        """Woodhull-fit K(V) (M) at voltage(s) V (V)."""
        return self.kd0 * np.exp(self.z_delta * np.asarray(V, float) / self.thermal_voltage)

    def predicted_fraction(self, V: Any) -> np.ndarray:
        """I/I0 = 1/(1 + [B]/K(V)) of the Woodhull fit at voltage(s) V (V)."""
        return 1.0 / (1.0 + self.concentration / self.predicted(V))

    @property
    def jahr_stevens_deviation(self) -> np.ndarray | None:
        """Relative deviation of the model's I/I0 from Jahr-Stevens B(V), I/I0 / B − 1 (None
        when the blocker is not Mg2+)."""
        if self.jahr_stevens is None:
            return None
        return self.fraction / self.jahr_stevens - 1.0

    @property
    def reversal_bracket(self) -> tuple[float, float]:
        """(V_lo, V_hi) (V): the tabulated voltages between which the current with the
        blocker changes sign -- ``(V, V)`` at a tabulated voltage where it is exactly 0 --, as
        read off a recorded I-V; (NaN, NaN) if it does not change sign.  The model's current
        reverses at :attr:`e_rev` (every conductance ≥ 0)."""
        i = np.asarray(self.current, float)
        v = self.voltages
        zero = np.flatnonzero(i == 0)
        if zero.size:
            return float(v[zero[0]]), float(v[zero[0]])
        sg = np.sign(i)
        k = np.flatnonzero(sg[:-1] * sg[1:] < 0)
        if not k.size:
            return float("nan"), float("nan")
        return float(v[k[0]]), float(v[k[0] + 1])

    @property
    def peak_inward(self) -> tuple[float, float]:
        """(V (V), I (A)) of the most negative current with the blocker on the grid: for
        Mg2+ the bottom of the region of negative slope conductance."""
        k = int(np.nanargmin(self.current))
        return float(self.voltages[k]), float(self.current[k])

    def _columns(self):
        cols = {"V_mV": self.voltages / mV, "current_A": self.current,
                "current_se_A": self.current_se, "current_control_A": self.current_control,
                "conductance_S": self.conductance,
                "conductance_control_S": self.conductance_control,
                "fraction_of_control": self.fraction, "fraction_se": self.fraction_se,
                "block": self.block, "apparent_kd_M": self.apparent_kd,
                "woodhull_fitted": np.asarray(self.fitted, bool)}
        if self.jahr_stevens is not None:
            cols["jahr_stevens_B"] = self.jahr_stevens
        return cols

    def _fit_text(self) -> str:
        if not math.isfinite(self.z_delta):
            return f"Woodhull fit: not determined ({self.meta.get('woodhull_note', '')})"
        n = int(np.sum(self.fitted))
        exact = self.meta.get("method") == "exact"
        return (f"Woodhull fit of the apparent K(V) = [B](I/I0)/(1 - I/I0), {n} voltages: "
                f"K(0 mV) = {_conc_pm(self.kd0, 0.0 if exact else self.kd0_se, '.4g')}, "
                f"z*delta = {_pm(self.z_delta, 0.0 if exact else self.z_delta_se, fmt='.4g')} "
                f"(K e-folds every {1 / self.efold / mV:.3g} mV, "
                f"{self.efold * mV:.3g} /mV)")

    def summary(self) -> str:
        """Text report: the I-V table (V in mV, currents in A per channel) with and without the
        blocker, and the conditions."""
        m = self.meta
        v = self.voltages
        what = (f"{m['blocker']} ({_conc_text(self.concentration, '.4g')})"
                if m.get("blocker") else "no blocker")
        lines = [f"{self.kind} I-V of {m['gating']}, {what}, {v.min() / mV:g} to "
                 f"{v.max() / mV:g} mV ({v.size} voltages), "
                 f"{_temperature_text(self.temperature)}, E_rev {self.e_rev / mV:g} mV; "
                 "currents per channel"]
        js = self.jahr_stevens
        head = "    V (mV)     I0 (pA)      I (pA)       I/I0"
        if js is not None:
            head += "   B(V) J-S   I/I0 / B - 1"
        lines.append(head)
        dev = self.jahr_stevens_deviation
        for i in range(v.size):
            row = (f"  {v[i] / mV:8.4g}  {self.current_control[i] * 1e12:10.4g}  "
                   f"{self.current[i] * 1e12:10.4g}  "
                   f"{_pm(self.fraction[i], self.fraction_se[i], fmt='.4g'):>9}")
            if js is not None:
                row += f"   {js[i]:8.4g}   {dev[i] * 100:+10.3g} %"
            lines.append(row)
        vp, ip = self.peak_inward
        lo, hi = self.reversal_bracket
        rev = ("no reversal in the tabulated range" if not math.isfinite(lo) else
               f"I = 0 at {lo / mV:g} mV" if lo == hi else
               f"I changes sign between {lo / mV:g} and {hi / mV:g} mV")
        lines.append(f"  {rev} (E_rev {self.e_rev / mV:g} mV); largest inward current "
                     f"{ip * 1e12:.4g} pA at {vp / mV:g} mV")
        if m.get("blocker"):
            lines.append("  " + self._fit_text())
        if js is not None:
            zd_js = _JS_EFOLD * self.thermal_voltage
            lines.append(f"  Jahr & Stevens 1990: K(0 mV) = {_conc_text(_JS_K0)}, "
                         f"e-fold {_JS_EFOLD * mV:.3g} /mV (z*delta = {zd_js:.4g} at "
                         f"{self.temperature:.2f} K); the model's I/I0 is within 20 % of B(V) "
                         f"at {int(np.sum(np.abs(dev) <= 0.2))} of {v.size} voltages")
        lines.append("  " + _method_line(m))
        return "\n".join(lines)

    def __repr__(self) -> str:
        b = self.meta.get("blocker")
        return (f"IVResult({self.kind}, {self.voltages.size} voltages, blocker={b!r}"
                + (f", z_delta={self.z_delta:.4g}" if math.isfinite(self.z_delta) else "")
                + ")")

    def plot(self, ax=None):
        """I-V (pA per channel against mV) with and without the blocker; for Mg2+, also the
        control scaled by Jahr-Stevens B(V)."""
        ax = self._axes(ax)
        v = self.voltages / mV
        ax.plot(v, self.current_control * 1e12, "o-", label="control")
        if self.meta.get("blocker"):
            lab = (f"{self.meta['blocker']} "
                   f"{_conc_text(self.concentration, '.4g').replace('uM', 'µM')}")
            if np.any(self.current_se > 0):
                ax.errorbar(v, self.current * 1e12, yerr=self.current_se * 1e12, fmt="s-",
                            label=lab)
            else:
                ax.plot(v, self.current * 1e12, "s-", label=lab)
        if self.jahr_stevens is not None:
            ax.plot(v, self.current_control * self.jahr_stevens * 1e12, "--",
                    label="control × Jahr–Stevens B(V)")
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.axvline(self.e_rev / mV, color="0.6", lw=0.8, ls=":")
        ax.set_xlabel("V (mV)")
        ax.set_ylabel("current per channel (pA)")
        ax.set_title(f"{self.kind} I–V, {self.meta['gating']}")
        ax.legend()
        return ax


def _voltage_list(name: str, voltages: Any) -> np.ndarray:
    """``voltages`` as an ascending 1-D array of distinct voltages (V); ValueError/TypeError
    naming ``name`` (empty, not 1-D, NaN/inf, |V| > 1 V with the hint, duplicates)."""
    vs = np.atleast_1d(V_.real_array(name, voltages, "V"))
    if vs.ndim != 1 or vs.size < 1:
        raise ValueError(f"{name} must be a 1-D array of at least one voltage (V), got shape "
                         f"{vs.shape}")
    for v in vs:
        V_.voltage(f"{name}[...]", float(v))
    vs = np.sort(vs)
    if np.unique(vs).size != vs.size:
        raise ValueError(f"{name} must be distinct voltages (V); got a repeated value")
    return vs


def _blocker_concentration(su: _Setup, concentration: Any, fn: str) -> float:
    """The experiment concentration (M): > 0 with a blocker, 0 without one."""
    c = V_.concentration("concentration", concentration)
    if su.blocker is None:
        if c != 0:
            raise ValueError(f"{fn}: concentration={c:g} M is given but blocker is None; pass "
                             "a blocker, or concentration=0 for the drug-free experiment")
    elif not c > 0:
        raise ValueError(f"{fn}: concentration must be > 0 (M) with blocker "
                         f"{su.blocker.name!r}; pass blocker=None for the drug-free experiment")
    return c


def iv_curve(gating: Scheme | str, blocker: Any = None, concentration: float = 0.0,
             voltages: Any = None, *, agonist: Mapping[str, float] | None = None,
             kind: str = "steady", also: Sequence[Any] = (),
             background: Mapping[str, float] | None = None, duration: float | None = None,
             preincubation: float = 10 * s, dt: float | None = None, method: str = "exact",
             n_channels: int | None = None, n_trials: int | None = None, rng: Any = None,
             engine: str = "auto", temperature: float | None = None) -> IVResult:
    """Current-voltage (and conductance-voltage) relation with and without a blocker.

    At each voltage: the current per channel ``I(V) = Σ_i g_i p_i(V)·(V − E_rev)`` (A; ×N
    channels for a cell) with the blocker and without it (the control I0: the same scheme,
    agonist, ``also`` blockers and ``background``, without the studied blocker), the chord
    conductance ``Σ g_i p_i`` (S), the fraction I/I0 and the block 1 − I/I0; a Woodhull fit
    of the apparent K(V) behind I/I0; and, for Mg2+, Jahr & Stevens' B(V) beside the model.

    Parameters
    ----------
    gating : Scheme or str
        Gating scheme or model name (``kc.models.available()``).
    blocker : Blocker, str or None
        The blocker (``kc.blockers.available()``); None for the drug-free I-V alone (then
        ``concentration`` must be 0; a scheme with its own Mg2+, such as ``"kampa2004"``,
        takes it in ``background``).
    concentration : float, default 0
        Blocker concentration (M), > 0 with a blocker.
    voltages : array_like, optional
        Distinct membrane voltages (V), |V| ≤ 1 V (``np.arange(-100, 61, 10) * mV`` by
        default); sorted ascending in the result.
    agonist
        As for :func:`ic50` (default ``{"glutamate": 1e-3}`` M, held throughout).
    kind : {"steady", "peak"}
        ``"steady"`` (default): the equilibrium under continuous agonist + blocker at each
        voltage (exact equilibrium theory, :func:`ketacore.theory.rest_state`).  ``"peak"``:
        the peak of the :func:`ic50` ``kind="peak"`` protocol at each voltage -- from
        drug-free rest, ``preincubation`` (s) with the blocker alone, then agonist + blocker
        for ``duration`` (s); the control is the identical protocol without the blocker, and
        ``current`` is the peak conductance × (V − E_rev).
    also, background
        As for :func:`ic50`.
    duration, preincubation, dt
        As for :func:`ic50`: ``duration`` the agonist application of ``kind="peak"``
        (default 0.5 s) or the stochastic steady-state averaging window (default 1 s); ``dt``
        the grid (s; default duration/5000 for peak, duration/100 for the stochastic window).
    method : {"exact", "stochastic"}
        ``"stochastic"``: each voltage is simulated (:func:`ketacore.simulate`) with and
        without the blocker from the exact state at the start of the window (steady: the
        equilibrium; peak: the end of the preincubation); figures are trial means ± SE and
        I/I0 its delta-method ratio.
    n_channels, n_trials, rng, engine
        As for :func:`ic50` (stochastic only).
    temperature : float, optional
        K; default the gating scheme's temperature (``gating.temperature``).  As for
        :func:`ic50`, at every voltage (with and without the blocker), and V_T = RT/F of the
        Woodhull fit and of ``result.thermal_voltage`` is taken at it (``result.temperature``).
        In kelvin (``ketacore.units.celsius(35)`` for 35 °C).

    Returns
    -------
    IVResult

    Raises
    ------
    ValueError, TypeError
        Invalid inputs, before any computation (the message names the parameter): voltages
        empty, not finite, repeated or beyond ±1 V (they are in volts: ``-70 * mV``);
        ``concentration`` negative, NaN, > 10 M, 0 with a blocker or > 0 without one; a
        blocker that never binds, or (``kind="steady"``) never leaves; a control conductance
        that is 0 at every voltage.

    Warns
    -----
    UserWarning
        ``duration`` or ``preincubation`` longer than :data:`LONG_PHASE` (1 h).

    Notes
    -----
    The apparent ``K(V) = [B]·(I/I0)/(1 − I/I0)`` is fitted with the Woodhull line of
    :func:`woodhull` (``ln K = ln K(0) + zδ·V/V_T``) over the voltages where neither I/I0 nor
    1 − I/I0 is below 1e-6.  With a trapping blocker whose blocked arm copies gating (no
    escape, no closed route) the steady I/I0 is exactly ``1/(1 + [B]/K_B(V))`` at every
    voltage, so the fit returns the blocker's own zδ and K_B(0) (with a fixed
    ``thermal_voltage``, such as Kampa's 25 mV, the zδ scaled by (RT/F)/thermal_voltage).

    Jahr & Stevens (1990) J Neurosci 10:3178-3182, doi:10.1523/JNEUROSCI.10-09-03178.1990:
    ``B(V) = 1/(1 + [Mg]/3.57 mM · exp(−0.062 V/mV))``, a steady-state ratio of macroscopic
    conductances, i.e. ``fraction`` here.  The library ``"mg"`` (Kampa et al. 2004 open-channel
    rates, doi:10.1113/jphysiol.2003.058842) gives a K_B(V) that e-folds at 0.080 /mV against
    Jahr-Stevens' 0.062 /mV: at 1 mM Mg2+ it agrees with B(V) near −60 mV only (0.0791 vs
    0.0796) and blocks more below, less above (0.0170 vs 0.0244 at −80 mV, 0.298 vs 0.230 at
    −40 mV; docs/validation.md).
    """
    _warn_long("iv_curve", duration=duration, preincubation=preincubation)
    vs = _IV_VOLTAGES.copy() if voltages is None else _voltage_list("voltages", voltages)
    su = _Setup(gating, blocker, V=float(vs[0]), agonist=agonist, also=also,
                background=background, method=method, n_channels=n_channels,
                n_trials=n_trials, rng=rng, engine=engine, optional_blocker=True,
                temperature=temperature)
    if not isinstance(kind, str) or kind not in ("steady", "peak"):
        raise ValueError(f"kind must be 'steady' or 'peak', got {kind!r}")
    c = _blocker_concentration(su, concentration, "iv_curve")
    if su.blocker is not None:
        _check_blocker(su.blocker, "iv_curve", steady=kind == "steady",
                       undefined="no steady-state I-V with it (the current would be 0 at every "
                                 "voltage)",
                       unbound="nothing to compare with the control")
    preincubation = V_.real("preincubation", preincubation, nonnegative=True)
    if duration is not None:
        duration = V_.duration("duration", duration)
    if dt is not None:
        dt = V_.real("dt", dt, positive=True)
    dur = None
    h = None
    if kind == "peak":
        dur = 0.5 if duration is None else duration
        if dt is not None and dt > dur:
            raise ValueError(f"dt={dt:g} s is longer than the agonist application duration="
                             f"{dur:g} s: the peak would be read from the first sample only; "
                             "pass dt <= duration (default duration/5000)")
        h = dur / 5000 if dt is None else dt
        n_run = _grid_points("iv_curve (kind='peak', duration / dt)", dur, h)
        su.check_run("iv_curve", n_run, n_runs=2)
    elif su.method == "stochastic":
        dur = 1.0 if duration is None else duration
        h = dur / 100 if dt is None else dt
        if h > dur:
            raise ValueError(f"dt={h:g} s is longer than the averaging window duration="
                             f"{dur:g} s")
        n_run = _grid_points("iv_curve (stochastic steady state, duration / dt)", dur, h)
        su.check_run("iv_curve", n_run, n_runs=2)
    else:
        # the exact steady state is the equilibrium: no protocol, so nothing would use them
        unused = [k for k, v in (("duration", duration), ("dt", dt)) if v is not None]
        if unused:
            raise ValueError(f"iv_curve: {' and '.join(unused)} would be unused: the exact steady "
                             "I-V is the equilibrium under each voltage, with no protocol; they "
                             "set kind='peak' or method='stochastic' runs")
    has_b = su.blocker is not None

    def steady_exact(cc: float) -> tuple[float, float]:
        return float(su.conductance(su.equilibrium(True, cc))), 0.0

    def steady_stoch(cc: float) -> tuple[float, float]:
        p0 = su.equilibrium(True, cc)
        _, occ = su.run(Protocol([su.step(dur, True, cc)]), h, p0)
        m_, s_ = _mean_se((occ @ su.g).mean(axis=1))
        return float(m_), float(s_)

    def peak(cc: float) -> tuple[float, float]:
        if su.method == "exact":
            return _peak_exact(su, cc, preincubation, dur, h), 0.0
        rest = su.equilibrium(False)
        p_start = rest
        if preincubation > 0 and cc > 0:
            _, occ = su.exact(Protocol([su.step(preincubation, False, cc)]), preincubation,
                              rest)
            p_start = occ[-1]
        return _stochastic_peak(su, Protocol([su.step(dur, True, cc)]), h, p_start)

    one = (peak if kind == "peak" else steady_exact if su.method == "exact"
           else steady_stoch)
    n = vs.size
    gc, gcs, gd, gds = (np.zeros(n) for _ in range(4))
    frac = np.full(n, np.nan)
    fse = np.zeros(n)
    for i, v in enumerate(vs):
        su.V = float(v)
        gc[i], gcs[i] = one(0.0)
        if has_b:
            gd[i], gds[i] = one(c)
        else:
            gd[i], gds[i] = gc[i], gcs[i]
        if gc[i] > 0:
            frac[i], fse[i] = _ratio_se(gd[i], gds[i], gc[i], gcs[i])
            if not has_b:
                frac[i], fse[i] = 1.0, 0.0
    if not np.any(gc > 0):
        raise ValueError("iv_curve: the control (drug-free) conductance is 0 at every voltage "
                         "with this agonist: no channel opens, so there is no I-V; check "
                         "agonist (and duration for kind='peak')")
    e = float(su.scheme.e_rev)
    drive = vs - e
    T = float(su.T)
    # Woodhull fit of the apparent K(V) = [B] f/(1 - f)
    kd0 = kd0_se = zd = zd_se = float("nan")
    fitted = np.zeros(n, dtype=bool)
    note = None
    if has_b:
        ok = np.isfinite(frac) & (frac >= _IV_FIT_MIN) & (1.0 - frac >= _IV_FIT_MIN)
        if su.method == "stochastic":
            ok &= fse > 0
        fitted = ok
        if np.count_nonzero(ok) >= 2:
            f = frac[ok]
            ln_k = math.log(c) + np.log(f) - np.log1p(-f)
            w = f * (1.0 - f) / fse[ok] if su.method == "stochastic" else None
            kd0, kd0_se, zd, zd_se = _woodhull_fit(vs[ok], ln_k, w, T)
        else:
            note = (f"{int(np.count_nonzero(ok))} voltage(s) with I/I0 and 1 - I/I0 both >= "
                    f"{_IV_FIT_MIN:g}; the fit needs 2")
    else:
        note = "no blocker"
    js = None
    if has_b and su.ligand == "mg":
        from .blockers import jahr_stevens
        js = _frozen(jahr_stevens(vs, c))
    meta = su.meta()
    meta.update(V=float("nan"), voltages=vs.tolist(), concentration=c, kind=kind,
                duration=dur, preincubation=preincubation if kind == "peak" else None,
                woodhull_note=note)
    return IVResult(
        voltages=_frozen(vs), current=_frozen(gd * drive), current_se=_frozen(gds * np.abs(drive)),
        current_control=_frozen(gc * drive), current_control_se=_frozen(gcs * np.abs(drive)),
        conductance=_frozen(gd), conductance_se=_frozen(gds), conductance_control=_frozen(gc),
        conductance_control_se=_frozen(gcs), fraction=_frozen(frac), fraction_se=_frozen(fse),
        concentration=c, e_rev=e, kind=kind, kd0=kd0, kd0_se=kd0_se, z_delta=zd,
        z_delta_se=zd_se, fitted=_frozen(fitted, dtype=bool), jahr_stevens=js, temperature=T,
        meta=meta)


# =========================================================================== voltage jump
#: voltage_jump: exact components whose |current amplitude| is below this fraction of the
#: summed |amplitudes| are left out of ``summary()`` (all are kept in ``taus``/``amplitudes``).
_JUMP_SHOWN = 0.01
#: voltage_jump: the default trace lasts 8 x the slowest component carrying the relaxation,
#: shortened (down to this many times it) when a grid resolving the fastest one would need
#: more than 200 000 samples.
_JUMP_MIN_SLOW = 3.0


def _nice_down(x: float) -> float:
    """The largest of 1, 2, 5 × 10^k (s) that is <= ``x`` (> 0)."""
    k = math.floor(math.log10(x))
    for m in (5.0, 2.0, 1.0):
        v = m * 10.0 ** k
        if v <= x * (1 + 1e-12):
            return float(f"{v:.12g}")
    return float(f"{10.0 ** (k - 1) * 5:.12g}")  # pragma: no cover - unreachable


def _nice_up(x: float) -> float:
    """The smallest of 1, 2, 5 × 10^k (s) that is >= ``x`` (> 0): a default duration that
    shares a grid with its tenth."""
    k = math.floor(math.log10(x))
    for m in (1.0, 2.0, 5.0, 10.0):
        v = m * 10.0 ** k
        if v >= x * (1 - 1e-12):
            return float(f"{v:.12g}")
    return float(f"{10.0 ** (k + 1):.12g}")  # pragma: no cover - unreachable


@dataclass(frozen=True, repr=False)
class VoltageJumpResult(_ResultBase):
    """Relaxation of the current after a voltage jump (:func:`voltage_jump`).

    Channels sit at the equilibrium of agonist + blocker at ``V_hold``; at t = 0 the voltage
    steps to ``V_step`` (agonist and blocker continue).  Currents are per channel (A).

    Attributes
    ----------
    time : ndarray
        Time (s) from the jump: ``-t_hold`` … 0 holding, 0 … ``t_step`` after the jump.  The
        sample at t = 0 is the first at ``V_step`` (the instantaneous current).
    current, current_se : ndarray
        Current per channel (A) on ``time`` (trial mean for ``method="stochastic"``) and its
        SE (0 for ``"exact"``).
    V_hold, V_step : float
        Holding and step voltages (V).
    concentration : float
        Blocker concentration (M) throughout (0 without a blocker).
    holding_current, instantaneous_current, steady_current : float
        Exact currents (A; from equilibrium theory in both methods): at equilibrium at
        ``V_hold``; just after the jump, the holding occupancies at ``V_step``
        (``Σ g_i p_i(V_hold)·(V_step − E_rev)``: occupancies cannot jump, the driving force
        does); and at the new equilibrium at ``V_step``.
    holding_fraction, steady_fraction : float
        Exact equilibrium I/I0 (conductance with the blocker over without it) at ``V_hold``
        and at ``V_step``; NaN where the control conductance is 0.
    taus : ndarray
        Exact relaxation time constants (s), ascending: −1/λ of the non-zero eigenvalues of the
        Q matrix of the step conditions (:func:`ketacore.theory.relaxation` from the holding
        equilibrium; degenerate eigenvalues merged).
    amplitudes : ndarray
        Current amplitude (A) of each component:
        ``I(t) = steady_current + Σ_m amplitudes[m]·exp(−t/taus[m])`` for t ≥ 0, so
        ``Σ amplitudes = instantaneous_current − steady_current``.
    relaxation : ketacore.theory.Relaxation
        The occupancy relaxation itself (per-state amplitudes, equilibrium, start).
    fit_taus, fit_amplitudes : ndarray
        Exponentials (s; A) fitted to the trace after the jump, ``c + Σ a_i exp(−t/τ_i)``
        (``scipy.optimize.curve_fit``), for comparison with the exact components.  NaN when
        there is no relaxation to fit (``meta["fit_note"]`` says why).
    fit_tau, fit_tau_se : float
        Fitted τ (s) (with two exponentials the amplitude-weighted mean) and its SE: the
        fit covariance for ``"exact"``, the jackknife over trials for ``"stochastic"`` (as
        :func:`block_kinetics`).
    n_exponentials : int
    meta : dict
        Gating model, blocker, temperature (K), agonist, background, ``t_hold``, ``t_step``,
        ``dt`` (s),
        method and stochastic settings, ``fit_note``; ``V`` is NaN (see V_hold/V_step).
    """

    time: np.ndarray
    current: np.ndarray
    current_se: np.ndarray
    V_hold: float
    V_step: float
    concentration: float
    holding_current: float
    instantaneous_current: float
    steady_current: float
    holding_fraction: float
    steady_fraction: float
    taus: np.ndarray
    amplitudes: np.ndarray
    relaxation: Any
    fit_taus: np.ndarray
    fit_amplitudes: np.ndarray
    fit_tau: float
    fit_tau_se: float
    n_exponentials: int
    meta: dict = field(default_factory=dict)

    @property
    def dominant_tau(self) -> float:
        """Exact time constant (s) of the component with the largest |current amplitude|
        (NaN when nothing relaxes)."""
        a = np.abs(self.amplitudes)
        if not a.size or not a.max() > 0:
            return float("nan")
        return float(self.taus[int(np.argmax(a))])

    @property
    def weights(self) -> np.ndarray:
        """|amplitudes| / Σ|amplitudes| of the exact components (fractions of the summed
        amplitude)."""
        a = np.abs(self.amplitudes)
        tot = a.sum()
        return a / tot if tot > 0 else np.zeros_like(a)

    def exact_current(self, t: Any) -> np.ndarray:
        """Exact current (A) at time(s) ``t`` ≥ 0 (s) after the jump, from the relaxation
        components."""
        tt = np.asarray(t, float)
        if np.any(~np.isfinite(tt)) or np.any(tt < 0):
            raise ValueError("t must be finite times >= 0 s after the jump")
        e = np.exp(-tt[..., None] / self.taus) if self.taus.size else np.zeros(tt.shape + (0,))
        return self.steady_current + e @ self.amplitudes

    def _columns(self):
        cols = {"time_s": self.time, "V_mV": np.where(self.time < 0, self.V_hold,
                                                       self.V_step) / mV,
                "current_A": self.current, "current_se_A": self.current_se}
        after = self.time >= 0
        ex = np.full(self.time.shape, self.holding_current)
        ex[after] = self.exact_current(self.time[after])
        cols["exact_A"] = ex
        return cols

    def summary(self) -> str:
        """Text report: holding, instantaneous and steady currents (pA per channel), the exact
        relaxation components and the exponential fit (s)."""
        m = self.meta
        what = (f"{m['blocker']} ({_conc_text(self.concentration, '.4g')})"
                if m.get("blocker") else "no blocker")
        ii, iss = self.instantaneous_current, self.steady_current
        ratio = (f" (steady/instantaneous {iss / ii:.4g})" if ii != 0 and math.isfinite(ii)
                 else "")
        lines = [f"voltage jump {self.V_hold / mV:g} -> {self.V_step / mV:g} mV"
                 f"{_temperature_suffix(m)} on {m['gating']}, {what}, continued agonist; "
                 "currents per channel",
                 f"  holding {_pa(self.holding_current)}; instantaneous {_pa(ii)}; steady "
                 f"state {_pa(iss)}{ratio}",
                 f"  equilibrium I/I0 {self.holding_fraction:.4g} at {self.V_hold / mV:g} mV, "
                 f"{self.steady_fraction:.4g} at {self.V_step / mV:g} mV"]
        w = self.weights
        scale = max(abs(ii), abs(iss))
        relaxes = float(np.abs(self.amplitudes).sum()) > 1e-9 * scale
        shown = [i for i in range(self.taus.size) if w[i] >= _JUMP_SHOWN] if relaxes else []
        if shown:
            comps = ", ".join(f"{_time_text(self.taus[i])} ({_pa(self.amplitudes[i])}, "
                              f"{w[i]:.0%})" for i in shown)
            lines.append(f"  exact relaxation (Q-matrix eigenvalues at {self.V_step / mV:g} "
                         f"mV, from the holding equilibrium): {comps}"
                         + (f"; {self.taus.size - len(shown)} more below "
                            f"{_JUMP_SHOWN:.0%} each" if len(shown) < self.taus.size else ""))
        else:
            lines.append("  exact relaxation: no current relaxes (amplitudes at round-off or "
                         "none)")
        if math.isfinite(self.fit_tau):
            se = self.fit_tau_se if m.get("method") != "exact" else 0.0
            fit = f"tau = {_time_text(self.fit_tau, se=se)}"
            if self.n_exponentials > 1:
                fit += (" (amplitude-weighted; components "
                        + ", ".join(_time_text(x) for x in self.fit_taus) + ")")
            lines.append(f"  fit of {self.n_exponentials} exponential(s) to the trace after "
                         f"the jump: {fit}; exact dominant component "
                         f"{_time_text(self.dominant_tau)}")
        else:
            lines.append(f"  no exponential fit ({m.get('fit_note')})")
        lines.append("  " + _method_line(m))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"VoltageJumpResult({self.V_hold / mV:g} -> {self.V_step / mV:g} mV, "
                f"{self.taus.size} components, dominant tau {self.dominant_tau:.4g} s)")

    def plot(self, ax=None):
        """Current (pA per channel) against time (ms) from the jump, with the fitted
        exponential(s) after it."""
        ax = self._axes(ax)
        t = self.time / ms
        ax.plot(t, self.current * 1e12, "-", label="model" + (
            " (trial mean)" if self.meta.get("method") == "stochastic" else ""))
        if math.isfinite(self.fit_tau):
            after = self.time >= 0
            ta = self.time[after]
            c = float(self.meta.get("fit_offset", self.steady_current))
            y = c + np.exp(-ta[:, None] / self.fit_taus) @ self.fit_amplitudes
            ax.plot(ta / ms, y * 1e12, "--",
                    label=f"fit, τ {_time_text(self.fit_tau, '.3g').replace('us', 'µs')}")
        ax.axvline(0.0, color="0.6", lw=0.8)
        ax.axhline(0.0, color="0.8", lw=0.6)
        ax.set_xlabel("time from the jump (ms)")
        ax.set_ylabel("current per channel (pA)")
        ax.set_title(f"{self.V_hold / mV:g} → {self.V_step / mV:g} mV")
        ax.legend()
        return ax


def voltage_jump(gating: Scheme | str, blocker: Any, concentration: float, V_hold: float,
                 V_step: float, *, agonist: Mapping[str, float] | None = None,
                 t_hold: float | None = None, t_step: float | None = None,
                 dt: float | None = None, n_exponentials: int = 1, also: Sequence[Any] = (),
                 background: Mapping[str, float] | None = None, method: str = "exact",
                 n_channels: int | None = None, n_trials: int | None = None, rng: Any = None,
                 engine: str = "auto",
                 temperature: float | None = None) -> VoltageJumpResult:
    """Relaxation of the current after a voltage jump in the continued presence of agonist
    and blocker.

    Channels are at the equilibrium of agonist + blocker at ``V_hold`` (exact,
    :func:`ketacore.theory.rest_state`); the trace holds ``t_hold`` there, then the voltage
    steps to ``V_step`` for ``t_step`` (agonist and blocker unchanged).  This is the protocol
    of Mg2+ unblock on depolarisation (Kampa et al. 2004, J Physiol 556:337,
    doi:10.1113/jphysiol.2003.058842) and of the amantadine relaxations of Blanpied, Clarke &
    Johnson 2005 (J Neurosci 25:3312, doi:10.1523/JNEUROSCI.4262-04.2005; −67 → +40 mV).

    Parameters
    ----------
    gating : Scheme or str
        Gating scheme or model name.
    blocker : Blocker, str or None
        The blocker; None (with ``concentration=0``) for the drug-free jump, e.g. a scheme
        with voltage-dependent gating or its own Mg2+ (``"kampa2004"`` with
        ``background={"mg": 1e-3}``).
    concentration : float
        Blocker concentration (M), > 0 with a blocker.
    V_hold, V_step : float
        Holding and step voltages (V), |V| ≤ 1 V, different.
    agonist
        As for :func:`ic50` (default ``{"glutamate": 1e-3}`` M).
    t_hold : float, optional
        Holding baseline shown before the jump (s), ≥ 0; default ``t_step/10``.
    t_step : float, optional
        Trace after the jump (s); default 8 × the slowest exact component carrying ≥ 10 % of
        the largest current amplitude, rounded up to 1, 2 or 5 × 10^k s -- or shorter (not
        below 3 × that component) where a grid resolving the fastest such component would
        need more than 200 000 samples (amantadine 100 µM on ``erreger2005_2b``, −67 → +40 mV:
        components 0.21 ms … 1.35 s, 10 s).
    dt : float, optional
        Grid step (s); it must divide ``t_hold`` and ``t_step``.  Default: ``t_step/2000`` or
        finer, to put ≥ 4 steps in the fastest such component (ValueError if that needs more
        than 200 000 samples: pass ``t_step`` and ``dt`` for the time scale you want), on a
        grid that divides ``t_hold`` and ``t_step``.
    n_exponentials : {1, 2, 3}
        Exponentials fitted to the trace after the jump (3: started from the best set of
        three time constants on a log grid, amplitudes by linear least squares).  A relaxation with more
        components than that (amantadine on ``erreger2005_2b``: eight above 3 % between 0.2 ms
        and 1.4 s, at the validation page's 30 µM glutamate, -67 -> +40 mV) is only summarised by the fit; its exact components are ``taus`` and
        ``amplitudes``.
    also, background
        As for :func:`ic50`.
    method : {"exact", "stochastic"}
        ``"exact"``: the trace is :func:`ketacore.solve` of the two-step protocol from the
        holding equilibrium.  ``"stochastic"``: :func:`ketacore.simulate` of the same protocol
        from channels drawn from that equilibrium; ``current`` is the trial mean ± SE, and the
        fit is to the trial mean with a jackknife SE (as :func:`block_kinetics`).
    n_channels, n_trials, rng, engine
        As for :func:`ic50` (stochastic only).
    temperature : float, optional
        K; default the gating scheme's temperature (``gating.temperature``).  As for
        :func:`ic50`: both equilibria, the exact relaxation (``taus``: the eigenvalues of the
        step Q matrix at this temperature) and the traces are taken at it.  In kelvin
        (``ketacore.units.celsius(35)`` for 35 °C).

    Returns
    -------
    VoltageJumpResult

    Raises
    ------
    ValueError, TypeError
        Invalid inputs, before any computation (the message names the parameter): voltages
        beyond ±1 V (in volts: ``40 * mV``) or equal; ``concentration`` negative, NaN, 0 with
        a blocker or > 0 without one; ``t_hold`` < 0; ``dt`` not dividing ``t_hold`` and
        ``t_step`` or longer than the slowest component carrying the relaxation; a blocker
        that never binds or never leaves (every channel blocked at the holding equilibrium);
        a scheme with no conducting state.  Stochastic: a trial mean too noisy to fit (raise
        ``n_channels`` or ``n_trials``).

    Warns
    -----
    UserWarning
        ``t_hold`` or ``t_step`` longer than :data:`LONG_PHASE` (1 h).
    RuntimeWarning
        Complex eigenvalues (a scheme out of detailed balance): the real parts of the time
        constants and amplitudes are reported.

    Notes
    -----
    ``I(t) = I_∞ + Σ_m a_m exp(−t/τ_m)`` exactly, with τ_m = −1/λ_m of the step Q matrix and
    a_m = (V_step − E_rev)·Σ_i g_i (p_hold A_m)_i, A_m its spectral matrices (Colquhoun &
    Hawkes 1977, Proc R Soc Lond B 199:231-262; :func:`ketacore.theory.relaxation`).  The time
    constants are properties of the step conditions alone; the holding state sets the
    amplitudes.  With the library ``"mg"`` on ``erreger2005_2a`` (1 mM glutamate and Mg2+),
    −70 → +40 mV, one 75 µs component carries 96 % of the current relaxation (0.31 ms and
    4.1 ms components 2 % and 1 %).  Kampa et al. 2004 also report slower components (≈ 4 ms
    and ≈ 300 ms); the ``"kampa2004"`` model, whose Mg2+ also binds closed states and alters
    gating, has 3.5 ms and 123 ms components after a glutamate pulse (docs/validation.md).
    """
    Vh = V_.voltage("V_hold", V_hold)
    Vs = V_.voltage("V_step", V_step)
    if Vh == Vs:
        raise ValueError(f"V_step equals V_hold ({Vh / mV:g} mV): there is no voltage jump")
    _warn_long("voltage_jump", t_hold=t_hold, t_step=t_step)
    su = _Setup(gating, blocker, V=Vh, agonist=agonist, also=also, background=background,
                method=method, n_channels=n_channels, n_trials=n_trials, rng=rng,
                engine=engine, optional_blocker=True, temperature=temperature)
    c = _blocker_concentration(su, concentration, "voltage_jump")
    if su.blocker is not None:
        _check_blocker(su.blocker, "voltage_jump",
                       undefined="no relaxation (every channel is blocked at the holding "
                                 "equilibrium)",
                       unbound="nothing relaxes with it",
                       advice="use trapping() for an irreversible blocker, or give k_off > 0")
    if t_hold is not None:
        t_hold = V_.real("t_hold", t_hold, nonnegative=True)
    if t_step is not None:
        t_step = V_.duration("t_step", t_step)
    if dt is not None:
        dt = V_.real("dt", dt, positive=True)
    n_exponentials = V_.integer("n_exponentials", n_exponentials, minimum=1, maximum=3)
    if not np.any(su.g > 0):
        raise ValueError("voltage_jump: the scheme has no conducting state (every conductance "
                         "is 0): there is no current")
    e = float(su.scheme.e_rev)
    g_ref = float(su.g.max())
    # exact: holding equilibrium, step equilibrium, relaxation
    su.V = Vh
    p_hold = su.equilibrium(True, c)
    g0_hold = float(su.conductance(su.equilibrium(True)))
    su.V = Vs
    g0_step = float(su.conductance(su.equilibrium(True)))
    rel = su.relaxation(p_hold, True, c, V=Vs)
    taus_c = np.asarray(rel.taus)
    amps_occ = np.asarray(rel.amplitudes)
    if np.iscomplexobj(taus_c) or np.iscomplexobj(amps_occ):
        im = np.abs(np.imag(taus_c)).max(initial=0.0)
        if im > 1e-9 * np.abs(taus_c).max(initial=0.0):
            warnings.warn("voltage_jump: the step Q matrix has complex eigenvalues (a scheme "
                          "out of detailed balance; damped oscillating components): the real "
                          "parts of the time constants and amplitudes are reported",
                          RuntimeWarning, stacklevel=2)
    taus = np.real(taus_c)
    amps_I = np.real(amps_occ) @ su.g * (Vs - e)
    g_hold = float(su.conductance(p_hold))
    g_ss = float(su.conductance(np.real(np.asarray(rel.equilibrium))))
    # grid
    ct, _ = (_carriers(rel, su.g / g_ref) if taus.size
             else (np.array([1e-3]), np.array([0.0])))
    fast, slow = float(np.min(ct)), float(np.max(ct))
    if t_step is None:
        t_step = _nice_up(min(8.0 * slow, 1e6))
        # a grid resolving the fastest carrier would be too long: shorten the trace, down to
        # _JUMP_MIN_SLOW x the slowest carrier (below that, refused after this)
        longest = _nice_down(_AUTO_MAX_PHASE_SAMPLES * fast / _STEPS_PER_TAU)
        if t_step > longest and longest >= _JUMP_MIN_SLOW * slow:
            t_step = longest
    hold_default = t_hold is None
    if hold_default:
        t_hold = t_step / 10.0
    if dt is None:
        n = max(_DEFAULT_PHASE_SAMPLES, math.ceil(t_step * _STEPS_PER_TAU / fast))
        if hold_default:
            n = 10 * math.ceil(n / 10)         # t_hold = t_step/10 on the same grid
        if n > _AUTO_MAX_PHASE_SAMPLES:
            raise ValueError(
                f"voltage_jump: the exact relaxation is carried by components from "
                f"{_time_text(fast)} to {_time_text(slow)}; with t_step={t_step:.3g} s a grid "
                f"resolving {_time_text(fast)} needs {n:.6g} samples (> "
                f"{_AUTO_MAX_PHASE_SAMPLES} automatic); pass t_step <= "
                f"{(_AUTO_MAX_PHASE_SAMPLES - 1) * fast / _STEPS_PER_TAU:.3g} s for the fast "
                "part, or t_step and dt for the slow part")
        h = t_step / n
        if not hold_default and t_hold > 0 and abs(t_hold / h - round(t_hold / h)) > 1e-6:
            h = _common_grid(h, t_hold, t_step, names=("t_hold", "t_step"))
    else:
        h = dt
        for name, x in (("t_step", t_step), ("t_hold", t_hold)):
            if abs(x / h - round(x / h)) > 1e-6:
                raise ValueError(f"dt={h:g} s does not divide {name}={x:g} s: the jump must "
                                 "fall on the grid; choose dt = t_hold/k and t_step/m")
        if h > t_step:
            raise ValueError(f"dt={h:g} s is longer than t_step={t_step:g} s")
        if h > slow:
            raise ValueError(f"dt={h:g} s is longer than the slowest exact component carrying "
                             f"the relaxation ({_time_text(slow)}): the trace cannot resolve "
                             "it; pass a smaller dt (default: >= 4 steps in the fastest)")
    n_hold = int(round(t_hold / h))
    n_step = int(round(t_step / h))
    n_tot = _grid_points("voltage_jump (t_hold + t_step) / dt", t_hold + t_step, h)
    su.check_run("voltage_jump", n_tot)
    steps = (([su.step(t_hold, True, c, V=Vh)] if n_hold > 0 else [])
             + [su.step(t_step, True, c, V=Vs)])
    protocol = Protocol(steps)
    time, occ = su.run(protocol, h, p_hold)
    Vt = protocol.voltage_at(time, h)
    cur = (occ @ su.g) * (Vt - e)                   # (trials, samples), A
    cur_m, cur_s = _mean_se(cur)
    if su.method == "exact":
        cur_s = np.zeros_like(cur_m)
    t_rel = time - time[n_hold]
    # fit after the jump (scaled to O(1): the flatness tests of the fit are absolute)
    after = slice(n_hold, None)
    tt = t_rel[after]
    scale = max(abs(g_hold * (Vs - e)), abs(g_ss * (Vs - e)), float(np.abs(cur_m).max()))
    fit_taus = fit_amps = np.full(n_exponentials, np.nan)
    fit_tau = fit_se = float("nan")
    fit_offset = float("nan")
    note = None
    total = float(np.abs(amps_I).sum())
    if not scale > 0 or not total > 1e-9 * scale:
        note = ("no relaxation of the current after the jump"
                + (" (V_step is the reversal potential)" if Vs == e else ""))
    elif su.method == "exact":
        try:
            ft, fa, fc, _, fit_se = _fit_exponentials(tt, cur_m[after] / scale,
                                                      n_exponentials, weighted_se=True)
            fit_taus, fit_amps, fit_offset = ft, fa * scale, fc * scale
            w = np.abs(fa) / np.abs(fa).sum()
            fit_tau = float(np.sum(w * ft))
        except (ValueError, RuntimeError) as exc:
            note = f"the exponential fit failed: {exc}"
    else:
        n_open = su.n_channels * g_hold / g_ref
        try:
            fit_tau, _, _, fit_se = _fit_trials(tt, cur[:, after] / scale, n_exponentials)
            ft, fa, fc, _ = _fit_exponentials(tt, cur_m[after] / scale, n_exponentials,
                                              noisy=True)
            fit_taus, fit_amps, fit_offset = ft, fa * scale, fc * scale
        except _TooNoisy as exc:
            raise ValueError(
                f"voltage_jump: the simulated current after the jump is too noisy to fit "
                f"({exc}): about {n_open:.3g} of the {su.n_channels} channels conduct at the "
                f"holding equilibrium; raise n_channels (now {su.n_channels}) or n_trials "
                f"(now {su.n_trials})") from None
    if math.isfinite(fit_tau) and fit_tau < _MIN_FIT_STEPS * h:
        note = (f"the fitted tau {_time_text(fit_tau)} spans fewer than {_MIN_FIT_STEPS} grid "
                f"steps (dt = {h:.3g} s): it does not resolve the relaxation; use the exact "
                "components or a finer dt")
        warnings.warn(f"voltage_jump: {note}", RuntimeWarning, stacklevel=2)
    meta = su.meta()
    meta.update(V=float("nan"), V_hold=Vh, V_step=Vs, concentration=c, t_hold=float(n_hold * h),
                t_step=float(n_step * h), dt=float(h), fit_note=note, fit_offset=fit_offset)
    return VoltageJumpResult(
        time=_frozen(t_rel), current=_frozen(cur_m), current_se=_frozen(cur_s), V_hold=Vh,
        V_step=Vs, concentration=c, holding_current=g_hold * (Vh - e),
        instantaneous_current=g_hold * (Vs - e), steady_current=g_ss * (Vs - e),
        holding_fraction=g_hold / g0_hold if g0_hold > 0 else float("nan"),
        steady_fraction=g_ss / g0_step if g0_step > 0 else float("nan"),
        taus=_frozen(taus), amplitudes=_frozen(amps_I), relaxation=rel,
        fit_taus=_frozen(fit_taus), fit_amplitudes=_frozen(fit_amps), fit_tau=float(fit_tau),
        fit_tau_se=float(fit_se), n_exponentials=n_exponentials, meta=meta)
