"""Shared helpers of the benchmark suite: machine description, peak-memory probes,
child processes, JSON results and small statistics.

Every result file written by the suite is one JSON object with at least
``benchmark`` (its name), ``machine`` (see `machine_info`) and ``command``;
NaN and infinities are written as ``null`` so that any JSON reader accepts it.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

MiB = 1024.0 * 1024.0
BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

#: Environment of measured child processes: one thread per library, so a case measures one core
#: (as DMTN-037's timings were) and does not compete with the other cases' numbers.
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}


# -- the machine ------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, check=True, cwd=REPO_ROOT, timeout=10
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except ImportError:
        return None
    return getattr(mod, "__version__", None)


def machine_info(argv: Sequence[str] | None = None) -> dict:
    """Cores, CPU model, memory, load, platform, package versions, git commit and the command."""
    memory = None
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / MiB / 1024
    except (ValueError, OSError, AttributeError):
        pass
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    status = _git("status", "--porcelain", "--untracked-files=no")
    argv = list(sys.argv if argv is None else argv)
    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": memory,
        "load_average_1_5_15": load,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            name: _version(name) for name in ("dcrcoadd", "numpy", "scipy", "astropy", "galsim", "matplotlib")
        },
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "command": " ".join([sys.executable, *argv]),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


# -- results ----------------------------------------------------------------------------------------


def _clean(value):
    """JSON-safe copy: numpy scalars/arrays to Python, NaN/inf to None, paths to str."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_results(
    name: str, payload: dict, out_dir: Path | None = None, argv: Sequence[str] | None = None
) -> Path:
    """Write ``<out_dir>/<name>.json`` (default `RESULTS_DIR`) atomically and return its path.

    ``benchmark``, ``machine`` and ``command`` are added unless ``payload`` has them.
    """
    out_dir = Path(out_dir) if out_dir is not None else RESULTS_DIR
    return write_results_to(out_dir / f"{name}.json", name, payload, argv)


def write_results_to(path: Path, name: str, payload: dict, argv: Sequence[str] | None = None) -> Path:
    """`write_results` to an explicit file ``path`` (a script's ``--out``), its folder created if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": name}
    data.update(payload)
    data.setdefault("machine", machine_info(argv))
    data.setdefault("command", data["machine"]["command"])
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_clean(data), indent=2, allow_nan=False) + "\n")
    tmp.replace(path)
    return path


def read_results(name: str, out_dir: Path | None = None) -> dict | None:
    path = (Path(out_dir) if out_dir is not None else RESULTS_DIR) / f"{name}.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


# -- memory -----------------------------------------------------------------------------------------


def _status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss_bytes() -> int:
    """The process's peak resident set size so far (``ru_maxrss``), in bytes."""
    factor = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * factor


class PeakMemory:
    """Peak resident memory of the process while the ``with`` block runs.

    On Linux the kernel's high-water mark is reset on entry (``/proc/self/clear_refs``),
    so ``peak_mib`` is the block's own peak and ``growth_mib`` its peak minus the
    resident size on entry (what the block allocated on top of what was already
    there). Elsewhere ``ru_maxrss`` is used, which cannot be reset: the peak is then
    the process's peak so far (``exact`` is False).
    """

    def __enter__(self) -> PeakMemory:
        self.rss0 = _status_bytes("VmRSS")
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.exact = self.rss0 is not None
        except OSError:
            self.exact = False
        self.t0 = time.perf_counter()
        self.c0 = time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0
        self.cpu_seconds = time.process_time() - self.c0
        hwm = _status_bytes("VmHWM") if self.exact else None
        if hwm is None:
            hwm = peak_rss_bytes()
        self.peak_mib = hwm / MiB
        self.growth_mib = (hwm - (self.rss0 or 0)) / MiB

    def as_dict(self) -> dict:
        return {
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
            "peak_rss_mib": self.peak_mib,
            "peak_rss_growth_mib": self.growth_mib,
            "peak_exact": self.exact,
        }


# -- child processes --------------------------------------------------------------------------------


def run_child(
    module: str, args: Sequence[str], *, flag: str = "--child", timeout: float | None = None
) -> dict:
    """Run ``python -m benchmarks.<module> FLAG ARGS`` single-threaded; return the JSON object
    the child prints on its last line of standard output."""
    env = dict(os.environ, **SINGLE_THREAD_ENV)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", f"benchmarks.{module}", flag, *map(str, args)]
    return child_json(cmd, env=env, cwd=REPO_ROOT, timeout=timeout)


def child_json(
    cmd: Sequence[str], *, env: dict | None = None, cwd: Path | None = None, timeout: float | None = None
) -> dict:
    """Run ``cmd`` and return the JSON object it prints on its last line of standard output.

    Unlike `run_child` the environment is left as it is (``env=None``: this process's), so a
    script that measured its children with the caller's threads keeps doing so.
    """
    cmd = [str(c) for c in cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(
            f"child {' '.join(cmd[1:])} failed with status {proc.returncode}:\n{proc.stderr[-4000:]}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def setup_logging(level: int = logging.WARNING) -> None:
    """Show dcrcoadd's warnings (e.g. a diverging solve) as one prefixed line each."""
    logging.basicConfig(level=level, format="  [%(name)s] %(levelname)s: %(message)s")


# -- statistics -------------------------------------------------------------------------------------


def timeit(func: Callable[[], object], repeat: int) -> dict:
    """Best and median wall time of ``repeat`` calls of ``func``, after one untimed warm-up call."""
    func()  # warm caches, lazy imports and set-up, which are not what is measured
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return {"min_s": min(times), "median_s": statistics.median(times)}


def robust_sigma(x: np.ndarray) -> float:
    """1.4826 x the median absolute deviation (NaN for an empty array)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan")
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def line_fit(x: np.ndarray, y: np.ndarray) -> dict:
    """Least-squares line ``y = slope x + intercept`` with the robust scatter of the residuals."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3 or np.ptp(x) == 0:
        return {"n": int(x.size), "slope": None, "intercept": None, "scatter": None}
    slope, intercept = np.polyfit(x, y, 1)
    return {
        "n": int(x.size),
        "slope": float(slope),
        "intercept": float(intercept),
        "scatter": robust_sigma(y - (slope * x + intercept)),
    }


def scaling_exponent(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Slope of ``log y`` against ``log x`` (None with fewer than two distinct ``x``)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = (x > 0) & (y > 0) & np.isfinite(y)
    if np.unique(x[ok]).size < 2:
        return None
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def fmt(value, spec: str = ".3g", none: str = "—") -> str:
    """Format a number for tables, ``none`` for missing values."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return none
    return format(value, spec)
