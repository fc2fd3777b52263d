"""Finding transient artifacts: outliers of each PSF-matched warp against the static sky, and the
epoch-count filter that decides which of them are transient (LSST ``findArtifacts``,
``prefilterArtifacts``, ``filterArtifacts``).

For each warp, significant pixels of ``(PSF-matched warp - static sky)``, in units of its own
per-pixel noise, form footprints (both polarities merged, at least ``min_pixels`` pixels, grown by
``n_sigma_to_grow`` PSF sigmas). Candidates mostly covered by NO_DATA/BAD/SAT/SUSPECT are dropped,
and each warp's remaining footprints add one to an epoch-count image. A candidate is transient,
and clipped, when more than ``spatial_threshold`` of its pixels are outliers in between one and the
effective maximum number of epochs ``int(min(0.4 N, 2 + 0.03 N))``, ``N`` the mean local number of
epochs; candidates entirely inside one static-sky source footprint are kept. Artifacts are not
searched where more than 1% of the kernel weight fell on missing or bad pixels (normalized
convolution cannot reproduce a star under a bad column), which LSST cannot search either.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dcrcoadd.coadd.artifacts.masks import ArtifactMask, PixelSet
from dcrcoadd.coadd.artifacts.psf_matching import (
    WarpSource,
    convolve_separable,
    gaussian_kernel1d,
    kernel_radius,
    match_warp,
    matching_sigma,
)
from dcrcoadd.config.schema import ArtifactConfig
from dcrcoadd.core.geom import Box
from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.ops.detection import detect
from dcrcoadd.ops.sky_variation import SKY_VARIATION_WARN
from dcrcoadd.ops.stack import clipped_mean, sorted_percentiles
from dcrcoadd.parallel import Mapper, map_tasks
from dcrcoadd.parallel.shared import FileArray, resolve, shared

log = logging.getLogger("dcrcoadd.coadd.artifacts.detection")

#: Kernel-weight fraction on valid pixels below which a pixel is not searched for artifacts:
#: normalized convolution cannot reproduce a source under a bad column or at a data edge.
DETECTION_MIN_COVERAGE = 0.99
#: Planes LSST's ScaleVarianceTask ignores.
SCALE_VARIANCE_IGNORE = ("DETECTED", "DETECTED_NEGATIVE", "BAD", "SAT", "NO_DATA", "INTRP")
#: LSST ScaleVarianceConfig.limit: larger factors are not applied.
SCALE_VARIANCE_LIMIT = 10.0


# -- numerics --------------------------------------------------------------------------------------

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
    q1, q3 = sorted_percentiles(snr, (25.0, 75.0))
    return float((0.74 * (q3 - q1)) ** 2)


#: Static-sky pixels above this S/N, grown by `STATIC_SOURCE_GROW` pixels, are sources (`static_sources`).
STATIC_SOURCE_SNR = 3.0
STATIC_SOURCE_GROW = 2


def static_sources(image: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """Where the static sky has sources: S/N above `STATIC_SOURCE_SNR`, grown by `STATIC_SOURCE_GROW`."""
    with np.errstate(invalid="ignore", divide="ignore"):
        found = image > STATIC_SOURCE_SNR * np.sqrt(variance)
    return ndimage.binary_dilation(found, iterations=STATIC_SOURCE_GROW) if found.any() else found


def usable_variance_factor(factor: float) -> bool:
    """Whether a variance rescaling factor is applied: finite, positive, at most `SCALE_VARIANCE_LIMIT`."""
    return bool(np.isfinite(factor) and 0 < factor <= SCALE_VARIANCE_LIMIT)


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
                     settings: ArtifactConfig, template_labels: np.ndarray | None = None) -> list[np.ndarray]:
    """Transient candidates to clip (LSST ``filterArtifacts``); arrays are flat over the coadd box.

    A candidate is clipped when more than ``settings.spatial_threshold`` of its pixels were outliers
    in between 1 and the effective maximum number of epochs (`effective_max_num_epochs` with
    ``settings.max_num_epochs`` and ``settings.max_fraction_epochs_low/high``), unless it lies
    entirely inside one footprint of ``template_labels``.
    """
    out = []
    for fp in footprints:
        outlier_n = epoch_count[fp]
        total_n = float(np.mean(n_image[fp]))
        eff = effective_max_num_epochs(total_n, settings.max_num_epochs, settings.max_fraction_epochs_low,
                                       settings.max_fraction_epochs_high)
        below = np.count_nonzero((outlier_n > 0) & (outlier_n <= eff))
        if below / fp.size > settings.spatial_threshold:
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
    smoothed = convolve_separable(np.where(valid, image, 0.0).astype(np.float32), g)
    _, var, _ = clipped_mean(smoothed[valid], 3.0, 3)
    if not (np.isfinite(var) and var > 0):
        return np.zeros(image.shape, np.int32)
    snr = np.where(valid, smoothed / np.sqrt(var), 0.0)
    labels, _ = detect(snr, threshold, polarity="positive", grow_radius=grow_radius(n_sigma_to_grow, sigma))
    return labels


# -- one warp --------------------------------------------------------------------------------------

@dataclass
class WarpDetectionTask:
    """What the search of one warp needs: the warp (restricted to what it reads), the static sky
    over the warp's part of the coadd box, and the settings."""

    warp: WarpSource
    bbox: Box  # the coadd box
    sigma: float  # matching sigma of this warp
    radius: int  # footprint growth, pixels
    planes: MaskPlanes
    bad_mask: int
    static_image: np.ndarray | FileArray  # over bbox ∩ warp.bbox (`dcrcoadd.parallel.shared`)
    static_variance: np.ndarray | FileArray
    settings: ArtifactConfig
    tile_size: tuple[int, int]


