"""Flux calibration of inputs: from a header, and compared across the inputs of one coadd.

A file's calibration (nJy per image unit) comes from, in order:

* ``FLUXCAL``: nJy per image unit (the dcrcoadd format);
* in an LSST afw file, the archive's ``PhotoCalib`` (`dcrcoadd.io.afw`);
* an AB zero point, ``MAGZERO`` or ``MAGZPT`` (or an instrument's own card, ZTF's ``MAGZP``):
  the AB magnitude of a source giving **one image unit** in total, so
  ``nJy per unit = 10 ** (0.4 (m_nJy − ZP))`` with ``m_nJy = 2.5 log10(3631e9) = 31.4``
  the AB magnitude of 1 nJy. A zero point defined for one count *per second* must be
  converted first (add ``2.5 log10(EXPTIME)``): headers do not say which they mean;
* ``FLUXMAG0``: the image units of a zero-magnitude (AB) source, as the HSC pipeline
  writes it: ``nJy per unit = 3631e9 / FLUXMAG0``.

A file with none of them is *uncalibrated* (`calibration_from_cards` returns None), never
silently "1 nJy per unit". `reconcile_calibration` compares the inputs of one coadd:
calibrated and uncalibrated inputs together are refused (their relative scale would be
wrong by the calibration factor); inputs that are all uncalibrated are accepted with one
warning and coadded in their image units.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence

from dcrcoadd.errors import InputError
from dcrcoadd.io.header import Cards, warn_once

__all__ = ["AB_MAGNITUDE_OF_1_NJY", "ZEROPOINT_RANGE", "calibration_from_cards", "flux_unit",
           "reconcile_calibration"]

log = logging.getLogger("dcrcoadd.io.calibration")

#: AB magnitude of a 1 nJy source: 2.5 log10(3631 Jy / 1 nJy).
AB_MAGNITUDE_OF_1_NJY = 2.5 * math.log10(3631e9)
#: Zero points of real images (one image unit) lie well inside this range; outside it a card holds
#: something else (a flux, an error, a zero point of another system).
ZEROPOINT_RANGE = (10.0, 45.0)


#: Calibration cards of one header that disagree by more than this (mag) are reported.
CALIBRATION_CARD_TOLERANCE_MAG = 0.1


def calibration_from_cards(cards: Cards) -> tuple[float, str] | None:
    """``(nJy per image unit, card)`` of a header, or None when it carries no calibration.

    ``FLUXCAL`` first, then a zero point, then ``FLUXMAG0``; a later card that gives another
    calibration (by more than `CALIBRATION_CARD_TOLERANCE_MAG`) is warned about.

    Raises
    ------
    InputError
        A calibration card holds an impossible value (naming it).
    """
    found = []
    for field in ("calibration", "zeropoint", "fluxmag0"):
        try:
            calibration = _calibration(cards, field)
        except InputError:
            if not found:  # (the card used)
                raise
            continue  # (an unused card: a placeholder such as MAGZERO = 0 is no contradiction)
        if calibration is not None:
            found.append(calibration)
    if not found:
        return None
    value, card = found[0]
    for other, other_card in found[1:]:
        apart = abs(2.5 * math.log10(other / value))
        if apart > CALIBRATION_CARD_TOLERANCE_MAG:
            warn_once(log, cards.path, f"{card} and {other_card} disagree by {apart:.2f} mag ({value:.6g} "
                                       f"and {other:.6g} nJy per image unit); using {card}")
    return value, card


def _calibration(cards: Cards, field: str) -> tuple[float, str] | None:
    """``(nJy per image unit, card)`` of the calibration field ``field`` (``"calibration"``: FLUXCAL,
    ``"zeropoint"``, ``"fluxmag0"``), or None."""
    found = cards.number(field)
    if found is None:
        return None
    value, card = found
    if field == "zeropoint":
        lo, hi = ZEROPOINT_RANGE
        if not lo <= value <= hi:
            raise cards.error(f"{card} = {value:g} is not an AB zero point of an image ({lo:g}-{hi:g} mag)")
        return 10.0 ** (0.4 * (AB_MAGNITUDE_OF_1_NJY - value)), card
    if not value > 0:
        raise cards.error(f"{card} must be positive, got {value:g}")
    if field == "fluxmag0":
        said = f"{card} = {value:g} image units for magnitude 0"
        return _plausible(cards, 3631e9 / value, card, said), card
    return _plausible(cards, value, card, f"{card} = {value:g} nJy per image unit"), card


def _plausible(cards: Cards, njy: float, card: str, said: str) -> float:
    """``njy`` (nJy per image unit) when it is the calibration of a zero point in `ZEROPOINT_RANGE`."""
    zp = AB_MAGNITUDE_OF_1_NJY - 2.5 * math.log10(njy)
    lo, hi = ZEROPOINT_RANGE
    if not lo <= zp <= hi:
        raise cards.error(f"{said} is an AB zero point of {zp:.1f} mag, not one of an image "
                          f"({lo:g}-{hi:g} mag)")
    return njy


def reconcile_calibration(inputs: Sequence) -> list:
    """The inputs of one coadd with a calibration each, refusing calibrated and uncalibrated mixed.

    Parameters
    ----------
    inputs : sequence
        Objects with ``name`` and ``flux_calibration`` (nJy per image unit, None when the
        file carries none), such as `dcrcoadd.coadd.baseline.CoaddInput`.

    Returns
    -------
    list
        The same inputs (dataclasses are copied with `dataclasses.replace`); when none is
        calibrated, each gets ``flux_calibration = 1`` and one warning says so.

    Raises
    ------
    InputError
        Naming the first uncalibrated input, when others are calibrated.
    """
    inputs = list(inputs)
    missing = [i for i in inputs if i.flux_calibration is None]
    if not missing:
        return inputs
    calibrated = [i for i in inputs if i.flux_calibration is not None]
    if calibrated:
        ref = calibrated[0]
        others = f"{len(calibrated)} other input{'s are' if len(calibrated) > 1 else ' is'}"
        raise InputError(f"has no flux calibration (no FLUXCAL, MAGZERO/MAGZPT or FLUXMAG0 card) while "
                         f"{others} calibrated (e.g. {ref.name}: {ref.flux_calibration:.6g} nJy per image "
                         f"unit); coadding them together would scale this one wrongly: add its FLUXCAL, "
                         f"or leave it out", missing[0].name)
    log.warning("none of the %d inputs carries a flux calibration (FLUXCAL, MAGZERO/MAGZPT or FLUXMAG0): "
                "coadding them in their image units, as if already on one photometric scale",
                len(inputs))
    return [_with_calibration(i, 1.0) for i in inputs]


def _with_calibration(inp, value: float):
    if dataclasses.is_dataclass(inp):
        return dataclasses.replace(inp, flux_calibration=value)
    inp.flux_calibration = value
    return inp


def flux_unit(inputs: Sequence) -> str:
    """What the coadd of ``inputs`` (after `reconcile_calibration`) is in: ``"image"`` when every input
    is a file without a calibration (their image units), else ``"nJy"`` (an exposure in memory is in
    nJy per image unit times its ``flux_calibration``, by `dcrcoadd.core.exposure.Exposure`'s
    definition). ``inputs`` have ``info``: the file's `dcrcoadd.io.fits.ExposureInfo`, None for an
    exposure in memory."""
    infos = [getattr(i, "info", None) for i in inputs]
    if infos and all(info is not None and info.flux_calibration is None for info in infos):
        return "image"
    return "nJy"
