"""``ketacore.UnitsWarning``: a concentration above 100 mM is accepted (up to the 10 M limit)
with a warning naming the parameter and the units advice, because such a value almost always
means µM or mM written as a bare molar number (``ketamine=10``).  ketacore's own evaluations
at concentrations it chose (IC50 root searches up to the limit, per-molar rates) do not warn."""
import threading
import warnings

import numpy as np
import pytest

import ketacore as kc
from ketacore import _validate as V_
from ketacore import experiments as E
from ketacore.units import mM, mV, s, uM


def _units_warnings(fn, *a, **kw):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = fn(*a, **kw)
    return out, [w for w in rec if issubclass(w.category, kc.UnitsWarning)]


def test_units_warning_is_a_public_user_warning():
    assert issubclass(kc.UnitsWarning, UserWarning)
    assert "UnitsWarning" in kc.__all__


@pytest.mark.parametrize("value, warns", [(10 * uM, False), (10 * mM, False), (0.1, False),
                                          (0.1000001, True), (1.0, True), (10.0, True)])
def test_step_warns_above_100_mM_only(value, warns):
    st, w = _units_warnings(kc.Step, 1 * s, ketamine=value)
    assert st.concentrations["ketamine"] == value
    assert len(w) == int(warns)
    if warns:
        msg = str(w[0].message)
        assert f"ketamine={value:g} M" in msg and "ketacore.units.uM" in msg
        assert w[0].filename == __file__  # points at the caller's line, not at ketacore


def test_above_the_limit_is_still_an_error():
    with pytest.raises(ValueError, match="exceeds 10.0 M"):
        kc.Step(1 * s, ketamine=11.0)


def test_numpy_scalars_and_ints_warn_too():
    for v in (np.float64(2.0), 2, np.int64(3)):
        _, w = _units_warnings(kc.Step, 1 * s, glutamate=v)
        assert len(w) == 1


def test_q_matrix_and_rate_warn():
    g = kc.models.get("erreger2005_2a")
    _, w = _units_warnings(g.q_matrix, glutamate=1.0)
    assert len(w) == 1 and "glutamate=1 M" in str(w[0].message)
    _, w = _units_warnings(g.q_matrix, glutamate=1 * mM)
    assert not w


def test_a_waveform_warns_once_per_column():
    t = np.arange(100) * 1e-3
    c = np.linspace(0, 2.0, 100)
    p, w = _units_warnings(kc.Protocol.from_waveform, t, t_end=0.1, V=-70 * mV, glutamate=c)
    assert len(w) == 1 and "glutamate sample (largest)=2 M" in str(w[0].message)
    assert len(p.steps) == 100


def test_filtering_it_silences_it():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=kc.UnitsWarning)
        kc.Step(1 * s, mg=1.0)


def test_quiet_units_is_per_thread_and_restored():
    seen = []

    def other():
        _, w = _units_warnings(kc.Step, 1 * s, mg=1.0)
        seen.append(len(w))
    with V_.quiet_units():
        _, w = _units_warnings(kc.Step, 1 * s, mg=1.0)
        assert not w
        th = threading.Thread(target=other)
        th.start()
        th.join()
    assert seen == [1]
    _, w = _units_warnings(kc.Step, 1 * s, mg=1.0)
    assert len(w) == 1


def test_internal_searches_up_to_the_limit_do_not_warn():
    # the Mg2+ IC50 at +40 mV is ~0.1-1 M: found by a root search up to 10 M, without warnings
    r, w = _units_warnings(E.woodhull, "erreger2005_2a", "mg", [30 * mV, 40 * mV])
    assert not w
    assert r.ic50.max() > 0.1
    cr, w = _units_warnings(kc.theory.concentration_response, "erreger2005_2a", "glutamate",
                            V=-70 * mV)
    assert not w


def test_explicit_implausible_experiment_concentrations_warn_once():
    _, w = _units_warnings(E.ic50, "erreger2005_2a", "mg", [1e-4, 1e-3, 1e-2, 0.5], V=40 * mV)
    assert len(w) == 1 and "concentrations (largest)=0.5 M" in str(w[0].message)


def test_a_study_warns_by_key_with_the_toml_spelling(tmp_path):
    text = """
name = "t"
model = "erreger2005_2a"
blockers = ["ketamine"]
n_channels = 10
n_trials = 1
dt = "10 ms"
rng = 1
[parameters]
ketamine = 1
[[protocols.p.segments]]
duration = "1 s"
glutamate = "1 mM"
ketamine = "$ketamine"
"""
    study, w = _units_warnings(_study_from_file, tmp_path, text)
    assert len(w) >= 1
    msg = str(w[0].message)
    # (where it is used, and where the number is set: the seventeenth session's note)
    assert ("[protocols.p].segments[0].ketamine (written '$ketamine', set by "
            "[parameters].ketamine) = 1 M") in msg and '"1 uM"' in msg
    assert "ketacore.units" not in msg        # TOML advice, not Python
    _, w = _units_warnings(kc.run_study, study, progress=False, figures=False)
    assert not w                              # warned once, when the study was read


