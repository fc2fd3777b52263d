"""Compare-warp artifact rejection: PSF matching, epoch-count filtering, and the DCR-safe outcome
(a streak in one visit is clipped, stars displaced by refraction are not)."""

import numpy as np
import pytest
from astropy.wcs import WCS

from dcrcoadd.coadd import assemble_coadd
from dcrcoadd.coadd.artifacts import (
    ArtifactMask,
    PixelSet,
    detect_outliers,
    effective_max_num_epochs,
    filter_artifacts,
    footprints_of,
    gaussian_kernel1d,
    prefilter_artifacts,
    psf_match,
    scale_variance_factor,
)
from dcrcoadd.coadd.artifacts.psf_matching import convolve_ones, convolve_separable
from dcrcoadd.config.schema import ArtifactConfig, Config
from dcrcoadd.core.exposure import Exposure
from dcrcoadd.core.geom import Box
from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.core.psf import Psf
from dcrcoadd.core.visit import VisitInfo

PLANES = MaskPlanes()
NY = NX = 80
STARS = [(24.0, 22.0, 6e4), (52.0, 58.0, 2e5), (60.0, 20.0, 4e4)]  # (y, x, flux): S/N ~ 400-2000


def tan_wcs():
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = [40.0, 40.0]
    w.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    return w


def gaussian_image(y0, x0, flux, sigma, shape=(NY, NX)):
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    return flux * np.exp(-0.5 * ((yy - y0) ** 2 + (xx - x0) ** 2) / sigma**2) / (2 * np.pi * sigma**2)


