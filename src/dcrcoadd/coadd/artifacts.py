"""Compare-warp transient artifact rejection (LSST ``CompareWarpAssembleCoaddTask``).

Steps, as LSST does them:

1. PSF-match every warp to one common Gaussian model PSF and stack the PSF-matched
   warps into a static-sky model (clipped mean, NO_DATA the only bad plane,
   variance from the scatter) — `build_static_sky`.
2. For each warp, detect significant pixels of ``(PSF-matched warp - static sky)``
   in units of its own per-pixel noise, both polarities merged into footprints,
   at least ``min_pixels`` pixels, grown by ``n_sigma_to_grow`` PSF sigmas.
   Candidates mostly covered by NO_DATA/BAD/SAT/SUSPECT are dropped
   (`prefilter_artifacts`), and each warp's remaining footprints add one to an
   epoch-count image — `find_artifacts`.
3. A candidate is transient, and clipped, when more than ``spatial_threshold``
   of its pixels are outliers in between one and the effective maximum number of
   epochs ``int(min(0.4 N, 2 + 0.03 N))``, ``N`` the mean local number of epochs;
   candidates entirely inside one static-sky source footprint are kept —
   `filter_artifacts`. A source displaced by DCR in many epochs is persistent and
   survives; one displaced beyond its static-sky footprint only in the few most
   extreme-airmass visits is clipped there, as in LSST, which is why CLIPPED must
   not be a bad plane for the DCR model.
4. Each warp gets an `ArtifactMask`: CLIPPED (its clipped footprints), NO_DATA
   (pixels the PSF-matched warp could not cover) and EDGE (pixels whose
   PSF-matching kernel reached missing data); the coadd applies it before stacking.

PSF matching, an approximation: LSST PSF-matches the calexps with a fitted kernel
before warping. Here each warp is convolved with a Gaussian of sigma
``sqrt(s_model^2 - s_i^2)``, with ``s_i`` the Gaussian-equivalent sigma of the warp's PSF
kernel from its noise-equivalent area (`Psf.noise_equivalent_sigma`, not the FWHM: see
`dcrcoadd.core.psf`) and ``s_model`` that of the widest input broadened by a 1-pixel-sigma
Gaussian (or ``model_psf_fwhm``). Matched PSFs agree exactly only for Gaussian inputs;
otherwise their cores agree and their wings differ
(the static sky's scatter-based variance absorbs that near bright stars). Missing or
bad pixels are handled by normalized convolution (``conv(x v) / conv(v)`` with ``v`` the valid
pixels, variance ``conv(var v, k^2) / conv(v)^2``, exact for independent noise).
A matched pixel is NaN when less than half of its kernel weight falls on pixels
with data; LSST's PSF-matched warps instead lose a full kernel half-width at every
data edge (and the coadd loses it too), which this keeps, marking it EDGE. Artifacts
are not searched where more than 1% of the kernel weight fell on missing or bad pixels
(normalized convolution cannot reproduce a star under a bad column), which LSST cannot
search either.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy import ndimage

from dcrcoadd.config.schema import Config
from dcrcoadd.core.exposure import Exposure
from dcrcoadd.core.geom import Box
from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.core.psf import Psf
from dcrcoadd.ops.detection import detect
from dcrcoadd.ops.stack import clipped_mean, make_control, stack

log = logging.getLogger("dcrcoadd.coadd.artifacts")

#: Kernel-weight fraction on pixels with data below which a PSF-matched pixel is NaN.
MIN_DATA_COVERAGE = 0.5
#: Sigma (pixels) of the smallest matching kernel with the default model PSF.
MIN_MATCHING_SIGMA = 1.0
#: Kernel-weight fraction on valid pixels below which a pixel is not searched for artifacts:
#: normalized convolution cannot reproduce a source under a bad column or at a data edge.
DETECTION_MIN_COVERAGE = 0.99
#: Planes LSST's ScaleVarianceTask ignores.
SCALE_VARIANCE_IGNORE = ("DETECTED", "DETECTED_NEGATIVE", "BAD", "SAT", "NO_DATA", "INTRP")
#: LSST ScaleVarianceConfig.limit: larger factors are not applied.
SCALE_VARIANCE_LIMIT = 10.0


class WarpSource(Protocol):
    """What compare-warp needs of a warp (`dcrcoadd.coadd.baseline.CoaddInput` provides it)."""

    name: str
    bbox: Box
    psf: Psf | None
    weight: float

    def read(self, box: Box) -> Exposure | None:
        """Flux-scaled pixels inside ``box`` (clipped to the warp), masks in the common planes."""


# -- sparse pixel sets and alternative masks -----------------------------------------------------

@dataclass(frozen=True)
class PixelSet:
    """A set of parent-grid pixels inside ``bbox``, stored as sorted flat indices."""

    bbox: Box
    index: np.ndarray

    @classmethod
    def empty(cls, bbox: Box) -> PixelSet:
        return cls(bbox, np.zeros(0, np.int64))

    @classmethod
    def from_mask(cls, mask: np.ndarray, box: Box, bbox: Box) -> PixelSet:
        """Pixels where the boolean ``mask`` (covering ``box``, inside ``bbox``) is true."""
        y, x = np.nonzero(mask)
        index = (y + (box.y0 - bbox.y0)).astype(np.int64) * bbox.width + (x + (box.x0 - bbox.x0))
        return cls(bbox, index)

    @classmethod
    def union(cls, bbox: Box, sets: Sequence[PixelSet]) -> PixelSet:
        parts = [s.index for s in sets if len(s)]
        if not parts:
            return cls.empty(bbox)
        return cls(bbox, np.unique(np.concatenate(parts)))

    def __len__(self) -> int:
        return int(self.index.size)

    def to_mask(self, box: Box) -> np.ndarray:
        """Boolean array over ``box`` (any box of the parent grid), true on this set's pixels."""
        out = np.zeros(box.shape, dtype=bool)
        if not len(self):
            return out
        y, x = np.divmod(self.index, self.bbox.width)
        y = y + (self.bbox.y0 - box.y0)
        x = x + (self.bbox.x0 - box.x0)
        inside = (y >= 0) & (y < box.height) & (x >= 0) & (x < box.width)
        out[y[inside], x[inside]] = True
        return out


