"""Where a study's scheme files are found, and what the results keep of them.

* A study read from TOML *text* had no folder: a relative ``model = "mine.toml"`` was looked for
  in whatever the current folder was, and a miss said only "unknown model".  ``base=`` (on
  ``Study.from_toml`` and ``Study``) names the folder; a file not found is refused naming the
  key, the path looked for and the folder relative paths are resolved against.
* A sweep over models (scheme files, or a swept blocker parameter) stored only the first point's
  composed scheme in the results (``scheme_toml``): the file alone could not tell what the other
  points simulated.  Each distinct scheme is now kept (``scheme_tomls``, ``scheme_index``).

Each test here fails on the code before.
"""
import json
import textwrap

import numpy as np
import pytest

import ketacore as kc
from ketacore import study as S
from _study_fixtures import two_state_toml

xr = pytest.importorskip("xarray")
pytest.importorskip("netCDF4")

TEXT = textwrap.dedent("""
    name = "base"
    model = "{model}"
    n_channels = 10
    n_trials = 2
    dt = "10 ms"
    rng = 3
    keep_trials = 0

    [protocol]
    initial = "C"

    [[protocol.segments]]
    duration = "0.1 s"

    [outputs]
    figures = false
""")


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "project"
    (d / "schemes").mkdir(parents=True)
    (d / "schemes" / "mine.toml").write_text(two_state_toml(name="mine", k0=50.0), encoding="utf-8")
    (d / "schemes" / "fast.toml").write_text(two_state_toml(name="fast", k0=500.0), encoding="utf-8")
    return d


def _po(tree, part="main"):
    return tree[part]["open_probability_det"].values


