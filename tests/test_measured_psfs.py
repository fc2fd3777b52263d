"""Warps and science exposures without a PSF: PSFs measured across the DCR direction, then fitted
against the DCR model (`dcrcoadd.ops.psf_match`, `dcrcoadd.dcr.psf_refit`)."""

import dataclasses
import logging

import numpy as np
import pytest
from scipy import fft, ndimage

from dcrcoadd.config import Config
from dcrcoadd.core.psf import SIGMA_TO_FWHM, Psf
from dcrcoadd.ops.psf_match import convolve_round, fit_round_transfer


def gaussian_blur(image, sigma):
    ky, kx = fft.fftfreq(image.shape[0])[:, None], fft.rfftfreq(image.shape[1])[None, :]
    return fft.irfft2(fft.rfft2(image) * np.exp(-2 * np.pi**2 * sigma**2 * (ky**2 + kx**2)), s=image.shape)


def test_fit_recovers_the_ratio_of_two_gaussian_psfs():
    rng = np.random.default_rng(1)
    sky = np.zeros((128, 128))
    sky[rng.integers(16, 112, 40), rng.integers(16, 112, 40)] = rng.uniform(2e3, 2e4, 40)
    model = gaussian_blur(sky, 1.5)
    data = gaussian_blur(sky, np.hypot(1.5, 1.2)) + rng.normal(0.0, 1.0, sky.shape)
    fit = fit_round_transfer(data, model, np.ones(sky.shape), np.ones(sky.shape, bool))
    radius, transfer = fit.radius, fit.values
    expected = np.exp(-2 * np.pi**2 * 1.2**2 * radius**2)
    where = radius < 0.2  # where the model has power
    np.testing.assert_allclose(transfer[where], expected[where], atol=0.02)
    assert transfer[0] == 1.0
    # beyond the model's power the ratio is shrunk towards the prior (zero by default)
    assert np.all(np.abs(transfer[radius > 0.4]) < 0.05)
    psf = convolve_round(Psf.gaussian(1.5, size=25).kernel, fit, 31)
    assert psf.fwhm == pytest.approx(np.hypot(1.5, 1.2) * SIGMA_TO_FWHM, rel=0.02)
    assert psf.shape == (31, 31)


def test_fit_leaves_out_sources_with_bad_pixels_whole():
    """Saturated cores (garbage, masked) in the brightest stars: the fit keeps the true ratio."""
    rng = np.random.default_rng(2)
    sky = np.zeros((160, 160))
    ys, xs = rng.integers(16, 144, 50), rng.integers(16, 144, 50)
    sky[ys, xs] = rng.uniform(2e3, 2e4, 50)
    bright = np.argsort(sky[ys, xs])[-5:]
    sky[ys[bright], xs[bright]] = 5e6
    model = gaussian_blur(sky, 1.5)
    data = gaussian_blur(sky, np.hypot(1.5, 1.2)) + rng.normal(0.0, 1.0, sky.shape)
    bad = np.zeros(sky.shape, bool)
    for y, x in zip(ys[bright], xs[bright], strict=True):
        bad[y - 3:y + 4, x - 3:x + 4] = True
    data[bad] = 6e4  # a saturated plateau
    fit = fit_round_transfer(data, model, np.ones(sky.shape), ~bad)
    where = fit.radius < 0.2
    np.testing.assert_allclose(fit.values[where], np.exp(-2 * np.pi**2 * 1.2**2 * fit.radius[where] ** 2),
                               atol=0.03)


