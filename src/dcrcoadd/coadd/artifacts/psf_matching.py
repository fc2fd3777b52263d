"""PSF matching of warps to one common Gaussian model PSF, by normalized convolution.

An approximation of LSST's PSF-matched warps: LSST PSF-matches the calexps with a fitted kernel
before warping. Here each warp is convolved with a Gaussian of sigma ``sqrt(s_model^2 - s_i^2)``,
with ``s_i`` the Gaussian-equivalent sigma of the warp's PSF kernel from its noise-equivalent area
(`Psf.noise_equivalent_sigma`, not the FWHM: see `dcrcoadd.core.psf`) and ``s_model`` that of
the widest input broadened by a 1-pixel-sigma Gaussian (or
``model_psf_fwhm``). Matched PSFs agree exactly only for Gaussian inputs; otherwise their cores
agree and their wings differ (the static sky's scatter-based variance absorbs that near bright
stars). Missing or bad pixels are handled by normalized convolution (``conv(x v) / conv(v)`` with
``v`` the valid pixels, variance ``conv(var v, k^2) / conv(v)^2``, exact for independent noise).
A matched pixel is NaN when less than half of its kernel weight falls on pixels with data; LSST's
PSF-matched warps instead lose a full kernel half-width at every data edge (and the coadd loses
it too), which this keeps, marking it EDGE.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import ndimage

from dcrcoadd.core.exposure import Exposure
from dcrcoadd.core.geom import Box
from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.core.psf import Psf
from dcrcoadd.ops.filters import correlate_columns

log = logging.getLogger("dcrcoadd.coadd.artifacts.psf_matching")

#: Kernel-weight fraction on pixels with data below which a PSF-matched pixel is NaN.
MIN_DATA_COVERAGE = 0.5
#: Sigma (pixels) of the smallest matching kernel with the default model PSF.
MIN_MATCHING_SIGMA = 1.0


class WarpSource(Protocol):
    """What compare-warp needs of a warp (`dcrcoadd.coadd.inputs.CoaddInput` provides it)."""

    name: str
    bbox: Box
    psf: Psf | None
    weight: float

    def read(self, box: Box) -> Exposure | None:
        """Flux-scaled pixels inside ``box`` (clipped to the warp), masks in the common planes."""

    def restricted(self, box: Box) -> WarpSource:
        """The same warp for reads inside ``box`` only (what a task sent to a worker carries)."""


def gaussian_kernel1d(sigma: float) -> np.ndarray:
    """Normalized 1-d Gaussian sampled at integer offsets, truncated at ``ceil(4 sigma)``; ``[1]`` for 0."""
    if not sigma > 0:
        return np.ones(1)
    r = int(math.ceil(4.0 * sigma))
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def model_sigma(psfs: Sequence[Psf], model_psf_fwhm: float | None = None) -> float:
    """Second-moment sigma (pixels) of the common model PSF.

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


def convolve_separable(arr: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``arr`` correlated with ``g`` along both axes, zero outside, in float32 (a copy for ``g = [1]``)."""
    if g.size == 1:
        return arr.astype(np.float32, copy=True)
    # The column pass through padded rows (`correlate_columns`): same bits, several times faster
    # on the power-of-two widths of CCDs.
    out = correlate_columns(arr, g, mode="constant", cval=0.0, output=np.float32)
    return ndimage.correlate1d(out, g, axis=1, mode="constant", cval=0.0, output=np.float32)


def convolve_ones(shape: tuple[int, int], g: np.ndarray) -> np.ndarray:
    """``convolve_separable(np.ones(shape, bool), g)`` bit for bit, from one column and a few rows.

    Each pass of `convolve_separable` computes every output line the same way whatever the other
    lines hold, so the first pass over a constant image is one column repeated, and the second pass
    over rows that are constant is one correlation per distinct row value, repeated.
    """
    if g.size == 1:
        return np.ones(shape, np.float32)
    column = ndimage.correlate1d(np.ones((shape[0], 1), np.float32), g, axis=0, mode="constant", cval=0.0,
                                 output=np.float32)[:, 0]
    values, index = np.unique(column, return_inverse=True)
    rows = np.ascontiguousarray(np.broadcast_to(values[:, None], (values.size, shape[1])))
    rows = ndimage.correlate1d(rows, g, axis=1, mode="constant", cval=0.0, output=np.float32)
    return rows[index.ravel()]


def _edge_sums(g: np.ndarray, n: int) -> np.ndarray:
    """``correlate1d(ones(n), g, mode="constant")``: the kernel weight falling inside ``[0, n)``."""
    if g.size == 1:
        return np.ones(n)
    return ndimage.correlate1d(np.ones(n), g, mode="constant", cval=0.0)


@dataclass
class Matched:
    """A PSF-matched region: image and variance (NaN where undefined; the variance None when it
    was not asked for), and the kernel-weight fractions on pixels with data (``coverage``) and on
    valid pixels (``valid_coverage``)."""

    image: np.ndarray
    variance: np.ndarray | None
    coverage: np.ndarray
    valid_coverage: np.ndarray


def psf_match(image: np.ndarray, variance: np.ndarray, has_data: np.ndarray, valid: np.ndarray,
              sigma: float, *, with_variance: bool = True) -> Matched:
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
    with_variance : bool
        Also convolve the variance (False: ``variance`` of the result is None, which saves a
        third of the work for a caller that does not use it, e.g. a scatter-based static sky).

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
    # An all-valid region (the common case) gets the same bits from `convolve_ones` at a fraction
    # of the cost.
    if bool(valid.all()):
        den = convolve_ones(image.shape, g)
    else:
        den = convolve_separable(valid.astype(np.float32), g)
    if bool(has_data.all()):
        coverage = np.ones(image.shape, np.float32)
    elif np.array_equal(has_data, valid):
        coverage = den / norm
    else:
        coverage = convolve_separable(has_data.astype(np.float32), g) / norm
    num = convolve_separable(np.where(valid, image, 0.0).astype(np.float32), g)
    ok = (coverage >= MIN_DATA_COVERAGE) & (den > 1e-6 * norm)
    var = None
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(ok, num / den, np.nan).astype(np.float32, copy=False)
        if with_variance:
            vnum = convolve_separable(np.where(valid, variance, 0.0).astype(np.float32), g * g)
            var = np.where(ok, vnum / (den * den), np.nan).astype(np.float32, copy=False)
    return Matched(out, var, coverage, den / norm)


def match_warp(warp: WarpSource, box: Box, sigma: float, planes: MaskPlanes,
               invalid_mask: int, *, with_variance: bool = True) -> tuple[Box, Exposure, Matched] | None:
    """Read ``warp`` around ``box`` (grown by the kernel radius) and PSF-match it.

    Returns ``(crop, exposure_crop, matched_crop)`` with ``crop = box ∩ warp.bbox``, or None
    when they do not overlap. ``invalid_mask`` bits make a pixel unusable for the convolution;
    ``with_variance`` as for `psf_match`.
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
    matched = psf_match(exp.image, exp.variance, has_data, valid, sigma, with_variance=with_variance)
    sl = crop.slices(region)
    m = Matched(matched.image[sl], None if matched.variance is None else matched.variance[sl],
                matched.coverage[sl], matched.valid_coverage[sl])
    return crop, exp.subexposure(crop), m


__all__ = ["MIN_DATA_COVERAGE", "MIN_MATCHING_SIGMA", "Matched", "WarpSource", "convolve_ones",
           "convolve_separable", "gaussian_kernel1d", "kernel_radius", "match_warp", "matching_sigma",
           "model_sigma", "psf_match"]