def streak_image(amplitude=150.0, width=1.2, shape=(NY, NX)):
    """A satellite trail along y = x / 2 - 5, at least 15 pixels from the stars."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    d = np.abs(yy - 0.5 * xx + 5.0) / np.hypot(1.0, 0.5)
    return amplitude * np.exp(-0.5 * (d / width) ** 2)


def dcr_warps(shifts, *, streak_in=None, sigmas=None, noise=8.0, seed=5):
    """Warps whose stars move along y by ``shifts`` (pixels), as blue stars do with airmass."""
    rng = np.random.default_rng(seed)
    sigmas = [1.7] * len(shifts) if sigmas is None else sigmas
    warps = []
    for i, (dy, s) in enumerate(zip(shifts, sigmas, strict=True)):
        img = sum(gaussian_image(y + dy, x, f, s) for y, x, f in STARS)
        if i == streak_in:
            img = img + streak_image()
        img = img + rng.normal(0.0, noise, img.shape)
        airmass = 1.0 + abs(dy)
        warps.append(Exposure(img, variance=np.full(img.shape, noise**2), wcs=tan_wcs(), psf=Psf.gaussian(s),
                              visit=VisitInfo(id=100 + i, airmass=airmass), band="g"))
    return warps


def clipped_near(mask: ArtifactMask, y, x, r=5):
    return int(mask.planes["CLIPPED"].to_mask(Box(int(x) - r, int(y) - r, 2 * r + 1, 2 * r + 1)).sum())


# -- end to end --------------------------------------------------------------------------------

def test_streak_is_clipped_and_refracted_stars_are_not():
    # High-airmass sequence: stars drift by up to 1.6 px between visits.
    shifts = np.linspace(-0.8, 0.8, 9)
    res = assemble_coadd(dcr_warps(shifts, streak_in=4))
    masks = res.artifact_masks
    streak = streak_image() > 80.0  # the trail's core, detectable pixel by pixel
    clipped = masks[4].planes["CLIPPED"].to_mask(Box(0, 0, NX, NY))
    assert clipped[streak].mean() > 0.95  # the trail's core is clipped in its visit
    assert masks[4].n_clipped >= 1
    for m in masks:
        for y, x, _ in STARS:
            assert clipped_near(m, y, x) == 0, m.name
    # no streak left in the coadd; CLIPPED / INEXACT_PSF record it
    assert abs(float(np.mean(res.coadd.image[streak]))) < 3.0
    core = streak_image() > 100.0
    assert np.all(res.coadd.mask[core] & PLANES.value("CLIPPED", "INEXACT_PSF") != 0)
    assert np.all(res.n_image[core] == len(shifts) - 1)


def test_persistent_residuals_survive_on_epoch_counts_alone():
    # Visits on both sides of the meridian: DCR flips direction, every visit is off the mean.
    shifts = np.array([-1.0, 1.0] * 5)
    cfg = Config()
    cfg.artifacts.do_preserve_contained_by_source = False
    cfg.artifacts.assemble_static_sky_model.calc_error_from_input_variance = True
    res = assemble_coadd(dcr_warps(shifts, streak_in=3), cfg)
    assert all(m.n_candidates >= 2 for m in res.artifact_masks)  # residuals detected in every epoch
    for m in res.artifact_masks:
        for y, x, _ in STARS:
            assert clipped_near(m, y, x) == 0, m.name
    assert res.artifact_masks[3].n_clipped >= 1  # the streak still goes


def test_clipped_is_not_a_bad_plane_for_the_dcr_model():
    cfg = Config()
    assert "CLIPPED" not in cfg.effective_bad_mask_planes()
    assert "EDGE" not in cfg.effective_bad_mask_planes() and "EDGE" in cfg.effective_remove_mask_planes()
    assert "CLIPPED" in cfg.coadd_bad_mask_planes()
    cfg.artifacts.enabled = False
    assert cfg.coadd_bad_mask_planes() == ["NO_DATA", "BAD", "SAT", "EDGE", "CR"]


# -- PSF matching --------------------------------------------------------------------------------

def second_moment_sigma(img):
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    f = img.sum()
    cy, cx = (img * yy).sum() / f, (img * xx).sum() / f
    return np.sqrt(((img * ((yy - cy) ** 2 + (xx - cx) ** 2)).sum() / f) / 2)


def test_psf_match_reaches_target_width_and_keeps_flux():
    star = gaussian_image(40, 40, 1000.0, 1.5)
    ones = np.ones(star.shape, bool)
    m = psf_match(star, np.ones_like(star), ones, ones, np.sqrt(2.5**2 - 1.5**2))
    assert second_moment_sigma(m.image) == pytest.approx(2.5, rel=1e-3)
    assert m.image.sum() == pytest.approx(1000.0, rel=1e-4)
    g = gaussian_kernel1d(2.0)
    # interior variance of smoothed white noise: v * sum(k^2)
    np.testing.assert_allclose(m.variance[40, 40], (g**2).sum() ** 2, rtol=1e-4)


def test_psf_match_variance_matches_the_noise_it_makes():
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 3.0, (200, 200))
    ones = np.ones(noise.shape, bool)
    m = psf_match(noise, np.full(noise.shape, 9.0), ones, ones, 1.3)
    assert np.std(m.image[20:-20, 20:-20]) == pytest.approx(np.sqrt(m.variance[100, 100]), rel=0.05)


def test_psf_match_fills_bad_pixels_and_flags_missing_data():
    img = np.full((40, 40), 5.0)
    has_data = np.ones(img.shape, bool)
    has_data[:, 25:] = False  # no data right of x = 25
    valid = has_data.copy()
    valid[10, 10] = False  # a bad pixel inside the data
    img[10, 10] = 1e6
    m = psf_match(img, np.ones_like(img), has_data, valid, 1.5)
    np.testing.assert_allclose(m.image[10, 10], 5.0, rtol=1e-5)  # normalized convolution ignores it
    assert np.all(np.isnan(m.image[:, 27:])) and np.all(np.isfinite(m.image[:, :25]))
    assert np.all(m.coverage[:, :15] > 1 - 1e-6) and np.all(m.coverage[:, 20:25] < 1)
    # the array boundary is not missing data
    assert np.all(m.coverage[:, 0] > 1 - 1e-6)


@pytest.mark.parametrize("sigma", [0.0, 0.4, 1.0, 2.7])
@pytest.mark.parametrize("shape", [(1, 1), (5, 60), (61, 17), (130, 90)])
def test_convolve_ones_is_the_convolution_of_an_all_valid_region_bit_for_bit(sigma, shape):
    # psf_match takes this shortcut for all-valid regions: a tile's matched pixels must not depend on
    # whether a bad pixel elsewhere in the region it read sent it down the general path
    g = gaussian_kernel1d(sigma)
    direct = convolve_separable(np.ones(shape, np.float32), g)
    fast = convolve_ones(shape, g)
    assert fast.dtype == direct.dtype == np.float32
    np.testing.assert_array_equal(fast.view(np.uint32), direct.view(np.uint32))


def test_psf_match_of_an_all_valid_region_equals_the_general_path():
    rng = np.random.default_rng(4)
    img = rng.normal(0, 3.0, (70, 50)).astype(np.float32)
    var = np.full(img.shape, 9.0, np.float32)
    ones = np.ones(img.shape, bool)
    fast = psf_match(img, var, ones, ones, 1.2)
    one_bad = ones.copy()
    one_bad[0, 0] = False  # forces the general path; far pixels see the same kernel windows
    slow = psf_match(img, var, ones, one_bad, 1.2)
    np.testing.assert_array_equal(fast.image[20:, 20:], slow.image[20:, 20:])
    np.testing.assert_array_equal(fast.variance[20:, 20:], slow.variance[20:, 20:])


def test_scale_variance_factor_recovers_underestimated_variance():
    rng = np.random.default_rng(9)
    img = rng.normal(0, 2.0, (100, 100))
    factor = scale_variance_factor(img, np.ones_like(img), np.zeros(img.shape, np.uint32), 0)
    assert factor == pytest.approx(4.0, rel=0.05)


# -- detection and filtering -----------------------------------------------------------------------

def test_dipole_lobes_merge_into_one_footprint():
    snr = np.zeros((30, 30))
    snr[10:13, 10:13] = 20.0
    snr[13:16, 10:13] = -20.0
    labels, n = detect_outliers(snr, 7.5, "both", 4, 0)
    assert n == 1 and np.count_nonzero(labels) == 18
    labels, n = detect_outliers(snr, 7.5, "both", 10, 0)  # each lobe has 9 < 10 pixels
    assert n == 0


def test_footprints_of_lists_each_label():
    labels = np.zeros((5, 5), np.int32)
    labels[0, :2] = 1
    labels[4, 4] = 2
    fps = footprints_of(labels, 2)
    assert [fp.tolist() for fp in fps] == [[0, 1], [24]]


@pytest.mark.parametrize("n, expected", [(3, 1), (5, 2), (10, 2), (40, 3), (100, 5)])
def test_effective_max_num_epochs(n, expected):
    assert effective_max_num_epochs(n, 2, 0.4, 0.03) == expected


def test_filter_keeps_persistent_and_clips_transient_candidates():
    cfg = ArtifactConfig()
    n_image = np.full(100, 10)
    epochs = np.zeros(100, np.int32)
    transient = np.arange(0, 10)
    epochs[transient] = 1
    persistent = np.arange(20, 30)
    epochs[persistent] = 6  # in 6 of 10 epochs > int(min(4, 2.3)) = 2
    half = np.arange(40, 50)
    epochs[40:45], epochs[45:50] = 1, 7  # exactly half below the limit: not more than 0.5
    out = filter_artifacts([transient, persistent, half], epochs, n_image, cfg)
    assert [fp[0] for fp in out] == [0]
    # a transient inside one bright static-sky source is preserved ...
    template = np.zeros(100, np.int32)
    template[0:15] = 1
    assert filter_artifacts([transient], epochs, n_image, cfg, template) == []
    # ... but not one straddling two sources or the background
    template[5:15] = 2
    assert len(filter_artifacts([transient], epochs, n_image, cfg, template)) == 1


def test_prefilter_drops_candidates_on_bad_pixels():
    good = np.ones(100, bool)
    good[:20] = False
    on_bad = np.arange(0, 20)
    mostly_bad = np.arange(0, 21)  # 1/21 = 0.048 <= 0.05
    fine = np.arange(10, 30)
    kept = prefilter_artifacts([on_bad, mostly_bad, fine], good, 0.05)
    assert len(kept) == 1 and kept[0][0] == 10


# -- alternative masks -----------------------------------------------------------------------------

def test_pixel_set_round_trip_and_sub_boxes():
    bbox = Box(10, 20, 8, 6)
    dense = np.zeros(bbox.shape, bool)
    dense[1, 2] = dense[5, 7] = True
    ps = PixelSet.from_mask(dense, bbox, bbox)
    assert len(ps) == 2
    np.testing.assert_array_equal(ps.to_mask(bbox), dense)
    sub = Box(15, 24, 5, 5)  # contains parent pixel (17, 25) only
    assert ps.to_mask(sub).sum() == 1 and ps.to_mask(sub)[1, 2]


def test_restricted_masks_apply_inside_their_box_as_the_whole_mask():
    bbox = Box(10, 20, 30, 25)
    rng = np.random.default_rng(3)
    alt = ArtifactMask("w", {p: PixelSet.from_mask(rng.random(bbox.shape) < 0.2, bbox, bbox)
                             for p in ("CLIPPED", "NO_DATA", "EDGE")}, n_candidates=4, n_clipped=2)
    bad = PLANES.value("NO_DATA", "BAD")
    tile = Box(17, 30, 9, 11)
    cut = alt.restricted(tile)
    assert cut.planes["CLIPPED"].bbox == tile and (cut.n_candidates, cut.n_clipped) == (4, 2)
    for box in (tile, Box(19, 31, 4, 3)):
        whole = np.full(box.shape, PLANES.value("BAD"), np.uint32)
        part = whole.copy()
        alt.apply(whole, box, PLANES, bad)
        cut.apply(part, box, PLANES, bad)
        np.testing.assert_array_equal(part, whole)
    assert len(alt.restricted(Box(0, 0, 5, 5)).planes["EDGE"]) == 0  # outside the mask's box


def test_alt_mask_clears_bad_bits_inside_no_data():
    bbox = Box(0, 0, 4, 1)
    mask = np.array([[PLANES.value("BAD"), PLANES.value("SAT"), 0, PLANES.value("DETECTED")]], np.uint32)
    no_data = PixelSet.from_mask(np.array([[True, False, False, True]]), bbox, bbox)
    clipped = PixelSet.from_mask(np.array([[False, False, True, False]]), bbox, bbox)
    alt = ArtifactMask("w", {"NO_DATA": no_data, "CLIPPED": clipped})
    alt.apply(mask, bbox, PLANES, PLANES.value("NO_DATA", "BAD", "SAT"))
    assert [PLANES.names_in(int(v)) for v in mask[0]] == [
        ["NO_DATA"], ["SAT"], ["CLIPPED"], ["DETECTED", "NO_DATA"]]


def test_variance_rescaling_leaves_out_sources_of_warps_without_footprints(caplog):
    # warps with no DETECTED footprints (other pipelines'): their sources counted as noise, more so
    # after PSF matching smooths the noise, and a right variance came out 50-120 times too small
    import logging

    from dcrcoadd.coadd.artifacts import detection

    rng = np.random.default_rng(3)
    stars = [(rng.uniform(5, NY - 5), rng.uniform(5, NX - 5), rng.uniform(2e3, 2e4)) for _ in range(60)]
    warps = []
    for i, s in enumerate((1.5, 1.8, 2.1, 2.4)):
        img = sum(gaussian_image(y, x, f, s) for y, x, f in stars) + rng.normal(0.0, 8.0, (NY, NX))
        warps.append(Exposure(img, variance=np.full(img.shape, 64.0), wcs=tan_wcs(), psf=Psf.gaussian(s),
                              visit=VisitInfo(id=100 + i, airmass=1.0 + 0.1 * i), band="g"))
    factors = []
    original = detection._scale_factor

    def spy(*args):
        factors.append(original(*args))
        return factors[-1]

    detection._scale_factor = spy
    try:
        with caplog.at_level(logging.WARNING, logger="dcrcoadd"):
            assemble_coadd(warps)
    finally:
        detection._scale_factor = original
    assert len(factors) == 4 and all(0.5 < f < 2.0 for f in factors), factors
    assert not any("rescaling factor" in r.getMessage() for r in caplog.records)


def test_a_sharp_warps_variance_rescaling_leaves_out_the_wings_matching_spreads(caplog):
    # a 0.55" warp matched to a 1.6" target: its sources spread beyond its own footprints, whose wings
    # counted as noise (factor 12, "unusable ... check its variance plane", on a variance that was right)
    import logging

    from dcrcoadd.sim import SimulationConfig, simulate

    sim = simulate(SimulationConfig(size=128, n_visits=5, n_stars=40, seeing=(0.5, 1.6), seed=2))
    assert min(v.seeing for v in sim.visits) < 0.6 < 1.4 < max(v.seeing for v in sim.visits)
    with caplog.at_level(logging.WARNING, logger="dcrcoadd.coadd.artifacts"):
        assemble_coadd(sim.warps, Config())
    assert "variance rescaling factor" not in caplog.text


def test_artifacts_reaching_beyond_the_sources_are_left_out_of_the_dcr_model_inside_them_too():
    # a 50-sigma streak in one warp, clipped by compare-warp, was kept inside the sources' footprints
    # (80 % of a crowded simulated field): the DCR coadd held it at 15 sigma, the baseline coadd not at
    # all. A source moved by DCR, clipped within its own footprint, is still kept.
    from dcrcoadd.coadd.artifacts import ArtifactMask, PixelSet
    from dcrcoadd.dcr.assemble import artifacts_beyond_sources

    box = Box(10, 20, 64, 48)
    detected = np.zeros(box.shape, bool)
    detected[10:30, 5:40] = True  # (a large footprint)
    streak = np.zeros(box.shape, bool)
    streak[20, :] = True  # (crosses it: 29 of its 64 pixels outside)
    moved = np.zeros(box.shape, bool)
    moved[12:15, 30:33] = True  # (a source's DCR residual, inside the footprint)
    clipped = PixelSet.from_mask(streak | moved, box, box)
    masks = [ArtifactMask("a", {"CLIPPED": clipped}), None,
             ArtifactMask("c", {"CLIPPED": PixelSet.from_mask(moved, box, box)})]
    out = artifacts_beyond_sources(masks, detected, box)
    np.testing.assert_array_equal(out[0].to_mask(box), streak & detected)
    assert out[1] is None and out[2] is None
