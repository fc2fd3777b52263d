"""Conditioning of DCR model updates: gain averaging, clamps, frequency
regularization, model-weight tapering and the progressive gain.

These are the stabilizers of DMTN-037's iterative solution, as the LSST
``DcrAssembleCoaddTask`` applies them. Every function takes and returns plain
arrays; ``models`` are stacks of shape ``(M, ny, nx)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

# bit-identical to scipy's, faster on the power-of-two widths tiles usually have
from dcrcoadd.ops import filters, morphology


def gain_average(new: np.ndarray, old: np.ndarray, gain: float) -> np.ndarray:
    """Weighted average ``(gain * new + old) / (1 + gain)`` of two solutions.

    A gain of 1 weights both equally; smaller gains move more slowly, which
    damps oscillating solutions.
    """
    if not gain > 0:
        raise ValueError(f"gain must be positive, got {gain}")
    return (new * gain + old) / (1.0 + gain)


def _opening_structure(width: int) -> np.ndarray:
    # A diamond of radius ``width``: regions narrower than that are noise, not structure.
    return ndimage.iterate_structure(ndimage.generate_binary_structure(2, 1), int(width))


def apply_thresholds(image: np.ndarray, high: np.ndarray | None = None, low: np.ndarray | None = None,
                     width: int = 2) -> np.ndarray:
    """Set pixels above ``high`` (below ``low``) to that threshold, in place.

    Isolated flagged pixels are left alone: the flags are first passed
    through a binary opening of radius ``width``, so only coherent regions at
    least that wide are clamped. Noise spikes are not structure to suppress.

    Returns
    -------
    ndarray
        ``image``, modified in place.
    """
    structure = _opening_structure(width) if width > 0 else None
    for threshold, flagged in ((high, None if high is None else image > high),
                               (low, None if low is None else image < low)):
        if threshold is None:
            continue
        if structure is not None:
            flagged = morphology.binary_opening(flagged, structure)
        image[flagged] = threshold[flagged]
    return image


def clamp_iteration(new: np.ndarray, old: np.ndarray, factor: float, width: int = 2) -> np.ndarray:
    """Limit the change of one subfilter image between iterations (in place).

    Values above ``|old| * factor`` or below ``old / factor`` (after the
    opening of `apply_thresholds`) are set to those limits. ``factor`` is
    LSST's ``regularizeModelIterations``; 0 disables the clamp.
    """
    if factor <= 0:
        return new
    return apply_thresholds(new, high=np.abs(old) * factor, low=old / factor, width=width)


def noise_level(image: np.ndarray, background: np.ndarray, buffer: int = 5) -> float:
    """Standard deviation of ``image`` over ``background`` pixels, ignoring a ``buffer`` border."""
    ny, nx = image.shape
    b = int(max(buffer, 0))
    if ny > 2 * b and nx > 2 * b:
        inner = (slice(b, ny - b), slice(b, nx - b))
        image, background = image[inner], background[inner]
    values = image[background & np.isfinite(image)]
    return float(np.std(values)) if values.size else 0.0


def regularize_frequency(models: np.ndarray, factor: float, width: int, noise: float) -> np.ndarray:
    """Restrict each subfilter to a smooth function times the reference image (in place).

    Sources above the noise should not change by more than ``factor`` between
    narrow subfilters, so each subfilter may deviate from the mean of all
    subfilters by at most ``sqrt(factor)``. Deviations are measured on images
    smoothed by a Gaussian of sigma ``width``, offset by 3 sigma of the
    (smoothed) background noise so faint pixels do not divide by zero, and
    the resulting relative model is sharpened (unsharp mask, alpha = 3)
    before multiplying back by the reference. Whatever flux this moves is then
    spread evenly over all subfilters, so the sum over subfilters (the
    full-band image) is unchanged pixel by pixel: the regularization
    redistributes colour, it never creates or removes flux.

    Parameters
    ----------
    models : ndarray, shape (M, ny, nx)
    factor : float
        LSST ``regularizeModelFrequency``; 0 disables.
    width : int
        LSST ``regularizationWidth`` (pixels).
    noise : float
        Background noise of one subfilter image (see `noise_level`).
    """
    if factor <= 0:
        return models
    max_diff = np.sqrt(factor)
    reference = models.mean(axis=0)
    total = models.sum(axis=0, dtype=np.float64)
    bad = ~np.isfinite(reference) | (reference <= 0)
    if bad.all():
        return models
    reference = np.where(bad, 0.0, reference)
    # Smoothing by a Gaussian of FWHM ~ 2 width averages ~fwhm pixels of noise.
    noise_smooth = noise / (2.0 * width)
    smooth_ref = filters.gaussian_filter(reference, width, mode="constant") + 3.0 * noise_smooth
    low, high = smooth_ref / max_diff, smooth_ref * max_diff
    alpha = 3.0
    for k in range(models.shape[0]):
        model = apply_thresholds(models[k], high=high, low=low, width=width)
        relative = (filters.gaussian_filter(model, width, mode="constant") + 3.0 * noise_smooth) / smooth_ref
        relative += alpha * (relative - filters.gaussian_filter(relative, width / alpha))
        models[k] = relative * reference
    models += ((total - models.sum(axis=0, dtype=np.float64)) / models.shape[0])[None]
    return models


def model_weights(detected: np.ndarray, width: float) -> np.ndarray:
    """Weights tapering smoothly from 1 on detected sources to 0 far from them.

    A Gaussian (sigma ``width``) smoothing of the DETECTED footprint map,
    normalized to a maximum of 1. All zeros when nothing is detected.
    """
    if width < 0:
        raise ValueError(f"model_weights_width must not be negative, got {width}")
    weights = filters.gaussian_filter(detected.astype(np.float64), width)
    peak = weights.max(initial=0.0)
    return weights / peak if peak > 0 else weights


def apply_model_weights(models: np.ndarray, reference: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Blend each subfilter towards ``reference / M`` where ``weights`` fall to 0 (in place)."""
    m = models.shape[0]
    models *= weights
    models += (reference * (1.0 - weights) / m)[None]
    return models