def test_fit_in_a_crowded_field_leaves_out_only_the_bad_pixels_source():
    """Sources so dense that the model above one sigma is one footprint over most of the image: a bad
    pixel in it left out that whole footprint, and the fit rested on the few pixels left."""
    rng = np.random.default_rng(4)
    sky = np.zeros((160, 160))
    n = 900
    ys, xs = rng.integers(4, 156, n), rng.integers(4, 156, n)
    sky[ys, xs] = rng.uniform(50, 2e3, n)
    model = gaussian_blur(sky, 1.5)
    data = gaussian_blur(sky, np.hypot(1.5, 1.2)) + rng.normal(0.0, 1.0, sky.shape)
    good = np.ones(sky.shape, bool)
    good[rng.integers(0, 160, 6), rng.integers(0, 160, 6)] = False  # (cosmic rays)
    assert ndimage.label(model > 1.0)[0].max() < 40  # (one footprint, a few specks)
    fit = fit_round_transfer(data, model, np.ones(sky.shape), good)
    where = fit.radius < 0.2
    np.testing.assert_allclose(fit.values[where], np.exp(-2 * np.pi**2 * 1.2**2 * fit.radius[where] ** 2),
                               atol=0.03)


@pytest.fixture(scope="module")
def field():
    from dcrcoadd.sim import SimulationConfig, simulate

    return simulate(SimulationConfig(size=160, n_visits=7, n_stars=60, n_bright_stars=0, airmass=(1.05, 1.8),
                                     seeing=(0.6, 1.1), star_mag_range=(15.5, 20.0), defects=False, seed=5))


def test_warps_without_psf_get_measured_then_fitted_psfs(field, caplog):
    from dcrcoadd.dcr.assemble import assemble_dcr_coadd

    warps = [dataclasses.replace(w, psf=None) for w in field.warps[:6]]
    with caplog.at_level(logging.WARNING):
        result = assemble_dcr_coadd(warps, Config())
    assert sum("measured one from its bright isolated stars" in r.getMessage() for r in caplog.records) == 6
    assert not any("without the per-warp PSF term" in r.getMessage() for r in caplog.records)
    assert result.model.psf_aware and result.metadata["psf_refits"] == Config().dcr.psf_refits > 0
    # PSFs of stars are already those of their colour mix: no chromatic widening on top
    assert result.model.psf_chromatic_index == 0.0
    table = result.baseline.inputs_table()
    assert list(table["psf_origin"]) == ["fitted"] * 6
    # each warp keeps its own seeing: fitted FWHMs follow the true ones
    true = np.array([w.psf.fwhm for w in field.warps[:6]])
    fitted = np.array(table["psf_fwhm"])
    assert np.corrcoef(true, fitted)[0, 1] > 0.95
    np.testing.assert_allclose(fitted, true, rtol=0.12)


def test_with_measure_psf_off_warps_without_psf_drop_the_psf_term(field, caplog):
    from dcrcoadd.dcr.assemble import assemble_dcr_coadd

    config = Config()
    config.inputs.measure_psf = False
    config.artifacts.enabled = False  # compare-warp needs PSFs
    warps = [dataclasses.replace(w, psf=None) for w in field.warps[:6]]
    with caplog.at_level(logging.WARNING):
        result = assemble_dcr_coadd(warps, config)
    assert any("without the per-warp PSF term" in r.getMessage() for r in caplog.records)
    assert not result.model.psf_aware


def test_template_for_a_science_exposure_without_psf_fits_its_psf(field):
    from dcrcoadd.dcr.assemble import assemble_dcr_coadd
    from dcrcoadd.template.build import make_template

    result = assemble_dcr_coadd(field.warps[:6], Config())
    science = field.warps[6]
    template = make_template(result.model, dataclasses.replace(science, psf=None))
    assert template.psf_label == "science-fitted"
    assert template.psf.fwhm == pytest.approx(science.psf.fwhm, rel=0.08)
    # the difference is as clean as with the true PSF, within a little
    true = make_template(result.model, science)
    sources = result.baseline.coadd.mask_of("DETECTED")
    chi2 = [np.nanmean(((science.image - t.image) ** 2 / (science.variance + t.variance))[sources])
            for t in (template, true)]
    assert chi2[0] < 1.5 * chi2[1] + 0.5


