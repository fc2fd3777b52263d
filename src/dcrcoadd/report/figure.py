"""One-page PNG report of a DCR coadd: convergence, subfilter colours, coverage, a held-out visit.

The report is drawn from plain data (arrays, lists, dicts), so it knows nothing
about how the coadd was made (`dcrcoadd.pipeline.outputs.write_report` gathers the
data). Panels, top row:

1. convergence: the relative improvement of the convergence metric at each iteration,
   ``(c[i-1] − c[i]) / c[i]`` (what the iterative solver compares with its
   ``convergence_threshold``), per subregion, with that threshold on the same axis;
2. the subfilter images as a false-colour composite: bluest subfilters in the
   blue channel, middle in green, reddest in red, with one asinh stretch shared
   by the three channels so that a colour on the page is a flux ratio on the sky;
3. the DCR vector of every input (bluest minus reddest subfilter shift, in pixels):
   length from the airmass, direction from the parallactic angle, so the coverage
   the subfilter split rests on is visible at a glance;
4. a table of the inputs (visit, airmass, parallactic angle, seeing in arcsec and
   pixels, weight) and one line saying whether the coverage constrains the subfilters.

Bottom row (optional): a visit the model has not seen (held out, or left out of a
re-solve): the science image, and ``(science − template) / sqrt(var_s + var_t)`` for
the baseline coadd and the DCR-matched template on one symmetric scale, each titled
with its score (`dcrcoadd.report.scores`: χ² per source pixel and 5σ detections).
Masked pixels are drawn in `MASKED_COLOUR` in all three, never in the colour of zero.

Figures are made with `matplotlib.figure.Figure` and the Agg canvas directly, never
with ``pyplot``, so drawing touches no global state and is safe in tests, threads
and worker processes. The PNG is written atomically (temporary file in the same
directory, then `os.replace`): a reader never sees a half-written report and a
failure leaves any previous report untouched.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dcrcoadd.errors import ConfigError, InputError

log = logging.getLogger("dcrcoadd.report.figure")

__all__ = [
    "MASKED_COLOUR",
    "build_figure",
    "false_colour_rgb",
    "inputs_summary",
    "inputs_table_rows",
    "make_report",
    "relative_improvements",
    "subfilter_groups",
]

#: Figure size (inches, with a title and a square showcase) and resolution of the report.
FIGSIZE = (20.0, 10.3)
DPI = 100

#: Input rows shown in the table before it is truncated (head and tail kept).
MAX_TABLE_ROWS = 16

#: Above this many subregions the convergence panel draws thin grey lines and a median.
MAX_LABELLED_HISTORIES = 8

#: Above this many inputs the DCR vectors are not labelled with their visit.
MAX_LABELLED_VECTORS = 12

#: Half-range of the difference colour scale, in noise sigma.
DIFF_RANGE_SIGMA = 5.0

#: Colour of masked pixels in the image panels: in none of the colour maps used (grey, red-blue).
MASKED_COLOUR = "#e6b800"

#: MAD to Gaussian sigma.
_MAD_TO_SIGMA = 1.4826

#: Seeing columns recognised in the inputs, by unit; a bare ``seeing``/``fwhm`` is in arcsec
#: unless its unit says pixels.
_SEEING_ARCSEC = ("seeing_arcsec", "psf_fwhm_arcsec", "fwhm_arcsec")
_SEEING_PX = ("seeing_px", "psf_fwhm_px", "fwhm_px", "psf_fwhm")
_SEEING_BARE = ("seeing", "fwhm")
_PA_COLUMNS = ("parallactic_angle", "parallactic_angle_deg", "pa")


def _matplotlib():
    """Import the object-oriented matplotlib pieces, or explain how to get them."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ConfigError(
            "the report needs matplotlib, which is not installed: install dcrcoadd[plot] "
            "(pip install 'dcrcoadd[plot]')") from exc
    return Figure, FigureCanvasAgg


# --------------------------------------------------------------------------------------------
# Pure helpers (numbers in, numbers out)
# --------------------------------------------------------------------------------------------

def subfilter_groups(n_subfilters: int) -> list[list[int]]:
    """Which subfilters feed the blue, green and red channels.

    Parameters
    ----------
    n_subfilters : int
        Number of subfilters ``M``, ordered blue to red.

    Returns
    -------
    list of list of int
        Three lists of subfilter indices, for blue, green and red. For ``M >= 3``
        the subfilters are cut into three contiguous groups of nearly equal size
        (the middle group takes the smaller share when ``M`` is not a multiple of
        3, so the extremes keep the most weight); ``M = 2`` gives blue ``[0]``,
        green ``[0, 1]`` (their mean), red ``[1]``; ``M = 1`` feeds all three (grey).
    """
    if n_subfilters < 1:
        raise ValueError(f"n_subfilters must be >= 1, got {n_subfilters}")
    if n_subfilters == 1:
        return [[0], [0], [0]]
    if n_subfilters == 2:
        return [[0], [0, 1], [1]]
    base, extra = divmod(n_subfilters, 3)
    # Remainders go to the outer groups first: the colour contrast lives at the band edges.
    sizes = [base + (extra >= 1), base + (extra >= 3), base + (extra >= 2)]
    edges = np.cumsum([0, *sizes])
    return [list(range(edges[k], edges[k + 1])) for k in range(3)]