@dataclass
class WarpCandidates:
    """The search result of one warp.

    Attributes
    ----------
    mask : ArtifactMask
        NO_DATA and EDGE set; CLIPPED empty until `filter_artifacts` has seen every warp.
    candidates : list of ndarray
        Flat indices over the coadd box, one array per footprint (disjoint).
    counted : ndarray of bool
        Over the warp's part of the coadd box: the warp's matched pixels that count as epochs.
    variance_factor : float
        The variance rescaling factor measured (NaN when rescaling is off); applied only when
        `usable_variance_factor`.
    """

    mask: ArtifactMask
    candidates: list[np.ndarray]
    counted: np.ndarray
    variance_factor: float


def detect_warp_candidates(task: WarpDetectionTask) -> WarpCandidates:
    """Artifact candidates of one warp (a pure function of ``task``).

    The warp is read and PSF-matched tile by tile (with the kernel radius as buffer, so values
    match the static sky's bit for bit); only its matched image, variance, a few boolean planes
    and the detection labels over its part of the coadd box are held at once.
    """
    warp, bbox, planes, a = task.warp, task.bbox, task.planes, task.settings
    static_image, static_variance = resolve(task.static_image), resolve(task.static_variance)
    bad = np.uint32(task.bad_mask)
    no_data = np.uint32(planes.value_if_present(["NO_DATA"]))
    prefilter = np.uint32(planes.value_if_present(a.prefilter_artifacts_mask_planes))
    ignore = np.uint32(planes.value_if_present(SCALE_VARIANCE_IGNORE))
    detected_bit = np.uint32(planes.value_if_present(["DETECTED"]))
    has_footprints = False
    bad_not_no_data = np.uint32(int(bad) & ~int(no_data))
    crop = bbox.intersection(warp.bbox)
    image = np.full(crop.shape, np.nan, np.float32)
    variance = np.full(crop.shape, np.nan, np.float32)
    prefilter_good = np.zeros(crop.shape, bool)
    searchable = np.zeros(crop.shape, bool)
    scale_good = np.zeros(crop.shape, bool)
    counted = np.zeros(crop.shape, bool)
    lost_parts, edge_parts = [], []
    for tile in crop.subregions(task.tile_size):  # bounds the memory of the matching temporaries
        got = match_warp(warp, tile, task.sigma, planes, int(bad))
        if got is None:
            continue
        _, exp, m = got
        tsl = tile.slices(crop)
        finite = np.isfinite(m.image)
        mmask = exp.mask | np.where(finite, np.uint32(0), no_data)
        image[tsl], variance[tsl] = m.image, m.variance
        prefilter_good[tsl] = (mmask & prefilter) == 0
        scale_good[tsl] = (mmask & ignore) == 0
        has_footprints = has_footprints or bool(np.any(exp.mask & detected_bit))
        searchable[tsl] = m.valid_coverage >= DETECTION_MIN_COVERAGE
        counted[tsl] = finite & np.isfinite(static_image[tsl]) & ((mmask & bad) == 0)
        has_data = np.isfinite(exp.image) & ((exp.mask & no_data) == 0)
        lost_parts.append(PixelSet.from_mask(~finite & (has_data | ((exp.mask & bad_not_no_data) != 0)),
                                             tile, bbox))
        edge_parts.append(PixelSet.from_mask(has_data & finite & (m.coverage < 1.0 - 1e-6), tile, bbox))
    factor = math.nan
    if a.do_scale_warp_variance:
        if not has_footprints:
            # a warp without source footprints (LSST's always have them; other pipelines' need not):
            # its sources would count as noise, the more so as PSF matching smooths the noise (factors
            # of 50-120 on a DECam-like field whose variance is right); the static sky's are left out
            scale_good &= ~static_sources(static_image, static_variance)
        factor = _scale_factor(image, variance, scale_good)
        if has_footprints and not usable_variance_factor(factor):
            # a warp much sharper than the matching target: PSF matching spreads its sources beyond its
            # own footprints, whose wings then count as noise (factors of 13-15 on 0.55" warps matched
            # to 1.6", whose variance was right: 1.0 without the sources); the static sky's are left out
            retry = _scale_factor(image, variance,
                                  scale_good & ~static_sources(static_image, static_variance))
            if usable_variance_factor(retry):
                factor = retry
        if usable_variance_factor(factor):
            variance *= np.float32(factor)
    del scale_good
    # In place: image becomes the difference, variance its variance, then image the S/N.
    image -= static_image
    variance += static_variance
    del static_image, static_variance
    ok = np.isfinite(image) & np.isfinite(variance) & (variance > 0) & searchable
    np.sqrt(variance, out=variance, where=ok)
    np.divide(image, variance, out=image, where=ok)
    image[~ok] = 0.0
    del variance, ok, searchable
    labels, n = detect_outliers(image, a.detect.threshold_value, a.detect.threshold_polarity,
                                a.detect.min_pixels, task.radius)
    del image
    local = footprints_of(labels, n)
    del labels
    if a.do_prefilter_artifacts:
        local = prefilter_artifacts(local, prefilter_good.ravel(), a.prefilter_artifacts_ratio)
    gy, gx = np.divmod(np.concatenate(local) if local else np.zeros(0, np.int64), crop.width)
    offsets = np.cumsum([fp.size for fp in local])[:-1]
    flat_global = (gy + (crop.y0 - bbox.y0)) * bbox.width + (gx + (crop.x0 - bbox.x0))
    candidates = np.split(flat_global.astype(np.int64), offsets) if local else []
    planes_out = {"CLIPPED": PixelSet.empty(bbox), "NO_DATA": PixelSet.union(bbox, lost_parts),
                  "EDGE": PixelSet.union(bbox, edge_parts)}
    return WarpCandidates(ArtifactMask(warp.name, planes_out, n_candidates=len(local)), candidates, counted,
                          factor)


