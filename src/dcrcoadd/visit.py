"""Visit metadata: when, where and how an exposure was taken."""

from __future__ import annotations

from dataclasses import dataclass, replace

import astropy.units as u
from astropy.coordinates import Angle
from astropy.time import Time

from .observatory import Observatory, Weather


@dataclass(frozen=True)
class VisitInfo:
    """Observing conditions of one exposure.

    Missing values are ``None``, never a silent zero. Angles are
    `~astropy.coordinates.Angle`, times `~astropy.time.Time` (mid-exposure).

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
