"""`run_patch`: one patch from warps to every output; the driver the CLI, the demo, tests and
benchmarks call.

::

    inputs ─ expand, select band, read headers ─ preflight ─────────── (nothing read or written yet)
       │
    OUT_DIR holds a run? ─ same settings: resume its checkpoints
       │                   other settings: refuse (or start over with clobber_config)
    baseline coadd ─────── fewer than 2 usable warps: coadd.fits, config.toml, metadata.json
       │
    DCR stage ──────────── assemble_dcr_coadd over subregions (mapper), a checkpoint per subregion
       │
    outputs ────────────── coadd, dcr_coadd, subfilter_<k>, model, report, config.toml, metadata.json;
                           outputs of an earlier run that this one did not write are removed

A run that fails before any subregion is solved leaves nothing behind: no checkpoint
manifest that would block the corrected rerun, no empty output directory.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dcrcoadd.coadd.baseline import CoaddResult, assemble_coadd
from dcrcoadd.config import Config, to_toml
from dcrcoadd.core.exposure import Exposure
from dcrcoadd.core.geom import Box
from dcrcoadd.dcr.assemble import DcrCoaddResult, assemble_dcr_coadd, box_margin, dcr_tiles
from dcrcoadd.dcr.tasks import TileOutcome
from dcrcoadd.errors import InputError
from dcrcoadd.io.coadd import write_coadd
from dcrcoadd.io.options import ReadOptions
from dcrcoadd.io.paths import check_outdir, remove_if_empty
from dcrcoadd.parallel import Mapper, serial_map
from dcrcoadd.pipeline import checkpoint
from dcrcoadd.pipeline.inputs import (
    Source,
    expand_inputs,
    input_identity,
    input_state,
    preflight,
    read_headers,
    select_band,
)
from dcrcoadd.pipeline.lock import directory_lock
from dcrcoadd.pipeline.metadata import (
    all_warnings,
    collecting_warnings,
    inputs_rows,
    keeping_warnings,
    versions,
)
from dcrcoadd.pipeline.outputs import (
    output_stage,
    remove_temporaries,
    write_dcr_outputs,
    write_metadata,
    write_report,
    write_text,
)

log = logging.getLogger("dcrcoadd.pipeline.run_patch")


@dataclass
class ProgressEvent:
    """What `run_patch` reports as it goes.

    ``stage`` is ``"baseline"`` (``done`` 0 of 1, then 1 of 1 with ``baseline``), ``"dcr"``
    (first with ``done`` the subregions resumed from checkpoints, then once per solved
    subregion with its ``outcome``), ``"iteration"`` (a solver iteration of subregion ``tile``
    with its history ``record``; serial runs only) or ``"outputs"`` (0 of 1, then 1 of 1).
    """

    stage: str
    done: int
    total: int
    outcome: TileOutcome | None = None
    baseline: CoaddResult | None = None
    tile: int | None = None
    record: dict | None = None


@dataclass
class RunResult:
    """What a run produced.

    Attributes
    ----------
    out_dir : Path
    outputs : dict of str to Path
        Every file written, by name (``coadd``, ``dcr_coadd``, ``model``, ``subfilter_<k>``,
        ``report``, ``config``, ``metadata``).
    baseline : CoaddResult
    dcr : DcrCoaddResult or None
        None when fewer than two warps were usable (baseline coadd only).
    metadata : dict
        What ``metadata.json`` holds.
    resumed : list of int
        Subregions taken from checkpoints of an interrupted run.
    """

    out_dir: Path
    outputs: dict[str, Path]
    baseline: CoaddResult
    dcr: DcrCoaddResult | None
    metadata: dict
    resumed: list[int]

    @property
    def warnings(self) -> list[str]:
        return self.metadata["warnings"]


@dataclass
class _Plan:
    """A run's inputs and settings, checked, before any pixel is read."""

    sources: list[Source]
    config: Config
    config_text: str
    manifest: dict
    bbox: Box | None
    out: Path


