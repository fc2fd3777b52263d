"""Warps (and science exposures) whose flux calibration disagrees with the others' by a unit mistake are
found from their block sums: skipped, or refused, naming the card (`dcrcoadd.coadd.flux_scale`)."""

from __future__ import annotations

import logging

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits

from conftest import complete_visit, g_bandpass, tan_wcs
from dcrcoadd.coadd.baseline import prepare_inputs
from dcrcoadd.coadd.flux_scale import (
    BlockAccumulator,
    BlockFlux,
    block_size,
    flux_ratio,
    relative_flux_scales,
)
from dcrcoadd.core.exposure import Exposure
from dcrcoadd.core.geom import Box
from dcrcoadd.core.psf import Psf
from dcrcoadd.dcr.model import DcrModel
from dcrcoadd.errors import InputError
from dcrcoadd.io import write_exposure
from dcrcoadd.template.build import build_templates, make_template

SHAPE = (128, 128)


def stars(rng, sigma, shape=SHAPE, n=40, flux=3000.0, noise=1.0):
    """A field of ``n`` Gaussian stars (the same positions for one ``rng`` seed) with unit noise."""
    positions = np.random.default_rng(7).uniform(4, min(shape) - 4, (n, 2))
    y, x = np.mgrid[: shape[0], : shape[1]]
    image = rng.normal(0.0, noise, shape)
    for y0, x0 in positions:
        image += flux * np.exp(-0.5 * ((y - y0) ** 2 + (x - x0) ** 2) / sigma**2) / (2 * np.pi * sigma**2)
    return image


def block_sums(image, good, region, block, pieces):
    acc = BlockAccumulator(Box.from_shape(image.shape), region, block)
    for piece in pieces:
        acc.add(image[piece.slices()], good[piece.slices()], piece)
    return acc.result(1.0)


def test_block_sums_read_piece_by_piece_are_the_blocks_sums_and_nan_where_a_pixel_is_bad():
    rng = np.random.default_rng(0)
    image = rng.normal(0, 1, (70, 90)).astype(np.float32)
    good = np.ones(image.shape, bool)
    good[40, 50] = False
    region = Box(0, 0, 90, 70)
    pieces = list(region.subregions((37, 23)))  # (straddling the 16-px blocks)
    got = block_sums(image, good, region, 16, pieces)
    expected = image[:64, :80].reshape(4, 16, 5, 16).sum(axis=(1, 3))
    expected[2, 3] = np.nan  # (the bad pixel's block)
    np.testing.assert_allclose(got.flux[:4, :5], expected, rtol=1e-5)
    assert np.isnan(got.flux[4]).all() and np.isnan(got.flux[:, 5]).all()  # (blocks beyond the warp)


def test_a_warp_inside_the_region_sums_on_the_regions_lattice():
    rng = np.random.default_rng(1)
    region = Box(100, 200, 96, 96)
    warp = Box(108, 216, 60, 70)  # (starts half a block in)
    image = rng.normal(0, 1, warp.shape).astype(np.float32)
    acc = BlockAccumulator(warp, region, 16)
    acc.add(image, np.ones(warp.shape, bool), warp)
    got = acc.result(1.0)
    assert (got.by0, got.bx0) == (1, 0)
    # whole blocks only: x 116-163 (lattice columns 1-3), y 216-279 (rows 1-4)
    assert got.flux.shape == (5, 5) and np.isfinite(got.flux[:4, 1:4]).all()
    assert np.isnan(got.flux[4]).all() and np.isnan(got.flux[:, [0, 4]]).all()
    np.testing.assert_allclose(got.flux[0, 1], image[0:16, 8:24].sum(), rtol=1e-5)


def test_relative_scales_find_the_warp_a_thousand_times_too_bright_whatever_the_seeing():
    rng = np.random.default_rng(2)
    shape = (256, 256)
    region = Box.from_shape(shape)
    sigmas = [1.0, 1.5, 2.0, 2.5, 3.0, 1.2]  # (FWHM 2.4-7 px)
    block = block_size(region, 2.355 * max(sigmas))
    assert block == 29  # (blocks grow with the widest PSF: 4 FWHM)
    blocks = []
    for i, sigma in enumerate(sigmas):
        image = stars(rng, sigma, shape, n=160) * (1000.0 if i == 3 else 1.0)
        noise = 1000.0 if i == 3 else 1.0
        acc = BlockAccumulator(region, region, block)
        acc.add(image.astype(np.float32), np.ones(shape, bool), region)
        blocks.append(acc.result(noise**2))
    scales = relative_flux_scales(blocks, region, block)
    assert scales[3].ratio == pytest.approx(1000.0, rel=0.05)
    assert all(abs(s.ratio - 1.0) < 0.05 for i, s in enumerate(scales) if i != 3)  # (seeing 1-3 px)
    assert all(s.n_blocks >= 5 for s in scales)


