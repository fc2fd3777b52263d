"""Variable seeing: the PSF-aware forward model of the exact solver and templates at the science PSF."""

import dataclasses
import logging

import numpy as np
import pytest
from astropy.io import fits

from dcrcoadd.config import Config, apply_override
from dcrcoadd.core.bandpass import Bandpass
from dcrcoadd.core.psf import Psf
from dcrcoadd.dcr import fourier, psf_ratio
from dcrcoadd.errors import ConfigError

# -- the ratio and the reference PSF (no simulation needed) -----------------------------------------

GRID = (64, 80)


def test_ratio_of_a_psf_to_itself_is_one_where_it_has_power():
    psf = Psf.gaussian(fwhm=4.0)
    r = psf_ratio.ratio_transfer(psf.kernel, psf.kernel, GRID, 1e-3)
    power = np.abs(psf_ratio.kernel_transfer(psf.kernel, GRID)) ** 2
    np.testing.assert_allclose(r[power > 1e-2], 1.0, atol=1e-4)
    assert r[0, 0] == pytest.approx(1.0, abs=1e-5)  # flux is carried unchanged


def test_ratio_of_a_wider_psf_never_exceeds_one_even_with_noisy_kernels():
    rng = np.random.default_rng(1)
    ref = Psf.gaussian(fwhm=3.0, size=25)
    for fwhm in (3.2, 5.0, 7.0):
        noisy = Psf.gaussian(fwhm=fwhm, size=25).kernel + rng.normal(0, 2e-4, (25, 25))
        r = psf_ratio.ratio_transfer(noisy, ref.kernel, GRID, 1e-3)
        assert np.all(np.isfinite(r))
        assert np.abs(r).max() <= 1.01  # (the kernel's noise moves its transfer by ~1e-3)
    # a narrower warp is a deconvolution: bounded by its value where the reference has power
    r = psf_ratio.ratio_transfer(Psf.gaussian(fwhm=2.5, size=25).kernel, ref.kernel, GRID, 1e-3)
    assert 1.0 < np.abs(r).max() < 2.0


def test_full_band_prior_acts_only_where_the_reference_has_no_power():
    ref = Psf.gaussian(fwhm=3.0)
    lam = psf_ratio.full_band_prior(ref.kernel, GRID, 1e-2)
    power = np.abs(psf_ratio.kernel_transfer(ref.kernel, GRID)) ** 2
    assert lam[0, 0] < 1e-3 and np.all(lam[power > 0.1] < 1e-3)
    assert np.all(lam[power < 1e-6] > 0.99) and np.all((lam >= 0) & (lam <= 1))


def test_reference_psf_is_narrower_than_the_narrowest_input_with_its_shape():
    psfs = [Psf.gaussian(fwhm=f, size=25) for f in (5.0, 3.6, 4.4)]
    ref = psf_ratio.reference_psf(psfs, scale=0.9)
    assert ref.fwhm == pytest.approx(0.9 * psfs[1].fwhm, rel=0.01)
    assert ref.shape == (25, 25)
    assert psf_ratio.reference_psf(psfs, fwhm=3.0).fwhm == pytest.approx(3.0, rel=0.01)
    # a Gaussian's transfer raised to a power is a Gaussian: the ratio to every input stays <= 1
    for p in psfs:
        assert np.abs(psf_ratio.ratio_transfer(p.kernel, ref.kernel, GRID, 1e-3)).max() <= 1.0 + 1e-9


def test_kernel_transfer_is_the_zero_padded_kernels_transform():
    # the separable Fourier series equals the FFT of the kernel centred on pixel (0, 0), for an
    # asymmetric kernel (its phase) on a grid with an odd side
    rng = np.random.default_rng(3)
    kernel = rng.uniform(0.0, 1.0, (7, 11))
    grid = (40, 33)
    canvas = np.zeros(grid)
    canvas[:7, :11] = kernel / kernel.sum()
    canvas = np.roll(canvas, (-3, -5), axis=(0, 1))
    np.testing.assert_allclose(psf_ratio.kernel_transfer(kernel, grid), np.fft.rfft2(canvas), atol=1e-13)


