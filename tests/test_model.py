"""DcrModel: initial split, forward model of matched templates, persistence."""

import logging

import astropy.units as u
import numpy as np
import pytest

from conftest import complete_visit, g_bandpass, tan_wcs
from dcrcoadd.core.exposure import Exposure
from dcrcoadd.core.geom import Box
from dcrcoadd.core.psf import Psf
from dcrcoadd.dcr.forward import matched_template
from dcrcoadd.dcr.model import DcrModel
from dcrcoadd.errors import InputError
from dcrcoadd.physics.dcr import dcr_shifts


def coadd_exposure(shape=(48, 56), origin=(100, 200), seed=0):
    rng = np.random.default_rng(seed)
    image = rng.normal(10.0, 1.0, shape).astype(np.float32)
    image[20:23, 30:33] += 500.0
    wcs = tan_wcs(crpix=(shape[1] / 2, shape[0] / 2))
    return Exposure(image=image, variance=np.full(shape, 4.0), origin=origin, wcs=wcs,
                    psf=Psf.gaussian(1.5), bandpass=g_bandpass(), flux_calibration=2.5)


def test_from_image_splits_flux_and_variance_equally():
    coadd = coadd_exposure()
    model = DcrModel.from_image(coadd, 3)
    assert len(model) == 3
    for k in range(3):
        np.testing.assert_allclose(model[k], coadd.image / 3, rtol=1e-6)
    np.testing.assert_allclose(model.variance, 4.0 / 3)
    np.testing.assert_allclose(model.reference_image(), coadd.image / 3, rtol=1e-6)
    np.testing.assert_allclose(model.stacked().image, coadd.image, rtol=1e-5)
    assert model.bbox == coadd.bbox
    # the subfilters tile the band, blue first
    lo, hi = coadd.bandpass.wavelength_range
    assert model.subfilter_edges[0, 0] == pytest.approx(lo)
    assert model.subfilter_edges[-1, 1] == pytest.approx(hi)
    with pytest.raises(IndexError):
        model[3]


def test_from_image_needs_a_band():
    coadd = coadd_exposure()
    coadd.bandpass = None
    with pytest.raises(InputError, match="bandpass"):
        DcrModel.from_image(coadd, 3)


def test_matched_template_with_zero_shift_is_the_sum():
    models = np.random.default_rng(2).normal(size=(3, 16, 16)).astype(np.float32)
    out = matched_template(models, np.zeros((3, 2)))
    np.testing.assert_allclose(out, models.sum(axis=0), rtol=1e-5, atol=1e-5)


def test_split_mode_uses_two_half_weighted_shifts_only_above_threshold():
    models = np.zeros((1, 21, 21), np.float32)
    models[0, 10, 10] = 1.0
    split = np.array([[[0.0, -1.0], [0.0, 1.0]]])  # two integer shifts 2 px apart
    out = matched_template(models, split, split_threshold=0.1)
    assert out[10, 9] == pytest.approx(0.5) and out[10, 11] == pytest.approx(0.5)
    merged = matched_template(models, split, split_threshold=5.0)  # below threshold: one mean shift
    assert merged[10, 10] == pytest.approx(1.0)


def test_matched_template_moves_each_subfilter_by_its_dcr():
    coadd = coadd_exposure()
    model = DcrModel.from_image(coadd, 3)
    model.images[:] = 0.0
    model.images[0, 24, 28] = 100.0  # a point source in the bluest subfilter only
    visit = complete_visit(airmass=None).replace(boresight_alt=40 * u.deg, boresight_az=200 * u.deg,
                                                 boresight_ra=None, boresight_dec=None, time=None)
    template = model.build_matched_template(visit, split=False)
    shifts = dcr_shifts(visit, model.wcs, model.bandpass, 3, position=model.wcs.pixel_to_world(
        (model.bbox.width - 1) / 2, (model.bbox.height - 1) / 2), edges=model.subfilter_edges)
    y, x = np.mgrid[: template.shape[0], : template.shape[1]]
    assert template.sum() == pytest.approx(100.0, rel=1e-5)
    cy, cx = (template * y).sum() / template.sum(), (template * x).sum() / template.sum()
    assert cy == pytest.approx(24 + shifts[0, 0], abs=1e-3)
    assert cx == pytest.approx(28 + shifts[0, 1], abs=1e-3)
    assert np.hypot(*shifts[0]) > 0.5  # the blue subfilter really moved at 50 deg zenith distance


def test_build_matched_exposure_and_region():
    coadd = coadd_exposure()
    model = DcrModel.from_image(coadd, 3)
    box = Box(110, 210, 20, 16)
    exp = model.build_matched_exposure(complete_visit(), bbox=box)
    assert exp.bbox == box
    np.testing.assert_allclose(exp.variance, 4.0, rtol=1e-6)
    assert exp.psf == model.psf and exp.flux_calibration == 2.5
    sky_model = model.wcs.pixel_to_world(box.x0 - 100, box.y0 - 200)
    sky_exp = exp.wcs.pixel_to_world(0, 0)
    assert sky_model.separation(sky_exp).arcsec < 1e-6
    sub = model.region(box)
    np.testing.assert_array_equal(sub.images, model.images[:, 10:26, 10:30])


