"""dose_response over a voltage axis: the Woodhull fit of the Hill-fit IC50s (z_delta_*, kd0_*).

Oracles: ``kc.experiments.woodhull(method="exact")`` (exact equilibrium IC50 roots, its own
least squares) for the master-equation fit -- a study started at steady state (no ``initial``)
measures equilibrium block, whose Hill fit is the exact IC50 -- and a direct numpy least squares
of ln IC50 on V F/(R T) for the Monte Carlo fit (the same formula applied to the Dataset's own
ic50_mc values, so the plumbing of which points count is what is tested)."""
import dataclasses
import textwrap

import numpy as np
import pytest

import ketacore as kc
from ketacore import study as S
from ketacore.units import FARADAY, GAS_CONSTANT

pytest.importorskip("xarray")

VOLTS = [-100e-3, -70e-3, -40e-3, -10e-3, 20e-3]


def _study(extra_sweep: str = "", analysis: str = "", volts: str = '["-100 mV", "-70 mV", "-40 mV", '
           '"-10 mV", "20 mV"]', segment_extra: str = "", params_extra: str = "") -> kc.Study:
    return kc.Study.from_toml(textwrap.dedent(f"""
        name = "ketv"
        model = "erreger2005_2a"
        blockers = ["ketamine"]
        method = "population"
        n_channels = 200
        n_trials = 4
        dt = "10 ms"
        rng = 7
        record = "summary"
        [parameters]
        V = "-70 mV"
        ketamine = "1 uM"
        glutamate = "1 mM"
        temperature = 295.15
        {params_extra}
        [protocol]
        analysis = {{ kind = "dose_response", concentration = "ketamine"{analysis} }}
        [[protocol.segments]]
        duration = "0.5 s"
        V = "$V"
        glutamate = "$glutamate"
        ketamine = "$ketamine"
        {segment_extra}
        [sweep]
        ketamine = ["0.1 uM", "0.3 uM", "1 uM", "3 uM", "10 uM", "30 uM", "100 uM"]
        V = {volts}
        {extra_sweep}
    """))


@pytest.fixture(scope="module")
def run():
    return kc.run_study(_study(), progress=False, workers=1)


def test_master_equation_fit_equals_experiments_woodhull(run):
    ds = run["main"].ds
    assert ds.attrs["woodhull_axis"] == "sweep_V"
    ref = kc.experiments.woodhull("erreger2005_2a", "ketamine", VOLTS, agonist={"glutamate": 1e-3})
    # (the Hill fit of an exact equilibrium response recovers the exact IC50 to curve_fit's
    # tolerance, ~1e-7 relative here)
    np.testing.assert_allclose(ds["ic50_det"].values, ref.ic50, rtol=1e-5)
    assert float(ds["z_delta_det"]) == pytest.approx(ref.z_delta, abs=1e-5)
    assert float(ds["kd0_det"]) == pytest.approx(ref.kd0, rel=1e-5)
    assert int(ds["woodhull_voltages_det"]) == 5
    assert float(ds["woodhull_temperature_det"]) == pytest.approx(295.15)
    assert ds["kd0_det"].attrs["units"] == "M" and ds["z_delta_det"].attrs["units"] == "1"


def test_monte_carlo_fit_is_the_least_squares_of_its_own_ic50s(run):
    ds = run["main"].ds
    ic = ds["ic50_mc"].values
    ok = np.isfinite(ic) & ~ds["ic50_extrapolated_mc"].values
    assert ok.sum() >= 2
    x = np.array(VOLTS)[ok] * FARADAY / (GAS_CONSTANT * 295.15)
    slope, intercept = np.polyfit(x, np.log(ic[ok]), 1)
    assert float(ds["z_delta_mc"]) == pytest.approx(slope, rel=1e-10)
    assert float(ds["kd0_mc"]) == pytest.approx(np.exp(intercept), rel=1e-10)
    assert int(ds["woodhull_voltages_mc"]) == ok.sum()
    # jackknife SEs over the 4 trials (4 groups): finite
    assert np.isfinite(float(ds["z_delta_mc_se"])) and np.isfinite(float(ds["kd0_mc_se"]))
    assert "z_delta_det_se" not in ds     # the master equation has no noise: no SE, a misfit
    assert float(ds["woodhull_rms_det"]) < 1e-5 and float(ds["woodhull_vmin_det"]) == -0.1


