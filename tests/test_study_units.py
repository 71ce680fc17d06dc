"""Dimension checking of study values: a quantity with a known, wrong dimension is refused.

``dt = "10 uM"``, ``duration = "-70 mV"``, a ligand at ``"1 ms"``, ``frequency = "100 ms"`` used
to run silently with the SI number of the wrong unit.  Each test here failed on the code before
the check (which had no dimensions at all: the refusals were not raised, and the acceptance
tests also assert the dimension the new code infers).
"""
import textwrap

import pytest

import ketacore as kc
from ketacore import study as S
from _study_fixtures import minimal_study, trapping_segments

T, V, K, M, HZ, ONE = (S._TIME, S._VOLTAGE, S._TEMPERATURE, S._CONCENTRATION, S._FREQUENCY,
                       S._DIMENSIONLESS)
TRAIN = {"n_pulses": 3, "frequency": "10 Hz", "width": "2 ms", "V": "-70 mV",
         "during": {"glutamate": "1 mM"}, "between": {"ketamine": "1 uM"}}


_study = minimal_study


def _train(**changes):
    tr = {**TRAIN, **changes}
    return [{"train": tr, "label": "t"}]


def _refused(match, **kw):
    with pytest.raises(S.StudyError, match=match) as e:
        _study(**kw)
    return str(e.value)


# ------------------------------------------------------------------ each key kind, plain quantity
TRAP = trapping_segments(block="1 s", wash="1 s")

