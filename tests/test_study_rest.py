"""Study review fixes: the drug-free control keeps the protocol's rest, one rule for the
dose-response concentration axis, Python-API pulse trains keep their rest, the summary table
names sweep axes by their parameter."""
import textwrap
import warnings

import numpy as np
import pytest

import ketacore as kc
from ketacore import study as S

pytest.importorskip("xarray")

# a 1 Hz train of 1 ms glutamate pulses in 1 uM ketamine, no initial: the part starts at rest
# (between-pulse conditions: ketamine, no glutamate).  Ketamine without the closed route that
# balances its escape, so that the rest in the drug holds no drug (the library ketamine's rest
# in the drug is the soak equilibrium, [B]/(K_B + [B]) blocked: tests/test_rest_state.py)
TRAIN = textwrap.dedent("""
    name = "rest"
    model = "erreger2005_2a"
    blockers = [{ name = "ketamine", closed_route = "none" }]
    n_channels = 10
    n_trials = 2
    dt = "1 ms"
    rng = 5
    keep_trials = 1

    [parameters]
    glutamate = "1 mM"
    ketamine = "1 uM"

    [protocols.ud]
    analysis = { kind = "use_dependence" }
    %s

    [[protocols.ud.segments]]
    train = { n_pulses = 3, frequency = "1 Hz", width = "1 ms", V = "-70 mV", during = { glutamate = "$glutamate" }, between = { ketamine = "$ketamine" } }

    [outputs]
    figures = false
""")


def _block_by_pulse(st, part="ud"):
    t = kc.run_study(st, progress=False, workers=1)
    return t[part].to_dataset()["block_by_pulse_det"].values


# ----------------------------------------------------------------------------- 1. control rest
def test_control_keeps_the_train_rest_without_the_blocker():
    st = kc.Study.from_toml(TRAIN % "")
    pt = S._point(st, "ud", st.points("ud")[0])
    assert pt.protocol.rest is not None and pt.protocol.rest.concentrations == {"ketamine": 1e-6}
    ctl = S._control_protocol(pt)
    assert ctl.rest is not None
    assert ctl.rest_conditions == {"V": -0.070, "temperature": None}   # drug-free rest
    assert all("ketamine" not in s.concentrations for s in ctl.steps)


def test_use_dependence_default_initial_starts_control_at_rest():
    """With initial left at its default both runs start at rest (no agonist); the control used to
    start at the steady state of the first pulse (block_by_pulse ~ [-0.77, -0.07, 0.11])."""
    rest = _block_by_pulse(kc.Study.from_toml(TRAIN % ""))
    at_r = _block_by_pulse(kc.Study.from_toml(TRAIN % 'initial = "R"'))
    assert np.all(rest > 0) and np.all(np.diff(rest) > 0), rest   # block builds up with use
    np.testing.assert_allclose(rest, at_r, rtol=1e-3, atol=1e-4)


# ----------------------------------------------------------------------------- 2. dose axis
DOSE = textwrap.dedent("""
    name = "dose"
    model = "erreger2005_2a"
    blockers = [%s]
    n_channels = 10
    n_trials = 2
    dt = "10 ms"
    rng = 5
    keep_trials = 1

    [parameters]
    V = "-70 mV"
    ketamine = "1 uM"
    c = 1e-6
    t = "0.3 s"

    [protocols.dr]
    initial = "R"
    analysis = { kind = "dose_response" }

    [protocols.dr.sweep]
    V = ["-70 mV", "-30 mV"]
    %s

    [[protocols.dr.segments]]
    duration = "$t"
    V = "$V"
    glutamate = "1 mM"
    ketamine = "%s"

    [outputs]
    figures = false
""")
TABLE_BLOCKER = '{ name = "ketamine", k_escape = 0.000975395 }'