def test_chromatic_seeing_widens_the_blue_subfilters_psf_and_narrows_the_red():
    band = Bandpass.preset("lsst-g")
    edges = band.subfilter_edges(3)
    scales = psf_ratio.seeing_scales(band, edges, -0.2)
    # FWHM ∝ λ^-0.2 about the band's effective wavelength: a few per cent across g
    assert scales[0] > 1.0 > scales[-1] and np.all(np.diff(scales) < 0)
    assert 0.01 < scales[0] - 1.0 < 0.05 and 0.01 < 1.0 - scales[-1] < 0.05
    np.testing.assert_array_equal(psf_ratio.seeing_scales(band, edges, 0.0), 1.0)
    # a kernel widened by s has the transfer of the wider kernel, P(s k)
    psf = Psf.gaussian(fwhm=4.0, size=31)
    wide = psf_ratio.kernel_transfer(psf.kernel, GRID, 1.1)
    np.testing.assert_allclose(wide, psf_ratio.kernel_transfer(Psf.gaussian(fwhm=4.4, size=31).kernel, GRID),
                               atol=1e-4)
    assert wide[0, 0] == pytest.approx(1.0)  # flux is kept
    np.testing.assert_allclose(psf_ratio.kernel_transfer(psf.kernel, GRID, 1.0 + 1e-12),
                               psf_ratio.kernel_transfer(psf.kernel, GRID), atol=1e-9)
    # one ratio per subfilter; the achromatic call keeps its shape
    ratios = psf_ratio.ratio_transfers(psf.kernel, psf.kernel, GRID, 1e-3, scales)
    assert ratios.shape == (3, *fourier.rfft_shape(GRID))
    shared = psf_ratio.ratio_transfers(psf.kernel, psf.kernel, GRID, 1e-3, np.ones(3))
    assert shared.shape == fourier.rfft_shape(GRID)


def test_transfer_takes_a_psf_ratio_per_warp_and_subfilter():
    rng = np.random.default_rng(3)
    shifts = rng.normal(0, 2, (2, 3, 4, 2))
    weights = np.full((3, 4), 0.25)
    ratio = rng.normal(size=(2, 3, *fourier.rfft_shape(GRID))) + 0j
    plain = fourier.transfer(shifts, weights, GRID, dtype=np.complex128)
    both = fourier.transfer(shifts, weights, GRID, psf_ratio=ratio, dtype=np.complex128)
    np.testing.assert_allclose(both[:, :, :, 1:-1], (plain * ratio)[:, :, :, 1:-1], atol=1e-12)
    # one warp: a 3-d ratio is per subfilter
    one = fourier.transfer(shifts[1], weights, GRID, psf_ratio=ratio[1], dtype=np.complex128)
    np.testing.assert_array_equal(one, both[1])
    # the per-warp ratio (N, ky, kx) is the same as a subfilter axis of 1
    per_warp = fourier.transfer(shifts, weights, GRID, psf_ratio=ratio[:, 0], dtype=np.complex128)
    np.testing.assert_array_equal(per_warp, fourier.transfer(shifts, weights, GRID, psf_ratio=ratio[:, :1],
                                                             dtype=np.complex128))
    with pytest.raises(ValueError, match="subfilters"):
        fourier.transfer(shifts, weights, GRID, psf_ratio=ratio[:, :2])


def test_psf_model_settings_are_checked():
    for override in ("dcr.psf_model=gauss", "dcr.psf_reference_fwhm=-1", "dcr.psf_reference_scale=0",
                     "dcr.psf_ratio_floor=0", "dcr.psf_chromatic_index=2"):
        config = Config()
        apply_override(config, override)
        with pytest.raises(ConfigError, match=override.split("=")[0]):
            config.validate()
    config = Config()
    apply_override(config, "dcr.psf_model=none")  # reads as None: the same as "none"
    config.validate()


# -- fields ----------------------------------------------------------------------------------------

galsim = pytest.importorskip("galsim")

from dcrcoadd.cli import main  # noqa: E402
from dcrcoadd.dcr.assemble import assemble_dcr_coadd  # noqa: E402
from dcrcoadd.dcr.model import DcrModel  # noqa: E402
from dcrcoadd.io import write_exposure  # noqa: E402
from dcrcoadd.report.scores import chi_image, science_in_njy, score_exposure  # noqa: E402
from dcrcoadd.sim import SimulationConfig, simulate  # noqa: E402
from dcrcoadd.template.build import make_template  # noqa: E402


def make_field(seeing):
    sim = simulate(SimulationConfig(size=96, n_visits=12, n_stars=40, airmass=(1.0, 2.0), seeing=seeing,
                                    defects=False, seed=5))
    order = np.argsort([w.visit.airmass for w in sim.warps])
    held = [int(order[-1]), int(order[-3])]  # the two highest airmasses the model never sees
    return [w for i, w in enumerate(sim.warps) if i not in held], [sim.warps[i] for i in held]


@pytest.fixture(scope="module")
def variable():
    return make_field((0.6, 1.3))