WRONG = [
    # (study keywords, key path, value, its dimension, key, expected dimension)
    (dict(dt="10 uM"), "dt", "10 uM", "a concentration (M)", "dt", "a time (s)"),
    (dict(parts={"a": {"segments": [{"duration": "1 s"}], "dt": "-70 mV"}}),
     r"\[protocols.a\].dt", "-70 mV", "a voltage (V)", "dt", "a time (s)"),
    (dict(protocol=[{"duration": "-70 mV", "glutamate": "1 mM"}]),
     r"\[protocol\].segments\[0\].duration", "-70 mV", "a voltage (V)", "duration", "a time (s)"),
    (dict(protocol=[{"duration": "1 s", "V": "10 s"}]),
     r"\[protocol\].segments\[0\].V", "10 s", "a time (s)", "V", "a voltage (V)"),
    (dict(protocol=[{"duration": "1 s", "temperature": "30 mV"}]),
     r"\[protocol\].segments\[0\].temperature", "30 mV", "a voltage (V)", "temperature", r"a temperature \(K\)"),
    (dict(protocol=[{"duration": "1 s", "glutamate": "1 mM"}, {"duration": "1 s", "ketamine": "1 ms"}]),
     r"\[protocol\].segments\[1\].ketamine", "1 ms", "a time (s)", r"ketamine \(a ligand\)", "a concentration (M)"),
    (dict(protocol=_train(n_pulses="1 s")),
     r"\[protocol\].segments\[0\].train.n_pulses", "1 s", "a time (s)", "n_pulses", "a dimensionless number"),
    (dict(protocol=_train(frequency="100 ms")),
     r"\[protocol\].segments\[0\].train.frequency", "100 ms", "a time (s)", "frequency", "a frequency (1/s)"),
    (dict(protocol=_train(width="1 uM")), r"\[protocol\].segments\[0\].train.width", "1 uM", "a concentration (M)", "width",
     "a time (s)"),
    (dict(protocol=_train(V="1 ms")), r"\[protocol\].segments\[0\].train.V", "1 ms", "a time (s)", "V", "a voltage (V)"),
    (dict(protocol=_train(temperature="300 s")), r"\[protocol\].segments\[0\].train.temperature", "300 s", "a time (s)",
     "temperature", r"a temperature \(K\)"),
    (dict(protocol=_train(tail="1 mV")), r"\[protocol\].segments\[0\].train.tail", "1 mV", "a voltage (V)", "tail", "a time (s)"),
    (dict(protocol=_train(during={"glutamate": "1 s"})), r"\[protocol\].segments\[0\].train.during.glutamate", "1 s",
     "a time (s)", r"glutamate \(a ligand\)", "a concentration (M)"),
    (dict(protocol=_train(between={"ketamine": "1 mV"})), r"\[protocol\].segments\[0\].train.between.ketamine", "1 mV",
     "a voltage (V)", r"ketamine \(a ligand\)", "a concentration (M)"),
    (dict(protocol=TRAP, analysis={"kind": "trapping", "window": "0.5 mV"}),
     r"\[protocol\].analysis.window", "0.5 mV", "a voltage (V)", "window", "a time (s)"),
    (dict(protocol=TRAP, analysis={"kind": "trapping", "early": "1 uM"}),
     r"\[protocol\].analysis.early", "1 uM", "a concentration (M)", "early", "a time (s)"),
    (dict(protocol=TRAP, sweep={"c": ["1 uM", "2 uM"]}, parameters={"c": "1 uM"},
          analysis={"kind": "dose_response", "concentration": "c", "window": "2 Hz"}),
     r"\[protocol\].analysis.window", "2 Hz", "a frequency (1/s)", "window", "a time (s)"),
    (dict(initial={"V": "1 uM"}), r"\[protocol\].initial.V", "1 uM", "a concentration (M)", "V",
     "a voltage (V)"),
    (dict(initial={"temperature": "1 s"}), r"\[protocol\].initial.temperature", "1 s", "a time (s)",
     "temperature", r"a temperature \(K\)"),
    (dict(initial={"glutamate": "0 mV"}), r"\[protocol\].initial.glutamate", "0 mV", "a voltage (V)",
     r"glutamate \(a ligand\)", "a concentration (M)"),
    (dict(blockers=[{"name": "ketamine", "k_off": "1 uM"}]), r"blockers\[0\].k_off", "1 uM",
     "a concentration (M)", "the blocker's k_off", "a frequency (1/s)"),
    (dict(blockers=[{"name": "ketamine", "k_on": "1e5 Hz"}]), r"blockers\[0\].k_on", "1e5 Hz",
     "a frequency (1/s)", "the blocker's k_on", r"a rate constant \(1/\(M\*s\)\)"),
    (dict(blockers=[{"name": "ketamine", "v_ref": "1 s"}]), r"blockers\[0\].v_ref", "1 s",
     "a time (s)", "the blocker's v_ref", "a voltage (V)"),
    (dict(blockers=[{"name": "ketamine", "delta_on": "1 mV"}]), r"blockers\[0\].delta_on", "1 mV",
     "a voltage (V)", "the blocker's delta_on", "a dimensionless number"),
]


def _esc(text):
    return text.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*").replace("$", r"\$")


@pytest.mark.parametrize("kw, path, value, got, key, want", WRONG,
                         ids=[w[1].replace("\\", "") + "=" + w[2] for w in WRONG])
def test_each_key_refuses_a_wrong_unit(kw, path, value, got, key, want):
    want = want if "\\" in want else _esc(want)
    _refused(rf"Study: {path}: '{_esc(value)}' is {_esc(got)}; {key} takes {want}", **kw)


def test_message_names_key_value_and_both_dimensions():
    msg = _refused("duration", protocol=[{"duration": "-70 mV", "glutamate": "1 mM"}])
    assert msg == ("Study: [protocol].segments[0].duration: '-70 mV' is a voltage (V); duration "
                   "takes a time (s)")
    # a period given as the frequency: the message says how to write the inverse
    msg = _refused("frequency", protocol=_train(frequency="100 ms"))
    assert msg.endswith("if you meant the inverse, write '1 / (100 ms)'")


def test_unit_slip_is_reported_before_other_value_errors():
    # "-70 mV" as a duration is negative too: the unit is the mistake to report
    msg = _refused("duration", protocol=[{"duration": "-70 mV"}])
    assert "voltage" in msg and "> 0" not in msg


