"""Three leftovers of the study reviews.

* The results kept only the first sweep point's blockers (``blockers`` attribute), although a
  blocker field can be swept (``k_off = "$koff"``).  Each distinct value is now kept
  (``blockers_list``, with the data variable ``blockers_index``), as ``scheme_tomls`` /
  ``scheme_index`` keep the schemes.
* A bare-number parameter used directly as two dimensions (``dt = "$x"`` and ``glutamate =
  "$x"`` with ``x = 1e-3``: 1 ms and 1 mM) was accepted.  It is refused, naming the parameter,
  both keys and both dimensions; uses inside products stay wildcards and ``zero = 0`` is exempt.
* ``deterministic``, ``[outputs].figures`` and run_study's ``figures``/``progress`` had their own
  boolean checks (a numpy bool refused; ``progress="no"`` meant True).  They follow
  :func:`ketacore._validate.flag`.

Every test here fails on the code before, except those marked as guards.
"""
import json
import textwrap

import numpy as np
import pytest

import ketacore as kc
from ketacore import study as S
from _study_fixtures import minimal_study, trapping_segments, trapping_toml

BASE = dict(model="erreger2005_2a", blockers=["ketamine"], n_channels=5, n_trials=1, rng=1,
            dt="10 ms", initial="R")
STEP = {"duration": "0.05 s", "glutamate": "1 mM", "ketamine": "1 uM"}


# ------------------------------------------------------------------ 1. each point's blockers
def _run(st, tmp_path=None):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("netCDF4")
    if tmp_path is None:
        return kc.run_study(st, progress=False, workers=1)["main"].to_dataset()
    kc.run_study(st, output=tmp_path / "out", progress=False, workers=1)
    return xr.open_datatree(tmp_path / "out" / "results.nc", engine="netcdf4")["main"].to_dataset()


def _blockers_at(ds, **sel):
    """The blockers (list of field tables) the results file records for one sweep point."""
    return json.loads(ds.attrs["blockers_list"])[int(ds["blockers_index"].sel(**sel))]


def test_swept_blocker_field_keeps_every_points_blockers(tmp_path):
    st = kc.Study(**{**BASE, "blockers": [{"name": "ketamine", "k_off": "$koff"}]},
                  parameters={"koff": "1 Hz"}, sweep={"koff": ["1 Hz", "2 Hz", "5 Hz"]},
                  protocol=[STEP])
    ds = _run(st, tmp_path)    # (the file alone)
    assert ds["blockers_index"].dims == ("koff",)
    assert ds["blockers_index"].attrs["units"] == "1"
    assert "blockers_list" in ds["blockers_index"].attrs["long_name"]
    assert len(json.loads(ds.attrs["blockers_list"])) == 3
    for koff in (1.0, 2.0, 5.0):
        (b,) = _blockers_at(ds, koff=koff)
        lib = kc.blockers.get("ketamine")
        assert b == {**S._blocker_dict(lib), "k_off": koff}
    # blockers is still the first point's (as scheme_toml is)
    assert json.loads(ds.attrs["blockers"]) == _blockers_at(ds, koff=1.0)


def test_blocker_field_through_a_parameter_on_a_two_axis_sweep():
    # k_off follows koff through k; the ketamine axis does not change the blockers
    st = kc.Study(**{**BASE, "blockers": [{"name": "ketamine", "k_off": "$k"}]},
                  parameters={"koff": "1 Hz", "k": "$koff * 2", "c": "1 uM"},
                  sweep={"c": ["1 uM", "2 uM"], "koff": ["1 Hz", "3 Hz"]},
                  protocol=[{**STEP, "ketamine": "$c"}])
    ds = _run(st)
    assert ds["blockers_index"].dims == ("c", "koff")
    assert len(json.loads(ds.attrs["blockers_list"])) == 2
    for c in (1e-6, 2e-6):
        for koff in (1.0, 3.0):
            assert _blockers_at(ds, c=c, koff=koff)[0]["k_off"] == 2 * koff


