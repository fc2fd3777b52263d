"""The one tangent-plane pixel grid that ``dcrcoadd warp`` resamples exposures onto.

A grid is a pixel lattice on the sky: a celestial WCS of its *parent* pixel
coordinates (0-based), as a coadd's parent grid in LSST's sense. Each warp
covers the box of the lattice its exposure's footprint touches, with that
box's first pixel as its ``origin`` (``LTV1/LTV2``), so warps of different
exposures are different boxes of one grid and ``assemble`` stacks them
without resampling again.

Two ways to choose it:

- `optimal_grid`: reproject's ``find_optimal_celestial_wcs`` over the inputs'
  footprints: a north-up gnomonic (TAN) projection about the mean of the
  inputs' reference points, at the finest input pixel scale (or a given one),
  with parent pixel (0, 0) at the lower left corner of the union of the
  footprints (so `Grid.bbox` covers every input);
- `grid_from_file`: the celestial WCS of any FITS file (an earlier warp, a
  coadd, ...), with its ``LTV1/LTV2`` origin, so new warps land on the same
  lattice as the file's. The lattice is not clipped to the file's extent:
  a warp covers its whole exposure (restrict the coadd with ``assemble --box``);
- `patch_grid`: a patch, ``--center`` and ``--size`` (SWarp's ``CENTER`` and
  ``IMAGE_SIZE``): a north-up TAN grid about a sky position, to whose box the
  warps are cut; exposures that miss it are skipped.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import pixel_to_pixel, proj_plane_pixel_scales

from dcrcoadd.core.exposure import shift_wcs
from dcrcoadd.core.geom import Box
from dcrcoadd.errors import InputError

__all__ = ["Grid", "footprint_box", "grid_from_file", "optimal_grid", "patch_grid", "pixel_scale_arcsec"]

log = logging.getLogger("dcrcoadd.resample.grid")


@dataclass(frozen=True, eq=False)
class Grid:
    """A pixel lattice on the sky.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        Celestial WCS of the parent grid's 0-based pixels.
    bbox : Box, optional
        The grid's nominal extent (all inputs for `optimal_grid`, the file's
        pixels for `grid_from_file`); warps are not clipped to it.
    source : str
        Where the grid came from, for logs and messages.
    clip : bool
        Warps are cut to ``bbox`` (a patch, `patch_grid`), and exposures that miss it skipped.
    """

    wcs: WCS
    bbox: Box | None = None
    source: str = "grid"
    clip: bool = False

    def __post_init__(self):
        # The grid travels to worker processes as header text (how astropy pickles a WCS), which
        # rounds it; taking the WCS from that same text here, and sending the text itself, gives
        # every executor the bit-identical grid, hence bit-identical warps.
        header = self.wcs.celestial.to_header_string(relax=True)
        object.__setattr__(self, "_header", header)
        object.__setattr__(self, "wcs", _wcs_from_header(header))

    def __reduce__(self):
        return (_restore_grid, (self._header, self.bbox, self.source, self.clip))

    @property
    def pixel_scale(self) -> float:
        """Mean pixel side in arcseconds."""
        return pixel_scale_arcsec(self.wcs)

    def wcs_for(self, box: Box) -> WCS:
        """WCS of the array covering ``box`` of the grid (its pixel [0, 0] is the box's first)."""
        return shift_wcs(self.wcs, -box.x0, -box.y0)

    def describe(self) -> str:
        centre = self.wcs.pixel_to_world_values(*((0.0, 0.0) if self.bbox is None else
                                                  (self.bbox.center[0], self.bbox.center[1])))
        extent = "" if self.bbox is None else f", {self.bbox.width}x{self.bbox.height} px"
        return (f"{'/'.join(self.wcs.wcs.ctype)} grid from {self.source}: {self.pixel_scale:.4f} arcsec/px"
                f"{extent}, centre RA {float(centre[0]):.6f} Dec {float(centre[1]):+.6f} deg")


def _wcs_from_header(text: str) -> WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(fits.Header.fromstring(text), naxis=2)


def _restore_grid(header: str, bbox: Box | None, source: str, clip: bool = False) -> Grid:
    grid = object.__new__(Grid)
    for name, value in (("wcs", _wcs_from_header(header)), ("_header", header), ("bbox", bbox),
                        ("source", source), ("clip", clip)):
        object.__setattr__(grid, name, value)
    return grid


def pixel_scale_arcsec(wcs: WCS) -> float:
    """Mean pixel side of a celestial WCS at its reference point, in arcseconds."""
    return float(np.mean(proj_plane_pixel_scales(wcs.celestial))) * 3600.0


def _as_arcsec(pixel_scale: u.Quantity | float) -> float:
    """A pixel scale as arcseconds: an angle Quantity, or a plain number meaning arcseconds."""
    if isinstance(pixel_scale, u.Quantity):
        try:
            value = float(pixel_scale.to_value(u.arcsec))
        except u.UnitConversionError:
            raise InputError(f"pixel scale must be an angle, got {pixel_scale}", "warp") from None
    else:
        value = float(pixel_scale)
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"pixel scale must be a positive number of arcseconds, got {pixel_scale}", "warp")
    return value


