"""The PSF-aware forward model's PSF terms: the reference PSF and each warp's ratio ``P_i / P_ref``.

The model of a PSF-aware fit (``dcr.psf_model = "warp"``) is the sky in each subfilter seen
through one reference PSF ``P_ref``; warp ``i`` sees it through its own PSF, so its transfer
functions carry the factor ``r_i(k) = P_i(k) / P_ref(k)`` (`dcrcoadd.dcr.fourier.transfer`'s
``psf_ratio``). A template for a science exposure is rendered the same way with ``P_sci``.

Reference PSF (`reference_psf`)
    The narrowest input PSF's transfer function raised to a power ``α``:
    ``P_ref = |P_narrow|^α``, ``α`` chosen (by bisection) so that the kernel's FWHM is the
    requested one (default ``psf_reference_scale`` × the narrowest FWHM). For a Gaussian this is
    a Gaussian of ``sqrt(α)`` times the sigma, for a Kolmogorov PSF a Kolmogorov of ``α^0.6`` times
    the FWHM: the reference keeps the inputs' shape, so ``P_i / P_ref`` is bounded for every warp
    at least as wide (a Gaussian reference under Kolmogorov warps would make the ratio grow
    without bound at high frequency, where the Kolmogorov transfer falls more slowly).

Regularization where the reference has no power (`ratio_transfer`, `full_band_prior`)
    ``r_i = P_i conj(P_ref) / (|P_ref|² + ε²)`` (``ε = psf_ratio_floor``): ``P_i / P_ref`` where
    the reference carries power, tapered to 0 where ``|P_ref| ≪ ε`` instead of dividing by (near)
    zero; and its magnitude is capped at its largest value where ``|P_ref|² ≥ 1/4`` (1 for a
    warp wider than the reference), since where both transfers are small their ratio reflects the
    kernels' truncation and noise. There the data no longer constrain the model, which a prior
    sets instead: the full-band image is pulled towards 0 with strength
    ``λ_F(k) = ε_F² / (|P_ref|² + ε_F²)`` with ``ε_F = PRIOR_FLOOR_FACTOR · ε`` (one warp's
    information where the reference has no power, negligible where it has), since a sky seen
    through ``P_ref`` has no power where ``P_ref`` has none; the colours are set there by the
    exact solver's colour prior, whose cut-off term grows as ``1/|P_ref|²``.

Chromatic seeing (`seeing_scales`, ``psf_chromatic_index``)
    Atmospheric seeing narrows with wavelength, FWHM ∝ λ^α with α = −0.2 for Kolmogorov
    turbulence (±3 % across g). A warp's kernel (its PSF HDU, or a Gaussian of its seeing card)
    is taken as the band-averaged PSF at the band's effective wavelength ``λ_eff``; subfilter ``a``
    (throughput-weighted mean wavelength ``λ_a``) sees it widened by ``s_a = (λ_a/λ_eff)^α``,
    ``P_ia(k) = P_i(s_a k)`` (`kernel_transfer` with ``scale``: the kernel's Fourier series
    evaluated at the scaled frequencies, i.e. the kernel zoomed by band-limited interpolation and
    renormalized). The ratio becomes per warp and subfilter, ``r_ia = P_ia conj(P_ref) / (|P_ref|²
    + ε²)``, with the reference achromatic: the model is the sky in each subfilter seen through
    one ``P_ref``, so its subfilter images carry no chromatic seeing and a template rendered at
    ``P_sci`` gets ``P_sci,a`` the same way. The scaling is exact for a pure Kolmogorov (or
    Gaussian) atmosphere and approximate for a kernel that includes optics or pixel response (those
    do not scale with λ^α). Kernels measured from a warp's stars are the stars' band average and
    also carry the stars' DCR smear; they are scaled the same way (no better model is known for
    them). ``α = 0`` turns it off: every subfilter of a warp sees the same ``P_i``.

Kernels are constant over a patch (one per warp); the ratio is built per tile on the tile's
solve grid, so a spatially varying PSF model could give one kernel per tile.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from scipy import fft

from dcrcoadd.core.psf import Psf

__all__ = ["crop_to_grid", "full_band_prior", "kernel_transfer", "ratio_transfer", "ratio_transfers",
           "reference_psf", "reference_weight", "seeing_scales", "sharpest"]

log = logging.getLogger("dcrcoadd.dcr.psf_ratio")

#: The full-band prior's floor is this times the ratio's (`full_band_prior`): measured on 96-px
#: GalSim fields (Kolmogorov seeing, 25-px kernels), with the same floor for both a constant-seeing
#: field got 1-3 false detections more per science visit, and one with saturated stars 6 against 2
#: (the cores no warp sees are a null space the narrower reference lets fill with high frequencies).
PRIOR_FLOOR_FACTOR = 10.0


def kernel_transfer(kernel: np.ndarray, grid: Sequence[int], scale: float = 1.0) -> np.ndarray:
    """``rfft2`` (complex128, ``(gy, gx//2+1)``) of a centred, odd-sized kernel placed at pixel (0, 0) of
    the periodic ``grid`` (cropped symmetrically when larger than it); unit sum, so ``P(0) = 1``.

    ``scale`` ≠ 1: the kernel widened by ``scale`` in real space, ``P(scale · k)``, from the kernel's
    Fourier series at the scaled frequencies (band-limited interpolation of its samples; chromatic
    seeing, module notes)."""
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0:
        raise ValueError(f"PSF kernel must be 2-d with odd sides, got shape {k.shape}")
    scale = float(scale)
    if not scale > 0 or not np.isfinite(scale):
        raise ValueError(f"PSF scale must be positive and finite, got {scale}")
    gy, gx = (int(v) for v in grid)
    k = crop_to_grid(k, (gy, gx))
    k = k / k.sum()
    return _series_transfer(k, (gy, gx), scale)


def crop_to_grid(kernel: np.ndarray, grid: Sequence[int]) -> np.ndarray:
    """A centred, odd-sized ``kernel`` cropped symmetrically to fit ``grid`` (odd sides ``2c + 1 <= g``,
    an even grid side too); itself when it fits."""
    hy, hx = kernel.shape[0] // 2, kernel.shape[1] // 2
    cy, cx = min(hy, (int(grid[0]) - 1) // 2), min(hx, (int(grid[1]) - 1) // 2)
    return kernel[hy - cy:hy + cy + 1, hx - cx:hx + cx + 1]


def _series_transfer(kernel: np.ndarray, grid: tuple[int, int], scale: float) -> np.ndarray:
    """``P(s k) = Σ_yx p(y, x) exp(-2πi s (k_y y + k_x x))`` on the ``rfft2`` grid (for ``s = 1`` the
    zero-padded kernel's ``rfft2``): separable, one axis at a time, by matrix products in double
    precision, ten times faster than that transform for a kernel much smaller than the grid. BLAS
    sums in an order that may depend on its thread count, but the solver rounds these transfers to
    its own precision (single by default), which gives the same bits, as for
    `dcrcoadd.dcr.fourier.transfer`'s DCR phases."""
    gy, gx = grid
    cy, cx = kernel.shape[0] // 2, kernel.shape[1] // 2
    ey = np.exp(-2j * np.pi * scale * np.outer(fft.fftfreq(gy), np.arange(-cy, cy + 1)))
    ex = np.exp(-2j * np.pi * scale * np.outer(np.arange(-cx, cx + 1), fft.rfftfreq(gx)))
    return np.matmul(ey, np.matmul(kernel.astype(complex), ex))


def ratio_transfer(psf: np.ndarray, reference: np.ndarray, grid: Sequence[int], floor: float,
                   scale: float = 1.0, weight: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """``P conj(P_ref) / (|P_ref|² + floor²)`` on the ``rfft2`` grid of ``grid`` (module notes); ``scale``:
    ``P`` widened by that factor (one subfilter's chromatic seeing, `seeing_scales`). ``weight``:
    `reference_weight` of ``reference`` on this grid and floor, when already computed (it is the
    same for every warp)."""
    if weight is None:
        weight = reference_weight(reference, grid, floor)
    return _ratio(kernel_transfer(psf, grid, scale), *weight)


def reference_weight(reference: np.ndarray, grid: Sequence[int], floor: float,
                     dtype=np.complex128) -> tuple[np.ndarray, np.ndarray]:
    """The reference's part of every ratio on ``grid``: ``conj(P_ref) / (|P_ref|² + floor²)``, and where
    the reference carries at least half its power (``|P_ref|² ≥ 1/4``, the ratio's bound's domain).

    ``dtype``: the precision of the weight and of the ratios computed with it (`ratio_transfers`);
    the transfer itself is computed in double and rounded (the same bits whatever BLAS's threads)."""
    ref = kernel_transfer(reference, grid).astype(dtype, copy=False)
    power = np.abs(ref) ** 2
    weight = np.conj(ref)
    weight /= power + power.dtype.type(float(floor) ** 2)
    return weight, power >= 0.25


def _ratio(p: np.ndarray, weight: np.ndarray, strong: np.ndarray) -> np.ndarray:
    """`ratio_transfer` from the warp's transfer and `reference_weight`, in the weight's precision."""
    ratio = p.astype(weight.dtype, copy=False)
    ratio *= weight
    # Where both transfers are small their ratio is set by the kernels' truncation and noise, not
    # by the seeing: no larger than where the reference carries half its power (1 for a reference
    # narrower than the warp), so no frequency the data barely hold is amplified.
    magnitude = np.abs(ratio)
    bound = max(1.0, float(np.max(magnitude[strong], initial=1.0)))
    over = magnitude > bound
    if over.any():
        ratio[over] *= bound / magnitude[over]
    return ratio


def ratio_transfers(psf: np.ndarray, reference: np.ndarray, grid: Sequence[int], floor: float,
                    scales: np.ndarray | None = None,
                    weight: tuple[np.ndarray, np.ndarray] | None = None,
                    out: np.ndarray | None = None) -> np.ndarray:
    """`ratio_transfer` for every subfilter: ``(M, gy, gx//2+1)`` for ``scales`` (M,); ``(gy, gx//2+1)``
    (one ratio shared by every subfilter) when ``scales`` is None or all 1.

    ``out``: an array of that shape (any complex dtype) to write the ratios into, each rounded to its
    dtype as it is computed (the solver's ratios for all warps are one ``(N, M, ...)`` array in its own
    precision: no stacked double copy on the way, 17 ms a warp on a 2000-px tile).
    """
    if weight is None:
        weight = reference_weight(reference, grid, floor)
    if scales is None or np.all(np.asarray(scales) == 1.0):
        ratio = ratio_transfer(psf, reference, grid, floor, weight=weight)
        if out is None:
            return ratio
        out[...] = ratio
        return out
    if out is None:
        out = np.empty((len(scales), *weight[0].shape), dtype=weight[0].dtype)
    for a, s in enumerate(scales):
        out[a] = _ratio(kernel_transfer(psf, grid, float(s)), *weight)
    return out


def seeing_scales(bandpass, subfilter_edges: np.ndarray, index: float) -> np.ndarray:
    """Width of each subfilter's seeing relative to the band's, ``(λ_a / λ_eff)^index`` (module notes):
    ``λ_a`` the throughput-weighted mean wavelength of subfilter ``a`` (nm ``[start, end]`` rows of
    ``subfilter_edges``), ``λ_eff`` the band's effective wavelength. All 1 for ``index = 0``."""
    edges = np.asarray(subfilter_edges, dtype=float).reshape(-1, 2)
    if float(index) == 0.0:
        return np.ones(len(edges))
    lam_eff = float(bandpass.effective_wavelength.to_value("nm"))
    centres = np.empty(len(edges))
    for a, (lo, hi) in enumerate(edges):
        grid = np.linspace(lo, hi, 65)
        thr = np.asarray(bandpass.throughput(grid), dtype=float)
        total = float(np.trapezoid(thr, grid))
        centres[a] = float(np.trapezoid(thr * grid, grid)) / total if total > 0 else 0.5 * (lo + hi)
    return (centres / lam_eff) ** float(index)


def full_band_prior(reference: np.ndarray, grid: Sequence[int], floor: float) -> np.ndarray:
    """Strength ``ε² / (|P_ref|² + ε²)`` (units of one warp's information) of the prior pulling the
    model's full-band image towards 0 where the reference PSF has no power."""
    power = np.abs(kernel_transfer(reference, grid)) ** 2
    eps2 = float(floor) ** 2
    return eps2 / (power + eps2)


def sharpest(psfs: Sequence[Psf | None]) -> int:
    """Index of the narrowest PSF (by `Psf.fwhm`); `ValueError` when there is none."""
    widths = [np.inf if p is None else p.fwhm for p in psfs]
    if not widths or not np.isfinite(min(widths)):
        raise ValueError("no PSF to choose a reference from")
    return int(np.argmin(widths))


def _powered(transfer: np.ndarray, alpha: float, shape: tuple[int, int], grid) -> np.ndarray:
    # the sign is kept: a truncated kernel's transfer changes sign at high frequencies, and a
    # reference whose sign differs there from the warp's would flip those frequencies in the ratio
    kernel = fft.irfft2(np.sign(transfer) * np.abs(transfer) ** alpha, s=grid)
    kernel = np.roll(kernel, (grid[0] // 2, grid[1] // 2), axis=(0, 1))
    cy, cx = grid[0] // 2, grid[1] // 2
    hy, hx = shape[0] // 2, shape[1] // 2
    return kernel[cy - hy:cy + hy + 1, cx - hx:cx + hx + 1]


def reference_psf(psfs: Sequence[Psf | None], *, fwhm: float | None = None, scale: float = 0.9,
                  size: int | None = None) -> Psf:
    """The model's reference PSF: the narrowest of ``psfs`` with its transfer raised to the power that
    gives FWHM ``fwhm`` (pixels; default ``scale`` × the narrowest FWHM). Module notes.

    ``size`` (odd) is the kernel's side; default the narrowest kernel's.
    """
    base = psfs[sharpest(psfs)]
    target = float(fwhm) if fwhm is not None else float(scale) * base.fwhm
    if not target > 0:
        raise ValueError(f"reference FWHM must be positive, got {target}")
    shape = base.shape if size is None else (int(size), int(size))
    if shape[0] % 2 == 0 or shape[1] % 2 == 0:
        raise ValueError(f"reference PSF size must be odd, got {shape}")
    # a grid twice the stamp: the powered transfer's kernel has room before it wraps
    grid = (2 * max(shape[0], base.shape[0]) + 1, 2 * max(shape[1], base.shape[1]) + 1)
    # the real part: the transfer of the kernel's symmetric part (the centred kernel's phase is
    # its asymmetry, which a reference need not have)
    transfer = kernel_transfer(base.kernel, grid).real

    def width(alpha):
        return Psf(_powered(transfer, alpha, shape, grid)).fwhm

    lo, hi = 0.05, 4.0
    if not width(lo) <= target <= width(hi):
        raise ValueError(f"cannot make a reference PSF of FWHM {target:.2f} px from a kernel of FWHM "
                         f"{base.fwhm:.2f} px")
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if width(mid) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-4:
            break
    alpha = 0.5 * (lo + hi)
    ref = Psf(_powered(transfer, alpha, shape, grid))
    log.debug("reference PSF: FWHM %.3f px (narrowest input %.3f px, power %.3f)", ref.fwhm, base.fwhm, alpha)
    return ref
