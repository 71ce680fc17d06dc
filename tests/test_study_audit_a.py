"""Audit A of the study layer: drug-free controls, analysis windows, analysis keys, and
analysis checks before the output folder is written."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ketacore.study import Study, StudyError, run_study
from _study_fixtures import trapping_toml

xr = pytest.importorskip("xarray")
pytest.importorskip("netCDF4")

DOSE = textwrap.dedent("""
    name = "dose"
    model = "erreger2005_2a"
    blockers = ["ketamine"]
    n_channels = 5
    n_trials = 1
    dt = "10 ms"
    rng = 3
    keep_trials = 0

    [parameters]
    glutamate = "1 mM"
    ketamine = "1 uM"
    V = "-70 mV"

    [protocols.dr]
    initial = INITIAL
    analysis = { kind = "dose_response", concentration = "ketamine" }

    [protocols.dr.sweep]
    ketamine = ["0.3 uM", "1 uM", "3 uM"]

    [[protocols.dr.segments]]
    label = "steady state"
    duration = "2 s"
    V = "$V"
    glutamate = "$glutamate"
    ketamine = "$ketamine"

    [outputs]
    figures = false
""")


def _dose(initial):
    tree = run_study(Study.from_toml(DOSE.replace("INITIAL", initial)), progress=False, workers=1)
    return tree["dr"].to_dataset()


# ---------------------------------------------------------------- 1. drug-free control
def test_dose_response_control_is_drug_free_with_blocker_in_initial_table():
    ref = _dose('"equilibrium"')
    got = _dose('{ glutamate = "1 mM", V = "$V", ketamine = "$ketamine" }')
    np.testing.assert_allclose(got["response_det"].values, ref["response_det"].values, rtol=1e-9)
    np.testing.assert_allclose(float(got["ic50_det"]), float(ref["ic50_det"]), rtol=1e-9)


def _controls(initial):
    """The drug-free control's mean conductance (the response denominator) at each sweep point."""
    from ketacore import study as S
    s = Study.from_toml(DOSE.replace("INITIAL", initial))
    ctx = S._context(s.to_toml(), ".", "study")
    return np.array([ctx.point("dr", i)[1].ctl for i in range(3)])


def test_dose_response_control_is_drug_free_with_blocked_initial_state():
    # the drug run starts in "O·ket"; its control starts in the unblocked "O"
    np.testing.assert_allclose(_controls('"O·ket"'), _controls('"O"'), rtol=1e-9)
    # (and a conditions table: its blocker ligand is dropped for the control)
    np.testing.assert_allclose(_controls('{ glutamate = "1 mM", ketamine = "$ketamine" }'),
                               _controls('{ glutamate = "1 mM" }'), rtol=1e-9)


# ---------------------------------------------------------------- 2. windows fit their segments
TRAP = textwrap.dedent("""
    name = "trap"
    model = "erreger2005_2a"
    blockers = ["ketamine"]
    n_channels = 5
    n_trials = 1
    dt = "10 ms"
    rng = 3
    keep_trials = 0

    [parameters]
    ketamine = "10 uM"
    t_control = "1 s"

    [protocols.trap]
    initial = "R"
    analysis = ANALYSIS

    [protocols.trap.sweep]
    SWEEP

""") + trapping_toml("protocols.trap", control="$t_control", ketamine="$ketamine") + textwrap.dedent("""

    [outputs]
    figures = false
""")


def _trap(analysis, sweep='ketamine = ["10 uM"]'):
    return TRAP.replace("ANALYSIS", analysis).replace("SWEEP", sweep)


@pytest.mark.parametrize("analysis, key, segment, duration", [
    ('{ kind = "trapping", window = "1.5 s", early = "0.1 s" }', "window", "control", "1 s"),
    ('{ kind = "trapping", window = "0.5 s", early = "1.5 s" }', "early", "control", "1 s"),
    ('{ kind = "trapping", window = "2.5 s", early = "0.1 s" }', "window", "control", "1 s"),
])
def test_trapping_window_longer_than_its_segment_is_refused(analysis, key, segment, duration):
    with pytest.raises(StudyError, match=rf"analysis\.{key}: .*'{segment}'.*lasts {duration}"):
        Study.from_toml(_trap(analysis))


def test_trapping_default_window_longer_than_control_is_refused():
    text = _trap('"trapping"').replace('t_control = "1 s"', 't_control = "0.6 s"')
    with pytest.raises(StudyError, match=r"analysis\.window: the default 1 s does not fit in "
                                         r"segment 'control', which lasts 0.6 s"):
        Study.from_toml(text)


def test_trapping_windows_that_fit_run_and_give_finite_numbers():
    tree = run_study(Study.from_toml(_trap('{ kind = "trapping", window = "1 s", early = "1 s" }')),
                     progress=False, workers=1)
    ds = tree["trap"].to_dataset()
    assert np.all(np.isfinite(ds["block_det"].values))
    assert np.all(np.isfinite(ds["trapped_det"].values))


def test_dose_response_window_longer_than_protocol_is_refused():
    text = DOSE.replace("INITIAL", '"equilibrium"').replace(
        'concentration = "ketamine" }', 'concentration = "ketamine", window = "3 s" }')
    with pytest.raises(StudyError, match=r"analysis\.window: '3 s' does not fit in the protocol "
                                         r"'dr', which lasts 2 s"):
        Study.from_toml(text)


