"""`ketacore run`: the embedded default study (reduced with --quick), study files, resume,
refusal of a different study in the output folder, keyed errors; the other subcommands."""
import subprocess
import sys
import textwrap

import pytest

import ketacore as kc

pytest.importorskip("xarray")
pytest.importorskip("matplotlib")


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ketacore.cli", *args], capture_output=True,
                          text=True, timeout=600, cwd=cwd)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "quick"
    r = cli("run", "--quick", "-o", str(out), "--workers", "2")
    return r, out


def test_run_quick_default(quick_run):
    r, out = quick_run
    assert r.returncode == 0, r.stderr
    assert "ketamine_quick" in r.stdout
    for word in ("[trapping]", "[use_dependence]", "[dose_response]", "block ME", "block MC",
                 "trapped", "Hill fit", "results.nc", "trapping.png"):
        assert word in r.stdout, word
    # the trapped column's definition (window means, not the peak of experiments.trapping)
    flat = " ".join(r.stdout.split())
    assert "trapped: (1 - I_rec/I_ctl)/block, I_rec and I_ctl = mean currents over the first 100 ms" \
        in flat
    assert "kc.experiments.trapping(...).trapped_current" in flat
    for name in ("results.nc", "study.toml", "trapping.png", "use_dependence.png", "dose_response.png",
                 "trapping_occupancy.png", "use_dependence_traces.png"):
        assert (out / name).stat().st_size > 0, name
    st = kc.Study.from_toml(out / "study.toml")
    assert st.n_trials == 4 and st.model == "erreger2005_2a" and st.blockers == ["ketamine"]


def test_run_quick_shows_progress(quick_run):
    """The progress bar (tqdm, an optional dependency: the run is silent without it)."""
    pytest.importorskip("tqdm")
    r, _ = quick_run
    assert r.returncode == 0, r.stderr
    assert "trial" in r.stderr          # tqdm progress with ETA on stderr


