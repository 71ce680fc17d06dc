"""Study-layer audit (b): unit/parameter name clashes in expressions, a dt that changes over a
sweep, and the printed IC50 of a dose-response over a unitless concentration axis.

Each test failed on the code before the fix.
"""
import pytest

import ketacore as kc
from ketacore import study as S


# ---------------------------------------------------------------- 1. parameter named like a unit
def test_unit_after_number_stays_a_unit_when_a_parameter_has_its_name():
    env = {"V": -0.07, "s": 5.0}
    # was -0.0728: the "V" of "0.04 V" read as the parameter V (-70 mV)
    assert S._evaluate("$V + 0.04 V", env, "t") == pytest.approx(-0.03)
    # was 10: "2 s" read as 2 * parameter s
    assert S._evaluate("2 s * 1", env, "t") == pytest.approx(2.0)
    assert S._evaluate("${V} * 2", env, "t") == pytest.approx(-0.14)
    assert S._evaluate("$s * 1 ms", env, "t") == pytest.approx(5e-3)
    # documented forms keep working
    assert S._evaluate("-70 mV", env, "t") == pytest.approx(-0.07)
    assert S._evaluate("$V", env, "t") == pytest.approx(-0.07)
    assert S._evaluate("round($s * 2)", env, "t") == 10.0
    assert S._evaluate("$c * uM", {"c": 3.0}, "t") == pytest.approx(3e-6)
    assert S._evaluate("1 / ms", {}, "t") == pytest.approx(1e3)


def test_bare_name_that_is_parameter_and_unit_is_refused():
    env = {"V": -0.07, "s": 5.0, "train": 2.0}
    for text, name in (("V + 1 mV", "V"), ("s * 2", "s")):
        with pytest.raises(S.StudyError, match=rf"\${name}"):
            S._evaluate(text, env, "t")
    # a bare parameter that is not a unit, and a bare unit that is no parameter, stay allowed
    assert S._evaluate("train * ms", env, "t") == pytest.approx(2e-3)


def test_dollar_name_is_always_a_parameter():
    with pytest.raises(S.StudyError, match="unknown name 's'"):
        S._evaluate("2 * $s", {}, "t")      # was 2.0: "$s" fell back to the unit s


def test_study_with_parameter_named_like_a_unit():
    st = kc.Study(model="erreger2005_2a", blockers=["ketamine"], n_trials=2, n_channels=5, rng=1,
                  parameters={"V": "-70 mV", "s": 5},
                  protocol=[{"duration": "2 s * 0.25", "glutamate": "1 mM", "V": "$V + 0.04 V"}])
    pt = S._point(st, "main", {})
    assert pt.protocol.duration == pytest.approx(0.5)          # was 2.5 s
    assert pt.segments[0].t1 == pytest.approx(0.5)


# ---------------------------------------------------------------- 2. dt over a swept parameter
def _dt_study(**kw):
    return kc.Study(model="erreger2005_2a", blockers=["ketamine"], n_trials=2, n_channels=5, rng=1,
                    parameters={"step": "10 ms"},
                    protocol=[{"duration": "0.2 s", "glutamate": "1 mM"}], **kw)


def test_dt_changing_over_the_sweep_is_refused():
    with pytest.raises(S.StudyError, match=r"dt: '\$step' changes over the sweep.*step = 0.02"):
        _dt_study(dt="$step", sweep={"step": ["10 ms", "20 ms"]})


def test_part_dt_changing_over_the_sweep_is_refused():
    with pytest.raises(S.StudyError, match=r"\[protocols\.a\]\.dt: '\$step \* 2' changes"):
        kc.Study.from_dict({
            "model": "erreger2005_2a", "blockers": ["ketamine"], "n_trials": 2, "n_channels": 5,
            "parameters": {"step": "10 ms", "c": "1 uM"},
            "protocols": {"a": {"dt": "$step * 2", "sweep": {"c": ["1 uM", "3 uM"], "step": ["1 ms", "2 ms"]},
                                "segments": [{"duration": "0.2 s", "glutamate": "1 mM", "ketamine": "$c"}]}}})


def test_dt_from_a_parameter_that_is_not_swept_still_works():
    _dt_study(dt="$step")
    kc.Study(model="erreger2005_2a", blockers=["ketamine"], n_trials=2, n_channels=5, rng=1,
                  parameters={"step": "10 ms", "c": "1 uM"}, dt="$step / 2",
                  protocol=[{"duration": "0.2 s", "glutamate": "1 mM", "ketamine": "$c"}],
                  sweep={"c": ["1 uM", "3 uM"]})


# ---------------------------------------------------------------- 3. IC50 over a unitless axis
def test_printed_ic50_agrees_with_the_unitless_axis():
    xr = pytest.importorskip("xarray")  # noqa: F841
    pytest.importorskip("scipy")
    st = kc.Study(model="erreger2005_2a", blockers=["ketamine"], n_trials=2, n_channels=5, rng=1,
                  parameters={"c": 1}, dt="20 ms", initial="R",
                  protocol=[{"duration": "2 s", "glutamate": "1 mM", "ketamine": "$c * uM"}],
                  sweep={"c": [0.3, 1, 3]},
                  analysis={"kind": "dose_response", "concentration": "c"})
    tree = kc.run_study(st, progress=False, workers=1, figures=False)
    ds = tree["main"].to_dataset()
    ic = float(ds["ic50_det"].values)
    assert ds["ic50_det"].attrs["units"] == ds["c"].attrs.get("units", "")
    text = S.summary_table(tree)
    line = next(ln for ln in text.splitlines() if "Hill fit (master equation)" in ln)
    # was "IC50 <1000 x value> mM": the axis value (in uM) printed as if it were molar
    assert "mM" not in line and "uM" not in line and " M" not in line.split("IC50")[1].split(",")[0]
    assert f"IC50 {ic:g}" in line
