"""Baseline coadd of a set of warps (LSST ``AssembleCoaddTask`` / ``CompareWarpAssembleCoaddTask``).

`assemble_coadd` reads like LSST's ``run``:

1. `prepare_inputs` (`dcrcoadd.coadd.inputs`): validate the warp set (one pixel grid, one band,
   usable data), flux-scale every warp to nJy and weight it by ``1 / (clipped mean variance)``.
2. Compare-warp (`dcrcoadd.coadd.artifacts`): one alternative mask per warp (CLIPPED
   artifacts, NO_DATA, EDGE).
3. Stack tile by tile (`dcrcoadd.coadd.stacking`): alternative masks applied, ``n_image``
   counted, planes in ``remove_mask_planes`` cleared, then the statistic of `dcrcoadd.ops.stack`
   with LSST's mask propagation. Only one tile of the warps is in memory at a time per worker.
4. INEXACT_PSF where SENSOR_EDGE, CLIPPED or REJECTED; SENSOR_EDGE and INEXACT_PSF
   where a warp's PSF matching reached missing data.
5. `process_results`: interpolation over NO_DATA (`dcrcoadd.coadd.interpolate`), bright-object
   masks (`dcrcoadd.coadd.bright_objects`).
6. Coadd PSF (weighted mean of input kernels) and the best-seeing PSF for DCR; the input table.

Weights, static-sky tiles, per-warp artifact searches and stacking tiles are independent tasks
run by the ``mapper`` (`dcrcoadd.parallel`): serial, local processes and Dask give the same coadd
bit for bit. Streaming is exact: each output pixel depends only on the same input pixels (and,
for compare-warp, on the same kernel windows) whatever the tile size, so a tiled coadd equals a
one-tile coadd bit for bit. Files: `dcrcoadd.io.coadd`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from astropy.table import Table

from dcrcoadd.coadd.artifacts import ArtifactMask, compare_warps
from dcrcoadd.coadd.bright_objects import read_bright_object_masks, set_bright_object_masks
from dcrcoadd.coadd.inputs import CoaddInput, prepare_inputs
from dcrcoadd.coadd.interpolate import interpolate_no_data
from dcrcoadd.coadd.stacking import apply_alt_edge_mask, set_inexact_psf, stack_patch
from dcrcoadd.config.schema import CoaddConfig, Config
from dcrcoadd.core.exposure import Exposure
from dcrcoadd.core.geom import Box
from dcrcoadd.core.psf import Psf, best_seeing_selection, coadd_psf
from dcrcoadd.io.header import ascii_text
from dcrcoadd.ops.stack import make_control
from dcrcoadd.parallel import Mapper

log = logging.getLogger("dcrcoadd.coadd.baseline")

#: A coadd region this fraction or more of which no warp covers is warned about (beyond its overhang past
#: every warp's box, which is warned about before any pixel is read): an L-shaped coverage left 81 % of
#: a `--box` without data, and a box whose warps but one were skipped 90 %, without a word. (A DECam
#: CCD's gaps are under 1 %.)
HOLE_WARN_FRACTION = 0.05


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
    region : Box or None
        The box asked for, when the coadd reaches beyond it (``margin`` of `assemble_coadd`: pixels
        the DCR stage reads as its tiles' buffer); `cropped` cuts the coadd to it.
    """

    coadd: Exposure
    n_image: np.ndarray
    inputs: list[CoaddInput]
    artifact_masks: list[ArtifactMask | None]
    psf_best_seeing: Psf | None = None
    best_seeing: np.ndarray | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    config: Config | None = None
    region: Box | None = None

    @property
    def output_box(self) -> Box:
        """The box of the coadd asked for: ``coadd.bbox`` less any margin."""
        return self.region if self.region is not None else self.coadd.bbox

    def cropped(self) -> CoaddResult:
        """This coadd over `output_box` only (views of its arrays)."""
        if self.region is None:
            return self
        box = self.region
        masks = [m and m.restricted(box) for m in self.artifact_masks]
        return replace(self, coadd=self.coadd.subexposure(box),
                       n_image=self.n_image[box.slices(self.coadd.bbox)], artifact_masks=masks, region=None)

    def inputs_table(self) -> Table:
        """The inputs as a table: name, visit, weight, scale, airmass, parallactic angle, PSF FWHM
        (`Psf.fwhm`, in pixels and arcsec)."""
        sel = self.best_seeing if self.best_seeing is not None else np.zeros(len(self.inputs), bool)
        t = Table()
        t["name"] = [ascii_text(i.name) for i in self.inputs]  # (a FITS table holds ASCII only)
        t["visit"] = np.array([-1 if i.visit_id is None else i.visit_id for i in self.inputs], np.int64)
        t["weight"] = [i.weight for i in self.inputs]
        t["scale"] = [i.scale for i in self.inputs]
        t["scale"].unit = "nJy"
        t["airmass"] = [i.airmass for i in self.inputs]
        t["parallactic_angle"] = [i.parallactic_angle for i in self.inputs]
        t["parallactic_angle"].unit = "deg"
        t["psf_fwhm"] = [i.psf_fwhm for i in self.inputs]
        t["psf_fwhm"].unit = "pix"
        t["psf_fwhm_arcsec"] = [i.psf_fwhm_arcsec for i in self.inputs]
        t["psf_fwhm_arcsec"].unit = "arcsec"
        t["psf_origin"] = [i.psf_origin or "" for i in self.inputs]
        t["best_seeing"] = np.asarray(sel, bool)
        t["n_clipped"] = [0 if m is None else m.n_clipped for m in self.artifact_masks]
        t.meta["comments"] = ["visit = -1: unknown; scale: nJy per input image unit"]
        return t


