"""The DCR stage of one patch: starting model → per-tile solves (`dcrcoadd.dcr.tasks`) → DCR coadds."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from scipy import ndimage

from dcrcoadd.coadd.artifacts import ArtifactMask, PixelSet
from dcrcoadd.coadd.baseline import CoaddResult, assemble_coadd
from dcrcoadd.coadd.inputs import GIVEN_PSF_ORIGINS, CoaddInput
from dcrcoadd.config.schema import Config
from dcrcoadd.core.exposure import Exposure
from dcrcoadd.core.geom import Box
from dcrcoadd.core.psf import UNDERSAMPLED_FWHM, Psf, pixel_scale_arcsec
from dcrcoadd.core.visit import VisitInfo
from dcrcoadd.dcr.forward import ForwardModel, subfilter_shifts, wavelength_sample_shifts
from dcrcoadd.dcr.model import DcrModel, dcr_spread, degenerate_conditions
from dcrcoadd.dcr.psf_ratio import reference_psf, sharpest
from dcrcoadd.dcr.psf_refit import REFITTED, needs_refit, refit_warp_psfs
from dcrcoadd.dcr.tasks import TileOutcome, TileTask, solve_tile, solver_settings
from dcrcoadd.errors import InputError
from dcrcoadd.io.calibration import flux_unit
from dcrcoadd.ops.detection import detection_mask
from dcrcoadd.ops.noise import sky_noise_factor
from dcrcoadd.ops.psf_measure import measure_psf
from dcrcoadd.parallel import Mapper, Tile, map_tasks, threads_per_task, tiles

log = logging.getLogger("dcrcoadd.dcr.assemble")

BOX_MARGIN = 48
"""Least `box_margin`: the exact solver's default least buffer, and more than the DCR buffer of g-band
visits at airmass 2.5 on 0.17" pixels (15 px)."""

WarpSource = str | os.PathLike | Exposure


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

    def cropped(self) -> DcrCoaddResult:
        """The result over the baseline's `CoaddResult.output_box` only (views of its arrays)."""
        box = self.baseline.region
        if box is None:
            return self
        sl = box.slices(self.coadd.bbox)
        return dataclasses.replace(
            self, coadd=self.coadd.subexposure(box), subfilter_coadds=[c.subexposure(box) for c in
                                                                       self.subfilter_coadds],
            n_image=self.n_image[sl], subfilter_n_images=self.subfilter_n_images[(slice(None), *sl)],
            model=self.model.region(box), baseline=self.baseline.cropped())


# -- inputs ----------------------------------------------------------------------------------------

def dcr_visits(inputs: Sequence[CoaddInput], *, warn: bool = True) -> list[VisitInfo]:
    """Completed visit geometry of every input; `InputError` for a warp that cannot give DCR.
    ``warn``: say which visits have only a boresight geometry (once per run: not in the up-front
    check of the headers, nor in the PSF refits' new setups)."""
    visits = []
    for inp in inputs:
        if inp.visit is None:
            raise InputError("no visit metadata: the DCR model needs the airmass and parallactic angle "
                             "of every warp", inp.name)
        visit = inp.visit.completed()
        if visit.parallactic_angle is None:
            raise InputError("cannot derive the parallactic angle (need boresight alt/az, or time and "
                             "RA/Dec, and the site)", inp.name)
        if visit.zenith is None and warn:  # once per visit and run (the shifts are computed per tile)
            log.warning("visit %s has no time or boresight RA/Dec; using the boresight elevation and "
                        "parallactic angle at every position", visit.id)
        visits.append(visit)
    return visits


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
    return subfilter_shifts(visits, model.wcs, model.origin, model.bandpass, model.subfilter_edges,
                            box.center, split=split)


def check_subfilter_count(n_subfilters: int, n_warps: int, source: str = "dcr.dcr_num_subfilters") -> None:
    """Refuse more subfilters than usable warps; warn when fewer than two warps per subfilter.

    Each warp gives one equation per spatial frequency for the M unknown subfilter images, so
    with M > N the split is undetermined everywhere (only a prior could fill it in) and the
    iterative solver diverges (values ~1e22 were seen with M = 50, N = 6).
    """
    if n_subfilters > n_warps:
        raise InputError(f"dcr_num_subfilters = {n_subfilters} exceeds the {n_warps} usable warps: each warp "
                         f"constrains one combination of the subfilters, so at most {n_warps} can be "
                         f"separated; use --set dcr.dcr_num_subfilters=N with N <= {n_warps} (default 3)",
                         source)
    if n_warps < 2 * n_subfilters:
        log.warning("%d warps for %d subfilters: the subfilter split is poorly constrained (fewer than two "
                    "warps per subfilter)", n_warps, n_subfilters)


