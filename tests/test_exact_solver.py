"""The exact DCR solver core: exactness, flux, missing data, tile boundaries and priors."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from dcrcoadd.config.schema import ExactSettings
from dcrcoadd.config.validation import validate_exact
from dcrcoadd.dcr import fourier
from dcrcoadd.dcr.solvers.exact import (
    auto_pad,
    hermitian_inverse,
    local_colours,
    prior_strengths,
    psf_power,
    solve_exact,
    solve_shape,
)
from dcrcoadd.errors import ConfigError

SIGMA = 1.7  # PSF sigma of the synthetic fields, pixels


def star_field(shape, positions, fluxes, spectra, sigma=SIGMA):
    """Subfilter images ``(M, ny, nx)`` of Gaussian stars on a periodic grid."""
    ny, nx = shape
    y, x = np.mgrid[:ny, :nx]
    out = np.zeros((spectra.shape[1], ny, nx))
    for (y0, x0), f, s in zip(positions, fluxes, spectra, strict=True):
        dy = (y - y0 + ny / 2) % ny - ny / 2
        dx = (x - x0 + nx / 2) % nx - nx / 2
        g = np.exp(-0.5 * (dy**2 + dx**2) / sigma**2) / (2 * np.pi * sigma**2)
        out += f * s[:, None, None] * g
    return out


def random_field(shape, n_stars, m, rng):
    positions = rng.uniform(0, 1, (n_stars, 2)) * np.array(shape)
    fluxes = rng.uniform(200.0, 3000.0, n_stars)
    spectra = rng.dirichlet(np.full(m, 2.0), n_stars)
    return star_field(shape, positions, fluxes, spectra)


def dcr_like_shifts(n, m, n_samples, rng, one_sided=False):
    """``(N, M, L, 2)``: samples spread blue (+) to red (−) along each visit's zenith direction."""
    amplitude = np.linspace(0.4, 2.5, n)
    angles = rng.uniform(0.3, 0.7, n) if one_sided else rng.uniform(-1.3, 1.3, n)
    spread = np.linspace(1.0, -0.8, m * n_samples).reshape(m, n_samples)
    out = np.empty((n, m, n_samples, 2))
    for i in range(n):
        out[i, ..., 0] = amplitude[i] * spread * math.cos(angles[i])
        out[i, ..., 1] = amplitude[i] * spread * math.sin(angles[i])
    return out


def observe(truth, shifts, weights, noise, rng):
    b = fourier.transfer(shifts, weights, truth.shape[1:], dtype=np.complex128)
    clean = fourier.forward(truth, b)
    return clean, clean + noise * rng.standard_normal(clean.shape)


@pytest.fixture(scope="module")
def periodic_problem():
    rng = np.random.default_rng(11)
    m, n_samples = 3, 4
    shape = (64, 64)
    truth = random_field(shape, 14, m, rng)
    shifts = dcr_like_shifts(9, m, n_samples, rng)
    weights = np.full((m, n_samples), 1.0 / n_samples)
    clean, noisy = observe(truth, shifts[:7], weights, 1.0, rng)
    return {"truth": truth, "shifts": shifts, "weights": weights, "clean": clean, "noisy": noisy}


# -- small pieces ------------------------------------------------------------------------------------------

def test_hermitian_inverse_matches_numpy():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((50, 4, 4)) + 1j * rng.standard_normal((50, 4, 4))
    h = a @ np.conj(np.swapaxes(a, 1, 2)) + 0.1 * np.eye(4)
    inv = hermitian_inverse(np.moveaxis(h, 0, -1))
    np.testing.assert_allclose(np.moveaxis(inv, -1, 0), np.linalg.inv(h), rtol=1e-9, atol=1e-9)


def test_hermitian_inverse_rejects_an_indefinite_matrix():
    with pytest.raises(np.linalg.LinAlgError):
        hermitian_inverse(np.array([[1.0, 2.0], [2.0, 1.0]])[..., None])


