"""Input validation of the model layer: Rate, Scheme, Protocol, Step builders and blockers.

Project rule: bad input gets a ValueError/TypeError naming the parameter and what is allowed,
before any C++ runs; nothing hangs, exhausts memory or silently returns garbage.  Each test here
failed (or hung, guarded by a subprocess timeout) before the corresponding fix.
"""
from __future__ import annotations

import math
import os
import resource
import subprocess
import sys

import numpy as np
import pytest

import ketacore as kc
from ketacore import blockers, protocol
from ketacore.blockers import Blocker
from ketacore.units import mM, mV


def two_state(r_open, r_close=1.0, **kw) -> kc.Scheme:
    return kc.Scheme(["C", "O"], [("C", "O", r_open), ("O", "C", r_close)], {"O": 50e-12}, **kw)


def run_isolated(code: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with a 4 GiB address-space cap and a timeout, so a
    regression shows as a failure rather than a hung or swapping test session."""
    def limit():  # pragma: no cover - runs in the child
        # (not under AddressSanitizer, whose shadow memory needs terabytes of address space)
        if not os.environ.get("KETACORE_SANITIZED"):
            resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))
    try:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=timeout, preexec_fn=limit)
    except subprocess.TimeoutExpired:
        pytest.fail(f"did not finish within {timeout} s (hang): {code}")


# --------------------------------------------------------------------------- 1. rate overflow
@pytest.mark.parametrize("make, msg", [
    (lambda: kc.rate(1e200, factor=1e200), r"10\^400.*1e\+300"),
    (lambda: kc.rate(1e308, factor=10.0), "k0=1e\\+308"),
    (lambda: kc.rate(1.0, z_delta=1e6), r"z_delta=1000000.0 is outside ±10"),
    (lambda: kc.rate(1.0, z_delta=-30.0), "z_delta"),
    (lambda: kc.rate(1.0, vk=1e-300), r"vk=1e-300 V.*>= 0.002"),
    (lambda: kc.rate(1.0, vk=-1e-3), "vk"),
    (lambda: kc.rate(1.0, q10=1e300), r"q10=1e\+300 is outside"),
    (lambda: kc.rate(1.0, q10=1e-9), "q10"),
    # each bound alone passes, the combination overflows at the corners of the accepted range
    (lambda: kc.rate(1e3, z_delta=10.0, v0=-1.0), r"V = 1 V, T = 200 K"),
    (lambda: kc.rate(1e290, "glu", z_delta=0.5), r"\[glu\] = 10 M"),
    # k0 = 0 still needs a finite exponent: the C++ core computes 0 * exp(e)
    (lambda: kc.rate(0.0, z_delta=8.0, vk=2.5e-3), "reaches"),
    # with z_delta (V - v0) < 0 and q10 < 1 the exponent is concave in T: its maximum is inside
    # the temperature range (289.8 K here), not at a corner (this rate was accepted and gave inf)
    (lambda: kc.rate(math.exp(335.5), z_delta=5, vk=-0.002, q10=1e-3, t_ref=400),
     r"V = -1 V, T = 289.8"),
])
def test_rate_must_stay_finite_over_accepted_conditions(make, msg):
    with pytest.raises(ValueError, match=msg):
        make()


def test_audit_example_scheme_is_refused_at_construction():
    with pytest.raises(ValueError, match="z_delta"):
        kc.Scheme(["C", "O"], [("C", "O", kc.rate(1e3, z_delta=30.0)),
                               ("O", "C", kc.rate(1e308, factor=10.0))])
    with pytest.raises(ValueError, match=r"transition 'O'->'C'.*k0=1e\+308"):
        kc.Scheme(["C", "O"], [("C", "O", kc.rate(1e3, z_delta=3.0)), ("O", "C", {"k0": 1e308})])
    with pytest.raises(ValueError, match=r"transitions\[0\].*z_delta"):
        kc.Scheme.from_dict({"states": [{"name": "C"}, {"name": "O"}],
                             "transitions": [{"from": "C", "to": "O", "k0": 1.0, "z_delta": 1e6}]})
    with pytest.raises(ValueError, match="k0"):
        kc.rate(1e299).scaled(1e10)


@pytest.mark.filterwarnings("ignore::ketacore.UnitsWarning")  # the extremes up to the 10 M limit, on purpose
def test_rate_bounds_accept_real_models_and_extremes_stay_finite():
    # the steepest accepted rate laws are finite at every corner of the accepted conditions
    r = kc.rate(1e6, "glu", z_delta=9.0, q10=5.0)
    g = two_state(r, kc.rate(1e3, vk=-0.01, v0=0.05))
    for V in (-1.0, 1.0):
        for T in (200.0, 400.0):
            Q = g.q_matrix(V=V, temperature=T, glu=10.0)
            assert np.isfinite(Q).all()
            assert r(V, T, glu=10.0) == pytest.approx(Q[0, 1], rel=1e-12)
    for name in kc.models.available():
        kc.models.get(name)  # every built-in model passes the bounds
    for name in blockers.available():
        blockers.get(name).on_rate()
    with pytest.raises(ValueError, match="glu"):  # beyond the accepted conditions: refused
        r(1.0, 200.0, glu=20.0)


@pytest.mark.filterwarnings("ignore::ketacore.UnitsWarning")  # the extremes up to the 10 M limit, on purpose
def test_check_rates_vectorised_over_protocol_conditions():
    g = kc.models.get("kampa2004")
    p = kc.Protocol([kc.Step(1e-3, V=-0.07, glutamate=1e-3, mg=1e-3), kc.Step(1e-3, V=0.04),
                     kc.Step(1e-3, V=-1.0, temperature=200.0, mg=10.0)])
    conds = p.compile(g)[2]
    k = g.check_rates(conds)
    assert k.shape == (conds.shape[0], len(g.transitions))
    for i, row in enumerate(conds):
        np.testing.assert_allclose(k[i], g._compiled().rates(row), rtol=1e-13, atol=0)
    np.testing.assert_allclose(g.check_rates(conds[0]), k[:1], rtol=0)  # one row
    # conditions outside the accepted ranges are named
    for col, val, msg in ((0, 2.0, r"conditions\[1\]: V=2.0"), (1, 500.0, "temperature=500"),
                          (2, -1.0, "glutamate=-1.0"), (3, np.nan, "mg must be finite")):
        bad = conds.copy()
        bad[1, col] = val
        with pytest.raises(ValueError, match=msg):
            g.check_rates(bad)
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        g.check_rates(conds[:, :3])
    with pytest.raises(TypeError, match="conditions"):
        g.check_rates([["a", "b", "c", "d"]])


def test_check_rates_and_q_matrix_name_a_non_finite_transition():
    """A rate law that slipped past construction (here forced with object.__setattr__) is
    reported by check_rates by transition and condition (q_matrix itself relies on the
    construction bounds and does not pay for the check on every call)."""
    g = two_state(kc.rate(1e3, z_delta=3.0), kc.rate(1e3))
    object.__setattr__(g.transitions[1].rate, "k0", 1e308)
    object.__setattr__(g.transitions[0].rate, "z_delta", 30.0)
    with pytest.raises(ValueError, match=r"transition 'C'->'O'.*inf.*V=0.9 V"):
        g.check_rates(g.condition(V=0.9))
    g2 = two_state(kc.rate(1e3), kc.rate(1e3))
    object.__setattr__(g2.transitions[1].rate, "factor", 1e300)
    object.__setattr__(g2.transitions[1].rate, "k0", 1e300)
    with pytest.raises(ValueError, match=r"transition 'O'->'C'"):
        g2.check_rates(g2.condition())


@pytest.mark.filterwarnings("ignore::ketacore.UnitsWarning")  # the extremes up to the 10 M limit, on purpose
def test_rate_call_validates_its_arguments():
    r = kc.rate(1.0, "glu")
    with pytest.raises(ValueError, match="temperature=0.0 K"):
        kc.rate(1.0)(temperature=0)
    with pytest.raises(ValueError, match="V must not be NaN"):
        kc.rate(1.0)(V=float("nan"))
    with pytest.raises(ValueError, match="glu must be >= 0"):
        r(glu=-5)
    with pytest.raises(ValueError, match="mV"):
        r(V=-70, glu=1e-3)
    with pytest.raises(ValueError, match="uM"):
        r(glu=100.0)
    with pytest.raises(TypeError, match="glu must be a real number"):
        r(glu="1e-3")
    assert r(glu=1e-3) == pytest.approx(1e-3, rel=1e-15)
    assert r(other=2.0) == 0.0  # other ligands: validated, ignored


# --------------------------------------------------------------------------- 2./3. protocols
def test_protocol_total_duration_must_be_finite():
    with pytest.raises(ValueError, match=r"protocol \* 2.*not finite"):
        kc.Protocol([kc.Step(1e308)]) * 2
    with pytest.raises(ValueError, match="total duration.*not finite"):
        kc.Protocol([kc.Step(1e308), kc.Step(1e308)])
    with pytest.raises(ValueError, match="total duration.*not finite"):
        kc.Protocol([kc.Step(1e308)]) + kc.Step(1e308)
    with pytest.raises(ValueError, match="not finite"):
        kc.pulse_train(2, 1e-308, 1e307)
    assert kc.Protocol([kc.Step(1e308)]).duration == 1e308


@pytest.mark.parametrize("dt, msg", [(5e-324, "subnormal"), (1e-320, "subnormal"),
                                     (1e-310, "subnormal"), (1e-300, "grid points"),
                                     (1e-17, "grid points")])
def test_n_samples_refuses_dt_it_cannot_represent(dt, msg):
    p = kc.Protocol([kc.Step(1.0)])
    with pytest.raises(ValueError, match=f"dt.*{msg}"):
        p.n_samples(dt)
    if msg == "subnormal":
        with pytest.raises(ValueError, match="subnormal"):
            p.step_index_at([0.0], dt)


def test_n_samples_limit():
    p = kc.Protocol([kc.Step(1.0)])
    assert p.n_samples(1.0 / 2**52) == 2**52 + 1
    with pytest.raises(ValueError, match="grid points"):  # normal dt: 1/dt finite, too many points
        p.n_samples(sys.float_info.min)
    with pytest.raises(ValueError, match="2\\^53|9.007e\\+15"):
        p.n_samples(1.0 / 2**54)


def test_sizes_are_refused_before_allocating():
    step = kc.Step(1e-3)
    with pytest.raises(ValueError, match=r"protocol \* 1000000000000.*MAX_STEPS"):
        kc.Protocol([step]) * 10**12
    with pytest.raises(ValueError, match="MAX_STEPS"):
        kc.pulse_train(10**10, 10, 1e-3)
    with pytest.raises(ValueError, match="MAX_STEPS"):
        kc.Protocol([step] * (protocol.MAX_STEPS + 1))
    p = kc.Protocol([step] * 1000)
    with pytest.raises(ValueError, match="MAX_STEPS"):
        kc.Protocol([p] * (protocol.MAX_STEPS // 1000 + 1))
    assert len(kc.Protocol([step]) * 1000) == 1000


def test_pulse_train_size_guard_does_not_hang():
    r = run_isolated(
        "import ketacore as kc\n"
        "try:\n"
        "    kc.pulse_train(10**8, 10, 1e-3)\n"
        "except ValueError as e:\n"
        "    print('REFUSED', e)\n")
    assert "REFUSED pulse_train(n_pulses=100000000)" in r.stdout, r.stderr[-2000:]
    assert "MAX_STEPS" in r.stdout


# --------------------------------------------------------------------------- 4. block size
def test_block_refuses_too_many_states_without_hanging():
    r = run_isolated(
        "import ketacore as kc\n"
        "from ketacore.blockers import Blocker\n"
        "g = kc.models.get('destexhe1994_sf')\n"
        "bl = [Blocker(f'b{i}', f'd{i}', 1e6, 1.0, site=f's{i}') for i in range(14)]\n"
        "try:\n"
        "    kc.block(g, *bl)\n"
        "except ValueError as e:\n"
        "    print('REFUSED', e)\n")
    assert "REFUSED" in r.stdout and "81,920 states" in r.stdout, r.stderr[-2000:]
    assert "MAX_COMPOSED_STATES" in r.stdout


def test_block_state_estimate_is_exact_and_limit_applies():
    g = kc.models.get("destexhe1994_sf")  # 5 states, 1 open
    bl = [Blocker("a", "da", 1e6, 1.0, site="A"),
          Blocker("b", "db", 1e6, 1.0, mode="sequential", site="B"),
          Blocker("c", "dc", 1e6, 1.0, mode="partial_trapping", superficial_k_on=1e5,
                  superficial_k_off=1.0, site="C")]
    assert kc.block(g, *bl).n_states == 1 * 12 + 4 * 6  # all reachable: the estimate is exact
    eight = [Blocker(f"b{i}", f"d{i}", 1e6, 1.0, site=f"s{i}") for i in range(9)]
    assert kc.block(g, *eight[:8]).n_states == 5 * 2**8 <= blockers.MAX_COMPOSED_STATES
    with pytest.raises(ValueError, match=r"2,560 states.*MAX_COMPOSED_STATES = 2,000"):
        kc.block(g, *eight)


# --------------------------------------------------------------------------- 5. Blocker
def test_blocker_k_on_zero_is_well_defined():
    b = Blocker("x", "drug", 0.0, 3.0)
    assert b.kd(-0.07) == math.inf
    assert "K_B(-70 mV, 22 C) = inf" in b.describe()
    g = kc.models.get("destexhe1994_sf")
    assert kc.block(g, b).n_states == g.n_states  # unreachable blocked states are dropped
    assert Blocker("x", "drug", 1e6, 0.0).kd(-0.07) == 0.0


def test_blocker_kd_validates_voltage_and_temperature():
    b = blockers.get("ketamine")
    with pytest.raises(ValueError, match="V=-70.0 V.*mV"):
        b.kd(-70)
    with pytest.raises(ValueError, match="temperature=-5.0 K"):
        b.kd(-0.07, temperature=-5)
    with pytest.raises(ValueError, match="temperature"):
        b.k_on_at(-0.07, temperature=0)
    with pytest.raises(ValueError, match="V must not be NaN"):
        b.k_off_at(float("nan"))
    assert b.kd(-0.07) == pytest.approx(b.k_off_at(-0.07) / b.k_on_at(-0.07), rel=1e-15)


@pytest.mark.parametrize("kw, msg", [
    (dict(z=1e6, delta_on=0.5), r"Blocker.z=1000000.0 is outside"),
    (dict(delta_off=50.0), r"Blocker.delta_off=50.0 is outside"),
    (dict(z=6.0, delta_on=2.0), r"Blocker 'x': open-channel on-rate.*z_delta"),
    (dict(thermal_voltage=1e-300, delta_on=0.5), r"thermal_voltage=1e-300 V is outside"),
    (dict(thermal_voltage=25.0, delta_on=0.5), r"thermal_voltage=25.0 V.*mV"),
    (dict(k_on=1e308, z=2.0, delta_on=0.5), r"Blocker 'x': open-channel on-rate.*1e\+300"),
    (dict(k_off=1e300, delta_off=0.5), r"off-rate"),
    (dict(k_escape=1e305), r"Blocker.k_escape=1e\+305"),
    (dict(ligand="duration"), "reserved"),
])
def test_blocker_parameters_bounded(kw, msg):
    d = dict(name="x", ligand="drug", k_on=1e6, k_off=3.0)
    d.update(kw)
    with pytest.raises(ValueError, match=msg):
        Blocker(**d)


# --------------------------------------------------------------------------- 6. ligand names
def test_single_string_ligands_is_one_ligand():
    g = two_state(kc.rate(1e6, "glu"), ligands="glu")
    assert g.ligands == ("glu",)
    d = g.to_dict()
    d["scheme"]["ligands"] = "glu"
    assert kc.Scheme.from_dict(d).ligands == ("glu",)
    assert two_state(1.0, ligands="gly").ligands == ("gly",)


@pytest.mark.parametrize("name", ["duration", "times", "t_end",  # ("V", "temperature" were)
                                  # keywords of the theory functions: a ligand 'open' could not
                                  # be given to theory.equilibrium(..., open=...)
                                  "open", "names", "initial", "states", "target", "within",
                                  "model"])
def test_step_parameter_names_are_reserved(name):
    with pytest.raises(ValueError, match=f"'{name}' is reserved"):
        two_state(1.0, ligands=[name])
    with pytest.raises(ValueError, match=f"'{name}' is reserved"):
        two_state(kc.rate(1e6, name))


# --------------------------------------------------------------------------- 7. messages
@pytest.mark.parametrize("call, exc, msg", [
    (lambda: kc.Protocol(None), TypeError, r"Protocol\(steps\): steps must be an iterable"),
    (lambda: kc.Protocol(5), TypeError, "steps must be an iterable"),
    (lambda: kc.Scheme(["C", "O"], None), TypeError, "transitions must be an iterable"),
    (lambda: two_state(1.0, ligands=5), TypeError, "ligands must be"),
    (lambda: kc.Scheme(["C", "O"], [("C", "O", 1.0), ("O", "C", 1.0)], conductance=5),
     TypeError, "conductance must be a mapping"),
    (lambda: kc.Scheme(["C", "O"], [("C", ["O"], 1.0), ("O", "C", 1.0)]), TypeError,
     "transition #0: state names must be strings, got list"),
    (lambda: kc.pulse_train(2, 10, 1e-3, during="glutamate"), TypeError, "during must be a mapping"),
    (lambda: kc.pulse_train(2, 10, 1e-3, during=5), TypeError, "during must be a mapping"),
    (lambda: kc.pulse_train(2, 10, 1e-3, during={"V": 0.0}), ValueError,
     "during holds ligand concentrations only; 'V'"),
    (lambda: kc.pulse_train(2, 10, 1e-3, between={"temperature": 300.0}), ValueError,
     "between holds ligand"),
    (lambda: kc.Protocol.from_list(["abc"]), TypeError, "protocol step 0 must be a mapping"),
    (lambda: kc.Protocol.from_list(None), TypeError, "items must be a list"),
    (lambda: kc.Scheme.from_dict({"scheme": "x"}), TypeError, r"\[scheme\] must be a table"),
    (lambda: kc.Scheme.from_dict({"states": "CO"}), TypeError, r"\[\[states\]\] must be an array"),
    (lambda: kc.Scheme.from_dict({"states": [{"name": "C"}], "transitions": 5}), TypeError,
     r"\[\[transitions\]\] must be an array"),
    (lambda: kc.Protocol.from_waveform(["a"], 1.0), TypeError, "times must be a real"),
    (lambda: kc.Protocol.from_waveform([0.0], 1.0, V="x"), TypeError, "V must be a real"),
    (lambda: kc.Protocol.from_waveform([0.0, 0.5], 1.0, V=[1j, 0]), TypeError, "V must be a real"),
    (lambda: kc.Protocol.from_waveform([0.0, 0.5], 1.0, V=None), TypeError, "V must be a real"),
    (lambda: kc.Protocol.from_waveform([0.0, 0.5], 1.0, glu=[None, 1e-3]), TypeError,
     "glu must be a real"),
    (lambda: kc.Protocol.from_waveform([0.0, 0.5], 1.0, V=[-0.07, -70]), ValueError,
     r"sample 1 \(t = 0.5 s\): V=-70.0 V"),
    (lambda: blockers.jahr_stevens(np.array(["a", "b"])), TypeError, "V must be a real"),
    (lambda: blockers.jahr_stevens(-0.06, "1 mM"), TypeError, "mg must be a real"),
    (lambda: blockers.jahr_stevens(np.zeros(3), np.zeros(2)), ValueError, "broadcastable"),
    (lambda: blockers.jahr_stevens(-0.06, 1000.0), ValueError, "mg must be"),
])
def test_errors_name_the_parameter(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


def test_valid_inputs_still_work_and_from_list_keys():
    assert blockers.jahr_stevens(np.array([-0.06, 0.0]), np.array([[1 * mM], [2 * mM]])).shape == (2, 2)
    p = kc.Protocol.from_waveform(np.array([0, 1, 2]), 3.0, V=np.array([-70, -60, -50]) * mV,
                                  glu=[0, 1e-3, 0])
    assert len(p) == 3 and p.duration == 3.0
    assert kc.Protocol.from_list(tuple(p.to_list())) == p
    with pytest.raises(TypeError, match="protocol step 0: keys must be strings"):
        kc.Protocol.from_list([{"duration": 1.0, 5: 1e-3}])
    g = kc.Scheme(["C", "O"], ((s, d, 1.0) for s, d in (("C", "O"), ("O", "C"))),
                  np.array([0, 50e-12]))
    assert g.open_states == ("O",)


# --------------------------------------------------------------------------- 8. merging
def test_compiled_merged_durations_agree_with_boundaries():
    n = 10**6
    p = kc.Protocol([kc.Step(1e-4)] * n + [kc.Step(1e-4, V=0.0)])
    durs, idx, _ = p.compile(two_state(1.0))
    assert list(idx) == [0, 1]
    assert durs[0] == math.fsum([1e-4] * n)
    assert abs(durs[0] - p.boundaries[n]) <= 2 * np.spacing(100.0)  # naive += drifted 2.2e-9 s
    assert abs(durs[0] + durs[1] - p.duration) <= 2 * np.spacing(100.0)
