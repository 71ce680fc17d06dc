"""Monte Carlo studies: a model, blockers, protocols with sweepable parameters, sweeps, many trials.

A :class:`Study` is the user's main job written down once, in Python or as a TOML file (the two
round-trip).  :func:`run_study` splits it into chunks of *(sweep point, trial range)*, runs them
on local threads or on any :class:`concurrent.futures.Executor`, writes each finished chunk to
the output folder, and assembles an :class:`xarray.DataTree` (one group per protocol, each an
``xarray.Dataset``) saved to NetCDF, with PNG figures beside it.

Units and dimensions
--------------------
Every value of a study is a number (SI), a quantity string (``"30 s"``, ``"10 uM"``,
``"-70 mV"``, ``"2 kHz"``) or an expression over parameters and units
(``"round($t_train * $frequency)"``), and every key that takes a physical quantity checks its
*dimension* when the :class:`Study` is built (so before :func:`run_study` simulates anything or
writes the output folder).  A value whose dimension is known and wrong is refused with a
:class:`StudyError` naming the key path, the value, its dimension and the one the key takes::

    study.toml: [protocol].dt: '10 uM' is a concentration (M); dt takes a time (s)

The keys and the dimension each takes:

a time (s)
    ``dt`` (study and protocol), a step's ``duration``, a train's ``width`` and ``tail``, the
    analysis options ``window`` and ``early``.
a voltage (V)
    ``V`` (step, train, ``initial`` conditions table); a blocker table's ``v_ref`` and
    ``thermal_voltage``.
a temperature (K)
    ``temperature`` (step, train, ``initial`` conditions table).
a concentration (M)
    every other key of a step and of an ``initial`` conditions table (ligands), and the
    entries of a train's ``during`` and ``between`` tables.
a frequency (1/s; ``Hz`` is 1/s)
    a train's ``frequency``; a blocker table's ``k_off``, ``k_escape``, ``superficial_k_off``.
a dimensionless number
    a train's ``n_pulses``; a blocker table's ``z``, ``delta_on``, ``delta_off``,
    ``closing_factor``, ``opening_factor``.
a rate constant (1/(M*s), e.g. ``"1e5 / M / s"``)
    a blocker table's ``k_on``, ``k_on_closed``, ``superficial_k_on``.

A sweep value takes the dimension of its parameter.

Dimensions propagate through expressions: a unit, or a number written with its unit
(``"2 s"``), carries its dimension; a parameter carries the dimension of its defining value
(itself possibly an expression over other parameters), and a swept parameter that of its sweep
values (which must agree with each other and with the parameter's definition); ``*``, ``/`` and
``//`` combine dimensions (``"$n / $t_train"`` is a frequency when ``n`` is a count such as
``"round($t_train * 5 Hz)"`` and ``t_train`` a time); ``+``, ``-``, ``%``, ``min`` and ``max``
need equal dimensions (``"1 s + 1 uM"`` is refused wherever it appears, parameters included);
``round``, ``int``, ``abs``, ``float`` and unary ``-`` keep the dimension; ``**`` needs a
dimensionless exponent, and a constant exponent scales the dimension of the base
(``"($t) ** 2"`` is s^2) while an exponent that uses a parameter needs a dimensionless base.

A **bare number** -- ``30``, ``1e-5``, ``"30"``, a number without a unit in an expression, or a
parameter defined by one -- is SI with its dimension unspecified: it is accepted wherever a
quantity is expected and unifies with the other side of ``+ - % min max`` (``"$t + 0.5"`` is a
time when ``t`` is), so a study written in bare SI numbers is not refused for its units (but see
*one bare-number parameter, one dimension* below).  In a product or quotient, a plain number
next to a quantity is a dimensionless factor: ``"2 * $c"`` is a concentration when ``c = "1
uM"``, ``"-70 * ms"`` is a time (refused as a ``V``), ``"2e7 / M / s"`` is a rate constant, and
``"round($frequency * 10)"`` with ``frequency = "10 Hz"`` is a frequency (write ``10 s``); a
bare-number parameter still makes a product unknown (``"$x * 1 s"`` with ``x = 30``).

**One bare-number parameter, one dimension.**  A parameter of unknown dimension (defined by a
bare number, or from bare-number parameters alone, and not swept with quantities) is used
*directly* by a value that holds it as the whole value, a term of ``+ - %``, an argument of
``min max round int abs float`` or under unary ``-`` -- and through every parameter of unknown
dimension defined from it so (``y = "$x + 1"``; not through a swept one, whose sweep values
replace its definition).  A direct use is a use as the dimension that value must have: that of
its key (``duration = "$x"``: a time), of a parameter's definition of known dimension (``t =
"$x + 1 s"``: a time) or of a swept parameter's sweep values.  A parameter used directly as two
different dimensions -- ``x = 1e-3`` with ``dt = "$x"`` and ``glutamate = "$x"``, 1 ms and 1 mM
-- is refused, in one protocol or across the protocols of a study (a protocol's own definition
is another parameter), with a :class:`StudyError` naming the second key, the parameter and its
definition, and the first key with its dimension::

    Study: [protocol].segments[0].glutamate: '$x' uses the bare-number parameter x
    ([parameters].x = 0.001) as a concentration (M), which glutamate (a ligand) takes, but dt =
    '$x' uses it as a time (s); ...: give x its unit ('0.001 s' or '0.001 M'), or use one
    parameter per quantity

Uses inside ``* / // **`` do not count (``dt = "$x * 1"`` with ``glutamate = "$x * 1"``, or
``"$x * 1 s"`` with ``"$x * 1 uM"``, stay accepted), and a parameter that is 0
everywhere -- defined as the bare number 0 and, if swept, swept over zeros only -- is exempt
(``zero = 0`` may set 0 V and 0 M).

Parameters
----------
``[parameters]`` (the study's) and a protocol's ``parameters`` define named values that every
other value can use as ``$name``.  A protocol sees the study's parameters with its own
replacing those of the same name, and each sweep point fixes its swept parameters to their
values; the parameters are then evaluated as one dependency graph, each after the parameters it
uses, whatever the order in which they are written.  So an override or a sweep value reaches
every parameter defined from it: with ``t = "10 s"`` and ``n = "round($t * 5 Hz)"`` in
``[parameters]``, a protocol that sets ``t = "20 s"`` (or sweeps ``t``) gets ``n = 100``.  The
dimension of each parameter (*Units and dimensions*) follows the same graph.  A parameter that
uses itself, directly or through others (``a = "$b"``, ``b = "$a"``), is refused naming the
cycle, and a name that is no parameter is refused naming the key that uses it.  A protocol's
parameter that uses its own name builds on the study's: ``t = "$t * 2"`` in a protocol is twice
the study's ``t`` (and what depends on ``t`` follows the doubled value).  Sweep values themselves are evaluated with the parameters' defaults (no sweep value
fixed).  Relative scheme file paths (``model = "mine.toml"``) are resolved against the study
file's folder, or the ``base`` given to :class:`Study` / :meth:`Study.from_toml` (a study read
from TOML text has no folder of its own).

Reproducibility
---------------
Trial ``i`` of every sweep point draws from ``PCG64(SeedSequence(entropy, spawn_key=(i,)))``
(:mod:`ketacore.simulate`), so a chunk's counts depend only on (entropy, point, trials).  Chunks
return exact integer reductions (sums and sums of squares of the state counts, cross sums of the
conductance-level counts) and per-trial quantities computed from one trial alone; the assembly
adds integers and places per-trial values by index.  The result -- and the bytes of the NetCDF
file -- are therefore the same for any executor, any number of workers and any chunk size.

Executors (``executor=``)
-------------------------
``None``
    Local: a thread pool of ``workers`` threads (default: all cores); the C++ engine releases
    the GIL, so the threads run in parallel.
``concurrent.futures.ThreadPoolExecutor`` / ``ProcessPoolExecutor``
    Any standard executor.  Processes need ketacore importable in the workers (it is).
loky / joblib
    ``loky.get_reusable_executor(max_workers=8)`` -- robust process pool, same interface.
dask.distributed
    ``client = distributed.Client("tcp://scheduler:8786")``;
    ``kc.run_study(study, executor=client.get_executor(pure=False))``.  ``pure=False`` because
    chunk tasks are keyed by their arguments otherwise (harmless here, but explicit).  The CLI
    does this with ``ketacore run study.toml --scheduler ADDRESS``.
mpi4py
    ``from mpi4py.futures import MPIPoolExecutor``; run ``mpiexec -n 17 python -m
    mpi4py.futures script.py`` with ``kc.run_study(study, executor=MPIPoolExecutor())`` in the
    script (rank 0 runs the study, 16 workers compute chunks).  Not tested here (no MPI).

Workers receive only the resolved study TOML (a few kB), the content of its scheme files (read
once by the calling process, so every worker uses the same model) and the chunk coordinates,
and return the reduced arrays; the calling process writes every file.

Resuming
--------
The output folder holds ``study.toml`` (the resolved spec, including the root entropy),
``inputs.json`` for a study that loads scheme files (``model = "mine.toml"`` or a ``model``
sweep axis naming files: their content, as read when the folder was created),
``chunks/<protocol>/p<point>_t<first>-<stop>.npz`` (written atomically as chunks finish), the
results file and the figures.  Running the same study into the same folder skips every trial
range already on disk (any chunking) and produces the same final bytes.  ``study.toml`` and
``inputs.json`` are the folder's identity: a folder whose ``study.toml`` differs from the
requested study, or whose scheme files' content differs from the files now on disk (compared
as parsed TOML: comments and layout do not count; the message names the file and the changed
keys, e.g. ``transitions[0].k0``), is refused with :class:`StudyConflictError` and nothing in
it is touched.  A folder written before ``inputs.json`` existed (ketacore without it) cannot be
checked and is refused for a study that loads scheme files.  Blockers are library names and
read no files.  ``description`` and ``[outputs]`` are not part of the identity (they cannot
change the results): resuming with them changed updates the folder's ``study.toml`` and writes
the requested results file name and figures without recomputing.  Nor is ``n_trials`` (trial i's
stream depends on the entropy and i alone): raising it reuses the finished trials and runs only
the new ones, lowering it uses the first ``n_trials``, and either way the results file equals a
fresh run with that ``n_trials``, byte for byte.  A run holds an exclusive lock on its folder
(``flock``); a second run into a folder in use is refused with :class:`StudyConflictError`.

Results Dataset
---------------
One ``xarray.Dataset`` per protocol; every data variable and coordinate has ``units`` (SI, ``"1"``
for fractions, counts and labels) and ``long_name``.  Sweep axes are dimensions named after the
parameter (``ketamine``, ``frequency``, ``model``), except a parameter whose name the Dataset
already uses (:data:`DATASET_NAMES`: ``V`` -- the voltage trace --, ``time``, ``state``,
``n_samples``, ...): its dimension is ``sweep_<name>`` (a voltage sweep gives ``sweep_V``, so
``ds.sel(sweep_V=-0.03)``), see :func:`sweep_dimensions`.  Each sweep coordinate's ``parameter``
attribute, and the Dataset's ``sweep_dims`` attribute (JSON), map study names to dimensions.  A
sweep coordinate's ``units`` is the SI unit of its parameter's dimension (*Units and
dimensions*: from its definition or sweep values, else from the key that uses the parameter
alone, e.g. ``ketamine = "$c"``; ``"Hz"`` for a frequency); a parameter of unknown dimension
gets ``"1"`` and a ``comment`` saying so.

The Dataset's attributes describe the run: ``scheme`` (the composed scheme's name, each
distinct name of a model sweep), ``scheme_toml`` (the first sweep point's composed scheme as
TOML), ``blockers``, ``segments``, ``dt``, ``method`` (and, for use_dependence and dose_response,
``control_removes``: the ligands the drug-free control removed).  When the sweep points simulate
different schemes -- a ``model`` sweep (scheme files included) or a swept blocker parameter --
``scheme_tomls`` holds each distinct composed scheme (a JSON list of TOML texts) and the data
variable ``scheme_index`` (over the sweep dimensions) says which one each point simulated:
``json.loads(ds.attrs["scheme_tomls"])[int(ds["scheme_index"].sel(model="mine.toml"))]``.
``blockers`` (a JSON list of the blockers' fields) is likewise the first sweep point's: when a
blocker field is swept (a sweep axis used in a blocker table, ``k_off = "$koff"``, directly or
through other parameters), ``blockers_list`` holds each distinct value of ``blockers`` (a JSON
list of them) and the data variable ``blockers_index`` says which one each point used:
``json.loads(ds.attrs["blockers_list"])[int(ds["blockers_index"].sel(koff=2.0))][0]["k_off"]``.
Neither is written when every point simulates the same scheme or uses the same blockers.

Analyses (``analysis = {kind = ...}``), master equation (``*_det``), Monte Carlo mean trace
(``*_mc``), each trial (``*_trials``) and the SEM over trials (``*_mc_sem``):

``trapping``
    ``block`` = 1 - mean current over the last ``window`` of ``block`` / same of ``control``
    (options: ``window``, default 1 s; ``early``, default 0.5 s; each must fit inside the
    segments it measures, else the study is refused);
    ``trapped`` = (1 - I_rec/I_ctl) / block with I_rec, I_ctl the *mean* currents over the first
    ``early`` of ``recovery`` and of ``control`` (window means: blocker escaping during that
    window counts as untrapped: ketamine 10 uM on erreger2005_2a gives 80.5 % with the default
    study's ``early = 0.1 s``, about 86 % as ``early`` tends to 0); ``trapped_occupancy`` =
    blocked occupancy at the end of ``wash`` / at the end of ``block`` (``blocked_end_wash`` /
    ``blocked_end_block``): the occupancy of the states carrying the *drug* (option ``drug``,
    defaulting as for use_dependence: *The drug-free control*), so a Mg2+ background is not
    counted as the drug's block.
    :func:`ketacore.experiments.trapping` reports the *peak-current* definition
    (``trapped_current``: the first re-application responses, drug vs an identical drug-free
    run, each at its own peak; 84.5 % for ketamine, the value on the validation page) and the
    same occupancy definition (``trapped_occupancy``).  The variables' ``definition`` attribute
    states the definition with the study's windows.
``use_dependence``
    ``block_last``, ``block_total`` and ``block_by_pulse``: block of the charge per pulse vs the
    drug-free control.
``dose_response``
    ``response`` (mean current vs the drug-free control) and a Hill fit (``ic50``, ``hill``)
    over the ``concentration`` sweep axis, which needs at least 2 concentrations > 0 (the fit
    has 2 parameters; a single one is refused when the study is checked).  With a voltage axis
    among the other sweep axes (``analysis.voltage``, default the only other axis in volts) the
    IC50s also get a Woodhull fit over it (Woodhull 1973, doi:10.1085/jgp.61.6.687): ``ln IC50 =
    ln K_d(0) + zδ·V·F/(R·T)`` by unweighted least squares over the voltages whose IC50 is not an
    extrapolation, at the V and temperature each point runs at over its analysis window
    (``V_window``, ``temperature_window``; not the axis's values: ``V = "$V - 10 mV"`` is fitted at the shifted voltages; a V that changes
    within the window, e.g. a prepulse the whole-protocol window includes, leaves that voltage
    out) -- ``z_delta``, ``kd0`` (the IC50's units), ``woodhull_rms`` (rms departure of ln IC50
    from the line: the Woodhull law's misfit, not a noise), ``woodhull_voltages``,
    ``woodhull_vmin``/``woodhull_vmax``, ``woodhull_temperature`` and ``woodhull_why``, one fit
    per point of the remaining axes.  Monte Carlo SEs (``ic50_mc_se``, ``hill_mc_se``,
    ``z_delta_mc_se``, ``kd0_mc_se``) are delete-a-group jackknife SEs over trials (up to 20
    groups) of the whole fit: every sweep point runs the same trial streams, so their errors
    are correlated and a residual scatter would understate them (by 2.3x for K_d(0) in
    helper-112's audit).  On ketamine / erreger2005_2a over -100 ... +20 mV (1 mM glutamate,
    22 °C) the master-equation fit gives zδ 0.790, K_d(0) 6.68 uM, the values of
    ``kc.experiments.woodhull(method="exact")``.

The drug-free control
---------------------
use_dependence and dose_response compare each sweep point with its drug-free control: the same
protocol (steps, trains, their rest) and the same ``initial`` with the *drug* removed -- the
analysis option ``drug``, a blocker ligand or a list of them -- and every other ligand kept at
its value: the agonist, and a background blocker.  Ketamine studied in 1 mM Mg2+, ``blockers =
["ketamine", "mg"]`` with ``mg = "1 mM"`` and ``ketamine = "$ketamine"`` in every step: the
control keeps the 1 mM Mg2+, so ``response`` is ketamine's block on top of the Mg2+ block
(0.995, 0.953, 0.671, 0.170 at 0.1, 1, 10, 100 uM ketamine on erreger2005_2a at -70 mV; IC50
about K_B(1 + [Mg]/K_Mg) = 20 uM), and use_dependence at ketamine = 0 blocks nothing.  A control
without the Mg2+ would count the Mg2+ block as ketamine's.  An ``initial`` conditions table loses
the drug's ligands; an ``initial`` state blocked by the drug (``"O·ket"``) starts the control
unbound (``"O"``), one blocked by a background blocker (``"O·mg"``) is kept.

When ``drug`` is not given it is read from the protocol as written, not from the values at a
sweep point, so it is the same at every point (a ketamine = 0 point included).  A blocker
ligand is *applied* by a protocol that writes it -- a step's key, a train's ``during`` or
``between`` entry, or a key of the ``initial`` conditions table, even at 0 -- or whose
``initial`` state carries its blocked tag (``"O·ket"``): a ligand set only by ``initial`` counts
(the control starts drug-free, as with a single blocker), so with a second blocker there the
study asks for ``drug``.

* dose_response: the applied blocker ligands whose value uses the concentration axis (``"$c"``,
  ``"2 * $c"``, or a parameter defined from it) or that are named like it; if none, the one
  blocker ligand the protocol applies; otherwise (several, or none) the study is refused asking
  for ``drug``.
* use_dependence: the one blocker ligand the protocol applies (the usual case); with several,
  the study is refused naming them and asking for ``drug = "ketamine"``; with none, nothing is
  removed (the control is the protocol).

A given ``drug`` must be blocker ligands the protocol applies (a gating ligand such as glutamate,
or a blocker the protocol never applies, is refused).  The Dataset records the ligands removed
as the attribute ``control_removes`` (JSON list).

The trapping analysis has no drug-free control, but takes the same ``drug`` option with the
use_dependence default (the one blocker ligand the protocol applies); with several, the drug is
what the protocol itself applies with ``block`` and not in ``control`` (a Mg2+ background is in
both; a literal 0 in ``control`` counts as not applied), and only when that finds none is the
study refused, asking for ``drug``.  Its occupancy quantities -- ``blocked_end_block``, ``blocked_end_wash`` and
``trapped_occupancy`` -- count the channels in a state carrying a drug blocker's tag (``O·ket``,
``D1·ket``, or its superficial-site tag ``ket_s``), whatever else is bound; a channel bound only
by a background blocker (``O·mg``) is not counted.  With ketamine in 1 mM Mg2+ they are
ketamine's bound and trapped fractions (``blocked_end_*`` exactly 0 at ketamine = 0, and
``trapped_occupancy`` NaN).  With a single blocker nothing changes (every blocked state carries
it).  When another blocker is in the study, the variables' ``long_name``
(``blocked_end_*``) and ``definition`` (``trapped_occupancy``) name the drug.  The current-based
``block`` and ``trapped`` compare the protocol's own segments (``block`` with ``control``,
``recovery`` with ``control``), so they measure the drug alone when the background is in every
segment they compare (as ``mg = "1 mM"`` in each step): then ``block`` is the drug's block on top
of the Mg2+ block.  A background applied only with the drug (in ``block``) would count as the
drug's there.  (``trapped`` divides by ``block``: at a point where no channel carries the drug
at the end of ``block``, such as ketamine = 0, that would be a ratio of residues -- 1e4 or -1e16
in a Mg2+ background -- so ``trapped`` is NaN there, as ``trapped_occupancy`` is.)

Why NetCDF (and not Zarr)
-------------------------
A study result is written once, at the end, by one process, and is small next to the
computation (sums per sample, not per trial).  NetCDF-4/HDF5 gives one self-describing file that
every tool in the field opens (xarray, netCDF4, h5py, MATLAB, ncdump), can be mailed or attached
to a paper, and supports groups for the several protocols of a study.  Zarr's strengths --
concurrent chunk writes from many workers and object-store backends -- are not needed, because
the resumable, concurrently produced state already lives in the ``chunks/`` folder, and a
directory-of-files store is awkward to share and to compare byte for byte.  Writes are made
deterministic (no timestamps, fixed encoding, atomic rename) so the file can be checked with a
hash.
"""
from __future__ import annotations

import ast
import concurrent.futures as cf
import copy
import dataclasses
import decimal
import functools
import itertools
import json
import math
import os
import re
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import _validate as _V
from . import units as _units
from ._version import __version__

__all__ = ["Study", "StudyPart", "StudyError", "StudyConflictError", "run_study", "default_study",
           "open_results", "summary_table", "sweep_dimensions", "DEFAULT_STUDY", "ANALYSES"]

#: Analyses a protocol can declare (``analysis = {kind = ...}``).
ANALYSES = ("trapping", "use_dependence", "dose_response")
_METHODS = ("auto", "ssa", "population")
_RECORDS = ("summary", "counts")
DEFAULT_STUDY = "ketamine_default.toml"


class StudyError(ValueError):
    """An invalid study specification.  The message starts with ``source: key:``."""


class StudyConflictError(RuntimeError):
    """The output folder holds a different study; nothing was overwritten."""


def _study_flag(source: str, key: str, value: Any, *, also: str = "") -> bool:
    """``value`` as a bool by the one rule of :func:`ketacore._validate.flag` (True/False or a
    numpy bool; ``"no"``, ``1`` or None are not flags).

    Parameters
    ----------
    source, key : str
        The study's source and the key path, which start the message (``"study.toml:
        deterministic: ..."``).
    value : Any
        The value given.
    also : str
        What else the key takes, added to the message (``" or a list of [...]"``).

    Raises
    ------
    StudyError
        ``value`` is not a flag.
    """
    try:
        return _V.flag(key, value)
    except TypeError:
        raise StudyError(f"{source}: {key}: must be true or false{also}, got "
                         f"{type(value).__name__} ({value!r:.80})") from None


# ------------------------------------------------------------------------------------------
# Quantities and expressions: 30, "30 s", "10 uM", "$ketamine", "round(train * frequency)"
# ------------------------------------------------------------------------------------------
_UNITS: dict[str, float] = {
    "s": _units.s, "ms": _units.ms, "us": _units.us, "µs": _units.us, "min": _units.minute,
    "minute": _units.minute, "V": _units.V, "mV": _units.mV, "M": _units.M, "mM": _units.mM,
    "uM": _units.uM, "µM": _units.uM, "μM": _units.uM, "nM": _units.nM, "S": _units.S,
    "nS": _units.nS, "pS": _units.pS, "A": _units.A, "nA": _units.nA, "pA": _units.pA,
    "K": _units.K, "Hz": 1.0, "kHz": 1e3,
}
#: The unit factors as exact decimals (the SI value of one unit; "" = no unit).
_UNIT_DECIMAL = {u: decimal.Decimal(repr(v)) for u, v in _UNITS.items()}
_UNIT_DECIMAL[""] = decimal.Decimal(1)
_SI_OF = {"s": "s", "ms": "s", "us": "s", "µs": "s", "min": "s", "minute": "s", "V": "V", "mV": "V",
          "M": "M", "mM": "M", "uM": "M", "µM": "M", "μM": "M", "nM": "M", "S": "S", "nS": "S",
          "pS": "S", "A": "A", "nA": "A", "pA": "A", "K": "K", "Hz": "Hz", "kHz": "Hz"}
_QTY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-zµμ]+)?\s*$")
#: Longest expression or quantity string accepted (characters); longer text is refused before
#: it is parsed (the parser and the quantity regex are not linear-time on pathological input).
MAX_EXPRESSION_LENGTH = 1000
# Internal name prefixes: "$V" -> parameter V, "1 V" -> unit V (the two never mix up)
_P_MARK, _U_MARK = "__kc_param_", "__kc_unit_"


class _ExprError(Exception):
    """Raised inside expression evaluation; turned into a StudyError naming the key."""


def _f_round(x: float, ndigits: float | None = None) -> float:
    if ndigits is None:
        return float(round(x))
    if ndigits != math.floor(ndigits):
        raise _ExprError(f"round(): ndigits must be a whole number, got {ndigits!r}")
    return float(round(x, int(ndigits)))


def _f_int(x: float) -> float:
    return float(math.trunc(x))


# name -> (function of finite floats, min args, max args); results are floats again
_FUNCS: dict[str, tuple[Callable, int, int]] = {
    "round": (_f_round, 1, 2), "int": (_f_int, 1, 1), "min": (min, 2, 1 << 30),
    "max": (max, 2, 1 << 30), "abs": (abs, 1, 1), "float": (float, 1, 1)}


def _finite(x: Any) -> float:
    """``x`` as a finite float, else _ExprError (complex, infinite, NaN, too large an int)."""
    if isinstance(x, (bool, complex)) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise _ExprError(f"the result {x!r} is not a real number")
    try:
        f = float(x)
    except OverflowError:
        raise _ExprError("a value exceeds the floating-point range (about 1.8e308)") from None
    if not math.isfinite(f):
        raise _ExprError(f"a value is {f} (overflow or undefined operation)")
    return f


def _parse_expression(value: str, where: str) -> ast.Expression:
    """The syntax tree of an expression string (not a plain quantity), with ``$name`` marked as
    a parameter and a unit right after a number marked as that unit.

    Raises
    ------
    StudyError
        A reserved name, or text that is not an expression.
    """
    if _P_MARK in value or _U_MARK in value:
        raise StudyError(f"{where}: names starting with {_P_MARK!r} or {_U_MARK!r} are reserved; "
                         f"got {value!r}")
    # "$V" / "${V}" is always the parameter V, even where V is also a unit name
    text = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda mm: _P_MARK + (mm.group(1) or mm.group(2)), value)
    # "1 s * f" -> "(1*s) * f": a number followed by a unit name is a quantity (the unit, even
    # where a parameter has the same name)
    text = re.sub(r"(?<![\w.])((?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-zµμ]+)\b",
                  lambda mm: f"({mm.group(1)}*{_U_MARK}{mm.group(2)})" if mm.group(2) in _UNITS
                  else mm.group(0), text)
    try:
        return ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        # ValueError: integer literal beyond the int-string limit; RecursionError/MemoryError:
        # nesting too deep for the parser (the input is short, MAX_EXPRESSION_LENGTH)
        raise StudyError(f"{where}: cannot read {value!r} as a quantity ('10 uM') or an "
                         "expression ('$t_train * $frequency')") from None


def _evaluate(value: Any, env: Mapping[str, Any], where: str) -> float:
    """A number, a quantity string or an expression over parameters and units → float (SI).

    Parameters
    ----------
    value : int, float or str
        ``30``, ``"30 s"``, ``"10 uM"``, ``"$ketamine"`` or an expression such as
        ``"round($train * $frequency)"`` (at most :data:`MAX_EXPRESSION_LENGTH` characters).
    env : mapping of str to float
        Parameter values (SI).
    where : str
        ``"source: key"`` prefix of error messages.

    Returns
    -------
    float
        The finite value in SI units.

    Raises
    ------
    StudyError
        The value is not a number, a quantity or an allowed expression, or it (or any
        intermediate result) is not a finite real number.

    Notes
    -----
    ``$name`` / ``${name}`` is always the parameter ``name``; a unit name right after a number
    (``0.04 V``, ``2 s``) is always the unit; a bare name that is both a parameter and a unit
    (a parameter ``V``, written ``V`` rather than ``$V``) is refused as ambiguous.
    Expressions are evaluated in floating point throughout (integer literals become floats), so
    ``**`` cannot build unbounded exact integers (``9**9**9``) and overflow is reported instead of
    hanging or exhausting memory.
    """
    if isinstance(value, bool):
        raise StudyError(f"{where}: expected a number or quantity, got a boolean")
    if isinstance(value, (int, float, np.integer, np.floating)):
        try:
            return _finite(value)
        except _ExprError as e:
            raise StudyError(f"{where}: must be a finite number, got {value!r} ({e})") from None
    if not isinstance(value, str):
        raise StudyError(f"{where}: expected a number, a quantity such as '10 uM', or an "
                         f"expression, got {type(value).__name__} ({value!r})")
    if len(value) > MAX_EXPRESSION_LENGTH:
        raise StudyError(f"{where}: expression of {len(value)} characters; at most "
                         f"{MAX_EXPRESSION_LENGTH} are allowed")
    m = _QTY.match(value)
    if m:
        unit = m.group(2)
        if unit is not None and unit not in _UNITS:
            raise StudyError(f"{where}: unknown unit {unit!r} in {value!r}; units: {sorted(_UNITS)}")
        # the product in decimal, rounded once: "10 uM" is the double nearest 1e-5 (the float
        # product 10 * 1e-6 is 9.999999999999999e-06, so ds.sel(ketamine=1e-5) missed it and
        # "1 uM" / "1000 nM" counted as distinct values)
        try:
            out = float(decimal.Decimal(m.group(1)) * _UNIT_DECIMAL[unit or ""])
        except decimal.InvalidOperation:  # pragma: no cover - the regex admits only numbers
            out = float(m.group(1)) * (1.0 if unit is None else _UNITS[unit])
        if not math.isfinite(out):
            raise StudyError(f"{where}: {value!r} is not a finite number (about 1.8e308 at most)")
        return out
    tree = _parse_expression(value, where)
    allowed = (f"only numbers, units, parameters, + - * / // % ** and "
               f"{sorted(_FUNCS)} are allowed in expressions")

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool):
            return _finite(node.value)
        if isinstance(node, ast.Name):
            if node.id.startswith(_U_MARK):
                return _UNITS[node.id[len(_U_MARK):]]
            if node.id.startswith(_P_MARK):
                name = node.id[len(_P_MARK):]
                if name not in env:
                    raise StudyError(f"{where}: unknown name {name!r} (${name} marks a parameter) in "
                                     f"{value!r}; parameters: "
                                     f"{sorted(k for k in env if not k.startswith('_'))}")
            elif node.id in env and node.id in _UNITS:
                raise StudyError(f"{where}: {node.id!r} in {value!r} is both a parameter and a unit; "
                                 f"write ${node.id} for the parameter, or a number before the unit "
                                 f"(1 {node.id})")
            else:
                name = node.id
            if name in env:
                v = env[name]
                if isinstance(v, str):
                    raise StudyError(f"{where}: parameter {name!r} is text ({v!r}), not a number")
                return _finite(v)
            if node.id in _UNITS:
                return _UNITS[node.id]
            raise StudyError(f"{where}: unknown name {node.id!r} in {value!r}; parameters: "
                             f"{sorted(k for k in env if not k.startswith('_'))}")
        if isinstance(node, ast.BinOp):
            a, b = ev(node.left), ev(node.right)
            ops = {ast.Add: lambda: a + b, ast.Sub: lambda: a - b, ast.Mult: lambda: a * b,
                   ast.Div: lambda: a / b, ast.Pow: lambda: a ** b, ast.FloorDiv: lambda: a // b,
                   ast.Mod: lambda: a % b}
            fn = ops.get(type(node.op))
            if fn is None:
                raise StudyError(f"{where}: operator not allowed in {value!r}; {allowed}")
            try:
                return _finite(fn())
            except ZeroDivisionError:
                raise _ExprError("division by zero") from None
            except OverflowError:
                raise _ExprError("a value exceeds the floating-point range (about 1.8e308)") from None
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS:
            name = node.func.id
            fn, lo, hi = _FUNCS[name]
            if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
                raise StudyError(f"{where}: {name}() takes plain positional arguments in {value!r}")
            if not lo <= len(node.args) <= hi:
                want = f"{lo}" if lo == hi else (f"{lo} or {hi}" if hi == lo + 1 else f"at least {lo}")
                raise StudyError(f"{where}: {name}() takes {want} argument(s), got {len(node.args)} "
                                 f"in {value!r}")
            try:
                return _finite(fn(*[ev(a) for a in node.args]))
            except OverflowError:
                raise _ExprError(f"{name}() overflows") from None
        raise StudyError(f"{where}: {allowed}; got {value!r}")

    try:
        return ev(tree)
    except _ExprError as e:
        raise StudyError(f"{where}: {value!r} cannot be evaluated: {e}") from None
    except RecursionError:
        raise StudyError(f"{where}: {value!r} is nested too deeply") from None


