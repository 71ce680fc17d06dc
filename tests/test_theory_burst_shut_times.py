"""Bursts.between, Bursts.shut_time and Bursts.p_multiple [CH82].

* ``between``: the shut times between bursts, i.e. the shut times (sojourns in F = B + C from the
  end of one opening to the start of the next) that visit C at least once;
* ``shut_time``: the total shut time per burst (the sum of the gaps within it) for the bursts of
  at least two openings, whose probability is ``p_multiple``.

Oracles, in order of independence:

* Monte Carlo of the embedded jump chain of CH82 (numpy, fixed seed), cut into openings, gaps
  and bursts by the definitions alone; KS and binomial tests (alpha stated there);
* independent derivations: ``between`` as the first-passage density of an augmented chain
  that remembers whether C has been visited (no difference of mixtures, scipy ``expm``);
  ``shut_time`` from its Laplace transform written as the renewal sum over the gaps of a
  burst (no ``W_BB``);
* closed forms for the open-channel blocker C <-> O <-> OB;
* identities with the existing burst statistics: ``between.mean == mean_between`` (renewal,
  CH82 eq. 3.86) and ``shut_time.mean * p_multiple == mean_shut_time`` (CH82 eq. 3.41), on CH82
  and on an NMDA scheme with a trapping blocker (erreger2005_2a + ketamine);
* ``scipy.integrate.quad`` of the pdfs (normalisation and mean);
* SCALCS (``scalcs.scburst``) where installed (skipped otherwise), on CH82 and, through a
  stand-in mechanism, on the NMDA + ketamine scheme.

Everything is deterministic (fixed seeds); the one stochastic test states its false-failure
probability for a fresh seed.
"""
from __future__ import annotations

import bisect
import math

import numpy as np
import pytest
from scipy import integrate, linalg, stats

import ketacore as kc
from ketacore import theory as th
from _ch82 import ch82_q

try:  # optional oracle
    from scalcs import scburst as sc_burst
    from scalcs.samples import samples as sc_samples
    HAVE_SCALCS = True
except Exception:  # pragma: no cover - depends on the environment
    HAVE_SCALCS = False

needs_scalcs = pytest.mark.skipif(not HAVE_SCALCS, reason="scalcs not installed")

CONCS = [1e-7, 1e-6, 1e-5, 1e-4]          # M
OPEN, WITHIN = [0, 1], [2, 3]             # CH82: AR*, A2R* open; AR, A2R within bursts
NMDA_WITHIN = ["RA2f", "RA2s", "O·ket"]   # pre-open states and the blocked open state
NMDA_CONDS = [dict(glutamate=1e-5, ketamine=1e-6, V=-0.07),
              dict(glutamate=1e-3, ketamine=1e-5, V=-0.1)]


def nmda():
    return kc.block(kc.models.get("erreger2005_2a"), "ketamine")


def nmda_case(cond):
    """(Q, A, B) index arrays and the Bursts of the NMDA + ketamine scheme at ``cond``."""
    s = nmda()
    Q = s.q_matrix(**cond)
    A = np.flatnonzero(np.asarray(s.conductance) > 0)
    B = np.array([s.states.index(x) for x in NMDA_WITHIN])
    return Q, A, B, th.bursts(s, NMDA_WITHIN, **cond)


def all_cases():
    """(id, Q, A, B, bursts) for CH82 at four concentrations and NMDA + ketamine at two."""
    out = []
    for c in CONCS:
        Q = ch82_q(c)
        out.append((f"ch82-{c:g}", Q, np.array(OPEN), np.array(WITHIN),
                    th.bursts(Q, WITHIN, open=OPEN)))
    for i, cond in enumerate(NMDA_CONDS):
        out.append((f"nmda-ket-{i}",) + nmda_case(cond))
    return out


CASES = all_cases()
CASE_IDS = [c[0] for c in CASES]


def blk(Q, r, c):
    return Q[np.ix_(r, c)]


def classes(Q, A, B):
    k = Q.shape[0]
    C = np.setdiff1d(np.arange(k), np.concatenate([A, B]))
    F = np.setdiff1d(np.arange(k), A)
    return C, F