def test_local_colours_of_an_isolated_star_are_its_spectrum():
    spectrum = np.array([0.5, 0.3, 0.2])
    y = star_field((48, 48), [(24.0, 20.0)], [1000.0], spectrum[None])
    s, f = local_colours(y, 2.0, mu=1e-6)
    np.testing.assert_allclose(f, y.sum(axis=0))
    np.testing.assert_allclose(s[:, 24, 20], spectrum, atol=1e-6)
    np.testing.assert_allclose(s.sum(axis=0), 1.0, atol=1e-9)
    # far from the star, with a noise floor, the spectrum falls back to flat
    s, _ = local_colours(y, 0.0, mu=1.0)
    np.testing.assert_allclose(s[:, 0, 44], 1.0 / 3.0, atol=1e-6)


def test_psf_power_of_a_gaussian_kernel():
    grid = (64, 48)
    r = np.arange(-12, 13)
    kernel = np.exp(-0.5 * (r[:, None] ** 2 + r[None, :] ** 2) / SIGMA**2)
    np.testing.assert_allclose(psf_power(grid, kernel, 99.0), psf_power(grid, None, SIGMA), atol=1e-6)
    with pytest.raises(ValueError, match="odd"):
        psf_power(grid, np.ones((4, 4)), SIGMA)


@pytest.mark.parametrize("grid", [(30, 30), (24, 33), (20, 21)])
def test_psf_power_of_a_kernel_larger_than_the_grid(grid):
    # a tiny region (or a thin strip) solves on a grid smaller than the PSF's kernel, even-sided too:
    # the kernel is cropped symmetrically to fit, and keeps unit sum (|P(0)|² = 1)
    r = np.arange(-15, 16)
    kernel = np.exp(-0.5 * (r[:, None] ** 2 + r[None, :] ** 2) / SIGMA**2)
    power = psf_power(grid, kernel, 99.0)
    assert power.shape == fourier.rfft_shape(grid)
    assert power[0, 0] == pytest.approx(1.0)
    np.testing.assert_allclose(power, psf_power(grid, None, SIGMA), atol=1e-3)


def test_prior_strengths_grow_beyond_the_psf_cutoff():
    grid = (64, 64)
    flat, colour = prior_strengths(grid, ExactSettings(flat_strength=0.2, colour_strength=0.5))
    assert flat.shape == colour.shape == fourier.rfft_shape(grid)
    assert np.all(flat == 0.2)
    assert colour[0, 0] == pytest.approx(0.5)
    assert colour[0, 20] > colour[0, 5] > 0.5 and colour.max() <= 100.5
    flat, colour = prior_strengths(grid, ExactSettings(prior="flat", flat_strength=0.2))
    assert np.all(colour == 0) and flat[0, 20] > 0.2
    flat, colour = prior_strengths(grid, ExactSettings(prior="none"))
    assert np.all(flat == 0) and np.all(colour == 0)


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="dcr.exact.prior"):
        validate_exact(ExactSettings(prior="smooth"))
    with pytest.raises(ConfigError, match="colour_strength"):
        validate_exact(ExactSettings(colour_strength=-1.0))
    with pytest.raises(ConfigError, match="precision"):
        validate_exact(ExactSettings(precision="half"))
    with pytest.raises(ConfigError, match="pad"):
        validate_exact(ExactSettings(pad=-2))
    with pytest.raises(ConfigError, match="boundary"):
        validate_exact(ExactSettings(boundary="mirror"))
    with pytest.raises(ConfigError, match="taper_width"):
        validate_exact(ExactSettings(taper_width=-1))


def test_inputs_are_checked(periodic_problem):
    p = periodic_problem
    with pytest.raises(ValueError, match="tau"):
        solve_exact(p["noisy"], None, np.ones(3), p["shifts"][:7], p["weights"])
    with pytest.raises(ValueError, match="masks"):
        solve_exact(p["noisy"], np.ones((7, 5, 5)), np.ones(7), p["shifts"][:7], p["weights"])
    with pytest.raises(ValueError, match="shifts"):
        solve_exact(p["noisy"], None, np.ones(7), p["shifts"][:5], p["weights"])


# -- the solution ------------------------------------------------------------------------------------------

