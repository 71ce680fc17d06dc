"""The trapping analysis counts the *drug*'s channels: ``blocked_end_block``,
``blocked_end_wash`` and ``trapped_occupancy`` sum the occupancy of the states carrying a drug
blocker's tag (analysis option ``drug``, or the use_dependence rule of
``study._drug_ligands``: the one blocker ligand the protocol applies), not those bound only by
a background blocker.  Ketamine trapping in 1 mM Mg2+ used to count the Mg2+-bound channels as
blocked and trapped ketamine.  Oracle: ``kc.solve`` of the composed scheme, summed over the
states whose tags include the drug's, at the samples the analysis documents (the end of
'block' and of 'wash')."""
import dataclasses

import numpy as np
import pytest

import ketacore as kc
from ketacore import study as S
from ketacore.study import StudyError

pytest.importorskip("xarray")

V_HOLD, GLU, MG, DT = -0.070, 1e-3, 1e-3, 0.02
DUR = {"control": 1.0, "block": 2.0, "wash": 2.0, "recovery": 1.0}
KETAMINE = [0.0, 1e-5]


def _segments(mg="1 mM", mg_in=("control", "block", "wash", "recovery")):
    """The trapping protocol (as tests/_study_fixtures.trapping_segments) with Mg2+ in the
    segments ``mg_in`` and ketamine = $ketamine in 'block'."""
    out = []
    for lab, d in DUR.items():
        seg = {"label": lab, "duration": f"{d} s", "V": "-70 mV"}
        if lab != "wash":
            seg["glutamate"] = "1 mM"
        if lab == "block":
            seg["ketamine"] = "$ketamine"
        if lab in mg_in:
            seg["mg"] = mg
        out.append(seg)
    return out


def _study(analysis, blockers=("ketamine", "mg"), segments=None, **kw):
    args = dict(model="erreger2005_2a", blockers=list(blockers), protocol=segments or _segments(),
                parameters={"ketamine": "10 uM"}, sweep={"ketamine": ["0 uM", "10 uM"]},
                analysis=analysis, initial="R", dt="20 ms", n_trials=2, n_channels=20, rng=3)
    args.update(kw)
    return kc.Study(**args)


def _run(st):
    return kc.run_study(st, progress=False, workers=1, figures=False)["main"].to_dataset()


def _oracle(scheme, ketamine, tags, mg_in=("control", "block", "wash", "recovery")):
    """(blocked_end_block, blocked_end_wash) from kc.solve: the occupancy of the states whose
    tags (the parts of the name after the gating state) meet ``tags``, at t = 3 s and 5 s."""
    steps = []
    for lab, d in DUR.items():
        conc = {} if lab == "wash" else {"glutamate": GLU}
        if lab == "block":
            conc["ketamine"] = ketamine
        if lab in mg_in:
            conc["mg"] = MG
        steps.append(kc.Step(d, V=V_HOLD, **conc))
    r = kc.solve(scheme, kc.Protocol(steps), DT, initial="R")
    assert list(r.states) == list(scheme.states)
    mask = np.array([bool(set(s.split("·")[1:]) & set(tags)) for s in scheme.states])
    t_block, t_wash = DUR["control"] + DUR["block"], DUR["control"] + DUR["block"] + DUR["wash"]
    i_b, i_w = (int(np.argmin(abs(r.time - t))) for t in (t_block, t_wash))
    assert r.time[i_b] == pytest.approx(t_block) and r.time[i_w] == pytest.approx(t_wash)
    return r.occupancy[i_b, mask].sum(), r.occupancy[i_w, mask].sum(), r.occupancy[i_b]


