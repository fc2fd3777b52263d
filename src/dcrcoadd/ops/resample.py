"""Flux-conserving resampling between two celestial pixel grids (the ``resample`` extra: reproject).

Shared by the template path (`dcrcoadd.template.build`, a model rendered onto a
science grid) and ``dcrcoadd warp`` (`dcrcoadd.resample`, single-epoch
exposures onto one coadd grid).

Image pixels hold flux per pixel. ``reproject_exact`` returns, for each output
pixel, the mean of the input pixels weighted by their exact (spherical polygon)
overlap with it; multiplied by the output pixel's area measured in input pixels,
``r`` (`quad_areas` of the output pixel corners mapped onto the input grid), the
flux of every input pixel ends up, split by overlap, in the output pixels: flux
is conserved. ``reproject_adaptive`` with ``conserve_flux=True`` does the same
scaling itself (by the Jacobian determinant), after an anti-aliasing kernel.

Variance is resampled with the same weights and scaled by ``r`` (not ``r²``):
the noise per unit sky area is kept, so the variance of a sum over a region much
larger than a pixel is right (exact for integer binning); per pixel it
overestimates the variance where an output pixel mixes several input pixels,
since resampling correlates neighbouring output pixels.
"""

from __future__ import annotations

import math

import numpy as np
from astropy.wcs import WCS
from astropy.wcs.utils import pixel_to_pixel
from scipy import ndimage

from dcrcoadd.core.psf import Psf
from dcrcoadd.errors import InputError

__all__ = ["PSF_TOLERANCE", "RESAMPLE_METHODS", "corner_grid", "interpolate_psf", "local_jacobian",
           "quad_areas", "resample_flux", "warp_psf"]

#: Resampling methods `resample_flux` knows.
RESAMPLE_METHODS = ("exact", "adaptive")

#: Largest deviation of the local map between grids from the identity (input pixels per output
#: pixel) for which the PSF kernel is carried unchanged: 0.01 px over a 10-pixel kernel radius.
PSF_TOLERANCE = 1e-3