def test_noise_free_least_squares_predicts_new_visits_exactly(periodic_problem):
    """Without noise or priors, the per-frequency solution reproduces unseen visits' templates.

    (The subfilter images themselves are not unique: at k = 0 every visit sees the same
    sum, so their totals are not observable; templates of any visit do not depend on it.)
    """
    p = periodic_problem
    settings = ExactSettings(prior="none", boundary="pad", pad=0, precision="double")
    sol = solve_exact(p["clean"], None, np.ones(7), p["shifts"][:7], p["weights"], settings=settings)
    assert sol.stop_reason == "direct solve" and sol.history[0]["cg_iterations"] == 0
    held_out = p["shifts"][7:]
    b = fourier.transfer(held_out, p["weights"], p["truth"].shape[1:], dtype=np.complex128)
    expected = fourier.forward(p["truth"], b)
    got = fourier.forward(sol.model.astype(np.float64), b)
    # (to the float32 rounding of the returned model)
    assert np.max(np.abs(got - expected)) < 5e-5 * np.max(expected)


@pytest.mark.parametrize("prior", ["flat", "colour"])
@pytest.mark.parametrize("precision", ["single", "double"])
def test_total_flux_is_the_weighted_mean_of_the_warps(periodic_problem, prior, precision):
    p = periodic_problem
    tau = np.array([1.0, 0.5, 2.0, 1.5, 0.8, 1.2, 0.3])
    settings = ExactSettings(prior=prior, flat_strength=0.3, boundary="pad", pad=0, precision=precision,
                             colour_iterations=3)
    sol = solve_exact(p["noisy"], None, tau, p["shifts"][:7], p["weights"], settings=settings)
    totals = p["noisy"].sum(axis=(1, 2))
    expected = np.sum(tau * totals) / np.sum(tau)
    rtol = 1e-5 if precision == "single" else 1e-8  # the model is returned as float32
    assert np.sum(sol.model, dtype=np.float64) == pytest.approx(expected, rel=rtol)


def masked_pixels(shape):
    """Masks with a bad column in warp 0, a chip gap in warp 2 and cosmic rays in warp 4; the region
    around the column and the gap."""
    masks = np.ones(shape, bool)
    masks[0, :, 30] = False
    masks[2, 40:46, :] = False
    masks[4][np.random.default_rng(3).random(shape[1:]) < 0.01] = False
    region = np.zeros(shape[1:], bool)
    region[:, 28:33] = True
    region[38:48, :] = True
    return masks, region


@pytest.mark.parametrize("boundary", ["pad", "taper"])
def test_missing_pixels_do_not_change_the_noise_free_solution(periodic_problem, boundary):
    """Masked pixels holding garbage are ignored: the templates of unseen visits stay exact
    (conjugate gradients, or the fill of the periodic tile's masked pixels by the model)."""
    p = periodic_problem
    masks, _ = masked_pixels(p["clean"].shape)
    images = np.where(masks, p["clean"], 1e6)
    images[2, 40:46, :] = np.nan
    settings = ExactSettings(prior="none", boundary=boundary, pad=0, taper_width=0, precision="double",
                             cg_tolerance=1e-8, cg_max_iter=500)
    sol = solve_exact(images, masks, np.ones(7), p["shifts"][:7], p["weights"], settings=settings)
    assert sol.converged and sol.history[0]["cg_iterations"] > 0
    b = fourier.transfer(p["shifts"][7:], p["weights"], p["truth"].shape[1:], dtype=np.complex128)
    expected = fourier.forward(p["truth"], b)
    got = fourier.forward(sol.model.astype(np.float64), b)
    assert np.max(np.abs(got - expected)) < 1e-4 * np.max(expected)


@pytest.mark.parametrize("boundary", ["pad", "taper"])
@pytest.mark.parametrize("prior", ["flat", "colour"])
def test_missing_pixels_leave_no_residual_structure(periodic_problem, prior, boundary):
    """With noise, the model errs no more where pixels are missing than elsewhere; zeros would show."""
    p = periodic_problem
    masks, region = masked_pixels(p["noisy"].shape)
    settings = ExactSettings(prior=prior, flat_strength=0.1 if prior == "flat" else 0.0, boundary=boundary,
                             pad=0, taper_width=0)
    truth_f = p["truth"].sum(axis=0)

    def errors(images, m):
        sol = solve_exact(images, m, np.ones(7), p["shifts"][:7], p["weights"], settings=settings)
        e = sol.model.sum(axis=0) - truth_f
        return np.sqrt(np.mean(e[region] ** 2)), np.sqrt(np.mean(e[~region] ** 2))

    inside, outside = errors(np.where(masks, p["noisy"], np.nan), masks)
    full_inside, _ = errors(p["noisy"], None)
    assert inside < 1.3 * outside
    assert inside < 1.3 * full_inside
    zeros_inside, zeros_outside = errors(np.where(masks, p["noisy"], 0.0), None)
    assert zeros_inside > 2.5 * zeros_outside


