"""Noise measured on an image's own sky: its level and scatter, and how far a variance plane is from it.

Sources only add light, so the sky is measured from the low side of the pixel distribution
(`sky_level_and_noise`). What it is used for:

* a variance for images without one (`dcrcoadd.io.pixels`);
* a warp's sky level cell by cell (`dcrcoadd.ops.sky_variation`);
* the factor that brings a product's variance plane to the per-pixel noise it carries
  (`sky_noise_factor`): the DCR coadd, its subfilters and templates are the baseline's data seen
  through the solver and the forward model, which change the noise per pixel in ways the baseline
  coadd's variance does not follow. Measured against noise twins (the same warps with new noise, a
  second run) on simulated fields: the DCR coadd's pixels scattered 3.8-4.0 times what the baseline's
  variance said (7-8 times on crowded fields of 0.5-1.6" seeing: it is the sky seen through the
  reference PSF, sharper than every warp's), its subfilters' 2.3-2.9 times the baseline's / M (up to
  5.4), templates 0.35-1.8 times; measured on their sky pixels, within 0.03-0.1 of the twins'.

Fields detected from edge to edge leave too few sky pixels outside DETECTED; the faintest pixels by a
reference's light are measured instead: the baseline coadd's for the DCR coadd and its subfilters,
the model's own for a template. A template may be rendered at a PSF far wider than the model's, whose
sources' wings reach the faintest fifth, so its faintest 2 % are measured (`TEMPLATE_FAINT_FRACTION`),
and where even those hold light (`LIT_LEVEL`) the variance plane bounds the factor. On nine simulated
crowded or wide-seeing fields (150-800 stars on 256² px, 60-100 on 128², 0.5-1.6" seeing; 24 science
visits), the scatter of two templates from noise twins over their variances, 1 when right, was
0.14-1.87 with the plane as it was (sharp science PSFs 1.5-1.9) and is 0.15-1.36 now (sharp ones
0.91-1.03); values below 1 remain where wide PSFs light every pixel (the variance is then overstated).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from dcrcoadd.core.masks import MaskPlanes

__all__ = ["LIT_LEVEL", "MIN_SKY_PIXELS", "TEMPLATE_FAINT_FRACTION", "sky_level_and_noise",
           "sky_noise_factor"]

#: Sky pixels needed to measure a variance factor (its error is then about 1.3 / sqrt(2 * 2000) of it).
MIN_SKY_PIXELS = 2000
#: Sky pixels a variance factor is measured on at most (evenly spaced): its error is then 0.3 %.
FACTOR_SAMPLES = 100_000
#: A variance factor is kept within [1 / `FACTOR_LIMIT`, `FACTOR_LIMIT`]: beyond, the measurement is
#: of something else (a noiseless simulation). Not less: a DCR coadd of four warps of 0.5-1.6" seeing
#: carried 50 times the baseline's variance (noise twins), templates at a 12-px PSF 0.007 times.
FACTOR_LIMIT = 1000.0
#: Without enough pixels outside DETECTED, the faintest this fraction of the pixels are measured, by
#: their signal-to-noise smoothed over `FAINT_SMOOTHING` px (sigma of a Gaussian).
FAINT_FRACTION = 0.2
FAINT_SMOOTHING = 3.0
#: `FAINT_FRACTION` for a template, which may be rendered at a PSF far wider than the reference it is
#: chosen by, so that its sources' wings reach the faintest fifth (module notes).
TEMPLATE_FAINT_FRACTION = 0.02
#: The faintest pixels hold light when their level (the sky's is 0) is above this many times their
#: scatter: 0.96 at most on the probes' fields where what they measured was noise, 1.9-2.7 where
#: the wings of a template at a wide PSF filled them (module notes).
LIT_LEVEL = 1.5
#: Pixels more than this many sigma above the sky are left out of its level and noise (sources).
_SKY_CLIP_UPPER = 2.0
#: Fraction of the Gaussian sky's pixels one sigma or more below its level.
_ONE_SIGMA_BELOW = 0.15865525393145707


def sky_level_and_noise(values: np.ndarray, iterations: int = 20) -> tuple[float, float]:
    """Level and standard deviation of the sky among an image's pixel values.

    Sources only add light, so the sky is measured from its low side: pixels more than
    `_SKY_CLIP_UPPER` sigma above the level are left out, and from the rest, as from a Gaussian
    cut there, the level is their quantile that holds half of the uncut Gaussian's values and
    sigma the distance down to the one that holds 15.9 %; repeated until it settles. The normalised median
    absolute deviation of all the pixels, used before, counts the sources' wings as noise:
    measured on simulated fields, 30 and 73 where the sky's noise was 23 and 25 (a variance 1.8
    and 8 times too large); this gives 24 and 31.
    """
    good = np.asarray(values, dtype=np.float64)
    if good.size == 0:
        return float("nan"), float("nan")
    level = float(np.median(good))
    sigma = 1.4826 * float(np.median(np.abs(good - level)))
    # (a Gaussian cut at +c sigma keeps the fraction Φ(c) of its values: half of all, its level's
    # share, is the fraction 0.5 / Φ(c) of those kept, and those one sigma below it 0.159 / Φ(c))
    kept_fraction = 0.5 * (1.0 + math.erf(_SKY_CLIP_UPPER / math.sqrt(2.0)))
    at_level, one_below = 0.5 / kept_fraction, _ONE_SIGMA_BELOW / kept_fraction
    for _ in range(iterations):
        if not sigma > 0:
            break
        kept = good[good < level + _SKY_CLIP_UPPER * sigma]
        if kept.size < 100:
            break
        new_level, low = (float(q) for q in np.quantile(kept, [at_level, one_below]))
        new_sigma = new_level - low
        settled = abs(new_level - level) < 1e-3 * sigma and abs(new_sigma - sigma) < 1e-3 * sigma
        level, sigma = new_level, new_sigma
        if settled:
            break
    return level, sigma


def sky_noise_factor(image: np.ndarray, variance: np.ndarray, mask: np.ndarray, planes: MaskPlanes, *,
                     reference: tuple[np.ndarray, np.ndarray] | None = None,
                     faint_fraction: float = FAINT_FRACTION, lit_bound: float | None = None) -> float | None:
    """The factor that brings ``variance`` to the per-pixel noise of ``image``; None when it cannot be
    measured (fewer than `MIN_SKY_PIXELS` usable pixels).

    Its sky pixels are finite, with a positive variance, without NO_DATA or EDGE (no data, or what is
    missing from it), and outside the DETECTED footprints when ``planes`` has them. Where those leave
    too few (a field crowded from edge to edge, DETECTED on all of it) and a ``reference`` (image and
    variance, e.g. the baseline coadd) is given, the faintest ``faint_fraction`` of the pixels
    (`MIN_SKY_PIXELS` at least) by its S/N smoothed over `FAINT_SMOOTHING` px (nearest 0: a sharp
    reference's negative rings are no sky) are measured instead, so that the choice does not follow
    the pixels' own noise: on simulated fields of 600 and 800 stars on 256² px, where DETECTED covered
    every pixel, and of bright stars on 160² px (97 %), that measured the DCR coadd's noise within 2 %
    of noise twins', its subfilters' within 10 %. Those faintest pixels may
    still hold light (their level above `LIT_LEVEL` times their scatter), whose spread adds to the
    noise's: the factor measured there is then at most ``lit_bound`` when one is given (an image known
    to carry no more noise than that where its light is so wide).
    """
    good = np.isfinite(image) & np.isfinite(variance) & (variance > 0)
    bad = planes.value_if_present(("NO_DATA", "EDGE"))
    if bad:
        good &= (mask & np.uint32(bad)) == 0
    detected = planes.value_if_present(("DETECTED",))
    sky = good & ((mask & np.uint32(detected)) == 0) if detected else good
    where = np.flatnonzero(sky)
    faintest = where.size < MIN_SKY_PIXELS and reference is not None \
        and np.count_nonzero(good) >= 2 * MIN_SKY_PIXELS
    if faintest:
        # (sources' light among the few pixels outside DETECTED is no measure of noise: templates from
        # two models of a 96-px field, DETECTED on 97.5 % of it, gave 11.2 and 12.3 over all pixels; the
        # faintest fifth by a template's own smoothed S/N, 25-1000 on a field of 15.5-20 mag stars)
        ref_image, ref_variance = reference
        with np.errstate(invalid="ignore", divide="ignore"):
            snr = np.where(good, ref_image / np.sqrt(ref_variance), 0.0)
        smooth = ndimage.gaussian_filter(np.nan_to_num(snr), FAINT_SMOOTHING).reshape(-1)
        usable = np.flatnonzero(good & np.isfinite(snr))  # (not where the reference has no value)
        n = max(int(faint_fraction * usable.size), MIN_SKY_PIXELS)
        faint = np.argpartition(np.abs(smooth[usable]), n - 1)[:n] if usable.size > n else slice(None)
        where = np.sort(usable[faint])
    if where.size < MIN_SKY_PIXELS:
        return None
    where = where[::max(1, where.size // FACTOR_SAMPLES)]  # (a CCD's 8 million took seconds of quantiles)
    level, sigma = sky_level_and_noise(image.reshape(-1)[where] / np.sqrt(variance.reshape(-1)[where]))
    if not (math.isfinite(sigma) and sigma > 0):
        return None
    factor = sigma * sigma
    if faintest and lit_bound is not None and level > LIT_LEVEL * sigma:
        factor = min(factor, lit_bound)
    return float(np.clip(factor, 1.0 / FACTOR_LIMIT, FACTOR_LIMIT))
