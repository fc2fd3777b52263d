"""The files a run writes into its output directory, each atomically.

``coadd.fits``, ``dcr_coadd.fits``, ``subfilter_<k>.fits``, ``model.fits``, ``report.png``,
``config.toml`` and ``metadata.json`` (and ``artifact_masks/`` when configured). A finished
run's directory holds exactly that run's outputs: `remove_stale` deletes the outputs of an
earlier run with other settings (say ``subfilter_3.fits`` after a rerun with 3 subfilters).
Only files a run wrote are ever deleted: a user's own ``subfilter_7.fits`` in the directory is not
a dcrcoadd product, and it stays.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from dcrcoadd.core.exposure import Exposure
from dcrcoadd.dcr.assemble import DcrCoaddResult
from dcrcoadd.io.atomic import atomic_output
from dcrcoadd.io.products import product_of
from dcrcoadd.pipeline.checkpoint import checkpoint_dir

log = logging.getLogger("dcrcoadd.pipeline.outputs")

#: Names (file or directory) in an output directory that belong to a run.
RUN_OUTPUTS = re.compile(r"^(coadd\.fits|dcr_coadd\.fits|model\.fits|subfilter_\d+\.fits|report\.png|"
                         r"config\.toml|metadata\.json|artifact_masks)$")
ARTIFACT_MASKS = "artifact_masks"


def write_dcr_outputs(result: DcrCoaddResult, outdir: str | os.PathLike) -> dict[str, Path]:
    """Write the coadd products of DESIGN.md into ``outdir``, each atomically.

    ``dcr_coadd.fits`` and every ``subfilter_<k>.fits`` carry an ``NIMAGE`` extension: the
    number of inputs contributing to each pixel (summed over subfilters for the stacked coadd,
    so it is up to M times the baseline coadd's, as in LSST).
    """
    from astropy.io import fits

    from dcrcoadd.io.coadd import write_coadd
    from dcrcoadd.io.fits import exposure_hdus, write_hdus
    from dcrcoadd.io.products import mark_product

    def with_nimage(exposure: Exposure, n_image: np.ndarray, path: Path, kind: str) -> Path:
        hdus = exposure_hdus(exposure)
        mark_product(hdus[0].header, kind)
        hdus.append(fits.ImageHDU(data=n_image.astype(np.int32), name="NIMAGE"))
        return write_hdus(hdus, path)

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = {"coadd": write_coadd(result.baseline, outdir / "coadd.fits"),
             "dcr_coadd": with_nimage(result.coadd, result.n_image, outdir / "dcr_coadd.fits", "dcr_coadd"),
             "model": result.model.write(outdir / "model.fits")}
    for k, exp in enumerate(result.subfilter_coadds):
        paths[f"subfilter_{k}"] = with_nimage(exp, result.subfilter_n_images[k],
                                              outdir / f"subfilter_{k}.fits", "subfilter")
    return paths


def write_report(result: DcrCoaddResult, path: str | os.PathLike, *, science: Exposure | None = None,
                 title: str = "") -> Path | None:
    """The report figure of a DCR run (`dcrcoadd.report.figure.make_report` of `report_data`).

    Returns None, with a warning, when matplotlib (the ``plot`` extra) is missing.
    """
    from dcrcoadd.errors import ConfigError
    from dcrcoadd.report.figure import _matplotlib, make_report

    try:
        _matplotlib()  # before the leave-one-out re-solve, which only the figure needs
    except ConfigError as exc:
        log.warning("no report: %s", exc)
        return None
    return make_report(path, title=title, **report_data(result, science=science))


def convergence_threshold(config) -> float | None:
    """The threshold the run's solver stops on (relative improvement per iteration), or None for a
    solver without one."""
    if config is None:
        return None
    if config.dcr.solver != "iterative":
        return None
    return float(config.dcr.iterative.convergence_threshold)


def report_data(result: DcrCoaddResult, *, science: Exposure | None = None) -> dict:
    """What the report draws, as the keyword arguments of `dcrcoadd.report.figure.make_report`.

    The difference panels show ``science`` when given (a visit held out of the model, on the
    patch grid); otherwise the highest-airmass input, left out of a quick re-solve of the
    central cut of the patch (`dcrcoadd.report.showcase`). The DCR vectors and the coverage
    line come from `dcrcoadd.report.coverage`.
    """
    from dcrcoadd.report.coverage import coverage, dcr_vector, dcr_vectors
    from dcrcoadd.report.showcase import held_out_showcase, leave_one_out_showcase

    baseline, model = result.baseline, result.model
    table = baseline.inputs_table()
    inputs = [{"visit": int(r["visit"]), "airmass": float(r["airmass"]),
               "parallactic_angle": float(r["parallactic_angle"]),
               "seeing_arcsec": float(r["psf_fwhm_arcsec"]), "seeing_px": float(r["psf_fwhm"]),
               "weight": float(r["weight"])} for r in table]
    histories = {f"subregion {k}": v["history"] for k, v in result.metadata["subregions"].items()}
    vectors = dcr_vectors(baseline.inputs, model)
    if science is not None:
        showcase, note = held_out_showcase(result, science)
        if showcase is not None:
            v = dcr_vector(science.visit, model)
            showcase.update(dcr_vector=(v.dy, v.dx), vector_label=f"held out {science.visit.id}")
    else:
        showcase, note = leave_one_out_showcase(result)
        if showcase is not None:
            v = vectors[showcase["input_index"]]
            showcase.update(dcr_vector=(v.dy, v.dx), vector_label=f"left out {showcase['visit']}")
    log.info("report: %s", note)
    return {"subfilter_images": model.images, "histories": histories, "inputs": inputs,
            "showcase": showcase, "convergence_threshold": convergence_threshold(baseline.config),
            "dcr_vectors": vectors, "coverage_line": coverage(vectors, len(model)).line(),
            "notes": [] if showcase is not None else [note + "."]}


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text output (``config.toml``) atomically."""
    path = Path(path)
    with atomic_output(path) as tmp:
        tmp.write_text(text)
    return path


def write_metadata(path: str | os.PathLike, metadata: dict) -> Path:
    """Write ``metadata.json`` atomically (values JSON cannot hold are written as text)."""
    return write_text(path, json.dumps(metadata, indent=1, default=str))


def snapshot(outdir: str | os.PathLike) -> dict[Path, tuple[int, int, int]]:
    """Identity (device, inode, mtime) of every run output now in ``outdir``, artifact masks included.

    Outputs are replaced by renaming a new file onto them, so an output whose identity is the
    same after a run's output stage was not written by that run.
    """
    outdir = Path(outdir)
    if not outdir.is_dir():
        return {}
    found = {}
    for entry in outdir.iterdir():
        if not RUN_OUTPUTS.match(entry.name):
            continue
        paths = sorted(entry.glob("*_artifacts.fits")) if entry.name == ARTIFACT_MASKS else [entry]
        for path in paths:
            if path.is_file():
                st = path.stat()
                found[path] = (st.st_dev, st.st_ino, st.st_mtime_ns)
    return found


def written_by_a_run(outputs: dict[Path, tuple[int, int, int]],
                     outdir: str | os.PathLike) -> dict[Path, tuple[int, int, int]]:
    """The entries of ``outputs`` (a `snapshot` of ``outdir``) that a dcrcoadd run wrote: files of the
    user's that happen to share an output's name are left out, so `remove_stale` never deletes them."""
    # FITS outputs carry their product card; config.toml and report.png carry no mark, and are a run's
    # when its metadata.json (written last, in the same output stage) is beside them
    run_metadata = _is_run_metadata(Path(outdir) / "metadata.json")
    return {path: identity for path, identity in outputs.items()
            if (product_of(path) is not None if path.suffix == ".fits" else run_metadata)}


def _is_run_metadata(path: Path) -> bool:
    try:
        metadata = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(metadata, dict) and {"versions", "timings_s", "inputs"} <= metadata.keys()


def remove_temporaries(out: str | os.PathLike) -> None:
    """Delete the temporary files an attempt killed mid-write left in ``out`` and its checkpoints
    (`dcrcoadd.io.atomic.atomic_output` names): a run never finishes with them beside its outputs."""
    out = Path(out)
    for directory in (out, checkpoint_dir(out)):
        for path in directory.glob(".*.tmp") if directory.is_dir() else ():
            path.unlink(missing_ok=True)


@contextmanager
def output_stage(outdir: str | os.PathLike) -> Iterator[None]:
    """The block that writes a run's outputs into ``outdir``, each atomically, as one set.

    When the block completes, the outputs of an earlier run that it did not rewrite are removed
    (`remove_stale`). When it fails, or is interrupted, the outputs it had already written are removed
    instead (`discard_written`): a directory never holds a finished-looking ``model.fits`` or coadd
    without the run's ``metadata.json``, and a rerun resumes from the checkpoints.
    """
    before = snapshot(outdir)
    earlier_outputs = written_by_a_run(before, outdir)
    try:
        yield
    except BaseException:
        discard_written(outdir, before)
        raise
    remove_stale(earlier_outputs)


def discard_written(outdir: str | os.PathLike, before: dict[Path, tuple[int, int, int]]) -> list[Path]:
    """Delete the run outputs in ``outdir`` written since ``before`` (a `snapshot`): new, or replaced."""
    removed = []
    for path, identity in snapshot(outdir).items():
        if before.get(path) != identity:
            path.unlink(missing_ok=True)
            removed.append(path)
    for path in {p.parent for p in removed if p.parent.name == ARTIFACT_MASKS}:
        if path.is_dir() and not any(path.iterdir()):
            shutil.rmtree(path, ignore_errors=True)
    if removed:
        log.info("removed the %d outputs this run had written before it stopped", len(removed))
    return removed


def remove_stale(before: dict[Path, tuple[int, int, int]]) -> list[Path]:
    """Delete the run outputs of ``before`` (a `snapshot`) that the run since has not rewritten."""
    removed = []
    for path, identity in before.items():
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        if (st.st_dev, st.st_ino, st.st_mtime_ns) == identity:
            path.unlink()
            removed.append(path)
            log.info("removed %s, an output of an earlier run with other settings", path)
    for path in {p.parent for p in removed if p.parent.name == ARTIFACT_MASKS}:
        if not any(path.iterdir()):
            shutil.rmtree(path, ignore_errors=True)
    return removed
