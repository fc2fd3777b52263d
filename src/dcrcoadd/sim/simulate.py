"""Synthetic warps with real differential chromatic refraction, and their truth.

A field on a common TAN pixel grid (north up, east left) is observed in a
series of visits; every visit is a complete `Exposure` (image in counts with
`flux_calibration` nJy per count, mask, variance, PSF, visit metadata, band).

Who places the light
--------------------
GalSim does. For each visit a `galsim.ChromaticAtmosphere` — Kolmogorov
seeing of the visit's FWHM at the band's effective wavelength, chromatic
seeing ∝ λ^-0.2, and GalSim's own refraction model (Filippenko 1982 /
Edlén) at the visit's zenith distance, parallactic angle, temperature,
pressure and water-vapour pressure — is evaluated on a uniform wavelength
grid over the band (``wavelength_step``, 5 nm), convolved with the pixel and
drawn in Fourier space (`drawKImage`) on the postage-stamp frequency grid. A
source's stamp is the sum of these monochromatic transforms weighted by its
photon SED × throughput (trapezoid rule: the integral GalSim's chromatic
`drawImage` evaluates, here shared by all sources), times its own profile's
transform (galaxies) and the phase of its sub-pixel position, inverse-FFT'd
on the stamp and added to the image. No full-image FFT is used, and
dcrcoadd's refraction/DCR code plays no part, so the simulation is an
independent check of it. Stamps are periodic: light beyond a stamp's edge
wraps round (fluxes stay exact), so stamp sizes (32 to 256 pixels) are chosen
per source to keep that below 5 % of the pixel noise. GalSim's world
coordinates have +u west and +v north, so with a plain pixel scale they are
the image's +x and +y exactly when north is up and east is left, as on the
grid built here.

The parallactic angle given to GalSim is the position angle of the zenith
relative to ICRS north (the image's north), from astropy; the visit's
`VisitInfo.parallactic_angle` is the apparent one; the two differ by a few
tenths of a degree of precession.

Visits
------
By default the field is followed along its real hour-angle track from the
site (astropy AltAz of the field centre), at hour angles chosen so that
the airmass spans ``airmass``, alternating east and west of the meridian;
or at explicit ``hour_angles``; or at explicit ``(airmass, parallactic
angle)`` pairs. Such pairs are not, in general, reachable by the field's
declination from the site, so those visits carry horizontal coordinates
(alt/az solved at the site latitude) but no time, and their geometry is
taken from alt/az alone.

Units and noise
---------------
Fluxes are in nJy (AB). A visit's counts per nJy follow the zero point (AB
magnitude giving one count per second at airmass 1), the exposure time and
a grey extinction; its sky from a surface brightness in mag/arcsec². Images
are sky-subtracted; noise is Gaussian with the variance of sky + source
Poisson + read noise, which is also the variance plane. The PSF stored with
a warp is the visit's Kolmogorov seeing at the effective wavelength with the
pixel response, without DCR (centred).

Defects (each optional, each flagged exactly where added): cosmic rays (CR),
bad columns (BAD), saturated bright stars clipped at the full well (SAT),
a chip gap of NaN pixels (NO_DATA) bordered by EDGE pixels, and satellite
streaks in some visits, left unmasked for artifact rejection to find (their
footprints are in the truth). The DETECTED plane holds 5-sigma detections of
the visit grown by one PSF FWHM, as upstream processing sets it.

Truth: the catalogue (positions, SED parameters, full-band and per-subfilter
fluxes), noise-free images per subfilter at a fiducial achromatic PSF (nJy),
streak footprints, and for each visit a noise twin (same conditions, same
static defects, independent noise; no cosmic rays or streak).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time as _time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import ICRS, AltAz, HADec, SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time
from astropy.utils import iers
from astropy.wcs import WCS
from scipy import ndimage

from dcrcoadd.core.bandpass import Bandpass
from dcrcoadd.core.exposure import Exposure
from dcrcoadd.core.observatory import Observatory, Weather
from dcrcoadd.core.psf import SIGMA_TO_FWHM, Psf
from dcrcoadd.core.visit import VisitInfo
from dcrcoadd.errors import ConfigError
from dcrcoadd.io.atomic import atomic_output
from dcrcoadd.io.fits import exposure_hdus, write_exposure, write_hdus
from dcrcoadd.ops.detection import detection_mask

__all__ = [
    "Defects",
    "SimulatedVisit",
    "Simulation",
    "SimulationConfig",
    "Streak",
    "band_support",
    "field_wcs",
    "make_catalog",
    "make_visits",
    "psf_kernel",
    "simulate",
    "subfilter_fluxes",
    "summary_lines",
    "visit_table",
    "write_simulation",
]

log = logging.getLogger("dcrcoadd.sim.simulate")

AB_NJY_ZERO_POINT = 2.5 * math.log10(3631.0e9)  # AB magnitude of 1 nJy = 31.4
_HC_OVER_K_NM_K = 1.438776877e7  # h c / k in nm K, for the Planck function
_SIDEREAL_RATE = 1.00273790935  # sidereal hours per solar hour
_STAMP_SIZES = (32, 64, 128, 256)
_WRAP_TOLERANCE = 0.05  # wrapped light per pixel allowed, in units of the pixel noise
_CWW_TEMPLATES = ("CWW_E_ext", "CWW_Sbc_ext", "CWW_Scd_ext", "CWW_Im_ext")

# Independent random streams (numpy SeedSequence keys), so switching a defect
# off leaves the noise and everything else bit for bit the same.
_CATALOG, _CONDITIONS, _NOISE, _TWIN_NOISE, _COSMIC, _COLUMNS, _GAP, _STREAK, _STREAK_VISITS = range(9)


# ------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Defects:
    """Which defects to inject and how.

    Parameters
    ----------
    cosmic_rays : bool
    cosmic_ray_rate : float
        Mean number of cosmic-ray tracks per megapixel per visit.
    bad_columns : int
        Bad (hot or dead) columns per visit; 0 for none.
    saturation : bool
        Clip pixels at ``saturation_level`` (counts including sky) and flag SAT.
    saturation_level : float
    chip_gap : bool
        A strip of ``chip_gap_width`` NaN pixels (NO_DATA) per visit, at a
        random position and orientation, bordered by ``edge_width`` pixels of EDGE.
    chip_gap_width, edge_width : int
    streak_visits : int
        Number of visits crossed by a satellite streak (not masked).
    streak_peak : float
        Peak of the streak in units of the visit's sky noise.
    """

    cosmic_rays: bool = True
    cosmic_ray_rate: float = 40.0
    bad_columns: int = 2
    saturation: bool = True
    saturation_level: float = 1.0e5
    chip_gap: bool = True
    chip_gap_width: int = 6
    edge_width: int = 3
    streak_visits: int = 1
    streak_peak: float = 5.0

    def __post_init__(self):
        if self.cosmic_ray_rate < 0 or self.bad_columns < 0 or self.streak_visits < 0:
            raise ConfigError("defect counts and rates must be non-negative")
        if self.chip_gap_width < 1 or self.edge_width < 0:
            raise ConfigError("chip_gap_width must be >= 1 and edge_width >= 0")
        if not self.saturation_level > 0 or not self.streak_peak > 0:
            raise ConfigError("saturation_level and streak_peak must be positive")


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. Angles in degrees, seeing in arcsec, times in seconds.

    Parameters
    ----------
    size : int or (int, int)
        Image size in pixels: square, or ``(width, height)``.
    pixel_scale : float
        Arcsec per pixel.
    ra, dec : float
        Field centre (ICRS, degrees).
    origin : (int, int)
        Parent-grid position of pixel ``[0, 0]``.
    n_visits : int
    first_visit_id : int
        Visits are numbered from here, in time order.
    band : str or Bandpass
        A `Bandpass` or a preset name (``"lsst-g"``); needs a transmission
        curve or is treated as a top hat over its wavelength range.
    site : str, optional
        `Observatory.from_site` name; default the band's camera site (Rubin for LSST bands),
        else Rubin.
    date : str
        UTC date (``YYYY-MM-DD``) on whose evening the first night starts.
    n_nights : int
        Visits are spread over this many consecutive nights.
    seed : int
    seeing : (float, float)
        Range of the visits' FWHM at the band's effective wavelength (drawn uniformly).
    airmass : (float, float)
        Airmass range covered by the hour-angle track.
    hour_angles : sequence of float, optional
        Explicit hour angles (hours, negative east), one per visit; overrides ``airmass``.
    conditions : sequence of (float, float), optional
        Explicit ``(airmass, parallactic angle in degrees)`` per visit;
        overrides the track (see module notes).
    weather : Weather, optional
        Default: the standard atmosphere at the site's elevation.
    exposure_time : float
    zero_point : float
        AB magnitude giving one count per second at airmass 1 (LSST g: 28.5).
    extinction : float
        Grey extinction, magnitudes per airmass (changes the calibration per visit).
    sky_brightness : (float, float)
        Range of the sky surface brightness, AB mag/arcsec² (drawn uniformly).
    read_noise : float
        Counts (electrons) per pixel, rms.
    n_stars : int
        Black-body stars with magnitudes in ``star_mag_range`` (dN/dm ∝ 10^(0.2 m))
        and temperatures log-uniform in ``temperature_range``.
    n_bright_stars : int
        Extra stars with magnitudes in ``bright_mag_range`` (saturating by default).
    n_emission : int
        Point sources with a quasar-like SED: power-law continuum and one strong
        emission line inside the band.
    n_galaxies : int
        Bulge + disk galaxies with a CWW template SED at a random redshift.
    n_subfilters : int
        Subfilters of the truth (equal-width partition of the band).
    truth_psf_fwhm : float, optional
        FWHM of the truth images' fiducial PSF; default the mean visit seeing.
    defects : bool
        Master switch for all defects.
    defect_options : Defects
    noise_twins : bool
        Also make a noise twin of every visit.
    detection_threshold : float
        Sigma threshold of the DETECTED plane.
    wavelength_step : float
        Largest spacing (nm) of the wavelength grid used for the chromatic integral.
    """

    size: int | tuple[int, int] = 256
    pixel_scale: float = 0.2
    ra: float = 180.0
    dec: float = -20.0
    origin: tuple[int, int] = (0, 0)
    n_visits: int = 8
    first_visit_id: int = 1000
    band: str | Bandpass = "lsst-g"
    site: str | None = None
    date: str = "2024-03-20"
    n_nights: int = 1
    seed: int = 1
    seeing: tuple[float, float] = (0.6, 1.0)
    airmass: tuple[float, float] = (1.05, 1.6)
    hour_angles: tuple[float, ...] | None = None
    conditions: tuple[tuple[float, float], ...] | None = None
    weather: Weather | None = None
    exposure_time: float = 30.0
    zero_point: float = 28.5
    extinction: float = 0.0
    sky_brightness: tuple[float, float] = (21.8, 22.3)
    read_noise: float = 5.0
    n_stars: int = 100
    star_mag_range: tuple[float, float] = (17.5, 23.5)
    temperature_range: tuple[float, float] = (3000.0, 30000.0)
    n_bright_stars: int = 1
    bright_mag_range: tuple[float, float] = (14.0, 15.0)
    n_emission: int = 0
    n_galaxies: int = 0
    galaxy_mag_range: tuple[float, float] = (19.0, 23.0)
    n_subfilters: int = 3
    truth_psf_fwhm: float | None = None
    defects: bool = True
    defect_options: Defects = field(default_factory=Defects)
    noise_twins: bool = True
    detection_threshold: float = 5.0
    wavelength_step: float = 5.0

    def __post_init__(self):
        width, height = self.shape[1], self.shape[0]
        if width < 8 or height < 8:
            raise ConfigError(f"image size must be at least 8x8 pixels, got {width}x{height}")
        if not self.pixel_scale > 0:
            raise ConfigError(f"pixel_scale must be positive, got {self.pixel_scale}")
        if not -90 <= self.dec <= 90:
            raise ConfigError(f"dec must lie in [-90, 90] degrees, got {self.dec}")
        if self.n_visits < 1:
            raise ConfigError(f"n_visits must be >= 1, got {self.n_visits}")
        if self.n_nights < 1:
            raise ConfigError(f"n_nights must be >= 1, got {self.n_nights}")
        for name in ("seeing", "airmass", "sky_brightness", "star_mag_range", "temperature_range",
                     "bright_mag_range", "galaxy_mag_range"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ConfigError(f"{name} must be (min, max) with min <= max, got {(lo, hi)}")
        if not self.seeing[0] > 0:
            raise ConfigError(f"seeing must be positive, got {self.seeing}")
        if not self.airmass[0] >= 1:
            raise ConfigError(f"airmass must be >= 1, got {self.airmass}")
        if not self.temperature_range[0] > 0:
            raise ConfigError(f"temperatures must be positive, got {self.temperature_range}")
        for name in ("n_stars", "n_bright_stars", "n_emission", "n_galaxies"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.n_subfilters < 1:
            raise ConfigError(f"n_subfilters must be >= 1, got {self.n_subfilters}")
        if self.hour_angles is not None and len(self.hour_angles) != self.n_visits:
            raise ConfigError(f"hour_angles has {len(self.hour_angles)} entries for {self.n_visits} visits")
        if self.conditions is not None:
            if len(self.conditions) != self.n_visits:
                raise ConfigError(f"conditions has {len(self.conditions)} entries for {self.n_visits} visits")
            if any(len(c) != 2 or not c[0] >= 1 for c in self.conditions):
                raise ConfigError("conditions must be (airmass >= 1, parallactic angle in degrees) pairs")
        if not (self.exposure_time > 0 and self.read_noise >= 0 and self.extinction >= 0):
            raise ConfigError("exposure_time must be positive, read_noise and extinction non-negative")
        if self.truth_psf_fwhm is not None and not self.truth_psf_fwhm > 0:
            raise ConfigError(f"truth_psf_fwhm must be positive, got {self.truth_psf_fwhm}")
        if not self.wavelength_step > 0:
            raise ConfigError(f"wavelength_step must be positive, got {self.wavelength_step}")

    @property
    def shape(self) -> tuple[int, int]:
        """Numpy shape ``(height, width)``."""
        if isinstance(self.size, int | np.integer):
            return (int(self.size), int(self.size))
        width, height = self.size
        return (int(height), int(width))

    @property
    def active_defects(self) -> Defects | None:
        """The defect options, or None when defects are switched off."""
        return self.defect_options if self.defects else None

    def resolve_bandpass(self) -> Bandpass:
        """The configured band as a `Bandpass`."""
        if isinstance(self.band, Bandpass):
            return self.band
        return Bandpass.preset(self.band)

    def resolve_observatory(self) -> Observatory:
        """The configured site, or the band's camera site, or Rubin."""
        name = self.site or self.resolve_bandpass().site or "rubin"
        try:
            return Observatory.from_site(name)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


# ------------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SimulatedVisit:
    """The conditions of one simulated visit.

    ``parallactic_angle`` is the apparent one (as `VisitInfo` derives it);
    ``render_parallactic_angle`` the position angle of the zenith from ICRS
    north, which GalSim was given. Angles in degrees.
    """

    visit: VisitInfo
    seeing: float
    sky: float
    flux_calibration: float
    zenith_distance: float
    parallactic_angle: float
    render_parallactic_angle: float

    @property
    def id(self) -> int:
        return self.visit.id


@dataclass(frozen=True)
class Streak:
    """A satellite streak added (unmasked) to one visit.

    The streak is a line through ``(x, y)`` (parent pixels) at ``angle``
    (degrees from +x towards +y) with a Gaussian cross-section of ``sigma``
    pixels cut at 3 sigma, peaking at ``peak`` counts; ``footprint`` is true
    where it was added.
    """

    visit_id: int
    x: float
    y: float
    angle: float
    sigma: float
    peak: float
    footprint: np.ndarray = field(repr=False)


@dataclass(eq=False)
class Simulation:
    """Everything `simulate` made.

    Attributes
    ----------
    config : SimulationConfig
    bandpass : Bandpass
    visits : list of SimulatedVisit
    warps : list of Exposure
        One per visit, in visit order.
    twins : list of Exposure
        Noise twins, one per visit (empty when not requested).
    catalog : `~astropy.table.Table`
        Truth catalogue.
    truth : list of Exposure
        Noise-free images per subfilter (nJy, ``flux_calibration`` 1) at the fiducial PSF.
    subfilter_edges : ndarray, shape (n_subfilters, 2)
        Nominal subfilter ranges (nm); the first and last also collect the
        throughput beyond the band's nominal range.
    models : list of ndarray
        Noise-free images per visit (counts), before defects.
    defects : list of dict
        Per visit, mask plane name -> boolean array of where that defect was put.
    streaks : list of Streak
    """

    config: SimulationConfig
    bandpass: Bandpass
    visits: list[SimulatedVisit]
    warps: list[Exposure]
    twins: list[Exposure]
    catalog: Table
    truth: list[Exposure]
    subfilter_edges: np.ndarray
    models: list[np.ndarray]
    defects: list[dict[str, np.ndarray]]
    streaks: list[Streak]


# ------------------------------------------------------------------------------------------------
# Geometry: grid and visits
# ------------------------------------------------------------------------------------------------

def field_wcs(config: SimulationConfig) -> WCS:
    """TAN WCS of the field's array pixels: centre at the image centre, north up, east left."""
    ny, nx = config.shape
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.crval = [config.ra, config.dec]
    w.wcs.crpix = [(nx + 1) / 2.0, (ny + 1) / 2.0]
    scale = config.pixel_scale / 3600.0
    w.wcs.cd = [[-scale, 0.0], [0.0, scale]]
    w.wcs.radesys = "ICRS"
    w.wcs.set()
    return w


@contextlib.contextmanager
def _offline_earth_orientation():
    # Simulated pointings need arcseconds, not UT1 to the millisecond: use astropy's bundled
    # tables and never the network, whatever the date.
    with (iers.conf.set_temp("auto_download", False), iers.conf.set_temp("auto_max_age", None),
          iers.conf.set_temp("iers_degraded_accuracy", "ignore"), warnings.catch_warnings()):
        warnings.simplefilter("ignore")
        yield


def _wrap_deg(angle: np.ndarray | float) -> np.ndarray:
    """Wrap degrees to (-180, 180]."""
    a = np.mod(np.asarray(angle, dtype=float) + 180.0, 360.0) - 180.0
    return np.where(a <= -180.0, 180.0, a)


def _parallactic_from_altaz(az: np.ndarray, alt: np.ndarray, lat: float) -> np.ndarray:
    """Position angle of the zenith seen from the target, N through E, radians (pole-zenith-target
    triangle: ``tan q = -cos φ sin A / (sin φ cos a - cos φ sin a cos A)``)."""
    return np.arctan2(-np.cos(lat) * np.sin(az),
                      np.sin(lat) * np.cos(alt) - np.cos(lat) * np.sin(alt) * np.cos(az))


def _declination_from_altaz(az: np.ndarray, alt: np.ndarray, lat: float) -> np.ndarray:
    return np.arcsin(np.clip(np.sin(alt) * np.sin(lat) + np.cos(alt) * np.cos(lat) * np.cos(az), -1, 1))


def _azimuth_for(airmass: float, parallactic: float, lat_deg: float, dec_deg: float) -> float:
    """Azimuth (deg) at which a target at ``airmass`` has parallactic angle ``parallactic`` (deg).

    Of the solutions, the one whose declination is closest to ``dec_deg``.
    """
    from scipy.optimize import brentq

    alt = math.asin(1.0 / airmass)
    lat = math.radians(lat_deg)
    target = math.radians(parallactic)

    def mismatch(az):
        d = _parallactic_from_altaz(az, alt, lat) - target
        return math.atan2(math.sin(d), math.cos(d))

    grid = np.linspace(-math.pi, math.pi, 7201)
    values = np.array([mismatch(a) for a in grid])
    roots = []
    for i in np.nonzero(np.sign(values[:-1]) != np.sign(values[1:]))[0]:
        if abs(values[i] - values[i + 1]) < math.pi:  # a real crossing, not the ±180 branch cut
            roots.append(brentq(mismatch, grid[i], grid[i + 1], xtol=1e-12))
    roots += [a for a, v in zip(grid, values, strict=True) if v == 0.0]
    if not roots:
        raise ConfigError(f"no pointing at airmass {airmass:g} has parallactic angle {parallactic:g} deg "
                          f"from latitude {lat_deg:g} deg")
    decs = [math.degrees(_declination_from_altaz(a, alt, lat)) for a in roots]
    best = int(np.argmin([abs(d - dec_deg) for d in decs]))
    return math.degrees(roots[best]) % 360.0


def _airmass_targets(config: SimulationConfig, lat_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Airmasses spread over the configured range and the side of the meridian of each
    (-1 east, +1 west, alternating, east first)."""
    lat, dec = math.radians(lat_deg), math.radians(config.dec)
    cos_z_transit = math.cos(lat - dec)
    if cos_z_transit <= 0:
        raise ConfigError(f"field at dec {config.dec:g} never rises at latitude {lat_deg:g}")
    transit = 1.0 / cos_z_transit
    lo, hi = config.airmass
    if hi < transit * (1 - 1e-9):
        raise ConfigError(f"field at dec {config.dec:g} never gets below airmass {transit:.3f} from this "
                          f"site; the requested airmass range is {lo:g}-{hi:g}")
    n = config.n_visits
    targets = np.linspace(max(lo, transit), hi, n) if n > 1 else np.array([max(lo, transit)])
    return targets, np.where(np.arange(n) % 2 == 0, -1.0, 1.0)


def _hour_angle_for(airmass: float, dec_deg: float, lat_deg: float, side: float) -> float:
    """Hour angle (hours) at which a target at ``dec_deg`` reaches ``airmass`` (sec z) on ``side``."""
    lat, dec = math.radians(lat_deg), math.radians(dec_deg)
    cos_h = (1.0 / airmass - math.sin(lat) * math.sin(dec)) / (math.cos(lat) * math.cos(dec))
    return side * math.degrees(math.acos(min(max(cos_h, -1.0), 1.0))) / 15.0


def _local_midnight(config: SimulationConfig, observatory: Observatory, night: int) -> Time:
    # UTC midnight of the date, plus one day, minus the longitude in time: local midnight that night
    days = night + 1.0 - observatory.longitude.wrap_at(180 * u.deg).deg / 360.0
    return Time(f"{config.date}T00:00:00", scale="utc") + days * u.day


def make_visits(config: SimulationConfig, observatory: Observatory | None = None) -> list[SimulatedVisit]:
    """The visits' conditions: VisitInfo, seeing, sky, calibration and geometry.

    Parameters
    ----------
    config : SimulationConfig
    observatory : Observatory, optional
        Default ``config.resolve_observatory()``.

    Returns
    -------
    list of SimulatedVisit
        In time order, numbered from ``config.first_visit_id``.
    """
    obs = observatory or config.resolve_observatory()
    weather = config.weather or Weather.standard(obs.elevation)
    rng = np.random.default_rng([config.seed, _CONDITIONS])
    n = config.n_visits
    seeing = rng.uniform(*config.seeing, size=n)
    sky_mag = rng.uniform(*config.sky_brightness, size=n)
    lat = obs.latitude.deg
    centre = SkyCoord(config.ra * u.deg, config.dec * u.deg, frame=ICRS())

    geometry = []  # (time or None, az, alt, apparent q, ICRS q)
    if config.conditions is not None:
        for airmass, q in config.conditions:
            az = _azimuth_for(float(airmass), float(q), lat, config.dec)
            alt = math.degrees(math.asin(1.0 / float(airmass)))
            geometry.append((None, az, alt, float(_wrap_deg(q)), float(_wrap_deg(q))))
    else:
        if config.hour_angles is not None:
            plan = [(float(h), None) for h in config.hour_angles]
        else:
            plan = [(None, (float(x), float(side))) for x, side in zip(*_airmass_targets(config, lat),
                                                                          strict=True)]
        location = obs.to_earth_location()
        with _offline_earth_orientation():
            for i, (ha, target) in enumerate(plan):
                if target is not None:
                    ha = _hour_angle_for(target[0], config.dec, lat, target[1])
                midnight = _local_midnight(config, obs, i % config.n_nights)
                lst = midnight.sidereal_time("apparent", longitude=obs.longitude).hour
                # sidereal hours to go until the field's hour angle is `ha`, nearest midnight
                delta = (config.ra / 15.0 + ha - lst + 12.0) % 24.0 - 12.0
                t = midnight + delta / _SIDEREAL_RATE * u.hour
                # the true (apparent) hour angle and declination differ by precession: refine
                for _ in range(2):
                    hd = centre.transform_to(HADec(obstime=t, location=location, pressure=0 * u.hPa))
                    if target is not None:
                        ha = _hour_angle_for(target[0], hd.dec.deg, lat, target[1])
                    t = t + ((ha - hd.ha.hour + 12.0) % 24.0 - 12.0) / _SIDEREAL_RATE * u.hour
                frame = AltAz(obstime=t, location=location, pressure=0 * u.hPa)
                aa = centre.transform_to(frame)
                zenith = SkyCoord(az=0 * u.deg, alt=90 * u.deg, frame=frame).transform_to(ICRS())
                q_icrs = centre.position_angle(zenith).wrap_at(180 * u.deg).deg
                q_app = math.degrees(_parallactic_from_altaz(aa.az.rad, aa.alt.rad, obs.latitude.rad))
                geometry.append((t, aa.az.deg, aa.alt.deg, float(_wrap_deg(q_app)), float(q_icrs)))
        if min(g[2] for g in geometry) <= 0:
            raise ConfigError("some visits would be below the horizon; choose other hour angles or date")

    order = sorted(range(n), key=lambda i: (geometry[i][0].jd if geometry[i][0] is not None else 0.0, i))
    visits = []
    for k, i in enumerate(order):
        t, az, alt, q_app, q_icrs = geometry[i]
        airmass = 1.0 / math.sin(math.radians(alt))
        cal = _flux_calibration(config, airmass)
        sky = 10 ** (-0.4 * (sky_mag[i] - AB_NJY_ZERO_POINT)) * config.pixel_scale ** 2 \
            * _counts_per_njy(config, 1.0)  # the sky is measured through the atmosphere already
        info = VisitInfo(
            id=config.first_visit_id + k, time=t, exposure_time=config.exposure_time * u.s,
            boresight_ra=config.ra * u.deg, boresight_dec=config.dec * u.deg,
            boresight_az=az * u.deg, boresight_alt=alt * u.deg, airmass=airmass,
            rotation_angle=0.0 * u.deg, rotation_type="SKY", observatory=obs, weather=weather,
        )
        visits.append(SimulatedVisit(visit=info, seeing=float(seeing[i]), sky=float(sky),
                                     flux_calibration=cal, zenith_distance=90.0 - alt,
                                     parallactic_angle=q_app, render_parallactic_angle=q_icrs))
    return visits


def _counts_per_njy(config: SimulationConfig, airmass: float) -> float:
    return 10 ** (0.4 * (config.zero_point - AB_NJY_ZERO_POINT)) * config.exposure_time \
        * 10 ** (-0.4 * config.extinction * (airmass - 1.0))


def _flux_calibration(config: SimulationConfig, airmass: float) -> float:
    """nJy per count of a visit at ``airmass``."""
    return 1.0 / _counts_per_njy(config, airmass)


# ------------------------------------------------------------------------------------------------
# Sources and their spectra
# ------------------------------------------------------------------------------------------------

def _photons_blackbody(wavelength: np.ndarray, temperature: float) -> np.ndarray:
    """Photon flux density of a black body, arbitrary scale (f_λ λ ∝ λ^-4 / (e^{hc/λkT} - 1))."""
    return wavelength ** -4.0 / np.expm1(_HC_OVER_K_NM_K / (wavelength * temperature))


def _photons_emission(wavelength: np.ndarray, line: float, ew: float, sigma: float = 3.0) -> np.ndarray:
    """Quasar-like photon SED: f_ν ∝ ν^-0.5 continuum plus a Gaussian line of equivalent width ``ew``."""
    continuum = wavelength ** -1.5  # f_λ
    gauss = np.exp(-0.5 * ((wavelength - line) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    return (continuum + ew * line ** -1.5 * gauss) * wavelength


_SED_CACHE: dict[str, object] = {}


def _cww_sed(name: str):
    import galsim

    if name not in _SED_CACHE:
        _SED_CACHE[name] = galsim.SED(f"{name}.sed", wave_type="Ang", flux_type="flambda")
    return _SED_CACHE[name]


def source_photons(row, wavelength: np.ndarray) -> np.ndarray:
    """Photon SED (arbitrary scale) of a catalogue row at ``wavelength`` (nm)."""
    kind = str(row["sed"])
    if kind == "blackbody":
        return _photons_blackbody(wavelength, float(row["temperature"]))
    if kind == "emission":
        return _photons_emission(wavelength, float(row["line_wavelength"]), float(row["line_ew"]))
    if kind.startswith("CWW_"):
        sed = _cww_sed(kind).atRedshift(float(row["redshift"]))
        return np.asarray(sed(wavelength), dtype=float)  # GalSim SEDs evaluate to photons
    raise ConfigError(f"unknown SED {kind!r} in the catalogue (use blackbody, emission or "
                      f"{', '.join(_CWW_TEMPLATES)})")


def band_support(bandpass: Bandpass) -> tuple[float, float]:
    """Wavelength range (nm) where the throughput is above 1e-3 of its peak (or the top hat)."""
    if bandpass.transmission is None:
        return bandpass.wavelength_range
    wl = bandpass.transmission[0].to_value(u.nm)
    thr = bandpass.transmission[1]
    above = np.nonzero(thr >= 1e-3 * thr.max())[0]
    return float(wl[max(above[0] - 1, 0)]), float(wl[min(above[-1] + 1, wl.size - 1)])


def _trapezoid_weights(grid: np.ndarray) -> np.ndarray:
    dx = np.diff(grid)
    w = np.zeros_like(grid)
    w[:-1] += 0.5 * dx
    w[1:] += 0.5 * dx
    return w


@dataclass(frozen=True)
class _Spectral:
    """Wavelength grids of one band: the rendering grid with its quadrature weights (× throughput),
    and a fine grid for the subfilter integrals."""

    waves: np.ndarray
    weights: np.ndarray
    fine: np.ndarray
    fine_throughput: np.ndarray
    edges: np.ndarray  # nominal subfilter edges, (M, 2)

    @classmethod
    def build(cls, bandpass: Bandpass, n_subfilters: int, step: float,
              edges: np.ndarray | None = None) -> _Spectral:
        lo, hi = band_support(bandpass)
        edges = bandpass.subfilter_edges(n_subfilters) if edges is None else np.asarray(edges, float)
        if edges.ndim != 2 or edges.shape[1] != 2 or np.any(edges[:, 1] <= edges[:, 0]):
            raise ValueError(f"subfilter edges must be an increasing (M, 2) array in nm, got {edges!r}")
        # A uniform grid: refraction and seeing change slowly with wavelength, so a 5 nm step
        # already puts a star's chromatic centroid within 1e-3 px of a 0.1 nm grid; the
        # weights are normalized, so fluxes are exact whatever the step.
        waves = np.linspace(lo, hi, max(int(math.ceil((hi - lo) / step)), 2) + 1)
        fine = np.union1d(np.arange(lo, hi, 0.1), np.clip(np.concatenate([[lo, hi], edges.ravel()]), lo, hi))
        return cls(waves=waves, weights=_trapezoid_weights(waves) * bandpass.throughput(waves),
                   fine=fine, fine_throughput=bandpass.throughput(fine), edges=edges)

    def render_weights(self, row) -> np.ndarray:
        """Normalized chromatic weights of a source on the rendering grid (sum 1)."""
        w = source_photons(row, self.waves) * self.weights
        total = w.sum()
        if not total > 0:
            raise ConfigError(f"source {row['id']} has no flux in the band")
        return w / total

    def subfilter_fractions(self, row) -> np.ndarray:
        """Fraction of a source's band counts in each subfilter (sum 1).

        The first and last subfilters also take the throughput beyond the
        nominal range, so the fractions add up to the whole band.
        """
        g = source_photons(row, self.fine) * self.fine_throughput
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (g[1:] + g[:-1]) * np.diff(self.fine))])
        inner = np.interp(self.edges[1:, 0], self.fine, cum)
        bounds = np.concatenate([[0.0], inner, [cum[-1]]])
        return np.diff(bounds) / cum[-1]


def subfilter_fluxes(catalog: Table, bandpass: Bandpass, edges: np.ndarray) -> np.ndarray:
    """Flux (nJy) of each catalogue source in each of the given subfilters.

    Parameters
    ----------
    catalog : `~astropy.table.Table`
        A simulation's truth catalogue (``flux`` and the SED columns).
    bandpass : Bandpass
    edges : array_like, shape (M, 2)
        Subfilter ranges (nm), blue to red, contiguous. Throughput beyond
        them goes to the first and last subfilters, so the fluxes of a source
        add up to its band flux.

    Returns
    -------
    ndarray, shape (n_sources, M)
    """
    spectral = _Spectral.build(bandpass, len(edges), 5.0, edges=np.asarray(edges, dtype=float))
    fractions = np.array([spectral.subfilter_fractions(row) for row in catalog]).reshape(len(catalog), -1)
    return np.asarray(catalog["flux"], dtype=float)[:, None] * fractions


_CATALOG_DEFAULTS = {
    "kind": "star", "sed": "blackbody", "temperature": 6000.0, "redshift": np.nan,
    "line_wavelength": np.nan, "line_ew": np.nan, "hlr": 0.0, "bulge_fraction": 0.0,
    "q": 1.0, "beta": 0.0,
}


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(math.log(lo), math.log(hi), size=n))


def _magnitudes(rng: np.random.Generator, lo: float, hi: float, n: int, slope: float = 0.2) -> np.ndarray:
    """Magnitudes with dN/dm ∝ 10^(slope m) on [lo, hi] (inverse CDF)."""
    a, b = 10 ** (slope * lo), 10 ** (slope * hi)
    return np.log10(a + rng.uniform(size=n) * (b - a)) / slope


def make_catalog(config: SimulationConfig) -> Table:
    """Random sources of the field: positions, magnitudes and SED parameters (no subfilter fluxes).

    Columns: ``kind`` (star, emission, galaxy), ``x``, ``y`` (parent-grid pixels),
    ``mag`` (AB), ``sed`` (``blackbody``, ``emission`` or a CWW template name),
    ``temperature`` (K), ``redshift``, ``line_wavelength`` and ``line_ew`` (nm),
    and for galaxies ``hlr`` (disk half-light radius, arcsec), ``bulge_fraction``,
    ``q`` (axis ratio) and ``beta`` (position angle from +x towards +y, degrees).
    `simulate` completes it with ``id``, ``ra``, ``dec``, ``flux`` and ``subfilter_flux``.
    """
    rng = np.random.default_rng([config.seed, _CATALOG])
    ny, nx = config.shape
    x0, y0 = config.origin
    bandpass = config.resolve_bandpass()
    lo, hi = bandpass.wavelength_range
    columns = ["kind", "x", "y", "mag"] + [k for k in _CATALOG_DEFAULTS if k != "kind"]
    rows: dict[str, list] = {k: [] for k in columns}

    def add(kind, n, mags, **cols):
        rows["kind"] += [kind] * n
        rows["x"] += list(x0 + rng.uniform(-0.5, nx - 0.5, size=n))
        rows["y"] += list(y0 + rng.uniform(-0.5, ny - 0.5, size=n))
        rows["mag"] += list(mags)
        for key, default in _CATALOG_DEFAULTS.items():
            if key == "kind":
                continue
            value = cols.get(key, default)
            rows[key] += list(value) if isinstance(value, np.ndarray | list) else [value] * n

    t_lo, t_hi = config.temperature_range
    n = config.n_stars
    add("star", n, _magnitudes(rng, *config.star_mag_range, n), temperature=_log_uniform(rng, t_lo, t_hi, n))
    n = config.n_bright_stars
    add("star", n, rng.uniform(*config.bright_mag_range, size=n),
        temperature=_log_uniform(rng, t_lo, t_hi, n))
    n = config.n_emission
    add("emission", n, rng.uniform(*config.star_mag_range, size=n), sed="emission",
        temperature=np.full(n, np.nan), line_wavelength=rng.uniform(lo, hi, size=n),
        line_ew=rng.uniform(20.0, 80.0, size=n))
    n = config.n_galaxies
    add("galaxy", n, rng.uniform(*config.galaxy_mag_range, size=n),
        sed=list(rng.choice(_CWW_TEMPLATES, size=n)), temperature=np.full(n, np.nan),
        redshift=rng.uniform(0.05, 1.0, size=n), hlr=_log_uniform(rng, 0.3, 1.2, n),
        bulge_fraction=rng.uniform(0.0, 0.5, size=n), q=rng.uniform(0.3, 1.0, size=n),
        beta=rng.uniform(0.0, 180.0, size=n))
    table = Table({k: np.asarray(v) if v else np.zeros(0) for k, v in rows.items()})
    table["kind"] = table["kind"].astype(str)
    table["sed"] = table["sed"].astype(str)
    return table


def _complete_catalog(catalog: Table, config: SimulationConfig, wcs: WCS, spectral: _Spectral,
                      band_name: str) -> Table:
    """Fill ids, sky/pixel positions, fluxes and subfilter fluxes; validate the columns."""
    cat = Table(catalog, copy=True)
    n = len(cat)
    x0, y0 = config.origin
    if "x" not in cat.colnames or "y" not in cat.colnames:
        if "ra" not in cat.colnames or "dec" not in cat.colnames:
            raise ConfigError("the catalogue needs x, y (parent pixels) or ra, dec (degrees) columns")
        px, py = wcs.world_to_pixel(SkyCoord(np.asarray(cat["ra"]) * u.deg, np.asarray(cat["dec"]) * u.deg))
        cat["x"], cat["y"] = np.asarray(px) + x0, np.asarray(py) + y0
    sky = wcs.pixel_to_world(np.asarray(cat["x"], float) - x0, np.asarray(cat["y"], float) - y0)
    cat["ra"], cat["dec"] = sky.ra.deg, sky.dec.deg
    if "flux" not in cat.colnames:
        if "mag" not in cat.colnames:
            raise ConfigError("the catalogue needs a flux (nJy) or mag (AB) column")
        cat["flux"] = 10 ** (-0.4 * (np.asarray(cat["mag"], float) - AB_NJY_ZERO_POINT))
    cat["mag"] = AB_NJY_ZERO_POINT - 2.5 * np.log10(np.asarray(cat["flux"], float))
    for key, default in _CATALOG_DEFAULTS.items():
        if key not in cat.colnames and key != "kind":
            cat[key] = [default] * n if n else np.zeros(0, dtype=type(default))
    if "kind" not in cat.colnames:
        sed = np.asarray(cat["sed"]).astype(str)
        cat["kind"] = np.where(np.asarray(cat["hlr"], float) > 0, "galaxy",
                               np.where(sed == "emission", "emission", "star")) if n else np.zeros(0, str)
    cat["kind"] = np.asarray(cat["kind"]).astype(str)
    cat["sed"] = np.asarray(cat["sed"]).astype(str)
    if np.any(~(np.asarray(cat["flux"], float) > 0)):
        raise ConfigError("catalogue fluxes must be positive")
    if "id" not in cat.colnames:
        cat["id"] = np.arange(1, n + 1)
    fractions = np.array([spectral.subfilter_fractions(row) for row in cat]).reshape(n, len(spectral.edges))
    cat["subfilter_flux"] = np.asarray(cat["flux"], float)[:, None] * fractions
    order = ["id", "kind", "x", "y", "ra", "dec", "mag", "flux", "subfilter_flux", "sed", "temperature",
             "redshift", "line_wavelength", "line_ew", "hlr", "bulge_fraction", "q", "beta"]
    cat = cat[order + [c for c in cat.colnames if c not in order]]
    for name, unit in (("x", u.pix), ("y", u.pix), ("ra", u.deg), ("dec", u.deg), ("mag", u.mag),
                       ("flux", u.nJy), ("subfilter_flux", u.nJy), ("temperature", u.K),
                       ("line_wavelength", u.nm), ("line_ew", u.nm), ("hlr", u.arcsec), ("beta", u.deg)):
        cat[name].unit = unit
    cat.meta.update({
        "band": band_name, "n_subfilters": int(len(spectral.edges)),
        "subfilter_edges_nm": [[float(a), float(b)] for a, b in spectral.edges],
        "subfilter_note": "equal-width partition of [lambda_eff - bw/2, lambda_eff + bw/2]; the first and "
                          "last subfilters also hold the throughput beyond that range",
        "seed": int(config.seed), "flux_unit": "nJy (AB)",
    })
    return cat


def _galaxy_profile(row):
    import galsim

    hlr = float(row["hlr"])
    bf = float(row["bulge_fraction"])
    parts = [galsim.Exponential(half_light_radius=hlr, flux=1.0 - bf)]
    if bf > 0:
        parts.append(galsim.DeVaucouleurs(half_light_radius=0.3 * hlr, flux=bf))
    profile = galsim.Add(parts) if len(parts) > 1 else parts[0]
    return profile.shear(q=float(row["q"]), beta=float(row["beta"]) * galsim.degrees)


# ------------------------------------------------------------------------------------------------
# Rendering on postage stamps
# ------------------------------------------------------------------------------------------------

class _StampRenderer:
    """Sources through one (chromatic) PSF, stamp by stamp, in Fourier space.

    ``psf_at(λ)`` is a GalSim profile (with the pixel) for wavelength λ; its
    transform is drawn once per stamp size and wavelength. A source's stamp
    is ``irfft2(Σ_λ w_λ K_λ · G · phase)`` with ``w`` its chromatic weights,
    ``G`` its own profile's transform (galaxies) and the phase its position.
    """

    def __init__(self, psf_at: Callable[[float], object], waves: np.ndarray, scale: float,
                 wrap_radius: Callable[[float], float]):
        self.psf_at = psf_at
        self.waves = np.asarray(waves, dtype=float)
        self.scale = float(scale)
        self.wrap_radius = wrap_radius  # counts -> radius (px) beyond which wrapped light is negligible
        self._kpsf: dict[int, np.ndarray] = {}

    def kpsf(self, size: int) -> np.ndarray:
        """Transforms of the PSF on a ``size`` stamp's frequency grid, ``(n_waves, size * (size // 2 + 1))``.

        A smaller stamp's frequencies are every ``r``-th of a larger one's (sizes are powers
        of two), so the set drawn at the largest size serves them all.
        """
        if size in self._kpsf:
            return self._kpsf[size]
        half = size // 2 + 1
        big = max(self._kpsf, default=0)
        if big >= size and big % size == 0:
            r = big // size
            rows = (np.arange(size) * r) % big  # fft order: 0, 1, ..., -1 on both grids
            k = self._kpsf[big].reshape(self.waves.size, big, big // 2 + 1)
            out = np.ascontiguousarray(k[:, rows][:, :, :(half - 1) * r + 1:r])
        else:
            dk = 2 * math.pi / (size * self.scale)
            out = np.empty((self.waves.size, size, half), dtype=np.complex128)
            for i, w in enumerate(self.waves):
                k = self.psf_at(float(w)).drawKImage(nx=size, ny=size, scale=dk).array
                out[i] = np.fft.ifftshift(k)[:, :half]
        self._kpsf[size] = out.reshape(self.waves.size, -1)
        return self._kpsf[size]

    def stamp_size(self, counts: float, extent_px: float) -> int:
        need = 2.0 * (self.wrap_radius(counts) + extent_px)
        for s in _STAMP_SIZES:
            if s >= need:
                return s
        return _STAMP_SIZES[-1]

    def draw(self, outputs: np.ndarray, origin: tuple[int, int], xs: np.ndarray, ys: np.ndarray,
             weights: np.ndarray, coefficients: np.ndarray, extents: np.ndarray,
             profile_k: Callable[[int, int], np.ndarray | None], chunk: int = 64) -> None:
        """Add sources into ``outputs`` (n_out, ny, nx).

        Parameters
        ----------
        xs, ys : ndarray
            Parent-grid positions.
        weights : ndarray, (n, n_waves)
            Chromatic weights (rows sum to 1).
        coefficients : ndarray, (n, n_out)
            Flux of each source in each output.
        extents : ndarray
            Radius (px) a source's own profile needs beyond the PSF's.
        profile_k : callable
            ``(source index, stamp size) -> transform`` of the source's own profile, or None.
        """
        n_out, ny, nx = outputs.shape
        scale = self.scale
        brightness = np.abs(coefficients).max(axis=1) if coefficients.size else np.zeros(0)
        sizes = np.array([self.stamp_size(b, e) for b, e in zip(brightness, extents, strict=True)], int)
        ix = np.rint(xs - origin[0]).astype(int)
        iy = np.rint(ys - origin[1]).astype(int)
        dx, dy = xs - origin[0] - ix, ys - origin[1] - iy
        if sizes.size:
            self.kpsf(int(sizes.max()))  # draw once, at the largest size needed
        for size in np.unique(sizes):
            sel = np.nonzero(sizes == size)[0]
            # sources whose stamp misses the image entirely cost nothing
            h = size // 2
            sel = sel[(ix[sel] + size - h > 0) & (ix[sel] - h < nx)
                      & (iy[sel] + size - h > 0) & (iy[sel] - h < ny)]
            if sel.size == 0:
                continue
            kp = self.kpsf(int(size))
            kx = 2 * math.pi * np.fft.rfftfreq(size, d=scale)
            ky = 2 * math.pi * np.fft.fftfreq(size, d=scale)
            for start in range(0, sel.size, chunk):
                idx = sel[start:start + chunk]
                g = (weights[idx] @ kp).reshape(idx.size, size, size // 2 + 1)
                for j, src in enumerate(idx):
                    prof = profile_k(int(src), int(size))
                    if prof is not None:
                        g[j] *= prof
                ox, oy = (h + dx[idx]) * scale, (h + dy[idx]) * scale
                g *= np.exp(-1j * ky[None, :, None] * oy[:, None, None])
                g *= np.exp(-1j * kx[None, None, :] * ox[:, None, None])
                stamps = np.fft.irfft2(g, s=(size, size), axes=(-2, -1))
                for j, src in enumerate(idx):
                    ya, xa = iy[src] - h, ix[src] - h
                    y_lo, x_lo = max(ya, 0), max(xa, 0)
                    y_hi, x_hi = min(ya + size, ny), min(xa + size, nx)
                    piece = stamps[j, y_lo - ya:y_hi - ya, x_lo - xa:x_hi - xa]
                    for o in range(n_out):
                        c = coefficients[src, o]
                        if c != 0:
                            outputs[o, y_lo:y_hi, x_lo:x_hi] += c * piece


def _wrap_radius_fn(fwhm: float, scale: float, noise: float, margin_px: float) -> Callable[[float], float]:
    """counts -> radius (px) where a Kolmogorov PSF of ``fwhm`` (arcsec) falls below the wrap tolerance."""
    import galsim

    kol = galsim.Kolmogorov(fwhm=fwhm)
    radii = np.arange(2, _STAMP_SIZES[-1] // 2 + 1, dtype=float)
    per_pixel = np.array([kol.xValue(galsim.PositionD(r * scale, 0.0)) for r in radii]) * scale ** 2
    floor = 2.0 * fwhm / scale  # never narrower than ~4 FWHM across

    def radius(counts: float) -> float:
        faint = np.nonzero(counts * per_pixel <= _WRAP_TOLERANCE * noise)[0]
        r = radii[faint[0]] if faint.size else radii[-1]
        return max(r, floor) + margin_px

    return radius


def _galsim_weather(weather: Weather) -> dict[str, float]:
    """GalSim's refraction arguments: temperature (K), pressure and water-vapour pressure (kPa)."""
    t_c = float(weather.temperature.to_value(u.deg_C, equivalencies=u.temperature()))
    # saturation vapour pressure over water, Alduchov & Eskridge (1996) Magnus form, Pa
    e_sat = 610.94 * math.exp(17.625 * t_c / (t_c + 243.04))
    return {"temperature": weather.temperature_kelvin, "pressure": weather.pressure.to_value(u.kPa),
            "H2O_pressure": weather.humidity / 100.0 * e_sat / 1000.0}


def _visit_renderer(sv: SimulatedVisit, bandpass: Bandpass, spectral: _Spectral, scale: float,
                    noise: float) -> _StampRenderer:
    import galsim

    lam_eff = bandpass.effective_wavelength.to_value(u.nm)
    kw = _galsim_weather(sv.visit.weather)
    atmosphere = galsim.ChromaticAtmosphere(
        galsim.Kolmogorov(fwhm=sv.seeing), base_wavelength=lam_eff,
        zenith_angle=sv.zenith_distance * galsim.degrees,
        parallactic_angle=sv.render_parallactic_angle * galsim.degrees, **kw)
    pixel = galsim.Pixel(scale)
    # the stamp must hold the whole refraction track and the broader blue PSF
    z = sv.zenith_distance * galsim.degrees
    track = max(abs(galsim.dcr.get_refraction(w, z, **kw) - atmosphere.base_refraction)
                for w in (spectral.waves[0], spectral.waves[-1])) * (180 / math.pi) * 3600 / scale
    blue_fwhm = sv.seeing * (spectral.waves[0] / lam_eff) ** -0.2
    return _StampRenderer(lambda w: galsim.Convolve(atmosphere.evaluateAtWavelength(w), pixel),
                          spectral.waves, scale, _wrap_radius_fn(blue_fwhm, scale, noise, track + 1.0))


def _truth_renderer(fwhm: float, scale: float, noise: float) -> _StampRenderer:
    import galsim

    psf = galsim.Convolve(galsim.Kolmogorov(fwhm=fwhm), galsim.Pixel(scale))
    return _StampRenderer(lambda w: psf, np.array([1.0]), scale, _wrap_radius_fn(fwhm, scale, noise, 1.0))


def psf_kernel(fwhm: float, scale: float) -> Psf:
    """Kolmogorov PSF image of ``fwhm`` arcsec with the pixel response, odd-sized and centred."""
    import galsim

    fwhm_px = fwhm / scale
    size = 2 * int(math.ceil(4.0 * fwhm_px)) + 1
    image = galsim.Kolmogorov(fwhm=fwhm).drawImage(nx=size, ny=size, scale=scale)
    return Psf(image.array)


class _ProfileCache:
    """Transforms of galaxy profiles per stamp size, shared by all visits."""

    def __init__(self, catalog: Table, scale: float):
        self.scale = scale
        self.profiles = {i: _galaxy_profile(row) for i, row in enumerate(catalog) if row["hlr"] > 0}
        self._k: dict[tuple[int, int], np.ndarray] = {}

    def extent_px(self, catalog: Table) -> np.ndarray:
        return 6.0 * np.asarray(catalog["hlr"], dtype=float) / self.scale

    def __call__(self, index: int, size: int) -> np.ndarray | None:
        prof = self.profiles.get(index)
        if prof is None:
            return None
        key = (index, size)
        if key not in self._k:
            dk = 2 * math.pi / (size * self.scale)
            k = prof.drawKImage(nx=size, ny=size, scale=dk).array
            self._k[key] = np.fft.ifftshift(k)[:, :size // 2 + 1]
        return self._k[key]


# ------------------------------------------------------------------------------------------------
# Defects
# ------------------------------------------------------------------------------------------------

@dataclass
class _DefectPlan:
    """Where one visit's defects go, drawn before any is applied."""

    cosmic: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (y, x, charge)
    columns: list[tuple[int, int, int, bool]] = field(default_factory=list)  # (x, y0, y1, hot)
    gap: np.ndarray | None = None  # boolean NO_DATA region
    streak: Streak | None = None
    streak_image: np.ndarray | None = None


def _plan_defects(config: SimulationConfig, index: int, sv: SimulatedVisit, noise: float,
                  streaked: bool) -> _DefectPlan:
    opts = config.active_defects
    plan = _DefectPlan()
    if opts is None:
        return plan
    ny, nx = config.shape
    key = (config.seed, index)
    if opts.cosmic_rays:
        rng = np.random.default_rng([key[0], _COSMIC, key[1]])
        ys, xs, qs = [], [], []
        for _ in range(rng.poisson(opts.cosmic_ray_rate * nx * ny / 1e6)):
            length = rng.uniform(0.0, 8.0)
            theta = rng.uniform(0.0, math.pi)
            x_start, y_start = rng.uniform(-0.5, nx - 0.5), rng.uniform(-0.5, ny - 0.5)
            t = np.linspace(0.0, length, int(math.ceil(2 * length)) + 1)
            px = np.rint(x_start + t * math.cos(theta)).astype(int)
            py = np.rint(y_start + t * math.sin(theta)).astype(int)
            inside = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
            pix = np.unique(np.stack([py[inside], px[inside]], axis=1), axis=0)
            ys.append(pix[:, 0])
            xs.append(pix[:, 1])
            qs.append(rng.uniform(10.0, 100.0, size=len(pix)) * noise)
        if ys:
            plan.cosmic = (np.concatenate(ys), np.concatenate(xs), np.concatenate(qs))
    if opts.bad_columns:
        rng = np.random.default_rng([key[0], _COLUMNS, key[1]])
        for _ in range(opts.bad_columns):
            x = int(rng.integers(0, nx))
            if rng.uniform() < 0.5:
                y0, y1 = 0, ny
            else:
                y0 = int(rng.integers(0, ny - 1))
                y1 = int(rng.integers(y0 + 1, ny + 1))
            plan.columns.append((x, y0, y1, bool(rng.uniform() < 0.5)))
    if opts.chip_gap:
        rng = np.random.default_rng([key[0], _GAP, key[1]])
        vertical = bool(rng.uniform() < 0.5)
        extent = nx if vertical else ny
        width = min(opts.chip_gap_width, extent - 1)
        start = int(rng.integers(0, extent - width + 1))
        gap = np.zeros((ny, nx), dtype=bool)
        if vertical:
            gap[:, start:start + width] = True
        else:
            gap[start:start + width, :] = True
        plan.gap = gap
    if streaked:
        rng = np.random.default_rng([key[0], _STREAK, key[1]])
        x_c = config.origin[0] + rng.uniform(0.25, 0.75) * (nx - 1)
        y_c = config.origin[1] + rng.uniform(0.25, 0.75) * (ny - 1)
        angle = rng.uniform(0.0, 180.0)
        sigma = sv.seeing / config.pixel_scale / SIGMA_TO_FWHM
        peak = opts.streak_peak * noise
        yy, xx = np.mgrid[:ny, :nx]
        a = math.radians(angle)
        dist = np.abs((xx + config.origin[0] - x_c) * math.sin(a)
                      - (yy + config.origin[1] - y_c) * math.cos(a))
        footprint = dist <= 3.0 * sigma
        plan.streak_image = np.where(footprint, peak * np.exp(-0.5 * (dist / sigma) ** 2), 0.0)
        plan.streak = Streak(visit_id=sv.id, x=float(x_c), y=float(y_c), angle=float(angle),
                             sigma=float(sigma), peak=float(peak), footprint=footprint)
    return plan


def _apply_defects(image: np.ndarray, variance: np.ndarray, sky: float, config: SimulationConfig,
                   plan: _DefectPlan, transient: bool) -> dict[str, np.ndarray]:
    """Apply a defect plan in place; return plane -> where flagged.

    ``transient`` includes cosmic rays and the streak (not in a noise twin).
    """
    opts = config.active_defects
    shape = image.shape
    flags: dict[str, np.ndarray] = {}
    if opts is None:
        return flags
    if opts.saturation:
        # the full well holds sky and source together; the warp is sky-subtracted
        sat = image + sky >= opts.saturation_level
        image[sat] = opts.saturation_level - sky
        flags["SAT"] = sat
    if transient and plan.streak_image is not None:
        image += plan.streak_image
    if transient and plan.cosmic is not None:
        y, x, q = plan.cosmic
        np.add.at(image, (y, x), q)
        cr = np.zeros(shape, dtype=bool)
        cr[y, x] = True
        flags["CR"] = cr
    if plan.columns:
        bad = np.zeros(shape, dtype=bool)
        for x, y0, y1, hot in plan.columns:
            # a hot column reads high; a dead one reads zero before sky subtraction
            image[y0:y1, x] = 50.0 * math.sqrt(sky) + 1000.0 if hot else -sky
            bad[y0:y1, x] = True
        flags["BAD"] = bad
    if plan.gap is not None:
        image[plan.gap] = np.nan
        variance[plan.gap] = np.nan
        flags["NO_DATA"] = plan.gap.copy()
        grown = plan.gap
        if opts.edge_width:
            grown = ndimage.binary_dilation(plan.gap, structure=np.ones((3, 3), bool),
                                            iterations=opts.edge_width)
        flags["EDGE"] = grown & ~plan.gap
    return flags


def _make_exposure(config: SimulationConfig, image: np.ndarray, variance: np.ndarray,
                   flags: dict[str, np.ndarray], sv: SimulatedVisit, psf: Psf, wcs: WCS,
                   bandpass: Bandpass) -> Exposure:
    exp = Exposure(image=image.astype(np.float32), variance=variance.astype(np.float32),
                   origin=config.origin, wcs=wcs.deepcopy(), psf=psf, visit=sv.visit,
                   bandpass=bandpass, flux_calibration=sv.flux_calibration)
    for plane, where in flags.items():
        exp.set_mask(plane, where)
    # upstream detection: interpolated-over defects (CR, BAD) and missing data are not sources
    valid = ~exp.mask_of("NO_DATA", "BAD", "CR")
    fwhm_px = sv.seeing / config.pixel_scale
    detected = detection_mask(exp.image, exp.variance, psf.kernel, threshold=config.detection_threshold,
                              grow_radius=fwhm_px, valid=valid)
    exp.set_mask("DETECTED", detected)
    return exp


# ------------------------------------------------------------------------------------------------
# The simulation
# ------------------------------------------------------------------------------------------------

def simulate(config: SimulationConfig | None = None, outdir: str | Path | None = None,
             progress: Callable[[int, int], None] | None = None, *, catalog: Table | None = None,
             observatory: Observatory | None = None) -> Simulation:
    """Simulate warps of a field with GalSim-rendered DCR, and their truth.

    Parameters
    ----------
    config : SimulationConfig, optional
        Default: `SimulationConfig()` (256x256, 8 visits, ~100 stars, LSST g, Rubin).
    outdir : path-like, optional
        Also write everything there (see `write_simulation`).
    progress : callable, optional
        Called as ``progress(done, total)`` after each visit.
    catalog : `~astropy.table.Table`, optional
        Sources to use instead of random ones: ``x``, ``y`` (parent pixels) or
        ``ra``, ``dec``; ``flux`` (nJy) or ``mag``; optional SED columns as in
        `make_catalog` (default a 6000 K black body).
    observatory : Observatory, optional
        Instead of the configured site.

    Returns
    -------
    Simulation
    """
    config = config or SimulationConfig()
    t_start = _time.perf_counter()
    bandpass = config.resolve_bandpass()
    wcs = field_wcs(config)
    spectral = _Spectral.build(bandpass, config.n_subfilters, config.wavelength_step)
    visits = make_visits(config, observatory)
    cat = _complete_catalog(make_catalog(config) if catalog is None else catalog, config, wcs, spectral,
                            bandpass.name)
    n_src = len(cat)
    xs, ys = np.asarray(cat["x"], float), np.asarray(cat["y"], float)
    flux = np.asarray(cat["flux"], float)
    weights = np.array([spectral.render_weights(row) for row in cat]).reshape(n_src, spectral.waves.size)
    profiles = _ProfileCache(cat, config.pixel_scale)
    extents = profiles.extent_px(cat)
    scale = config.pixel_scale
    shape = config.shape
    log.info("simulating %d visits of %dx%d pixels with %d sources in %s", len(visits), shape[1], shape[0],
             n_src, bandpass.name)

    streak_rng = np.random.default_rng([config.seed, _STREAK_VISITS])
    opts = config.active_defects
    n_streaks = min(opts.streak_visits, len(visits)) if opts is not None else 0
    streaked = set(streak_rng.choice(len(visits), size=n_streaks, replace=False).tolist()) \
        if n_streaks else set()

    warps, twins, models, defects, streaks = [], [], [], [], []
    for i, sv in enumerate(visits):
        t0 = _time.perf_counter()
        noise = math.sqrt(sv.sky + config.read_noise ** 2)
        renderer = _visit_renderer(sv, bandpass, spectral, scale, noise)
        model = np.zeros((1, *shape))
        counts = flux / sv.flux_calibration
        renderer.draw(model, config.origin, xs, ys, weights, counts[:, None], extents, profiles)
        model = model[0]
        psf = psf_kernel(sv.seeing, scale)
        variance = sv.sky + np.maximum(model, 0.0) + config.read_noise ** 2
        plan = _plan_defects(config, i, sv, noise, i in streaked)

        sigma = np.sqrt(variance)
        image = model + np.random.default_rng([config.seed, _NOISE, i]).standard_normal(shape) * sigma
        var = variance.copy()
        flags = _apply_defects(image, var, sv.sky, config, plan, transient=True)
        warps.append(_make_exposure(config, image, var, flags, sv, psf, wcs, bandpass))
        defects.append(flags)
        if plan.streak is not None:
            streaks.append(plan.streak)
        if config.noise_twins:
            twin = model + np.random.default_rng([config.seed, _TWIN_NOISE, i]).standard_normal(shape) * sigma
            var = variance.copy()
            twin_flags = _apply_defects(twin, var, sv.sky, config, plan, transient=False)
            twins.append(_make_exposure(config, twin, var, twin_flags, sv, psf, wcs, bandpass))
        models.append(model.astype(np.float32))
        log.info("visit %d: airmass %.3f, parallactic angle %.1f deg, seeing %.2f arcsec (%.2f s)",
                 sv.id, sv.visit.airmass, sv.parallactic_angle, sv.seeing, _time.perf_counter() - t0)
        if progress is not None:
            progress(i + 1, len(visits))

    truth = _render_truth(config, cat, bandpass, spectral, visits, wcs, profiles, extents)
    sim = Simulation(config=config, bandpass=bandpass, visits=visits, warps=warps, twins=twins, catalog=cat,
                     truth=truth, subfilter_edges=spectral.edges, models=models, defects=defects,
                     streaks=streaks)
    log.info("simulation done in %.2f s", _time.perf_counter() - t_start)
    if outdir is not None:
        write_simulation(sim, outdir)
    return sim


def truth_psf_fwhm(config: SimulationConfig, visits: Sequence[SimulatedVisit]) -> float:
    """FWHM (arcsec) of the truth images' fiducial PSF."""
    if config.truth_psf_fwhm is not None:
        return float(config.truth_psf_fwhm)
    return float(np.mean([v.seeing for v in visits]))


def _render_truth(config: SimulationConfig, cat: Table, bandpass: Bandpass, spectral: _Spectral,
                  visits: Sequence[SimulatedVisit], wcs: WCS, profiles: _ProfileCache,
                  extents: np.ndarray) -> list[Exposure]:
    fwhm = truth_psf_fwhm(config, visits)
    scale = config.pixel_scale
    # wrap-around below the quietest visit's noise, in nJy
    noise = min(math.sqrt(v.sky + config.read_noise ** 2) * v.flux_calibration for v in visits)
    renderer = _truth_renderer(fwhm, scale, noise)
    m = len(spectral.edges)
    images = np.zeros((m, *config.shape))
    sub = np.asarray(cat["subfilter_flux"], float).reshape(len(cat), m)
    renderer.draw(images, config.origin, np.asarray(cat["x"], float), np.asarray(cat["y"], float),
                  np.ones((len(cat), 1)), sub, extents, profiles)
    psf = psf_kernel(fwhm, scale)
    out = []
    for k, (lo, hi) in enumerate(spectral.edges):
        bp = Bandpass(f"{bandpass.name}_sub{k}", (lo + hi) / 2 * u.nm, (hi - lo) * u.nm)
        out.append(Exposure(image=images[k].astype(np.float32), origin=config.origin, wcs=wcs.deepcopy(),
                            psf=psf, bandpass=bp, flux_calibration=1.0))
    return out


# ------------------------------------------------------------------------------------------------
# Summaries and files
# ------------------------------------------------------------------------------------------------

def visit_table(sim: Simulation) -> Table:
    """One row per visit: id, time, airmass, zenith distance, parallactic angles, seeing, sky, calibration."""
    streaked = {s.visit_id for s in sim.streaks}
    rows = []
    for sv in sim.visits:
        v = sv.visit
        rows.append({
            "id": sv.id, "time": "" if v.time is None else v.time.utc.isot,
            "airmass": v.airmass, "zenith_distance": sv.zenith_distance,
            "parallactic_angle": sv.parallactic_angle,
            "render_parallactic_angle": sv.render_parallactic_angle,
            "azimuth": v.boresight_az.deg, "altitude": v.boresight_alt.deg, "seeing": sv.seeing,
            "sky": sv.sky, "flux_calibration": sv.flux_calibration, "streak": sv.id in streaked,
        })
    table = Table(rows=rows, names=list(rows[0]))
    for name, unit in (("zenith_distance", u.deg), ("parallactic_angle", u.deg),
                       ("render_parallactic_angle", u.deg), ("azimuth", u.deg), ("altitude", u.deg),
                       ("seeing", u.arcsec), ("flux_calibration", u.nJy)):
        table[name].unit = unit
    table.meta["note"] = ("parallactic_angle: apparent (as VisitInfo derives it); "
                          "render_parallactic_angle: zenith position angle from ICRS north, as given to "
                          "GalSim; sky in counts per pixel; flux_calibration in nJy per count")
    return table


def summary_lines(sim: Simulation) -> list[str]:
    """A short text table of the visits (id, airmass, parallactic angle, seeing) for the command line."""
    lines = [f"{'visit':>8} {'airmass':>8} {'par.angle':>10} {'seeing':>8}  notes",
             f"{'':>8} {'':>8} {'(deg)':>10} {'(arcsec)':>8}"]
    streaked = {s.visit_id for s in sim.streaks}
    for sv in sim.visits:
        note = "streak" if sv.id in streaked else ""
        lines.append(f"{sv.id:>8d} {sv.visit.airmass:>8.3f} {sv.parallactic_angle:>10.1f} "
                     f"{sv.seeing:>8.2f}  {note}".rstrip())
    return lines


def _write_table(table: Table, path: Path) -> Path:
    with atomic_output(path) as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)
    return path


def write_simulation(sim: Simulation, outdir: str | Path) -> dict[str, list[Path]]:
    """Write a simulation under ``outdir``.

    Layout: ``warps/visit_<id>.fits`` and ``twins/visit_<id>.fits`` (exposure
    format), ``truth/catalog.ecsv``, ``truth/visits.ecsv``,
    ``truth/subfilter_<k>.fits`` (noise-free, nJy, fiducial PSF; header
    ``SUBFILT``, ``NSUBFILT``, ``SUBLO``, ``SUBHI``), ``truth/streaks.fits``
    (table ``STREAKS`` of line parameters and one ``STREAK_<id>`` footprint
    image per streaked visit) and ``truth/config.json``. Files are the same
    bytes for the same configuration.

    Returns
    -------
    dict
        ``{"warps": [...], "twins": [...], "truth": [...]}`` paths written.
    """
    import json

    out = Path(outdir)
    written: dict[str, list[Path]] = {"warps": [], "twins": [], "truth": []}
    for exp in sim.warps:
        written["warps"].append(write_exposure(exp, out / "warps" / f"visit_{exp.visit.id}.fits"))
    for exp in sim.twins:
        written["twins"].append(write_exposure(exp, out / "twins" / f"visit_{exp.visit.id}.fits"))
    truth_dir = out / "truth"
    written["truth"].append(_write_table(sim.catalog, truth_dir / "catalog.ecsv"))
    written["truth"].append(_write_table(visit_table(sim), truth_dir / "visits.ecsv"))
    m = len(sim.truth)
    for k, exp in enumerate(sim.truth):
        hdus = exposure_hdus(exp)
        lo, hi = sim.subfilter_edges[k]
        h = hdus[0].header
        h["SUBFILT"] = (k, "subfilter index, blue to red")
        h["NSUBFILT"] = (m, "number of subfilters")
        h["SUBLO"] = (float(lo), "[nm] nominal subfilter start")
        h["SUBHI"] = (float(hi), "[nm] nominal subfilter end")
        h["BUNIT"] = ("nJy", "noise-free truth")
        written["truth"].append(write_hdus(hdus, truth_dir / f"subfilter_{k}.fits"))
    table = fits.BinTableHDU.from_columns([
        fits.Column("visit", "K", array=np.array([s.visit_id for s in sim.streaks], dtype=np.int64)),
        fits.Column("x", "D", unit="pix", array=np.array([s.x for s in sim.streaks])),
        fits.Column("y", "D", unit="pix", array=np.array([s.y for s in sim.streaks])),
        fits.Column("angle", "D", unit="deg", array=np.array([s.angle for s in sim.streaks])),
        fits.Column("sigma", "D", unit="pix", array=np.array([s.sigma for s in sim.streaks])),
        fits.Column("peak", "D", unit="count", array=np.array([s.peak for s in sim.streaks])),
    ], name="STREAKS")
    hdus = [fits.PrimaryHDU(), table]
    for s in sim.streaks:
        img = fits.ImageHDU(s.footprint.astype(np.uint8), name=f"STREAK_{s.visit_id}")
        img.header["LTV1"], img.header["LTV2"] = -sim.config.origin[0], -sim.config.origin[1]
        hdus.append(img)
    written["truth"].append(write_hdus(fits.HDUList(hdus), truth_dir / "streaks.fits"))
    config_path = truth_dir / "config.json"
    with atomic_output(config_path) as tmp:
        tmp.write_text(json.dumps(_config_dict(sim.config), indent=2, sort_keys=True) + "\n")
    written["truth"].append(config_path)
    return written


def _config_dict(config: SimulationConfig) -> dict:
    d = asdict(config)
    if isinstance(config.band, Bandpass):
        d["band"] = config.band.name
    if config.weather is not None:
        w = config.weather
        d["weather"] = {"temperature_C": float(w.temperature.value), "pressure_Pa": float(w.pressure.value),
                        "humidity": w.humidity}
    return d
