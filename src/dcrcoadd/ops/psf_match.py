"""Round PSF-matching transfer functions fitted in Fourier space.

An image ``d`` and a model of it ``m`` rendered at a known PSF (with everything else, DCR
included, already in the model) differ by the ratio of the image's PSF to the model's. For round
PSFs that ratio is a function of ``|k|`` alone, and its least-squares value in a ring of
frequencies is ``Σ Re(D M*) / Σ |M|²``: every source in the image contributes, not only
isolated bright stars, and the fit measures directly what a difference image needs. Where the
model has little power (beyond the PSF's cut-off) a ring's estimate is noise and is shrunk
towards zero by its signal-to-noise ratio.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import fft, ndimage

from dcrcoadd.core.psf import Psf


def cosine_window(shape: tuple[int, int], width: int) -> np.ndarray:
    """Weights rising from 0 at the border to 1 at ``width`` px inside it (cosine), so that the
    FFT's periodic wrap joins no discontinuity."""

    def one(n: int) -> np.ndarray:
        x = np.arange(n, dtype=np.float64)
        d = np.clip(np.minimum(x, n - 1 - x) / max(width, 1), 0.0, 1.0)
        return 0.5 - 0.5 * np.cos(np.pi * d)

    return one(shape[0])[:, None] * one(shape[1])[None, :]


#: `RoundTransfer.low_frequency` of a fit the data constrain (`RoundTransfer.constrained`).
CONSTRAINED_LOW_FREQUENCY = (0.5, 2.0)


@dataclass(frozen=True)
class RoundTransfer:
    """A round transfer function sampled at ring radii (cycles per pixel), e.g. a fitted PSF ratio."""

    radius: np.ndarray
    values: np.ndarray

    @property
    def low_frequency(self) -> float:
        """The fitted ratio at the lowest frequency measured (NaN with none): about 1 when the image
        shows the model's sources (their fluxes agree), far off when it does not (no usable pixel,
        an empty or wrong field), and then the rest of the fit is the prior's, not the data's."""
        return float(self.values[1]) if len(self.values) > 1 else math.nan

    def constrained(self) -> bool:
        """Whether `low_frequency` lies within `CONSTRAINED_LOW_FREQUENCY`."""
        lo, hi = CONSTRAINED_LOW_FREQUENCY
        return bool(lo <= self.low_frequency <= hi)

    def on_grid(self, grid: Sequence[int]) -> np.ndarray:
        """Its values on an ``rfft2`` grid of shape ``grid`` (0 beyond the last ring)."""
        gy, gx = grid
        r = np.hypot(fft.fftfreq(gy)[:, None], fft.rfftfreq(gx)[None, :])
        return np.interp(r, self.radius, self.values, right=0.0)


def fit_round_transfer(data: np.ndarray, model: np.ndarray, variance: np.ndarray, good: np.ndarray, *,
                       prior_weight: float = 3.0, window_px: int = 16, ring_width: float | None = None,
                       footprint_sigma: float = 1.0, max_footprint_px: int = 4096) -> RoundTransfer:
    """The round transfer function ``K(|k|)`` that best maps ``model`` onto ``data``.

    Parameters
    ----------
    data, model, variance : 2-d arrays on one grid
        The image, its model at a known PSF (NaN where it does not reach), and the image's variance.
    good : 2-d bool array
        Pixels of ``data`` to use. A source with a pixel that is not (a saturated core, a cosmic
        ray, a bad column) is left out whole: its footprint in ``model`` above ``footprint_sigma``
        times the image's median noise, grown by 2 px, is zero in both images. Zeroing only the
        bad pixels would cut holes with sharp edges into bright stars, whose power at high
        frequencies is the same in both images and pulls the ratio towards 1 (on defect-laden
        fields every fitted PSF came out at the reference's width; filling the holes from the
        fit and iterating converged too slowly); cut at the footprint's faint edge, the rest of
        the image keeps the convolution relation.
    max_footprint_px : int
        A footprint larger than this (pixels) may be a blend of many sources: in a crowded field the
        sky above one sigma percolates into one footprint over most of the image, and one bad pixel
        in it left 20 % of the image to fit (fitted PSFs 30 % off, or no fit at all). Such a footprint
        is split into its sources (`_sources_of`: its cores above a higher threshold, each pixel to
        the nearest), and only those holding a bad pixel are left out; a single bright star's, which
        no higher threshold splits, stays whole.
    prior_weight : float
        A ring keeps ``snr / (snr + prior_weight)`` of its own estimate, where ``snr`` is its
        model power over the noise power it would carry: where the model has no power the ratio
        goes to zero (a prior from PSFs measured on stars did worse: their errors at high
        frequencies came back as residuals around bright stars).
    window_px : int
        Width of the `cosine_window` at the border (FFT periodicity).
    ring_width : float, optional
        Ring width in cycles per pixel; default two frequency samples of the shorter axis.

    Returns
    -------
    RoundTransfer
        The fitted ratio at each ring's power-weighted radius (cycles per pixel), 1 at ``k = 0``
        (flux is the model's).
    """
    reach = np.isfinite(model)
    m = np.where(reach, model, 0.0)
    usable = np.asarray(good, bool) & reach & np.isfinite(data) & np.isfinite(variance)
    missing = reach & ~usable
    if missing.any():
        noise = float(np.sqrt(np.median(variance[usable]))) if usable.any() else 0.0
        missing |= _footprints_touching(m, missing, footprint_sigma * noise, max_footprint_px)
    excluded = ndimage.binary_dilation(missing | ~reach, iterations=2)
    w = cosine_window(data.shape, window_px) * ~excluded
    spec_d = fft.rfft2(np.where(excluded, 0.0, data) * w)
    spec_m = fft.rfft2(m * w)
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
    noise_power = float(np.sum(np.where(excluded, 0.0, variance) * w * w))  # white noise, per mode
    # each ring's estimate belongs to its power-weighted radius, not its centre: the model's power
    # falls across a ring, and the ratio's slope would otherwise shift the fit outwards
    weighted = np.bincount(ring, (twice * np.abs(spec_m) ** 2 * r).ravel(), n_rings)
    centres = (np.arange(n_rings) + 0.5) * width
    radius = np.divide(weighted, power, out=centres.copy(), where=power > 0)
    radius[0] = 0.0
    ratio = np.divide(cross, power, out=np.zeros(n_rings), where=power > 0)
    snr = power / max(noise_power, np.finfo(float).tiny) / np.maximum(modes, 1.0)
    values = snr / (snr + prior_weight) * ratio
    values[0] = 1.0
    return RoundTransfer(radius, values)