def test_fitted_psfs_follow_a_psf_that_varies_over_the_patch():
    """The right half of three of six warps is seen through an extra Gaussian of 1.2 px: the PSFs
    fitted per DCR tile differ there, by what that Gaussian adds, and each tile's solve uses its
    own. (A variation every warp shares cannot be told from the sky: the model takes it, and
    templates fitted against the model carry it.)"""
    from scipy import ndimage

    from dcrcoadd.config import apply_override
    from dcrcoadd.dcr.assemble import assemble_dcr_coadd, tile_tasks
    from dcrcoadd.sim import SimulationConfig, simulate

    sim = simulate(SimulationConfig(size=192, n_visits=6, n_stars=90, n_bright_stars=0, airmass=(1.05, 1.6),
                                    seeing=(0.8, 0.8), star_mag_range=(15.5, 20.0), defects=False, seed=11))
    warps = []
    for k, w in enumerate(sim.warps):
        image = w.image.copy()
        if k % 2:
            image[:, 96:] = ndimage.gaussian_filter(w.image.astype(np.float64), 1.2)[:, 96:]
        warps.append(dataclasses.replace(w, image=image.astype(np.float32), psf=None))
    config = Config()
    apply_override(config, "coadd.subregion_size=[96, 192]")  # two tiles: left and right halves
    result = assemble_dcr_coadd(warps, config)
    inputs = result.baseline.inputs
    left = np.array([inp.tile_psfs[0].fwhm for inp in inputs])
    right = np.array([inp.tile_psfs[1].fwhm for inp in inputs])
    true = sim.warps[0].psf
    expected = Psf(ndimage.gaussian_filter(np.pad(true.kernel, 8), 1.2)).fwhm / true.fwhm  # 1.25
    blurred, sharp = right[1::2] / left[1::2], right[::2] / left[::2]
    np.testing.assert_allclose(blurred / sharp.mean(), expected, rtol=0.06)
    # on the left every warp has the same PSF (the right halves' common blur is the model's to take)
    np.testing.assert_allclose(left, left.mean(), rtol=0.03)
    # the whole-warp PSF in the input table lies between the two tiles'
    fwhm = np.array(result.baseline.inputs_table()["psf_fwhm"])[1::2]
    assert np.all((fwhm > left[1::2]) & (fwhm < right[1::2]))
    # each tile's solve sees its own
    tasks = dict(tile_tasks(result_setup(result, config), result.baseline, config))
    assert tasks[1].warp_psfs[1] is inputs[1].tile_psfs[1] and tasks[0].warp_psfs[1] is inputs[1].tile_psfs[0]


def result_setup(result, config):
    from dcrcoadd.dcr.assemble import prepare_dcr_model

    return prepare_dcr_model(result.baseline, config, reference=result.model.psf)


def test_science_psf_without_stars_to_measure_is_fitted_and_a_given_one_wins(field, caplog):
    from dcrcoadd.core.geom import Box
    from dcrcoadd.dcr.assemble import assemble_dcr_coadd
    from dcrcoadd.template.build import make_template

    result = assemble_dcr_coadd(field.warps[:6], Config())
    science = field.warps[6]
    small = dataclasses.replace(science.subexposure(Box(40, 40, 56, 56)), psf=None)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.template.build"):
        template = make_template(result.model, small)
    assert any("too few stars to measure one" in r.getMessage() for r in caplog.records)
    assert template.psf_label == "science-fitted"
    assert template.psf.fwhm == pytest.approx(science.psf.fwhm, rel=0.15)
    given = Psf.gaussian(fwhm=4.0)
    template = make_template(result.model, small, given_psf=given)
    assert template.psf_label == "science-given" and template.psf == given
    # a file's own PSF wins over a given one, which is then said to be unused
    own = dataclasses.replace(small, psf=science.psf)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.template.build"):
        template = make_template(result.model, own, given_psf=given)
    assert template.psf_label == "science" and template.psf == science.psf
    assert any("the given PSF (--psf-fwhm) is not used" in r.getMessage() for r in caplog.records)


