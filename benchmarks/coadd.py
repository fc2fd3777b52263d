"""Benchmark: baseline coadd (`dcrcoadd.coadd.baseline.assemble_coadd`) of file-backed warps.

Writes synthetic warps (star field whose stars drift with the visit as DCR moves
them, Gaussian noise, per-visit seeing, a satellite trail in one visit) as FITS
files to a temporary directory, then coadds them in a fresh child process per
case, with compare-warp artifact rejection (the default) and without it. The
child reports

* wall time of ``assemble_coadd`` (reading included; files are in the page cache),
* peak growth of the resident set size during it (`benchmarks.common.PeakMemory`:
  ``VmHWM`` after resetting it on Linux; elsewhere ``ru_maxrss``, an upper bound).

Cases: ``--quick`` (default) 1024x1024 x 20 warps and 2048x2048 x 10 warps;
``--full`` 1024x1024 x 20 and 4096x4096 x 10 warps (the sizes of issue 5; the
4096 case writes ~2 GiB of FITS and takes minutes).

Prints a table and saves ``benchmarks/results/coadd.json`` with machine and
software versions and the command line.

Run::

    .venv/bin/python benchmarks/coadd.py            # quick
    .venv/bin/python benchmarks/coadd.py --full
    .venv/bin/python benchmarks/coadd.py --case 512x6 --subregion 256
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import MiB, PeakMemory, child_json, machine_info, write_results  # noqa: E402

QUICK = ["1024x20", "2048x10"]
FULL = ["1024x20", "4096x10"]


# -- synthetic warps --------------------------------------------------------------------------------

def write_warps(directory: Path, size: int, n: int, seed: int = 1) -> list[Path]:
    """``n`` warps of ``size`` x ``size`` pixels: stars shifting up to +-1 px with the visit,
    noise sigma 5, PSF sigma 1.4-2.2 px, a trail in visit 1, a NO_DATA band in every third."""
    import numpy as np
    from astropy.wcs import WCS

    from dcrcoadd.core.exposure import Exposure
    from dcrcoadd.core.masks import MaskPlanes
    from dcrcoadd.core.psf import Psf
    from dcrcoadd.core.visit import VisitInfo
    from dcrcoadd.io import write_exposure

    rng = np.random.default_rng(seed)
    n_stars = size * size // 2000
    ys, xs = rng.uniform(8, size - 8, n_stars), rng.uniform(8, size - 8, n_stars)
    flux = 10 ** rng.uniform(2.5, 5.5, n_stars)
    blue = rng.uniform(-1, 1, n_stars)  # colour: how far DCR moves the star
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [size / 2, size / 2]
    wcs.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    planes = MaskPlanes()
    r = 7
    off = np.arange(-r, r + 1)
    paths = []
    for i in range(n):
        sigma = 1.4 + 0.8 * rng.random()
        dcr = np.linspace(-1.0, 1.0, n)[i]
        img = rng.normal(0.0, 5.0, (size, size)).astype(np.float32)
        for y, x, f in zip(ys + dcr * blue, xs, flux, strict=True):
            iy, ix = int(y), int(x)
            gy = np.exp(-0.5 * ((iy + off - y) / sigma) ** 2)
            gx = np.exp(-0.5 * ((ix + off - x) / sigma) ** 2)
            img[iy - r:iy + r + 1, ix - r:ix + r + 1] += (f / (2 * np.pi * sigma**2)) * np.outer(gy, gx)
        mask = np.zeros((size, size), np.uint32)
        if i == 1:
            yy = np.arange(size)
            xx = (0.7 * yy + size * 0.1).astype(int)
            ok = xx < size - 1
            img[yy[ok], xx[ok]] += 200.0
            img[yy[ok], xx[ok] + 1] += 100.0
        if i % 3 == 0:
            band = slice(size // 3, size // 3 + size // 20)
            img[:, band] = np.nan
            mask[:, band] = planes.value("NO_DATA")
        exp = Exposure(img, mask=mask, variance=np.full((size, size), 25.0, np.float32), wcs=wcs,
                       psf=Psf.gaussian(sigma), visit=VisitInfo(id=1000 + i, airmass=1.0 + abs(dcr)),
                       band="g", mask_planes=planes)
        paths.append(write_exposure(exp, directory / f"warp_{i:03d}.fits"))
    return paths


# -- child: one measured coadd ----------------------------------------------------------------------

def child(paths: list[str], compare_warp: bool, subregion: int | None) -> dict:
    from dcrcoadd.coadd import assemble_coadd
    from dcrcoadd.config.schema import Config

    cfg = Config()
    cfg.artifacts.enabled = compare_warp
    if subregion:
        cfg.coadd.subregion_size = (subregion, subregion)
    with PeakMemory() as mem:
        res = assemble_coadd(paths, cfg)
    return {"wall_s": mem.seconds, "peak_rss_growth_mib": mem.growth_mib,
            "clipped_footprints": sum(m.n_clipped for m in res.artifact_masks if m is not None),
            "subregion_size": list(cfg.coadd.subregion_size)}


# -- parent -----------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help=f"cases {QUICK} (default)")
    g.add_argument("--full", action="store_true", help=f"cases {FULL} (issue 5)")
    g.add_argument("--case", action="append", help="SIZExN, e.g. 512x6 (repeatable)")
    ap.add_argument("--subregion", type=int, default=None, help="subregion side (default: config, 2000)")
    ap.add_argument("--tmp", default=None, help="directory for the warp files (default: system temp)")
    ap.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        compare, sub, *paths = args.child
        print(json.dumps(child(paths, compare == "1", int(sub) or None)))
        return 0
    cases = args.case or (FULL if args.full else QUICK)
    results = []
    print(f"{'case':>10} {'compare-warp':>12} {'wall [s]':>9} {'peak RSS +MiB':>14} {'input MiB':>10}")
    for case in cases:
        size, n = (int(v) for v in case.lower().split("x"))
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            t0 = time.perf_counter()
            paths = write_warps(Path(tmp), size, n)
            t_write = time.perf_counter() - t0
            input_mib = sum(p.stat().st_size for p in paths) / MiB
            for compare in (True, False):
                r = child_json([sys.executable, __file__, "--child", "1" if compare else "0",
                                args.subregion or 0, *paths])
                r.update(case=case, size=size, n_warps=n, compare_warp=compare, input_mib=input_mib,
                         write_s=t_write)
                results.append(r)
                print(f"{case:>10} {str(compare):>12} {r['wall_s']:9.2f} {r['peak_rss_growth_mib']:14.0f} "
                      f"{input_mib:10.0f}")
    machine = machine_info()
    path = write_results("coadd", {"date": machine["date"], "machine": machine, "results": results})
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
