"""Conditioning steps of the iterative DCR solver, one at a time."""

import numpy as np
import pytest

from dcrcoadd.dcr.solvers.conditioning import (
    amplify,
    apply_model_weights,
    apply_thresholds,
    clamp_iteration,
    gain_average,
    model_weights,
    noise_level,
    progressive_gain,
    regularize_frequency,
)


def gaussian(shape, y0, x0, sigma, amplitude=1.0):
    y, x = np.mgrid[: shape[0], : shape[1]]
    return amplitude * np.exp(-0.5 * ((y - y0) ** 2 + (x - x0) ** 2) / sigma**2)


def test_gain_average_no_change_when_new_equals_old():
    old = np.random.default_rng(1).normal(size=(3, 8, 8))
    np.testing.assert_allclose(gain_average(old.copy(), old, 0.37), old)


def test_gain_average_known_gain():
    out = gain_average(np.full((2, 2), 2.0), np.zeros((2, 2)), 0.5)
    np.testing.assert_allclose(out, 2.0 * 0.5 / 1.5)
    with pytest.raises(ValueError):
        gain_average(np.zeros(1), np.zeros(1), 0.0)


def test_clamp_leaves_isolated_noisy_pixels_alone():
    old = np.ones((20, 20))
    new = old.copy()
    new[5, 5] = 50.0  # one noisy pixel far above |old| * 2
    new[12:19, 10:17] = 10.0  # a coherent 7x7 region, also above the limit
    clamp_iteration(new, old, factor=2.0, width=2)
    assert new[5, 5] == 50.0
    assert np.all(new[13:18, 11:16] == 2.0)  # interior of the block clamped to |old| * factor


def test_clamp_low_side_and_disabled():
    old = np.full((15, 15), 4.0)
    new = np.full((15, 15), 0.5)  # below old / 2 everywhere
    clamp_iteration(new, old, factor=2.0, width=1)
    # the opening (border value 0, as scipy and LSST use) spares the outermost corners
    np.testing.assert_allclose(new[1:-1, 1:-1], 2.0)
    untouched = np.full((5, 5), 100.0)
    clamp_iteration(untouched, np.ones((5, 5)), factor=0)
    assert np.all(untouched == 100.0)


def test_apply_thresholds_without_opening_clamps_every_pixel():
    image = np.array([[0.0, 5.0], [-5.0, 1.0]])
    apply_thresholds(image, high=np.full((2, 2), 2.0), low=np.full((2, 2), -1.0), width=0)
    np.testing.assert_allclose(image, [[0.0, 2.0], [-1.0, 1.0]])


def test_frequency_regularization_suppresses_chromatic_side_lobes():
    rng = np.random.default_rng(3)
    shape = (48, 48)
    star = gaussian(shape, 24, 24, 2.0, 300.0)
    truth = np.stack([star / 3] * 3)
    # An unphysical degenerate solution: flux pushed from a hole in one subfilter into a
    # wing of another, with the subfilter mean (the reference) unchanged.
    lobe = gaussian(shape, 24, 28, 2.0, 80.0) - gaussian(shape, 24, 20, 2.0, 80.0)
    models = truth + np.stack([lobe, np.zeros(shape), -lobe]) + rng.normal(0, 0.3, (3, *shape))
    before = np.abs(models - models.mean(axis=0)).sum()
    noise = noise_level(models[0], star < 1.0, buffer=2)
    out = regularize_frequency(models.copy(), factor=4.0, width=2, noise=noise)
    after = np.abs(out - out.mean(axis=0)).sum()
    assert after < 0.5 * before
    # colour is redistributed, flux is not created: the full-band image is unchanged
    np.testing.assert_allclose(out.sum(axis=0), models.sum(axis=0), atol=1e-6 * star.max())
    # each subfilter stays within a factor sqrt(4) = 2 of the mean at the source core
    core = out[:, 22:27, 22:27] / out.mean(axis=0)[22:27, 22:27]
    assert core.max() < 2.2 and core.min() > 1 / 2.2
    # the hole is filled: no subfilter is strongly negative where the star is bright
    assert out[:, 20:29, 16:33].min() > -5.0


def test_frequency_regularization_leaves_achromatic_model_alone():
    shape = (32, 32)
    star = gaussian(shape, 16, 16, 2.0, 100.0)
    models = np.stack([star / 3] * 3)
    out = regularize_frequency(models.copy(), factor=4.0, width=2, noise=0.01)
    # deviations between subfilters stay zero
    assert np.abs(out - out.mean(axis=0)).max() < 1e-6 * star.max()


def test_model_weights_taper_from_sources():
    detected = np.zeros((41, 41), bool)
    detected[18:23, 18:23] = True
    w = model_weights(detected, 3.0)
    assert w.max() == pytest.approx(1.0)
    assert w[20, 20] > 0.9 and w[0, 0] < 1e-3
    with pytest.raises(ValueError):
        model_weights(detected, -1.0)
    models = np.full((3, 41, 41), 7.0)
    reference = np.full((41, 41), 3.0)
    apply_model_weights(models, reference, w)
    assert models[0, 0, 0] == pytest.approx(1.0, abs=0.01)  # reference / M far from sources
    assert models[1, 20, 20] == pytest.approx(7.0, rel=0.1)


def test_amplify_scales_deviations_and_keeps_mean():
    rng = np.random.default_rng(0)
    models = rng.normal(size=(3, 5, 5))
    out = amplify(models, 3.0)
    np.testing.assert_allclose(out.mean(axis=0), models.mean(axis=0))
    np.testing.assert_allclose(out - out.mean(0), 3 * (models - models.mean(0)))


def test_progressive_gain_acceptance_values():
    base = 0.5
    assert progressive_gain([0.2], [], base) == base
    assert progressive_gain([0.2, 0.1], [base], base) == base
    assert progressive_gain([0.2, 0.2 / 1.5, 0.2 / 1.5**2], [base, base], base) == pytest.approx(0.75)
    assert progressive_gain([0.2, 0.1, 0.05], [base, base], base) == pytest.approx((0.5 + 1.5 / 2) / 2)
    assert progressive_gain([0.2, 0.1, 0.05], [base, base], base, progressive=False) == base
    with pytest.raises(ValueError):
        progressive_gain([0.2, 0.1], [base, base], base)
