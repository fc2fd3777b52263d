"""DMTN-037's iterative forward-modelling solver, as LSST's DcrAssembleCoaddTask runs it.

Each iteration forward-models a DCR-matched template for every warp from the
(amplified) model, stacks the weighted residuals after shifting them back by
each subfilter's DCR, adds them to the model with per-pixel inverse-count
weights, then conditions the update (clamp, frequency regularization, gain
averaging, taper to the reference away from sources).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dcrcoadd.dcr.model import matched_template
from dcrcoadd.dcr.solvers.conditioning import (
    amplify,
    apply_model_weights,
    clamp_iteration,
    gain_average,
    model_weights,
    noise_level,
    progressive_gain,
    regularize_frequency,
)
from dcrcoadd.ops.shift import shift_image, shift_image_adjoint, spline_prefilter

log = logging.getLogger("dcrcoadd.dcr.solvers.iterative")


@dataclass
class SubregionProblem:
    """Everything the solver needs for one subregion (grown by its buffer).

    Attributes
    ----------
    images : ndarray, shape (N, ny, nx)
        Warps over the buffered region, flux-scaled, bad pixels set to 0.
    weights : ndarray, shape (N, ny, nx)
        1 for good pixels, 0 for bad ones.
    shifts : ndarray, shape (N, M, 2)
        Per-warp, per-subfilter DCR shifts ``(dy, dx)`` (no split).
    split_shifts : ndarray, shape (N, M, 2, 2), optional
        The same in split mode, for forward modelling; None to not split.
    detected : ndarray of bool, shape (ny, nx)
        DETECTED footprints of the baseline coadd.
    reference : ndarray, shape (ny, nx)
        Baseline coadd image (the value the model tapers to away from sources).
    background : ndarray of bool, shape (ny, nx)
        Good, undetected coadd pixels (for noise estimates).
    inner : tuple of slice
        The subregion proper inside the buffered arrays.
    buffer : int
        Buffer width in pixels.
    """

    images: np.ndarray
    weights: np.ndarray
    shifts: np.ndarray
    split_shifts: np.ndarray | None
    detected: np.ndarray
    reference: np.ndarray
    background: np.ndarray
    inner: tuple[slice, slice]
    buffer: int = 0


def iteration_record(iteration: int, convergence: float, gain: float | None) -> dict:
    """One entry of the history: ``iteration`` and ``convergence`` (every solver's), plus the gain."""
    return {"iteration": iteration, "convergence": convergence, "gain": gain}


@dataclass
class SolveResult:
    models: np.ndarray
    history: list[dict] = field(default_factory=list)
    converged: bool = False
    stop_reason: str = ""
    n_images: np.ndarray | None = None
    contribution_weights: np.ndarray | None = None

    @property
    def n_iterations(self) -> int:
        return len(self.history) - 1


def _shift(image: np.ndarray, shift: np.ndarray, order: int) -> np.ndarray:
    return shift_image(image, shift, order, prefiltered=True)


def _back_projector(order: int, exact_adjoint: bool):
    """``B*``: the exact transpose of the forward shift, or LSST's reverse shift.

    Both agree away from the image edges. At the edges only the transpose makes each
    iteration a true gradient step of the least-squares problem; with the reverse shift,
    residuals of sources near a subregion edge are fed back inconsistently and can grow
    from one iteration to the next (seen on near-zenith data).
    """
    if exact_adjoint:
        return lambda image, shift: shift_image_adjoint(image, shift, order)

    def reverse(image: np.ndarray, shift: np.ndarray) -> np.ndarray:
        coeffs = spline_prefilter(image) if order > 1 else image
        return _shift(coeffs, -np.asarray(shift), order)

    return reverse


def contribution_weights(weights: np.ndarray, shifts: np.ndarray, order: int = 1,
                         exact_adjoint: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per-subfilter inverse contribution counts and integer nImages (LSST ``calculateNImage``).

    Each warp's good-pixel map is shifted back by that warp's DCR in each
    subfilter, exactly as its residuals will be, and summed. Where every
    subfilter has at least one contribution the weight is the inverse of the
    sum; elsewhere it is 0 and nImage is 0.

    Returns
    -------
    inverse : ndarray, shape (M, ny, nx)
    n_images : ndarray of uint16, shape (M, ny, nx)
    """
    n_warps, m = shifts.shape[:2]
    back = _back_projector(order, exact_adjoint)
    total = np.zeros((m, *weights.shape[1:]), dtype=np.float64)
    counts = np.zeros((m, *weights.shape[1:]), dtype=np.int32)
    for i in range(n_warps):
        for a in range(m):
            shifted = back(weights[i], shifts[i, a])
            total[a] += shifted
            counts[a] += np.rint(shifted).astype(np.int32)
    good = np.all(total >= 1.0 - 1e-4, axis=0)
    inverse = np.zeros_like(total)
    np.divide(1.0, total, out=inverse, where=good[None] & (total > 0))
    counts[:, ~good] = 0
    return inverse.astype(np.float32), np.clip(counts, 0, None).astype(np.uint16)


def _templates(models: np.ndarray, problem: SubregionProblem, config) -> np.ndarray:
    shifts = problem.split_shifts if problem.split_shifts is not None else problem.shifts
    amplified = amplify(models, config.accelerate_model)
    return np.stack([matched_template(amplified, s, order=config.image_interp_order,
                                      split_threshold=config.split_threshold) for s in shifts])


def convergence_metric(models: np.ndarray, templates: np.ndarray, problem: SubregionProblem,
                       buffer: int) -> float:
    """LSST ``calculateConvergence``: mean over warps of a significance-weighted misfit.

    The significance image is ``|reference| + 3σ`` with σ the background noise
    of one subfilter; for each warp, over good DETECTED finite pixels of the
    subregion, ``Σ|s − t|·sig / Σ(|s + t|·sig / 2)``. Returns 0 when no warp
    has usable pixels.
    """
    sl = problem.inner
    reference = models.mean(axis=0)[sl]
    noise = noise_level(models[min(1, len(models) - 1)][sl], problem.background[sl], buffer)
    sig = np.abs(reference) + 3.0 * noise
    if sig.max(initial=0.0) == 0:
        sig = sig + 1.0
    metrics = []
    for image, weight, template in zip(problem.images, problem.weights, templates, strict=True):
        s, t = image[sl], template[sl]
        diff = np.abs(s - t) * sig
        ref = np.abs(s + t) * sig / 2.0
        use = np.isfinite(diff) & (weight[sl] > 0) & problem.detected[sl]
        if not use.any():
            continue
        scale = np.median(diff[use])
        if scale > 0:
            metrics.append(float(np.sum(diff[use] / scale) / np.sum(ref[use] / scale)))
        else:
            metrics.append(float(np.sum(diff[use]) / max(np.sum(ref[use]), 1e-300)))
    return float(np.mean(metrics)) if metrics else 0.0


def update_model(models: np.ndarray, templates: np.ndarray, problem: SubregionProblem,
                 inverse_counts: np.ndarray, gain: float, taper: np.ndarray | None, config) -> np.ndarray:
    """One iteration: stack reverse-shifted residuals into a new, conditioned model."""
    back = _back_projector(config.image_interp_order, config.use_exact_adjoint)
    m = models.shape[0]
    stacked = np.zeros(models.shape, dtype=np.float64)
    for image, weight, template, shifts in zip(problem.images, problem.weights, templates,
                                               problem.shifts, strict=True):
        residual = (image - template) * weight
        for a in range(m):
            stacked[a] += back(residual, shifts[a])
    new = (models + stacked * inverse_counts).astype(np.float32)
    bad = ~np.isfinite(new)
    new[bad] = models[bad]
    if config.regularize_model_iterations > 0:
        for a in range(m):
            clamp_iteration(new[a], models[a], config.regularize_model_iterations,
                            config.regularization_width)
    if config.regularize_model_frequency > 0:
        noise = noise_level(new[0], problem.background, buffer=5)
        regularize_frequency(new, config.regularize_model_frequency, config.regularization_width, noise)
    new = gain_average(new, models, gain).astype(np.float32)
    if taper is not None:
        apply_model_weights(new, problem.reference, taper)
    return new


def solve_iterative(problem: SubregionProblem, models: np.ndarray, config,
                    progress: Callable[[dict], None] | None = None) -> SolveResult:
    """Iterate the DCR model of one subregion to convergence.

    Parameters
    ----------
    problem : SubregionProblem
    models : ndarray, shape (M, ny, nx)
        Starting subfilter images over the buffered region.
    config : DcrConfig
        Uses ``min_num_iter``, ``max_num_iter``, ``convergence_threshold``,
        ``base_gain``, ``use_progressive_gain``, ``accelerate_model``,
        ``image_interp_order``, ``split_threshold``, ``regularize_model_iterations``,
        ``regularize_model_frequency``, ``regularization_width``,
        ``use_model_weights``, ``model_weights_width``, ``use_exact_adjoint``.
    progress : callable, optional
        Called with each iteration's record.

    Returns
    -------
    SolveResult
        The model after the last accepted iteration (a diverging step past
        the minimum number of iterations is discarded, as DMTN-037
        recommends; LSST keeps it), the history of (iteration, convergence,
        gain), and the per-subfilter nImages.
    """
    m = models.shape[0]
    min_iter = config.min_num_iter if config.min_num_iter is not None else m
    max_iter = config.max_num_iter if config.max_num_iter is not None else 3 * m
    base_gain = config.base_gain if config.base_gain is not None else 1.0 / max(m - 1, 1)
    inverse_counts, n_images = contribution_weights(problem.weights, problem.shifts,
                                                    config.image_interp_order, config.use_exact_adjoint)
    taper = model_weights(problem.detected, config.model_weights_width) \
        if config.use_model_weights else None
    models = models.astype(np.float32, copy=True)
    templates = _templates(models, problem, config)
    conv = convergence_metric(models, templates, problem, problem.buffer)
    history = [iteration_record(0, conv, None)]
    if progress:
        progress(history[-1])
    result = SolveResult(models, history, n_images=n_images, contribution_weights=inverse_counts)
    if conv == 0:
        result.stop_reason = "no usable pixels (no good DETECTED data in the subregion)"
        log.warning("subregion has no good detected pixels; the model stays at coadd / M")
        return result
    convergences, gains = [conv], []
    for iteration in range(1, max_iter + 1):
        gain = progressive_gain(convergences, gains, base_gain, config.use_progressive_gain)
        gains.append(gain)
        new = update_model(models, templates, problem, inverse_counts, gain, taper, config)
        new_templates = _templates(new, problem, config)
        new_conv = convergence_metric(new, new_templates, problem, problem.buffer)
        improvement = (convergences[-1] - new_conv) / new_conv if new_conv > 0 else np.inf
        log.info("iteration %d: convergence %.6g, improvement %.4f%%, gain %.3f",
                 iteration, new_conv, 100 * improvement, gain)
        if improvement < 0 and iteration > min_iter:
            result.stop_reason = f"diverged at iteration {iteration}; kept iteration {iteration - 1}"
            log.warning("model diverged at iteration %d (%.4f%%); keeping the previous model",
                        iteration, 100 * improvement)
            break
        models, templates = new, new_templates
        convergences.append(new_conv)
        history.append(iteration_record(iteration, new_conv, gain))
        if progress:
            progress(history[-1])
        if iteration >= min_iter and 0 <= improvement < config.convergence_threshold:
            result.converged = True
            result.stop_reason = f"converged after {iteration} iterations"
            break
    else:
        result.stop_reason = f"reached max_num_iter = {max_iter}"
    result.models = models
    result.history = history
    return result
