"""Point-spread functions as normalized kernel images."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

SIGMA_TO_FWHM = 2.0 * np.sqrt(2.0 * np.log(2.0))


class Psf:
    """A PSF kernel: odd-sized, centred, summing to one.

    Parameters
    ----------
    kernel : array_like
        2-D kernel image with odd sides; it is normalized to unit sum.

    Raises
    ------
    ValueError
        If the kernel is not 2-D, has an even side, is not finite or sums to
        a non-positive value.
    """

    def __init__(self, kernel: np.ndarray):
        kernel = np.array(kernel, dtype=np.float64)
        if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
            raise ValueError(f"PSF kernel must be 2-D with odd sides, got shape {kernel.shape}")
        if not np.all(np.isfinite(kernel)):
            raise ValueError("PSF kernel has non-finite values")
        total = kernel.sum()
        if not total > 0:
            raise ValueError(f"PSF kernel must have a positive sum, got {total}")
        # Kernels already normalized (e.g. read back from a file) are kept bit for bit.
        if abs(total - 1.0) > 1e-6:
            kernel = kernel / total
        self.kernel = kernel.astype(np.float32)

    @classmethod
    def gaussian(cls, sigma: float | None = None, *, fwhm: float | None = None,
                 size: int | None = None) -> Psf:
        """Circular Gaussian PSF; give ``sigma`` or ``fwhm`` in pixels.

        ``size`` defaults to the odd integer covering ±4 sigma.
        """
        if (sigma is None) == (fwhm is None):
            raise ValueError("give exactly one of sigma or fwhm")
        sigma = float(sigma if sigma is not None else fwhm / SIGMA_TO_FWHM)
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        if size is None:
            size = 2 * int(np.ceil(4.0 * sigma)) + 1
        if size % 2 == 0:
            raise ValueError(f"PSF size must be odd, got {size}")
        r = np.arange(size) - size // 2
        g = np.exp(-0.5 * (r / sigma) ** 2)
        return cls(np.outer(g, g))

    @property
    def shape(self) -> tuple[int, int]:
        return self.kernel.shape

    @property
    def centroid(self) -> tuple[float, float]:
        """First moments ``(y, x)`` relative to the central pixel."""
        ny, nx = self.kernel.shape
        y, x = np.mgrid[:ny, :nx]
        k = self.kernel.astype(np.float64)
        return (float((k * y).sum() - ny // 2), float((k * x).sum() - nx // 2))

    def second_moments(self) -> tuple[float, float, float]:
        """Central second moments ``(Ixx, Iyy, Ixy)`` of the kernel in pixels²."""
        ny, nx = self.kernel.shape
        y, x = np.mgrid[:ny, :nx]
        k = self.kernel.astype(np.float64)
        cy, cx = (k * y).sum(), (k * x).sum()
        return (float((k * (x - cx) ** 2).sum()), float((k * (y - cy) ** 2).sum()),
                float((k * (x - cx) * (y - cy)).sum()))

    @property
    def sigma(self) -> float:
        """Gaussian-equivalent sigma in pixels from the second moments, ``sqrt((Ixx + Iyy) / 2)``."""
        ixx, iyy, _ = self.second_moments()
        return float(np.sqrt(max(ixx + iyy, 0.0) / 2.0))

    @property
    def fwhm(self) -> float:
        """FWHM in pixels of the Gaussian with the same second moments."""
        return self.sigma * SIGMA_TO_FWHM

    def resized(self, size: int) -> Psf:
        """The kernel zero-padded or cropped (about its centre) to ``size x size``; odd ``size``."""
        if size % 2 == 0:
            raise ValueError(f"PSF size must be odd, got {size}")
        out = np.zeros((size, size))
        ny, nx = self.kernel.shape
        h, hy, hx = size // 2, ny // 2, nx // 2
        r = min(h, hy), min(h, hx)
        out[h - r[0]:h + r[0] + 1, h - r[1]:h + r[1] + 1] = \
            self.kernel[hy - r[0]:hy + r[0] + 1, hx - r[1]:hx + r[1] + 1]
        return Psf(out)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Psf):
            return NotImplemented
        return self.kernel.shape == other.kernel.shape and bool(np.array_equal(self.kernel, other.kernel))

    __hash__ = None  # mutable array inside

    def __repr__(self) -> str:
        return f"Psf(shape={self.kernel.shape}, fwhm={self.fwhm:.3f} px)"


# -- coadd PSF -----------------------------------------------------------------------------------

def determinant_radius(psf: Psf) -> float:
    """Gaussian-equivalent sigma ``(Ixx Iyy - Ixy^2)^(1/4)`` in pixels (LSST's "determinant radius")."""
    ixx, iyy, ixy = psf.second_moments()
    return float(max(ixx * iyy - ixy * ixy, 0.0) ** 0.25)


def psf_fwhm(psf: Psf) -> float:
    """FWHM in pixels from the determinant radius, as LSST measures input PSF sizes."""
    return determinant_radius(psf) * SIGMA_TO_FWHM


def coadd_psf(psfs, weights) -> Psf:
    """Weighted mean of PSF kernels: the PSF of a weighted-mean coadd of the inputs.

    Kernels are zero-padded about their centres to the largest size, then averaged with
    the coadd weights (like LSST's ``CoaddPsf`` at one position, for inputs that all cover it).

    Parameters
    ----------
    psfs : sequence of Psf
    weights : sequence of float
        Non-negative, not all zero.

    Raises
    ------
    ValueError
        If the sequences are empty or differ in length, or the weights are invalid.
    """
    psfs = list(psfs)
    w = np.asarray(list(weights), dtype=np.float64)
    if not psfs:
        raise ValueError("need at least one PSF")
    if w.shape != (len(psfs),):
        raise ValueError(f"need one weight per PSF, got {w.size} weights for {len(psfs)} PSFs")
    if not (np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {w}")
    size = max(max(p.kernel.shape) for p in psfs)
    size += 1 - size % 2
    total = np.zeros((size, size))
    for p, wi in zip(psfs, w, strict=True):
        total += wi * p.resized(size).kernel.astype(np.float64)
    return Psf(total / w.sum())


def best_seeing_selection(psfs, reference: Psf) -> np.ndarray:
    """Which inputs have the best seeing, as LSST's ``DcrAssembleCoaddTask.selectCoaddPsf`` picks them.

    An input is selected when its FWHM (`psf_fwhm`) is at or below the smaller of the median
    input FWHM and the FWHM of ``reference`` (the full coadd PSF). Input PSFs include DCR
    blurring, which the DCR model removes, hence the restriction.

    Returns
    -------
    ndarray of bool
    """
    fwhm = np.array([psf_fwhm(p) for p in psfs])
    if fwhm.size == 0:
        return np.zeros(0, dtype=bool)
    threshold = min(float(np.median(fwhm)), psf_fwhm(reference))
    # A little slack so that identical PSFs (reference = their mean) are all selected.
    return fwhm <= threshold * (1 + 1e-9)


def measure_psf(image: np.ndarray, variance: np.ndarray, bad: np.ndarray | None = None, *, size: int = 25,
                threshold: float = 50.0, min_pixels: int = 25, min_stars: int = 3,
                max_stars: int = 100) -> Psf:
    """Empirical PSF from bright isolated stars of an image (LSST ``doCalculatePsf``).

    Sources are detected at ``threshold`` sigma per pixel (at least ``min_pixels``, LSST's
    ``detectPsfSources`` settings); a star is used when its stamp of ``size`` pixels lies in
    the image, holds no bad pixel and no other source, and its peak is not the edge of a
    saturated plateau. Stamps are centred on their first moments with a cubic-spline shift,
    normalized, and combined by a per-pixel median.

    Raises
    ------
    ValueError
        When fewer than ``min_stars`` stars qualify (the caller keeps its PSF).
    """
    from dcrcoadd.ops.detection import detect, significance
    from dcrcoadd.ops.shift import shift_image

    if size % 2 == 0:
        raise ValueError(f"PSF size must be odd, got {size}")
    image = np.asarray(image, dtype=np.float64)
    bad = np.zeros(image.shape, bool) if bad is None else np.asarray(bad, bool)
    bad = bad | ~np.isfinite(image)
    labels, n = detect(significance(np.where(bad, 0.0, image), variance, valid=~bad), threshold,
                       min_pixels=min_pixels)
    if n == 0:
        raise ValueError("no source above the PSF-star threshold")
    half = size // 2 + 1  # one spare pixel for the recentring shift
    ny, nx = image.shape
    peaks = ndimage.maximum_position(np.where(labels > 0, image, -np.inf), labels, range(1, n + 1))
    fluxes = ndimage.sum(np.where(labels > 0, image, 0.0), labels, range(1, n + 1))
    stamps = []
    for label in np.argsort(fluxes)[::-1]:
        py, px = peaks[label]
        sl = (slice(py - half, py + half + 1), slice(px - half, px + half + 1))
        if py - half < 0 or px - half < 0 or py + half >= ny or px + half >= nx:
            continue
        others = labels[sl]
        if np.any((others > 0) & (others != label + 1)) or bad[sl].any():
            continue
        stamp = image[sl].copy()
        stamp -= np.median(np.concatenate([stamp[0], stamp[-1], stamp[:, 0], stamp[:, -1]]))
        total = stamp.sum()
        if not total > 0:
            continue
        y, x = np.mgrid[: stamp.shape[0], : stamp.shape[1]]
        cy, cx = (stamp * y).sum() / total, (stamp * x).sum() / total
        centred = shift_image(stamp, (half - cy, half - cx), order=3)
        stamps.append(centred[1:-1, 1:-1] / total)
        if len(stamps) >= max_stars:
            break
    if len(stamps) < min_stars:
        raise ValueError(f"only {len(stamps)} isolated bright stars (need {min_stars})")
    kernel = np.median(np.stack(stamps), axis=0)
    return Psf(np.clip(kernel, 0.0, None))