def test_write_read_round_trip_is_exact(tmp_path):
    coadd = coadd_exposure()
    model = DcrModel.from_image(coadd, 4, interp_order=3)
    model.images += np.random.default_rng(5).normal(size=model.images.shape).astype(np.float32)
    model.input_conditions = [[1.2, -35.0], [1.6, 40.5], [1.05, 170.0]]
    model.input_psf_fwhm = [3.4, 4.1, 5.25]
    path = model.write(tmp_path / "model.fits")
    back = DcrModel.read(path)
    np.testing.assert_array_equal(back.images, model.images)
    np.testing.assert_array_equal(back.input_conditions, model.input_conditions)
    np.testing.assert_array_equal(back.input_psf_fwhm, model.input_psf_fwhm)
    np.testing.assert_array_equal(back.mask, model.mask)
    np.testing.assert_array_equal(back.variance, model.variance)
    np.testing.assert_array_equal(back.subfilter_edges, model.subfilter_edges)
    assert back.origin == model.origin and back.psf == model.psf and back.bandpass == model.bandpass
    assert back.flux_calibration == model.flux_calibration
    assert back.interp_order == model.interp_order
    assert back.wcs.pixel_to_world(3, 4).separation(model.wcs.pixel_to_world(3, 4)).arcsec < 1e-9


def test_dcr_coverage_gap_is_the_distance_from_the_inputs_dcr_vectors():
    from dcrcoadd.dcr.model import dcr_coverage_gap

    # inputs at the zenith and at tan z = 1 towards q = 0: their DCR vectors span (0, 0)-(0, 1)
    inputs = np.array([[1.0, 0.0], [np.sqrt(2.0), 0.0]])
    assert dcr_coverage_gap(inputs, np.sqrt(1.25), 0.0) == pytest.approx(0.0, abs=1e-6)  # between them
    assert dcr_coverage_gap(inputs, np.sqrt(5.0), 0.0) == pytest.approx(1.0, abs=1e-6)  # tan z 2, same side
    assert dcr_coverage_gap(inputs, np.sqrt(2.0), 180.0) == pytest.approx(1.0, abs=1e-6)  # other side
    assert dcr_coverage_gap(inputs, np.sqrt(2.0), 90.0) == pytest.approx(1.0, abs=1e-6)  # across
    # a model that records no inputs (written before it) reports nothing
    assert DcrModel.from_image(coadd_exposure(), 3).dcr_coverage_gap(None) is None


def test_read_rejects_a_plain_exposure(tmp_path):
    from dcrcoadd.io import write_exposure

    path = write_exposure(coadd_exposure(), tmp_path / "plain.fits")
    with pytest.raises(InputError, match="not a dcrcoadd DCR model"):
        DcrModel.read(path)


def _psf_aware(hdus):
    """The primary header of a model file made PSF-aware, as `DcrModel.write` marks one."""
    hdus[0].header["PSFMODEL"] = "warp"
    hdus[0].header["PSFFLOOR"] = 1e-3
    return hdus[0].header


