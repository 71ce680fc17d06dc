"""Input validation of theory, analysis, experiments and plot (fuzzing-audit findings).

Bad input must give a ValueError/TypeError naming the parameter before any heavy work; nothing
may hang, exhaust memory or silently return garbage.  Calls that hung (or ran for minutes) on
the old code run in one subprocess with a timeout.
"""
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ketacore as kc
from ketacore import analysis as ka
from ketacore import experiments as E
from ketacore import theory as th

EM = th.ExponentialMixture


@pytest.fixture(scope="module")
def G():
    return kc.models.get("destexhe1994")


# ============================================================================ hang guards

HANGS = textwrap.dedent("""
    import ketacore as kc
    G = kc.models.get("destexhe1994")
    calls = {
        # bisection bound doubled forever (negative time constant)
        "sample": lambda: kc.theory.ExponentialMixture([1.0, -1.0], [-0.5, 1.5]).sample(1, rng=1),
        # 1.5e9 pulses: hung building the protocol
        "duration": lambda: kc.experiments.use_dependence(G, "ketamine", 1e-5, duration=1e7),
        "washout": lambda: kc.experiments.use_dependence(G, "ketamine", 1e-5, washout=1e8),
        "n_pulses": lambda: kc.experiments.use_dependence(G, "ketamine", 1e-5, [1.0, 10.0],
                                                          duration=None, n_pulses=10**9),
        # one BFGS fit per starting point
        "n_starts": lambda: kc.analysis.fit_mixture([1.0, 2.0, 3.0], n_starts=10**12),
    }
    for name, call in calls.items():
        try:
            call()
            print(name, "returned")
        except Exception as exc:
            print(name, type(exc).__name__, str(exc).replace("\\n", " "))
""")


def test_hang_prone_calls_are_refused_quickly():
    out = subprocess.run([sys.executable, "-c", HANGS], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.strip().splitlines())
    assert lines["sample"].startswith("ValueError") and "taus" in lines["sample"]
    for name in ("duration", "washout", "n_pulses"):
        assert lines[name].startswith("ValueError") and "pulses" in lines[name], lines[name]
        assert name in lines[name]  # the message quotes the parameter that made it large
    assert lines["n_starts"].startswith("ValueError") and "n_starts" in lines["n_starts"]


# ============================================================================ theory


@pytest.mark.parametrize("taus, areas, match", [
    ([-1.0], [1.0], "taus"),
    ([0.0], [1.0], "taus"),
    ([math.nan], [1.0], "taus"),
    ([math.inf], [1.0], "taus"),
    ([1.0, -1.0], [-0.5, 1.5], "taus"),
    ([1.0], [math.nan], "areas"),
])
def test_mixture_needs_finite_positive_time_constants(taus, areas, match):
    with pytest.raises(ValueError, match=match):
        EM(taus, areas)


def test_mixture_rejects_non_numeric():
    with pytest.raises(TypeError, match="taus"):
        EM(["a"], [1.0])
    with pytest.raises(TypeError, match="areas"):
        EM([1.0], [None])


@pytest.mark.parametrize("n", ["5", 2.7, True])
def test_sample_n_is_an_integer(n):
    with pytest.raises(TypeError, match="n must"):
        EM([1.0], [1.0]).sample(n, rng=1)


def test_sample_needs_a_distribution(G):
    with pytest.raises(ValueError, match="sum to 2"):
        EM([1.0], [2.0]).sample(3, rng=1)           # total probability 2
    with pytest.raises(ValueError, match="negative pdf"):
        EM([1.0, 2.0], [2.0, -1.0]).sample(3, rng=1)  # slowest area negative
    with pytest.raises(ValueError, match="negative pdf"):
        EM([1.0, 3.0], [1.5, -0.5]).sample(3, rng=1)
    # negative areas that keep the pdf >= 0 (a rising phase) still sample (exact rejection)
    lat = th.first_latency(G, glutamate=1e-3)
    assert np.any(lat.areas < 0)
    x = lat.sample(2000, rng=3)
    assert np.all(np.isfinite(x)) and np.all(x > 0)
    assert abs(x.mean() - lat.mean) < 5 * lat.sd / math.sqrt(x.size)
    ok = EM([1.0, 2.0], [-0.1, 0.5])               # pdf = -0.1 e^-t + 0.25 e^-t/2 > 0
    assert np.isinf(ok.sample(4000, rng=2)).mean() == pytest.approx(0.6, abs=0.03)
    assert EM([1.0], [1.0]).sample(0).shape == (0,)


