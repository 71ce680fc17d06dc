"""Build script for ketacore's compiled extensions.

* ``ketacore._core``     -- pybind11 module from ``csrc/`` (C++17).
* ``ketacore._analysis`` -- Cython kernels for array processing (dwell sequences, ...).

Environment variables
---------------------
KETACORE_SANITIZE=1
    Build with AddressSanitizer + UndefinedBehaviorSanitizer (``-fsanitize=address,undefined``,
    ``-O1 -g``).  Run the tests with the ASan runtime preloaded, e.g.
    ``LD_PRELOAD=$(g++ -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 pytest``
    (``.ci/run`` does this).
KETACORE_BUILD_JOBS=N
    Parallel C++ compile jobs (default: number of cores).
KETACORE_NATIVE=1
    Add ``-march=native`` (off by default: wheels and benchmarks use a generic build).
"""
import glob
import os
import sys

import numpy as np
from Cython.Build import cythonize
from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import Extension, setup

# Compile the C++ translation units in parallel (KETACORE_BUILD_JOBS, default: all cores).
ParallelCompile("KETACORE_BUILD_JOBS", default=0).install()

SANITIZE = os.environ.get("KETACORE_SANITIZE", "") not in ("", "0")
NATIVE = os.environ.get("KETACORE_NATIVE", "") not in ("", "0")

# -ffp-contract=off: GCC would otherwise fuse a*b+c into FMAs in a -march=native build (not in
# the generic one, which has no FMA), and the draws must be the same bytes for every build
# (helper-119 found 3-6% of binomial_cfn's intermediate values differing between the two).
cxx_args = ["-O3", "-fno-math-errno", "-ffp-contract=off", "-Wall", "-Wextra", "-Wno-unused-parameter"]
link_args = []
if SANITIZE:
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
    cxx_args = ["-O1", "-g", "-Wall"] + san
    link_args += san
if NATIVE and not SANITIZE:
    cxx_args.append("-march=native")
if sys.platform == "win32":  # pragma: no cover - not a supported build target here
    cxx_args, link_args = ["/O2"], []

sources = sorted(glob.glob("csrc/bindings/*.cpp")) + sorted(glob.glob("csrc/src/*.cpp"))

core = Pybind11Extension(
    "ketacore._core",
    sources,
    include_dirs=["csrc/include"],
    depends=sorted(glob.glob("csrc/include/ketacore/*.hpp")) + sorted(glob.glob("csrc/bindings/*.hpp")),
    cxx_std=17,
    extra_compile_args=cxx_args,
    extra_link_args=link_args + ["-pthread"],
)

cython_args = ["-O3"] if not SANITIZE else ["-O1", "-g"] + san
analysis = Extension(
    "ketacore._analysis",
    ["ketacore/_analysis.pyx"],
    include_dirs=[np.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=cython_args,
    extra_link_args=link_args,
)

setup(
    ext_modules=[core]
    + cythonize(
        [analysis],
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
    cmdclass={"build_ext": build_ext},
)
