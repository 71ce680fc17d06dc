"""Q-matrix theory: exact equilibrium, relaxation, dwell-time and burst results.

Pure numpy/scipy. Every public function takes *either* a scheme plus its
conditions, ``f(scheme, V=-0.07, glutamate=1e-6)``, *or* a raw generator,
``f(Q, open=[0, 1])``:

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
``numpy.linalg.eig`` is used and the reconstruction ``V diag(lambda) V^-1``
is checked; a (nearly) defective matrix, for which no spectral expansion
exists, raises ValueError. In both cases components whose rates agree to
1e-9 (relative) are merged, so a degenerate rate appears once with the
summed area. Rates with an imaginary part (possible only without
microscopic reversibility) are kept as complex conjugate pairs.

References
----------
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
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Tuple

import numpy as np
from scipy import optimize, sparse
from scipy.sparse import csgraph

from . import _validate as _V

__all__ = [
    "ExponentialMixture",
    "GeometricMixture",
    "Relaxation",
    "Bursts",
    "ConcentrationResponse",
    "equilibrium",
    "rest_state",
    "NoUniqueEquilibrium",
    "open_probability",
    "relaxation",
    "dwell_times",
    "bursts",
    "concentration_response",
    "first_latency",
    "partition",
    "is_reversible",
    "validate_q",
]

#: Relative tolerance on row sums of Q (relative to the sum of |q_ij| in the row).
ROW_SUM_RTOL = 1e-9
#: Rates (eigenvalues) closer than this (relative) are treated as one component.
MERGE_RTOL = 1e-9
#: Relative tolerance for microscopic reversibility when choosing the symmetric path.
REVERSIBILITY_RTOL = 1e-9

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

    def sample(self, n: int, rng=None) -> np.ndarray:
        """Draw ``n`` durations (s); ``inf`` where the event never happens.

        ``n`` is an integer >= 0. The mixture must be a distribution: ``total`` in [0, 1]
        (the probability that the event happens) and a pdf >= 0 for all t >= 0 (negative
        areas are allowed when they keep it so, e.g. a latency with a rising phase);
        otherwise ValueError. Uses the mixture directly when all components are real with
        areas >= 0, otherwise inverts the cdf numerically (bisection to ~1e-12 relative).
        ``rng`` is anything accepted by ``numpy.random.default_rng``.
        """
        n = _V.integer("n", n, minimum=0)
        # out, u and the bisection arrays, plus (n, k) temporaries of the cdf
        _V.check_memory("ExponentialMixture.sample", n * 8.0 * (6 + 3 * self.n_components))
        self._check_distribution()
        rng = np.random.default_rng(rng)
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


@dataclass(frozen=True)
class GeometricMixture:
    """A distribution on r = 1, 2, ... written as a mixture of geometrics.

    ``pmf(r) = sum_i weights[i] * rhos[i] ** (r - 1)``  (CH82 eq. 3.9).

    Attributes
    ----------
    rhos : ndarray
        Eigenvalues of G_AB G_BA (0 <= rho < 1 for a proper distribution).
    weights : ndarray
        Coefficient of each component.
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


