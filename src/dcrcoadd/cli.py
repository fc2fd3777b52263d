"""The ``dcrcoadd`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import numpy as np

from ._version import __version__
from .errors import DcrCoaddError

log = logging.getLogger("dcrcoadd.cli")


# -- dcrcoadd info ---------------------------------------------------------------------------------

def _format_info(path: str) -> str:
    import astropy.units as u

    from .io import read_info

    info = read_info(path)
    lines = [f"file:        {info.path}"]
    b = info.bbox
    lines.append(f"grid:        {b.width}x{b.height} at origin (x0={b.x0}, y0={b.y0})"
                 + (" [tile-compressed]" if info.compressed else ""))
    if info.wcs is not None:
        centre = info.wcs.pixel_to_world((b.width - 1) / 2, (b.height - 1) / 2)
        scale = np.sqrt(abs(np.linalg.det(info.wcs.celestial.pixel_scale_matrix))) * 3600
        lines.append(f"wcs:         {'/'.join(info.wcs.wcs.ctype)}, centre RA {centre.ra.deg:.6f} "
                     f"Dec {centre.dec.deg:+.6f} deg, {scale:.4f} arcsec/px")
    else:
        lines.append("wcs:         none")
    if info.bandpass is not None:
        bp = info.bandpass
        lines.append(f"band:        {bp.name} (effective {bp.effective_wavelength.to_value(u.nm):.1f} nm, "
                     f"width {bp.bandwidth.to_value(u.nm):.1f} nm"
                     + (", with throughput curve)" if bp.transmission is not None else ")"))
    else:
        lines.append(f"band:        {info.band or 'unknown'}")
    lines.append(f"calibration: {info.flux_calibration:g} nJy per image unit")
    v = info.visit
    if v is None:
        lines.append("visit:       none (not a single-visit exposure)")
    else:
        lines.append(f"visit:       {v.id}" + (f", mid-exposure {v.time.utc.isot} UTC" if v.time is not None
                                                else "")
                     + (f", {v.exposure_time.to_value(u.s):g} s" if v.exposure_time is not None else ""))
        lines.extend(_visit_geometry_lines(info))
    lines.append("mask planes: " + ", ".join(f"{n}={bit}" for n, bit in info.mask_planes.items()))
    if info.psf is not None:
        lines.append(f"psf:         {info.psf.shape[1]}x{info.psf.shape[0]} kernel, "
                     f"FWHM {info.psf.fwhm:.2f} px")
    else:
        lines.append("psf:         none")
    return "\n".join(lines)


def _visit_geometry_lines(info) -> list[str]:
    v = info.visit

    def fmt(a):
        return "unknown" if a is None else f"{a.deg:.4f} deg"

    lines = [f"pointing:    RA {fmt(v.boresight_ra)}, Dec {fmt(v.boresight_dec)}, "
             f"alt {fmt(v.boresight_alt)}, az {fmt(v.boresight_az)}"]
    airmass = "unknown" if v.airmass is None else f"{v.airmass:.4f}"
    lines.append(f"airmass:     {airmass}")
    return lines


def _cmd_info(args: argparse.Namespace) -> int:
    for i, path in enumerate(args.files):
        if i:
            print()
        print(_format_info(path))
    return 0


# -- dcrcoadd simulate -----------------------------------------------------------------------------

def _pair(text: str, kind=float) -> tuple:
    try:
        lo, hi = (kind(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX, got {text!r}") from None
    return (lo, hi)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from .simulate import SimulationConfig, simulate, summary_lines, write_simulation

    config = SimulationConfig(size=args.size, n_visits=args.n_visits, band=args.band, site=args.site,
                              seed=args.seed, seeing=args.seeing, airmass=args.airmass,
                              defects=args.defects, n_stars=args.n_stars, n_galaxies=args.galaxies)
    sim = simulate(config)
    write_simulation(sim, args.outdir)
    print("\n".join(summary_lines(sim)))
    print(f"wrote {len(sim.warps)} warps to {args.outdir}/warps and the truth to {args.outdir}/truth")
    return 0


# -- dcrcoadd assemble -----------------------------------------------------------------------------

def _expand_inputs(items: Sequence[str]) -> list[str]:
    import glob
    from pathlib import Path

    from .errors import InputError

    paths: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(str(f) for f in p.glob("*.fits"))
            if not found:
                raise InputError("directory holds no .fits files", item)
            paths.extend(found)
        elif any(c in item for c in "*?["):
            found = sorted(glob.glob(item))
            if not found:
                raise InputError("pattern matches no files", item)
            paths.extend(found)
        else:
            paths.append(item)
    if not paths:
        raise InputError("no input warps given", "assemble")
    return paths


def _load_config(args: argparse.Namespace):
    from .config import Config, apply_override, load_toml

    config = load_toml(args.config) if getattr(args, "config", None) else Config()
    for text in getattr(args, "set", None) or []:
        apply_override(config, text)
    config.validate()
    return config


def _check_outdir(path: str) -> None:
    import os
    from pathlib import Path

    from .errors import InputError

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a directory", path)
    parent = out if out.exists() else out.parent
    if parent.exists() and not os.access(parent, os.W_OK):
        raise InputError("output directory is not writable", path)


def _cmd_assemble(args: argparse.Namespace) -> int:
    import json

    from .assemble import assemble_dcr_coadd, write_dcr_outputs
    from .config import to_toml
    from .geom import Box
    from .io.atomic import atomic_output

    config = _load_config(args)
    _check_outdir(args.out)
    paths = _expand_inputs(args.warps)
    box = Box.parse(args.box) if args.box else None
    result = assemble_dcr_coadd(paths, config, bbox=box)
    written = write_dcr_outputs(result, args.out)
    from pathlib import Path

    out = Path(args.out)
    with atomic_output(out / "config.toml") as tmp:
        tmp.write_text(to_toml(config))
    meta = dict(result.metadata)
    meta["inputs"] = [str(p) for p in paths]
    meta["versions"] = _versions()
    with atomic_output(out / "metadata.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=1, default=str))
    print(f"DCR model: {len(result.subfilter_coadds)} subfilters, convergence "
          f"{meta['initial_convergence']:.4g} -> {meta['final_convergence']:.4g}")
    for name, path in written.items():
        print(f"wrote {path}  ({name})")
    return 0


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("dcrcoadd", "numpy", "scipy", "astropy", "galsim", "speclite", "reproject", "matplotlib"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


# -- dcrcoadd template -----------------------------------------------------------------------------

def _cmd_template(args: argparse.Namespace) -> int:
    from .errors import InputError
    from .model import DcrModel
    from .template import build_templates

    _check_outdir(args.out)
    DcrModel.read(args.model)  # a bad model file fails once, up front
    science = _expand_inputs(args.science)
    outcomes = build_templates(args.model, science, args.out, diff=args.diff, order=args.order)
    failed = [o for o in outcomes if o.error is not None]
    for o in outcomes:
        if o.error is None:
            print(f"wrote {o.template_path}" + (f" and {o.diff_path}" if o.diff_path else ""))
        else:
            print(f"error: {o.error}", file=sys.stderr)
    if failed:
        raise InputError(f"{len(failed)} of {len(outcomes)} science exposures failed", "template")
    return 0


# -- dcrcoadd demo ---------------------------------------------------------------------------------

def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import format_scores, run_demo

    _check_outdir(args.out)
    scores = run_demo(args.out, size=args.size, n_visits=args.n_visits, seed=args.seed)
    print(format_scores(scores))
    print(f"outputs in {args.out}/ (coadd.fits, dcr_coadd.fits, subfilter_*.fits, model.fits, "
          "templates, report.png; simulated inputs and truth in sim/)")
    return 0


# -- dcrcoadd config -------------------------------------------------------------------------------

def _cmd_config(args: argparse.Namespace) -> int:
    from .config import to_toml
    from .io.atomic import atomic_output

    config = _load_config(args)
    text = to_toml(config)
    if args.action == "show":
        print(text, end="")
    else:
        if not args.file:
            raise SystemExit("error: config dump needs a FILE")
        with atomic_output(args.file) as tmp:
            tmp.write_text("# dcrcoadd configuration (LSST DcrAssembleCoadd field names in snake_case)\n"
                           + text)
        print(f"wrote {args.file}")
    return 0


# -- parser and entry point ------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcrcoadd",
        description="DCR-corrected coadds and DCR-matched templates for image differencing.",
    )
    parser.add_argument("--version", action="version", version=f"dcrcoadd {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="summarize exposure files (visit, band, grid, masks, PSF)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("simulate", help="simulate warps with real DCR (GalSim) and their truth")
    p.add_argument("outdir", metavar="OUTDIR")
    p.add_argument("--size", type=int, default=256, help="image size in pixels (default 256)")
    p.add_argument("--n-visits", type=int, default=8)
    p.add_argument("--band", default="lsst-g", help="band preset (default lsst-g)")
    p.add_argument("--site", default="rubin")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--seeing", type=_pair, default=(0.6, 1.0), metavar="MIN,MAX", help="arcsec FWHM")
    p.add_argument("--airmass", type=_pair, default=(1.05, 1.6), metavar="MIN,MAX")
    p.add_argument("--defects", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--n-stars", type=int, default=100)
    p.add_argument("--galaxies", type=int, default=0)
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("assemble", help="baseline coadd, DCR model and DCR coadds from warps")
    p.add_argument("warps", nargs="+", metavar="WARP", help="files, directories or glob patterns")
    p.add_argument("--out", required=True, metavar="OUTDIR")
    p.add_argument("--config", metavar="FILE", help="TOML configuration")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. dcr.max_num_iter=12")
    p.add_argument("--box", metavar="X0,Y0,W,H", help="restrict to a region of the grid")
    p.set_defaults(func=_cmd_assemble)

    p = sub.add_parser("template", help="DCR-matched templates for science exposures")
    p.add_argument("model", metavar="MODEL", help="model.fits written by assemble")
    p.add_argument("science", nargs="+", metavar="SCIENCE")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--diff", action="store_true", help="also write science - template")
    p.add_argument("--order", type=int, choices=[1, 3], default=1, help="shift interpolation order")
    p.set_defaults(func=_cmd_template)

    p = sub.add_parser("demo", help="the whole job on a small built-in simulated field")
    p.add_argument("--out", default="demo_out", metavar="DIR")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--n-visits", type=int, default=10, help="visits used for the model (2 more are held out)")
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("config", help="show or write the effective configuration")
    p.add_argument("action", choices=["show", "dump"])
    p.add_argument("file", nargs="?", metavar="FILE")
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    p.set_defaults(func=_cmd_config)
    return parser


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING - 10 * min(verbosity, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input or usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    _configure_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except DcrCoaddError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
