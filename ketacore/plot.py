"""Figures for simulation and study results (matplotlib, Agg backend; optional extra ``plot``).

Every function draws on a new figure and, if ``path`` is given, saves a PNG (``dpi`` 110 by
default).  Axes carry units; currents are in pA, times in s, concentrations in µM.  The input
is an ``xarray.Dataset``:

* a study protocol's Dataset (``tree["trapping"]`` from :func:`ketacore.run_study`, or
  ``open_results(path)["trapping"]``; a DataTree node is accepted): every function;
* a single run's Dataset, ``kc.solve(...).to_xarray()`` (master equation) or
  ``kc.simulate(...).to_xarray()`` (Monte Carlo, ``record="counts"`` or ``"summary"``), or
  that :class:`~ketacore.solve.Result` / :class:`~ketacore.simulate.SimulationResult`
  itself: :func:`current_traces` and :func:`occupancy`.  The study figures
  (:func:`dose_response`, :func:`trapping`, :func:`use_dependence`) need a study's analysis
  and refuse a single run's Dataset with a TypeError naming what to call instead (for a
  single experiment, the ``plot()`` of the :mod:`ketacore.experiments` result).

``current_traces``   mean ± SD band, individual trials and the master-equation curve
``occupancy``        stacked state occupancy (blocked states of each blocker pooled)
``dose_response``    response vs concentration, Monte Carlo and master equation, Hill fit
``trapping``         trapping protocol time course with phases, per blocker concentration
``use_dependence``   block vs stimulation frequency, and block vs pulse number
``study_figures``    all figures that fit a study result, written to a folder
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np

__all__ = ["current_traces", "occupancy", "dose_response", "trapping", "use_dependence",
           "study_figures", "figures_for", "FIGSIZE", "DPI", "MAX_DPI", "MAX_PIXELS", "FIGURES"]

#: Default figure size (inches) and resolution of saved PNGs.
FIGSIZE = (8.0, 5.0)
DPI = 110
#: Largest ``dpi`` accepted, and largest saved image (pixels; the renderer holds 4 bytes per
#: pixel, and matplotlib's Agg caps each side below 2**16).
MAX_DPI = 1200
MAX_PIXELS = 100_000_000
#: Figure kinds that :func:`study_figures` can write (its ``which``).
FIGURES = ("trapping", "use_dependence", "dose_response", "traces", "occupancy")

_PHASE_COLORS = {"control": "#e8f0fb", "block": "#fde8e8", "wash": "#f2f2f2", "recovery": "#e9f6ea"}
_MC = "#1f5fa8"
_DET = "#111111"


#: the one message for a missing matplotlib (every ``plot()`` method and ketacore.plot)
_NO_MATPLOTLIB = "{what} needs matplotlib: pip install matplotlib (or 'ketacore[plot]')"


def require_pyplot(what: str = "plot()"):
    """``matplotlib.pyplot`` (current backend untouched), or ``ImportError("plot() needs
    matplotlib: …")`` when matplotlib is missing or broken: the shared check of every
    ``plot()`` method (experiments, analysis) -- no raw ModuleNotFoundError."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(_NO_MATPLOTLIB.format(what=what)) from None
    return plt


def _plt():
    try:
        import matplotlib
    except ImportError:
        raise ImportError(_NO_MATPLOTLIB.format(what="ketacore.plot")) from None
    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        try:
            matplotlib.use("Agg", force=False)
        except Exception:  # pragma: no cover - backend already fixed by the user
            pass
    import matplotlib.pyplot as plt
    return plt


def _check_dpi(dpi) -> float:
    from ._validate import real
    d = real("dpi", dpi, positive=True)
    if d > MAX_DPI:
        raise ValueError(f"dpi must be <= {MAX_DPI} (dots per inch of the saved PNG), got {d:g}")
    return d


from ._validate import plain as _plain  # noqa: E402  (one rule for numbers in messages)


def _check_figsize(figsize):
    from ._validate import real
    if figsize is None:
        return None
    if isinstance(figsize, (str, bytes)) or not hasattr(figsize, "__len__") or len(figsize) != 2:
        raise TypeError(f"figsize must be a pair (width, height) in inches, got {_plain(figsize)}")
    return (real("figsize[0]", figsize[0], positive=True),
            real("figsize[1]", figsize[1], positive=True))


def _check_pixels(size, dpi: float) -> None:
    w, h = size[0] * dpi, size[1] * dpi
    if not (w * h <= MAX_PIXELS and max(w, h) < 2 ** 16):
        raise ValueError(f"figsize {size[0]:g} x {size[1]:g} in at dpi={dpi:g} is a "
                         f"{w:.0f} x {h:.0f} pixel image ({w * h / 1e6:.3g} Mpixel), more than "
                         f"{MAX_PIXELS / 1e6:g} Mpixel (or 65535 pixels a side); lower dpi or "
                         "figsize")


def _check_output(path, dpi, figsize=None):
    """Validate dpi/figsize (and the image size when saving) before drawing anything."""
    dpi = _check_dpi(dpi)
    figsize = _check_figsize(figsize)
    if path is not None and figsize is not None:
        _check_pixels(figsize, dpi)
    return dpi, figsize


#: What the plot functions accept (the text of their TypeError).
_EXPECTED = ("an xarray.Dataset of a study protocol (tree[name] of kc.run_study or "
             "kc.open_results), or of a single run (kc.solve(...).to_xarray(), "
             "kc.simulate(...).to_xarray())")


def _ds(obj, what: str = "ds"):
    """A Dataset from a Dataset, a DataTree node, or a solve/simulate result (its
    ``to_xarray()``); TypeError naming ``what`` otherwise."""
    if hasattr(obj, "data_vars") and hasattr(obj, "attrs"):
        return obj
    if hasattr(obj, "to_dataset"):               # a DataTree node
        return obj.to_dataset()
    from .simulate import SimulationResult
    from .solve import Result
    if isinstance(obj, (Result, SimulationResult)):
        return obj.to_xarray()
    raise TypeError(f"{what} must be {_EXPECTED}, got {type(obj).__name__}")


def _kind(ds) -> str:
    """``"study"`` (a study protocol's Dataset), ``"solve"`` (Result.to_xarray()),
    ``"counts"`` / ``"summary"`` (SimulationResult.to_xarray() with that record); TypeError
    for any other Dataset."""
    names = set(ds.variables)
    if "n_samples" in names and "time" in names:
        return "study"
    if "occupancy" in names and tuple(ds["occupancy"].dims) == ("time", "state"):
        return "solve"
    if "counts" in names and tuple(ds["counts"].dims) == ("trial", "time", "state"):
        return "counts"
    if {"mean", "var"} <= names and tuple(ds["mean"].dims) == ("time", "state"):
        return "summary"
    raise TypeError(f"ds must be {_EXPECTED}; this Dataset has variables "
                    f"{sorted(str(n) for n in ds.data_vars)} and none of the layouts "
                    "(a study's 'n_samples', a solve result's 'occupancy', a simulation's "
                    "'counts' or 'mean'/'var')")


def _study_only(ds, fig: str, instead: str) -> None:
    """TypeError for a single run's Dataset given to a study figure."""
    kind = _kind(ds)
    if kind != "study":
        src = ("kc.solve(...).to_xarray()" if kind == "solve"
               else "kc.simulate(...).to_xarray()")
        raise TypeError(f"plot.{fig} draws a study protocol's analysis and needs its Dataset "
                        f"(tree[name] of kc.run_study with analysis '{fig}', or "
                        f"kc.open_results(path)[name]); this is a single run ({src}): use "
                        f"plot.current_traces / plot.occupancy for it, or {instead}")


def _check_point(ds, point, what: str = "point") -> dict:
    """``point`` as {sweep dimension: index} of the study Dataset ``ds``, for every sweep
    dimension; ValueError/TypeError naming ``point`` otherwise.  A value is an integer index
    (negative from the end), or a coordinate value: a float in SI units (``1e-6`` for 1 µM), a
    quantity string (``"1 uM"``, ``"-30 mV"``) or, on a model axis, the model's name; a float
    value matches a coordinate to 1e-6 relative (a float32 value included)."""
    if not isinstance(point, dict):
        raise TypeError(f"{what} must be a dict {{sweep dimension: index or value}}, got "
                        f"{type(point).__name__}")
    dims = _sweep_dims(ds)
    out = {}
    for d, i in point.items():
        if d not in dims:
            raise ValueError(f"{what}: {d!r} is not a sweep dimension of this Dataset; its sweep "
                             f"dimensions are {dims}")
        n = ds.sizes[d]
        coords = ds[d].values if d in ds.coords else np.arange(n)
        if isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_)):
            if not -n <= int(i) < n:
                raise ValueError(f"{what}[{d!r}] must be an integer index in [0, {n}) or one of "
                                 f"its values {_plain(coords)}, got {_plain(i)}")
            out[d] = int(i) % n
            continue
        value = i
        if isinstance(i, str) and coords.dtype.kind not in "OUS":
            from .study import StudyError, _evaluate
            try:
                value = _evaluate(i, {}, f"{what}[{d!r}]")
            except StudyError as e:
                raise ValueError(f"{e} (or give an integer index in [0, {n}))") from None
        if coords.dtype.kind in "OUS":                         # (model names)
            hit = [k for k, c in enumerate(coords) if str(c) == str(value)]
        elif isinstance(value, (float, np.floating)) and not isinstance(value, bool):
            tol = 1e-6 * np.maximum(np.abs(coords.astype(float)), abs(float(value)))
            hit = list(np.flatnonzero(np.abs(coords.astype(float) - float(value)) <= tol))
        else:
            raise TypeError(f"{what}[{d!r}] must be an integer index in [0, {n}) or one of its "
                            f"values {_plain(coords)}, got {type(i).__name__} {_plain(i)}")
        if len(hit) != 1:
            raise ValueError(f"{what}[{d!r}] = {_plain(i)} is not one of its values "
                             f"{_plain(coords)} (SI units; or give an integer index in [0, {n}))")
        out[d] = int(hit[0])
    missing = [d for d in dims if d not in out]
    if missing:
        raise ValueError(f"{what} must give an index or value for every sweep dimension {dims}; "
                         f"missing {missing}")
    return out


