"""Record class names: one rule for every constructor, every class selectable by its name.

Before: ``Record.from_events`` named class 1 ``"open"`` -- a name no method could select, since
``"open"`` means every open class -- while ``from_levels``/``from_dwells`` called it
``"open1"``; with a second shut class, class 0 was ``"shut"``, which likewise selects every
shut class; a user could name a class ``"open"`` and never select it; ``from_dwells`` had no
``decimals`` (``from_levels`` had).  The rule now (``Record`` docstring): ``"open{k}"`` /
``"shut{k}"``, class 0 ``"shut"`` when it is the only shut class, and a keyword as a class
name only where it selects that class alone.
"""
import numpy as np
import pytest

import ketacore as kc
from ketacore import analysis as ka
from ketacore.units import ms, pA, pS, s


def _sub_scheme():
    return kc.Scheme(["C", "O1", "O2"], [("C", "O1", 200.0), ("O1", "C", 300.0),
                                         ("O1", "O2", 400.0), ("O2", "O1", 800.0)],
                     conductance={"O1": 50 * pS, "O2": 20 * pS}, name="sub")


def _log():
    return kc.simulate_events(_sub_scheme(), kc.Step(2 * s), n_trials=1, rng=3)


def test_from_events_names_class_1_open1_and_it_selects_class_1():
    rec = ka.Record.from_events(_log())
    assert rec.class_names == ("shut", "open1", "open2")
    # every name selects exactly its own class (exact equality with selection by index)
    for k, name in enumerate(rec.class_names):
        np.testing.assert_array_equal(rec.dwells(name), rec.dwells(k))
    # the keywords keep their meaning: all open / all shut classes
    np.testing.assert_array_equal(rec.dwells("open"), rec.dwells([1, 2]))
    np.testing.assert_array_equal(rec.dwells("shut"), rec.dwells(0))
    assert rec.dwells("open1").size < rec.dwells("open").size


def test_every_constructor_uses_the_same_names():
    """The same record built five ways has the same class names."""
    log = _log()
    ev = ka.Record.from_events(log)
    g = np.asarray(_sub_scheme().conductance)
    amp = g[np.asarray(log.states[0])]
    lev = ka.Record.from_levels(log.times[0], amp, log.t_end)
    dw = ka.Record.from_dwells(ev.duration, ev.amplitude)
    st = ka.Record.from_states(log.times[0], log.states[0], log.t_end, [0, 1, 2],
                               levels=ev.levels)
    raw = ka.Record(ev.start, ev.duration, ev.cls, ev.offsets, ev.levels)
    for r in (lev, dw, st, raw):
        assert r.class_names == ev.class_names == ("shut", "open1", "open2")
        np.testing.assert_array_equal(r.levels, ev.levels)
    np.testing.assert_array_equal(lev.duration, ev.duration)


def test_second_shut_class_names_class_0_shut0():
    """With CH82's R in its own shut class, class 0 was "shut" (selecting classes 0 and 2);
    now "shut0", and "shut" still selects every shut class."""
    g = kc.models.get("ch82")
    log = kc.simulate_events(g, kc.Step(1 * s, agonist=1e-6), n_trials=1, rng=2)
    cl = {"A2R*": 1, "AR*": 1, "A2R": 0, "AR": 0, "R": 2}
    rec = ka.Record.from_events(log, cl)
    assert rec.class_names == ("shut0", "open1", "shut2")
    np.testing.assert_array_equal(rec.dwells("shut0"), rec.dwells(0))
    np.testing.assert_array_equal(rec.dwells("shut"), rec.dwells([0, 2]))
    raw = ka.Record(rec.start, rec.duration, rec.cls, rec.offsets, rec.levels)
    assert raw.class_names == rec.class_names
    # resolve keeps the names
    assert rec.resolve(50e-6).class_names == rec.class_names


def test_a_keyword_as_a_class_name_is_refused_unless_it_selects_that_class_alone():
    args = ([0.0, 1.0, 2.0], [1.0, 1.0, 1.0], [0, 1, 2], [0, 3], [0.0, 2.0, 1.0])
    with pytest.raises(ValueError, match=r"class_names: 'open' names class 1, but 'open' "
                                         r"selects every open class \(\[1, 2\]\).*'open1'"):
        ka.Record(*args, class_names=["shut", "open", "sub"])
    with pytest.raises(ValueError, match="'closed' names class 1"):
        ka.Record(*args, class_names=["shut", "closed", "sub"])
    # the sole class of its kind may carry the keyword (it selects just that class)
    r = ka.Record(*args, class_names=["closed", "main", "sub"])
    np.testing.assert_array_equal(r.dwells("closed", include_first=True), [1.0])
    two = ka.Record([0.0, 1.0], [1.0, 1.0], [0, 1], [0, 2], [0.0, 1.0],
                    class_names=["shut", "open"])
    assert two.class_names == ("shut", "open")
    with pytest.raises(ValueError, match="'shut' names class 0"):
        ka.Record([0.0, 1.0, 2.0], [1.0, 1.0, 1.0], [0, 1, 2], [0, 3], [0.0, 1.0, 0.0],
                  class_names=["shut", "open1", "deep"])
    with pytest.raises(ValueError, match="class_names: 'open'"):
        ka.Record.from_states([0.0, 1.0, 2.0], [0, 1, 2], 3.0, [0, 1, 2],
                              levels=[0.0, 1.0, 0.5], class_names=["shut", "open", "sub"])


def test_from_dwells_takes_decimals_like_from_levels():
    """Measured amplitudes of one level (-2.51, -2.49 pA) become one class with
    ``decimals=13`` (0.1 pA), consecutive intervals that become equal are merged (durations
    summed), and a ``decimals`` that would shut real openings is refused as in from_levels."""
    d = np.array([1.0, 2.0, 0.5, 0.25, 3.0, 1.5]) * ms
    a = np.array([0.0, -2.51, -2.49, -1.02, 0.0, -2.5]) * pA
    r = ka.Record.from_dwells(d, a, decimals=13)
    np.testing.assert_array_equal(r.levels, [0.0, -2.5e-12, -1.0e-12])
    assert r.class_names == ("shut", "open1", "open2")
    np.testing.assert_allclose(r.duration, [1.0e-3, 2.5e-3, 0.25e-3, 3.0e-3, 1.5e-3],
                               rtol=1e-15)
    np.testing.assert_array_equal(r.cls, [0, 1, 2, 0, 1])
    # the same record through from_levels (entry times = cumulative durations)
    t = np.concatenate(([0.0], np.cumsum(d)[:-1]))
    lv = ka.Record.from_levels(t, a, float(d.sum()), decimals=13)
    np.testing.assert_array_equal(lv.levels, r.levels)
    np.testing.assert_array_equal(lv.cls, r.cls)
    np.testing.assert_allclose(lv.duration, r.duration, rtol=1e-12)
    with pytest.raises(ValueError, match=r"decimals=1 rounds the amplitude .*decimals >= 13"):
        ka.Record.from_dwells(d, a, decimals=1)
    with pytest.raises(TypeError, match="decimals"):
        ka.Record.from_dwells(d, a, decimals=12.5)
    # without decimals the three measured levels stay apart (unchanged behaviour)
    assert ka.Record.from_dwells(d, a).n_classes == 5
