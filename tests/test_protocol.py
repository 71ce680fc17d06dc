"""Protocols: steps, builders, compilation, validation."""
import importlib
import math
import pickle

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
    assert p.n_samples(0.03) == 2 and p.n_samples(0.03 * (1 + 5e-8)) == 2   # 0 and the end
    # a dt longer than the protocol would leave t = 0 alone: refused (ms written as s)
    for dt in (0.05, 1, 0.03 * (1 + 2e-7)):
        with pytest.raises(ValueError, match=r"is longer than the 0.03 s protocol.*dt is in seconds"):
            p.n_samples(dt)
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


def _steps_from_samples(t, t_end, V, temperature=None, **conc):
    """from_waveform's steps built one checked Step at a time (the reference for its fast path)."""
    ends = np.append(t[1:], t_end)
    cols = {k: np.broadcast_to(np.asarray(v, dtype=float), t.shape) for k, v in conc.items()}
    Vs = np.broadcast_to(np.asarray(V, dtype=float), t.shape)
    return [kc.Step(float(ends[i] - t[i]), V=float(Vs[i]), temperature=temperature,
                    **{k: float(a[i]) for k, a in cols.items()}) for i in range(t.size)]


@pytest.mark.parametrize("case", ["constant", "varying", "temperature", "no ligands"])
def test_waveform_fast_path_builds_the_checked_steps(case):
    """from_waveform checks all samples at once and builds the steps without re-checking each:
    every step must equal, hash and read like the Step the checked constructor makes (zero
    concentrations dropped, ligands sorted, -0.0 V kept), and the protocol compile alike."""
    rng = np.random.default_rng(3)
    n = 300
    t = np.cumsum(np.r_[0.0, rng.uniform(1e-5, 1e-3, n - 1)])
    V = rng.uniform(-0.1, 0.05, n)
    V[7] = -0.0
    kw: dict = {}
    if case == "constant":
        kw = {"mg": 1e-3, "glutamate": 1e-3, "ketamine": 0.0}
    elif case == "varying":
        kw = {"mg": 1e-3, "glutamate": np.where(rng.random(n) < 0.5, 0.0, 1e-3),
              "ketamine": rng.choice([0.0, 1e-6, 3e-6], n)}
    elif case == "temperature":
        kw = {"temperature": 300.0, "glutamate": 1e-3}
    got = kc.Protocol.from_waveform(t, t[-1] + 1e-3, V=V, **kw)
    ref = _steps_from_samples(t, t[-1] + 1e-3, V, **kw)
    assert len(got) == n and got.steps == tuple(ref)
    for a, b in zip(got.steps, ref):
        assert hash(a) == hash(b) and repr(a) == repr(b)
        assert dict(a.concentrations) == dict(b.concentrations)
        assert list(a.concentrations) == list(b.concentrations)
        assert a.conditions_key() == b.conditions_key()
        assert math.copysign(1.0, a.V) == math.copysign(1.0, b.V)
    assert got == kc.Protocol(ref) and hash(got) == hash(kc.Protocol(ref))
    sch = kc.Scheme(["C", "O"], [("C", "O", kc.rate(1e6, "glutamate")), ("O", "C", 100.0)],
                    {"O": 50e-12}, ligands=["glutamate", "ketamine", "mg"])
    for a, b in zip(got.compile(sch), kc.Protocol(ref).compile(sch)):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_waveform_fast_path_is_taken_and_refused_where_step_would_refuse(monkeypatch):
    """Valid samples are kept as columns, and their steps built through Step._trusted (one
    call per sample) only when first needed; a ligand named like a Step argument, a bad
    temperature or a bad value goes the per-sample path with Step's own error, prefixed by the
    sample; a Protocol subclass gets its own __init__."""
    calls = []
    real = kc.Step._trusted.__func__

    def counting(cls, *a):
        calls.append(1)
        return real(cls, *a)
    monkeypatch.setattr(kc.Step, "_trusted", classmethod(counting))
    t = np.array([0.0, 0.1, 0.25])
    p = kc.Protocol.from_waveform(t, 0.4, V=[-0.07, -0.03, 0.02], glutamate=[0, 1e-3, 0])
    assert calls == [] and p._built is None
    assert len(p.steps) == 3 and len(calls) == 3
    p.steps
    assert len(calls) == 3  # built once
    calls.clear()
    for name in ("duration", "self"):
        with pytest.raises(TypeError, match=r"from_waveform sample 0 \(t = 0 s\).*multiple values"):
            kc.Protocol.from_waveform(t, 0.4, **{name: 1e-3})
    for bad in (1000.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match=r"from_waveform sample 0 \(t = 0 s\): .*temperature"):
            kc.Protocol.from_waveform(t, 0.4, temperature=bad)
    assert calls == []

    class Tagged(kc.Protocol):
        __slots__ = ("tag",)

        def __init__(self, steps, rest=None):
            super().__init__(steps, rest)
            self.tag = "mine"
    p = Tagged.from_waveform(t, 0.4, V=[-0.07, -0.03, 0.02])
    assert type(p) is Tagged and p.tag == "mine" and len(p) == 3