def _robust_sigma(values: np.ndarray) -> float:
    """Gaussian-equivalent scatter of the finite values from the median absolute deviation."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0
    sigma = _MAD_TO_SIGMA * float(np.median(np.abs(v - np.median(v))))
    if sigma == 0.0:
        sigma = float(np.std(v))
    return sigma


def _nan_mean(stack: np.ndarray, axis=0) -> np.ndarray:
    """Mean over ``axis`` ignoring NaN, summed in double precision; NaN where all are NaN (without
    numpy's warning)."""
    good = np.isfinite(stack)
    count = good.sum(axis=axis)
    total = np.where(good, stack, 0.0).sum(axis=axis, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def false_colour_rgb(images: np.ndarray, *, q: float = 8.0, stretch: float | None = None,
                     ) -> np.ndarray:
    """False-colour RGB composite of subfilter images with one shared asinh stretch.

    Each channel is the mean of its subfilter group (`subfilter_groups`) minus
    that channel's median (the sky). The stretch follows Lupton et al. (2004):
    the mean intensity ``I`` of the three channels is mapped through
    ``asinh(q I / stretch) / asinh(q)`` and every channel is scaled by the same
    factor, so the ratios between channels, hence the hue, are those of the
    fluxes. Pixels brighter than white are scaled down as a whole rather than
    clipped per channel, which keeps saturated stars their colour.

    Parameters
    ----------
    images : ndarray, shape (M, ny, nx)
        Subfilter images, bluest first. Non-finite pixels are drawn black.
    q : float
        Asinh softening: the stretch is linear below about ``stretch / q``.
    stretch : float, optional
        Intensity (above sky) drawn at full brightness. Default: the 99.7th
        percentile of the intensity of pixels above 3 sigma of the sky, or
        20 sigma when there are few such pixels, whichever is larger.

    Returns
    -------
    ndarray, shape (ny, nx, 3), float64 in [0, 1]
        Red, green, blue.
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3:
        raise ValueError(f"subfilter images must have shape (M, ny, nx), got {images.shape}")
    groups = subfilter_groups(images.shape[0])
    # Order channels as red, green, blue for imshow.
    channels = np.stack([_nan_mean(images[g]) for g in reversed(groups)])
    finite = np.isfinite(channels)
    for c in range(3):
        vals = channels[c][finite[c]]
        channels[c] -= np.median(vals) if vals.size else 0.0
    channels = np.where(finite, channels, 0.0)
    channels = np.clip(channels, 0.0, None)
    intensity = channels.mean(axis=0)
    if stretch is None:
        sigma = _robust_sigma(np.where(finite.all(axis=0), intensity, np.nan))
        bright = intensity[intensity > 3.0 * sigma]
        stretch = 20.0 * sigma
        if bright.size >= 10:
            stretch = max(stretch, float(np.percentile(bright, 99.7)))
        if not stretch > 0.0:
            stretch = float(intensity.max()) or 1.0
    x = intensity / stretch
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(x > 0, np.arcsinh(q * x) / (math.asinh(q) * x), 0.0)
    rgb = channels / stretch * factor
    peak = rgb.max(axis=0)
    over = peak > 1.0
    rgb[:, over] /= peak[over]
    return np.moveaxis(rgb, 0, -1)


def _as_float(value: Any, unit: str | None = None) -> float:
    """A float from a number, numpy scalar, masked value or astropy Quantity (in ``unit``)."""
    if value is None or value is np.ma.masked:
        return math.nan
    if hasattr(value, "unit") and hasattr(value, "to_value"):
        try:
            return float(value.to_value(unit)) if unit else float(value.value)
        except Exception:  # noqa: BLE001 - e.g. pixel units that do not convert: show the number
            return float(value.value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _records(inputs: Any) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Rows of ``inputs`` as dicts (lower-case keys), plus the unit of each column when known."""
    units: dict[str, str] = {}
    if inputs is None:
        return [], units
    if hasattr(inputs, "colnames"):  # astropy Table or QTable
        import astropy.units as u
        columns = {}
        for name in inputs.colnames:
            col = inputs[name]
            unit = getattr(col, "unit", None)
            if unit is not None:
                units[name.lower()] = str(unit)
                # A plain Table's rows drop the unit: keep Quantities so angles convert.
                col = u.Quantity(col)
            columns[name.lower()] = col
        rows = [{name: col[i] for name, col in columns.items()} for i in range(len(inputs))]
        return rows, units
    rows = []
    for row in inputs:
        if not isinstance(row, Mapping):
            raise InputError(f"each input row must be a mapping of column to value, got {type(row).__name__}",
                             "report inputs")
        rows.append({str(k).lower(): v for k, v in row.items()})
    return rows, units


def _is_pixel_unit(unit: str) -> bool:
    return unit.strip().lower() in {"pix", "pixel", "pixels", "px"}


def _seeing(row: Mapping[str, Any], units: Mapping[str, str]) -> tuple[float, float]:
    """``(arcsec, pixels)`` seeing of one input row, NaN where the row does not say."""
    arcsec = next((_as_float(row[c], "arcsec") for c in _SEEING_ARCSEC if row.get(c) is not None), math.nan)
    px = next((_as_float(row[c]) for c in _SEEING_PX if row.get(c) is not None), math.nan)
    for c in _SEEING_BARE:
        value = row.get(c)
        if value is None:
            continue
        unit = units.get(c) or str(getattr(value, "unit", "") or "")
        if _is_pixel_unit(unit):
            px = px if math.isfinite(px) else _as_float(value)
        else:
            arcsec = arcsec if math.isfinite(arcsec) else _as_float(value, "arcsec")
    return arcsec, px


def _fmt(value: float, spec: str) -> str:
    return "—" if not math.isfinite(value) else format(value, spec)


def inputs_table_rows(inputs: Any, *, max_rows: int = MAX_TABLE_ROWS,
                      ) -> tuple[list[str], list[list[str]], int]:
    """Header and formatted rows of the inputs table, truncated in the middle when long.

    Parameters
    ----------
    inputs : astropy Table or iterable of mapping
        One row per input with columns ``visit``, ``airmass``, ``parallactic_angle``
        (deg or an angle Quantity), the seeing in arcsec (``seeing_arcsec`` or
        ``psf_fwhm_arcsec``) and in pixels (``seeing_px`` or ``psf_fwhm_px``); a bare
        ``seeing`` is in arcsec unless its unit is pixels) and ``weight``. Missing values
        show as a dash.
    max_rows : int
        Most data rows shown; longer inputs keep their first and last rows around
        a row saying how many were left out.

    Returns
    -------
    header : list of str
    rows : list of list of str
    n_inputs : int
        Number of inputs before truncation.
    """
    rows, units = _records(inputs)
    header = ["visit", "airmass", "par. angle (deg)", "seeing (arcsec)", "seeing (px)", "weight"]
    pa_col = next((c for c in _PA_COLUMNS if any(c in r for r in rows)), None)
    weights = np.array([_as_float(r.get("weight")) for r in rows])
    finite_w = weights[np.isfinite(weights)]
    # Weights are often tiny inverse variances: show them relative to the largest when so.
    w_scale = float(finite_w.max()) if finite_w.size and not 1e-2 <= finite_w.max() <= 1e4 else 1.0
    if w_scale != 1.0:
        header[-1] = "weight (rel.)"
    formatted = []
    for r, w in zip(rows, weights, strict=True):
        visit = r.get("visit", r.get("id", ""))
        arcsec, px = _seeing(r, units)
        formatted.append([
            str(visit),
            _fmt(_as_float(r.get("airmass")), ".3f"),
            _fmt(_as_float(r.get(pa_col) if pa_col else None, "deg"), ".1f"),
            _fmt(arcsec, ".2f"),
            _fmt(px, ".2f"),
            _fmt(w / w_scale, ".3g"),
        ])
    n = len(formatted)
    if n > max_rows:
        head = max_rows // 2
        tail = max_rows - 1 - head
        airmass = np.array([_as_float(r.get("airmass")) for r in rows[head:n - tail]])
        note = f"… {n - head - tail} more"
        am = airmass[np.isfinite(airmass)]
        filler = [note, f"{am.min():.2f}–{am.max():.2f}" if am.size else ""] + [""] * (len(header) - 2)
        formatted = formatted[:head] + [filler] + (formatted[n - tail:] if tail else [])
    return header, formatted, n


def _history_arrays(records: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(iterations, convergence) of one history; records are the solvers' dicts or tuples."""
    its, conv = [], []
    for rec in records:
        if isinstance(rec, Mapping):
            its.append(rec["iteration"])
            conv.append(rec["convergence"])
        else:
            its.append(rec[0])
            conv.append(rec[1])
    return np.asarray(its, dtype=float), np.asarray(conv, dtype=float)


def relative_improvements(records: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(iterations, improvement)`` of one convergence history.

    The improvement at iteration ``i`` is ``(c[i-1] − c[i]) / c[i]`` with ``c`` the
    convergence metric: the quantity the iterative solver stops on when it falls below
    ``convergence_threshold``. Positive when the fit improved; the first record (the
    starting model) has none.
    """
    its, conv = _history_arrays(records)
    if its.size < 2:
        return np.empty(0), np.empty(0)
    prev, cur = conv[:-1], conv[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        improvement = np.where(cur > 0, (prev - cur) / cur, np.inf)
    return its[1:], improvement


def _median_curve(curves: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Median value at each iteration over the curves that reached it."""
    by_iter: dict[float, list[float]] = {}
    for its, values in curves:
        for i, c in zip(its, values, strict=True):
            if np.isfinite(c):
                by_iter.setdefault(i, []).append(c)
    keys = np.array(sorted(by_iter))
    return keys, np.array([np.median(by_iter[k]) for k in keys])


# --------------------------------------------------------------------------------------------
# Panels
# --------------------------------------------------------------------------------------------

def _draw_convergence(ax, histories: Mapping[str, Iterable[Any]],
                      convergence_threshold: float | None) -> None:
    curves = {name: relative_improvements(recs) for name, recs in histories.items()}
    curves = {k: v for k, v in curves.items() if v[0].size}
    ax.set_title("Convergence: relative improvement per iteration")
    ax.set_xlabel("iteration")
    ax.set_ylabel("(c[i−1] − c[i]) / c[i]   (c: convergence metric)")
    if not curves:
        ax.text(0.5, 0.5, "no iterations recorded", ha="center", va="center", transform=ax.transAxes,
                color="0.4")
        return
    ax.set_yscale("log")
    many = len(curves) > MAX_LABELLED_HISTORIES
    worse_i, worse_v = [], []
    for name, (its, imp) in curves.items():
        # A log axis shows magnitudes: a step that worsened the fit is drawn at its size, marked.
        shown = np.abs(imp)
        worse = imp <= 0
        worse_i.extend(its[worse])
        worse_v.extend(shown[worse])
        if many:
            ax.plot(its, shown, color="0.6", lw=0.7, alpha=0.6)
        else:
            ax.plot(its, shown, marker="o", ms=3.5, lw=1.5, label=f"{name} ({int(its.max())} it.)")
    if many:
        mi, mc = _median_curve([(i, np.abs(v)) for i, v in curves.values()])
        ax.plot(mi, mc, color="C3", lw=2.5, label=f"median of {len(curves)} subregions")
        ax.plot([], [], color="0.6", lw=0.7, label="single subregion")
    if worse_i:
        ax.plot(worse_i, np.maximum(worse_v, 1e-12), ls="none", marker="x", color="C3", ms=7,
                label="fit worsened (size shown)")
    if convergence_threshold is not None:
        ax.axhline(convergence_threshold, color="k", ls=":", lw=1.4,
                   label=f"convergence_threshold {convergence_threshold:g}")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9, loc="best", ncols=1 if len(curves) <= 5 or many else 2)


def _draw_composite(ax, subfilter_images: np.ndarray) -> None:
    m, ny, nx = subfilter_images.shape
    factor = math.ceil(max(ny, nx) / _MAX_COMPOSITE_PIXELS)
    rgb = false_colour_rgb(_block_mean(np.asarray(subfilter_images), factor))
    # Extent in original pixels, so the axes read the same whatever the binning.
    extent = (-0.5, rgb.shape[1] * factor - 0.5, -0.5, rgb.shape[0] * factor - 0.5)
    ax.imshow(rgb, origin="lower", interpolation="antialiased", extent=extent)
    groups = subfilter_groups(m)

    def label(g: list[int]) -> str:  # groups are always contiguous
        return str(g[0]) if len(g) == 1 else f"{g[0]}–{g[-1]}"

    if m == 3:
        note = "B, G, R = subfilters 0, 1, 2"
    elif m == 1:
        note = "one subfilter: grey"
    else:
        note = (f"B = {label(groups[0])}, G = {label(groups[1])}, R = {label(groups[2])} "
                f"of {m} subfilters (averaged)")
    ax.set_title(f"Subfilter false colour (shared asinh)\n{note}", fontsize=12)
    ax.set_xlabel("x (pixel)")
    ax.set_ylabel("y (pixel)")


def _vector_field(v: Any, name: str) -> Any:
    return v.get(name) if isinstance(v, Mapping) else getattr(v, name, None)


def vectors_arrays(vectors: Iterable[Any]) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """``(visits, airmass, (dy, dx) per input)`` of the DCR vectors (mappings or `DcrVector`)."""
    visits, airmass, dydx = [], [], []
    for v in vectors:
        visits.append(_vector_field(v, "visit"))
        airmass.append(_as_float(_vector_field(v, "airmass")))
        dydx.append([_as_float(_vector_field(v, "dy")), _as_float(_vector_field(v, "dx"))])
    return visits, np.asarray(airmass, float), np.asarray(dydx, float).reshape(-1, 2)


def _draw_vectors(ax, cax, vectors: Sequence[Any], extra: tuple[str, Any] | None) -> None:
    """DCR vector of each input from the origin, coloured by airmass; ``extra`` = (label, (dy, dx))
    of the shown visit when it is not an input."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    ax.set_title("DCR per input: bluest − reddest subfilter")
    ax.set_xlabel("dx (pixel)")
    ax.set_ylabel("dy (pixel)")
    ax.set_aspect("equal", adjustable="datalim")
    visits, airmass, dydx = vectors_arrays(vectors)
    ok = np.all(np.isfinite(dydx), axis=1)
    if not ok.any():
        ax.text(0.5, 0.5, "no DCR vectors (visit geometry missing)", ha="center", va="center",
                transform=ax.transAxes, color="0.4")
        cax.set_visible(False)
        return
    am = airmass[ok & np.isfinite(airmass)]
    lo, hi = (float(am.min()), float(am.max())) if am.size else (1.0, 2.0)
    norm = Normalize(vmin=lo, vmax=max(hi, lo + 0.01))
    cmap = colormaps["viridis"]
    for visit, a, (dy, dx), good in zip(visits, airmass, dydx, ok, strict=True):
        if not good:
            continue
        colour = cmap(norm(a)) if math.isfinite(a) else "0.5"
        ax.annotate("", xy=(dx, dy), xytext=(0.0, 0.0),
                    arrowprops={"arrowstyle": "-|>", "color": colour, "lw": 1.4, "shrinkA": 0, "shrinkB": 0})
        if len(visits) <= MAX_LABELLED_VECTORS:
            ax.text(dx, dy, f" {visit}", fontsize=8, color="0.25", ha="left", va="center")
    reach = float(np.max(np.abs(dydx[ok])))
    if extra is not None:
        label, (dy, dx) = extra
        if math.isfinite(dy) and math.isfinite(dx):
            ax.annotate("", xy=(dx, dy), xytext=(0.0, 0.0),
                        arrowprops={"arrowstyle": "-|>", "color": "k", "lw": 1.6, "ls": "--",
                                    "shrinkA": 0, "shrinkB": 0})
            ax.text(dx, dy, f" {label}", fontsize=8, color="k", ha="left", va="bottom", weight="bold")
            reach = max(reach, abs(dy), abs(dx))
    lim = 1.25 * reach if reach > 0 else 1.0
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.axhline(0.0, color="0.8", lw=0.8)
    ax.axvline(0.0, color="0.8", lw=0.8)
    ax.plot([0.0], [0.0], marker="o", color="k", ms=3)
    ax.grid(alpha=0.3)
    from matplotlib.cm import ScalarMappable

    cb = ax.figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax)
    cb.set_label("airmass", fontsize=10)


def _masked_cmap(name: str):
    from matplotlib import colormaps

    return colormaps[name].with_extremes(bad=MASKED_COLOUR)


def _draw_showcase(axes, caxes, text_ax, showcase: Mapping[str, Any]) -> None:
    """Science image and its two differences in noise units; ``caxes`` are the science and
    difference colourbars, ``text_ax`` holds the definitions of the scores."""
    from matplotlib.colors import AsinhNorm
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    science = np.asarray(showcase["science"], dtype=np.float64)
    chis = [np.asarray(showcase["chi_baseline"], dtype=np.float64),
            np.asarray(showcase["chi_dcr"], dtype=np.float64)]
    for name, arr in (("science", science), ("chi_baseline", chis[0]), ("chi_dcr", chis[1])):
        if arr.ndim != 2:
            raise ValueError(f"showcase['{name}'] must be a 2-D image, got shape {arr.shape}")
    masked = showcase.get("masked")
    if masked is not None:
        masked = np.asarray(masked, bool)
        science = np.where(masked, np.nan, science)
        chis = [np.where(masked, np.nan, c) for c in chis]

    # Axes in parent-grid pixels when the region is known, so a user can find it in the coadd.
    box = showcase.get("box")
    extent = None if box is None else (box.x0 - 0.5, box.x0 + box.width - 0.5,
                                       box.y0 - 0.5, box.y0 + box.height - 0.5)
    finite = science[np.isfinite(science)]
    sky = float(np.median(finite)) if finite.size else 0.0
    sci_sigma = _robust_sigma(science) or 1.0
    top = (float(np.percentile(finite, 99.8)) if finite.size else sky) - sky
    ax = axes[0]
    im = ax.imshow(science - sky, origin="lower", cmap=_masked_cmap("gray"), interpolation="nearest",
                   extent=extent, norm=AsinhNorm(linear_width=2.0 * sci_sigma, vmin=-3.0 * sci_sigma,
                                  vmax=max(top, 10.0 * sci_sigma)))
    ax.set_title("Science image")
    cb = ax.figure.colorbar(im, cax=caxes[0])
    cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    cb.set_label("nJy above sky (asinh scale)", fontsize=10)

    names = [("Science − baseline coadd", showcase.get("score_baseline")),
             ("Science − DCR template", showcase.get("score_dcr"))]
    for ax, chi, (name, score) in zip(axes[1:], chis, names, strict=True):
        im = ax.imshow(chi, origin="lower", cmap=_masked_cmap("RdBu_r"), vmin=-DIFF_RANGE_SIGMA,
                       vmax=DIFF_RANGE_SIGMA, interpolation="nearest", extent=extent)
        ax.set_title(name if score is None else f"{name}\n{_describe_score(score)}")
    cb = ax.figure.colorbar(im, cax=caxes[1], extend="both")
    cb.set_label("(science − template) / √(var_s + var_t)", fontsize=10)
    for ax in axes:
        ax.set_xlabel("x (pixel)")
    axes[0].set_ylabel("y (pixel)")

    text_ax.axis("off")
    lines = [
        "χ²/src px: mean of (science − template)² / (var_s + var_t)",
        "over the baseline coadd's DETECTED pixels good in both",
        "images (≥ 8 px from the edge); 1 = residuals are noise.",
        "det. (5σ): groups of ≥ 3 connected pixels beyond 5σ,",
        "either sign, in the difference: false detections.",
        "",
        "Direct pixel subtraction: the templates are at the",
        "model's PSF, the science image at its own seeing.",
    ]
    text_ax.text(0.0, 1.0, "\n".join(lines), ha="left", va="top", fontsize=10, transform=text_ax.transAxes,
                 linespacing=1.5)
    text_ax.legend(handles=[Patch(facecolor=MASKED_COLOUR, edgecolor="0.3",
                                  label="masked in either image (not scored)")],
                   loc="lower left", fontsize=10, frameon=False)


def _describe_score(score: Any) -> str:
    if hasattr(score, "describe"):
        return score.describe()
    chi2, n = _as_float(score.get("chi2")), score.get("n_detections")
    return f"χ²/src px {_fmt(chi2, '.2f')}, {n} det. (5σ)"


def inputs_summary(inputs: Any) -> str:
    """One line on the spread of the inputs' airmass and parallactic angle (what conditions DCR)."""
    rows, _units = _records(inputs)
    airmass = np.array([_as_float(r.get("airmass")) for r in rows])
    pa_col = next((c for c in _PA_COLUMNS if any(c in r for r in rows)), None)
    pa = np.array([_as_float(r.get(pa_col), "deg") for r in rows]) if pa_col else np.array([])
    parts = []
    airmass, pa = airmass[np.isfinite(airmass)], pa[np.isfinite(pa)]
    if airmass.size:
        parts.append(f"airmass {airmass.min():.2f} – {airmass.max():.2f}")
    if pa.size:
        parts.append(f"parallactic angle {pa.min():+.0f}° – {pa.max():+.0f}° "
                     f"(span {pa.max() - pa.min():.0f}°)")
    return ";  ".join(parts)


def _draw_inputs_table(ax, inputs: Any, max_rows: int, footer: str) -> None:
    ax.axis("off")
    header, rows, n = inputs_table_rows(inputs, max_rows=max_rows)
    ax.set_title(f"Inputs ({n} visit{'s' if n != 1 else ''})")
    if not rows:
        ax.text(0.5, 0.5, "no inputs listed", ha="center", va="center", transform=ax.transAxes,
                color="0.4")
        return
    # Row height capped so that a short table does not stretch into tall cells; the header
    # takes two lines (name, unit); the footer below takes up to four lines.
    row_h = min(0.76 / (len(rows) + 2), 0.075)
    height = row_h * (len(rows) + 2)
    table = ax.table(cellText=rows, colLabels=[h.replace(" (", "\n(") for h in header],
                     cellLoc="center", loc="upper center", bbox=[0.0, 1.0 - height, 1.0, height])
    table.auto_set_font_size(False)
    table.set_fontsize(10 if len(rows) <= 12 else 9)
    for (r, _c), cell in table.get_celld().items():
        cell.set_edgecolor("0.75")
        if r == 0:
            cell.set_height(2.0 * cell.get_height())
            cell.set_facecolor("0.88")
            cell.set_text_props(weight="bold")
        elif rows[r - 1][0].startswith("…"):
            cell.set_text_props(style="italic", color="0.35")
        elif r % 2 == 0:
            cell.set_facecolor("0.965")
    ax.text(0.5, 1.0 - height - 0.03, textwrap.fill(footer, 64), ha="center", va="top",
            transform=ax.transAxes, fontsize=10, color="0.2")


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------

#: Panel rectangles in inches, (left, bottom, width, height), measured from the bottom of the
#: row they sit in. Fixed positions instead of a layout engine: predictable, and the
#: constrained layout would double the drawing time.
_TOP_ROW_HEIGHT = 5.0     # inches of figure for the top row (panels + titles + labels)
_BOTTOM_ROW_HEIGHT = 5.0  # inches for the showcase row, its own title line included
_TITLE_HEIGHT = 0.3
_TOP_PANELS = {"convergence": (0.8, 0.6, 4.3, 3.7), "composite": (6.0, 0.6, 3.7, 3.7),
               "vectors": (10.4, 0.6, 3.7, 3.7), "table": (15.1, 0.2, 4.75, 4.1)}
_BOTTOM_PANELS = {"science": (0.8, 0.55, 3.7, 3.7), "baseline": (6.0, 0.55, 3.7, 3.7),
                  "dcr": (10.4, 0.55, 3.7, 3.7)}
_SCORES_TEXT = (15.1, 0.55, 4.75, 3.7)
_COLOURBAR_GAP, _COLOURBAR_WIDTH = 0.12, 0.15

#: The composite is block-averaged to at most this many pixels a side before stretching
#: (a 4k x 4k patch would otherwise cost gigabytes for a 370-pixel panel).
_MAX_COMPOSITE_PIXELS = 1024


def _fit_image_rect(rect: tuple[float, float, float, float], ny: int, nx: int,
                    ) -> tuple[float, float, float, float]:
    """Shrink ``rect`` (inches) to the aspect of an ``ny x nx`` image of square pixels, centred.

    Sizing the axes to the image keeps titles on the image and colourbars its height.
    """
    left, bottom, w, h = rect
    scale = min(w / nx, h / ny)
    fw, fh = nx * scale, ny * scale
    return left + (w - fw) / 2, bottom + (h - fh) / 2, fw, fh


def _colourbar_rect(rect: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    left, bottom, w, h = rect
    return left + w + _COLOURBAR_GAP, bottom, _COLOURBAR_WIDTH, h


def _block_mean(images: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor x factor`` blocks of the last two axes, ignoring NaN (NaN where a block has
    none; trailing partial blocks dropped), in double precision from the images' own dtype.

    Summed over the block axes in place: a transposed float64 copy of a CCD's model first took
    1.5 s of a 2048 x 4096 report, this 0.1 s.
    """
    if factor <= 1:
        return images
    m, ny, nx = images.shape
    ny, nx = ny // factor * factor, nx // factor * factor
    blocks = images[:, :ny, :nx].reshape(m, ny // factor, factor, nx // factor, factor)
    return _nan_mean(blocks, axis=(2, 4))


def build_figure(*, subfilter_images: np.ndarray, histories: Mapping[str, Iterable[Any]],
                 inputs: Any, showcase: Mapping[str, Any] | None = None, title: str = "",
                 convergence_threshold: float | None = None, dcr_vectors: Sequence[Any] = (),
                 coverage_line: str | None = None, notes: Sequence[str] = (),
                 max_table_rows: int = MAX_TABLE_ROWS):
    """Draw the report into a new `matplotlib.figure.Figure` (Agg canvas) and return it.

    Same parameters as `make_report`, without the path. Useful to embed the
    figure elsewhere or to save it in another format. With a title and a square
    showcase the figure is `FIGSIZE`; a wider showcase image makes the page
    shorter by the height it does not use, and without a showcase only the top
    row is drawn.
    """
    Figure, FigureCanvasAgg = _matplotlib()
    images = np.asarray(subfilter_images)
    if images.ndim != 3 or images.shape[0] < 1:
        raise ValueError(f"subfilter_images must have shape (M, ny, nx), got {images.shape}")
    if showcase is not None:
        missing = {"science", "chi_baseline", "chi_dcr"} - set(showcase)
        if missing:
            raise ValueError(f"showcase is missing {sorted(missing)}")

    width = FIGSIZE[0]
    title_height = _TITLE_HEIGHT if title else 0.0
    bottom_height, rects = 0.0, {}
    if showcase is not None:
        sny, snx = np.shape(showcase["science"])[:2]
        rects = {name: _fit_image_rect(rect, sny, snx) for name, rect in _BOTTOM_PANELS.items()}
        # A wide image leaves its box's height unused: the row, hence the figure, shrinks by it.
        unused = _BOTTOM_PANELS["science"][3] - rects["science"][3]
        rects = {name: (r[0], _BOTTOM_PANELS[name][1], r[2], r[3]) for name, r in rects.items()}
        bottom_height = _BOTTOM_ROW_HEIGHT - unused
    height = _TOP_ROW_HEIGHT + title_height + bottom_height
    footer = " ".join([coverage_line or inputs_summary(inputs), *notes]).strip()
    with _font_context():
        fig = Figure(figsize=(width, height), dpi=DPI)
        FigureCanvasAgg(fig)

        def add(rect: tuple[float, float, float, float], row_bottom: float):
            left, bottom, w, h = rect
            return fig.add_axes((left / width, (row_bottom + bottom) / height, w / width, h / height))

        top_bottom = height - title_height - _TOP_ROW_HEIGHT
        ny, nx = images.shape[1:]
        top = {name: add(_fit_image_rect(rect, ny, nx) if name == "composite" else rect, top_bottom)
               for name, rect in _TOP_PANELS.items()}
        _draw_convergence(top["convergence"], histories, convergence_threshold)
        _draw_composite(top["composite"], images)
        extra = None
        if showcase is not None and showcase.get("dcr_vector") is not None:
            extra = (str(showcase.get("vector_label") or showcase.get("visit") or "shown"),
                     tuple(float(v) for v in showcase["dcr_vector"]))
        _draw_vectors(top["vectors"], add(_colourbar_rect(_TOP_PANELS["vectors"]), top_bottom),
                      list(dcr_vectors), extra)
        _draw_inputs_table(top["table"], inputs, max_table_rows, footer)
        if showcase is not None:
            axes = [add(rects[name], 0.0) for name in ("science", "baseline", "dcr")]
            caxes = [add(_colourbar_rect(rects[name]), 0.0) for name in ("science", "dcr")]
            _draw_showcase(axes, caxes, add(_SCORES_TEXT, 0.0), showcase)
            row_title = showcase.get("title")
            if row_title:
                fig.text(0.5, (bottom_height - 0.12) / height, row_title, ha="center", va="top",
                         fontsize=13, weight="bold")
        if title:
            fig.suptitle(title, fontsize=16, weight="bold", y=1.0 - 0.08 / height, va="top")
    return fig


def _font_context():
    from matplotlib import rc_context
    return rc_context({"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11,
                       "xtick.labelsize": 10, "ytick.labelsize": 10, "legend.fontsize": 9})


def make_report(path: str | os.PathLike, *, subfilter_images: np.ndarray,
                histories: Mapping[str, Iterable[Any]], inputs: Any,
                showcase: Mapping[str, Any] | None = None, title: str = "",
                convergence_threshold: float | None = None, dcr_vectors: Sequence[Any] = (),
                coverage_line: str | None = None, notes: Sequence[str] = (),
                max_table_rows: int = MAX_TABLE_ROWS) -> Path:
    """Write the one-page PNG report, atomically.

    Parameters
    ----------
    path : str or path-like
        Output PNG. Its directory must exist. Written to a temporary file in the
        same directory and renamed into place, so it is either complete or absent
        (a previous report survives a failure).
    subfilter_images : ndarray, shape (M, ny, nx)
        DCR model images, bluest subfilter first.
    histories : mapping of str to sequence
        Per subregion name, its convergence history: the solver's records (dicts with
        ``iteration`` and ``convergence``) or ``(iteration, convergence, ...)`` tuples.
        Drawn as `relative_improvements`.
    inputs : astropy Table or iterable of mapping
        One row per input visit; see `inputs_table_rows` for the columns.
    showcase : mapping, optional
        One visit the model has not seen: ``'science'`` (2-D, nJy), ``'chi_baseline'`` and
        ``'chi_dcr'`` (``(science − template) / sqrt(var_s + var_t)`` for the baseline coadd
        and the DCR template), and optionally ``'masked'`` (bool, drawn in `MASKED_COLOUR`),
        ``'title'`` (what the visit is: held out, left out), ``'score_baseline'`` and
        ``'score_dcr'`` (`dcrcoadd.report.scores.DifferenceScore`), ``'dcr_vector'``
        (``(dy, dx)``, drawn dashed in the DCR panel) with ``'vector_label'``, and ``'box'``
        (a `dcrcoadd.core.geom.Box`: the axes then read parent-grid pixels). The
        differences are drawn on ±`DIFF_RANGE_SIGMA`. Images are shown whole in panels
        about 370 pixels wide: pass a cutout of a few hundred pixels so that dipoles of a
        pixel or two stay visible.
    title : str
        Figure title.
    convergence_threshold : float, optional
        The solver's threshold on the relative improvement, drawn as a horizontal line on
        the convergence panel (None: a solver without one; no line).
    dcr_vectors : sequence
        Per input, ``visit``, ``airmass``, ``dy``, ``dx`` (a mapping or
        `dcrcoadd.report.coverage.DcrVector`): the bluest minus reddest subfilter shift.
    coverage_line : str, optional
        What the coverage says about the subfilters (`dcrcoadd.report.coverage.Coverage.line`);
        default: the airmass and parallactic angle ranges.
    notes : sequence of str
        More sentences under the inputs table (e.g. why there are no difference panels).
    max_table_rows : int
        Most input rows listed before the table is truncated in the middle.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ConfigError
        matplotlib is not installed (the ``plot`` extra).
    InputError
        The output directory does not exist.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise InputError("output directory does not exist", directory)
    fig = build_figure(subfilter_images=subfilter_images, histories=histories, inputs=inputs,
                       showcase=showcase, title=title, convergence_threshold=convergence_threshold,
                       dcr_vectors=dcr_vectors, coverage_line=coverage_line, notes=notes,
                       max_table_rows=max_table_rows)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format="png", dpi=DPI)
        # mkstemp makes 0600 files; a report should be as readable as any other output.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.info("wrote report %s", path)
    return path
