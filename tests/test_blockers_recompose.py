"""Blockers composed one ``kc.block`` call at a time.

A scheme returned by ``kc.block`` remembers its gating scheme and blockers, so
``kc.block(kc.block(g, a), b)`` recomposes ``kc.block(g, a, b)``: the same states, the same
Q matrix under every condition, the same TOML text, and the one-call checks (same tag, same
ligand) across the calls.  Old code treated the first blocker's blocked states as shut gating
states: ``block(block(g, "ketamine"), "memantine")`` had 48 states with ``O·ket·mem`` (ketamine
and memantine in one pore) and memantine binding copied ketamine's arm.  A scheme with blocked
states but no record of its composition (read from TOML, or changed by ``with_rates``) is
refused instead of being composed that way.

Every check is exact (``np.array_equal``, string equality): the two routes run the same
composition, so there is nothing to tolerate.
"""
from __future__ import annotations

import copy
import pickle
import re

import numpy as np
import pytest

import ketacore as kc
from ketacore.blockers import SEP, Blocker
from ketacore.units import celsius, mM, mV, uM

#: Concentrations (M) of the ligands the schemes below use; every ligand is set non-zero so
#: that every transition enters the compared Q matrices.
CONC = {"glutamate": 1 * mM, "ketamine": 2 * uM, "memantine": 3 * uM, "mg": 1 * mM,
        "drug": 5 * uM, "other": 7 * uM, "mk801": 0.5 * uM}
CONDITIONS = ((-100 * mV, None, 1.0), (-70 * mV, None, 1.0), (-40 * mV, celsius(37), 0.1),
              (30 * mV, celsius(30), 10.0))


def assert_same(a: kc.Scheme, b: kc.Scheme) -> None:
    """``a`` and ``b`` are the same scheme: states, ligands, TOML text, and Q under several
    voltages, temperatures and concentrations (scaled by 0.1-10x)."""
    assert a.states == b.states
    assert a.ligands == b.ligands
    assert a.name == b.name
    assert a.to_toml() == b.to_toml()
    assert a == b
    for V, T, f in CONDITIONS:
        c = {lig: CONC[lig] * f for lig in a.ligands}
        assert np.array_equal(a.q_matrix(V=V, temperature=T, **c),
                              b.q_matrix(V=V, temperature=T, **c))


def tags(state: str) -> list[str]:
    return state.split(SEP)[1:]


def drug(**kw) -> Blocker:
    d = dict(name="x", ligand="drug", k_on=2e6, k_off=3.0, z=1.0, delta_on=0.3, delta_off=0.45)
    d.update(kw)
    return Blocker(**d)


def co_gating() -> kc.Scheme:
    return kc.Scheme(["C", "O"], [("C", "O", kc.rate(1e6, "glutamate")), ("O", "C", 200.0)],
                     conductance={"O": 50e-12}, name="co")


@pytest.fixture(scope="module")
def g() -> kc.Scheme:
    return kc.models.get("erreger2005_2a")


def one_call_error(*args) -> str:
    with pytest.raises(ValueError) as e:
        kc.block(*args)
    return str(e.value)


# =========================================================================== two calls = one
def test_ketamine_then_memantine_is_the_one_call_composition(g):
    """Different tags, one site ('pore'), memantine with a superficial site: the superficial
    site excludes ketamine too, so no state carries two tags."""
    two = kc.block(kc.block(g, "ketamine"), "memantine")
    one = kc.block(g, "ketamine", "memantine")
    assert_same(two, one)
    G = g.states
    assert two.states == (G + tuple(x + SEP + "ket" for x in G) + tuple(x + SEP + "mem" for x in G)
                          + tuple(x + SEP + "mem_s" for x in G))
    assert "O·ket·mem" not in two.states and all(len(tags(s)) <= 1 for s in two.states)


def test_blockers_on_different_sites_two_calls_equal_one_call(g):
    """Memantine on another site: the one-call product has ``O·ket·mem`` too, but memantine
    binds the ketamine-blocked open state with its open-channel rates (old two-call code: as a
    shut state, i.e. not at all), so the Q matrices -- not only the names -- must agree."""
    mem = kc.blockers.get("memantine").replace(site="outer")
    two = kc.block(kc.block(g, "ketamine"), mem)
    one = kc.block(g, "ketamine", mem)
    assert_same(two, one)
    Q = two.q_matrix(V=-70 * mV, memantine=1 * uM)
    assert Q[two.index("O·ket"), two.index("O·ket·mem")] > 0


@pytest.mark.parametrize("order", [("ketamine", "mg"), ("mg", "ketamine")])
def test_ketamine_and_mg_two_calls_equal_one_call(g, order):
    two = kc.block(kc.block(g, order[0]), order[1])
    one = kc.block(g, *order)
    assert_same(two, one)
    G = g.states
    t0, t1 = (kc.blockers.get(n).name for n in order)
    assert two.states == G + tuple(x + SEP + t0 for x in G) + tuple(x + SEP + t1 for x in G)


