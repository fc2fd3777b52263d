"""The files a run writes into its output directory, each atomically.

``coadd.fits``, ``dcr_coadd.fits``, ``subfilter_<k>.fits``, ``model.fits``, ``report.png``,
``config.toml`` and ``metadata.json`` (and ``artifact_masks/`` when configured). A finished
run's directory holds exactly that run's outputs: `remove_stale` deletes the outputs of an
earlier run with other settings (say ``subfilter_3.fits`` after a rerun with 3 subfilters).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

import numpy as np

from dcrcoadd.core.exposure import Exposure
from dcrcoadd.dcr.assemble import DcrCoaddResult
from dcrcoadd.io.atomic import atomic_output

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
    threshold = baseline.config.dcr.iterative.convergence_threshold if baseline.config is not None else None
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
