"""Text for ``dcrcoadd info``: the calibration of a file and where each derived value came from."""

from __future__ import annotations

from dcrcoadd.io.fits import ExposureInfo

__all__ = ["provenance_lines"]

_LABEL = "{:<13s}"


def provenance_lines(info: ExposureInfo) -> list[str]:
    """``calibration:`` and ``from:`` lines of ``dcrcoadd info`` (same layout as its other lines).

    The calibration says its card, or that the file has none; the ``from:`` lines are
    `ExposureInfo.notes`: the layout and instrument preset, and for every looked-up or
    derived quantity the card (or computation) it came from.
    """
    if info.flux_calibration is None:
        lines = [_LABEL.format("calibration:") + "none (no FLUXCAL, MAGZERO/MAGZPT or FLUXMAG0): image units"]
    else:
        lines = [_LABEL.format("calibration:") + f"{info.flux_calibration:g} nJy per image unit "
                 f"({info.calibration_card})"]
    for i, note in enumerate(info.notes):
        lines.append(_LABEL.format("from:" if i == 0 else "") + note)
    return lines
