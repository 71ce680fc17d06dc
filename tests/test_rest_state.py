"""Rest states with trapping blockers: the long-run limit from a start
(theory.equilibrium(initial=)), theory.rest_state, a protocol's rest conditions (pulse trains
start from rest, not from the steady state of their first pulse), and the experiments that start
from rest with a trapping background blocker (Mg2+)."""
import math
import pickle

import numpy as np
import pytest
import scipy.linalg as sl

import ketacore as kc
from ketacore import experiments as E
from ketacore import theory
from ketacore.units import mM, ms, mV, uM

V70 = -70 * mV


@pytest.fixture(scope="module")
def ket():
    # escape-only trapping ketamine (no route onto shut states): at rest without agonist its
    # trapped states are a second absorbing class, the case rest_state resolves
    b = kc.blockers.get("ketamine").replace(closed_route=None)
    return kc.block(kc.models.get("erreger2005_2a"), b)


@pytest.fixture(scope="module")
def ket_balanced():
    # the library ketamine: its escape is balanced by a closed route (detailed balance), so
    # the equilibrium without agonist is unique and partly blocked (an indefinite soak)
    return kc.block(kc.models.get("erreger2005_2a"), "ketamine")


def _blocked(scheme):
    return np.array(["·" in s for s in scheme.states])


@pytest.fixture(scope="module")
def mg():
    # the library Mg2+ traps (Clarke & Johnson 2008) and has no escape route
    return kc.block(kc.models.get("erreger2005_2a"), "mg")


def test_limit_from_a_start_matches_expm_when_trapping_splits_the_chain(mg):
    # channels equilibrated in agonist + Mg2+, then both removed: the open-blocked ones either
    # unblock (and rest unblocked) or close with the ion trapped, so the chain has two closed
    # classes and the long-run state depends on the start.  Oracle: p0 expm(Q t) at a t long
    # past every relaxation (checked converged between t and 2t).
    p0 = theory.equilibrium(mg, V=V70, glutamate=1 * mM, mg=1 * mM)
    with pytest.raises(theory.NoUniqueEquilibrium, match="2 closed"):
        theory.equilibrium(mg, V=V70)
    got = theory.equilibrium(mg, V=V70, initial=p0)
    Q = mg.q_matrix(V=V70)
    ref = p0 @ sl.expm(Q * 1e3)
    assert np.abs(ref - p0 @ sl.expm(Q * 2e3)).max() < 1e-13
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    trapped = got[_blocked(mg)].sum()
    assert 0.05 < trapped < p0[_blocked(mg)].sum()  # some of the block stays trapped
    assert got.sum() == pytest.approx(1.0, abs=1e-14)


def test_limit_from_a_start_is_the_equilibrium_when_unique(ket):
    cond = dict(V=V70, glutamate=1 * mM, ketamine=1 * uM)
    start = np.zeros(ket.n_states)
    start[ket.index("R")] = 1.0
    np.testing.assert_allclose(theory.equilibrium(ket, initial=start, **cond),
                               theory.equilibrium(ket, **cond), rtol=0, atol=1e-14)
    np.testing.assert_allclose(theory.equilibrium(ket, initial="R", **cond),
                               theory.equilibrium(ket, **cond), rtol=0, atol=1e-14)


def test_limit_from_a_start_raw_q_and_bad_starts():
    # raw Q: A <-> B, C absorbing fed from B, D absorbing fed from A
    Q = np.array([[-3.0, 1.0, 0.0, 2.0], [4.0, -5.0, 1.0, 0.0], [0, 0, 0, 0], [0, 0, 0, 0]])
    got = theory.equilibrium(Q, initial=[1, 0, 0, 0], names=["A", "B", "C", "D"])
    # absorption from A: h_A(C) = (1/3) h_B(C), h_B(C) = 4/5 h_A(C) + 1/5  =>  h_A(C) = 1/11
    np.testing.assert_allclose(got, [0, 0, 1 / 11, 10 / 11], atol=1e-15)
    np.testing.assert_allclose(theory.equilibrium(Q, initial="B", names="ABCD"),
                               [0, 0, 3 / 11, 8 / 11], atol=1e-15)
    with pytest.raises(ValueError, match="initial"):
        theory.equilibrium(Q, initial=[0.5, 0, 0, 0])
    with pytest.raises(ValueError, match="initial"):
        theory.equilibrium(Q, initial=[1, 0, 0])
    with pytest.raises(TypeError, match="initial"):
        theory.equilibrium(Q, initial=[1j, 0, 0, 0])


