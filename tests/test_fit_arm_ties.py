"""Fits on a ``kc.block`` composition: the blocked arms copy the gating (helper-103's audit:
freeing ``O->C`` left its copy ``O·d->C·d`` at the start value, and ``O->C`` converged 22 % off
the truth to make up for it, silently).  ``kc.fitting.arm_ties`` gives the constraints that
keep the copies on their originals; an untied copy next to a free original warns; with MR on,
the ties and MR combine (MR sets free rates; cycles of tied copies are balanced by what they
follow, and refused when they are not).  All deterministic (noise-free data, exact solves)."""
import warnings

import numpy as np
import pytest

import ketacore as kc
from ketacore import fitting
from ketacore.fitting import _Params

CO = kc.Scheme(["C", "O"], [("C", "O", kc.rate(1e6, "glu")), ("O", "C", 100.0)],
               conductance={"O": 50e-12}, name="co")
DRUG = kc.blockers.Blocker(name="d", ligand="drug", k_on=1e6, k_off=1.0, z=1, delta_on=0.4,
                           delta_off=0.4)


def _data(scheme):
    prot = kc.Protocol([kc.Step(2.0, glu=1e-4, drug=10e-6), kc.Step(8.0, glu=1e-4)])
    t = np.arange(0.0, 10.0, 0.01)
    r = kc.solve(scheme, prot, dt=0.01, initial={"V": -0.07, "glu": 1e-4})
    return [{"protocol": prot, "time": t, "y": 1000 * np.asarray(r.current)[:t.size],
             "initial": {"V": -0.07, "glu": 1e-4}}]


def _user_warnings(fn, *a, **kw):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = fn(*a, **kw)
    return out, [w for w in rec if "blocked-arm copies" in str(w.message)]


def test_arm_ties_lists_each_copy_with_its_ratio():
    s = kc.block(CO, DRUG)
    assert fitting.arm_ties(s) == {"C·d->O·d": ("C->O", 1.0), "O·d->C·d": ("O->C", 1.0)}
    s3 = kc.block(CO, DRUG.replace(closing_factor=3.0))
    assert fitting.arm_ties(s3)["O·d->C·d"] == ("O->C", pytest.approx(3.0, rel=1e-15))
    assert fitting.arm_ties(CO) == {} and fitting.arm_ties("ch82") == {}
    with pytest.raises(TypeError, match="scheme must be"):
        fitting.arm_ties(42)


def test_an_untied_copy_warns_and_the_ties_recover_the_truth():
    truth = kc.block(CO, DRUG)
    start = kc.block(CO.with_rates({"O->C": 150.0}), DRUG)
    data = _data(truth)
    fit, w = _user_warnings(fitting.fit_macroscopic, start, data, free=["O->C"], mr=False)
    assert len(w) == 1 and w[0].filename == __file__
    assert "'O·d->C·d' (held, copy of 'O->C')" in str(w[0].message)
    assert "arm_ties" in str(w[0].message)
    assert abs(fit.rates["O->C"] / 100.0 - 1) > 0.1          # the bias the audit saw (77.5)
    fit, w = _user_warnings(fitting.fit_macroscopic, start, data, free=["O->C"], mr=False,
                            constrain=fitting.arm_ties(start))
    assert w == []
    assert fit.rates["O->C"] == pytest.approx(100.0, rel=1e-6)
    assert fit.rates["O·d->C·d"] == fit.rates["O->C"]
    assert "= 1 x O->C" in fit.summary()
    # the copy named free: fitted on its own, as asked, no warning; all free by default: warned
    _, w = _user_warnings(fitting.fit_macroscopic, start, data, free=["O->C", "O·d->C·d"], mr=False)
    assert w == []
    p, w = _user_warnings(_Params, start, None, None, None, False, None)
    assert len(w) == 1 and "'O·d->C·d' (free, copy of 'O->C')" in str(w[0].message)


