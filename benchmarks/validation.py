"""Science-quality validation on DMTN-037's axes and issue 12's, on GalSim-simulated g-band star fields.

One simulation (`dcrcoadd.sim.simulate`, defects off, constant seeing so that direct
pixel subtraction is meaningful, one catalogue so the sky is the same in every visit)
holds two scenarios, each with its model visits and held-out science visits, every
visit with its noise twin (same sky and conditions, new noise):

two-sided
    DMTN-037's test: model visits at airmass evenly over 1.0-2.0, parallactic angles
    over 100-260 degrees in shuffled order (`benchmarks.dcr_assemble.visit_conditions`);
    science visits at elevations 30, 35, ..., 80 degrees at one parallactic angle, and
    the visits 5 and 10 degrees closer to the zenith at the same angle (DMTN-037 compares
    with an image "10 degrees closer to zenith"), and one at the zenith.
one-sided
    Issue 12's: on the field's hour-angle track from Rubin (declination -20 degrees),
    model visits all east of the meridian up to a modest airmass (1.03-1.47), science
    visits west of it at airmass 1.10-1.92 and one east at 1.50 (`track_condition`).
    The visits' DCR vectors span little, so the subfilter split is ill-conditioned and
    science visits need extrapolation in airmass and parallactic angle.

Stars follow a rough magnitude-limited spectral mix (`SPECTRAL_MIX`) of black bodies,
fluxes as `dcrcoadd.sim.make_catalog` draws them.

Each scenario's model warps are assembled by both solvers through the pipeline API
(`assemble_dcr_coadd` with ``dcr.solver = "iterative"`` and ``"exact"``, every other
setting at its default), and again on the same warps with 100x less noise (the
noise-free visit images plus 1 % of their noise), which separates a solver's bias
from its noise (without compare-warp artifact rejection: with so little noise it
clips the warps' own DCR differences at every star).

Measurements
------------
False detections
    For each science visit, 5-sigma detections (connected groups of at least 3 pixels,
    both signs) and the chi-square per source pixel (`dcrcoadd.report.scores`, the
    statistic the report and the demo quote) in science − template for the baseline
    coadd of the model warps, the DCR-matched template of each solver
    (`dcrcoadd.template.build.make_template`), the same from the low-noise warps, the
    noise twin (the noise floor) and, two-sided, the single visits 5 and 10 degrees
    closer to the zenith.
Subfilter colours
    Bluest − reddest subfilter colour ``-2.5 log10(f_blue / f_red)`` of isolated stars
    at their true positions, by forced Gaussian-weighted (PSF-weighted) photometry and in
    apertures of radius 1.25 FWHM, against the simulator's truth for the same subfilter ranges: slope,
    intercept, robust scatter of the line and Spearman rank correlation, per solver; for
    the iterative solver also at the convergence thresholds of
    `ValidationSetup.thresholds` (DMTN-037: too flat at 1 %, better at 0.1 %).
Flux and astrometry
    Photometry of each stacked DCR coadd and of the baseline coadd against the truth;
    Gaussian-weighted centroids against the true (unrefracted) positions, with the trend
    of the offsets with colour; total flux of each DCR coadd / baseline coadd.
Targets (issue 12)
    The exact solver: at most noise floor + 5 false detections at every science visit up
    to airmass 1.9 (the one-sided 1.92 visit included) in both scenarios; colour slope
    0.9-1.1 with rank correlation >= 0.95; total flux within 0.3 % of the baseline coadd.

Run::

    python -m benchmarks --only validation          # 512x512, 2000 stars (a few minutes)
    python -m benchmarks --only validation --quick  # 192x192 (well under a minute)
    python -m benchmarks.validation [--quick]       # the same, this part alone
    python -m benchmarks.validation --seed 3        # another field (stars, visits' noise)
"""

from __future__ import annotations

import argparse
import dataclasses
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
SOLVERS = ("iterative", "exact")
SCENARIOS = ("two_sided", "one_sided")
SCENARIO_TITLES = {"two_sided": "two-sided coverage", "one_sided": "one-sided coverage"}
RUBIN_LATITUDE = -30.2446
#: Suffix of the runs on the model warps with 100x less noise.
LOW = "_low_noise"
RUNS = (*SOLVERS, *(s + LOW for s in SOLVERS))

#: Radius of the colour apertures in units of the coadd PSF's FWHM.
APERTURE_FWHM = 1.25

#: Issue 12's targets for the exact solver.
TARGET_EXCESS = 5  # false detections above the noise floor, at most
TARGET_MAX_AIRMASS = 1.95  # "up to airmass 1.9": the one-sided scenario's 1.92 visit is in
TARGET_SLOPE = (0.9, 1.1)
TARGET_RANK = 0.95
TARGET_FLUX = 0.003