# ------------------------------------------------------------------------------------------
# Dimensions: each quantity a study key takes is checked against the dimension it expects
# ------------------------------------------------------------------------------------------
#: Base dimensions, in the order of a dimension tuple's exponents: time, voltage, temperature,
#: concentration, current (a conductance is A/V, a frequency 1/s).
_BASE = ("s", "V", "K", "M", "A")


def _dim(**exponents: int) -> tuple[int, ...]:
    return tuple(exponents.get(b, 0) for b in _BASE)


_DIMENSIONLESS = _dim()
_TIME, _VOLTAGE, _TEMPERATURE = _dim(s=1), _dim(V=1), _dim(K=1)
_CONCENTRATION, _CURRENT, _FREQUENCY = _dim(M=1), _dim(A=1), _dim(s=-1)
_CONDUCTANCE, _RATE_PER_M = _dim(A=1, V=-1), _dim(s=-1, M=-1)
#: Dimension of every unit name (through its SI unit, :data:`_SI_OF`).
_UNIT_DIM = {u: {"s": _TIME, "V": _VOLTAGE, "K": _TEMPERATURE, "M": _CONCENTRATION, "A": _CURRENT,
                 "S": _CONDUCTANCE, "Hz": _FREQUENCY}[si] for u, si in _SI_OF.items()}
assert set(_UNIT_DIM) == set(_UNITS), "every unit needs a dimension"
_DIM_NAMES = {_TIME: ("a time", "s"), _VOLTAGE: ("a voltage", "V"),
              _TEMPERATURE: ("a temperature", "K"), _CONCENTRATION: ("a concentration", "M"),
              _CURRENT: ("a current", "A"), _FREQUENCY: ("a frequency", "1/s"),
              _CONDUCTANCE: ("a conductance", "S"), _RATE_PER_M: ("a rate constant", "1/(M*s)")}

#: What each study key takes.  A step's other keys (ligands), a train's ``during`` and
#: ``between`` tables and a conditions table's other keys are concentrations.
_STEP_DIMS = {"duration": _TIME, "V": _VOLTAGE, "temperature": _TEMPERATURE}


def _ligand_label(key: str, keys) -> str:
    """How an unknown key of a step (or ``initial`` table) is named in a units error: it is
    read as a ligand, unless it is a near-miss of one of ``keys`` (``durration``), which the
    message then suggests."""
    near = _V.near_miss(key, keys)
    return f"{key} (a ligand; or did you mean {near!r}?)" if near else f"{key} (a ligand)"


_TRAIN_DIMS = {"n_pulses": _DIMENSIONLESS, "frequency": _FREQUENCY, "width": _TIME,
               "V": _VOLTAGE, "temperature": _TEMPERATURE, "tail": _TIME}
_CONDITION_DIMS = {"V": _VOLTAGE, "temperature": _TEMPERATURE}
_ANALYSIS_DIMS = {"window": _TIME, "early": _TIME}
_BLOCKER_DIMS = {"k_on": _RATE_PER_M, "k_off": _FREQUENCY, "z": _DIMENSIONLESS,
                 "delta_on": _DIMENSIONLESS, "delta_off": _DIMENSIONLESS, "v_ref": _VOLTAGE,
                 "thermal_voltage": _VOLTAGE, "closing_factor": _DIMENSIONLESS,
                 "opening_factor": _DIMENSIONLESS, "k_escape": _FREQUENCY,
                 "k_on_closed": _RATE_PER_M, "superficial_k_on": _RATE_PER_M,
                 "superficial_k_off": _FREQUENCY, "delta_on_closed": _DIMENSIONLESS,
                 "delta_escape": _DIMENSIONLESS, "q10_on": _DIMENSIONLESS,
                 "q10_off": _DIMENSIONLESS, "t_ref": _TEMPERATURE}


def _dim_unit(d: tuple[int, ...]) -> str:
    """SI unit text of a dimension: ``"s"``, ``"1/s"``, ``"1/(M*s)"``, ``"V^2"``."""
    if d in _DIM_NAMES:
        return _DIM_NAMES[d][1]
    order = ("M", "A", "V", "K", "s")
    e = dict(zip(_BASE, d))
    fmt = lambda b, x: b if x == 1 else f"{b}^{x}"
    num = "*".join(fmt(b, e[b]) for b in order if e[b] > 0) or "1"
    den = [fmt(b, -e[b]) for b in order if e[b] < 0]
    if not den:
        return num
    return f"{num}/{den[0]}" if len(den) == 1 else f"{num}/({'*'.join(den)})"


def _dim_text(d: tuple[int, ...]) -> str:
    """``"a time (s)"``, ``"a dimensionless number"``, ``"a quantity in V*s"``."""
    if d == _DIMENSIONLESS:
        return "a dimensionless number"
    name = _DIM_NAMES.get(d, ("a quantity in",))[0]
    return f"{name} ({_dim_unit(d)})" if d in _DIM_NAMES else f"{name} {_dim_unit(d)}"


#: A parameter's dimension (None: unknown -- a bare number) and where it was defined.
_ParamDims = Mapping[str, "tuple[tuple[int, ...] | None, str]"]


def _dimension(value: Any, dims: _ParamDims, where: str, refs: list | None = None,
               factors: list | None = None) -> "tuple[int, ...] | None":
    """The dimension of a study value, or None where it is not known.

    Parameters
    ----------
    value : int, float or str
        As :func:`_evaluate` takes it.
    dims : mapping of str to (dimension or None, str)
        Each parameter's dimension and where it was defined.
    where : str
        ``"source: key"`` prefix of error messages.
    refs : list, optional
        Receives the names of the parameters the value uses.
    factors : list, optional
        Receives the products/quotients in which a plain number was taken as a dimensionless
        factor of a quantity.

    Returns
    -------
    tuple of int or None
        Exponents of (s, V, K, M, A); None for a bare number (SI, dimension unspecified) and
        for anything whose dimension follows from a bare-number parameter (``"2 * $t"`` with
        ``t = 30``) or from plain numbers alone (``"2 * 3"``).

    Raises
    ------
    StudyError
        An expression that combines quantities of different dimensions (``"1 s + 1 uM"``,
        ``"min($V, 1 s)"``) or raises a quantity to a power that is not a constant whole
        power of its units (``"(1 s) ** $n"``).

    Notes
    -----
    A bare number is a wildcard: it unifies with anything in ``+ - % min max`` (``"$t + 0.5"``
    is a time when ``t`` is).  In a product or quotient, a plain number written in the value
    next to a quantity is a dimensionless factor (``"2 * $c"`` is a concentration when ``c``
    is, ``"-70 * ms"`` a time), while a bare-number *parameter* makes it unknown (``"$x * 1 s"``
    with ``x = 30``).  Units, and numbers written with their unit (``"2 s"`` in ``"2 s * $f"``), carry
    their dimension; a parameter carries the dimension of its defining
    value (or of its sweep values); ``* / //`` combine dimensions; ``+ - % min max`` need equal
    ones; ``round int abs float`` and unary ``-`` keep them; ``**`` needs a dimensionless
    exponent and scales the base's dimension by a constant exponent (``"($t) ** 2"``), else
    needs a dimensionless base.  Text that is not a valid value is left to :func:`_evaluate`
    (None here).
    """
    if isinstance(value, bool) or not isinstance(value, str) or len(value) > MAX_EXPRESSION_LENGTH:
        return None
    m = _QTY.match(value)
    if m:
        return _UNIT_DIM.get(m.group(2)) if m.group(2) else None
    try:
        tree = _parse_expression(value, where)
    except StudyError:
        return None   # (reported where the value is evaluated)
    refs = [] if refs is None else refs
    factors = [] if factors is None else factors

    def mismatch(what: str, a: tuple, b: tuple) -> StudyError:
        return StudyError(f"{where}: {value!r} combines {_dim_text(a)} and {_dim_text(b)} in "
                          f"{what}; + - % min max need quantities of one dimension")

    def same(what: str, a: Any, b: Any) -> Any:
        if a is None or b is None:
            return b if a is None else a
        if a != b:
            raise mismatch(what, a, b)
        return a

    def const(fn: Callable, *args: Any) -> float | None:
        if any(x is None for x in args):
            return None
        try:
            return _finite(fn(*args))
        except (ArithmeticError, ValueError, TypeError, _ExprError):
            return None

    def walk(node: ast.AST) -> tuple[Any, float | None]:
        """(dimension or None, the value if it uses no parameter, else None)"""
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool):
            return None, const(float, node.value)
        if isinstance(node, ast.Name):
            if node.id.startswith(_U_MARK):
                u = node.id[len(_U_MARK):]
                return _UNIT_DIM[u], _UNITS[u]
            name = node.id[len(_P_MARK):] if node.id.startswith(_P_MARK) else node.id
            if name in dims and (node.id.startswith(_P_MARK) or node.id not in _UNITS):
                refs.append(name)
                return dims[name][0], None
            if name not in dims and node.id in _UNITS:
                return _UNIT_DIM[node.id], _UNITS[node.id]
            return None, None   # (an unknown or ambiguous name: refused by _evaluate)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult) \
                and isinstance(node.left, ast.Constant) and isinstance(node.right, ast.Name) \
                and node.right.id.startswith(_U_MARK):
            # a number and its unit ("10 uM", marked by _parse_expression): a quantity, not a
            # bare number times a unit
            u = node.right.id[len(_U_MARK):]
            return _UNIT_DIM[u], const(lambda p, q: p * q, walk(node.left)[1], _UNITS[u])
        if isinstance(node, ast.BinOp):
            (a, x), (b, y) = walk(node.left), walk(node.right)
            op = type(node.op)
            if op in (ast.Add, ast.Sub, ast.Mod):
                sym = {ast.Add: "+", ast.Sub: "-", ast.Mod: "%"}[op]
                fn = {ast.Add: lambda p, q: p + q, ast.Sub: lambda p, q: p - q,
                      ast.Mod: lambda p, q: p % q}[op]
                return same(f"'{sym}'", a, b), const(fn, x, y)
            if op in (ast.Mult, ast.Div, ast.FloorDiv):
                # a plain number (no unit, no parameter) next to a quantity is a dimensionless
                # factor ("2 * $c", "-70 * ms", "2e7 / M / s"); only a product of plain numbers
                # or of a bare-number parameter stays unknown ("$x * 1 s" with x = 30)
                if a is None and x is not None and b is not None:
                    a = _DIMENSIONLESS
                    factors.append(node)
                elif b is None and y is not None and a is not None:
                    b = _DIMENSIONLESS
                    factors.append(node)
            if op is ast.Mult:
                d = None if a is None or b is None else tuple(i + j for i, j in zip(a, b))
                return d, const(lambda p, q: p * q, x, y)
            if op in (ast.Div, ast.FloorDiv):
                d = None if a is None or b is None else tuple(i - j for i, j in zip(a, b))
                fn = (lambda p, q: p / q) if op is ast.Div else (lambda p, q: p // q)
                return d, const(fn, x, y)
            if op is ast.Pow:
                if b is not None and b != _DIMENSIONLESS:
                    raise StudyError(f"{where}: {value!r} has an exponent that is {_dim_text(b)}; "
                                     "the exponent of ** must be dimensionless")
                v = const(lambda p, q: p ** q, x, y)
                if a is None or a == _DIMENSIONLESS:
                    return a, v
                uses_param = any(isinstance(n, ast.Name) and n.id.removeprefix(_P_MARK) in dims
                                 for n in ast.walk(node.right))
                if y is None and not uses_param:
                    return None, None   # (a non-finite constant or an unknown name: _evaluate says)
                scaled = [i * y for i in a] if y is not None else None
                if scaled is None or any(abs(s - round(s)) > 1e-9 for s in scaled):
                    power = "a power that depends on a parameter" if y is None else f"the power {y:g}"
                    raise StudyError(f"{where}: {value!r} raises {_dim_text(a)} to {power}; only a "
                                     "constant whole power of its units is allowed (or make the "
                                     "base dimensionless, e.g. '($t / 1 s) ** $n')")
                return tuple(int(round(s)) for s in scaled), v
            return None, None
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            a, x = walk(node.operand)
            return a, (None if x is None else (-x if isinstance(node.op, ast.USub) else x))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in _FUNCS and node.args and not node.keywords \
                and not any(isinstance(a, ast.Starred) for a in node.args):
            name = node.func.id
            args = [walk(a) for a in node.args]
            if name in ("min", "max"):
                d = None
                for a, _ in args:
                    d = same(f"{name}()", d, a)
            else:
                d = args[0][0]
                if name == "round" and len(args) > 1 and args[1][0] not in (None, _DIMENSIONLESS):
                    raise StudyError(f"{where}: {value!r}: the digits of round() are "
                                     f"{_dim_text(args[1][0])}; they must be a dimensionless number")
            fn = _FUNCS[name][0]
            return d, const(lambda *v: fn(*v), *[x for _, x in args])
        return None, None

    try:
        return walk(tree)[0]
    except RecursionError:
        return None   # (reported by _evaluate)


def _check_dimension(value: Any, dims: _ParamDims, where: str, key: str,
                     expected: tuple[int, ...]) -> None:
    """StudyError if ``value`` has a known dimension other than ``expected``.

    The message names the key path (``where``), the value given, its dimension and the one
    ``key`` takes, and the definition of every parameter of known dimension the value uses:
    ``"study: [protocol].segments[1].duration: '-70 mV' is a voltage (V); duration takes a time
    (s)"``.
    """
    refs: list = []
    factors: list = []
    d = _dimension(value, dims, where, refs, factors)
    if d is None or d == expected:
        return
    msg = f"{where}: {value!r} is {_dim_text(d)}; {key} takes {_dim_text(expected)}"
    for n in dict.fromkeys(refs):
        if dims[n][0] is not None:
            msg += f"; ${n} is {_dim_text(dims[n][0])}, from {dims[n][1]}"
    if tuple(-i for i in d) == expected:
        msg += f"; if you meant the inverse, write '1 / ({value})'"
    if factors:
        msg += ("; a number without a unit multiplying a quantity is a dimensionless factor "
                "(write its unit, e.g. '10 s', if it stands for a quantity)")
    raise StudyError(msg)


def _is_zero(value: Any) -> bool:
    """Whether a parameter's definition is the number 0 written as a bare number (``0``,
    ``0.0``, ``"0"``, ``"-0.0"``; not ``"0 s"`` nor an expression)."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return value == 0
    m = _QTY.match(value) if isinstance(value, str) and len(value) <= MAX_EXPRESSION_LENGTH else None
    return bool(m) and m.group(2) is None and float(m.group(1)) == 0


#: The unit to suggest for a bare number used as a dimension (``"30 s"``).
_WRITE_UNIT = {_TIME: "s", _VOLTAGE: "V", _TEMPERATURE: "K", _CONCENTRATION: "M", _FREQUENCY: "Hz"}


def _bare_conflict(source: str, origin: str, swept: bool, definition: Any,
                   first: tuple, second: tuple) -> StudyError:
    """The StudyError for a bare-number parameter used as two dimensions
    (:meth:`Study._check_bare_parameters`): ``first`` and ``second`` are ``(dimension, (where,
    value, key, via))`` of its first use as each; ``origin`` the key path of its definition."""
    name = origin.rsplit(".", 1)[-1]
    (d1, (w1, v1, _, via1)), (d2, (w2, v2, k2, via2)) = first, second

    def through(via: tuple) -> str:
        return f" (through {', '.join('$' + x.removeprefix('_study_') for x in via)})" if via else ""

    key1 = w1[len(source) + 2:] if w1.startswith(f"{source}: ") else w1
    defined = f"{origin} = {definition!r}" + (", swept" if swept else "")
    msg = (f"{w2}: {v2!r} uses the bare-number parameter {name} ({defined}){through(via2)} as "
           f"{_dim_text(d2)}, which {k2} takes, but {key1} = {v1!r} uses it{through(via1)} as "
           f"{_dim_text(d1)}; a bare number takes the dimension of the key that uses it, and one "
           "number cannot be both")
    try:
        x = None if swept else _evaluate(definition, {}, "")
    except StudyError:   # (a definition over other parameters)
        x = None
    if x is not None and d1 in _WRITE_UNIT and d2 in _WRITE_UNIT:
        hint = f"give {name} its unit ('{x:g} {_WRITE_UNIT[d1]}' or '{x:g} {_WRITE_UNIT[d2]}')"
    elif swept:
        hint = f"write the sweep values of {name} with their unit"
    else:
        hint = f"give {name} its unit"
    return StudyError(f"{msg}: {hint}, or use one parameter per quantity")


# ------------------------------------------------------------------------------------------
# Parameters: one dependency graph over the merged definitions
# ------------------------------------------------------------------------------------------
#: A parameter's definition and the key path that defines it: name -> (value, "[parameters].t").
_Definitions = Mapping[str, "tuple[Any, str]"]


@functools.lru_cache(maxsize=4096)
def _names_in(value: str) -> "tuple[tuple[str, bool], ...] | None":
    """The names an expression string uses, in order, as ``(name, marked)`` (``marked``: written
    ``$name``), leaving out units after a number and called function names; None for text that
    does not parse (reported where the value is evaluated)."""
    try:
        tree = _parse_expression(value, "")
    except StudyError:
        return None
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and id(n) not in called and not n.id.startswith(_U_MARK):
            marked = n.id.startswith(_P_MARK)
            out.append((n.id[len(_P_MARK):] if marked else n.id, marked))
    return tuple(out)


def _references(value: Any, known: "Mapping[str, Any] | set", where: str) -> list[str]:
    """The parameters a value uses (``$name``, and a bare name that is a parameter), as
    :func:`_evaluate` resolves them.

    Raises
    ------
    StudyError
        A name that is neither a known parameter nor a unit (``where: unknown name 'x' ...``,
        listing every parameter).
    """
    if isinstance(value, bool) or not isinstance(value, str) or len(value) > MAX_EXPRESSION_LENGTH \
            or _QTY.match(value):
        return []
    names = _names_in(value)
    out: list[str] = []
    for name, marked in names or ():
        if name in known:
            out.append(name)
        elif marked or name not in _UNITS:
            mark = f" (${name} marks a parameter)" if marked else ""
            raise StudyError(f"{where}: unknown name {name!r}{mark} in {value!r}; parameters: "
                             f"{sorted(k for k in known if not k.startswith('_'))}")
    return list(dict.fromkeys(out))


@functools.lru_cache(maxsize=4096)
def _additive_names(value: str) -> "tuple[tuple[str, bool], ...]":
    """The names an expression string uses where a bare number takes the dimension of the whole
    value, in order, as ``(name, marked)`` (as :func:`_names_in`): the whole value, a term of
    ``+ - %``, an argument of ``min``/``max``, the first argument of ``round int abs float``,
    under unary ``-``/``+``; not inside ``* / // **`` (there a bare number is a factor whose
    dimension is not determined).  ``()`` for a plain quantity or text that does not parse."""
    if _QTY.match(value):
        return ()
    try:
        tree = _parse_expression(value, "")
    except StudyError:
        return ()
    out: list[tuple[str, bool]] = []
    todo: list[ast.AST] = [tree.body]
    while todo:
        n = todo.pop()
        if isinstance(n, ast.Name):
            if not n.id.startswith(_U_MARK):
                marked = n.id.startswith(_P_MARK)
                out.append((n.id[len(_P_MARK):] if marked else n.id, marked))
        elif isinstance(n, ast.BinOp) and isinstance(n.op, (ast.Add, ast.Sub, ast.Mod)):
            todo += [n.right, n.left]
        elif isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.USub, ast.UAdd)):
            todo.append(n.operand)
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in _FUNCS \
                and n.args and not n.keywords:
            todo += reversed(n.args if n.func.id in ("min", "max") else n.args[:1])
    return tuple(out)


def _uses_name(value: Any, name: str) -> bool:
    """Whether an expression string uses the parameter ``name`` (``$name``, ``${name}`` or a
    bare ``name`` that is not a unit)."""
    if not isinstance(value, str) or len(value) > MAX_EXPRESSION_LENGTH or _QTY.match(value):
        return False
    return any(n == name and (marked or n not in _UNITS) for n, marked in _names_in(value) or ())


def _rename_parameter(value: str, name: str, new: str) -> str:
    """``value`` with every use of the parameter ``name`` written ``$new``."""
    text = re.sub(r"\$\{" + name + r"\}|\$" + name + r"\b", "$" + new, value)
    if name not in _UNITS:   # a bare name that is not a unit is the parameter too
        text = re.sub(r"(?<![\w.$])" + name + r"\b(?!\s*\()", "$" + new, text)
    return text


def _parameter_order(defs: _Definitions, fixed: "Mapping[str, Any]", source: str) -> list[str]:
    """The names of ``defs`` not in ``fixed`` in an order where each comes after every parameter
    its definition uses (a topological order of the dependency graph; among independent
    parameters, the order of definition).  ``fixed`` holds parameters whose values are given
    (sweep values): they depend on nothing.

    Raises
    ------
    StudyError
        A definition uses an unknown name (naming its key), or parameters depend on each other
        in a cycle (naming the cycle and each definition in it).
    """
    known = set(defs) | set(fixed)
    deps = {k: [r for r in _references(v, known, f"{source}: {origin}") if r in defs and r not in fixed]
            for k, (v, origin) in defs.items() if k not in fixed}
    order: list[str] = []
    state: dict[str, int] = {}       # 1: on the current path, 2: done
    for root in deps:
        if root in state:
            continue
        path, stack = [root], [iter(deps[root])]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                node = path.pop()
                stack.pop()
                state[node] = 2
                order.append(node)
            elif state.get(nxt) == 1:
                cycle = path[path.index(nxt):]
                first = min(cycle, key=list(defs).index)       # start at the earliest definition
                i = cycle.index(first)
                cycle = cycle[i:] + cycle[:i] + [first]
                chain = " -> ".join(f"${c}" for c in cycle)
                what = "; ".join(f"{defs[c][1]} = {defs[c][0]!r}" for c in cycle[:-1])
                hint = ""
                if len(cycle) == 2 and not defs[first][1].startswith("[parameters]."):
                    hint = (f"; a protocol's ${first} in its own definition means the study's "
                            f"{first}, and the study defines none")
                raise StudyError(f"{source}: {defs[first][1]}: parameters depend on each other in a "
                                 f"cycle, {chain} ({what}); no parameter can depend on itself, "
                                 f"directly or through others{hint}")
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(deps[nxt]))
    return order


# ------------------------------------------------------------------------------------------
# Specification
# ------------------------------------------------------------------------------------------
_PART_KEYS = ("segments", "sweep", "parameters", "analysis", "initial", "dt", "n_trials",
              "n_channels", "method")
_STEP_KEYS = ("duration", "V", "temperature", "label")
_TRAIN_KEYS = ("n_pulses", "frequency", "width", "V", "temperature", "during", "between", "tail")
_TOP_KEYS = ("name", "description", "model", "blockers", "method", "n_channels", "n_trials", "dt",
             "rng", "record", "keep_trials", "deterministic", "parameters", "protocol", "sweep",
             "protocols", "outputs")
_OUTPUT_KEYS = ("results", "figures")
from .scheme import RESERVED_NAMES  # noqa: E402
from .plot import FIGURES as _FIGURES  # noqa: E402  (the one list; plot imports matplotlib lazily)


@dataclass
class StudyPart:
    """One protocol of a study, with its own sweep.

    Parameters
    ----------
    segments : list of mapping, ketacore.Step or ketacore.Protocol
        Protocol segments in order (a single Step or Protocol is also accepted; a single
        mapping is refused -- put it in a list).  A step: ``{"duration": "30 s", "V": "-70 mV",
        "glutamate": "1 mM", "ketamine": "$ketamine", "label": "block"}`` (any other key is a
        ligand concentration).  A pulse train: ``{"train": {"n_pulses": ..., "frequency": ...,
        "width": ..., "V": ..., "during": {...}, "between": {...}, "tail": ...}, "label": ...}``
        (see :func:`ketacore.pulse_train`).  Values are numbers (SI), quantities (``"10 uM"``),
        or expressions over parameters and units (``"$t_train * $frequency"``); each must have
        the dimension of its key (``duration``, ``width``, ``tail``: time; ``V``: voltage;
        ``temperature``: K; ligands, ``during``/``between`` entries: concentration;
        ``frequency``: 1/s; ``n_pulses``: dimensionless) or be a bare number; see Notes.
    sweep : mapping of str to list
        Sweep axes (outer product, in order): a parameter name → values, or ``"model"`` → gating
        model names (their states must match).
    parameters : mapping
        Parameter defaults local to this protocol: they replace the study's of the same name,
        and every parameter defined from one (in the study or here, in any order) follows it
        (see the module notes, *Parameters*).
    analysis : str or mapping, optional
        ``"trapping"`` (labels control/block/wash/recovery; options ``window`` (default 1 s:
        the last ``window`` of control and of block) and ``early`` (default 0.5 s: the first
        ``early`` of control and of recovery); ``trapped`` uses mean currents over the first
        ``early`` of recovery and control, not the peak-current definition of
        :func:`ketacore.experiments.trapping`; see the module notes; and ``drug``, defaulting as
        for use_dependence: ``blocked_end_block``, ``blocked_end_wash`` and
        ``trapped_occupancy`` count the channels carrying the drug -- a state with its tag,
        ``"O·ket"``, whatever else is bound -- not those bound only by a background blocker
        such as Mg2+, ``"O·mg"``),
        ``"use_dependence"`` (a train; options ``train`` = its label, default the first train;
        ``drug``), ``"dose_response"`` (options ``concentration`` = sweep axis with at least 2
        concentrations > 0, ``voltage`` = the sweep axis in volts of a Woodhull fit of the IC50s,
        default the only other axis in volts, ``window`` = the end of the protocol averaged,
        default the whole protocol; ``drug``).  Each window must fit inside the segment (or protocol) it
        measures, and a key the kind does not take is refused (StudyError at check time).
        use_dependence and dose_response compare with a *drug-free control*: the same protocol
        (and ``initial``) without the ``drug`` -- a blocker ligand or a list of them -- and with
        every other ligand at its value, a background blocker included.  So ketamine studied in
        1 mM Mg2+ (``blockers = ["ketamine", "mg"]``, ``mg = "1 mM"`` in every step) measures
        ketamine's block on top of the Mg2+ block (IC50 = K_B(1 + [Mg]/K_Mg)), not the two
        together.  Default ``drug``: for dose_response, the blocker ligands whose value uses
        the concentration axis (``ketamine = "$ketamine"``, ``"2 * $c"``, in a step, a train's
        ``during``/``between`` or the ``initial`` table) or that are named like it, else the one
        blocker ligand the protocol applies; for use_dependence and trapping, the one blocker
        ligand the protocol applies (trapping with several: those its ``block`` step applies
        and its ``control`` step does not).  A protocol that applies several blockers where this rule
        cannot tell is refused, asking for ``drug`` (module notes, *The drug-free control*).
    initial : str or mapping
        ``"equilibrium"`` (the equilibrium at rest: under the protocol's rest conditions -- a
        leading train's between-pulse conditions, else the first step's), a state name, or a
        conditions table (keys ``V``, ``temperature`` and ligand names of the blocked scheme, e.g.
        ``{"glutamate": 0}``).  The drug-free control of use_dependence and dose_response
        starts from ``initial`` without the drug's ligands (a conditions table) or with the
        drug unbound (a state blocked by the drug such as ``"O·ket"`` starts the control in
        ``"O"``; a state blocked by a background blocker, ``"O·mg"``, is kept).  With the
        drug in the rest conditions, the library ketamine and memantine (whose slow escape is
        balanced by a closed route) rest partly blocked, [B]/(K_B + [B]) (an indefinite soak;
        ketamine 1 µM at −70 mV: 57 %); ``initial = "R"`` or a drug-free conditions table
        starts drug-naive (the default study does so).
    dt, n_trials, n_channels, method : optional
        Per-protocol overrides of the study values.

    Raises
    ------
    StudyError
        A field of the wrong type (the message names it: ``StudyPart: sweep: ...``).

    Notes
    -----
    Units are checked when the part is put into a :class:`Study` (which knows the parameters):
    a value whose dimension is known and is not the one its key takes -- ``dt = "10 uM"``,
    ``duration = "-70 mV"``, a ligand at ``"1 ms"``, ``frequency = "100 ms"``, an analysis
    ``window`` in mV, an ``initial`` ``V`` in uM, ``n_pulses = "$t_train / $frequency"`` (s^2,
    not a count), a sweep value whose dimension differs from its parameter's -- is refused with
    a :class:`StudyError` naming the key path, the value, its dimension and the one expected.
    A bare number (``30``, or a parameter defined as one) has no dimension to check and is
    accepted anywhere, except that one bare-number parameter used directly (alone, or as a term
    of a sum) as two different dimensions -- ``duration = "$x"`` and ``glutamate = "$x"`` -- is
    refused.  The rules for expressions are in the module notes (:mod:`ketacore.study`, *Units
    and dimensions*).
    """

    segments: list = field(default_factory=list)
    sweep: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    analysis: Any = None
    initial: Any = "equilibrium"
    dt: Any = None
    n_trials: Any = None
    n_channels: Any = None
    method: Any = None

    def __post_init__(self) -> None:
        _normalize_part(self)


class _PartError(StudyError):
    """A StudyPart field of the wrong type; ``key`` names the field so that a Study can report it
    under its own key path."""

    def __init__(self, key: str, msg: str) -> None:
        super().__init__(f"StudyPart: {key}: {msg}")
        self.key, self.msg = key, msg


def _normalize_part(p: StudyPart) -> None:
    """Check the types of a StudyPart's fields and normalise them to plain lists/dicts."""
    from .protocol import Protocol, Step
    segs_in = p.segments
    if isinstance(segs_in, (Protocol, Step)):
        segs_in = [segs_in]
    elif isinstance(segs_in, Mapping):
        raise _PartError("segments", "must be a list of segments (tables, Steps or Protocols); got a "
                         "single table -- put it in a list")
    elif not isinstance(segs_in, (list, tuple)):
        raise _PartError("segments", "must be a list of segments (tables, Steps or Protocols), a "
                         f"Step or a Protocol, got {type(segs_in).__name__} ({segs_in!r:.80})")
    segs = []
    for i, s in enumerate(segs_in):
        if isinstance(s, Protocol):
            segs.extend(_protocol_segments(s, first=i == 0))
        elif isinstance(s, Step):
            segs.append(s.to_dict())
        else:
            segs.append(copy.deepcopy(dict(s)) if isinstance(s, Mapping) else s)
    p.segments = segs
    for key in ("sweep", "parameters"):
        v = getattr(p, key)
        if not isinstance(v, Mapping):
            what = "axis = [values]" if key == "sweep" else "name = value"
            raise _PartError(key, f"must be a table (dict) of {what}, got {type(v).__name__} ({v!r:.80})")
    p.sweep = {k: list(v) if isinstance(v, (list, tuple, np.ndarray)) else v
               for k, v in dict(p.sweep).items()}
    p.parameters = dict(p.parameters)
    if isinstance(p.analysis, str):
        p.analysis = {"kind": p.analysis}
    elif isinstance(p.analysis, Mapping):
        p.analysis = dict(p.analysis)
        if isinstance(p.analysis.get("drug"), tuple):   # (as TOML reads it back)
            p.analysis["drug"] = list(p.analysis["drug"])
    elif p.analysis is not None:
        raise _PartError("analysis", f"must be one of {list(ANALYSES)} or a table with a 'kind' key, "
                         f"got {type(p.analysis).__name__} ({p.analysis!r:.80})")
    if isinstance(p.initial, Mapping):
        p.initial = dict(p.initial)
    elif p.initial is not None and not isinstance(p.initial, str):
        raise _PartError("initial", "must be 'equilibrium', a state name or a conditions table, "
                         f"got {type(p.initial).__name__} ({p.initial!r:.80})")