@pytest.mark.filterwarnings("ignore:.*Hill fit's IC50 is an extrapolation:RuntimeWarning")  # (small sweeps)
def test_dose_axis_table_blocker_uses_library_ligand():
    """A blocker given as a table without 'ligand' is the library blocker named by 'name': its
    ligand axis is the concentration (it used to fall back to the first axis, V)."""
    st = kc.Study.from_toml(DOSE % (TABLE_BLOCKER, 'ketamine = ["1 uM", "3 uM", "10 uM"]', "$ketamine"))
    assert S._dose_axis(st, st.parts["dr"]) == "ketamine"
    ds = kc.run_study(st, progress=False, workers=1)["dr"].to_dataset()
    assert ds.attrs["dose_axis"] == "ketamine"
    assert ds["ic50_det"].dims == ("sweep_V",) and ds["ic50_det"].attrs["units"] == "M"
    assert np.all(np.isfinite(ds["ic50_det"].values))
    # 4. the summary table names the swept voltage by its parameter, not its dimension
    text = S.summary_table(kc.run_study(st, progress=False, workers=1))
    hdr = next(line for line in text.splitlines() if "response ME" in line)
    assert hdr.split()[:2] == ["V", "ketamine"] and "sweep_V" not in text, text


@pytest.mark.filterwarnings("ignore:.*Hill fit's IC50 is an extrapolation:RuntimeWarning")  # (small sweeps)
def test_dose_axis_parameter_used_as_a_concentration():
    """A concentration axis named after a parameter (segment ketamine = "$c"): fitted over c
    (it used to fit over V: all-NaN IC50 in units V, printed as 'IC50 nan nM')."""
    st = kc.Study.from_toml(DOSE % ('"ketamine"', "c = [1e-6, 3e-6, 1e-5]", "$c"))
    assert S._dose_axis(st, st.parts["dr"]) == "c"
    t = kc.run_study(st, progress=False, workers=1)
    ds = t["dr"].to_dataset()
    assert ds.attrs["dose_axis"] == "c" and ds["c"].attrs["units"] == "M"
    assert ds["ic50_det"].dims == ("sweep_V",) and ds["ic50_det"].attrs["units"] == "M"
    assert np.all(np.isfinite(ds["ic50_det"].values))
    assert "nan" not in S.summary_table(t)


def test_dose_axis_undecidable_is_refused_at_check_time():
    """No axis is a blocker ligand or a concentration: refused when the study is checked, asking
    for analysis.concentration (it used to fit over the first axis after all the compute)."""
    spec = (DOSE % ('"ketamine"', 't = ["0.2 s", "0.3 s"]', "$ketamine")).replace(
        'V = ["-70 mV", "-30 mV"]', "V = [-0.07, -0.03]")
    with pytest.raises(S.StudyError, match=r"\[protocols.dr\].analysis.concentration: dose_response "
                                           r"cannot tell.*concentration = \\?\"V\\?\""):
        kc.Study.from_toml(spec)
    # naming it is accepted
    kc.Study.from_toml(spec.replace('analysis = { kind = "dose_response" }',
                                    'analysis = { kind = "dose_response", concentration = "t" }'))


# ----------------------------------------------------------------------------- 3. Python trains
def _python_train_study(segments):
    return kc.Study(model="erreger2005_2a", blockers=[{"name": "ketamine", "closed_route": "none"}], n_trials=2, n_channels=10,
                    rng=5, keep_trials=1, dt=1e-3, outputs={"figures": False},
                    parameters={"glutamate": 1e-3, "ketamine": 1e-6},
                    protocol=segments, analysis="use_dependence")


def test_python_pulse_train_segment_matches_toml_train():
    """kc.pulse_train as a study segment keeps its rest (it used to be flattened to steps: no rest,
    no train for use_dependence), and behaves as the TOML train."""
    train = kc.pulse_train(3, 1.0, 1e-3, V=-0.070, during={"glutamate": 1e-3},
                           between={"ketamine": 1e-6})
    for segs in (train, [train]):
        st = _python_train_study(segs)
        (seg,) = st.parts["main"].segments
        assert seg["train"]["n_pulses"] == 3 and seg["train"]["between"] == {"ketamine": 1e-6}
        pt = S._point(st, "main", st.points("main")[0])
        assert pt.protocol == train and pt.protocol.rest_conditions == train.rest_conditions
    st = _python_train_study([train])
    assert kc.Study.from_toml(st.to_toml()) == st
    np.testing.assert_allclose(_block_by_pulse(st, "main"),
                               _block_by_pulse(kc.Study.from_toml(TRAIN % "")), rtol=1e-9)


