"""One check of one thing: the analysis segments and windows, and the keys of an ``initial``
conditions table, are each checked by one function, whose results the rest of the study uses.

Before, ``_Analysis`` looked the segment labels and the train up again after
``_check_analysis`` had, and evaluated its window defaults from literals of its own (so the
windows measured need not be the windows checked); the keys of ``initial`` were checked at
construction, again with their own code at run time, and again by
``kc.solve.initial_distribution``.  Each test here fails on that code.
"""
import pytest

import ketacore as kc
from ketacore import study as S
from _study_fixtures import trapping_segments

BASE = dict(model="erreger2005_2a", blockers=["ketamine"], n_channels=5, n_trials=1, rng=1,
            dt="10 ms", initial="R")


def test_trapping_measures_the_windows_its_check_validated(monkeypatch):
    # the defaults live in one table (_TRAPPING_DEFAULTS): the windows measured follow it
    monkeypatch.setitem(S._TRAPPING_DEFAULTS, "window", 0.3)
    monkeypatch.setitem(S._TRAPPING_DEFAULTS, "early", 0.2)
    st = kc.Study(**BASE, protocol=trapping_segments(), analysis="trapping")
    pt = S._point(st, "main", {})
    an = S._Analysis(st, "main", pt, None)
    assert (an.window, an.early) == (0.3, 0.2)
    # last 0.3 s of control (1 s) and of block (1 s to 3 s); first 0.2 s of control and recovery
    # (a sample on a boundary belongs to the segment that starts there)
    assert (an.ctl_ss.start, an.ctl_ss.stop) == (70, 100)
    assert (an.blk_ss.start, an.blk_ss.stop) == (270, 300)
    assert (an.ctl_early.start, an.ctl_early.stop) == (0, 20)
    assert (an.rec_early.start, an.rec_early.stop) == (500, 520)
    # ... and a default the check refuses is refused (window longer than control)
    monkeypatch.setitem(S._TRAPPING_DEFAULTS, "window", 1.5)
    with pytest.raises(S.StudyError, match=r"analysis\.window: the default 1.5 s does not fit"):
        kc.Study(**BASE, protocol=trapping_segments(), analysis="trapping")


def test_analysis_uses_the_segments_the_check_found(monkeypatch):
    found = []
    check = S._check_analysis

    def spy(*args, **kw):
        out = check(*args, **kw)
        found.append(out)
        return out

    monkeypatch.setattr(S, "_check_analysis", spy)
    st = kc.Study(**BASE, protocol=[{"train": {"n_pulses": 3, "frequency": "10 Hz", "width": "2 ms",
                                               "during": {"glutamate": "1 mM"}}, "label": "t"}],
                  analysis={"kind": "use_dependence", "train": "t"})
    pt = S._point(st, "main", {})
    found.clear()
    an = S._Analysis(st, "main", pt, None)
    assert len(found) == 1 and found[0]["train"] is pt.segments[0]
    assert an.n_pulses == 3


def test_initial_keys_have_one_check(monkeypatch):
    calls = []
    check = S._check_initial_keys

    def spy(study, part, table, scheme=None):
        calls.append(None if scheme is None else scheme.name)
        return check(study, part, table, scheme)

    monkeypatch.setattr(S, "_check_initial_keys", spy)
    st = kc.Study(**{**BASE, "initial": {"glutamate": 0, "V": "-70 mV"}},
                  protocol=[{"duration": "0.1 s", "glutamate": "1 mM"}])
    assert calls == [None]                            # construction: without the model
    pt = S._point(st, "main", {})
    assert calls == [None, pt.scheme.name]             # run time: with the sweep point's model
    # its two messages: the model-free one at construction, the model's at run time
    with pytest.raises(S.StudyError, match=r"^Study: \[protocol\]\.initial: 'open' is not a condition"):
        kc.Study(**{**BASE, "initial": {"open": 1}}, protocol=[{"duration": "0.1 s"}])
    st = kc.Study(**{**BASE, "initial": {"glutamte": 0}}, protocol=[{"duration": "0.1 s"}])
    with pytest.raises(S.StudyError, match=r"^Study: \[protocol\]\.initial\.glutamte: not a condition of "):
        S._point(st, "main", {})
