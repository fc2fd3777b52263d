"""The report's difference panels: a visit the model has not seen, against both templates.

A template can only be judged honestly on a visit that did not go into it. When the run
was given one (``run_patch(..., report_science=...)``, the demo's held-out visits) that
visit is shown (`held_out_showcase`). Otherwise the highest-airmass input, where DCR is
largest, is left out and the model is solved again without it over a central cut of the
patch (`leave_one_out_showcase`): the same settings, the baseline coadd of the remaining
warps as its start and as the plain template it is compared with.

Both give the same data, a dict: ``kind`` (``"held-out"`` or ``"leave-one-out"``), ``title``,
``visit``, ``airmass``, ``box`` (the pixels shown), ``science`` (nJy, NaN where masked),
``chi_baseline`` and ``chi_dcr`` (the two differences in units of their noise,
``(science − template) / sqrt(var_science + var_template)``, NaN where not usable), ``masked``
(bad in either image), ``sources`` (the pixels the χ² is averaged over) and ``score_baseline``,
``score_dcr`` (`dcrcoadd.report.scores.DifferenceScore`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import numpy as np

from dcrcoadd.core.exposure import Exposure
from dcrcoadd.core.geom import Box
from dcrcoadd.errors import InputError
from dcrcoadd.report.scores import (
    chi_image,
    good_pixels,
    science_in_njy,
    score_exposure,
    source_pixels,
)

log = logging.getLogger("dcrcoadd.report.showcase")

__all__ = ["SHOWCASE_SIZE", "central_box", "held_out_showcase", "leave_one_out_showcase"]

#: Side of the region shown (pixels): dipoles of a pixel or two stay visible in a panel about
#: 370 pixels wide.
SHOWCASE_SIZE = 256


def central_box(box: Box, size: int) -> Box:
    """The central ``size x size`` part of ``box`` (all of it along a side shorter than ``size``)."""
    w, h = min(size, box.width), min(size, box.height)
    x0 = box.x0 + (box.width - w) // 2
    y0 = box.y0 + (box.height - h) // 2
    return Box(x0, y0, w, h)


def _model_detections(model, box: Box) -> np.ndarray | None:
    """The model's DETECTED pixels in ``box`` (set by the DCR stage when the inputs had none)."""
    value = model.mask_planes.value_if_present(["DETECTED"])
    if not value:
        return None
    return (model.mask[box.slices(model.bbox)] & np.uint32(value)) != 0


def _compare(science: Exposure, template: Exposure, baseline: Exposure, sources: np.ndarray, *,
             kind: str, title: str) -> dict:
    """Score and draw ``science`` against both templates (all three on the same pixels)."""
    image, variance = science_in_njy(science)
    good_science = good_pixels(science)
    panels = {}
    for name, ref in (("baseline", baseline), ("dcr", template)):
        cal = float(ref.flux_calibration)
        good = good_pixels(science, template=ref)
        panels[name] = (chi_image(image, variance, ref.image * cal, ref.variance * cal * cal, good),
                        score_exposure(science, ref, None, sources))
    masked = ~np.isfinite(panels["baseline"][0]) | ~np.isfinite(panels["dcr"][0])
    visit = science.visit
    return {
        "kind": kind, "title": title,
        "visit": None if visit is None else visit.id,
        "airmass": float("nan") if visit is None or visit.airmass is None else float(visit.airmass),
        "box": science.bbox,
        "science": np.where(good_science & np.isfinite(image), image, np.nan),
        "chi_baseline": panels["baseline"][0], "chi_dcr": panels["dcr"][0],
        "masked": masked, "sources": np.asarray(sources, bool),
        "score_baseline": panels["baseline"][1], "score_dcr": panels["dcr"][1],
    }


