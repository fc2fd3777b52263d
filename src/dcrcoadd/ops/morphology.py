"""Binary dilation, erosion and opening by small structuring elements, as shifted slices.

``scipy.ndimage.binary_dilation`` with a disk of radius 4 takes ~27 ms on a 1024² mask (it
visits every element of the structure at every pixel through a generic iterator); the same result
as the union (dilation) or intersection (erosion) of shifted copies of the mask takes a few
milliseconds: each row of the structure is first combined along the rows of the mask, then the
row results are combined at their vertical offsets. Booleans have no rounding: the results equal
scipy's exactly (``border_value=0``, one iteration, centred origin), for any structure.
"""

from __future__ import annotations

import numpy as np


def _offsets(structure: np.ndarray) -> dict[int, tuple[int, ...]]:
    """``{dy: (dx, ...)}`` of the true elements of a 2-d structure, relative to its centre."""
    s = np.asarray(structure, dtype=bool)
    if s.ndim != 2:
        raise ValueError(f"structure must be 2-d, got {s.ndim}-d")
    cy, cx = s.shape[0] // 2, s.shape[1] // 2
    rows: dict[int, tuple[int, ...]] = {}
    for y, x in zip(*np.nonzero(s), strict=True):
        rows.setdefault(int(y) - cy, ())
        rows[int(y) - cy] += (int(x) - cx,)
    return rows


def _shift_combine(out: np.ndarray, src: np.ndarray, dy: int, dx: int, erode: bool) -> None:
    """``out[y, x] (or|and)= src[y + dy, x + dx]``, ``src`` False outside itself."""
    ny, nx = src.shape
    y0, y1 = max(0, -dy), min(ny, ny - dy)
    x0, x1 = max(0, -dx), min(nx, nx - dx)
    if y0 >= y1 or x0 >= x1:
        if erode:
            out[...] = False
        return
    dst = out[y0:y1, x0:x1]
    part = src[y0 + dy:y1 + dy, x0 + dx:x1 + dx]
    if erode:
        np.logical_and(dst, part, out=dst)
        out[:y0], out[y1:], out[:, :x0], out[:, x1:] = False, False, False, False
    else:
        np.logical_or(dst, part, out=dst)


def _apply(mask: np.ndarray, structure: np.ndarray, erode: bool) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-d, got {mask.ndim}-d")
    rows = _offsets(structure)
    if not rows:  # an empty structure: scipy's erosion is all True, its dilation all False
        return np.full(mask.shape, erode, bool)
    # scipy dilates with the reflected structure: out[p] = any(mask[p - o]).
    sign = 1 if erode else -1
    combined: dict[tuple[int, ...], np.ndarray] = {}
    out = np.full(mask.shape, erode, bool)
    for dy, dxs in rows.items():
        key = tuple(sorted(dxs))
        if key not in combined:
            h = np.full(mask.shape, erode, bool)
            for dx in key:
                _shift_combine(h, mask, 0, sign * dx, erode)
            combined[key] = h
        _shift_combine(out, combined[key], sign * dy, 0, erode)
    return out


def binary_dilation(mask: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_dilation(mask, structure=structure)`` for a 2-d mask, faster."""
    return _apply(mask, structure, erode=False)


def binary_erosion(mask: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_erosion(mask, structure=structure)`` (outside the mask counts as False)."""
    return _apply(mask, structure, erode=True)


def binary_opening(mask: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_opening(mask, structure=structure)``: erosion, then dilation."""
    return binary_dilation(binary_erosion(mask, structure), structure)


__all__ = ["binary_dilation", "binary_erosion", "binary_opening"]
