"""One tile of the DCR stage: its task (everything picklable), loading its pixels, solving it.

`solve_tile` is a pure function of its `TileTask` (boxes, warp sources, settings, initial
model region), so the dispatcher can map it serially, over local processes or over a Dask
cluster with identical results.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import partial

import numpy as np

from dcrcoadd.coadd.artifacts import ArtifactMask, PixelSet
from dcrcoadd.coadd.inputs import CoaddInput
from dcrcoadd.config.schema import DcrConfig
from dcrcoadd.core.geom import Box
from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.core.psf import Psf
from dcrcoadd.dcr.forward import ForwardModel
from dcrcoadd.dcr.problem import Progress, TileProblem
from dcrcoadd.dcr.solvers import SOLVERS

log = logging.getLogger("dcrcoadd.dcr.tasks")


@dataclass
class TileTask:
    """Inputs of one tile solve; everything is picklable."""

    index: int
    box: Box
    dcr_box: Box
    warps: list[CoaddInput]
    planes: MaskPlanes  # the common mask layout of the inputs
    forward: ForwardModel
    models: np.ndarray  # (M, ny, nx) initial model over dcr_box
    reference: np.ndarray
    detected: np.ndarray
    background: np.ndarray
    artifact_masks: list[ArtifactMask | None]
    bad_mask_planes: list[str]
    dcr: DcrConfig
    buffer: int
    variances: np.ndarray | None = None  # (N,) typical variance of each warp
    psf: Psf | None = None  # the model's PSF (the reference PSF of a PSF-aware model)
    warp_psfs: list[Psf] | None = None  # each warp's PSF for a PSF-aware forward model
    # each warp's clipped artifacts that reach beyond the sources (`dcr.assemble.artifacts_beyond_sources`):
    # left out of the model inside the sources too
    artifacts: list[PixelSet | None] | None = None


@dataclass
class TileOutcome:
    index: int
    box: Box
    models: np.ndarray  # over box
    n_images: np.ndarray  # (M, ny, nx) over box
    history: list[dict]  # per-iteration records (plain, JSON-ready dicts)
    converged: bool
    stop_reason: str
    seconds: float


def load_tile_arrays(task: TileTask) -> tuple[np.ndarray, np.ndarray]:
    """Warp images (in nJy, bad pixels zeroed) and 1/0 good-pixel weights over the buffered box."""
    shape = task.dcr_box.shape
    images = np.zeros((len(task.warps), *shape), np.float32)
    weights = np.zeros((len(task.warps), *shape), np.float32)
    bad = np.uint32(task.planes.value_if_present(task.bad_mask_planes))
    clipped_bit = np.uint32(task.planes.value_if_present(["CLIPPED"]))
    for i, inp in enumerate(task.warps):
        exp = inp.read(task.dcr_box)
        if exp is None:
            continue
        mask = exp.mask.copy()
        if task.artifact_masks[i] is not None:
            task.artifact_masks[i].apply(mask, exp.bbox, task.planes, int(bad))
        sl = exp.bbox.slices(task.dcr_box)
        good = ((mask & bad) == 0) & np.isfinite(exp.image)
        # Clipped artifacts are excluded only away from static sources: inside them a
        # "transient" is usually a source moved by DCR, which the model needs (LSST keeps
        # CLIPPED out of the DCR model's bad planes for this reason) -- unless the artifact
        # reaches well beyond them (a satellite streak across the field).
        good &= ~(((mask & clipped_bit) != 0) & ~task.detected[sl])
        if task.artifacts is not None and task.artifacts[i] is not None:
            good &= ~task.artifacts[i].to_mask(exp.bbox)
        images[i][sl] = np.where(good, exp.image, 0.0)
        weights[i][sl] = good
    return images, weights


def solver_settings(dcr: DcrConfig):
    """The typed settings section of the configured solver."""
    names = {f.name for f in fields(dcr)}
    if dcr.solver not in names:  # pragma: no cover - Config.validate refuses unknown solvers
        raise ValueError(f"no settings section for solver {dcr.solver!r}")
    return getattr(dcr, dcr.solver)


#: A solve of the exact solver that stops (at ``colour_iterations``) while its refits still change the
#: model by more than this (rms, in units of the full-band noise; 100 times the default tolerance) is
#: warned about: inconsistent data, not a slow tile. Measured: PSF extensions 2.5x too wide on 3 of 9-10
#: warps ended at 44 and 128, and the held-out templates failed; of the scenario fields (seeds 2 and 5,
#: `python -m benchmarks.scenarios`), three stopped at 2.6-3.2 with good templates (0-2 false
#: detections) but for the four-visit field.
FAR_FROM_CONVERGED = 10.0


def _warn_if_far_from_converged(task: TileTask, result) -> None:
    last = result.history[-1].get("convergence") if result.history else None
    if task.dcr.solver != "exact" or result.converged or last is None or not last > FAR_FROM_CONVERGED:
        return
    # (the run's warning list names the subregion)
    log.warning("the DCR model did not converge in this subregion (its last refit still changed it by %.3g "
                "of the noise, rms; tolerance %g): expect residuals in its templates. Warps that disagree "
                "do this: check their PSF extensions and flux calibration (FLUXCAL)", last,
                task.dcr.exact.colour_tolerance)


def solve_tile(task: TileTask, progress: Callable[[int, dict], None] | None = None) -> TileOutcome:
    """Solve the DCR model of one tile (a pure function of ``task``); ``progress(index, record)``
    hears each iteration's history record (in this process)."""
    start = time.perf_counter()
    images, weights = load_tile_arrays(task)
    inner = task.box.slices(task.dcr_box)
    problem = TileProblem(images=images, weights=weights, forward=task.forward, detected=task.detected,
                          reference=task.reference, background=task.background, inner=inner,
                          buffer=task.buffer, variances=task.variances, psf=task.psf,
                          warp_psfs=task.warp_psfs, psf_ratio_floor=task.dcr.psf_ratio_floor)
    del images, weights  # handed over: a solver may release them (`TileProblem`)
    report: Progress | None = None if progress is None else partial(progress, task.index)
    result = SOLVERS[task.dcr.solver](problem, task.models, solver_settings(task.dcr), report)
    _warn_if_far_from_converged(task, result)
    return TileOutcome(
        index=task.index, box=task.box, models=result.models[(slice(None), *inner)].copy(),
        n_images=result.n_images[(slice(None), *inner)].copy(), history=result.history,
        converged=result.converged, stop_reason=result.stop_reason,
        seconds=time.perf_counter() - start)
