"""Speed-up of the DCR assembly with 1 and 2 local worker processes (and a Dask LocalCluster).

Synthesizes warps of a star field with known per-visit shifts (numpy, no GalSim), writes them to
a temporary directory, and times `dcrcoadd assemble` with ``--workers 1`` and ``--workers 2``
(and ``--scheduler`` on a two-worker Dask LocalCluster on loopback), checking that every run
writes bit-identical outputs.

    python benchmarks/parallel.py [--size 512] [--warps 8] [--subregion 128]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import machine_info, write_results  # noqa: E402


def write_field(directory: Path, size: int, n_warps: int, seed: int = 1) -> list[Path]:
    from astropy.wcs import WCS

    from dcrcoadd import Bandpass, Exposure, Observatory, Psf, VisitInfo, write_exposure
    from dcrcoadd.core.visit import altitude_from_airmass

    rng = np.random.default_rng(seed)
    n_stars = size * size // 400
    ys, xs = rng.uniform(8, size - 8, (2, n_stars))
    flux = 10 ** rng.uniform(2.5, 4.5, n_stars)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, -30.0]
    wcs.wcs.crpix = [size / 2, size / 2]
    wcs.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    yy, xx = np.mgrid[:size, :size]
    paths = []
    for i, airmass in enumerate(np.linspace(1.0, 2.0, n_warps)):
        image = rng.normal(0.0, 5.0, (size, size))
        shift = 0.8 * (airmass - 1.0)  # sources offset along y by airmass, as DCR would
        for y, x, f in zip(ys, xs, flux, strict=True):
            iy, ix = int(y), int(x)
            sl = (slice(max(iy - 8, 0), iy + 9), slice(max(ix - 8, 0), ix + 9))
            image[sl] += f * np.exp(-0.5 * ((yy[sl] - y - shift) ** 2 + (xx[sl] - x) ** 2) / 1.7**2) / 18.2
        visit = VisitInfo(id=i, airmass=float(airmass), boresight_alt=altitude_from_airmass(airmass),
                          boresight_az=(40.0 + 280.0 * i / max(n_warps - 1, 1)) * u.deg,
                          observatory=Observatory.from_site("rubin"))
        exp = Exposure(image=image, variance=np.full((size, size), 25.0), wcs=wcs, psf=Psf.gaussian(1.7),
                       visit=visit, bandpass=Bandpass("g", 478 * u.nm, 148 * u.nm))
        paths.append(write_exposure(exp, directory / f"warp_{i:02d}.fits"))
    return paths


def run(paths, out: Path, subregion: int, *extra: str) -> dict:
    """Wall time of the whole command and of its DCR-model stage (the part executors share out)."""
    import contextlib
    import io
    import json

    from dcrcoadd.cli import main

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        status = main(["assemble", *map(str, paths), "--out", str(out), "-q",
                       "--set", f"coadd.subregion_size=[{subregion},{subregion}]", *extra])
    if status != 0:
        raise SystemExit(f"assemble failed with status {status}")
    total = time.perf_counter() - start
    stage = json.loads((out / "metadata.json").read_text())["timings_s"]["dcr_model"]
    return {"total": total, "dcr_model": stage}


def _spin(n: int = 10_000_000) -> float:
    start = time.perf_counter()
    total = 0
    for i in range(n):
        total += i
    return time.perf_counter() - start


def machine_parallel_capacity(repeat: int = 3) -> float:
    """How much faster two processes finish two equal pure-Python loops than one process does:
    2.0 on two free cores. Small virtual machines often give much less, which bounds any speed-up.

    The best of ``repeat`` tries, each timing one loop then two at once: other jobs on a shared
    machine only ever lower a try (one try once read 1.04 while the pipeline's DCR stage ran 1.65x
    as fast on two workers in the same run).
    """
    from concurrent.futures import ProcessPoolExecutor

    best = 0.0
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_spin, [1000, 1000]))  # both workers started before any timing
        for _ in range(repeat):
            one = _spin()
            start = time.perf_counter()
            list(pool.map(_spin, [10_000_000, 10_000_000]))
            best = max(best, 2 * one / (time.perf_counter() - start))
    return best


def identical(a: Path, b: Path) -> bool:
    for name in ("dcr_coadd.fits", "model.fits"):
        with fits.open(a / name) as ha, fits.open(b / name) as hb:
            for x, y in zip(ha, hb, strict=True):
                if x.data is not None and not isinstance(x, fits.BinTableHDU) \
                        and not np.array_equal(x.data, y.data):
                    return False
    return True


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--warps", type=int, default=8)
    parser.add_argument("--subregion", type=int, default=128)
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = write_field(tmp / "warps", args.size, args.warps)
        times = {"workers_1": run(paths, tmp / "w1", args.subregion),
                 "workers_2": run(paths, tmp / "w2", args.subregion, "--workers", "2")}
        same = identical(tmp / "w1", tmp / "w2")
        if not args.no_dask:
            from dask.distributed import LocalCluster

            with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                              dashboard_address=None) as cluster:
                times["dask_2_workers"] = run(paths, tmp / "dask", args.subregion,
                                              "--scheduler", cluster.scheduler_address)
            same = same and identical(tmp / "w1", tmp / "dask")
    capacity = machine_parallel_capacity()
    base = times["workers_1"]
    result = {"machine_parallel_capacity": capacity,
              "size": args.size, "warps": args.warps, "subregion": args.subregion, "seconds": times,
              "speedup_2_workers_dcr_model": base["dcr_model"] / times["workers_2"]["dcr_model"],
              "speedup_2_workers_total": base["total"] / times["workers_2"]["total"],
              "identical_outputs": same}
    print(f"{args.size}x{args.size}, {args.warps} warps, {args.subregion}-px subregions")
    print("  executor          total s   DCR-model stage s   stage speed-up")
    for name, t in times.items():
        print(f"  {name:15s} {t['total']:8.2f}   {t['dcr_model']:17.2f}   "
              f"{base['dcr_model'] / t['dcr_model']:14.2f}x")
    print(f"  outputs identical across executors: {same}")
    print(f"  this machine runs two CPU-bound processes {capacity:.2f}x as fast as one "
          "(2.00 on two free cores): the ceiling for any speed-up here")
    write_results("parallel", {**result, "machine": machine_info()})
    return result


if __name__ == "__main__":
    main()