# ------------------------------------------------------------------ base=
def test_text_with_base_finds_the_relative_scheme_file(folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                  # not the project folder
    text = TEXT.format(model="schemes/mine.toml")
    st = kc.Study.from_toml(text, base=folder)
    assert st._base_dir == str(folder.resolve())
    tree = kc.run_study(st, progress=False, workers=1)
    assert tree["main"].attrs["scheme"] == "mine"
    # the same as the study file next to the schemes (its folder is the default base)
    (folder / "study.toml").write_text(text, encoding="utf-8")
    ref = kc.run_study(kc.Study.from_toml(folder / "study.toml"), progress=False, workers=1)
    np.testing.assert_array_equal(_po(tree), _po(ref))


def test_base_is_made_absolute_when_the_study_is_built(folder, tmp_path, monkeypatch):
    monkeypatch.chdir(folder.parent)
    st = kc.Study.from_toml(TEXT.format(model="schemes/mine.toml"), base="project")
    monkeypatch.chdir(tmp_path / "project" / "schemes")      # somewhere else: still found
    assert kc.run_study(st, progress=False, workers=1)["main"].attrs["scheme"] == "mine"
    # copies keep it, the TOML does not carry it (it is where the files are, not the study)
    assert st.replace(n_trials=3)._base_dir == st._base_dir == str(folder.resolve())
    assert st.quick()._base_dir == st._base_dir
    assert "project" not in st.to_toml()
    assert kc.Study.from_toml(st.to_toml(), base=folder) == st


def test_study_built_in_python_takes_base(folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    st = kc.Study(model="schemes/fast.toml", base=folder, n_channels=10, n_trials=2, rng=1,
                  dt="10 ms", initial="C", protocol=[{"duration": "0.1 s"}],
                  outputs={"figures": False})
    assert kc.run_study(st, progress=False, workers=1)["main"].attrs["scheme"] == "fast"


def test_base_overrides_the_study_file_folder(folder, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "study.toml").write_text(TEXT.format(model="schemes/mine.toml"), encoding="utf-8")
    st = kc.Study.from_toml(other / "study.toml", base=folder)
    assert kc.run_study(st, progress=False, workers=1)["main"].attrs["scheme"] == "mine"


@pytest.mark.parametrize("base, match", [
    ("nope", r"^study: base: 'nope' \(.*nope'\) is not an existing folder"),
    ("file", r"^study: base: .* is not an existing folder"),
    (5, r"^study: base: must be a folder path \(str or os.PathLike\), got int"),
])
def test_bad_base_is_refused(folder, monkeypatch, base, match):
    monkeypatch.chdir(folder)
    (folder / "file").write_text("x")
    with pytest.raises(S.StudyError, match=match):
        kc.Study.from_toml(TEXT.format(model="schemes/mine.toml"), base=base)


def test_missing_file_from_text_names_the_path_and_the_folder(folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    st = kc.Study.from_toml(TEXT.format(model="schemes/mine.toml"))
    out = tmp_path / "out"
    with pytest.raises(S.StudyError) as e:
        kc.run_study(st, output=out, progress=False, workers=1)
    msg = str(e.value)
    assert msg.startswith("study: model: scheme file 'schemes/mine.toml' not found: "
                          f"'{tmp_path / 'schemes' / 'mine.toml'}' does not exist; a relative path "
                          f"is resolved against the current folder '{tmp_path}'"), msg
    assert "base=" in msg and "from TOML text" in msg
    assert not out.exists()          # refused before the output folder is written


def test_missing_file_next_to_a_study_file_names_its_folder(folder):
    (folder / "study.toml").write_text(TEXT.format(model="schemes/gone.toml"), encoding="utf-8")
    with pytest.raises(S.StudyError, match=r"^study.toml: model: scheme file 'schemes/gone.toml' not "
                                           r"found: '.*schemes/gone.toml' does not exist; a relative "
                                           r"path is resolved against the study's base folder "
                                           rf"'{folder.resolve()}'"):
        kc.run_study(folder / "study.toml", progress=False, workers=1)


def test_missing_file_in_a_model_sweep_names_its_sweep_key(folder):
    text = TEXT.format(model="schemes/mine.toml") + '\n[sweep]\nmodel = ["schemes/mine.toml", "schemes/gone.toml"]\n'
    st = kc.Study.from_toml(text, base=folder)
    with pytest.raises(S.StudyError, match=r"^study: \[sweep\]\.model\[1\]: scheme file "
                                           r"'schemes/gone.toml' not found"):
        kc.run_study(st, progress=False, workers=1)


def test_resume_with_base_keeps_the_folder_identity(folder, tmp_path):
    text = TEXT.format(model="schemes/mine.toml")
    out = tmp_path / "out"
    kc.run_study(kc.Study.from_toml(text, base=folder), output=out, progress=False, workers=1)
    rec = json.loads((out / S.INPUTS_FILE).read_text())
    assert rec["models"]["schemes/mine.toml"]["path"] == str(folder.resolve() / "schemes" / "mine.toml")
    before = (out / "results.nc").read_bytes()
    kc.run_study(kc.Study.from_toml(text, base=folder), output=out, progress=False, workers=1)
    assert (out / "results.nc").read_bytes() == before
    # the same text with another base, whose file differs: a different study
    other = tmp_path / "other"
    (other / "schemes").mkdir(parents=True)
    (other / "schemes" / "mine.toml").write_text(two_state_toml(name="mine", k0=7.0), encoding="utf-8")
    with pytest.raises(S.StudyConflictError, match=r"schemes/mine.toml.*transitions\[0\]\.k0"):
        kc.run_study(kc.Study.from_toml(text, base=other), output=out, progress=False, workers=1)


# ------------------------------------------------------------------ each point's scheme is kept
def _schemes(ds):
    tomls = json.loads(ds.attrs["scheme_tomls"])
    return [kc.Scheme.from_toml(tomls[int(i)]) for i in ds["scheme_index"].values.ravel()]


def test_model_sweep_over_files_keeps_every_scheme(folder, tmp_path):
    text = TEXT.format(model="schemes/mine.toml") + \
        '\n[sweep]\nmodel = ["schemes/mine.toml", "schemes/fast.toml"]\n'
    out = tmp_path / "out"
    tree = kc.run_study(kc.Study.from_toml(text, base=folder), output=out, progress=False, workers=1)
    ds = xr.open_datatree(out / "results.nc", engine="netcdf4")["main"].to_dataset()   # the file alone
    assert ds["scheme_index"].dims == ("model",)
    assert ds["scheme_index"].attrs["units"] == "1" and ds["scheme_index"].attrs["long_name"]
    mine, fast = _schemes(ds)
    assert (mine.name, fast.name) == ("mine", "fast")
    assert mine.transitions[0].rate.k0 == 50.0 and fast.transitions[0].rate.k0 == 500.0
    # scheme_toml is still the first point's, and each point ran the scheme it records
    assert kc.Scheme.from_toml(ds.attrs["scheme_toml"]).name == "mine"
    for i, sch in enumerate((mine, fast)):
        exact = kc.solve(sch, kc.Protocol([kc.Step(0.1)]), 0.01, initial="C").open_probability
        np.testing.assert_allclose(ds["open_probability_det"].values[i], exact, rtol=1e-12)
    assert tree["main"].attrs["scheme_tomls"] == ds.attrs["scheme_tomls"]


def test_swept_blocker_parameter_keeps_every_scheme():
    st = kc.Study(model="erreger2005_2a", blockers=[{"name": "ketamine", "k_off": "$koff"}],
                  parameters={"koff": "1 Hz"}, sweep={"koff": ["1 Hz", "2 Hz"]},
                  n_channels=5, n_trials=1, rng=1, dt="10 ms", initial="R",
                  protocol=[{"duration": "0.05 s", "glutamate": "1 mM", "ketamine": "1 uM"}])
    ds = kc.run_study(st, progress=False, workers=1)["main"].to_dataset()
    got = _schemes(ds)
    assert len(json.loads(ds.attrs["scheme_tomls"])) == 2
    gating = kc.models.get("erreger2005_2a")
    for sch, koff in zip(got, (1.0, 2.0)):
        want = kc.block(gating, kc.blockers.get("ketamine").replace(k_off=koff))
        cond = dict(V=-0.07, glutamate=1e-3, ketamine=1e-6)
        np.testing.assert_allclose(sch.q_matrix(**cond), want.q_matrix(**cond), rtol=1e-12)


def test_one_scheme_adds_nothing():
    st = kc.Study(model="erreger2005_2a", blockers=["ketamine"], parameters={"c": "1 uM"},
                  sweep={"c": ["1 uM", "2 uM"]}, n_channels=5, n_trials=1, rng=1, dt="10 ms",
                  initial="R", protocol=[{"duration": "0.05 s", "glutamate": "1 mM", "ketamine": "$c"}])
    ds = kc.run_study(st, progress=False, workers=1)["main"].to_dataset()
    assert "scheme_index" not in ds and "scheme_tomls" not in ds.attrs
    assert kc.Scheme.from_toml(ds.attrs["scheme_toml"]).n_states == 16
