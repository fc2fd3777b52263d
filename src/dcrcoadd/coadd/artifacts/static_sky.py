"""The static-sky model of compare-warp: the clipped-mean stack of the PSF-matched warps.

Each tile reads every warp with a buffer of its kernel radius, so a tile's pixels do not depend on
the tiling and tiles can run in any order, on any worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dcrcoadd.coadd.artifacts.psf_matching import (
    WarpSource,
    gaussian_kernel1d,
    kernel_radius,
    match_warp,
    matching_sigma,
)
from dcrcoadd.config.schema import StaticSkyConfig
from dcrcoadd.core.geom import Box
from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.ops.stack import StackControl, make_control, stack
from dcrcoadd.parallel import Mapper, map_tasks, tiles


@dataclass
class StaticSkyTask:
    """One tile of the static sky: the warps (restricted to what the tile reads) and how to stack."""

    box: Box
    warps: list[WarpSource]
    sigmas: list[float]  # matching sigma of each warp
    weights: np.ndarray  # stacking weight of each PSF-matched warp
    planes: MaskPlanes
    invalid_mask: int
    control: StackControl


def static_sky_tile(task: StaticSkyTask) -> tuple[np.ndarray, np.ndarray]:
    """Static-sky image and variance over ``task.box`` (float32, NaN where no warp is usable)."""
    sub, n = task.box, len(task.warps)
    nodata = np.uint32(task.planes.value_if_present(["NO_DATA"]))
    imgs = np.full((n,) + sub.shape, np.nan, np.float32)
    # A scatter-based stack never reads the input variances: the matched variance (a third of the
    # matching's convolutions) is then not computed, and the stack gets NaN in its place.
    with_variance = task.control.calc_error_from_input_variance
    if with_variance:
        vars_ = np.full((n,) + sub.shape, np.nan, np.float32)
    else:
        vars_ = np.broadcast_to(np.float32(np.nan), (n,) + sub.shape)
    masks = np.full((n,) + sub.shape, nodata, np.uint32)
    for i, (warp, s) in enumerate(zip(task.warps, task.sigmas, strict=True)):
        got = match_warp(warp, sub, s, task.planes, task.invalid_mask, with_variance=with_variance)
        if got is None:
            continue
        crop, exp, m = got
        sl = crop.slices(sub)
        imgs[i][sl] = m.image
        if with_variance:
            vars_[i][sl] = m.variance
        masks[i][sl] = exp.mask | np.where(np.isfinite(m.image), np.uint32(0), nodata)
    res = stack(imgs, vars_, masks, task.weights, task.control)
    return res.image, res.variance


def worker_tile_size(box: Box, tile_size: tuple[int, int], mapper: Mapper | None) -> tuple[int, int]:
    """``tile_size``, or a smaller one that gives a mapper with N worker processes at least N tiles.

    A patch smaller than one subregion would otherwise be a single task for one worker while
    the others wait. Tiling changes no output bit (each pixel depends only on the same input
    pixels whatever the tile), only how the work is shared; serial and Dask mappers, whose
    worker count is not known here, keep ``tile_size``.
    """
    workers = int(getattr(mapper, "workers", 1) or 1)
    w, h = min(tile_size[0], box.width), min(tile_size[1], box.height)
    if workers <= 1 or w < 1 or h < 1:
        return tuple(tile_size)

    def count(w: int, h: int) -> int:
        return -(-box.width // w) * -(-box.height // h)

    while count(w, h) < workers and max(w, h) > 64:
        if h >= w:
            h = -(-h // 2)
        else:
            w = -(-w // 2)
    return (w, h)


def build_static_sky(warps: Sequence[WarpSource], bbox: Box, planes: MaskPlanes, settings: StaticSkyConfig,
                     target_sigma: float, *, invalid_mask: int, tile_size: tuple[int, int],
                     mapper: Mapper | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Static-sky model: the stack of the PSF-matched warps over ``bbox``, tile by tile.

    Parameters
    ----------
    warps : sequence of WarpSource
        Each with a PSF and a weight.
    bbox : Box
    planes : MaskPlanes
    settings : StaticSkyConfig
        Statistic, clipping and bad planes of the stack.
    target_sigma : float
        Sigma (pixels) of the common Gaussian model PSF.
    invalid_mask : int
        Bits that exclude a pixel from the PSF-matching convolution.
    tile_size : (int, int)
    mapper : Mapper, optional
        Runs the tiles (`dcrcoadd.parallel`); default serial.

    Returns
    -------
    image, variance : ndarray of float32 over ``bbox``
    """
    # (a plane no input defines excludes nothing: named, it has been warned about, `configured_planes`)
    bad_planes = [name for name in settings.bad_mask_planes if name in planes]
    control = make_control(planes, statistic=settings.statistic, bad_mask_planes=bad_planes,
                           sigma_clip=settings.sigma_clip, clip_iter=settings.clip_iter,
                           calc_error_from_input_variance=settings.calc_error_from_input_variance)
    sigmas = [matching_sigma(w.psf, target_sigma) for w in warps]
    # Matched-warp weights: 1 / mean matched variance, which is the direct one times sum(k^2).
    weights = np.array([w.weight / (np.sum(gaussian_kernel1d(s) ** 2) ** 2)
                        for w, s in zip(warps, sigmas, strict=True)])

    # at least one tile per worker process: tiling changes no pixel (see the module notes)
    parts = tiles(bbox, worker_tile_size(bbox, tile_size, mapper))
    tasks = ((tile.index, StaticSkyTask(
        tile.box, [w.restricted(tile.box.grow(kernel_radius(s))) for w, s in zip(warps, sigmas, strict=True)],
        sigmas, weights, planes, invalid_mask, control)) for tile in parts)
    image = np.full(bbox.shape, np.nan, np.float32)
    variance = np.full(bbox.shape, np.nan, np.float32)
    for index, (tile_image, tile_variance) in map_tasks(static_sky_tile, tasks, mapper):
        sl = parts[index].box.slices(bbox)
        image[sl], variance[sl] = tile_image, tile_variance
    return image, variance


__all__ = ["StaticSkyTask", "build_static_sky", "static_sky_tile", "worker_tile_size"]
