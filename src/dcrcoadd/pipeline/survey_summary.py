"""What a survey reports about its patches: a false-detection proxy per patch, the summary table
(``survey.ecsv`` and ``survey.csv``) and the footprint figure (``footprint.png``).

The figure has three panels of the same sky map, one polygon per patch: status (done,
resumed, failed), the airmass range of its warps and its false-detection proxy. It needs
matplotlib (the ``plot`` extra); without it the table is still written.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dcrcoadd.core.geom import Box
from dcrcoadd.io.atomic import atomic_output
from dcrcoadd.ops.detection import detect, significance

if TYPE_CHECKING:
    from dcrcoadd.dcr.assemble import DcrCoaddResult
    from dcrcoadd.pipeline.survey import PatchOutcome

log = logging.getLogger("dcrcoadd.pipeline.survey_summary")

#: Detection threshold (sigma) and smallest footprint (pixels) of the false-detection proxy.
PROXY_THRESHOLD = 5.0
PROXY_MIN_PIXELS = 3
#: Pixels left out at the edges of a difference, where the template's shifts reach no data.
PROXY_MARGIN = 8
_BAD_PLANES = ("BAD", "SAT", "NO_DATA", "EDGE", "CR")

STATUS_COLOURS = {"done": "#2ca02c", "resumed": "#1f77b4", "failed": "#d62728"}
#: The files the summary writes next to the patch directories (no patch may be named so).
SUMMARY_FILES = ("survey.ecsv", "survey.csv", "footprint.png")


# -- per patch -------------------------------------------------------------------------------------

def sky_corners(wcs, box: Box, origin: tuple[int, int] = (0, 0)) -> tuple[list[float], list[float]]:
    """RA and Dec (deg) of the outer corners of ``box``'s pixels (parent grid), from (x0, y0) round
    the box; ``wcs`` is that of an array whose first pixel is at ``origin`` (an exposure's ``wcs``
    and ``origin``). Empty lists without a WCS."""
    if wcs is None:
        return [], []
    xs = np.array([box.x0, box.x1, box.x1, box.x0], float) - 0.5 - origin[0]
    ys = np.array([box.y0, box.y0, box.y1, box.y1], float) - 0.5 - origin[1]
    ra, dec = wcs.celestial.pixel_to_world_values(xs, ys)
    return [float(v) for v in np.asarray(ra) % 360.0], [float(v) for v in np.asarray(dec)]


@dataclass
class FalseDetectionProxy:
    """5-sigma footprints in one warp minus its DCR-matched template, and minus the baseline coadd."""

    visit: int
    airmass: float
    n_dcr: int
    n_baseline: int


def count_detections(diff: np.ndarray, variance: np.ndarray, good: np.ndarray) -> int:
    """Footprints of ``PROXY_MIN_PIXELS`` or more beyond ``PROXY_THRESHOLD`` sigma, both signs."""
    snr = significance(np.where(good, diff, 0.0), np.where(good, variance, 0.0))
    return detect(snr, PROXY_THRESHOLD, polarity="both", min_pixels=PROXY_MIN_PIXELS)[1]


def false_detection_proxy(result: DcrCoaddResult) -> FalseDetectionProxy | None:
    """The false-detection proxy of a patch, on its highest-airmass warp (the one DCR moves most).

    That warp is one of the model's inputs, so the counts are a lower bound on what an
    independent science visit at that airmass would give; they compare templates, patch to patch.
    None when the warp has no visit or no pixels in the patch.
    """
    baseline = result.baseline
    airmass = np.array([i.airmass for i in baseline.inputs], float)
    if not np.isfinite(airmass).any():
        return None
    chosen = baseline.inputs[int(np.nanargmax(airmass))]
    coadd = baseline.coadd
    science = chosen.read(coadd.bbox)  # nJy, flux_calibration 1, like the coadd
    if science is None or science.visit is None:
        return None
    box = science.bbox
    template = result.model.build_matched_exposure(science.visit.completed(), bbox=box, psf=science.psf)
    sl = box.slices(coadd.bbox)
    good = np.isfinite(science.image) & (science.variance > 0) & ~science.mask_of(*_BAD_PLANES)
    good &= ~template.mask_of("NO_DATA") & np.isfinite(template.image)
    margin = min(PROXY_MARGIN, box.width // 4, box.height // 4)
    inner = np.zeros(good.shape, bool)
    inner[margin:good.shape[0] - margin, margin:good.shape[1] - margin] = True
    good &= inner
    scale = np.float32(template.flux_calibration / coadd.flux_calibration)
    n_dcr = count_detections(science.image - template.image * scale,
                             science.variance + template.variance * scale * scale, good)
    n_base = count_detections(science.image - coadd.image[sl], science.variance + coadd.variance[sl],
                              good & np.isfinite(coadd.image[sl]))
    return FalseDetectionProxy(int(science.visit.id), float(chosen.airmass), int(n_dcr), int(n_base))


# -- the table -------------------------------------------------------------------------------------

def summary_table(outcomes: list[PatchOutcome]):
    """One row per patch (astropy Table): status and error, inputs, airmass range, proxy, tiles,
    box, centre and corners on the sky, seconds, warnings logged."""
    from astropy.table import Table

    t = Table()
    t["name"] = [o.name for o in outcomes]
    t["status"] = [o.status for o in outcomes]
    t["dcr"] = [o.dcr for o in outcomes]
    t["n_inputs"] = np.array([o.n_inputs for o in outcomes], np.int32)
    t["n_skipped"] = np.array([o.n_skipped for o in outcomes], np.int32)
    t["airmass_min"] = [o.airmass_min for o in outcomes]
    t["airmass_max"] = [o.airmass_max for o in outcomes]
    t["false_dcr"] = np.array([o.false_dcr for o in outcomes], np.int32)
    t["false_baseline"] = np.array([o.false_baseline for o in outcomes], np.int32)
    t["proxy_visit"] = np.array([o.proxy_visit for o in outcomes], np.int64)
    t["proxy_airmass"] = [o.proxy_airmass for o in outcomes]
    t["n_tiles"] = np.array([o.n_tiles for o in outcomes], np.int32)
    t["final_convergence"] = [o.final_convergence for o in outcomes]
    for i, column in enumerate(("x0", "y0", "width", "height")):
        t[column] = np.array([o.box[i] if len(o.box) == 4 else -1 for o in outcomes], np.int64)
    centres = [_centre(o.ra, o.dec) for o in outcomes]
    t["ra"] = [c[0] for c in centres]
    t["dec"] = [c[1] for c in centres]
    t["ra"].unit = t["dec"].unit = "deg"
    t["corners_ra"] = [" ".join(f"{v:.7f}" for v in o.ra) for o in outcomes]
    t["corners_dec"] = [" ".join(f"{v:.7f}" for v in o.dec) for o in outcomes]
    t["seconds"] = [o.seconds for o in outcomes]
    t["seconds"].unit = "s"
    t["n_warnings"] = np.array([o.n_warnings for o in outcomes], np.int32)
    t["error"] = [o.error for o in outcomes]
    t.meta["comments"] = [
        "status: done (this run), resumed (finished by an earlier run), failed (see error)",
        f"false_dcr / false_baseline: {PROXY_THRESHOLD:g}-sigma footprints (>= {PROXY_MIN_PIXELS} px, "
        "both signs) in the highest-airmass warp (proxy_visit) minus its DCR-matched template / minus "
        "the baseline coadd; -1: not measured",
        "x0 y0 width height: the patch box on the warps' grid; corners_*: its sky corners (deg)",
    ]
    return t


def _centre(ra: list[float], dec: list[float]) -> tuple[float, float]:
    if not ra:
        return float("nan"), float("nan")
    ra0 = ra[0]
    offsets = [((r - ra0 + 180.0) % 360.0) - 180.0 for r in ra]  # across RA = 0 too
    return float((ra0 + np.mean(offsets)) % 360.0), float(np.mean(dec))


def write_summary(outcomes: list[PatchOutcome], out_dir: str | os.PathLike, *,
                  title: str = "dcrcoadd survey") -> dict[str, Path]:
    """Write ``survey.ecsv``, ``survey.csv`` and (with matplotlib) ``footprint.png`` into ``out_dir``."""
    out = Path(out_dir)
    table = summary_table(outcomes)
    written = {}
    for name, fmt in zip(SUMMARY_FILES[:2], ("ascii.ecsv", "ascii.csv"), strict=True):
        with atomic_output(out / name) as tmp:
            table.write(tmp, format=fmt, overwrite=True)
        written[name.replace(".", "_")] = out / name
    figure = footprint_figure(outcomes, out / SUMMARY_FILES[2], title=title)
    if figure is not None:
        written["footprint"] = figure
    return written


# -- the figure ------------------------------------------------------------------------------------

def _plane_coordinates(outcomes: list[PatchOutcome]) -> tuple[float, float, list[np.ndarray | None]]:
    """Each patch's corners as (x, y) degrees on the tangent plane at the survey's centre
    (x increases to the East, as RA; drawn to the left)."""
    known = [o for o in outcomes if o.ra]
    if not known:
        return 0.0, 0.0, [None] * len(outcomes)
    ra = np.concatenate([o.ra for o in known])
    dec = np.concatenate([o.dec for o in known])
    rad = np.radians(ra)
    ra0 = float(np.degrees(np.arctan2(np.mean(np.sin(rad)), np.mean(np.cos(rad)))) % 360)
    dec0 = float(np.mean(dec))
    shapes = []
    for o in outcomes:
        if not o.ra:
            shapes.append(None)
            continue
        shapes.append(np.column_stack(_gnomonic(np.radians(o.ra), np.radians(o.dec), math.radians(ra0),
                                                math.radians(dec0))))
    return ra0, dec0, shapes


def _gnomonic(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    cos_c = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    x = np.cos(dec) * np.sin(ra - ra0) / cos_c
    y = (np.cos(dec0) * np.sin(dec) - np.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)) / cos_c
    return np.degrees(x), np.degrees(y)


def footprint_figure(outcomes: list[PatchOutcome], path: str | os.PathLike, *,
                     title: str = "dcrcoadd survey") -> Path | None:
    """The survey's footprint: patches coloured by status, by airmass range and by the DCR
    template's false-detection proxy. None (with a log line) without matplotlib or sky corners."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.collections import PolyCollection
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError:
        log.warning("no footprint figure: install dcrcoadd[plot] for matplotlib")
        return None
    ra0, dec0, shapes = _plane_coordinates(outcomes)
    drawn = [(o, s) for o, s in zip(outcomes, shapes, strict=True) if s is not None]
    if not drawn:
        log.warning("no footprint figure: no patch has sky coordinates")
        return None
    corners = np.concatenate([s for _, s in drawn])
    span = max(float(np.ptp(corners[:, 0])), float(np.ptp(corners[:, 1])), 1e-9)
    unit, per_degree = (("deg", 1.0) if span > 0.5 else ("arcmin", 60.0) if span > 0.5 / 60
                        else ("arcsec", 3600.0))
    drawn = [(o, s * per_degree) for o, s in drawn]
    corners = corners * per_degree
    pad = 0.05 * span * per_degree

    fig = Figure(figsize=(16.5, 5.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    colours = [STATUS_COLOURS.get(o.status, "grey") for o, _ in drawn]
    axes[0].add_collection(PolyCollection([s for _, s in drawn], facecolors=colours, edgecolors="black",
                                          linewidths=0.4, alpha=0.7))
    axes[0].legend(handles=[Patch(color=c, label=f"{k} ({sum(o.status == k for o in outcomes)})")
                            for k, c in STATUS_COLOURS.items()], loc="best", fontsize=8, framealpha=0.8)
    axes[0].set_title("status")
    _coloured(fig, axes[1], drawn, [o.airmass_max for o, _ in drawn], "viridis", "largest airmass")
    axes[1].set_title("airmass of the warps (min-max)")
    _coloured(fig, axes[2], drawn, [o.false_dcr if o.false_dcr >= 0 else np.nan for o, _ in drawn], "magma_r",
              "false detections, DCR template")
    axes[2].set_title("false-detection proxy: DCR (baseline)")
    if len(drawn) <= 60:  # beyond that, labels would cover the map
        label = {"ha": "center", "va": "center", "fontsize": 7,
                 "bbox": {"facecolor": "white", "alpha": 0.7, "linewidth": 0, "pad": 1}}
        for o, s in drawn:
            centre = tuple(s.mean(axis=0))
            axes[0].annotate(o.name, centre, **label)
            if math.isfinite(o.airmass_min):
                axes[1].annotate(f"{o.airmass_min:.2f}-{o.airmass_max:.2f}", centre, **label)
            if o.false_dcr >= 0:
                axes[2].annotate(f"{o.false_dcr} ({o.false_baseline})", centre, **label)
    for ax in axes:
        ax.set_xlim(corners[:, 0].max() + pad, corners[:, 0].min() - pad)  # East to the left
        ax.set_ylim(corners[:, 1].min() - pad, corners[:, 1].max() + pad)
        ax.set_aspect("equal")
        ax.set_xlabel(f"east offset ({unit}) from RA {ra0:.4f} deg")
        ax.set_ylabel(f"north offset ({unit}) from Dec {dec0:+.4f} deg")
    fig.suptitle(f"{title}: {len(outcomes)} patches", fontsize=13, weight="bold")
    path = Path(path)
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        fig.savefig(fh, format="png")
    return path


def _coloured(fig, ax, drawn, values, cmap: str, label: str) -> None:
    """Patches coloured by ``values`` (NaN: light grey), with a colour bar."""
    from matplotlib import colormaps
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import Normalize

    values = np.asarray(values, float)
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi <= lo:  # one value: centre it on the scale
        lo, hi = lo - 0.5, hi + 0.5
    collection = PolyCollection([s for _, s in drawn], cmap=colormaps[cmap].with_extremes(bad="lightgrey"),
                                norm=Normalize(lo, hi), edgecolors="black", linewidths=0.4)
    collection.set_array(np.ma.masked_invalid(values))
    ax.add_collection(collection)
    fig.colorbar(collection, ax=ax, label=label, shrink=0.8)


__all__ = ["FalseDetectionProxy", "count_detections", "false_detection_proxy", "footprint_figure",
           "sky_corners", "summary_table", "write_summary"]