# ---------------------------------------------------------------------------
# identities with the existing statistics
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_between_mean_is_the_renewal_mean(case):
    """between.mean == mean_between = (1 - rate * mean_length) / rate (CH82 eq. 3.86), two
    different formulas; measured agreement 1e-14 to 7e-12 (CH82 at 0.1 and 100 uM lose digits
    to the near-cancelling pairs of components, rates 4e-8 apart)."""
    *_, b = case
    assert b.between.mean == pytest.approx(b.mean_between, rel=1e-10)
    assert b.between.total == pytest.approx(1.0, abs=1e-10)
    assert np.all(np.isfinite(b.between.taus)) and np.all(np.real(b.between.taus) > 0)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_shut_time_mean_times_p_multiple_is_mean_shut_time(case):
    """shut_time.mean * p_multiple == mean_shut_time (CH82 eq. 3.41, over all bursts);
    p_multiple == 1 - P(1 opening) from the openings distribution (CH82 eq. 3.5)."""
    *_, b = case
    assert b.shut_time.total == pytest.approx(1.0, abs=1e-12)
    assert b.shut_time.mean * b.p_multiple == pytest.approx(b.mean_shut_time, rel=1e-10)
    assert b.p_multiple == pytest.approx(1.0 - b.openings.pmf(1), rel=1e-12)
    # the mean gap times the mean number of gaps per burst is the same quantity
    assert b.mean_gap * (b.mean_openings - 1.0) == pytest.approx(b.mean_shut_time, rel=1e-10)
    # a total shut time of a burst is at least one gap: its mean exceeds the mean gap
    assert b.shut_time.mean >= b.mean_gap * (1 - 1e-12)


# ---------------------------------------------------------------------------
# independent derivations
# ---------------------------------------------------------------------------


def between_pdf_augmented(Q, A, B, t):
    """Pdf of the shut times that visit C, as the first-passage density into A of a chain on
    B0 (in B, C not yet visited), C, B1 (in B after C), started at the entry rates p_A Q_AF and
    stopped on entry to A only from C or B1 -- no difference of two mixtures.  Normalised by
    its own integral start (-M)^-1 end."""
    C, _ = classes(Q, A, B)
    p = th.equilibrium(Q)
    kB, kC = B.size, C.size
    n = 2 * kB + kC
    M = np.zeros((n, n))
    b0, cc, b1 = slice(0, kB), slice(kB, kB + kC), slice(kB + kC, n)
    M[b0, b0], M[b0, cc] = blk(Q, B, B), blk(Q, B, C)
    M[cc, cc], M[cc, b1] = blk(Q, C, C), blk(Q, C, B)
    M[b1, cc], M[b1, b1] = blk(Q, B, C), blk(Q, B, B)
    start = np.concatenate([p[A] @ blk(Q, A, B), p[A] @ blk(Q, A, C), np.zeros(kB)])
    end = np.concatenate([np.zeros(kB), blk(Q, C, A).sum(1), blk(Q, B, A).sum(1)])
    norm = start @ np.linalg.solve(-M, end)
    return np.array([start @ linalg.expm(M * ti) @ end for ti in t]) / norm


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_between_pdf_matches_the_augmented_chain(case):
    """The mixture (a difference of the Q_FF and Q_BB mixtures) against the augmented-chain
    density by scipy expm, at 0 and 40 log-spaced times up to 20 x the slowest tau.  Tolerance:
    rounding of the mixture's areas (1e-15 relative) is amplified by the sum of the component
    amplitudes |a_i| / tau_i, far above the pdf itself where components nearly cancel (CH82 at
    0.1 uM: pairs of tau 4e-8 apart with areas +-2.8), so atol = 1e-14 sum |a_i| / tau_i, plus
    1e-11 of the pdf's maximum for expm (measured: 4e-11 absolute at t = 0 on CH82 0.1 uM, 1e-13
    of the maximum elsewhere)."""
    _, Q, A, B, b = case
    mix = b.between
    t = np.concatenate(([0.0], np.geomspace(1e-7, 20 * float(np.real(mix.taus).max()), 40)))
    ref = between_pdf_augmented(Q, A, B, t)
    got = mix.pdf(t)
    atol = 1e-14 * float(np.abs(mix.amplitudes).sum()) + 1e-11 * ref.max()
    np.testing.assert_allclose(got, ref, rtol=0, atol=atol)
    # the augmented chain's normaliser is the burst rate over the shut-time entry flux
    p = th.equilibrium(Q)
    C, F = classes(Q, A, B)
    flux = p[A] @ blk(Q, A, F).sum(1)
    # P(visit C) two ways: from the augmented chain and from the burst rate (no subtraction)
    GBC = np.linalg.solve(-blk(Q, B, B), blk(Q, B, C)).sum(1)
    p_visit = (p[A] @ blk(Q, A, C).sum(1) + p[A] @ blk(Q, A, B) @ GBC) / flux
    assert b.rate == pytest.approx(p_visit * flux, rel=1e-10)


