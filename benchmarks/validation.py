"""Science-quality validation on DMTN-037's axes, on GalSim-simulated g-band star fields.

One simulation (`dcrcoadd.sim.simulate`, defects off, constant seeing so
that direct pixel subtraction is meaningful, one catalogue so the sky is the
same in every visit) holds

* the model visits: airmass evenly over 1.0-2.0, parallactic angles over
  100-260 degrees in shuffled order (`benchmarks.dcr_assemble.visit_conditions`);
* the held-out science visits at elevations 30, 35, ..., 80 degrees at one
  parallactic angle, and the visits 5 and 10 degrees closer to the zenith at the
  same angle (DMTN-037 compares with an image "10 degrees closer to zenith"),
  each with its noise twin (same sky and conditions, new noise).

Stars follow a rough magnitude-limited spectral mix (`SPECTRAL_MIX`) of black
bodies, fluxes as `dcrcoadd.sim.make_catalog` draws them.

Measurements
------------
Dipoles / false detections
    For each held-out visit, 5-sigma detections (connected groups of at least 3
    pixels, both signs) and the chi-square per source pixel (the one statistic of
    `dcrcoadd.report.scores`, which the report and the demo quote) in science − template for
    the DCR-matched template (`dcrcoadd.template.build.make_template`), the baseline
    coadd of the same warps, the single visits 5 and 10 degrees closer to the
    zenith, and the noise twin (the noise floor).
Subfilter spectra
    Forced Gaussian-weighted photometry at the true positions of isolated stars
    in the bluest and reddest subfilter images of the model, as a colour
    ``-2.5 log10(f_blue / f_red)`` against the simulator's truth for the same
    subfilter ranges: slope, intercept and robust scatter of the line, for the
    convergence thresholds of `ValidationSetup.thresholds` (DMTN-037: too flat
    at 1 %, better at 0.1 %).
Flux and astrometry
    Photometry of the stacked DCR coadd and of the baseline coadd against the
    catalogue flux; Gaussian-weighted centroids against the true (unrefracted)
    positions, with the trend of the offsets with colour (DCR moves blue and red
    stars apart in a plain coadd); total-flux ratio DCR coadd / baseline coadd.

Run::

    .venv/bin/python -m benchmarks.validation            # 512x512, 2000 stars (~3 min)
    .venv/bin/python -m benchmarks.validation --quick    # 192x192 (~30 s)
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

try:
    from . import common
    from .dcr_assemble import visit_conditions
except ImportError:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks import common
    from benchmarks.dcr_assemble import visit_conditions

#: Spectral classes of the stars: (fraction, lowest and highest temperature in K). A rough
#: mix for a magnitude-limited high-latitude field (G/K/M dwarfs dominate, few hot stars).
SPECTRAL_MIX = {
    "M": (0.25, 3000.0, 3700.0),
    "K": (0.30, 3700.0, 5200.0),
    "G": (0.25, 5200.0, 6000.0),
    "F": (0.14, 6000.0, 7500.0),
    "A": (0.05, 7500.0, 10000.0),
    "B": (0.01, 10000.0, 30000.0),
}
KINDS = ("dcr", "baseline", "single_5deg", "single_10deg", "noise_twin")


@dataclass(frozen=True)
class ValidationSetup:
    """What to simulate and measure (angles in degrees, seeing in arcsec)."""

    size: int = 512
    n_stars: int = 2000
    n_model_visits: int = 12
    science_elevations: tuple[float, ...] = tuple(range(30, 81, 5))
    comparison_offsets: tuple[float, ...] = (5.0, 10.0)
    science_parallactic_angle: float = 135.0
    seeing: float = 0.8
    seed: int = 8
    thresholds: tuple[float, ...] = (0.01, 0.001, 0.0001)
    threshold_max_num_iter: int = 30
    snr_min_color: float = 20.0
    snr_min_position: float = 50.0
    edge: int = 16

    @property
    def visit_elevations(self) -> list[float]:
        """Elevations of all non-model visits: science and comparisons, capped at the zenith."""
        return sorted(
            {min(e + o, 90.0) for e in self.science_elevations for o in (0.0, *self.comparison_offsets)}
        )


DEFAULT = ValidationSetup()
QUICK = ValidationSetup(
    size=192,
    n_stars=280,
    n_model_visits=8,
    science_elevations=(30.0, 50.0, 70.0),
    thresholds=(0.0001,),
    threshold_max_num_iter=15,
)


# -- simulation ---------------------------------------------------------------------------------------


def star_catalog(config, seed: int):
    """`make_catalog` stars with temperatures redrawn from `SPECTRAL_MIX`."""
    from dcrcoadd.sim import make_catalog

    cat = make_catalog(config)
    rng = np.random.default_rng([seed, 77])
    names = list(SPECTRAL_MIX)
    p = np.array([SPECTRAL_MIX[k][0] for k in names])
    cls = rng.choice(len(names), size=len(cat), p=p / p.sum())
    lo = np.array([SPECTRAL_MIX[names[c]][1] for c in cls])
    hi = np.array([SPECTRAL_MIX[names[c]][2] for c in cls])
    cat["temperature"] = np.exp(rng.uniform(np.log(lo), np.log(hi)))
    cat["spectral_class"] = [names[c] for c in cls]
    return cat


def simulate_field(setup: ValidationSetup):
    """Simulate the model and held-out visits; return (simulation, model indices, elevation -> index)."""
    from dcrcoadd.sim import SimulationConfig, simulate

    model_conditions = visit_conditions(setup.n_model_visits, setup.seed)
    elevations = setup.visit_elevations
    other = [(1.0 / math.sin(math.radians(e)), setup.science_parallactic_angle) for e in elevations]
    conditions = tuple(model_conditions + other)
    config = SimulationConfig(
        size=setup.size,
        n_stars=setup.n_stars,
        n_bright_stars=0,
        n_visits=len(conditions),
        conditions=conditions,
        seeing=(setup.seeing, setup.seeing),
        seed=setup.seed,
        defects=False,
        noise_twins=True,
    )
    sim = simulate(config, catalog=star_catalog(config, setup.seed))
    # visits without times keep the order of `conditions`; check it rather than assume it
    airmass = np.array([w.visit.airmass for w in sim.warps])
    expected = np.array([c[0] for c in conditions])
    if not np.allclose(airmass, expected, rtol=1e-6):
        raise RuntimeError("simulated visits are not in the order of the requested conditions")
    n = setup.n_model_visits
    return sim, list(range(n)), {e: n + k for k, e in enumerate(elevations)}


# -- photometry ----------------------------------------------------------------------------------------


def _window(shape, x: float, y: float, r: int):
    ix, iy = int(round(x)), int(round(y))
    y0, y1, x0, x1 = max(iy - r, 0), min(iy + r + 1, shape[0]), max(ix - r, 0), min(ix + r + 1, shape[1])
    yy, xx = np.mgrid[y0:y1, x0:x1]
    return (slice(y0, y1), slice(x0, x1)), yy, xx


def gaussian_flux(
    image: np.ndarray, variance: np.ndarray | None, xs, ys, sigma: float
) -> tuple[np.ndarray, ...]:
    """Forced Gaussian-weighted fluxes ``Σ G I / Σ G²`` (G of unit sum, centred on each position)
    and their errors; multiply by `psf_response` to calibrate to total flux."""
    r = int(math.ceil(4 * sigma))
    flux = np.full(len(xs), np.nan)
    err = np.full(len(xs), np.nan)
    for k, (x, y) in enumerate(zip(xs, ys, strict=True)):
        sl, yy, xx = _window(image.shape, x, y, r)
        g = np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / sigma**2) / (2 * math.pi * sigma**2)
        data = image[sl]
        ok = np.isfinite(data)
        norm = float(np.sum(g[ok] ** 2))
        if norm <= 0:
            continue
        flux[k] = float(np.sum(g[ok] * data[ok])) / norm
        if variance is not None:
            err[k] = math.sqrt(float(np.sum(g[ok] ** 2 * variance[sl][ok]))) / norm
    return flux, err


def aperture_flux(image: np.ndarray, xs, ys, radius: float) -> np.ndarray:
    """Sum of the pixels whose centres lie within ``radius`` of each position."""
    r = int(math.ceil(radius))
    out = np.full(len(xs), np.nan)
    for k, (x, y) in enumerate(zip(xs, ys, strict=True)):
        sl, yy, xx = _window(image.shape, x, y, r)
        inside = (xx - x) ** 2 + (yy - y) ** 2 <= radius * radius
        out[k] = float(np.nansum(image[sl][inside]))
    return out


def psf_response(kernel: np.ndarray, sigma: float) -> float:
    """Total flux / Gaussian-weighted flux for a point source with PSF ``kernel`` (unit sum)."""
    c = (kernel.shape[0] - 1) / 2.0
    f, _ = gaussian_flux(kernel, None, [c], [c], sigma)
    return 1.0 / float(f[0])


def centroids(image: np.ndarray, xs, ys, sigma: float, n_iter: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-weighted first moments, iterated from the given positions (adaptive centroid with
    a fixed width; unbiased for a symmetric PSF). The step is doubled, as is usual for a Gaussian
    weight matched to the PSF."""
    r = int(math.ceil(4 * sigma))
    cx, cy = np.array(xs, float), np.array(ys, float)
    for k in range(len(cx)):
        for _ in range(n_iter):
            sl, yy, xx = _window(image.shape, cx[k], cy[k], r)
            w = np.exp(-0.5 * ((xx - cx[k]) ** 2 + (yy - cy[k]) ** 2) / sigma**2) * image[sl]
            total = float(np.nansum(w))
            if not total > 0:
                cx[k] = cy[k] = np.nan
                break
            cx[k] += 2.0 * float(np.nansum(w * (xx - cx[k]))) / total
            cy[k] += 2.0 * float(np.nansum(w * (yy - cy[k]))) / total
    return cx, cy


