"""Visit metadata and the observing geometry derived from it.

Conventions
-----------
* Azimuth is measured from North through East; altitude (elevation) is the
  geometric altitude, without refraction (astropy ``AltAz`` with
  ``pressure=0``).
* Hour angle ``H = LST − α`` is negative east of the meridian, wrapped to
  (−12 h, 12 h].
* The parallactic angle ``q`` is the position angle of the zenith as seen from
  the target, measured from North through East. It is negative east of the
  meridian (``H < 0``), 0 for a target on the meridian south of the zenith and
  180 degrees for one on the meridian north of the zenith, in either
  hemisphere. From horizontal coordinates and the site latitude φ,

  ``q = atan2(−cos φ sin A, sin φ cos a − cos φ sin a cos A)``,

  which follows from the pole–zenith–target triangle and needs no time.

`VisitInfo.parallactic_angle` is ``q`` in the apparent (true-of-date) frame.
`sky_geometry` gives elevation and parallactic angle of arbitrary ICRS
positions relative to ICRS north, which is what projecting DCR through a WCS
needs; the two differ by the precession of the equator since J2000 (a few
tenths of a degree).

Rotator angle. The DCR direction in pixels comes from the WCS (the local
Jacobian of each image's own sky mapping, `dcrcoadd.physics.dcr`), never from
``rotation_angle``. For an image whose pixels follow the rotator (a calexp) this
agrees with what the LSST stack computes since November 2025, the parallactic
angle minus the rotator angle (``boresightParAngle − boresightRotAngle``): with
``ROTTYPE = SKY``, ``BORE-ROTANG`` is the position angle of the focal plane's +y
axis, and the zenith lies at ``q − rotation_angle`` from +y, counted from +y
towards −x (checked to 0.001 deg against our shifts for rotator angles 0, 37 and
−121.5 deg, tests/test_inputs_layouts.py). For a warp (pixels resampled onto a
coadd grid, usually north up) the visit's rotator angle says nothing about the
pixels: the zenith lies at ``q`` from the grid's north, and subtracting the
rotator angle there would turn the DCR by it. Reading the direction from the
WCS gives the right answer for both.

Transformations with astropy are tolerant of missing Earth-orientation
(IERS) data: DCR needs the pointing to arcseconds, far coarser than what
UT1−UTC or polar motion change, so future or offline dates work.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass, replace
from functools import cached_property

import astropy.units as u
import numpy as np
from astropy.coordinates import ICRS, AltAz, Angle, HADec, SkyCoord
from astropy.time import Time
from astropy.utils import iers

from dcrcoadd.core.observatory import Observatory, Weather
from dcrcoadd.errors import InputError

__all__ = [
    "VisitInfo",
    "airmass_from_altitude",
    "altaz_from_hadec",
    "altaz_of",
    "altitude_from_airmass",
    "hadec_from_altaz",
    "hour_angle_of",
    "parallactic_angle",
    "position_angle_and_separation",
    "radec_of",
    "sky_geometry",
    "zenith_of",
]

log = logging.getLogger("dcrcoadd.core.visit")


@contextlib.contextmanager
def _tolerant_earth_orientation():
    """Let astropy use its bundled Earth-orientation tables, never the network, and not fail
    for dates they do not cover (it then assumes UT1 = UTC and mean polar motion)."""
    with (iers.conf.set_temp("auto_download", False),
          iers.conf.set_temp("auto_max_age", None),
          iers.conf.set_temp("iers_degraded_accuracy", "ignore"),
          warnings.catch_warnings()):
        # ERFA "dubious year" and IERS fallback warnings: harmless at DCR precision
        warnings.simplefilter("ignore")
        yield


def _altaz_frame(time: Time, observatory: Observatory) -> AltAz:
    return AltAz(obstime=time, location=observatory.to_earth_location(), pressure=0 * u.hPa)


# ---------------------------------------------------------------------------------------------
# Pure spherical trigonometry (radians in, radians out), vectorized
# ---------------------------------------------------------------------------------------------

def _parallactic_rad(az: np.ndarray, alt: np.ndarray, lat: float | np.ndarray) -> np.ndarray:
    y = -np.cos(lat) * np.sin(az)
    x = np.sin(lat) * np.cos(alt) - np.cos(lat) * np.sin(alt) * np.cos(az)
    q = np.arctan2(y, x)
    # atan2(-0, x<0) is -pi; the convention is (-180, 180] with +180 due north of the zenith
    return np.where(q <= -np.pi, np.pi, q)


def _position_angle_separation(lon1, lat1, lon2, lat2) -> tuple[np.ndarray, np.ndarray]:
    """Position angle (N through E) of point 2 seen from point 1, and their separation (radians)."""
    dlon = lon2 - lon1
    sin_dlon, cos_dlon = np.sin(dlon), np.cos(dlon)
    y = np.cos(lat2) * sin_dlon
    x = np.cos(lat1) * np.sin(lat2) - np.sin(lat1) * np.cos(lat2) * cos_dlon
    pa = np.arctan2(y, x)
    pa = np.where(pa <= -np.pi, np.pi, pa)
    # Vincenty's formula: accurate at all separations, including tiny ones
    num = np.hypot(y, x)
    den = np.sin(lat1) * np.sin(lat2) + np.cos(lat1) * np.cos(lat2) * cos_dlon
    return pa, np.arctan2(num, den)


def _offset_by(lon, lat, position_angle, distance) -> tuple[np.ndarray, np.ndarray]:
    """The point at ``distance`` along ``position_angle`` from (lon, lat); radians."""
    sin_lat2 = np.sin(lat) * np.cos(distance) + np.cos(lat) * np.sin(distance) * np.cos(position_angle)
    lat2 = np.arcsin(np.clip(sin_lat2, -1.0, 1.0))
    lon2 = lon + np.arctan2(np.sin(position_angle) * np.sin(distance) * np.cos(lat),
                            np.cos(distance) - np.sin(lat) * sin_lat2)
    return np.mod(lon2, 2 * np.pi), lat2


def position_angle_and_separation(lon1, lat1, lon2, lat2) -> tuple[Angle, Angle]:
    """Position angle (North through East, in (−180, 180] deg) of point 2 as seen from point 1,
    and the angular separation of the two points. Inputs are Angles (plain numbers: degrees)
    and broadcast."""
    args = [Angle(v, u.deg).rad for v in (lon1, lat1, lon2, lat2)]
    pa, sep = _position_angle_separation(*args)
    return Angle(pa, u.rad).to(u.deg), Angle(sep, u.rad).to(u.deg)


def parallactic_angle(azimuth, altitude, latitude) -> Angle:
    """Parallactic angle from horizontal coordinates and the site latitude.

    Parameters
    ----------
    azimuth, altitude : Angle or array_like
        Horizontal coordinates of the target (azimuth North through East);
        plain numbers are degrees. Broadcast together.
    latitude : Angle or float
        Site latitude.

    Returns
    -------
    Angle
        Position angle of the zenith seen from the target, North through East,
        in (−180, 180] degrees (0 at the zenith itself, where it is undefined).
    """
    az, alt, lat = (Angle(v, u.deg).rad for v in (azimuth, altitude, latitude))
    return Angle(_parallactic_rad(az, alt, lat), u.rad).to(u.deg)


def hadec_from_altaz(azimuth, altitude, latitude) -> tuple[Angle, Angle]:
    """Hour angle (wrapped to (−12h, 12h]) and declination from horizontal coordinates.

    Pure spherical trigonometry in the apparent frame; no time needed.
    """
    az, alt, lat = (Angle(v, u.deg).rad for v in (azimuth, altitude, latitude))
    sin_dec = np.sin(alt) * np.sin(lat) + np.cos(alt) * np.cos(lat) * np.cos(az)
    dec = np.arcsin(np.clip(sin_dec, -1.0, 1.0))
    ha = np.arctan2(-np.sin(az) * np.cos(alt),
                    np.sin(alt) * np.cos(lat) - np.cos(alt) * np.sin(lat) * np.cos(az))
    ha = np.where(ha <= -np.pi, np.pi, ha)
    return Angle(ha, u.rad).to(u.hourangle), Angle(dec, u.rad).to(u.deg)


def altaz_from_hadec(hour_angle, declination, latitude) -> tuple[Angle, Angle]:
    """Azimuth (North through East, [0, 360) deg) and altitude from hour angle and declination."""
    ha = Angle(hour_angle, u.hourangle).rad
    dec, lat = (Angle(v, u.deg).rad for v in (declination, latitude))
    sin_alt = np.sin(dec) * np.sin(lat) + np.cos(dec) * np.cos(lat) * np.cos(ha)
    alt = np.arcsin(np.clip(sin_alt, -1.0, 1.0))
    az = np.arctan2(-np.cos(dec) * np.sin(ha),
                    np.sin(dec) * np.cos(lat) - np.cos(dec) * np.sin(lat) * np.cos(ha))
    return Angle(np.mod(az, 2 * np.pi), u.rad).to(u.deg), Angle(alt, u.rad).to(u.deg)


def airmass_from_altitude(altitude, method: str = "secz") -> np.ndarray:
    """Airmass of a geometric altitude.

    Parameters
    ----------
    altitude : Angle or array_like
        Altitude above the horizon (plain numbers: degrees); must be > 0.
    method : {"secz", "kasten-young"}
        ``"secz"``: plane-parallel ``1 / sin(alt)`` (astropy's ``AltAz.secz``,
        what LSST headers record; exact inverse in `altitude_from_airmass`).
        ``"kasten-young"``: Kasten & Young (1989),
        ``1 / (sin a + 0.50572 (a + 6.07995°)^−1.6364)`` with ``a`` in degrees,
        better than 0.1 % to 85 deg from the zenith.
    """
    alt = np.asarray(Angle(altitude, u.deg).deg, dtype=float)
    if np.any(~(alt > 0)):
        raise ValueError("airmass needs an altitude above the horizon (> 0 deg)")
    if method == "secz":
        return 1.0 / np.sin(np.radians(alt))
    if method == "kasten-young":
        return 1.0 / (np.sin(np.radians(alt)) + 0.50572 * (alt + 6.07995) ** -1.6364)
    raise ValueError(f"unknown airmass method {method!r}; use 'secz' or 'kasten-young'")


def altitude_from_airmass(airmass) -> Angle:
    """Altitude of a plane-parallel (``sec z``) airmass; inverse of `airmass_from_altitude`."""
    x = np.asarray(airmass, dtype=float)
    if np.any(~(x >= 1.0)):
        raise ValueError("airmass must be >= 1")
    return Angle(np.degrees(np.arcsin(1.0 / x)), u.deg)


# ---------------------------------------------------------------------------------------------
# astropy-based transformations (vectorized over positions)
# ---------------------------------------------------------------------------------------------

def altaz_of(ra, dec, time: Time, observatory: Observatory) -> tuple[Angle, Angle]:
    """Azimuth and altitude (no refraction) of ICRS positions at ``time`` from ``observatory``."""
    coord = SkyCoord(Angle(ra, u.deg), Angle(dec, u.deg), frame=ICRS())
    with _tolerant_earth_orientation():
        aa = coord.transform_to(_altaz_frame(time, observatory))
    return Angle(aa.az.deg, u.deg), Angle(aa.alt.deg, u.deg)


def radec_of(azimuth, altitude, time: Time, observatory: Observatory) -> tuple[Angle, Angle]:
    """ICRS right ascension and declination of horizontal coordinates (no refraction)."""
    frame = _altaz_frame(time, observatory)
    coord = SkyCoord(az=Angle(azimuth, u.deg), alt=Angle(altitude, u.deg), frame=frame)
    with _tolerant_earth_orientation():
        icrs = coord.transform_to(ICRS())
    return Angle(icrs.ra.deg, u.deg), Angle(icrs.dec.deg, u.deg)


def hour_angle_of(ra, dec, time: Time, observatory: Observatory) -> Angle:
    """Local apparent hour angle of ICRS positions, wrapped to (−12h, 12h]."""
    coord = SkyCoord(Angle(ra, u.deg), Angle(dec, u.deg), frame=ICRS())
    frame = HADec(obstime=time, location=observatory.to_earth_location(), pressure=0 * u.hPa)
    with _tolerant_earth_orientation():
        ha = coord.transform_to(frame).ha
    h = ha.to_value(u.hourangle)
    h = np.where(h <= -12.0, h + 24.0, np.where(h > 12.0, h - 24.0, h))
    return Angle(h, u.hourangle)


def zenith_of(time: Time, observatory: Observatory) -> SkyCoord:
    """ICRS position of the zenith at ``time`` above ``observatory``."""
    ra, dec = radec_of(0.0, 90.0, time, observatory)
    return SkyCoord(ra, dec, frame=ICRS())


def sky_geometry(visit: VisitInfo, ra, dec) -> tuple[Angle, Angle]:
    """Elevation and parallactic angle of arbitrary ICRS positions during ``visit``.

    Both come from the visit's zenith in ICRS (`VisitInfo.zenith`): the
    elevation is 90 deg minus the separation from the zenith, the parallactic
    angle the position angle of the zenith relative to ICRS north. One astropy
    transformation per visit (cached), pure numpy for the positions.

    Parameters
    ----------
    visit : VisitInfo
        Needs time and observatory, or (approximation without a time) boresight
        alt/az, boresight RA/Dec and observatory.
    ra, dec : Angle or array_like
        ICRS positions (plain numbers: degrees); broadcast.

    Returns
    -------
    elevation, parallactic_angle : Angle
        Degrees; the parallactic angle in (−180, 180].

    Raises
    ------
    InputError
        The visit lacks what is needed to place the zenith on the sky.
    """
    el, q = _sky_geometry_rad(visit, Angle(ra, u.deg).rad, Angle(dec, u.deg).rad)
    return Angle(np.degrees(el), u.deg), Angle(np.degrees(q), u.deg)


def _sky_geometry_rad(visit: VisitInfo, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`sky_geometry` on plain radians."""
    zenith = visit._zenith_rad
    if zenith is None:
        raise InputError("cannot place the zenith on the sky: needs time and observatory, or boresight "
                         "alt/az, RA/Dec and observatory", f"visit {visit.id}")
    pa, sep = _position_angle_separation(ra, dec, zenith[0], zenith[1])
    return np.pi / 2 - sep, pa


