"""Start-up time of the command line: ``dcrcoadd --version`` and ``dcrcoadd info FILE``.

A user feels these as the latency of every command. Each is run as a fresh process
(``python -m dcrcoadd ...``) several times; the result records the wall time (best and
median), the time Python spent importing ``dcrcoadd`` and everything it imports (from
``python -X importtime``, one more run), the largest imports, and which of the heavy optional
packages (`HEAVY`: matplotlib, dask, distributed, galsim, reproject) were imported, which
should be none: they are imported only by the commands that use them.

Run::

    python -m benchmarks.startup [--repeat N] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    from . import common
except ImportError:  # run as a script: python benchmarks/startup.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks import common

#: Optional packages that must not be imported by ``--version`` or ``info``.
HEAVY = ("matplotlib", "dask", "distributed", "galsim", "reproject")
#: How many of the largest imports (cumulative time) a measurement lists.
TOP_IMPORTS = 8


def _env() -> dict:
    env = dict(os.environ, **common.SINGLE_THREAD_ENV)
    src = str(common.REPO_ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    return env


def parse_importtime(text: str) -> list[tuple[str, float, float, int]]:
    """``(module, self seconds, cumulative seconds, depth)`` of every line of ``-X importtime``
    output; depth 0 for the imports the program itself made (their cumulative times add up)."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line[len("import time:"):].split("|")
        if len(parts) != 3:
            continue
        try:
            own, cumulative = int(parts[0]), int(parts[1])
        except ValueError:  # the header line
            continue
        raw = parts[2].rstrip()
        rows.append((raw.strip(), own / 1e6, cumulative / 1e6, len(raw) - len(raw.lstrip())))
    if rows:
        base = min(r[3] for r in rows)
        rows = [(name, own, cumulative, (depth - base) // 2) for name, own, cumulative, depth in rows]
    return rows


def package_import_seconds(rows: list[tuple[str, float, float, int]],
                           package: str = "dcrcoadd") -> float | None:
    """Seconds spent importing ``package`` and what it imports: the cumulative times of its modules
    that the program imported at the top level. The package loads its names on first use, so the
    command line (``dcrcoadd.cli``) is a top-level import of its own, not part of ``dcrcoadd``'s."""
    own = [r[2] for r in rows if r[3] == 0 and (r[0] == package or r[0].startswith(package + "."))]
    return sum(own) if own else None


def heavy_imports(rows: list[tuple[str, float, float, int]]) -> list[str]:
    """The `HEAVY` packages among the imported modules."""
    roots = {r[0].split(".")[0] for r in rows}
    return [h for h in HEAVY if h in roots]


def measure(args: list[str], repeat: int) -> dict:
    """Wall time of ``python -m dcrcoadd ARGS`` over ``repeat`` fresh processes, and its imports."""
    cmd = [sys.executable, "-m", "dcrcoadd", *args]
    env = _env()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=common.REPO_ROOT)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[1:])} failed: {proc.stderr[-2000:]}")
    proc = subprocess.run([sys.executable, "-X", "importtime", *cmd[1:]], capture_output=True, text=True,
                          env=env, cwd=common.REPO_ROOT)
    rows = parse_importtime(proc.stderr)
    top_level = [r for r in rows if r[3] == 0]
    return {
        "command": "dcrcoadd " + " ".join(a if not os.path.isabs(a) else Path(a).name for a in args),
        "wall_s_min": min(times),
        "wall_s_median": statistics.median(times),
        "import_total_s": sum(r[2] for r in top_level),
        "import_dcrcoadd_s": package_import_seconds(rows),
        "largest_imports": [{"module": r[0], "cumulative_s": r[2]}
                            for r in sorted(rows, key=lambda r: -r[2]) if r[3] <= 1][:TOP_IMPORTS],
        "heavy_imported": heavy_imports(rows),
    }


def _exposure_file(directory: Path) -> Path:
    """A small exposure file with a visit, band, WCS and PSF, for ``info`` to read."""
    from benchmarks.dcr_assemble import synthetic_field
    from dcrcoadd.io import write_exposure

    warps, _ = synthetic_field(64, 64, 1, n_science=0)
    return write_exposure(warps[0], directory / "startup_probe.fits")


def run(repeat: int = 5, log=print) -> dict:
    """Measure ``--version`` and ``info FILE``; returns the JSON-ready result."""
    with tempfile.TemporaryDirectory(prefix="dcrcoadd-startup-") as tmp:
        path = _exposure_file(Path(tmp))
        cases = {"version": ["--version"], "info": ["info", str(path)]}
        results = {}
        for name, args in cases.items():
            log(f"  startup: dcrcoadd {' '.join(args[:1])} ({repeat} runs)", flush=True)
            results[name] = measure(args, repeat)
    return {"repeat": repeat, "heavy_modules": list(HEAVY), "cases": results}


def print_summary(res: dict) -> None:
    for r in res["cases"].values():
        heavy = ", ".join(r["heavy_imported"]) or "none"
        print(f"  {r['command']:<28} wall {r['wall_s_min']:.2f} s (median {r['wall_s_median']:.2f} s), "
              f"importing dcrcoadd {common.fmt(r['import_dcrcoadd_s'], '.2f')} s; heavy imports: {heavy}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="fresh processes per command (default 5)")
    ap.add_argument("--out", type=Path, default=common.RESULTS_DIR / "startup.json", help="result file")
    args = ap.parse_args(argv)
    res = run(args.repeat)
    print_summary(res)
    common.write_results_to(args.out, "startup", res, ["-m", "benchmarks.startup", *(argv or sys.argv[1:])])
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