def test_blockers_sharing_a_site_have_no_double_occupancy():
    """Two trapping blockers on one site (old two-call code: C·a·b and O·a·b, b binding
    inside a's arm); then a trapping and a sequential one: exactly the one-call states."""
    a = drug(name="a", ligand="drug")
    b = drug(name="b", ligand="other", k_on=5e5, delta_on=0.1)
    two = kc.block(kc.block(co_gating(), a), b)
    assert_same(two, kc.block(co_gating(), a, b))
    assert two.states == ("C", "O", "C·a", "O·a", "C·b", "O·b")
    seq = b.replace(mode="sequential")
    for first, second, states in ((a, seq, ("C", "O", "C·a", "O·a", "O·b")),
                                  (seq, a, ("C", "O", "O·b", "C·a", "O·a"))):
        two = kc.block(kc.block(co_gating(), first), second)
        assert_same(two, kc.block(co_gating(), first, second))
        assert two.states == states


def test_library_pore_blockers_share_the_pore(g):
    two = kc.block(kc.block(g, "ketamine"), "mk801")
    assert_same(two, kc.block(g, "ketamine", "mk801"))
    G = g.states
    assert two.states == G + tuple(x + "·ket" for x in G) + tuple(x + "·mk801" for x in G)


def test_three_calls_equal_one_call(g):
    outer = drug(name="x", ligand="drug", site="outer")
    three = kc.block(kc.block(kc.block(g, "ketamine"), "mg"), outer)
    one = kc.block(g, "ketamine", "mg", outer)
    assert_same(three, one)
    # groupings of the same three blockers
    assert_same(kc.block(kc.block(g, "ketamine", "mg"), outer), one)
    assert_same(kc.block(kc.block(g, "ketamine"), "mg", outer), one)
    G = g.states
    # occupancies in product order of the sites (pore: -, ket, mg) x (outer: -, x)
    assert three.states == tuple(x + p + o for p in ("", "·ket", "·mg") for o in ("", "·x")
                                 for x in G)
    assert max(len(tags(s)) for s in three.states) == 2   # one per site
    assert not any("ket" in tags(s) and "mg" in tags(s) for s in three.states)


def test_names_follow_the_one_call_composition(g):
    first = kc.block(g, "ketamine", name="my ketamine")
    assert_same(kc.block(first, "mg"), kc.block(g, "ketamine", "mg"))
    assert kc.block(first, "mg").name == "erreger2005_2a+ket+mg"
    assert_same(kc.block(first, "mg", name="both"), kc.block(g, "ketamine", "mg", name="both"))
    # renaming a composed scheme changes no kinetics: it is still recomposed
    first.name, first.notes = "renamed", "my notes"
    assert_same(kc.block(first, "mg"), kc.block(g, "ketamine", "mg"))


def test_gating_changed_after_composing_does_not_change_the_recomposition():
    gating = kc.models.get("erreger2005_2a")
    first = kc.block(gating, "ketamine")
    want = kc.block(kc.models.get("erreger2005_2a"), "ketamine", "mg")
    gating.name = "renamed"
    assert_same(kc.block(first, "mg"), want)


def test_block_by_model_name(g):
    by_name = kc.block("erreger2005_2a", "ketamine")
    assert_same(by_name, kc.block(g, "ketamine"))
    assert_same(kc.block(by_name, "mg"), kc.block("erreger2005_2a", "ketamine", "mg"))


# =========================================================================== checks across calls
def test_same_tag_across_calls_gets_the_one_call_message(g):
    once = kc.block(g, "ketamine")
    one = one_call_error(g, "ketamine", "ketamine_mealing1999")
    assert one.startswith("two blockers named 'ket'")
    with pytest.raises(ValueError, match=re.escape(one)) as e:
        kc.block(once, "ketamine_mealing1999")
    assert "in one call" in str(e.value) and "'erreger2005_2a+ket'" in str(e.value)
    # a second ketamine under another ligand name is still the tag 'ket' twice
    ket2 = kc.blockers.get("ketamine").replace(ligand="ketamine2")
    with pytest.raises(ValueError, match=re.escape(one_call_error(g, "ketamine", ket2))):
        kc.block(once, ket2)


def test_same_ligand_across_calls_gets_the_one_call_message(g):
    mem = kc.blockers.get("memantine").replace(ligand="ketamine")
    one = one_call_error(g, "ketamine", mem)
    assert one.startswith("two blockers use the ligand 'ketamine'")
    with pytest.raises(ValueError, match=re.escape(one)):
        kc.block(kc.block(g, "ketamine"), mem)