def test_no_blocker_sweep_adds_nothing():
    # guard: a concentration sweep and a model sweep keep one set of blockers -- no
    # blockers_list, and blockers as before
    st = kc.Study(**BASE, parameters={"c": "1 uM"}, sweep={"c": ["1 uM", "2 uM"]},
                  protocol=[{**STEP, "ketamine": "$c"}])
    ds = _run(st)
    assert "blockers_index" not in ds and "blockers_list" not in ds.attrs
    assert json.loads(ds.attrs["blockers"]) == [S._blocker_dict(kc.blockers.get("ketamine"))]
    st = kc.Study(**BASE, sweep={"model": ["erreger2005_2a", "erreger2005_2b"]}, protocol=[STEP])
    ds = _run(st)
    assert "scheme_index" in ds and "blockers_index" not in ds and "blockers_list" not in ds.attrs


def test_blockers_index_is_a_dataset_name():
    # a sweep axis called blockers_index would collide with the variable: renamed
    assert "blockers_index" in S.DATASET_NAMES
    assert S.sweep_dimensions(["blockers_index"]) == {"blockers_index": "sweep_blockers_index"}


# ------------------------------------------------------------------ 2. one bare parameter, one dimension
_study = minimal_study


def test_bare_parameter_as_time_and_concentration_refused():
    with pytest.raises(S.StudyError) as ei:
        _study(parameters={"x": 1e-3}, dt="$x",
               protocol=[{"duration": "1 s", "glutamate": "$x"}])
    msg = str(ei.value)
    assert msg.startswith("Study: [protocol].segments[0].glutamate: '$x' uses the bare-number "
                          "parameter x ([parameters].x = 0.001) as a concentration (M)")
    assert "but dt = '$x' uses it as a time (s)" in msg
    assert "give x its unit ('0.001 s' or '0.001 M')" in msg


@pytest.mark.parametrize("first, second", [
    ({"duration": "$x"}, {"glutamate": "$x"}),                       # the whole value
    ({"duration": "$x + 1 s"}, {"glutamate": "$x"}),                 # a term of a sum
    ({"duration": "1 s - x"}, {"ketamine": "max($x, 1 uM)"}),        # bare name; min/max
    ({"duration": "round(-$x)"}, {"glutamate": "${x}"}),             # round, unary minus
    ({"duration": "1 s", "V": "$x"}, {"glutamate": "$x % 1"}),       # a voltage
])
def test_bare_parameter_used_directly_as_two_dimensions_refused(first, second):
    segs = [{"duration": "1 s", **first}, {"duration": "1 s", **second}]
    with pytest.raises(S.StudyError, match=r"^Study: \[protocol\]\.segments\[1\]\.\w+: .* uses the "
                       r"bare-number parameter x .* but \[protocol\]\.segments\[0\]\.\w+ = .* uses it as "):
        _study(parameters={"x": 0.5}, protocol=segs)


def test_bare_parameter_through_other_parameters_refused():
    # y is a bare number too: its uses are x's; t is a time, so x in t is used as a time
    with pytest.raises(S.StudyError, match=r"segments\[1\]\.glutamate: '\$x' uses the bare-number "
                       r"parameter x .* but \[protocol\]\.segments\[0\]\.duration = '\$y' uses it "
                       r"\(through \$y\) as a time"):
        _study(parameters={"x": 0.5, "y": "$x + 1"},
               protocol=[{"duration": "$y"}, {"duration": "1 s", "glutamate": "$x"}])
    with pytest.raises(S.StudyError, match=r"^Study: \[parameters\]\.t: '\$x \+ 1 s' uses the "
                       r"bare-number parameter x .* as a time \(s\), which the parameter t takes, but "
                       r"\[protocol\]\.segments\[1\]\.glutamate = '\$x' uses it as a concentration"):
        _study(parameters={"x": 0.5, "t": "$x + 1 s"},
               protocol=[{"duration": "$t"}, {"duration": "1 s", "glutamate": "$x"}])


