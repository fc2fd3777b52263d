"""The ``dcrcoadd warp`` subcommand: `add_warp_parser` registers it, `cmd_warp` runs it."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import astropy.units as u

from dcrcoadd.io.options import add_read_arguments, read_options_from_args
from dcrcoadd.io.paths import check_outdir, expand_paths, remove_if_empty
from dcrcoadd.ops.resample import RESAMPLE_METHODS
from dcrcoadd.parallel import make_mapper
from dcrcoadd.parallel.mappers import scheduler_address
from dcrcoadd.resample.warp import DEFAULT_METHOD, choose_grid, warp_exposures

__all__ = ["add_warp_parser", "cmd_warp"]



def _positive_arcsec(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of arcseconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"pixel scale must be positive, got {text!r}")
    return value


def _sky_position(text: str) -> tuple[float, float]:
    """``RA,DEC``: each in degrees, or sexagesimal (RA ``10:00:28.6`` or ``10h00m28.6s`` in hours, Dec
    ``+02:12:21`` in degrees), each part read on its own."""
    from astropy.coordinates import Angle

    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected RA,DEC (degrees, or h:m:s,d:m:s), got {text!r}")
    values = []
    for part, unit in zip(parts, (u.hourangle, u.deg), strict=True):
        try:
            values.append(float(part))  # (a plain number is degrees, RA too)
            continue
        except ValueError:
            pass
        try:
            values.append(float(Angle(part, unit=unit).deg))
        except (ValueError, u.UnitsError):
            raise argparse.ArgumentTypeError(f"expected RA,DEC (degrees, or h:m:s,d:m:s), got {text!r}") \
                from None
    return values[0], values[1]


def _patch_size(text: str) -> tuple[int, int]:
    """``N`` or ``NX,NY`` pixels."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected N or NX,NY (whole pixels), got {text!r}")
    return (values[0], values[-1])


def add_warp_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``warp`` to the subcommands of the ``dcrcoadd`` parser; returns its parser."""
    p = subparsers.add_parser(
        "warp", help="resample single-epoch exposures onto one tangent-plane grid (flux-conserving)",
        description="Resample calibrated single-epoch exposures onto one tangent-plane pixel grid, "
                    "conserving flux, with variance, masks and visit metadata carried over: "
                    "OUT/<stem>_warp.fits each, ready for 'dcrcoadd assemble OUT'. The CCD files of one "
                    "visit (the same visit id) make one warp, OUT/visit<ID>_warp.fits.")
    p.add_argument("exposures", nargs="+", metavar="EXPOSURE", help="files, or directories of FITS files")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory for <stem>_warp.fits")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--grid", metavar="FILE",
                   help="take the grid from this FITS file's celestial WCS (a warp, a coadd, ...); "
                        "default: chosen from the inputs' footprints")
    g.add_argument("--pixel-scale", type=_positive_arcsec, metavar="ARCSEC",
                   help="pixel side of the grid chosen from the footprints, or of the patch (default the "
                        "finest input's)")
    p.add_argument("--center", type=_sky_position, metavar="RA,DEC",
                   help="instead, a north-up patch about this sky position (degrees, or h:m:s,d:m:s; "
                        "a negative RA as -10,5) of --size pixels: warps are cut to it, "
                        "exposures that miss it skipped")
    p.add_argument("--size", type=_patch_size, metavar="N[,NY]", help="the patch's size in pixels (with "
                   "--center)")
    p.add_argument("--method", choices=RESAMPLE_METHODS, default=DEFAULT_METHOD,
                   help="reproject_exact (default: exact overlaps, least PSF broadening) or "
                        "reproject_adaptive with conserve_flux=True")
    p.add_argument("-q", "--quiet", action="store_true", help="no 'grid:', 'wrote' or 'skipped' lines")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="local worker processes")
    p.add_argument("--scheduler", metavar="ADDRESS", type=scheduler_address,
                   help="Dask distributed scheduler to run on")
    add_read_arguments(p, what="exposures")
    p.set_defaults(func=cmd_warp)
    return p


def cmd_warp(args: argparse.Namespace) -> int:
    """Run ``dcrcoadd warp``: 0 when every exposure was warped, 2 when any failed (each reported
    on stderr as one ``error:`` line naming its file)."""
    paths = expand_paths(args.exposures, "exposures")
    check_outdir(args.out)  # (before the grid is chosen: that reads every header)
    mapper = make_mapper(getattr(args, "workers", None), getattr(args, "scheduler", None))
    options = read_options_from_args(args)
    grid = choose_grid(paths, grid=args.grid, pixel_scale=args.pixel_scale, read_options=options,
                       center=args.center, size=args.size)
    say = (lambda line: None) if getattr(args, "quiet", False) else print
    say(f"grid: {grid.describe()}")
    out = Path(args.out)
    created = not out.exists()
    outcomes = warp_exposures(paths, args.out, grid=grid, mapper=mapper, method=args.method,
                              read_options=options)
    remove_if_empty(out, created)
    failed = [o for o in outcomes if not o.ok]
    files_of: dict[Path, int] = {}
    for o in outcomes:
        if o.warp_path is not None:
            files_of[o.warp_path] = files_of.get(o.warp_path, 0) + 1
    reported: set[str] = set()
    for o in outcomes:
        if o.skipped:
            say(f"skipped {o.path}: {o.skipped}")
        if not o.ok:
            if o.error not in reported:  # (the files of a visit that failed share its one error)
                print(f"error: {o.error}", file=sys.stderr)
                reported.add(o.error)
        elif o.warp_path is not None and o.warp_path in files_of:  # (a visit's CCD files share one warp)
            n = files_of.pop(o.warp_path)
            what = f"; {n} files of visit {o.visit_id}" if n > 1 else ""
            box = o.bbox
            say(f"wrote {o.warp_path}  ({box.width}x{box.height} at x0={box.x0}, y0={box.y0}{what})")
    if failed:
        print(f"error: warp: {len(failed)} of {len(outcomes)} exposures failed", file=sys.stderr)
        return 2
    if not any(o.warp_path for o in outcomes):
        print(f"error: warp: none of the {len(outcomes)} exposures reaches {grid.source}", file=sys.stderr)
        return 2
    return 0
