"""The drug-free control of the use_dependence and dose_response analyses removes the *drug*
(analysis option ``drug``, or the rule of ``study._drug_ligands``) and keeps every other ligand:
ketamine studied in a 1 mM Mg2+ background is compared with a control that still holds the
Mg2+ (the control used to strip every blocker ligand, so the Mg2+ block was counted as
ketamine's: dose-response 0.037 ... 0.006, IC50 0.65 nM; use_dependence at ketamine = 0 about
96 % block).  Oracles: the master equation solved directly with and without the drug."""
import json
import math

import numpy as np
import pytest

import ketacore as kc
from ketacore import study as S
from ketacore.blockers import FARADAY, GAS_CONSTANT
from ketacore.study import StudyError

pytest.importorskip("xarray")
pytest.importorskip("scipy")

V_HOLD, MG, GLU = -0.070, 1e-3, 1e-3
DOSES = [1e-7, 1e-6, 1e-5, 1e-4]


def _kd(b, V, temperature):
    """K_B(V) = k_off(V)/k_on(V) of a library blocker, from its own fields (q10 = 1)."""
    vt = b.thermal_voltage if b.thermal_voltage is not None else GAS_CONSTANT * temperature / FARADAY
    return b.k_off / b.k_on * math.exp(b.z * (b.delta_on + b.delta_off) * (V - b.v_ref) / vt)


def _audit_study(blockers=("ketamine", "mg"), **kw):
    """The audit example: ketamine dose-response in 1 mM Mg2+ (2 s at -70 mV in 1 mM glutamate)."""
    args = dict(model="erreger2005_2a", blockers=list(blockers),
                protocol=[{"duration": "2 s", "V": "-70 mV", "glutamate": "1 mM", "mg": "1 mM",
                           "ketamine": "$ketamine"}],
                parameters={"ketamine": "1 uM"}, sweep={"ketamine": ["0.1 uM", "1 uM", "10 uM", "100 uM"]},
                analysis={"kind": "dose_response", "concentration": "ketamine"},
                n_trials=2, n_channels=50, rng=7)
    args.update(kw)
    return kc.Study(**args)


def _mean_conductance(scheme, prot, dt, initial=None):
    g = np.asarray(scheme.conductance, dtype=float)
    return float(np.mean(kc.solve(scheme, prot, dt, initial=initial).occupancy @ g))


# ---------------------------------------------------------------- dose_response in Mg2+
def test_dose_response_in_mg_background_matches_the_solve_oracle():
    st = _audit_study()
    assert S._drug_ligands(st, st.parts["main"]) == ("ketamine",)
    ds = kc.run_study(st, progress=False, workers=1, figures=False)["main"].to_dataset()
    scheme = kc.blockers.block("erreger2005_2a", "ketamine", "mg")
    step = lambda c: kc.Protocol([kc.Step(2.0, V=V_HOLD, glutamate=GLU, mg=MG, ketamine=c)])
    dt = 1e-3
    ctl = _mean_conductance(scheme, step(0.0), dt)   # the control keeps the 1 mM Mg2+
    oracle = np.array([_mean_conductance(scheme, step(c), dt) / ctl for c in DOSES])
    np.testing.assert_allclose(ds["response_det"].values, oracle, rtol=1e-9)
    # the figures of the audit (it used to report 0.037, 0.035, 0.025, 0.006)
    # (0.670 before the library ketamine's balanced closed route and recalibration)
    np.testing.assert_allclose(oracle, [0.995, 0.953, 0.671, 0.170], atol=1e-3)
    assert json.loads(ds.attrs["control_removes"]) == ["ketamine"]
    # IC50 ~ K_B (1 + [Mg]/K_Mg) (~20.2 uM; the library ketamine's slow escape from shut blocked
    # states shifts the steady state by 0.4 %), not the sub-nM value of a Mg2+-free control
    T = scheme.temperature
    kb, kmg = _kd(kc.blockers.get("ketamine"), V_HOLD, T), _kd(kc.blockers.get("mg"), V_HOLD, T)
    np.testing.assert_allclose(float(ds["ic50_det"]), kb * (1 + MG / kmg), rtol=1e-2)
    np.testing.assert_allclose(float(ds["hill_det"]), 1.0, rtol=1e-3)