def _conditions(visits: Sequence[VisitInfo]) -> np.ndarray:
    """``(N, 2)`` airmass and parallactic angle (degrees) of ``visits``."""
    return np.array([[v.airmass, v.parallactic_angle.deg] for v in visits], float)


def _angle_range(angles: np.ndarray) -> tuple[float, float]:
    """Smallest and largest of angles (degrees) that may straddle ±180 (unwrapped from the first)."""
    unwrapped = np.degrees(np.unwrap(np.radians(angles)))
    return float(unwrapped.min()), float(unwrapped.max())


def _check_diversity(inputs: Sequence[CoaddInput], visits: Sequence[VisitInfo]) -> None:
    if len(visits) < 2:
        raise InputError(f"only {len(visits)} usable warp: the DCR model is underdetermined (need at "
                         "least 2 at different airmass or parallactic angle)",
                         inputs[0].name if inputs else "inputs")
    conditions = _conditions(visits)
    if degenerate_conditions(conditions):
        log.warning("all %d warps share nearly one DCR (airmass %.3f-%.3f, parallactic angle %.1f-%.1f deg: "
                    "their DCR vectors tan z (sin q, cos q) lie within %.3f of each other): the subfilters "
                    "are degenerate and the DCR model cannot separate them", len(visits),
                    conditions[:, 0].min(), conditions[:, 0].max(), *_angle_range(conditions[:, 1]),
                    dcr_spread(conditions))


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
    warp_psfs: list[Psf] | None = None  # each warp's PSF, for a PSF-aware forward model


def psf_aware(config: Config) -> bool:
    """Whether the run fits the PSF-aware forward model: ``dcr.psf_model = "warp"``, or ``"auto"`` with
    the exact solver (the iterative solver keeps LSST parity unless asked)."""
    model = config.dcr.psf_model
    return model == "warp" or (model == "auto" and config.dcr.solver == "exact")


def warp_psfs(inputs: Sequence[CoaddInput]) -> list[Psf] | None:
    """Every warp's PSF (its PSF HDU, measured from its stars across the DCR direction, or the
    reader's Gaussian of a seeing card: `dcrcoadd.coadd.inputs.measure_missing_psfs`), or None with
    a warning when some warp has none: the fit then leaves the PSF term out.

    A PSF stacked from a warp's stars the usual way would carry that warp's DCR smear, which the
    forward model applies itself (measured on simulated fields: 137-188 false detections per
    science visit at constant seeing, where the true PSFs gave 0); hence the measurement across the
    DCR direction, and the fits against the model (`dcrcoadd.dcr.psf_refit`).
    """
    missing = [inp.name for inp in inputs if inp.psf is None]
    if missing:
        log.warning("%d of %d warps have no PSF (no PSF extension, no star to measure one on, no seeing "
                    "card; first: %s): the DCR model "
                    "is fitted without the per-warp PSF term (as with dcr.psf_model = none)", len(missing),
                    len(inputs), missing[0])
        return None
    return [inp.psf for inp in inputs]


