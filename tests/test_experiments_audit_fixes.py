"""kc.experiments: fixes of the user audit (A2, A3, A4, B3, C2, C4, C5).

Stochastic checks use fixed seeds, so each is deterministic; the failure probability quoted
with each bound is the chance that a correct implementation would have failed it for a random
seed.  The exact figures quoted in comments are those of ``erreger2005_2a`` at -70 mV, 1 mM
glutamate.
"""
import math
import warnings

import numpy as np
import pytest
from scipy import stats

import ketacore as kc
from ketacore import _validate as V_
from ketacore.units import mM, ms, mV, uM

E = kc.experiments
G = "erreger2005_2a"
MG = dict(also=["mg"], background={"mg": 1 * mM})


def _within(x, se, ref, k):
    assert abs(x - ref) <= k * se, f"{x} vs exact {ref} (SE {se}, bound {k} SE)"


# =========================================================================== A2
def test_noisy_fit_judges_flatness_from_the_trend_not_the_end_points():
    """A noisy relaxation whose first and last samples are equal is fitted (the old rule,
    y[0] - y[-1], called it flat); pure noise is refused as having no relaxation above the
    noise (the refusal fails for pure noise with probability 0.27 %, a 3-SE Gaussian tail)."""
    rng = np.random.default_rng(7)
    t = np.linspace(0.0, 10.0, 401)
    y = 0.3 * np.exp(-t / 2.0) + 0.7 + rng.normal(0.0, 0.05, t.size)
    y[-1] = y[0]                                   # equal end points, as in noisy counts
    with pytest.raises(ValueError, match="flat"):
        E._fit_exponentials(t, y)                  # the exact-trace rule (kept for exact)
    taus, amps, c, se = E._fit_exponentials(t, y, noisy=True)
    # SE from the fit covariance of white noise: 5 SE bound, P = 6e-7 (Gaussian)
    assert abs(taus[0] - 2.0) < 5 * se[0] and se[0] < 0.2
    noise = rng.normal(0.7, 0.05, t.size)
    with pytest.raises(ValueError, match="no relaxation above the noise"):
        E._fit_exponentials(t, noise, noisy=True)


def test_trial_mean_fit_with_jackknife_se_covers_the_true_tau():
    """_fit_trials (the stochastic fit of block_kinetics and trapping): the fit to the trial
    mean with its jackknife SE over trials covers the true tau of synthetic traces (8 trials of
    a 2 s relaxation in white noise, 60 replicates).  z = (tau - 2)/SE is about Student t with 7
    df (from 200 replicates: 6.5 % beyond its 97.5 % point): more than 11 of 60 beyond it has
    probability 4e-4 (binomial), a median |z| outside [0.4, 1.2] 5e-4 (t_7 order statistic),
    so SEs neither much too small nor much too large."""
    rng = np.random.default_rng(20240917)
    t = np.linspace(0.0, 10.0, 201)
    z = []
    for _ in range(60):
        traces = 0.3 * np.exp(-t / 2.0) + 0.7 + rng.normal(0.0, 0.3, (8, t.size))
        tau, taus, w, se = E._fit_trials(t, traces, 1)
        assert se > 0 and tau == taus[0] and w[0] == 1.0
        z.append((tau - 2.0) / se)
    z = np.abs(np.array(z))
    assert np.sum(z > stats.t.ppf(0.975, 7)) <= 11
    assert 0.4 < np.median(z) < 1.2


@pytest.mark.parametrize("seed", [1, 3])
def test_stochastic_block_kinetics_with_few_open_channels_is_fitted(seed):
    """The audit's call (ketamine 10 uM, 1 mM Mg2+, 4 trials x 1000 channels: about 3 channels
    conduct per trial at control) raised 'no relaxation to fit (the trace is flat); lengthen
    t_off' for seeds 1 and 3; it now returns finite time constants with positive SEs."""
    r = E.block_kinetics(G, "ketamine", 10 * uM, **MG, method="stochastic", n_trials=4,
                         n_channels=1000, rng=seed)
    for tau, se in ((r.tau_on, r.tau_on_se), (r.tau_off, r.tau_off_se)):
        assert math.isfinite(tau) and tau > 0 and math.isfinite(se) and se > 0


