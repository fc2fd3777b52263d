"""The "bad inputs" table of the validation suite (issue 16).

Each kind of bad input a user can give is tried through the command line
(`dcrcoadd.cli.main`, in this process) on a small set of six synthetic warps
(64x64 pixels, LSST g, one field at airmass 1-2): impossible weather and unit
mix-ups, impossible site and pointing, a missing flux calibration among calibrated
warps, an airmass that contradicts the altitude, more subfilters than the warps can
constrain, damaged or inconsistent files, a band that selects nothing, unusable
output directories, a damaged checkpoint, a full disk, and bad science files for
``template``. For each it records the exit status, the message (paths shown
relative to the case's folder), the files left behind in the output directory and
whether that is what the project promises:

* ``refused``: exit status 2, exactly one ``error:`` line naming the file or
  setting, and nothing left behind;
* ``warned``: exit status 0, the outputs written, and a warning that says what
  was wrong and what was used instead;
* ``recovered``: exit status 0 after the damage was reported and repaired;
* ``refused, resumable``: exit status 2 with one ``error:`` line; only the
  checkpoints of the finished subregions are kept, so the rerun resumes.

``python -m benchmarks.bad_inputs`` prints the table and writes
``benchmarks/results/bad_inputs.json``; ``python -m benchmarks`` runs it too (about half a minute).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import logging
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

try:
    from . import common
except ImportError:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks import common

SIZE = 64
N_WARPS = 6
SUBREGION = 32  # four subregions: checkpoints to damage
CALIBRATION = 0.48  # nJy per image unit of the calibrated warps


# -- the workspace ----------------------------------------------------------------------------------


@dataclass
class Workspace:
    """One case's folder: a fresh copy of the warps, the science file and the model of a good run."""

    root: Path
    warps: Path
    science: Path
    model: Path
    out: Path

    def warp(self, i: int) -> Path:
        return self.warps / f"warp_{i}.fits"

    def assemble(self, *extra: str) -> list[str]:
        return ["assemble", str(self.warps), "--out", str(self.out), "-q",
                "--set", f"coadd.subregion_size=[{SUBREGION},{SUBREGION}]", *extra]

    def template(self, *extra: str) -> list[str]:
        return ["template", str(self.model), str(self.science), "--out", str(self.out), "-q", *extra]


def edit_cards(path: Path, hdu: int = 0, **cards) -> None:
    """Set (or, with None, remove) header cards; ``_`` in a name stands for ``-`` (not in a WCS matrix
    card such as ``PC1_1``)."""
    from astropy.io import fits

    with fits.open(path, mode="update") as hdul:
        header = hdul[hdu].header
        for key, value in cards.items():
            if not re.fullmatch(r"(PC|CD|PV)\d+_\d+", key):
                key = key.replace("_", "-")
            if value is None:
                header.remove(key, ignore_missing=True)
            else:
                header[f"HIERARCH {key}" if len(key) > 8 else key] = value


def _write_set(directory: Path) -> tuple[Path, Path]:
    """Six calibrated warps and one held-out science exposure; returns their folders."""
    from dcrcoadd.io import write_exposure

    try:
        from . import dcr_assemble
    except ImportError:
        from benchmarks import dcr_assemble
    warps, science = dcr_assemble.synthetic_field(SIZE, SIZE, N_WARPS, seed=3, n_science=1)
    (directory / "warps").mkdir(parents=True)
    (directory / "science").mkdir()
    for i, exp in enumerate(warps):
        exp.flux_calibration = CALIBRATION
        exp.image /= CALIBRATION
        exp.variance /= CALIBRATION**2
        write_exposure(exp, directory / "warps" / f"warp_{i}.fits")
    science[0].flux_calibration = CALIBRATION  # (in the warps' units: its template's fluxes match)
    science[0].image /= CALIBRATION
    science[0].variance /= CALIBRATION**2
    write_exposure(science[0], directory / "science" / "science.fits")
    return directory / "warps", directory / "science" / "science.fits"