def test_summary_states_the_fit(run):
    text = S.summary_table(run)
    me = next(x for x in text.splitlines() if "Woodhull fit over V (master equation)" in x)
    assert "zδ 0.790, K_d(0) 6.6" in me and "(5 voltages, -100 to 20 mV, 22.0 °C)" in me
    assert "±" not in me and "departs" not in me
    assert any("Woodhull fit over V (Monte Carlo)" in x for x in text.splitlines())


def test_one_fit_per_point_of_the_other_axes_at_their_temperature():
    """A temperature axis gives a fit per temperature, with V_T = RT/F at it (the oracle is
    woodhull at that temperature)."""
    tree = kc.run_study(_study(extra_sweep="temperature = [295.15, 308.15]",
                               volts='["-100 mV", "-40 mV", "20 mV"]',
                               segment_extra='temperature = "$temperature"'), progress=False, workers=1)
    ds = tree["main"].ds
    assert ds["z_delta_det"].dims == ("temperature",)
    for i, T in enumerate((295.15, 308.15)):
        ref = kc.experiments.woodhull("erreger2005_2a", "ketamine", [-0.1, -0.04, 0.02],
                                      agonist={"glutamate": 1e-3}, temperature=T)
        assert float(ds["z_delta_det"][i]) == pytest.approx(ref.z_delta, abs=1e-5)
        assert float(ds["kd0_det"][i]) == pytest.approx(ref.kd0, rel=1e-5)
        assert float(ds["woodhull_temperature_det"][i]) == T
    lines = [x for x in S.summary_table(tree).splitlines() if "Woodhull fit" in x]
    assert len(lines) == 4 and "at temperature 295.15" in lines[0]


def test_a_single_voltage_is_not_fitted_and_the_summary_says_why():
    tree = kc.run_study(_study(volts='["-70 mV"]'), progress=False, workers=1)
    ds = tree["main"].ds
    assert np.isnan(float(ds["z_delta_det"])) and int(ds["woodhull_voltages_det"]) == 1
    line = next(x for x in S.summary_table(tree).splitlines() if "Woodhull fit over V (master" in x)
    assert "not determined (1 distinct voltage among the 1 usable point (an IC50 that is not an " \
           "extrapolation, at one V and temperature over the analysis window); the fit needs 2)" in line


def test_steps_at_two_temperatures_give_no_single_thermal_voltage():
    st = _study(volts='["-100 mV", "20 mV"]', segment_extra=textwrap.dedent("""
        temperature = 295.15
        [[protocol.segments]]
        duration = "0.5 s"
        V = "$V"
        glutamate = "$glutamate"
        ketamine = "$ketamine"
        temperature = 308.15"""))
    tree = kc.run_study(st, progress=False, workers=1)
    ds = tree["main"].ds
    assert np.isnan(float(ds["z_delta_det"])) and np.isnan(float(ds["woodhull_temperature_det"]))
    assert int(ds["woodhull_voltages_det"]) == 0
    line = next(x for x in S.summary_table(tree).splitlines() if "Woodhull fit over V (master" in x)
    assert "0 distinct voltages among the 0 usable points" in line and "2 voltages with an IC50 left out: V or temperature " \
           "changes within the analysis window" in line


def test_no_voltage_axis_means_no_fit():
    st = kc.Study.from_toml(textwrap.dedent("""
        name = "k"
        model = "erreger2005_2a"
        blockers = ["ketamine"]
        n_channels = 50
        n_trials = 2
        dt = "10 ms"
        rng = 1
        [parameters]
        ketamine = "1 uM"
        [protocol]
        analysis = { kind = "dose_response", concentration = "ketamine" }
        [[protocol.segments]]
        duration = "0.2 s"
        V = "-70 mV"
        glutamate = "1 mM"
        ketamine = "$ketamine"
        [sweep]
        ketamine = ["0.3 uM", "1 uM", "3 uM"]
    """))
    ds = kc.run_study(st, progress=False, workers=1)["main"].ds
    assert "z_delta_det" not in ds and "woodhull_axis" not in ds.attrs


