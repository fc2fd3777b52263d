"""Orchestration of one patch: baseline coadd → DCR model → per-subregion solve → outputs.

The per-subregion work (`solve_subregion`) is a pure function of a
`SubregionTask` (boxes, warp sources, settings, initial model region), so it
can be mapped serially, over local processes or over a Dask cluster with
identical results.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dcrcoadd.coadd.artifacts import ArtifactMask
from dcrcoadd.coadd.baseline import CoaddResult, assemble_coadd
from dcrcoadd.coadd.inputs import CoaddInput
from dcrcoadd.config.schema import Config, DcrConfig
from dcrcoadd.core.exposure import Exposure
from dcrcoadd.core.geom import Box
from dcrcoadd.core.masks import MaskPlanes
from dcrcoadd.core.psf import Psf
from dcrcoadd.core.visit import VisitInfo
from dcrcoadd.dcr.model import DcrModel
from dcrcoadd.dcr.solvers import SOLVERS
from dcrcoadd.dcr.solvers.conditioning import amplify
from dcrcoadd.errors import InputError
from dcrcoadd.ops.detection import detection_mask
from dcrcoadd.physics.dcr import dcr_shifts

log = logging.getLogger("dcrcoadd.dcr.assemble")

WarpSource = str | os.PathLike | Exposure


@dataclass
class SubregionTask:
    """Inputs of one subregion solve; everything is picklable."""

    index: int
    box: Box
    dcr_box: Box
    warps: list[CoaddInput]
    planes: MaskPlanes  # the common mask layout of the inputs
    shifts: np.ndarray  # (N, M, 2)
    split_shifts: np.ndarray | None  # (N, M, 2, 2)
    models: np.ndarray  # (M, ny, nx) initial model over dcr_box
    reference: np.ndarray
    detected: np.ndarray
    background: np.ndarray
    artifact_masks: list[ArtifactMask | None]
    bad_mask_planes: list[str]
    dcr: DcrConfig
    buffer: int


@dataclass
class SubregionOutcome:
    index: int
    box: Box
    models: np.ndarray  # over box
    n_images: np.ndarray  # (M, ny, nx) over box
    history: list[dict]  # per-iteration records (plain, JSON-ready dicts)
    converged: bool
    stop_reason: str
    seconds: float


@dataclass
class DcrCoaddResult:
    """Everything `assemble_dcr_coadd` produced."""

    coadd: Exposure
    subfilter_coadds: list[Exposure]
    n_image: np.ndarray
    subfilter_n_images: np.ndarray
    model: DcrModel
    baseline: CoaddResult
    metadata: dict = field(default_factory=dict)


# -- inputs ----------------------------------------------------------------------------------------

def dcr_visits(inputs: Sequence[CoaddInput]) -> list[VisitInfo]:
    """Completed visit geometry of every input; `InputError` for a warp that cannot give DCR."""
    visits = []
    for inp in inputs:
        if inp.visit is None:
            raise InputError("no visit metadata: the DCR model needs the airmass and parallactic angle "
                             "of every warp", inp.name)
        visit = inp.visit.completed()
        if visit.parallactic_angle is None:
            raise InputError("cannot derive the parallactic angle (need boresight alt/az, or time and "
                             "RA/Dec, and the site)", inp.name)
        visits.append(visit)
    return visits


def load_problem_arrays(task: SubregionTask) -> tuple[np.ndarray, np.ndarray]:
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
        # CLIPPED out of the DCR model's bad planes for this reason).
        good &= ~(((mask & clipped_bit) != 0) & ~task.detected[sl])
        images[i][sl] = np.where(good, exp.image, 0.0)
        weights[i][sl] = good
    return images, weights


def solve_subregion(task: SubregionTask) -> SubregionOutcome:
    """Solve the DCR model of one subregion (a pure function of ``task``)."""
    from dcrcoadd.dcr.solvers import SubregionProblem

    start = time.perf_counter()
    images, weights = load_problem_arrays(task)
    inner = task.box.slices(task.dcr_box)
    problem = SubregionProblem(
        images=images, weights=weights, shifts=task.shifts, split_shifts=task.split_shifts,
        detected=task.detected, reference=task.reference, background=task.background,
        inner=inner, buffer=task.buffer)
    solver = SOLVERS[task.dcr.solver]
    result = solver(problem, task.models, task.dcr)
    return SubregionOutcome(
        index=task.index, box=task.box, models=result.models[(slice(None), *inner)].copy(),
        n_images=result.n_images[(slice(None), *inner)].copy(), history=result.history,
        converged=result.converged, stop_reason=result.stop_reason,
        seconds=time.perf_counter() - start)


# -- orchestration ---------------------------------------------------------------------------------

def _detected(coadd: Exposure, psf, planes: Sequence[str]) -> tuple[np.ndarray, bool]:
    detected = coadd.mask_of(*planes)
    if detected.any():
        return detected, False
    valid = np.isfinite(coadd.image) & ~coadd.mask_of("NO_DATA")
    fwhm = psf.fwhm if psf is not None else 2.0
    kernel = psf.kernel if psf is not None else None
    detected = detection_mask(coadd.image, coadd.variance, kernel, threshold=5.0,
                              grow_radius=fwhm, valid=valid)
    log.info("the inputs carry no DETECTED plane: detected %d source pixels on the baseline coadd "
             "(5 sigma, grown by %.1f px)", int(detected.sum()), fwhm)
    return detected, True


def _shifts_for(visits: Sequence[VisitInfo], model: DcrModel, box: Box, split: bool) -> np.ndarray:
    cx, cy = box.center
    position = (cx - model.origin[0], cy - model.origin[1])
    return np.stack([dcr_shifts(v, model.wcs, model.bandpass, len(model), position=position,
                                split=split, edges=model.subfilter_edges) for v in visits])


def _check_diversity(inputs: Sequence[CoaddInput], visits: Sequence[VisitInfo]) -> None:
    if len(visits) < 2:
        raise InputError(f"only {len(visits)} usable warp: the DCR model is underdetermined (need at "
                         "least 2 at different airmass or parallactic angle)",
                         inputs[0].name if inputs else "inputs")
    airmass = np.array([v.airmass for v in visits], float)
    angle = np.radians([v.parallactic_angle.deg for v in visits])
    if np.ptp(airmass) < 0.01 and np.ptp(np.unwrap(angle)) < np.radians(1.0):
        log.warning("all %d warps share the same airmass and parallactic angle: the subfilters are "
                    "degenerate and the DCR model cannot separate them", len(visits))


@dataclass
class DcrSetup:
    """The starting DCR model and the per-patch arrays every subregion task cuts from."""

    model: DcrModel
    visits: list[VisitInfo]
    psf: Psf | None
    detected: np.ndarray
    detected_on_coadd: bool
    reference: np.ndarray
    background: np.ndarray
    buffer: int


def prepare_dcr_model(baseline: CoaddResult, config: Config) -> DcrSetup:
    """Check the inputs can constrain DCR and start the model at coadd / M (LSST ``prepareDcrInputs``)."""
    coadd, dcr = baseline.coadd, config.dcr
    inputs = baseline.inputs
    visits = dcr_visits(inputs)
    _check_diversity(inputs, visits)
    if coadd.bandpass is None:
        raise InputError("the warps carry no band wavelengths (BANDLAM/BANDWID); give the band "
                         "with --band or an instrument preset", inputs[0].name)
    psf = baseline.psf_best_seeing or coadd.psf
    edges = coadd.bandpass.subfilter_edges(dcr.dcr_num_subfilters, method=dcr.subfilter_partition)
    model = DcrModel.from_image(coadd, dcr.dcr_num_subfilters, psf=psf, subfilter_edges=edges,
                                interp_order=dcr.image_interp_order)
    detected, detected_here = _detected(coadd, coadd.psf, dcr.convergence_mask_planes)
    if detected_here:
        model.mask_planes = model.mask_planes.with_plane("DETECTED")
        model.mask[detected] |= np.uint32(1 << model.mask_planes.bit("DETECTED"))
    no_data = coadd.mask_of("NO_DATA") | ~np.isfinite(coadd.image)
    max_shift = np.abs(_shifts_for(visits, model, model.bbox, split=False)).max()
    return DcrSetup(
        model=model, visits=visits, psf=psf, detected=detected, detected_on_coadd=detected_here,
        reference=np.where(np.isfinite(coadd.image), coadd.image, 0.0).astype(np.float32),
        background=~detected & ~no_data,
        buffer=int(math.ceil(dcr.buffer_factor * (math.ceil(max_shift) + 1))))


def subregion_tasks(setup: DcrSetup, baseline: CoaddResult, config: Config,
                    skip: Iterable[int] = ()) -> list[SubregionTask]:
    """One task per subregion of the patch (grown by the buffer), except those in ``skip``."""
    dcr, model, patch = config.dcr, setup.model, setup.model.bbox
    skip = set(skip)
    tasks = []
    for index, box in enumerate(patch.subregions(tuple(config.coadd.subregion_size))):
        if index in skip:
            continue
        dcr_box = box.grow(setup.buffer).clip(patch)
        sl = dcr_box.slices(patch)
        tasks.append(SubregionTask(
            index=index, box=box, dcr_box=dcr_box, warps=baseline.inputs, planes=baseline.coadd.mask_planes,
            shifts=_shifts_for(setup.visits, model, box, split=False),
            split_shifts=_shifts_for(setup.visits, model, box, split=True) if dcr.split_subfilters else None,
            models=model.images[(slice(None), *sl)].copy(), reference=setup.reference[sl],
            detected=setup.detected[sl], background=setup.background[sl],
            artifact_masks=baseline.artifact_masks or [None] * len(baseline.inputs),
            bad_mask_planes=config.effective_bad_mask_planes(), dcr=dcr, buffer=setup.buffer))
    return tasks


def fill_coadds(setup: DcrSetup, baseline: CoaddResult, outcomes: dict[int, SubregionOutcome],
                config: Config) -> DcrCoaddResult:
    """Assemble the solved subregions into the model and its coadds (LSST ``fillCoadd``, ``stackCoadd``)."""
    dcr, model, coadd = config.dcr, setup.model, baseline.coadd
    m, patch = len(model), model.bbox
    n_images = np.zeros((m, *patch.shape), np.uint16)
    for outcome in outcomes.values():
        model.assign(outcome.models, outcome.box)
        n_images[(slice(None), *outcome.box.slices(patch))] = outcome.n_images
    # The solver iterates on an un-amplified model but fits the data with the amplified one
    # (accelerate_model), which is therefore the model the outputs and templates use.
    model.images = amplify(model.images, dcr.accelerate_model).astype(np.float32)
    psf = _measured_psf(model, coadd, setup.psf) if dcr.do_calculate_psf else setup.psf
    model.psf = psf
    stacked = model.stacked()
    stacked.variance = coadd.variance.copy()
    ordered = sorted(outcomes.values(), key=lambda o: o.index)
    metadata = {
        "n_subfilters": m, "subfilter_edges_nm": model.subfilter_edges.tolist(), "buffer": setup.buffer,
        "detected_on_coadd": setup.detected_on_coadd,
        "subregions": {o.index: {"box": [o.box.x0, o.box.y0, o.box.width, o.box.height],
                                 "history": o.history,
                                 "converged": o.converged, "stop_reason": o.stop_reason,
                                 "seconds": o.seconds} for o in ordered},
        "initial_convergence": float(np.mean([o.history[0]["convergence"] for o in ordered])),
        "final_convergence": float(np.mean([o.history[-1]["convergence"] for o in ordered])),
    }
    subfilter_coadds = [_subfilter_coadd(model, k, coadd) for k in range(m)]
    return DcrCoaddResult(coadd=stacked, subfilter_coadds=subfilter_coadds,
                          n_image=n_images.sum(axis=0, dtype=np.uint32), subfilter_n_images=n_images,
                          model=model, baseline=baseline, metadata=metadata)


def assemble_dcr_coadd(warps: Sequence[WarpSource], config: Config | None = None, *,
                       bbox: Box | None = None, baseline: CoaddResult | None = None,
                       mapper: Callable[[Callable, Iterable], Iterable] | None = None,
                       on_subregion: Callable[[SubregionOutcome], None] | None = None,
                       done: dict[int, SubregionOutcome] | None = None) -> DcrCoaddResult:
    """Build a DCR model and DCR coadds from warps on a common pixel grid.

    baseline coadd → `prepare_dcr_model` → `solve_subregion` over `subregion_tasks` →
    `fill_coadds`.

    Parameters
    ----------
    warps : sequence of path or Exposure
    config : Config, optional
        Defaults to `Config()`.
    bbox : Box, optional
        Region of the grid to assemble (default: the union of the warps).
    baseline : CoaddResult, optional
        A baseline coadd already made from the same warps and config.
    mapper : callable, optional
        ``map``-like function used to run `solve_subregion` over tasks (default
        the builtin ``map``); see `dcrcoadd.parallel.mappers`. Results may come in any order.
    on_subregion : callable, optional
        Called with each finished subregion (progress, checkpoints).
    done : dict, optional
        Subregion outcomes already computed (by index), which are not recomputed.

    Returns
    -------
    DcrCoaddResult
    """
    config = config or Config()
    config.validate()
    t0 = time.perf_counter()
    if baseline is None:
        baseline = assemble_coadd(list(warps), config, bbox=bbox)
    t1 = time.perf_counter()
    setup = prepare_dcr_model(baseline, config)
    done = dict(done or {})
    tasks = subregion_tasks(setup, baseline, config, skip=done)
    log.info("solving the DCR model (M = %d) over %d subregion(s) of %s (%d done before), buffer %d px, "
             "%d warps", len(setup.model), len(tasks) + len(done), setup.model.bbox, len(done), setup.buffer,
             len(baseline.inputs))
    outcomes = done
    for outcome in (mapper or map)(solve_subregion, tasks):
        outcomes[outcome.index] = outcome
        if on_subregion:
            on_subregion(outcome)
    t2 = time.perf_counter()
    result = fill_coadds(setup, baseline, outcomes, config)
    result.metadata["timings_s"] = {"baseline_coadd": t1 - t0, "dcr_model": t2 - t1,
                                    "fill_coadds": time.perf_counter() - t2}
    return result


def _measured_psf(model: DcrModel, coadd: Exposure, fallback):
    from dcrcoadd.core.psf import measure_psf

    size = fallback.shape[0] if fallback is not None else 25
    try:
        psf = measure_psf(model.images.sum(axis=0), coadd.variance,
                          coadd.mask_of("NO_DATA", "SAT", "BAD", "INTRP") | ~np.isfinite(coadd.image),
                          size=size)
    except ValueError as exc:
        log.warning("could not measure a PSF on the DCR coadd (%s); keeping the input-based PSF", exc)
        return fallback
    log.info("measured the DCR coadd PSF: FWHM %.2f px", psf.fwhm)
    return psf


def _subfilter_coadd(model: DcrModel, k: int, coadd: Exposure) -> Exposure:
    exp = model.subfilter_exposure(k)
    exp.mask = coadd.mask.copy()
    exp.mask_planes = coadd.mask_planes
    exp.image = exp.image.copy()
    exp.variance = (coadd.variance / len(model)).astype(np.float32)
    return exp


def write_dcr_outputs(result: DcrCoaddResult, outdir: str | os.PathLike) -> dict[str, Path]:
    """Write the coadd products of DESIGN.md into ``outdir``, each atomically.

    ``dcr_coadd.fits`` and every ``subfilter_<k>.fits`` carry an ``NIMAGE`` extension: the
    number of inputs contributing to each pixel (summed over subfilters for the stacked coadd,
    so it is up to M times the baseline coadd's, as in LSST).
    """
    from astropy.io import fits

    from dcrcoadd.io.coadd import write_coadd
    from dcrcoadd.io.fits import exposure_hdus, write_hdus

    def with_nimage(exposure: Exposure, n_image: np.ndarray, path: Path) -> Path:
        hdus = exposure_hdus(exposure)
        hdus.append(fits.ImageHDU(data=n_image.astype(np.int32), name="NIMAGE"))
        return write_hdus(hdus, path)

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = {"coadd": write_coadd(result.baseline, outdir / "coadd.fits"),
             "dcr_coadd": with_nimage(result.coadd, result.n_image, outdir / "dcr_coadd.fits"),
             "model": result.model.write(outdir / "model.fits")}
    for k, exp in enumerate(result.subfilter_coadds):
        paths[f"subfilter_{k}"] = with_nimage(exp, result.subfilter_n_images[k],
                                              outdir / f"subfilter_{k}.fits")
    return paths


def write_report(result: DcrCoaddResult, path: str | os.PathLike, *, science: Exposure | None = None,
                 title: str = "") -> Path | None:
    """The report figure of a DCR run (see `dcrcoadd.report.figure.make_report`).

    The showcase compares ``science`` (default: the highest-airmass input warp) with the
    baseline coadd and with its DCR-matched template; masked pixels are left blank. Returns
    None, with a warning, when matplotlib (the ``plot`` extra) is missing.
    """
    from dcrcoadd.errors import ConfigError

    try:
        from dcrcoadd.report.figure import make_report
    except ImportError:
        log.warning("no report: install dcrcoadd[plot] for matplotlib")
        return None
    baseline = result.baseline
    table = baseline.inputs_table()
    if science is None:
        science = baseline.inputs[int(np.nanargmax(table["airmass"]))].read(baseline.coadd.bbox)
    showcase = None
    if science is not None and science.visit is not None:
        box = science.bbox.clip(baseline.coadd.bbox)
        science = science.subexposure(box)
        image = science.image * np.float32(science.flux_calibration / baseline.coadd.flux_calibration)
        image = np.where(science.mask_of("BAD", "SAT", "NO_DATA", "CR"), np.nan, image)
        template = result.model.build_matched_exposure(science.visit.completed(), bbox=box)
        reference = baseline.coadd.image[box.slices(baseline.coadd.bbox)]
        noise = float(np.sqrt(np.nanmedian(science.variance))) * science.flux_calibration
        cut = _central_cut(image.shape, 300)  # dipoles stay visible in a few hundred pixels
        showcase = {"visit": science.visit.id, "airmass": float(science.visit.airmass or np.nan),
                    "science": image[cut], "diff_baseline": (image - reference)[cut],
                    "diff_dcr": (image - template.image)[cut], "noise": noise}
    histories = {f"subregion {k}": v["history"]
                 for k, v in result.metadata["subregions"].items()}
    inputs = [{"visit": int(r["visit"]), "airmass": float(r["airmass"]),
               "parallactic_angle": float(r["parallactic_angle"]), "fwhm_px": float(r["psf_fwhm"]),
               "weight": float(r["weight"])} for r in table]
    threshold = baseline.config.dcr.convergence_threshold if baseline.config is not None else None
    try:
        return make_report(path, subfilter_images=result.model.images, histories=histories, inputs=inputs,
                           showcase=showcase, title=title, convergence_threshold=threshold)
    except ConfigError as exc:
        log.warning("no report: %s", exc)
        return None


def _central_cut(shape: tuple[int, int], size: int) -> tuple[slice, slice]:
    ny, nx = shape
    hy, hx = min(size, ny) // 2, min(size, nx) // 2
    return (slice(ny // 2 - hy, ny // 2 + hy), slice(nx // 2 - hx, nx // 2 + hx))