def amplify(models: np.ndarray, factor: float) -> np.ndarray:
    """Scale each subfilter's deviation from the subfilter mean by ``factor`` (a new array)."""
    if factor == 1:
        return models
    reference = models.mean(axis=0)
    return (models - reference) * factor + reference


def progressive_gain(convergences: Sequence[float], gains: Sequence[float], base_gain: float,
                     progressive: bool = True) -> float:
    """Gain for the next iteration from past convergences and gains.

    The first two iterations use ``base_gain``. Afterwards the final
    convergence is estimated from each past step,
    ``c_final ≈ ((1 + g_i) c_{i+1} − c_i) / g_i`` (clipped at 0, median of the
    last five); the convergence the last gain should have produced is
    ``(c_final g + c_prev) / (1 + g)``; the new gain is ``1 − |δ|`` with δ the
    prediction error relative to the expected improvement, averaged with the
    last gain and never below ``base_gain``.

    Parameters
    ----------
    convergences : sequence of float
        Convergence metric before the first iteration and after each one.
    gains : sequence of float
        Gains used so far; must be one shorter than ``convergences``.

    Raises
    ------
    ValueError
        If the lengths do not match.
    """
    n = len(convergences)
    if n != len(gains) + 1:
        raise ValueError(f"need one more convergence value ({n}) than gains ({len(gains)})")
    if not progressive or n <= 2:
        return float(base_gain)
    c = np.asarray(convergences, dtype=float)
    g = np.asarray(gains, dtype=float)
    final = ((1.0 + g) * c[1:] - c[:-1]) / g
    final = float(np.median(np.clip(final, 0.0, None)[max(n - 5, 0):]))
    last_gain, last_conv, new_conv = g[-1], c[-2], c[-1]
    predicted = (final * last_gain + last_conv) / (1.0 + last_gain)
    expected_change = (last_conv - final) / (1.0 + last_gain)
    delta = (predicted - new_conv) / expected_change if expected_change != 0 else 1.0
    new_gain = (1.0 - abs(delta) + last_gain) / 2.0
    return float(max(base_gain, new_gain))
