"""Q-matrix theory: exact equilibrium, relaxation, dwell-time and burst results.

Built on numpy/scipy plus a few C++ kernels from :mod:`ketacore._core`: the matrix
exponential (``_core.expm``), the GTH equilibrium (``_core.gth``) and the HJC
missed-event computations (``hjc_roots``, ``hjc_projectors`` and the likelihood
kernels ``hjc_chain_blocks`` and ``hjc_group_logliks``).

Every public function takes *either* a scheme plus its conditions,
``f(scheme, V=-0.07, glutamate=1e-6)``, *or* a raw generator, ``f(Q, open=[0, 1])``:

* a **scheme** is anything with ``states`` (state names), ``conductance``
  (S; a state is open when its conductance is > 0) and
  ``q_matrix(V=..., temperature=..., **concentrations)``. Conditions are passed
  straight through to ``q_matrix`` (SI units: V in volt, concentrations in
  mol/L (M), temperature as the scheme defines it);
* a **raw Q** is a (K, K) array of rates in s^-1 with ``q_ij`` the rate
  i -> j (i != j), ``q_ij >= 0`` and rows summing to zero. Open states are
  then given with ``open=`` (indices, or a boolean mask of length K) and state
  names optionally with ``names=`` (so that classes can be given by name).

All times are in seconds, all rates in s^-1.

Methods and conventions
-----------------------
Notation follows Colquhoun & Hawkes. Occupancies are row vectors, p(t) =
p(0) expm(Q t). For a class of states A and its complement F,
``Q = [[Q_AA, Q_AF], [Q_FA, Q_FF]]`` (see :func:`partition`).

Equilibrium occupancies are computed with the Grassmann-Taksar-Heyman (GTH)
state-reduction algorithm, which uses no subtractions and so gives every
occupancy to high *relative* accuracy even when rates span many decades
(1e-3 to 1e9 s^-1) -- unlike CH95b's ``p = u (S S^T)^-1``, S = [Q | u], which
squares the condition number (the two agree for well-conditioned Q, and the
tests check it). A reducible chain (e.g. an absorbing state, as in an agonist
scheme at zero agonist) is split into strongly connected classes: with one
closed class the equilibrium is GTH on that class and exactly 0 on the
transient states; with several, a ValueError says the equilibrium is not
unique.

Exponential mixtures come from the spectral expansion of a sub-generator M
(e.g. ``-Q_AA``): ``expm(-M t) = sum_m exp(-lambda_m t) A_m``. When the
mechanism obeys microscopic reversibility, ``D^(1/2) M D^(-1/2)`` (D the
equilibrium occupancies of the block) is symmetric and is diagonalised with
``numpy.linalg.eigh``: eigenvalues are real, eigenvectors orthonormal, and
repeated (degenerate) eigenvalues -- which occur e.g. with identical
independent subunits -- cause no loss of accuracy. Otherwise the general
``numpy.linalg.eig`` is used, its reconstruction ``V diag(lambda) V^-1`` is
checked, and the expansion is compared with matrix exponentials (one check and
one tolerance for every such expansion: ``SPECTRAL_CHECK_RTOL``, 1e-7 of the
peak pdf or of the total probability); a (nearly) defective matrix, for which no
accurate spectral expansion exists, gives the exact matrix form instead
(:class:`PhaseType`, or a :class:`Relaxation` without amplitudes).  The number of openings
per burst, a mixture of geometrics over the eigenvalues of ``G_AB G_BA``, is checked the
same way against exact matrix powers (the same tolerance of the peak pmf) and is otherwise
the exact :class:`DiscretePhaseType`. (First
latencies use the equilibrium after the step as D.) In both cases components
whose rates agree to 1e-9 (relative) are merged, so a degenerate rate appears
once with the
summed area, and components whose area is rounding noise (at most 1e-13 of
sum |areas|, ``AREA_RTOL``; e.g. modes the entry and exit vectors cannot
reach) are dropped from dwell-time, burst and latency mixtures. Nothing else
is merged or dropped: nearly equal rates and tiny or negative areas of composed
schemes are real (see :func:`dwell_times`; :meth:`ExponentialMixture.simplify`
shortens a mixture with a stated error bound). Rates with an imaginary part
(possible only without microscopic reversibility) are kept as complex conjugate
pairs.

Missed events (:func:`apparent_dwell_times`): with a time resolution t_res, sojourns
shorter than t_res are not seen, and the apparent (e-)open and e-shut times follow the
Hawkes-Jalali-Colquhoun distributions [HJC90, HJC92]: an exact piecewise
polynomial-exponential form on [t_res, (n + 1) t_res] (n = 2 by default, as in HJCFIT) and
an asymptotic mixture beyond, whose time constants are the roots of det W(s) = 0 [HJC92;
JH92], with the exact mean [HJC92; CHS96].  These, not :func:`dwell_times`, describe a
record resolved with :meth:`ketacore.analysis.Record.resolve`; :func:`hjc_loglik` is the
HJC likelihood of such a record (HJCFIT's, with the CHS96 start and end vectors).  The exact
pieces come from HJC's spectral closed form, checked at construction against block matrix
exponentials [VL78] that replace it where it would lose accuracy.

References
----------
.. [HJC90] Hawkes AG, Jalali A, Colquhoun D (1990). The distributions of the apparent open
   times and shut times in a single channel record when brief events cannot be detected.
   Phil Trans R Soc Lond A 332:511-538. doi:10.1098/rsta.1990.0129
.. [HJC92] Hawkes AG, Jalali A, Colquhoun D (1992). Asymptotic distributions of apparent open
   times and shut times in a single channel record allowing for the omission of brief
   events. Phil Trans R Soc Lond B 337:383-404. doi:10.1098/rstb.1992.0116
.. [CHS96] Colquhoun D, Hawkes AG, Srodzinski K (1996). Joint distributions of apparent open
   and shut times of single-ion channels and maximum likelihood fitting of mechanisms.
   Phil Trans R Soc Lond A 354:2555-2590. doi:10.1098/rsta.1996.0115
.. [JH92] Jalali A, Hawkes AG (1992). Generalised eigenproblems arising in aggregated Markov
   processes allowing for time interval omission. Adv Appl Probab 24:302-321.
.. [VL78] Van Loan CF (1978). Computing integrals involving the matrix exponential. IEEE Trans
   Automat Control 23:395-404. doi:10.1109/TAC.1978.1101743
.. [CH77] Colquhoun D, Hawkes AG (1977). Relaxation and fluctuations of
   membrane currents that flow through drug-operated channels.
   Proc R Soc Lond B 199:231-262. doi:10.1098/rspb.1977.0086 (DOI not
   independently verified; journal, volume and pages are)
.. [CH81] Colquhoun D, Hawkes AG (1981). On the stochastic properties of
   single ion channels. Proc R Soc Lond B 211:205-235.
   doi:10.1098/rspb.1981.0003
.. [CH82] Colquhoun D, Hawkes AG (1982). On the stochastic properties of
   bursts of single ion channel openings and of clusters of bursts.
   Phil Trans R Soc Lond B 300:1-59. doi:10.1098/rstb.1982.0156
.. [CH95] Colquhoun D, Hawkes AG (1995). The principles of the stochastic
   interpretation of ion-channel mechanisms (ch. 18) and A Q-matrix cookbook
   (ch. 20). In: Sakmann B, Neher E (eds) Single-Channel Recording, 2nd ed.
   Plenum, New York.
.. [GTH] Grassmann WK, Taksar MI, Heyman DP (1985). Regenerative analysis
   and steady state distributions for Markov chains. Oper Res 33:1107-1116.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Tuple, Union

import numpy as np
from scipy import optimize, sparse, special
from scipy.sparse import csgraph

from . import _rng
from . import _validate as _V

__all__ = [
    "ExponentialMixture",
    "PhaseType",
    "GeometricMixture",
    "DiscretePhaseType",
    "Relaxation",
    "Bursts",
    "ConcentrationResponse",
    "equilibrium",
    "rest_state",
    "NoUniqueEquilibrium",
    "open_probability",
    "relaxation",
    "dwell_times",
    "apparent_dwell_times",
    "ApparentDwellTimes",
    "hjc_loglik",
    "bursts",
    "concentration_response",
    "first_latency",
    "partition",
    "is_reversible",
    "validate_q",
]

#: Relative tolerance on row sums of Q (relative to the sum of |q_ij| in the row).
ROW_SUM_RTOL = 1e-9
#: Rates (eigenvalues) closer than this (relative) are treated as one component (their areas
#: summed).  Eigenvalues of these sub-generators are accurate to a few 1e-12 relative (3e-12
#: at worst for the library's composed schemes against 50-digit arithmetic), so only rates
#: that coincide (degenerate, e.g. identical subunits) are merged; the asymptotic HJC
#: roots of :func:`apparent_dwell_times`, found by root search with null vectors that become
#: ill-conditioned for close roots, are merged at 1e-8.
MERGE_RTOL = 1e-9
#: A mixture component whose |area| is at most this fraction of sum |areas| is rounding
#: noise and is dropped (dwell times, bursts, first latencies): e.g. the components of
#: symmetric branches that entry and exit never reach (exact area 0, computed 1e-32) --
#: dropping changes the survival function by at most AREA_RTOL * sum |areas| per component.
#: 1e-13 is above the largest area error measured against 50-digit arithmetic for the
#: library's composed schemes (5e-14 of sum |areas|, tests/test_theory_components.py).
AREA_RTOL = 1e-13
#: Relative tolerance for microscopic reversibility when choosing the symmetric path.
REVERSIBILITY_RTOL = 1e-9
#: :meth:`ExponentialMixture.sample` uses exact rejection sampling for a real mixture with
#: negative areas when at least this fraction of candidates is accepted (total / sum of the
#: positive areas), and numerical inversion of the cdf otherwise.
_REJECTION_MIN_ACCEPTANCE = 0.05

_NONLIGAND_CONDITIONS = ("V", "temperature")

try:  # largest concentration (M) the scheme layer accepts
    from ._validate import MAX_CONCENTRATION as _C_CAP
except Exception:  # pragma: no cover
    _C_CAP = 10.0


# ---------------------------------------------------------------------------
# result types
# ---------------------------------------------------------------------------


def _frozen_array(a, dtype=None) -> np.ndarray:
    arr = np.array(a, dtype=dtype, copy=True)
    arr.setflags(write=False)
    return arr


def _numeric_array(name: str, a) -> np.ndarray:
    """``a`` as a numeric (float or complex) ndarray, TypeError naming ``name`` otherwise."""
    try:
        arr = np.asarray(a)
    except (TypeError, ValueError):  # e.g. ragged nested sequences
        raise TypeError(f"{name} must be an array of numbers") from None
    if arr.dtype == object or arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must be an array of real numbers, got dtype {arr.dtype}")
    return arr


def _times(t, name: str = "t") -> np.ndarray:
    """Time(s) (s) as a float array; TypeError for non-numbers, ValueError for NaN."""
    arr = _numeric_array(name, t)
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real time(s) in s, got complex values")
    arr = arr.astype(float)
    if np.isnan(arr).any():
        raise ValueError(f"{name} must not contain NaN")
    return arr


def _decay(t: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """exp(-t / tau) with shape t.shape + taus.shape; exactly 0 at t = +inf (also for complex
    tau, where -inf / tau would give NaN)."""
    inf = np.isinf(t)
    tc = np.where(inf, 0.0, t)
    e = np.exp(-tc[..., None] / taus)
    if inf.any():
        e = np.where(inf[..., None], 0.0, e)
    return e


@dataclass(frozen=True)
class ExponentialMixture:
    """A distribution of durations written as a mixture of exponentials.

    ``pdf(t) = sum_i (areas[i] / taus[i]) * exp(-t / taus[i])`` for t >= 0.

    Attributes
    ----------
    taus : ndarray
        Time constants (s), ascending. Finite with a positive real part (a
        ValueError otherwise). Complex (in conjugate pairs) only for a
        mechanism without microscopic reversibility.
    areas : ndarray
        Area of each component (dimensionless, finite). They sum to ``total``,
        which is 1 for a proper distribution and 0 when the event never
        happens; areas may be negative (e.g. latencies from a non-equilibrium
        start, a rising phase), the pdf is still >= 0. :meth:`sample` checks
        that the mixture is a distribution.

    See Also
    --------
    PhaseType : the exact matrix form returned when a sub-generator has no accurate spectral
        expansion (a repeated rate without microscopic reversibility).

    References
    ----------
    Colquhoun D, Hawkes AG (1981). On the stochastic properties of single ion channels. Proc R
    Soc Lond B 211:205-235. doi:10.1098/rspb.1981.0003 (dwell-time mixtures, the spectral
    expansion); Colquhoun D, Hawkes AG (1995). A Q-matrix cookbook. In: Sakmann B, Neher E
    (eds) Single-Channel Recording, 2nd ed. Plenum, New York, ch. 20.
    """

    taus: np.ndarray
    areas: np.ndarray

    def __post_init__(self):
        taus = np.atleast_1d(_numeric_array("taus", self.taus))
        areas = np.atleast_1d(_numeric_array("areas", self.areas))
        if taus.shape != areas.shape or taus.ndim != 1:
            raise ValueError("taus and areas must be 1-d arrays of the same length, "
                             f"got shapes {taus.shape} and {areas.shape}")
        if np.iscomplexobj(taus) or np.iscomplexobj(areas):
            dtype = complex
        else:
            dtype = float
        taus = taus.astype(dtype)
        areas = areas.astype(dtype)
        if not np.all(np.isfinite(taus)) or not np.all(np.real(taus) > 0):
            raise ValueError(f"taus must be finite time constants (s) > 0 (positive real part), "
                             f"got {taus.tolist()}")
        if not np.all(np.isfinite(areas)):
            raise ValueError(f"areas must be finite, got {areas.tolist()}")
        object.__setattr__(self, "taus", _frozen_array(taus, dtype))
        object.__setattr__(self, "areas", _frozen_array(areas, dtype))

    # -- summaries ---------------------------------------------------------
    @property
    def n_components(self) -> int:
        """Number of exponential components."""
        return int(self.taus.size)

    @property
    def rates(self) -> np.ndarray:
        """Rate of each component, 1/tau (s^-1)."""
        return 1.0 / self.taus

    @property
    def amplitudes(self) -> np.ndarray:
        """pdf amplitude of each component at t = 0, area/tau (s^-1)."""
        return self.areas / self.taus

    @property
    def total(self) -> float:
        """Total probability, sum of areas (1 unless the event may never happen; 0 when it
        never happens)."""
        return float(np.real(self.areas.sum()))

    def _conditional(self, moment: float) -> float:
        """``moment / total``, or NaN when ``total`` is 0 (to 1e-12 of sum |areas|)."""
        total = self.total
        if not abs(total) > 1e-12 * float(np.abs(self.areas).sum()):
            return math.nan
        return moment / total

    @property
    def mean(self) -> float:
        """Mean duration (s), conditional on the event happening: sum(a tau) / sum(a).

        NaN when ``total`` is 0 (the event never happens, e.g. the first latency to opening
        with no agonist): a conditional mean is then undefined.
        """
        return self._conditional(float(np.real((self.areas * self.taus).sum())))

    @property
    def second_moment(self) -> float:
        """E[T^2] (s^2), conditional on the event happening (NaN when ``total`` is 0)."""
        return self._conditional(float(np.real(2.0 * (self.areas * self.taus ** 2).sum())))

    @property
    def sd(self) -> float:
        """Standard deviation (s), conditional on the event happening (NaN when ``total``
        is 0)."""
        m2, m = self.second_moment, self.mean
        if math.isnan(m2) or math.isnan(m):
            return math.nan
        return math.sqrt(max(m2 - m ** 2, 0.0))

    # -- functions of t ----------------------------------------------------
    def pdf(self, t):
        """Probability density (s^-1) at time(s) t (s); 0 for t < 0. NaN t: ValueError."""
        t = _times(t)
        tc = np.maximum(t, 0.0)
        val = np.real((self.amplitudes * _decay(tc, self.taus)).sum(axis=-1))
        return np.where(t >= 0, val, 0.0)

    def survival(self, t):
        """P(T > t) for time(s) t (s); 1 for t < 0 (``inf`` durations never end)."""
        t = _times(t)
        tc = np.maximum(t, 0.0)
        val = np.real((self.areas * _decay(tc, self.taus)).sum(axis=-1))
        val = val + (1.0 - self.total)  # mass at infinity never "ends"
        return np.where(t >= 0, val, 1.0)

    def cdf(self, t):
        """P(T <= t) for time(s) t (s)."""
        return 1.0 - self.survival(t)

    def _check_distribution(self) -> None:
        """ValueError unless the mixture is a (possibly defective) distribution: total in
        [0, 1] and pdf >= 0 (to rounding), checked at t = 0, on a log grid from 1e-3 x the
        shortest to 100 x the longest time constant, and as t -> inf."""
        tol = 1e-9
        total = self.total
        if not -tol <= total <= 1.0 + tol:
            raise ValueError(f"sample needs a distribution: the areas sum to {total:.6g} "
                             "(the probability that the event happens), which must be in "
                             "[0, 1]")
        rates = 1.0 / self.taus
        amps = self.amplitudes
        decay = np.real(rates)
        if np.iscomplexobj(self.taus) or np.any(np.real(self.areas) < 0):
            re_tau = np.real(self.taus)
            t = np.concatenate(([0.0], np.logspace(math.log10(re_tau.min()) - 3,
                                                    math.log10(np.abs(self.taus).max()) + 2,
                                                    600)))
            e = _decay(t, self.taus)
            val = np.real((amps * e).sum(axis=-1))
            scale = (np.abs(amps) * np.abs(e)).sum(axis=-1)
            bad = val < -1e-8 * scale
            if np.any(bad):
                tb = float(t[np.argmax(bad)])
                raise ValueError("sample needs a distribution, but these areas give a "
                                 f"negative pdf (at t = {tb:.3g} s): with negative areas the "
                                 "pdf must still be >= 0 for every t >= 0")
            # t -> inf: the most slowly decaying component(s) must have a positive amplitude
            slow = decay <= decay.min() * (1 + 1e-9)
            lead = np.real(amps[slow].sum())
            if lead < -1e-8 * np.abs(amps[slow]).sum():
                raise ValueError("sample needs a distribution, but these areas give a "
                                 "negative pdf at long times (the slowest component has a "
                                 "negative area)")

    def simplify(self, rtol: float = 1e-3, atol: float = 1e-6, *, return_bound: bool = False):
        """A shorter *approximate* mixture: close time constants merged, tiny areas dropped.

        1. Real components whose time constants are within ``rtol`` (relative) of their
           neighbour are grouped (ascending tau, chained); each group becomes one component
           with the summed area and the ``|area|``-weighted mean time constant (which lies
           within the group's range).  Complex components are kept as they are.
        2. Components with ``|area| <= atol * sum |areas|`` are then dropped (the largest is
           always kept).

        For every t the survival function changes by at most

        ``bound = sum_groups sum_i |a_i| (max tau - min tau) / (e min tau) + sum_dropped |a|``

        (as ``|exp(-t/x) - exp(-t/y)| <= |x - y| / (e min(x, y))``).  Use it for display or
        comparison; the exact mixture is what :func:`dwell_times` returns.

        Parameters
        ----------
        rtol : float
            Relative tolerance on neighbouring time constants, ``0 <= rtol < 1``.
        atol : float
            Area threshold relative to ``sum |areas|``, ``0 <= atol < 1``.
        return_bound : bool
            Also return ``bound`` (dimensionless).

        Returns
        -------
        ExponentialMixture, or (ExponentialMixture, float) with ``return_bound``
        """
        return_bound = _V.flag("return_bound", return_bound)
        rtol = _V.real("rtol", rtol, nonnegative=True)
        atol = _V.real("atol", atol, nonnegative=True)
        if not rtol < 1:
            raise ValueError(f"rtol must be < 1 (relative tolerance on time constants), got "
                             f"{rtol!r}")
        if not atol < 1:
            raise ValueError(f"atol must be < 1 (fraction of sum |areas|), got {atol!r}")
        taus, areas = self.taus, self.areas
        cplx = np.imag(taus) != 0
        rt, ra = np.real(taus[~cplx]), areas[~cplx]
        order = np.argsort(rt, kind="stable")
        rt, ra = rt[order], ra[order]
        new_t, new_a, bound = [], [], 0.0
        i = 0
        while i < rt.size:
            j = i + 1
            while j < rt.size and rt[j] - rt[j - 1] <= rtol * rt[j - 1]:
                j += 1
            gt, ga = rt[i:j], ra[i:j]
            w = np.abs(ga)
            tbar = float(np.sum(w * gt) / w.sum()) if w.sum() > 0 else float(gt[0])
            if j - i > 1:
                bound += float(w.sum()) * float(gt[-1] - gt[0]) / (math.e * float(gt[0]))
            new_t.append(tbar)
            new_a.append(ga.sum())
            i = j
        t_all = np.concatenate([np.asarray(new_t, dtype=taus.dtype), taus[cplx]])
        a_all = np.concatenate([np.asarray(new_a, dtype=areas.dtype), areas[cplx]])
        mag = np.abs(a_all)
        drop = mag <= atol * mag.sum()
        if drop.all():
            drop[np.argmax(mag)] = False
        bound += float(mag[drop].sum())
        t_all, a_all = t_all[~drop], a_all[~drop]
        order = np.argsort(np.real(t_all), kind="stable")
        out = ExponentialMixture(t_all[order], a_all[order])
        return (out, bound) if return_bound else out

    def sample(self, n: int, rng=None) -> np.ndarray:
        """Draw ``n`` durations (s); ``inf`` where the event never happens.

        Parameters
        ----------
        n : int
            Number of draws, >= 0.
        rng : optional
            Anything accepted by ``numpy.random.default_rng``; the same seed gives the same
            draws.

        Returns
        -------
        ndarray, shape (n,)
            Durations (s); ``inf`` for the ``1 - total`` chance that the event never happens.

        Raises
        ------
        ValueError
            Unless the mixture is a distribution: ``total`` in [0, 1] (the probability that
            the event happens) and a pdf >= 0 for all t >= 0 (negative areas are allowed when
            they keep it so, e.g. a first latency with a rising phase).

        Notes
        -----
        Three exact-or-accurate methods, chosen from the areas:

        1. All components real with areas >= -1e-14 max(1, max |area|): the mixture
           directly -- a component (or "never", with probability ``1 - total``) drawn with
           probabilities ``areas``, then an exponential draw with its time constant.
        2. Real components, some areas negative, and acceptance ``total / P >= 0.05`` with
           ``P`` the sum of the positive areas: exact rejection sampling [Dev86]_ (ch. II.3).
           The event happens with probability ``total`` (else ``inf``); given that it
           happens, t has pdf ``f(t) / total`` with ``f`` the mixture pdf, and
           ``f <= g``, ``g(t) = sum over a_i > 0 of (a_i / tau_i) exp(-t / tau_i)`` (the
           negative terms only subtract).  Candidates are drawn from ``g / P`` (a mixture
           with non-negative areas, method 1) and each is accepted with probability
           ``f(t) / g(t)``, so that a fraction ``total / P`` is accepted on average and the
           accepted draws have pdf exactly ``f / total`` (to floating-point rounding of the
           ratio; no truncation or tolerance).  The ratio is evaluated scaled by
           the slowest positive component, so it neither under- nor overflows at long times.
           Candidates are drawn in vectorised batches (only the shortfall is redrawn), in an
           order fixed by ``rng``, so the output is reproducible.  First latencies of the
           bundled models (from rest, 0.1 uM to 1 mM agonist) accept 0.3 to 1.  (Before
           ketacore's 2026-11-27 changes these mixtures used method 3, so the same seed now
           gives other -- equally distributed -- draws.)
        3. Otherwise (complex time constants, or acceptance < 0.05, e.g. a long sequential
           chain of nearly equal rates): the cdf is inverted numerically, by bisection to
           ~1e-12 relative.  This costs about 50 cdf evaluations per draw whatever the
           areas, rejection ``P / total`` candidates per draw: measured, rejection is 20-50x
           faster at the acceptances above and breaks even near 0.006; the 0.05 threshold
           keeps it at least ~5x faster.  (A batch holds ``1.1 x shortfall / acceptance``
           candidates, at most ``max(shortfall, 65536)``, so memory stays O(n).)

        References
        ----------
        .. [Dev86] Devroye L (1986). Non-Uniform Random Variate Generation. Springer, New
           York. Ch. II.3, The rejection method.
        """
        n = _V.integer("n", n, minimum=0)
        # out, u and the bisection arrays, plus (n, k) temporaries of the cdf
        _V.check_memory("ExponentialMixture.sample", n * 8.0 * (6 + 3 * self.n_components),
                        advice="draw fewer at a time (n) and concatenate")
        self._check_distribution()
        rng = _rng.generator(rng)
        real = not np.iscomplexobj(self.taus)
        areas = np.real(self.areas)
        taus = np.real(self.taus)
        if n == 0:
            return np.zeros(0)
        if real and np.all(areas >= -1e-14 * max(1.0, np.abs(areas).max())):
            a = np.clip(areas, 0.0, None)
            p = np.append(a, max(1.0 - a.sum(), 0.0))
            p = p / p.sum()
            comp = rng.choice(a.size + 1, size=n, p=p)
            out = np.full(n, np.inf)
            fin = comp < a.size
            out[fin] = rng.exponential(taus[comp[fin]])
            return out
        if real:
            total = min(max(self.total, 0.0), 1.0)
            positive = float(areas[areas > 0].sum())
            if positive > 0 and total / positive >= _REJECTION_MIN_ACCEPTANCE:
                return self._sample_rejection(n, rng, total, positive)
        return self._sample_inversion(n, rng)

    def _sample_rejection(self, n: int, rng, total: float, positive: float) -> np.ndarray:
        """Exact rejection sampling of a real mixture with some negative areas (see
        :meth:`sample`, method 2)."""
        areas = np.real(self.areas)
        rates = 1.0 / np.real(self.taus)
        pos = areas > 0
        tau_pos = np.real(self.taus)[pos]
        cum = np.cumsum(areas[pos] / positive)
        cum[-1] = 1.0
        r0 = rates[pos].min()                  # slowest positive component: scale of g
        shift = rates - r0                     # >= 0 for positive components
        amp = np.abs(areas) * rates            # |a_i| / tau_i
        order = np.argsort(shift)              # slow components first (summation order)
        out = np.full(n, np.inf)
        happen = np.ones(n, bool) if total >= 1.0 else rng.random(n) < total
        m = int(happen.sum())
        acc = total / positive
        draws = np.empty(m)
        filled = 0
        for _ in range(100000):  # each batch accepts ~1.1 x the shortfall on average
            if filled >= m:
                break
            need = m - filled
            size = min(int(math.ceil(1.1 * need / acc)) + 64, max(need, 1 << 16))
            comp = np.minimum(np.searchsorted(cum, rng.random(size), side="right"),
                              cum.size - 1)
            t = rng.standard_exponential(size) * tau_pos[comp]
            v = rng.random(size)
            g = np.zeros(size)
            h = np.zeros(size)
            with np.errstate(over="ignore", invalid="ignore"):
                for i in order:                # g, h scaled by exp(r0 t): g >= its slowest term
                    term = amp[i] * np.exp(-shift[i] * t)
                    if pos[i]:
                        g += term
                    elif areas[i] < 0:
                        h += term
                keep = v * g <= g - h          # probability f(t) / g(t), f = g - h
            got = t[keep][:need]
            draws[filled:filled + got.size] = got
            filled += got.size
        else:  # pragma: no cover - acceptance >= _REJECTION_MIN_ACCEPTANCE
            raise RuntimeError("sample: rejection sampling accepts (almost) no candidates")
        out[happen] = draws
        return out

    def _sample_inversion(self, n: int, rng) -> np.ndarray:
        """Numerical inversion of the cdf by bisection (see :meth:`sample`, method 3)."""
        u = rng.random(n)
        target = u  # find t with cdf(t) = u; u >= total => inf
        out = np.full(n, np.inf)
        ok = target < self.total - 1e-15
        if not np.any(ok):
            return out
        x = target[ok]
        tmax = float(np.abs(self.taus).max())
        lo = np.zeros(x.size)
        hi = np.full(x.size, tmax)
        for _ in range(2100):  # hi reaches inf (where cdf = total > x) after ~1030 doublings
            bad = self.cdf(hi) < x
            if not np.any(bad):
                break
            hi[bad] *= 2.0
        else:  # pragma: no cover - excluded by _check_distribution
            raise RuntimeError("sample: could not bracket the inverse cdf")
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            below = self.cdf(mid) < x
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
            if np.all(hi - lo <= 1e-13 * np.maximum(hi, 1e-300)):
                break
        out[ok] = 0.5 * (lo + hi)
        return out


def _matrix_form(start, matrix, exit_, name: str):
    """``(start, matrix, exit)`` of a matrix-form distribution (:class:`PhaseType`,
    :class:`DiscretePhaseType`) as float arrays of shapes (k,), (k, k), (k,), k >= 1, all
    finite; ValueError/TypeError naming ``name`` (the matrix's attribute) otherwise."""
    a = _numeric_array("start", start).astype(float)
    M = _numeric_array(name, matrix).astype(float)
    e = _numeric_array("exit", exit_).astype(float)
    k = a.size
    if a.shape != (k,) or M.shape != (k, k) or e.shape != (k,) or k == 0:
        raise ValueError(f"start (k,), {name} (k, k) and exit (k,) must agree, got "
                         f"shapes {a.shape}, {M.shape}, {e.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(M)) and np.all(np.isfinite(e))):
        raise ValueError(f"start, {name} and exit must be finite")
    return a, M, e


@dataclass(frozen=True)
class PhaseType:
    """A duration distribution in matrix form, for sub-generators with no accurate spectral
    expansion: ``pdf(t) = start expm(generator t) exit`` for t >= 0.

    :func:`first_latency`, :func:`dwell_times` and the :func:`bursts` distributions return an
    :class:`ExponentialMixture` when the sub-generator of the states passed through has an
    accurate eigendecomposition -- always for a mechanism with microscopic reversibility -- and
    this class when it does not: a *defective* sub-generator (e.g. an irreversible chain of
    equal rates, C0 -> C1 -> O with both rates k, whose first latency is Erlang(2, k), ``k^2 t
    exp(-k t)``, not a mixture of exponentials) or a nearly defective one (rates equal to ~3e-9
    or closer, where the eigenvectors are so ill-conditioned that a mixture's pdf misses the
    exact one by more than :data:`SPECTRAL_CHECK_RTOL`, 1e-7 of its peak).  The matrix form is
    exact whatever the spectrum: the pdf and survival function are evaluated with matrix
    exponentials (Higham 2005, in the C++ core) and the moments by linear solves, ``E[T^n] = n!
    start (-generator)^-(n+1) exit / total`` [Neu81]; it is a phase-type distribution [Neu81]
    (``start >= 0``, ``exit >= 0``), so :meth:`sample` simulates the Markov chain exactly.  The
    same duck interface as :class:`ExponentialMixture`: ``total``, ``mean``, ``second_moment``,
    ``sd``, ``pdf``, ``survival``, ``cdf``, ``sample``; ``taus`` are the time constants of the
    eigenvalues (repeated ones included; the pdf has ``t^j exp(-t / tau)`` terms, so there are
    no areas).

    Attributes
    ----------
    start : ndarray, shape (k,)
        Probability of starting in each transient state (>= 0); its sum is ``total``, the
        probability that the event happens (the states that can never reach the exit have
        been removed, their start mass is the chance it never does).
    generator : ndarray, shape (k, k)
        Sub-generator among those states (s^-1): ``Q_SS`` for the states S passed through,
        off-diagonal rates >= 0, rows summing to <= 0 (non-singular).
    exit : ndarray, shape (k,)
        Rate of the event from each state (s^-1, >= 0), e.g. ``Q_ST u_T`` for a first latency
        to the class T.

    Notes
    -----
    The constructor checks shapes, finiteness and that ``generator`` is non-singular; it
    accepts any representation ``start expm(generator t) exit`` of the distribution (ketacore
    builds some, e.g. burst gaps, with the normalisation split between ``start`` and ``exit``).
    :meth:`sample`, which simulates the chain, needs non-negative ``start`` and ``exit`` and a
    sub-generator; a ``start`` summing to more than 1 (a leaking chain) it first conditions on
    reaching the exit, and it refuses other forms with a ValueError.

    References
    ----------
    .. [Neu81] Neuts MF (1981). Matrix-Geometric Solutions in Stochastic Models: An
       Algorithmic Approach. Johns Hopkins University Press, Baltimore. Ch. 2.
    .. [CH95] Colquhoun D, Hawkes AG (1995). A Q-matrix cookbook. In: Sakmann B, Neher E
       (eds) Single-Channel Recording, 2nd ed. Plenum, New York, ch. 20 (first latencies and
       dwell times as ``p0 expm(Q_SS t) Q_ST u_T``).
    """

    start: np.ndarray
    generator: np.ndarray
    exit: np.ndarray

    def __post_init__(self):
        a, S, e = _matrix_form(self.start, self.generator, self.exit, "generator")
        try:
            w1 = np.linalg.solve(-S, e)
        except np.linalg.LinAlgError:
            raise ValueError("generator is singular: some states can never leave (remove "
                             "the states that cannot reach the exit)") from None
        for name, arr in (("start", a), ("generator", S), ("exit", e)):
            object.__setattr__(self, name, _frozen_array(arr))
        object.__setattr__(self, "_w1", _frozen_array(w1))  # (-S)^-1 exit

    @property
    def n_phases(self) -> int:
        """Number of transient states k."""
        return int(self.start.size)

    @property
    def taus(self) -> np.ndarray:
        """Time constants (s), 1/eigenvalue of ``-generator`` with multiplicity, ascending
        (a repeated eigenvalue of a defective generator is computed only to ~sqrt(eps))."""
        lam = np.linalg.eigvals(-self.generator)
        if np.all(np.abs(np.imag(lam)) <= 1e-6 * np.abs(lam).max()):
            lam = np.real(lam)
        taus = 1.0 / lam
        return taus[np.argsort(np.real(taus), kind="stable")]

    def _moment_vector(self, n: int) -> np.ndarray:
        v = self._w1
        for _ in range(n):
            v = np.linalg.solve(-self.generator, v)
        return v

    @property
    def total(self) -> float:
        """Probability that the event happens, ``start (-generator)^-1 exit``."""
        return float(self.start @ self._w1)

    def _conditional(self, moment: float) -> float:
        total = self.total
        scale = float(np.abs(self.start) @ np.abs(self._w1))
        if not abs(total) > 1e-12 * max(scale, 1e-300):
            return math.nan
        return moment / total

    @property
    def mean(self) -> float:
        """Mean duration (s), conditional on the event happening (NaN when ``total`` is 0)."""
        return self._conditional(float(self.start @ self._moment_vector(1)))

    @property
    def second_moment(self) -> float:
        """E[T^2] (s^2), conditional on the event happening (NaN when ``total`` is 0)."""
        return self._conditional(2.0 * float(self.start @ self._moment_vector(2)))

    @property
    def sd(self) -> float:
        """Standard deviation (s), conditional on the event happening."""
        m2, m = self.second_moment, self.mean
        if math.isnan(m2) or math.isnan(m):
            return math.nan
        return math.sqrt(max(m2 - m ** 2, 0.0))

    def _at(self, t, vec) -> np.ndarray:
        """``start expm(generator t) vec`` for each t >= 0 (0 at t = inf)."""
        t = _times(t)
        out = np.zeros(t.shape)
        flat_t, flat_o = t.reshape(-1), out.reshape(-1)
        for ti in np.unique(flat_t[np.isfinite(flat_t) & (flat_t >= 0)]):
            val = float(self.start @ _expm(self.generator * ti) @ vec)
            flat_o[flat_t == ti] = val
        return out

    def pdf(self, t):
        """Probability density (s^-1) at time(s) t (s); 0 for t < 0. NaN t: ValueError."""
        t = _times(t)
        return np.where(t >= 0, self._at(t, self.exit), 0.0)

    def survival(self, t):
        """P(T > t) for time(s) t (s), ``1 - total + start expm(generator t) (-generator)^-1
        exit``; 1 for t < 0 (the chance ``1 - total`` of never happening never ends)."""
        t = _times(t)
        val = (1.0 - self.total) + self._at(t, self._w1)
        return np.where(t >= 0, val, 1.0)

    def cdf(self, t):
        """P(T <= t) for time(s) t (s)."""
        return 1.0 - self.survival(t)

    def sample(self, n: int, rng=None) -> np.ndarray:
        """Draw ``n`` durations (s); ``inf`` where the event never happens.

        Exact: the Markov chain is simulated (a start state drawn from ``start``, then
        exponential sojourns and jumps with the rates of ``generator`` and ``exit`` until the
        exit, or ``inf`` when it leaks to a state that never exits) [Neu81].  A representation
        whose ``start`` sums to more than 1 because the chain also leaks (ketacore builds the
        fallback forms of :attr:`Bursts.gaps` and :attr:`Bursts.shut_time` this way: entries
        into B counted whether or not they return to A) is first rewritten as the chain
        conditioned on reaching the exit (Doob's h-transform, ``h = (-generator)^-1 exit``:
        ``start h``, ``D^-1 generator D`` and ``exit / h`` with ``D = diag(h)``), which has
        the same pdf and is a proper phase-type chain.

        Parameters
        ----------
        n : int
            Number of draws, >= 0.
        rng : optional
            Anything accepted by ``numpy.random.default_rng``.

        Raises
        ------
        ValueError
            Unless it is a phase-type distribution: ``start >= 0``, ``exit >= 0``,
            ``generator`` a sub-generator and the probability of the event, ``total``, <= 1
            (``start`` summing to <= 1, or to more when the chain leaks: see above).
        """
        n = _V.integer("n", n, minimum=0)
        _V.check_memory("PhaseType.sample", n * 8.0 * (8 + self.n_phases),
                        advice="draw fewer at a time (n) and concatenate")
        a, S, e = self.start, self.generator, self.exit
        off = S - np.diag(np.diag(S))
        rate = -np.diag(S)
        leak = rate - off.sum(axis=1) - e
        tol = 1e-12 * np.maximum(rate, 1e-300)
        if (np.any(a < -1e-14) or np.any(e < -tol) or np.any(off < 0) or np.any(leak < -tol)
                or not np.all(rate > 0) or (a.sum() > 1.0 + 1e-9 and self.total > 1.0 + 1e-9)):
            raise ValueError("sample needs a phase-type distribution: start >= 0, exit rates "
                             ">= 0, a sub-generator (off-diagonal rates >= 0, rows summing to "
                             "<= 0) and a total probability start (-generator)^-1 exit <= 1, "
                             f"got start summing to {a.sum():.6g}, total {self.total:.6g}")
        e = np.clip(e, 0.0, None)      # (a rounding-level negative exit rate is 0)
        if a.sum() > 1.0 + 1e-9:
            # condition on reaching the exit: h = P(exit | state) = (-S)^-1 e (self._w1)
            h = np.clip(self._w1, 0.0, 1.0)
            keep = h > 0.0
            hk = h[keep]
            a = np.clip(a[keep], 0.0, None) * hk
            S = S[np.ix_(keep, keep)] * hk[None, :] / hk[:, None]
            e = e[keep] / hk
            off = S - np.diag(np.diag(S))
            rate = -np.diag(S)
            leak = np.zeros(a.size)    # rows of the conditioned chain sum to 0 (h harmonic)
        k = a.size
        rng = _rng.generator(rng)
        out = np.full(n, np.inf)
        if n == 0:
            return out
        p0 = np.append(np.clip(a, 0.0, None), max(1.0 - a.sum(), 0.0))
        state = rng.choice(k + 1, size=n, p=p0 / p0.sum())     # k: never
        # jump probabilities from each state: to the k states, to the exit (k), to never
        P = np.concatenate([off, e[:, None], np.clip(leak, 0.0, None)[:, None]], axis=1)
        cum = np.cumsum(P / P.sum(axis=1, keepdims=True), axis=1)
        cum[:, -1] = 1.0
        t = np.zeros(n)
        active = np.flatnonzero(state < k)
        while active.size:
            s = state[active]
            t[active] += rng.standard_exponential(active.size) / rate[s]
            u = rng.random(active.size)
            nxt = (u[:, None] >= cum[s]).sum(axis=1)
            nxt = np.minimum(nxt, k + 1)
            done = nxt == k
            out[active[done]] = t[active[done]]
            state[active] = nxt
            active = active[nxt < k]
        return out


@dataclass(frozen=True)
class GeometricMixture:
    """A distribution on r = 1, 2, ... written as a mixture of geometrics.

    ``pmf(r) = sum_i weights[i] * rhos[i] ** (r - 1)``  (CH82 eq. 3.9), e.g. the number of
    openings per burst (:attr:`Bursts.openings`).  r is a count (dimensionless).

    Attributes
    ----------
    rhos : ndarray
        Eigenvalues of G_AB G_BA (dimensionless; 0 <= rho < 1 for a proper distribution).
    weights : ndarray
        Coefficient of each component (dimensionless probabilities).

    See Also
    --------
    DiscretePhaseType : the exact matrix form :func:`bursts` returns when ``G_AB G_BA`` has no
        accurate expansion (defective or nearly so, e.g. nilpotent).

    References
    ----------
    Colquhoun D, Hawkes AG (1982). On the stochastic properties of bursts of single ion
    channel openings and of clusters of bursts. Phil Trans R Soc Lond B 300:1-59.
    doi:10.1098/rstb.1982.0156 (eqs. 3.5-3.9).
    """

    rhos: np.ndarray
    weights: np.ndarray

    def __post_init__(self):
        rhos = np.atleast_1d(np.asarray(self.rhos))
        w = np.atleast_1d(np.asarray(self.weights))
        dtype = complex if (np.iscomplexobj(rhos) or np.iscomplexobj(w)) else float
        object.__setattr__(self, "rhos", _frozen_array(rhos, dtype))
        object.__setattr__(self, "weights", _frozen_array(w, dtype))

    def pmf(self, r):
        """P(R = r) for integer r >= 1 (0 for r < 1)."""
        r = np.asarray(r)
        rr = np.maximum(r, 1)[..., None].astype(float)
        val = np.real((self.weights * np.power(self.rhos + 0j, rr - 1)).sum(axis=-1))
        return np.where(r >= 1, val, 0.0)

    def cdf(self, r):
        """P(R <= r)."""
        r = np.asarray(r)
        rr = np.maximum(r, 0)[..., None].astype(float)
        geo = np.where(np.isclose(self.rhos, 1.0), rr,
                       (1 - np.power(self.rhos + 0j, rr)) / (1 - self.rhos + 1e-300))
        val = np.real((self.weights * geo).sum(axis=-1))
        return np.where(r >= 1, val, 0.0)

    @property
    def mean(self) -> float:
        """Mean of R: sum w / (1 - rho)^2."""
        return float(np.real((self.weights / (1.0 - self.rhos) ** 2).sum()))

    @property
    def total(self) -> float:
        """Sum of pmf over r >= 1 (1 for a proper distribution)."""
        return float(np.real((self.weights / (1.0 - self.rhos)).sum()))


def _power_rows(v: np.ndarray, T: np.ndarray, n: int) -> np.ndarray:
    """The rows ``v T^j`` for j = 1..n, shape (n, k), by doubling: the block of powers 1..m
    times ``T^m`` (itself by repeated squaring) gives powers m+1..2m, so n rows cost ~log2(n)
    matrix products.  For non-negative ``v`` and ``T`` (a discrete phase-type chain) every
    product is a sum of non-negative terms: no cancellation, each row accurate to a relative
    ~ log2(j) k eps elementwise."""
    rows = (v @ T)[None, :]
    P = T
    while rows.shape[0] < n:
        rows = np.concatenate([rows, rows @ P])
        if rows.shape[0] < n:
            P = P @ P
    return rows[:n]


def _count_array(r, name: str = "r", integer: bool = True) -> np.ndarray:
    """``r`` as a float array of counts; NaN always, and non-integer or infinite values when
    ``integer``, a ValueError."""
    arr = np.asarray(r)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                                 or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name} must be a count or an array of counts (integers), got "
                        f"{_V.plain(r)}")
    arr = arr.astype(float)
    if np.any(np.isnan(arr)):
        raise ValueError(f"{name} must not be NaN")
    if integer and not np.all(np.isfinite(arr) & (arr == np.floor(arr))):
        raise ValueError(f"{name} must hold whole numbers (counts), got {_V.plain(r)}")
    return arr


@dataclass(frozen=True)
class DiscretePhaseType:
    """A distribution on r = 1, 2, ... in matrix ("matrix-geometric") form, for the cases
    with no accurate geometric-mixture expansion: ``pmf(r) = start transition^(r-1) exit``.

    :func:`bursts` returns the number of openings per burst (:attr:`Bursts.openings`,
    ``P(r) = phi_b (G_AB G_BA)^(r-1) e_b``, CH82 eq. 3.5) as a :class:`GeometricMixture`
    (CH82 eq. 3.9, from the eigenvalues of ``G_AB G_BA``) when that expansion agrees with the
    exact matrix powers (to :data:`SPECTRAL_CHECK_RTOL` of the peak pmf, see
    :func:`_openings_accurate`) -- for every library mechanism -- and as this class when it
    does not: ``G_AB G_BA`` defective (a Jordan block, e.g. two open states each re-entered
    through its own short shut state with the same probability 1/4, the first also leading to
    the second; or nilpotent, e.g. a one-way path O1 -> B -> O2 -> C, where every burst has
    exactly two openings), or so nearly defective that its eigenvectors spoil the weights.
    The matrix form is exact whatever the spectrum: it is a discrete phase-type distribution
    [Neu81] (absorbing Markov chain: an opening in state i is followed by one in state j with
    probability ``transition[i, j]``, or the burst ends with probability ``exit[i]``), the
    pmf is evaluated by matrix powers (products of non-negative matrices, no cancellation),
    the mean by a linear solve and :meth:`sample` draws exactly.  The duck interface of
    :class:`GeometricMixture`: ``pmf``, ``cdf``, ``mean``, ``total`` and ``rhos`` (the
    eigenvalues, with multiplicity; there are no ``weights``); and further ``survival`` and
    ``sample``.  r is a count (dimensionless), as are all the probabilities here.

    Attributes
    ----------
    start : ndarray, shape (k,)
        Probability that the first event (e.g. the first opening of a burst) is in each phase
        (dimensionless, >= 0), ``phi_b`` for the openings per burst.
    transition : ndarray, shape (k, k)
        Probability that an event in phase i is followed by one in phase j (dimensionless,
        >= 0, rows summing to <= 1), ``G_AB G_BA`` for the openings per burst; ``I -
        transition`` must be non-singular (every phase leads to the end).
    exit : ndarray, shape (k,)
        Probability that the count ends after an event in each phase (dimensionless, >= 0),
        ``e_b = (I - G_AB G_BA) u_A`` for the openings per burst.

    Notes
    -----
    As :class:`PhaseType`, the constructor accepts any representation ``start T^(r-1) exit``
    and checks only shapes, finiteness and that ``I - T`` is non-singular; :meth:`sample`,
    which draws from the absorbing chain, needs the probabilistic form (a proper
    distribution) and refuses others with a ValueError.

    References
    ----------
    .. [CH82] Colquhoun D, Hawkes AG (1982). On the stochastic properties of bursts of single
       ion channel openings and of clusters of bursts. Phil Trans R Soc Lond B 300:1-59.
       doi:10.1098/rstb.1982.0156 (eqs. 3.5, 3.7: the distribution and mean of the number of
       openings per burst).
    .. [Neu81] Neuts MF (1981). Matrix-Geometric Solutions in Stochastic Models: An
       Algorithmic Approach. Johns Hopkins University Press, Baltimore. Ch. 2 (discrete
       phase-type distributions).
    """

    start: np.ndarray
    transition: np.ndarray
    exit: np.ndarray

    def __post_init__(self):
        a, T, e = _matrix_form(self.start, self.transition, self.exit, "transition")
        k = a.size
        try:
            w1 = np.linalg.solve(np.eye(k) - T, e)
        except np.linalg.LinAlgError:
            raise ValueError("I - transition is singular: some phases never lead to the end "
                             "(the count would be infinite)") from None
        for name, arr in (("start", a), ("transition", T), ("exit", e)):
            object.__setattr__(self, name, _frozen_array(arr))
        object.__setattr__(self, "_w1", _frozen_array(w1))  # (I - T)^-1 exit

    @property
    def n_phases(self) -> int:
        """Number of phases k (for the openings per burst, the open states)."""
        return int(self.start.size)

    @property
    def rhos(self) -> np.ndarray:
        """Eigenvalues of ``transition`` with multiplicity (dimensionless), ascending real
        part (a repeated eigenvalue of a defective matrix is computed only to ~sqrt(eps), a
        nilpotent block of size m to ~eps^(1/m))."""
        rho = np.linalg.eigvals(self.transition)
        if np.all(np.abs(np.imag(rho)) <= 1e-6 * max(np.abs(rho).max(), 1e-300)):
            rho = np.real(rho)
        return rho[np.lexsort((np.imag(rho), np.real(rho)))]

    @property
    def total(self) -> float:
        """Sum of the pmf over r >= 1, ``start (I - transition)^-1 exit`` (1 for a proper
        distribution)."""
        return float(self.start @ self._w1)

    @property
    def mean(self) -> float:
        """Mean of R, ``sum_r r pmf(r) = start (I - transition)^-2 exit`` by linear solves
        (CH82 eq. 3.7, ``phi_b (I - G_AB G_BA)^-1 u_A``, for the openings per burst); as
        :attr:`GeometricMixture.mean`, not divided by ``total`` (1 for a proper
        distribution)."""
        k = self.n_phases
        return float(self.start @ np.linalg.solve(np.eye(k) - self.transition, self._w1))

    def _rows_at(self, s: np.ndarray) -> np.ndarray:
        """``start transition^s`` for sorted unique integers s >= 0, shape (s.size, k): runs of
        nearby s by :func:`_power_rows` (blocks of at most 4096 powers), jumps between them by
        ``numpy.linalg.matrix_power`` (repeated squaring), so huge r cost ~log2(r) products."""
        T = self.transition
        out = np.empty((s.size, self.n_phases))
        v, cur, i = self.start, 0, 0
        while i < s.size:
            if s[i] > cur:
                v = v @ np.linalg.matrix_power(T, int(s[i] - cur))
                cur = int(s[i])
            j = int(np.searchsorted(s, cur + 4096, side="left"))
            span = int(s[j - 1]) - cur
            rows = (np.concatenate([v[None, :], _power_rows(v, T, span)]) if span
                    else v[None, :])
            out[i:j] = rows[(s[i:j] - cur).astype(np.int64)]
            v, cur, i = rows[-1], int(s[j - 1]), j
        return out

    def _at(self, s: np.ndarray, vec: np.ndarray) -> np.ndarray:
        """``start transition^s vec`` for each integer s >= 0 (any shape)."""
        # counts beyond 2^62 (the int64 range; transition^(2^62) is 0 to double precision
        # unless its spectral radius is within ~1e-17 of 1) are evaluated at 2^62
        flat = np.minimum(s.reshape(-1), 2.0 ** 62).astype(np.int64)
        uniq, inv = np.unique(flat, return_inverse=True)
        vals = self._rows_at(uniq) @ vec
        return vals[inv.reshape(-1)].reshape(s.shape)

    def pmf(self, r):
        """P(R = r) for whole number(s) r (0 for r < 1), ``start transition^(r-1) exit``.

        Parameters
        ----------
        r : int or array_like of int
            Count(s) (dimensionless); integer-valued floats are accepted, NaN, infinite or
            fractional values raise ValueError.

        Returns
        -------
        ndarray
            Probabilities (dimensionless), shape of ``r``.
        """
        r = _count_array(r)
        out = np.zeros(r.shape)
        ok = r >= 1
        if np.any(ok):
            out[ok] = self._at(r[ok] - 1.0, self.exit)
        return out

    def survival(self, r):
        """P(R > r) for count(s) r, ``1 - total + start transition^r (I - transition)^-1
        exit`` for r >= 1 (``floor(r)`` for a fractional r; ``1 - total`` at ``inf``) and 1 for
        r < 1.  For a proper distribution this is ``start transition^r u``: the tail is
        accurate to a relative ~eps, not to an absolute one (no ``1 - cdf`` cancellation)."""
        r = _count_array(r, integer=False)
        out = np.ones(r.shape)
        lost = 1.0 - self.total
        big = r == np.inf
        out[big] = lost
        ok = (r >= 1) & ~big
        if np.any(ok):
            out[ok] = lost + self._at(np.floor(r[ok]), self._w1)
        return out

    def cdf(self, r):
        """P(R <= r) for count(s) r, ``total - start transition^r (I - transition)^-1 exit``
        (``floor(r)`` for a fractional r; ``total`` at ``inf``); 0 for r < 1."""
        r = _count_array(r, integer=False)
        out = np.zeros(r.shape)
        big = r == np.inf
        out[big] = self.total
        ok = (r >= 1) & ~big
        if np.any(ok):
            out[ok] = self.total - self._at(np.floor(r[ok]), self._w1)
        return out

    def _chain(self):
        """The absorbing chain of :meth:`sample`: start probabilities and transition matrix,
        each row (``transition[i]``, ``exit[i]``) normalised to sum 1; ValueError unless the
        distribution is proper to 1e-9 (rounding-level negative entries, <= 1e-12, are read as
        0)."""
        a, T, e = self.start, self.transition, self.exit
        neg = 1e-12
        rows = T.sum(axis=1) + e
        if (np.any(a < -neg) or np.any(T < -neg) or np.any(e < -neg)
                or abs(a.sum() - 1.0) > 1e-9 or np.any(np.abs(rows - 1.0) > 1e-9)):
            raise ValueError("sample needs a proper discrete phase-type distribution: start >= 0 "
                             "summing to 1, transition >= 0 and exit >= 0 with each row of "
                             "transition plus its exit summing to 1 (the count always ends), "
                             f"got start summing to {a.sum():.6g} and rows summing to "
                             f"{rows.min():.6g}..{rows.max():.6g}")
        a = np.clip(a, 0.0, None)
        T = np.clip(T, 0.0, None)
        e = np.clip(e, 0.0, None)
        rows = T.sum(axis=1) + e
        return a / a.sum(), T / rows[:, None]

    def sample(self, n: int, rng=None) -> np.ndarray:
        """Draw ``n`` counts r >= 1 (e.g. numbers of openings per burst).

        Exact: inversion of the survival function of the absorbing chain [Neu81],
        ``S(r) = a T^r u`` (``a`` = ``start``, ``T`` = ``transition``, each row of ``T``
        and ``exit`` normalised to sum 1 -- a change at the level of rounding for a proper
        distribution), with one uniform ``V`` on (0, 1] per draw: ``R = min {r >= 1 :
        S(r) < V}``, so ``P(R > r) = P(V <= S(r)) = S(r)``.  ``S`` is a sum of non-negative
        terms (no ``1 - cdf`` cancellation, accurate to a relative ~eps in the tail) and is
        evaluated in blocks of consecutive r (:func:`_power_rows`) until it falls below the
        smallest ``V``, so only the range of r the draws reach is computed and nothing is
        truncated.  The same ``rng`` gives the same draws.

        Parameters
        ----------
        n : int
            Number of draws, >= 0.
        rng : optional
            SPEC 7: None, an int >= 0, a ``numpy.random.SeedSequence``, ``BitGenerator`` or
            ``Generator`` (``numpy.random.default_rng``); the same seed gives the same draws.

        Returns
        -------
        ndarray of int64, shape (n,)
            Counts (dimensionless), each >= 1.

        Raises
        ------
        ValueError
            Unless it is a proper discrete phase-type distribution (see :meth:`_chain`):
            ``start >= 0`` summing to 1, ``transition >= 0``, ``exit >= 0`` and each row of
            ``transition`` plus its ``exit`` summing to 1, to 1e-9.
        """
        n = _V.integer("n", n, minimum=0)
        _V.check_memory("DiscretePhaseType.sample", n * 8.0 * 6,
                        advice="draw fewer at a time (n) and concatenate")
        a, T = self._chain()
        rng = _rng.generator(rng)
        out = np.zeros(n, np.int64)
        if n == 0:
            return out
        v = 1.0 - rng.random(n)                       # uniform on (0, 1]
        order = np.argsort(-v, kind="stable")         # largest V first: the smallest counts
        vs = v[order]
        row, r0, prev, done, size = a, 0, 1.0, 0, 64  # row = a T^r0, S(r0) = prev
        while done < n:
            rows = _power_rows(row, T, size)          # a T^(r0 + 1) .. a T^(r0 + size)
            S = np.minimum.accumulate(np.minimum(rows.sum(axis=1), prev))
            m = int(np.searchsorted(-vs[done:], -S[-1], side="left"))  # V > S(r0 + size)
            if m:
                j = np.searchsorted(-S, -vs[done:done + m], side="right")  # first S < V
                out[order[done:done + m]] = r0 + 1 + j
                done += m
            row, r0, prev, size = rows[-1], r0 + size, float(S[-1]), min(2 * size, 1 << 16)
        return out


@dataclass(frozen=True)
class Relaxation:
    """Relaxation of occupancies towards equilibrium after a step [CH77].

    ``p(t) = equilibrium + sum_m amplitudes[m] * exp(-t / taus[m])`` and
    ``Po(t) = popen_equilibrium + sum_m popen_amplitudes[m] * exp(-t / taus[m])``.

    When Q has no accurate spectral expansion -- it is defective or nearly so, which needs a
    repeated rate of a mechanism without microscopic reversibility, e.g. an irreversible chain
    of equal rates -- ``p(t)`` has ``t^j exp(-t / tau)`` terms and is not a sum of
    exponentials: then ``amplitudes`` and ``popen_amplitudes`` are None, ``generator`` holds Q
    and :meth:`occupancy` / :meth:`open_probability` evaluate ``p(0) expm(Q t)`` exactly
    (matrix exponential, Higham 2005) [CH95].

    Attributes
    ----------
    taus : ndarray, shape (n,)
        Time constants (s) = -1/lambda for the non-zero eigenvalues of Q,
        ascending (degenerate eigenvalues merged, so possibly fewer than K-1; for a
        non-diagonalisable Q the distinct ones, to ~1e-6 relative).
    amplitudes : ndarray, shape (n, K), or None
        Occupancy amplitude (dimensionless) of each component in each state; None when Q is
        not diagonalisable (see above).
    popen_amplitudes : ndarray or None
        Open-probability amplitude of each component (None when open states
        are unknown, or Q is not diagonalisable).
    equilibrium : ndarray, shape (K,)
        Occupancies at t = inf.
    initial : ndarray, shape (K,)
        Occupancies at t = 0.
    states : tuple of str or None
    generator : ndarray, shape (K, K), or None
        Q (s^-1) when it is not diagonalisable (the exact matrix form is used), else None.

    References
    ----------
    Colquhoun D, Hawkes AG (1977). Relaxation and fluctuations of membrane currents that flow
    through drug-operated channels. Proc R Soc Lond B 199:231-262. doi:10.1098/rspb.1977.0086
    [CH77]; Colquhoun D, Hawkes AG (1995). A Q-matrix cookbook. In: Sakmann B, Neher E (eds)
    Single-Channel Recording, 2nd ed. Plenum, New York, ch. 20 [CH95].
    """

    taus: np.ndarray
    amplitudes: Optional[np.ndarray]
    popen_amplitudes: Optional[np.ndarray]
    equilibrium: np.ndarray
    initial: np.ndarray
    states: Optional[Tuple[str, ...]] = None
    open_mask: Optional[np.ndarray] = field(default=None, repr=False)
    generator: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def rates(self) -> np.ndarray:
        """1/tau (s^-1)."""
        return 1.0 / self.taus

    @property
    def popen_equilibrium(self) -> Optional[float]:
        """Equilibrium open probability (dimensionless), the sum of ``equilibrium`` over the
        open states: the limit of :meth:`open_probability` as t -> inf.  None when the open
        states are unknown (a raw Q without ``open=``)."""
        if self.open_mask is None:
            return None
        return float(self.equilibrium[self.open_mask].sum())

    def occupancy(self, t) -> np.ndarray:
        """Occupancies at time(s) t (s) after the step; shape t.shape + (K,).

        t must be >= 0 (``inf`` gives the equilibrium); negative or NaN times raise
        ValueError (the expansion does not describe the time before the step).
        """
        t = _times(t)
        if np.any(t < 0):
            raise ValueError(f"t must be >= 0 s (time after the step), got {float(t.min())!r}")
        if self.generator is not None:
            out = np.empty(t.shape + (self.initial.size,))
            flat_t, flat_o = t.reshape(-1), out.reshape(-1, self.initial.size)
            for ti in np.unique(flat_t):
                flat_o[flat_t == ti] = (self.equilibrium if np.isinf(ti) else
                                        self.initial @ _expm(self.generator * ti))
            return out
        e = _decay(t, self.taus)  # (..., n)
        return self.equilibrium + np.real(e @ self.amplitudes)

    def open_probability(self, t) -> np.ndarray:
        """Open probability (dimensionless) at time(s) t (s)."""
        if self.open_mask is None:
            raise ValueError("open states unknown: pass open= (raw Q) or use a scheme")
        return self.occupancy(t)[..., self.open_mask].sum(axis=-1)


@dataclass(frozen=True)
class Bursts:
    """Burst statistics (CH82) for open states A, short shut states B, long shut C.

    A burst is a series of openings separated by sojourns in B; it ends when
    the channel enters C (the last sojourn in B before C is not part of it).

    Attributes
    ----------
    openings : GeometricMixture or DiscretePhaseType
        Distribution of the number of openings per burst (CH82 eq. 3.5, 3.9); the exact
        :class:`DiscretePhaseType` when ``G_AB G_BA`` has no accurate geometric-mixture
        expansion (see :func:`bursts`).
    mean_openings : float
        Mean number of openings per burst (CH82 eq. 3.7).
    length : ExponentialMixture or PhaseType
        Burst length (s) distribution (CH82 eq. 3.17); the exact :class:`PhaseType` when
        ``Q_EE`` (E = A + B) has no accurate spectral expansion (see :func:`bursts`).
    mean_length : float
        Mean burst length (s) (CH82 eq. 3.19).
    open_time : ExponentialMixture or PhaseType
        Distribution of the total open time per burst (s) (CH82 eq. 3.23); the exact
        :class:`PhaseType` when ``-(Q_AA + Q_AB G_BA)`` has no accurate spectral expansion
        (see :func:`bursts`).
    mean_open_time : float
        Mean total open time per burst (s) (CH82 eq. 3.26).
    mean_shut_time : float
        Mean total shut time per burst (s) (CH82 eq. 3.41), over all bursts
        (zero for single-opening bursts).
    gaps : ExponentialMixture or PhaseType or None
        Distribution of the individual gaps within bursts (s) (CH82 eq. 3.75); the exact
        :class:`PhaseType` when ``-Q_BB`` has no accurate spectral expansion (see
        :func:`bursts`); None when a burst can contain only one opening.
    mean_gap : float
        Mean gap within bursts (s) (nan when there are no gaps).
    start : ndarray
        phi_b, probability that a burst starts in each open state (CH82 eq. 3.2).
    rate : float
        Bursts per second at equilibrium (s^-1), ``p_C (Q_CA + Q_CB G_BA) u_A``.
    mean_between : float
        Mean shut time between bursts (s) (CH82 eq. 3.86), from the renewal
        identity ``(1 - rate * mean_length) / rate``.
    open_states, within_states, between_states : tuple of int
        Indices of A, B and C.
    between : ExponentialMixture or PhaseType
        Distribution of the shut time between bursts (s): the shut times (sojourns in
        F = B + C, from the end of one opening to the start of the next) that visit C at
        least once, including the sojourns in B before and after C.  Its mean is
        ``mean_between`` and its areas sum to 1; areas can be negative (it is a difference of
        two mixtures, see :func:`bursts`).  With no B states it is the distribution of all
        shut times (:func:`dwell_times` of the shut class).  Accuracy: the two mixtures share
        near-equal time constants with areas that grow with the openings per burst, so the
        difference loses digits for extreme mechanisms -- pdf errors ~1e-11 for CH82 and the
        NMDA library models (up to ~1e4 openings per burst), but percent-level for a gateway
        into C entered at ~1e-4 /s (a review's augmented-chain check); ``mean_between`` (a
        renewal difference) cancels the same way there.  The exact :class:`PhaseType` (no
        difference of two terms) when ``-Q_FF`` or ``-Q_BB`` has no accurate spectral
        expansion, or when a general-``eig`` mixture fails the shared check (see
        :func:`bursts`).
    shut_time : ExponentialMixture or PhaseType or None
        Distribution of the total shut time per burst (s), the sum of the gaps within it,
        *for bursts with at least two openings* (its areas sum to 1; CH82 eq. 3.40); its mean
        times ``p_multiple`` is ``mean_shut_time``.  The exact :class:`PhaseType` when
        ``-W_BB`` (``W_BB = Q_BB + Q_BA G_AB``) has no accurate spectral expansion (see
        :func:`bursts`).  None when a burst can contain only one opening (as ``gaps``).
    p_multiple : float
        Probability that a burst has at least two openings, ``phi_b G_AB G_BA u_A``
        (1 - P(1 opening), CH82 eq. 3.5); 0 when there are no B states.
    """

    openings: Union[GeometricMixture, DiscretePhaseType]
    mean_openings: float
    length: Union[ExponentialMixture, PhaseType]
    mean_length: float
    open_time: Union[ExponentialMixture, PhaseType]
    mean_open_time: float
    mean_shut_time: float
    gaps: Optional[Union[ExponentialMixture, PhaseType]]
    mean_gap: float
    start: np.ndarray
    rate: float
    mean_between: float
    open_states: Tuple[int, ...]
    within_states: Tuple[int, ...]
    between_states: Tuple[int, ...]
    between: Optional[Union[ExponentialMixture, PhaseType]] = None
    shut_time: Optional[Union[ExponentialMixture, PhaseType]] = None
    p_multiple: float = 0.0


@dataclass(frozen=True)
class ConcentrationResponse:
    """Equilibrium open probability against the concentration of one ligand.

    Attributes
    ----------
    ligand : str
    concentrations : ndarray
        Concentrations (M) at which ``popen`` is given.
    popen : ndarray
        Equilibrium open probability at each concentration.
    popen_zero : float
        Po with no ligand.
    popen_max, popen_min : float
        Largest and smallest Po over all concentrations (the limit as
        c -> inf where the curve has no interior extremum).
    c_extreme : float
        Concentration (M) of the far end of the curve (the peak of a bell-shaped
        curve; ``inf`` when it is the plateau at c -> inf).
    increasing : bool
        Whether the response rises (agonist) or falls (inhibitor) from popen_zero.
    ec50 : float
        Concentration (M) at which Po is half-way between ``popen_zero`` and the
        far end (``popen_max`` if increasing, else ``popen_min``), on the side
        below ``c_extreme``. Found by Brent's method on the exact curve.
    hill : float
        Hill slope at EC50, d ln((P - P0)/(Pext - P)) / d ln c (equal to
        d ln(P/(Pmax - P))/d ln c when P0 = 0), from a 5-point central
        difference in ln c on the exact curve (error ~1e-10).

    References
    ----------
    Colquhoun D, Hawkes AG (1995). A Q-matrix cookbook. In: Sakmann B, Neher E (eds)
    Single-Channel Recording, 2nd ed. Plenum, New York, ch. 20 (equilibrium occupancies);
    Colquhoun D (1998). Binding, gating, affinity and efficacy: the interpretation of
    structure-activity relationships for agonists and of the effects of mutating receptors.
    Br J Pharmacol 125:924-947. doi:10.1038/sj.bjp.0702164 (EC50 and Hill slope of a
    mechanism; DOI not independently verified).
    """

    ligand: str
    concentrations: np.ndarray
    popen: np.ndarray
    popen_zero: float
    popen_max: float
    popen_min: float
    c_extreme: float
    increasing: bool
    ec50: float
    hill: float

    def _far_end(self) -> Tuple[float, str]:
        """Po at the far end of the curve and where it is (c -> inf, or the peak)."""
        p = self.popen_max if self.increasing else self.popen_min
        where = ("c -> inf" if math.isinf(self.c_extreme) else
                 f"c = {_fmt_molar(self.c_extreme)}, {'peak' if self.increasing else 'trough'}")
        return p, where

    def __repr__(self) -> str:
        """One line: ligand, EC50 (with units), Hill slope, Po at the two ends of the curve
        and the number of concentrations in ``popen`` -- not the arrays themselves."""
        p_end, where = self._far_end()
        return (f"ConcentrationResponse(ligand={self.ligand!r}, ec50={_fmt_molar(self.ec50)}, "
                f"hill={self.hill:.4g}, Po(0)={self.popen_zero:.4g}, Po({where})={p_end:.4g}, "
                f"{self.concentrations.size} points)")

    def summary(self) -> str:
        """A few lines: EC50 (M, with a unit prefix) and Hill slope at EC50, Po with no
        ligand and at the far end of the curve, the Po range, and the concentrations at
        which ``popen`` is given.

        Returns
        -------
        str
            E.g. for CH82 (``concentration_response(kc.models.get("ch82"), "agonist")``)::

                Equilibrium concentration-response to agonist (rising)
                  EC50 = 2.404 uM, Hill slope nH = 1.892 (at EC50)
                  Po(c = 0) = 0, Po(c -> inf) = 0.9677
                  Po range [0, 0.9677]
                  popen at 61 concentrations from 100 pM to 100 mM
        """
        p_end, where = self._far_end()
        c = self.concentrations
        span = (f"from {_fmt_molar(float(c.min()))} to {_fmt_molar(float(c.max()))}"
                if c.size else "(none)")
        return "\n".join([
            f"Equilibrium concentration-response to {self.ligand} "
            f"({'rising' if self.increasing else 'falling'})",
            f"  EC50 = {_fmt_molar(self.ec50)}, Hill slope nH = {self.hill:.4g} (at EC50)",
            f"  Po(c = 0) = {self.popen_zero:.4g}, Po({where}) = {p_end:.4g}",
            f"  Po range [{self.popen_min:.4g}, {self.popen_max:.4g}]",
            f"  popen at {c.size} concentrations {span}"])


def _fmt_molar(c: float) -> str:
    """A concentration (M) with the prefix a reader expects: ``2.404 uM``, ``100 pM``, ``0 M``
    (4 significant digits; ``nan`` for an undefined EC50)."""
    if not math.isfinite(c):
        return "nan" if math.isnan(c) else f"{c} M"
    if c == 0:
        return "0 M"
    for unit, f in (("M", 1.0), ("mM", 1e-3), ("uM", 1e-6), ("nM", 1e-9), ("pM", 1e-12)):
        if abs(c) >= f * (1 - 5e-5):      # (so 0.99999e-6 M reads 1 uM, not 1000 nM)
            return f"{c / f:.4g} {unit}"
    return f"{c / 1e-15:.4g} fM"


# ---------------------------------------------------------------------------
# validation and dispatch
# ---------------------------------------------------------------------------


def validate_q(Q, name: str = "Q") -> np.ndarray:
    """Check a generator matrix and return it as a float ndarray.

    Q is the transition-rate matrix of a continuous-time Markov chain [CH95]: ``q_ij`` (s^-1)
    the rate i -> j for i != j, ``q_ij >= 0``, and ``q_ii = -sum_{j != i} q_ij`` (rows sum to
    zero).

    Parameters
    ----------
    Q : (K, K) array_like
        Rates (s^-1).
    name : str
        How the messages name it.

    Returns
    -------
    ndarray, shape (K, K)
        Q as float (s^-1).

    Raises
    ------
    TypeError
        Not numeric / complex.
    ValueError
        Not square 2-d, non-finite, negative off-diagonal rate, or a row that
        does not sum to zero within ``ROW_SUM_RTOL`` times the sum of the
        absolute values in that row.

    References
    ----------
    Colquhoun D, Hawkes AG (1995). A Q-matrix cookbook. In: Sakmann B, Neher E (eds)
    Single-Channel Recording, 2nd ed. Plenum, New York, ch. 20 [CH95].
    """
    try:
        arr = np.asarray(Q)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name} must be a 2-d array of rates (s^-1): {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must be a numeric 2-d array of rates (s^-1), "
                        f"got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real, got complex dtype {arr.dtype}")
    arr = arr.astype(float)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} must be square 2-d (K, K), got shape {arr.shape}")
    if arr.shape[0] < 1:
        raise ValueError(f"{name} must have at least one state")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values")
    off = arr - np.diag(np.diag(arr))
    if np.any(off < 0):
        i, j = np.argwhere(off < 0)[0]
        raise ValueError(f"{name}[{i}, {j}] = {_V.plain(arr[i, j])}: off-diagonal rates must "
                         "be >= 0")
    rowsum = arr.sum(axis=1)
    scale = np.abs(arr).sum(axis=1)
    bad = np.abs(rowsum) > ROW_SUM_RTOL * scale
    if np.any(bad):
        i = int(np.argmax(bad))
        raise ValueError(f"row {i} of {name} sums to {_V.plain(rowsum[i])}, not 0 "
                         f"(tolerance {ROW_SUM_RTOL:g} x {scale[i]:g}); q_ii must be "
                         f"-sum of the other rates in the row")
    return arr