@dataclass
class ArtifactMask:
    """Alternative mask planes for one warp (LSST's ``altMaskSpans``).

    Attributes
    ----------
    name : str
        The warp it belongs to.
    planes : dict of str to PixelSet
        ``CLIPPED`` (transient artifacts), ``NO_DATA`` (not covered by the PSF-matched
        warp), ``EDGE`` (PSF matching reached missing data).
    n_candidates, n_clipped : int
        Artifact candidates after the prefilter, and footprints clipped.
    """

    name: str
    planes: dict[str, PixelSet] = field(default_factory=dict)
    n_candidates: int = 0
    n_clipped: int = 0

    def apply(self, mask: np.ndarray, box: Box, planes: MaskPlanes, bad_mask: int) -> None:
        """Apply in place to ``mask`` (over ``box``, bits of ``planes``), as LSST's ``applyAltMaskPlanes``
        with PSF-matched polygons: bad bits are first cleared inside the NO_DATA region, so those
        pixels count as missing rather than rejected; then each plane is set."""
        no_data = self.planes.get("NO_DATA")
        if no_data is not None and len(no_data) and bad_mask & planes.value_if_present(["NO_DATA"]):
            where = no_data.to_mask(box)
            mask[where] &= np.uint32(~bad_mask & 0xFFFFFFFF)
        for plane, pixels in self.planes.items():
            if len(pixels):
                mask[pixels.to_mask(box)] |= np.uint32(planes.value(plane))

    def to_mask(self, box: Box, planes: MaskPlanes) -> np.ndarray:
        """uint32 mask over ``box`` with only this alternative mask's planes set."""
        out = np.zeros(box.shape, np.uint32)
        for plane, pixels in self.planes.items():
            out[pixels.to_mask(box)] |= np.uint32(planes.value(plane))
        return out