def shut_time_laplace_renewal(Q, A, B, phi, s):
    """E[exp(-s T); >= 2 openings] as the renewal sum over the gaps of a burst:
    ``phi G_AB sum_k (G*_BA(s) G_AB)^k G*_BA(s) e_b`` with ``G*_BA(s) = (sI - Q_BB)^-1 Q_BA``
    (a gap that is followed by an opening), ``G_AB`` (an opening, untimed, followed by a gap)
    and ``e_b`` (the burst ends after an opening): the sum is ``(I - G*_BA(s) G_AB)^-1``."""
    kA, kB = A.size, B.size
    GAB = np.linalg.solve(-blk(Q, A, A), blk(Q, A, B))
    GBA = np.linalg.solve(-blk(Q, B, B), blk(Q, B, A))
    eb = (np.eye(kA) - GAB @ GBA) @ np.ones(kA)
    Gs = np.linalg.solve(s * np.eye(kB) - blk(Q, B, B), blk(Q, B, A))
    return float(phi @ GAB @ np.linalg.solve(np.eye(kB) - Gs @ GAB, Gs @ eb))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_shut_time_laplace_transform_matches_the_renewal_sum(case):
    """The mixture's Laplace transform ``p_multiple sum_i a_i / (1 + s tau_i)`` equals the
    renewal sum (no W_BB, no spectral expansion) for s from 1e-2 to 1e3 times 1/mean; both are
    smooth rational functions of s evaluated by a few solves, so agreement is to rounding
    (measured <= 1.1e-14; tolerance 1e-11)."""
    _, Q, A, B, b = case
    mix = b.shut_time
    for s in np.geomspace(1e-2, 1e3, 11) / mix.mean:
        lt = b.p_multiple * float(np.real((mix.areas / (1.0 + s * mix.taus)).sum()))
        assert lt == pytest.approx(shut_time_laplace_renewal(Q, A, B, b.start, s), rel=1e-11)
    # s -> 0: the probability of >= 2 openings
    assert shut_time_laplace_renewal(Q, A, B, b.start, 0.0) == pytest.approx(b.p_multiple,
                                                                            rel=1e-12)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_shut_time_pdf_matches_expm(case):
    """f(t) = phi G_AB expm(W_BB t) Q_BA e_b / p_multiple by scipy expm (the formula of
    CH82 eq. 3.40 without the spectral expansion)."""
    _, Q, A, B, b = case
    kA = A.size
    GAB = np.linalg.solve(-blk(Q, A, A), blk(Q, A, B))
    GBA = np.linalg.solve(-blk(Q, B, B), blk(Q, B, A))
    eb = (np.eye(kA) - GAB @ GBA) @ np.ones(kA)
    W = blk(Q, B, B) + blk(Q, B, A) @ GAB
    t = np.concatenate(([0.0], np.geomspace(1e-7, 20 * float(np.real(b.shut_time.taus).max()),
                                            30)))
    ref = np.array([b.start @ GAB @ linalg.expm(W * ti) @ blk(Q, B, A) @ eb for ti in t])
    ref = ref / b.p_multiple
    np.testing.assert_allclose(b.shut_time.pdf(t), ref, rtol=0, atol=1e-11 * ref.max())


