"""Quantities in study files are the decimal value they spell, rounded once to a double."""
import pytest

import ketacore as kc
from ketacore import study as S


@pytest.mark.parametrize("text, value", [
    ("10 uM", 1e-5), ("1 uM", 1e-6), ("1000 nM", 1e-6), ("0.3 uM", 3e-7), ("50 pS", 5e-11),
    ("-70 mV", -0.07), ("1.5 min", 90.0), ("2 kHz", 2000.0), ("1e-3 uM", 1e-9), ("0.1 s", 0.1),
    ("30 ms", 0.03), ("3 nA", 3e-9),
])
def test_quantity_is_the_nearest_double(text, value):
    # "10 uM" used to be 10 * 1e-6 = 9.999999999999999e-06, so ds.sel(ketamine=1e-5) missed it
    assert S._evaluate(text, {}, "x") == value


def test_equal_spellings_are_one_sweep_value():
    with pytest.raises(S.StudyError, match="distinct"):
        kc.Study(model="erreger2005_2a", blockers=["ketamine"], parameters={"ketamine": "1 uM"},
                 sweep={"ketamine": ["1 uM", "1000 nM"]},
                 protocol=[{"duration": "0.1 s", "glutamate": "1 mM", "ketamine": "$ketamine"}])
