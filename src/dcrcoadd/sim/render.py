"""GalSim rendering of sources on postage stamps, in Fourier space.

GalSim places the light. For each visit a `galsim.ChromaticAtmosphere` —
Kolmogorov seeing of the visit's FWHM at the band's effective wavelength,
chromatic seeing ∝ λ^-0.2, and GalSim's own refraction model (Filippenko
1982 / Edlén) at the visit's zenith distance, parallactic angle,
temperature, pressure and water-vapour pressure — is evaluated on a uniform
wavelength grid over the band (``wavelength_step``, 5 nm), convolved with
the pixel and drawn in Fourier space (`drawKImage`) on the postage-stamp
frequency grid, with its aliases folded in where the PSF is undersampled
(`ALIAS_TOLERANCE`: sampling the pixels does that). A source's stamp is the
sum of these monochromatic transforms weighted by its photon SED × throughput
(trapezoid rule: the integral GalSim's chromatic `drawImage` evaluates, here
shared by all sources), times its own profile's transform (galaxies) and the
phase of its sub-pixel position, inverse-FFT'd on the stamp and added to the
image. No
full-image FFT is used, and dcrcoadd's refraction/DCR code plays no part, so
the simulation is an independent check of it. Stamps are periodic: light
beyond a stamp's edge wraps round (fluxes stay exact), so stamp sizes (32 to
256 pixels) are chosen per source to keep that below 5 % of the pixel noise.
GalSim's world coordinates have +u west and +v north, so with a plain pixel
scale they are the image's +x and +y exactly when north is up and east is
left, as on the grid built here.

The PSF stored with a warp (`psf_kernel`) is the visit's Kolmogorov seeing at
the effective wavelength with the pixel response, without DCR (centred).

GalSim is optional: it is imported where it is first needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import astropy.units as u
import numpy as np
from astropy.table import Table

from dcrcoadd.core.bandpass import Bandpass
from dcrcoadd.core.observatory import Weather
from dcrcoadd.core.psf import Psf
from dcrcoadd.sim.sources import SpectralGrid, galaxy_profile
from dcrcoadd.sim.visits import SimulatedVisit

__all__ = ["ProfileCache", "StampRenderer", "psf_kernel", "truth_renderer", "visit_renderer"]

_STAMP_SIZES = (32, 64, 128, 256)
_WRAP_TOLERANCE = 0.05  # wrapped light per pixel allowed, in units of the pixel noise
#: A pixel samples the sky convolved with the PSF and the pixel's response, and sampling folds the
#: frequencies beyond Nyquist onto the grid's (aliasing). A stamp drawn from the transform up to
#: Nyquist alone is exact only for a PSF with no power beyond it; an undersampled PSF's is cut off,
#: and the stamp rings at Nyquist along the rows and columns through the source, over the whole
#: stamp: the 14-mag star of a simulated field on 0.4" pixels in 0.7" seeing (1.8 px FWHM) left 10-20
#: times the pixel noise along its row 20-100 px away, where sampling leaves nothing, and templates
#: could not match it. So where the PSF's transform on the Nyquist edge exceeds `ALIAS_TOLERANCE` of
#: its total, it is folded over the neighbouring copy of the grid's frequencies on every side (the
#: next lie beyond 1.5 times the sampling frequency, where a 1.75-px Kolmogorov PSF with its pixel
#: keeps 2e-8 of its total). Measured against GalSim's own drawing, which samples, for a Kolmogorov
#: PSF with its pixel: the cut-off stamp's largest error near the star is about half the PSF's
#: Nyquist-edge value (7.8e-3 of the peak at 2 px FWHM, 1.5e-3 at 2.5, 2.6e-4 at 3, 1.4e-4 at
#: 3.5, where the stamp's own wrap-round is as large); folded, 2e-5 to 8e-5. The tolerance folds
#: PSFs under about 3.0 px FWHM (Nyquist edge 5.5e-4 at 3.0 px, 2.5e-4 at 3.2), beyond which the
#: cut-off costs no more than the wrap-round; folding draws nine times the transform's pixels (a
#: 256² field of 11 visits on 0.4" pixels: 2.2 s against 0.7).
ALIAS_TOLERANCE = 5e-4
_ALIASES = tuple((ny, nx) for ny in (-1, 0, 1) for nx in (-1, 0, 1))


def _aliased_size(size: int) -> int:
    """Side of the k-image that holds a ``size`` grid's frequencies and their aliases one sampling
    frequency away on every side (the Nyquist column's up to +1.5 times it)."""
    return 3 * size + 2


def _folded(kimage: np.ndarray, size: int, aliased: bool) -> np.ndarray:
    """A centred k-image drawn on ``size`` (or, ``aliased``, `_aliased_size`) frequencies per side as
    ``(n_aliases, size, size // 2 + 1)`` in rfft order: per alias offset ``n`` (`_ALIASES`), the
    transform at the grid's frequencies plus ``n`` times the sampling frequency."""
    half = size // 2 + 1
    if not aliased:
        return np.fft.ifftshift(kimage)[None, :, :half]
    n = _aliased_size(size)
    m_y = np.fft.fftfreq(size, 1.0 / size).astype(int)  # 0, 1, ..., -1
    m_x = np.arange(half)
    out = np.empty((len(_ALIASES), size, half), dtype=np.complex128)
    for a, (ay, ax) in enumerate(_ALIASES):
        out[a] = kimage[(m_y + ay * size + n // 2)[:, None], (m_x + ax * size + n // 2)[None, :]]
    return out


class StampRenderer:
    """Sources through one (chromatic) PSF, stamp by stamp, in Fourier space.

    ``psf_at(λ)`` is a GalSim profile (with the pixel) for wavelength λ; its
    transform is drawn once per stamp size and wavelength. A source's stamp
    is ``irfft2(Σ_λ w_λ K_λ · G · phase)`` with ``w`` its chromatic weights,
    ``G`` its own profile's transform (galaxies) and the phase its position;
    for an undersampled PSF each factor is summed over the aliases of the
    grid's frequencies, which is what sampling the pixels does
    (`ALIAS_TOLERANCE`).
    """

    def __init__(self, psf_at: Callable[[float], object], waves: np.ndarray, scale: float,
                 wrap_radius: Callable[[float], float]):
        self.psf_at = psf_at
        self.waves = np.asarray(waves, dtype=float)
        self.scale = float(scale)
        self.wrap_radius = wrap_radius  # counts -> radius (px) beyond which wrapped light is negligible
        self._kpsf: dict[int, np.ndarray] = {}
        self.aliased: bool | None = None  # decided when the PSF's transform is first drawn

    @property
    def n_aliases(self) -> int:
        return len(_ALIASES) if self.aliased else 1

    def kpsf(self, size: int) -> np.ndarray:
        """Transforms of the PSF on a ``size`` stamp's frequency grid,
        ``(n_waves, n_aliases * size * (size // 2 + 1))`` (`_folded` per wavelength).

        A smaller stamp's frequencies are every ``r``-th of a larger one's (sizes are powers
        of two; the aliases' offsets are multiples of the sampling frequency on both), so the
        set drawn at the largest size serves them all.
        """
        if size in self._kpsf:
            return self._kpsf[size]
        half = size // 2 + 1
        big = max(self._kpsf, default=0)
        if big >= size and big % size == 0:
            r = big // size
            rows = (np.arange(size) * r) % big  # fft order: 0, 1, ..., -1 on both grids
            k = self._kpsf[big].reshape(self.waves.size, self.n_aliases, big, big // 2 + 1)
            out = k[:, :, :, :(half - 1) * r + 1:r][:, :, rows]  # (the column view first: one copy)
        else:
            dk = 2 * math.pi / (size * self.scale)
            if self.aliased is None:
                self.aliased = self._undersampled()
            n = _aliased_size(size) if self.aliased else size
            out = np.empty((self.waves.size, self.n_aliases, size, half), dtype=np.complex128)
            for i, w in enumerate(self.waves):
                out[i] = _folded(self.psf_at(float(w)).drawKImage(nx=n, ny=n, scale=dk).array, size,
                                 self.aliased)
        self._kpsf[size] = out.reshape(self.waves.size, -1)
        return self._kpsf[size]

    def _undersampled(self) -> bool:
        """Whether the PSF's transform exceeds `ALIAS_TOLERANCE` of its total on the Nyquist edge (the
        first row and column of a centred k-image, whatever the stamp's size) at the band's ends (the
        sharpest seeing is at one of them; refraction moves the PSF, not its transform's modulus)."""
        size = 32
        dk = 2 * math.pi / (size * self.scale)
        for w in {float(self.waves[0]), float(self.waves[-1])}:
            k = np.abs(self.psf_at(w).drawKImage(nx=size, ny=size, scale=dk).array)
            if max(k[0].max(), k[:, 0].max()) > ALIAS_TOLERANCE * k[size // 2, size // 2]:
                return True
        return False

    def stamp_size(self, counts: float, extent_px: float) -> int:
        need = 2.0 * (self.wrap_radius(counts) + extent_px)
        for s in _STAMP_SIZES:
            if s >= need:
                return s
        return _STAMP_SIZES[-1]

    def draw(self, outputs: np.ndarray, origin: tuple[int, int], xs: np.ndarray, ys: np.ndarray,
             weights: np.ndarray, coefficients: np.ndarray, extents: np.ndarray,
             profile_k: Callable[[int, int], np.ndarray | None], chunk: int = 64) -> None:
        """Add sources into ``outputs`` (n_out, ny, nx).

        Parameters
        ----------
        xs, ys : ndarray
            Parent-grid positions.
        weights : ndarray, (n, n_waves)
            Chromatic weights (rows sum to 1).
        coefficients : ndarray, (n, n_out)
            Flux of each source in each output.
        extents : ndarray
            Radius (px) a source's own profile needs beyond the PSF's.
        profile_k : callable
            ``(source index, stamp size, aliased) -> transform`` of the source's own profile
            (`_folded`), or None.
        """
        n_out, ny, nx = outputs.shape
        scale = self.scale
        brightness = np.abs(coefficients).max(axis=1) if coefficients.size else np.zeros(0)
        sizes = np.array([self.stamp_size(b, e) for b, e in zip(brightness, extents, strict=True)], int)
        ix = np.rint(xs - origin[0]).astype(int)
        iy = np.rint(ys - origin[1]).astype(int)
        dx, dy = xs - origin[0] - ix, ys - origin[1] - iy
        if sizes.size:
            self.kpsf(int(sizes.max()))  # draw once, at the largest size needed
        for size in np.unique(sizes):
            sel = np.nonzero(sizes == size)[0]
            # sources whose stamp misses the image entirely cost nothing
            h = size // 2
            sel = sel[(ix[sel] + size - h > 0) & (ix[sel] - h < nx)
                      & (iy[sel] + size - h > 0) & (iy[sel] - h < ny)]
            if sel.size == 0:
                continue
            kp = self.kpsf(int(size))
            kx = 2 * math.pi * np.fft.rfftfreq(size, d=scale)
            ky = 2 * math.pi * np.fft.fftfreq(size, d=scale)
            for start in range(0, sel.size, chunk):
                idx = sel[start:start + chunk]
                g = (weights[idx] @ kp).reshape(idx.size, self.n_aliases, size, size // 2 + 1)
                for j, src in enumerate(idx):
                    prof = profile_k(int(src), int(size), bool(self.aliased))
                    if prof is not None:
                        g[j] *= prof
                if self.aliased:
                    # alias n lies n sampling frequencies away: its phase at the source's
                    # sub-pixel offset d is exp(-2πi n·d) times the grid frequency's
                    offsets = np.array(_ALIASES, dtype=float)
                    alias_phase = np.exp(-2j * math.pi * (dy[idx, None] * offsets[None, :, 0]
                                                          + dx[idx, None] * offsets[None, :, 1]))
                    g = np.einsum("sayx,sa->syx", g, alias_phase)
                else:
                    g = g[:, 0]
                ox, oy = (h + dx[idx]) * scale, (h + dy[idx]) * scale
                g *= np.exp(-1j * ky[None, :, None] * oy[:, None, None])
                g *= np.exp(-1j * kx[None, None, :] * ox[:, None, None])
                stamps = np.fft.irfft2(g, s=(size, size), axes=(-2, -1))
                for j, src in enumerate(idx):
                    ya, xa = iy[src] - h, ix[src] - h
                    y_lo, x_lo = max(ya, 0), max(xa, 0)
                    y_hi, x_hi = min(ya + size, ny), min(xa + size, nx)
                    piece = stamps[j, y_lo - ya:y_hi - ya, x_lo - xa:x_hi - xa]
                    for o in range(n_out):
                        c = coefficients[src, o]
                        if c != 0:
                            outputs[o, y_lo:y_hi, x_lo:x_hi] += c * piece


def _wrap_radius_fn(fwhm: float, scale: float, noise: float, margin_px: float) -> Callable[[float], float]:
    """counts -> radius (px) where a Kolmogorov PSF of ``fwhm`` (arcsec) falls below the wrap tolerance."""
    import galsim

    kol = galsim.Kolmogorov(fwhm=fwhm)
    radii = np.arange(2, _STAMP_SIZES[-1] // 2 + 1, dtype=float)
    per_pixel = np.array([kol.xValue(galsim.PositionD(r * scale, 0.0)) for r in radii]) * scale ** 2
    floor = 2.0 * fwhm / scale  # never narrower than ~4 FWHM across

    def radius(counts: float) -> float:
        faint = np.nonzero(counts * per_pixel <= _WRAP_TOLERANCE * noise)[0]
        r = radii[faint[0]] if faint.size else radii[-1]
        return max(r, floor) + margin_px

    return radius


def _galsim_weather(weather: Weather) -> dict[str, float]:
    """GalSim's refraction arguments: temperature (K), pressure and water-vapour pressure (kPa)."""
    t_c = float(weather.temperature.to_value(u.deg_C, equivalencies=u.temperature()))
    # saturation vapour pressure over water, Alduchov & Eskridge (1996) Magnus form, Pa
    e_sat = 610.94 * math.exp(17.625 * t_c / (t_c + 243.04))
    return {"temperature": weather.temperature_kelvin, "pressure": weather.pressure.to_value(u.kPa),
            "H2O_pressure": weather.humidity / 100.0 * e_sat / 1000.0}


def visit_renderer(sv: SimulatedVisit, bandpass: Bandpass, spectral: SpectralGrid, scale: float,
                    noise: float) -> StampRenderer:
    """Renderer of one visit: its chromatic atmosphere (seeing and refraction) and the pixel."""
    import galsim

    lam_eff = bandpass.effective_wavelength.to_value(u.nm)
    kw = _galsim_weather(sv.visit.weather)
    atmosphere = galsim.ChromaticAtmosphere(
        galsim.Kolmogorov(fwhm=sv.seeing), base_wavelength=lam_eff,
        zenith_angle=sv.zenith_distance * galsim.degrees,
        parallactic_angle=sv.render_parallactic_angle * galsim.degrees, **kw)
    pixel = galsim.Pixel(scale)
    # the stamp must hold the whole refraction track and the broader blue PSF
    z = sv.zenith_distance * galsim.degrees
    track = max(abs(galsim.dcr.get_refraction(w, z, **kw) - atmosphere.base_refraction)
                for w in (spectral.waves[0], spectral.waves[-1])) * (180 / math.pi) * 3600 / scale
    blue_fwhm = sv.seeing * (spectral.waves[0] / lam_eff) ** -0.2
    return StampRenderer(lambda w: galsim.Convolve(atmosphere.evaluateAtWavelength(w), pixel),
                          spectral.waves, scale, _wrap_radius_fn(blue_fwhm, scale, noise, track + 1.0))


def truth_renderer(fwhm: float, scale: float, noise: float) -> StampRenderer:
    """Renderer of the truth images: an achromatic Kolmogorov PSF of ``fwhm`` with the pixel."""
    import galsim

    psf = galsim.Convolve(galsim.Kolmogorov(fwhm=fwhm), galsim.Pixel(scale))
    return StampRenderer(lambda w: psf, np.array([1.0]), scale, _wrap_radius_fn(fwhm, scale, noise, 1.0))


#: Half-width of a simulated PSF kernel in units of its FWHM. A Kolmogorov profile's wings are heavy: 0.7 %
#: of its light lies beyond 4 FWHM, 0.37 % beyond 6. With kernels of 4 FWHM, the templates of the
#: sharpest visits lacked the wing of a 14-mag star, which the science images have: a ring of 5-9σ
#: residuals 14-18 px from it, 3-17 false detections per visit on every field of one scenario seed
#: (`benchmarks.scenarios --seed 4`); with 6, none on its field without defects.
PSF_KERNEL_HALF_WIDTH = 6.0


def psf_kernel(fwhm: float, scale: float) -> Psf:
    """Kolmogorov PSF image of ``fwhm`` arcsec with the pixel response, odd-sized and centred, out to
    `PSF_KERNEL_HALF_WIDTH` FWHM."""
    import galsim

    fwhm_px = fwhm / scale
    size = 2 * int(math.ceil(PSF_KERNEL_HALF_WIDTH * fwhm_px)) + 1
    image = galsim.Kolmogorov(fwhm=fwhm).drawImage(nx=size, ny=size, scale=scale)
    return Psf(image.array)


class ProfileCache:
    """Transforms of galaxy profiles per stamp size, shared by all visits."""

    def __init__(self, catalog: Table, scale: float):
        self.scale = scale
        self.profiles = {i: galaxy_profile(row) for i, row in enumerate(catalog) if row["hlr"] > 0}
        self._k: dict[tuple[int, int, bool], np.ndarray] = {}

    def extent_px(self, catalog: Table) -> np.ndarray:
        """Radius (px) each source's own profile needs beyond the PSF's."""
        return 6.0 * np.asarray(catalog["hlr"], dtype=float) / self.scale

    def __call__(self, index: int, size: int, aliased: bool = False) -> np.ndarray | None:
        prof = self.profiles.get(index)
        if prof is None:
            return None
        key = (index, size, aliased)
        if key not in self._k:
            dk = 2 * math.pi / (size * self.scale)
            n = _aliased_size(size) if aliased else size
            self._k[key] = _folded(prof.drawKImage(nx=n, ny=n, scale=dk).array, size, aliased)
        return self._k[key]