def model_reference_psf(psfs: Sequence[Psf], config: Config, wcs, names: Sequence[str] | None = None) -> Psf:
    """The PSF-aware model's reference PSF (`dcrcoadd.dcr.psf_ratio.reference_psf`): FWHM
    ``dcr.psf_reference_fwhm`` arcsec, or ``dcr.psf_reference_scale`` × the narrowest input's.
    ``names``: the inputs', for an error to name the warp whose PSF it could not be made from."""
    dcr = config.dcr
    fwhm = None
    if dcr.psf_reference_fwhm is not None:
        scale = pixel_scale_arcsec(wcs)
        if not math.isfinite(scale):
            raise InputError("dcr.psf_reference_fwhm is in arcsec, but the warps have no celestial WCS",
                             "dcr.psf_reference_fwhm")
        fwhm = dcr.psf_reference_fwhm / scale
    try:
        ref = reference_psf(psfs, fwhm=fwhm, scale=dcr.psf_reference_scale)
    except ValueError as exc:
        setting = ("dcr.psf_reference_fwhm" if fwhm is not None
                   else f"dcr.psf_reference_scale {dcr.psf_reference_scale:g} x the narrowest input PSF's")
        base = sharpest(psfs)
        target = fwhm if fwhm is not None else dcr.psf_reference_scale * psfs[base].fwhm
        hint = ("; a PSF this sharp is undersampled: check its PSF extension" if target < psfs[base].fwhm
                else "")
        source = names[base] if names is not None else "dcr.psf_reference_fwhm"
        raise InputError(f"{exc} (the narrowest of the inputs' PSFs, with {setting}){hint}", source) from None
    narrowest = min(p.fwhm for p in psfs)
    log.info("PSF-aware forward model: input PSF FWHM %.2f-%.2f px, reference PSF FWHM %.2f px", narrowest,
             max(p.fwhm for p in psfs), ref.fwhm)
    if ref.fwhm > narrowest * 1.001:
        log.warning("the reference PSF (FWHM %.2f px) is wider than the narrowest input's (%.2f px): "
                    "those warps are modelled through a ratio above 1 at high frequencies (deconvolution)",
                    ref.fwhm, narrowest)
    if narrowest < UNDERSAMPLED_FWHM:
        log.warning("the sharpest warps' PSFs (FWHM %.2f px) are undersampled: each warp aliases a bright "
                    "star by where it falls on a pixel, which the model, on the same pixels, cannot hold: "
                    "expect stripes along bright stars' rows and columns in the DCR coadd, and residuals "
                    "there in templates at PSFs under %.1f px", narrowest, UNDERSAMPLED_FWHM)
    return ref


def prepare_dcr_model(baseline: CoaddResult, config: Config, reference: Psf | None = None) -> DcrSetup:
    """Check the inputs can constrain DCR and start the model at coadd / M (LSST ``prepareDcrInputs``).

    ``reference``: the PSF-aware model's reference PSF, instead of choosing it from the warps' PSFs
    (`model_reference_psf`); the PSF refits keep the first solve's.
    """
    coadd, dcr = baseline.coadd, config.dcr
    inputs = baseline.inputs
    visits = dcr_visits(inputs, warn=reference is None)
    if reference is None:  # (a PSF refit prepares the same inputs again: checked, and warned about, once)
        _check_diversity(inputs, visits)
        check_subfilter_count(dcr.dcr_num_subfilters, len(visits))
    if coadd.bandpass is None:
        raise InputError("the warps carry no band wavelengths: add BANDLAM/BANDWID (nm) to their headers, "
                         "or name their instrument (--instrument) so the FILTER card gives the band",
                         inputs[0].name)
    psf = baseline.psf_best_seeing or coadd.psf
    psfs = None
    if psf_aware(config):
        psfs = warp_psfs(inputs)
        if psfs is not None:
            # The iterative solver's reference stays the coadd's PSF: its conditioning holds the
            # model near the coadd (a sharper reference tapered the model towards a wider image and
            # left 1 % too much flux on the 0.6-1.3" validation field)
            if reference is not None:
                psf = reference
            elif dcr.solver == "exact":
                psf = model_reference_psf(psfs, config, coadd.wcs, [inp.name for inp in inputs])
    edges = coadd.bandpass.subfilter_edges(dcr.dcr_num_subfilters, method=dcr.subfilter_partition)
    model = DcrModel.from_image(coadd, dcr.dcr_num_subfilters, psf=psf, subfilter_edges=edges,
                                interp_order=dcr.image_interp_order)
    # the model records the forward model its solver fits, so templates reproduce it exactly, and the
    # DCR it was fitted to, so a template says how far it extrapolates (`DcrModel.dcr_coverage_gap`)
    model.input_conditions = _conditions(visits)
    # and the PSFs it was fitted through, so a template says when it is sharper than any of them
    model.input_psf_fwhm = None if psfs is None else np.array([p.fwhm for p in psfs], float)
    model.flux_unit = flux_unit(inputs)  # so templates can refuse science exposures of another unit
    model.solver = dcr.solver
    model.solver_settings = dataclasses.asdict(solver_settings(dcr))
    if dcr.solver == "exact":
        model.forward_model = "fourier"
        model.wavelength_samples = dcr.exact.wavelength_samples
        model.fourier_interpolation = dcr.exact.interpolation
        model.linear_spectrum = dcr.exact.linear_spectrum
    if psfs is not None:
        model.psf_model = "warp"
        model.psf_ratio_floor = dcr.psf_ratio_floor
        # A PSF measured on stars (or fitted against the model) is already the PSF of their mix of
        # colours; widening it per subfilter would count chromatic seeing twice (measured on the
        # variable-seeing fields: 38/14/24/7 false detections with it, 23/11/1/1 without, at 100 %)
        measured = sum(inp.psf_origin in REFITTED for inp in inputs)
        # (the iterative solver's forward model has one PSF ratio per warp, for every subfilter)
        chromatic = not measured and dcr.solver == "exact"
        model.psf_chromatic_index = dcr.psf_chromatic_index if chromatic else 0.0
        # no PSF given by a file or the caller: the model's PSF widths are its own calibration
        model.psfs_measured = not any(inp.psf_origin in GIVEN_PSF_ORIGINS for inp in inputs)
        if measured and dcr.psf_chromatic_index != 0:
            log.info("%d warp PSFs are measured from their stars: the model leaves chromatic seeing out "
                     "(dcr.psf_chromatic_index applies to PSFs from the files)", measured)
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
        buffer=max(int(math.ceil(dcr.buffer_factor * (math.ceil(max_shift) + 1))),
                   dcr.exact.min_buffer if dcr.solver == "exact" else 0),
        warp_psfs=psfs)