def test_assemble_on_files_without_psf_measures_and_fits_them(field, tmp_path):
    from astropy.table import Table

    from dcrcoadd.cli import main
    from dcrcoadd.io import write_exposure

    paths = [write_exposure(dataclasses.replace(w, psf=None), tmp_path / f"w{i}.fits")
             for i, w in enumerate(field.warps[:6])]
    assert main(["assemble", *map(str, paths), "--out", str(tmp_path / "out"), "-q"]) == 0
    inputs = Table.read(tmp_path / "out" / "coadd.fits", hdu="INPUTS")
    assert list(inputs["psf_origin"]) == ["fitted"] * 6
    np.testing.assert_allclose(inputs["psf_fwhm"], [w.psf.fwhm for w in field.warps[:6]], rtol=0.12)


def test_science_psf_fitted_in_blocks_follows_a_psf_that_varies_over_the_exposure(field):
    """A science exposure whose right half is seen through an extra Gaussian of 1.2 px: fitted in
    two blocks, the template follows it, and the difference is cleaner than with one fit."""
    from scipy import ndimage

    from dcrcoadd.dcr.assemble import assemble_dcr_coadd
    from dcrcoadd.parallel.tiles import tiles
    from dcrcoadd.template.build import make_template

    result = assemble_dcr_coadd(field.warps[:6], Config())
    science = field.warps[6]
    image = science.image.copy()
    image[:, 80:] = ndimage.gaussian_filter(science.image.astype(np.float64), 1.2)[:, 80:]
    varying = dataclasses.replace(science, image=image.astype(np.float32), psf=None)
    blocks = make_template(result.model, varying, psf_block=80)
    whole = make_template(result.model, varying)
    sources = result.baseline.coadd.mask_of("DETECTED")

    def chi2(template):
        r2 = (varying.image - template.image) ** 2 / (varying.variance + template.variance)
        return float(np.nanmean(r2[sources]))

    assert chi2(blocks) < 0.8 * chi2(whole)
    assert blocks.psf_label == "science-fitted"
    # blocks of nearly equal size, no sliver
    assert [t.box.width for t in tiles(science.bbox, 64, even=True)] == [53, 53, 54] * 3


def test_psfs_of_a_crowded_field_with_saturated_stars_are_fitted(caplog):
    # bright saturated stars, most warps without a measurable PSF. The sky above one sigma percolated
    # into one footprint over most of the image, and a saturated core in it left that footprint out
    # of every fit: PSFs 22-33 px wide against 3.5-5 true, then (refused) fits that stayed at the
    # start; templates far worse than the coadd (chi2 per source pixel ~1000 against 20-66)
    from dcrcoadd.config import apply_override
    from dcrcoadd.dcr.assemble import assemble_dcr_coadd
    from dcrcoadd.report.scores import score_exposure
    from dcrcoadd.sim import SimulationConfig, simulate
    from dcrcoadd.template.build import make_template

    sim = simulate(SimulationConfig(size=128, n_visits=8, n_stars=250, seed=11, star_mag_range=(17, 22)))
    warps = [w.copy() for w in sim.warps]
    for w in warps:
        w.psf = None
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        result = assemble_dcr_coadd(warps, apply_override(Config(), "artifacts.enabled=false"))
    assert not any("could not be fitted against the DCR model" in r.getMessage() for r in caplog.records)
    fitted = [inp.psf.fwhm for inp in result.baseline.inputs]
    np.testing.assert_allclose(fitted, [w.psf.fwhm for w in sim.warps], rtol=0.15)
    sources = result.baseline.coadd.mask_of("DETECTED")
    for science in sim.twins[:2]:
        dcr = score_exposure(science, make_template(result.model, science), None, sources).chi2
        assert dcr < 0.25 * score_exposure(science, result.baseline.coadd, None, sources).chi2


