"""``dcrcoadd survey PLAN --out DIR [--scheduler ADDRESS | --workers N]``: what the command does
with its arguments (the parser is in ``cli.py``, which imports this module only to run it)."""

from __future__ import annotations

import argparse
import math
import sys

from dcrcoadd.errors import ConfigError


def _line(outcome, done: int, total: int) -> str:
    head = f"[{done}/{total}] patch {outcome.name}: {outcome.status}"
    if outcome.status == "failed":
        return f"{head}: {outcome.error}"
    parts = [f"{outcome.n_inputs} warps"]
    if math.isfinite(outcome.airmass_min):
        parts.append(f"airmass {outcome.airmass_min:.3f}-{outcome.airmass_max:.3f}")
    if outcome.false_dcr >= 0:
        parts.append(f"false detections {outcome.false_dcr} (baseline {outcome.false_baseline})")
    if not outcome.dcr:
        parts.append("baseline coadd only")
    if outcome.n_warnings:  # (on a Dask worker they were logged there: say where they are)
        parts.append(f"{outcome.n_warnings} warning(s) in {outcome.name}/metadata.json")
    return f"{head} ({', '.join(parts)}, {outcome.seconds:.1f} s)"


def cmd_survey(args: argparse.Namespace) -> int:
    from dcrcoadd.pipeline.survey import exit_status, run_survey
    from dcrcoadd.pipeline.survey_plan import read_plan

    if args.in_flight is not None and not (args.scheduler or args.workers):
        raise ConfigError("--in-flight needs --scheduler or --workers")
    plan = read_plan(args.plan, config=args.config, overrides=args.set or [], band=args.band)

    def progress(outcome, done: int, total: int) -> None:
        if outcome.status == "failed":
            print(f"error: {_line(outcome, done, total)}", file=sys.stderr, flush=True)
        elif not args.quiet:
            print(_line(outcome, done, total), flush=True)

    result = run_survey(plan, args.out, scheduler=args.scheduler, workers=args.workers,
                        in_flight=args.in_flight, clobber_config=args.clobber_config, progress=progress,
                        command=" ".join(sys.argv))
    failed = len(result.failed)
    if not args.quiet:
        for path in result.summary.values():
            print(f"wrote {path}")
    counts = {s: sum(o.status == s for o in result.outcomes) for s in ("done", "resumed")}
    line = (f"{len(result.outcomes)} patches: {counts['done']} done, {counts['resumed']} finished earlier, "
            f"{failed} failed")
    if failed:
        print(f"error: {line}", file=sys.stderr)
    elif not args.quiet:
        print(line)
    return exit_status(failed)
