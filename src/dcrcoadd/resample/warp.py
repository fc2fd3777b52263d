"""Resample calibrated single-epoch exposures onto one grid: the warps ``assemble`` stacks.

Method: ``reproject_exact`` by default
    Each output pixel gets the input pixels' flux split by their exact overlap
    (see `dcrcoadd.ops.resample`): flux is conserved by construction, and for a
    sub-pixel translation between grids of equal scale this is bilinear
    interpolation, the least PSF broadening a flux-conserving resampling can
    have. The warp carries its exposure's PSF, and the DCR model forward-models
    each warp with that PSF, so the broadening it does not describe must stay
    small. ``reproject_adaptive`` (``method="adaptive"``, with
    ``conserve_flux=True``) anti-aliases with a Gaussian kernel: smoother noise
    and 4-7x faster on large images, but it broadens the PSF more (second
    moment +0.41 px² per axis at its default kernel, against ``f (1 − f)``,
    at most 0.25 px², for exact with a fractional offset ``f``) and conserves
    flux only to its kernel's truncation (measured below 0.02 %; reproject
    promises below 1 %).

Variance
    Resampled with the same weights and multiplied by ``r``, the area of an
    output pixel in input pixels (not ``r²``): the noise per unit sky area is
    kept, so the variance of a sum over a region much larger than a pixel (an
    aperture, a PSF) is right, and exact for integer binning; per pixel it
    overestimates where an output pixel mixes several input pixels, since
    resampling correlates neighbouring pixels (as `dcrcoadd.template.build`).

Mask
    Each warp pixel takes the mask of the input pixel containing its centre
    (nearest pixel; OR-ing every overlapped pixel would grow each masked pixel
    by one). Input pixels without data (non-finite image or variance, or
    NO_DATA) are left out of the overlap means, so they do not blank their
    neighbours; so are those in `LEFT_OUT_PLANES` (BAD, SAT, CR, EDGE), whose
    values would otherwise reach warp pixels that carry no bit (a bad column of
    1e6 rotated 10° gave 217 such pixels of 5e3-5e5; the simulator's defects
    through ``assemble`` 542 coadd pixels beyond 5 sigma). A warp pixel on such
    an input pixel carries its bits, and where no other input pixel reaches it
    keeps that pixel's value (times ``r``). Warp pixels whose centre lies
    outside the input footprint, or on an input pixel without data, get NO_DATA
    with a NaN image and variance.

Metadata
    Visit (VisitInfo), band and bandpass, flux calibration (``FLUXCAL``) and
    mask planes (plus NO_DATA) are carried over unchanged. The PSF is carried
    over unchanged when the grid's pixels have the exposure's scale and
    orientation (to `PSF_TOLERANCE`); otherwise its kernel is resampled with
    exact overlaps through the local linear map between the two grids at the
    exposure's centre, kernel centre onto kernel centre, so that it is still
    the PSF in the warp's pixels (a rotated grid rotates an elongated PSF; a
    coarser grid shrinks it in pixels). That includes the pixel mixing of a
    rotation (for a 23° rotation the kernel's second moment grows by 0.17 px²,
    as a warped star's does) but not the broadening from a sub-pixel
    translation between the grids: ``f (1 − f)`` px² along an axis with a
    fractional offset ``f`` with exact resampling (at most 0.25 px²), about
    0.41 px² per axis with adaptive whatever the offset; templates leave it
    out likewise.

Output
    ``OUT/<stem>_warp.fits`` in the dcrcoadd exposure format, written
    atomically, covering the box of grid pixels the exposure touches (cut to a
    patch, `dcrcoadd.resample.grid.patch_grid`), with that box's first pixel as
    origin (``LTV1/LTV2``): ``dcrcoadd assemble OUT`` stacks the warps as they
    are. The exposures of one visit (CCD files, or the CCDs of a multi-extension
    file, `dcrcoadd.io.fits.ccd_extensions`) make one warp,
    ``OUT/visit<ID>_warp.fits`` (`dcrcoadd.resample.mosaic`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.wcs import WCS
from astropy.wcs.utils import pixel_to_pixel

from dcrcoadd.core.exposure import Exposure
from dcrcoadd.core.geom import Box
from dcrcoadd.errors import InputError
from dcrcoadd.io.fits import (
    PSF_ORIGIN_CARD,
    ExposureInfo,
    ccd_extensions,
    exposure_hdus,
    read_region,
    write_hdus,
)
from dcrcoadd.io.options import ReadOptions
from dcrcoadd.io.paths import make_outdir, output_stem
from dcrcoadd.io.products import product_of
from dcrcoadd.ops.resample import (
    PSF_TOLERANCE,
    RESAMPLE_METHODS,
    corner_grid,
    local_jacobian,
    quad_areas,
    resample_flux,
    warp_psf,
)
from dcrcoadd.parallel import serial_map
from dcrcoadd.resample.grid import (
    Grid,
    footprint_box,
    grid_from_file,
    optimal_grid,
    patch_grid,
    pixel_scale_arcsec,
)
from dcrcoadd.resample.mosaic import check_mosaic_memory, mosaic_visit

__all__ = ["DEFAULT_METHOD", "PSF_TOLERANCE", "WarpOutcome", "choose_grid", "local_jacobian",
           "warp_exposure", "warp_exposures", "warp_psf"]

log = logging.getLogger("dcrcoadd.resample.warp")

#: Resampling method used unless another is asked for (see the module notes).
DEFAULT_METHOD = "exact"

Mapper = Callable[[Callable, Iterable], Iterator]


# ---------------------------------------------------------------------------------------------
# One exposure
# ---------------------------------------------------------------------------------------------

#: Input planes whose pixels' values reach no other warp pixel: those the coadd leaves out by default
#: (``coadd.bad_mask_planes`` but NO_DATA, which is missing data).
LEFT_OUT_PLANES = ("BAD", "SAT", "CR", "EDGE")


def _missing(exposure: Exposure) -> np.ndarray:
    """Input pixels without data: non-finite image or variance, or NO_DATA."""
    return ~np.isfinite(exposure.image) | ~np.isfinite(exposure.variance) | exposure.mask_of("NO_DATA")


def _left_out(exposure: Exposure) -> np.ndarray:
    """Input pixels with data in `LEFT_OUT_PLANES`."""
    return (exposure.mask & np.uint32(exposure.mask_planes.value_if_present(LEFT_OUT_PLANES))) != 0


def warp_exposure(exposure: Exposure, grid: Grid, *, method: str = DEFAULT_METHOD,
                  source: str | os.PathLike | None = None) -> Exposure:
    """Resample one exposure onto ``grid``, conserving flux (see the module notes).

    Parameters
    ----------
    exposure : Exposure
        Calibrated single-epoch exposure with a celestial WCS.
    grid : Grid
    method : {"exact", "adaptive"}
        ``reproject_exact`` (default) or ``reproject_adaptive`` with ``conserve_flux=True``.
    source : str or path-like, optional
        Name of the exposure in error messages (its file).

    Returns
    -------
    Exposure
        On the box of ``grid`` the exposure's footprint touches (``origin`` its
        first pixel, WCS the grid's for that box); image, variance and mask as
        the module notes say; visit, band, bandpass, flux calibration carried,
        PSF mapped to the grid's pixels when they differ.

    Raises
    ------
    InputError
        No WCS, or a footprint that does not map onto the grid.
    """
    source = str(source) if source is not None else \
        ("exposure" if exposure.visit is None else f"visit {exposure.visit.id}")
    if method not in RESAMPLE_METHODS:
        raise InputError(f"unknown resampling method {method!r}; choose from {', '.join(RESAMPLE_METHODS)}",
                         source)
    if exposure.wcs is None:
        raise InputError("no WCS: cannot place it on the grid", source)
    wcs_in = exposure.wcs.celestial
    try:
        box = footprint_box(grid, wcs_in, exposure.shape)
    except ValueError:
        raise InputError(f"its footprint does not map onto the grid ({grid.source}): too far from the "
                         "grid's tangent point", source) from None
    if grid.clip and grid.bbox is not None:
        box = box.intersection(grid.bbox)
        if box.is_empty:
            raise MissedPatch(f"misses {grid.source}", source)
    wcs_out = grid.wcs_for(box)
    # output pixel corners in input pixels: areas r, and each output pixel centre's input pixel
    xc, yc = corner_grid(wcs_out, wcs_in, box.shape)
    area_ratio = quad_areas(xc, yc)
    missing = _missing(exposure)
    left_out = _left_out(exposure) & ~missing
    planes = np.stack([exposure.image, exposure.variance]).astype(np.float64)
    image, variance, coverage = resample_flux(planes, wcs_in, wcs_out, box.shape, area_ratio,
                                              missing=missing | left_out, method=method, source=source)
    ny, nx = exposure.shape
    cx = 0.25 * (xc[:-1, :-1] + xc[1:, :-1] + xc[:-1, 1:] + xc[1:, 1:])
    cy = 0.25 * (yc[:-1, :-1] + yc[1:, :-1] + yc[:-1, 1:] + yc[1:, 1:])
    finite = np.isfinite(cx) & np.isfinite(cy)
    xm = np.where(finite, np.floor(np.where(finite, cx, -1.0) + 0.5), -1).astype(np.int64)
    ym = np.where(finite, np.floor(np.where(finite, cy, -1.0) + 0.5), -1).astype(np.int64)
    inside = (xm >= 0) & (xm < nx) & (ym >= 0) & (ym < ny)
    mask = np.zeros(box.shape, dtype=np.uint32)
    mask[inside] = exposure.mask[ym[inside], xm[inside]]
    nearest_missing = np.zeros(box.shape, dtype=bool)
    nearest_missing[inside] = missing[ym[inside], xm[inside]]
    # a warp pixel on a left-out input pixel carries its bits; where no other input pixel reaches it,
    # it keeps that pixel's value (a saturated core's, say: its bits are what the coadd reads there)
    flagged = np.zeros(box.shape, dtype=bool)
    flagged[inside] = left_out[ym[inside], xm[inside]]
    own = flagged & ~(coverage > 0)
    image[own] = exposure.image[ym[own], xm[own]] * area_ratio[own]
    variance[own] = exposure.variance[ym[own], xm[own]] * area_ratio[own]
    no_data = (~inside | nearest_missing | ((coverage <= 0) & ~own) | ~np.isfinite(image)
               | ~np.isfinite(variance))
    if no_data.all():
        if missing.all():  # (checked here, not up front: a rare case need not cost every exposure a pass)
            raise InputError("it has no usable pixel (every pixel is NaN, masked NO_DATA or has a non-finite "
                             "variance)", source)
        if grid.clip:  # (its bounding box touches the patch, its pixels do not: a rotated exposure)
            raise MissedPatch(f"misses {grid.source}", source)
        raise InputError(f"no pixel of it lands on the grid ({grid.source})", source)
    out_planes = exposure.mask_planes.with_plane("NO_DATA")
    mask[no_data] |= np.uint32(1 << out_planes.bit("NO_DATA"))
    image[no_data] = np.nan
    variance[no_data] = np.nan
    jac = local_jacobian(wcs_out, wcs_in, *_centre_on(wcs_in, wcs_out, exposure.shape))
    psf = warp_psf(exposure.psf, jac)
    if psf is not exposure.psf:
        log.debug("%s: PSF mapped onto the grid's pixels (local map %s)", source, np.round(jac, 4).tolist())
    return Exposure(image=image.astype(np.float32), mask=mask, variance=variance.astype(np.float32),
                    mask_planes=out_planes, origin=box.origin, wcs=wcs_out, psf=psf, visit=exposure.visit,
                    band=exposure.band, bandpass=exposure.bandpass,
                    flux_calibration=exposure.flux_calibration)


def _centre_on(wcs_in: WCS, wcs_out: WCS, shape: tuple[int, int]) -> tuple[float, float]:
    """The input array's centre in the output array's pixels."""
    x, y = pixel_to_pixel(wcs_in, wcs_out, (shape[1] - 1) / 2, (shape[0] - 1) / 2)
    return float(x), float(y)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------

class MissedPatch(InputError):
    """An exposure none of whose pixels lands on a patch (`Grid.clip`): skipped, not failed."""


@dataclass(frozen=True)
class WarpOutcome:
    """What happened to one exposure file in `warp_exposures`.

    ``error`` is the one-line reason it failed (naming the file), else None; ``skipped`` why a file
    that did not fail has no warp (none of it reaches the grid's box where it counts).
    """

    path: Path
    warp_path: Path | None = None
    visit_id: int | None = None
    bbox: Box | None = None
    error: str | None = None
    skipped: str | None = None  # why nothing of it was warped (it misses the patch), not a failure

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class _Member:
    """One exposure to warp: a file (its position ``index`` among the inputs), or one CCD ``hdu`` of a
    multi-extension file."""

    index: int
    path: Path
    hdu: str | None = None

    @property
    def label(self) -> str:
        return str(self.path) if self.hdu is None else f"{self.path}[{self.hdu}]"


@dataclass(frozen=True)
class _Task:
    """Exposures to warp onto ``grid`` and write as one warp: one file, or the CCDs of one visit."""

    members: tuple[_Member, ...]
    out_path: Path
    grid: Grid
    method: str
    read_options: ReadOptions | None = None


def _error_message(exc: InputError, member: _Member) -> str:
    """One line naming the file, and the CCD of a multi-extension file."""
    message = str(exc)
    if member.label in message:
        return message
    message = message if str(member.path) in message else f"{member.path}: {message}"
    return message if member.hdu is None else f"{message} (its CCD {member.hdu})"


def _warp_file(task: _Task) -> list[tuple[int, WarpOutcome]]:
    """Read, warp and write one task's exposures as one warp (a module-level function, so that process
    pools can run it). An exposure that fails is reported; the others of its visit still make the warp,
    and a multi-extension file whose other CCDs made it is warned about, not failed."""
    options = task.read_options or ReadOptions()
    warps, done, errors, missed, calibrated = [], [], {}, {}, []
    seeing_card = False
    for member in task.members:
        try:
            info = options.read_info(member.path, member.hdu)
            exposure = read_region(info)  # (the headers just read, not parsed again)
            warps.append(warp_exposure(exposure, task.grid, method=task.method, source=member.label))
            # a PSF HDU made from a seeing card stays a fallback: assemble measures the PSF from the stars
            # first, as it would for the original file (`dcrcoadd.io.fits.PSF_ORIGIN_CARD`)
            seeing_card |= exposure.psf is not None and info.psf_origin == "seeing card"
            calibrated.append(info.flux_calibration is not None)  # (read without one: 1, image units)
            done.append(member)
        except MissedPatch as exc:
            missed.setdefault(member.index, []).append(exc.reason)
        except InputError as exc:
            errors.setdefault(member.index, []).append(_error_message(exc, member))
    if warps:
        try:
            warp = mosaic_visit(warps, task.grid, [m.label for m in done], calibrated)
            hdus = exposure_hdus(warp)
            if warp.psf is not None and seeing_card:
                hdus["PSF"].header[PSF_ORIGIN_CARD] = ("seeing card", "Gaussian of a seeing card, a fallback")
            written = write_hdus(hdus, task.out_path)
        except InputError as exc:
            for member in done:
                errors.setdefault(member.index, []).append(_error_message(exc, member))
            done = []
    outcomes = []
    for index in dict.fromkeys(m.index for m in task.members):
        path = next(m.path for m in task.members if m.index == index)
        if any(m.index == index for m in done):
            for message in errors.get(index, []):  # (some CCDs of a multi-extension file)
                log.warning("%s; its other CCDs are warped", message)
            outcomes.append((index, WarpOutcome(path=path, warp_path=written, visit_id=_visit_of(warp),
                                                bbox=warp.bbox)))
        elif index in errors:
            message = errors[index][0]
            log.info("%s", message)  # the outcome carries it; the command prints it once
            outcomes.append((index, WarpOutcome(path=path, error=message)))
        else:
            n = len(missed[index])
            reason = missed[index][0] if n == 1 else f"none of its {n} CCDs reaches {task.grid.source}"
            log.info("%s: skipped: %s", path, reason)
            outcomes.append((index, WarpOutcome(path=path, skipped=reason)))
    if done:
        n_bad = int(np.count_nonzero(warp.mask_of("NO_DATA")))
        what = done[0].label if len(done) == 1 else f"visit {_visit_of(warp)} ({len(done)} CCDs)"
        log.info("%s: warped onto %s (%d of %d pixels NO_DATA), written to %s", what, warp.bbox, n_bad,
                 warp.bbox.area, written)
    return outcomes


def _visit_of(exposure: Exposure) -> int | None:
    return None if exposure.visit is None else exposure.visit.id


def _members(index: int, path: Path) -> list[_Member]:
    """The exposures of one input file: itself, or each CCD of a multi-extension file."""
    try:
        extensions = ccd_extensions(path)
    except InputError:
        extensions = []  # (reading it as one exposure reports what is wrong with it)
    return [_Member(index, path, hdu) for hdu in extensions] or [_Member(index, path)]


def choose_grid(paths: Iterable[str | os.PathLike], *, grid: Grid | str | os.PathLike | None = None,
                pixel_scale: u.Quantity | float | None = None,
                read_options: ReadOptions | None = None,
                center: tuple[float, float] | None = None, size: tuple[int, int] | None = None) -> Grid:
    """The grid `warp_exposures` uses for these files.

    Parameters
    ----------
    paths : iterable of path-like
        Exposure files; only their headers are read, and files that cannot
        give a footprint (unreadable, no WCS) are left out of the choice
        (`warp_exposures` reports them).
    grid : Grid or path-like, optional
        A grid, or a FITS file to take it from (`grid_from_file`).
    pixel_scale : Quantity or float, optional
        Pixel side (an angle, or arcseconds) of the grid chosen from the
        footprints, or of the patch; not with ``grid``.
    read_options : ReadOptions, optional
        How the files' headers are read (instrument, header map).
    center, size : optional
        A patch instead (`patch_grid`): its centre ``(ra, dec)`` in degrees and its
        ``(nx, ny)`` pixels, at ``pixel_scale`` (default the finest input's); warps are
        cut to it.

    Raises
    ------
    InputError
        Both ``grid`` and ``pixel_scale`` (or a patch), an unusable grid file or patch, or no
        file with a WCS.
    """
    paths = list(paths)  # (iterated more than once)
    if grid is not None and pixel_scale is not None:
        raise InputError("give either a grid or a pixel scale, not both", "warp")
    if grid is not None and center is not None:
        raise InputError("give either a grid or a patch (--center, --size), not both", "warp")
    if (center is None) != (size is None):
        raise InputError("a patch needs both its centre (--center) and its size (--size)",
                         "--size" if size is None else "--center")
    if isinstance(grid, Grid):
        return grid
    if grid is not None:
        return grid_from_file(grid)
    read_options = read_options or ReadOptions()
    if center is not None:
        if pixel_scale is None:
            pixel_scale = _finest_scale(paths, read_options)
        return patch_grid(center[0], center[1], size, pixel_scale)
    footprints = []
    unreadable: list[str] = []
    for info in _wcs_infos(paths, read_options, unreadable):
        footprints.append((info.bbox.shape, info.wcs))
    if not footprints:
        why = f" (of {len(unreadable)} unreadable, the first: {unreadable[0]})" if unreadable else ""
        products = [p for p in paths if product_of(p) is not None]
        if products and not why:
            why = f" ({products[0]} is a dcrcoadd {product_of(products[0])}, not an exposure)"
        raise InputError(f"no exposure with a readable WCS to choose the grid from{why}", "warp")
    chosen = optimal_grid(footprints, pixel_scale=pixel_scale)
    ny, nx = chosen.bbox.shape
    if pixel_scale is not None and ny * nx > _MAX_GRID_PIXELS:
        scale = u.Quantity(pixel_scale, u.arcsec).to_value(u.arcsec)
        raise InputError(f"a pixel scale of {scale:g} arcsec makes a grid of {nx} x {ny} px over the "
                         "inputs: far too large (the scale is in arcseconds per pixel)", "--pixel-scale")
    if min(ny, nx) < 1:
        scale = chosen.pixel_scale if pixel_scale is None else \
            u.Quantity(pixel_scale, u.arcsec).to_value(u.arcsec)
        raise InputError(f"a pixel scale of {scale:g} arcsec makes a grid of {nx} x {ny} px over the inputs: "
                         "coarser than the whole footprint (the scale is in arcseconds per pixel)",
                         "--pixel-scale" if pixel_scale is not None else "warp")
    if min(ny, nx) < _MIN_GRID_SIDE:
        log.warning("the grid is only %d x %d px over the inputs' footprints: its pixel scale is much "
                    "coarser than theirs", nx, ny)
    return chosen


def _wcs_infos(paths: Iterable[str | os.PathLike], read_options: ReadOptions,
               unreadable: list[str]) -> Iterator[ExposureInfo]:
    """The headers of the exposures (each CCD of a multi-extension file) that give a WCS; the reasons
    the unreadable ones could not be read are appended to ``unreadable``."""
    exposures = [p for p in paths if product_of(p) is None]  # (`warp_exposures` skips the others)
    for member in (m for i, p in enumerate(exposures) for m in _members(i, Path(p))):
        try:
            info = read_options.read_info(member.path, member.hdu)
        except InputError as exc:
            log.debug("%s: left out of the grid choice (%s)", member.label, exc)
            unreadable.append(str(exc))
            continue
        if info.wcs is not None:
            yield info


def _finest_scale(paths: Iterable[str | os.PathLike], read_options: ReadOptions) -> float:
    """The finest pixel scale (arcsec) of the exposures whose headers give a WCS."""
    scales = [pixel_scale_arcsec(info.wcs) for info in _wcs_infos(paths, read_options, [])]
    if not scales:
        raise InputError("no exposure with a readable WCS to take the patch's pixel scale from: give "
                         "--pixel-scale", "warp")
    return min(scales)


#: A grid chosen from a pixel scale is refused above this many pixels (a 4-GB float32 plane: usually a
#: scale given in degrees or milliarcseconds) and warned about below this side.
_MAX_GRID_PIXELS = 2**30
_MIN_GRID_SIDE = 16


def warp_exposures(paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike, *,
                   grid: Grid | str | os.PathLike | None = None,
                   pixel_scale: u.Quantity | float | None = None, mapper: Mapper | None = None,
                   method: str = DEFAULT_METHOD,
                   read_options: ReadOptions | None = None) -> list[WarpOutcome]:
    """Warp exposure files onto one grid: ``OUT_DIR/<stem>_warp.fits`` each, one per visit.

    Parameters
    ----------
    paths : iterable of path-like
        Calibrated single-epoch exposure files, each with a celestial WCS.
    out_dir : path-like
        Created if needed.
    grid : Grid or path-like, optional
        The grid, or a FITS file with a celestial WCS to take it from; default
        chosen from the inputs' footprints (`choose_grid`).
    pixel_scale : Quantity or float, optional
        Pixel side (an angle, or arcseconds) of the chosen grid; not with ``grid``.
    mapper : callable, optional
        ``mapper(fn, tasks)`` yielding results in any order
        (`dcrcoadd.parallel.mappers`); default serial.
    method : {"exact", "adaptive"}
        Resampling (see the module notes); ``"exact"`` by default.
    read_options : ReadOptions, optional
        How the files are read (instrument, header map, weight maps).

    Returns
    -------
    list of WarpOutcome
        One per file, in order. A file that fails with `InputError`
        (unreadable, no WCS, off the grid, given twice, an output name already taken)
        records the message and the others still run; nothing is written for it.
        The files of one visit (its CCDs: the same visit id) make one warp,
        ``OUT_DIR/visit<ID>_warp.fits`` (`dcrcoadd.resample.mosaic`), which every
        one of their outcomes names.

    Raises
    ------
    InputError
        No files, an unusable grid or output directory, no file to choose a grid from.
    """

    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no exposures given", "warp")
    if method not in RESAMPLE_METHODS:
        raise InputError(f"unknown resampling method {method!r}; choose from {', '.join(RESAMPLE_METHODS)}",
                         "warp")
    chosen = choose_grid(paths, grid=grid, pixel_scale=pixel_scale, read_options=read_options)
    log.info("%s", chosen.describe())
    out_dir = Path(out_dir)
    make_outdir(out_dir)
    tasks: list[_Task] = []
    headers = _Headers(read_options or ReadOptions())
    # every outcome of each input file (a multi-extension file's CCDs may go to several warps)
    reports: dict[int, list[WarpOutcome]] = {i: [] for i in range(len(paths))}

    def fail(i: int, message: str) -> None:
        log.info("%s", message)  # the outcome carries it; the command prints it once
        reports[i].append(WarpOutcome(path=paths[i], error=message))

    used: dict[str, Path] = {}
    given: dict[Path, Path] = {}
    members: list[_Member] = []
    for i, path in enumerate(paths):
        key = path.resolve()
        if key in given:
            fail(i, f"{path}: given twice (also as {given[key]})")
            continue
        given[key] = path
        kind = product_of(path)
        if kind is not None:  # (assemble would refuse its warp: it has no visit)
            reports[i].append(WarpOutcome(path=path, skipped=f"a dcrcoadd {kind}, not an exposure"))
            log.info("%s: skipped: %s", path, reports[i][-1].skipped)
            continue
        found = _members(i, path)
        if found[0].hdu is not None or chosen.clip:
            # (CCDs of a multi-extension file, or any exposure for a patch: only those that reach it)
            n_ccds = len(found)
            found = _reaching(found, chosen, headers)
            if not found:
                reports[i].append(WarpOutcome(path=path, skipped=_missed(n_ccds, chosen)))
                log.info("%s: skipped: %s", path, reports[i][-1].skipped)
        members.extend(found)
    for group in _visit_groups(members, headers):
        name = _warp_name(group, headers)
        indices = list(dict.fromkeys(m.index for m in group))
        if name in used:
            for i in indices:
                fail(i, f"{paths[i]}: its output name {name} is already taken by {used[name]}")
            continue
        used[name] = group[0].path
        if len(group) > 1:
            try:
                check_mosaic_memory(_footprint_union(group, chosen, headers), len(group),
                                    headers.visit_id(group[0]))
            except InputError as exc:
                for i in indices:
                    fail(i, f"{paths[i]}: {exc}")
                continue
        tasks.append(_Task(members=tuple(group), out_path=out_dir / name, grid=chosen, method=method,
                           read_options=read_options))
    for pairs in (mapper or serial_map)(_warp_file, tasks):
        for i, outcome in pairs:
            reports[i].append(outcome)
    # a file's outcome: its first failure (whatever else of it was written: the command fails), else
    # its first warp, else why it was skipped
    return [next((o for o in found if not o.ok), next((o for o in found if o.warp_path), found[0]))
            for found in reports.values()]


def _missed(n_ccds: int, grid: Grid) -> str:
    """Why an input file has no warp: it, or each of its CCDs, misses the grid's box."""
    what = "misses" if n_ccds == 1 else f"none of its {n_ccds} CCDs reaches"
    return f"{what} {grid.source}" if grid.clip else f"{what} the grid's box {grid.bbox} ({grid.source})"


class _Headers:
    """Each exposure's `ExposureInfo`, read once (None where it cannot be: warping it says why)."""

    def __init__(self, options: ReadOptions):
        self.options = options
        self._infos: dict[tuple[Path, str | None], ExposureInfo | None] = {}

    def info(self, member: _Member) -> ExposureInfo | None:
        key = (member.path, member.hdu)
        if key not in self._infos:
            try:
                self._infos[key] = self.options.read_info(member.path, member.hdu)
            except InputError:
                self._infos[key] = None
        return self._infos[key]

    def visit_id(self, member: _Member) -> int | None:
        info = self.info(member)
        return None if info is None or info.visit is None else info.visit.id

    def footprint(self, member: _Member, grid: Grid) -> Box | None:
        """The box of ``grid`` the exposure's footprint touches (within a patch: as it is cut, empty
        where it misses); None where its header cannot say."""
        info = self.info(member)
        if info is None or info.wcs is None:
            return None
        try:
            box = footprint_box(grid, info.wcs.celestial, info.bbox.shape)
        except ValueError:  # (beyond the grid's projection: on a patch, a miss; else warping says why)
            return Box(0, 0, 0, 0) if grid.clip else None
        return box.intersection(grid.bbox) if grid.clip and grid.bbox is not None else box


def _warp_name(group: Sequence[_Member], headers: _Headers) -> str:
    """``visit<ID>_warp.fits`` for the CCDs of a visit (several files, or CCDs of a multi-extension
    file, however many of them reach the grid); else ``<stem>_warp.fits`` (a CCD without a visit id
    ``<stem>_<CCD>_warp.fits``)."""
    first = group[0]
    visit_id = headers.visit_id(first)
    if visit_id is not None and (len(group) > 1 or first.hdu is not None):
        return f"visit{visit_id}_warp.fits"
    if first.hdu is not None:
        return f"{output_stem(first.path)}_{first.hdu}_warp.fits"
    return f"{output_stem(first.path)}_warp.fits"


def _reaching(members: list[_Member], grid: Grid, headers: _Headers) -> list[_Member]:
    """The exposures (CCDs of a multi-extension file, a file for a patch) that reach the grid's box
    (all when it has none, and those whose header cannot say: warping them reports why)."""
    if grid.bbox is None:
        return members
    reaching = []
    for member in members:
        box = headers.footprint(member, grid)
        if box is None or box.overlaps(grid.bbox):
            reaching.append(member)
    if len(members) > 1:
        log.info("%s: %d of its %d CCDs reach the grid's box %s", members[0].path, len(reaching),
                 len(members), grid.bbox)
    return reaching


def _footprint_union(members: Sequence[_Member], grid: Grid, headers: _Headers) -> Box:
    """The box of the grid the exposures' footprints touch (from their headers; those that cannot give
    one are left out: warping them reports why)."""
    union = None
    for member in members:
        box = headers.footprint(member, grid)
        if box is not None:
            union = box if union is None else union.union(box)
    return union if union is not None else Box(0, 0, 0, 0)


def _visit_groups(members: Sequence[_Member], headers: _Headers) -> list[list[_Member]]:
    """The exposures by visit, in input order: those of one visit (its CCDs) make one warp, one without
    a visit id one of its own."""
    groups: dict[object, list[_Member]] = {}
    for k, member in enumerate(members):
        visit_id = headers.visit_id(member)
        groups.setdefault(("exposure", k) if visit_id is None else visit_id, []).append(member)
    return list(groups.values())
