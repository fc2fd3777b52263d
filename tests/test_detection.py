"""Threshold detection: point sources are found and grown, pure noise gives (almost) nothing."""

from __future__ import annotations

import numpy as np
import pytest

from dcrcoadd.core.psf import Psf
from dcrcoadd.ops.detection import detect, detection_mask, disk, grow, significance

SHAPE = (96, 96)


def gaussian_source(shape, y, x, flux, sigma):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return flux * np.exp(-0.5 * ((yy - y) ** 2 + (xx - x) ** 2) / sigma**2) / (2 * np.pi * sigma**2)


def test_disk_and_grow():
    assert disk(0).sum() == 1
    assert disk(1).sum() == 5
    assert disk(2).sum() == 13
    m = np.zeros((11, 11), bool)
    m[5, 5] = True
    grown = grow(m, 2)
    np.testing.assert_array_equal(grown[3:8, 3:8], disk(2))
    assert grown.sum() == 13
    np.testing.assert_array_equal(grow(m, 0.5), m)  # radius below one pixel: unchanged


def test_matched_filter_significance_of_a_point_source():
    """S/N of a PSF-shaped source at its centre equals flux * sqrt(sum k^2) / sigma."""
    psf = Psf.gaussian(sigma=1.5, size=15)
    k = psf.kernel.astype(float)
    flux, noise = 300.0, 2.0
    image = np.zeros(SHAPE)
    image[40:55, 30:45] += flux * k  # exactly the kernel, centred at (47, 37)
    variance = np.full(SHAPE, noise**2)
    snr = significance(image, variance, k)
    expected = flux * np.sqrt((k * k).sum()) / noise
    assert snr[47, 37] == pytest.approx(expected, rel=1e-6)
    assert np.unravel_index(np.argmax(snr), SHAPE) == (47, 37)
    # without a kernel: per-pixel S/N
    plain = significance(image, variance)
    assert plain[47, 37] == pytest.approx(flux * k.max() / noise)


def test_point_source_is_detected_and_grown():
    rng = np.random.default_rng(5)
    sigma_psf, noise = 1.5, 1.0
    psf = Psf.gaussian(sigma=sigma_psf)
    image = rng.normal(0.0, noise, SHAPE) + gaussian_source(SHAPE, 30.0, 60.0, 200.0, sigma_psf)
    variance = np.full(SHAPE, noise**2)
    snr = significance(image, variance, psf.kernel)
    assert snr[30, 60] > 20
    labels, n = detect(snr, 5.0)
    assert n == 1 and labels[30, 60] == 1
    core = labels > 0
    grown, n_grown = detect(snr, 5.0, grow_radius=3)
    assert n_grown == 1
    assert np.all(grown[core] > 0)
    # every grown pixel lies within 3 px of the core footprint, and the growth is real
    np.testing.assert_array_equal(grown > 0, grow(core, 3))
    assert (grown > 0).sum() > core.sum() + 20
    np.testing.assert_array_equal(detection_mask(image, variance, psf.kernel, 5.0, grow_radius=3), grown > 0)


def test_pure_noise_gives_almost_no_five_sigma_detections():
    rng = np.random.default_rng(11)
    psf = Psf.gaussian(sigma=1.5)
    n_false = 0
    for _ in range(3):
        image = rng.normal(0.0, 3.0, (128, 128))
        variance = np.full(image.shape, 9.0)
        snr = significance(image, variance, psf.kernel)
        # the matched-filter statistic is unit-variance noise
        assert np.std(snr[10:-10, 10:-10]) == pytest.approx(1.0, abs=0.05)
        n_false += detect(snr, 5.0, polarity="both")[1]
    # expectation is ~0.01 per image (5-sigma Gaussian tail over ~16k correlated pixels)
    assert n_false <= 1


def test_negative_and_both_polarities():
    snr = np.zeros((20, 20))
    snr[5, 5] = 8.0
    snr[15, 15] = -8.0
    pos, n_pos = detect(snr, 5.0)
    neg, n_neg = detect(snr, 5.0, polarity="negative")
    both, n_both = detect(snr, 5.0, polarity="both")
    assert (n_pos, n_neg, n_both) == (1, 1, 2)
    assert pos[5, 5] and not pos[15, 15] and neg[15, 15] and not neg[5, 5]
    assert both[5, 5] != both[15, 15] and both[5, 5] > 0 and both[15, 15] > 0
    with pytest.raises(ValueError, match="polarity"):
        detect(snr, 5.0, polarity="up")


def test_min_pixels_drops_small_footprints():
    snr = np.zeros((20, 20))
    snr[2, 2] = 9.0  # one-pixel spike
    snr[10:12, 10:12] = 9.0  # four pixels
    labels, n = detect(snr, 5.0, min_pixels=4)
    assert n == 1 and labels[10, 10] > 0 and labels[2, 2] == 0
    assert detect(snr, 5.0, min_pixels=1)[1] == 2


def test_dropped_footprints_are_not_grown_and_kept_ones_are():
    snr = np.zeros((30, 30))
    snr[3, 3] = 9.0  # one-pixel spike: dropped, so nothing grows around it
    snr[15:17, 15:17] = 9.0
    labels, n = detect(snr, 5.0, min_pixels=4, grow_radius=2)
    assert n == 1 and labels[3, 3] == 0 and not labels[:8, :8].any()
    assert labels[13, 15] > 0 and labels[15, 18] > 0 and labels[19, 19] == 0
    labels, n = detect(snr, 5.0, min_pixels=20, grow_radius=2)
    assert n == 0 and not labels.any()


def test_masked_and_bad_variance_pixels_do_not_detect():
    psf = Psf.gaussian(sigma=1.5)
    image = np.zeros(SHAPE)
    image[50, 50] = 1e6  # a hot pixel
    image[20, 20] = np.nan
    variance = np.ones(SHAPE)
    variance[70, 70] = 0.0
    image[70, 70] = 1e6  # no variance: no information
    valid = np.ones(SHAPE, bool)
    valid[50, 50] = False
    snr = significance(image, variance, psf.kernel, valid=valid)
    assert np.all(np.isfinite(snr))
    assert detect(snr, 5.0)[1] == 0


def test_both_polarities_keep_a_dipole_as_two_footprints():
    snr = np.zeros((20, 20))
    snr[8:12, 5:8] = 9.0
    snr[8:12, 8:11] = -9.0  # touching the positive lobe
    labels, n = detect(snr, 5.0, polarity="both")
    assert n == 2
    assert set(np.unique(labels[8:12, 5:8])) == {1} and set(np.unique(labels[8:12, 8:11])) == {2}
    # grown, the lobes overlap: the positive footprint keeps the shared pixels, both survive
    grown, n = detect(snr, 5.0, polarity="both", grow_radius=2)
    assert n == 2 and grown[10, 7] == 1 and grown[10, 8] == 1 and grown[10, 12] == 2
    assert sorted(np.unique(grown)) == [0, 1, 2]
    # a negative footprint swallowed by a grown positive one is dropped, labels stay 1..n
    snr2 = np.zeros((20, 20))
    snr2[8:13, 8:13] = 9.0
    snr2[10, 10] = -9.0  # a hole in a positive ring
    snr2[1, 1] = 9.0
    labels2, n2 = detect(snr2, 5.0, polarity="both", grow_radius=3)
    assert n2 == 2 and sorted(np.unique(labels2)) == [0, 1, 2]
