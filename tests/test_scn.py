"""Idealised records from SCAN .scn files (Record.from_scn, via dcio) and unusable intervals
(Record.from_dwells(usable=...)): an unusable interval cuts the record into sweeps, so every
analysis of the cut record equals that of its usable runs taken as separate records."""
import numpy as np
import pytest

import ketacore as kc
from ketacore.analysis import Record

scn = pytest.importorskip("dcio.formats.scn")


def _ch82_intervals(seed, t_end=10.0):
    """Durations (s) and amplitudes (pA, -5 open) of a simulated CH82 record."""
    ch82 = kc.models.get("ch82")
    log = kc.simulate_events(ch82, kc.Step(t_end, agonist=1e-6), rng=seed,
                             initial=kc.theory.equilibrium(ch82, agonist=1e-6))
    rec = Record.from_events(log, classes={s: int(s.endswith("*")) for s in ch82.states})
    return rec.duration.copy(), np.where(rec.is_open[rec.cls], -5.0, 0.0)


def _runs(u):
    """(start, stop) of each run of True in u."""
    edges = np.flatnonzero(np.diff(np.r_[0, u.astype(np.int8), 0]))
    return list(zip(edges[::2], edges[1::2]))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_unusable_intervals_cut_the_record_into_independent_sweeps(seed):
    d, a = _ch82_intervals(seed)
    rng = np.random.default_rng(seed)
    u = np.ones(d.size, bool)  # unusable intervals 30-80 apart (and two adjacent ones)
    k = 0
    while True:
        k += int(rng.integers(30, 80))
        if k >= d.size - 2:
            break
        u[k] = False
    u[k - 40: k - 38] = False
    rec = Record.from_dwells(d, a * 1e-12, usable=u)
    runs = [(i, j) for i, j in _runs(u)]
    parts = [Record.from_dwells(d[i:j], a[i:j] * 1e-12) for i, j in runs]
    assert rec.n_sweeps == len(runs) > 5
    assert np.array_equal(rec.levels, parts[0].levels)
    # each sweep is its run, merged as from_dwells merges one sweep, in the record's clock
    t_abs = np.r_[0.0, np.cumsum(d)[:-1]]
    for s, ((i, j), p) in enumerate(zip(runs, parts)):
        lo, hi = rec.offsets[s], rec.offsets[s + 1]
        assert np.array_equal(rec.duration[lo:hi], p.duration) and np.array_equal(rec.cls[lo:hi], p.cls)
        np.testing.assert_allclose(rec.start[lo:hi], t_abs[i] + p.start, rtol=1e-12, atol=1e-12)
    for t_res in (0.0, 25e-6, 200e-6):
        r = rec.resolve(t_res) if t_res else rec
        ps = [p.resolve(t_res) if t_res else p for p in parts]
        for which in ("open", "shut"):
            assert np.array_equal(r.periods(which), np.concatenate([p.periods(which) for p in ps]))
        if t_res:
            for t_crit in (None, 3.5e-3):
                got = r.hjc_groups(t_crit)
                ref = [g for p in ps for g in p.hjc_groups(t_crit)]
                assert len(got) == len(ref) and all(np.array_equal(x, y) for x, y in zip(got, ref))


def test_from_scn_reads_what_dcio_wrote(tmp_path):
    """A CH82 record written with dcio (ms float32, pA int16, flags) and read by from_scn:
    the record from_dwells builds from dcio's own reading, intervals in s and amplitudes in A;
    flag 8 marks unusable intervals (also with SCAN's -1 ms length); other flag bits
    (amplitude dubious/fixed) do not."""
    d, a = _ch82_intervals(7, t_end=5.0)
    rng = np.random.default_rng(0)
    flags = np.where(rng.random(d.size) < 0.03, 8, 0).astype(np.int8)
    flags[rng.random(d.size) < 0.05] |= 1
    flags[:2] = 0
    d = d.copy()
    k = int(np.flatnonzero(flags & 8)[0])
    d[k] = -1e-3  # SCAN's "length unknown"
    path = tmp_path / "ch82.scn"
    scn.write(path, d, a, flags)
    got = Record.from_scn(path)
    raw = scn.read(path)
    u = (raw.flags & 8) == 0
    assert np.array_equal(u, (flags & 8) == 0)
    ref = Record.from_dwells(raw.intervals, np.where(raw.amplitudes != 0, -5e-12, 0.0), usable=u)
    for f in ("start", "duration", "cls", "offsets", "levels"):
        assert np.array_equal(getattr(got, f), getattr(ref, f)), f
    assert got.class_names == ("shut", "open1") and got.levels[1] == pytest.approx(-5e-12, rel=1e-12)
    np.testing.assert_allclose(got.duration.sum(), d[(flags & 8) == 0].sum(), rtol=1e-6)
    assert got.n_sweeps == len(_runs(u))


