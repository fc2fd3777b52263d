"""Noise-free truth images: the field in each subfilter at a fiducial achromatic PSF (nJy)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import astropy.units as u
import numpy as np
from astropy.table import Table
from astropy.wcs import WCS

from dcrcoadd.core.bandpass import Bandpass
from dcrcoadd.core.exposure import Exposure
from dcrcoadd.sim.config import SimulationConfig
from dcrcoadd.sim.render import ProfileCache, psf_kernel, truth_renderer
from dcrcoadd.sim.sources import SpectralGrid
from dcrcoadd.sim.visits import SimulatedVisit

__all__ = ["render_truth", "truth_psf_fwhm"]


def truth_psf_fwhm(config: SimulationConfig, visits: Sequence[SimulatedVisit]) -> float:
    """FWHM (arcsec) of the truth images' fiducial PSF."""
    if config.truth_psf_fwhm is not None:
        return float(config.truth_psf_fwhm)
    return float(np.mean([v.seeing for v in visits]))


def render_truth(config: SimulationConfig, cat: Table, bandpass: Bandpass, spectral: SpectralGrid,
                  visits: Sequence[SimulatedVisit], wcs: WCS, profiles: ProfileCache,
                  extents: np.ndarray) -> list[Exposure]:
    """One noise-free `Exposure` per subfilter (nJy, ``flux_calibration`` 1) at the fiducial PSF."""
    fwhm = truth_psf_fwhm(config, visits)
    scale = config.pixel_scale
    # wrap-around below the quietest visit's noise, in nJy
    noise = min(math.sqrt(v.sky + config.read_noise ** 2) * v.flux_calibration for v in visits)
    renderer = truth_renderer(fwhm, scale, noise)
    m = len(spectral.edges)
    images = np.zeros((m, *config.shape))
    sub = np.asarray(cat["subfilter_flux"], float).reshape(len(cat), m)
    renderer.draw(images, config.origin, np.asarray(cat["x"], float), np.asarray(cat["y"], float),
                  np.ones((len(cat), 1)), sub, extents, profiles)
    psf = psf_kernel(fwhm, scale)
    out = []
    for k, (lo, hi) in enumerate(spectral.edges):
        bp = Bandpass(f"{bandpass.name}_sub{k}", (lo + hi) / 2 * u.nm, (hi - lo) * u.nm)
        out.append(Exposure(image=images[k].astype(np.float32), origin=config.origin, wcs=wcs.deepcopy(),
                            psf=psf, bandpass=bp, flux_calibration=1.0))
    return out