def _no_point(point, kind: str, what: str = "point") -> None:
    if point not in (None, {}):
        raise ValueError(f"{what}: a single run's Dataset ({kind}) has no sweep points; pass "
                         f"{what}=None, got {_plain(point)}")


def _t_mask(t: np.ndarray, t_range):
    if t_range is None:
        return slice(None)
    return (t >= t_range[0]) & (t <= t_range[1])


def _save(fig, path, dpi):
    if path is not None:
        try:
            _check_pixels(tuple(fig.get_size_inches()), dpi)
        except ValueError:
            import matplotlib.pyplot as plt
            plt.close(fig)
            raise
        fig.savefig(path, dpi=dpi)
    return fig


def _label(ds, dim: str, v) -> str:
    from .study import _axis_label
    if dim == "model":
        return str(v)
    name = ds[dim].attrs.get("parameter", dim)  # a renamed sweep axis (sweep_V) shows as V
    return f"{name} {_axis_label(v, ds[dim].attrs.get('units', ''))}".replace("uM", "µM")


def _plain_log(ax, axis: str = "x") -> None:
    from matplotlib.ticker import FuncFormatter
    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(fmt)


def _robust_ylim(ax, ys: list[np.ndarray], t: np.ndarray, segments: list[dict], skip: float) -> None:
    """Y limits from the traces without the first ``skip`` s of each segment (activation
    spikes), so steady levels stay readable; spikes are clipped."""
    keep = np.ones(t.shape, bool)
    for seg in segments:
        keep &= ~((t >= seg["t0"]) & (t < seg["t0"] + skip))
    vals = np.concatenate([y[keep] for y in ys if y.size == t.size])
    vals = vals[np.isfinite(vals)]
    if vals.size:
        lo, hi = min(vals.min(), 0.0), max(vals.max(), 0.0)
        pad = 0.15 * (hi - lo or 1.0)
        ax.set_ylim(lo - pad, hi + pad)


