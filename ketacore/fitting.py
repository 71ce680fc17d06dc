"""Maximum-likelihood fitting of rate constants to resolved single-channel records (HJC).

:func:`fit_hjc` maximises the HJC missed-events likelihood
(:func:`ketacore.theory.hjc_loglik`; Hawkes, Jalali & Colquhoun 1990, 1992; CHS vectors of
Colquhoun, Hawkes & Srodzinski 1996) over the rate constants of a :class:`~ketacore.Scheme`,
jointly over records taken at several concentrations, as HJCFIT (DCPROGS) does
[CHH03]_.  Rates can be free, fixed, constrained to another rate times a constant, or set by
microscopic reversibility (MR); the result, :class:`HJCFit`, carries approximate standard
errors and correlations from the observed information, and gives profile likelihood intervals
(:meth:`HJCFit.likelihood_intervals`).

Quick tour::

    import ketacore as kc
    from ketacore.units import us, ms, uM

    ch82 = kc.models.get("ch82")
    fit = kc.fitting.fit_hjc(
        ch82, [(groups_01, {"agonist": 0.1 * uM}), (groups_1, {"agonist": 1 * uM})],
        t_res=25 * us, t_crit=3.5 * ms,
        fixed=["AR->R", "R->AR", "AR->A2R", "AR*->A2R*"])   # MR sets A2R*->AR*
    print(fit.summary())

References
----------
.. [CHH03] Colquhoun D, Hatton CJ, Hawkes AG (2003) The quality of maximum likelihood
   estimates of ion channel rate constants.  J Physiol 547:699-728,
   doi:10.1113/jphysiol.2002.034165.
.. [HJC90] Hawkes, Jalali & Colquhoun (1990) Phil Trans R Soc Lond A 332:511-538,
   doi:10.1098/rsta.1990.0129; [HJC92] (1992) Phil Trans R Soc Lond B 337:383-404,
   doi:10.1098/rstb.1992.0116.
.. [CHS96] Colquhoun, Hawkes & Srodzinski (1996) Phil Trans R Soc Lond A 354:2555-2590,
   doi:10.1098/rsta.1996.0115.
"""
from __future__ import annotations

import collections.abc as _abc
import math
import numbers
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Mapping

import numpy as np
from scipy import optimize

from . import theory as _th
from . import _validate as _V
from .scheme import Scheme

__all__ = ["fit_hjc", "HJCFit", "fit_macroscopic", "MacroscopicFit", "arm_ties"]

#: Relative step of the log-rates for the numerical Hessian (and the final gradient).
HESSIAN_STEP = 1e-3
#: Step of the log-rates for the central-difference gradient of the polishing stage.
GRADIENT_STEP = 1e-5
#: Eigenvalues of the Hessian of -ln L (in ln k0) at most this fraction of the largest one
#: count as zero (the fit does not determine that combination of rates) ...
SINGULAR_RTOL = 1e-7
#: ... as do eigenvalues below ``SINGULAR_NOISE * |ln L| / hessian_step**2``, the rounding
#: level of the second differences (ln L is accurate to ~1e-13 relative): a combination of
#: ln k0 with an SE above ~1 / sqrt(that) is not determined by the data.
SINGULAR_NOISE = 1e-12


def _key(t) -> str:
    return f"{t.src}->{t.dst}"


def _how_set(k: str, kind: str, constraints: Mapping, mr_cycles: Mapping) -> str:
    """How a fit's summary says rate ``k`` was set: free, fixed, ``= c x OTHER``, or
    ``MR (cycle)`` (fit_hjc's and fit_macroscopic's tables)."""
    if kind == "constrained":
        other, c = constraints[k]
        return f"= {c:g} x {other}"
    if kind == "mr":
        return "MR (" + "-".join(mr_cycles[k]) + ")"
    return kind


def _units(t) -> str:
    return "M^-1 s^-1" if t.rate.ligand is not None else "s^-1"


# ------------------------------------------------------------------------- result


@dataclass(frozen=True, eq=False)
class HJCFit:
    """Result of :func:`fit_hjc`.

    Compared by identity (``==`` is ``is``; field-wise equality of its arrays has no single
    truth value) and hashable.

    Rates are the ``Rate.k0`` of each transition ("SRC->DST" keys): s^-1, or M^-1 s^-1 for
    a ligand-bound transition (per-site microscopic constants; statistical factors such as
    the 2 of ``2 k+1`` stay in ``Rate.factor``).

    Attributes
    ----------
    scheme : Scheme
        The input scheme with every transition's ``k0`` replaced by its fitted value
        (constrained and MR-set rates computed from the fitted ones; fixed ones unchanged).
    rates : dict
        ``k0`` of every transition, in ``scheme.transitions`` order.
    kinds : dict
        How each transition's ``k0`` was obtained: ``"free"``, ``"fixed"``,
        ``"constrained"`` or ``"mr"``.
    free : tuple of str
        The free transitions, in parameter order (rows of ``covariance``).
    loglik : float
        ``sum over data sets of hjc_loglik(scheme, groups, ...)`` (natural log, durations
        in s) at the fitted rates, evaluated through the public function on ``scheme``.
    n_free : int
        Number of free parameters.
    se : dict
        Approximate standard error of ``k0`` for every free, constrained and MR-set
        transition (not for fixed ones): from the inverse observed information in ln k0,
        ``SE(k0) = k0 sqrt(var(ln k0))`` (delta method, first order; derived ln k0 are
        affine in the free ln k0, so their variances on the log scale are exact functions of
        the covariance, and only the step to the linear scale is approximate).  Not given
        for a derived rate that depends on fixed rates only.  NaN when the Hessian is not
        positive definite (a ``RuntimeWarning`` was issued).
    covariance, correlation : ndarray, (n_free, n_free)
        Approximate covariance of the free ``k0`` (units of the rates squared) and their
        correlation matrix (the same in ln k0).  NaN when the Hessian is not positive
        definite.
    cov_log : ndarray, (n_free, n_free)
        Inverse of ``hessian``: approximate covariance of the free ln k0.
    hessian : ndarray, (n_free, n_free)
        Numerical Hessian of ``-ln L`` with respect to the free ln k0 at the optimum.
    converged : bool
        The optimiser reported success *and* the Newton decrement ``g H^-1 g / 2`` at the
        optimum (g the central-difference gradient of ``-ln L``) is below 0.01, i.e. a
        quadratic model predicts less than 0.01 more ln L (or, without a positive-definite
        Hessian, only the optimiser's success).
    message : str
        What the optimiser stages said, and the Newton decrement.
    n_evaluations : int
        Number of likelihood evaluations (each over all data sets), Hessian included.
    mr_cycles : dict
        For each transition set by microscopic reversibility, the states of its cycle,
        starting ``src, dst`` of that transition.
    constraints : dict
        ``{transition: (other, factor)}``: ``k0 = factor * k0[other]``.
    units : dict
        Unit of each ``k0``.
    t_res : float or tuple of float
        Resolution (s): a float when one was given for every data set (or, with ``t_res``
        omitted, when every record had the same), else a tuple with each data set's.
    t_crit : tuple
        Critical shut time (s) of each data set, ``None`` where none was used.
    conditions : tuple of dict
        Conditions of each data set.
    method : str
        The optimiser used (see :func:`fit_hjc`).
    elapsed : float
        Wall-clock time of the fit (s).
    n_groups : tuple of int
        Number of groups (bursts, or stretches between unusable intervals) of each data
        set, as fitted (``()`` for an HJCFit not built by :func:`fit_hjc`).
    n_intervals : tuple of int
        Number of intervals (apparent open and shut times, s) in the groups of each data
        set (``()`` likewise).
    """

    scheme: Scheme
    rates: dict
    kinds: dict
    free: tuple
    loglik: float
    n_free: int
    se: dict
    covariance: np.ndarray
    correlation: np.ndarray
    cov_log: np.ndarray
    hessian: np.ndarray
    converged: bool
    message: str
    n_evaluations: int
    mr_cycles: dict
    constraints: dict
    units: dict
    t_res: float | tuple
    t_crit: tuple
    conditions: tuple
    method: str
    elapsed: float
    n_groups: tuple = ()
    n_intervals: tuple = ()
    _profile: object = field(default=None, repr=False, compare=False)

    def likelihood_intervals(self, m: float = 2.0, which=None, *, xtol: float = 1e-3,
                             max_evaluations: int = 20000) -> dict:
        """m-unit profile likelihood intervals of the free rates (and, on request, of MR-set
        and constrained ones).

        For each rate, the range of its ``k0`` over which the *profile* log-likelihood --
        ``ln L`` maximised over the free rates with this one held -- lies within ``m`` of
        ``loglik`` [CS95, CHH03].  For an MR-set or constrained rate, "held" means held
        together with the constraint that sets it: its ln k0 is a fixed combination of the
        free ln k0, and the maximisation runs over the directions that keep that combination.
        Unlike ``se``, which assumes a quadratic ``ln L`` in ln k0, the interval follows the
        likelihood: it is asymmetric where the data bound a rate better on one side, and open
        where they do not bound it at all.  For a well-determined rate, ``m = 0.5`` gives about
        ±1 SE and ``m = 2`` (default; as HJCFIT reports) about ±2 SE, ~95 % coverage (``2 m``
        is the chi-square(1) quantile).

        Parameters
        ----------
        m : float, default 2.0
            Drop in natural-log likelihood units (> 0).
        which : str or sequence of str, optional
            Transitions ("SRC->DST") to compute: free ones, or MR-set or constrained ones that
            follow at least one free rate; default all of ``free``.
        xtol : float, default 1e-3
            Tolerance of each end in ln k0 (1e-3: 0.1 % of the rate; at most 1 % of the
            quadratic half-width ``sqrt(2 m var)`` is used for small ``m``).
        max_evaluations : int, default 20000
            Likelihood evaluations allowed per end (checked between evaluations; one inner
            Nelder-Mead step may overrun it by a few).

        Returns
        -------
        dict
            ``{transition: (lower, upper)}``, ``k0`` in the rate's units (``units``).  An end
            is NaN (with a ``RuntimeWarning`` naming it) where ``ln L`` does not fall by ``m``
            inside the fit's search box (start x/÷ ``box``: the data do not bound the rate on
            that side), where the likelihood cannot be evaluated before it falls by ``m``
            (e.g. ``hjc_loglik`` refuses the rates: t_res x the fastest rate above
            :data:`ketacore.theory.MAX_T_RES_RATE`), or when ``max_evaluations`` runs out.

        Warns
        -----
        RuntimeWarning
            An open end (above), an inner maximisation that stopped at
            ``max_evaluations``, or a profile point with a higher likelihood than the fit's
            (the fit was not at the maximum; refit from the reported point).

        Notes
        -----
        Each end is found by bracketing from the quadratic guess ``theta +- sqrt(2 m
        var(theta))`` (doubling outwards) and Brent's method on ``profile(x) - (ln L - m)``;
        each profile value maximises over the other free ln k0 (for an MR-set or constrained
        rate, over the directions that keep its combination, from a start inside the box) by
        Nelder-Mead (to 1e-4 in ln k0 and ln L), warm-started from the neighbouring point.
        Constrained and MR-set rates follow their free rates, as in the fit.

        References
        ----------
        [CS95] Colquhoun & Sigworth (1995) Fitting and statistical analysis of single-channel
        records, in Sakmann & Neher (eds) Single-Channel Recording, 2nd ed., Plenum, 483-587,
        doi:10.1007/978-1-4419-1229-9_19.  [CHH03] as in :func:`fit_hjc`.
        """
        prof = self._profile
        if prof is None:
            raise ValueError("this HJCFit carries no likelihood (it was not returned by fit_hjc)")
        if not np.allclose(np.exp(prof.theta), [self.rates[k] for k in self.free], rtol=1e-12, atol=0):
            raise ValueError("this HJCFit's rates are not those of the fit its likelihood belongs to "
                             "(a dataclasses.replace copy?): call likelihood_intervals on the "
                             "HJCFit that fit_hjc returned")
        if isinstance(which, (bytes, bytearray)):
            raise TypeError(f"likelihood_intervals(which): transitions are named 'SRC->DST' "
                            f"strings, got {type(which).__name__}")
        m = _positive("m", m)
        xtol = _positive("xtol", xtol)
        if isinstance(max_evaluations, bool) or not isinstance(max_evaluations, numbers.Integral) \
                or max_evaluations < 1:
            raise ValueError("max_evaluations must be a positive integer, got "
                             f"{_V.plain(max_evaluations)}")
        # free rates, and MR-set or constrained ones that follow some free rate
        allowed = [k for k in self.kinds if k in self.free or
                   (self.kinds[k] in ("mr", "constrained") and prof.A is not None
                    and np.any(prof.A[prof.keys.index(k)] != 0))]
        if which is not None:
            for k in [which] if isinstance(which, str) else (which if isinstance(which, (list, tuple)) else []):
                if isinstance(k, str) and k in self.kinds and k not in allowed:
                    why = ("fixed" if self.kinds[k] == "fixed" else
                           f"{self.kinds[k]} but set from fixed rates only")
                    raise ValueError(f"likelihood_intervals(which): {k!r} is {why}: it has no interval; "
                                     f"the rates that have one are {allowed}")
        names = list(self.free) if which is None else _key_list("likelihood_intervals(which)", which, allowed)
        out = {}
        for k in names:  # (a loop, not a comprehension: the warnings' stacklevel is the caller)
            out[k] = prof.interval(k, m, xtol, int(max_evaluations))
        return out

    def summary(self) -> str:
        """Table of the rates (value, SE, CV, kind, unit) and the fit statistics.

        After the header (ln L, number of free parameters and data sets, ``t_res``) and the
        convergence line, one row per data set gives its conditions (as given, SI), its
        number of groups and of intervals, and its ``t_res`` (us) and ``t_crit`` (ms; ``-``
        where none was used, i.e. no CHS vectors) [CHH03]; then one row per transition.

        Returns
        -------
        str
        """
        rows = [f"HJC fit of {self.scheme.name or '(unnamed scheme)'}: ln L = "
                f"{self.loglik:.6f} (natural log, durations in s), {self.n_free} free "
                f"parameter(s), {len(self.conditions)} data set(s), t_res = "
                + (f"{self.t_res * 1e6:g} us" if isinstance(self.t_res, float) else
                   ", ".join(f"{t * 1e6:g}" for t in self.t_res) + " us (per data set)"),
                f"converged: {self.converged} ({self.n_evaluations} likelihood evaluations, "
                f"{self.elapsed:.1f} s, {self.method})"]
        n_sets = len(self.conditions)
        t_res = (self.t_res if isinstance(self.t_res, tuple) else (self.t_res,) * n_sets)
        rows.append(f"{'data set':<9} {'groups':>7} {'intervals':>10} {'t_res (us)':>11} "
                    f"{'t_crit (ms)':>12}  conditions")
        for i in range(n_sets):
            ng = f"{self.n_groups[i]:7d}" if i < len(self.n_groups) else f"{'-':>7}"
            ni = f"{self.n_intervals[i]:10d}" if i < len(self.n_intervals) else f"{'-':>10}"
            tc = self.t_crit[i] if i < len(self.t_crit) else None
            tc_txt = f"{'-':>12}" if tc is None else f"{tc * 1e3:12.6g}"
            cond = ", ".join(f"{k}={v:g}" if isinstance(v, numbers.Real) and not isinstance(v, bool)
                             else f"{k}={_V.plain(v)}" for k, v in self.conditions[i].items())
            rows.append(f"{i + 1:<9} {ng} {ni} {t_res[i] * 1e6:11.6g} {tc_txt}  "
                        f"{cond or '(none)'}")
        rows.append(f"{'transition':<16} {'k0':>13} {'SE':>11} {'CV %':>7}  {'unit':<10} how")
        for t in self.scheme.transitions:
            k = _key(t)
            how = _how_set(k, self.kinds[k], self.constraints, self.mr_cycles)
            if k in self.se:
                s = self.se[k]
                cv = 100.0 * s / self.rates[k] if self.rates[k] > 0 else math.nan
                se_txt, cv_txt = f"{s:11.4g}", f"{cv:7.1f}"
            else:
                se_txt, cv_txt = f"{'-':>11}", f"{'-':>7}"
            rows.append(f"{k:<16} {self.rates[k]:13.6g} {se_txt} {cv_txt}  "
                        f"{self.units[k]:<10} {how}")
        if self.n_free > 1 and np.all(np.isfinite(self.correlation)):
            off = np.abs(self.correlation - np.eye(self.n_free))
            i, j = np.unravel_index(int(np.argmax(off)), off.shape)
            rows.append(f"largest |correlation|: {self.correlation[i, j]:+.3f} "
                        f"({self.free[i]}, {self.free[j]})")
        return "\n".join(rows)


