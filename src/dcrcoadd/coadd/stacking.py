"""Stacking the warps tile by tile (LSST ``assembleSubregion``), and the coadd mask rules that
follow it (``setInexactPsf``, ``applyAltEdgeMask``).

Each tile reads only its own pixels of every warp, applies the warp's alternative mask, counts
``n_image``, clears the planes in ``remove_mask`` and stacks with `dcrcoadd.ops.stack` (LSST's
statistics and mask propagation). A MEAN stack holds one warp's tile at a time. Every output pixel
depends only on the same input pixels whatever the tile size, so a tiled coadd equals a one-tile
coadd bit for bit, and tiles can run in any order, on any worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dcrcoadd.coadd.artifacts.masks import ArtifactMask
from dcrcoadd.coadd.artifacts.static_sky import worker_tile_size
from dcrcoadd.coadd.inputs import CoaddInput
from dcrcoadd.core.geom import Box
from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.ops.stack import MeanAccumulator, StackControl, StackResult, good_pixels, stack
from dcrcoadd.parallel import Mapper, map_tasks, tiles


def _load(inp: CoaddInput, sub: Box, alt: ArtifactMask | None, planes: MaskPlanes, alt_bad: int):
    """Image, variance, mask of ``inp`` over ``sub`` (NaN / NO_DATA outside the warp), alt mask applied."""
    exp = inp.read(sub)
    if exp is not None and exp.bbox == sub:
        # The warp covers the tile: `CoaddInput.read` returned fresh arrays, used as they are
        # (the casts are those of the assignments below).
        image = exp.image.astype(np.float32, copy=False)
        variance = exp.variance.astype(np.float32, copy=False)
        mask = exp.mask.astype(np.uint32, copy=False)
        if alt is not None:
            alt.apply(mask, sub, planes, alt_bad)
        return image, variance, mask
    image = np.full(sub.shape, np.nan, np.float32)
    variance = np.full(sub.shape, np.nan, np.float32)
    mask = np.full(sub.shape, np.uint32(planes.value("NO_DATA")), np.uint32)
    if exp is not None:
        sl = exp.bbox.slices(sub)
        image[sl], variance[sl], mask[sl] = exp.image, exp.variance, exp.mask
    if alt is not None:
        alt.apply(mask, sub, planes, alt_bad)
    return image, variance, mask


def assemble_subregion(inputs: Sequence[CoaddInput], alt_masks: Sequence[ArtifactMask | None], sub: Box,
                       control: StackControl, planes: MaskPlanes, *, remove_mask: int = 0,
                       alt_bad_mask: int = 0) -> tuple[StackResult, np.ndarray]:
    """Stack one subregion (LSST ``assembleSubregion``).

    Returns
    -------
    result : StackResult
    n_image : ndarray of int32
        Inputs neither masked by a bad plane (after the alternative masks) nor NaN.
    """
    n_image = np.zeros(sub.shape, np.int32)
    keep = np.uint32(~remove_mask & 0xFFFFFFFF)
    if control.statistic == "MEAN":
        acc = MeanAccumulator(sub.shape, control)
        for inp, alt in zip(inputs, alt_masks, strict=True):
            image, variance, mask = _load(inp, sub, alt, planes, alt_bad_mask)
            n_image += good_pixels(image, mask, control.bad_mask)
            acc.add(image, variance, mask & keep, inp.weight)
        return acc.result(), n_image
    n = len(inputs)
    images = np.empty((n,) + sub.shape, np.float32)
    variances = np.empty_like(images)
    masks = np.empty((n,) + sub.shape, np.uint32)
    for i, (inp, alt) in enumerate(zip(inputs, alt_masks, strict=True)):
        images[i], variances[i], mask = _load(inp, sub, alt, planes, alt_bad_mask)
        n_image += good_pixels(images[i], mask, control.bad_mask)
        masks[i] = mask & keep
    return stack(images, variances, masks, [inp.weight for inp in inputs], control), n_image


@dataclass
class StackTask:
    """One tile of the stack: the inputs and alternative masks restricted to it, and how to stack."""

    box: Box
    inputs: list[CoaddInput]
    alt_masks: list[ArtifactMask | None]
    control: StackControl
    planes: MaskPlanes
    remove_mask: int
    alt_bad_mask: int


@dataclass
class StackedTile:
    """What a tile sends back: the stacked planes and ``n_image`` over its box."""

    image: np.ndarray
    variance: np.ndarray
    mask: np.ndarray
    n_image: np.ndarray


def stack_tile(task: StackTask) -> StackedTile:
    """Stack one tile (a pure function of ``task``; see `assemble_subregion`)."""
    res, n_image = assemble_subregion(task.inputs, task.alt_masks, task.box, task.control, task.planes,
                                      remove_mask=task.remove_mask, alt_bad_mask=task.alt_bad_mask)
    return StackedTile(res.image, res.variance, res.mask, n_image)


def stack_patch(inputs: Sequence[CoaddInput], alt_masks: Sequence[ArtifactMask | None], box: Box,
                control: StackControl, planes: MaskPlanes, *, remove_mask: int, alt_bad_mask: int,
                tile_size: tuple[int, int], mapper: Mapper | None = None) -> StackedTile:
    """Stack ``box`` tile by tile (`stack_tile`), the tiles run by ``mapper`` (default serial).

    Returns
    -------
    StackedTile
        Over the whole of ``box``: image, variance (float32), mask (uint32), n_image (int32).
    """
    out = StackedTile(np.empty(box.shape, np.float32), np.empty(box.shape, np.float32),
                      np.empty(box.shape, np.uint32), np.empty(box.shape, np.int32))
    parts = tiles(box, worker_tile_size(box, tile_size, mapper))
    tasks = ((tile.index, StackTask(
        tile.box, [inp.restricted(tile.box) for inp in inputs],
        [None if alt is None else alt.restricted(tile.box) for alt in alt_masks],
        control, planes, remove_mask, alt_bad_mask)) for tile in parts)
    for index, got in map_tasks(stack_tile, tasks, mapper):
        sl = parts[index].box.slices(box)
        out.image[sl], out.variance[sl], out.mask[sl], out.n_image[sl] = \
            got.image, got.variance, got.mask, got.n_image
    return out


def set_inexact_psf(mask: np.ndarray, planes: MaskPlanes) -> None:
    """INEXACT_PSF wherever SENSOR_EDGE, CLIPPED or REJECTED is set (LSST ``setInexactPsf``)."""
    trigger = planes.value_if_present(["SENSOR_EDGE", "CLIPPED", "REJECTED"])
    mask[(mask & np.uint32(trigger)) != 0] |= np.uint32(planes.value("INEXACT_PSF"))


def apply_alt_edge_mask(mask: np.ndarray, box: Box, planes: MaskPlanes,
                        alt_masks: Sequence[ArtifactMask | None]) -> None:
    """SENSOR_EDGE and INEXACT_PSF wherever a warp's alternative mask has EDGE (LSST ``applyAltEdgeMask``)."""
    value = np.uint32(planes.value("SENSOR_EDGE", "INEXACT_PSF"))
    for alt in alt_masks:
        if alt is not None and "EDGE" in alt.planes and len(alt.planes["EDGE"]):
            mask[alt.planes["EDGE"].to_mask(box)] |= value


__all__ = ["StackTask", "StackedTile", "apply_alt_edge_mask", "assemble_subregion", "set_inexact_psf",
           "stack_patch", "stack_tile"]
