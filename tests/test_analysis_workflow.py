"""kc.analysis used end to end, as a single-channel electrophysiologist would: regression tests
for the defects a workflow review found, and the missed-events (HJC) check of
``Record.resolve`` at the level of whole distributions.

Each regression test fails on the code before the review (stated per test: what the user saw).
Statistical tests follow DESIGN.md section 4: fixed seeds, tolerances from the statistics, and
the failure probability of a correct implementation stated beside each assertion.
"""
import math
import warnings

import numpy as np
import pytest
from scipy import stats

import ketacore as kc
from ketacore import analysis as ka
from ketacore.units import mM, ms, mV, pA, s, uM, us

# ---------------------------------------------------------------------------- idealisation

def test_from_levels_decimals_in_the_wrong_units_is_refused():
    """Amplitudes are SI: ``decimals=1`` meant for pA rounded -2.51e-12 A to 0 and the whole
    record became one shut dwell (0 openings instead of 2), silently."""
    t = [0.0, 1 * ms, 3 * ms, 4 * ms]
    a = [0.0, -2.51 * pA, 0.0, -2.49 * pA]
    with pytest.raises(ValueError, match=r"decimals=1 rounds the amplitude .*SI units.*"
                                         r"decimals >= 13"):
        ka.Record.from_levels(t, a, 5 * ms, decimals=1)
    # a sublevel of >= 10 % of the main level sent to 0 is refused too (decimals=12 keeps
    # the -2.5 pA main level non-zero but would erase a -0.5 pA sublevel)
    with pytest.raises(ValueError, match="decimals=12"):
        ka.Record.from_levels(t, [0.0, -2.5 * pA, 0.0, -0.5 * pA], 5 * ms, decimals=12)
    # the intended use still works: 0.1 pA rounding merges the two measured main levels,
    # and baseline scatter (a 0.001 pA "shut" level) may go to 0
    r = ka.Record.from_levels(t, [1e-15, -2.51 * pA, 0.0, -2.49 * pA], 5 * ms, decimals=13)
    np.testing.assert_array_equal(r.levels, [0.0, -2.5e-12])
    assert r.open_times(include_last=True).size == 2


def test_record_constructor_checks_its_documented_invariants():
    """``Record(...)`` accepted dwells that neither follow each other nor change class: a burst
    of 3 s of dwells came out 10 s long (length != open_time + shut_time, which BurstResult
    documents), and two consecutive 'open' dwells were reported as two openings by dwells()."""
    with pytest.raises(ValueError, match="contiguous"):
        ka.Record([0.0, 5.0, 9.0], [1.0, 1.0, 1.0], [1, 0, 1], [0, 3], [0.0, 1.0])
    with pytest.raises(ValueError, match="must change class"):
        ka.Record([0.0, 1.0, 2.0], [1.0, 1.0, 1.0], [1, 1, 0], [0, 3], [0.0, 1.0])
    # sweep boundaries are not transitions: a new sweep may start anywhere, in any class
    r = ka.Record([0.0, 1.0, 0.0, 7.0], [1.0, 2.0, 7.0, 1.0], [0, 1, 1, 0], [0, 2, 4],
                  [0.0, 1.0])
    assert r.n_sweeps == 2
    # starts from a cumulative sum of many durations (rounding) are accepted
    d = np.random.default_rng(0).exponential(1e-3, 100_000)
    st = np.concatenate(([0.0], np.cumsum(d)[:-1]))
    r = ka.Record(st, d, np.arange(d.size) % 2, [0, d.size], [0.0, 1.0])
    b = r.bursts(1e-3, complete_only=False)
    # equal up to the rounding of sums of ~1e4 durations at times up to 100 s
    np.testing.assert_allclose(b.length, b.open_time + b.shut_time, rtol=1e-9, atol=1e-12)


def test_from_events_levels_must_agree_with_the_conductances():
    """``levels`` decides which classes are open: levels=[0, 0] made CH82's open states shut
    (0 openings, Po 0), and classes+levels skipped the open/shut mixing check."""
    g = kc.models.get("ch82")
    log = kc.simulate_events(g, kc.Step(1 * s, agonist=1 * uM), n_trials=1, rng=1)
    with pytest.raises(ValueError, match=r"levels\[1\] = 0 .*open states"):
        ka.Record.from_events(log, levels=[0.0, 0.0])
    with pytest.raises(ValueError, match=r"levels\[0\] = 1 .*shut states"):
        ka.Record.from_events(log, levels=[1.0, 5.0])
    with pytest.raises(ValueError, match="mixes open and shut"):
        ka.Record.from_events(log, [1, 1, 1, 0, 0], levels=[0.0, 1.0])
    # consistent levels (e.g. currents instead of conductances) are fine
    r = ka.Record.from_events(log, levels=[0.0, -3.5 * pA])
    assert r.open_times().size > 0