def test_dose_response_ic50_is_kb_times_one_plus_mg_over_kmg_without_escape():
    """With ketamine's escape route off both blockers obey p(X·b)/p(X) = [B]/K_B: response =
    (1 + Mg/K_Mg)/(1 + Mg/K_Mg + B/K_B) exactly, a Hill curve of IC50 K_B (1 + Mg/K_Mg), nH 1.
    The default drug (no concentration, no drug given) is the dose-axis ligand."""
    st = _audit_study(blockers=[{"name": "ketamine", "k_escape": 0}, "mg"], n_trials=1, n_channels=5,
                      analysis={"kind": "dose_response"})
    ds = kc.run_study(st, progress=False, workers=1, figures=False)["main"].to_dataset()
    scheme = kc.blockers.block("erreger2005_2a", kc.blockers.get("ketamine").replace(k_escape=0), "mg")
    T = scheme.temperature
    kb, kmg = _kd(kc.blockers.get("ketamine"), V_HOLD, T), _kd(kc.blockers.get("mg"), V_HOLD, T)
    m = 1 + MG / kmg
    np.testing.assert_allclose(ds["response_det"].values, [m / (m + c / kb) for c in DOSES], rtol=1e-6)
    np.testing.assert_allclose(float(ds["ic50_det"]), kb * m, rtol=1e-4)
    np.testing.assert_allclose(float(ds["hill_det"]), 1.0, rtol=1e-4)


def test_single_blocker_dose_response_unchanged():
    """One blocker, no Mg2+: the control removes that blocker, as it always did."""
    st = _audit_study(blockers=["ketamine"], n_trials=1, n_channels=5, sweep={"ketamine": ["1 uM", "10 uM"]},
                      protocol=[{"duration": "1 s", "V": "-70 mV", "glutamate": "1 mM", "ketamine": "$ketamine"}])
    ds = kc.run_study(st, progress=False, workers=1, figures=False)["main"].to_dataset()
    scheme = kc.blockers.block("erreger2005_2a", "ketamine")
    step = lambda c: kc.Protocol([kc.Step(1.0, V=V_HOLD, glutamate=GLU, ketamine=c)])
    ctl = _mean_conductance(scheme, kc.Protocol([kc.Step(1.0, V=V_HOLD, glutamate=GLU)]), 1e-3)
    np.testing.assert_allclose(ds["response_det"].values,
                               [_mean_conductance(scheme, step(c), 1e-3) / ctl for c in (1e-6, 1e-5)], rtol=1e-9)
    assert json.loads(ds.attrs["control_removes"]) == ["ketamine"]


# ---------------------------------------------------------------- use_dependence in Mg2+
N_PULSES, FREQ, WIDTH, DT = 5, 10.0, 2e-3, 1e-3


def _train_study(analysis, sweep=None, **kw):
    # (escape-only ketamine: the rest in the drug holds no drug, so the block builds up with
    # use; the library ketamine's closed route would start the drug run from the soak)
    args = dict(model="erreger2005_2a", blockers=[{"name": "ketamine", "closed_route": "none"}, "mg"],
                parameters={"ketamine": "10 uM"},
                protocol=[{"train": {"n_pulses": N_PULSES, "frequency": "10 Hz", "width": "2 ms",
                                     "V": "-70 mV", "during": {"glutamate": "1 mM"},
                                     "between": {"mg": "1 mM", "ketamine": "$ketamine"}}}],
                sweep={"ketamine": [0, "10 uM"]} if sweep is None else sweep, analysis=analysis,
                n_trials=1, n_channels=5, rng=3, dt="1 ms")
    args.update(kw)
    return kc.Study(**args)


def _pulse_charges(scheme, c):
    """Charge (sum of the conductance fraction) of each pulse period of the train in Mg2+ with
    ketamine c, from the equilibrium at rest (the between-pulse conditions)."""
    prot = kc.pulse_train(N_PULSES, FREQ, WIDTH, V=V_HOLD, during={"glutamate": GLU},
                          between={"mg": MG, **({"ketamine": c} if c else {})})
    g = np.asarray(scheme.conductance, dtype=float)
    x = kc.solve(scheme, prot, DT).occupancy @ g
    per = int(round(1 / FREQ / DT))     # the period is 100 samples: pulse k is [100 k, 100 k + 100)
    return np.array([x[k * per:(k + 1) * per].sum() for k in range(N_PULSES)])


def test_use_dependence_in_mg_background_with_drug():
    st = _train_study({"kind": "use_dependence", "drug": "ketamine"})
    ds = kc.run_study(st, progress=False, workers=1, figures=False)["main"].to_dataset()
    assert json.loads(ds.attrs["control_removes"]) == ["ketamine"]
    # ketamine = 0: the drug run is its control (Mg2+ in both): no block (it used to be ~96 %)
    at0 = ds.sel(ketamine=0.0)
    np.testing.assert_allclose(at0["block_by_pulse_det"].values, 0.0, atol=1e-12)
    assert abs(float(at0["block_last_det"])) <= 1e-12 and abs(float(at0["block_total_det"])) <= 1e-12
    # 10 uM: the block of each pulse's charge vs the same train in Mg2+ without ketamine
    scheme = kc.blockers.block("erreger2005_2a", kc.blockers.get("ketamine").replace(closed_route=None), "mg")
    q_ctl, q = _pulse_charges(scheme, 0.0), _pulse_charges(scheme, 1e-5)
    oracle = 1 - q / q_ctl
    got = ds.sel(ketamine=1e-5)
    np.testing.assert_allclose(got["block_by_pulse_det"].values, oracle, rtol=1e-9)
    np.testing.assert_allclose(float(got["block_total_det"]), 1 - q.sum() / q_ctl.sum(), rtol=1e-9)
    assert np.all(oracle > 0) and np.all(np.diff(oracle) > 0)   # use-dependent build-up


