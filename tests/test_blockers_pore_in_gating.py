"""A pore blocker composed onto a gating scheme with its own pore blocker in its gating
(``kampa2004``'s Mg2+ states) gives states with both drugs in one pore, so they do not compete:
helper-103's audit found ketamine's IC50 on kampa2004 in 1 mM Mg2+ equal to its Mg2+-free value
(0.765 µM) while the competitive composition gives K_B (1 + [Mg]/K_Mg) = 20.4 µM, with no word
at the point of use.  block() now warns there (deterministic)."""
import warnings

import pytest

import ketacore as kc
from ketacore import experiments as E


def _block_warnings(*a):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = kc.block(*a)
    return out, [w for w in rec if "has its own pore blocker" in str(w.message)]


def test_pore_blocker_onto_a_gating_scheme_with_its_own_mg_warns_at_the_user_s_line():
    s, w = _block_warnings("kampa2004", "ketamine")
    assert len(w) == 1 and w[0].filename == __file__
    msg = str(w[0].message)
    assert "'kampa2004'" in msg and "['mg']" in msg and "['ketamine']" in msg
    assert "block('erreger2005_2a', 'ketamine', 'mg')" in msg
    assert "OMg·ket" in s.states                    # the composition itself is unchanged
    # the numbers the warning is about: no competition on kampa2004, competition with "mg"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        own = E.ic50("kampa2004", "ketamine", background={"mg": 1e-3}).ic50_exact
        free = E.ic50("kampa2004", "ketamine").ic50_exact
    comp = E.ic50("erreger2005_2a", "ketamine", also=["mg"], background={"mg": 1e-3}).ic50_exact
    assert own == pytest.approx(free, rel=0.02) and comp > 20 * own


def test_no_warning_without_the_clash():
    for args in (("erreger2005_2a", "ketamine", "mg"), ("destexhe1994_sf", "memantine"),
                 ("kampa2004", kc.blockers.get("ketamine").replace(site="outer"))):
        assert _block_warnings(*args)[1] == [], args