@pytest.fixture(scope="module")
def constant():
    return make_field((0.8, 0.8))


def solve(warps, psf_model, *overrides):
    config = Config()
    for override in ("dcr.solver=exact", f"dcr.psf_model={psf_model}", *overrides):
        apply_override(config, override)
    return assemble_dcr_coadd(warps, config)


def detections(result, science):
    sources = result.baseline.coadd.mask_of("DETECTED")
    out = []
    for sci in science:
        template = result.model.build_matched_exposure(sci.visit, psf=sci.psf)
        out.append(score_exposure(sci, template.image, template.variance, sources).n_detections)
    return out


@pytest.fixture(scope="module")
def variable_runs(variable):
    warps, _ = variable
    return {mode: solve(warps, mode) for mode in ("warp", "none")}


def test_psf_aware_templates_leave_far_fewer_false_detections_under_variable_seeing(variable, variable_runs):
    _, science = variable
    aware = detections(variable_runs["warp"], science)
    blind = detections(variable_runs["none"], science)
    # measured: [0, 0] against [135, 113]; [2, 1] without chromatic seeing (dcr.psf_chromatic_index=0)
    assert max(aware) <= 5
    assert min(blind) >= 6 * max(max(aware), 1)


def test_constant_seeing_gives_the_same_result_with_or_without_the_psf_term(constant):
    warps, science = constant
    aware, blind = solve(warps, "warp"), solve(warps, "none")
    a, b = detections(aware, science), detections(blind, science)
    # measured [2, 1] against [2, 2] ([5, 5] without chromatic seeing); these small counts move by a few
    # with rounding alone, since the colour alternation stops after its 30 refits unconverged
    assert max(a) <= 6 and sum(a) <= sum(b) + 6
    # the templates agree to a fraction of their noise
    for sci in science:
        ta = aware.model.build_matched_exposure(sci.visit, psf=sci.psf)
        tb = blind.model.build_matched_exposure(sci.visit, psf=sci.psf)
        diff = (ta.image - tb.image)[10:-10, 10:-10] / np.sqrt(sci.variance[10:-10, 10:-10])
        assert np.sqrt(np.mean(diff**2)) < 0.75  # measured 0.51 (the models' noise differs)
    assert aware.coadd.image.sum() == pytest.approx(blind.coadd.image.sum(), rel=1e-3)


def test_a_bright_star_is_fitted_to_its_noise_in_the_sharpest_warp_and_a_new_visit():
    # a 14-mag star (peak S/N ~1000): the prior that holds the full-band image where the reference PSF
    # has no power must not round off the star's own high frequencies, which the sharpest exposures
    # see. With the prior's floor at 1e-2 (psf_ratio_floor 1e-3) they left rings of 13σ and 8.5σ, 12
    # and 4 false detections; at 3e-3 (the default): 4.7σ and 4.9σ, none.
    sim = simulate(SimulationConfig(size=96, n_visits=10, n_stars=40, airmass=(1.0, 2.0), seeing=(0.6, 1.3),
                                    defects=False, seed=7, bright_mag_range=(14.0, 14.5)))
    order = np.argsort([w.visit.airmass for w in sim.warps])
    held = {int(order[-1]), int(order[2])}
    warps = [w for i, w in enumerate(sim.warps) if i not in held]
    res = solve(warps, "warp")
    sharpest = min(warps, key=lambda w: w.psf.fwhm)
    new_visit = sim.warps[int(order[2])]
    assert new_visit.psf.fwhm > sharpest.psf.fwhm  # (a template no sharper than the model's inputs)
    sources = res.baseline.coadd.mask_of("DETECTED")
    for exposure in (sharpest, new_visit):
        template = res.model.build_matched_exposure(exposure.visit, psf=exposure.psf)
        image, variance = science_in_njy(exposure)
        snr = np.where(sources, image / np.sqrt(variance), 0.0)
        y, x = np.unravel_index(np.argmax(snr), snr.shape)
        assert snr[y, x] > 800  # the bright star
        chi = chi_image(image, variance, template.image, template.variance)
        near = chi[max(y - 12, 0):y + 13, max(x - 12, 0):x + 13]
        assert np.nanmax(np.abs(near)) < 7
        assert score_exposure(exposure, template.image, template.variance, sources).n_detections == 0