@pytest.mark.parametrize("voltage, match", [
    ("ketamine", r"analysis\.voltage: must name a voltage sweep axis .* other than the "
                 r"concentration axis, .*voltage axes: \['V'\]\), got 'ketamine'"),
    ("glutamate", r"analysis\.voltage: must name a voltage sweep axis .*got 'glutamate'"),
    ("W", r"analysis\.voltage: .*got 'W'"),
])
def test_a_wrong_voltage_axis_is_refused_by_key_before_running(voltage, match):
    """Refused when the study is read (nothing runs)."""
    with pytest.raises(S.StudyError, match=match):
        _study(extra_sweep='glutamate = ["1 mM", "0.1 mM"]', analysis=f', voltage = "{voltage}"')


def test_the_voltage_key_picks_one_of_two_voltage_axes():
    """Two axes in volts (the holding V = $V + $V2): none is chosen by default; ``voltage``
    names the one the fit runs over, and the other gets a fit per value."""
    kw = dict(extra_sweep='V2 = ["0 mV", "30 mV"]', volts='["-100 mV", "-10 mV"]', params_extra='V2 = "0 mV"')
    st = _study(**kw)
    st = st.replace(parts={"main": dataclasses.replace(st.parts["main"], segments=[
        {**st.parts["main"].segments[0], "V": "$V + $V2"}])})
    assert "z_delta_det" not in kc.run_study(st, progress=False, workers=1)["main"].ds
    st = st.replace(parts={"main": dataclasses.replace(st.parts["main"],
        analysis={"kind": "dose_response", "concentration": "ketamine", "voltage": "V"})})
    ds = kc.run_study(st, progress=False, workers=1)["main"].ds
    assert ds["z_delta_det"].dims == ("V2",)
    for i, v2 in enumerate((0.0, 0.03)):
        ref = kc.experiments.woodhull("erreger2005_2a", "ketamine", [-0.1 + v2, -0.01 + v2],
                                      agonist={"glutamate": 1e-3})
        assert float(ds["z_delta_det"][i]) == pytest.approx(ref.z_delta, abs=1e-5)
    assert np.isfinite(ds["z_delta_mc_se"].values).all()   # (jackknife: two voltages suffice)


def test_the_dose_response_figure_gains_a_woodhull_panel(run, tmp_path):
    pytest.importorskip("matplotlib")
    from ketacore import plot
    fig = plot.dose_response(run["main"].ds, tmp_path / "dr.png")
    assert len(fig.axes) == 2 and (tmp_path / "dr.png").stat().st_size > 10_000
    axw = fig.axes[1]
    assert axw.get_ylabel() == "IC50 (µM)" and axw.get_yscale() == "log"
    labels = [t.get_text() for t in axw.get_legend().get_texts()]
    assert labels[0].startswith("ME: zδ 0.79, K_d(0) 6.68 µM") and labels[1].startswith("MC: zδ")
    assert tuple(fig.get_size_inches()) == (11.0, 4.5)


def test_the_fit_uses_the_voltage_the_channels_saw():
    """helper-112's audit: with a junction-potential correction, V = "$V - 10 mV", the fit used
    the axis values and gave K_d(0) 4.89 uM (the IC50 at -10 mV) for 6.68."""
    st = _study(volts='["-100 mV", "-40 mV", "20 mV"]')
    st = st.replace(parts={"main": dataclasses.replace(st.parts["main"], segments=[
        {**st.parts["main"].segments[0], "V": "$V - 10 mV"}])})
    ds = kc.run_study(st, progress=False, workers=1)["main"].ds
    ref = kc.experiments.woodhull("erreger2005_2a", "ketamine", [-0.11, -0.05, 0.01], agonist={"glutamate": 1e-3})
    assert float(ds["kd0_det"]) == pytest.approx(ref.kd0, rel=1e-5)
    assert float(ds["z_delta_det"]) == pytest.approx(ref.z_delta, abs=1e-5)
    assert float(ds["woodhull_vmin_det"]) == pytest.approx(-0.11) and float(ds["woodhull_vmax_det"]) == pytest.approx(0.01)


