"""Figures for simulation and study results (matplotlib, Agg backend; optional extra ``plot``).

Every function takes an ``xarray.Dataset`` of one study protocol (``tree["trapping"]`` from
:func:`ketacore.run_study`, or ``open_results(path)["trapping"]``), draws on a new figure and,
if ``path`` is given, saves a PNG (``dpi`` 110 by default).  Axes carry units; currents are in
pA, times in s, concentrations in µM.

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


def _check_figsize(figsize):
    from ._validate import real
    if figsize is None:
        return None
    if isinstance(figsize, (str, bytes)) or not hasattr(figsize, "__len__") or len(figsize) != 2:
        raise TypeError(f"figsize must be a pair (width, height) in inches, got {figsize!r}")
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


def _ds(obj):
    """Accept a Dataset or a DataTree node."""
    return obj.to_dataset() if hasattr(obj, "to_dataset") and not hasattr(obj, "data_vars") else obj


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
    """Current (pA) vs time (s) at one sweep point: Monte Carlo mean ± SD band, up to
    ``max_trials`` individual trials, and the master-equation curve.

    ``point`` maps sweep dimensions to indices (default: the middle point).  ``dpi`` is at
    most :data:`MAX_DPI`, and a saved image at most :data:`MAX_PIXELS` pixels."""
    from ._validate import integer
    dpi, figsize = _check_output(path, dpi, figsize)
    max_trials = integer("max_trials", max_trials, minimum=0)
    if t_range is not None and (isinstance(t_range, (str, bytes))
                                or not hasattr(t_range, "__len__") or len(t_range) != 2):
        raise TypeError(f"t_range must be a pair (t0, t1) in s, got {t_range!r}")
    plt = _plt()
    ds = _ds(ds)
    if point is None:
        pts = _points(ds)
        point = pts[len(pts) // 2]
    d = ds.isel(point)
    n = int(d["n_samples"])
    t = d["time"].values[:n]
    sl = slice(None)
    if t_range is not None:
        sl = (t >= t_range[0]) & (t <= t_range[1])
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
    """Stacked occupancy (fraction of channels) vs time (s) at one sweep point.

    ``source``: ``"det"`` (master equation), ``"mc"`` (Monte Carlo mean) or ``"auto"`` (the
    master equation when present, with the Monte Carlo blocked fraction overlaid)."""
    dpi, figsize = _check_output(path, dpi, figsize)
    if source not in ("auto", "det", "mc"):
        raise ValueError(f"source must be 'auto', 'det' or 'mc', got {source!r}")
    plt = _plt()
    ds = _ds(ds)
    if point is None:
        pts = _points(ds)
        point = pts[-1]
    d = ds.isel(point)
    n = int(d["n_samples"])
    t = d["time"].values[:n]
    states = [str(s) for s in ds["state"].values]
    mc = d["sum_counts"].values[:n] / (ds.attrs["n_trials"] * ds.attrs["n_channels"])
    use_det = source == "det" or (source == "auto" and "occupancy_det" in d)
    occ = d["occupancy_det"].values[:n] if use_det else mc
    names, masks = _state_groups(states)
    ys = np.array([occ[:, m].sum(axis=1) for m in masks])
    fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    cmap = plt.get_cmap("tab20")
    colors = [cmap(i % 20) for i in range(len(names))]
    ax.stackplot(t, ys, labels=names, colors=colors, lw=0)
    if use_det and any("blocked" in nm for nm in names):
        unb = sum(ys[i] for i, nm in enumerate(names) if not nm.startswith("blocked"))
        mc_unb = sum(mc[:, m].sum(axis=1) for nm, m in zip(names, masks) if not nm.startswith("blocked"))
        ax.plot(t, mc_unb, color="k", lw=0.8, ls=":", label="Monte Carlo (unblocked/blocked boundary)")
        del unb
    _shade(ax, ds, text=False)
    for seg in _segments(ds):
        if seg.get("label"):
            ax.axvline(seg["t0"], color="w", lw=0.8)
    ax.set_xlim(t[0], t[-1])
    ax.set_ylim(0, 1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("occupancy (fraction of channels)")
    ax.set_title(f"{ds.attrs.get('protocol', '')}: state occupancy "
                 f"({'master equation' if use_det else 'Monte Carlo mean'})"
                 + (f" — {_point_label(ds, point)}" if point else ""), fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _save(fig, path, dpi)


def _hill(c, ic50, nh):
    return 1.0 / (1.0 + (np.asarray(c) / ic50) ** nh)


def dose_response(ds, path: str | os.PathLike | None = None, *, figsize=(6.5, 4.5), dpi: int = DPI):
    """Response (current relative to the drug-free control) vs concentration (µM, log axis):
    Monte Carlo mean ± SEM, master equation, Hill fits with IC50 marked.  With further sweep
    axes (e.g. V or model) one set of curves per point, in its own colour."""
    dpi, figsize = _check_output(path, dpi, figsize)
    plt = _plt()
    ds = _ds(ds)
    dims = _sweep_dims(ds)
    # the concentration dimension the study fitted over (files before it was recorded: the
    # first sweep axis in M, else the first)
    axis = ds.attrs.get("dose_axis")
    if axis not in dims:
        axis = next((d for d in dims if ds[d].attrs.get("units") == "M"), dims[0])
    others = [d for d in dims if d != axis]
    c = ds[axis].values
    fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    cc = np.geomspace(c[c > 0].min() / 3, c.max() * 3, 200)
    points = [dict(zip(others, idx)) for idx in np.ndindex(*[ds.sizes[d] for d in others])]
    single = len(points) == 1
    for k, pt in enumerate(points):
        sub = ds.isel(pt) if pt else ds
        tag = "" if single else ", ".join(_label(ds, d, ds[d].values[i]) for d, i in pt.items())
        col_mc = _MC if single else f"C{k % 10}"
        col_det = _DET if single else f"C{k % 10}"
        pre = "" if single else f"{tag}: "
        if "response_det" in sub:
            ax.plot(c * 1e6, sub["response_det"].values, "s", mfc="none", color=col_det,
                    label=f"{pre}master equation")
        if "response_mc" in sub:
            sem = sub["response_mc_sem"].values if "response_mc_sem" in sub else None
            ax.errorbar(c * 1e6, sub["response_mc"].values, yerr=sem, fmt="o", color=col_mc, ms=5,
                        capsize=3, label=f"{pre}Monte Carlo ({ds.attrs.get('n_trials')} trials × "
                                         f"{ds.attrs.get('n_channels')} ch)")
        for src, col, ls in (("det", col_det, "--"), ("mc", col_mc, "-")):
            if f"ic50_{src}" in sub and sub[f"ic50_{src}"].ndim == 0 and np.isfinite(float(sub[f"ic50_{src}"])):
                ic, nh = float(sub[f"ic50_{src}"]), float(sub[f"hill_{src}"])
                ax.plot(cc * 1e6, _hill(cc, ic, nh), color=col, ls=ls, lw=1,
                        label=f"{pre}Hill fit ({'ME' if src == 'det' else 'MC'}): IC50 {ic * 1e6:.2f} µM, "
                              f"nH {nh:.2f}")
                ax.axvline(ic * 1e6, color=col, ls=":", lw=0.8)
    ax.set_xscale("log")
    _plain_log(ax)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel(f"{ds[axis].attrs.get('parameter', axis)} (µM)")
    ax.set_ylabel("current / drug-free current")
    ax.set_title(f"dose–response: {ds.attrs.get('scheme', '')}", fontsize=10)
    ax.legend(fontsize=8 if single else 6, loc="lower left")
    return _save(fig, path, dpi)


def trapping(ds, path: str | os.PathLike | None = None, *, figsize=None, dpi: int = DPI,
             max_trials: int = 3):
    """Trapping protocol time course: for each sweep point a panel of current (pA) vs time (s)
    with the phases shaded (Monte Carlo mean ± SD, trials, master equation), and a bottom
    panel with the blocked fraction of channels."""
    from ._validate import integer
    dpi, figsize = _check_output(path, dpi, figsize)
    max_trials = integer("max_trials", max_trials, minimum=0)
    plt = _plt()
    ds = _ds(ds)
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
                    f", trapped {100 * float(d['trapped_occupancy_mc']):.0f}% "
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
    fig.suptitle(f"Trapping block: {ds.attrs.get('scheme', '')}, {ds.attrs.get('n_trials')} trials × "
                 f"{ds.attrs.get('n_channels')} channels", fontsize=10)
    return _save(fig, path, dpi)


def use_dependence(ds, path: str | os.PathLike | None = None, *, figsize=(10.0, 4.2), dpi: int = DPI):
    """Use-dependent block vs stimulation frequency (Hz, log axis; Monte Carlo ± SEM and master
    equation), and block of each pulse's charge vs pulse number."""
    dpi, figsize = _check_output(path, dpi, figsize)
    plt = _plt()
    ds = _ds(ds)
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
