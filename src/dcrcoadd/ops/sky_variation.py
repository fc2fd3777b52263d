"""A sky that is not flat across a warp: a background left in, or scattered light.

A warp's sky is measured on a coarse grid of cells over the coadd region, from the low side of
each cell's pixel distribution (`dcrcoadd.ops.noise.sky_level_and_noise`: sources only add light),
outside its DETECTED footprints where it has them. What every warp shares (a galaxy's halo, a bright
star's wings, the survey's own background residual) is the median over the warps and is taken out;
what is left is the warp's own, and its trend across the region is a plane fitted to the cells
(`plane_range`).

A gradient of a few times the pixel noise across one warp in six is what the probes found a
variance check blamed on the variance plane: its sky pixels scattered 3.9 times what the variance
said (a 10-sigma gradient), or compare-warp's variance rescaling came out at 21 (4 sigma), and the
4-sigma one went into the coadd at its weight's share (1.2 sigma of the DCR coadd's noise end to end).
"""

from __future__ import annotations

import math

import numpy as np

from dcrcoadd.ops.noise import sky_level_and_noise

__all__ = ["CELL_SAMPLES", "MAX_CELLS", "SKY_VARIATION_WARN", "cell_grid", "cell_sky_levels",
           "less_cell_levels", "own_sky_variation", "plane_range"]

#: Cells per side of the region at most.
MAX_CELLS = 4
#: Samples a cell needs for its sky level (its error is then about 1.3 / sqrt(1000) of the noise).
CELL_SAMPLES = 1000
#: A warp whose own sky varies by this many times its pixel noise across the region (`plane_range`),
#: and by three times the warps' median variation, is warned about: its weight's share of it is in
#: every product. (Crowded fields of 0.5-1.6" seeing, where sources' wings reach every cell, gave
#: 1.1-1.4 for warps of the sharpest or widest seeing; gradients of 2 sigma came out at 1.8-2.1.)
SKY_VARIATION_WARN = 1.5


def cell_grid(shape: tuple[int, int], n_samples: int) -> tuple[int, int]:
    """Cells ``(ny, nx)`` over a region of ``shape`` sampled ``n_samples`` times (evenly), each with
    about `CELL_SAMPLES` samples or more, at most `MAX_CELLS` per side; (1, 1): too few to tell."""
    per_side = int(math.isqrt(max(n_samples, 0) // CELL_SAMPLES))
    ny = max(1, min(MAX_CELLS, per_side, shape[0]))
    nx = max(1, min(MAX_CELLS, per_side, shape[1]))
    return ny, nx


def _cell_index(y: np.ndarray, x: np.ndarray, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """The flat index of the cell of each pixel ``(y, x)`` of a region of ``shape``."""
    ny, nx = cells
    return (np.minimum((np.asarray(y) * ny) // shape[0], ny - 1) * nx
            + np.minimum((np.asarray(x) * nx) // shape[1], nx - 1))


def less_cell_levels(values: np.ndarray, y: np.ndarray, x: np.ndarray, shape: tuple[int, int],
                     levels: np.ndarray) -> np.ndarray:
    """``values`` at ``(y, x)`` less the level of their cell (`cell_sky_levels`; none where NaN)."""
    at = levels.reshape(-1)[_cell_index(y, x, shape, levels.shape)]
    return values - np.where(np.isfinite(at), at, 0.0)


def cell_sky_levels(values: np.ndarray, y: np.ndarray, x: np.ndarray, shape: tuple[int, int],
                    cells: tuple[int, int]) -> np.ndarray:
    """Sky level of each cell of the ``cells`` grid over a region of ``shape`` from the pixel
    ``values`` at rows ``y`` and columns ``x`` (region pixels); NaN for a cell with fewer than
    `CELL_SAMPLES` // 2 values (a warp's edge crossing it, or a masked area)."""
    ny, nx = cells
    index = _cell_index(y, x, shape, cells)
    order = np.argsort(index, kind="stable")
    bounds = np.searchsorted(index[order], np.arange(ny * nx + 1))
    levels = np.full(ny * nx, np.nan)
    for c in range(ny * nx):
        part = values[order[bounds[c]:bounds[c + 1]]]
        if part.size >= CELL_SAMPLES // 2:
            levels[c] = sky_level_and_noise(part)[0]
    return levels.reshape(ny, nx)


def own_sky_variation(levels: list[np.ndarray | None], units: list[float]) -> tuple[list[float], float]:
    """How much each warp's own sky varies across the region (`plane_range`), in its pixel noise,
    and the median over the warps (NaN with fewer than three measured).

    ``levels`` are the warps' `cell_sky_levels` (in their pixel noise; None: not measured) on one
    grid, ``units`` each warp's noise in one common flux unit. With three warps or more, their median
    in that unit is taken out cell by cell first (what they share is the sky's, not a warp's); with
    fewer, each is judged alone. NaN where too few cells were measured.
    """
    scaled = [None if lv is None or not math.isfinite(u) or u <= 0 else lv * u
              for lv, u in zip(levels, units, strict=True)]
    measured = [s for s in scaled if s is not None]
    shared = None
    if len(measured) >= 3 and len({s.shape for s in measured}) == 1:
        stack = np.stack(measured)
        enough = np.sum(np.isfinite(stack), axis=0) >= 3  # (a cell fewer warps reach is not compared)
        shared = np.full(stack.shape[1:], np.nan)
        shared[enough] = np.nanmedian(stack[:, enough], axis=0)
    out = [math.nan if s is None else plane_range((s if shared is None else s - shared) / u)
           for s, u in zip(scaled, units, strict=True)]
    typical = np.nanmedian(out) if np.count_nonzero(np.isfinite(out)) >= 3 else math.nan
    return out, float(typical)


def plane_range(cells: np.ndarray) -> float:
    """Largest minus smallest value over the region of a plane fitted (least squares) to the finite
    ``cells``, the smallest such range with any one cell left out: a background's smooth trend, which
    every cell shares, not one cell's excess. On crowded fields the low side of a cell comes from its
    sources' wings, which differ from warp to warp with the seeing: one cell beside a bright star on a
    96-px field lay 2-3 times the noise above the other warps' in the two of widest seeing, and the
    plane through all cells spanned 2.6 (0.2-0.7 for the others). NaN with fewer than 5 finite cells
    or a grid without two cells along some axis."""
    ny, nx = cells.shape
    y, x = np.mgrid[0:ny, 0:nx]
    ok = np.isfinite(cells)
    n = int(np.count_nonzero(ok))
    if n < 5 or ny < 2 or nx < 2:
        return math.nan
    design = np.column_stack([np.ones(n), x[ok], y[ok]])
    values = cells[ok]
    best = math.inf
    for leave in range(n):
        keep = np.arange(n) != leave
        _, bx, by = np.linalg.lstsq(design[keep], values[keep], rcond=None)[0]
        # (across the region the plane spans nx and ny cells)
        best = min(best, abs(bx) * nx + abs(by) * ny)
    return float(best)