def _footprints_touching(model: np.ndarray, missing: np.ndarray, threshold: float, max_area: int,
                         max_doublings: int = 12) -> np.ndarray:
    """The footprints of ``model`` above ``threshold`` that hold a ``missing`` pixel. One larger than
    ``max_area`` pixels may be a blend of many sources (`_sources_of`): then only the sources holding
    a missing pixel are left out, each whole, cut where it meets its neighbours."""
    labels, _ = ndimage.label(model > threshold)
    touched = np.unique(labels[missing & (labels > 0)])
    touched = touched[touched > 0]
    sizes = np.bincount(labels.ravel())
    out = np.isin(labels, touched[sizes[touched] <= max_area])
    for blend in touched[sizes[touched] > max_area]:
        out |= _sources_of(model, labels == blend, missing, threshold, max_area, max_doublings)
    return out


def _sources_of(model: np.ndarray, footprint: np.ndarray, missing: np.ndarray, threshold: float,
                max_area: int, max_doublings: int) -> np.ndarray:
    """The part of a large ``footprint`` that belongs to sources holding a ``missing`` pixel: cut at
    twice the threshold (or four times, ... up to ``max_doublings`` doublings) until it falls into
    several cores, each of its pixels belongs to the nearest core. One that never splits (a single
    bright star, whose footprint can be larger than a blend's) stays whole; a core's part larger than
    ``max_area`` is split again."""
    n = 1
    for _ in range(max_doublings):
        threshold *= 2.0
        cores, n = ndimage.label(footprint & (model > threshold))
        if n != 1:
            break
    if n < 2:
        return footprint
    _, (iy, ix) = ndimage.distance_transform_edt(cores == 0, return_indices=True)
    owner = np.where(footprint, cores[iy, ix], 0)
    out = np.zeros(footprint.shape, bool)
    for core in np.unique(owner[missing & footprint]):
        if core == 0:
            continue
        part = owner == core
        out |= part if part.sum() <= max_area else _sources_of(model, part, missing, threshold, max_area,
                                                                max_doublings)
    return out


def convolve_round(kernel: np.ndarray, transfer: RoundTransfer, size: int) -> Psf:
    """``kernel`` convolved with the round ``transfer``, as a centred, normalized `Psf` of ``size`` px
    (odd)."""
    k = np.asarray(kernel, dtype=np.float64)
    if size % 2 == 0 or size < k.shape[0]:
        raise ValueError(f"size must be odd and at least the kernel's {k.shape[0]}, got {size}")
    pad = (size - k.shape[0]) // 2
    k = fft.ifftshift(np.pad(k, [(pad, pad), (pad, pad)]))
    out = fft.irfft2(fft.rfft2(k) * transfer.on_grid((size, size)), s=(size, size))
    out = np.clip(fft.fftshift(out), 0.0, None)
    return Psf(out / out.sum())