def _conditions(st) -> tuple:
    return st.V, st.temperature, dict(st.concentrations)


def _protocol_segments(prot, first: bool) -> list:
    """A Protocol given as study segments: its steps as tables, except that a leading pulse train
    whose :attr:`~ketacore.Protocol.rest` matters (``first``: the part's protocol starts with it)
    becomes the equivalent ``{train = {...}}`` table, so that the part starts at rest as the TOML
    train does (and the use_dependence analysis sees a train).  Any other rest that differs from
    the first step's conditions cannot be written as segments: refused."""
    steps = list(prot.steps)
    plain = [st.to_dict() for st in steps]
    rest = prot.rest
    if not first or rest is None or _conditions(rest) == _conditions(steps[0]):
        return plain   # no rest, or one that is the first step's conditions: nothing is lost
    hit = _as_train(steps, rest)
    if hit is None:
        raise _PartError("segments", "the first segment is a Protocol with rest conditions "
                         f"({rest!r}) that differ from its first step's, and it is not a "
                         "kc.pulse_train (whose rest a {train = ...} segment keeps); a study's "
                         "segments cannot carry another rest -- give the part initial = {conditions} "
                         "(e.g. initial = {\"glutamate\": 0}) and the protocol's steps instead")
    table, used = hit
    return [{"train": table}] + plain[used:]


def _as_train(steps: list, rest) -> "tuple[dict, int] | None":
    """``(train table, number of steps it covers)`` if ``steps`` start with a
    :func:`ketacore.pulse_train` whose rest is ``rest``, else None."""
    from .protocol import pulse_train
    if len(steps) < 2:
        return None
    on, off = steps[0], steps[1]
    if (on.V, on.temperature) != (off.V, off.temperature) or _conditions(off) != _conditions(rest):
        return None
    n = 0
    while 2 * n + 1 < len(steps) and steps[2 * n] == on and steps[2 * n + 1] == off:
        n += 1
    used, tail = 2 * n, 0.0
    if used < len(steps) and _conditions(steps[used]) == _conditions(off):
        tail, used = steps[used].duration, used + 1
    between = dict(off.concentrations)
    during = {k: v for k, v in on.concentrations.items() if between.get(k) != v}
    during.update({k: 0.0 for k in between if k not in on.concentrations})
    table: dict[str, Any] = {"n_pulses": n, "frequency": 1.0 / (on.duration + off.duration),
                             "width": on.duration, "V": on.V}
    if on.temperature is not None:
        table["temperature"] = on.temperature
    table["during"], table["between"] = during, between
    if tail > 0:
        table["tail"] = tail
    try:
        again = pulse_train(n, table["frequency"], table["width"], V=on.V, temperature=on.temperature,
                            during=during, between=between, tail=tail)
    except (TypeError, ValueError):
        return None
    # the same steps (durations to rounding: the frequency is recomputed from the period)
    if len(again.steps) != used or any(
            _conditions(a) != _conditions(b) or not math.isclose(a.duration, b.duration, rel_tol=1e-9)
            for a, b in zip(again.steps, steps)):
        return None
    return table, used


def _make_part(value: Any, source: str, where: Callable[[str], str]) -> StudyPart:
    """A StudyPart from a StudyPart or a mapping of its fields; errors name ``where(field)``."""
    if isinstance(value, StudyPart):
        kw = {f.name: getattr(value, f.name) for f in dataclasses.fields(StudyPart)}
    elif isinstance(value, Mapping):
        kw = dict(value)
        bad = set(kw) - set(_PART_KEYS)
        if bad:
            k = sorted(map(str, bad))[0]
            raise StudyError(f"{source}: {where(k)}: unknown key; allowed: {list(_PART_KEYS)}")
    else:
        raise StudyError(f"{source}: {where('')}: must be a StudyPart or a table of its fields, got "
                         f"{type(value).__name__} ({value!r:.80})")
    try:
        return StudyPart(**kw)
    except _PartError as e:
        raise StudyError(f"{source}: {where(e.key)}: {e.msg}") from None


@dataclass
class Study:
    """A Monte Carlo study: model, blockers, protocol(s) with sweeps, simulation settings.

    Parameters
    ----------
    model : str
        Built-in gating model name (``kc.models.available()``) or a scheme TOML path; a relative
        path is resolved against ``base``.
    blockers : str, mapping, or list of str or mapping
        Library blocker names, or tables ``{"name": "ketamine", "k_escape": 0}`` overriding
        fields of a library blocker (:meth:`ketacore.blockers.Blocker.replace`).  A single name
        or table is one blocker (``blockers="ketamine"`` is ``blockers=["ketamine"]``); it is
        stored as a list.  ``closed_route = "none"`` (TOML has no null) is ``closed_route=None``:
        ``{"name": "ketamine", "closed_route": "none"}`` is the library ketamine without the
        closed route that balances its escape (escape-only trapping), and an explicit
        ``k_on_closed`` on a library blocker with ``closed_route="balanced"`` needs it.
    protocol, sweep, analysis, initial : optional
        Shorthand for a single protocol (stored as ``parts["main"]``): ``protocol`` is the list
        of segments (see :class:`StudyPart`), ``sweep`` a table of axes, ``initial`` as in
        :class:`StudyPart`.
    parts : mapping of str to StudyPart
        Named protocols, each with its own sweep (TOML ``[protocols.NAME]``).
    parameters : mapping
        Parameter defaults shared by all protocols (numbers, quantities or expressions over
        other parameters, in any order: they are evaluated in dependency order, with each
        protocol's own parameters and each sweep point's values replacing theirs; module notes,
        *Parameters*).
    name, description : str
    method : {"auto", "ssa", "population"}
        Monte Carlo method (:func:`ketacore.simulate`).
    n_channels, n_trials : int
        Channels per trial and trials per sweep point.
    dt : float or quantity
        Sampling interval (s): a time (``"10 ms"``), or a bare number in s.
    rng : None, int or str
        Root entropy (int, or a decimal/hex string for > 64-bit values, stored as the int it
        reads as); ``None`` draws fresh entropy, which is stored with the results.
    record : {"summary", "counts"}
        ``"summary"`` keeps exact sums/sums of squares per sample (and ``keep_trials`` whole
        trials for plotting); ``"counts"`` also keeps every trial's counts.
    keep_trials : int
        Trials ``0 .. keep_trials-1`` kept as individual current traces.
    deterministic : bool
        Also solve the master equation at every sweep point (side by side with Monte Carlo).
        True or False (a numpy bool is stored as a bool); ``"no"``, ``1`` or None are refused
        (:func:`ketacore._validate.flag`, the one rule of every flag).
    outputs : mapping
        ``results`` (file name, default ``"results.nc"``) and ``figures`` (bool -- a numpy bool
        is stored as a bool -- or list of ``"trapping", "use_dependence", "dose_response",
        "traces", "occupancy"``).
    base : str or os.PathLike, optional
        The folder against which relative scheme file paths (``model``, a ``model`` sweep axis)
        are resolved; made absolute when the Study is built.  Default: the study file's folder
        for :meth:`from_toml` with a file, else the current folder when the study is run.  Not
        part of the study's TOML (a copy made with :meth:`replace` keeps it).

    Raises
    ------
    StudyError
        An invalid specification; the message starts with ``source: key:`` (``Study`` for a
        study built in Python, the file name for one read with :meth:`from_toml`).  Checked at
        construction: types, allowed values, every expression (evaluated in floating point),
        the dimension of every value that feeds a physical quantity (see Notes), and every
        segment at the first sweep point.  Checks that need the gating model (ligand names,
        initial conditions) or the size of the whole run (memory) are made by
        :func:`run_study` before any simulation.

    Notes
    -----
    Every value that feeds a physical quantity -- ``dt``, segment and train keys, analysis
    windows, ``initial`` conditions, blocker table rates, and through them the parameters and
    sweep values they use -- must have the dimension its key takes, or no known dimension (a
    bare number: SI, accepted anywhere; but a bare-number parameter used directly as two
    dimensions, ``duration = "$x"`` and ``glutamate = "$x"``, is refused naming both keys).  A
    known wrong dimension is refused with the key path, the value, both dimensions and, for a
    value that uses parameters, where each parameter's dimension comes from::

        Study: [protocol].segments[1].ketamine: '$k' is a time (s); ketamine (a ligand) takes a
        concentration (M); $k is a time (s), from [parameters].k = '10 ms'

    Dimensions follow expressions (``*`` ``/`` combine, ``+`` ``-`` ``min`` ``max`` need equal
    dimensions, so ``"1 s + 1 uM"`` is refused anywhere, parameters included); the full table of
    keys and rules is in the module notes (:mod:`ketacore.study`, *Units and dimensions*).
    """

    model: str = "erreger2005_2a"
    blockers: "list[Any] | str | Mapping[str, Any]" = field(default_factory=list)
    protocol: Any = None
    sweep: Any = None
    analysis: Any = None
    initial: Any = None
    parts: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    name: str = "study"
    description: str = ""
    method: str = "auto"
    n_channels: int = 1000
    n_trials: int = 64
    dt: Any = 1e-3
    rng: Any = None
    record: str = "summary"
    keep_trials: int = 8
    deterministic: bool = True
    outputs: dict = field(default_factory=lambda: {"results": "results.nc", "figures": True})
    _source: str = field(default="Study", repr=False, compare=False)
    _base_dir: str = field(default=".", repr=False, compare=False)
    #: A single protocol written as ``[protocols.main]`` (not ``[protocol]``): messages and
    #: :meth:`to_toml` keep that spelling (the two are the same study).
    _named_main: bool = field(default=False, repr=False, compare=False)
    base: dataclasses.InitVar[Any] = None

    def __post_init__(self, base: Any) -> None:
        e = self._err
        if base is not None:
            if not isinstance(base, (str, os.PathLike)):
                raise e("base", "must be a folder path (str or os.PathLike), got "
                        f"{type(base).__name__} ({base!r:.80})")
            folder = Path(base).expanduser().resolve()
            if not folder.is_dir():
                raise e("base", f"{str(base)!r} ({str(folder)!r}) is not an existing folder")
            self._base_dir = str(folder)
        if isinstance(self.blockers, (str, Mapping)):
            self.blockers = [self.blockers]        # one blocker
        elif not isinstance(self.blockers, (list, tuple)):
            raise e("blockers", "must be a blocker name, a table with a 'name' key, or a list of "
                    f"these, got {type(self.blockers).__name__} ({self.blockers!r:.80})")
        self.blockers = [copy.deepcopy(dict(b)) if isinstance(b, Mapping) else b for b in self.blockers]
        for key in ("parameters", "outputs", "parts"):
            v = getattr(self, key)
            if not isinstance(v, Mapping):
                raise e(f"[{key}]" if key != "parts" else "parts",
                        f"must be a table (dict), got {type(v).__name__} ({v!r:.80})")
        self.parameters = dict(self.parameters)
        self.outputs = {"results": "results.nc", "figures": True, **dict(self.outputs)}
        parts = {}
        for k, p in dict(self.parts).items():
            parts[k] = _make_part(p, self._source,
                                  lambda f, k=k: f"parts[{k!r}]" + (f".{f}" if f else ""))
        if self.protocol is not None:
            if parts:
                raise StudyError(f"{self._source}: give either protocol= (one protocol) or parts= "
                                 "(named protocols), not both")
            names = {"segments": "protocol"}
            parts["main"] = _make_part(
                {"segments": self.protocol, "sweep": {} if self.sweep is None else self.sweep,
                 "analysis": self.analysis,
                 "initial": "equilibrium" if self.initial is None else self.initial},
                self._source, lambda f: names.get(f, f))
        elif self.sweep is not None or self.analysis is not None or self.initial is not None:
            raise StudyError(f"{self._source}: sweep=/analysis=/initial= go with protocol=; with "
                             "parts= put them in each StudyPart")
        self.protocol = self.sweep = self.analysis = self.initial = None
        self.parts = parts
        self._check_structure()
        if self.rng is not None:   # one form (int) for equality and the stored entropy
            self.rng = self._entropy()

    # ------------------------------------------------------------------ key paths for errors
    def _single(self) -> bool:
        return list(self.parts) == ["main"] and not self._named_main

    def _pw(self, part: str, sub: str | None = None) -> str:
        if self._single():
            return "[sweep]" if sub == "sweep" else ("[parameters]" if sub == "parameters" else "[protocol]")
        return f"[protocols.{part}.{sub}]" if sub in ("sweep", "parameters") else f"[protocols.{part}]"

    def _err(self, key: str, msg: str) -> StudyError:
        return StudyError(f"{self._source}: {key}: {msg}")

    # ------------------------------------------------------------------ validation
    def _check_structure(self) -> None:
        e = self._err
        if not isinstance(self.name, str) or not self.name.strip():
            raise e("name", "must be a non-empty string")
        if not isinstance(self.description, str):
            raise e("description", f"must be a string, got {type(self.description).__name__}")
        if not isinstance(self.model, str) or not self.model:
            raise e("model", "must be a built-in model name or a scheme TOML path")
        for i, b in enumerate(self.blockers):
            if isinstance(b, str):
                continue
            if not isinstance(b, dict) or not isinstance(b.get("name"), str):
                raise e(f"blockers[{i}]", "must be a blocker name or a table with a 'name' key")
        if self.method not in _METHODS:
            raise e("method", f"must be one of {list(_METHODS)}, got {self.method!r}")
        if self.record not in _RECORDS:
            raise e("record", f"must be one of {list(_RECORDS)}, got {self.record!r}")
        for key, lo in (("n_channels", 1), ("n_trials", 1), ("keep_trials", 0)):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise e(key, f"must be an integer >= {lo}, got {v!r}")
        for name, p in self.parts.items():
            n_ch = p.n_channels if p.n_channels is not None else self.n_channels
            n_tr = p.n_trials if p.n_trials is not None else self.n_trials
            if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (n_ch, n_tr)):
                continue   # reported by _check_part
            n_ch, n_tr = int(n_ch), int(n_tr)
            if n_tr * n_ch * n_ch >= 2**63:
                raise e("n_trials", f"n_trials * n_channels**2 = {n_tr * n_ch * n_ch} overflows the exact "
                        "int64 sums of squares; split the trials into several studies")
        self.deterministic = _study_flag(self._source, "deterministic", self.deterministic)
        if self.rng is not None:
            self._entropy()
        bad = set(self.outputs) - set(_OUTPUT_KEYS)
        if bad:
            raise e("[outputs]", f"unknown key(s) {sorted(bad)}; allowed: {list(_OUTPUT_KEYS)}")
        res = self.outputs["results"]
        if not isinstance(res, str) or not res.endswith(".nc") or "/" in res or "\\" in res:
            raise e("[outputs].results", f"must be a file name ending in .nc, got {res!r}")
        figs = self.outputs["figures"]
        if isinstance(figs, list):
            if any(f not in _FIGURES for f in figs):
                raise e("[outputs].figures", f"must be true or false or a list of {list(_FIGURES)}, "
                        f"got {figs!r}")
        else:
            figs = self.outputs["figures"] = _study_flag(
                self._source, "[outputs].figures", figs, also=f" or a list of {list(_FIGURES)}")
        if not self.parts:
            raise e("[protocol]", "the study needs a protocol ([protocol] or [protocols.NAME])")
        self._check_replaced_parameters()
        bare_uses: dict = {}    # (the uses of bare-number parameters, over all protocols)
        for name, p in self.parts.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise e(f"[protocols.{name}]", "protocol names must be identifiers (letters, digits, _)")
            self._check_part(name, p, bare_uses)
        if isinstance(figs, list):
            self._check_figures(figs)

    def _check_figures(self, figs: list) -> None:
        """Refuse a figure name in ``[outputs].figures`` that no protocol of the study draws
        (the figures each analysis kind draws: :func:`ketacore.plot.figures_for`)."""
        from .plot import figures_for
        draws = {name: figures_for((p.analysis or {}).get("kind")) for name, p in self.parts.items()}
        for f in figs:
            if any(f in d for d in draws.values()):
                continue
            kinds = "; ".join(f"{self._pw(n)} ({(self.parts[n].analysis or {}).get('kind') or 'no analysis'}) "
                              f"draws {list(d)}" for n, d in draws.items())
            raise self._err("[outputs].figures", f"no protocol of this study draws figure {f!r}: {kinds}")

    def _entropy(self) -> int:
        r = self.rng
        if isinstance(r, bool):
            raise self._err("rng", "must be an integer >= 0 or a decimal/hex string")
        if isinstance(r, (int, np.integer)):
            if r < 0:
                raise self._err("rng", f"must be >= 0, got {r}")
            return int(r)
        if isinstance(r, str):
            try:
                v = int(r, 0)
            except ValueError:
                raise self._err("rng", f"cannot read {r!r} as an integer (decimal or 0x hex)") from None
            if v < 0:
                raise self._err("rng", f"must be >= 0, got {r}")
            return v
        raise self._err("rng", f"must be an integer >= 0 or a decimal/hex string, got {type(r).__name__}")

    def _evaluate_field(self, key, value, env, *, positive=False, integer=False):
        v = _evaluate(value, env, f"{self._source}: {key}")
        if positive and not v > 0:
            raise self._err(key, f"must be > 0, got {value!r}")
        if integer:
            if v != int(v) or v < 1:
                raise self._err(key, f"must be a positive integer, got {value!r}")
            return int(v)
        return v

    def _definitions(self, part: StudyPart | None, where: str) -> dict[str, tuple[Any, str]]:
        """The parameter definitions that hold in protocol ``part`` (None: the study's alone):
        the study's ``[parameters]`` with the protocol's ``parameters`` replacing those of the
        same name, each as name -> (value, key path that defines it)."""
        out: dict[str, tuple[Any, str]] = {}
        layers = [(self.parameters, "[parameters]")]
        if part is not None:
            layers.append((part.parameters, where))
        for params, w in layers:
            for k, v in params.items():
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(k)):
                    raise StudyError(f"{self._source}: {w}.{k}: parameter names must be identifiers")
                if k in _FUNCS or k == "model":
                    raise StudyError(f"{self._source}: {w}.{k}: {k!r} is reserved (a function name or 'model')")
                if k in out and _uses_name(v, k):
                    # a protocol's "t = $t * 2" builds on the study's t: that definition stays
                    # under a hidden name (names starting with "_" are not listed to users)
                    hidden = f"_study_{k}"
                    out[hidden] = out[k]
                    v = _rename_parameter(v, k, hidden)
                out[k] = (v, f"{w}.{k}")
        return out

    def _env(self, overrides: Mapping[str, Any], part: StudyPart | None, where: str) -> dict:
        """The value (SI) of every parameter of protocol ``part`` (None: the study's alone).

        One dependency graph over the merged definitions (:meth:`_definitions`) with the
        ``overrides`` (a sweep point's values) fixed: each parameter is evaluated after those it
        uses, whatever the order in which they are written, so an override or a sweep value
        reaches every parameter defined from it.  A cycle or an unknown name is refused."""
        defs = self._definitions(part, where)
        env: dict[str, Any] = dict(overrides)
        for k in _parameter_order(defs, overrides, self._source):
            env[k] = _evaluate(defs[k][0], env, f"{self._source}: {defs[k][1]}")
        return {**{k: env[k] for k in defs}, **env}

    def _dims(self, part: StudyPart | None, where: str,
              sweep: Mapping[str, tuple] | None = None) -> dict[str, tuple]:
        """The dimension of every parameter, by the rule of :meth:`_env` (the merged
        definitions in dependency order; ``sweep`` -- axis -> (dimension, origin) -- replacing
        a swept parameter's own), each with where it comes from: name -> (dimension or None,
        origin).  Every definition's own dimension is worked out, a swept one's included (so
        ``"1 s + 1 uM"`` is refused wherever it is written)."""
        defs = self._definitions(part, where)
        sweep = sweep or {}
        out: dict[str, tuple] = {}
        for k in _parameter_order(defs, {}, self._source):
            v, origin = defs[k]
            d = _dimension(v, out, f"{self._source}: {origin}")  # (refuses 1 s + 1 uM)
            out[k] = sweep[k] if k in sweep else (d, f"{origin} = {v!r}")
        for k, v in sweep.items():
            out.setdefault(k, v)
        return {**{k: out[k] for k in defs}, **out}

    def _check_replaced_parameters(self) -> None:
        """A study parameter that every protocol replaces is never evaluated (each protocol
        checks its own merged parameters): check it as written all the same -- its syntax, that
        every name it uses is a parameter somewhere in the study, and that it does not combine
        quantities of different dimensions."""
        everywhere = set(self.parameters).union(*(p.parameters for p in self.parts.values()))
        for k, (v, origin) in self._definitions(None, "[parameters]").items():
            if not all(k in p.parameters for p in self.parts.values()):
                continue
            where = f"{self._source}: {origin}"
            if isinstance(v, str) and len(v) <= MAX_EXPRESSION_LENGTH and not _QTY.match(v):
                _parse_expression(v, where)
            _references(v, everywhere, where)
            _dimension(v, {}, where)

    def _top_dt_unused(self) -> bool:
        """Whether every protocol has its own dt.  The study's dt, each protocol's dt where it
        has none, is then checked with every protocol's parameters all the same (a valid time),
        as it would be used."""
        return all(p.dt is not None for p in self.parts.values())

    def _part_name(self, p: StudyPart) -> str:
        """The name of protocol ``p`` (one of :attr:`parts`)."""
        return next(n for n, q in self.parts.items() if q is p)

    def _part_dims(self, name: str, p: StudyPart) -> dict[str, tuple]:
        """The dimension of every parameter of protocol ``name`` with its sweep (:meth:`_dims`):
        a swept parameter whose definition has no dimension (a bare number) takes that of its
        sweep values.  Refuses sweep values whose dimension differs from their parameter's or
        from each other's."""
        src, sw, pp = self._source, self._pw(name, "sweep"), self._pw(name, "parameters")
        d0 = self._dims(p, pp)
        sweep: dict[str, tuple] = {}
        for axis, values in p.sweep.items():
            if axis == "model" or not isinstance(values, list):
                continue
            pdim, origin = d0.get(axis, (None, ""))
            cur = first = None
            for i, v in enumerate(values):
                w = f"{src}: {sw}.{axis}[{i}]"
                d = _dimension(v, d0, w)
                if d is None:
                    continue
                if pdim is not None and d != pdim:
                    raise StudyError(f"{w}: {v!r} is {_dim_text(d)}; the parameter {axis} is "
                                     f"{_dim_text(pdim)} ({origin}), and its sweep values must be too")
                if cur is None:
                    cur, first = d, v
                elif d != cur:
                    raise StudyError(f"{w}: {v!r} is {_dim_text(d)}, but {first!r} on the same axis "
                                     f"is {_dim_text(cur)}; the values of a sweep axis must share "
                                     "one dimension")
            if pdim is None and cur is not None:
                sweep[axis] = (cur, f"the sweep values of {sw}.{axis} (e.g. {first!r})")
        return self._dims(p, pp, sweep)

    def _dimension_sites(self, name: str, p: StudyPart):
        """Every value of protocol ``name`` that feeds a physical quantity, with the dimension
        its key takes: yields ``(where, value, key, expected dimension)`` -- ``dt``, step and
        train keys (ligands are concentrations), analysis windows, ``initial`` conditions and
        blocker table fields.  The one table of what each key takes (:meth:`_check_units`
        checks it; :func:`_axis_unit` reads a bare parameter's dimension from its use)."""
        src, pw = self._source, self._pw(name)
        if p.dt is not None:
            yield f"{src}: {pw}.dt", p.dt, "dt", _TIME
        if p.dt is None or self._top_dt_unused():
            yield f"{src}: dt", self.dt, "dt", _TIME
        for i, seg in enumerate(p.segments):
            if not isinstance(seg, Mapping):
                continue    # (refused by _build_protocol)
            w = f"{src}: {pw}.segments[{i}]"
            if "train" in seg:
                tr = seg["train"]
                for k, v in (tr.items() if isinstance(tr, Mapping) else ()):
                    if k in _TRAIN_DIMS:
                        yield f"{w}.train.{k}", v, k, _TRAIN_DIMS[k]
                    elif k in ("during", "between") and isinstance(v, Mapping):
                        for lig, c in v.items():
                            yield f"{w}.train.{k}.{lig}", c, f"{lig} (a ligand)", _CONCENTRATION
                continue
            for k, v in seg.items():
                if k != "label":
                    yield (f"{w}.{k}", v, k if k in _STEP_DIMS else _ligand_label(k, (*_STEP_DIMS, "label")),
                           _STEP_DIMS.get(k, _CONCENTRATION))
        a = p.analysis
        if isinstance(a, dict) and a.get("kind") in _ANALYSIS_KEYS:
            for k in _ANALYSIS_KEYS[a["kind"]]:
                if k in _ANALYSIS_DIMS and a.get(k) is not None:
                    yield f"{src}: {pw}.analysis.{k}", a[k], k, _ANALYSIS_DIMS[k]
        if isinstance(p.initial, dict):   # (its keys: _check_initial_keys)
            for k, v in p.initial.items():
                yield (f"{src}: {pw}.initial.{k}", v, k if k in _CONDITION_DIMS else _ligand_label(k, _CONDITION_DIMS),
                       _CONDITION_DIMS.get(k, _CONCENTRATION))
        for i, b in enumerate(self.blockers):   # (evaluated with each protocol's parameters)
            if isinstance(b, dict):
                for k, v in b.items():
                    if k in _BLOCKER_DIMS and v is not None and not isinstance(v, (dict, bool)):
                        yield f"{src}: blockers[{i}].{k}", v, f"the blocker's {k}", _BLOCKER_DIMS[k]

    def _check_units(self, name: str, p: StudyPart, bare_uses: dict | None = None) -> None:
        """Refuse any value of a protocol whose dimension is known and not the one its key takes
        (``dt = "10 uM"``, ``duration = "-70 mV"``, ``frequency = "100 ms"``), including values
        reached through parameters and sweep values, and sweep values whose dimension differs
        from their parameter's or from each other's.  Bare numbers (dimension unspecified) pass.
        Parameters follow the rule of :meth:`_env` (merged definitions, dependency order).
        A bare-number parameter used directly as two different dimensions is refused
        (:meth:`_check_bare_parameters`; ``bare_uses`` carries the uses of the protocols
        checked before).
        """
        dims = self._part_dims(name, p)
        for where, value, key, expected in self._dimension_sites(name, p):
            _check_dimension(value, dims, where, key, expected)
        self._check_bare_parameters(name, p, dims, {} if bare_uses is None else bare_uses)

    def _check_bare_parameters(self, name: str, p: StudyPart, dims: Mapping[str, tuple],
                               uses: dict) -> None:
        """Refuse a parameter of unknown dimension (a bare number) that protocol ``name`` -- or,
        for a study parameter, another protocol -- uses as two different dimensions.

        A value uses a parameter *directly* where a bare number takes the dimension of the
        value (:func:`_additive_names`: the whole value, a term of ``+ - %``, an argument of
        ``min max round int abs float``), and through every parameter of unknown dimension that
        uses it so (``y = "$x + 1"``; not through a swept one, whose sweep values replace its
        definition).  Such a use is a use *as* the dimension the key takes (:meth:`_dimension_sites`),
        the dimension of a parameter's definition (``t = "$x + 1 s"``: a time) or of a swept
        parameter (its sweep values).  Uses inside ``* / // **`` are not counted.

        Parameters
        ----------
        name : str
            The protocol.
        p : StudyPart
            Its part.
        dims : mapping
            Its parameters' dimensions (:meth:`_part_dims`).
        uses : dict
            Filled in: a definition's key path (``"[parameters].x"``) -> {dimension: the first
            use as it}; shared by the protocols of the study, so that a study parameter used as
            a time in one protocol and as a concentration in another is refused too.

        Raises
        ------
        StudyError
            A second use as another dimension, naming the parameter, both keys and both
            dimensions.
        """
        src, sw = self._source, self._pw(name, "sweep")
        defs = self._definitions(p, self._pw(name, "parameters"))
        swept = {a for a in p.sweep if a != "model" and a in defs}

        def bare(value: Any) -> list:
            """[(parameter, via)]: the parameters of unknown dimension ``value`` uses directly,
            itself or through the parameters ``via`` (in order)."""
            out: list = []
            seen: set = set()
            todo = [(value, ())]
            while todo:
                v, via = todo.pop(0)
                if not isinstance(v, str) or len(v) > MAX_EXPRESSION_LENGTH:
                    continue
                for n, marked in _additive_names(v):
                    if n in seen or n not in dims or not (marked or n not in _UNITS) \
                            or dims[n][0] is not None:
                        continue
                    seen.add(n)
                    if n in defs and _is_zero(defs[n][0]) and (
                            n not in swept or (isinstance(p.sweep[n], list)
                                               and all(_is_zero(x) for x in p.sweep[n]))):
                        continue   # 0 is 0 in every unit ("zero = 0" for 0 V and 0 M)
                    out.append((n, via))
                    if n in defs and n not in swept:
                        todo.append((defs[n][0], via + (n,)))
            return out

        sites = list(self._dimension_sites(name, p))
        for k, (v, origin) in defs.items():   # a definition of known dimension
            d = None if k in swept else _dimension(v, dims, f"{src}: {origin}")
            if d is not None:
                sites.append((f"{src}: {origin}", v, f"the parameter {origin.rsplit('.', 1)[-1]}", d))
        for axis in swept:                      # sweep values of a swept parameter of known dimension
            d = dims[axis][0]
            if d is not None and isinstance(p.sweep[axis], list):
                sites += [(f"{src}: {sw}.{axis}[{i}]", v, f"the parameter {axis}", d)
                          for i, v in enumerate(p.sweep[axis])]
        for where, value, key, want in sites:
            for n, via in bare(value):
                origin = defs[n][1] if n in defs else n
                seen = uses.setdefault(origin, {})
                if want in seen:
                    continue
                seen[want] = (where, value, key, via)
                if len(seen) > 1:
                    raise _bare_conflict(src, origin, n in swept, defs.get(n, (None,))[0],
                                         *seen.items())

    def _check_part(self, name: str, p: StudyPart, bare_uses: dict | None = None) -> None:
        pw = self._pw(name)
        sw = self._pw(name, "sweep")
        e = lambda key, msg: StudyError(f"{self._source}: {key}: {msg}")
        if not isinstance(p.segments, list) or not p.segments:
            raise e(f"{pw}.segments", "needs at least one segment (a step or a train)")
        env0 = self._env({}, p, self._pw(name, "parameters"))
        if not isinstance(p.sweep, dict):
            raise e(sw, "must be a table of axis = [values]")
        overrides, swept = {}, {}
        for axis, values in p.sweep.items():
            if not isinstance(values, list) or not values:
                raise e(f"{sw}.{axis}", f"must be a non-empty list of values, got {values!r}")
            if axis == "model":
                if not all(isinstance(v, str) for v in values):
                    raise e(f"{sw}.{axis}", "model values must be model names or scheme paths")
                vals = list(values)
            else:
                if axis not in env0:
                    raise e(f"{sw}.{axis}", f"is not a parameter; define it in [parameters] (known: "
                            f"{sorted(env0)}) or sweep 'model'")
                vals = [_evaluate(v, env0, f"{self._source}: {sw}.{axis}[{i}]") for i, v in enumerate(values)]
            if len(set(vals)) != len(vals):
                raise e(f"{sw}.{axis}", f"values must be distinct, got {values!r}")
            overrides[axis], swept[axis] = vals[0], vals
        if isinstance(p.initial, dict):    # (its keys before the dimensions of its values)
            _check_initial_keys(self, name, p.initial)
        self._check_units(name, p, bare_uses)
        if p.analysis is not None:
            a = p.analysis
            if not isinstance(a, dict) or a.get("kind") not in ANALYSES:
                raise e(f"{pw}.analysis", f"kind must be one of {list(ANALYSES)}, got {a!r}")
            if a["kind"] == "dose_response":   # (checked here: the fit runs after all the compute)
                conc = a.get("concentration")
                numeric = [k for k in (p.sweep or {}) if k != "model"]
                if conc is None and not numeric:
                    raise e(f"{pw}.analysis.concentration", "dose_response needs a concentration "
                            f"sweep axis; add one to {sw} (e.g. ketamine = [\"1 uM\", \"10 uM\"])")
                if conc is None and _dose_axis(self, p) is None:
                    raise e(f"{pw}.analysis.concentration", "dose_response cannot tell which sweep "
                            f"axis is the concentration (sweep axes: {numeric}; none is a blocker "
                            "ligand or used as a ligand concentration in the segments); give it, "
                            f"e.g. analysis = {{kind = \"dose_response\", concentration = "
                            f"\"{numeric[0]}\"}}")
                if conc is not None and (not isinstance(conc, str) or conc not in numeric):
                    raise e(f"{pw}.analysis.concentration", f"must name a sweep axis of {sw} "
                            f"(sweep axes: {numeric}), got {conc!r}")
                volt = a.get("voltage")
                if volt is not None and (not isinstance(volt, str) or volt not in numeric
                                         or volt == _dose_axis(self, p)
                                         or _axis_unit(self, p, volt) != "V"):
                    volts = [k for k in numeric if _axis_unit(self, p, k) == "V"]
                    raise e(f"{pw}.analysis.voltage", "must name a voltage sweep axis of "
                            f"{sw} other than the concentration axis, over which the IC50s get a "
                            f"Woodhull fit (voltage axes: {volts}), got {volt!r}")
                axis = _dose_axis(self, p)
                if sum(x > 0 for x in swept[axis]) < 2:
                    # (a single concentration left the IC50 NaN without a word)
                    raise e(f"{sw}.{axis}", "dose_response fits a Hill curve (IC50 and nH) over "
                            "this concentration axis, which needs at least 2 concentrations > 0 "
                            f"(3 or more to over-determine the fit), got {p.sweep[axis]!r}")
        if p.dt is not None:
            self._evaluate_field(f"{pw}.dt", p.dt, env0, positive=True)
        if p.dt is None or self._top_dt_unused():
            self._evaluate_field("dt", self.dt, env0, positive=True)
        self._check_dt_fixed(name, p, env0)
        for key in ("n_trials", "n_channels"):
            v = getattr(p, key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
                raise e(f"{pw}.{key}", f"must be an integer >= 1, got {v!r}")
        if isinstance(p.initial, dict):
            _initial_values(self, name, env0)
        if p.method is not None and p.method not in _METHODS:
            raise e(f"{pw}.method", f"must be one of {list(_METHODS)}, got {p.method!r}")
        # every segment evaluates at the first sweep point, and the analysis fits its segments
        env1 = self._env(overrides, p, self._pw(name, "parameters"))
        _, segs = _build_protocol(self, name, env1)
        _check_analysis(self, name, p.analysis, segs, env1, need_segments=False)
        _drug_ligands(self, p)   # (what the drug-free control removes: refuses what it cannot tell)

    def _check_dt_fixed(self, name: str, p: StudyPart, env0: dict) -> None:
        """dt must be one value over the sweep: the results share one ``time`` axis."""
        expr = p.dt if p.dt is not None else self.dt
        axes = [a for a in p.sweep if a != "model"]
        if not isinstance(expr, str) or not axes or _QTY.match(expr):
            return
        key = f"{self._pw(name)}.dt" if p.dt is not None else "dt"
        vals = {a: [_evaluate(v, env0, f"{self._source}: {self._pw(name, 'sweep')}.{a}[{i}]")
                    for i, v in enumerate(p.sweep[a])] for a in axes}
        first = {a: vals[a][0] for a in axes}
        # every point of small sweeps; one axis at a time (the others at their first value) beyond
        combos: Any = itertools.product(*(vals[a] for a in axes))
        if math.prod(len(v) for v in vals.values()) > 4096:
            combos = (tuple(x if b == a else first[b] for b in axes) for a in axes for x in vals[a])
        dt0 = None
        for combo in combos:
            point = dict(zip(axes, combo))
            dt = _evaluate(expr, self._env(point, p, self._pw(name, "parameters")),
                           f"{self._source}: {key}")
            if dt0 is None:
                dt0, point0 = dt, point
            elif not math.isclose(dt, dt0, rel_tol=1e-12, abs_tol=0.0):
                fmt = lambda pt: ", ".join(f"{a} = {v:g}" for a, v in pt.items())
                raise StudyError(
                    f"{self._source}: {key}: {expr!r} changes over the sweep of {self._pw(name)} "
                    f"({dt0:g} s at {fmt(point0)}, {dt:g} s at {fmt(point)}); all sweep points share "
                    "one time axis, so dt must not depend on a swept parameter (use a fixed dt, or "
                    "one protocol per dt)")

    # ------------------------------------------------------------------ sweep points
    def axes(self, part: str) -> list[tuple[str, list]]:
        """Sweep axes of a protocol: ``[(name, values)]`` (values in SI, or model names)."""
        p = self.parts[part]
        env0 = self._env({}, p, self._pw(part, "parameters"))
        out = []
        for axis, values in p.sweep.items():
            if axis == "model":
                out.append((axis, list(values)))
            else:
                out.append((axis, [_evaluate(v, env0, f"{self._source}: {self._pw(part, 'sweep')}.{axis}")
                                   for v in values]))
        return out

    def n_points(self, part: str) -> int:
        """Number of sweep points of a protocol (product of the axis lengths)."""
        return math.prod(len(v) for v in self.parts[part].sweep.values())

    def points(self, part: str) -> list[dict]:
        """All sweep points of a protocol (outer product of the axes, C order).

        Raises
        ------
        StudyError
            The list would not fit in memory (e.g. a 1000 x 1000 x 1000 sweep).
        """
        n = self.n_points(part)
        _check_memory(f"{self._source}: {self._pw(part, 'sweep')}", n * _BYTES_PER_POINT_DICT,
                      f"the list of {n:.4g} sweep points", "sweep fewer values")
        ax = self.axes(part)
        if not ax:
            return [{}]
        return [dict(zip([a for a, _ in ax], combo)) for combo in itertools.product(*[v for _, v in ax])]

    # ------------------------------------------------------------------ TOML
    def to_dict(self) -> dict:
        """Plain data, the form :meth:`to_toml` writes (raw values, units kept as written)."""
        d: dict[str, Any] = {"name": self.name}
        if self.description:
            d["description"] = self.description
        d["model"] = self.model
        d["blockers"] = copy.deepcopy(self.blockers)
        d.update(method=self.method, n_channels=int(self.n_channels), n_trials=int(self.n_trials),
                 dt=self.dt)
        if self.rng is not None:   # (TOML integers are int64: a larger seed is written in hex)
            d["rng"] = self.rng if self.rng < 2**63 else hex(self.rng)
        d.update(record=self.record, keep_trials=int(self.keep_trials), deterministic=self.deterministic)
        if self.parameters:
            d["parameters"] = dict(self.parameters)
        parts = {}
        for name, p in self.parts.items():
            pd: dict[str, Any] = {}
            for key in ("initial", "dt", "n_trials", "n_channels", "method"):
                v = getattr(p, key)
                if v is not None and not (key == "initial" and v == "equilibrium"):
                    pd[key] = v
            if p.analysis is not None:
                pd["analysis"] = dict(p.analysis)
            if p.parameters:
                pd["parameters"] = dict(p.parameters)
            if p.sweep:
                pd["sweep"] = dict(p.sweep)
            pd["segments"] = copy.deepcopy(p.segments)
            parts[name] = pd
        if self._single():
            pd = parts["main"]
            sweep = pd.pop("sweep", None)
            d["protocol"] = pd
            if sweep:
                d["sweep"] = sweep
        else:
            d["protocols"] = parts
        d["outputs"] = dict(self.outputs)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "study", base_dir: str = ".", *,
                  base: str | os.PathLike | None = None) -> "Study":
        """Inverse of :meth:`to_dict`; errors name the offending key (``source: key: ...``).
        ``base`` (or ``base_dir``, taken as given) is the folder of relative scheme paths, as
        in :class:`Study`."""
        if not isinstance(d, Mapping):
            raise StudyError(f"{source}: a study must be a table")
        bad = set(d) - set(_TOP_KEYS)
        if bad:
            raise StudyError(f"{source}: {sorted(bad)[0]}: unknown key; allowed top-level keys: {list(_TOP_KEYS)}")
        kw: dict[str, Any] = {k: d[k] for k in ("name", "description", "model", "blockers", "method",
                                                "n_channels", "n_trials", "dt", "rng", "record",
                                                "keep_trials", "deterministic", "parameters", "outputs")
                              if k in d}
        for key, kind in (("parameters", "table"), ("outputs", "table")):
            if key in kw and not isinstance(kw[key], dict):
                raise StudyError(f"{source}: {key}: must be a {kind}")
        if "blockers" in kw and not isinstance(kw["blockers"], (list, str, dict)):
            raise StudyError(f"{source}: blockers: must be a blocker name, an inline table "
                             "{ name = ... } or an array of these")
        if "protocol" in d and "protocols" in d:
            raise StudyError(f"{source}: [protocols]: give either [protocol] (one protocol, with [sweep]) "
                             "or [protocols.NAME] tables, not both")

        def part(pd: Any, where: str, sweep: Any = None) -> StudyPart:
            if not isinstance(pd, Mapping):
                raise StudyError(f"{source}: {where}: must be a table")
            badk = set(pd) - set(_PART_KEYS)
            if badk:
                raise StudyError(f"{source}: {where}.{sorted(badk)[0]}: unknown key; allowed: {list(_PART_KEYS)}")
            kwp = dict(pd)
            if sweep is not None:
                kwp["sweep"] = sweep
            for key in ("sweep", "parameters"):
                if key in kwp and not isinstance(kwp[key], Mapping):
                    raise StudyError(f"{source}: {where}.{key}: must be a table")
            if "segments" in kwp and not isinstance(kwp["segments"], list):
                raise StudyError(f"{source}: {where}.segments: must be an array of tables ([[...segments]])")
            return _make_part(kwp, source, lambda f: f"{where}.{f}" if f else where)

        if "protocol" in d:
            kw["parts"] = {"main": part(d["protocol"], "[protocol]", d.get("sweep", {}))}
        elif "protocols" in d:
            if "sweep" in d:
                raise StudyError(f"{source}: [sweep]: with [protocols.NAME] put each sweep in "
                                 "[protocols.NAME.sweep]")
            if not isinstance(d["protocols"], Mapping):
                raise StudyError(f"{source}: [protocols]: must be a table of named protocols")
            kw["parts"] = {k: part(v, f"[protocols.{k}]") for k, v in d["protocols"].items()}
        elif "sweep" in d:
            raise StudyError(f"{source}: [sweep]: a sweep needs a [protocol]")
        return cls(**kw, _source=source, _base_dir=base_dir, base=base,
                   _named_main="protocols" in d and list(d["protocols"]) == ["main"])

    def to_toml(self, path: str | os.PathLike | None = None) -> str:
        """TOML text of the study (written to ``path`` if given); :meth:`from_toml` reads it back
        to an equal Study (floats written with ``repr``)."""
        text = _dump_study(self.to_dict())
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_toml(cls, source: str | os.PathLike, *, base: str | os.PathLike | None = None) -> "Study":
        """Read a study from a TOML file path or a TOML string.  Errors start with
        ``FILE: key:`` (e.g. ``study.toml: [sweep].ketamine: ...``).

        Parameters
        ----------
        source : str or os.PathLike
            A path (any ``os.PathLike``, or a one-line string naming an existing file or ending
            in ``.toml``), else TOML text.
        base : str or os.PathLike, optional
            The folder against which relative scheme paths (``model = "mine.toml"``, a
            ``model`` sweep axis) are resolved.  Default: the folder of the study file; for
            TOML text, the current folder when the study is run -- give ``base`` for a study
            read from text whose scheme files sit elsewhere (e.g. next to where the text came
            from).

        Raises
        ------
        StudyError
            Invalid TOML, an invalid study, or a ``base`` that is not an existing folder.
        FileNotFoundError, IsADirectoryError, PermissionError
            The file cannot be read.
        """
        try:
            import tomllib
        except ImportError:  # pragma: no cover - Python < 3.11
            import tomli as tomllib  # type: ignore[no-redef]
        if isinstance(source, os.PathLike) or (isinstance(source, str) and "\n" not in source
                                                and (os.path.exists(source) or source.endswith(".toml"))):
            p = Path(source)
            if not p.exists():
                raise FileNotFoundError(f"study file {str(p)!r} not found")
            if p.is_dir():
                raise IsADirectoryError(f"study file {str(p)!r} is a folder, not a TOML file")
            try:
                text = p.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise StudyError(f"{p.name}: not a UTF-8 text (TOML) file") from None
            name, folder = p.name, str(p.resolve().parent)
        elif isinstance(source, str):
            text, name, folder = source, "study", "."
        else:
            raise TypeError("source must be a path or a TOML string")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise StudyError(f"{name}: not valid TOML: {e}") from None
        except RecursionError:
            raise StudyError(f"{name}: not valid TOML: arrays or tables nested too deeply") from None
        return cls.from_dict(data, source=name, base_dir=folder, base=base)

    def replace(self, **changes: Any) -> "Study":
        """A copy with top-level fields changed (validated again)."""
        d = {f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self)
             if f.name not in ("protocol", "sweep", "analysis", "initial")}
        d.update(changes)
        return Study(**d)

    def quick(self) -> "Study":
        """A reduced copy for smoke tests: at most 4 trials of 100 channels per point, the first
        and last value of each sweep axis."""
        s = self.replace(n_trials=min(self.n_trials, 4), n_channels=min(self.n_channels, 100),
                         keep_trials=min(self.keep_trials, 2), name=self.name + "_quick")
        for p in s.parts.values():
            p.sweep = {k: (v if len(v) <= 2 else [v[0], v[-1]]) for k, v in p.sweep.items()}
            for key in ("n_trials", "n_channels"):
                if getattr(p, key) is not None:
                    setattr(p, key, min(getattr(p, key), 4 if key == "n_trials" else 100))
        return s