# -- PSF matching ----------------------------------------------------------------------------------

def gaussian_kernel1d(sigma: float) -> np.ndarray:
    """Normalized 1-d Gaussian sampled at integer offsets, truncated at ``ceil(4 sigma)``; ``[1]`` for 0."""
    if not sigma > 0:
        return np.ones(1)
    r = int(math.ceil(4.0 * sigma))
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def model_sigma(psfs: Sequence[Psf], model_psf_fwhm: float | None = None) -> float:
    """Gaussian-equivalent sigma (pixels, `Psf.noise_equivalent_sigma` terms) of the common model PSF.

    By default the widest input broadened by a Gaussian of `MIN_MATCHING_SIGMA`, so that
    every warp, the worst-seeing one included, is smoothed a little (as LSST's model PSF is
    wider than its inputs): smoothing raises the per-pixel significance of extended
    artifacts such as faint trails. A requested ``model_psf_fwhm`` is used if it is wider
    than the widest input, else the widest input.
    """
    worst = max(p.noise_equivalent_sigma for p in psfs)
    if model_psf_fwhm is None:
        return math.hypot(worst, MIN_MATCHING_SIGMA)
    requested = model_psf_fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    if requested < worst:
        log.warning("model_psf_fwhm %.3f px is narrower than the widest input PSF (Gaussian-equivalent "
                    "FWHM %.3f px from its noise-equivalent area); using the latter",
                    model_psf_fwhm, worst * 2.0 * math.sqrt(2.0 * math.log(2.0)))
        return worst
    return requested


def matching_sigma(psf: Psf, target_sigma: float) -> float:
    """Sigma of the Gaussian that convolves ``psf`` to Gaussian-equivalent sigma ``target_sigma``
    (sizes from `Psf.noise_equivalent_sigma`; exact when ``psf`` is Gaussian)."""
    return math.sqrt(max(target_sigma**2 - psf.noise_equivalent_sigma ** 2, 0.0))


def kernel_radius(sigma: float) -> int:
    """Half-width in pixels of the matching kernel (`gaussian_kernel1d`)."""
    return gaussian_kernel1d(sigma).size // 2


def _separable(arr: np.ndarray, g: np.ndarray) -> np.ndarray:
    if g.size == 1:
        return arr.astype(np.float32, copy=True)
    out = ndimage.correlate1d(arr, g, axis=0, mode="constant", cval=0.0, output=np.float32)
    return ndimage.correlate1d(out, g, axis=1, mode="constant", cval=0.0, output=np.float32)


def _edge_sums(g: np.ndarray, n: int) -> np.ndarray:
    """``correlate1d(ones(n), g, mode="constant")``: the kernel weight falling inside ``[0, n)``."""
    if g.size == 1:
        return np.ones(n)
    return ndimage.correlate1d(np.ones(n), g, mode="constant", cval=0.0)


@dataclass
class Matched:
    """A PSF-matched region: image and variance (NaN where undefined), and the kernel-weight
    fractions on pixels with data (``coverage``) and on valid pixels (``valid_coverage``)."""

    image: np.ndarray
    variance: np.ndarray
    coverage: np.ndarray
    valid_coverage: np.ndarray