def test_rest_state_is_drug_free_rest_with_a_trapping_drug_and_no_agonist(ket, mg):
    g = kc.models.get("erreger2005_2a")
    free = theory.equilibrium(g, V=V70)
    for s, drug in ((mg, {"mg": 1 * mM}), (ket, {"ketamine": 1 * uM})):
        p = theory.rest_state(s, V=V70, **drug)
        np.testing.assert_array_equal(p[_blocked(s)], 0.0)
        np.testing.assert_allclose(p[s.indices(g.states)], free, rtol=0, atol=1e-15)
    # a unique equilibrium is returned as is (same bytes as theory.equilibrium)
    cond = dict(V=V70, glutamate=1 * mM, ketamine=1 * uM)
    assert theory.rest_state(ket, **cond).tobytes() == theory.equilibrium(ket, **cond).tobytes()
    with pytest.raises(TypeError, match="Scheme"):
        theory.rest_state(ket.q_matrix(V=V70))


def test_rest_in_a_drug_with_a_balanced_closed_route_is_the_soak_equilibrium(ket_balanced):
    """With the escape balanced by a closed route the rest state in drug is the unique
    equilibrium: every unliganded channel blocked with odds [B]/K_B(V) (detailed balance), i.e.
    an indefinite soak in the drug (~7 min to settle at 1 uM, -70 mV)."""
    s, b = ket_balanced, kc.blockers.get("ketamine")
    for c in (0.3 * uM, 1 * uM, 10 * uM):
        p = theory.rest_state(s, V=V70, ketamine=c)
        assert p.tobytes() == theory.equilibrium(s, V=V70, ketamine=c).tobytes()
        kb = b.kd(V70)
        assert p[_blocked(s)].sum() == pytest.approx(c / (kb + c), rel=1e-9)
        assert p[s.index("R·ket")] / p[s.index("R")] == pytest.approx(c / kb, rel=1e-9)


def test_rest_state_refuses_a_reducible_scheme_without_blocked_states():
    s = kc.Scheme(["A", "B", "C"], [("A", "B", 1.0), ("A", "C", 2.0)], {"B": 1e-12})
    with pytest.raises(theory.NoUniqueEquilibrium):
        theory.rest_state(s)


# ------------------------------------------------------------------ protocol rest conditions
def test_pulse_train_rest_is_the_between_pulse_conditions():
    tr = kc.pulse_train(3, 10.0, 1 * ms, V=-60 * mV, during={"glutamate": 1 * mM},
                        between={"ketamine": 1 * uM})
    assert tr.rest_conditions == {"V": -60 * mV, "temperature": None, "ketamine": 1 * uM}
    assert tr.steps[0].concentrations["glutamate"] == 1 * mM
    # kept by concatenation (a leading protocol's), repetition and pickling; part of equality
    both = tr + kc.Step(0.1, glutamate=1 * mM)
    assert both.rest == tr.rest and (tr * 2).rest == tr.rest
    assert kc.Protocol([kc.Step(0.1), tr]).rest is None
    assert pickle.loads(pickle.dumps(tr)) == tr
    plain = kc.Protocol(list(tr.steps))
    assert plain != tr and plain.rest is None
    assert plain.rest_conditions["glutamate"] == 1 * mM  # first step's conditions
    # a conditions mapping is a rest too, as for pulse_train (helper-104's audit)
    assert kc.Protocol(list(tr.steps), rest={"glutamate": 0.0}) == kc.Protocol(list(tr.steps),
                                                                               rest=kc.Step(1.0))
    with pytest.raises(TypeError, match="rest"):
        kc.Protocol(list(tr.steps), rest=0.0)