def dcr_tiles(baseline: CoaddResult, config: Config, buffer: int = 0) -> list[Tile]:
    """The DCR stage's tiles of the baseline's `CoaddResult.output_box` (at most
    ``coadd.subregion_size``), their buffers reaching into its margin. The exact solver's are cut
    evenly: LSST's full-size subregions leave thin strips at the patch's edge (2048 px at 2000: 48
    px), which cost a solve each and, mostly buffer, converge slowly; the iterative solver keeps
    LSST's layout, which its results depend on."""
    return tiles(baseline.output_box, tuple(config.coadd.subregion_size), buffer=buffer,
                 even=config.dcr.solver == "exact", within=baseline.coadd.bbox)


def box_margin(config: Config) -> int:
    """Pixels read beyond a box asked for (``--box``, a survey patch), where the warps have data:
    the DCR tiles at its edge read them as their buffer, so the box's edge is not solved as an edge
    of the data (without it: 12 % of the peak off at the edge of a 64x48 box, 0.6 % 16 px in)."""
    return max(BOX_MARGIN, config.dcr.exact.min_buffer)


#: A warp's clipped artifact (a connected region of its CLIPPED pixels) with at least this many pixels
#: outside the sources' footprints is left out of the DCR model inside them too: a source moved by DCR
#: is clipped within its own footprint, a satellite streak crosses the sky between the sources. (Inside
#: footprints that cover 80 % of a crowded simulated field, a 50-sigma streak of one warp was kept, and
#: the DCR coadd held it at 15 sigma where the baseline coadd held nothing.)
ARTIFACT_BEYOND_SOURCES = 20


def artifacts_beyond_sources(masks: Sequence[ArtifactMask | None], detected: np.ndarray,
                             box: Box) -> list[PixelSet | None]:
    """For each warp's artifact mask, the pixels inside the sources' footprints (``detected``, over
    ``box``) of its clipped regions with `ARTIFACT_BEYOND_SOURCES` pixels or more outside them (None
    where there are none)."""
    out: list[PixelSet | None] = []
    for mask in masks:
        clipped = mask.planes.get("CLIPPED") if mask is not None else None
        if clipped is None or not len(clipped):
            out.append(None)
            continue
        region = clipped.to_mask(box)
        labels, n = ndimage.label(region, structure=np.ones((3, 3), bool))
        outside = np.bincount(labels[region & ~detected], minlength=n + 1)
        beyond = np.flatnonzero(outside >= ARTIFACT_BEYOND_SOURCES)
        beyond = beyond[beyond > 0]
        keep = np.isin(labels, beyond) & detected if beyond.size else None
        out.append(None if keep is None or not keep.any() else PixelSet.from_mask(keep, box, box))
    return out