# ---------------------------------------------------------------------------- resolution

def test_a_resolution_longer_than_every_dwell_is_refused():
    """``resolve(50)`` (50 meaning us) returned a record with no transition at all, whose
    open_times() was empty; the error came later, from log_histogram ('durations is empty')."""
    g = kc.models.get("ch82")
    rec = ka.Record.from_events(kc.simulate_events(g, kc.Step(5 * s, agonist=0.1 * uM),
                                                   n_trials=2, rng=3))
    with pytest.raises(ValueError, match=r"t_res=50 s is longer than every dwell.*us"):
        rec.resolve(50)
    assert rec.resolve(50 * us).open_times().size > 0
    # a record without any transition has nothing to lose: unchanged, no error
    one = ka.Record.from_dwells([1.0], [0.0])
    assert one.resolve(2.0).n_dwells == 1


def test_open_probability_matches_theory():
    """Record.open_probability (new): fraction of recorded time open.  40 independent sweeps
    started at equilibrium (CH82, 1 uM; Po = 0.0113...), equal length, so the pooled value is the
    mean of 40 i.i.d. per-sweep values: (mean - Po) / (SD / sqrt(40)) is ~Student t with 39 dof;
    |t| < t.isf(0.5e-4, 39) fails with probability 1e-4."""
    g = kc.models.get("ch82")
    c = 1 * uM
    po = kc.theory.open_probability(g, agonist=c)
    log = kc.simulate_events(g, kc.Step(20 * s, agonist=c), n_trials=40, rng=2024,
                             initial="equilibrium")
    rec = ka.Record.from_events(log)
    per = rec.open_probability(per_sweep=True)
    assert per.shape == (40,) and np.all((per >= 0) & (per <= 1))
    assert rec.open_probability() == pytest.approx(per.mean(), rel=1e-12)
    se = per.std(ddof=1) / math.sqrt(per.size)
    assert abs(per.mean() - po) < stats.t.isf(0.5e-4, 39) * se, (per.mean(), po, se)
    assert se < 0.05 * po
    # exact on a hand-made record; an empty sweep is NaN per sweep
    r = ka.Record.from_levels([[0.0, 1.0, 3.0], [0.0]], [[0.0, 1.0, 0.0], [0.0]], [4.0, 2.0])
    np.testing.assert_allclose(r.open_probability(per_sweep=True), [0.5, 0.0])
    assert r.open_probability() == pytest.approx(2.0 / 6.0)
    e = ka.Record.from_dwells([], [])
    assert math.isnan(e.open_probability())
    assert np.isnan(e.open_probability(per_sweep=True)).all()


# ---------------------------------------------------------------------------- histograms

MIX = kc.theory.ExponentialMixture([0.1 * ms, 10 * ms], [0.5, 0.5])
T_RES = 50 * us


def test_log_histogram_refuses_durations_below_t_res():
    """Ideal durations with t_res set were binned, counted in n, and every expected count came
    out too large by n / n(>= t_res) (here 20000 / 16077: +24 %)."""
    x = MIX.sample(20000, rng=1)
    with pytest.raises(ValueError, match=r"values below t_res=5e-05 s.*Record.resolve"):
        ka.log_histogram(x, t_res=T_RES)
    h = ka.log_histogram(x[x >= T_RES], t_res=T_RES)
    frac = (MIX.cdf(h.edges[-1]) - MIX.cdf(T_RES)) / MIX.survival(T_RES)  # ~1 - 1e-6
    assert h.expected(MIX).sum() == pytest.approx(h.n * frac, rel=1e-12)
    assert h.n == np.sum(x >= T_RES)