def test_solve_and_simulate_start_a_train_at_rest(ket):
    # before: a train started at the steady state of its first (agonist) pulse, i.e.
    # desensitised and already blocked; now at rest in the bath drug: no channel holds ketamine
    tr = kc.pulse_train(10, 1.0, 1 * ms, during={"glutamate": 1 * mM},
                        between={"ketamine": 1 * uM})
    r = kc.solve(ket, tr, 1 * ms)
    np.testing.assert_array_equal(r.occupancy[0], theory.rest_state(ket, V=tr.steps[0].V,
                                                                    ketamine=1 * uM))
    assert r.occupancy[0][_blocked(ket)].sum() == 0.0
    # use dependence, not facilitation: the 10th response is smaller than the first
    po = r.open_probability
    first, last = po[: 1000].max(), po[9000:].max()
    assert last < 0.8 * first
    # the stochastic engine starts from the same state: every channel in R at t = 0
    mc = kc.simulate(ket, tr, 1 * ms, n_channels=50, rng=3, n_threads=1)
    assert mc.counts[0, 0, ket.index("R")] == 50


def test_a_train_in_a_drug_with_a_closed_route_starts_from_the_soak(ket_balanced):
    # the library ketamine reaches shut channels slowly (balanced closed route): a train whose
    # rest has the drug starts from the soak equilibrium, and from drug-free rest when the
    # start is given so (initial= the drug-free rest conditions)
    s = ket_balanced
    tr = kc.pulse_train(10, 1.0, 1 * ms, during={"glutamate": 1 * mM},
                        between={"ketamine": 1 * uM})
    with pytest.warns(UserWarning, match="indefinite soak"):
        r = kc.solve(s, tr, 1 * ms)
    np.testing.assert_array_equal(r.occupancy[0], theory.rest_state(s, V=tr.steps[0].V,
                                                                  ketamine=1 * uM))
    kb = kc.blockers.get("ketamine").kd(tr.steps[0].V)
    assert r.occupancy[0][_blocked(s)].sum() == pytest.approx(1 * uM / (kb + 1 * uM), rel=1e-9)
    naive = kc.solve(s, tr, 1 * ms, initial={"V": tr.steps[0].V})
    assert naive.occupancy[0][_blocked(s)].sum() == 0.0


# ------------------------------------------------------------------ experiments from rest
@pytest.mark.filterwarnings("ignore:(ic50|trapping).*(extrapolat|no peak within):RuntimeWarning")  # a fast protocol: the extrapolated-IC50 / unpeaked-response warnings are expected here
def test_use_dependence_and_peak_ic50_with_background_mg():
    # both start from drug-free rest; with trapping Mg2+ in the bath that rest had two
    # absorbing classes and raised ValueError("Q has no unique equilibrium")
    kw = dict(also=["mg"], background={"mg": 1 * mM})
    with_mg = E.use_dependence("erreger2005_2a", "ketamine", 1 * uM, [0, 1], **kw)
    without = E.use_dependence("erreger2005_2a", "ketamine", 1 * uM, [0, 1])
    # a quiet cell (0 Hz): only the library ketamine's closed route (the one balancing its
    # escape) blocks it, R -> R·ket at k_on_closed(V)[B], back at k_escape -- Mg2+ at rest
    # holds no channel (drug-free rest; it traps but has no route onto shut states)
    b = kc.blockers.get("ketamine")
    on, off = b.closed_on_rate()(V70, ketamine=1 * uM), b.escape_rate()(V70)
    quiet = on / (on + off) * -np.expm1(-(on + off) * 60.0)       # the 60 s drug phase
    assert with_mg.blocked[0] == pytest.approx(quiet, rel=1e-9)
    assert without.blocked[0] == pytest.approx(quiet, rel=1e-9)
    # Mg2+ occupies the pore at -70 mV and slows ketamine's use-dependent block
    assert 0 < with_mg.blocked[1] < 0.5 * without.blocked[1]
    r = E.ic50("erreger2005_2a", "ketamine", [1 * uM, 10 * uM, 100 * uM], kind="peak",
               duration=0.1, **kw)
    assert np.all(np.diff(r.fraction) < 0)