@pytest.mark.parametrize("boundary", ["pad", "taper"])
@pytest.mark.parametrize("prior", ["flat", "colour"])
def test_a_tile_of_a_bigger_field_matches_the_whole_field_inside(prior, boundary):
    """A tile cut from a periodic field and solved on its own (padded, or periodic with its edge
    tapered) matches the whole field's solution beyond a buffer of 32 px to 1e-3 of the peak (the
    full-band image already beyond 16 px, 24 px with the taper)."""
    rng = np.random.default_rng(21)
    m, n_samples, shape = 3, 4, (128, 128)
    truth = random_field(shape, 50, m, rng)
    shifts = dcr_like_shifts(7, m, n_samples, rng)
    weights = np.full((m, n_samples), 1.0 / n_samples)
    _, noisy = observe(truth, shifts, weights, 1.0, rng)
    # (the colour alternation converged well past its default tolerance, so both stop at one solution)
    settings = ExactSettings(prior=prior, flat_strength=0.1 if prior == "flat" else 0.0,
                             colour_iterations=80, colour_tolerance=0.005, boundary=boundary)
    whole = solve_exact(noisy, None, np.ones(7), shifts, weights,
                        settings=replace(settings, boundary="pad", pad=0))
    t0, t1 = 16, 112
    tile = solve_exact(noisy[:, t0:t1, t0:t1], None, np.ones(7), shifts, weights, settings=settings)
    if boundary == "pad":
        assert tile.grid[0] >= (t1 - t0) + auto_pad(shifts, 1.7)  # the default colour window
    else:
        assert tile.grid == (t1 - t0, t1 - t0)
    peak = np.max(truth.sum(axis=0))
    a, b = whole.model[:, t0:t1, t0:t1], tile.model
    inner = (slice(None), slice(32, -32), slice(32, -32))
    assert np.max(np.abs(a - b)[inner]) < 1e-3 * peak
    # the taper leaves the border (16 px here) less constrained: the full band matches 8 px further in
    edge = 16 if boundary == "pad" else 24
    f_inner = (slice(edge, -edge), slice(edge, -edge))
    assert np.max(np.abs(a.sum(axis=0) - b.sum(axis=0))[f_inner]) < 1e-3 * peak


def test_colour_prior_recovers_source_spectra_from_one_sided_coverage():
    rng = np.random.default_rng(5)
    m, n_samples, shape = 3, 4, (96, 96)
    grid = [(y, x) for y in range(12, 96, 24) for x in range(12, 96, 24)]
    spectra = rng.dirichlet(np.full(m, 1.5), len(grid))
    fluxes = rng.uniform(2000.0, 6000.0, len(grid))
    truth = star_field(shape, grid, fluxes, spectra)
    shifts = dcr_like_shifts(7, m, n_samples, rng, one_sided=True)
    weights = np.full((m, n_samples), 1.0 / n_samples)
    _, noisy = observe(truth, shifts, weights, 1.0, rng)

    def spectra_of(model):
        yy, xx = np.mgrid[: shape[0], : shape[1]]
        out = []
        for y0, x0 in grid:
            aperture = (yy - y0) ** 2 + (xx - x0) ** 2 <= 6.0**2
            f = model[:, aperture].sum(axis=1)
            out.append(f / f.sum())
        return np.array(out)

    flat = solve_exact(noisy, None, np.ones(7), shifts, weights,
                       settings=ExactSettings(prior="flat", flat_strength=0.1, boundary="pad", pad=0))
    colour = solve_exact(noisy, None, np.ones(7), shifts, weights,
                         settings=ExactSettings(boundary="pad", pad=0))
    err_flat = np.abs(spectra_of(flat.model) - spectra).max()
    err_colour = np.abs(spectra_of(colour.model) - spectra).max()
    assert err_colour < 0.05
    assert err_colour < 0.5 * err_flat


