"""Study parameters are one dependency graph over the merged definitions (study, protocol, sweep
point), evaluated in dependency order whatever the order of definition.

Before: parameters were evaluated layer by layer in the order written, so a protocol's override
of a study parameter did not reach the study parameters defined from it (``t = "20 s"`` in a
protocol still gave ``n = round($t * 5 Hz) = 50``), a parameter written before the one it uses
was refused as an unknown name, a cycle was reported as an unknown name, and the dimension checks
used the same stale, order-dependent values.  Each test here fails on that code.
"""
import json

import numpy as np
import pytest

import ketacore as kc
from ketacore import study as S

TRAIN = {"n_pulses": "$n", "frequency": "5 Hz", "width": "2 ms", "during": {"glutamate": "1 mM"}}
BASE = dict(model="erreger2005_2a", n_trials=2, n_channels=5, rng=1, dt="1 ms")


def _train(**changes):
    return [{"train": {**TRAIN, **changes}, "label": "t"}]


def _pulses(st, part="main", values=None):
    """Number of pulses of the train at one sweep point (built, not simulated)."""
    return S._point(st, part, values or {}).segments[0].train[0]


# ------------------------------------------------------------------ overrides propagate
def test_protocol_override_reaches_the_study_parameters_defined_from_it():
    st = kc.Study(**BASE, parameters={"t": "1 s", "n": "round($t * 5 Hz)"},
                  parts={"a": {"segments": _train()},
                         "b": {"segments": _train(), "parameters": {"t": "2 s"}}})
    assert _pulses(st, "a") == 5
    assert _pulses(st, "b") == 10          # was 5: n kept the study's t


def test_sweep_value_reaches_every_dependent_whatever_the_order():
    # n is written before t, and t is swept in the protocol
    st = kc.Study(**BASE, parameters={"n": "round($t * 5 Hz)", "t": "1 s"},
                  protocol=_train(), sweep={"t": ["1 s", "2 s", "3 s"]})
    assert [_pulses(st, "main", p) for p in st.points("main")] == [5, 10, 15]


def test_definition_order_does_not_matter():
    a = kc.Study(**BASE, parameters={"t": "1 s", "f": "5 Hz", "n": "round($t * $f)"}, protocol=_train())
    b = kc.Study(**BASE, parameters={"n": "round($t * $f)", "f": "5 Hz", "t": "1 s"}, protocol=_train())
    assert _pulses(a) == _pulses(b) == 5
    env = b._env({}, b.parts["main"], "[parameters]")
    assert env == {"n": 5.0, "f": 5.0, "t": 1.0}
    assert list(env) == ["n", "f", "t"]     # (reported in the order of definition)


def test_study_parameter_may_use_one_each_protocol_defines():
    st = kc.Study(**BASE, parameters={"n": "round($t * 5 Hz)"},
                  parts={"a": {"segments": _train(), "parameters": {"t": "1 s"}},
                         "b": {"segments": _train(), "parameters": {"t": "2 s"},
                               "sweep": {"t": ["2 s", "4 s"]}}})
    assert _pulses(st, "a") == 5
    assert [_pulses(st, "b", p) for p in st.points("b")] == [10, 20]


def test_a_protocol_that_does_not_define_the_parameter_is_refused_naming_the_key():
    with pytest.raises(S.StudyError, match=r"^Study: \[parameters\]\.n: unknown name 't' \(\$t marks a "
                                           r"parameter\) in 'round\(\$t \* 5 Hz\)'; parameters: \['n'\]"):
        kc.Study(**BASE, parameters={"n": "round($t * 5 Hz)"},
                 parts={"a": {"segments": _train(), "parameters": {"t": "1 s"}},
                        "b": {"segments": _train()}})


def test_chain_through_protocol_and_study_parameters():
    # study: c uses b; protocol: b uses a (protocol's), a overrides the study's a
    st = kc.Study(**BASE, parameters={"c": "$b * 2", "b": "$a + 1", "a": 1},
                  parts={"p": {"segments": [{"duration": "$c"}], "parameters": {"a": 10, "b": "$a * 3"}}})
    env = st._env({}, st.parts["p"], "[protocols.p.parameters]")
    assert (env["a"], env["b"], env["c"]) == (10.0, 30.0, 60.0)
    env = st._env({"a": 2.0}, st.parts["p"], "[protocols.p.parameters]")
    assert (env["a"], env["b"], env["c"]) == (2.0, 6.0, 12.0)