def test_log_histogram_theory_is_truncated_at_t_res():
    """With t_min below t_res the theory put counts where no duration can be: 19112 expected
    against 16077 durations, 234 in the first bin (1e-5 s, below t_res = 5e-5 s).  The
    expected counts must vanish below t_res and sum to n over the whole range; and the counts
    must agree with them by chi-square (independent draws: p > 1e-3 fails 0.1 % of seeds)."""
    x = MIX.sample(20000, rng=1)
    x = x[x >= T_RES]
    h = ka.log_histogram(x, bins_per_decade=10, t_min=10 * us, t_max=1.0, t_res=T_RES)
    e = h.expected(MIX)
    below = h.edges[1:] <= T_RES
    assert below.sum() >= 6 and np.all(e[below] == 0) and np.all(h.counts[below] == 0)
    frac = (MIX.cdf(h.edges[-1]) - MIX.cdf(T_RES)) / MIX.survival(T_RES)
    assert e.sum() == pytest.approx(h.n * frac, rel=1e-12)
    keep = e > 5
    chi2 = float(np.sum((h.counts[keep] - e[keep]) ** 2 / e[keep]))
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-3
    t, y = h.curve(MIX)
    assert np.all(y[t < T_RES] == 0) and np.all(y[t >= T_RES] > 0)


def test_fit_overlay_is_normalised_with_the_fits_own_t_res():
    """A histogram made without t_res (default) with a fit of the same data truncated at t_res:
    the fit curve was normalised to the untruncated pdf, S(t_res) = 0.66 of the data, i.e.
    34 % too low everywhere."""
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt
    x = MIX.sample(6000, rng=5)
    x = x[x >= T_RES]
    fit = ka.fit_mixture(x, 2, t_res=T_RES)
    h = ka.log_histogram(x)                        # t_res not repeated here
    ax = h.plot(fit=fit, sqrt=False)
    line = next(ln for ln in ax.get_lines() if ln.get_label() == "ML fit")
    t, y = line.get_xydata().T
    expect = (h.n * math.log(10) * t * fit.mixture.pdf(t) / h.bins_per_decade
              / fit.mixture.survival(T_RES))
    np.testing.assert_allclose(y, np.where(t >= T_RES, expect, 0.0), rtol=1e-12)
    plt.close("all")


# ---------------------------------------------------------------------------- fits, t_crit

def test_critical_time_accepts_a_mixture_fit():
    """critical_time documents 'a MixtureFit' as input but raised TypeError for one."""
    x = kc.theory.ExponentialMixture([1 * ms, 100 * ms], [0.5, 0.5]).sample(2000, rng=1)
    fit = ka.fit_mixture(x, 2)
    for crit in ("proportions", "numbers", "total"):
        assert ka.critical_time(fit, crit) == ka.critical_time(fit.mixture, crit)
    m = ka.misclassification(fit, 10 * ms)
    assert m == ka.misclassification(fit.mixture, 10 * ms)
    np.testing.assert_array_equal(ka.log_histogram(x).expected(fit),
                                  ka.log_histogram(x).expected(fit.mixture))


@pytest.mark.filterwarnings("ignore:block.*own pore blocker:UserWarning")  # (kampa2004 + a pore blocker, meant)
def test_critical_time_tolerates_rounding_level_negative_areas():
    """The shut-time mixture of kampa2004 + ketamine has areas like -3.5e-10 (next to +9.1e-7,
    on a pair of near-equal eigenvalues): critical_time refused it for every split ('mixture
    must have real time constants and non-negative areas')."""
    # the one-way escape (closed_route=None; the library ketamine balances it) gives the
    # irreversible mixture with rounding-level negative areas
    d = kc.block(kc.models.get("kampa2004"),
                 kc.blockers.get("ketamine").replace(closed_route=None))
    sh = kc.theory.dwell_times(d, "shut", glutamate=1 * mM, V=-70 * mV, ketamine=1 * uM,
                               mg=1 * mM)
    assert sh.areas.min() < 0 and abs(sh.areas.min()) < 1e-8 * np.abs(sh.areas).sum()
    # the 13 components up to 17.3 ms against the rest (97 ms ... 737 s)
    tc = ka.critical_time(sh, split=13)
    assert 0 < tc < 97 * ms
    # the same t_crit as the mixture with the negative (rounding) areas removed by hand
    keep = sh.areas > 0
    clean = kc.theory.ExponentialMixture(sh.taus[keep], sh.areas[keep] / sh.areas[keep].sum())
    split_clean = int(np.sum(sh.taus[keep] < 50 * ms))
    assert tc == pytest.approx(ka.critical_time(clean, split=split_clean), rel=1e-6)
    # a real negative area (a rising phase) is still refused
    with pytest.raises(ValueError, match="non-negative areas"):
        ka.critical_time(kc.theory.ExponentialMixture([1e-3, 1e-2, 1e-1], [-0.2, 0.6, 0.6]))


