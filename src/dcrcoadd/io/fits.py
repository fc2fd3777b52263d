"""Exposure FITS format (see DESIGN.md): primary header with visit and band
keywords in LSST names, then IMAGE, MASK, VARIANCE and optional PSF and
TRANSMISSION extensions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS, FITSFixedWarning

from dcrcoadd.core.bandpass import Bandpass
from dcrcoadd.core.exposure import Exposure, shift_wcs
from dcrcoadd.core.geom import Box
from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.core.observatory import Observatory, Weather
from dcrcoadd.core.psf import Psf
from dcrcoadd.core.visit import VisitInfo
from dcrcoadd.errors import InputError
from dcrcoadd.io.atomic import atomic_output

log = logging.getLogger("dcrcoadd.io.fits")

# Keywords longer than 8 characters are HIERARCH cards, as LSST writes them.
_ANGLE_KEYS = {
    "boresight_ra": "BORE-RA", "boresight_dec": "BORE-DEC", "boresight_az": "BORE-AZ",
    "boresight_alt": "BORE-ALT", "rotation_angle": "BORE-ROTANG",
}
#: Side of the square tiles of compressed images (pixels).
COMPRESSION_TILE = 128
_VISIT_KEYS = ("EXPID", "DATE-AVG", "BORE-RA", "BORE-AIRMASS", "BORE-ALT", "EXPTIME")


def _card(key: str) -> str:
    return f"HIERARCH {key}" if len(key) > 8 else key


@dataclass(frozen=True)
class ExposureInfo:
    """What an exposure file says about itself, without its pixels."""

    path: Path
    bbox: Box
    wcs: WCS | None
    visit: VisitInfo | None
    band: str | None
    bandpass: Bandpass | None
    psf: Psf | None
    mask_planes: MaskPlanes
    flux_calibration: float
    compressed: bool


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


def _get_hdu(hdul: fits.HDUList, name: str, path: Path, required: bool = True, table: bool = False):
    """Extension ``name``, checked to be an image (or a binary table with ``table``)."""
    try:
        hdu = hdul[name]
    except KeyError:
        if required:
            raise InputError(f"no {name} extension (found: "
                             f"{', '.join(h.name for h in hdul) or 'none'})", path) from None
        return None
    if not isinstance(hdu, fits.BinTableHDU if table else _IMAGE_HDUS):
        kind = "binary table" if table else "image"
        raise InputError(f"{name} extension is not a readable {kind} ({type(hdu).__name__})", path)
    return hdu


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


def _float(header: fits.Header, key: str, path: Path) -> float | None:
    if key not in header:
        return None
    value = header[key]
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputError(f"keyword {key} is not a number ({value!r})", path) from None
    if not np.isfinite(value):
        return None  # LSST writes NaN for unknown values
    return value


def _visit_from_header(h: fits.Header, path: Path) -> VisitInfo | None:
    if not any(k in h for k in _VISIT_KEYS):
        return None
    if "EXPID" not in h:
        raise InputError("missing keyword EXPID (exposure identifier)", path)
    try:
        visit_id = int(h["EXPID"])
    except (TypeError, ValueError):
        raise InputError(f"keyword EXPID is not an integer ({h['EXPID']!r})", path) from None
    time = None
    if "DATE-AVG" in h:
        scale = str(h.get("TIMESYS", "TAI")).strip().lower()
        try:
            time = Time(str(h["DATE-AVG"]), scale=scale)
        except ValueError as exc:
            raise InputError(f"keyword DATE-AVG is not a valid time ({exc})", path) from None
    angles = {attr: _float(h, key, path) for attr, key in _ANGLE_KEYS.items()}
    airmass = _float(h, "BORE-AIRMASS", path)
    if airmass is None and angles["boresight_alt"] is None:
        raise InputError("missing keyword BORE-AIRMASS (and no BORE-ALT to derive it from)", path)
    observatory = None
    site = [_float(h, k, path) for k in ("OBS-LAT", "OBS-LONG", "OBS-ELEV")]
    if all(v is not None for v in site):
        observatory = Observatory(site[0] * u.deg, site[1] * u.deg, site[2] * u.m)
    elif any(v is not None for v in site):
        missing = [k for k, v in zip(("OBS-LAT", "OBS-LONG", "OBS-ELEV"), site, strict=True) if v is None]
        raise InputError(f"incomplete site: missing keyword {', '.join(missing)}", path)
    weather = None
    wx = [_float(h, k, path) for k in ("AIRTEMP", "AIRPRESS", "HUMIDITY")]
    if all(v is not None for v in wx):
        try:
            weather = Weather(wx[0] * u.deg_C, wx[1] * u.Pa, wx[2])
        except ValueError as exc:
            raise InputError(f"invalid weather keywords ({exc})", path) from None
    exptime = _float(h, "EXPTIME", path)
    try:
        return VisitInfo(
            id=visit_id, time=time, exposure_time=None if exptime is None else exptime * u.s,
            **{k: (None if v is None else v * u.deg) for k, v in angles.items()},
            airmass=airmass, rotation_type=str(h["ROTTYPE"]) if "ROTTYPE" in h else None,
            observatory=observatory, weather=weather,
        )
    except ValueError as exc:
        raise InputError(f"invalid visit metadata ({exc})", path) from None


def _bandpass_from(h: fits.Header, hdul: fits.HDUList, path: Path) -> Bandpass | None:
    lam, bw = _float(h, "BANDLAM", path), _float(h, "BANDWID", path)
    if lam is None or bw is None:
        return None
    transmission = None
    table = _get_hdu(hdul, "TRANSMISSION", path, required=False, table=True)
    if table is not None:
        transmission = (np.asarray(table.data["wavelength"], float) * u.nm,
                        np.asarray(table.data["throughput"], float))
    try:
        return Bandpass(str(h.get("FILTER", "unknown")), lam * u.nm, bw * u.nm, transmission)
    except ValueError as exc:
        raise InputError(f"invalid band keywords ({exc})", path) from None


def _read_info(hdul: fits.HDUList, path: Path) -> ExposureInfo:
    primary = hdul[0].header
    image_hdu = _get_hdu(hdul, "IMAGE", path)
    ih = image_hdu.header
    if ih.get("NAXIS") != 2:
        raise InputError(f"IMAGE extension is not a 2-D image (NAXIS={ih.get('NAXIS')})", path)
    shape = (int(ih["NAXIS2"]), int(ih["NAXIS1"]))
    origin = (-int(round(ih.get("LTV1", 0))), -int(round(ih.get("LTV2", 0))))
    wcs = None
    if "CTYPE1" in ih:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FITSFixedWarning)
                wcs = WCS(ih, naxis=2)
        except Exception as exc:
            raise InputError(f"invalid WCS in IMAGE header ({exc})", path) from None
        if not wcs.has_celestial:
            raise InputError("IMAGE WCS is not celestial", path)
    mask_hdu = _get_hdu(hdul, "MASK", path, required=False)
    try:
        planes = MaskPlanes.from_header(mask_hdu.header) if mask_hdu is not None else None
    except (TypeError, ValueError) as exc:
        raise InputError(f"invalid mask plane keywords in MASK header ({exc})", path) from None
    psf = None
    psf_hdu = _get_hdu(hdul, "PSF", path, required=False)
    if psf_hdu is not None and psf_hdu.data is not None:
        try:
            psf = Psf(psf_hdu.data)
        except ValueError as exc:
            raise InputError(f"invalid PSF extension ({exc})", path) from None
    cal = _float(primary, "FLUXCAL", path)
    if cal is not None and not cal > 0:
        raise InputError(f"FLUXCAL must be positive, got {cal}", path)
    bandpass = _bandpass_from(primary, hdul, path)
    band = str(primary["FILTER"]).strip() if "FILTER" in primary else None
    return ExposureInfo(
        path=path, bbox=Box.from_shape(shape, origin), wcs=wcs,
        visit=_visit_from_header(primary, path), band=band, bandpass=bandpass, psf=psf,
        mask_planes=planes if planes is not None else MaskPlanes(),
        flux_calibration=1.0 if cal is None else cal,
        compressed=isinstance(image_hdu, fits.CompImageHDU),
    )


def read_info(path: str | os.PathLike) -> ExposureInfo:
    """Read an exposure file's metadata (visit, band, grid, PSF, mask planes) without its pixels.

    Raises
    ------
    InputError
        If the file is missing, not FITS, lacks the IMAGE extension or has
        inconsistent or incomplete metadata; the message names the file.
    """
    path = Path(path)
    with _reading(path), _open(path) as hdul:
        return _read_info(hdul, path)


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
            return hdu.section[sl].astype(dtype, copy=False)
        # Unscaled plain data: slicing the memory map copies just the box, far faster
        # than astropy's row-by-row sections, and converts while copying (one pass).
        return np.array(hdu.data[sl], dtype=dtype)
    except Exception as exc:  # truncated or corrupt data
        raise InputError(f"cannot read {name} pixels, file truncated or corrupt ({exc})", path) from None


def read_exposure(path: str | os.PathLike, bbox: Box | None = None, *,
                  require_visit: bool = False) -> Exposure:
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

    Returns
    -------
    Exposure
        With ``origin`` at the region's first pixel and a WCS for its pixels.
    """
    path = Path(path)
    with _reading(path), _open(path) as hdul:
        info = _read_info(hdul, path)
        if require_visit and info.visit is None:
            raise InputError("no visit metadata (EXPID, BORE-AIRMASS, ... missing)", path)
        region = info.bbox if bbox is None else bbox.clip(info.bbox)
        if region.is_empty:
            raise InputError(f"requested {bbox} does not overlap the exposure's {info.bbox}", path)
        sl = region.slices(info.bbox)
        shape = info.bbox.shape
        image = _section(hdul["IMAGE"], sl, shape, "IMAGE", path, np.float32)
        mask_hdu = _get_hdu(hdul, "MASK", path, required=False)
        mask = None if mask_hdu is None else _section(mask_hdu, sl, shape, "MASK", path, np.uint32)
        var_hdu = _get_hdu(hdul, "VARIANCE", path, required=False)
        variance = None if var_hdu is None else \
            _section(var_hdu, sl, shape, "VARIANCE", path, np.float32)
    wcs = info.wcs
    if wcs is not None and region != info.bbox:
        wcs = shift_wcs(wcs, -(region.x0 - info.bbox.x0), -(region.y0 - info.bbox.y0))
    return Exposure(
        image=image, mask=mask, variance=variance, mask_planes=info.mask_planes,
        origin=region.origin, wcs=wcs, psf=info.psf, visit=info.visit, band=info.band,
        bandpass=info.bandpass, flux_calibration=info.flux_calibration,
    )
