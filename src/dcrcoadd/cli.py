"""The ``dcrcoadd`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dcrcoadd._version import __version__
from dcrcoadd.errors import ConfigError, DcrCoaddError, InputError
from dcrcoadd.io.options import add_read_arguments, check_codes_have_maps, read_options_from_args
from dcrcoadd.parallel.mappers import scheduler_address
from dcrcoadd.resample.command import add_warp_parser

log = logging.getLogger("dcrcoadd.cli")


# -- dcrcoadd info ---------------------------------------------------------------------------------

def _format_info(path: str, options=None) -> str:
    import astropy.units as u

    from dcrcoadd.io import provenance_lines
    from dcrcoadd.io.fits import ccd_extensions
    from dcrcoadd.io.options import ReadOptions

    ccds = ccd_extensions(path)
    hdu = ccds[0] if ccds else None
    info = (options or ReadOptions()).read_info(path, hdu)
    lines = [f"file:        {info.path}"]
    if ccds:
        # (a multi-extension file: `warp` and `template` read each CCD with the primary header's cards)
        names = ", ".join(map(str, ccds[:8])) + (", ..." if len(ccds) > 8 else "")
        lines = [f"file:        {info.path}: {len(ccds)} CCD images ({names}); dcrcoadd warp and template "
                 f"read each (assemble takes warps); this is {hdu}"]
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
    lines.extend(provenance_lines(info))
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
                     f"{info.psf.describe_fwhm(info.wcs)}"
                     + (" (Gaussian of the seeing card; assemble measures the PSF from the stars first)"
                        if info.psf_origin == "seeing card" else ""))
    else:
        lines.append("psf:         none (assemble measures it from the stars; template fits it against the "
                     "model)")
    from dcrcoadd.io.products import PRODUCTS, product_of

    if product_of(path) == PRODUCTS["model"]:
        lines.extend(_model_lines(path))
    return "\n".join(lines)


def _model_lines(path: str) -> list[str]:
    """What `info` says of a DCR model file beyond its DCR coadd: its solver and forward model, its
    subfilters and the warps it was fitted to."""
    from dcrcoadd.dcr.model import DcrModel

    model = DcrModel.read(path)
    settings = ", ".join(f"{k} = {v}" for k, v in sorted(model.solver_settings.items()))
    forward = ("Fourier (each subfilter's DCR averaged over "
               f"{model.wavelength_samples} wavelengths)" if model.forward_model == "fourier"
               else f"shifts (interpolation order {model.interp_order})")
    psf = ("PSF-aware: the sky seen through its reference PSF, each warp through its own; templates at "
           "the science PSF" if model.psf_aware else "one PSF for every warp (templates carry the model's)")
    ranges = ", ".join(f"{lo:.1f}-{hi:.1f}" for lo, hi in model.subfilter_edges)
    lines = [f"model:       solver {model.solver or 'unknown'}; forward model {forward}; {psf}",
             f"subfilters:  {len(model)}: {ranges} nm"]
    if settings:
        lines.append(f"settings:    {settings}")
    if model.input_conditions is not None and len(model.input_conditions):
        airmass, angle = np.asarray(model.input_conditions, float).T
        widths = model.input_psf_range
        seeing = f", PSF FWHM {widths[0]:.2f}-{widths[1]:.2f} px" if widths is not None else ""
        lines.append(f"fitted to:   {len(airmass)} warps, airmass {airmass.min():.2f}-{airmass.max():.2f}, "
                     f"parallactic angle {angle.min():+.1f} to {angle.max():+.1f} deg{seeing}")
    return lines


def _visit_geometry_lines(info) -> list[str]:
    from dcrcoadd.errors import InputError
    from dcrcoadd.physics.dcr import dcr_shifts

    v = info.visit.completed()

    def fmt(a):
        return "unknown" if a is None else f"{a.deg:.4f} deg"

    lines = [f"pointing:    RA {fmt(v.boresight_ra)}, Dec {fmt(v.boresight_dec)}, "
             f"alt {fmt(v.boresight_alt)}, az {fmt(v.boresight_az)}"]
    airmass = "unknown" if v.airmass is None else f"{v.airmass:.4f}"
    q = v.parallactic_angle
    lines.append(f"airmass:     {airmass}, parallactic angle {fmt(q)}")
    if v.observatory is not None:
        o = v.observatory
        lines.append(f"site:        lat {o.latitude.deg:.4f} deg, lon {o.longitude.deg:.4f} deg, "
                     f"{o.elevation.value:.0f} m")
    if v.weather is not None:
        w = v.weather
        lines.append(f"weather:     {w.temperature.value:.1f} C, {w.pressure.value:.0f} Pa, "
                     f"{w.humidity:.0f} % humidity")
    if info.wcs is not None and info.bandpass is not None:
        try:
            shifts = dcr_shifts(v, info.wcs, info.bandpass, 3)
        except (InputError, ValueError) as exc:
            lines.append(f"DCR:         not available ({exc})")
        else:
            parts = ", ".join(f"({dy:+.3f}, {dx:+.3f})" for dy, dx in shifts)
            lines.append(f"DCR (dy,dx): {parts} px for 3 subfilters, blue to red")
    return lines


def _format_presets() -> str:
    """The band presets, observatory sites and instrument presets, as `info --presets` lists them."""
    from dcrcoadd.core.bandpass import CAMERA_SITES, FIXED_BANDS, PRESET_CAMERAS, preset_names
    from dcrcoadd.core.instrument import PRESETS
    from dcrcoadd.core.observatory import SITE_ALIASES, SITES

    names = preset_names()
    lines = ["Band presets (simulate --band, Bandpass.preset; camera_band and HSC-G spellings work too, "
             "a bare band is LSST's):"]
    for camera, (group, _bands) in PRESET_CAMERAS.items():
        curve = f"speclite {group} curves" if group else "pivot wavelength and width only"
        if camera in FIXED_BANDS:
            fixed = FIXED_BANDS[camera].items()
            curve += " (" + ", ".join(f"{b} {lam:g}/{w:g} nm" for b, (lam, w) in fixed) + ")"
        lines.append(f"  {camera:<6} " + " ".join(n for n in names if n.startswith(camera + "-"))
                     + f"   [{curve}; site {CAMERA_SITES[camera]}]")
    lines += ["", "Observatory sites (simulate --site; latitude, longitude east, elevation):"]
    for name, (lat, lon, elev, text) in SITES.items():
        aliases = sorted(a for a, target in SITE_ALIASES.items() if target == name)
        lines.append(f"  {name:<10} {lat:+9.4f} {lon:+10.4f} {elev:6.0f} m  {text}"
                     + (f"  (also: {', '.join(aliases)})" if aliases else ""))
    lines += ["", "Instrument presets (assemble --instrument; cards read after the dcrcoadd/LSST ones):"]
    for name, p in PRESETS.items():
        cards = ", ".join(f"{field}={'/'.join(c)}" for field, c in p.cards.items())
        units = ", ".join(f"{card} in {unit}" for card, unit in p.units.items())
        lines.append(f"  {name:<6} bands {' '.join(PRESET_CAMERAS[p.camera][1])}, site {p.site}; "
                     f"INSTRUME {'/'.join(p.instrume)}")
        lines.append(f"         cards: {cards}" + (f"; units: {units}" if units else ""))
    lines.append("  (docs/format.md describes every card)")
    return "\n".join(lines)


def _cmd_info(args: argparse.Namespace) -> int:
    if not args.files and not args.presets:
        from dcrcoadd.errors import InputError

        raise InputError("give exposure FILEs to summarize, or --presets", "info")
    from dcrcoadd.errors import DcrCoaddError
    from dcrcoadd.io.paths import expand_paths

    if args.presets:
        print(_format_presets())
    options = read_options_from_args(args)
    status, printed = 0, args.presets
    # (a directory is its FITS files, as for assemble; one unreadable file does not end the listing)
    for path in expand_paths(args.files, "files") if args.files else []:
        try:
            text = _format_info(path, options)
        except DcrCoaddError as exc:
            if args.debug:
                raise
            sys.stdout.flush()
            print(f"error: {exc}", file=sys.stderr)
            status = 2
            continue
        print(("\n" if printed else "") + text)
        printed = True
    return status


# -- dcrcoadd simulate -----------------------------------------------------------------------------

def _pair(text: str, kind=float) -> tuple:
    try:
        lo, hi = (kind(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX, got {text!r}") from None
    return (lo, hi)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from dcrcoadd.io.paths import check_outdir
    from dcrcoadd.sim import SimulationConfig, simulate, summary_lines, write_simulation

    config = SimulationConfig(size=args.size, n_visits=args.n_visits, band=args.band, site=args.site,
                              seed=args.seed, seeing=args.seeing, airmass=args.airmass,
                              defects=args.defects, n_stars=args.n_stars, n_galaxies=args.galaxies)
    outdir = args.outdir or args.out
    if outdir is None or (args.outdir and args.out and args.outdir != args.out):
        raise InputError("give one output directory: OUTDIR or --out OUTDIR", "simulate")
    check_outdir(outdir)
    sim = simulate(config, progress=_simulation_progress(args.n_visits))
    write_simulation(sim, outdir)
    print("\n".join(summary_lines(sim)))
    print(f"wrote {len(sim.warps)} warps to {outdir}/warps and the truth to {outdir}/truth")
    return 0


def _simulation_progress(total: int):
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    bar = tqdm(total=total, desc="visits", unit="visit", file=sys.stderr, leave=False)

    def update(done: int, _total: int) -> None:
        bar.n = done
        bar.refresh()
        if done >= _total:
            bar.close()

    return update


# -- dcrcoadd assemble -----------------------------------------------------------------------------

def _load_config(args: argparse.Namespace):
    from dcrcoadd.config import Config, apply_override, load_toml, validate_from

    config = load_toml(args.config) if getattr(args, "config", None) else Config()
    for text in getattr(args, "set", None) or []:
        apply_override(config, text)
    if getattr(args, "instrument", None):
        config.inputs.instrument = args.instrument
    if getattr(args, "header_map", None):
        current = config.inputs.header_map if isinstance(config.inputs.header_map, dict) else {}
        config.inputs.header_map = {**current, **dict(args.header_map)}
    if getattr(args, "weights", None):
        config.inputs.weights = args.weights
    if getattr(args, "masks", None):
        config.inputs.masks = args.masks
    if getattr(args, "mask_codes", None):
        check_codes_have_maps(args.mask_codes, config.inputs.masks)
        config.inputs.mask_codes = args.mask_codes
    validate_from(config, getattr(args, "config", None))
    return config


def _summary_table(baseline) -> str:
    t = baseline.inputs_table()
    lines = ["   visit   airmass  par.angle  FWHM(\")  FWHM(px)      weight  clipped  file",
             "--------  --------  ---------  -------  --------  ----------  -------  ----"]
    for row in t:
        lines.append(f"{row['visit']:>8d}  {row['airmass']:8.4f}  {row['parallactic_angle']:9.2f}  "
                     f"{row['psf_fwhm_arcsec']:7.3f}  {row['psf_fwhm']:8.2f}  {row['weight']:10.4g}  "
                     f"{row['n_clipped']:7d}  {row['name']}")
    return "\n".join(lines)


class _ConsoleProgress:
    """Shows what `run_patch` (and the demo around it) reports, on stderr unless quiet: a line as
    each stage starts (with the time since the command began), the inputs table after the
    baseline coadd (stdout, when ``table``), and progress within the long stages: a bar on a
    terminal (the subregion bar shows the current iteration), plain lines otherwise. A resumed
    run is announced even when quiet."""

    #: What each stage does, as its start line says it.
    STAGES = {"simulate": "simulating {total} visits (GalSim)",
              "baseline": "baseline coadd (inputs, compare-warp artifacts, stacking)",
              "dcr": "DCR model: solving {total} subregion(s)",
              "outputs": "writing the outputs and the report",
              "templates": "templates and scores of the held-out visits"}

    def __init__(self, out: str, quiet: bool, table: bool = True):
        import time

        self.out, self.quiet, self.table = out, quiet, table
        self.bar = None
        self.count = 0
        self.total = 0
        self.clock = time.perf_counter
        self.t0 = self.clock()

    def stage(self, name: str, total: int) -> None:
        if not self.quiet:
            print(f"[{self.clock() - self.t0:6.1f} s] {self.STAGES[name].format(total=total)}",
                  file=sys.stderr, flush=True)

    def __call__(self, event) -> None:
        if event.stage == "simulate":
            self._simulated(event)
        elif event.stage == "baseline" and event.baseline is None:
            self.stage("baseline", 1)
        elif event.stage == "baseline" and self.table and not self.quiet:
            print(_summary_table(event.baseline), flush=True)
        elif event.stage == "dcr" and event.outcome is None:
            if event.done:
                print(f"resuming: {event.done} subregion(s) already done in {self.out}", flush=True)
            self.stage("dcr", event.total - event.done)
            self._start(event.total - event.done)
        elif event.stage == "iteration":
            if self.bar is not None:  # the solver's own record: its iteration and misfit
                rec = event.record
                self.bar.set_postfix_str(f"subregion {event.tile}: iteration {rec['iteration']}, "
                                         f"convergence {rec['convergence']:.4g}", refresh=True)
        elif event.stage == "dcr":
            self._step(event.outcome)
        elif event.stage in ("outputs", "templates"):
            self.close()
            if event.done == 0:
                self.stage(event.stage, event.total)

    def _bar(self, total: int, desc: str, unit: str):
        if self.quiet or not sys.stderr.isatty():
            return None
        try:
            from tqdm import tqdm
        except ImportError:
            return None
        return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)

    def _simulated(self, event) -> None:
        if event.done == 0:
            self.stage("simulate", event.total)
            self.bar = self._bar(event.total, "visits", "visit")
        elif self.bar is not None:
            self.bar.n = event.done
            self.bar.refresh()
        if event.done >= event.total:
            self.close()

    def _start(self, total: int) -> None:
        self.total = total
        self.bar = self._bar(total, "subregions", "region")

    def _step(self, outcome) -> None:
        self.count += 1
        if self.bar is not None:
            self.bar.update(1)
        elif not self.quiet:
            print(f"  subregion {self.count}/{self.total} done ({len(outcome.history) - 1} iterations, "
                  f"{outcome.seconds:.1f} s)", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _mapper(args: argparse.Namespace):
    """One mapper for every stage of the run (`--workers` / `--scheduler`); close it when done."""
    from dcrcoadd.parallel import make_mapper

    return make_mapper(args.workers, args.scheduler)


def _print_written(outputs: dict, quiet: bool) -> None:
    if not quiet:
        for name, path in outputs.items():
            print(f"wrote {path}  ({name})")


def _cmd_assemble(args: argparse.Namespace) -> int:
    from dcrcoadd.core.geom import Box
    from dcrcoadd.pipeline import run_patch

    config = _load_config(args)
    try:
        box = Box.parse(args.box) if args.box else None
    except ValueError as exc:
        raise InputError(f"--box {args.box}: {exc} (give x0,y0,width,height in pixels)", "assemble") from None
    progress = _ConsoleProgress(args.out, args.quiet)
    mapper = _mapper(args)
    try:
        run = run_patch(args.warps, config, args.out, mapper=mapper, band=args.band, bbox=box,
                        clobber_config=args.clobber_config, dcr_only=args.dcr_only, progress=progress,
                        command=" ".join(sys.argv))
    finally:
        progress.close()
        getattr(mapper, "close", lambda: None)()  # a process pool lives for the whole run
    if run.dcr is not None and not args.quiet:
        meta = run.metadata
        print(f"DCR model: {meta['n_subfilters']} subfilters, convergence "
              f"{meta['initial_convergence']:.4g} -> {meta['final_convergence']:.4g}")
    _print_written(run.outputs, args.quiet)
    return 0


# -- dcrcoadd template -----------------------------------------------------------------------------

def _cmd_template(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dcrcoadd.dcr.model import DcrModel
    from dcrcoadd.io.paths import check_outdir, remove_if_empty
    from dcrcoadd.pipeline.inputs import expand_inputs
    from dcrcoadd.template.build import build_templates

    check_outdir(args.out)
    DcrModel.read(args.model)  # a bad model file fails once, up front
    science = expand_inputs(args.science)
    out = Path(args.out)
    created = not out.exists()
    outcomes = build_templates(args.model, science, args.out, diff=args.diff, order=args.order,
                               read_options=read_options_from_args(args), psf=args.psf,
                               given_psf_fwhm=args.psf_fwhm)
    failed = [o for o in outcomes if o.error is not None]
    for o in outcomes:
        if o.skipped:
            if not args.quiet:
                print(f"skipped {o.path}: {o.skipped}")
        elif o.error is None:
            if not args.quiet:
                print(f"wrote {o.template_path}" + (f" and {o.diff_path}" if o.diff_path else ""))
        else:
            print(f"error: {o.error}", file=sys.stderr)
    remove_if_empty(out, created)
    if not failed and not any(o.template_path for o in outcomes) and any(o.skipped for o in outcomes):
        print("error: template: none of the science exposures overlaps the model", file=sys.stderr)
        return 2
    if not failed:
        return 0
    if len(outcomes) > 1:  # each failure is named above; say how many once
        print(f"{len(failed)} of {len(outcomes)} science exposures failed", file=sys.stderr)
    return 2


# -- dcrcoadd demo ---------------------------------------------------------------------------------

def _cmd_demo(args: argparse.Namespace) -> int:
    from dcrcoadd.demo import format_scores, run_demo
    from dcrcoadd.io.paths import check_outdir

    check_outdir(args.out)
    progress = _ConsoleProgress(args.out, args.quiet, table=False)
    try:
        scores = run_demo(args.out, size=args.size, n_visits=args.n_visits, seed=args.seed, progress=progress,
                          command=" ".join(sys.argv))
    finally:
        progress.close()
    print(format_scores(scores))
    print(f"outputs in {args.out}/ (what assemble writes: coadd.fits, dcr_coadd.fits, subfilter_*.fits, "
          "model.fits, report.png, config.toml, metadata.json; held-out visit templates "
          "visit_*_template.fits; simulated inputs and truth in sim/)")
    return 0


# -- dcrcoadd config -------------------------------------------------------------------------------

_DUMP_HEADER = "# dcrcoadd configuration (LSST DcrAssembleCoadd field names in snake_case)\n"


def _cmd_config(args: argparse.Namespace) -> int:
    from dcrcoadd.config import to_toml
    from dcrcoadd.io.atomic import atomic_output

    if args.file and args.action != "dump":
        raise ConfigError(f"config {args.action} takes no FILE (got {args.file}); to start from a "
                          f"configuration file: config {args.action} --config {args.file}")
    if args.action == "dump" and args.file and os.path.isdir(args.file):
        raise InputError("is a directory: give the file to write", args.file)
    if args.config and not os.path.lexists(args.config) and args.action in ("markdown", "show"):
        # (--config names a file to read; `config markdown --config ref.md` meant to write one)
        raise InputError(f"does not exist: --config names a configuration to read; to write what config "
                         f"{args.action} prints into a file: dcrcoadd config {args.action} > {args.config}",
                         args.config)
    config = _load_config(args)
    if args.action == "markdown":
        from dcrcoadd.config import to_markdown

        print(to_markdown(config), end="")
        return 0
    text = to_toml(config, comments=args.action == "dump")
    if args.action == "show":
        print(text, end="")
    else:
        if not args.file:
            raise ConfigError("config dump needs a FILE to write (- for standard output)")
        if args.file == "-":  # (the usual name of standard output; it wrote a file named "-")
            print(_DUMP_HEADER + text, end="")
            return 0
        if not args.force and os.path.lexists(args.file):
            raise InputError("exists; use --force to overwrite it", args.file)
        existing = Path(args.file).parent  # (a regular file on its path said "cannot write: File exists")
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        if not existing.is_dir():
            raise InputError(f"cannot write: {existing} is not a directory", args.file)
        with atomic_output(args.file) as tmp:
            tmp.write_text(_DUMP_HEADER + text)
        print(f"wrote {args.file}")
    return 0


# -- dcrcoadd survey -------------------------------------------------------------------------------

class _Once(argparse.Action):
    """An option that may be given once (argparse keeps the last of several silently: a second
    ``--config`` dropped everything the first set)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest, None) is not None:
            parser.error(f"{option_string} given twice; give one (--set adds to it)")
        setattr(namespace, self.dest, values)