def test_two_warps_are_measured_against_each_other():
    rng = np.random.default_rng(3)
    region = Box.from_shape(SHAPE)
    blocks = []
    for factor in (1.0, 10.0):
        acc = BlockAccumulator(region, region, 16)
        acc.add((factor * stars(rng, 1.5)).astype(np.float32), np.ones(SHAPE, bool), region)
        blocks.append(acc.result(1.0))
    a, b = relative_flux_scales(blocks, region, 16)
    assert a.ratio == pytest.approx(0.1, rel=0.02) and b.ratio == pytest.approx(10.0, rel=0.02)


def test_an_empty_field_measures_nothing():
    region = Box.from_shape(SHAPE)
    rng = np.random.default_rng(4)
    blocks = [BlockFlux(0, 0, rng.normal(0, 16, (8, 8)).astype(np.float32), 16.0) for _ in range(4)]
    assert all(np.isnan(s.ratio) and s.n_blocks == 0 for s in relative_flux_scales(blocks, region, 16))


def test_flux_ratio_of_two_images_judges_brightness_in_the_first():
    rng = np.random.default_rng(5)
    science = stars(rng, 1.5)
    template = stars(np.random.default_rng(6), 1.5) / 1000.0  # (nothing bright in it)
    good = np.ones(SHAPE, bool)
    assert flux_ratio(science, template, good, 1.0).ratio == pytest.approx(1000.0, rel=0.02)
    assert np.isnan(flux_ratio(np.zeros(SHAPE), template, good, 1.0).ratio)


# -- through the files ---------------------------------------------------------------------------

def write_star_warps(directory, n=5, calibration=0.5, sigmas=None):
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(8)
    sigmas = sigmas or [1.2 + 0.3 * i for i in range(n)]
    paths = []
    for i, sigma in enumerate(sigmas):
        visit = complete_visit(visit_id=100 + i)
        exp = Exposure(image=stars(rng, sigma), variance=np.ones(SHAPE), wcs=tan_wcs(crpix=(64.5, 64.5)),
                       psf=Psf.gaussian(sigma), visit=visit, bandpass=g_bandpass(with_curve=False),
                       flux_calibration=calibration)
        paths.append(write_exposure(exp, directory / f"warp_{i}.fits"))
    return paths


def set_card(path, **cards):
    with fits.open(path, mode="update") as hdul:
        for key, value in cards.items():
            if value is None:
                del hdul[0].header[key]
            else:
                hdul[0].header[key] = value


def test_a_warp_whose_fluxcal_is_a_thousand_times_off_is_skipped_naming_the_card(tmp_path, caplog):
    # one warp's FLUXCAL 1000x off owned the coadd where it alone covered the sky (1670 px > 10 % off)
    paths = write_star_warps(tmp_path)
    set_card(paths[2], FLUXCAL=500.0)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        prep = prepare_inputs(paths)
    assert [i.name for i in prep.inputs] == [str(p) for i, p in enumerate(paths) if i != 2]
    [(name, reason)] = prep.skipped
    assert name == str(paths[2]) and "times the other warps'" in reason and "its FLUXCAL (500 nJy" in reason


def test_a_clouded_out_warp_is_skipped(tmp_path):
    paths = write_star_warps(tmp_path)
    with fits.open(paths[3], mode="update") as hdul:  # (sky noise only)
        hdul["IMAGE"].data = np.random.default_rng(0).normal(0, 1, SHAPE).astype(np.float32)
    [(name, reason)] = prepare_inputs(paths).skipped
    assert name == str(paths[3]) and reason.endswith("Or clouds hid its sources.")