def test_bare_parameter_in_a_blocker_table_and_an_analysis_window_refused():
    with pytest.raises(S.StudyError, match=r"blockers\[0\]\.k_off: '\$x' uses the bare-number "
                       r"parameter x .* as a frequency \(1/s\), which the blocker's k_off takes, but "
                       r"\[protocol\]\.segments\[0\]\.duration = '\$x' uses it as a time"):
        _study(blockers=[{"name": "ketamine", "k_off": "$x"}], parameters={"x": 0.5},
               protocol=[{"duration": "$x", "glutamate": "1 mM"}])
    with pytest.raises(S.StudyError, match=r"analysis\.early: .* as a time .* but "
                       r"\[protocol\]\.segments\[1\]\.ketamine = '\$e' uses it as a concentration"):
        _study(parameters={"e": 0.1}, protocol=trapping_segments(ketamine="$e"),
               analysis={"kind": "trapping", "early": "$e"})


def test_bare_parameter_across_protocols_refused():
    parts = {"a": {"segments": [{"duration": "$x", "glutamate": "1 mM"}]},
             "b": {"segments": [{"duration": "1 s", "glutamate": "$x"}]}}
    with pytest.raises(S.StudyError, match=r"^Study: \[protocols\.b\]\.segments\[0\]\.glutamate: .*"
                       r"but \[protocols\.a\]\.segments\[0\]\.duration = '\$x' uses it as a time"):
        _study(parameters={"x": 1e-3}, parts=parts)
    # a protocol's own definition is another parameter: accepted
    parts["b"]["parameters"] = {"x": 1e-6}
    _study(parameters={"x": 1e-3}, parts=parts)


def test_swept_bare_parameter_refused():
    with pytest.raises(S.StudyError, match=r"bare-number parameter c \(\[parameters\]\.c = 1e-06, "
                       r"swept\) .* write the sweep values of c with their unit"):
        _study(parameters={"c": 1e-6}, sweep={"c": [1e-6, 2e-6]},
               protocol=[{"duration": "$c", "glutamate": "1 mM", "ketamine": "$c"}])


def test_bare_parameter_refused_in_a_toml_file(tmp_path):
    f = tmp_path / "slip.toml"
    f.write_text(textwrap.dedent("""
        model = "erreger2005_2a"
        blockers = ["ketamine"]
        n_channels = 10
        n_trials = 2
        dt = "$x"

        [parameters]
        x = 1e-3

    """) + trapping_toml(table="protocol", glutamate="$x"), encoding="utf-8")
    with pytest.raises(S.StudyError, match=r"^slip\.toml: \[protocol\]\.segments\[0\]\.glutamate: "
                       r".*but dt = '\$x' uses it as a time"):
        kc.Study.from_toml(f)


def test_bare_numbers_one_dimension_each_accepted():
    # guard: a study written in bare SI numbers, each number feeding one dimension (and used
    # several times as it), with uses inside products that stay wildcards
    st = _study(parameters={"t": 0.5, "v": -0.07, "c": 1e-6, "g": 1e-3, "f": 10, "n": 3,
                            "koff": 2.0, "x": 30, "zero": 0},
                blockers=[{"name": "ketamine", "k_off": "$koff"}], dt="$x / 30000",
                protocol=[{"duration": "$t", "V": "$v", "glutamate": "$g"},
                          {"duration": "$t + 0.5", "V": "min($v, 0)", "glutamate": "$g",
                           "ketamine": "$c"},
                          {"duration": "$x * 1 ms", "ketamine": "$x * 1 nM", "V": "$zero",
                           "glutamate": "$zero"},
                          {"train": {"n_pulses": "$n", "frequency": "$f", "width": "$t / 100",
                                     "V": "$v", "during": {"glutamate": "$g"}}}])
    assert st.parts["main"].segments[1]["ketamine"] == "$c"