# ------------------------------------------------------------------ expressions
@pytest.mark.parametrize("seg, key, got", [
    ({"duration": "max(1 mV, 2 mV)"}, "duration", "a voltage"),
    ({"duration": "1 s", "ketamine": "1 uM * 1 s"}, "ketamine", r"a quantity in M\*s"),
    ({"duration": "1 s", "V": "round(-70 mV / 1 s)"}, "V", r"a quantity in V/s"),
    ({"duration": "abs(1 mV) + 1 V"}, "duration", "a voltage"),
    ({"duration": "(2 ms) ** 2"}, "duration", r"a quantity in s\^2"),
    ({"duration": "1 s", "temperature": "-(1 ms)"}, "temperature", "a time"),
])
def test_expression_with_wrong_dimension_is_refused(seg, key, got):
    _refused(rf"segments\[0\].{key}: '.*' is {got}.*; {key}", protocol=[seg])


@pytest.mark.parametrize("kw, match", [
    (dict(dt="1 ms / 1 s"), r"dt: '1 ms / 1 s' is a dimensionless number; dt takes a time"),
    (dict(dt="1 ms + 1 Hz"), r"combines a time \(s\) and a frequency \(1/s\) in '\+'"),
    (dict(protocol=_train(frequency="1 / (100 ms)", n_pulses="round(1 s / 10 ms) * 1 s")),
     r"train.n_pulses: .* is a time \(s\); n_pulses takes a dimensionless number"),
    (dict(protocol=_train(frequency="(10 Hz) ** -1")),
     r"train.frequency: .* is a time \(s\); frequency takes a frequency"),
])
def test_expression_in_other_keys_is_refused(kw, match):
    _refused(match, **kw)


# ------------------------------------------------------------------ through parameters
def test_wrong_unit_through_a_parameter():
    msg = _refused(r"segments\[0\].ketamine: '\$k' is a time \(s\); ketamine \(a ligand\) takes a "
                   r"concentration \(M\)", parameters={"k": "10 ms"},
                   protocol=[{"duration": "1 s", "glutamate": "1 mM", "ketamine": "$k"}])
    assert "$k is a time (s), from [parameters].k = '10 ms'" in msg
    _refused(r"^Study: dt: '\$step' is a voltage", parameters={"step": "1 mV"}, dt="$step")
    _refused(r"train.width: '\$w \* 2 ms / 1 ms' is a voltage", parameters={"w": "1 mV"},
             protocol=_train(width="$w * 2 ms / 1 ms"))
    _refused(r"train.width: '\$\{w\}' is a voltage", parameters={"w": "1 mV"},
             protocol=_train(width="${w}"))


def test_wrong_unit_through_a_chain_of_parameters():
    # b's dimension is that of its definition, itself over a
    msg = _refused(r"segments\[0\].glutamate: '\$b' is a time \(s\)",
                   parameters={"a": "2 ms", "b": "$a + 1 ms"},
                   protocol=[{"duration": "1 s", "glutamate": "$b"}])
    assert "$b is a time (s), from [parameters].b = '$a + 1 ms'" in msg
    # protocol parameters override study parameters (and their dimension)
    with pytest.raises(S.StudyError, match=r"\[protocols.p\].segments\[0\].V: '\$v' is a time"):
        kc.Study(model="erreger2005_2a", n_channels=10, n_trials=2, parameters={"v": "-70 mV"},
                 parts={"p": {"segments": [{"duration": "1 s", "V": "$v"}],
                              "parameters": {"v": "1 s"}}})


# ------------------------------------------------------------------ through sweep values
SWEPT = [{"duration": "1 s", "glutamate": "1 mM", "ketamine": "$k"}]


def test_sweep_value_of_another_dimension_than_its_parameter_is_refused():
    msg = _refused(r"\[sweep\].k\[1\]: '3 ms' is a time \(s\); the parameter k is a concentration "
                   r"\(M\)", parameters={"k": "1 uM"}, sweep={"k": ["1 uM", "3 ms"]}, protocol=SWEPT)
    assert "[parameters].k = '1 uM'" in msg


