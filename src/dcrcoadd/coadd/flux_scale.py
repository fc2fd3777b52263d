"""Do the warps agree on flux? A check of their flux calibrations against each other.

A FLUXCAL (or MAGZERO) in the wrong unit, or for another exposure time, scales one warp's image by a
large factor; nothing else in the pipeline notices, and the coadd, the DCR model and every template
carry it (a warp 1000x too bright owned the coadd wherever it was the only one). Each warp's
calibrated image is summed over a lattice of blocks fixed on the coadd region; over the blocks where
the median of the warps that cover them whole is bright, the median of a warp's sums divided by that
median is its flux scale relative to the others. Block sums, not pixels, so that seeing and DCR
(which move flux by a pixel or two, inside a block) change them little.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dcrcoadd.core.geom import Box

#: Side of the blocks (px): at least `MIN_BLOCK`, `BLOCK_PER_FWHM` times the widest PSF's FWHM (so
#: that a star's wings stay in its block whatever the seeing), and large enough for at most
#: `MAX_BLOCKS` blocks (the sums of every warp are held at once).
MIN_BLOCK = 16
BLOCK_PER_FWHM = 4.0
MAX_BLOCKS = 1 << 16
#: A block counts as bright where the median of its sums is this many times its noise: well above
#: what a sky-subtraction residual adds to a block.
BRIGHT_SNR = 50.0
#: Fewer bright blocks than this measure nothing (a small region, or an empty field).
MIN_BRIGHT_BLOCKS = 5
#: A warp whose fluxes are this many times the others' (or a fraction that small) is mis-calibrated:
#: a unit mistake (a zero point for ADU per second, a magnitude off by 1 or more), not weather.
MAX_FLUX_RATIO = 2.0
#: Beyond this factor a warp is used but warned about: on the simulated validation fields (the 14
#: scenarios of ``python -m benchmarks.scenarios``, seeds 1-3, seeing up to 0.5-1.6") honest warps keep
#: within 0.96-1.03 of the median (17-73 bright blocks), so a quarter is a calibration error (or clouds
#: no calibration took out).
WARN_FLUX_RATIO = 1.25


def block_size(box: Box, fwhm: float = math.nan) -> int:
    """The side of the blocks for a coadd region ``box`` whose widest PSF has ``fwhm`` pixels (NaN:
    not known)."""
    side = max(MIN_BLOCK, math.ceil(math.sqrt(box.area / MAX_BLOCKS)))
    return max(side, math.ceil(BLOCK_PER_FWHM * fwhm)) if math.isfinite(fwhm) else side


@dataclass
class BlockFlux:
    """One warp's sums over the blocks of the lattice that start at the coadd region's origin.

    ``flux`` covers lattice blocks ``[by0, by0 + ny) x [bx0, bx0 + nx)``; a block the warp does not
    cover whole with good pixels is NaN. ``noise``: the standard deviation of one block's sum (from
    the warp's mean variance).
    """

    by0: int
    bx0: int
    flux: np.ndarray
    noise: float


def lattice_range(box: Box, region: Box, block: int) -> tuple[int, int, int, int]:
    """``(by0, bx0, ny, nx)``: the lattice blocks (of side ``block``, from ``region``'s origin) that
    ``box`` touches."""
    by0, bx0 = (box.y0 - region.y0) // block, (box.x0 - region.x0) // block
    by1, bx1 = -((region.y0 - box.y1) // block), -((region.x0 - box.x1) // block)
    return by0, bx0, by1 - by0, bx1 - bx0


def _reduce_blocks(values: np.ndarray, y0: int, x0: int, block: int) -> np.ndarray:
    """Sums of ``values`` over the blocks it touches, the lattice's origin at ``(-y0, -x0)`` of it
    (``y0, x0``: the array's offset from the lattice's origin)."""
    rows = np.unique(np.r_[0, np.arange((-y0) % block, values.shape[0], block)])
    cols = np.unique(np.r_[0, np.arange((-x0) % block, values.shape[1], block)])
    return np.add.reduceat(np.add.reduceat(values, rows, axis=0), cols, axis=1)


class BlockAccumulator:
    """Sums one warp's pieces (read subregion by subregion) into its `BlockFlux`.

    Bad pixels enter as NaN, so that a block holding one is NaN: no count of good pixels is kept
    (this runs over every pixel of every warp, and costs about 4 ms per million pixels).
    """

    def __init__(self, overlap: Box, region: Box, block: int):
        self.overlap, self.region, self.block = overlap, region, block
        self.by0, self.bx0, ny, nx = lattice_range(overlap, region, self.block)
        self.flux = np.zeros((ny, nx), dtype=np.float32)

    def add(self, image: np.ndarray, good: np.ndarray, box: Box) -> None:
        """Add a piece covering ``box`` (inside the overlap), its pixels not ``good`` as missing."""
        by, bx, ny, nx = lattice_range(box, self.region, self.block)
        where = (slice(by - self.by0, by - self.by0 + ny), slice(bx - self.bx0, bx - self.bx0 + nx))
        values = np.where(good, image, np.float32(np.nan))
        self.flux[where] += _reduce_blocks(values, box.y0 - self.region.y0, box.x0 - self.region.x0,
                                           self.block)

    def result(self, mean_variance: float) -> BlockFlux:
        """The sums, NaN where a block reaches beyond the overlap (the warp's edge, the region's)."""
        b = self.block
        ys = self.region.y0 + b * (self.by0 + np.arange(self.flux.shape[0]))
        xs = self.region.x0 + b * (self.bx0 + np.arange(self.flux.shape[1]))
        inside = (((ys >= self.overlap.y0) & (ys + b <= self.overlap.y1))[:, None]
                  & ((xs >= self.overlap.x0) & (xs + b <= self.overlap.x1))[None, :])
        return BlockFlux(self.by0, self.bx0, np.where(inside, self.flux, np.float32(np.nan)),
                         math.sqrt(b * b * mean_variance))


@dataclass
class FluxScale:
    """One warp's fluxes relative to the others'."""

    ratio: float  # median over its bright blocks of its sum / the median of all warps' sums; NaN: unmeasured
    n_blocks: int  # bright blocks measured


def relative_flux_scales(blocks: Sequence[BlockFlux], region: Box, block: int) -> list[FluxScale]:
    """Each warp's `FluxScale` against the median of all (``blocks``: one per warp, on the lattice
    of ``region`` with blocks of side ``block``).

    A block counts where at least three warps cover it whole and the median of their sums is
    `BRIGHT_SNR` times the median warp's noise; fewer than `MIN_BRIGHT_BLOCKS` such blocks leave a warp
    unmeasured. Two warps are each measured against the other.
    """
    if len(blocks) < 2:
        return [FluxScale(math.nan, 0) for _ in blocks]
    shape = lattice_range(region, region, block)[2:]
    flux = np.full((len(blocks),) + shape, np.nan, dtype=np.float32)
    for i, b in enumerate(blocks):
        flux[i, b.by0:b.by0 + b.flux.shape[0], b.bx0:b.bx0 + b.flux.shape[1]] = b.flux
    if len(blocks) == 2:  # (each reference judged bright in its own noise)
        references = [(flux[1], blocks[1].noise), (flux[0], blocks[0].noise)]
    else:
        enough = np.isfinite(flux).sum(axis=0) >= 3
        median = np.full(shape, np.nan, dtype=np.float32)
        median[enough] = np.nanmedian(flux[:, enough], axis=0)
        references = [(median, float(np.median([b.noise for b in blocks])))] * len(blocks)
    scales = []
    for i, (reference, noise) in enumerate(references):
        use = np.isfinite(flux[i]) & (reference > BRIGHT_SNR * noise)  # (NaN compares False)
        k = int(np.count_nonzero(use))
        if k < MIN_BRIGHT_BLOCKS:
            scales.append(FluxScale(math.nan, 0))
        else:
            scales.append(FluxScale(float(np.median(flux[i][use] / reference[use])), k))
    return scales


def flux_ratio(image: np.ndarray, reference: np.ndarray, good: np.ndarray, mean_variance: float,
               fwhm: float = math.nan) -> FluxScale:
    """``image``'s fluxes against ``reference``'s on the same pixels: the median over the blocks bright
    in ``image`` (`BRIGHT_SNR` times the noise of its block sums, from its ``mean_variance``: a
    calibration off scales its noise too) and whole in ``good`` of the ratio of their sums. Blocks
    from the arrays' first pixel, `BLOCK_PER_FWHM` times the PSF's ``fwhm`` (px) a side or more; a
    partial block at the far edges is left out. For two images at one PSF (a template and its science
    exposure)."""
    block = block_size(Box.from_shape(image.shape), fwhm)
    ny, nx = (image.shape[0] // block) * block, (image.shape[1] // block) * block
    if not (ny and nx and mean_variance > 0):
        return FluxScale(math.nan, 0)
    cut = (slice(0, ny), slice(0, nx))
    nan = np.float32(np.nan)
    sums = [_reduce_blocks(np.where(good[cut], a[cut], nan).astype(np.float32), 0, 0, block)
            for a in (image, reference)]
    bright = sums[0] > BRIGHT_SNR * block * math.sqrt(mean_variance)
    use = np.isfinite(sums[0]) & np.isfinite(sums[1]) & bright
    k = int(np.count_nonzero(use))
    if k < MIN_BRIGHT_BLOCKS:
        return FluxScale(math.nan, 0)
    return FluxScale(float(np.median(sums[0][use] / sums[1][use])), k)


def times(ratio: float) -> str:
    """``ratio`` for a message: "1000", "1.49", "0.001" (not "1e+03")."""
    return f"{ratio:.0f}" if abs(ratio) >= 100 else f"{ratio:.3g}" if abs(ratio) >= 0.01 else f"{ratio:.1g}"


def fluxes_against(scale: FluxScale, whose: str) -> str:
    """``scale`` for a message: "its fluxes are 988 times <whose> (median of 13 bright blocks)"."""
    return f"its fluxes are {times(scale.ratio)} times {whose} (median of {scale.n_blocks} bright blocks)"


def calibration_looks_wrong(card: str | None, value: float) -> str:
    """What is said of a flux calibration (``card``, ``value`` nJy per image unit) off by more than
    `MAX_FLUX_RATIO`."""
    return (f"its {card or 'flux calibration'} ({value:.6g} nJy per image unit) looks wrong: a zero point in "
            "another unit, or for another exposure time?")


#: What is said of fluxes off by more than `WARN_FLUX_RATIO` but within `MAX_FLUX_RATIO`.
CHECK_CALIBRATION = "check its flux calibration (clouds that no calibration took out?)"


def is_off(scale: FluxScale, factor: float = MAX_FLUX_RATIO) -> bool:
    """Whether ``scale`` is more than ``factor`` from 1, either way (at the default, `MAX_FLUX_RATIO`:
    the warp's flux calibration is wrong)."""
    return math.isfinite(scale.ratio) and not (1 / factor <= scale.ratio <= factor)


__all__ = ["BRIGHT_SNR", "CHECK_CALIBRATION", "MAX_FLUX_RATIO", "MIN_BRIGHT_BLOCKS", "WARN_FLUX_RATIO",
           "BlockAccumulator", "BlockFlux", "FluxScale", "block_size", "calibration_looks_wrong",
           "flux_ratio", "fluxes_against", "is_off", "lattice_range", "relative_flux_scales", "times"]
