"""DCR-matched templates for science exposures, delivered on the science exposure's own grid.

A template for a science exposure is the DCR model forward-modelled with the
science visit's refraction (`dcrcoadd.dcr.model.DcrModel.render`): each subfilter
image is shifted by that subfilter's DCR and the shifted images are summed.

Where DCR is evaluated
    At the centre of the science exposure's footprint on the model (the part
    of it the model covers), projected through the model's WCS: the shifts move
    model pixels, and the science position is where they matter. Over one
    exposure the DCR varies by far less than the interpolation error.

Same grid
    When every science pixel is a model pixel (the two WCSs agree up to an
    integer pixel offset, within `GRID_TOLERANCE`), the template is cut from
    the model directly. It is computed over the science box grown by
    ``ceil(max |shift|) + 1`` pixels (plus 10 for cubic splines, whose
    prefilter is global) so that light shifted in across the box edges is
    right, then cropped. No resampling happens.

Different grid: the rendered template sampled at the science pixels' centres
    The template is rendered on the model's grid over the region covering the
    science footprint (plus the same margin and `_RESAMPLE_MARGIN` pixels for
    the interpolation), at the science PSF mapped into the model's pixels, and
    sampled at each science pixel's centre by cubic-spline interpolation
    (``scipy.ndimage.map_coordinates``), times the science pixel's area in
    model pixels, ``r`` (from its corners mapped onto the model grid): image
    pixels hold flux per pixel. A science pixel records the sky convolved with
    its PSF, which includes its own pixel's response, at its centre, and the
    rendered image is that function on the model's grid: sampling it is what
    the detector did. Averaging model pixels over each science pixel
    (``reproject_exact``, which templates used before) applies a pixel's
    response a second time: on a grid half a pixel from the model's the star
    peaks came out 5-7 % low (0.75" seeing, 0.2" pixels), with false detections
    at bright stars; on 0.15" or 0.3" pixels 4 and 6 where sampling leaves
    none. Flux is conserved to the interpolation's accuracy: a star's within
    0.02 % on grids of 0.15-0.4" pixels, offset or rotated, against the
    model's 0.2" (the tests' model).

Variance
    The model's variance plane (``M`` times a subfilter's: the baseline coadd's) scaled by one
    factor per rendering to the noise the rendering carries, measured on its sky pixels
    (`dcrcoadd.ops.noise.sky_noise_factor`): a template at a PSF sharper than the warps' amplifies the
    model's noise, one at a wider PSF smooths it (0.35-1.8 times the plane's sigma per pixel on
    simulated fields, measured with noise twins). On a field detected from edge to edge the
    faintest pixels by the model's light are measured instead (`_noise_factor`).

Variance on another grid
    Resampling correlates the noise of neighbouring output pixels, which one
    variance plane cannot describe. The variance plane is interpolated
    (bilinearly) and multiplied by ``r`` (not ``r²``): this keeps the noise
    per unit sky area, so the variance of a sum over a region much larger than
    a pixel (a PSF, an aperture) is right.

Mask
    Model mask planes are carried by nearest-pixel mapping: each science pixel
    takes the mask of the model pixel containing its centre (OR-ing every
    overlapped pixel would grow each masked pixel by one). Science pixels whose
    centre lies outside the model, or that the resampling did not reach, get
    NO_DATA with a NaN image and variance. Those within reach of the model's
    edge (the visit's largest subfilter DCR shift plus the PSF's FWHM, in model
    pixels) get EDGE: the light that sources beyond the edge spread in is not
    in the model (a star on its last column left 18 sigma 3 px inside). So do
    those within the same reach of a hole in the model (NO_DATA: no warp
    covers it) reaching more than the PSF's FWHM from any data, which lacks
    its sources' light the same way (`_near_hole`).

Units
    The template is returned in the science exposure's units
    (``template × model.flux_calibration / science.flux_calibration``, variance
    by the square of that factor) with the science exposure's flux
    calibration, so that ``science − template`` is meaningful pixel by pixel.

Other metadata of the template: the science exposure's WCS, origin and visit;
the model's band, mask planes (plus NO_DATA) and the PSF it was rendered at.

PSFs on another grid
    PSF kernels are sampled on some grid's pixels. A science PSF (its file's, a
    ``--psf-fwhm`` Gaussian, one fitted against the model) is in the science
    exposure's pixels; the model renders in its own. When the two grids' pixels
    differ in size, shape or orientation (`pixel_map`, the local map at the
    science exposure's centre, beyond `dcrcoadd.ops.resample.PSF_TOLERANCE`),
    kernels are mapped between them by interpolation
    (`dcrcoadd.ops.resample.interpolate_psf`), and the template carries its PSF in
    the science exposure's pixels. Sampling the rendered template adds no pixel's
    response, so that is the template's PSF. A science PSF sampled coarsely is
    only approximately recovered on the model's grid, and is warned about below
    `UNDERSAMPLED_FWHM`: a 96-px field seen on 0.4" pixels at 0.75" seeing
    (1.9 px) kept 7 false detections at its bright stars (0 on 0.3" pixels); at
    1.84, 2.14, 2.34 and 2.61 px FWHM, 8, 3, 2 and 0 (groups of 3 pixels beyond
    5 sigma; fitting the PSF against the model instead left 5, 4, 1 and 2). Since the
    simulator folds an undersampled PSF's aliases (`dcrcoadd.sim.render`), two
    96-px fields of 60 stars, 0.4" science against a 0.2" model: 6 and 0 at
    1.61 px, 4 and 0 at 1.81, 4 and 0 at 2.03, 1 and 0 at 2.38, 0 and 0 at 2.73
    (χ² per source pixel 19 and 2.1 falling to 1.1 and 1.0).
    On the model's own pixels a science PSF under `UNDERSAMPLED_FWHM` is warned
    about too: its image aliases each bright star by where it falls on a pixel,
    which a template rendered by sub-pixel shifts from a model on those pixels
    does not reproduce (the numbers are in `dcrcoadd.core.psf`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.wcs import WCS
from astropy.wcs.utils import pixel_to_pixel
from scipy import ndimage

from dcrcoadd.coadd.flux_scale import (
    CHECK_CALIBRATION,
    WARN_FLUX_RATIO,
    calibration_looks_wrong,
    flux_ratio,
    fluxes_against,
    is_off,
)
from dcrcoadd.coadd.inputs import central_box, measure_psf_across_dcr, psf_against_stars
from dcrcoadd.core.bandpass import same_band_name
from dcrcoadd.core.exposure import Exposure, shift_wcs
from dcrcoadd.core.geom import Box
from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.core.psf import UNDERSAMPLED_FWHM, Psf
from dcrcoadd.core.visit import VisitInfo
from dcrcoadd.dcr.forward import subfilter_shifts
from dcrcoadd.dcr.model import DcrModel, degenerate_conditions
from dcrcoadd.errors import InputError
from dcrcoadd.io.fits import ccd_extensions, exposure_hdus, write_hdus
from dcrcoadd.io.options import ReadOptions
from dcrcoadd.io.paths import make_outdir, output_stem
from dcrcoadd.io.products import mark_product, product_of
from dcrcoadd.ops.flat_top import flat_tops
from dcrcoadd.ops.noise import TEMPLATE_FAINT_FRACTION, sky_noise_factor
from dcrcoadd.ops.psf_match import RoundTransfer, convolve_round, fit_round_transfer
from dcrcoadd.ops.resample import PSF_TOLERANCE, interpolate_psf, local_jacobian
from dcrcoadd.ops.resample import corner_grid as _corner_grid
from dcrcoadd.ops.resample import quad_areas as _quad_areas
from dcrcoadd.parallel.tiles import tiles
from dcrcoadd.resample.grid import Grid, footprint_box
from dcrcoadd.template.alignment import check_alignment
from dcrcoadd.template.unmeasured import unmeasured, unmeasured_light

__all__ = ["GRID_TOLERANCE", "PSF_CHOICES", "TemplateOutcome", "build_templates", "difference",
           "fit_psf_to_model", "grid_offset", "make_template", "pixel_map",
           "template_psf", "write_difference", "write_template"]

#: Which PSF a template carries: the science exposure's (PSF-aware models), or the model's own.
PSF_CHOICES = ("science", "reference")
#: `template_psf` labels of a science PSF that `make_template` fits against the model: measured from
#: the stars (or none), or the exposure's own (`_fits_own_psf`).
FITTED_LABELS = ("science-measured", "science-refit")
#: Ellipticity of a science PSF extension (`Psf.ellipticity`, Gaussian-weighted moments) from which
#: its round refit against a model of measured warp PSFs is warned about (a shear of 0.02, 0.018 here,
#: left 4 false detections and χ² per source pixel 1.6 where a round PSF left 0 and 1.07).
ELLIPTICAL_PSF = 0.015
#: Science pixels no PSF measurement or fit uses.
SCIENCE_BAD_PLANES = ("NO_DATA", "SAT", "BAD", "INTRP", "CR", "SUSPECT")
#: Template pixels (the model's planes) where the model is unreliable: saturated or interpolated in
#: its inputs, or seen by none; PSF fits leave their sources out.
UNRELIABLE_PLANES = ("SAT", "INTRP", "NO_DATA", "BAD")

log = logging.getLogger("dcrcoadd.template.build")

#: Largest mismatch (pixels) between two WCSs still treated as the same grid; a smaller
#: offset moves flux by less than 0.1 % of a pixel's content, below interpolation errors.
GRID_TOLERANCE = 1e-3

#: Extra margin (pixels) of the region rendered for a template on another grid: the cubic spline's reach
#: (2 px) and room for its prefilter, whose edge effect decays by 0.27 a pixel.
_RESAMPLE_MARGIN = 4


# ---------------------------------------------------------------------------------------------
# Geometry helpers (pure functions)
# ---------------------------------------------------------------------------------------------

def grid_offset(wcs_from: WCS, wcs_to: WCS, shape: tuple[int, int], *,
                tolerance: float = GRID_TOLERANCE) -> tuple[int, int] | None:
    """Integer offset between two pixel grids, or None when they are not the same grid.

    Parameters
    ----------
    wcs_from, wcs_to : astropy.wcs.WCS
        Celestial WCSs of two arrays' 0-based pixels.
    shape : (ny, nx)
        Shape of the ``wcs_from`` array; the test points span it (a 5 x 5 grid
        including the corners).
    tolerance : float
        Largest deviation in pixels from an integer translation.

    Returns
    -------
    (dx, dy) or None
        ``x_to = x_from + dx`` and ``y_to = y_from + dy`` for every pixel, or
        None if the mapping is not such a translation.
    """
    ny, nx = shape
    y, x = np.meshgrid(np.linspace(-0.5, ny - 0.5, 5), np.linspace(-0.5, nx - 0.5, 5), indexing="ij")
    xt, yt = pixel_to_pixel(wcs_from, wcs_to, x.ravel(), y.ravel())
    dx, dy = np.asarray(xt) - x.ravel(), np.asarray(yt) - y.ravel()
    if not (np.all(np.isfinite(dx)) and np.all(np.isfinite(dy))):
        return None
    ox, oy = round(float(np.median(dx))), round(float(np.median(dy)))
    if np.max(np.abs(dx - ox)) > tolerance or np.max(np.abs(dy - oy)) > tolerance:
        return None
    return ox, oy


def pixel_map(science: Exposure, model: DcrModel) -> np.ndarray | None:
    """``d(model pixel) / d(science pixel)`` at the science array's centre (2x2, columns x and y), or
    None where the two grids' pixels agree to `PSF_TOLERANCE` (the same grid, a translation): what a
    PSF kernel sampled on one grid needs to be taken to the other."""
    jac = local_jacobian(science.wcs, model.wcs, (science.shape[1] - 1) / 2, (science.shape[0] - 1) / 2)
    if not np.all(np.isfinite(jac)) or np.max(np.abs(jac - np.eye(2))) <= PSF_TOLERANCE:
        return None
    return jac


def _on_model(psf: Psf | None, to_model: np.ndarray | None) -> Psf | None:
    """A science PSF (science pixels) in the model's pixels."""
    return psf if psf is None or to_model is None else interpolate_psf(psf, np.linalg.inv(to_model))