# ------------------------------------------------------------------------- set-up


def _check_key(what: str, key, keys) -> str:
    if not isinstance(key, str):
        raise TypeError(f"{what}: transitions are named 'SRC->DST' strings, got "
                        f"{type(key).__name__} ({_V.plain(key)})")
    if key not in keys:
        raise ValueError(f"{what}: unknown transition {key!r}; transitions are {list(keys)}")
    return key


def _key_list(what: str, spec, keys) -> list:
    if isinstance(spec, str):
        spec = [spec]
    try:
        items = list(spec)
    except TypeError:
        raise TypeError(f"{what} must be a sequence of 'SRC->DST' transition names, got "
                        f"{type(spec).__name__}") from None
    out = []
    for k in items:
        _check_key(what, k, keys)
        if k in out:
            raise ValueError(f"{what}: transition {k!r} is listed twice")
        out.append(k)
    return out


def _fit_options(mr, max_evaluations, box) -> tuple:
    """``mr``, ``max_evaluations`` and ``box`` of fit_hjc and fit_macroscopic, checked and
    normalised the same way: ``mr`` True/False/None or a list of transitions (one string is one
    transition), ``max_evaluations`` an integer >= 1, ``box`` > 1."""
    if isinstance(mr, (str, bytes)):
        mr = [mr]
    if isinstance(mr, np.bool_):
        mr = bool(mr)
    if not (mr is True or mr is False or mr is None):
        try:
            mr = list(mr)
        except TypeError:
            raise TypeError(f"mr must be True, False or a sequence of transitions, got "
                            f"{type(mr).__name__}") from None
    if isinstance(max_evaluations, bool) or not isinstance(max_evaluations, numbers.Integral) \
            or max_evaluations < 1:
        raise ValueError("max_evaluations must be a positive integer, got "
                         f"{_V.plain(max_evaluations)}")
    box = _positive("box", box)
    if not box > 1:
        raise ValueError(f"box must be > 1, got {box!r}")
    return mr, max_evaluations, box


def _positive(what: str, v) -> float:
    """A finite real number > 0 (:func:`ketacore._validate.real`)."""
    return _V.real(what, v, positive=True)


def _edges(scheme: Scheme):
    """Undirected connections in order of first appearance: list of (frozenset, [keys])."""
    order: dict = {}
    for t in scheme.transitions:
        order.setdefault(frozenset((t.src, t.dst)), []).append(_key(t))
    return list(order.items())


def _tree_path(adj: dict, a: str, b: str) -> list:
    """States of the unique path a -> b in a tree (adjacency dict)."""
    prev = {a: None}
    stack = [a]
    while stack:
        x = stack.pop()
        for y in adj[x]:
            if y not in prev:
                prev[y] = x
                stack.append(y)
    path = [b]
    while path[-1] != a:
        path.append(prev[path[-1]])
    return path[::-1]


def arm_ties(scheme: Scheme | str) -> dict:
    """Constraints that keep the blocked arms of a :func:`ketacore.block` composition tied to
    the gating they copy, for ``fit_hjc`` / ``fit_macroscopic``'s ``constrain``.

    :func:`ketacore.block` copies each gating transition ``A->B`` into every blocked arm
    (``A·ket->B·ket``, scaled by the blocker's ``closing_factor``/``opening_factor``/
    ``arm_scaling``).  A fit that frees ``A->B`` moves only ``A->B`` unless its copies are
    constrained to it; with these constraints a fitted gating rate carries its copies along at
    the composition's ratio.

    Parameters
    ----------
    scheme : Scheme or str
        A scheme whose state names carry blocker tags (``O·ket``), e.g. from
        :func:`ketacore.block` (or a library model name: no copies).

    Returns
    -------
    dict
        ``{"A·t->B·t": ("A->B", k0(A·t->B·t) / k0(A->B))}`` for every copy whose original is a
        transition of ``scheme`` with ``k0 > 0`` (ratios from the scheme's current ``k0``;
        dimensionless).  Empty for a scheme without copies.  Combine with your own:
        ``constrain={**arm_ties(s), "X->Y": ...}``.

    Examples
    --------
    >>> import ketacore as kc
    >>> s = kc.block(kc.Scheme(["C", "O"], [("C", "O", 100.0), ("O", "C", 50.0)],
    ...                        conductance={"O": 50e-12}), "ketamine")
    >>> sorted(kc.fitting.arm_ties(s))
    ['C·ket->O·ket', 'O·ket->C·ket']
    """
    from .models import as_scheme
    from .blockers import SEP
    scheme = as_scheme(scheme)
    if not isinstance(scheme, Scheme):
        raise TypeError(f"scheme must be a ketacore.Scheme or a model name, got {type(scheme).__name__}")
    k0 = {_key(t): t.rate.k0 for t in scheme.transitions}
    out = {}
    for t in scheme.transitions:
        a, *ta = t.src.split(SEP)
        b, *tb = t.dst.split(SEP)
        orig = f"{a}->{b}"
        if ta and ta == tb and orig in k0 and k0[orig] > 0:
            out[_key(t)] = (orig, t.rate.k0 / k0[orig])
    return out


def _warn_untied_arms(scheme: Scheme, free_l, cons, mr_plan, named=frozenset()) -> None:
    """UserWarning when a fit frees a gating rate or its blocked-arm copy without tying the two
    (helper-103's audit: fitting ``O->C`` on a composed scheme left ``O·d->C·d`` at its start,
    and ``O->C`` converged 22 % off the truth to make up for it, with no word).  A copy the
    user names in ``free`` or ``fixed`` (``named``) is fitted on its own or held, as asked,
    without a warning."""
    loose = []
    for twin, (orig, _) in arm_ties(scheme).items():
        if twin in cons or twin in mr_plan or cons.get(orig, (None,))[0] == twin or twin in named:
            continue     # (tied either way, set by MR, or named free: fitted on its own, as asked)
        if orig in free_l or twin in free_l:
            loose.append((twin, orig, "free" if twin in free_l else "held"))
    if loose:
        shown = ", ".join(f"{tw!r} ({how}, copy of {o!r})" for tw, o, how in loose[:4])
        more = f" and {len(loose) - 4} more" if len(loose) > 4 else ""
        warnings.warn(
            f"the blocked-arm copies {shown}{more} are not tied to the gating rates they copy, "
            "so the fit moves them independently (or not at all, if held). To keep the "
            "composition's arms following the gating, pass "
            "constrain=kc.fitting.arm_ties(scheme) (merged with your own constraints); to "
            "fit them independently, name them in free", UserWarning,
            stacklevel=_V.user_stacklevel())


def _mr_plan(scheme: Scheme, mr, avoid: "set | frozenset" = frozenset(),
             closed: "list | None" = None, follow: "set | frozenset" = frozenset(),
             rebuild: bool = False) -> dict:
    """``{set_key: cycle states [src, dst, ..., back to src excluded]}`` for every independent
    cycle of the state graph (see fit_hjc, ``mr``).  ``rebuild`` (``mr=True`` only; the caller
    asks for it when the plain plan conflicts with its constraints): connections with both
    directions in ``avoid`` (constrained or held), then those with both in ``follow`` (rates
    others are constrained to), join the spanning tree first, so that MR sets free rates (the
    blocked-arm copies of :func:`arm_ties`); a cycle closed only by ``avoid`` rates gets no MR
    rate (its rates are set by what they follow), is checked like an MR cycle (reverse
    transitions, voltage/temperature factors, ligands) and is appended to ``closed`` (its
    states, as the plan's cycles) for the caller to check its balance."""
    edges = _edges(scheme)
    states = list(scheme.states)
    n_cycles = len(edges) - len(states) + 1      # the graph is connected (Scheme checks it)
    keys = [_key(t) for t in scheme.transitions]
    by_key = {_key(t): t for t in scheme.transitions}
    if n_cycles == 0:
        if mr is not True:
            raise ValueError(f"mr: the scheme has no cycle, so no rate can be set by "
                             f"microscopic reversibility; got {_V.plain(mr)} (use mr=False)")
        return {}
    skipped: set = set()
    if mr is True:
        # spanning tree from the last-listed connection backwards: each remaining (chord)
        # connection is the earliest-listed one of its cycle; MR sets its later-listed
        # direction
        def chords_of(first):
            parent = {s: s for s in states}

            def find(s):
                while parent[s] != s:
                    parent[s] = parent[parent[s]]
                    s = parent[s]
                return s
            out = []
            for pair, ks in first + [e for e in reversed(edges) if e not in first]:
                a, b = tuple(pair)
                ra, rb = find(a), find(b)
                if ra == rb:
                    out.append((pair, ks))
                else:
                    parent[ra] = rb
            return out[::-1] if not first else sorted(out, key=lambda e: edges.index(e))

        if not rebuild:
            chords = chords_of([])
        else:
            # (the plain plan failed with the caller's constraints -- e.g. the blocked-arm
            # copies tied by arm_ties): connections whose both directions are constrained or
            # held join the tree first, then those whose both directions others are
            # constrained to (the gating the copies follow: around a cycle through a copy and
            # its original they cancel, so MR must set another rate of it), so MR sets free
            # rates; of a chord MR sets the later-listed direction unless it is in avoid
            first = [e for e in reversed(edges) if all(k in avoid for k in e[1])]
            first += [e for e in reversed(edges) if e not in first and all(k in follow for k in e[1])]
            chords = chords_of(first)
        chosen = []
        for pair, ks in chords:
            if len(ks) != 2:
                raise ValueError(f"mr=True: transition {ks[0]!r} lies on a cycle but has no "
                                 "reverse transition, so microscopic reversibility cannot "
                                 "hold (use mr=False)")
            if rebuild and ks[0] in avoid and ks[1] in avoid:
                skipped.add(pair)     # a cycle closed by constrained/held rates: set by them
                continue
            chosen.append(ks[1] if not (rebuild and ks[1] in avoid) else ks[0])
    else:
        chosen = _key_list("mr", mr, keys)
        if len(chosen) != n_cycles:
            raise ValueError(f"mr: the scheme has {n_cycles} independent cycle(s), so give "
                             f"exactly {n_cycles} transition(s) to set by microscopic "
                             f"reversibility, one per cycle; got {len(chosen)}: {chosen}")
    chord_pairs = {}
    for k in chosen:
        t = by_key[k]
        pair = frozenset((t.src, t.dst))
        if pair in chord_pairs:
            raise ValueError(f"mr: {k!r} and {chord_pairs[pair]!r} are the two directions of "
                             "one connection; choose one rate per independent cycle")
        chord_pairs[pair] = k
    adj = {s: [] for s in states}
    for pair, _ in edges:
        if pair not in chord_pairs and pair not in skipped:
            a, b = tuple(pair)
            adj[a].append(b)
            adj[b].append(a)
    seen, stack = {states[0]}, [states[0]]
    while stack:
        x = stack.pop()
        for y in adj[x]:
            if y not in seen:
                seen.add(y)
                stack.append(y)
    if len(seen) != len(states):
        raise ValueError(f"mr: the transitions {chosen} do not set one rate per independent "
                         "cycle (removing their connections disconnects the states): each "
                         "must close a different cycle")
    plan = {}
    for k in chosen:
        t = by_key[k]
        cyc = _tree_path(adj, t.dst, t.src)          # dst ... src through the tree
        cycle = [t.src] + cyc[:-1]                   # src, dst, ..., (back to src)
        _check_mr_cycle(cycle, by_key, f"closed by {k!r}", f"set by {k!r}")
        plan[k] = tuple(cycle)
    for pair in skipped:
        a, b = sorted(pair, key=states.index)
        cycle = [a] + _tree_path(adj, b, a)[:-1]
        _check_mr_cycle(cycle, by_key, f"closed by the constrained/held {a}-{b}",
                        "constrained or held throughout")
        if closed is not None:
            closed.append(tuple(cycle))
    return plan


def _check_mr_cycle(cycle, by_key, closed_by: str, set_by: str) -> None:
    """ValueError unless microscopic reversibility can hold on ``cycle`` at every condition:
    both directions of every step exist, the voltage/temperature factors cancel around it
    (:func:`_cycle_factor_imbalance`) and both directions bind the same ligands.  A cycle MR
    sets (``set by 'X->Y'``) and one its constrained or held rates close alone get the same
    checks."""
    n = len(cycle)
    name = "-".join(cycle)
    for i in range(n):
        u, v = cycle[i], cycle[(i + 1) % n]
        for kk in (f"{u}->{v}", f"{v}->{u}"):
            if kk not in by_key:
                raise ValueError(f"mr: the cycle {name} {closed_by} has no transition {kk!r}, "
                                 "so microscopic reversibility cannot hold on it (use mr=False "
                                 "or another choice)")
    bad = _cycle_factor_imbalance(cycle, by_key)
    if bad:
        raise ValueError(f"mr: the cycle {name} ({set_by}) has {bad} that differ between its "
                         "two directions; fit_hjc imposes MR on k0 x factor, which then holds at "
                         "every voltage and temperature only when those factors cancel around "
                         "the cycle (use mr=False and constrain)")
    lig_f = [by_key[f"{cycle[i]}->{cycle[(i + 1) % n]}"].rate.ligand for i in range(n)]
    lig_b = [by_key[f"{cycle[(i + 1) % n]}->{cycle[i]}"].rate.ligand for i in range(n)]
    if sorted(x for x in lig_f if x) != sorted(x for x in lig_b if x):
        raise ValueError(f"mr: the cycle {name} ({set_by}) binds different ligands in its two "
                         "directions, so microscopic reversibility cannot hold at every "
                         "concentration")


