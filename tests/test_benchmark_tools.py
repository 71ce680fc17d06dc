"""The benchmark scripts the performance notes quote: the paired C++ comparison
(benchmarks/paired_cpp.py), the issue-4 script (benchmarks/bench_stochastic.py) and the check of
method="auto"'s choices (benchmarks/bench_auto.py), and kc.solve's overhead (benchmarks/solve_overhead.py).

Speed is never asserted here; these tests check that the tool runs and reports what it claims:
comparing the working tree with itself must give identical checksums for every workload.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "paired_cpp.py"


def _have_git_checkout():
    if shutil.which("git") is None or shutil.which("g++") is None:
        return False
    r = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True)
    return r.returncode == 0


def test_paired_cpp_rejects_unknown_workload():
    r = subprocess.run([sys.executable, str(SCRIPT), "--base", "HEAD", "--what", "nonsense"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "unknown workload" in r.stderr


def test_paired_cpp_rejects_zero_rounds():
    r = subprocess.run([sys.executable, str(SCRIPT), "--base", "HEAD", "--rounds", "0"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--rounds" in r.stderr


@pytest.mark.slow
@pytest.mark.skipif(not _have_git_checkout(), reason="needs git, g++ and a git checkout")
def test_paired_cpp_same_headers_give_same_checksums(tmp_path):
    """HEAD against the working tree: the report has one row per workload, and when csrc/include
    has no uncommitted changes (a clean clone, as in CI) the two builds are the same code, so every
    checksum must agree."""
    r = subprocess.run([sys.executable, str(SCRIPT), "--base", "HEAD", "--what", "single,pop1e3",
                        "--rounds", "1"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()[2:]]
    assert [row[0] for row in rows] == ["single", "pop1e3"]
    for row in rows:
        assert row[1].endswith("ms") and row[2].endswith("ms") and row[3].endswith("x")
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "csrc/include"],
                           capture_output=True, text=True).stdout.strip()
    if not dirty:
        assert all(row[4] == "yes" for row in rows), r.stdout


BENCH = ROOT / "benchmarks" / "bench_stochastic.py"


def test_bench_stochastic_quick_single_channel_report():
    """The issue-4 benchmark script runs (quick single-channel section) and prints each figure it
    reports: the transition rate, the numpy baseline, the 2-thread speed-up as the median of
    alternated pairs with its range, and the machine's two-process ceiling next to it."""
    r = subprocess.run([sys.executable, str(BENCH), "--quick", "--only", "single"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "transitions/s" in out and "numpy lockstep SSA" in out
    assert "median of 3 alternated pairs (range" in out
    import re
    m = re.search(r"two separate processes, one trial each at once, run ([0-9.]+)x as fast", out)
    assert m and 0.5 < float(m.group(1)) < 2.5, out  # two processes: at most ~2x on 2 CPUs


def test_bench_stochastic_rejects_unknown_section():
    r = subprocess.run([sys.executable, str(BENCH), "--only", "nonsense"], capture_output=True, text=True)
    assert r.returncode == 2 and "invalid choice" in r.stderr


@pytest.mark.slow
def test_bench_stochastic_gillespy2_comparison_runs():
    """The optional GillesPy2 row (`--gillespy2`) builds the peers comparison's model and prints
    both timings (it once referred to a model table that no longer existed)."""
    pytest.importorskip("gillespy2")
    r = subprocess.run([sys.executable, str(BENCH), "--quick", "--only", "single", "--gillespy2"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    assert "GillesPy2 SSACSolver N=1000" in r.stdout and "ketacore" in r.stdout


AUTO = ROOT / "benchmarks" / "bench_auto.py"


@pytest.mark.slow
def test_bench_auto_reports_every_workload():
    """The auto-method check runs (quick, one pair per workload) and prints a row per workload
    with both timings, the planned method and the faster one, then its verdict."""
    r = subprocess.run([sys.executable, str(AUTO), "--quick", "--rounds", "1"], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = [ln for ln in r.stdout.splitlines() if " ms " in ln]
    assert [ln.split(",")[0] for ln in rows] == ["ramp", "ramp", "step", "step"]
    for ln in rows:
        words = ln.split()
        assert words[-1] in ("ssa", "population") or "slower method" in ln
        assert words.count("ms") == 2
    assert "auto picked" in r.stdout.splitlines()[-1]


def test_bench_auto_plans_without_running():
    """bench_auto.planned asks the plan, as simulate(method="auto") would, without simulating."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_auto", AUTO)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    import ketacore as kc
    sch = kc.models.as_scheme("ch82")
    assert mod.planned(sch, kc.Step(1.0, agonist=1e-7), 1e-3, 1, 1) == "ssa"
    assert mod.planned(sch, kc.Step(1.0, agonist=1e-7), 1e-3, 10**9, 1) == "population"


def test_bench_auto_rejects_zero_rounds():
    r = subprocess.run([sys.executable, str(AUTO), "--rounds", "0"], capture_output=True, text=True)
    assert r.returncode == 2 and "--rounds must be >= 1" in r.stderr



PAIRED_API = ROOT / "benchmarks" / "paired_api.py"


def test_paired_api_refuses_bad_arguments(tmp_path):
    r = subprocess.run([sys.executable, str(PAIRED_API), "--old", str(tmp_path), "--bench", "bench_asv_api:Construction"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "no ketacore package there" in r.stderr
    r = subprocess.run([sys.executable, str(PAIRED_API), "--old", str(tmp_path), "--bench", "x:Y", "--rounds", "0"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--rounds and --repeat must be >= 1" in r.stderr
    import ketacore
    tree = str(Path(ketacore.__file__).parent.parent)
    r = subprocess.run([sys.executable, str(PAIRED_API), "--old", tree, "--bench", "nosuch:X"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--bench nosuch:X" in r.stderr
    r = subprocess.run([sys.executable, str(PAIRED_API), "--old", tree, "--bench", "bench_asv_api:Construction",
                        "--methods", "time_nope"], capture_output=True, text=True)
    assert r.returncode == 2 and "--methods: ['time_nope']" in r.stderr


def test_paired_api_times_both_versions(tmp_path):
    """The installed ketacore serves as the 'old' tree (a copy of its package directory), so both
    sides run the same code: the table has both versions of each method and the old side really
    imported from the given tree."""
    import ketacore
    old = tmp_path / "old"
    shutil.copytree(Path(ketacore.__file__).parent, old / "ketacore",
                    ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run([sys.executable, str(PAIRED_API), "--old", str(old), "--bench", "bench_asv_api:Construction",
                        "--methods", "time_step,time_protocol_one_step", "--rounds", "1", "--repeat", "1"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"old: {old}" in r.stdout
    for m in ("time_step", "time_protocol_one_step"):
        line = next(x for x in r.stdout.splitlines() if m + " " in x)
        assert "old" in line and "new" in line and "old/new" in line
        assert " µs" in line or " ns" in line  # (microsecond calls, timed in loops, in readable units)


def test_paired_api_formats_durations():
    import importlib.util
    spec = importlib.util.spec_from_file_location("paired_api", PAIRED_API)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.fmt_seconds(4.74).split() == ["4.74", "s"]
    assert mod.fmt_seconds(0.0039).split() == ["3.9", "ms"]
    assert mod.fmt_seconds(3.7e-6).split() == ["3.7", "µs"]
    assert mod.fmt_seconds(3.63e-7).split() == ["363", "ns"]
    assert mod.fmt_seconds(999.99e-6).split() == ["1", "ms"] and mod.fmt_seconds(0.99996).split() == ["1", "s"]


def test_solve_overhead_script_reports_its_figures():
    """benchmarks/solve_overhead.py (docs/performance.md's kc.solve figures) runs and prints
    the four figures it claims, with positive values (no speed is asserted)."""
    import re
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "solve_overhead.py"),
                        "--rounds", "2", "--calls", "3"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    m = re.search(r"kc\.solve ([\d.]+) us .*C\+\+ alone ([\d.]+) us .*Python overhead median "
                  r"(-?[\d.]+) us .*numpy baseline ([\d.]+) us", r.stdout)
    assert m, r.stdout
    assert float(m.group(1)) > 0 and float(m.group(2)) > 0 and float(m.group(4)) > 0


def test_solve_overhead_script_rejects_zero_rounds():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "solve_overhead.py"),
                        "--rounds", "0"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--rounds must be >= 1" in r.stderr
