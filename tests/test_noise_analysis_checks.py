"""kc.analysis.noise_analysis: the checks of its one-current assumption, and standard errors of
summaries split over calls (audit 18b, findings 1-3).

1. A voltage step inside the fit window: ``i = g (V - E_rev)`` takes two values, so the
   parabola's single ``i`` matches neither (the audit: i = -1.42 pA between -3.50 and -2.00 pA,
   N = inf).  A :class:`SimulationResult` carries ``V`` per sample; a window whose samples are
   not at one voltage is refused, naming ``window`` and a constant-voltage window to use.
2. Several conductance levels (50 and 20 pS): the variance follows ``i_eff(t) I - I^2/N`` with
   a current-weighted mean level ``i_eff``, so N is biased (129-153 for 100 channels in the
   audit).  A RuntimeWarning names the levels, the bias direction and the fit's limit on the
   run's own mean occupancies.
3. A ``record="summary"`` split over calls: the list of parts gives the delete-one-part
   jackknife (the joined summary alone keeps no per-part sums: NaN SEs).

Statistics (DESIGN.md section 4; failure probabilities for a correct implementation):

* ``(estimate - truth) / SE`` with a 20-group jackknife SE is treated as Student t with 19
  degrees of freedom; ``|t| < t.isf(0.5e-4, 19) = 4.90`` fails with probability 1e-4 each.
* A jackknife SE over ``G`` groups has (for a smooth statistic) ``SE^2 ~ sigma^2 chi2(G-1) /
  (G-1)``.  Two SEs of the same estimator are compared through the ratio of their squares,
  bounded by the F(G1-1, G2-1) quantiles at 0.5e-4 each side (failure 1e-4 per ratio if the
  two were independent; they come from the same trials, which correlates them positively and
  only narrows the ratio, so the bound is conservative).
* Equalities (same partition, exact algebra) are checked to 1e-9 relative: both sides are
  float computations of the same integer sums, observed to agree to ~1e-15.
"""
import math
import re
import warnings

import numpy as np
import pytest
from scipy import stats

import ketacore as kc
from ketacore import analysis as ka

T_JK = stats.t.isf(0.5e-4, 19)      # 4.90: 20-group jackknife t, failure 1e-4 two-sided

# ----------------------------------------------------------------- finding 1: voltage step

_GLU_STEP_V = kc.Protocol([kc.Step(1e-3, V=-0.07, glutamate=1e-3), kc.Step(0.02, V=-0.07),
                           kc.Step(0.28, V=-0.04)], rest=kc.Step(1.0, V=-0.07))


@pytest.fixture(scope="module")
def vstep_counts():
    return kc.simulate("destexhe1994", _GLU_STEP_V, 1e-3, 100, 200, rng=1, method="population")


@pytest.mark.parametrize("record", ["counts", "summary"])
def test_voltage_step_inside_the_fit_window_is_refused(vstep_counts, record):
    """-70 -> -40 mV at 21 ms during the decay: the whole record (no window) and a window
    straddling the step are refused with a ValueError naming ``window``, the two voltages and
    why (one single-channel current).  Deterministic."""
    r = vstep_counts if record == "counts" else kc.simulate(
        "destexhe1994", _GLU_STEP_V, 1e-3, 100, 200, rng=1, method="population", record="summary")
    with pytest.raises(ValueError, match=r"^window: the membrane voltage changes") as e:
        ka.noise_analysis(r)
    msg = str(e.value)
    assert "-70 mV at 0-0.02 s" in msg and "-40 mV at 0.021-0.301 s" in msg, msg
    assert "i = g (V - E_rev)" in msg and "window=(0.021, 0.301)" in msg, msg
    with pytest.raises(ValueError, match="voltage changes"):
        ka.noise_analysis(r, window=(0.010, 0.030))
    # a list of parts is checked the same way
    if record == "summary":
        parts = [kc.simulate("destexhe1994", _GLU_STEP_V, 1e-3, 100, rng=1, method="population",
                             record="summary", trials=range(k, k + 50)) for k in (0, 50)]
        with pytest.raises(ValueError, match="voltage changes"):
            ka.noise_analysis(parts)


def test_constant_voltage_window_is_accepted_and_recovers_i(vstep_counts):
    """The window the message suggests (after the step, -40 mV) fits, and gives
    i = 50 pS x (-40 mV - 0) = -2.00 pA and N = 100 within 4.90 jackknife SEs (failure 1e-4
    each).  A window before the step (-70 mV) is accepted too."""
    with pytest.raises(ValueError) as e:
        ka.noise_analysis(vstep_counts)
    t0, t1 = map(float, re.search(r"window=\(([-0-9.e]+), ([-0-9.e]+)\)", str(e.value)).groups())
    na = ka.noise_analysis(vstep_counts, window=(t0, t1))
    assert np.all(vstep_counts.V[na.used] == -0.04)
    assert abs(na.i - (-2.0e-12)) < T_JK * na.se_i, (na.i, na.se_i)
    assert abs(na.N - 100) < T_JK * na.se_N, (na.N, na.se_N)
    # the audit's fit across the step was -1.42 +- 0.11 pA: 5 SEs from -2 pA -- this test would
    # have failed it (and it never reached a finite N)
    before = ka.noise_analysis(vstep_counts, window=(0.0, 0.020))
    assert before.used.sum() == 21 and np.all(vstep_counts.V[before.used] == -0.07)


