"""kc.Study / kc.run_study: TOML round-trip and keyed errors; bit-identical results for any
chunking and executor (threads, dask LocalCluster); resumable output folders; conflicts refused.

Bit identity is tested on the bytes of the NetCDF results file, the strongest form: any change
in any number (or attribute) would change them.
"""
import concurrent.futures as cf
import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import ketacore as kc
from ketacore import study as S

xr = pytest.importorskip("xarray")
pytest.importorskip("netCDF4")

SMALL = textwrap.dedent("""
    name = "small"
    model = "erreger2005_2a"
    blockers = ["ketamine"]
    n_channels = 50
    n_trials = 10
    dt = "20 ms"
    rng = 7
    keep_trials = 3

    [parameters]
    glutamate = "1 mM"
    ketamine = "10 uM"

    [protocols.trap]
    initial = "R"
    analysis = { kind = "trapping", window = "0.2 s", early = "0.1 s" }

    [protocols.trap.sweep]
    ketamine = ["1 uM", "10 uM"]

    [[protocols.trap.segments]]
    label = "control"
    duration = "1 s"
    glutamate = "$glutamate"

    [[protocols.trap.segments]]
    label = "block"
    duration = "2 s"
    glutamate = "$glutamate"
    ketamine = "$ketamine"

    [[protocols.trap.segments]]
    label = "wash"
    duration = "2 s"

    [[protocols.trap.segments]]
    label = "recovery"
    duration = "1 s"
    glutamate = "$glutamate"

    [protocols.train]
    initial = "R"
    dt = "2 ms"
    analysis = { kind = "use_dependence" }

    [protocols.train.parameters]
    frequency = "5 Hz"
    ketamine = "3 uM"

    [protocols.train.sweep]
    frequency = ["5 Hz", "20 Hz"]

    [[protocols.train.segments]]
    train = { n_pulses = "round(1 s * $frequency)", frequency = "$frequency", width = "2 ms", during = { glutamate = "$glutamate" }, between = { ketamine = "$ketamine" } }

    [protocols.dr]
    analysis = { kind = "dose_response", concentration = "ketamine" }

    [protocols.dr.sweep]
    ketamine = ["0.3 uM", "1 uM", "3 uM"]

    [[protocols.dr.segments]]
    duration = "0.4 s"
    glutamate = "$glutamate"
    ketamine = "$ketamine"

    [outputs]
    figures = false
""")


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def small():
    return kc.Study.from_toml(SMALL)


