"""End to end: simulated g-band warps -> baseline coadd -> DCR model -> templates."""

import numpy as np
import pytest

from dcrcoadd.config.schema import Config
from dcrcoadd.dcr.assemble import assemble_dcr_coadd
from dcrcoadd.dcr.model import DcrModel
from dcrcoadd.errors import InputError
from dcrcoadd.pipeline.outputs import write_dcr_outputs

pytest.importorskip("galsim")
from dcrcoadd.sim import SimulationConfig, simulate  # noqa: E402


@pytest.fixture(scope="module")
def sim():
    return simulate(SimulationConfig(size=64, n_visits=9, n_stars=25, airmass=(1.0, 2.0), seed=3,
                                     seeing=(0.7, 0.7), defects=False, noise_twins=False,
                                     n_bright_stars=0, star_mag_range=(17.0, 21.0)))


@pytest.fixture(scope="module")
def result(sim):
    held = int(np.argmax([w.visit.airmass for w in sim.warps]))
    inputs = [w for i, w in enumerate(sim.warps) if i != held]
    return assemble_dcr_coadd(inputs, Config()), sim.warps[held]


def test_flux_is_conserved(result, sim):
    res, _ = result
    inner = (slice(8, -8), slice(8, -8))  # away from the edges, where DCR moves flux in and out
    truth = sum(t.image * t.flux_calibration for t in sim.truth)[inner].sum()  # noise-free, nJy
    assert res.coadd.image[inner].sum() == pytest.approx(truth, rel=0.005)
    assert res.coadd.image[inner].sum() == pytest.approx(res.baseline.coadd.image[inner].sum(), rel=0.015)
    # the stacked coadd is the sum of the subfilter coadds (their noise is anticorrelated: the variances,
    # each its pixels' noise, do not add, `tests/test_product_noise.py`)
    stacked = sum(e.image for e in res.subfilter_coadds)
    np.testing.assert_allclose(res.coadd.image, stacked, rtol=1e-4, atol=1e-2)
    assert res.n_image.max() <= 3 * 8 and res.subfilter_n_images.shape[0] == 3


def iterative_config() -> Config:
    """LSST's iterative solver (the default is the exact one)."""
    config = Config()
    config.dcr.solver = "iterative"
    return config


def test_convergence_improves_and_history_is_recorded(sim):
    meta = assemble_dcr_coadd(sim.warps, iterative_config()).metadata
    assert meta["final_convergence"] < meta["initial_convergence"]
    history = meta["subregions"][0]["history"]
    assert history[0]["gain"] is None and len(history) >= 3  # at least min_num_iter = M iterations


def test_dcr_template_beats_the_coadd_at_high_airmass(result):
    res, science = result
    template = res.model.build_matched_exposure(science.visit)
    image = science.image * science.flux_calibration
    sources = res.baseline.coadd.mask_of("DETECTED")
    inner = np.zeros(image.shape, bool)
    inner[6:-6, 6:-6] = True
    use = sources & inner
    base = res.baseline.coadd.image
    rms_dcr = np.sqrt(np.mean((image - template.image)[use] ** 2))
    rms_base = np.sqrt(np.mean((image - base)[use] ** 2))
    assert rms_dcr < 0.5 * rms_base  # constant seeing: DCR dipoles dominate the coadd's residuals


def test_outputs_round_trip(result, tmp_path):
    res, science = result
    paths = write_dcr_outputs(res, tmp_path)
    for name in ("coadd", "dcr_coadd", "model", "subfilter_0", "subfilter_2"):
        assert paths[name].exists()
    from astropy.io import fits

    with fits.open(paths["subfilter_1"]) as hdul:
        np.testing.assert_array_equal(hdul["NIMAGE"].data, res.subfilter_n_images[1])
    with fits.open(paths["dcr_coadd"]) as hdul:
        np.testing.assert_array_equal(hdul["NIMAGE"].data, res.n_image)
    model = DcrModel.read(paths["model"])
    np.testing.assert_array_equal(model.images, res.model.images)
    t1 = model.build_matched_template(science.visit)
    t2 = res.model.build_matched_template(science.visit)
    np.testing.assert_array_equal(t1, t2)


def test_single_warp_is_refused(sim):
    with pytest.raises(InputError, match="underdetermined"):
        assemble_dcr_coadd(sim.warps[:1], Config())


