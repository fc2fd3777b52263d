"""DMTN-037's iterative forward-modelling solver, as LSST's DcrAssembleCoaddTask runs it.

Each iteration forward-models a DCR-matched template for every warp from the
(amplified) model, stacks the weighted residuals after shifting them back by
each subfilter's DCR, adds them to the model with per-pixel inverse-count
weights, then conditions the update (clamp, frequency regularization, gain
averaging, taper to the reference away from sources).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from dcrcoadd.config.schema import IterativeSettings
from dcrcoadd.dcr import psf_ratio
from dcrcoadd.dcr.problem import Progress, SolveResult, TileProblem
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

log = logging.getLogger("dcrcoadd.dcr.solvers.iterative")


def iteration_record(iteration: int, convergence: float, gain: float | None) -> dict:
    """One entry of the history: ``iteration`` and ``convergence`` (every solver's), plus the gain."""
    return {"iteration": iteration, "convergence": convergence, "gain": gain}


def _templates(models: np.ndarray, problem: TileProblem, settings: IterativeSettings) -> np.ndarray:
    # the iteration runs on an un-amplified model but fits the data with the amplified one
    return problem.forward.apply(amplify(models, settings.accelerate_model))


def convergence_metric(models: np.ndarray, templates: np.ndarray, problem: TileProblem,
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


def update_model(models: np.ndarray, templates: np.ndarray, problem: TileProblem,
                 inverse_counts: np.ndarray, gain: float, taper: np.ndarray | None,
                 config: IterativeSettings) -> np.ndarray:
    """One iteration: stack back-projected residuals into a new, conditioned model."""
    m = models.shape[0]
    stacked = np.zeros(models.shape, dtype=np.float64)
    for i, (image, weight, template) in enumerate(zip(problem.images, problem.weights, templates,
                                                      strict=True)):
        stacked += problem.forward.adjoint((image - template) * weight, i)
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


def solve_iterative(problem: TileProblem, models: np.ndarray, config: IterativeSettings,
                    progress: Progress | None = None) -> SolveResult:
    """Iterate the DCR model of one subregion to convergence.

    Parameters
    ----------
    problem : SubregionProblem
    models : ndarray, shape (M, ny, nx)
        Starting subfilter images over the buffered region.
    config : IterativeSettings
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
    problem = with_psf_transfers(problem)
    min_iter = config.min_num_iter if config.min_num_iter is not None else m
    max_iter = config.max_num_iter if config.max_num_iter is not None else 3 * m
    base_gain = config.base_gain if config.base_gain is not None else 1.0 / max(m - 1, 1)
    inverse_counts, n_images = problem.forward.counts(problem.weights)
    taper = model_weights(problem.detected, config.model_weights_width) \
        if config.use_model_weights else None
    models = start = models.astype(np.float32, copy=True)
    templates = _templates(models, problem, config)
    conv = convergence_metric(models, templates, problem, problem.buffer)
    history = [iteration_record(0, conv, None)]
    if progress:
        progress(history[-1])
    result = SolveResult(models, history, n_images=n_images)
    if conv == 0:
        result.stop_reason = "no usable pixels (no good DETECTED data in the subregion)"
        log.warning("subregion has no good detected pixels; the model stays at coadd / M")
        result.models = _delivered(models, config)
        return result
    convergences, gains = [conv], []
    for iteration in range(1, max_iter + 1):
        gain = progressive_gain(convergences, gains, base_gain, config.use_progressive_gain)
        gains.append(gain)
        new = update_model(models, templates, problem, inverse_counts, gain, taper, config)
        new_templates = _templates(new, problem, config)
        new_conv = convergence_metric(new, new_templates, problem, problem.buffer)
        if not (np.isfinite(new_conv) and np.all(np.isfinite(new))):
            result.stop_reason = f"diverged at iteration {iteration} (non-finite model); kept iteration " \
                                 f"{iteration - 1}"
            log.warning("the model became non-finite at iteration %d; keeping iteration %d",
                        iteration, iteration - 1)
            break
        improvement = (convergences[-1] - new_conv) / new_conv if new_conv > 0 else np.inf
        log.info("iteration %d: convergence %.6g, improvement %.4f%%, gain %.3f",
                 iteration, new_conv, 100 * improvement, gain)
        if improvement < 0 and iteration > min_iter:
            # DMTN-037: a step that worsens the fit past the minimum is discarded; this is the
            # normal end of many solves, not an alarm
            result.stop_reason = f"stopped at iteration {iteration} (it worsened the fit by " \
                                 f"{-100 * improvement:.3g} %); kept iteration {iteration - 1}"
            log.info("iteration %d worsened the fit (%.4f%%); keeping iteration %d",
                     iteration, 100 * improvement, iteration - 1)
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
    if convergences[-1] > convergences[0]:
        # the whole run made the fit worse than the starting coadd / M: say so and keep the start
        result.converged = False
        result.stop_reason = (f"diverged: misfit {convergences[-1]:.4g} after {len(convergences) - 1} "
                              f"iterations against {convergences[0]:.4g} at the start; "
                              "kept the starting model")
        log.warning("the iterative solver diverged in this tile (misfit %.4g > %.4g at the start); "
                    "keeping the starting model", convergences[-1], convergences[0])
        models = start
    result.models = _delivered(models, config)
    result.history = history
    return result


def with_psf_transfers(problem: TileProblem) -> TileProblem:
    """``problem`` with each warp's PSF ratio in its forward model (``dcr.psf_model = "warp"``):
    warp ``i`` sees the shifted subfilter images through ``P_i / P_ref``, regularized as in the
    exact solver (`dcrcoadd.dcr.psf_ratio.ratio_transfer`), one ratio for every subfilter (this
    forward model has no chromatic seeing). Unchanged without warp PSFs (LSST parity)."""
    if problem.warp_psfs is None:
        return problem
    if problem.psf is None or len(problem.warp_psfs) != problem.images.shape[0]:
        raise ValueError("a PSF-aware solve needs the reference PSF and one PSF per warp")
    grid = problem.images.shape[1:]
    ref, floor = problem.psf.kernel, problem.psf_ratio_floor
    weight = psf_ratio.reference_weight(ref, grid, floor)  # once for every warp
    transfers = np.stack([psf_ratio.ratio_transfer(p.kernel, ref, grid, floor, weight=weight)
                          for p in problem.warp_psfs])
    return dataclasses.replace(problem, forward=dataclasses.replace(problem.forward, psf_transfers=transfers))


def _delivered(models: np.ndarray, config: IterativeSettings) -> np.ndarray:
    """The model the outputs and templates use: the iteration's model amplified as it was when it
    fitted the data (``accelerate_model``)."""
    return amplify(models, config.accelerate_model).astype(np.float32)