def test_stochastic_block_kinetics_with_few_open_channels_agrees_with_exact():
    """Same conditions, 16 trials: the trial-mean fit agrees with the exact fit (onset 3.65 s,
    recovery 5.11 s) within 5 jackknife SEs (about t with 15 df: P = 1.6e-4 per phase)."""
    ex = E.block_kinetics(G, "ketamine", 10 * uM, **MG)
    st = E.block_kinetics(G, "ketamine", 10 * uM, **MG, method="stochastic", n_trials=16,
                          n_channels=1000, rng=2024)
    _within(st.tau_on, st.tau_on_se, ex.tau_on, 5)
    _within(st.tau_off, st.tau_off_se, ex.tau_off, 5)
    # the SE is that of a noisy estimate, not a fit covariance of a smooth trace
    assert st.tau_on_se > 10 * ex.tau_on_se


def test_stochastic_block_kinetics_too_noisy_says_too_few_open_channels():
    """A trial mean with no relaxation above its noise (20 channels, 0.06 conducting per trial)
    is refused with advice that can help (more channels or trials), not 'lengthen t_on'."""
    with pytest.raises(ValueError) as ei:
        E.block_kinetics(G, "ketamine", 10 * uM, **MG, method="stochastic", n_trials=2,
                         n_channels=20, rng=1)
    msg = str(ei.value)
    assert "too few open channels per trial" in msg
    assert "raise n_channels (now 20) or n_trials (now 2)" in msg
    assert "about 0.0632 of the 20 channels conduct at control" in msg
    assert "lengthen" not in msg


# =========================================================================== A3
def _slowest_tau(scheme, **cond):
    """Slowest relaxation time constant (s) of the Q matrix, by numpy's eigenvalues."""
    lam = np.linalg.eigvals(scheme.q_matrix(**cond))
    lam = np.sort(np.abs(lam.real))
    return 1.0 / lam[lam > 1e-12 * lam.max()][0]


def test_mk801_tau_recovery_from_the_default_window_is_flagged_as_extrapolated():
    """MK-801 1 uM: the default 60 s re-application fits 4200 s (SE 219 s) where the recovery
    time constant is 5400 s: flagged, warned, and said in the summary, with the exact time
    constant (the slowest eigenvalue of the re-application Q matrix) and the advice."""
    with pytest.warns(UserWarning, match=r"tau_recovery = 4200 s is extrapolated.*"
                                         r"t_recovery >= 2700 s"):
        r = E.trapping(G, "mk801", 1 * uM)
    assert r.tau_recovery_extrapolated is True
    assert r.tau_recovery < 0.8 * r.theory_tau_recovery
    slow = _slowest_tau(kc.block(G, "mk801"), V=-70 * mV, glutamate=1 * mM)
    assert r.theory_tau_recovery == pytest.approx(slow, rel=1e-6)
    assert r.theory_tau_recovery == pytest.approx(5400, rel=1e-3)
    assert r.theory_taus_recovery.size == r.theory_amps_recovery.size > 0
    text = r.summary()
    assert "EXTRAPOLATED" in text and "t_recovery >= 2700 s" in text
    assert f"largest exact component {r.theory_tau_recovery:.4g} s" in text