def held_out_showcase(result, science: Exposure, *, size: int = SHOWCASE_SIZE) -> tuple[dict | None, str]:
    """Difference panels of a visit that is not one of the model's inputs.

    Parameters
    ----------
    result : DcrCoaddResult
    science : Exposure
        On the patch's pixel grid, with its visit.
    size : int
        Side of the central cut shown and scored.

    Returns
    -------
    showcase : dict or None
        See the module notes; None when the visit does not overlap the patch or has no visit.
    note : str
        What is shown, or why nothing is.
    """
    if science.visit is None:
        return None, "no difference panels: the held-out exposure has no visit"
    patch = result.baseline.coadd.bbox
    overlap = science.bbox.clip(patch)
    if overlap.is_empty:
        return None, f"no difference panels: held-out visit {science.visit.id} does not overlap the patch"
    box = central_box(overlap, size)
    cut = science.subexposure(box)
    template = result.model.build_matched_exposure(science.visit.completed(), bbox=box, psf=science.psf)
    baseline = result.baseline.coadd.subexposure(box)
    sources = source_pixels(baseline, _model_detections(result.model, box))
    airmass = science.visit.airmass
    am = f", airmass {airmass:.2f}" if airmass is not None else ""
    title = f"Held-out visit {science.visit.id}{am} (not in the model)"
    showcase = _compare(cut, template, baseline, sources, kind="held-out", title=title)
    return showcase, title


@contextlib.contextmanager
def _quiet(logger_name: str = "dcrcoadd") -> Iterator[None]:
    """Keep the re-solve's messages (repeats of the run's own) off the console and the run's
    warnings; not thread-safe, which the output stage of a run need not be."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def leave_one_out_showcase(result, *, size: int = SHOWCASE_SIZE) -> tuple[dict | None, str]:
    """Difference panels of the highest-airmass input, against a model solved without it.

    The DCR model and the baseline coadd are made again from the other inputs, with the run's
    configuration, over the central ``size`` pixels of the patch (and the margin beyond it that
    `dcrcoadd.dcr.assemble.assemble_dcr_coadd` reads for a box); that cut is shown and scored.

    Returns
    -------
    showcase : dict or None
        See the module notes; None with fewer than three inputs or when the remaining inputs
        cannot constrain a model.
    note : str
        What is shown, or why nothing is.
    """
    from dcrcoadd.dcr.assemble import assemble_dcr_coadd

    baseline = result.baseline
    inputs = baseline.inputs
    if len(inputs) < 3:
        return None, (f"no difference panels: {len(inputs)} inputs leave too few for a model without "
                      "one of them")
    airmass = np.array([inp.airmass for inp in inputs], float)
    k = int(np.nanargmax(airmass)) if np.isfinite(airmass).any() else 0
    left_out = inputs[k]
    patch = result.model.bbox
    box = central_box(patch, size)
    rest = [inp.source for i, inp in enumerate(inputs) if i != k]
    log.info("report: solving the model again without visit %s (highest airmass) over %s",
             left_out.visit_id, box)
    try:
        with _quiet():
            loo = assemble_dcr_coadd(rest, baseline.config, bbox=box)
    except InputError as exc:
        return None, (f"no difference panels: without visit {left_out.visit_id} the model cannot be "
                      f"solved ({exc})")
    science = left_out.read(box)
    if science is None or left_out.visit is None:
        return None, f"no difference panels: visit {left_out.visit_id} has no pixels in the central cut"
    box = science.bbox
    template = loo.model.build_matched_exposure(left_out.visit.completed(), bbox=box, psf=science.psf)
    reference = loo.baseline.coadd.subexposure(box)
    sources = source_pixels(reference, _model_detections(loo.model, box))
    title = (f"Leave-one-out: visit {left_out.visit_id}, airmass {airmass[k]:.2f} (highest), "
             f"left out of a re-solve of the central {box.width}×{box.height} px")
    showcase = _compare(science, template, reference, sources, kind="leave-one-out", title=title)
    showcase["input_index"] = k
    return showcase, title
