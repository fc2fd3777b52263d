"""Typed look-ups in FITS headers through an instrument's card map, naming the card in every error.

`Cards` wraps one header (the primary header overlaid with the image extension's,
`merged_header`) and an `~dcrcoadd.core.instrument.InstrumentPreset`: ``cards.number("airmass")``
returns the value and the card that gave it (``BORE-AIRMASS`` or ``AIRMASS``...),
so that every derived value can say where it came from and every refusal can
name the card. A card counts as absent when it is missing, empty, or a number
that is not finite (the LSST stack writes NaN for unknown values).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle
from astropy.io import fits

from dcrcoadd.core.instrument import LSST_CARDS, InstrumentPreset
from dcrcoadd.errors import InputError

__all__ = ["Cards", "HeaderView", "ascii_text", "merged_header", "warn_once"]

#: Cards that describe an HDU's structure, never its content.
_STRUCTURAL = re.compile(r"^(SIMPLE|XTENSION|BITPIX|NAXIS\d*|EXTEND|PCOUNT|GCOUNT|EXTNAME|EXTVER|EXTTYPE|"
                         r"EXTLEVEL|INHERIT|CHECKSUM|DATASUM|BZERO|BSCALE|BLANK|BUNIT|Z[A-Z0-9]*|"
                         r"TFIELDS|TTYPE\d+|TFORM\d+|COMMENT|HISTORY|)$")
_SEXAGESIMAL = re.compile(r"^\s*[+-]?\d+(\.\d*)?([:\s]+\d+(\.\d*)?){1,2}\s*$")
_WARNED: set[tuple[str, str]] = set()


def ascii_text(text: str) -> str:
    """``text`` as FITS can hold it (ASCII only): other characters as Python escapes, ``é`` as
    ``\\xe9`` (an input named ``visité.fits`` failed the coadd's INPUTS table after the whole solve)."""
    return str(text).encode("ascii", "backslashreplace").decode("ascii")


def warn_once(log: logging.Logger, source, message: str) -> None:
    """Log a warning about ``source`` once per process (files are re-read for every subregion)."""
    key = (str(source), message)
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning("%s: %s", source, message)


class HeaderView:
    """Read-only look-ups in an image extension's header, falling back to the primary header.

    Survey files keep exposure cards in the primary header and detector cards (gain,
    saturation, zero point, seeing) in the image extension, or everything in one of
    them; the extension's value wins where both have a card. Structural cards of the
    extension (``NAXIS``, ``EXTNAME``, ``BZERO``...) are never seen. No header is copied:
    files are re-read for every subregion.
    """

    def __init__(self, primary: fits.Header, image: fits.Header | None = None):
        self._headers = (primary,) if image is None or image is primary else (image, primary)

    def _owner(self, key: str) -> fits.Header | None:
        for i, h in enumerate(self._headers):
            if key in h and (i == len(self._headers) - 1 or not _STRUCTURAL.match(key.upper())):
                return h
        return None

    def __contains__(self, key: str) -> bool:
        return self._owner(key) is not None

    def __getitem__(self, key: str):
        h = self._owner(key)
        if h is None:
            raise KeyError(key)
        return h[key]

    def get(self, key: str, default=None):
        h = self._owner(key)
        return default if h is None else h[key]


def merged_header(primary: fits.Header, image: fits.Header | None) -> HeaderView:
    """The primary header overlaid with the content cards of the image extension (`HeaderView`)."""
    return HeaderView(primary, image)


def _present(value) -> bool:
    if value is None or isinstance(value, fits.card.Undefined):
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, (bool, np.bool_)):
        return True
    if isinstance(value, (int, float, np.number)):
        return bool(np.isfinite(value))
    return True


