"""Exposure files: the dcrcoadd format (written and read), the LSST afw layout and survey images (read).

* dcrcoadd format (see DESIGN.md): primary header with visit and band keywords in
  LSST names, then IMAGE, MASK, VARIANCE and optional PSF and TRANSMISSION extensions.
* LSST afw layout (``ExposureF.writeFits``): the same planes found by ``EXTTYPE``
  (their ``EXTNAME`` is empty), the VisitInfo cards in the primary header, and
  archive tables after them (`dcrcoadd.io.afw`: a Gaussian PSF and the band are read,
  the rest ignored).
* Survey images (DECam, HSC, ZTF, ...): one 2-D image HDU, primary or an extension
  named anything; the header read through the instrument's preset
  (`dcrcoadd.core.instrument`, detected from ``INSTRUME`` or given), missing
  variance, mask and PSF made from gain, saturation and seeing (`dcrcoadd.io.pixels`),
  or the variance from a weight-map companion file (``weights=``, `dcrcoadd.io.weights`) and mask
  planes from a data-quality companion file (``masks=``, `dcrcoadd.io.quality`).

Whatever the layout, the visit is read and completed by `dcrcoadd.io.visitinfo` (time,
site, pointing, alt/az, airmass derived where absent; impossible values refused naming
the card) and the flux calibration by `dcrcoadd.io.calibration`. `ExposureInfo.notes`
says where every derived value came from.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import wcs_to_celestial_frame

from dcrcoadd.core.bandpass import BAND_LETTER_CENTRES, Bandpass, band_letter, pivot_wavelength
from dcrcoadd.core.exposure import Exposure, shift_wcs
from dcrcoadd.core.geom import Box
from dcrcoadd.core.instrument import GENERIC, check_header_map, detect_instrument, preset
from dcrcoadd.core.masks import LSST_PLANES, MaskPlanes
from dcrcoadd.core.psf import Psf
from dcrcoadd.core.visit import VisitInfo
from dcrcoadd.errors import ConfigError, InputError
from dcrcoadd.io.afw import is_archive, read_archive
from dcrcoadd.io.atomic import atomic_output
from dcrcoadd.io.calibration import calibration_from_cards
from dcrcoadd.io.header import Cards, merged_header, warn_once
from dcrcoadd.io.pixels import (
    PixelModel,
    pixel_model_from_cards,
    seeing_psf,
    sky_statistics,
    synthesize_mask,
    synthesize_variance,
)
from dcrcoadd.io.quality import check_mask_codes, dq_planes, resolve_codes
from dcrcoadd.io.visitinfo import visit_from_cards
from dcrcoadd.io.weights import companion_hdu, variance_from_sigma, variance_from_weight, weight_path
from dcrcoadd.physics.dcr import celestial_frame, sky_and_jacobian, to_icrs
from dcrcoadd.physics.refraction import WAVELENGTH_RANGE_NM

log = logging.getLogger("dcrcoadd.io.fits")

#: Card of a PSF extension that says where its kernel came from ("seeing card": a Gaussian of the
#: header's seeing, which the pipeline treats as a fallback, as it does the card itself).
PSF_ORIGIN_CARD = "PSFORIG"

# Keywords longer than 8 characters are HIERARCH cards, as LSST writes them.
_ANGLE_KEYS = {
    "boresight_ra": "BORE-RA", "boresight_dec": "BORE-DEC", "boresight_az": "BORE-AZ",
    "boresight_alt": "BORE-ALT", "rotation_angle": "BORE-ROTANG",
}
#: Side of the square tiles of compressed images (pixels).
COMPRESSION_TILE = 128

#: Largest offset (pixels, either axis) of a PSF extension's centroid from its middle pixel: a kernel
#: is centred there by definition (docs/format.md), and an offset kernel shifts what it convolves.
PSF_CENTRING_TOLERANCE = 0.5
#: A PSF extension whose centroid lies farther than this (pixels, either axis) from its middle pixel is
#: recentred, with a warning: every warp's PSF off by up to 0.1 px left 9 and 5 false detections in the
#: template differences of a simulated field (0 centred), a science PSF 0.1 px off 2.
PSF_RECENTRED = 0.02
#: Largest value on a PSF kernel's border, as a fraction of its peak, before it is warned about as cut
#: off (a Gaussian cut there has lost about 5 % of its light), and the fraction at which it is refused:
#: a kernel that never falls to half its peak has no measurable width.
PSF_EDGE_WARNING = 0.05
PSF_EDGE_REFUSED = 0.5


def _card(key: str) -> str:
    return f"HIERARCH {key}" if len(key) > 8 else key


#: The native dtypes of the image, mask and variance planes as read (masks wrap int32 -> uint32)
_PLANE_DTYPES = (np.float32, np.uint32, np.float32)
#: FITS BITPIX -> the big-endian dtype of plain (unscaled) image data
_BITPIX_DTYPES = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


def _identity(stat: os.stat_result) -> tuple[int, int, int]:
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


@dataclass(frozen=True)
class _DirectPlanes:
    """Byte offsets and dtypes of a file's plain image, mask and variance arrays, and the file's
    identity (inode, size, modification time) when they were found: a file changed or replaced
    since is read through astropy."""

    offsets: tuple[int, int, int]
    dtypes: tuple[str, str, str]
    identity: tuple[int, int, int]

    @classmethod
    def of(cls, hdul: fits.HDUList, extensions, shape: tuple[int, int], path: Path) -> _DirectPlanes | None:
        offsets, dtypes = [], []
        for i in extensions:
            hdu = None if i is None else hdul[i]
            # (CompImageHDU is an ImageHDU: its data offset is that of the compressed table)
            if (not isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU)) or isinstance(hdu, fits.CompImageHDU)
                    or tuple(hdu.shape) != tuple(shape)
                    or any(k in hdu.header for k in ("BZERO", "BSCALE", "BLANK"))
                    or hdu.header.get("BITPIX") not in _BITPIX_DTYPES):
                return None
            info = hdu.fileinfo()
            if getattr(info["file"], "compression", None):
                return None  # a gzip/bzip2/zip file: the offsets are in its decompressed stream
            offsets.append(int(info["datLoc"]))
            dtypes.append(_BITPIX_DTYPES[hdu.header["BITPIX"]])
        stat = path.stat()
        ends = [o + int(np.prod(shape)) * np.dtype(d).itemsize for o, d in zip(offsets, dtypes, strict=True)]
        if stat.st_size < max(ends):
            return None  # truncated: astropy's reading says so
        return cls(tuple(offsets), tuple(dtypes), _identity(stat))

    def unchanged(self, path: Path) -> bool:
        try:
            return _identity(path.stat()) == self.identity
        except OSError:
            return False

    def read(self, path: Path, shape: tuple[int, int], sl) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Image, mask and variance pixels ``sl``, converted as `_section` converts them."""
        out = []
        for offset, dtype, native in zip(self.offsets, self.dtypes, _PLANE_DTYPES, strict=True):
            mapped = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
            out.append(np.array(mapped[sl], dtype=native))
            del mapped
        return tuple(out)