@dataclass(frozen=True)
class Relaxation:
    """Relaxation of occupancies towards equilibrium after a step.

    ``p(t) = equilibrium + sum_m amplitudes[m] * exp(-t / taus[m])`` and
    ``Po(t) = popen_equilibrium + sum_m popen_amplitudes[m] * exp(-t / taus[m])``.

    Attributes
    ----------
    taus : ndarray, shape (K-1,)
        Time constants (s) = -1/lambda for the non-zero eigenvalues of Q,
        ascending (degenerate eigenvalues merged, so possibly fewer than K-1).
    amplitudes : ndarray, shape (n, K)
        Occupancy amplitude of each component in each state.
    popen_amplitudes : ndarray or None
        Open-probability amplitude of each component (None when open states
        are unknown).
    equilibrium : ndarray, shape (K,)
        Occupancies at t = inf.
    initial : ndarray, shape (K,)
        Occupancies at t = 0.
    states : tuple of str or None
    """

    taus: np.ndarray
    amplitudes: np.ndarray
    popen_amplitudes: Optional[np.ndarray]
    equilibrium: np.ndarray
    initial: np.ndarray
    states: Optional[Tuple[str, ...]] = None
    open_mask: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def rates(self) -> np.ndarray:
        """1/tau (s^-1)."""
        return 1.0 / self.taus

    @property
    def popen_equilibrium(self) -> Optional[float]:
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
        e = _decay(t, self.taus)  # (..., n)
        return self.equilibrium + np.real(e @ self.amplitudes)

    def open_probability(self, t) -> np.ndarray:
        """Open probability at time(s) t (s)."""
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
    openings : GeometricMixture
        Distribution of the number of openings per burst (CH82 eq. 3.5, 3.9).
    mean_openings : float
        Mean number of openings per burst (CH82 eq. 3.7).
    length : ExponentialMixture
        Burst length (s) distribution (CH82 eq. 3.17).
    mean_length : float
        Mean burst length (s) (CH82 eq. 3.19).
    open_time : ExponentialMixture
        Distribution of the total open time per burst (s) (CH82 eq. 3.23).
    mean_open_time : float
        Mean total open time per burst (s) (CH82 eq. 3.26).
    mean_shut_time : float
        Mean total shut time per burst (s) (CH82 eq. 3.41), over all bursts
        (zero for single-opening bursts).
    gaps : ExponentialMixture or None
        Distribution of the individual gaps within bursts (s) (CH82 eq. 3.75);
        None when a burst can contain only one opening.
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
    """

    openings: GeometricMixture
    mean_openings: float
    length: ExponentialMixture
    mean_length: float
    open_time: ExponentialMixture
    mean_open_time: float
    mean_shut_time: float
    gaps: Optional[ExponentialMixture]
    mean_gap: float
    start: np.ndarray
    rate: float
    mean_between: float
    open_states: Tuple[int, ...]
    within_states: Tuple[int, ...]
    between_states: Tuple[int, ...]


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


# ---------------------------------------------------------------------------
# validation and dispatch
# ---------------------------------------------------------------------------


def validate_q(Q, name: str = "Q") -> np.ndarray:
    """Check a generator matrix and return it as a float ndarray.

    Raises
    ------
    TypeError
        Not numeric / complex.
    ValueError
        Not square 2-d, non-finite, negative off-diagonal rate, or a row that
        does not sum to zero within ``ROW_SUM_RTOL`` times the sum of the
        absolute values in that row.
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
        raise ValueError(f"{name}[{i}, {j}] = {arr[i, j]!r}: off-diagonal rates must be >= 0")
    rowsum = arr.sum(axis=1)
    scale = np.abs(arr).sum(axis=1)
    bad = np.abs(rowsum) > ROW_SUM_RTOL * scale
    if np.any(bad):
        i = int(np.argmax(bad))
        raise ValueError(f"row {i} of {name} sums to {rowsum[i]!r}, not 0 "
                         f"(tolerance {ROW_SUM_RTOL:g} x {scale[i]:g}); q_ii must be "
                         f"-sum of the other rates in the row")
    return arr


@dataclass(frozen=True)
class _Model:
    Q: np.ndarray
    open_mask: Optional[np.ndarray]
    states: Optional[Tuple[str, ...]]
    scheme: Any = None

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


def _resolve(model, conditions: Mapping[str, Any], open=None, names=None) -> _Model:
    """The one dispatcher: (scheme, **conditions) or (Q, open=..., names=...)."""
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
        return _Model(Q, mask, names, model)
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
                        f"({spec!r})") from None
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
                raise ValueError(f"{what}: state name {item!r} given but the states are "
                                 "unnamed (pass names=[...] with a raw Q)")
            if item not in states:
                raise ValueError(f"{what}: unknown state {item!r}; states are {list(states)}")
            out.append(states.index(item))
        else:
            raise TypeError(f"{what}: states must be given by name (str) or index (int), "
                            f"got {type(item).__name__}")
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: duplicate states in {items!r}")
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


