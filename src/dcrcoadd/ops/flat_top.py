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
top of fewer pixels, goes unseen. The pixels of a top's value connected to it, and those it encloses
(a cosmic ray on the core), are masked with it. A core clipped before the image was divided by its flat
field or had a sloping sky subtracted is not one value and goes unseen too.
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
    a flat top, with the pixels of its value connected to it (`_grow`)."""
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
    for label in np.flatnonzero(flat):
        _grow(image, ys[on == label], xs[on == label], low[label], out)
    return out


def _grow(image: np.ndarray, ys: np.ndarray, xs: np.ndarray, value: float, out: np.ndarray) -> None:
    """Mark in ``out`` the pixels of exactly ``value`` connected to the flat top ``(ys, xs)``, and those
    they enclose: the pixels next to a cosmic ray on it (which is brighter) and those below
    `BRIGHT_SIGMA` belong to it too (a star clipped with a cosmic ray on its core kept 5 of its 14
    pixels otherwise)."""
    ny, nx = image.shape
    margin = 8
    while True:  # (in a box about the top, widened while the plateau reaches its edge)
        y0, y1 = max(ys.min() - margin, 0), min(ys.max() + margin + 1, ny)
        x0, x1 = max(xs.min() - margin, 0), min(xs.max() + margin + 1, nx)
        seed = np.zeros((y1 - y0, x1 - x0), bool)
        seed[ys - y0, xs - x0] = True
        grown = ndimage.binary_propagation(seed, structure=np.ones((3, 3), bool),
                                           mask=image[y0:y1, x0:x1] == value)
        cut = ((y0 > 0 and grown[0].any()) or (y1 < ny and grown[-1].any())
               or (x0 > 0 and grown[:, 0].any()) or (x1 < nx and grown[:, -1].any()))
        if not cut:  # (a pixel the plateau encloses, a cosmic ray on it say, is the star's core too)
            out[y0:y1, x0:x1] |= ndimage.binary_fill_holes(grown)
            return
        margin *= 2


__all__ = ["BRIGHT_SIGMA", "MIN_PIXELS", "flat_tops"]
