"""A trapping protocol whose 'wash' applies the drug: the study warns once, before running.

Drug in the wash binds during it (memantine's superficial site binds shut channels), so the
trapped fractions count it too: memantine 10 uM there read trapped_occupancy 100.1 % (the
carried item "memantine with drug in the wash reads 100 % trapped")."""
import textwrap
import warnings

import pytest

import ketacore as kc

pytest.importorskip("xarray")


def _study(wash_drug: str) -> kc.Study:
    return kc.Study.from_toml(textwrap.dedent(f"""
        name = "wd"
        model = "erreger2005_2a"
        blockers = ["memantine"]
        n_channels = 50
        n_trials = 2
        dt = "20 ms"
        rng = 1
        [parameters]
        mem = "10 uM"
        [protocol]
        initial = "R"
        analysis = {{ kind = "trapping", window = "1 s", early = "0.1 s" }}
        [protocol.sweep]
        mem = ["3 uM", "10 uM"]
        [[protocol.segments]]
        label = "control"
        duration = "2 s"
        V = "-70 mV"
        glutamate = "1 mM"
        [[protocol.segments]]
        label = "block"
        duration = "5 s"
        V = "-70 mV"
        glutamate = "1 mM"
        memantine = "$mem"
        [[protocol.segments]]
        label = "wash"
        duration = "10 s"
        V = "-70 mV"
        {wash_drug}
        [[protocol.segments]]
        label = "recovery"
        duration = "2 s"
        V = "-70 mV"
        glutamate = "1 mM"
    """))


def test_drug_in_the_wash_is_warned_about_once():
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ds = kc.run_study(_study('memantine = "$mem"'), progress=False, workers=1)["main"].ds
    hits = [w for w in rec if "the 'wash' segment applies the drug (memantine)" in str(w.message)]
    assert len(hits) == 1 and hits[0].category is RuntimeWarning   # one per protocol, not per point
    # what it warns about: the drug binding during the wash counts as trapped
    assert (ds["trapped_occupancy_det"].values > 0.99).all()


def test_a_drug_free_wash_is_not_warned_about():
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ds = kc.run_study(_study(""), progress=False, workers=1)["main"].ds
    assert not [w for w in rec if "wash" in str(w.message)]
    assert (ds["trapped_occupancy_det"].values < 0.9).all()
