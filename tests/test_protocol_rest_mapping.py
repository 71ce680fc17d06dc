"""Protocol(rest=) takes a mapping of conditions as pulse_train(rest=) does (audit: it raised
"TypeError: rest must be a Step").

Oracle: the Step form -- Protocol(steps, rest=Step(d, V=..., temperature=..., ligand=...)) -- whose
duration is not used, so both forms must be equal, hash alike and start solve() from the same
rest; bad keys and values are refused with messages naming ``rest``.
"""
import pickle

import numpy as np
import pytest

import ketacore as kc

STEPS = [kc.Step(0.02, V=-0.06, glutamate=1e-3, ketamine=1e-6), kc.Step(0.03, V=-0.06)]


@pytest.mark.parametrize("cond", [
    {},
    {"V": -0.05},
    {"V": -0.05, "ketamine": 1e-6},
    {"V": -0.08, "temperature": 300.0, "ketamine": 2e-6, "mg": 1e-3},
    {"ketamine": 0.0},          # a zero concentration is the same as none
])
def test_mapping_and_step_forms_are_equal(cond):
    by_map = kc.Protocol(STEPS, rest=cond)
    by_step = kc.Protocol(STEPS, rest=kc.Step(7.0, **cond))
    assert by_map == by_step and hash(by_map) == hash(by_step)
    assert by_map.rest_conditions == by_step.rest_conditions
    assert by_map.rest.conditions_key() == kc.Step(1.0, **cond).conditions_key()
    assert pickle.loads(pickle.dumps(by_map)) == by_step
    # the mapping is not the same as no rest (the first step's conditions) unless it says so
    assert (by_map == kc.Protocol(STEPS)) == (kc.Step(1.0, **cond).conditions_key()
                                              == STEPS[0].conditions_key())
    # from_list takes it as Protocol does
    assert kc.Protocol.from_list([s.to_dict() for s in STEPS], rest=cond) == by_step


def test_mapping_rest_is_where_solve_starts():
    """solve(initial=None) starts at equilibrium under the rest: the same bytes from either form,
    and different from a rest with the drug (the rest is used)."""
    s = kc.block("erreger2005_2a", "ketamine")
    naive = kc.solve(s, kc.Protocol(STEPS, rest={"V": -0.06}), 1e-3)
    ref = kc.solve(s, kc.Protocol(STEPS, rest=kc.Step(1.0, V=-0.06)), 1e-3)
    np.testing.assert_array_equal(naive.occupancy, ref.occupancy)
    soaked = kc.solve(s, kc.Protocol(STEPS, rest={"V": -0.06, "ketamine": 1e-6}), 1e-3,
                      initial="equilibrium")   # (the same start, without the soak warning)
    blocked = [i for i, st in enumerate(s.states) if "·ket" in st]
    assert naive.occupancy[0, blocked].sum() == 0.0 < soaked.occupancy[0, blocked].sum()


def test_pulse_train_rest_is_the_same_mapping():
    """pulse_train(rest=m) and Protocol(train steps, rest=m + the train's V) are one protocol."""
    tr = kc.pulse_train(3, 10.0, 1e-3, V=-0.06, during={"glutamate": 1e-3},
                        between={"ketamine": 1e-6}, rest={"mg": 1e-3})
    again = kc.Protocol(list(tr.steps), rest={"V": -0.06, "mg": 1e-3})
    assert again == tr and hash(again) == hash(tr)


@pytest.mark.parametrize("bad, exc, msg", [
    ({"duration": 1.0}, ValueError, r"rest holds V, temperature and ligand concentrations \(M\) "
                                    r"only; 'duration' is not a condition"),
    ({"V": 5.0}, ValueError, r"^rest: V=5.0 V is outside"),
    ({"V": "x"}, TypeError, r"^rest: V must be a real number"),
    ({"temperature": -3.0}, ValueError, r"^rest: temperature=-3.0 K"),
    ({"ketamine": -1e-6}, ValueError, r"^rest: ketamine must be >= 0"),
    ({"ketamine": float("nan")}, ValueError, r"^rest: ketamine must not be NaN"),
    ({"self": 1e-6}, ValueError, r"^rest: 'self' cannot be a ligand name"),
    ({1: 1e-6}, TypeError, r"^rest: ligand names must be non-empty strings"),
    ({"": 1e-6}, TypeError, r"^rest: ligand names must be non-empty strings"),
    ([("ketamine", 1e-6)], TypeError, r"rest must be a Step or a mapping"),
    (-0.07, TypeError, r"rest must be a Step or a mapping"),
])
def test_bad_rest_is_refused_naming_rest(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        kc.Protocol(STEPS, rest=bad)


def test_pulse_train_rest_messages_are_shared():
    """pulse_train's rest goes through the same checks: V/temperature belong to pulse_train
    itself (as before), a bad value names rest."""
    with pytest.raises(ValueError, match="rest holds ligand concentrations only"):
        kc.pulse_train(3, 1.0, 1e-3, rest={"V": -0.05})
    with pytest.raises(ValueError, match=r"^rest: ketamine must be >= 0"):
        kc.pulse_train(3, 1.0, 1e-3, rest={"ketamine": -1.0})
    with pytest.raises(TypeError, match="rest must be a mapping"):
        kc.pulse_train(3, 1.0, 1e-3, rest=[("ketamine", 1e-6)])