def test_mixture_with_total_zero_has_nan_moments(G):
    m = EM([1.0], [0.0])
    assert math.isnan(m.mean) and math.isnan(m.second_moment) and math.isnan(m.sd)
    # no agonist: the channel never opens from C0
    lat = th.first_latency(G, initial="C0")
    assert lat.total == 0.0
    assert math.isnan(lat.mean) and math.isnan(lat.sd)
    assert np.all(lat.cdf([0.0, 1.0, np.inf]) == 0.0)
    assert np.all(np.isinf(lat.sample(5, rng=1)))


def test_mixture_functions_of_t_reject_nan_and_handle_inf():
    m = EM([1.0, 2.0], [0.5, 0.5])
    for f in (m.pdf, m.cdf, m.survival):
        with pytest.raises(ValueError, match="NaN"):
            f([0.5, math.nan])
        with pytest.raises(TypeError, match="t must"):
            f("x")
    assert m.cdf(np.inf) == 1.0 and m.pdf(np.inf) == 0.0


def test_relaxation_occupancy_needs_time_after_the_step(G):
    rel = th.relaxation(G, glutamate=1e-3)
    with pytest.raises(ValueError, match="t must be >= 0"):
        rel.occupancy(-1.0)
    with pytest.raises(ValueError, match="NaN"):
        rel.open_probability(math.nan)
    np.testing.assert_allclose(rel.occupancy(np.inf), rel.equilibrium, rtol=0, atol=0)


@pytest.mark.parametrize("rtol, exc", [(-1.0, ValueError), (math.nan, ValueError),
                                       (math.inf, ValueError), ("1e-8", TypeError)])
def test_is_reversible_rtol(G, rtol, exc):
    with pytest.raises(exc, match="rtol"):
        th.is_reversible(G, rtol=rtol, glutamate=1e-3)


def test_state_specs_name_the_parameter(G):
    with pytest.raises(TypeError, match="states must be a state name"):
        th.dwell_times(G, 2.5, glutamate=1e-3)
    with pytest.raises(TypeError, match="within must be"):
        th.bursts(G, None, glutamate=1e-3)
    Q = np.array([[-1.0, 1.0], [1.0, -1.0]])
    with pytest.raises(TypeError, match="open must be a state name"):
        th.dwell_times(Q, open=1.5)
    with pytest.raises(TypeError, match="target must be"):
        th.first_latency(G, None, glutamate=1e-3)
    with pytest.raises(TypeError, match="initial"):
        th.relaxation(Q, initial=["a", "b"], open=[1])


def test_concentration_response_checks_concentrations_first(G):
    with pytest.raises(TypeError, match="concentrations"):
        th.concentration_response(G, "glutamate", ["a", "b"])
    with pytest.raises(ValueError, match="concentrations"):   # was silently capped at 10 M
        th.concentration_response(G, "glutamate", [1e-6, 100.0])
    with pytest.raises(ValueError, match="concentrations"):
        th.concentration_response(G, "glutamate", [math.nan])


# ============================================================================ analysis

DUR = np.random.default_rng(1).exponential(1e-3, 500)


@pytest.mark.parametrize("bpd", [1e12, 1e8])
def test_log_histogram_bin_count_is_bounded(bpd):
    # 0.04 decades: 4e6 bins were allocated silently at 1e8, a MemoryError at 1e12
    with pytest.raises(ValueError, match="bins_per_decade.*bins"):
        ka.log_histogram([1e-3, 1.1e-3], bins_per_decade=bpd)


def test_log_histogram_edges_stay_finite():
    with pytest.raises(ValueError, match="bins_per_decade"):
        ka.log_histogram(DUR, bins_per_decade=1e-300)   # edges were [0.001, inf]
    with pytest.raises(ValueError, match="t_min"):
        ka.log_histogram(DUR, t_min=5e-324)             # OverflowError before
    with pytest.raises(ValueError, match="t_min"):
        ka.log_histogram([5e-324, 1e308])
    h = ka.log_histogram([1e-300, 1e308])               # 608 decades, finite edges
    assert np.all(np.isfinite(h.edges)) and h.counts.sum() == 2


def test_log_histogram_counts_the_largest_duration():
    h = ka.log_histogram([1.0, 10.0], bins_per_decade=10)  # 10.0 is the top edge
    assert h.counts.sum() == 2
    assert ka.log_histogram([1.0, 10.0], bins_per_decade=10, t_max=10.0).counts.sum() == 1


