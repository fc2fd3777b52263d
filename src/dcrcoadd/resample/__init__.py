"""Resampling single-epoch exposures onto one tangent-plane grid (``dcrcoadd warp``)."""

from dcrcoadd.resample.grid import Grid, footprint_box, grid_from_file, optimal_grid
from dcrcoadd.resample.warp import (
    DEFAULT_METHOD,
    WarpOutcome,
    choose_grid,
    warp_exposure,
    warp_exposures,
    warp_psf,
)

__all__ = ["DEFAULT_METHOD", "Grid", "WarpOutcome", "choose_grid", "footprint_box", "grid_from_file",
           "optimal_grid", "warp_exposure", "warp_exposures", "warp_psf"]
