"""Speed and scale: baseline coadd, DCR assembly and one template over image sizes and warp counts.

Each case (``WIDTHxHEIGHTxWARPS``) is measured by `benchmarks.dcr_assemble` in its own
single-threaded child process on synthetic DCR warps read from FITS files: CPU and
wall time and the peak resident memory of each step. From the cases measured in
the same run this reports

* the ratio DCR assembly / baseline coadd per case;
* scaling exponents ``d log t / d log N`` with pixels (at a fixed warp count) and
  with warps (at a fixed size), for the baseline coadd, the DCR assembly, its
  model time per iteration (the iteration count depends on the data) and the
  template, and the same for peak memory;
* the shift kernel's throughput (Mpix/s) next to ``scipy.ndimage.shift`` on the
  same array (`benchmarks.shift.run`, the solver's inner loop).

Case sets: ``--quick`` 256²x{6,12} and 384²x6; default 512²x{6,12,24}, 1024²x12 and 2048x4096x12;
``--full`` every combination of 512², 1024², 2048x4096 with 6, 12, 24 warps.

Run::

    .venv/bin/python -m benchmarks.speed [--quick | --full]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

try:
    from . import common
    from .dcr_assemble import SYNTHETIC_DATA, Case, measure_in_child, summarize
except ImportError:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks import common
    from benchmarks.dcr_assemble import SYNTHETIC_DATA, Case, measure_in_child, summarize

QUICK_CASES = ["256x256x6", "256x256x12", "384x384x6"]
DEFAULT_CASES = ["512x512x6", "512x512x12", "512x512x24", "1024x1024x12", "2048x4096x12"]
FULL_CASES = [f"{s}x{n}" for s in ("512x512", "1024x1024", "2048x4096") for n in (6, 12, 24)]
SHIFT_SIZE = {"quick": 512, "default": 1024, "full": 2048}

#: (name, getter) of the quantities whose scaling is fitted.
QUANTITIES = {
    "baseline_cpu_s": lambda r: r["baseline"]["cpu_seconds"],
    "dcr_cpu_s": lambda r: r["dcr"]["cpu_seconds"],
    "dcr_model_cpu_s_per_iteration": lambda r: (
        r["dcr"]["model_cpu_s"] / max(r["dcr"]["iterations_mean"], 1.0)
    ),
    "template_cpu_s": lambda r: r["template"]["best_cpu_s"],
    "baseline_peak_mib": lambda r: r["baseline"]["peak_rss_growth_mib"],
    "dcr_peak_mib": lambda r: r["dcr"]["peak_rss_growth_mib"],
}


def scaling(results: list[dict]) -> dict:
    """Exponents with pixels (at the warp count with the most sizes) and with warps (at the size with
    the most warp counts); None where the run has fewer than two points."""

    def best_group(key, other):
        groups: dict = {}
        for r in results:
            groups.setdefault(r[key], []).append(r)
        if not groups:
            return None, []
        value, rows = max(groups.items(), key=lambda kv: (len({r[other] for r in kv[1]}), kv[0]))
        return value, rows

    n_fixed, by_pixels = best_group("n_warps", "pixels")
    px_fixed, by_warps = best_group("pixels", "n_warps")
    out = {
        "with_pixels": {"at_n_warps": n_fixed, "cases": [r["case"] for r in by_pixels]},
        "with_warps": {"at_pixels": px_fixed, "cases": [r["case"] for r in by_warps]},
    }
    for name, get in QUANTITIES.items():
        out["with_pixels"][name] = common.scaling_exponent(
            [r["pixels"] for r in by_pixels], [get(r) for r in by_pixels]
        )
        out["with_warps"][name] = common.scaling_exponent(
            [r["n_warps"] for r in by_warps], [get(r) for r in by_warps]
        )
    return out


def shift_throughput(size: int, repeat: int) -> dict:
    """Throughput of dcrcoadd's shift kernels and of ``scipy.ndimage.shift`` (`benchmarks.shift.run`)."""
    try:
        from . import shift as shift_bench
    except ImportError:
        from benchmarks import shift as shift_bench
    res = shift_bench.run(size, repeat)
    cases = {c["case"]: c for c in res["cases"]}
    summary = {}
    for name in ("order1", "order3_with_prefilter", "order3_prefiltered", "shift_many_order3_x3"):
        c = cases.get(name)
        if c is None:
            continue
        summary[name] = {
            "dcrcoadd_mpix_s": c["ours_mpix_s"],
            "scipy_mpix_s": c.get("scipy_mpix_s"),
            "speedup": c.get("speedup"),
        }
    return {"size": size, "repeat": repeat, "summary": summary, "detail": res}


def run(cases: list[Case], mode: str, *, log=print) -> dict:
    results = []
    for case in cases:
        t0 = time.perf_counter()
        results.append(measure_in_child(case))
        r = results[-1]
        log(
            f"  {case.name}: baseline {r['baseline']['cpu_seconds']:.2f} s, "
            f"DCR {r['dcr']['cpu_seconds']:.2f} s "
            f"({r['dcr']['iterations_max']} iterations), template {r['template']['best_cpu_s']:.3f} s "
            f"[{time.perf_counter() - t0:.0f} s]"
        )
    t0 = time.perf_counter()
    shift = shift_throughput(SHIFT_SIZE.get(mode, 1024), 3 if mode == "quick" else 5)
    log(f"  shift kernels at {shift['size']}²: {time.perf_counter() - t0:.0f} s")
    return {
        "mode": mode,
        "synthetic_data": SYNTHETIC_DATA,
        "threads": "1 (child process per case)",
        "cases": results,
        **summarize(results),
        "scaling": scaling(results),
        "shift": shift,
    }


def print_summary(res: dict) -> None:
    from benchmarks.dcr_assemble import print_table

    f = common.fmt
    print_table(res["cases"])
    sc = res["scaling"]
    print(
        f"scaling with pixels (at {sc['with_pixels']['at_n_warps']} warps) and with warps "
        f"(at {sc['with_warps']['at_pixels']} px):"
    )
    for name in QUANTITIES:
        print(
            f"  {name:32s} pixels^{f(sc['with_pixels'][name], '.2f')}  "
            f"warps^{f(sc['with_warps'][name], '.2f')}"
        )
    print(f"shift kernel at {res['shift']['size']}² (Mpix/s): dcrcoadd vs scipy.ndimage.shift")
    for name, s in res["shift"]["summary"].items():
        print(
            f"  {name:24s} {f(s['dcrcoadd_mpix_s'], '8.0f')} {f(s['scipy_mpix_s'], '8.0f')}  "
            f"x{f(s['speedup'], '.1f')}"
        )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help=f"cases {QUICK_CASES}")
    g.add_argument("--full", action="store_true", help=f"cases {FULL_CASES}")
    g.add_argument("--case", action="append", help="WIDTHxHEIGHTxWARPS (repeatable)")
    ap.add_argument(
        "--out-dir", type=Path, default=None, help="results directory (default benchmarks/results)"
    )
    args = ap.parse_args(argv)
    mode = "quick" if args.quick else "full" if args.full else "custom" if args.case else "default"
    names = args.case or {"quick": QUICK_CASES, "full": FULL_CASES}.get(mode, DEFAULT_CASES)
    res = run([Case.parse(c) for c in names], mode)
    print_summary(res)
    path = common.write_results(
        "speed",
        res,
        args.out_dir,
        argv=["-m", "benchmarks.speed", *(argv if argv is not None else sys.argv[1:])],
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
