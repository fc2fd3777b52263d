"""Cutting a patch into tiles: the units of work every stage hands to a mapper."""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

from dcrcoadd.core.geom import Box


@dataclass(frozen=True)
class Tile:
    """One tile of a patch.

    Attributes
    ----------
    index : int
        Position in the patch's fixed tile order (row by row from the patch origin); results,
        checkpoints and logs are keyed by it.
    box : Box
        The pixels this tile owns: tiles of a patch do not overlap and cover it.
    buffered : Box
        ``box`` grown by the buffer and clipped to the patch (or to the region given as
        ``within``): the pixels the tile's work reads.
    """

    index: int
    box: Box
    buffered: Box


def tiles(patch: Box, size: int | tuple[int, int], buffer: int = 0, *, even: bool = False,
          within: Box | None = None) -> list[Tile]:
    """Cut ``patch`` into tiles of at most ``size`` (``(width, height)``) pixels, row by row.

    The order, and so every tile's index, depends only on ``patch``, ``size`` and ``even``. Each
    tile's ``buffered`` box is its box grown by ``buffer`` pixels on every side, clipped to ``within``
    (default ``patch``; a larger box where there are data beyond the patch to read).
    ``even=False`` cuts full-size tiles from the patch's origin, leaving the remainder to the last
    row and column (LSST's subregions: a 2048-px side at 2000 makes a 48-px strip); ``even=True``
    cuts each side into as few equal parts as fit (sides differ by at most one pixel), so no tile
    is a thin strip dominated by its buffer.
    """
    if buffer < 0:
        raise ValueError(f"tile buffer must not be negative, got {buffer}")
    boxes = _even_boxes(patch, size) if even else list(patch.subregions(size))
    limit = patch if within is None else within
    return [Tile(index, box, box.grow(buffer).clip(limit) if buffer else box)
            for index, box in enumerate(boxes)]


def _even_boxes(patch: Box, size: int | tuple[int, int]) -> list[Box]:
    sx, sy = (size, size) if isinstance(size, Integral) else size
    if sx <= 0 or sy <= 0:
        raise ValueError(f"subregion size must be positive, got {size!r}")

    def cuts(start: int, length: int, most: int) -> list[int]:
        n = -(-length // most)
        return [start + (k * length) // n for k in range(n + 1)]

    xs, ys = cuts(patch.x0, patch.width, int(sx)), cuts(patch.y0, patch.height, int(sy))
    return [Box.from_corners(x0, y0, x1, y1)
            for y0, y1 in zip(ys[:-1], ys[1:], strict=True) for x0, x1 in zip(xs[:-1], xs[1:], strict=True)]