# -- damage -----------------------------------------------------------------------------------------


def truncate(path: Path, fraction: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def _interrupted_run(ws: Workspace) -> None:
    """Leave ``ws.out`` as a run interrupted after its first subregion (its checkpoint kept)."""
    from dcrcoadd.config import Config, apply_override
    from dcrcoadd.pipeline import run_patch

    class Stop(Exception):
        pass

    def stop(event):
        if event.outcome is not None:
            raise Stop

    config = Config()
    apply_override(config, f"coadd.subregion_size=[{SUBREGION},{SUBREGION}]")
    with contextlib.suppress(Stop):
        run_patch([str(ws.warps)], config, ws.out, progress=stop)


@contextlib.contextmanager
def _full_disk():
    """Every FITS write fails as on a full disk, after writing part of the file."""
    from astropy.io import fits

    original = fits.HDUList.writeto

    def writeto(self, name, *args, **kwargs):
        with open(name, "wb") as fh:
            fh.write(b"SIMPLE  =                    T")
        raise OSError(errno.ENOSPC, "No space left on device")

    fits.HDUList.writeto = writeto
    try:
        yield
    finally:
        fits.HDUList.writeto = original


# -- the cases --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One bad input: what is done to the workspace and the command line it is tried with."""

    name: str
    expected: str  # refused | warned | recovered | refused, resumable
    fragment: str  # what the message must say
    prepare: Callable[[Workspace], list[str]]
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext


def _card_case(name: str, fragment: str, warp: int = 2, **cards) -> Case:
    def prepare(ws: Workspace) -> list[str]:
        edit_cards(ws.warp(warp), **cards)
        return ws.assemble()

    return Case(name, "refused", fragment, prepare)


def _empty_file(ws):
    ws.warp(3).write_bytes(b"")
    return ws.assemble()


def _no_visit(ws):
    visit_cards = ("EXPID", "EXPTIME", "BORE-RA", "BORE-DEC", "BORE-AZ", "BORE-ALT", "BORE-ROTANG",
                   "BORE-AIRMASS", "ROTTYPE")
    edit_cards(ws.warp(1), **{key.replace("-", "_"): None for key in visit_cards})
    return ws.assemble()


def _drop_hdu(path: Path, name: str) -> None:
    from astropy.io import fits

    with fits.open(path) as hdul:
        kept = [h.copy() for h in hdul if h.name != name]
    fits.HDUList(kept).writeto(path, overwrite=True)


def _no_psf(ws):
    _drop_hdu(ws.warp(2), "PSF")
    return ws.assemble()


def _flat_psf(ws):
    import numpy as np
    from astropy.io import fits

    with fits.open(ws.warp(2), mode="update") as hdul:
        hdul["PSF"].data = np.ones_like(hdul["PSF"].data)
    return ws.assemble()


def _zero_filled_border(ws):
    from astropy.io import fits

    with fits.open(ws.warp(2), mode="update") as hdul:  # a resampler's 0 off the chip, unmasked
        hdul["IMAGE"].data[:, :8] = 0.0
    return ws.assemble()


def _variance_too_large(ws):
    from astropy.io import fits

    for i in range(N_WARPS):  # a factor every warp shares, which no comparison between them sees
        with fits.open(ws.warp(i), mode="update") as hdul:
            hdul["VARIANCE"].data = hdul["VARIANCE"].data * 9
    return ws.assemble()


def _humidity_fraction(ws):
    edit_cards(ws.warp(2), HUMIDITY=0.45)
    return ws.assemble()


def _missing_fluxcal(ws):
    edit_cards(ws.warp(4), FLUXCAL=None)
    return ws.assemble()


def _contradicting_airmass(ws):
    edit_cards(ws.warp(4), BORE_AIRMASS=3.0)  # its BORE-ALT says about 1.5
    return ws.assemble()


def _too_many_subfilters(ws):
    return ws.assemble("--set", "dcr.dcr_num_subfilters=50")


def _truncated(ws):
    truncate(ws.warp(3))
    return ws.assemble()


def _other_band(ws):
    edit_cards(ws.warp(1), FILTER="lsst-r", BANDLAM=619.4, BANDWID=137.5)
    _drop_hdu(ws.warp(1), "TRANSMISSION")  # (the g curve under r cards is refused for itself)
    return ws.assemble()


def _other_grid(ws):
    from astropy.io import fits

    crval = fits.getheader(ws.warp(5), 1)["CRVAL1"]
    edit_cards(ws.warp(5), hdu=1, CRVAL1=crval + 1.0 / 3600)
    return ws.assemble()


def _repeated_visit(ws):
    shutil.copy(ws.warp(0), ws.warps / "warp_0_copy.fits")
    return ws.assemble()


def _one_exposure_two_visits(ws):
    shutil.copy(ws.warp(0), ws.warps / "warp_0_copy.fits")
    edit_cards(ws.warps / "warp_0_copy.fits", EXPID=999)
    return ws.assemble()


def _filter_against_bandlam(ws):
    edit_cards(ws.warp(4), FILTER="lsst-r")
    return ws.assemble()


def _box_off_the_warps(ws):
    return ws.assemble("--box", "5000,5000,32,32")


def _no_wavelengths(ws):
    for i in range(N_WARPS):
        edit_cards(ws.warp(i), FILTER="g", BANDLAM=None, BANDWID=None)
    return ws.assemble()


def _angstrom_band(ws):
    for i in range(N_WARPS):
        edit_cards(ws.warp(i), BANDLAM=4787.0, BANDWID=1486.0)
    return ws.assemble()


def _ultraviolet_band(ws):
    for i in range(N_WARPS):
        edit_cards(ws.warp(i), BANDLAM=250.0, BANDWID=60.0)
    return ws.assemble()


def _no_warp_in_band(ws):
    return ws.assemble("--band", "r")


def _out_is_a_file(ws):
    ws.out.write_text("not a directory\n")
    return ws.assemble()


def _out_inside_a_file(ws):
    (ws.root / "notes.txt").write_text("a file\n")
    ws.out = ws.root / "notes.txt" / "out"
    return ws.assemble()


def _out_is_a_dangling_link(ws):
    ws.out.symlink_to(ws.root / "moved_away")
    return ws.assemble()


def _unknown_setting(ws):
    return ws.assemble("--set", "dcr.max_num_iter=4")


def _damaged_checkpoint(ws):
    _interrupted_run(ws)
    [checkpoint] = sorted((ws.out / ".checkpoints").glob("subregion_*.npz"))
    truncate(checkpoint)
    return ws.assemble()


def _full_disk_case(ws):
    return ws.assemble()


def _science_weather(ws):
    edit_cards(ws.science, AIRTEMP=500.0)
    return ws.template()


def _science_band(ws):
    edit_cards(ws.science, FILTER="lsst-r", BANDLAM=619.4, BANDWID=137.5)
    _drop_hdu(ws.science, "TRANSMISSION")
    return ws.template()


def _science_near_the_horizon(ws):
    edit_cards(ws.science, BORE_ALT=3.8, BORE_AIRMASS=15.0, BORE_RA=None, BORE_DEC=None)
    return ws.template()


def _science_variance_as_sigma(ws):
    import numpy as np
    from astropy.io import fits

    with fits.open(ws.science, mode="update") as hdul:
        hdul["VARIANCE"].data = np.sqrt(hdul["VARIANCE"].data)
    return ws.template("--diff")


def _science_with_its_sky(ws):
    from astropy.io import fits

    with fits.open(ws.science, mode="update") as hdul:
        hdul["IMAGE"].data = hdul["IMAGE"].data + 1000.0
    return ws.template("--diff")


def _truncated_model(ws):
    ws.model = ws.root / "model.fits"
    truncate(ws.model, 0.6)
    return ws.template()


def _model_without_wcs(ws):
    from astropy.io import fits

    ws.model = ws.root / "model.fits"
    with fits.open(ws.model, mode="update") as hdul:
        header = hdul["IMAGE"].header
        for key in [k for k in header if k[:5] in ("CTYPE", "CRVAL", "CRPIX", "CDELT", "CUNIT")
                    or re.fullmatch(r"(PC|CD)\d_\d|WCSAXES", k)]:
            header.remove(key, remove_all=True)
    return ws.template()


CASES = [
    _card_case("AIRTEMP = 500 (°C)", "AIRTEMP = 500", AIRTEMP=500.0),
    _card_case("AIRTEMP = 271 (kelvin written as °C)", "kelvin", AIRTEMP=271.0),
    _card_case("AIRPRESS = 731.66 (mbar written as Pa)", "mbar", AIRPRESS=731.66),
    _card_case("AIRPRESS = 73.2 (kPa written as Pa)", "kPa", AIRPRESS=73.2),
    _card_case("HUMIDITY = 250", "HUMIDITY = 250", HUMIDITY=250.0),
    _card_case("OBS-LAT = 95", "OBS-LAT = 95", OBS_LAT=95.0),
    _card_case("BORE-AIRMASS = 0.8", "below 1", BORE_AIRMASS=0.8),
    _card_case("BORE-ALT = -3 (below the horizon)", "horizon", BORE_ALT=-3.0),
    _card_case("BORE-RA 40° away from the image's WCS", "farther than a camera sees", BORE_RA=220.0),
    _card_case("DATE-AVG = 'yesterday'", "not a valid time", DATE_AVG="yesterday"),
    _card_case("EXPTIME = 30000 (milliseconds written as seconds)", "milliseconds", EXPTIME=30000.0),
    _card_case("EXPID = 10¹⁹ (beyond a signed 64-bit id)", "64-bit", EXPID=10**19),
    _card_case("FLUXCAL = 1e300", "AB zero point", FLUXCAL=1e300),
    Case("HUMIDITY = 0.45 (a fraction)", "warned", "if it is a fraction", _humidity_fraction),
    Case("a zero-filled border without a mask bit", "warned", "exact zeros", _zero_filled_border),
    Case("every warp's VARIANCE 9 times its noise", "warned", "times too large", _variance_too_large),
    _card_case("RA---TPV without its PV cards", "degenerate", hdu=1, CTYPE1="RA---TPV", CTYPE2="DEC--TPV"),
    _card_case("CDELT = 0.2 (arcsec written as degrees)", "in arcsec?", hdu=1, PC1_1=-1.0, PC2_2=1.0,
               CDELT1=0.2, CDELT2=0.2),
    _card_case("one warp in FK4 (RADESYS, EQUINOX = 1950)", "one sky frame", hdu=1, RADESYS="FK4",
               EQUINOX=1950.0),
    Case("FLUXCAL missing on one of six calibrated warps", "refused", "FLUXCAL", _missing_fluxcal),
    Case("a warp without a PSF (compare-warp needs one)", "refused", "has no PSF", _no_psf),
    Case("a flat PSF extension (not a PSF)", "refused", "does not fall to half its peak", _flat_psf),
    Case("BORE-AIRMASS = 3.0 contradicting BORE-ALT", "warned", "contradicts", _contradicting_airmass),
    Case("dcr_num_subfilters = 50 with 6 warps", "refused", "subfilters", _too_many_subfilters),
    Case("truncated warp", "refused", "truncated", _truncated),
    Case("an empty (0-byte) warp file", "refused", "warp_3.fits", _empty_file),
    Case("a warp without visit cards", "refused", "visit", _no_visit),
    Case("a warp in another band", "refused", "band", _other_band),
    Case("a warp on another pixel grid (1″ off)", "refused", "pixel grid", _other_grid),
    Case("the same visit twice", "refused", "repeats visit", _repeated_visit),
    Case("one exposure under two visit ids (EXPID)", "warned", "its pixels are those of",
         _one_exposure_two_visits),
    Case("FILTER = lsst-r over a g band's BANDLAM", "refused", "one of the two cards is wrong",
         _filter_against_bandlam),
    Case("--box off the warps", "refused", "does not overlap the warps", _box_off_the_warps),
    Case("no band wavelengths (FILTER = g only)", "refused", "BANDLAM", _no_wavelengths),
    Case("BANDLAM = 4787, BANDWID = 1486 (Ångström written as nm)", "refused", "Angstrom", _angstrom_band),
    Case("BANDLAM = 250, BANDWID = 60 (below 230.2 nm)", "refused", "Stone", _ultraviolet_band),
    Case("--band r: no warp in that band", "refused", "no warps in band", _no_warp_in_band),
    Case("--out is an existing file", "refused", "not a directory", _out_is_a_file),
    Case("--out inside a regular file", "refused", "not a directory", _out_inside_a_file),
    Case("--out a link to a directory that is gone", "refused", "which does not exist",
         _out_is_a_dangling_link),
    Case("--set dcr.max_num_iter (moved setting)", "refused", "dcr.iterative.max_num_iter", _unknown_setting),
    Case("truncated checkpoint of an interrupted run", "recovered", "damaged checkpoint",
         _damaged_checkpoint),
    Case("disk full while writing the outputs", "refused, resumable", "disk is full", _full_disk_case,
         _full_disk),
    Case("template: science AIRTEMP = 500", "refused", "AIRTEMP = 500", _science_weather),
    Case("template: science in another band", "refused", "band", _science_band),
    Case("template: science at airmass 15", "warned", "farther than the solver was validated",
         _science_near_the_horizon),
    Case("template --diff: science VARIANCE holding sigma", "refused", "a VARIANCE plane holding sigma",
         _science_variance_as_sigma),
    Case("template --diff: science not sky-subtracted", "refused", "its sky lies",
         _science_with_its_sky),
    Case("template: truncated model file", "refused", "model.fits", _truncated_model),
    Case("template: model file without its WCS", "refused", "model.fits: model file is damaged",
         _model_without_wcs),
]


# -- running ----------------------------------------------------------------------------------------


def _files(directory: Path) -> set[str]:
    if not directory.is_dir():
        return set()
    return {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}


def _message(err: str, fragment: str) -> str:
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    if errors:
        return errors[0]
    warnings = [line for line in err.splitlines() if line.startswith("WARNING")]
    matching = [w for w in warnings if fragment in w]
    return (matching or warnings or [""])[0]


def _judge(case: Case, status, err: str, message: str, left: list[str]) -> bool:
    n_errors = sum(line.startswith("error: ") for line in err.splitlines())
    if case.expected == "refused":
        return status == 2 and n_errors == 1 and case.fragment in message and not left
    if case.expected == "refused, resumable":
        return (status == 2 and n_errors == 1 and case.fragment in message
                and all(name.startswith(".checkpoints/") for name in left))
    return status == 0 and case.fragment in err


def run_case(case: Case, root: Path, warps: Path, science: Path, model: Path) -> dict:
    from dcrcoadd.cli import main

    root.mkdir(parents=True)
    shutil.copytree(warps, root / "warps")
    shutil.copy(science, root / "science.fits")
    shutil.copy(model, root / "model.fits")
    ws = Workspace(root, root / "warps", root / "science.fits", model, root / "out")
    argv = case.prepare(ws)
    before = _files(ws.out)
    stdout, stderr = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), case.context():
        try:
            status = main(argv)
        except BaseException:  # noqa: BLE001 - a crash is what this table exists to catch
            status = "crash"
            stderr.write(traceback.format_exc())
    seconds = time.perf_counter() - t0
    err = stderr.getvalue().replace(f"{root}/", "")
    left = sorted(_files(ws.out) - before) if ws.out.is_dir() else []
    message = _message(err, case.fragment)
    return {
        "case": case.name,
        "expected": case.expected,
        "command": " ".join(["dcrcoadd", *argv]).replace(f"{root}/", ""),
        "exit_status": status,
        "message": message,
        "left_behind": left,
        "ok": _judge(case, status, err, message, left),
        "seconds": seconds,
        "stderr": err if status == "crash" else None,
    }