# ---------------------------------------------------------------------------------------------
# VisitInfo
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VisitInfo:
    """Observing conditions of one exposure.

    Missing values are ``None``, never a silent zero. Angles are
    `~astropy.coordinates.Angle`, times `~astropy.time.Time` (mid-exposure).
    Derived geometry (`hour_angle`, `parallactic_angle`, `zenith`) is computed
    on first access and cached; `completed` returns a copy with derivable
    fields filled in.

    Parameters
    ----------
    id : int
        Exposure (visit) identifier.
    time : Time, optional
        Mid-exposure time.
    exposure_time : Quantity, optional
        Exposure duration.
    boresight_ra, boresight_dec : Angle, optional
        Pointing on the sky (ICRS).
    boresight_az, boresight_alt : Angle, optional
        Pointing in horizontal coordinates (azimuth from North through East;
        altitude without refraction).
    airmass : float, optional
    rotation_angle : Angle, optional
        Rotator angle; its meaning is given by ``rotation_type``.
    rotation_type : str, optional
        LSST ``ROTTYPE`` (e.g. ``"SKY"``).
    observatory : Observatory, optional
    weather : Weather, optional
    """

    id: int
    time: Time | None = None
    exposure_time: u.Quantity | None = None
    boresight_ra: Angle | None = None
    boresight_dec: Angle | None = None
    boresight_az: Angle | None = None
    boresight_alt: Angle | None = None
    airmass: float | None = None
    rotation_angle: Angle | None = None
    rotation_type: str | None = None
    observatory: Observatory | None = None
    weather: Weather | None = None

    def __post_init__(self):
        object.__setattr__(self, "id", int(self.id))
        for name in ("boresight_ra", "boresight_dec", "boresight_az", "boresight_alt",
                     "rotation_angle"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Angle(value, u.deg))
        if self.exposure_time is not None:
            object.__setattr__(self, "exposure_time", u.Quantity(self.exposure_time, u.s))
        if self.time is not None and not isinstance(self.time, Time):
            object.__setattr__(self, "time", Time(self.time))
        if self.airmass is not None:
            airmass = float(self.airmass)
            if not airmass >= 0.999:  # allow rounding in headers
                raise ValueError(f"airmass must be >= 1, got {airmass}")
            object.__setattr__(self, "airmass", airmass)

    def replace(self, **changes) -> VisitInfo:
        """A copy with some fields changed."""
        return replace(self, **changes)

    # -- what can be derived ------------------------------------------------------------------
    @property
    def _has_radec(self) -> bool:
        return self.boresight_ra is not None and self.boresight_dec is not None

    @property
    def _has_altaz(self) -> bool:
        return self.boresight_az is not None and self.boresight_alt is not None

    @property
    def _has_time_site(self) -> bool:
        return self.time is not None and self.observatory is not None

    @cached_property
    def _altaz(self) -> tuple[Angle, Angle] | None:
        """Boresight (az, alt): from RA/Dec, time and site when all are known (the same
        geometry `zenith` uses), else as given; None if unknown."""
        if self._has_radec and self._has_time_site:
            az, alt = altaz_of(self.boresight_ra, self.boresight_dec, self.time, self.observatory)
            if self._has_altaz:
                off = position_angle_and_separation(az, alt, self.boresight_az, self.boresight_alt)[1]
                if off.deg > 0.5:
                    log.warning("visit %s: boresight (az, alt) = (%.3f, %.3f) deg disagree by %.2f deg with "
                                "the (az, alt) = (%.3f, %.3f) of RA/Dec at the visit time; using the latter",
                                self.id, self.boresight_az.deg, self.boresight_alt.deg, off.deg, az.deg,
                                alt.deg)
            return az, alt
        if self._has_altaz:
            return self.boresight_az, self.boresight_alt
        return None

    @cached_property
    def hour_angle(self) -> Angle | None:
        """Boresight hour angle in (−12h, 12h], or None if it cannot be derived.

        From RA/Dec, time and site when available (astropy ``HADec``), else
        from alt/az and the site latitude.
        """
        if self._has_radec and self._has_time_site:
            return hour_angle_of(self.boresight_ra, self.boresight_dec, self.time, self.observatory)
        if self._has_altaz and self.observatory is not None:
            return hadec_from_altaz(self.boresight_az, self.boresight_alt, self.observatory.latitude)[0]
        return None

    @cached_property
    def parallactic_angle(self) -> Angle | None:
        """Boresight parallactic angle (apparent frame; see module notes), or None if unknown.

        Needs only azimuth, altitude and latitude. With RA/Dec, time and site
        the alt/az are derived from them (given alt/az that disagree by more
        than 0.5 deg are reported in the log); otherwise the given alt/az are used.
        """
        altaz = self._altaz
        if altaz is None or self.observatory is None:
            return None
        return parallactic_angle(altaz[0], altaz[1], self.observatory.latitude)

    @cached_property
    def zenith(self) -> SkyCoord | None:
        """ICRS position of the zenith during the visit, or None if it cannot be placed.

        Exact (astropy) with time and site. Without a time, it is placed from
        the boresight: at the boresight zenith distance and apparent
        parallactic angle from the boresight RA/Dec, which neglects the
        rotation of the frame by precession (a few tenths of a degree).
        """
        if self._has_time_site:
            return zenith_of(self.time, self.observatory)
        if self._has_altaz and self._has_radec and self.observatory is not None:
            q = _parallactic_rad(self.boresight_az.rad, self.boresight_alt.rad, self.observatory.latitude.rad)
            ra, dec = _offset_by(self.boresight_ra.rad, self.boresight_dec.rad, q,
                                 np.pi / 2 - self.boresight_alt.rad)
            return SkyCoord(ra * u.rad, dec * u.rad, frame=ICRS())
        return None

    @cached_property
    def _zenith_rad(self) -> tuple[float, float] | None:
        z = self.zenith
        return None if z is None else (float(z.ra.rad), float(z.dec.rad))

    def completed(self) -> VisitInfo:
        """A copy with the derivable ``None`` fields filled in.

        * boresight alt/az from RA/Dec, time and site (or RA/Dec from alt/az);
        * airmass from the altitude (plane-parallel ``sec z``, see
          `airmass_from_altitude`) when above the horizon.

        Weather is not invented here: refraction uses the standard atmosphere
        when it is missing.
        """
        changes = {}
        if not self._has_altaz and self._altaz is not None:
            az, alt = self._altaz
            changes.update(boresight_az=az, boresight_alt=alt)
        if not self._has_radec and self._has_altaz and self._has_time_site:
            ra, dec = radec_of(self.boresight_az, self.boresight_alt, self.time, self.observatory)
            changes.update(boresight_ra=ra, boresight_dec=dec)
        alt = changes.get("boresight_alt", self.boresight_alt)
        if self.airmass is None and alt is not None and alt.deg > 0:
            changes["airmass"] = float(airmass_from_altitude(alt))
        return self.replace(**changes) if changes else self