def test_superficial_tag_across_calls_gets_the_one_call_message(g):
    clash = drug(name="mem_s", ligand="drug", site="outer")
    one = one_call_error(g, "memantine", clash)
    assert "would both tag their states '·mem_s'" in one
    with pytest.raises(ValueError, match=re.escape(one)):
        kc.block(kc.block(g, "memantine"), clash)


# =========================================================================== no memory: refused
UNRECORDED = r"already has blocked states .*no record of the block\(\) call.*one call on the gating"


@pytest.mark.filterwarnings("ignore:block.*own pore blocker:UserWarning")  # (kampa2004 + a pore blocker, meant)
def test_with_rates_changed_scheme_is_not_recomposed(g):
    """A composed scheme changed by with_rates is no longer the composition block() made: it
    is refused (old code composed O·ket·mem onto it), changed rates or not."""
    once = kc.block(g, "ketamine")
    slower = once.with_rates(**{"O·ket->O": once.transitions[0].rate.scaled(0.5)})
    for changed in (slower, once.with_rates()):
        with pytest.raises(ValueError, match=UNRECORDED) as e:
            kc.block(changed, "memantine")
        assert "'R·ket·mem'" in str(e.value) and "with_rates" in str(e.value)


@pytest.mark.filterwarnings("ignore:block.*own pore blocker:UserWarning")  # (kampa2004 + a pore blocker, meant)
def test_toml_and_changed_temperature_are_not_recomposed(g):
    once = kc.block(g, "ketamine")
    back = kc.Scheme.from_toml(once.to_toml())
    assert back == once
    with pytest.raises(ValueError, match=UNRECORDED):
        kc.block(back, "mg")
    d = once.to_dict()
    d["scheme"]["temperature"] = celsius(37)
    with pytest.raises(ValueError, match=UNRECORDED):
        kc.block(kc.Scheme.from_dict(d), "mg")
    # a copy that keeps the memory but not the kinetics it recorded is not taken for it
    warm = copy.copy(once)
    warm._temperature = celsius(37)
    with pytest.raises(ValueError, match=UNRECORDED):
        kc.block(warm, "mg")
    assert_same(kc.block(copy.copy(once), "mg"), kc.block(g, "ketamine", "mg"))


@pytest.mark.filterwarnings("ignore:block.*own pore blocker:UserWarning")  # (kampa2004 + a pore blocker, meant)
def test_unrecorded_same_tag_still_names_the_collision(g):
    """Blocking a TOML copy of a composed scheme with the same tag again: the state-name
    collision message, now pointing to one call on the gating scheme."""
    back = kc.Scheme.from_toml(kc.block(g, "ketamine").to_toml())
    ket2 = kc.blockers.get("ketamine").replace(ligand="ketamine2")
    with pytest.raises(ValueError, match=r"'R·ket' would be given to both gating state 'R·ket' "
                                         r"\(unblocked\) and gating state 'R' with blocker 'ket' "
                                         r"bound; .*no record.*one call on the gating scheme"):
        kc.block(back, ket2)


def test_own_gating_states_with_the_separator_are_refused():
    g2 = kc.Scheme(["C", "O", "C·x"], [("C", "O", 10.0), ("O", "C", 100.0),
                                       ("C", "C·x", 1.0), ("C·x", "C", 1.0)],
                   conductance={"O": 50e-12}, name="mine")
    with pytest.raises(ValueError, match=r"'mine' already has blocked states \('C·x'.*rename "
                                         r"those states"):
        kc.block(g2, drug(name="y"))


@pytest.mark.filterwarnings("ignore:block.*own pore blocker:UserWarning")  # (kampa2004 + a pore blocker, meant)
def test_kampa2004_still_composes(g):
    """kampa2004's Mg2+-bound states are its gating (no '·' tags): composed as before."""
    k = kc.block("kampa2004", "ketamine")
    assert k.n_states == 20 and "OMg·ket" in k.states
    # and blocking that composition again recomposes from kampa2004
    two = kc.block(k, drug(site="outer"))
    assert_same(two, kc.block("kampa2004", "ketamine", drug(site="outer")))


# =========================================================================== pickling
def test_pickle_and_deepcopy_keep_the_composition(g):
    g.q_matrix(glutamate=1 * mM)        # a compiled gating scheme must not ride along
    once = kc.block(g, "ketamine")
    want = kc.block(g, "ketamine", "memantine")
    # (clone before anything compiles ``once``: a Scheme whose q_matrix has been built does
    # not pickle, its cached C++ CompiledScheme does not -- a separate, older limitation)
    clones = (pickle.loads(pickle.dumps(once)), copy.deepcopy(once))
    for clone in clones:
        assert clone is not once
        assert_same(clone, once)
        assert_same(kc.block(clone, "memantine"), want)
    two = kc.block(once, "memantine")
    for clone in (pickle.loads(pickle.dumps(two)), copy.deepcopy(two)):
        assert_same(kc.block(clone, "mg"), kc.block(g, "ketamine", "memantine", "mg"))
