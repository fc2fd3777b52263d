"""Instrument presets: how each survey's headers say what a visit needs, its site and its bands.

A preset maps the *fields* a visit needs (`HEADER_FIELDS`: time, pointing, airmass,
weather, filter, gain, saturation, seeing, zero point, ...) to the header cards one
instrument writes them in, with the units those cards use when they are not the
dcrcoadd/LSST ones, and carries the instrument's site and band curves. The
dcrcoadd/LSST cards (``BORE-AIRMASS``, ``DATE-AVG``, ``AIRTEMP``, ...) are always
read first; a preset only adds cards, so it never overrides what a file says in
the project's own format. A file names its instrument in ``INSTRUME`` (or
``INSTRUMENT``, as the LSST stack writes it); `detect_instrument` recognises the
presets' instruments from it, and ``--instrument`` names one for files that do not.

Values in the presets come from the instruments' published header conventions:

* DECam (Community Pipeline): ``EXPNUM``; ``DATE-OBS``/``MJD-OBS`` at the shutter
  opening; ``TELRA``/``TELDEC`` and ``RA``/``DEC`` sexagesimal (hours, degrees);
  ``ZD``/``AZ``; ``OBS-LONG`` positive *west* although its comment says east;
  ``OUTTEMP`` (C), ``PRESSURE`` (mbar, whatever its comment says), ``HUMIDITY``;
  ``FILTER = 'g DECam SDSS c0001 4720.0 1520.0'``; ``GAIN``/``GAINA``/``GAINB``
  (e-/ADU), ``SATURATE``/``SATURATA``/``SATURATB`` (ADU), ``FWHM`` (pixels),
  ``MAGZERO``.
* HSC: ``EXP-ID = 'HSCE00012345'``; ``DATE-OBS`` + ``UT`` and ``MJD`` at the start;
  ``RA2000``/``DEC2000`` sexagesimal; ``ALTITUDE``/``AZIMUTH``; ``OUT-TMP`` in
  *kelvin*, ``OUT-PRS`` in hPa, ``OUT-HUM``; ``FILTER01 = 'HSC-G'``;
  ``FLUXMAG0`` (counts of a zero-magnitude source) on pipeline outputs.
* ZTF: ``OBSMJD`` at mid-exposure; ``TELRA``/``TELDEC``; ``FILTER = 'ZTF_g'`` or
  ``FILTERID`` 1/2/3; ``GAIN``, ``SATURATE``, ``SEEING`` (pixels), ``MAGZP``.
* LSST: the VisitInfo cards; ``FILTBAND``, or the band before ``_`` in ``FILTER``
  (``'g_6'``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from dcrcoadd.core.bandpass import CAMERA_SITES, PRESET_CAMERAS, Bandpass
from dcrcoadd.core.observatory import Observatory
from dcrcoadd.core.visit import VisitInfo
from dcrcoadd.errors import ConfigError, InputError

__all__ = [
    "GENERIC_CARDS",
    "LSST_CARDS",
    "HEADER_FIELDS",
    "INSTRUMENTS",
    "InstrumentPreset",
    "check_header_map",
    "check_instrument",
    "detect_instrument",
    "instrument_defaults",
    "preset",
]

#: What a visit and its pixels need from a header: the dcrcoadd/LSST cards of each field, always
#: read first. Units: the LSST ones (deg, C, Pa, %, s); a preset names other units per card in
#: `InstrumentPreset.units`.
LSST_CARDS: dict[str, tuple[str, ...]] = {
    "id": ("EXPID", "IDNUM"),
    "exposure_time": ("EXPTIME",),
    "time_mid": ("DATE-AVG",),
    "time_start": (),
    "time_ut1": ("MJD-AVG-UT1",),
    "ra": ("BORE-RA",),
    "dec": ("BORE-DEC",),
    "azimuth": ("BORE-AZ",),
    "altitude": ("BORE-ALT",),
    "zenith_distance": (),
    "airmass": ("BORE-AIRMASS",),
    "rotation_angle": ("BORE-ROTANG",),
    "rotation_type": ("ROTTYPE",),
    "latitude": ("OBS-LAT",),
    "longitude": ("OBS-LONG",),
    "elevation": ("OBS-ELEV",),
    "site": (),
    "temperature": ("AIRTEMP",),
    "pressure": ("AIRPRESS",),
    "humidity": ("HUMIDITY",),
    "filter": (),
    "calibration": ("FLUXCAL",),
    "zeropoint": (),
    "fluxmag0": (),
    "gain": (),
    "saturation": (),
    "seeing": (),
}
#: Widespread FITS conventions, read after the LSST cards (and after a preset's own cards for the
#: fields the preset prefers).
GENERIC_CARDS: dict[str, tuple[str, ...]] = {
    "time_mid": ("MJD-AVG",),
    "time_start": ("DATE-OBS", "MJD-OBS"),
    "ra": ("RA",),
    "dec": ("DEC",),
    "airmass": ("AIRMASS",),
    "site": ("OBSERVAT",),
    "filter": ("FILTER",),
    "zeropoint": ("MAGZERO", "MAGZPT"),
    "fluxmag0": ("FLUXMAG0",),
    "gain": ("GAIN",),
    "saturation": ("SATURATE",),
}
HEADER_FIELDS = tuple(LSST_CARDS)
#: Cards giving a time of the start of the exposure on a date-only ``DATE-OBS``.
TIME_OF_DAY_CARDS = ("TIME-OBS", "UT", "UTC-OBS", "UTSTART", "UT-STR")


@dataclass(frozen=True)
class InstrumentPreset:
    """How one instrument's headers carry what dcrcoadd needs.

    Parameters
    ----------
    name : str
        Preset name (``--instrument`` value).
    camera : str
        Bandpass camera prefix (`dcrcoadd.core.bandpass.PRESET_CAMERAS`).
    instrume : tuple of str
        Lower-case prefixes of ``INSTRUME``/``INSTRUMENT`` values that identify it.
    cards : dict
        Field -> extra cards, searched after the LSST and the generic ones (or before
        the generic ones, for the fields in ``preferred``).
    preferred : tuple of str
        Fields whose preset cards come before the generic ones (where a generic card
        means something else, or less, in this instrument's headers).
    units : dict
        Card -> unit of its value where it differs from the field's default:
        ``"K"``, ``"hPa"`` (temperature, pressure), ``"hourangle"`` (numeric RA),
        ``"arcsec"``/``"pixel"`` (seeing).
    mid_exposure : tuple of str
        Start-time cards that this instrument writes at mid-exposure instead.
    west_longitude : bool
        ``OBS-LONG`` is positive west (corrected when it contradicts the preset site).
    band_pattern : str
        Regular expression whose first group is the band in the filter card.
    filter_ids : dict
        Numeric filter identifiers -> band (``FILTERID``).
    field_radius_deg : float
        Radius of the camera's field: how far an image centre can lie from the boresight
        (bounds the airmass difference between the two).
    """

    name: str
    camera: str
    instrume: tuple[str, ...]
    cards: dict[str, tuple[str, ...]] = field(default_factory=dict)
    preferred: tuple[str, ...] = ()
    units: dict[str, str] = field(default_factory=dict)
    mid_exposure: tuple[str, ...] = ()
    west_longitude: bool = False
    band_pattern: str = r"^\s*([A-Za-z][A-Za-z0-9]*)"
    filter_ids: dict[int, str] = field(default_factory=dict)
    field_radius_deg: float = 1.0

    @property
    def site(self) -> str:
        """Site name for `Observatory.from_site`."""
        return CAMERA_SITES[self.camera]

    def observatory(self) -> Observatory:
        return Observatory.from_site(self.site)

    def cards_for(self, name: str, overrides: dict[str, str] | None = None) -> tuple[str, ...]:
        """The cards to search for field ``name``, in order: an override, the LSST cards, then
        the generic and the preset's cards (the preset's first for its ``preferred`` fields)."""
        lsst, generic = LSST_CARDS.get(name, ()), GENERIC_CARDS.get(name, ())
        extra = self.cards.get(name, ())
        rest = extra + generic if name in self.preferred else generic + extra
        order = tuple(dict.fromkeys(lsst + rest))
        if overrides and overrides.get(name):
            order = (overrides[name],) + tuple(c for c in order if c != overrides[name])
        return order

    def band_of(self, value) -> str | None:
        """The band (as the bandpass presets spell it) named by a filter card value, or None."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return self.filter_ids.get(int(value))
        bands = {b.lower(): b for b in PRESET_CAMERAS[self.camera][1]}
        m = re.search(self.band_pattern, str(value))
        if m:
            return bands.get(m.group(1).lower())
        return bands.get(str(value).strip().lower())  # a bare band name ("g")

    def bandpass(self, band: str) -> Bandpass:
        """The preset bandpass of ``band`` (cached: presets are read from speclite's files)."""
        return _preset_bandpass(f"{self.camera}-{band}")