@pytest.fixture(scope="module")
def reference(small, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    tree = kc.run_study(small, output=out, progress=False, workers=1, chunk_trials=10)
    return tree, sha(out / "results.nc")


# ----------------------------------------------------------------------------- spec
def test_toml_round_trip(small, tmp_path):
    text = small.to_toml()
    again = kc.Study.from_toml(text)
    assert again == small
    assert again.to_toml() == text
    p = tmp_path / "s.toml"
    small.to_toml(p)
    assert kc.Study.from_toml(p) == small
    d = S.default_study()
    assert kc.Study.from_toml(d.to_toml()) == d


def test_python_study_single_protocol_round_trip():
    from ketacore.units import s, mM, uM
    st = kc.Study(model="erreger2005_2a", blockers=["ketamine"], n_trials=4, n_channels=20, rng=3,
                  parameters={"ketamine": 1 * uM},
                  protocol=[kc.Step(0.5 * s, glutamate=1 * mM, ketamine=1 * uM),
                            {"duration": "0.5 s", "glutamate": "1 mM", "ketamine": "$ketamine"}],
                  sweep={"ketamine": ["1 uM", 3e-6]}, initial="R")
    text = st.to_toml()
    assert "[protocol]" in text and "[sweep]" in text
    assert kc.Study.from_toml(text) == st
    assert [p["ketamine"] for p in st.points("main")] == [1e-6, 3e-6]


@pytest.mark.parametrize("edit, key", [
    (("[protocols.trap.sweep]\nketamine = [\"1 uM\", \"10 uM\"]", "[protocols.trap.sweep]\nketamine = []"),
     "[protocols.trap.sweep].ketamine"),
    (("[protocols.trap.sweep]\nketamine = [\"1 uM\", \"10 uM\"]", "[protocols.trap.sweep]\nketamine = [\"1 uZ\"]"),
     "[protocols.trap.sweep].ketamine[0]: unknown unit"),
    (("[protocols.trap.sweep]\nketamine = [\"1 uM\", \"10 uM\"]", "[protocols.trap.sweep]\nnope = [1, 2]"),
     "[protocols.trap.sweep].nope: is not a parameter"),
    (("n_trials = 10", "n_trials = 0"), "n_trials: must be an integer >= 1"),
    (("n_trials = 10", "n_trial = 10"), "n_trial: unknown key"),
    (("duration = \"2 s\"\nglutamate = \"$glutamate\"\nketamine = \"$ketamine\"",
      "duration = \"2 s\"\nglutamate = \"$glutamate\"\nketamine = \"$ketamin\""),
     "[protocols.trap].segments[1].ketamine: unknown name 'ketamin'"),
    (("[[protocols.trap.segments]]\nlabel = \"wash\"\nduration = \"2 s\"",
      "[[protocols.trap.segments]]\nlabel = \"wash\"\nduration = \"-2 s\""),
     "[protocols.trap].segments[2]: duration"),
    (("blockers = [\"ketamine\"]", "blockers = [\"ketamine\"]\nrecord = \"everything\""), "record: must be one of"),
    (("analysis = { kind = \"trapping\"", "analysis = { kind = \"trappin\""), "[protocols.trap].analysis: kind"),
])
def test_errors_name_the_key(tmp_path, edit, key):
    old, new = edit
    text = textwrap.dedent(SMALL)
    assert old in text, old
    p = tmp_path / "study.toml"
    p.write_text(text.replace(old, new, 1))
    with pytest.raises(S.StudyError) as e:
        kc.Study.from_toml(p)
    assert str(e.value).startswith("study.toml: "), str(e.value)
    assert key in str(e.value), str(e.value)


def test_single_protocol_sweep_error_key(tmp_path):
    p = tmp_path / "study.toml"
    p.write_text('model = "erreger2005_2a"\nblockers = ["ketamine"]\n[protocol]\n[[protocol.segments]]\n'
                 'duration = "1 s"\nketamine = "$ketamine"\n[parameters]\nketamine = "1 uM"\n'
                 '[sweep]\nketamine = ["1 uM", "bad"]\n')
    with pytest.raises(S.StudyError, match=r"^study\.toml: \[sweep\]\.ketamine\[1\]: "):
        kc.Study.from_toml(p)


def test_unknown_ligand_and_state_errors(tmp_path):
    old = 'glutamate = "$glutamate"\n\n[[protocols.trap.segments]]\nlabel = "block"'
    assert old in SMALL
    bad = SMALL.replace(old, old.replace("glutamate =", "glutamat ="), 1)
    st = kc.Study.from_toml(bad)
    with pytest.raises(S.StudyError, match=r"\[protocols.trap\].segments: .*glutamat"):
        kc.run_study(st, progress=False, figures=False)
    st = kc.Study.from_toml(SMALL.replace('initial = "R"', 'initial = "Q9"', 1))
    with pytest.raises(S.StudyError, match=r"\[protocols.trap\].initial: unknown state 'Q9'"):
        kc.run_study(st, progress=False, figures=False)


def test_expression_evaluator():
    env = {"f": 5.0, "T": 2.0}
    assert S._evaluate("round($T * $f)", env, "x") == 10
    assert S._evaluate("10 uM", env, "x") == pytest.approx(1e-5)
    assert S._evaluate("-70 mV", env, "x") == pytest.approx(-0.07)
    assert S._evaluate("${T} * 3 ms", env, "x") == pytest.approx(0.006)
    with pytest.raises(S.StudyError, match="only numbers"):
        S._evaluate("__import__('os')", env, "x")
    with pytest.raises(S.StudyError, match="unknown name"):
        S._evaluate("$g", env, "x")


# ----------------------------------------------------------------------------- results
def test_result_contents(reference, small):
    tree, _ = reference
    assert set(tree.children) == {"trap", "train", "dr"}
    trap = tree["trap"].to_dataset()
    assert trap["sum_counts"].dims == ("ketamine", "time", "state")
    assert trap["sum_counts"].dtype == np.int64
    assert int(trap["sum_counts"].isel(ketamine=0, time=5).sum()) == small.n_trials * small.n_channels
    assert trap["current_trials"].shape[1] == 3
    for v in ("block_det", "block_mc", "trapped_occupancy_mc", "block_trials", "block_mc_sem"):
        assert v in trap
    # Monte Carlo block close to the exact value (10 trials x 50 channels: loose, 6 SEM)
    d, m, e = (trap[v].values for v in ("block_det", "block_mc", "block_mc_sem"))
    assert np.all(np.abs(d - m) < 6 * e + 0.05)
    assert trap["block_det"].values[1] > trap["block_det"].values[0]  # more drug, more block
    train = tree["train"].to_dataset()
    assert train["block_by_pulse_det"].dims == ("frequency", "pulse")
    assert train["frequency"].attrs["units"] == "Hz"
    assert train["block_last_det"].values[1] > train["block_last_det"].values[0]  # use dependence
    dr = tree["dr"].to_dataset()
    assert 0.3e-6 < float(dr["ic50_det"]) < 3e-6
    attrs = tree.attrs
    assert attrs["ketacore_version"] == kc.__version__ and attrs["entropy"] == "7"
    assert kc.Study.from_toml(attrs["study_toml"]) == small
    assert "[[states]]" in trap.attrs["scheme_toml"]
    assert kc.Scheme.from_toml(trap.attrs["scheme_toml"]).n_states == 16


def test_file_reopens(reference, tmp_path, small):
    tree, _ = reference
    out = tmp_path / "o"
    kc.run_study(small, output=out, progress=False, workers=1)
    back = S.open_results(out / "results.nc")
    xr.testing.assert_identical(back["trap"].to_dataset().load(), tree["trap"].to_dataset())


def test_chunking_and_threads_bit_identical(reference, small, tmp_path):
    _, ref = reference
    for i, (workers, chunk) in enumerate([(2, 3), (3, 1), (1, 7)]):
        out = tmp_path / f"c{i}"
        kc.run_study(small, output=out, progress=False, workers=workers, chunk_trials=chunk)
        assert sha(out / "results.nc") == ref, (workers, chunk)


def test_thread_pool_executor_bit_identical(reference, small, tmp_path):
    _, ref = reference
    with cf.ThreadPoolExecutor(3) as ex:
        kc.run_study(small, ex, output=tmp_path / "t", progress=False, chunk_trials=4)
    assert sha(tmp_path / "t" / "results.nc") == ref


def test_dask_local_cluster_bit_identical(reference, small, tmp_path):
    distributed = pytest.importorskip("distributed")
    _, ref = reference
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        kc.run_study(small, client.get_executor(pure=False), output=tmp_path / "d", progress=False,
                     chunk_trials=5)
    assert sha(tmp_path / "d" / "results.nc") == ref


@pytest.mark.slow
def test_process_pool_and_loky_bit_identical(reference, small, tmp_path):
    _, ref = reference
    with cf.ProcessPoolExecutor(2) as ex:
        kc.run_study(small, ex, output=tmp_path / "p", progress=False, chunk_trials=5)
    assert sha(tmp_path / "p" / "results.nc") == ref
    loky = pytest.importorskip("loky")
    kc.run_study(small, loky.get_reusable_executor(max_workers=2), output=tmp_path / "l",
                 progress=False, chunk_trials=4)
    assert sha(tmp_path / "l" / "results.nc") == ref


def test_in_memory_equals_file(reference, small):
    tree, _ = reference
    mem = kc.run_study(small, progress=False, workers=2, chunk_trials=3)
    xr.testing.assert_identical(mem["train"].to_dataset(), tree["train"].to_dataset())


# ----------------------------------------------------------------------------- resume
class FailingExecutor(cf.Executor):
    """Runs tasks inline; the (k+1)-th submission raises (a crash mid-study)."""

    def __init__(self, k):
        self.k = k
        self.n = 0

    def submit(self, fn, *args, **kwargs):
        if self.n >= self.k:
            raise RuntimeError("worker lost")
        self.n += 1
        f = cf.Future()
        f.set_result(fn(*args, **kwargs))
        return f


def test_kill_and_resume_identical_bytes(reference, small, tmp_path):
    _, ref = reference
    out = tmp_path / "r"
    with pytest.raises(RuntimeError, match="worker lost"):
        kc.run_study(small, FailingExecutor(5), output=out, progress=False, chunk_trials=2)
    done = list((out / "chunks").rglob("*.npz"))
    assert len(done) == 5 and not (out / "results.nc").exists()
    # resume with a different chunking: only the missing trials run
    calls = []

    class Counting(cf.ThreadPoolExecutor):
        def submit(self, fn, *a, **k):
            calls.append(a[5:7])
            return super().submit(fn, *a, **k)

    with Counting(2) as ex:
        kc.run_study(small, ex, output=out, progress=False, chunk_trials=3)
    assert sha(out / "results.nc") == ref
    n_trials_run = sum(b - a for a, b in calls)
    total = small.n_trials * (2 + 2 + 3)
    assert n_trials_run == total - 5 * 2
    # a finished folder: nothing to run, same bytes
    calls.clear()
    with Counting(2) as ex:
        kc.run_study(small, ex, output=out, progress=False)
    assert calls == [] and sha(out / "results.nc") == ref


def test_resume_after_killed_subprocess(reference, small, tmp_path):
    _, ref = reference
    out = tmp_path / "k"
    spec = tmp_path / "small.toml"
    small.to_toml(spec)
    code = textwrap.dedent(f"""
        import os, ketacore as kc
        from ketacore import study as S
        orig = S._save_chunk
        n = [0]
        def save(*a):
            orig(*a)
            n[0] += 1
            if n[0] == 4:
                os._exit(9)          # hard kill after 4 chunks are on disk
        S._save_chunk = save
        kc.run_study({str(spec)!r}, output={str(out)!r}, progress=False, workers=1, chunk_trials=2)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 9, r.stderr
    assert len(list((out / "chunks").rglob("*.npz"))) == 4
    assert not list(out.rglob("*.tmp*"))
    kc.run_study(spec, output=out, progress=False, workers=2)
    assert sha(out / "results.nc") == ref


def test_conflicting_spec_refused(small, tmp_path):
    out = tmp_path / "x"
    with pytest.raises(RuntimeError):
        kc.run_study(small, FailingExecutor(1), output=out, progress=False)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    other = small.replace(n_channels=51)
    with pytest.raises(S.StudyConflictError, match="n_channels.*nothing was overwritten"):
        kc.run_study(other, output=out, progress=False)
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert before == after
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("mine")
    with pytest.raises(S.StudyConflictError, match="not a ketacore study folder"):
        kc.run_study(small, output=junk, progress=False)
    assert (junk / "notes.txt").read_text() == "mine"


def test_fresh_entropy_is_stored_and_reused(small, tmp_path):
    st = small.replace(rng=None, n_trials=2)
    st.parts = {"dr": st.parts["dr"]}
    out = tmp_path / "e"
    with pytest.raises(RuntimeError):
        kc.run_study(st, FailingExecutor(2), output=out, progress=False, chunk_trials=1)
    disk = kc.Study.from_toml(out / "study.toml")
    assert disk.rng is not None
    tree = kc.run_study(st, output=out, progress=False)   # rng=None resumes with the stored entropy
    assert tree.attrs["entropy"] == str(disk._entropy())
    fresh = kc.run_study(st.replace(rng=disk.rng), progress=False)
    xr.testing.assert_identical(fresh["dr"].to_dataset(), tree["dr"].to_dataset())


def test_counts_record_and_progress(small, capsys):
    st = small.replace(record="counts", n_trials=3)
    st.parts = {"trap": st.parts["trap"]}
    tree = kc.run_study(st, progress=True, workers=1)
    ds = tree["trap"].to_dataset()
    assert ds["counts"].dims == ("ketamine", "trial", "time", "state")
    np.testing.assert_array_equal(ds["counts"].sum("trial").values, ds["sum_counts"].values)
    assert "trial" in capsys.readouterr().err   # tqdm bar on stderr


def test_model_sweep(small):
    st = small.replace(n_trials=2, n_channels=10)
    st.parts = {"dr": st.parts["dr"]}
    st.parts["dr"].sweep = {"model": ["erreger2005_2a", "erreger2005_2b"], "ketamine": ["1 uM", "3 uM"]}
    tree = kc.run_study(st, progress=False)
    ds = tree["dr"].to_dataset()
    assert ds["response_det"].dims == ("model", "ketamine")
    assert list(ds["model"].values) == ["erreger2005_2a", "erreger2005_2b"]
    assert ds["ic50_det"].dims == ("model",)
