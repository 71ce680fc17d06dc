"""Protocols: steps, builders, compilation, validation."""
import numpy as np
import pytest

import ketacore as kc
from ketacore.units import mM, ms, s, uM


@pytest.fixture
def scheme():
    return kc.Scheme(["C", "O"], [("C", "O", kc.rate(1e6, "glutamate")), ("O", "C", 100.0)],
                     {"O": 50e-12}, ligands=["glutamate", "ketamine"])


def test_compile_dedups_and_merges(scheme):
    p = kc.Protocol([kc.Step(1 * s, glutamate=1 * mM), kc.Step(2 * s, glutamate=1 * mM),
                     kc.Step(1 * s), kc.Step(0.5 * s, glutamate=1 * mM, ketamine=10 * uM),
                     kc.Step(1 * s, glutamate=1 * mM)])
    durs, idx, conds = p.compile(scheme)
    np.testing.assert_allclose(durs, [3, 1, 0.5, 1])
    np.testing.assert_array_equal(idx, [0, 1, 2, 0])
    assert conds.shape == (3, 4)
    np.testing.assert_allclose(conds[2], [-0.07, scheme.temperature, 1e-3, 1e-5])
    assert p.duration == pytest.approx(5.5)


def test_pulse_train(scheme):
    p = kc.pulse_train(5, 20.0, 1 * ms, during={"glutamate": 1 * mM}, between={"ketamine": 1 * uM},
                       tail=0.2)
    assert len(p) == 11
    assert p.duration == pytest.approx(5 * 0.05 + 0.2)
    st = p.steps
    assert st[0].concentrations == {"glutamate": 1e-3, "ketamine": 1e-6}
    assert st[1].concentrations == {"ketamine": 1e-6}
    assert st[1].duration == pytest.approx(0.049)
    with pytest.raises(ValueError, match="period"):
        kc.pulse_train(3, 1000.0, 2 * ms)
    with pytest.raises(ValueError, match="n_pulses"):
        kc.pulse_train(0, 10.0, 1 * ms)


def test_waveform_zero_order_hold():
    t = np.array([0.0, 0.1, 0.25])
    p = kc.Protocol.from_waveform(t, 0.4, V=[-0.07, -0.03, 0.02], glutamate=[0, 1e-3, 0])
    assert [st.duration for st in p] == pytest.approx([0.1, 0.15, 0.15])
    assert [st.V for st in p] == [-0.07, -0.03, 0.02]
    with pytest.raises(ValueError, match="strictly increasing"):
        kc.Protocol.from_waveform([0, 0.2, 0.1], 1.0)
    with pytest.raises(ValueError, match="shape"):
        kc.Protocol.from_waveform([0, 0.1], 1.0, V=[0.0, 0.0, 0.0])


def test_arithmetic():
    a = kc.Protocol([kc.Step(1.0)])
    b = kc.Step(2.0, glutamate=1e-3)
    assert (a + b).duration == 3.0
    assert (a * 3).duration == 3.0 and len(3 * a) == 3
    assert a + b == kc.Protocol([kc.Step(1.0), b])


@pytest.mark.parametrize("kw, msg", [
    (dict(duration=0.0), "> 0"), (dict(duration=-1.0), "> 0"), (dict(duration=float("nan")), "NaN"),
    (dict(duration=1.0, V=-70), "mV"), (dict(duration=1.0, glutamate=-1e-3), ">= 0"),
    (dict(duration=1.0, temperature=25), "kelvin"), (dict(duration="1"), "real number"),
])
def test_step_validation(kw, msg):
    with pytest.raises((ValueError, TypeError), match=msg):
        kc.Step(**kw)


def test_empty_protocol_and_unknown_ligand(scheme):
    with pytest.raises(ValueError, match="at least one step"):
        kc.Protocol([])
    p = kc.Protocol([kc.Step(1.0, memantine=1e-6)])
    with pytest.raises(ValueError, match="memantine"):
        p.compile(scheme)
    with pytest.raises(TypeError):
        kc.Protocol([1.0])


def test_round_trip_list():
    p = kc.pulse_train(2, 10.0, 1e-3, during={"glutamate": 1e-3}, temperature=300.0)
    # the rest conditions (a train's between-pulse step) are part of the protocol, not of the list
    assert kc.Protocol.from_list(p.to_list(), rest=p.rest) == p
    assert kc.Protocol.from_list(p.to_list()) != p
    with pytest.raises(ValueError, match="step 0"):
        kc.Protocol.from_list([{"duration": -1}])


def test_grid_size_and_voltage_on_the_grid():
    """n_samples counts t_k = k dt in [0, duration] (a last boundary within 1e-7 dt of a grid point
    is on it); voltage_at gives the step in force at each time, a boundary belonging to the step
    that starts there."""
    p = kc.Protocol([kc.Step(0.01, V=-0.07), kc.Step(0.02, V=-0.04)])
    assert p.n_samples(1e-3) == 31
    assert p.n_samples(0.007) == 5          # 0, 7, 14, 21, 28 ms
    assert p.n_samples(0.03 / 7) == 8       # 0.03 / (0.03/7) is 7 up to rounding: on the grid
    assert p.n_samples(1) == 1 and p.n_samples(0.05) == 1
    t = np.array([0.0, 0.005, 0.01 - 1e-12, 0.01, 0.02, 0.03])
    np.testing.assert_array_equal(p.voltage_at(t, 1e-3), [-0.07, -0.07, -0.04, -0.04, -0.04, -0.04])
    np.testing.assert_array_equal(p.voltage_at(np.arange(31) * 1e-3, 1e-3)[9:12], [-0.07, -0.04, -0.04])


@pytest.mark.parametrize("dt, exc", [(0.0, ValueError), (-1e-3, ValueError), (float("nan"), ValueError),
                                     (True, TypeError), ("1e-3", TypeError)])
def test_grid_helpers_reject_bad_dt(dt, exc):
    p = kc.Protocol([kc.Step(0.01)])
    with pytest.raises(exc, match="dt"):
        p.n_samples(dt)
    with pytest.raises(exc, match="dt"):
        p.voltage_at([0.0], dt)
    with pytest.raises(exc, match="dt"):
        p.step_index_at([0.0], dt)


@pytest.mark.parametrize("times, exc", [(["a"], TypeError), ([np.nan], ValueError), ([True], TypeError)])
def test_grid_helpers_reject_bad_times(times, exc):
    with pytest.raises(exc, match="times"):
        kc.Protocol([kc.Step(0.01)]).voltage_at(times, 1e-3)