@lru_cache(maxsize=64)
def _preset_bandpass(name: str) -> Bandpass:
    return Bandpass.preset(name)


#: A preset for files that name no instrument: only the generic cards.
GENERIC = InstrumentPreset("generic", "lsst", ())

PRESETS: dict[str, InstrumentPreset] = {
    "lsst": InstrumentPreset(
        "lsst", "lsst", ("lsstcam", "lsstcomcam", "latiss", "lsst"),
        cards={"filter": ("FILTBAND",)}, preferred=("filter",),
        band_pattern=r"^\s*([ugrizy])(?:_|\s|$)", field_radius_deg=1.75),
    "decam": InstrumentPreset(
        "decam", "decam", ("decam",),
        cards={"id": ("EXPNUM",), "ra": ("TELRA",), "dec": ("TELDEC",), "zenith_distance": ("ZD",),
               "azimuth": ("AZ",), "temperature": ("OUTTEMP",), "pressure": ("PRESSURE",),
               "gain": ("GAINA", "GAINB"), "saturation": ("SATURATA", "SATURATB"), "seeing": ("FWHM",)},
        preferred=("ra", "dec"),
        units={"PRESSURE": "hPa", "FWHM": "pixel"},
        west_longitude=True, band_pattern=r"(?i)^\s*([ugrizy])\b", field_radius_deg=1.1),
    "hsc": InstrumentPreset(
        "hsc", "hsc", ("hyper suprime-cam", "hsc"),
        cards={"id": ("EXP-ID",), "time_start": ("MJD",), "ra": ("RA2000",), "dec": ("DEC2000",),
               "azimuth": ("AZIMUTH",), "altitude": ("ALTITUDE",), "temperature": ("OUT-TMP",),
               "pressure": ("OUT-PRS",), "humidity": ("OUT-HUM",), "filter": ("FILTER01",),
               "seeing": ("SEEING",)},
        preferred=("filter", "ra", "dec"),
        units={"OUT-TMP": "K", "OUT-PRS": "hPa", "SEEING": "arcsec"},
        band_pattern=r"^\s*HSC-([A-Za-z][0-9]?)\b", field_radius_deg=0.75),
    "ztf": InstrumentPreset(
        "ztf", "ztf", ("ztf",),
        cards={"id": ("FRAMENUM",), "time_mid": ("OBSMJD",), "ra": ("TELRA",), "dec": ("TELDEC",),
               "filter": ("FILTERID",), "zeropoint": ("MAGZP",), "seeing": ("SEEING",)},
        preferred=("ra", "dec"),
        units={"SEEING": "pixel"}, mid_exposure=("OBSMJD",),
        band_pattern=r"^\s*(?:ZTF[_ ]?)?([gri])\b", filter_ids={1: "g", 2: "r", 3: "i"},
        field_radius_deg=3.8),
}
INSTRUMENTS = tuple(PRESETS)


