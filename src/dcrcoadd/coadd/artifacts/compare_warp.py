"""Compare-warp transient artifact rejection (LSST ``CompareWarpAssembleCoaddTask``), the driver.

Steps, as LSST does them:

1. PSF-match every warp to one common Gaussian model PSF (`psf_matching`) and stack the
   PSF-matched warps into a static-sky model (clipped mean, NO_DATA the only bad plane,
   variance from the scatter) — `build_static_sky`, tile by tile.
2. Search each warp for outliers against the static sky and count, per pixel, the epochs in
   which a candidate appears — `detect_warp_candidates`, warp by warp.
3. Clip the candidates that are outliers in few epochs and not contained in a static-sky
   source (`filter_artifacts`). A source displaced by DCR in many epochs is persistent and
   survives; one displaced beyond its static-sky footprint only in the few most
   extreme-airmass visits is clipped there, as in LSST, which is why CLIPPED must not be a bad
   plane for the DCR model.
4. Each warp gets an `ArtifactMask`: CLIPPED (its clipped footprints), NO_DATA (pixels the
   PSF-matched warp could not cover) and EDGE (pixels whose PSF-matching kernel reached missing
   data); the coadd applies it before stacking.

Tiles and warps are independent tasks run through a mapper (`dcrcoadd.parallel`), with results
identical for every mapper.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dcrcoadd.coadd.artifacts.detection import find_artifacts
from dcrcoadd.coadd.artifacts.masks import ArtifactMask
from dcrcoadd.coadd.artifacts.psf_matching import WarpSource, model_sigma
from dcrcoadd.coadd.artifacts.static_sky import build_static_sky
from dcrcoadd.config.schema import ArtifactConfig
from dcrcoadd.core.geom import Box
from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.parallel import Mapper

log = logging.getLogger("dcrcoadd.coadd.artifacts.compare_warp")


@dataclass
class CompareWarpResult:
    """Everything compare-warp produced, over the coadd box."""

    artifact_masks: list[ArtifactMask]
    static_sky_image: np.ndarray
    static_sky_variance: np.ndarray
    epoch_count: np.ndarray
    n_image: np.ndarray
    model_sigma: float


def compare_warps(warps: Sequence[WarpSource], bbox: Box, planes: MaskPlanes, settings: ArtifactConfig, *,
                  bad_mask: int, tile_size: tuple[int, int],
                  mapper: Mapper | None = None) -> CompareWarpResult:
    """Run compare-warp over ``bbox``: static sky, detection, filtering (see the module notes).

    Parameters
    ----------
    warps : sequence of WarpSource
        Every warp needs a PSF.
    bbox : Box
    planes : MaskPlanes
        Must hold CLIPPED, NO_DATA and EDGE.
    settings : ArtifactConfig
    bad_mask : int
        Bits of unusable input pixels (the coadd's bad planes, without EDGE and CLIPPED).
    tile_size : (int, int)
        Tiles of the static sky, and pieces in which each warp is read.
    mapper : Mapper, optional
        Runs static-sky tiles and per-warp searches (`dcrcoadd.parallel`); default serial.
    """
    missing = [w.name for w in warps if w.psf is None]
    if missing:
        raise ValueError(f"compare-warp needs a PSF for every warp; missing for {', '.join(missing)}")
    target = model_sigma([w.psf for w in warps], settings.model_psf_fwhm)
    log.info("compare-warp: matching %d warps to a Gaussian PSF of sigma %.3f px", len(warps), target)
    image, variance = build_static_sky(warps, bbox, planes, settings.assemble_static_sky_model, target,
                                       invalid_mask=bad_mask, tile_size=tile_size, mapper=mapper)
    masks, epoch_count, n_image = find_artifacts(warps, bbox, planes, settings, image, variance, target,
                                                 bad_mask=bad_mask, tile_size=tile_size, mapper=mapper)
    return CompareWarpResult(masks, image, variance, epoch_count, n_image, target)


__all__ = ["CompareWarpResult", "compare_warps"]
