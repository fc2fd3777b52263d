"""Bright-object masks on the coadd (LSST ``setBrightObjectMasks``): regions read from a table."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from astropy.table import Table
from astropy.wcs.utils import proj_plane_pixel_scales

from dcrcoadd.core.exposure import Exposure
from dcrcoadd.errors import InputError


def read_bright_object_masks(path: str | os.PathLike) -> Table:
    """Read a bright-object region table (ECSV or CSV).

    Columns: ``ra``, ``dec`` (deg); ``radius`` (arcsec) for circles; optional ``type``
    (``circle`` or ``box``) with ``width``, ``height`` (arcsec) and ``angle`` (must be 0)
    for boxes. Unitless columns are taken in those units.

    Raises
    ------
    InputError
        If the file is unreadable or lacks needed columns.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("bright-object mask file does not exist", path)
    fmt = "ascii.ecsv" if path.suffix.lower() == ".ecsv" else "ascii.csv"
    try:
        table = Table.read(path, format=fmt)
    except Exception as exc:  # noqa: BLE001 - astropy readers raise many kinds
        raise InputError(f"not a readable {fmt[6:].upper()} table ({exc})", path) from None
    names = {n.lower(): n for n in table.colnames}
    for col in ("ra", "dec"):
        if col not in names:
            raise InputError(f"bright-object table has no {col!r} column "
                             f"(columns: {', '.join(table.colnames)})", path)
    table.rename_columns([names[n] for n in names], list(names))
    if "type" not in table.colnames:
        table["type"] = "circle"
    types = {str(t).lower() for t in table["type"]}
    if not types <= {"circle", "box"}:
        raise InputError(f"bright-object type must be circle or box, got {sorted(types)}", path)
    if "circle" in types and "radius" not in table.colnames:
        raise InputError("bright-object table has circles but no 'radius' column", path)
    if "box" in types and not {"width", "height"} <= set(table.colnames):
        raise InputError("bright-object table has boxes but no 'width'/'height' columns", path)
    kinds = np.array([str(t).lower() for t in table["type"]])
    for col, kind in (("radius", "circle"), ("width", "box"), ("height", "box")):
        if col in table.colnames:
            values = _value(table, col, "arcsec")[kinds == kind]
            bad = ~(np.isfinite(values) & (values > 0))
            if bad.any():
                raise InputError(f"bright-object {col} must be a positive size (arcsec), got "
                                 f"{values[bad][0]:g} in {int(bad.sum())} {kind} row(s)", path)
    return table


def _value(table: Table, col: str, unit: str) -> np.ndarray:
    c = table[col]
    if getattr(c, "unit", None) is not None:
        return np.asarray(c.quantity.to_value(unit), float)
    return np.asarray(c, float)


def set_bright_object_masks(exposure: Exposure, table: Table, plane: str = "BRIGHT_OBJECT") -> int:
    """Set ``plane`` inside each bright-object region (LSST ``setBrightObjectMasks``).

    Circles cover pixels within ``int(radius / pixel scale)`` of the rounded centre; boxes span
    ``int(c - w/2) .. int(c + w/2)`` inclusive. Returns the number of pixels set.
    """
    if exposure.wcs is None:
        raise InputError("the coadd has no WCS, so bright-object positions cannot be placed")
    scale = float(np.mean(proj_plane_pixel_scales(exposure.wcs.celestial))) * 3600.0  # arcsec / px
    ra, dec = _value(table, "ra", "deg"), _value(table, "dec", "deg")
    xs, ys = exposure.wcs.world_to_pixel_values(ra, dec)
    ny, nx = exposure.shape
    hit = np.zeros((ny, nx), bool)
    yy, xx = np.mgrid[:ny, :nx]
    for i, kind in enumerate(str(t).lower() for t in table["type"]):
        if not (np.isfinite(xs[i]) and np.isfinite(ys[i])):
            continue
        cx, cy = int(np.floor(xs[i] + 0.5)), int(np.floor(ys[i] + 0.5))
        if kind == "box":
            if "angle" in table.colnames and float(table["angle"][i]) != 0.0:
                raise InputError(f"bright-object box {i} has a non-zero angle, which is not supported")
            w = _value(table, "width", "arcsec")[i] / scale
            h = _value(table, "height", "arcsec")[i] / scale
            x0, x1 = int(xs[i] - 0.5 * w), int(xs[i] + 0.5 * w)
            y0, y1 = int(ys[i] - 0.5 * h), int(ys[i] + 0.5 * h)
            hit[max(y0, 0):max(y1 + 1, 0), max(x0, 0):max(x1 + 1, 0)] = True
        else:
            r = int(_value(table, "radius", "arcsec")[i] / scale)
            hit |= (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    exposure.set_mask(plane, hit)
    return int(np.count_nonzero(hit))


__all__ = ["read_bright_object_masks", "set_bright_object_masks"]