def test_python_train_then_step_and_refused_rest():
    from ketacore.protocol import Protocol, Step
    train = kc.pulse_train(2, 2.0, 1e-3, during={"glutamate": 1e-3}, between={"ketamine": 1e-6},
                           tail=0.1)
    st = _python_train_study([train + Protocol([Step(0.2, glutamate=1e-3)])])
    segs = st.parts["main"].segments
    assert "train" in segs[0] and segs[0]["train"]["tail"] == pytest.approx(0.1)
    assert segs[1] == {"duration": 0.2, "V": -0.070, "glutamate": 1e-3}
    pt = S._point(st, "main", st.points("main")[0])
    assert pt.protocol.rest_conditions == train.rest_conditions
    # a later train's rest does not matter (the part starts with the step): plain steps
    segs = S.StudyPart(segments=[Step(0.2), train]).segments
    assert len(segs) == 1 + len(train.steps) and all("duration" in s for s in segs)
    # a rest that is no pulse train cannot be written as segments: refused, not dropped
    odd = Protocol([Step(0.2, glutamate=1e-3)], rest=Step(1.0, V=-0.03))
    with pytest.raises(S.StudyError, match="segments.*rest.*initial"):
        _python_train_study([odd])
    # a rest equal to the first step's conditions loses nothing: accepted
    same = Protocol([Step(0.2, glutamate=1e-3)], rest=Step(1.0, glutamate=1e-3))
    assert _python_train_study([same]).parts["main"].segments == [
        {"duration": 0.2, "V": -0.070, "glutamate": 1e-3}]


_SOAK_STUDY = """
model = "erreger2005_2a"
blockers = ["ketamine"]
n_trials = 2
n_channels = 10
dt = "1 ms"
deterministic = true
[protocols.ud]
{initial}
analysis = {{ kind = "use_dependence", train = "stimulation" }}
[[protocols.ud.segments]]
label = "stimulation"
train = {{ n_pulses = 3, frequency = "1 Hz", width = "1 ms", V = "-70 mV", during = {{ glutamate = "1 mM" }}, between = {{ ketamine = "1 uM" }} }}
"""


def test_study_default_start_in_a_drug_soak_warns_by_key():
    """A train whose 'between' carries ketamine, with no initial: the default start is the
    rest in drug without agonist, an indefinite soak (56.8 % blocked: [B]/(K_B + [B]) at 1 uM,
    -70 mV), so every frequency starts pre-blocked.  solve/simulate warn for such a default;
    studies pass 'equilibrium' and were silent (user audit).  They now warn, naming the key and
    both spellings; the conditions table is the silent spelling of the same start, and the
    drug-free table gives a drug-naive start."""
    st = kc.Study.from_toml(_SOAK_STUDY.format(initial=""))
    with pytest.warns(UserWarning, match=r"\[protocols\.ud\]\.initial: the default start") as rec:
        r = kc.run_study(st, progress=False)
    msg = str(next(w.message for w in rec if "default start" in str(w.message)))
    assert "56.8%" in msg and "initial = {V = -0.07}" in msg and "ketamine = 1e-06}" in msg
    soaked = float(r["ud"].ds["block_last_det"].values)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = kc.run_study(kc.Study.from_toml(_SOAK_STUDY.format(
            initial='initial = { V = "-70 mV", ketamine = "1 uM" }')), progress=False)
        naive = kc.run_study(kc.Study.from_toml(_SOAK_STUDY.format(
            initial='initial = { V = "-70 mV" }')), progress=False)
    assert float(same["ud"].ds["block_last_det"].values) == pytest.approx(soaked, rel=1e-12)
    assert float(naive["ud"].ds["block_last_det"].values) < 0.5 * soaked