def psf_match(image: np.ndarray, variance: np.ndarray, has_data: np.ndarray, valid: np.ndarray,
              sigma: float) -> Matched:
    """Convolve a region with a Gaussian of ``sigma`` by normalized convolution.

    Parameters
    ----------
    image, variance : ndarray
        The region's pixels; the array boundary is treated as the end of the data, not as
        missing data.
    has_data : ndarray of bool
        Pixels with data (finite, not NO_DATA).
    valid : ndarray of bool
        Pixels whose values may be used (``has_data`` without bad pixels).
    sigma : float
        Matching Gaussian sigma in pixels (0: no convolution).

    Returns
    -------
    Matched
        ``coverage`` is the kernel-weight fraction on pixels with data (1 in the interior).
    """
    g = gaussian_kernel1d(sigma)
    # conv(ones) is separable: the outer product of the 1-d sums of the kernel inside the array.
    norm = np.outer(_edge_sums(g, image.shape[0]), _edge_sums(g, image.shape[1])).astype(np.float32)
    # The denominator is always convolved (never replaced by ``norm`` for an all-valid region), so
    # a pixel's value depends only on its kernel window, bit for bit, whatever region was read.
    den = _separable(valid.astype(np.float32), g)
    if bool(has_data.all()):
        coverage = np.ones(image.shape, np.float32)
    elif np.array_equal(has_data, valid):
        coverage = den / norm
    else:
        coverage = _separable(has_data.astype(np.float32), g) / norm
    num = _separable(np.where(valid, image, 0.0).astype(np.float32), g)
    vnum = _separable(np.where(valid, variance, 0.0).astype(np.float32), g * g)
    ok = (coverage >= MIN_DATA_COVERAGE) & (den > 1e-6 * norm)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(ok, num / den, np.nan).astype(np.float32)
        var = np.where(ok, vnum / (den * den), np.nan).astype(np.float32)
    return Matched(out, var, coverage, den / norm)


def _match_warp(warp: WarpSource, box: Box, sigma: float, planes: MaskPlanes, invalid_mask: int):
    """Read ``warp`` around ``box`` (grown by the kernel radius) and PSF-match it.

    Returns ``(crop, exposure_crop, matched_crop)`` with ``crop = box ∩ warp.bbox``, or None
    when they do not overlap.
    """
    crop = box.intersection(warp.bbox)
    if crop.is_empty:
        return None
    region = crop.grow(kernel_radius(sigma)).intersection(warp.bbox)
    exp = warp.read(region)
    if exp is None:
        return None
    no_data = planes.value_if_present(["NO_DATA"])
    has_data = np.isfinite(exp.image) & ((exp.mask & np.uint32(no_data)) == 0)
    valid = has_data & ((exp.mask & np.uint32(invalid_mask)) == 0)
    matched = psf_match(exp.image, exp.variance, has_data, valid, sigma)
    sl = crop.slices(region)
    m = Matched(matched.image[sl], matched.variance[sl], matched.coverage[sl], matched.valid_coverage[sl])
    return crop, exp.subexposure(crop), m


# -- static sky ------------------------------------------------------------------------------------

