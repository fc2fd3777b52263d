"""A science exposure whose WCS (or the model's) is off gets a warning, or no template: the offset of its
stars from the template's is measured (`dcrcoadd.template.alignment`)."""

from __future__ import annotations

import logging
import math
import re

import numpy as np
import pytest
from astropy.io import fits

from dcrcoadd.core.exposure import Exposure
from dcrcoadd.ops.shift import shift_image
from dcrcoadd.template.alignment import check_alignment, source_offset
from dcrcoadd.template.build import build_templates
from test_flux_scale import SHAPE, star_model, stars


@pytest.mark.parametrize("shift", [(0.0, 0.0), (0.3, -0.2), (-2.6, 1.4)])
def test_the_offset_of_a_star_field_is_measured_to_a_hundredth_of_a_pixel(shift):
    template = stars(np.random.default_rng(1), 1.5, noise=0.0)
    science = shift_image(template, shift, order=3) + np.random.default_rng(2).normal(0, 1, template.shape)
    offset = source_offset(science, template, np.ones(template.shape), np.ones(template.shape, bool), 3.5)
    assert offset.measured and offset.n_stars >= 10
    assert offset.dy == pytest.approx(shift[0], abs=0.01) and offset.dx == pytest.approx(shift[1], abs=0.01)
    assert offset.error < 0.01


def test_no_stars_measure_nothing():
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 1, (128, 128))
    offset = source_offset(noise, noise, np.ones(noise.shape), np.ones(noise.shape, bool), 3.5)
    assert not offset.measured and not offset.lost


def test_a_field_too_crowded_for_isolated_stars_is_measured_on_its_blends():
    # 500 stars on 128x128 px, a FWHM of 3.5 px: two stand alone
    rng = np.random.default_rng(4)
    y, x = np.mgrid[:128, :128]
    template = np.zeros((128, 128))
    for y0, x0, flux in zip(*rng.uniform(8, 120, (2, 500)), rng.uniform(500, 5000, 500), strict=True):
        template += flux * np.exp(-0.5 * ((y - y0) ** 2 + (x - x0) ** 2) / 1.5**2) / (2 * np.pi * 1.5**2)
    science = shift_image(template, (0.3, -0.2), order=3) + rng.normal(0, 1, template.shape)
    offset = source_offset(science, template, np.ones(template.shape), np.ones(template.shape, bool), 3.5)
    assert offset.measured and offset.n_stars >= 20
    assert offset.dy == pytest.approx(0.3, abs=0.02) and offset.dx == pytest.approx(-0.2, abs=0.02)


@pytest.mark.parametrize("n_stars, warned", [(0, False), (3, True)])
def test_a_science_exposure_with_too_few_bright_stars_is_said_to_be_unchecked(caplog, n_stars, warned):
    rng = np.random.default_rng(5)
    image = stars(rng, 1.5, n=n_stars, noise=0.0) if n_stars else np.zeros(SHAPE)
    science = Exposure(image + rng.normal(0, 1, image.shape), variance=np.ones(image.shape, np.float32))
    template = Exposure(image, variance=np.zeros(image.shape, np.float32))
    with caplog.at_level(logging.INFO, logger="dcrcoadd"):
        offset = check_alignment(science, template, "sci.fits", np.ones(image.shape, bool))
    assert not offset.measured
    [record] = [r for r in caplog.records if "not checked" in r.getMessage()]
    assert record.levelno == (logging.WARNING if warned else logging.INFO)
    assert record.getMessage().startswith("sci.fits: its WCS is not checked against the template's: only "
                                          f"{n_stars} of its stars")