def test_rest_duration_does_not_count_and_errors_name_the_cause():
    a = kc.Protocol([kc.Step(1.0)], rest=kc.Step(5.0, ketamine=1 * uM))
    b = kc.Protocol([kc.Step(1.0)], rest=kc.Step(0.1, ketamine=1 * uM))
    assert a == b and hash(a) == hash(b)
    assert a != kc.Protocol([kc.Step(1.0)], rest=kc.Step(5.0, ketamine=2 * uM))
    # an unknown ligand in the rest conditions: the message is about the ligand, without the
    # advice for trapped (non-unique) rest states
    g = kc.models.get("erreger2005_2a")
    with pytest.raises(ValueError) as e:
        kc.solve(g, kc.Protocol([kc.Step(0.01, glutamate=1 * mM)], rest=kc.Step(1.0, foo=1e-6)), 1e-3)
    assert "foo" in str(e.value) and "initial='R'" not in str(e.value)


def test_refused_calls_do_not_advance_a_generator():
    g = kc.models.get("erreger2005_2a")
    rng = np.random.default_rng(5)
    before = rng.bit_generator.state
    with pytest.raises(ValueError):
        kc.simulate(g, kc.Step(1.0, glutamate=1 * mM), 1e-3, n_channels=10, n_trials=10**9,
                    method="population", rng=rng)
    with pytest.raises(ValueError):
        kc.simulate_events(g, kc.Step(1.0, glutamate=1 * mM), n_trials=2, max_events=1, rng=rng)
    assert rng.bit_generator.state == before
    kc.simulate(g, kc.Step(0.01, glutamate=1 * mM), 1e-3, n_channels=10, rng=rng)
    assert rng.bit_generator.state != before