def test_from_scn_classes(tmp_path):
    """open/shut: sublevel openings form one open dwell at the duration-weighted mean level;
    amplitudes: one class per level (largest first)."""
    d = np.array([0.010, 0.002, 0.001, 0.003, 0.020, 0.004])
    a = np.array([0.0, -5.0, -3.0, -5.0, 0.0, -3.0])
    path = tmp_path / "sub.scn"
    scn.write(path, d, a, np.zeros(d.size, np.int8))
    r = Record.from_scn(path)
    assert r.class_names == ("shut", "open1") and list(r.cls) == [0, 1, 0, 1]
    np.testing.assert_allclose(r.duration, [0.010, 0.006, 0.020, 0.004], rtol=1e-6)
    np.testing.assert_allclose(r.levels, [0.0, -(5 * 0.005 + 3 * 0.005) / 0.010 * 1e-12], rtol=1e-6)
    r = Record.from_scn(path, classes="amplitudes")
    assert r.class_names == ("shut", "open1", "open2") and list(r.cls) == [0, 1, 2, 1, 0, 2]
    np.testing.assert_allclose(r.levels, [0.0, -5e-12, -3e-12])


def test_from_scn_and_usable_refuse_bad_input(tmp_path):
    d = np.array([0.010, 0.002, 0.004])
    a = np.array([0.0, -5.0, 0.0])
    path = tmp_path / "jump.scn"
    scn.write(path, d, a, np.array([32, 0, 64], np.int8))
    with pytest.raises(ValueError, match="concentration-jump"):
        Record.from_scn(path)
    scn.write(path, d, a, np.zeros(3, np.int8))
    with pytest.raises(ValueError, match="classes must be"):
        Record.from_scn(path, classes="open")
    with pytest.raises(ValueError, match="decimals applies"):
        Record.from_scn(path, decimals=13)
    with pytest.raises(FileNotFoundError):
        Record.from_scn(tmp_path / "missing.scn")
    for bad, what in ((3, "got int"), ({"a": 1}, "got dict"), ([path, 3], "each file must be a str or path-like, got int")):
        with pytest.raises(TypeError, match=what):
            Record.from_scn(bad)
    with pytest.raises(TypeError, match="usable must be an array of bool"):
        Record.from_dwells(d, a * 1e-12, usable=[1, 0, 1])
    with pytest.raises(ValueError, match="one value per interval"):
        Record.from_dwells(d, a * 1e-12, usable=np.ones(2, bool))
    with pytest.raises(ValueError, match="usable intervals must be finite and > 0"):
        Record.from_dwells(np.array([0.01, -1.0, 0.002]), a * 1e-12, usable=np.array([True, True, False]))
    # an unusable interval may have any length (it adds clock time only if finite and > 0)
    for bad in (-1.0, 0.0, np.nan, np.inf):
        r = Record.from_dwells(np.array([0.01, bad, 0.002]), a * 1e-12, usable=np.array([True, False, True]))
        assert r.n_sweeps == 2 and list(r.duration) == [0.01, 0.002] and list(r.start) == [0.0, 0.01]
        with pytest.raises(ValueError, match=r"usable intervals must be finite and > 0; interval 1 has"):
            Record.from_dwells(np.array([0.01, bad, 0.002]), a * 1e-12, usable=np.ones(3, bool))
    r = Record.from_dwells(d, a * 1e-12, usable=np.array([True, False, True]))
    assert list(r.start) == [0.0, 0.012] and list(r.offsets) == [0, 1, 2]
    empty = Record.from_dwells(d, a * 1e-12, usable=np.zeros(3, bool))
    assert empty.n_dwells == 0 and empty.n_sweeps == 1
    # openings of both signs cannot be one open class
    path = tmp_path / "signs.scn"
    scn.write(path, np.array([0.01, 0.002, 0.003, 0.002, 0.01]), np.array([0.0, -5.0, 0.0, 5.0, 0.0]),
              np.zeros(5, np.int8))
    with pytest.raises(ValueError, match="both signs.*classes='amplitudes'"):
        Record.from_scn(path)
    assert Record.from_scn(path, classes="amplitudes").class_names == ("shut", "open1", "open2")