def build_static_sky(warps: Sequence[WarpSource], bbox: Box, planes: MaskPlanes, config: Config,
                     target_sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Static-sky model: the clipped-mean stack of the PSF-matched warps over ``bbox``.

    Streams over ``config.coadd.subregion_size`` subregions; each warp is read with a
    buffer of its kernel radius, so the result does not depend on the tiling.

    Returns
    -------
    image, variance : ndarray of float32 over ``bbox``
    """
    ss = config.artifacts.assemble_static_sky_model
    control = make_control(planes, statistic=ss.statistic, bad_mask_planes=ss.bad_mask_planes,
                           sigma_clip=ss.sigma_clip, clip_iter=ss.clip_iter,
                           calc_error_from_input_variance=ss.calc_error_from_input_variance)
    invalid = planes.value_if_present(config.effective_bad_mask_planes())
    sigmas = [matching_sigma(w.psf, target_sigma) for w in warps]
    # Matched-warp weights: 1 / mean matched variance, which is the direct one times sum(k^2).
    weights = np.array([w.weight / (np.sum(gaussian_kernel1d(s) ** 2) ** 2) for w, s in zip(warps, sigmas,
                                                                                           strict=True)])
    image = np.full(bbox.shape, np.nan, np.float32)
    variance = np.full(bbox.shape, np.nan, np.float32)
    nodata = np.uint32(planes.value_if_present(["NO_DATA"]))
    for sub in bbox.subregions(tuple(config.coadd.subregion_size)):
        n = len(warps)
        imgs = np.full((n,) + sub.shape, np.nan, np.float32)
        vars_ = np.full((n,) + sub.shape, np.nan, np.float32)
        masks = np.full((n,) + sub.shape, nodata, np.uint32)
        for i, (warp, s) in enumerate(zip(warps, sigmas, strict=True)):
            got = _match_warp(warp, sub, s, planes, invalid)
            if got is None:
                continue
            crop, exp, m = got
            sl = crop.slices(sub)
            imgs[i][sl] = m.image
            vars_[i][sl] = m.variance
            masks[i][sl] = exp.mask | np.where(np.isfinite(m.image), np.uint32(0), nodata)
        res = stack(imgs, vars_, masks, weights, control)
        sl = sub.slices(bbox)
        image[sl] = res.image
        variance[sl] = res.variance
    return image, variance


# -- detection and filtering -----------------------------------------------------------------------

def scale_variance_factor(image: np.ndarray, variance: np.ndarray, mask: np.ndarray,
                          ignore_mask: int) -> float:
    """LSST ScaleVarianceTask's pixel-based factor: ``(0.74 IQR(image / sqrt(var)))^2`` over
    unmasked pixels with positive variance; 1 with fewer than two such pixels."""
    return _scale_factor(image, variance, (mask & np.uint32(ignore_mask)) == 0)


def _scale_factor(image: np.ndarray, variance: np.ndarray, usable: np.ndarray) -> float:
    good = usable & np.isfinite(image) & np.isfinite(variance) & (variance > 0)
    if np.count_nonzero(good) < 2:
        return 1.0
    snr = image[good] / np.sqrt(variance[good])
    q1, q3 = np.percentile(snr, (25.0, 75.0))
    return float((0.74 * (q3 - q1)) ** 2)


def grow_radius(n_sigma_to_grow: float, sigma: float) -> int:
    """LSST SourceDetectionTask's footprint growth: ``int(n_sigma_to_grow * sigma + 0.5)`` pixels."""
    return int(n_sigma_to_grow * sigma + 0.5)


def detect_outliers(snr: np.ndarray, threshold: float, polarity: str, min_pixels: int,
                    radius: int) -> tuple[np.ndarray, int]:
    """Footprints of ``|snr| > threshold``; with ``both``, positive and negative footprints are
    merged where they touch (LSST merges the two footprint sets)."""
    if polarity != "both":
        return detect(snr, threshold, polarity=polarity, min_pixels=min_pixels, grow_radius=radius)
    pos, _ = detect(snr, threshold, polarity="positive", min_pixels=min_pixels, grow_radius=radius)
    neg, _ = detect(snr, threshold, polarity="negative", min_pixels=min_pixels, grow_radius=radius)
    labels, n = ndimage.label((pos > 0) | (neg > 0), structure=np.ones((3, 3), bool))
    return labels.astype(np.int32), int(n)


def footprints_of(labels: np.ndarray, n: int) -> list[np.ndarray]:
    """Flat pixel indices of each labelled footprint 1..n."""
    if n == 0:
        return []
    flat = labels.ravel()
    idx = np.flatnonzero(flat)
    lab = flat[idx]
    order = np.argsort(lab, kind="stable")
    idx = idx[order]
    counts = np.bincount(lab, minlength=n + 1)[1:]
    return [part for part in np.split(idx, np.cumsum(counts)[:-1]) if part.size]


def prefilter_artifacts(footprints: Sequence[np.ndarray], good: np.ndarray, ratio: float) -> list[np.ndarray]:
    """Keep candidates whose fraction of good pixels (flat boolean ``good``) exceeds ``ratio``
    (LSST ``prefilterArtifacts``)."""
    return [fp for fp in footprints if np.count_nonzero(good[fp]) / fp.size > ratio]


def effective_max_num_epochs(n_epochs: float, max_num_epochs: int, low: float, high: float) -> int:
    """``int(min(low * N, max_num_epochs + high * N))`` (LSST ``filterArtifacts``)."""
    return int(min(low * n_epochs, max_num_epochs + high * n_epochs))


def filter_artifacts(footprints: Sequence[np.ndarray], epoch_count: np.ndarray, n_image: np.ndarray,
                     config: Config, template_labels: np.ndarray | None = None) -> list[np.ndarray]:
    """Transient candidates to clip (LSST ``filterArtifacts``); arrays are flat over the coadd box.

    A candidate is clipped when more than ``spatial_threshold`` of its pixels were outliers in
    between 1 and the effective maximum number of epochs, unless it lies entirely inside one
    footprint of ``template_labels``.
    """
    a = config.artifacts
    out = []
    for fp in footprints:
        outlier_n = epoch_count[fp]
        total_n = float(np.mean(n_image[fp]))
        eff = effective_max_num_epochs(total_n, a.max_num_epochs, a.max_fraction_epochs_low,
                                       a.max_fraction_epochs_high)
        below = np.count_nonzero((outlier_n > 0) & (outlier_n <= eff))
        if below / fp.size > a.spatial_threshold:
            out.append(fp)
    if template_labels is not None:
        kept = []
        for fp in out:
            lab = template_labels[fp]
            if lab[0] != 0 and np.all(lab == lab[0]):
                continue
            kept.append(fp)
        out = kept
    return out


def detect_template_sources(image: np.ndarray, sigma: float, threshold: float,
                            n_sigma_to_grow: float) -> np.ndarray:
    """Labels of bright sources on the static sky (LSST ``detectTemplate``, ``thresholdType="stdev"``).

    The image is smoothed with the model PSF (Gaussian ``sigma``); pixels above ``threshold``
    times the clipped standard deviation (3 sigma, 3 iterations) of the smoothed image form
    footprints, grown by ``n_sigma_to_grow * sigma``.
    """
    valid = np.isfinite(image)
    g = gaussian_kernel1d(sigma)
    # For white noise, smoothed peak / smoothed-image stdev is a point source's matched-filter S/N.
    smoothed = _separable(np.where(valid, image, 0.0).astype(np.float32), g)
    _, var, _ = clipped_mean(smoothed[valid], 3.0, 3)
    if not (np.isfinite(var) and var > 0):
        return np.zeros(image.shape, np.int32)
    snr = np.where(valid, smoothed / np.sqrt(var), 0.0)
    labels, _ = detect(snr, threshold, polarity="positive", grow_radius=grow_radius(n_sigma_to_grow, sigma))
    return labels


@dataclass
class CompareWarpResult:
    """Everything compare-warp produced, over the coadd box."""

    artifact_masks: list[ArtifactMask]
    static_sky_image: np.ndarray
    static_sky_variance: np.ndarray
    epoch_count: np.ndarray
    n_image: np.ndarray
    model_sigma: float


def find_artifacts(warps: Sequence[WarpSource], bbox: Box, planes: MaskPlanes, config: Config,
                   static_image: np.ndarray, static_variance: np.ndarray,
                   target_sigma: float) -> tuple[list[ArtifactMask], np.ndarray, np.ndarray]:
    """Detect and filter artifact candidates in every warp against the static sky.

    Each warp is read and PSF-matched subregion by subregion (with the kernel radius as
    buffer, so values match `build_static_sky` bit for bit); only its matched image,
    variance, a few boolean planes and the detection labels over ``bbox`` are held at once.

    Returns
    -------
    masks : list of ArtifactMask
        One per warp, in order.
    epoch_count, n_image : ndarray of uint16 over ``bbox``
    """
    a = config.artifacts
    bad = np.uint32(planes.value_if_present(config.effective_bad_mask_planes()))
    no_data = np.uint32(planes.value_if_present(["NO_DATA"]))
    prefilter = np.uint32(planes.value_if_present(a.prefilter_artifacts_mask_planes))
    ignore = np.uint32(planes.value_if_present(SCALE_VARIANCE_IGNORE))
    bad_not_no_data = np.uint32(int(bad) & ~int(no_data))
    radius = grow_radius(a.detect.n_sigma_to_grow, target_sigma)
    tile_size = tuple(config.coadd.subregion_size)
    epoch_count = np.zeros(bbox.shape, np.uint16)
    n_image = np.zeros(bbox.shape, np.uint16)
    candidates: list[list[np.ndarray]] = []
    masks: list[ArtifactMask] = []
    for warp in warps:
        crop = bbox.intersection(warp.bbox)
        sigma = matching_sigma(warp.psf, target_sigma)
        empty = {p: PixelSet.empty(bbox) for p in ("CLIPPED", "NO_DATA", "EDGE")}
        if crop.is_empty:
            candidates.append([])
            masks.append(ArtifactMask(warp.name, empty))
            continue
        sl = crop.slices(bbox)
        image = np.full(crop.shape, np.nan, np.float32)
        variance = np.full(crop.shape, np.nan, np.float32)
        prefilter_good = np.zeros(crop.shape, bool)
        searchable = np.zeros(crop.shape, bool)
        scale_good = np.zeros(crop.shape, bool)
        lost_parts, edge_parts = [], []
        for tile in crop.subregions(tile_size):
            got = _match_warp(warp, tile, sigma, planes, bad)
            if got is None:
                continue
            _, exp, m = got
            tsl = tile.slices(crop)
            finite = np.isfinite(m.image)
            mmask = exp.mask | np.where(finite, np.uint32(0), no_data)
            image[tsl], variance[tsl] = m.image, m.variance
            prefilter_good[tsl] = (mmask & prefilter) == 0
            scale_good[tsl] = (mmask & ignore) == 0
            searchable[tsl] = m.valid_coverage >= DETECTION_MIN_COVERAGE
            n_image[tile.slices(bbox)] += finite & np.isfinite(static_image[tile.slices(bbox)]) \
                & ((mmask & bad) == 0)
            has_data = np.isfinite(exp.image) & ((exp.mask & no_data) == 0)
            lost_parts.append(PixelSet.from_mask(~finite & (has_data | ((exp.mask & bad_not_no_data) != 0)),
                                                 tile, bbox))
            edge_parts.append(PixelSet.from_mask(has_data & finite & (m.coverage < 1.0 - 1e-6), tile, bbox))
        if a.do_scale_warp_variance:
            factor = _scale_factor(image, variance, scale_good)
            if not (np.isfinite(factor) and 0 < factor <= SCALE_VARIANCE_LIMIT):
                log.warning("%s: variance rescaling factor %.3g is unusable; leaving the variance as-is",
                            warp.name, factor)
            else:
                variance *= np.float32(factor)
        del scale_good
        # In place: image becomes the difference, variance its variance, then image the S/N.
        image -= static_image[sl]
        variance += static_variance[sl]
        ok = np.isfinite(image) & np.isfinite(variance) & (variance > 0) & searchable
        np.sqrt(variance, out=variance, where=ok)
        np.divide(image, variance, out=image, where=ok)
        image[~ok] = 0.0
        del variance, ok, searchable
        labels, n = detect_outliers(image, a.detect.threshold_value, a.detect.threshold_polarity,
                                    a.detect.min_pixels, radius)
        del image
        local = footprints_of(labels, n)
        del labels
        if a.do_prefilter_artifacts:
            local = prefilter_artifacts(local, prefilter_good.ravel(), a.prefilter_artifacts_ratio)
        slate = np.zeros(crop.shape, bool)
        for fp in local:
            slate.flat[fp] = True
        epoch_count[sl] += slate
        gy, gx = np.divmod(np.concatenate(local) if local else np.zeros(0, np.int64), crop.width)
        offsets = np.cumsum([fp.size for fp in local])[:-1]
        flat_global = (gy + (crop.y0 - bbox.y0)) * bbox.width + (gx + (crop.x0 - bbox.x0))
        candidates.append(np.split(flat_global.astype(np.int64), offsets) if local else [])
        empty["NO_DATA"] = PixelSet.union(bbox, lost_parts)
        empty["EDGE"] = PixelSet.union(bbox, edge_parts)
        masks.append(ArtifactMask(warp.name, empty, n_candidates=len(local)))
    template_labels = None
    if a.do_preserve_contained_by_source:
        template_labels = detect_template_sources(static_image, target_sigma,
                                                  a.detect_template.threshold_value,
                                                  a.detect_template.n_sigma_to_grow).ravel()
    flat_epochs, flat_n = epoch_count.ravel(), n_image.ravel()
    for mask, cands in zip(masks, candidates, strict=True):
        clipped = filter_artifacts(cands, flat_epochs, flat_n, config, template_labels) if cands else []
        mask.n_clipped = len(clipped)
        mask.planes["CLIPPED"] = PixelSet(bbox, np.unique(np.concatenate(clipped))) if clipped \
            else PixelSet.empty(bbox)
        log.info("%s: %d artifact candidates, %d clipped (%d pixels)", mask.name, mask.n_candidates,
                 mask.n_clipped, len(mask.planes["CLIPPED"]))
    return masks, epoch_count, n_image


def compare_warps(warps: Sequence[WarpSource], bbox: Box, planes: MaskPlanes,
                  config: Config) -> CompareWarpResult:
    """Run compare-warp over ``bbox``: static sky, detection, filtering (see the module notes).

    Every warp needs a PSF. ``planes`` must hold CLIPPED, NO_DATA and EDGE.
    """
    missing = [w.name for w in warps if w.psf is None]
    if missing:
        raise ValueError(f"compare-warp needs a PSF for every warp; missing for {', '.join(missing)}")
    target = model_sigma([w.psf for w in warps], config.artifacts.model_psf_fwhm)
    log.info("compare-warp: matching %d warps to a Gaussian PSF of sigma %.3f px", len(warps), target)
    image, variance = build_static_sky(warps, bbox, planes, config, target)
    masks, epoch_count, n_image = find_artifacts(warps, bbox, planes, config, image, variance, target)
    return CompareWarpResult(masks, image, variance, epoch_count, n_image, target)


# -- output ----------------------------------------------------------------------------------------

def write_artifact_masks(masks: Sequence[ArtifactMask], directory: str | os.PathLike, bbox: Box,
                         planes: MaskPlanes) -> list[Path]:
    """Write one FITS file per warp, ``<name>_artifacts.fits``, with a MASK extension over ``bbox``
    (``MP_<PLANE>`` bit keywords, ``LTV1/LTV2`` origin), atomically."""
    import warnings

    from astropy.io import fits

    from dcrcoadd.io.atomic import atomic_output

    directory = Path(directory)
    paths = []
    for m in masks:
        stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(m.name).stem) or "warp"
        path = directory / f"{stem}_artifacts.fits"
        header = fits.Header()
        for key, bit in planes.to_header_cards().items():
            header[f"HIERARCH {key}" if len(key) > 8 else key] = bit
        header["LTV1"], header["LTV2"] = -bbox.x0, -bbox.y0
        primary = fits.PrimaryHDU()
        primary.header["SOURCE"] = (str(m.name)[:60], "warp these masks belong to")
        primary.header["NCLIPPED"] = (m.n_clipped, "artifact footprints clipped")
        image = fits.ImageHDU(m.to_mask(bbox, planes).view(np.int32), header, name="MASK")
        hdul = fits.HDUList([primary, image])
        with atomic_output(path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            hdul.writeto(tmp, overwrite=True)
        paths.append(path)
    return paths


__all__ = [
    "ArtifactMask", "CompareWarpResult", "PixelSet", "WarpSource", "build_static_sky", "compare_warps",
    "detect_outliers", "detect_template_sources", "effective_max_num_epochs", "filter_artifacts",
    "find_artifacts", "footprints_of", "gaussian_kernel1d", "matching_sigma", "model_sigma",
    "prefilter_artifacts", "psf_match", "scale_variance_factor", "write_artifact_masks",
]