@pytest.mark.parametrize("shift", [(0, 0), (30, 20), (-7, 41)])
def test_a_few_star_field_far_off_its_template_is_found_by_cross_correlation(shift):
    # a cut-out whose CRPIX was not updated with its LTV (20 and 30 px off) had three stars bright enough
    # for the star check, and was refused for its FLUXCAL (fluxes 2.3 times its template's)
    from dcrcoadd.errors import InputError

    rng = np.random.default_rng(6)
    sky = stars(rng, 1.5, n=200, flux=150.0, noise=0.0, shape=(256, 256))  # (10 sigma: too faint to fit)
    template = sky[64:192, 64:192]
    moved = sky[64 + shift[0]:192 + shift[0], 64 + shift[1]:192 + shift[1]]
    noisy = moved + rng.normal(0, 1, template.shape)
    science = Exposure(noisy, variance=np.ones(template.shape, np.float32))
    good = np.ones(template.shape, bool)
    if shift == (0, 0):
        assert not check_alignment(science, Exposure(template), "sci.fits", good).measured
        return
    words = f"what its template holds {shift[1]:+d}, {shift[0]:+d} px"
    with pytest.raises(InputError, match=re.escape(words)):
        check_alignment(science, Exposure(template), "sci.fits", good)


def test_stars_that_cannot_be_fitted_on_images_that_match_in_place_are_warned_about(monkeypatch, caplog):
    # a science exposure on 0.4" pixels (PSF 2.1 px) against a 0.2" model: none of its six stars could be
    # fitted, and it was refused as "its WCS or the model's is far off", while the two images correlated
    # at 0.999 in place; one really far off is still refused
    from dcrcoadd.errors import InputError
    from dcrcoadd.template import alignment

    monkeypatch.setattr(alignment, "_fit_star", lambda *args: (math.nan, math.nan))
    rng = np.random.default_rng(7)
    sky = stars(rng, 1.5, n=40, noise=0.0, shape=(160, 160))
    template = sky[16:144, 16:144]
    good = np.ones(template.shape, bool)
    unit = np.ones(template.shape, np.float32)
    science = Exposure(template + rng.normal(0, 1, template.shape), variance=unit)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        offset = check_alignment(science, Exposure(template), "sci.fits", good)
    assert offset.lost and "could not be fitted (a PSF sampled too coarsely?)" in caplog.text
    moved = sky[16 + 12:144 + 12, 16:144] + rng.normal(0, 1, template.shape)
    with pytest.raises(InputError, match="far off"):
        check_alignment(Exposure(moved, variance=unit), Exposure(template), "sci.fits", good)


def shift_grid(path, dx):
    """Move a science file's WCS ``dx`` pixels along x: its pixels stay, the sky they claim moves."""
    with fits.open(path, mode="update") as hdul:
        for hdu in hdul:
            if "CRPIX1" in hdu.header:
                hdu.header["CRPIX1"] += dx


def test_a_science_wcs_a_quarter_pixel_off_is_warned_about(tmp_path, caplog):
    model_path, science_path = star_model(tmp_path)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        [good] = build_templates(model_path, [science_path], tmp_path / "good", diff=True)
    assert good.ok and "from the template's" not in caplog.text
    shift_grid(science_path, 0.25)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        [outcome] = build_templates(model_path, [science_path], tmp_path / "off", diff=True)
    assert outcome.ok
    [message] = [r.getMessage() for r in caplog.records if "from the template's" in r.getMessage()]
    assert message.startswith(f"{science_path}: its stars lie 0.2")
    assert re.search(r"\(dx -0\.2[456], dy [+-]0\.0\d px; median of \d+ stars\)", message)
    assert "its WCS or the model's is off" in message


@pytest.mark.parametrize("dx, reason", [(1.5, "its stars lie 1.50 px"), (20.0, "are not found within 8 px")])
def test_a_science_wcs_a_pixel_or_more_off_gets_no_template(tmp_path, dx, reason):
    model_path, science_path = star_model(tmp_path)
    shift_grid(science_path, dx)
    [outcome] = build_templates(model_path, [science_path], tmp_path / "out", diff=True)
    assert not outcome.ok and outcome.error.startswith(f"{science_path}: ")
    assert reason in outcome.error and "its WCS or the model's is" in outcome.error
    assert not list((tmp_path / "out").iterdir())