_CARD_NAME = re.compile(r"^[A-Z0-9_-]+( [A-Z0-9_-]+)*$")


def check_header_map(mapping) -> dict[str, str]:
    """``mapping`` (field -> header card, ``inputs.header_map``) checked and with the cards upper-cased.

    Raises
    ------
    ConfigError
        A field that is not one of `HEADER_FIELDS`, or a card that is not a FITS keyword
        (letters, digits, ``-`` and ``_``; words separated by single spaces for HIERARCH cards).
    """
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise ConfigError(f"inputs.header_map must be a table of field = card, got {mapping!r}")
    out = {}
    for name, card in mapping.items():
        if name not in HEADER_FIELDS:
            raise ConfigError(f"inputs.header_map.{name}: not a header field; known: "
                              f"{', '.join(HEADER_FIELDS)}")
        text = card.strip().upper() if isinstance(card, str) else None
        if text and text.startswith("HIERARCH "):
            text = text[len("HIERARCH "):].strip()
        if not text or not _CARD_NAME.match(text):
            raise ConfigError(f"inputs.header_map.{name} must be a FITS keyword (letters, digits, - and _), "
                              f"got {card!r}")
        out[name] = text
    return out


def check_instrument(name: str) -> str:
    """The canonical preset name of ``name``; ConfigError if there is none."""
    key = name.strip().lower()
    if key not in PRESETS or PRESETS[key].camera not in PRESET_CAMERAS:
        raise ConfigError(f"unknown instrument {name!r}; known: {', '.join(INSTRUMENTS)}")
    return key