def test_history_and_output(periodic_problem):
    p = periodic_problem
    records = []
    sol = solve_exact(p["noisy"], None, np.ones(7), p["shifts"][:7], p["weights"],
                      settings=ExactSettings(colour_iterations=4, colour_tolerance=0.0),
                      progress=records.append)
    assert sol.model.dtype == np.float32 and sol.model.shape == p["truth"].shape
    assert sol.grid == solve_shape(p["truth"].shape[1:], p["shifts"][:7])
    assert records == sol.history
    assert [h["iteration"] for h in sol.history] == [0, 1, 2, 3, 4]
    for h in sol.history:
        keys = {"iteration", "convergence", "cg_iterations", "cg_residual", "prior_change", "seconds"}
        assert keys <= set(h)
        assert math.isfinite(h["convergence"])
    assert not sol.converged and "not converged" in sol.stop_reason
    # the alternation settles: later refits change the model less than the first
    assert sol.history[-1]["convergence"] < sol.history[1]["convergence"]


def test_render_is_the_forward_model_of_the_padded_model(periodic_problem):
    p = periodic_problem
    model = p["truth"].astype(np.float32)
    shifts = p["shifts"][7:]
    got = fourier.render(model, shifts, p["weights"])
    grid = fourier.padded_shape(model.shape[1:], 2 * int(np.ceil(np.max(np.abs(shifts)))) + 4)
    padded = np.zeros((3, *grid))
    padded[:, :64, :64] = model
    b = fourier.transfer(shifts, p["weights"], grid, dtype=np.complex128)
    np.testing.assert_allclose(got, fourier.forward(padded, b)[:, :64, :64], atol=1e-4)


@pytest.mark.parametrize("per", ["shared", "visit", "visit and subfilter"])
def test_render_applies_each_visits_psf_ratio(periodic_problem, per):
    """The template of each visit goes through its own PSF ratio (per subfilter with chromatic
    seeing), as the transfers of all visits at once do: rendering one subfilter at a time changes
    nothing."""
    p = periodic_problem
    model = p["truth"].astype(np.float32)
    shifts = p["shifts"][7:]
    k, m = shifts.shape[0], model.shape[0]
    grid = fourier.padded_shape(model.shape[1:], 2 * int(np.ceil(np.max(np.abs(shifts)))) + 4)
    ky, kx = fourier.frequencies(grid)
    k2 = ky[:, None] ** 2 + kx[None, :] ** 2
    widths = {"shared": [[1.0]], "visit": [[1.0 + 0.2 * i] for i in range(k)],
              "visit and subfilter": [[1.0 + 0.2 * i + 0.1 * a for a in range(m)] for i in range(k)]}[per]
    ratio = np.array([[np.exp(-2 * np.pi**2 * (w**2 - 0.5) * k2) for w in row] for row in widths])
    ratio = {"shared": ratio[0, 0], "visit": ratio[:, 0], "visit and subfilter": ratio}[per]
    got = fourier.render(model, shifts, p["weights"], psf_ratio=ratio)
    padded = np.zeros((m, *grid))
    padded[:, :64, :64] = model
    b = fourier.transfer(shifts, p["weights"], grid, psf_ratio=ratio, dtype=np.complex128)
    np.testing.assert_allclose(got, fourier.forward(padded, b)[:, :64, :64], atol=1e-4)
    if per != "shared":  # the ratios differ, and so do the templates
        first = fourier.render(model, shifts, p["weights"], psf_ratio=ratio[:1])  # the first's for all
        assert np.abs(got[-1] - first[-1]).max() > 1e-2


