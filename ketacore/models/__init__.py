"""Built-in kinetic schemes of published channel models (``kc.models``).

Each model is a TOML scheme file in this package (parameters in SI, with citation, DOI and the
source's conventions in ``notes``), loaded as a fresh :class:`ketacore.Scheme` on every
:func:`get` call, so callers may not disturb each other.  The TOML files were written by
``ketacore/models/_build.py``, which records where every number comes from.

======================  =================================================================
name                    model
======================  =================================================================
``ch82``                Colquhoun & Hawkes 1982 reference mechanism (ligand ``agonist``),
                        doi:10.1098/rstb.1982.0156
``destexhe1994``        Destexhe/Mainen/Sejnowski 5-state NMDA, original ModelDB 18198
                        form WITHOUT statistical factors, rate set "DMS 1996",
                        doi:10.1007/BF00961734
``destexhe1994_sf``     the same rates WITH statistical factors (2·Rb·G, Ru; Rb·G, 2·Ru;
                        ModelDB 7988 / Moradi 2012 form)
``destexhe1998_ampa``   Destexhe/Mainen/Sejnowski 6-state AMPA (ligand ``glutamate``),
                        ModelDB 18198 ampa5.mod, no statistical factors, desensitizing
``destexhe1998_gabaa``  Destexhe/Mainen/Sejnowski 5-state GABA-A (ligand ``gaba``, two open
                        states, E_rev -80 mV), ModelDB 18198 gabaa5.mod
``erreger2005_2a``      Erreger et al. 2005 GluN1/GluN2A 8-state, doi:10.1113/jphysiol.2004.080028
``erreger2005_2b``      Erreger et al. 2005 GluN1/GluN2B 8-state
``kampa2004``           Kampa et al. 2004 10-state with kinetic Mg2+ (ligands ``glutamate``,
                        ``mg``), ModelDB 50207
``popescu2004_h``       Popescu et al. 2004 GluN1/GluN2A 7-state (no desensitization), high
                        gating mode, doi:10.1038/nature02775
``popescu2004_m``       the same scheme, medium (most common) mode
``popescu2004_l``       the same scheme, low mode
======================  =================================================================

NMDA models use the ligand name ``"glutamate"`` (M), assume saturating glycine and a
single-channel conductance of 50 pS; E_rev follows each source (0 mV, Kampa +5 mV).  The
synaptic AMPA and GABA-A models take their rates and E_rev from the ModelDB 18198 files; those
files give only a per-synapse gmax (500 pS), so the single-channel conductances (AMPA 10 pS,
GABA-A 27.2 pS) are library choices whose sources are in each model's ``notes``.

Examples
--------
>>> import ketacore as kc
>>> kc.models.available()[:2]
('ch82', 'destexhe1994')
>>> g = kc.models.get("destexhe1994")
>>> g.states
('C0', 'C1', 'C2', 'D', 'O')
"""
from __future__ import annotations

import functools
import pathlib

from ..scheme import Scheme

_HERE = pathlib.Path(__file__).resolve().parent

_NAMES = ("ch82", "destexhe1994", "destexhe1994_sf", "destexhe1998_ampa", "destexhe1998_gabaa",
          "erreger2005_2a", "erreger2005_2b", "kampa2004", "popescu2004_h", "popescu2004_m",
          "popescu2004_l")


def available() -> tuple[str, ...]:
    """Names of the built-in models, in a fixed order.

    Returns
    -------
    tuple of str
    """
    return _NAMES


def path(name: str) -> pathlib.Path:
    """Path of the TOML file of built-in model ``name``.

    Raises
    ------
    ValueError
        Unknown name (the message lists the available ones).
    """
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    if name not in _NAMES:
        raise ValueError(f"unknown model {name!r}; available: {list(_NAMES)}")
    return _HERE / f"{name}.toml"


@functools.lru_cache(maxsize=None)
def _data(name: str) -> dict:
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    with open(path(name), "rb") as fh:
        return tomllib.load(fh)


def get(name: str) -> Scheme:
    """A built-in model as a new :class:`~ketacore.Scheme`.

    Parameters
    ----------
    name : str
        One of :func:`available`.

    Returns
    -------
    Scheme
        A fresh object on every call (the parsed file is cached, the Scheme is not shared).

    Raises
    ------
    ValueError
        Unknown name.
    """
    return Scheme.from_dict(_data(path(name).stem))


def as_scheme(model):
    """``model`` itself, or -- when it is a string -- the library model of that name
    (:func:`get`; ValueError listing the names).  The one rule by which every function that
    takes a scheme (``solve``, ``simulate``, ``block``, ``theory.*``, ``experiments.*``,
    ``fitting.fit_hjc``) also takes a model name; type checks stay with the caller."""
    return get(model) if isinstance(model, str) else model


def describe(name: str) -> str:
    """Human-readable description of model ``name``: source, DOI, conventions, states and
    rate laws with units (:meth:`Scheme.describe`)."""
    return get(name).describe()


__all__ = ["as_scheme", "available", "get", "describe", "path"]