# ---- TOML writer (tomllib reads; no writer in the standard library)
def _tv(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v)) if -2**63 <= v < 2**63 else json.dumps(str(int(v)))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return "nan"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return repr(f)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_tv(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{_tk(k)} = {_tv(x)}" for k, x in v.items()) + " }" if v else "{}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _tk(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k, ensure_ascii=False)


def _dump_study(d: dict) -> str:
    out = ["# ketacore study (ketacore run FILE).  Values: numbers in SI units, quantities such",
           "# as \"10 uM\" / \"30 s\" / \"-70 mV\", or expressions over [parameters] (\"$t_train * $frequency\").", ""]
    tables = ("parameters", "protocol", "sweep", "protocols", "outputs")
    for k, v in d.items():
        if k not in tables:
            out.append(f"{_tk(k)} = {_tv(v)}")

    def part(prefix: str, pd: dict) -> None:
        out.extend(["", f"[{prefix}]"])
        for k, v in pd.items():
            if k not in ("parameters", "sweep", "segments"):
                out.append(f"{_tk(k)} = {_tv(v)}")
        for sub in ("parameters", "sweep"):
            if sub in pd:
                out.extend(["", f"[{prefix}.{sub}]"] + [f"{_tk(k)} = {_tv(v)}" for k, v in pd[sub].items()])
        for seg in pd.get("segments", []):
            out.extend(["", f"[[{prefix}.segments]]"] + [f"{_tk(k)} = {_tv(v)}" for k, v in seg.items()])

    if "parameters" in d:
        out.extend(["", "[parameters]"] + [f"{_tk(k)} = {_tv(v)}" for k, v in d["parameters"].items()])
    if "protocol" in d:
        part("protocol", d["protocol"])
    if "sweep" in d:
        out.extend(["", "[sweep]"] + [f"{_tk(k)} = {_tv(v)}" for k, v in d["sweep"].items()])
    for name, pd in d.get("protocols", {}).items():
        part(f"protocols.{_tk(name)}", pd)
    out.extend(["", "[outputs]"] + [f"{_tk(k)} = {_tv(v)}" for k, v in d["outputs"].items()])
    return "\n".join(out) + "\n"


def default_study() -> Study:
    """The embedded default study (``ketacore run`` with no file): ketamine on erreger2005_2a."""
    from importlib import resources
    text = resources.files("ketacore.data").joinpath(DEFAULT_STUDY).read_text(encoding="utf-8")
    return Study.from_dict(_toml_loads(text), source=DEFAULT_STUDY)


def _toml_loads(text: str) -> dict:
    try:
        import tomllib
    except ImportError:  # pragma: no cover
        import tomli as tomllib  # type: ignore[no-redef]
    return tomllib.loads(text)


# ------------------------------------------------------------------------------------------
# Building a sweep point: scheme, protocol, windows
# ------------------------------------------------------------------------------------------
@dataclass
class _Segment:
    label: str | None
    t0: float
    t1: float
    train: tuple | None = None  # (n_pulses, period, width)


def _build_protocol(study: Study, part: str, env: Mapping[str, Any]):
    """Protocol and labelled segment windows for one sweep point."""
    from .protocol import Protocol, Step, pulse_train
    p = study.parts[part]
    pw = study._pw(part)
    steps: list = []
    segs: list[_Segment] = []
    t = 0.0
    for i, seg in enumerate(p.segments):
        where = f"{study._source}: {pw}.segments[{i}]"
        if not isinstance(seg, Mapping):
            raise StudyError(f"{where}: must be a table (a step or {{train = ...}})")
        label = seg.get("label")
        if label is not None and not isinstance(label, str):
            raise StudyError(f"{where}.label: must be a string")
        if "train" in seg:
            extra = set(seg) - {"train", "label"}
            if extra:
                raise StudyError(f"{where}.{sorted(extra)[0]}: a train segment takes only 'train' and 'label'")
            tr = seg["train"]
            if not isinstance(tr, Mapping):
                raise StudyError(f"{where}.train: must be a table")
            bad = set(tr) - set(_TRAIN_KEYS)
            if bad:
                raise StudyError(f"{where}.train.{sorted(bad)[0]}: unknown key; allowed: {list(_TRAIN_KEYS)}")
            for req in ("n_pulses", "frequency", "width"):
                if req not in tr:
                    raise StudyError(f"{where}.train.{req}: required")
            kw: dict[str, Any] = {}
            for key in ("n_pulses", "frequency", "width", "V", "temperature", "tail"):
                if key in tr:
                    kw[key] = _evaluate(tr[key], env, f"{where}.train.{key}")
            n = kw.pop("n_pulses")
            if n != round(n) or n < 1:
                raise StudyError(f"{where}.train.n_pulses: must evaluate to a positive integer, got {n}")
            # a train is built as 2 Steps per pulse: refuse before building it
            _check_memory(f"{where}.train.n_pulses", n * _BYTES_PER_PULSE,
                          f"a train of {n:.4g} pulses (about {_BYTES_PER_PULSE} bytes each)",
                          "use fewer pulses")
            for key in ("during", "between"):
                c = tr.get(key, {})
                if not isinstance(c, Mapping):
                    raise StudyError(f"{where}.train.{key}: must be a table of ligand = concentration")
                kw[key] = {k: _evaluate(v, env, f"{where}.train.{key}.{k}") for k, v in c.items()}
            for key in ("during", "between"):
                for k, c in kw[key].items():
                    _warn_implausible(f"{where}.train.{key}.{k}", c,
                                      lambda raw=tr[key][k]: _set_by(study, part, raw, env))
            try:
                with _V.quiet_units():
                    prot = pulse_train(int(round(n)), **kw)
            except (TypeError, ValueError) as e:
                raise StudyError(f"{where}.train: {e}") from None
            steps.append(prot)
            segs.append(_Segment(label, t, t + prot.duration, (int(round(n)), 1.0 / kw["frequency"], kw["width"])))
            t += prot.duration
            continue
        if "duration" not in seg:
            raise StudyError(f"{where}.duration: required (or give a train = {{...}})")
        kw = {}
        for k, v in seg.items():
            if k == "label":
                continue
            kw[k] = _evaluate(v, env, f"{where}.{k}")
        for k, c in kw.items():
            if k not in _STEP_DIMS:
                _warn_implausible(f"{where}.{k}", c, lambda raw=seg[k]: _set_by(study, part, raw, env))
        try:
            with _V.quiet_units():
                st = Step(**kw)
        except (TypeError, ValueError) as e:
            raise StudyError(f"{where}: {e}") from None
        steps.append(st)
        segs.append(_Segment(label, t, t + st.duration))
        t += st.duration
    return Protocol(steps), segs


def _warn_implausible(where: str, c: Any, origin: "Callable[[], str] | None" = None) -> None:
    """A :class:`~ketacore.UnitsWarning` for a ligand concentration above 100 mM, naming the
    study key and the study-file way to write µM or mM (the Step itself is built quietly, so
    the Python-worded warning does not repeat it).  ``origin()`` (called only when warning)
    says where a value written with parameters is set (:func:`_set_by`)."""
    if isinstance(c, (int, float)) and not isinstance(c, bool) and c <= _V.MAX_CONCENTRATION:
        if origin is not None and c > _V.PLAUSIBLE_CONCENTRATION:
            where += origin()
        _V.implausible_concentration(where, c, study=True)


def _set_by(study: "Study", part: str, raw: Any, env: Mapping[str, Any]) -> str:
    """``' (written "$ket", set by [sweep].ket[0])'`` for a value written with parameters --
    the key to change is where the number is set, not where it is used; ``''`` otherwise."""
    if not isinstance(raw, str):
        return ""
    names = list(dict.fromkeys(n for n, _ in (_names_in(raw) or ())))
    p = study.parts[part]
    defs = study._definitions(p, study._pw(part, "parameters"))
    axes = dict(study.axes(part)) if any(n in p.sweep for n in names) else {}
    where = []
    for n in names:
        if n in axes:
            idx = [i for i, v in enumerate(axes[n]) if v == env.get(n)]
            where.append(f"{study._pw(part, 'sweep')}.{n}" + (f"[{idx[0]}]" if idx else ""))
        elif n in defs and not n.startswith("_"):
            where.append(defs[n][1])
    if not where:
        return ""
    return f" (written {raw!r}, set by {', '.join(where)})"


def _check_memory(key: str, n_bytes: float, what: str, advice: str) -> None:
    """StudyError naming ``key`` if ``n_bytes`` would not fit in available memory (the test of
    :func:`ketacore._validate.check_memory`), with a message saying what needs the memory."""
    try:
        _V.check_memory(key, n_bytes)
    except ValueError:
        avail = _V.available_memory()
        raise StudyError(f"{key}: {what} needs about {n_bytes / 2**30:.3g} GiB of memory, more than "
                         f"80% of the {avail / 2**30:.3g} GiB available; {advice}") from None


#: Memory of one entry of Study.points() (a small dict in a list).
_BYTES_PER_POINT_DICT = 400
#: Memory of one sweep point in a run besides its arrays: the point dict, the _Point with its
#: cached scheme key, the analysis windows, the plan bookkeeping.
_BYTES_PER_POINT = 3000
#: Memory of one protocol step of a sweep point (Step object and compiled arrays).
_BYTES_PER_STEP = 750
#: Memory of one planned chunk (a tuple in the plan, a future, a results placeholder).
_BYTES_PER_CHUNK = 400

#: Memory per pulse of a train (two Step objects of ~0.5 kB, their compiled arrays and the
#: analysis window), used to refuse trains that cannot be built.
_BYTES_PER_PULSE = 1500

_SCHEMES: dict = {}


def _model_file(model: Any, base_dir: str) -> Path | None:
    """The scheme TOML file a model name stands for, or None (a built-in model, or no such file).
    Built-in names win over files of the same name, as in :func:`_resolve_model`."""
    from . import models
    if not isinstance(model, str) or model in models.available():
        return None
    path = Path(model)
    if not path.is_absolute():
        path = Path(base_dir) / path
    return path if path.suffix == ".toml" and path.exists() else None


def _resolve_model(model: str, base_dir: str, text: str | None = None):
    """The gating scheme of a model name: a built-in model, or the scheme file it names (parsed
    from ``text``, the file's content read once by the caller, when given)."""
    from . import models
    from .scheme import Scheme
    if model in models.available():
        return models.get(model)
    if text is not None:
        return Scheme.from_dict(_toml_loads(text))
    path = _model_file(model, base_dir)
    if path is not None:
        return Scheme.from_toml(path)
    raise ValueError(f"unknown model {model!r}: not a built-in model ({list(models.available())}) "
                     "nor an existing scheme .toml file")


def _check_model_name(study: Study, model: str, key: str) -> None:
    """Refuse a model name that reads as a scheme file path (``.toml``) but names no file,
    with the path looked for and the folder relative paths are resolved against."""
    from . import models
    if model in models.available() or not model.endswith(".toml"):
        return   # (a built-in model, or a name _resolve_model reports as unknown)
    base = study._base_dir
    path = Path(model) if Path(model).is_absolute() else Path(base) / model
    where = (f"the study's base folder {str(Path(base).resolve())!r} (the study file's folder, "
             "or base=)") if base != "." else (
        f"the current folder {str(Path.cwd())!r}: this study was built in Python or read from "
        "TOML text, so it has no folder of its own; give the folder of its files as base= "
        "(kc.Study.from_toml(text, base=FOLDER) or kc.Study(..., base=FOLDER))")
    raise StudyError(f"{study._source}: {key}: scheme file {model!r} not found: "
                     f"{str(path.absolute())!r} does not exist" +
                     ("" if Path(model).is_absolute() else f"; a relative path is resolved against {where}"))


def _read_inputs(study: Study) -> dict[str, str]:
    """The content of every file the study loads by path: ``{model name: scheme TOML text}`` for
    the ``model`` and the values of every ``model`` sweep axis that name a scheme file (blockers
    are library names; nothing else is read from files).  Read once per run: the workers build
    their schemes from these texts, and the output folder records them (its identity covers the
    files' content, not only their names).

    Raises
    ------
    StudyError
        A scheme file that cannot be read or is not UTF-8 text.
    """
    names = {study.model: "model"}
    for part, p in study.parts.items():
        axis = p.sweep.get("model")
        if isinstance(axis, list):
            for i, m in enumerate(axis):
                names.setdefault(m, f"{study._pw(part, 'sweep')}.model[{i}]")
    out: dict[str, str] = {}
    for m, key in names.items():
        if not isinstance(m, str):
            continue
        path = _model_file(m, study._base_dir)
        if path is None:
            _check_model_name(study, m, key)
            continue
        try:
            out[m] = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise StudyError(f"{study._source}: model: {m}: not a UTF-8 text (TOML) file") from None
        except OSError as e:
            raise StudyError(f"{study._source}: model: {e}") from None
    return out


def _resolve_blockers(study: Study, env: Mapping[str, Any]):
    from . import blockers as B
    out = []
    for i, b in enumerate(study.blockers):
        where = f"{study._source}: blockers[{i}]"
        try:
            if isinstance(b, str):
                out.append(B.get(b))
            else:
                changes = {}
                for k, v in b.items():
                    if k == "name":
                        continue
                    if k == "closed_route":   # (TOML has no null: "none" is Python's None)
                        changes[k] = None if v == "none" else v
                    elif k in ("mode", "site", "ligand", "citation", "doi", "notes") or isinstance(v, (dict, bool)):
                        changes[k] = v
                    elif k == "thermal_voltage" and v is None:
                        changes[k] = None
                    else:
                        changes[k] = _evaluate(v, env, f"{where}.{k}")
                out.append(B.get(b["name"]).replace(**changes) if changes else B.get(b["name"]))
        except StudyError:
            raise
        except (TypeError, ValueError) as e:
            hint = (' (in a study table: closed_route = "none")'
                    if "closed_route=None" in str(e) else "")
            raise StudyError(f"{where}: {e}{hint}") from None
    return out


def _scheme_for(study: Study, model: str, env: Mapping[str, Any]):
    # a scheme file's model is built from the text read at the start of the run (the study's
    # ``_inputs``, set by _Context), and cached by that text: an edited file is a new scheme
    text = getattr(study, "_inputs", {}).get(model)
    key = (model, study._base_dir, text, json.dumps(study.blockers, sort_keys=True, default=str),
           tuple(sorted((k, v) for k, v in env.items() if not isinstance(v, str))))
    hit = _SCHEMES.get(key)
    if hit is not None:
        return hit
    from .blockers import block
    try:
        gating = _resolve_model(model, study._base_dir, text)
    except (TypeError, ValueError, OSError) as e:   # OSError: an unreadable scheme file
        raise StudyError(f"{study._source}: model: {e}") from None
    bl = _resolve_blockers(study, env)
    try:
        scheme = block(gating, *bl) if bl else gating
    except (TypeError, ValueError) as e:
        raise StudyError(f"{study._source}: blockers: {e}") from None
    if len(_SCHEMES) > 32:
        _SCHEMES.clear()
    _SCHEMES[key] = (scheme, bl)
    return scheme, bl


@dataclass
class _Point:
    scheme: Any
    blockers: list
    protocol: Any
    segments: list
    dt: float
    n_samples: int
    n_channels: int
    n_trials: int
    method: str
    initial: Any
    analysis: dict | None
    env: dict
    drug: tuple = ()    # the drug's ligands (_drug_ligands): what the drug-free control of
    #                     use_dependence/dose_response removes; what trapping's occupancies count


def _check_initial_keys(study: Study, part: str, table: Mapping, scheme=None) -> None:
    """The one check of the keys of an ``initial`` conditions table: each is a condition -- V,
    temperature or a ligand concentration.  With ``scheme`` (a sweep point being built), a
    ligand of that scheme; without (a Study being built, whose model may still be a sweep
    axis), any name but the reserved ones (:data:`ketacore.scheme.RESERVED_NAMES`), which are
    never ligands.  (:func:`ketacore.solve.initial_distribution` then finds nothing to refuse.)"""
    where = f"{study._source}: {study._pw(part)}.initial"
    allowed = None if scheme is None else ["V", "temperature", *scheme.ligands]
    for k in table:
        if allowed is not None and k not in allowed:
            raise StudyError(f"{where}.{k}: not a condition of {scheme.name}; the conditions table "
                             f"takes {allowed}")
        if not isinstance(k, str) or (k in RESERVED_NAMES and k not in _CONDITION_DIMS):
            raise StudyError(f"{where}: {k!r} is not a condition; use V, temperature or ligand "
                             "concentrations (e.g. {glutamate = 0})")