def tile_tasks(setup: DcrSetup, baseline: CoaddResult, config: Config,
               skip: Iterable[int] = ()) -> Iterator[tuple[int, TileTask]]:
    """``(index, task)`` for every tile of the patch (`dcrcoadd.parallel.tiles`, grown by the
    buffer), except those in ``skip``. Each task carries only the pixels it reads, and is built
    when it is asked for (a serial run holds one task's copy of the starting model, not all)."""
    dcr, model, patch = config.dcr, setup.model, setup.model.bbox
    skip = set(skip)
    masks = baseline.artifact_masks or [None] * len(baseline.inputs)
    artifacts = artifacts_beyond_sources(masks, setup.detected, patch)
    variances = np.array([1.0 / inp.weight for inp in baseline.inputs])
    for tile in dcr_tiles(baseline, config, buffer=setup.buffer):
        if tile.index in skip:
            continue
        sl = tile.buffered.slices(patch)
        split = _shifts_for(setup.visits, model, tile.box, split=True) if dcr.split_subfilters else None
        samples = sample_weights = None
        if model.forward_model == "fourier":
            samples, sample_weights = wavelength_sample_shifts(
                setup.visits, model.wcs, model.origin, model.bandpass, model.subfilter_edges,
                model.wavelength_samples, tile.box.center, linear=model.linear_spectrum)
        forward = ForwardModel(
            shifts=_shifts_for(setup.visits, model, tile.box, split=False), split_shifts=split,
            order=dcr.image_interp_order, split_threshold=dcr.split_threshold,
            exact_adjoint=dcr.iterative.use_exact_adjoint, sample_shifts=samples,
            sample_weights=sample_weights, psf_scales=model.seeing_scales() if model.psf_aware else None)
        yield tile.index, TileTask(
            index=tile.index, box=tile.box, dcr_box=tile.buffered,
            warps=[w.restricted(tile.buffered) for w in baseline.inputs], planes=baseline.coadd.mask_planes,
            forward=forward, models=model.images[(slice(None), *sl)].copy(), reference=setup.reference[sl],
            detected=setup.detected[sl], background=setup.background[sl],
            artifact_masks=[m and m.restricted(tile.buffered) for m in masks],
            artifacts=[a and a.restricted(tile.buffered) for a in artifacts],
            bad_mask_planes=config.effective_bad_mask_planes(), dcr=dcr, buffer=setup.buffer,
            variances=variances, psf=setup.psf, warp_psfs=_tile_psfs(setup.warp_psfs, baseline.inputs,
                                                                     tile.index))


def _tile_psfs(psfs: list[Psf] | None, inputs: Sequence[CoaddInput], index: int) -> list[Psf] | None:
    """Each warp's PSF in tile ``index``: its fit there (`dcrcoadd.dcr.psf_refit`), else its own."""
    if psfs is None:
        return None
    return [inp.tile_psfs.get(index, psf) for inp, psf in zip(inputs, psfs, strict=True)]


