"""Fixes of review B's findings on ``kc.theory`` and ``kc.fitting`` (/tmp/reviewB/report.md):

* #2 ``hjc_loglik`` takes a resolved Record as ``fit_hjc`` does (its ``hjc_groups(t_crit)`` at
  its ``t_res``; the same rules and messages for a ``t_res`` that is not the record's);
* #3 ``hjc_loglik`` (and ``fit_hjc``, once per data set) warns when the durations look like
  ms given with ``t_res`` in s (the rule of ``fit_mixture`` / ``Record.resolve``);
* #5 no numpy-2 scalar reprs (``np.float64(1.0)``) in the messages of ``validate_q`` and the
  other checks of theory.py / fitting.py;
* #6 ``concentration_response`` with a scalar concentration says so;
* #7 ``fit_hjc(scheme, [groups, {...}])`` says that a single pair must be a tuple;
* #9 ``hjc_loglik(..., t_crit=...)`` (and ``fit_hjc``, once per data set) warns when shut
  times inside the groups are longer than ``t_crit``;
* #10 the ``apparent_dwell_times`` docstring states where CH82's 1.9 ms ``t_res`` limit holds.

Every assertion is deterministic (fixed seeds); durations in s, concentrations in M.
"""
from __future__ import annotations

import contextlib
import math
import re
import warnings

import numpy as np
import pytest

import ketacore as kc
from ketacore import analysis as ka
from ketacore import fitting
from ketacore import theory as th
from ketacore.units import ms, uM, us

CH82 = kc.models.get("ch82")
T_RES, T_CRIT = 25 * us, 3.5 * ms
C = 1 * uM


def _record(c=C, t_end=3.0, seed=21):
    log = kc.simulate_events(CH82, kc.Step(t_end, agonist=c), rng=seed,
                             initial=th.equilibrium(CH82, agonist=c))
    return ka.Record.from_events(log).resolve(T_RES)


@pytest.fixture(scope="module")
def rec():
    return _record()


def _user_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, UserWarning)]


