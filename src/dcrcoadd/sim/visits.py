"""Observing conditions and geometry of the simulated visits, and the field's pixel grid.

By default the field is followed along its real hour-angle track from the
site (astropy AltAz of the field centre), at hour angles chosen so that
the airmass spans ``airmass``, alternating east and west of the meridian;
or at explicit ``hour_angles``; or at explicit ``(airmass, parallactic
angle)`` pairs. Such pairs are not, in general, reachable by the field's
declination from the site, so those visits carry horizontal coordinates
(alt/az solved at the site latitude) but no time, and their geometry is
taken from alt/az alone.

The parallactic angle given to GalSim is the position angle of the zenith
relative to ICRS north (the image's north), from astropy; the visit's
`VisitInfo.parallactic_angle` is the apparent one; the two differ by a few
tenths of a degree of precession.

A visit's sky comes from a surface brightness in mag/arcsec² and its
calibration from the zero point, exposure time and extinction
(`dcrcoadd.sim.photometry`).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass

import astropy.units as u
import numpy as np
from astropy.coordinates import ICRS, AltAz, HADec, SkyCoord
from astropy.time import Time
from astropy.utils import iers
from astropy.wcs import WCS
from scipy.optimize import brentq

from dcrcoadd.core.observatory import Observatory, Weather
from dcrcoadd.core.visit import VisitInfo
from dcrcoadd.errors import ConfigError
from dcrcoadd.sim.config import SimulationConfig
from dcrcoadd.sim.photometry import AB_NJY_ZERO_POINT, counts_per_njy, flux_calibration
from dcrcoadd.sim.streams import Stream

__all__ = ["SimulatedVisit", "field_wcs", "make_visits"]

_SIDEREAL_RATE = 1.00273790935  # sidereal hours per solar hour


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
    rng = np.random.default_rng([config.seed, Stream.CONDITIONS])
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
        cal = flux_calibration(config, airmass)
        sky = 10 ** (-0.4 * (sky_mag[i] - AB_NJY_ZERO_POINT)) * config.pixel_scale ** 2 \
            * counts_per_njy(config, 1.0)  # the sky is measured through the atmosphere already
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