def _on_science(psf: Psf | None, to_model: np.ndarray | None) -> Psf | None:
    """A PSF in the model's pixels in the science exposure's."""
    return psf if psf is None or to_model is None else interpolate_psf(psf, to_model)


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------

#: A science band whose effective wavelength lies this fraction of the model's bandwidth from the
#: model's, or whose width is this many times more or less, is warned about (colour terms); beyond 0.2 of
#: the bandwidth it is another band. Of the presets, the same band of two cameras lies within 0.06 in
#: g, while DECam's r and i lie 0.15 and 0.20 from LSST's, and DECam's u is 0.55 times as wide.
BAND_OFFSET_WARNING = 0.1
BAND_WIDTH_WARNING = 1.5


def _check_band(model: DcrModel, science: Exposure, source: str) -> None:
    """`InputError` if the science exposure is in another band than the model.

    With both effective wavelengths known they decide (the same band of two
    cameras, e.g. lsst-g and decam-g, differs by a few nm; neighbouring bands
    by more than half a bandwidth); otherwise the band names are compared.
    """
    mb = model.bandpass
    if science.bandpass is not None:
        lam_m, width_m = mb.effective_wavelength.to_value("nm"), mb.bandwidth.to_value("nm")
        lam_s = science.bandpass.effective_wavelength.to_value("nm")
        width_s = science.bandpass.bandwidth.to_value("nm")
        if abs(lam_s - lam_m) > 0.2 * width_m:
            raise InputError(f"band {science.bandpass.name} ({lam_s:.1f} nm) differs from the model's "
                             f"band {mb.name} ({lam_m:.1f} nm)", source)
        if abs(lam_s - lam_m) > BAND_OFFSET_WARNING * width_m or not (
                1 / BAND_WIDTH_WARNING <= width_s / width_m <= BAND_WIDTH_WARNING):
            log.warning("%s: its band %s (%.1f nm, %.0f nm wide) is not the model's %s (%.1f nm, %.0f nm "
                        "wide): the template is rendered in the model's band, so sources whose colour "
                        "differs from the field's leave residuals in the difference (a colour term)", source,
                        science.bandpass.name, lam_s, width_s, mb.name, lam_m, width_m)
        return
    if science.band is None:
        log.warning("%s: no band given; assuming the model's band %s", source, mb.name)
        return
    if not same_band_name(science.band, mb.name):
        raise InputError(f"band {science.band} differs from the model's band {mb.name}", source)


def _check_inputs(model: DcrModel, science: Exposure, source: str) -> VisitInfo:
    if science.visit is None:
        raise InputError("no visit metadata (EXPID, BORE-AIRMASS, ...): cannot compute its DCR", source)
    if science.wcs is None:
        raise InputError("no WCS: cannot place the science exposure on the model", source)
    if model.wcs is None:
        raise InputError("the DCR model has no WCS", "model")
    _check_band(model, science, source)
    if not np.any(np.isfinite(science.image)):
        raise InputError("the science image has no finite pixel: nothing to match a template to", source)
    return science.visit


def _describe(science: Exposure) -> str:
    return "science exposure" if science.visit is None else f"visit {science.visit.id}"


# ---------------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------------

def _warn_partial(source: str, no_data: np.ndarray) -> None:
    frac = float(np.mean(no_data))
    if frac > 0:
        log.warning("%s: %.1f%% of the science exposure lies outside the model; marked NO_DATA",
                    source, 100 * frac)


def _template_planes(model: DcrModel) -> MaskPlanes:
    """A template's mask planes: the model's, with EDGE, NO_DATA and SAT (`dcrcoadd.template.unmeasured`)."""
    return model.mask_planes.with_plane("EDGE").with_plane("NO_DATA").with_plane("SAT")


def _rendering_psf(model: DcrModel, psf: Psf | None) -> Psf | None:
    """The PSF a template is rendered at (model pixels): ``psf`` for a PSF-aware model, else the model's."""
    return psf if psf is not None and model.psf_aware else model.psf


def _psf_fwhm(model: DcrModel, psf: Psf | None) -> float:
    """The FWHM (model pixels) of the PSF a template is rendered at (`_rendering_psf`); 2 px when none
    is known."""
    psf = _rendering_psf(model, psf)
    return psf.fwhm if psf is not None else 2.0


def _edge_width(model: DcrModel, visit: VisitInfo, at: tuple[float, float], psf: Psf | None) -> int:
    """Model pixels from its edge within which a template of ``visit`` lacks light from beyond it (sources
    outside the model that the visit's DCR and PSF spread in): its largest subfilter shift at ``at``
    plus the PSF's FWHM (`_psf_fwhm`)."""
    shifts = subfilter_shifts([visit], model.wcs, model.origin, model.bandpass, model.subfilter_edges, at)[0]
    return math.ceil(float(np.max(np.abs(shifts))) + _psf_fwhm(model, psf))


def _near_edge(x: np.ndarray, y: np.ndarray, bbox: Box, width: int) -> np.ndarray:
    """Whether parent-grid pixel centres ``(x, y)`` lie within ``width`` pixels of ``bbox``'s edge."""
    return ((np.minimum(x - bbox.x0, bbox.x1 - 1 - x) < width - 0.5)
            | (np.minimum(y - bbox.y0, bbox.y1 - 1 - y) < width - 0.5))


def _near_hole(model: DcrModel, box: Box, width: int, depth: int) -> np.ndarray | None:
    """Whether each model pixel of ``box`` lies within ``width`` pixels of a hole in the model (NO_DATA:
    no warp covers it) reaching more than ``depth`` pixels from any data, whose sources' light a
    template lacks as it lacks that of sources beyond the model's edge; None when none is that near.

    A shallower hole, a saturated core that every warp masks say, is not one: the forward model's PSF
    ties it to its neighbours (the demo's model filled there from the baseline coadd instead took its
    held-out templates from chi2 1.06 and 0.99 to 5.1 and 13)."""
    bit = model.mask_planes.value_if_present(("NO_DATA",))
    grown = box.grow(width + depth).clip(model.bbox)
    if not bit or grown.is_empty:
        return None
    hole = (model.mask[grown.slices(model.bbox)] & np.uint32(bit)) != 0
    if not hole.any():
        return None
    deep = ndimage.binary_erosion(hole, structure=np.ones((2 * depth + 1,) * 2, bool))
    if not deep.any():
        return None
    labels, _ = ndimage.label(hole, structure=np.ones((3, 3), bool))
    wide = np.isin(labels, np.unique(labels[deep]))
    near = ndimage.maximum_filter(wide.view(np.uint8), size=2 * width + 1, mode="constant").view(bool)
    return near[box.slices(grown)]


def _same_grid(model: DcrModel, science: Exposure, visit: VisitInfo, offset: tuple[int, int], *,
               order: int, split: bool, split_threshold: float, source: str, psf: Psf | None = None,
               matching: RoundTransfer | None = None):
    """Template image, mask and variance cut from the model (science pixels are model pixels)."""
    ny, nx = science.shape
    # the science array's box in the model's parent grid
    sbox = Box(model.origin[0] + offset[0], model.origin[1] + offset[1], nx, ny)
    overlap = sbox.intersection(model.bbox)
    if overlap.is_empty:
        raise OffModel(f"outside the model's footprint (its pixels {sbox} do not overlap the "
                         f"model's {model.bbox})", source)
    try:
        forward = model.render(visit, overlap, order=order, split=split, split_threshold=split_threshold,
                               psf=psf, matching=matching)
    except InputError as exc:
        raise InputError(str(exc), source) from None
    inner = overlap.slices(model.bbox)
    image = np.full((ny, nx), np.nan, dtype=np.float64)
    variance = np.full((ny, nx), np.nan, dtype=np.float64)
    mask = np.zeros((ny, nx), dtype=np.uint32)
    no_data = np.ones((ny, nx), dtype=bool)
    out = overlap.slices(sbox)
    image[out] = forward
    variance[out] = model.variance[inner].astype(np.float64) * len(model)
    mask[out] = model.mask[inner]
    y, x = np.ogrid[overlap.y0:overlap.y1, overlap.x0:overlap.x1]  # (broadcast: no full-size grids)
    width = _edge_width(model, visit, overlap.center, psf)
    edge = _near_edge(x, y, model.bbox, width)
    if (hole := _near_hole(model, overlap, width, math.ceil(_psf_fwhm(model, psf)))) is not None:
        edge = edge | hole
    planes = _template_planes(model)
    mask[out][edge] |= np.uint32(1 << planes.bit("EDGE"))
    variance[out] *= _noise_factor(image[out], variance[out], mask[out], planes, model, inner, psf)
    lit = unmeasured_light(model, visit, overlap, position=overlap.center,
                           reach=_light_reach(model, psf, width), psf=psf, matching=matching)
    noise = np.sqrt(_in_model_units(science.variance[out], science, model) + variance[out]) if lit else None
    for plane, light in lit.items():
        mask[out][unmeasured(light, noise)] |= np.uint32(1 << planes.bit(plane))
    no_data[out] = False
    return image, mask, variance, no_data


