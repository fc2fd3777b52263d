"""The DCR products' variances are the noise their pixels carry (`dcrcoadd.ops.noise`), and template
pixels lit from model holes are flagged (`dcrcoadd.template.unmeasured`)."""

import numpy as np
import pytest
from scipy import ndimage

from dcrcoadd.config.schema import Config
from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.dcr.assemble import assemble_dcr_coadd
from dcrcoadd.ops.noise import MIN_SKY_PIXELS, sky_noise_factor
from dcrcoadd.template.build import make_template

pytest.importorskip("galsim")
from dcrcoadd.sim import SimulationConfig, simulate  # noqa: E402
from dcrcoadd.sim.config import Defects  # noqa: E402


def test_the_factor_is_the_sky_pixels_noise_in_units_of_the_variance():
    rng = np.random.default_rng(1)
    planes = MaskPlanes()  # (the LSST planes)
    image = rng.normal(0.0, 2.0, (100, 100))
    variance = np.ones_like(image)
    mask = np.zeros(image.shape, np.uint32)
    # a bright source inside a DETECTED footprint is left out; so are NO_DATA pixels
    image[40:60, 40:60] += 500.0
    mask[40:60, 40:60] |= np.uint32(planes.value(["DETECTED"]))
    image[:, :10] = 1e6
    mask[:, :10] |= np.uint32(planes.value(["NO_DATA"]))
    assert sky_noise_factor(image, variance, mask, planes) == pytest.approx(4.0, rel=0.08)
    # too few sky pixels to tell
    small = slice(0, int(np.sqrt(MIN_SKY_PIXELS)) - 1)
    part = (image[small, small], variance[small, small], mask[small, small])
    assert sky_noise_factor(*part, planes) is None


def test_on_a_field_detected_from_edge_to_edge_the_faintest_pixels_are_measured():
    # DETECTED on every pixel of crowded fields (600-800 stars on 256² px) left the DCR coadd's variance
    # unscaled and 50-65 times too small, with only an INFO line
    rng = np.random.default_rng(3)
    planes = MaskPlanes()
    y, x = np.mgrid[:200, :200]
    sources = np.zeros((200, 200))
    for yc, xc in rng.uniform(0, 200, (100, 2)):
        sources += 100.0 * np.exp(-0.5 * ((y - yc) ** 2 + (x - xc) ** 2) / 3.0**2)
    image = sources + rng.normal(0.0, 2.0, sources.shape)
    variance = np.ones_like(image)
    mask = np.full(image.shape, planes.value(["DETECTED"]), np.uint32)
    baseline = (sources + rng.normal(0.0, 1.0, sources.shape), variance)
    assert sky_noise_factor(image, variance, mask, planes, reference=baseline) == pytest.approx(4.0, rel=0.15)


def test_the_faintest_pixels_are_not_chosen_where_the_reference_has_no_value():
    # a reference without a value there (NaN) read as S/N 0, the faintest of all: here the noisier half
    rng = np.random.default_rng(4)
    planes = MaskPlanes()
    image = rng.normal(0.0, 2.0, (120, 120))
    image[:, :60] = rng.normal(0.0, 6.0, (120, 60))
    variance = np.ones_like(image)
    mask = np.full(image.shape, planes.value(["DETECTED"]), np.uint32)
    reference = rng.normal(0.0, 1.0, image.shape) + 3.0
    reference[:, :60] = np.nan
    factor = sky_noise_factor(image, variance, mask, planes, reference=(reference, np.ones_like(image)))
    assert factor == pytest.approx(4.0, rel=0.15)


@pytest.fixture(scope="module")
def twin_models():
    """Two models of one field from the same warps with independent noise (the noise twins), and the
    held-out visits of the sharpest and the widest seeing."""
    sim = simulate(SimulationConfig(size=128, n_visits=9, n_stars=12, airmass=(1.0, 1.8), seed=5,
                                    seeing=(0.55, 1.3), defects=False, n_bright_stars=0,
                                    star_mag_range=(18.0, 22.0)))
    fwhm = [w.psf.fwhm for w in sim.warps]
    held = [int(np.argmin(fwhm)), int(np.argmax(fwhm))]
    results = [assemble_dcr_coadd([w for i, w in enumerate(warps) if i not in held], Config())
               for warps in (sim.warps, sim.twins)]
    return results, [sim.warps[i] for i in held]


def _twin_scatter(a, b, inner=(slice(12, -12), slice(12, -12))) -> float:
    """Scatter of two images of independent noise over the root of their summed variances (1 when the
    variances are the noise)."""
    ratio = ((a.image - b.image) / np.sqrt(a.variance + b.variance))[inner]
    return float(np.std(ratio[np.isfinite(ratio)]))