def test_ketamine_in_mg_counts_only_ketamine_bound_channels():
    st = _study({"kind": "trapping", "window": "0.5 s", "early": "0.1 s", "drug": "ketamine"})
    assert S._drug_ligands(st, st.parts["main"]) == ("ketamine",)
    ds = _run(st)
    scheme = kc.block("erreger2005_2a", "ketamine", "mg")
    assert ds["state"].values.tolist() == list(scheme.states)
    for i, c in enumerate(KETAMINE):
        b_end, b_wash, occ_end = _oracle(scheme, c, {"ket", "ket_s"})
        got_end = float(ds["blocked_end_block_det"].values[i])
        got_wash = float(ds["blocked_end_wash_det"].values[i])
        assert got_end == pytest.approx(b_end, rel=1e-9, abs=1e-12)
        assert got_wash == pytest.approx(b_wash, rel=1e-9, abs=1e-12)
        # the Mg2+-bound channels are many and are not counted
        mg = sum(p for s, p in zip(scheme.states, occ_end) if s.endswith("·mg"))
        assert mg > 0.05
        if c == 0:
            # Mg2+ only: no channel carries ketamine, whatever the Mg2+ block
            for src in ("det", "mc"):
                assert float(ds[f"blocked_end_block_{src}"].values[i]) == 0.0
                assert float(ds[f"blocked_end_wash_{src}"].values[i]) == 0.0
                assert np.isnan(float(ds[f"trapped_occupancy_{src}"].values[i]))
                # nor the current ratio, whose "block" is a residue here (it was 1e4 / -1e16)
                assert np.isnan(float(ds[f"trapped_{src}"].values[i]))
            assert (ds["blocked_end_block_trials"].values[i] == 0).all()
            assert np.isnan(ds["trapped_trials"].values[i]).all()
        else:
            assert b_end > 0.05 and b_wash > 0.05
            assert float(ds["trapped_occupancy_det"].values[i]) == pytest.approx(b_wash / b_end, rel=1e-9)
            assert 0 < float(ds["trapped_det"].values[i]) < 1.5     # (a trapped fraction)
            # the old count (every blocked state) would add the Mg2+-blocked channels
            assert b_end + mg < 1 and float(ds["trapped_occupancy_det"].values[i]) < 1
    # the Monte Carlo quantities: the same mask applied to the trial-mean occupancy
    n = st.n_trials * st.n_channels
    ket = np.array(["ket" in s.split("·")[1:] for s in scheme.states])
    i_b = int(round(3.0 / DT))
    for i in range(len(KETAMINE)):
        frac = ds["sum_counts"].values[i] / n
        assert float(ds["blocked_end_block_mc"].values[i]) == pytest.approx(frac[i_b, ket].sum(), abs=1e-15)
    # the variables say what they count
    assert "carrying the drug (ketamine)" in ds["blocked_end_block_det"].attrs["long_name"]
    assert "not those bound only by mg" in ds["trapped_occupancy_det"].attrs["definition"]


def test_drug_bound_with_the_background_counts():
    """Mg2+ on another site than ketamine: states such as 'O·ket·mg' carry both, and count for
    the drug that is bound (ketamine, or Mg2+ when it is the drug)."""
    mg_outer = {"name": "mg", "site": "outer"}
    scheme = kc.block("erreger2005_2a", "ketamine",
                      dataclasses.replace(kc.blockers.get("mg"), site="outer"))
    assert "O·ket·mg" in scheme.states
    for drug, tags in (("ketamine", {"ket", "ket_s"}), ("mg", {"mg", "mg_s"})):
        ds = _run(_study({"kind": "trapping", "window": "0.5 s", "early": "0.1 s", "drug": drug},
                         blockers=["ketamine", mg_outer], sweep={"ketamine": ["10 uM"]}))
        assert ds["state"].values.tolist() == list(scheme.states)
        b_end, b_wash, occ_end = _oracle(scheme, 1e-5, tags)
        both = occ_end[list(scheme.states).index("O·ket·mg")]
        assert both > 1e-4      # (the doubly bound states matter to the sums)
        assert float(ds["blocked_end_block_det"].values[0]) == pytest.approx(b_end, rel=1e-9)
        assert float(ds["blocked_end_wash_det"].values[0]) == pytest.approx(b_wash, rel=1e-9)
        assert float(ds["trapped_occupancy_det"].values[0]) == pytest.approx(b_wash / b_end, rel=1e-9)


def test_drug_list_and_default():
    # drug = both blockers: every blocked state, the count of a study without a background
    st = _study({"kind": "trapping", "window": "0.5 s", "early": "0.1 s", "drug": ["ketamine", "mg"]},
                sweep={"ketamine": ["10 uM"]})
    assert S._drug_ligands(st, st.parts["main"]) == ("ketamine", "mg")
    ds = _run(st)
    scheme = kc.block("erreger2005_2a", "ketamine", "mg")
    b_end, b_wash, _ = _oracle(scheme, 1e-5, {"ket", "ket_s", "mg", "mg_s"})
    assert float(ds["blocked_end_block_det"].values[0]) == pytest.approx(b_end, rel=1e-9)
    assert float(ds["blocked_end_wash_det"].values[0]) == pytest.approx(b_wash, rel=1e-9)
    assert "carrying a blocker" in ds["blocked_end_block_det"].attrs["long_name"]
    # a second blocker the protocol never applies: the default is the one it applies
    st = _study({"kind": "trapping"}, segments=_segments(mg_in=()))
    assert S._drug_ligands(st, st.parts["main"]) == ("ketamine",)
    # a single blocker: the default, as before
    st = _study({"kind": "trapping"}, blockers=["ketamine"], segments=_segments(mg_in=()))
    assert S._drug_ligands(st, st.parts["main"]) == ("ketamine",)
    # the option survives the TOML round trip
    st = _study({"kind": "trapping", "drug": "ketamine"})
    assert kc.Study.from_toml(st.to_toml()) == st