def test_sweep_values_of_a_bare_parameter_carry_their_dimension():
    # k = 0 has no dimension: the sweep values give it one, and that one is wrong for a ligand
    msg = _refused(r"segments\[0\].ketamine: '\$k' is a time \(s\); ketamine \(a ligand\) takes",
                   parameters={"k": 0}, sweep={"k": ["1 ms", "2 ms"]}, protocol=SWEPT)
    assert "the sweep values of [sweep].k" in msg
    # ... and they must agree with each other
    _refused(r"\[sweep\].k\[2\]: '2 mV' is a voltage \(V\), but '1 uM' on the same axis is a "
             r"concentration", parameters={"k": 0}, sweep={"k": ["1 uM", 2e-6, "2 mV"]},
             protocol=SWEPT)


def test_sweep_value_reaches_a_derived_parameter():
    # V swept in s; the step uses a parameter defined from it
    _refused(r"segments\[0\].V: '\$v2' is a time", parameters={"v": 0, "v2": "$v + 0"},
             sweep={"v": ["1 s", "2 s"]}, protocol=[{"duration": "1 s", "V": "$v2"}])


def test_sweep_in_a_named_protocol():
    with pytest.raises(S.StudyError, match=r"\[protocols.p.sweep\].f\[0\]: '100 ms' is a time"):
        kc.Study(model="erreger2005_2a", blockers=["ketamine"], n_channels=10, n_trials=2,
                 parameters={"f": "10 Hz"},
                 parts={"p": {"segments": _train(frequency="$f"), "sweep": {"f": ["100 ms"]}}})


# ------------------------------------------------------------------ mixed-dimension arithmetic
@pytest.mark.parametrize("text, op", [
    ("1 s + 1 uM", r"'\+'"), ("1 s - 1 mV", "'-'"), ("1 s % 1 Hz", "'%'"),
    ("min(1 s, 1 mV)", r"min\(\)"), ("max(1 s, 2 s, 1 K)", r"max\(\)"),
])
def test_mixed_dimension_addition_is_refused(text, op):
    _refused(rf"segments\[0\].duration: .* combines .* in {op}",
             protocol=[{"duration": text, "glutamate": "1 mM"}])


def test_mixed_dimension_addition_in_a_parameter_is_refused_even_if_unused():
    _refused(r"^Study: \[parameters\].x: '1 s \+ 1 mV' combines a time \(s\) and a voltage \(V\)",
             parameters={"x": "1 s + 1 mV"})
    _refused(r"\[sweep\].x\[1\]: '1 uM \+ 1 s' combines", parameters={"x": "1 uM"},
             sweep={"x": ["2 uM", "1 uM + 1 s"]})


def test_powers():
    d = {"n": (None, ""), "t": (T, "")}
    assert S._dimension("(2 ms) ** 2 / 1 ms", d, "x") == T          # a constant power scales
    assert S._dimension("(1 s * 1 s) ** 0.5", d, "x") == T
    assert S._dimension("(2 s / 1 s) ** $n * 1 s", d, "x") == T     # a dimensionless base
    assert S._dimension("$n ** 2", d, "x") is None
    with pytest.raises(S.StudyError, match="to a power that depends on a parameter"):
        S._dimension("$t ** $n", d, "x")
    with pytest.raises(S.StudyError, match=r"to the power 0.5"):
        S._dimension("(1 s) ** 0.5", d, "x")
    with pytest.raises(S.StudyError, match="exponent .* is a time"):
        S._dimension("2 ** (1 s)", d, "x")
    assert S._dimension("(1 s) ** (10 ** 400)", d, "x") is None   # (overflow: _evaluate says)
    with pytest.raises(S.StudyError, match="digits of round"):
        S._dimension("round(1 s, 1 s)", d, "x")
    _refused(r"duration: .* raises a time \(s\) to a power", parameters={"n": 2},
             protocol=[{"duration": "(1 s) ** $n"}])
    _study(protocol=[{"duration": "(2 ms) ** 2 / 1 ms", "glutamate": "1 mM"}])


