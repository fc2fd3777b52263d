"""Empirical PSF from bright isolated stars of an image (LSST ``doCalculatePsf``)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from dcrcoadd.core.psf import Psf
from dcrcoadd.ops.detection import detect, significance
from dcrcoadd.ops.shift import shift_image


def measure_psf(image: np.ndarray, variance: np.ndarray, bad: np.ndarray | None = None, *, size: int = 25,
                threshold: float = 50.0, min_pixels: int = 25, min_stars: int = 3,
                max_stars: int = 100) -> Psf:
    """Empirical PSF from bright isolated stars of an image (LSST ``doCalculatePsf``).

    Sources are detected at ``threshold`` sigma per pixel (at least ``min_pixels``, LSST's
    ``detectPsfSources`` settings); a star is used when its stamp of ``size`` pixels lies in
    the image, holds no bad pixel and no other source, and its peak is not the edge of a
    saturated plateau. Stamps are centred on their first moments with a cubic-spline shift,
    normalized, and combined by a per-pixel median.

    Raises
    ------
    ValueError
        When fewer than ``min_stars`` stars qualify (the caller keeps its PSF).
    """
    if size % 2 == 0:
        raise ValueError(f"PSF size must be odd, got {size}")
    image = np.asarray(image, dtype=np.float64)
    bad = np.zeros(image.shape, bool) if bad is None else np.asarray(bad, bool)
    bad = bad | ~np.isfinite(image)
    labels, n = detect(significance(np.where(bad, 0.0, image), variance, valid=~bad), threshold,
                       min_pixels=min_pixels)
    if n == 0:
        raise ValueError("no source above the PSF-star threshold")
    half = size // 2 + 1  # one spare pixel for the recentring shift
    ny, nx = image.shape
    peaks = ndimage.maximum_position(np.where(labels > 0, image, -np.inf), labels, range(1, n + 1))
    fluxes = ndimage.sum(np.where(labels > 0, image, 0.0), labels, range(1, n + 1))
    stamps = []
    for label in np.argsort(fluxes)[::-1]:
        py, px = peaks[label]
        sl = (slice(py - half, py + half + 1), slice(px - half, px + half + 1))
        if py - half < 0 or px - half < 0 or py + half >= ny or px + half >= nx:
            continue
        others = labels[sl]
        if np.any((others > 0) & (others != label + 1)) or bad[sl].any():
            continue
        stamp = image[sl].copy()
        stamp -= np.median(np.concatenate([stamp[0], stamp[-1], stamp[:, 0], stamp[:, -1]]))
        total = stamp.sum()
        if not total > 0:
            continue
        y, x = np.mgrid[: stamp.shape[0], : stamp.shape[1]]
        cy, cx = (stamp * y).sum() / total, (stamp * x).sum() / total
        centred = shift_image(stamp, (half - cy, half - cx), order=3)
        stamps.append(centred[1:-1, 1:-1] / total)
        if len(stamps) >= max_stars:
            break
    if len(stamps) < min_stars:
        raise ValueError(f"only {len(stamps)} isolated bright stars (need {min_stars})")
    kernel = np.median(np.stack(stamps), axis=0)
    return Psf(np.clip(kernel, 0.0, None))


# -- sizes ---------------------------------------------------------------------------------------