def _cycle_factor_imbalance(cycle, by_key) -> str:
    """Which voltage or temperature factors do not cancel around ``cycle`` ('' if all do).

    The cycle's product of forward over backward rates is k0·factor's product times
    exp(V·a + b/T·(...) + ...) times prod q10**((T - t_ref)/10); it is independent of V and T
    exactly when, summed over the forward steps minus the backward ones, z_delta, z_delta·v0, 1/vk,
    v0/vk, ln q10 and t_ref·ln q10 all vanish.  Then MR imposed on k0·factor holds at every
    condition.  The sums are compared to a relative 1e-9 of the terms' scale.
    """
    n = len(cycle)
    sums = {"z_delta": [], "z_delta*v0": [], "1/vk": [], "v0/vk": [], "ln q10": [],
            "t_ref*ln q10": []}
    for i in range(n):
        for sign, kk in ((1.0, f"{cycle[i]}->{cycle[(i + 1) % n]}"),
                         (-1.0, f"{cycle[(i + 1) % n]}->{cycle[i]}")):
            r = by_key[kk].rate
            inv_vk = 1.0 / r.vk if r.vk else 0.0
            lq = math.log(r.q10)
            sums["z_delta"].append(sign * r.z_delta)
            sums["z_delta*v0"].append(sign * r.z_delta * r.v0)
            sums["1/vk"].append(sign * inv_vk)
            sums["v0/vk"].append(sign * r.v0 * inv_vk)
            sums["ln q10"].append(sign * lq)
            sums["t_ref*ln q10"].append(sign * r.t_ref * lq)
    bad = [name for name, terms in sums.items()
           if abs(math.fsum(terms)) > 1e-9 * max(1e-300, max(abs(x) for x in terms))]
    names = {"z_delta": "voltage dependences (z_delta)", "z_delta*v0": "voltage offsets (v0)",
             "1/vk": "extra voltage slopes (vk)", "v0/vk": "voltage offsets (v0 of vk)",
             "ln q10": "Q10s", "t_ref*ln q10": "Q10 reference temperatures (t_ref)"}
    return ", ".join(names[b] for b in bad)


class _Params:
    """ln k0 of every transition as ``const + A @ theta`` (theta: ln k0 of the free ones)."""

    def __init__(self, scheme: Scheme, free, fixed, constrain, mr, start):
        try:
            self._setup(scheme, free, fixed, constrain, mr, start, rebuild=False)
        except ValueError:
            # the plain MR plan conflicts with the constraints (MR would set a constrained
            # rate, or a cycle's rate would be defined through itself -- the blocked-arm copies
            # of arm_ties): a plan that keeps constrained/held connections and the rates they
            # follow in the spanning tree, tried only then, so that every plan that worked
            # before is kept as it was (the session-18 review).  If it fails too, its error
            # says why no plan fits these constraints (an unbalanced cycle of constrained
            # rates), which the first conflict does not.
            if not (mr is True and constrain):
                raise
            self._setup(scheme, free, fixed, constrain, mr, start, rebuild=True)
        held = set(fixed) if fixed is not None and not isinstance(fixed, str) else set()
        named = (set(self.free) if free is not None else set()) | held
        _warn_untied_arms(scheme, self.free, self.cons, self.mr, named=named)

    def _setup(self, scheme: Scheme, free, fixed, constrain, mr, start, rebuild: bool) -> None:
        trans = scheme.transitions
        keys = [_key(t) for t in trans]
        self.keys = keys
        by_key = {_key(t): t for t in trans}
        k0 = {k: by_key[k].rate.k0 for k in keys}

        # --- fixed
        fixed_vals: dict = {}
        if fixed is not None:
            if isinstance(fixed, Mapping):
                for k, v in fixed.items():
                    _check_key("fixed", k, keys)
                    fixed_vals[k] = _positive(f"fixed[{k!r}]", v)
            else:
                for k in _key_list("fixed", fixed, keys):
                    fixed_vals[k] = k0[k]
        # --- constraints
        cons: dict = {}
        if constrain is not None:
            if not isinstance(constrain, Mapping):
                raise TypeError("constrain must be a mapping {'SRC->DST': ('OTHER->X', factor)} "
                                f"(or a transition name for factor 1), got "
                                f"{type(constrain).__name__}")
            for k, spec in constrain.items():
                _check_key("constrain", k, keys)
                if isinstance(spec, str):
                    other, c = spec, 1.0
                else:
                    try:
                        other, c = spec
                    except (TypeError, ValueError):
                        raise TypeError(f"constrain[{k!r}] must be ('OTHER->X', factor) or "
                                        f"'OTHER->X', got {spec!r}") from None
                _check_key(f"constrain[{k!r}]", other, keys)
                if other == k:
                    raise ValueError(f"constrain[{k!r}]: a transition cannot be constrained "
                                     "to itself")
                cons[k] = (other, _positive(f"constrain[{k!r}] factor", c))
        # --- MR
        closed: list = []       # cycles closed by constrained/held rates only (no MR rate)
        if mr is False or mr is None:
            mr_plan: dict = {}
        else:
            mr_plan = _mr_plan(scheme, mr, frozenset(cons) | frozenset(fixed_vals), closed,
                               frozenset(o for o, _ in cons.values()), rebuild=rebuild)
        # --- conflicts
        for k in cons:
            if k in fixed_vals:
                raise ValueError(f"transition {k!r} is both fixed and constrained")
        for k in mr_plan:
            hint = (" (choose which rate each cycle sets with mr=[...], or mr=False)")
            if k in fixed_vals:
                raise ValueError(f"transition {k!r} is set by microscopic reversibility and "
                                 f"also fixed{hint}")
            if k in cons:
                raise ValueError(f"transition {k!r} is set by microscopic reversibility and "
                                 f"also constrained{hint}")
        derived = set(cons) | set(mr_plan)
        if free is None:
            free_l = [k for k in keys if k not in fixed_vals and k not in derived]
        else:
            free_l = _key_list("free", free, keys)
            for k in free_l:
                if k in fixed_vals:
                    raise ValueError(f"transition {k!r} is both free and fixed")
                if k in cons:
                    raise ValueError(f"transition {k!r} is both free and constrained")
                if k in mr_plan:
                    raise ValueError(f"transition {k!r} is free but set by microscopic "
                                     "reversibility (choose which rate each cycle sets with "
                                     "mr=[...], or mr=False)")
            free_l = [k for k in keys if k in free_l]          # scheme order
            for k in keys:                                     # the rest held fixed
                if k not in free_l and k not in derived and k not in fixed_vals:
                    fixed_vals[k] = k0[k]
        if not free_l:
            raise ValueError("no free parameter: every rate is fixed, constrained or set by "
                             "microscopic reversibility")
        # --- start values
        start_vals = {k: k0[k] for k in free_l}
        if start is not None:
            if not isinstance(start, Mapping):
                raise TypeError(f"start must be a mapping {{'SRC->DST': k0}}, got "
                                f"{type(start).__name__}")
            for k, v in start.items():
                _check_key("start", k, keys)
                if k not in free_l:
                    raise ValueError(f"start[{k!r}]: transition {k!r} is not free "
                                     f"(free: {free_l})")
                start_vals[k] = _positive(f"start[{k!r}]", v)
        for k in free_l:
            if not start_vals[k] > 0:
                raise ValueError(f"free transition {k!r} has k0 = 0 in the scheme: rates are "
                                 "fitted on a log scale, so give a positive start value "
                                 f"(start={{{k!r}: ...}}) or fix it")
        # --- affine map, in dependency order
        p = len(free_l)
        const: dict = {}
        A: dict = {}
        for j, k in enumerate(free_l):
            const[k] = 0.0
            A[k] = np.zeros(p)
            A[k][j] = 1.0
        for k, v in fixed_vals.items():
            const[k] = math.log(v) if v > 0 else -math.inf
            A[k] = np.zeros(p)
        deps: dict = {k: [o] for k, (o, _) in cons.items()}
        for k, cyc in mr_plan.items():
            n = len(cyc)
            fwd = [f"{cyc[i]}->{cyc[(i + 1) % n]}" for i in range(n)]
            bwd = [f"{cyc[(i + 1) % n]}->{cyc[i]}" for i in range(n)]
            deps[k] = fwd[1:] + bwd
        state: dict = {}

        def visit(k, chain):
            if k in const:
                return
            if state.get(k) == "busy":
                loop = chain[chain.index(k):] + [k]
                via_mr = [x for x in loop[:-1] if x in mr_plan]
                why = (f"; {', '.join(map(repr, via_mr))} {'is' if len(via_mr) == 1 else 'are'} set "
                       "by microscopic reversibility from the rates of its cycle -- let MR set "
                       "another rate of the cycle (mr=[...]) or do not constrain this one"
                       if via_mr else "")
                raise ValueError("constraints form a loop: " + " -> ".join(loop) +
                                 " (each rate would be defined by itself)" + why)
            state[k] = "busy"
            for d in deps[k]:
                visit(d, chain + [k])
            if k in cons:
                o, c = cons[k]
                const[k] = math.log(c) + const[o]
                A[k] = A[o].copy()
            else:
                cyc = mr_plan[k]
                n = len(cyc)
                lf = lambda kk: math.log(by_key[kk].rate.factor)  # noqa: E731
                # k * prod(forward rest) = prod(backward), rates k0 x factor
                c = -lf(k)
                a = np.zeros(p)
                for kk in deps[k][:n - 1]:
                    c -= const[kk] + lf(kk)
                    a -= A[kk]
                for kk in deps[k][n - 1:]:
                    c += const[kk] + lf(kk)
                    a += A[kk]
                if not math.isfinite(c):
                    raise ValueError(f"mr: a rate on the cycle {'-'.join(cyc)} of {k!r} is "
                                     "fixed at 0, so microscopic reversibility cannot set it")
                const[k], A[k] = c, a
            state[k] = "done"
            order.append(k)

        order: list = []
        for k in keys:
            visit(k, [])
        for cyc in closed:       # each must be balanced by what its rates follow, at any theta
            n = len(cyc)
            fwd = [f"{cyc[i]}->{cyc[(i + 1) % n]}" for i in range(n)]
            bwd = [f"{cyc[(i + 1) % n]}->{cyc[i]}" for i in range(n)]
            lf = lambda kk: math.log(by_key[kk].rate.factor)  # noqa: E731
            c = sum(const[kk] + lf(kk) for kk in fwd) - sum(const[kk] + lf(kk) for kk in bwd)
            a = sum(A[kk] for kk in fwd) - sum(A[kk] for kk in bwd)
            scale = 1.0 + sum(abs(const[kk]) for kk in fwd + bwd if math.isfinite(const[kk]))
            if not (math.isfinite(c) and abs(c) <= 1e-9 * scale and np.all(np.abs(a) <= 1e-9)):
                raise ValueError(
                    f"mr: the cycle {'-'.join(cyc)} has only constrained or held rates "
                    f"({', '.join(fwd)} and back), which do not balance it"
                    + (f" (forward/backward = {math.exp(c):.6g})" if math.isfinite(c) and
                       not np.any(a) else " for every value of the free rates")
                    + ", so microscopic reversibility cannot hold on it: free one of its "
                    "rates, or mr=False")
        self.free = tuple(free_l)
        self.fixed = fixed_vals
        self.cons = cons
        self.mr = mr_plan
        self.const = np.array([const[k] for k in keys])
        self.A = np.array([A[k] for k in keys]).reshape(len(keys), p)
        self.theta0 = np.log([start_vals[k] for k in free_l])
        self.kinds = {k: ("free" if k in free_l else "fixed" if k in fixed_vals else
                          "constrained" if k in cons else "mr") for k in keys}
        # direct evaluation, so that fixed values are exact, constrained ones are exactly
        # factor x other, and MR-set ones the product formula
        idx = {k: i for i, k in enumerate(keys)}
        self._free_idx = np.array([idx[k] for k in free_l], int)
        self._fixed = [(idx[k], v) for k, v in fixed_vals.items()]
        self._derived = []
        for k in order:
            if k in cons:
                o, c = cons[k]
                self._derived.append((idx[k], "c", idx[o], c))
            elif k in mr_plan:
                n = len(mr_plan[k])
                fac = lambda kk: by_key[kk].rate.factor  # noqa: E731
                num = [(idx[kk], fac(kk)) for kk in deps[k][n - 1:]]
                den = [(idx[kk], fac(kk)) for kk in deps[k][:n - 1]]
                self._derived.append((idx[k], "mr", (num, den), fac(k)))

    def k0(self, theta) -> np.ndarray:
        out = np.empty(len(self.keys))
        with np.errstate(over="ignore"):
            out[self._free_idx] = np.exp(np.asarray(theta, float))
        for i, v in self._fixed:
            out[i] = v
        for i, kind, a, b in self._derived:
            if kind == "c":
                out[i] = b * out[a]
            else:
                num, den = a
                x = 1.0 / b
                for j, f in num:
                    x *= out[j] * f
                for j, f in den:
                    x /= out[j] * f
                out[i] = x
        return out


def _data_sets(data, t_crit) -> list:
    """[(groups, conditions, t_crit)] from fit_hjc's ``data``."""
    def is_item(x):
        return isinstance(x, tuple) and len(x) in (2, 3) and isinstance(x[1], Mapping)
    if is_item(data):
        items = [data]
    else:
        if data is None or isinstance(data, (str, bytes, Mapping)):
            raise TypeError("data must be a (groups, conditions) pair or a list of them, got "
                            f"{type(data).__name__}")
        try:
            items = list(data)
        except TypeError:
            raise TypeError("data must be a (groups, conditions) pair or a list of them, got "
                            f"{type(data).__name__}") from None
    if not items:
        raise ValueError("data is empty: give at least one (groups, conditions) pair")
    # a list [groups, conditions(, t_crit)] is read as a list of data sets: say so
    pair_hint = ("; a single (groups, conditions) pair must be a tuple, "
                 "data=(groups, {...}), not a list: a list is read as a list of data sets"
                 if isinstance(data, list) and len(data) in (2, 3)
                 and isinstance(data[1], Mapping) else "")
    out = []
    for i, it in enumerate(items):
        if not (isinstance(it, (tuple, list)) and len(it) in (2, 3)
                and isinstance(it[1], Mapping)):
            raise TypeError(f"data[{i}] must be (groups, conditions) or (groups, conditions, "
                            f"t_crit) with conditions a dict such as {{'agonist': 1e-6}}, got "
                            f"{type(it).__name__}" + (pair_hint if i == 0 else ""))
        tc = it[2] if len(it) == 3 else t_crit
        out.append((it[0], dict(it[1]), tc))
    return out