def test_log_histogram_curve_points():
    h = ka.log_histogram(DUR)
    with pytest.raises(ValueError, match="points"):
        h.curve(EM([1e-3], [1.0]), points=10**12)
    with pytest.raises(TypeError, match="points"):
        h.curve(EM([1e-3], [1.0]), points=2.5)


def test_record_class_indices_are_bounded():
    with pytest.raises(ValueError, match="classes"):
        ka.Record.from_states([0.0, 1.0], [0, 1], 2.0, classes=[0, 10**12])


def test_record_from_events_class_indices_are_bounded(G):
    log = kc.simulate_events(G, kc.Step(0.01, V=-0.07, glutamate=1e-3), 1, rng=1)
    classes = {s: 0 for s in G.states}
    classes["O"] = 10**12
    with pytest.raises(ValueError, match="classes"):
        ka.Record.from_events(log, classes)


@pytest.mark.parametrize("t_res", [math.nan, -5.0, math.inf])
def test_record_t_res(t_res):
    with pytest.raises(ValueError, match="t_res"):
        ka.Record([0.0], [1.0], [0], [0, 1], [0.0, 1.0], t_res=t_res)


def test_record_class_names():
    with pytest.raises(ValueError, match="class_names"):
        ka.Record([0.0], [1.0], [0], [0, 1], [0.0, 1.0], class_names=["a"])
    with pytest.raises(ValueError, match="class_names"):
        ka.Record.from_states([0.0, 1.0], [0, 1], 2.0, classes=[0, 1],
                              class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="class_names"):
        ka.Record([0.0], [1.0], [0], [0, 1], [0.0, 1.0], class_names=["a", "a"])
    with pytest.raises(TypeError, match="class_names"):
        ka.Record([0.0], [1.0], [0], [0, 1], [0.0, 1.0], class_names="ab")
    rec = ka.Record.from_states([0.0, 1.0], [0, 1], 2.0, classes=[0, 1],
                                class_names=["closed", "main"])
    assert rec.class_names == ("closed", "main")


def test_noise_analysis_needs_fluctuations():
    with pytest.raises(ValueError, match="variance"):
        ka.noise_analysis(np.ones((5, 10)))          # gave N = inf
    # every sample has the same mean and variance: the parabola is not determined
    vals = np.array([0.0, 1.0, 3.0, 4.0, 7.0])
    data = np.stack([np.roll(vals, k) for k in range(10)], axis=1)
    with pytest.raises(ValueError, match="mean current"):
        ka.noise_analysis(data)
    with pytest.raises(TypeError, match="window"):
        ka.noise_analysis(np.random.default_rng(0).normal(size=(5, 10)), window=5)


def test_misclassification_fractions_are_probabilities():
    with pytest.raises(ValueError, match="taus"):       # gave p_fast > 1
        ka.misclassification(EM([-1e-3, 1e-1], [0.5, 0.5]), 1e-2)
    with pytest.raises(ValueError, match="fast components"):   # gave p_fast = nan
        ka.misclassification(EM([1e-3, 1e-1], [0.0, 1.0]), 1e-2)
    m = ka.misclassification(EM([1e-3, 1e-1], [0.5, 0.5]), 1e-2)
    assert 0 <= m.p_fast <= 1 and 0 <= m.p_slow <= 1


# ============================================================================ experiments


def test_hill_parameters():
    for args, exc, match in [((1e-6, 0.0, 1.0), ValueError, "ic50"),    # returned 0
                             ((1e-6, 1e-6, math.nan), ValueError, "n_h"),  # returned 0.5
                             ((1e-6, 1e-6, 0.0), ValueError, "n_h"),
                             ((-1e-6, 1e-6, 0.5), ValueError, "c must"),   # returned NaN
                             (([1e-6, math.nan], 1e-6, 0.5), ValueError, "c must"),
                             ((["a"], 1e-6, 0.5), TypeError, "c must")]:
        with pytest.raises(exc, match=match):
            E.hill(*args)
    np.testing.assert_allclose(E.hill([0.0, 1e-6, np.inf], 1e-6, 1.0), [1.0, 0.5, 0.0])


def test_ic50_peak_with_no_response(G):
    with pytest.raises(ValueError, match="duration"):   # ZeroDivisionError before
        E.ic50(G, "ketamine", kind="peak", duration=1e-300)


def test_non_numeric_arrays_name_the_parameter(G):
    with pytest.raises(TypeError, match="concentrations"):
        E.ic50(G, "ketamine", ["a", "b", "c"])
    with pytest.raises(TypeError, match="voltages"):
        E.woodhull(G, "ketamine", ["a", "b"])
    with pytest.raises(TypeError, match="frequencies"):
        E.use_dependence(G, "ketamine", 1e-5, ["a"])


