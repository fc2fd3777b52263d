"""Round PSF-matching transfer functions fitted in Fourier space.

An image ``d`` and a model of it ``m`` rendered at a known PSF (with everything else, DCR
included, already in the model) differ by the ratio of the image's PSF to the model's. For round
PSFs that ratio is a function of ``|k|`` alone, and its least-squares value in a ring of
frequencies is ``Σ Re(D M*) / Σ |M|²``: every source in the image contributes, not only
isolated bright stars, and the fit measures directly what a difference image needs. Where the
model has little power (beyond the PSF's cut-off) a ring's estimate is noise and is shrunk
towards a prior ratio by its signal-to-noise ratio.
"""

from __future__ import annotations

import numpy as np
from scipy import fft

from dcrcoadd.core.psf import Psf


def cosine_window(shape: tuple[int, int], width: int) -> np.ndarray:
    """Weights rising from 0 at the border to 1 at ``width`` px inside it (cosine), so that the
    FFT's periodic wrap joins no discontinuity."""

    def one(n: int) -> np.ndarray:
        x = np.arange(n, dtype=np.float64)
        d = np.clip(np.minimum(x, n - 1 - x) / max(width, 1), 0.0, 1.0)
        return 0.5 - 0.5 * np.cos(np.pi * d)

    return one(shape[0])[:, None] * one(shape[1])[None, :]


def radial_transfer(kernel: np.ndarray, n: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``(|k|, T)``: a round kernel's transfer function along the x frequency axis, ``n`` samples."""
    k = np.asarray(kernel, dtype=np.float64)
    row = np.abs(fft.rfft2(k / k.sum(), s=(n, n))[0])
    return fft.rfftfreq(n), row


def fit_round_transfer(data: np.ndarray, model: np.ndarray, variance: np.ndarray, good: np.ndarray, *,
                       prior: tuple[np.ndarray, np.ndarray] | None = None, prior_weight: float = 3.0,
                       window_px: int = 16, ring_width: float | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The round transfer function ``K(|k|)`` that best maps ``model`` onto ``data``.

    Parameters
    ----------
    data, model, variance : 2-d arrays on one grid
        The image, its model at a known PSF, and the image's variance.
    good : 2-d bool array
        Pixels to use (others count as zero, after the `cosine_window` of ``window_px``).
    prior : (radius, ratio), optional
        The ratio expected beforehand (e.g. from PSFs measured on stars), towards which noisy
        rings are shrunk; default zero (no power where the data say nothing).
    prior_weight : float
        A ring keeps ``snr / (snr + prior_weight)`` of its own estimate, where ``snr`` is its
        model power over the noise power it would carry.
    ring_width : float, optional
        Ring width in cycles per pixel; default two frequency samples of the shorter axis.

    Returns
    -------
    radius, transfer : 1-d arrays
        Ring centres (cycles per pixel) and the fitted ratio, 1 at ``k = 0`` (flux is the model's).
    """
    good = np.asarray(good, bool) & np.isfinite(data) & np.isfinite(model) & np.isfinite(variance)
    w = cosine_window(data.shape, window_px) * good
    spec_d = fft.rfft2(np.where(good, data, 0.0) * w)
    spec_m = fft.rfft2(np.where(good, model, 0.0) * w)
    ny, nx = data.shape
    r = np.hypot(fft.fftfreq(ny)[:, None], fft.rfftfreq(nx)[None, :])
    # the half plane holds every frequency but the k_x = 0 and Nyquist columns twice
    twice = np.full(r.shape, 2.0)
    twice[:, 0] = 1.0
    if nx % 2 == 0:
        twice[:, -1] = 1.0
    width = ring_width or 2.0 / min(ny, nx)
    ring = np.floor(r / width).astype(np.int64).ravel()
    n_rings = int(ring.max()) + 1
    cross = np.bincount(ring, (twice * (spec_d * spec_m.conj()).real).ravel(), n_rings)
    power = np.bincount(ring, (twice * np.abs(spec_m) ** 2).ravel(), n_rings)
    modes = np.bincount(ring, twice.ravel(), n_rings)
    noise = float(np.sum(np.where(good, variance, 0.0) * w * w))  # white noise: E|N(k)|² per mode
    radius = (np.arange(n_rings) + 0.5) * width
    radius[0] = 0.0
    ratio = np.divide(cross, power, out=np.zeros(n_rings), where=power > 0)
    snr = power / max(noise, np.finfo(float).tiny) / np.maximum(modes, 1.0)
    expected = np.zeros(n_rings) if prior is None else np.interp(radius, prior[0], prior[1], right=0.0)
    keep = snr / (snr + prior_weight)
    transfer = keep * ratio + (1.0 - keep) * expected
    transfer[0] = 1.0
    return radius, transfer


def convolve_round(kernel: np.ndarray, radius: np.ndarray, transfer: np.ndarray, size: int) -> Psf:
    """``kernel`` convolved with the round transfer function ``transfer(radius)``, as a centred,
    normalized `Psf` of ``size`` px (odd)."""
    k = np.asarray(kernel, dtype=np.float64)
    if size % 2 == 0 or size < k.shape[0]:
        raise ValueError(f"size must be odd and at least the kernel's {k.shape[0]}, got {size}")
    pad = (size - k.shape[0]) // 2
    k = fft.ifftshift(np.pad(k, [(pad, pad), (pad, pad)]))
    fy, fx = fft.fftfreq(size)[:, None], fft.fftfreq(size)[None, :]
    ratio = np.interp(np.hypot(fy, fx), radius, transfer, right=0.0)
    out = np.clip(fft.fftshift(fft.ifft2(fft.fft2(k) * ratio).real), 0.0, None)
    return Psf(out / out.sum())