def _point_label(ds, sel: dict) -> str:
    return ", ".join(_label(ds, d, ds[d].values[i]) for d, i in sel.items())


def _sweep_dims(ds) -> list[str]:
    return list(ds["n_samples"].dims)


def _points(ds) -> list[dict]:
    dims = _sweep_dims(ds)
    return [dict(zip(dims, idx)) for idx in np.ndindex(*ds["n_samples"].shape)]


def _segments(ds) -> list[dict]:
    try:
        return json.loads(ds.attrs.get("segments", "[]"))
    except ValueError:
        return []


def _shade(ax, ds, *, text: bool = True) -> None:
    for seg in _segments(ds):
        lab = seg.get("label", "")
        if lab in _PHASE_COLORS:
            ax.axvspan(seg["t0"], seg["t1"], color=_PHASE_COLORS[lab], zorder=0, lw=0)
            if text:
                ax.text((seg["t0"] + seg["t1"]) / 2, 0.98, lab, transform=ax.get_xaxis_transform(),
                        ha="center", va="top", fontsize=8, color="#555555")


# ------------------------------------------------------------------------------------------
def current_traces(ds, point: dict | None = None, path: str | os.PathLike | None = None, *,
                   t_range: tuple[float, float] | None = None, max_trials: int = 5,
                   figsize=FIGSIZE, dpi: int = DPI):
    """Current (pA) against time (s).

    Parameters
    ----------
    ds : xarray.Dataset, DataTree node, Result or SimulationResult
        A study protocol's Dataset: at one sweep point, the Monte Carlo mean ± SD band, up to
        ``max_trials`` kept trials and the master-equation curve, phases shaded.
        ``kc.solve(...).to_xarray()``: the master-equation expected current of one channel.
        ``kc.simulate(...).to_xarray()``: the current of ``n_channels`` channels, trials, and
        their mean ± SD over trials (``record="counts"``) or the mean only
        (``record="summary"``, which keeps no per-trial current).
    point : dict, optional
        Study Datasets only: sweep dimension -> integer index or coordinate value (a float in
        SI units, matched to 1e-6; a quantity string such as ``"1 uM"``; a model name), for every sweep
        dimension (default: the middle point).  A single run has no sweep points (``None``).
    path : str or PathLike, optional
        Where to save the PNG.
    t_range : (float, float), optional
        Time window (s) drawn.
    max_trials : int, default 5
        Individual trials drawn (≥ 0).
    figsize : (float, float)
        Figure size (inches).
    dpi : int, default :data:`DPI`
        At most :data:`MAX_DPI`; a saved image has at most :data:`MAX_PIXELS` pixels.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    TypeError
        ``ds`` is none of the Datasets above; ``figsize``, ``t_range`` or ``point`` of the wrong
        type.
    ValueError
        ``dpi``/image size out of range; ``point`` not a sweep point (or given for a single run).
    """
    from ._validate import integer
    dpi, figsize = _check_output(path, dpi, figsize)
    max_trials = integer("max_trials", max_trials, minimum=0)
    if t_range is not None and (isinstance(t_range, (str, bytes))
                                or not hasattr(t_range, "__len__") or len(t_range) != 2):
        raise TypeError(f"t_range must be a pair (t0, t1) in s, got {_plain(t_range)}")
    ds = _ds(ds)
    kind = _kind(ds)
    if kind != "study":
        _no_point(point, {"solve": "kc.solve(...).to_xarray()"}.get(
            kind, "kc.simulate(...).to_xarray()"))
        return _run_traces(ds, kind, path, t_range=t_range, max_trials=max_trials,
                           figsize=figsize, dpi=dpi)
    if point is None:
        pts = _points(ds)
        point = pts[len(pts) // 2]
    else:
        point = _check_point(ds, point)
    plt = _plt()
    d = ds.isel(point)
    n = int(d["n_samples"])
    t = d["time"].values[:n]
    sl = _t_mask(t, t_range)
    fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    _shade(ax, ds)
    pA = 1e12
    if "current_trials" in d:
        tr = d["current_trials"].values[:, :n]
        for k in range(min(max_trials, tr.shape[0])):
            ax.plot(t[sl], tr[k][sl] * pA, lw=0.5, color="#8aa9cf", alpha=0.7,
                    label="single trials" if k == 0 else None)
    m = d["current_mc_mean"].values[:n] * pA
    sd = d["current_mc_sd"].values[:n] * pA
    ax.fill_between(t[sl], (m - sd)[sl], (m + sd)[sl], color=_MC, alpha=0.25, lw=0, label="Monte Carlo ± SD")
    ax.plot(t[sl], m[sl], color=_MC, lw=1.2, label=f"Monte Carlo mean ({ds.attrs.get('n_trials', '?')} trials)")
    if "current_det" in d:
        ax.plot(t[sl], d["current_det"].values[:n][sl] * pA, color=_DET, lw=1.0, ls="--",
                label="master equation")
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"current of {ds.attrs.get('n_channels', '?')} channels (pA)")
    title = f"{ds.attrs.get('protocol', '')}: {ds.attrs.get('scheme', '')}"
    if point:
        title += f" — {_point_label(ds, point)}"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path, dpi)


