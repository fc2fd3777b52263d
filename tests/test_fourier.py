"""The Fourier-space DCR forward model: sign, agreement with the real-space shift, transpose, samples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dcrcoadd.core.bandpass import Bandpass
from dcrcoadd.dcr import fourier
from dcrcoadd.ops.shift import shift_image
from dcrcoadd.physics.dcr import dcr_shifts


def periodic_shift(image: np.ndarray, shift, order: int = 1) -> np.ndarray:
    """`shift_image` of a periodic image: wrap-pad by more than the shift, shift, crop.

    `shift_image` fills with zeros beyond the edges; padding with the image's own
    periodic continuation first makes every kept output pixel read real samples, so
    the crop is the shift on the torus.
    """
    pad = int(math.ceil(np.max(np.abs(shift)))) + 2
    big = np.pad(image, pad, mode="wrap")
    return shift_image(big, shift, order)[pad:-pad, pad:-pad]


def random_shifts(rng, n, m, n_samples):
    return rng.uniform(-3.5, 3.5, size=(n, m, n_samples, 2))


@pytest.mark.parametrize("shape", [(32, 24), (31, 27), (30, 33)])
def test_exact_integer_shift_moves_content_like_shift_image(shape):
    rng = np.random.default_rng(1)
    image = rng.standard_normal(shape)
    for d in [(2, -3), (-1, 4), (0, 1)]:
        b = fourier.transfer(np.array([[d]], float), None, shape, dtype=np.complex128)
        moved = fourier.forward(image[None], b)[0]
        np.testing.assert_allclose(moved, np.roll(image, d, axis=(0, 1)), atol=1e-12)
        np.testing.assert_allclose(moved, periodic_shift(image, d), atol=1e-12)


def test_exact_phase_moves_a_point_source_by_the_subpixel_shift():
    # a well-sampled Gaussian: the centroid moves by exactly +d
    ny, nx = 64, 64
    y, x = np.mgrid[:ny, :nx]
    star = np.exp(-0.5 * ((y - 30.0) ** 2 + (x - 33.0) ** 2) / 2.0**2)
    d = (0.37, -1.61)
    b = fourier.transfer(np.array([[d]]), None, (ny, nx), dtype=np.complex128)
    moved = fourier.forward(star[None], b)[0]
    cy = np.sum(moved * y) / np.sum(moved)
    cx = np.sum(moved * x) / np.sum(moved)
    assert cy == pytest.approx(30.0 + d[0], abs=1e-9)
    assert cx == pytest.approx(33.0 + d[1], abs=1e-9)


@pytest.mark.parametrize("shape", [(40, 33), (36, 36), (29, 30)])
@pytest.mark.parametrize("d", [(1.3, -2.7), (0.25, 0.5), (-3.9, 4.1), (0.0, 0.5), (2.0, -0.75)])
def test_bilinear_transfer_equals_real_space_bilinear_shift_on_a_periodic_image(shape, d):
    rng = np.random.default_rng(2)
    image = rng.standard_normal(shape)
    b = fourier.transfer(np.array([[d]]), None, shape, interpolation="bilinear", dtype=np.complex128)
    np.testing.assert_allclose(fourier.forward(image[None], b)[0], periodic_shift(image, d), atol=1e-12)


def test_bilinear_wavelength_samples_average_the_real_space_shifts():
    rng = np.random.default_rng(3)
    shape = (28, 35)
    images = rng.standard_normal((2, *shape))  # two subfilters
    shifts = random_shifts(rng, 1, 2, 3)[0]
    weights = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    b = fourier.transfer(shifts[None], weights, shape, interpolation="bilinear", dtype=np.complex128)
    expected = sum(weights[a, k] * periodic_shift(images[a], shifts[a, k])
                   for a in range(2) for k in range(3))
    np.testing.assert_allclose(fourier.forward(images, b)[0], expected, atol=1e-12)


@pytest.mark.parametrize("interpolation", fourier.INTERPOLATIONS)
@pytest.mark.parametrize("shape", [(24, 30), (25, 31), (26, 27)])
def test_adjoint_is_the_transpose(interpolation, shape):
    rng = np.random.default_rng(4)
    n, m, n_samples = 4, 3, 5
    shifts = random_shifts(rng, n, m, n_samples)
    weights = rng.dirichlet(np.ones(n_samples), size=m)
    ratio = 1.0 + 0.3 * rng.standard_normal((n, *fourier.rfft_shape(shape)))  # a real per-warp factor
    for r in (None, ratio):
        b = fourier.transfer(shifts, weights, shape, psf_ratio=r, interpolation=interpolation,
                             dtype=np.complex128)
        y = rng.standard_normal((m, *shape))
        s = rng.standard_normal((n, *shape))
        lhs = np.vdot(fourier.forward(y, b), s)
        rhs = np.vdot(y, fourier.adjoint(s, b))
        assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-9)


def test_self_conjugate_frequencies_make_apply_real_and_linear():
    # an even grid with a half-pixel shift: the Nyquist phase exp(-i pi d) is not real
    shape = (16, 16)
    rng = np.random.default_rng(5)
    b = fourier.transfer(np.array([[[0.5, 0.5]]]), None, shape, dtype=np.complex128)
    assert np.allclose(b[0, 0, :, 0].imag[8], 0.0)  # (ky, kx) = (-1/2, 0)
    assert np.allclose(b[0, 0, 0, -1].imag, 0.0)  # (0, -1/2)
    y1, y2 = rng.standard_normal((2, 1, *shape))
    f = fourier.forward
    np.testing.assert_allclose(f(2 * y1 - 3 * y2, b), 2 * f(y1, b) - 3 * f(y2, b), atol=1e-12)


def test_single_precision_is_close_to_double():
    rng = np.random.default_rng(6)
    shape = (64, 48)
    shifts = random_shifts(rng, 3, 3, 4)
    weights = np.full((3, 4), 0.25)
    y = rng.standard_normal((3, *shape)).astype(np.float32)
    single = fourier.forward(y, fourier.transfer(shifts, weights, shape))
    b64 = fourier.transfer(shifts, weights, shape, dtype=np.complex128)
    double = fourier.forward(y.astype(np.float64), b64)
    assert single.dtype == np.float32
    assert np.max(np.abs(single - double)) < 2e-6 * np.max(np.abs(double))


def test_psf_ratio_multiplies_each_warp():
    rng = np.random.default_rng(7)
    shape = (20, 22)
    shifts = random_shifts(rng, 2, 3, 1)[:, :, 0]
    ratio = np.stack([np.full(fourier.rfft_shape(shape), 2.0), np.full(fourier.rfft_shape(shape), 0.5)])
    b = fourier.transfer(shifts, None, shape, dtype=np.complex128)
    br = fourier.transfer(shifts, None, shape, psf_ratio=ratio, dtype=np.complex128)
    np.testing.assert_allclose(br, b * ratio[:, None])
    with pytest.raises(ValueError, match="psf_ratio"):
        fourier.transfer(shifts, None, shape, psf_ratio=ratio[:, :5])


def test_transfer_rejects_weights_that_do_not_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        fourier.transfer(np.zeros((1, 2, 3, 2)), np.full((2, 3), 0.5), (8, 8))
    with pytest.raises(ValueError, match="interpolation"):
        fourier.transfer(np.zeros((1, 2, 2)), None, (8, 8), interpolation="cubic")


def test_padded_shape_is_at_least_the_pad_and_fast():
    assert fourier.padded_shape((100, 37), 0) == (100, 37)
    gy, gx = fourier.padded_shape((100, 37), (13, 9))
    assert gy >= 113 and gx >= 46
    assert fourier.padded_shape((gy, gx), 0) == (gy, gx)


# -- wavelength samples ---------------------------------------------------------------------------------

def test_wavelength_samples_weights_follow_the_throughput(bandpass):
    edges = bandpass.subfilter_edges(3)
    sample_edges, weights = fourier.wavelength_samples(bandpass, edges, 8, extend_to_curve=False)
    assert sample_edges.shape == (3, 8, 2) and weights.shape == (3, 8)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    np.testing.assert_allclose(sample_edges[:, 0, 0], edges[:, 0])
    np.testing.assert_allclose(sample_edges[:, -1, 1], edges[:, 1])
    # the curve falls off at the band's ends, so the outer bins of the outer subfilters weigh less
    assert weights[0, 0] < weights[0, -1] and weights[-1, -1] < weights[-1, 0]
    raw = fourier.sample_throughput(bandpass, sample_edges)
    np.testing.assert_allclose(raw / raw.sum(axis=1, keepdims=True), weights)


def test_wavelength_samples_extend_the_outer_subfilters_to_the_curve():
    # a curve whose wings reach beyond its FWHM range (the nominal subfilter range), as real filters do
    wl = np.linspace(370.0, 590.0, 111)
    bandpass = Bandpass.from_curve("wide", wl, np.exp(-0.5 * ((wl - 480.0) / 50.0) ** 2))
    edges = bandpass.subfilter_edges(3)
    sample_edges, _ = fourier.wavelength_samples(bandpass, edges, 4)
    assert sample_edges[0, 0, 0] < edges[0, 0] and sample_edges[0, 0, 0] >= wl[0]
    assert sample_edges[-1, -1, 1] > edges[-1, 1] and sample_edges[-1, -1, 1] <= wl[-1]
    np.testing.assert_allclose(sample_edges[1, 0, 0], edges[1, 0])  # inner edges stay


def test_wavelength_samples_without_a_curve_are_uniform(make_bandpass):
    top_hat = make_bandpass(with_curve=False)
    _, weights = fourier.wavelength_samples(top_hat, top_hat.subfilter_edges(2), 5)
    np.testing.assert_allclose(weights, 0.2)


def _bin_integral(bandpass, lo, hi, density):
    grid = np.linspace(lo, hi, 401)
    return float(np.trapezoid(bandpass.throughput(grid) * density(grid), grid))


@pytest.mark.parametrize("m", [1, 2, 3, 5])
def test_linear_spectrum_weights_put_a_sloped_spectrum_back_where_it_came_from(bandpass, m):
    # a source whose photon density rises linearly across the band (a red star, to first order):
    # its subfilter fluxes, spread over the bins by the weights, are its own light in each bin
    sample_edges, _ = fourier.wavelength_samples(bandpass, bandpass.subfilter_edges(m), 6)
    weights = fourier.linear_spectrum_weights(bandpass, sample_edges)
    assert weights.shape == (m, m * 6)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)  # a subfilter's flux stays its own

    def density(lam):
        return 1.0 + 0.004 * (lam - 480.0)

    light = np.array([[_bin_integral(bandpass, lo, hi, density) for lo, hi in row] for row in sample_edges])
    spread = weights.T @ light.sum(axis=1)
    if m == 1:  # one subfilter has no slope to see: throughput shares
        shares = fourier.sample_throughput(bandpass, sample_edges)
        np.testing.assert_allclose(spread, light.sum() * shares.ravel() / shares.sum(), rtol=1e-9)
    else:
        np.testing.assert_allclose(spread, light.ravel(), rtol=2e-3, atol=2e-3 * light.max())
        # the throughput shares alone would keep the slope out of each subfilter: the bins'
        # mean wavelength (hence the centroid) would then move less with the source's colour
        flat = np.concatenate([light.sum(axis=1)[a] * row / row.sum()
                               for a, row in enumerate(fourier.sample_throughput(bandpass, sample_edges))])
        assert np.max(np.abs(flat - light.ravel())) > 10 * np.max(np.abs(spread - light.ravel()))


def test_sample_shifts_average_to_the_subfilter_shift(visit, tan, bandpass):
    edges = bandpass.subfilter_edges(3)
    sample_edges, weights = fourier.wavelength_samples(bandpass, edges, 16, extend_to_curve=False)
    position = (20.0, 15.0)
    samples = fourier.sample_shifts(visit, tan, bandpass, sample_edges, position)
    assert samples.shape == (3, 16, 2)
    mean = np.einsum("al,ald->ad", weights, samples)
    # throughput-weighted mean DCR over each subfilter (dcr_shifts with a curve)
    expected = dcr_shifts(visit, tan, bandpass, 3, position=position, edges=edges)
    np.testing.assert_allclose(mean, expected, atol=2e-3 * np.max(np.abs(expected)))
    # blue samples move one way, red ones the other, along one direction
    direction = expected[0] / np.linalg.norm(expected[0])
    along = samples.reshape(-1, 2) @ direction
    assert np.all(np.diff(along) < 0)