# ------------------------------------------------------------ finding 2: two conductance levels

def _sublevel_scheme():
    return kc.Scheme(["C", "O1", "O2"],
                     [("C", "O1", kc.rate(1e7, "glutamate")), ("O1", "C", 200.0),
                      ("O1", "O2", 300.0), ("O2", "O1", 100.0), ("O2", "C", 300.0)],
                     conductance={"O1": 50e-12, "O2": 20e-12}, name="sublevel")


_SUB_P = kc.Protocol([kc.Step(2e-3, glutamate=1e-3), kc.Step(0.05)], rest=kc.Step(1.0))


@pytest.mark.parametrize("record", ["counts", "summary"])
def test_two_conductance_levels_warn_with_levels_and_bias(record):
    """50 and 20 pS open states (O1 entered first, O2 later): the current-weighted mean level
    falls as |I| decays, so N is overestimated (the audit: 129-153 for 100).  The warning names
    both levels and the direction; the N it predicts from the run's own mean occupancies agrees
    with the data's N within 4.90 jackknife SEs (failure 1e-4; counts only, which have SEs)."""
    r = kc.simulate(_sublevel_scheme(), _SUB_P, 2e-4, 100, 400, rng=0, record=record,
                    method="population")
    with pytest.warns(RuntimeWarning, match=r"2 distinct conductance levels \(20, 50 pS\)") as w:
        na = ka.noise_analysis(r)
    msg = [str(x.message) for x in w if "conductance levels" in str(x.message)][0]
    assert "overestimated" in msg and "largest level's -3.5 pA" in msg, msg
    n_pred = float(re.search(r"N = ([0-9.e+]+) for 100 channels", msg).group(1))
    assert n_pred > 110, msg                   # the bias is real (the audit's 129-153)
    if record == "counts":
        assert abs(na.N - n_pred) < T_JK * na.se_N, (na.N, n_pred, na.se_N)
        # and the data show it: expected z ~ (142 - 100) / 7.3 = 5.8 (the audit: 3.9-7.0); z < 2
        # needs N 3.8 SEs below its expectation, probability ~1e-4 (t, 19 df)
        assert (na.N - 100) / na.se_N > 2


def test_one_conductance_level_or_unoccupied_second_level_does_not_warn():
    """ch82 has two open states of one conductance; a 20 pS state reachable only with a drug
    that is absent is never occupied: neither warns (RuntimeWarnings are errors here)."""
    p = kc.Protocol([kc.Step(2e-3, V=-0.1, agonist=1e-5), kc.Step(0.02, V=-0.1)])
    r = kc.simulate("ch82", p, 1e-4, 200, 60, rng=8, initial="R", method="population")
    s = kc.Scheme(["C", "O1", "O2"],
                  [("C", "O1", kc.rate(1e7, "glutamate")), ("O1", "C", 200.0),
                   ("O1", "O2", kc.rate(1e9, "drug")), ("O2", "O1", 100.0)],
                  conductance={"O1": 50e-12, "O2": 20e-12}, name="unreached")
    r2 = kc.simulate(s, _SUB_P, 2e-4, 100, 100, rng=3, initial="C", method="population")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ka.noise_analysis(r)
        ka.noise_analysis(r2)


# ---------------------------------------------------------- finding 3: summaries split over calls

_GLU = kc.Protocol([kc.Step(1e-3, glutamate=1e-3), kc.Step(0.15)], rest=kc.Step(1.0))
_RUN = dict(scheme="destexhe1994", protocol=_GLU, dt=1e-3, n_channels=100, rng=1,
            method="population")


def _part(trials, record="summary"):
    return kc.simulate(**_RUN, trials=trials, record=record)


@pytest.fixture(scope="module")
def counts400():
    return kc.simulate(**_RUN, n_trials=400)


@pytest.mark.parametrize("baseline", [False, True])
def test_parts_jackknife_equals_per_trial_jackknife_on_the_same_partition(counts400, baseline):
    """Parts holding trials g, g+10, ... are exactly the groups of the per-trial jackknife with
    n_groups=10 (trial k in group k % 10): estimates and SEs must agree to 1e-9 relative."""
    parts = [_part(range(g, 400, 10)) for g in range(10)]
    a = ka.noise_analysis(parts, baseline=baseline)
    b = ka.noise_analysis(counts400, n_groups=10, baseline=baseline)
    names = ["i", "N", "se_i", "se_N"] + (["var_baseline", "se_var_baseline"] if baseline else [])
    for k in names:
        assert getattr(a, k) == pytest.approx(getattr(b, k), rel=1e-9), k
    assert a.n_trials == 400 and np.array_equal(a.used, b.used)