@pytest.mark.parametrize("factor, tolerance", [(3.0, 1e-3), (1.0, None)])
def test_tiled_subregions_match_one_region(sim, factor, tolerance):
    """Away from the patch edges, 32-px subregions give the model of one 64-px region
    (fixed iterations, so both stop at the same point); LSST's buffer (factor 1) does not."""
    from dcrcoadd.config import apply_override

    models = {}
    for size in (64, 32):
        config = iterative_config()
        for text in (f"coadd.subregion_size=[{size},{size}]", "dcr.iterative.min_num_iter=6",
                     "dcr.iterative.max_num_iter=6", "dcr.iterative.use_progressive_gain=false",
                     f"dcr.buffer_factor={factor}"):
            apply_override(config, text)
        models[size] = assemble_dcr_coadd(sim.warps, config).model.images
    inner = (slice(None), slice(6, -6), slice(6, -6))
    worst = np.abs(models[64] - models[32])[inner].max() / np.abs(models[64]).max()
    if tolerance is None:
        assert worst > 1e-3  # the edge errors LSST's one-shift buffer lets in
    else:
        assert worst < tolerance


def test_psf_measurement_falls_back_with_a_warning(sim, caplog):
    from dcrcoadd.config import apply_override

    # a 64-px field has no isolated 25-px stamps: the input-based PSF is kept, with a warning
    config = apply_override(iterative_config(), "dcr.do_calculate_psf=true")
    res = assemble_dcr_coadd(sim.warps[:4], config)
    assert "could not measure a PSF" in caplog.text
    assert res.coadd.psf == res.baseline.psf_best_seeing and res.model.psf == res.coadd.psf


def test_subfilters_order_stars_by_colour(result, sim):
    """Measured bluest/reddest subfilter flux ratios follow the truth (DMTN-037's spectra test)."""
    res, _ = result
    cat = sim.catalog
    images = res.model.images
    y, x = np.mgrid[: images.shape[1], : images.shape[2]]
    truth, measured = [], []
    for row in cat:
        if row["kind"] != "star" or not (6 < row["x"] < 58 and 6 < row["y"] < 58):
            continue
        aperture = (x - row["x"]) ** 2 + (y - row["y"]) ** 2 <= 3.0**2
        blue, red = images[0][aperture].sum(), images[-1][aperture].sum()
        if blue <= 0 or red <= 0 or row["subfilter_flux"][0] < 2000:
            continue
        truth.append(np.log(row["subfilter_flux"][0] / row["subfilter_flux"][-1]))
        measured.append(np.log(blue / red))
    truth, measured = np.array(truth), np.array(measured)
    assert len(truth) >= 8
    assert np.corrcoef(truth, measured)[0, 1] > 0.9  # measured here: 0.96
    slope = np.polyfit(truth, measured, 1)[0]
    assert 0.5 < slope < 1.3  # measured here: 0.88 (DMTN-037 found slopes below 1 too)


def test_near_zenith_visits_converge():
    """DCR of ~0.2 px (airmass 1.00-1.01): the exact adjoint keeps every step an improvement;
    LSST's reverse shift feeds edge residuals back and the metric grows from the first step."""
    from dcrcoadd.config import apply_override

    sim = simulate(SimulationConfig(size=64, n_visits=4, n_stars=20, dec=-30.2, airmass=(1.0, 1.01), seed=4,
                                    seeing=(0.7, 0.7), defects=False, noise_twins=False, n_bright_stars=0,
                                    star_mag_range=(17.0, 21.0)))
    conv = {}
    for exact in (True, False):
        config = apply_override(iterative_config(), f"dcr.iterative.use_exact_adjoint={str(exact).lower()}")
        res = assemble_dcr_coadd(sim.warps, config)
        conv[exact] = [h["convergence"] for h in res.metadata["subregions"][0]["history"]]
    assert all(b < a for a, b in zip(conv[True], conv[True][1:], strict=False))
    assert conv[True][-1] < 0.5 * conv[True][0]
    assert conv[False][1] > conv[False][0]


def test_more_subfilters_than_warps_is_refused_before_solving():
    from dcrcoadd.dcr.assemble import check_subfilter_count

    with pytest.raises(InputError, match="at most 6 can be separated"):
        check_subfilter_count(50, 6)
    check_subfilter_count(3, 6)


def test_a_coadd_region_its_warps_footprints_leave_mostly_empty_is_warned_about(sim, caplog):
    # their boxes cover it, their pixels do not: 81 % of a probe's --box had no data, with no word
    import dataclasses
    import logging

    from dcrcoadd.coadd import assemble_coadd

    warps = []
    for w in sim.warps[:4]:
        w = dataclasses.replace(w, image=w.image.copy(), mask=w.mask.copy())
        w.image[:, 20:] = np.nan
        w.set_mask("NO_DATA", np.isnan(w.image))
        warps.append(w)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        assemble_coadd(sim.warps[:4])
    assert "has no data" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        assemble_coadd(warps)
    assert "69% of the coadd region" in caplog.text and "do not cover it" in caplog.text