def _run_traces(ds, kind: str, path, *, t_range, max_trials: int, figsize, dpi):
    """current_traces of a single run's Dataset (solve or simulate)."""
    plt = _plt()
    t = ds["time"].values
    sl = _t_mask(t, t_range)
    pA = 1e12
    cur = ds["current"].values
    fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    scheme = ds.attrs.get("scheme", "")
    if kind == "solve":
        ax.plot(t[sl], cur[sl] * pA, color=_DET, lw=1.2, label="master equation (expected)")
        ax.set_ylabel("expected current of one channel (pA)")
        ax.set_title(f"{scheme}: master equation", fontsize=10)
    else:
        n_ch = ds.attrs.get("n_channels", "?")
        if kind == "counts":
            n_tr = cur.shape[0]
            for k in range(min(max_trials, n_tr)):
                ax.plot(t[sl], cur[k][sl] * pA, lw=0.5, color="#8aa9cf", alpha=0.7,
                        label="single trials" if k == 0 else None)
            m = cur.mean(axis=0) * pA
            if n_tr > 1:
                sd = cur.std(axis=0, ddof=1) * pA
                ax.fill_between(t[sl], (m - sd)[sl], (m + sd)[sl], color=_MC, alpha=0.25, lw=0,
                                label="Monte Carlo ± SD")
            label = f"Monte Carlo mean ({n_tr} trial{'s' if n_tr > 1 else ''})"
        else:
            m = cur * pA
            label = "Monte Carlo mean over trials"
        ax.plot(t[sl], m[sl], color=_MC, lw=1.2, label=label)
        ax.set_ylabel(f"current of {n_ch} channels (pA)")
        ax.set_title(f"{scheme}: Monte Carlo ({ds.attrs.get('method', '')})", fontsize=10)
    ax.set_xlabel("time (s)")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path, dpi)


def _state_groups(states: list[str]) -> tuple[list[str], list[np.ndarray]]:
    """Unblocked states individually; blocked states pooled per blocker tag."""
    names, masks = [], []
    tags: dict[str, list[int]] = {}
    for i, s in enumerate(states):
        if "·" in s:
            tags.setdefault("blocked (·" + s.split("·", 1)[1] + ")", []).append(i)
        else:
            names.append(s)
            m = np.zeros(len(states), bool)
            m[i] = True
            masks.append(m)
    for k, idx in tags.items():
        m = np.zeros(len(states), bool)
        m[idx] = True
        names.append(k)
        masks.append(m)
    return names, masks


