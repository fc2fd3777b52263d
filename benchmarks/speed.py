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
  same array (`benchmarks.shift.run`, the solver's inner loop);
* per case, each stage against a plain numpy inverse-variance coadd of the same files (issue 14's
  yardstick): baseline coadd with compare-warp, DCR stage, outputs and the run end to end;
* the profile's top entries per stage (`benchmarks.profile`, one case, own time);
* ``--workers 2`` against one process, stage by stage (`workers_check`: `run_patch` with default
  settings, on the DECam-CCD case), next to the machine's measured two-process capacity
  (`benchmarks.parallel.machine_parallel_capacity`), which bounds any speed-up.

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
#: Case of the profile summary, per mode.
PROFILE_CASE = {"quick": "256x256x6", "default": "1024x1024x12", "full": "1024x1024x12"}
#: Case of the ``--workers 2`` check, per mode: the DECam-CCD size, whose six DCR subregions run as
#: tasks (one 1024² subregion leaves the DCR stage only FFT threads).
WORKERS_CASE = {"quick": "256x256x6", "default": "2048x4096x12", "full": "2048x4096x12"}
#: Stages of `run_patch`'s ``metadata.json`` timings compared by `workers_check`.
RUN_STAGES = ("baseline_coadd", "dcr_model", "write_outputs")

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


def profile_summary(case: str, top: int = 6) -> dict:
    """`benchmarks.profile` of ``case`` in a fresh single-threaded process: wall seconds of each stage,
    its ratio to the numpy coadd and its ``top`` entries by own time."""
    res = common.run_child("profile", ["--case", case, "--top", top], flag="--json")
    return {
        "case": res["case"], "numpy_coadd_s": res["numpy_coadd_s"], "run_patch_s": res["run_patch_s"],
        "stages": {name: {"seconds": st["seconds"], "ratio_to_numpy": st["ratio_to_numpy"],
                          "top_own": st["top_own"][:top]}
                   for name, st in res["stages"].items()},
    }


def _same_fits(a: Path, b: Path) -> bool:
    """Whether every FITS file of run directory ``a`` has bit-identical data in ``b``."""
    import numpy as np
    from astropy.io import fits

    for pa in sorted(a.glob("*.fits")):
        with fits.open(pa) as ha, fits.open(b / pa.name) as hb:
            for x, y in zip(ha, hb, strict=True):
                if x.data is None:
                    continue
                if isinstance(x, fits.BinTableHDU):
                    if x.data.tobytes() != y.data.tobytes():
                        return False
                elif not np.array_equal(x.data, y.data, equal_nan=True):
                    return False
    return True


def workers_check(case: Case, workers: int = 2, seed: int = 1) -> dict:
    """`run_patch` (default settings) of ``case`` with one process and with ``workers`` local
    processes: wall seconds per stage, the speed-ups, whether the outputs are identical, and the
    machine's two-process capacity measured right after (the ceiling of any speed-up)."""
    import tempfile

    from benchmarks.parallel import machine_parallel_capacity
    from benchmarks.profile import write_warps
    from dcrcoadd.config.schema import Config
    from dcrcoadd.parallel import make_mapper
    from dcrcoadd.parallel.tiles import tiles
    from dcrcoadd.pipeline.run_patch import run_patch

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "warps").mkdir()
        paths = write_warps(case, tmp / "warps", seed)
        for n in (1, workers):
            mapper = None if n == 1 else make_mapper(n)
            try:
                t0 = time.perf_counter()
                res = run_patch(paths, Config(), tmp / f"workers_{n}", mapper=mapper)
                total = time.perf_counter() - t0
            finally:
                if mapper is not None:
                    mapper.close()
            runs[n] = {"total": total, **{k: res.metadata["timings_s"].get(k) for k in RUN_STAGES}}
        identical = _same_fits(tmp / "workers_1", tmp / f"workers_{workers}")
        n_tiles = len(tiles(res.baseline.coadd.bbox, tuple(Config().coadd.subregion_size)))
    capacity = machine_parallel_capacity()
    one, many = runs[1], runs[workers]
    speedup = {k: (one[k] / many[k] if one[k] and many[k] else None) for k in ("total", *RUN_STAGES)}
    return {"case": case.name, "workers": workers, "subregions": n_tiles,
            "seconds": {"1": one, str(workers): many}, "speedup": speedup,
            "machine_parallel_capacity": capacity,
            "speedup_over_capacity": {k: (v / capacity if v else None) for k, v in speedup.items()},
            "identical_outputs": identical}


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
    t0 = time.perf_counter()
    profile = profile_summary(PROFILE_CASE.get(mode, PROFILE_CASE["default"]))
    log(f"  profile of {profile['case']}: {time.perf_counter() - t0:.0f} s")
    t0 = time.perf_counter()
    workers = common.run_child("speed", [WORKERS_CASE.get(mode, WORKERS_CASE["default"])],
                               flag="--workers-check")
    log(f"  --workers 2 on {workers['case']}: {time.perf_counter() - t0:.0f} s")
    return {
        "mode": mode,
        "synthetic_data": SYNTHETIC_DATA,
        "threads": "1 (child process per case)",
        "cases": results,
        **summarize(results),
        "scaling": scaling(results),
        "shift": shift,
        "profile": profile,
        "workers": workers,
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
    p = res.get("profile")
    if p:
        print(f"profile of {p['case']} (wall s; numpy coadd {p['numpy_coadd_s']:.2f} s), top by own time:")
        for name, st in p["stages"].items():
            print(f"  {name}: {st['seconds']:.2f} s ({st['ratio_to_numpy']:.0f}x numpy)")
            for r in st["top_own"]:
                print(f"    {r['own_s']:7.2f} s {r['calls']:8d}  {r['function']}")
    w = res.get("workers")
    if w:
        n = str(w["workers"])
        print(f"--workers {n} on {w['case']} ({w['subregions']} subregions), wall s 1 -> {n} processes "
              f"(machine's two-process capacity {w['machine_parallel_capacity']:.2f}x; identical outputs: "
              f"{w['identical_outputs']}):")
        for k in ("total", *RUN_STAGES):
            print(f"  {k:16s} {f(w['seconds']['1'][k], '7.2f')} -> {f(w['seconds'][n][k], '7.2f')}  "
                  f"x{f(w['speedup'][k], '.2f')}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help=f"cases {QUICK_CASES}")
    g.add_argument("--full", action="store_true", help=f"cases {FULL_CASES}")
    g.add_argument("--case", action="append", help="WIDTHxHEIGHTxWARPS (repeatable)")
    ap.add_argument(
        "--out-dir", type=Path, default=None, help="results directory (default benchmarks/results)"
    )
    ap.add_argument("--workers-check", metavar="CASE", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.workers_check:  # child process of `run`: print the JSON of `workers_check`
        import json

        print(json.dumps(common._clean(workers_check(Case.parse(args.workers_check)))))
        return 0
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
