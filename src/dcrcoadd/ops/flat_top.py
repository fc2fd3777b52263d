"""Saturated pixels without a SAT bit: a star's core cut flat at one value.

A saturated star whose pixels carry no SAT bit (a pipeline that clips at the full well and masks
nothing, or a mask plane lost on the way) enters a coadd, a DCR model or a difference image as a star
with a flat core: against its template, the science exposure of the simulated probe field left a
residual of 238 sigma there, with no word. Its core is a flat top: connected pixels that all share one
value exactly, none of them below a neighbour, far above the noise. Noise never makes one: in the
brightest core of an integer image with a noise of a few counts, five connected pixels tying exactly
at a local maximum is a one-in-millions chance. Nor does a noiseless image (a simulation's truth): a
smooth peak centred on a pixel corner ties four pixels, not five; and an image without noise (no
pixel below 0, `dcrcoadd.ops.zero_fill.noisy`) is not examined. A star barely saturated, with a flat
top of fewer pixels, goes unseen.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from dcrcoadd.ops.zero_fill import noisy

#: A flat top has at least this many connected pixels of one value ...
MIN_PIXELS = 5
#: ... this many sigma (of the pixel's own noise) above 0.
BRIGHT_SIGMA = 50.0


def flat_tops(image: np.ndarray, variance: np.ndarray, good: np.ndarray) -> np.ndarray | None:
    """Pixels of ``image`` in a flat top (module notes) among its ``good`` pixels; None when none.

    Only the pixels `BRIGHT_SIGMA` sigma above 0 are examined (few, in a whole CCD): those with no
    neighbour brighter, grouped by 8-connectivity; a group of `MIN_PIXELS` or more all of one value is
    a flat top."""
    # (candidates above the threshold of the smallest variance first: a few passes over a whole CCD)
    least = float(np.min(variance, where=good, initial=np.inf))
    if not math.isfinite(least):
        return None
    with np.errstate(invalid="ignore"):
        index = np.flatnonzero((image > BRIGHT_SIGMA * math.sqrt(max(least, 0.0))) & good)
        index = index[image.ravel()[index] > BRIGHT_SIGMA * np.sqrt(np.maximum(variance.ravel()[index], 0))]
    if index.size < MIN_PIXELS:
        return None
    ny, nx = image.shape
    ys, xs = np.unravel_index(index, image.shape)
    values = image.ravel()[index]
    top = np.ones(ys.size, bool)  # no neighbour brighter
    tied = np.zeros(ys.size, bool)  # a neighbour of exactly its value
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                y, x = ys + dy, xs + dx
                inside = (y >= 0) & (y < ny) & (x >= 0) & (x < nx)
                neighbour = image[np.clip(y, 0, ny - 1), np.clip(x, 0, nx - 1)]
                top &= ~(inside & (neighbour > values))  # (a NaN neighbour is not brighter)
                tied |= inside & (neighbour == values)
    keep = top & tied  # (every pixel of a flat top is both: in honest images next to none are)
    if np.count_nonzero(keep) < MIN_PIXELS:
        return None
    ys, xs, values = ys[keep], xs[keep], values[keep]
    # group them, in the box that holds them
    y0, x0 = ys.min(), xs.min()
    candidates = np.zeros((ys.max() - y0 + 1, xs.max() - x0 + 1), bool)
    candidates[ys - y0, xs - x0] = True
    labels, n = ndimage.label(candidates, structure=np.ones((3, 3), bool))
    on = labels[ys - y0, xs - x0]
    size = np.bincount(on, minlength=n + 1)
    low = np.full(n + 1, np.inf)
    high = np.full(n + 1, -np.inf)
    np.minimum.at(low, on, values)
    np.maximum.at(high, on, values)
    flat = (size >= MIN_PIXELS) & (low == high)
    flat[0] = False
    # (a noiseless image, a test's constant one say, is no exposure: nothing tells a cut core there)
    if not flat.any() or not noisy(image, good):
        return None
    out = np.zeros(image.shape, bool)
    out[y0:y0 + candidates.shape[0], x0:x0 + candidates.shape[1]] = flat[labels]
    return out


__all__ = ["BRIGHT_SIGMA", "MIN_PIXELS", "flat_tops"]