# -- every warp ------------------------------------------------------------------------------------

def find_artifacts(warps: Sequence[WarpSource], bbox: Box, planes: MaskPlanes, settings: ArtifactConfig,
                   static_image: np.ndarray, static_variance: np.ndarray, target_sigma: float, *,
                   bad_mask: int, tile_size: tuple[int, int],
                   mapper: Mapper | None = None) -> tuple[list[ArtifactMask], np.ndarray, np.ndarray]:
    """Detect artifact candidates in every warp against the static sky and clip the transient ones.

    Parameters
    ----------
    warps : sequence of WarpSource
    bbox : Box
        The coadd box ``static_image`` and ``static_variance`` cover.
    planes : MaskPlanes
    settings : ArtifactConfig
    static_image, static_variance : ndarray
    target_sigma : float
        Sigma (pixels) of the common Gaussian model PSF.
    bad_mask : int
        Bits of unusable input pixels (excluded from the matching and from the epoch counts).
    tile_size : (int, int)
        Pieces in which each warp is read and matched.
    mapper : Mapper, optional
        Runs the per-warp searches (`dcrcoadd.parallel`); default serial.

    Returns
    -------
    masks : list of ArtifactMask
        One per warp, in order.
    epoch_count, n_image : ndarray of uint16 over ``bbox``
    """
    radius = grow_radius(settings.detect.n_sigma_to_grow, target_sigma)
    epoch_count = np.zeros(bbox.shape, np.uint16)
    n_image = np.zeros(bbox.shape, np.uint16)
    found: dict[int, tuple[ArtifactMask, list[np.ndarray]]] = {}

    def tasks(image, variance):
        for i, warp in enumerate(warps):
            crop = bbox.intersection(warp.bbox)
            if crop.is_empty:
                continue
            sigma = matching_sigma(warp.psf, target_sigma)
            sl = crop.slices(bbox)
            yield i, WarpDetectionTask(warp.restricted(bbox.grow(kernel_radius(sigma))), bbox, sigma, radius,
                                       planes, bad_mask, image[sl], variance[sl], settings, tile_size)

    epochs_flat = epoch_count.ravel()
    # (the workers of a local pool memory-map the static sky from a file, `dcrcoadd.parallel.shared`)
    with shared(mapper, static_image, static_variance) as (image, variance):
        for i, result in map_tasks(detect_warp_candidates, tasks(image, variance), mapper):
            if settings.do_scale_warp_variance and not usable_variance_factor(result.variance_factor):
                # (LSST leaves such a variance as it is; its weight in the coadd is then off by as much)
                cause = ("its uneven sky, reported above, is what widens its difference from the other warps"
                         if getattr(warps[i], "sky_variation", 0.0) >= SKY_VARIATION_WARN else
                         "its variance does not describe its pixels' scatter, so its weight in the coadd is "
                         "off by about that factor: check its variance plane or weight map")
                log.warning("%s: variance rescaling factor %.3g is unusable; leaving the variance as-is: %s",
                            warps[i].name, result.variance_factor, cause)
            n_image[bbox.intersection(warps[i].bbox).slices(bbox)] += result.counted
            if result.candidates:  # footprints of one warp are disjoint: each pixel gains one epoch
                epochs_flat[np.concatenate(result.candidates)] += 1
            found[i] = (result.mask, result.candidates)  # not the full-size ``counted`` plane
    template_labels = None
    if settings.do_preserve_contained_by_source:
        template_labels = detect_template_sources(static_image, target_sigma,
                                                  settings.detect_template.threshold_value,
                                                  settings.detect_template.n_sigma_to_grow).ravel()
    flat_n = n_image.ravel()
    masks = []
    for i, warp in enumerate(warps):
        mask, cands = found.get(i) or (
            ArtifactMask(warp.name, {p: PixelSet.empty(bbox) for p in ("CLIPPED", "NO_DATA", "EDGE")}), [])
        clipped = filter_artifacts(cands, epochs_flat, flat_n, settings, template_labels) if cands else []
        mask.n_clipped = len(clipped)
        mask.planes["CLIPPED"] = PixelSet(bbox, np.unique(np.concatenate(clipped))) if clipped \
            else PixelSet.empty(bbox)
        log.info("%s: %d artifact candidates, %d clipped (%d pixels)", mask.name, mask.n_candidates,
                 mask.n_clipped, len(mask.planes["CLIPPED"]))
        masks.append(mask)
    return masks, epoch_count, n_image


__all__ = ["DETECTION_MIN_COVERAGE", "SCALE_VARIANCE_IGNORE", "SCALE_VARIANCE_LIMIT", "WarpCandidates",
           "WarpDetectionTask", "detect_outliers", "detect_template_sources", "detect_warp_candidates",
           "effective_max_num_epochs", "filter_artifacts", "find_artifacts", "footprints_of", "grow_radius",
           "prefilter_artifacts", "scale_variance_factor", "usable_variance_factor"]