def _quad_log(f, taus, scale=1.0):
    """int_0^inf f by quad on [0, tau_min / 10] and log-spaced pieces up to 60 x tau_max, each
    to 1e-11 relative or 1e-13 * scale absolute (the pdf's rounding noise near t = 0 makes a
    relative target unreachable where the pdf is ~0)."""
    tr = np.real(np.asarray(taus))
    edges = np.concatenate(([0.0], np.geomspace(tr.min() / 10, 60 * tr.max(), 24)))
    tot = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        tot += integrate.quad(f, lo, hi, epsabs=1e-13 * scale, epsrel=1e-11, limit=200)[0]
    return tot


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_quadrature_normalisation_and_mean(case):
    """quad of pdf and t pdf over [0, 60 tau_max]: the neglected tail is < e^-60 relative;
    quad's own error is set to 1e-11 per piece (23 pieces); tolerance 1e-9 (the cancellation
    noise of the pdf near t = 0, < 1e-14 sum |a_i| / tau_i over t < 1e-4 s, adds less than
    1e-9 to either)."""
    *_, b = case
    for mix, mean in ((b.between, b.mean_between), (b.shut_time, b.mean_shut_time / b.p_multiple)):
        assert _quad_log(mix.pdf, mix.taus) == pytest.approx(1.0, abs=1e-9)
        assert _quad_log(lambda t, m=mix: t * m.pdf(t), mix.taus, mean) == pytest.approx(mean,
                                                                               rel=1e-9)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_between_is_a_distribution(case):
    """pdf >= 0 (to the rounding of the near-cancelling components) on a log grid, and
    ExponentialMixture.sample accepts it (its own pdf >= 0 and total checks)."""
    *_, b = case
    mix = b.between
    t = np.concatenate(([0.0], np.geomspace(1e-8, 50 * float(np.real(mix.taus).max()), 400)))
    assert np.all(mix.pdf(t) >= -1e-14 * float(np.abs(mix.amplitudes).sum()))
    # the cdf, 1 - sum a_i exp(-t / tau_i), is rounded to ~1e-16 sum |a_i|
    assert np.all(np.diff(mix.cdf(t)) >= -1e-15 * float(np.abs(mix.areas).sum()))
    x = mix.sample(2000, rng=3)
    assert np.all(np.isfinite(x)) and np.all(x >= 0)


# ---------------------------------------------------------------------------
# closed forms
# ---------------------------------------------------------------------------


def test_blocker_closed_forms():
    """C <-> O <-> OB, B = {OB}: a shut time visits C iff it is a sojourn in C, so between is
    Exp(1/beta) exactly (the OB component of Q_FF and of Q_BB is the same rate 1/koff: merged and
    cancelled).  A burst has K ~ Geometric blockages (P(K >= 1) = q = kon B / (alpha + kon B)),
    each Exp(koff): given K >= 1 the sum is Exp(koff (1 - q))."""
    alpha, beta, kon, koff, Bc = 400.0, 2000.0, 1e7, 5e3, 2e-4
    Q = np.array([[-beta, beta, 0.0],
                  [alpha, -(alpha + kon * Bc), kon * Bc],
                  [0.0, koff, -koff]])
    b = th.bursts(Q, ["OB"], open=[1], names=["C", "O", "OB"])
    assert b.between.n_components == 1
    assert b.between.taus[0] == pytest.approx(1 / beta, rel=1e-13)
    assert b.between.areas[0] == pytest.approx(1.0, rel=1e-13)
    q = kon * Bc / (alpha + kon * Bc)
    assert b.p_multiple == pytest.approx(q, rel=1e-13)
    assert b.shut_time.n_components == 1
    assert b.shut_time.taus[0] == pytest.approx(1 / (koff * (1 - q)), rel=1e-13)
    assert b.shut_time.areas[0] == pytest.approx(1.0, rel=1e-13)


def test_no_within_states():
    """B empty: every shut time is between bursts, so between is dwell_times of the shut
    class; shut_time None and p_multiple 0."""
    Q = ch82_q(1e-6)
    b = th.bursts(Q, [], open=OPEN)
    d = th.dwell_times(Q, "shut", open=OPEN)
    np.testing.assert_allclose(b.between.taus, d.taus, rtol=1e-13)
    np.testing.assert_allclose(b.between.areas, d.areas, rtol=1e-12, atol=1e-15)
    assert b.between.mean == pytest.approx(b.mean_between, rel=1e-10)
    assert b.shut_time is None and b.p_multiple == 0.0