def _is_sequence(x) -> bool:
    """A collection of values (list, tuple, array, generator, pandas Series, ...), not a scalar."""
    if isinstance(x, (str, bytes, Mapping)):
        return False
    if isinstance(x, np.ndarray):
        return x.ndim > 0
    return isinstance(x, _abc.Iterable)


def _t_res_per_set(t_res, n_sets: int, records=()) -> list:
    """fit_hjc's ``t_res`` as one value per data set (each checked by hjc_loglik later); in a
    sequence, ``None`` may stand for the resolution of a data set given as a Record (indices
    ``records``)."""
    if isinstance(t_res, (str, bytes, Mapping)) or t_res is None:
        raise TypeError(f"t_res must be a resolution in s or a sequence of one per data set, "
                        f"got {type(t_res).__name__}")
    if not _is_sequence(t_res):
        return [t_res] * n_sets
    vals = list(t_res)
    if len(vals) != n_sets:
        raise ValueError(f"t_res gives {len(vals)} resolution(s) for {n_sets} data set(s): give "
                         "one value for all, or one per data set in the order of data")
    for i, v in enumerate(vals):
        if _is_sequence(v) or isinstance(v, (str, bytes, Mapping)) or (v is None and i not in records):
            raise TypeError(f"t_res[{i}] must be a resolution in s, got {type(v).__name__}"
                            + (" (None stands only for a data set given as a Record)" if v is None else ""))
    return vals


# ------------------------------------------------------------------------- objective


class _Objective:
    """-sum ln L over the data sets as a function of theta, Q built directly from k0."""

    def __init__(self, scheme: Scheme, params: _Params, sets: list, t_res: list,
                 exact_intervals: int):
        self.params = params
        self.n_exact = _th._V.integer("exact_intervals", exact_intervals, minimum=1,
                                      maximum=_th.MAX_EXACT_INTERVALS)
        trans = scheme.transitions
        unit = scheme.with_rates(**{_key(t): replace(t.rate, k0=1.0) for t in trans})
        self.src = np.array([scheme.index(t.src) for t in trans])
        self.dst = np.array([scheme.index(t.dst) for t in trans])
        self.n = scheme.n_states
        self.open = np.asarray(scheme.conductance, float) > 0
        # hjc_loglik's class indices; the groups, t_res and t_crit were checked by a call of
        # hjc_loglik at the starting rates, so each evaluation skips those checks
        self.a = np.flatnonzero(self.open)
        self.f = np.flatnonzero(~self.open)
        self.sets = []
        for (groups, cond, tc), tr in zip(sets, t_res):
            mult = unit.rates(**cond)       # rate per unit k0 at these conditions
            self.sets.append((groups, mult, _th._check_t_crit(tc, tr), tr))
        self.n_eval = 0

    def q(self, k0: np.ndarray, mult: np.ndarray) -> np.ndarray:
        Q = np.zeros((self.n, self.n))
        Q[self.src, self.dst] = k0 * mult
        Q[np.arange(self.n), np.arange(self.n)] = -Q.sum(axis=1)
        return Q

    def __call__(self, theta) -> float:
        self.n_eval += 1
        k0 = self.params.k0(theta)
        if not np.all(np.isfinite(k0)) or np.any(k0 > 1e15):
            return math.inf
        total = 0.0
        try:
            with np.errstate(all="ignore"):
                for groups, mult, tc, tr in self.sets:
                    total += _th._hjc_loglik_checked(self.q(k0, mult), self.a, self.f, tr,
                                                     tc, self.n_exact, groups)
        except (ValueError, np.linalg.LinAlgError, ArithmeticError, RuntimeWarning):
            return math.inf         # (RuntimeWarning: raised when warnings are errors)
        return -total if math.isfinite(total) else math.inf

    def grad(self, theta, h=GRADIENT_STEP):
        """Central-difference gradient (2 p evaluations)."""
        theta = np.asarray(theta, float)
        g = np.empty(theta.size)
        for j in range(theta.size):
            e = np.zeros(theta.size)
            e[j] = h
            fp, fm = self(theta + e), self(theta - e)
            g[j] = (fp - fm) / (2 * h)
        return g

    def hessian(self, theta, f0, h=HESSIAN_STEP):
        """Central-difference Hessian and gradient (2 p^2 evaluations)."""
        theta = np.asarray(theta, float)
        p = theta.size
        E = np.eye(p) * h
        H = np.empty((p, p))
        g = np.empty(p)
        fp = np.array([self(theta + E[j]) for j in range(p)])
        fm = np.array([self(theta - E[j]) for j in range(p)])
        for j in range(p):
            H[j, j] = (fp[j] - 2 * f0 + fm[j]) / h ** 2
            g[j] = (fp[j] - fm[j]) / (2 * h)
        for i in range(p):
            for j in range(i + 1, p):
                fpp = self(theta + E[i] + E[j])
                fpm = self(theta + E[i] - E[j])
                fmp = self(theta - E[i] + E[j])
                fmm = self(theta - E[i] - E[j])
                H[i, j] = H[j, i] = (fpp - fpm - fmp + fmm) / (4 * h ** 2)
        return H, g


# ------------------------------------------------------------------------- driver


_METHODS = ("nelder-mead+bfgs", "bfgs", "nelder-mead")


def _nelder_mead(f, x0, lo, hi, *, step: float, tol: float, maxfev: int):
    """scipy's adaptive Nelder-Mead on ``f`` from ``x0`` with an initial simplex of ``step``
    along each axis, ``+inf`` outside the box ``lo <= x <= hi`` and ``xatol = fatol = tol``
    (the fit's first stage and the profile's inner maximisation)."""
    x0 = np.asarray(x0, float)
    p = x0.size

    def bounded(x):
        if np.any(x < lo) or np.any(x > hi):
            return math.inf
        return f(x)
    simplex = np.vstack([x0] + [x0 + step * np.eye(p)[j] for j in range(p)])
    with np.errstate(all="ignore"):  # (its arithmetic on +inf vertices)
        return optimize.minimize(bounded, x0, method="Nelder-Mead",
                                 options={"xatol": tol, "fatol": tol, "adaptive": True,
                                          "maxfev": maxfev, "initial_simplex": simplex})


class _OpenEnd(Exception):
    """An interval end that cannot be found (the reason is the message)."""


class _Profile:
    """The fitted objective, for :meth:`HJCFit.likelihood_intervals`.

    A rate's ln k0 is ``const + a . theta`` (theta the free ln k0; ``a`` a unit vector for a
    free rate, a combination for an MR-set or constrained one).  Its profile at ``x = a . theta``
    minimises -ln L over ``theta = theta_hat + u (x - a . theta_hat) + N y`` (``u = a / |a|^2``,
    ``N`` an orthonormal basis of the directions that keep ``a . theta``), i.e. over the other
    free rates for a free rate, as before."""

    def __init__(self, obj: "_Objective", theta, fbest: float, lo, hi, cov_log, free, keys=(),
                 const=None, A=None):
        self.obj, self.theta, self.fbest = obj, np.asarray(theta, float), float(fbest)
        self.lo, self.hi, self.cov_log, self.free = lo, hi, cov_log, free
        self.keys, self.const, self.A = tuple(keys), const, A

    def direction(self, name: str) -> tuple:
        """(a, const, N, axis) of a rate: axis = j for the free rate theta_j (N its other unit
        vectors), else None."""
        p = self.theta.size
        if name in self.free:
            j = self.free.index(name)
            return np.eye(p)[j], 0.0, np.eye(p)[:, [i for i in range(p) if i != j]], j
        i = self.keys.index(name)
        a = np.asarray(self.A[i], float)
        _, _, vt = np.linalg.svd(a[None, :])
        return a, float(self.const[i]), vt[1:].T, None

    def profile(self, d: tuple, x: float, start, budget: list) -> tuple[float, np.ndarray]:
        """(min of -ln L with a . theta = x, the minimiser y)."""
        obj, p = self.obj, self.theta.size
        a, c, N, axis = d
        if axis is not None:
            others = [i for i in range(p) if i != axis]

            def full(y):
                th = np.empty(p)
                th[axis] = x
                th[others] = y
                return th
            f, lo, hi = (lambda y: obj(full(y))), self.lo[others], self.hi[others]
        else:
            base = self.theta + a * ((x - a @ self.theta) / (a @ a))
            # start from the warm point moved into the box on the plane a . theta = x (the plane
            # slides along a as x grows, so the warm point can leave the box)
            start = N.T @ (self._feasible(a, x, base + N @ np.asarray(start, float)) - base)

            slack = 1e-9 * (1.0 + np.abs(self.lo) + np.abs(self.hi))  # (rounding at a box face)

            def f(y):
                th = base + N @ y
                if np.any(th < self.lo - slack) or np.any(th > self.hi + slack):
                    budget[0] -= 1  # (charged like an evaluation: Nelder-Mead counts it too)
                    return math.inf
                return obj(np.clip(th, self.lo, self.hi))
            lo, hi = np.full(p - 1, -np.inf), np.full(p - 1, np.inf)
        if budget[0] <= 0:
            raise _OpenEnd("max_evaluations was reached before ln L fell by m")
        if p == 1:
            budget[0] -= 1
            fx, y = f(np.empty(0)), np.empty(0)
        else:
            n0 = obj.n_eval
            r = _nelder_mead(f, start, lo, hi, step=0.05, tol=1e-4, maxfev=max(1, budget[0]))
            budget[0] -= obj.n_eval - n0   # (evaluations; infeasible points were charged in f)
            if not r.success:
                budget[1] = True
            fx, y = float(r.fun), np.asarray(r.x, float)
        if not math.isfinite(fx):
            # (not a fall of ln L: hjc_loglik refused or failed at these rates)
            raise _OpenEnd(f"the likelihood cannot be evaluated at k0 = {math.exp(c + x):.6g} "
                           "(hjc_loglik refuses or fails there, e.g. t_res x the fastest rate "
                           "above theory.MAX_T_RES_RATE) before ln L falls by m")
        return fx, y

    def _feasible(self, a, x: float, th) -> np.ndarray:
        """A point of {lo <= theta <= hi, a . theta = x} near ``th``: alternating projections
        onto the box and the plane (both convex; x lies within the box's range of a . theta),
        ending inside the box with a . theta = x to rounding."""
        u = a / (a @ a)
        th = np.asarray(th, float)
        for _ in range(200):
            th = np.clip(th, self.lo, self.hi)
            gap = x - a @ th
            if abs(gap) <= 1e-12 * (1.0 + abs(x)):
                break
            th = th + u * gap
        return np.clip(th, self.lo, self.hi)

    def interval(self, name: str, m: float, xtol: float, max_evaluations: int) -> tuple:
        d = self.direction(name)
        a, c, N, axis = d
        target = self.fbest + m
        var = float(a @ self.cov_log @ a)
        d0 = math.sqrt(2.0 * m * var) if math.isfinite(var) and var > 0 else 0.5
        xtol = min(xtol, 0.01 * d0)
        x_hat = float(a @ self.theta)
        # the range of a . theta over the search box
        box_lo = float(np.sum(np.where(a > 0, a * self.lo, a * self.hi)))
        box_hi = float(np.sum(np.where(a > 0, a * self.hi, a * self.lo)))
        y0 = self.theta[[i for i in range(self.theta.size) if i != axis]] if axis is not None \
            else np.zeros(self.theta.size - 1)
        ends = []
        for side, bound in ((-1.0, box_lo), (1.0, box_hi)):
            budget = [max_evaluations, False]
            start = y0.copy()
            x_in, step = x_hat, min(d0, 5.0)
            best = [self.fbest, x_hat]
            x_out = None
            what = "lower" if side < 0 else "upper"
            try:
                while True:
                    x = x_hat + side * step
                    if side * (x - bound) >= 0:
                        x = bound
                    fx, y = self.profile(d, x, start, budget)
                    if fx < best[0]:
                        best = [fx, x]
                    if fx >= target:
                        x_out = x
                        break
                    if x == bound:
                        raise _OpenEnd(f"ln L does not fall by m={m:g} within the search box on "
                                       "that side: the data do not bound this rate there")
                    x_in, start = x, (y if y.size else start)
                    step *= 2.0
                warm = {"start": start}

                def h(x):
                    fx, y = self.profile(d, x, warm["start"], budget)
                    if fx < best[0]:
                        best[:] = [fx, x]
                    if y.size:
                        warm["start"] = y
                    return fx - target
                ends.append(math.exp(c + optimize.brentq(h, x_in, x_out, xtol=xtol)))
            except _OpenEnd as why:
                warnings.warn(f"likelihood_intervals: the {what} end of {name!r} is open (NaN): "
                              f"{why}", RuntimeWarning, stacklevel=3)
                ends.append(math.nan)
            if best[0] < self.fbest - 1e-3:
                warnings.warn(f"likelihood_intervals: the profile of {name!r} reaches ln L "
                              f"{self.fbest - best[0]:.3g} above the fit's at k0 = "
                              f"{math.exp(c + best[1]):.6g}: the fit was not at the maximum; refit "
                              "starting from there", RuntimeWarning, stacklevel=3)
            if budget[1]:
                warnings.warn(f"likelihood_intervals: an inner maximisation for {name!r} stopped "
                              "at max_evaluations; that end is approximate", RuntimeWarning,
                              stacklevel=3)
        return ends[0], ends[1]