def test_a_psf_fit_the_warp_does_not_support_is_not_taken(field, caplog, monkeypatch):
    # a warp that does not show the model's sources (clouded out: sky noise only) gives a "fit" that is
    # the prior's, tens of pixels wide; solved with it, the failure had spread to every warp
    import dcrcoadd.coadd.inputs
    from dcrcoadd.coadd.flux_scale import FluxScale
    from dcrcoadd.dcr.assemble import assemble_dcr_coadd

    # (the warps' flux check skips such a warp up front, `tests/test_flux_scale.py`; on a field with too
    # few bright blocks it measures nothing, as here, and the fit must not take it)
    monkeypatch.setattr(dcrcoadd.coadd.inputs, "relative_flux_scales",
                        lambda blocks, *_: [FluxScale(np.nan, 0) for _ in blocks])
    warps = [dataclasses.replace(w, psf=None) for w in field.warps[:6]]
    rng = np.random.default_rng(3)
    noise = rng.normal(0, np.sqrt(warps[2].variance)).astype(np.float32)
    warps[2] = dataclasses.replace(warps[2], image=noise)
    config = Config()
    config.artifacts.enabled = False
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        result = assemble_dcr_coadd(warps, config)
    assert any("exposure[2]" in m and "could not be fitted against the DCR model" in m
               for m in (r.getMessage() for r in caplog.records))
    true = max(w.psf.fwhm for w in field.warps[:6])
    assert all(inp.psf.fwhm < 1.5 * true for inp in result.baseline.inputs)


def test_a_round_transfer_is_constrained_when_its_lowest_frequency_is_about_one():
    from dcrcoadd.ops.psf_match import RoundTransfer

    r = np.array([0.0, 0.01, 0.02])
    assert RoundTransfer(r, np.array([1.0, 0.97, 0.9])).constrained()
    assert not RoundTransfer(r, np.array([1.0, -0.9, -0.8])).constrained()  # (anticorrelated)
    assert not RoundTransfer(r, np.array([1.0, 0.0, 0.0])).constrained()  # (nothing in common)
    assert not RoundTransfer(r[:1], np.array([1.0])).constrained()  # (no frequency measured)


def test_a_baseline_passed_in_keeps_its_psfs(field):
    # the PSF refits replaced the baseline's inputs' PSFs in place: a second call with the same
    # baseline started from the first's fitted PSFs and gave another model
    from dcrcoadd.coadd import assemble_coadd
    from dcrcoadd.dcr.assemble import assemble_dcr_coadd

    warps = [dataclasses.replace(w, psf=None) for w in field.warps[:6]]
    config = Config()
    baseline = assemble_coadd(warps, config)
    before = [(inp.psf_origin, inp.psf) for inp in baseline.inputs]
    first = assemble_dcr_coadd(warps, config, baseline=baseline)
    assert [(inp.psf_origin, inp.psf) for inp in baseline.inputs] == before
    assert {inp.psf_origin for inp in first.baseline.inputs} == {"fitted"}
    again = assemble_dcr_coadd(warps, config, baseline=baseline)
    np.testing.assert_array_equal(again.model.images, first.model.images)


@pytest.fixture(scope="module")
def measured_model(field):
    """The model of ``field``'s first six warps, with every PSF measured from the stars."""
    from dcrcoadd.dcr.assemble import assemble_dcr_coadd

    return assemble_dcr_coadd([dataclasses.replace(w, psf=None) for w in field.warps[:6]], Config())


def _chi2(science, template, sources):
    r2 = (science.image - template.image) ** 2 / (science.variance + template.variance)
    return float(np.nanmean(r2[sources]))