def test_scheme_path_and_names_agree_with_raw_q():
    """th.bursts on a Scheme (names) gives the same new fields as on its raw Q (indices)."""
    cond = NMDA_CONDS[0]
    Q, A, B, b = nmda_case(cond)
    br = th.bursts(Q, list(B), open=list(A))
    np.testing.assert_allclose(br.between.taus, b.between.taus, rtol=1e-14)
    np.testing.assert_allclose(br.between.areas, b.between.areas, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(br.shut_time.taus, b.shut_time.taus, rtol=1e-14)
    assert br.p_multiple == b.p_multiple


# ---------------------------------------------------------------------------
# Monte Carlo of the embedded jump chain
# ---------------------------------------------------------------------------


def simulate_jump_chain(Q, n_steps, start, rng):
    """States visited and their sojourn times (s): the embedded chain jumps i -> j with
    probability q_ij / |q_ii|, each sojourn Exp(|q_ii|)."""
    rate = -np.diag(Q)
    P = Q / rate[:, None]
    np.fill_diagonal(P, 0.0)
    cum = np.cumsum(P, axis=1)
    cum[:, -1] = 1.0
    cum_l = cum.tolist()
    u = rng.random(n_steps).tolist()
    states = np.empty(n_steps, np.int64)
    s = start
    for i in range(n_steps):
        states[i] = s
        s = bisect.bisect_right(cum_l[s], u[i])
    return states, rng.standard_exponential(n_steps) / rate[states]


def cut_bursts(states, dwell, A, C):
    """From a record of sojourns: durations of the shut times (maximal runs outside A) that
    visit C, and per complete burst (between two such shut times) its number of openings and
    total shut time (the shut times inside it, which stay in B)."""
    is_open = np.isin(states, A)
    is_c = np.isin(states, C)
    change = np.flatnonzero(np.diff(is_open.astype(np.int8))) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [states.size]))
    ct = np.concatenate(([0.0], np.cumsum(dwell)))
    cc = np.concatenate(([0], np.cumsum(is_c)))
    run_open = is_open[starts][1:-1]               # first and last runs may be partial
    run_dur = (ct[ends] - ct[starts])[1:-1]
    run_c = ((cc[ends] - cc[starts]) > 0)[1:-1]
    gap, gap_c = run_dur[~run_open], run_c[~run_open]
    ci = np.flatnonzero(gap_c)
    inner = np.concatenate(([0.0], np.cumsum(np.where(gap_c, 0.0, gap))))
    n_inner = np.concatenate(([0], np.cumsum(~gap_c)))
    total_shut = inner[ci[1:]] - inner[ci[:-1] + 1]
    openings = n_inner[ci[1:]] - n_inner[ci[:-1] + 1] + 1
    return gap[ci], openings, total_shut


def test_monte_carlo_jump_chain_ch82():
    """CH82 at 1 uM, 600000 jumps of the embedded chain (about 23000 bursts), seed fixed, so the
    test is deterministic; the p-values below are those of a correct theory with a fresh seed.

    Independence: CH82's C is the single state R, so every first entry into R after a burst is
    a regeneration point; each burst lies between two of them, so bursts are iid, and the shut
    time between bursts k is split between cycles k - 1 and k, so every other one is iid (the
    tests use those).  Three tests, each rejecting at p < 1e-3 (exact KS distribution for the
    continuous cdfs, exact two-sided binomial test for p_multiple): a false failure has
    probability <= 3e-3 for a fresh seed, 0 for this one.  The mean of each sample is also
    checked to within 5 standard errors (sd from theory), false failure 6e-7 each.
    """
    c = 1e-6
    Q = ch82_q(c)
    rng = np.random.default_rng(20240611)
    states, dwell = simulate_jump_chain(Q, 600_000, 4, rng)
    between, openings, total_shut = cut_bursts(states, dwell, np.array(OPEN), np.array([4]))
    b = th.bursts(Q, WITHIN, open=OPEN)
    n = openings.size
    assert n >= 20000
    multi = openings >= 2
    assert stats.binomtest(int(multi.sum()), n, b.p_multiple).pvalue > 1e-3
    x = total_shut[multi]
    assert np.all(total_shut[~multi] == 0.0)
    assert stats.kstest(x, b.shut_time.cdf).pvalue > 1e-3
    assert abs(x.mean() - b.shut_time.mean) < 5 * b.shut_time.sd / math.sqrt(x.size)
    y = between[::2]
    assert y.size >= 10000
    assert stats.kstest(y, b.between.cdf).pvalue > 1e-3
    assert abs(y.mean() - b.between.mean) < 5 * b.between.sd / math.sqrt(y.size)
    # the cutting itself: mean openings per burst against CH82 eq. 3.7 (5 s.e., sd from pmf)
    r = np.arange(1, 2000)
    pmf = b.openings.pmf(r)
    sd_r = math.sqrt(float((pmf * r ** 2).sum()) - b.mean_openings ** 2)
    assert abs(openings.mean() - b.mean_openings) < 5 * sd_r / math.sqrt(n)