def run_patch(inputs: Source | Sequence[Source], config: Config | None, out_dir: str | os.PathLike, *,
              mapper: Mapper | None = None, band: str | None = None, bbox: Box | None = None,
              clobber_config: bool = False, dcr_only: bool = False,
              progress: Callable[[ProgressEvent], None] | None = None,
              report_science: Exposure | None = None, title: str | None = None,
              command: str | None = None) -> RunResult:
    """Baseline coadd, DCR model and DCR coadds of one patch, written into ``out_dir``.

    Parameters
    ----------
    inputs : path, Exposure, or sequence of them
        Warps on one pixel grid: files, directories (their ``*.fits``), glob patterns or
        in-memory exposures.
    config : Config or None
        Validated here; None for the defaults.
    out_dir : path-like
        Created if needed. An interrupted run with the same settings there is resumed.
    mapper : callable, optional
        ``map``-like function for the baseline coadd's tasks and the subregion solves
        (`dcrcoadd.parallel.mappers`); default serial. Outputs do not depend on it.
    band : str, optional
        Use only the inputs in this band (``g`` matches ``g``, ``lsst-g``, ``HSC-G``).
    bbox : Box, optional
        Region of the grid (default: the union of the warps).
    clobber_config : bool
        Start over when ``out_dir`` holds a run with other settings (default: refuse).
    dcr_only : bool
        Refuse, instead of writing the baseline coadd only, when fewer than two warps are usable.
    progress : callable, optional
        Called with a `ProgressEvent` at each stage and after each solved subregion.
    report_science : Exposure, optional
        The visit the report's difference panels show (default: the highest-airmass input).
    title : str, optional
        The report's title (default ``dcrcoadd: OUT_DIR``).
    command : str, optional
        The command line to record in ``metadata.json``.

    Returns
    -------
    RunResult

    Raises
    ------
    InputError
        Bad inputs (naming the file), an unwritable ``out_dir``, or ``out_dir`` holding a run
        with other settings (without ``clobber_config``).
    ConfigError
        Invalid configuration.
    """
    config = config if config is not None else Config()
    config.validate()
    out = Path(out_dir)
    notify = progress or (lambda event: None)
    created = not out.exists()
    # this_thread: runs of other patches in this process's other threads (survey tasks on a Dask
    # worker) log their own warnings, not this run's
    with collecting_warnings(keep_replayed=False, this_thread=True) as run_warnings:
        try:
            plan = _plan(inputs, config, out, band=band, bbox=bbox, dcr_only=dcr_only)
            with directory_lock(out):
                done = _resume_or_refuse(out, plan.manifest, clobber_config)
                remove_temporaries(out)  # (of an attempt killed mid-write)
                timings: dict[str, float] = {}
                baseline = _baseline_stage(plan, timings, mapper, notify)
                if len(baseline.inputs) < 2:
                    return _baseline_only(plan, baseline, timings, run_warnings, dcr_only=dcr_only,
                                          command=command)
                result, warnings_by_index, resumed = _dcr_stage(plan, baseline, done, mapper, notify)
                return _write_outputs(plan, result, timings, run_warnings, warnings_by_index, resumed,
                                      notify, report_science=report_science, title=title, command=command)
        except BaseException:
            _leave_nothing_if_nothing_computed(out, created)
            raise


# -- before the first pixel ------------------------------------------------------------------------

def _plan(inputs, config: Config, out: Path, *, band: str | None, bbox: Box | None, dcr_only: bool) -> _Plan:
    if isinstance(inputs, (str, os.PathLike, Exposure)):
        inputs = [inputs]
    sources = expand_inputs(inputs)
    check_outdir(out)
    headers = select_band(read_headers(sources, ReadOptions.from_config(config.inputs)), band)
    preflight(headers, config, dcr_only=dcr_only)
    config_text = to_toml(config)
    box = None if bbox is None else [bbox.x0, bbox.y0, bbox.width, bbox.height]
    manifest = checkpoint.manifest(config_text, [input_identity(h.source, h.name) for h in headers],
                                   versions(), box, [input_state(h) for h in headers])
    return _Plan([h.source for h in headers], config, config_text, manifest, bbox, out)


