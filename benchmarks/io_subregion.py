"""Benchmark: does ``read_exposure(path, bbox=...)`` read only the box?

Writes a large exposure (default 4096x4096: 64 MiB per plane, 192 MiB of
pixels) plain and tile-compressed (dcrcoadd's square tiles, and for
comparison astropy's default one-row tiles) to a temporary directory, then
reads it whole and reads one 256x256 box from its middle. Every read runs in a fresh
child process so that its peak resident memory is its own; the child reports

* wall time of the read (best of ``--repeat``),
* peak memory allocated by Python/numpy during the read (``tracemalloc``),
* growth of the process's peak resident set size during the read
  (`benchmarks.common.PeakMemory`), which also counts memory-mapped file pages
  the read touched.

Prints a table and saves ``benchmarks/results/io_subregion.json`` with the
machine and software versions and the command line.

Run::

    .venv/bin/python benchmarks/io_subregion.py            # 4096x4096, 256x256 box
    .venv/bin/python benchmarks/io_subregion.py --size 2048 --box 128 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    MiB,
    PeakMemory,
    child_json,
    machine_info,
    write_results_to,
)

# -- child: one measured read ---------------------------------------------------------------------

def measure_read(path: str, bbox: tuple[int, int, int, int] | None, repeat: int) -> dict:
    """Read ``path`` (whole, or the ``(x0, y0, w, h)`` box) and measure time and memory."""
    import numpy as np

    from dcrcoadd.core.geom import Box
    from dcrcoadd.io import read_exposure

    box = None if bbox is None else Box(*bbox)
    read_exposure(path, bbox=Box(0, 0, 1, 1))  # warm imports and astropy's lazy set-up, not the pixels

    # Peak RSS growth over the RSS before the read; it includes memory-mapped file pages
    # the read touched. Without a resettable high-water mark it is only an upper bound.
    with PeakMemory() as mem:
        exp = read_exposure(path, bbox=box)
    first = mem.seconds
    rss_growth = round(mem.growth_mib * MiB)
    result_bytes = exp.image.nbytes + exp.mask.nbytes + exp.variance.nbytes
    checksum = float(np.nansum(exp.image, dtype=np.float64))
    shape = exp.shape
    del exp

    tracemalloc.start()
    exp = read_exposure(path, bbox=box)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del exp

    times = [first]
    for _ in range(max(repeat - 1, 0)):
        t0 = time.perf_counter()
        read_exposure(path, bbox=box)
        times.append(time.perf_counter() - t0)
    return {
        "shape": list(shape), "result_bytes": result_bytes, "checksum": checksum,
        "time_s_best": min(times), "time_s_all": times,
        "tracemalloc_peak_bytes": traced_peak, "rss_peak_growth_bytes": rss_growth,
        "rss_peak_exact": mem.exact,
    }


# -- parent: make files, run children, report ----------------------------------------------------

def make_exposure(size: int, seed: int = 0):
    """A sky-plus-noise exposure with a sparse mask, on a TAN WCS."""
    import numpy as np
    from astropy.wcs import WCS

    from dcrcoadd.core.exposure import Exposure
    from dcrcoadd.core.masks import MaskPlanes

    rng = np.random.default_rng(seed)
    image = (1000.0 + 30.0 * rng.standard_normal((size, size), dtype=np.float32)).astype(np.float32)
    variance = np.full((size, size), 900.0, dtype=np.float32) + image * np.float32(0.01)
    mask = np.zeros((size, size), dtype=np.uint32)
    planes = MaskPlanes()
    hit = rng.random((size, size)) < 0.01
    mask[hit] = np.uint32(1 << planes.bit("CR"))
    mask[:, :8] |= np.uint32(1 << planes.bit("EDGE"))
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [size / 2, size / 2]
    wcs.wcs.cd = [[-0.2 / 3600, 0], [0, 0.2 / 3600]]
    return Exposure(image=image, mask=mask, variance=variance, mask_planes=planes, origin=(0, 0), wcs=wcs)


def write_row_tiled(exp, path: Path) -> None:
    """The compressed format with astropy's default one-row tiles, for comparison with square tiles."""
    from astropy.io import fits

    from dcrcoadd.io.fits import exposure_hdus

    hdus = exposure_hdus(exp, compress=True)
    for i, h in enumerate(hdus):
        if isinstance(h, fits.CompImageHDU):
            hdus[i] = fits.CompImageHDU(data=h.data, header=h.header, name=h.name,
                                        compression_type=h.compression_type, quantize_level=0.0,
                                        tile_shape=(1, h.data.shape[1]))
    hdus.writeto(path, overwrite=True)