def _gth(Q: np.ndarray) -> Optional[np.ndarray]:
    """Stationary distribution by GTH state reduction; None if it breaks down."""
    k = Q.shape[0]
    if k == 1:
        return np.ones(1)
    A = Q.copy()
    np.fill_diagonal(A, 0.0)
    for n in range(k - 1, 0, -1):
        s = A[n, :n].sum()
        if not s > 0:
            return None
        A[:n, n] /= s
        A[:n, :n] += np.outer(A[:n, n], A[n, :n])
    p = np.zeros(k)
    p[0] = 1.0
    for n in range(1, k):
        p[n] = p[:n] @ A[:n, n]
    return p / p.sum()


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
    if p is None:  # pragma: no cover - impossible for an irreducible class
        raise ValueError("GTH failed on an irreducible class")
    return p


def _equilibrium_q(Q: np.ndarray) -> np.ndarray:
    """Equilibrium of a generator: GTH on its single closed class, 0 on transient states."""
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

    Raises
    ------
    ValueError
        No unique equilibrium and the scheme has no blocked (``·``) states, or the unblocked
        states alone have no unique equilibrium either.
    """
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


def _merge(lams: np.ndarray, mats: np.ndarray):
    """Merge components with equal eigenvalues (relative MERGE_RTOL)."""
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


def _spectral(M: np.ndarray, d: Optional[np.ndarray] = None):
    """Spectral expansion M = sum_m lam_m A_m.

    Returns (lam, A) with lam shape (n,), A shape (n, k, k), degenerate
    eigenvalues merged. ``d`` are positive weights such that diag(d) M is
    symmetric when the mechanism is reversible; then eigh is used.
    """
    k = M.shape[0]
    if d is not None and d.shape == (k,) and np.all(d > 0):
        r = np.sqrt(d)
        S = (r[:, None] * M) / r[None, :]
        asym = np.abs(S - S.T)
        if np.all(asym <= REVERSIBILITY_RTOL * np.maximum(np.abs(S), np.abs(S.T)) + 1e-300):
            lam, V = np.linalg.eigh(0.5 * (S + S.T))
            X = V / r[:, None]          # right eigenvectors of M
            Y = V * r[:, None]          # left eigenvectors of M (columns)
            A = np.einsum("im,jm->mij", X, Y)
            return _merge(lam, A)
    lam, X = np.linalg.eig(M)
    try:
        Yt = np.linalg.inv(X)
    except np.linalg.LinAlgError:
        raise ValueError("matrix is defective (eigenvectors not independent): no spectral "
                         "expansion as a sum of exponentials exists") from None
    recon = (X * lam) @ Yt
    scale = max(np.abs(M).max(), 1e-300)
    if np.abs(recon - M).max() > 1e-8 * scale:
        raise ValueError("matrix is (nearly) defective: its eigen-decomposition does not "
                         "reconstruct it to 1e-8, so no accurate spectral expansion exists")
    A = np.einsum("im,mj->mij", X, Yt)
    # drop negligible imaginary parts
    if np.all(np.abs(np.imag(lam)) <= 1e-12 * max(np.abs(lam).max(), 1e-300)):
        lam = np.real(lam)
        A = np.real(A)
    return _merge(lam, A)


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


def _mixture_from(M: np.ndarray, start: np.ndarray, end: np.ndarray, d=None,
                  allow_zero: bool = False) -> ExponentialMixture:
    """Mixture for f(t) = start expm(-M t) end (end already includes the exit rates).

    area_m = start A_m end / lam_m, tau_m = 1/lam_m.
    """
    lam, A = _spectral(M, d)
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
    taus = 1.0 / lam
    areas = w / lam
    order = np.argsort(np.real(taus), kind="stable")
    return ExponentialMixture(taus[order], areas[order])


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

    Parameters as for :func:`equilibrium`; a raw Q needs ``open=``.
    """
    m = _resolve(model, conditions, open, names)
    mask = m.require_open()
    return float(_equilibrium_q(m.Q)[mask].sum())


