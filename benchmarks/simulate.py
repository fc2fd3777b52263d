"""Benchmark: `dcrcoadd.sim.simulate` (GalSim-rendered warps with DCR, truth, noise twins).

Cases (issue 4):

* ``test``: the default configuration, 256x256 pixels, 8 visits, 100 stars + 1 bright star;
* ``large``: 1024x1024 pixels, 12 visits, 1,000 stars + 1 bright star.

Each case runs in a fresh child process (so one-time costs -- imports, astropy's
Earth-orientation tables, GalSim's profile set-up -- are counted, as a user of
``dcrcoadd simulate`` pays them) and reports the wall time of `simulate` (in
memory), of `write_simulation`, the per-visit time, and the peak resident set size.
A second `simulate` call in the same process gives the warm time.

Prints a table and saves ``benchmarks/results/simulate.json`` with machine and
software versions, the load average and the command line.

Run::

    .venv/bin/python benchmarks/simulate.py                  # both cases
    .venv/bin/python benchmarks/simulate.py --case test
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import MiB, child_json, machine_info, peak_rss_bytes, write_results  # noqa: E402

CASES = {
    "test": {},
    "large": {"size": 1024, "n_visits": 12, "n_stars": 1000},
}


def child(case: str) -> dict:
    t_import = time.perf_counter()
    from dcrcoadd.sim import SimulationConfig, simulate, write_simulation

    t_import = time.perf_counter() - t_import
    config = SimulationConfig(**CASES[case])
    t0 = time.perf_counter()
    sim = simulate(config)
    cold = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        written = write_simulation(sim, tmp)
        write = time.perf_counter() - t0
        size_mib = sum(p.stat().st_size for paths in written.values() for p in paths) / MiB
    t0 = time.perf_counter()
    simulate(config)
    warm = time.perf_counter() - t0
    return {
        "case": case, "size": list(config.shape), "n_visits": config.n_visits,
        "n_sources": len(sim.catalog), "import_s": t_import, "simulate_cold_s": cold,
        "simulate_warm_s": warm, "per_visit_warm_s": warm / config.n_visits, "write_s": write,
        "output_mib": size_mib, "peak_rss_mib": peak_rss_bytes() / MiB,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", action="append", choices=sorted(CASES), help="repeatable; default all")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child)))
        return 0
    results = []
    print(f"{'case':>6} {'pixels':>10} {'visits':>6} {'sources':>7} {'cold [s]':>9} {'warm [s]':>9} "
          f"{'per visit':>9} {'write [s]':>9} {'MiB':>7} {'RSS MiB':>8}")
    for case in args.case or list(CASES):
        r = child_json([sys.executable, __file__, "--child", case])
        results.append(r)
        print(f"{case:>6} {r['size'][1]:>4}x{r['size'][0]:<5} {r['n_visits']:>6} {r['n_sources']:>7} "
              f"{r['simulate_cold_s']:9.2f} {r['simulate_warm_s']:9.2f} {r['per_visit_warm_s']:9.3f} "
              f"{r['write_s']:9.2f} {r['output_mib']:7.1f} {r['peak_rss_mib']:8.0f}")
    machine = machine_info()
    path = write_results("simulate", {"date": machine["date"], "machine": machine, "results": results})
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
