"""Input validation of kc.Study, kc.run_study and `ketacore run` (fuzzing audit).

Bad input must give a StudyError naming the key (or a TypeError/ValueError naming the argument of
run_study) quickly and before any heavy work; the CLI exits with code 2 and a one-line message,
never a traceback.  Cases that used to hang or exhaust memory run in subprocesses with a timeout
(all started together by one fixture), so a regression fails instead of hanging the suite.
"""
import subprocess
import sys
import textwrap
import time

import pytest

import ketacore as kc
from ketacore import study as S
from ketacore.cli import main as cli_main

pytest.importorskip("xarray")
pytest.importorskip("netCDF4")

TINY = dict(model="destexhe1994", protocol=[{"duration": "10 ms", "glutamate": "1 mM"}],
            n_trials=2, n_channels=5)
TINY_TOML = textwrap.dedent("""
    model = "destexhe1994"
    n_trials = 2
    n_channels = 5
    {extra}
    [protocol]
    [[protocol.segments]]
    duration = "10 ms"
    glutamate = "1 mM"
""")

# ------------------------------------------------------------------------------------------
# Cases that hung or ran out of memory: each in its own subprocess, all started at once
# ------------------------------------------------------------------------------------------
# Subprocesses get a 6 GiB address-space limit: a regression then fails with MemoryError instead
# of pushing the machine into swap or the OOM killer.
_LIMIT = textwrap.dedent("""
    import os, resource
    if not os.environ.get("KETACORE_SANITIZED"):  # ASan's shadow memory needs far more
        resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30))
""")
_PRELUDE = _LIMIT + textwrap.dedent("""
    import ketacore as kc
    TINY = dict(model="destexhe1994", protocol=[{"duration": "10 ms", "glutamate": "1 mM"}],
                n_trials=2, n_channels=5)
    def show(label, fn):
        try:
            r = fn()
            print(f"{label}|{r!r}", flush=True)
        except Exception as e:
            print(f"{label}|{type(e).__name__}: {e}", flush=True)
""")
# two processes (Study only; run_study), each printing one labelled line per case as it finishes
_HANG_SCRIPTS = {
    "study": """
        # ** on exact integers was unbounded
        for x in ("9**9**9", "2**2**40", "10**10**7 % 3"):
            show(x, lambda: kc.Study(model="destexhe1994", protocol=[{"duration": 1}], parameters={"x": x}))
        # a train of 10**9 pulses was built inside Study()
        show("n_pulses", lambda: kc.Study(model="destexhe1994", protocol=[
            {"train": {"n_pulses": 1e9, "frequency": 10, "width": 0.01}}]))
    """,
    "run": """
        # the chunk splitter appended empty ranges forever
        show("chunk_trials=-1", lambda: kc.run_study(kc.Study(**TINY), chunk_trials=-1, progress=False))
        show("chunk_trials=0", lambda: kc.run_study(kc.Study(**TINY), chunk_trials=0, progress=False))
        from ketacore.study import _gaps
        show("gaps", lambda: _gaps(2**40, [(0, 2**39)], 2**38))
        # np.zeros(n_trials) and a plan of 2**34 chunks
        big = kc.Study(**{**TINY, "n_trials": 2**40, "n_channels": 1})
        show("n_trials", lambda: kc.run_study(big, progress=False))
        show("n_trials one chunk", lambda: kc.run_study(big, chunk_trials=2**40, progress=False))
        # building 10**9 sweep points
        st = kc.Study(**TINY, parameters={"a": 0, "b": 0, "c": 0},
                      sweep={k: list(range(1000)) for k in "abc"})
        show("sweep run", lambda: kc.run_study(st, progress=False))
        show("sweep points", lambda: st.points("main"))
        # refused against the available memory (fixed here at 2 GiB) before the folder is made
        import ketacore._validate, os, tempfile
        ketacore._validate.available_memory = lambda: 2.0 * 2**30
        counts = kc.Study(**{**TINY, "n_trials": 2**20, "record": "counts",
                             "protocol": [{"duration": "1 s", "glutamate": "1 mM"}]})
        out = os.path.join(tempfile.mkdtemp(), "o")
        show("counts", lambda: kc.run_study(counts, output=out, progress=False))
        show("counts folder", lambda: os.path.exists(out))
    """,
}
_CLI_HANG = TINY_TOML.format(extra='[parameters]\nx = "9**9**9"')
_CLI_BIG = TINY_TOML.format(extra="").replace("n_trials = 2", "n_trials = 1099511627776") \
    .replace("n_channels = 5", "n_channels = 1")