def _fourier(hdus):
    """The primary header of a model file marked as one of the Fourier forward model, as `DcrModel.write`
    marks one."""
    hdus[0].header["FWDMODEL"] = "fourier"
    hdus[0].header["NSAMPLE"] = 16
    return hdus[0].header


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda hdus: setattr(hdus["SUBFILTER_0"], "data", hdus["SUBFILTER_0"].data[:10, :10].copy()),
     "SUBFILTER_0 has shape"),
    (lambda hdus: hdus["SUBFILTER_1"].data.fill(np.nan), "SUBFILTER_1 has 2688 NaN or infinite pixels"),
    # (one NaN or inf pixel made the whole template and difference NaN, with exit status 0)
    (lambda hdus: hdus["SUBFILTER_1"].data.__setitem__((5, 7), np.inf), "SUBFILTER_1 has 1 NaN or infinite"),
    (lambda hdus: hdus["VARIANCE"].data.fill(-1.0), "its VARIANCE is negative at 2688 pixels"),
    # (each was a ValueError traceback when a template was rendered)
    (lambda hdus: _fourier(hdus).set("NSAMPLE", 0), r"wavelength_samples \(NSAMPLE\) must be an integer"),
    (lambda hdus: _fourier(hdus).set("NSAMPLE", 10**6),
     r"wavelength_samples \(NSAMPLE\) .* from 1 to 256, got 1000000"),
    (lambda hdus: _fourier(hdus).set("FWDINTRP", "banana"), r"fourier_interpolation \(FWDINTRP\)"),
    (lambda hdus: _psf_aware(hdus).set("PSFFLOOR", "abc"), "could not convert"),
    # (blamed on the science exposure's FLUXCAL: "its fluxes are 27.1 times its template's")
    (lambda hdus: _psf_aware(hdus).set("PSFFLOOR", 5.0), r"psf_ratio_floor \(PSFFLOOR\) must lie in"),
    (lambda hdus: _psf_aware(hdus).set("PSFCHROM", 50.0), r"psf_chromatic_index \(PSFCHROM\) must lie in"),
    # (read without PSFMODEL, a PSF-aware model's templates lacked their PSF: 48 and 59 false detections
    # on a simulated field against 0; the cards written only beside it tell of it)
    (lambda hdus: _psf_aware(hdus).remove("PSFMODEL"), "its header has PSFFLOOR, which dcrcoadd writes only "
     "with PSFMODEL = warp, but no PSFMODEL"),
    (lambda hdus: hdus[0].header.set("NSAMPLE", 16), "its header has NSAMPLE, .* FWDMODEL = shift"),
    (lambda hdus: hdus[0].header.set("FWDMODEL", "fourier"), "FWDMODEL = fourier without NSAMPLE"),
    (lambda hdus: hdus["SUBFILTERS"].data.__setitem__("lambda_max", hdus["SUBFILTERS"].data["lambda_min"]),
     "subfilter ranges must be increasing"),
    (lambda hdus: [hdus["SUBFILTERS"].data.__setitem__(c, hdus["SUBFILTERS"].data[c] * 10)
                   for c in ("lambda_min", "lambda_max")],
     "subfilter ranges .* lie outside the band .* in Angstrom"),
    # (a card edited or deleted was a ValueError or KeyError traceback)
    (lambda hdus: hdus[0].header.set("NSUBFILT", "three"), "NSUBFILT = 'three' is not a number"),
    (lambda hdus: hdus[0].header.remove("NSUBFILT"), "NSUBFILT = None is not a number"),
    # (an edited INTORDER was a ValueError traceback)
    (lambda hdus: hdus[0].header.set("INTORDER", 7), "INTORDER = 7 is not an interpolation order"),
    # (the template's error named the science file: "model: the DCR model has no WCS")
    (lambda hdus: [hdus["IMAGE"].header.remove(k, ignore_missing=True, remove_all=True)
                   for k in list(hdus["IMAGE"].header) if k[:5] in ("CTYPE", "CRVAL", "CRPIX", "CD1_", "CD2_",
                                                            "PC1_", "PC2_", "CDELT", "CUNIT", "WCSAX")],
     "its IMAGE extension has no WCS"),
])
def test_read_refuses_a_damaged_model(tmp_path, damage, reason):
    # a plane of another size, or one without any value, is a damaged file: refused when it is read,
    # not a traceback (or an all-NaN template) later
    from astropy.io import fits

    path = DcrModel.from_image(coadd_exposure(), 3).write(tmp_path / "model.fits")
    with fits.open(path, mode="update") as hdus:
        damage(hdus)
    with pytest.raises(InputError, match=f"model.fits: model file is damaged: {reason}"):
        DcrModel.read(path)


def test_read_refuses_a_model_whose_pixels_changed_since_written(tmp_path, caplog):
    # one pixel changed on disk (a copy error, an edit) left 14 false detections in a difference with
    # exit status 0; the checksums dcrcoadd writes tell of it
    from astropy.io import fits

    model = DcrModel.from_image(coadd_exposure(), 3)
    path = model.write(tmp_path / "model.fits")
    with fits.open(path) as hdus:
        where = hdus.fileinfo(hdus.index_of("SUBFILTER_1"))["datLoc"] + 4 * 70
    raw = bytearray(path.read_bytes())
    raw[where:where + 4] = np.array([5e5], ">f4").tobytes()
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="damaged: the pixels of SUBFILTER_1 fail the checksum"):
        DcrModel.read(path)

    # a header edited without its checksum updated: read as it is, with a warning; a file whose
    # checksums were removed: the same
    path = model.write(tmp_path / "edited.fits")
    raw = path.read_bytes()
    at = raw.index(b"NSUBFILT")
    card = raw[at:at + 80].replace(b"number of subfilters", b"number of subfiltres")
    path.write_bytes(raw[:at] + card + raw[at + 80:])
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.dcr.model"):
        np.testing.assert_array_equal(DcrModel.read(path).images, model.images)
    assert "the header of PRIMARY was edited since dcrcoadd wrote it" in caplog.text
    caplog.clear()
    with fits.open(model.write(tmp_path / "rewritten.fits")) as hdus:
        for hdu in hdus:
            hdu.header.remove("CHECKSUM")
            hdu.header.remove("DATASUM")
        hdus.writeto(tmp_path / "copy.fits")
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.dcr.model"):
        np.testing.assert_array_equal(DcrModel.read(tmp_path / "copy.fits").images, model.images)
    assert "has no checksums" in caplog.text


def test_templates_use_the_interpolation_the_model_was_solved_with():
    coadd = coadd_exposure()
    model = DcrModel.from_image(coadd, 3, interp_order=3)
    model.images[0] *= 1.5  # chromatic, so the interpolation matters
    visit = complete_visit()
    default = model.build_matched_template(visit)
    np.testing.assert_array_equal(default, model.build_matched_template(visit, order=3))
    assert not np.array_equal(default, model.build_matched_template(visit, order=1))
    with pytest.raises(ValueError):
        DcrModel.from_image(coadd, 3, interp_order=2)