def test_use_dependence_drug_list_removes_both():
    """drug = ["ketamine", "mg"] asks for the old control (both removed): at ketamine = 0 the
    'block' is then the Mg2+ block."""
    st = _train_study({"kind": "use_dependence", "drug": ["ketamine", "mg"]}, sweep={"ketamine": [0]})
    assert S._drug_ligands(st, st.parts["main"]) == ("ketamine", "mg")
    ds = kc.run_study(st, progress=False, workers=1, figures=False)["main"].to_dataset()
    assert json.loads(ds.attrs["control_removes"]) == ["ketamine", "mg"]
    assert float(ds["block_last_det"].squeeze()) > 0.5
    # (and the study round-trips through TOML with its drug list)
    assert kc.Study.from_toml(st.to_toml()) == st


def test_single_blocker_use_dependence_default_drug():
    st = _train_study("use_dependence", blockers=["ketamine"],
                      protocol=[{"train": {"n_pulses": 3, "frequency": "10 Hz", "width": "2 ms",
                                           "during": {"glutamate": "1 mM"}, "between": {"ketamine": "$ketamine"}}}])
    assert S._drug_ligands(st, st.parts["main"]) == ("ketamine",)


# ---------------------------------------------------------------- the controls themselves
@pytest.mark.parametrize("initial, control", [("O·ket", "O"), ("O·mg", "O·mg"), ("O", "O"),
                                              ({"mg": "1 mM", "ketamine": "1 uM"}, {"mg": 1e-3})])
def test_control_keeps_the_background_blocker(initial, control):
    st = _train_study({"kind": "use_dependence", "drug": "ketamine"}, initial=initial)
    pt = S._point(st, "main", st.points("main")[1])
    assert pt.drug == ("ketamine",)
    assert S._control_initial(pt) == control
    ctl = S._control_protocol(pt)
    for s in list(ctl.steps) + [ctl.rest]:
        assert "ketamine" not in s.concentrations and s.concentrations["mg"] == MG


# ---------------------------------------------------------------- refusals at check time
def test_use_dependence_with_several_blockers_asks_for_drug():
    with pytest.raises(StudyError, match=r"\[protocol\]\.analysis\.drug: this protocol applies several "
                                         r"blockers \(\['ketamine', 'mg'\]\).*drug = \"ketamine\".*"
                                         r"keeps the others"):
        _train_study("use_dependence")


def test_a_blocker_set_only_by_initial_counts_as_applied():
    """Mg2+ only in the initial conditions table is applied too: with ketamine in the train the
    study asks which is the drug."""
    train = [{"train": {"n_pulses": 3, "frequency": "10 Hz", "width": "2 ms", "during": {"glutamate": "1 mM"},
                        "between": {"ketamine": "$ketamine"}}}]
    with pytest.raises(StudyError, match=r"analysis\.drug: this protocol applies several blockers"):
        _train_study("use_dependence", protocol=train, initial={"mg": "1 mM"})
    with pytest.raises(StudyError, match=r"analysis\.drug: this protocol applies several blockers"):
        _train_study("use_dependence", protocol=train, initial="O·mg")
    st = _train_study({"kind": "use_dependence", "drug": "ketamine"}, protocol=train, initial={"mg": "1 mM"})
    pt = S._point(st, "main", st.points("main")[1])
    assert S._control_initial(pt) == {"mg": 1e-3}


@pytest.mark.parametrize("drug, match", [
    ("glutamate", r"'glutamate' is not the ligand of a blocker of this study.*\['ketamine', 'mg'\]"),
    ("ketamin", r"'ketamin' is not the ligand of a blocker"),
    ([], r"must be a blocker ligand or a non-empty list of them"),
    (3, r"must be a blocker ligand or a non-empty list of them.*got 3"),
    (["ketamine", 1], r"must be a blocker ligand or a non-empty list of them"),
])
def test_drug_must_name_blocker_ligands(drug, match):
    with pytest.raises(StudyError, match=r"\[protocol\]\.analysis\.drug: " + match):
        _train_study({"kind": "use_dependence", "drug": drug})
    with pytest.raises(StudyError, match=r"\[protocol\]\.analysis\.drug: " + match):
        _audit_study(analysis={"kind": "dose_response", "drug": drug})