def fit_hjc(scheme: Scheme | str, data, *, t_res=None, t_crit=None, free=None, fixed=None,
            constrain=None, mr=True, start=None, method: str = "nelder-mead+bfgs",
            max_evaluations: int = 20000, gtol: float = 1e-3, box: float = 1e6,
            exact_intervals: int = 2, hessian_step: float = HESSIAN_STEP) -> HJCFit:
    """Maximum-likelihood rate constants from resolved single-channel records (HJCFIT).

    Maximises ``sum over data sets of hjc_loglik(scheme(k0), groups, t_res, t_crit,
    **conditions)``, the HJC missed-events likelihood [HJC90, HJC92] with the CHS96 start
    and end vectors when a ``t_crit`` is given, over the ``Rate.k0`` of the free
    transitions, as HJCFIT does for CH82-like mechanisms fitted to records at several
    agonist concentrations [CHH03].

    Parameters
    ----------
    scheme : Scheme or str
        The mechanism; its ``k0`` are the starting values (free), the held values (fixed)
        and its ``Rate.factor``, ligands and other rate-law factors are kept.  Open states
        are those with conductance > 0 (two classes, as hjc_loglik).
    data : (groups, conditions) or list of (groups, conditions[, t_crit])
        One pair per record (or set of records) at one condition: ``groups`` as for
        :func:`ketacore.theory.hjc_loglik` (e.g. ``Record.resolve(t_res).hjc_groups(tc)``),
        or a resolved :class:`ketacore.analysis.Record` (its ``hjc_groups`` at the set's
        ``t_crit`` are used, and its ``t_res`` is the set's resolution), and ``conditions`` a
        dict of keyword conditions for the scheme, e.g. ``{"agonist": 1e-6}`` (M; also ``V``,
        ``temperature``).  A third element gives that set's own critical shut time (s, or
        ``None`` for no CHS vectors), overriding ``t_crit``.  A single pair must be a
        tuple: a list is read as a list of data sets (the TypeError then says so).
    t_res : float or sequence of float, optional
        Resolution (s) the records were resolved at: one value for every data set, or one
        per data set in the order of ``data`` (as HJCFIT allows; each set's likelihood then
        uses its own, so records need not all be resolved at the largest).  May be omitted
        when every set is a Record (each set then uses its record's); for a Record set a
        given value must equal the record's (a ValueError names both).
    t_crit : float, optional
        Critical shut time (s) of the sets that do not give their own.
    free : sequence of str, optional
        Transitions ("SRC->DST") whose k0 are fitted.  Default: every transition not fixed,
        constrained or set by MR.  When given, every other transition that is not
        constrained or MR-set is held at the scheme's value.
    fixed : sequence of str or mapping, optional
        Transitions held at the scheme's ``k0`` (a mapping gives the held values).
    constrain : mapping, optional
        ``{"SRC->DST": ("OTHER->X", c)}`` sets ``k0[SRC->DST] = c * k0[OTHER->X]`` (c > 0;
        a bare ``"OTHER->X"`` means c = 1), e.g. HJCFIT's "k-2 = k-1" is
        ``{"A2R->AR": "AR->R"}`` for CH82 (statistical factors stay in ``Rate.factor``).
        The other rate may be free, fixed, MR-set or itself constrained (no loops).  On a
        :func:`ketacore.block` composition, :func:`arm_ties` gives the constraints that keep
        each blocked-arm copy of a gating rate on its original (``constrain=arm_ties(s)``);
        a free rate whose copy is left untied, or a copy left free by default, is warned
        about (a copy named in ``free`` is fitted on its own, as asked).  With ``mr=True`` the
        ties and MR combine: MR then sets free rates, and a cycle made only of tied copies
        must balance through what they follow (a ValueError otherwise).
    mr : bool or sequence of str, default True
        Impose microscopic reversibility on every cycle of the state graph by computing one
        rate per independent cycle from the others (on ``k0 x factor``, so that
        ``prod forward = prod backward`` holds for the Q at every concentration).
        ``True``: build a spanning tree of the connections from the *last*-listed one
        backwards (in ``scheme.transitions`` order of first appearance); each remaining
        connection (chord) is then the earliest-listed connection of exactly one cycle, and
        MR sets the *later-listed* of its two directions.  For CH82 (one cycle
        AR*-A2R*-A2R-AR) that is ``"A2R*->AR*"`` (k*-2, the rate the bundled ``ch82`` model sets by MR).  A
        sequence names the rates to set instead (one per independent cycle; each must
        close a different cycle).  ``False``: no MR (a scheme with cycles is then fitted
        without detailed balance).  ``HJCFit.mr_cycles`` lists each set rate's cycle.
        MR is imposed on ``k0 x factor``; it then holds at every voltage and temperature
        because each cycle must have voltage and temperature factors that cancel around it
        (equal sums of ``z_delta``, ``z_delta·v0``, ``1/vk``, ``v0/vk``, ``ln q10`` and
        ``t_ref·ln q10`` in its two directions -- e.g. the same Q10 on a step and its reverse);
        a cycle whose factors do not cancel is refused.
    start : mapping, optional
        Starting ``k0`` of some free transitions (default the scheme's).
    method : {"nelder-mead+bfgs", "bfgs", "nelder-mead"}
        Optimiser, on ``-sum ln L`` over theta = ln k0 of the free rates:

        * ``"nelder-mead+bfgs"`` (default): scipy Nelder-Mead (adaptive parameters) until
          the simplex spans < 1e-3 in every ln k0 and < 1e-3 in ln L (``xatol``,
          ``fatol``), then L-BFGS-B with central-difference gradients (step 1e-5 in ln k0)
          until the projected gradient is < ``gtol``;
        * ``"bfgs"``: the L-BFGS-B stage alone from the start;
        * ``"nelder-mead"``: the Nelder-Mead stage alone.

        Every stage is bounded to ``start / box <= k0 <= start * box`` (evaluations outside
        return +inf for Nelder-Mead) and to ``max_evaluations`` in all.
    max_evaluations : int
        Cap on likelihood evaluations of the optimisation (the Hessian is extra).  L-BFGS-B
        checks its cap between iterations, so a line search may overrun it by a few
        evaluations.
    gtol : float
        Gradient tolerance of L-BFGS-B (ln L per unit ln k0); default 1e-3.
    box : float
        Search box factor (> 1), see ``method``.
    exact_intervals : int
        As for :func:`ketacore.theory.hjc_loglik`.
    hessian_step : float
        Step in ln k0 of the central-difference Hessian (default 1e-3: the truncation error
        is ~1e-6 relative; the rounding error of ln L, ~1e-13 |ln L|, contributes
        ~1e-7 |ln L| to the curvatures -- the noise level :data:`SINGULAR_NOISE` allows ten
        times that).  ``|ln L|`` depends on the time unit and the record size, so the
        singularity test is relative to it, not an absolute SE.

    Returns
    -------
    HJCFit
        Fitted scheme and rates, ln L, standard errors, correlations, convergence;
        :meth:`HJCFit.likelihood_intervals` computes m-unit profile likelihood intervals (the
        better measure where the SE's quadratic approximation fails, e.g. for rates the data
        barely determine [CHH03]).

    Raises
    ------
    ValueError, TypeError
        Unknown transition names, a rate both fixed and free (or constrained, or MR-set),
        constraints forming a loop, MR that cannot hold (a cycle with an irreversible
        step, voltage or temperature factors that do not cancel around it, unbalanced
        ligands), no free parameter, a free
        rate that cannot affect the likelihood (its ligand is absent from every data set),
        fewer intervals than free parameters, a free rate with k0 = 0 and no start, and
        every error of :func:`ketacore.theory.hjc_loglik` at the starting rates (bad
        groups, t_res, t_crit, conditions).  Messages name the transition.

    Warns
    -----
    RuntimeWarning
        The Hessian of ``-ln L`` at the optimum is singular or not positive definite: some
        combination of rates is not determined by the data (the warning names the free rate
        that dominates it); SEs and correlations are then NaN.  An eigenvalue counts as zero
        below ``SINGULAR_RTOL`` (1e-7) times the largest or below the rounding level of the
        second differences, ``SINGULAR_NOISE * |ln L| / hessian_step**2`` (1e-12 |ln L| /
        h^2), i.e. when some combination of ln k0 has an SE above ~1 / sqrt(that).
    RuntimeWarning
        A free rate ended on the search box (``box``), or the fit did not converge (an
        optimiser stopped at ``max_evaluations`` or failed, or the Newton decrement at the end
        is >= 1e-2): ``HJCFit.converged`` is False and ``HJCFit.message`` says why.
    UserWarning
        Once per data set, before the fit (never per evaluation): the warnings of
        :func:`ketacore.theory.hjc_loglik` on its groups, "fit_hjc: data[i]: ...": durations
        that look like milliseconds given with ``t_res`` in seconds, or shut times inside
        the groups longer than the set's ``t_crit`` (groups not split at ``t_crit``).

    Notes
    -----
    *Parameterisation.*  Each free rate is fitted as ``theta = ln k0`` (so it stays
    positive; HJCFIT also works on log rates).  Constrained and MR-set rates are affine in
    theta (``ln k0 = const + a . theta``), so the MR-set rates satisfy MR exactly and their
    variance ``a C a'`` (C the covariance of theta) involves no further approximation.
    Each evaluation builds Q directly from ``k0 x (rate per unit k0 at the data set's
    conditions)``, computed once per set, and calls :func:`ketacore.theory.hjc_loglik` on
    that raw Q; ``HJCFit.loglik`` is evaluated afterwards on the fitted Scheme.

    *Errors.*  The covariance is the inverse of the observed information, the numerical
    Hessian of ``-ln L`` in theta [CHH03 discuss its use and its limits: for CH82-like
    mechanisms the asymptotic SEs are good approximations when the rates are well
    determined, poor when a rate is nearly unidentifiable].  ``SE(k0) = k0 SE(theta)``.

    References
    ----------
    [CHH03] Colquhoun, Hatton & Hawkes (2003) J Physiol 547:699-728,
    doi:10.1113/jphysiol.2002.034165; [HJC90] Hawkes, Jalali & Colquhoun (1990) Phil Trans R
    Soc Lond A 332:511-538, doi:10.1098/rsta.1990.0129; [HJC92] (1992) Phil Trans R Soc
    Lond B 337:383-404, doi:10.1098/rstb.1992.0116; [CHS96] Colquhoun, Hawkes & Srodzinski
    (1996) Phil Trans R Soc Lond A 354:2555-2590, doi:10.1098/rsta.1996.0115.
    """
    t_begin = time.perf_counter()
    from .models import as_scheme
    scheme = as_scheme(scheme)  # a library model name, as everywhere
    if not isinstance(scheme, Scheme):
        raise TypeError(f"scheme must be a ketacore Scheme or a model name, got "
                        f"{type(scheme).__name__}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {_V.plain(method)}")
    mr, max_evaluations, box = _fit_options(mr, max_evaluations, box)
    gtol = _positive("gtol", gtol)
    hessian_step = _positive("hessian_step", hessian_step)
    sets = _data_sets(data, t_crit)
    from .analysis import Record
    if t_res is None:
        not_rec = [i for i, (g, _, _) in enumerate(sets) if not isinstance(g, Record)]
        if not_rec:
            raise TypeError(f"t_res is required (the resolution in s the records were resolved at): "
                            f"data[{not_rec[0]}] gives groups, not a resolved Record that carries it")
        rs = [float(g.t_res) for g, _, _ in sets]
        scalar_t_res = len(set(rs)) == 1
        t_res_sets = rs
    else:
        scalar_t_res = not _is_sequence(t_res)
        t_res_sets = _t_res_per_set(t_res, len(sets),
                                    records={i for i, (g, _, _) in enumerate(sets) if isinstance(g, Record)})
    for i, ((g, cond, tc), tr) in enumerate(zip(sets, t_res_sets)):
        if isinstance(g, Record):  # its groups at this set's t_crit, at its own resolution
            if not g.t_res > 0:
                raise ValueError(f"data[{i}]: the Record is not resolved (t_res = 0): call "
                                 ".resolve(t_res) first (t_res in s)")
            if isinstance(tr, numbers.Real) and not isinstance(tr, bool):
                # (equal to rounding: 25 * units.us and 25e-6 differ in the last bit)
                if not math.isclose(float(tr), g.t_res, rel_tol=1e-9):
                    raise ValueError(f"data[{i}]: the Record was resolved at t_res={g.t_res:.10g} s but "
                                     f"fit_hjc was given t_res={float(tr):.10g} s; they must be equal "
                                     "(omit t_res to use the records')")
            if tr is None or isinstance(tr, numbers.Real) and not isinstance(tr, bool):
                t_res_sets[i] = g.t_res
            try:
                groups = g.hjc_groups(tc)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"data[{i}]: {exc}") from None
            if not groups:
                raise ValueError(f"data[{i}]: the Record gives no group (no opening with both "
                                 "ends observed)")
            sets[i] = (groups, cond, tc)
    params = _Params(scheme, free, fixed, constrain, mr, start)
    # validate every data set through the public function at the starting rates
    k_start = params.k0(params.theta0)
    trial = scheme.with_rates(**{k: replace(t.rate, k0=float(v))
                                 for k, t, v in zip(params.keys, scheme.transitions,
                                                    k_start)})
    n_intervals = 0
    checked = []
    for i, ((groups, cond, tc), tr) in enumerate(zip(sets, t_res_sets)):
        if not hasattr(groups, "__len__"):
            groups = list(groups)                   # an iterator: read it once
        try:
            # hjc_loglik's checks and value (without its warnings, given once below)
            args = _th._hjc_loglik_args(trial, groups, tr, tc, None, None, exact_intervals,
                                        cond)
            _th._hjc_loglik_checked(*args)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"data[{i}]: {exc}") from None
        gs = args[6]                                # (packed once for every evaluation)
        # hjc_loglik's warnings (units, groups not split at t_crit), once per data set here
        _th._warn_hjc_groups(f"fit_hjc: data[{i}]", gs, args[3], args[4], stacklevel=2)
        n_intervals += int(gs.lens.sum())
        checked.append((gs, cond, tc))
    t_res_sets = [float(tr) for tr in t_res_sets]
    obj = _Objective(scheme, params, checked, t_res_sets, exact_intervals)
    # cheap identifiability: a free rate must reach some Q entry in some data set
    mults = np.array([m for _, m, _, _ in obj.sets])         # (n_sets, n_trans)
    reach = (mults > 0).any(axis=0)
    for j, k in enumerate(params.free):
        if not np.any(reach & (params.A[:, j] != 0)):
            raise ValueError(f"free transition {k!r} does not enter the Q matrix of any data "
                             "set (its ligand concentration is 0 in every one), so the data "
                             "cannot determine it: fix it or add data")
    if n_intervals < len(params.free):
        raise ValueError(f"{len(params.free)} free parameters but only {n_intervals} "
                         "intervals in the data")

    theta0 = params.theta0.copy()
    lo, hi = theta0 - math.log(box), theta0 + math.log(box)

    f0 = obj(theta0)
    if not math.isfinite(f0):
        raise ValueError("the likelihood is zero (or could not be computed) at the starting "
                         "rates; start closer to plausible values")
    messages = []
    success = True
    theta, fbest = theta0, f0
    p = theta0.size
    if method in ("nelder-mead+bfgs", "nelder-mead"):
        r = _nelder_mead(obj, theta0, lo, hi, step=0.2, tol=1e-3, maxfev=max_evaluations)
        messages.append(f"Nelder-Mead: {r.message} ({obj.n_eval - 1} evaluations)")
        if r.fun < fbest:
            theta, fbest = np.asarray(r.x, float), float(r.fun)
        success = bool(r.success)
    if method in ("nelder-mead+bfgs", "bfgs"):
        left = max_evaluations - obj.n_eval
        n0 = obj.n_eval
        if left > 2 * p + 1:
            # L-BFGS-B counts its own iterations; each costs 1 + 2 p evaluations
            big = fbest + 1e6

            def fg(x):
                fx = obj(x)
                if not math.isfinite(fx):          # let the line search backtrack
                    return big, np.zeros(p)
                return fx, obj.grad(x)
            r = optimize.minimize(fg, theta, jac=True,
                                  method="L-BFGS-B", bounds=list(zip(lo, hi)),
                                  options={"gtol": gtol, "ftol": 1e-15,
                                           "maxfun": max(1, left // (2 * p + 1)),
                                           "maxls": 30})
            messages.append(f"L-BFGS-B: {r.message} ({obj.n_eval - n0} evaluations)")
            if r.fun <= fbest:
                theta, fbest = np.asarray(r.x, float), float(r.fun)
            gmax = float(np.max(np.abs(r.jac))) if r.jac is not None else math.inf
            success = bool(r.success) or gmax < gtol
        else:
            messages.append("L-BFGS-B: not run (max_evaluations reached)")
            # a converged Nelder-Mead stage still counts (the Newton decrement below decides)
            success = success and method == "nelder-mead+bfgs"

    # ----- observed information
    H, g = obj.hessian(theta, fbest, hessian_step)
    H = 0.5 * (H + H.T)
    nan = np.full((p, p), math.nan)
    cov_log = nan.copy()
    pd = False
    if np.all(np.isfinite(H)):
        w, V = np.linalg.eigh(H)
        floor = max(SINGULAR_RTOL * abs(w[-1]),
                    SINGULAR_NOISE * max(1.0, abs(fbest)) / hessian_step ** 2, 1e-300)
        if w[0] > floor:
            pd = True
            cov_log = (V / w) @ V.T
        else:
            j = int(np.argmax(np.abs(V[:, 0])))
            what = "not positive definite" if w[0] < -floor else "singular"
            warnings.warn(
                f"fit_hjc: the Hessian of -ln L is {what} "
                f"(smallest eigenvalue {w[0]:.3g}, largest {w[-1]:.3g}): the data do not "
                f"determine some combination of rates, dominated by {params.free[j]!r}; "
                "standard errors and correlations are not reported (NaN). Fix or constrain "
                "that rate, or add data (e.g. another concentration)", RuntimeWarning,
                stacklevel=2)
    else:
        warnings.warn("fit_hjc: the Hessian could not be evaluated (the likelihood is not "
                      "finite near the optimum); standard errors are not reported",
                      RuntimeWarning, stacklevel=2)
    at_bound = [params.free[j] for j in range(p)
                if theta[j] - lo[j] < 1e-6 or hi[j] - theta[j] < 1e-6]
    if at_bound:
        warnings.warn(f"fit_hjc: {at_bound} ended on the search box (start x/÷ box={box:g}): "
                      "the data do not bound them there; the fit is not converged and its "
                      "standard errors do not apply. Fix or constrain those rates, or add data",
                      RuntimeWarning, stacklevel=2)
        messages.append(f"rates on the search box: {at_bound}")
        success = False
    if pd:
        decrement = 0.5 * float(g @ cov_log @ g)
        messages.append(f"Newton decrement at the optimum {decrement:.3g} (ln L units)")
        converged = success and decrement < 1e-2
    else:
        converged = success
    if not converged and not at_bound:  # (the search-box warning above already said so)
        warnings.warn("fit_hjc: the fit did not converge (" + "; ".join(messages) + "); the rates "
                      "are the best point found, not the maximum-likelihood estimate. Raise "
                      "max_evaluations, start closer, or fix/constrain rates (HJCFit.converged, "
                      ".message)", RuntimeWarning, stacklevel=2)
    k_fit = params.k0(theta)
    keys = params.keys
    trans = scheme.transitions
    fitted = scheme.with_rates(**{k: replace(t.rate, k0=float(v))
                                  for k, t, v in zip(keys, trans, k_fit)})
    loglik = 0.0
    for (gs, cond, tc), tr in zip(checked, t_res_sets):   # (hjc_loglik without its warnings)
        loglik += _th._hjc_loglik_checked(*_th._hjc_loglik_args(
            fitted, gs, tr, tc, None, None, exact_intervals, cond))
    rates = {k: float(t.rate.k0) for k, t in zip(keys, fitted.transitions)}
    se = {}
    var_all = np.einsum("ij,jk,ik->i", params.A, cov_log, params.A) if pd else None
    for i, k in enumerate(keys):
        if params.kinds[k] == "fixed" or not np.any(params.A[i]):
            continue   # fixed, or set (by a constraint or MR) from fixed rates only: no SE
        se[k] = float(rates[k] * math.sqrt(var_all[i])) if pd else math.nan
    if pd:
        sd = np.sqrt(np.diag(cov_log))
        # a correlation matrix exactly: unit diagonal, entries in [-1, 1] (the division
        # leaves 1 +- 1 ulp on the diagonal)
        corr = np.clip(cov_log / np.outer(sd, sd), -1.0, 1.0)
        np.fill_diagonal(corr, 1.0)
        kf = np.array([rates[k] for k in params.free])
        cov = cov_log * np.outer(kf, kf)
    else:
        corr, cov = nan.copy(), nan.copy()
    for a in (cov, corr, cov_log, H):
        a.setflags(write=False)
    return HJCFit(
        scheme=fitted, rates=rates, kinds=dict(params.kinds), free=params.free,
        loglik=float(loglik), n_free=p, se=se, covariance=cov, correlation=corr,
        cov_log=cov_log, hessian=H, converged=bool(converged),
        message="; ".join(messages), n_evaluations=int(obj.n_eval),
        mr_cycles=dict(params.mr), constraints=dict(params.cons),
        units={_key(t): _units(t) for t in trans},
        t_res=t_res_sets[0] if scalar_t_res else tuple(t_res_sets),
        t_crit=tuple(tc for _, _, tc in checked),
        conditions=tuple(dict(c) for _, c, _ in checked), method=method,
        elapsed=time.perf_counter() - t_begin,
        n_groups=tuple(len(gs) for gs, _, _ in checked),
        n_intervals=tuple(int(gs.lens.sum()) for gs, _, _ in checked),
        _profile=_Profile(obj, theta, fbest, lo, hi, cov_log, params.free, keys, params.const,
                          params.A))


# ===================================================================== macroscopic currents


#: Singular values of the weighted Jacobian (in ln k0, ln N) at most this fraction of the
#: largest count as zero in :func:`fit_macroscopic`: that combination of parameters is not
#: determined by the data (its SE would exceed ~1e6 times the best-determined one's).  The
#: central-difference Jacobian is accurate to ~1e-10 relative, far below this.
MACRO_SINGULAR_RTOL = 1e-6
#: Step in ln k0 (and ln N) of the central-difference Jacobian of :func:`fit_macroscopic`
#: (truncation ~h^2 = 1e-10, rounding ~1e-16 / h = 1e-11, relative).
MACRO_JACOBIAN_STEP = 1e-5
#: Sample times within this fraction of the grid step ``dt`` of a grid point ``k dt`` count as
#: on it (rounding of times given as ``i * h`` or by ``np.linspace``).
MACRO_TIME_RTOL = 1e-6
_OBSERVABLES = ("current", "open_probability")
_RECORD_KEYS = ("protocol", "time", "y", "sigma", "initial", "dt")


@dataclass(frozen=True, eq=False)
class MacroscopicFit:
    """Result of :func:`fit_macroscopic` (least-squares rates from macroscopic currents).

    Compared by identity and hashable (as :class:`HJCFit`).  Rates are the ``Rate.k0`` of
    each transition ("SRC->DST" keys): s^-1, or M^-1 s^-1 for a ligand-bound transition
    (``units``).

    Attributes
    ----------
    scheme : Scheme
        The input scheme with every ``k0`` replaced by its fitted value (constrained and
        MR-set rates computed from the fitted ones; fixed ones unchanged):
        ``n_channels * kc.solve(scheme, protocol, dt, initial).current`` at the sample times is
        the fitted curve (``fitted``).
    rates : dict
        ``k0`` of every transition, in ``scheme.transitions`` order.
    kinds : dict
        ``"free"``, ``"fixed"``, ``"constrained"`` or ``"mr"`` for each transition.
    free : tuple of str
        The free transitions, in parameter order.
    parameters : tuple of str
        Names of the fitted parameters, the rows of ``covariance``: ``free`` followed by
        ``"n_channels"`` when the channel count was fitted.
    se : dict
        Delta-method standard error of ``k0`` (units of the rate) of every free,
        constrained and MR-set transition (not of fixed ones, nor of a derived rate that
        depends on fixed rates only): ``SE(k0) = k0 sqrt(var(ln k0))`` with ``var(ln k0) = a
        C a'`` (``ln k0 = const + a . theta``).  NaN when the parameters are not identifiable
        (``identifiable`` False).
    n_channels : float or None
        Number of channels N (dimensionless): fitted, or the value given; ``None`` for
        ``observable="open_probability"``.
    n_channels_se : float or None
        SE of N (``N sqrt(var(ln N))``) when fitted (NaN if not identifiable), else ``None``.
    covariance : ndarray, (n_par, n_par)
        Approximate covariance of the fitted parameters **on the log scale** (ln k0 of the
        free rates, then ln N), ``s^2 (J'J)^-1`` with J the Jacobian of the weighted
        residuals at the optimum.  (Note: :attr:`HJCFit.covariance` is on the rate scale and
        its log-scale covariance is ``HJCFit.cov_log``.)  NaN when not identifiable.
    correlation : ndarray, (n_par, n_par)
        Correlation matrix of the parameters (the same on the log and linear scale to first
        order).  NaN when not identifiable.
    identifiable : bool
        False when ``J'J`` is (numerically) singular: its smallest singular value of J is at
        most :data:`MACRO_SINGULAR_RTOL` times the largest (a ``RuntimeWarning`` said so).
    unidentified : tuple of str
        The parameters that dominate the undetermined combinations (empty if identifiable).
    singular_values : ndarray
        Singular values of the weighted Jacobian in the log parameters (descending).
    rss : float
        Residual sum of squares ``sum ((y - model) / sigma)^2`` (dimensionless) when ``sigma``
        was given, else ``sum (y - model)^2`` (A^2 for currents; dimensionless for open
        probabilities).
    cost : float
        ``rss / 2`` (scipy's least-squares cost).
    chi2 : float
        ``rss`` when ``sigma`` was given (chi-square with ``dof`` degrees of freedom if the
        model and the noise model are right), else NaN.
    p_value : float
        ``P(chi2_dof > chi2)`` when ``sigma`` was given, else NaN.
    residual_variance : float
        ``s^2`` used for the covariance: ``rss / dof`` (units of y squared) without ``sigma``,
        1 with it.
    dof : int
        Degrees of freedom: total number of samples minus ``len(parameters)``.
    n_samples : tuple of int
        Number of samples of each record.
    residuals : tuple of ndarray
        ``y - model`` of each record at its sample times (units of y: A, or dimensionless).
    fitted : tuple of ndarray
        The fitted model of each record at its sample times (units of y).
    dt : tuple of float
        Grid step (s) on which each record's model was solved.
    observable : str
        ``"current"`` or ``"open_probability"``.
    weighted : bool
        Whether ``sigma`` was given (then the SEs use it; else the residual variance).
    converged : bool
        scipy's ``least_squares`` stopped on a tolerance (not on ``max_evaluations`` or an
        error) and no parameter ended on the search box.
    message : str
        What the optimiser said.
    n_evaluations : int
        Model evaluations (each one solve per record), Jacobians included.
    elapsed : float
        Wall-clock time of the fit (s).
    mr_cycles, constraints, units : dict
        As in :class:`HJCFit`.
    """

    scheme: Scheme
    rates: dict
    kinds: dict
    free: tuple
    parameters: tuple
    se: dict
    n_channels: float | None
    n_channels_se: float | None
    covariance: np.ndarray
    correlation: np.ndarray
    identifiable: bool
    unidentified: tuple
    singular_values: np.ndarray
    rss: float
    cost: float
    chi2: float
    p_value: float
    residual_variance: float
    dof: int
    n_samples: tuple
    residuals: tuple
    fitted: tuple
    dt: tuple
    observable: str
    weighted: bool
    converged: bool
    message: str
    n_evaluations: int
    elapsed: float
    mr_cycles: dict
    constraints: dict
    units: dict

    def __repr__(self) -> str:
        n = "" if self.n_channels is None else f", N={self.n_channels:.6g}"
        fit = (f"chi2={self.chi2:.6g}" if self.weighted else f"rss={self.rss:.6g}")
        return (f"MacroscopicFit({self.scheme.name or '(unnamed scheme)'!r}, "
                f"{len(self.free)} free rate(s){n}, {len(self.n_samples)} record(s), "
                f"{sum(self.n_samples)} samples, {fit}, dof={self.dof}, "
                f"converged={self.converged})")

    def summary(self) -> str:
        """Table of the rates (value, SE, CV, unit, kind), N and the fit statistics.

        Returns
        -------
        str
        """
        what = "current" if self.observable == "current" else "open probability"
        fit = (f"chi2 = {self.chi2:.6g} on {self.dof} dof (p = {self.p_value:.3g})"
               if self.weighted else
               f"RSS = {self.rss:.6g} {'A^2' if self.observable == 'current' else ''}".rstrip()
               + f", s = {math.sqrt(self.residual_variance):.4g}"
               + (" A" if self.observable == "current" else "") + f" on {self.dof} dof")
        rows = [f"macroscopic {what} fit of {self.scheme.name or '(unnamed scheme)'}: "
                f"{len(self.n_samples)} record(s), {sum(self.n_samples)} samples, "
                f"{len(self.parameters)} parameter(s); {fit}",
                f"converged: {self.converged} ({self.n_evaluations} model evaluations, "
                f"{self.elapsed:.2f} s): {self.message}"]
        if not self.identifiable:
            rows.append(f"NOT IDENTIFIABLE: the data do not determine a combination dominated "
                        f"by {list(self.unidentified)}; SEs are NaN")
        rows.append(f"{'parameter':<16} {'value':>13} {'SE':>11} {'CV %':>7}  {'unit':<10} how")
        for t in self.scheme.transitions:
            k = _key(t)
            how = _how_set(k, self.kinds[k], self.constraints, self.mr_cycles)
            rows.append(_macro_row(k, self.rates[k], self.se.get(k), self.units[k], how))
        if self.n_channels is not None:
            how = "free" if self.n_channels_se is not None else "fixed"
            rows.append(_macro_row("N (channels)", self.n_channels, self.n_channels_se, "1", how))
        p = len(self.parameters)
        if p > 1 and np.all(np.isfinite(self.correlation)):
            off = np.abs(self.correlation - np.eye(p))
            i, j = np.unravel_index(int(np.argmax(off)), off.shape)
            rows.append(f"largest |correlation|: {self.correlation[i, j]:+.3f} "
                        f"({self.parameters[i]}, {self.parameters[j]})")
        return "\n".join(rows)


def _macro_row(name: str, value: float, se, unit: str, how: str) -> str:
    if se is None:
        se_txt, cv_txt = f"{'-':>11}", f"{'-':>7}"
    else:
        cv = 100.0 * se / value if value > 0 else math.nan
        se_txt, cv_txt = f"{se:11.4g}", f"{cv:7.1f}"
    return f"{name:<16} {value:13.6g} {se_txt} {cv_txt}  {unit:<10} {how}"


@dataclass
class _MacroRecord:
    protocol: object
    time: np.ndarray
    y: np.ndarray
    sigma: np.ndarray | None
    initial: object
    dt: float
    idx: np.ndarray = None
    drive: np.ndarray = None      # V - E_rev at the samples (V), for the current


def _macro_items(data) -> list:
    from .protocol import Protocol, Step

    def single(x):
        return isinstance(x, Mapping) or (isinstance(x, tuple) and len(x) in (3, 4)
                                          and isinstance(x[0], (Protocol, Step)))
    if single(data):
        return [data]
    if data is None or isinstance(data, (str, bytes)) or not _is_sequence(data):
        raise TypeError("data must be a sequence of records, each a mapping {'protocol': ..., "
                        "'time': ..., 'y': ...[, 'sigma', 'initial', 'dt']} or a tuple "
                        f"(protocol, time, y[, sigma]), got {type(data).__name__}")
    items = list(data)
    if not items:
        raise ValueError("data is empty: give at least one record {'protocol': ..., 'time': ..., "
                         "'y': ...}")
    return items


def _macro_record(i: int, item, scheme: Scheme, observable: str) -> _MacroRecord:
    from .protocol import Protocol, Step
    w = f"data[{i}]"
    if isinstance(item, Mapping):
        bad = [k for k in item if k not in _RECORD_KEYS]
        if bad:
            raise ValueError(f"{w}: unknown key(s) {bad}; a record takes {list(_RECORD_KEYS)}")
        missing = [k for k in ("protocol", "time", "y") if k not in item]
        if missing:
            raise ValueError(f"{w}: missing {missing}; a record needs 'protocol', 'time' (s) "
                             "and 'y'")
        rec = dict(item)
    elif isinstance(item, tuple) and len(item) in (3, 4):
        rec = dict(zip(("protocol", "time", "y", "sigma"), item))
    else:
        raise TypeError(f"{w} must be a mapping {{'protocol': ..., 'time': ..., 'y': ...}} or a "
                        f"tuple (protocol, time, y[, sigma]), got {type(item).__name__}")
    prot = rec["protocol"]
    if isinstance(prot, Step):
        prot = Protocol([prot])
    elif not isinstance(prot, Protocol):
        raise TypeError(f"{w}['protocol'] must be a ketacore Protocol or Step, got "
                        f"{type(prot).__name__}")
    try:
        prot.compile(scheme)                  # (a ligand the scheme lacks, before any solve)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{w}['protocol']: {exc}") from None
    t = _V.real_array(f"{w}['time']", rec["time"], "s")
    if t.ndim != 1:
        raise ValueError(f"{w}['time'] must be 1-D (s), got shape {t.shape}")
    if t.size == 0:
        raise ValueError(f"{w}['time'] is empty: give at least one sample time (s)")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"{w}['time'] must be finite (s); entry {int(np.argmin(np.isfinite(t)))} "
                         "is not")
    if t[0] < 0:
        raise ValueError(f"{w}['time'] must start at >= 0 s (time since the start of the "
                         f"protocol), got {t[0]!r}")
    if t.size > 1 and not np.all(np.diff(t) > 0):
        j = int(np.argmin(np.diff(t) > 0))
        raise ValueError(f"{w}['time'] must be strictly increasing (s): time[{j + 1}] = "
                         f"{t[j + 1]!r} <= time[{j}] = {t[j]!r}")
    if t[-1] > prot.duration * (1 + 1e-12):
        raise ValueError(f"{w}['time'] ends at {t[-1]:g} s, after the {prot.duration:g} s "
                         "protocol (times are in s from the protocol's start)")
    y = _V.real_array(f"{w}['y']", rec["y"], "A" if observable == "current" else "")
    if y.ndim != 1 or y.shape != t.shape:
        raise ValueError(f"{w}['y'] must be 1-D with one value per time ({t.size}), got shape "
                         f"{y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{w}['y'] must be finite; entry {int(np.argmin(np.isfinite(y)))} is "
                         f"{y[np.argmin(np.isfinite(y))]!r} (drop missing samples and their times)")
    sigma = rec.get("sigma")
    if sigma is not None:
        s = _V.real_array(f"{w}['sigma']", sigma, "A" if observable == "current" else "")
        if s.ndim == 0:
            s = np.full(t.shape, float(s))
        elif s.shape != t.shape:
            raise ValueError(f"{w}['sigma'] must be a scalar or have one value per time "
                             f"({t.size}), got shape {s.shape}")
        if not np.all((s > 0) & np.isfinite(s)):
            j = int(np.argmin((s > 0) & np.isfinite(s)))
            raise ValueError(f"{w}['sigma'] must be finite and > 0 (standard deviation of y, in "
                             f"y's units), got {s[j]!r}")
        sigma = s
    dt = rec.get("dt")
    if dt is not None:
        dt = _positive(f"{w}['dt']", dt)
    else:
        dt = _macro_default_dt(w, t, prot.duration)
    k = np.rint(t / dt)
    off = np.abs(t - k * dt)
    if np.any(off > MACRO_TIME_RTOL * dt):
        j = int(np.argmax(off))
        raise ValueError(f"{w}: time[{j}] = {t[j]!r} s is not on the grid k*dt of dt = {dt!r} s "
                         "(the model is evaluated exactly on that grid): give a 'dt' of which "
                         "every sample time is a multiple")
    try:
        n = prot.n_samples(dt)
    except ValueError as exc:
        raise ValueError(f"{w}['dt']: {exc}") from None
    if k[-1] > n - 1:
        raise ValueError(f"{w}['time'] ends at {t[-1]:g} s, after the {prot.duration:g} s protocol")
    idx = k.astype(np.int64)
    r = _MacroRecord(prot, t, y, sigma, rec.get("initial"), float(dt), idx)
    if observable == "current":
        r.drive = prot.voltage_at(idx * dt, dt) - scheme.e_rev
    return r