def corner_grid(wcs_from: WCS, wcs_to: WCS, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel corners of a ``shape`` array of ``wcs_from`` mapped into ``wcs_to``'s pixels, (ny+1, nx+1)."""
    ny, nx = shape
    y, x = np.meshgrid(np.arange(ny + 1.0) - 0.5, np.arange(nx + 1.0) - 0.5, indexing="ij")
    xt, yt = pixel_to_pixel(wcs_from, wcs_to, x, y)
    return np.asarray(xt, dtype=float), np.asarray(yt, dtype=float)


def quad_areas(xc: np.ndarray, yc: np.ndarray) -> np.ndarray:
    """Area of each pixel quadrilateral of a corner grid (half the cross product of its diagonals)."""
    d1x, d1y = xc[1:, 1:] - xc[:-1, :-1], yc[1:, 1:] - yc[:-1, :-1]
    d2x, d2y = xc[1:, :-1] - xc[:-1, 1:], yc[1:, :-1] - yc[:-1, 1:]
    return 0.5 * np.abs(d1x * d2y - d1y * d2x)


def _reproject(name: str, source: str):
    try:
        import reproject
    except ImportError as exc:  # pragma: no cover - the extra is part of the test environment
        raise InputError("resampling onto another pixel grid needs reproject: install dcrcoadd[resample]",
                         source) from exc
    return getattr(reproject, name)


def resample_flux(planes: np.ndarray, wcs_in: WCS, wcs_out: WCS, shape_out: tuple[int, int],
                  area_ratio: np.ndarray | float, *, missing: np.ndarray | None = None,
                  method: str = "exact", source: str = "template",
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flux-conserving resampling of an image and its variance.

    Parameters
    ----------
    planes : ndarray, shape (2, ny, nx)
        Image (flux per input pixel) and its variance, on ``wcs_in``'s grid.
    wcs_in, wcs_out : astropy.wcs.WCS
    shape_out : (ny, nx)
    area_ratio : ndarray or float
        Area of each output pixel in input pixels, ``r`` (broadcast to
        ``shape_out``). Used by ``"exact"``; ``"adaptive"`` computes it itself.
    missing : ndarray of bool, optional
        Input pixels without data (non-finite, NO_DATA). They are left out of
        the overlap-weighted means instead of spreading NaN (or a fill value)
        into every output pixel they touch.
    method : {"exact", "adaptive"}
        ``reproject_exact`` (exact overlap areas), or ``reproject_adaptive``
        with ``conserve_flux=True`` and its default Gaussian anti-aliasing kernel.
    source : str
        Name used in the error raised when reproject is not installed.

    Returns
    -------
    image, variance, coverage : ndarray
        ``r ×`` the overlap-weighted mean of the input image, ``r ×`` that of
        the variance (noise per unit area kept; see the module notes), and the
        fraction of each output pixel that input pixels with data cover (0
        where none; 0 or 1 for ``"adaptive"``).
    """
    if method not in RESAMPLE_METHODS:
        raise ValueError(f"unknown resampling method {method!r}; choose from {', '.join(RESAMPLE_METHODS)}")
    planes = np.asarray(planes, dtype=np.float64)
    shape = (planes.shape[0], *shape_out)
    if method == "adaptive":
        reproject_adaptive = _reproject("reproject_adaptive", source)
        if missing is not None and missing.any():
            planes = np.where(missing, np.nan, planes)
        # "ignore": missing pixels and samples beyond the input's edge drop out of the kernel sums
        # (the default "strict" would blank every output pixel within the kernel of either).
        out, footprint = reproject_adaptive((planes, wcs_in), wcs_out, shape_out=shape, conserve_flux=True,
                                            boundary_mode="ignore", bad_value_mode="ignore")
        coverage = np.nan_to_num(footprint[0], nan=0.0)
        return out[0], out[1], coverage
    reproject_exact = _reproject("reproject_exact", source)
    if missing is None or not missing.any():
        out, coverage = reproject_exact((planes, wcs_in), wcs_out, shape_out=shape)
        coverage = np.nan_to_num(coverage[0], nan=0.0)
        return out[0] * area_ratio, out[1] * area_ratio, coverage
    # With missing pixels: resample the data with them zeroed and, as a third plane, the fraction
    # of data; their ratio is the overlap-weighted mean over the pixels that have data.
    valid = ~missing
    stacked = np.concatenate([np.where(valid, planes, 0.0), valid[None].astype(np.float64)])
    out, coverage = reproject_exact((stacked, wcs_in), wcs_out, shape_out=(3, *shape_out))
    frac = np.nan_to_num(out[2], nan=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        image = np.where(frac > 0, out[0] / frac, np.nan) * area_ratio
        variance = np.where(frac > 0, out[1] / frac, np.nan) * area_ratio
    return image, variance, np.nan_to_num(coverage[0], nan=0.0) * frac


# -- PSF kernels between grids ---------------------------------------------------------------------

def local_jacobian(wcs_from: WCS, wcs_to: WCS, x: float, y: float) -> np.ndarray:
    """``d(pixel of wcs_to) / d(pixel of wcs_from)`` at pixel ``(x, y)`` of ``wcs_from``, 2x2.

    Columns are the images of a unit step in x and in y; rows the x and y of ``wcs_to``.
    """
    xs = np.array([x - 0.5, x + 0.5, x, x])
    ys = np.array([y, y, y - 0.5, y + 0.5])
    xt, yt = (np.asarray(c, dtype=float) for c in pixel_to_pixel(wcs_from, wcs_to, xs, ys))
    return np.array([[xt[1] - xt[0], xt[3] - xt[2]], [yt[1] - yt[0], yt[3] - yt[2]]])


def _kernel_wcs(cd: np.ndarray, centre: float) -> WCS:
    """A small TAN WCS whose pixel offsets from ``centre`` map linearly through ``cd`` (degrees)."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [180.0, 0.0]
    w.wcs.crpix = [centre + 1.0, centre + 1.0]
    w.wcs.cd = cd
    w.wcs.set()
    return w


def _mapped_size(n_in: int, jac: np.ndarray) -> int:
    """Odd side of the output kernel covering an ``n_in``-pixel input kernel mapped through ``jac``: it
    reaches ``n_in / 2`` input pixels from its centre, in output pixels up to that times the largest
    stretch of the inverse map."""
    reach = 0.5 * n_in * float(np.linalg.norm(np.linalg.inv(jac), 2))
    return 2 * math.ceil(reach - 0.5) + 1


def warp_psf(psf: Psf | None, jacobian: np.ndarray, *, tolerance: float = PSF_TOLERANCE) -> Psf | None:
    """The PSF in the pixels of another grid, given the local map between the two.

    Parameters
    ----------
    psf : Psf or None
        Kernel in the input's pixels.
    jacobian : ndarray (2, 2)
        Input pixel offset per output pixel offset (`local_jacobian` from the
        output grid to the input's), columns x and y.
    tolerance : float
        Below this deviation from the identity the PSF is returned as is.

    Returns
    -------
    Psf or None
        The kernel mapped through ``jacobian`` with exact overlap weights
        (flux-conserving, so a coarser grid integrates it over the larger
        pixels), centred, odd-sized to cover the input kernel.
    """
    jac = np.asarray(jacobian, dtype=float)
    if psf is None or np.max(np.abs(jac - np.eye(2))) <= tolerance:
        return psf
    n_in = max(psf.shape)
    kernel = np.zeros((n_in, n_in))
    oy, ox = (n_in - psf.shape[0]) // 2, (n_in - psf.shape[1]) // 2
    kernel[oy:oy + psf.shape[0], ox:ox + psf.shape[1]] = psf.kernel
    n_out = _mapped_size(n_in, jac)
    scale = 1e-5  # degrees per input pixel: small enough that the TAN projection is linear
    w_in = _kernel_wcs(scale * np.eye(2), (n_in - 1) / 2)
    w_out = _kernel_wcs(scale * jac, (n_out - 1) / 2)
    image, _, _ = resample_flux(np.stack([kernel, np.zeros_like(kernel)]), w_in, w_out, (n_out, n_out),
                                abs(float(np.linalg.det(jac))), source="psf")
    return Psf(np.nan_to_num(image, nan=0.0))


def interpolate_psf(psf: Psf, jacobian: np.ndarray) -> Psf:
    """The PSF in the pixels of another grid by cubic-spline interpolation of its kernel, given the
    local map between the two (``jacobian`` as for `warp_psf`).

    Unlike `warp_psf` it adds no pixel's width: for a kernel that is rendered on the other grid and
    sampled back at the first grid's pixel centres (a template on a science exposure's grid,
    `dcrcoadd.template.build`), not for a kernel describing an image resampled with exact overlaps (a
    warp)."""
    jac = np.asarray(jacobian, dtype=float)
    n_out = _mapped_size(max(psf.shape), jac)
    v, u = np.mgrid[:n_out, :n_out] - (n_out - 1) / 2  # output pixel offsets (y, x)
    x_in = jac[0, 0] * u + jac[0, 1] * v + (psf.shape[1] - 1) / 2
    y_in = jac[1, 0] * u + jac[1, 1] * v + (psf.shape[0] - 1) / 2
    kernel = ndimage.map_coordinates(psf.kernel.astype(np.float64), [y_in, x_in], order=3, mode="constant")
    return Psf(np.clip(kernel, 0.0, None))