# ------------------------------------------------------------------ frequency = count / time
def test_frequency_from_a_count_over_a_time():
    p = {"t_train": "1 s", "n": "round($t_train * 5 Hz)"}
    dims = _study(parameters=p)._dims(None, "[parameters]")
    assert dims["n"][0] == ONE
    assert S._dimension("$n / $t_train", dims, "x") == HZ
    st = _study(parameters=p, protocol=_train(n_pulses="$n", frequency="$n / $t_train",
                                              width="1 ms"))
    pt = S._point(st, "main", {})
    assert pt.segments[0].train == (5, pytest.approx(0.2), pytest.approx(1e-3))
    # the same with the count upside down is a time
    _refused(r"train.frequency: '\$t_train / \$n' is a time \(s\); frequency takes a frequency",
             parameters=p, protocol=_train(n_pulses="$n", frequency="$t_train / $n"))
    # and a frequency times a time is the count a train takes
    _study(parameters={"t_train": "1 s", "f": "5 Hz"},
           protocol=_train(n_pulses="round($t_train * $f)", frequency="$f"))
    _refused(r"train.n_pulses: '\$f' is a frequency", parameters={"f": "5 Hz"},
             protocol=_train(n_pulses="$f", frequency="$f"))


# ------------------------------------------------------------------ right units still work
RIGHT = [
    ("duration", T, ["30 s", "30 ms", "30 us", "30 µs", "0.5 min", "0.5 minute", "1e-3 s", "+1 s",
                     "1 s + 1 ms", "2 s / 1 s * 1 s", "max(1 s, 0.5 s)", "round(1.4 s)",
                     "abs(-1 s)", "float(1 s)", "int(2.5 s)", "(1 Hz) ** -1",
                     "(1 s * 1 s) ** 0.5", "$t", "${t}", "$t + 1 ms", "1 s - $t / 2"]),
    ("V", V, ["-70 mV", "-0.07 V", "$v", "$v + 40 mV", "-$v", "min($v, 0 V)", "1 nA / 10 nS"]),
    ("temperature", K, ["310 K", "300 K + 10 K"]),
    ("glutamate", M, ["1 mM", "10 uM", "10 µM", "10 μM", "100 nM", "1e-5 M", "$c", "$c * (2 uM / 2 uM)",
                      "$c + 1 uM", "1 uM + 1 uM"]),
]


@pytest.mark.parametrize("key, want, text", [(k, d, t) for k, d, ts in RIGHT for t in ts])
def test_right_units_in_every_spelling(key, want, text):
    p = {"t": "1 s", "v": "-70 mV", "c": "3 uM"}
    seg = {"duration": "1 s", "glutamate": "1 mM", key: text}
    st = _study(parameters=p, protocol=[seg])
    assert S._dimension(text, st._dims(None, "[parameters]"), "x") == want


@pytest.mark.parametrize("key, text, want", [
    ("frequency", "10 Hz", HZ), ("frequency", "0.01 kHz", HZ), ("frequency", "(100 ms) ** -1", HZ),
    ("frequency", "(1 s) / (1 s) / $period", HZ), ("frequency", "1 / ms / 100", HZ),
    # a plain number next to a quantity is a dimensionless factor
    ("frequency", "1 / (100 ms)", HZ), ("frequency", "1 / $period", HZ), ("width", "2 ms", T),
    ("n_pulses", "round(1 s * 3 Hz)", ONE), ("n_pulses", "3 s / 1 s", ONE),
    ("tail", "$period", T), ("V", "-70 mV", V), ("temperature", "300 K", K),
])
def test_right_units_in_a_train(key, text, want):
    p = {"period": "100 ms"}
    st = _study(parameters=p, protocol=_train(**{key: text}))
    assert S._dimension(text, st._dims(None, "[parameters]"), "x") == want


