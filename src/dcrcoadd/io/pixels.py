"""The planes a survey image lacks: variance from gain and sky noise, mask from saturation, PSF from seeing.

Survey pipelines often deliver the image alone (a DECam cutout, a ZTF science image).
What the coadd needs beside it is derived from the detector cards and the pixels:

* **variance** (image units squared): ``σ_sky² + max(I − sky, 0) / gain``, the sky's
  noise plus the sources' own shot noise, with ``sky`` and ``σ_sky`` measured on the
  whole image from the sky's side of its distribution (`sky_level_and_noise`); without
  a gain only the sky noise;
* **mask**: ``SAT`` where the pixel reaches the saturation level, ``NO_DATA`` where it
  is not finite;
* **PSF**: a circular Gaussian of the header's seeing FWHM.

The sky statistics are measured once per file over the whole image (then cached), so
reading a subregion gives exactly the same variance as slicing a full read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from astropy.wcs import WCS

from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.core.psf import Psf
from dcrcoadd.io.header import Cards
from dcrcoadd.ops.noise import sky_level_and_noise

__all__ = ["PixelModel", "pixel_model_from_cards", "seeing_psf", "sky_level_and_noise", "sky_statistics",
           "synthesize_mask", "synthesize_variance"]

#: The sky statistics use at most this many pixels (a regular subsample of the whole image).
_SKY_SAMPLE = 4_000_000


@dataclass(frozen=True)
class PixelModel:
    """What a header says about its detector, for the planes a file lacks.

    Attributes
    ----------
    gain : float or None
        Electrons per image unit.
    saturation : float or None
        Image value at which pixels saturate.
    seeing_fwhm : float or None
        Seeing FWHM in pixels.
    cards : dict
        Which card gave each of them.
    """

    gain: float | None = None
    saturation: float | None = None
    seeing_fwhm: float | None = None
    cards: tuple[tuple[str, str], ...] = ()

    def card(self, name: str) -> str | None:
        return dict(self.cards).get(name)


def _pixel_scale_arcsec(wcs: WCS | None) -> float | None:
    if wcs is None:
        return None
    return float(np.sqrt(abs(np.linalg.det(wcs.celestial.pixel_scale_matrix))) * 3600.0)


def pixel_model_from_cards(cards: Cards, wcs: WCS | None) -> PixelModel:
    """Gain, saturation and seeing from a header (each None when absent).

    Per-amplifier cards (DECam ``GAINA``/``GAINB``) are averaged for the gain and the
    lower saturation is kept, so that no saturated pixel goes unmasked.
    """
    used = []
    gain = saturation = seeing = None
    gains = cards.numbers("gain")
    if gains:
        values = [v for v, _ in gains[:1]] if gains[0][1] == "GAIN" else [v for v, _ in gains]
        if all(v > 0 for v in values):
            gain = float(np.mean(values))
            used.append(("gain", "/".join(c for _, c in gains[: len(values)])))
        else:
            raise cards.error(f"{gains[0][1]} = {gains[0][0]:g}: a gain must be positive")
    sats = cards.numbers("saturation")
    if sats:
        values = [v for v, _ in sats[:1]] if sats[0][1] == "SATURATE" else [v for v, _ in sats]
        saturation = float(min(values))
        used.append(("saturation", "/".join(c for _, c in sats[: len(values)])))
    found = cards.number("seeing")
    if found is not None and found[0] > 0:
        value, card = found
        if cards.unit(card, "pixel") == "arcsec":
            scale = _pixel_scale_arcsec(wcs)
            value = None if scale is None else value / scale
        if value is not None:
            seeing = float(value)
            used.append(("seeing", card))
    return PixelModel(gain, saturation, seeing, tuple(used))


def seeing_psf(model: PixelModel) -> Psf | None:
    """A circular Gaussian PSF of the header's seeing, or None."""
    if model.seeing_fwhm is None:
        return None
    return Psf.gaussian(fwhm=model.seeing_fwhm)


@lru_cache(maxsize=256)
def _sky_statistics_cached(path: str, mtime_ns: int, size: int, hdu_index: int) -> tuple[float, float]:
    from astropy.io import fits

    with fits.open(path, memmap=None) as hdul:
        hdu = hdul[hdu_index]
        shape = tuple(int(n) for n in hdu.shape)
        step = max(1, int(np.ceil(np.sqrt(shape[0] * shape[1] / _SKY_SAMPLE))))
        data = np.array(hdu.data[::step, ::step], dtype=np.float64)
    return sky_level_and_noise(data[np.isfinite(data)])


def sky_statistics(path: Path, hdu_index: int) -> tuple[float, float]:
    """Median and robust standard deviation of a whole image HDU (cached per file version)."""
    st = os.stat(path)
    return _sky_statistics_cached(str(path), st.st_mtime_ns, st.st_size, hdu_index)


def synthesize_variance(image: np.ndarray, sky: float, sky_sigma: float, gain: float | None) -> np.ndarray:
    """``σ_sky² + max(I − sky, 0) / gain`` (image units squared); NaN where the image is not finite."""
    variance = np.full(image.shape, sky_sigma**2, dtype=np.float64)
    if gain is not None:
        variance += np.clip(image - sky, 0.0, None) / gain
    variance[~np.isfinite(image)] = np.nan
    return variance.astype(np.float32)


def synthesize_mask(image: np.ndarray, planes: MaskPlanes, saturation: float | None) -> np.ndarray:
    """``SAT`` at or above ``saturation``, ``NO_DATA`` where the image is not finite."""
    mask = np.zeros(image.shape, dtype=np.uint32)
    finite = np.isfinite(image)
    mask[~finite] |= np.uint32(planes.value("NO_DATA"))
    if saturation is not None:
        with np.errstate(invalid="ignore"):
            mask[finite & (image >= saturation)] |= np.uint32(planes.value("SAT"))
    return mask