def test_drug_not_applied_by_the_protocol_is_refused():
    with pytest.raises(StudyError, match=r"analysis\.drug: 'memantine' is not applied by this protocol.*"
                                         r"\['ketamine', 'mg'\]"):
        _train_study({"kind": "use_dependence", "drug": "memantine"}, blockers=["ketamine", "mg", "memantine"])


def _dose(segment, sweep, analysis=None, parameters=None, blockers=("ketamine", "mg"), **kw):
    return kc.Study(model="erreger2005_2a", blockers=list(blockers), protocol=[{"duration": "1 s", **segment}],
                    parameters={"ketamine": "1 uM", "c": "1 uM", **(parameters or {})}, sweep=sweep,
                    analysis=analysis or {"kind": "dose_response"}, n_trials=1, n_channels=5, **kw)


def test_dose_response_drug_rule():
    drug = lambda st: S._drug_ligands(st, st.parts["main"])
    two = {"c": ["1 uM", "10 uM"]}
    # a value that uses the axis (directly, in a product, through a parameter), a train's tables
    assert drug(_dose({"mg": "1 mM", "ketamine": "$c"}, two)) == ("ketamine",)
    assert drug(_dose({"mg": "1 mM", "ketamine": "2 * $c"}, two)) == ("ketamine",)
    assert drug(_dose({"mg": "1 mM", "ketamine": "$conc"}, two, parameters={"conc": "$c * 3"})) == ("ketamine",)
    train = {"train": {"n_pulses": 2, "frequency": "10 Hz", "width": "2 ms", "during": {"glutamate": "1 mM"},
                       "between": {"mg": "1 mM", "ketamine": "$c"}}}
    st = kc.Study(model="erreger2005_2a", blockers=["ketamine", "mg"], protocol=[train], parameters={"c": "1 uM"},
                  sweep=two, analysis={"kind": "dose_response", "concentration": "c"}, n_trials=1, n_channels=5)
    assert drug(st) == ("ketamine",)
    # the axis named like the ligand; Mg2+ dose-response in a ketamine background
    assert drug(_dose({"mg": "$mg", "ketamine": "1 uM"}, {"mg": ["0.1 mM", "1 mM"]},
                      parameters={"mg": "1 mM"})) == ("mg",)
    # none uses the axis: the one blocker ligand the protocol applies
    assert drug(_dose({"glutamate": "$g", "ketamine": "1 uM"}, {"g": ["0.1 mM", "1 mM"]},
                      analysis={"kind": "dose_response", "concentration": "g"}, parameters={"g": "1 mM"},
                      blockers=["ketamine"])) == ("ketamine",)


def test_dose_response_ambiguity_is_refused():
    spec = dict(segment={"glutamate": "$g", "mg": "1 mM", "ketamine": "1 uM"}, sweep={"g": ["0.1 mM", "1 mM"]},
                parameters={"g": "1 mM"})
    with pytest.raises(StudyError, match=r"\[protocol\]\.analysis\.drug: this protocol applies several "
                                         r"blockers \(\['ketamine', 'mg'\]\) and none of them uses the "
                                         r"concentration axis 'g'.*drug = \"ketamine\""):
        _dose(**spec, analysis={"kind": "dose_response", "concentration": "g"})
    st = _dose(**spec, analysis={"kind": "dose_response", "concentration": "g", "drug": "mg"})
    assert S._drug_ligands(st, st.parts["main"]) == ("mg",)
    # no blocker applied at all: nothing to compare
    with pytest.raises(StudyError, match=r"analysis\.drug: dose_response .* applies none of the blocker "
                                         r"ligands \['ketamine'\]"):
        _dose({"glutamate": "$g"}, {"g": ["0.1 mM", "1 mM"]}, parameters={"g": "1 mM"}, blockers=["ketamine"],
              analysis={"kind": "dose_response", "concentration": "g"})


@pytest.mark.parametrize("values", [["1 uM"], [0, "1 uM"]])
def test_dose_response_needs_two_positive_concentrations(values):
    with pytest.raises(StudyError, match=r"\[sweep\]\.ketamine: dose_response fits a Hill curve .* at least 2 "
                                         r"concentrations > 0"):
        _dose({"glutamate": "1 mM", "ketamine": "$ketamine"}, {"ketamine": values}, blockers=["ketamine"])
    _dose({"glutamate": "1 mM", "ketamine": "$ketamine"}, {"ketamine": values + ["3 uM"]}, blockers=["ketamine"])


def test_a_misspelt_drug_key_is_reported_as_such():
    with pytest.raises(StudyError, match=r"analysis\.drgu: unknown key for kind = 'use_dependence'"):
        _train_study({"kind": "use_dependence", "drgu": "ketamine"})