def test_the_dcr_coadds_and_subfilters_variances_are_their_noise(twin_models):
    # They were the baseline coadd's and the baseline's / M, while their pixels scattered 3.8-4.0 and
    # 2.3-2.9 times that (the sky seen through the reference PSF, sharper than every warp's, and split).
    results, _ = twin_models
    a, b = results
    assert _twin_scatter(a.coadd, b.coadd) == pytest.approx(1.0, abs=0.1)
    for sa, sb in zip(a.subfilter_coadds, b.subfilter_coadds, strict=True):
        assert _twin_scatter(sa, sb) == pytest.approx(1.0, abs=0.1)
    assert _twin_scatter(a.baseline.coadd, b.baseline.coadd) == pytest.approx(1.0, abs=0.1)
    factors = a.metadata["variance_factors"]
    assert factors["dcr_coadd"] > 2.0 and len(factors["subfilters"]) == len(a.subfilter_coadds)


def test_a_templates_variance_is_its_noise_for_sharp_and_wide_science_psfs(twin_models):
    # The model's variance plane (the baseline coadd's) said 0.35-1.8 times the templates' noise per pixel
    # on simulated fields: rendered at a PSF sharper than the warps' the noise is amplified, at a wider one
    # smoothed. The difference of two templates from independent noise is that noise, twice over.
    results, sciences = twin_models
    models = [r.model for r in results]
    for science in sciences:
        a, b = (make_template(m, science) for m in models)
        assert _twin_scatter(a, b) == pytest.approx(1.0, abs=0.12), science.psf.fwhm


@pytest.fixture(scope="module")
def crowded_twin_models():
    """Two models of a field detected from edge to edge (60 stars on 128² px, warps of 2.9-7 px
    seeing), from the same warps with independent noise, and the held-out visits of the second
    sharpest and the widest seeing."""
    sim = simulate(SimulationConfig(size=128, n_visits=9, n_stars=60, airmass=(1.0, 1.8), seed=5,
                                    seeing=(0.5, 1.6), defects=False, n_bright_stars=0,
                                    star_mag_range=(17.0, 21.0)))
    order = np.argsort([w.psf.fwhm for w in sim.warps])
    held = [int(order[1]), int(order[-1])]
    models = [assemble_dcr_coadd([w for i, w in enumerate(warps) if i not in held], Config()).model
              for warps in (sim.warps, sim.twins)]
    return models, [sim.warps[i] for i in held]


def test_on_a_field_detected_from_edge_to_edge_a_templates_variance_is_measured_on_its_faintest_pixels(
        crowded_twin_models):
    # With no pixel outside DETECTED the factor went unmeasured and the variance stayed the model's: a
    # template at a PSF sharper than most warps' scattered 1.56 times it (scenario fields of 0.5-1.6"
    # seeing: chi2 per source pixel 1.25-1.35). Now its faintest pixels, by the model's light, measure it.
    models, (sharp, wide) = crowded_twin_models
    detected = np.uint32(models[0].mask_planes.value(["DETECTED"]))
    assert all(((m.mask & detected) != 0).all() for m in models)  # (the fixture's premise)
    a, b = (make_template(m, sharp) for m in models)
    assert _twin_scatter(a, b) == pytest.approx(1.0, abs=0.12), sharp.psf.fwhm
    # at 7 px the wings of its sources fill those pixels: their scatter only bounds the noise
    a, b = (make_template(m, wide) for m in models)
    assert _twin_scatter(a, b) < 1.0


@pytest.fixture(scope="module")
def saturated_field():
    """A field whose bright star saturates in every warp (a hole in the model), and a held-out visit."""
    only_saturation = Defects(cosmic_rays=False, bad_columns=0, chip_gap=False, streak_visits=0)
    sim = simulate(SimulationConfig(size=128, n_visits=8, n_stars=15, airmass=(1.0, 1.8), seed=4,
                                    defect_options=only_saturation, noise_twins=False, n_bright_stars=1))
    held = int(np.argmin([w.psf.fwhm for w in sim.warps]))  # (sharpest: the model's fill spreads least)
    result = assemble_dcr_coadd([w for i, w in enumerate(sim.warps) if i != held], Config())
    return result.model, sim.warps[held]


def test_template_pixels_lit_from_where_every_warp_saturated_are_flagged(saturated_field):
    # The model's fill of a core that saturated in every warp is an extrapolation; a template spreads it
    # over the pixels round the core, where science - template reached 10-16 sigma (false detections).
    model, science = saturated_field
    hole = model.mask & np.uint32(model.mask_planes.value(["NO_DATA"])) != 0
    assert hole.any()  # (the fixture's premise)
    template = make_template(model, science)
    # what is left unflagged beside the star is noise
    d = (science.image * science.flux_calibration - template.image * template.flux_calibration) / np.sqrt(
        science.variance * science.flux_calibration**2 + template.variance * template.flux_calibration**2)
    near = ndimage.binary_dilation(hole, iterations=12) & ~template.mask_of("SAT", "NO_DATA", "EDGE") \
        & ~science.mask_of("SAT", "BAD", "NO_DATA", "EDGE")
    assert np.max(np.abs(d[near])) < 5.0
    flagged = template.mask_of("SAT") & ~science.mask_of("SAT")
    assert 20 < np.count_nonzero(flagged) < 1000  # round the star only
