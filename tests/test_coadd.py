"""Baseline coadd: weights and scaling, noise, masks, NO_DATA, streaming, validation, files."""

import logging

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from dcrcoadd.coadd import assemble_coadd, read_coadd, write_coadd
from dcrcoadd.config.schema import Config
from dcrcoadd.core.exposure import Exposure
from dcrcoadd.core.geom import Box
from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.core.psf import SIGMA_TO_FWHM, Psf, coadd_psf
from dcrcoadd.core.visit import VisitInfo
from dcrcoadd.errors import ConfigError, InputError
from dcrcoadd.io import write_exposure
from dcrcoadd.parallel import ProcessMapper, dask_map

PLANES = MaskPlanes()
SHAPE = (40, 48)


def tan_wcs(crval=(150.0, 2.0), scale_arcsec=0.2):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = list(crval)
    w.wcs.crpix = [20.0, 20.0]
    w.wcs.cdelt = [-scale_arcsec / 3600, scale_arcsec / 3600]
    return w


def warp(image, *, variance=1.0, i=0, mask=None, sigma=1.5, origin=(0, 0), band="g", cal=1.0, airmass=1.1,
         planes=None, wcs=None):
    image = np.asarray(image, np.float32)
    if image.ndim == 0:
        image = np.full(SHAPE, image, np.float32)
    var = np.full(image.shape, variance, np.float32) if np.ndim(variance) == 0 else variance
    if wcs is None:  # the same parent grid, whatever the origin
        from dcrcoadd.core.exposure import shift_wcs
        wcs = shift_wcs(tan_wcs(), -origin[0], -origin[1])
    return Exposure(image, mask=mask, variance=var, origin=origin, wcs=wcs, psf=Psf.gaussian(sigma),
                    visit=VisitInfo(id=i, airmass=airmass), band=band, flux_calibration=cal,
                    mask_planes=planes or MaskPlanes())


def plain():
    cfg = Config()
    cfg.artifacts.enabled = False
    cfg.coadd.statistic = "MEAN"
    return cfg


def star_field(rng, n_stars=6, shape=SHAPE, sigma=1.5):
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    img = np.zeros(shape)
    for _ in range(n_stars):
        y, x, f = rng.uniform(5, shape[0] - 5), rng.uniform(5, shape[1] - 5), rng.uniform(500, 5000)
        img += f * np.exp(-0.5 * ((yy - y) ** 2 + (xx - x) ** 2) / sigma**2) / (2 * np.pi * sigma**2)
    return img


# -- weights, scaling, noise ---------------------------------------------------------------------

@pytest.mark.parametrize("compare_warp", [False, True])
def test_weighted_mean_of_constant_images(compare_warp):
    values, variances = [1.0, 2.0, 5.0], [1.0, 4.0, 2.0]
    cfg = plain() if not compare_warp else Config()
    warps = [warp(v, variance=s, i=i) for i, (v, s) in enumerate(zip(values, variances, strict=True))]
    res = assemble_coadd(warps, cfg)
    w = 1 / np.array(variances)
    np.testing.assert_allclose(res.coadd.image, (w * values).sum() / w.sum(), rtol=1e-6)
    np.testing.assert_allclose(res.coadd.variance, 1 / w.sum(), rtol=1e-6)
    np.testing.assert_allclose([inp.weight for inp in res.inputs], w, rtol=1e-6)
    assert np.all(res.n_image == 3) and np.all(res.coadd.mask == 0)
    assert all(m is None or len(m.planes["CLIPPED"]) == 0 for m in res.artifact_masks)