def _int_at_least(lowest: int, why: str = ""):
    """An argparse type: an integer of at least ``lowest`` (``why`` says what a smaller one lacks)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"must be at least {lowest}{why}, got {value}")
        return value

    return parse


def _add_survey_parser(sub) -> None:
    """``dcrcoadd survey``; the command itself is `dcrcoadd.pipeline.survey_command`."""
    positive = _int_at_least(1)

    def run(args: argparse.Namespace) -> int:
        from dcrcoadd.pipeline.survey_command import cmd_survey

        return cmd_survey(args)

    p = sub.add_parser(
        "survey", help="many patches from a plan, on this machine or a Dask cluster",
        description="Run every patch of a survey plan (TOML or CSV: patches with their warps and box, or a "
                    "tiling of warps on one grid) into DIR/<patch>/, then write DIR/survey.ecsv, "
                    "DIR/survey.csv and DIR/footprint.png. A rerun skips finished patches and resumes "
                    "interrupted ones. Exit status: 0 when every patch finished, 10 + the number of "
                    "failed patches (at most 110) otherwise, 2 for a bad plan or usage.")
    p.add_argument("plan", metavar="PLAN", help="survey plan (.toml, or CSV with columns name,inputs[,box])")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output directory: one sub-directory per patch plus the survey summary")
    p.add_argument("--config", metavar="FILE", action=_Once,
                   help="TOML configuration for every patch (instead of the plan's)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, after the plan's own")
    p.add_argument("--band", help="use only warps in this band (instead of the plan's band)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", type=scheduler_address,
                       help="Dask distributed scheduler to run on")
    where.add_argument("--workers", type=positive, metavar="N",
                       help="a local Dask cluster of N single-threaded worker processes")
    p.add_argument("--in-flight", type=positive, metavar="K",
                   help="patch tasks on the cluster at a time (default: its number of threads)")
    p.add_argument("--clobber-config", action="store_true",
                   help="start a patch over when its directory holds a run with other settings")
    p.add_argument("-q", "--quiet", action="store_true", help="no line per finished patch")
    p.set_defaults(func=run)


# -- parser and entry point ------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcrcoadd",
        description="DCR-corrected coadds and DCR-matched templates for image differencing.",
    )
    parser.add_argument("--version", action="version", version=f"dcrcoadd {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("--log-file", metavar="FILE", help="also write the log (INFO and above) to FILE")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="summarize exposure files (visit, band, grid, masks, PSF); "
                                    "--presets lists the band, site and instrument presets")
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="exposure FITS files to summarize (a directory: its FITS files)")
    p.add_argument("--presets", action="store_true",
                   help="list the band presets (BANDPASS names), observatory sites and --instrument presets")
    add_read_arguments(p, what="files")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("simulate", help="simulate warps with real DCR (GalSim) and their truth")
    p.add_argument("outdir", nargs="?", metavar="OUTDIR", help="where to write warps/, twins/ and truth/")
    p.add_argument("--out", metavar="OUTDIR", help="the same, as the other commands take it")
    p.add_argument("--size", type=_int_at_least(16), default=256, help="image size in pixels (default 256)")
    p.add_argument("--n-visits", type=_int_at_least(1), default=8,
                   help="number of visits (warps) to simulate (default 8)")
    p.add_argument("--band", default="lsst-g",
                   help="band preset (default lsst-g; `dcrcoadd info --presets` lists them)")
    p.add_argument("--site", default=None,
                   help="observatory site (default: the band's camera site; `dcrcoadd info --presets` "
                        "lists them)")
    p.add_argument("--seed", type=_int_at_least(0), default=1,
                   help="random seed: the same seed gives the same files (default 1)")
    p.add_argument("--seeing", type=_pair, default=(0.6, 1.0), metavar="MIN,MAX",
                   help="range of the visits' seeing, FWHM in arcsec (default 0.6,1.0)")
    p.add_argument("--airmass", type=_pair, default=(1.05, 1.6), metavar="MIN,MAX",
                   help="range of the visits' airmass along the simulated track (default 1.05,1.6)")
    p.add_argument("--defects", action=argparse.BooleanOptionalAction, default=True,
                   help="add cosmic rays, bad columns, saturation and satellite streaks (default on)")
    p.add_argument("--n-stars", type=int, default=100, help="number of stars (default 100)")
    p.add_argument("--galaxies", type=int, default=0, help="number of galaxies (default 0)")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("assemble", help="baseline coadd, DCR model and DCR coadds from warps")
    p.add_argument("warps", nargs="+", metavar="WARP", help="files, directories or glob patterns")
    p.add_argument("--out", required=True, metavar="OUTDIR",
                   help="output directory (created; an interrupted run there is resumed)")
    p.add_argument("--config", metavar="FILE", action=_Once, help="TOML configuration")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. dcr.solver=exact")
    p.add_argument("--box", metavar="X0,Y0,W,H", help="restrict to a region of the grid")
    p.add_argument("--band", help="use only warps in this band")
    add_read_arguments(p, what="warps")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="local worker processes")
    p.add_argument("--scheduler", metavar="ADDRESS", type=scheduler_address,
                   help="Dask distributed scheduler to run on")
    p.add_argument("--clobber-config", action="store_true",
                   help="start over when OUTDIR holds a run with other settings")
    p.add_argument("--dcr-only", action="store_true",
                   help="fail instead of writing only the baseline coadd when DCR is underdetermined")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no summary table, progress or 'wrote ...' lines")
    # also accepted after the command; SUPPRESS keeps the global values when absent here
    p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more log output")
    p.add_argument("--log-file", metavar="FILE", default=argparse.SUPPRESS,
                   help="also write the log (INFO and above) to FILE")
    p.set_defaults(func=_cmd_assemble)

    p = sub.add_parser("template", help="DCR-matched templates for science exposures")
    p.add_argument("model", metavar="MODEL", help="model.fits written by assemble")
    p.add_argument("science", nargs="+", metavar="SCIENCE",
                   help="science exposures (files, directories or glob patterns)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output directory for <stem>_template.fits (and <stem>_diff.fits)")
    p.add_argument("--diff", action="store_true",
                   help="also write science - template, a plain pixel subtraction (no PSF matching)")
    p.add_argument("--order", type=int, choices=[1, 3], default=None,
                   help="shift interpolation order (default: the one the model was solved with)")
    p.add_argument("--psf", choices=["science", "reference"], default="science",
                   help="PSF of the templates of a PSF-aware model: each science exposure's own (default: "
                        "its PSF extension, else fitted against the model from its stars; a seeing card's "
                        "Gaussian, or any PSF when the model's warp PSFs were all measured, is fitted too) "
                        "or the model's reference PSF; recorded in the template's TMPLPSF card and PSF "
                        "extension")
    def psf_fwhm(text: str) -> float:
        from dcrcoadd.template.build import check_psf_fwhm_pixels

        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of pixels, got {text!r}") from None
        try:
            return check_psf_fwhm_pixels(value)
        except InputError as exc:
            raise argparse.ArgumentTypeError(exc.reason) from None

    p.add_argument("--psf-fwhm", type=psf_fwhm, default=None, metavar="PIXELS",
                   help="FWHM of a Gaussian science PSF for exposures that carry none (default: fit "
                        "their PSF against the model)")
    p.add_argument("-q", "--quiet", action="store_true", help="no 'wrote ...' lines")
    add_read_arguments(p, what="science exposures")
    p.set_defaults(func=_cmd_template)

    add_warp_parser(sub)
    _add_survey_parser(sub)

    p = sub.add_parser("demo", help="the whole job on a small built-in simulated field")
    p.add_argument("--out", default="demo_out", metavar="DIR",
                   help="output directory (default demo_out; an earlier demo's outputs there are replaced, "
                        "other files kept; a directory holding another run is refused)")
    p.add_argument("--size", type=_int_at_least(64, " (a smaller field holds too few stars to score)"),
                   default=128, help="side of the simulated field in pixels (default 128)")
    p.add_argument("--n-visits", type=_int_at_least(3, " (one per subfilter)"), default=10,
                   help="visits used for the model (2 more are held out)")
    p.add_argument("--seed", type=_int_at_least(0), default=7,
                   help="random seed of the simulation (default 7)")
    p.add_argument("-q", "--quiet", action="store_true", help="no stage or progress lines")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("config", help="show or write the effective configuration")
    p.add_argument("action", choices=["show", "dump", "markdown"],
                   help="show: print the effective TOML; dump FILE: write a commented template; "
                        "markdown: print the field reference table")
    p.add_argument("file", nargs="?", metavar="FILE", help="the file `dump` writes (- for standard output)")
    p.add_argument("--config", metavar="FILE", action=_Once, help="start from this TOML configuration")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. dcr.solver=exact")
    p.add_argument("--force", action="store_true", help="let `dump` overwrite an existing FILE")
    p.set_defaults(func=_cmd_config)
    return parser


class _WarnOnce(logging.Filter):
    """Lets each distinct warning through once per command; on the console, one problem shared by many
    files is shown for the first `REPEATS_SHOWN` of them and counted for the rest (`hidden`).

    A file's header is read at more than one step (a science file by the template's checks, then
    with its pixels; an exposure's bandpass by ``info``'s summary and by its subfilters), and a
    warning about one of its cards would be printed at each. A run of a hundred warps that all carry
    one mistake (a HUMIDITY given as a fraction, a MASK without ``MP_`` cards) printed it a hundred
    times. Other levels pass unchanged.
    """

    #: Files shown per shared problem before the rest are counted.
    REPEATS_SHOWN = 3

    def __init__(self, collapse: bool = False) -> None:
        super().__init__()
        self._seen: set[tuple[str, str]] = set()
        self._collapse = collapse
        self._problems: dict[tuple[str, str], list] = {}  # kind -> [shown, hidden, an example]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        message = record.getMessage()
        key = (record.name, message)
        if key in self._seen:
            return False
        self._seen.add(key)
        kind = _per_file_problem(message) if self._collapse else None
        if kind is not None:
            entry = self._problems.setdefault((record.name, kind), [0, 0, message])
            if entry[0] >= self.REPEATS_SHOWN:
                entry[1] += 1
                return False
            entry[0] += 1
        return True

    def hidden(self) -> list[str]:
        """One line per shared problem some of whose files were not shown."""
        return [f"WARNING {name}: the same as above for {hidden} more file{'s' if hidden > 1 else ''} "
                f"({example.split(': ', 1)[1][:60]}...; -v shows each)"
                for (name, _), (_, hidden, example) in self._problems.items() if hidden]


def _per_file_problem(message: str) -> str | None:
    """The problem a warning ``FILE: TEXT`` reports, its numbers and file names left out, so that
    files sharing one compare equal; None for a warning that names no file first."""
    source, sep, text = message.partition(": ")
    if not sep or " " in source or not re.search(r"\.(fits?|fts|fz|gz)(\[[^]]*\])?$", source, re.I):
        return None
    text = re.sub(r"\S+\.(fits?|fts|fz|gz)\b", "FILE", text, flags=re.I)
    return re.sub(r"[-+]?\d+(\.\d*)?([eE][-+]?\d+)?", "#", text)


def _configure_logging(verbosity: int, log_file: str | None = None) -> None:
    root = logging.getLogger("dcrcoadd")
    root.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING - 10 * min(verbosity, 2))
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    console.addFilter(_WarnOnce(collapse=verbosity == 0))
    root.addHandler(console)
    if log_file:
        handler = logging.FileHandler(log_file)
        handler.setLevel(logging.INFO)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(_WarnOnce())
        root.addHandler(handler)


#: Files a log must never be appended to (inputs, outputs and settings of dcrcoadd).
_NOT_LOG_SUFFIXES = (".fits", ".fit", ".fts", ".fz", ".gz", ".toml", ".csv", ".ecsv", ".json", ".png", ".npz")

#: Options whose value may start with a minus sign (a box left of the grid's origin, a negative RA).
_SIGNED_VALUE_OPTIONS = ("--box", "--center")


def _attach_signed_values(argv: Sequence[str]) -> list[str]:
    """``--box -10,0,64,64`` as ``--box=-10,0,64,64``: argparse takes a value such as ``-10,0,64,64``,
    which is not a plain negative number, for an unknown option."""
    out: list[str] = []
    for token in argv:
        if out and out[-1] in _SIGNED_VALUE_OPTIONS and re.match(r"-[\d.]", token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input or usage)."""
    parser = build_parser()
    args = parser.parse_args(_attach_signed_values(sys.argv[1:] if argv is None else argv))
    if args.command is None:
        parser.print_help()
        return 2
    if args.log_file and Path(args.log_file).name.lower().endswith(_NOT_LOG_SUFFIXES):
        # (the log is appended: named after an input, it damaged a warp or a survey plan)
        print(f"error: --log-file {args.log_file}: would append log lines to a data or settings file; "
              "give a .log or .txt file", file=sys.stderr)
        return 2
    try:
        _configure_logging(args.verbose, args.log_file)
    except OSError as exc:
        print(f"error: --log-file {args.log_file}: cannot write it ({exc.strerror or exc})", file=sys.stderr)
        return 2
    previous = _terminate_as_interrupt()
    try:
        return int(args.func(args) or 0)
    except DcrCoaddError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # (stdout's reader stopped early: `dcrcoadd info f | head`; not an error)
        _discard_stdout()
        return 128 + signal.SIGPIPE
    except OSError as exc:  # unwritable output, disk full...
        if args.debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except MemoryError as exc:  # a grid or a field far larger than this machine holds
        if args.debug:
            raise
        need = f" ({exc})" if str(exc) else ""
        advice = ("fewer visits (--n-visits) or a smaller field (--size) need less"
                  if args.command in ("simulate", "demo") else
                  "a smaller region (--box, a coarser or smaller grid) or smaller subregions "
                  "(coadd.subregion_size) need less")
        print(f"error: {args.command}: not enough memory{need}; {advice}", file=sys.stderr)
        return 2
    except _Terminated:
        print("error: terminated (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        _report_hidden_warnings()


def _report_hidden_warnings() -> None:
    """Count on the console the warnings `_WarnOnce` held back as repeats of one problem."""
    for handler in logging.getLogger("dcrcoadd").handlers:
        for f in handler.filters:
            if isinstance(f, _WarnOnce) and handler.level <= logging.WARNING:
                for line in f.hidden():
                    print(line, file=sys.stderr)


def _discard_stdout() -> None:
    """Point stdout at the null device, so that flushing it at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # (no file descriptor: a test's captured stdout)
        pass


class _Terminated(KeyboardInterrupt):
    """SIGTERM (what a batch system sends before killing a job), raised where Ctrl-C would be."""


def _terminate_as_interrupt():
    """Make SIGTERM stop the command as Ctrl-C does, so that what it was writing is cleaned up (an
    output stage removes its partial outputs) instead of the process dying mid-file; returns the
    previous handler (None where no handler can be set: off the main thread)."""
    def handler(signum, frame):
        raise _Terminated()

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # (not the main thread)
        return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
