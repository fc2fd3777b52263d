"""Cutting a patch into tiles: the units of work every stage hands to a mapper."""

from __future__ import annotations

from dataclasses import dataclass

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
        ``box`` grown by the buffer and clipped to the patch: the pixels the tile's work reads.
    """

    index: int
    box: Box
    buffered: Box


def tiles(patch: Box, size: int | tuple[int, int], buffer: int = 0) -> list[Tile]:
    """Cut ``patch`` into tiles of at most ``size`` (``(width, height)``) pixels, row by row.

    The order, and so every tile's index, depends only on ``patch`` and ``size``. Each tile's
    ``buffered`` box is its box grown by ``buffer`` pixels on every side, clipped to ``patch``.
    """
    if buffer < 0:
        raise ValueError(f"tile buffer must not be negative, got {buffer}")
    return [Tile(index, box, box.grow(buffer).clip(patch) if buffer else box)
            for index, box in enumerate(patch.subregions(size))]
