"""Runs of exact zeros: a fill for missing data, told from noise and from a noiseless sky."""

import numpy as np

from dcrcoadd.ops.zero_fill import ZERO_RUN, noisy, zero_runs


def brute_force(zero: np.ndarray, length: int) -> np.ndarray:
    out = np.zeros_like(zero)
    for i in range(zero.shape[0] - length + 1):
        out[i:i + length] |= zero[i:i + length].all(axis=0)
    for j in range(zero.shape[1] - length + 1):
        out[:, j:j + length] |= zero[:, j:j + length].all(axis=1)[:, None]
    return out


def test_runs_are_those_of_a_brute_force_search():
    rng = np.random.default_rng(3)
    for _ in range(10):
        image = np.where(rng.random((23, 31)) < 0.85, 0.0, 1.0)
        for length in (1, 4, 16, 23, 40):
            runs = zero_runs(image, length)
            expected = brute_force(image == 0, length)
            np.testing.assert_array_equal(np.zeros_like(expected) if runs is None else runs, expected)


def test_a_border_of_zeros_is_found_and_noise_is_not():
    rng = np.random.default_rng(4)
    image = np.round(rng.normal(scale=3.0, size=(200, 300)))  # integer pixels: zeros 13 % of the time
    assert zero_runs(image) is None
    image[:, :6] = 0.0
    image[150:, 200:210] = 0.0
    image[40, 100:100 + ZERO_RUN - 1] = 0.0  # one pixel short of a run
    runs = zero_runs(image)
    assert runs[:, :6].all() and runs[150:, 200:210].all() and not runs[40, 100:120].any()
    # (and the noise's zeros that extend a run: 2 here)
    assert 200 * 6 + 50 * 10 <= runs.sum() <= 200 * 6 + 50 * 10 + 5
    assert noisy(image, ~runs)


def test_a_noiseless_sky_is_not_a_fill():
    image = np.zeros((64, 64))
    image[30:34, 30:34] = 5.0  # a source on a sky of exactly 0
    assert zero_runs(image) is not None and not noisy(image, np.ones(image.shape, bool))
