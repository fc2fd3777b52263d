"""Filling the coadd's missing pixels (LSST ``processResults`` with ``doInterp``)."""

from __future__ import annotations

import math

import numpy as np

from dcrcoadd.core.exposure import Exposure
from dcrcoadd.ops.stack import clipped_mean


def interpolate_no_data(exposure: Exposure) -> int:
    """Fill NO_DATA pixels in place, as LSST's ``processResults`` with ``doInterp``.

    Each row's NO_DATA pixels are linearly interpolated between the nearest good pixels
    of the row; runs touching the row's ends, and rows without good pixels, get the
    fallback value, the clipped mean of all good pixels (not below zero), as LSST's
    ``InterpImageTask`` with ``useFallbackValueAtEdge``. (LSST's interpolation uses a
    PSF-aware predictor along rows; plain linear interpolation is used here.) Filled pixels
    get INTRP; every variance that is not positive becomes infinite.

    Returns
    -------
    int
        Number of pixels filled.
    """
    planes = exposure.mask_planes
    image, mask = exposure.image, exposure.mask
    no_data = (mask & np.uint32(planes.value_if_present(["NO_DATA"]))) != 0
    bad = no_data | ~np.isfinite(image)
    n_fill = int(np.count_nonzero(bad))
    if n_fill:
        fallback, _, _ = clipped_mean(image[~bad], 3.0, 3)
        fallback = max(fallback, 0.0) if math.isfinite(fallback) else 0.0
        cols = np.arange(image.shape[1])
        for y in np.flatnonzero(bad.any(axis=1)):
            row_bad = bad[y]
            good_x = cols[~row_bad]
            if good_x.size == 0:
                image[y] = fallback
                continue
            image[y, row_bad] = np.interp(cols[row_bad], good_x, image[y, good_x].astype(np.float64),
                                          left=fallback, right=fallback)
        exposure.set_mask("INTRP", bad)
    with np.errstate(invalid="ignore"):
        exposure.variance[~(exposure.variance > 0)] = np.inf
    return n_fill


__all__ = ["interpolate_no_data"]
