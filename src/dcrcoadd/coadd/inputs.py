"""The warps going into a coadd: description, validation, flux scaling and weights
(LSST ``prepareInputs``).

Every warp is checked against the first (one pixel grid, one band, no repeated visit), scaled to
nJy by its flux calibration and weighted by ``1 / (clipped mean variance of its good pixels)``.
Warps without usable pixels are skipped with a warning, as are warps whose fluxes disagree with the
others' by a calibration mistake (`dcrcoadd.coadd.flux_scale`) and files whose pixels repeat another's;
warps that contradict the others raise `InputError` naming the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
from astropy.coordinates import Angle
from astropy.wcs import WCS

from dcrcoadd.coadd.flux_scale import (
    CHECK_CALIBRATION,
    MAX_FLUX_RATIO,
    WARN_FLUX_RATIO,
    BlockAccumulator,
    BlockFlux,
    block_size,
    calibration_looks_wrong,
    fluxes_against,
    is_off,
    relative_flux_scales,
    times,
)
from dcrcoadd.config.schema import Config
from dcrcoadd.core.bandpass import Bandpass, same_band_name
from dcrcoadd.core.exposure import Exposure, shift_wcs
from dcrcoadd.core.geom import Box
from dcrcoadd.core.instrument import instrument_defaults
from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.core.psf import Psf
from dcrcoadd.core.visit import VisitInfo
from dcrcoadd.errors import InputError
from dcrcoadd.io.calibration import reconcile_calibration
from dcrcoadd.io.fits import ExposureInfo, read_region
from dcrcoadd.io.options import ReadOptions
from dcrcoadd.ops.flat_top import flat_tops
from dcrcoadd.ops.psf_measure import measure_psf
from dcrcoadd.ops.sky_variation import (
    SKY_VARIATION_WARN,
    cell_grid,
    cell_sky_levels,
    less_cell_levels,
    own_sky_variation,
)
from dcrcoadd.ops.stack import clipped_mean, good_pixels
from dcrcoadd.ops.zero_fill import ZERO_RUN, noisy, zero_runs
from dcrcoadd.parallel import Mapper, run_tasks
from dcrcoadd.physics.dcr import celestial_frame, dcr_direction, icrs_like

log = logging.getLogger("dcrcoadd.coadd.inputs")

#: Planes the coadd always has (targets of the mask propagation rules).
COADD_PLANES = ("NO_DATA", "CLIPPED", "REJECTED", "SENSOR_EDGE", "INEXACT_PSF", "INTRP", "EDGE")
#: Bytes per pixel of the coadd a run holds whole (image, variance, mask, inputs per pixel), and per
#: subfilter image of the DCR model on top: a lower bound of a run's memory.
COADD_BYTES_PER_PIXEL = 16
MODEL_BYTES_PER_PIXEL = 4

#: ``CoaddInput.psf_origin`` of PSFs given with the warp (a PSF extension, an in-memory exposure's),
#: as opposed to those measured here (from the stars, or a Gaussian of the seeing card).
GIVEN_PSF_ORIGINS = ("file", "input")


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
    options : ReadOptions
        How a file input is read (instrument, header map, weight maps): the same for its
        header and for every region of its pixels.
    info : ExposureInfo or None
        A file input's header as read once by `describe` with ``options``: every region is read
        with it (`dcrcoadd.io.fits.read_region`) instead of parsing the headers again.
    psf_origin : str or None
        Where ``psf`` came from: ``"file"`` (a PSF extension), ``"input"`` (an in-memory
        exposure's), ``"measured"`` (its stars, `measure_missing_psfs`), ``"fitted"`` (against a
        DCR model, `dcrcoadd.dcr.psf_refit`), ``"seeing card"``.
    tile_psfs : dict of int to Psf
        Fitted PSFs per DCR tile (by tile index), where the PSF varies over the patch; ``psf`` is
        then their area-weighted mean. Empty: ``psf`` holds everywhere.
    zero_fill : bool
        The warp writes 0 where it has no data, without a mask bit (`dcrcoadd.ops.zero_fill`):
        `read` makes its runs of exact zeros missing data.
    flat_tops : tuple of float
        The values at which the warp's saturated cores are cut flat without a SAT bit
        (`dcrcoadd.ops.flat_top`): `read` masks its pixels of exactly those values as SAT.
    sky_variation : float
        How much its own sky varies across the coadd region, in its pixel noise
        (`dcrcoadd.ops.sky_variation`); NaN where not measured.
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
    options: ReadOptions = field(default_factory=ReadOptions)
    info: ExposureInfo | None = field(default=None, repr=False)
    psf_origin: str | None = None
    tile_psfs: dict[int, Psf] = field(default_factory=dict, repr=False)
    zero_fill: bool = False
    flat_tops: tuple[float, ...] = ()
    sky_variation: float = math.nan

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
        """PSF FWHM in pixels (`Psf.fwhm`, the kernel's own; NaN without a PSF)."""
        return float("nan") if self.psf is None else self.psf.fwhm

    @property
    def psf_fwhm_arcsec(self) -> float:
        """PSF FWHM in arcsec at the warp's pixel scale (NaN without a PSF or a WCS)."""
        return float("nan") if self.psf is None else self.psf.fwhm_arcsec(self.wcs)

    # -- pixels ------------------------------------------------------------------------------
    def read(self, box: Box) -> Exposure | None:
        """Pixels inside ``box`` (clipped to the warp): image in nJy, variance scaled to match,
        mask in the common planes. None when ``box`` misses the warp.

        Pixels whose variance is not a finite non-negative number are missing data: their image is
        NaN (`invalid_variance_to_missing`), as every stage treats it, so an infinite or negative
        variance never reaches a coadd's variance or an input's weight. So are a ``zero_fill``
        warp's runs of exact zeros, found with the pixels round ``box`` (the same whatever the box).
        Pixels of its ``flat_tops`` values are SAT."""
        crop = box.intersection(self.bbox)
        if crop.is_empty:
            return None
        exp = self._read_as_is(crop.grow(ZERO_RUN - 1) if self.zero_fill else crop)
        invalid_variance_to_missing(exp.image, exp.variance)
        if self.flat_tops:
            exp.set_mask("SAT", np.isin(exp.image, np.array(self.flat_tops, exp.image.dtype)))
        if not self.zero_fill:
            return exp
        runs = zero_runs(exp.image)
        if runs is not None:
            exp.image[runs] = np.nan
        return exp.subexposure(crop)

    def _read_as_is(self, box: Box) -> Exposure | None:
        """`read` without the invalid-variance check."""
        crop = box.intersection(self.bbox)
        if crop.is_empty:
            return None
        if isinstance(self.source, Exposure):
            exp = self.source.subexposure(crop)
            image, variance = exp.image, exp.variance
        else:
            exp = (read_region(self.info, crop) if self.info is not None
                   else self.options.read_exposure(self.source, crop))
            image, variance = exp.image, exp.variance
        planes = self.planes if self.planes is not None else exp.mask_planes
        s = np.float32(self.scale)
        # Scaling by 1 changes no bit: a file's freshly read planes are then returned as they are
        # (an in-memory source's are views of the caller's arrays and are always copied).
        if s != 1 or isinstance(self.source, Exposure):
            image, variance = image * s, variance * (s * s)
        return Exposure(
            image=image, mask=planes.translate(exp.mask, exp.mask_planes),
            variance=variance, mask_planes=planes, origin=crop.origin, wcs=exp.wcs,
            psf=self.psf, visit=self.visit, band=self.band, bandpass=self.bandpass, flux_calibration=1.0,
        )

    def restricted(self, box: Box) -> CoaddInput:
        """This input for reads inside ``box`` only: `read` of any box inside ``box`` is unchanged.

        A file input is returned as is (a task carries its path). An in-memory exposure keeps only
        the pixels inside ``box`` (a view, no copy), so a task pickled for another process carries
        no more pixels than it reads; ``bbox`` shrinks to match.
        """
        if not isinstance(self.source, Exposure):
            return self
        # (a zero fill's runs are found with the pixels round a read)
        crop = box.grow(ZERO_RUN - 1 if self.zero_fill else 0).intersection(self.bbox)
        return replace(self, source=self.source.subexposure(crop), bbox=crop)


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
    region: Box | None = None  # the box asked for, when ``bbox`` reaches beyond it (a margin)
    overhang: float = 0.0  # the fraction of the box asked for beyond every warp's box (warned about)


# -- description and checks ------------------------------------------------------------------------

def describe(warp, i: int, options: ReadOptions | None = None) -> CoaddInput:
    """A `CoaddInput` for warp ``i``: a file (only its header is read, with ``options``) or an
    in-memory `Exposure`."""
    if isinstance(warp, Exposure):
        label = f"exposure[{i}]" if warp.visit is None else f"exposure[{i}] (visit {warp.visit.id})"
        return CoaddInput(
            name=label, source=warp, bbox=warp.bbox, wcs=warp.parent_wcs(), visit=warp.visit,
            band=warp.band, bandpass=warp.bandpass, psf=warp.psf, mask_planes=warp.mask_planes,
            flux_calibration=warp.flux_calibration, psf_origin=None if warp.psf is None else "input")
    if isinstance(warp, (str, os.PathLike)):
        path = Path(warp)
        options = options or ReadOptions()
        info = options.read_info(path)
        wcs = None if info.wcs is None else shift_wcs(info.wcs, info.bbox.x0, info.bbox.y0)
        return CoaddInput(
            name=str(path), source=path, bbox=info.bbox, wcs=wcs, visit=info.visit, band=info.band,
            bandpass=info.bandpass, psf=info.psf, mask_planes=info.mask_planes,
            flux_calibration=info.flux_calibration, options=options, info=info, psf_origin=info.psf_origin)
    raise InputError(f"warp {i} is a {type(warp).__name__}, expected a file path or an Exposure")


def _with_instrument(inp: CoaddInput, instrument: str) -> CoaddInput:
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
    frames = _sky_frame(ref.wcs), _sky_frame(other.wcs)
    if frames[0] != frames[1]:
        # (the pixel comparison below is in each WCS's own coordinates, blind to their frames)
        raise InputError(f"its WCS is in {frames[1]}, {ref.name}'s in {frames[0]} (RADESYS, EQUINOX): warps "
                         "must share one sky frame", other.name)
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


def _sky_frame(wcs) -> str:
    """A WCS's celestial frame in words; ICRS and FK5 at J2000 (20 mas apart) count as one."""
    try:
        frame = celestial_frame(wcs)
    except InputError:
        return "an unknown frame"
    if icrs_like(frame):
        return "ICRS"
    name = frame.name
    equinox = getattr(frame, "equinox", None)
    if equinox is not None:
        return f"{name.upper()} (equinox {equinox.jyear_str if name == 'fk5' else equinox.byear_str})"
    return name.upper()


def _check_band(ref: CoaddInput, other: CoaddInput) -> None:
    """`InputError` naming ``other`` when it is in another band than ``ref``: by their bandpasses where
    both have one (every warp's DCR is computed with ``ref``'s), else by the band their names give
    (``"g"``, ``"lsst-g"`` and ``"HSC-G"`` are one band; a file's name and bandpass agree,
    `dcrcoadd.io.fits`)."""
    o, r = other.bandpass, ref.bandpass
    if r is not None and o is not None:
        if not (np.isclose(o.effective_wavelength.value, r.effective_wavelength.value)
                and np.isclose(o.bandwidth.value, r.bandwidth.value)):
            raise InputError(f"bandpass ({o.effective_wavelength:.1f}, {o.bandwidth:.1f}) differs from that "
                             f"of {ref.name} ({r.effective_wavelength:.1f}, {r.bandwidth:.1f})", other.name)
        return
    if ref.band is not None and other.band is not None and not same_band_name(ref.band, other.band):
        raise InputError(f"band {other.band!r} differs from band {ref.band!r} of {ref.name}", other.name)


def common_planes(inputs: Sequence[CoaddInput], config: Config) -> MaskPlanes:
    """LSST planes plus every plane of the inputs and every plane the configuration names (a named
    plane that neither defines is warned about: it masks nothing, and is usually a typo)."""
    planes = MaskPlanes()
    for inp in inputs:
        planes = planes.merged(inp.mask_planes)
    unknown = [f"{where} {name!r}" for where, name in configured_planes(config) if name.upper() not in planes]
    if unknown:
        log.warning("the configuration names mask planes that no input defines (a typo? they mask nothing): "
                    "%s; known planes: %s", ", ".join(unknown), ", ".join(planes))
    c = config.coadd
    for name in (*COADD_PLANES, *c.bad_mask_planes, *c.mask_propagation_thresholds,
                 c.bright_object_mask_name):
        planes = planes.with_plane(name)
    return planes


def configured_planes(config: Config) -> list[tuple[str, str]]:
    """``(field, plane name)`` of every mask plane the configuration names: each ``*mask_planes`` list
    and the keys of ``coadd.mask_propagation_thresholds``, in every section."""
    found = []

    def walk(obj, prefix):
        for f in dataclasses.fields(obj):
            value, where = getattr(obj, f.name), f"{prefix}{f.name}"
            if dataclasses.is_dataclass(value):
                walk(value, where + ".")
            elif f.name.endswith("mask_planes") and isinstance(value, (list, tuple)):
                found.extend((where, str(name)) for name in value)
            elif f.name == "mask_propagation_thresholds" and isinstance(value, dict):
                found.extend((where, str(name)) for name in value)

    walk(config, "")
    return found


# -- weights ---------------------------------------------------------------------------------------

@dataclass
class VarianceTask:
    """What measuring one warp's mean variance needs (picklable: a file input carries its path)."""

    input: CoaddInput
    box: Box  # the warp's overlap with the coadd region
    bad_mask: int
    tile_size: tuple[int, int]
    sigma_clip: float
    clip_iter: int
    region: Box | None = None  # the coadd region, whose block lattice `flux_scale` sums on
    block: int = 0  # the side of its blocks


def invalid_variance_to_missing(image: np.ndarray, variance: np.ndarray) -> np.ndarray | None:
    """Set the image to NaN (missing data) where it is finite but its variance is not a finite
    non-negative number, in place; returns where that was (None: nowhere).

    Two reductions decide the common case (every variance finite and non-negative) without a mask.
    """
    lo, hi = (float(variance.min()), float(variance.max())) if variance.size else (0.0, 0.0)
    if lo >= 0 and hi < math.inf:  # (a NaN makes both comparisons false)
        return None
    invalid = ~((variance >= 0) & (variance < np.inf)) & np.isfinite(image)
    image[invalid] = np.nan
    return invalid if invalid.any() else None


class VarianceStats(NamedTuple):
    """What `mean_variance` measures of one warp."""

    mean: float | None  # clipped mean variance of its good pixels; None without any
    n_invalid: int  # pixels with a finite image, no bad bit and an infinite, NaN or negative variance
    all_zero: bool  # every good pixel's image is exactly 0: a fill for missing data, not data
    scatter: float = math.nan  # robust scatter of image / sqrt(variance) (1 when the variance is right)
    sky: float = math.nan  # median of the image over that scatter (about 0 when sky-subtracted)
    blocks: BlockFlux | None = None  # its block sums, for `flux_scale.relative_flux_scales`
    sky_scatter: float = math.nan  # scatter of image / sqrt(variance) below its median (sky pixels: sources
    # lie above it), 1 when the variance is right
    fingerprint: str = ""  # a file's sampled pixels (image and variance), digested: two files with one
    # are one exposure ("" for an exposure in memory, where a test's constant images may repeat)
    n_zero_fill: int = 0  # good pixels in runs of exact zeros amid noise (`dcrcoadd.ops.zero_fill`), left out
    negative: float = math.nan  # fraction of the sampled pixels below 0 (none: a noiseless image)
    flat_tops: tuple[float, ...] = ()  # values of its saturated cores without a SAT bit (`ops.flat_top`)
    n_flat_top: int = 0  # their pixels, left out
    masked: float = math.nan  # fraction of its pixels with a finite image that carry a bad bit
    sky_cells: np.ndarray | None = None  # its sky level on a coarse grid over the coadd region, in its
    # pixel noise (`dcrcoadd.ops.sky_variation`); None where too few pixels were sampled
    flat_sky_scatter: float = math.nan  # ``sky_scatter`` with each cell's level taken out


#: Pixels sampled (evenly) per warp for `VarianceStats.scatter` and ``sky``: checks, not weights.
CHECK_SAMPLES = 100_000
#: A warp whose pixels scatter this many times more than its variance says is skipped: its variance
#: is not its noise (a variance map given as a weight map: 2400 on a DECam image), and its weight would
#: swamp the rest. High, since sources widen the scatter too (500 on crowded simulated fields with a
#: hundredth of the real noise); below it, compare-warp's variance rescaling warns.
MAX_NOISE_RATIO = 1000.0
#: A warp whose sky pixels scatter this many times more than its variance says, and this many times
#: more than the median warp's (with three warps or more), is skipped: its variance is too small for its
#: noise (a plane holding sigma: 5.1 against 0.9-1.1 on the demo's warps). Relative too, since faint
#: source wings raise every warp's on fields of little noise (2.4-3.3 on the validation's fields with
#: 100x less noise).
MAX_SKY_SCATTER = 3.0
#: A warp whose MASK names none of its bits (every nonzero pixel BAD) is refused when more than this
#: fraction of its pixels is nonzero: they cannot all be defects.
UNLABELLED_MASKED = 0.5
#: A warp whose median is this many times its pixel scatter above (or below) 0 is not sky-subtracted.
MAX_SKY_SIGMA = 5.0
#: A warp whose pixels scatter less than this times what its variance says has a variance too large
#: (4 times or more): sources only widen the scatter (1.27-2.34 over the warps of the 14 fields of
#: ``benchmarks.scenarios``, seed 1; 1.2-1.7 on 128-px fields of 20 stars, up to 52 with more or
#: brighter stars), and resampling with a propagated variance narrows it little.
MIN_NOISE_RATIO = 0.5


def mean_variance(task: VarianceTask) -> VarianceStats:
    """Clipped mean of the scaled variance over the warp's good pixels in ``task.box`` (finite
    image and variance, no bad bit), read piece by piece; the number of pixels with a finite image
    whose variance is not finite and non-negative (left out: `CoaddInput.read` makes them missing
    data); whether every good pixel's image is exactly 0; and its sums over the blocks of
    ``task.region``'s lattice (`dcrcoadd.coadd.flux_scale`)."""
    parts = []
    blocks = BlockAccumulator(task.box, task.region, task.block) if task.region is not None else None
    digest = hashlib.blake2b(digest_size=16)
    samples, rows, cols, clear = [], [], [], []  # (rows and columns in ``cells_box``; outside DETECTED)
    stride = max(1, task.box.area // CHECK_SAMPLES)
    cells_box = task.region if task.region is not None else task.box
    n_invalid = 0
    n_zero_fill = n_flat_top = n_finite = n_masked = 0
    flat_values: set[float] = set()
    all_zero = True
    for sub in task.box.subregions(task.tile_size):
        exp = task.input._read_as_is(sub)
        if exp is None:
            continue
        invalid = invalid_variance_to_missing(exp.image, exp.variance)
        if invalid is not None:  # (counted where no bad bit already excludes them: a weight map's zeros)
            n_invalid += int(np.count_nonzero(invalid & ((exp.mask & np.uint32(task.bad_mask)) == 0)))
        finite = np.isfinite(exp.image)
        n_finite += int(np.count_nonzero(finite))
        n_masked += int(np.count_nonzero(finite & ((exp.mask & np.uint32(task.bad_mask)) != 0)))
        good = good_pixels(exp.image, exp.mask, task.bad_mask) & np.isfinite(exp.variance)
        runs = zero_runs(exp.image, where=good)  # (masked zeros are missing data already)
        if runs is not None and noisy(exp.image, good & ~runs):
            n_zero_fill += int(np.count_nonzero(good & runs))
            good &= ~runs
        flat = flat_tops(exp.image, exp.variance, good)
        if flat is not None:
            flat_values.update(np.unique(exp.image[flat]).tolist())
            n_flat_top += int(np.count_nonzero(flat))
            good &= ~flat
        parts.append(exp.variance[good])
        if blocks is not None:
            blocks.add(exp.image, good, Box.from_shape(exp.image.shape, exp.origin))
        all_zero = all_zero and not np.any(exp.image[good])
        image, variance = exp.image.reshape(-1)[::stride], exp.variance.reshape(-1)[::stride]
        digest.update(image.tobytes())
        digest.update(variance.tobytes())
        ok = good.reshape(-1)[::stride] & (variance > 0)
        samples.append(image[ok] / np.sqrt(variance[ok]))
        row, col = np.divmod(np.flatnonzero(ok) * stride, exp.image.shape[1])
        rows.append(row + (exp.origin[1] - cells_box.y0))
        cols.append(col + (exp.origin[0] - cells_box.x0))
        detected = np.uint32(exp.mask_planes.value_if_present(["DETECTED"]))
        clear.append((exp.mask.reshape(-1)[::stride][ok] & detected) == 0)
    masked = n_masked / n_finite if n_finite else math.nan
    if not parts or sum(p.size for p in parts) == 0:
        return VarianceStats(None, n_invalid, False, masked=masked)
    mean_var, _, _ = clipped_mean(np.concatenate(parts), task.sigma_clip, task.clip_iter)
    scatter = sky = sky_scatter = negative = flat_sky_scatter = math.nan
    cells = None
    snr = np.concatenate(samples)
    if snr.size >= 100:
        q16, q1, median, q3 = np.percentile(snr, (15.87, 25.0, 50.0, 75.0))
        scatter = float(0.7413 * (q3 - q1))  # (the Gaussian sigma of an interquartile range)
        sky_scatter = float(median - q16)  # (one Gaussian sigma below the median)
        sky = float(median / scatter) if scatter > 0 else math.nan
        negative = float(np.count_nonzero(snr < 0) / snr.size)
        grid = cell_grid(cells_box.shape, min(cells_box.area, CHECK_SAMPLES))
        if grid != (1, 1):
            row, col = np.concatenate(rows), np.concatenate(cols)
            # (sources' wings, wider or narrower with the seeing, moved the low side of a crowded field's
            # cells by 1-2 times the noise from warp to warp: the sky is measured outside DETECTED when the
            # warps say where that is)
            use = np.concatenate(clear)
            if np.count_nonzero(use) < use.size // 4:
                use[:] = True
            cells = cell_sky_levels(snr[use], row[use], col[use], cells_box.shape, grid)
            flat = less_cell_levels(snr, row, col, cells_box.shape, cells)
            q16, median = np.percentile(flat, (15.87, 50.0))
            flat_sky_scatter = float(median - q16)
    return VarianceStats(mean_var, n_invalid, all_zero, scatter, sky,
                         blocks.result(mean_var) if blocks is not None and mean_var > 0 else None,
                         sky_scatter, "" if isinstance(task.input.source, Exposure) else digest.hexdigest(),
                         n_zero_fill, negative, tuple(sorted(flat_values)), n_flat_top, masked, cells,
                         flat_sky_scatter)


# -- preparation -----------------------------------------------------------------------------------

def physical_memory() -> int | None:
    """This machine's physical memory in bytes (None where the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def _check_fits_in_memory(box: Box, config: Config) -> None:
    """`InputError` for a coadd region whose outputs alone exceed this machine's memory: a run of it
    can only fail, after its warps were read (a 100 000² px box ran out of memory)."""
    memory = physical_memory()
    need = box.area * (COADD_BYTES_PER_PIXEL + MODEL_BYTES_PER_PIXEL * config.dcr.dcr_num_subfilters)
    if memory is not None and need > memory:
        raise InputError(f"needs at least {need / 2**30:.1f} GiB for its coadd and model, more than this "
                         f"machine's {memory / 2**30:.1f} GiB: cut it into patches (dcrcoadd survey), or "
                         "check the box (pixels, not arcsec?)", f"coadd region {box.width}x{box.height} px")


def prepare_inputs(warps, config: Config | None = None, *, bbox: Box | None = None, margin: int = 0,
                   mapper: Mapper | None = None) -> PreparedInputs:
    """Validate the warps, measure their weights and flux scales (LSST ``prepareInputs``).

    Parameters
    ----------
    warps : sequence of path-like or Exposure
    config : Config, optional
    bbox : Box, optional
        Coadd region in the parent grid; default the union of the warps' boxes. Warps that
        overlap it only partly are fine; warps outside it are skipped.
    margin : int
        Also take up to this many pixels beyond ``bbox`` where the warps have data: ``bbox`` of
        the result is then the grown box, and ``region`` the box asked for.
    mapper : Mapper, optional
        Measures the warps' variances (`dcrcoadd.parallel`); default serial.

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
    options = ReadOptions.from_config(config.inputs)
    described = reconcile_calibration([describe(w, i, options) for i, w in enumerate(warps)])
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
                # (one warp per visit: a visit twice would count twice; its CCDs, `dcrcoadd warp` combines)
                raise InputError(f"repeats visit {inp.visit.id} of {seen[inp.visit.id]} (one warp per visit: "
                                 "dcrcoadd warp combines the CCD files of a visit into one)", inp.name)
            seen[inp.visit.id] = inp.name
    box = bbox if bbox is not None else union
    if box.is_empty:
        raise InputError(f"coadd region {box} is empty")
    if not box.overlaps(union):  # (one line, not a warning per warp and then an error)
        raise InputError(f"coadd region {box} does not overlap the warps, which cover {union} of the parent "
                         "grid (parent pixels, as the warps' LTV cards place them; not pixels of one warp)")
    _check_fits_in_memory(box, config)
    outside = box.area - box.intersection(union).area
    if outside > 0:  # (a deliberate patch box may overhang its warps; a mistyped one should not go unseen)
        log.warning("the coadd region %s reaches beyond the warps (%s): %.0f%% of it has no data (NO_DATA)",
                    box, union, 100.0 * outside / box.area)
    region = None
    if margin > 0:
        grown = box.union(box.grow(margin).intersection(union))
        if grown != box:
            region, box = box, grown
    planes = common_planes(described, config)
    bad = planes.value_if_present(config.effective_bad_mask_planes())
    c = config.coadd
    tasks: dict[int, VarianceTask] = {}
    widths = [inp.psf_fwhm for inp in described if math.isfinite(inp.psf_fwhm)]
    block = block_size(box, max(widths, default=math.nan))
    for i, inp in enumerate(described):
        inp.planes = planes
        inp.scale = inp.flux_calibration  # image units -> nJy
        overlap = box.intersection(inp.bbox)
        # (a warp with pixels in the margin only adds nothing to the region's outputs)
        if not overlap.is_empty and (region is None or region.overlaps(inp.bbox)):
            tasks[i] = VarianceTask(inp.restricted(overlap), overlap, bad, tuple(c.subregion_size),
                                    c.sigma_clip, c.clip_iter, box, block)
    variances = run_tasks(mean_variance, tasks, mapper)
    kept: list[CoaddInput] = []
    blocks: list[BlockFlux | None] = []
    skipped: list[tuple[str, str]] = []
    fingerprints: dict[str, CoaddInput] = {}
    sky_scatters = [v.sky_scatter for v in variances.values() if math.isfinite(v.sky_scatter)]
    typical = float(np.median(sky_scatters)) if len(sky_scatters) >= 3 else math.inf
    empty = VarianceStats(None, 0, False)
    sky_variation, typical_variation = own_sky_variation(
        [variances.get(i, empty).sky_cells for i in range(len(described))],
        [math.sqrt(variances.get(i, empty).mean or math.nan) * inp.scale for i, inp in enumerate(described)])
    for i, inp in enumerate(described):
        stats = variances.get(i, empty)
        inp.sky_variation = sky_variation[i]
        # (beyond what sources' wings make of the other warps' skies too: up to 0.6 on the demo's)
        uneven = sky_variation[i] >= SKY_VARIATION_WARN * max(1.0, 3.0 * typical_variation) \
            if math.isfinite(typical_variation) else sky_variation[i] >= SKY_VARIATION_WARN
        uneven_sky = (f"its sky varies by {sky_variation[i]:.1f} times its pixel noise across the region"
                      f"{' (beyond what the other warps share)' if len(sky_scatters) >= 3 else ''}: a "
                      "background left in, or scattered light?")
        if inp.info is not None and inp.info.unlabelled_mask and stats.masked > UNLABELLED_MASKED:
            # (simulated warps' masks without their cards: DETECTED on 87-97 % of the pixels left the
            # coadd 87 % NO_DATA, with a warning that blamed the warps' footprints)
            raise InputError(f"its MASK extension has no MP_<PLANE> cards to say what its bits mean, so "
                             f"every nonzero pixel is taken as BAD, but {100 * stats.masked:.0f} % of its "
                             "pixels are nonzero: they cannot all be bad (a plane of detected sources?); add "
                             "MP_<PLANE> cards naming its bits (MP_BAD = 0, MP_DETECTED = 5, ...)", inp.name)
        if stats.n_invalid:
            log.warning("%s: %d pixels have an infinite, NaN or negative variance under a finite image: "
                        "treated as missing data", inp.name, stats.n_invalid)
        weight, reason = _weight(inp, i in tasks, stats.mean, region or box, c.do_airmass_weight)
        if not reason and stats.all_zero:
            reason = "its image is exactly 0 at every good pixel (a fill for missing data, not data)"
        if not reason and stats.scatter > MAX_NOISE_RATIO:
            reason = (f"its pixels scatter {stats.scatter:.3g} times more than its variance says (a variance "
                      "map given as a weight map, or a variance in other units than the image?): its weight "
                      "would swamp the other warps'")
        if not reason and stats.sky_scatter > MAX_SKY_SCATTER * max(1.0, typical) and uneven \
                and stats.flat_sky_scatter <= MAX_SKY_SCATTER * max(1.0, typical):
            # (a gradient of 10 times the noise across one warp in six was blamed on its variance plane)
            reason = (f"{uneven_sky} It widens its sky pixels' scatter to {stats.sky_scatter:.3g} times what "
                      f"its variance says ({stats.flat_sky_scatter:.3g} without it, {typical:.3g} for the "
                      "warps' median), and its weight's share of it would be in every product: subtract its "
                      "background first")
        if not reason and stats.sky_scatter > MAX_SKY_SCATTER * max(1.0, typical):
            reason = (f"its sky pixels scatter {stats.sky_scatter:.3g} times what its variance says, against "
                      f"{typical:.3g} for the warps' median (a variance plane holding sigma, or in other "
                      f"units than the image?): its weight would be about "
                      f"{(stats.sky_scatter / typical) ** 2:.0f} times too high")
        if not reason and stats.fingerprint and stats.fingerprint in fingerprints:
            first = fingerprints[stats.fingerprint]
            reason = (f"its pixels are those of {first.name} (one exposure under two visit ids, "
                      f"{first.visit_id} and {inp.visit_id}?): it would count twice")
        if not reason and abs(stats.sky) > MAX_SKY_SIGMA:
            log.warning("%s: its median is %.1f times its pixel noise %s 0: it does not look sky-subtracted; "
                        "the coadds, model and templates carry its sky (subtract the background first)",
                        inp.name, abs(stats.sky), "above" if stats.sky > 0 else "below")
        if reason:
            log.warning("skipping %s: %s", inp.name, reason)
            skipped.append((inp.name, reason))
            continue
        if stats.scatter < MIN_NOISE_RATIO and abs(stats.sky) <= MAX_SKY_SIGMA and stats.negative >= 0.1:
            # (a noiseless simulation has no pixel below 0: its scatter says nothing of its variance)
            log.warning("%s: its pixels scatter %.2g times what its variance says (1 when the variance is "
                        "its noise; sources only widen the scatter): its variance looks %.0f times too large "
                        "(in other units than the image?), and the coadd's and templates' variances with it",
                        inp.name, stats.scatter, stats.scatter ** -2)
        if uneven:
            log.warning("%s: %s The coadds, the DCR model and its templates carry its weight's share of it "
                        "(subtract its background first)", inp.name, uneven_sky)
        if stats.n_zero_fill:
            log.warning("%s: %d pixels are exact zeros in rows or columns of %d or more, amid noise, with "
                        "no mask bit and a finite variance: a fill where it has no data, treated as missing "
                        "data",
                        inp.name, stats.n_zero_fill, ZERO_RUN)
            inp.zero_fill = True
        if stats.flat_tops:
            log.warning("%s: %d pixels of saturated-looking cores without a SAT bit (connected pixels of "
                        "exactly one value far above the noise, e.g. %.6g): masked as SAT", inp.name,
                        stats.n_flat_top, stats.flat_tops[0])
            inp.flat_tops = stats.flat_tops
        inp.weight = weight
        fingerprints.setdefault(stats.fingerprint, inp)
        log.info("weight of %s = %.6g (scale %.6g)", inp.name, weight, inp.scale)
        kept.append(inp)
        # (a warp with its sky in it, or of constant pixels, has block sums that are no flux of sources)
        blocks.append(stats.blocks if math.isfinite(stats.sky) and abs(stats.sky) <= MAX_SKY_SIGMA else None)
    kept = _check_flux_scales(kept, blocks, box, block, skipped)
    if not kept:
        details = "; ".join(f"{n}: {r}" for n, r in skipped)
        raise InputError(f"no warp has usable pixels in {region or box} ({details})")
    if config.inputs.measure_psf:
        check_psfs_against_stars(kept, box, bad)
        measure_missing_psfs(kept, box, bad)
    if config.artifacts.enabled:
        for inp in kept:
            if inp.psf is None:
                raise InputError("has no PSF (no PSF extension, and none measured from its stars); "
                                 "compare-warp artifact rejection needs one per warp "
                                 "(or set artifacts.enabled = false)",
                                 inp.name)
    wcs = None if ref.wcs is None else shift_wcs(ref.wcs, -box.x0, -box.y0)
    return PreparedInputs(kept, box, wcs, planes, ref.band, ref.bandpass, skipped, region,
                          overhang=outside / (region or box).area)


def _check_flux_scales(inputs: list[CoaddInput], blocks: list[BlockFlux | None], box: Box, block: int,
                       skipped: list[tuple[str, str]]) -> list[CoaddInput]:
    """``inputs`` without those whose fluxes disagree with the others' by more than a factor
    `flux_scale.MAX_FLUX_RATIO` (a flux calibration in the wrong unit), each skipped with a warning
    and added to ``skipped``.

    Raises `InputError` when the others cannot outvote them: two warps that disagree, or half of the
    warps or more off (no majority scale to trust).
    """
    measured = [(inp, b) for inp, b in zip(inputs, blocks, strict=True) if b is not None]
    if len(measured) < 2:
        return inputs
    scales = dict(zip((id(inp) for inp, _ in measured),
                      relative_flux_scales([b for _, b in measured], box, block), strict=True))
    ratios = [s.ratio for s in scales.values() if math.isfinite(s.ratio)]
    if ratios:
        log.info("warps' fluxes against the median of all, in bright blocks: %.3f to %.3f (%d warps)",
                 min(ratios), max(ratios), len(ratios))
    off = [(inp, scales[id(inp)]) for inp, _ in measured if is_off(scales[id(inp)])]
    for inp, _ in measured:
        s = scales[id(inp)]
        if is_off(s, WARN_FLUX_RATIO) and not is_off(s):
            log.warning("%s: %s: %s", inp.name, fluxes_against(s, "the other warps'"), CHECK_CALIBRATION)
    if not off:
        return inputs
    uncalibrated = all(inp.info is not None and inp.info.flux_calibration is None for inp in inputs)
    if 2 * len(off) >= len(ratios):
        listing = ", ".join(f"{inp.name} {times(s.ratio)}x" for inp, s in off)
        against = "each against the other" if len(ratios) == 2 else "against the median of all"
        cause = ("none has a flux calibration, and their image units differ (other exposure times or gains? "
                 "add FLUXCAL)" if uncalibrated else
                 "their flux calibrations (FLUXCAL, MAGZERO or FLUXMAG0) are not on one scale")
        raise InputError(f"the warps disagree on flux by more than {MAX_FLUX_RATIO:g}x in bright blocks "
                         f"({against}: {listing}), and too few agree to tell which are right: {cause}",
                         off[0][0].name)
    for inp, s in off:
        card = getattr(inp.info, "calibration_card", None)
        reason = (fluxes_against(s, "the other warps'") + ": "
                  + ("none of the warps has a flux calibration, so their image units must agree (another "
                     "exposure time or gain? add FLUXCAL)" if uncalibrated else
                     calibration_looks_wrong(card, inp.flux_calibration))
                  + (" Or clouds hid its sources." if s.ratio < 1 else ""))
        log.warning("skipping %s: %s", inp.name, reason)
        skipped.append((inp.name, reason))
    dropped = {id(inp) for inp, _ in off}
    return [inp for inp in inputs if id(inp) not in dropped]


def measure_missing_psfs(inputs: Sequence[CoaddInput], box: Box, bad: int) -> None:
    """Give every input without a PSF of its own (none, or only a seeing card's Gaussian) the PSF of
    its bright isolated stars inside ``box``, measured across its DCR direction
    (`dcrcoadd.ops.psf_measure.measure_psf`), with a warning. ``bad``: mask bits whose pixels no
    star stamp may touch.

    An input with too few isolated stars keeps its seeing card's Gaussian; without one it starts
    from the measured PSF of median width among the others (the DCR model's fits then make it its
    own, `dcrcoadd.dcr.psf_refit`), or, when no input could be measured, stays without a PSF.
    """
    failed = []
    for inp in inputs:
        if inp.psf_origin not in (None, "seeing card"):
            continue
        exp = inp.read(box)
        try:
            psf = measure_psf_across_dcr(exp, inp.bandpass, (exp.mask & bad) != 0, inp.name)
        except ValueError as exc:
            failed.append((inp, str(exc)))
            continue
        log.warning("%s: no PSF extension; measured one from its bright isolated stars across the DCR "
                    "direction: FWHM %.2f px", inp.name, psf.fwhm)
        inp.psf, inp.psf_origin = psf, "measured"
    measured = sorted((inp.psf for inp in inputs if inp.psf_origin == "measured"), key=lambda p: p.fwhm)
    for inp, why in failed:
        if inp.psf is not None:
            log.warning("%s: no PSF extension, and none could be measured from its stars (%s): its seeing "
                        "card's Gaussian", inp.name, why)
        elif measured:
            inp.psf, inp.psf_origin = measured[len(measured) // 2], "measured"
            log.warning("%s: no PSF extension, and none could be measured from its stars (%s): starting "
                        "from the others' median (FWHM %.2f px), to be fitted against the DCR model",
                        inp.name, why, inp.psf.fwhm)
        else:
            log.warning("%s: no PSF extension, and none could be measured from its stars (%s)", inp.name, why)


#: A given PSF whose FWHM is this many times its stars' (measured across the DCR direction), or less
#: than its inverse, is not the exposure's (an oversampled PSF image, another exposure's). On the
#: scenario fields (`benchmarks.scenarios`' 256² simulations, seeing to 1.6"), no true PSF of the 486
#: warps of seeds 1-3 is flagged (within 0.98-1.12 of their stars' where measured), and PSFs twice too
#: wide or too narrow are on 112 of seed 1's 162 (the others have too few isolated stars to tell). It was
#: 1.5: a science PSF 1.2 and 1.4 times its stars' left 29 and 46 false detections in a simulated field's
#: difference (2 once replaced), a warp's 1.15 times 14 and 7 in its model's templates, without a word.
PSF_STAR_MISMATCH = 1.2
#: The largest square (px a side) about a region's centre whose stars `psf_against_stars` measures.
PSF_CHECK_SIZE = 1024


def central_box(box: Box, size: int = PSF_CHECK_SIZE) -> Box:
    """The part of ``box`` at most ``size`` px a side about its centre."""
    width, height = min(box.width, size), min(box.height, size)
    return Box(box.x0 + (box.width - width) // 2, box.y0 + (box.height - height) // 2, width, height)


def psf_against_stars(exposure: Exposure, psf: Psf, bandpass: Bandpass | None, bad: np.ndarray,
                      name: str) -> Psf | None:
    """The PSF of ``exposure``'s stars (`measure_psf_across_dcr`) when ``psf``'s FWHM is more than
    `PSF_STAR_MISMATCH` times theirs either way, with a warning; None when the two agree or too few
    stars are isolated to tell."""
    # stamps of at least 5 FWHM of the stars: 25-px ones cut the wings of an 8-px seeing, whose stars
    # then measured 1.22 times narrower than their PSF (sized from the given PSF instead, a wide one
    # left too few isolated stars to tell)
    size, measured = 25, None
    for _ in range(3):
        try:
            measured = measure_psf_across_dcr(exposure, bandpass, bad, name, size=size)
        except ValueError:
            return None  # (too few isolated stars, at this size: it cannot tell)
        if 5 * measured.fwhm <= size:
            break
        size = 2 * math.ceil(2.5 * measured.fwhm) + 1
    else:
        return None
    ratio = psf.fwhm / measured.fwhm
    if 1 / PSF_STAR_MISMATCH <= ratio <= PSF_STAR_MISMATCH:
        return None
    log.warning("%s: its PSF (FWHM %.2f px) is %.2g times %s than its stars' (%.2f px, measured across the "
                "DCR direction): an oversampled PSF image, or another exposure's? Its stars' PSF is used "
                "instead", name, psf.fwhm, max(ratio, 1 / ratio), "wider" if ratio > 1 else "narrower",
                measured.fwhm)
    return measured


def check_psfs_against_stars(inputs: Sequence[CoaddInput], box: Box, bad: int) -> None:
    """Replace each given PSF (`GIVEN_PSF_ORIGINS`) that `psf_against_stars` finds is not its warp's
    by the measured one (to be fitted against the DCR model, as other measured PSFs are); the stars
    are those of the central `PSF_CHECK_SIZE` px of ``box``."""
    for inp in inputs:
        region = central_box(box.intersection(inp.bbox))
        if inp.psf is None or inp.psf_origin not in GIVEN_PSF_ORIGINS or region.is_empty:
            continue
        exp = inp.read(region)
        measured = psf_against_stars(exp, inp.psf, inp.bandpass, (exp.mask & bad) != 0, inp.name)
        if measured is not None:
            inp.psf, inp.psf_origin = measured, "measured"


def measure_psf_across_dcr(exposure: Exposure, bandpass: Bandpass | None, bad: np.ndarray, name: str,
                           size: int = 25) -> Psf:
    """The PSF of ``exposure``'s bright isolated stars in ``size``-px stamps, measured across its DCR
    direction (`dcrcoadd.ops.psf_measure.measure_psf`; stacked the usual way, without the DCR
    geometry). ``bad``: pixels no stamp may touch. Raises ValueError when too few stars qualify."""
    direction = None
    if exposure.visit is not None and exposure.wcs is not None and bandpass is not None:
        try:
            direction = dcr_direction(exposure.visit.completed(), exposure.wcs, bandpass)
        except (InputError, ValueError) as exc:
            log.info("%s: no DCR direction for its PSF measurement (%s)", name, exc)
    return measure_psf(exposure.image, exposure.variance, bad, size=size, dcr_direction=direction)


def _weight(inp: CoaddInput, overlaps: bool, mean_var: float | None, box: Box,
            airmass_weight: bool) -> tuple[float, str]:
    """``(weight, "")``, or ``(nan, why the warp is skipped)``."""
    if not overlaps:
        return math.nan, f"does not overlap the coadd region {box}"
    if mean_var is None:
        return math.nan, "no usable pixels (all NaN or masked)"
    if not mean_var > 0:
        return math.nan, f"its clipped mean variance is {mean_var:.3g}, not positive"
    weight = 1.0 / mean_var
    if not (math.isfinite(weight) and weight > 0):
        return math.nan, f"non-finite weight (mean variance {mean_var:.3g})"
    if airmass_weight:
        airmass = inp.airmass
        if not math.isfinite(airmass):
            raise InputError("has no airmass, needed by do_airmass_weight", inp.name)
        weight *= airmass
    return weight, ""


__all__ = ["COADD_PLANES", "GIVEN_PSF_ORIGINS", "CoaddInput", "PreparedInputs", "VarianceTask",
           "common_planes", "describe", "VarianceStats", "configured_planes", "invalid_variance_to_missing",
           "mean_variance", "prepare_inputs"]
