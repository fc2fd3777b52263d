"""Baseline coadd of a set of warps (LSST ``AssembleCoaddTask`` / ``CompareWarpAssembleCoaddTask``).

`assemble_coadd` reads like LSST's ``run``:

1. `prepare_inputs`: validate the warp set (one pixel grid, one band, usable data),
   flux-scale every warp to nJy and weight it by ``1 / (clipped mean variance)``.
2. Compare-warp (`dcrcoadd.coadd.artifacts`): one alternative mask per warp (CLIPPED
   artifacts, NO_DATA, EDGE).
3. Stack subregion by subregion (`assemble_subregion`): alternative masks applied,
   ``n_image`` counted, planes in ``remove_mask_planes`` cleared, then the statistic
   of `dcrcoadd.ops.stack` with LSST's mask propagation. Only one subregion of the warps
   is in memory at a time (a MEAN stack holds one warp's subregion at a time).
4. INEXACT_PSF where SENSOR_EDGE, CLIPPED or REJECTED; SENSOR_EDGE and INEXACT_PSF
   where a warp's PSF matching reached missing data.
5. `process_results`: interpolation over NO_DATA, bright-object masks.
6. Coadd PSF (weighted mean of input kernels) and the best-seeing PSF for DCR;
   the input table.

Streaming is exact: each output pixel depends only on the same input pixels (and,
for compare-warp, on the same kernel windows) whatever the subregion size, so a
tiled coadd equals a one-region coadd bit for bit.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.coordinates import Angle
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from dcrcoadd.coadd.artifacts import ArtifactMask, compare_warps, write_artifact_masks
from dcrcoadd.config.schema import Config
from dcrcoadd.core.bandpass import Bandpass
from dcrcoadd.core.exposure import Exposure, shift_wcs
from dcrcoadd.core.geom import Box
from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.core.psf import Psf, best_seeing_selection, coadd_psf, psf_fwhm
from dcrcoadd.core.visit import VisitInfo
from dcrcoadd.errors import InputError
from dcrcoadd.io.atomic import atomic_output
from dcrcoadd.io.calibration import reconcile_calibration
from dcrcoadd.io.fits import exposure_hdus, read_exposure, read_info
from dcrcoadd.ops.stack import MeanAccumulator, StackControl, clipped_mean, good_pixels, make_control, stack

log = logging.getLogger("dcrcoadd.coadd.baseline")

#: Planes the coadd always has (targets of the mask propagation rules).
COADD_PLANES = ("NO_DATA", "CLIPPED", "REJECTED", "SENSOR_EDGE", "INEXACT_PSF", "INTRP", "EDGE")


# -- inputs ----------------------------------------------------------------------------------------

@dataclass
class CoaddInput:
    """One warp going into the coadd: where it is, what it is, and how it is scaled and weighted.

    Attributes
    ----------
    name : str
        The file path, or a label for an in-memory exposure.
    source : Path or Exposure
    bbox : Box
        The warp's region of the parent grid.
    scale : float
        Multiplies the image into nJy (the warp's flux calibration); variance by ``scale**2``.
    weight : float
        ``1 / (clipped mean of the scaled variance over good pixels)``, times the airmass
        with ``do_airmass_weight``.
    planes : MaskPlanes
        The common plane layout `read` translates masks into.
    """

    name: str
    source: Path | Exposure
    bbox: Box
    wcs: WCS | None
    visit: VisitInfo | None
    band: str | None
    bandpass: Bandpass | None
    psf: Psf | None
    mask_planes: MaskPlanes
    flux_calibration: float
    scale: float = 1.0
    weight: float = float("nan")
    planes: MaskPlanes | None = None

    # -- metadata ----------------------------------------------------------------------------
    @property
    def visit_id(self) -> int | None:
        return None if self.visit is None else self.visit.id

    @property
    def airmass(self) -> float:
        return _visit_value(self.visit, "airmass")

    @property
    def parallactic_angle(self) -> float:
        """Boresight parallactic angle in degrees (NaN if unknown)."""
        return _visit_value(self.visit, "parallactic_angle", angle=True)

    @property
    def psf_fwhm(self) -> float:
        """PSF FWHM in pixels (LSST's determinant-radius size; NaN without a PSF)."""
        return float("nan") if self.psf is None else psf_fwhm(self.psf)

    # -- pixels ------------------------------------------------------------------------------
    def read(self, box: Box) -> Exposure | None:
        """Pixels inside ``box`` (clipped to the warp): image in nJy, variance scaled to match,
        mask in the common planes. None when ``box`` misses the warp."""
        crop = box.intersection(self.bbox)
        if crop.is_empty:
            return None
        if isinstance(self.source, Exposure):
            exp = self.source.subexposure(crop)
        else:
            exp = read_exposure(self.source, crop)
        planes = self.planes if self.planes is not None else exp.mask_planes
        s = np.float32(self.scale)
        return Exposure(
            image=exp.image * s, mask=planes.translate(exp.mask, exp.mask_planes),
            variance=exp.variance * (s * s), mask_planes=planes, origin=crop.origin, wcs=exp.wcs,
            psf=self.psf, visit=self.visit, band=self.band, bandpass=self.bandpass, flux_calibration=1.0,
        )


def _visit_value(visit: VisitInfo | None, attr: str, angle: bool = False) -> float:
    if visit is None:
        return float("nan")
    try:  # derived geometry may be unavailable (missing site, time...)
        value = getattr(visit, attr)
    except Exception:  # noqa: BLE001 - any failure just means "unknown"
        return float("nan")
    if value is None:
        return float("nan")
    return float(Angle(value).deg) if angle else float(value)


@dataclass
class PreparedInputs:
    """The validated, weighted warp set and the coadd geometry."""

    inputs: list[CoaddInput]
    bbox: Box
    wcs: WCS | None
    planes: MaskPlanes
    band: str | None
    bandpass: Bandpass | None
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _describe(warp, i: int) -> tuple[str, CoaddInput]:
    if isinstance(warp, Exposure):
        label = f"exposure[{i}]" if warp.visit is None else f"exposure[{i}] (visit {warp.visit.id})"
        return label, CoaddInput(
            name=label, source=warp, bbox=warp.bbox, wcs=warp.parent_wcs(), visit=warp.visit,
            band=warp.band, bandpass=warp.bandpass, psf=warp.psf, mask_planes=warp.mask_planes,
            flux_calibration=warp.flux_calibration)
    if isinstance(warp, (str, os.PathLike)):
        path = Path(warp)
        info = read_info(path)
        wcs = None if info.wcs is None else shift_wcs(info.wcs, info.bbox.x0, info.bbox.y0)
        return str(path), CoaddInput(
            name=str(path), source=path, bbox=info.bbox, wcs=wcs, visit=info.visit, band=info.band,
            bandpass=info.bandpass, psf=info.psf, mask_planes=info.mask_planes,
            flux_calibration=info.flux_calibration)
    raise InputError(f"warp {i} is a {type(warp).__name__}, expected a file path or an Exposure")


def _with_instrument(inp: CoaddInput, instrument: str) -> CoaddInput:
    from dataclasses import replace

    from dcrcoadd.core.instrument import instrument_defaults

    bandpass, visit = instrument_defaults(instrument, inp.band, inp.bandpass, inp.visit, inp.name)
    return replace(inp, bandpass=bandpass, visit=visit, band=inp.band or bandpass.name)


def _check_grid(ref: CoaddInput, other: CoaddInput, box: Box) -> None:
    """Raise InputError unless ``other`` maps parent pixels to the sky like ``ref`` (to 0.01 px)."""
    if (ref.wcs is None) != (other.wcs is None):
        has, lacks = (ref, other) if other.wcs is None else (other, ref)
        raise InputError(f"has no WCS but {has.name} has one; all warps must share one pixel grid",
                         lacks.name)
    if ref.wcs is None:
        return
    xs = np.array([box.x0, box.x1 - 1, box.x0, box.x1 - 1, 0.5 * (box.x0 + box.x1)], float)
    ys = np.array([box.y0, box.y0, box.y1 - 1, box.y1 - 1, 0.5 * (box.y0 + box.y1)], float)
    try:
        world = ref.wcs.pixel_to_world_values(xs, ys)
        back = other.wcs.world_to_pixel_values(*world)
    except Exception as exc:  # noqa: BLE001 - astropy raises many kinds on odd WCSs
        raise InputError(f"cannot compare its WCS with {ref.name}'s ({exc})", other.name) from None
    offset = float(np.nanmax(np.hypot(back[0] - xs, back[1] - ys)))
    if not offset <= 0.01:
        raise InputError(f"is not on the pixel grid of {ref.name}: the same sky position lands "
                         f"{offset:.3g} pixels apart (warps must be resampled onto one grid)", other.name)


def _check_band(ref: CoaddInput, other: CoaddInput) -> None:
    if ref.band is not None and other.band is not None and ref.band != other.band:
        raise InputError(f"band {other.band!r} differs from band {ref.band!r} of {ref.name}", other.name)
    if ref.bandpass is not None and other.bandpass is not None and ref.bandpass != other.bandpass:
        o, r = other.bandpass, ref.bandpass
        raise InputError(f"bandpass ({o.effective_wavelength:.1f}, {o.bandwidth:.1f}) differs from that of "
                         f"{ref.name} ({r.effective_wavelength:.1f}, {r.bandwidth:.1f})", other.name)


def common_planes(inputs: Sequence[CoaddInput], config: Config) -> MaskPlanes:
    """LSST planes plus every plane of the inputs and every plane the configuration names."""
    planes = MaskPlanes()
    for inp in inputs:
        planes = planes.merged(inp.mask_planes)
    c = config.coadd
    for name in (*COADD_PLANES, *c.bad_mask_planes, *c.mask_propagation_thresholds,
                 c.bright_object_mask_name):
        planes = planes.with_plane(name)
    return planes


def _good_variances(inp: CoaddInput, box: Box, bad: int, tile: tuple[int, int]) -> np.ndarray:
    """Scaled variances of the good pixels of ``inp`` in ``box``, read subregion by subregion."""
    parts = []
    for sub in box.subregions(tile):
        exp = inp.read(sub)
        if exp is None:
            continue
        good = good_pixels(exp.image, exp.mask, bad) & np.isfinite(exp.variance)
        parts.append(exp.variance[good])
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def prepare_inputs(warps, config: Config | None = None, *, bbox: Box | None = None) -> PreparedInputs:
    """Validate the warps, measure their weights and flux scales (LSST ``prepareInputs``).

    Parameters
    ----------
    warps : sequence of path-like or Exposure
    config : Config, optional
    bbox : Box, optional
        Coadd region in the parent grid; default the union of the warps' boxes. Warps that
        overlap it only partly are fine; warps outside it are skipped.

    Returns
    -------
    PreparedInputs

    Raises
    ------
    InputError
        Naming the warp: unreadable, on another pixel grid, in another band, a repeated
        visit, no PSF when compare-warp needs one; or when no warp has usable pixels.
        A single warp without usable pixels (all NaN, all masked, no finite positive
        variance) is skipped with a warning instead.
    """
    config = config or Config()
    if isinstance(warps, (str, os.PathLike, Exposure)):
        warps = [warps]
    warps = list(warps)
    if not warps:
        raise InputError("no warps given")
    described = reconcile_calibration([_describe(w, i)[1] for i, w in enumerate(warps)])
    if config.inputs.instrument:
        described = [_with_instrument(d, config.inputs.instrument) for d in described]
    ref = described[0]
    union = described[0].bbox
    for inp in described[1:]:
        union = union.union(inp.bbox)
    seen: dict[int, str] = {}
    for inp in described:
        if inp is not ref:
            _check_band(ref, inp)
            _check_grid(ref, inp, union)
        if inp.visit is not None:
            if inp.visit.id in seen:
                raise InputError(f"repeats visit {inp.visit.id} of {seen[inp.visit.id]}", inp.name)
            seen[inp.visit.id] = inp.name
    box = bbox if bbox is not None else union
    if box.is_empty:
        raise InputError(f"coadd region {box} is empty")
    planes = common_planes(described, config)
    bad = planes.value_if_present(config.effective_bad_mask_planes())
    kept: list[CoaddInput] = []
    skipped: list[tuple[str, str]] = []
    for inp in described:
        inp.planes = planes
        inp.scale = inp.flux_calibration  # image units -> nJy
        overlap = box.intersection(inp.bbox)
        if overlap.is_empty:
            reason = f"does not overlap the coadd region {box}"
            log.warning("skipping %s: %s", inp.name, reason)
            skipped.append((inp.name, reason))
            continue
        good_variances = _good_variances(inp, overlap, bad, tuple(config.coadd.subregion_size))
        if good_variances.size == 0:
            reason = "no usable pixels (all NaN or masked)"
            log.warning("skipping %s: %s", inp.name, reason)
            skipped.append((inp.name, reason))
            continue
        mean_var, _, _ = clipped_mean(good_variances, config.coadd.sigma_clip, config.coadd.clip_iter)
        del good_variances
        weight = 1.0 / mean_var if mean_var > 0 else float("inf")
        if not (math.isfinite(weight) and weight > 0):
            reason = f"non-finite weight (mean variance {mean_var:.3g})"
            log.warning("skipping %s: %s", inp.name, reason)
            skipped.append((inp.name, reason))
            continue
        if config.coadd.do_airmass_weight:
            airmass = inp.airmass
            if not math.isfinite(airmass):
                raise InputError("has no airmass, needed by do_airmass_weight", inp.name)
            weight *= airmass
        inp.weight = weight
        log.info("weight of %s = %.6g (scale %.6g)", inp.name, weight, inp.scale)
        kept.append(inp)
    if not kept:
        details = "; ".join(f"{n}: {r}" for n, r in skipped)
        raise InputError(f"no warp has usable pixels in {box} ({details})")
    if config.artifacts.enabled:
        for inp in kept:
            if inp.psf is None:
                raise InputError("has no PSF; compare-warp artifact rejection needs one per warp "
                                 "(or set artifacts.enabled = false)", inp.name)
    wcs = None if ref.wcs is None else shift_wcs(ref.wcs, -box.x0, -box.y0)
    return PreparedInputs(kept, box, wcs, planes, ref.band, ref.bandpass, skipped)


# -- stacking --------------------------------------------------------------------------------------

def _load(inp: CoaddInput, sub: Box, alt: ArtifactMask | None, planes: MaskPlanes, alt_bad: int):
    """Image, variance, mask of ``inp`` over ``sub`` (NaN / NO_DATA outside the warp), alt mask applied."""
    image = np.full(sub.shape, np.nan, np.float32)
    variance = np.full(sub.shape, np.nan, np.float32)
    mask = np.full(sub.shape, np.uint32(planes.value("NO_DATA")), np.uint32)
    exp = inp.read(sub)
    if exp is not None:
        sl = exp.bbox.slices(sub)
        image[sl], variance[sl], mask[sl] = exp.image, exp.variance, exp.mask
    if alt is not None:
        alt.apply(mask, sub, planes, alt_bad)
    return image, variance, mask


def assemble_subregion(inputs: Sequence[CoaddInput], alt_masks: Sequence[ArtifactMask | None], sub: Box,
                       control: StackControl, planes: MaskPlanes, *, remove_mask: int = 0,
                       alt_bad_mask: int = 0):
    """Stack one subregion (LSST ``assembleSubregion``).

    Returns
    -------
    result : StackResult
    n_image : ndarray of int32
        Inputs neither masked by a bad plane (after the alternative masks) nor NaN.
    """
    n_image = np.zeros(sub.shape, np.int32)
    keep = np.uint32(~remove_mask & 0xFFFFFFFF)
    if control.statistic == "MEAN":
        acc = MeanAccumulator(sub.shape, control)
        for inp, alt in zip(inputs, alt_masks, strict=True):
            image, variance, mask = _load(inp, sub, alt, planes, alt_bad_mask)
            n_image += good_pixels(image, mask, control.bad_mask)
            acc.add(image, variance, mask & keep, inp.weight)
        return acc.result(), n_image
    n = len(inputs)
    images = np.empty((n,) + sub.shape, np.float32)
    variances = np.empty_like(images)
    masks = np.empty((n,) + sub.shape, np.uint32)
    for i, (inp, alt) in enumerate(zip(inputs, alt_masks, strict=True)):
        images[i], variances[i], mask = _load(inp, sub, alt, planes, alt_bad_mask)
        n_image += good_pixels(images[i], mask, control.bad_mask)
        masks[i] = mask & keep
    return stack(images, variances, masks, [inp.weight for inp in inputs], control), n_image


def set_inexact_psf(mask: np.ndarray, planes: MaskPlanes) -> None:
    """INEXACT_PSF wherever SENSOR_EDGE, CLIPPED or REJECTED is set (LSST ``setInexactPsf``)."""
    trigger = planes.value_if_present(["SENSOR_EDGE", "CLIPPED", "REJECTED"])
    mask[(mask & np.uint32(trigger)) != 0] |= np.uint32(planes.value("INEXACT_PSF"))


def apply_alt_edge_mask(mask: np.ndarray, box: Box, planes: MaskPlanes,
                        alt_masks: Sequence[ArtifactMask | None]) -> None:
    """SENSOR_EDGE and INEXACT_PSF wherever a warp's alternative mask has EDGE (LSST ``applyAltEdgeMask``)."""
    value = np.uint32(planes.value("SENSOR_EDGE", "INEXACT_PSF"))
    for alt in alt_masks:
        if alt is not None and "EDGE" in alt.planes and len(alt.planes["EDGE"]):
            mask[alt.planes["EDGE"].to_mask(box)] |= value


# -- results processing -----------------------------------------------------------------------------

def interpolate_no_data(exposure: Exposure) -> int:
    """Fill NO_DATA pixels in place, as LSST's ``processResults`` with ``doInterp``.

    Each row's NO_DATA pixels are linearly interpolated between the nearest good pixels
    of the row; runs touching the row's ends, and rows without good pixels, get the
    fallback value, the clipped mean of all good pixels (not below zero), as LSST's
    ``InterpImageTask`` with ``useFallbackValueAtEdge``. (LSST's interpolation uses a
    PSF-aware predictor along rows; plain linear interpolation is used here.) Filled pixels
    get INTRP; every variance that is not positive becomes infinite.

    Returns
    -------
    int
        Number of pixels filled.
    """
    planes = exposure.mask_planes
    image, mask = exposure.image, exposure.mask
    no_data = (mask & np.uint32(planes.value_if_present(["NO_DATA"]))) != 0
    bad = no_data | ~np.isfinite(image)
    n_fill = int(np.count_nonzero(bad))
    if n_fill:
        fallback, _, _ = clipped_mean(image[~bad], 3.0, 3)
        fallback = max(fallback, 0.0) if math.isfinite(fallback) else 0.0
        cols = np.arange(image.shape[1])
        for y in np.flatnonzero(bad.any(axis=1)):
            row_bad = bad[y]
            good_x = cols[~row_bad]
            if good_x.size == 0:
                image[y] = fallback
                continue
            image[y, row_bad] = np.interp(cols[row_bad], good_x, image[y, good_x].astype(np.float64),
                                          left=fallback, right=fallback)
        exposure.set_mask("INTRP", bad)
    with np.errstate(invalid="ignore"):
        exposure.variance[~(exposure.variance > 0)] = np.inf
    return n_fill


def read_bright_object_masks(path: str | os.PathLike) -> Table:
    """Read a bright-object region table (ECSV or CSV).

    Columns: ``ra``, ``dec`` (deg); ``radius`` (arcsec) for circles; optional ``type``
    (``circle`` or ``box``) with ``width``, ``height`` (arcsec) and ``angle`` (must be 0)
    for boxes. Unitless columns are taken in those units.

    Raises
    ------
    InputError
        If the file is unreadable or lacks needed columns.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("bright-object mask file does not exist", path)
    fmt = "ascii.ecsv" if path.suffix.lower() == ".ecsv" else "ascii.csv"
    try:
        table = Table.read(path, format=fmt)
    except Exception as exc:  # noqa: BLE001 - astropy readers raise many kinds
        raise InputError(f"not a readable {fmt[6:].upper()} table ({exc})", path) from None
    names = {n.lower(): n for n in table.colnames}
    for col in ("ra", "dec"):
        if col not in names:
            raise InputError(f"bright-object table has no {col!r} column "
                             f"(columns: {', '.join(table.colnames)})", path)
    table.rename_columns([names[n] for n in names], list(names))
    if "type" not in table.colnames:
        table["type"] = "circle"
    types = {str(t).lower() for t in table["type"]}
    if not types <= {"circle", "box"}:
        raise InputError(f"bright-object type must be circle or box, got {sorted(types)}", path)
    if "circle" in types and "radius" not in table.colnames:
        raise InputError("bright-object table has circles but no 'radius' column", path)
    if "box" in types and not {"width", "height"} <= set(table.colnames):
        raise InputError("bright-object table has boxes but no 'width'/'height' columns", path)
    return table


def _value(table: Table, col: str, unit: str) -> np.ndarray:
    c = table[col]
    if getattr(c, "unit", None) is not None:
        return np.asarray(c.quantity.to_value(unit), float)
    return np.asarray(c, float)


def set_bright_object_masks(exposure: Exposure, table: Table, plane: str = "BRIGHT_OBJECT") -> int:
    """Set ``plane`` inside each bright-object region (LSST ``setBrightObjectMasks``).

    Circles cover pixels within ``int(radius / pixel scale)`` of the rounded centre; boxes span
    ``int(c - w/2) .. int(c + w/2)`` inclusive. Returns the number of pixels set.
    """
    if exposure.wcs is None:
        raise InputError("the coadd has no WCS, so bright-object positions cannot be placed")
    from astropy.wcs.utils import proj_plane_pixel_scales

    scale = float(np.mean(proj_plane_pixel_scales(exposure.wcs.celestial))) * 3600.0  # arcsec / px
    ra, dec = _value(table, "ra", "deg"), _value(table, "dec", "deg")
    xs, ys = exposure.wcs.world_to_pixel_values(ra, dec)
    ny, nx = exposure.shape
    hit = np.zeros((ny, nx), bool)
    yy, xx = np.mgrid[:ny, :nx]
    for i, kind in enumerate(str(t).lower() for t in table["type"]):
        if not (np.isfinite(xs[i]) and np.isfinite(ys[i])):
            continue
        cx, cy = int(np.floor(xs[i] + 0.5)), int(np.floor(ys[i] + 0.5))
        if kind == "box":
            if "angle" in table.colnames and float(table["angle"][i]) != 0.0:
                raise InputError(f"bright-object box {i} has a non-zero angle, which is not supported")
            w = _value(table, "width", "arcsec")[i] / scale
            h = _value(table, "height", "arcsec")[i] / scale
            x0, x1 = int(xs[i] - 0.5 * w), int(xs[i] + 0.5 * w)
            y0, y1 = int(ys[i] - 0.5 * h), int(ys[i] + 0.5 * h)
            hit[max(y0, 0):max(y1 + 1, 0), max(x0, 0):max(x1 + 1, 0)] = True
        else:
            r = int(_value(table, "radius", "arcsec")[i] / scale)
            hit |= (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    exposure.set_mask(plane, hit)
    return int(np.count_nonzero(hit))


def process_results(exposure: Exposure, config: Config) -> None:
    """Interpolate over missing data and mask bright objects (LSST ``processResults``)."""
    if config.coadd.do_interp:
        n = interpolate_no_data(exposure)
        if n:
            log.info("interpolated over %d NO_DATA pixels", n)
    if config.coadd.do_mask_bright_objects:
        table = read_bright_object_masks(config.coadd.bright_object_mask_file)
        n = set_bright_object_masks(exposure, table, config.coadd.bright_object_mask_name)
        log.info("applied %d bright-object masks (%d pixels)", len(table), n)


# -- the coadd -------------------------------------------------------------------------------------

@dataclass
class CoaddResult:
    """A baseline coadd and what went into it.

    Attributes
    ----------
    coadd : Exposure
        In nJy (``flux_calibration = 1``), with the coadd PSF.
    n_image : ndarray of int32
        Inputs contributing to each pixel.
    inputs : list of CoaddInput
        The warps used, with weight, scale, visit (airmass, parallactic angle), PSF FWHM.
    artifact_masks : list of ArtifactMask or None
        One per input (None without compare-warp).
    psf_best_seeing : Psf or None
        Coadd PSF over the best-seeing inputs, for the DCR model.
    best_seeing : ndarray of bool
        Which inputs that PSF uses.
    skipped : list of (str, str)
        Warps left out and why.
    config : Config
    """

    coadd: Exposure
    n_image: np.ndarray
    inputs: list[CoaddInput]
    artifact_masks: list[ArtifactMask | None]
    psf_best_seeing: Psf | None = None
    best_seeing: np.ndarray | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    config: Config | None = None

    def inputs_table(self) -> Table:
        """The inputs as a table: name, visit, weight, scale, airmass, parallactic angle, PSF FWHM."""
        sel = self.best_seeing if self.best_seeing is not None else np.zeros(len(self.inputs), bool)
        t = Table()
        t["name"] = [i.name for i in self.inputs]
        t["visit"] = np.array([-1 if i.visit_id is None else i.visit_id for i in self.inputs], np.int64)
        t["weight"] = [i.weight for i in self.inputs]
        t["scale"] = [i.scale for i in self.inputs]
        t["scale"].unit = "nJy"
        t["airmass"] = [i.airmass for i in self.inputs]
        t["parallactic_angle"] = [i.parallactic_angle for i in self.inputs]
        t["parallactic_angle"].unit = "deg"
        t["psf_fwhm"] = [i.psf_fwhm for i in self.inputs]
        t["psf_fwhm"].unit = "pix"
        t["best_seeing"] = np.asarray(sel, bool)
        t["n_clipped"] = [0 if m is None else m.n_clipped for m in self.artifact_masks]
        t.meta["comments"] = ["visit = -1: unknown; scale: nJy per input image unit"]
        return t


def assemble_coadd(warps, config: Config | None = None, *, bbox: Box | None = None) -> CoaddResult:
    """Coadd warps into a baseline coadd (LSST ``CompareWarpAssembleCoaddTask``, or
    ``AssembleCoaddTask`` with ``config.artifacts.enabled = False``).

    Parameters
    ----------
    warps : sequence of path-like or Exposure
        Warps on one pixel grid, in one band. Files are read subregion by subregion.
    config : Config, optional
        Validated here; default `Config()`.
    bbox : Box, optional
        Coadd region in the parent grid; default the union of the warps.

    Returns
    -------
    CoaddResult

    Raises
    ------
    InputError
        Bad or inconsistent warps (see `prepare_inputs`).
    ConfigError
        Invalid configuration.
    """
    config = config or Config()
    config.validate()
    prep = prepare_inputs(warps, config, bbox=bbox)
    box, planes, inputs = prep.bbox, prep.planes, prep.inputs
    log.info("assembling %d warps over %s (%d skipped)", len(inputs), box, len(prep.skipped))

    if config.artifacts.enabled:
        alt_masks: list[ArtifactMask | None] = list(compare_warps(inputs, box, planes, config).artifact_masks)
    else:
        alt_masks = [None] * len(inputs)

    c = config.coadd
    control = make_control(planes, statistic=c.statistic, bad_mask_planes=config.coadd_bad_mask_planes(),
                           sigma_clip=c.sigma_clip, clip_iter=c.clip_iter,
                           calc_error_from_input_variance=c.calc_error_from_input_variance,
                           mask_propagation_thresholds=c.mask_propagation_thresholds)
    remove_mask = planes.value_if_present(config.effective_remove_mask_planes())
    alt_bad = planes.value_if_present(config.effective_bad_mask_planes())
    image = np.empty(box.shape, np.float32)
    variance = np.empty(box.shape, np.float32)
    mask = np.empty(box.shape, np.uint32)
    n_image = np.empty(box.shape, np.int32)
    for sub in box.subregions(tuple(c.subregion_size)):
        res, n_sub = assemble_subregion(inputs, alt_masks, sub, control, planes, remove_mask=remove_mask,
                                        alt_bad_mask=alt_bad)
        sl = sub.slices(box)
        image[sl], variance[sl], mask[sl], n_image[sl] = res.image, res.variance, res.mask, n_sub
    set_inexact_psf(mask, planes)
    apply_alt_edge_mask(mask, box, planes, alt_masks)

    psfs = [inp.psf for inp in inputs]
    weights = [inp.weight for inp in inputs]
    psf = best_psf = None
    selection = None
    if all(p is not None for p in psfs):
        psf = coadd_psf(psfs, weights)
        selection = best_seeing_selection(psfs, psf)
        best_psf = psf if not selection.any() else coadd_psf(
            [p for p, s in zip(psfs, selection, strict=True) if s],
            [w for w, s in zip(weights, selection, strict=True) if s])
    elif any(p is not None for p in psfs):
        log.warning("some warps have no PSF; the coadd gets none")
    coadd = Exposure(image=image, mask=mask, variance=variance, mask_planes=planes, origin=box.origin,
                     wcs=prep.wcs, psf=psf, band=prep.band, bandpass=prep.bandpass, flux_calibration=1.0)
    process_results(coadd, config)
    return CoaddResult(coadd=coadd, n_image=n_image, inputs=inputs, artifact_masks=alt_masks,
                       psf_best_seeing=best_psf, best_seeing=selection, skipped=prep.skipped, config=config)


# -- files -----------------------------------------------------------------------------------------

def write_coadd(result: CoaddResult, path: str | os.PathLike, *,
                artifact_mask_dir: str | os.PathLike | None = None) -> Path:
    """Write the coadd atomically: the exposure format plus ``NIMAGE`` (int32 image),
    ``INPUTS`` (binary table, see `CoaddResult.inputs_table`) and ``PSF_BEST`` (best-seeing PSF).

    With ``config.artifacts.do_write_artifact_masks`` the artifact masks go to
    ``artifact_mask_dir`` (default ``<path's folder>/artifact_masks``).
    """
    path = Path(path)
    coadd = result.coadd
    hdus = exposure_hdus(coadd)
    hdus[0].header["NINPUTS"] = (len(result.inputs), "warps coadded")
    nhdr = fits.Header()
    nhdr["LTV1"], nhdr["LTV2"] = -coadd.origin[0], -coadd.origin[1]
    hdus.append(fits.ImageHDU(np.asarray(result.n_image, np.int32), nhdr, name="NIMAGE"))
    hdus.append(fits.table_to_hdu(result.inputs_table()))
    hdus[-1].name = "INPUTS"
    if result.psf_best_seeing is not None:
        hdus.append(fits.ImageHDU(result.psf_best_seeing.kernel.astype(np.float32), name="PSF_BEST"))
    with atomic_output(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        hdus.writeto(tmp, overwrite=True, checksum=True)
    cfg = result.config
    alt = [m for m in result.artifact_masks if m is not None]
    if cfg is not None and cfg.artifacts.do_write_artifact_masks and alt:
        out_dir = Path(artifact_mask_dir) if artifact_mask_dir is not None else path.parent / "artifact_masks"
        write_artifact_masks(alt, out_dir, coadd.bbox, coadd.mask_planes)
    return path


def read_coadd(path: str | os.PathLike) -> tuple[Exposure, np.ndarray | None, Table | None, Psf | None]:
    """Read a coadd written by `write_coadd`: ``(exposure, n_image, inputs, psf_best_seeing)``."""
    path = Path(path)
    exposure = read_exposure(path)
    with fits.open(path) as hdul:
        n_image = np.array(hdul["NIMAGE"].data, np.int32) if "NIMAGE" in hdul else None
        inputs = Table.read(hdul["INPUTS"]) if "INPUTS" in hdul else None
        best = Psf(hdul["PSF_BEST"].data) if "PSF_BEST" in hdul else None
    return exposure, n_image, inputs, best


__all__ = [
    "CoaddInput", "CoaddResult", "PreparedInputs", "apply_alt_edge_mask", "assemble_coadd",
    "assemble_subregion", "common_planes", "interpolate_no_data", "prepare_inputs", "process_results",
    "read_bright_object_masks", "read_coadd", "set_bright_object_masks", "set_inexact_psf", "write_coadd",
]