@dataclass(frozen=True)
class _Model:
    Q: np.ndarray
    open_mask: Optional[np.ndarray]
    states: Optional[Tuple[str, ...]]
    scheme: Any = None
    zero_ligands: Tuple[str, ...] = ()  # the scheme's ligands at 0 or not given

    def never_entered_hint(self) -> str:
        """For a class never entered: the ligands left at 0, the usual cause."""
        if not self.zero_ligands:
            return ""
        z = self.zero_ligands
        return (f"; the scheme's ligand{'s' if len(z) > 1 else ''} {', '.join(map(repr, z))} "
                f"{'are' if len(z) > 1 else 'is'} 0 or not given (e.g. {z[0]}=1e-6, in M)")

    @property
    def k(self) -> int:
        return self.Q.shape[0]

    def require_open(self) -> np.ndarray:
        if self.open_mask is None:
            raise ValueError("open states unknown: pass open=[indices] (or a boolean mask) "
                             "with a raw Q matrix")
        return self.open_mask


def _is_scheme(obj) -> bool:
    return hasattr(obj, "q_matrix") and callable(getattr(obj, "q_matrix"))


def _open_mask(open_, k: int, states) -> np.ndarray:
    arr = np.asarray(open_)
    if arr.dtype == bool:
        if arr.shape != (k,):
            raise ValueError(f"boolean open mask must have length {k}, got shape {arr.shape}")
        return arr.copy()
    idx = _resolve_indices(open_, k, states, what="open")
    mask = np.zeros(k, dtype=bool)
    mask[idx] = True
    return mask