def test_flux_calibrations_are_applied_and_flux_is_conserved():
    rng = np.random.default_rng(1)
    truth = star_field(rng)  # nJy
    cals = [1.0, 2.5, 0.4]  # nJy per image unit
    warps = [warp(truth / c, variance=0.01 / c**2, i=i, cal=c) for i, c in enumerate(cals)]
    res = assemble_coadd(warps, plain())
    assert res.coadd.flux_calibration == 1.0
    np.testing.assert_allclose(res.coadd.image, truth, rtol=1e-5, atol=1e-3)
    assert res.coadd.image.sum() == pytest.approx(truth.sum(), rel=1e-5)
    np.testing.assert_allclose([i.scale for i in res.inputs], cals)
    np.testing.assert_allclose([i.weight for i in res.inputs], [100.0] * 3, rtol=1e-5)  # weights in nJy^-2


def test_noise_falls_as_one_over_root_n():
    rng = np.random.default_rng(2)
    truth = star_field(rng)
    n, sigma = 16, 3.0
    warps = [warp(truth + rng.normal(0, sigma, SHAPE), variance=sigma**2, i=i) for i in range(n)]
    res = assemble_coadd(warps, Config())  # compare-warp on: pure noise must not be clipped
    resid = res.coadd.image - truth
    assert np.std(resid) == pytest.approx(sigma / np.sqrt(n), rel=0.08)
    np.testing.assert_allclose(res.coadd.variance, sigma**2 / n, rtol=1e-5)
    assert sum(len(m.planes["CLIPPED"]) for m in res.artifact_masks) == 0


def test_airmass_weighting_multiplies_weights():
    cfg = plain()
    cfg.coadd.do_airmass_weight = True
    res = assemble_coadd([warp(1.0, i=0, airmass=1.0), warp(3.0, i=1, airmass=2.0)], cfg)
    np.testing.assert_allclose([i.weight for i in res.inputs], [1.0, 2.0])
    np.testing.assert_allclose(res.coadd.image, (1 + 2 * 3) / 3.0, rtol=1e-6)


def test_meanclip_rejects_a_cosmic_ray():
    rng = np.random.default_rng(3)
    warps = [warp(rng.normal(0, 1, SHAPE), i=i) for i in range(10)]
    warps[2].image[10, 10] = 500.0
    cfg = plain()
    cfg.coadd.statistic = "MEANCLIP"
    res = assemble_coadd(warps, cfg)
    others = np.mean([w.image[10, 10] for k, w in enumerate(warps) if k != 2])
    assert res.coadd.image[10, 10] == pytest.approx(others, abs=1e-5)
    assert set(PLANES.names_in(int(res.coadd.mask[10, 10]))) >= {"CLIPPED", "INEXACT_PSF"}


# -- masks -----------------------------------------------------------------------------------------

def one_pixel_flag(plane, n=4, statistic="MEAN", compare_warp=False, planes=None):
    planes = planes or MaskPlanes()
    warps = []
    for i in range(n):
        m = np.zeros(SHAPE, np.uint32)
        if i == 0:
            m[5, 6] = planes.value(plane)
        warps.append(warp(1.0 + i, i=i, mask=m, planes=planes))
    cfg = Config() if compare_warp else plain()
    cfg.coadd.statistic = statistic
    cfg.coadd.do_interp = False
    res = assemble_coadd(warps, cfg)
    return res, set(res.coadd.mask_planes.names_in(int(res.coadd.mask[5, 6])))


def test_mask_rules_one_by_one():
    assert one_pixel_flag("BAD")[1] == {"REJECTED", "INEXACT_PSF"}
    assert one_pixel_flag("SAT")[1] == {"SAT", "REJECTED", "INEXACT_PSF"}  # 25% of weight > 10%
    assert one_pixel_flag("SAT", n=12)[1] == {"REJECTED", "INEXACT_PSF"}  # 1/12 < 10%
    assert one_pixel_flag("EDGE")[1] == {"SENSOR_EDGE", "INEXACT_PSF"}
    assert one_pixel_flag("DETECTED")[1] == {"DETECTED"}
    assert one_pixel_flag("NOT_DEBLENDED")[1] == set()  # removed before stacking
    res, planes = one_pixel_flag("NO_DATA")
    assert planes == set() and res.n_image[5, 6] == 3
    assert res.coadd.image[5, 6] == pytest.approx((2 + 3 + 4) / 3)


