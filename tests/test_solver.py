"""The iterative solver on synthetic subfilter skies with known shifts."""

import numpy as np
import pytest

from dcrcoadd.config.schema import IterativeSettings
from dcrcoadd.dcr.forward import ForwardModel, matched_template
from dcrcoadd.dcr.problem import TileProblem
from dcrcoadd.dcr.solvers import solve_iterative


def star(shape, y0, x0, flux, sigma=1.6):
    y, x = np.mgrid[: shape[0], : shape[1]]
    return flux * np.exp(-0.5 * ((y - y0) ** 2 + (x - x0) ** 2) / sigma**2) / (2 * np.pi * sigma**2)


def make_problem(amplitudes, seed=0, shape=(40, 40), noise=1.0):
    """Two stars: blue (flux mostly in subfilter 0) and red (mostly in subfilter 2)."""
    rng = np.random.default_rng(seed)
    blue, red = star(shape, 14, 14, 3000.0), star(shape, 26, 25, 3000.0)
    truth = np.stack([0.6 * blue + 0.1 * red, 0.3 * blue + 0.3 * red, 0.1 * blue + 0.6 * red]) + 2.0
    # per-warp shifts: subfilter offsets +1, 0, -1 times the warp's amplitude, in varying directions
    angles = np.linspace(0, np.pi, len(amplitudes), endpoint=False)
    shifts = np.array([[[a * s * np.sin(t), a * s * np.cos(t)] for s in (1.0, 0.0, -1.0)]
                       for a, t in zip(amplitudes, angles, strict=True)])
    images = np.stack([matched_template(truth.astype(np.float32), s) for s in shifts])
    images += rng.normal(0, noise, images.shape).astype(np.float32)
    detected = (blue + red) > 5.0
    coadd = images.mean(axis=0)
    problem = TileProblem(
        images=images.astype(np.float32), weights=np.ones_like(images), forward=ForwardModel(shifts),
        detected=detected, reference=coadd, background=~detected,
        inner=(slice(4, -4), slice(4, -4)), buffer=4)
    return problem, truth, coadd


def test_no_dcr_converges_at_once_and_keeps_coadd_over_m():
    problem, _, coadd = make_problem(np.zeros(6))
    start = np.repeat(coadd[None] / 3, 3, axis=0)
    result = solve_iterative(problem, start, IterativeSettings())
    # the model equals coadd / M to within noise-free rounding: nothing chromatic to fit
    np.testing.assert_allclose(result.models, start, atol=1e-3)
    assert result.history[-1]["convergence"] == pytest.approx(result.history[0]["convergence"], rel=1e-3)


def test_recovers_colours_and_beats_the_coadd():
    problem, truth, coadd = make_problem(np.linspace(0.2, 1.6, 8), seed=1)
    start = np.repeat(coadd[None] / 3, 3, axis=0)
    result = solve_iterative(problem, start, IterativeSettings())
    assert result.n_iterations >= 3
    conv = [h["convergence"] for h in result.history]
    assert conv[-1] < 0.7 * conv[0]
    amplified = result.models  # the solver delivers the amplified model (accelerate_model = 3)
    b = (slice(12, 17), slice(12, 17))
    r = (slice(24, 29), slice(23, 28))
    assert amplified[0][b].sum() > 1.5 * amplified[2][b].sum()  # blue star brighter in the blue subfilter
    assert amplified[2][r].sum() > 1.5 * amplified[0][r].sum()  # and the red one in the red
    # a held-out visit at a new DCR: the DCR template fits it better than the coadd does
    held = np.array([[1.5, 0.3], [0.0, 0.0], [-1.5, -0.3]])
    science = matched_template(truth.astype(np.float32), held)
    dcr_template = matched_template(amplified.astype(np.float32), held)
    inner = (slice(6, -6), slice(6, -6))
    rms_dcr = np.sqrt(np.mean((science - dcr_template)[inner] ** 2))
    rms_coadd = np.sqrt(np.mean((science - coadd)[inner] ** 2))
    assert rms_dcr < 0.5 * rms_coadd


def test_contribution_weights_are_inverse_counts():
    weights = np.ones((4, 12, 12), np.float32)
    weights[0, :, :3] = 0  # one warp misses a strip
    shifts = np.zeros((4, 3, 2))
    inverse, n_images = ForwardModel(shifts).counts(weights)
    assert n_images[:, 5, 1].tolist() == [3, 3, 3] and n_images[:, 5, 8].tolist() == [4, 4, 4]
    np.testing.assert_allclose(inverse[:, 5, 1], 1 / 3)
    # a pixel a subfilter cannot see after shifting gets no weight in any subfilter
    shifts[:, 0] = [0.0, 2.0]
    inverse, n_images = ForwardModel(shifts[:2]).counts(np.ones((2, 12, 12), np.float32))
    # (the reverse shift moves content by -2 px in x, so the last two columns see nothing)
    assert np.all(inverse[:, :, -2:] == 0) and np.all(n_images[:, :, -2:] == 0)
    assert np.all(inverse[:, :, :-2] == 0.5)


def test_a_diverging_solve_says_so_and_keeps_a_finite_start():
    # no conditioning and an aggressive fixed gain: the misfit grows to ~2 (from 0.15)
    problem, _, coadd = make_problem(np.linspace(0.2, 1.6, 8), seed=1)
    start = np.repeat(coadd[None] / 3, 3, axis=0)
    settings = IterativeSettings(accelerate_model=10, regularize_model_iterations=0,
                                 regularize_model_frequency=0, use_model_weights=False, min_num_iter=12,
                                 max_num_iter=12, base_gain=5.0, use_progressive_gain=False)
    result = solve_iterative(problem, start, settings)
    assert not result.converged and result.stop_reason.startswith("diverged")
    # the start (achromatic, so amplifying it changes nothing)
    np.testing.assert_allclose(result.models, start, rtol=1e-6, atol=1e-4)