def test_pixels_no_warp_sees_are_filled_from_their_surroundings():
    """A hole masked in every warp, on a star's core: with the taper its fill is the kriging of the
    model around it (the star's profile continued), so the hole holds about the star's light and the
    templates of new visits around it are as good as without the hole (a fill of zeros, or the null
    space left as it starts, rings through the sub-pixel shifts)."""
    rng = np.random.default_rng(5)
    m, n_samples, shape = 3, 4, (64, 64)
    positions = np.array([[20.0, 20.0], [40.0, 44.0], [30.0, 12.0], [50.0, 25.0]])
    truth = star_field(shape, positions, np.array([3000.0, 2000.0, 1500.0, 800.0]),
                       rng.dirichlet(np.full(m, 2.0), len(positions)))
    shifts = dcr_like_shifts(9, m, n_samples, rng)
    weights = np.full((m, n_samples), 1.0 / n_samples)
    _, noisy = observe(truth, shifts[:7], weights, 1.0, rng)
    hole = np.zeros(shape, bool)
    hole[38:43, 42:47] = True  # most of the second star's light
    masks = np.broadcast_to(~hole, noisy.shape).copy()
    settings = ExactSettings(boundary="taper")
    full = solve_exact(noisy, None, np.ones(7), shifts[:7], weights, settings=settings)
    holed = solve_exact(np.where(masks, noisy, np.nan), masks, np.ones(7), shifts[:7], weights,
                        settings=settings)
    f_true = truth.sum(axis=0)
    assert holed.model.sum(axis=0)[hole].sum() == pytest.approx(f_true[hole].sum(), rel=0.15)
    b = fourier.transfer(shifts[7:], weights, shape, dtype=np.complex128)
    expected = fourier.forward(truth, b)[:, ~hole]
    err_holed = fourier.forward(holed.model.astype(np.float64), b)[:, ~hole] - expected
    err_full = fourier.forward(full.model.astype(np.float64), b)[:, ~hole] - expected
    assert np.sqrt(np.mean(err_holed**2)) < 1.1 * np.sqrt(np.mean(err_full**2))
    assert np.max(np.abs(err_holed)) < 1.5 * np.max(np.abs(err_full))


def test_a_tapered_tile_of_awkward_size_is_solved_on_a_fast_grid():
    """The taper's grid is the tile grown to sizes fast for FFTs; the extra pixels are fill only, so
    the model over the tile matches the one of a tile whose size needs no growth."""
    rng = np.random.default_rng(3)
    m, n_samples = 3, 4
    truth = random_field((128, 128), 30, m, rng)
    shifts = dcr_like_shifts(7, m, n_samples, rng)
    weights = np.full((m, n_samples), 1.0 / n_samples)
    _, noisy = observe(truth, shifts, weights, 1.0, rng)
    settings = ExactSettings(boundary="taper", taper_width=16)
    odd = noisy[:, :97, :101]  # 97 and 101 are prime
    sol = solve_exact(odd, None, np.ones(7), shifts, weights, settings=settings)
    assert sol.grid == (100, 108) and sol.model.shape == (m, 97, 101)
    ref = solve_exact(noisy[:, :96, :100], None, np.ones(7), shifts, weights, settings=settings)
    inner = (slice(32, 64), slice(32, 68))
    peak = np.max(truth.sum(axis=0))
    assert np.max(np.abs(sol.model.sum(axis=0)[inner] - ref.model.sum(axis=0)[inner])) < 2e-3 * peak


def test_colour_alternation_converges_on_a_padded_tile_with_bright_stars():
    """With the pad, the colour alternation converges with the default settings on a tile whose
    stars span 5000 in brightness, one of them cut by the tile's edge: its colour fit is not swamped
    by rounding round the bright cores, and its measure leaves out the border (the caller's buffer),
    where the model continues light shifted in from the unknown pad. The answer is that of a double
    precision solve."""
    rng = np.random.default_rng(5)
    m, n_samples, shape = 3, 4, (96, 96)
    positions = np.vstack([rng.uniform(8, 88, (20, 2)), [[40.0, 0.5], [60.0, 50.0]]])
    fluxes = np.concatenate([rng.uniform(200.0, 3000.0, 20), [3e5, 1e6]])
    spectra = rng.dirichlet(np.full(m, 2.0), len(fluxes))
    truth = star_field(shape, positions, fluxes, spectra)
    shifts = dcr_like_shifts(9, m, n_samples, rng)
    weights = np.full((m, n_samples), 1.0 / n_samples)
    _, noisy = observe(truth, shifts, weights, 1.0, rng)
    masks = rng.random(noisy.shape) > 0.01
    single = solve_exact(noisy, masks, np.ones(9), shifts, weights, settings=ExactSettings())
    # (a colour fit in single precision divided by rounding noise, even 0, next to a bright star)
    assert np.all(np.isfinite(single.model))
    assert single.converged, single.stop_reason
    assert len(single.history) - 1 < ExactSettings().colour_iterations
    double = solve_exact(noisy, masks, np.ones(9), shifts, weights,
                         settings=ExactSettings(precision="double"))
    noise = 1.0 / math.sqrt(9)  # of the full-band image
    inner = (slice(None), slice(16, -16), slice(16, -16))
    assert np.sqrt(np.mean((single.model - double.model)[inner] ** 2)) < noise
