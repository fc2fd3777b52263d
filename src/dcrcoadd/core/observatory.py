"""Observatory sites and weather: the containers refraction and geometry need."""

from __future__ import annotations

from dataclasses import dataclass

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle, EarthLocation

# Site presets: geodetic latitude, longitude (east positive) and elevation.
SITES: dict[str, tuple[float, float, float, str]] = {
    # name: (latitude deg, longitude deg, elevation m, description)
    "rubin": (-30.244639, -70.749417, 2663.0, "Vera C. Rubin Observatory, Cerro Pachon"),
    "ctio": (-30.16527778, -70.81499997, 2215.0, "CTIO Blanco (DECam), Cerro Tololo"),
    "subaru": (19.8255, -155.476, 4139.0, "Subaru (HSC), Maunakea"),
    "apo": (32.780361, -105.820417, 2788.0, "Apache Point Observatory (SDSS)"),
    "haleakala": (20.7097, -156.2533, 3055.0, "Pan-STARRS, Haleakala"),
}
SITE_ALIASES = {
    "lsst": "rubin", "cerro pachon": "rubin", "decam": "ctio", "blanco": "ctio",
    "hsc": "subaru", "maunakea": "subaru", "mauna kea": "subaru", "sdss": "apo",
    "panstarrs": "haleakala", "pan-starrs": "haleakala", "ps1": "haleakala",
}


@dataclass(frozen=True)
class Observatory:
    """An observing site.

    Parameters
    ----------
    latitude, longitude : `~astropy.coordinates.Angle` or Quantity
        Geodetic latitude and east longitude.
    elevation : `~astropy.units.Quantity`
        Height above sea level.
    """

    latitude: Angle
    longitude: Angle
    elevation: u.Quantity

    def __post_init__(self):
        object.__setattr__(self, "latitude", Angle(self.latitude, u.deg))
        object.__setattr__(self, "longitude", Angle(self.longitude, u.deg).wrap_at(180 * u.deg))
        object.__setattr__(self, "elevation", u.Quantity(self.elevation, u.m))
        if not -90 <= self.latitude.deg <= 90:
            raise ValueError(f"latitude must lie in [-90, 90] deg, got {self.latitude.deg}")

    @classmethod
    def from_site(cls, name: str) -> Observatory:
        """A preset site: rubin, ctio, subaru, apo, haleakala (or aliases such as 'lsst', 'decam')."""
        key = SITE_ALIASES.get(name.strip().lower(), name.strip().lower())
        if key not in SITES:
            raise ValueError(f"unknown site {name!r}; known: {', '.join(SITES)}")
        lat, lon, elev, _ = SITES[key]
        return cls(lat * u.deg, lon * u.deg, elev * u.m)

    def to_earth_location(self) -> EarthLocation:
        return EarthLocation.from_geodetic(self.longitude, self.latitude, self.elevation)


@dataclass(frozen=True)
class Weather:
    """Atmospheric conditions at the telescope.

    Parameters
    ----------
    temperature : Quantity
        Air temperature (Celsius or any temperature unit).
    pressure : Quantity
        Air pressure (Pa or any pressure unit).
    humidity : float
        Relative humidity in percent (0-100).
    """

    temperature: u.Quantity
    pressure: u.Quantity
    humidity: float

    def __post_init__(self):
        t = u.Quantity(self.temperature).to(u.deg_C, equivalencies=u.temperature())
        p = u.Quantity(self.pressure, u.Pa)
        h = float(self.humidity)
        if not np.isfinite(t.value) or t.to_value(u.K, equivalencies=u.temperature()) <= 0:
            raise ValueError(f"temperature must be above absolute zero, got {t}")
        if not np.isfinite(p.value) or p.value <= 0:
            raise ValueError(f"pressure must be positive, got {p}")
        if not 0 <= h <= 100:
            raise ValueError(f"relative humidity must be in percent (0-100), got {h}")
        object.__setattr__(self, "temperature", t)
        object.__setattr__(self, "pressure", p)
        object.__setattr__(self, "humidity", h)

    @property
    def temperature_kelvin(self) -> float:
        return float(self.temperature.to_value(u.K, equivalencies=u.temperature()))

    @classmethod
    def standard(cls, elevation: u.Quantity, humidity: float = 40.0) -> Weather:
        """Standard-atmosphere weather at a site's elevation.

        Uses the International Standard Atmosphere troposphere: sea-level
        temperature ``T0 = 288.15 K`` falling at ``L = 6.5 K/km``, so
        ``T = T0 - L h``, and pressure
        ``P = 101325 Pa * (1 - L h / T0) ** (g M / (R L))`` with exponent
        ``g M / (R L) = 5.25588``. Relative humidity defaults to 40 %.
        """
        h = u.Quantity(elevation, u.m).to_value(u.m)
        t0, lapse = 288.15, 0.0065
        temperature = t0 - lapse * h
        pressure = 101325.0 * (1.0 - lapse * h / t0) ** 5.25588
        return cls((temperature - 273.15) * u.deg_C, pressure * u.Pa, humidity)