def test_compare_warp_removes_edge_instead_of_rejecting():
    res, planes = one_pixel_flag("EDGE", compare_warp=True)
    assert planes == set() and res.n_image[5, 6] == 4
    assert res.coadd.image[5, 6] == pytest.approx(2.5)


def test_mask_bits_are_translated_between_layouts():
    shuffled = MaskPlanes({name: 31 - bit for name, bit in PLANES.items()})
    res, planes = one_pixel_flag("BAD", planes=shuffled)
    assert planes == {"REJECTED", "INEXACT_PSF"}
    res, planes = one_pixel_flag("DETECTED", planes=shuffled)
    assert planes == {"DETECTED"}


def test_no_data_is_flagged_and_optionally_interpolated():
    rng = np.random.default_rng(4)
    warps = []
    for i in range(3):
        img = 10.0 + rng.normal(0, 0.1, SHAPE)
        m = np.zeros(SHAPE, np.uint32)
        m[:, 30:] = PLANES.value("NO_DATA")  # nobody covers x >= 30 ...
        img[:, 30:] = np.nan
        if i == 0:  # ... and only the first two cover x in [20, 30)
            m[:, 20:30] = PLANES.value("NO_DATA")
        warps.append(warp(img, i=i, mask=m, variance=0.01))
    cfg = plain()
    cfg.coadd.do_interp = False
    res = assemble_coadd(warps, cfg)
    c = res.coadd
    assert np.all(np.isnan(c.image[:, 30:])) and np.all(res.n_image[:, 30:] == 0)
    assert np.all(c.mask[:, 30:] == PLANES.value("NO_DATA"))
    assert np.all(res.n_image[:, 20:30] == 2) and np.all(res.n_image[:, :20] == 3)
    assert np.all(c.mask[:, :30] == 0)  # missing data is not a rejection
    res = assemble_coadd(warps, plain())  # do_interp (LSST default)
    c = res.coadd
    assert np.all(np.isfinite(c.image))
    np.testing.assert_allclose(c.image[:, 30:], 10.0, atol=0.05)  # edge runs get the clipped-mean fallback
    intrp = (c.mask & PLANES.value("INTRP")) != 0
    assert np.all(intrp[:, 30:]) and not np.any(intrp[:, :30])
    assert np.all(np.isinf(c.variance[:, 30:])) and np.all(np.isfinite(c.variance[:, :30]))


def test_partially_overlapping_warps_and_explicit_box():
    a = warp(1.0, i=0, origin=(0, 0))
    b = warp(3.0, i=1, origin=(24, 10))
    res = assemble_coadd([a, b], plain())
    assert res.coadd.bbox == Box(0, 0, 72, 50)
    assert res.coadd.image[0, 0] == 1.0 and res.coadd.image[-1, -1] == 3.0
    assert res.coadd.image[20, 30] == pytest.approx(2.0)  # overlap
    res = assemble_coadd([a, b], plain(), bbox=Box(30, 0, 10, 5))  # only a covers it
    assert res.coadd.bbox == Box(30, 0, 10, 5) and np.all(res.coadd.image == 1.0)
    assert [i.name for i in res.inputs] == ["exposure[0] (visit 0)"] and len(res.skipped) == 1


# -- streaming -------------------------------------------------------------------------------------

def trail_field(n, *, seed, trail_in, shifted=False):
    """Warps of a star field with a trail in one, BAD pixels, NO_DATA columns in every other one,
    and (``shifted``) origins that make them overlap only partly."""
    rng = np.random.default_rng(seed)
    truth = star_field(rng, n_stars=8)
    warps = []
    for i in range(n):
        img = truth + rng.normal(0, 2.0, SHAPE)
        if i == trail_in:
            img[30, 5:40] += 80.0  # a trail for compare-warp to clip
        m = np.zeros(SHAPE, np.uint32)
        m[i * 5:i * 5 + 3, 10:14] = PLANES.value("BAD")
        m[:, 44:] |= PLANES.value("NO_DATA") if i % 2 else 0
        origin = (3 * i, 2 * (i % 2)) if shifted else (0, 0)
        warps.append(warp(img, variance=4.0, i=i, mask=m, sigma=1.3 + 0.1 * i, origin=origin))
    return warps


