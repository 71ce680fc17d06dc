"""Figures: every plot function produces a non-empty PNG of the expected pixel size, for
datasets from a small study (trapping, use dependence, dose-response, plain protocol)."""
import textwrap

import numpy as np
import pytest

import ketacore as kc

pytest.importorskip("xarray")
mpl = pytest.importorskip("matplotlib")
from ketacore import plot  # noqa: E402
from _study_fixtures import trapping_toml  # noqa: E402

STUDY = textwrap.dedent("""
    name = "figs"
    model = "erreger2005_2a"
    blockers = ["ketamine"]
    n_channels = 30
    n_trials = 3
    dt = "20 ms"
    rng = 5

    [parameters]
    ketamine = "10 uM"

    [protocols.trap]
    initial = "R"
    analysis = { kind = "trapping", window = "0.2 s", early = "0.1 s" }
    sweep = { ketamine = ["1 uM", "10 uM"] }

""") + trapping_toml("protocols.trap", block="1 s", wash="1 s", ketamine="$ketamine") + textwrap.dedent("""

    [protocols.ud]
    initial = "R"
    dt = "2 ms"
    analysis = { kind = "use_dependence" }
    parameters = { frequency = "5 Hz" }
    sweep = { frequency = ["5 Hz", "20 Hz"] }

    [[protocols.ud.segments]]
    train = { n_pulses = "round(0.5 s * $frequency)", frequency = "$frequency", width = "2 ms", during = { glutamate = "1 mM" }, between = { ketamine = "$ketamine" } }

    [protocols.dr]
    analysis = "dose_response"
    sweep = { ketamine = ["0.3 uM", "1 uM", "3 uM"] }

    [[protocols.dr.segments]]
    duration = "0.2 s"
    glutamate = "1 mM"
    ketamine = "$ketamine"

    [protocols.plain]
    initial = "R"

    [[protocols.plain.segments]]
    duration = "0.3 s"
    glutamate = "1 mM"
""")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    out = tmp_path_factory.mktemp("figs") / "run"
    return kc.run_study(kc.Study.from_toml(STUDY), output=out, progress=False, figures=True), out


def png_size(path):
    import struct
    with open(path, "rb") as fh:
        head = fh.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_study_figures_written(tree):
    _, out = tree
    for name in ("trap.png", "trap_occupancy.png", "ud.png", "ud_traces.png", "dr.png",
                 "plain_traces.png", "plain_occupancy.png"):
        p = out / name
        assert p.stat().st_size > 10_000, name
        w, h = png_size(p)
        assert 500 <= w <= 1400 and 350 <= h <= 1100, (name, w, h)


@pytest.mark.parametrize("fn, part, size", [
    (plot.current_traces, "plain", plot.FIGSIZE),
    (plot.occupancy, "trap", plot.FIGSIZE),
    (plot.dose_response, "dr", (6.5, 4.5)),
    (plot.use_dependence, "ud", (10.0, 4.2)),
    (plot.trapping, "trap", (8.5, 2.3 * 3 + 0.6)),
])
def test_each_figure_pixel_size(tree, tmp_path, fn, part, size):
    t, _ = tree
    p = tmp_path / f"{part}.png"
    fig = fn(t[part].to_dataset(), path=p, dpi=100)
    import matplotlib.pyplot as plt
    axes = fig.get_axes()
    plt.close(fig)
    assert png_size(p) == (round(size[0] * 100), round(size[1] * 100))
    assert p.stat().st_size > 10_000
    for ax in axes:                     # every data axis says what it shows, with units
        if ax.get_ylabel():
            assert ax.get_xlabel() or fn is plot.trapping
    xl = [ax.get_xlabel() for ax in axes if ax.get_xlabel()]
    assert any("(" in x for x in xl)    # units in parentheses
    if fn is plot.trapping:             # a trapping analysis keeps its title
        assert fig._suptitle.get_text().startswith("Trapping block: ")


def test_plot_accepts_datatree_node(tree, tmp_path):
    t, _ = tree
    fig = plot.current_traces(t["trap"], point={"ketamine": 1}, path=tmp_path / "x.png")
    assert "µM" in fig.axes[0].get_title()
    assert "pA" in fig.axes[0].get_ylabel()


VDOSE = textwrap.dedent("""
    name = "vdose"
    model = "erreger2005_2a"
    blockers = ["ketamine"]
    n_channels = 30
    n_trials = 3
    dt = "20 ms"
    rng = 6

    [parameters]
    ketamine = "1 uM"
    V = "-70 mV"

    [protocols.dr]
    analysis = "dose_response"
    sweep = { V = ["-70 mV", "-30 mV"], ketamine = ["0.3 uM", "1 uM", "3 uM"] }

    [[protocols.dr.segments]]
    duration = "0.2 s"
    V = "$V"
    glutamate = "1 mM"
    ketamine = "$ketamine"
""")