def _initial_values(study: Study, part: str, env: Mapping[str, Any]) -> dict:
    """A protocol's ``initial`` conditions table with its values evaluated with ``env`` (SI);
    its keys are checked by :func:`_check_initial_keys`."""
    where = f"{study._source}: {study._pw(part)}.initial"
    raw = study.parts[part].initial
    out = {k: _evaluate(v, env, f"{where}.{k}") for k, v in raw.items()}
    for k, v in out.items():
        if k not in _CONDITION_DIMS:
            _warn_implausible(f"{where}.{k}", v, lambda r=raw[k]: _set_by(study, part, r, env))
    return out


def _point(study: Study, part: str, values: Mapping[str, Any]) -> _Point:
    p = study.parts[part]
    pw = study._pw(part)
    env = study._env({k: v for k, v in values.items() if k != "model"}, p, study._pw(part, "parameters"))
    model = values.get("model", study.model)
    scheme, bl = _scheme_for(study, model, env)
    prot, segs = _build_protocol(study, part, env)
    try:
        prot.compile(scheme)
    except ValueError as e:
        raise StudyError(f"{study._source}: {pw}.segments: {e}") from None
    dt = _evaluate(p.dt if p.dt is not None else study.dt, env, f"{study._source}: {pw}.dt" if p.dt is not None
                   else f"{study._source}: dt")
    initial = p.initial
    if isinstance(initial, dict):
        _check_initial_keys(study, part, initial, scheme)
        initial = _initial_values(study, part, env)
    elif initial is not None and initial != "equilibrium" and initial not in scheme.states:
        raise StudyError(f"{study._source}: {pw}.initial: unknown state {initial!r}; states: {list(scheme.states)}")
    if isinstance(initial, dict) or initial in (None, "equilibrium"):
        from .solve import initial_distribution
        try:   # the equilibrium under these conditions must exist (as simulate will need it)
            with _V.quiet_units():   # (warned above, by key)
                initial_distribution(scheme, initial, prot)
        except (TypeError, ValueError) as e:
            raise StudyError(f"{study._source}: {pw}.initial: {e}") from None
    try:  # the grid must be representable (Protocol.n_samples holds the one rule)
        prot.n_samples(dt)
    except ValueError as err:
        key = f"{pw}.dt" if p.dt is not None else "dt"
        raise StudyError(f"{study._source}: {key}: {err}") from None
    return _Point(scheme=scheme, blockers=bl, protocol=prot, segments=segs, dt=dt,
                  n_samples=prot.n_samples(dt),
                  n_channels=int(p.n_channels if p.n_channels is not None else study.n_channels),
                  n_trials=int(p.n_trials if p.n_trials is not None else study.n_trials),
                  method=p.method or study.method, initial=initial,
                  analysis=dict(p.analysis) if p.analysis else None, env=env,
                  drug=_drug_ligands(study, p))


def _control_protocol(pt: _Point):
    """The drug-free control of use_dependence and dose_response: the same protocol with the
    drug's ligands (``pt.drug``, :func:`_drug_ligands`) removed; every other ligand -- a
    background blocker such as Mg2+, the agonist -- keeps its value."""
    from .protocol import Protocol, Step
    ligs = set(pt.drug)

    def strip(st):
        return Step(st.duration, V=st.V, temperature=st.temperature,
                    **{k: v for k, v in st.concentrations.items() if k not in ligs})
    rest = pt.protocol.rest
    # the control keeps the rest conditions (e.g. a train's between-pulse conditions), drug-free
    return Protocol([strip(st) for st in pt.protocol.steps],
                    rest=None if rest is None else strip(rest))


# ------------------------------------------------------------------------------------------
# Analyses: functions of an occupancy trace (fractions), applied alike to the master equation,
# the Monte Carlo mean and every single trial
# ------------------------------------------------------------------------------------------
def _window(pt: _Point, t0: float, t1: float, where: str, after_start: bool = False) -> slice:
    """The samples in [t0, t1].  ``after_start``: the window opens at a segment's start, whose
    sample is the state *before* the step (e.g. the end of the wash, no current), so it must
    also hold a later one -- a window of that sample alone measured nothing and left the
    analysis NaN with no word (helper-103's audit: trapping ``early = 5 ms`` at ``dt = 20 ms``)."""
    i0 = int(math.ceil(t0 / pt.dt - 1e-7))
    i1 = min(int(math.floor(t1 / pt.dt - 1e-7)) + 1, pt.n_samples)
    if i1 <= i0:
        raise StudyError(f"{where}: window [{t0:g}, {t1:g}] s holds no sample at dt = {pt.dt:g} s")
    if after_start and i1 == i0 + 1 and abs(i0 * pt.dt - t0) <= 1e-7 * pt.dt:
        raise StudyError(f"{where}: window [{t0:g}, {t1:g}] s holds only the sample at the "
                         f"segment's start, t = {t0:g} s (the state before the step) at dt = "
                         f"{pt.dt:g} s, so it measures nothing; make it at least 2 dt = "
                         f"{2 * pt.dt:g} s long, or dt smaller")
    return slice(i0, i1)


#: Keys each analysis kind takes (``analysis = {kind = ..., ...}``); defaults: trapping
#: ``window = 1 s``, ``early = 0.5 s``; dose_response ``window`` = the whole protocol.
_ANALYSIS_KEYS = {"trapping": ("kind", "window", "early", "drug"),
                  "use_dependence": ("kind", "train", "drug"),
                  "dose_response": ("kind", "concentration", "voltage", "window", "drug")}
_TRAPPING_DEFAULTS = {"window": 1.0, "early": 0.5}


def _check_analysis(study: Study, part: str, a: Any, segs: list, env: Mapping[str, Any],
                    need_segments: bool = True) -> dict[str, Any]:
    """Check a protocol's analysis against its segments at one sweep point, without solving:
    its keys, the segments it needs (labels, the train) and that every window fits inside the
    segment (or protocol) it measures.  The one place these rules live: :class:`_Analysis`
    builds its windows from what this returns.

    ``need_segments=False`` (a Study being built, which may still be incomplete): a missing
    label or train is left to run_study, which refuses it before it writes anything.

    Returns
    -------
    dict
        What the analysis measures: trapping ``{"window", "early"}`` (s) and the segments
        ``"control", "block", "wash", "recovery"``; use_dependence ``{"train"}`` (the train
        segment); dose_response ``{"window"}`` (s, or None: the whole protocol).  A segment not
        found with ``need_segments=False`` is None.  Empty without an analysis.
    """
    if not isinstance(a, dict) or a.get("kind") not in ANALYSES:
        return {}   # (no analysis; a wrong kind is reported by Study._check_part)
    kind = a["kind"]
    where = f"{study._source}: {study._pw(part)}.analysis"
    bad = set(a) - set(_ANALYSIS_KEYS[kind])
    if bad:
        raise StudyError(f"{where}.{sorted(map(str, bad))[0]}: unknown key for kind = {kind!r}; "
                         f"allowed: {list(_ANALYSIS_KEYS[kind])}")

    def seg(label: str) -> "_Segment | None":
        for s in segs:
            if s.label == label:
                return s
        if not need_segments:
            return None
        raise StudyError(f"{where}: this analysis needs a segment with label = {label!r}; labels: "
                         f"{[s.label for s in segs if s.label]}")

    def fits(key: str, value: float, t0: float, t1: float, what: str) -> None:
        if not value > 0:
            raise StudyError(f"{where}.{key}: must be > 0, got {a.get(key)!r}")
        if value > (t1 - t0) * (1 + 1e-9):
            given = f"{a[key]!r}" if key in a else f"the default {value:g} s"
            raise StudyError(f"{where}.{key}: {given} does not fit in {what}, which lasts "
                             f"{t1 - t0:g} s; give a shorter {key} (or a longer segment)")

    if kind == "trapping":
        found: dict[str, Any] = {lab: seg(lab) for lab in ("control", "block", "wash", "recovery")}
        vals = {k: _evaluate(a.get(k, d), env, f"{where}.{k}") for k, d in _TRAPPING_DEFAULTS.items()}
        for key, lab in (("window", "control"), ("window", "block"), ("early", "control"),
                         ("early", "recovery")):
            s = found[lab]
            if s is not None:
                fits(key, vals[key], s.t0, s.t1, f"segment {s.label!r}")
        return {**found, **vals}
    if kind == "use_dependence":
        lab = a.get("train")
        if lab is not None and not isinstance(lab, str):
            raise StudyError(f"{where}.train: must be the label of a train segment, got {lab!r}")
        train = next((s for s in segs if s.train is not None and (lab is None or s.label == lab)), None)
        if need_segments and train is None:
            trains = [s.label for s in segs if s.train is not None]
            raise StudyError(f"{where}: needs a train segment" + (f" labelled {lab!r}" if lab else "")
                             + f"; train segments: {trains}")
        return {"train": train}
    window = None
    if a.get("window") is not None:   # dose_response
        T = segs[-1].t1 if segs else 0.0
        window = _evaluate(a["window"], env, f"{where}.window")
        fits("window", window, 0.0, T, f"the protocol {part!r}")
    return {"window": window}


def _drug_in_wash(study: Study, part: str, pt: _Point) -> set:
    """The drug ligands a trapping protocol's 'wash' segment applies (> 0) at sweep point
    ``pt`` and its 'control' does not (a ligand in every segment is a background, e.g. Mg2+
    named as the drug to count its occupancy: not warned about); empty for other analyses or
    a drug-free wash.  The drug is ``pt.drug`` (else every blocker ligand)."""
    if (pt.analysis or {}).get("kind") != "trapping":
        return set()

    def applied(label: str) -> set:
        sg = next((x for x in pt.segments if x.label == label), None)
        if sg is None:
            return set()
        idx = np.unique(pt.protocol.step_index_at(np.linspace(sg.t0, sg.t1, 64, endpoint=False), pt.dt))
        steps = pt.protocol.steps
        return {lig for i in idx for lig, v in steps[i].concentrations.items() if v > 0}
    drug = set(pt.drug or tuple(bl.ligand for bl in pt.blockers))
    return (applied("wash") - applied("control")) & drug


class _Analysis:
    """Precomputed windows for one sweep point; ``__call__(occ)`` → dict of scalars.  The
    segments and option values come from :func:`_check_analysis` (which refuses what does not
    fit)."""

    def __init__(self, study: Study, part: str, pt: _Point, det_control: np.ndarray | None) -> None:
        a = pt.analysis or {}
        self.kind = a.get("kind")
        self.g = np.asarray(pt.scheme.conductance, dtype=float)
        self.gmax = float(self.g.max()) if self.g.max() > 0 else 1.0
        where = f"{study._source}: {study._pw(part)}.analysis"
        # the blocked states: those carrying a blocker; trapping counts only the drug's (a state
        # carrying a drug tag, whatever else is bound: a Mg2+ background is not the drug)
        self.blocked = np.array([any(f"·{b.name}" in s for b in pt.blockers) for s in pt.scheme.states])
        self.drug_only: tuple | None = None   # (drug ligands, other blocker ligands) if it differs
        if self.kind == "trapping" and pt.drug:
            tags = {t for b in pt.blockers if b.ligand in pt.drug for t in (b.name, f"{b.name}_s")}
            drug = np.array([bool(tags.intersection(s.split("·")[1:])) for s in pt.scheme.states])
            if not np.array_equal(drug, self.blocked):
                self.blocked = drug
                self.drug_only = (tuple(pt.drug),
                                  tuple(b.ligand for b in pt.blockers if b.ligand not in pt.drug))
        found = _check_analysis(study, part, pt.analysis, pt.segments, pt.env)
        if self.kind == "trapping":
            window, early = found["window"], found["early"]
            self.window, self.early = window, early
            c, b, w, r = (found[lab] for lab in ("control", "block", "wash", "recovery"))
            self.ctl_ss = _window(pt, c.t1 - window, c.t1, f"{where}.window")
            self.blk_ss = _window(pt, b.t1 - window, b.t1, f"{where}.window")
            self.ctl_early = _window(pt, c.t0, c.t0 + early, f"{where}.early", after_start=True)
            self.rec_early = _window(pt, r.t0, r.t0 + early, f"{where}.early", after_start=True)
            self.i_block_end = min(int(round(b.t1 / pt.dt)), pt.n_samples - 1)
            self.i_wash_end = min(int(round(w.t1 / pt.dt)), pt.n_samples - 1)
        elif self.kind == "use_dependence":
            s = found["train"]
            n, period, _ = s.train
            self.pulses = [_window(pt, s.t0 + k * period, s.t0 + (k + 1) * period - 0.5 * pt.dt,
                                   f"{where} (pulse {k})") for k in range(n)]
            self.n_pulses = n
            # (det_control None: windows and checks only, as run_study does before any output)
            self.q_ctl = self._charges(det_control) if det_control is not None else None
        elif self.kind == "dose_response":
            if found["window"] is None:
                self.win = slice(0, pt.n_samples)
            else:
                T = pt.protocol.duration
                self.win = _window(pt, T - found["window"], T, f"{where}.window")
            self.ctl = (float(np.mean(det_control[self.win] @ self.g)) / self.gmax
                        if det_control is not None else math.nan)
            if det_control is not None and not self.ctl > 0:
                # (the experiments API raises here; a sweep may hold such points on purpose,
                # e.g. glutamate = 0, so a study warns once and leaves NaN there)
                warnings.warn(f"{where}: dose_response: the drug-free control carries no "
                              "current over the window at some sweep point(s) (no agonist, or "
                              "every channel shut), so there is nothing to block and "
                              "response/ic50 are NaN there", RuntimeWarning, stacklevel=2)

    def _x(self, occ: np.ndarray) -> np.ndarray:
        return occ @ self.g / self.gmax     # fraction of maximal conductance (= Po, one level)

    def _charges(self, occ: np.ndarray) -> np.ndarray:
        x = self._x(occ)
        return np.array([float(np.sum(x[w])) for w in self.pulses])

    def __call__(self, occ: np.ndarray) -> dict[str, Any]:
        if self.kind == "trapping":
            x = self._x(occ)
            c_ss, b_ss = float(np.mean(x[self.ctl_ss])), float(np.mean(x[self.blk_ss]))
            c_e, r_e = float(np.mean(x[self.ctl_early])), float(np.mean(x[self.rec_early]))
            block = 1.0 - b_ss / c_ss if c_ss > 0 else math.nan
            b_end = float(occ[self.i_block_end, self.blocked].sum())
            b_wash = float(occ[self.i_wash_end, self.blocked].sum())
            return {"block": block,
                    # (no channel carrying the drug at the end of block -- ketamine = 0 in a Mg2+
                    # background -- leaves a ratio of residues: NaN)
                    "trapped": ((1.0 - r_e / c_e) / block if c_e > 0 and block > 0 and b_end > 0
                                else math.nan),
                    "blocked_end_block": b_end, "blocked_end_wash": b_wash,
                    "trapped_occupancy": b_wash / b_end if b_end > 0 else math.nan}
        if self.kind == "use_dependence":
            q = self._charges(occ)
            with np.errstate(divide="ignore", invalid="ignore"):
                by = 1.0 - q / self.q_ctl
            return {"block_last": float(by[-1]), "block_total": 1.0 - float(q.sum() / self.q_ctl.sum()),
                    "_block_by_pulse": by}
        if self.kind == "dose_response":
            r = float(np.mean(self._x(occ[self.win]))) / self.ctl if self.ctl > 0 else math.nan
            return {"response": r}
        return {}


_ANALYSIS_DOC = {
    "block": ("1", "steady-state block: 1 - <I> over the last `window` of 'block' / same of 'control'"),
    "trapped": ("1", "trapped fraction, study definition (early-window means): (1 - <I> over the first "
                     "`early` of 'recovery' / <I> over the first `early` of 'control') / block"),
    "blocked_end_block": ("1", "fraction of channels carrying a blocker at the end of 'block'"),
    "blocked_end_wash": ("1", "fraction of channels carrying a blocker at the end of 'wash'"),
    "trapped_occupancy": ("1", "trapped fraction, occupancy definition: blocked_end_wash / blocked_end_block"),
    "block_last": ("1", "use-dependent block of the charge of the last pulse (vs the drug-free control)"),
    "block_total": ("1", "block of the total charge of the train (vs the drug-free control)"),
    "response": ("1", "mean current relative to the drug-free control"),
}


def _trapped_definition(window: str, early: str) -> str:
    """The ``definition`` attribute of the study's ``trapped_*`` variables (and the CLI footnote).

    Parameters
    ----------
    window, early : str
        The trapping analysis options as text (e.g. ``"1 s"``, ``"0.1 s"``).
    """
    return (f"trapped = (1 - I_rec/I_ctl) / block, where I_rec and I_ctl are the mean currents over "
            f"the first {early} of the 'recovery' and of the 'control' segments of this protocol "
            f"(analysis option early) and block = 1 - (mean current over the last {window} of 'block') / "
            f"(same over the last {window} of 'control') (option window).  Window means, not peaks: "
            "blocker that escapes during the early window counts as not trapped, so this is usually "
            "lower than the peak-current definition of ketacore.experiments.trapping(...).trapped_current "
            "((1 - I_first/I_ctl)/block, each first re-application response at its own peak, drug vs "
            "an identical drug-free run; the value on the validation page).  The occupancy "
            "definition is trapped_occupancy (experiments.trapping(...).trapped_occupancy).")


#: Names the assembled Dataset of a protocol uses for its own data variables, coordinates and
#: dimensions (any analysis).  A sweep axis with one of these names gets the dimension
#: ``sweep_<name>`` instead (see :func:`sweep_dimensions`).
DATASET_NAMES = frozenset(
    {"sum_counts", "sum_sq_counts", "open_probability_mc", "current_mc_mean", "current_mc_sd",
     "current_trials", "V", "n_samples", "occupancy_det", "open_probability_det", "current_det",
     "counts", "time", "state", "trial", "kept_trial", "pulse", "block_by_pulse_det", "scheme_index",
     "blockers_index", "block_by_pulse_mc", "ic50_det", "ic50_mc", "hill_det", "hill_mc",
     "ic50_extrapolated_det", "ic50_extrapolated_mc", "ic50_mc_se", "hill_mc_se", "z_delta_mc_se",
     "kd0_mc_se", "V_window", "temperature_window"}
    | {f"{m}_{src}" for src in ("det", "mc") for m in (
        "z_delta", "kd0", "woodhull_rms", "woodhull_voltages", "woodhull_vmin", "woodhull_vmax",
        "woodhull_temperature", "woodhull_why")}
    | {m + suf for m in _ANALYSIS_DOC for suf in ("_det", "_mc", "_trials", "_mc_sem")})


def sweep_dimensions(axes: list[str]) -> dict[str, str]:
    """Dimension (and coordinate) name of each sweep axis in the results Dataset.

    An axis keeps its name unless the Dataset already uses that name (:data:`DATASET_NAMES`:
    e.g. ``V``, the voltage trace, or ``time``); such an axis becomes ``sweep_<name>``
    (``sweep_V``), prefixed again if that is taken too.  The coordinate's ``parameter``
    attribute holds the study's name in either case.

    Parameters
    ----------
    axes : list of str
        Sweep axis names of one protocol, in order (parameter names or ``"model"``).

    Returns
    -------
    dict of str to str
        Axis name → dimension name.
    """
    taken = set(DATASET_NAMES) | set(axes)
    out = {}
    for a in axes:
        if a in DATASET_NAMES:
            d = f"sweep_{a}"
            while d in taken:
                d = f"sweep_{d}"
            taken.add(d)
            out[a] = d
        else:
            out[a] = a
    return out


# ------------------------------------------------------------------------------------------
# Workers
# ------------------------------------------------------------------------------------------
_CTX: dict = {}
_CTX_LOCK = threading.Lock()


class _Context:
    """A parsed study in a worker (cached per process by spec text and input files' content).

    ``inputs``: the content of the files the study loads (:func:`_read_inputs`) as read by the
    calling process, so that every worker builds the same schemes; None reads them here."""

    def __init__(self, spec_text: str, base_dir: str, source: str,
                 inputs: Mapping[str, str] | None = None) -> None:
        self.study = Study.from_dict(_toml_loads(spec_text), source=source, base_dir=base_dir)
        self.inputs = dict(_read_inputs(self.study) if inputs is None else inputs)
        self.study._inputs = self.inputs   # read by _scheme_for
        self.entropy = self.study._entropy()
        self._sweeps: dict = {}     # part -> list of sweep points (built once, not per point)
        self._bare: dict = {}       # (part, index) -> _Point
        self._points: dict = {}     # (part, index) -> (_Point, _Analysis)
        self._lock = threading.RLock()

    def sweep(self, part: str) -> list[dict]:
        with self._lock:
            hit = self._sweeps.get(part)
            if hit is None:
                hit = self._sweeps[part] = self.study.points(part)
            return hit

    def bare_point(self, part: str, index: int) -> _Point:
        """The sweep point without its analysis (no solve: cheap; sizes and checks only)."""
        with self._lock:
            hit = self._bare.get((part, index))
            if hit is None:
                hit = self._bare[(part, index)] = _point(self.study, part, self.sweep(part)[index])
            return hit

    def point(self, part: str, index: int):
        with self._lock:
            hit = self._points.get((part, index))
            if hit is None:
                pt = self.bare_point(part, index)
                ctl = None
                if pt.analysis and pt.analysis.get("kind") in ("use_dependence", "dose_response"):
                    from .solve import solve
                    ctl = solve(pt.scheme, _control_protocol(pt), pt.dt,
                                initial=_control_initial(pt)).occupancy
                hit = (pt, _Analysis(self.study, part, pt, ctl))
                self._points[(part, index)] = hit
            return hit


def _control_initial(pt: _Point):
    """The initial condition of the drug-free control (:func:`_control_protocol`)."""
    if pt.initial is None or pt.initial == "equilibrium":
        return "equilibrium"  # at rest under the control protocol's rest conditions (its
        # drug-free rest if it has one, e.g. a leading train's between-pulse conditions, else
        # its first step) -- as the main run, without the default start's warnings
    # the control is drug-free from the start: a conditions table loses the drug's ligands
    # (as the control's steps and rest do), a state blocked by the drug loses the drug's tags
    # ("O·ket" -> "O"; a background blocker's "O·mg" stays, as Mg2+ stays in the control)
    if isinstance(pt.initial, dict):
        return {k: v for k, v in pt.initial.items() if k not in pt.drug}
    if isinstance(pt.initial, str):
        tags = {t for b in pt.blockers if b.ligand in pt.drug for t in (b.name, f"{b.name}_s")}
        parts = pt.initial.split("·")
        free = "·".join(parts[:1] + [t for t in parts[1:] if t not in tags])
        if free != pt.initial and free in pt.scheme.states:
            return free
    return pt.initial


def _inputs_key(inputs: Mapping[str, str] | None) -> tuple | None:
    """``inputs`` as a hashable, picklable value (what run_study sends to the workers)."""
    return None if inputs is None else tuple(sorted(dict(inputs).items()))


def _context(spec_text: str, base_dir: str, source: str,
             inputs: "Mapping[str, str] | tuple | None" = None) -> _Context:
    inputs = _inputs_key(dict(inputs) if inputs is not None else None)
    key = (spec_text, base_dir, inputs)
    with _CTX_LOCK:
        ctx = _CTX.get(key)
        if ctx is None:
            if len(_CTX) > 4:
                _CTX.clear()
            ctx = _CTX[key] = _Context(spec_text, base_dir, source,
                                       None if inputs is None else dict(inputs))
    return ctx


def _levels(scheme) -> tuple[np.ndarray, list[np.ndarray]]:
    g = np.asarray(scheme.conductance, dtype=float)
    lv = np.array(sorted(set(g[g > 0].tolist())), dtype=float)
    return lv, [g == v for v in lv]


def _run_chunk(spec_text: str, base_dir: str, source: str, part: str, point: int, start: int,
               stop: int, n_threads: int = 1, inputs: tuple | None = None) -> dict:
    """Simulate trials ``[start, stop)`` of one sweep point and reduce them exactly.

    Returns integer sums over the trials (``sum``, ``sumsq``: (S, K); ``cross``: (S, L, L) over
    conductance levels), the per-trial analysis values, the kept trials' currents and (with
    ``record="counts"``) the counts.  Depends only on (spec, inputs, point, start, stop);
    ``inputs`` holds the scheme files' content as read by run_study (None: read them here).
    No :class:`~ketacore.UnitsWarning` (run_study warned when it read the study; a worker
    thread or process would repeat it once per chunk).
    """
    with _V.quiet_units():
        return _run_chunk_quiet(spec_text, base_dir, source, part, point, start, stop, n_threads,
                                inputs)


def _run_chunk_quiet(spec_text: str, base_dir: str, source: str, part: str, point: int,
                     start: int, stop: int, n_threads: int, inputs: tuple | None) -> dict:
    from .simulate import simulate
    ctx = _context(spec_text, base_dir, source, inputs)
    study = ctx.study
    pt, analysis = ctx.point(part, point)
    res = simulate(pt.scheme, pt.protocol, pt.dt, pt.n_channels, method=pt.method, rng=ctx.entropy,
                   n_threads=n_threads, record="counts", initial=pt.initial, trials=range(start, stop))
    c = res.counts
    n = c.shape[0]
    c64 = c.astype(np.int64)
    out: dict[str, Any] = {"start": np.int64(start), "stop": np.int64(stop), "method": res.method,
                           "sum": c64.sum(axis=0), "sumsq": np.einsum("tsk,tsk->sk", c64, c64)}
    lv, masks = _levels(pt.scheme)
    nl = np.stack([c64[..., m].sum(axis=-1) for m in masks], axis=-1) if len(lv) else \
        np.zeros(c.shape[:2] + (0,), np.int64)
    out["cross"] = np.einsum("tsl,tsm->slm", nl, nl)
    N = float(pt.n_channels)
    per: dict[str, list] = {}
    for i in range(n):
        for k, v in analysis(c[i] / N).items():
            if not k.startswith("_"):
                per.setdefault(k, []).append(v)
    for k, v in per.items():
        out["trial_" + k] = np.asarray(v, dtype=float)
    keep = min(study.keep_trials, pt.n_trials)
    if start < keep:
        drive = res.V - pt.scheme.e_rev
        g = np.asarray(pt.scheme.conductance, dtype=float)
        rows = range(0, min(stop, keep) - start)
        out["kept_current"] = np.stack([(c[i] @ g) * drive for i in rows])
    if study.record == "counts":
        out["counts"] = c
    return out


# ------------------------------------------------------------------------------------------
# Output folder, chunk files
# ------------------------------------------------------------------------------------------
def _chunk_dir(out: Path, part: str) -> Path:
    return out / "chunks" / part


def _chunk_path(out: Path, part: str, point: int, start: int, stop: int) -> Path:
    return _chunk_dir(out, part) / f"p{point:05d}_t{start:09d}-{stop:09d}.npz"


_CHUNK_RE = re.compile(r"^p(\d+)_t(\d+)-(\d+)\.npz$")


def _done_ranges(out: Path, part: str) -> dict[int, list[tuple[int, int]]]:
    d = _chunk_dir(out, part)
    done: dict[int, list] = {}
    if d.exists():
        for f in sorted(d.iterdir()):
            m = _CHUNK_RE.match(f.name)
            if m:
                done.setdefault(int(m.group(1)), []).append((int(m.group(2)), int(m.group(3))))
    return done