@contextlib.contextmanager
def _no_user_warning():
    """Any UserWarning inside is an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        yield


# ------------------------------------------------------------------ #2 a Record in hjc_loglik

@pytest.mark.parametrize("t_crit", [T_CRIT, None])
def test_hjc_loglik_of_a_record_is_that_of_its_hjc_groups_bit_for_bit(rec, t_crit):
    ref = th.hjc_loglik(CH82, rec.hjc_groups(t_crit), t_res=rec.t_res, t_crit=t_crit,
                        agonist=C)
    assert math.isfinite(ref)
    assert th.hjc_loglik(CH82, rec, t_crit=t_crit, agonist=C) == ref          # t_res omitted
    assert th.hjc_loglik(CH82, rec, t_res=rec.t_res, t_crit=t_crit, agonist=C) == ref
    # a value equal to the record's to rounding (25 * us vs 25e-6) uses the record's, as fit_hjc
    assert th.hjc_loglik(CH82, rec, t_res=25e-6, t_crit=t_crit, agonist=C) == ref
    assert th.hjc_loglik(CH82, rec, t_res=np.float64(T_RES), t_crit=t_crit, agonist=C) == ref


def test_hjc_loglik_of_a_record_refuses_another_t_res_as_fit_hjc_does(rec):
    frag = ("the Record was resolved at t_res=2.5e-05 s but {} was given t_res=5e-05 s; they "
            "must be equal")
    with pytest.raises(ValueError, match=re.escape("hjc_loglik: " + frag.format("hjc_loglik"))
                       + r" \(omit t_res to use the record's\)"):
        th.hjc_loglik(CH82, rec, t_res=2 * T_RES, t_crit=T_CRIT, agonist=C)
    with pytest.raises(ValueError, match=re.escape(frag.format("fit_hjc"))):   # the same rule
        fitting.fit_hjc(CH82, (rec, {"agonist": C}), t_res=2 * T_RES, t_crit=T_CRIT,
                        free=["AR->R"])
    # a t_res that is not a number is refused by the usual check
    with pytest.raises(TypeError, match="t_res must be a real number"):
        th.hjc_loglik(CH82, rec, t_res="25e-6", agonist=C)


def test_hjc_loglik_record_refusals():
    log = kc.simulate_events(CH82, kc.Step(0.5, agonist=C), rng=3,
                             initial=th.equilibrium(CH82, agonist=C))
    with pytest.raises(ValueError, match=re.escape(
            "hjc_loglik: the Record is not resolved (t_res = 0): call .resolve(t_res) first")):
        th.hjc_loglik(CH82, ka.Record.from_events(log), agonist=C)
    # one opening, censored at its end: no group
    lone = ka.Record.from_dwells([1e-3, 2e-3], [0.0, 5e-12]).resolve(T_RES)
    with pytest.raises(ValueError, match=re.escape(
            "hjc_loglik: the Record gives no group (no opening with both ends observed)")):
        th.hjc_loglik(CH82, lone, agonist=C)
    # t_crit is checked against the record's resolution, with hjc_loglik's message
    with pytest.raises(ValueError, match=r"t_crit must be a finite critical shut time > "
                                         r"t_res=2\.5e-05 s"):
        th.hjc_loglik(CH82, _record(t_end=0.5), t_crit=1e-5, agonist=C)
    # groups still need t_res
    with pytest.raises(TypeError, match="hjc_loglik: t_res is required .* only when groups is "
                                        "a resolved Record"):
        th.hjc_loglik(CH82, [[1e-3, 2e-4, 1e-3]], agonist=C)


def test_hjc_loglik_of_a_hand_built_record_uses_its_groups_and_resolution():
    """What the docstring promises for a Record, against groups written out by hand (not
    through ``hjc_groups``): the censored first and last shut times are dropped, the record is
    split at the shut time longer than ``t_crit`` (dropped too), and ``t_res`` is the
    record's.  A Record whose openings have two levels gets ``hjc_groups``' refusal."""
    d = [1e-3, 2e-3, 1e-3, 3e-3, 5e-3, 2e-3, 1e-3]      # shut, open, shut, ..., shut (s)
    one = ka.Record.from_dwells(d, [0, 5e-12, 0, 5e-12, 0, 5e-12, 0]).resolve(T_RES)
    by_hand = {T_CRIT: [[2e-3, 1e-3, 3e-3], [2e-3]],      # split at the 5 ms shut time
               None: [[2e-3, 1e-3, 3e-3, 5e-3, 2e-3]]}     # one group
    for t_crit, groups in by_hand.items():
        ref = th.hjc_loglik(CH82, groups, t_res=T_RES, t_crit=t_crit, agonist=C)
        assert math.isfinite(ref)
        # (the record's durations are differences of cumulative times: rounding-level apart)
        assert th.hjc_loglik(CH82, one, t_crit=t_crit, agonist=C) == pytest.approx(ref, rel=1e-12)
        # the other split, or another resolution, gives another value: the comparison can tell
        with warnings.catch_warnings():     # (the unsplit groups with t_crit: a UserWarning)
            warnings.simplefilter("ignore", UserWarning)
            other = th.hjc_loglik(CH82, by_hand[None if t_crit else T_CRIT], t_res=T_RES,
                                  t_crit=t_crit, agonist=C)
        assert not other == pytest.approx(ref, rel=1e-6)
        assert not th.hjc_loglik(CH82, groups, t_res=2 * T_RES, t_crit=t_crit,
                                 agonist=C) == pytest.approx(ref, rel=1e-6)
    with pytest.raises(ValueError, match=re.escape(
            "hjc_groups: the dwells use classes (levels) ['shut (0)', 'open1 (5e-12)', "
            "'open2 (2e-12)']: more than one open or shut level")):
        th.hjc_loglik(CH82, ka.Record.from_dwells(d, [0, 5e-12, 0, 2e-12, 0, 5e-12, 0])
                      .resolve(T_RES), agonist=C)


def test_hjc_loglik_of_a_record_t_res_within_1e_9_is_replaced_by_the_records(rec):
    """The docstring's tolerance: a ``t_res`` within a relative 1e-9 of the record's is
    accepted and the record's own value is used (the same groups at the given value give
    another ln L); beyond it, either side, the ValueError naming both."""
    groups = rec.hjc_groups(T_CRIT)
    ref = th.hjc_loglik(CH82, groups, t_res=rec.t_res, t_crit=T_CRIT, agonist=C)
    for rel in (4e-10, -4e-10):
        near = rec.t_res * (1 + rel)
        assert near != rec.t_res
        assert th.hjc_loglik(CH82, rec, t_res=near, t_crit=T_CRIT, agonist=C) == ref
        assert th.hjc_loglik(CH82, groups, t_res=near, t_crit=T_CRIT, agonist=C) != ref
    for rel in (2e-9, -2e-9):
        with pytest.raises(ValueError, match=r"^hjc_loglik: the Record was resolved at "
                                             r"t_res=2\.5e-05 s but .* they must be equal"):
            th.hjc_loglik(CH82, rec, t_res=rec.t_res * (1 + rel), t_crit=T_CRIT, agonist=C)


# ------------------------------------------------------------------ #3 units warning

@pytest.fixture(scope="module")
def groups_in_ms():
    """CH82 at 10 uM, 5 s, resolved at 25 us, durations multiplied by 1000 (3204 intervals,
    shortest 25 ms, median 0.43 s: the units rule's G is 60)."""
    rec = _record(c=10 * uM, t_end=5.0, seed=21)
    return [g * 1000 for g in rec.hjc_groups(T_CRIT)]


def test_hjc_loglik_warns_once_for_durations_in_ms(groups_in_ms):
    with pytest.warns(UserWarning) as record:
        th.hjc_loglik(CH82, groups_in_ms, t_res=T_RES, agonist=10 * uM)
    msgs = _user_warnings(record)
    assert len(msgs) == 1
    assert msgs[0].startswith("hjc_loglik: the durations look like milliseconds given with "
                              "t_res in seconds")
    assert record[0].filename == __file__          # attributed to the caller
    # the same durations in s: no warning
    with _no_user_warning():
        th.hjc_loglik(CH82, [g / 1000 for g in groups_in_ms], t_res=T_RES, agonist=10 * uM)


def test_fit_hjc_warns_once_per_data_set_for_durations_in_ms(groups_in_ms):
    with warnings.catch_warnings(record=True) as record:  # (and the non-convergence warning)
        warnings.simplefilter("always")
        fitting.fit_hjc(CH82, [(groups_in_ms, {"agonist": 10 * uM})], t_res=T_RES,
                        free=["AR->R"], max_evaluations=20)
    msgs = _user_warnings(record)
    units = [m for m in msgs if "look like milliseconds" in m]
    assert len(units) == 1 and units[0].startswith("fit_hjc: data[0]: the durations look like "
                                                   "milliseconds")
    assert not [m for m in msgs if m.startswith("hjc_loglik")]


# ------------------------------------------------------------------ #9 groups not split at t_crit

def test_hjc_loglik_warns_once_when_groups_were_not_split_at_t_crit(rec):
    g = rec.hjc_groups()                      # one group per sweep: long shut times inside
    shut = np.concatenate([x[1::2] for x in g])
    long_ = shut[shut > T_CRIT]
    assert long_.size > 10
    expected = (f"hjc_loglik: {long_.size} shut time(s) inside the groups are longer than "
                f"t_crit=0.0035 s (the longest {float(long_.max()):.6g} s): the groups were "
                "not split at t_crit")
    with pytest.warns(UserWarning, match=re.escape(expected)) as record:
        v = th.hjc_loglik(CH82, g, t_res=T_RES, t_crit=T_CRIT, agonist=C)
    assert len(_user_warnings(record)) == 1
    assert math.isfinite(v)
    # split at t_crit (or no t_crit, or a t_crit above every shut time): no warning
    with _no_user_warning():
        th.hjc_loglik(CH82, rec.hjc_groups(T_CRIT), t_res=T_RES, t_crit=T_CRIT, agonist=C)
        th.hjc_loglik(CH82, rec, t_crit=T_CRIT, agonist=C)
        th.hjc_loglik(CH82, g, t_res=T_RES, agonist=C)
        th.hjc_loglik(CH82, g, t_res=T_RES, t_crit=float(shut.max()), agonist=C)
        th.hjc_loglik(CH82, [x[:1] for x in g], t_res=T_RES, t_crit=T_CRIT, agonist=C)


def test_hjc_loglik_t_crit_warning_counts_only_shut_times():
    # long openings (even positions) are not counted; the shut time of the second group is
    g = [np.array([0.1, 1e-3, 0.2]), np.array([1e-3, 5e-3, 1e-3, 2e-3, 0.3])]
    with pytest.warns(UserWarning, match=re.escape(
            "hjc_loglik: 1 shut time(s) inside the groups are longer than t_crit=0.004 s "
            "(the longest 0.005 s)")):
        th.hjc_loglik(CH82, g, t_res=T_RES, t_crit=4e-3, agonist=C)


def test_hjc_loglik_t_crit_warning_matches_a_per_group_count():
    """Many groups of random odd lengths: the vectorised count and maximum equal a loop's."""
    rng = np.random.default_rng(5)
    g = [T_RES + rng.exponential(2e-3, 2 * int(n) + 1) for n in rng.integers(0, 6, 300)]
    shut = np.concatenate([x[1::2] for x in g])
    long_ = shut[shut > T_CRIT]
    assert 10 < long_.size < shut.size
    with pytest.warns(UserWarning, match=re.escape(
            f"hjc_loglik: {long_.size} shut time(s) inside the groups are longer than "
            f"t_crit=0.0035 s (the longest {float(long_.max()):.6g} s)")):
        th.hjc_loglik(CH82, g, t_res=T_RES, t_crit=T_CRIT, agonist=C)


def test_fit_hjc_warns_once_per_data_set_not_per_evaluation(rec):
    g = rec.hjc_groups()
    shut = np.concatenate([x[1::2] for x in g])
    n_long = int(np.count_nonzero(shut > T_CRIT))
    with pytest.warns(UserWarning) as record:
        fit = fitting.fit_hjc(CH82, [(g, {"agonist": C}), (rec, {"agonist": C})],
                              t_res=T_RES, t_crit=T_CRIT, free=["AR->R"])
    msgs = _user_warnings(record)
    assert fit.n_evaluations > 10
    assert msgs == [f"fit_hjc: data[0]: {n_long} shut time(s) inside the groups are longer "
                    f"than t_crit=0.0035 s (the longest {float(shut[shut > T_CRIT].max()):.6g} "
                    "s): the groups were not split at t_crit, but the CHS start and end "
                    "vectors used with t_crit assume that shut times longer than t_crit "
                    "separate groups and are not in them; pass Record.hjc_groups(t_crit) "
                    "with the same t_crit (durations in s)"]
    assert record[0].filename == __file__
    # the reported ln L is still the public function's
    with pytest.warns(UserWarning, match=r"^hjc_loglik: \d+ shut time\(s\) inside"):
        ref = (th.hjc_loglik(fit.scheme, g, t_res=T_RES, t_crit=T_CRIT, agonist=C)
               + th.hjc_loglik(fit.scheme, rec, t_crit=T_CRIT, agonist=C))
    assert fit.loglik == ref


def test_fit_hjc_on_groups_split_at_t_crit_gives_no_user_warning(rec):
    with _no_user_warning():
        fitting.fit_hjc(CH82, (rec, {"agonist": C}), t_crit=T_CRIT, free=["AR->R"])


# ------------------------------------------------------------------ #5 numpy scalar reprs

def test_validate_q_messages_show_plain_numbers():
    with pytest.raises(ValueError, match=r"^row 0 of Q sums to 1\.0, not 0 ") as e1:
        th.equilibrium(np.array([[-1., 2.], [1., -1.]]))
    with pytest.raises(ValueError, match=r"^Q\[0, 1\] = -1\.0: off-diagonal rates must be "
                                         r">= 0") as e2:
        th.equilibrium(np.array([[1., -1.], [1., -1.]]))
    for e in (e1, e2):
        assert "np." not in str(e.value)


def test_other_messages_show_plain_numbers():
    good = [[1e-3, 2e-4, 1e-3]]
    cases = [
        (ValueError, r"t_res must be a finite time resolution > 0 \(s\), got -1\.0;",
         lambda: th.hjc_loglik(CH82, good, t_res=np.float64(-1.0), agonist=C)),
        (ValueError, r"t_crit must be a finite critical shut time > t_res=5e-05 s \(in s\), "
                     r"got 1e-05$",
         lambda: th.hjc_loglik(CH82, good, t_res=5e-5, t_crit=np.float64(1e-5), agonist=C)),
        (TypeError, r"groups\[0\] must be a 1-D array of interval durations \(s\), got "
                    r"float64 \(0\.001\)",
         lambda: th.hjc_loglik(CH82, [np.float64(1e-3)], t_res=5e-5, agonist=C)),
        (ValueError, r"duplicate states in \[0, 0\]",
         lambda: th.dwell_times(CH82, [np.int64(0), np.int64(0)], agonist=C)),
        (TypeError, r"got float64 \(1\.5\)",
         lambda: th.dwell_times(CH82, np.float64(1.5), agonist=C)),
        (TypeError, r"within must be .* got float64 \(2\.0\)",
         lambda: th.bursts(CH82, np.float64(2.0), agonist=C)),
        (ValueError, r"max_evaluations must be a positive integer, got 2\.5$",
         lambda: fitting.fit_hjc(CH82, (good, {"agonist": C}), t_res=5e-5,
                                 max_evaluations=np.float64(2.5))),
        (TypeError, r"transitions are named 'SRC->DST' strings, got int64 \(3\)$",
         lambda: fitting.fit_hjc(CH82, (good, {"agonist": C}), t_res=5e-5,
                                 free=[np.int64(3)])),
        (ValueError, r"method must be one of .*, got 'lbfgs'$",
         lambda: fitting.fit_hjc(CH82, (good, {"agonist": C}), t_res=5e-5,
                                 method=np.str_("lbfgs"))),
        (ValueError, r"unknown ligand 'agnist'",
         lambda: th.concentration_response(CH82, np.str_("agnist"))),
    ]
    for exc, pat, f in cases:
        with pytest.raises(exc, match=pat) as info:
            f()
        assert "np." not in str(info.value), str(info.value)


# ------------------------------------------------------------------ #6 scalar concentration

def test_concentration_response_scalar_says_scalar():
    with pytest.raises(ValueError, match=re.escape(
            "concentrations must be a 1-d array of concentrations (M), got a scalar (1e-06): "
            "pass [c] for a single concentration")):
        th.concentration_response(CH82, "agonist", 1e-6)
    with pytest.raises(ValueError, match=r"got a scalar \(1e-06\)"):
        th.concentration_response(CH82, "agonist", np.float64(1e-6))
    # unchanged: a 1-d array is accepted, out-of-range values get the range message
    r = th.concentration_response(CH82, "agonist", [1e-6])
    assert r.popen.shape == (1,)
    with pytest.raises(ValueError, match=r"values in \[0, 10\] M"):
        th.concentration_response(CH82, "agonist", [20.0])
    with pytest.raises(ValueError, match=r"values in \[0, 10\] M"):
        th.concentration_response(CH82, "agonist", [[1e-6]])


# ------------------------------------------------------------------ #7 a list for one pair

def test_fit_hjc_list_instead_of_tuple_hint(rec):
    hint = (r"a single \(groups, conditions\) pair must be a tuple, data=\(groups, \{\.\.\.\}\), "
            r"not a list: a list is read as a list of data sets")
    with pytest.raises(TypeError, match=r"data\[0\] must be \(groups, conditions\) .*got "
                                        r"Record; " + hint):
        fitting.fit_hjc(CH82, [rec, {"agonist": C}], free=["AR->R"])
    with pytest.raises(TypeError, match=hint):
        fitting.fit_hjc(CH82, [rec.hjc_groups(T_CRIT), {"agonist": C}, T_CRIT], t_res=T_RES,
                        free=["AR->R"])
    # a genuine list of data sets whose second item is bad: no hint about tuples
    with pytest.raises(TypeError, match=r"data\[1\] must be .*got dict$"):
        fitting.fit_hjc(CH82, [(rec, {"agonist": C}), {"agonist": C}], free=["AR->R"])
    # other bad data: unchanged message
    with pytest.raises(TypeError, match=r"data\[0\] must be .*got Record$"):
        fitting.fit_hjc(CH82, [rec], free=["AR->R"])


# ------------------------------------------------------------------ #10 docstring

def test_apparent_dwell_times_t_res_limit_states_its_conditions():
    lim = lambda c: th.MAX_T_RES_RATE / float(np.max(-np.diag(CH82.q_matrix(agonist=c))))
    # the numbers the docstrings give
    for c in (0.01 * uM, 0.1 * uM, 1 * uM, 10 * uM, 30 * uM):
        assert f"{lim(c) * 1e3:.1f}" == "1.9"
    assert f"{lim(1e-4) * 1e3:.2f}" == "0.68"
    assert f"{lim(1e-3) * 1e6:.0f}" == "72"
    doc = " ".join(th.apparent_dwell_times.__doc__.split())
    assert "for CH82 at 0.01-10 uM agonist, whose fastest rate there is 1.9e4 s^-1, 1.9 ms" in doc
    assert "0.68 ms at 100 uM, 72 us at 1 mM agonist" in doc
    assert "CH82 at 0.01-10 uM agonist" in " ".join(th.hjc_loglik.__doc__.split())
