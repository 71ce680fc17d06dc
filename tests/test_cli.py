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


@pytest.mark.slow
def test_run_default_full(tmp_path):
    """The real main job (about a minute on 2 cores)."""
    r = cli("run", "-o", str(tmp_path / "full"))
    assert r.returncode == 0, r.stderr
    assert "64 trials x 1000 channels" in r.stdout
