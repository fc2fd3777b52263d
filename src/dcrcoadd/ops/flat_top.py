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
    with np.errstate(invalid="ignore"):
        bright = good & (image > BRIGHT_SIGMA * np.sqrt(np.maximum(variance, 0)))
    ys, xs = np.nonzero(bright)
    if ys.size < MIN_PIXELS:
        return None
    ny, nx = image.shape
    values = image[ys, xs]
    top = np.ones(ys.size, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                ny_, nx_ = np.clip(ys + dy, 0, ny - 1), np.clip(xs + dx, 0, nx - 1)
                top &= ~(image[ny_, nx_] > values)  # (a NaN neighbour is not brighter)
    if np.count_nonzero(top) < MIN_PIXELS:
        return None
    candidates = np.zeros(image.shape, bool)
    candidates[ys[top], xs[top]] = True
    labels, n = ndimage.label(candidates, structure=np.ones((3, 3), bool))
    on = labels[ys[top], xs[top]]
    size = np.bincount(on, minlength=n + 1)
    low = np.full(n + 1, np.inf)
    high = np.full(n + 1, -np.inf)
    np.minimum.at(low, on, values[top])
    np.maximum.at(high, on, values[top])
    flat = (size >= MIN_PIXELS) & (low == high)
    flat[0] = False
    # (a noiseless image, a test's constant one say, is no exposure: nothing tells a cut core there)
    if not flat.any() or not noisy(image, good):
        return None
    return flat[labels]


__all__ = ["BRIGHT_SIGMA", "MIN_PIXELS", "flat_tops"]