@dataclass(frozen=True)
class ExposureInfo:
    """What an exposure file says about itself, without its pixels.

    Attributes
    ----------
    flux_calibration : float or None
        nJy per image unit; None when the file carries no calibration (no ``FLUXCAL``
        nor zero point): `dcrcoadd.io.calibration.reconcile_calibration` decides what
        that means for a set of inputs. `read_exposure` gives such files 1.
    layout : str
        ``"dcrcoadd"``, ``"lsst-afw"`` or ``"image"`` (a survey image: one image HDU).
    instrument : str or None
        The instrument preset the header was read with (given or detected).
    calibration_card : str or None
        The card the calibration came from (``FLUXCAL``, ``MAGZERO``...).
    notes : tuple of str
        What was looked up or derived, and from which card (``dcrcoadd info`` prints them).
    extensions : tuple
        HDU indices of the image, mask and variance (None where absent).
    pixels : PixelModel
        Gain, saturation and seeing, for the planes the file lacks.
    weight_map : (Path, int) or None
        The weight-map file and HDU that give the variance (``weights=``, or an extension of the file
        itself named as a noise plane: `INVERSE_VARIANCE_PLANES`, `SIGMA_PLANES`), when it has none.
    weight_kind : str
        What that map holds: ``"inverse variance"`` or ``"sigma"`` (a standard deviation).
    quality_map : (Path, int, str) or None
        The data-quality file, HDU and convention (`dcrcoadd.io.quality.resolve_codes`) that give
        mask planes (``masks=``), when the file has no mask.
    psf_origin : str or None
        Where ``psf`` came from: ``"file"`` (PSF extension or archive), ``"seeing card"`` (a
        Gaussian of the header's seeing), None without a PSF.
    direct : _DirectPlanes or None
        Where the image, mask and variance pixels lie in the file when all three are plain
        (uncompressed, unscaled) arrays, so that `read_region` maps them without parsing the
        headers again; None otherwise.
    absent_header_map : tuple of str
        Fields of ``header_map`` whose card this header lacks (their usual cards were read instead).
    unlabelled_mask : bool
        The file's mask has no ``MP_<PLANE>`` cards to say what its bits mean: `read_exposure`
        takes every nonzero pixel of it as ``BAD``.
    """

    path: Path
    bbox: Box
    wcs: WCS | None
    visit: VisitInfo | None
    band: str | None
    bandpass: Bandpass | None
    psf: Psf | None
    mask_planes: MaskPlanes
    flux_calibration: float | None
    compressed: bool
    layout: str = "dcrcoadd"
    instrument: str | None = None
    calibration_card: str | None = None
    notes: tuple[str, ...] = ()
    extensions: tuple[int, int | None, int | None] = (1, 2, 3)
    pixels: PixelModel = PixelModel()
    weight_map: tuple[Path, int] | None = None
    weight_kind: str = "inverse variance"
    quality_map: tuple[Path, int, str] | None = None
    psf_origin: str | None = None
    direct: _DirectPlanes | None = None
    absent_header_map: tuple[str, ...] = ()
    unlabelled_mask: bool = False


# -- writing -------------------------------------------------------------------------------------

def _primary_header(exp: Exposure) -> fits.Header:
    h = fits.Header()
    v = exp.visit
    if v is not None:
        h["EXPID"] = (v.id, "exposure identifier")
        if v.exposure_time is not None:
            h["EXPTIME"] = (v.exposure_time.to_value(u.s), "[s] exposure time")
        if v.time is not None:
            h["DATE-AVG"] = (_isot(v.time), "mid-exposure time")
            h["TIMESYS"] = "TAI"
        for attr, key in _ANGLE_KEYS.items():
            value = getattr(v, attr)
            if value is not None:
                h[_card(key)] = (value.deg, "[deg]")
        if v.airmass is not None:
            h[_card("BORE-AIRMASS")] = (v.airmass, "boresight airmass")
        if v.rotation_type is not None:
            h["ROTTYPE"] = (v.rotation_type, "rotator angle type")
        if v.observatory is not None:
            o = v.observatory
            h["OBS-LONG"] = (o.longitude.deg, "[deg] east longitude")
            h["OBS-LAT"] = (o.latitude.deg, "[deg] geodetic latitude")
            h["OBS-ELEV"] = (o.elevation.to_value(u.m), "[m] elevation")
        if v.weather is not None:
            w = v.weather
            h["AIRTEMP"] = (w.temperature.to_value(u.deg_C, equivalencies=u.temperature()), "[C]")
            h["AIRPRESS"] = (w.pressure.to_value(u.Pa), "[Pa]")
            h["HUMIDITY"] = (w.humidity, "[%] relative humidity")
    if exp.band is not None:
        h["FILTER"] = (exp.band, "band name")
    if exp.bandpass is not None:
        h["BANDLAM"] = (exp.bandpass.effective_wavelength.to_value(u.nm), "[nm] effective wavelength")
        h["BANDWID"] = (exp.bandpass.bandwidth.to_value(u.nm), "[nm] bandwidth")
    h["FLUXCAL"] = (exp.flux_calibration, "[nJy] per image unit")
    return h


def _isot(time: Time) -> str:
    """TAI ISO time with nanosecond precision (Time.isot keeps only milliseconds)."""
    t = time.tai.copy()
    t.precision = 9
    return t.isot


def exposure_hdus(exp: Exposure, *, compress: bool = False) -> fits.HDUList:
    """The HDUs of ``exp`` in the dcrcoadd exposure format (see `write_exposure`)."""
    image_header = fits.Header()
    if exp.wcs is not None:
        image_header.extend(exp.wcs.to_header(relax=True), update=True)
    image_header["LTV1"] = (-exp.origin[0], "parent x0 = -LTV1")
    image_header["LTV2"] = (-exp.origin[1], "parent y0 = -LTV2")
    mask_header = fits.Header()
    for key, bit in exp.mask_planes.to_header_cards().items():
        mask_header[_card(key)] = bit
    mask_header["LTV1"], mask_header["LTV2"] = -exp.origin[0], -exp.origin[1]

    def image_hdu(data, header, name):
        if compress:
            kwargs = dict(compression_type="GZIP_2", quantize_level=0.0) if data.dtype.kind == "f" \
                else dict(compression_type="RICE_1")
            # Square tiles, so that a subregion read decompresses little more than the
            # box (the default row tiles decompress whole image rows).
            tile = tuple(min(COMPRESSION_TILE, n) for n in data.shape)
            return fits.CompImageHDU(data=data, header=header, name=name, tile_shape=tile, **kwargs)
        return fits.ImageHDU(data=data, header=header, name=name)

    hdus = [
        fits.PrimaryHDU(header=_primary_header(exp)),
        image_hdu(np.ascontiguousarray(exp.image, dtype=np.float32), image_header, "IMAGE"),
        image_hdu(np.ascontiguousarray(exp.mask, dtype=np.uint32).view(np.int32), mask_header, "MASK"),
        image_hdu(np.ascontiguousarray(exp.variance, dtype=np.float32), fits.Header(), "VARIANCE"),
    ]
    if exp.psf is not None:
        hdus.append(fits.ImageHDU(data=exp.psf.kernel.astype(np.float32), name="PSF"))
    if exp.bandpass is not None and exp.bandpass.transmission is not None:
        wl, thr = exp.bandpass.transmission
        hdus.append(fits.BinTableHDU.from_columns(
            [fits.Column("wavelength", "D", unit="nm", array=wl.to_value(u.nm)),
             fits.Column("throughput", "D", array=thr)], name="TRANSMISSION"))
    return fits.HDUList(hdus)