def test_unusable_first_and_last_intervals(tmp_path):
    """Unusable intervals at the ends of the list just shorten it (no empty sweep); the ends
    of a usable run are censored as any sweep's are."""
    d, a = _ch82_intervals(5, t_end=2.0)
    u = np.ones(d.size, bool)
    u[[0, 1, d.size // 2, d.size - 1]] = False
    rec = Record.from_dwells(d, a * 1e-12, usable=u)
    runs = _runs(u)
    assert rec.n_sweeps == len(runs) == 2
    for s, (i, j) in enumerate(runs):
        p = Record.from_dwells(d[i:j], a[i:j] * 1e-12)
        lo, hi = rec.offsets[s], rec.offsets[s + 1]
        assert np.array_equal(rec.duration[lo:hi], p.duration) and np.array_equal(rec.cls[lo:hi], p.cls)
    assert np.array_equal(rec.open_times(), np.concatenate([Record.from_dwells(d[i:j], a[i:j] * 1e-12).open_times()
                                                            for i, j in runs]))


def test_from_scn_calibration(tmp_path):
    """A file with a calibration factor other than 1 pA per ADC unit (amplitudes stored as -45
    ADC units at 0.1 pA each: dcio's writer stores the integers it is given) reads back in A."""
    path = tmp_path / "cal.scn"
    scn.write(path, np.array([0.01, 0.002, 0.01]), np.array([0.0, -45.0, 0.0]), np.zeros(3, np.int8), calfac=0.1)
    assert scn.read(path).amplitudes[1] == pytest.approx(-4.5, rel=1e-6)
    r = Record.from_scn(path)
    np.testing.assert_allclose(r.levels, [0.0, -4.5e-12], rtol=1e-6)


def test_resolution_and_groups_equal_dcprogs():
    """Record.resolve + hjc_groups against DCPROGS's own pipeline as dcio implements it
    (impose_resolution, set_periods, burst segmentation at t_crit): on simulated CH82 records
    that start and end shut (where the two conventions for a record's ends coincide), the
    groups are identical to the bit, for 4 resolutions and 3 critical times (the largest: one
    group per record)."""
    from dcio.analysis.bursts import extract_burst_intervals
    from dcio.analysis.record import impose_resolution, set_periods
    ch82 = kc.models.get("ch82")
    n_groups = 0
    for seed in range(1, 5):
        c = 10 ** -np.random.default_rng(seed).uniform(5, 7)
        log = kc.simulate_events(ch82, kc.Step(5.0, agonist=c), rng=seed)
        rec = Record.from_events(log, classes={s: int(s.endswith("*")) for s in ch82.states})
        d, a = rec.duration, np.where(rec.is_open[rec.cls], -5.0, 0.0)
        d, a = np.r_[0.02, d, 0.02], np.r_[0.0, a, 0.0]  # shut at both ends
        r = Record.from_dwells(d, a * 1e-12)
        for t_res in (10e-6, 25e-6, 100e-6, 300e-6):
            ri, ra, rf = impose_resolution(d, a, np.zeros(d.size, np.int8), t_res, record_type="simulated")
            per = set_periods(ri, ra, rf)
            for t_crit in (1e-3, 3.5e-3, 1e9):
                ours = r.resolve(t_res).hjc_groups(t_crit)
                theirs = extract_burst_intervals(per.intervals, per.amplitudes, t_crit, per.flags)
                assert len(ours) == len(theirs) > 0 and (len(ours) == 1) == (t_crit == 1e9)
                assert all(np.array_equal(x, y) for x, y in zip(ours, theirs)), (seed, t_res, t_crit)
                n_groups += len(ours)
    assert n_groups > 1000


def test_from_scn_pools_several_files(tmp_path):
    """Several files (the patches of one concentration, pooled as HJCFIT pools them) follow one
    another, cut apart as by an unusable interval: the pooled record's sweeps, resolved dwells
    and HJC groups are those of the files read one by one, in order; the open level is the
    duration-weighted mean over all files' usable openings."""
    paths, singles = [], []
    for seed, amp in ((31, -5.0), (32, -4.0)):
        d, a = _ch82_intervals(seed, t_end=3.0)
        flags = np.zeros(d.size, np.int8)
        flags[d.size // 3] = 8
        path = tmp_path / f"patch{seed}.scn"
        scn.write(path, d, np.where(a != 0, amp, 0.0), flags)
        paths.append(path)
        singles.append(Record.from_scn(path))
    pooled = Record.from_scn(paths)
    assert pooled.n_sweeps == sum(r.n_sweeps for r in singles) == 4
    assert np.array_equal(pooled.duration, np.concatenate([r.duration for r in singles]))
    assert np.array_equal(pooled.cls, np.concatenate([r.cls for r in singles]))
    for t_res, t_crit in ((25e-6, 3.5e-3), (100e-6, None)):
        got = pooled.resolve(t_res).hjc_groups(t_crit)
        ref = [g for r in singles for g in r.resolve(t_res).hjc_groups(t_crit)]
        assert len(got) == len(ref) >= (10 if t_crit else 4) and all(np.array_equal(x, y) for x, y in zip(got, ref))
    raws = [scn.read(p) for p in paths]
    op = [(r.amplitudes != 0) & ((r.flags & 8) == 0) for r in raws]
    level = sum(float(np.sum(r.amplitudes[o] * r.intervals[o])) for r, o in zip(raws, op)) / \
        sum(float(np.sum(r.intervals[o])) for r, o in zip(raws, op)) * 1e-12
    assert pooled.levels[1] == pytest.approx(level, rel=1e-12)
    assert -5e-12 < level < -4e-12 and singles[0].levels[1] == pytest.approx(-5e-12)
    assert Record.from_scn(tuple(str(p) for p in paths)).n_dwells == pooled.n_dwells
    with pytest.raises(ValueError, match="at least one .scn file"):
        Record.from_scn([])
