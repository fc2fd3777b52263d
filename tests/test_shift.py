"""Tests of the sub-pixel shift kernels (dcrcoadd.ops.shift)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dcrcoadd.ops.shift import (
    reverse_shift,
    shift_image,
    shift_image_adjoint,
    shift_many,
    spline_prefilter,
)

ORDERS = (1, 3)


def _gaussian(shape, center, sigma, flux=1000.0):
    y, x = np.indices(shape, dtype=np.float64)
    g = np.exp(-0.5 * ((y - center[0]) ** 2 + (x - center[1]) ** 2) / sigma**2)
    return flux * g / g.sum()


def _centroid(image):
    y, x = np.indices(image.shape, dtype=np.float64)
    total = image.sum(dtype=np.float64)
    return (y * image).sum() / total, (x * image).sum() / total


def _random_cases(seed, n):
    """Random small shapes (down to 1 px) and shifts, with whole-pixel and mixed ones mixed in."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        shape = tuple(int(v) for v in rng.integers(1, 13, size=2))
        shift = rng.uniform(-5.0, 5.0, size=2)
        if i % 5 == 0:
            shift = np.round(shift)
        elif i % 5 == 1:
            shift[i % 2] = np.round(shift[i % 2])
        yield rng, shape, shift


# -- agreement with scipy.ndimage.shift (what LSST's applyDcr calls) ----------------------------
@pytest.mark.parametrize("order", ORDERS)
def test_matches_scipy_constant_mode_including_borders(order):
    for rng, shape, shift in _random_cases(1, 150):
        image = rng.normal(size=shape)
        expected = ndimage.shift(image, shift, order=order, mode="constant", cval=0.0)
        got = shift_image(image, shift, order)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12, err_msg=f"{shape} {shift}")