def test_right_units_elsewhere():
    _study(dt="1 ms", blockers=[{"name": "ketamine", "k_on": "5e5 / M / s", "k_off": "1 Hz", "v_ref": "0 mV",
                      "k_escape": "0.01 / s", "z": 1, "thermal_voltage": "25 mV"}],
           parts={"p": {"segments": TRAP, "dt": "10 ms", "initial": {"V": "-70 mV", "glutamate": "0 uM",
                                                                   "temperature": "300 K"},
                        "analysis": {"kind": "trapping", "window": "0.5 s", "early": "100 ms"}}})
    assert S._dimension("0.5 Hz / 1 uM", {}, "x") == S._RATE_PER_M
    assert S._dimension("5e5 / M / s", {}, "x") == S._RATE_PER_M   # (5e5: a plain factor)
    _study(blockers=[{"name": "ketamine", "k_on": "0.5 Hz / 1 uM", "k_on_closed": "0 Hz / 1 M",
                      "superficial_k_off": "0 Hz", "delta_off": "0.5 mV / 1 V"}])
    _study(parameters={"k": "1 uM"}, sweep={"k": ["1 uM", "1000 nM * 3", 5e-6]}, protocol=SWEPT)


# ------------------------------------------------------------------ bare numbers stay accepted
def test_bare_numbers_are_accepted_anywhere():
    tr = {"n_pulses": 3, "frequency": 10, "width": 2e-3, "V": -0.07, "temperature": 300, "tail": 0.01,
          "during": {"glutamate": 1e-3}, "between": {"ketamine": "1e-6"}}
    st = _study(dt=1e-3, protocol=[{"duration": 30, "V": -0.07, "glutamate": 1e-3, "ketamine": 1e-5,
                                    "temperature": "300"}, {"train": tr}],
                initial={"V": -0.07, "glutamate": 0},
                blockers=[{"name": "ketamine", "k_on": 5e5, "k_off": "1"}])
    assert st.parts["main"].segments[0]["duration"] == 30
    for v in (30, 1e-5, "30", "1e-5", -0.07, "2 * 3"):
        assert S._dimension(v, {}, "x") is None
    # Steps and Protocols (SI floats) too, through the TOML round trip; and the default study
    st = _study(protocol=[kc.Step(1.0, V=-0.07, glutamate=1e-3),
                          kc.pulse_train(3, 10.0, 2e-3, V=-0.07, during={"glutamate": 1e-3})])
    assert kc.Study.from_toml(st.to_toml()) == st
    kc.study.default_study()


def test_bare_number_parameters_combine_with_anything():
    # a parameter defined as a bare number has no dimension: it unifies in + and makes a
    # product unknown, so the old spellings keep working; a plain number written next to a
    # quantity is a dimensionless factor
    p = {"t_train": 10, "f": "1 Hz", "x": 30, "zero": 0}
    st = _study(parameters=p, dt="$x / 30000", protocol=[
        {"duration": "$x", "V": "$zero", "glutamate": "$zero", "ketamine": "$x * 1e-7"},
        {"train": {**TRAIN, "n_pulses": "round($t_train * $f)", "frequency": "$f",
                   "width": "$x / 15000", "tail": "$x * 1 ms"}}])
    dims = st._dims(None, "[parameters]")
    assert dims["x"][0] is None
    assert S._dimension("$x + 1 s", dims, "x") == T                # unifies with the time
    assert S._dimension("$x * 1 s", dims, "x") is None             # 30 may be anything
    assert S._dimension("round($f * 10)", dims, "x") == HZ         # write 10 s for a time
    assert S._dimension("$x + 0.5", dims, "x") is None