def test_summary_parts_give_finite_ses_consistent_with_the_per_trial_jackknife(counts400):
    """The audit's case, 10 contiguous parts x 40 trials: the fit equals that of the joined data
    (1e-9), the joined summary alone still has NaN SEs, and the parts' SEs are finite and agree
    with the delete-one-trial jackknife (400 groups) of the same trials: (se_parts/se_trial)^2
    within F(9, 399) quantiles at 0.5e-4 each side, i.e. the ratio in [0.249, 2.02] -- failure
    probability 1e-4 per SE (2e-4 for both), conservative as the module docstring says.  (With
    seed 1 the ratios are 0.84 and 0.72.)  The exact algebra is checked by the same-partition
    test above; this one checks that contiguous parts, as a split run gives them, are valid
    groups."""
    parts = [_part(range(40 * k, 40 * k + 40)) for k in range(10)]
    na = ka.noise_analysis(parts)
    joined = ka.noise_analysis(kc.concatenate(parts))
    ref = ka.noise_analysis(counts400, n_groups=400)
    assert na.i == pytest.approx(ref.i, rel=1e-9) and na.N == pytest.approx(ref.N, rel=1e-9)
    assert math.isnan(joined.se_i) and math.isnan(joined.se_N)
    lo, hi = (math.sqrt(stats.f.ppf(5e-5, 9, 399)), math.sqrt(stats.f.isf(5e-5, 9, 399)))
    assert 0.24 < lo < 0.26 and 2.01 < hi < 2.03
    for k in ("se_i", "se_N"):
        ratio = getattr(na, k) / getattr(ref, k)
        assert math.isfinite(getattr(na, k)) and lo < ratio < hi, (k, ratio)


def test_unequal_parts_use_the_delete_mj_jackknife():
    """Parts of 5 to 80 trials: the SEs equal the delete-m_j jackknife (Busing, Meijer & van der
    Leeden 1999) computed here from brute-force replicates -- noise_analysis of kc.concatenate
    of the other parts (exact integer sums) -- to 1e-8 relative (the library pools the parts'
    float means and variances instead)."""
    sizes = [5, 10, 25, 40, 80]
    edges = np.r_[0, np.cumsum(sizes)]
    parts = [_part(range(a, b)) for a, b in zip(edges[:-1], edges[1:])]
    na = ka.noise_analysis(parts)
    n, G = float(sum(sizes)), len(sizes)
    full = np.array([na.i, na.N])
    reps = np.array([[(x := ka.noise_analysis(kc.concatenate(parts[:g] + parts[g + 1:]))).i, x.N]
                     for g in range(G)])
    h = n / np.array(sizes, float)[:, None]
    pseudo = h * full - (h - 1) * reps
    theta_j = G * full - np.sum((1 - 1 / h) * reps, axis=0)
    se = np.sqrt(np.sum((pseudo - theta_j) ** 2 / (h - 1), axis=0) / G)
    assert na.se_i == pytest.approx(se[0], rel=1e-8) and na.se_N == pytest.approx(se[1], rel=1e-8)


def test_lists_of_parts_are_checked_and_counts_parts_keep_the_per_trial_jackknife(counts400):
    """A list is joined with kc.concatenate's checks (one simulation, disjoint trials), mixing
    types is a TypeError, one summary part has no groups (NaN SEs), and a list of counts parts
    is the joined counts (per-trial jackknife, n_groups honoured).  Deterministic."""
    a = _part(range(0, 20))
    other_seed = kc.simulate(**{**_RUN, "rng": 2}, trials=range(20, 40), record="summary")
    with pytest.raises(ValueError, match=r"data \(a list of SimulationResult parts\).*root entropy"):
        ka.noise_analysis([a, other_seed])
    with pytest.raises(ValueError, match="more than one part"):
        ka.noise_analysis([a, _part(range(10, 30))])
    with pytest.raises(TypeError, match="only SimulationResult parts"):
        ka.noise_analysis([a, np.zeros(151)])
    one = ka.noise_analysis([_part(range(0, 100))])
    assert math.isnan(one.se_i) and math.isfinite(one.i)
    cparts = [_part(range(0, 150), "counts"), _part(range(150, 400), "counts")]
    x = ka.noise_analysis(cparts, n_groups=10)
    y = ka.noise_analysis(counts400, n_groups=10)
    assert (x.i, x.N, x.se_i, x.se_N) == (y.i, y.N, y.se_i, y.se_N)