def assert_same_coadd(a, b):
    for name in ("image", "variance", "mask"):
        assert getattr(a.coadd, name).tobytes() == getattr(b.coadd, name).tobytes(), name
    assert a.n_image.tobytes() == b.n_image.tobytes()
    assert [i.weight for i in a.inputs] == [i.weight for i in b.inputs]
    box, planes = a.coadd.bbox, a.coadd.mask_planes
    for ma, mb in zip(a.artifact_masks, b.artifact_masks, strict=True):
        assert ma.to_mask(box, planes).tobytes() == mb.to_mask(box, planes).tobytes()
        assert (ma.n_candidates, ma.n_clipped) == (mb.n_candidates, mb.n_clipped)


@pytest.mark.parametrize("statistic, on_disk", [("MEAN", True), ("MEANCLIP", False)])
def test_streaming_subregions_equal_one_region_exactly(tmp_path, statistic, on_disk):
    warps = trail_field(6, seed=5, trail_in=2)
    if on_disk:
        warps = [write_exposure(e, tmp_path / f"w{i}.fits") for i, e in enumerate(warps)]
    cfg = Config()
    cfg.coadd.statistic = statistic
    big = assemble_coadd(warps, cfg)
    cfg.coadd.subregion_size = (29, 21)  # tiles that cut through stars, the trail and the kernels
    tiled = assemble_coadd(warps, cfg)
    assert big.artifact_masks[2].n_clipped >= 1
    assert_same_coadd(tiled, big)


def reversed_map(fn, tasks):
    """A mapper that finishes tasks in reverse order, as a cluster may."""
    return (fn(t) for t in reversed(list(tasks)))


def test_any_mapper_gives_the_same_coadd_bit_for_bit(tmp_path):
    exposures = trail_field(5, seed=7, trail_in=1, shifted=True)
    paths = [write_exposure(e, tmp_path / f"w{i}.fits") for i, e in enumerate(exposures)]
    cfg = Config()
    cfg.coadd.subregion_size = (17, 13)
    serial = assemble_coadd(paths, cfg)
    assert serial.artifact_masks[1].n_clipped >= 1
    assert_same_coadd(serial, assemble_coadd(paths, cfg, mapper=reversed_map))
    with ProcessMapper(2) as mapper:  # one pool for every stage and both runs
        assert_same_coadd(serial, assemble_coadd(paths, cfg, mapper=mapper))
        assert_same_coadd(serial, assemble_coadd(exposures, cfg, mapper=mapper))
    cfg.coadd.statistic = "MEANCLIP"
    assert_same_coadd(assemble_coadd(paths, cfg), assemble_coadd(paths, cfg, mapper=reversed_map))