def test_fit_mixture_guesses_far_off_still_reach_the_maximum():
    """Starting guesses were the only start: taus=[0.1, 5] (meant as ms, data in s) ended in
    RuntimeError 'the likelihood could not be maximised' (the line search accepted a NaN), and
    taus=[100, 1000] returned a wrong local optimum flagged converged (tau 3.0 ms with area 1
    and a 330 s component of area 7e-13; log-likelihood 48081 against 53456).  Now a failed or
    degenerate optimisation from the guesses falls back on the data-driven starts, and a guess
    beyond 10x the longest duration is warned about (units)."""
    mix = kc.theory.ExponentialMixture([0.1 * ms, 5 * ms], [0.4, 0.6])
    x = mix.sample(10000, rng=3)
    ref = ka.fit_mixture(x, 2)
    for guess in ([0.1, 5.0], [100.0, 1000.0], [1e-9, 1e-8]):
        if max(guess) > 10 * x.max():
            with pytest.warns(RuntimeWarning, match="more than 10 times the longest duration"):
                f = ka.fit_mixture(x, taus=guess)
        else:
            f = ka.fit_mixture(x, taus=guess)
        assert f.converged
        assert f.loglik == pytest.approx(ref.loglik, rel=1e-9, abs=1e-6), guess
        np.testing.assert_allclose(f.taus, ref.taus, rtol=1e-4)
    # and it is the truth within 3 SE per parameter (0.27 % each, asymptotic normality)
    assert np.all(np.abs(ref.taus - mix.taus) < 3 * ref.se_taus)
    assert abs(ref.areas[0] - 0.4) < 3 * ref.se_areas[0]


def test_fit_mixture_every_duration_at_t_res():
    """All durations equal to t_res: the truncated likelihood has no maximum (tau -> 0); the
    user got RuntimeError 'the likelihood could not be maximised'."""
    with pytest.raises(ValueError, match="every duration equals t_res"):
        ka.fit_mixture([1e-3, 1e-3, 1e-3], t_res=1e-3)


def test_first_latency_recipe_conditions_on_time_after_t0():
    """The docstring said to condition the theory on ``t <= t_end``; latencies run from t0, so
    the bound is ``t_end - t0`` (here P(latency <= 60 ms) = 0.895, not P(<= 160 ms) = 0.910).
    The documented recipe is checked by KS (independent sweeps: p > 1e-3 fails 0.1 %)."""
    assert "t_end - t0" in ka.Record.first_latency.__doc__
    g = kc.models.get("erreger2005_2a")
    p = kc.Protocol([kc.Step(100 * ms, V=-70 * mV),
                     kc.Step(60 * ms, V=-70 * mV, glutamate=1 * mM)])
    rec = ka.Record.from_events(kc.simulate_events(g, p, n_trials=3000, rng=11))
    lat = rec.first_latency(100 * ms)
    x = lat[~np.isnan(lat)]
    th = kc.theory.first_latency(g, "open", initial="R", glutamate=1 * mM, V=-70 * mV)
    bound = p.duration - 100 * ms
    assert stats.kstest(x, lambda t: th.cdf(t) / th.cdf(bound)).pvalue > 1e-3
    # the fraction of sweeps that open within the bound: binomial, |z| < 4 (6e-5)
    q = th.cdf(bound) / th.total
    assert abs(x.size / lat.size - q) < 4 * math.sqrt(q * (1 - q) / lat.size)


# ---------------------------------------------------------------------------- bursts

