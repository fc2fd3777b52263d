"""Observatory sites and weather: the containers refraction and geometry need.

Both refuse values no observatory can have. The limits are deliberately wide
(every optical observatory on Earth lies well inside them) and are there to catch
unit mistakes, which otherwise turn into silently wrong DCR: a temperature in
kelvin read as Celsius, a pressure in hPa read as Pa. Each ``*_problem`` function
returns ``None`` for a plausible value or a sentence saying what is wrong and,
where one fits, which unit the number looks like; readers of files put the card
name in front of it.
"""

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
    "palomar": (33.3563, -116.8650, 1706.0, "Palomar Observatory (ZTF)"),
}
SITE_ALIASES = {
    "lsst": "rubin", "cerro pachon": "rubin", "decam": "ctio", "blanco": "ctio",
    "hsc": "subaru", "maunakea": "subaru", "mauna kea": "subaru", "sdss": "apo",
    "panstarrs": "haleakala", "pan-starrs": "haleakala", "ps1": "haleakala",
    "ztf": "palomar", "p48": "palomar", "cerro tololo": "ctio",
}

#: Air temperature an observatory can plausibly record (deg C). The nights of the survey sites
#: (Cerro Pachon, Cerro Tololo, Maunakea, Palomar, Haleakala) stay well inside; a kelvin reading
#: (>= 200) and most Fahrenheit readings of ordinary nights fall outside. An Antarctic plateau
#: site (below -60 C in winter) would need the lower limit widened.
TEMPERATURE_RANGE_C = (-40.0, 40.0)
#: Surface pressure (Pa): 40 kPa is the air at ~7 km, above every observatory; 110 kPa is above
#: the highest sea-level pressure ever recorded.
PRESSURE_RANGE_PA = (40e3, 110e3)
#: Relative humidity (percent).
HUMIDITY_RANGE = (0.0, 100.0)
#: Site elevation (m): from below sea level (the Dead Sea shore is at -430 m) to above the
#: highest observatory (5640 m); a height in feet or in km falls outside or is caught by the
#: pressure it implies.
ELEVATION_RANGE_M = (-500.0, 6000.0)


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def temperature_problem(celsius: float) -> str | None:
    """None if ``celsius`` is a plausible air temperature, else what is wrong with it."""
    lo, hi = TEMPERATURE_RANGE_C
    if np.isfinite(celsius) and lo <= celsius <= hi:
        return None
    text = f"{_fmt(celsius)} C is not a plausible air temperature at an observatory ({lo:g} to {hi:+g} C)"
    if 200.0 <= celsius <= 330.0:
        return text + f"; it looks like kelvin ({celsius - 273.15:.1f} C)"
    if hi < celsius <= 110.0 and lo <= (celsius - 32.0) * 5.0 / 9.0 <= hi:
        return text + f"; it looks like Fahrenheit ({(celsius - 32.0) * 5.0 / 9.0:.1f} C)"
    return text


def pressure_problem(pascal: float) -> str | None:
    """None if ``pascal`` is a plausible surface air pressure, else what is wrong with it."""
    lo, hi = PRESSURE_RANGE_PA
    if np.isfinite(pascal) and lo <= pascal <= hi:
        return None
    text = (f"{_fmt(pascal)} Pa is not a plausible air pressure at an observatory "
            f"({lo / 1e3:g}-{hi / 1e3:g} kPa)")
    for scale, unit in ((100.0, "mbar/hPa"), (1e3, "kPa"), (1e5, "bar or atm")):
        if lo <= pascal * scale <= hi:
            return text + f"; it looks like {unit} ({pascal * scale:.6g} Pa)"
    return text


def humidity_problem(percent: float) -> str | None:
    """None if ``percent`` is a relative humidity in percent, else what is wrong with it."""
    lo, hi = HUMIDITY_RANGE
    if np.isfinite(percent) and lo <= percent <= hi:
        return None
    return f"{_fmt(percent)} is not a relative humidity in percent ({lo:g}-{hi:g})"


def latitude_problem(degrees: float) -> str | None:
    """None if ``degrees`` is a geodetic latitude, else what is wrong with it."""
    if np.isfinite(degrees) and -90.0 <= degrees <= 90.0:
        return None
    return f"{_fmt(degrees)} deg is not a latitude (-90 to +90 deg)"


def longitude_problem(degrees: float) -> str | None:
    """None if ``degrees`` is a longitude (either sign convention, 0-360 accepted), else what is wrong."""
    if np.isfinite(degrees) and -360.0 <= degrees <= 360.0:
        return None
    return f"{_fmt(degrees)} deg is not a longitude (-360 to +360 deg)"


def elevation_problem(metres: float) -> str | None:
    """None if ``metres`` is a plausible observatory elevation, else what is wrong with it."""
    lo, hi = ELEVATION_RANGE_M
    if np.isfinite(metres) and lo <= metres <= hi:
        return None
    text = f"{_fmt(metres)} m is not a plausible observatory elevation ({lo:g} to {hi:g} m)"
    if lo <= metres * 0.3048 <= hi:
        return text + f"; it looks like feet ({metres * 0.3048:.0f} m)"
    return text


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
        for problem in (latitude_problem(self.latitude.deg),
                        elevation_problem(self.elevation.to_value(u.m))):
            if problem is not None:
                raise ValueError(problem)

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

    Values outside what an observatory can record (`TEMPERATURE_RANGE_C`,
    `PRESSURE_RANGE_PA`, `HUMIDITY_RANGE`) raise ValueError naming the likely
    unit mistake.

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
        for problem in (temperature_problem(float(t.value)), pressure_problem(float(p.value)),
                        humidity_problem(h)):
            if problem is not None:
                raise ValueError(problem)
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
