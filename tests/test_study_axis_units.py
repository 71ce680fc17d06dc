"""The ``units`` of a sweep coordinate come from the dimension machinery (``Study._part_dims``
and the one table of what each key takes, ``Study._dimension_sites``), not from reading the
text of the values.

Before, the unit was guessed from a plain quantity string among the sweep values or the
parameter default, else from a segment key that used the parameter alone: sweep values written
as expressions, a parameter used only by an analysis window or a blocker table, and a swept
pulse count got no unit (``"1"`` with a "no unit" comment).  Each test here fails on that code.
"""
import pytest

import ketacore as kc
from ketacore import study as S

TRAIN = {"n_pulses": 3, "frequency": "10 Hz", "width": "2 ms", "during": {"glutamate": "1 mM"}}
BASE = dict(model="erreger2005_2a", blockers=["ketamine"], n_channels=5, n_trials=1, rng=1,
            dt="10 ms", initial="R")


def _unit(st, axis, part="main"):
    return S._axis_unit(st, st.parts[part], axis)


def test_sweep_values_written_as_expressions():
    st = kc.Study(**BASE, parameters={"d": 0}, sweep={"d": ["100 ms + 100 ms", "200 ms + 100 ms"]},
                  protocol=[{"duration": "$d * 1", "glutamate": "1 mM"}])
    assert _unit(st, "d") == "s"
    st = kc.Study(**BASE, parameters={"c": "max(1 uM, 2 uM)"}, sweep={"c": [1e-6, 2e-6]},
                  protocol=[{"duration": "0.1 s", "glutamate": "1 mM", "ketamine": "$c * 1"}])
    assert _unit(st, "c") == "M"


def test_parameter_used_by_an_analysis_window():
    from _study_fixtures import trapping_segments
    st = kc.Study(**BASE, parameters={"e": 0.1}, sweep={"e": [0.1, 0.2]},
                  protocol=trapping_segments(), analysis={"kind": "trapping", "early": "$e"})
    assert _unit(st, "e") == "s"


def test_parameter_used_by_a_blocker_table():
    st = kc.Study(**{**BASE, "blockers": [{"name": "ketamine", "k_off": "$koff"}]},
                  parameters={"koff": 1}, sweep={"koff": [1, 2]},
                  protocol=[{"duration": "0.1 s", "glutamate": "1 mM", "ketamine": "1 uM"}])
    assert _unit(st, "koff") == "Hz"


def test_swept_pulse_count_is_dimensionless_not_unknown():
    st = kc.Study(**BASE, parameters={"n": 3}, sweep={"n": [2, 3]},
                  protocol=[{"train": {**TRAIN, "n_pulses": "$n"}}], analysis="use_dependence")
    assert _unit(st, "n") == "1"
    pytest.importorskip("xarray")
    ds = kc.run_study(st, progress=False, workers=1)["main"].to_dataset()
    assert ds["n"].attrs["units"] == "1" and "comment" not in ds["n"].attrs


def test_documented_cases_keep_their_units():
    # a frequency is written Hz; a bare parameter takes the dimension of the key using it alone;
    # one of unknown dimension has no unit.  (Uses as two dimensions, "glutamate": "$x" and
    # "V": "$x", left it unknown until they were refused: tests/test_study_leftovers.py.)
    st = kc.Study(**BASE, parameters={"f": "5 Hz", "v": 0, "c": 1, "x": 0},
                  sweep={"f": ["5 Hz", "10 Hz"], "v": [-0.07, -0.03], "c": [1, 2], "x": [0, 1e-6]},
                  protocol=[{"train": {**TRAIN, "frequency": "$f", "V": "$v"}},
                            {"duration": "0.1 s", "ketamine": "$c * uM", "glutamate": "$x * 1"}])
    assert [_unit(st, a) for a in ("f", "v", "c", "x")] == ["Hz", "V", "", ""]
    with pytest.raises(kc.StudyError, match=r"bare-number parameter x .* as a concentration"):
        kc.Study(**BASE, parameters={"x": 0}, sweep={"x": [0, 1e-6]},
                 protocol=[{"duration": "0.1 s", "glutamate": "$x", "V": "$x"}])