def test_burst_compare_on_a_resolved_record_warns():
    """compare() against the ideal-record theory of a resolved record gave z = -111 for the
    openings per burst (CH82, 0.1 uM, 100 us: 1.48 against 3.82) with no word that the
    theory ignores missed events."""
    g = kc.models.get("ch82")
    c = 0.1 * uM
    rec = ka.Record.from_events(kc.simulate_events(g, kc.Step(200 * s, agonist=c), n_trials=2,
                                                   rng=8))
    th = kc.theory.bursts(g, within=["AR", "A2R"], agonist=c)
    tc = ka.critical_time(kc.theory.dwell_times(g, "shut", agonist=c), split=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec.bursts(tc).compare(th)                 # ideal record: no warning
    with pytest.warns(RuntimeWarning, match="ideal-record theory"):
        rec.resolve(100 * us).bursts(tc).compare(th)


# ---------------------------------------------------------------------------- missed events

def _correlation_eigenvalue(Q, t_res, open_):
    """|lambda_2| of the embedded matrix eG_AF eG_FA (eG_FA eG_AF for shut times) of the
    apparent intervals, a Markov renewal process [HJC90]: it sets the correlation of
    successive intervals.  CH82 order: open states AR*, A2R* first."""
    from ketacore import theory as th
    p = th.equilibrium(Q)
    o, f = np.array([0, 1]), np.array([2, 3, 4])
    A = th._HJCClass(Q, p, o, f, t_res, True)
    F = th._HJCClass(Q, p, f, o, t_res, True)
    eaf = th._e_G(A.QAA, A.QAF, A.QFA, A.QFF, A.EF)
    efa = th._e_G(F.QAA, F.QAF, F.QFA, F.QFF, F.EF)
    lam = np.sort(np.abs(np.linalg.eigvals(eaf @ efa if open_ else efa @ eaf)))[::-1]
    return lam[1] if lam.size > 1 else 0.0


@pytest.mark.parametrize("t_res", [25 * us, 100 * us])
def test_resolved_distributions_match_hjc(t_res):
    """The resolved CH82 record (0.1 uM) has the HJC distributions of apparent open and shut
    times, not only their means (tests/test_analysis.py): chi-square over log bins (5 per
    decade, expected > 5) against ``LogHistogram.expected`` of
    ``kc.theory.apparent_dwell_times`` (exact to 3 t_res, asymptotic beyond, as HJCFIT; checked
    against SCALCS and HJCFIT in tests/test_theory_hjc.py), on durations thinned to every m-th,
    m the smallest with |lambda_2(eG_AF eG_FA)|**m < 1e-3 (correlation between kept intervals
    < 1e-3, so the counts are multinomial to that order): p > 1e-3 fails with probability
    0.1 % per comparison.  The ideal pdf truncated at t_res (what LogHistogram.expected draws
    for a dwell_times mixture) fails the same test badly for the openings."""
    g = kc.models.get("ch82")
    c = 0.1 * uM
    Q = g.q_matrix(agonist=c)
    rec = ka.Record.from_events(kc.simulate_events(g, kc.Step(20000 * s, agonist=c),
                                                   n_trials=4, rng=42)).resolve(t_res)
    for open_ in (True, False):
        lam2 = _correlation_eigenvalue(Q, t_res, open_)
        m = 1 if lam2 < 1e-12 else max(1, math.ceil(math.log(1e-3) / math.log(lam2)))
        x = (rec.open_times() if open_ else rec.shut_times())[::m]
        assert x.size > 5000
        h = ka.log_histogram(x, bins_per_decade=5, t_res=t_res, t_max=1e3)
        hjc = kc.theory.apparent_dwell_times(g, "open" if open_ else "shut", t_res=t_res,
                                             agonist=c)
        e = h.expected(hjc)
        keep = e > 5
        chi2 = float(np.sum((h.counts[keep] - e[keep]) ** 2 / e[keep]))
        assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-3, (open_, m, chi2, keep.sum())
        if open_:
            ideal = h.expected(kc.theory.dwell_times(g, "open", agonist=c))
            chi2_ideal = float(np.sum((h.counts[keep] - ideal[keep]) ** 2 / ideal[keep]))
            assert stats.chi2.sf(chi2_ideal, keep.sum() - 1) < 1e-12


def test_new_flags_refuse_non_booleans():
    """Record.open_probability(per_sweep=) and ExponentialMixture.simplify(return_bound=) took
    any truthy value ("no" meant True); they now want True or False."""
    log = kc.simulate_events(kc.models.get("ch82"), kc.Step(1.0, agonist=1e-7), n_trials=2, rng=1)
    rec = kc.analysis.Record.from_events(log)
    with pytest.raises(TypeError, match="per_sweep must be True or False, got str"):
        rec.open_probability(per_sweep="no")
    assert rec.open_probability(per_sweep=np.bool_(True)).shape == (2,)
    mix = kc.theory.dwell_times(kc.models.get("ch82"), "shut", agonist=1e-7)
    with pytest.raises(TypeError, match="return_bound must be True or False, got int"):
        mix.simplify(return_bound=1)
    assert isinstance(mix.simplify(return_bound=False), kc.theory.ExponentialMixture)