def _light_reach(model: DcrModel, psf: Psf | None, width: int) -> int:
    """How far (model pixels) a template spreads the light of a model pixel: the visit's DCR and the
    PSF's FWHM (``width``, `_edge_width`), and the kernel's wings beyond."""
    kernel = _rendering_psf(model, psf)
    return width + (max(kernel.shape) // 2 if kernel is not None else 0)


def _noise_factor(image: np.ndarray, variance: np.ndarray, mask: np.ndarray, planes: MaskPlanes,
                  model: DcrModel, where: tuple[slice, slice], psf: Psf | None) -> float:
    """The factor that brings a rendering's variance (the model's at ``where``, times M) to its noise
    (`sky_noise_factor`; 1 when it cannot be measured). On a field detected from edge to edge its
    faintest pixels are chosen by the model's light, not by the rendering's own noise. Where even those
    are lit (a PSF far wider than the warps' spreads its sources' wings there) their scatter only bounds
    the noise, and so does the variance plane (the baseline coadd's, whose noise such a rendering
    smooths): the lesser is taken (`LIT_LEVEL`). Not for a rendering at a PSF (``psf``, on the model's
    grid) sharper than the model's reference, which is warned about: its faintest pixels showed 1/3 of
    the noise it amplifies (a PSF 40 % narrower), and its difference is left to the noise check."""
    factor = sky_noise_factor(image, variance, mask, planes)
    # (too few sky pixels: only then is the model summed, 0.1 s a CCD)
    if factor is None and not (psf is not None and _sharper_than_reference(psf, model)):
        light = np.sum(model.images[(slice(None), *where)], axis=0, dtype=np.float64)
        reference = (light, model.variance[where].astype(np.float64) * len(model))
        factor = sky_noise_factor(image, variance, mask, planes, reference=reference,
                                  faint_fraction=TEMPLATE_FAINT_FRACTION, lit_bound=1.0)
    return factor or 1.0


def _in_model_units(science_variance: np.ndarray, science: Exposure, model: DcrModel) -> np.ndarray:
    """A science variance (its units squared) in the model's units squared."""
    ratio = science.flux_calibration / model.flux_calibration
    return science_variance.astype(np.float64) * ratio * ratio


def _resampled(model: DcrModel, science: Exposure, visit: VisitInfo, *, order: int, split: bool,
               split_threshold: float, source: str, psf: Psf | None = None,
               matching: RoundTransfer | None = None):
    """Template image, mask and variance forward-modelled on the model grid and sampled at the science
    pixels' centres (module notes)."""
    ny, nx = science.shape
    model_parent = shift_wcs(model.wcs, model.origin[0], model.origin[1])
    xc, yc = _corner_grid(science.wcs, model_parent, science.shape)
    if not (np.all(np.isfinite(xc)) and np.all(np.isfinite(yc))):
        raise InputError("its WCS and the model's do not map onto each other", source)
    mb = model.bbox
    # bounding box of the footprint (pixel edges), clipped to the model's pixel edges
    lo_x, hi_x = max(xc.min(), mb.x0 - 0.5), min(xc.max(), mb.x1 - 0.5)
    lo_y, hi_y = max(yc.min(), mb.y0 - 0.5), min(yc.max(), mb.y1 - 0.5)
    if lo_x >= hi_x or lo_y >= hi_y:
        raise OffModel(f"outside the model's footprint (it spans model pixels x {xc.min():.1f} to "
                         f"{xc.max():.1f}, y {yc.min():.1f} to {yc.max():.1f}; the model covers "
                         f"{mb})", source)
    footprint = Box.from_corners(math.floor(lo_x + 0.5), math.floor(lo_y + 0.5),
                                 math.floor(hi_x + 0.5) + 1, math.floor(hi_y + 0.5) + 1)
    region = footprint.grow(_RESAMPLE_MARGIN).clip(mb)
    position = (0.5 * (lo_x + hi_x), 0.5 * (lo_y + hi_y))
    try:
        forward = model.render(visit, region, position=position, order=order, split=split,
                               split_threshold=split_threshold, psf=psf, matching=matching)
    except InputError as exc:
        raise InputError(str(exc), source) from None
    var = model.variance[region.slices(mb)].astype(np.float64) * len(model)
    width = _edge_width(model, visit, region.center, psf)
    # (the noise of the rendering on the model's pixels, before the resampling correlates it)
    planes = _template_planes(model)
    y, x = np.ogrid[region.y0:region.y1, region.x0:region.x1]
    model_mask = model.mask[region.slices(mb)] | np.where(_near_edge(x, y, mb, width),
                                                          np.uint32(1 << planes.bit("EDGE")), np.uint32(0))
    var *= _noise_factor(forward, var, model_mask, planes, model, region.slices(mb), psf)
    area_ratio = _quad_areas(xc, yc)
    # each science pixel's centre (the mean of its corners) in the model's parent pixels
    xs, ys = (0.25 * (c[:-1, :-1] + c[1:, :-1] + c[:-1, 1:] + c[1:, 1:]) for c in (xc, yc))
    at = [ys - region.y0, xs - region.x0]
    image = ndimage.map_coordinates(forward, at, order=3, mode="nearest") * area_ratio
    variance = ndimage.map_coordinates(var, at, order=1, mode="nearest") * area_ratio
    # nearest model pixel of each science pixel centre, for the mask and what the model covers
    xm, ym = (np.floor(c + 0.5).astype(np.int64) for c in (xs, ys))
    inside = (xm >= mb.x0) & (xm < mb.x1) & (ym >= mb.y0) & (ym < mb.y1)
    mask = np.zeros((ny, nx), dtype=np.uint32)
    mask[inside] = model.mask[ym[inside] - mb.y0, xm[inside] - mb.x0]
    edge = inside & _near_edge(xs, ys, mb, width)
    if (hole := _near_hole(model, region, width, math.ceil(_psf_fwhm(model, psf)))) is not None:
        edge[inside] |= hole[ym[inside] - region.y0, xm[inside] - region.x0]
    mask[edge] |= np.uint32(1 << planes.bit("EDGE"))
    lit = unmeasured_light(model, visit, region, position=position, reach=_light_reach(model, psf, width),
                           psf=psf, matching=matching)
    noise = np.sqrt(_in_model_units(science.variance, science, model) + variance) if lit else None
    for plane, light in lit.items():
        light = ndimage.map_coordinates(light, at, order=1, mode="nearest") * area_ratio
        mask[unmeasured(light, noise)] |= np.uint32(1 << planes.bit(plane))
    no_data = ~inside | ~np.isfinite(image)
    return image, mask, variance, no_data


def _science_psf(science: Exposure, given: Psf | None, source: str, bandpass) -> tuple[Psf | None, str]:
    """The science exposure's PSF and where it came from: its own (PSF extension, or the reader's
    Gaussian of a seeing card), else ``given``, else ``"measured"``: `make_template` fits it against
    the model, starting from its bright isolated stars measured across its DCR direction
    (`measure_psf`; None when too few are isolated, the fit needs none)."""
    if science.psf is not None:
        if given is not None:
            log.warning("%s: the given PSF (--psf-fwhm) is not used: the file carries its own (FWHM %.2f px)",
                        source, science.psf.fwhm)
        cut = science[central_box(science.bbox)]
        measured = psf_against_stars(cut, science.psf, bandpass, cut.mask_of(*SCIENCE_BAD_PLANES), source)
        if measured is not None:  # (not its PSF: its stars' is fitted against the model instead)
            return measured, "measured"
        return science.psf, "file"
    if given is not None:
        log.info("%s: no PSF in the file; using the given PSF of FWHM %.2f px", source, given.fwhm)
        return given, "given"
    try:
        psf = measure_psf_across_dcr(science, bandpass, science.mask_of(*SCIENCE_BAD_PLANES), source)
    except ValueError as exc:
        log.warning("%s: no PSF in the file and too few stars to measure one (%s): fitting it against the "
                    "model", source, exc)
        return None, "measured"
    log.warning("%s: no PSF in the file; measured one from its bright isolated stars across the DCR "
                "direction, FWHM %.2f px (then fitted against the model)", source, psf.fwhm)
    return psf, "measured"


def template_psf(model: DcrModel, science: Exposure, psf: str | Psf = "science", *,
                 given: Psf | None = None, source: str = "science exposure",
                 to_model: np.ndarray | None = None,
                 fit_psf: bool | None = None) -> tuple[Psf | None, str]:
    """The PSF a template is rendered at, and its label for the template file's ``TMPLPSF`` card.

    ``psf="science"`` on a PSF-aware model (`DcrModel.psf_aware`): the science exposure's PSF
    (`_science_psf` order), label ``"science"`` (``"science-given"``; ``"science-measured"`` and
    ``"science-refit"``, its own PSF to be fitted against the model (`_fits_own_psf`, ``fit_psf``),
    which `make_template` turns into ``"science-fitted"``);
    a `Psf`: that PSF, ``"given"``; ``"reference"``, or any model that is not PSF-aware: None
    (the model's own PSF), ``"reference"`` / ``"model"``. Warns, saying by how much, when the
    science PSF is narrower than the model's reference (the template then deconvolves the model).
    The PSF is in the science exposure's pixels; ``to_model``: `pixel_map` of the two grids, for
    that comparison.
    """
    if not model.psf_aware:
        if psf != "reference":
            log.info("%s: the model is not PSF-aware; the template carries the model's PSF", source)
        return None, "model"
    if isinstance(psf, Psf):
        chosen, label = psf, "given"
    elif psf == "reference":
        return None, "reference"
    elif psf == "science":
        chosen, origin = _science_psf(science, given, source, model.bandpass)
        label = "science" if origin == "file" else f"science-{origin}"
        if label == "science" and _fits_own_psf(model, fit_psf, source):
            label = "science-refit"
    else:
        raise ValueError(f"psf must be one of {PSF_CHOICES} or a Psf, got {psf!r}")
    if label not in FITTED_LABELS:  # (a PSF to be fitted is checked once fitted, `make_template`)
        _warn_if_narrower(_on_model(chosen, to_model), model, source)
    return chosen, label


def _unreliable(model: DcrModel, mask: np.ndarray) -> np.ndarray:
    """Template pixels (``mask`` in the model's planes) in `UNRELIABLE_PLANES`."""
    return (mask & np.uint32(model.mask_planes.value_if_present(UNRELIABLE_PLANES))) != 0


#: A template whose PSF is this much narrower than every warp the model was fitted through is warned
#: about: over the 12 seeds of `python -m benchmarks.scenarios` (506 science visits), the 13 of them
#: 5-10 % sharper than every model warp (not than the reference) left 45 false detections, the 6
#: sharper still (also narrower than the reference, warned about) 97, the 3 at 0-5 % none and the 484
#: no sharper 60.
SHARPER_THAN_WARPS = 0.05


def _sharper_than_reference(psf: Psf, model: DcrModel) -> bool:
    """Whether a template at ``psf`` (model pixels) sharpens the model beyond its reference PSF."""
    return model.psf is not None and psf.fwhm < model.psf.fwhm * (1 - 1e-3)


def _warn_if_narrower(psf: Psf, model: DcrModel, source: str) -> None:
    """Warn when ``psf`` (on the model's grid) is narrower than the model's reference PSF, or than
    every warp's it was fitted through by more than `SHARPER_THAN_WARPS`."""
    ref = model.psf.fwhm
    widths = model.input_psf_range
    sharpest = widths[0] if widths is not None else math.nan
    if _sharper_than_reference(psf, model):
        # (a narrower reference adds nothing its inputs do not hold: on a field whose science PSFs
        # were sharper than all four model warps it left 88/117/50 false detections against 75/97/51;
        # differencing there at a common PSF, science ⊗ reference − template at the reference ⊗ science
        # PSF, left 48/42/28 against 72/98/33, χ² per source pixel 9.1/8.0/6.7 against 5.1/7.2/2.7: the
        # rest is the four-warp model's own bias)
        log.warning("%s: its PSF (FWHM %.2f px) is %.1f%% narrower than the model's reference PSF (%.2f px): "
                    "the template sharpens the model beyond what it was fitted at, which is not trustworthy; "
                    "smooth the science exposure to the reference PSF first (--psf reference renders the "
                    "template there), or, if some input is that sharp, build the model with a narrower "
                    "dcr.psf_reference_fwhm", source, psf.fwhm, 100 * (1 - psf.fwhm / ref), ref)
    elif psf.fwhm < sharpest * (1 - SHARPER_THAN_WARPS):
        log.warning("%s: its PSF (FWHM %.2f px) is %.0f%% narrower than the sharpest of the %d warps the "
                    "model was fitted to (%.2f px): the template extrapolates the model beyond what any warp "
                    "measured (on simulated fields such visits left 3.5 false detections each, others 0.1); "
                    "smooth the science exposure to that PSF first, or add sharper warps to the model",
                    source, psf.fwhm, 100 * (1 - psf.fwhm / sharpest), len(model.input_psf_fwhm), sharpest)


def _warn_if_elliptical(psf: Psf, source: str) -> None:
    """Warn when a science exposure's own PSF, refitted against a model of measured (round) warp PSFs,
    is elliptical beyond `ELLIPTICAL_PSF`: the round fit cannot follow it."""
    e, angle = psf.ellipticity
    if e >= ELLIPTICAL_PSF:
        log.warning("%s: its PSF extension is elliptical (ellipticity %.2f, major axis at %.0f deg), but "
                    "the model's warp PSFs were measured here, round, so its PSF is fitted against the model "
                    "as a round one: expect residuals at its bright stars (a shear of 0.05 left 5-7 false "
                    "detections where a round PSF left none); give the warps' PSFs as PSF extensions to "
                    "have its own used as it is", source, e, angle % 180.0)


def _warn_if_undersampled(psf: Psf | None, on_model: Psf | None, to_model: np.ndarray | None,
                          source: str) -> None:
    """Warn when a template is rendered at an undersampled science PSF (`UNDERSAMPLED_FWHM`; ``psf`` in
    the science pixels, ``on_model`` in the model's): on pixels larger than the model's, its kernel
    cannot be carried onto the model's grid exactly; on the model's pixels or smaller, the science image
    aliases its bright stars, which the template does not."""
    if psf is None:
        return
    area = abs(float(np.linalg.det(to_model))) if to_model is not None else 1.0  # (model pixels per pixel)
    if area > 1 + PSF_TOLERANCE:
        if psf.fwhm < UNDERSAMPLED_FWHM:
            log.warning("%s: its PSF (FWHM %.2f px) is sampled too coarsely on its pixels (%.2g times the "
                        "model's in area) to be carried onto the model's grid exactly: expect residuals at "
                        "its bright stars (0.4\" pixels against 0.2\": 0-6 false detections per visit at "
                        "1.6-2.0 px FWHM, 0 at 2.7)", source, psf.fwhm, area)
        return
    fwhm = on_model.fwhm
    if fwhm < UNDERSAMPLED_FWHM:
        log.warning("%s: its PSF (FWHM %.2f px of the model's) is undersampled: its image aliases each "
                    "bright star by where it falls on a pixel, which a template rendered from the model by "
                    "sub-pixel shifts does not: expect residuals at bright stars, along their rows and "
                    "columns (simulated: 2-125 false detections per visit next to an unsaturated 14-mag star "
                    "under %.1f px, 0-14 above)", source, fwhm, UNDERSAMPLED_FWHM)


def fit_psf_to_model(model: DcrModel, exposure: Exposure, template: np.ndarray, size: int,
                     template_bad: np.ndarray | None = None,
                     to_model: np.ndarray | None = None) -> tuple[RoundTransfer, Psf]:
    """The PSF of ``exposure`` fitted against a PSF-aware model: the round transfer function that
    best maps ``template`` (the model rendered for this exposure at the reference PSF, on its pixels
    and in its units; NaN where it does not reach) onto the image
    (`dcrcoadd.ops.psf_match.fit_round_transfer`), and the PSF it makes of the model's reference
    PSF (a kernel of at least ``size`` px). The template carries the exposure's DCR, so unlike stars
    stacked from the image the fit carries none of it. Sources with a bad pixel in the exposure, or
    in ``template_bad`` (where the model is unreliable, e.g. saturated in its inputs), are left out.

    On another grid (``to_model``, `pixel_map`) the transfer is returned in the model's pixels
    (its radii scaled by the grids' relative pixel size; it is round) and the PSF in the exposure's.
    """
    ref = model.psf.kernel
    good = np.isfinite(template) & ~exposure.mask_of(*SCIENCE_BAD_PLANES)
    if template_bad is not None:
        good &= ~template_bad
    transfer = fit_round_transfer(exposure.image.astype(np.float64), template.astype(np.float64),
                                  exposure.variance.astype(np.float64), good)
    size = max(ref.shape[0], size)
    if to_model is not None:
        # (radii in cycles per pixel: one science pixel spans sqrt|det| model pixels)
        transfer = RoundTransfer(transfer.radius / math.sqrt(abs(float(np.linalg.det(to_model)))),
                                 transfer.values)
    return transfer, _on_science(convolve_round(ref, transfer, size + 1 - size % 2), to_model)


def _fitted_block(model: DcrModel, block: Exposure, render, scale: float, start: Psf | None,
                  to_model: np.ndarray | None):
    """``(render's arrays, PSF, matching)`` of one block of a science exposure whose PSF is fitted
    against the model (`fit_psf_to_model`): the reference template times the fitted ratio, which is
    what was fitted (the ratio averages over the subfilters; chromatic seeing would scale it a second
    time). The shift forward model applies one ratio to every subfilter anyway, so it takes the PSF
    (in the model's pixels; the returned PSF is in the block's). ``matching`` says whether the fit
    is the data's (`RoundTransfer.constrained`); when it is not, the arrays are None."""
    image, mask, _, no_data = render(block, None)
    at_reference = np.where(no_data, np.nan, image * scale)
    size = max((start or model.psf).shape[0] + 8, model.psf.shape[0])
    matching, fitted = fit_psf_to_model(model, block, at_reference, size, _unreliable(model, mask), to_model)
    if not matching.constrained():
        return None, fitted, matching
    if model.forward_model == "fourier":
        return render(block, None, matching), fitted, matching
    at = fitted if to_model is None else convolve_round(model.psf.kernel, matching, size + 1 - size % 2)
    return render(block, at), fitted, matching


def _unfitted_message(matching: RoundTransfer, block: Box | None) -> str:
    """Why a science PSF fit is not the data's (`RoundTransfer.constrained`): the image does not show
    the model's sources, and the "fitted" PSF is the prior's, tens of pixels wide."""
    where = "" if block is None else f" (in its pixels x {block.x0}-{block.x1}, y {block.y0}-{block.y1})"
    return (f"its PSF cannot be fitted against the model{where}: the image does not show the model's "
            f"sources there (fitted ratio {matching.low_frequency:.2f} at the lowest frequency, about 1 "
            "expected)")


def _fit_science_psf(model: DcrModel, science: Exposure, render, scale: float, start: Psf | None,
                     to_model: np.ndarray | None, block_size: int, source: str):
    """The template of ``science`` at its PSF fitted against the model, block by block so that it
    may vary over the exposure: ``(image, mask, variance, no_data)`` and the blocks' area-weighted
    mean PSF, or ``(None, message)`` when some block's fit is not the data's."""
    # as few blocks as fit, of nearly equal sizes: no sliver at the far edges, whose fit would rest
    # on a handful of sources
    blocks = [t.box for t in tiles(science.bbox, block_size, even=True)]
    parts = []
    for b in blocks:
        block = science.subexposure(b)
        arrays, fitted, matching = _fitted_block(model, block, render, scale, start, to_model)
        if arrays is None:
            return None, _unfitted_message(matching, b)
        parts.append((arrays, fitted))
    image, mask, variance, no_data = (np.empty(science.shape, a.dtype) for a in parts[0][0])
    for b, (arrays, _) in zip(blocks, parts, strict=True):
        for whole, part in zip((image, mask, variance, no_data), arrays, strict=True):
            whole[b.slices(science.bbox)] = part
    kernels = [fitted.kernel * b.area for b, (_, fitted) in zip(blocks, parts, strict=True)]
    log.info("%s: science PSF fitted against the model's template in %d block(s): FWHM %s px", source,
             len(blocks), ", ".join(f"{fitted.fwhm:.2f}" for _, fitted in parts))
    return (image, mask, variance, no_data), Psf(np.sum(kernels, axis=0) / science.bbox.area)


def _fits_own_psf(model: DcrModel, fit_psf: bool | None, source: str) -> bool:
    """Whether a science PSF the exposure carries is fitted against the model: asked for
    (``fit_psf``), or by default when the model's PSF widths are its own (`DcrModel.psfs_measured`),
    which a PSF from another pipeline does not share."""
    if fit_psf is False or (fit_psf is None and not model.psfs_measured):
        return False
    if fit_psf is None:
        log.info("%s: the model's warp PSFs were all measured here, none given by a file, so its PSF "
                 "widths are its own: fitting the science PSF against the model", source)
    return True


def make_template(model: DcrModel, science: Exposure, *, order: int | None = None, split: bool = True,
                  split_threshold: float = 0.1, source: str | os.PathLike | None = None,
                  psf: str | Psf = "science", given_psf: Psf | None = None,
                  psf_block: int = 1024, fit_psf: bool | None = None) -> Exposure:
    """The DCR-matched template for a science exposure, on the science exposure's pixel grid.

    Parameters
    ----------
    model : DcrModel
    science : Exposure
        Needs a visit (for its DCR), a WCS, and the model's band.
    order : int, optional
        Interpolation order of the DCR shifts (1 bilinear, 3 cubic spline); default the
        order the model was solved with (``model.interp_order``).
    split, split_threshold
        Split-subfilter forward model (see `dcrcoadd.dcr.forward.matched_template`).
    source : str or path-like, optional
        Name of the science exposure in error messages (its file); default its visit.
    psf : {"science", "reference"} or Psf
        The PSF of a PSF-aware model's template (`template_psf`): the science exposure's own
        (default; science − template then needs no PSF matching), the model's reference PSF,
        or the given one. Models that are not PSF-aware carry their own PSF whatever this says.
        A PSF is in the science exposure's pixels; on another pixel grid it is mapped onto the
        model's (`pixel_map`, `dcrcoadd.ops.resample.interpolate_psf`) for rendering.
    given_psf : Psf, optional
        The science PSF to use when the exposure has none (instead of fitting one against the model),
        in its pixels.
    psf_block : int
        A PSF fitted against the model is fitted in blocks of this many pixels a side, so that it may
        vary over the exposure; the template's `Psf` is their area-weighted mean.
    fit_psf : bool, optional
        Whether a PSF the science exposure carries is fitted against the model too (from there, as
        for an exposure without one), with ``psf="science"`` on a PSF-aware model. Default: when the
        model's warp PSFs were all measured here (`DcrModel.psfs_measured`): its PSF widths are then
        its own calibration, and a PSF from another pipeline's measurement leaves residuals of every
        bright star (`python -m benchmarks.measured_psfs`: χ² per source pixel 1.6-4.0 with the
        files' true PSFs taken as they are, 1.1-2.1 fitted; 1444 against 26 on a field of brighter
        stars, `tests/test_measured_psfs.py`). True also fits a rough PSF, such as a Gaussian of the
        seeing card (χ² 60 against 1.5 there, with a model of the true PSFs). Where the fit is not the
        data's, the exposure's own PSF is kept, with a warning. False: the exposure's PSF as it is.

    Returns
    -------
    Exposure
        Template image, mask (model planes by nearest pixel, NO_DATA where the
        model does not reach, EDGE within reach of its edge), variance (M x subfilter
        variance scaled to the rendering's noise, resampled as the module notes say),
        the PSF it was rendered at (``psf``, in the science exposure's pixels) and the
        model's band, the science exposure's WCS, origin and visit, in the science
        exposure's flux units. Its
        ``psf_label`` attribute says which PSF it carries (`template_psf`), its ``dcr_gap`` how far
        the visit's DCR lies outside the model's inputs' (`DcrModel.dcr_coverage_gap`; None when the
        model does not record them).

    Raises
    ------
    InputError
        The science exposure has no visit or WCS, is in another band, lies
        outside the model's footprint, or its visit lacks the geometry for DCR.
    """
    if order not in (None, 1, 3):
        raise ValueError(f"order must be 1 (bilinear) or 3 (cubic spline), got {order!r}")
    source = str(source) if source is not None else _describe(science)
    visit = _check_inputs(model, science, source)
    gap = _report_dcr_coverage(model, visit, source)
    order = model.interp_order if order is None else order
    to_model = pixel_map(science, model)
    rendered_psf, label = template_psf(model, science, psf, given=given_psf, source=source, to_model=to_model,
                                       fit_psf=fit_psf)

    def render(target: Exposure, at: Psf | None, matching: RoundTransfer | None = None):
        kwargs = dict(order=order, split=split, split_threshold=split_threshold, source=source, psf=at,
                      matching=matching)
        offset = grid_offset(target.wcs, model.wcs, target.shape)
        if offset is not None:
            log.debug("%s: on the model's grid (offset %s); cutting the template directly", source, offset)
            return _same_grid(model, target, visit, offset, **kwargs)
        log.debug("%s: on another grid; sampling the template at its pixels' centres", source)
        return _resampled(model, target, visit, **kwargs)

    scale = model.flux_calibration / science.flux_calibration
    arrays = None
    refitted = label in FITTED_LABELS  # (a fitted PSF, or the science's own, is checked below)
    if refitted:
        # Stars give the PSF to a few per cent; the fit against the model gives what the difference
        # needs, block by block so that it may vary over the exposure.
        arrays, fitted = _fit_science_psf(model, science, render, scale, rendered_psf, to_model, psf_block,
                                          source)
        if arrays is not None:
            if label == "science-refit":
                _warn_if_elliptical(rendered_psf, source)
            rendered_psf, label = fitted, "science-fitted"
        elif label == "science-measured":
            raise InputError(f"{fitted}; give its PSF (a PSF extension, or --psf-fwhm)", source)
        else:
            log.warning("%s: %s; the template is rendered at its own PSF", source, fitted)
            label = "science"
    on_model = _on_model(rendered_psf, to_model)  # (interpolated once: for the checks and the rendering)
    if refitted:
        _warn_if_narrower(on_model, model, source)
    if arrays is None:
        arrays = render(science, on_model)
    _warn_if_undersampled(rendered_psf, on_model, to_model, source)
    image, mask, variance, no_data = arrays
    if no_data.all():
        raise OffModel(f"outside the model's footprint (no pixel is covered by the model's {model.bbox})",
                         source)
    _warn_partial(source, no_data)
    planes = _template_planes(model)
    mask[no_data] |= np.uint32(1 << planes.bit("NO_DATA"))
    image[no_data] = np.nan
    variance[no_data] = np.nan
    template = Exposure(
        image=(image * scale).astype(np.float32), mask=mask,
        variance=(variance * scale**2).astype(np.float32), mask_planes=planes,
        origin=science.origin, wcs=science.wcs.deepcopy(),
        psf=_on_science(model.psf, to_model) if rendered_psf is None else rendered_psf, visit=visit,
        bandpass=model.bandpass, flux_calibration=science.flux_calibration,
    )
    template.psf_label = label
    template.dcr_gap = gap
    return template


#: Largest extrapolation of the DCR (``tan z`` beyond the inputs' hull, `dcr_coverage_gap`) the
#: validation fields tested (one-sided coverage: 0.56-1.72, 0-2 false detections), and the gap beyond
#: which a template is warned about (airmass 15 against inputs up to 1.5 is a gap of about 14).
EXTRAPOLATION_VALIDATED = 1.7
EXTRAPOLATION_WARNING = 2.0


def _report_dcr_coverage(model: DcrModel, visit: VisitInfo, source: str) -> float | None:
    """How far the visit's DCR lies outside the model's inputs' (`DcrModel.dcr_coverage_gap`), logged;
    a warning when the inputs all share one DCR (a degenerate model) and the visit's differs."""
    gap = model.dcr_coverage_gap(visit)
    if gap is None:
        return None
    if degenerate_conditions(model.input_conditions) and gap > 0.05:
        log.warning("%s: the model's %d warps share nearly one airmass and parallactic angle, so its "
                    "subfilters are degenerate, and this visit's DCR differs from theirs by %.2f (tan z): "
                    "expect dipoles",
                    source, len(model.input_conditions), gap)
    elif gap > EXTRAPOLATION_WARNING:
        airmasses = np.asarray(model.input_conditions, dtype=float).reshape(-1, 2)[:, 0]
        log.warning("%s: the template extrapolates the DCR by %.2f (tan z) beyond the model's inputs' "
                    "(airmass %.2f-%.2f), farther than the solver was validated for (%.1f): expect dipoles "
                    "at bright sources", source, gap, airmasses.min(), airmasses.max(),
                    EXTRAPOLATION_VALIDATED)
    elif gap >= 0.01:  # (below: rounding of the visits' geometry)
        log.info("%s: the template extrapolates the DCR by %.2f (tan z) beyond the model's inputs'", source,
                 gap)
    return gap


def write_template(template: Exposure, path: str | os.PathLike) -> Path:
    """Write a template (`write_exposure` layout) with ``TMPLPSF``, the PSF it carries (its PSF
    extension): ``science`` (-fitted, -given), ``given``, ``reference`` or ``model``; ``TPSFFWHM``
    that PSF's FWHM, and ``DCRGAP`` its ``dcr_gap`` when known."""
    hdus = exposure_hdus(template)
    label = getattr(template, "psf_label", "model")
    mark_product(hdus[0].header, "template")
    hdus[0].header["TMPLPSF"] = (label, "PSF of this template (its PSF HDU)")
    if template.psf is not None:
        hdus[0].header["TPSFFWHM"] = (round(float(template.psf.fwhm), 4), "[px] FWHM of that PSF")
    gap = getattr(template, "dcr_gap", None)
    if gap is not None:
        hdus[0].header["DCRGAP"] = (round(gap, 4), "tan z of the DCR beyond the model inputs' hull")
    return write_hdus(hdus, path)


def difference(science: Exposure, template: Exposure) -> Exposure:
    """``science − template`` with summed variance and the union of the masks.

    The template is brought to the science exposure's flux units first (a
    no-op for `make_template` output). Mask planes of both are merged (the
    science's bits kept, the template's planes translated into them). Pixels
    without a difference (a NaN on either side, or a science variance that is
    not a finite non-negative number) are NaN with ``NO_DATA`` set, so a
    detector never sees an unflagged NaN. The result carries the science
    exposure's metadata (WCS, origin, PSF, visit, band, calibration).

    Raises
    ------
    ValueError
        If the two do not cover the same pixels of the same parent grid.
    """
    if science.bbox != template.bbox:
        raise ValueError(f"science {science.bbox} and template {template.bbox} differ")
    scale = template.flux_calibration / science.flux_calibration
    planes = science.mask_planes.merged(template.mask_planes)
    mask = planes.translate(science.mask, science.mask_planes) \
        | planes.translate(template.mask, template.mask_planes)
    image = science.image.astype(np.float64) - scale * template.image.astype(np.float64)
    variance = science.variance.astype(np.float64) + scale**2 * template.variance.astype(np.float64)
    missing = ~(np.isfinite(image) & (science.variance >= 0) & np.isfinite(variance))
    if missing.any():
        planes = planes.with_plane("NO_DATA")
        mask[missing] |= np.uint32(1 << planes.bit("NO_DATA"))
        image[missing] = variance[missing] = np.nan
    return Exposure(image=image.astype(np.float32), mask=mask, variance=variance.astype(np.float32),
                    mask_planes=planes, origin=science.origin, wcs=science.wcs, psf=science.psf,
                    visit=science.visit, band=science.band, bandpass=science.bandpass,
                    flux_calibration=science.flux_calibration)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------

class OffModel(InputError):
    """A science exposure the model does not reach: a failure for a file, a skip for one CCD of a
    multi-extension file (`build_templates`)."""


@dataclass(frozen=True)
class TemplateOutcome:
    """What happened to one science exposure (a file, or one CCD of it) in `build_templates`.

    ``error`` is the one-line reason it failed (naming the file), else None; ``skipped`` why a
    multi-extension file's CCD, or the file, has no template (off the model), not a failure.
    """

    path: Path
    template_path: Path | None = None
    diff_path: Path | None = None
    visit_id: int | None = None
    error: str | None = None
    hdu: str | None = None  # the CCD of a multi-extension file
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


#: Bounds of a given science PSF's FWHM in pixels: below one pixel a Gaussian is not sampled (and such a
#: value is usually arcseconds), above 100 no ground-based image is (usually a unit mix-up too).
PSF_FWHM_PIXELS = (1.0, 100.0)


def check_psf_fwhm_pixels(fwhm: float) -> float:
    """``fwhm`` if it is a plausible PSF FWHM in pixels (`PSF_FWHM_PIXELS`), else an `InputError` naming
    ``--psf-fwhm`` and the likely unit mistake."""
    lo, hi = PSF_FWHM_PIXELS
    value = float(fwhm)
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"a PSF FWHM must be a positive number of pixels, got {fwhm!r}", "--psf-fwhm")
    if value < lo:
        raise InputError(f"a PSF FWHM of {value:g} px is below one pixel (the value is in pixels: arcseconds "
                         "divided by the pixel scale)", "--psf-fwhm")
    if value > hi:
        raise InputError(f"a PSF FWHM of {value:g} px is above {hi:g} px (the value is in pixels, not in "
                         "tenths of arcseconds or microns)", "--psf-fwhm")
    return value