@pytest.mark.parametrize("bad, match", [
    ({"V": [-0.07, np.nan, 0.0]}, r"sample 1 \(t = 0.1 s\).*V"),
    ({"V": [-0.07, 0.0, 50.0]}, r"sample 2 \(t = 0.25 s\)"),
    ({"glutamate": [0.0, -1e-3, 0.0]}, r"sample 1 .*glutamate"),
    ({"glutamate": [0.0, 1e-3, np.inf]}, r"sample 2 .*glutamate"),
])
def test_waveform_bad_sample_is_named(bad, match):
    """A value Step would refuse sends from_waveform to the per-sample path, which names it."""
    with pytest.raises(ValueError, match=match):
        kc.Protocol.from_waveform(np.array([0.0, 0.1, 0.25]), 0.4, **bad)


def _compile_reference(protocol, scheme):
    """Protocol.compile as a plain loop over the steps (the algorithm before it was split in a
    numbering pass and a row pass): one row per new condition key, adjacent equal conditions
    merged with math.fsum."""
    ligs = scheme.ligands
    table, rows, durs, idx, run = {}, [], [], [], []
    for i, st in enumerate(protocol.steps):
        ck = st.conditions_key()
        j = table.get(ck)
        if j is None:
            row = [st.V, scheme.temperature if st.temperature is None else st.temperature] + [0.0] * len(ligs)
            for name, c in st.concentrations.items():
                if name not in ligs:
                    raise ValueError(f"protocol step {i} sets ligand {name!r}")
                row[2 + ligs.index(name)] = c
            j = table[ck] = len(rows)
            rows.append(row)
        if idx and idx[-1] == j:
            run.append(st.duration)
        else:
            if idx:
                durs.append(math.fsum(run))
            run = [st.duration]
            idx.append(j)
    durs.append(math.fsum(run))
    return (np.asarray(durs, dtype=float), np.asarray(idx, dtype=np.int64),
            np.array(rows, dtype=float).reshape(len(rows), 2 + len(ligs)))


def test_compile_matches_the_reference_loop_on_random_protocols(scheme):
    """Byte-identical to the reference on 300 random protocols: repeated and adjacent equal
    conditions, explicit and default temperatures (different conditions even when equal in
    value), zero concentrations, -0.0 V; and an unknown ligand names the first step setting it."""
    rng = np.random.default_rng(11)
    for _ in range(300):
        steps = []
        for _ in range(int(rng.integers(1, 40))):
            kw = {}
            if rng.random() < 0.6:
                kw["glutamate"] = float(rng.choice([0.0, 1e-3, 1e-4]))
            if rng.random() < 0.3:
                kw["ketamine"] = float(rng.choice([0.0, 1e-6]))
            T = None if rng.random() < 0.7 else float(rng.choice([scheme.temperature, 300.0]))
            steps.append(kc.Step(float(rng.choice([1e-3, 0.1, 0.3])), V=float(rng.choice([-0.07, -0.0, 0.0, 0.02])),
                                 temperature=T, **kw))
        p = kc.Protocol(steps)
        for a, b in zip(p.compile(scheme), _compile_reference(p, scheme)):
            assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    p = kc.Protocol([kc.Step(0.1, glutamate=1e-3), kc.Step(0.1, V=-0.03, mg=1e-3), kc.Step(0.1, mg=2e-3)])
    with pytest.raises(ValueError, match=r"protocol step 1 sets ligand 'mg'.*ligands are \['glutamate', 'ketamine'\]"):
        p.compile(scheme)