def _study_from_file(tmp_path, text):
    f = tmp_path / "study.toml"
    f.write_text(text)
    return kc.Study.from_toml(f)


def test_a_study_temperature_in_celsius_gets_the_toml_spelling(tmp_path):
    """``temperature = 35`` in a study file is refused with advice a TOML file can use (the
    audit: only the Python ``celsius(35)`` was offered)."""
    text = """
name = "t"
model = "erreger2005_2a"
n_channels = 10
n_trials = 1
dt = "10 ms"
[[protocols.p.segments]]
duration = "1 s"
glutamate = "1 mM"
temperature = 35
"""
    with pytest.raises((ValueError, kc.StudyError), match=r'segments\[0\].*35 °C is 308.15 K.*"308.15 K" in a study file'):
        _study_from_file(tmp_path, text)


def test_every_sweep_value_and_initial_table_warns_by_key(tmp_path):
    """The review: only the first sweep point was checked (the run is quiet), so
    ``ketamine = [0, 1, 10]`` (molar) ran at 1 M and 10 M without a word, and so did
    ``initial = {glutamate = 1}``."""
    text = """
name = "t"
model = "erreger2005_2a"
blockers = ["ketamine"]
n_channels = 5
n_trials = 1
dt = "10 ms"
rng = 1
[parameters]
ketamine = 0
[protocols.p]
initial = { glutamate = 0.5 }
[protocols.p.sweep]
ketamine = [0, 1e-6, 2]
[[protocols.p.segments]]
duration = "20 ms"
glutamate = "1 mM"
ketamine = "$ketamine"
"""
    st, w0 = _units_warnings(_study_from_file, tmp_path, text)
    _, w1 = _units_warnings(kc.run_study, st, progress=False, figures=False)
    msgs = [str(x.message) for x in w0 + w1]
    assert any("[protocols.p].initial.glutamate = 0.5 M" in m for m in msgs), msgs
    assert any("[protocols.p].segments[0].ketamine (written '$ketamine', set by "
               "[protocols.p.sweep].ketamine[2]) = 2 M" in m for m in msgs), msgs
    assert not any("1e-06" in m for m in msgs)
    assert all("ketacore.units" not in m for m in msgs)          # study spelling only


def test_jahr_stevens_warns_once_for_the_largest_mg():
    _, w = _units_warnings(kc.blockers.jahr_stevens, -70 * mV, np.array([1 * mM, 0.5, 2.0]))
    assert len(w) == 1 and "mg (largest)=2 M" in str(w[0].message)
    _, w = _units_warnings(kc.blockers.jahr_stevens, -70 * mV, 1 * mM)
    assert not w


def test_concentration_response_warns_for_the_user_s_values_only():
    _, w = _units_warnings(kc.theory.concentration_response, "erreger2005_2a", "glutamate",
                           [1e-6, 1e-3, 0.5], V=-70 * mV)
    assert len(w) == 1 and "concentrations (largest)=0.5 M" in str(w[0].message)


def _two_state():
    return kc.Scheme(["C", "O"], [("C", "O", kc.rate(1e7, "L")), ("O", "C", 100.0)],
                     conductance={"O": 1e-11})


@pytest.mark.parametrize("run", ["solve", "simulate", "initial_step"])
def test_one_mistake_warns_once_not_again_in_the_run(run):
    """The Step warns when it is made; the run's default start (equilibrium under the Step's
    conditions) and an ``initial=Step`` evaluate the same, already-warned values and stay
    quiet (helper-97's audit: one ``L=10`` warned twice)."""
    sch = _two_state()
    st, w = _units_warnings(kc.Step, 0.01 * s, L=10)
    assert len(w) == 1 and "L=10 M" in str(w[0].message)
    assert "NMDA" not in str(w[0].message)  # worded for any ligand-gated channel
    if run == "solve":
        _, w = _units_warnings(kc.solve, sch, st, dt=1e-3)
    elif run == "simulate":
        _, w = _units_warnings(kc.simulate, sch, st, dt=1e-3, n_channels=10, rng=1)
    else:
        _, w = _units_warnings(kc.solve, sch, kc.Step(0.01 * s), dt=1e-3, initial=st)
    assert w == []


def test_an_initial_conditions_mapping_still_warns():
    """A conditions mapping was never checked, so its implausible value warns (once)."""
    _, w = _units_warnings(kc.solve, _two_state(), kc.Step(0.01 * s), dt=1e-3, initial={"L": 10.0})
    assert len(w) == 1 and "L=10 M" in str(w[0].message)
