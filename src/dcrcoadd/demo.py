"""`dcrcoadd demo`: the whole job on a small built-in simulated field.

Simulate, run the patch exactly as ``assemble`` does (`dcrcoadd.pipeline.run_patch`), then
template and score two visits the model never saw with the statistic of
`dcrcoadd.report.scores` (the one the report and the benchmarks quote).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcrcoadd.errors import InputError
from dcrcoadd.report.scores import DifferenceScore, score_exposure, source_pixels

log = logging.getLogger("dcrcoadd.demo")

__all__ = ["HeldOutScore", "format_scores", "run_demo"]


@dataclass
class HeldOutScore:
    """A held-out visit scored against the DCR template and against the baseline coadd."""

    visit: int
    airmass: float
    dcr: DifferenceScore
    baseline: DifferenceScore


def _event(stage: str, done: int, total: int):
    from dcrcoadd.pipeline.run_patch import ProgressEvent

    return ProgressEvent(stage, done, total)


def _earlier_demo(outdir: Path) -> set[Path] | None:
    """The held-out templates of an earlier demo in ``outdir`` (empty for a directory without a run);
    None when ``outdir`` holds another run, which the demo would replace.

    An earlier demo's run is recognized by its inputs, all in memory (the simulated warps: a run's
    record names them by a digest of their pixels, while runs of files, ``assemble``'s, name the
    files). Its templates are those of the lowest- and highest-airmass visits of its simulation's
    visit table."""
    from astropy.table import Table

    from dcrcoadd.pipeline import checkpoint

    stored = checkpoint.stored_run(outdir)
    if stored is None:
        return set()
    inputs = stored.manifest.get("inputs") or []
    if not inputs or not all(" sha256:" in str(i) for i in inputs):
        return None
    try:
        visits = Table.read(outdir / "sim" / "truth" / "visits.ecsv", format="ascii.ecsv")
        airmass = np.asarray(visits["airmass"], dtype=float)
        held = (visits["id"][int(np.argmin(airmass))], visits["id"][int(np.argmax(airmass))])
    except (OSError, ValueError, KeyError):
        return set()
    return {outdir / f"visit_{int(v)}_template.fits" for v in held}


def run_demo(outdir: str | Path, *, size: int = 128, n_visits: int = 10, seed: int = 7,
             progress: Callable | None = None, command: str | None = None) -> list[HeldOutScore]:
    """Simulate, run the patch (`dcrcoadd.pipeline.run_patch`: what ``assemble`` writes, into
    ``outdir``) and score templates of two held-out visits (``visit_<id>_template.fits``).

    The held-out visits are the lowest- and highest-airmass ones of the simulated track; the
    model is built from the others, and the report shows the highest-airmass held-out visit.
    The simulated warps and truth go to ``outdir/sim``.

    ``progress`` receives `dcrcoadd.pipeline.run_patch.ProgressEvent` s: those of ``run_patch``
    and, around them, ``"simulate"`` (once per rendered visit, from 0) and ``"templates"``
    (0 of 1, then 1 of 1).

    An earlier demo's outputs in ``outdir`` are replaced; a directory holding another run (of
    ``assemble``) is refused (`InputError`) before anything is written, and files the demo did not
    write are left there.
    """
    from dcrcoadd.config import Config
    from dcrcoadd.pipeline import run_patch
    from dcrcoadd.sim import SimulationConfig, simulate, write_simulation
    from dcrcoadd.template.build import write_template

    notify = progress or (lambda event: None)
    outdir = Path(outdir)
    earlier = _earlier_demo(outdir)
    if earlier is None:
        raise InputError("holds a run that is not an earlier demo's (metadata.json, config.toml): the demo "
                         "would replace it; give the demo another --out", outdir)
    total = n_visits + 2
    notify(_event("simulate", 0, total))
    # Constant seeing, as DMTN-037's direct-subtraction test: without PSF matching, differing
    # seeing would dominate the residuals of both templates.
    sim = simulate(SimulationConfig(size=size, n_visits=total, n_stars=80, airmass=(1.0, 2.0),
                                    seeing=(0.8, 0.8), seed=seed),
                   progress=lambda done, n: notify(_event("simulate", done, n)))
    write_simulation(sim, outdir / "sim")
    airmass = np.array([w.visit.airmass for w in sim.warps])
    held = [int(np.argmin(airmass)), int(np.argmax(airmass))]
    inputs = [w for i, w in enumerate(sim.warps) if i not in held]
    # An earlier demo's run is replaced: its inputs are simulated anew on every run.
    run = run_patch(inputs, Config(), outdir, clobber_config=True, progress=progress,
                    report_science=sim.warps[held[-1]], title="dcrcoadd demo", command=command)
    notify(_event("templates", 0, 1))
    model, baseline = run.dcr.model, run.baseline.coadd
    sources = source_pixels(baseline)
    scores, templates = [], set()
    for i in held:
        science = sim.warps[i]
        template = model.build_matched_exposure(science.visit, psf=science.psf)
        template.psf_label = "science" if model.psf_aware else "model"  # (the TMPLPSF card)
        templates.add(write_template(template, outdir / f"visit_{science.visit.id}_template.fits"))
        box = science.bbox  # the simulated visits cover the whole patch
        src = sources[box.slices(baseline.bbox)]
        scores.append(HeldOutScore(
            science.visit.id, float(science.visit.airmass),
            dcr=score_exposure(science, template.subexposure(box), None, src),
            baseline=score_exposure(science, baseline.subexposure(box), None, src)))
    for path in earlier:  # held-out templates of an earlier demo, of other visits
        if path.name not in {t.name for t in templates}:
            path.unlink(missing_ok=True)
    notify(_event("templates", 1, 1))
    return scores


def format_scores(scores: list[HeldOutScore]) -> str:
    """The demo's table: each held-out visit's χ² per source pixel and 5σ detections."""
    lines = ["held-out visit  airmass   chi2/src DCR  chi2/src coadd   N5sig DCR  N5sig coadd",
             "--------------  -------   ------------  --------------   ---------  -----------"]
    for s in scores:
        lines.append(f"{s.visit:>14d}  {s.airmass:7.3f}   {s.dcr.chi2:12.2f}  {s.baseline.chi2:14.2f}   "
                     f"{s.dcr.n_detections:9d}  {s.baseline.n_detections:11d}")
    lines.append("chi2/src: mean of (science - template)^2 / (var_science + var_template) over the baseline "
                 "coadd's source pixels (1 = noise);")
    lines.append("N5sig: groups of >= 3 pixels beyond 5 sigma (either sign) in science - template: false "
                 "detections. Same statistic as report.png.")
    return "\n".join(lines)
