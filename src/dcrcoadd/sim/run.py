"""`simulate`: synthetic warps with real differential chromatic refraction, and their truth.

A field on a common TAN pixel grid (north up, east left; `field_wcs`) is
observed in a series of visits (`make_visits`); every visit is a complete
`Exposure` (image in counts with `flux_calibration` nJy per count, mask,
variance, PSF, visit metadata, band). GalSim renders the sources
(`dcrcoadd.sim.render`) through each visit's chromatic atmosphere.

Units and noise
---------------
Fluxes are in nJy (AB). A visit's counts per nJy follow the zero point (AB
magnitude giving one count per second at airmass 1), the exposure time and
a grey extinction; its sky from a surface brightness in mag/arcsec². Images
are sky-subtracted; noise is Gaussian with the variance of sky + source
Poisson + read noise, which is also the variance plane. The PSF stored with
a warp is the visit's Kolmogorov seeing at the effective wavelength with the
pixel response, without DCR (centred).

Defects (each optional, each flagged exactly where added; `dcrcoadd.sim.defects`):
cosmic rays (CR), bad columns (BAD), saturated bright stars clipped at the
full well (SAT), a chip gap of NaN pixels (NO_DATA) bordered by EDGE pixels,
and satellite streaks in some visits, left unmasked for artifact rejection
to find (their footprints are in the truth). The DETECTED plane holds
5-sigma detections of the visit grown by one PSF FWHM, as upstream
processing sets it.

Truth: the catalogue (positions, SED parameters, full-band and per-subfilter
fluxes), noise-free images per subfilter at a fiducial achromatic PSF (nJy),
streak footprints, and for each visit a noise twin (same conditions, same
static defects, independent noise; no cosmic rays or streak).
"""

from __future__ import annotations

import logging
import math
import time as _time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from astropy.table import Table
from astropy.wcs import WCS

from dcrcoadd.coadd.inputs import physical_memory
from dcrcoadd.core.bandpass import Bandpass
from dcrcoadd.core.exposure import Exposure
from dcrcoadd.core.observatory import Observatory
from dcrcoadd.core.psf import Psf
from dcrcoadd.errors import ConfigError
from dcrcoadd.ops.detection import detection_mask
from dcrcoadd.sim.config import SimulationConfig
from dcrcoadd.sim.defects import apply_defects, plan_defects, streaked_visits
from dcrcoadd.sim.render import ProfileCache, psf_kernel, visit_renderer
from dcrcoadd.sim.result import Simulation
from dcrcoadd.sim.sources import SpectralGrid, complete_catalog, make_catalog
from dcrcoadd.sim.streams import Stream
from dcrcoadd.sim.truth import render_truth
from dcrcoadd.sim.visits import SimulatedVisit, field_wcs, make_visits
from dcrcoadd.sim.writers import write_simulation

#: Bytes per pixel a simulation holds for each visit (warp and noise twin: image, variance, mask; the
#: noiseless model), and for the field (truth, catalogue rendering, one visit's working arrays);
#: measured with tracemalloc on 512² fields of 4 and 12 visits.
BYTES_PER_VISIT_PIXEL = 22
BYTES_PER_FIELD_PIXEL = 380

__all__ = ["simulate"]

log = logging.getLogger("dcrcoadd.sim.run")