def is_reversible(model, *, rtol: float = 1e-8, open=None, names=None, **conditions) -> bool:
    """Whether the mechanism obeys microscopic reversibility (detailed balance).

    True when p_i q_ij = p_j q_ji for every pair, to ``rtol`` (a finite number >= 0)
    relative to the larger side, with p the equilibrium occupancies.
    """
    rtol = _V.real("rtol", rtol, nonnegative=True)
    m = _resolve(model, conditions, open, names)
    p = _equilibrium_q(m.Q)
    F = p[:, None] * m.Q
    np.fill_diagonal(F, 0.0)
    return bool(np.all(np.abs(F - F.T) <= rtol * np.maximum(F, F.T)))


def _initial_vector(initial, m: _Model, conditions) -> np.ndarray:
    k = m.k
    if initial is None:
        if m.scheme is None:
            raise ValueError("initial= is required with a raw Q: a state (name/index), "
                             "an occupancy vector, or ...")
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

    Returns
    -------
    Relaxation
        Time constants (s), amplitudes per state and for Po.
    """
    m = _resolve(model, conditions, open, names)
    p0 = _initial_vector(initial, m, conditions)
    pinf = _equilibrium_q(m.Q)
    lam, A = _spectral(m.Q, pinf)
    amps = np.einsum("i,mij->mj", p0, A)
    # the zero eigenvalue carries p_inf
    tiny = 1e-12 * max(np.abs(lam).max(), 1e-300)
    nz = np.abs(lam) > tiny
    if np.count_nonzero(~nz) != 1:
        raise ValueError("Q must have exactly one zero eigenvalue (unique equilibrium)")
    lam, amps = lam[nz], amps[nz]
    taus = -1.0 / lam
    order = np.argsort(np.real(taus), kind="stable")
    taus, amps = taus[order], amps[order]
    po_amps = None if m.open_mask is None else amps[:, m.open_mask].sum(axis=1)
    return Relaxation(taus=_frozen_array(taus), amplitudes=_frozen_array(amps),
                      popen_amplitudes=None if po_amps is None else _frozen_array(po_amps),
                      equilibrium=_frozen_array(pinf), initial=_frozen_array(p0),
                      states=m.states,
                      open_mask=None if m.open_mask is None else _frozen_array(m.open_mask))


def _entry_vector(Q, p, a_idx, f_idx) -> np.ndarray:
    """phi_A = p_F Q_FA / (p_F Q_FA u_A), entry into A at equilibrium [CH81]."""
    flux = p[f_idx] @ Q[np.ix_(f_idx, a_idx)]
    tot = flux.sum()
    if not tot > 0:
        raise ValueError("the class is never entered at equilibrium (zero entry flux)")
    return flux / tot


def dwell_times(model, states="open", *, open=None, names=None,
                **conditions) -> ExponentialMixture:
    """Distribution of sojourns in a class of states, at equilibrium [CH81].

    ``f(t) = phi_A expm(Q_AA t) (-Q_AA) u_A`` with ``phi_A`` the equilibrium
    entry vector ``p_F Q_FA / (p_F Q_FA u_A)``; a mixture of k_A exponentials
    with rates the eigenvalues of ``-Q_AA``. Mean = ``phi_A (-Q_AA)^-1 u_A``.
    This is the ideal (no missed events) distribution.

    Parameters
    ----------
    model : Scheme or (K, K) array_like
    states : "open", "shut" (or "closed"), or names/indices, or boolean mask
        The class A. Any partition into A and its complement is allowed.
    open : for a raw Q, the open states (needed for "open"/"shut").
    names : for a raw Q, optional state names.
    **conditions : V (V), temperature, concentrations (M), for a scheme.

    Returns
    -------
    ExponentialMixture
        taus (s), areas, mean (s), pdf/cdf/survival/sample.
    """
    m = _resolve(model, conditions, open, names)
    a = _class_indices(states, m, "states")
    f = np.setdiff1d(np.arange(m.k), a)
    p = _equilibrium_q(m.Q)
    phi = _entry_vector(m.Q, p, a, f)
    QAA = m.Q[np.ix_(a, a)]
    end = -QAA @ np.ones(a.size)  # total exit rate to F from each state of A
    return _mixture_from(-QAA, phi, end, d=p[a])


def first_latency(model, target="open", initial=None, *, open=None, names=None,
                  **conditions) -> ExponentialMixture:
    """Distribution of the time to first entry into a class after a step [CH95].

    With S the states outside the target class T and ``p0_S`` the initial
    occupancies: ``f(t) = p0_S expm(Q_SS t) Q_ST u_T``.

    Parameters
    ----------
    model : Scheme or (K, K) array_like
        Conditions after the step.
    target : "open", "shut", or names/indices
        The class T whose first entry is timed.
    initial : as for :func:`relaxation`
        Start distribution; it must have no occupancy in T.

    Returns
    -------
    ExponentialMixture
        ``areas.sum()`` (``total``) is the probability that T is ever reached
        (< 1 when some start states can be trapped away from T, e.g. by
        desensitisation or an absorbing state); ``mean`` is conditional on
        reaching T. Areas can be negative (a rising phase).

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
    return _mixture_from(-QSS, p0[s_idx], end, d=None, allow_zero=True)