def _macro_default_dt(w: str, t: np.ndarray, duration: float) -> float:
    """A grid step of which every sample time is a multiple (to MACRO_TIME_RTOL): the spacing
    of uniform samples, else the smallest spacing divided by the least common denominator
    (<= 1000) that puts every time on the grid."""
    from fractions import Fraction
    if t.size == 1:
        return float(t[0]) if t[0] > 0 else float(duration)
    d = np.diff(t)
    h = float(d.min())
    if np.all(np.abs(d - h) <= MACRO_TIME_RTOL * h):
        h = float(t[-1] - t[0]) / (t.size - 1)      # (the mean spacing: least rounding)
    ratio = t / h
    bad = np.abs(ratio - np.rint(ratio)) > MACRO_TIME_RTOL
    den = 1
    for x in np.unique(np.round(ratio[bad] % 1.0, 9)):
        f = Fraction(float(x)).limit_denominator(1000)
        den = den * f.denominator // math.gcd(den, f.denominator)
        if den > 1000:
            break
    dt = h / den
    r2 = t / dt
    if den > 1000 or np.any(np.abs(r2 - np.rint(r2)) > MACRO_TIME_RTOL):
        raise ValueError(f"{w}['time']: the sample times are not all multiples of a common step "
                         f"(the smallest spacing is {h:g} s): give the record a 'dt' (s) of which "
                         "every sample time is a multiple (the model is evaluated exactly on "
                         "the grid k*dt, never interpolated)")
    return float(dt)