def _model_or_name(model):
    from .models import as_scheme  # (deferred: models imports scheme, not theory)
    return as_scheme(model)


def _resolve(model, conditions: Mapping[str, Any], open=None, names=None) -> _Model:
    """The one dispatcher: (scheme, **conditions) or (Q, open=..., names=...); a string is a
    library model name."""
    model = _model_or_name(model)
    if _is_scheme(model):
        if names is not None:
            raise TypeError("names= is only for a raw Q matrix; a scheme names its own states")
        Q = validate_q(model.q_matrix(**conditions), name="scheme.q_matrix(...)")
        names = tuple(str(s) for s in model.states)
        if len(names) != Q.shape[0]:
            raise ValueError(f"scheme has {len(names)} states but q_matrix is {Q.shape}")
        if open is not None:
            mask = _open_mask(open, Q.shape[0], names)
        else:
            g = np.asarray(model.conductance, dtype=float)
            if g.shape != (Q.shape[0],):
                raise ValueError(f"scheme.conductance has shape {g.shape}, "
                                 f"expected ({Q.shape[0]},)")
            mask = g > 0
        zero = tuple(str(l) for l in getattr(model, "ligands", ()) if not conditions.get(l))
        return _Model(Q, mask, names, model, zero)
    if isinstance(model, (str, bytes)) or model is None:
        raise TypeError("expected a Scheme (with q_matrix) or a (K, K) Q matrix, "
                        f"got {type(model).__name__}")
    if conditions:
        raise TypeError("conditions (" + ", ".join(sorted(conditions)) + ") apply only to a "
                        "Scheme; a raw Q matrix is already evaluated at its conditions")
    Q = validate_q(model)
    if names is not None:
        names = tuple(str(s) for s in names)
        if len(names) != Q.shape[0]:
            raise ValueError(f"names has {len(names)} entries but Q is {Q.shape}")
        if len(set(names)) != len(names):
            raise ValueError("names contains duplicate state names")
    mask = None if open is None else _open_mask(open, Q.shape[0], names)
    return _Model(Q, mask, names, None)


def _resolve_indices(spec, k: int, states, what: str = "states") -> np.ndarray:
    """State spec (name, index, or list of them) -> sorted unique int array."""
    if isinstance(spec, (str, int, np.integer)):
        spec = [spec]
    try:
        items = list(spec)
    except TypeError:
        raise TypeError(f"{what} must be a state name (str), an index (int), a list of them or "
                        f"a boolean mask of length {k}, got {type(spec).__name__} "
                        f"({_V.plain(spec)})") from None
    out = []
    for item in items:
        if isinstance(item, (bool, np.bool_)):
            raise TypeError(f"{what}: use a boolean mask of length {k} or indices/names, "
                            f"not a single bool")
        if isinstance(item, (int, np.integer)):
            i = int(item)
            if not -k <= i < k:
                raise ValueError(f"{what}: state index {i} out of range for {k} states")
            out.append(i % k)
        elif isinstance(item, str):
            if states is None:
                raise ValueError(f"{what}: state name {_V.plain(item)} given but the states are "
                                 "unnamed (pass names=[...] with a raw Q)")
            if item not in states:
                raise ValueError(f"{what}: unknown state {_V.plain(item)}; states are "
                                 f"{list(states)}")
            out.append(states.index(item))
        else:
            raise TypeError(f"{what}: states must be given by name (str) or index (int), "
                            f"got {type(item).__name__}")
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: duplicate states in {_V.plain(items)}")
    return np.array(sorted(out), dtype=int)


def _class_indices(spec, m: _Model, what: str = "states") -> np.ndarray:
    """'open' | 'shut' | names/indices | bool mask -> indices; not empty, not all."""
    k = m.k
    if isinstance(spec, str) and spec in ("open", "shut", "closed"):
        mask = m.require_open()
        idx = np.flatnonzero(mask if spec == "open" else ~mask)
        if idx.size == 0:
            raise ValueError(f"{what}: there are no {spec} states")
        if idx.size == k:
            raise ValueError(f"{what}: every state is {spec}; the class must leave some "
                             "states outside it")
        return idx
    arr = np.asarray(spec) if not isinstance(spec, str) else None
    if arr is not None and arr.dtype == bool and arr.ndim == 1:
        if arr.shape != (k,):
            raise ValueError(f"{what}: boolean mask must have length {k}")
        idx = np.flatnonzero(arr)
    else:
        idx = _resolve_indices(spec, k, m.states, what)
    if idx.size == 0:
        raise ValueError(f"{what}: the class of states is empty")
    if idx.size == k:
        raise ValueError(f"{what}: the class contains every state; it needs a complement")
    return idx


# ---------------------------------------------------------------------------
# linear algebra kernels
# ---------------------------------------------------------------------------


def _expm(A: np.ndarray) -> np.ndarray:
    """Matrix exponential of a real square matrix in the C++ core (Higham 2005 scaling and
    squaring, Pade 13; single-threaded).  scipy.linalg.expm goes through a threaded BLAS whose
    threads, on a busy machine, turned its ~50 us on a 15 x 15 matrix into ~15 ms."""
    from . import _core
    return _core.expm(np.ascontiguousarray(A, dtype=float))


def _gth(Q: np.ndarray) -> Optional[np.ndarray]:
    """Stationary distribution by GTH state reduction (Grassmann, Taksar & Heyman 1985, Oper.
    Res. 33:1107, doi:10.1287/opre.33.5.1107), in the C++ core (``linalg::gth``, the kernel the
    simulation cost model runs on every condition of a protocol); None if it breaks down."""
    from . import _core
    return _core.gth(np.ascontiguousarray(Q, dtype=float))


class NoUniqueEquilibrium(ValueError):
    """A generator with several closed (absorbing) classes: the long-run state depends on the
    start (e.g. channels holding a trapped blocker at rest, with no agonist to open them)."""