def test_stochastic_output_size_is_checked_first(G):
    with pytest.raises(ValueError, match="n_trials"):
        E.ic50(G, "ketamine", method="stochastic", n_trials=10**10)
    with pytest.raises(ValueError, match="n_samples"):
        E.block_kinetics(G, "ketamine", 1e-5, n_samples=10**9)
    with pytest.raises(ValueError, match="n_samples"):
        E.use_dependence(G, "ketamine", 1e-5, n_samples=10**9)


def test_trapping_phase_lengths(G):
    with pytest.raises(ValueError, match="t_block"):    # NaN trapped fraction before
        E.trapping(G, "ketamine", t_block=1e-300)
    with pytest.raises(ValueError, match="t_recovery|samples"):   # ZeroDivisionError before
        E.trapping(G, "ketamine", t_block=1e300)
    with pytest.raises(ValueError, match="samples"):
        E.trapping(G, "ketamine", t_block=1e300, t_recovery=120.0)
    with pytest.raises(ValueError, match="samples"):
        E.trapping(G, "ketamine", t_block=1e-9, dt=1e-9)


def test_trapping_without_block(G):
    with pytest.raises(ValueError, match="no block"):
        E.trapping(G, "ketamine", 1e-30)


def test_block_kinetics_phase_lengths(G):
    with pytest.raises(ValueError, match="t_on.*grid step"):     # tau_on 1e297 before
        E.block_kinetics(G, "ketamine", 1e-5, t_on=1e300)
    with pytest.raises(ValueError, match="t_off.*grid step"):
        E.block_kinetics(G, "ketamine", 1e-5, t_off=1e300)
    with pytest.raises(ValueError, match="t_on"):                # "dt must be > 0" before
        E.block_kinetics(G, "ketamine", 1e-5, t_on=5e-324)
    with pytest.raises(TypeError, match="n_exponentials"):
        E.block_kinetics(G, "ketamine", 1e-5, n_exponentials=1.0)
    with pytest.raises(ValueError, match="n_exponentials"):
        E.block_kinetics(G, "ketamine", 1e-5, n_exponentials=3)


# ============================================================================ plot


def test_plot_dpi_and_image_size(tmp_path):
    pytest.importorskip("matplotlib")
    from ketacore import plot
    p = tmp_path / "x.png"
    # checked before the dataset is touched (std::bad_alloc at dpi=5000 before)
    for fn in (plot.current_traces, plot.occupancy, plot.dose_response, plot.trapping,
               plot.use_dependence):
        with pytest.raises(ValueError, match="dpi"):
            fn(None, path=p, dpi=5000)
        with pytest.raises(ValueError, match="dpi"):
            fn(None, path=p, dpi=-1)
    with pytest.raises(ValueError, match="pixel"):
        plot.current_traces(None, path=p, figsize=(200.0, 100.0), dpi=100)
    with pytest.raises(TypeError, match="figsize"):
        plot.current_traces(None, path=p, figsize=8.0)
    with pytest.raises(ValueError, match="dpi"):
        plot.study_figures(None, tmp_path, dpi=5000)
    assert not p.exists()


class _Node:
    def __init__(self, attrs):
        self._attrs = attrs

    def to_dataset(self):
        import types
        return types.SimpleNamespace(attrs=self._attrs)


class _Tree:
    def __init__(self):
        self.children = {"plain": _Node({})}


def test_study_figures_which(monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from ketacore import plot
    drawn = []

    def fake(kind):
        def fn(ds, *a, path=None, dpi=None, **kw):
            drawn.append(kind)
            return plt.figure()
        return fn
    monkeypatch.setattr(plot, "current_traces", fake("traces"))
    monkeypatch.setattr(plot, "occupancy", fake("occupancy"))
    out = plot.study_figures(_Tree(), tmp_path, which="traces")   # wrote nothing before
    assert drawn == ["traces"] and [p.name for p in out] == ["plain_traces.png"]
    with pytest.raises(ValueError, match="unknown figure"):
        plot.study_figures(_Tree(), tmp_path, which="trace")
    with pytest.raises(ValueError, match="unknown figure"):
        plot.study_figures(_Tree(), tmp_path, which=["traces", "nope"])
    with pytest.raises(TypeError, match="which"):
        plot.study_figures(_Tree(), tmp_path, which=5)