def run(cases: list[Case] | None = None, *, log=print) -> dict:
    """Try every case; returns ``{"setup": ..., "rows": [...], "n_ok": ..., "n_cases": ...}``."""
    from dcrcoadd.cli import main

    cases = CASES if cases is None else cases
    rows = []
    # the command line logs to the stderr each case captures; keep those lines off the suite's own log
    package_log = logging.getLogger("dcrcoadd")
    propagate, package_log.propagate = package_log.propagate, False
    with tempfile.TemporaryDirectory(prefix="dcrcoadd-bad-inputs-") as tmp:
        tmp = Path(tmp)
        warps, science = _write_set(tmp / "set")
        reference = tmp / "reference"
        with contextlib.redirect_stdout(io.StringIO()):
            status = main(["assemble", str(warps), "--out", str(reference), "-q"])
        if status != 0:
            raise RuntimeError("the good set does not assemble")
        for k, case in enumerate(cases):
            row = run_case(case, tmp / f"case_{k:02d}", warps, science, reference / "model.fits")
            rows.append(row)
            verdict = "ok  " if row["ok"] else "FAIL"
            log(f"{verdict} {row['case']}: exit {row['exit_status']}; {row['message']}"
                + (f"; left behind: {', '.join(row['left_behind'])}" if row["left_behind"] else ""))
    package_log.propagate = propagate
    for handler in list(package_log.handlers):  # the last case's, writing to its captured stderr
        package_log.removeHandler(handler)
    return {
        "setup": {"size": SIZE, "n_warps": N_WARPS, "subregion_size": SUBREGION, "band": "lsst-g",
                  "flux_calibration": CALIBRATION},
        "rows": rows,
        "n_cases": len(rows),
        "n_ok": sum(r["ok"] for r in rows),
    }