def test_psf_aware_model_records_its_reference_psf_and_renders_the_same_from_its_file(variable, variable_runs,
                                                                                      tmp_path):
    warps, science = variable
    res = variable_runs["warp"]
    ref = res.model.psf
    narrowest = min(w.psf.fwhm for w in warps)
    assert ref.fwhm == pytest.approx(0.9 * narrowest, rel=0.02)
    # the DCR coadd and the subfilter coadds are delivered at the reference PSF
    assert res.coadd.psf == ref and all(c.psf == ref for c in res.subfilter_coadds)
    # flux of the DCR coadd: the warps' (the full-band image is set by the data at k = 0), away from
    # the field's edge, across which the wider warps spread more light than the reference PSF does
    # (over the whole field measured -0.37 %, 16 px in +0.08 %)
    inner = (slice(16, -16), slice(16, -16))
    assert res.coadd.image[inner].sum() == pytest.approx(res.baseline.coadd.image[inner].sum(), rel=3e-3)
    path = res.model.write(tmp_path / "model.fits")
    assert fits.getheader(path)["PSFMODEL"] == "warp"
    assert fits.getheader(path)["PSFCHROM"] == pytest.approx(-0.2)  # chromatic seeing, as fitted
    again = DcrModel.read(path)
    assert again.psf_aware and again.psf == ref and again.psf_chromatic_index == pytest.approx(-0.2)
    sci = science[0]
    template = res.model.render(sci.visit, psf=sci.psf)
    np.testing.assert_allclose(again.render(sci.visit, psf=sci.psf), template, rtol=1e-5, atol=1e-3)
    # a file written before chromatic seeing (no PSFCHROM card) renders without it
    with fits.open(path) as hdul:
        del hdul[0].header["PSFCHROM"]
        hdul.writeto(tmp_path / "old.fits")
    old = DcrModel.read(tmp_path / "old.fits")
    assert old.psf_chromatic_index == 0.0
    assert np.abs(old.render(sci.visit, psf=sci.psf) - template).max() > 1e-3 * np.abs(template).max()
    # a model without the PSF term records nothing new and ignores a science PSF
    blind = variable_runs["none"].model
    assert not blind.psf_aware
    np.testing.assert_array_equal(blind.render(sci.visit, psf=sci.psf), blind.render(sci.visit))


def test_template_command_renders_at_the_science_or_the_reference_psf(variable, variable_runs, tmp_path,
                                                                      caplog):
    warps, science = variable
    model_path = variable_runs["warp"].model.write(tmp_path / "model.fits")
    ref = variable_runs["warp"].model.psf
    sci = write_exposure(science[0], tmp_path / "sci.fits")
    sharp = min(warps, key=lambda w: w.psf.fwhm)
    narrow = Psf.gaussian(fwhm=0.8 * ref.fwhm)
    sharp_exp = write_exposure(dataclasses.replace(sharp, psf=narrow), tmp_path / "sharp.fits")
    assert main(["template", str(model_path), str(sci), "--out", str(tmp_path / "s"), "-q"]) == 0
    assert main(["template", str(model_path), str(sci), "--out", str(tmp_path / "r"), "-q",
                 "--psf", "reference"]) == 0
    with (fits.open(tmp_path / "s" / "sci_template.fits") as s,
          fits.open(tmp_path / "r" / "sci_template.fits") as r):
        assert s[0].header["TMPLPSF"] == "science" and r[0].header["TMPLPSF"] == "reference"
        np.testing.assert_allclose(s["PSF"].data, science[0].psf.kernel)
        np.testing.assert_allclose(r["PSF"].data, ref.kernel)
        # the science-PSF template is the wider one: its peak pixels are lower
        assert np.nanmax(s["IMAGE"].data) < np.nanmax(r["IMAGE"].data)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.template.build"):
        assert main(["template", str(model_path), str(sharp_exp), "--out", str(tmp_path / "n"), "-q"]) == 0
    assert any(f"{100 * (1 - narrow.fwhm / ref.fwhm):.1f}% narrower than the model's reference PSF"
               in r.getMessage() for r in caplog.records)


def test_a_template_sharper_than_every_warp_of_the_model_is_warned_about(variable, variable_runs, caplog):
    # science visits 5-10 % sharper than every model warp (but not than the reference) left 3.5 false
    # detections each over the scenarios' 12 seeds, without a word
    warps, _ = variable
    model = variable_runs["warp"].model
    sharpest = float(np.min(model.input_psf_fwhm))
    assert sharpest == pytest.approx(min(w.psf.fwhm for w in warps), rel=0.05)  # (what the model records)
    assert 0.92 * sharpest > model.psf.fwhm  # (narrower than the reference is another warning)
    sharp = min(warps, key=lambda w: w.psf.fwhm)

    def warnings(fwhm: float) -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="dcrcoadd.template.build"):
            make_template(model, dataclasses.replace(sharp, psf=Psf.gaussian(fwhm=fwhm)), fit_psf=False)
        return [r.getMessage() for r in caplog.records if "than the sharpest of the" in r.getMessage()]

    said = warnings(0.92 * sharpest)
    assert len(said) == 1 and f"8% narrower than the sharpest of the {len(warps)} warps" in said[0], said
    assert warnings(0.98 * sharpest) == []


