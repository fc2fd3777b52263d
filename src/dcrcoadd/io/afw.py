"""What dcrcoadd reads from the archive tables the LSST stack appends to an exposure file.

``ExposureF.writeFits`` follows the IMAGE/MASK/VARIANCE HDUs (identified by
``EXTTYPE``, with an empty ``EXTNAME``) with an archive: an ``ARCHIVE_INDEX`` table
and ``ARCHIVE_DATA`` tables, one per persisted class (``EXTNAME`` and ``AR_NAME``
give the class: ``GaussianPsf``, ``PsfexPsf``, ``CoaddPsf``, ``FilterLabel``,
``VisitInfo``, ``SkyWcs``...). Most of them need the stack to be understood; two
need only their columns:

* a Gaussian PSF (``GaussianPsf``, ``SingleGaussianPsf``: ``dimensions_x``,
  ``dimensions_y``, ``sigma`` in pixels) becomes a `~dcrcoadd.core.psf.Psf`;
* the ``FilterLabel`` gives the band (column ``band``);
* the ``PhotoCalib`` gives the flux calibration: ``calibrationMean``, nJy per image unit
  (its mean over the image: a spatially varying calibration is taken as constant).

Any other PSF class is named in the notes, so that ``info`` says why there is no PSF
(measure it, or configure one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from dcrcoadd.core.psf import Psf

__all__ = ["ARCHIVE_TYPES", "ArchiveContents", "is_archive", "read_archive"]

ARCHIVE_TYPES = ("ARCHIVE_INDEX", "ARCHIVE_DATA")
_GAUSSIAN_PSFS = ("GaussianPsf", "SingleGaussianPsf")


def is_archive(hdu) -> bool:
    """An HDU of an afw archive (ignored as image data)."""
    return str(hdu.header.get("EXTTYPE", "")).strip().upper() in ARCHIVE_TYPES


@dataclass(frozen=True)
class ArchiveContents:
    psf: Psf | None = None
    band: str | None = None
    calibration: float | None = None
    notes: tuple[str, ...] = ()


def _classes(hdu) -> list[str]:
    names = [str(v).strip() for k, v in hdu.header.items() if k == "AR_NAME"]
    name = str(hdu.header.get("EXTNAME", "")).strip()
    return names + ([name] if name and name not in names else [])


def _gaussian_psf(hdu) -> Psf | None:
    data = hdu.data
    if data is None or len(data) != 1 or "sigma" not in data.columns.names:
        return None
    sigma = float(data["sigma"][0])
    width = int(data["dimensions_x"][0]) if "dimensions_x" in data.columns.names else 0
    if not np.isfinite(sigma) or sigma <= 0:
        return None
    size = width if width > 0 and width % 2 == 1 else None  # dcrcoadd kernels are odd-sized
    return Psf.gaussian(sigma, size=size)


def read_archive(hdul: fits.HDUList) -> ArchiveContents:
    """The Gaussian PSF, band and calibration an afw archive holds, with notes on what it could not read."""
    psf = band = calibration = None
    notes = []
    other_psfs = []
    for hdu in hdul:
        if not isinstance(hdu, fits.BinTableHDU) or not is_archive(hdu):
            continue
        classes = _classes(hdu)
        if any(c in _GAUSSIAN_PSFS for c in classes) and psf is None:
            psf = _gaussian_psf(hdu)
            if psf is not None:
                notes.append(f"psf: {classes[0]} from the archive (sigma {psf.second_moment_sigma:.3f} px)")
        elif "FilterLabel" in classes and band is None and hdu.data is not None and len(hdu.data):
            if "band" in hdu.data.columns.names:
                text = str(hdu.data["band"][0]).strip()
                band = text or None
        elif "PhotoCalib" in classes and calibration is None and hdu.data is not None and len(hdu.data):
            if "calibrationMean" in hdu.data.columns.names:
                value = float(hdu.data["calibrationMean"][0])
                calibration = value if np.isfinite(value) and value > 0 else None
        else:
            other_psfs += [c for c in classes if c.endswith("Psf") and c not in _GAUSSIAN_PSFS]
    if psf is None and other_psfs:
        notes.append(f"psf: the archive holds a {other_psfs[0]}, which needs the LSST stack to evaluate; "
                     f"none read")
    return ArchiveContents(psf, band, calibration, tuple(notes))
