"""One-dimensional correlations along image columns without the cache penalty of power-of-two widths.

``scipy.ndimage.correlate1d(..., axis=0)`` walks down columns. When a row is a multiple of a few
KiB long (1024 or 2048 float32 pixels: the width of most CCDs and of our default tiles), every
pixel of a column falls in the same few cache sets and the pass runs 4-5 times slower than the
same pass along rows (12 ms instead of 3 ms on a 1024² float32 image). Copying the input into rows
padded by a few pixels breaks the aliasing. Each output column is computed from the same input
column with the same arithmetic whatever the memory layout, so the result is bit for bit that of
the plain call.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Row lengths (bytes) that are a multiple of this are padded.
ALIASING_BYTES = 1024
#: Pixels added to each padded row (keeps rows 64-byte aligned, breaks the power-of-two stride).
ROW_PAD = 16


def aliased_rows(shape: tuple[int, ...], itemsize: int) -> bool:
    """Whether a C-ordered 2-d array of ``shape`` has rows whose length in bytes invites cache aliasing."""
    return len(shape) == 2 and shape[0] > 1 and (shape[1] * itemsize) % ALIASING_BYTES == 0


def correlate_columns(arr: np.ndarray, weights: np.ndarray, *, mode: str = "constant", cval: float = 0.0,
                      output=np.float32) -> np.ndarray:
    """``ndimage.correlate1d(arr, weights, axis=0, mode=mode, cval=cval, output=output)`` bit for bit.

    For a 2-d ``arr`` with aliasing row lengths (`aliased_rows`) the input is copied into padded
    rows and the result is a view of padded rows (not C-contiguous); otherwise the plain call.
    """
    arr = np.asarray(arr)
    out_dtype = np.dtype(output)
    if not (aliased_rows(arr.shape, arr.dtype.itemsize) or aliased_rows(arr.shape, out_dtype.itemsize)):
        return ndimage.correlate1d(arr, weights, axis=0, mode=mode, cval=cval, output=out_dtype)
    src = _padded(arr.shape, arr.dtype)
    src[...] = arr
    out = _padded(arr.shape, out_dtype)
    ndimage.correlate1d(src, weights, axis=0, mode=mode, cval=cval, output=out)
    return out


def _padded(shape: tuple[int, int], dtype) -> np.ndarray:
    """An uninitialized ``shape`` array whose rows are `ROW_PAD` elements apart more than its width."""
    return np.empty((shape[0], shape[1] + ROW_PAD), dtype)[:, :shape[1]]


def gaussian_filter(arr: np.ndarray, sigma, *, mode: str = "reflect", cval: float = 0.0,
                    truncate: float = 4.0, output=None) -> np.ndarray:
    """``ndimage.gaussian_filter(arr, sigma, mode=mode, cval=cval, truncate=truncate, output=output)``
    bit for bit, with the passes through padded rows when ``arr`` is 2-d with aliasing row lengths
    (about 1.5x faster on 1024² and 2048-wide float64 images). ``output`` is a dtype or None (the
    input's); the result is C-contiguous.
    """
    arr = np.asarray(arr)
    out_dtype = np.dtype(arr.dtype if output is None else output)
    if not (aliased_rows(arr.shape, arr.dtype.itemsize) or aliased_rows(arr.shape, out_dtype.itemsize)):
        return ndimage.gaussian_filter(arr, sigma, mode=mode, cval=cval, truncate=truncate, output=out_dtype)
    src = _padded(arr.shape, arr.dtype)
    src[...] = arr
    out = _padded(arr.shape, out_dtype)
    ndimage.gaussian_filter(src, sigma, mode=mode, cval=cval, truncate=truncate, output=out)
    return np.ascontiguousarray(out)


__all__ = ["ALIASING_BYTES", "ROW_PAD", "aliased_rows", "correlate_columns", "gaussian_filter"]