def coadd_psfs(inputs: Sequence[CoaddInput]) -> tuple[Psf | None, Psf | None, np.ndarray | None]:
    """``(coadd PSF, best-seeing PSF, best-seeing selection)``: weighted means of the input kernels
    (all None unless every input has a PSF)."""
    psfs = [inp.psf for inp in inputs]
    weights = [inp.weight for inp in inputs]
    if not all(p is not None for p in psfs):
        if any(p is not None for p in psfs):
            log.warning("some warps have no PSF; the coadd gets none")
        return None, None, None
    psf = coadd_psf(psfs, weights)
    selection = best_seeing_selection(psfs, weights)
    best = psf if not selection.any() else coadd_psf(
        [p for p, s in zip(psfs, selection, strict=True) if s],
        [w for w, s in zip(weights, selection, strict=True) if s])
    return psf, best, selection


def process_results(exposure: Exposure, settings: CoaddConfig) -> None:
    """Interpolate over missing data and mask bright objects (LSST ``processResults``)."""
    if settings.do_interp:
        n = interpolate_no_data(exposure)
        if n:
            log.info("interpolated over %d NO_DATA pixels", n)
    if settings.do_mask_bright_objects:
        table = read_bright_object_masks(settings.bright_object_mask_file)
        n = set_bright_object_masks(exposure, table, settings.bright_object_mask_name)
        log.info("applied %d bright-object masks (%d pixels)", len(table), n)


def _warn_if_holes(coadd: Exposure, region: Box, overhang: float) -> None:
    """Warn when `HOLE_WARN_FRACTION` of ``region`` has no data (NO_DATA) beyond the ``overhang``
    fraction already warned about (the region's part beyond every warp's box): the warps' footprints,
    or those of the warps used, leave it uncovered."""
    fraction = np.count_nonzero(coadd.mask_of("NO_DATA")[region.slices(coadd.bbox)]) / region.area
    if fraction - overhang >= HOLE_WARN_FRACTION:
        log.warning("%.0f%% of the coadd region %s has no data (NO_DATA, interpolated over in the coadd): "
                    "the footprints of the warps used do not cover it", 100 * fraction, region)


def assemble_coadd(warps, config: Config | None = None, *, bbox: Box | None = None, margin: int = 0,
                   mapper: Mapper | None = None) -> CoaddResult:
    """Coadd warps into a baseline coadd (LSST ``CompareWarpAssembleCoaddTask``, or
    ``AssembleCoaddTask`` with ``config.artifacts.enabled = False``).

    Parameters
    ----------
    warps : sequence of path-like or Exposure
        Warps on one pixel grid, in one band. Files are read tile by tile.
    config : Config, optional
        Validated here; default `Config()`.
    bbox : Box, optional
        Coadd region in the parent grid; default the union of the warps.
    margin : int
        Coadd up to this many pixels beyond ``bbox`` too, where the warps have data (the result's
        ``region`` is then ``bbox``; `CoaddResult.cropped` cuts it).
    mapper : Mapper, optional
        Runs the weights, compare-warp and stacking tasks (`dcrcoadd.parallel`); default serial.
        Every mapper gives the same coadd bit for bit.

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
    c = config.coadd
    tile_size = tuple(c.subregion_size)
    prep = prepare_inputs(warps, config, bbox=bbox, margin=margin, mapper=mapper)
    box, planes, inputs = prep.bbox, prep.planes, prep.inputs
    log.info("assembling %d warps over %s (%d skipped)", len(inputs), box, len(prep.skipped))
    bad = planes.value_if_present(config.effective_bad_mask_planes())

    if config.artifacts.enabled:
        alt_masks: list[ArtifactMask | None] = list(compare_warps(
            inputs, box, planes, config.artifacts, bad_mask=bad, tile_size=tile_size,
            mapper=mapper).artifact_masks)
    else:
        alt_masks = [None] * len(inputs)

    control = make_control(planes, statistic=c.statistic, bad_mask_planes=config.coadd_bad_mask_planes(),
                           sigma_clip=c.sigma_clip, clip_iter=c.clip_iter,
                           calc_error_from_input_variance=c.calc_error_from_input_variance,
                           mask_propagation_thresholds=c.mask_propagation_thresholds)
    stacked = stack_patch(inputs, alt_masks, box, control, planes,
                          remove_mask=planes.value_if_present(config.effective_remove_mask_planes()),
                          alt_bad_mask=bad, tile_size=tile_size, mapper=mapper)
    set_inexact_psf(stacked.mask, planes)
    apply_alt_edge_mask(stacked.mask, box, planes, alt_masks)

    psf, best_psf, selection = coadd_psfs(inputs)
    coadd = Exposure(image=stacked.image, mask=stacked.mask, variance=stacked.variance, mask_planes=planes,
                     origin=box.origin, wcs=prep.wcs, psf=psf, band=prep.band, bandpass=prep.bandpass,
                     flux_calibration=1.0)
    _warn_if_holes(coadd, prep.region or box, prep.overhang)
    process_results(coadd, c)
    return CoaddResult(coadd=coadd, n_image=stacked.n_image, inputs=inputs, artifact_masks=alt_masks,
                       psf_best_seeing=best_psf, best_seeing=selection, skipped=prep.skipped, config=config,
                       region=prep.region)


__all__ = ["CoaddResult", "assemble_coadd", "coadd_psfs", "process_results"]