def _comparable(science: Exposure, template: Exposure) -> np.ndarray:
    """Pixels where a science exposure and its template can be compared: both finite, the science
    exposure's not masked as bad, saturated, a cosmic ray or an edge."""
    bad = science.mask_planes.value_if_present(("NO_DATA", "BAD", "SAT", "CR", "EDGE"))
    return (np.isfinite(science.image) & np.isfinite(template.image) & ((science.mask & np.uint32(bad)) == 0)
            & np.isfinite(science.variance))


def check_flux_against_template(science: Exposure, template: Exposure, source: str,
                                card: str | None = None, sky: float = 0.0) -> None:
    """Refuse a science exposure whose fluxes are more than `flux_scale.MAX_FLUX_RATIO` times its
    template's (either way), in blocks bright in the science exposure: its flux calibration is wrong (a
    FLUXCAL 1000x off made a difference image of the whole field), and the template, scaled by that
    calibration, would be too. Beyond `flux_scale.WARN_FLUX_RATIO`, a warning. ``card``: the header
    card its calibration came from, for the message; ``sky``: a level the science exposure holds
    beyond its template's (`sky_offset`), taken off its blocks (a sky of 3 sigma per pixel read as
    fluxes 1.3 times the template's, blamed on clouds)."""
    good = _comparable(science, template)
    if not good.any():
        return
    fwhm = template.psf.fwhm if template.psf is not None else math.nan  # (in the science's pixels)
    image = science.image - np.float32(sky) if sky else science.image
    scale = flux_ratio(image, template.image, good, float(np.mean(science.variance[good])), fwhm)
    against = fluxes_against(scale, "its template's")
    if is_off(scale):
        raise InputError(f"{against}: {calibration_looks_wrong(card, science.flux_calibration)}", source)
    if is_off(scale, WARN_FLUX_RATIO):
        log.warning("%s: %s: %s", source, against, CHECK_CALIBRATION)


