"""ketacore.plot, review item A5: current_traces and occupancy draw the Datasets of a single run
(kc.solve(...).to_xarray(), kc.simulate(...).to_xarray()); the study figures refuse them with a
TypeError naming what to call; study Datasets without the analysis, bad points and unknown
inputs give clear errors (no raw KeyError/IndexError)."""
import textwrap

import numpy as np
import pytest

import ketacore as kc

pytest.importorskip("xarray")
mpl = pytest.importorskip("matplotlib")
import matplotlib.pyplot as plt  # noqa: E402

from ketacore import plot  # noqa: E402

SCHEME = kc.block(kc.models.get("erreger2005_2a"), kc.blockers.get("ketamine"))
PROT = kc.Protocol([kc.Step(0.05, glutamate=1 * kc.units.mM, ketamine=10 * kc.units.uM),
                    kc.Step(0.05)])


@pytest.fixture(scope="module")
def solved():
    return kc.solve(SCHEME, PROT, dt=1e-3, initial="R")


@pytest.fixture(scope="module", params=["counts", "summary"])
def simulated(request):
    return kc.simulate(SCHEME, PROT, 1e-3, n_channels=40, n_trials=4, rng=3, initial="R",
                       record=request.param)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _stack_top(ax) -> np.ndarray:
    """Upper edge of the last band of a stackplot (the total occupancy)."""
    v = ax.collections[-1].get_paths()[0].vertices   # start, lower edge, upper edge reversed
    n = (len(v) - 3) // 2
    return v[n + 2:2 * n + 2, 1]


def test_occupancy_and_traces_of_a_solve_result(solved, tmp_path):
    ds = solved.to_xarray()
    fig = plot.occupancy(ds, path=tmp_path / "occ.png")
    ax = fig.axes[0]
    assert "master equation" in ax.get_title()
    assert (tmp_path / "occ.png").stat().st_size > 5000
    top = _stack_top(ax)
    assert top.size == ds.sizes["time"]
    np.testing.assert_allclose(top, 1.0, atol=1e-9)           # occupancies sum to 1
    fig = plot.current_traces(ds, path=tmp_path / "cur.png")
    ax = fig.axes[0]
    assert "pA" in ax.get_ylabel() and ax.get_xlabel() == "time (s)"
    (line,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("master equation")]
    np.testing.assert_allclose(line.get_ydata(), ds["current"].values * 1e12)
    # the Result itself is accepted (its to_xarray())
    fig = plot.occupancy(solved)
    assert "master equation" in fig.axes[0].get_title()
    # the blocked states are pooled into one band
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert sum(lab.startswith("blocked") for lab in labels) >= 1


def test_occupancy_and_traces_of_a_simulation(simulated):
    ds = simulated.to_xarray()
    fig = plot.occupancy(ds)
    ax = fig.axes[0]
    assert "Monte Carlo" in ax.get_title()
    np.testing.assert_allclose(_stack_top(ax), 1.0, atol=1e-9)
    fig = plot.current_traces(ds, max_trials=2)
    ax = fig.axes[0]
    assert "current of 40 channels (pA)" == ax.get_ylabel()
    mean = [ln for ln in ax.get_lines() if ln.get_label().startswith("Monte Carlo mean")]
    cur = ds["current"].values
    want = cur.mean(axis=0) if cur.ndim == 2 else cur
    np.testing.assert_allclose(mean[0].get_ydata(), want * 1e12)
    trials = [ln for ln in ax.get_lines() if ln.get_color() == "#8aa9cf"]
    assert len(trials) == (2 if cur.ndim == 2 else 0)


def test_single_run_refusals(solved):
    ds = solved.to_xarray()
    with pytest.raises(ValueError, match=r"source='mc'.*master equation"):
        plot.occupancy(ds, source="mc")
    with pytest.raises(ValueError, match=r"point: a single run"):
        plot.current_traces(ds, point={"ketamine": 0})
    for fn, alt in ((plot.dose_response, "ic50"), (plot.trapping, "trapping"),
                    (plot.use_dependence, "use_dependence")):
        with pytest.raises(TypeError, match=rf"current_traces.*experiments\.{alt}\(\.\.\.\)\.plot"):
            fn(ds)


def test_unknown_inputs_raise_typeerror():
    import xarray as xr
    with pytest.raises(TypeError, match="ds must be an xarray.Dataset.*got dict"):
        plot.occupancy({"occupancy": 1})
    with pytest.raises(TypeError, match=r"variables \['a'\]"):
        plot.current_traces(xr.Dataset({"a": ("x", [1.0, 2.0])}))
    with pytest.raises(TypeError, match="tree must be a study result"):
        plot.study_figures(xr.Dataset(), "unused")


def test_messages_print_plain_numbers(solved):
    with pytest.raises(TypeError, match="figsize") as e:
        plot.current_traces(solved, figsize=(np.float64(8.0),))
    assert "np.float64" not in str(e.value) and "(8.0,)" in str(e.value)
    with pytest.raises(TypeError, match="t_range") as e:
        plot.current_traces(solved, t_range=np.array([0.0, 0.01, 0.02]))
    assert "array(" not in str(e.value)