def _closed_classes(Q: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """(labels of the strongly connected components, member arrays of the closed ones)."""
    k = Q.shape[0]
    adj = (Q > 0) & ~np.eye(k, dtype=bool)
    n_comp, labels = csgraph.connected_components(sparse.csr_matrix(adj), directed=True,
                                                  connection="strong")
    # closed classes: strongly connected components with no transition leaving them
    leaves = np.zeros(n_comp, dtype=bool)
    src, dst = np.nonzero(adj)
    leaves[labels[src][labels[src] != labels[dst]]] = True
    return labels, [np.flatnonzero(labels == c) for c in np.flatnonzero(~leaves)]


def _class_equilibrium(Q: np.ndarray, members: np.ndarray) -> np.ndarray:
    p = _gth(Q[np.ix_(members, members)])
    if p is None:  # an irreducible class: only an overflow stops GTH
        raise ValueError("no equilibrium in double precision: GTH overflowed (the rates within one "
                         "closed class of states span more than ~1e300)")
    return p


def _equilibrium_q(Q: np.ndarray) -> np.ndarray:
    """Equilibrium of a generator: GTH on its single closed class, 0 on transient states.

    GTH on the whole of Q is tried first (one C++ call): it succeeds exactly when Q has one
    closed class and state 0 is in it, and then gives the same bytes as GTH on the class
    (the transient states' zero rows and columns add exact zeros; tests/test_hjc_core.py);
    otherwise the classes are found and checked as below."""
    p = _gth(Q)
    if p is not None:
        return p
    k = Q.shape[0]
    _, closed = _closed_classes(Q)
    if len(closed) != 1:
        raise NoUniqueEquilibrium(f"Q has no unique equilibrium: it has {len(closed)} closed "
                                  "(absorbing) classes of states")
    p = np.zeros(k)
    p[closed[0]] = _class_equilibrium(Q, closed[0])
    return p


def _limit_q(Q: np.ndarray, p0: np.ndarray) -> np.ndarray:
    """lim_{t->inf} p0 exp(Q t): each closed class r keeps its own mass plus what the transient
    states send it (absorption probabilities h_r = (-Q_TT)^-1 Q_TC_r 1), spread by its
    equilibrium ([CH95] Q-matrix cookbook; Norris 1997, Markov Chains, sec. 3.3)."""
    k = Q.shape[0]
    _, closed = _closed_classes(Q)
    in_closed = np.zeros(k, dtype=bool)
    for m in closed:
        in_closed[m] = True
    T = np.flatnonzero(~in_closed)
    mass = np.array([p0[m].sum() for m in closed])
    if T.size and np.any(p0[T] > 0):
        rates = np.stack([Q[np.ix_(T, m)].sum(axis=1) for m in closed], axis=1)  # (T, classes)
        H = np.linalg.solve(-Q[np.ix_(T, T)], rates)  # absorption probabilities
        mass = mass + p0[T] @ H
    p = np.zeros(k)
    for m, w in zip(closed, mass):
        if w > 0:
            p[m] = w * _class_equilibrium(Q, m)
    return p / p.sum()


def rest_state(scheme, **conditions) -> np.ndarray:
    """Occupancy of channels resting under ``conditions`` (V in V, temperature in K,
    concentrations in M): the equilibrium when it is unique, else the state reached from
    drug-free rest when the conditions are held indefinitely.

    The second case arises with a trapping blocker present at rest: with no agonist, blocked
    closed states cannot reopen, so unblocked and trapped states form separate closed classes
    and "the equilibrium" is undefined.  Channels that have not opened hold no drug, so the
    start is the equilibrium of the unblocked states (names without ``·``, as built by
    :func:`ketacore.block`) on their own, and the limit of ``p(t)`` from there under the full
    conditions (:func:`equilibrium` with ``initial=``) -- what an experiment that applies the
    drug at rest before stimulating produces.

    A blocker with a route onto shut channels makes the equilibrium unique again, and the rest
    state is then that of an indefinite soak: the library ketamine and memantine carry the slow
    closed route that balances their escape (``closed_route="balanced"``), so at rest in drug,
    without agonist, a fraction [B]/(K_B + [B]) of the channels is blocked (ketamine 1 µM at
    −70 mV: 57 %, reached with τ ≈ 7 min).  For a drug-naive start give the drug-free
    conditions (or a state) as the ``initial`` of :func:`ketacore.solve` /
    :func:`ketacore.simulate`, or use the escape-only blocker
    (``kc.blockers.get("ketamine").replace(closed_route=None)``).

    Parameters
    ----------
    scheme : Scheme or str
        A scheme (or a library model name).
    **conditions
        V (V), temperature (K), concentrations (M).

    Returns
    -------
    ndarray, shape (K,)
        Occupancies (dimensionless, summing to 1).

    Raises
    ------
    ValueError
        No unique equilibrium and the scheme has no blocked (``·``) states, or the unblocked
        states alone have no unique equilibrium either.

    References
    ----------
    Colquhoun D, Hawkes AG (1995). A Q-matrix cookbook. In: Sakmann B, Neher E (eds)
    Single-Channel Recording, 2nd ed. Plenum, New York, ch. 20 [CH95] (equilibrium
    occupancies); Norris JR (1997). Markov Chains. Cambridge University Press, sec. 3.3
    (absorption probabilities, for the limit from drug-free rest).
    doi:10.1017/CBO9780511810633 (DOI not independently verified)
    """
    scheme = _model_or_name(scheme)
    if not _is_scheme(scheme):
        raise TypeError(f"rest_state needs a Scheme (its state names mark the blocked states), "
                        f"got {type(scheme).__name__}")
    m = _resolve(scheme, conditions)
    try:
        return _equilibrium_q(m.Q)
    except NoUniqueEquilibrium as e:
        names = m.states
        free = np.array(["·" not in n for n in names])
        if free.all() or not free.any():
            raise
        Qf = m.Q[np.ix_(free, free)].copy()  # the unblocked states' own transitions
        np.fill_diagonal(Qf, 0.0)
        np.fill_diagonal(Qf, -Qf.sum(axis=1))
        try:
            pf = _equilibrium_q(Qf)
        except NoUniqueEquilibrium:
            raise e from None
        p0 = np.zeros(len(names))
        p0[free] = pf
        return _limit_q(m.Q, p0)


class _Defective(ValueError):
    """The sub-generator has no (accurate) eigendecomposition: it is defective or nearly so
    (a repeated rate of a mechanism without microscopic reversibility, e.g. an irreversible
    chain of equal rates), so its matrix exponential has ``t^j exp(-lam t)`` terms."""


def _merge(lams: np.ndarray, mats: np.ndarray):
    """Merge components with equal eigenvalues (relative MERGE_RTOL) of *one* matrix: the
    spectral matrices of a degenerate eigenvalue are summed.  (Never used across two matrices,
    e.g. the two terms of :func:`_between_bursts`: see :func:`_merge_lossless`.)"""
    order = np.lexsort((np.imag(lams), np.real(lams)))
    lams, mats = lams[order], mats[order]
    out_l, out_m = [], []
    for lam, mat in zip(lams, mats):
        if out_l and abs(lam - out_l[-1]) <= MERGE_RTOL * max(abs(lam), abs(out_l[-1])):
            out_m[-1] = out_m[-1] + mat
        else:
            out_l.append(lam)
            out_m.append(mat)
    return np.array(out_l), np.array(out_m)


def _merge_lossless(lams: np.ndarray, areas: np.ndarray):
    """Merge mixture components (rates ``lams``, areas) only where merging is lossless to
    rounding: a component joins its neighbour when the rates coincide (MERGE_RTOL) and
    ``|lam_j - lam_i| / lam_i * min(|a_i|, |a_j|) <= AREA_RTOL * sum |a|``, which bounds the change of the survival function (by ``|a_j|
    |dlam| / (e lam)``) and of the pdf (by ``|a_j| |dlam|``, relative to ``lam sum |a|``).

    This is the merge for components of *different* spectra, e.g. the two terms of the
    between-burst pdf, whose near-equal rates (19001.18 s^-1 for CH82 at 10 nM, 1e-9 apart)
    carry large areas of opposite sign: summing the areas at a common rate (:func:`_merge`'s
    rule) destroys their exact cancellation at t = 0 (an error of ``|a| |dlam|``, up to 6e-4
    of the peak pdf).  Exactly shared rates (a mode of both terms) are still merged, and
    their cancelled area then dropped (AREA_RTOL)."""
    lams, areas = np.asarray(lams), np.asarray(areas)
    order = np.lexsort((np.imag(lams), np.real(lams)))
    lams, areas = lams[order], areas[order]
    tol = AREA_RTOL * float(np.abs(areas).sum())
    out_l, out_a = [], []
    for lam, a in zip(lams, areas):
        if out_l:
            rel = abs(lam - out_l[-1]) / max(abs(lam), abs(out_l[-1]), 1e-300)
            if rel <= MERGE_RTOL and rel * min(abs(a), abs(out_a[-1])) <= tol:
                if abs(a) > abs(out_a[-1]):  # keep the rate of the larger area
                    out_l[-1] = lam
                out_a[-1] = out_a[-1] + a
                continue
        out_l.append(lam)
        out_a.append(a)
    return np.array(out_l), np.array(out_a)


def _dirichlet_rayleigh(M: np.ndarray, d: np.ndarray, V: np.ndarray) -> np.ndarray:
    """The eigenvalues of the symmetric path, as Rayleigh quotients of ``eigh``'s eigenvectors
    (the columns of ``V``) written as sums of non-negative terms.

    ``eigh`` returns each eigenvalue to an *absolute* ``~eps ||M||``, so a slow rate loses
    ``log10(||M|| / lam)`` digits to the cancellation between the diagonal and the
    off-diagonal rates: CH82's slowest between-burst rate at 1 nM (7.6e-4 s^-1, ``||M||``
    ~2e4 s^-1) came out 1.1e-9 relative off the 50-digit value (its area too, so the mixture
    total was 1 + 1.1e-9), though the rates determine it to ~1e-15.  With ``y = x / sqrt(d)``
    (the right eigenvector of M), ``e = M u`` (the rates out of the class, >= 0), the
    equilibrium fluxes ``f_ij = -d_i M_ij`` (>= 0), ``fbar``/``dlt`` their mean/half
    difference over i < j (``dlt`` = 0 for exact detailed balance),
    ``x' Ssym x = sum_i e_i x_i^2 + sum_{i<j} fbar_ij (y_i - y_j)^2 + dlt_ij (y_i^2 - y_j^2)``
    exactly (x a column of V), every term but the ``dlt`` ones (at most REVERSIBILITY_RTOL of
    ``fbar``) >= 0: no cancellation, so each eigenvalue is as accurate as the rates allow.
    The Rayleigh quotient's error is second order in ``eigh``'s eigenvector error; its
    rounding, with the differences ``y_i - y_j`` rounded to ``~eps |y|``, is
    ``<~ eps (2 k + 6 sqrt(||M||_inf / lam))`` relative (Cauchy-Schwarz on
    ``sum fbar |y_i - y_j| |y|``).  Measured against 40-digit eigenvalues over the
    reversible library models' open and shut classes (1 nM to 1 mM): <= 6e-16 relative, where
    ``eigh`` alone was off by up to 1.2e-7 (destexhe1998_ampa at 1 nM)."""
    e = np.array([math.fsum(row) for row in M])  # rates out of the class (exact row sums)
    Y = V / np.sqrt(d)[:, None]
    F = -d[:, None] * M                           # off the diagonal: fluxes d_i q_ij >= 0
    i, j = np.nonzero(np.triu(F + F.T, 1))        # the connected pairs, i < j
    fij, fji = F[i, j], F[j, i]
    D = Y[i] - Y[j]
    q = (e @ V ** 2 + (0.5 * (fij + fji)) @ D ** 2
         + (0.5 * (fij - fji)) @ (D * (Y[i] + Y[j])))
    return q / (V ** 2).sum(axis=0)


def _spectral(M: np.ndarray, d: Optional[np.ndarray] = None, *, path: bool = False):
    """Spectral expansion M = sum_m lam_m A_m.

    Returns (lam, A) with lam shape (n,), A shape (n, k, k), degenerate
    eigenvalues merged. ``d`` are positive weights such that diag(d) M is
    symmetric when the mechanism is reversible; then eigh is used.  With ``path`` also
    return whether it was (True: symmetric, always accurate; False: general ``eig``, whose
    results the callers check, :func:`_expansion_accurate`, where a (nearly) defective M
    would spoil them).
    Raises :class:`_Defective` (a ValueError) when no accurate expansion exists.
    """
    k = M.shape[0]
    if d is not None and d.shape == (k,) and np.all(d > 0):
        r = np.sqrt(d)
        S = (r[:, None] * M) / r[None, :]
        asym = np.abs(S - S.T)
        if np.all(asym <= REVERSIBILITY_RTOL * np.maximum(np.abs(S), np.abs(S.T)) + 1e-300):
            lam, V = np.linalg.eigh(0.5 * (S + S.T))
            lam = _dirichlet_rayleigh(M, d, V)
            X = V / r[:, None]          # right eigenvectors of M
            Y = V * r[:, None]          # left eigenvectors of M (columns)
            A = np.einsum("im,jm->mij", X, Y)
            lam, A = _merge(lam, A)
            return (lam, A, True) if path else (lam, A)
    lam, X = np.linalg.eig(M)
    try:
        Yt = np.linalg.inv(X)
    except np.linalg.LinAlgError:
        raise _Defective("matrix is defective (eigenvectors not independent): no spectral "
                         "expansion as a sum of exponentials exists") from None
    recon = (X * lam) @ Yt
    scale = max(np.abs(M).max(), 1e-300)
    if not np.abs(recon - M).max() <= 1e-8 * scale:
        raise _Defective("matrix is (nearly) defective: its eigen-decomposition does not "
                         "reconstruct it to 1e-8, so no accurate spectral expansion exists")
    A = np.einsum("im,mj->mij", X, Yt)
    # drop negligible imaginary parts
    if np.all(np.abs(np.imag(lam)) <= 1e-12 * max(np.abs(lam).max(), 1e-300)):
        lam = np.real(lam)
        A = np.real(A)
    lam, A = _merge(lam, A)
    return (lam, A, False) if path else (lam, A)


def partition(Q, A) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Partition Q into blocks for a class of states A and its complement F.

    Parameters
    ----------
    Q : (K, K) array_like
        Generator (s^-1).
    A : sequence of int
        Indices of the class, in the order wanted for the A blocks. F is the
        complement in ascending order.

    Returns
    -------
    Q_AA, Q_AF, Q_FA, Q_FF : ndarray
        The blocks (s^-1).

    References
    ----------
    Colquhoun D, Hawkes AG (1982). On the stochastic properties of bursts of single ion
    channel openings and of clusters of bursts. Phil Trans R Soc Lond B 300:1-59.
    doi:10.1098/rstb.1982.0156 (the partitioned Q); Colquhoun D, Hawkes AG (1995). A Q-matrix
    cookbook. In: Sakmann B, Neher E (eds) Single-Channel Recording, 2nd ed. Plenum, New
    York, ch. 20.
    """
    Q = validate_q(Q)
    k = Q.shape[0]
    a = np.asarray(list(A) if not isinstance(A, (int, np.integer)) else [A])
    if a.size == 0:
        raise ValueError("A is empty")
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        raise TypeError("A must be a sequence of integer state indices")
    if np.any((a < 0) | (a >= k)):
        raise ValueError(f"A has an index outside 0..{k - 1}")
    if len(set(a.tolist())) != a.size:
        raise ValueError("A has duplicate indices")
    if a.size == k:
        raise ValueError("A contains every state; F would be empty")
    f = np.array([i for i in range(k) if i not in set(a.tolist())], dtype=int)
    return Q[np.ix_(a, a)], Q[np.ix_(a, f)], Q[np.ix_(f, a)], Q[np.ix_(f, f)]


#: Tolerance policy of the check of every general-``eig`` (no microscopic reversibility)
#: spectral expansion against matrix exponentials, shared by :func:`dwell_times`,
#: :func:`first_latency`, the :func:`bursts` distributions and :func:`relaxation`
#: (:func:`_expansion_accurate`): the expansion is kept when it agrees with the exact matrix
#: form at every check time to this fraction of the size of the quantity -- the largest
#: ``|pdf|`` at the check times for a duration distribution, the total probability (1) for
#: occupancies -- plus the expm's own rounding (:data:`_EXPM_ERR`); otherwise the exact matrix
#: form (:class:`PhaseType`, a matrix-form :class:`Relaxation`) is returned.  1e-7 is far above
#: what an accurate eigendecomposition of the composed schemes leaves (up to a few 1e-10 of
#: the peak for erreger2005_2a/2b + ketamine/memantine first latencies, which a tighter 1e-10
#: wrongly sent to the matrix form, and 3.5e-9 for the erreger2005_2a + MK-801 relaxation at
#: rest) and is what a nearly defective sub-generator exceeds: the first latency of an
#: irreversible chain of rates 100 and 100 (1 + eps) s^-1 is a mixture accurate to 5e-10 of
#: the peak at eps = 1e-6, to 1.1e-7 at eps = 1e-8 (the boundary), and the exact matrix form
#: from eps = 3e-9 down to 0 (Erlang).  The number of openings per burst (a mixture of
#: geometrics) is held to the same fraction of its peak pmf, against exact matrix powers
#: (:func:`_openings_accurate`; otherwise the exact :class:`DiscretePhaseType`).
SPECTRAL_CHECK_RTOL = 1e-7
#: Rounding of expm(M t) relative to its size, per unit of ``||M||_1 t`` (scaling and squaring
#: accumulates ~eps per squaring; measured ~2e-17 for a 26-state composed scheme at
#: ``||M t|| = 1e7``, where it reached 2.6e-10): a generous 64 eps.
_EXPM_ERR = 64 * np.finfo(float).eps

def _expansion_accurate(G: np.ndarray, start: np.ndarray, end: Optional[np.ndarray], approx,
                        lam: np.ndarray, scale: Optional[float] = None) -> bool:
    """Whether a spectral expansion of ``start expm(G t) end`` (``end`` None: the row vector
    ``start expm(G t)``) is accurate: the one check of every eig-path expansion
    (:data:`SPECTRAL_CHECK_RTOL`).

    ``approx(t)`` evaluates the expansion at the times ``t`` (shape (n,), or (n, k) without
    ``end``); ``lam`` are its rates (s^-1, any sign), which place the check times: t = 0 and
    ``t_j = 2^j t_1`` from ``t_1 = 0.3 / max|lam|`` to at least ``3 / min|lam|`` -- every
    factor of 2 over the range of the time constants, so no component escapes the check.  The
    exact values come from *one* matrix exponential, ``expm(G t_1)``, squared repeatedly
    (``expm(G 2t) = expm(G t)^2``, which is how scaling and squaring reaches ``expm(G t_j)``
    anyway, so the rounding is that of one expm; :data:`_EXPM_ERR`), instead of one expm per
    check time.  ``scale`` is the size of the quantity (default: the largest ``|exact|``).
    """
    rates = np.abs(lam[np.abs(lam) > 0])
    norm = float(np.abs(G).sum(axis=0).max())
    rows = [start]                          # start expm(G t) at t = 0, t_1, 2 t_1, ...
    t = np.zeros(1)
    if rates.size:
        t1 = 0.3 / float(rates.max())
        # n <= ~2100 doublings even for rates spanning the whole double range
        n = max(int(math.ceil(math.log2(10.0) + math.log2(float(rates.max()))
                              - math.log2(float(rates.min())))), 0)
        E = _expm(G * t1)
        rows.append(start @ E)
        for _ in range(n):
            E = E @ E
            rows.append(start @ E)
        t = np.concatenate((t, t1 * np.exp2(np.arange(n + 1.0))))
    exact = np.array(rows)
    if end is not None:
        exact = exact @ end
    spec = np.asarray(approx(t))
    if scale is None:
        scale = max(float(np.abs(exact).max()), 1e-300)
    err = np.abs(spec - exact)
    if err.ndim > 1:
        err = err.max(axis=1)
    tol = (SPECTRAL_CHECK_RTOL + _EXPM_ERR * norm * t) * scale
    return bool(np.all(err <= tol))


#: bursts: the openings-per-burst check compares every count r up to this one, then windows
#: at every doubling of r.  Checking every r out to the tail cost 24 ms per bursts() call at
#: 1e4 openings per burst and 86 ms at 1e6 (against ~2.5 ms for the rest of bursts()).
_OPENINGS_DENSE = 4096


def _openings_accurate(T: np.ndarray, start: np.ndarray, exit_: np.ndarray,
                       mix: GeometricMixture) -> bool:
    """Whether the geometric mixture ``mix`` of a discrete distribution ``start T^(r-1) exit``
    (the openings per burst: ``phi_b``, ``G_AB G_BA``, ``e_b``) is accurate: the discrete
    counterpart of :func:`_expansion_accurate`, with the same policy
    (:data:`SPECTRAL_CHECK_RTOL` of the peak).

    The exact pmf ``start T^(r-1) exit`` is computed by matrix powers (:func:`_power_rows`;
    products of non-negative matrices, accurate to a relative ~ r k eps) at *every* r = 1..R,
    in blocks of consecutive r (64 to 4096 at a time) up to :data:`_OPENINGS_DENSE`, and past it
    in windows of 256 consecutive r at every doubling of r (as :func:`_expansion_accurate`
    samples every doubling of t: both sides are sums of geometric terms, smooth in r there), and ``mix``
    must match it to ``(SPECTRAL_CHECK_RTOL + k eps r) * peak`` (the second term the matrix
    powers' own rounding) with ``peak`` the largest exact pmf.  R is where what is left
    beyond it cannot matter: the exact tail mass ``P(R > r) = |start T^r| u`` plus a bound on
    the mixture's, ``sum |w| |rho|^r / (1 - |rho|)``, is at most ``SPECTRAL_CHECK_RTOL / 2`` of
    the peak, so past R the two pmfs differ by less than the tolerance too.  (A mixture with
    some ``|rho| >= 1`` never decays: inaccurate.)  ``G_AB G_BA`` has no symmetric (eigh)
    path in :func:`bursts`, so the check is made whatever the mechanism, reversible or not;
    for a mechanism whose mixture is accurate it changes nothing."""
    rho = np.abs(mix.rhos)
    w = np.abs(mix.weights)
    if rho.size and not np.all(rho < 1.0):
        return False
    k = start.size
    eps = np.finfo(float).eps
    tol = SPECTRAL_CHECK_RTOL
    row = np.asarray(start, float)          # start T^s0
    s0, size, peak, worst = 0, 64, 0.0, 0.0
    while True:
        rows = np.concatenate([row[None, :], _power_rows(row, T, size)])  # s0 .. s0 + size
        s = s0 + np.arange(size)
        exact = rows[:-1] @ exit_
        err = np.abs(mix.pmf(s + 1) - exact)
        peak = max(peak, float(np.abs(exact).max()))
        worst = max(worst, float((err / (tol + k * eps * (s + 1.0))).max()))
        if worst > 1.0 + 1e-9:              # more than tol x the largest possible peak (1)
            return False
        end = s0 + size                     # first r - 1 not checked
        with np.errstate(under="ignore"):
            left = float(np.abs(rows[-1]).sum()) + float((w * rho ** end / (1.0 - rho)).sum())
        if left <= 0.5 * tol * peak:
            return worst <= peak
        if end < _OPENINGS_DENSE:
            row, s0, size = rows[-1], end, min(2 * size, 4096)
        else:                               # a window of 256 at every doubling beyond
            nxt = max(2 * s0, end)
            row = rows[-1] @ np.linalg.matrix_power(T, nxt - end)
            s0, size = nxt, 256


def _reachable(M: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Mask of the states of the sub-generator ``-M`` from which ``end`` (> 0) is reachable."""
    k = M.shape[0]
    adj = (-M > 0) & ~np.eye(k, dtype=bool)   # i -> j within the class
    ok = end > 0
    while True:
        new = ok | (adj & ok[None, :]).any(axis=1)
        if np.array_equal(new, ok):
            return ok
        ok = new


def _phase_type(M: np.ndarray, start: np.ndarray, end: np.ndarray) -> PhaseType:
    """:class:`PhaseType` for ``f(t) = start expm(-M t) end``, restricted to the states that
    can reach ``end`` (the others never contribute; their start mass never finishes)."""
    keep = _reachable(M, end)
    if not keep.any():
        raise ValueError("the event never happens: no state reaches it")
    return PhaseType(start[keep], -M[np.ix_(keep, keep)], end[keep])


def _mixture_from(M: np.ndarray, start: np.ndarray, end: np.ndarray, d=None,
                  allow_zero: bool = False):
    """Mixture for f(t) = start expm(-M t) end (end already includes the exit rates).

    area_m = start A_m end / lam_m, tau_m = 1/lam_m.  ``d`` (> 0, e.g. equilibrium
    occupancies) symmetrises ``M`` when the mechanism is reversible: then ``eigh``, always
    accurate, unchecked.  Otherwise the general-``eig`` expansion is checked
    (:func:`_expansion_accurate`, :data:`SPECTRAL_CHECK_RTOL` of the peak pdf); when M has no
    accurate spectral expansion (defective, or nearly so) the exact :class:`PhaseType` form is
    returned instead.
    """
    try:
        lam, A, sym = _spectral(M, d, path=True)
    except _Defective:
        return _phase_type(M, start, end)
    w = np.einsum("i,mij,j->m", start, A, end)
    keep = np.ones(lam.size, dtype=bool)
    if allow_zero:
        tiny = 1e-12 * max(np.abs(lam).max(), 1e-300)
        zero = np.abs(lam) <= tiny
        if np.any(np.abs(w[zero]) > 1e-9 * max(np.abs(w).max(), 1e-300)):
            raise ValueError("ill-posed mixture: a zero rate carries non-zero weight")
        keep = ~zero
    elif np.any(np.abs(lam) == 0):
        raise ValueError("singular sub-generator: some states in the class can never leave it")
    lam, w = lam[keep], w[keep]
    mix = _sorted_mixture(1.0 / lam, w / lam)
    if not sym and not _expansion_accurate(-M, start, end, mix.pdf, lam):
        return _phase_type(M, start, end)
    return mix


def _rounding_level(areas) -> np.ndarray:
    """Mask of the components whose |area| is rounding noise (<= AREA_RTOL * sum |areas|);
    none when that would leave no component (e.g. an event that never happens)."""
    mag = np.abs(np.asarray(areas))
    drop = mag <= AREA_RTOL * mag.sum()
    if drop.all():
        return np.zeros(mag.shape, bool)
    return drop


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------


def equilibrium(model, *, open=None, names=None, initial=None, **conditions) -> np.ndarray:
    """Equilibrium occupancy of every state.

    Parameters
    ----------
    model : Scheme or (K, K) array_like
        A scheme (then ``**conditions`` -- V (V), temperature, concentrations
        (M) -- go to ``q_matrix``) or a generator Q in s^-1.
    open, names
        For a raw Q only: open states (indices or boolean mask) and state names.
    initial : str or array_like, optional
        A start (a state name, or occupancies of length K, ≥ 0, summing to 1): return
        ``lim p(t)`` for ``t -> inf`` from it instead.  It equals the equilibrium when that is
        unique, and is defined also when Q has several closed classes (each keeps the mass the
        start sends it).  See also :func:`rest_state`.
    **conditions
        For a scheme: V (V), temperature (K), ligand concentrations (M), passed to
        ``q_matrix``.  Refused with a raw Q.

    Returns
    -------
    ndarray, shape (K,)
        p_inf with p_inf Q = 0 and sum 1 ([CH95] Q-matrix cookbook; computed
        by GTH state reduction for full relative accuracy, see module notes).

    Raises
    ------
    ValueError
        Invalid Q or ``initial``, or (without ``initial``) no unique equilibrium (several
        closed classes; :class:`NoUniqueEquilibrium`).
    """
    m = _resolve(model, conditions, open, names)
    if initial is None:
        return _equilibrium_q(m.Q)
    k = m.Q.shape[0]
    if isinstance(initial, str):
        p0 = np.zeros(k)
        p0[_resolve_indices(initial, k, m.states, "initial")] = 1.0
    else:
        try:
            raw = np.asarray(initial)
        except (TypeError, ValueError):
            raw = np.asarray(None)
        if raw.dtype.kind not in "iuf":
            raise TypeError(f"initial must be a state name or a real occupancy vector, got "
                            f"{type(initial).__name__}")
        p0 = raw.astype(float)
        if p0.shape != (k,) or not np.all(np.isfinite(p0)) or np.any(p0 < 0) \
                or abs(p0.sum() - 1.0) > 1e-9:
            raise ValueError(f"initial must be a state name or {k} finite occupancies >= 0 "
                             f"summing to 1, got {initial!r:.80}")
    return _limit_q(m.Q, p0)


def open_probability(model, *, open=None, names=None, **conditions) -> float:
    """Equilibrium open probability, sum of p_inf over open states.

    Parameters
    ----------
    model : Scheme or (K, K) array_like
        A scheme with its ``**conditions`` (V in V, temperature in K, concentrations in M),
        or a generator Q (s^-1).
    open, names
        For a raw Q: the open states (required) and optional state names.
    **conditions
        For a scheme: V (V), temperature (K), ligand concentrations (M), passed to
        ``q_matrix``.  Refused with a raw Q.

    Returns
    -------
    float
        Po (dimensionless, in [0, 1]).

    Raises
    ------
    ValueError
        No unique equilibrium (:class:`NoUniqueEquilibrium`), or a raw Q without ``open=``.

    References
    ----------
    Colquhoun D, Hawkes AG (1995). A Q-matrix cookbook. In: Sakmann B, Neher E (eds)
    Single-Channel Recording, 2nd ed. Plenum, New York, ch. 20 [CH95].
    """
    m = _resolve(model, conditions, open, names)
    mask = m.require_open()
    return float(_equilibrium_q(m.Q)[mask].sum())


#: Concentration (M) at which :func:`is_reversible` evaluates a Scheme's ligands given as 0 or
#: not given (reversibility of a mass-action mechanism does not depend on concentrations; at
#: 0 the binding steps would vanish and read as one-way transitions).
REVERSIBILITY_NOMINAL_CONCENTRATION = 1e-6


def _kolmogorov(Q: np.ndarray, rtol: float) -> bool:
    """Microscopic reversibility of the mechanism with generator Q (see :func:`is_reversible`):
    every transition has its reverse, and potentials built along a breadth-first spanning tree
    of each connected component (``pi_j = pi_i q_ij / q_ji`` on tree edges) satisfy
    ``|pi_i q_ij - pi_j q_ji| <= rtol max(pi_i q_ij, pi_j q_ji)`` on every other edge -- which
    is Kolmogorov's criterion on the cycle basis that the non-tree edges close, hence on every
    cycle.  Potentials are carried as (mantissa, binary exponent) pairs, so chains whose
    equilibrium ratios exceed the double range neither overflow nor underflow, and each
    non-tree edge's ratio ``r = pi_i q_ij / (pi_j q_ji)`` is compared through ``s = |log2 r|``
    (finite whatever the rates, e.g. a cycle of rates 1e300 one way and 1e-300 the other):
    ``|r - 1| <= rtol max(r, 1)`` is exactly ``1 - 2^-s <= rtol``.  (Plain Python over the
    edges: a few hundred at most, where per-call numpy overhead would dominate.)"""
    k = Q.shape[0]
    off = np.array(Q, dtype=float)
    np.fill_diagonal(off, 0.0)
    ii, jj = np.nonzero(off > 0)
    if ii.size == 0:
        return True
    eidx = np.full((k, k), -1)
    eidx[ii, jj] = np.arange(ii.size)
    rev_a = eidx[jj, ii]                    # index of the reverse of each edge
    if np.any(rev_a < 0):
        return False                        # a one-way transition
    qm, qe = np.frexp(off[ii, jj])
    ii_l, jj_l, rev = ii.tolist(), jj.tolist(), rev_a.tolist()
    qm_l, qe_l = qm.tolist(), qe.tolist()
    nbrs: list = [[] for _ in range(k)]
    for n, a in enumerate(ii_l):
        nbrs[a].append(n)
    pm = [0.0] * k
    pe = [0] * k
    seen = [False] * k
    tree = [False] * len(ii_l)
    frexp = math.frexp
    for root in range(k):
        if seen[root]:
            continue
        seen[root] = True
        pm[root], pe[root] = 0.5, 1
        queue = [root]
        for u in queue:                     # grows while iterating: breadth-first
            for n in nbrs[u]:
                v = jj_l[n]
                if seen[v]:
                    continue
                r = rev[n]
                m, e = frexp(pm[u] * qm_l[n] / qm_l[r])
                pm[v], pe[v] = m, pe[u] + qe_l[n] - qe_l[r] + e
                seen[v] = True
                tree[n] = tree[r] = True
                queue.append(v)
    # every other edge (i < j): x = pi_i q_ij, y = pi_j q_ji, r = x / y, s = |log2 r|
    log2, ln2 = math.log2, math.log(2.0)
    for n, (i, j) in enumerate(zip(ii_l, jj_l)):
        if i < j and not tree[n]:
            r = rev[n]
            s = abs(log2((pm[i] * qm_l[n]) / (pm[j] * qm_l[r]))
                    + ((pe[i] + qe_l[n]) - (pe[j] + qe_l[r])))
            if not -math.expm1(-s * ln2) <= rtol:
                return False
    return True


def is_reversible(model, *, rtol: float = 1e-8, open=None, names=None, **conditions) -> bool:
    """Whether the mechanism obeys microscopic reversibility, at the given conditions.

    True when (i) every transition has its reverse (``q_ij > 0`` exactly when ``q_ji > 0``)
    and (ii) Kolmogorov's criterion holds around every cycle of the state graph: the product
    of the rates one way round equals the product the other way, to ``rtol`` (a finite number
    >= 0) [Kol36; CHS04].  Equivalently, there are potentials ``pi`` with ``pi_i q_ij =
    pi_j q_ji`` for every pair (detailed balance): ``pi`` is built along a breadth-first
    spanning tree of each connected component and every other edge is checked,
    ``|pi_i q_ij - pi_j q_ji| <= rtol * max(pi_i q_ij, pi_j q_ji)``.

    This is a property of the *mechanism* (the graph and its rates), not of its equilibrium:
    it needs no equilibrium, so transient states (an absorbing state of a raw Q) and chains
    with several closed classes (a trapped blocker at rest) are answered too, and their
    unvisited parts count.  For an irreducible Q it is the same as detailed balance of the
    equilibrium occupancies, ``p_i q_ij = p_j q_ji`` [CH95].

    A one-way transition (q_ij > 0, q_ji = 0) breaks microscopic reversibility whatever
    ``rtol``: e.g. the escape ``X·b -> X`` of a trapping blocker with ``k_escape > 0`` and no
    closed-channel entry.  The library ketamine and memantine (and their ``_mealing1999``
    variants) balance their escape by a closed route (``closed_route="balanced"``), so
    ``is_reversible(kc.block("erreger2005_2a", "ketamine", "mg"), glutamate=1e-3,
    ketamine=1e-6, mg=1e-3)`` is True.  The escape-only variant
    ``kc.blockers.get("ketamine").replace(closed_route=None)`` (same ``k_escape``,
    ``k_on_closed = 0``) is not: composed the same way at 1 mM glutamate, 1 uM ketamine,
    1 mM Mg2+, -70 mV, its escape carries a steady cycle flux (net X·ket -> X flux over the
    shut states 4.1e-5 s^-1 in all, 0.39 % of the O -> O·ket flux).

    Ligand concentrations (Scheme only): reversibility of a mass-action mechanism does not
    depend on them -- a cycle binds each ligand as often as it unbinds it, so every ``[A]``
    cancels from the ratio of its two rate products.  At zero concentration, though, the
    binding steps vanish while their unbinding steps do not, which would read as one-way
    transitions; so for a Scheme every ligand given as 0 or not given is evaluated at the
    nominal :data:`REVERSIBILITY_NOMINAL_CONCENTRATION` (1 uM) instead, and
    ``is_reversible("ch82")`` is True like ``is_reversible("ch82", agonist=1e-6)``.  (The
    other conditions -- V, temperature, non-zero concentrations -- are used as given: a
    voltage- or temperature-dependent rate may well unbalance a cycle.)  A raw Q is taken as
    it is: a zero entry is a missing transition.

    Parameters
    ----------
    model : Scheme or (K, K) array_like
        A scheme with its ``**conditions`` (V in V, temperature in K, concentrations in M;
        ligands at 0 or not given are evaluated at 1 uM, above) or a generator Q (s^-1).
    rtol : float
        Relative tolerance on each cycle's balance, finite and >= 0.
    open, names
        For a raw Q (not used by the test; accepted as by the other functions).
    **conditions
        For a scheme: V (V), temperature (K), ligand concentrations (M; 0 or not given is
        evaluated at 1 uM, above), passed to ``q_matrix``.  Refused with a raw Q.

    Returns
    -------
    bool

    References
    ----------
    .. [Kol36] Kolmogoroff A (1936). Zur Theorie der Markoffschen Ketten. Math Ann
       112:155-160. doi:10.1007/BF01565412 (DOI not independently verified)
    .. [CHS04] Colquhoun D, Dowsland KA, Beato M, Plested AJR (2004). How to impose
       microscopic reversibility in complex reaction mechanisms. Biophys J 86:3510-3518.
       doi:10.1529/biophysj.103.038679
    """
    rtol = _V.real("rtol", rtol, nonnegative=True)
    model = _model_or_name(model)
    if _is_scheme(model):
        conditions = dict(conditions)
        for lig in getattr(model, "ligands", ()):
            if _is_zero_concentration(conditions.get(lig)):
                conditions[lig] = REVERSIBILITY_NOMINAL_CONCENTRATION
    m = _resolve(model, conditions, open, names)
    return _kolmogorov(m.Q, rtol)


def _is_zero_concentration(c) -> bool:
    """A ligand concentration given as 0 or not given (None); anything else (including what
    ``q_matrix`` will refuse) is passed on as it is."""
    if c is None:
        return True
    try:
        return float(c) == 0.0
    except (TypeError, ValueError):
        return False


def _initial_vector(initial, m: _Model, conditions) -> np.ndarray:
    k = m.k
    if initial is None:
        if m.scheme is None:
            raise ValueError("initial= is required with a raw Q: a state (a name given with "
                             "names=, or an index), or an occupancy vector of length "
                             f"{k} (>= 0, summing to 1); the other starts -- a dict of "
                             "conditions whose equilibrium is the start, or None for a jump "
                             "from no ligand -- need a scheme")
        keep = {c: v for c, v in conditions.items() if c in _NONLIGAND_CONDITIONS}
        return _equilibrium_q(validate_q(m.scheme.q_matrix(**keep)))
    if isinstance(initial, Mapping):
        if m.scheme is None:
            raise TypeError("initial given as conditions needs a scheme, not a raw Q")
        return _equilibrium_q(validate_q(m.scheme.q_matrix(**dict(initial))))
    if isinstance(initial, (str, int, np.integer)):
        i = _resolve_indices(initial, k, m.states, "initial")[0]
        p = np.zeros(k)
        p[i] = 1.0
        return p
    p = _numeric_array("initial", initial)
    if np.iscomplexobj(p):
        raise TypeError("initial occupancies must be real")
    p = p.astype(float)
    if p.shape != (k,):
        raise ValueError(f"initial occupancy vector must have shape ({k},), got {p.shape}")
    if np.any(p < 0) or not np.isfinite(p).all() or abs(p.sum() - 1.0) > 1e-9:
        raise ValueError("initial occupancies must be >= 0 and sum to 1")
    return p


def relaxation(model, initial=None, *, open=None, names=None, **conditions) -> Relaxation:
    """Relaxation of occupancies (and Po) from an initial distribution [CH77].

    Spectral expansion of p(t) = p(0) expm(Q t) = p_inf + sum_m p(0) A_m
    exp(lambda_m t), with time constants tau_m = -1/lambda_m for the non-zero
    eigenvalues of Q.

    Parameters
    ----------
    model : Scheme or (K, K) array_like
        Conditions *after* the step (V in V, concentrations in M).
    initial : None, str, int, array_like or dict
        Occupancy at t = 0: a state name/index (all channels there), a length-K
        vector, or a dict of conditions (scheme only) whose equilibrium is the
        start. None (scheme only) means the equilibrium with every ligand at
        zero and the same V/temperature, i.e. a jump from no ligand.
    open, names
        For a raw Q: the open states (indices, names or boolean mask; needed for the Po
        amplitudes) and optional state names (so that ``initial`` can be a name).  With a
        scheme, ``open`` overrides the open states its conductance gives; ``names`` is
        refused (a scheme names its own states).
    **conditions
        For a scheme: the conditions after the step, passed to ``q_matrix`` -- V (V),
        temperature (K), ligand concentrations (M).  Refused with a raw Q.

    Returns
    -------
    Relaxation
        Time constants (s), amplitudes per state and for Po.  ``equilibrium`` is the
        limit of p(t): the equilibrium when the conditions after the step have a unique
        one, else -- several closed classes of states, e.g. trapped and unblocked channels
        during the wash of a trapping blocker -- the limit from ``initial``, as
        :func:`equilibrium` with ``initial=`` gives it.

    Notes
    -----
    Accuracy on stiff schemes: the eigenvalues of Q carry an absolute error of about
    ``eps * max|Q_ii|`` (eps = 2.2e-16), so a time constant far slower than the fastest rate
    loses relative accuracy in proportion.  With rates spanning 1e-3 to 1e7 s^-1, a 1000 s
    time constant and p(t) rebuilt from the expansion are good to ~1e-6 (relative), not to
    rounding.  :func:`ketacore.solve` is exact to rounding at every sample and is the tool for
    time courses of such schemes; :func:`equilibrium` (GTH elimination) stays accurate.
    """
    m = _resolve(model, conditions, open, names)
    p0 = _initial_vector(initial, m, conditions)
    try:
        pinf = _equilibrium_q(m.Q)
        d = pinf
    except NoUniqueEquilibrium:
        # several closed classes (e.g. the wash of a trapping blocker: trapped and unblocked
        # channels never meet without agonist): p(t) still tends to a limit, which depends on
        # p(0) -- the mass each class keeps or absorbs (as equilibrium(..., initial=))
        pinf = _limit_q(m.Q, p0)
        d = None
    try:
        lam, A, sym = _spectral(m.Q, d, path=True)
    except _Defective:
        return _exact_relaxation(m, p0, pinf)
    amps = np.einsum("i,mij->mj", p0, A)
    # the zero eigenvalue (merged over the closed classes) carries p_inf
    tiny = 1e-12 * max(np.abs(lam).max(), 1e-300)
    nz = np.abs(lam) > tiny
    if np.count_nonzero(~nz) != 1:
        raise ValueError("Q must have a zero eigenvalue (a generator's rows sum to 0)")
    lam, amps = lam[nz], amps[nz]
    taus = -1.0 / lam
    order = np.argsort(np.real(taus), kind="stable")
    taus, amps = taus[order], amps[order]
    # general eig: a nearly defective Q gives inaccurate amplitudes; checked as every
    # eig-path expansion (_expansion_accurate), on occupancies (scale 1, total probability)
    if not sym and not _expansion_accurate(
            m.Q, p0, None, lambda t: pinf + np.real(_decay(t, taus) @ amps), lam, scale=1.0):
        return _exact_relaxation(m, p0, pinf)
    po_amps = None if m.open_mask is None else amps[:, m.open_mask].sum(axis=1)
    return Relaxation(taus=_frozen_array(taus), amplitudes=_frozen_array(amps),
                      popen_amplitudes=None if po_amps is None else _frozen_array(po_amps),
                      equilibrium=_frozen_array(pinf), initial=_frozen_array(p0),
                      states=m.states,
                      open_mask=None if m.open_mask is None else _frozen_array(m.open_mask))


def _exact_relaxation(m: _Model, p0: np.ndarray, pinf: np.ndarray) -> Relaxation:
    """Relaxation of a Q with no accurate spectral expansion: matrix form (see
    :class:`Relaxation`); ``taus`` the distinct non-zero eigenvalues (clustered at 1e-6,
    the accuracy of a repeated eigenvalue of a defective matrix is ~sqrt(eps))."""
    lam = np.linalg.eigvals(m.Q)
    scale = max(float(np.abs(lam).max()), 1e-300)
    lam = lam[np.abs(lam) > 1e-9 * scale]
    if lam.size and np.all(np.abs(np.imag(lam)) <= 1e-6 * scale):
        lam = np.real(lam)
    lam = lam[np.lexsort((np.imag(lam), np.real(lam)))]
    groups: list = []
    for x in lam:
        if groups and abs(x - groups[-1][-1]) <= 1e-6 * max(abs(x), 1e-300):
            groups[-1].append(x)
        else:
            groups.append([x])
    taus = np.array([-1.0 / np.mean(g) for g in groups])
    taus = taus[np.argsort(np.real(taus), kind="stable")]
    return Relaxation(taus=_frozen_array(taus), amplitudes=None, popen_amplitudes=None,
                      equilibrium=_frozen_array(pinf), initial=_frozen_array(p0),
                      states=m.states,
                      open_mask=None if m.open_mask is None else _frozen_array(m.open_mask),
                      generator=_frozen_array(m.Q))


def _entry_vector(Q, p, a_idx, f_idx, hint: str = "") -> np.ndarray:
    """phi_A = p_F Q_FA / (p_F Q_FA u_A), entry into A at equilibrium [CH81]."""
    flux = p[f_idx] @ Q[np.ix_(f_idx, a_idx)]
    tot = flux.sum()
    if not tot > 0:
        raise ValueError("the class is never entered at equilibrium (zero entry flux)" + hint)
    return flux / tot


def dwell_times(model, states="open", *, open=None, names=None,
                **conditions) -> Union[ExponentialMixture, PhaseType]:
    """Distribution of sojourns in a class of states, at equilibrium [CH81].

    ``f(t) = phi_A expm(Q_AA t) (-Q_AA) u_A`` with ``phi_A`` the equilibrium
    entry vector ``p_F Q_FA / (p_F Q_FA u_A)``; a mixture of k_A exponentials
    with rates the eigenvalues of ``-Q_AA``. Mean = ``phi_A (-Q_AA)^-1 u_A``.
    This is the ideal (no missed events) distribution; a record resolved at ``t_res``
    (:meth:`ketacore.analysis.Record.resolve`) follows :func:`apparent_dwell_times` instead.

    Parameters
    ----------
    model : Scheme or (K, K) array_like
        A scheme (with its ``**conditions``) or a generator Q (s^-1).
    states : "open", "shut" (or "closed"), or names/indices, or boolean mask
        The class A. Any partition into A and its complement is allowed.
    open, names
        For a raw Q: the open states (indices, names or boolean mask; needed for
        "open"/"shut") and optional state names.  With a scheme, ``open`` overrides the open
        states its conductance gives.
    **conditions
        For a scheme: V (V), temperature (K), ligand concentrations (M), passed to
        ``q_matrix``.  Refused with a raw Q.

    Returns
    -------
    ExponentialMixture or PhaseType
        taus (s), areas, mean (s), pdf/cdf/survival/sample; a :class:`PhaseType` (exact
        matrix form, the same methods) in the rare case that ``Q_AA`` has no accurate
        spectral expansion (defective or nearly so: a repeated rate without microscopic
        reversibility).

    Notes
    -----
    The mixture is exact: one component per distinct eigenvalue of ``-Q_AA``; eigenvalues
    that coincide (to ``MERGE_RTOL`` = 1e-9 relative) are one component with the summed
    area, and components whose area is rounding noise (``|area| <= AREA_RTOL * sum |areas|``,
    1e-13, e.g. modes that the entry and exit vectors cannot reach) are dropped, which
    changes ``survival`` by at most 1e-13 of ``sum |areas|`` each.

    Composed schemes (:func:`ketacore.block`) have many components, among them pairs of
    nearly equal time constants and tiny, even negative, areas.  These are real, not
    rounding: every gating state has a blocked twin whose sojourns relax at nearly the
    rates of the unblocked arm (e.g. kampa2004 + the library ketamine, shut times at 1 mM
    glutamate, 1 uM ketamine, 1 mM Mg2+, -70 mV: 16.8243 and 16.8250 ms, 3.9e-5 apart, areas
    +5.6e-7 and +3.5e-7, both agreeing with 50-digit arithmetic to 1.3e-16 absolute).  Without
    microscopic reversibility (see :func:`is_reversible`) areas need not be positive: with
    the escape-only ketamine ``kc.blockers.get("ketamine").replace(closed_route=None)`` (a
    one-way escape ``X·b -> X``) the same pair is 16.8247 and 16.8249 ms, 1.2e-5 apart,
    areas -3.4e-10 and +9.1e-7; and kampa2004's own Mg2+ cycles are not in detailed balance,
    so even with the library ketamine 8 of the 19 areas are negative at 1 uM glutamate
    (down to -2.8e-6).  For a shorter approximate mixture with a stated error bound, use
    :meth:`ExponentialMixture.simplify`.
    """
    m = _resolve(model, conditions, open, names)
    a = _class_indices(states, m, "states")
    f = np.setdiff1d(np.arange(m.k), a)
    p = _equilibrium_q(m.Q)
    phi = _entry_vector(m.Q, p, a, f, m.never_entered_hint())
    QAA = m.Q[np.ix_(a, a)]
    end = -QAA @ np.ones(a.size)  # total exit rate to F from each state of A
    return _mixture_from(-QAA, phi, end, d=p[a])



# ---------------------------------------------------------------------------
# missed events: apparent (e-)dwell times with a time resolution [HJC90, HJC92]
# ---------------------------------------------------------------------------

#: Largest time resolution accepted by :func:`apparent_dwell_times` (s).  Recording resolutions
#: are 10-500 us; a value of 1 s or more is almost always microseconds passed as seconds.
MAX_T_RES = 1.0
#: Largest number of t_res-long pieces on which the exact HJC pdf may be used.
MAX_EXACT_INTERVALS = 10
#: Largest ``t_res * r_max`` (``r_max = max_i |q_ii|``, the fastest rate of leaving a state)
#: for which :func:`apparent_dwell_times` and :func:`hjc_loglik` compute: ``ln(1/eps) =
#: 52 ln 2 = 36.04`` (eps the double-precision unit roundoff 2^-52).  Why this product: the
#: missed-events machinery needs (i) the fraction of sojourns in a class that last
#: ``>= t_res`` -- as small as ``exp(-r_max t_res)`` -- against 1 (the start vector's
#: ``I - G_AF (I - exp(Q_FF t_res)) G_FA`` and the root of H(0) nearest 0), and (ii) in the
#: asymptotic root search, ``H_AA(s) = Q_AA + Q_AF [int_0^t_res e^(-s t) e^(Q_FF t) dt] Q_FA``
#: down to ``s ~ lambda_min(Q_AA) ~ -r_max``, whose entries grow like ``exp(r_max t_res)``
#: while its eigenvalues must be found to the scale of Q_AA.  Beyond ``exp(x) = 1/eps`` both
#: are lost in rounding: the root bracket fails, H(0) loses its negative eigenvalue, or the
#: start vector's chain falls apart (CH82 failed so from ``x`` ~ 53 at 100 uM agonist, t_res
#: 1 ms, to ~ 500 at 0.1 uM, t_res 25 ms, with a different error each time, and its fastest
#: root loses digits before that: 5e-8 relative at ``x`` = 50); below it, CH82's likelihood
#: agreed with a 50-digit (mpmath) evaluation of the exact HJC formula to 2e-11 and its roots
#: with 50-digit roots of det W(s) to 1e-12 (checked once during development, not a test).
#: Where the limit falls (36.04 / max|q_ii|): erreger2005_2a at 1 mM glutamate 570 us;
#: with 1 mM Mg2+ block (kampa2004, block(erreger2005_2a, "mg")) 92 us at -100 mV and 26 us
#: at -120 mV, where the Mg2+ rates are fastest; CH82 at 1 mM agonist (5e5 s^-1) 72 us.
MAX_T_RES_RATE = 52 * math.log(2.0)


def _phi1(z):
    """``int_0^1 exp(z x) dx = expm1(z)/z`` (1 at z = 0), elementwise, real or complex."""
    z = np.asarray(z)
    small = np.abs(z) < 1e-8
    zs = np.where(small, 1.0, z)
    with np.errstate(over="ignore", invalid="ignore"):
        big = np.expm1(zs) / zs
    return np.where(small, 1.0 + z / 2.0, big)


def _psi1(z):
    """``int_0^1 x exp(z x) dx = ((z - 1) e^z + 1) / z^2`` (1/2 at z = 0), elementwise; the
    Taylor series ``sum z^n / (n! (n + 2))`` for |z| < 1/2, where the closed form cancels."""
    z = np.asarray(z)
    out = np.empty(z.shape, dtype=np.result_type(z, float))
    small = np.abs(z) < 0.5
    zs = z[small]
    acc = np.zeros_like(zs)
    term = np.ones_like(zs)
    for n in range(24):  # |z|^n / n! < 1e-30 by n = 24 for |z| < 1/2
        acc = acc + term / (n + 2)
        term = term * zs / (n + 1)
    out[small] = acc
    zb = z[~small]
    with np.errstate(over="ignore", invalid="ignore"):
        out[~small] = ((zb - 1.0) * np.exp(zb) + 1.0) / zb ** 2
    return out


def _integral_xr_exp(r: int, lam, x):
    """``int_0^x y^r exp(-lam y) dy`` for x >= 0 (shape x.shape + lam.shape).

    Real lam > 0: ``r! P(r + 1, lam x) / lam^(r+1)`` with the regularised incomplete gamma
    function P (accurate to full relative precision also for small lam x); lam = 0:
    ``x^(r+1) / (r + 1)``; complex lam: ``r!/lam^(r+1) (1 - e^(-lam x) sum_k (lam x)^k/k!)``.
    """
    x = np.asarray(x, float)[..., None]
    lam = np.asarray(lam)
    fact = math.factorial(r)
    if np.iscomplexobj(lam):
        lx = lam * x
        part = np.zeros(lx.shape, complex)
        term = np.ones(lx.shape, complex)
        for k in range(r + 1):
            part = part + term
            term = term * lx / (k + 1)
        safe = np.where(lam == 0, 1.0, lam)
        val = fact / safe ** (r + 1) * (1.0 - np.exp(-lx) * part)
        return np.where(lam == 0, x ** (r + 1) / (r + 1), val)
    pos = lam > 0
    safe = np.where(pos, lam, 1.0)
    val = fact * special.gammainc(r + 1, safe * x) / safe ** (r + 1)
    return np.where(pos, val, x ** (r + 1) / (r + 1))


def _is_reversible_q(Q: np.ndarray, p: np.ndarray) -> bool:
    """Detailed balance of the equilibrium ``p`` (to REVERSIBILITY_RTOL): what the HJC code
    needs to symmetrise with ``D^(1/2)``, ``D = diag(p)`` -- which :class:`_HJCClass` uses
    only when also ``p > 0`` (then Q is irreducible and this equals microscopic
    reversibility of the mechanism, :func:`is_reversible`).  With transient states (p = 0) it
    is not a test of the mechanism: their one-way transitions carry no equilibrium flux."""
    F = p[:, None] * Q
    np.fill_diagonal(F, 0.0)
    return bool(np.all(np.abs(F - F.T) <= REVERSIBILITY_RTOL * np.maximum(F, F.T) + 1e-300))


# failure codes of ketacore::hjc::Status (csrc/include/ketacore/hjc.hpp)
_H0_NOT_NEGATIVE, _NO_BRACKET, _NOT_CONVERGED, _SINGULAR, _EIGEN_FAILED = 1, 2, 3, 4, 5


def _hjc_status(what: str, status: int, where: float, tau: float = 0.0) -> None:
    """Raise the ValueError of a failed asymptotic root search or projector computation."""
    if status == 0:
        return
    if status == _H0_NOT_NEGATIVE:
        raise ValueError(f"apparent_dwell_times: with t_res={tau:g} s, H(0) has an "
                         "eigenvalue >= 0 (to rounding): resolvable sojourns (>= t_res) "
                         "outside the class are too rare to end the apparent sojourns in "
                         "it, or never happen.  t_res is in seconds (50 * "
                         "ketacore.units.us)")
    if status == _NO_BRACKET:  # pragma: no cover - excluded (ketacore::hjc::Eigenvalues)
        raise ValueError("apparent_dwell_times: could not bracket the asymptotic roots of "
                         "det W(s) = 0")
    if status == _NOT_CONVERGED:
        raise ValueError(f"apparent_dwell_times: {what} did not converge at s = {where:.6g} "
                         "s^-1")
    if status == _SINGULAR:
        raise ValueError("apparent_dwell_times: singular r W'(s) c at the asymptotic "
                         f"root s = {where:.6g} s^-1")
    raise ValueError(f"apparent_dwell_times: {what}: the symmetric eigenvalue "  # pragma: no cover
                     "iteration did not converge")


class _HJCClass:
    """HJC quantities for the apparent sojourns in a class A (complement F) at dead time tau.

    Notation of [HJC90, HJC92]: ``H_AA(s) = Q_AA + Q_AF K(s) Q_FA`` with
    ``K(s) = int_0^tau exp(-s t) exp(Q_FF t) dt``, ``W(s) = s I - H_AA(s)``; the e-open
    survivor ``AR(u)`` has Laplace transform ``W(s)^-1``, and the apparent-dwell density is
    ``f(t) = phi_A AR(t - tau) Q_AF exp(Q_FF tau) u_F`` for t >= tau.
    """

    def __init__(self, Q, p, a, f, tau, reversible):
        self.Q, self.p, self.a, self.f, self.tau = Q, p, a, f, tau
        blk = lambda r, c: Q[np.ix_(r, c)]  # noqa: E731
        self.QAA, self.QAF, self.QFA, self.QFF = blk(a, a), blk(a, f), blk(f, a), blk(f, f)
        self.kA = a.size
        self.reversible = reversible and bool(np.all(p > 0))
        if self.reversible:
            # K(s) from the spectral expansion of -Q_FF (symmetrisable: eigh, orthogonal):
            # K(s) = sum_k B_k tau phi1(-(nu_k + s) tau)
            self.nu, self.B = _spectral(-self.QFF, p[f])
            if np.iscomplexobj(self.nu) or np.iscomplexobj(self.B):  # pragma: no cover
                # reversible to REVERSIBILITY_RTOL but Q_FF's own check failed by rounding:
                # take the general path
                self.reversible = False
        self.EF = _expm(self.QFF * tau)                 # exp(Q_FF tau)
        self.end = self.QAF @ self.EF @ np.ones(f.size)       # Q_AF exp(Q_FF tau) u_F
        if self.reversible:
            self.r = np.sqrt(p[a])

    def _van_loan(self, s: float):
        """(K(s), int_0^tau t exp(-s t) exp(Q_FF t) dt) from one matrix exponential
        [VL78]: for ``X = [[M, I, 0], [0, 0, I], [0, 0, 0]]``, ``M = Q_FF - s I``,
        ``expm(X tau)`` holds ``int_0^tau exp(M u) du`` and ``int_0^tau (tau - u) exp(M u) du``
        in its first block row.  Used without microscopic reversibility, where the
        eigenvectors of Q_FF may be ill-conditioned."""
        kF = self.f.size
        X = np.zeros((3 * kF, 3 * kF))
        X[:kF, :kF] = self.QFF - s * np.eye(kF)
        X[:kF, kF:2 * kF] = np.eye(kF)
        X[kF:2 * kF, 2 * kF:] = np.eye(kF)
        with np.errstate(over="ignore", invalid="ignore"):
            E = _expm(X * self.tau)
        K = E[:kF, kF:2 * kF]
        return K, self.tau * K - E[:kF, 2 * kF:]

    def K(self, s: float) -> np.ndarray:
        """``K(s) = int_0^tau exp(-s t) exp(Q_FF t) dt``."""
        if not self.reversible:
            return self._van_loan(s)[0]
        z = -(self.nu + s) * self.tau
        return np.real(np.einsum("m,mij->ij", self.tau * _phi1(z), self.B))

    def dK(self, s: float) -> np.ndarray:
        """dK/ds = -int_0^tau t exp(-s t) exp(Q_FF t) dt."""
        if not self.reversible:
            return -self._van_loan(s)[1]
        z = -(self.nu + s) * self.tau
        return -np.real(np.einsum("m,mij->ij", self.tau ** 2 * _psi1(z), self.B))

    def H(self, s: float) -> np.ndarray:
        """``H_AA(s)`` [HJC92 eq. 54]; non-finite where exp((Q_FF - s I) tau) overflows."""
        with np.errstate(over="ignore", invalid="ignore"):
            return self.QAA + self.QAF @ self.K(s) @ self.QFA

    def dW(self, s: float) -> np.ndarray:
        """W'(s) = I - H'(s) [HJC92 eq. 56]."""
        return np.eye(self.kA) - self.QAF @ self.dK(s) @ self.QFA

    def eigenvalues(self, s: float) -> np.ndarray:
        """Real eigenvalues of H(s) of a class without reversibility, ascending (+inf where
        H(s) overflows); the C++ core evaluates the symmetrised H(s) of reversible classes."""
        h = self.H(s)
        if not np.all(np.isfinite(h)):
            return np.full(self.kA, np.inf)
        mu = np.linalg.eigvals(h)
        scale = max(float(np.abs(mu).max()), 1e-300)
        # near-degenerate real eigenvalues of a non-normal matrix come out as complex pairs
        # of size ~ sqrt(eps) x scale: only larger imaginary parts are genuine
        if np.any(np.abs(mu.imag) > 1e-6 * scale):
            raise ValueError(
                "apparent_dwell_times: H(s) has complex eigenvalues at real s = "
                f"{s:.6g} s^-1, so the asymptotic HJC roots need not be real; only mechanisms "
                "whose det W(s) = 0 has real roots are supported (all that obey microscopic "
                "reversibility do)")
        return np.sort(mu.real)

    def roots(self) -> np.ndarray:
        """The kA roots of det W(s) = 0, ascending [HJC92 eqs. 52-55; JH92].

        For a reversible mechanism ``D^(1/2) H(s) D^(-1/2)`` (D the equilibrium occupancies of
        A) is symmetric and decreases with s (Loewner order), so each of its ordered
        eigenvalues mu_j(s) is continuous and non-increasing and ``mu_j(s) - s`` has exactly
        one zero, the j-th root.  Since ``H(s) >= Q_AA`` every root lies in
        ``[lambda_min(Q_AA), 0)``: each is bracketed and then found by Brent's method to
        full precision (the root-count bisection of HJCFIT/SCALCS, Frank Ball's method, needs
        no counting here because the j-th root is the zero of the j-th eigenvalue curve).
        This search runs in the C++ core (``ketacore::hjc::roots``: Jacobi eigenvalues and
        scipy's ``brentq`` steps; tests/test_hjc_core.py checks it against a numpy/scipy
        version of the same algorithm).  Without reversibility see :meth:`_roots_scan`.
        """
        if self.reversible:
            from . import _core
            status, out, where = _core.hjc_roots(*self._core_args())
            _hjc_status("root search for det W(s) = 0", status, where, self.tau)
            return out
        mu0 = self.eigenvalues(0.0)
        if not mu0.max() < 0:
            _hjc_status("", _H0_NOT_NEGATIVE, 0.0, self.tau)
        out = self._roots_scan(mu0)
        out.sort()
        # every root must be an eigenvalue of H at itself
        for s in out:
            mu = self.eigenvalues(s)
            if np.min(np.abs(mu - s)) > 1e-8 * max(abs(s), float(np.abs(mu).max())):
                _hjc_status("root search for det W(s) = 0", _NOT_CONVERGED, s)
        return out

    def _core_args(self) -> tuple:
        """Arguments of ``_core.hjc_roots`` / ``hjc_projectors`` (reversible classes)."""
        return (np.ascontiguousarray(self.QAA), np.ascontiguousarray(self.QAF),
                np.ascontiguousarray(self.QFA), np.ascontiguousarray(self.nu, dtype=float),
                np.ascontiguousarray(self.B, dtype=float), np.ascontiguousarray(self.r),
                float(self.tau))

    def _brent(self, j: int, lo: float, hi: float) -> float:
        """Zero of ``mu_j(s) - s`` in [lo, hi] with g(lo) > 0 > g(hi); an overflowing H(lo)
        (|s| t_res > ~700) is first bisected towards a finite value."""
        def g(s):
            return float(self.eigenvalues(s)[j] - s)
        glo = g(lo)
        for _ in range(200):
            if math.isfinite(glo):
                break
            mid = 0.5 * (lo + hi)
            gm = g(mid)
            if gm > 0:
                lo, glo = mid, gm
            else:
                hi = mid
        return optimize.brentq(g, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps,
                               maxiter=500)

    def _roots_scan(self, mu0: np.ndarray) -> np.ndarray:
        """Roots without microscopic reversibility.  H(s) is then not symmetrisable, but it
        is still ``Q_AA`` plus an entrywise non-negative matrix that grows as s decreases.
        Below the lowest root every real eigenvalue exceeds s: the lower end is moved down
        (doubling) until that holds, then ``mu_j(s) - s`` (ordered real parts) is sampled at
        200 points, geometric in |s| between the lower end and 1e-3 of the least negative
        eigenvalue of H(0) (and at 0), each sign change refined by Brent's method.  Exactly
        kA roots (with repeats) must be found (ValueError otherwise)."""
        kA = self.kA
        lo = 1.01 * float(np.real(np.linalg.eigvals(self.QAA)).min()) - 1.0
        for _ in range(60):
            if np.all(self.eigenvalues(lo) > lo):
                break
            lo *= 2.0
        else:
            raise ValueError("apparent_dwell_times: the asymptotic roots of det W(s) = 0 could "
                             "not be bracketed (mechanism without microscopic reversibility)")
        top = 1e-3 * float(np.abs(mu0).min())
        grid = np.concatenate((-np.geomspace(-lo, top, 200), [0.0]))
        G = self._eigenvalues_grid(grid) - grid[:, None]           # (200+1, kA)
        found = []
        for j in range(kA):
            for i in range(grid.size - 1):
                a, b = G[i, j], G[i + 1, j]
                if (a > 0 or not math.isfinite(a)) and b <= 0:
                    found.append(self._brent(j, grid[i], grid[i + 1]))
        found = np.sort(np.array(found))
        if found.size != kA:
            raise ValueError(f"apparent_dwell_times: found {found.size} real asymptotic roots "
                             f"of det W(s) = 0, expected {kA} (mechanism without microscopic "
                             "reversibility: complex roots are not supported)")
        return found

    def _eigenvalues_grid(self, grid: np.ndarray) -> np.ndarray:
        """:meth:`eigenvalues` (without reversibility) at every s of a grid, (N, kA), with the
        same bytes: the Van Loan exponentials and H(s) one by one as there, the eigenvalues of
        all finite H(s) in one batched LAPACK call (the scan's 201 points took ~35 ms one by
        one, ~90 % of it numpy call overhead)."""
        kF = self.f.size
        X = np.zeros((3 * kF, 3 * kF))
        X[:kF, kF:2 * kF] = np.eye(kF)
        X[kF:2 * kF, 2 * kF:] = np.eye(kF)
        I = np.eye(kF)
        H = np.empty((grid.size, self.kA, self.kA))
        with np.errstate(over="ignore", invalid="ignore"):
            for i, s in enumerate(grid):
                X[:kF, :kF] = self.QFF - s * I
                K = _expm(X * self.tau)[:kF, kF:2 * kF]
                H[i] = self.QAA + self.QAF @ K @ self.QFA
        out = np.full((grid.size, self.kA), np.inf)
        fin = np.all(np.isfinite(H), axis=(1, 2))
        if np.any(fin):
            mu = np.linalg.eigvals(H[fin])
            scale = np.maximum(np.abs(mu).max(axis=1), 1e-300)
            cplx = np.any(np.abs(mu.imag) > 1e-6 * scale[:, None], axis=1)
            if np.any(cplx):
                self.eigenvalues(float(grid[fin][np.argmax(cplx)]))   # raises its ValueError
            out[fin] = np.sort(mu.real, axis=1)
        return out

    def asymptotic(self, roots: np.ndarray, phi: np.ndarray):
        """Amplitudes b_j of ``f(t) ~ sum_j b_j exp(s_j (t - tau))`` [HJC92 eqs. 56-58]:
        ``b_j = phi R_j Q_AF exp(Q_FF tau) u_F`` with ``R_j = c_j r_j / (r_j W'(s_j) c_j)``,
        c_j and r_j the right and left null vectors of W(s_j) (for a root of multiplicity g,
        ``R = C (R^T W' C)^-1 R^T`` with g-column null bases).  Returns (roots, b) with
        repeated roots merged: roots within 1e-8 (relative) of each other are taken as one of
        multiplicity g (their separate null vectors would be ill-conditioned, while merging
        moves the component by at most 1e-8 of its rate)."""
        svals, Rms = self.projectors(roots)
        return svals, np.array([float(phi @ Rm @ self.end) for Rm in Rms])

    def projectors(self, roots: np.ndarray):
        """(merged roots s_j, matrices R_j (g, kA, kA)) of ``AR(u) ~ sum_j R_j exp(s_j u)``
        [HJC92 eqs. 56-58]; roots merged as described in :meth:`asymptotic`."""
        if self.reversible:
            from . import _core
            status, svals, mats, where = _core.hjc_projectors(
                *self._core_args(), np.ascontiguousarray(roots, dtype=float))
            _hjc_status("projectors", status, where)
            return svals, mats
        groups = []
        for s in roots:
            if groups and abs(s - groups[-1][-1]) <= 1e-8 * abs(s):
                groups[-1].append(s)
            else:
                groups.append([s])
        svals, mats = [], []
        for grp in groups:
            g = len(grp)
            s = float(np.mean(grp))
            h = self.H(s)
            dw = self.dW(s)
            mu, X = np.linalg.eig(h)
            mul, Y = np.linalg.eig(h.T)
            C = np.real(X[:, np.argsort(np.abs(mu - s))[:g]])
            Rt = np.real(Y[:, np.argsort(np.abs(mul - s))[:g]]).T
            M = Rt @ dw @ C
            if abs(np.linalg.det(M)) <= 1e-12 * np.abs(M).max() ** g:
                _hjc_status("", _SINGULAR, s)
            svals.append(s)
            mats.append(C @ np.linalg.solve(M, Rt))
        return np.array(svals), np.array(mats)

    def mean(self, phi: np.ndarray) -> float:
        """Exact mean apparent duration [HJC92; CHS96 eq. 3.6]: the transform of the density
        (in u = t - tau) is ``W(s)^-1 Q_AF exp(Q_FF tau) u_F`` and W(0)^-1 Q_AF exp(Q_FF tau)
        u_F = u_A, so ``mean = tau + phi W(0)^-1 W'(0) u_A`` (W(0) = -H(0),
        W'(0) = I + Q_AF [int_0^tau t exp(Q_FF t) dt] Q_FA)."""
        W0 = -self.H(0.0)
        y = self.dW(0.0) @ np.ones(self.kA)
        return float(self.tau + phi @ np.linalg.solve(W0, y))

    def K2(self) -> np.ndarray:
        """``K''(0) = int_0^tau t^2 exp(Q_FF t) dt``: from the spectral expansion of -Q_FF
        with the regularised incomplete gamma function (reversible), else from one matrix
        exponential [VL78]: for ``X`` with ``Q_FF`` and identities chained as in
        :meth:`_van_loan` but one block longer, ``expm(X tau)`` holds
        ``E_j = int_0^tau (tau - t)^(j-1) / (j-1)! exp(Q_FF t) dt`` (j = 1, 2, 3) in its first
        block row, and ``t^2 = tau^2 - 2 tau (tau - t) + (tau - t)^2`` gives
        ``tau^2 E_1 - 2 tau E_2 + 2 E_3``."""
        if self.reversible:
            nu = np.real(self.nu)
            w = _integral_xr_exp(2, np.maximum(nu, 0.0), np.array(self.tau))
            return np.real(np.einsum("m,mij->ij", w, self.B))
        kF = self.f.size
        X = np.zeros((4 * kF, 4 * kF))
        X[:kF, :kF] = self.QFF
        for j in range(3):
            X[j * kF:(j + 1) * kF, (j + 1) * kF:(j + 2) * kF] = np.eye(kF)
        E = _expm(X * self.tau)
        E1, E2, E3 = (E[:kF, j * kF:(j + 1) * kF] for j in (1, 2, 3))
        return self.tau ** 2 * E1 - 2.0 * self.tau * E2 + 2.0 * E3

    def second_moment(self, phi: np.ndarray) -> float:
        """Exact ``E[U^2]`` of the excess ``U = T - tau`` of the apparent duration T over the
        dead time: the second derivative at s = 0 of its Laplace transform
        ``phi W(s)^-1 v`` (``v = Q_AF exp(Q_FF tau) u_F``, ``W(0)^-1 v = u_A``, see
        :meth:`mean`), i.e. ``2 phi W(0)^-1 W'(0) W(0)^-1 W'(0) u_A - phi W(0)^-1 W''(0) u_A``
        with ``W''(0) = -Q_AF [int_0^tau t^2 exp(Q_FF t) dt] Q_FA`` (:meth:`K2`)."""
        W0 = -self.H(0.0)
        W1 = self.dW(0.0)
        u = np.ones(self.kA)
        y = np.linalg.solve(W0, W1 @ u)                     # W(0)^-1 W'(0) u_A
        z = 2.0 * (W1 @ y) + self.QAF @ (self.K2() @ (self.QFA @ u))
        return float(phi @ np.linalg.solve(W0, z))

    def exact_coefficients(self, lam, A, phi, n_pieces):
        """gamma[m, i, r] with ``f(tau + u) = sum_{m <= u/tau} (-1)^m sum_{i,r}
        gamma[m,i,r] (u - m tau)^r exp(-lam_i (u - m tau))`` for u < n_pieces tau [HJC90
        eqs. 3.16-3.22; HJC92 eqs. 21-22].

        ``AR(u) = sum_m (-1)^m S_m(u - m tau)`` with ``S_0(x) = [exp(Q x)]_AA`` and
        ``S_m = D * S_(m-1)`` (convolution), ``D(x) = sum_i D_i exp(-lam_i x)``,
        ``D_i = A_i,AF exp(Q_FF tau) Q_FA``; lam_i, A_i the (distinct) eigenvalues and spectral
        matrices of -Q.  Writing ``S_m(x) = sum_i sum_{r<=m} C_imr x^r exp(-lam_i x)``:
        ``C_i00 = A_i,AA``, and for m >= 1
        ``C_imr = D_i C_i,m-1,r-1 / r``  (r >= 1)
        ``  + [r = 0] sum_{j!=i} sum_{p<m} p! D_i C_j,m-1,p / (lam_j - lam_i)^(p+1)``
        ``  - sum_{j!=i} sum_{r<=p<m} p!/r! D_j C_i,m-1,p / (lam_i - lam_j)^(p+1-r)``.
        Returns (gamma, C) with C[m][r] of shape (n, kA, kA)."""
        a, f = self.a, self.f
        n = lam.size
        AAA = A[:, a][:, :, a]
        D = np.einsum("nij,jk,kl->nil", A[:, a][:, :, f], self.EF, self.QFA)
        diff = lam[None, :] - lam[:, None]           # diff[i, j] = lam_j - lam_i
        off = ~np.eye(n, dtype=bool)
        safe = np.where(off, diff, 1.0)
        C = [[AAA]]
        for m in range(1, n_pieces):
            prev = C[m - 1]
            cur = []
            for r in range(m + 1):
                acc = np.zeros_like(AAA)
                if r >= 1:
                    acc = acc + np.matmul(D, prev[r - 1]) / r
                if r == 0:
                    for p in range(m):
                        w = np.where(off, math.factorial(p) / safe ** (p + 1), 0.0)
                        acc = acc + np.einsum("ij,iab,jbc->iac", w, D, prev[p])
                for p in range(r, m):
                    w = np.where(off, math.factorial(p) / math.factorial(r)
                                 / (-safe) ** (p + 1 - r), 0.0)
                    acc = acc - np.einsum("ij,jab,ibc->iac", w, D, prev[p])
                cur.append(acc)
            C.append(cur)
        dtype = np.result_type(lam, A, float)
        gam = np.zeros((n_pieces, n, n_pieces), dtype=dtype)
        for m in range(n_pieces):
            for r in range(m + 1):
                gam[m, :, r] = np.einsum("j,njk,k->n", phi, C[m][r], self.end)
        return gam, C


def _chain_generators(hc: "_HJCClass", n_pieces: int) -> list:
    """Block-bidiagonal generators X_m, m < n_pieces, of the exact HJC pieces [VL78]: blocks
    0..m with Q on the diagonal and ``B`` (``exp(Q_FF tau) Q_FA`` in its F x A block) above
    it, then an integral block coupled by I; ``expm(X_m x)`` holds ``S_m(x)`` in its block
    (0, m) (restricted to A x A) and ``int_0^x S_m`` in its block (0, m + 1)."""
    k = hc.Q.shape[0]
    B = np.zeros((k, k))
    B[np.ix_(hc.f, hc.a)] = hc.EF @ hc.QFA
    out = []
    for m in range(n_pieces):  # chain blocks 0..m, then the integral block
        X = np.zeros(((m + 2) * k, (m + 2) * k))
        for b in range(m + 1):
            X[b * k:(b + 1) * k, b * k:(b + 1) * k] = hc.Q
            if b < m:
                X[b * k:(b + 1) * k, (b + 1) * k:(b + 2) * k] = B
        X[m * k:(m + 1) * k, (m + 1) * k:] = np.eye(k)
        out.append(X)
    return out


def _chain_blocks(X: list, k: int, a: np.ndarray, tau: float, u) -> tuple:
    """(F, G) (N, kA, kA) for the points u (flattened): ``sum_m (-1)^m`` of the blocks
    (0, m) and (0, m + 1) of ``expm(X_m (u - m tau))`` restricted to A x A, over the pieces
    with ``u - m tau >= 0`` (:func:`_chain_generators`; C++ ``ketacore::hjc::chain_blocks``)."""
    from . import _core
    return _core.hjc_chain_blocks(X, int(k), np.asarray(a, np.int64), float(tau),
                                  np.ascontiguousarray(np.asarray(u, float).reshape(-1)))


def _exact_spectrum(hc: "_HJCClass"):
    """(lam, A): eigenvalues and spectral matrices of -Q for the spectral exact form, the
    zero eigenvalue set to exactly 0 and negligible imaginary parts dropped."""
    p = hc.p
    lam, A = _spectral(-hc.Q, p if hc.reversible and np.all(p > 0) else None)
    scale = max(float(np.abs(lam).max()), 1e-300)
    lam = np.where(np.abs(lam) <= 1e-12 * scale, 0.0, lam)  # the zero eigenvalue
    if np.iscomplexobj(lam) and np.all(np.imag(lam) == 0):
        lam = np.real(lam)
    return lam, A


class _ExactPart:
    """The exact HJC density on its first ``n`` pieces, ``f(tau + u)`` and ``int_0^u f`` for
    ``0 <= u <= n tau`` [HJC90, HJC92].

    Two evaluations of the same formula ``f(tau + u) = sum_m (-1)^m phi S_m(u - m tau) v``
    (``v = Q_AF exp(Q_FF tau) u_F``, see :meth:`_HJCClass.exact_coefficients`):

    * *spectral* (HJC's): closed-form coefficients of ``x^r exp(-lam_i x)`` from the
      eigenvalues of -Q; integrals with the regularised incomplete gamma function.  Fast and
      vectorised, but the recursion divides by powers (up to the number of pieces) of
      eigenvalue differences, so it loses accuracy when -Q has nearly equal eigenvalues
      (composed schemes whose blocked copies repeat the gating rates) or, with many pieces,
      when differences times tau are small (e.g. a 4-state scheme with a 5 s^-1 rate at
      tau = 100 us loses 1e-10 at 4 pieces and everything at 8); it needs a diagonalisable Q;
    * *expm*: ``S_m(x)`` is the block (0, m) of ``expm(X x)`` restricted to A x A, where X is
      block-bidiagonal with Q on the diagonal and ``B`` (``exp(Q_FF tau) Q_FA`` in its F x A
      block) above it -- the iterated convolution ``e^(Q.) B e^(Q.) ... B e^(Q.)``
      [VL78]; one more block coupled by I gives ``int_0^x S_m``.  Robust, one matrix
      exponential of size (m + 2) K per piece and time point.

    The spectral form is used when it agrees with the expm form to 1e-9 (relative to the
    largest density) and 1e-10 (absolute, for the integral) at 4 n + 1 points of the range;
    otherwise the expm form is.
    """

    def __init__(self, hc: "_HJCClass", phi: np.ndarray, n_pieces: int):
        self.tau, self.n = hc.tau, n_pieces
        self.a, self.k = hc.a, hc.Q.shape[0]
        self.phi, self.end = phi, hc.end
        self._X = _chain_generators(hc, n_pieces)
        self.mode = "expm"
        try:
            lam, A = _exact_spectrum(hc)
            self.lam = lam
            self.gam, _ = hc.exact_coefficients(lam, A, phi, n_pieces)
            ok = np.all(np.isfinite(self.gam))
        except (ValueError, np.linalg.LinAlgError):
            ok = False
        if ok:
            u = np.linspace(0.0, n_pieces * self.tau, 4 * n_pieces + 1)
            f_s, i_s = self._spectral_eval(u, False), self._spectral_eval(u, True)
            f_e, i_e = self._expm_eval(u)
            ok = (np.all(np.abs(f_s - f_e) <= 1e-9 * np.abs(f_e).max())
                  and np.all(np.abs(i_s - i_e) <= 1e-10))
        if ok:
            self.mode = "spectral"

    def _spectral_eval(self, u, integral: bool) -> np.ndarray:
        u = np.asarray(u, float)
        lam = self.lam
        out = np.zeros(u.shape)
        for m in range(self.n):
            x = u - m * self.tau
            on = x >= 0
            if not np.any(on):
                break
            xc = np.where(on, x, 0.0)
            if integral:
                terms = sum(_integral_xr_exp(r, lam, xc) * self.gam[m, :, r]
                            for r in range(m + 1))
            else:
                e = np.exp(-xc[..., None] * lam)
                terms = sum((xc[..., None] ** r) * e * self.gam[m, :, r] for r in range(m + 1))
            out = out + np.where(on, (-1) ** m * np.real(terms.sum(axis=-1)), 0.0)
        return out

    def _expm_eval(self, u):
        u = np.asarray(u, float)
        F, G = _chain_blocks(self._X, self.k, self.a, self.tau, u)
        f = np.einsum("i,nij,j->n", self.phi, F, self.end).reshape(u.shape)
        g = np.einsum("i,nij,j->n", self.phi, G, self.end).reshape(u.shape)
        return f, g

    def pdf(self, u) -> np.ndarray:
        if self.mode == "spectral":
            return self._spectral_eval(u, False)
        return self._expm_eval(u)[0]

    def integral(self, u) -> np.ndarray:
        if self.mode == "spectral":
            return self._spectral_eval(u, True)
        return self._expm_eval(u)[1]


def _e_start(G_AF_e: np.ndarray, G_FA_e: np.ndarray) -> np.ndarray:
    """Equilibrium start vector of apparent sojourns: the stationary vector of the stochastic
    matrix ``eG_AF eG_FA`` [HJC92 eq. 10], by GTH (``phi (I - eG_AF eG_FA) = 0``, ``phi u = 1``)."""
    P = G_AF_e @ G_FA_e
    G = P.copy()
    np.fill_diagonal(G, 0.0)
    np.fill_diagonal(G, -G.sum(axis=1))
    return _equilibrium_q(G)


def _e_G(QAA, QAF, QFA, QFF, EF):
    """``eG_AF = (I - G_AF (I - exp(Q_FF tau)) G_FA)^-1 G_AF exp(Q_FF tau)`` [HJC92 eq. 4 at
    s = 0]: probabilities that an apparent sojourn in A that starts in state i ends with entry
    to state j of F at the start of a resolved sojourn there."""
    GAF = np.linalg.solve(-QAA, QAF)
    GFA = np.linalg.solve(-QFF, QFA)
    M = np.eye(QAA.shape[0]) - GAF @ (np.eye(QFF.shape[0]) - EF) @ GFA
    return np.linalg.solve(M, GAF @ EF)


@dataclass(frozen=True)
class ApparentDwellTimes:
    """Distribution of apparent (e-)dwell times with missed events, at equilibrium [HJC90, HJC92].

    A sojourn in the class (e.g. an opening) ends only at a sojourn in the other class that
    lasts at least ``t_res``; shorter excursions are missed and their duration is added to it
    (the convention of :meth:`ketacore.analysis.Record.resolve`, HJCFIT and EKDIST).  Every
    apparent duration is >= ``t_res``.

    The pdf is the exact HJC density for ``t_res <= t <= exact_until`` (by default
    ``3 t_res``, as in HJCFIT) and the asymptotic form

    ``f(t) = sum_i (areas[i] / taus[i]) exp(-(t - t_res) / taus[i])``

    beyond, with the k_A time constants from the roots of ``det W(s) = 0`` [HJC92].  The two
    agree at ``exact_until`` to the accuracy of the asymptotic form there (for CH82 at 0.1 uM
    and 3 t_res: 2e-11 to 2e-5 relative for t_res = 25-100 us); :attr:`total` shows the
    resulting error in the normalisation.  Where the asymptotic form converges slowly (e.g.
    fast Mg2+ flicker of a blocked NMDA scheme: 3e-3 at 3 x 100 us), more exact pieces
    (``exact_intervals`` of :func:`apparent_dwell_times`) move the switch out.

    ``pdf`` is the HJC density as HJCFIT and SCALCS define it; ``survival`` and ``cdf`` are
    its integrals divided by :attr:`total`, so that ``cdf(t_res) = 0`` and
    ``cdf(inf) = 1`` exactly.

    Attributes
    ----------
    t_res : float
        Time resolution (dead time) (s).
    taus : ndarray
        Asymptotic time constants (s), ascending: ``-1/s_i`` for the k_A roots s_i of
        ``det W(s) = 0`` (repeated roots merged).
    areas : ndarray
        Asymptotic areas: ``a_i = b_i tau_i`` with ``f(t) ~ sum b_i exp(-(t - t_res)/tau_i)``.
        They are the areas of the asymptotic pdf extended down to ``t_res`` and sum to 1
        only approximately (the exact pdf differs below ``exact_until``).
    mean : float
        Exact mean apparent duration (s), including ``t_res`` [HJC92; CHS96 eq. 3.6].
    start : ndarray
        Equilibrium start vector ``phi`` of apparent sojourns over the class states (in
        ``states`` order): stationary vector of ``eG_AF eG_FA`` [HJC92 eq. 10].
    exact_until : float
        The exact pdf is used for ``t_res <= t <= exact_until`` (s).
    states : tuple of int
        Indices of the states of the class.
    ideal : ExponentialMixture
        The ideal distribution (``t_res -> 0``), as :func:`dwell_times` returns it.

    See also :attr:`roots`, :attr:`total`, :attr:`var` and :attr:`sd` (exact, like ``mean``),
    :meth:`sample`, :attr:`exact_method`, :meth:`exact_pdf`, :meth:`asymptotic_pdf`.
    """

    t_res: float
    taus: np.ndarray
    areas: np.ndarray
    mean: float
    start: np.ndarray
    exact_until: float
    states: Tuple[int, ...]
    ideal: ExponentialMixture
    _exact_part: Any = field(repr=False, default=None, compare=False)
    _head: float = field(repr=False, default=0.0)
    _u2: float = field(repr=False, default=math.nan)

    # -- summaries ---------------------------------------------------------
    @property
    def n_components(self) -> int:
        """Number of asymptotic components."""
        return int(self.taus.size)

    @property
    def var(self) -> float:
        """Exact variance of the apparent duration (s^2), like :attr:`mean` from the HJC
        Laplace transform (not from the piecewise pdf).

        With ``U = T - t_res`` and its transform ``phi W(s)^-1 v`` (``v = Q_AF
        exp(Q_FF t_res) u_F``, ``W(0)^-1 v = u_A``), ``E[U^2]`` is the second derivative at
        0: ``2 phi W(0)^-1 W'(0) W(0)^-1 W'(0) u_A + phi W(0)^-1 Q_AF [int_0^t_res t^2
        exp(Q_FF t) dt] Q_FA u_A``, and ``var = E[U^2] - (mean - t_res)^2``.  It tends to the
        ideal variance as ``t_res -> 0``.  The distribution of :meth:`pdf`, :meth:`cdf` and
        :meth:`sample` (exact pieces, then the asymptotic form, normalised by :attr:`total`)
        has the same mean and variance up to the error of the asymptotic form beyond
        ``exact_until`` (a few times ``|1 - total|`` relative; raise ``exact_intervals`` to
        shrink it).  NaN for an instance built without it."""
        m1 = self.mean - self.t_res
        return max(self._u2 - m1 * m1, 0.0)

    @property
    def sd(self) -> float:
        """Standard deviation of the apparent duration (s), ``sqrt(var)`` (see :attr:`var`)."""
        return math.sqrt(self.var)

    @property
    def roots(self) -> np.ndarray:
        """Roots s_i = -1/tau_i of ``det W(s) = 0`` (s^-1), ascending in tau."""
        return -1.0 / self.taus

    @property
    def amplitudes(self) -> np.ndarray:
        """Asymptotic pdf amplitude of each component at t = t_res, areas/taus (s^-1)."""
        return self.areas / self.taus

    @property
    def total(self) -> float:
        """Integral of :meth:`pdf` over [t_res, inf): 1 up to the error of the asymptotic
        form beyond ``exact_until``, which depends on the mechanism and t_res: |1 - total| <
        2e-8 for CH82 at 0.1 uM, 25-100 us (< 1e-11 with ``exact_intervals=6``), but up to
        ~8e-6 for C-O-OB shut times or a 5-state scheme at 100 us with the default 2 pieces;
        raise ``exact_intervals`` where that matters)."""
        return float(self._head + self._asymptotic_tail(self.exact_until))

    # -- pieces --------------------------------------------------------------
    def _asymptotic_tail(self, t) -> np.ndarray:
        """int_t^inf of the asymptotic pdf, for t >= t_res."""
        return (self.areas * _decay(np.asarray(t, float) - self.t_res, self.taus)).sum(axis=-1)

    def asymptotic_pdf(self, t):
        """The asymptotic HJC pdf (s^-1) at time(s) t (s) (0 below ``t_res``)."""
        t = _times(t)
        u = np.maximum(t - self.t_res, 0.0)
        val = (self.amplitudes * _decay(u, self.taus)).sum(axis=-1)
        return np.where(t >= self.t_res, val, 0.0)

    def _exact(self, t, integral: bool) -> np.ndarray:
        """Exact pdf, or its integral from t_res, at t_res <= t <= exact_until."""
        u = np.asarray(t, float) - self.t_res
        ex = self._exact_part
        return ex.integral(u) if integral else ex.pdf(u)

    @property
    def exact_method(self) -> str:
        """How the exact pieces are evaluated: ``"spectral"`` (HJC's closed form from the
        eigenvalues of Q) or ``"expm"`` (block matrix exponentials, used when the spectral
        form would lose accuracy, e.g. nearly equal eigenvalues; see the module notes)."""
        return self._exact_part.mode

    def _on_exact(self, t: np.ndarray, integral: bool) -> np.ndarray:
        """The exact pdf (or its integral from t_res) where ``t_res <= t <= exact_until``,
        0 elsewhere; evaluated only there (the matrix-exponential form costs per point)."""
        out = np.zeros(t.shape)
        on = (t >= self.t_res) & (t <= self.exact_until)
        if np.any(on):
            out[on] = self._exact(t[on], integral)
        return out

    def exact_pdf(self, t):
        """The exact HJC pdf (s^-1) at time(s) t (s), for t <= ``exact_until`` (0 below
        ``t_res``); ValueError beyond, where the exact piecewise form was not built."""
        t = _times(t)
        if np.any(t > self.exact_until * (1 + 1e-12)):
            raise ValueError(f"exact_pdf: t must be <= exact_until = {self.exact_until:g} s "
                             "(pass exact_intervals= to apparent_dwell_times for more)")
        return self._on_exact(np.minimum(t, self.exact_until), False)

    # -- distribution ----------------------------------------------------------
    def pdf(self, t):
        """Probability density (s^-1) at time(s) t (s): exact for t <= ``exact_until``,
        asymptotic beyond, 0 below ``t_res``."""
        t = _times(t)
        return np.where(t <= self.exact_until, self._on_exact(t, False),
                        self.asymptotic_pdf(t))

    def survival(self, t):
        """P(T > t) for time(s) t (s): ``int_t^inf pdf`` divided by :attr:`total`, so that
        it is exactly 1 at (and below) ``t_res``."""
        t = _times(t)
        tail = self._asymptotic_tail(np.maximum(t, self.exact_until))
        head = self._head - self._on_exact(t, True) + self._asymptotic_tail(self.exact_until)
        val = np.where(t <= self.exact_until, head, tail) / self.total
        return np.where(t >= self.t_res, val, 1.0)

    def cdf(self, t):
        """P(T <= t) for time(s) t (s): ``1 - survival(t)``."""
        return 1.0 - self.survival(t)

    def sample(self, n: int, rng=None) -> np.ndarray:
        """Draw ``n`` apparent durations (s) from this distribution, by inverting :meth:`cdf`.

        Parameters
        ----------
        n : int
            Number of draws, >= 0.
        rng : optional
            Anything accepted by ``numpy.random.default_rng`` (SPEC 7: None, an int seed, a
            ``SeedSequence`` or a ``Generator``, which is drawn from); the same seed gives the
            same draws.

        Returns
        -------
        ndarray, shape (n,)
            Apparent durations (s), each >= ``t_res``.

        Raises
        ------
        TypeError, ValueError
            ``n`` not an integer, or negative.

        Notes
        -----
        Each draw is ``t = cdf^-1(u)`` for ``u`` uniform on [0, 1), solved as
        ``survival(t) = 1 - u`` (which keeps the tail's resolution): on
        ``[t_res, exact_until]`` from the exact integral of :meth:`pdf`, bracketed on a grid of
        64 points per ``t_res``-long piece; beyond, from the asymptotic mixture, bracketed by
        doubling.  Each bracket is refined by Newton steps on the integral with the pdf as
        derivative, falling back to bisection whenever a step would leave the bracket, until
        a Newton step or the bracket is at most ``1e-12 * max(t, exact_until)`` (s): every
        draw is the inverse of :meth:`cdf` to that absolute precision (in practice to
        rounding: ``survival(t)`` equals ``1 - u`` to ~1e-16).  The distribution is the one
        of :meth:`cdf` (normalised by :attr:`total`; see :attr:`var` for how its moments
        relate to the exact ones).  About 0.1 s for 20000 draws with the spectral exact form.
        """
        n = _V.integer("n", n, minimum=0)
        # out, u and the bracket/Newton arrays, plus (n, k) temporaries of the asymptotic form
        _V.check_memory("ApparentDwellTimes.sample", n * 8.0 * (12 + 3 * self.n_components),
                        advice="draw fewer at a time (n) and concatenate")
        rng = _rng.generator(rng)
        if n == 0:
            return np.zeros(0)
        v = 1.0 - rng.random(n)                  # survival levels in (0, 1]
        total = self.total
        tail_e = float(self._asymptotic_tail(self.exact_until))
        out = np.empty(n)
        on_exact = v * total >= tail_e
        if np.any(on_exact):
            out[on_exact] = self._invert_exact(self._head + tail_e - v[on_exact] * total)
        if not np.all(on_exact):
            out[~on_exact] = self._invert_tail(v[~on_exact] * total)
        return out

    def _exact_with_pdf(self, t: np.ndarray):
        """(int_t_res^t pdf, pdf(t)) on the exact range, in one evaluation where possible."""
        ex = self._exact_part
        u = t - self.t_res
        if ex.mode == "expm":
            f, g = ex._expm_eval(u)
            return g, f
        return ex.integral(u), ex.pdf(u)

    def _invert_exact(self, y: np.ndarray) -> np.ndarray:
        """t in [t_res, exact_until] with ``int_t_res^t pdf = y`` (0 <= y <= head)."""
        per_piece = 64
        pieces = round((self.exact_until - self.t_res) / self.t_res)
        grid = np.linspace(self.t_res, self.exact_until, per_piece * pieces + 1)
        g = np.maximum.accumulate(np.asarray(self._exact(grid, True), float))
        g[0] = 0.0
        y = np.clip(y, 0.0, g[-1])
        j = np.clip(np.searchsorted(g, y, side="right") - 1, 0, grid.size - 2)
        lo, hi = grid[j].copy(), grid[j + 1].copy()
        glo, ghi = g[j], g[j + 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(ghi > glo, (y - glo) / (ghi - glo), 0.5)
        x0 = lo + np.clip(frac, 0.0, 1.0) * (hi - lo)        # secant start

        def fun(x, sel):
            gx, fx = self._exact_with_pdf(x)
            return gx - y[sel], fx

        return _newton_bisect(fun, x0, lo, hi, 1e-12 * self.exact_until)

    def _invert_tail(self, target: np.ndarray) -> np.ndarray:
        """t > exact_until with ``int_t^inf`` of the asymptotic pdf ``= target``
        (0 < target <= that integral at exact_until)."""
        lo = np.full(target.size, self.exact_until)
        span = float(np.max(np.real(self.taus)))
        hi = self.exact_until + np.full(target.size, span)
        for _ in range(2100):
            bad = self._asymptotic_tail(hi) > target
            if not np.any(bad):
                break
            lo[bad] = hi[bad]
            hi[bad] = self.exact_until + 2.0 * (hi[bad] - self.exact_until)
        else:  # pragma: no cover - the tail tends to 0
            raise RuntimeError("sample: could not bracket the inverse cdf")
        amps = self.amplitudes
        return _newton_bisect(
            lambda x, sel: (target[sel] - self._asymptotic_tail(x),
                            (amps * _decay(x - self.t_res, self.taus)).sum(axis=-1)),
            0.5 * (lo + hi), lo, hi, 1e-12 * lo)


def _newton_bisect(fun, x, lo, hi, xtol, max_iter: int = 200) -> np.ndarray:
    """Vectorised safeguarded Newton for an increasing function: ``fun(x, sel)`` returns
    (g(x) - target, g'(x)) for the entries ``sel``; ``lo <= x <= hi`` brackets the root
    (``g(lo) <= target <= g(hi)``).  A Newton step that would leave the bracket (or a
    g' <= 0) becomes a bisection.  An entry stops after a Newton step of at most ``xtol``
    (its error is then of the order of the step squared over the scale of g, or rounding) or
    when its bracket is at most ``xtol`` wide, so every result is within ``xtol`` of the root
    (to the rounding of g)."""
    x, lo, hi = (np.array(a, float) for a in (x, lo, hi))
    xtol = np.broadcast_to(np.asarray(xtol, float), x.shape).copy()
    act = np.arange(x.size)
    for _ in range(max_iter):
        if act.size == 0:
            break
        xa = x[act]
        g, d = fun(xa, act)
        below = g < 0
        lo_a = np.where(below, xa, lo[act])
        hi_a = np.where(below, hi[act], xa)
        lo[act], hi[act] = lo_a, hi_a
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            step = np.where(d > 0, g / d, np.inf)
        xn = xa - step
        newton = np.isfinite(xn) & (xn >= lo_a) & (xn <= hi_a)
        xn = np.where(newton, xn, 0.5 * (lo_a + hi_a))
        xn = np.where(g == 0, xa, xn)
        x[act] = xn
        done = ((newton & (np.abs(step) <= xtol[act])) | (g == 0)
                | (hi_a - lo_a <= xtol[act]))
        act = act[~done]
    return x


def _check_t_res(t_res) -> float:
    if isinstance(t_res, bool) or not isinstance(t_res, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"t_res must be a real number (time resolution in s), got "
                        f"{type(t_res).__name__} ({_V.plain(t_res)})")
    v = float(t_res)
    if not math.isfinite(v) or not v > 0:
        raise ValueError("t_res must be a finite time resolution > 0 (s), got "
                         f"{_V.plain(t_res)}; for the ideal record (no missed events) use "
                         "dwell_times")
    if v >= MAX_T_RES:
        raise ValueError(f"t_res={v:g} s is not a recording resolution (they are 10-500 us; "
                         f"t_res must be < {MAX_T_RES:g} s): t_res is in seconds, write e.g. "
                         "50 * ketacore.units.us (= 5e-05) for 50 us")
    return v


def _check_t_res_rates(fn: str, tau: float, Q: np.ndarray) -> None:
    """ValueError (before any HJC work) when ``t_res * max|q_ii| > MAX_T_RES_RATE``: the
    missed-events computation is then beyond double precision (see :data:`MAX_T_RES_RATE`)."""
    r_max = float(np.max(-np.diag(Q))) if Q.size else 0.0
    x = tau * r_max
    if not x <= MAX_T_RES_RATE:
        raise ValueError(
            f"{fn}: t_res={tau:g} s is too long for this mechanism: t_res x its fastest rate "
            f"of leaving a state (max |q_ii| = {r_max:.4g} s^-1 at these conditions) is "
            f"{x:.4g}, above the limit {MAX_T_RES_RATE:.4g} = ln(1/eps) of the missed-events "
            "(HJC) computation in double precision (beyond it, resolvable sojourns can be "
            f"rarer than rounding and the asymptotic root search overflows): here t_res must "
            f"be <= {MAX_T_RES_RATE / r_max:.4g} s.  t_res is in seconds (write "
            "50 * ketacore.units.us)")


def apparent_dwell_times(model, states="open", *, t_res, open=None, names=None,
                         exact_intervals: int = 2, **conditions) -> ApparentDwellTimes:
    """Distribution of apparent sojourns in a class when events shorter than ``t_res`` are
    missed: the HJC (Hawkes-Jalali-Colquhoun) e-open / e-shut time distribution, at
    equilibrium [HJC90, HJC92, CHS96].

    An apparent sojourn in class A ends at the first sojourn in the complement F that lasts at
    least ``t_res``; excursions to F shorter than that are missed and their time is counted in
    the A sojourn (the rule of :meth:`ketacore.analysis.Record.resolve` for a record of two
    classes, e.g. open/shut, and of HJCFIT, SCALCS and EKDIST).  Its density, for t >= t_res,
    is ``f(t) = phi_A AR(t - t_res) Q_AF exp(Q_FF t_res) u_F`` [HJC90]:

    * **exact** for ``t_res <= t <= (exact_intervals + 1) t_res`` from the piecewise
      polynomial-exponential form of ``AR(u) = sum_m (-1)^m S_m(u - m t_res)`` [HJC90 eqs.
      3.16-3.22; HJC92 eqs. 21-22], with the eigenvalues of the full Q;
    * **asymptotic** beyond: ``AR(u) ~ sum_i R_i exp(s_i u)`` with the k_A roots s_i of
      ``det W(s) = 0``, ``W(s) = s I - H_AA(s)``,
      ``H_AA(s) = Q_AA + Q_AF [int_0^t_res exp(-s t) exp(Q_FF t) dt] Q_FA`` [HJC92 eqs. 52-58].
      The roots are bracketed in ``[lambda_min(Q_AA), 0)`` and found to full precision by
      Brent's method on the ordered eigenvalue curves of the symmetrised H(s) (for a
      reversible mechanism each crosses the line s exactly once [JH92]), the
      robust replacement of the determinant's sign changes that HJCFIT and SCALCS also avoid;
    * start vector ``phi_A``: stationary vector of ``eG_AF eG_FA`` [HJC92 eq. 10];
    * exact mean ``t_res + phi_A W(0)^-1 W'(0) u_A`` [HJC92; CHS96 eq. 3.6].

    Without microscopic reversibility (e.g. a composed scheme with a trapping blocker's
    one-way escape ``X·b -> X``, or kampa2004's Mg2+ cycles), H(s) is evaluated by matrix
    exponentials
    [VL78] and the roots are found by a scan of the real eigenvalue curves with Brent
    refinement; complex roots are refused.

    Parameters
    ----------
    model : Scheme or (K, K) array_like
        A scheme (with its ``**conditions``) or a generator Q (s^-1).
    states : "open", "shut" (or "closed"), or names/indices, or boolean mask
        The class A (as for :func:`dwell_times`); F is every other state.
    t_res : float
        Time resolution (dead time) (s), ``0 < t_res < 1`` (write ``50 * us``: a value of 1 or
        more is taken for microseconds passed as seconds and refused), and at most
        ``MAX_T_RES_RATE / max|q_ii|`` (``t_res`` times the fastest rate of leaving a state at
        most ln(1/eps) = 36.04, see :data:`MAX_T_RES_RATE`; for CH82 at 0.01-10 uM agonist,
        whose fastest rate there is 1.9e4 s^-1, 1.9 ms -- the same up to about 30 uM, then
        shorter as the agonist binding rates take over: 0.68 ms at 100 uM, 72 us at 1 mM
        agonist, fastest rate 5.0e5 s^-1): beyond it the missed-events computation is not
        reliable in double precision and is refused before it starts.
    open, names
        For a raw Q, as for :func:`dwell_times`.
    exact_intervals : int
        Number of ``t_res``-long pieces (1 to 10) on which the exact pdf is used: the exact form
        covers ``t_res <= t <= (exact_intervals + 1) t_res``.  Default 2 (up to ``3 t_res``,
        as in HJCFIT and SCALCS); more pieces push the switch to the asymptotic form further
        out, where it is more accurate.  The exact pieces are evaluated from the closed
        spectral form of [HJC90] when that agrees with an independent evaluation by block
        matrix exponentials to 1e-9, else by the matrix exponentials (slower; see
        :attr:`ApparentDwellTimes.exact_method`).
    **conditions
        For a scheme: V (V), temperature (K), ligand concentrations (M), as for
        :func:`dwell_times`.

    Returns
    -------
    ApparentDwellTimes
        ``pdf``/``survival``/``cdf`` at any t (s), asymptotic ``taus``/``areas``, exact
        ``mean``, ``start`` vector, ``ideal`` (the :func:`dwell_times` mixture).

    Raises
    ------
    TypeError, ValueError
        Bad ``t_res`` (not > 0, not finite, or >= 1 s), a class with no states or every state
        (e.g. a scheme without open or without shut states), conditions as for
        :func:`dwell_times`, a class never entered at equilibrium, or a mechanism whose
        ``det W(s) = 0`` has complex roots (possible only without microscopic reversibility).
        A ``t_res`` too long for the mechanism's rates (``t_res * max|q_ii| >``
        :data:`MAX_T_RES_RATE`) gets one ValueError, "apparent_dwell_times: t_res=... s is
        too long for this mechanism: ...", giving the product, the limit and the largest
        ``t_res`` allowed at these conditions.

    Notes
    -----
    Compare these, not :func:`dwell_times`, with a record resolved at ``t_res``
    (:meth:`ketacore.analysis.Record.resolve`): for CH82 at 0.1 uM and ``t_res = 100 us`` the
    apparent slow open time constant is 6.14 ms against the ideal 2.00 ms.  The apparent
    open and shut times of a resolved record are correlated (a Markov renewal process with
    transition matrix ``eG_AF eG_FA``); the distributions here are the marginal ones.

    References
    ----------
    Hawkes, Jalali & Colquhoun (1990) Phil Trans R Soc Lond A 332:511-538,
    doi:10.1098/rsta.1990.0129 [HJC90]; (1992) Phil Trans R Soc Lond B 337:383-404,
    doi:10.1098/rstb.1992.0116 [HJC92]; Colquhoun, Hawkes & Srodzinski (1996) Phil Trans R
    Soc Lond A 354:2555-2590, doi:10.1098/rsta.1996.0115 [CHS96]; Jalali & Hawkes (1992) Adv
    Appl Probab 24:302-321 [JH92].
    """
    tau = _check_t_res(t_res)
    n_exact = _V.integer("exact_intervals", exact_intervals, minimum=1,
                         maximum=MAX_EXACT_INTERVALS)
    m = _resolve(model, conditions, open, names)
    a = _class_indices(states, m, "states")
    f = np.setdiff1d(np.arange(m.k), a)
    Q = m.Q
    _check_t_res_rates("apparent_dwell_times", tau, Q)
    p = _equilibrium_q(Q)
    ideal_phi = _entry_vector(Q, p, a, f, m.never_entered_hint())  # ValueError if never entered
    QAA = Q[np.ix_(a, a)]
    ideal = _mixture_from(-QAA, ideal_phi, -QAA @ np.ones(a.size), d=p[a])
    rev = _is_reversible_q(Q, p)
    A = _HJCClass(Q, p, a, f, tau, rev)
    F = _HJCClass(Q, p, f, a, tau, rev)
    if not (np.all(np.isfinite(A.EF)) and np.all(np.isfinite(F.EF))):  # pragma: no cover
        raise ValueError(f"t_res={tau:g} s: exp(Q t_res) is not finite")
    phi = _e_start(_e_G(A.QAA, A.QAF, A.QFA, A.QFF, A.EF),
                   _e_G(F.QAA, F.QAF, F.QFA, F.QFF, F.EF))
    roots = A.roots()
    s, b = A.asymptotic(roots, phi)
    taus = -1.0 / s
    areas = b * taus
    order = np.argsort(taus, kind="stable")
    taus, areas = taus[order], areas[order]
    exact_until = (n_exact + 1) * tau
    mean = A.mean(phi)
    u2 = A.second_moment(phi)
    res = ApparentDwellTimes(
        t_res=tau, taus=_frozen_array(taus), areas=_frozen_array(areas), mean=mean,
        start=_frozen_array(phi), exact_until=exact_until, states=tuple(int(i) for i in a),
        ideal=ideal, _exact_part=_ExactPart(A, phi, n_exact), _u2=u2)
    head = float(res._exact(np.array(exact_until), True))
    object.__setattr__(res, "_head", head)
    vals = np.concatenate(([res.mean, u2], res.taus, res.areas, [head]))
    if not np.all(np.isfinite(vals)):
        raise ValueError(f"t_res={tau:g} s: the missed-events distribution overflowed for "
                         "this mechanism (t_res times its fastest rates is too large); t_res "
                         "is in seconds")
    return res


# ---------------------------------------------------------------------------
# HJC likelihood of a resolved record [HJC90, HJC92, CHS96]
# ---------------------------------------------------------------------------

#: Intervals evaluated per block by :func:`hjc_loglik` (bounds the memory of the (n, kA, kF)
#: stacks of transition-density matrices).
_HJC_CHUNK = 65536


class _EGMatrices:
    """The matrix-valued HJC transition density of one class A (complement F),
    ``eG_AF(t) = AR(t - tau) Q_AF exp(Q_FF tau)`` (kA x kF) for ``t >= tau`` [HJC90, HJC92]:
    entry (i, j) is the density of an apparent sojourn in A that starts in state i, lasts t
    and ends with entry to state j of F at the start of a resolved sojourn there.

    * exact for ``tau <= t < (n + 1) tau``: ``AR(u) = sum_m (-1)^m S_m(u - m tau)`` with the
      coefficient matrices ``C[m][r]`` of :meth:`_HJCClass.exact_coefficients`
      post-multiplied by ``Q_AF exp(Q_FF tau)`` (SCALCS' Z00, Z10, Z11 for n = 2), or, when
      that spectral form disagrees with it by more than 1e-9 of the largest entry at
      ``4 n + 1`` points, the block matrix exponentials of :func:`_chain_generators` [VL78];
    * asymptotic beyond: ``sum_j R_j exp(s_j u) Q_AF exp(Q_FF tau)``
      (:meth:`_HJCClass.projectors`), returned as ``exp(s_top u)`` (its log) times a matrix,
      ``s_top`` the slowest root, so that long intervals neither underflow nor overflow.
    """

    def __init__(self, hc: "_HJCClass", n_pieces: int):
        self.tau, self.n = hc.tau, n_pieces
        self.exact_until = (n_pieces + 1) * hc.tau
        self.a, self.k = hc.a, hc.Q.shape[0]
        self.kA, self.kF = hc.a.size, hc.f.size
        self.M = hc.QAF @ hc.EF                      # Q_AF exp(Q_FF tau)
        s, R = hc.projectors(hc.roots())
        self.s = s
        self.s_top = float(s.max())
        self.RZ = np.matmul(R, self.M)               # (g, kA, kF)
        self._X = _chain_generators(hc, n_pieces)
        self.mode = "expm"
        try:
            lam, A = _exact_spectrum(hc)
            _, C = hc.exact_coefficients(lam, A, np.full(self.kA, 1.0 / self.kA), n_pieces)
            self.lam = lam
            self.Z = [[np.matmul(C[m][r], self.M) for r in range(m + 1)]
                      for m in range(n_pieces)]
            ok = all(np.all(np.isfinite(z)) for zm in self.Z for z in zm)
        except (ValueError, np.linalg.LinAlgError):
            ok = False
        if ok:
            u = np.linspace(0.0, n_pieces * self.tau, 4 * n_pieces + 1)
            f_e, i_e = self._expm_eval(u)
            f_s, i_s = self._spectral_eval(u, False), self._spectral_eval(u, True)
            ok = (np.abs(f_s - f_e).max() <= 1e-9 * np.abs(f_e).max()
                  and np.abs(i_s - i_e).max() <= 1e-9 * np.abs(i_e).max() + 1e-300)
        if ok:
            self.mode = "spectral"

    def _spectral_eval(self, u, integral: bool) -> np.ndarray:
        """Exact matrices (or their integrals from 0) at ``0 <= u <= n tau``, (N, kA, kF)."""
        u = np.asarray(u, float).reshape(-1)
        lam = self.lam
        K = lam.size
        out = np.zeros((u.size, self.kA * self.kF), dtype=np.result_type(lam, float))
        for m in range(self.n):
            x = u - m * self.tau
            on = x >= 0
            if not np.any(on):
                break
            xo = x[on]
            acc = 0.0
            for r in range(m + 1):
                if integral:
                    w = _integral_xr_exp(r, lam, xo)
                else:
                    w = np.exp(-xo[:, None] * lam)
                    if r:
                        w = w * xo[:, None] ** r
                acc = acc + w @ self.Z[m][r].reshape(K, -1)
            out[on] += acc if m % 2 == 0 else -acc
        return np.real(out).reshape(u.size, self.kA, self.kF)

    def _expm_eval(self, u):
        """Exact matrices and their integrals from 0 by block matrix exponentials (the C++
        core's ``hjc_chain_blocks``), (N, kA, kF) each."""
        f, g = _chain_blocks(self._X, self.k, self.a, self.tau, u)
        return f @ self.M, g @ self.M

    def _exact(self, u, integral: bool = False) -> np.ndarray:
        if self.mode == "spectral":
            return self._spectral_eval(u, integral)
        return self._expm_eval(u)[1 if integral else 0]

    def eval(self, t):
        """(mats, logs): ``eG_AF(t_i) = exp(logs[i]) mats[i]`` for t_i >= tau, (N, kA, kF)."""
        t = np.asarray(t, float).reshape(-1)
        out = np.empty((t.size, self.kA, self.kF))
        logs = np.zeros(t.size)
        ex = t < self.exact_until
        if np.any(ex):
            out[ex] = self._exact(t[ex] - self.tau)
        asy = ~ex
        if np.any(asy):
            u = t[asy] - self.tau
            E = np.exp(u[:, None] * (self.s - self.s_top))
            out[asy] = (E @ self.RZ.reshape(self.s.size, -1)).reshape(-1, self.kA, self.kF)
            logs[asy] = self.s_top * u
        return out, logs

    def core_form(self):
        """The spectral form as ``_core.hjc_group_logliks`` takes it, ``(tau, s_top, lam, Z,
        s, RZ)`` with Z (n, n, K, kA, kF) (zero for r > m), or None when the exact pieces are
        evaluated by matrix exponentials or have complex exponents (the numpy path)."""
        if self.mode != "spectral" or np.iscomplexobj(self.lam) or \
                any(np.iscomplexobj(z) for zm in self.Z for z in zm):
            return None
        K = self.lam.size
        Z = np.zeros((self.n, self.n, K, self.kA, self.kF))
        for m in range(self.n):
            for r in range(m + 1):
                Z[m, r] = self.Z[m][r]
        return (float(self.tau), self.s_top, np.ascontiguousarray(self.lam, dtype=float), Z,
                np.ascontiguousarray(self.s, dtype=float), np.ascontiguousarray(self.RZ))

    def tail(self, t: float):
        """(H, log_scale): ``int_t^inf eG_AF(t') dt' = exp(log_scale) H`` (kA x kF), the
        asymptotic form integrated beyond ``max(t, exact_until)`` plus the exact pieces
        between t and ``exact_until`` when t is below it."""
        u0 = max(t, self.exact_until) - self.tau
        w = -np.exp((self.s - self.s_top) * u0) / self.s
        H = np.tensordot(w, self.RZ, axes=1)
        log_scale = self.s_top * u0
        if t < self.exact_until:
            H = H * math.exp(log_scale)
            log_scale = 0.0
            ints = self._exact(np.array([self.n * self.tau, t - self.tau]), True)
            H = H + ints[0] - ints[1]
        return H, log_scale


def _normalise_stack(M: np.ndarray, logs: np.ndarray):
    """Divide each matrix (or vector) of a stack by its largest |entry|, adding the log of
    that factor to logs (-inf for an all-zero entry)."""
    axes = tuple(range(1, M.ndim))
    sc = np.abs(M).max(axis=axes)
    safe = np.where(sc > 0, sc, 1.0)
    M = M / safe.reshape((-1,) + (1,) * len(axes))
    with np.errstate(divide="ignore"):
        return M, logs + np.log(sc)


def _segmented_product(P: np.ndarray, logs: np.ndarray, counts: np.ndarray):
    """Ordered products of consecutive runs of matrices: P (N, k, k), runs of ``counts``
    (summing to N) -> (G, k, k) products (identity for an empty run) and their log scales.

    Pairwise (tree) reduction, vectorised over all runs: each pass multiplies neighbours
    (0, 1), (2, 3), ... within each run and renormalises, so a run of n matrices takes
    ceil(log2 n) passes.  The matrices are products of transition densities, non-negative
    up to the asymptotic form's small error (which can leave tiny negative entries), so
    there is no cancellation to speak of and the order of multiplication changes the
    result only at rounding level (checked against SCALCS' sequential products to 1e-13)."""
    counts = np.asarray(counts, np.int64).copy()
    G, k = counts.size, P.shape[1]
    P, logs = P.copy(), logs.copy()
    while P.shape[0] and counts.max() > 1:
        seg = np.repeat(np.arange(G), counts)
        pos = np.arange(P.shape[0]) - (np.cumsum(counts) - counts)[seg]
        left = pos % 2 == 0
        il = np.flatnonzero(left & (pos + 1 < counts[seg]))
        prod, pl = _normalise_stack(np.matmul(P[il], P[il + 1]), logs[il] + logs[il + 1])
        P[il], logs[il] = prod, pl
        P, logs = P[left], logs[left]
        counts = (counts + 1) // 2
    out = np.broadcast_to(np.eye(k), (G, k, k)).copy()
    lo = np.zeros(G)
    has = counts == 1
    out[has], lo[has] = P, logs
    return out, lo


class _HJCLikelihood:
    """Everything :func:`hjc_loglik` precomputes for one Q, t_res and t_crit."""

    def __init__(self, Q: np.ndarray, a: np.ndarray, f: np.ndarray, tau: float,
                 t_crit: Optional[float], n_exact: int):
        p = _equilibrium_q(Q)
        _entry_vector(Q, p, a, f)  # ValueError if openings never happen
        _entry_vector(Q, p, f, a)
        rev = _is_reversible_q(Q, p)
        A = _HJCClass(Q, p, a, f, tau, rev)
        F = _HJCClass(Q, p, f, a, tau, rev)
        if not (np.all(np.isfinite(A.EF)) and np.all(np.isfinite(F.EF))):  # pragma: no cover
            raise ValueError(f"t_res={tau:g} s: exp(Q t_res) is not finite")
        e_af = _e_G(A.QAA, A.QAF, A.QFA, A.QFF, A.EF)
        e_fa = _e_G(F.QAA, F.QAF, F.QFA, F.QFF, F.EF)
        self.phi_open = _e_start(e_af, e_fa)
        self.phi_shut = _e_start(e_fa, e_af)
        self.open = _EGMatrices(A, n_exact)
        self.shut = _EGMatrices(F, n_exact)
        if t_crit is None:
            self.start, self.end, self.end_log = self.phi_open, np.ones(f.size), 0.0
        else:
            # CHS96: H_FA = int_tcrit^inf eG_FA(t) dt; start phi_F H_FA / (phi_F H_FA u_A),
            # end H_FA u_A
            H, lg = self.shut.tail(t_crit)
            x = self.phi_shut @ H
            if not x.sum() > 0:
                raise ValueError(f"hjc_loglik: t_crit={t_crit:g} s: the mechanism gives no "
                                 "apparent shut time longer than t_crit (to double "
                                 "precision), so no group can be preceded or followed by one")
            self.start = x / x.sum()
            self.end, self.end_log = H.sum(axis=1), lg
        if not (np.all(np.isfinite(self.start)) and np.all(np.isfinite(self.end))):
            raise ValueError(f"hjc_loglik: t_res={tau:g} s: the start/end vectors are not "
                             "finite for this mechanism")

    def group_logliks(self, groups: list) -> np.ndarray:
        """Natural log of the likelihood of each group (validated 1-D arrays, odd lengths).

        In the C++ core (``ketacore::hjc::group_logliks``: each group's row vector carried
        from left to right, renormalised after every open-shut pair) when both classes have a
        real spectral form; otherwise :meth:`_group_logliks_numpy` (tested equal to rounding,
        tests/test_hjc_core.py)."""
        fo, fs = self.open.core_form(), self.shut.core_form()
        if fo is None or fs is None:
            return self._group_logliks_numpy(groups)
        from . import _core
        if isinstance(groups, _HJCGroups):
            lens, allt = groups.lens, groups.allt
        else:
            lens, allt = np.array([g.size for g in groups], np.int64), np.concatenate(groups)
        return _core.hjc_group_logliks(fo, fs, np.ascontiguousarray(self.start, dtype=float),
                                       np.ascontiguousarray(self.end, dtype=float),
                                       float(self.end_log), allt, lens)

    def _group_logliks_numpy(self, groups: list) -> np.ndarray:
        """:meth:`group_logliks` by numpy: every interval's eG matrix evaluated as a stack,
        each opening's multiplied by the following shut time's, and each group's ordered
        product by pairwise (tree) reduction vectorised over all groups."""
        lens = np.array([g.size for g in groups], np.int64)
        n_pairs = (lens - 1) // 2
        allt = np.concatenate(groups)
        pos = np.arange(allt.size) - np.repeat(np.cumsum(lens) - lens, lens)
        is_open = pos % 2 == 0
        t_open, t_shut = allt[is_open], allt[~is_open]
        last = np.cumsum(n_pairs + 1) - 1               # the last opening of each group
        inner = np.ones(t_open.size, bool)
        inner[last] = False
        t_inner = t_open[inner]                          # pairs with t_shut, in order
        kA = self.open.kA
        P = np.empty((t_shut.size, kA, kA))
        lp = np.empty(t_shut.size)
        for i in range(0, t_shut.size, _HJC_CHUNK):
            sl = slice(i, i + _HJC_CHUNK)
            O, lo = self.open.eval(t_inner[sl])
            S, ls = self.shut.eval(t_shut[sl])
            P[sl], lp[sl] = _normalise_stack(np.matmul(O, S), lo + ls)
        O, lo = self.open.eval(t_open[last])
        w, lw = _normalise_stack(O @ self.end, lo + self.end_log)
        prod, lg = _segmented_product(P, lp, n_pairs)
        val = np.einsum("gj,gj->g", np.einsum("i,gij->gj", self.start, prod), w)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.log(np.where(val > 0, val, 0.0)) + lg + lw
        return np.where(np.isnan(out), -np.inf, out)


def _check_t_crit(t_crit, tau: float) -> Optional[float]:
    if t_crit is None:
        return None
    if isinstance(t_crit, bool) or not isinstance(t_crit, (numbers.Real, np.floating,
                                                           np.integer)):
        raise TypeError(f"t_crit must be None or a real number (critical shut time in s), got "
                        f"{type(t_crit).__name__} ({_V.plain(t_crit)})")
    v = float(t_crit)
    if not math.isfinite(v) or not v > tau:
        raise ValueError(f"t_crit must be a finite critical shut time > t_res={tau:g} s (in "
                         f"s), got {_V.plain(t_crit)}")
    return v


class _HJCGroups(list):
    """Checked groups of :func:`hjc_loglik` (a list of 1-D float64 arrays) that also carry
    their lengths (int64) and their concatenation, so that each evaluation of the likelihood
    (e.g. every step of fit_hjc) does not rebuild them."""
    lens: np.ndarray
    allt: np.ndarray


_F8 = np.dtype(np.float64)


def _check_hjc_groups(groups, tau: float) -> _HJCGroups:
    """Validate the groups of :func:`hjc_loglik` -> :class:`_HJCGroups` of float arrays."""
    hint = "groups must be a sequence of 1-D arrays of interval durations (s)"
    if groups is None or isinstance(groups, (str, bytes, numbers.Number, np.generic)):
        raise TypeError(f"{hint}, got {type(groups).__name__}")
    if isinstance(groups, np.ndarray) and groups.ndim == 1 and groups.dtype != object:
        raise TypeError(f"{hint}, got one 1-D array of numbers: pass [durations] for a single "
                        "group")
    try:
        items = list(groups)
    except TypeError:
        raise TypeError(f"{hint}, got {type(groups).__name__}") from None
    if not items:
        raise ValueError("groups is empty: give at least one group of intervals")
    # fast path (Record.hjc_groups): every group already a 1-D float64 array, lengths
    # checked at once; otherwise each group in turn (converted, then its length checked),
    # so the first bad group is the one reported
    if all([type(g) is np.ndarray and (g.dtype is _F8 or g.dtype == _F8) and g.ndim == 1
            for g in items]):
        lens = np.fromiter(map(len, items), np.int64, count=len(items))
        bad = np.flatnonzero((lens == 0) | (lens % 2 == 0))
        if bad.size:
            _check_group_length(int(bad[0]), int(lens[bad[0]]))
    else:
        conv = []
        for i, g in enumerate(items):
            if not (type(g) is np.ndarray and g.dtype == _F8 and g.ndim == 1):
                g = _hjc_group_array(i, g, hint)
            _check_group_length(i, g.size)
            conv.append(g)
        items = conv
        lens = np.fromiter(map(len, items), np.int64, count=len(items))
    out = _HJCGroups(items)
    allt = np.concatenate(items)
    if np.all(np.isfinite(allt)) and allt.min() >= tau:
        out.lens, out.allt = lens, allt
        return out
    for i, arr in enumerate(items):                 # locate the first bad interval
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            j = int(bad[0])
            raise ValueError(f"groups[{i}][{j}] = {float(arr[j])!r} is not a finite duration "
                             "(s)")
        below = np.flatnonzero(arr < tau)
        if below.size:
            j = int(below[0])
            what = "an open" if j % 2 == 0 else "a shut"
            raise ValueError(f"groups[{i}][{j}] ({what} time) = {arr[j]:.6g} s is shorter "
                             f"than t_res={tau:g} s ({below.size} such intervals in this "
                             "group): every interval of a record resolved at t_res is >= t_res "
                             "(Record.resolve(t_res), then Record.hjc_groups; t_res is in s)")
    raise AssertionError("unreachable")  # pragma: no cover


def _check_group_length(i: int, n: int) -> None:
    if n == 0:
        raise ValueError(f"groups[{i}] is empty: a group holds at least one opening")
    if n % 2 == 0:
        raise ValueError(f"groups[{i}] has {n} intervals, an even number: a group "
                         "alternates open and shut times and starts and ends with an "
                         "opening (odd length); drop its trailing shut time")


def _hjc_group_array(i: int, g, hint: str) -> np.ndarray:
    """One group of :func:`hjc_loglik` as a 1-D float array (type, dtype and shape checked)."""
    if g is None or isinstance(g, (str, bytes, numbers.Number, np.generic)):
        raise TypeError(f"groups[{i}] must be a 1-D array of interval durations (s), got "
                        f"{type(g).__name__} ({_V.plain(g)}); {hint} (pass [durations] for a "
                        "single group)")
    try:
        arr = np.asarray(g)
    except (TypeError, ValueError) as exc:   # e.g. a ragged nested list
        raise ValueError(f"groups[{i}] must be a 1-D array of durations (s): {exc}") \
            from None
    if arr.dtype == bool or arr.dtype.kind not in "iuf":
        raise TypeError(f"groups[{i}] must hold real numbers (durations in s), got dtype "
                        f"{arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"groups[{i}] must be 1-D, got shape {arr.shape}")
    return arr.astype(float)


def hjc_loglik(model, groups, *, t_res=None, t_crit=None, open=None, names=None,
               exact_intervals: int = 2, **conditions) -> float:
    """Log-likelihood of a resolved single-channel record with missed events: the HJC
    likelihood maximised by HJCFIT [HJC90, HJC92, CHS96].

    Each group of apparent intervals ``t1, t2, ..., tn`` (open, shut, open, ..., open; every
    one ``>= t_res``) has likelihood

    ``L = phi_start eG_AF(t1) eG_FA(t2) eG_AF(t3) ... eG_FA(t_(n-1)) eG_AF(tn) end``

    with ``eG_AF(t) = AR(t - t_res) Q_AF exp(Q_FF t_res)`` (A the open states, F the shut
    ones) the matrix of HJC transition densities of :func:`apparent_dwell_times` (whose pdf
    is ``phi_A eG_AF(t) u_F``), ``eG_FA`` the same with the classes exchanged; the result is
    ``sum over groups of ln L``.  Start and end vectors:

    * ``t_crit=None``: ``phi_start`` the equilibrium start vector of apparent openings (the
      stationary vector of ``eG_AF eG_FA`` [HJC92 eq. 10]) and ``end = u_F`` (ones): groups
      taken as stretches of an equilibrium record, e.g. one per sweep;
    * ``t_crit`` given: the CHS vectors [CHS96 section 5; as SCALCS ``qmatlib.CHSvec``
      computes them, citing CHS96 eqs. 5.5/5.7 (start) and 5.8 (end)] for groups separated
      by shut times longer than ``t_crit`` (whose durations are not used, e.g. because the
      channel number is unknown):
      ``H_FA = int_t_crit^inf eG_FA(t) dt``, ``phi_start = phi_F H_FA / (phi_F H_FA u_A)``
      (phi_F the equilibrium start vector of apparent shut times) and ``end = H_FA u_A``.

    Parameters
    ----------
    model : Scheme or (K, K) array_like
        As for :func:`apparent_dwell_times`; the two classes are the open and the shut states.
    groups : sequence of 1-D array_like, or Record
        Interval durations (s) of each group, alternating open and shut, starting and ending
        with an opening (odd length), all ``>= t_res``; e.g.
        ``Record.resolve(t_res).hjc_groups(t_crit)``
        (:meth:`ketacore.analysis.Record.hjc_groups`).  Or a resolved
        :class:`ketacore.analysis.Record`, as :func:`ketacore.fitting.fit_hjc` takes one:
        its ``hjc_groups(t_crit)`` are used at its own resolution ``rec.t_res``, so
        ``hjc_loglik(m, rec, t_crit=tc)`` equals
        ``hjc_loglik(m, rec.hjc_groups(tc), t_res=rec.t_res, t_crit=tc)`` exactly.
    t_res : float, optional
        Time resolution (dead time) the record was resolved at (s), ``0 < t_res < 1`` and
        ``t_res * max|q_ii| <=`` :data:`MAX_T_RES_RATE` (= ln(1/eps) = 36.04), as for
        :func:`apparent_dwell_times`.  Required with groups; with a Record it may be
        omitted (the record's is used), and a value given must equal the record's (to a
        relative 1e-9; a ValueError names both, as in fit_hjc).
    t_crit : float, optional
        Critical shut time (s), ``> t_res``: use the CHS start and end vectors.  The groups
        should be separated by shut times longer than ``t_crit`` and hold none (as
        ``Record.hjc_groups(t_crit)`` splits them); a shut time inside the groups longer
        than ``t_crit`` gets a UserWarning (see Warns).
    open, names
        For a raw Q, as for :func:`dwell_times`.
    exact_intervals : int
        Number of ``t_res``-long pieces (1 to 10) on which the exact ``eG`` is used, as for
        :func:`apparent_dwell_times`; default 2 (``t < 3 t_res``), as HJCFIT and SCALCS.
    **conditions
        For a scheme: V (V), temperature (K), ligand concentrations (M), as for
        :func:`dwell_times`.

    Returns
    -------
    float
        Natural log of the likelihood, summed over the groups (durations in s).  ``-inf``
        when a group has likelihood 0 to double precision (or a negative value from the
        asymptotic approximation).

    Raises
    ------
    TypeError, ValueError
        Bad ``t_res`` (as for :func:`apparent_dwell_times`), ``t_crit`` (not > t_res or not
        finite), ``groups`` (empty, a group empty, not 1-D, of even length, with a non-finite
        duration or one below ``t_res`` -- the message names the group and interval), model
        or conditions (as for :func:`apparent_dwell_times`; also a mechanism never open at
        equilibrium).  A ``t_res`` too long for the mechanism (``t_res`` times its fastest
        rate of leaving a state above :data:`MAX_T_RES_RATE`) is refused before any HJC
        computation with one ValueError, "hjc_loglik: t_res=... s is too long for this
        mechanism: ...", whatever the value (for CH82 at 0.01-10 uM agonist, fastest rate
        1.9e4 s^-1: every ``t_res`` above 1.897 ms); below that limit the value is finite (or
        ``-inf`` as above).  :func:`ketacore.fitting.fit_hjc` takes a ValueError at trial rates as an
        infinite objective, so rates that push ``t_res * max|q_ii|`` over the limit are
        simply avoided by the fit (a ``t_res`` over it at the starting rates is refused).
        ``t_res`` missing with groups (TypeError).  With a Record: not resolved
        (``t_res = 0``), ``t_res`` given but not the record's ("the Record was resolved at
        t_res=... s but hjc_loglik was given t_res=... s; they must be equal"), no group
        (no opening with both ends observed), or the errors of
        :meth:`ketacore.analysis.Record.hjc_groups` (e.g. more than one open level).

    Warns
    -----
    UserWarning
        Once per call, not per group: when the pooled durations look like milliseconds given
        with ``t_res`` in seconds (the rule of :func:`ketacore.analysis.fit_mixture` and
        :meth:`ketacore.analysis.Record.resolve`); and when ``t_crit`` is given and shut
        times inside the groups (odd positions) are longer than it (the message gives their
        number and the longest, in s): the groups were not split at ``t_crit``, which the
        CHS vectors assume (pass ``Record.hjc_groups(t_crit)`` with the same ``t_crit``).

    Notes
    -----
    *Numerical method.*  Precomputed once per call for both classes: the exact-piece
    coefficient matrices (HJC's spectral closed form, checked at construction against block
    matrix exponentials [VL78], which replace it when they disagree by > 1e-9), the
    asymptotic roots and the matrices ``R_j Q_AF exp(Q_FF t_res)``.  Every interval's
    ``eG`` matrix is then evaluated at once as a stack (exact below ``(exact_intervals + 1)
    t_res``, asymptotic beyond, the slowest exponential factored out as a log), each
    opening's matrix is multiplied by the following shut time's, and the ordered product of
    each group is formed by pairwise (tree) reduction vectorised over all groups, each
    product divided by its largest entry with the log of the factor accumulated.  So groups of
    any length neither underflow nor overflow (SCALCS' ``HJClik`` multiplies its running
    vector by 1e-100 when it exceeds 1e50 without adding the factor back to the log
    likelihood, so its values for long groups are too low by multiples of 100 ln 10).

    *Conventions.*  SCALCS' ``HJClik`` returns ``-ln L`` (for minimisation); some HJCFIT /
    DCPROGS outputs print log-likelihoods in log10 (divide ``ln L`` by ln 10 = 2.302585 to
    compare).  Without ``t_crit`` each group's first opening starts from the equilibrium
    vector and nothing is said about what follows its last opening; with ``t_crit`` the
    start is conditional on a preceding shut time > ``t_crit``, and ``end`` is the
    probability (per starting shut state) that the following shut time exceeds ``t_crit``.
    A group's likelihood is a density in s^-n (n its intervals), so ``ln L`` depends on the
    time unit: it is for durations in seconds.

    References
    ----------
    [HJC90] Hawkes, Jalali & Colquhoun (1990) Phil Trans R Soc Lond A 332:511-538,
    doi:10.1098/rsta.1990.0129; [HJC92] (1992) Phil Trans R Soc Lond B 337:383-404,
    doi:10.1098/rstb.1992.0116; [CHS96] Colquhoun, Hawkes & Srodzinski (1996) Phil Trans R
    Soc Lond A 354:2555-2590, doi:10.1098/rsta.1996.0115.
    """
    from .analysis import Record
    if isinstance(groups, Record):
        groups, t_res, t_crit = _hjc_record_groups(groups, t_res, t_crit)
    elif t_res is None:
        raise TypeError("hjc_loglik: t_res is required (the resolution in s the groups were "
                        "resolved at); it may be omitted only when groups is a resolved Record")
    args = _hjc_loglik_args(model, groups, t_res, t_crit, open, names, exact_intervals,
                            conditions)
    _warn_hjc_groups("hjc_loglik", args[6], args[3], args[4], stacklevel=2)
    return _hjc_loglik_checked(*args)


def _hjc_record_groups(rec, t_res, t_crit) -> tuple:
    """``(groups, t_res, t_crit)`` for :func:`hjc_loglik` from a Record, by the rules of
    :func:`ketacore.fitting.fit_hjc` for a data set given as a Record: it must be resolved; a
    real ``t_res`` must equal ``rec.t_res`` (relative 1e-9) and is replaced by it, ``None``
    means ``rec.t_res`` (any other ``t_res`` is left for :func:`_check_t_res` to refuse);
    the groups are ``rec.hjc_groups(t_crit)`` and there must be at least one."""
    if not rec.t_res > 0:
        raise ValueError("hjc_loglik: the Record is not resolved (t_res = 0): call "
                         ".resolve(t_res) first (t_res in s)")
    real = isinstance(t_res, numbers.Real) and not isinstance(t_res, bool)
    if real and not math.isclose(float(t_res), rec.t_res, rel_tol=1e-9):
        # (equal to rounding: 25 * units.us and 25e-6 differ in the last bit)
        raise ValueError(f"hjc_loglik: the Record was resolved at t_res={rec.t_res:.10g} s but "
                         f"hjc_loglik was given t_res={float(t_res):.10g} s; they must be equal "
                         "(omit t_res to use the record's)")
    if t_res is None or real:
        t_res = rec.t_res
    else:
        return rec, t_res, t_crit        # (refused by _check_t_res before the groups are used)
    tc = _check_t_crit(t_crit, _check_t_res(t_res))
    groups = rec.hjc_groups(tc)
    if not groups:
        raise ValueError("hjc_loglik: the Record gives no group (no opening with both ends "
                         "observed)")
    return groups, t_res, tc


def _hjc_loglik_args(model, groups, t_res, t_crit, open, names, exact_intervals,
                     conditions: Mapping) -> tuple:
    """:func:`hjc_loglik`'s argument checks -> the arguments of :func:`_hjc_loglik_checked`
    ``(Q, a, f, tau, tc, n_exact, gs, hint)``, without its warnings (``groups`` not a
    Record; fit_hjc validates each data set through this at its starting rates)."""
    tau = _check_t_res(t_res)
    tc = _check_t_crit(t_crit, tau)
    n_exact = _V.integer("exact_intervals", exact_intervals, minimum=1,
                         maximum=MAX_EXACT_INTERVALS)
    gs = _check_hjc_groups(groups, tau)
    m = _resolve(model, conditions, open, names)
    a = _class_indices("open", m, "open states")
    f = np.setdiff1d(np.arange(m.k), a)
    return m.Q, a, f, tau, tc, n_exact, gs, m.never_entered_hint


def _long_inner_shut_times(gs: "_HJCGroups", tc: float) -> np.ndarray:
    """The shut times inside checked groups (odd positions of each group) longer than
    ``tc`` (s), vectorised over the packed intervals."""
    allt, lens = gs.allt, gs.lens
    idx = np.flatnonzero(allt > tc)                 # long intervals, open or shut (few)
    if not idx.size or allt.size == lens.size:
        return allt[:0]
    ends = np.cumsum(lens)
    grp = np.searchsorted(ends, idx, side="right")  # the group of each
    pos = idx - (ends[grp] - lens[grp])             # its position in its group
    return allt[idx[(pos & 1) == 1]]


def _warn_hjc_groups(fn: str, gs: "_HJCGroups", tau: float, tc: Optional[float],
                     stacklevel: int) -> None:
    """The UserWarnings of :func:`hjc_loglik` on checked groups ``gs`` (once per call, and
    once per data set at the start of fit_hjc, never in its objective): the pooled durations
    look like ms with ``t_res`` in s (``ketacore.analysis._warn_if_units_mixed``), or shut
    times inside the groups are longer than ``tc`` (groups not split at ``t_crit``).
    ``fn`` starts the messages; ``stacklevel`` as for ``warnings.warn`` in the caller."""
    from .analysis import _warn_if_units_mixed
    _warn_if_units_mixed(fn, gs.allt, tau, stacklevel=stacklevel + 1)
    if tc is None:
        return
    long_ = _long_inner_shut_times(gs, tc)
    if long_.size:
        import warnings
        warnings.warn(
            f"{fn}: {long_.size} shut time(s) inside the groups are longer than "
            f"t_crit={tc:g} s (the longest {float(long_.max()):.6g} s): the groups were not "
            "split at t_crit, but the CHS start and end vectors used with t_crit assume that "
            "shut times longer than t_crit separate groups and are not in them; pass "
            "Record.hjc_groups(t_crit) with the same t_crit (durations in s)",
            UserWarning, stacklevel=stacklevel + 1)


def _hjc_loglik_checked(Q: np.ndarray, a: np.ndarray, f: np.ndarray, tau: float,
                        tc: Optional[float], n_exact: int, gs: list,
                        hint: Callable[[], str] = lambda: "") -> float:
    """:func:`hjc_loglik` after its argument checks (Q a valid generator, a/f the open and
    shut states, tau/tc/n_exact checked, gs from :func:`_check_hjc_groups`); fit_hjc's
    objective calls it directly with groups it checked once."""
    _check_t_res_rates("hjc_loglik", tau, Q)
    try:
        lik = _HJCLikelihood(Q, a, f, tau, tc, n_exact)
    except np.linalg.LinAlgError as exc:   # not seen below the limit; never a raw numpy error
        raise ValueError(f"hjc_loglik: t_res={tau:g} s: the missed-events computation failed "
                         f"for this mechanism ({exc})") from None
    except ValueError as exc:
        msg = str(exc)
        if msg.startswith("apparent_dwell_times:"):
            raise ValueError("hjc_loglik:" + msg[len("apparent_dwell_times:"):]) from None
        if "never entered" in msg and hint() not in msg:
            raise ValueError(msg + hint()) from None
        raise
    return float(lik.group_logliks(gs).sum())


def first_latency(model, target="open", initial=None, *, open=None, names=None,
                  **conditions) -> Union[ExponentialMixture, PhaseType]:
    """Distribution of the time to first entry into a class after a step [CH95].

    With S the states outside the target class T and ``p0_S`` the initial
    occupancies: ``f(t) = p0_S expm(Q_SS t) Q_ST u_T``.

    Parameters
    ----------
    model : Scheme or (K, K) array_like
        Conditions after the step (V in V, temperature in K, concentrations in M), or a
        generator Q (s^-1).
    target : "open", "shut", or names/indices
        The class T whose first entry is timed.
    initial : as for :func:`relaxation`
        Start distribution; it must have no occupancy in T.  Required with a raw Q.
    open, names
        For a raw Q: the open states (indices, names or boolean mask; needed when ``target``
        is "open" or "shut") and optional state names (so that ``target`` and ``initial``
        can be names).  With a scheme, ``open`` overrides the open states its conductance
        gives; ``names`` is refused (a scheme names its own states).
    **conditions
        For a scheme: the conditions after the step, passed to ``q_matrix`` -- V (V),
        temperature (K), ligand concentrations (M).  Refused with a raw Q.

    Returns
    -------
    ExponentialMixture or PhaseType
        Time constants in s, pdf in s^-1, mean and sd in s.  ``areas.sum()`` (``total``) is
        the probability that T is ever reached (< 1 when some start states can be trapped
        away from T, e.g. by desensitisation or an absorbing state); ``mean`` is conditional
        on reaching T. Areas can be negative (a rising phase).  A :class:`PhaseType` (the
        exact matrix form, same ``pdf``/``cdf``/``survival``/``mean``/``sd``/``total``/
        ``sample``) when ``Q_SS`` has no accurate spectral expansion: a defective or nearly
        defective ``Q_SS``, e.g. two sequential steps of equal rate k with no way back
        (Erlang(2, k), ``k^2 t exp(-k t)``, is no mixture of exponentials).  Never for a
        mechanism with microscopic reversibility whose equilibrium after the step is unique
        and positive (``Q_SS`` is then symmetrised by it and diagonalised exactly); otherwise the
        general eigendecomposition is kept when it matches the matrix exponential to
        :data:`SPECTRAL_CHECK_RTOL` (1e-7) of the peak pdf, as in :func:`dwell_times`,
        :func:`bursts` and :func:`relaxation`.

    Raises
    ------
    ValueError
        If the initial distribution has occupancy in the target class.
    """
    m = _resolve(model, conditions, open, names)
    t_idx = _class_indices(target, m, "target")
    s_idx = np.setdiff1d(np.arange(m.k), t_idx)
    p0 = _initial_vector(initial, m, conditions)
    if p0[t_idx].sum() > 1e-12:
        raise ValueError(f"initial distribution has occupancy {p0[t_idx].sum():g} in the "
                         "target class; the first latency is defined from outside it")
    QSS = m.Q[np.ix_(s_idx, s_idx)]
    end = m.Q[np.ix_(s_idx, t_idx)].sum(axis=1)
    # a reversible mechanism: Q_SS is symmetrised by the equilibrium occupancies (detailed
    # balance, p_i q_ij = p_j q_ji), so the exact eigh path applies; otherwise (no unique
    # equilibrium, a zero occupancy, or no detailed balance) the checked eig path
    try:
        d = _equilibrium_q(m.Q)[s_idx]
    except NoUniqueEquilibrium:
        d = None
    return _mixture_from(-QSS, p0[s_idx], end, d=d, allow_zero=True)


def bursts(model, within, *, open=None, names=None, **conditions) -> Bursts:
    """Burst statistics of an equilibrium single-channel record [CH82].

    States are split into A (open), B (``within``: short-lived shut states,
    sojourns in which separate openings within a burst) and C (all other shut
    states, the gaps between bursts).

    With ``G_AB = (-Q_AA)^-1 Q_AB``, ``G_BA = (-Q_BB)^-1 Q_BA``:

    * start vector ``phi_b = p_C (Q_CA + Q_CB G_BA)`` normalised (CH82 3.2);
    * end vector ``e_b = (I - G_AB G_BA) u_A`` (CH82 3.4);
    * openings per burst ``P(r) = phi_b (G_AB G_BA)^(r-1) e_b``,
      mean ``phi_b (I - G_AB G_BA)^-1 u_A`` (3.5, 3.7), as a mixture of geometrics over the
      eigenvalues of ``G_AB G_BA`` (3.9) when that is accurate, else exactly in matrix form
      (:class:`DiscretePhaseType`);
    * burst length ``f(t) = phi_b [expm(Q_EE t)]_AA (-Q_AA) e_b``, E = A+B
      (3.17), mean ``phi_b (I - G_AB G_BA)^-1 (-Q_AA)^-1 (I + Q_AB (-Q_BB)^-1 G_BA) u_A``
      (3.19);
    * total open time per burst: rates from ``-(Q_AA + Q_AB G_BA)`` (3.23),
      mean ``phi_b (-(Q_AA + Q_AB G_BA))^-1 u_A`` (3.26);
    * total shut time per burst, mean ``phi_b G_AB (-W_BB)^-1 G_BA u_A`` over all bursts
      (3.41), ``W_BB = Q_BB + Q_BA G_AB`` the generator of the process watched only while in
      B (open sojourns cut out); its distribution for the bursts with at least two openings
      (probability ``p_multiple = phi_b G_AB G_BA u_A``) is
      ``f(t) = phi_b G_AB expm(W_BB t) Q_BA e_b / p_multiple`` (3.40): a gap counts only when
      an opening follows it (``Q_BA``), and the burst then ends from that opening (``e_b``);
      a sojourn in B that leads to C is not part of the burst;
    * gaps within bursts (3.75), mean = mean shut time / (mean openings - 1);
    * shut time between bursts: every shut time starts at the end of an opening (entry
      rates ``p_A Q_AF``); the ones that never reach C stay in B and end in A, so
      ``f(t) = [p_A Q_AF expm(Q_FF t) Q_FA u_A - p_A Q_AB expm(Q_BB t) Q_BA u_A] / rate``
      (F = B + C; ``rate = p_A Q_AF u_F P(visit C)`` is the burst rate, the flux that ends
      bursts), a mixture of the rates of ``-Q_FF`` and ``-Q_BB`` whose areas may be negative
      (the two terms' components are not merged unless that is lossless to rounding: nearly
      equal rates with large opposite areas must keep their exact rates for the difference to
      be right); its mean is ``mean_between`` (3.86).

    Parameters
    ----------
    model : Scheme or (K, K) array_like
        A scheme (with its ``**conditions``) or a generator Q (s^-1).
    within : names/indices
        The short shut states B (may be empty: bursts are then single openings).
        Must all be shut; at least one shut state must remain for C.
    open, names
        For a raw Q, as for :func:`dwell_times`.
    **conditions
        For a scheme: V (V), temperature (K), ligand concentrations (M), as for
        :func:`dwell_times`.

    Returns
    -------
    Bursts
        All times in s, rates in s^-1.  With no B states, ``between`` is the distribution of
        all shut times, ``shut_time`` is None and ``p_multiple`` 0.  ``length``,
        ``open_time``, ``gaps``, ``shut_time`` and ``between`` are :class:`PhaseType` (exact
        matrix form) where their sub-generator has no accurate spectral expansion (see
        :func:`first_latency`): defective or nearly so, or a general-``eig`` expansion (a
        mechanism without microscopic reversibility) off the exact ``expm`` value by more than
        :data:`SPECTRAL_CHECK_RTOL` of the peak pdf at the check times
        (:func:`_expansion_accurate`, the one check shared with :func:`dwell_times`,
        :func:`first_latency` and :func:`relaxation`); a reversible mechanism takes the
        symmetric path, always accurate and unchecked, so its results are unchanged.  The
        burst length and the shut time between bursts are phase-type too, and their
        PhaseType is a *proper* one (``sample`` simulates it), not the defining formulas
        transcribed: ``length`` is the chain in A + B conditioned on returning to A from B
        (Doob's h-transform, exit rate ``Q_AC u + Q_AB P(C before A from B)``), ``between``
        the chain on B (C not yet visited, conditioned on reaching C) then B + C, ending on
        entry to A -- the difference of the two ``expm`` terms above is never formed, so it
        loses no digits to their cancellation.  ``mean_length`` and ``mean_between`` are the
        closed-form means whatever the form.  ``openings`` is the :class:`GeometricMixture`
        of CH82 3.9 when it matches the exact matrix powers ``phi_b (G_AB G_BA)^(r-1) e_b``
        at every r up to where the tails no longer matter, to :data:`SPECTRAL_CHECK_RTOL` of
        the peak pmf (:func:`_openings_accurate`; ``G_AB G_BA`` has no symmetric path, so
        this check is made for every mechanism, and changes nothing for those whose mixture
        is accurate, e.g. every library model), and otherwise -- ``G_AB G_BA`` defective
        (a Jordan block, e.g. nilpotent: a one-way path O1 -> B -> O2 -> C gives exactly two
        openings per burst) or nearly so -- the exact :class:`DiscretePhaseType` built from
        ``(phi_b, G_AB G_BA, e_b)``, whose ``sample`` draws exactly.
    """
    m = _resolve(model, conditions, open, names)
    mask = m.require_open()
    A = np.flatnonzero(mask)
    if A.size == 0:
        raise ValueError("there are no open states")
    if isinstance(within, (str, int, np.integer)):
        within = [within]
    try:
        within = list(within)
    except TypeError:
        raise TypeError("within must be a list of the short shut states (names or indices; "
                        f"[] for none), got {type(within).__name__} ({_V.plain(within)})") from None
    B = _resolve_indices(within, m.k, m.states, "within") if within else np.zeros(0, int)
    if B.size and np.any(mask[B]):
        bad = [m.states[i] if m.states else int(i) for i in B[mask[B]]]
        raise ValueError(f"within: states {bad} are open; 'within' must list shut states")
    C = np.setdiff1d(np.flatnonzero(~mask), B)
    if C.size == 0:
        raise ValueError("within lists every shut state; at least one shut state must be "
                         "left for the gaps between bursts")
    Q = m.Q
    kA = A.size
    uA = np.ones(kA)
    blk = lambda r, c: Q[np.ix_(r, c)]  # noqa: E731
    QAA, QAB, QBA, QBB = blk(A, A), blk(A, B), blk(B, A), blk(B, B)
    QCA, QCB = blk(C, A), blk(C, B)
    p = _equilibrium_q(Q)
    nQAA_inv = np.linalg.inv(-QAA)
    if B.size:
        nQBB_inv = np.linalg.inv(-QBB)
        GAB = nQAA_inv @ QAB
        GBA = nQBB_inv @ QBA
        GG = GAB @ GBA
        start = p[C] @ (QCA + QCB @ GBA)
    else:
        GAB = np.zeros((kA, 0))
        GBA = np.zeros((0, kA))
        GG = np.zeros((kA, kA))
        nQBB_inv = np.zeros((0, 0))
        start = p[C] @ QCA
    tot = start.sum()
    if not tot > 0:
        raise ValueError("bursts never start at equilibrium (no flux from C into the burst)")
    phi = start / tot
    I = np.eye(kA)
    eb = (I - GG) @ uA
    inv_IGG = np.linalg.inv(I - GG)
    mean_openings = float(phi @ inv_IGG @ uA)
    # openings distribution: geometric mixture over eigenvalues of GG when it is accurate,
    # else the exact matrix form (_openings_distribution)
    openings = _openings_distribution(GG, phi, eb)
    # burst length: the spectral expansion of -Q_EE when it is accurate (always on the
    # symmetric path of a reversible mechanism; otherwise checked against expm, as
    # _mixture_from), else the exact phase-type form (_burst_length_exact)
    E = np.concatenate([A, B])
    QEE = blk(E, E)
    endv = -QAA @ eb
    try:
        lam, AE, sym = _spectral(-QEE, p[E], path=True)
    except _Defective:
        length = _burst_length_exact(Q, A, B, C, phi)
    else:
        w = np.einsum("i,mij,j->m", phi, AE[:, :kA, :kA], endv)
        length = _sorted_mixture(1.0 / lam, w / lam)
        if not sym:
            pt = _burst_length_exact(Q, A, B, C, phi)
            if not _expansion_accurate(pt.generator, pt.start, pt.exit, length.pdf, lam):
                length = pt
    mean_length = float(phi @ inv_IGG @ nQAA_inv @ (I + QAB @ nQBB_inv @ GBA) @ uA)
    # total open time per burst
    VAA = QAA + QAB @ GBA
    open_time = _mixture_from(-VAA, phi, -VAA @ uA, d=p[A])
    mean_open = float(phi @ np.linalg.inv(-VAA) @ uA)
    # shut time per burst and gaps
    p_multiple = float(phi @ GG @ uA) if B.size else 0.0
    if B.size and mean_openings - 1.0 > 1e-14:
        WBB = QBB + QBA @ GAB
        mean_shut = float(phi @ GAB @ np.linalg.inv(-WBB) @ GBA @ uA)
        # gaps: phi (I-GG)^-1 G_AB expm(Q_BB t) (-Q_BB) G_BA u / (mu - 1)
        gstart = phi @ inv_IGG @ GAB / (mean_openings - 1.0)
        gaps = _mixture_from(-QBB, gstart, -QBB @ GBA @ uA, d=p[B])
        mean_gap = mean_shut / (mean_openings - 1.0)
        # total shut time, bursts of >= 2 openings (3.40): phi G_AB expm(W t) Q_BA e_b / P(>=2)
        shut_time = _mixture_from(-WBB, phi @ GAB / p_multiple, QBA @ eb, d=p[B])
    else:
        mean_shut = 0.0
        gaps = None
        mean_gap = float("nan")
        shut_time = None
    between = _between_bursts(Q, p, A, B, float(tot))
    return Bursts(openings=openings, mean_openings=mean_openings, length=length,
                  mean_length=mean_length, open_time=open_time, mean_open_time=mean_open,
                  mean_shut_time=mean_shut, gaps=gaps, mean_gap=mean_gap,
                  start=_frozen_array(phi), rate=float(tot),
                  mean_between=float((1.0 - tot * mean_length) / tot),
                  open_states=tuple(int(i) for i in A),
                  within_states=tuple(int(i) for i in B),
                  between_states=tuple(int(i) for i in C),
                  between=between, shut_time=shut_time, p_multiple=p_multiple)


def _openings_distribution(GG: np.ndarray, phi: np.ndarray, eb: np.ndarray):
    """Openings per burst, ``P(r) = phi_b GG^(r-1) e_b`` (CH82 3.5), GG = G_AB G_BA.

    The geometric mixture over the eigenvalues of GG (CH82 3.9; weights ``phi_b A_m e_b`` of
    the spectral matrices, rounding-level components dropped by the probability they carry,
    ``w / (1 - rho)``) when GG has an eigendecomposition and the mixture matches the exact
    matrix powers (:func:`_openings_accurate`, :data:`SPECTRAL_CHECK_RTOL` of the peak pmf);
    otherwise -- GG defective (a Jordan block, e.g. nilpotent) or nearly so -- the exact
    :class:`DiscretePhaseType` ``(phi_b, GG, e_b)``."""
    try:
        rho, Ar = _spectral(GG)
    except _Defective:
        return DiscretePhaseType(phi, GG, eb)
    wts = np.einsum("i,mij,j->m", phi, Ar, eb)
    with np.errstate(divide="ignore", invalid="ignore"):
        carried = wts / (1.0 - rho)                 # the probability each component carries
    keep = ~_rounding_level(carried) if np.all(np.isfinite(carried)) else np.ones(rho.size, bool)
    mix = GeometricMixture(rho[keep], wts[keep])
    if not _openings_accurate(GG, phi, eb, mix):
        return DiscretePhaseType(phi, GG, eb)
    return mix


def _hit_first(Q: np.ndarray, B: np.ndarray, target: np.ndarray):
    """For the states B (a transient class), the ones from which ``target`` (a set of states
    outside B) can be reached through B, and for those ``h_b = P(the first state outside B
    visited is in target)``, ``(-Q_BB)^-1 Q_B,target u`` restricted to them (the others have
    h = 0 exactly), by a solve on sums of non-negative rates: no ``1 - x`` cancellation."""
    if B.size == 0:
        return B, np.zeros(0)
    QBB = Q[np.ix_(B, B)]
    into = Q[np.ix_(B, target)].sum(axis=1)
    keep = _reachable(-QBB, into)
    Bk = B[keep]
    if Bk.size == 0:
        return Bk, np.zeros(0)
    h = np.linalg.solve(-Q[np.ix_(Bk, Bk)], into[keep])
    ok = h > 0                      # > 0 in exact arithmetic; should rounding (or underflow)
    return Bk[ok], h[ok]            # make it <= 0, the state (never entered) is dropped


def _burst_length_exact(Q: np.ndarray, A: np.ndarray, B: np.ndarray, C: np.ndarray,
                        phi: np.ndarray) -> PhaseType:
    """Burst length (CH82 3.17, ``phi [expm(Q_EE t)]_AA (-Q_AA) e_b``) as an exact, proper
    :class:`PhaseType`: the Markov chain in the burst states E = A + B *conditioned* on the
    burst going on (Doob's h-transform).  From an open state the channel enters a B state b
    that leads back to A before C (probability ``h_b``, :func:`_hit_first`) at rate
    ``q_ab h_b``, and the burst ends (the exit) at rate ``Q_AC u + Q_AB (1 - h)``, which is
    ``(-Q_AA) e_b`` without its cancellation; inside B the rates are ``q_bb' h_b' / h_b`` and
    ``q_ba / h_b`` (rows summing to 0).  ``start expm(G t) exit`` is the CH82 pdf exactly
    (``G = D^-1 Q_EE D``, ``D = diag(1_A, h)``, and the B states with h = 0 never return to A),
    and the chain is a genuine phase-type one, so ``sample`` simulates it."""
    Bk, h = _hit_first(Q, B, A)
    xB = np.zeros(B.size)               # P(C before A) from each B state
    if B.size:
        Bc, xc = _hit_first(Q, B, C)
        xB[np.searchsorted(B, Bc)] = xc
    uC = np.ones(C.size)
    exit_a = Q[np.ix_(A, C)] @ uC + Q[np.ix_(A, B)] @ xB
    kA, kb = A.size, Bk.size
    G = np.zeros((kA + kb, kA + kb))
    G[:kA, :kA] = Q[np.ix_(A, A)]
    G[:kA, kA:] = Q[np.ix_(A, Bk)] * h[None, :]
    G[kA:, :kA] = Q[np.ix_(Bk, A)] / h[:, None]
    G[kA:, kA:] = Q[np.ix_(Bk, Bk)] * h[None, :] / h[:, None]
    start = np.concatenate([phi, np.zeros(kb)])
    return _phase_type(-G, start, np.concatenate([exit_a, np.zeros(kb)]))


def _between_bursts_exact(Q: np.ndarray, p: np.ndarray, A: np.ndarray, B: np.ndarray,
                          rate: float) -> PhaseType:
    """Shut time between bursts as an exact, proper :class:`PhaseType`, with no difference of
    two terms: the chain on B0 (in B, C not yet visited) followed by F = B + C (C visited),
    *conditioned* on visiting C (Doob's h-transform on B0, ``h_b = P(C before A)`` from b,
    :func:`_hit_first`).  Entry from the end of an opening: ``p_A Q_AB0 h / rate`` into B0 and
    ``p_A Q_AC / rate`` into C (summing to 1: ``rate`` is the flux of shut times that visit C);
    in B0 the rates are ``q_bb' h_b' / h_b`` and ``q_bc / h_b`` (rows summing to 0: the returns
    to A that make a gap within a burst are conditioned away); from F the channel moves with
    ``Q_FF`` and the shut time ends at rate ``Q_FA u_A``.  Its pdf is exactly
    ``[p_A Q_AF expm(Q_FF t) Q_FA u_A - p_A Q_AB expm(Q_BB t) Q_BA u_A] / rate``."""
    F = np.setdiff1d(np.arange(Q.shape[0]), A)
    C = np.setdiff1d(F, B)
    B0, h = _hit_first(Q, B, C)
    k0, kF = B0.size, F.size
    posC = k0 + np.searchsorted(F, C)
    G = np.zeros((k0 + kF, k0 + kF))
    G[:k0, :k0] = Q[np.ix_(B0, B0)] * h[None, :] / h[:, None]
    G[:k0, posC] = Q[np.ix_(B0, C)] / h[:, None]
    G[k0:, k0:] = Q[np.ix_(F, F)]
    start = np.zeros(k0 + kF)
    start[:k0] = (p[A] @ Q[np.ix_(A, B0)]) * h / rate
    start[posC] = p[A] @ Q[np.ix_(A, C)] / rate
    exit_ = np.concatenate([np.zeros(k0), Q[np.ix_(F, A)].sum(axis=1)])
    return _phase_type(-G, start, exit_)


def _between_bursts(Q: np.ndarray, p: np.ndarray, A: np.ndarray, B: np.ndarray,
                    rate: float):
    """Shut time between bursts (see :func:`bursts`): the shut times that visit C,
    ``[p_A Q_AF expm(Q_FF t) Q_FA u_A - p_A Q_AB expm(Q_BB t) Q_BA u_A] / rate``.

    ``rate`` (the burst rate, ``p_C (Q_CA + Q_CB G_BA) u_A``) is the flux of shut times that
    visit C, ``p_A Q_AF u_F - p_A Q_AB (-Q_BB)^-1 Q_BA u_A`` at equilibrium, computed without
    that subtraction.

    The two terms are kept as separate components even where their rates nearly coincide:
    their areas can be large and of opposite sign, and only the exact rates reproduce the
    cancellation (the pdf is 0 at t = 0 when no C state is adjacent to A).  Summing the areas
    at a common rate (the MERGE_RTOL rule for one matrix's degenerate eigenvalues) gave errors
    up to 6e-4 of the peak pdf and a negative pdf for CH82 at 10 nM (rates 19001.18 s^-1 of
    ``-Q_FF`` and ``-Q_BB`` 1e-9 apart); only rates whose merge is lossless to rounding are
    merged (:func:`_merge_lossless`, e.g. an exactly shared mode, whose area then cancels), and
    rounding-level areas are dropped (AREA_RTOL).

    The mixture is returned when it is accurate; otherwise the exact
    :class:`PhaseType` of :func:`_between_bursts_exact`: when ``-Q_FF`` or ``-Q_BB`` has no
    accurate spectral expansion (defective or nearly so), or when an expansion from the
    general ``eig`` (a mechanism without microscopic reversibility) fails the shared check
    (:func:`_expansion_accurate`, :data:`SPECTRAL_CHECK_RTOL` of the peak pdf) against the
    exact chain.  With both blocks on the symmetric path (a reversible mechanism) the
    expansion is kept unchecked, as everywhere else."""
    F = np.setdiff1d(np.arange(Q.shape[0]), A)
    blk = lambda r, c: Q[np.ix_(r, c)]  # noqa: E731
    lams, areas = [], []
    all_sym = True
    for S, sign in ((F, 1.0), (B, -1.0)):
        if S.size == 0:
            continue
        try:
            lam, Am, sym = _spectral(-blk(S, S), p[S], path=True)
        except _Defective:
            return _between_bursts_exact(Q, p, A, B, rate)
        all_sym = all_sym and sym
        w = np.einsum("i,mij,j->m", p[A] @ blk(A, S), Am, blk(S, A).sum(axis=1))
        lams.append(lam)
        areas.append(sign * w / lam / rate)
    lam, area = _merge_lossless(np.concatenate(lams), np.concatenate(areas))
    mix = _sorted_mixture(1.0 / lam, area)
    if not all_sym:
        pt = _between_bursts_exact(Q, p, A, B, rate)
        if not _expansion_accurate(pt.generator, pt.start, pt.exit, mix.pdf,
                                   np.concatenate(lams)):
            return pt
    return mix


def _sorted_mixture(taus, areas) -> ExponentialMixture:
    """The mixture sorted by tau, without rounding-level components (AREA_RTOL)."""
    taus, areas = np.asarray(taus), np.asarray(areas)
    keep = ~_rounding_level(areas)
    taus, areas = taus[keep], areas[keep]
    order = np.argsort(np.real(taus), kind="stable")
    return ExponentialMixture(taus[order], areas[order])


def concentration_response(scheme, ligand: str, concentrations=None, *, open=None,
                           **other_conditions) -> ConcentrationResponse:
    """Equilibrium Po against the concentration of ``ligand``, with EC50 and Hill slope.

    Parameters
    ----------
    scheme : Scheme
        Must have ``q_matrix`` taking ``ligand`` as a keyword.
    ligand : str
        Name of the ligand varied.
    concentrations : array_like, optional
        Concentrations (M), 1-d (a scalar is refused: pass ``[c]``), each in
        [0, 10] M, at which to report Po
        (checked before any work); default 61 points log-spaced from 1e-10 to
        1e-1 M. EC50, Hill slope and the extremes do not depend
        on this grid.
    open : optional
        Override of the open states given by the scheme's conductance (indices, names or
        boolean mask).
    **other_conditions
        V (V), temperature, other ligand concentrations (M), held fixed.

    Returns
    -------
    ConcentrationResponse

    Notes
    -----
    The far end of the curve is found by scanning c from 1e-15 M up in
    half-decade steps until Po changes by less than 1e-10 (relative) twice in a
    row, or c reaches 10 M (the largest concentration ketacore accepts). An
    interior extremum (bell-shaped curve) is refined by bounded Brent
    minimisation in ln c; a plateau is the limit c -> inf, Richardson-extrapolated
    in 1/c from the last three concentrations (Po is a rational function of c,
    because rates are affine in each concentration). EC50 is the root of
    ``(Po(c) - P0)/(Pext - P0) = 1/2`` by Brent's method in ln c (xtol 1e-13).
    The Hill slope at EC50 is ``4 c dPo/dc / (Pext - P0)``, with the
    derivative in ln c by a 5-point central difference (h = 1e-3), error
    about 1e-10 relative.

    References
    ----------
    Colquhoun D, Hawkes AG (1995). A Q-matrix cookbook. In: Sakmann B, Neher E (eds)
    Single-Channel Recording, 2nd ed. Plenum, New York, ch. 20 [CH95] (Po from the
    equilibrium occupancies); Colquhoun D (1998). Binding, gating, affinity and efficacy.
    Br J Pharmacol 125:924-947. doi:10.1038/sj.bjp.0702164 (EC50 and Hill slope of a
    mechanism; DOI not independently verified).
    """
    scheme = _model_or_name(scheme)
    if not _is_scheme(scheme):
        raise TypeError("concentration_response needs a Scheme (with q_matrix), not a raw Q")
    if not isinstance(ligand, str):
        raise TypeError(f"ligand must be a str, got {type(ligand).__name__}")
    ligs = getattr(scheme, "ligands", None)
    if ligs is not None and ligand not in tuple(ligs):
        raise ValueError(f"unknown ligand {_V.plain(ligand)}; scheme ligands are {list(ligs)}")
    if ligand in other_conditions:
        raise TypeError(f"{_V.plain(ligand)} is the varied ligand; do not also pass it as a "
                        "condition")

    if concentrations is None:
        concentrations = np.logspace(-10, -1, 61)
    conc = _numeric_array("concentrations", concentrations)
    if np.iscomplexobj(conc):
        raise TypeError("concentrations must be real (M)")
    conc = conc.astype(float)
    if conc.ndim == 0:
        raise ValueError(f"concentrations must be a 1-d array of concentrations (M), got a "
                         f"scalar ({_V.plain(conc[()])}): pass [c] for a single concentration")
    if (conc.ndim != 1 or np.any(np.isnan(conc)) or np.any(conc < 0)
            or np.any(conc > _C_CAP)):
        raise ValueError(f"concentrations must be a 1-d array of values in [0, {_C_CAP:g}] M "
                         "(ketacore uses molar: 10 * ketacore.units.uM, not 10)")
    # the user's concentrations warn here (UnitsWarning above 100 mM); the scan up to the
    # concentration limit below is ketacore's own, and quiet
    _V.implausible_concentrations("concentrations", conc)
    for k, v in other_conditions.items():
        if k not in ("V", "temperature") and isinstance(v, (int, float, np.number)):
            _V.concentration(k, v)

    def po(c: float) -> float:
        c = min(float(c), float(_C_CAP))  # exp(log(c)) may round just above the cap
        with _V.quiet_units():
            return open_probability(scheme, open=open, **{ligand: c}, **other_conditions)

    p0 = po(0.0)
    # scan upwards in half-decade steps up to the largest concentration ketacore accepts
    cs, ps = [], []
    flat = 0
    last = p0
    grid = [float(c) for c in 10.0 ** np.arange(-15.0, math.log10(_C_CAP), 0.5)
            if c < _C_CAP * (1 - 1e-6)] + [float(_C_CAP)]
    for c in grid:
        val = po(c)
        cs.append(c)
        ps.append(val)
        if abs(val - last) <= 1e-10 * max(abs(val), 1e-300) and c > 1e-3:
            flat += 1
            if flat >= 2:
                break
        else:
            flat = 0
        last = val
    ps_a = np.array(ps)
    pmax_scan, pmin_scan = ps_a.max(), ps_a.min()
    increasing = (pmax_scan - p0) >= (p0 - pmin_scan)
    sign = 1.0 if increasing else -1.0
    iext = int(np.argmax(sign * ps_a))
    if iext < len(cs) - 3:
        # interior extremum: refine in ln c
        lo = math.log(cs[max(iext - 1, 0)])
        hi = math.log(cs[min(iext + 1, len(cs) - 1)])
        res = optimize.minimize_scalar(lambda x: -sign * po(math.exp(x)), bounds=(lo, hi),
                                       method="bounded", options={"xatol": 1e-10})
        c_ext = math.exp(res.x)
        p_ext = po(c_ext)
        if sign * p_ext < sign * ps_a[iext]:
            c_ext, p_ext = cs[iext], ps_a[iext]
    else:
        # plateau: limit c -> inf. Po is a rational function of c (rates are affine in
        # each concentration), hence analytic in h = 1/c near 0; Richardson-extrapolate
        # from c, c/2, c/4 (removes the O(h) and O(h^2) terms).
        c_top = cs[-1]
        f1, f2, f4 = ps_a[-1], po(c_top / 2), po(c_top / 4)
        r1, r2 = 2 * f1 - f2, 2 * f2 - f4
        c_ext, p_ext = math.inf, (4 * r1 - r2) / 3.0
    if abs(p_ext - p0) <= 1e-12 * max(abs(p0), 1e-300):
        ec50 = hill = float("nan")
    else:
        def g(x):
            return (po(math.exp(x)) - p0) / (p_ext - p0) - 0.5

        x_hi = math.log(c_ext) if math.isfinite(c_ext) else math.log(cs[-1])
        if g(x_hi) <= 0:
            raise ValueError("the response does not reach half-way by the largest "
                             f"concentration allowed ({_C_CAP:g} M)")
        x_lo = math.log(1e-15)
        while g(x_lo) >= 0:  # pragma: no cover - response already half-way at 1 fM
            x_lo -= 10.0
            if x_lo < math.log(1e-60):
                raise ValueError("half-maximal response below 1e-60 M")
        x50 = optimize.brentq(g, x_lo, x_hi, xtol=1e-13, rtol=4 * np.finfo(float).eps,
                              maxiter=500)
        ec50 = math.exp(x50)
        h = 1e-3
        f = [po(math.exp(x50 + s * h)) for s in (-2, -1, 1, 2)]
        dp = (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * h)
        hill = 4.0 * dp / (p_ext - p0)
    curve = np.array([po(x) for x in conc])
    allp = np.concatenate([ps_a, [p0, p_ext], curve])
    return ConcentrationResponse(
        ligand=ligand, concentrations=_frozen_array(conc), popen=_frozen_array(curve),
        popen_zero=float(p0), popen_max=float(allp.max()), popen_min=float(allp.min()),
        c_extreme=float(c_ext), increasing=bool(increasing), ec50=float(ec50),
        hill=float(hill))