def occupancy(ds, point: dict | None = None, path: str | os.PathLike | None = None, *,
              source: str = "auto", figsize=FIGSIZE, dpi: int = DPI):
    """Stacked occupancy (fraction of channels) against time (s); blocked states are pooled
    per blocker.

    Parameters
    ----------
    ds : xarray.Dataset, DataTree node, Result or SimulationResult
        A study protocol's Dataset (one sweep point), ``kc.solve(...).to_xarray()`` (master
        equation) or ``kc.simulate(...).to_xarray()`` (Monte Carlo: mean over trials of the
        fraction of channels in each state).
    point : dict, optional
        Study Datasets only: sweep dimension -> integer index or coordinate value (a float in
        SI units, matched to 1e-6; a quantity string such as ``"1 uM"``; a model name), for every sweep
        dimension (default: the last point).  A single run has no sweep points (``None``).
    path : str or PathLike, optional
        Where to save the PNG.
    source : {"auto", "det", "mc"}
        ``"det"`` (master equation), ``"mc"`` (Monte Carlo mean) or ``"auto"``: for a study,
        the master equation when present, with the Monte Carlo unblocked/blocked boundary
        overlaid; for a single run, what it holds (``"det"`` for a solve result, ``"mc"`` for
        a simulation; asking for the other is a ValueError).
    figsize : (float, float)
        Figure size (inches).
    dpi : int, default :data:`DPI`
        At most :data:`MAX_DPI`; a saved image has at most :data:`MAX_PIXELS` pixels.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    TypeError
        ``ds`` is none of the Datasets above.
    ValueError
        Unknown ``source``, or one the Dataset does not hold; ``point`` not a sweep point (or
        given for a single run); ``dpi``/image size out of range.
    """
    dpi, figsize = _check_output(path, dpi, figsize)
    if source not in ("auto", "det", "mc"):
        raise ValueError(f"source must be 'auto', 'det' or 'mc', got {source!r}")
    ds = _ds(ds)
    kind = _kind(ds)
    states = [str(s) for s in ds["state"].values]
    if kind != "study":
        src = {"solve": "kc.solve(...).to_xarray()"}.get(kind, "kc.simulate(...).to_xarray()")
        _no_point(point, src)
        have = "det" if kind == "solve" else "mc"
        if source not in ("auto", have):
            raise ValueError(
                f"source={source!r}: this Dataset ({src}) holds only the "
                f"{'master equation' if have == 'det' else 'Monte Carlo'} occupancy; use "
                f"source={have!r} or 'auto'")
        t = ds["time"].values
        if kind == "solve":
            occ = ds["occupancy"].values
        else:
            cnt = np.asarray(ds["counts" if kind == "counts" else "mean"].values, float)
            if kind == "counts":
                cnt = cnt.mean(axis=0)
            tot = cnt.sum(axis=-1, keepdims=True)          # n_channels at every sample
            with np.errstate(invalid="ignore", divide="ignore"):
                occ = np.where(tot > 0, cnt / tot, 0.0)
        use_det, mc, point = have == "det", None, {}
    else:
        if point is None:
            pts = _points(ds)
            point = pts[-1]
        else:
            point = _check_point(ds, point)
        d = ds.isel(point)
        n = int(d["n_samples"])
        t = d["time"].values[:n]
        mc = d["sum_counts"].values[:n] / (ds.attrs["n_trials"] * ds.attrs["n_channels"])
        use_det = source == "det" or (source == "auto" and "occupancy_det" in d)
        if use_det and "occupancy_det" not in d:
            raise ValueError("source='det': this study Dataset has no master-equation occupancy "
                             "(occupancy_det); use source='mc' or 'auto'")
        occ = d["occupancy_det"].values[:n] if use_det else mc
    plt = _plt()
    names, masks = _state_groups(states)
    ys = np.array([occ[:, m].sum(axis=1) for m in masks])
    fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    cmap = plt.get_cmap("tab20")
    colors = [cmap(i % 20) for i in range(len(names))]
    ax.stackplot(t, ys, labels=names, colors=colors, lw=0)
    if mc is not None and use_det and any("blocked" in nm for nm in names):
        mc_unb = sum(mc[:, m].sum(axis=1) for nm, m in zip(names, masks) if not nm.startswith("blocked"))
        ax.plot(t, mc_unb, color="k", lw=0.8, ls=":", label="Monte Carlo (unblocked/blocked boundary)")
    if kind == "study":
        _shade(ax, ds, text=False)
        for seg in _segments(ds):
            if seg.get("label"):
                ax.axvline(seg["t0"], color="w", lw=0.8)
    ax.set_xlim(t[0], t[-1])
    ax.set_ylim(0, 1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("occupancy (fraction of channels)")
    head = ds.attrs.get("protocol", "") if kind == "study" else ds.attrs.get("scheme", "")
    ax.set_title(f"{head}: state occupancy "
                 f"({'master equation' if use_det else 'Monte Carlo mean'})"
                 + (f" — {_point_label(ds, point)}" if point else ""), fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _save(fig, path, dpi)


def _hill(c, ic50, nh):
    return 1.0 / (1.0 + (np.asarray(c) / ic50) ** nh)


def _conc_scale(ds, axis: str) -> tuple[float, str]:
    """(factor, unit) to show concentrations of ``axis``: µM for an axis in M, else the axis's
    own numbers (a dimensionless parameter's values are not molar)."""
    u = ds[axis].attrs.get("units", "")
    if u == "M":
        return 1e6, "µM"
    return 1.0, (u if u not in ("", "1") else "")


def _woodhull_panel(ax, ds, vaxis: str) -> None:
    """IC50 (log axis) vs V of a dose_response over a voltage axis, with its Woodhull fits
    (``z_delta_*``, ``kd0_*``): one line per point of the remaining sweep axes, the points at
    the V the channels saw (``V_window``).  IC50s the fit left out (extrapolations, or V not
    constant over the analysis window) are not drawn (one at a fit bound would set the axis);
    the legend counts them."""
    from .units import FARADAY, GAS_CONSTANT
    dose = ds.attrs.get("dose_axis", "")
    f, cu = _conc_scale(ds, dose)
    rest = [d for d in ds[next(f"z_delta_{s}" for s in ("det", "mc") if f"z_delta_{s}" in ds)].dims]
    points = [dict(zip(rest, idx)) for idx in np.ndindex(*[ds.sizes[d] for d in rest])]
    for k, pt in enumerate(points):
        sub = ds.isel(pt) if pt else ds
        tag = ", ".join(_label(ds, d, ds[d].values[i]) for d, i in pt.items())
        pre = f"{tag}: " if tag else ""
        for src, mk, ls in (("det", "s", "--"), ("mc", "o", "-")):
            if f"z_delta_{src}" not in sub:
                continue
            col = (_DET if src == "det" else _MC) if not pt else f"C{k % 10}"
            ic = sub[f"ic50_{src}"].transpose(vaxis).values
            # the V the channels saw (the fit's x: V_window, one value over the concentrations),
            # not the axis values (a "$V - 10 mV" offset drew the points off their line)
            if "V_window" in sub:
                vw = sub["V_window"].transpose(vaxis, dose).values
                with np.errstate(invalid="ignore"):
                    v = np.where(np.all(vw == vw[:, :1], axis=1), vw[:, 0], np.nan)
            else:
                v = sub[vaxis].values.astype(float)
            used = np.isfinite(ic) & ~sub[f"ic50_extrapolated_{src}"].transpose(vaxis).values & np.isfinite(v)
            ax.plot(v[used] * 1e3, ic[used] * f, mk, color=col, mfc="none" if src == "det" else col, ms=5)
            left = int(np.isfinite(ic).sum() - used.sum())
            z, kd0 = float(sub[f"z_delta_{src}"]), float(sub[f"kd0_{src}"])
            if np.isfinite(z):
                vv = np.linspace(float(sub[f"woodhull_vmin_{src}"]), float(sub[f"woodhull_vmax_{src}"]), 50)
                vt = GAS_CONSTANT * float(sub[f"woodhull_temperature_{src}"]) / FARADAY
                ax.plot(vv * 1e3, kd0 * np.exp(z * vv / vt) * f, color=col, ls=ls, lw=1,
                        label=f"{pre}{'ME' if src == 'det' else 'MC'}: zδ {z:.2f}, "
                              f"K_d(0) {kd0 * f:.3g}{' ' + cu if cu else ''}"
                              + (f" ({left} IC50{'s' if left > 1 else ''} left out: extrapolated, "
                                 "or V not constant in the window)" if left else ""))
    ax.set_yscale("log")
    _plain_log(ax, "y")
    ax.set_xlabel(f"{ds[vaxis].attrs.get('parameter', vaxis)} (mV)")
    ax.set_ylabel(f"IC50 ({cu})" if cu else "IC50")
    ax.set_title("Woodhull fit of the IC50s", fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")


def dose_response(ds, path: str | os.PathLike | None = None, *, figsize=(6.5, 4.5), dpi: int = DPI):
    """Response (current relative to the drug-free control) vs concentration (µM for an axis in
    M, else the axis's own numbers; log axis):
    Monte Carlo mean ± SEM, master equation, Hill fits with IC50 marked.  With further sweep
    axes (e.g. V or model) one set of curves per point, in its own colour.  With a Woodhull fit
    over a voltage axis (``z_delta_*``), a second panel: IC50 against V (log axis) with the fits
    ``K_d(0)·exp(zδ·V·F/RT)``; the default ``figsize`` then widens to (11, 4.5).

    Parameters
    ----------
    ds : xarray.Dataset or DataTree node
        A study protocol's Dataset with a ``dose_response`` analysis.
    path : str or PathLike, optional
        Where to save the PNG.
    figsize : (float, float)
        Figure size (inches).
    dpi : int, default :data:`DPI`
        At most :data:`MAX_DPI`.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    TypeError
        ``ds`` is a single run's Dataset (``kc.solve``/``kc.simulate(...).to_xarray()``; for
        one inhibition curve use ``kc.experiments.ic50(...).plot()``) or not a Dataset.
    ValueError
        A study Dataset without a dose-response analysis (no ``response_*`` variables or no
        sweep axis).
    """
    dpi, figsize = _check_output(path, dpi, figsize)
    ds = _ds(ds)
    _study_only(ds, "dose_response", "kc.experiments.ic50(...).plot() for an inhibition curve")
    dims = _sweep_dims(ds)
    if not dims or not any(v in ds for v in ("response_det", "response_mc")):
        raise ValueError(
            f"plot.dose_response needs a study protocol with analysis 'dose_response' (a "
            f"concentration sweep and its response_* variables); protocol "
            f"{ds.attrs.get('protocol', '?')!r} has analysis "
            f"{ds.attrs.get('analysis', '') or 'none'!r} and sweep dimensions {dims}")
    plt = _plt()
    # the concentration dimension the study fitted over (files before it was recorded: the
    # first sweep axis in M, else the first)
    axis = ds.attrs.get("dose_axis")
    if axis not in dims:
        axis = next((d for d in dims if ds[d].attrs.get("units") == "M"), dims[0])
    others = [d for d in dims if d != axis]
    c = ds[axis].values
    f, cu = _conc_scale(ds, axis)
    vaxis = ds.attrs.get("woodhull_axis")
    woodhull = (vaxis in others and ds.sizes[vaxis] >= 2
                and any(f"z_delta_{src}" in ds and np.isfinite(ds[f"z_delta_{src}"].values).any()
                        for src in ("det", "mc")))
    if woodhull:
        if figsize == (6.5, 4.5):   # (the default: room for the Woodhull panel beside it)
            figsize = (11.0, 4.5)
        fig, (ax, axw) = plt.subplots(1, 2, figsize=figsize, constrained_layout=True,
                                      gridspec_kw={"width_ratios": [3, 2]})
        _woodhull_panel(axw, ds, vaxis)
    else:
        fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    cc = np.geomspace(c[c > 0].min() / 3, c.max() * 3, 200)
    points = [dict(zip(others, idx)) for idx in np.ndindex(*[ds.sizes[d] for d in others])]
    single = len(points) == 1
    compact = []   # several points: one legend entry per point (its colour) and a style key
    for k, pt in enumerate(points):
        sub = ds.isel(pt) if pt else ds
        tag = "" if single else ", ".join(_label(ds, d, ds[d].values[i]) for d, i in pt.items())
        # (more than 10 points: tab20's colours, so no two of up to 20 share one)
        col_mc = col_det = _MC if single else (f"C{k}" if len(points) <= 10 else
                                               plt.get_cmap("tab20")(k % 20))
        if single:
            col_det = _DET
        lab = (lambda text: text) if single else (lambda text: None)
        if "response_det" in sub:
            ax.plot(c * f, sub["response_det"].values, "s", mfc="none", color=col_det,
                    label=lab("master equation"))
        if "response_mc" in sub:
            sem = sub["response_mc_sem"].values if "response_mc_sem" in sub else None
            ax.errorbar(c * f, sub["response_mc"].values, yerr=sem, fmt="o", color=col_mc, ms=5,
                        capsize=3, label=lab(f"Monte Carlo ({ds.attrs.get('n_trials')} trials × "
                                             f"{ds.attrs.get('n_channels')} ch)"))
        ics = []
        for src, col, ls in (("det", col_det, "--"), ("mc", col_mc, "-")):
            if f"ic50_{src}" in sub and sub[f"ic50_{src}"].ndim == 0 and np.isfinite(float(sub[f"ic50_{src}"])):
                ic, nh = float(sub[f"ic50_{src}"]), float(sub[f"hill_{src}"])
                who = "ME" if src == "det" else "MC"
                ax.plot(cc * f, _hill(cc, ic, nh), color=col, ls=ls, lw=1,
                        label=lab(f"Hill fit ({who}): IC50 {ic * f:.3g}{' ' + cu if cu else ''}, nH {nh:.2f}"))
                ax.axvline(ic * f, color=col, ls=":", lw=0.8)
                ics.append(f"{ic * f:.3g} ({who})")
        if not single:
            from matplotlib.lines import Line2D
            compact.append(Line2D([], [], color=col_mc, marker="o", ms=4, lw=1,
                                  label=f"{tag}: IC50 {', '.join(ics) or 'not fitted'}"))
    if compact:
        from matplotlib.lines import Line2D
        key = [Line2D([], [], color="0.3", marker="s", mfc="none", ls="none", label="master equation"),
               Line2D([], [], color="0.3", marker="o", ls="none",
                      label=f"Monte Carlo ({ds.attrs.get('n_trials')} trials × {ds.attrs.get('n_channels')} ch)"),
               Line2D([], [], color="0.3", ls="--", lw=1, label="Hill fit (ME)"),
               Line2D([], [], color="0.3", ls="-", lw=1, label="Hill fit (MC)")]
        handles = compact + key
        if len(handles) > 10:   # (outside the axes: inside it would cover the curves)
            fig.legend(handles=handles, fontsize=6, loc="outside right upper")
        else:
            ax.legend(handles=handles, fontsize=6, loc="lower left")
    ax.set_xscale("log")
    _plain_log(ax)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel(f"{ds[axis].attrs.get('parameter', axis)}" + (f" ({cu})" if cu else ""))
    ax.set_ylabel("current / drug-free current")
    ax.set_title(f"dose–response: {ds.attrs.get('scheme', '')}", fontsize=10)
    if single:
        ax.legend(fontsize=8, loc="lower left")
    return _save(fig, path, dpi)


def trapping(ds, path: str | os.PathLike | None = None, *, figsize=None, dpi: int = DPI,
             max_trials: int = 3):
    """Trapping protocol time course: for each sweep point a panel of current (pA) vs time (s)
    with the phases shaded (Monte Carlo mean ± SD, trials, master equation), and a bottom
    panel with the blocked fraction of channels.

    Parameters
    ----------
    ds : xarray.Dataset or DataTree node
        A study protocol's Dataset (with a ``trapping`` analysis the panels also give block and
        trapped fractions).
    path : str or PathLike, optional
        Where to save the PNG.
    figsize : (float, float), optional
        Figure size (inches); default grows with the number of sweep points.
    dpi : int, default :data:`DPI`
        At most :data:`MAX_DPI`.
    max_trials : int, default 3
        Individual trials drawn per panel (≥ 0).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    TypeError
        ``ds`` is a single run's Dataset (``kc.solve``/``kc.simulate(...).to_xarray()``: use
        :func:`current_traces` and :func:`occupancy`, or
        ``kc.experiments.trapping(...).plot()``) or not a Dataset.
    """
    from ._validate import integer
    dpi, figsize = _check_output(path, dpi, figsize)
    max_trials = integer("max_trials", max_trials, minimum=0)
    ds = _ds(ds)
    _study_only(ds, "trapping", "kc.experiments.trapping(...).plot() for the trapping protocol")
    plt = _plt()
    pts = _points(ds)
    nrow = len(pts) + 1
    fig, axes = plt.subplots(nrow, 1, figsize=figsize or (8.5, 2.3 * nrow + 0.6), sharex=True,
                             constrained_layout=True, gridspec_kw={"height_ratios": [1.0] * len(pts) + [0.8]})
    pA = 1e12
    states = [str(s) for s in ds["state"].values]
    blocked = np.array(["·" in s for s in states])
    for ax, p in zip(axes[:-1], pts):
        d = ds.isel(p)
        n = int(d["n_samples"])
        t = d["time"].values[:n]
        _shade(ax, ds, text=ax is axes[0])
        if "current_trials" in d:
            tr = d["current_trials"].values[:, :n]
            for k in range(min(max_trials, tr.shape[0])):
                ax.plot(t, tr[k] * pA, lw=0.4, color="#8aa9cf", alpha=0.8, label="single trials" if k == 0 else None)
        m = d["current_mc_mean"].values[:n] * pA
        sd = d["current_mc_sd"].values[:n] * pA
        ax.fill_between(t, m - sd, m + sd, color=_MC, alpha=0.25, lw=0, label="Monte Carlo ± SD")
        ax.plot(t, m, color=_MC, lw=1.0, label="Monte Carlo mean")
        if "current_det" in d:
            ax.plot(t, d["current_det"].values[:n] * pA, color=_DET, lw=0.9, ls="--", label="master equation")
        txt = _point_label(ds, p)
        if "block_mc" in d:
            txt += (f"\nblock {100 * float(d['block_mc']):.0f}% (ME {100 * float(d.get('block_det', np.nan)):.0f}%)"
                    f", trapped (occupancy) {100 * float(d['trapped_occupancy_mc']):.0f}% "
                    f"(ME {100 * float(d.get('trapped_occupancy_det', np.nan)):.0f}%)")
        ax.text(0.995, 0.04, txt, transform=ax.transAxes, ha="right", va="bottom", fontsize=8,
                bbox=dict(fc="white", ec="none", alpha=0.8))
        ax.set_ylabel("current (pA)")
        _robust_ylim(ax, [m - sd, m + sd], t, _segments(ds), skip=2.0)
    axes[0].legend(fontsize=7, loc="center left", ncol=1, framealpha=0.9)
    axb = axes[-1]
    _shade(axb, ds, text=False)
    cmap = plt.get_cmap("viridis")
    for j, p in enumerate(pts):
        d = ds.isel(p)
        n = int(d["n_samples"])
        t = d["time"].values[:n]
        col = cmap(0.15 + 0.7 * j / max(1, len(pts) - 1))
        mc = d["sum_counts"].values[:n][:, blocked].sum(axis=1) / (ds.attrs["n_trials"] * ds.attrs["n_channels"])
        axb.plot(t, mc, color=col, lw=1.2, label=f"{_point_label(ds, p)} MC")
        if "occupancy_det" in d:
            axb.plot(t, d["occupancy_det"].values[:n][:, blocked].sum(axis=1), color="k", lw=0.7, ls="--")
    axb.plot([], [], color="k", lw=0.7, ls="--", label="master equation")
    axb.set_ylim(0, 1)
    axb.set_ylabel("blocked fraction")
    axb.set_xlabel("time (s)")
    axb.legend(fontsize=7, loc="upper left")
    # (any study Dataset draws as a time course; only a trapping analysis is "trapping block")
    head = "Trapping block" if ds.attrs.get("analysis") == "trapping" else "Time course"
    fig.suptitle(f"{head}: {ds.attrs.get('scheme', '')}, {ds.attrs.get('n_trials')} trials × "
                 f"{ds.attrs.get('n_channels')} channels", fontsize=10)
    return _save(fig, path, dpi)


def use_dependence(ds, path: str | os.PathLike | None = None, *, figsize=(10.0, 4.2), dpi: int = DPI):
    """Use-dependent block vs stimulation frequency (Hz, log axis; Monte Carlo ± SEM and master
    equation), and block of each pulse's charge vs pulse number.

    Parameters
    ----------
    ds : xarray.Dataset or DataTree node
        A study protocol's Dataset with a ``use_dependence`` analysis.
    path : str or PathLike, optional
        Where to save the PNG.
    figsize : (float, float)
        Figure size (inches).
    dpi : int, default :data:`DPI`
        At most :data:`MAX_DPI`.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    TypeError
        ``ds`` is a single run's Dataset (``kc.solve``/``kc.simulate(...).to_xarray()``; for
        one experiment use ``kc.experiments.use_dependence(...).plot()``) or not a Dataset.
    ValueError
        A study Dataset without a use-dependence analysis (no ``block_*`` variables).
    """
    dpi, figsize = _check_output(path, dpi, figsize)
    ds = _ds(ds)
    _study_only(ds, "use_dependence",
                "kc.experiments.use_dependence(...).plot() for block against frequency")
    if not any(v in ds for v in ("block_last_det", "block_last_mc", "block_total_det",
                                 "block_total_mc", "block_by_pulse_mc")):
        raise ValueError(
            f"plot.use_dependence needs a study protocol with analysis 'use_dependence' (its "
            f"block_* variables); protocol {ds.attrs.get('protocol', '?')!r} has analysis "
            f"{ds.attrs.get('analysis', '') or 'none'!r}")
    plt = _plt()
    dims = _sweep_dims(ds)
    axis = next((d for d in dims if ds[d].attrs.get("units") == "Hz"), dims[0] if dims else None)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=figsize, constrained_layout=True)
    if axis is not None:
        f = ds[axis].values
        for var, mk, lab in (("block_last", "o", "last pulse"), ("block_total", "s", "whole train")):
            if f"{var}_det" in ds:
                a1.plot(f, 100 * ds[f"{var}_det"].values, color=_DET, ls="--" if var == "block_last" else ":",
                        lw=1, label=f"{lab}, master equation")
            if f"{var}_mc" in ds:
                sem = ds[f"{var}_mc_sem"].values * 100 if f"{var}_mc_sem" in ds else None
                a1.errorbar(f, 100 * ds[f"{var}_mc"].values, yerr=sem, fmt=mk, color=_MC,
                            mfc=_MC if var == "block_last" else "white", capsize=3, ms=5,
                            label=f"{lab}, Monte Carlo ± SEM")
        if ds[axis].attrs.get("units") == "Hz":
            a1.set_xscale("log")
            _plain_log(a1)
        a1.set_xlabel(f"{axis} ({ds[axis].attrs.get('units', '')})")
    a1.set_ylabel("block of charge transfer (%)")
    a1.set_ylim(bottom=0)
    a1.legend(fontsize=8, loc="lower right")
    a1.set_title("use-dependent block vs frequency", fontsize=10)
    if "block_by_pulse_mc" in ds:
        cmap = plt.get_cmap("viridis")
        pts = _points(ds)
        npul = json.loads(ds.attrs.get("n_pulses", "[]")) or [ds.sizes["pulse"]] * len(pts)
        for j, p in enumerate(pts):
            d = ds.isel(p)
            k = np.arange(1, npul[j] + 1)
            col = cmap(0.1 + 0.8 * j / max(1, len(pts) - 1))
            a2.plot(k, 100 * d["block_by_pulse_mc"].values[:npul[j]], ".", ms=3, color=col)
            if "block_by_pulse_det" in d:
                a2.plot(k, 100 * d["block_by_pulse_det"].values[:npul[j]], "-", lw=1, color=col,
                        label=_point_label(ds, p))
        a2.set_xscale("log")
        _plain_log(a2)
        a2.set_xlabel("pulse number")
        a2.set_ylabel("block of the pulse's charge (%)")
        a2.set_title("build-up of block (lines: master equation, dots: Monte Carlo)", fontsize=10)
        a2.legend(fontsize=7, loc="upper left", ncol=1)
        a2.set_ylim(bottom=0)
    fig.suptitle(f"Use dependence: {ds.attrs.get('scheme', '')}", fontsize=10)
    return _save(fig, path, dpi)


# ------------------------------------------------------------------------------------------
def figures_for(kind: str | None) -> tuple[str, ...]:
    """The figure names :func:`study_figures` draws for a protocol whose analysis is ``kind``
    (``""`` or ``None``: no analysis); ValueError for any other kind."""
    if kind not in (None, "", "trapping", "use_dependence", "dose_response"):
        raise ValueError(f"figures_for: unknown analysis kind {kind!r}; kinds are 'trapping', "
                         "'use_dependence', 'dose_response' or None (no analysis)")
    if kind == "trapping":
        return ("trapping", "occupancy")
    if kind == "use_dependence":
        return ("use_dependence", "traces")
    if kind == "dose_response":
        return ("dose_response",)
    return ("traces", "occupancy")


def study_figures(tree, folder: str | os.PathLike, which: Iterable[str] | None = None,
                  dpi: int = DPI) -> list[Path]:
    """Write the figures that fit each protocol of a study result to ``folder``; returns paths.

    ``which`` restricts to one (a str) or some (a list) of ``"trapping", "use_dependence",
    "dose_response", "traces", "occupancy"`` (default: all that apply); unknown names raise
    ValueError."""
    dpi = _check_dpi(dpi)
    if not hasattr(tree, "children"):
        hint = (" (a single protocol's Dataset: call the figure functions on it)"
                if hasattr(tree, "data_vars") or hasattr(tree, "to_xarray") else "")
        raise TypeError(f"tree must be a study result (the DataTree of kc.run_study or "
                        f"kc.open_results), got {type(tree).__name__}{hint}")
    if which is None:
        want = None
    else:
        if isinstance(which, str):
            which = [which]
        try:
            want = set(which)
        except TypeError:
            raise TypeError(f"which must be a figure name, a list of them or None, got "
                            f"{type(which).__name__}") from None
        bad = sorted(repr(w) for w in want if not isinstance(w, str) or w not in FIGURES)
        if bad:
            raise ValueError(f"which: unknown figure(s) {', '.join(bad)}; choose from "
                             f"{list(FIGURES)}")
    plt = _plt()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []

    def emit(kind: str, name: str, fn, *args, **kw):
        if want is not None and kind not in want:
            return
        p = folder / name
        fig = fn(*args, path=p, dpi=dpi, **kw)
        plt.close(fig)
        out.append(p)

    for part, node in tree.children.items():
        ds = node.to_dataset()
        kind = ds.attrs.get("analysis", "")
        names = figures_for(kind)        # (the one mapping of analysis kind -> figures)
        if kind in ("trapping", "use_dependence", "dose_response"):
            emit(kind, f"{part}.png", {"trapping": trapping, "use_dependence": use_dependence,
                                       "dose_response": dose_response}[kind], ds)
        if "traces" in names:
            if kind == "use_dependence":
                pts = _points(ds)
                p = pts[min(len(pts) - 1, len(pts) // 2)]
                emit("traces", f"{part}_traces.png", current_traces, ds, p, t_range=(0, 2.0))
            else:
                emit("traces", f"{part}_traces.png", current_traces, ds)
        if "occupancy" in names:
            emit("occupancy", f"{part}_occupancy.png", occupancy, ds)
    return out
