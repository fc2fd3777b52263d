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