def markdown(results: dict) -> list[str]:
    """The README table of `run`'s results."""
    m = results.get("machine", {})
    lines = [
        "### Bad inputs (issue 16)",
        "",
        f"Each kind of bad input tried through the command line on {results['setup']['n_warps']} synthetic "
        f"{results['setup']['size']}×{results['setup']['size']} warps "
        "(`python -m benchmarks --only bad_inputs`"
        + (f", {m['date']}, commit {m['git_commit']}" if m else "") + "). Refused: exit status 2, one "
        "`error:` line, nothing left behind; warned: the outputs written and the problem reported; "
        f"recovered: repaired and finished. {results['n_ok']} of {results['n_cases']} behave as promised.",
        "",
        "| bad input | expected | exit | message | files left behind |",
        "|---|---|---:|---|---|",
    ]
    for r in results["rows"]:
        message = r["message"].replace("|", "\\|")
        if len(message) > 220:
            message = message[:217] + "..."
        left = r["left_behind"]
        if r["expected"] in ("warned", "recovered"):
            shown = f"outputs ({len(left)} files)" if left else "none"
        else:
            shown = ", ".join(f"`{x}`" for x in left) or "none"
        flag = "" if r["ok"] else " **(not as promised)**"
        lines.append(f"| {r['case']} | {r['expected']}{flag} | {r['exit_status']} | `{message}` | {shown} |")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bad_inputs", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=common.RESULTS_DIR)
    args = ap.parse_args(argv)
    common.setup_logging()
    results = run()
    common.write_results("bad_inputs", results, args.out_dir,
                         ["-m", "benchmarks.bad_inputs", *(argv if argv is not None else sys.argv[1:])])
    print("\n".join(markdown(results)))
    return 0 if results["n_ok"] == results["n_cases"] else 1


if __name__ == "__main__":
    sys.exit(main())