@dataclass(frozen=True)
class ValidationSetup:
    """What to simulate and measure (angles in degrees, seeing in arcsec)."""

    size: int = 512
    n_stars: int = 2000
    n_model_visits: int = 12
    science_elevations: tuple[float, ...] = tuple(range(30, 81, 5))
    comparison_offsets: tuple[float, ...] = (5.0, 10.0)
    science_parallactic_angle: float = 135.0
    one_sided_model_airmass: tuple[float, float] = (1.03, 1.47)
    one_sided_n_model_visits: int = 7
    one_sided_science: tuple[tuple[float, str], ...] = (
        (1.10, "W"), (1.30, "W"), (1.50, "E"), (1.69, "W"), (1.92, "W"),
    )
    field_dec: float = -20.0
    low_noise_factor: float = 100.0
    seeing: float = 0.8
    seed: int = 8
    thresholds: tuple[float, ...] = (0.01, 0.001, 0.0001)
    threshold_max_num_iter: int = 30
    snr_min_color: float = 20.0
    snr_min_position: float = 50.0
    edge: int = 16

    @property
    def visit_elevations(self) -> list[float]:
        """Elevations of the two-sided scenario's non-model visits: science, comparisons (capped at
        the zenith) and the zenith itself."""
        return sorted(
            {min(e + o, 90.0) for e in self.science_elevations for o in (0.0, *self.comparison_offsets)}
            | {90.0}
        )


DEFAULT = ValidationSetup()
QUICK = ValidationSetup(
    size=192,
    n_stars=280,
    n_model_visits=8,
    science_elevations=(30.0, 50.0, 70.0),
    one_sided_science=((1.10, "W"), (1.50, "E"), (1.92, "W")),
    thresholds=(0.0001,),
    threshold_max_num_iter=15,
)


# -- simulation ---------------------------------------------------------------------------------------


def track_condition(
    airmass: float, side: str, dec: float, lat: float = RUBIN_LATITUDE
) -> tuple[float, float]:
    """``(airmass, parallactic angle in degrees)`` where a field at declination ``dec`` reaches
    ``airmass`` (sec z) east (``"E"``, hour angle < 0) or west (``"W"``) of the meridian."""
    phi, delta = math.radians(lat), math.radians(dec)
    cos_h = (1.0 / airmass - math.sin(phi) * math.sin(delta)) / (math.cos(phi) * math.cos(delta))
    if not -1.0 <= cos_h <= 1.0:
        raise ValueError(f"airmass {airmass} is not reached at declination {dec}")
    h = math.acos(cos_h) * (1.0 if side == "W" else -1.0)
    q = math.atan2(math.sin(h), math.tan(phi) * math.cos(delta) - math.sin(delta) * math.cos(h))
    return float(airmass), math.degrees(q)


@dataclass
class Scenario:
    """Visit indices of one scenario in the simulation.

    ``science`` holds ``(label, index)`` per science visit; ``comparisons`` maps a science
    index to ``{kind: index}`` of visits scored as templates too; ``zenith`` is a further
    science visit scored apart (not one of DMTN-037's elevations)."""

    name: str
    model: list[int]
    science: list[tuple[str, int]]
    comparisons: dict[int, dict[str, int]] = dataclasses.field(default_factory=dict)
    elevations: dict[int, float] = dataclasses.field(default_factory=dict)
    zenith: int | None = None


def scenario_conditions(setup: ValidationSetup) -> tuple[list[tuple[float, float]], list[Scenario]]:
    """Conditions ``(airmass, parallactic angle)`` of every visit and the scenarios indexing them."""
    conditions = list(visit_conditions(setup.n_model_visits, setup.seed))
    two = Scenario("two_sided", model=list(range(len(conditions))), science=[])
    index = {}
    for e in setup.visit_elevations:
        index[e] = len(conditions)
        conditions.append((1.0 / math.sin(math.radians(e)), setup.science_parallactic_angle))
    for e in setup.science_elevations:
        two.science.append((f"{e:.0f}°", index[e]))
        two.elevations[index[e]] = float(e)
        two.comparisons[index[e]] = {
            f"single_{o:g}deg": index[min(e + o, 90.0)] for o in setup.comparison_offsets
        }
    if 90.0 in index and 90.0 not in setup.science_elevations:
        two.zenith = index[90.0]
        two.elevations[index[90.0]] = 90.0
    one = Scenario("one_sided", model=[], science=[])
    for a in np.linspace(*setup.one_sided_model_airmass, setup.one_sided_n_model_visits):
        one.model.append(len(conditions))
        conditions.append(track_condition(float(a), "E", setup.field_dec))
    for a, side in setup.one_sided_science:
        one.science.append((f"{a:.2f} {side}", len(conditions)))
        conditions.append(track_condition(a, side, setup.field_dec))
    return conditions, [two, one]


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
    """Simulate every visit of both scenarios (one sky); return (simulation, scenarios)."""
    from dcrcoadd.sim import SimulationConfig, simulate

    conditions, scenarios = scenario_conditions(setup)
    config = SimulationConfig(
        size=setup.size,
        n_stars=setup.n_stars,
        n_bright_stars=0,
        n_visits=len(conditions),
        conditions=tuple(conditions),
        seeing=(setup.seeing, setup.seeing),
        seed=setup.seed,
        defects=False,
        noise_twins=True,
    )
    sim = simulate(config, catalog=star_catalog(config, setup.seed))
    # visits without times keep the order of `conditions`; check it rather than assume it
    airmass = np.array([w.visit.airmass for w in sim.warps])
    if not np.allclose(airmass, [c[0] for c in conditions], rtol=1e-6):
        raise RuntimeError("simulated visits are not in the order of the requested conditions")
    return sim, scenarios