def test_run_uses_the_propagated_values(tmp_path):
    """Through run_study: the results of the protocol overriding t have 10 pulses per point; the
    TOML round trip and resuming into the same folder (study.toml identity) keep working."""
    st = kc.Study(**BASE, parameters={"n": "round($t * 5 Hz)", "t": "1 s"},
                  parts={"a": {"segments": _train(), "analysis": "use_dependence", "initial": "R"},
                         "b": {"segments": _train(), "parameters": {"t": "2 s"},
                               "analysis": "use_dependence", "initial": "R"}},
                  outputs={"figures": False})
    assert kc.Study.from_toml(st.to_toml()) == st
    tree = kc.run_study(st, output=tmp_path / "o", progress=False, workers=1)
    assert json.loads(tree["a"].attrs["n_pulses"]) == [5]
    assert json.loads(tree["b"].attrs["n_pulses"]) == [10]
    assert tree["b"]["block_by_pulse_det"].shape[-1] == 10
    before = (tmp_path / "o" / "results.nc").read_bytes()
    again = kc.run_study(kc.Study.from_toml(st.to_toml()), output=tmp_path / "o", progress=False,
                         workers=1)
    assert (tmp_path / "o" / "results.nc").read_bytes() == before
    np.testing.assert_array_equal(again["b"]["sum_counts"].values, tree["b"]["sum_counts"].values)


def test_dt_over_a_sweep_follows_dependents_defined_first():
    with pytest.raises(S.StudyError, match=r"dt: '\$step' changes over the sweep"):
        kc.Study(**{**BASE, "dt": "$step"}, parameters={"step": "$base / 10", "base": "10 ms"},
                 protocol=[{"duration": "0.2 s", "glutamate": "1 mM"}], sweep={"base": ["10 ms", "20 ms"]})


# ------------------------------------------------------------------ cycles and unknown names
@pytest.mark.parametrize("params, first, chain", [
    ({"a": "$b", "b": "$a"}, "a", r"\$a -> \$b -> \$a"),
    ({"x": 1, "b": "$c + 1", "c": "$b"}, "b", r"\$b -> \$c -> \$b"),
    ({"a": "$a + 1 s"}, "a", r"\$a -> \$a"),
    ({"a": "$b * 2", "b": "$c", "c": "1 s + $a"}, "a", r"\$a -> \$b -> \$c -> \$a"),
    ({"c": "1 s + $a", "a": "$b * 2", "b": "$c"}, "c", r"\$c -> \$a -> \$b -> \$c"),
])
def test_cycle_is_refused_naming_it(params, first, chain):
    with pytest.raises(S.StudyError, match=rf"^Study: \[parameters\]\.{first}: parameters depend on "
                                           rf"each other in a cycle, {chain} \(") as e:
        kc.Study(**BASE, parameters=params, protocol=[{"duration": "1 s"}])
    msg = str(e.value)
    for k, v in params.items():      # each definition of the cycle is named with its value
        if k in chain.replace("\\", ""):
            assert f"[parameters].{k} = {v!r}" in msg


def test_protocol_parameter_using_its_own_name_builds_on_the_study_s():
    """A protocol's t = "$t * 2" is twice the study's t (the old code gave that too; the first
    version of the dependency graph refused it as a cycle), and what depends on t follows."""
    st = kc.Study(**BASE, parameters={"t": "1 s", "n": "round($t * 5 Hz)"},
                  parts={"p": {"segments": [{"duration": "$t"}],
                               "parameters": {"t": "$t * 2", "u": "${t} + t"}}})
    env = st._env({}, st.parts["p"], "x")
    assert env["t"] == 2.0 and env["n"] == 10.0 and env["u"] == 4.0
    assert st._dims(st.parts["p"], "x")["t"][0] == S._TIME
    # the hidden name of the study's definition is never listed to users
    with pytest.raises(S.StudyError, match=r"parameters: \['n', 't', 'u'\]$"):
        kc.Study(**BASE, parameters={"t": "1 s", "n": "round($t * 5 Hz)"},
                 parts={"p": {"segments": [{"duration": "$t"}],
                              "parameters": {"t": "$t * 2", "u": "$zz"}}})


def test_protocol_parameter_using_its_own_name_without_a_study_one_is_a_cycle():
    with pytest.raises(S.StudyError, match=r"^Study: \[protocols\.p\.parameters\]\.t: parameters depend "
                                           r"on each other in a cycle, \$t -> \$t .*means the "
                                           r"study's t, and the study defines none"):
        kc.Study(**BASE, parameters={"a": "1 s"},
                 parts={"p": {"segments": [{"duration": "$t"}], "parameters": {"t": "$t * 2"}}})


def test_cycle_through_a_swept_parameter_is_still_refused():
    # (the defaults, without a sweep value fixed, are evaluated too)
    with pytest.raises(S.StudyError, match=r"cycle, \$a -> \$b -> \$a"):
        kc.Study(**BASE, parameters={"a": "$b", "b": "$a"}, sweep={"a": [1, 2]},
                 protocol=[{"duration": "1 s", "glutamate": "$b"}])


def test_unknown_reference_names_the_key_and_every_parameter():
    with pytest.raises(S.StudyError, match=r"^Study: \[parameters\]\.a: unknown name 'zz' \(\$zz marks a "
                                           r"parameter\) in '\$zz \* 2'; parameters: \['a', 'b'\]$"):
        kc.Study(**BASE, parameters={"a": "$zz * 2", "b": "1 s"}, protocol=[{"duration": "1 s"}])
    with pytest.raises(S.StudyError, match=r"^Study: \[protocols\.p\.parameters\]\.b: unknown name 'zz' "
                                           r"in 'zz \+ 1'; parameters: \['a', 'b'\]$"):
        kc.Study(**BASE, parameters={"a": 1},
                 parts={"p": {"segments": [{"duration": "1 s"}], "parameters": {"b": "zz + 1"}}})


