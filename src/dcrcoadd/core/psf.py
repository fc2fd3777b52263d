"""Point-spread functions as normalized kernel images, and their sizes.

A PSF has three sizes here, each under its own name and for its own use:

``Psf.fwhm`` (`kernel_fwhm`)
    The full width at half maximum of the kernel itself: the diameter of the circle with
    the area of the region above half the peak. This is the number users read to judge
    seeing, so it is what ``dcrcoadd info``, the inputs table, the assemble summary, the
    report and the logs show; it also picks the best-seeing inputs (`best_seeing_selection`
    compares widths) and sets how far detections are grown when the inputs carry no
    DETECTED plane (one FWHM, as the simulator grows them).
``Psf.noise_equivalent_sigma``
    ``1 / sqrt(4 pi sum(k^2))``, the sigma of the Gaussian with the same noise-equivalent
    area. Compare-warp PSF matching (`dcrcoadd.coadd.artifacts`) sizes its Gaussian matching
    kernels with it (sigmas add in quadrature under Gaussian convolution, so it needs a
    sigma): exact for Gaussians, and set by the core rather than by the wings, which for
    atmospheric PSFs barely converge within a stamp, so the matched cores agree.
``Psf.second_moment_sigma``
    ``sqrt((Ixx + Iyy) / 2)`` from the kernel's second moments. Second moments add under
    convolution, but atmospheric PSFs' wings inflate them (a Kolmogorov PSF's is 40-50 %
    above its FWHM / 2.355 in 27-41 px stamps) and they depend on the stamp size, so no algorithm here
    compares them with a FWHM; they stay available as a diagnostic.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import ndimage, optimize

SIGMA_TO_FWHM = 2.0 * np.sqrt(2.0 * np.log(2.0))

#: The Moffat of `kernel_fwhm` is fitted to the pixels above this fraction of the peak
#: (connected to the brightest pixel): the core, where the half-maximum contour lies.
FWHM_FIT_FRACTION = 0.05
#: Below this fraction of the peak the kernel is not trusted for the shape correction
#: (noise, truncation); there the fitted Moffat alone describes the profile.
FWHM_FLOOR_FRACTION = 1e-3
#: Rays from the peak along which `kernel_fwhm` finds the half-maximum contour.
FWHM_RAYS = 128
#: A PSF narrower than this (FWHM, pixels) is undersampled: its transform reaches beyond the Nyquist
#: frequency, and sampling aliases each point source by where it falls on a pixel. No image on the
#: same pixels moved by sub-pixel shifts (a DCR model and its templates) reproduces that. Simulated
#: fields of 0.25-0.4" pixels in 0.6-1.0" seeing (`python -m benchmarks.scenarios --pixel-scale S`):
#: science PSFs under 2.5 px left 2-125 false detections per visit where a 14-mag star stayed
#: unsaturated (664 in 14 visits, along the star's row and column), 0-6 where it saturated; from
#: 2.5 px, 0-14 and 0-6 (34 in 44 visits).
UNDERSAMPLED_FWHM = 2.5


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
    def ellipticity(self) -> tuple[float, float]:
        """``(e, angle)``: the ellipticity ``(a² − b²) / (a² + b²)`` of the kernel's second moments
        weighted by a round Gaussian of its FWHM (unweighted moments follow the wings and the stamp
        size), and the position angle of its major axis in degrees from +x towards +y."""
        ny, nx = self.kernel.shape
        y, x = np.mgrid[:ny, :nx]
        k = self.kernel.astype(np.float64)
        cy, cx = self.centroid
        dy, dx = y - (ny // 2 + cy), x - (nx // 2 + cx)
        sigma = max(self.fwhm, 1.0) / 2.3548
        w = k * np.exp(-0.5 * (dx * dx + dy * dy) / (sigma * sigma))
        ixx, iyy, ixy = (float((w * a * b).sum()) for a, b in ((dx, dx), (dy, dy), (dx, dy)))
        if not ixx + iyy > 0:
            return 0.0, 0.0
        e1, e2 = (ixx - iyy) / (ixx + iyy), 2.0 * ixy / (ixx + iyy)
        return float(math.hypot(e1, e2)), float(math.degrees(0.5 * math.atan2(e2, e1)))

    @property
    def second_moment_sigma(self) -> float:
        """Gaussian-equivalent sigma in pixels from the second moments, ``sqrt((Ixx + Iyy) / 2)``.

        Inflated by extended wings (and dependent on the stamp size); not a FWHM / 2.355
        for anything but a Gaussian. See the module notes for which size is used where.
        """
        ixx, iyy, _ = self.second_moments()
        return float(np.sqrt(max(ixx + iyy, 0.0) / 2.0))

    @property
    def noise_equivalent_sigma(self) -> float:
        """Gaussian-equivalent sigma in pixels from the noise-equivalent area,
        ``1 / sqrt(4 pi sum(k^2))``; exact for a Gaussian. Used for compare-warp PSF matching."""
        k = self.kernel.astype(np.float64)
        return float(1.0 / math.sqrt(4.0 * math.pi * np.sum(k * k)))

    @property
    def fwhm(self) -> float:
        """Full width at half maximum of the kernel in pixels (`kernel_fwhm`).

        The width of the kernel as sampled: if the kernel includes the pixel response (as a
        PSF measured on an image or drawn with it does), so does its FWHM.
        """
        return _cached_fwhm(self.kernel.shape, self.kernel.dtype.str, self.kernel.tobytes())

    def fwhm_arcsec(self, wcs) -> float:
        """`fwhm` in arcsec at the pixel scale of ``wcs`` (`pixel_scale_arcsec`); NaN without a WCS."""
        return self.fwhm * pixel_scale_arcsec(wcs)

    def describe_fwhm(self, wcs=None) -> str:
        """``"FWHM 0.62 arcsec (3.10 px)"``, or ``"FWHM 3.10 px"`` when ``wcs`` gives no pixel scale."""
        scale = pixel_scale_arcsec(wcs)
        if math.isfinite(scale):
            return f"FWHM {self.fwhm * scale:.2f} arcsec ({self.fwhm:.2f} px)"
        return f"FWHM {self.fwhm:.2f} px"

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

    def recentred(self) -> Psf:
        """The kernel moved so that its centroid is its central pixel: by a Fourier shift, which
        neither smooths nor sharpens it (a kernel contained in its stamp, whose border is near 0)."""
        from scipy import fft

        kernel = self.kernel.astype(np.float64)
        for _ in range(2):  # (a second pass takes the little the border's wrap-around moved)
            cy, cx = Psf(kernel).centroid
            kernel = fft.ifft2(ndimage.fourier_shift(fft.fft2(kernel), (-cy, -cx))).real
        return Psf(kernel)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Psf):
            return NotImplemented
        return self.kernel.shape == other.kernel.shape and bool(np.array_equal(self.kernel, other.kernel))

    __hash__ = None  # mutable array inside

    def __repr__(self) -> str:
        return f"Psf(shape={self.kernel.shape}, fwhm={self.fwhm:.3f} px)"


# -- coadd PSF -----------------------------------------------------------------------------------

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


def best_seeing_selection(psfs, weights) -> np.ndarray:
    """Which inputs have the best seeing, as LSST's ``DcrAssembleCoaddTask.selectCoaddPsf`` picks them.

    An input is selected when its FWHM (`Psf.fwhm`) is at or below the smaller of the median
    and the weighted mean (coadd ``weights``) of the input FWHMs. Input PSFs include DCR
    blurring, which the DCR model removes, hence the restriction.

    LSST compares second-moment sizes (determinant radii) and takes the mean from the coadd
    PSF, whose second moments are the weighted mean of the inputs'. The measured FWHM compares
    the widths of the cores, which the wings do not inflate; but the FWHM of the coadd PSF is
    not a mean width (the sharpest inputs dominate its peak, putting it ~13 % below the median
    input FWHM for seeing spread over 0.5-1.2 arcsec), so the mean is taken over the inputs.
    Over random sets of 4-19 simulated Kolmogorov inputs of 0.5-1.2 arcsec seeing this selects
    48 % of the inputs on average (LSST's rule: 49 %, the same inputs in 87 % of the sets);
    the FWHM of the coadd PSF as the mean would select 34 %.

    Parameters
    ----------
    psfs : sequence of Psf
    weights : sequence of float
        The inputs' coadd weights (non-negative, not all zero).

    Returns
    -------
    ndarray of bool
    """
    fwhm = np.array([p.fwhm for p in psfs])
    if fwhm.size == 0:
        return np.zeros(0, dtype=bool)
    w = np.asarray(list(weights), dtype=np.float64)
    if w.shape != fwhm.shape or not (np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
        raise ValueError(f"need one finite, non-negative weight per PSF, not all zero; got {w}")
    threshold = min(float(np.median(fwhm)), float(np.average(fwhm, weights=w)))
    # A little slack so that identical PSFs (reference = their mean) are all selected.
    return fwhm <= threshold * (1 + 1e-9)


def pixel_scale_arcsec(wcs) -> float:
    """Pixel scale of a celestial WCS in arcsec, ``sqrt(|det|)`` of its pixel-scale matrix
    (the side of a square pixel of the same area); NaN for None or a WCS without celestial axes."""
    if wcs is None:
        return float("nan")
    try:
        celestial = wcs.celestial
        if celestial.naxis != 2:
            return float("nan")
        scale = math.sqrt(abs(float(np.linalg.det(celestial.pixel_scale_matrix)))) * 3600.0
    except (AttributeError, ValueError, np.linalg.LinAlgError):
        return float("nan")
    return scale if scale > 0 else float("nan")


def kernel_fwhm(kernel: np.ndarray) -> float:
    """Full width at half maximum of a PSF kernel in pixels: ``2 sqrt(A / pi)`` with ``A`` the
    area of the region around the peak that lies above half the peak.

    The kernel's samples are turned into a continuous surface, whose peak and half-maximum
    contour are then found to a small fraction of a pixel. Near 2 px FWHM the samples alone
    do not determine the shape between pixels (interpolating them, linearly or by splines,
    misses the peak and overestimates the FWHM by 10-20 %), so the surface is an elliptical
    Moffat with free index (the Gaussian is its limit) fitted to the core, times a cubic-spline
    interpolation of the kernel's log ratio to that Moffat. For a Gaussian or Moffat kernel
    the ratio is one and the FWHM exact; for other shapes (Kolmogorov, mixtures, measured
    kernels) the ratio corrects the Moffat, and for well-sampled kernels it carries the whole
    shape. The contour is found by bisection along `FWHM_RAYS` rays from the peak, so a second
    peak is not counted. Gaussian, Moffat (beta 2.5-4.5) and Kolmogorov kernels sampled at
    any pixel phase, with or without the pixel response, come out within 1.5 % at 2 px FWHM,
    0.4 % from 2.5 px up (2.3 % at 1.8 px); elliptical ones (shear 0.3) and mixtures of
    offset PSFs within 2.5 % at 2 px. Noise in a measured kernel adds scatter: ~1 % at
    3 px FWHM for noise 1 % of the peak.
    Outside the kernel the profile is the Moffat (zero when too few pixels for a fit).

    Raises
    ------
    ValueError
        If the kernel is not 2-D, not finite, or has no positive value.
    """
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.size == 0:
        raise ValueError(f"PSF kernel must be 2-D, got shape {k.shape}")
    if not np.all(np.isfinite(k)):
        raise ValueError("PSF kernel has non-finite values")
    iy, ix = np.unravel_index(int(np.argmax(k)), k.shape)
    if not k[iy, ix] > 0:
        raise ValueError("PSF kernel has no positive value")
    k = k / k[iy, ix]  # the FWHM does not depend on the normalization; the fit is better scaled
    surface = _kernel_surface(k)
    peak, cy, cx = _surface_peak(surface, float(iy), float(ix))
    radii = _half_max_radii(surface, peak, cy, cx, rmax=float(np.hypot(*k.shape)) + 2.0)
    return float(2.0 * np.sqrt(np.mean(radii**2)))


@functools.lru_cache(maxsize=256)
def _cached_fwhm(shape: tuple[int, int], dtype: str, data: bytes) -> float:
    # Keyed on the kernel's bytes (Psf.kernel is a plain array): the FWHM of one PSF is asked
    # for repeatedly (selection, the inputs table, the summary, logs), ~5 ms each time.
    return kernel_fwhm(np.frombuffer(data, dtype=np.dtype(dtype)).reshape(shape))


def _moffat_log(params: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """log of the elliptical Moffat ``exp(c0) (1 + u / beta)^-beta``, ``u`` the quadratic form
    ``a dy^2 + 2 b dy dx + c dx^2``; ``params = (c0, y0, x0, log a, log c, b, s)`` with
    ``1 / beta = s^2`` (``s = 0``: the Gaussian ``exp(c0 - u)``)."""
    c0, _, _, log_a, log_c, b, s = params
    u = np.exp(log_a) * dy * dy + 2.0 * b * dy * dx + np.exp(log_c) * dx * dx
    inv_beta = s * s
    if inv_beta < 1e-12:
        return c0 - u
    return c0 - np.log1p(u * inv_beta) / inv_beta


def _fit_moffat(k: np.ndarray) -> np.ndarray | None:
    """Parameters of the elliptical Moffat fitted to the core of ``k`` (peak 1), or None when
    the core has too few pixels or the fit fails."""
    iy, ix = np.unravel_index(int(np.argmax(k)), k.shape)
    labels, _ = ndimage.label(k > FWHM_FIT_FRACTION)
    yy, xx = np.nonzero(labels == labels[iy, ix])
    if yy.size < 8:  # 7 parameters
        return None
    v = k[yy, xx]
    w = v / v.sum()
    cy, cx = float((w * yy).sum()), float((w * xx).sum())
    cov = np.array([[(w * (yy - cy) ** 2).sum(), (w * (yy - cy) * (xx - cx)).sum()],
                    [(w * (yy - cy) * (xx - cx)).sum(), (w * (xx - cx) ** 2).sum()]])
    quad = np.linalg.inv(cov + 0.1 * np.eye(2)) / 2.0  # Gaussian start: u = d' cov^-1 d / 2
    start = np.array([0.0, cy, cx, np.log(quad[0, 0]), np.log(quad[1, 1]), quad[0, 1], 0.4])

    def residuals(p):
        return np.exp(_moffat_log(p, yy - p[1], xx - p[2])) - v

    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            fit = optimize.least_squares(residuals, start, method="lm")
    except (ValueError, np.linalg.LinAlgError):
        return None
    p = fit.x
    ok = (fit.success and np.all(np.isfinite(p)) and np.exp(p[3] + p[4]) > p[5] ** 2
          and yy.min() - 1 <= p[1] <= yy.max() + 1 and xx.min() - 1 <= p[2] <= xx.max() + 1)
    return p if ok else None


def _kernel_surface(k: np.ndarray):
    """Continuous surface through the samples of ``k`` (peak 1): ``f(y, x)`` on arrays of
    pixel coordinates, the fitted Moffat times the spline-interpolated kernel/Moffat ratio
    (or the spline-interpolated kernel when no Moffat fits)."""
    pad = 4  # zeros around the kernel: the spline's ratio is 1 (or its value 0) outside
    params = _fit_moffat(k)
    if params is None:
        values = k
    else:
        y, x = np.mgrid[: k.shape[0], : k.shape[1]].astype(np.float64)
        moffat = np.exp(_moffat_log(params, y - params[1], x - params[2]))
        floor = FWHM_FLOOR_FRACTION
        values = np.log(np.maximum(k, floor) / np.maximum(moffat, floor))
    coeffs = ndimage.spline_filter(np.pad(values, pad), order=3, mode="grid-constant")

    def surface(yq: np.ndarray, xq: np.ndarray) -> np.ndarray:
        spline = ndimage.map_coordinates(coeffs, [np.ravel(yq) + pad, np.ravel(xq) + pad], order=3,
                                         mode="grid-constant", prefilter=False).reshape(np.shape(yq))
        if params is None:
            return spline
        with np.errstate(over="ignore"):
            return np.exp(_moffat_log(params, yq - params[1], xq - params[2]) + spline)

    return surface


def _surface_peak(surface, y0: float, x0: float) -> tuple[float, float, float]:
    """``(value, y, x)`` of the surface's maximum near ``(y0, x0)``, to 0.005 px."""
    for half, step in ((0.75, 0.05), (0.06, 0.005)):
        offsets = np.arange(-half, half + step / 2, step)
        yq, xq = np.meshgrid(y0 + offsets, x0 + offsets, indexing="ij")
        values = surface(yq, xq)
        i = np.unravel_index(int(np.argmax(values)), values.shape)
        y0, x0 = float(yq[i]), float(xq[i])
    return float(values[i]), y0, x0


def _half_max_radii(surface, peak: float, cy: float, cx: float, rmax: float) -> np.ndarray:
    """Distance from ``(cy, cx)`` to the first half-maximum crossing along each of
    `FWHM_RAYS` rays (``rmax`` where there is none)."""
    theta = np.arange(FWHM_RAYS) * (2.0 * np.pi / FWHM_RAYS)
    sin, cos = np.sin(theta), np.cos(theta)
    half = 0.5 * peak

    def above(r: np.ndarray, rays: np.ndarray) -> np.ndarray:
        return surface((cy + r * sin[rays])[None], (cx + r * cos[rays])[None])[0] >= half

    # March out in quarter pixels to bracket the first crossing, then bisect.
    lo, hi = np.zeros(FWHM_RAYS), np.full(FWHM_RAYS, rmax)
    open_rays = np.arange(FWHM_RAYS)
    r = 0.25
    while open_rays.size and r < rmax:
        up = above(np.full(open_rays.size, r), open_rays)
        lo[open_rays[up]] = r
        hi[open_rays[~up]] = r
        open_rays = open_rays[up]
        r += 0.25
    rays = np.arange(FWHM_RAYS)
    for _ in range(24):
        mid = 0.5 * (lo + hi)
        up = above(mid, rays)
        lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
    return 0.5 * (lo + hi)