def test_the_drug_of_a_trapping_protocol_is_the_blocker_in_block_and_not_in_control():
    """Without ``drug``, a trapping protocol names its drug itself: the blocker applied in
    'block' and not in 'control' (Mg2+ is in every segment): the same study, the same bytes as
    with drug = "ketamine"."""
    st = _study({"kind": "trapping", "window": "0.5 s", "early": "0.1 s"})
    assert S._drug_ligands(st, st.parts["main"]) == ("ketamine",)
    given = _run(_study({"kind": "trapping", "window": "0.5 s", "early": "0.1 s", "drug": "ketamine"}))
    ds = _run(st)
    for v in ("blocked_end_block_det", "trapped_occupancy_mc", "trapped_det", "block_mc"):
        np.testing.assert_array_equal(ds[v].values, given[v].values)
    # ketamine written as a literal 0 in control is still not applied there
    segs = _segments()
    segs[0]["ketamine"] = "0 uM"
    st0 = _study({"kind": "trapping"}, segments=segs)
    assert S._drug_ligands(st0, st0.parts["main"]) == ("ketamine",)


def test_two_applied_blockers_without_drug_are_refused():
    # both in control and in block: the protocol does not tell which is the drug
    segs = _segments()
    segs[0]["ketamine"] = "1 uM"
    with pytest.raises(StudyError, match=r"\[protocol\]\.analysis\.drug: this protocol applies several "
                                         r"blockers \(\['ketamine', 'mg'\]\).*trapping.*"
                                         r"kind = \"trapping\", drug = \"ketamine\""):
        _study({"kind": "trapping"}, segments=segs)
    # both applied only with block: both are the drug (co-applied), by the same rule
    st = _study({"kind": "trapping"}, segments=_segments(mg_in=("block",)))
    assert S._drug_ligands(st, st.parts["main"]) == ("ketamine", "mg")
    # Mg2+ only in the initial conditions table: not in block, so ketamine is the drug
    st = _study({"kind": "trapping"}, segments=_segments(mg_in=()), initial={"mg": "1 mM", "glutamate": 0})
    assert S._drug_ligands(st, st.parts["main"]) == ("ketamine",)


@pytest.mark.parametrize("drug, match", [
    ("memantine", r"'memantine' is not the ligand of a blocker of this study.*\['ketamine', 'mg'\]"),
    ("glutamate", r"'glutamate' is not the ligand of a blocker of this study"),
    (["ketamine", "nope"], r"'nope' is not the ligand of a blocker of this study"),
    ([], r"must be a blocker ligand or a non-empty list of them"),
    (3, r"must be a blocker ligand or a non-empty list of them"),
])
def test_unknown_drug_is_refused(drug, match):
    with pytest.raises(StudyError, match=r"\[protocol\]\.analysis\.drug: " + match):
        _study({"kind": "trapping", "drug": drug})


def test_drug_not_applied_is_refused():
    with pytest.raises(StudyError, match=r"analysis\.drug: 'mg' is not applied by this protocol.*"
                                         r"no channel can carry it"):
        _study({"kind": "trapping", "drug": "mg"}, segments=_segments(mg_in=()))


def test_cli_footnote_names_the_drug_only_with_a_background():
    """`ketacore run`'s trapping footnote says whose channels trapped_occupancy counts when a
    background blocker is in the study (the default single-blocker study reads as before)."""
    ds = _run(_study({"kind": "trapping", "window": "0.5 s", "early": "0.1 s", "drug": "ketamine"}))
    note = S._trapping_note(ds)
    assert "trapped_occupancy = blocked occupancy (channels carrying ketamine) after wash" in note
    one = _run(_study({"kind": "trapping", "window": "0.5 s", "early": "0.1 s"}, blockers=("ketamine",),
                      segments=_segments(mg_in=())))
    assert "trapped_occupancy = blocked occupancy after wash / at the end of block." in S._trapping_note(one)
