"""One warp per visit: the warped CCDs of one exposure combined on the grid.

`assemble` takes one warp per visit (a visit given twice would count twice, so it is refused), as
LSST's warps hold every CCD of a visit that reaches the patch. A patch that crosses a CCD boundary
is covered by several CCD files of each visit; `dcrcoadd warp` warps each of them onto the grid and
combines them here.

Pixels
    The CCDs of one exposure do not overlap on the sky, so each warp pixel takes the one CCD with
    data there (not NO_DATA, finite image and variance); pixels no CCD reaches are NO_DATA with NaN
    image and variance. Files of one visit that share more than `MAX_OVERLAP` of their pixels are
    refused: that is one exposure given twice (two reductions of it, a copy), whose mean would count
    the visit twice. Below it (a WCS a little off at a CCD edge) the pixels they share take their
    inverse-variance mean. Mask bits are OR-ed over the CCDs that contribute, by plane name.
Calibration
    Each CCD is brought to the first's flux calibration (DECam's and HSC's zero points differ from
    CCD to CCD): its image scaled by ``FLUXCAL_j / FLUXCAL_0``, its variance by the square.
PSF
    A warp carries one PSF, so the mosaic carries the mean of the CCDs' kernels weighted by the
    pixels each contributes. A visit whose CCDs' PSFs differ in FWHM by more than
    `PSF_SPREAD_WARNING` is warned about: the DCR model forward-models the whole warp with that
    mean. If a CCD has no PSF the mosaic has none either (`assemble` then measures it from the stars).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from dcrcoadd.coadd.inputs import physical_memory
from dcrcoadd.core.exposure import Exposure
from dcrcoadd.core.geom import Box
from dcrcoadd.core.psf import Psf
from dcrcoadd.errors import InputError
from dcrcoadd.resample.grid import Grid

__all__ = ["MAX_OVERLAP", "PSF_SPREAD_WARNING", "check_mosaic_memory", "mosaic_visit"]

log = logging.getLogger("dcrcoadd.resample.mosaic")

#: Fraction of a CCD's pixels with data that may also be another's of the same visit.
MAX_OVERLAP = 0.01

#: Memory a mosaic takes per pixel of its box while it is made (accumulators, mask, owner, output planes).
_BYTES_PER_PIXEL = 8 + 8 + 4 + 4 + 4 + 4

#: Relative spread of the CCDs' PSF FWHMs above which a visit's mosaic is warned about.
PSF_SPREAD_WARNING = 0.10


def _check_members(warps: Sequence[Exposure], sources: Sequence[str], calibrated: Sequence[bool]) -> None:
    first = warps[0]
    if first.visit is None:
        raise InputError("has no visit metadata: only CCDs of one visit are combined", sources[0])
    for warp, source, cal in zip(warps[1:], sources[1:], calibrated[1:], strict=True):
        if warp.visit is None or warp.visit.id != first.visit.id:
            raise InputError(f"is not of visit {first.visit.id}, the visit of {sources[0]}", source)
        if warp.band != first.band:
            raise InputError(f"band {warp.band!r} differs from {sources[0]}'s {first.band!r} in visit "
                             f"{first.visit.id}", source)
        if cal != calibrated[0]:
            this, other = ("", " not") if cal else ("not ", "")
            raise InputError(f"is {this}flux-calibrated and {sources[0]} of the same visit is{other}: its "
                             "pixels cannot be put in one unit", source)


def _mean_psf(psfs: Sequence[Psf], weights: Sequence[float]) -> Psf:
    size = max(max(p.kernel.shape) for p in psfs)
    total = np.zeros((size, size))
    for psf, weight in zip(psfs, weights, strict=True):
        k = psf.kernel.astype(np.float64)
        oy, ox = (size - k.shape[0]) // 2, (size - k.shape[1]) // 2
        total[oy:oy + k.shape[0], ox:ox + k.shape[1]] += weight * k / k.sum()
    return Psf(total)


def check_mosaic_memory(box: Box, n_ccds: int, visit_id: int) -> None:
    """`InputError` for a visit whose CCDs span more of the grid than this machine's memory holds as
    one warp (checked from the headers too, before any CCD is read: a focal plane's worth of them
    takes an hour to warp)."""
    memory = physical_memory()
    if memory is not None and box.area * _BYTES_PER_PIXEL > memory:
        raise InputError(f"its {n_ccds} CCDs span {box.width}x{box.height} px of the grid, more than "
                         "this machine's memory holds as one warp: warp onto a patch (--center, --size), "
                         "which reads only the CCDs that reach it",
                         f"visit {visit_id}")


def mosaic_visit(warps: Sequence[Exposure], grid: Grid, sources: Sequence[str],
                 calibrated: Sequence[bool] | None = None) -> Exposure:
    """Combine warps of one visit's CCDs, all on ``grid``, into one warp (see the module notes).

    Parameters
    ----------
    warps : sequence of Exposure
        Warps of one visit on ``grid`` (`dcrcoadd.resample.warp_exposure`), in any boxes.
    grid : Grid
    sources : sequence of str
        The warps' files, for messages.
    calibrated : sequence of bool, optional
        Whether each warp's file gave a flux calibration (`dcrcoadd.io.ExposureInfo`: a file without
        one is read with ``flux_calibration = 1``); default: where ``flux_calibration`` is not None.

    Returns
    -------
    Exposure
        On the union of the warps' boxes, in the first warp's flux calibration, with its visit,
        band and bandpass.

    Raises
    ------
    InputError
        Warps of different visits or bands, some calibrated and some not, or two that overlap.
    """
    if not warps:
        raise ValueError("no warps to combine")
    first = warps[0]
    if len(warps) == 1:
        return first
    if calibrated is None:
        calibrated = [w.flux_calibration is not None for w in warps]
    _check_members(warps, sources, calibrated)
    box = first.bbox
    for warp in warps[1:]:
        box = box.union(warp.bbox)
    check_mosaic_memory(box, len(warps), first.visit.id)
    planes = first.mask_planes
    for warp in warps[1:]:
        planes = planes.merged(warp.mask_planes)
    no_data = np.uint32(1 << planes.bit("NO_DATA"))
    weighted = np.zeros(box.shape)
    weight = np.zeros(box.shape)
    mask = np.zeros(box.shape, dtype=np.uint32)
    owner = np.full(box.shape, -1, dtype=np.int32)  # the first warp with data at each pixel
    counts = []
    for j, warp in enumerate(warps):
        scale = float(warp.flux_calibration / first.flux_calibration) if calibrated[0] else 1.0
        image = warp.image.astype(np.float64) * scale
        variance = warp.variance.astype(np.float64) * scale**2
        good = (~warp.mask_of("NO_DATA") & np.isfinite(image) & np.isfinite(variance) & (variance > 0))
        inv = np.where(good, 1.0 / np.where(good, variance, 1.0), 0.0)
        region = warp.bbox.slices(relative_to=box)
        shared = good & (owner[region] >= 0)
        n_shared = int(np.count_nonzero(shared))
        if n_shared > MAX_OVERLAP * max(int(np.count_nonzero(good)), 1):
            other = sources[int(np.bincount(owner[region][shared]).argmax())]
            raise InputError(f"shares {n_shared} of its {int(np.count_nonzero(good))} pixels with {other}, "
                             f"of the same visit {first.visit.id}: one exposure given twice? (CCDs of one "
                             "visit are combined into one warp)", sources[j])
        owner[region][good & (owner[region] < 0)] = j
        weighted[region] += np.where(good, image, 0.0) * inv
        weight[region] += inv
        bits = planes.translate(warp.mask, warp.mask_planes) & ~no_data
        mask[region] |= np.where(good, bits, np.uint32(0))
        counts.append(int(np.count_nonzero(good)))
    seen = weight > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        image = np.where(seen, weighted / weight, np.nan)
        variance = np.where(seen, 1.0 / weight, np.nan)
    mask[~seen] |= no_data
    psf = None
    if all(w.psf is not None for w in warps):
        contributing = [(w.psf, c) for w, c in zip(warps, counts, strict=True) if c > 0]
        psf = _mean_psf([p for p, _ in contributing], [c for _, c in contributing])
        fwhm = [p.fwhm for p, _ in contributing]
        if max(fwhm) > (1 + PSF_SPREAD_WARNING) * min(fwhm):
            log.warning("visit %d: its %d CCDs' PSFs range over FWHM %.2f-%.2f px; the warp carries their "
                        "mean (%.2f px), with which the DCR model describes all of it", first.visit.id,
                        len(contributing), min(fwhm), max(fwhm), psf.fwhm)
    elif any(w.psf is not None for w in warps):
        log.warning("visit %d: some of its CCDs have no PSF, so its warp has none (assemble measures it "
                    "from the stars)", first.visit.id)
    return Exposure(image=image.astype(np.float32), mask=mask, variance=variance.astype(np.float32),
                    mask_planes=planes, origin=box.origin, wcs=grid.wcs_for(box), psf=psf,
                    visit=first.visit, band=first.band, bandpass=first.bandpass,
                    flux_calibration=first.flux_calibration)
