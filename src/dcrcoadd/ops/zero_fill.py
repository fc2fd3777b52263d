"""Exact zeros that fill for missing data: an off-chip border or gap written as 0, not masked.

Resampling code commonly writes 0 where a warp has no input pixel. With a mask bit (NO_DATA) or an
infinite variance that is missing data; without one, the zeros go into a coadd as a measured sky of
exactly 0 under every source that crosses them, and a DCR model spreads the damage inwards (up to
250 sigma 10-30 px inside a 6-px zero border of one warp in six, measured).

Noise never leaves a long run of exact zeros: even in integer pixels with a noise of one count
(zero 40 % of the time) a run of `ZERO_RUN` is a one-in-two-million chance per position. A noiseless
image (a simulation) has exact zeros everywhere between its sources; `noisy` tells it apart.
"""

from __future__ import annotations

import numpy as np

#: Exact zeros in a row or column run of at least this many pixels are a fill, not data.
ZERO_RUN = 16
#: A region whose non-zero pixels are negative at least this often has noise (a noiseless
#: sky-subtracted image has none below 0): its runs of zeros are a fill.
NOISY_NEGATIVE_FRACTION = 0.1


def _runs_along(zero: np.ndarray, length: int, axis: int) -> np.ndarray:
    """Pixels of ``zero`` inside a run of at least ``length`` along ``axis``."""
    n = zero.shape[axis]
    if n < length:
        return np.zeros_like(zero)
    z = np.moveaxis(zero, axis, 0).astype(np.int32)
    counts = np.concatenate([np.zeros((1, *z.shape[1:]), np.int32), np.cumsum(z, axis=0)])
    full = (counts[length:] - counts[:-length]) == length  # window [i, i + length) all zero
    # a pixel is in a run when some full window covers it: windows starting in (j - length, j]
    starts = np.concatenate([np.zeros((1, *z.shape[1:]), np.int32), np.cumsum(full, axis=0, dtype=np.int32)])
    j = np.arange(n)
    hi = np.minimum(j, n - length) + 1
    lo = np.maximum(j - length + 1, 0)
    covered = (starts[hi] - starts[lo]) > 0
    return np.moveaxis(covered, 0, axis)


def zero_runs(image: np.ndarray, length: int = ZERO_RUN,
              where: np.ndarray | None = None) -> np.ndarray | None:
    """Where ``image`` is exactly 0 (and ``where``, default everywhere) in a row or column run of at
    least ``length`` pixels; None when nowhere. Only rows and columns with that many zeros are
    searched (one reduction decides the common case)."""
    zero = image == 0
    if where is not None:
        zero &= where
    if np.count_nonzero(zero) < length:
        return None
    runs = np.zeros_like(zero)
    for axis in (0, 1):  # runs along columns, then along rows
        lines = np.flatnonzero(zero.sum(axis=axis) >= length)
        if lines.size:
            index = (slice(None), lines) if axis == 0 else (lines, slice(None))
            runs[index] |= _runs_along(zero[index], length, axis)
    return runs if runs.any() else None


def noisy(image: np.ndarray, good: np.ndarray) -> bool:
    """Whether the non-zero ``good`` pixels of ``image`` show noise (enough of them below 0)."""
    values = image[good & (image != 0)]
    return values.size > 0 and np.count_nonzero(values < 0) >= NOISY_NEGATIVE_FRACTION * values.size


__all__ = ["NOISY_NEGATIVE_FRACTION", "ZERO_RUN", "noisy", "zero_runs"]