# ------------------------------------------------------------------ TOML and run_study
def test_toml_study_is_refused_with_its_file_name(tmp_path):
    f = tmp_path / "slip.toml"
    f.write_text(textwrap.dedent("""
        name = "slip"
        model = "erreger2005_2a"
        blockers = ["ketamine"]
        n_channels = 10
        n_trials = 2
        dt = "10 ms"
        rng = 1

        [parameters]
        ketamine = "10 ms"

        [[protocol.segments]]
        duration = "0.1 s"
        glutamate = "1 mM"
        ketamine = "$ketamine"
    """), encoding="utf-8")
    with pytest.raises(S.StudyError, match=r"^slip.toml: \[protocol\].segments\[0\].ketamine: "
                                           r"'\$ketamine' is a time \(s\)"):
        kc.Study.from_toml(f)
    out = tmp_path / "out"
    with pytest.raises(S.StudyError, match="ketamine"):
        kc.run_study(f, output=out, workers=1, progress=False)
    assert not out.exists()     # refused before the output folder is written


def test_run_study_refuses_a_study_edited_after_construction(tmp_path):
    st = _study(protocol=[{"duration": "0.1 s", "glutamate": "1 mM"}], dt="10 ms")
    st.parts["main"].segments[0]["glutamate"] = "1 ms"
    out = tmp_path / "out"
    with pytest.raises(S.StudyError, match=r"glutamate: '1 ms' is a time \(s\)"):
        kc.run_study(st, output=out, workers=1, progress=False)
    assert not out.exists()


# ------------------------------------------------------------------ every Blocker field
def test_every_numeric_blocker_field_has_a_dimension():
    """A blocker table in a study may set any numeric Blocker field; each must have a known
    dimension, or a unit slip in it passes unchecked (delta_escape = "0.2 mV" ran as 2e-4 when
    the closed-route and Q10 fields were added to Blocker but not here)."""
    import dataclasses

    from ketacore.blockers import Blocker
    text = {"name", "ligand", "mode", "site", "citation", "doi", "notes", "arm_scaling",
            "closed_route"}
    numeric = {f.name for f in dataclasses.fields(Blocker)} - text
    assert numeric <= set(S._BLOCKER_DIMS), sorted(numeric - set(S._BLOCKER_DIMS))


@pytest.mark.parametrize("key, value, got, want", [
    ("delta_escape", "0.2 mV", "a voltage (V)", "a dimensionless number"),
    ("delta_on_closed", "1 s", "a time (s)", "a dimensionless number"),
    ("q10_on", "3 Hz", "a frequency (1/s)", "a dimensionless number"),
    ("q10_off", "3 mM", "a concentration (M)", "a dimensionless number"),
    ("t_ref", "22 mV", "a voltage (V)", "a temperature (K)"),
])
def test_new_blocker_fields_refuse_a_wrong_unit(key, value, got, want):
    _refused(rf"blockers\[0\]\.{key}: '{_esc(value)}' is {_esc(got)}; the blocker's {key} takes "
             rf"{_esc(want)}", blockers=[{"name": "ketamine", key: value}])


def test_new_blocker_fields_accept_right_units():
    _study(blockers=[{"name": "ketamine", "t_ref": "295.15 K", "q10_on": 2, "q10_off": "3",
                      "delta_escape": 0.1, "delta_on_closed": "0.1"}])


# ------------------------------------------------------------------ plain numbers as factors
@pytest.mark.parametrize("kw, match", [
    # (each was accepted when a plain number made any product unknown)
    (dict(parameters={"c": "1 uM"}, protocol=[{"duration": "2 * $c", "glutamate": "1 mM"}]),
     r"duration: '2 \* \$c' is a concentration \(M\); duration takes a time \(s\); \$c is"),
    (dict(parameters={"c": "1 uM"}, protocol=[{"duration": "$c * 2", "glutamate": "1 mM"}]),
     r"'\$c \* 2' is a concentration"),
    (dict(protocol=[{"duration": "1 s", "V": "-70 * ms"}]), r"V: '-70 \* ms' is a time \(s\)"),
    (dict(protocol=[{"duration": "1 s", "glutamate": "2 * 1 ms"}]), r"'2 \* 1 ms' is a time"),
    (dict(parameters={"f": "10 Hz"}, protocol=_train(n_pulses="round($f * 10)")),
     r"is a frequency \(1/s\); n_pulses takes a dimensionless number.*write its unit"),
])
def test_a_plain_number_next_to_a_quantity_is_a_dimensionless_factor(kw, match):
    _refused(match, **kw)


