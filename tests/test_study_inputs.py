"""A study whose model is a scheme file: the output folder's identity covers the file's content.

Before the fix ``study.toml`` stored only the path, so resuming after editing the scheme file
reused the old model's Monte Carlo chunks while the master equation used the new one (Po_det
changed, Po_mc kept the old model's value), and in one process an edited file was not even read
again (the parsed study was cached by its text).  Each test here failed on that code.
"""
import concurrent.futures as cf
import hashlib
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

import ketacore as kc
from ketacore import study as S
from _study_fixtures import two_state_toml

xr = pytest.importorskip("xarray")
pytest.importorskip("netCDF4")

STUDY = textwrap.dedent("""
    name = "resume_file"
    model = "mine.toml"
    blockers = ["mg"]
    n_channels = 20
    n_trials = 4
    dt = "10 ms"
    rng = 3
    keep_trials = 1

    [parameters]
    mg = "1 mM"
    V = "-70 mV"

    [protocol]

    [sweep]
    V = ["-70 mV", "-30 mV"]

    [[protocol.segments]]
    duration = "0.1 s"
    V = "$V"
    mg = "$mg"

    [outputs]
    figures = false
""")


INPUTS = "inputs.json"   # S.INPUTS_FILE


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def files(folder):
    return {p: p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}


def write(tmp_path, k0=200.0, study=STUDY, name="mine.toml"):
    (tmp_path / name).write_text(two_state_toml(k0=repr(k0)))
    spec = tmp_path / "study.toml"
    spec.write_text(study)
    return spec


def run(spec, out=None, **kw):
    return kc.run_study(spec, output=out, progress=False, workers=1, **kw)


class Counting(cf.ThreadPoolExecutor):
    def __init__(self):
        super().__init__(1)
        self.calls = []

    def submit(self, fn, *a, **k):
        self.calls.append(a[3:7])
        return super().submit(fn, *a, **k)


def test_changed_scheme_file_refused_and_folder_untouched(tmp_path):
    """The audit's reproduction: edit a rate of mine.toml (k0 200 -> 2000) and run again into the
    same folder."""
    spec = write(tmp_path)
    out = tmp_path / "runs" / "resume"
    run(spec, out)
    before = files(out)
    write(tmp_path, k0=2000.0)
    with pytest.raises(S.StudyConflictError,
                       match=r"already holds a different study \(differs in: model file "
                             r"'mine.toml' \(content changed: transitions\[0\]\.k0\)\); nothing "
                             r"was overwritten"):
        run(spec, out)
    assert files(out) == before


def test_partial_folder_with_changed_file_refused(tmp_path):
    """A killed run (chunks on disk, no results) must not be completed with the new model."""
    spec = write(tmp_path)
    out = tmp_path / "r"

    class Failing(cf.Executor):
        n = 0

        def submit(self, fn, *a, **k):
            if self.n >= 1:
                raise RuntimeError("worker lost")
            self.n += 1
            f = cf.Future()
            f.set_result(fn(*a, **k))
            return f

    with pytest.raises(RuntimeError, match="worker lost"):
        kc.run_study(spec, Failing(), output=out, progress=False, chunk_trials=2)
    assert list((out / "chunks").rglob("*.npz")) and not (out / "results.nc").exists()
    before = files(out)
    write(tmp_path, k0=2000.0)
    with pytest.raises(S.StudyConflictError, match="mine.toml.*transitions"):
        run(spec, out)
    assert files(out) == before
    write(tmp_path, k0=200.0)         # the original file again: resumes
    ex = Counting()
    with ex:
        kc.run_study(spec, ex, output=out, progress=False, chunk_trials=2)
    fresh = tmp_path / "fresh"
    run(spec, fresh)
    assert sha(out / "results.nc") == sha(fresh / "results.nc")
    assert len(ex.calls) == 3         # 2 points x 4 trials in chunks of 2, one chunk was on disk


def test_unchanged_file_resumes_byte_identical_and_comments_do_not_count(tmp_path):
    spec = write(tmp_path)
    out = tmp_path / "o"
    run(spec, out)
    ref = sha(out / "results.nc")
    assert S.INPUTS_FILE == INPUTS
    rec = json.loads((out / INPUTS).read_text())
    assert rec["models"]["mine.toml"]["text"] == (tmp_path / "mine.toml").read_text()
    with (tmp_path / "mine.toml").open("a") as fh:
        fh.write("# a comment, and layout changes, are not a different model\n")
    ex = Counting()
    with ex:
        kc.run_study(spec, ex, output=out, progress=False)
    assert ex.calls == [] and sha(out / "results.nc") == ref


def test_edited_file_is_read_again_in_the_same_process(tmp_path):
    """Same study text, edited scheme file: a new model (the parsed study was cached by its
    text, so the second run used the old scheme for everything)."""
    spec = write(tmp_path)
    a = run(spec)["main"].to_dataset()
    write(tmp_path, k0=2000.0)
    b = run(spec)["main"].to_dataset()
    # the reference: the edited content under another file name (never cached)
    write(tmp_path, k0=2000.0, name="other.toml")
    (tmp_path / "other.toml.study").write_text(STUDY.replace("mine.toml", "other.toml"))
    c = run(tmp_path / "other.toml.study")["main"].to_dataset()
    assert not np.allclose(a["open_probability_det"], b["open_probability_det"])
    np.testing.assert_array_equal(b["open_probability_det"], c["open_probability_det"])
    np.testing.assert_array_equal(b["sum_counts"], c["sum_counts"])
    # and into a new folder after the edit: both exact and Monte Carlo from the new file
    d = run(spec, tmp_path / "new")["main"].to_dataset()
    np.testing.assert_array_equal(d["sum_counts"], c["sum_counts"])


def test_model_sweep_files_are_part_of_the_identity(tmp_path):
    study = STUDY.replace('model = "mine.toml"\n', "").replace(
        '[sweep]\nV = ["-70 mV", "-30 mV"]', '[sweep]\nmodel = ["mine.toml", "two.toml"]')
    spec = write(tmp_path, study=study)
    write(tmp_path, k0=300.0, study=study, name="two.toml")
    out = tmp_path / "m"
    run(spec, out)
    assert sorted(json.loads((out / INPUTS).read_text())["models"]) == ["mine.toml", "two.toml"]
    before = files(out)
    write(tmp_path, k0=301.0, study=study, name="two.toml")
    with pytest.raises(S.StudyConflictError, match=r"differs in: model file 'two.toml' \(content "
                                                   r"changed: transitions\[0\]\.k0\)"):
        run(spec, out)
    assert files(out) == before


def test_folder_without_a_record_of_its_files_refused(tmp_path):
    """A folder written by the old code (no inputs.json) cannot be checked: refused, untouched."""
    spec = write(tmp_path)
    out = tmp_path / "old"
    run(spec, out)
    (out / INPUTS).unlink()
    before = files(out)
    with pytest.raises(S.StudyConflictError, match=r"no record of its scheme files' content.*"
                                                   r"'mine.toml'.*nothing was overwritten"):
        run(spec, out)
    assert files(out) == before


def test_built_in_model_folders_write_no_record(tmp_path):
    spec = tmp_path / "b.toml"
    spec.write_text(STUDY.replace('model = "mine.toml"', 'model = "erreger2005_2a"').replace(
        "[[protocol.segments]]", '[[protocol.segments]]\nglutamate = "1 mM"'))
    out = tmp_path / "b"
    run(spec, out)
    assert not (out / INPUTS).exists()
    ref = sha(out / "results.nc")
    run(spec, out)
    assert sha(out / "results.nc") == ref