def test_a_prepulse_inside_the_window_leaves_the_voltage_undefined():
    """helper-112's audit: 2 s at -70 mV then 0.5 s at $V, averaged over the whole protocol,
    gave z_delta 0.065 (for 0.79) with no word.  The V over the window is not one value: no fit,
    and the summary says why; a window over the test step alone fits at its V."""
    def make(window):
        st = _study(volts='["-100 mV", "-40 mV", "20 mV"]',
                    analysis=f', window = "{window}"' if window else "")
        seg = st.parts["main"].segments[0]
        return st.replace(parts={"main": dataclasses.replace(st.parts["main"], segments=[
            {**seg, "V": "-70 mV", "duration": "2 s"}, {**seg, "duration": "0.5 s"}])})
    tree = kc.run_study(make(None), progress=False, workers=1)
    ds = tree["main"].ds
    assert np.isnan(float(ds["z_delta_det"])) and int(ds["woodhull_voltages_det"]) == 0
    line = next(x for x in S.summary_table(tree).splitlines() if "Woodhull fit over V (master" in x)
    assert "3 voltages with an IC50 left out: V or temperature changes within the analysis window" in line
    ds = kc.run_study(make("0.2 s"), progress=False, workers=1)["main"].ds
    assert int(ds["woodhull_voltages_det"]) == 3 and np.isfinite(float(ds["z_delta_det"]))


def test_two_voltage_axes_without_the_key_are_named_in_the_summary():
    st = _study(extra_sweep='V2 = ["0 mV", "30 mV"]', volts='["-100 mV", "-10 mV"]', params_extra='V2 = "0 mV"')
    st = st.replace(parts={"main": dataclasses.replace(st.parts["main"], segments=[
        {**st.parts["main"].segments[0], "V": "$V + $V2"}])})
    tree = kc.run_study(st, progress=False, workers=1)
    text = S.summary_table(tree)
    assert "no Woodhull fit: 2 sweep axes are in volts (V, V2); name the one to fit over with " \
           "analysis.voltage" in text


def test_a_sweep_axis_named_like_a_fit_variable_is_renamed():
    """helper-112's audit: an axis called kd0_det had its coordinate overwritten by the fit."""
    assert {"kd0_det", "z_delta_mc_se", "woodhull_rms_det", "ic50_mc_se"} <= S.DATASET_NAMES
    assert S.sweep_dimensions(["kd0_det"]) == {"kd0_det": "sweep_kd0_det"}


def test_a_dimensionless_concentration_axis_is_not_drawn_in_micromolar(tmp_path):
    """helper-112's audit: a concentration axis without units was drawn x1e6 as 'uM' (legend
    'K_d(0) 6.68e+06 uM')."""
    pytest.importorskip("matplotlib")
    from ketacore import plot
    st = kc.Study.from_toml(textwrap.dedent("""
        name = "u"
        model = "erreger2005_2a"
        blockers = ["ketamine"]
        n_channels = 1000
        n_trials = 4
        dt = "10 ms"
        rng = 1
        [parameters]
        x = 1.0
        V = "-70 mV"
        [protocol]
        analysis = { kind = "dose_response", concentration = "x" }
        [[protocol.segments]]
        duration = "0.2 s"
        V = "$V"
        glutamate = "1 mM"
        ketamine = "$x * 1 uM"
        [sweep]
        x = [0.1, 1, 10, 100]
        V = ["-100 mV", "-40 mV"]
    """))
    ds = kc.run_study(st, progress=False, workers=1)["main"].ds
    fig = plot.dose_response(ds, tmp_path / "d.png")
    assert fig.axes[0].get_xlabel() == "x" and fig.axes[1].get_ylabel() == "IC50"
    lab = fig.axes[1].get_legend().get_texts()[0].get_text()
    assert lab.startswith("ME: zδ 0.79, K_d(0) 6.68") and "µM" not in lab


def test_one_voltage_draws_no_woodhull_panel(tmp_path):
    pytest.importorskip("matplotlib")
    from ketacore import plot
    ds = kc.run_study(_study(volts='["-70 mV"]'), progress=False, workers=1)["main"].ds
    assert len(plot.dose_response(ds, tmp_path / "d.png").axes) == 1


def test_extrapolated_ic50s_are_not_drawn_and_the_legend_counts_them(tmp_path):
    pytest.importorskip("matplotlib")
    from ketacore import plot
    st = _study(volts='["-100 mV", "-70 mV", "-40 mV", "40 mV"]')
    st = st.replace(parts={"main": dataclasses.replace(st.parts["main"], sweep={
        **st.parts["main"].sweep, "ketamine": ["0.1 uM", "0.3 uM", "1 uM", "3 uM"]})})
    with pytest.warns(RuntimeWarning, match="extrapolation"):
        ds = kc.run_study(st, progress=False, workers=1)["main"].ds
    assert bool(ds["ic50_extrapolated_det"].sel(sweep_V=0.04))
    # an extrapolated IC50 (here at +40 mV) has no SE
    assert np.isnan(float(ds["ic50_mc_se"].sel(sweep_V=0.04))) == bool(ds["ic50_extrapolated_mc"].sel(sweep_V=0.04))
    assert int(ds["woodhull_voltages_det"]) == 3
    fig = plot.dose_response(ds, tmp_path / "d.png")
    axw = fig.axes[1]
    assert all(len(line.get_xdata()) in (3, 50) for line in axw.get_lines())
    assert "(1 IC50 left out: extrapolated, or V not constant in the window)" in \
        axw.get_legend().get_texts()[0].get_text()


