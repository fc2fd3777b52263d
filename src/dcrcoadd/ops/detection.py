"""Threshold detection of sources and artifacts into labelled footprints."""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

from dcrcoadd.ops.morphology import binary_dilation


def disk(radius: float) -> np.ndarray:
    """Boolean disk structuring element of the given radius (pixels)."""
    r = int(np.floor(max(radius, 0.0)))
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return x * x + y * y <= radius * radius + 1e-9


def grow(mask: np.ndarray, radius: float) -> np.ndarray:
    """Dilate a boolean mask by a disk of ``radius`` pixels (no-op for radius < 1)."""
    mask = np.asarray(mask, dtype=bool)
    if radius < 1:
        return mask.copy()
    if mask.ndim != 2:
        return ndimage.binary_dilation(mask, structure=disk(radius))
    return binary_dilation(mask, disk(radius))  # scipy's result, from shifted slices


def significance(image: np.ndarray, variance: np.ndarray, kernel: np.ndarray | None = None,
                 valid: np.ndarray | None = None) -> np.ndarray:
    """Per-pixel signal-to-noise, optionally matched-filtered by a PSF ``kernel``.

    With a kernel, ``S/N = (I * k) / sqrt(V * k²)`` (the optimal point-source
    statistic for a known PSF). Pixels with non-positive or non-finite
    variance, or outside ``valid``, get zero significance and do not
    contribute to their neighbours.
    """
    image = np.asarray(image, dtype=np.float64)
    variance = np.asarray(variance, dtype=np.float64)
    good = np.isfinite(image) & np.isfinite(variance) & (variance > 0)
    if valid is not None:
        good &= valid
    img = np.where(good, image, 0.0)
    var = np.where(good, variance, 0.0)
    if kernel is not None:
        k = np.asarray(kernel, dtype=np.float64)
        img = signal.fftconvolve(img, k, mode="same")
        var = signal.fftconvolve(var, k * k, mode="same")
        # FFT round-off can leave tiny negative variances where there is no data
        good = good & (var > 1e-12 * max(float(var.max(initial=0.0)), 1e-300))
    out = np.zeros_like(img)
    np.divide(img, np.sqrt(np.where(good, var, 1.0)), out=out, where=good)
    return out


def detect(snr: np.ndarray, threshold: float, *, polarity: str = "positive", min_pixels: int = 1,
           grow_radius: float = 0.0) -> tuple[np.ndarray, int]:
    """Label connected groups of pixels beyond ``threshold`` in a significance image.

    Parameters
    ----------
    snr : ndarray
        Significance image (see `significance`).
    threshold : float
        Detection threshold in sigma.
    polarity : {"positive", "negative", "both"}
        Which sign of excursion to detect; "both" labels positive and negative
        footprints separately (as LSST keeps them in separate footprint sets),
        so a dipole is two footprints; where grown footprints of opposite sign
        overlap, the positive one keeps the pixel.
    min_pixels : int
        Footprints with fewer pixels above threshold are dropped.
    grow_radius : float
        Grow kept footprints by this many pixels (merging those that touch).

    Returns
    -------
    labels : ndarray of int32
        0 for background, 1..n for footprints (8-connected).
    n : int
        Number of footprints.
    """
    snr = np.asarray(snr)
    if polarity == "positive":
        above = snr > threshold
    elif polarity == "negative":
        above = snr < -threshold
    elif polarity == "both":
        pos, n_pos = detect(snr, threshold, polarity="positive", min_pixels=min_pixels,
                            grow_radius=grow_radius)
        neg, n_neg = detect(snr, threshold, polarity="negative", min_pixels=min_pixels,
                            grow_radius=grow_radius)
        labels = np.where(pos > 0, pos, np.where(neg > 0, neg + n_pos, 0))
        # A negative footprint wholly covered by grown positive ones disappears: renumber 1..n.
        present, compact = np.unique(labels, return_inverse=True)
        if present[0] != 0:
            compact = compact + 1
        return compact.reshape(labels.shape).astype(np.int32), int(np.count_nonzero(present))
    else:
        raise ValueError(f"polarity must be 'positive', 'negative' or 'both', got {polarity!r}")
    labels, n = _label(above)
    if n and min_pixels > 1:
        # Footprint sizes and the kept pixels from the (few) pixels above threshold only: the
        # background's label 0 neither counts nor is kept, so this equals working on every pixel.
        where = np.flatnonzero(above)
        on = labels.ravel()[where]
        counts = np.bincount(on, minlength=n + 1)
        keep = counts >= min_pixels
        keep[0] = False
        if not keep[1:].all():  # labelling is deterministic: unchanged pixels keep their labels
            above = np.zeros(above.shape, bool)
            above.ravel()[where[keep[on]]] = True
            if grow_radius >= 1 and above.any():  # the grown mask is labelled afresh below
                return _label(grow(above, grow_radius))
            labels, n = _label(above)
    if n and grow_radius >= 1:
        labels, n = _label(grow(labels > 0, grow_radius))
    return labels, n


def _label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    return labels.astype(np.int32), int(n)


def detection_mask(image: np.ndarray, variance: np.ndarray, kernel: np.ndarray | None,
                   threshold: float = 5.0, grow_radius: float = 0.0,
                   valid: np.ndarray | None = None) -> np.ndarray:
    """Boolean DETECTED-style mask: positive footprints above ``threshold`` sigma, grown."""
    labels, _ = detect(significance(image, variance, kernel, valid), threshold,
                       grow_radius=grow_radius)
    return labels > 0
