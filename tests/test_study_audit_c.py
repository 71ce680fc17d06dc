"""Study audit C: figures a protocol never draws, resuming with a changed description/[outputs],
and rng strings normalised to int.  Each test here failed on the code before the fix."""
import concurrent.futures as cf
import textwrap

import pytest

import ketacore as kc
from ketacore import plot
from ketacore import study as S
from _study_fixtures import trapping_toml, two_state_toml

# ---------------------------------------------------------------------------------------------
# 1. [outputs].figures naming a figure no protocol draws
TRAP = textwrap.dedent("""
    name = "trap"
    model = "erreger2005_2a"
    blockers = ["ketamine"]
    n_channels = 10
    n_trials = 2
    dt = "20 ms"
    rng = 1

    [protocols.trap]
    initial = "R"
    analysis = { kind = "trapping", window = "0.2 s", early = "0.1 s" }

""") + trapping_toml("protocols.trap") + "\n"

TRAIN = textwrap.dedent("""
    [protocols.train]
    initial = "R"
    dt = "2 ms"
    analysis = { kind = "use_dependence" }

    [[protocols.train.segments]]
    train = { n_pulses = 5, frequency = "5 Hz", width = "2 ms", during = { glutamate = "1 mM" }, between = { ketamine = "3 uM" } }
""")


def _with_figures(text, figures):
    return text + f"\n[outputs]\nfigures = {figures}\n"


@pytest.mark.parametrize("text, fig, kind, draws", [
    (TRAP, "traces", "trapping", "['trapping', 'occupancy']"),
    (TRAP, "use_dependence", "trapping", "['trapping', 'occupancy']"),
    (TRAP.replace("[protocols.trap]", "[protocols.x]").split("[protocols.x]")[0] + TRAIN,
     "occupancy", "use_dependence", "['use_dependence', 'traces']"),
], ids=["trap-traces", "trap-use_dependence", "train-occupancy"])
def test_figure_the_protocol_never_draws_is_refused(text, fig, kind, draws):
    with pytest.raises(S.StudyError, match=r"\[outputs\]\.figures: no protocol of this study "
                                           rf"draws figure '{fig}'") as ei:
        kc.Study.from_toml(_with_figures(text, f'["{fig}"]'))
    msg = str(ei.value)
    assert kind in msg and draws in msg and ("[protocols.trap]" in msg or "[protocols.train]" in msg)


def test_figure_drawn_by_some_protocol_is_accepted():
    # traces: drawn by the train (use_dependence), not by the trapping protocol -> fine
    st = kc.Study.from_toml(_with_figures(TRAP + TRAIN, '["traces", "occupancy", "trapping"]'))
    assert st.outputs["figures"] == ["traces", "occupancy", "trapping"]
    # but a figure neither draws is refused
    with pytest.raises(S.StudyError, match=r"draws figure 'dose_response'"):
        kc.Study.from_toml(_with_figures(TRAP + TRAIN, '["traces", "dose_response"]'))
    # (the Python API too)
    with pytest.raises(S.StudyError, match=r"\[outputs\]\.figures"):
        st.replace(outputs={"figures": ["dose_response"]})


def test_figures_for_is_the_mapping_study_figures_uses():
    assert plot.figures_for("trapping") == ("trapping", "occupancy")
    assert plot.figures_for("use_dependence") == ("use_dependence", "traces")
    assert plot.figures_for("dose_response") == ("dose_response",)
    assert plot.figures_for("") == plot.figures_for(None) == ("traces", "occupancy")
    assert all(set(plot.figures_for(k)) <= set(plot.FIGURES) for k in (*S.ANALYSES, ""))
    with pytest.raises(ValueError, match="unknown analysis kind 'trappng'"):
        plot.figures_for("trappng")


# ---------------------------------------------------------------------------------------------
# 2. resuming with a changed description / [outputs]
STUDY = textwrap.dedent("""
    name = "resume_outputs"
    DESCRIPTION
    model = "mine.toml"
    n_channels = 20
    n_trials = 4
    dt = "10 ms"
    RNG
    keep_trials = 1

    [parameters]
    V = "-70 mV"

    [protocol]

    [sweep]
    V = ["-70 mV", "-30 mV"]

    [[protocol.segments]]
    duration = "0.1 s"
    V = "$V"

    [outputs]
    OUTPUTS
""")


class Counting(cf.ThreadPoolExecutor):
    def __init__(self):
        super().__init__(1)
        self.calls = []

    def submit(self, fn, *a, **k):
        self.calls.append(a[3:7])
        return super().submit(fn, *a, **k)


def _spec(tmp_path, description="", outputs="figures = false", rng="rng = 3", n_trials=4):
    (tmp_path / "mine.toml").write_text(two_state_toml())
    text = (STUDY.replace("DESCRIPTION", description).replace("OUTPUTS", outputs)
            .replace("RNG", rng).replace("n_trials = 4", f"n_trials = {n_trials}"))
    spec = tmp_path / "study.toml"
    spec.write_text(text)
    return spec