@pytest.mark.slow
def test_monte_carlo_standard_errors_are_calibrated():
    """The jackknife SEs over trials describe the scatter of the Monte Carlo fit across seeds
    (helper-112's audit: the residual-scatter SE of K_d(0) was 0.067 in ln units where the
    seeds scattered by 0.152 -- the sweep points share their trial streams, so their errors are
    correlated).  30 seeds x 16 trials x 100 channels; the statistic is the mean of the squared
    standardised errors (z = (estimate - exact) / SE) of ln K_d(0) and of z_delta.  For a
    calibrated SE it is ~1.1 (chi2/30 has SD 0.26; SEs from 16 jackknife groups scatter by
    ~18 % and fatten the tails, and the Hill fit of noisy data adds a small bias: SD ~0.35 in
    all); measured with these seeds: 1.21 and 1.52.  The bounds [0.4, 2.2] are ~2-3 SD out
    (a false failure for another seed set: roughly 1e-3); a SE 1.5x too small (mean >= 2.4)
    or 1.5x too large (<= 0.5) fails, and the old residual-scatter SE (2.3x too small) gave
    ~5."""
    ref = kc.experiments.woodhull("erreger2005_2a", "ketamine", VOLTS, agonist={"glutamate": 1e-3})
    zk, zz = [], []
    for seed in range(30):
        st = _study().replace(rng=1000 + seed, n_trials=16, n_channels=100, deterministic=False)
        ds = kc.run_study(st, progress=False, workers=1)["main"].ds
        zk.append((np.log(float(ds["kd0_mc"])) - np.log(ref.kd0)) / (float(ds["kd0_mc_se"]) / float(ds["kd0_mc"])))
        zz.append((float(ds["z_delta_mc"]) - ref.z_delta) / float(ds["z_delta_mc_se"]))
    for z in (np.array(zk), np.array(zz)):
        assert 0.4 < np.mean(z ** 2) < 2.2, z


def test_the_panel_draws_the_points_at_the_voltage_the_channels_saw(tmp_path):
    """helper-114's review: with V = "$V - 10 mV" the fit used the shifted voltages but the panel
    drew the points at the axis values, 0.73x off their own (exact) line."""
    pytest.importorskip("matplotlib")
    from ketacore import plot
    st = _study(volts='["-100 mV", "-40 mV", "20 mV"]')
    st = st.replace(parts={"main": dataclasses.replace(st.parts["main"], segments=[
        {**st.parts["main"].segments[0], "V": "$V - 10 mV"}])})
    ds = kc.run_study(st, progress=False, workers=1)["main"].ds
    np.testing.assert_allclose(ds["V_window"].isel(ketamine=0).values, [-0.11, -0.05, 0.01])
    axw = plot.dose_response(ds, tmp_path / "d.png").axes[1]
    pts, line = axw.get_lines()[0], axw.get_lines()[1]     # ME points, then the ME fit line
    np.testing.assert_allclose(pts.get_xdata(), [-110, -50, 10])
    on_line = np.interp(pts.get_xdata(), line.get_xdata(), np.log(line.get_ydata()))
    np.testing.assert_allclose(np.log(pts.get_ydata()), on_line, atol=1e-6)


def test_hill_fit_converges_to_the_exact_ic50():
    """The Levenberg-Marquardt Hill fit on an exactly hyperbolic response (ketamine's equilibrium
    block: 1/(1 + c/K_B)) returns K_B to ~1e-14 (xtol 1e-12); the bounded curve_fit it replaced
    stops 4e-9 short here with its default tolerances, so 1e-10 fails without it."""
    c = np.array([0.1, 0.3, 1, 3, 10, 30, 100]) * 1e-6
    K = 7.59162040e-7
    ic, nh, ext = S._hill_fit(c, 1 / (1 + c / K))
    assert ic == pytest.approx(K, rel=1e-10) and nh == pytest.approx(1.0, abs=1e-10) and not ext