def _save_chunk(out: Path, part: str, point: int, data: dict) -> None:
    path = _chunk_path(out, part, point, int(data["start"]), int(data["stop"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}_{threading.get_ident()}")
    arrays = {k: (np.asarray(v) if k != "method" else np.asarray(str(v))) for k, v in data.items()}
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    os.replace(tmp, path)


def _load_chunk(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _cover(n: int, done: list[tuple[int, int]]) -> tuple[list, list]:
    """``(used, gaps)``: a partition of the trials ``[0, n)`` into finished chunk ranges
    ``done`` (those within ``[0, n)``) and the ranges still to run, walking from 0: where a
    finished chunk starts, the one reaching farthest is used; elsewhere a gap runs up to the next
    chunk start.  The chunks of a folder whose ``n_trials`` was raised (or lowered, or both in
    turn) may overlap; this picks a set that covers each trial once, and the assembly
    (:func:`_sorted_chunks`) picks the same."""
    import bisect
    reach: dict[int, int] = {}
    for a, b in done:
        a, b = int(a), int(b)
        if 0 <= a < b <= n:
            reach[a] = max(reach.get(a, b), b)
    starts = sorted(reach)
    used, gaps = [], []
    at = 0
    while at < n:
        if at in reach:
            used.append((at, reach[at]))
            at = reach[at]
        else:
            k = bisect.bisect_right(starts, at)
            nxt = starts[k] if k < len(starts) else n
            gaps.append((at, nxt))
            at = nxt
    return used, gaps


def _gaps(n: int, done: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """Trial ranges of [0, n) not covered by ``done``, cut into pieces of at most ``size``
    (an integer >= 1).  Works on the ranges, not on a per-trial mask, so its memory does not grow
    with ``n``."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"chunk size must be an integer >= 1, got {size!r}")
    size = int(size)
    out = []
    i = 0
    clipped = ((max(0, a), min(b, n)) for a, b in done)
    for a, b in sorted((a, b) for a, b in clipped if a < b):  # clip first, then drop empties
        if a > i:
            out.extend((j, min(j + size, a)) for j in range(i, a, size))
        i = max(i, b)
    if i < n:
        out.extend((j, min(j + size, n)) for j in range(i, n, size))
    return out


#: File of an output folder recording the content of the files the study loads by path
#: (:func:`_read_inputs`); with ``study.toml`` it is the folder's identity.  Written only for
#: studies that load files.
INPUTS_FILE = "inputs.json"


def _inputs_text(inputs: Mapping[str, str], base_dir: str) -> str:
    """The ``inputs.json`` record of ``inputs`` (deterministic text)."""
    rec = {"about": "Content of the scheme files this study loads (model, model sweep axis), as "
                    "read when the folder was created.  Part of the folder's identity: resuming "
                    "with a file whose content differs is refused.",
           "models": {m: {"path": str(_model_file(m, base_dir) or m), "text": t}
                      for m, t in sorted(inputs.items())}}
    return json.dumps(rec, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def _toml_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Key paths (``transitions[0].k0``) at which two parsed TOML documents differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b or a[k] != b[k]:
                sub = f"{prefix}.{k}" if prefix else str(k)
                out += _toml_diff(a[k], b[k], sub) if k in a and k in b else [sub]
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) if x != y
                for d in _toml_diff(x, y, f"{prefix}[{i}]")]
    return [prefix or "(the whole file)"]


def _inputs_diff(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """What differs between two :func:`_read_inputs` records, one entry per file.  Files are
    compared by their parsed TOML content (comments and layout do not matter)."""
    out = []
    for m in sorted(set(old) | set(new)):
        if m not in old or m not in new:
            out.append(f"model file {m!r} ({'not used before' if m not in old else 'no longer a file'})")
            continue
        if old[m] == new[m]:
            continue
        try:
            a, b = _toml_loads(old[m]), _toml_loads(new[m])
        except ValueError:
            out.append(f"model file {m!r} (content changed)")
            continue
        if a != b:
            keys = _toml_diff(a, b)
            more = f", ... ({len(keys)} values)" if len(keys) > 5 else ""
            out.append(f"model file {m!r} (content changed: {', '.join(keys[:5])}{more})")
    return out


#: Top-level study keys that are not part of a folder's identity: they cannot change any trial's
#: result, so resuming with them changed is allowed (the folder's study.toml is updated).
#: ``n_trials`` only says how many trials there are (trial i's stream depends on the entropy and
#: i alone): raising it reuses the finished trials and runs the new ones, lowering it uses the
#: first n_trials; the results equal a fresh run with that n_trials, byte for byte.
_NOT_IDENTITY = ("description", "outputs", "n_trials")


def _without_part_trials(d: dict) -> dict:
    """``d`` without the ``n_trials`` of its protocol tables (``[protocol]``,
    ``[protocols.NAME]``), for the folder identity."""
    d = dict(d)
    if isinstance(d.get("protocol"), dict):
        d["protocol"] = {k: v for k, v in d["protocol"].items() if k != "n_trials"}
    if isinstance(d.get("protocols"), dict):
        d["protocols"] = {name: ({k: v for k, v in t.items() if k != "n_trials"} if isinstance(t, dict) else t)
                          for name, t in d["protocols"].items()}
    return d


def _one_spelling(d: dict) -> dict:
    """A study dict with a lone ``[protocols.main]`` written as ``[protocol]`` + ``[sweep]``
    (the folder identity compares studies, not spellings)."""
    pr = d.get("protocols")
    if "protocol" in d or not isinstance(pr, dict) or list(pr) != ["main"] or not isinstance(pr["main"], dict):
        return d
    d = dict(d)
    main = dict(d.pop("protocols")["main"])
    sweep = main.pop("sweep", None)
    d["protocol"] = main
    if sweep:
        d["sweep"] = sweep
    return d


def _prepare_output(out: Path, spec_text: str, user_rng_given: bool,
                    inputs: Mapping[str, str] | None = None, base_dir: str = ".") -> str:
    """Create/check the output folder.  Returns the spec text to use (the one on disk when the
    user gave no rng and the folder already holds this study).

    The folder's identity is ``study.toml`` and, for a study that loads scheme files,
    ``inputs.json`` (the files' content, :func:`_read_inputs`): a folder whose study or whose
    files differ is refused with :class:`StudyConflictError` before anything in it is touched.
    """
    inputs = dict(inputs or {})
    spec_file = out / "study.toml"
    if spec_file.exists():
        disk = spec_file.read_text(encoding="utf-8")
        if disk == spec_text:
            _check_inputs(out, inputs)
            return disk
        # ([protocol] + [sweep] and [protocols.main] with its sweep are one study)
        a, b = _one_spelling(_toml_loads(disk)), _one_spelling(_toml_loads(spec_text))
        if not user_rng_given and "rng" in a:
            b["rng"] = a["rng"]
        # (a protocol's own n_trials is no more part of the identity than the top-level one)
        a_id, b_id = _without_part_trials(a), _without_part_trials(b)
        # the identity: everything but the keys that cannot change the computed results
        diff = sorted(k for k in set(a_id) | set(b_id)
                      if k not in _NOT_IDENTITY and a_id.get(k) != b_id.get(k))
        if diff:
            raise StudyConflictError(
                f"{out} already holds a different study (differs in: {', '.join(diff)}); "
                f"nothing was overwritten.  Use another output folder, or delete {out} to "
                "start again.")
        _check_inputs(out, inputs)
        if a == b or _dump_study(b) == disk:
            return disk
        # only description / [outputs] changed: the folder's study.toml takes the new ones
        new_text = _dump_study(b)
        tmp = spec_file.with_name("study.toml.tmp")
        tmp.write_text(new_text, encoding="utf-8")
        os.replace(tmp, spec_file)
        return new_text
    if out.exists() and any(out.iterdir()):
        raise StudyConflictError(f"{out} exists and is not a ketacore study folder (no study.toml); "
                                 "nothing was overwritten.  Choose an empty or new folder.")
    out.mkdir(parents=True, exist_ok=True)
    if inputs:   # before study.toml, which marks a study folder
        tmp = out / (INPUTS_FILE + ".tmp")
        tmp.write_text(_inputs_text(inputs, base_dir), encoding="utf-8")
        os.replace(tmp, out / INPUTS_FILE)
    tmp = spec_file.with_name("study.toml.tmp")
    tmp.write_text(spec_text, encoding="utf-8")
    os.replace(tmp, spec_file)
    return spec_text


def _check_inputs(out: Path, inputs: Mapping[str, str]) -> None:
    """Refuse a folder whose recorded input files differ from ``inputs`` (or that has no record
    while the study loads files: it cannot be checked)."""
    rec_file = out / INPUTS_FILE
    if rec_file.exists():
        try:
            rec = json.loads(rec_file.read_text(encoding="utf-8"))
            old = {m: v["text"] for m, v in rec["models"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise StudyConflictError(f"{out}: {INPUTS_FILE} is unreadable, so the scheme files of "
                                     "the study in it cannot be checked; nothing was overwritten.  "
                                     f"Use another output folder, or delete {out} to start "
                                     "again.") from None
    elif inputs:
        raise StudyConflictError(
            f"{out} holds this study but no record of its scheme files' content ({INPUTS_FILE}: "
            f"written by an older ketacore), so a changed {', '.join(map(repr, sorted(inputs)))} "
            "cannot be detected; nothing was overwritten.  Use another output folder, or delete "
            f"{out} to start again.")
    else:
        return
    diff = _inputs_diff(old, inputs)
    if diff:
        raise StudyConflictError(
            f"{out} already holds a different study (differs in: {'; '.join(diff)}); nothing was "
            f"overwritten.  Use another output folder (or restore the file), or delete {out} to "
            "start again.")


# ------------------------------------------------------------------------------------------
# Runner
# ------------------------------------------------------------------------------------------
def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover
        return max(1, os.cpu_count() or 1)


def run_study(study: "Study | str | os.PathLike", executor: cf.Executor | None = None, *,
              output: str | os.PathLike | None = None, progress: bool = True,
              workers: int | None = None, chunk_trials: int | None = None,
              figures: "bool | Sequence[str] | None" = None) -> Any:
    """Run a study; return its results as an ``xarray.DataTree`` (one group per protocol).

    Parameters
    ----------
    study : Study, or path to a study TOML file
    executor : concurrent.futures.Executor, optional
        Where chunks run (see the module docstring for dask, loky, process pools, MPI).
        ``None``: local threads.
    output : path, optional
        Output folder: ``study.toml``, ``inputs.json`` (the content of the study's scheme
        files, if any), ``chunks/``, the results file, figures.  Re-running into the same folder
        resumes (skips finished chunks); a different study there, or the same study with a
        scheme file whose content changed, is refused.
        ``None``: run in memory, write nothing (not resumable).
    progress : bool
        tqdm progress bar with ETA on stderr (needs tqdm; silently off without it).  True or
        False (a numpy bool too); ``"no"``, ``0`` or None are refused.
    workers : int, optional
        Local threads when ``executor`` is None (default: all cores); an integer >= 1.
    chunk_trials : int, optional
        Trials per chunk, an integer >= 1 (default: about 4 chunks per worker per point, at
        most 64 trials and ~64 MB of counts).  Does not change the results.
    figures : bool or list of str, optional
        Write the PNG figures (default: the study's ``[outputs].figures``; needs ``output``):
        ``True``, ``False`` (a numpy bool too) or a list of figure names as in
        ``[outputs].figures``.

    Returns
    -------
    xarray.DataTree
        ``tree[name]`` is the ``xarray.Dataset`` of protocol ``name``; attributes hold the
        study TOML, root entropy, ketacore version and the composed scheme of each protocol
        (of each sweep point, where they differ: module notes, *Results Dataset*).  Its sweep
        axes are dimensions named after the parameters, or ``sweep_<name>`` for a name the
        Dataset uses itself (``V``, ``time``, ...: :func:`sweep_dimensions`); every variable
        has ``units`` and ``long_name``.

    Raises
    ------
    StudyError
        Invalid study (message names the key), including a run whose sweep points, trials or
        result arrays would not fit in memory (refused with an estimate before anything is
        built or written).
    StudyConflictError
        ``output`` holds a different study, or this study run with scheme files of different
        content (the message names the file and the keys that changed), or is in use by
        another run (each run holds a lock on its folder).
    TypeError, ValueError
        An invalid argument of this function (``progress``, ``workers``, ``chunk_trials``,
        ``figures``, ``executor``, ``output``), named in the message.
    NotADirectoryError, PermissionError
        ``output`` (or a parent) is a file, or the folder cannot be created or written.

    Warns
    -----
    ketacore.PerformanceWarning
        Once, when after 10 s the finished chunks put the rest of the run above an hour (the
        estimate, and how to stop and resume).
    RuntimeWarning
        A dose_response Hill fit whose IC50 is an extrapolation (``ic50_extrapolated_*``).
    UnitsWarning
        A concentration above 100 mM, by study key.
    """
    _need_results_io(write=output is not None)
    if isinstance(study, (str, os.PathLike)):
        study = Study.from_toml(study)   # (implausible concentrations warned about here, by key)
    if not isinstance(study, Study):
        raise TypeError(f"study must be a Study or a path to a study TOML file, got {type(study).__name__}")
    held: list = []   # the output folder's lock (taken inside, once the study is checked)
    try:
        with _V.quiet_units():  # (the re-reads and evaluations below would repeat them unkeyed)
            return _run_study(study, executor, output=output, progress=progress, workers=workers,
                              chunk_trials=chunk_trials, figures=figures, _held=held)
    finally:
        for fd in held:
            _release_lock(fd)


def _lock_output(out: Path) -> "int | None":
    """Create ``out`` if needed and take an exclusive, non-blocking lock on it (``flock`` on the
    folder itself, so nothing is written for it); returns the descriptor that holds the lock
    (close it to release), or None where ``fcntl`` is not available.  A folder locked by
    another run -- the same study started twice, on a cluster or in two terminals -- is refused:
    two runs writing one folder's chunks and results file at once corrupted ``results.nc`` while
    the run that finished reported success (helper-98's audit).

    Raises
    ------
    StudyConflictError
        Another process (or another run in this one) holds the lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        return None
    out.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(out, os.O_RDONLY)
    except OSError:   # a folder that can be written but not read: run unlocked
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StudyConflictError(
            f"{out} is in use by another ketacore run (it holds the folder's lock); nothing was "
            "touched.  Wait for that run to finish (this study then resumes from its chunks), "
            "or use another output folder.") from None
    except OSError:  # pragma: no cover - a file system without locks: run unlocked
        os.close(fd)
        return None
    _HELD_LOCKS.add(fd)
    return fd


#: Descriptors of the output-folder locks this process holds.  A worker *forked* while one is
#: open (a user's ProcessPoolExecutor) shares its open file description, and so the flock: the
#: child closes its copies at once, or the folder stayed locked after run_study returned
#: (helper-102's review).
_HELD_LOCKS: set = set()


def _close_held_locks_in_child() -> None:
    for fd in list(_HELD_LOCKS):
        try:
            os.close(fd)
        except OSError:  # pragma: no cover
            pass
    _HELD_LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_held_locks_in_child)


def _release_lock(fd: int) -> None:
    _HELD_LOCKS.discard(fd)
    os.close(fd)   # (closing the descriptor releases the lock)


def _remove_stale_temporaries(out: Path) -> None:
    """Delete the temporary files an interrupted run left in ``out`` (``*.tmp*`` beside the
    chunks and results: written, then renamed into place; a killed run leaves them).  Only
    called with the folder's lock held, so no other run is writing them."""
    ours = re.compile(r"\.tmp(\d+_\d+)?$")     # (the names ketacore writes: x.tmp, x.tmp<pid>_<tid>)
    chunks = out / "chunks"
    found = list(out.glob("*.tmp*")) + (list(chunks.rglob("*.tmp*")) if chunks.is_dir() else [])
    for f in found:
        if f.is_file() and ours.search(f.name):
            try:
                f.unlink()
            except OSError:  # pragma: no cover - best effort
                pass


def _run_study(study: "Study", executor: cf.Executor | None, *, output, progress, workers,
               chunk_trials, figures, _held=None):
    """:func:`run_study` after the study is read (its arguments unchecked yet)."""
    # ---- arguments (before any work)
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise TypeError("executor must be a concurrent.futures.Executor (something with .submit) or "
                        f"None, got {type(executor).__name__}")
    workers = _default_workers() if workers is None else _V.integer("workers", workers, minimum=1)
    if chunk_trials is not None:
        chunk_trials = _V.integer("chunk_trials", chunk_trials, minimum=1)
    progress = _V.flag("progress", progress)
    if figures is not None and not isinstance(figures, (list, tuple)):
        try:
            figures = _V.flag("figures", figures)
        except TypeError:
            raise TypeError(f"figures must be None, True, False or a list of {list(_FIGURES)}, got "
                            f"{type(figures).__name__} ({figures!r:.80})") from None
    elif figures is not None:
        if not all(isinstance(f, str) for f in figures):
            raise TypeError(f"figures must be None, True, False or a list of {list(_FIGURES)}, got {figures!r}")
        unknown = [f for f in figures if f not in _FIGURES]
        if unknown:  # (a ValueError, as plot.study_figures raises for unknown names)
            raise ValueError(f"figures: unknown figure names {unknown}; the figures are {list(_FIGURES)}")
    if output is not None and not isinstance(output, (str, os.PathLike)):
        raise TypeError("output must be a folder path (str or os.PathLike) or None, got "
                        f"{type(output).__name__}")
    out = Path(output) if output is not None else None
    if out is not None:
        _check_output_dir(out)
    user_rng = study.rng is not None
    from . import _rng
    entropy = study._entropy() if user_rng else _rng.root_entropy(None)
    resolved = study.replace(rng=entropy if entropy < 2**63 else hex(entropy))
    resolved._source, resolved._base_dir = study._source, study._base_dir
    spec_text = resolved.to_toml()
    # the scheme files, read once: every worker builds its schemes from this content, and the
    # output folder records it (a resumed folder must have been run with the same files)
    inputs = _read_inputs(resolved)
    inputs_key = _inputs_key(inputs)
    ctx = _context(spec_text, study._base_dir, study._source, inputs_key)
    study = ctx.study
    # ---- sizes: refuse a run that cannot fit in memory before building the sweep or any array
    for part in study.parts:                    # every point assumed the size of the first one
        pt0 = _point(study, part, {a: v[0] for a, v in study.axes(part)})
        ctx._bare.setdefault((part, 0), pt0)   # the first sweep point
        _check_run_memory(study, [(part, [(pt0, study.n_points(part))])], workers, chunk_trials,
                          output is None)
    with _V.units_warnings():   # (every sweep point's values, by key: the run itself is quiet)
        _check_run_memory(study, [(part, [(ctx.bare_point(part, i), 1) for i in range(len(ctx.sweep(part)))])
                                  for part in study.parts], workers, chunk_trials, output is None)
    # ---- the analyses' segments and windows at every sweep point (no solve), before the output
    # folder is created or written: a mistake here must not leave a study.toml behind
    for part in study.parts:
        states = None
        in_wash: set = set()
        for i in range(len(ctx.sweep(part))):
            pt = ctx.bare_point(part, i)
            if pt.analysis:
                _Analysis(study, part, pt, None)
                in_wash |= _drug_in_wash(study, part, pt)
            if states is None:
                states = list(pt.scheme.states)
                _warn_study_soak(study, part, pt)
            elif list(pt.scheme.states) != states:   # (the results share one state axis)
                _different_states(study, part, states, pt)
        if in_wash:
            # (once per protocol, before anything runs: drug applied in the wash binds during it)
            warnings.warn(f"{study._source}: {study._pw(part)}.analysis: trapping: the 'wash' "
                          f"segment applies the drug ({', '.join(sorted(in_wash))}) at some sweep "
                          "point(s), so 'trapped' and 'trapped_occupancy' also count drug that binds "
                          "during the wash, not only drug trapped by the block (memantine 10 uM in "
                          "the wash read 100.1 %); wash without it to measure trapping",
                          RuntimeWarning, stacklevel=2)

    if out is not None:
        fd = _lock_output(out)    # (held until run_study returns)
        if fd is not None and _held is not None:
            _held.append(fd)
        new_text = _prepare_output(out, spec_text, user_rng, inputs, study._base_dir)
        if fd is not None:        # (unlocked, another run may be writing them)
            _remove_stale_temporaries(out)
        if new_text != spec_text:   # the folder's study (same but for rng): reuse the built points
            ctx2 = _context(new_text, study._base_dir, study._source, inputs_key)
            with ctx._lock, ctx2._lock:
                ctx2._sweeps.update(ctx._sweeps)
                ctx2._bare.update(ctx._bare)
            spec_text, ctx, study = new_text, ctx2, ctx2.study

    # ---- plan
    plan: list[tuple[str, int, int, int]] = []
    results: dict[tuple[str, int], list[dict]] = {}
    total = done_trials = 0
    for part in study.parts:
        pts = ctx.sweep(part)
        done = _done_ranges(out, part) if out is not None else {}
        for i in range(len(pts)):
            pt, _ = ctx.point(part, i)
            results[(part, i)] = []
            size = chunk_trials or _auto_chunk(pt, workers)
            # the finished chunks this run reuses and the trial ranges it still has to run: a
            # partition of [0, n_trials) (n_trials may have changed since they were made)
            used, _ = _cover(pt.n_trials, done.get(i, []))
            for a, b in used:
                results[(part, i)].append(None)  # placeholder: loaded at assembly
                done_trials += b - a
            for a, b in _gaps(pt.n_trials, used, size):
                plan.append((part, i, a, b))
            total += pt.n_trials

    bar = _progress_bar(progress, total, done_trials, study.name)
    own_pool = None
    if executor is None:
        if workers == 1:
            executor = _InlineExecutor()
        else:
            executor = own_pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ketacore-study")
    memory: dict[tuple[str, int], list[dict]] = {k: [] for k in results}
    # chunks are submitted lazily (a bounded window in flight) and saved as they complete; on
    # any error, whatever finished is still saved before the error propagates
    internal = own_pool is not None or isinstance(executor, _InlineExecutor)
    window = 2 * workers if internal else 1024
    todo = iter(plan)
    pending: dict = {}
    eta = {"t0": time.perf_counter(), "ran": 0, "said": False}

    def handle(f) -> None:
        part, i = pending.pop(f)
        data = f.result()
        if out is not None:
            _save_chunk(out, part, i, data)
        else:
            memory[(part, i)].append(data)
        n = int(data["stop"] - data["start"])
        if bar is not None:
            bar.update(n)
        eta["ran"] += n
        _say_eta(eta, total - done_trials, study, workers, out)

    try:
        while True:
            for part, i, a, b in itertools.islice(todo, max(0, window - len(pending))):
                f = executor.submit(_run_chunk, spec_text, study._base_dir, study._source, part, i, a, b, 1,
                                    inputs_key)
                pending[f] = (part, i)
            if not pending:
                break
            done, _ = cf.wait(list(pending), return_when=cf.FIRST_COMPLETED)
            for f in done:
                handle(f)
    except BaseException:
        for f in list(pending):
            f.cancel()
        for f in list(pending):
            if f.done() and not f.cancelled() and f.exception() is None:
                try:
                    handle(f)
                except Exception:  # noqa: BLE001 - best effort while failing
                    pass
        raise
    finally:
        if own_pool is not None:
            own_pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()

    tree = _assemble(ctx, spec_text, out, memory)
    if out is not None:
        res = out / study.outputs["results"]
        before = res.read_bytes() if res.exists() else None
        _write_netcdf(tree, res)
        want = study.outputs["figures"] if figures is None else figures
        stamp = out / ".figures"
        # figures are redrawn unless the results are byte-identical to those they were drawn from
        fresh = before is not None and before == res.read_bytes() and stamp.exists() \
            and stamp.read_text() == repr(want)
        if want and not fresh:
            from . import plot
            plot.study_figures(tree, out, which=None if want is True else want)
            stamp.write_text(repr(want))
    return tree


def _check_output_dir(out: Path) -> None:
    """Refuse an output path that is a file or cannot be created/written (before any work).

    Raises
    ------
    NotADirectoryError
        ``out`` or one of its parents is not a folder.
    PermissionError
        ``out`` exists and is not writable, or its nearest existing parent is not writable.
    """
    if out.exists():
        if not out.is_dir():
            raise NotADirectoryError(f"output {str(out)!r} exists and is not a folder")
        if not os.access(out, os.W_OK | os.X_OK):
            raise PermissionError(f"output folder {str(out)!r} is not writable")
        return
    parent = out.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(f"output {str(out)!r}: {str(parent)!r} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"output {str(out)!r} cannot be created: {str(parent)!r} is not writable")


def _check_run_memory(study: Study, parts: list, workers: int, chunk_trials: int | None,
                      in_memory: bool) -> None:
    """Refuse (StudyError) a run whose memory in this process would not fit.

    ``parts`` is ``[(part, [(point, multiplicity), ...])]``.  Counted: the sweep points and their
    protocols, the plan (one entry per chunk), the assembled arrays of every protocol (sums,
    means, kept trials, per-trial analysis values, ``record="counts"`` counts), the chunk results
    held until assembly (``output=None``), and the counts of the ``workers`` chunks being
    simulated at a time.  Estimates, not bounds: the point is to refuse impossible runs
    (``n_trials = 2**40``, a 10^9-point sweep) with a clear message instead of a MemoryError.
    """
    total = 0.0
    n_chunks_all = 0
    peak_chunk = 0.0
    worst = None
    for part, items in parts:
        if not items:
            continue
        pt0 = items[0][0]
        K = pt0.scheme.n_states
        L = len(_levels(pt0.scheme)[0])
        P = sum(m for _, m in items)
        S = max(pt.n_samples for pt, _ in items)
        T = max(pt.n_trials for pt, _ in items)
        keep = min(study.keep_trials, T)
        kind = (pt0.analysis or {}).get("kind")
        n_metric = {"trapping": 5, "use_dependence": 2, "dose_response": 1}.get(kind, 0)
        counts = study.record == "counts"
        part_bytes = P * (S * (K * 32.0 + 48.0) + keep * S * 8.0 + T * n_metric * 16.0)
        if counts:
            part_bytes += P * T * S * K * 4.0
        part_bytes += S * K * 8.0 * 4   # one master-equation solve at a time
        n_chunks = 0
        for pt, m in items:
            c = chunk_trials or _auto_chunk(pt, workers)
            c = min(c, pt.n_trials)
            nc = -(-pt.n_trials // c)
            n_chunks += m * nc
            res = pt.n_samples * (K * 16.0 + L * L * 8.0) + c * n_metric * 8.0 + \
                min(keep, c) * pt.n_samples * 8.0 + (c * pt.n_samples * K * 4.0 if counts else 0.0)
            if in_memory:
                part_bytes += m * nc * res
            peak_chunk = max(peak_chunk, res + c * pt.n_samples * (K * 12.0 + L * 8.0))
            part_bytes += m * (_BYTES_PER_POINT + len(pt.protocol) * _BYTES_PER_STEP)
        n_chunks_all += n_chunks
        total += part_bytes
        if worst is None or part_bytes > worst[0]:
            worst = (part_bytes, part, P, S, K, T, n_chunks)
    total += n_chunks_all * _BYTES_PER_CHUNK + min(n_chunks_all, workers) * peak_chunk
    if worst is None:
        return
    _, part, P, S, K, T, n_chunks = worst
    _check_memory(f"{study._source}: {study._pw(part)}", total,
                  f"this run ({P:.4g} sweep point(s) x {S:.4g} samples x {K} states, {T:.4g} trials per "
                  f"point in {n_chunks:.4g} chunk(s), record = {study.record!r})",
                  "reduce n_trials, the sweep, the protocol duration (or raise dt)"
                  + (", or use record = 'summary'" if study.record == "counts" else ""))


class _InlineExecutor(cf.Executor):
    """Runs each task at submit time, in the calling thread (workers=1)."""

    def submit(self, fn, /, *args, **kwargs):
        f: cf.Future = cf.Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - handed to the caller via the future
            if isinstance(e, KeyboardInterrupt):
                raise
            f.set_exception(e)
        return f


def _auto_chunk(pt: _Point, workers: int) -> int:
    per_trial = pt.n_samples * pt.scheme.n_states * 4 * 3  # counts + int64 copies
    by_mem = max(1, int(64e6 // max(per_trial, 1)))
    by_par = max(1, math.ceil(pt.n_trials / (4 * workers)))
    return int(max(1, min(64, by_mem, by_par)))


#: A study still estimated (from its finished chunks) to need more than ``_ETA_WARN`` seconds
#: after ``_ETA_AFTER`` seconds of running gets one :class:`~ketacore.PerformanceWarning` with
#: the estimate -- also without a progress bar (``ketacore run -q``), where a run of days
#: started silently (helper-98's audit).
_ETA_AFTER = 10.0
_ETA_WARN = 3600.0


def _say_eta(eta: dict, todo: int, study: "Study", workers: int, out) -> None:
    """Warn once when the finished chunks put the rest of the run above ``_ETA_WARN``."""
    if eta["said"] or not eta["ran"] or eta["ran"] >= todo:
        return
    el = time.perf_counter() - eta["t0"]
    if el < _ETA_AFTER:
        return
    if eta["ran"] > 0.2 * todo:   # (estimated early enough; no later warning)
        eta["said"] = True
    left = el / eta["ran"] * (todo - eta["ran"])
    if left <= _ETA_WARN:
        return
    eta["said"] = True
    h = left / 3600.0
    when = f"{h:.3g} h" if h < 48 else f"{h / 24:.3g} days"
    warnings.warn(
        f"{study._source}: study {study.name!r} is estimated to need ~{when} more on {workers} "
        f"worker(s) ({eta['ran']} of {todo} trials in {el:.0f} s).  Ctrl-C stops it"
        + ("; running it again into the same folder resumes from the finished chunks"
           if out is not None else " (with output= a rerun would resume from finished chunks)")
        + "; fewer trials, channels or sweep points, or more workers, shorten it",
        _V.PerformanceWarning, stacklevel=3)


def _progress_bar(progress: bool, total: int, initial: int, name: str):
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, unit="trial", desc=name, dynamic_ncols=True,
                file=sys.stderr, smoothing=0.1)


# ------------------------------------------------------------------------------------------
# Assembly
# ------------------------------------------------------------------------------------------
def _assemble(ctx: _Context, spec_text: str, out: Path | None, memory: dict):
    import xarray as xr
    study = ctx.study
    groups: dict[str, Any] = {}
    for part in study.parts:
        groups[part] = _assemble_part(ctx, part, out, memory)
    root_attrs = {
        "title": f"ketacore study {study.name}",
        "ketacore_version": __version__,
        "entropy": str(ctx.entropy),
        "study_toml": spec_text,
        "description": study.description,
        "reproduce": "save study_toml as study.toml and run: ketacore run study.toml "
                     f"(ketacore {__version__}); trial i uses PCG64(SeedSequence(entropy, spawn_key=(i,)))",
    }
    tree = xr.DataTree(dataset=xr.Dataset(attrs=root_attrs))
    for part, ds in groups.items():
        tree[part] = xr.DataTree(dataset=ds)
    return tree


def _sorted_chunks(out: Path | None, part: str, i: int, memory: dict, n_trials: int):
    """The chunks of point ``i`` in trial order, checked to cover ``[0, n_trials)`` exactly once.
    Chunk files are loaded one at a time as the result is iterated (not all at once)."""
    items: list[tuple[int, int, Any]] = [(int(d["start"]), int(d["stop"]), d)
                                         for d in memory.get((part, i), [])]
    if out is not None:   # (the chunks the plan chose: _cover; the files may overlap)
        used, _ = _cover(n_trials, _done_ranges(out, part).get(i, []))
        items.extend((a, b, None) for a, b in used)
    items.sort(key=lambda x: x[0])
    at = 0
    for a, b, _ in items:
        if a != at or b <= a:
            raise RuntimeError(f"protocol {part!r} point {i}: chunk files do not cover the trials exactly "
                               f"once (missing or overlapping trial ranges); delete the chunks folder "
                               "entries of this point and run again")
        at = b
    if at != n_trials:
        raise RuntimeError(f"protocol {part!r} point {i}: chunk files do not cover the trials exactly "
                           f"once (missing or overlapping trial ranges); delete the chunks folder "
                           "entries of this point and run again")
    for a, b, d in items:
        yield d if d is not None else _load_chunk(_chunk_path(out, part, i, a, b))


def _warn_study_soak(study: Study, part: str, pt) -> None:
    """UserWarning naming ``[protocol].initial`` when a protocol's start is the default
    ``"equilibrium"`` and that rest is an indefinite soak in a drug reached only through its
    slow route onto shut channels (:func:`ketacore.solve._soaked`: no agonist at rest, e.g. a
    train whose ``between`` carries the drug).  Runs never pass the default to ``solve`` (they
    pass "equilibrium"), so the check is made here, once per protocol (first sweep point).
    An explicit conditions table keeps such a start without the warning."""
    if pt.initial not in (None, "equilibrium"):
        return
    from .solve import _soaked, initial_distribution
    cond = pt.protocol.rest_conditions
    with _V.quiet_units():
        p0 = initial_distribution(pt.scheme, "equilibrium", pt.protocol)
    for b, m in _soaked(pt.scheme, cond, p0):
        V = cond.get("V", -0.07)
        warnings.warn(
            f"{study._source}: {study._pw(part)}.initial: the default start ('equilibrium', the "
            f"rest under the protocol's rest conditions: {b.ligand} = {cond[b.ligand]:g} M, no "
            f"agonist) has {m:.1%} of the channels holding {b.ligand}, reached through its slow "
            f"route onto shut channels: an indefinite soak, so every response starts pre-blocked. "
            f"For a drug-naive start write initial = {{V = {V:g}}} (the drug-free rest); to keep "
            f"this start without this warning give it as a conditions table, initial = "
            f"{{V = {V:g}, {b.ligand} = {cond[b.ligand]:g}}}", UserWarning, stacklevel=4)


def _different_states(study: Study, part: str, states: list, pt) -> None:
    """StudyError: the sweep points of one protocol share the results' state axis, so every
    swept model (or blocker set) must give the same states."""
    other = list(pt.scheme.states)
    raise StudyError(f"{study._source}: {study._pw(part, 'sweep')}.model: swept models must have "
                     f"the same states (the results have one state axis): {states} and {other}; "
                     "sweep models with the same scheme (e.g. erreger2005_2a and erreger2005_2b), "
                     "or run one study per scheme")


def _assemble_part(ctx: _Context, part: str, out: Path | None, memory: dict):
    import xarray as xr
    from .solve import solve
    study = ctx.study
    axes = study.axes(part)
    dim_of = sweep_dimensions([a for a, _ in axes])   # V -> sweep_V (the Dataset's own names)
    dims = [dim_of[a] for a, _ in axes]
    shape = tuple(len(v) for _, v in axes)
    pts = ctx.sweep(part)
    built = [ctx.point(part, i) for i in range(len(pts))]
    pt0 = built[0][0]
    states = list(pt0.scheme.states)
    for pt, _ in built:
        if list(pt.scheme.states) != states:
            _different_states(study, part, states, pt)
    S = max(pt.n_samples for pt, _ in built)
    K = len(states)
    dt = pt0.dt
    time_ = np.arange(S) * dt
    n_trials = max(pt.n_trials for pt, _ in built)
    keep = min(study.keep_trials, n_trials)
    P = len(pts)

    def arr(extra, fill, dtype=float):
        return np.full((P,) + extra, fill, dtype=dtype)

    sum_c = arr((S, K), 0, np.int64)
    sumsq = arr((S, K), 0, np.int64)
    cur_mean = arr((S,), np.nan)
    cur_sd = arr((S,), np.nan)
    po_mc = arr((S,), np.nan)
    occ_mc = arr((S, K), np.nan)
    Vt = arr((S,), np.nan)
    kept = arr((keep, S), np.nan)
    occ_det = arr((S, K), np.nan)
    cur_det = arr((S,), np.nan)
    po_det = arr((S,), np.nan)
    n_samples = np.zeros(P, np.int64)
    methods = []
    counts = arr((n_trials, S, K), 0, np.int32) if study.record == "counts" else None
    metric_det: dict[str, np.ndarray] = {}
    metric_mc: dict[str, np.ndarray] = {}
    metric_tr: dict[str, np.ndarray] = {}
    by_pulse_det = by_pulse_mc = None
    n_pulses_max = max((an.n_pulses for _, an in built if an.kind == "use_dependence"), default=0)
    if n_pulses_max:
        by_pulse_det = arr((n_pulses_max,), np.nan)
        by_pulse_mc = arr((n_pulses_max,), np.nan)

    for i, (pt, an) in enumerate(built):
        s = pt.n_samples
        n_samples[i] = s
        chunks = _sorted_chunks(out, part, i, memory, pt.n_trials)
        ms: set[str] = set()
        sc = np.zeros((s, K), np.int64)
        sq = np.zeros((s, K), np.int64)
        lv, _ = _levels(pt.scheme)
        cr = np.zeros((s, len(lv), len(lv)), np.int64)
        for d in chunks:
            ms.add(str(d["method"]))
            sc += d["sum"]
            sq += d["sumsq"]
            cr += d["cross"]
            a, b = int(d["start"]), int(d["stop"])
            for k in d:
                if k.startswith("trial_"):
                    name = k[len("trial_"):]
                    if name not in metric_tr:
                        metric_tr[name] = arr((n_trials,), np.nan)
                    metric_tr[name][i, a:b] = d[k]
            if "kept_current" in d:
                kc_ = d["kept_current"]
                kept[i, a:a + kc_.shape[0], :s] = kc_
            if counts is not None:
                counts[i, a:b, :s] = d["counts"]
        methods.append("+".join(sorted(ms)))
        n = pt.n_trials
        N = pt.n_channels
        sum_c[i, :s] = sc
        sumsq[i, :s] = sq
        mean = sc / n
        occ_mc[i, :s] = mean / N
        prot_V = pt.protocol.voltage_at(time_[:s], pt.dt)
        Vt[i, :s] = prot_V
        drive = prot_V - pt.scheme.e_rev
        g = np.asarray(pt.scheme.conductance, dtype=float)
        cur_mean[i, :s] = (mean @ g) * drive
        po_mc[i, :s] = mean[:, pt.scheme.open_mask].sum(axis=1) / N
        if n > 1 and len(lv):
            lsum = np.stack([sc[:, g == v].sum(axis=1) for v in lv], axis=-1).astype(float)
            cov = (n * cr.astype(float) - lsum[:, :, None] * lsum[:, None, :]) / (n * (n - 1))
            var = np.einsum("l,slm,m->s", lv, cov, lv) * drive ** 2
            cur_sd[i, :s] = np.sqrt(np.clip(var, 0, None))
        # master equation, side by side
        if study.deterministic:
            r = solve(pt.scheme, pt.protocol, pt.dt, initial=pt.initial)
            occ_det[i, :s] = r.occupancy
            cur_det[i, :s] = r.current * N
            po_det[i, :s] = r.open_probability
            for k, v in an(r.occupancy).items():
                if k == "_block_by_pulse":
                    by_pulse_det[i, :len(v)] = v
                else:
                    metric_det.setdefault(k, arr((), np.nan))[i] = v
        for k, v in an(mean / N).items():
            if k == "_block_by_pulse":
                by_pulse_mc[i, :len(v)] = v
            else:
                metric_mc.setdefault(k, arr((), np.nan))[i] = v

    rs = lambda a: a.reshape(shape + a.shape[1:])
    sd = dims
    data: dict[str, Any] = {
        "sum_counts": (sd + ["time", "state"], rs(sum_c)),
        "sum_sq_counts": (sd + ["time", "state"], rs(sumsq)),
        "open_probability_mc": (sd + ["time"], rs(po_mc)),
        "current_mc_mean": (sd + ["time"], rs(cur_mean)),
        "current_mc_sd": (sd + ["time"], rs(cur_sd)),
        "current_trials": (sd + ["kept_trial", "time"], rs(kept)),
        "V": (sd + ["time"], rs(Vt)),
        "n_samples": (sd, rs(n_samples)),
    }
    if study.deterministic:
        data.update({"occupancy_det": (sd + ["time", "state"], rs(occ_det)),
                     "open_probability_det": (sd + ["time"], rs(po_det)),
                     "current_det": (sd + ["time"], rs(cur_det))})
    if counts is not None:
        data["counts"] = (sd + ["trial", "time", "state"], rs(counts))
    for k, v in metric_det.items():
        data[f"{k}_det"] = (sd, rs(v))
    for k, v in metric_mc.items():
        data[f"{k}_mc"] = (sd, rs(v))
    for k, v in metric_tr.items():
        data[f"{k}_trials"] = (sd + ["trial"], rs(v))
        with np.errstate(invalid="ignore"):
            fin = np.isfinite(v)
            cnt = fin.sum(axis=1)
            sem = np.array([np.std(row[f], ddof=1) / math.sqrt(c) if c > 1 else np.nan
                            for row, f, c in zip(v, fin, cnt)])
        data[f"{k}_mc_sem"] = (sd, rs(sem))
    if by_pulse_det is not None:
        if study.deterministic:
            data["block_by_pulse_det"] = (sd + ["pulse"], rs(by_pulse_det))
        data["block_by_pulse_mc"] = (sd + ["pulse"], rs(by_pulse_mc))
    coords: dict[str, Any] = {"time": time_, "state": states}
    for (a, vals) in axes:
        coords[dim_of[a]] = list(vals) if a == "model" else np.asarray(vals, dtype=float)
    if "trial" in {d for v in data.values() for d in v[0]}:
        coords["trial"] = np.arange(n_trials)
    if keep:
        coords["kept_trial"] = np.arange(keep)
    if by_pulse_det is not None:
        coords["pulse"] = np.arange(1, n_pulses_max + 1)
    ds = xr.Dataset(data, coords=coords)
    # units and descriptions: every data variable and coordinate gets units and long_name
    p = study.parts[part]
    n_ch = int(pt0.n_channels)
    for a, _ in axes:
        d = dim_of[a]
        ds[d].attrs["parameter"] = a
        if a == "model":
            ds[d].attrs.update(units="1", long_name="gating model (swept)")
            continue
        u = _axis_unit(study, p, a)
        ds[d].attrs.update(units=u or "1", long_name=f"swept parameter {a}")
        if not u:
            ds[d].attrs["comment"] = (f"the study gives no unit for {a}; values are as written "
                                      "(SI when they are quantities)")
    ds.attrs["sweep_dims"] = json.dumps({a: dim_of[a] for a, _ in axes})
    trap = [an for _, an in built if an.kind == "trapping"]
    docs = _variable_docs(n_ch, keep)
    for k in metric_det:
        docs[f"{k}_det"] = (_ANALYSIS_DOC[k][0], _ANALYSIS_DOC[k][1] + " (master equation)")
    for k in metric_mc:
        docs[f"{k}_mc"] = (_ANALYSIS_DOC[k][0], _ANALYSIS_DOC[k][1] + " (of the Monte Carlo mean trace)")
    for k in metric_tr:
        docs[f"{k}_trials"] = (_ANALYSIS_DOC[k][0], _ANALYSIS_DOC[k][1] + " (of each trial alone)")
        docs[f"{k}_mc_sem"] = (_ANALYSIS_DOC[k][0], f"standard error of the mean of {k}_trials over "
                               "the trials where it is finite (NaN with fewer than 2)")
    for name, (u, ln) in docs.items():
        if name in ds.variables:
            ds[name].attrs.update(units=u, long_name=ln)
    if trap:
        fmt = lambda xs: (_axis_label(xs.pop(), "s") if len(xs) == 1 else "`early`/`window` (varies "
                          "with the sweep point)")
        definition = _trapped_definition(fmt({an.window for an in trap}), fmt({an.early for an in trap}))
        for suf in ("_det", "_mc", "_trials", "_mc_sem"):
            if "trapped" + suf in ds:
                ds["trapped" + suf].attrs["definition"] = definition
        only = next((an.drug_only for an in trap if an.drug_only), None)
        carrying = "carrying a blocker"
        if only:   # a background blocker (Mg2+): the occupancies count the drug's channels only
            drug, others = (", ".join(x) for x in only)
            carrying = (f"carrying the drug {drug}, whatever else is bound; not those bound only "
                        f"by {others} (analysis option drug)")
            for suf in ("_det", "_mc", "_trials", "_mc_sem"):
                for v in ("blocked_end_block", "blocked_end_wash"):
                    if v + suf in ds:
                        ds[v + suf].attrs["long_name"] = ds[v + suf].attrs["long_name"].replace(
                            "carrying a blocker", f"carrying the drug ({drug})")
        for suf in ("_det", "_mc", "_trials", "_mc_sem"):
            if "trapped_occupancy" + suf in ds:
                ds["trapped_occupancy" + suf].attrs["definition"] = (
                    f"blocked occupancy (fraction of channels {carrying}) at the end of 'wash' "
                    "/ at the end of 'block'; the occupancy definition of "
                    "ketacore.experiments.trapping(...).trapped_occupancy")
    # the composed scheme simulated at each point: a model sweep (scheme files included) or a
    # swept blocker parameter gives each point its own, and the results file keeps every one
    toml_of: dict[int, str] = {}     # (points share scheme objects: each written once)
    for pt, _ in built:
        if id(pt.scheme) not in toml_of:
            toml_of[id(pt.scheme)] = pt.scheme.to_toml()
    tomls = [toml_of[id(pt.scheme)] for pt, _ in built]
    distinct = list(dict.fromkeys(tomls))
    if len(distinct) > 1:
        ds["scheme_index"] = (sd, rs(np.array([distinct.index(t) for t in tomls], np.int64)),
                              dict(zip(("units", "long_name"), docs["scheme_index"])))
        ds.attrs["scheme_tomls"] = json.dumps(distinct)
    # the blockers of each point, likewise: a swept blocker field (a sweep axis or a parameter
    # used in a blocker table) gives each point its own; blockers_list keeps every distinct one
    bl_of: dict[int, str] = {}       # (points share blocker lists: each written once)
    for pt, _ in built:
        if id(pt.blockers) not in bl_of:
            bl_of[id(pt.blockers)] = json.dumps([_blocker_dict(b) for b in pt.blockers])
    bls = [bl_of[id(pt.blockers)] for pt, _ in built]
    distinct_bl = list(dict.fromkeys(bls))
    if len(distinct_bl) > 1:
        ds["blockers_index"] = (sd, rs(np.array([distinct_bl.index(t) for t in bls], np.int64)),
                                dict(zip(("units", "long_name"), docs["blockers_index"])))
        ds.attrs["blockers_list"] = json.dumps([json.loads(t) for t in distinct_bl])
    if n_pulses_max:
        ds.attrs["n_pulses"] = json.dumps([an.n_pulses for _, an in built])
    if any(an.kind == "dose_response" for _, an in built):
        _fit_dose_response(ds, study, part, rs(np.array([_point_conditions(pt, an) for pt, an in built])))
    ds.attrs.update({
        "protocol": part,
        "analysis": (p.analysis or {}).get("kind", ""),
        "n_trials": int(n_trials), "n_channels": int(pt0.n_channels), "dt": float(dt),
        "method": json.dumps(methods) if len(set(methods)) > 1 else methods[0],
        # the names of the composed schemes, in sweep order; scheme_toml and blockers: the first
        # point's (each point's: scheme_tomls[scheme_index], blockers_list[blockers_index], when
        # they differ)
        "scheme": ", ".join(dict.fromkeys(pt.scheme.name for pt, _ in built)),
        "scheme_toml": tomls[0],
        "blockers": bls[0],
        "segments": json.dumps([{"label": s.label or "", "t0": s.t0, "t1": s.t1} for s in pt0.segments]),
    })
    if (p.analysis or {}).get("kind") in ("use_dependence", "dose_response"):
        # the ligands the drug-free control removed (the same at every point: _drug_ligands)
        ds.attrs["control_removes"] = json.dumps(list(pt0.drug))
    return ds


def _variable_docs(n_channels: int, keep: int) -> dict[str, tuple[str, str]]:
    """``name -> (units, long_name)`` of the fixed data variables and coordinates of a protocol's
    Dataset (the analysis metrics are added from :data:`_ANALYSIS_DOC`)."""
    cur = f"current of {n_channels} channels"
    return {
        "time": ("s", "time since the start of the protocol"),
        "state": ("1", "kinetic state of the composed scheme"),
        "trial": ("1", "trial index (trial i draws from PCG64(SeedSequence(entropy, spawn_key=(i,))))"),
        "kept_trial": ("1", f"index of a kept trial (trials 0 to {max(keep - 1, 0)})"),
        "pulse": ("1", "pulse number in the train (from 1)"),
        "sum_counts": ("1", "exact sum over trials of the channel counts per state"),
        "sum_sq_counts": ("1", "exact sum over trials of the squared channel counts per state"),
        "open_probability_mc": ("1", "open probability (fraction of channels in open states), "
                                     "Monte Carlo mean over trials"),
        "current_mc_mean": ("A", f"{cur}, Monte Carlo mean over trials"),
        "current_mc_sd": ("A", f"{cur}, standard deviation over trials (exact sums)"),
        "current_trials": ("A", f"{cur} in each kept trial"),
        "V": ("V", "membrane voltage"),
        "n_samples": ("1", "number of time samples of the sweep point (later samples are padding)"),
        "occupancy_det": ("1", "state occupancy (probability), master equation"),
        "open_probability_det": ("1", "open probability, master equation"),
        "current_det": ("A", f"expected {cur}, master equation"),
        "counts": ("1", "channel count per state in each trial"),
        "scheme_index": ("1", "the composed scheme simulated at this sweep point: an index into "
                              "the JSON list in the Dataset's scheme_tomls attribute"),
        "blockers_index": ("1", "the blockers used at this sweep point: an index into the JSON list "
                                "in the Dataset's blockers_list attribute"),
        "block_by_pulse_det": ("1", "use-dependent block of the charge of each pulse vs the "
                                    "drug-free control (master equation)"),
        "block_by_pulse_mc": ("1", "use-dependent block of the charge of each pulse vs the "
                                   "drug-free control (of the Monte Carlo mean trace)"),
    }


def _axis_unit(study: Study, p: StudyPart, a: str) -> str:
    """SI unit of sweep axis ``a`` (what its Dataset coordinate records), from the dimension
    machinery: the dimension of its parameter (:meth:`Study._part_dims`: its definition, else
    its sweep values), else -- a parameter that is a bare number -- the dimension of the key that
    uses it alone (``V = "$V"``, a ligand ``ketamine = "$c"``, ``duration``, a train's
    ``frequency``: :func:`_dimension_by_use`).  ``"Hz"`` for a frequency, ``"1"`` for a
    dimensionless number, ``""`` when unknown."""
    name = study._part_name(p)
    d = study._part_dims(name, p).get(a, (None, ""))[0]
    if d is None:
        d = _dimension_by_use(study, name, p, a)
    if d is None:
        return ""
    return "Hz" if d == _FREQUENCY else _dim_unit(d)


def _dimension_by_use(study: Study, name: str, p: StudyPart, param: str) -> "tuple[int, ...] | None":
    """The dimension of the keys of protocol ``name`` whose value is parameter ``param`` alone
    (``"$param"``, ``"${param}"`` or the bare name), if they agree (the table of
    :meth:`Study._dimension_sites`); else None."""
    refs = {f"${param}", f"${{{param}}}", param}
    found = {want for _, v, _, want in study._dimension_sites(name, p)
             if isinstance(v, str) and v.strip() in refs}
    return found.pop() if len(found) == 1 else None


def _blocker_dict(b) -> dict:
    out = {}
    for f in dataclasses.fields(b):
        v = getattr(b, f.name)
        out[f.name] = dict(v) if isinstance(v, Mapping) else v
    return out


def _hill(c, ic50, nh):
    return 1.0 / (1.0 + (np.asarray(c) / ic50) ** nh)


def _blocker_tags(study: Study) -> dict[str, str]:
    """``ligand -> state tag`` of the study's blockers, in the study's order (``{"ketamine":
    "ket", "mg": "mg"}``: states ``O·ket``, ``O·mg``), as :func:`_resolve_blockers` builds them:
    a table blocker has its library blocker's tag and, without ``ligand``, its ligand.  Unknown
    blockers are skipped (run_study refuses them before it simulates anything)."""
    from . import blockers as _blockers
    out: dict[str, str] = {}
    for b in study.blockers or []:
        try:
            if isinstance(b, str):
                lib = _blockers.get(b)
                out.setdefault(lib.ligand, lib.name)
            elif isinstance(b, Mapping):
                lib = _blockers.get(b["name"])
                lig = b.get("ligand")
                out.setdefault(lig if isinstance(lig, str) else lib.ligand, lib.name)
        except (KeyError, ValueError, TypeError, AttributeError):
            pass
    return out


def _blocker_ligands(study: Study) -> list[str]:
    """The ligand names of the study's blockers, in the study's order (:func:`_blocker_tags`)."""
    return list(_blocker_tags(study))


def _ligand_values(p: StudyPart):
    """Every ligand concentration protocol ``p`` writes, as ``(ligand, value as written)``: the
    ligand keys of its steps, the entries of its trains' ``during`` and ``between`` tables (which
    also make the protocol's rest) and of its ``initial`` conditions table."""
    for seg in p.segments:
        if not isinstance(seg, Mapping):
            continue    # (refused by _build_protocol)
        if "train" in seg:
            tr = seg["train"]
            for key in ("during", "between"):
                table = tr.get(key) if isinstance(tr, Mapping) else None
                if isinstance(table, Mapping):
                    yield from table.items()
            continue
        yield from ((k, v) for k, v in seg.items() if k not in _STEP_KEYS)
    if isinstance(p.initial, Mapping):
        yield from ((k, v) for k, v in p.initial.items() if k not in _CONDITION_DIMS)


def _written_in(p: StudyPart, label: str) -> set:
    """The ligands the steps labelled ``label`` of protocol ``p`` write with a value that is not
    a literal zero (``0``, ``"0 uM"``; an expression such as ``"$ketamine"`` counts, whatever
    its value at a sweep point): read from the specification, as :func:`_applied_blockers`."""
    out = set()
    for seg in p.segments:
        if not isinstance(seg, Mapping) or "train" in seg or seg.get("label") != label:
            continue
        for k, v in seg.items():
            if k in _STEP_KEYS:
                continue
            m = _QTY.match(v) if isinstance(v, str) else None
            zero = (isinstance(v, (int, float)) and not isinstance(v, bool) and v == 0) or \
                   (m is not None and float(m.group(1)) == 0.0)
            if not zero:
                out.add(k)
    return out


def _applied_blockers(study: Study, p: StudyPart) -> list[str]:
    """The blocker ligands protocol ``p`` applies, in the study's order of its blockers: those it
    writes (:func:`_ligand_values`: steps, trains, the ``initial`` table) and those whose blocked
    states an ``initial`` state name carries (``"O·ket"``: ketamine).  Read from the
    specification, not from values: ``ketamine = "$c"`` counts at a sweep point where c = 0, so
    the rule of :func:`_drug_ligands` is the same at every sweep point."""
    tags = _blocker_tags(study)
    written = {k for k, _ in _ligand_values(p)}
    if isinstance(p.initial, str):
        carried = set(p.initial.split("·")[1:])
        written |= {lig for lig, t in tags.items() if t in carried or f"{t}_s" in carried}
    return [lig for lig in tags if lig in written]


def _uses_axis(value: Any, axis: str, defs: Mapping[str, tuple], swept: set) -> bool:
    """Whether a value as written uses the parameter ``axis``: directly (``"$c"``, ``"2 * $c"``)
    or through parameters defined from it (``"$conc"`` with ``conc = "$c * 1 uM"``; not
    through another swept parameter, whose sweep values replace its definition)."""
    todo, seen = [value], set()
    while todo:
        v = todo.pop()
        if not isinstance(v, str) or len(v) > MAX_EXPRESSION_LENGTH or _QTY.match(v):
            continue
        for n, marked in _names_in(v) or ():
            if not marked and n in _UNITS:
                continue    # a unit ("1 uM")
            if n == axis:
                return True
            if n in defs and n not in swept and n not in seen:
                seen.add(n)
                todo.append(defs[n][0])
    return False


def _drug_ligands(study: Study, p: StudyPart) -> tuple[str, ...]:
    """The drug of a use_dependence, dose_response or trapping analysis.  For use_dependence
    and dose_response: the blocker ligands its drug-free control removes
    (:func:`_control_protocol`, :func:`_control_initial`); every other ligand -- a background
    blocker such as Mg2+, the agonist -- stays in the control at its value in the protocol.  For
    trapping: the blocker ligands whose bound channels the occupancy quantities count
    (``blocked_end_block``, ``blocked_end_wash``, ``trapped_occupancy``: a state carrying a
    drug blocker's tag, whatever else is bound; a channel bound only by a background blocker is
    not counted).  The one rule (checked when the Study is built, applied at every sweep point,
    recorded as the Dataset's ``control_removes`` for use_dependence and dose_response):

    * ``analysis.drug`` if given: a blocker ligand the protocol applies
      (:func:`_applied_blockers`), or a list of them;
    * dose_response: the applied blocker ligands whose value uses the concentration axis
      (:func:`_dose_axis`; ``"$ketamine"``, ``"2 * $c"``, in a step, a train's during/between
      table or the initial table) or that are named like it; if none, the one blocker ligand
      the protocol applies;
    * use_dependence and trapping: the one blocker ligand the protocol applies (none: nothing
      is removed, the control is the protocol; a trapping analysis then counts every blocker,
      as with no background);
    * trapping with several applied: the blocker ligands its ``block`` step(s) write and its
      ``control`` step(s) do not (or write as a literal 0) -- a Mg2+ background is in both.

    ``()`` for other analyses, and when a blocker of the study is unknown (run_study refuses it).

    Raises
    ------
    StudyError
        ``<part>.analysis.drug``: a drug that is not a blocker ligand the protocol applies; or
        no drug given and the rule finds several (use_dependence, trapping), or none or several
        (dose_response).
    """
    a = p.analysis if isinstance(p.analysis, dict) else {}
    kind = a.get("kind")
    if kind not in ("use_dependence", "dose_response", "trapping"):
        return ()
    tags = _blocker_tags(study)
    if len(tags) < len(study.blockers):
        return ()   # an unknown blocker (or a repeated one): run_study refuses the blockers
    name = study._part_name(p)
    where = f"{study._source}: {study._pw(name)}.analysis.drug"
    ligands = list(tags)
    applied = _applied_blockers(study, p)
    kept = ("the channels bound only by the others (e.g. a Mg2+ background) are not counted"
            if kind == "trapping" else
            "the control keeps the others (e.g. a Mg2+ background) at their values in the protocol")
    if "drug" in a:
        d = a["drug"]
        names = [d] if isinstance(d, str) else list(d) if isinstance(d, (list, tuple)) else None
        if not names or not all(isinstance(x, str) for x in names):
            raise StudyError(f"{where}: must be a blocker ligand or a non-empty list of them (the "
                             f"blocker ligands of this study: {ligands}), got {d!r}")
        for x in names:
            if x not in tags:
                raise StudyError(f"{where}: {x!r} is not the ligand of a blocker of this study; the "
                                 f"drug is among the blocker ligands {ligands}" + (
                                     " (the trapping occupancies count the channels it binds)"
                                     if kind == "trapping" else " (every other ligand, the agonist "
                                     "included, stays in the drug-free control)"))
            if x not in applied:
                why = ("no channel can carry it" if kind == "trapping"
                       else "removing it would change nothing")
                raise StudyError(f"{where}: {x!r} is not applied by this protocol (no segment, train "
                                 f"or initial condition sets it), so {why}; "
                                 f"the blocker ligands it applies: {applied}")
        return tuple(dict.fromkeys(names))
    hint = f"analysis = {{kind = \"{kind}\", drug = \"{applied[0]}\"}}" if applied else ""
    if kind == "dose_response":
        axis = _dose_axis(study, p)
        defs = study._definitions(p, study._pw(name, "parameters"))
        swept = {k for k in p.sweep if k != "model"}
        hits = {lig for lig, v in _ligand_values(p) if _uses_axis(v, axis, defs, swept)}
        hits.add(axis)   # (the ligand named like the axis)
        found = [lig for lig in applied if lig in hits]
        if found:
            return tuple(found)
        if len(applied) == 1:
            return tuple(applied)
        if not applied:
            has = f"this protocol applies none of the blocker ligands {ligands}" if ligands \
                else "this study has no blockers (give it its blockers)"
            raise StudyError(f"{where}: dose_response measures the current relative to a "
                             f"drug-free control, but {has}; apply the drug in the protocol's "
                             "segments")
        raise StudyError(f"{where}: this protocol applies several blockers ({applied}) and none "
                         f"of them uses the concentration axis {axis!r}: say which the drug-free "
                         f"control removes, e.g. {hint}; {kept}")
    if len(applied) > 1 and kind == "trapping":
        # the trapping protocol names its drug itself: the blocker applied in 'block' and not in
        # 'control' (a background such as Mg2+ is in both)
        drug = [lig for lig in applied
                if lig in _written_in(p, "block") and lig not in _written_in(p, "control")]
        if drug:
            return tuple(drug)
        raise StudyError(f"{where}: this protocol applies several blockers ({applied}); say which "
                         f"is the drug whose block and trapping are measured, e.g. {hint}: "
                         f"blocked_end_block, blocked_end_wash and trapped_occupancy count the "
                         f"channels carrying it (whatever else is bound), and {kept}")
    if len(applied) > 1:
        raise StudyError(f"{where}: this protocol applies several blockers ({applied}); say which "
                         f"is the drug whose use-dependent block is measured, e.g. {hint}: the "
                         f"drug-free control removes it, and {kept}")
    return tuple(applied)


def _dose_axis(study: Study, p) -> str | None:
    """The dose-response concentration axis (the one rule, used by the check, the fit and,
    through the Dataset's ``dose_axis`` attribute, :func:`ketacore.plot.dose_response`):
    ``analysis.concentration`` if given; else the first sweep axis named as a blocker's ligand
    (so a V x ketamine sweep fits over ketamine whatever the order of the axes); else the first
    sweep axis that is a concentration (unit M: from its values, its parameter default, or its
    use as a ligand concentration in the segments, e.g. ``ketamine = "$c"``); else None (the
    study check then asks for ``analysis.concentration``)."""
    given = (p.analysis or {}).get("concentration")
    if given:
        return given
    axes = [k for k in (p.sweep or {}) if k != "model"]
    ligands = _blocker_ligands(study)
    hit = next((k for k in axes if k in ligands), None)
    if hit is not None:
        return hit
    return next((k for k in axes if _axis_unit(study, p, k) == "M"), None)


#: dose_response: the fewest concentrations (with a finite response) a Hill fit is made from;
#: two points determine the two parameters exactly, with no test of the curve and no
#: uncertainty (a --quick study's 2-point Monte Carlo fit read "IC50 4.92 uM, nH 0.55" against
#: 20.4 uM exact), so with fewer the fit is NaN and the summary says why.
_MIN_HILL_POINTS = 3


def _point_conditions(pt, an) -> tuple[float, float]:
    """(V (V), temperature (K)) in force over a dose_response point's analysis window -- the
    samples its response averages, :attr:`_Analysis.win` -- with the boundary rule of
    :meth:`Protocol.voltage_at`; NaN for one that changes within the window (a prepulse the
    whole-protocol window includes, a ramp).  The Woodhull fit uses these, not the sweep axis's
    values: ``V = "$V - 10 mV"`` (a junction-potential correction) is fitted at the voltages the
    channels saw.  A step's temperature None is the scheme's."""
    win = getattr(an, "win", None)
    if win is None:
        return math.nan, math.nan
    t = (np.arange(pt.n_samples) * pt.dt)[win]
    if t.size == 0:
        return math.nan, math.nan
    idx = np.unique(pt.protocol.step_index_at(t, pt.dt))
    steps = pt.protocol.steps
    vs = {float(steps[i].V) for i in idx}
    ts = {float(pt.scheme.temperature if steps[i].temperature is None else steps[i].temperature) for i in idx}
    return (vs.pop() if len(vs) == 1 else math.nan), (ts.pop() if len(ts) == 1 else math.nan)


#: dose_response: the fewest voltages (with a Hill-fit IC50 that is not an extrapolation) the
#: Woodhull fit is made from; two determine zδ and K_d(0) exactly.
_MIN_WOODHULL_POINTS = 2

#: dose_response, Monte Carlo: the trials are split into at most this many groups for the
#: delete-a-group jackknife SEs of the Hill and Woodhull fits (every sweep point runs the same
#: trial streams, so their errors are correlated and only a resampling over trials sees it).
_JACKKNIFE_GROUPS = 20


def _hill_fit(c: np.ndarray, y: np.ndarray, start: "tuple[float, float] | None" = None
              ) -> tuple[float, float, bool]:
    """(IC50, nH, extrapolated) of the Hill fit 1/(1+(c/IC50)^nH) of one dose-response line;
    NaNs (and False) with fewer than :data:`_MIN_HILL_POINTS` usable points or no fit.
    ``start``: (IC50, nH) to start from (a jackknife replicate starts at the full fit: ~3x
    fewer evaluations), else from the interpolated half-response and nH 1."""
    from scipy.optimize import curve_fit
    from .experiments import _is_extrapolated
    ok = np.isfinite(y) & (c > 0)
    if ok.sum() < _MIN_HILL_POINTS:
        return math.nan, math.nan, False
    try:
        if start is not None and np.all(np.isfinite(start)):
            p0 = (float(np.clip(start[0], c[ok].min() * 1e-3, c[ok].max() * 1e3)),
                  float(np.clip(start[1], 0.1, 5.0)))
        else:
            p0 = (float(np.exp(np.interp(0.5, y[ok][::-1], np.log(c[ok])[::-1]))), 1.0)
        lo, hi = (c[ok].min() * 1e-3, 0.1), (c[ok].max() * 1e3, 5.0)
        popt = _hill_lm(c[ok], y[ok], p0)
        if popt is None or not (lo[0] <= popt[0] <= hi[0] and lo[1] <= popt[1] <= hi[1]):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # covariance undefined with 2 points
                popt, _ = curve_fit(_hill, c[ok], y[ok], p0=p0, bounds=(lo, hi))
    except (RuntimeError, ValueError):
        return math.nan, math.nan, False
    # the rule of experiments.ic50: the response never crosses 1/2 or the fitted IC50 lies
    # outside the tested concentrations (a fit bound, 1000x the top one, read "IC50 10 uM" for
    # 1-10 nM data with no flag: helper-98's audit)
    return float(popt[0]), float(popt[1]), bool(_is_extrapolated(c[ok], y[ok], float(popt[0])))


def _hill_lm(c: np.ndarray, y: np.ndarray, p0) -> "tuple[float, float] | None":
    """Unbounded Levenberg-Marquardt Hill fit in (ln IC50, ln nH) with the analytic Jacobian
    (MINPACK through ``scipy.optimize.least_squares(method="lm")``): ~4x faster than the
    bounded ``curve_fit`` and converged to ~1e-12 (curve_fit's default tolerances left ~2e-5
    relative in IC50); None when it does not converge (the caller then runs the bounded fit, as
    it does for a result outside the bounds)."""
    from scipy.optimize import least_squares
    lc = np.log(c)

    def res(q):
        return 1.0 / (1.0 + np.exp(np.clip(np.exp(q[1]) * (lc - q[0]), -700, 700))) - y

    def jac(q):
        nh = np.exp(q[1])
        u = np.clip(nh * (lc - q[0]), -700, 700)
        d = -0.25 / np.cosh(0.5 * u) ** 2   # d f / d u = -e^u / (1 + e^u)^2, without overflow
        return np.column_stack([-d * nh, d * nh * (lc - q[0])])
    try:
        r = least_squares(res, [math.log(p0[0]), math.log(p0[1])], jac=jac, method="lm",
                          xtol=1e-12, ftol=1e-12, gtol=1e-12)
    except (ValueError, FloatingPointError):
        return None
    if not r.success or not np.all(np.isfinite(r.x)):
        return None
    return float(np.exp(r.x[0])), float(np.exp(r.x[1]))


def _hill_fits(c: np.ndarray, resp: np.ndarray, start=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hill fits of every line of ``resp`` (..., concentration): IC50, nH, extrapolated;
    ``start``: (IC50s, nHs) of the lines to start from (:func:`_hill_fit`)."""
    other = resp.shape[:-1]
    ic, nh, ext = np.full(other, np.nan), np.full(other, np.nan), np.zeros(other, bool)
    for idx in np.ndindex(*other):
        ic[idx], nh[idx], ext[idx] = _hill_fit(c, resp[idx], None if start is None
                                               else (start[0][idx], start[1][idx]))
    return ic, nh, ext


def _jackknife_se(full: np.ndarray, reps: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Delete-a-group jackknife SE of ``full`` from its replicates ``reps`` (groups first, group
    ``j`` of ``sizes[j]`` trials left out): :func:`ketacore.analysis._jackknife_se` (Busing,
    Meijer & van der Leeden 1999, for unequal groups); NaN where a replicate is not finite."""
    from .analysis import _jackknife_se as jk
    full = np.asarray(full, float)
    return np.asarray(jk(full, np.asarray(reps, float), np.asarray(sizes, float)), float).reshape(full.shape)


def _woodhull_line(v: np.ndarray, ln_k: np.ndarray, T: float) -> tuple[float, float, float]:
    """(ln K_d(0), zδ, rms residual of ln K) of the unweighted Woodhull fit of one line: the
    fit of :func:`ketacore.experiments._woodhull_fit` (the one Woodhull least squares), whose
    residual-scatter SEs a study does not use (master equation: no noise; Monte Carlo: the
    trial jackknife), with the rms departure of the points from its line."""
    from .experiments import _woodhull_fit
    from .units import FARADAY, GAS_CONSTANT
    kd0, _, z, _ = _woodhull_fit(v, ln_k, None, T)
    a = math.log(kd0)
    resid = ln_k - (a + z * v * FARADAY / (GAS_CONSTANT * T))
    return a, z, float(np.sqrt(np.mean(resid ** 2)))


def _fit_woodhull(ds, src: str, vaxis: str, conds, ic: np.ndarray, ext: np.ndarray,
                  reps: "tuple[np.ndarray, np.ndarray] | None") -> None:
    """Woodhull fit over the voltage axis of the Hill-fit IC50s (Woodhull 1973,
    doi:10.1085/jgp.61.6.687): ``ln IC50(V) = ln K_d(0) + zδ·V/V_T``, V_T = RT/F, by unweighted
    least squares (the fit of ``kc.experiments.woodhull(method="exact")``), for each point of
    the other sweep axes, at the V and temperature each point runs at over its analysis window
    (:func:`_point_conditions`).  A voltage enters when its IC50 is finite and not an
    extrapolation and its points (one per concentration) share one V and one temperature; a
    line needs :data:`_MIN_WOODHULL_POINTS` such voltages, at one temperature.  Monte Carlo
    SEs: the delete-a-group jackknife over trials of the whole Hill + Woodhull fit (``reps`` =
    (replicate IC50s with the group axis first, group sizes)); the master equation has no
    noise, so no SE, but the rms departure of ln IC50 from the line (``woodhull_rms_*``: the
    Woodhull law's misfit, e.g. memantine's voltage-independent superficial site)."""
    dose = ds.attrs["dose_axis"]
    dims = list(ds[f"ic50_{src}"].dims)
    order = [d for d in dims if d != vaxis] + [vaxis]
    perm = [dims.index(d) for d in order]
    icv, extv = np.transpose(ic, perm), np.transpose(ext, perm)
    rep_ic = None if reps is None else np.transpose(reps[0], [0] + [p + 1 for p in perm])

    def per_ic50(values):   # (sweep) -> (..., V): the one value of each IC50's points, or NaN
        a = _sweep_array(ds, values).transpose(*order, dose).values
        with np.errstate(invalid="ignore"):
            return np.where(np.all(a == a[..., :1], axis=-1), a[..., 0], np.nan)
    V, T = per_ic50(conds[..., 0]), per_ic50(conds[..., 1])
    other = icv.shape[:-1]
    keys = ("kd0", "z_delta", "rms", "kd0_se", "z_delta_se", "T", "vmin", "vmax")
    out = {k: np.full(other, np.nan) for k in keys}
    n_used = np.zeros(other, np.int64)
    why = np.full(other, "", dtype=object)
    for idx in np.ndindex(*other):
        ok = np.isfinite(icv[idx]) & (icv[idx] > 0) & ~extv[idx]
        n_ic = int(ok.sum())
        ok &= np.isfinite(V[idx]) & np.isfinite(T[idx])
        n_used[idx] = n_ok = int(ok.sum())
        gone = (f"{n_ic - n_ok} voltage{'s' if n_ic - n_ok != 1 else ''} with an IC50 left out: V "
                "or temperature changes within the analysis window" if n_ic > n_ok else "")
        why[idx] = gone
        n_v = len(np.unique(V[idx][ok]))
        if n_v < _MIN_WOODHULL_POINTS:
            why[idx] = (f"{n_v} distinct voltage{'s' if n_v != 1 else ''} among the {n_ok} usable "
                        f"point{'s' if n_ok != 1 else ''} (an IC50 that is not an extrapolation, at one "
                        "V and temperature over the analysis window); the fit needs "
                        f"{_MIN_WOODHULL_POINTS}" + (f"; {gone}" if gone else ""))
            continue
        if len(np.unique(T[idx][ok])) != 1:
            why[idx] = "the voltages of this line run at different temperatures"
            continue
        v, t0 = V[idx][ok], float(T[idx][ok][0])
        a, z, rms = _woodhull_line(v, np.log(icv[idx][ok]), t0)
        out["kd0"][idx], out["z_delta"][idx], out["rms"][idx], out["T"][idx] = math.exp(a), z, rms, t0
        out["vmin"][idx], out["vmax"][idx] = v.min(), v.max()
        if rep_ic is not None:
            G = rep_ic.shape[0]
            ra, rz = np.full(G, np.nan), np.full(G, np.nan)
            for g in range(G):
                y = rep_ic[g][idx][ok]
                if np.all(np.isfinite(y) & (y > 0)):
                    ra[g], rz[g], _ = _woodhull_line(v, np.log(y), t0)
            se = _jackknife_se(np.array([a, z]), np.stack([ra, rz], axis=1), reps[1])
            out["kd0_se"][idx], out["z_delta_se"][idx] = math.exp(a) * se[0], se[1]
    od = order[:-1]
    unit = ds[f"ic50_{src}"].attrs.get("units", "")
    how = (f"Woodhull fit ln ic50_{src} = ln K_d(0) + z_delta V F/(R T) over {vaxis} (Woodhull "
           "1973), unweighted least squares over the voltages whose IC50 is not an extrapolation, "
           "at the V each point runs at over its analysis window")
    ds[f"z_delta_{src}"] = (od, out["z_delta"], {"units": "1", "long_name": "valence x electrical "
                                                 f"distance z_delta of the {how}"})
    ds[f"kd0_{src}"] = (od, out["kd0"], {"units": unit, "long_name": f"K_d(0) (the IC50 at 0 V) of the {how}"})
    if src == "mc":
        jk = (f"delete-a-group jackknife over trials ({len(reps[1]) if reps else 0} groups; the sweep "
              "points share their trial streams, so their errors are correlated)")
        ds["z_delta_mc_se"] = (od, out["z_delta_se"], {"units": "1", "long_name": f"SE of z_delta_mc, {jk}"})
        ds["kd0_mc_se"] = (od, out["kd0_se"], {"units": unit, "long_name": f"SE of kd0_mc, {jk}"})
    ds[f"woodhull_rms_{src}"] = (od, out["rms"], {
        "units": "1", "long_name": f"rms departure of ln ic50_{src} from the Woodhull line (the "
                                   "law's misfit, ~ the relative departure of the IC50s)"})
    ds[f"woodhull_voltages_{src}"] = (od, n_used, {
        "units": "1", "long_name": f"number of voltages with an IC50 that is not an extrapolation "
                                   f"and one V and temperature over the analysis window (z_delta_{src} "
                                   "uses them when there are at least 2 at one temperature)"})
    ds[f"woodhull_vmin_{src}"] = (od, out["vmin"], {"units": "V", "long_name": f"lowest voltage of the z_delta_{src} fit"})
    ds[f"woodhull_vmax_{src}"] = (od, out["vmax"], {"units": "V", "long_name": f"highest voltage of the z_delta_{src} fit"})
    ds[f"woodhull_temperature_{src}"] = (od, out["T"], {
        "units": "K", "long_name": f"temperature of V_T = RT/F in the z_delta_{src} fit"})
    ds[f"woodhull_why_{src}"] = (od, why.astype(str), {
        "units": "", "long_name": f"why z_delta_{src} is NaN or left voltages out (empty: every "
                                  "voltage with an IC50 was used)"})


def _sweep_array(ds, values):
    """``values`` (shaped as the sweep) as a DataArray over the Dataset's sweep dimensions."""
    import xarray as xr
    dims = list(ds["n_samples"].dims)
    return xr.DataArray(np.asarray(values, float), dims=dims, coords={d: ds[d] for d in dims})


def _woodhull_axis(study: Study, p) -> str | None:
    """The voltage axis of a dose_response's Woodhull fit (the one rule, used by the check and
    the fit): ``analysis.voltage`` if given; else the only sweep axis other than the
    concentration axis whose unit is V (:func:`_axis_unit`); else None (no Woodhull fit)."""
    given = (p.analysis or {}).get("voltage")
    if given:
        return given
    volts = _voltage_axes(study, p)
    return volts[0] if len(volts) == 1 else None


def _voltage_axes(study: Study, p) -> list[str]:
    """The sweep axes of a dose_response, other than its concentration axis, in volts."""
    conc = _dose_axis(study, p)
    return [k for k in (p.sweep or {}) if k not in ("model", conc) and _axis_unit(study, p, k) == "V"]


def _fit_dose_response(ds, study: Study, part: str, conds=None) -> None:
    """The Hill fits of a dose_response over its concentration axis (``ic50_*``, ``hill_*``,
    ``ic50_extrapolated_*``; Monte Carlo: ``ic50_mc_se``, ``hill_mc_se`` by the delete-a-group
    jackknife over trials) and, with a voltage axis, the Woodhull fits (:func:`_fit_woodhull`).
    ``conds``: (sweep..., 2) V and temperature of each point over its analysis window."""
    p = study.parts[part]
    axis = _dose_axis(study, p)
    axis = sweep_dimensions(list(p.sweep)).get(axis, axis)
    if axis is None or axis not in ds.dims:
        raise StudyError(f"{study._source}: {study._pw(part)}.analysis.concentration: dose_response "
                         "needs a concentration sweep axis")
    ds.attrs["dose_axis"] = axis   # the concentration dimension (read by plot.dose_response)
    vaxis = _woodhull_axis(study, p)
    vaxis = sweep_dimensions(list(p.sweep)).get(vaxis, vaxis)
    woodhull = vaxis is not None and vaxis in ds.dims and conds is not None
    c = ds[axis].values
    for src in ("det", "mc"):
        v = f"response_{src}"
        if v not in ds:
            continue
        da = ds[v].transpose(..., axis)
        ic, nh, ext = _hill_fits(c, da.values)
        odims = [d for d in da.dims if d != axis]
        cu = ds[axis].attrs.get("units", "")
        ds[f"ic50_{src}"] = (odims, ic, {"units": cu, "long_name": f"IC50 from a Hill fit "
                                         f"1/(1+(c/IC50)^nH) of response_{src}"})
        ds[f"hill_{src}"] = (odims, nh, {"units": "1", "long_name": f"Hill slope nH of the fit of response_{src}"})
        ds[f"ic50_extrapolated_{src}"] = (odims, ext, {
            "units": "1", "long_name": f"ic50_{src} is an extrapolation of the Hill fit (response_{src} "
                                       "never crosses 1/2, or the IC50 lies outside the tested range)"})
        reps = None
        if src == "mc":
            jk = "not computed: fewer than 2 trials"
            ds["ic50_mc_se"] = (odims, np.full(ic.shape, np.nan), {"units": cu, "long_name": f"SE of ic50_mc, {jk}"})
            ds["hill_mc_se"] = (odims, np.full(ic.shape, np.nan), {"units": "1", "long_name": f"SE of hill_mc, {jk}"})
        if src == "mc" and "response_trials" in ds:
            # delete-a-group jackknife over trials: response_mc is the trial mean of
            # response_trials, so each replicate is the mean without one group of trials
            tr = ds["response_trials"].transpose(*odims, axis, "trial").values
            n = tr.shape[-1]
            G = min(n, _JACKKNIFE_GROUPS)
            if G >= 2:
                bounds = np.linspace(0, n, G + 1).round().astype(int)
                sizes = np.diff(bounds).astype(float)
                total = tr.sum(axis=-1)
                rep_ic, rep_nh = [], []
                for g in range(G):
                    r = (total - tr[..., bounds[g]:bounds[g + 1]].sum(axis=-1)) / (n - sizes[g])
                    i_, h_, _ = _hill_fits(c, r, start=(ic, nh))
                    rep_ic.append(i_)
                    rep_nh.append(h_)
                rep_ic, rep_nh = np.array(rep_ic), np.array(rep_nh)
                reps = (rep_ic, sizes)
                jk = (f"delete-a-group jackknife over trials ({G} groups; the sweep points share "
                      "their trial streams); NaN for an extrapolated IC50 (a fit at or beyond the "
                      "data's range has no meaningful SE)")
                ds["ic50_mc_se"] = (odims, np.where(ext, np.nan, _jackknife_se(ic, rep_ic, sizes)),
                                    {"units": cu, "long_name": f"SE of ic50_mc, {jk}"})
                ds["hill_mc_se"] = (odims, np.where(ext, np.nan, _jackknife_se(nh, rep_nh, sizes)),
                                    {"units": "1", "long_name": f"SE of hill_mc, {jk}"})
        if ext.any():
            warnings.warn(
                f"{study._source}: {study._pw(part)}.analysis: dose_response: the "
                f"{'master-equation' if src == 'det' else 'Monte Carlo'} Hill fit's IC50 is an "
                f"extrapolation beyond the tested concentrations at {int(ext.sum())} of {ext.size} "
                f"fit(s) (ic50_extrapolated_{src}); test concentrations on both sides of the IC50",
                RuntimeWarning, stacklevel=2)
        if woodhull:
            _fit_woodhull(ds, src, vaxis, conds, ic, ext, reps)
    if woodhull:
        ds.attrs["woodhull_axis"] = vaxis   # the voltage dimension of z_delta_* and kd0_*
        sd = list(ds["n_samples"].dims)
        ds["V_window"] = (sd, np.asarray(conds[..., 0], float), {
            "units": "V", "long_name": "membrane voltage over the point's analysis window, the x of "
                                       "the Woodhull fit (NaN: it changes within the window)"})
        ds["temperature_window"] = (sd, np.asarray(conds[..., 1], float), {
            "units": "K", "long_name": "temperature over the point's analysis window, of V_T in the "
                                       "Woodhull fit (NaN: it changes within the window)"})
    else:
        volts = _voltage_axes(study, p)
        if len(volts) > 1:
            ds.attrs["woodhull_note"] = (
                f"no Woodhull fit: {len(volts)} sweep axes are in volts ({', '.join(volts)}); name "
                f"the one to fit over with analysis.voltage (e.g. voltage = \"{volts[0]}\")")


def _need_results_io(write: bool = True) -> None:
    """ImportError before anything runs when the results cannot be built (xarray) or written
    (netCDF4, only when ``write``: an in-memory run writes nothing): optional extras
    (``pip install "ketacore[run]"``), checked at the start so a run does not compute for
    minutes and then fail at the write."""
    import importlib.util
    need = ("xarray", "netCDF4") if write else ("xarray",)
    missing = [m for m in need if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"run_study needs {' and '.join(need)} (missing: {', '.join(missing)}): "
                          "pip install \"ketacore[run]\" (or, from a source tree, "
                          "pip install \".[run]\")")


def _write_netcdf(tree, path: Path) -> None:
    """Deterministic NetCDF-4 (zlib level 4 + shuffle; no timestamps), atomic rename."""
    enc = {}
    for node in tree.subtree:
        ds = node.to_dataset()
        enc[node.path] = {v: {"zlib": True, "complevel": 4, "shuffle": True}
                          for v in ds.data_vars if ds[v].dtype.kind in "iuf"}
    tmp = path.with_name(path.name + f".tmp{os.getpid()}_{threading.get_ident()}")
    try:
        tree.to_netcdf(tmp, engine="netcdf4", encoding=enc)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def open_results(path: str | os.PathLike):
    """Read a results file written by :func:`run_study` (an ``xarray.DataTree``).

    Parameters
    ----------
    path : str or os.PathLike
        The NetCDF-4 results file in :func:`run_study`'s ``output`` folder
        (``[outputs].results``, default ``results.nc``).

    Returns
    -------
    xarray.DataTree
        As :func:`run_study` returns it: ``tree[name]`` is the ``xarray.Dataset`` of protocol
        ``name``, every variable with ``units`` and ``long_name``.  Opened lazily (the file
        stays open until the tree is closed).

    Raises
    ------
    ImportError
        If xarray or netCDF4 is not installed (``pip install ketacore[xarray]``).
    FileNotFoundError
        If ``path`` does not exist.
    OSError
        If ``path`` is not a NetCDF-4 file.
    """
    import xarray as xr
    return xr.open_datatree(path, engine="netcdf4")


# ------------------------------------------------------------------------------------------
# Command line (ketacore run)
# ------------------------------------------------------------------------------------------
def _fmt(v: float, pct: bool = True) -> str:
    if v is None or not np.isfinite(v):
        return "   -  "
    return f"{100 * v:5.1f}%" if pct else f"{v:.3g}"


def summary_table(tree) -> str:
    """Short text summary of a study result (what ``ketacore run`` prints)."""
    lines = []
    for name, node in tree.children.items():
        ds = node.to_dataset()
        kind = ds.attrs.get("analysis", "")
        axes = [d for d in ds["n_samples"].dims]
        swept = any(ds[a].attrs.get("parameter", a) == "model" for a in axes)
        head = f"[{name}] {kind or 'protocol'}: {ds.attrs.get('scheme')}" + \
               (" (model swept)" if swept else "") + f", {ds.attrs['n_trials']} trials x " \
               f"{ds.attrs['n_channels']} channels, method {ds.attrs['method']}"
        lines.append(head)
        metrics = {"trapping": ["block", "trapped", "trapped_occupancy"],
                   "use_dependence": ["block_last", "block_total"],
                   "dose_response": ["response"]}.get(kind, [])
        if not metrics:
            continue
        wid = {m: max(14, len(m) + 4) for m in metrics}
        # each sweep column as wide as its longest label plus a gap (a model name is longer
        # than 12 characters: "-90 mVerreger2005_2a" ran together, helper-98's audit)
        labels = {a: [_axis_label(v, ds[a].attrs.get("units", "")) for v in ds[a].values] for a in axes}
        awid = {a: max([12, len(str(ds[a].attrs.get("parameter", a))) + 2]
                       + [len(x) + 2 for x in labels[a]]) for a in axes}
        hdr = "  " + "".join(f"{ds[a].attrs.get('parameter', a):>{awid[a]}}" for a in axes) + "".join(
            f"{m + ' ME':>{wid[m]}}{m + ' MC':>{wid[m] + 6}}" for m in metrics)
        lines.append(hdr)
        for idx in np.ndindex(*ds["n_samples"].shape):
            sel = {a: i for a, i in zip(axes, idx)}
            row = "  "
            for a in axes:
                row += f"{labels[a][sel[a]]:>{awid[a]}}"
            for m in metrics:
                det = ds[f"{m}_det"].isel(sel).item() if f"{m}_det" in ds else np.nan
                mc = ds[f"{m}_mc"].isel(sel).item()
                sem = ds[f"{m}_mc_sem"].isel(sel).item() if f"{m}_mc_sem" in ds else np.nan
                row += f"{_fmt(det):>{wid[m]}}{_fmt(mc) + ' ± ' + _fmt(sem).strip():>{wid[m] + 6}}"
            lines.append(row)
        if kind == "trapping":
            lines.extend(_wrap("  trapped: " + _trapping_note(ds)))
        if kind == "dose_response":
            for src in ("det", "mc"):
                if f"ic50_{src}" not in ds:
                    continue
                ic, nh = ds[f"ic50_{src}"], ds[f"hill_{src}"]
                # one fit per point of the other sweep axes (e.g. per voltage)
                for idx in np.ndindex(*ic.shape):
                    sel = dict(zip(ic.dims, idx))
                    at = _point_label(ds, sel)
                    head = (f"  Hill fit ({'master equation' if src == 'det' else 'Monte Carlo'})"
                            f"{' at ' + at if at else ''}: ")
                    n_c = ds.sizes.get(ds.attrs.get("dose_axis", ""), 0)
                    if not np.isfinite(float(ic.isel(sel))) and n_c < _MIN_HILL_POINTS:
                        lines.append(head + f"not determined ({n_c} concentration"
                                     f"{'s' if n_c != 1 else ''}; a Hill fit needs at least "
                                     f"{_MIN_HILL_POINTS})")
                        continue
                    ic_v, nh_v = float(ic.isel(sel)), float(nh.isel(sel))
                    ise = float(ds["ic50_mc_se"].isel(sel)) if src == "mc" and "ic50_mc_se" in ds else np.nan
                    hse = float(ds["hill_mc_se"].isel(sel)) if src == "mc" and "hill_mc_se" in ds else np.nan
                    line = (f"IC50 {_ic50_label(ic_v, ic.attrs.get('units', ''), ds)}"
                            + (f" ± {100 * ise / ic_v:.2g}%" if np.isfinite(ise) and ic_v > 0 else "")
                            + f", nH {nh_v:.2f}" + (f" ± {hse:.2f}" if np.isfinite(hse) else ""))
                    flag = f"ic50_extrapolated_{src}"
                    if flag in ds and bool(ds[flag].isel(sel)):
                        line += " -- " + _extrapolation_note(ds, src, sel, ic.attrs.get("units", ""))
                    lines.append(head + line)
            for src in ("det", "mc"):
                if f"z_delta_{src}" in ds:
                    lines.extend(_woodhull_lines(ds, src))
            if ds.attrs.get("woodhull_note"):
                lines.extend(_wrap("  " + ds.attrs["woodhull_note"]))
    lines.append("  (ME = master equation, exact; MC = Monte Carlo mean ± SEM over trials)")
    return "\n".join(lines)


def _point_label(ds, sel: dict) -> str:
    """"V -70 mV, erreger2005_2b": the sweep values of a point (``sel``: dimension -> index)."""
    return ", ".join(f"{ds[d].attrs.get('parameter', d)} "
                     f"{_axis_label(ds[d].values[i].item(), ds[d].attrs.get('units', ''))}"
                     if d != "model" else str(ds[d].values[i]) for d, i in sel.items())


def _woodhull_lines(ds, src: str) -> list[str]:
    """The summary's Woodhull-fit lines of a dose_response over a voltage axis: one per point of
    the other sweep axes (besides concentration and voltage)."""
    vaxis = ds.attrs.get("woodhull_axis", "")
    vname = ds[vaxis].attrs.get("parameter", vaxis)
    zd, kd = ds[f"z_delta_{src}"], ds[f"kd0_{src}"]
    unit = kd.attrs.get("units", "")
    lines = []
    for idx in np.ndindex(*zd.shape):
        sel = dict(zip(zd.dims, idx))
        at = _point_label(ds, sel)
        head = (f"  Woodhull fit over {vname} ({'master equation' if src == 'det' else 'Monte Carlo'})"
                f"{' at ' + at if at else ''}: ")
        why = str(ds[f"woodhull_why_{src}"].isel(sel).values) if f"woodhull_why_{src}" in ds else ""
        z = float(zd.isel(sel))
        if not np.isfinite(z):
            lines.append(head + f"not determined ({why or 'no fit'})")
            continue
        k = float(kd.isel(sel))
        n = int(ds[f"woodhull_voltages_{src}"].isel(sel))
        lo, hi = (float(ds[f"woodhull_{e}_{src}"].isel(sel)) for e in ("vmin", "vmax"))
        T = float(ds[f"woodhull_temperature_{src}"].isel(sel))
        if src == "mc":
            zse, kse = float(ds["z_delta_mc_se"].isel(sel)), float(ds["kd0_mc_se"].isel(sel))
            txt = (f"zδ {z:.3f}" + (f" ± {zse:.3f}" if np.isfinite(zse) else "")
                   + f", K_d(0) {_ic50_label(k, unit, ds)}"
                   + (f" ± {100 * kse / k:.2g}%" if np.isfinite(kse) and k > 0 else ""))
        else:
            txt = f"zδ {z:.3f}, K_d(0) {_ic50_label(k, unit, ds)}"
        txt += (f" ({n} voltages, {lo * 1e3:g} to {hi * 1e3:g} mV, {T - 273.15:.1f} °C"
                + ((", jackknife SEs over trials" if np.isfinite(zse) else ", no SE: fewer than 2 trials")
                   if src == "mc" else "") + ")")
        rms = float(ds[f"woodhull_rms_{src}"].isel(sel))
        if src == "det" and rms > 0.01:
            txt += (f"; ln IC50 departs from the Woodhull line by {rms:.2g} rms (~{100 * rms:.2g}% "
                    "in IC50): not a one-site Woodhull block over this range")
        if why:
            txt += f"; left out: {why}"
        lines.append(head + txt)
    return lines


def _trapping_note(ds) -> str:
    """The CLI footnote defining the ``trapped`` and ``trapped_occupancy`` columns."""
    d = ds["trapped_mc"].attrs.get("definition", "") if "trapped_mc" in ds else ""
    m = re.search(r"over the first (.+?) of the 'recovery'", d)
    early = m.group(1) if m else "`early`"
    # (with a background blocker only the channels carrying the drug count: say which)
    ln = ds["blocked_end_block_mc"].attrs.get("long_name", "") if "blocked_end_block_mc" in ds else ""
    m = re.search(r"carrying the drug \((.+?)\)", ln)
    drug = f" (channels carrying {m.group(1)})" if m else ""
    return (f"(1 - I_rec/I_ctl)/block, I_rec and I_ctl = mean currents over the first {early} of "
            "recovery and of control (study definition, window means; "
            "kc.experiments.trapping(...).trapped_current, on the validation page, uses the "
            "first-response peak instead and is usually higher).  trapped_occupancy = blocked "
            f"occupancy{drug} after wash / at the end of block.")


def _wrap(text: str, width: int = 100) -> list[str]:
    import textwrap
    return textwrap.wrap(text, width, subsequent_indent="    ")


def _extrapolation_note(ds, src: str, sel: dict, unit: str) -> str:
    """Why a flagged Hill-fit IC50 is not determined, with the bound the data give."""
    axis = ds.attrs.get("dose_axis", "")
    y = ds[f"response_{src}"].isel(sel).transpose(axis).values
    c = ds[axis].values
    ok = np.isfinite(y) & (c > 0)
    lo, hi = _ic50_label(float(c[ok].min()), unit, ds), _ic50_label(float(c[ok].max()), unit, ds)
    inh = 1.0 - y[ok]
    if inh.max() < 0.5:
        why = f"IC50 > {hi} (largest inhibition {inh.max() * 100:.3g} %)"
    elif inh.min() > 0.5:
        why = f"IC50 < {lo} (smallest inhibition {inh.min() * 100:.3g} %)"
    else:
        why = f"the fit puts it outside the tested {lo} to {hi}"
    return f"EXTRAPOLATED, not determined by the data: {why}"


def _ic50_label(v: float, unit: str, ds) -> str:
    """An IC50 in its own units (those of the concentration axis it was fitted over)."""
    if unit in ("M", "s", "V", "Hz"):
        return _axis_label(v, unit)
    axis = ds.attrs.get("dose_axis", "")
    name = ds[axis].attrs.get("parameter", axis) if axis in ds.coords else axis
    return f"{v:g}" + (f" (in the units of the {name} axis)" if name else "")


def _axis_label(v: Any, unit: str) -> str:
    if isinstance(v, str):
        return v
    v = float(v)
    if unit == "M":
        for f, u in ((1e-3, "mM"), (1e-6, "uM"), (1e-9, "nM")):
            if abs(v) >= f or f == 1e-9:
                return f"{v / f:g} {u}"
    if unit == "s":
        return f"{v:g} s" if abs(v) >= 1 else f"{v * 1e3:g} ms"
    if unit == "V":
        return f"{v * 1e3:g} mV"
    if unit == "Hz":
        return f"{v:g} Hz"
    return f"{v:g}"


def main_run(args) -> int:
    """``ketacore run [STUDY] [-o DIR] [--workers N] [--scheduler ADDRESS] [--quick] [-q]``."""
    t0 = time.perf_counter()
    workers = getattr(args, "workers", None)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        print(f"ketacore run: --workers must be an integer >= 1, got {workers!r}", file=sys.stderr)
        return 2
    try:
        # a path (even without .toml) is always read as a file, never as TOML text
        study = Study.from_toml(Path(args.study)) if args.study else default_study()
        if getattr(args, "quick", False):
            study = study.quick()
    except (StudyError, OSError) as e:   # OSError: the study file cannot be read
        print(f"ketacore run: {e}", file=sys.stderr)
        return 2
    out = Path(args.output) if args.output else Path.cwd() / f"ketacore-{study.name}"
    try:
        _check_output_dir(out)
    except OSError as e:   # NotADirectoryError / PermissionError for -o, before any work
        print(f"ketacore run: {e}", file=sys.stderr)
        return 2
    executor = None
    client = None
    if getattr(args, "scheduler", None):
        try:
            from distributed import Client
        except ImportError:
            print("ketacore run: --scheduler needs dask.distributed: pip install 'ketacore[dask]'",
                  file=sys.stderr)
            return 2
        failed = None
        try:
            client = Client(args.scheduler)
        except (OSError, ValueError) as e:   # unreachable address / unknown address scheme
            failed = str(e)
        if failed is not None:
            # the half-built Client set dask's global scheduler to "dask.distributed" before it
            # failed, and restores it only when collected (its traceback is gone now): collect it,
            # or later xarray/dask work in this process tries to reach the unreachable scheduler
            import gc
            gc.collect()
            print(f"ketacore run: --scheduler {args.scheduler}: cannot connect: {failed}", file=sys.stderr)
            return 2
        executor = client.get_executor(pure=False)
    quiet = getattr(args, "quiet", False)
    if not quiet:
        where = f"dask scheduler {args.scheduler}" if client else \
            f"{workers or _default_workers()} local worker thread(s)"
        print(f"ketacore {__version__}: study {study.name!r} -> {out}  ({where})", flush=True)
    try:
        tree = run_study(study, executor, output=out, progress=not quiet, workers=workers)
    except StudyConflictError as e:
        print(f"ketacore run: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"\nketacore run: interrupted; finished chunks are kept in {out} -- run the same "
              "command again to resume", file=sys.stderr)
        return 130
    except StudyError as e:
        print(f"ketacore run: {e}", file=sys.stderr)
        return 2
    finally:
        if client is not None:
            client.close()
    print(summary_table(tree))
    files = sorted(p.name for p in out.iterdir() if p.suffix in (".nc", ".png"))
    print(f"wrote {out}/: {', '.join(files)}  ({time.perf_counter() - t0:.1f} s)")
    return 0