def _cli_proc(*args):
    code = _LIMIT + f"import sys\nfrom ketacore.cli import main\nsys.exit(main({list(args)!r}))"
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def hangs(tmp_path_factory):
    """Run the hang cases (and `ketacore run hang.toml`) in subprocesses started together."""
    d = tmp_path_factory.mktemp("hangs")
    (d / "hang.toml").write_text(_CLI_HANG)
    (d / "big.toml").write_text(_CLI_BIG)
    procs = {name: subprocess.Popen([sys.executable, "-c", _PRELUDE + textwrap.dedent(code)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, code in _HANG_SCRIPTS.items()}
    procs["cli"] = _cli_proc("run", str(d / "hang.toml"), "-o", str(d / "out"), "-q")
    procs["cli_big"] = _cli_proc("run", str(d / "big.toml"), "-o", str(d / "out_big"), "-q")
    deadline = time.monotonic() + 60
    out = {}
    for name, p in procs.items():
        try:
            so, se = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            out[name] = (p.returncode, so, se)
        except subprocess.TimeoutExpired:
            p.kill()
            so, se = p.communicate()
            out[name] = ("timeout", so, se)
    out["cli_dir"] = d / "out"
    out["cli_big_dir"] = d / "out_big"
    return out


def _case(hangs, script, label):
    rc, so, se = hangs[script]
    for line in so.splitlines():
        if line.startswith(label + "|"):
            return line[len(label) + 1:]
    pytest.fail(f"case {label!r} did not finish (script {script}: {rc}; a hang?)\n{so}\n{se[-2000:]}")


@pytest.mark.parametrize("x", ["9**9**9", "2**2**40", "10**10**7 % 3"])
def test_hanging_expressions_refused(hangs, x):
    line = _case(hangs, "study", x)
    assert line.startswith(f"StudyError: Study: [parameters].x: {x!r} cannot be evaluated"), line


def test_hanging_expression_from_cli(hangs):
    rc, _, se = hangs["cli"]
    assert rc == 2, (rc, se)
    assert "Traceback" not in se
    assert se.strip() == ("ketacore run: hang.toml: [parameters].x: '9**9**9' cannot be evaluated: "
                          "a value exceeds the floating-point range (about 1.8e308)")
    assert not hangs["cli_dir"].exists()


def test_chunk_trials_below_one_refused(hangs):
    assert _case(hangs, "run", "chunk_trials=-1") == "ValueError: chunk_trials must be >= 1, got -1"
    assert _case(hangs, "run", "chunk_trials=0") == "ValueError: chunk_trials must be >= 1, got 0"
    # the splitter works on ranges (no per-trial mask of 2**40 entries)
    assert _case(hangs, "run", "gaps") == repr([(2**39, 2**39 + 2**38), (2**39 + 2**38, 2**40)])


@pytest.mark.parametrize("label", ["n_trials", "n_trials one chunk"])
def test_huge_n_trials_refused_with_estimate(hangs, label):
    line = _case(hangs, "run", label)
    assert line.startswith("StudyError: Study: [protocol]: this run ("), line
    assert "GiB of memory" in line and "reduce n_trials" in line


def test_huge_sweep_refused_with_estimate(hangs):
    run = _case(hangs, "run", "sweep run")
    assert run.startswith("StudyError: Study: [protocol]: this run (1e+09 sweep point(s)"), run
    points = _case(hangs, "run", "sweep points")
    assert points.startswith("StudyError: Study: [sweep]: the list of 1e+09 sweep points needs about"), points


def test_huge_train_refused_before_building(hangs):
    line = _case(hangs, "study", "n_pulses")
    assert line.startswith("StudyError: Study: [protocol].segments[0].train.n_pulses: a train of 1e+09 "
                           "pulses"), line
    assert "use fewer pulses" in line


# ------------------------------------------------------------------------------------------
# Expressions
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("expr, msg", [
    ("10.0**400", "exceeds the floating-point range"),
    ("int(1e999)", "cannot be evaluated"),
    ("1e999", "is not a finite number"),
    ("1e300 * 1e300 - 1e300 * 1e300", "cannot be evaluated"),
    ("abs()", "abs() takes 1 argument(s), got 0"),
    ("max(1)", "max() takes at least 2 argument(s), got 1"),
    ("round(1, 2, 3)", "round() takes 1 or 2 argument(s), got 3"),
    ("round(2.5, 0.5)", "ndigits must be a whole number"),
    ("float(1, 2)", "float() takes 1 argument(s), got 2"),
    ("(-8) ** (1/3)", "is not a real number"),
    ("1" * 5000, "at most 1000 are allowed"),
], ids=lambda v: v[:20])
def test_bad_expressions_name_the_key(expr, msg):
    with pytest.raises(S.StudyError) as ei:
        kc.Study(**TINY, parameters={"x": expr})
    assert str(ei.value).startswith("Study: [parameters].x: "), str(ei.value)
    assert msg in str(ei.value)


@pytest.mark.parametrize("expr, msg", [
    ("0 ** -1", "division by zero"), ("5 % 0", "division by zero"),
    ("(" * 300 + "1" + ")" * 300, "cannot read"),
], ids=lambda v: v[:20])
def test_expression_errors_kept(expr, msg):
    """Guards for the float-only evaluator (these were already StudyErrors)."""
    with pytest.raises(S.StudyError, match=r"^Study: \[parameters\]\.x: ") as ei:
        kc.Study(**TINY, parameters={"x": expr})
    assert msg in str(ei.value)


def test_bad_expression_in_toml_names_file_and_key(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text(TINY_TOML.format(extra='[parameters]\nx = "10.0**400"'))
    with pytest.raises(S.StudyError, match=r"^bad\.toml: \[parameters\]\.x: '10\.0\*\*400' cannot"):
        kc.Study.from_toml(f)


@pytest.mark.parametrize("value", [10**400, float("nan"), float("inf")])
def test_non_finite_numbers_refused(value):
    with pytest.raises(S.StudyError, match=r"^Study: \[parameters\]\.x: must be a finite number"):
        kc.Study(**TINY, parameters={"x": value})


@pytest.mark.parametrize("expr, value", [
    ("round(2.567, 2)", 2.57), ("round(2.5)", 2.0), ("int(-2.7)", -2.0), ("max(1, 3, 2) * 2", 6.0),
    ("min(1 ms, 2 ms)", 1e-3), ("abs(-3) ** 2", 9.0), ("7 // 2 + 7 % 2", 4.0), ("2 ** 10", 1024.0),
    ("+".join(["1"] * 400), 400.0), ("$a * 2", 6.0),
], ids=lambda v: v[:20] if isinstance(v, str) else None)
def test_allowed_expressions_still_work(expr, value):
    """Guard: evaluating in floats keeps the values of ordinary expressions."""
    assert S._evaluate(expr, {"a": 3.0}, "t") == pytest.approx(value, rel=1e-15)


# ------------------------------------------------------------------------------------------
# Study fields of the wrong type
# ------------------------------------------------------------------------------------------
def test_single_blocker_string_is_one_blocker(tmp_path):
    st = kc.Study(**TINY, blockers="ketamine")
    assert st.blockers == ["ketamine"]
    assert kc.Study.from_toml(st.to_toml()).blockers == ["ketamine"]
    f = tmp_path / "one.toml"
    f.write_text(TINY_TOML.format(extra='blockers = "ketamine"'))
    assert kc.Study.from_toml(f).blockers == ["ketamine"]
    assert kc.Study(**TINY, blockers={"name": "ketamine", "k_escape": 0}).blockers == \
        [{"name": "ketamine", "k_escape": 0}]
    tree = kc.run_study(st, progress=False, workers=1)
    assert "ketamine" in tree["main"].to_dataset().attrs["blockers"]


def test_blockers_of_wrong_type():
    with pytest.raises(S.StudyError, match=r"^Study: blockers: must be a blocker name"):
        kc.Study(**TINY, blockers=5)


@pytest.mark.parametrize("kw, key", [
    (dict(protocol=5), "Study: protocol: must be a list of segments"),
    (dict(protocol="abc"), "Study: protocol: must be a list of segments"),
    (dict(protocol={"duration": 1}), "Study: protocol: must be a list of segments (tables, Steps or "
                                     "Protocols); got a single table"),
    (dict(outputs=5), "Study: [outputs]: must be a table"),
    (dict(parameters=5), "Study: [parameters]: must be a table"),
    (dict(sweep=5), "Study: sweep: must be a table"),
    (dict(analysis=5), "Study: analysis: must be one of"),
    (dict(initial=5), "Study: initial: must be 'equilibrium'"),
    (dict(initial={"open": 1}), "Study: [protocol].initial: 'open' is not a condition"),
    (dict(initial={"V": "abc"}), "Study: [protocol].initial.V: unknown name 'abc'"),
    (dict(description=5), "Study: description: must be a string"),
])
def test_wrong_types_name_the_parameter(kw, key):
    with pytest.raises(S.StudyError) as ei:
        kc.Study(**{**TINY, **kw})
    assert str(ei.value).startswith(key), str(ei.value)


@pytest.mark.parametrize("parts, key", [
    (5, "Study: parts: must be a table"),
    ({"a": 5}, "Study: parts['a']: must be a StudyPart or a table"),
    ({"a": {"foo": 1}}, "Study: parts['a'].foo: unknown key"),
    ({"a": {"segments": 5}}, "Study: parts['a'].segments: must be a list"),
    ({"a": {"segments": [{"duration": 1}], "sweep": [1]}}, "Study: parts['a'].sweep: must be a table"),
])
def test_parts_of_wrong_type(parts, key):
    kw = {k: v for k, v in TINY.items() if k != "protocol"}
    with pytest.raises(S.StudyError) as ei:
        kc.Study(**kw, parts=parts)
    assert str(ei.value).startswith(key), str(ei.value)


def test_studypart_field_of_wrong_type():
    with pytest.raises(S.StudyError, match=r"^StudyPart: segments: must be a list"):
        S.StudyPart(segments=5)
    assert S.StudyPart(segments=kc.Step(1.0)).segments == [kc.Step(1.0).to_dict()]


def test_toml_analysis_of_wrong_type_names_toml_key():
    with pytest.raises(S.StudyError, match=r"^study: \[protocol\]\.analysis: must be one of"):
        kc.Study.from_toml(TINY_TOML.format(extra="").replace("[protocol]", "[protocol]\nanalysis = 5"))


def test_initial_conditions_checked_against_the_model():
    for initial, msg in [({"glutamte": 0}, r"\[protocol\]\.initial\.glutamte: not a condition of "
                                           r"destexhe1994; the conditions table takes \['V', "
                                           r"'temperature', 'glutamate'\]"),
                         ({"V": 5}, r"\[protocol\]\.initial: initial: V=5\.0 V is outside")]:
        with pytest.raises(S.StudyError, match="^Study: " + msg):
            kc.run_study(kc.Study(**TINY, initial=initial), progress=False, workers=1)


def test_duplicate_blockers_are_a_study_error():
    with pytest.raises(S.StudyError, match=r"^Study: blockers: "):
        kc.run_study(kc.Study(**TINY, blockers=["ketamine", "ketamine"]), progress=False, workers=1)


def test_too_many_samples_refused():
    with pytest.raises(S.StudyError, match=r"^Study: dt: dt=1e-300 s gives duration/dt = 1e\+298 grid points"):
        kc.run_study(kc.Study(**TINY, dt=1e-300), progress=False)


# ------------------------------------------------------------------------------------------
# run_study arguments and memory estimates
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, exc, msg", [
    (dict(chunk_trials="x"), TypeError, "chunk_trials must be an integer, got str"),
    (dict(chunk_trials=0.5), TypeError, "chunk_trials must be an integer, got float"),
    (dict(chunk_trials=True), TypeError, "chunk_trials must be an integer, got bool"),
    (dict(workers="1"), TypeError, "workers must be an integer, got str"),
    (dict(workers=1.9), TypeError, "workers must be an integer, got float"),
    (dict(workers=True), TypeError, "workers must be an integer, got bool"),
    (dict(figures="traces"), TypeError, "figures must be None, True, False or a list"),
    (dict(figures=["bogus"]), ValueError, "unknown figure names ['bogus']"),
    (dict(output=5), TypeError, "output must be a folder path"),
    (dict(executor=5), TypeError, "executor must be a concurrent.futures.Executor"),
])
def test_run_study_arguments(kw, exc, msg):
    with pytest.raises(exc) as ei:
        kc.run_study(kc.Study(**TINY), progress=False, **kw)
    assert msg in str(ei.value)


def test_run_study_output_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(NotADirectoryError, match="exists and is not a folder"):
        kc.run_study(kc.Study(**TINY), output=f, progress=False)
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        kc.run_study(kc.Study(**TINY), output=f / "sub", progress=False)
    assert f.read_text() == "x"


def test_memory_refusal_uses_available_memory(hangs):
    """Refused with an estimate against the machine's available memory, before the output folder
    is created; record='summary' is named as the way out."""
    msg = _case(hangs, "run", "counts")
    assert msg.startswith("StudyError: Study: [protocol]: this run (1 sweep point(s) x 1001 samples x "
                          "5 states, 1.049e+06 trials per point"), msg
    assert "of the 2 GiB available" in msg and "record = 'summary'" in msg
    assert _case(hangs, "run", "counts folder") == "False"


def test_chunk_coverage_still_checked():
    """Guard for the range-based _gaps and the streaming _sorted_chunks."""
    d = {"start": 0, "stop": 2}
    with pytest.raises(RuntimeError, match="do not cover the trials exactly once"):
        list(S._sorted_chunks(None, "main", 0, {("main", 0): [d]}, 3))
    with pytest.raises(RuntimeError, match="do not cover the trials exactly once"):
        list(S._sorted_chunks(None, "main", 0, {("main", 0): [d, {"start": 1, "stop": 3}]}, 3))
    assert S._gaps(10, [(2, 4), (3, 5), (8, 20)], 2) == [(0, 2), (5, 7), (7, 8)]
    # a stray chunk beyond n_trials covers nothing: the gaps stop at n (they ran to 12)
    assert S._gaps(10, [(12, 15)], 4) == [(0, 4), (4, 8), (8, 10)]


# ------------------------------------------------------------------------------------------
# CLI: invalid input exits 2 with one line on stderr
# ------------------------------------------------------------------------------------------
@pytest.fixture
def ok_toml(tmp_path):
    f = tmp_path / "ok.toml"
    f.write_text(TINY_TOML.format(extra=""))
    return f


@pytest.mark.parametrize("workers", ["0", "-3", "x"])
def test_cli_bad_workers(ok_toml, workers, capsys):
    with pytest.raises(SystemExit) as ei:
        cli_main(["run", str(ok_toml), "--workers", workers, "-q"])
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    got = repr(workers) if workers == "x" else workers
    assert err.strip().splitlines()[-1] == \
        f"ketacore run: error: argument --workers: must be an integer >= 1, got {got}"


def _cli(args, capsys):
    rc = cli_main(args)
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    return rc, cap.err.strip()


def test_cli_output_is_a_file(ok_toml, tmp_path, capsys):
    f = tmp_path / "passwd"
    f.write_text("root")
    rc, err = _cli(["run", str(ok_toml), "-o", str(f), "-q"], capsys)
    assert rc == 2 and err == f"ketacore run: output {str(f)!r} exists and is not a folder"
    assert f.read_text() == "root"


def test_cli_overflowing_expression(tmp_path, capsys):
    f = tmp_path / "big.toml"
    f.write_text(TINY_TOML.format(extra='[parameters]\nx = "int(1e999)"'))
    rc, err = _cli(["run", str(f), "-o", str(tmp_path / "o"), "-q"], capsys)
    assert rc == 2 and err.startswith("ketacore run: big.toml: [parameters].x: 'int(1e999)' cannot be")
    assert len(err.splitlines()) == 1


def test_cli_unreadable_study_file(tmp_path, capsys):
    rc, err = _cli(["run", str(tmp_path), "-q"], capsys)
    assert rc == 2 and err == f"ketacore run: study file {str(tmp_path)!r} is a folder, not a TOML file"
    b = tmp_path / "binary.toml"
    b.write_bytes(b"\xff\xfe\x00bad")
    rc, err = _cli(["run", str(b), "-q"], capsys)
    assert rc == 2 and err == "ketacore run: binary.toml: not a UTF-8 text (TOML) file"
    rc, err = _cli(["run", str(tmp_path / "nofile"), "-q"], capsys)   # a path, never TOML text
    assert rc == 2 and "not found" in err
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 5000 + "]" * 5000)
    rc, err = _cli(["run", str(deep), "-q"], capsys)
    assert rc == 2 and err == "ketacore run: deep.toml: not valid TOML: arrays or tables nested too deeply"


def test_cli_memory_refusal(hangs):
    rc, _, se = hangs["cli_big"]
    assert rc == 2, (rc, se)
    assert "Traceback" not in se
    err = se.strip()
    assert err.startswith("ketacore run: big.toml: [protocol]: this run (") and "GiB" in err, err
    assert len(err.splitlines()) == 1
    assert not hangs["cli_big_dir"].exists()


def test_cli_bad_scheduler_address(ok_toml, tmp_path, capsys):
    pytest.importorskip("distributed")
    rc, err = _cli(["run", str(ok_toml), "-o", str(tmp_path / "o"), "-q", "--scheduler", "nope://x"], capsys)
    assert rc == 2 and err.startswith("ketacore run: --scheduler nope://x: cannot connect: ")