STUDY = textwrap.dedent("""
    name = "review"
    model = "erreger2005_2a"
    blockers = ["ketamine"]
    n_channels = 10
    n_trials = 2
    dt = "20 ms"
    rng = 5

    [parameters]
    ketamine = "1 uM"

    [protocols.plain]
    initial = "R"
    sweep = { ketamine = ["1 uM", "3 uM"] }

    [[protocols.plain.segments]]
    duration = "0.1 s"
    glutamate = "1 mM"
    ketamine = "$ketamine"
""")


@pytest.fixture(scope="module")
def plain():
    return kc.run_study(kc.Study.from_toml(STUDY), progress=False, workers=1)["plain"].to_dataset()


def test_study_dataset_without_the_analysis(plain):
    with pytest.raises(ValueError, match="analysis 'dose_response'"):
        plot.dose_response(plain)
    with pytest.raises(ValueError, match="analysis 'use_dependence'"):
        plot.use_dependence(plain)
    fig = plot.trapping(plain)                     # a time course without analysis still draws
    assert len(fig.axes) == 3
    # ... under its own title: only a trapping analysis is a "trapping block" (user audit)
    assert fig._suptitle.get_text().startswith("Time course: ")


def test_study_point_is_checked(plain):
    fig = plot.current_traces(plain, point={"ketamine": 1})
    assert "3 µM" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match=r"point: 'V' is not a sweep dimension"):
        plot.occupancy(plain, point={"V": 0})
    with pytest.raises(ValueError, match=r"point\['ketamine'\] must be an integer index in \[0, 2\)"):
        plot.current_traces(plain, point={"ketamine": 5})
    with pytest.raises(TypeError, match="point must be a dict"):
        plot.current_traces(plain, point=[1])
    for wrong in (True, None, [1]):  # neither an index nor a value: TypeError, as the rest of the API
        with pytest.raises(TypeError, match=r"point\['ketamine'\] must be an integer index"):
            plot.current_traces(plain, point={"ketamine": wrong})
    # a coordinate value (user audit: the README selects by value): SI float or quantity string
    ref = fig.axes[0].get_title()
    for by_value in (3e-6, 3e-6 * (1 + 1e-12), "3 uM", "3e-6", np.float64(3e-6), np.float32(3e-6), -1):
        f2 = plot.current_traces(plain, point={"ketamine": by_value})
        assert f2.axes[0].get_title() == ref, by_value
    for wrong in (1.0, "1", "3 mM", 3.1e-6, 3e-6 * (1 + 3e-6), "3 uM + "):
        with pytest.raises(ValueError, match=r"point\['ketamine'\]"):
            plot.current_traces(plain, point={"ketamine": wrong})
    with pytest.raises(ValueError, match=r"= 1.0 is not one of its values \[1e-06, 3e-06\]"):
        plot.current_traces(plain, point={"ketamine": 1.0})


def test_study_point_by_model_name():
    """On a model sweep axis a point may name the model (the coordinate value)."""
    st = kc.Study(model="destexhe1994", blockers=["ketamine"],
                  protocol=[{"duration": "20 ms", "V": "-70 mV", "glutamate": "1 mM", "ketamine": "1 uM"}],
                  sweep={"model": ["destexhe1994", "destexhe1994_sf"]}, n_trials=1, n_channels=5,
                  rng=1, dt="1 ms")
    ds = kc.run_study(st, progress=False, workers=1)["main"].to_dataset()
    by_name = plot.occupancy(ds, point={"model": "destexhe1994_sf"})
    by_index = plot.occupancy(ds, point={"model": 1})
    assert by_name.axes[0].get_title() == by_index.axes[0].get_title()
    assert by_name.axes[0].get_title() != plot.occupancy(ds, point={"model": 0}).axes[0].get_title()
    with pytest.raises(ValueError, match=r"point\['model'\] = 'erreger2005_2a' is not one of its values"):
        plot.occupancy(ds, point={"model": "erreger2005_2a"})
    plt.close("all")


def test_analysis_plots_take_axes_first_like_the_experiment_results():
    """helper-101's audit: experiment results plot(ax) but analysis results were
    plot(theory=None, *, ax=None), so fit.plot(ax) raised "mixture must be ... got Axes"."""
    from ketacore import analysis as ka
    x = np.random.default_rng(0).exponential(1e-3, 2000)
    fit = ka.fit_mixture(x, 1)
    h = ka.log_histogram(x)
    for obj in (fit, h):
        fig, ax = plt.subplots()
        assert obj.plot(ax) is ax and ax.has_data()
        plt.close(fig)
    g = kc.models.get("ch82")
    log = kc.simulate_events(g, kc.Protocol([kc.Step(5.0, agonist=1e-6)]), n_trials=2, rng=1,
                             initial="equilibrium")
    b = ka.Record.from_events(log, {"R": 0, "AR": 0, "A2R": 0, "AR*": 1, "A2R*": 1}).bursts(2e-3)
    fig, axes = plt.subplots(1, 2)
    out = b.plot(axes)
    assert out[0] is axes[0] and axes[1].has_data()
    plt.close(fig)
    # the theory argument still works positionally
    fig, ax = plt.subplots()
    assert fit.plot(kc.theory.dwell_times(g, "open", agonist=1e-6), ax=ax) is ax
    plt.close(fig)