def test_ties_and_microscopic_reversibility_combine_on_the_library_ketamine():
    """erreger2005_2a + ketamine (trapping, balanced closed route): 16 copies tied, MR on every
    other cycle; at the start the affine map reproduces the composed rates (the composition is
    reversible), each copy is exactly ratio x original, and the scheme is reversible."""
    s = kc.block("erreger2005_2a", "ketamine")
    ties = fitting.arm_ties(s)
    assert len(ties) == 16
    p = _Params(s, None, None, ties, True, None)
    k0 = dict(zip(p.keys, p.k0(p.theta0)))
    for t in s.transitions:
        key = f"{t.src}->{t.dst}"
        assert k0[key] == pytest.approx(t.rate.k0, rel=1e-9), key
    for twin, (orig, c) in ties.items():
        assert k0[twin] == c * k0[orig]
    assert not set(p.mr) & set(ties)                         # MR sets no tied copy
    assert len(p.free) + len(p.mr) + len(ties) == len(p.keys)
    moved = p.k0(p.theta0 + np.linspace(-0.3, 0.3, len(p.theta0)))   # any free rates: still MR
    fitted = s.with_rates(dict(zip(p.keys, moved)))
    assert kc.theory.is_reversible(fitted, glutamate=1e-3, ketamine=1e-6)


def test_a_cycle_of_tied_copies_that_does_not_balance_is_refused():
    cyc = kc.Scheme(["C1", "C2", "O"],
                    [("C1", "C2", 10.0), ("C2", "C1", 20.0), ("C2", "O", 50.0), ("O", "C2", 100.0),
                     ("C1", "O", 5.0), ("O", "C1", 20.0)],            # 10*50*20 = 20*100*5
                    conductance={"O": 50e-12}, name="cyc3")
    s = kc.block(cyc, DRUG)
    ties = fitting.arm_ties(s)
    _Params(s, None, None, ties, True, None)                 # balanced: fine
    bad = dict(ties)
    bad["C1·d->C2·d"] = ("C1->C2", 2.0)                      # the arm's copy of the cycle off 2x
    with pytest.raises(ValueError, match=r"cycle C1·d-C2·d-O·d.*do not balance it.*= 2\b"):
        _Params(s, None, None, bad, True, None)


def test_plans_that_worked_before_the_ties_are_kept():
    """The session-18 review: rebuilding the spanning tree whenever a chord's two directions
    were constraint targets changed CH82 plans that worked (and broke some).  The plain plan is
    now kept unless it fails; this one worked before and sets the same rate."""
    s = kc.models.get("ch82")
    k = {f"{t.src}->{t.dst}": t.rate.k0 for t in s.transitions}
    cons = {"AR->AR*": ("AR*->A2R*", k["AR->AR*"] / k["AR*->A2R*"]),
            "AR->R": ("A2R*->AR*", k["AR->R"] / k["A2R*->AR*"])}
    p = _Params(s, None, None, cons, True, None)
    assert list(p.mr) == ["A2R*->AR*"]
    assert list(_Params(s, None, None, None, True, None).mr) == ["A2R*->AR*"]


def test_a_cycle_closed_by_constrained_rates_gets_the_mr_checks():
    """A cycle balanced at k0 but with z_delta on one step, all its rates constrained: it gets
    no MR rate, and must still pass the checks an MR cycle gets (here: refused)."""
    s = kc.Scheme(["C1", "C2", "O", "D"],
                  [("C1", "C2", 10.0), ("C2", "C1", 20.0), ("C2", "O", kc.Rate(50.0, z_delta=1.0)),
                   ("O", "C2", 100.0), ("C1", "O", 5.0), ("O", "C1", 20.0),
                   ("O", "D", 3.0), ("D", "O", 7.0)], conductance={"O": 50e-12}, name="v")
    k = {f"{t.src}->{t.dst}": t.rate.k0 for t in s.transitions}
    cyc = ["C1->C2", "C2->C1", "C2->O", "O->C2", "C1->O", "O->C1"]
    cons = {x: ("O->D", k[x] / k["O->D"]) for x in cyc}
    with pytest.raises(ValueError, match=r"cycle C1-C2-O \(constrained or held throughout\) "
                                         r"has voltage dependences \(z_delta\)"):
        _Params(s, None, None, cons, True, None)
    # without the z_delta the same constraints close a balanced cycle: accepted, no MR rate
    s0 = s.with_rates({"C2->O": {"k0": 50.0}})           # (a whole law: no z_delta)
    p = _Params(s0, None, None, cons, True, None)
    assert p.mr == {} and p.free == ("O->D", "D->O")


def test_a_copy_held_on_purpose_is_not_warned_about():
    s = kc.block(CO, DRUG)
    _, w = _user_warnings(_Params, s, ["O->C"], {"O·d->C·d": 100.0, "C·d->O·d": 1e6}, None, False, None)
    assert w == []