def read_in_child(path: Path, bbox, repeat: int) -> dict:
    cmd = [sys.executable, __file__, "--child", path, "--repeat", repeat]
    if bbox is not None:
        cmd += ["--child-box", ",".join(map(str, bbox))]
    return child_json(cmd)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4096, help="image side in pixels (default 4096)")
    parser.add_argument("--box", type=int, default=256, help="side of the box read (default 256)")
    parser.add_argument("--repeat", type=int, default=3, help="reads per case for the best time")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "io_subregion.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-box", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        bbox = None if args.child_box is None else tuple(int(v) for v in args.child_box.split(","))
        print(json.dumps(measure_read(args.child, bbox, args.repeat)))
        return 0

    from dcrcoadd.io import write_exposure

    n, b = args.size, args.box
    x0 = y0 = (n - b) // 2
    bbox = (x0, y0, b, b)
    exp = make_exposure(n)
    full_bytes = exp.image.nbytes + exp.mask.nbytes + exp.variance.nbytes
    box_bytes = 12 * b * b
    cases = []
    with tempfile.TemporaryDirectory(prefix="dcrcoadd-bench-") as tmp:
        files = {}
        for label, compress in (("plain", False), ("compressed", True), ("comp-rows", True)):
            path = Path(tmp) / f"{label}.fits"
            t0 = time.perf_counter()
            if label == "comp-rows":
                write_row_tiled(exp, path)
            else:
                write_exposure(exp, path, compress=compress)
            files[label] = {"path": path, "write_s": time.perf_counter() - t0,
                            "file_bytes": path.stat().st_size}
        del exp
        for label, f in files.items():
            for mode, box in (("full", None), ("box", bbox)):
                r = read_in_child(f["path"], box, args.repeat)
                cases.append({"file": label, "read": mode, "bbox": box, **r,
                              "write_s": f["write_s"], "file_bytes": f["file_bytes"]})

    # The box read must return the same pixels whichever file it came from.
    sums = {c["checksum"] for c in cases if c["read"] == "box"}
    if len(sums) != 1:
        raise SystemExit(f"box reads disagree between plain and compressed files: {sums}")

    print(f"{n}x{n} exposure ({full_bytes / MiB:.0f} MiB of image+mask+variance), "
          f"box {b}x{b} at ({x0}, {y0}) ({box_bytes / MiB:.2f} MiB); best of {args.repeat} reads")
    head = (f"{'file':<11}{'read':<6}{'file MiB':>9}{'time ms':>10}{'tracemalloc MiB':>17}"
            f"{'peak RSS +MiB':>15}{'x box size':>12}")
    print(head)
    print("-" * len(head))
    for c in cases:
        print(f"{c['file']:<11}{c['read']:<6}{c['file_bytes'] / MiB:>9.1f}{c['time_s_best'] * 1e3:>10.1f}"
              f"{c['tracemalloc_peak_bytes'] / MiB:>17.2f}{c['rss_peak_growth_bytes'] / MiB:>15.2f}"
              f"{c['tracemalloc_peak_bytes'] / box_bytes:>12.1f}")
    for label in files:
        full = next(c for c in cases if c["file"] == label and c["read"] == "full")
        box = next(c for c in cases if c["file"] == label and c["read"] == "box")
        mem = box["tracemalloc_peak_bytes"] / full["tracemalloc_peak_bytes"]
        speed = box["time_s_best"] / full["time_s_best"]
        print(f"{label}: box read allocates {mem:.4f} of a full read's memory and takes {speed:.4f} "
              f"of its time; write {files[label]['write_s']:.2f} s")

    machine = machine_info()
    record = {
        "date": machine["date"], "machine": machine,
        "image_size": n, "box_size": b, "bbox": list(bbox), "repeat": args.repeat,
        "full_pixel_bytes": full_bytes, "box_pixel_bytes": box_bytes,
        "cases": cases,
    }
    write_results_to(args.out, "io_subregion", record)
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
