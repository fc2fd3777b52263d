"""Shared test fixtures: small WCSs, complete visits, bandpasses and random exposures.

The factory fixtures (``make_wcs``, ``make_visit``, ``make_exposure``) return
functions so that a test can build several objects with different settings;
the plain fixtures (``tan_wcs``, ``visit``, ``bandpass``, ``exposure``) are
ready-made defaults built by those factories.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.time import Time
from astropy.wcs import WCS

from dcrcoadd.core.bandpass import Bandpass
from dcrcoadd.core.exposure import Exposure
from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.core.observatory import Observatory, Weather
from dcrcoadd.core.psf import Psf
from dcrcoadd.core.visit import VisitInfo, altitude_from_airmass
from dcrcoadd.io import write_exposure


def tan_wcs(crval: tuple[float, float] = (150.1, 2.2), crpix: tuple[float, float] = (25.5, 20.5),
            scale_arcsec: float = 0.2, rotation_deg: float = 0.0) -> WCS:
    """A gnomonic (TAN) WCS with square pixels of ``scale_arcsec``, rotated by ``rotation_deg``.

    ``crpix`` is FITS 1-based, as written in headers.
    """
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = list(crval)
    w.wcs.crpix = list(crpix)
    s = scale_arcsec / 3600.0
    c, sn = np.cos(np.radians(rotation_deg)), np.sin(np.radians(rotation_deg))
    # RA increases to the East (left on the sky), hence the sign of the first row.
    w.wcs.cd = np.array([[-s * c, s * sn], [s * sn, s * c]])
    w.wcs.radesys = "ICRS"
    w.wcs.set()
    return w


def complete_visit(visit_id: int = 2024031500123, *, airmass: float = 1.1848653,
                   with_weather: bool = True) -> VisitInfo:
    """A VisitInfo with every field set (values chosen so none is a round number; the airmass is
    that of the altitude, as readers check)."""
    return VisitInfo(
        id=visit_id,
        time=Time("2024-03-15T03:21:45.123456789", scale="tai"),
        exposure_time=30.5 * u.s,
        boresight_ra=150.123456789 * u.deg,
        boresight_dec=2.2345678912 * u.deg,
        boresight_az=355.6719 * u.deg,  # consistent with RA/Dec at the time and site
        boresight_alt=57.5626 * u.deg,
        airmass=airmass,
        rotation_angle=-12.3456 * u.deg,
        rotation_type="SKY",
        observatory=Observatory.from_site("rubin"),
        weather=Weather(11.5 * u.deg_C, 74321.25 * u.Pa, 23.75) if with_weather else None,
    )


def g_bandpass(with_curve: bool = True) -> Bandpass:
    """A g-like band, optionally with a smooth throughput curve."""
    curve = None
    if with_curve:
        wl = np.linspace(390.0, 560.0, 35)
        thr = 0.8 * np.exp(-0.5 * ((wl - 477.0) / 45.0) ** 6)
        curve = (wl * u.nm, thr)
    return Bandpass("g", 477.03 * u.nm, 150.0 * u.nm, curve)


def random_exposure(shape: tuple[int, int] = (40, 50), origin: tuple[int, int] = (1000, 2000), *,
                    seed: int = 1, wcs: WCS | None | bool = True, psf: bool = True,
                    visit: VisitInfo | None | bool = True, bandpass: Bandpass | None | bool = True,
                    mask_planes: MaskPlanes | None = None, flux_calibration: float = 57.543993733715695,
                    ) -> Exposure:
    """A small Exposure with random pixels, a random mask (including bit 31) and every metadata field.

    ``wcs``, ``visit`` and ``bandpass`` accept True (the defaults above), None
    (absent) or an object; ``psf`` is a flag (a 9x9 Gaussian kernel).
    """
    rng = np.random.default_rng(seed)
    planes = MaskPlanes() if mask_planes is None else mask_planes
    if mask_planes is None:
        planes = MaskPlanes({**planes, "BIT31": 31})
    image = rng.normal(100.0, 10.0, shape).astype(np.float32)
    image[1, 2] = np.nan  # NaNs must survive I/O too
    variance = rng.uniform(50.0, 150.0, shape).astype(np.float32)
    # Random bits from the defined planes only, so translations keep every set bit.
    bits = np.array(sorted(planes.values()), dtype=np.uint32)
    mask = np.zeros(shape, dtype=np.uint32)
    for b in bits:
        mask |= (rng.random(shape) < 0.1).astype(np.uint32) << b
    if wcs is True:
        # crpix in this array's 1-based pixels, placed off-centre on purpose
        wcs = tan_wcs(crpix=(shape[1] / 2 + 3.25, shape[0] / 2 - 1.5), rotation_deg=17.0)
    return Exposure(
        image=image, mask=mask, variance=variance, mask_planes=planes, origin=origin,
        wcs=wcs or None,
        psf=Psf.gaussian(fwhm=3.1, size=9) if psf else None,
        visit=complete_visit() if visit is True else (visit or None),
        bandpass=g_bandpass() if bandpass is True else (bandpass or None),
        flux_calibration=flux_calibration,
    )


@pytest.fixture
def make_wcs():
    """Factory: ``make_wcs(crval=..., crpix=..., scale_arcsec=..., rotation_deg=...)`` -> TAN WCS."""
    return tan_wcs


@pytest.fixture
def make_visit():
    """Factory: ``make_visit(visit_id=..., airmass=..., with_weather=...)`` -> complete VisitInfo."""
    return complete_visit


@pytest.fixture
def make_bandpass():
    """Factory: ``make_bandpass(with_curve=True)`` -> g-like Bandpass."""
    return g_bandpass


@pytest.fixture
def make_exposure():
    """Factory: ``make_exposure(shape=..., origin=..., seed=..., ...)`` -> random Exposure."""
    return random_exposure


@pytest.fixture
def tan(make_wcs):
    return make_wcs()


@pytest.fixture
def visit(make_visit):
    return make_visit()


@pytest.fixture
def bandpass(make_bandpass):
    return make_bandpass()


@pytest.fixture
def exposure(make_exposure):
    return make_exposure()


# -- small warp sets on disk (no GalSim needed) --------------------------------------------------

def star_field(shape, rng):
    y, x = np.mgrid[: shape[0], : shape[1]]
    image = rng.normal(0.0, 1.0, shape)
    for y0, x0, flux in ((12, 14, 800.0), (27, 25, 500.0), (20, 33, 300.0)):
        image += flux * np.exp(-0.5 * ((y - y0) ** 2 + (x - x0) ** 2) / 1.5**2) / (2 * np.pi * 1.5**2)
    return image


def write_warps(directory, n=4, *, shape=(40, 40), airmasses=None, azimuths=None, band=None,
                crpix=(20.5, 20.5), visit=True, nan=False, seed=0, band_name=None, site=True):
    """Write ``n`` small warps of one three-star field on a common grid, at airmasses spread over
    1.0-1.8 and azimuths 60-300 deg (alt/az-only visits at Rubin); returns their paths."""
    rng = np.random.default_rng(seed)
    airmasses = airmasses if airmasses is not None else np.linspace(1.0, 1.8, n)
    azimuths = azimuths if azimuths is not None else np.linspace(60.0, 300.0, n)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        v = VisitInfo(id=100 + i, airmass=float(airmasses[i]),
                      boresight_alt=altitude_from_airmass(airmasses[i]), boresight_az=azimuths[i] * u.deg,
                      observatory=Observatory.from_site("rubin") if site else None)
        image = np.full(shape, np.nan) if nan else star_field(shape, rng)
        exp = Exposure(image=image, variance=np.ones(shape), wcs=tan_wcs(crpix=crpix), psf=Psf.gaussian(1.5),
                       visit=v if visit else None, band=band_name,
                       bandpass=None if band_name else band or g_bandpass(with_curve=False))
        paths.append(write_exposure(exp, directory / f"warp_{i}.fits"))
    return paths