def test_a_difference_refused_for_a_sharpened_templates_noise_says_so(variable, variable_runs, tmp_path,
                                                                        capsys):
    # a template rendered at a PSF far narrower than the reference amplifies the model's noise beyond
    # what its variance says: the science VARIANCE is not what is wrong
    warps, _ = variable
    model_path = variable_runs["warp"].model.write(tmp_path / "model.fits")
    ref = variable_runs["warp"].model.psf
    sharp = min(warps, key=lambda w: w.psf.fwhm)
    narrow = dataclasses.replace(sharp, psf=Psf.gaussian(fwhm=0.6 * ref.fwhm))
    path = write_exposure(narrow, tmp_path / "s.fits")
    assert main(["template", str(model_path), str(path), "--out", str(tmp_path / "n"), "--diff"]) == 2
    err = capsys.readouterr().err
    assert "its template, sharpened to its PSF, 40% narrower than the model's reference" in err


def test_a_warp_without_psf_turns_the_psf_term_off_with_a_warning(caplog):
    sim = simulate(SimulationConfig(size=64, n_visits=5, n_stars=15, airmass=(1.0, 1.6), seeing=(0.6, 1.3),
                                    star_mag_range=(16, 20), defects=False, seed=7))
    stripped = [dataclasses.replace(sim.warps[0], psf=None), *sim.warps[1:]]
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.dcr.assemble"):
        # (compare-warp artifact rejection needs every warp's PSF)
        res = solve(stripped, "warp", "artifacts.enabled=false")
    assert any("fitted without the per-warp PSF term" in r.getMessage() for r in caplog.records)
    assert res.model.psf_model != "warp"


def test_iterative_solver_with_the_psf_term_fits_variable_seeing_better(variable, tmp_path):
    warps, science = variable
    runs = {}
    for mode in ("warp", "auto"):
        config = Config()
        for override in ("dcr.solver=iterative", f"dcr.psf_model={mode}"):
            apply_override(config, override)
        runs[mode] = assemble_dcr_coadd(warps, config)
    aware, parity = runs["warp"], runs["auto"]
    # LSST parity by default: no PSF term, the model at the coadd's PSF
    assert not parity.model.psf_aware and aware.model.psf_aware
    # its reference stays the coadd's PSF (the conditioning holds the model near the coadd)
    assert aware.model.psf == parity.model.psf and aware.model.psf_chromatic_index == 0.0
    a, b = detections(aware, science), detections(parity, science)
    assert sum(a) < 0.8 * sum(b)  # measured [5, 4] against [13, 18]
    assert aware.coadd.image.sum() == pytest.approx(parity.coadd.image.sum(), rel=3e-3)
    # the template from the file is the one the solver fitted
    path = tmp_path / "model.fits"
    aware.model.write(path)
    loaded = DcrModel.read(path)
    for sci in science:
        np.testing.assert_allclose(loaded.render(sci.visit, psf=sci.psf),
                                   aware.model.render(sci.visit, psf=sci.psf), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("pixel_scale, warned", [(0.4, True), (0.2, False)])
def test_undersampled_warps_and_science_psfs_are_warned_about(pixel_scale, warned, caplog):
    # 0.6-0.8" seeing on 0.4" pixels is 1.5-2 px FWHM: sampling aliases each bright star by where it falls
    # on a pixel, which the model (on those pixels) and its templates cannot reproduce (simulated
    # fields: 2-125 false detections per visit next to an unsaturated 14-mag star, `dcrcoadd.core.psf`);
    # on 0.2" pixels it is 3-4 px, well sampled
    sim = simulate(SimulationConfig(size=64, n_visits=6, n_stars=15, airmass=(1.0, 1.6), seeing=(0.6, 0.8),
                                    pixel_scale=pixel_scale, star_mag_range=(16, 20), defects=False, seed=7))
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        res = solve(sim.warps[1:], "warp")
        make_template(res.model, sim.warps[0], source="sci.fits")
    messages = [r.getMessage() for r in caplog.records]
    assert any("PSFs (FWHM" in m and "are undersampled" in m for m in messages) is warned
    assert any(m.startswith("sci.fits: its PSF") and "is undersampled" in m for m in messages) is warned