def test_rerun_same_folder_resumes(quick_run):
    r0, out = quick_run
    before = (out / "results.nc").read_bytes()
    r = cli("run", "--quick", "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr
    assert "trial/s" not in r.stderr, r.stderr   # quiet: no progress bar
    assert (out / "results.nc").read_bytes() == before, "resumed run changed the results bytes"


def test_different_study_refused(quick_run, tmp_path):
    _, out = quick_run
    spec = tmp_path / "other.toml"
    st = kc.Study.from_toml(out / "study.toml").replace(n_channels=99)
    st.to_toml(spec)
    before = sorted(p.name for p in out.rglob("*"))
    r = cli("run", str(spec), "-o", str(out), "-q")
    assert r.returncode == 3
    assert "nothing was overwritten" in r.stderr and "n_channels" in r.stderr
    assert sorted(p.name for p in out.rglob("*")) == before


def test_study_file_with_workers(tmp_path):
    spec = tmp_path / "study.toml"
    spec.write_text(textwrap.dedent("""
        name = "tiny"
        model = "erreger2005_2a"
        blockers = ["ketamine"]
        n_channels = 20
        n_trials = 4
        dt = "5 ms"
        rng = 1

        [protocol]
        initial = "R"

        [[protocol.segments]]
        duration = "0.2 s"
        glutamate = "1 mM"
        ketamine = "$ketamine"

        [parameters]
        ketamine = "1 uM"

        [sweep]
        ketamine = ["1 uM", "3 uM"]

        [outputs]
        figures = ["traces"]
    """))
    r = cli("run", str(spec), "-o", str(tmp_path / "o"), "--workers", "2", "-q")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o" / "main_traces.png").stat().st_size > 0
    assert not (tmp_path / "o" / "main_occupancy.png").exists()


def test_study_file_error_names_key(tmp_path):
    spec = tmp_path / "study.toml"
    spec.write_text('model = "erreger2005_2a"\n[protocol]\n[[protocol.segments]]\nduration = "1 s"\n'
                    '[parameters]\nketamine = "1 uM"\n[sweep]\nketamine = ["1 uM", "2 parsecs"]\n')
    r = cli("run", str(spec), "-o", str(tmp_path / "o"))
    assert r.returncode == 2
    assert "study.toml: [sweep].ketamine[1]: unknown unit 'parsecs'" in r.stderr
    assert not (tmp_path / "o").exists()
    r = cli("run", str(tmp_path / "missing.toml"))
    assert r.returncode == 2 and "missing.toml" in r.stderr


def test_other_subcommands():
    assert cli("--version").stdout.strip() == f"ketacore {kc.__version__}"
    assert "erreger2005_2a" in cli("models").stdout
    assert "ketamine" in cli("blockers").stdout
    r = cli("run", "--help")
    assert r.returncode == 0 and "--scheduler" in r.stdout and "--quick" in r.stdout


def test_python_dash_m_ketacore(tmp_path):
    """``python -m ketacore`` is the ``ketacore`` console script (ketacore.cli:main)."""
    r = subprocess.run([sys.executable, "-m", "ketacore", "--help"], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: ketacore") and "run" in r.stdout
    r = subprocess.run([sys.executable, "-m", "ketacore", "--version"], capture_output=True,
                       text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == f"ketacore {kc.__version__}"


VOLTAGE_SWEEP = textwrap.dedent("""
    name = "vsweep"
    model = "erreger2005_2a"
    blockers = ["memantine"]
    n_channels = 20
    n_trials = 2
    dt = "10 ms"
    rng = 3

    [parameters]
    V = "-70 mV"
    memantine = "10 uM"

    [protocols.train]
    initial = "R"

    [protocols.train.sweep]
    V = ["-70 mV", "-30 mV"]

    [[protocols.train.segments]]
    duration = "0.2 s"
    V = "$V"
    glutamate = "1 mM"
    memantine = "$memantine"

    [outputs]
    figures = ["traces", "occupancy"]
""")


def test_voltage_sweep_from_the_cli(tmp_path):
    """The review's reproduction: a sweep axis named V used to exit 1 with a raw xarray error
    after every chunk had run."""
    spec = tmp_path / "my.toml"
    spec.write_text(VOLTAGE_SWEEP)
    out = tmp_path / "out"
    r = cli("run", str(spec), "-o", str(out), "--workers", "1", "-q")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert (out / "train_traces.png").stat().st_size > 0
    assert (out / "train_occupancy.png").stat().st_size > 0
    ds = kc.study.open_results(out / "results.nc")["train"].to_dataset()
    assert ds["V"].dims == ("sweep_V", "time")
    assert ds["sweep_V"].values.tolist() == pytest.approx([-0.070, -0.030])
    before = (out / "results.nc").read_bytes()
    r = cli("run", str(spec), "-o", str(out), "--workers", "1", "-q")   # re-run: resumes, same bytes
    assert r.returncode == 0, r.stderr
    assert (out / "results.nc").read_bytes() == before


def test_header_shows_every_swept_model(tmp_path):
    spec = tmp_path / "models.toml"
    spec.write_text(VOLTAGE_SWEEP.replace('V = ["-70 mV", "-30 mV"]',
                                          'model = ["erreger2005_2a", "erreger2005_2b"]')
                    .replace('figures = ["traces", "occupancy"]', "figures = false"))
    r = cli("run", str(spec), "-o", str(tmp_path / "o"), "--workers", "1", "-q")
    assert r.returncode == 0, r.stderr
    assert "[train] protocol: erreger2005_2a+mem, erreger2005_2b+mem (model swept)" in r.stdout


@pytest.mark.slow
def test_run_default_full(tmp_path):
    """The real main job (about a minute on 2 cores)."""
    r = cli("run", "-o", str(tmp_path / "full"))
    assert r.returncode == 0, r.stderr
    assert "64 trials x 1000 channels" in r.stdout


def test_closed_pipe_is_quiet():
    """`ketacore show erreger2005_2a | head` printed a BrokenPipeError traceback.  stdout here
    is a pipe whose reading end is already closed, so every write fails (deterministic):
    exit status 1 and nothing on stderr."""
    import os
    r, w = os.pipe()
    os.close(r)
    try:
        p = subprocess.run([sys.executable, "-m", "ketacore", "show", "erreger2005_2a"],
                           stdout=w, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(w)
    assert p.returncode == 1
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr


def test_swept_models_with_different_states_refused_before_the_folder(tmp_path):
    """A model sweep over schemes with different states was refused only after the first
    model had run, leaving out/study.toml behind, so the corrected study was then refused as
    'a different study'.  It is now refused before anything runs or is written, naming both
    state lists; the corrected study then runs into the same folder."""
    spec = tmp_path / "bad.toml"
    spec.write_text('model = "erreger2005_2a"\n[protocol]\ndt = "1 ms"\nn_trials = 2\n'
                    'n_channels = 10\n[[protocol.segments]]\nduration = "20 ms"\n'
                    'glutamate = "1 mM"\n[sweep]\nmodel = ["erreger2005_2a", "destexhe1994"]\n')
    out = tmp_path / "o"
    r = cli("run", str(spec), "-o", str(out), "-q")
    assert r.returncode == 2
    assert "swept models must have the same states" in r.stderr and "'C0'" in r.stderr
    assert not out.exists()
    spec.write_text(spec.read_text().replace('"destexhe1994"', '"erreger2005_2b"'))
    r = cli("run", str(spec), "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr


def test_warnings_print_as_one_keyed_line_without_source(tmp_path):
    """helper-98's audit: a study's warnings showed ketacore's source line under them
    (``_warn_implausible(...)``); at the command line they are now one line each."""
    spec = tmp_path / "study.toml"
    spec.write_text('model = "erreger2005_2a"\nblockers = ["ketamine"]\nn_channels = 10\nn_trials = 2\n'
                    'dt = "10 ms"\nrng = 1\n[protocol]\n[[protocol.segments]]\nduration = "0.1 s"\n'
                    'glutamate = "1 mM"\nketamine = 0.5\n')
    r = cli("run", str(spec), "-o", str(tmp_path / "o"), "-q")
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    warn = [x for x in lines if x.startswith("ketacore: UnitsWarning: ")]
    assert warn and "ketamine = 0.5 M" in warn[0], r.stderr
    assert not any(".py:" in x or "warnings.warn" in x or x.startswith("  ") for x in lines), r.stderr


def test_other_packages_warnings_keep_python_s_format():
    """helper-102's review: the CLI labelled every warning 'ketacore: ...', a third-party
    DeprecationWarning included."""
    import io
    from ketacore import cli as C
    buf = io.StringIO()
    C._show_warning(DeprecationWarning("old api"), DeprecationWarning, "/elsewhere/pkg/x.py", 3, file=buf)
    C._show_warning(kc.UnitsWarning("ketamine = 1 M"), kc.UnitsWarning, "study.toml", 1, file=buf)
    C._show_warning(RuntimeWarning("a fit"), RuntimeWarning, C.__file__, 1, file=buf)
    assert buf.getvalue().splitlines() == ["/elsewhere/pkg/x.py:3: DeprecationWarning: old api",
                                           "ketacore: UnitsWarning: ketamine = 1 M",
                                           "ketacore: RuntimeWarning: a fit"]


def test_a_warning_pointed_at_the_user_s_line_is_ketacore_s_at_the_command_line():
    """helper-105's audit: `ketacore show mk801` printed the mk801 warning in Python's format,
    naming the `ketacore` script (user_stacklevel points past the package: at the command line
    the first frame outside it is the entry-point script)."""
    r = cli("show", "mk801")
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert lines and lines[0].startswith("ketacore: UserWarning: blocker 'mk801'"), r.stderr
    assert not any("sys.exit" in x or ".py:" in x or ": UserWarning" in x.split("ketacore: ")[0]
                   for x in lines), r.stderr


def test_blockers_listing_marks_the_uncalibrated_one_without_a_warning():
    r = cli("blockers")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    mk = [x for x in r.stdout.splitlines() if x.startswith("mk801")]
    assert len(mk) == 1 and "[UNCALIBRATED k_on: see ketacore show mk801]" in mk[0]
    assert not any("UNCALIBRATED" in x for x in r.stdout.splitlines() if not x.startswith("mk801"))
