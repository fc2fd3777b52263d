"""A simulation's files and summaries: warps, noise twins, truth images and tables."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.table import Table

from dcrcoadd.core.bandpass import Bandpass
from dcrcoadd.io.atomic import atomic_output
from dcrcoadd.io.fits import exposure_hdus, write_exposure, write_hdus
from dcrcoadd.sim.config import SimulationConfig
from dcrcoadd.sim.result import Simulation

__all__ = ["summary_lines", "visit_table", "write_simulation"]

log = logging.getLogger("dcrcoadd.sim.writers")


def visit_table(sim: Simulation) -> Table:
    """One row per visit: id, time, airmass, zenith distance, parallactic angles, seeing, sky, calibration."""
    streaked = {s.visit_id for s in sim.streaks}
    rows = []
    for sv in sim.visits:
        v = sv.visit
        rows.append({
            "id": sv.id, "time": "" if v.time is None else v.time.utc.isot,
            "airmass": v.airmass, "zenith_distance": sv.zenith_distance,
            "parallactic_angle": sv.parallactic_angle,
            "render_parallactic_angle": sv.render_parallactic_angle,
            "azimuth": v.boresight_az.deg, "altitude": v.boresight_alt.deg, "seeing": sv.seeing,
            "sky": sv.sky, "flux_calibration": sv.flux_calibration, "streak": sv.id in streaked,
        })
    table = Table(rows=rows, names=list(rows[0]))
    for name, unit in (("zenith_distance", u.deg), ("parallactic_angle", u.deg),
                       ("render_parallactic_angle", u.deg), ("azimuth", u.deg), ("altitude", u.deg),
                       ("seeing", u.arcsec), ("flux_calibration", u.nJy)):
        table[name].unit = unit
    table.meta["note"] = ("parallactic_angle: apparent (as VisitInfo derives it); "
                          "render_parallactic_angle: zenith position angle from ICRS north, as given to "
                          "GalSim; sky in counts per pixel; flux_calibration in nJy per count")
    return table


def summary_lines(sim: Simulation) -> list[str]:
    """A short text table of the visits (id, airmass, parallactic angle, seeing) for the command line."""
    lines = [f"{'visit':>8} {'airmass':>8} {'par.angle':>10} {'seeing':>8}  notes",
             f"{'':>8} {'':>8} {'(deg)':>10} {'(arcsec)':>8}"]
    streaked = {s.visit_id for s in sim.streaks}
    for sv in sim.visits:
        note = "streak" if sv.id in streaked else ""
        lines.append(f"{sv.id:>8d} {sv.visit.airmass:>8.3f} {sv.parallactic_angle:>10.1f} "
                     f"{sv.seeing:>8.2f}  {note}".rstrip())
    return lines


def _write_table(table: Table, path: Path) -> Path:
    with atomic_output(path) as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)
    return path


def write_simulation(sim: Simulation, outdir: str | Path) -> dict[str, list[Path]]:
    """Write a simulation under ``outdir``.

    Layout: ``warps/visit_<id>.fits`` and ``twins/visit_<id>.fits`` (exposure
    format), ``truth/catalog.ecsv``, ``truth/visits.ecsv``,
    ``truth/subfilter_<k>.fits`` (noise-free, nJy, fiducial PSF; header
    ``SUBFILT``, ``NSUBFILT``, ``SUBLO``, ``SUBHI``), ``truth/streaks.fits``
    (table ``STREAKS`` of line parameters and one ``STREAK_<id>`` footprint
    image per streaked visit) and ``truth/config.json``. Files are the same
    bytes for the same configuration.

    Returns
    -------
    dict
        ``{"warps": [...], "twins": [...], "truth": [...]}`` paths written.
    """
    out = Path(outdir)
    earlier = _earlier_files(out)
    written: dict[str, list[Path]] = {"warps": [], "twins": [], "truth": []}
    for exp in sim.warps:
        written["warps"].append(write_exposure(exp, out / "warps" / f"visit_{exp.visit.id}.fits"))
    for exp in sim.twins:
        written["twins"].append(write_exposure(exp, out / "twins" / f"visit_{exp.visit.id}.fits"))
    truth_dir = out / "truth"
    written["truth"].append(_write_table(sim.catalog, truth_dir / "catalog.ecsv"))
    written["truth"].append(_write_table(visit_table(sim), truth_dir / "visits.ecsv"))
    m = len(sim.truth)
    for k, exp in enumerate(sim.truth):
        hdus = exposure_hdus(exp)
        lo, hi = sim.subfilter_edges[k]
        h = hdus[0].header
        h["SUBFILT"] = (k, "subfilter index, blue to red")
        h["NSUBFILT"] = (m, "number of subfilters")
        h["SUBLO"] = (float(lo), "[nm] nominal subfilter start")
        h["SUBHI"] = (float(hi), "[nm] nominal subfilter end")
        h["BUNIT"] = ("nJy", "noise-free truth")
        written["truth"].append(write_hdus(hdus, truth_dir / f"subfilter_{k}.fits"))
    table = fits.BinTableHDU.from_columns([
        fits.Column("visit", "K", array=np.array([s.visit_id for s in sim.streaks], dtype=np.int64)),
        fits.Column("x", "D", unit="pix", array=np.array([s.x for s in sim.streaks])),
        fits.Column("y", "D", unit="pix", array=np.array([s.y for s in sim.streaks])),
        fits.Column("angle", "D", unit="deg", array=np.array([s.angle for s in sim.streaks])),
        fits.Column("sigma", "D", unit="pix", array=np.array([s.sigma for s in sim.streaks])),
        fits.Column("peak", "D", unit="count", array=np.array([s.peak for s in sim.streaks])),
    ], name="STREAKS")
    hdus = [fits.PrimaryHDU(), table]
    for s in sim.streaks:
        img = fits.ImageHDU(s.footprint.astype(np.uint8), name=f"STREAK_{s.visit_id}")
        img.header["LTV1"], img.header["LTV2"] = -sim.config.origin[0], -sim.config.origin[1]
        hdus.append(img)
    written["truth"].append(write_hdus(fits.HDUList(hdus), truth_dir / "streaks.fits"))
    config_path = truth_dir / "config.json"
    with atomic_output(config_path) as tmp:
        tmp.write_text(json.dumps(_config_dict(sim.config), indent=2, sort_keys=True) + "\n")
    written["truth"].append(config_path)
    _remove_earlier(out, written, earlier)
    return written


#: What `write_simulation` writes in each folder, which ``assemble OUT/warps`` and the like would take.
_OWN_FILES = {"warps": "visit_*.fits", "twins": "visit_*.fits", "truth": "subfilter_*.fits"}


def _earlier_files(out: Path) -> set[Path]:
    """The files an earlier simulation wrote in ``out``, as its visit table and settings name them
    (none without them): the only files a later one removes."""
    names: list[Path] = []
    try:
        ids = Table.read(out / "truth" / "visits.ecsv", format="ascii.ecsv")["id"]
        names += [out / folder / f"visit_{int(i)}.fits" for i in ids for folder in ("warps", "twins")]
    except (OSError, ValueError, KeyError):
        pass
    try:
        m = int(json.loads((out / "truth" / "config.json").read_text())["n_subfilters"])
        names += [out / "truth" / f"subfilter_{k}.fits" for k in range(m)]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return {p.resolve() for p in names if p.is_file()}


def _remove_earlier(out: Path, written: dict[str, list[Path]], earlier: set[Path]) -> None:
    """Remove the files of an earlier simulation in ``out`` that this one did not rewrite (fewer visits
    or subfilters): left there, a later ``assemble warps/`` mixed two simulations' fields. Other files
    named like the simulation's are not removed (they may be the user's): a warning names them."""
    keep = {p.resolve() for paths in written.values() for p in paths}
    stale = sorted(earlier - keep)
    for path in stale:
        path.unlink()
    if stale:
        log.info("%s: removed %d files of an earlier simulation there (%s)", out, len(stale),
                 _some(stale, out.resolve()))
    foreign = [p for folder, pattern in _OWN_FILES.items() for p in sorted((out / folder).glob(pattern))
               if p.resolve() not in keep]
    if foreign:
        log.warning("%s: files there that this simulation did not write were left as they are (%d: %s); "
                    "`dcrcoadd assemble %s` would take them too", out, len(foreign), _some(foreign, out),
                    out / "warps")


def _some(paths: list[Path], base: Path, shown: int = 3) -> str:
    more = ", ..." if len(paths) > shown else ""
    return ", ".join(str(p.relative_to(base)) for p in paths[:shown]) + more


def _config_dict(config: SimulationConfig) -> dict:
    d = asdict(config)
    if isinstance(config.band, Bandpass):
        d["band"] = config.band.name
    if config.weather is not None:
        w = config.weather
        d["weather"] = {"temperature_C": float(w.temperature.value), "pressure_Pa": float(w.pressure.value),
                        "humidity": w.humidity}
    return d