def test_a_science_psf_from_a_file_is_fitted_against_a_model_of_measured_psfs(field, measured_model,
                                                                              tmp_path, caplog):
    """A model whose warp PSFs were all measured here fits them as well with all of them a little
    wider and itself a little sharper: its PSF widths are its own. A science exposure's true PSF,
    taken as it is, left residuals at every bright star (χ² per source pixel 1444 on this field);
    fitted against the model, 26."""
    from dcrcoadd.dcr.model import DcrModel
    from dcrcoadd.template.build import make_template

    model = measured_model.model
    assert model.psfs_measured
    model.write(tmp_path / "model.fits")
    assert DcrModel.read(tmp_path / "model.fits").psfs_measured  # (the PSFMEAS card)
    science = field.warps[6]
    sources = measured_model.baseline.coadd.mask_of("DETECTED")
    fitted = make_template(model, science)
    as_given = make_template(model, science, fit_psf=False)
    assert fitted.psf_label == "science-fitted" and as_given.psf_label == "science"
    assert _chi2(science, fitted, sources) < 0.1 * _chi2(science, as_given, sources)
    # a file's PSF narrower than the reference is not warned about when the fitted one is not
    narrow = dataclasses.replace(science, psf=Psf.gaussian(fwhm=0.9 * model.psf.fwhm))
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.template.build"):
        template = make_template(model, narrow)
    assert template.psf.fwhm > model.psf.fwhm and "narrower than the model's reference" not in caplog.text


def test_an_elliptical_science_psf_refitted_round_is_warned_about(field, measured_model, caplog):
    # A science PSF extension of shear 0.05 refitted as a round PSF against a model of measured warp PSFs
    # left 5-7 false detections (chi2 per source pixel 4.7), exit status 0 and nothing said.
    import galsim

    from dcrcoadd.template.build import make_template

    model, science = measured_model.model, field.warps[6]
    round_ = science.psf.kernel.shape[0]
    for g, warned in ((0.0, False), (0.05, True)):
        kernel = galsim.Gaussian(fwhm=science.psf.fwhm).shear(g1=0.6 * g, g2=0.8 * g).drawImage(
            nx=round_, ny=round_, scale=1.0).array
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="dcrcoadd.template.build"):
            make_template(model, dataclasses.replace(science, psf=Psf(kernel)))
        assert ("its PSF extension is elliptical" in caplog.text) is warned, g
    assert "major axis at 27 deg" in caplog.text  # (g1, g2 = 0.6 g, 0.8 g: atan2(0.8, 0.6) / 2)


def test_a_model_with_psfs_from_the_files_takes_a_science_psf_as_it_is(field):
    from dcrcoadd.dcr.assemble import assemble_dcr_coadd
    from dcrcoadd.template.build import make_template

    warps = field.warps[:6]
    warps = [warps[0]] + [dataclasses.replace(w, psf=None) for w in warps[1:]]  # (one PSF given)
    model = assemble_dcr_coadd(warps, Config()).model
    assert model.psf_aware and not model.psfs_measured
    science = field.warps[6]
    template = make_template(model, science)
    assert template.psf_label == "science" and template.psf == science.psf


def test_a_science_psf_of_a_seeing_card_is_fitted_against_the_model(field, tmp_path):
    """A Gaussian of the seeing card is a start, not the PSF: rendered at it, the template left a ring
    at every bright star (χ² per source pixel 60 where the true PSF gave 1.2); fitted, 1.5."""
    from dcrcoadd.dcr.assemble import assemble_dcr_coadd
    from dcrcoadd.io import read_exposure
    from dcrcoadd.io.fits import exposure_hdus, write_hdus
    from dcrcoadd.io.options import ReadOptions
    from dcrcoadd.template.build import build_templates, make_template

    result = assemble_dcr_coadd(field.warps[:6], Config())
    result.model.write(tmp_path / "model.fits")
    science = field.warps[6]
    hdus = exposure_hdus(dataclasses.replace(science, psf=None))
    hdus[0].header["FWHM"] = (science.psf.fwhm, "seeing, pixels")
    path = write_hdus(hdus, tmp_path / "science.fits")
    options = ReadOptions(header_map={"seeing": "FWHM"})
    [outcome] = build_templates(tmp_path / "model.fits", [path], tmp_path / "out", read_options=options)
    assert outcome.error is None
    template = read_exposure(outcome.template_path)
    sources = result.baseline.coadd.mask_of("DETECTED")
    card = make_template(result.model, options.read_exposure(path), fit_psf=False)
    assert card.psf.fwhm == pytest.approx(science.psf.fwhm, rel=0.01)  # (the card's Gaussian)
    assert _chi2(science, template, sources) < 0.2 * _chi2(science, card, sources)


