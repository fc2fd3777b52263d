"""The contract between the DCR stage and its solvers: one tile's inputs and one solve's result.

A solver is a function ``solve(problem, models, settings, progress=None) -> SolveResult``
(`dcrcoadd.dcr.solvers.SOLVERS` maps ``dcr.solver`` names to them; ``settings`` is the
solver's own typed section of the configuration). Adding a solver touches no orchestration:
checkpoints, metadata and the report read the history records generically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dcrcoadd.core.psf import Psf
from dcrcoadd.dcr.forward import ForwardModel


@dataclass
class TileProblem:
    """Everything a solver needs for one tile (grown by its buffer).

    Attributes
    ----------
    images : ndarray, shape (N, ny, nx)
        Warps over the buffered region in the model's flux units, bad pixels set to 0.
    weights : ndarray, shape (N, ny, nx)
        1 for good pixels, 0 for bad or missing ones.
    forward : ForwardModel
        The forward operator of this tile (DCR of every warp and subfilter).
    detected : ndarray of bool, shape (ny, nx)
        DETECTED footprints of the baseline coadd.
    reference : ndarray, shape (ny, nx)
        Baseline coadd image.
    background : ndarray of bool, shape (ny, nx)
        Good, undetected coadd pixels (for noise estimates).
    inner : tuple of slice
        The tile proper inside the buffered arrays.
    buffer : int
        Buffer width in pixels.
    variances : ndarray, shape (N,), optional
        A typical variance of each warp (for inverse-variance weighting); None: equal weights.
    psf : Psf, optional
        The model's PSF (sets the exact solver's colour window and cut-off); with ``warp_psfs``,
        the reference PSF the model is seen through.
    warp_psfs : list of Psf, optional
        Each warp's PSF for a PSF-aware forward model (warp ``i`` sees the model through
        ``P_i / P_ref``, `dcrcoadd.dcr.psf_ratio`); None: every warp shares the model's PSF.
    psf_ratio_floor : float
        Where ``|P_ref|`` falls below it the ratio is tapered and a prior sets the model.

    The caller hands ``images`` and ``weights`` over: it keeps no other reference, so a solver that
    needs them only to build its own arrays may set them to None (the exact solver does: two
    ``N``-image stacks less at its memory peak).
    """

    images: np.ndarray | None
    weights: np.ndarray | None
    forward: ForwardModel
    detected: np.ndarray
    reference: np.ndarray
    background: np.ndarray
    inner: tuple[slice, slice]
    buffer: int = 0
    variances: np.ndarray | None = None
    psf: Psf | None = None
    warp_psfs: list[Psf] | None = None
    psf_ratio_floor: float = 3e-4


@dataclass
class SolveResult:
    """What a solver returns for one tile.

    ``models`` are the subfilter images the outputs and templates use (any solver-specific
    post-step, such as the iterative solver's amplification, already applied); ``history`` is
    one JSON-ready dict per iteration with at least ``iteration`` and ``convergence`` (the
    solver's own misfit measure, smaller is better) plus the solver's fields.
    """

    models: np.ndarray
    history: list[dict] = field(default_factory=list)
    converged: bool = False
    stop_reason: str = ""
    n_images: np.ndarray | None = None

    @property
    def n_iterations(self) -> int:
        return len(self.history) - 1


Progress = Callable[[dict], None]