def optimal_grid(footprints: Sequence[tuple[tuple[int, int], WCS]], *,
                 pixel_scale: u.Quantity | float | None = None) -> Grid:
    """The grid reproject's ``find_optimal_celestial_wcs`` chooses for the given footprints.

    Parameters
    ----------
    footprints : sequence of ((ny, nx), WCS)
        Each input's array shape and celestial WCS.
    pixel_scale : Quantity or float, optional
        Pixel side of the grid (an angle, or arcseconds); default the finest
        input scale.

    Returns
    -------
    Grid
        North-up TAN grid whose `Grid.bbox` (from parent pixel 0) covers every footprint.
    """
    if not footprints:
        raise InputError("no exposures with a WCS to choose a grid from", "warp")
    try:
        from reproject.mosaicking import find_optimal_celestial_wcs
    except ImportError:  # pragma: no cover - the extra is part of the test environment
        raise InputError("choosing a grid needs reproject: install dcrcoadd[resample]", "warp") from None
    resolution = None if pixel_scale is None else _as_arcsec(pixel_scale) * u.arcsec
    wcs, (ny, nx) = find_optimal_celestial_wcs([(tuple(shape), w.celestial) for shape, w in footprints],
                                               resolution=resolution, projection="TAN")
    return Grid(wcs=wcs, bbox=Box(0, 0, int(nx), int(ny)), source="the inputs' footprints")


def patch_grid(ra: float, dec: float, size: tuple[int, int], pixel_scale: u.Quantity | float) -> Grid:
    """A patch: a north-up gnomonic (TAN) grid of ``size = (nx, ny)`` pixels of ``pixel_scale``
    (an angle, or arcseconds) centred on ``(ra, dec)`` (degrees), to which warps are cut (`Grid.clip`).

    Raises
    ------
    InputError
        A centre off the sky or a size that is not a positive number of pixels (below `_MAX_PATCH_SIDE`).
    """
    if not (math.isfinite(ra) and math.isfinite(dec) and -90.0 <= dec <= 90.0):
        raise InputError(f"centre (RA {ra}, Dec {dec}) is not on the sky: RA and Dec in degrees, Dec within "
                         "+-90", "--center")
    nx, ny = (int(v) for v in size)
    if not (0 < nx <= _MAX_PATCH_SIDE and 0 < ny <= _MAX_PATCH_SIDE) or (nx, ny) != tuple(size):
        raise InputError(f"patch size {size} must be whole numbers of pixels from 1 to {_MAX_PATCH_SIDE}",
                         "--size")
    scale = _as_arcsec(pixel_scale) / 3600.0
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra % 360.0, dec]
    wcs.wcs.crpix = [(nx + 1) / 2.0, (ny + 1) / 2.0]  # (FITS 1-based: the centre of the patch)
    wcs.wcs.cdelt = [-scale, scale]  # north up, east left
    wcs.wcs.radesys = "ICRS"
    return Grid(wcs=wcs, bbox=Box(0, 0, nx, ny), source=f"the patch about RA {ra % 360.0:.6f} Dec {dec:+.6f}",
                clip=True)