def low_noise(exp, clean_counts: np.ndarray, factor: float):
    """``exp`` with its noise divided by ``factor``: noise-free image + (image − noise-free) / factor."""
    image = clean_counts + (exp.image - clean_counts) / factor
    return dataclasses.replace(
        exp, image=image.astype(np.float32), variance=(exp.variance / factor**2).astype(np.float32)
    )


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
    """Detections and chi-square per source pixel of ``science`` − each reference: an Exposure
    on the science pixels or an (nJy image, variance) pair."""
    from dcrcoadd.report.scores import score_exposure

    row = {
        "airmass": float(science.visit.airmass),
        "parallactic_angle": float(science.visit.parallactic_angle.deg),
        "visit": int(science.visit.id),
    }
    for kind, ref in refs.items():
        img, var = ref if isinstance(ref, tuple) else (ref, None)
        score = score_exposure(science, img, var, sources)
        row[f"n_{kind}"] = int(score.n_detections)
        row[f"chi2_{kind}"] = float(score.chi2)
    return row


def false_detections(sim, scenario: Scenario, results: dict) -> tuple[list[dict], dict | None]:
    """False detections and chi-square per source pixel of every science visit of ``scenario``
    against the baseline coadd, each result's DCR-matched template (``results``: label ->
    assembly result), the comparison visits and the noise twin; and the same for its zenith
    visit when it has one (without comparisons)."""
    from dcrcoadd.template.build import make_template

    first = next(iter(results.values()))
    baseline = first.baseline.coadd
    sources = baseline.mask_of("DETECTED")
    base = _in_njy(baseline)
    base = (np.where(np.isfinite(base[0]), base[0], 0.0), base[1])

    def score(label: str, i: int, comparisons: dict) -> dict:
        science = sim.warps[i]
        refs = {"baseline": base}
        refs.update({name: make_template(r.model, science) for name, r in results.items()})
        refs.update({kind: _in_njy(sim.warps[j]) for kind, j in comparisons.items()})
        refs["noise_twin"] = _in_njy(sim.twins[i])
        row = {"label": label, **_score(science, refs, sources)}
        if i in scenario.elevations:
            row["elevation"] = scenario.elevations[i]
        return row

    rows = [score(label, i, scenario.comparisons.get(i, {})) for label, i in scenario.science]
    zenith = None if scenario.zenith is None else score("90°", scenario.zenith, {})
    return rows, zenith


def _subfilter_truth(sim, model) -> np.ndarray:
    from dcrcoadd.sim import subfilter_fluxes

    return subfilter_fluxes(sim.catalog, sim.bandpass, model.subfilter_edges)