def bursts(model, within, *, open=None, names=None, **conditions) -> Bursts:
    """Burst statistics of an equilibrium single-channel record [CH82].

    States are split into A (open), B (``within``: short-lived shut states,
    sojourns in which separate openings within a burst) and C (all other shut
    states, the gaps between bursts).

    With ``G_AB = (-Q_AA)^-1 Q_AB``, ``G_BA = (-Q_BB)^-1 Q_BA``:

    * start vector ``phi_b = p_C (Q_CA + Q_CB G_BA)`` normalised (CH82 3.2);
    * end vector ``e_b = (I - G_AB G_BA) u_A`` (CH82 3.4);
    * openings per burst ``P(r) = phi_b (G_AB G_BA)^(r-1) e_b``,
      mean ``phi_b (I - G_AB G_BA)^-1 u_A`` (3.5, 3.7);
    * burst length ``f(t) = phi_b [expm(Q_EE t)]_AA (-Q_AA) e_b``, E = A+B
      (3.17), mean ``phi_b (I - G_AB G_BA)^-1 (-Q_AA)^-1 (I + Q_AB (-Q_BB)^-1 G_BA) u_A``
      (3.19);
    * total open time per burst: rates from ``-(Q_AA + Q_AB G_BA)`` (3.23),
      mean ``phi_b (-(Q_AA + Q_AB G_BA))^-1 u_A`` (3.26);
    * total shut time per burst, mean ``phi_b G_AB (-(Q_BB + Q_BA G_AB))^-1 G_BA u_A`` (3.41);
    * gaps within bursts (3.75), mean = mean shut time / (mean openings - 1).

    Parameters
    ----------
    model : Scheme or (K, K) array_like
    within : names/indices
        The short shut states B (may be empty: bursts are then single openings).
        Must all be shut; at least one shut state must remain for C.
    open, names : for a raw Q.
    **conditions : V (V), temperature, concentrations (M), for a scheme.

    Returns
    -------
    Bursts
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
                        f"[] for none), got {type(within).__name__} ({within!r})") from None
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
    # openings distribution: geometric mixture over eigenvalues of GG
    rho, Ar = _spectral(GG)
    wts = np.einsum("i,mij,j->m", phi, Ar, eb)
    openings = GeometricMixture(rho, wts)
    # burst length
    E = np.concatenate([A, B])
    QEE = blk(E, E)
    lam, AE = _spectral(-QEE, p[E])
    endv = -QAA @ eb
    w = np.einsum("i,mij,j->m", phi, AE[:, :kA, :kA], endv)
    length = _sorted_mixture(1.0 / lam, w / lam)
    mean_length = float(phi @ inv_IGG @ nQAA_inv @ (I + QAB @ nQBB_inv @ GBA) @ uA)
    # total open time per burst
    VAA = QAA + QAB @ GBA
    open_time = _mixture_from(-VAA, phi, -VAA @ uA, d=p[A])
    mean_open = float(phi @ np.linalg.inv(-VAA) @ uA)
    # shut time per burst and gaps
    if B.size and mean_openings - 1.0 > 1e-14:
        WBB = QBB + QBA @ GAB
        mean_shut = float(phi @ GAB @ np.linalg.inv(-WBB) @ GBA @ uA)
        # gaps: phi (I-GG)^-1 G_AB expm(Q_BB t) (-Q_BB) G_BA u / (mu - 1)
        gstart = phi @ inv_IGG @ GAB / (mean_openings - 1.0)
        gaps = _mixture_from(-QBB, gstart, -QBB @ GBA @ uA, d=p[B])
        mean_gap = mean_shut / (mean_openings - 1.0)
    else:
        mean_shut = 0.0
        gaps = None
        mean_gap = float("nan")
    return Bursts(openings=openings, mean_openings=mean_openings, length=length,
                  mean_length=mean_length, open_time=open_time, mean_open_time=mean_open,
                  mean_shut_time=mean_shut, gaps=gaps, mean_gap=mean_gap,
                  start=_frozen_array(phi), rate=float(tot),
                  mean_between=float((1.0 - tot * mean_length) / tot),
                  open_states=tuple(int(i) for i in A),
                  within_states=tuple(int(i) for i in B),
                  between_states=tuple(int(i) for i in C))


def _sorted_mixture(taus, areas) -> ExponentialMixture:
    order = np.argsort(np.real(taus), kind="stable")
    return ExponentialMixture(np.asarray(taus)[order], np.asarray(areas)[order])


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
        Concentrations (M), 1-d, each in [0, 10] M, at which to report Po
        (checked before any work); default 61 points log-spaced from 1e-10 to
        1e-1 M. EC50, Hill slope and the extremes do not depend
        on this grid.
    open : optional override of the open states.
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
    """
    if not _is_scheme(scheme):
        raise TypeError("concentration_response needs a Scheme (with q_matrix), not a raw Q")
    if not isinstance(ligand, str):
        raise TypeError(f"ligand must be a str, got {type(ligand).__name__}")
    ligs = getattr(scheme, "ligands", None)
    if ligs is not None and ligand not in tuple(ligs):
        raise ValueError(f"unknown ligand {ligand!r}; scheme ligands are {list(ligs)}")
    if ligand in other_conditions:
        raise TypeError(f"{ligand!r} is the varied ligand; do not also pass it as a condition")

    if concentrations is None:
        concentrations = np.logspace(-10, -1, 61)
    conc = _numeric_array("concentrations", concentrations)
    if np.iscomplexobj(conc):
        raise TypeError("concentrations must be real (M)")
    conc = conc.astype(float)
    if (conc.ndim != 1 or np.any(np.isnan(conc)) or np.any(conc < 0)
            or np.any(conc > _C_CAP)):
        raise ValueError(f"concentrations must be a 1-d array of values in [0, {_C_CAP:g}] M "
                         "(ketacore uses molar: 10 * ketacore.units.uM, not 10)")

    def po(c: float) -> float:
        c = min(float(c), float(_C_CAP))  # exp(log(c)) may round just above the cap
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
