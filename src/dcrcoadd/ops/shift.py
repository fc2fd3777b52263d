"""Sub-pixel image shifts and their adjoints: the innermost kernels of the DCR solver.

A shift by a constant ``(dy, dx)`` moves image content by ``+dy, +dx``: a point
source at ``(y, x)`` ends at ``(y + dy, x + dx)``. Output pixel ``o`` samples the
input at ``c = o - shift`` on each axis. Because the shift is the same for every
pixel, the interpolation is separable: along each axis it is an integer offset
plus a short correlation with fixed weights (2 taps for ``order=1``, bilinear; 4
taps for ``order=3``, the cubic B-spline evaluated on prefiltered coefficients).
The kernels here apply those correlations with numpy slicing, in row chunks that
stay in cache, which is several times faster than `scipy.ndimage.shift`
(see ``benchmarks/shift.py``).

Agreement with scipy and LSST
-----------------------------
LSST's ``DcrModel``/``applyDcr`` shifts with ``scipy.ndimage.shift`` in its
default ``mode='constant'``, ``cval=0`` (for ``order=3`` after
``scipy.ndimage.spline_filter``, whose ``'mirror'`` boundary is the one
``mode='constant'`` uses). `shift_image` reproduces that operator exactly,
borders included:

- an output pixel whose sample position ``c`` lies outside ``[0, n - 1]`` on either
  axis is 0 (no partial interpolation with the zero padding: scipy's
  ``'constant'``, not ``'grid-constant'``), decided with the same float64
  arithmetic as scipy, so even a shift of ``1e-12`` px zeroes one edge row;
- inside, cubic taps that fall one sample beyond the edge read the mirrored
  coefficient (``coef[-1] = coef[1]``, ``coef[n] = coef[n - 2]``), as scipy does.

For float64 input everything runs in float64 and agrees with scipy to ~1e-15.
For float32 input the passes accumulate in float32 and the ``order=3``
coefficients are stored in float32, which is what makes them fast: the result
differs from a float64 scipy reference by at most a few float32 ulps of the image
scale (measured 1.1e-7 for order 1 and 1.7e-7 for order 3, relative to
``max|image|``, against 2.5e-8 and 5e-8 for scipy's own float32 output, which
computes in float64 and rounds once). Pass float64 where that matters.

Forward, reverse and adjoint
----------------------------
`reverse_shift` (shift by ``-d``) is what LSST's iterative solver uses as ``B*``
(DESIGN.md), and what ``dcrcoadd.dcr.solvers.iterative`` should call for LSST parity.
`shift_image_adjoint` is the exact transpose ``B^T`` of `shift_image` as a
linear operator (``<B x, y> == <x, B^T y>`` to rounding), for solvers that need
true gradients. Away from the borders the two are the same operator: for
``order=1``, ``B^T`` with fractional part ``f`` has taps ``(f, 1 - f)`` at the
reverse offset, exactly the reverse shift; for ``order=3``, ``B^T = P^T S^T``
applies the transposed prefilter last while the reverse shift applies ``P``
first, which is the same in the interior. They differ:

- at the borders: the reverse shift is all or nothing, full interpolation where
  its sample lies inside the image and 0 in a strip of ``ceil(|d|)`` pixels on
  the side the forward shift moves content towards; ``B^T`` gives each pixel
  the total weight that valid forward outputs drew from it, so it tapers over
  one pixel at both ends (e.g. ``d = 1.3``, order 1, applied to ones: reverse
  ``1 ... 1 0 0``, adjoint ``0.3 1 ... 1 0.7 0``), and for ``order=3`` the
  mirrored taps fold back differently;
- for ``order=3``, also within ~10 px of the borders: ``P`` is not symmetric at
  the mirror boundary (``P^T = D P D^{-1}`` with ``D = diag(1/2, 1, ..., 1, 1/2)``),
  and that difference decays as ``0.268**distance`` from the edge.

Non-finite input
----------------
Callers zero bad pixels before shifting, but if NaN or inf reaches the kernels:

- ``order=1``: an output is NaN exactly when one of its (up to 2x2) taps with a
  non-zero weight reads a non-finite input; whole-pixel shifts (on either axis)
  move NaN without spreading it (scipy also spreads it through zero-weight taps).
- ``order=3``: a plain B-spline prefilter is an infinite (recursive) filter, so
  scipy returns an all-NaN image. `spline_prefilter` instead filters the image
  with non-finite pixels set to 0 and then marks those pixels' coefficients NaN,
  so an output is NaN exactly when one of its (up to 4x4) taps touches a
  non-finite input; other outputs are those of the image with the bad pixels
  zeroed. `shift_image_adjoint` makes no such promise (its transposed prefilter
  runs last and spreads NaN along rows and columns).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

__all__ = [
    "reverse_shift",
    "shift_image",
    "shift_image_adjoint",
    "shift_many",
    "spline_prefilter",
]

# Rows of output processed per chunk: each chunk's intermediate (rows x nx) and
# scratch stay within L2 for typical subregion widths, so the two passes do not
# stream the whole image through memory twice.
_CHUNK_BYTES = 512 * 1024

_ORDERS = (1, 3)


# ---------------------------------------------------------------------------
# One axis: the 1-D operator as a list of strided "terms"
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Term:
    """``dst[d0:d0+length] += weight * src[s0:s0+length]`` along one axis."""

    weight: float
    d0: int
    s0: int
    length: int


@dataclass(frozen=True)
class _AxisOp:
    """A 1-D banded operator of size ``n``, as gather terms over output indices.

    ``lo, hi`` bound the outputs that can be non-zero; the first term is the
    longest, so it can initialise most of the output without a zero fill.
    """

    n: int
    lo: int
    hi: int
    terms: tuple[_Term, ...]

    def transposed(self) -> _AxisOp:
        terms = tuple(
            sorted(
                (_Term(t.weight, t.s0, t.d0, t.length) for t in self.terms),
                key=lambda t: -t.length,
            )
        )
        if not terms:
            return _AxisOp(self.n, 0, 0, ())
        lo = min(t.d0 for t in terms)
        hi = max(t.d0 + t.length for t in terms)
        return _AxisOp(self.n, lo, hi, terms)


def _bspline3(x: float) -> float:
    """Cubic B-spline ``beta3(x)``."""
    x = abs(x)
    if x < 1.0:
        return 2.0 / 3.0 - x * x + 0.5 * x * x * x
    if x < 2.0:
        return (2.0 - x) ** 3 / 6.0
    return 0.0


def _mirror(k: int, n: int) -> int:
    """Index ``k`` folded into ``[0, n)`` by whole-sample mirroring (scipy ``'mirror'``)."""
    if n == 1:
        return 0
    period = 2 * (n - 1)
    k %= period
    return period - k if k >= n else k


def _taps(frac: float, order: int) -> tuple[int, list[float]]:
    """First tap offset relative to ``floor(c)`` and the tap weights for fraction ``frac``."""
    if order == 1:
        return 0, [1.0 - frac, frac]
    return -1, [_bspline3(frac + 1.0), _bspline3(frac), _bspline3(1.0 - frac), _bspline3(2.0 - frac)]


@lru_cache(maxsize=1024)
def _axis_op(n: int, shift: float, order: int) -> _AxisOp:
    """The 1-D shift operator along an axis of length ``n`` (sample ``c = o - shift``)."""
    # Validity uses scipy's own float64 expression so borders agree bit for bit.
    coord = np.arange(n, dtype=np.float64) + (-shift)
    valid = np.flatnonzero((coord >= 0.0) & (coord <= n - 1))
    if valid.size == 0:
        return _AxisOp(n, 0, 0, ())
    lo, hi = int(valid[0]), int(valid[-1]) + 1
    q = math.floor(-shift)
    frac = -shift - q
    if frac >= 1.0:  # -shift a hair below an integer rounds up
        q, frac = q + 1, 0.0
    base, weights = _taps(frac, order)
    # Zero-weight taps are dropped so an exact integer shift never reads (or
    # multiplies a NaN by) a neighbour.
    taps = [(base + j, w) for j, w in enumerate(weights) if w != 0.0]
    off_min = q + taps[0][0]
    off_max = q + taps[-1][0]
    ia = max(lo, -off_min)
    ib = min(hi, n - off_max)
    terms: list[_Term] = []
    if ia < ib:
        terms = [_Term(w, ia, ia + q + j, ib - ia) for j, w in taps]
    else:
        ia = ib = lo
    edges = list(range(lo, ia)) + list(range(max(ib, lo), hi))
    for o in edges:
        folded: dict[int, float] = {}
        for j, w in taps:
            k = _mirror(o + q + j, n)
            folded[k] = folded.get(k, 0.0) + w
        terms.extend(_Term(w, o, k, 1) for k, w in folded.items())
    terms.sort(key=lambda t: -t.length)
    return _AxisOp(n, lo, hi, tuple(terms))


# ---------------------------------------------------------------------------
# Applying two axis operators to an image
# ---------------------------------------------------------------------------
def _axis_slice(axis: int, start: int, stop: int) -> tuple[slice, ...]:
    return (slice(start, stop),) if axis == 0 else (slice(None), slice(start, stop))


def _clip_terms(op: _AxisOp, a: int, b: int, dtype: type) -> tuple[bool, list[tuple]]:
    """Terms of ``op`` restricted to outputs ``[a, b)``: ``(weight, start, stop, src - dst)``.

    The flag says whether the first term covers all of ``[a, b)`` and can
    initialise the output by assignment (otherwise it needs a zero fill first).
    """
    clipped = []
    for t in op.terms:
        ga, gb = max(t.d0, a), min(t.d0 + t.length, b)
        if ga < gb:
            clipped.append((dtype(t.weight), ga, gb, t.s0 - t.d0))
    covers = bool(clipped) and clipped[0][1] == a and clipped[0][2] == b
    return covers, clipped


def _gather(terms: tuple[bool, list[tuple]], src: np.ndarray, dst: np.ndarray, axis: int, a: int, b: int,
            doff: int, scratch: np.ndarray) -> None:
    """Set ``dst`` (outputs ``[a, b)`` along ``axis``, stored at ``index - doff``) from clipped terms."""
    covers, clipped = terms
    if not covers:
        dst[_axis_slice(axis, a - doff, b - doff)] = 0
    first = covers
    for w, ga, gb, shift in clipped:
        d = dst[_axis_slice(axis, ga - doff, gb - doff)]
        s = src[_axis_slice(axis, ga + shift, gb + shift)]
        if first:
            np.multiply(s, w, out=d)
            first = False
        else:
            tmp = scratch[: d.size].reshape(d.shape)
            np.multiply(s, w, out=tmp)
            np.add(d, tmp, out=d)


def _apply(src: np.ndarray, op_y: _AxisOp, op_x: _AxisOp, out: np.ndarray) -> np.ndarray:
    """``out = (op_y ⊗ op_x) src``, zero outside the operators' output ranges.

    The y pass of a chunk of output rows goes to a small buffer that the x
    pass then reads while it is still in cache.
    """
    nx = out.shape[1]
    if op_y.lo >= op_y.hi or op_x.lo >= op_x.hi:
        out[...] = 0
        return out
    out[: op_y.lo] = 0
    out[op_y.hi :] = 0
    out[:, : op_x.lo] = 0
    out[:, op_x.hi :] = 0
    dtype = out.dtype.type
    width = max(nx, src.shape[1], 1)
    rows = max(1, min(op_y.hi - op_y.lo, _CHUNK_BYTES // (out.itemsize * width)))
    tmp_buf = np.empty((rows, src.shape[1]), dtype=dtype)
    scratch = np.empty(rows * width, dtype=dtype)
    x_terms = _clip_terms(op_x, op_x.lo, op_x.hi, dtype)
    for r0 in range(op_y.lo, op_y.hi, rows):
        r1 = min(r0 + rows, op_y.hi)
        tmp = tmp_buf[: r1 - r0]
        _gather(_clip_terms(op_y, r0, r1, dtype), src, tmp, 0, r0, r1, r0, scratch)
        _gather(x_terms, tmp, out[r0:r1], 1, op_x.lo, op_x.hi, 0, scratch)
    return out


# ---------------------------------------------------------------------------
# Argument checking
# ---------------------------------------------------------------------------
def _work_dtype(image: np.ndarray) -> np.dtype:
    """float64 for float64 input (any byte order), float32 for everything else."""
    wide = image.dtype.kind == "f" and image.dtype.itemsize >= 8
    return np.dtype(np.float64) if wide else np.dtype(np.float32)


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"shift: expected a 2-D image, got shape {image.shape}")
    if np.iscomplexobj(image):
        raise ValueError("shift: complex images are not supported")
    return image


def _check_shift(shift: Sequence[float] | np.ndarray) -> tuple[float, float]:
    values = np.asarray(shift, dtype=np.float64).ravel()
    if values.shape != (2,) or not np.all(np.isfinite(values)):
        raise ValueError(f"shift: expected a finite (dy, dx) pair, got {shift!r}")
    return float(values[0]), float(values[1])


def _check_order(order: int) -> int:
    if order not in _ORDERS:
        raise ValueError(f"shift: order must be one of {_ORDERS}, got {order!r}")
    return int(order)


def _prepare_out(out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype,
                 image: np.ndarray) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=dtype)
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(f"shift: out must have shape {shape} and dtype {dtype}, "
                         f"got {out.shape} {out.dtype}")
    if np.may_share_memory(out, image):
        raise ValueError("shift: out must not overlap the input image")
    return out


def _integer_shift(image: np.ndarray, iy: int, ix: int, out: np.ndarray) -> np.ndarray:
    """Exact shift by whole pixels (content moves by ``+iy, +ix``), zero fill."""
    ny, nx = image.shape
    out[...] = 0
    ys, yd = (slice(0, max(ny - iy, 0)), slice(iy, ny)) if iy >= 0 else (slice(-iy, ny), slice(0, ny + iy))
    xs, xd = (slice(0, max(nx - ix, 0)), slice(ix, nx)) if ix >= 0 else (slice(-ix, nx), slice(0, nx + ix))
    if abs(iy) < ny and abs(ix) < nx:
        out[yd, xd] = image[ys, xs]
    return out


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------
def spline_prefilter(image: np.ndarray) -> np.ndarray:
    """Cubic B-spline coefficients of ``image``, to reuse for many ``order=3`` shifts.

    Parameters
    ----------
    image : numpy.ndarray
        2-D image.

    Returns
    -------
    numpy.ndarray
        Coefficients with the image's float precision (float64 stays float64,
        anything else becomes float32), computed with scipy's ``'mirror'``
        boundary, which is what ``scipy.ndimage.shift(..., mode='constant')``
        uses. Non-finite pixels are treated as 0 by the filter and their own
        coefficients are NaN, so NaN reaches only outputs whose 4x4 interpolation
        footprint touches them (see the module notes).
    """
    image = _check_image(image)
    dtype = _work_dtype(image)
    # A float64 sum of float32 values cannot overflow, so it is finite iff every pixel is.
    if np.isfinite(np.sum(image, dtype=np.float64)):
        return ndimage.spline_filter(image, order=3, output=dtype, mode="mirror")
    bad = ~np.isfinite(image)
    coef = ndimage.spline_filter(np.where(bad, 0, image), order=3, output=dtype, mode="mirror")
    coef[bad] = np.nan
    return coef


def shift_image(image: np.ndarray, shift: Sequence[float] | np.ndarray, order: int = 1, *,
                out: np.ndarray | None = None, prefiltered: bool = False) -> np.ndarray:
    """Shift an image by a constant sub-pixel ``(dy, dx)``.

    Content moves by ``+dy, +dx``. Equal, up to float32 rounding and borders
    included, to ``scipy.ndimage.shift(image, shift, order=order, mode='constant',
    cval=0, prefilter=not prefiltered)``, which is what LSST's ``applyDcr`` does.

    Parameters
    ----------
    image : numpy.ndarray
        2-D image; for ``order=3`` with ``prefiltered=True``, its spline
        coefficients from `spline_prefilter`.
    shift : sequence of 2 float
        ``(dy, dx)`` in pixels.
    order : {1, 3}
        1: bilinear (LSST's default ``image_interp_order``); 3: cubic B-spline.
    out : numpy.ndarray, optional
        Output array of the image's shape and work dtype, not overlapping ``image``.
    prefiltered : bool
        ``order=3`` only (ignored for ``order=1``): ``image`` already holds
        spline coefficients.

    Returns
    -------
    numpy.ndarray
        The shifted image, float32 (float64 for float64 input). Pixels whose
        sample position lies outside the input are 0. A zero or whole-pixel
        shift is an exact copy/offset (for ``order=3`` only when
        ``prefiltered=False``; from coefficients it is exact to rounding).
    """
    image = _check_image(image)
    dy, dx = _check_shift(shift)
    order = _check_order(order)
    dtype = _work_dtype(image)
    out = _prepare_out(out, image.shape, dtype, image)
    if dy.is_integer() and dx.is_integer() and not (order == 3 and prefiltered):
        return _integer_shift(image, int(dy), int(dx), out)
    ny, nx = image.shape
    src = image
    if order == 3 and not prefiltered:
        src = spline_prefilter(image)
    elif src.dtype != dtype:
        src = src.astype(dtype)
    return _apply(src, _axis_op(ny, dy, order), _axis_op(nx, dx, order), out)


def reverse_shift(image: np.ndarray, shift: Sequence[float] | np.ndarray, order: int = 1, *,
                  out: np.ndarray | None = None, prefiltered: bool = False) -> np.ndarray:
    """Shift by ``-shift``: the ``B*`` of LSST's iterative solver (not the true adjoint).

    Parameters and result as `shift_image`; see the module notes for how this
    differs from `shift_image_adjoint`.
    """
    dy, dx = _check_shift(shift)
    return shift_image(image, (-dy, -dx), order, out=out, prefiltered=prefiltered)


def shift_image_adjoint(image: np.ndarray, shift: Sequence[float] | np.ndarray, order: int = 1, *,
                        out: np.ndarray | None = None) -> np.ndarray:
    """Exact transpose of `shift_image` (with ``prefiltered=False``) as a linear operator.

    ``np.vdot(shift_image(x, d, k), y) == np.vdot(x, shift_image_adjoint(y, d, k))``
    to rounding, for any ``x, y``.

    Parameters
    ----------
    image : numpy.ndarray
        2-D image in the output space of the forward shift.
    shift : sequence of 2 float
        The forward shift ``(dy, dx)`` whose transpose is applied.
    order : {1, 3}
        Interpolation order of the forward shift.
    out : numpy.ndarray, optional
        Output array of the image's shape and work dtype, not overlapping ``image``.

    Returns
    -------
    numpy.ndarray
        ``B^T image``, float32 (float64 for float64 input).
    """
    image = _check_image(image)
    dy, dx = _check_shift(shift)
    order = _check_order(order)
    dtype = _work_dtype(image)
    out = _prepare_out(out, image.shape, dtype, image)
    if dy.is_integer() and dx.is_integer():
        # Whole-pixel shifts are permutations with zero fill: the transpose is the reverse.
        return _integer_shift(image, -int(dy), -int(dx), out)
    ny, nx = image.shape
    src = image if image.dtype == dtype else image.astype(dtype)
    _apply(src, _axis_op(ny, dy, order).transposed(), _axis_op(nx, dx, order).transposed(), out)
    if order == 3:
        _prefilter_transpose(out)
    return out


def _prefilter_transpose(values: np.ndarray) -> None:
    """Apply ``P^T`` in place, with ``P`` the mirror-boundary spline prefilter, per axis.

    The mirror-boundary reconstruction matrix ``R = P^{-1}`` is tridiagonal
    ``(1, 4, 1)/6`` with doubled couplings ``R[0, 1] = R[n-1, n-2] = 2/6``, and
    ``R^T = D R D^{-1}`` with ``D = diag(1/2, 1, ..., 1, 1/2)``; hence
    ``P^T = D P D^{-1}``: double the edge samples, prefilter, halve them again.
    """
    for axis in (0, 1):
        n = values.shape[axis]
        if n < 2:
            continue
        edges = _axis_slice(axis, 0, 1), _axis_slice(axis, n - 1, n)
        for e in edges:
            values[e] *= 2
        ndimage.spline_filter1d(values, order=3, axis=axis, output=values, mode="mirror")
        for e in edges:
            values[e] *= 0.5


def shift_many(image: np.ndarray, shifts: Sequence[Sequence[float]] | np.ndarray, order: int = 1, *,
               out: np.ndarray | None = None, prefiltered: bool = False) -> np.ndarray:
    """Shift one image by several ``(dy, dx)``, prefiltering once for ``order=3``.

    Parameters
    ----------
    image : numpy.ndarray
        2-D image (or its spline coefficients with ``prefiltered=True``).
    shifts : array_like, shape (S, 2)
        The shifts.
    order : {1, 3}
        Interpolation order.
    out : numpy.ndarray, optional
        ``(S, ny, nx)`` output stack of the work dtype.
    prefiltered : bool
        ``order=3`` only: ``image`` already holds spline coefficients.

    Returns
    -------
    numpy.ndarray
        Stack ``(S, ny, nx)``; ``result[k] == shift_image(image, shifts[k], order)``.
    """
    image = _check_image(image)
    order = _check_order(order)
    shifts = np.asarray(shifts, dtype=np.float64)
    if shifts.ndim != 2 or shifts.shape[1] != 2:
        raise ValueError(f"shift_many: expected shifts of shape (S, 2), got {shifts.shape}")
    dtype = _work_dtype(image)
    out = _prepare_out(out, (len(shifts),) + image.shape, dtype, image)
    coef = image
    if order == 3 and not prefiltered and not all(float(v).is_integer() for v in shifts.ravel()):
        coef = spline_prefilter(image)
        prefiltered = True
    for k, s in enumerate(shifts):
        # Whole-pixel shifts of the original image stay exact.
        if order == 3 and coef is not image and float(s[0]).is_integer() and float(s[1]).is_integer():
            shift_image(image, s, order, out=out[k])
        else:
            shift_image(coef, s, order, out=out[k], prefiltered=prefiltered)
    return out
