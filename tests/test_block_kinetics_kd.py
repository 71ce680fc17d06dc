"""``BlockKineticsResult.kd_apparent`` / ``kd_equilibrium`` and the summary's consistency line
(helper-103's audit: amantadine's apparent k_on, 1.7e6 /M/s from a single exponential, implied
Kd = 4.9 µM against the exact steady block's 36.6 µM, with no word).  For a one-step
bimolecular block I/I0 at steady state is k_off / (k_on [B] + k_off) = τ_on / τ_off, so the two
Kd agree; several carriers or trapping separate them.  Exact (deterministic) traces."""
import math

import pytest

import ketacore as kc
from ketacore import experiments as E


def test_amantadine_s_single_exponential_rates_are_flagged():
    r = E.block_kinetics("erreger2005_2a", "amantadine", 100e-6)
    assert r.kd_apparent == pytest.approx(r.k_off_apparent / r.k_on_apparent, rel=1e-12)
    f = r.steady_fraction
    assert r.kd_equilibrium == pytest.approx(100e-6 * f / (1 - f), rel=1e-12)
    assert r.kd_equilibrium / r.kd_apparent > 5          # 36.6 vs 4.9 uM
    s = r.summary()
    assert "apart, so the fitted rates do not describe a one-step bimolecular block" in s


def test_ketamine_kd_equilibrium_is_its_ic50_and_is_not_flagged():
    r = E.block_kinetics("erreger2005_2a", "ketamine", 10e-6)
    ic = E.ic50("erreger2005_2a", "ketamine").ic50_exact     # nH = 1: Kd = IC50
    assert r.kd_equilibrium == pytest.approx(ic, rel=0.01)
    assert "apparent Kd" in r.summary() and "apart" not in r.summary()


def test_a_one_step_blocker_on_fast_gating_has_equal_kds():
    """C <-> O gating 100x faster than the block: the onset is one exponential with
    1/τ_on = k_on Po [B] + k_off, so kd_apparent = kd_equilibrium (to the fit's accuracy)."""
    g = kc.Scheme(["C", "O"], [("C", "O", kc.rate(1e9, "glu")), ("O", "C", 1e4)],
                  conductance={"O": 50e-12}, name="fast")
    b = kc.blockers.Blocker(name="d", ligand="drug", k_on=1e6, k_off=10.0, z=0, delta_on=0.0,
                            delta_off=0.0, mode="sequential")
    r = E.block_kinetics(g, b, 10e-6, agonist={"glu": 1e-3})
    assert math.isclose(r.kd_apparent, r.kd_equilibrium, rel_tol=0.02)
    assert "apart" not in r.summary()


def test_an_exact_ic50_out_of_detailed_balance_is_called_a_steady_state():
    """ketamine_closed_route is not in detailed balance (its closed route is fitted to Orser's
    single-channel data): its exact root is a non-equilibrium steady state (helper-103)."""
    r = E.ic50("erreger2005_2a", "ketamine_closed_route")
    assert r.meta["detailed_balance"] is False
    assert "exact steady-state IC50 = 0.501073 uM" in r.summary() and "equilibrium IC50" not in r.summary()
    r = E.ic50("erreger2005_2a", "ketamine")
    assert r.meta["detailed_balance"] is True and "exact equilibrium IC50 = 0.759162 uM" in r.summary()