#: Largest side of a patch (`patch_grid`), in pixels: a 65536² float32 plane is 16 GiB.
_MAX_PATCH_SIDE = 65536


def _celestial_wcs(header: fits.Header) -> WCS | None:
    if "CTYPE1" not in header:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(header, naxis=2)
    return wcs if wcs.has_celestial else None


def grid_from_file(path: str | os.PathLike) -> Grid:
    """The grid of a FITS file with a celestial WCS (a warp, a coadd, any image).

    The WCS is taken from the extension named (or, as the LSST stack writes,
    with ``EXTTYPE``) ``IMAGE`` if there is one, else from the first HDU whose
    header has a celestial WCS; ``LTV1/LTV2`` there place its pixels on the
    parent grid.

    Raises
    ------
    InputError
        The file is missing or unreadable, or no HDU has a celestial WCS.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("grid file does not exist" if not path.exists() else "grid file is not a file", path)
    try:
        with fits.open(path, memmap=True) as hdul:
            headers = [(h.header, h.shape if h.is_image else None) for h in hdul]
            named = [i for i, h in enumerate(hdul)
                     if "IMAGE" in (h.name.upper(), str(h.header.get("EXTTYPE", "")).upper())]
    except Exception as exc:  # astropy raises many types on corrupt files
        reason = str(exc).split(". ")[0].rstrip(".")
        raise InputError(f"not a readable FITS file ({reason})", path) from None
    order = named + [i for i in range(len(headers)) if i not in named]
    for i in order:
        header, shape = headers[i]
        try:
            wcs = _celestial_wcs(header)
        except Exception as exc:  # invalid WCS cards
            raise InputError(f"invalid WCS in HDU {i} ({exc})", path) from None
        if wcs is None:
            continue
        x0, y0 = -int(round(header.get("LTV1", 0))), -int(round(header.get("LTV2", 0)))
        bbox = Box(x0, y0, int(shape[-1]), int(shape[-2])) if shape and len(shape) >= 2 else None
        return Grid(wcs=shift_wcs(wcs.celestial, x0, y0), bbox=bbox, source=str(path))
    raise InputError("no HDU has a celestial WCS to take the grid from", path)


def footprint_box(grid: Grid, wcs: WCS, shape: tuple[int, int]) -> Box:
    """Box of the grid's pixels that the footprint of a ``shape`` array with ``wcs`` touches.

    The footprint's outline (every pixel edge along the array's border) is
    mapped onto the grid; the box spans the grid pixels containing it.

    Raises
    ------
    ValueError
        Where the outline does not map onto the grid (beyond its projection).
    """
    ny, nx = shape
    xs, ys = np.arange(nx + 1.0) - 0.5, np.arange(ny + 1.0) - 0.5
    bx = np.concatenate([xs, xs, np.full(ny + 1, -0.5), np.full(ny + 1, nx - 0.5)])
    by = np.concatenate([np.full(nx + 1, -0.5), np.full(nx + 1, ny - 0.5), ys, ys])
    gx, gy = (np.asarray(c, dtype=float) for c in pixel_to_pixel(wcs, grid.wcs, bx, by))
    if not (np.all(np.isfinite(gx)) and np.all(np.isfinite(gy))):
        raise ValueError("the footprint does not map onto the grid")
    # grid pixel k spans [k - 0.5, k + 0.5); an outline merely touching a pixel's edge (within
    # rounding) does not take it in, so a grid equal to the input's gives the input's own box
    eps = 1e-6
    return Box.from_corners(math.floor(gx.min() + 0.5 + eps), math.floor(gy.min() + 0.5 + eps),
                            math.ceil(gx.max() + 0.5 - eps), math.ceil(gy.max() + 0.5 - eps))