def test_the_default_start_warns_of_a_soak_and_equilibrium_keeps_it_quietly(ket_balanced, ket):
    """A first step that applies a drug with a route onto shut channels, no agonist: the
    default start is the indefinite soak (57 % blocked for ketamine 1 uM), which a
    pre-application protocol rarely means -- warned, naming the drug-naive spelling;
    initial='equilibrium' is the same start without the warning; no warning with agonist
    activity at rest, or for an escape-only blocker (whose rest holds no drug)."""
    import warnings
    prot = kc.Protocol([kc.Step(10.0, ketamine=1 * uM), kc.Step(1.0, glutamate=1 * mM, ketamine=1 * uM)])
    with pytest.warns(UserWarning, match=r"56\.8% of the channels hold ketamine.*initial=\{'V': -0\.07\}"):
        r = kc.solve(ket_balanced, prot, 0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q = kc.solve(ket_balanced, prot, 0.01, initial="equilibrium")
        kc.solve(ket_balanced, kc.Step(1.0, glutamate=1 * mM, ketamine=1 * uM), 0.01)
        kc.solve(ket, prot, 0.01)
        naive = kc.solve(ket_balanced, prot, 0.01, initial={"V": V70})
    assert r.occupancy.tobytes() == q.occupancy.tobytes()
    assert naive.occupancy[0][_blocked(ket_balanced)].sum() == 0.0


def test_the_soak_warning_names_the_drug_beside_a_background_blocker():
    s = kc.block(kc.models.get("erreger2005_2a"), "ketamine", "mg")
    prot = kc.Protocol([kc.Step(1.0, ketamine=1 * uM, mg=1 * mM)])
    with pytest.warns(UserWarning, match=r"of the channels hold ketamine") as rec:
        r = kc.solve(s, prot, 0.01)
    assert not any("hold mg" in str(w.message) for w in rec)    # Mg2+ has no closed route
    blocked = [i for i, st in enumerate(s.states) if "ket" in st.split("·")[1:]]
    assert r.occupancy[0][blocked].sum() > 0.01


def _pulse_warnings(fn, *a, **kw):
    import warnings
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = fn(*a, **kw)
    return out, [w for w in rec if "default start is the equilibrium under the first step" in str(w.message)]


def test_a_short_pulse_from_the_default_start_warns_at_the_user_s_line():
    """helper-100's audit: Protocol([Step(1 ms, glutamate=1 mM), Step(500 ms)]) starts at the
    equilibrium IN glutamate (partly desensitised: Po(0) = peak = 0.2195 on destexhe1994_sf,
    no rise), a plausible-looking trace.  Now warned, pointing at the caller's line."""
    g = kc.models.get("destexhe1994_sf")
    pulse = kc.Protocol([kc.Step(1 * ms, glutamate=1 * mM), kc.Step(500 * ms)])
    r, w = _pulse_warnings(kc.solve, g, pulse, dt=1 * ms)
    assert len(w) == 1 and w[0].filename == __file__
    msg = str(w[0].message)
    assert "glutamate = 0.001 M" in msg and "after 0.001 s" in msg and "rest=kc.Step" in msg
    assert r.open_probability[0] == pytest.approx(r.open_probability.max())   # the trap: no rise
    _, w = _pulse_warnings(kc.simulate, g, pulse, dt=1 * ms, n_channels=10, rng=1)
    assert len(w) == 1 and w[0].filename == __file__
    # the remedies, and the cases that are meant: no warning
    fine = [
        (kc.solve, (g, kc.Protocol([kc.Step(1 * ms, glutamate=1 * mM), kc.Step(500 * ms)],
                                   rest=kc.Step(1 * ms))), {}),                      # rest given
        (kc.solve, (g, pulse), {"initial": "C0"}),                                   # initial given
        (kc.solve, (g, pulse), {"initial": "equilibrium"}),                          # meant
        (kc.solve, (g, kc.Step(1.0, glutamate=1 * mM)), {}),                         # stationary
        (kc.solve, (g, kc.Protocol([kc.Step(100.0, glutamate=1 * mM), kc.Step(0.5)])), {}),  # relaxed
        (kc.solve, (g, kc.Protocol([kc.Step(1 * ms, glutamate=1 * mM, V=-70 * mV),
                                    kc.Step(0.1, glutamate=1 * mM, V=40 * mV)])), {}),  # a V jump
        (kc.solve, (g, kc.pulse_train(5, 10.0, 1 * ms, during={"glutamate": 1 * mM})), {}),       # train: rest
        # a blocker's washout with the agonist kept: recovery from a steady-state block is meant
        # to start there (helper-102's review: ketamine and Mg2+ washouts warned)
        (kc.solve, (kc.block(kc.models.get("erreger2005_2a"), "ketamine"),
                    kc.Protocol([kc.Step(1.0, glutamate=1 * mM, ketamine=10 * uM),
                                 kc.Step(5.0, glutamate=1 * mM)])), {}),
        (kc.solve, (kc.block(g, "mg"), kc.Protocol([kc.Step(1 * ms, glutamate=1 * mM, mg=1 * mM),
                                                    kc.Step(0.1, glutamate=1 * mM)])), {}),
    ]
    for fn, a, kw in fine:
        _, w = _pulse_warnings(fn, *a, dt=1 * ms, **kw)
        assert w == [], (a[1], kw)
    # the slowest relaxation decides: destexhe1994_sf's is 1/(smallest |eigenvalue|) in glutamate
    lam = np.sort(np.abs(np.linalg.eigvals(g.q_matrix(glutamate=1e-3)).real))
    tau = 1.0 / lam[lam > 1e-9][0]
    for dur, warns in ((0.5 * tau, True), (2.0 * tau, False)):
        _, w = _pulse_warnings(kc.solve, g, kc.Protocol([kc.Step(dur, glutamate=1 * mM), kc.Step(0.1)]),
                               dt=1 * ms)
        assert bool(w) == warns, (dur, tau)


def test_a_finely_sampled_pulse_is_recognised_as_a_pulse():
    """A from_waveform transient starting in glutamate is one pulse over many samples (the
    seventeenth session's note: only the first two samples were compared, so a sampled pulse
    or an exponentially decaying concentration started in the pulse without a warning).  The
    drop time is where the concentration first falls below half."""
    g = kc.models.get("destexhe1994_sf")
    t = np.arange(0.0, 0.5, 1e-5)
    decay = kc.Protocol.from_waveform(t, 0.5, glutamate=1 * mM * np.exp(-t / (1 * ms)))
    _, w = _pulse_warnings(kc.solve, g, decay, dt=0.1 * ms)
    assert len(w) == 1 and w[0].filename == __file__
    half = math.log(2.0) * 1 * ms                   # first sample below 0.5 mM: ceil(ln2 / 10 us)
    assert f"after {math.ceil(half / 1e-5) * 1e-5:g} s" in str(w[0].message)
    square = kc.Protocol.from_waveform(t, 0.5, glutamate=np.where(t < 1 * ms, 1 * mM, 0.0))
    _, w = _pulse_warnings(kc.solve, g, square, dt=0.1 * ms)
    assert len(w) == 1 and "after 0.001 s" in str(w[0].message)
    # the same pulse as Steps; a slow drift that never halves, a sinusoid (it rises before it
    # falls: not a pulse started at its peak), a pulse that starts at zero, a voltage step in
    # glutamate before the wash: no warning
    steps = kc.Protocol([kc.Step(0.5 * ms, glutamate=1 * mM), kc.Step(0.5 * ms, glutamate=0.8 * mM),
                         kc.Step(100 * ms)])
    assert len(_pulse_warnings(kc.solve, g, steps, dt=0.1 * ms)[1]) == 1
    fine = [kc.Protocol.from_waveform(t, 0.5, glutamate=1 * mM * (1 - 0.4 * t / 0.5)),
            kc.Protocol.from_waveform(t, 0.5, glutamate=1 * mM * (1 + np.sin(t * 2000.0))),  # rises first
            kc.Protocol([kc.Step(0.5 * ms, glutamate=1 * mM), kc.Step(0.5 * ms, glutamate=2 * mM),
                         kc.Step(100 * ms)]),
            kc.Protocol.from_waveform(t, 0.5, glutamate=np.where((t > 1 * ms) & (t < 2 * ms), 1 * mM, 0.0)),
            kc.Protocol.from_waveform(t, 0.5, glutamate=np.where(t < 1 * ms, 1 * mM, 0.0),
                                      V=np.where(t < 0.5 * ms, -70 * mV, 40 * mV)),
            kc.Protocol([kc.Step(0.5 * ms, glutamate=1 * mM), kc.Step(0.5 * ms, glutamate=1 * mM, V=40 * mV),
                         kc.Step(100 * ms, V=40 * mV)])]
    for p in fine:
        assert _pulse_warnings(kc.solve, g, p, dt=0.1 * ms)[1] == [], p


def test_a_pulse_whose_wash_also_changes_the_voltage_still_warns():
    """The session-18 review: a voltage change at the drop's own sample was read as a voltage
    protocol (no warning), which the two-step rule had warned about."""
    g = kc.models.get("destexhe1994_sf")
    p = kc.Protocol([kc.Step(1 * ms, glutamate=1 * mM, V=-70 * mV), kc.Step(100 * ms, V=40 * mV)])
    assert len(_pulse_warnings(kc.solve, g, p, dt=0.1 * ms)[1]) == 1
    t = np.arange(0.0, 0.1, 1e-5)
    w = kc.Protocol.from_waveform(t, 0.1, glutamate=np.where(t < 1 * ms, 1 * mM, 0.0),
                                  V=np.where(t < 1 * ms, -70 * mV, 40 * mV))
    assert len(_pulse_warnings(kc.solve, g, w, dt=0.1 * ms)[1]) == 1