def test_tau_recovery_threshold_and_the_advised_window():
    """The advised t_recovery (tau/2 = 2700 s) is not flagged and its fit reaches the exact
    time constant; 1500 s (< tau/3 = 1800 s) is."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")               # no warning at all at the advice
        ok = E.trapping(G, "mk801", 1 * uM, t_recovery=2700)
    assert ok.tau_recovery_extrapolated is False
    assert ok.tau_recovery == pytest.approx(ok.theory_tau_recovery, rel=2e-3)
    assert "EXTRAPOLATED" not in ok.summary()
    with pytest.warns(UserWarning, match="extrapolated"):
        short = E.trapping(G, "mk801", 1 * uM, t_recovery=1500)
    assert short.tau_recovery_extrapolated is True


def test_ketamine_tau_recovery_is_not_flagged():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = E.trapping(G, "ketamine")
    assert r.tau_recovery_extrapolated is False
    assert 3 * r.tau_recovery < r.phase_ends[2] - r.phase_ends[1]


def test_stochastic_tau_recovery_fits_the_trial_mean():
    """Stochastic tau_recovery: the fit to the trial-mean blocked occupancy agrees with the
    exact fit (5.11 s) within 5 jackknife SEs (about t with 19 df: P = 8e-5)."""
    ex = E.trapping(G, "ketamine")
    st = E.trapping(G, "ketamine", method="stochastic", n_channels=500, n_trials=20, rng=2)
    assert 0 < st.tau_recovery_se < 0.1 * st.tau_recovery
    _within(st.tau_recovery, st.tau_recovery_se, ex.tau_recovery, 5)
    assert st.tau_recovery_extrapolated is False
    assert st.theory_tau_recovery == ex.theory_tau_recovery      # exact in both methods


# =========================================================================== A4
def test_stochastic_trapping_block_is_averaged_and_its_se_is_honest():
    """Ketamine 10 uM in 1 mM Mg2+, 200 channels x 4 trials: fewer than one channel per trial
    conducts at control, so block read from one sample was -58 +- 91 % (seed 1) against
    33.0 % exact.  Over 20 seeds: the SEs are now about 3 % (< 6 %), and they are honest --
    the spread of the 20 estimates matches the RMS of their SEs (SD ratio within [0.45, 1.8]:
    P about 1e-3, chi-square with 19 df widened for the SEs' own scatter) and their mean is
    the exact value (5 SE of the mean, t with 19 df: P = 8e-5).  Likewise the first-response
    trapped_current, whose trials are averaged over the exact response's peak region."""
    ex = E.trapping(G, "ketamine", **MG)
    blk, blk_se, trc, trc_se = [], [], [], []
    for seed in range(20):
        r = E.trapping(G, "ketamine", **MG, method="stochastic", n_channels=200, n_trials=4,
                       rng=seed)
        blk.append(r.block), blk_se.append(r.block_se)
        trc.append(r.trapped_current), trc_se.append(r.trapped_current_se)
    for x, se, ref, cap in ((blk, blk_se, ex.block, 0.06), (trc, trc_se, ex.trapped_current,
                                                              0.3)):
        x, se = np.array(x), np.array(se)
        rms = math.sqrt(float(np.mean(se ** 2)))
        assert rms < cap
        assert 0.45 < x.std(ddof=1) / rms < 1.8
        _within(x.mean(), x.std(ddof=1) / math.sqrt(x.size), ref, 5)
    assert "mean over the last 1 s of co-application" in r.summary()
    assert r.meta["window"] == 1.0


def test_stochastic_block_targets_the_end_value_when_block_still_develops():
    """A 1 s co-application averaged over its whole length (window 1 s): block rises from 0 to
    84.1 % (exact end) and its exact window mean is 76.9 %.  The stochastic estimate carries
    the exact trend over the window, so it estimates the end value (5 SE, t with 19 df: P =
    8e-5) and is far from the window mean (a plain window mean would be biased by 44 SE)."""
    kw = dict(t_block=1.0, t_wash=5.0, t_recovery=5.0, window=1.0)
    ex = E.trapping(G, "ketamine", 10 * uM, **kw)
    st = E.trapping(G, "ketamine", 10 * uM, **kw, method="stochastic", n_channels=2000,
                    n_trials=20, rng=11)
    _within(st.block, st.block_se, ex.block, 5)
    su = E._Setup(G, "ketamine", V=-70 * mV, agonist=None, also=(), background=None,
                  method="exact", n_channels=None, n_trials=None, rng=None, engine="auto")
    p0 = su.equilibrium(True)
    _, occ = su.exact(kc.Protocol([su.step(1.0, True, 10 * uM)]), 1e-3, p0)
    window_mean = 1.0 - float(np.mean(occ @ su.g)) / float(su.conductance(p0))
    assert abs(st.block - window_mean) > 20 * st.block_se


def test_exact_trapping_ignores_the_window():
    a = E.trapping(G, "ketamine", 10 * uM, t_block=2.0, t_wash=5.0, t_recovery=5.0)
    b = E.trapping(G, "ketamine", 10 * uM, t_block=2.0, t_wash=5.0, t_recovery=5.0, window=2.0)
    assert a.block == b.block and a.trapped_current == b.trapped_current
    assert a.meta["window"] is None and "mean over the last" not in a.summary()


# =========================================================================== B3
def _long_warnings(record):
    return [w for w in record if issubclass(w.category, UserWarning)
            and "longer than 1 h" in str(w.message)]


def test_trapping_durations_in_ms_warn_once_naming_the_parameters():
    """t_block=30000, t_wash=120000, t_recovery=60000 (ms meant) is a 58 h protocol: one
    UserWarning names each phase and says durations are in seconds."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        E.trapping(G, "ketamine", 10 * uM, t_block=30000, t_wash=120000, t_recovery=60000)
    long = _long_warnings(rec)
    assert len(long) == 1
    msg = str(long[0].message)
    for part in ("t_block=30000 s (8.33 h)", "t_wash=120000 s (33.3 h)",
                 "t_recovery=60000 s (16.7 h)", "durations are in seconds", "ketacore.units.ms"):
        assert part in msg
    assert long[0].filename == __file__                # attributed to the caller


@pytest.mark.parametrize("call", [
    lambda x: E.ic50(G, "ketamine", [1e-7, 1e-6, 1e-5], preincubation=x),
    lambda x: E.woodhull(G, "ketamine", [-80 * mV, -40 * mV], preincubation=x),
    lambda x: E.block_kinetics(G, "ketamine", 10 * uM, t_off=x, n_samples=2 * int(x) + 1),
    lambda x: E.use_dependence(G, "ketamine", 1 * uM, [0.0], duration=x, washout=2.0,
                               n_samples=10),
])
def test_each_experiment_warns_once_beyond_the_long_phase_limit(call):
    """Just above LONG_PHASE: one warning per call (woodhull: not one per voltage); just
    below: none."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        call(E.LONG_PHASE * 1.01)
    assert len(_long_warnings(rec)) == 1
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        call(E.LONG_PHASE * 0.99)
    assert _long_warnings(rec) == []


def test_durations_written_with_units_do_not_warn():
    """The advice of the warning: t_block=30000 * ms is 30 s, and no warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = E.trapping(G, "ketamine", 10 * uM, t_block=30000 * ms, t_wash=120000 * ms,
                       t_recovery=60000 * ms)
    assert r.phase_ends == pytest.approx((30.0, 150.0, 210.0))


# =========================================================================== C2
def test_use_dependence_with_a_pulse_count_prints_the_drug_phase():
    r = E.use_dependence(G, "ketamine", 1 * uM, [1.0, 10.0], duration=None, n_pulses=20,
                         washout=10.0, n_samples=20)
    text = r.summary()
    assert "nan" not in text.lower()
    assert "drug phase 20 pulses (20 s at 1 Hz, 2 s at 10 Hz)" in text
    assert r.meta["drug_durations"] == pytest.approx([20.0, 2.0])
    assert r.time_drug[0, -1] == pytest.approx(20.0)


# =========================================================================== C4
def test_exact_hill_fits_print_no_standard_error():
    """Fits to exact points printed 'IC50 = 0.755 ± 1.86e-16 uM'; the SE of a noise-free fit
    measures only how far the Hill equation misses the points."""
    r = E.ic50(G, "ketamine")
    assert r.meta["method"] == "exact" and r.ic50_se < 1e-9 * r.ic50     # a round-off SE
    line = r.summary().splitlines()[1]
    assert "±" not in line and line.startswith("  IC50 = ") and "exact points" in line
    p = E.ic50(G, "ketamine", [1e-6, 1e-5, 1e-4, 1e-3], kind="peak")
    assert not p.extrapolated and "±" not in p.bound() and "±" not in p.summary()
    st = E.ic50(G, "ketamine", [1e-7, 1e-6, 1e-5], method="stochastic", n_trials=4,
                n_channels=300, rng=1)
    assert "±" in st.bound() and "±" in st.summary().splitlines()[1]


def test_exact_woodhull_and_block_kinetics_fits_print_no_standard_error():
    """The same rule for the Woodhull law (whose misfit to exact IC50s is printed as such) and
    for the exponential fits of block_kinetics; stochastic fits keep their ± SE."""
    V = np.array([-100, -80, -60, -40]) * mV
    w = E.woodhull(G, "ketamine", V)
    assert w.meta["method"] == "exact" and w.z_delta_se > 0       # (a misfit, stored)
    line, note = w.summary().splitlines()[1:3]
    assert "±" not in line and "misfit, not an uncertainty" in note
    assert f"{w.z_delta_se:.2g}" in note
    k = E.block_kinetics(G, "ketamine", 10 * uM)
    assert k.tau_on_se > 0 and k.tau_off_se > 0
    text = k.summary().splitlines()
    assert text[1].startswith("  onset   tau = ") and "±" not in text[1]
    assert text[2].startswith("  recovery tau = ") and "±" not in text[2]
    ks = E.block_kinetics(G, "ketamine", 10 * uM, method="stochastic", n_trials=4,
                          n_channels=10000, rng=1)
    text = ks.summary().splitlines()
    assert "±" in text[1] and "±" in text[2]


# =========================================================================== C5
@pytest.mark.parametrize("c, text", [
    (1e-3, "1 mM"), (7.10003e-7, "0.71 uM"), (5e-8, "50 nM"), (1e-7, "0.1 uM"),
    (3e-4, "300 uM"), (9.9999e-4, "1 mM"), (0.5, "500 mM"), (0.0, "0 M")])
def test_concentration_text_scales_its_unit(c, text):
    assert E._conc_text(c) == text


def test_summaries_write_millimolar_as_mM():
    """'block kinetics of mg (1000 uM)': every printed concentration now scales its unit."""
    k = E.block_kinetics(G, "mg", 1 * mM)
    assert "of mg (1 mM)" in k.summary() and "1000 uM" not in k.summary()
    u = E.use_dependence(G, "mg", 1 * mM, [1.0], duration=1.0, washout=1.0, n_samples=10)
    assert "mg 1 mM on" in u.summary()
    t = E.trapping(G, "ketamine", 10 * uM)
    assert " 10 uM on " in t.summary()
    w = E.woodhull(G, "mg", [-80 * mV, -40 * mV])
    kd = w.summary().splitlines()[1].split("Kd(0 mV) = ")[1]
    assert kd.endswith(" mM") and w.kd0 > 1e-3


# =========================================================================== limit
def test_the_exact_ic50_follows_the_concentration_limit(monkeypatch):
    """The exact IC50 root is searched up to _validate.MAX_CONCENTRATION, whatever its value (it
    evaluated 10 M, refused once the limit is lower); below the limit nothing changes."""
    ref = E.ic50(G, "ketamine").ic50_exact                     # 0.755 uM
    glu = {"glutamate": 10 * uM}
    hi = E.ic50(G, "ketamine", V=100 * mV, agonist=glu).ic50_exact
    assert hi > 20 * uM
    monkeypatch.setattr(V_, "MAX_CONCENTRATION", 0.02)
    assert E.ic50(G, "ketamine").ic50_exact == pytest.approx(ref, rel=1e-9)
    monkeypatch.setattr(V_, "MAX_CONCENTRATION", hi / 2)
    with pytest.raises(ValueError, match=rf"negligible at V = 100 mV.*IC50 is > {hi / 2:g} M.*"
                                         rf"concentrations \(<= {hi / 2:g} M\)"):
        E.ic50(G, "ketamine", V=100 * mV, agonist=glu)


@pytest.mark.parametrize("x, se, text", [
    (86.3, 0.7549, "86.30 ± 0.75"),            # the audit's "86.3 ± 0.7549 %"
    (0.7551, 0.0123, "0.755 ± 0.012"),
    (5113.0, 98.1, "5113 ± 98"),
    (-58.31, 91.4, "-58 ± 91"),
    (1.234e-4, 5.6e-6, "0.000123 ± 5.6e-06"),  # beyond 6 decimals: significant figures
    (1.0, 0.0, "1"), (1.0, float("nan"), "1"),  # no SE: the value alone
])
def test_value_and_se_share_their_last_decimal(x, se, text):
    """A value and its SE print the SE to 2 significant figures and the value to the same
    decimal place."""
    assert E._pm(x, se) == text
