"""Instrument presets: band curves and sites for inputs whose headers lack them.

A preset never overrides what a file says: a warp that carries its band
wavelengths (``BANDLAM``/``BANDWID``) keeps them, and one with a site keeps it.
"""

from __future__ import annotations

from dcrcoadd.core.bandpass import CAMERA_SITES, PRESET_CAMERAS, Bandpass
from dcrcoadd.core.observatory import Observatory
from dcrcoadd.core.visit import VisitInfo
from dcrcoadd.errors import ConfigError, InputError

INSTRUMENTS = ("lsst", "decam", "hsc")


def check_instrument(name: str) -> str:
    key = name.strip().lower()
    if key not in INSTRUMENTS or key not in PRESET_CAMERAS:
        raise ConfigError(f"unknown instrument {name!r}; known: {', '.join(INSTRUMENTS)}")
    return key


def instrument_defaults(instrument: str, band: str | None, bandpass: Bandpass | None,
                        visit: VisitInfo | None, source: str) -> tuple[Bandpass | None, VisitInfo | None]:
    """The band and visit of one input, completed from the instrument's preset where missing.

    Raises
    ------
    InputError
        The file names no band the instrument has (naming the file).
    """
    camera = check_instrument(instrument)
    if bandpass is None:
        if not band:
            raise InputError(f"no band (FILTER) to look up in the {camera} presets", source)
        letter = band.strip().split("-")[-1].split("_")[-1]
        try:
            bandpass = Bandpass.preset(f"{camera}-{letter}")
        except ConfigError as exc:
            raise InputError(f"band {band!r}: {exc}", source) from None
    if visit is not None and visit.observatory is None:
        visit = visit.replace(observatory=Observatory.from_site(CAMERA_SITES[camera]))
    return bandpass, visit