def test_a_warp_a_little_off_is_kept_with_a_warning(tmp_path, caplog):
    paths = write_star_warps(tmp_path)
    set_card(paths[1], FLUXCAL=0.75)  # (1.5x)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        prep = prepare_inputs(paths)
    assert len(prep.inputs) == 5 and not prep.skipped
    [text] = [r.getMessage() for r in caplog.records if "times the other warps'" in r.getMessage()]
    assert text.startswith(f"{paths[1]}: its fluxes are 1.5") and "check its flux calibration" in text


def test_honest_warps_at_different_seeing_raise_nothing(tmp_path, caplog):
    paths = write_star_warps(tmp_path, sigmas=[1.0, 3.0, 1.5, 2.5, 1.2])
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        prep = prepare_inputs(paths)
    assert len(prep.inputs) == 5 and not [r for r in caplog.records if "fluxes" in r.getMessage()]


def test_two_warps_that_disagree_are_refused_since_neither_can_be_trusted(tmp_path):
    paths = write_star_warps(tmp_path, n=2)
    set_card(paths[1], FLUXCAL=50.0)
    with pytest.raises(InputError, match="too few agree to tell which are right") as err:
        prepare_inputs(paths)
    assert str(paths[0]) in err.value.reason and str(paths[1]) in err.value.reason


def test_uncalibrated_warps_of_other_exposure_times_are_told_to_add_fluxcal(tmp_path, caplog):
    paths = write_star_warps(tmp_path)
    for p in paths:
        set_card(p, FLUXCAL=None)
    with fits.open(paths[4], mode="update") as hdul:  # (a 10x longer exposure, in counts)
        hdul["IMAGE"].data = hdul["IMAGE"].data * 10
        hdul["VARIANCE"].data = hdul["VARIANCE"].data * 100
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        prep = prepare_inputs(paths)
    [(name, reason)] = prep.skipped
    assert name == str(paths[4]) and "add FLUXCAL" in reason


# -- a science exposure against its template -----------------------------------------------------

def star_model(tmp_path):
    """A three-subfilter model of a star field and a science exposure of it (its template plus
    noise, written with FLUXCAL 0.5), as files."""
    visit = complete_visit(airmass=None).replace(time=None, boresight_alt=50 * u.deg,
                                                 boresight_az=200 * u.deg)
    field = stars(np.random.default_rng(9), 1.5, noise=0.0)
    model = DcrModel(images=np.stack([0.4 * field, 0.35 * field, 0.25 * field]),
                     mask=np.zeros(SHAPE, np.uint32), variance=np.full(SHAPE, 0.01), bandpass=g_bandpass(),
                     subfilter_edges=g_bandpass().subfilter_edges(3), origin=(0, 0),
                     wcs=tan_wcs(crpix=(64.5, 64.5)), psf=Psf.gaussian(1.5), flux_calibration=1.0)
    science = Exposure(image=np.zeros(SHAPE), variance=np.ones(SHAPE), wcs=model.wcs, psf=Psf.gaussian(1.5),
                       visit=visit, bandpass=g_bandpass(), flux_calibration=0.5)
    science.image = make_template(model, science).image + np.random.default_rng(10).normal(0, 1, SHAPE)
    return model.write(tmp_path / "model.fits"), write_exposure(science, tmp_path / "science.fits")


def test_a_science_exposure_whose_fluxcal_is_off_gets_no_template(tmp_path, caplog):
    # a science FLUXCAL 1000x off made a template 1000x too faint, and a difference of the whole field
    model_path, science_path = star_model(tmp_path)
    [good] = build_templates(model_path, [science_path], tmp_path / "good", diff=True)
    assert good.ok
    set_card(science_path, FLUXCAL=500.0)
    [outcome] = build_templates(model_path, [science_path], tmp_path / "out", diff=True)
    assert not outcome.ok and outcome.error.startswith(f"{science_path}: its fluxes are 10")
    assert "its FLUXCAL (500 nJy per image unit) looks wrong" in outcome.error
    assert not list((tmp_path / "out").iterdir())
    set_card(science_path, FLUXCAL=0.75)  # (1.5x: used, with a warning)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
        [outcome] = build_templates(model_path, [science_path], tmp_path / "near", diff=True)
    assert outcome.ok
    assert [r for r in caplog.records if "its fluxes are 1.5 times its template's" in r.getMessage()]