@pytest.mark.filterwarnings("ignore:.*Hill fit's IC50 is an extrapolation:RuntimeWarning")  # (small sweeps)
def test_dose_response_with_a_second_sweep_axis(tmp_path):
    # a dose-response swept over V too (a Woodhull-style study) used to crash the figure step
    # ('too many values to unpack') after results.nc was written; now one set of curves per
    # voltage, labelled by the parameter name (V), not the dimension name (sweep_V)
    out = tmp_path / "run"
    t = kc.run_study(kc.Study.from_toml(VDOSE), output=out, progress=False, figures=True)
    assert (out / "dr.png").stat().st_size > 10_000
    ds = t["dr"].to_dataset()
    # the Hill fit runs over the blocker axis whatever the order of the sweep axes
    assert ds["ic50_det"].dims == ("sweep_V",) and ds["ic50_det"].attrs["units"] == "M"
    ic = ds["ic50_det"].values
    assert np.all(np.isfinite(ic)) and ic[1] > ic[0]  # ketamine: weaker block at -30 mV
    from ketacore.study import summary_table
    text = summary_table(t)
    assert "Hill fit (master equation) at V -70 mV: IC50 759" in text   # K_B (755 before the
    # balanced closed route and recalibration of the library ketamine)
    assert "Hill fit (master equation) at V -30 mV" in text
    fig = plot.dose_response(ds)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    import matplotlib.pyplot as plt
    plt.close(fig)
    # one legend entry per voltage, with both Hill-fit IC50s (and a key of the four styles)
    for v in ("V -70 mV", "V -30 mV"):
        assert sum(lab.startswith(f"{v}: IC50 ") and "(ME)" in lab and "(MC)" in lab
                   for lab in labels) == 1, labels
    assert not any("sweep_V" in lab for lab in labels)


GLU_DOSE = textwrap.dedent("""
    name = "gdose"
    model = "erreger2005_2a"
    blockers = ["ketamine"]
    n_channels = 10
    n_trials = 2
    dt = "20 ms"
    rng = 6

    [parameters]
    ketamine = "1 uM"
    glutamate = "1 mM"

    [protocols.dr]
    analysis = { kind = "dose_response", concentration = "ketamine" }
    sweep = { glutamate = ["0.1 mM", "1 mM"], ketamine = ["0.3 uM", "1 uM", "3 uM"] }

    [[protocols.dr.segments]]
    duration = "0.2 s"
    glutamate = "$glutamate"
    ketamine = "$ketamine"
""")


@pytest.mark.filterwarnings("ignore:.*Hill fit's IC50 is an extrapolation:RuntimeWarning")  # (small sweeps)
def test_dose_response_plot_uses_the_fitted_axis():
    """Two concentration axes (glutamate x ketamine, fitted over ketamine): the figure plots over
    the axis the study fitted (Dataset attrs dose_axis), not the first axis in M (glutamate)."""
    t = kc.run_study(kc.Study.from_toml(GLU_DOSE), progress=False, workers=1)
    ds = t["dr"].to_dataset()
    assert list(ds["n_samples"].dims) == ["glutamate", "ketamine"] and ds.attrs["dose_axis"] == "ketamine"
    fig = plot.dose_response(ds)
    import matplotlib.pyplot as plt
    ax = fig.axes[0]
    xlab = ax.get_xlabel()
    xs = {tuple(np.round(line.get_xdata(), 6)) for line in ax.lines if len(line.get_xdata()) == 3}
    plt.close(fig)
    assert xlab.startswith("ketamine"), xlab
    assert tuple(np.round(ds["ketamine"].values * 1e6, 6)) in xs, xs
    # a file without the attribute (written before it was recorded): the first axis in M
    del ds.attrs["dose_axis"]
    fig = plot.dose_response(ds)
    assert fig.axes[0].get_xlabel().startswith("glutamate")
    plt.close(fig)


def test_trapping_panel_says_which_trapped_fraction_it_shows(tree):
    """helper-98's audit: the CLI table's 'trapped' (current windows) and the figure's
    'trapped 84% (ME 86%)' (blocked occupancy) read as two values of one quantity; the panel
    now names its definition, as the table's 'trapped_occupancy' column does."""
    import matplotlib.pyplot as plt
    t, _ = tree
    fig = plot.trapping(t["trap"])
    texts = [x.get_text() for ax in fig.axes for x in ax.texts]
    plt.close(fig)
    assert sum("trapped (occupancy) " in x for x in texts) == 2, texts
    assert not any("trapped " in x and "trapped (occupancy)" not in x for x in texts), texts