def test_waveform_compile_from_columns_matches_its_steps():
    """A from_waveform protocol compiles from its sample columns (numpy) instead of its Steps:
    byte-identical to compiling the same Steps (Protocol(list(steps)) has no columns) on 200
    random waveforms with repeated, adjacent-equal and re-appearing conditions, -0.0 and 0.0 V
    (one condition; the first sample's value kept), zero and constant concentrations, explicit
    and default temperatures; and an unknown ligand is named as the steps path names it."""
    rng = np.random.default_rng(5)
    sch = kc.Scheme(["C", "O"], [("C", "O", kc.rate(1e6, "glutamate")), ("O", "C", 100.0)],
                    {"O": 50e-12}, ligands=["glutamate", "ketamine", "mg"])
    for _ in range(200):
        n = int(rng.integers(1, 60))
        t = np.cumsum(np.r_[0.0, rng.choice([1e-4, 2.5e-4, 1e-3], n - 1)])
        V = rng.choice([-0.07, -0.0, 0.0, 0.02], n)
        kw = {}
        if rng.random() < 0.7:
            kw["glutamate"] = rng.choice([0.0, 1e-3, 1e-4], n) if rng.random() < 0.7 else 1e-3
        if rng.random() < 0.4:
            kw["ketamine"] = rng.choice([0.0, 1e-6], n)
        if rng.random() < 0.2:
            kw["mg"] = 0.0
        elif rng.random() < 0.3:
            kw["mg"] = rng.choice([-0.0, 0.0, 1e-3], n)
        if rng.random() < 0.3:
            kw["temperature"] = float(rng.choice([sch.temperature, 300.0]))
        p = kc.Protocol.from_waveform(t, t[-1] + float(rng.choice([1e-4, 0.3])), V=V, **kw)
        assert p._columns is not None
        ref = kc.Protocol(list(p.steps))
        assert ref._columns is None
        for a, b in zip(p.compile(sch), ref.compile(sch)):
            assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    # one long waveform of few distinct values (re-appearing far apart, adjacent runs, -0.0)
    n = 20000
    t = np.arange(n) * 1e-4
    p = kc.Protocol.from_waveform(t, n * 1e-4, V=rng.choice([-0.07, -0.0, 0.0, 0.02, -0.05], n),
                                  glutamate=np.repeat(rng.choice([0.0, -0.0, 1e-3, 1e-4], n // 50), 50),
                                  ketamine=rng.choice([0.0, 1e-6], n))
    for a, b in zip(p.compile(sch), kc.Protocol(list(p.steps)).compile(sch)):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    # the caller's arrays changed afterwards do not change the protocol
    t = np.arange(5) * 1e-3
    V, glu = np.full(5, -0.07), np.full(5, 1e-3)
    p = kc.Protocol.from_waveform(t, 5e-3, V=V, glutamate=glu)
    V[:] = 0.01
    glu[:] = 0.0
    for a, b in zip(p.compile(sch), kc.Protocol(list(p.steps)).compile(sch)):
        assert a.tobytes() == b.tobytes()
    t = np.arange(4) * 1e-3
    p = kc.Protocol.from_waveform(t, 4e-3, glutamate=1e-3, bogus=[0.0, 0.0, 1e-6, 0.0], none=0.0)
    with pytest.raises(ValueError, match=r"protocol step 2 sets ligand 'bogus'"):
        p.compile(sch)
    with pytest.raises(ValueError, match=r"protocol step 2 sets ligand 'bogus'"):
        kc.Protocol(list(p.steps)).compile(sch)
    # two unknown ligands: the one set first in time is named, by both paths
    p = kc.Protocol.from_waveform(t, 4e-3, zz=[1e-6, 0.0, 0.0, 0.0], aa=[0.0, 0.0, 0.0, 1e-6])
    for q in (p, kc.Protocol(list(p.steps))):
        with pytest.raises(ValueError, match=r"protocol step 0 sets ligand 'zz'"):
            q.compile(sch)


def _waveform_args(rng, n):
    t = np.cumsum(np.r_[0.0, rng.choice([1e-4, 2.5e-4, 1e-3], n - 1)])
    kw = {"V": rng.choice([-0.07, -0.0, 0.0, 0.02], n),
          "glutamate": rng.choice([0.0, 1e-3, 1e-4], n), "ketamine": rng.choice([0.0, 1e-6], n),
          "mg": float(rng.choice([0.0, 1e-3]))}
    if rng.random() < 0.3:
        kw["temperature"] = 300.0
    return t, t[-1] + 1e-3, kw


def test_waveform_protocol_works_from_its_columns_without_building_steps():
    """A from_waveform protocol answers len, duration, boundaries (bit for bit the Python Kahan
    sum over its Steps), ligands, rest_conditions, voltage_at, step_index_at, == and pickling
    from its columns, identically to Protocol(Steps); it builds no Step until asked, then
    equals and hashes like Protocol of the same Steps."""
    rng = np.random.default_rng(11)
    for _ in range(60):
        n = int(rng.integers(1, 80))
        t, t_end, kw = _waveform_args(rng, n)
        lazy = kc.Protocol.from_waveform(t, t_end, **kw)
        ref = kc.Protocol(_steps_from_samples(t, t_end, **kw))  # (checked Steps, one by one)
        assert ref._columns is None
        assert len(lazy) == len(ref) == n
        assert lazy.boundaries.tobytes() == ref.boundaries.tobytes() and not lazy.boundaries.flags.writeable
        assert lazy.duration == ref.duration and lazy.ligands == ref.ligands
        assert lazy.rest_conditions == ref.rest_conditions
        assert list(lazy.rest_conditions) == list(ref.rest_conditions)
        times = np.sort(rng.uniform(0, t_end, 50))
        assert lazy.voltage_at(times, 1e-4).tobytes() == ref.voltage_at(times, 1e-4).tobytes()
        assert np.array_equal(lazy.step_index_at(times, 1e-4), ref.step_index_at(times, 1e-4))
        twin = kc.Protocol.from_waveform(t, t_end, **kw)
        assert lazy == twin and not (lazy != twin)
        assert hash(lazy) == hash(twin) == hash(ref) and twin in {lazy: 1} and lazy in {ref}
        assert ref == lazy and lazy == ref  # (a Steps protocol compared by its columns)
        back = pickle.loads(pickle.dumps(lazy))
        assert type(back) is kc.Protocol and back == lazy
        assert lazy._built is None and twin._built is None and back._built is None
        # one sample changed: unequal, by the columns and by the Steps alike
        i = int(rng.integers(n))
        for change in ("V", "glutamate", "t_end", "temperature"):
            kw2 = {k: (np.array(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
            t_end2 = t_end
            if change == "t_end":
                t_end2 = t_end + 1e-3
            elif change == "temperature":
                kw2["temperature"] = 301.0
            else:
                kw2[change][i] = 0.01 if change == "V" else 5e-4
            other = kc.Protocol.from_waveform(t, t_end2, **kw2)
            assert lazy != other and other != lazy
            assert kc.Protocol(list(other.steps)) != ref
        # once built, equality and hash still match Protocol(Steps)
        assert lazy.steps == ref.steps and lazy == ref and ref == lazy and hash(lazy) == hash(ref)
        assert lazy._built is not None
    # -0.0 and 0.0 are equal samples (Steps compare numbers), in both representations
    t = np.arange(3) * 1e-3
    a = kc.Protocol.from_waveform(t, 3e-3, V=[-0.0, -0.07, 0.0], glutamate=[0.0, 1e-3, -0.0])
    b = kc.Protocol.from_waveform(t, 3e-3, V=[0.0, -0.07, -0.0], glutamate=[-0.0, 1e-3, 0.0])
    assert a == b and a._built is None
    assert kc.Protocol(list(a.steps)) == kc.Protocol(list(b.steps))
    # a ligand that is zero throughout is not one of the protocol's ligands, either way
    c = kc.Protocol.from_waveform(t, 3e-3, glutamate=1e-3, ketamine=[0.0, -0.0, 0.0])
    assert c.ligands == ("glutamate",) == kc.Protocol(list(c.steps)).ligands
    assert c == kc.Protocol.from_waveform(t, 3e-3, glutamate=1e-3)


def test_waveform_protocol_engines_and_pickle_do_not_build_steps():
    """solve, simulate (ssa, population, auto; plans reused), simulate_events, the results'
    voltages and a pickle round trip use the columns: no Step is built, results equal those of
    Protocol(Steps) to the byte, and the pickle holds the sample columns."""
    sch = kc.Scheme(["C", "O", "B"], [("C", "O", kc.rate(1e6, "glutamate")), ("O", "C", 200.0),
                                      ("O", "B", kc.rate(1e5, "ketamine")), ("B", "O", 5.0)],
                    {"O": 50e-12}, ligands=["glutamate", "ketamine"])
    rng = np.random.default_rng(2)
    n = 4000
    t = np.arange(n) * 1e-4
    kw = {"V": np.linspace(-0.08, 0.02, n), "glutamate": rng.choice([0.0, 1e-4], n), "ketamine": 1e-6}
    lazy = kc.Protocol.from_waveform(t, n * 1e-4, **kw)
    ref = kc.Protocol(list(kc.Protocol.from_waveform(t, n * 1e-4, **kw).steps))
    r1, r2 = kc.solve(sch, lazy, dt=1e-4), kc.solve(sch, ref, dt=1e-4)
    assert r1.occupancy.tobytes() == r2.occupancy.tobytes() and r1.V.tobytes() == r2.V.tobytes()
    for method, N in (("ssa", 3), ("population", 1000), ("auto", 10)):
        for seed in (1, 2):  # (the second call of each reuses the plan)
            a = kc.simulate(sch, lazy, dt=2e-4, n_channels=N, method=method, rng=seed, n_threads=1)
            b = kc.simulate(sch, ref, dt=2e-4, n_channels=N, method=method, rng=seed, n_threads=1)
            assert a.counts.tobytes() == b.counts.tobytes() and a.V.tobytes() == b.V.tobytes()
    ea, eb = kc.simulate_events(sch, lazy, n_trials=2, rng=4), kc.simulate_events(sch, ref, n_trials=2, rng=4)
    for x, y in zip(ea, eb):
        assert x[0].tobytes() == y[0].tobytes() and x[1].tobytes() == y[1].tobytes()
    blob = pickle.dumps(lazy)
    back = pickle.loads(blob)
    assert kc.simulate(sch, back, dt=2e-4, n_channels=3, rng=9).counts.tobytes() == \
        kc.simulate(sch, ref, dt=2e-4, n_channels=3, rng=9).counts.tobytes()
    assert lazy._built is None and back._built is None
    assert len(blob) < 8 * 4 * n + 2000  # the four sample columns (durations, V, two ligands)


def test_compositions_with_waveform_protocols_keep_columns():
    """step + waveform, waveform + protocol, waveform * n and Protocol([...], rest=) with a
    from_waveform part keep columns (no Step built) when all parts share one temperature, and
    equal, hash and compile like Protocol of the flattened Steps; the leading part's rest is
    kept as Protocol keeps it.  Parts of different temperatures fall back to Steps."""
    rng = np.random.default_rng(21)
    sch = kc.Scheme(["C", "O"], [("C", "O", kc.rate(1e6, "glutamate")), ("O", "C", 100.0)],
                    {"O": 50e-12}, ligands=["glutamate", "ketamine", "mg"])

    def waveform():
        n = int(rng.integers(1, 30))
        t, t_end, kw = _waveform_args(rng, n)
        kw.pop("temperature", None)
        return t, t_end, kw

    def part(kind):
        if kind == "step":
            return kc.Step(float(rng.choice([1e-3, 0.2])), V=float(rng.choice([-0.07, -0.0])),
                           **({"ketamine": 1e-6} if rng.random() < 0.5 else {}))
        if kind == "train":
            return kc.pulse_train(2, 100.0, 1e-3, during={"glutamate": 1e-3}, between={"mg": 1e-3})
        return ("wave", waveform())

    kinds_seen = set()
    for _ in range(40):
        kinds = list(rng.choice(["step", "train", "wave"], int(rng.integers(1, 5))))
        if "wave" not in kinds:
            kinds.append("wave")
        specs = [part(k) for k in kinds]

        def build(lazy):
            out = []
            for sp in specs:
                if isinstance(sp, tuple):
                    t, t_end, kw = sp[1]
                    w = kc.Protocol.from_waveform(t, t_end, **kw)
                    out.append(w if lazy else kc.Protocol(list(w.steps)))
                else:
                    out.append(sp)
            return out
        rest = kc.Step(1.0, glutamate=1e-4) if rng.random() < 0.3 else None
        got = kc.Protocol(build(True), rest=rest)
        ref = kc.Protocol(build(False), rest=rest)
        waves = sum(len(p) for p, sp in zip(build(True), specs) if isinstance(sp, tuple))
        assert (got._built is None) == (2 * waves >= len(ref)) and ref._columns is None
        kinds_seen.add(got._built is None)
        assert got.rest == ref.rest and got.rest_conditions == ref.rest_conditions
        assert len(got) == len(ref) and got.boundaries.tobytes() == ref.boundaries.tobytes()
        assert got.ligands == ref.ligands
        for a, b in zip(got.compile(sch), ref.compile(sch)):
            assert a.tobytes() == b.tobytes()
        n = int(rng.integers(1, 4))
        rep = got * n
        assert (rep._built is None) == (got._built is None) and rep == ref * n and rep.rest == (ref * n).rest
        first = build(True)
        chained = first[0]
        for x in first[1:]:
            chained = chained + x
        assert chained == kc.Protocol(build(False)) and hash(chained) == hash(kc.Protocol(build(False)))
        assert got == ref and hash(got) == hash(ref) and got.steps == ref.steps
    assert kinds_seen == {True, False}  # both columns and the Steps path were taken
    t = np.arange(3) * 1e-3
    w = kc.Protocol.from_waveform(t, 3e-3, glutamate=[0.0, 1e-3, 0.0])
    warm = kc.Step(0.1, temperature=310.0) + w  # two temperatures (310 K and the scheme's)
    assert warm._built is not None
    assert warm.steps == (kc.Step(0.1, temperature=310.0),) + kc.Protocol(list(w.steps)).steps


def _fresh_waveform(n=3, t_end=None, **kw):
    t = np.arange(n) * 1e-3
    return kc.Protocol.from_waveform(t, t_end or n * 1e-3, **(kw or {"glutamate": np.r_[0.0, 1e-3, np.zeros(n - 2)]}))


def test_compositions_with_waveform_parts_check_like_steps(monkeypatch):
    """With a column part, Protocol([...]) refuses a bad part, too many steps and an infinite
    total duration before concatenating anything, with the Steps path's messages and no numpy
    warning; Steps holding most of the samples keep the Steps path (shared, not rebuilt)."""
    import warnings
    w = _fresh_waveform()
    with pytest.raises(TypeError, match="Step or Protocol objects, got str"):
        kc.Protocol([w, "not a step"])
    assert w._built is None  # (refused before any Step was built)
    monkeypatch.setattr(kc.protocol, "MAX_STEPS", 10)
    for parts in ([w, w, w, w], [w, kc.Step(1.0), w, w, w], [kc.Step(1.0)] * 8 + [w]):
        got_msg = ref_msg = None
        with pytest.raises(ValueError, match="MAX_STEPS") as got:
            kc.Protocol([p if p is not w else _fresh_waveform() for p in parts])
        with pytest.raises(ValueError, match="MAX_STEPS") as ref:
            kc.Protocol([p if p is not w else kc.Protocol(list(_fresh_waveform().steps)) for p in parts])
        got_msg, ref_msg = str(got.value), str(ref.value)
        assert got_msg == ref_msg
    monkeypatch.undo()
    huge = dict(t_end=1.5e308, glutamate=[0.0, 1e-3])
    t = np.array([0.0, 1e308])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="not finite") as got:
            kc.Protocol([kc.Protocol.from_waveform(t, **huge)] * 2)
    with pytest.raises(ValueError, match="not finite") as ref:
        kc.Protocol([kc.Protocol(list(kc.Protocol.from_waveform(t, **huge).steps))] * 2)
    assert str(got.value) == str(ref.value) and "largest step 1e+308 s" in str(got.value)
    # Steps holding most of the samples: the Steps path, sharing the train's Steps
    train = kc.pulse_train(50, 100.0, 1e-3, during={"glutamate": 1e-3})
    mixed = train + _fresh_waveform()
    assert mixed._built is not None and mixed.steps[0] is train.steps[0]
    assert mixed.steps == train.steps + _fresh_waveform().steps and mixed.rest == train.rest
    mostly_waveform = kc.Step(0.1) + _fresh_waveform(n=50)
    assert mostly_waveform._built is None


def test_waveform_protocol_repr_columns_and_subclass():
    """repr builds no Step; the private columns are read-only (copies and pickles cannot change
    one another); a Protocol subclass's __init__ gets a list of Steps, as from other builders."""
    w = _fresh_waveform(n=1000)
    assert repr(w) == "Protocol(1000 steps, 1 s)" and w._built is None
    for a in (w._columns[0], w._columns[1], *w._columns[3].values()):
        assert not a.flags.writeable
    back = pickle.loads(pickle.dumps(w))
    assert all(not a.flags.writeable for a in (back._columns[0], back._columns[1]))
    got = []

    class Tagged(kc.Protocol):
        __slots__ = ()

        def __init__(self, steps, rest=None):
            got.append(type(steps))
            super().__init__(steps + [], rest)
    assert len(Tagged.from_waveform(np.arange(3) * 1e-3, 3e-3, glutamate=1e-3)) == 3 and got == [list]


@pytest.mark.filterwarnings("ignore:initial.*default start:UserWarning")  # (pulse trains from t = 0)
def test_equal_waveform_protocols_share_a_simulate_plan():
    """simulate's plan cache keys on the protocol (hash from three Steps, == on the columns):
    equal column protocols built separately (and one whose Steps were since built) share one
    plan; a protocol differing in one sample, or in its rest, gets its own."""
    sim = importlib.import_module("ketacore.simulate")
    sch = kc.Scheme(["C", "O"], [("C", "O", kc.rate(1e6, "glutamate")), ("O", "C", 100.0)],
                    {"O": 50e-12}, ligands=["glutamate"])
    n = 500
    glu = np.where(np.arange(n) % 7 == 0, 1e-4, -0.0)

    def make(g=glu, rest=None):
        p = kc.Protocol.from_waveform(np.arange(n) * 1e-4, n * 1e-4, glutamate=g)
        return p if rest is None else kc.Protocol(p, rest=rest)
    sim._PLANS.clear()
    first = kc.simulate(sch, make(), dt=1e-4, n_channels=5, rng=1)
    assert len(sim._PLANS) == 1
    p = make(np.where(glu == 0, 0.0, glu))  # -0.0 and 0.0: equal samples
    p.steps
    again = kc.simulate(sch, p, dt=1e-4, n_channels=5, rng=1)
    assert len(sim._PLANS) == 1 and again.counts.tobytes() == first.counts.tobytes()
    other = glu.copy()
    other[3] = 2e-4
    kc.simulate(sch, make(other), dt=1e-4, n_channels=5, rng=1)
    kc.simulate(sch, make(rest=kc.Step(1.0, glutamate=1e-3)), dt=1e-4, n_channels=5, rng=1)
    assert len(sim._PLANS) == 3


@pytest.mark.filterwarnings("ignore:initial.*default start:UserWarning")  # (pulse trains from t = 0)
def test_plans_of_long_protocols_are_few(monkeypatch):
    """Plans of long protocols (above _LONG_PROTOCOL segments: their compiled arrays are held)
    count as large: only the newest _MAX_LARGE_PLANS of them are kept."""
    sim = importlib.import_module("ketacore.simulate")
    monkeypatch.setattr(sim, "_LONG_PROTOCOL", 50)  # (each waveform below: >= 75 segments)
    sch = kc.Scheme(["C", "O"], [("C", "O", kc.rate(1e6, "glutamate")), ("O", "C", 100.0)],
                    {"O": 50e-12}, ligands=["glutamate"])
    sim._PLANS.clear()
    kc.simulate(sch, kc.Step(0.01, glutamate=1e-4), dt=1e-4, n_channels=5, rng=1)  # short: kept
    for i in range(7):
        glu = np.where(np.arange(300) % (i + 2) == 0, 1e-4, 0.0)
        kc.simulate(sch, kc.Protocol.from_waveform(np.arange(300) * 1e-4, 0.03, glutamate=glu),
                    dt=1e-4, n_channels=5, rng=1)
    assert sum(sim._large_plan(p) for p in sim._PLANS.values()) == sim._MAX_LARGE_PLANS
    assert len(sim._PLANS) == sim._MAX_LARGE_PLANS + 1


def test_column_and_steps_equality_agree_on_small_variants():
    """== between any two of {column protocol, Protocol of its Steps} agrees with == between
    the Steps protocols, and equal ones hash alike, over small waveforms whose samples differ in
    -0.0/0.0/non-zero V and concentrations, ligands zero throughout, temperature, length, and
    Steps protocols of several temperatures (which no column protocol equals)."""
    rng = np.random.default_rng(8)
    cols, steps = [], []
    for _ in range(60):
        n = int(rng.integers(1, 4))
        t = np.arange(n) * 1e-3
        kw = {"V": rng.choice([-0.0, 0.0, -0.07], n), "glutamate": rng.choice([-0.0, 0.0, 1e-3], n)}
        if rng.random() < 0.3:
            kw["mg"] = 0.0
        if rng.random() < 0.3:
            kw["temperature"] = 300.0
        w = kc.Protocol.from_waveform(t, n * 1e-3, **kw)
        cols.append(w)
        steps.append(kc.Protocol(_steps_from_samples(t, n * 1e-3, **kw)))
    mixed = kc.Protocol([kc.Step(1e-3, temperature=300.0), kc.Step(1e-3)])
    steps.append(mixed)
    cols.append(kc.Protocol(list(mixed.steps)))  # (no column form: its Steps again)
    n_equal = 0
    for i in range(len(cols)):
        for j in range(len(cols)):
            truth = steps[i] == steps[j]
            n_equal += truth
            for a in (cols[i], steps[i]):
                for b in (cols[j], steps[j]):
                    assert (a == b) == truth and (a != b) == (not truth), (i, j)
                    if truth:
                        assert hash(a) == hash(b)
    assert all(c._built is None for c in cols[:-1])
    assert n_equal > len(cols) + 20  # (distinct objects that are equal were compared too)


def test_long_protocols_hash_alike_when_equal_and_apart_when_not():
    """Up to _HASH_ALL_STEPS steps the hash is that of all Steps (a column protocol's built for
    it, not kept), above it a digest of the columns (a Steps protocol's made from its Steps):
    either way a column protocol and the Protocol of its Steps (with -0.0 for 0.0, with a rest)
    hash alike, the column one without keeping Steps; families that differ in one step or
    sample only (a pulse moved by one sample) hash apart."""
    rng = np.random.default_rng(4)
    limit = kc.protocol._HASH_ALL_STEPS
    for n in (65, limit, limit + 1, limit + 1000):
        t = np.arange(n) * 1e-4
        V = rng.choice([-0.07, -0.0, 0.0, 0.02], n)
        glu = rng.choice([0.0, -0.0, 1e-3], n)
        w = kc.Protocol.from_waveform(t, n * 1e-4, V=V, glutamate=glu, mg=1e-3)
        ref = kc.Protocol(_steps_from_samples(t, n * 1e-4, V, glutamate=glu, mg=1e-3))
        flipped = kc.Protocol.from_waveform(t, n * 1e-4, V=np.where(V == 0, -V, V),
                                            glutamate=np.where(glu == 0, -glu, glu), mg=1e-3)
        assert hash(w) == hash(ref) == hash(flipped) and w == ref == flipped
        rest = kc.Step(1.0, glutamate=1e-4)
        assert hash(kc.Protocol(w, rest=rest)) == hash(kc.Protocol(ref, rest=rest))
        assert hash(kc.Protocol(w, rest=rest)) != hash(w)
        assert w._built is None and flipped._built is None
    # one family: 100-step pulse trains differing only in step 10's voltage
    base = list(kc.pulse_train(50, 100.0, 1e-3, during={"glutamate": 1e-3}).steps)
    family = []
    for k in range(300):
        steps = list(base)
        steps[10] = steps[10].replace(V=-0.07 + 1e-4 * k)
        family.append(kc.Protocol(steps))
    assert len({hash(p) for p in family}) == 300 and len(set(family)) == 300
    # and waveforms of 10^4 samples differing in one sample
    t = np.arange(10_000) * 1e-4
    waves = []
    for k in range(100):
        glu = np.zeros(t.size)
        glu[5001 + k] = 1e-3
        waves.append(kc.Protocol.from_waveform(t, 1.0, glutamate=glu))
    assert len({hash(p) for p in waves}) == 100 and all(p._built is None for p in waves)


def test_temperature_in_celsius_by_mistake_gets_its_conversion_everywhere():
    """One rule (_validate.temperature) for every API taking a temperature: a value in the
    Celsius range is answered with its own conversion."""
    with pytest.raises(ValueError, match=r"temperature=35.0 K .*35 °C is 308.15 K: write ketacore.units.celsius\(35\) in Python, \"308.15 K\" in a study file"):
        kc.Step(1.0, temperature=35)
    g = kc.models.get("destexhe1994")
    with pytest.raises(ValueError, match=r"37.5 °C is 310.65 K: write ketacore.units.celsius\(37.5\)"):
        g.q_matrix(glutamate=1e-3, temperature=37.5)
    with pytest.raises(ValueError, match=r"temperature=500.0 K .*celsius\(22\)"):   # (not Celsius)
        kc.Step(1.0, temperature=500.0)


def test_pulse_train_rest_gives_a_drug_naive_default_start():
    """rest= sets the default start of a train: by default the between-pulse conditions (drug
    in the bath, the channels pre-equilibrated in it); rest={} starts drug-free, the same as
    passing initial={"V": V} to every solve (user audit: that was the only spelling)."""
    s = kc.block("erreger2005_2a", "ketamine")
    kw = dict(during={"glutamate": 1e-3}, between={"ketamine": 1e-6}, V=-0.07)
    soaked = kc.pulse_train(3, 1.0, 1e-3, **kw)
    naive = kc.pulse_train(3, 1.0, 1e-3, rest={}, **kw)
    assert soaked.rest_conditions["ketamine"] == 1e-6
    assert naive.rest_conditions.get("ketamine", 0.0) == 0.0 and naive.rest_conditions["V"] == -0.07
    assert naive.steps == soaked.steps
    r = kc.solve(s, naive, 1e-3)
    ref = kc.solve(s, soaked, 1e-3, initial={"V": -0.07})
    np.testing.assert_array_equal(r.occupancy, ref.occupancy)
    blocked = [i for i, st in enumerate(s.states) if "·ket" in st]
    assert r.occupancy[0, blocked].sum() == 0.0
    with pytest.raises(ValueError, match="rest holds ligand concentrations only"):
        kc.pulse_train(3, 1.0, 1e-3, rest={"V": -0.05})
    with pytest.raises(TypeError, match="rest must be a mapping"):
        kc.pulse_train(3, 1.0, 1e-3, rest=[("ketamine", 1e-6)])
