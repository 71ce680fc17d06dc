"""kc.Study / kc.run_study: TOML round-trip and keyed errors; bit-identical results for any
chunking and executor (threads, dask LocalCluster); resumable output folders; conflicts refused.

Bit identity is tested on the bytes of the NetCDF results file, the strongest form: any change
in any number (or attribute) would change them.
"""
import dataclasses
import concurrent.futures as cf
import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import ketacore as kc
from ketacore import study as S
from _study_fixtures import trapping_toml

xr = pytest.importorskip("xarray")
pytest.importorskip("netCDF4")

SMALL = textwrap.dedent("""
    name = "small"
    model = "erreger2005_2a"
    blockers = ["ketamine"]
    n_channels = 50
    n_trials = 10
    dt = "20 ms"
    rng = 7
    keep_trials = 3

    [parameters]
    glutamate = "1 mM"
    ketamine = "10 uM"

    [protocols.trap]
    initial = "R"
    analysis = { kind = "trapping", window = "0.2 s", early = "0.1 s" }

    [protocols.trap.sweep]
    ketamine = ["1 uM", "10 uM"]

""") + trapping_toml("protocols.trap", glutamate="$glutamate", ketamine="$ketamine") + textwrap.dedent("""

    [protocols.train]
    initial = "R"
    dt = "2 ms"
    analysis = { kind = "use_dependence" }

    [protocols.train.parameters]
    frequency = "5 Hz"
    ketamine = "3 uM"

    [protocols.train.sweep]
    frequency = ["5 Hz", "20 Hz"]

    [[protocols.train.segments]]
    train = { n_pulses = "round(1 s * $frequency)", frequency = "$frequency", width = "2 ms", during = { glutamate = "$glutamate" }, between = { ketamine = "$ketamine" } }

    [protocols.dr]
    analysis = { kind = "dose_response", concentration = "ketamine" }

    [protocols.dr.sweep]
    ketamine = ["0.3 uM", "1 uM", "3 uM"]

    [[protocols.dr.segments]]
    duration = "0.4 s"
    glutamate = "$glutamate"
    ketamine = "$ketamine"

    [outputs]
    figures = false
""")


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def small():
    return kc.Study.from_toml(SMALL)