class Cards:
    """One header read through an instrument preset's card map.

    Parameters
    ----------
    header : fits.Header
    path : Path
        The file, named by every error.
    preset : InstrumentPreset
    overrides : dict, optional
        Field -> card that replaces the preset's first choice (``inputs.header_map``).
    """

    def __init__(self, header: HeaderView | fits.Header, path: Path, preset: InstrumentPreset,
                 overrides: dict[str, str] | None = None):
        self.header = header
        self.path = path
        self.preset = preset
        self.overrides = overrides or {}
        self.absent_overrides: set[str] = set()  # fields looked up whose override card the header lacks

    def has(self, card: str) -> bool:
        return card in self.header and _present(self.header[card])

    def _note_override(self, name: str) -> None:
        if name in self.overrides and not self.has(self.overrides[name]):
            self.absent_overrides.add(name)

    def find(self, name: str) -> tuple[object, str] | None:
        """``(raw value, card)`` of the first present card of field ``name``, or None."""
        self._note_override(name)
        for card in self.preset.cards_for(name, self.overrides):
            if self.has(card):
                return self.header[card], card
        return None

    def found_any(self, *names: str) -> bool:
        return any(self.find(n) is not None for n in names)

    def unit(self, card: str, default: str) -> str:
        return self.preset.units.get(card, default)

    def error(self, message: str) -> InputError:
        return InputError(message, self.path)

    def to_float(self, value, card: str) -> float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise self.error(f"keyword {card} is not a number ({value!r})") from None

    def number(self, name: str) -> tuple[float, str] | None:
        """``(value, card)`` of field ``name`` as a float, or None; InputError if not a number."""
        found = self.find(name)
        if found is None:
            return None
        if isinstance(found[0], (bool, np.bool_)):  # (float(True) would be 1)
            raise self.error(f"keyword {found[1]} is a logical ({'T' if found[0] else 'F'}), not a number")
        value = self.to_float(*found)
        return (value, found[1]) if np.isfinite(value) else None

    def numbers(self, name: str) -> list[tuple[float, str]]:
        """Every present card of field ``name`` as ``(value, card)`` (e.g. per-amplifier gains)."""
        out = []
        self._note_override(name)
        for card in self.preset.cards_for(name, self.overrides):
            if self.has(card):
                value = self.to_float(self.header[card], card)
                if np.isfinite(value):
                    out.append((value, card))
        return out

    def angle(self, name: str, *, right_ascension: bool = False) -> tuple[float, str] | None:
        """``(degrees, card)`` of an angle field, or None.

        Numbers are degrees (or the preset's unit for that card); sexagesimal strings
        (``'12:34:56.7'``, ``'12 34 56.7'``) are hours for a right ascension, degrees otherwise,
        as every observatory writes them.
        """
        found = self.find(name)
        if found is None:
            return None
        value, card = found
        if isinstance(value, str) and _SEXAGESIMAL.match(value):
            unit = u.hourangle if right_ascension else u.deg
            try:
                return float(Angle(value.strip().replace(" ", ":"), unit=unit).deg), card
            except ValueError:
                raise self.error(f"keyword {card} is not an angle ({value!r})") from None
        deg = self.to_float(value, card)
        if self.unit(card, "deg") == "hourangle":
            deg *= 15.0
        return deg, card

    def text(self, name: str) -> tuple[str, str] | None:
        found = self.find(name)
        return None if found is None else (str(found[0]).strip(), found[1])

    def integer(self, name: str) -> tuple[int, str] | None:
        """``(value, card)`` of an integer field. An instrument's own identifier card may be a
        string: its last run of digits is the number (``'HSCE00012345'`` -> 12345); the LSST
        cards must hold integers."""
        found = self.find(name)
        if found is None:
            return None
        value, card = found
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return int(value), card
        if isinstance(value, float) and value.is_integer():
            return int(value), card
        text = str(value).strip()
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text), card
        m = None if card in LSST_CARDS.get(name, ()) else re.search(r"(\d+)\D*$", text)
        if m:
            return int(m.group(1)), card
        raise self.error(f"keyword {card} is not an integer ({value!r})")