# ---------------------------------------------------------------------------
# SCALCS
# ---------------------------------------------------------------------------


class _ScalcsBurstMechanism:
    """The attributes scalcs.scburst reads, for a Q reordered as A, B, C (no D states)."""

    def __init__(self, Q, A, B):
        C, _ = classes(Q, A, B)
        order = np.concatenate([A, B, C])
        self.Q = Q[np.ix_(order, order)]
        self.k, self.kA, self.kB = order.size, A.size, B.size
        self.kC = C.size
        self.kE, self.kF, self.kG = self.kA + self.kB, self.kB + self.kC, self.k
        a, e, g = self.kA, self.kE, self.kG
        q = self.Q
        self.QAA, self.QAB, self.QBA, self.QBB = q[:a, :a], q[:a, a:e], q[a:e, :a], q[a:e, a:e]
        self.QCA, self.QCB = q[e:g, :a], q[e:g, a:e]
        self.QEE = q[:e, :e]
        self.QAF, self.QFA, self.QFF = q[:a, a:], q[a:, :a], q[a:, a:]


def _scalcs_cases():
    out = []
    if not HAVE_SCALCS:
        return out
    for c in CONCS:
        mec = sc_samples.CH82()
        mec.set_eff("c", c)
        out.append((f"ch82-{c:g}", mec, th.bursts(ch82_q(c, 0.66667), WITHIN, open=OPEN)))
    for i, cond in enumerate(NMDA_CONDS):
        Q, A, B, b = nmda_case(cond)
        out.append((f"nmda-ket-{i}", _ScalcsBurstMechanism(Q, A, B), b))
    return out


@needs_scalcs
@pytest.mark.parametrize("case", _scalcs_cases() or [None],
                         ids=[c[0] for c in _scalcs_cases()] or ["none"])
def test_vs_scalcs(case):
    """SCALCS shut_time_total_pdf_components_2more_openings (CH82 eq. 3.40) and
    shut_times_between_burst_pdf_components: same time constants and areas for the total shut
    time (rtol 1e-9, as tests/test_theory.py for the other burst mixtures); for the between
    mixture, whose near-cancelling pairs make single areas ill-conditioned, the same pdf (atol
    1e-12 of sum |a_i| / tau_i + 1e-10 of its maximum) and survival (2e-11: SCALCS normalises
    by a different expression, and its total is 1 + 6e-12 on NMDA + ketamine at 1 mM, where
    ketacore's is 1 - 4e-13 and both survivals were checked against the augmented-chain expm
    oracle: ketacore 9e-13, SCALCS 6e-12).  (CH82 from
    scalcs.samples uses 2k*-2 = 0.66667, so ketacore gets the same Q.)"""
    _, mec, b = case
    e, w = sc_burst.shut_time_total_pdf_components_2more_openings(mec)
    e, w = np.ravel(e), np.ravel(w)
    order = np.argsort(1 / e)
    np.testing.assert_allclose(b.shut_time.taus, (1 / e)[order], rtol=1e-9)
    np.testing.assert_allclose(b.shut_time.areas, (w / e)[order], rtol=1e-9, atol=1e-12)
    assert b.p_multiple == pytest.approx(
        1.0 - float(np.ravel(sc_burst.phiBurst(mec) @ sc_burst.endBurst(mec))[0]), rel=1e-9)
    e, w = sc_burst.shut_times_between_burst_pdf_components(mec)
    ref = th.ExponentialMixture(1 / np.ravel(e), np.ravel(w) / np.ravel(e))
    mix = b.between
    t = np.concatenate(([0.0], np.geomspace(1e-7, 20 * float(np.real(mix.taus).max()), 60)))
    scale = float(np.abs(mix.amplitudes).sum() + np.abs(ref.amplitudes).sum())
    np.testing.assert_allclose(mix.pdf(t), ref.pdf(t), rtol=0,
                               atol=1e-12 * scale + 1e-10 * ref.pdf(t).max())
    np.testing.assert_allclose(mix.survival(t), ref.survival(t), rtol=0, atol=2e-11)
    assert mix.mean == pytest.approx(float(np.ravel(sc_burst.shut_times_between_burst_mean(mec))
                                           [0]), rel=1e-9)