def test_a_dask_cluster_gives_the_same_coadd_bit_for_bit(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    paths = [write_exposure(e, tmp_path / f"w{i}.fits")
             for i, e in enumerate(trail_field(5, seed=7, trail_in=1, shifted=True))]
    cfg = Config()
    cfg.coadd.subregion_size = (17, 13)
    serial = assemble_coadd(paths, cfg)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        assert_same_coadd(serial, assemble_coadd(paths, cfg, mapper=dask_map(cluster.scheduler_address)))


# -- validation ------------------------------------------------------------------------------------

def test_inputs_on_another_grid_or_band_are_named(tmp_path):
    good = write_exposure(warp(1.0, i=0), tmp_path / "good.fits")
    shifted = write_exposure(warp(1.0, i=1, wcs=tan_wcs(crval=(150.001, 2.0))), tmp_path / "shifted.fits")
    with pytest.raises(InputError, match="shifted.fits.*pixel grid"):
        assemble_coadd([good, shifted])
    red = write_exposure(warp(1.0, i=2, band="r"), tmp_path / "red.fits")
    with pytest.raises(InputError, match="red.fits.*band 'r'"):
        assemble_coadd([good, red])
    with pytest.raises(InputError, match="repeats visit 0"):
        assemble_coadd([good, good])
    with pytest.raises(InputError, match="missing.fits"):
        assemble_coadd([good, tmp_path / "missing.fits"])
    with pytest.raises(InputError, match="no warps"):
        assemble_coadd([])


def test_empty_warps_are_skipped_until_none_remain(tmp_path, caplog):
    nan = write_exposure(warp(np.nan, i=1), tmp_path / "nan.fits")
    ok = write_exposure(warp(2.0, i=0), tmp_path / "ok.fits")
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.coadd.inputs"):
        res = assemble_coadd([ok, nan], plain())
    assert "nan.fits" in caplog.text and res.skipped[0][0].endswith("nan.fits")
    assert len(res.inputs) == 1 and np.all(res.coadd.image == 2.0)
    with pytest.raises(InputError, match="no warp has usable pixels.*nan.fits"):
        assemble_coadd([nan], plain())


def test_a_warp_of_zeros_is_skipped_as_a_fill(tmp_path, caplog):
    # zeros everywhere are a fill for missing data, not a measurement of the sky
    zeros = write_exposure(warp(0.0, i=1), tmp_path / "zeros.fits")
    ok = write_exposure(warp(2.0, i=0), tmp_path / "ok.fits")
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.coadd.inputs"):
        res = assemble_coadd([ok, zeros], plain())
    assert "skipping" in caplog.text and "zeros.fits" in caplog.text and "exactly 0" in caplog.text
    assert len(res.inputs) == 1 and np.all(res.coadd.image == 2.0)


@pytest.mark.parametrize("bad_value", [np.inf, np.nan, -4.0])
def test_pixels_with_an_invalid_variance_are_missing_data(tmp_path, caplog, bad_value):
    # an infinite, NaN or negative variance under a finite image: that warp's pixels are missing
    # there (the others' mean, with their variance), as with a NaN image, and the file is named
    variance = np.full(SHAPE, 4.0, np.float32)
    variance[5:9, 5:9] = bad_value
    paths = [write_exposure(warp(1.0, variance=variance, i=0), tmp_path / "odd.fits"),
             write_exposure(warp(3.0, variance=2.0, i=1), tmp_path / "ok1.fits"),
             write_exposure(warp(5.0, variance=2.0, i=2), tmp_path / "ok2.fits")]
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.coadd.inputs"):
        res = assemble_coadd(paths, plain())
    assert "odd.fits: 16 pixels have an infinite, NaN or negative variance" in caplog.text
    image, var = res.coadd.image, res.coadd.variance
    assert np.all(np.isfinite(var)) and np.all(var > 0)
    np.testing.assert_allclose(image[5:9, 5:9], 4.0, rtol=1e-6)  # the two others' mean
    np.testing.assert_allclose(var[5:9, 5:9], 1.0, rtol=1e-6)
    assert np.all(res.n_image[5:9, 5:9] == 2) and res.n_image[0, 0] == 3
    w = np.array([1 / 4, 1 / 2, 1 / 2])  # the weight of the first from its valid pixels
    np.testing.assert_allclose(image[0, 0], (w * [1, 3, 5]).sum() / w.sum(), rtol=1e-6)


def test_misspelled_mask_planes_are_named(caplog):
    # a plane no input defines masks nothing: "BADD" for "BAD" would let bad pixels in silently
    cfg = plain()
    cfg.coadd.bad_mask_planes = ["NO_DATA", "BADD", "SAT"]
    cfg.dcr.convergence_mask_planes = ["DETECTD"]
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.coadd.inputs"):
        assemble_coadd([warp(1.0, i=0), warp(2.0, i=1)], cfg)
    assert "coadd.bad_mask_planes 'BADD'" in caplog.text
    assert "dcr.convergence_mask_planes 'DETECTD'" in caplog.text
    assert "'SAT'" not in caplog.text.split("known planes")[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.coadd.inputs"):
        assemble_coadd([warp(1.0, i=0), warp(2.0, i=1)], plain())
    assert "no input defines" not in caplog.text


def test_compare_warp_needs_psfs():
    w = warp(1.0)
    w.psf = None
    with pytest.raises(InputError, match="has no PSF"):
        assemble_coadd([w, warp(1.0, i=1)])
    assert assemble_coadd([w, warp(1.0, i=1)], plain()).coadd.psf is None


def test_config_errors_name_the_field():
    cfg = Config()
    cfg.coadd.sigma_clip = -1
    with pytest.raises(ConfigError, match="coadd.sigma_clip"):
        assemble_coadd([warp(1.0)], cfg)
    cfg = Config()
    cfg.artifacts.spatial_threshold = 1.5
    with pytest.raises(ConfigError, match="artifacts.spatial_threshold"):
        cfg.validate()
    cfg = Config()
    cfg.coadd.statistic = "MODE"
    with pytest.raises(ConfigError, match="coadd.statistic"):
        cfg.validate()


# -- PSF, metadata, files --------------------------------------------------------------------------

def test_coadd_psf_is_the_weighted_mean_and_best_seeing_selects_sharp_inputs():
    sigmas, variances = [1.2, 1.6, 2.4, 1.3], [1.0, 2.0, 1.0, 4.0]
    warps = [warp(1.0, i=i, sigma=s, variance=v)
             for i, (s, v) in enumerate(zip(sigmas, variances, strict=True))]
    res = assemble_coadd(warps, plain())
    w = 1 / np.array(variances)
    expected = coadd_psf([Psf.gaussian(s) for s in sigmas], w)
    np.testing.assert_allclose(res.coadd.psf.kernel, expected.kernel, atol=1e-7)
    # median FWHM (sigma 1.45) < full coadd PSF: the two sharpest inputs
    assert res.best_seeing.tolist() == [True, False, False, True]
    assert res.psf_best_seeing.fwhm < res.coadd.psf.fwhm
    np.testing.assert_allclose(res.psf_best_seeing.kernel,
                               coadd_psf([Psf.gaussian(1.2), Psf.gaussian(1.3)], [1.0, 0.25]).resized(
                                   res.psf_best_seeing.shape[0]).kernel, atol=1e-7)


def test_write_and_read_coadd(tmp_path):
    cfg = Config()
    cfg.artifacts.do_write_artifact_masks = True
    warps = [warp(5.0 + i, i=10 + i, airmass=1.0 + 0.2 * i) for i in range(3)]
    res = assemble_coadd(warps, cfg)
    path = write_coadd(res, tmp_path / "out" / "coadd.fits")
    exp, n_image, inputs, best = read_coadd(path)
    np.testing.assert_array_equal(exp.image, res.coadd.image)
    np.testing.assert_array_equal(exp.mask, res.coadd.mask)
    np.testing.assert_array_equal(n_image, res.n_image)
    assert inputs["visit"].tolist() == [10, 11, 12]
    np.testing.assert_allclose(inputs["airmass"], [1.0, 1.2, 1.4])
    np.testing.assert_allclose(inputs["weight"], [i.weight for i in res.inputs])
    assert str(inputs["parallactic_angle"].unit) == "deg" and "psf_fwhm" in inputs.colnames
    # the PSF FWHM in pixels and arcsec (Gaussian sigma 1.5 px at 0.2 arcsec/px)
    np.testing.assert_allclose(inputs["psf_fwhm"], 1.5 * SIGMA_TO_FWHM, rtol=1e-3)
    np.testing.assert_allclose(inputs["psf_fwhm_arcsec"], 0.2 * 1.5 * SIGMA_TO_FWHM, rtol=1e-3)
    assert str(inputs["psf_fwhm_arcsec"].unit) == "arcsec"
    assert best == res.psf_best_seeing
    with fits.open(path) as hdul:
        assert hdul[0].header["NINPUTS"] == 3
    written = sorted(p.name for p in (tmp_path / "out" / "artifact_masks").iterdir())
    assert len(written) == 3 and all(name.endswith("_artifacts.fits") for name in written)


def test_bright_object_masks_from_a_table(tmp_path):
    table = Table({"ra": [150.0], "dec": [2.0], "radius": [1.0]})  # 1 arcsec = 5 pixels at 0.2"/px
    table["radius"].unit = "arcsec"
    path = tmp_path / "bright.ecsv"
    table.write(path)
    cfg = plain()
    cfg.coadd.do_mask_bright_objects = True
    cfg.coadd.bright_object_mask_file = str(path)
    res = assemble_coadd([warp(1.0, i=0), warp(1.0, i=1)], cfg)
    hit = (res.coadd.mask & PLANES.value("BRIGHT_OBJECT")) != 0
    assert hit.sum() == np.count_nonzero(np.add.outer(np.arange(-5, 6) ** 2, np.arange(-5, 6) ** 2) <= 25)
    assert hit[19, 19]  # CRVAL is at CRPIX (20, 20), 1-based
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n")
    cfg.coadd.bright_object_mask_file = str(bad)
    with pytest.raises(InputError, match="bad.csv.*'ra'"):
        assemble_coadd([warp(1.0, i=0)], cfg)
    # a negative radius masked a 613-pixel disc as if it were positive
    negative = tmp_path / "negative.csv"
    negative.write_text("ra,dec,radius\n150.0,2.0,-3\n")
    cfg.coadd.bright_object_mask_file = str(negative)
    with pytest.raises(InputError, match="radius must be a positive size .* got -3 in 1 circle row"):
        assemble_coadd([warp(1.0, i=0)], cfg)


def test_a_misspelled_static_sky_plane_is_named_not_a_crash(tmp_path, caplog):
    # (compare-warp's static sky looked every named plane up: a KeyError traceback)
    from conftest import write_warps

    cfg = Config()
    cfg.artifacts.assemble_static_sky_model.bad_mask_planes = ["NO_DATA", "QQ"]
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.coadd.inputs"):
        assemble_coadd(write_warps(tmp_path, 3), cfg)
    assert "artifacts.assemble_static_sky_model.bad_mask_planes 'QQ'" in caplog.text


def test_a_region_reaching_beyond_the_warps_is_reported(tmp_path, caplog):
    # (--box 0,0,3000,3000 on 40-px warps ran for minutes into a coadd that was 98 % NO_DATA, silently)
    from conftest import write_warps
    from dcrcoadd.coadd.inputs import prepare_inputs
    from dcrcoadd.core.geom import Box

    paths = write_warps(tmp_path, 2)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.coadd.inputs"):
        prepare_inputs(paths, bbox=Box(0, 0, 80, 40))
    assert "reaches beyond the warps" in caplog.text and "50% of it has no data" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.coadd.inputs"):
        prepare_inputs(paths, bbox=Box(5, 5, 20, 20))
    assert "reaches beyond" not in caplog.text


def test_a_coadd_region_too_large_for_the_machine_is_refused_up_front(tmp_path, monkeypatch):
    # (a 100 000² px box read every warp and then ran out of memory)
    from conftest import write_warps
    from dcrcoadd.coadd import inputs
    from dcrcoadd.errors import InputError

    paths = write_warps(tmp_path, 2)
    monkeypatch.setattr(inputs, "physical_memory", lambda: 2**30)
    inputs.prepare_inputs(paths, bbox=Box(0, 0, 40, 40))
    with pytest.raises(InputError, match=r"10000x10000 px: needs at least 2.6 GiB .* machine.s 1.0 GiB"):
        inputs.prepare_inputs(paths, bbox=Box(0, 0, 10000, 10000))