def simulate(config: SimulationConfig | None = None, outdir: str | Path | None = None,
             progress: Callable[[int, int], None] | None = None, *, catalog: Table | None = None,
             observatory: Observatory | None = None) -> Simulation:
    """Simulate warps of a field with GalSim-rendered DCR, and their truth.

    Parameters
    ----------
    config : SimulationConfig, optional
        Default: `SimulationConfig()` (256x256, 8 visits, ~100 stars, LSST g, Rubin).
    outdir : path-like, optional
        Also write everything there (see `write_simulation`).
    progress : callable, optional
        Called as ``progress(done, total)`` after each visit.
    catalog : `~astropy.table.Table`, optional
        Sources to use instead of random ones: ``x``, ``y`` (parent pixels) or
        ``ra``, ``dec``; ``flux`` (nJy) or ``mag``; optional SED columns as in
        `make_catalog` (default a 6000 K black body).
    observatory : Observatory, optional
        Instead of the configured site.

    Returns
    -------
    Simulation
    """
    config = config or SimulationConfig()
    _check_fits_in_memory(config)
    t_start = _time.perf_counter()
    bandpass = config.resolve_bandpass()
    wcs = field_wcs(config)
    spectral = SpectralGrid.build(bandpass, config.n_subfilters, config.wavelength_step)
    visits = make_visits(config, observatory)
    cat = complete_catalog(make_catalog(config) if catalog is None else catalog, config, wcs, spectral,
                           bandpass.name)
    n_src = len(cat)
    xs, ys = np.asarray(cat["x"], float), np.asarray(cat["y"], float)
    flux = np.asarray(cat["flux"], float)
    weights = np.array([spectral.render_weights(row) for row in cat]).reshape(n_src, spectral.waves.size)
    profiles = ProfileCache(cat, config.pixel_scale)
    extents = profiles.extent_px(cat)
    scale = config.pixel_scale
    shape = config.shape
    log.info("simulating %d visits of %dx%d pixels with %d sources in %s", len(visits), shape[1], shape[0],
             n_src, bandpass.name)

    streaked = streaked_visits(config, len(visits))

    warps, twins, models, defects, streaks = [], [], [], [], []
    for i, sv in enumerate(visits):
        t0 = _time.perf_counter()
        noise = math.sqrt(sv.sky + config.read_noise ** 2)
        renderer = visit_renderer(sv, bandpass, spectral, scale, noise)
        model = np.zeros((1, *shape))
        counts = flux / sv.flux_calibration
        renderer.draw(model, config.origin, xs, ys, weights, counts[:, None], extents, profiles)
        model = model[0]
        psf = psf_kernel(sv.seeing, scale)
        variance = sv.sky + np.maximum(model, 0.0) + config.read_noise ** 2
        plan = plan_defects(config, i, sv, noise, i in streaked)

        sigma = np.sqrt(variance)
        image = model + np.random.default_rng([config.seed, Stream.NOISE, i]).standard_normal(shape) * sigma
        var = variance.copy()
        flags = apply_defects(image, var, sv.sky, config, plan, transient=True)
        warps.append(_make_exposure(config, image, var, flags, sv, psf, wcs, bandpass))
        defects.append(flags)
        if plan.streak is not None:
            streaks.append(plan.streak)
        if config.noise_twins:
            twin_noise = np.random.default_rng([config.seed, Stream.TWIN_NOISE, i]).standard_normal(shape)
            twin = model + twin_noise * sigma
            var = variance.copy()
            twin_flags = apply_defects(twin, var, sv.sky, config, plan, transient=False)
            twins.append(_make_exposure(config, twin, var, twin_flags, sv, psf, wcs, bandpass))
        models.append(model.astype(np.float32))
        log.info("visit %d: airmass %.3f, parallactic angle %.1f deg, seeing %.2f arcsec (%.2f s)",
                 sv.id, sv.visit.airmass, sv.parallactic_angle, sv.seeing, _time.perf_counter() - t0)
        if progress is not None:
            progress(i + 1, len(visits))

    truth = render_truth(config, cat, bandpass, spectral, visits, wcs, profiles, extents)
    sim = Simulation(config=config, bandpass=bandpass, visits=visits, warps=warps, twins=twins, catalog=cat,
                     truth=truth, subfilter_edges=spectral.edges, models=models, defects=defects,
                     streaks=streaks)
    log.info("simulation done in %.2f s", _time.perf_counter() - t_start)
    if outdir is not None:
        write_simulation(sim, outdir)
    return sim


def _check_fits_in_memory(config: SimulationConfig) -> None:
    """`ConfigError` for a simulation that cannot fit in this machine's memory: every visit is held
    until the end, so it could only fail after rendering (100 000 visits ran for hours, silently)."""
    memory = physical_memory()
    height, width = config.shape
    per_visit = BYTES_PER_VISIT_PIXEL if config.noise_twins else BYTES_PER_VISIT_PIXEL // 2
    need = height * width * (per_visit * config.n_visits + BYTES_PER_FIELD_PIXEL)
    if memory is not None and need > memory:
        raise ConfigError(f"{config.n_visits} visits of {width}x{height} px need about "
                          f"{need / 2**30:.0f} GiB, more than this machine's {memory / 2**30:.0f} GiB: "
                          "simulate fewer visits (--n-visits) or a smaller field (--size)")


def _make_exposure(config: SimulationConfig, image: np.ndarray, variance: np.ndarray,
                   flags: dict[str, np.ndarray], sv: SimulatedVisit, psf: Psf, wcs: WCS,
                   bandpass: Bandpass) -> Exposure:
    """A visit's warp (or noise twin): image, variance and PSF, its defect flags and the DETECTED plane."""
    exp = Exposure(image=image.astype(np.float32), variance=variance.astype(np.float32),
                   origin=config.origin, wcs=wcs.deepcopy(), psf=psf, visit=sv.visit,
                   bandpass=bandpass, flux_calibration=sv.flux_calibration)
    for plane, where in flags.items():
        exp.set_mask(plane, where)
    # upstream detection: interpolated-over defects (CR, BAD) and missing data are not sources
    valid = ~exp.mask_of("NO_DATA", "BAD", "CR")
    fwhm_px = sv.seeing / config.pixel_scale
    detected = detection_mask(exp.image, exp.variance, psf.kernel, threshold=config.detection_threshold,
                              grow_radius=fwhm_px, valid=valid)
    exp.set_mask("DETECTED", detected)
    return exp