@pytest.mark.parametrize("rng", ["rng = 3", ""])
def test_resume_with_new_description_and_figures_writes_them_without_recomputing(tmp_path, rng):
    pytest.importorskip("xarray")
    pytest.importorskip("netCDF4")
    pytest.importorskip("matplotlib")
    out = tmp_path / "out"
    spec = _spec(tmp_path, rng=rng)
    ex = Counting()
    with ex:
        t1 = kc.run_study(spec, ex, output=out, progress=False)
    assert ex.calls and not list(out.glob("*.png"))
    spec = _spec(tmp_path, description='description = "now described"',
                 outputs='figures = true\nresults = "renamed.nc"', rng=rng)
    ex = Counting()
    with ex:
        t2 = kc.run_study(spec, ex, output=out, progress=False)
    assert ex.calls == []                                   # nothing recomputed
    assert (out / "main_traces.png").exists() and (out / "main_occupancy.png").exists()
    assert (out / "renamed.nc").exists()
    for v in t1["main"].data_vars:
        assert (t1["main"][v] == t2["main"][v]).all()
    assert t2.attrs["description"] == "now described"
    disk = kc.Study.from_toml(out / "study.toml")            # the folder's study is updated
    assert disk.description == "now described"
    assert disk.outputs == {"results": "renamed.nc", "figures": True}
    assert disk.rng == kc.Study.from_toml(out / "study.toml").rng == int(t1.attrs["entropy"])
    # and a changed result-affecting key is still refused, naming only that key
    spec = _spec(tmp_path, description='description = "again"', rng=rng)
    spec.write_text(spec.read_text().replace("n_channels = 20", "n_channels = 30"))
    with pytest.raises(S.StudyConflictError, match=r"differs in: n_channels\)"):
        kc.run_study(spec, output=out, progress=False, workers=1)


@pytest.mark.parametrize("rng", ["rng = 3", ""])
def test_raising_n_trials_reuses_the_finished_trials_and_equals_a_fresh_run(tmp_path, rng):
    """helper-98's audit: a study could not be extended with more trials (a changed n_trials
    was a different study), though trial i's stream depends on the entropy and i alone.  Now
    4 -> 10 runs only trials 4..9, 10 -> 6 only trials 4..5 (the chunk 4..7 reaches past 6),
    and back to 10 nothing; each result equals a fresh run with that n_trials, byte for
    byte (for a folder without an rng, the one the folder stored)."""
    pytest.importorskip("xarray")
    pytest.importorskip("netCDF4")
    out = tmp_path / "out"
    ex = Counting()
    with ex:
        t4 = kc.run_study(_spec(tmp_path, rng=rng), ex, output=out, progress=False, chunk_trials=4)
    assert sorted(c[2:] for c in ex.calls) == [(0, 4), (0, 4)]            # 2 sweep points
    entropy = int(t4.attrs["entropy"])
    seeded = f"rng = {entropy}"

    def fresh(n):
        d = tmp_path / f"fresh{n}"
        kc.run_study(_spec(tmp_path, rng=seeded, n_trials=n), output=d, progress=False, chunk_trials=3)
        return (d / "results.nc").read_bytes()

    for n, runs in ((10, [(4, 8), (8, 10)]), (6, [(4, 6)]), (10, [])):
        ex = Counting()
        with ex:
            t = kc.run_study(_spec(tmp_path, rng=rng, n_trials=n), ex, output=out, progress=False,
                             chunk_trials=4)
        assert sorted(set(c[2:] for c in ex.calls)) == runs, (n, ex.calls)
        assert int(t.attrs["entropy"]) == entropy and t["main"].ds.attrs["n_trials"] == n
        assert (out / "results.nc").read_bytes() == fresh(n), n
        assert kc.Study.from_toml(out / "study.toml").n_trials == n     # the folder's study follows
    # lowered below a chunk boundary: the first chunk is used, the needed part of the next run
    ex = Counting()
    with ex:
        kc.run_study(_spec(tmp_path, rng=rng, n_trials=3), ex, output=out, progress=False, chunk_trials=4)
    assert sorted(set(c[2:] for c in ex.calls)) == [(0, 3)]
    assert (out / "results.nc").read_bytes() == fresh(3)


def test_cover_partitions_the_trials_with_overlapping_chunks():
    """_cover: the finished chunks a run reuses and the ranges it still runs partition [0, n)."""
    assert S._cover(10, []) == ([], [(0, 10)])
    assert S._cover(10, [(0, 4), (4, 8), (8, 10)]) == ([(0, 4), (4, 8), (8, 10)], [])
    # overlapping chunk files of earlier n_trials (10 -> 6 -> 10): the farthest from each start
    assert S._cover(10, [(0, 4), (4, 8), (4, 6), (8, 10)]) == ([(0, 4), (4, 8), (8, 10)], [])
    assert S._cover(6, [(0, 4), (4, 8), (4, 6), (8, 10)]) == ([(0, 4), (4, 6)], [])
    assert S._cover(7, [(0, 4), (4, 8), (4, 6)]) == ([(0, 4), (4, 6)], [(6, 7)])
    # a chunk starting inside another is not usable once the walk is past its start
    assert S._cover(10, [(0, 5), (3, 8)]) == ([(0, 5)], [(5, 10)])
    # beyond n or empty: ignored
    assert S._cover(5, [(2, 3), (5, 9), (4, 4)]) == ([(2, 3)], [(0, 2), (3, 5)])


# ---------------------------------------------------------------------------------------------
# 3. rng strings normalised to int
@pytest.mark.parametrize("rng", [2**70, "1180591620717411303424", hex(2**70), 2**63, 5, "7"])
def test_rng_round_trips_and_is_an_int(rng):
    st = kc.Study.from_toml(TRAP).replace(rng=rng)
    assert st.rng == int(rng, 0) if isinstance(rng, str) else rng
    assert type(st.rng) is int
    back = kc.Study.from_toml(st.to_toml())
    assert back == st and back.rng == st.rng
    assert st == kc.Study.from_toml(TRAP).replace(rng=st.rng)


def test_big_rng_written_as_hex_as_run_study_stores_it():
    st = kc.Study.from_toml(TRAP).replace(rng=2**70)
    assert f'rng = "{hex(2**70)}"' in st.to_toml()