def test_plain_number_products_and_bare_parameters_stay_unchecked():
    _study(parameters={"x": 30}, protocol=[{"duration": "$x * 1 s / 30", "glutamate": "2 * 3e-4"}])
    _study(blockers=[{"name": "ketamine", "k_on": "2e7 / M / s", "k_off": "0.5 / s"}])


@pytest.mark.parametrize("key, value, hint", [
    ("durration", "1 s", "durration (a ligand; or did you mean 'duration'?) takes a concentration"),
    ("temprature", "300 K", "temprature (a ligand; or did you mean 'temperature'?) takes a concentration"),
    ("gluta", "1 s", "gluta (a ligand) takes a concentration"),   # no near-miss: no hint
])
def test_a_misspelt_step_key_is_suggested(key, value, hint):
    """helper-98's audit: ``durration = "1 s"`` read "durration (a ligand) takes a
    concentration" -- refused, but with no word of the typo."""
    with pytest.raises(S.StudyError, match=r"segments\[0\]\." + key) as e:
        minimal_study(protocol=[{"duration": "1 s", key: value}])
    assert hint in str(e.value)


def test_a_misspelt_ligand_is_suggested():
    g = kc.models.get("erreger2005_2a")
    with pytest.raises(ValueError, match=r"sets ligand 'glutamte' \(did you mean 'glutamate'\?\), which"):
        kc.solve(g, kc.Step(0.01, glutamte=1e-3), dt=1e-3)
    with pytest.raises(ValueError, match=r"sets ligand 'nmda', which"):   # nothing near: no hint
        kc.solve(g, kc.Step(0.01, nmda=1e-3), dt=1e-3)


_NAMED_MAIN = """
name = "named"
model = "erreger2005_2a"
n_channels = 10
n_trials = 2
dt = "10 ms"
rng = 1
[parameters]
g = "1 mM"
[protocols.main]
[protocols.main.sweep]
g = ["1 mM", "0.1 mM"]
[[protocols.main.segments]]
duration = "0.05 s"
glutamate = "$g"
"""


def test_a_lone_protocols_main_keeps_its_spelling_in_messages_and_toml(tmp_path):
    """helper-98's audit: a study written with [protocols.main] reported its errors as
    [protocol]...; the spelling is now kept (messages and to_toml), and the two spellings are
    still one study for an output folder."""
    with pytest.raises(S.StudyError, match=r"\[protocols\.main\]\.segments\[0\]\.durration"):
        kc.Study.from_toml(_NAMED_MAIN.replace('duration = "0.05 s"', 'durration = "0.05 s"'))
    st = kc.Study.from_toml(_NAMED_MAIN)
    assert "[protocols.main]" in st.to_toml() and "[protocol]\n" not in st.to_toml()
    assert kc.Study.from_toml(st.to_toml()) == st
    plain = kc.Study.from_toml(_NAMED_MAIN.replace("[protocols.main.sweep]", "[sweep]")
                               .replace("[protocols.main]\n", "[protocol]\n")
                               .replace("[[protocols.main.segments]]", "[[protocol.segments]]"))
    assert plain == st and "[protocol]" in plain.to_toml()
    pytest.importorskip("xarray")
    out = tmp_path / "o"
    t1 = kc.run_study(plain, output=out, progress=False, workers=1)
    t2 = kc.run_study(st, output=out, progress=False, workers=1)      # same study: resumes
    assert (t1["main"].ds["open_probability_mc"] == t2["main"].ds["open_probability_mc"]).all()
