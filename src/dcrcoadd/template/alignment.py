"""Does the template lie where the science exposure's sources are? A check of the two WCSs.

A template is rendered on the science exposure's grid through its WCS and the model's. Either one
off by a fraction of a pixel puts every source of the difference image in a dipole: a science CRVAL
0.05" (0.25 px) off gave 14 false detections on a 96-px field, 0.3" gave 44, and nothing said why.
The shift that best maps each bright isolated star of the template onto the science exposure is
fitted (flux, sky and a sub-pixel shift, by Gauss-Newton on a cubic-spline shift of the template's
stamp); the median over the stars is the offset of the two grids. A star's own DCR error (its colour
against the model's) moves it alone, so the median does not follow it. A crowded field, where few stars
stand alone, is measured on its blends (the template's stamp holds the neighbours too): a 96-px field of
400 stars had one isolated star, and its WCS 0.3" off left 90 false detections with no word. With fewer
than `MIN_STARS` bright stars nothing is measured, and the user is told.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from astropy.wcs.utils import proj_plane_pixel_scales
from scipy import ndimage

from dcrcoadd.core.exposure import Exposure
from dcrcoadd.errors import InputError
from dcrcoadd.ops.psf_measure import isolated_peaks

log = logging.getLogger("dcrcoadd.template.alignment")

#: Stars used: isolated, above this many sigma per pixel (of the science noise) in the template, at most
#: `MAX_STARS` of the brightest.
STAR_SNR = 20.0
MAX_STARS = 200
#: Fewer stars than this measure nothing.
MIN_STARS = 5
#: An offset larger than this (science pixels), and `SIGNIFICANCE` times its standard error, is warned
#: about. Honest: at most 0.02 px on the held-out visits of the 14 fields of ``python -m
#: benchmarks.scenarios`` (seeds 1 and 2; their plain coadds, with no DCR correction, lie up to 0.34 px
#: off), while a good astrometric calibration leaves some 10 mas (0.05 px on 0.2" pixels).
WARN_OFFSET = 0.1
SIGNIFICANCE = 5.0
#: Beyond this offset (px) the template is refused: a science CRVAL 0.3" (1.5 px) off gave 44 false
#: detections on a 96-px field, and no model mispredicts a visit's DCR by a pixel for most stars.
MAX_OFFSET = 1.0
#: A star's stamp reaches this many FWHM from its peak (at least `MIN_HALF_SIZE` px), and the science
#: exposure's star is looked for up to `SEARCH` px from the template's.
STAMP_FWHM = 1.5
MIN_HALF_SIZE = 4
SEARCH = 8
#: Gauss-Newton steps per star (each moves the template's stamp by the shift found so far).
STEPS = 5


@dataclass(frozen=True)
class SourceOffset:
    """Where the science exposure's stars lie against the template's, in science pixels: the median
    over ``n_stars`` stars of the fitted shift (science minus template), and its standard error."""

    dx: float
    dy: float
    error: float
    n_stars: int
    n_candidates: int = 0  # isolated bright stars of the template looked for

    @property
    def lost(self) -> bool:
        """Whether most of the template's stars were not found near their places in the science
        exposure (a WCS off by more than `SEARCH` px, or another field)."""
        return self.n_candidates >= MIN_STARS and self.n_stars < self.n_candidates / 3

    @property
    def size(self) -> float:
        return math.hypot(self.dx, self.dy)

    @property
    def measured(self) -> bool:
        return self.n_stars >= MIN_STARS and math.isfinite(self.size)


def _fit_star(science: np.ndarray, weight: np.ndarray, template: np.ndarray, pad: int) -> tuple[float, float]:
    """Shift ``(dy, dx)`` that maps ``template`` (a stamp ``pad`` px larger on each side) onto
    ``science``, with a free flux scale and sky; NaN when the fit leaves the stamp or fails."""
    dy = dx = 0.0
    inner = (slice(pad, -pad), slice(pad, -pad))
    for _ in range(STEPS):
        model = ndimage.shift(template, (dy, dx), order=3, mode="nearest")[inner]
        gy, gx = np.gradient(model)
        design = np.stack([model, np.ones_like(model), gy, gx], axis=-1).reshape(-1, 4)
        w = weight.ravel()
        normal = design.T @ (design * w[:, None])
        try:
            a, _, u, v = np.linalg.solve(normal, design.T @ (science.ravel() * w))
        except np.linalg.LinAlgError:
            return math.nan, math.nan
        if not a > 0:
            return math.nan, math.nan
        # a·T(x − d − e) ≈ a·T(x − d) − a·e·∇T(x − d): the gradient's coefficients are −a·e
        step_y, step_x = -u / a, -v / a
        dy, dx = dy + step_y, dx + step_x
        if max(abs(dy), abs(dx)) > pad:
            return math.nan, math.nan
        if max(abs(step_y), abs(step_x)) < 1e-3:
            break
    return dy, dx


def _local_peaks(template: np.ndarray, snr: np.ndarray, good: np.ndarray, half: int) -> list[tuple[int, int]]:
    """Pixels of ``template`` at least `STAR_SNR` sigma that are the brightest within ``half`` px (of
    ``snr``, over the ``good`` pixels), brightest first."""
    with np.errstate(invalid="ignore"):
        bright = good & (snr >= STAR_SNR)
    ys, xs = np.nonzero(bright)
    if not ys.size:
        return []
    # (only the box that holds them is filtered: few pixels of a CCD are this bright)
    y0, y1 = max(ys.min() - half, 0), ys.max() + half + 1
    x0, x1 = max(xs.min() - half, 0), xs.max() + half + 1
    box = np.where(good[y0:y1, x0:x1], snr[y0:y1, x0:x1], -np.inf)
    top = ndimage.maximum_filter(box, size=2 * half + 1, mode="constant", cval=-np.inf)
    on = box[ys - y0, xs - x0] == top[ys - y0, xs - x0]
    ys, xs = ys[on], xs[on]
    order = np.argsort(template[ys, xs], kind="stable")[::-1]
    return [(int(ys[i]), int(xs[i])) for i in order]


def source_offset(science: np.ndarray, template: np.ndarray, variance: np.ndarray, good: np.ndarray,
                  fwhm: float) -> SourceOffset:
    """The offset of ``science``'s stars from ``template``'s (same grid; ``variance`` the science
    exposure's; ``good`` the pixels both have; ``fwhm`` the PSF's in pixels, NaN if not known).

    Stars: `isolated_peaks` of the template at `STAR_SNR` science sigma, whose stamps hold only good
    pixels; in a field too crowded for `MIN_STARS` of them, the brightest pixels within their stamps
    (blends: the template's stamp holds the neighbours too). Each is first placed to the pixel (the
    science exposure's brightest pixel within `SEARCH` px of the template's peak, as the median over the
    stars), then fitted (`_fit_star`)."""
    good = good & np.isfinite(science) & np.isfinite(template) & np.isfinite(variance) & (variance > 0)
    # (per-pixel significance in the images' own precision: a CCD's planes are not copied to float64)
    snr = np.zeros(template.shape, np.result_type(template.dtype, variance.dtype, np.float32))
    np.divide(template, np.sqrt(variance, where=good, out=np.ones_like(snr)), where=good, out=snr)
    fwhm = fwhm if math.isfinite(fwhm) and fwhm > 0 else 4.0
    half = max(MIN_HALF_SIZE, math.ceil(STAMP_FWHM * fwhm))
    pad = SEARCH + 1
    reach = half + pad  # (the template's stamp, with room for the shift, and the search window)
    ny, nx = science.shape

    def usable(peaks: list[tuple[int, int]]) -> list[tuple[int, int]]:
        return [(py, px) for py, px in peaks if reach <= py < ny - reach and reach <= px < nx - reach
                and good[py - reach:py + reach + 1, px - reach:px + reach + 1].all()][:MAX_STARS]

    peaks = usable(isolated_peaks(template, None, ~good, 2 * half + 1, threshold=STAR_SNR, min_pixels=1,
                                  snr=snr))
    if len(peaks) < MIN_STARS:
        # a crowded field: blends too (a star's stamp of the template holds its neighbours as well)
        peaks = usable(_local_peaks(template, snr, good, half))
    if len(peaks) < MIN_STARS:
        return SourceOffset(math.nan, math.nan, math.nan, 0, len(peaks))
    # to the pixel first: the science's brightest pixel near each template peak
    coarse = []
    for py, px in peaks:
        window = science[py - SEARCH:py + SEARCH + 1, px - SEARCH:px + SEARCH + 1]
        iy, ix = np.unravel_index(int(np.argmax(window)), window.shape)
        coarse.append((iy - SEARCH, ix - SEARCH))
    oy, ox = (int(round(float(v))) for v in np.median(np.array(coarse), axis=0))
    shifts = []
    for py, px in peaks:
        cy, cx = py + oy, px + ox
        cut = (slice(cy - half, cy + half + 1), slice(cx - half, cx + half + 1))
        stamp = template[py - half - pad:py + half + pad + 1, px - half - pad:px + half + pad + 1]
        dy, dx = _fit_star(science[cut].astype(np.float64), 1.0 / variance[cut].astype(np.float64),
                           stamp.astype(np.float64), pad)
        if math.isfinite(dy):
            shifts.append((dy + oy, dx + ox))
    if len(shifts) < MIN_STARS:
        return SourceOffset(math.nan, math.nan, math.nan, len(shifts), len(peaks))
    dys, dxs = np.array(shifts).T
    dy, dx = float(np.median(dys)), float(np.median(dxs))
    # (the median's standard error: 1.25 times the mean's; the scatter per axis from the median distance)
    spread = float(np.median(np.hypot(dys - dy, dxs - dx))) / math.sqrt(2 * math.log(2))
    return SourceOffset(dx, dy, 1.2533 * spread / math.sqrt(len(shifts)), len(shifts), len(peaks))


#: Where too few stars are measured, the whole images are cross-correlated up to this many px apart
#: (`grid_shift`): a cut-out whose CRPIX was not updated with its LTV, 20 and 30 px off, was blamed on its
#: FLUXCAL (its fluxes 2.3 times its template's, three stars bright enough for the star check).
CROSS_SEARCH = 64
#: A shift of at least `MIN_GRID_SHIFT` px whose correlation is at least `MIN_CORRELATION`, and this
#: much more than at no shift, refuses the template (aligned, simulated science exposures: 0.99999 at no
#: shift; that cut-out 0.014 there and 0.99999 at its offset).
MIN_CORRELATION = 0.5
CORRELATION_GAIN = 0.3
MIN_GRID_SHIFT = 2
#: Shifts whose overlap holds less than this fraction of the good pixels are not considered.
MIN_OVERLAP = 0.25


def grid_shift(science: np.ndarray, template: np.ndarray, good: np.ndarray) -> tuple[int, int, float, float]:
    """``(dy, dx, r, r0)``: the whole-pixel shift ``d`` (at most `CROSS_SEARCH` px either axis) for which
    ``science(x) ≈ template(x + d)`` correlates best over the ``good`` pixels the two share, that
    correlation coefficient and the one at no shift (each image less its median; the coefficient
    normalized by the two images' power over the overlap, by transforms, so that a small overlap does
    not win)."""
    from scipy import fft

    good = good & np.isfinite(science) & np.isfinite(template)
    if np.count_nonzero(good) < 100:
        return 0, 0, math.nan, math.nan
    mask = good.astype(np.float64)
    t = np.where(good, template - np.median(template[good]), 0.0)
    s = np.where(good, science - np.median(science[good]), 0.0)
    shape = [fft.next_fast_len(n + CROSS_SEARCH, real=True) for n in science.shape]

    def correlate(a, b):  # Σ_x a(x) b(x + shift), every shift
        return fft.irfft2(np.conj(fft.rfft2(a, shape)) * fft.rfft2(b, shape), shape)

    cross = correlate(t, s)
    power = np.sqrt(np.clip(correlate(t * t, mask) * correlate(mask, s * s), 0.0, None))
    overlap = correlate(mask, mask)
    window = np.r_[0:CROSS_SEARCH + 1, -CROSS_SEARCH:0]  # (negative shifts wrapped to the end)
    at = np.ix_(window % shape[0], window % shape[1])
    usable = (overlap[at] >= MIN_OVERLAP * overlap[0, 0]) & (power[at] > 0)
    r = np.where(usable, cross[at] / np.where(usable, power[at], 1.0), -np.inf)
    iy, ix = np.unravel_index(int(np.argmax(r)), r.shape)
    r0 = float(cross[0, 0] / power[0, 0]) if power[0, 0] > 0 else math.nan
    # (the correlation peaks where science(x + k) = template(x): science(x) = template(x - k))
    return -int(window[iy]), -int(window[ix]), float(r[iy, ix]), r0


def check_alignment(science: Exposure, template: Exposure, source: str, good: np.ndarray) -> SourceOffset:
    """Measure where ``science``'s stars lie against ``template``'s (`source_offset`, over the ``good``
    pixels of both): an offset beyond `WARN_OFFSET` px (and `SIGNIFICANCE` standard errors) is warned
    about, one beyond `MAX_OFFSET` px, or stars not found near their places, is an `InputError`: every
    source would leave a dipole in the difference image. With fewer than `MIN_STARS` stars to measure (but
    some), a warning says that nothing was checked."""
    fwhm = template.psf.fwhm if template.psf is not None else math.nan
    offset = source_offset(science.image, template.image, science.variance, good, fwhm)
    if offset.lost:
        dy, dx, r, r0 = grid_shift(science.image, template.image, good)
        if max(abs(dy), abs(dx)) < MIN_GRID_SHIFT and r0 >= MIN_CORRELATION:
            # (a science exposure on 0.4" pixels, its PSF 2.1 px wide, against a 0.2" model: none of its
            # six stars could be fitted, and it was refused as "its WCS is far off"; in place the two
            # images correlated at 0.999)
            log.warning("%s: its WCS is not checked to a fraction of a pixel: %d of the template's %d bright "
                        "stars could not be fitted (a PSF sampled too coarsely?), but the images match in "
                        "place (correlation %.3f)", source, offset.n_candidates - offset.n_stars,
                        offset.n_candidates, r0)
            return offset
        raise InputError(f"{offset.n_candidates - offset.n_stars} of the template's {offset.n_candidates} "
                         f"bright isolated stars are not found within {SEARCH} px of their places: its WCS "
                         "or the model's is far off", source)
    if not offset.measured:
        dy, dx, r, r0 = grid_shift(science.image, template.image, good)
        if (max(abs(dy), abs(dx)) >= MIN_GRID_SHIFT and r >= MIN_CORRELATION
                and not r0 > r - CORRELATION_GAIN):
            raise InputError(f"its pixels show what its template holds {dx:+d}, {dy:+d} px (x, y) from "
                             f"them (correlation {r:.2f}, against {r0:.2f} in place): its WCS or the model's "
                             "is off (a cut-out whose CRPIX was not updated?)", source)
        # (a template with no star this bright leaves no dipole worth a word from a WCS a pixel off)
        found = (f"only {offset.n_stars} of its {offset.n_candidates} bright stars could be fitted"
                 if offset.n_candidates >= MIN_STARS else
                 f"only {offset.n_candidates} of its stars {'is' if offset.n_candidates == 1 else 'are'} "
                 f"bright enough to measure ({STAR_SNR:g} sigma in the template, away from masks and edges)")
        (log.warning if offset.n_candidates else log.info)(
            "%s: its WCS is not checked against the template's: %s, and %d are needed; a WCS a fraction of a "
            "pixel off would leave a dipole at each bright source", source, found, MIN_STARS)
        return offset
    if offset.size <= max(WARN_OFFSET, SIGNIFICANCE * offset.error):
        return offset
    scale = float(np.mean(proj_plane_pixel_scales(science.wcs.celestial))) * 3600  # (arcsec per pixel)
    where = (f"its stars lie {offset.size:.2f} px ({offset.size * scale:.2g}\") from the template's (dx "
             f"{offset.dx:+.2f}, dy {offset.dy:+.2f} px; median of {offset.n_stars} stars)")
    if offset.size > MAX_OFFSET:
        raise InputError(f"{where}: its WCS or the model's is off; every source would leave a dipole in "
                         "the difference", source)
    log.warning("%s: %s: its WCS or the model's is off (or the model mispredicts this visit's DCR), and "
                "every source will leave a dipole in the difference", source, where)
    return offset


__all__ = ["MAX_OFFSET", "MIN_STARS", "WARN_OFFSET", "SourceOffset", "check_alignment", "grid_shift",
           "source_offset"]