def fill_coadds(setup: DcrSetup, baseline: CoaddResult, outcomes: dict[int, TileOutcome],
                config: Config) -> DcrCoaddResult:
    """Assemble the solved subregions into the model and its coadds (LSST ``fillCoadd``, ``stackCoadd``)."""
    dcr, model, coadd = config.dcr, setup.model, baseline.coadd
    m, patch = len(model), model.bbox
    n_images = np.zeros((m, *patch.shape), np.uint16)
    for outcome in outcomes.values():
        model.assign(outcome.models, outcome.box)
        n_images[(slice(None), *outcome.box.slices(patch))] = outcome.n_images
    # a PSF-aware model is the sky seen through its reference PSF: so are its coadds
    psf = (_measured_psf(model, coadd, setup.psf) if dcr.do_calculate_psf and setup.warp_psfs is None
           else setup.psf)
    model.psf = psf
    stacked = model.stacked()
    # (the baseline's variance, scaled to what the DCR coadd's pixels carry: 3.8-4.0 times its sigma on
    # simulated fields, the sky seen through the reference PSF, sharper than every warp's)
    faint = (coadd.image, coadd.variance)  # (which pixels are faintest, on a crowded field)
    variance_factor = sky_noise_factor(stacked.image, coadd.variance, coadd.mask, coadd.mask_planes,
                                       reference=faint)
    stacked.variance = (coadd.variance * (variance_factor or 1.0)).astype(np.float32)
    ordered = sorted(outcomes.values(), key=lambda o: o.index)
    metadata = {
        "n_subfilters": m, "subfilter_edges_nm": model.subfilter_edges.tolist(), "buffer": setup.buffer,
        "detected_on_coadd": setup.detected_on_coadd,
        "psf_model": model.psf_model,
        "reference_psf_fwhm_px": None if setup.warp_psfs is None or psf is None else float(psf.fwhm),
        "subregions": {o.index: {"box": [o.box.x0, o.box.y0, o.box.width, o.box.height],
                                 "history": o.history,
                                 "converged": o.converged, "stop_reason": o.stop_reason,
                                 "seconds": o.seconds} for o in ordered},
        "initial_convergence": float(np.mean([o.history[0]["convergence"] for o in ordered])),
        "final_convergence": float(np.mean([o.history[-1]["convergence"] for o in ordered])),
    }
    subfilter_coadds, factors = zip(*(_subfilter_coadd(model, k, coadd) for k in range(m)), strict=True)
    subfilter_coadds = list(subfilter_coadds)
    metadata["variance_factors"] = {"dcr_coadd": variance_factor, "subfilters": list(factors)}
    if variance_factor is None or None in factors:
        log.warning("too few usable pixels to measure the noise of the DCR coadd's pixels: its VARIANCE is "
                    "the baseline coadd's, the subfilters' the baseline's / %d, which understate it (15-65 "
                    "and 5-29 times on simulated fields)", m)
    else:
        log.info("variance of the DCR coadd: the baseline's times %.3g; of the subfilters: the baseline's "
                 "/ %d times %s (their pixels' noise, measured on the sky)", variance_factor, m,
                 ", ".join(f"{f:.3g}" for f in factors))
    return DcrCoaddResult(coadd=stacked, subfilter_coadds=subfilter_coadds,
                          n_image=n_images.sum(axis=0, dtype=np.uint32), subfilter_n_images=n_images,
                          model=model, baseline=baseline, metadata=metadata)