@pytest.mark.parametrize("shift", [(1e-12, -1e-12), (2 - 1e-13, 0.5), (-3.0, 1e-300), (0.5, 40.0)])
@pytest.mark.parametrize("order", ORDERS)
def test_matches_scipy_for_edge_case_shifts(order, shift):
    # scipy zeroes an output whose sample is outside [0, n-1] by any amount, even 1e-12 px.
    image = np.random.default_rng(2).normal(size=(9, 11))
    expected = ndimage.shift(image, shift, order=order, mode="constant")
    np.testing.assert_allclose(shift_image(image, shift, order), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("order", ORDERS)
def test_float32_matches_scipy_to_float32_precision(order):
    rng = np.random.default_rng(3)
    image = (100.0 + 10.0 * rng.normal(size=(64, 80))).astype(np.float32)
    shift = (0.37, -1.61)
    expected = ndimage.shift(image.astype(np.float64), shift, order=order, mode="constant")
    got = shift_image(image, shift, order)
    assert got.dtype == np.float32
    # A few float32 ulps of the image scale (scipy itself is within half an ulp).
    np.testing.assert_allclose(got, expected, rtol=0, atol=5e-7 * np.abs(image).max())


def test_prefiltered_coefficients_and_lsst_style_reuse():
    rng = np.random.default_rng(4)
    image = rng.normal(size=(20, 24)).astype(np.float32)
    coef = spline_prefilter(image)
    assert coef.dtype == np.float32
    # LSST prefilters with scipy's default ('mirror') and shifts with prefilter=False.
    lsst_coef = ndimage.spline_filter(image.astype(np.float64), order=3)
    np.testing.assert_allclose(coef, lsst_coef, rtol=0, atol=1e-5)
    shift = (-0.8, 2.3)
    expected = ndimage.shift(lsst_coef, shift, order=3, prefilter=False)
    np.testing.assert_allclose(shift_image(coef, shift, 3, prefiltered=True), expected, atol=1e-5)
    np.testing.assert_array_equal(shift_image(coef, shift, 3, prefiltered=True), shift_image(image, shift, 3))


@pytest.mark.parametrize("order", ORDERS)
def test_shift_many_equals_individual_shifts(order):
    rng = np.random.default_rng(5)
    image = rng.normal(size=(16, 18)).astype(np.float32)
    shifts = np.array([[0.3, -0.2], [1.0, -2.0], [-1.7, 0.45], [0.0, 0.0]])
    stack = shift_many(image, shifts, order)
    assert stack.shape == (4, 16, 18) and stack.dtype == np.float32
    for k, s in enumerate(shifts):
        np.testing.assert_array_equal(stack[k], shift_image(image, s, order))


def test_out_argument_is_filled_and_returned():
    image = np.random.default_rng(6).normal(size=(10, 12)).astype(np.float32)
    out = np.full_like(image, np.nan)
    result = shift_image(image, (0.4, -3.2), 1, out=out)
    assert result is out
    np.testing.assert_array_equal(out, shift_image(image, (0.4, -3.2), 1))


# -- exactness and physics --------------------------------------------------------------------
@pytest.mark.parametrize("order", ORDERS)
def test_zero_shift_is_an_exact_copy(order):
    image = np.random.default_rng(7).normal(size=(13, 17)).astype(np.float32)
    result = shift_image(image, (0.0, -0.0), order)
    assert result is not image
    np.testing.assert_array_equal(result, image)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("shift", [(1, 0), (0, -2), (3, -4), (-5, 7)])
def test_integer_shift_is_exact(order, shift):
    image = np.random.default_rng(8).normal(size=(12, 15)).astype(np.float32)
    dy, dx = shift
    expected = np.zeros_like(image)
    ny, nx = image.shape
    expected[max(dy, 0) : ny + min(dy, 0), max(dx, 0) : nx + min(dx, 0)] = image[
        max(-dy, 0) : ny - max(dy, 0), max(-dx, 0) : nx - max(dx, 0)
    ]
    np.testing.assert_array_equal(shift_image(image, shift, order), expected)


def test_prefiltered_integer_shift_reconstructs_to_rounding():
    image = np.random.default_rng(9).normal(size=(12, 15)).astype(np.float32)
    got = shift_image(spline_prefilter(image), (2.0, -1.0), 3, prefiltered=True)
    np.testing.assert_allclose(got[2:, :-1], image[:-2, 1:], atol=2e-6)


@pytest.mark.parametrize("order", ORDERS)
def test_point_source_lands_at_plus_shift(order):
    image = np.zeros((11, 11), dtype=np.float32)
    image[4, 6] = 1.0
    result = shift_image(image, (2.0, -3.0), order)
    assert np.unravel_index(np.argmax(result), result.shape) == (6, 3)
    assert result[6, 3] == 1.0 and result.sum() == 1.0
    # A quarter-pixel shift along +y splits the light between rows 4 and 5 (bilinear).
    if order == 1:
        quarter = shift_image(image, (0.25, 0.0), 1)
        assert quarter[4, 6] == pytest.approx(0.75) and quarter[5, 6] == pytest.approx(0.25)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("shift", [(0.3, -0.45), (-1.7, 2.2), (0.5, 0.5)])
def test_flux_conserved_and_centroid_moves_by_shift(order, shift):
    image = _gaussian((48, 48), (23.2, 24.7), sigma=2.0).astype(np.float32)
    result = shift_image(image, shift, order)
    assert result.sum(dtype=np.float64) == pytest.approx(image.sum(dtype=np.float64), rel=1e-5)
    y0, x0 = _centroid(image.astype(np.float64))
    y1, x1 = _centroid(result.astype(np.float64))
    assert y1 - y0 == pytest.approx(shift[0], abs=1e-3)
    assert x1 - x0 == pytest.approx(shift[1], abs=1e-3)


@pytest.mark.parametrize("order", ORDERS)
def test_shift_out_of_the_image_gives_zeros(order):
    image = np.ones((6, 7), dtype=np.float32)
    assert not shift_image(image, (6.5, 0.0), order).any()
    assert not shift_image(image, (0.0, -7.0), order).any()
    assert not shift_image_adjoint(image, (0.0, 9.25), order).any()


# -- adjoint and reverse shift ----------------------------------------------------------------
@pytest.mark.parametrize("order", ORDERS)
def test_adjoint_identity_float64(order):
    for rng, shape, shift in _random_cases(10, 100):
        x = rng.normal(size=shape)
        y = rng.normal(size=shape)
        lhs = np.vdot(shift_image(x, shift, order), y)
        rhs = np.vdot(x, shift_image_adjoint(y, shift, order))
        assert lhs == pytest.approx(rhs, rel=1e-11, abs=1e-11), (shape, shift)


@pytest.mark.parametrize("order", ORDERS)
def test_adjoint_identity_float32(order):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(40, 52)).astype(np.float32)
    y = rng.normal(size=(40, 52)).astype(np.float32)
    shift = (1.37, -0.62)
    adj = shift_image_adjoint(y, shift, order)
    assert adj.dtype == np.float32
    lhs = np.vdot(shift_image(x, shift, order).astype(np.float64), y.astype(np.float64))
    rhs = np.vdot(x.astype(np.float64), adj.astype(np.float64))
    assert lhs == pytest.approx(rhs, rel=1e-5, abs=1e-3)


