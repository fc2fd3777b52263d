"""The template's variance: the model's, scaled to the noise its rendering actually carries.

A template is the model's subfilter images forward-modelled to one visit: shifted by that visit's DCR
and brought to its PSF. Both change the noise per pixel in ways the model's variance plane (the
baseline coadd's, ``M`` times a subfilter's) does not follow: bringing the model to a sharper PSF than
its warps' amplifies its noise, to a wider one smooths it, and extrapolating the DCR weighs the
subfilters' differences, which are noisier than their sum. Measured with noise twins (the same warps
with new noise, a second model, two templates): the per-pixel noise was 0.35-1.8 times what the
variance plane said on simulated fields, and science − template's χ² per source pixel 0.91-1.35
where it should be 1 (1.00-1.06 with the variance scaled as below).

What the rendering carries is measured on its own sky: the pixels outside the model's DETECTED
footprints, from the low side of their distribution in units of the variance plane (sources only add
light; `dcrcoadd.io.pixels.sky_level_and_noise`). On those fields that measurement agreed with the
twins' to 0.03. The factor is one number per rendering; the plane keeps its shape (the warps' coverage).
"""

from __future__ import annotations

import math

import numpy as np

from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.io.pixels import sky_level_and_noise

__all__ = ["MIN_SKY_PIXELS", "rendered_noise_factor"]

#: Sky pixels needed to measure the factor (its error is then about 1.3 / sqrt(2 * 2000) of it).
MIN_SKY_PIXELS = 2000
#: The factor is kept within [1 / `FACTOR_LIMIT`, `FACTOR_LIMIT`]: beyond, the measurement is
#: of something else (a noiseless simulation, a sky that is not flat).
FACTOR_LIMIT = 25.0


def rendered_noise_factor(image: np.ndarray, variance: np.ndarray, mask: np.ndarray,
                          planes: MaskPlanes) -> float:
    """The factor that brings ``variance`` to the per-pixel noise of the rendered ``image`` (1 when it
    cannot be measured: fewer than `MIN_SKY_PIXELS` sky pixels).

    Sky pixels are finite, with a positive variance, outside the DETECTED footprints (when the model
    has them), and without NO_DATA or EDGE (no data, or what is missing from it).
    """
    good = np.isfinite(image) & np.isfinite(variance) & (variance > 0)
    bad = planes.value_if_present(("NO_DATA", "EDGE"))
    if bad:
        good &= (mask & np.uint32(bad)) == 0
    detected = planes.value_if_present(("DETECTED",))
    if detected:
        # (on a crowded field, sources' light among the few pixels left is no measure of noise: two models
        # of a 96-px field, DETECTED on 97.5 % of it, from the same warps with new noise gave 11.2 and 12.3
        # over all pixels, 0.34 and 0.69 for another visit)
        good &= (mask & np.uint32(detected)) == 0
    if np.count_nonzero(good) < MIN_SKY_PIXELS:
        return 1.0
    _, sigma = sky_level_and_noise(image[good] / np.sqrt(variance[good]))
    if not (math.isfinite(sigma) and sigma > 0):
        return 1.0
    return float(np.clip(sigma * sigma, 1.0 / FACTOR_LIMIT, FACTOR_LIMIT))