@pytest.fixture(scope="module")
def reference(small, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    tree = kc.run_study(small, output=out, progress=False, workers=1, chunk_trials=10)
    return tree, sha(out / "results.nc")


# ----------------------------------------------------------------------------- spec
def test_toml_round_trip(small, tmp_path):
    text = small.to_toml()
    again = kc.Study.from_toml(text)
    assert again == small
    assert again.to_toml() == text
    p = tmp_path / "s.toml"
    small.to_toml(p)
    assert kc.Study.from_toml(p) == small
    d = S.default_study()
    assert kc.Study.from_toml(d.to_toml()) == d


def test_python_study_single_protocol_round_trip():
    from ketacore.units import s, mM, uM
    st = kc.Study(model="erreger2005_2a", blockers=["ketamine"], n_trials=4, n_channels=20, rng=3,
                  parameters={"ketamine": 1 * uM},
                  protocol=[kc.Step(0.5 * s, glutamate=1 * mM, ketamine=1 * uM),
                            {"duration": "0.5 s", "glutamate": "1 mM", "ketamine": "$ketamine"}],
                  sweep={"ketamine": ["1 uM", 3e-6]}, initial="R")
    text = st.to_toml()
    assert "[protocol]" in text and "[sweep]" in text
    assert kc.Study.from_toml(text) == st
    assert [p["ketamine"] for p in st.points("main")] == [1e-6, 3e-6]


@pytest.mark.parametrize("edit, key", [
    (("[protocols.trap.sweep]\nketamine = [\"1 uM\", \"10 uM\"]", "[protocols.trap.sweep]\nketamine = []"),
     "[protocols.trap.sweep].ketamine"),
    (("[protocols.trap.sweep]\nketamine = [\"1 uM\", \"10 uM\"]", "[protocols.trap.sweep]\nketamine = [\"1 uZ\"]"),
     "[protocols.trap.sweep].ketamine[0]: unknown unit"),
    (("[protocols.trap.sweep]\nketamine = [\"1 uM\", \"10 uM\"]", "[protocols.trap.sweep]\nnope = [1, 2]"),
     "[protocols.trap.sweep].nope: is not a parameter"),
    (("n_trials = 10", "n_trials = 0"), "n_trials: must be an integer >= 1"),
    (("n_trials = 10", "n_trial = 10"), "n_trial: unknown key"),
    (("duration = \"2 s\"\nglutamate = \"$glutamate\"\nketamine = \"$ketamine\"",
      "duration = \"2 s\"\nglutamate = \"$glutamate\"\nketamine = \"$ketamin\""),
     "[protocols.trap].segments[1].ketamine: unknown name 'ketamin'"),
    (("[[protocols.trap.segments]]\nlabel = \"wash\"\nduration = \"2 s\"",
      "[[protocols.trap.segments]]\nlabel = \"wash\"\nduration = \"-2 s\""),
     "[protocols.trap].segments[2]: duration"),
    (("blockers = [\"ketamine\"]", "blockers = [\"ketamine\"]\nrecord = \"everything\""), "record: must be one of"),
    (("analysis = { kind = \"trapping\"", "analysis = { kind = \"trappin\""), "[protocols.trap].analysis: kind"),
])
def test_errors_name_the_key(tmp_path, edit, key):
    old, new = edit
    text = textwrap.dedent(SMALL)
    assert old in text, old
    p = tmp_path / "study.toml"
    p.write_text(text.replace(old, new, 1))
    with pytest.raises(S.StudyError) as e:
        kc.Study.from_toml(p)
    assert str(e.value).startswith("study.toml: "), str(e.value)
    assert key in str(e.value), str(e.value)


def test_single_protocol_sweep_error_key(tmp_path):
    p = tmp_path / "study.toml"
    p.write_text('model = "erreger2005_2a"\nblockers = ["ketamine"]\n[protocol]\n[[protocol.segments]]\n'
                 'duration = "1 s"\nketamine = "$ketamine"\n[parameters]\nketamine = "1 uM"\n'
                 '[sweep]\nketamine = ["1 uM", "bad"]\n')
    with pytest.raises(S.StudyError, match=r"^study\.toml: \[sweep\]\.ketamine\[1\]: "):
        kc.Study.from_toml(p)


def test_unknown_ligand_and_state_errors(tmp_path):
    old = 'glutamate = "$glutamate"\n\n[[protocols.trap.segments]]\nlabel = "block"'
    assert old in SMALL
    bad = SMALL.replace(old, old.replace("glutamate =", "glutamat ="), 1)
    st = kc.Study.from_toml(bad)
    with pytest.raises(S.StudyError, match=r"\[protocols.trap\].segments: .*glutamat"):
        kc.run_study(st, progress=False, figures=False)
    st = kc.Study.from_toml(SMALL.replace('initial = "R"', 'initial = "Q9"', 1))
    with pytest.raises(S.StudyError, match=r"\[protocols.trap\].initial: unknown state 'Q9'"):
        kc.run_study(st, progress=False, figures=False)


def test_expression_evaluator():
    env = {"f": 5.0, "T": 2.0}
    assert S._evaluate("round($T * $f)", env, "x") == 10
    assert S._evaluate("10 uM", env, "x") == pytest.approx(1e-5)
    assert S._evaluate("-70 mV", env, "x") == pytest.approx(-0.07)
    assert S._evaluate("${T} * 3 ms", env, "x") == pytest.approx(0.006)
    with pytest.raises(S.StudyError, match="only numbers"):
        S._evaluate("__import__('os')", env, "x")
    with pytest.raises(S.StudyError, match="unknown name"):
        S._evaluate("$g", env, "x")


# ----------------------------------------------------------------------------- results
def test_result_contents(reference, small):
    tree, _ = reference
    assert set(tree.children) == {"trap", "train", "dr"}
    trap = tree["trap"].to_dataset()
    assert trap["sum_counts"].dims == ("ketamine", "time", "state")
    assert trap["sum_counts"].dtype == np.int64
    assert int(trap["sum_counts"].isel(ketamine=0, time=5).sum()) == small.n_trials * small.n_channels
    assert trap["current_trials"].shape[1] == 3
    for v in ("block_det", "block_mc", "trapped_occupancy_mc", "block_trials", "block_mc_sem"):
        assert v in trap
    # (block_det, block_mc, trapped_occupancy: against an independent oracle in
    # test_trapping_against_expm_oracle)
    assert trap["block_det"].values[1] > trap["block_det"].values[0]  # more drug, more block
    train = tree["train"].to_dataset()
    assert train["block_by_pulse_det"].dims == ("frequency", "pulse")
    assert train["frequency"].attrs["units"] == "Hz"
    assert train["block_last_det"].values[1] > train["block_last_det"].values[0]  # use dependence
    dr = tree["dr"].to_dataset()
    # Exact relation for a trapping open-channel blocker whose blocked arm copies the gating, at
    # steady state (the dose-response protocol starts at the equilibrium of its only step):
    # response = 1 / (1 + c / K_B), so the Hill fit gives IC50 = K_B(-70 mV, 22 C) = 0.752 uM and
    # nH = 1.  The library ketamine's small escape route of blocked closed channels (k_escape =
    # 1e-3 /s) lifts the IC50 by 0.4 %; 1 % catches a wrong K_B, voltage or fit.
    kb = kc.blockers.get("ketamine").kd(-0.070, kc.models.get("erreger2005_2a").temperature)
    assert float(dr["ic50_det"]) == pytest.approx(kb, rel=0.01)
    assert float(dr["hill_det"]) == pytest.approx(1.0, abs=0.01)
    attrs = tree.attrs
    assert attrs["ketacore_version"] == kc.__version__ and attrs["entropy"] == "7"
    assert kc.Study.from_toml(attrs["study_toml"]) == small
    assert "[[states]]" in trap.attrs["scheme_toml"]
    assert kc.Scheme.from_toml(trap.attrs["scheme_toml"]).n_states == 16


def _trap_oracle(ketamine, dt=0.02):
    """Occupancy of the SMALL 'trap' protocol at t = k dt from scipy expm, independent of the
    study code: control 1 s (1 mM glutamate), block 2 s (+ ketamine), wash 2 s (nothing),
    recovery 1 s (glutamate); -70 mV; start in R; every boundary on the grid."""
    import scipy.linalg as sl
    sch = kc.block(kc.models.get("erreger2005_2a"), "ketamine")
    segs = [(1.0, dict(glutamate=1e-3)), (2.0, dict(glutamate=1e-3, ketamine=ketamine)),
            (2.0, {}), (1.0, dict(glutamate=1e-3))]
    p = np.zeros(sch.n_states)
    p[sch.index("R")] = 1.0
    out = [p]
    for dur, conc in segs:
        step = sl.expm(sch.q_matrix(V=-0.070, **conc) * dt)
        for _ in range(int(round(dur / dt))):
            p = p @ step
            out.append(p)
    return sch, np.array(out)


def _trap_metrics(sch, occ, dt=0.02):
    """The documented trapping metrics (ketacore.study._ANALYSIS_DOC), written out here: windows
    hold the samples t0 <= t < t1 (a sample on a boundary belongs to the step that starts there)."""
    g = np.asarray(sch.conductance)
    x = occ @ g / g.max()
    win = lambda t0, t1: x[int(round(t0 / dt)):int(round(t1 / dt))].mean()
    c_ss, b_ss = win(0.8, 1.0), win(2.8, 3.0)          # last 0.2 s of control and of block
    c_e, r_e = win(0.0, 0.1), win(5.0, 5.1)            # first 0.1 s of control and of recovery
    blocked = np.array(["·" in s for s in sch.states])
    b_end, b_wash = occ[150, blocked].sum(), occ[250, blocked].sum()   # t = 3 s and 5 s
    block = 1 - b_ss / c_ss
    return {"block": block, "trapped": (1 - r_e / c_e) / block, "blocked_end_block": b_end,
            "blocked_end_wash": b_wash, "trapped_occupancy": b_wash / b_end}


def _binomial_pvalues(total, n, p):
    """Exact two-sided p-values (2 * min tail, capped at 1) of totals ~ Binomial(n, p)."""
    from scipy import stats
    p = np.clip(p, 0.0, 1.0)
    return np.minimum(1.0, 2 * np.minimum(stats.binom.cdf(total, n, p), stats.binom.sf(total - 1, n, p)))


def test_trapping_against_expm_oracle(reference, small):
    """The trap part against an oracle that shares no code with the study:
    * master equation: occupancy_det and every trapping metric (block, trapped, blocked fractions,
      trapped_occupancy) equal the scipy-expm values to 1e-9;
    * Monte Carlo: channels are independent and start in R, so the total over 10 trials x 50
      channels in state j at sample k is exactly Binomial(500, p_j(t_k)); exact two-sided tests
      of all 2 x 301 x 16 cells with Bonferroni, so a correct engine fails with probability
      < 1e-4.  The _mc metrics are the same formulas applied to the trial-mean occupancy
      sum_counts / 500 (to 1e-12), so together they check block_mc and trapped_occupancy_mc
      without a tolerance of their own;
    * 0 <= trapped_occupancy <= 1 (det, mc and every trial; 1 up to rounding)."""
    tree, _ = reference
    trap = tree["trap"].to_dataset()
    n = small.n_trials * small.n_channels
    for i, c in enumerate(trap["ketamine"].values):
        sch, occ = _trap_oracle(float(c))
        assert trap["state"].values.tolist() == list(sch.states)
        np.testing.assert_allclose(trap["occupancy_det"].values[i], occ, rtol=0, atol=1e-9)
        exact = _trap_metrics(sch, occ)
        for name, val in exact.items():
            assert float(trap[f"{name}_det"].values[i]) == pytest.approx(val, rel=1e-9, abs=1e-12), name
        counts = trap["sum_counts"].values[i]
        pv = _binomial_pvalues(counts, n, occ)
        alpha = 1e-4 / (2 * pv.size)
        assert pv.min() > alpha, (pv.min(), np.unravel_index(pv.argmin(), pv.shape))
        from_counts = _trap_metrics(sch, counts / n)
        for name, val in from_counts.items():
            assert float(trap[f"{name}_mc"].values[i]) == pytest.approx(val, rel=1e-12, abs=1e-15), name
    # (a trial whose blocked count does not change over the wash gives 1 up to the rounding of
    # two differently ordered sums of <= 16 fractions: 1.0000000000000002 happens)
    for v in ("trapped_occupancy_det", "trapped_occupancy_mc", "trapped_occupancy_trials"):
        a = trap[v].values
        assert np.isfinite(a).all() and (a >= 0).all() and (a <= 1 + 32 * np.finfo(float).eps).all(), v


def test_file_reopens(reference, tmp_path, small):
    tree, _ = reference
    out = tmp_path / "o"
    kc.run_study(small, output=out, progress=False, workers=1)
    back = S.open_results(out / "results.nc")
    xr.testing.assert_identical(back["trap"].to_dataset().load(), tree["trap"].to_dataset())


def test_chunking_and_threads_bit_identical(reference, small, tmp_path):
    _, ref = reference
    for i, (workers, chunk) in enumerate([(2, 3), (3, 1), (1, 7)]):
        out = tmp_path / f"c{i}"
        kc.run_study(small, output=out, progress=False, workers=workers, chunk_trials=chunk)
        assert sha(out / "results.nc") == ref, (workers, chunk)


def test_thread_pool_executor_bit_identical(reference, small, tmp_path):
    _, ref = reference
    with cf.ThreadPoolExecutor(3) as ex:
        kc.run_study(small, ex, output=tmp_path / "t", progress=False, chunk_trials=4)
    assert sha(tmp_path / "t" / "results.nc") == ref


def test_dask_local_cluster_bit_identical(reference, small, tmp_path):
    distributed = pytest.importorskip("distributed")
    _, ref = reference
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        kc.run_study(small, client.get_executor(pure=False), output=tmp_path / "d", progress=False,
                     chunk_trials=5)
    assert sha(tmp_path / "d" / "results.nc") == ref


@pytest.mark.slow
def test_process_pool_and_loky_bit_identical(reference, small, tmp_path):
    _, ref = reference
    with cf.ProcessPoolExecutor(2) as ex:
        kc.run_study(small, ex, output=tmp_path / "p", progress=False, chunk_trials=5)
    assert sha(tmp_path / "p" / "results.nc") == ref
    loky = pytest.importorskip("loky")
    kc.run_study(small, loky.get_reusable_executor(max_workers=2), output=tmp_path / "l",
                 progress=False, chunk_trials=4)
    assert sha(tmp_path / "l" / "results.nc") == ref


def test_in_memory_equals_file(reference, small):
    tree, _ = reference
    mem = kc.run_study(small, progress=False, workers=2, chunk_trials=3)
    xr.testing.assert_identical(mem["train"].to_dataset(), tree["train"].to_dataset())


# ----------------------------------------------------------------------------- resume
class FailingExecutor(cf.Executor):
    """Runs tasks inline; the (k+1)-th submission raises (a crash mid-study)."""

    def __init__(self, k):
        self.k = k
        self.n = 0

    def submit(self, fn, *args, **kwargs):
        if self.n >= self.k:
            raise RuntimeError("worker lost")
        self.n += 1
        f = cf.Future()
        f.set_result(fn(*args, **kwargs))
        return f


def test_kill_and_resume_identical_bytes(reference, small, tmp_path):
    _, ref = reference
    out = tmp_path / "r"
    with pytest.raises(RuntimeError, match="worker lost"):
        kc.run_study(small, FailingExecutor(5), output=out, progress=False, chunk_trials=2)
    done = list((out / "chunks").rglob("*.npz"))
    assert len(done) == 5 and not (out / "results.nc").exists()
    # resume with a different chunking: only the missing trials run
    calls = []

    class Counting(cf.ThreadPoolExecutor):
        def submit(self, fn, *a, **k):
            calls.append(a[5:7])
            return super().submit(fn, *a, **k)

    with Counting(2) as ex:
        kc.run_study(small, ex, output=out, progress=False, chunk_trials=3)
    assert sha(out / "results.nc") == ref
    n_trials_run = sum(b - a for a, b in calls)
    total = small.n_trials * (2 + 2 + 3)
    assert n_trials_run == total - 5 * 2
    # a finished folder: nothing to run, same bytes
    calls.clear()
    with Counting(2) as ex:
        kc.run_study(small, ex, output=out, progress=False)
    assert calls == [] and sha(out / "results.nc") == ref


def test_resume_after_killed_subprocess(reference, small, tmp_path):
    _, ref = reference
    out = tmp_path / "k"
    spec = tmp_path / "small.toml"
    small.to_toml(spec)
    code = textwrap.dedent(f"""
        import os, ketacore as kc
        from ketacore import study as S
        orig = S._save_chunk
        n = [0]
        def save(*a):
            orig(*a)
            n[0] += 1
            if n[0] == 4:
                os._exit(9)          # hard kill after 4 chunks are on disk
        S._save_chunk = save
        kc.run_study({str(spec)!r}, output={str(out)!r}, progress=False, workers=1, chunk_trials=2)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 9, r.stderr
    assert len(list((out / "chunks").rglob("*.npz"))) == 4
    assert not list(out.rglob("*.tmp*"))
    kc.run_study(spec, output=out, progress=False, workers=2)
    assert sha(out / "results.nc") == ref


def test_conflicting_spec_refused(small, tmp_path):
    out = tmp_path / "x"
    with pytest.raises(RuntimeError):
        kc.run_study(small, FailingExecutor(1), output=out, progress=False)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    other = small.replace(n_channels=51)
    with pytest.raises(S.StudyConflictError, match="n_channels.*nothing was overwritten"):
        kc.run_study(other, output=out, progress=False)
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert before == after
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("mine")
    with pytest.raises(S.StudyConflictError, match="not a ketacore study folder"):
        kc.run_study(small, output=junk, progress=False)
    assert (junk / "notes.txt").read_text() == "mine"


def test_a_folder_in_use_by_another_run_is_refused_untouched(small, reference, tmp_path):
    """helper-98's audit: the same study started twice into one folder (two terminals, a
    cluster job submitted twice) left a corrupt results.nc while the run that finished
    reported success.  A run now holds an exclusive lock on its folder; another run (another
    process, or another open of the folder in this one -- flock locks belong to the open file
    description, as a second process's would) is refused before touching anything."""
    out = tmp_path / "busy"
    kc.run_study(small, output=out, progress=False, workers=1)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    fd = S._lock_output(out)                     # "another run" holds the folder
    try:
        with pytest.raises(S.StudyConflictError, match="in use by another ketacore run.*nothing was touched"):
            kc.run_study(small, output=out, progress=False, workers=1)
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
        fresh = tmp_path / "new"                 # a folder that does not exist yet: created, locked
        fd2 = S._lock_output(fresh)
        try:
            with pytest.raises(S.StudyConflictError, match="in use"):
                kc.run_study(small, output=fresh, progress=False, workers=1)
            assert list(fresh.iterdir()) == []
        finally:
            S._release_lock(fd2)
    finally:
        S._release_lock(fd)
    # released: the study resumes (nothing to do) and the lock is released when it returns
    kc.run_study(small, output=out, progress=False, workers=1)
    assert sha(out / "results.nc") == reference[1]
    S._release_lock(S._lock_output(out))


def test_a_folder_locked_by_another_process_is_refused_by_the_cli(small, reference, tmp_path):
    """The audit's case across processes, made deterministic: another process holds the
    folder (as a running study does); `ketacore run` into it exits 3 (a conflict) with the refusal and
    writes nothing; once that process ends, the same command runs and gives the reference."""
    spec = tmp_path / "small.toml"
    spec.write_text(small.to_toml())
    out = tmp_path / "race"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time, pathlib
            from ketacore import study as S
            S._lock_output(pathlib.Path({str(out)!r}))
            print("locked", flush=True)
            sys.stdin.readline()          # hold until told
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        r = subprocess.run([sys.executable, "-m", "ketacore.cli", "run", str(spec), "-o", str(out), "-q"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 3 and "in use by another ketacore run" in r.stderr, r.stderr   # (a conflict)
        assert list(out.iterdir()) == []
    finally:
        holder.communicate("go\n", timeout=60)
    r = subprocess.run([sys.executable, "-m", "ketacore.cli", "run", str(spec), "-o", str(out), "-q"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert sha(out / "results.nc") == reference[1]


def test_the_lock_is_released_when_workers_were_forked_during_the_run(small, tmp_path):
    """helper-102's review: workers of a user's fork-based ProcessPoolExecutor share the lock's
    open file description, so the folder stayed locked after run_study returned and the next
    run into it in the same session was refused until the pool shut down."""
    import multiprocessing as mp
    out = tmp_path / "forked"
    with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("fork")) as ex:
        kc.run_study(small, ex, output=out, progress=False, figures=False)
        kc.run_study(small.replace(description="again"), ex, output=out, progress=False, figures=False)
    assert not S._HELD_LOCKS


def test_a_protocol_s_own_n_trials_can_be_raised_too(tmp_path):
    """helper-102's review: only the top-level n_trials could change; a [protocols.a] n_trials
    3 -> 6 was 'a different study'."""
    text = textwrap.dedent("""
        name = "s"
        model = "erreger2005_2a"
        n_channels = 5
        dt = "5 ms"
        rng = 1
        n_trials = 2
        [protocols.a]
        n_trials = NPART
        [[protocols.a.segments]]
        duration = "50 ms"
        glutamate = "1 mM"
    """)
    out = tmp_path / "out dir with spaces"
    kc.run_study(kc.Study.from_toml(text.replace("NPART", "3")), output=out, progress=False, workers=1)
    t6 = kc.run_study(kc.Study.from_toml(text.replace("NPART", "6")), output=out, progress=False, workers=1)
    fresh = kc.run_study(kc.Study.from_toml(text.replace("NPART", "6")), output=tmp_path / "fresh",
                         progress=False, workers=1)
    assert t6["a"].ds.attrs["n_trials"] == 6
    assert (out / "results.nc").read_bytes() == (tmp_path / "fresh" / "results.nc").read_bytes()
    assert fresh is not None


def test_stale_temporaries_of_a_killed_run_are_removed_on_resume(small, reference, tmp_path):
    """helper-98's audit: a SIGINT/SIGTERM left *.tmp<pid>_<tid> files in chunks/ that
    resuming never removed.  With the folder's lock held no other run can be writing them."""
    out = tmp_path / "stale"
    kc.run_study(small, output=out, progress=False, workers=1)
    part = next(p for p in (out / "chunks").iterdir() if p.is_dir())     # chunks/<protocol>/
    (part / "p00000_t000000000-000000002.npz.tmp123_456").write_bytes(b"partial")
    (out / "results.nc.tmp123_456").write_bytes(b"partial")
    (out / "study.toml.tmp").write_bytes(b"partial")
    (out / "my_notes.tmp.txt").write_text("a user's file: not ours, kept")
    kc.run_study(small, output=out, progress=False, workers=1)
    assert [p.name for p in out.rglob("*.tmp*")] == ["my_notes.tmp.txt"]
    assert sha(out / "results.nc") == reference[1]


@pytest.mark.filterwarnings("ignore:.*Hill fit's IC50 is an extrapolation:RuntimeWarning")  # (small sweeps)
def test_fresh_entropy_is_stored_and_reused(small, tmp_path):
    st = small.replace(rng=None, n_trials=2)
    st.parts = {"dr": st.parts["dr"]}
    out = tmp_path / "e"
    with pytest.raises(RuntimeError):
        kc.run_study(st, FailingExecutor(2), output=out, progress=False, chunk_trials=1)
    disk = kc.Study.from_toml(out / "study.toml")
    assert disk.rng is not None
    tree = kc.run_study(st, output=out, progress=False)   # rng=None resumes with the stored entropy
    assert tree.attrs["entropy"] == str(disk._entropy())
    fresh = kc.run_study(st.replace(rng=disk.rng), progress=False)
    xr.testing.assert_identical(fresh["dr"].to_dataset(), tree["dr"].to_dataset())


def test_counts_record(small):
    st = small.replace(record="counts", n_trials=3)
    st.parts = {"trap": st.parts["trap"]}
    tree = kc.run_study(st, progress=False, workers=1)
    ds = tree["trap"].to_dataset()
    assert ds["counts"].dims == ("ketamine", "trial", "time", "state")
    np.testing.assert_array_equal(ds["counts"].sum("trial").values, ds["sum_counts"].values)


def test_progress_bar(small, capsys):
    """progress=True shows a tqdm bar on stderr (tqdm is optional: without it progress is off)."""
    pytest.importorskip("tqdm")
    st = small.replace(n_trials=3)
    st.parts = {"trap": st.parts["trap"]}
    kc.run_study(st, progress=True, workers=1)
    assert "trial" in capsys.readouterr().err   # tqdm bar on stderr


def test_model_sweep(small):
    st = small.replace(n_trials=2, n_channels=10)
    st.parts = {"dr": st.parts["dr"]}
    st.parts["dr"].sweep = {"model": ["erreger2005_2a", "erreger2005_2b"], "ketamine": ["1 uM", "3 uM"]}
    tree = kc.run_study(st, progress=False)
    ds = tree["dr"].to_dataset()
    assert ds["response_det"].dims == ("model", "ketamine")
    assert list(ds["model"].values) == ["erreger2005_2a", "erreger2005_2b"]
    assert ds["ic50_det"].dims == ("model",)


# ----------------------------------------------------------------------------- review fixes
# A voltage sweep: [parameters] V, sweep V.  V (the voltage trace) and time are names of the
# Dataset itself; the sweep dimensions become sweep_V and sweep_time.
VSWEEP = textwrap.dedent("""
    name = "vsweep"
    model = "erreger2005_2a"
    blockers = ["memantine"]
    n_channels = 20
    n_trials = 3
    dt = "10 ms"
    rng = 3
    keep_trials = 2

    [parameters]
    V = "-70 mV"
    time = "0.2 s"
    memantine = "10 uM"

    [protocols.dr]
    initial = "R"
    analysis = { kind = "dose_response", concentration = "memantine" }

    [protocols.dr.sweep]
    V = ["-70 mV", "-30 mV"]
    memantine = ["1 uM", "3 uM", "10 uM"]

    [[protocols.dr.segments]]
    duration = "$time"
    V = "$V"
    glutamate = "1 mM"
    memantine = "$memantine"

    [protocols.dur]
    initial = "R"

    [protocols.dur.sweep]
    time = ["0.1 s", "0.2 s"]
    memantine = ["1 uM", "10 uM"]

    [[protocols.dur.segments]]
    duration = "$time"
    V = "$V"
    glutamate = "1 mM"
    memantine = "$memantine"

    [outputs]
    figures = false
""")


def test_sweep_dimensions_never_collide():
    assert S.sweep_dimensions(["ketamine", "model"]) == {"ketamine": "ketamine", "model": "model"}
    assert S.sweep_dimensions(["V", "time"]) == {"V": "sweep_V", "time": "sweep_time"}
    # the renamed dimension is itself a sweep axis: prefixed again
    assert S.sweep_dimensions(["V", "sweep_V"]) == {"V": "sweep_sweep_V", "sweep_V": "sweep_V"}
    for name in ("V", "time", "state", "n_samples", "trial", "kept_trial", "pulse", "block_mc",
                 "trapped_mc_sem", "ic50_det"):
        assert name in S.DATASET_NAMES


@pytest.mark.filterwarnings("ignore:.*Hill fit's IC50 is an extrapolation:RuntimeWarning")  # (small sweeps)
def test_voltage_sweep_runs_and_resumes(tmp_path):
    """A sweep axis named V (or time) is a sweep_V dimension; it used to run every chunk and then
    crash in assembly ('variables {'V'} are found in both data_vars and coords')."""
    st = kc.Study.from_toml(VSWEEP)
    out = tmp_path / "v"
    tree = kc.run_study(st, output=out, progress=False, workers=1)
    ds = tree["dr"].to_dataset()
    assert ds["V"].dims == ("sweep_V", "memantine", "time")
    assert ds["sum_counts"].dims == ("sweep_V", "memantine", "time", "state")
    np.testing.assert_allclose(ds["sweep_V"].values, [-0.070, -0.030])
    assert ds["sweep_V"].attrs == {"parameter": "V", "units": "V", "long_name": "swept parameter V"}
    assert S.json.loads(ds.attrs["sweep_dims"]) == {"V": "sweep_V", "memantine": "memantine"}
    # each point ran at its own voltage (the trace and the driving force follow the sweep)
    np.testing.assert_allclose(ds["V"].sel(sweep_V=-0.030).values, -0.030)
    np.testing.assert_allclose(ds["V"].sel(sweep_V=-0.070).values, -0.070)
    # memantine's block is voltage dependent: a Hill fit per voltage, weaker at -30 mV
    assert ds["ic50_det"].dims == ("sweep_V",)
    ic50 = ds["ic50_det"].values
    assert np.all(np.isfinite(ic50)) and ic50[1] > 1.5 * ic50[0]
    assert ds["ic50_det"].attrs["units"] == "M"
    dur = tree["dur"].to_dataset()
    assert dur["sum_counts"].dims == ("sweep_time", "memantine", "time", "state")
    assert dur["sweep_time"].attrs["units"] == "s"
    assert list(dur["n_samples"].values[:, 0]) == [11, 21]   # 0.1 s and 0.2 s at dt = 10 ms
    # the summary table and the file work with the renamed dimensions
    text = S.summary_table(tree)
    assert "-30 mV" in text and "response ME" in text
    # the header names the swept voltage by its parameter (V), not its dimension (sweep_V)
    hdr = next(line for line in text.splitlines() if "response ME" in line)
    assert hdr.split()[:2] == ["V", "memantine"] and "sweep_V" not in text, text
    ref = sha(out / "results.nc")
    reopened = S.open_results(out / "results.nc")
    xr.testing.assert_identical(reopened["dr"].to_dataset(), ds)
    # re-running into the same folder: nothing is computed again, same bytes
    calls = []

    class Counting(cf.ThreadPoolExecutor):
        def submit(self, fn, *a, **k):
            calls.append(a)
            return super().submit(fn, *a, **k)

    with Counting(1) as ex:
        kc.run_study(st, ex, output=out, progress=False)
    assert calls == [] and sha(out / "results.nc") == ref


@pytest.mark.filterwarnings("ignore:.*Hill fit's IC50 is an extrapolation:RuntimeWarning")  # (small sweeps)
def test_voltage_sweep_folder_of_a_failed_assembly_resumes(tmp_path, monkeypatch):
    """A folder whose chunks are all on disk but whose assembly failed (what the old version left
    after its crash) finishes without recomputing and gives the bytes of a fresh run."""
    st = kc.Study.from_toml(VSWEEP)
    fresh = tmp_path / "fresh"
    kc.run_study(st, output=fresh, progress=False, workers=1)
    out = tmp_path / "crashed"

    def boom(*a, **k):
        raise ValueError("variables {'V'} are found in both data_vars and coords")

    with monkeypatch.context() as m:
        m.setattr(S, "_assemble", boom)
        with pytest.raises(ValueError, match="both data_vars and coords"):
            kc.run_study(st, output=out, progress=False, workers=1)
    assert list((out / "chunks").rglob("*.npz")) and not (out / "results.nc").exists()

    def no_compute(*a, **k):
        raise AssertionError("a finished chunk was computed again")

    monkeypatch.setattr(S, "_run_chunk", no_compute)
    kc.run_study(st, output=out, progress=False, workers=1)
    assert sha(out / "results.nc") == sha(fresh / "results.nc")


def test_dose_response_axis_checked_before_compute():
    """The dose-response fit needs a concentration sweep axis: refused when the study is checked
    (it used to fail after every chunk had run)."""
    d = S._toml_loads(SMALL)
    d["protocols"] = {"dr": d["protocols"]["dr"]}
    d["protocols"]["dr"]["analysis"]["concentration"] = "glutamate"
    with pytest.raises(S.StudyError, match=r"\[protocols.dr\].analysis.concentration: must name a "
                                           r"sweep axis.*\['ketamine'\].*'glutamate'"):
        kc.Study.from_dict(d)
    d["protocols"]["dr"]["analysis"] = {"kind": "dose_response"}
    d["protocols"]["dr"]["sweep"] = {}
    with pytest.raises(S.StudyError, match=r"analysis.concentration: dose_response needs a "
                                           "concentration sweep axis"):
        kc.Study.from_dict(d)


def _assert_all_documented(ds, where):
    for name in list(ds.data_vars) + list(ds.coords):
        attrs = ds[name].attrs
        assert isinstance(attrs.get("units"), str) and attrs["units"], f"{where}: {name} has no units"
        assert isinstance(attrs.get("long_name"), str) and attrs["long_name"], \
            f"{where}: {name} has no long_name"


def test_every_variable_has_units_and_long_name(reference, small):
    tree, _ = reference
    for part in ("trap", "train", "dr"):
        ds = tree[part].to_dataset()
        _assert_all_documented(ds, part)
        # (and every name is one the sweep dimensions are kept clear of)
        assert set(ds.variables) - set(S.sweep_dimensions(list(small.parts[part].sweep)).values()) \
            <= S.DATASET_NAMES
    trap = tree["trap"].to_dataset()
    assert trap["open_probability_mc"].attrs["units"] == "1"
    assert trap["block_trials"].attrs["units"] == "1"
    assert trap["block_mc_sem"].attrs["long_name"].startswith("standard error of the mean")
    assert trap["current_trials"].attrs["units"] == "A"
    assert trap["time"].attrs["units"] == "s" and trap["ketamine"].attrs["units"] == "M"
    train = tree["train"].to_dataset()
    assert train["block_by_pulse_mc"].attrs["units"] == "1"
    assert train["pulse"].attrs["long_name"].startswith("pulse number")
    # the file keeps them
    st = small.replace(record="counts", n_trials=2)
    st.parts = {"trap": st.parts["trap"]}
    _assert_all_documented(kc.run_study(st, progress=False, workers=1)["trap"].to_dataset(), "counts")


def test_trapped_definition_is_stated(reference):
    """The study's trapped fraction (early-window means) is not the peak-current definition of
    experiments.trapping; the attributes and the summary say which one it is."""
    tree, _ = reference
    trap = tree["trap"].to_dataset()
    for v in ("trapped_det", "trapped_mc", "trapped_trials", "trapped_mc_sem"):
        d = trap[v].attrs["definition"]
        assert "first 100 ms of the 'recovery'" in d and "last 200 ms of 'block'" in d, d
        assert "experiments.trapping(...).trapped_current" in d and "peak" in d
        assert trap[v].attrs["units"] == "1"
    assert "study definition" in trap["trapped_mc"].attrs["long_name"]
    assert "occupancy definition" in trap["trapped_occupancy_mc"].attrs["long_name"]
    assert "experiments.trapping(...).trapped_occupancy" in trap["trapped_occupancy_det"].attrs["definition"]
    text = S.summary_table(tree)
    assert "mean currents over the first 100 ms of" in text
    assert "kc.experiments.trapping(...).trapped_current" in text


def test_to_xarray_units_and_long_names():
    sch = kc.blockers.block(kc.models.get("erreger2005_2a"), kc.blockers.get("ketamine"))
    prot = kc.Step(0.05, glutamate=1e-3, ketamine=1e-6)
    _assert_all_documented(kc.solve(sch, prot, 0.01, initial="R").to_xarray(), "solve")
    for record in ("counts", "summary"):
        ds = kc.simulate(sch, prot, 0.01, 10, n_trials=2, rng=1, initial="R", record=record).to_xarray()
        _assert_all_documented(ds, record)
        assert ds["current"].attrs["units"] == "A" and ds["V"].attrs["units"] == "V"
    # (the exact integer sums and the initial distribution too, so that saved summaries can
    # be joined exactly: helper-104's audit)
    assert set(ds.data_vars) == {"mean", "var", "open_probability", "current", "V",
                                 "open_probability_var", "current_var", "sum_counts",
                                 "sum_sq_counts", "initial"}


def test_model_sweep_header_names_every_model(small):
    st = small.replace(n_trials=2, n_channels=10)
    st.parts = {"dr": st.parts["dr"]}
    st.parts["dr"].sweep = {"model": ["erreger2005_2a", "erreger2005_2b"], "ketamine": ["1 uM", "3 uM"]}
    tree = kc.run_study(st, progress=False, workers=1)
    ds = tree["dr"].to_dataset()
    assert ds.attrs["scheme"] == "erreger2005_2a+ket, erreger2005_2b+ket"
    assert ds["model"].attrs["units"] == "1" and ds["model"].attrs["parameter"] == "model"
    head = S.summary_table(tree).splitlines()[0]
    assert "erreger2005_2a+ket, erreger2005_2b+ket (model swept)" in head, head


def test_dose_response_needs_three_concentrations_for_a_hill_fit():
    """Two concentrations determine a two-parameter Hill fit exactly, with no test of the
    curve: `ketacore run --quick` printed such a Monte Carlo fit ("IC50 4.92 uM, nH 0.55"
    against 20.4 uM exact) unflagged (user audit).  With < 3 concentrations the fit is NaN and
    the summary says why; with 3 it is made."""
    base = kc.study.default_study().quick()
    two = kc.run_study(base.replace(parts={"dose_response": base.parts["dose_response"]}),
                       progress=False)
    ds = two["dose_response"].ds
    assert ds.sizes[ds.attrs["dose_axis"]] == 2
    assert np.isnan(float(ds["ic50_det"])) and np.isnan(float(ds["hill_mc"]))
    text = kc.study.summary_table(two)
    assert "Hill fit (master equation): not determined (2 concentrations; a Hill fit needs at " \
           "least 3)" in text
    p3 = base.parts["dose_response"]
    p3 = dataclasses.replace(p3, sweep={"ketamine": ["0.1 uM", "1 uM", "30 uM"]})
    three = kc.run_study(base.replace(parts={"dose_response": p3}), progress=False)
    assert np.isfinite(float(three["dose_response"].ds["ic50_det"]))
    assert "not determined" not in kc.study.summary_table(three)
    assert not bool(three["dose_response"].ds["ic50_extrapolated_det"])


def test_dose_response_extrapolated_hill_fit_is_flagged_warned_and_bounded():
    """helper-98's audit: ketamine at 1-10 nM (IC50 0.76 uM) printed "Hill fit (Monte Carlo):
    IC50 10 uM, nH 0.29" -- a fit bound, 1000x the top concentration -- with no flag.  The rule
    of experiments.ic50 now applies: the fit is flagged in the dataset, warned about by key,
    and the summary gives the bound the data support."""
    st = kc.Study.from_toml(textwrap.dedent("""
        name = "edge"
        model = "erreger2005_2a"
        blockers = ["ketamine"]
        n_channels = 50
        n_trials = 4
        dt = "10 ms"
        rng = 1
        [parameters]
        ketamine = "1 uM"
        [protocol]
        analysis = { kind = "dose_response", concentration = "ketamine" }
        [[protocol.segments]]
        duration = "0.2 s"
        V = "-70 mV"
        glutamate = "1 mM"
        ketamine = "$ketamine"
        [sweep]
        ketamine = ["1 nM", "3 nM", "10 nM"]
    """))
    with pytest.warns(RuntimeWarning, match=r"\[protocol\]\.analysis: dose_response: the "
                                            r"master-equation Hill fit's IC50 is an extrapolation"):
        tree = kc.run_study(st, progress=False, workers=1)
    ds = tree["main"].ds
    assert bool(ds["ic50_extrapolated_det"]) and bool(ds["ic50_extrapolated_mc"])
    assert ds["ic50_extrapolated_det"].attrs["long_name"].startswith("ic50_det is an extrapolation")
    text = kc.study.summary_table(tree)
    line = next(x for x in text.splitlines() if "Hill fit (master equation)" in x)
    assert "EXTRAPOLATED, not determined by the data: IC50 > 10 nM (largest inhibition 1.3" in line


def test_a_long_study_says_its_estimate_once(small, tmp_path, monkeypatch):
    """helper-98's audit: a study of 300000 trials x 1e6 channels started silently with -q (the
    progress bar's ETA said 80-150 h).  Once the finished chunks put the rest above
    _ETA_WARN (1 h) after _ETA_AFTER (10 s), one PerformanceWarning gives the estimate and how
    to stop and resume.  (Thresholds lowered here so a small run crosses them.)"""
    import warnings
    monkeypatch.setattr(S, "_ETA_AFTER", 0.0)
    monkeypatch.setattr(S, "_ETA_WARN", 0.0)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        kc.run_study(small, output=tmp_path / "o", progress=False, workers=1, chunk_trials=1)
    w = [x for x in rec if issubclass(x.category, kc.PerformanceWarning)]
    assert len(w) == 1, [str(x.message) for x in rec]
    msg = str(w[0].message)
    assert "is estimated to need ~" in msg and "more on 1 worker(s)" in msg
    assert "resumes from the finished chunks" in msg
    # at the real thresholds the same small study says nothing
    monkeypatch.setattr(S, "_ETA_AFTER", 10.0)
    monkeypatch.setattr(S, "_ETA_WARN", 3600.0)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        kc.run_study(small, output=tmp_path / "p", progress=False, workers=1, chunk_trials=1)
    assert not [x for x in rec if issubclass(x.category, kc.PerformanceWarning)]