def test_reverse_shift_is_shift_by_minus_d():
    image = np.random.default_rng(12).normal(size=(14, 16)).astype(np.float32)
    for order in ORDERS:
        np.testing.assert_array_equal(reverse_shift(image, (0.3, -1.2), order),
                                      shift_image(image, (-0.3, 1.2), order))


def test_reverse_shift_and_adjoint_differ_only_at_borders():
    # The example in the module notes: the reverse shift is all or nothing at the
    # edges, the adjoint tapers by the weight the forward shift drew from each pixel.
    ones = np.ones((1, 8))
    np.testing.assert_allclose(reverse_shift(ones, (0.0, 1.3), 1)[0], [1, 1, 1, 1, 1, 1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(shift_image_adjoint(ones, (0.0, 1.3), 1)[0],
                               [0.3, 1, 1, 1, 1, 1, 0.7, 0], atol=1e-12)
    image = np.random.default_rng(13).normal(size=(40, 40))
    shift = (0.6, -1.3)
    for order, margin, tol in ((1, 3, 1e-12), (3, 12, 1e-5)):
        # For order 3 the transposed prefilter differs from the prefilter only through
        # the mirror boundary, an effect that decays as 0.268**distance from the edge.
        rev = reverse_shift(image, shift, order)
        adj = shift_image_adjoint(image, shift, order)
        inner = (slice(margin, -margin),) * 2
        np.testing.assert_allclose(rev[inner], adj[inner], atol=tol)
        assert np.abs(rev - adj)[:2].max() > 1e-2


# -- non-finite input -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("order", "shift", "expected_bad"),
    [(1, (0.5, 0.25), 4), (1, (0.0, 0.5), 2), (1, (2.0, -1.0), 1), (3, (0.5, 0.25), 16), (3, (0.0, 0.5), 12)],
)
def test_nan_spreads_only_over_the_kernel_footprint(order, shift, expected_bad):
    image = np.ones((16, 16), dtype=np.float32)
    image[7, 8] = np.nan
    result = shift_image(image, shift, order)
    bad = ~np.isfinite(result)
    assert bad.sum() == expected_bad
    rows, cols = np.nonzero(bad)
    assert abs(rows.mean() - (7 + shift[0])) <= 0.5 and abs(cols.mean() - (8 + shift[1])) <= 0.5
    # Elsewhere the result is that of the image with the bad pixel zeroed.
    zeroed = shift_image(np.nan_to_num(image, nan=0.0), shift, order)
    np.testing.assert_allclose(result[~bad], zeroed[~bad], atol=1e-6)


def test_spline_prefilter_marks_infinite_pixels():
    image = np.zeros((10, 10), dtype=np.float32)
    image[3, 4] = np.inf
    coef = spline_prefilter(image)
    assert np.isnan(coef[3, 4]) and np.isfinite(np.delete(coef.ravel(), 3 * 10 + 4)).all()


# -- inputs -----------------------------------------------------------------------------------
def test_big_endian_and_integer_inputs():
    image = np.random.default_rng(15).normal(size=(8, 9))
    expected = shift_image(image, (0.4, 0.7), 3)
    np.testing.assert_allclose(shift_image(image.astype(">f8"), (0.4, 0.7), 3), expected, atol=1e-12)
    counts = np.arange(72, dtype=np.int32).reshape(8, 9)
    assert shift_image(counts, (0.5, 0.0), 1).dtype == np.float32


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image": np.zeros((3, 4, 5))}, "2-D"),
        ({"shift": (0.5,)}, "dy, dx"),
        ({"shift": (np.nan, 0.0)}, "dy, dx"),
        ({"order": 2}, "order"),
        ({"out": np.zeros((4, 4), dtype=np.float64)}, "out"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message):
    args = {"image": np.zeros((4, 4), dtype=np.float32), "shift": (0.5, 0.5), "order": 1}
    args.update(kwargs)
    out = args.pop("out", None)
    with pytest.raises(ValueError, match=message):
        shift_image(args["image"], args["shift"], args["order"], out=out)


def test_out_may_not_alias_the_input():
    image = np.zeros((4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="overlap"):
        shift_image(image, (0.5, 0.5), out=image)
    with pytest.raises(ValueError, match=r"\(S, 2\)"):
        shift_many(image, [0.5, 0.5])
