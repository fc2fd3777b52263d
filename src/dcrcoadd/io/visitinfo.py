"""Visit metadata from a header: what the file says, what follows from it, and where each came from.

`visit_from_cards` reads a visit through an instrument's card map (`dcrcoadd.io.header.Cards`)
and derives what the file leaves out instead of demanding it:

* **time** (mid-exposure): ``DATE-AVG``/``MJD-AVG`` (or an instrument's mid-exposure
  card), else the start (``DATE-OBS``, with a separate time-of-day card if the date
  has none, or ``MJD-OBS``) plus half of ``EXPTIME``; ``TIMESYS`` gives the scale
  (UTC when absent, as the FITS standard says). A date without a time of day is no
  time (midnight would be hours off); two cards of one moment that disagree by more
  than `TIME_CARD_TOLERANCE` are reported;
* **site**: ``OBS-LAT``/``OBS-LONG``/``OBS-ELEV``, else a known ``OBSERVAT``, else the
  instrument preset's site;
* **pointing**: boresight cards, else RA/Dec cards, else the WCS centre (only when
  nothing else places the exposure);
* **alt/az and airmass** from time, site and pointing with astropy (the hour angle and
  the parallactic angle follow in `~dcrcoadd.core.visit.VisitInfo`).

Physically impossible values are refused naming the card and the likely unit
mistake (`dcrcoadd.core.observatory`): air temperature outside -40...+40 C,
pressure outside 40-110 kPa, humidity outside 0-100 %, |latitude| > 90 deg,
airmass below 1, a pointing below the horizon.

Header airmass against geometry. When a header gives both an airmass and an altitude
(``BORE-ALT``, or the altitude computed from time, site and RA/Dec), they must agree:
the airmass must lie within 0.02 of the range the standard formulas give for that
altitude (plane-parallel ``sec z`` and Kasten & Young, which differ by up to a few
hundredths at high airmass), widened by how far the zenith distance can move in half
the exposure (a header airmass is often that of the shutter opening) and, when the
pointing is the image centre rather than the boresight, across the camera's field. An
airmass outside that is reported (naming the file, both values and the altitude's
source) and the **altitude is used**: the DCR is computed from the zenith distance
itself, the altitude can be (and, with a time and a site, is) checked against RA/Dec,
and an airmass is one derived number that headers often record at another moment,
with another formula, or by hand.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

import astropy.units as u
import numpy as np
from astropy.time import Time, TimeDelta

from dcrcoadd.core.instrument import GENERIC, TIME_OF_DAY_CARDS
from dcrcoadd.core.observatory import (
    Observatory,
    Weather,
    elevation_problem,
    humidity_problem,
    latitude_problem,
    longitude_problem,
    pressure_problem,
    temperature_problem,
)
from dcrcoadd.core.visit import (
    VisitInfo,
    _tolerant_earth_orientation,
    airmass_from_altitude,
    altaz_of,
    position_angle_and_separation,
)
from dcrcoadd.errors import InputError
from dcrcoadd.io.header import Cards, warn_once

__all__ = ["AIRMASS_TOLERANCE", "airmass_allowance", "visit_from_cards"]

log = logging.getLogger("dcrcoadd.io.visitinfo")

#: Largest accepted difference between a header airmass and the airmass of the altitude.
AIRMASS_TOLERANCE = 0.02
#: Largest accepted separation (deg) between header alt/az and those computed from RA/Dec.
ALTAZ_TOLERANCE_DEG = 0.5
#: Header alt/az this far (deg) from those computed from RA/Dec, time and site, while the header's
#: airmass agrees with its altitude and not with the computed one, are refused: two cards that agree
#: outvote the site or time (an OBS-LAT in radians or with its sign flipped put a visit at airmass 6.5
#: instead of 2.0). A wrong azimuth card alone is outvoted by the computed one, with a warning.
ALTAZ_REFUSE_DEG = 10.0
_TIME_SCALES = {"UTC": "utc", "TAI": "tai", "TT": "tt", "TDT": "tt", "UT1": "ut1", "TDB": "tdb",
                "TCG": "tcg", "TCB": "tcb", "GMT": "utc", "UT": "utc", "Z": "utc"}
_DEFAULT_HUMIDITY = 40.0  # percent, as `Weather.standard`
#: Longest single exposure accepted (seconds); longer is a unit mistake (milliseconds: 30 s is 8.3 h).
#: Beyond an hour it is warned about.
MAX_EXPOSURE_S = 4 * 3600.0


def _describes_a_visit(cards: Cards) -> bool:
    """A header describes one exposure when it identifies it, times it or gives its airmass or
    boresight (an ``EXPTIME`` or an ``RA`` alone appear on coadds as well)."""
    if cards.found_any("id", "time_mid", "time_start", "time_ut1", "airmass", "altitude"):
        return True
    return cards.has("BORE-RA") or cards.has("BORE-DEC")


# -- values with their checks ---------------------------------------------------------------------

def _card_text(cards: Cards, card: str, default_unit: str | None = None) -> str:
    raw = cards.header[card]
    unit = cards.preset.units.get(card)
    if unit is not None and unit != default_unit:
        return f"{card} = {raw} ({unit} in {cards.preset.name} headers)"
    return f"{card} = {raw}"


def _check(cards: Cards, card: str, problem: str | None, default_unit: str | None = None) -> None:
    if problem is not None:
        raise cards.error(f"{_card_text(cards, card, default_unit)}: {problem}")


def _temperature(cards: Cards) -> tuple[float, str] | None:
    found = cards.number("temperature")
    if found is None:
        return None
    value, card = found
    unit = cards.unit(card, "C")
    celsius = value - 273.15 if unit == "K" else (value - 32.0) * 5.0 / 9.0 if unit == "F" else value
    _check(cards, card, temperature_problem(celsius), "C")
    return celsius, card


def _pressure(cards: Cards) -> tuple[float, str] | None:
    found = cards.number("pressure")
    if found is None:
        return None
    value, card = found
    scale = {"Pa": 1.0, "hPa": 100.0, "mbar": 100.0, "kPa": 1e3}[cards.unit(card, "Pa")]
    pascal = value * scale
    _check(cards, card, pressure_problem(pascal), "Pa")
    return pascal, card


def _humidity(cards: Cards) -> tuple[float, str] | None:
    found = cards.number("humidity")
    if found is not None:
        _check(cards, found[1], humidity_problem(found[0]))
        if 0.0 < found[0] <= 1.0:
            # (possible in a desert, but far more often a fraction: refraction barely depends on it)
            warn_once(log, cards.path, f"{found[1]} = {found[0]:g} is taken as {found[0]:g} % relative "
                                       f"humidity; if it is a fraction ({100 * found[0]:g} %), write it in "
                                       "percent")
    return found


def _exposure_time(cards: Cards) -> tuple[float, str] | None:
    found = cards.number("exposure_time")
    if found is not None and not found[0] >= 0:
        raise cards.error(f"{found[1]} = {found[0]:g}: an exposure time cannot be negative")
    if found is not None and found[0] > MAX_EXPOSURE_S:
        # (it places the exposure's middle, and so the airmass and parallactic angle computed from a time)
        raise cards.error(f"{found[1]} = {found[0]:g}: {found[0] / 3600:.1f} hours is not one exposure "
                          f"(at most {MAX_EXPOSURE_S / 3600:g} h); is it in milliseconds? It is in seconds")
    if found is not None and found[0] > 3600.0:
        warn_once(log, cards.path, f"{found[1]} = {found[0]:g} s ({found[0] / 3600:.1f} h) is a long "
                                   "exposure: if that is milliseconds, its middle (and the airmass from it) "
                                   "is wrong")
    return found


# -- time -----------------------------------------------------------------------------------------

def _scale(cards: Cards) -> str:
    text = str(cards.header.get("TIMESYS", "UTC")).strip().upper() or "UTC"
    if text not in _TIME_SCALES:
        raise cards.error(f"TIMESYS = {text!r} is not a time scale dcrcoadd knows "
                          f"({', '.join(sorted(set(_TIME_SCALES)))})")
    return _TIME_SCALES[text]


#: A calendar date alone: ISO ``YYYY-MM-DD`` or the old FITS ``DD/MM/YY``.
_DATE_ONLY = re.compile(r"^(\d{4}-\d{2}-\d{2}|\d{2}/\d{2}/\d{2})$")


def _date_only(cards: Cards, card: str) -> bool:
    """Whether ``card`` holds a calendar date without a time of day, and no time-of-day card gives it."""
    raw = cards.header[card]
    return (isinstance(raw, str) and _DATE_ONLY.match(raw.strip()) is not None
            and not any(cards.has(tod) for tod in TIME_OF_DAY_CARDS))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_time(cards: Cards, card: str, scale: str) -> Time:
    raw = cards.header[card]
    try:
        if isinstance(raw, str) and not _is_number(raw.strip()):
            text = raw.strip()
            if "T" not in text and " " not in text:  # a date only: the time of day is elsewhere
                for tod in TIME_OF_DAY_CARDS:
                    if cards.has(tod):
                        text = f"{text}T{str(cards.header[tod]).strip()}"
                        break
            if len(text) > 6 and text[-6] in "+-" and text[-5:] == "00:00":
                text = text[:-6]  # ISO 8601's zero UTC offset (astropy reads a "Z", not this)
            elif text.endswith("Z") and scale != "utc":
                # ISO 8601's UTC designator says the scale itself (astropy refuses it with TIMESYS TAI)
                text, scale = text[:-1], "utc"
            time = Time(text, scale=scale)
        else:
            value = cards.to_float(raw, card)
            time = Time(value, format="jd" if value > 2.4e6 else "mjd", scale=scale)
    except ValueError as exc:
        # astropy lists every format it tried; a short reason is kept, the list is not
        reason = str(exc).splitlines()[0] if str(exc) else ""
        detail = f": {reason}" if reason and len(reason) <= 80 else ""
        raise cards.error(f"keyword {card} is not a valid time ({raw!r}{detail}); expected ISO "
                          "'YYYY-MM-DDThh:mm:ss' or an MJD") from None
    # (the Julian year from the JD, before any conversion: UTC has no leap seconds for an MJD in
    # milliseconds, and converting one to it was an ERFA error)
    year = 2000.0 + (time.jd - 2451545.0) / 365.25
    if not 1950.0 <= year <= 2150.0:
        when = time.tai.iso[:10] if abs(year) < 9000 else f"year {year:.3g}"
        hint = "; in milliseconds or seconds?" if year > 9000 else ""
        raise cards.error(f"keyword {card} = {raw!r} is not the time of an observation ({when}){hint}")
    return time


#: Two time cards of one moment (e.g. ``DATE-OBS`` and ``MJD-OBS``) further apart than this (seconds)
#: are reported: one of them is wrong.
TIME_CARD_TOLERANCE = 2.0


def _time_card(cards: Cards, name: str, scale: str) -> tuple[Time, str] | None:
    """The first card of field ``name`` that gives a time, with a warning when a later one says
    otherwise; None without one. A date without a time of day (``DATE-OBS = '2024-03-21'`` and no
    ``TIME-OBS``, ``UT``, ...) is not a time: midnight would put the exposure's geometry, and so its
    DCR, hours off. Another card (e.g. ``MJD-OBS``) or the pointing cards give it instead."""
    present = [c for c in cards.preset.cards_for(name, cards.overrides) if cards.has(c)]
    full = [c for c in present if not _date_only(cards, c)]
    for card in present:
        if card not in full:
            log.warning("%s: %s = %r is a date without a time of day (no %s card): not used as the "
                        "exposure's time", cards.path, card, cards.header[card], ", ".join(TIME_OF_DAY_CARDS))
    if not full:
        return None
    card = full[0]
    time = _parse_time(cards, card, scale)
    for other in full[1:]:
        try:
            then = _parse_time(cards, other, scale)
        except InputError:
            continue
        apart = abs(float((then - time).sec))
        if apart > TIME_CARD_TOLERANCE:
            log.warning("%s: %s and %s disagree by %s; using %s", cards.path, card, other,
                        _duration(apart), card)
    return time, card


def _check_start_against_middle(cards: Cards, scale: str, middle: Time, card: str,
                                exptime: tuple[float, str] | None) -> None:
    """Warn when the start-of-exposure card (``DATE-OBS``, ``MJD-OBS``) is not half the exposure
    before the mid-exposure ``card`` used (MJD-OBS 3 h from DATE-AVG went unseen); within an hour
    when there is no EXPTIME. An unreadable start card is left alone: it is not used."""
    try:
        found = _time_card(cards, "time_start", scale) if cards.find("time_start") is not None else None
    except InputError:
        return
    if found is None:
        return
    start, start_card = found
    if start_card in cards.preset.mid_exposure:
        half, said = 0.0, start_card
    elif exptime is not None:
        half, said = exptime[0] / 2.0, f"{start_card} + {exptime[1]}/2"
    else:
        half, said = None, start_card
    apart = abs(float((middle - start).sec) - (half or 0.0))
    if apart > (TIME_CARD_TOLERANCE if half is not None else 3600.0):
        warn_once(log, cards.path, f"{card} and {said} disagree by {_duration(apart)}; using {card}")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _time(cards: Cards, exptime: tuple[float, str] | None, notes: list[str]) -> tuple[Time, str] | None:
    """Mid-exposure time and the card it came from."""
    scale = None
    for name, mid in (("time_mid", True), ("time_start", False)):
        if cards.find(name) is None:
            continue
        scale = scale or _scale(cards)
        found = _time_card(cards, name, scale)
        if found is None:
            continue
        time, card = found
        if mid:
            _check_start_against_middle(cards, scale, time, card, exptime)
        # (the scale the card was read in: a 'Z' ending says UTC whatever TIMESYS says)
        used = time.scale.upper()
        if time.scale != scale:
            used += f", by its 'Z'; TIMESYS says {scale.upper()}"
        if mid or card in cards.preset.mid_exposure:
            notes.append(f"time: {card} (mid-exposure, {used})")
        elif exptime is not None:
            time = time + TimeDelta(exptime[0] / 2.0, format="sec")
            notes.append(f"time: {card} + {exptime[1]}/2 ({used})")
        else:
            notes.append(f"time: {card}, the start of the exposure (no EXPTIME to reach its middle)")
        return time, card
    found = cards.number("time_ut1")
    if found is not None:
        with _tolerant_earth_orientation():
            time = Time(found[0], format="mjd", scale="ut1").tai
        notes.append(f"time: {found[1]} (UT1, mid-exposure)")
        return time, found[1]
    return None


# -- site and weather -----------------------------------------------------------------------------

def _site(cards: Cards, notes: list[str]) -> Observatory | None:
    lat, lon, elev = cards.angle("latitude"), cards.angle("longitude"), cards.number("elevation")
    for found, problem in ((lat, latitude_problem), (lon, longitude_problem), (elev, elevation_problem)):
        if found is not None:
            _check(cards, found[1], problem(found[0]))
    preset_site = None if cards.preset is GENERIC else cards.preset.observatory()
    given = [f for f in (lat, lon, elev) if f is not None]
    if len(given) == 3:
        lon_deg = lon[0]
        site = Observatory(lat[0] * u.deg, lon_deg * u.deg, elev[0] * u.m)
        if preset_site is not None and _lon_offset(site, preset_site) > 1.0:
            flipped = Observatory(lat[0] * u.deg, -lon_deg * u.deg, elev[0] * u.m)
            if _lon_offset(flipped, preset_site) <= 1.0:
                notes.append(f"site: {lat[1]}/{lon[1]}/{elev[1]}, with {lon[1]} = {lon_deg:g} read as west "
                             f"longitude (as {cards.preset.name} headers write it)")
                return flipped
        notes.append(f"site: {lat[1]}/{lon[1]}/{elev[1]}")
        _check_named_site(cards, site, f"{lat[1]}/{lon[1]}")
        return site
    if given:
        missing = [c for c, f in zip(("OBS-LAT", "OBS-LONG", "OBS-ELEV"), (lat, lon, elev), strict=True)
                   if f is None]
        if preset_site is None:
            raise cards.error(f"incomplete site: missing keyword {', '.join(missing)}")
        notes.append(f"site: the {cards.preset.name} preset ({cards.preset.site}); "
                      f"{', '.join(missing)} missing")
        return preset_site
    named = cards.text("site")
    if named is not None:
        try:
            site = Observatory.from_site(named[0])
        except ValueError:
            notes.append(f"site: {named[1]} = {named[0]!r} is not a known site")
        else:
            notes.append(f"site: {named[1]} = {named[0]!r}")
            return site
    if preset_site is not None:
        notes.append(f"site: the {cards.preset.name} preset ({cards.preset.site})")
        return preset_site
    return None


def _check_named_site(cards: Cards, site: Observatory, given: str) -> None:
    """Warn when the header names a known site (``OBSERVAT``) more than a degree from the coordinates
    used: one of them is wrong (OBSERVAT = 'subaru' over Rubin's coordinates went unseen)."""
    named = cards.text("site")
    if named is None:
        return
    try:
        other = Observatory.from_site(named[0])
    except ValueError:
        return
    apart = _lon_offset(site, other)
    if apart > 1.0:
        warn_once(log, cards.path, f"{named[1]} = {named[0]!r} lies {apart:.0f} deg from {given} ("
                                   f"{site.latitude.deg:+.4f}, {site.longitude.deg:+.4f} deg); using {given}")


def _lon_offset(a: Observatory, b: Observatory) -> float:
    d = abs(a.longitude.deg - b.longitude.deg) % 360.0
    return max(min(d, 360.0 - d), abs(a.latitude.deg - b.latitude.deg))


#: A station pressure further than this (fraction) from the standard atmosphere's at the site's
#: elevation is refused: weather moves it by a few percent, 15 % is about 1.3 km of height.
PRESSURE_TOLERANCE = 0.15


def _check_pressure_at_site(cards: Cards, pressure: tuple[float, str], site: Observatory) -> None:
    """Refuse a pressure the site cannot have: a sea-level-reduced pressure at a mountain site is within
    the plausible range but makes the refraction, and the DCR, ~35 % too large."""
    pascal, card = pressure
    metres = site.elevation.to_value(u.m)
    standard = Weather.standard(site.elevation).pressure.to_value(u.Pa)
    off = pascal / standard - 1.0
    if abs(off) <= PRESSURE_TOLERANCE:
        return
    sea_level = off > 0 and abs(pascal - 101325.0) < 0.06 * 101325.0
    hint = ("; a pressure reduced to sea level? Refraction needs the pressure at the telescope" if sea_level
            else "; is the site's elevation right?")
    raise cards.error(f"{card} = {pascal:.0f} Pa is {abs(off):.0%} {'above' if off > 0 else 'below'} the "
                      f"standard atmosphere's {standard:.0f} Pa at the site's elevation ({metres:.0f} m)"
                      f"{hint}")


def _weather(cards: Cards, site: Observatory | None, notes: list[str]) -> Weather | None:
    t, p, h = _temperature(cards), _pressure(cards), _humidity(cards)
    if t is None and p is None and h is None:
        return None
    if p is not None and site is not None:
        _check_pressure_at_site(cards, p, site)
    used = ", ".join(f[1] + (f" ({cards.preset.units[f[1]]})" if f[1] in cards.preset.units else "")
                     for f in (t, p, h) if f is not None)
    if t is None or p is None:
        if site is None:
            notes.append(f"weather: {used} only, and no site for the rest: standard atmosphere")
            return None
        std = Weather.standard(site.elevation)
        notes.append(f"weather: {used}; the rest from the standard atmosphere at the site's elevation")
        return Weather(std.temperature if t is None else t[0] * u.deg_C,
                       std.pressure if p is None else p[0] * u.Pa,
                       _DEFAULT_HUMIDITY if h is None else h[0])
    if h is None:
        notes.append(f"weather: {used}; humidity {_DEFAULT_HUMIDITY:g} % assumed")
    else:
        notes.append(f"weather: {used}")
    return Weather(t[0] * u.deg_C, p[0] * u.Pa, _DEFAULT_HUMIDITY if h is None else h[0])


# -- geometry -------------------------------------------------------------------------------------

@lru_cache(maxsize=4096)
def _altaz_cached(jd1: float, jd2: float, scale: str, ra: float, dec: float, lat: float, lon: float,
                  elev: float) -> tuple[float, float]:
    """(az, alt) in degrees; cached because files are re-read for every subregion."""
    time = Time(jd1, jd2, format="jd", scale=scale)
    obs = Observatory(lat * u.deg, lon * u.deg, elev * u.m)
    az, alt = altaz_of(ra, dec, time, obs)
    return float(az.deg), float(alt.deg)


def _altaz(time: Time, site: Observatory, ra: float, dec: float) -> tuple[float, float]:
    return _altaz_cached(float(time.jd1), float(time.jd2), time.scale, ra, dec, float(site.latitude.deg),
                         float(site.longitude.deg), float(site.elevation.to_value(u.m)))


def airmass_allowance(altitude_deg: float, *, exposure_time_s: float = 0.0, field_radius_deg: float = 0.0,
                      tolerance: float = AIRMASS_TOLERANCE) -> tuple[float, float]:
    """The range of header airmasses consistent with a geometric altitude (see module notes).

    Returns ``(low, high)``: Kasten & Young's and the plane-parallel airmass of the
    altitude, widened by ``tolerance`` and by ``sec z tan z`` times the zenith-distance
    change possible in half the exposure (15 deg per hour at most) plus the field radius.
    """
    alt = float(altitude_deg)
    secz = float(airmass_from_altitude(alt))
    ky = float(airmass_from_altitude(alt, method="kasten-young"))
    tan_z = np.tan(np.radians(90.0 - alt))
    dz = np.radians(15.0 * exposure_time_s / 2.0 / 3600.0 + field_radius_deg)
    slack = tolerance + secz * tan_z * dz
    return ky - slack, secz + slack


def _agree(airmass: float, altitude_deg: float, exptime: tuple[float, str] | None) -> bool:
    """Whether a header airmass is that of a header altitude (`airmass_allowance`)."""
    lo, hi = airmass_allowance(altitude_deg, exposure_time_s=0.0 if exptime is None else exptime[0])
    return lo <= airmass <= hi


def _check_pointing_near_image(cards: Cards, ra: tuple[float, str], dec: tuple[float, str],
                               wcs_centre: tuple[float, float]) -> None:
    """Refuse a pointing farther from the image than any camera sees: the DCR direction and the
    airmass across the image would follow a sky position the image is not at."""
    limit = 2.0 * cards.preset.field_radius_deg + 1.0
    sep = float(position_angle_and_separation(ra[0] * u.deg, dec[0] * u.deg, wcs_centre[0] * u.deg,
                                              wcs_centre[1] * u.deg)[1].deg)
    if sep > limit:
        raise cards.error(f"{ra[1]}/{dec[1]} = ({ra[0]:.4f}, {dec[0]:.4f}) deg lies {sep:.1f} deg from the "
                          f"image centre (RA {wcs_centre[0]:.4f}, Dec {wcs_centre[1]:.4f} deg from its WCS), "
                          f"farther than a camera sees ({limit:g} deg): wrong pointing cards or a wrong WCS")


def _pointing_from_wcs(wcs_centre, notes: list[str]) -> tuple[tuple[float, str], tuple[float, str]]:
    notes.append("pointing: the WCS centre of the image (no boresight or RA/DEC cards)")
    return (float(wcs_centre[0]), "WCS centre"), (float(wcs_centre[1]), "WCS centre")


def visit_from_cards(cards: Cards, *, wcs_centre: tuple[float, float] | None = None
                     ) -> tuple[VisitInfo | None, list[str]]:
    """The visit a header describes, and notes saying where each value came from.

    Parameters
    ----------
    cards : Cards
        The header (primary overlaid with the image extension's) and instrument preset.
    wcs_centre : (ra, dec), optional
        ICRS degrees of the image centre, used as the pointing when no card gives one.

    Returns
    -------
    visit : VisitInfo or None
        None when the header describes no single exposure.
    notes : list of str
        One line per derived or looked-up quantity (``"airmass: computed from ..."``).

    Raises
    ------
    InputError
        A card holds an impossible value (naming it), or nothing gives the visit's geometry.
    """
    if not _describes_a_visit(cards):
        return None, []
    notes: list[str] = []
    exptime = _exposure_time(cards)
    timed = _time(cards, exptime, notes)
    time = None if timed is None else timed[0]
    site = _site(cards, notes)
    weather = _weather(cards, site, notes)

    ra, dec = cards.angle("ra", right_ascension=True), cards.angle("dec")
    if (ra is None) != (dec is None):
        notes.append(f"pointing: {(ra or dec)[1]} without its partner; ignored")
        ra = dec = None
    if dec is not None:
        _check(cards, dec[1], None if -90.0 <= dec[0] <= 90.0 else f"{dec[0]:g} deg is not a declination")
        ra = (ra[0] % 360.0, ra[1])
        notes.append(f"pointing: {ra[1]}/{dec[1]}")
    alt, az = cards.angle("altitude"), cards.angle("azimuth")
    zd = cards.angle("zenith_distance")
    if alt is None and zd is not None:
        alt = (90.0 - zd[0], f"90 - {zd[1]}")
    if alt is not None:
        _check(cards, alt[1].removeprefix("90 - "),
               None if 0.0 < alt[0] <= 90.0 else f"altitude {alt[0]:g} deg is not above the horizon")
        if az is None:
            notes.append(f"altitude: {alt[1]} (no azimuth: no parallactic angle from it)")
    if az is not None:
        az = (az[0] % 360.0, az[1])
    airmass = cards.number("airmass")
    if airmass is not None and not airmass[0] >= 0.999:  # headers round; nothing is below 1
        raise cards.error(f"{airmass[1]} = {airmass[0]:g}: airmass {airmass[0]:g} is below 1 "
                          f"(1 at the zenith, more towards the horizon)")
    if ra is None and alt is None and wcs_centre is not None and time is not None:
        ra, dec = _pointing_from_wcs(wcs_centre, notes)
    elif ra is not None and wcs_centre is not None and site is not None:
        # with a site the pointing places the zenith for every pixel of the image (DCR direction,
        # airmass across the field): it must be where the image is
        _check_pointing_near_image(cards, ra, dec, wcs_centre)

    # altitude from geometry, checked against the header's alt/az
    geo_alt = alt_source = None
    if time is not None and site is not None and ra is not None:
        c_az, c_alt = _altaz(time, site, ra[0], dec[0])
        source = f"{ra[1]}/{dec[1]} at {timed[1]} from the site"
        if not c_alt > 0:
            raise cards.error(f"the pointing ({ra[1]}/{dec[1]}) is {-c_alt:.1f} deg below the horizon at "
                              f"{timed[1]} from the site (lat {site.latitude.deg:+.4f}, east lon "
                              f"{site.longitude.deg:+.4f} deg): wrong time, time scale or site "
                              f"(a west-positive OBS-LONG? an OBS-LAT in radians, or with its sign "
                              f"flipped? name the instrument)")
        sep = None if alt is None or az is None else \
            position_angle_and_separation(c_az, c_alt, az[0], alt[0])[1].deg
        if sep is not None and sep <= ALTAZ_TOLERANCE_DEG:
            notes.append(f"alt/az: {az[1]}/{alt[1]} (agree with {source})")  # kept as the file says
        else:
            if sep is not None and sep > ALTAZ_REFUSE_DEG and airmass is not None \
                    and _agree(airmass[0], alt[0], exptime) and not _agree(airmass[0], c_alt, exptime):
                site_note = next((n.removeprefix("site: ") for n in notes if n.startswith("site: ")), "")
                raise cards.error(
                    f"{az[1]}/{alt[1]} = ({az[0]:.3f}, {alt[0]:.3f}) deg (az, alt) and {airmass[1]} = "
                    f"{airmass[0]:g} agree with each other, but {source} puts the pointing at ({c_az:.3f}, "
                    f"{c_alt:.3f}) deg, {sep:.1f} deg away: the site (lat {site.latitude.deg:+.4f}, east lon "
                    f"{site.longitude.deg:+.4f} deg: {site_note}) or the time is wrong (an OBS-LAT in "
                    f"radians, or with its sign flipped? a west-positive OBS-LONG?)")
            if sep is not None:
                warn_once(log, cards.path,
                          f"{az[1]}/{alt[1]} = ({az[0]:.3f}, {alt[0]:.3f}) deg (az, alt) are {sep:.2f} deg "
                          f"from the ({c_az:.3f}, {c_alt:.3f}) of {source}; using the latter")
                notes.append(f"alt/az: computed from {source} ({az[1]}/{alt[1]} disagree by {sep:.2f} deg)")
            else:
                notes.append(f"alt/az: computed from {source}")
            az, alt = (c_az, "computed"), (c_alt, "computed")
        geo_alt, alt_source = c_alt, source
    elif alt is not None:
        geo_alt, alt_source = alt[0], alt[1]

    if airmass is not None and geo_alt is not None:
        radius = cards.preset.field_radius_deg if ra is not None and ra[1] == "WCS centre" else 0.0
        lo, hi = airmass_allowance(geo_alt, exposure_time_s=0.0 if exptime is None else exptime[0],
                                   field_radius_deg=radius)
        geometric = float(airmass_from_altitude(geo_alt))
        if lo <= airmass[0] <= hi:
            notes.append(f"airmass: {airmass[1]} (agrees with {geometric:.4f} from {alt_source})")
        elif cards.overrides.get("airmass") == airmass[1]:
            # (the user's own mapping: wrong for every file of the run, so one error, not a warning each)
            raise cards.error(f"the header map's airmass = {airmass[1]} (--header-map, inputs.header_map) "
                              f"reads {airmass[1]} = {airmass[0]:g}, not this visit's airmass "
                              f"({geometric:.4f} from the altitude {geo_alt:.3f} deg, {alt_source}): map "
                              "airmass to the card that holds it, or leave it out")
        else:
            warn_once(log, cards.path,
                      f"{airmass[1]} = {airmass[0]:g} contradicts the airmass {geometric:.4f} of the "
                      f"altitude {geo_alt:.3f} deg ({alt_source}): they differ by "
                      f"{abs(airmass[0] - geometric):.3g}, more than {AIRMASS_TOLERANCE:g}; using "
                      f"{geometric:.4f} from the altitude, which the DCR itself is computed from")
            notes.append(f"airmass: {geometric:.4f} from {alt_source} ({airmass[1]} = {airmass[0]:g} "
                         f"contradicts it)")
            airmass = (geometric, alt_source)
    elif airmass is None and geo_alt is not None:
        airmass = (float(airmass_from_altitude(geo_alt)), alt_source)
        notes.append(f"airmass: {airmass[0]:.4f} computed from {alt_source} (sec z)")
    elif airmass is not None:
        notes.append(f"airmass: {airmass[1]}")
    elif time is None or ra is None:
        raise cards.error("missing keyword BORE-AIRMASS (or AIRMASS), and nothing to derive it from: "
                          "no BORE-ALT, and no time (DATE-AVG, DATE-OBS, MJD-OBS) with a pointing")
    else:
        notes.append("airmass, alt/az: need a site (OBS-LAT/OBS-LONG/OBS-ELEV, OBSERVAT or --instrument)")

    ident = cards.integer("id")
    if ident is None:
        if time is None:
            raise cards.error("missing keyword EXPID (exposure identifier), and no time to derive one from")
        ident = (int(round(float(time.utc.mjd) * 86400.0)), "time")
        notes.append(f"id: {ident[0]} (seconds since MJD 0 at the exposure's middle; no EXPID card)")
    elif not -2**63 <= ident[0] < 2**63:
        # (the coadd's INPUTS table and LSST's visit ids are signed 64-bit: refused here, not after the solve)
        raise cards.error(f"{ident[1]} = {ident[0]}: not a visit id that fits a signed 64-bit integer")
    rotation = cards.angle("rotation_angle")
    rottype = cards.text("rotation_type")
    try:
        visit = VisitInfo(
            id=ident[0], time=time, exposure_time=None if exptime is None else exptime[0] * u.s,
            boresight_ra=None if ra is None else ra[0] * u.deg,
            boresight_dec=None if dec is None else dec[0] * u.deg,
            boresight_az=None if az is None else az[0] * u.deg,
            boresight_alt=None if alt is None else alt[0] * u.deg,
            airmass=None if airmass is None else airmass[0],
            rotation_angle=None if rotation is None else rotation[0] * u.deg,
            rotation_type=None if rottype is None else rottype[0],
            observatory=site, weather=weather,
        )
    except ValueError as exc:
        raise cards.error(f"invalid visit metadata ({exc})") from None
    return visit, notes