def preset(name: str | None) -> InstrumentPreset:
    """The preset of instrument ``name`` (the generic one for None)."""
    return GENERIC if name is None else PRESETS[check_instrument(name)]


def detect_instrument(header) -> str | None:
    """The preset whose instrument a header names, or None.

    From ``INSTRUME`` (or ``INSTRUMENT``, as the LSST stack writes it); failing that, from
    cards only one instrument writes that way: a ``FILTER`` naming DECam or starting
    ``ZTF``, an ``EXP-ID``/``FRAMEID`` starting ``HSC``.
    """
    for key in ("INSTRUME", "INSTRUMENT"):
        value = str(header.get(key, "")).strip().lower()
        if not value:
            continue
        for name, p in PRESETS.items():
            if any(value.startswith(prefix) for prefix in p.instrume):
                return name
    text = str(header.get("FILTER", "")).strip()
    if "DECam" in text:
        return "decam"
    if text.upper().startswith("ZTF"):
        return "ztf"
    if any(str(header.get(k, "")).strip().upper().startswith("HSC") for k in ("EXP-ID", "FRAMEID")):
        return "hsc"
    return None


def instrument_defaults(instrument: str, band: str | None, bandpass: Bandpass | None,
                        visit: VisitInfo | None, source: str) -> tuple[Bandpass | None, VisitInfo | None]:
    """The band and visit of one input, completed from the instrument's preset where missing.

    Raises
    ------
    InputError
        The file names no band the instrument has (naming the file).
    """
    p = preset(instrument)
    if bandpass is None:
        if not band:
            raise InputError(f"no band (FILTER) to look up in the {p.name} presets", source)
        letter = p.band_of(band)
        if letter is None:  # "lsst-g": the band after the last separator
            letter = p.band_of(band.strip().replace("_", "-").split("-")[-1])
        if letter is None:
            raise InputError(f"band {band!r}: not a band of the {p.name} presets "
                             f"({', '.join(PRESET_CAMERAS[p.camera][1])})", source)
        try:
            bandpass = p.bandpass(letter)
        except ConfigError as exc:
            raise InputError(f"band {band!r}: {exc}", source) from None
    if visit is not None and visit.observatory is None:
        visit = visit.replace(observatory=p.observatory())
    return bandpass, visit