class _MacroModel:
    """Weighted residuals ``(model - y) / w`` of all records as a function of theta."""

    def __init__(self, scheme: Scheme, params: _Params, records: list, observable: str,
                 n_fixed, fit_n: bool, scale: float):
        from .solve import solve
        self.solve = solve
        self.scheme, self.params, self.records = scheme, params, records
        self.current = observable == "current"
        self.n_fixed, self.fit_n = n_fixed, fit_n
        self.p = len(params.free)
        self.g = np.asarray(scheme.conductance, float)
        self.open = np.asarray(scheme.open_mask, bool)
        self.w = [r.sigma if r.sigma is not None else scale for r in records]
        self.size = sum(r.y.size for r in records)
        self.n_eval = 0
        self.failed = False
        self.max_eval = math.inf
        self.best = (math.inf, None)

    def scheme_at(self, k0) -> Scheme:
        return self.scheme.with_rates({k: float(v) for k, v in zip(self.params.keys, k0)})

    def curves(self, theta, sch=None) -> list:
        """Model of each record at its sample times (units of y)."""
        if sch is None:
            sch = self.scheme_at(self.params.k0(theta[:self.p]))
        n = math.exp(theta[self.p]) if self.fit_n else self.n_fixed
        out = []
        for r in self.records:
            res = self.solve(sch, r.protocol, r.dt, r.initial)
            occ = res.occupancy[r.idx]
            if self.current:
                out.append(n * ((occ @ self.g) * r.drive))
            else:
                out.append(occ[:, self.open].sum(axis=1))
        return out

    def __call__(self, theta, track: bool = False) -> np.ndarray:
        if self.n_eval >= self.max_eval:
            raise _Budget
        self.n_eval += 1
        k0 = self.params.k0(theta[:self.p])
        bad = np.full(self.size, 1e10)    # (a finite penalty: the trust region shrinks)
        self.failed = True
        if not np.all(np.isfinite(k0)) or np.any(k0 > 1e15):
            return bad
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")     # (warned once at the start)
                with np.errstate(all="ignore"):
                    m = self.curves(theta)
        except (ValueError, ArithmeticError, np.linalg.LinAlgError, RuntimeError):
            return bad
        r = np.concatenate([(mi - rec.y) / w for mi, rec, w in zip(m, self.records, self.w)])
        if not np.all(np.isfinite(r)):
            return bad
        self.failed = False
        if track:              # (the optimiser's points, not the Jacobian's)
            c = float(r @ r)
            if c < self.best[0]:
                self.best = (c, np.array(theta, float))
        return r

    def jac(self, theta, lo, hi, h=MACRO_JACOBIAN_STEP) -> np.ndarray:
        """Central-difference Jacobian (one-sided at the box)."""
        theta = np.asarray(theta, float)
        J = np.empty((self.size, theta.size))
        for j in range(theta.size):
            up, dn = theta.copy(), theta.copy()
            up[j] = min(theta[j] + h, hi[j])
            dn[j] = max(theta[j] - h, lo[j])
            J[:, j] = (self(up) - self(dn)) / (up[j] - dn[j])
        return J


class _Budget(Exception):
    """max_evaluations reached inside least_squares."""


