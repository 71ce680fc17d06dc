"""The SCALCS ``Mechanism`` stand-in of benchmarks/_scalcs.py (one copy, shared with the asv
theory benchmarks), loaded by path: tests/ does not import the benchmarks package."""
import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "_ketacore_bench_scalcs", Path(__file__).resolve().parent.parent / "benchmarks" / "_scalcs.py")
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
ScalcsMechanism = _mod.ScalcsMechanism
