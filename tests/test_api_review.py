"""API consistency found in a user review (each test fails on the code before the fix)."""
import numpy as np
import pytest

import ketacore as kc
from ketacore.units import celsius

PROT = kc.Step(0.02, agonist=1e-7)


def test_solve_and_simulate_take_a_model_name_like_the_experiments():
    """kc.block and kc.experiments.* took 'ch82'; solve/simulate/simulate_events raised TypeError."""
    ch82 = kc.models.get("ch82")
    np.testing.assert_array_equal(kc.solve("ch82", PROT, dt=1e-3).occupancy,
                                  kc.solve(ch82, PROT, dt=1e-3).occupancy)
    np.testing.assert_array_equal(kc.simulate("ch82", PROT, dt=1e-3, n_channels=30, rng=4).counts,
                                  kc.simulate(ch82, PROT, dt=1e-3, n_channels=30, rng=4).counts)
    a, b = (kc.simulate_events(m, PROT, n_trials=2, rng=4) for m in ("ch82", ch82))
    for i in range(2):
        np.testing.assert_array_equal(a[i][0], b[i][0])
    for fn in (lambda m: kc.solve(m, PROT, dt=1e-3), lambda m: kc.simulate(m, PROT, dt=1e-3),
               lambda m: kc.simulate_events(m, PROT)):
        with pytest.raises(ValueError, match="unknown model 'nope'"):
            fn("nope")
        with pytest.raises(TypeError, match="Scheme or a model name"):
            fn(3)


def test_steps_add_and_repeat_like_protocols():
    """Protocol + Step and Protocol * n worked; Step + Step, Step + Protocol and Step * n
    raised TypeError."""
    a, b = kc.Step(0.1, glutamate=1e-3), kc.Step(0.2)
    assert a + b == kc.Protocol([a, b])
    assert a + kc.Protocol([b, a]) == kc.Protocol([a, b, a])
    assert a * 3 == 3 * a == kc.Protocol([a, a, a])
    with pytest.raises(TypeError):
        a + 1.0
    with pytest.raises(ValueError, match="n must be >= 1"):
        a * 0


def test_celsius_refuses_what_is_not_a_temperature():
    """celsius('22') returned 295.15 and celsius(True) 274.15."""
    assert celsius(22) == pytest.approx(295.15) and celsius(np.float64(-5.5)) == pytest.approx(267.65)
    for bad in ("22", True, None, [22]):
        with pytest.raises(TypeError, match="celsius"):
            celsius(bad)
    for bad in (float("nan"), float("inf"), -274.0, -273.15, 10**400):
        with pytest.raises(ValueError, match="celsius"):
            celsius(bad)


def test_no_rest_state_message_names_a_state_of_the_scheme():
    """The advice said initial='R' whatever the scheme's states were."""
    s = kc.Scheme(["A", "B", "C"], [("A", "B", 1.0), ("A", "C", 2.0)], conductance={"B": 1e-12})
    with pytest.raises(ValueError, match=r"initial='A'; states: \['A', 'B', 'C'\]") as e:
        kc.solve(s, kc.Step(0.1), dt=1e-2)
    assert "'R'" not in str(e.value)


def test_with_temperature_runs_everything_at_another_temperature():
    """Experiments take no temperature argument and a Scheme had no way to change its own."""
    g = kc.Scheme(["C", "O"], [("C", "O", kc.Rate(1e7, "glutamate", q10=2.5)),
                               ("O", "C", kc.Rate(200.0, q10=3.0, z_delta=0.3))],
                  conductance={"O": 5e-11}, name="q10 pair")
    h = g.with_temperature(celsius(35))
    assert h.temperature == pytest.approx(308.15) and g.temperature == pytest.approx(celsius(22))
    np.testing.assert_array_equal(h.q_matrix(glutamate=1e-3, V=-0.03),
                                  g.q_matrix(glutamate=1e-3, V=-0.03, temperature=celsius(35)))
    assert not np.array_equal(h.q_matrix(glutamate=1e-3), g.q_matrix(glutamate=1e-3))
    assert h.states == g.states and h.transitions == g.transitions and h.name == g.name
    step = kc.Step(0.05, glutamate=1e-3, V=-0.03)
    np.testing.assert_allclose(kc.solve(h, step, dt=1e-3).occupancy,
                               kc.solve(g, kc.Step(0.05, glutamate=1e-3, V=-0.03,
                                                   temperature=celsius(35)), dt=1e-3).occupancy,
                               rtol=0, atol=1e-13)
    with pytest.raises(ValueError, match="kelvin"):
        g.with_temperature(35)


def test_theory_and_fitting_take_a_model_name_too():
    """After solve/simulate took names (review), theory.* and fit_hjc still raised TypeError."""
    ch82 = kc.models.get("ch82")
    np.testing.assert_array_equal(kc.theory.equilibrium("ch82", agonist=1e-7),
                                  kc.theory.equilibrium(ch82, agonist=1e-7))
    assert kc.theory.concentration_response("ch82", "agonist").ec50 == \
        kc.theory.concentration_response(ch82, "agonist").ec50
    np.testing.assert_array_equal(kc.theory.rest_state("ch82", agonist=1e-7),
                                  kc.theory.rest_state(ch82, agonist=1e-7))
    with pytest.raises(ValueError, match="unknown model"):
        kc.theory.dwell_times("nope", "open")
    with pytest.raises(ValueError, match="unknown model"):
        kc.fitting.fit_hjc("nope", ([np.array([1e-3])], {"agonist": 1e-7}), t_res=5e-5)