def test_zero_is_exempt_and_sum_with_plain_numbers_is_not_a_use():
    # guard: zero = 0 may be 0 V and 0 M; a bare parameter in a product of two bare parameters
    # does not count
    _study(parameters={"zero": 0, "a": 2, "b": 3},
           protocol=[{"duration": "$a * $b", "V": "$zero", "glutamate": "$zero"},
                     {"duration": "1 s", "glutamate": "$a * $b * 1e-4"}])


def test_additive_names():
    assert S._additive_names("$x") == (("x", True),)
    assert S._additive_names("round($a + b) - max($c, 1 s) % $d") == (
        ("a", True), ("b", False), ("c", True), ("d", True))
    assert S._additive_names("$x * 1 s + $y / 2 + $z ** 2 + round($w, $n)") == (("w", True),)
    assert S._additive_names("10 uM") == () and S._additive_names("(") == ()


# ------------------------------------------------------------------ 3. flags
TINY = dict(model="destexhe1994", protocol=[{"duration": "10 ms", "glutamate": "1 mM"}],
            n_trials=2, n_channels=5)


@pytest.mark.parametrize("value", ["no", "true", 1, 0, None, 1.0, [True]])
def test_deterministic_must_be_a_flag(value):
    # (refused before too, by a message without the type: these fail on the old message only)
    with pytest.raises(S.StudyError, match=r"^Study: deterministic: must be true or false, got "
                       + type(value).__name__):
        kc.Study(**TINY, deterministic=value)


@pytest.mark.parametrize("value", [True, False, np.True_, np.False_])
def test_deterministic_flags_are_stored_as_bool(value):
    # (True/False: guards; a numpy bool was refused)
    st = kc.Study(**TINY, deterministic=value)
    assert type(st.deterministic) is bool and st.deterministic == bool(value)
    assert kc.Study.from_toml(st.to_toml()) == st


def test_deterministic_in_a_toml_file_names_the_file(tmp_path):
    f = tmp_path / "flag.toml"
    f.write_text('model = "destexhe1994"\ndeterministic = "no"\n[[protocol.segments]]\n'
                 'duration = "10 ms"\n', encoding="utf-8")
    with pytest.raises(S.StudyError, match=r"^flag\.toml: deterministic: must be true or false, "
                       r"got str \('no'\)"):
        kc.Study.from_toml(f)


@pytest.mark.parametrize("value", ["yes", 1, None, ("traces",)])
def test_outputs_figures_must_be_a_flag_or_a_list(value):
    # (refused before too, as "true/false or a list": these fail on the old message only)
    with pytest.raises(S.StudyError, match=r"^Study: \[outputs\]\.figures: must be true or false "
                       r"or a list of \["):
        kc.Study(**TINY, outputs={"figures": value})


def test_outputs_figures_numpy_bool_is_stored_as_bool():
    st = kc.Study(**TINY, outputs={"figures": np.False_})
    assert st.outputs["figures"] is False
    assert kc.Study.from_toml(st.to_toml()) == st


@pytest.mark.parametrize("kw, msg", [
    (dict(progress="no"), "progress must be True or False, got str ('no')"),
    (dict(progress=0), "progress must be True or False, got int (0)"),
    (dict(progress=None), "progress must be True or False, got NoneType (None)"),
    (dict(figures=1), "figures must be None, True, False or a list of"),         # guard
    (dict(figures="traces"), "figures must be None, True, False or a list of"),  # guard
])
def test_run_study_flags_refused(kw, msg):
    pytest.importorskip("xarray")
    with pytest.raises(TypeError) as ei:
        kc.run_study(kc.Study(**TINY), **{"progress": False, **kw})
    assert msg in str(ei.value)


def test_run_study_flags_accept_numpy_bools(tmp_path):
    pytest.importorskip("xarray")
    pytest.importorskip("netCDF4")
    out = tmp_path / "out"
    tree = kc.run_study(kc.Study(**TINY, rng=1), output=out, progress=np.False_, figures=np.False_,
                        workers=1)
    assert "main" in tree.children and (out / "results.nc").exists()
    assert not list(out.glob("*.png"))