# ------------------------------------------------------------------ dimensions follow the same rule
def test_dimension_follows_a_protocol_override():
    # w = $v is a voltage with the study's v, a time with the protocol's: refused where used as V
    with pytest.raises(S.StudyError, match=r"^Study: \[protocols\.p\]\.segments\[0\]\.V: '\$w' is a time "
                                           r"\(s\); V takes a voltage \(V\); \$w is a time \(s\), from "
                                           r"\[parameters\]\.w = '\$v'"):
        kc.Study(**BASE, parameters={"v": "-70 mV", "w": "$v"},
                 parts={"p": {"segments": [{"duration": "1 s", "V": "$w"}], "parameters": {"v": "1 s"}}})


def test_valid_override_of_a_dimension_is_accepted():
    # the study's k is a time; the protocol makes it a concentration, and c = $k follows
    st = kc.Study(**BASE, blockers=["ketamine"], parameters={"k": "1 ms", "c": "$k"},
                  parts={"p": {"segments": [{"duration": "1 s", "glutamate": "1 mM", "ketamine": "$c"}],
                               "parameters": {"k": "1 uM"}}})
    assert st._part_dims("p", st.parts["p"])["c"][0] == S._CONCENTRATION
    assert S._point(st, "p", {}).protocol.steps[0].concentrations["ketamine"] == pytest.approx(1e-6)


def test_dimension_does_not_depend_on_the_order_of_definition():
    with pytest.raises(S.StudyError, match=r"segments\[0\]\.ketamine: '\$w' is a time \(s\); ketamine "
                                           r"\(a ligand\) takes a concentration"):
        kc.Study(**BASE, blockers=["ketamine"], parameters={"w": "$v", "v": "1 ms"},
                 protocol=[{"duration": "1 s", "ketamine": "$w"}])
    dims = kc.Study(**BASE, parameters={"w": "$v + 1 ms", "v": "1 ms"},
                    protocol=[{"duration": "$w"}])._dims(None, "[parameters]")
    assert dims["w"] == (S._TIME, "[parameters].w = '$v + 1 ms'")


def test_sweep_dimension_reaches_a_dependent_defined_first():
    with pytest.raises(S.StudyError, match=r"segments\[0\]\.V: '\$v2' is a time"):
        kc.Study(**BASE, parameters={"v2": "$v + 0", "v": 0}, sweep={"v": ["1 s", "2 s"]},
                 protocol=[{"duration": "1 s", "V": "$v2"}])


def test_study_dt_is_checked_with_each_protocols_parameters():
    # the study's dt uses a parameter only the protocols define: fine where it is used ...
    st = kc.Study(**{**BASE, "dt": "$step"}, parts={
        "a": {"segments": [{"duration": "0.1 s"}], "parameters": {"step": "10 ms"}},
        "b": {"segments": [{"duration": "0.1 s"}], "parameters": {"step": "20 ms"}}})
    assert [S._point(st, p, {}).dt for p in ("a", "b")] == [0.01, 0.02]
    # ... and checked even where no protocol uses it (each has its own dt)
    with pytest.raises(S.StudyError, match=r"^Study: dt: '\$step' is a voltage"):
        kc.Study(**{**BASE, "dt": "$step"}, parts={
            "a": {"segments": [{"duration": "0.1 s"}], "parameters": {"step": "1 mV"}, "dt": "1 ms"}})
    with pytest.raises(S.StudyError, match=r"^Study: dt: must be > 0"):
        kc.Study(**{**BASE, "dt": "-$step"}, parts={
            "a": {"segments": [{"duration": "0.1 s"}], "parameters": {"step": "1 ms"}, "dt": "1 ms"}})


@pytest.mark.parametrize("value, match", [
    ("$typo", r"unknown name 'typo'"), ("1 s +", r"cannot read '1 s \+'"),
    ("1 s + 1 mV", r"combines a time \(s\) and a voltage"),
])
def test_study_parameter_every_protocol_replaces_is_still_checked(value, match):
    # (never evaluated: both protocols define their own t)
    with pytest.raises(S.StudyError, match=rf"^Study: \[parameters\]\.t: .*{match}"):
        kc.Study(**BASE, parameters={"t": value}, parts={
            "a": {"segments": [{"duration": "$t"}], "parameters": {"t": "1 s"}},
            "b": {"segments": [{"duration": "$t"}], "parameters": {"t": "2 s"}}})
    # a name only a protocol defines is a parameter of the study
    kc.Study(**BASE, parameters={"t": "$u"}, parts={
        "a": {"segments": [{"duration": "$t"}], "parameters": {"t": "1 s", "u": "1 s"}}})