class SettingsMismatch(InputError):
    """The output directory holds a run with other settings (and no ``clobber_config``): refused, and
    nothing in it changed."""


def _resume_or_refuse(out: Path, manifest: dict, clobber_config: bool) -> dict[int, checkpoint.Checkpoint]:
    """The checkpoints to resume from: those of an interrupted run with the same settings."""
    stored = checkpoint.stored_run(out)
    if stored is None or not stored.interrupted:
        checkpoint.clear(out)  # orphans without a manifest cannot be trusted
    if stored is None:
        return {}
    diff = checkpoint.differences(stored.manifest, manifest)
    if not diff:
        if not stored.interrupted:
            return {}
        if stored.manifest.get("input_state") != manifest["input_state"]:
            # the same files, rewritten since: what was solved from their older pixels is not reused
            log.warning("%s: input files changed since the interrupted run; its %d solved subregions are "
                        "solved again", out, checkpoint.count(out))
            checkpoint.clear(out)
            return {}
        return checkpoint.load_all(out)
    if stored.interrupted and checkpoint.count(out) == 0:
        log.info("%s: an earlier run with other settings stopped before solving anything; starting over", out)
        checkpoint.clear(out)
        return {}
    if not clobber_config:
        raise SettingsMismatch("holds a run with other settings; use --clobber-config to start over ("
                               + "; ".join(diff) + ")", out)
    log.info("%s: starting over with other settings (%s)", out, "; ".join(diff))
    checkpoint.clear(out)
    return {}


def _leave_nothing_if_nothing_computed(out: Path, created: bool) -> None:
    """After a failure: drop a manifest without checkpoints, and the output directory if this run
    created it and it is empty."""
    if checkpoint.count(out) == 0:
        checkpoint.clear(out)
    remove_if_empty(out, created)


# -- stages ----------------------------------------------------------------------------------------

def _baseline_stage(plan: _Plan, timings: dict[str, float], mapper: Mapper | None, notify) -> CoaddResult:
    notify(ProgressEvent("baseline", 0, 1))
    t0 = time.perf_counter()
    # (with the margin the DCR stage reads beyond a box: a baseline-only run cuts it again)
    baseline = assemble_coadd(plan.sources, plan.config, bbox=plan.bbox, margin=box_margin(plan.config),
                              mapper=mapper)
    timings["baseline_coadd"] = time.perf_counter() - t0
    notify(ProgressEvent("baseline", 1, 1, baseline=baseline))
    return baseline


def _dcr_stage(plan: _Plan, baseline: CoaddResult, done: dict[int, checkpoint.Checkpoint],
               mapper: Mapper | None, notify) -> tuple[DcrCoaddResult, dict[int, list[str]], list[int]]:
    """Solve the DCR model subregion by subregion, saving each as a checkpoint; returns the result,
    the warnings of each subregion and the subregions resumed from checkpoints."""
    boxes = [tile.box for tile in dcr_tiles(baseline, plan.config)]
    done = _on_this_grid(done, boxes)
    checkpoint.write_manifest(plan.out, plan.manifest)
    warnings_by_index = {index: c.warnings for index, c in done.items()}
    solved = [len(done)]
    notify(ProgressEvent("dcr", len(done), len(boxes)))

    def on_subregion(outcome: TileOutcome) -> None:
        checkpoint.save(plan.out, outcome, warnings_by_index.get(outcome.index, []))
        solved[0] += 1
        notify(ProgressEvent("dcr", solved[0], len(boxes), outcome=outcome))

    def on_iteration(tile: int, record: dict) -> None:
        notify(ProgressEvent("iteration", solved[0], len(boxes), tile=tile, record=record))

    serial = mapper is None or mapper is serial_map  # iterations are heard only in this process
    result = assemble_dcr_coadd(plan.sources, plan.config, bbox=plan.bbox, baseline=baseline,
                                mapper=keeping_warnings(mapper or serial_map, warnings_by_index),
                                on_subregion=on_subregion, on_iteration=on_iteration if serial else None,
                                done={index: c.outcome for index, c in done.items()})
    return result, warnings_by_index, sorted(done)


