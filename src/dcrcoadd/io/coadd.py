"""Baseline coadd files (``coadd.fits``) and compare-warp artifact-mask files.

``coadd.fits`` is the exposure format (`dcrcoadd.io.fits`) plus ``NIMAGE`` (int32: inputs
contributing to each pixel), ``INPUTS`` (binary table, one row per warp) and ``PSF_BEST`` (the
best-seeing coadd PSF the DCR model uses). An artifact-mask file holds one warp's alternative
mask planes (CLIPPED, NO_DATA, EDGE) over the coadd box.

The writers take what they write through small protocols, so this module needs nothing from
`dcrcoadd.coadd` (which sits above ``io``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from astropy.io import fits
from astropy.table import Table

from dcrcoadd.core.exposure import Exposure
from dcrcoadd.core.geom import Box
from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.core.psf import Psf
from dcrcoadd.io.atomic import atomic_output
from dcrcoadd.io.fits import exposure_hdus, read_exposure, write_hdus
from dcrcoadd.io.header import ascii_text
from dcrcoadd.io.products import mark_product


class AltMask(Protocol):
    """One warp's alternative mask (`dcrcoadd.coadd.artifacts.ArtifactMask`)."""

    name: str
    n_clipped: int

    def to_mask(self, box: Box, planes: MaskPlanes) -> np.ndarray:
        """uint32 mask over ``box`` with only this mask's planes set."""


class CoaddProducts(Protocol):
    """What `write_coadd` writes (`dcrcoadd.coadd.CoaddResult`)."""

    coadd: Exposure
    n_image: np.ndarray
    inputs: Sequence
    artifact_masks: Sequence[AltMask | None]
    psf_best_seeing: Psf | None
    config: Any  # a dcrcoadd.config.Config, or None; io/ sits below config/

    def inputs_table(self) -> Table:
        """One row per input warp."""


def write_coadd(result: CoaddProducts, path: str | os.PathLike, *,
                artifact_mask_dir: str | os.PathLike | None = None) -> Path:
    """Write the coadd atomically: the exposure format plus ``NIMAGE`` (int32 image),
    ``INPUTS`` (binary table, see `CoaddResult.inputs_table`) and ``PSF_BEST`` (best-seeing PSF).

    With ``config.artifacts.do_write_artifact_masks`` the artifact masks go to
    ``artifact_mask_dir`` (default ``<path's folder>/artifact_masks``), see `write_artifact_masks`.
    """
    path = Path(path)
    coadd = result.coadd
    hdus = exposure_hdus(coadd)
    hdus[0].header["NINPUTS"] = (len(result.inputs), "warps coadded")
    mark_product(hdus[0].header, "coadd")
    nhdr = fits.Header()
    nhdr["LTV1"], nhdr["LTV2"] = -coadd.origin[0], -coadd.origin[1]
    hdus.append(fits.ImageHDU(np.asarray(result.n_image, np.int32), nhdr, name="NIMAGE"))
    hdus.append(fits.table_to_hdu(result.inputs_table()))
    hdus[-1].name = "INPUTS"
    if result.psf_best_seeing is not None:
        hdus.append(fits.ImageHDU(result.psf_best_seeing.kernel.astype(np.float32), name="PSF_BEST"))
    write_hdus(hdus, path)
    cfg = result.config
    alt = [m for m in result.artifact_masks if m is not None]
    if cfg is not None and cfg.artifacts.do_write_artifact_masks and alt:
        out_dir = Path(artifact_mask_dir) if artifact_mask_dir is not None else path.parent / "artifact_masks"
        write_artifact_masks(alt, out_dir, coadd.bbox, coadd.mask_planes)
    return path


def read_coadd(path: str | os.PathLike) -> tuple[Exposure, np.ndarray | None, Table | None, Psf | None]:
    """Read a coadd written by `write_coadd`: ``(exposure, n_image, inputs, psf_best_seeing)``."""
    path = Path(path)
    exposure = read_exposure(path)
    with fits.open(path) as hdul:
        n_image = np.array(hdul["NIMAGE"].data, np.int32) if "NIMAGE" in hdul else None
        inputs = Table.read(hdul["INPUTS"]) if "INPUTS" in hdul else None
        best = Psf(hdul["PSF_BEST"].data) if "PSF_BEST" in hdul else None
    return exposure, n_image, inputs, best


def artifact_mask_path(directory: str | os.PathLike, name: str) -> Path:
    """``<directory>/<stem of name>_artifacts.fits``, the stem reduced to letters, digits, ``-_.``."""
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(name).stem) or "warp"
    return Path(directory) / f"{stem}_artifacts.fits"


def write_artifact_masks(masks: Sequence[AltMask], directory: str | os.PathLike, bbox: Box,
                         planes: MaskPlanes) -> list[Path]:
    """Write one FITS file per warp (`artifact_mask_path`) with a MASK extension over ``bbox``
    (``MP_<PLANE>`` bit keywords, ``LTV1/LTV2`` origin), atomically."""
    paths = []
    for m in masks:
        path = artifact_mask_path(directory, m.name)
        header = fits.Header()
        for key, bit in planes.to_header_cards().items():
            header[f"HIERARCH {key}" if len(key) > 8 else key] = bit
        header["LTV1"], header["LTV2"] = -bbox.x0, -bbox.y0
        primary = fits.PrimaryHDU()
        primary.header["SOURCE"] = (ascii_text(m.name)[:60], "warp these masks belong to")
        primary.header["NCLIPPED"] = (m.n_clipped, "artifact footprints clipped")
        mark_product(primary.header, "artifact_mask")
        image = fits.ImageHDU(m.to_mask(bbox, planes).view(np.int32), header, name="MASK")
        hdul = fits.HDUList([primary, image])
        with atomic_output(path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            hdul.writeto(tmp, overwrite=True)
        paths.append(path)
    return paths


__all__ = ["AltMask", "CoaddProducts", "artifact_mask_path", "read_coadd", "write_artifact_masks",
           "write_coadd"]