def write_hdus(hdus: fits.HDUList, path: str | os.PathLike) -> Path:
    """Write ``hdus`` to ``path`` atomically, with checksums that do not depend on the time.

    astropy's default checksum comment holds the current time, so two writes of the same
    data would differ byte for byte; a fixed comment keeps outputs reproducible.
    """
    path = Path(path)
    for hdu in hdus:
        hdu.add_checksum(when="dcrcoadd")
    with atomic_output(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        hdus.writeto(tmp, overwrite=True, checksum=False)
    return path


def write_exposure(exposure: Exposure, path: str | os.PathLike, *, compress: bool = False) -> Path:
    """Write an exposure to ``path`` atomically (temporary file, then rename).

    Parameters
    ----------
    exposure : Exposure
    path : path-like
    compress : bool
        Tile-compress the pixel extensions losslessly (GZIP_2 for floats,
        RICE_1 for the mask) in square tiles of `COMPRESSION_TILE` pixels.
    """
    return write_hdus(exposure_hdus(exposure, compress=compress), path)


# -- reading -------------------------------------------------------------------------------------

def _open(path: Path) -> fits.HDUList:
    if not path.exists():
        raise InputError("file does not exist", path)
    if path.is_dir():
        raise InputError("is a directory, not a FITS file", path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            # memmap=None memory-maps like True but, unlike True, still allows scaled
            # (BZERO/BSCALE) data such as the uint32 masks astropy itself writes.
            hdul = fits.open(path, memmap=None, lazy_load_hdus=False)
        except Exception as exc:  # astropy raises OSError, TypeError, ValueError... on corrupt files
            reason = str(exc).split(". ")[0].rstrip(".")
            raise InputError(f"not a readable FITS file ({reason})", path) from None
    messages = [str(w.message) for w in caught]
    if any("truncated" in m for m in messages):
        hdul.close()
        raise InputError("FITS file is truncated (shorter than its headers say)", path)
    if any("Error validating header for HDU" in m for m in messages):
        # Astropy stops at a damaged header and silently returns the HDUs before it:
        # reading on would drop the MASK/VARIANCE of a file cut inside their headers.
        n = len(hdul)
        hdul.close()
        raise InputError(f"FITS file is truncated or corrupt: unreadable data after its first {n} HDUs", path)
    return hdul


_IMAGE_HDUS = (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)
_PLANES = ("IMAGE", "MASK", "VARIANCE")
#: EXTNAMEs other pipelines give the noise plane they write beside the image, read as its variance when
#: the file has no VARIANCE: a standard deviation (HST's and JWST's ERR, ...) or an inverse variance
#: (SDSS's IVAR, SWarp's and DESDM's weights). (HST's drizzled WHT is left out: it may hold exposure time.)
SIGMA_PLANES = ("ERR", "ERROR", "SIGMA", "STDDEV", "NOISE", "RMS", "UNCERT")
INVERSE_VARIANCE_PLANES = ("IVAR", "INVVAR", "WEIGHT", "WGT")
_NOISE_PLANES = (*SIGMA_PLANES, *INVERSE_VARIANCE_PLANES)


@dataclass(frozen=True)
class _Layout:
    kind: str
    image: int
    mask: int | None
    variance: int | None
    psf: int | None
    transmission: int | None
    # a DES image's MSK and WGT (`_desdm_planes`): read as its own data-quality and weight maps
    companions: dict[str, int] = field(default_factory=dict)


def _hdu_label(i: int, hdu) -> str:
    name = hdu.name.strip()
    exttype = str(hdu.header.get("EXTTYPE", "")).strip()
    return name or (f"EXTTYPE={exttype}" if exttype else f"HDU {i}")


def _check_kind(hdul: fits.HDUList, i: int | None, role: str, path: Path, table: bool = False) -> None:
    if i is None:
        return
    hdu = hdul[i]
    if not isinstance(hdu, fits.BinTableHDU if table else _IMAGE_HDUS):
        kind = "binary table" if table else "image"
        raise InputError(f"{role} extension is not a readable {kind} ({type(hdu).__name__})", path)


def _roles(hdul: fits.HDUList, path: Path) -> tuple[dict[str, int], dict[str, int]]:
    """HDU indices of the planes ``(by EXTNAME, by EXTTYPE)``."""
    by_name: dict[str, int] = {}
    by_type: dict[str, int] = {}
    for i, hdu in enumerate(hdul):
        if is_archive(hdu):
            continue
        name = hdu.name.strip().upper()
        exttype = str(hdu.header.get("EXTTYPE", "")).strip().upper()
        if name in (*_PLANES, "PSF", "TRANSMISSION"):
            if name in by_name:  # (which of the two is meant cannot be known: the first was read silently)
                raise InputError(f"two {name} extensions (HDUs {by_name[name]} and {i}): say which is meant "
                                 "by renaming the other", path)
            by_name[name] = i
        if exttype in _PLANES:
            by_type.setdefault(exttype, i)
    return by_name, by_type


def _plain_images(hdul: fits.HDUList, taken: set[int]) -> list[int]:
    """The non-empty 2-D image HDUs that hold no named plane."""
    return [i for i, hdu in enumerate(hdul)
            if i not in taken and isinstance(hdu, _IMAGE_HDUS) and not is_archive(hdu)
            and hdu.header.get("NAXIS") == 2 and all(int(n) > 0 for n in hdu.shape)]


def _find_layout(hdul: fits.HDUList, path: Path, hdu: str | int | None = None) -> _Layout:
    """Where the planes are: by EXTNAME (dcrcoadd), by EXTTYPE (LSST afw), or the one image HDU;
    ``hdu``: that image HDU of a multi-extension file (one CCD of it, `ccd_extensions`)."""
    if hdu is not None:
        return _Layout("image", _ccd_index(hdul, hdu, path), None, None, None, None)
    by_name, by_type = _roles(hdul, path)
    roles = {**by_type, **by_name}  # an EXTNAME wins over an EXTTYPE
    for role in _PLANES + ("PSF",):
        _check_kind(hdul, roles.get(role), role, path)
    _check_kind(hdul, roles.get("TRANSMISSION"), "TRANSMISSION", path, table=True)
    if "IMAGE" in roles:
        kind = "dcrcoadd" if "IMAGE" in by_name else "lsst-afw"
        return _Layout(kind, roles["IMAGE"], roles.get("MASK"), roles.get("VARIANCE"), roles.get("PSF"),
                       roles.get("TRANSMISSION"), _noise_plane(hdul, roles["IMAGE"], roles))
    desdm = _desdm_planes(hdul)
    if desdm is not None:
        return _Layout("desdm", desdm["SCI"], None, None, roles.get("PSF"), roles.get("TRANSMISSION"),
                       {p: i for p, i in desdm.items() if p != "SCI"})
    images = _plain_images(hdul, set(roles.values()))
    noise = [i for i in images if hdul[i].name.strip().upper() in _NOISE_PLANES]
    if noise and len(images) - len(noise) == 1:  # (an image and its noise plane: one exposure)
        image = next(i for i in images if i not in noise)
        return _Layout("image", image, roles.get("MASK"), roles.get("VARIANCE"), roles.get("PSF"),
                       roles.get("TRANSMISSION"), _noise_plane(hdul, image, roles))
    found = ", ".join(_hdu_label(i, h) for i, h in enumerate(hdul)) or "none"
    if not images:
        raise InputError(f"no IMAGE extension, and no other 2-D image in the file (found: {found})", path)
    if len(images) > 1:
        names = ", ".join(_hdu_label(i, hdul[i]) for i in images)
        extnames = [hdul[i].name.strip().upper() for i in images]
        ccds = ("give the file to dcrcoadd warp or template, which read each of its CCDs"
                if all(extnames) and len(set(extnames)) == len(extnames) else
                "for a file of CCDs, give each image its own EXTNAME (dcrcoadd warp and template then read "
                "each CCD)")
        raise InputError(f"no IMAGE extension says which of its {len(images)} images is the exposure "
                         f"({names}); cut out the one to use (one image per file), or {ccds}", path)
    return _Layout("image", images[0], roles.get("MASK"), roles.get("VARIANCE"), roles.get("PSF"),
                   roles.get("TRANSMISSION"))


def _noise_plane(hdul: fits.HDUList, image: int, roles: dict[str, int]) -> dict[str, int]:
    """``{"WGT": i}`` or ``{"ERR": i}``: the first image HDU of the image's shape named as an inverse
    variance or a standard deviation (`INVERSE_VARIANCE_PLANES`, `SIGMA_PLANES`), when the file has no
    VARIANCE; ``{}`` otherwise."""
    if "VARIANCE" in roles:
        return {}
    shape = tuple(hdul[image].shape)
    for i in _plain_images(hdul, {image, *roles.values()}):
        name = hdul[i].name.strip().upper()
        if tuple(hdul[i].shape) == shape and name in _NOISE_PLANES:
            return {"WGT" if name in INVERSE_VARIANCE_PLANES else "ERR": i}
    return {}


def _desdm_planes(hdul: fits.HDUList) -> dict[str, int] | None:
    """HDU indices of a DES (DESDM) single-epoch image's ``SCI`` and its ``MSK`` (DESDM mask bits)
    and/or ``WGT`` (inverse variance), by EXTNAME; None for any other file."""
    found = {}
    for i in _plain_images(hdul, set()):
        name = hdul[i].name.strip().upper()
        if name in ("SCI", "MSK", "WGT") and name not in found:
            found[name] = i
    return found if "SCI" in found and len(found) > 1 else None


def _ccd_index(hdul: fits.HDUList, hdu: str | int, path: Path) -> int:
    if isinstance(hdu, str):
        matches = [i for i, h in enumerate(hdul) if h.name.strip().upper() == hdu.strip().upper()]
        if not matches:
            raise InputError(f"has no extension named {hdu}", path)
        index = matches[0]
    else:
        index = int(hdu)
        if not 0 <= index < len(hdul):
            raise InputError(f"has no HDU {index} (it has {len(hdul)})", path)
    if index not in _plain_images(hdul, set()):
        raise InputError(f"its extension {_hdu_label(index, hdul[index])} is not a 2-D image", path)
    return index


def ccd_extensions(path: str | os.PathLike) -> list[str]:
    """The CCD images of a multi-extension file (a DECam Community Pipeline ``ooi`` file): two or more
    image extensions with distinct names (``N4``, ``S1``, ...), none of them an ``IMAGE`` plane nor
    the primary HDU; ``[]`` for any other file (one exposure, or images that say nothing of what they
    are: `read_info` refuses those as ambiguous). `read_info` and `read_exposure` read one of them
    with ``hdu=``."""
    path = Path(path)
    with _reading(path), _open(path) as hdul:
        by_name, by_type = _roles(hdul, path)
        if "IMAGE" in by_name or "IMAGE" in by_type or _desdm_planes(hdul) is not None:
            return []
        images = [i for i in _plain_images(hdul, set(by_name.values()) | set(by_type.values()))
                  if hdul[i].name.strip().upper() not in _NOISE_PLANES]
        names = [hdul[i].name.strip().upper() for i in images]
        if len(images) < 2 or 0 in images or not all(names) or len(set(names)) < len(names):
            return []
        return [hdul[i].name.strip() for i in images]


@contextlib.contextmanager
def _reading(path: Path):
    """Turn astropy's complaints about corrupt content into `InputError`.

    Astropy reports damaged headers and tables with many exception types
    (VerifyError, KeyError, AttributeError, ...) and with warnings; a reader of
    user files must raise one clear error instead, and keep the warnings off
    the terminal (they are logged at debug level).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except InputError:
            raise
        except (fits.VerifyError, OSError, ValueError, TypeError, KeyError, IndexError,
                AttributeError) as exc:
            raise InputError(f"unreadable or corrupt FITS content ({type(exc).__name__}: {exc})",
                             path) from exc
        finally:
            for w in caught:
                log.debug("%s: %s: %s", path, type(w.message).__name__, w.message)


def _wcslib_reason(exc: Exception) -> str:
    """wcslib's own words without its source-file locations (``ERROR 3 in wcsset() at line 2868 of
    file cextern/wcslib/C/wcs.c: Linear transformation matrix is singular.``)."""
    reasons = re.findall(r"ERROR \d+ in \w+\(\) at line \d+ of file [^:]+:\s*([^.\n]+)", str(exc))
    return "; ".join(dict.fromkeys(reasons)) if reasons else str(exc)


def _wcs_of(ih: fits.Header, path: Path) -> WCS | None:
    if "CTYPE1" not in ih:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(ih, naxis=2)
    except Exception as exc:
        raise InputError(f"invalid WCS in IMAGE header ({_wcslib_reason(exc)})", path) from None
    if not wcs.has_celestial:
        raise InputError("IMAGE WCS is not celestial", path)
    if wcs.wcs.lngtyp != "RA" or wcs.wcs.lattyp != "DEC":
        # (the DCR stage would convert a galactic or ecliptic grid, but grids, pointing checks and
        # outputs are equatorial throughout)
        raise InputError(f"its WCS is not equatorial (CTYPE {wcs.wcs.ctype[0]}, {wcs.wcs.ctype[1]}): "
                         "dcrcoadd needs RA/DEC axes (an ICRS, FK5 or FK4 grid)", path)
    try:
        wcs_to_celestial_frame(wcs)
    except ValueError:  # (info and template failed on it with tracebacks; assemble named another file)
        raise InputError(f"RADESYS = {wcs.wcs.radesys!r} is not a sky reference frame astropy knows (ICRS, "
                         "FK5, FK4, FK4-NO-E, GAPPT)", path) from None
    _check_pixel_scale(wcs, ih, path)
    return wcs


#: Pixel scales (arcsec) an image's WCS may have: from adaptive optics to all-sky cameras. Beyond
#: them lie degrees taken for arcseconds and back, and astropy's 1°/px default of a header without
#: CD, PC or CDELT cards.
PIXEL_SCALE_RANGE_ARCSEC = (1e-3, 600.0)


def _check_pixel_scale(wcs: WCS, ih: fits.Header, path: Path) -> None:
    """Refuse a WCS whose pixels at the image's centre are degenerate or of an impossible size."""
    x, y = ((int(ih.get(f"NAXIS{k}", 1)) - 1) / 2.0 for k in (1, 2))
    try:
        jac = sky_and_jacobian(wcs, np.array([x]), np.array([y]))[2][0]
    except Exception:  # noqa: BLE001 - a WCS that cannot place its centre is checked where it is used
        return
    # the pixel's area (distortions included) is the local Jacobian's determinant
    scale = math.degrees(math.sqrt(abs(float(np.linalg.det(jac))))) * 3600.0
    lo, hi = PIXEL_SCALE_RANGE_ARCSEC
    if lo <= scale <= hi:
        return
    ctype = str(ih.get("CTYPE1", ""))
    if scale == 0.0 or not np.isfinite(scale):
        why = ("every pixel maps to one sky position"
               + (f"; CTYPE {ctype} without its PV distortion cards?" if ctype.endswith("TPV")
                  and not any(k.startswith("PV1_") for k in ih) else ""))
        raise InputError(f"IMAGE WCS is degenerate: {why}", path)
    if not any(k in ih for k in ("CD1_1", "CD2_2", "PC1_1", "PC2_2", "CDELT1", "CDELT2")):
        hint = "; the header has no CD, PC or CDELT cards, and astropy takes 1 degree per pixel"
    elif scale > hi:
        hint = "; are CD/CDELT in arcsec? They are in degrees per pixel"
    else:
        hint = "; are CD/CDELT converted to degrees twice?"
    raise InputError(f"IMAGE WCS has pixels of {scale:.3g} arcsec, outside {lo:g}-{hi:g} arcsec{hint}", path)


def _check_psf_contained(psf: Psf, path: Path) -> None:
    """Refuse a PSF extension that never falls to half its peak; warn about one cut off at its border."""
    k = psf.kernel
    edge = float(max(k[0].max(), k[-1].max(), k[:, 0].max(), k[:, -1].max()) / k.max())
    size = f"{k.shape[1]}x{k.shape[0]}"
    if edge >= PSF_EDGE_REFUSED:
        raise InputError(f"its PSF extension does not fall to half its peak within its {size} kernel (its "
                         f"border reaches {edge:.0%} of the peak): not a PSF image, or a PSF far wider than "
                         "its kernel", path)
    if edge > PSF_EDGE_WARNING:
        warn_once(log, path, f"its PSF extension is cut off by its {size} kernel (its border reaches "
                             f"{edge:.0%} of the peak): the PSF is wider than its kernel, and the light "
                             "beyond is left out of PSF matching and PSF-aware models")


def _wcs_centre(wcs: WCS | None, shape: tuple[int, int]) -> tuple[float, float] | None:
    """ICRS (ra, dec) in degrees of the image centre (the pointing cards' frame), None if unknown."""
    if wcs is None:
        return None
    try:
        lon, lat = wcs.all_pix2world((shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0, 0)
        ra, dec = to_icrs(celestial_frame(wcs), lon, lat)
    except Exception:  # noqa: BLE001 - a WCS that cannot place the centre just gives no pointing
        return None
    return (float(ra), float(dec)) if np.isfinite(ra) and np.isfinite(dec) else None


def _band_and_bandpass(cards: Cards, hdul: fits.HDUList, layout: _Layout, archive_band: str | None,
                       notes: list[str]) -> tuple[str | None, Bandpass | None]:
    """The file's band name and bandpass: its own ``BANDLAM``/``BANDWID`` (and curve) first, else
    the instrument preset's curve of the band its filter card names."""
    h, path = cards.header, cards.path
    band_text = cards.text("filter")
    band = archive_band or (None if band_text is None else band_text[0])
    lam = h.get("BANDLAM") if "BANDLAM" in h else None
    bw = h.get("BANDWID") if "BANDWID" in h else None
    if lam is not None and bw is not None:
        lam, bw = cards.to_float(lam, "BANDLAM"), cards.to_float(bw, "BANDWID")
        if np.isfinite(lam) and np.isfinite(bw):
            transmission = None
            if layout.transmission is not None:
                table = hdul[layout.transmission]
                transmission = (np.asarray(table.data["wavelength"], float) * u.nm,
                                np.asarray(table.data["throughput"], float))
            try:
                name = str(h.get("FILTER", "unknown")).strip()
                bandpass = Bandpass(name, lam * u.nm, bw * u.nm, transmission)
            except ValueError as exc:
                raise InputError(f"invalid band keywords ({exc})", path) from None
            lo, hi = bandpass.wavelength_range
            hint = _beyond_refraction(lo, hi)
            if hint is not None:
                raise InputError(f"BANDLAM = {lam:g}, BANDWID = {bw:g}: the band spans {lo:.1f}-{hi:.1f} nm, "
                                 f"outside {_REFRACTION_RANGE} (BANDLAM and BANDWID are in nm{hint})", path)
            if transmission is not None:
                _check_transmission(bandpass, path)
            if band_text is not None:
                _check_band_name(band_text, lam, bw, path)
            return (band if band is not None else bandpass.name), bandpass
    if cards.preset is GENERIC or band is None:
        return band, None
    letter = cards.preset.band_of(band_text[0] if archive_band is None else archive_band)
    if letter is None:
        notes.append(f"band: {band_text[1] if archive_band is None else 'FilterLabel'} = {band!r} is not a "
                     f"{cards.preset.name} band with a preset")
        return band, None
    try:
        bandpass = cards.preset.bandpass(letter)
    except ConfigError as exc:
        notes.append(f"band: {letter} ({exc})")
        return band, None
    source = "the archive's FilterLabel" if archive_band is not None else band_text[1]
    notes.append(f"band: {bandpass.name} preset curve, from {source} = {band!r}")
    return bandpass.name, bandpass


_REFRACTION_RANGE = (f"{WAVELENGTH_RANGE_NM[0]:g}-{WAVELENGTH_RANGE_NM[1]:g} nm where the refraction formula "
                     "(Stone 1996) holds")


def _beyond_refraction(lo: float, hi: float) -> str | None:
    """None when ``lo``-``hi`` (nm) lies where the refraction formula holds; else a hint for the message
    (Angstrom, when a tenth of it would lie there)."""
    valid = WAVELENGTH_RANGE_NM
    if valid[0] <= lo and hi <= valid[1]:
        return None
    return "; it looks like Angstrom" if valid[0] <= lo / 10 and hi / 10 <= valid[1] else ""


#: Largest parent-grid offset (px) an image may have: 2^31 (a tract's grid is far smaller).
MAX_LTV = 2.0**31


def _ltv(header, key: str, path: Path) -> int:
    """The whole-pixel offset an ``LTV1``/``LTV2`` card gives (0 without one), refusing one that is no
    offset of a pixel grid (text; 1e30 was a TypeError traceback in assemble, and went into template's
    outputs as it was)."""
    value = header.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not abs(value) < MAX_LTV:
        raise InputError(f"{key} = {value!r} is not the image's pixel offset on its parent grid (a number "
                         f"of pixels below {MAX_LTV:.0f})", path)
    return int(round(value))


def _check_band_name(band_text: tuple[str, str], lam: float, bw: float, path: Path) -> None:
    """Refuse a filter name that gives a broad band by its letter (`band_letter`) while BANDLAM lies at
    another's: one of the two cards is wrong (``FILTER = 'lsst-r'`` over a g band's BANDLAM was refused
    by assemble against the other warps' name, and accepted by template on its wavelength)."""
    letter = band_letter(band_text[0])
    if letter is None:
        return
    nearest = min(BAND_LETTER_CENTRES, key=lambda b: abs(BAND_LETTER_CENTRES[b] - lam))
    if nearest != letter and abs(BAND_LETTER_CENTRES[letter] - lam) > bw / 2:
        raise InputError(f"{band_text[1]} = {band_text[0]!r} names the {letter} band (about "
                         f"{BAND_LETTER_CENTRES[letter]:g} nm), but BANDLAM = {lam:g} nm (BANDWID = {bw:g}) "
                         f"is that of {nearest}: one of the two cards is wrong", path)


def _check_transmission(bandpass: Bandpass, path: Path) -> None:
    """Refuse a TRANSMISSION curve the subfilters cannot use: throughput outside the refraction
    formula's wavelengths (a curve in Angstrom labelled nm), or a pivot wavelength more than a quarter
    of BANDWID from BANDLAM (a curve of another band)."""
    wl, thr = bandpass.transmission
    wl = wl.to_value(u.nm)
    lit = wl[thr > 0]
    hint = _beyond_refraction(lit[0], lit[-1]) if lit.size else None
    if hint is not None:
        raise InputError(f"TRANSMISSION has throughput at {lit[0]:.1f}-{lit[-1]:.1f} nm, outside "
                         f"{_REFRACTION_RANGE} (its wavelength column is in nm{hint})", path)
    lam, bw = bandpass.effective_wavelength.to_value(u.nm), bandpass.bandwidth.to_value(u.nm)
    pivot = pivot_wavelength(wl, thr)
    if abs(pivot - lam) > bw / 4:
        # (the subfilters are cut from BANDLAM ± BANDWID/2 and weighted by the curve: one of another band
        # left subfilters without throughput, and the run failed inside the DCR stage)
        raise InputError(f"TRANSMISSION has its pivot wavelength at {pivot:.1f} nm, {abs(pivot - lam):.0f} "
                         f"nm from BANDLAM = {lam:g} nm (BANDWID = {bw:g} nm): is it the curve of another "
                         "band?", path)


def _read_info(hdul: fits.HDUList, path: Path, instrument: str | None = None,
               header_map: dict[str, str] | None = None, weights: str | None = None,
               hdu: str | int | None = None, masks: str | None = None,
               mask_codes: str = "auto") -> ExposureInfo:
    layout = _find_layout(hdul, path, hdu)
    image_hdu = hdul[layout.image]
    ih = image_hdu.header
    if ih.get("NAXIS") != 2:
        raise InputError(f"IMAGE extension is not a 2-D image (NAXIS={ih.get('NAXIS')})", path)
    shape = (int(ih["NAXIS2"]), int(ih["NAXIS1"]))
    origin = (-_ltv(ih, "LTV1", path), -_ltv(ih, "LTV2", path))
    wcs = _wcs_of(ih, path)
    primary = hdul[0].header
    header = merged_header(primary, ih if layout.image != 0 else None)
    name = instrument or detect_instrument(header)
    try:
        cards = Cards(header, path, preset(name), check_header_map(header_map))
    except ConfigError as exc:
        raise InputError(str(exc), path) from None
    layout_text = (_LAYOUT_TEXT[layout.kind] if hdu is None
                   else f"CCD image {_hdu_label(layout.image, image_hdu)} of a multi-extension file")
    notes: list[str] = [f"layout: {layout_text}" + ("" if name is None else f", read with the {name} preset")]
    mask_hdu = None if layout.mask is None else hdul[layout.mask]
    try:
        planes = MaskPlanes.from_header(mask_hdu.header) if mask_hdu is not None else None
    except (TypeError, ValueError) as exc:
        raise InputError(f"invalid mask plane keywords in MASK header ({exc})", path) from None
    unknown = sorted(n for n in (planes or {}) if n not in LSST_PLANES)
    if unknown:  # (a note, not a warning: LSST's own warps carry CROSSTALK, VIGNETTED, SPIKE...)
        notes.append(f"mask: planes {', '.join(unknown)} are not LSST planes: their pixels are used as good "
                     "unless a setting names them (coadd.bad_mask_planes)")
    psf = None
    psf_hdu = None if layout.psf is None else hdul[layout.psf]
    if psf_hdu is not None and psf_hdu.data is not None:
        try:
            psf = Psf(psf_hdu.data)
        except ValueError as exc:
            raise InputError(f"invalid PSF extension ({exc})", path) from None
        cy, cx = psf.centroid
        if max(abs(cy), abs(cx)) > PSF_CENTRING_TOLERANCE:
            raise InputError(f"its PSF extension is not centred on its middle pixel (centroid {cx:+.2f}, "
                             f"{cy:+.2f} px from it in x, y): every model and template would move by that "
                             "much", path)
        if max(abs(cy), abs(cx)) > PSF_RECENTRED:
            warn_once(log, path, f"its PSF extension's centroid lies {cx:+.2f}, {cy:+.2f} px (x, y) from its "
                      "middle pixel, where a kernel is centred: recentred (as it was, it would move the "
                      "model and templates by that much)")
            notes.append(f"psf: recentred on its middle pixel (its centroid was {cx:+.2f}, {cy:+.2f} px off)")
            psf = psf.recentred()
        _check_psf_contained(psf, path)
    archive = read_archive(hdul)
    if psf is None and archive.psf is not None:
        psf = archive.psf
    notes.extend(archive.notes)
    pixels = pixel_model_from_cards(cards, wcs)
    psf_origin = None if psf is None else "file"
    if psf_hdu is not None and str(psf_hdu.header.get(PSF_ORIGIN_CARD, "")).strip() == "seeing card":
        psf_origin = "seeing card"  # (written by `dcrcoadd warp` from the original's seeing card)
    if psf is None and pixels.seeing_fwhm is not None:
        psf_origin = "seeing card"
        psf = seeing_psf(pixels)
        notes.append(f"psf: Gaussian of FWHM {pixels.seeing_fwhm:.2f} px from {pixels.card('seeing')}")
    calibration = calibration_from_cards(cards)
    if archive.calibration is not None and (calibration is None or calibration[1] != "FLUXCAL"):
        calibration = (archive.calibration, "PhotoCalib")  # the stack's own calibration wins over zero points
    visit, visit_notes = visit_from_cards(cards, wcs_centre=_wcs_centre(wcs, shape))
    notes.extend(visit_notes)
    band, bandpass = _band_and_bandpass(cards, hdul, layout, archive.band, notes)
    weight_map = None
    own = layout.companions
    for plane, index in own.items():
        if tuple(int(n) for n in hdul[index].shape) != shape:
            raise InputError(f"its {plane} extension has shape {tuple(hdul[index].shape)}, SCI {shape}", path)
    weight_kind = "inverse variance" if "ERR" not in own else "sigma"
    if "WGT" in own or "ERR" in own:
        weight_map = (path, own["WGT"] if "WGT" in own else own["ERR"])
        ext = hdul[weight_map[1]].name.strip()
        notes.append(("variance: 1/weight from its " if "WGT" in own else "variance: the square of its ")
                     + f"{ext} extension" + (" (its weight map is not used)" if weights else ""))
    elif layout.variance is None and weights:
        wpath = weight_path(path, weights)
        weight_map = (wpath, companion_hdu(wpath, image_hdu.name.strip().upper(), shape, path)[0])
        notes.append(f"variance: none in the file; 1/weight from the weight map {wpath} "
                     f"[HDU {weight_map[1]}] (--weights {weights})")
        if planes is not None and "BAD" not in planes:
            planes = planes.with_plane("BAD")
    elif layout.variance is None:
        gain = pixels.card("gain")
        taken = {layout.image, layout.mask, *own.values()}
        # (the other images of a file of CCDs are CCDs, not this one's planes)
        others = [] if hdu is not None else [_hdu_label(i, hdul[i]) for i in _plain_images(hdul, taken)
                                              if tuple(hdul[i].shape) == shape]
        if others:  # (its noise, if one of them is, goes unread: say so, and how to name it)
            warn_once(log, path, f"has no VARIANCE; its {', '.join(others)} extension is not read as one: "
                      "its variance is made from the image's sky noise (name the extension VARIANCE, or "
                      "ERR for a standard deviation, IVAR for an inverse variance)")
        notes.append("variance: none in the file; from the robust sky noise"
                     + (f" and {gain} (source shot noise)" if gain else " only (no GAIN: without the "
                        "sources' shot noise)"))
    elif weights:
        notes.append("variance: in the file (its weight map is not used)")
    quality_map = None
    if "MSK" in own:
        quality_map = (path, own["MSK"], "desdm", "DESDM mask bits")
    elif layout.mask is None and masks:
        quality_map = _quality_map(path, masks, mask_codes, image_hdu, shape, primary, name)
    if layout.mask is None:
        sat = pixels.card("saturation")
        notes.append(("mask: its MSK extension's DESDM bits" if "MSK" in own else "mask: none in the file")
                     + "; NO_DATA where not finite"
                     + (f", SAT at or above {sat} = {pixels.saturation:g}" if sat else " (no SATURATE card)")
                     + (", BAD where the weight is 0" if weight_map else "")
                     + (f", and the planes of the data-quality map {quality_map[0]} [HDU {quality_map[1]}] "
                        f"({quality_map[3]}; --masks {masks})" if quality_map and "MSK" not in own else ""))
    elif weight_map:
        notes.append("mask: the file's, and BAD where the weight is 0")
    if (layout.mask is not None or "MSK" in own) and masks:
        notes.append("mask: in the file (its data-quality map is not used)")
    unlabelled = layout.mask is not None and planes is None
    if unlabelled:
        # (bits cannot be "read from the file, never assumed" when the file names none: a data-quality
        # image's codes read as LSST bits became INTRP, SAT... at random)
        notes.append("mask: no MP_<PLANE> cards say what its bits mean; every nonzero pixel is taken as BAD")
        warn_once(log, path, "its MASK extension has no MP_<PLANE> cards to say what its bits mean: every "
                  "nonzero pixel is taken as BAD")
    notes.extend(f"header map: {cards.overrides[f]} ({f}) is not in this header; its usual cards were read"
                 for f in sorted(cards.absent_overrides))
    return ExposureInfo(
        path=path, bbox=Box.from_shape(shape, origin), wcs=wcs, visit=visit, band=band, bandpass=bandpass,
        psf=psf, mask_planes=planes if planes is not None else MaskPlanes(),
        flux_calibration=None if calibration is None else calibration[0],
        compressed=isinstance(image_hdu, fits.CompImageHDU), layout=layout.kind, instrument=name,
        calibration_card=None if calibration is None else calibration[1], notes=tuple(notes),
        extensions=(layout.image, layout.mask, layout.variance), pixels=pixels, weight_map=weight_map,
        weight_kind=weight_kind,
        quality_map=None if quality_map is None else quality_map[:3],
        unlabelled_mask=unlabelled,
        psf_origin=psf_origin,
        direct=_DirectPlanes.of(hdul, (layout.image, layout.mask, layout.variance), shape, path),
        absent_header_map=tuple(sorted(cards.absent_overrides)),
    )


def _quality_map(path: Path, pattern: str, codes: str, image_hdu, shape: tuple[int, int], primary,
                 instrument: str | None) -> tuple[Path, int, str, str]:
    """``(file, HDU, convention, description)`` of the image's data-quality map (`dcrcoadd.io.quality`),
    checked to be an integer image of the image's shape."""
    check_mask_codes(codes)
    qpath = weight_path(path, pattern, kind="data-quality map", option="--masks")
    index, qheader, qprimary = companion_hdu(qpath, image_hdu.name.strip().upper(), shape, path,
                                             kind="data-quality map")
    bitpix = int(qheader.get("BITPIX", 0))
    if bitpix < 0 or float(qheader.get("BSCALE", 1)) != 1 or float(qheader.get("BZERO", 0)) % 1:
        raise InputError(f"data-quality map {qpath} holds {'floating-point' if bitpix < 0 else 'scaled'} "
                         f"values (BITPIX {bitpix}), not integer codes: is it the weight map (--weights)?",
                         path)
    convention, text = resolve_codes(codes, (qheader, qprimary, image_hdu.header, primary), instrument)
    return qpath, index, convention, text


_LAYOUT_TEXT = {"dcrcoadd": "dcrcoadd (IMAGE/MASK/VARIANCE by EXTNAME)",
                "lsst-afw": "LSST afw (IMAGE/MASK/VARIANCE by EXTTYPE)",
                "desdm": "DES (SCI, with MSK mask bits and WGT inverse variance)",
                "image": "a single image HDU"}


def read_info(path: str | os.PathLike, *, instrument: str | None = None,
              header_map: dict[str, str] | None = None, weights: str | None = None,
              hdu: str | int | None = None, masks: str | None = None,
              mask_codes: str = "auto") -> ExposureInfo:
    """Read an exposure file's metadata (visit, band, grid, PSF, mask planes) without its pixels.

    Parameters
    ----------
    path : path-like
    instrument : str, optional
        Instrument preset to read the header with (`dcrcoadd.core.instrument.INSTRUMENTS`);
        default the one the header names in ``INSTRUME``, if any.
    header_map : dict, optional
        Field -> card overrides (`dcrcoadd.core.instrument.HEADER_FIELDS`), searched first.
    weights : str, optional
        Pattern naming each image's weight-map file (inverse variance; `dcrcoadd.io.weights`),
        used for the variance of a file that has none.
    hdu : str or int, optional
        One CCD image of a multi-extension file (its EXTNAME or HDU index, `ccd_extensions`),
        read with the primary header's cards; its weight map is the weight file's extension of
        the same name.
    masks, mask_codes : str, optional
        Pattern naming each image's data-quality file (as ``weights``), whose values give the mask
        planes of a file that has no mask, and what they mean (`dcrcoadd.io.quality`).

    Raises
    ------
    InputError
        If the file is missing, not FITS, has no image, holds impossible values
        (naming the card) or inconsistent or incomplete metadata; the message names
        the file.
    """
    path = Path(path)
    with _reading(path), _open(path) as hdul:
        return _read_info(hdul, path, instrument, header_map, weights, hdu, masks, mask_codes)


def _section(hdu, sl: tuple[slice, slice], shape: tuple[int, int], name: str, path: Path,
             dtype: type) -> np.ndarray:
    """Pixels ``sl`` of an image extension as native ``dtype``, reading as little as the format allows.

    Integer conversions wrap (``int32 -> uint32`` keeps bit 31), as mask bits need.
    """
    hshape = tuple(int(n) for n in hdu.shape)  # from the header; no pixels are read
    if hshape != tuple(shape):
        raise InputError(f"{name} extension has shape {hshape}, IMAGE has {tuple(shape)}", path)
    scaled = any(k in hdu.header for k in ("BZERO", "BSCALE", "BLANK"))
    try:
        if isinstance(hdu, fits.CompImageHDU) or scaled:
            # Tile-wise decompression / scaling of only the rows needed.
            data = hdu.section[sl]
            if "BLANK" in hdu.header and data.dtype.kind in "ui" and np.dtype(dtype).kind == "f":
                # astropy reads BZERO-offset integers (uint16 as int16 + 32768) as unsigned integers, which
                # have no NaN: their BLANK pixels, the raw value BLANK, come back as its scaled value
                blank = int(hdu.header["BLANK"]) * hdu.header.get("BSCALE", 1) + hdu.header.get("BZERO", 0)
                missing = data == blank
                data = data.astype(dtype)
                data[missing] = np.nan
                return data
            return data.astype(dtype, copy=False)
        # Unscaled plain data: slicing the memory map copies just the box, far faster
        # than astropy's row-by-row sections, and converts while copying (one pass).
        return np.array(hdu.data[sl], dtype=dtype)
    except Exception as exc:  # truncated or corrupt data
        raise InputError(f"cannot read {name} pixels, file truncated or corrupt ({exc})", path) from None


def read_exposure(path: str | os.PathLike, bbox: Box | None = None, *, require_visit: bool = False,
                  instrument: str | None = None, header_map: dict[str, str] | None = None,
                  weights: str | None = None, hdu: str | int | None = None, masks: str | None = None,
                  mask_codes: str = "auto") -> Exposure:
    """Read an exposure, or only the part of it inside ``bbox``.

    Parameters
    ----------
    path : path-like
    bbox : Box, optional
        Region in parent-grid coordinates. Only this region's pixels are read
        (memory-mapped sections for plain images, tile-wise for compressed
        ones). It is clipped to the exposure; an empty overlap is an error.
    require_visit : bool
        Raise `InputError` when the file carries no visit metadata.
    instrument, header_map, weights, hdu, masks, mask_codes
        As for `read_info`.

    Returns
    -------
    Exposure
        With ``origin`` at the region's first pixel and a WCS for its pixels. A file
        without a mask or variance gets them made from its header and pixels
        (`dcrcoadd.io.pixels`), or the variance from its weight map and mask planes from its
        data-quality map, the same for any region; one without a flux calibration gets 1 (image
        units).
    """
    path = Path(path)
    with _reading(path), _open(path) as hdul:
        info = _read_info(hdul, path, instrument, header_map, weights, hdu, masks, mask_codes)
        if require_visit and info.visit is None:
            raise InputError("no visit metadata (EXPID, BORE-AIRMASS, DATE-OBS, ... missing)", path)
        planes = _read_planes(hdul, info, bbox)
    return _complete(info, *planes)


def read_region(info: ExposureInfo, bbox: Box | None = None) -> Exposure:
    """`read_exposure` of ``info.path`` over ``bbox`` with the header already read (`read_info`).

    For a file read region by region (every subregion of every stage): the headers are parsed
    once instead of at every read, where parsing them (WCS, visit, band, mask planes) costs
    several times reading a subregion's pixels. ``info`` must come from `read_info` of the same,
    unchanged file with the options the caller reads it with.
    """
    path = info.path
    direct = info.direct
    if direct is not None and direct.unchanged(path):
        # plain arrays: mapped where `read_info` found them, the same pixels without parsing every
        # header again (that parse cost more than reading a warp's subregion)
        region, sl = _region(info, bbox)
        with _reading(path):
            return _complete(info, region, sl, *direct.read(path, info.bbox.shape, sl))
    with _reading(path), _open(path) as hdul:
        planes = _read_planes(hdul, info, bbox)
    return _complete(info, *planes)


def _region(info: ExposureInfo, bbox: Box | None) -> tuple[Box, tuple[slice, slice]]:
    """``bbox`` (default all) clipped to the exposure, and its slices of the file's arrays."""
    region = info.bbox if bbox is None else bbox.clip(info.bbox)
    if region.is_empty:
        raise InputError(f"requested {bbox} does not overlap the exposure's {info.bbox}", info.path)
    return region, region.slices(info.bbox)


def _read_planes(hdul: fits.HDUList, info: ExposureInfo, bbox: Box | None):
    """``(region, slices, image, mask or None, variance or None)`` of ``bbox`` (default all) from the
    open file ``info`` describes."""
    path = info.path
    region, sl = _region(info, bbox)
    shape = info.bbox.shape
    image, mask, variance = (None if i is None else _section(hdul[i], sl, shape, name, path, dtype)
                             for i, name, dtype in zip(info.extensions, _PLANES, _PLANE_DTYPES, strict=True))
    return region, sl, image, mask, variance


#: The largest noise whose variance (with room for the sources' shot noise) is a float32.
_LARGEST_NOISE = float(np.sqrt(np.finfo(np.float32).max)) / 1e3


def _companion_section(cpath: Path, index: int, sl, shape: tuple[int, int], kind: str, image: Path,
                       dtype: type) -> np.ndarray:
    """Pixels ``sl`` of HDU ``index`` of a weight or data-quality map (``kind``) of ``image``; opened
    lazily (only the headers up to that HDU are parsed, at every region read), any failure an
    `InputError` naming the image and the map (it was checked by `read_info`, but may have changed)."""
    if not cpath.is_file():
        raise InputError(f"{kind} {cpath} no longer exists", image)
    try:
        with _reading(cpath), fits.open(cpath, memmap=None) as hdul:
            return _section(hdul[index], sl, shape, f"{kind} {cpath}", image, dtype)
    except InputError as exc:
        if exc.source == str(image):
            raise
        raise InputError(f"{kind} {cpath}: {exc.reason}", image) from None
    except (OSError, IndexError) as exc:
        raise InputError(f"{kind} {cpath} cannot be read ({exc})", image) from None


def _complete(info: ExposureInfo, region: Box, sl, image: np.ndarray, mask: np.ndarray | None,
              variance: np.ndarray | None) -> Exposure:
    """The exposure of the planes read, a missing mask or variance made as the file's header says."""
    path, shape = info.path, info.bbox.shape
    if mask is None:
        mask = synthesize_mask(image, info.mask_planes, info.pixels.saturation)
    elif info.unlabelled_mask:
        mask = np.where(mask != 0, np.uint32(info.mask_planes.value("BAD")), np.uint32(0))
    if info.quality_map is not None:
        qpath, i_quality, convention = info.quality_map
        dq = _companion_section(qpath, i_quality, sl, shape, "data-quality map", path, np.int64)
        mask |= dq_planes(dq, convention, info.mask_planes)
    if variance is None and info.weight_map is not None:
        wpath, i_weight = info.weight_map
        weight = _companion_section(wpath, i_weight, sl, shape, "weight map", path, np.float32)
        to_variance = variance_from_sigma if info.weight_kind == "sigma" else variance_from_weight
        variance, unusable = to_variance(weight)
        mask[unusable] |= np.uint32(info.mask_planes.value("BAD"))
    elif variance is None:
        sky, sigma = sky_statistics(path, info.extensions[0])
        if sigma > _LARGEST_NOISE:  # (its square, the variance, is not a float32: every pixel was unusable)
            raise InputError(f"its pixel noise, {sigma:.3g} (from the image: it has no variance), is too "
                             "large for a float32 variance: are its pixels in the right units?", path)
        variance = synthesize_variance(image, sky, sigma, info.pixels.gain)
    wcs = info.wcs
    if wcs is not None and region != info.bbox:
        wcs = shift_wcs(wcs, -(region.x0 - info.bbox.x0), -(region.y0 - info.bbox.y0))
    return Exposure(
        image=image, mask=mask, variance=variance, mask_planes=info.mask_planes,
        origin=region.origin, wcs=wcs, psf=info.psf, visit=info.visit, band=info.band,
        bandpass=info.bandpass,
        flux_calibration=1.0 if info.flux_calibration is None else info.flux_calibration,
    )