def fit_macroscopic(scheme: Scheme | str, data, *, free=None, fixed=None, constrain=None, mr=True,
                    start=None, n_channels="fit", observable: str = "current",
                    box: float = 1e6, max_evaluations: int = 5000,
                    tol: float = 1e-10) -> MacroscopicFit:
    """Least-squares rate constants from macroscopic (ensemble) currents or open probabilities.

    Fits the ``Rate.k0`` of the free transitions of ``scheme`` (and the number of channels N)
    to one or several records -- relaxations after agonist jumps, voltage steps, pulse trains,
    at one or several concentrations -- jointly, by minimising

        ``sum over records and samples of ((y - N * kc.solve(scheme(k0), protocol, dt,
        initial).current[at the sample times]) / sigma)^2``

    (``observable="open_probability"``: ``.open_probability`` and no N) with scipy's
    trust-region reflective least squares [BW88, NW06] over theta = (ln k0 of the free rates,
    ln N).  The model is the exact master-equation solution (:func:`ketacore.solve`)
    evaluated exactly at the sample times.  Rates can be free, fixed, constrained or set by
    microscopic reversibility exactly as in :func:`fit_hjc`.

    Parameters
    ----------
    scheme : Scheme or str
        The mechanism (or a library model name); its ``k0`` are the starting values (free) and
        held values (fixed); ligands, statistical factors, voltage and temperature dependence,
        conductances (S) and ``e_rev`` (V) are kept.
    data : sequence of records
        Each record a mapping with keys

        * ``"protocol"``: :class:`ketacore.Protocol` or :class:`ketacore.Step` (times,
          concentrations in M, V in volts);
        * ``"time"``: sample times (s) from the protocol's start, 1-D, strictly increasing,
          >= 0 and within the protocol;
        * ``"y"``: the measured current (A; e.g. inward currents negative, as
          ``Result.current``) or open probability (dimensionless), one per time;
        * ``"sigma"`` (optional): standard deviation of y (A, or dimensionless), a scalar or
          one per sample; give it for every record or for none.  Without it all samples
          weigh the same and the noise variance is estimated from the residuals;
        * ``"initial"`` (optional): as ``kc.solve``'s ``initial`` (default: at rest under the
          protocol's rest conditions, recomputed at each trial rate set);
        * ``"dt"`` (optional): the grid step (s) the model is solved on.  **Every sample time
          must be a multiple of it** (to 1e-6 dt): the model is evaluated exactly at the
          sample times, never interpolated.  Default: the spacing of uniformly sampled times;
          for non-uniform times, the smallest spacing divided by the smallest integer (<=
          1000) that puts every time on the grid; a ValueError asks for ``dt`` otherwise.
          (Exact whatever dt; a fine grid only costs time.)

        or a tuple ``(protocol, time, y[, sigma])``.  A single record may be passed alone.
    free, fixed, constrain, mr, start
        Exactly as in :func:`fit_hjc` (same checks and messages): the free transitions
        (default every one not fixed, constrained or MR-set), those held (at the scheme's or
        the given ``k0``), ``{"SRC->DST": ("OTHER->X", factor)}`` constraints, microscopic
        reversibility on every cycle (``mr=True``; or the rates to set, or False), starting
        ``k0`` of free rates (s^-1 or M^-1 s^-1).
    n_channels : "fit" or float, default "fit"
        Number of channels N (dimensionless, > 0), shared by all records: ``"fit"`` fits it
        (started at the least-squares N for the starting rates); a number holds it.  For
        ``observable="open_probability"`` there is no N: leave the default (or pass None).
    observable : {"current", "open_probability"}
        What ``y`` is.
    box : float, default 1e6
        Search box factor (> 1): each free ``k0`` (and N) stays within its start x/÷ box.
    max_evaluations : int, default 5000
        Cap on model evaluations (each one ``kc.solve`` per record), Jacobians included.
    tol : float, default 1e-10
        ``ftol``, ``xtol`` and ``gtol`` of ``scipy.optimize.least_squares`` (relative change of
        the cost, of theta, and scaled gradient).

    Returns
    -------
    MacroscopicFit
        Fitted scheme, rates and N, delta-method standard errors, covariance and
        correlations (log scale), residuals, goodness of fit, convergence.

    Raises
    ------
    TypeError, ValueError
        Before any solve: empty or malformed ``data`` (naming ``data[i]`` and the key: unknown
        key, missing protocol/time/y, time not 1-D, empty, non-finite, negative, not strictly
        increasing or beyond the protocol, y of another length or not finite, sigma not > 0 or
        of the wrong length or given for some records only, times off the ``dt`` grid), a bad
        ``observable``, ``n_channels`` (not "fit", not > 0, or given with open probabilities),
        ``box``, ``max_evaluations`` or ``tol``; every error of :func:`fit_hjc`'s parameter
        checks (unknown transitions, conflicts, MR that cannot hold, no free parameter); no
        more samples than parameters.  Then, at the starting rates: any error of
        ``kc.solve`` on a record (e.g. a protocol ligand the scheme lacks, a bad ``initial``),
        prefixed ``data[i]``, and a model current that is zero or of the opposite sign to the
        data when N is fitted.

    Warns
    -----
    RuntimeWarning
        The parameters are not identifiable (the weighted Jacobian's smallest singular value
        is at most :data:`MACRO_SINGULAR_RTOL` times its largest: some combination of rates
        does not change the model; the warning names the dominant parameters; SEs and
        correlations are NaN); a parameter ended on the search box; the fit did not converge
        (``max_evaluations`` reached or the optimiser failed).

    Notes
    -----
    *Optimiser.*  ``scipy.optimize.least_squares(method="trf")`` with bounds ``ln(start) +-
    ln(box)`` and a central-difference Jacobian (step :data:`MACRO_JACOBIAN_STEP` in theta,
    2 p evaluations).  Residuals are internally divided by ``sigma``, or, unweighted, by the
    RMS of all y (a constant, so that amperes of ~1e-10 do not trip the tolerances).

    *Errors* [BW88, PTVF07 §15.6].  ``C = s^2 (J'J)^-1`` in theta, J the Jacobian of the
    weighted residuals at the optimum, ``s^2 = RSS / dof`` without ``sigma`` and 1 with it
    (then valid only if sigma is the true noise SD); ``SE(k0) = k0 SE(ln k0)`` (delta method,
    first order).  Linearisation SEs assume independent Gaussian noise: the samples of a
    filtered or correlated record are not independent, and the SEs are then too small;
    a record's autocorrelation, e.g. from ``residuals``, tells.

    *Speed.*  Each evaluation is one ``kc.solve`` per record (~30 us to ~1 ms), so a 3-6
    parameter fit to a few records takes well under a second to a few seconds.

    Examples
    --------
    >>> import numpy as np, ketacore as kc
    >>> from ketacore.units import ms, uM, pS
    >>> true = kc.Scheme(["R", "AR", "AR*"],
    ...     [("R", "AR", kc.rate(1e7, "glu")), ("AR", "R", 100.0),
    ...      ("AR", "AR*", 500.0), ("AR*", "AR", 200.0)], conductance={"AR*": 50 * pS})
    >>> data = []
    >>> for c in (3 * uM, 30 * uM):
    ...     prot = kc.Protocol([kc.Step(5 * ms), kc.Step(20 * ms, glu=c), kc.Step(40 * ms)])
    ...     t = np.arange(0, 65 * ms, 0.1 * ms)
    ...     y = 200 * kc.solve(true, prot, 0.1 * ms).current[:t.size]
    ...     data.append({"protocol": prot, "time": t, "y": y})
    >>> start = true.with_rates({"R->AR": 3e7, "AR->R": 40.0, "AR->AR*": 1500.0,
    ...                          "AR*->AR": 70.0})
    >>> fit = kc.fitting.fit_macroscopic(start, data)
    >>> round(fit.rates["AR->AR*"]), round(fit.n_channels)
    (500, 200)

    References
    ----------
    [BW88] Bates DM, Watts DG (1988) Nonlinear Regression Analysis and Its Applications.
    Wiley, New York (ch. 2: linear approximation, standard errors).  [PTVF07] Press WH,
    Teukolsky SA, Vetterling WT, Flannery BP (2007) Numerical Recipes, 3rd ed., Cambridge
    University Press, §15.5-15.6.  [NW06] Nocedal J, Wright SJ (2006) Numerical
    Optimization, 2nd ed., Springer (ch. 10, nonlinear least squares).  [CHS96] Colquhoun,
    Hawkes & Srodzinski (1996) Phil Trans R Soc Lond A 354:2555-2590 (joint fitting of
    mechanisms with constraints and microscopic reversibility, in the single-channel setting).
    """
    t_begin = time.perf_counter()
    from .models import as_scheme
    scheme = as_scheme(scheme)
    if not isinstance(scheme, Scheme):
        raise TypeError(f"scheme must be a ketacore Scheme or a model name, got "
                        f"{type(scheme).__name__}")
    if not isinstance(observable, str) or observable not in _OBSERVABLES:
        raise ValueError(f"observable must be one of {_OBSERVABLES}, got {_V.plain(observable)}")
    fit_n, n_fixed = False, None
    if observable == "open_probability":
        if not (n_channels is None or (isinstance(n_channels, str) and n_channels == "fit")):
            raise ValueError("n_channels: observable='open_probability' has no channel count; "
                             f"omit n_channels (got {_V.plain(n_channels)})")
    elif isinstance(n_channels, str):
        if n_channels != "fit":
            raise ValueError(f"n_channels must be 'fit' or a number of channels > 0, got "
                             f"{n_channels!r}")
        fit_n = True
    elif n_channels is None:
        raise TypeError("n_channels must be 'fit' or a number of channels > 0, got None")
    else:
        n_fixed = _positive("n_channels", n_channels)
    mr, max_evaluations, box = _fit_options(mr, max_evaluations, box)
    tol = _positive("tol", tol)
    if observable == "current" and not np.any(np.asarray(scheme.conductance, float) > 0):
        raise ValueError("observable='current' but the scheme has no conducting state "
                         "(every conductance is 0)")
    records = [_macro_record(i, it, scheme, observable)
               for i, it in enumerate(_macro_items(data))]
    has_sigma = [r.sigma is not None for r in records]
    if any(has_sigma) and not all(has_sigma):
        raise ValueError(f"sigma: give it for every record or for none (records "
                         f"{[i for i, h in enumerate(has_sigma) if not h]} have none)")
    weighted = all(has_sigma)
    params = _Params(scheme, free, fixed, constrain, mr, start)
    p = len(params.free)
    n_par = p + int(fit_n)
    n_total = sum(r.y.size for r in records)
    if n_total <= n_par:
        raise ValueError(f"{n_par} parameter(s) but only {n_total} samples in the data: give "
                         "more samples or fix parameters")
    scale = 1.0
    if not weighted:
        rms = math.sqrt(sum(float(r.y @ r.y) for r in records) / n_total)
        scale = rms if rms > 0 else 1.0

    # ----- the starting rates: every record through kc.solve (its checks and warnings)
    k_start = params.k0(params.theta0)
    trial = scheme.with_rates({k: float(v) for k, v in zip(params.keys, k_start)})
    model = _MacroModel(scheme, params, records, observable, 1.0, False, scale)  # (N = 1)
    from .solve import solve
    for i, r in enumerate(records):
        try:
            solve(trial, r.protocol, r.dt, r.initial)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"data[{i}]: {exc}") from None
    theta0 = params.theta0.copy()
    if fit_n:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")     # (kc.solve warned above)
            m0 = model.curves(np.concatenate([params.theta0, [0.0]]), trial)
        w2 = [r.sigma ** 2 if weighted else np.ones(r.y.size) for r in records]
        num = sum(float(np.sum(m * r.y / w)) for m, r, w in zip(m0, records, w2))
        den = sum(float(np.sum(m * m / w)) for m, r, w in zip(m0, records, w2))
        n0 = num / den if den > 0 else math.nan
        if not (math.isfinite(n0) and n0 > 0):
            raise ValueError("n_channels='fit': the model current at the starting rates is "
                             + ("zero at every sample" if not den > 0 else
                                "of the opposite sign to the data")
                             + ", so N cannot be started; check the protocol, the conductances "
                             "and e_rev (V), start closer, or give n_channels")
        theta0 = np.concatenate([theta0, [math.log(n0)]])
    model = _MacroModel(scheme, params, records, observable, n_fixed, fit_n, scale)
    lo, hi = theta0 - math.log(box), theta0 + math.log(box)
    model.max_eval = max_evaluations
    names = tuple(params.free) + (("n_channels",) if fit_n else ())

    model(theta0, True)
    if model.failed:
        raise ValueError("the model cannot be evaluated at the starting rates; start closer "
                         "to plausible values")
    messages = []
    success = True
    try:
        res = optimize.least_squares(lambda x: model(x, True), theta0,
                                     jac=lambda x: model.jac(x, lo, hi),
                                     bounds=(lo, hi), method="trf", ftol=tol, xtol=tol, gtol=tol,
                                     max_nfev=max_evaluations)
        theta = np.asarray(res.x, float)
        messages.append(f"least_squares: {res.message}")
        success = res.status > 0
    except _Budget:
        theta = model.best[1] if model.best[1] is not None else theta0
        messages.append(f"max_evaluations={max_evaluations} reached")
        success = False
    # ----- linearised errors at the optimum (not counted against max_evaluations)
    model.max_eval = math.inf
    r_opt = model(theta)
    if model.best[1] is not None and model.best[0] < float(r_opt @ r_opt):
        theta = model.best[1]             # (the best point the optimiser saw)
        r_opt = model(theta)
    J = model.jac(theta, lo, hi)
    rss_w = float(r_opt @ r_opt)              # in the internal weighted units
    dof = n_total - n_par
    s2_w = 1.0 if weighted else rss_w / dof
    nan = np.full((n_par, n_par), math.nan)
    sv = np.linalg.svd(J, compute_uv=False) if np.all(np.isfinite(J)) else np.full(n_par, math.nan)
    identifiable = bool(np.all(np.isfinite(sv)) and sv[0] > 0
                        and sv[-1] > MACRO_SINGULAR_RTOL * sv[0])
    unidentified: tuple = ()
    if identifiable:
        _, s, vt = np.linalg.svd(J, full_matrices=False)
        cov = s2_w * (vt.T / s ** 2) @ vt
    else:
        cov = nan.copy()
        if np.all(np.isfinite(J)):
            _, s, vt = np.linalg.svd(J, full_matrices=False)
            null = vt[s <= MACRO_SINGULAR_RTOL * max(s[0], 1e-300)]
            weight = np.max(np.abs(null), axis=0)
            unidentified = tuple(names[j] for j in np.flatnonzero(weight > 0.1))
        else:
            unidentified = names
        warnings.warn(
            f"fit_macroscopic: the parameters are not identifiable from these data (smallest "
            f"singular value of the Jacobian {sv[-1]:.3g} vs largest {sv[0]:.3g}): some "
            f"combination of {list(unidentified)} does not change the model; standard errors "
            "and correlations are not reported (NaN). Fix or constrain rates, or add "
            "protocols (e.g. another concentration or voltage)", RuntimeWarning, stacklevel=2)
    at_bound = [names[j] for j in range(n_par)
                if theta[j] - lo[j] < 1e-6 or hi[j] - theta[j] < 1e-6]
    if at_bound:
        warnings.warn(f"fit_macroscopic: {at_bound} ended on the search box (start x/÷ "
                      f"box={box:g}): the data do not bound them there; the fit is not "
                      "converged and its standard errors do not apply", RuntimeWarning,
                      stacklevel=2)
        messages.append(f"on the search box: {at_bound}")
        success = False
    elif not success and not identifiable:
        # (the usual reason: the optimiser drifts along the undetermined combination, where the
        # fit does not change, until its budget runs out -- more evaluations will not help)
        warnings.warn("fit_macroscopic: the fit did not converge (" + "; ".join(messages)
                      + ") because the data do not determine the parameters (the warning "
                      "above): the rates are one of many equally good points, not an "
                      "estimate. Raising max_evaluations will not help; fix or constrain "
                      f"rates among {list(unidentified)}, or add protocols", RuntimeWarning,
                      stacklevel=2)
    elif not success:
        warnings.warn("fit_macroscopic: the fit did not converge (" + "; ".join(messages)
                      + "); the rates are the best point found. Raise max_evaluations, start "
                      "closer, or fix/constrain rates", RuntimeWarning, stacklevel=2)
    # ----- the result, evaluated through the public kc.solve on the fitted scheme
    k_fit = params.k0(theta[:p])
    fitted = model.scheme_at(k_fit)
    n_fit = math.exp(theta[p]) if fit_n else n_fixed
    curves = []
    for r in records:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # (kc.solve's start warnings came at the start)
            res_ = solve(fitted, r.protocol, r.dt, r.initial)
        obs = res_.current if observable == "current" else res_.open_probability
        c = obs[r.idx]
        curves.append(n_fit * c if observable == "current" else c)
    resid = [r.y - c for r, c in zip(records, curves)]
    rss = float(sum(float(np.sum((e / r.sigma) ** 2)) if weighted else float(e @ e)
                    for e, r in zip(resid, records)))
    rates = {k: float(t.rate.k0) for k, t in zip(params.keys, fitted.transitions)}
    se = {}
    A = params.A
    var_all = np.einsum("ij,jk,ik->i", A, cov[:p, :p], A) if p else np.zeros(len(params.keys))
    for i, k in enumerate(params.keys):
        if params.kinds[k] == "fixed" or not np.any(A[i]):
            continue
        se[k] = float(rates[k] * math.sqrt(var_all[i])) if identifiable else math.nan
    n_se = (float(n_fit * math.sqrt(cov[p, p])) if identifiable else math.nan) if fit_n else None
    if identifiable:
        sd = np.sqrt(np.diag(cov))
        corr = np.clip(cov / np.outer(sd, sd), -1.0, 1.0)
        np.fill_diagonal(corr, 1.0)
    else:
        corr = nan.copy()
    for a in (cov, corr, sv):
        a.setflags(write=False)
    for a in resid + curves:
        a.setflags(write=False)
    from scipy import stats
    chi2 = rss if weighted else math.nan
    return MacroscopicFit(
        scheme=fitted, rates=rates, kinds=dict(params.kinds), free=params.free,
        parameters=names, se=se, n_channels=None if observable != "current" else float(n_fit),
        n_channels_se=n_se, covariance=cov, correlation=corr, identifiable=identifiable,
        unidentified=unidentified, singular_values=sv, rss=rss, cost=0.5 * rss, chi2=chi2,
        p_value=float(stats.chi2.sf(chi2, dof)) if weighted else math.nan,
        residual_variance=1.0 if weighted else rss / dof, dof=int(dof),
        n_samples=tuple(r.y.size for r in records), residuals=tuple(resid),
        fitted=tuple(curves), dt=tuple(r.dt for r in records), observable=observable,
        weighted=weighted, converged=bool(success), message="; ".join(messages),
        n_evaluations=int(model.n_eval), elapsed=time.perf_counter() - t_begin,
        mr_cycles=dict(params.mr), constraints=dict(params.cons),
        units={_key(t): _units(t) for t in scheme.transitions})