def assemble_dcr_coadd(warps: Sequence[WarpSource], config: Config | None = None, *,
                       bbox: Box | None = None, baseline: CoaddResult | None = None,
                       mapper: Mapper | None = None,
                       on_subregion: Callable[[TileOutcome], None] | None = None,
                       on_iteration: Callable[[int, dict], None] | None = None,
                       done: dict[int, TileOutcome] | None = None) -> DcrCoaddResult:
    """Build a DCR model and DCR coadds from warps on a common pixel grid.

    baseline coadd → `prepare_dcr_model` → `solve_tile` over `tile_tasks` →
    `fill_coadds`.

    Parameters
    ----------
    warps : sequence of path or Exposure
    config : Config, optional
        Defaults to `Config()`.
    bbox : Box, optional
        Region of the grid to assemble (default: the union of the warps). The baseline coadd and
        the model are made over `box_margin` more pixels where the warps have data, and cut.
    baseline : CoaddResult, optional
        A baseline coadd already made from the same warps and config (with ``margin`` =
        `box_margin` for the same results).
    mapper : callable, optional
        Runs `solve_tile` over the tasks (`dcrcoadd.parallel`; default serial). Results may
        come in any order.
    on_subregion : callable, optional
        Called with each finished subregion (progress, checkpoints).
    on_iteration : callable, optional
        ``on_iteration(tile index, history record)`` after each solver iteration; only for
        tiles solved in this process (give it with a serial mapper).
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
        baseline = assemble_coadd(list(warps), config, bbox=bbox, margin=box_margin(config))
    t1 = time.perf_counter()
    setup, outcomes = _solve(baseline, config, mapper, on_subregion, on_iteration, done)
    t2 = time.perf_counter()
    result = fill_coadds(setup, baseline, outcomes, config)
    t3 = time.perf_counter()
    refits = config.dcr.psf_refits if setup.warp_psfs is not None and needs_refit(baseline.inputs) else 0
    if refits:
        # the refits replace the inputs' PSFs: on copies, so that a baseline passed in stays as it was
        # (a second call with it started from the first's fitted PSFs and gave another model)
        baseline = dataclasses.replace(baseline, inputs=[dataclasses.replace(i) for i in baseline.inputs])
    for k in range(refits):
        # checkpoints hold the first solve only: a resumed run fits the PSFs again from there
        log.info("fitting the measured warp PSFs against the DCR model (%d of %d)", k + 1, refits)
        refit_warp_psfs(result.model, baseline.inputs, {o.index: o.box for o in outcomes.values()})
        # the reference stays the first solve's: the fits are ratios to it
        setup, outcomes = _solve(baseline, config, mapper, None, on_iteration, None, reference=setup.psf)
        result = fill_coadds(setup, baseline, outcomes, config)
    t4 = time.perf_counter()
    result.metadata["psf_refits"] = refits
    result.metadata["timings_s"] = {"baseline_coadd": t1 - t0, "dcr_model": t2 - t1 + (t4 - t3),
                                    "fill_coadds": t3 - t2}
    return result.cropped()


def _solve(baseline: CoaddResult, config: Config, mapper, on_subregion, on_iteration, done,
           reference: Psf | None = None) -> tuple[DcrSetup, dict[int, TileOutcome]]:
    """The model's setup and every subregion's outcome (those in ``done`` kept)."""
    setup = prepare_dcr_model(baseline, config, reference)
    margin = box_margin(config)
    if baseline.region is not None and setup.buffer > margin and reference is None:
        log.warning("the DCR buffer (%d px) exceeds the margin read beyond the box (%d px): the tiles at "
                    "its edge read %d px less of it than the others", setup.buffer, margin,
                    setup.buffer - margin)
    done = dict(done or {})
    indices = [tile.index for tile in dcr_tiles(baseline, config, buffer=setup.buffer)]
    n_tasks = sum(1 for index in indices if index not in done)
    tasks = tile_tasks(setup, baseline, config, skip=set(done))
    threads = threads_per_task(mapper, n_tasks)
    if config.dcr.solver == "exact" and threads > config.dcr.exact.workers:
        # fewer tiles than worker processes: each tile's FFTs take the idle cores (same bits)
        dcr = dataclasses.replace(config.dcr, exact=dataclasses.replace(config.dcr.exact, workers=threads))
        tasks = ((i, dataclasses.replace(task, dcr=dcr)) for i, task in tasks)
    log.info("solving the DCR model (M = %d) over %d subregion(s) of %s (%d done before), buffer %d px, "
             "%d warps", len(setup.model), len(indices), setup.model.bbox, len(indices) - n_tasks,
             setup.buffer, len(baseline.inputs))
    outcomes = done
    solve = solve_tile if on_iteration is None else partial(solve_tile, progress=on_iteration)
    for index, outcome in map_tasks(solve, tasks, mapper):
        outcomes[index] = outcome
        log.info("tile %d %s: %s (%.1f s)", outcome.index, outcome.box, outcome.stop_reason, outcome.seconds)
        if on_subregion:
            on_subregion(outcome)
    return setup, outcomes


def _measured_psf(model: DcrModel, coadd: Exposure, fallback):
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


def _subfilter_coadd(model: DcrModel, k: int, coadd: Exposure) -> tuple[Exposure, float | None]:
    """Subfilter ``k`` with the coadd's mask and the baseline's variance / M scaled to its pixels' noise
    (`sky_noise_factor`: 2.3-2.9 times the sigma on simulated fields), and that factor (None: not
    measured, the variance left at the baseline's / M)."""
    exp = model.subfilter_exposure(k)
    exp.mask = coadd.mask.copy()
    exp.mask_planes = coadd.mask_planes
    exp.image = exp.image.copy()
    base = coadd.variance / len(model)
    factor = sky_noise_factor(exp.image, base, coadd.mask, coadd.mask_planes,
                              reference=(coadd.image, coadd.variance))
    exp.variance = (base * (factor or 1.0)).astype(np.float32)
    return exp, factor