def _on_this_grid(done: dict[int, checkpoint.Checkpoint],
                  boxes: list[Box]) -> dict[int, checkpoint.Checkpoint]:
    kept = {}
    for index, c in done.items():
        if index < len(boxes) and c.outcome.box == boxes[index]:
            kept[index] = c
        else:
            log.warning("discarding checkpoint of subregion %d: its box %s is not on this run's grid",
                        index, c.outcome.box)
    return kept


# -- outputs ---------------------------------------------------------------------------------------

def _common_metadata(plan: _Plan, baseline: CoaddResult, timings: dict[str, float], warnings: list[str],
                     command: str | None, resumed: list[int]) -> dict:
    return {"inputs": inputs_rows(baseline),
            "skipped": [{"name": n, "reason": r} for n, r in baseline.skipped],
            "input_paths": plan.manifest["inputs"], "box": plan.manifest["box"],
            "versions": plan.manifest["versions"], "timings_s": timings, "warnings": warnings,
            "command": command, "resumed_subregions": resumed}


def _baseline_only(plan: _Plan, baseline: CoaddResult, timings: dict[str, float], run_warnings: list[str], *,
                   dcr_only: bool, command: str | None) -> RunResult:
    baseline = baseline.cropped()
    n = len(baseline.inputs)
    if dcr_only:
        raise InputError(f"only {n} usable warp: the DCR model is underdetermined", "assemble")
    log.warning("only %d usable warp: the DCR model is underdetermined; writing the baseline coadd only", n)
    with output_stage(plan.out):
        t0 = time.perf_counter()
        written = {"coadd": write_coadd(baseline, plan.out / "coadd.fits")}
        timings["write_outputs"] = time.perf_counter() - t0
        written["config"] = write_text(plan.out / "config.toml", plan.config_text)
        meta = {"dcr": False, **_common_metadata(plan, baseline, timings, list(run_warnings), command, [])}
        written["metadata"] = write_metadata(plan.out / "metadata.json", meta)
    checkpoint.clear(plan.out)
    return RunResult(plan.out, written, baseline, None, meta, [])


def _write_outputs(plan: _Plan, result: DcrCoaddResult, timings: dict[str, float], run_warnings: list[str],
                   warnings_by_index: dict[int, list[str]], resumed: list[int], notify, *,
                   report_science: Exposure | None, title: str | None, command: str | None) -> RunResult:
    notify(ProgressEvent("outputs", 0, 1))
    out = plan.out
    with output_stage(out):
        t0 = time.perf_counter()
        written = write_dcr_outputs(result, out)
        report = write_report(result, out / "report.png", science=report_science,
                              title=title if title is not None else f"dcrcoadd: {out}")
        if report is not None:
            written["report"] = report
        timings.update({k: v for k, v in result.metadata["timings_s"].items() if k != "baseline_coadd"})
        timings["write_outputs"] = time.perf_counter() - t0
        written["config"] = write_text(out / "config.toml", plan.config_text)
        meta = {"dcr": True, **result.metadata}
        meta["subregions"] = {index: {**entry, "warnings": warnings_by_index.get(index, [])}
                              for index, entry in result.metadata["subregions"].items()}
        warnings = all_warnings(run_warnings, warnings_by_index)
        meta.update(_common_metadata(plan, result.baseline, timings, warnings, command, resumed))
        written["metadata"] = write_metadata(out / "metadata.json", meta)
    checkpoint.clear(out)
    notify(ProgressEvent("outputs", 1, 1))
    return RunResult(out, written, result.baseline, result, meta, resumed)