def test_hill_fit_of_a_step_like_response_raises_no_overflow_warning():
    """helper-114's review: the Jacobian's (1 + e^u)^2 overflowed for a step-like response
    (u up to 700) and warned -- an error under this suite's RuntimeWarning filter."""
    c = np.array([0.1, 0.3, 1, 3, 10, 30, 100]) * 1e-6
    y = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    ic, nh, ext = S._hill_fit(c, y)
    assert 1e-6 < ic < 3e-6 and nh == pytest.approx(5.0, abs=1e-3)   # the steepest slope allowed


def test_monte_carlo_standard_errors_equal_a_delete_one_jackknife():
    """With 4 trials the groups are single trials: the SEs must equal the delete-one jackknife
    sqrt((n-1)/n sum (theta_k - mean)^2) of fits made here independently (least squares with a
    numerical Jacobian at tight tolerances on the trial means without trial k; np.polyfit for
    Woodhull).  The replicates differ by ~SE/sqrt(n), so a fit converged to 1e-5 would move the
    SE by ~1e-3: the tolerance 1e-5 needs both fits converged to ~1e-8."""
    from scipy.optimize import least_squares
    ds = kc.run_study(_study(volts='["-100 mV", "-40 mV", "20 mV"]'), progress=False, workers=1)["main"].ds
    tr = ds["response_trials"].transpose("sweep_V", "ketamine", "trial").values
    c = ds["ketamine"].values
    n = tr.shape[-1]
    assert n == 4
    vt = GAS_CONSTANT * 295.15 / FARADAY
    ic_k, z_k = [], []
    for k in range(n):
        r = np.delete(tr, k, axis=-1).mean(axis=-1)
        ics = [np.exp(least_squares(lambda q: 1 / (1 + (c / np.exp(q[0])) ** np.exp(q[1])) - r[j],
                                    [np.log(1e-6), 0.0], method="lm", xtol=1e-15, ftol=1e-15,
                                    gtol=1e-15).x[0]) for j in range(3)]
        ic_k.append(ics)
        z_k.append(np.polyfit(np.array([-0.1, -0.04, 0.02]) / vt, np.log(ics), 1)[0])
    ic_k, z_k = np.array(ic_k), np.array(z_k)
    jk = lambda t: np.sqrt((n - 1) / n * np.sum((t - t.mean(axis=0)) ** 2, axis=0))
    np.testing.assert_allclose(ds["ic50_mc_se"].transpose("sweep_V").values, jk(ic_k), rtol=1e-5)
    assert float(ds["z_delta_mc_se"]) == pytest.approx(float(jk(z_k)), rel=1e-5)


def test_one_trial_has_no_standard_errors_and_says_so():
    tree = kc.run_study(_study(volts='["-100 mV", "20 mV"]').replace(n_trials=1), progress=False, workers=1)
    ds = tree["main"].ds
    assert np.isnan(ds["ic50_mc_se"].values).all() and np.isnan(float(ds["z_delta_mc_se"]))
    line = next(x for x in S.summary_table(tree).splitlines() if "Woodhull fit over V (Monte" in x)
    assert "no SE: fewer than 2 trials" in line and "±" not in line


def test_a_many_point_dose_response_has_one_legend_entry_per_point(run, tmp_path):
    """helper-112's audit: with a model axis (10 curves) the legend -- four entries per point --
    covered the whole figure.  Now one entry per point (its colour, both IC50s) and a key of the
    four styles; beyond 10 entries the legend goes outside the axes."""
    pytest.importorskip("matplotlib")
    from ketacore import plot
    fig = plot.dose_response(run["main"].ds, tmp_path / "d.png")
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert len(texts) == 5 + 4
    assert texts[0].startswith("V -100 mV: IC50 0.299 (ME), ") and texts[-1] == "Hill fit (MC)"
    st = _study(extra_sweep='model = ["erreger2005_2a", "erreger2005_2b"]', volts='["-100 mV", "-70 mV", '
                '"-40 mV", "-10 mV", "20 mV", "40 mV"]')
    ds = kc.run_study(st, progress=False, workers=1)["main"].ds
    fig = plot.dose_response(ds, tmp_path / "m.png")
    assert fig.axes[0].get_legend() is None and len(fig.legends) == 1
    assert len(fig.legends[0].get_texts()) == 12 + 4