def isolated(
    xs: np.ndarray, ys: np.ndarray, flux: np.ndarray, sigma: float, shape, edge: int, tolerance: float = 0.01
) -> np.ndarray:
    """Stars whose Gaussian-weighted flux the neighbours contaminate by less than ``tolerance``
    (neighbour flux × exp(-d²/4σ²), the overlap of two Gaussians of width σ), away from edges."""
    from scipy.spatial import cKDTree

    tree = cKDTree(np.column_stack([xs, ys]))
    pairs = tree.query_pairs(8 * sigma, output_type="ndarray")
    contamination = np.zeros(len(xs))
    if len(pairs):
        d2 = (xs[pairs[:, 0]] - xs[pairs[:, 1]]) ** 2 + (ys[pairs[:, 0]] - ys[pairs[:, 1]]) ** 2
        overlap = np.exp(-d2 / (4 * sigma**2))
        np.add.at(contamination, pairs[:, 0], flux[pairs[:, 1]] * overlap)
        np.add.at(contamination, pairs[:, 1], flux[pairs[:, 0]] * overlap)
    ny, nx = shape
    inside = (xs > edge) & (xs < nx - 1 - edge) & (ys > edge) & (ys < ny - 1 - edge)
    return inside & (contamination < tolerance * flux)


def color(blue: np.ndarray, red: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((blue > 0) & (red > 0), -2.5 * np.log10(blue / red), np.nan)


# -- measurements -------------------------------------------------------------------------------------


def _in_njy(exp) -> tuple[np.ndarray, np.ndarray]:
    cal = exp.flux_calibration
    return exp.image * cal, exp.variance * cal**2


def _score(science, refs: dict, sources: np.ndarray) -> dict:
    """Detections and chi-square per source pixel of ``science`` − each reference (nJy image, variance)."""
    from dcrcoadd.report.scores import score_exposure

    row = {
        "airmass": float(science.visit.airmass),
        "parallactic_angle": float(science.visit.parallactic_angle.deg),
        "visit": int(science.visit.id),
    }
    for kind, (img, var) in refs.items():
        score = score_exposure(science, img, var, sources)
        row[f"n_{kind}"] = int(score.n_detections)
        row[f"chi2_{kind}"] = float(score.chi2)
    return row


def dipole_counts(sim, result, index: dict, setup: ValidationSetup) -> tuple[list[dict], dict | None]:
    """False detections and chi-square per source pixel of every held-out visit for each template kind,
    and the same (DCR, baseline, noise twin) for the zenith visit when there is one."""
    from dcrcoadd.template.build import make_template

    baseline = result.baseline.coadd
    sources = baseline.mask_of("DETECTED")
    base = (np.where(np.isfinite(baseline.image), baseline.image, 0.0), baseline.variance)

    def refs_for(e: float) -> dict:
        science = sim.warps[index[e]]
        template = make_template(result.model, science)
        cal = science.flux_calibration
        return {
            "dcr": (template.image * cal, template.variance * cal**2),
            "baseline": base,
            "noise_twin": _in_njy(sim.twins[index[e]]),
        }

    rows = []
    for e in setup.science_elevations:
        refs = refs_for(e)
        for o in setup.comparison_offsets:
            refs[f"single_{o:g}deg"] = _in_njy(sim.warps[index[min(e + o, 90.0)]])
        rows.append({**_score(sim.warps[index[e]], refs, sources), "elevation": float(e)})
    zenith = None
    if 90.0 in index and 90.0 not in setup.science_elevations:
        zenith = {**_score(sim.warps[index[90.0]], refs_for(90.0), sources), "elevation": 90.0}
    return rows, zenith


def _subfilter_truth(sim, model) -> np.ndarray:
    from dcrcoadd.sim import subfilter_fluxes

    return subfilter_fluxes(sim.catalog, sim.bandpass, model.subfilter_edges)


def _second_moment_fwhm(psf) -> float:
    """FWHM of the Gaussian with the PSF's second moments: wider than `Psf.fwhm` for atmospheric
    PSFs (their wings), it sizes the Gaussian weights and apertures of the scores below."""
    from dcrcoadd.core.psf import SIGMA_TO_FWHM

    return psf.second_moment_sigma * SIGMA_TO_FWHM


def spectra(sim, result, setup: ValidationSetup) -> dict:
    """Blue-red subfilter colour of isolated stars measured on the model against the truth."""
    model = result.model
    cat = sim.catalog
    xs = np.asarray(cat["x"], float) - model.origin[0]
    ys = np.asarray(cat["y"], float) - model.origin[1]
    truth = _subfilter_truth(sim, model)
    psf = result.coadd.psf
    # Weights and apertures keep the second-moment size these scores were defined with.
    fwhm = _second_moment_fwhm(psf)
    sigma = fwhm / 2.3548
    response = psf_response(psf.kernel, sigma)
    keep = isolated(xs, ys, np.asarray(cat["flux"], float), sigma, model.images.shape[1:], setup.edge)
    idx = np.nonzero(keep)[0]
    blue, blue_err = gaussian_flux(model.images[0], model.variance, xs[idx], ys[idx], sigma)
    red, red_err = gaussian_flux(model.images[-1], model.variance, xs[idx], ys[idx], sigma)
    blue, red = blue * response, red * response
    blue_err, red_err = blue_err * response, red_err * response
    snr = np.minimum(truth[idx, 0] / blue_err, truth[idx, -1] / red_err)
    good = snr >= setup.snr_min_color
    c_true = color(truth[idx, 0], truth[idx, -1])[good]
    c_meas = color(blue, red)[good]
    fit = common.line_fit(c_true, c_meas)
    # the same stars in a 2-FWHM aperture: blind to the subfilters' PSF widths (chromatic seeing
    # makes the blue PSF broader, which biases Gaussian-weighted blue fluxes low)
    radius = 2.0 * fwhm
    sel = idx[good]
    c_ap = color(
        aperture_flux(model.images[0], xs[sel], ys[sel], radius),
        aperture_flux(model.images[-1], xs[sel], ys[sel], radius),
    )
    # the method on the noise-free truth subfilter images (one achromatic PSF): its floor
    fit_floor = None
    if len(sim.truth) == len(model) and np.allclose(sim.subfilter_edges, model.subfilter_edges):
        t_resp = psf_response(sim.truth[0].psf.kernel, sigma)
        c_floor = color(
            gaussian_flux(sim.truth[0].image, None, xs[sel], ys[sel], sigma)[0] * t_resp,
            gaussian_flux(sim.truth[-1].image, None, xs[sel], ys[sel], sigma)[0] * t_resp,
        )
        fit_floor = common.line_fit(c_true, c_floor)
    return {
        "n_isolated": int(keep.sum()),
        "n_selected": int(good.sum()),
        "n_negative_flux": int(np.sum(~np.isfinite(c_meas))),
        "fit": fit,
        "fit_aperture": {**common.line_fit(c_true, c_ap), "radius_px": radius},
        "fit_truth_images": fit_floor,
        "true_color_range": [float(np.nanmin(c_true)), float(np.nanmax(c_true))] if good.any() else None,
        "points": {"true": c_true.round(4).tolist(), "measured": np.round(c_meas, 4).tolist()},
    }


def flux_and_astrometry(sim, result, setup: ValidationSetup) -> dict:
    """Photometry and centroids of bright isolated stars in the stacked DCR coadd and the baseline coadd."""
    cat = sim.catalog
    model = result.model
    xs = np.asarray(cat["x"], float) - model.origin[0]
    ys = np.asarray(cat["y"], float) - model.origin[1]
    flux_true = np.asarray(cat["flux"], float)
    truth = _subfilter_truth(sim, model)
    c_true = color(truth[:, 0], truth[:, -1])
    psf = result.coadd.psf
    fwhm = _second_moment_fwhm(psf)  # as in `spectra`
    sigma = fwhm / 2.3548
    response = psf_response(psf.kernel, sigma)
    keep = isolated(xs, ys, flux_true, sigma, model.images.shape[1:], setup.edge)
    images = {
        "dcr_coadd": (result.coadd.image, response),
        "baseline_coadd": (result.baseline.coadd.image, response),
        "truth_noise_free": (
            np.sum([t.image for t in sim.truth], axis=0),
            psf_response(sim.truth[0].psf.kernel, sigma),
        ),
    }
    out = {"n_isolated": int(keep.sum())}
    idx = np.nonzero(keep)[0]
    # the same bright stars for every image: S/N from the DCR coadd's variance
    _, err = gaussian_flux(result.coadd.image, result.coadd.variance, xs[idx], ys[idx], sigma)
    bright = idx[flux_true[idx] / (err * response) >= setup.snr_min_position]
    out["n_bright"] = int(bright.size)
    # Aperture fluxes against the same aperture on the noise-free truth image: neighbours and the
    # aperture's loss cancel, so this isolates the coadd's own photometry (and is blind to PSF shape).
    radius = 3.0 * fwhm
    truth_ap = aperture_flux(images["truth_noise_free"][0], xs[bright], ys[bright], radius)
    out["aperture_radius_px"] = radius
    for name, (img, resp) in images.items():
        f, _ = gaussian_flux(img, None, xs[bright], ys[bright], sigma)
        ratio = f * resp / flux_true[bright]
        cx, cy = centroids(img, xs[bright], ys[bright], sigma)
        dx, dy = cx - xs[bright], cy - ys[bright]
        ap = aperture_flux(img, xs[bright], ys[bright], radius) / truth_ap
        entry = {
            "flux_ratio_median": float(np.nanmedian(ratio)),
            "flux_ratio_scatter": common.robust_sigma(ratio),
            "aperture_ratio_to_truth_median": float(np.nanmedian(ap)),
            "aperture_ratio_to_truth_scatter": common.robust_sigma(ap),
            "dx_median_px": float(np.nanmedian(dx)),
            "dy_median_px": float(np.nanmedian(dy)),
            "offset_rms_px": float(np.sqrt(np.nanmean(dx**2 + dy**2))),
            "offset_robust_sigma_px": float(np.hypot(common.robust_sigma(dx), common.robust_sigma(dy))),
            "dx_per_mag_color": common.line_fit(c_true[bright], dx)["slope"],
            "dy_per_mag_color": common.line_fit(c_true[bright], dy)["slope"],
        }
        out[name] = entry
    inner = (slice(setup.edge, -setup.edge),) * 2
    dcr_sum = float(np.nansum(result.coadd.image[inner]))
    base_sum = float(np.nansum(result.baseline.coadd.image[inner]))
    out["total_flux_ratio_dcr_to_baseline"] = dcr_sum / base_sum
    out["psf_fwhm_px"] = float(psf.fwhm)
    return out


def _assemble(warps, threshold: float | None, max_num_iter: int | None):
    """DCR assembly with the default configuration, or with ``threshold`` and ``max_num_iter`` set."""
    from dcrcoadd.config.schema import Config
    from dcrcoadd.dcr.assemble import assemble_dcr_coadd

    config = Config()
    if threshold is not None:
        config.dcr.iterative.convergence_threshold = threshold
        config.dcr.iterative.max_num_iter = max_num_iter
    t0 = time.perf_counter()
    result = assemble_dcr_coadd(warps, config)
    seconds = time.perf_counter() - t0
    subs = list(result.metadata["subregions"].values())
    info = {
        "label": "default" if threshold is None else f"threshold {threshold:g}",
        "convergence_threshold": config.dcr.iterative.convergence_threshold,
        "max_num_iter": config.dcr.iterative.max_num_iter,
        "seconds": seconds,
        "iterations": [s["history"][-1]["iteration"] for s in subs],
        "histories": [s["history"] for s in subs],
        "stop_reasons": [s["stop_reason"] for s in subs],
        "initial_convergence": result.metadata["initial_convergence"],
        "final_convergence": result.metadata["final_convergence"],
    }
    return result, info


def run(setup: ValidationSetup, *, figures: Path | None = None, log=print) -> dict:
    """Simulate, assemble and measure; return the results dictionary (see the module notes)."""
    t0 = time.perf_counter()
    sim, model_idx, index = simulate_field(setup)
    timings = {"simulate_s": time.perf_counter() - t0}
    log(
        f"  simulated {len(sim.warps)} visits of {setup.size}x{setup.size} px with {len(sim.catalog)} stars "
        f"in {timings['simulate_s']:.0f} s"
    )
    warps = [sim.warps[i] for i in model_idx]
    # the LSST defaults first (its model is the one scored for dipoles, flux and astrometry), then
    # each threshold with room to reach it (the default max_num_iter of 3M would stop them all alike)
    plan = [(None, None)] + [(thr, setup.threshold_max_num_iter) for thr in setup.thresholds]
    runs, results = [], []
    for thr, max_iter in plan:
        result, info = _assemble(warps, thr, max_iter)
        runs.append(info)
        results.append(result)
        log(
            f"  DCR model, {info['label']} (convergence_threshold {info['convergence_threshold']:g}, "
            f"max_num_iter {info['max_num_iter']}): {info['iterations']} iterations "
            f"({'; '.join(sorted(set(info['stop_reasons'])))}), {info['seconds']:.1f} s"
        )
    default = results[0]

    t0 = time.perf_counter()
    dipoles, zenith = dipole_counts(sim, default, index, setup)
    timings["dipoles_s"] = time.perf_counter() - t0
    for info, result in zip(runs, results, strict=True):
        info["spectra"] = spectra(sim, result, setup)
    astrometry = flux_and_astrometry(sim, default, setup)
    out = {
        "setup": {
            **asdict(setup),
            "visit_elevations": setup.visit_elevations,
            "model_visits": [
                {"airmass": float(w.visit.airmass), "parallactic_angle": float(w.visit.parallactic_angle.deg)}
                for w in warps
            ],
            "spectral_mix": SPECTRAL_MIX,
            "defects": False,
            "detection": "5 sigma per pixel, >= 3 connected pixels, both signs "
            "(dcrcoadd.report.scores)",
        },
        "dipoles": dipoles,
        "zenith": zenith,
        "dipole_totals": {k: int(sum(r[f"n_{k}"] for r in dipoles)) for k in _kinds(dipoles)},
        "spectra": runs,
        "flux_astrometry": astrometry,
        "timings": timings,
    }
    if figures is not None:
        out["figures"] = [str(p) for p in make_figures(out, figures)]
    return out


def _kinds(dipoles: list[dict]) -> list[str]:
    return [k[2:] for k in dipoles[0] if k.startswith("n_")] if dipoles else []


# -- figures ------------------------------------------------------------------------------------------


def make_figures(results: dict, out_dir: Path) -> list[Path]:
    """``dipoles.png`` (false detections against elevation, DMTN-037's figure) and ``spectra.png``
    (measured against true blue-red subfilter colour per convergence threshold). Needs matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    rows = results["dipoles"]
    el = [r["elevation"] for r in rows]
    fig = Figure(figsize=(7, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    styles = {
        "dcr": ("DCR-matched template", "o-", "C0"),
        "baseline": ("baseline coadd", "s-", "C3"),
        "single_5deg": ("single visit 5° closer to zenith", "^--", "C1"),
        "single_10deg": ("single visit 10° closer to zenith", "v--", "C2"),
        "noise_twin": ("same visit, new noise (noise floor)", "x:", "0.4"),
    }
    for kind in _kinds(rows):
        label, style, colour = styles.get(kind, (kind, ".-", None))
        ax.plot(el, [r[f"n_{kind}"] for r in rows], style, color=colour, label=label)
    ax.set_yscale("symlog", linthresh=1)
    ax.set_ylim(bottom=-0.2)
    ax.set_xlabel("elevation of the science visit (degrees)")
    ax.set_ylabel("false detections (5σ, ≥3 px)")
    setup = results["setup"]
    ax.set_title(
        f"DCR dipoles: {setup['size']}² px, {setup['n_stars']} stars, g band, "
        f"model from {setup['n_model_visits']} visits at airmass 1.0–2.0",
        fontsize=9,
    )
    top = ax.secondary_xaxis(
        "top",
        functions=(
            lambda e: 1 / np.sin(np.radians(np.clip(e, 1, 90))),
            lambda a: np.degrees(np.arcsin(1 / np.clip(a, 1, None))),
        ),
    )
    top.set_xlabel("airmass")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out_dir / "dipoles.png"
    fig.savefig(path)
    paths.append(path)

    fig = Figure(figsize=(4 * len(results["spectra"]), 4), dpi=110)
    FigureCanvasAgg(fig)
    for k, run_info in enumerate(results["spectra"]):
        ax = fig.add_subplot(1, len(results["spectra"]), k + 1)
        pts = run_info["spectra"]["points"]
        t, m = np.asarray(pts["true"], float), np.asarray(pts["measured"], float)
        ax.plot(t, m, ".", ms=3, alpha=0.6)
        if t.size:
            lim = [np.nanmin(t) - 0.1, np.nanmax(t) + 0.1]
            ax.plot(lim, lim, "k:", lw=1, label="1:1")
            fit = run_info["spectra"]["fit"]
            if fit["slope"] is not None:
                ax.plot(
                    lim,
                    [fit["slope"] * v + fit["intercept"] for v in lim],
                    "C3-",
                    lw=1,
                    label=f"slope {fit['slope']:.2f}, σ {fit['scatter']:.2f}",
                )
            ax.legend(fontsize=8)
        ax.set_xlabel("true blue − red subfilter colour (mag)")
        ax.set_ylabel("measured (mag)")
        max_iter = run_info["max_num_iter"] or "3M"
        ax.set_title(
            f"threshold {run_info['convergence_threshold']:g}, max_num_iter {max_iter}: "
            f"{max(run_info['iterations'])} iterations",
            fontsize=9,
        )
    fig.tight_layout()
    path = out_dir / "spectra.png"
    fig.savefig(path)
    paths.append(path)
    return paths


# -- command line -------------------------------------------------------------------------------------


def print_summary(res: dict) -> None:
    f = common.fmt
    kinds = _kinds(res["dipoles"])
    print("false detections (5 sigma, >= 3 px, both signs) in science - template:")
    print(f"{'elev':>5} {'airmass':>7} " + " ".join(f"{k:>12}" for k in kinds))
    for r in res["dipoles"]:
        print(f"{r['elevation']:5.0f} {r['airmass']:7.3f} " + " ".join(f"{r['n_' + k]:12d}" for k in kinds))
    z = res.get("zenith")
    if z:
        print(
            f"zenith visit (airmass 1): DCR {z['n_dcr']} (chi2/source pixel {z['chi2_dcr']:.3f}), "
            f"baseline {z['n_baseline']}, noise twin {z['n_noise_twin']}"
        )
    print("subfilter colour (blue - red) measured vs true:")
    for s in res["spectra"]:
        fit, ap = s["spectra"]["fit"], s["spectra"]["fit_aperture"]
        print(
            f"  {s['label']:16s} (max_num_iter {s['max_num_iter']}) iterations {s['iterations']} "
            f"slope {f(fit['slope'])} "
            f"intercept {f(fit['intercept'])} scatter {f(fit['scatter'])} (n = {fit['n']}); aperture: slope "
            f"{f(ap['slope'])} intercept {f(ap['intercept'])} scatter {f(ap['scatter'])}"
        )
    floor = res["spectra"][0]["spectra"]["fit_truth_images"]
    if floor:
        print(
            f"  same photometry on the noise-free truth subfilter images: slope {f(floor['slope'])} "
            f"intercept {f(floor['intercept'])} scatter {f(floor['scatter'])}"
        )
    fa = res["flux_astrometry"]
    for name in ("dcr_coadd", "baseline_coadd", "truth_noise_free"):
        e = fa[name]
        print(
            f"  {name:16s} PSF-weighted flux/true {f(e['flux_ratio_median'], '.4f')} "
            f"± {f(e['flux_ratio_scatter'], '.4f')}, aperture/truth image "
            f"{f(e['aperture_ratio_to_truth_median'], '.4f')} "
            f"± {f(e['aperture_ratio_to_truth_scatter'], '.4f')}, "
            f"offset median ({f(e['dx_median_px'], '+.3f')}, {f(e['dy_median_px'], '+.3f')}) px, "
            f"robust σ {f(e['offset_robust_sigma_px'], '.3f')} px, colour trend "
            f"({f(e['dx_per_mag_color'], '+.3f')}, {f(e['dy_per_mag_color'], '+.3f')}) px/mag"
        )
    print(
        f"  total flux DCR coadd / baseline coadd: {fa['total_flux_ratio_dcr_to_baseline']:.5f} "
        f"({fa['n_bright']} bright isolated stars)"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small field (for tests)")
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--n-stars", type=int, default=None)
    ap.add_argument(
        "--out-dir", type=Path, default=None, help="results directory (default benchmarks/results)"
    )
    args = ap.parse_args(argv)
    setup = QUICK if args.quick else DEFAULT
    if args.size:
        setup = replace(setup, size=args.size)
    if args.n_stars:
        setup = replace(setup, n_stars=args.n_stars)
    out_dir = args.out_dir or common.RESULTS_DIR
    common.setup_logging()
    res = run(setup, figures=out_dir)
    res["mode"] = "quick" if args.quick else "default"
    print_summary(res)
    path = common.write_results(
        "validation",
        res,
        out_dir,
        argv=["-m", "benchmarks.validation", *(argv if argv is not None else sys.argv[1:])],
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