def test_fit_leaves_out_a_single_bright_stars_footprint_whole():
    """A star bright enough that its one-sigma footprint is larger than a blend's (22 400 px): split
    as if it were a blend, only its saturated core was left out and its wings, cut sharply, stayed in
    the fit (transfer 0.28 off at low frequencies; 0.06 when it stays whole, but for the faint stars
    in its wings that cut it into cells; 0.01 left out whole)."""
    rng = np.random.default_rng(1)
    n = 256
    y, x = np.mgrid[:n, :n]
    a = 3.5 / (2 * np.sqrt(2 ** (1 / 2.5) - 1))
    star = (1 + ((x - 128.3) ** 2 + (y - 127.7) ** 2) / a**2) ** -2.5
    sky = np.zeros((n, n))
    sky[rng.integers(10, n - 10, 40), rng.integers(10, n - 10, 40)] = rng.uniform(300, 3000, 40)
    model = gaussian_blur(sky, 1.5) + 3e8 * star / star.sum()
    data = gaussian_blur(model, 1.2) + rng.normal(0.0, 1.0, sky.shape)
    good = (x - 128) ** 2 + (y - 128) ** 2 >= 36  # (its saturated core)
    labels = ndimage.label(model > 1.0)[0]
    assert (labels == labels[128, 128]).sum() > 4096
    fit = fit_round_transfer(data, model, np.ones(sky.shape), good)
    where = fit.radius < 0.2
    np.testing.assert_allclose(fit.values[where], np.exp(-2 * np.pi**2 * 1.2**2 * fit.radius[where] ** 2),
                               atol=0.08)


@pytest.mark.parametrize("factor", [2.0, 0.5])
def test_a_given_psf_that_is_not_its_stars_is_replaced_by_theirs(field, caplog, factor):
    """A PSF extension twice too wide (an oversampled PSF image) or half as wide as the stars was used
    as it is, in silence: the PSF-aware model fitted that warp with the wrong blur. It is now the
    stars' PSF, fitted against the model as other measured PSFs are; the others are kept."""
    from dcrcoadd.coadd.inputs import prepare_inputs
    from dcrcoadd.template.build import make_template

    warps = list(field.warps[:6])
    true = warps[2].psf
    warps[2] = dataclasses.replace(warps[2], psf=Psf.gaussian(fwhm=factor * true.fwhm))
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        inputs = prepare_inputs(warps, Config()).inputs
    assert [i.psf_origin for i in inputs] == ["input", "input", "measured", "input", "input", "input"]
    assert inputs[2].psf.fwhm == pytest.approx(true.fwhm, rel=0.1)
    assert ("times wider" if factor > 1 else "times narrower") in caplog.text
    assert sum("an oversampled PSF image" in r.getMessage() for r in caplog.records) == 1
    # a science exposure's is fitted against a PSF-aware model from its stars' instead
    from dcrcoadd.dcr.assemble import assemble_dcr_coadd

    model = assemble_dcr_coadd(field.warps[:6], Config()).model
    science = dataclasses.replace(field.warps[6], psf=Psf.gaussian(fwhm=factor * field.warps[6].psf.fwhm))
    template = make_template(model, science)
    assert template.psf_label == "science-fitted"
    assert template.psf.fwhm == pytest.approx(field.warps[6].psf.fwhm, rel=0.1)