# ---------------------------------------------------------------- 3. unknown analysis keys
@pytest.mark.parametrize("text, key, allowed", [
    (_trap('{ kind = "trapping", windw = "0.2 s" }'), "windw", "['kind', 'window', 'early', 'drug']"),
    (_trap('{ kind = "trapping", concentration = "ketamine" }'), "concentration",
     "['kind', 'window', 'early', 'drug']"),
    (DOSE.replace("INITIAL", '"equilibrium"').replace('concentration = "ketamine" }',
                                                      'concentration = "ketamine", early = "1 s" }'),
     "early", "['kind', 'concentration', 'voltage', 'window', 'drug']"),
], ids=["trapping-windw", "trapping-concentration", "dose_response-early"])
def test_unknown_analysis_keys_are_refused(text, key, allowed):
    with pytest.raises(StudyError, match=rf"analysis\.{key}: unknown key .*allowed: "
                                         + allowed.replace("[", r"\[").replace("]", r"\]")):
        Study.from_toml(text)


USE = textwrap.dedent("""
    name = "use"
    model = "erreger2005_2a"
    blockers = ["ketamine"]
    n_channels = 5
    n_trials = 1
    dt = "1 ms"
    rng = 3
    keep_trials = 0

    [protocols.use]
    initial = "R"
    analysis = ANALYSIS

    [[protocols.use.segments]]
    label = "stim"
    train = { n_pulses = 3, frequency = "5 Hz", width = "1 ms", during = { glutamate = "1 mM" }, between = { ketamine = "1 uM" } }

    [outputs]
    figures = false
""")


def test_unknown_use_dependence_key_is_refused():
    with pytest.raises(StudyError, match=r"analysis\.trian: unknown key for kind = "
                                         r"'use_dependence'; allowed: \['kind', 'train', 'drug'\]"):
        Study.from_toml(USE.replace("ANALYSIS", '{ kind = "use_dependence", trian = "stim" }'))


# ---------------------------------------------------------------- 4. checked before the folder
@pytest.mark.parametrize("text, match", [
    (USE.replace("ANALYSIS", '{ kind = "use_dependence", train = "nope" }'), "labelled 'nope'"),
    (_trap('"trapping"').replace('label = "wash"', 'label = "washout"'), "label = 'wash'"),
], ids=["train-nope", "missing-wash-label"])
def test_analysis_setup_errors_come_before_the_output_folder(tmp_path, text, match):
    spec = tmp_path / "s.toml"
    spec.write_text(text)
    out = tmp_path / "out"
    with pytest.raises(StudyError, match=match):
        run_study(spec, output=out, progress=False, workers=1)
    assert not out.exists()
    # the CLI: the same checks, exit status 2, no folder
    r = subprocess.run([sys.executable, "-m", "ketacore.cli", "run", str(spec), "-o", str(out), "-q"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert match in r.stderr
    assert not out.exists()


def test_sweep_dependent_window_error_comes_before_the_output_folder(tmp_path):
    # the first sweep point fits (checked when the Study is made); the second does not: run_study
    # checks every point before it creates the folder
    text = _trap('{ kind = "trapping", window = "0.5 s", early = "0.1 s" }',
                 sweep='t_control = ["1 s", "0.3 s"]')
    study = Study.from_toml(text)
    out = tmp_path / "out"
    with pytest.raises(StudyError, match=r"analysis\.window: '0.5 s' does not fit in segment "
                                         r"'control', which lasts 0.3 s"):
        run_study(study, output=out, progress=False, workers=1)
    assert not out.exists()


# ---------------------------------------------------------------- (found while running the suite)
def test_cli_failed_scheduler_connect_does_not_leave_dask_pointing_at_it(tmp_path, capsys):
    """A failed ``--scheduler`` connect (in-process CLI) used to leave dask's global scheduler set
    to "dask.distributed" until the half-built Client was garbage-collected: NetCDF writes later in
    the process then tried to reach the unknown address (test_plot errors in a full run)."""
    dask = pytest.importorskip("dask")
    pytest.importorskip("distributed")
    from ketacore.cli import main
    spec = tmp_path / "s.toml"
    spec.write_text(DOSE.replace("INITIAL", '"equilibrium"'))
    before = dask.config.get("scheduler", None)
    rc = main(["run", str(spec), "-o", str(tmp_path / "o"), "-q", "--scheduler", "nope://x"])
    capsys.readouterr()
    assert rc == 2
    assert dask.config.get("scheduler", None) == before


# ---------------------------------------------------------------- helper-103: silent NaNs
def test_an_early_window_of_the_start_sample_alone_is_refused_before_running(tmp_path):
    """early = 5 ms at dt = 10 ms holds only the sample at recovery's start (the end of the
    wash: no current), so `trapped` was NaN with no word.  Refused before any output."""
    with pytest.raises(StudyError, match=r"analysis\.early: window \[0, 0\.005\] s holds only "
                                         r"the sample at the segment's start.*at least 2 dt = 0\.02 s"):
        run_study(Study.from_toml(_trap('{ kind = "trapping", window = "1 s", early = "5 ms" }')),
                  output=tmp_path / "o", progress=False, workers=1)
    assert not (tmp_path / "o" / "results.nc").exists()
    tree = run_study(Study.from_toml(_trap('{ kind = "trapping", window = "1 s", early = "20 ms" }')),
                     progress=False, workers=1)
    assert np.all(np.isfinite(tree["trap"].to_dataset()["trapped_det"].values))


def test_a_dose_response_without_control_current_warns():
    """glutamate = 0: the drug-free control carries no current, response and IC50 are NaN --
    the experiments API raises; a study (whose sweep may hold such points) now warns."""
    text = DOSE.replace("INITIAL", '"equilibrium"').replace('glutamate = "1 mM"', 'glutamate = "0 mM"')
    with pytest.warns(RuntimeWarning, match=r"drug-free control carries no current.*NaN there"):
        tree = run_study(Study.from_toml(text), progress=False, workers=1)
    assert np.all(np.isnan(tree["dr"].to_dataset()["response_det"].values))
