"""Where the pipeline's time goes: each stage of `run_patch` timed against a plain numpy coadd.

Synthetic DCR warps (`benchmarks.dcr_assemble.synthetic_field`: DCR-shifted Gaussian stars,
Gaussian PSF HDU) are written as FITS files once. Then, in this one process and one run:

* a plain numpy inverse-variance mean of the same files (astropy reads of IMAGE, MASK and
  VARIANCE, NO_DATA/BAD/SAT/... pixels left out) — the yardstick of issue 14;
* `dcrcoadd.pipeline.run_patch` end to end with the default config (iterative solver);
* each stage on its own under cProfile: the baseline coadd with compare-warp
  (`dcrcoadd.coadd.assemble_coadd`), the DCR model (`assemble_dcr_coadd(..., baseline=...)`)
  and the outputs (`write_dcr_outputs`, `write_report`).

For each stage it prints the wall seconds without the profiler, the ratio to the numpy coadd and the
top profile entries by cumulative and by own time. Threads are not limited: run it with
``OMP_NUM_THREADS=1`` (etc.) for one-core numbers.

Run::

    PYTHONPATH=src python -m benchmarks.profile [--case 1024x1024x12 | --large] [--top 8]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # Run as a script, this file's directory comes first on sys.path, where this module's own
    # name hides the standard library's ``profile`` that ``cProfile`` imports.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import cProfile
import gc
import io
import json
import pstats
import tempfile
import time

from benchmarks import common
from benchmarks.dcr_assemble import SYNTHETIC_DATA, Case, numpy_coadd, synthetic_field

DEFAULT_CASE = "1024x1024x12"
LARGE_CASE = "2048x4096x12"
def write_warps(case: Case, directory: Path, seed: int = 1) -> list[Path]:
    from dcrcoadd.io import write_exposure

    warps, _ = synthetic_field(case.width, case.height, case.n_warps, seed=seed)
    return [write_exposure(w, directory / f"warp_{i:03d}.fits") for i, w in enumerate(warps)]


def _profile_rows(prof: cProfile.Profile, key: str, top: int) -> list[dict]:
    stats = pstats.Stats(prof, stream=io.StringIO())
    rows = []
    for (filename, line, func), (_primitive, nc, tt, ct, _callers) in stats.stats.items():
        short = filename
        for marker in ("/src/dcrcoadd/", "/site-packages/", "/benchmarks/"):
            if marker in filename:
                short = filename.split(marker, 1)[1]
                break
        rows.append({"function": f"{short}:{line}({func})", "calls": nc, "own_s": tt, "cumulative_s": ct})
    rows.sort(key=lambda r: r[key], reverse=True)
    return rows[:top]


def _timed(func, profile: bool):
    """``(result, wall seconds, profiler or None)``; with ``profile`` the call runs under cProfile."""
    gc.collect()
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof is not None:
        prof.enable()
    try:
        result = func()
    finally:
        if prof is not None:
            prof.disable()
    return result, time.perf_counter() - t0, prof


def run(case: Case, *, top: int = 8, tmp: str | None = None, log=print) -> dict:
    from dcrcoadd.coadd import assemble_coadd
    from dcrcoadd.config.schema import Config
    from dcrcoadd.dcr.assemble import assemble_dcr_coadd
    from dcrcoadd.pipeline.outputs import write_dcr_outputs, write_report
    from dcrcoadd.pipeline.run_patch import run_patch

    out: dict = {"case": case.name, "width": case.width, "height": case.height, "n_warps": case.n_warps,
                 "synthetic_data": SYNTHETIC_DATA, "solver": Config().dcr.solver}
    if tmp is not None:
        Path(tmp).mkdir(parents=True, exist_ok=True)  # a --tmp that does not exist yet
    with tempfile.TemporaryDirectory(dir=tmp) as tmpdir:
        d = Path(tmpdir)
        t0 = time.perf_counter()
        (d / "warps").mkdir()
        paths = write_warps(case, d / "warps")
        out["synthesize_and_write_s"] = time.perf_counter() - t0
        log(f"  {case.name}: wrote {len(paths)} warps in {out['synthesize_and_write_s']:.1f} s")

        numpy_coadd(paths)  # warm the page cache, as the pipeline's runs below find it
        _, t_numpy, _ = _timed(lambda: numpy_coadd(paths), False)
        out["numpy_coadd_s"] = t_numpy
        log(f"  numpy inverse-variance coadd: {t_numpy:.2f} s")

        _, t_run, _ = _timed(lambda: run_patch(paths, Config(), d / "run_patch"), False)
        out["run_patch_s"] = t_run
        log(f"  run_patch end to end: {t_run:.1f} s")

        stages: dict[str, dict] = {}
        config = Config()
        baseline = None
        result = None

        def do_baseline():
            return assemble_coadd(paths, config)

        def do_dcr():
            return assemble_dcr_coadd(paths, config, baseline=baseline)

        def do_outputs():
            write_dcr_outputs(result, d / "outputs")
            write_report(result, d / "outputs" / "report.png")

        for name, func in (("baseline_coadd", do_baseline), ("dcr_model", do_dcr), ("outputs", do_outputs)):
            value, wall, _ = _timed(func, False)
            _, wall_profiled, prof = _timed(func, True)
            if name == "baseline_coadd":
                baseline = value
            elif name == "dcr_model":
                result = value
            stages[name] = {
                "seconds": wall,
                "ratio_to_numpy": wall / t_numpy,
                "seconds_profiled": wall_profiled,
                "top_cumulative": _profile_rows(prof, "cumulative_s", top),
                "top_own": _profile_rows(prof, "own_s", top),
            }
            log(f"  {name}: {wall:.2f} s ({wall / t_numpy:.1f}x numpy)")
        out["stages"] = stages
        out["run_patch_ratio_to_numpy"] = t_run / t_numpy
        if result is not None:
            out["dcr_timings_s"] = result.metadata.get("timings_s")
    return out


def print_report(res: dict) -> None:
    print(f"\n{res['case']} ({res['n_warps']} warps, solver {res['solver']}): "
          f"numpy coadd {res['numpy_coadd_s']:.2f} s; run_patch {res['run_patch_s']:.1f} s "
          f"({res['run_patch_ratio_to_numpy']:.1f}x)")
    for name, s in res["stages"].items():
        print(f"\n== {name}: {s['seconds']:.2f} s, {s['ratio_to_numpy']:.1f}x numpy "
              f"(profiled {s['seconds_profiled']:.2f} s)")
        for key, title in (("top_cumulative", "cumulative"), ("top_own", "own")):
            print(f"   top by {title} time:      cum s    own s     calls")
            for r in s[key]:
                print(f"     {r['cumulative_s']:8.2f} {r['own_s']:8.2f} {r['calls']:9d}  {r['function']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--case", default=None, help=f"WIDTHxHEIGHTxWARPS (default {DEFAULT_CASE})")
    g.add_argument("--large", action="store_true", help=f"the DECam-CCD case {LARGE_CASE}")
    ap.add_argument("--top", type=int, default=8, help="profile entries per stage and order")
    ap.add_argument("--tmp", default=None, help="directory for the synthetic warps")
    ap.add_argument("--out-dir", type=Path, default=None,
                    help="results directory (default benchmarks/results)")
    ap.add_argument("--json", action="store_true",
                    help="print the results as JSON on the last line instead of writing a file "
                         "(how benchmarks.speed runs this in a child process)")
    args = ap.parse_args(argv)
    common.setup_logging()
    case = Case.parse(LARGE_CASE if args.large else args.case or DEFAULT_CASE)
    if args.json:
        res = run(case, top=args.top, tmp=args.tmp, log=lambda *a: None)
        print(json.dumps(common._clean(res)))
        return 0
    res = run(case, top=args.top, tmp=args.tmp)
    print_report(res)
    argv = list(argv if argv is not None else sys.argv[1:])
    path = common.write_results(f"profile_{case.name}", res, args.out_dir,
                                argv=["-m", "benchmarks.profile", *argv])
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