def _second_moment_fwhm(psf) -> float:
    """FWHM of the Gaussian with the PSF's second moments: wider than `Psf.fwhm` for atmospheric
    PSFs (their wings), it sizes the Gaussian weights and apertures of the scores below.

    The moments are taken within 4 FWHM of the centre: a Kolmogorov profile's second moment grows
    with the radius it is summed to, so the sizes (and which stars count as isolated) would follow
    how far the kernel happens to reach."""
    from dcrcoadd.core.psf import SIGMA_TO_FWHM, Psf

    k = psf.kernel
    r = min(int(np.ceil(4.0 * psf.fwhm)), k.shape[0] // 2, k.shape[1] // 2)
    cy, cx = k.shape[0] // 2, k.shape[1] // 2
    return Psf(k[cy - r:cy + r + 1, cx - r:cx + r + 1]).second_moment_sigma * SIGMA_TO_FWHM


def colour_fit(c_true: np.ndarray, c_meas: np.ndarray) -> dict:
    """`common.line_fit` of measured against true colour, with the Spearman rank correlation."""
    from scipy.stats import spearmanr

    fit = common.line_fit(c_true, c_meas)
    ok = np.isfinite(c_true) & np.isfinite(c_meas)
    rank = None
    if ok.sum() > 2 and np.ptp(c_true[ok]) > 0 and np.ptp(c_meas[ok]) > 0:
        rank = float(spearmanr(c_true[ok], c_meas[ok]).statistic)
    return {**fit, "rank": rank}


def spectra(sim, result, setup: ValidationSetup, selection_variance: np.ndarray | None = None) -> dict:
    """Blue-red subfilter colour of isolated stars measured on the model against the truth; the
    stars are chosen by their S/N against ``selection_variance`` (default: the model's variance)."""
    model = result.model
    variance = model.variance if selection_variance is None else selection_variance
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
    # the stars are chosen by their true S/N against the model's variance (the baseline coadd's
    # / M): the same stars for every solver on the same warps
    blue, blue_err = gaussian_flux(model.images[0], variance, xs[idx], ys[idx], sigma)
    red, red_err = gaussian_flux(model.images[-1], variance, xs[idx], ys[idx], sigma)
    blue, red = blue * response, red * response
    blue_err, red_err = blue_err * response, red_err * response
    snr = np.minimum(truth[idx, 0] / blue_err, truth[idx, -1] / red_err)
    good = snr >= setup.snr_min_color
    c_true = color(truth[idx, 0], truth[idx, -1])[good]
    c_meas = color(blue, red)[good]
    fit = colour_fit(c_true, c_meas)
    # the same stars in apertures of 1.25 FWHM (5 px at 0.8" seeing, issue 12's measure): nearly
    # blind to the subfilters' PSF widths (chromatic seeing makes the blue PSF broader, which biases
    # Gaussian-weighted blue fluxes low), at twice the noise of the weighted fluxes
    radius = APERTURE_FWHM * float(psf.fwhm)
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
        fit_floor = colour_fit(c_true, c_floor)
    return {
        "n_isolated": int(keep.sum()),
        "n_selected": int(good.sum()),
        "n_negative_flux": int(np.sum(~np.isfinite(c_meas))),
        "fit": fit,
        "fit_aperture": {**colour_fit(c_true, c_ap), "radius_px": radius},
        "fit_truth_images": fit_floor,
        "true_color_range": [float(np.nanmin(c_true)), float(np.nanmax(c_true))] if good.any() else None,
        "points": {
            "true": c_true.round(4).tolist(),
            "measured": np.round(c_meas, 4).tolist(),
            "aperture": np.round(c_ap, 4).tolist(),
        },
    }


def total_flux_ratio(result, edge: int) -> float:
    """Total flux of the stacked DCR coadd / the baseline coadd's, away from the edges."""
    inner = (slice(edge, -edge),) * 2
    return float(np.nansum(result.coadd.image[inner]) / np.nansum(result.baseline.coadd.image[inner]))


def flux_and_astrometry(sim, results: dict, setup: ValidationSetup) -> dict:
    """Photometry and centroids of bright isolated stars in each stacked DCR coadd (``results``:
    solver -> assembly result of the same warps) and the baseline coadd."""
    first = next(iter(results.values()))
    cat = sim.catalog
    model = first.model
    xs = np.asarray(cat["x"], float) - model.origin[0]
    ys = np.asarray(cat["y"], float) - model.origin[1]
    flux_true = np.asarray(cat["flux"], float)
    truth = _subfilter_truth(sim, model)
    c_true = color(truth[:, 0], truth[:, -1])
    psf = first.coadd.psf
    fwhm = _second_moment_fwhm(psf)  # as in `spectra`
    sigma = fwhm / 2.3548
    response = psf_response(psf.kernel, sigma)
    keep = isolated(xs, ys, flux_true, sigma, model.images.shape[1:], setup.edge)
    images = {f"{name}_coadd": (r.coadd.image, response) for name, r in results.items()}
    images["baseline_coadd"] = (first.baseline.coadd.image, response)
    images["truth_noise_free"] = (
        np.sum([t.image for t in sim.truth], axis=0),
        psf_response(sim.truth[0].psf.kernel, sigma),
    )
    out = {"n_isolated": int(keep.sum())}
    idx = np.nonzero(keep)[0]
    # the same bright stars for every image: S/N from the DCR coadd's variance
    _, err = gaussian_flux(first.coadd.image, first.coadd.variance, xs[idx], ys[idx], sigma)
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
        out[name] = {
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
    out["psf_fwhm_px"] = float(psf.fwhm)
    return out


def assemble(warps, solver: str, threshold: float | None = None, max_num_iter: int | None = None, *,
             artifacts: bool = True):
    """DCR assembly by ``solver`` with its default settings (every other setting at its default too),
    or, for the iterative solver, with ``convergence_threshold`` and ``max_num_iter`` set; with
    ``artifacts`` False, without compare-warp artifact rejection."""
    from dcrcoadd.config.schema import Config
    from dcrcoadd.dcr.assemble import assemble_dcr_coadd

    config = Config()
    config.dcr.solver = solver  # explicitly: the numbers must not depend on which solver is the default
    config.artifacts.enabled = artifacts
    if threshold is not None:
        config.dcr.iterative.convergence_threshold = threshold
        config.dcr.iterative.max_num_iter = max_num_iter
    t0 = time.perf_counter()
    result = assemble_dcr_coadd(warps, config)
    seconds = time.perf_counter() - t0
    subs = list(result.metadata["subregions"].values())
    info = {
        "solver": solver,
        "label": "default" if threshold is None else f"threshold {threshold:g}",
        "artifact_rejection": artifacts,
        "seconds": seconds,
        "iterations": [s["history"][-1]["iteration"] for s in subs],
        "stop_reasons": [s["stop_reason"] for s in subs],
        "initial_convergence": result.metadata["initial_convergence"],
        "final_convergence": result.metadata["final_convergence"],
    }
    if solver == "iterative":
        info["convergence_threshold"] = config.dcr.iterative.convergence_threshold
        info["max_num_iter"] = config.dcr.iterative.max_num_iter
        info["histories"] = [s["history"] for s in subs]
    return result, info


def _describe(info: dict) -> str:
    return (
        f"{info['solver']}: {info['iterations']} iterations "
        f"({'; '.join(sorted(set(info['stop_reasons'])))}), {info['seconds']:.1f} s"
    )


def run_scenario(sim, scenario: Scenario, setup: ValidationSetup, log=print) -> dict:
    """Assemble the scenario's model warps with each solver, on the warps as simulated and with
    `ValidationSetup.low_noise_factor` less noise, and measure."""
    warps = [sim.warps[i] for i in scenario.model]
    quiet = [low_noise(sim.warps[i], sim.models[i], setup.low_noise_factor) for i in scenario.model]
    results, runs = {}, {}
    for suffix, inputs in (("", warps), (LOW, quiet)):
        for solver in SOLVERS:
            # Without noise to hide them, the warps' own DCR differences at every star exceed the
            # compare-warp threshold and the baseline coadd (the solvers' starting point and
            # flux reference) loses star cores: the low-noise runs measure the solvers alone.
            results[solver + suffix], runs[solver + suffix] = assemble(inputs, solver, artifacts=not suffix)
            note = " (low-noise warps)" if suffix else ""
            log(f"  {scenario.name}{note}: {_describe(runs[solver + suffix])}")
    t0 = time.perf_counter()
    rows, zenith = false_detections(sim, scenario, results)
    for name, r in results.items():
        runs[name]["total_flux_ratio_to_baseline"] = total_flux_ratio(r, setup.edge)
        # the low-noise models are measured on the stars chosen for the normal ones
        selection = results[name.removesuffix(LOW)].model.variance
        runs[name]["spectra"] = spectra(sim, r, setup, selection)
    astrometry = flux_and_astrometry(sim, {s: results[s] for s in SOLVERS}, setup)
    return {
        "name": scenario.name,
        "model_visits": [
            {"airmass": float(w.visit.airmass), "parallactic_angle": float(w.visit.parallactic_angle.deg)}
            for w in warps
        ],
        "rows": rows,
        "zenith": zenith,
        "totals": {k: int(sum(r[f"n_{k}"] for r in rows)) for k in _kinds(rows)},
        "runs": runs,
        "flux_astrometry": astrometry,
        "measure_s": time.perf_counter() - t0,
        "_results": results,
    }


def threshold_runs(sim, scenario: Scenario, setup: ValidationSetup, log=print) -> list[dict]:
    """The iterative solver at each of `ValidationSetup.thresholds`, with room to reach it (the
    default max_num_iter of 3M would stop them all alike), and its subfilter colours."""
    warps = [sim.warps[i] for i in scenario.model]
    runs = []
    for thr in setup.thresholds:
        result, info = assemble(warps, "iterative", thr, setup.threshold_max_num_iter)
        info["spectra"] = spectra(sim, result, setup)
        runs.append(info)
        log(f"  {scenario.name}, threshold {thr:g}: {_describe(info)}")
    return runs


def evaluate_targets(scenarios: dict) -> list[dict]:
    """Issue 12's targets for the exact solver, one record per (target, scenario, measure)."""
    out = []
    for name, sc in scenarios.items():
        rows = [r for r in sc["rows"] if r["airmass"] <= TARGET_MAX_AIRMASS]
        excess = [r["n_exact"] - r["n_noise_twin"] for r in rows]
        worst = int(np.argmax(excess)) if excess else None
        out.append({
            "target": f"exact ≤ noise floor + {TARGET_EXCESS} false detections at every science visit "
                      f"up to airmass 1.9",
            "scenario": name,
            "value": (f"worst excess {excess[worst]} ({rows[worst]['label']}, airmass "
                      f"{rows[worst]['airmass']:.2f})" if rows else "no visits"),
            "pass": bool(rows) and max(excess) <= TARGET_EXCESS,
        })
        spec = sc["runs"]["exact"]["spectra"]
        for key, what in (("fit", "PSF-weighted"), ("fit_aperture", "aperture")):
            fit = spec[key]
            ok = (fit["slope"] is not None and fit["rank"] is not None
                  and TARGET_SLOPE[0] <= fit["slope"] <= TARGET_SLOPE[1] and fit["rank"] >= TARGET_RANK)
            out.append({
                "target": f"exact colour slope {TARGET_SLOPE[0]}–{TARGET_SLOPE[1]}, rank correlation "
                          f"≥ {TARGET_RANK} ({what})",
                "scenario": name,
                "value": f"slope {common.fmt(fit['slope'], '.3f')}, rank {common.fmt(fit['rank'], '.3f')} "
                         f"(n = {fit['n']})",
                "pass": bool(ok),
            })
        ratio = sc["runs"]["exact"]["total_flux_ratio_to_baseline"]
        out.append({
            "target": f"exact DCR coadd total flux within {TARGET_FLUX:.1%} of the baseline coadd",
            "scenario": name,
            "value": f"ratio {ratio:.5f}",
            "pass": bool(abs(ratio - 1.0) <= TARGET_FLUX),
        })
    return out


def run(setup: ValidationSetup, *, figures: Path | None = None, log=print) -> dict:
    """Simulate, assemble and measure; return the results dictionary (see the module notes)."""
    t0 = time.perf_counter()
    sim, scenarios = simulate_field(setup)
    timings = {"simulate_s": time.perf_counter() - t0}
    log(
        f"  simulated {len(sim.warps)} visits of {setup.size}x{setup.size} px with {len(sim.catalog)} stars "
        f"in {timings['simulate_s']:.0f} s"
    )
    out_scenarios = {}
    for scenario in scenarios:
        t0 = time.perf_counter()
        res = run_scenario(sim, scenario, setup, log)
        res.pop("_results")
        timings[f"{scenario.name}_s"] = time.perf_counter() - t0
        out_scenarios[scenario.name] = res
    t0 = time.perf_counter()
    thresholds = threshold_runs(sim, scenarios[0], setup, log)
    timings["thresholds_s"] = time.perf_counter() - t0
    out = {
        "setup": {
            **asdict(setup),
            "visit_elevations": setup.visit_elevations,
            "spectral_mix": SPECTRAL_MIX,
            "defects": False,
            "detection": "5 sigma per pixel, >= 3 connected pixels, both signs "
            "(dcrcoadd.report.scores)",
        },
        "scenarios": out_scenarios,
        "thresholds": thresholds,
        "targets": evaluate_targets(out_scenarios),
        "timings": timings,
    }
    if figures is not None:
        out["figures"] = [str(p) for p in make_figures(out, figures)]
    return out


def _kinds(rows: list[dict]) -> list[str]:
    return [k[2:] for k in rows[0] if k.startswith("n_")] if rows else []


def key_numbers(v: dict) -> dict:
    """The headline numbers of validation results ``v`` (for the suite's summary)."""
    out = {}
    for name, sc in v["scenarios"].items():
        out[name] = {
            "false_detections_total": sc["totals"],
            "colour": {s: {k: sc["runs"][s]["spectra"]["fit"][k] for k in ("slope", "rank")}
                       for s in SOLVERS},
            "total_flux_ratio": {s: sc["runs"][s]["total_flux_ratio_to_baseline"] for s in SOLVERS},
        }
    out["targets_passed"] = f"{sum(t['pass'] for t in v['targets'])} of {len(v['targets'])}"
    return out


# -- figures ------------------------------------------------------------------------------------------

STYLES = {
    "baseline": ("baseline coadd", "s-", "C3"),
    "iterative": ("iterative solver", "o-", "C0"),
    "exact": ("exact solver", "D-", "C2"),
    "iterative" + LOW: ("iterative, 100× less noise in the model warps", "o:", "C0"),
    "exact" + LOW: ("exact, 100× less noise in the model warps", "D:", "C2"),
    "single_5deg": ("single visit 5° closer to zenith", "^--", "C1"),
    "single_10deg": ("single visit 10° closer to zenith", "v--", "C4"),
    "noise_twin": ("same visit, new noise (noise floor)", "x:", "0.4"),
}


def make_figures(results: dict, out_dir: Path) -> list[Path]:
    """``dipoles.png`` (false detections per science visit in each scenario, DMTN-037's figure) and
    ``spectra.png`` (measured against true blue − red subfilter colour per scenario and solver).
    Needs matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    scenarios = results["scenarios"]
    fig = Figure(figsize=(12, 4.8), dpi=110)
    FigureCanvasAgg(fig)
    for k, (name, sc) in enumerate(scenarios.items()):
        ax = fig.add_subplot(1, len(scenarios), k + 1)
        rows = sc["rows"]
        x = np.arange(len(rows))
        for kind in _kinds(rows):
            label, style, colour = STYLES.get(kind, (kind, ".-", None))
            ax.plot(x, [r[f"n_{kind}"] for r in rows], style, color=colour, label=label)
        ax.set_xticks(x, [f"{r['label']}\n{r['airmass']:.2f}" for r in rows], fontsize=7)
        ax.set_yscale("symlog", linthresh=1)
        ax.set_ylim(bottom=-0.2)
        ax.set_xlabel("science visit (elevation or side of the meridian; airmass)")
        ax.set_ylabel("false detections (5σ, ≥3 px)")
        ax.set_title(f"{SCENARIO_TITLES[name]}: {len(sc['model_visits'])} model visits", fontsize=9)
        ax.grid(alpha=0.3)
        if k == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / "dipoles.png"
    fig.savefig(path)
    paths.append(path)

    fig = Figure(figsize=(8, 8), dpi=110)
    FigureCanvasAgg(fig)
    for i, (name, sc) in enumerate(scenarios.items()):
        for j, solver in enumerate(SOLVERS):
            ax = fig.add_subplot(len(scenarios), len(SOLVERS), i * len(SOLVERS) + j + 1)
            spec = sc["runs"][solver]["spectra"]
            t = np.asarray(spec["points"]["true"], float)
            m = np.asarray(spec["points"]["measured"], float)
            ax.plot(t, m, ".", ms=3, alpha=0.6)
            fit = spec["fit"]
            if t.size:
                lim = [np.nanmin(t) - 0.1, np.nanmax(t) + 0.1]
                ax.plot(lim, lim, "k:", lw=1, label="1:1")
                if fit["slope"] is not None:
                    ax.plot(lim, [fit["slope"] * v + fit["intercept"] for v in lim], "C3-", lw=1,
                            label=f"slope {fit['slope']:.2f}, rank {common.fmt(fit['rank'], '.2f')}")
                ax.legend(fontsize=7)
            ax.set_xlabel("true blue − red subfilter colour (mag)", fontsize=8)
            ax.set_ylabel("measured, PSF-weighted (mag)", fontsize=8)
            ax.set_title(f"{SCENARIO_TITLES[name]}, {solver} solver", fontsize=9)
    fig.tight_layout()
    path = out_dir / "spectra.png"
    fig.savefig(path)
    paths.append(path)
    return paths


# -- summaries ----------------------------------------------------------------------------------------


def _column_title(kind: str) -> str:
    return {"noise_twin": "noise", "single_5deg": "single+5", "single_10deg": "single+10"}.get(
        kind, kind.replace(LOW, "-low")
    )


def print_summary(res: dict) -> None:
    f = common.fmt
    for name, sc in res["scenarios"].items():
        kinds = _kinds(sc["rows"])
        print(f"{SCENARIO_TITLES[name]}: false detections (5 sigma, >= 3 px, both signs) in science - "
              f"template ('-low': model warps with {res['setup']['low_noise_factor']:g}x less noise)")
        print(f"{'visit':>7} {'airmass':>7} " + " ".join(f"{_column_title(k):>13}" for k in kinds))
        for r in sc["rows"]:
            print(f"{r['label']:>7} {r['airmass']:7.3f} " + " ".join(f"{r['n_' + k]:13d}" for k in kinds))
        z = sc.get("zenith")
        if z:
            print("  zenith visit (airmass 1): " + ", ".join(
                f"{k} {z['n_' + k]} (chi2/source pixel {z['chi2_' + k]:.3f})" for k in _kinds([z])))
        for name in RUNS:
            run_info, spec = sc["runs"][name], sc["runs"][name]["spectra"]
            fit, ap = spec["fit"], spec["fit_aperture"]
            print(
                f"  {name:19s} {run_info['seconds']:6.1f} s; colour PSF-weighted slope "
                f"{f(fit['slope'], '.3f')} rank {f(fit['rank'], '.3f')} scatter {f(fit['scatter'], '.3f')}, "
                f"aperture slope {f(ap['slope'], '.3f')} rank {f(ap['rank'], '.3f')} (n = {fit['n']}); "
                f"total flux / baseline {run_info['total_flux_ratio_to_baseline']:.5f}"
            )
        fa = sc["flux_astrometry"]
        for image in (*(f"{s}_coadd" for s in SOLVERS), "baseline_coadd", "truth_noise_free"):
            e = fa[image]
            print(
                f"  {image:16s} aperture/truth image {f(e['aperture_ratio_to_truth_median'], '.4f')}, "
                f"PSF-weighted flux/true {f(e['flux_ratio_median'], '.4f')}, offset median "
                f"({f(e['dx_median_px'], '+.3f')}, {f(e['dy_median_px'], '+.3f')}) px, robust σ "
                f"{f(e['offset_robust_sigma_px'], '.3f')} px, colour trend "
                f"({f(e['dx_per_mag_color'], '+.3f')}, {f(e['dy_per_mag_color'], '+.3f')}) px/mag"
            )
    print("iterative solver at other convergence thresholds (two-sided): subfilter colour measured vs true")
    for s in res["thresholds"]:
        fit = s["spectra"]["fit"]
        print(f"  {s['label']:16s} (max_num_iter {s['max_num_iter']}) iterations {s['iterations']} slope "
              f"{f(fit['slope'], '.3f')} rank {f(fit['rank'], '.3f')} scatter {f(fit['scatter'], '.3f')}")
    print("issue 12 targets (exact solver):")
    for t in res["targets"]:
        print(f"  {'PASS' if t['pass'] else 'FAIL'}  {t['scenario']:9s} {t['target']}: {t['value']}")


def _md(value, spec: str) -> str:
    return common.fmt(value, spec, none="–")


def markdown(v: dict) -> list[str]:
    """The README's validation part from results ``v`` (Markdown lines)."""
    st = v["setup"]
    two, one = v["scenarios"]["two_sided"], v["scenarios"]["one_sided"]
    low = f"{st['low_noise_factor']:g}× less noise"
    lines = [
        "### False detections in science − template (DMTN-037's dipole test, issue 12's scenarios)",
        "",
        f"GalSim-simulated g-band field, {st['size']}×{st['size']} px at 0.2″, {st['n_stars']} stars "
        f"(black bodies, {', '.join(st['spectral_mix'])} mix), constant {st['seeing']}″ seeing, no defects. "
        "Each scenario's model warps are assembled by both solvers through the pipeline "
        "(`dcr.solver = \"iterative\"` and `\"exact\"`, M = 3, every other setting at its default), and "
        f"again on the same warps with {low} (noise-free images plus 1/{st['low_noise_factor']:g} of their "
        "noise, compare-warp artifact rejection off: what remains is the solver's bias). Detections: "
        "5σ per pixel, ≥ 3 connected pixels, both signs, direct pixel subtraction; the noise twin is the "
        "same visit with new noise (the noise floor).",
        "",
        f"**Two-sided coverage** (DMTN-037's test): {len(two['model_visits'])} model visits at airmass "
        f"1.0–2.0 and parallactic angles 100°–260°; science visits at parallactic angle "
        f"{st['science_parallactic_angle']:g}°.",
        "",
        f"| elevation | airmass | baseline coadd | iterative | exact | iterative, {low} | exact, {low} "
        "| single visit 5° higher | single visit 10° higher | noise twin |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in two["rows"]:
        lines.append(
            f"| {r['label']} | {r['airmass']:.3f} | {r['n_baseline']} | {r['n_iterative']} | "
            f"{r['n_exact']} | {r['n_iterative' + LOW]} | {r['n_exact' + LOW]} | "
            f"{r.get('n_single_5deg', '–')} | {r.get('n_single_10deg', '–')} | {r['n_noise_twin']} |"
        )
    z = two.get("zenith")
    if z:
        lines += [
            "",
            f"At the zenith (airmass 1, not one of DMTN-037's elevations): iterative {z['n_iterative']} "
            f"(χ² per source pixel {z['chi2_iterative']:.2f}), exact {z['n_exact']} "
            f"(χ² per source pixel {z['chi2_exact']:.2f}), baseline coadd {z['n_baseline']}, "
            f"noise twin {z['n_noise_twin']}.",
        ]
    airmass = [m["airmass"] for m in one["model_visits"]]
    lines += [
        "",
        f"**One-sided coverage** (issue 12): {len(airmass)} model visits all east of the meridian at airmass "
        f"{min(airmass):.2f}–{max(airmass):.2f} on the field's track from Rubin (declination "
        f"{st['field_dec']:g}°); science visits west of it and one east (E/W: side of the meridian).",
        "",
        f"| science visit | baseline coadd | iterative | exact | iterative, {low} | exact, {low} "
        "| noise twin |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in one["rows"]:
        lines.append(
            f"| {r['label']} | {r['n_baseline']} | {r['n_iterative']} | {r['n_exact']} | "
            f"{r['n_iterative' + LOW]} | {r['n_exact' + LOW]} | {r['n_noise_twin']} |"
        )
    lines += [
        "",
        "### Subfilter colours (bluest − reddest subfilter of isolated stars vs truth)",
        "",
        "Forced photometry at the true positions, PSF-weighted (Gaussian of the coadd PSF's "
        f"second-moment width) and in apertures of radius {APERTURE_FWHM:g} FWHM; line fit measured = "
        "slope × true + intercept (mag), robust scatter, Spearman rank correlation.",
        "",
        "| scenario | solver | stars | PSF-weighted slope | rank | scatter | aperture slope | rank "
        "| scatter |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, sc in v["scenarios"].items():
        for run_name in RUNS:
            spec = sc["runs"][run_name]["spectra"]
            fit, ap = spec["fit"], spec["fit_aperture"]
            label = run_name.replace(LOW, f", {low}")
            lines.append(
                f"| {SCENARIO_TITLES[name]} | {label} | {fit['n']} | {_md(fit['slope'], '.3f')} | "
                f"{_md(fit['rank'], '.3f')} | {_md(fit['scatter'], '.3f')} | {_md(ap['slope'], '.3f')} | "
                f"{_md(ap['rank'], '.3f')} | {_md(ap['scatter'], '.3f')} |"
            )
    floor = two["runs"]["iterative"]["spectra"].get("fit_truth_images")
    if floor and floor["slope"] is not None:
        lines += [
            "",
            "The same PSF-weighted photometry on the noise-free truth subfilter images gives slope "
            f"{floor['slope']:.3f}, scatter {floor['scatter']:.3f} (the method's floor).",
        ]
    if v.get("thresholds"):
        lines += [
            "",
            "Iterative solver at other convergence thresholds (two-sided; DMTN-037 found the slope too flat "
            "at 1 % and close to 1 at 0.1 %):",
            "",
            "| convergence_threshold | max_num_iter | iterations | PSF-weighted slope | rank | scatter |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for r in v["thresholds"]:
            fit = r["spectra"]["fit"]
            lines.append(
                f"| {r['convergence_threshold']:g} | {r['max_num_iter']} | {max(r['iterations'])} | "
                f"{_md(fit['slope'], '.3f')} | {_md(fit['rank'], '.3f')} | {_md(fit['scatter'], '.3f')} |"
            )
    lines += [
        "",
        "### Flux and astrometry (bright isolated stars)",
        "",
        "| scenario | image | aperture flux / truth image | PSF-weighted flux / catalogue "
        "| median offset (x, y) px | offset scatter px | offset trend with colour (x, y) px/mag "
        "| total flux / baseline coadd |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, sc in v["scenarios"].items():
        fa = sc["flux_astrometry"]
        for image, label in (
            *((f"{s}_coadd", f"{s} DCR coadd") for s in SOLVERS),
            ("baseline_coadd", "baseline coadd"),
            ("truth_noise_free", "noise-free truth (method floor)"),
        ):
            e = fa[image]
            solver = image.removesuffix("_coadd")
            total = (f"{sc['runs'][solver]['total_flux_ratio_to_baseline']:.5f}" if solver in SOLVERS
                     else "–")
            lines.append(
                f"| {SCENARIO_TITLES[name]} | {label} | {_md(e['aperture_ratio_to_truth_median'], '.4f')} | "
                f"{_md(e['flux_ratio_median'], '.4f')} | ({_md(e['dx_median_px'], '+.3f')}, "
                f"{_md(e['dy_median_px'], '+.3f')}) | {_md(e['offset_robust_sigma_px'], '.3f')} | "
                f"({_md(e['dx_per_mag_color'], '+.3f')}, {_md(e['dy_per_mag_color'], '+.3f')}) | {total} |"
            )
    lines += [
        "",
        f"Stars: {two['flux_astrometry']['n_bright']} (two-sided), {one['flux_astrometry']['n_bright']} "
        "(one-sided); total flux inside a 16-px margin.",
        "",
        "### Issue 12's targets (exact solver)",
        "",
        "| target | scenario | measured | |",
        "|---|---|---|---|",
    ]
    for t in v["targets"]:
        lines.append(f"| {t['target']} | {SCENARIO_TITLES[t['scenario']]} | {t['value']} | "
                     f"{'pass' if t['pass'] else '**fail**'} |")
    lines.append("")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small field (for tests)")
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--n-stars", type=int, default=None)
    ap.add_argument("--seed", type=int, default=None, help="simulation seed (field and noise; default 8)")
    ap.add_argument(
        "--out-dir", type=Path, default=None, help="results directory (default benchmarks/results)"
    )
    args = ap.parse_args(argv)
    setup = QUICK if args.quick else DEFAULT
    if args.size:
        setup = replace(setup, size=args.size)
    if args.n_stars:
        setup = replace(setup, n_stars=args.n_stars)
    if args.seed is not None:
        setup = replace(setup, seed=args.seed)
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
