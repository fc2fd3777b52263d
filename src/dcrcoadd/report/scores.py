"""The one score of a difference image that the report, the demo and the benchmarks all quote.

A template is judged by ``science − template`` on two numbers:

χ² per source pixel
    The mean of ``(science − template)² / (var_science + var_template)`` over the *source
    pixels*: pixels of the baseline coadd's DETECTED footprints that are good in both
    images (finite, positive variance, none of `SCIENCE_BAD_PLANES` set in the science
    exposure and none of `TEMPLATE_BAD_PLANES` in the template) and at least `EDGE_MARGIN` pixels from the
    image border. 1 means the residuals at sources are pure noise; DCR dipoles, PSF
    mismatch or a wrong flux scale make it larger.
5σ detections
    Connected groups (8-connected) of at least `MIN_DETECTION_PIXELS` pixels whose
    per-pixel significance ``(science − template) / sqrt(var_science + var_template)``
    exceeds `DETECTION_SIGMA` in either sign, over the good pixels (not only sources):
    what a transient pipeline would report as false detections.

Both images are in the same flux unit (nJy) on the same pixels; `score_exposure` converts
an `Exposure` and builds the good-pixel mask from its planes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dcrcoadd.core.exposure import Exposure
from dcrcoadd.ops.detection import detect, significance

__all__ = [
    "DETECTION_SIGMA",
    "EDGE_MARGIN",
    "MIN_DETECTION_PIXELS",
    "SCIENCE_BAD_PLANES",
    "DifferenceScore",
    "difference_score",
    "score_exposure",
    "source_pixels",
]

#: Mask planes of the science exposure whose pixels are not scored.
SCIENCE_BAD_PLANES = ("BAD", "SAT", "NO_DATA", "EDGE", "CR")
#: Mask planes of the template whose pixels are not scored: no data, and light from where every warp
#: saturated (`dcrcoadd.template.unmeasured`; the coadd's own SAT, where a tenth of its inputs did).
TEMPLATE_BAD_PLANES = ("NO_DATA", "SAT")
#: Pixels this close to the border are not scored: a shifted template has no data there.
EDGE_MARGIN = 8
#: Detection threshold (sigma per pixel, both signs) and smallest footprint of a detection.
DETECTION_SIGMA = 5.0
MIN_DETECTION_PIXELS = 3


@dataclass(frozen=True)
class DifferenceScore:
    """The score of one ``science − template`` difference.

    Attributes
    ----------
    chi2 : float
        χ² per source pixel (NaN when no source pixel is good).
    n_source_pixels : int
        Source pixels the χ² is averaged over.
    n_detections : int
        5σ detections (both signs) in the difference image.
    """

    chi2: float
    n_source_pixels: int
    n_detections: int

    def describe(self) -> str:
        """``χ²/src px 1.23, 4 det. (5σ)``: how panels and tables quote the score."""
        chi2 = "—" if not math.isfinite(self.chi2) else f"{self.chi2:.2f}"
        return f"χ²/src px {chi2}, {self.n_detections} det. (5σ)"


def _interior(shape: tuple[int, int], margin: int) -> np.ndarray:
    inner = np.zeros(shape, bool)
    if min(shape) > 2 * margin:
        inner[margin:shape[0] - margin, margin:shape[1] - margin] = True
    return inner


def difference_score(science: np.ndarray, science_variance: np.ndarray, template: np.ndarray,
                     template_variance: np.ndarray, sources: np.ndarray, *, good: np.ndarray | None = None,
                     margin: int = EDGE_MARGIN) -> DifferenceScore:
    """χ² per source pixel and 5σ detections of ``science − template`` (see the module notes).

    Parameters
    ----------
    science, science_variance, template, template_variance : ndarray, shape (ny, nx)
        The two images and their variances, in one flux unit on the same pixels.
    sources : ndarray of bool
        The baseline coadd's DETECTED footprints on these pixels.
    good : ndarray of bool, optional
        Pixels usable in both images by their masks (default: all); non-finite values and
        non-positive variances are excluded in any case.
    margin : int
        Border width left out.

    Returns
    -------
    DifferenceScore
    """
    science = np.asarray(science, dtype=np.float64)
    diff = science - np.asarray(template, dtype=np.float64)
    total_var = np.asarray(science_variance, dtype=np.float64) + np.asarray(template_variance, np.float64)
    usable = _interior(diff.shape, margin) & np.isfinite(diff) & np.isfinite(total_var) & (total_var > 0)
    if good is not None:
        usable &= np.asarray(good, bool)
    chi = np.zeros_like(diff)
    np.divide(diff, np.sqrt(total_var), out=chi, where=usable)
    use = usable & np.asarray(sources, bool)
    n = int(use.sum())
    chi2 = float(np.mean(chi[use] ** 2)) if n else math.nan
    snr = significance(np.where(usable, diff, 0.0), np.where(usable, total_var, 0.0))
    _, n_det = detect(snr, DETECTION_SIGMA, polarity="both", min_pixels=MIN_DETECTION_PIXELS)
    return DifferenceScore(chi2=chi2, n_source_pixels=n, n_detections=int(n_det))


def chi_image(science: np.ndarray, science_variance: np.ndarray, template: np.ndarray,
              template_variance: np.ndarray, good: np.ndarray | None = None) -> np.ndarray:
    """``(science − template) / sqrt(var_science + var_template)`` per pixel, NaN where not usable."""
    diff = np.asarray(science, np.float64) - np.asarray(template, np.float64)
    total_var = np.asarray(science_variance, np.float64) + np.asarray(template_variance, np.float64)
    usable = np.isfinite(diff) & np.isfinite(total_var) & (total_var > 0)
    if good is not None:
        usable &= np.asarray(good, bool)
    out = np.full(diff.shape, np.nan)
    np.divide(diff, np.sqrt(total_var), out=out, where=usable)
    return out


def science_in_njy(science: Exposure) -> tuple[np.ndarray, np.ndarray]:
    """The science image and variance in nJy (the unit of coadds and templates)."""
    cal = float(science.flux_calibration)
    return science.image * cal, science.variance * (cal * cal)


def good_pixels(science: Exposure, template_mask: np.ndarray | None = None,
                template: Exposure | None = None) -> np.ndarray:
    """Pixels good in both images by their masks: no `SCIENCE_BAD_PLANES` in the science
    exposure, no `TEMPLATE_BAD_PLANES` in the template (when it is an Exposure)."""
    good = ~science.mask_of(*SCIENCE_BAD_PLANES)
    if template is not None:
        good &= ~template.mask_of(*TEMPLATE_BAD_PLANES)
    if template_mask is not None:
        good &= np.asarray(template_mask, bool)
    return good


def score_exposure(science: Exposure, template: np.ndarray | Exposure, template_variance: np.ndarray | None,
                   sources: np.ndarray, *, margin: int = EDGE_MARGIN) -> DifferenceScore:
    """`difference_score` of a science exposure against a template in nJy.

    ``template`` is an array (with ``template_variance``) or an Exposure on the science
    exposure's pixels (its own variance and NO_DATA mask are used, ``template_variance`` is
    ignored); the science exposure is converted to nJy with its flux calibration.
    """
    image, variance = science_in_njy(science)
    if isinstance(template, Exposure):
        if template.bbox != science.bbox:
            raise ValueError(f"template covers {template.bbox}, the science exposure {science.bbox}: "
                             "cut both to the same box")
        cal = float(template.flux_calibration)
        good = good_pixels(science, template=template)
        t_image, t_var = template.image * cal, template.variance * (cal * cal)
    else:
        good = good_pixels(science)
        t_image, t_var = template, template_variance
    return difference_score(image, variance, t_image, t_var, sources, good=good, margin=margin)


def source_pixels(coadd: Exposure, fallback: np.ndarray | None = None) -> np.ndarray:
    """The baseline coadd's DETECTED footprints; ``fallback`` (for example the DCR model's own
    detections, made when the inputs carried no DETECTED plane) when the coadd has none."""
    detected = coadd.mask_of("DETECTED")
    if not detected.any() and fallback is not None:
        return np.asarray(fallback, bool)
    return detected