#: A science exposure whose sky pixels (less the template) scatter this many times more, or less, than
#: its VARIANCE says is refused with ``--diff``: the plane is not its noise (it holds sigma, an inverse
#: variance, or is in other units than the image), and the difference image's variance, which is the
#: science's plus the template's, would make every detection threshold on it wrong. Beyond
#: `WARN_NOISE_MISMATCH`, a warning. The honest spread: see `science_noise_ratio`.
MAX_NOISE_MISMATCH = 2.0
WARN_NOISE_MISMATCH = 1.5
#: Pixels sampled (evenly) for `science_noise_ratio`.
_NOISE_SAMPLES = 1_000_000


def _sky_residuals(science: Exposure, template: Exposure,
                   faint: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(science − template, science variance, template variance)`` sampled over the good sky pixels
    (the template's in the science exposure's units), where the template
    is fainter than ``faint`` times the residual's own scatter (not the variance's, which is what
    `science_noise_ratio` checks); None with under 1000 such pixels. Sources are left out, since the
    template misses some (a field whose science PSFs are sharper than every model warp's)."""
    planes = science.mask_planes.merged(template.mask_planes)
    mask = planes.translate(science.mask, science.mask_planes) | planes.translate(template.mask,
                                                                                   template.mask_planes)
    bad = planes.value_if_present(SCIENCE_BAD_PLANES + ("EDGE",))
    scale = template.flux_calibration / science.flux_calibration
    residual = science.image - scale * template.image
    with np.errstate(invalid="ignore"):
        good = np.isfinite(residual) & (science.variance > 0) & ((mask & np.uint32(bad)) == 0)
    if np.count_nonzero(good) < 1000:
        return None
    noise = _iqr_sigma(residual[good][:: max(1, np.count_nonzero(good) // _NOISE_SAMPLES)])
    index = np.flatnonzero(good & (np.abs(scale * template.image) < faint * noise))
    if index.size < 1000:
        return None
    index = index[:: max(1, index.size // _NOISE_SAMPLES)]
    return (residual.reshape(-1)[index].astype(np.float64),
            science.variance.reshape(-1)[index].astype(np.float64),
            scale**2 * template.variance.reshape(-1)[index].astype(np.float64))


def science_noise_ratio(science: Exposure, template: Exposure) -> float:
    """Robust scatter (the Gaussian sigma of the interquartile range) of ``(science − template) /
    sqrt(science variance)`` over the good sky pixels (`_sky_residuals`): 1 when the variance is the
    science exposure's noise, a little more from the template's own noise; NaN with under 1000 such
    pixels.

    Over the sky it lies within 1.00-1.33 on the 14 scenario fields of seeds 1-3
    (`benchmarks.scenarios`, 126 science visits; the highest on that four-visit field) and is 1.07 on
    the bad-inputs benchmark's six-warp field. The difference's variance is not used: it holds the
    template's too, which dilutes the science's where the model has few warps (a science plane holding
    sigma there: 2.4 against 8.2 here)."""
    return _noise_ratios(science, template)[0]


def _noise_ratios(science: Exposure, template: Exposure) -> tuple[float, float]:
    """`science_noise_ratio`, and the same against the science and template variances together (NaN
    both with under 1000 sky pixels), from one pass over the sky pixels."""
    sky = _sky_residuals(science, template)
    if sky is None:
        return math.nan, math.nan
    residual, science_var, template_var = sky
    total = science_var + np.where(np.isfinite(template_var), template_var, 0.0)
    return _iqr_sigma(residual / np.sqrt(science_var)), _iqr_sigma(residual / np.sqrt(total))


def _given_psf(template: Exposure) -> bool:
    """Whether ``template`` was rendered at a PSF the user gave (``--psf-fwhm``, `template_psf`)."""
    return getattr(template, "psf_label", None) == "science-given"


#: A science exposure whose sky lies this many times its pixel noise above or below its template's is
#: warned about: a background left in (or subtracted to another level), which its difference holds;
#: beyond `MAX_SKY_OFFSET` its difference is refused. On a simulated field a sky of 1, 2, 3 and 5 sigma
#: gave a difference chi2 of 1.7, 4.1, 8.1 and 21 (116 false detections at 5).
SKY_OFFSET_WARNING = 0.5
MAX_SKY_OFFSET = 2.0


def sky_offset(science: Exposure, template: Exposure) -> tuple[float, float]:
    """``(level, in sigma)``: the median of ``science − template`` over the good sky pixels
    (`_sky_residuals`), in the science exposure's units and in units of its residuals' scatter (0
    when both are sky-subtracted; NaN with under 1000 such pixels)."""
    # (away from sources: their wings, where a science PSF unlike the template's leaves residuals, read
    # as a sky of half the noise with a Gaussian of the stars' FWHM given for a Kolmogorov PSF)
    sky = _sky_residuals(science, template, 0.1) or _sky_residuals(science, template)
    if sky is None:
        return math.nan, math.nan
    level, scatter = float(np.median(sky[0])), _iqr_sigma(sky[0])
    return level, (level / scatter if scatter > 0 else math.nan)


def check_sky_offset(science: Exposure, template: Exposure, source: str, diff: bool) -> float:
    """Warn of a science exposure whose `sky_offset` is beyond `SKY_OFFSET_WARNING` times its noise, and
    refuse its difference (``diff``) beyond `MAX_SKY_OFFSET`; returns that sky level (0 below the
    warning: with a calibration far off the template is faint everywhere, and its "sky pixels" hold
    the sources' wings), for `check_flux_against_template` to take off."""
    level, sky = sky_offset(science, template)
    if not abs(sky) > SKY_OFFSET_WARNING:
        return 0.0
    wings = (" Or the given PSF (--psf-fwhm) lacks its stars' wings, which overlap there?"
             if _given_psf(template) else "")
    offset = (f"its sky lies {abs(sky):.2g} times its pixel noise {'above' if sky > 0 else 'below'} its "
              "template's (the median of science - template over its sky pixels): a background left in, or "
              f"subtracted to another level?{wings}")
    if diff and abs(sky) > MAX_SKY_OFFSET:
        raise InputError(f"{offset} Its difference image would hold it, and every detection on it would be "
                         "off (subtract the background first)", source)
    log.warning("%s: %s %s (subtract the background first)", source, offset,
                "Its difference image holds it" if diff else "The template has none")
    return level


def _iqr_sigma(values: np.ndarray) -> float:
    """The Gaussian sigma of the values' interquartile range."""
    q1, q3 = np.percentile(values, (25.0, 75.0))
    return float(0.7413 * (q3 - q1))


def check_science_noise(science: Exposure, template: Exposure, source: str, sharpened: float = 0.0) -> None:
    """Refuse a science exposure whose `science_noise_ratio` is beyond `MAX_NOISE_MISMATCH` either way
    (its difference image would be wrong); warn beyond `WARN_NOISE_MISMATCH`. ``sharpened``: how much
    narrower the template's PSF is than the model's reference (a fraction; `_sharpened`): such a
    template holds more noise than its variance says, which is then the likelier cause."""
    ratio, with_template = _noise_ratios(science, template)
    if not math.isfinite(ratio):
        return
    what = (f"its sky pixels (less the template) scatter {ratio:.3g} times what its VARIANCE says (about 1 "
            "when the plane is its noise)")
    # (below 1: a science exposure put through dcrcoadd warp, whose per-pixel variance is an upper bound,
    # scattered 0.35-0.58 times it and was refused as a VARIANCE in other units)
    hint = ("a VARIANCE plane holding sigma, or an inverse variance?" if ratio > 1
            else "a VARIANCE in other units than the image? Or resampled from another grid, which narrows "
                 "its pixels' scatter (dcrcoadd warp keeps the noise per unit area; template needs no warp: "
                 "give it the exposure on its own pixels)")
    if ratio > 1 and _given_psf(template) and template.psf is not None:
        # (a probe's --psf-fwhm of 3.5 and 12 px against stars of 4.1: ratios 1.64 and 1.82, blamed on the
        # VARIANCE; even the stars' own FWHM, as a Gaussian, left 19 false detections against 2 fitted)
        hint = (f"the given PSF, a Gaussian of FWHM {template.psf.fwhm:.2f} px (--psf-fwhm), not its stars'? "
                "Without it the PSF is fitted against the model; or a VARIANCE plane holding sigma?")
    elif ratio > 1 and sharpened > 0:
        # (a probe's science PSF 30 % narrower than the reference: 2.12, its template's noise 2.9 times
        # what its variance said, with an honest science VARIANCE)
        hint = (f"its template, sharpened to its PSF, {100 * sharpened:.0f}% narrower than the model's "
                "reference, is noisier than its variance says: smooth the science exposure to the reference "
                "PSF and render at it, --psf reference; or a VARIANCE plane holding sigma?")
    if ratio > WARN_NOISE_MISMATCH and with_template <= WARN_NOISE_MISMATCH:
        # (the template's own noise accounts for it: a 3000 s exposure against a model of 30 s warps
        # scattered 3.2 times its VARIANCE, 0.86 times with the template's, and was refused for its plane)
        log.warning("%s: %s: the template's own noise accounts for it (the science exposure is deeper than "
                    "the model's warps?), and the difference's variance holds it", source, what)
        return
    if ratio > MAX_NOISE_MISMATCH or ratio < 1 / MAX_NOISE_MISMATCH:
        raise InputError(f"{what}: every detection threshold on its difference image would be wrong by about "
                         f"that factor ({hint})", source)
    if ratio > WARN_NOISE_MISMATCH or ratio < 1 / WARN_NOISE_MISMATCH:
        log.warning("%s: %s (%s)", source, what, hint)


def _sharpened(model: DcrModel, science: Exposure, template: Exposure) -> float:
    """How much narrower the PSF ``template`` was rendered at is than ``model``'s reference PSF (a
    fraction, 0 when it is not narrower)."""
    if template.psf is None or model.psf is None:
        return 0.0
    reference = _on_science(model.psf, pixel_map(science, model)).fwhm
    narrower = 1.0 - template.psf.fwhm / reference if reference > 0 else 0.0
    return narrower if narrower > 1e-3 else 0.0  # (as `_warn_if_narrower` tells it)


def _check_science_variance(science: Exposure, source: str) -> None:
    """Refuse a science exposure whose variance is negative or not finite at most of its pixels: its
    difference image would be NaN there (``NO_DATA``)."""
    finite = np.isfinite(science.image)
    with np.errstate(invalid="ignore"):
        unusable = finite & ~(np.isfinite(science.variance) & (science.variance >= 0))
    n, total = int(np.count_nonzero(unusable)), int(np.count_nonzero(finite))
    if total and n > total / 2:
        raise InputError(f"its VARIANCE is negative or not a number at {100 * n / total:.0f} % of its pixels "
                         "(a log or a difference of planes?): its difference image would be empty there",
                         source)


def _mask_flat_tops(science: Exposure, source: str) -> None:
    """Mask as SAT, with a warning, the science exposure's saturated cores that carry no SAT bit
    (`dcrcoadd.ops.flat_top`): its difference would hold each as a source hundreds of sigma deep."""
    # (pixels masked already are left out: a simulated bad column of one value, BAD, was "saturated")
    masked = science.mask_planes.value_if_present(SCIENCE_BAD_PLANES)
    good = (np.isfinite(science.image) & np.isfinite(science.variance)
            & ((science.mask & np.uint32(masked)) == 0))
    flat = flat_tops(science.image, science.variance, good)
    if flat is None:
        return
    _, n = ndimage.label(flat, structure=np.ones((3, 3), bool))
    science.set_mask("SAT", flat)
    log.warning("%s: %d flat-topped %s far above the noise (%d connected pixels of exactly one value, e.g. "
                "%.6g): saturated without a SAT mask bit? Masked as SAT", source, n,
                "core" if n == 1 else "cores", np.count_nonzero(flat), float(science.image[flat][0]))


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:  # (a loop of links: compared as given)
        return path.absolute()


#: Primary-header card marking a difference image (`write_difference`); templates carry ``TMPLPSF``.
DIFFERENCE_CARD = "DCRDIFF"


def _check_flux_unit(model: DcrModel, info, path: str | Path) -> None:
    """`InputError` when the science file's calibration and the model's unit (`DcrModel.flux_unit`)
    disagree: the template would be off by the file's calibration factor."""
    calibrated = info.flux_calibration is not None
    if model.flux_unit == "nJy" and not calibrated:
        raise InputError("has no flux calibration (no FLUXCAL, MAGZERO/MAGZPT or FLUXMAG0 card) but the "
                         "model is in nJy: its template would be off by the exposure's calibration factor; "
                         "add its FLUXCAL or zero point", path)
    if model.flux_unit == "image" and calibrated:
        raise InputError(f"is flux-calibrated ({info.calibration_card}) but the model is in its warps' image "
                         "units (none of them carried a calibration): the template would be off by this "
                         "exposure's calibration factor; calibrate the warps, or drop the card here", path)
    if model.flux_unit is None and not calibrated:
        log.warning("%s: no flux calibration, and the model does not say what unit it is in: the template "
                    "assumes this exposure's image units are the model's", path)


def write_difference(image: Exposure, path: str | os.PathLike) -> Path:
    """Write a difference image (`write_exposure` layout) marked with `DIFFERENCE_CARD`, so that it is
    never taken for a science exposure."""
    hdus = exposure_hdus(image)
    mark_product(hdus[0].header, "difference")
    hdus[0].header[DIFFERENCE_CARD] = (True, "science - DCR-matched template (dcrcoadd)")
    return write_hdus(hdus, path)


def build_templates(model_path: str | os.PathLike, science_paths: Iterable[str | os.PathLike],
                    outdir: str | os.PathLike, *, diff: bool = False, order: int | None = None,
                    split: bool = True, split_threshold: float = 0.1,
                    read_options: ReadOptions | None = None, psf: str = "science",
                    given_psf_fwhm: float | None = None) -> list[TemplateOutcome]:
    """Write ``OUTDIR/<stem>_template.fits`` (and ``<stem>_diff.fits``) for each science file.

    Parameters
    ----------
    model_path : path-like
        DCR model file (`DcrModel.write`).
    science_paths : iterable of path-like
        Science exposure files, each with visit metadata.
    outdir : path-like
        Created if needed.
    diff : bool
        Also write ``science − template`` (`difference`).
    order, split, split_threshold
        As for `make_template`.
    read_options : ReadOptions, optional
        How the science files are read (instrument, header map, weight maps), as the
        model's warps were (``[inputs]`` of their configuration).
    psf : {"science", "reference"}
        The PSF of the templates of a PSF-aware model (`make_template`).
    given_psf_fwhm : float, optional
        FWHM (pixels) of a Gaussian science PSF for files that carry none (instead of fitting
        their PSF against the model).

    Returns
    -------
    list of TemplateOutcome
        One per science file, in order; for a multi-extension file (one image per CCD,
        `dcrcoadd.io.fits.ccd_extensions`) one per CCD that overlaps the model, written as
        ``<stem>_<CCD>_template.fits`` (the others are left out; with none, one ``skipped``).
        A file that fails with `InputError` (unreadable, no visit, another band, outside the
        model, ...) records the message and the others still run; nothing is written for it.

    Raises
    ------
    InputError
        No science files, an unreadable model, or an unusable output directory.
    """
    paths = [Path(p) for p in science_paths]
    if not paths:
        raise InputError("no science exposures given", "template")
    read_options = read_options or ReadOptions()
    outdir = Path(outdir)
    model = DcrModel.read(model_path)
    if psf not in PSF_CHOICES:
        raise InputError(f"psf must be one of {', '.join(PSF_CHOICES)}, got {psf!r}", "--psf")
    if given_psf_fwhm is not None:
        check_psf_fwhm_pixels(given_psf_fwhm)
        if psf == "reference":
            raise InputError("gives the science exposures' PSF, but --psf reference renders the templates at "
                             "the model's own: give one of them", "--psf-fwhm")
        if not model.psf_aware:
            log.warning("--psf-fwhm is not used: the model is not PSF-aware (its templates carry its own "
                        "PSF)")
    if order is not None and model.forward_model == "fourier":
        log.warning("--order is not used: this model's Fourier forward model shifts exactly (the order is "
                    "that of the shift forward model's interpolation)")
    given = None if given_psf_fwhm is None else Psf.gaussian(fwhm=given_psf_fwhm)
    make_outdir(outdir)
    outcomes: list[TemplateOutcome] = []
    used: dict[str, Path] = {}
    products = {p: product_of(p) for p in paths}
    # (the science exposures no output may overwrite: an earlier run's template of the same name may be)
    inputs = {_resolved(p): p for p in paths if products[p] is None}
    seen: set[Path] = set()

    def one(path: Path, hdu: str | None) -> TemplateOutcome:
        """The template (and difference) of one science exposure: a file, or one CCD ``hdu`` of it."""
        stem = output_stem(path) if hdu is None else f"{output_stem(path)}_{hdu}"
        source = str(path) if hdu is None else f"{path}[{hdu}]"
        outputs = [outdir / f"{stem}_template.fits"] + ([outdir / f"{stem}_diff.fits"] if diff else [])
        written: list[Path] = []
        try:
            if stem in used:
                raise InputError(f"its output name {stem}_template.fits is already taken by {used[stem]}",
                                 source)
            for out in outputs:
                if _resolved(out) in inputs:
                    raise InputError(f"its output {out} would overwrite the science exposure "
                                     f"{inputs[_resolved(out)]}", source)
            info = read_options.read_info(path, hdu)
            _check_flux_unit(model, info, source)
            science = read_options.read_exposure(path, require_visit=True, hdu=hdu)
            # (a Gaussian of the seeing card is a start: a template at it leaves a ring at every bright star)
            fit_psf = True if info.psf_origin == "seeing card" else None
            if diff:  # (the difference's variance is the science exposure's)
                _check_science_variance(science, source)
            _mask_flat_tops(science, source)
            template = make_template(model, science, order=order, split=split,
                                     split_threshold=split_threshold, source=source, psf=psf,
                                     given_psf=given, fit_psf=fit_psf)
            check_alignment(science, template, source,
                            _comparable(science, template) & ~template.mask_of(*UNRELIABLE_PLANES, "EDGE"))
            sky = check_sky_offset(science, template, source, diff)
            check_flux_against_template(science, template, source, info.calibration_card, sky)
            if diff:  # (checked before anything is written)
                check_science_noise(science, template, source, _sharpened(model, science, template))
            written.append(template_path := write_template(template, outputs[0]))
            diff_path = None
            if diff:
                written.append(diff_path := write_difference(difference(science, template), outputs[1]))
            elif (stale := outdir / f"{stem}_diff.fits").exists():
                log.warning("%s: %s is from an earlier run (not rewritten without --diff)", source, stale)
        except (InputError, OSError) as exc:
            for out in written:  # a science exposure's outputs are written together or not at all
                out.unlink(missing_ok=True)
            if isinstance(exc, OffModel) and hdu is not None:  # (the header check let it through)
                log.info("%s: skipped: %s", source, exc.reason)
                return TemplateOutcome(path=path, hdu=hdu, skipped=exc.reason)
            if isinstance(exc, OSError):
                exc = InputError(f"cannot write {outputs[len(written)]} ({exc.strerror or exc})", source)
            message = str(exc)
            if source not in message:  # (one line naming the file, and its CCD)
                message = f"{message} (its CCD {hdu})" if str(path) in message else f"{source}: {message}"
            log.debug("%s", message)  # the outcome carries it; the command prints it once
            return TemplateOutcome(path=path, hdu=hdu, error=message)
        used[stem] = Path(source)
        log.info("%s: template for visit %s written to %s", source, science.visit.id, template_path)
        return TemplateOutcome(path=path, hdu=hdu, template_path=template_path, diff_path=diff_path,
                               visit_id=science.visit.id)

    clashes = _stem_clashes([p for p in paths if products[p] is None])
    for path in paths:
        if _resolved(path) in seen:
            continue  # (named twice, e.g. by a file and its directory: made once)
        seen.add(_resolved(path))
        if products[path] is not None:
            log.warning("%s: skipped: a dcrcoadd %s, not a science exposure", path, products[path])
            continue
        if path in clashes:
            log.debug("%s", clashes[path])
            outcomes.append(TemplateOutcome(path=path, error=clashes[path]))
            continue
        try:
            ccds = ccd_extensions(path)
        except InputError:
            ccds = []  # (reading it as one exposure says what is wrong with it)
        if not ccds:
            outcomes.append(one(path, None))
            continue
        # a multi-extension file: a template for each of its CCDs on the model (`_reaches_model`)
        reaching = [hdu for hdu in ccds if _reaches_model(model, read_options, path, hdu)]
        log.info("%s: %d of its %d CCDs overlap the model", path, len(reaching), len(ccds))
        tried = [one(path, hdu) for hdu in reaching]
        made = [o for o in tried if not o.skipped]
        off = [hdu for hdu in ccds if hdu not in reaching] + [o.hdu for o in tried if o.skipped]
        if off:  # (one line for the file, however many of its CCDs)
            reason = (f"none of its {len(ccds)} CCDs overlaps the model's footprint" if not made else
                      f"{_ccd_names(off)} ({len(off)} of its {len(ccds)} CCDs) "
                      f"{'does' if len(off) == 1 else 'do'} not overlap the model's footprint")
            log.info("%s: skipped: %s", path, reason)
            made.append(TemplateOutcome(path=path, skipped=reason))
        outcomes.extend(made)
    return outcomes


def _ccd_names(names: list[str], shown: int = 6) -> str:
    """"its CCD N3", "its CCDs N3, S1", "its CCDs N1, N2, N3, N4, N5, N6 and 40 more"."""
    listed = ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")
    return f"its CCD{'s' if len(names) > 1 else ''} {listed}"


def _stem_clashes(paths: list[Path]) -> dict[Path, str]:
    """The error of each science file whose outputs would take the name of another's
    (``a/visit.fits`` and ``b/visit.fits``): found before any template is made, so that neither is
    written rather than the first only."""
    by_stem: dict[str, list[Path]] = {}
    for path in dict.fromkeys(paths, None):
        group = by_stem.setdefault(output_stem(path), [])
        if all(_resolved(p) != _resolved(path) for p in group):
            group.append(path)
    clashes = {}
    for stem, group in by_stem.items():
        for path in group if len(group) > 1 else ():
            others = ", ".join(str(p) for p in group if p is not path)
            clashes[path] = (f"{path}: its output name {stem}_template.fits is also that of {others}: "
                             "rename one, or make their templates into separate --out directories")
    return clashes


def _reaches_model(model: DcrModel, read_options: ReadOptions, path: Path, hdu: str) -> bool:
    """Whether a CCD's footprint (`dcrcoadd.resample.grid.footprint_box`, from its header) reaches the
    model's box; True where its header cannot say (making its template reports why)."""
    try:
        info = read_options.read_info(path, hdu)
        if info.wcs is None:
            return True
        parent = Grid(shift_wcs(model.wcs, model.origin[0], model.origin[1]))
        return footprint_box(parent, info.wcs.celestial, info.bbox.shape).overlaps(model.bbox)
    except (InputError, ValueError):
        return True
